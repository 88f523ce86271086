/*
 * test_cbor.c — strict CBOR (protocol.md, "Strict CBOR"; mt_cbor.h).
 *
 * MTP/1 signs and de-duplicates bytes, so every value must have exactly one
 * encoding: the decoder refuses every other form and the encoder produces
 * that one.  These tests pin both halves with hand-written hex taken from
 * RFC 8949 and the protocol page, never from our own encoder, so that a bug
 * shared by encoder and decoder cannot hide behind a round trip.
 *
 * Each rule of the "Strict CBOR" paragraph has its positive and negative
 * cases, and each refusal must carry the error code that names it (the
 * check order is visible in the codes, STYLE.md "Errors and memory"):
 *
 *   trailing bytes ............................ MT_ERR_CBOR_TRAILING
 *   indefinite lengths and the break code ..... MT_ERR_CBOR_INDEFINITE
 *   heads not in their shortest form .......... MT_ERR_CBOR_NOT_SHORTEST
 *   reserved additional information 28..30 .... MT_ERR_CBOR_MALFORMED
 *   floats not in their shortest exact form ... MT_ERR_CBOR_FLOAT_FORM
 *   NaN and ±Infinity ......................... MT_ERR_CBOR_FLOAT_NONFINITE
 *   simple values but false/true/null ......... MT_ERR_CBOR_SIMPLE
 *   tags other than those named ............... MT_ERR_CBOR_TAG
 *   invalid UTF-8 ............................. MT_ERR_CBOR_UTF8
 *   nesting deeper than 8 ..................... MT_ERR_CBOR_DEPTH
 *   maps of more than 16 entries .............. MT_ERR_CBOR_MAP_SIZE
 *   keys duplicated / unordered / not int|tstr  KEY_DUP / KEY_ORDER / KEY_TYPE
 *   lengths or counts beyond the input ........ MT_ERR_CBOR_TRUNCATED
 *
 * Tables run every case and print each mismatch before failing, so that one
 * run lists every disagreement between the code and the spec instead of
 * stopping at the first.  Head-level rules are checked through both entry
 * points, mt_cbor_validate() and the pull parser (mt_cbor_skip), which must
 * agree.  The encoder is checked byte for byte (core deterministic encoding,
 * RFC 8949 §4.2.1), for its latched MT_ERR_BUFFER, and by decoding back
 * everything it writes, including a seeded sweep of random doubles.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "medtrust/mt_cbor.h"
#include "mt_testutil.h"

/* ---- helpers -------------------------------------------------------------- */

struct vcase {
	const char *hex;
	enum mt_err want;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Validate one case; print and count a mismatch. */
static size_t check_validate(const struct vcase *c, const uint64_t *tags, size_t n_tags)
{
	uint8_t buf[512];
	size_t len = mt_test_unhex(c->hex, buf, sizeof(buf));
	enum mt_err got = mt_cbor_validate(buf, len, tags, n_tags);
	if (got != c->want) {
		print_error("validate(%s): want %d (%s), got %d (%s)\n", c->hex, (int)c->want,
		            mt_err_str(c->want), (int)got, mt_err_str(got));
		return 1;
	}
	return 0;
}

/* The pull parser: skip one item and finish. */
static size_t check_skip(const struct vcase *c)
{
	uint8_t buf[512];
	size_t len = mt_test_unhex(c->hex, buf, sizeof(buf));
	struct mt_cbor_dec d;
	mt_cbor_dec_init(&d, buf, len);
	bool ok = mt_cbor_skip(&d);
	enum mt_err got = mt_cbor_dec_finish(&d);
	if (got != c->want || ok != (c->want == MT_OK || c->want == MT_ERR_CBOR_TRAILING)) {
		print_error("skip(%s): want %d (%s), got %d (%s)\n", c->hex, (int)c->want,
		            mt_err_str(c->want), (int)got, mt_err_str(got));
		return 1;
	}
	return 0;
}

/* Head-level rules: both entry points must give the same verdict. */
static void run_head_cases(const struct vcase *c, size_t n)
{
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		bad += check_validate(&c[i], NULL, 0);
		bad += check_skip(&c[i]);
	}
	assert_int_equal(bad, 0);
}

/* Structural rules: only mt_cbor_validate() checks them. */
static size_t struct_cases(const struct vcase *c, size_t n, const uint64_t *tags,
                           size_t n_tags)
{
	size_t bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += check_validate(&c[i], tags, n_tags);
	return bad;
}

static void run_struct_cases(const struct vcase *c, size_t n, const uint64_t *tags,
                             size_t n_tags)
{
	assert_int_equal(struct_cases(c, n, tags, n_tags), 0);
}

/* Decode exactly one head from hex into *it; returns the finish code. */
static enum mt_err next1(const char *h, struct mt_cbor_item *it)
{
	static uint8_t buf[64];
	size_t len = mt_test_unhex(h, buf, sizeof(buf));
	struct mt_cbor_dec d;
	mt_cbor_dec_init(&d, buf, len);
	memset(it, 0, sizeof(*it));
	if (!mt_cbor_next(&d, it))
		assert_int_not_equal(d.err, MT_OK);
	return mt_cbor_dec_finish(&d);
}

/* ---- integers and shortest heads ----------------------------------------- */

static void test_shortest_heads_accepted(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"00", MT_OK}, {"17", MT_OK}, {"1818", MT_OK}, {"18ff", MT_OK},
		{"190100", MT_OK}, {"19ffff", MT_OK}, {"1a00010000", MT_OK},
		{"1affffffff", MT_OK}, {"1b0000000100000000", MT_OK},
		{"1bffffffffffffffff", MT_OK},
		{"20", MT_OK}, {"37", MT_OK}, {"3818", MT_OK}, {"38ff", MT_OK},
		{"390100", MT_OK}, {"39ffff", MT_OK}, {"3a00010000", MT_OK},
		{"3affffffff", MT_OK}, {"3b0000000100000000", MT_OK},
		{"3bffffffffffffffff", MT_OK},
		{"40", MT_OK}, {"4100", MT_OK}, {"60", MT_OK}, {"6161", MT_OK},
		{"80", MT_OK}, {"a0", MT_OK},
	};
	run_head_cases(c, N(c));
}

static void test_int_values_decoded(void **state)
{
	(void)state;
	static const struct {
		const char *hex;
		enum mt_cbor_type type;
		uint64_t u;
	} c[] = {
		{"00", MT_CBOR_UINT, 0},
		{"17", MT_CBOR_UINT, 23},
		{"1818", MT_CBOR_UINT, 24},
		{"18ff", MT_CBOR_UINT, 255},
		{"190100", MT_CBOR_UINT, 256},
		{"19ffff", MT_CBOR_UINT, 65535},
		{"1a00010000", MT_CBOR_UINT, 65536},
		{"1affffffff", MT_CBOR_UINT, UINT32_MAX},
		{"1b0000000100000000", MT_CBOR_UINT, UINT64_C(1) << 32},
		{"1bffffffffffffffff", MT_CBOR_UINT, UINT64_MAX},
		{"20", MT_CBOR_NEGINT, 0},
		{"3bffffffffffffffff", MT_CBOR_NEGINT, UINT64_MAX},
		{"390100", MT_CBOR_NEGINT, 256},
	};
	for (size_t i = 0; i < N(c); i++) {
		struct mt_cbor_item it;
		assert_int_equal(next1(c[i].hex, &it), MT_OK);
		assert_int_equal(it.type, c[i].type);
		assert_true(it.u == c[i].u);
		assert_int_equal(it.start, 0);
	}
}

static void test_non_shortest_heads_refused(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		/* uint in each longer width */
		{"1800", MT_ERR_CBOR_NOT_SHORTEST},
		{"1817", MT_ERR_CBOR_NOT_SHORTEST},
		{"1900ff", MT_ERR_CBOR_NOT_SHORTEST},
		{"190017", MT_ERR_CBOR_NOT_SHORTEST},
		{"1a0000ffff", MT_ERR_CBOR_NOT_SHORTEST},
		{"1a00000000", MT_ERR_CBOR_NOT_SHORTEST},
		{"1b00000000ffffffff", MT_ERR_CBOR_NOT_SHORTEST},
		{"1b0000000000000000", MT_ERR_CBOR_NOT_SHORTEST},
		/* negint */
		{"3800", MT_ERR_CBOR_NOT_SHORTEST},
		{"3817", MT_ERR_CBOR_NOT_SHORTEST},
		{"3900ff", MT_ERR_CBOR_NOT_SHORTEST},
		{"3a0000ffff", MT_ERR_CBOR_NOT_SHORTEST},
		{"3b00000000ffffffff", MT_ERR_CBOR_NOT_SHORTEST},
		/* bstr lengths (the byte is present, so only the head is wrong) */
		{"580100", MT_ERR_CBOR_NOT_SHORTEST},
		{"59000100", MT_ERR_CBOR_NOT_SHORTEST},
		{"5a0000000100", MT_ERR_CBOR_NOT_SHORTEST},
		{"5b000000000000000100", MT_ERR_CBOR_NOT_SHORTEST},
		{"5800", MT_ERR_CBOR_NOT_SHORTEST},
		/* tstr lengths */
		{"780161", MT_ERR_CBOR_NOT_SHORTEST},
		{"79000161", MT_ERR_CBOR_NOT_SHORTEST},
		{"7a0000000161", MT_ERR_CBOR_NOT_SHORTEST},
		{"7b000000000000000161", MT_ERR_CBOR_NOT_SHORTEST},
		/* array counts */
		{"980100", MT_ERR_CBOR_NOT_SHORTEST},
		{"99000100", MT_ERR_CBOR_NOT_SHORTEST},
		{"9a0000000100", MT_ERR_CBOR_NOT_SHORTEST},
		{"9b000000000000000100", MT_ERR_CBOR_NOT_SHORTEST},
		{"9800", MT_ERR_CBOR_NOT_SHORTEST},
		/* map counts */
		{"b8010100", MT_ERR_CBOR_NOT_SHORTEST},
		{"b900010100", MT_ERR_CBOR_NOT_SHORTEST},
		{"ba000000010100", MT_ERR_CBOR_NOT_SHORTEST},
		{"bb00000000000000010100", MT_ERR_CBOR_NOT_SHORTEST},
		/* tags (tag 18 in each longer width; refused before the allow list) */
		{"d81280", MT_ERR_CBOR_NOT_SHORTEST},
		{"d9001280", MT_ERR_CBOR_NOT_SHORTEST},
		{"da0000001280", MT_ERR_CBOR_NOT_SHORTEST},
		{"db000000000000001280", MT_ERR_CBOR_NOT_SHORTEST},
		{"d900ff80", MT_ERR_CBOR_NOT_SHORTEST},
		/* nested: a bad head anywhere refuses the whole item */
		{"821800 00", MT_ERR_CBOR_NOT_SHORTEST},
		{"a1 01 1900ff", MT_ERR_CBOR_NOT_SHORTEST},
	};
	run_head_cases(c, N(c));
	/* The same with tag 18 allowed: still the head's fault. */
	static const uint64_t t18[] = {18};
	static const struct vcase tags[] = {
		{"d81280", MT_ERR_CBOR_NOT_SHORTEST},
		{"d9001280", MT_ERR_CBOR_NOT_SHORTEST},
		{"da0000001280", MT_ERR_CBOR_NOT_SHORTEST},
		{"db000000000000001280", MT_ERR_CBOR_NOT_SHORTEST},
		{"d280", MT_OK},
	};
	run_struct_cases(tags, N(tags), t18, 1);
}

/* ---- indefinite lengths, reserved values ---------------------------------- */

static void test_indefinite_refused(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"5f4100ff", MT_ERR_CBOR_INDEFINITE},   /* indefinite bstr */
		{"5fff", MT_ERR_CBOR_INDEFINITE},
		{"7f6161ff", MT_ERR_CBOR_INDEFINITE},   /* indefinite tstr */
		{"7fff", MT_ERR_CBOR_INDEFINITE},
		{"9fff", MT_ERR_CBOR_INDEFINITE},       /* indefinite array */
		{"9f0102ff", MT_ERR_CBOR_INDEFINITE},
		{"bfff", MT_ERR_CBOR_INDEFINITE},       /* indefinite map */
		{"bf0102ff", MT_ERR_CBOR_INDEFINITE},
		{"ff", MT_ERR_CBOR_INDEFINITE},         /* lone break */
		{"81ff", MT_ERR_CBOR_INDEFINITE},       /* break inside a definite array */
		{"a101ff", MT_ERR_CBOR_INDEFINITE},     /* break as a map value */
		{"829f00ff00", MT_ERR_CBOR_INDEFINITE}, /* nested */
	};
	run_head_cases(c, N(c));
}

static void test_reserved_additional_info_refused(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"1c", MT_ERR_CBOR_MALFORMED}, {"1d", MT_ERR_CBOR_MALFORMED},
		{"1e", MT_ERR_CBOR_MALFORMED}, {"3c", MT_ERR_CBOR_MALFORMED},
		{"3d", MT_ERR_CBOR_MALFORMED}, {"3e", MT_ERR_CBOR_MALFORMED},
		{"5c", MT_ERR_CBOR_MALFORMED}, {"7d", MT_ERR_CBOR_MALFORMED},
		{"9e", MT_ERR_CBOR_MALFORMED}, {"bc", MT_ERR_CBOR_MALFORMED},
		{"dc", MT_ERR_CBOR_MALFORMED}, {"fc", MT_ERR_CBOR_MALFORMED},
		{"fd", MT_ERR_CBOR_MALFORMED}, {"fe", MT_ERR_CBOR_MALFORMED},
		{"811c", MT_ERR_CBOR_MALFORMED},
		/* ai 31 on majors without an indefinite form: not well-formed */
		{"1f", MT_ERR_CBOR_MALFORMED}, {"3f", MT_ERR_CBOR_MALFORMED},
		{"df", MT_ERR_CBOR_MALFORMED},
	};
	run_head_cases(c, N(c));
}

/* ---- floats ---------------------------------------------------------------- */

struct fcase {
	double v;
	const char *hex; /* the one encoding */
};

static const struct fcase canonical_floats[] = {
	{97.0, "f95610"},              /* protocol.md: no reduction to int */
	{36.5, "f95090"},
	{36.6, "fb40424ccccccccccd"},  /* needs double */
	{65504.0, "f97bff"},           /* largest half */
	{-65504.0, "f9fbff"},
	{5.960464477539063e-08, "f90001"}, /* smallest half subnormal, 2^-24 */
	{1.7881393432617188e-07, "f90003"},/* 3 × 2^-24 */
	{6.103515625e-05, "f90400"},   /* smallest half normal */
	{100000.0, "fa47c35000"},      /* above the half range */
	{65536.0, "fa47800000"},
	{2049.0, "fa45001000"},        /* in half range but needs 12 bits */
	{2048.0, "f96800"},
	{2.9802322387695312e-08, "fa33000000"}, /* 2^-25: below half subnormals */
	{1.401298464324817e-45, "fa00000001"},  /* smallest single subnormal */
	{3.4028234663852886e38, "fa7f7fffff"},  /* largest single */
	{0.1, "fb3fb999999999999a"},
	{1e300, "fb7e37e43c8800759c"},
	{0.0, "f90000"},
	{-0.0, "f98000"},
	{1.0, "f93c00"},
	{1.5, "f93e00"},
};

static void test_float_encoder_shortest(void **state)
{
	(void)state;
	size_t bad = 0;
	for (size_t i = 0; i < N(canonical_floats); i++) {
		uint8_t want[16], got[16];
		char gh[40];
		size_t wn = mt_test_unhex(canonical_floats[i].hex, want, sizeof(want)), gn = 0;
		struct mt_cbor_enc e;
		mt_cbor_enc_init(&e, got, sizeof(got));
		mt_cbor_put_float(&e, canonical_floats[i].v);
		enum mt_err err = mt_cbor_enc_finish(&e, &gn);
		mt_test_tohex(got, gn, gh, sizeof(gh));
		if (err != MT_OK || gn != wn || memcmp(got, want, wn) != 0) {
			print_error("put_float(%.17g): want %s, got %s (err %d)\n",
			            canonical_floats[i].v, canonical_floats[i].hex, gh, (int)err);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void test_float_decoder_accepts_shortest(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(canonical_floats); i++) {
		struct mt_cbor_item it;
		double v = canonical_floats[i].v;
		assert_int_equal(next1(canonical_floats[i].hex, &it), MT_OK);
		assert_int_equal(it.type, MT_CBOR_FLOAT);
		if (it.f != v || signbit(it.f) != signbit(v))
			fail_msg("%s decoded to %.17g, want %.17g", canonical_floats[i].hex, it.f, v);
	}
}

static void test_float_longer_forms_refused(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"fa42c20000", MT_ERR_CBOR_FLOAT_FORM},          /* 97.0 as single */
		{"fb4058400000000000", MT_ERR_CBOR_FLOAT_FORM},  /* 97.0 as double */
		{"fa477fe000", MT_ERR_CBOR_FLOAT_FORM},          /* 65504 as single */
		{"fb40effc0000000000", MT_ERR_CBOR_FLOAT_FORM},  /* 65504 as double */
		{"fa33800000", MT_ERR_CBOR_FLOAT_FORM},          /* 2^-24 as single */
		{"fb3e70000000000000", MT_ERR_CBOR_FLOAT_FORM},  /* 2^-24 as double */
		{"fb40f86a0000000000", MT_ERR_CBOR_FLOAT_FORM},  /* 100000 as double */
		{"fa00000000", MT_ERR_CBOR_FLOAT_FORM},          /* 0.0 as single */
		{"fb0000000000000000", MT_ERR_CBOR_FLOAT_FORM},  /* 0.0 as double */
		{"fa80000000", MT_ERR_CBOR_FLOAT_FORM},          /* -0.0 as single */
		{"fb8000000000000000", MT_ERR_CBOR_FLOAT_FORM},  /* -0.0 as double */
		{"fb36a0000000000000", MT_ERR_CBOR_FLOAT_FORM},  /* 2^-149 as double */
		{"fb47efffffe0000000", MT_ERR_CBOR_FLOAT_FORM},  /* FLT_MAX as double */
		{"fa3fc00000", MT_ERR_CBOR_FLOAT_FORM},          /* 1.5 as single */
		{"81fb4042400000000000", MT_ERR_CBOR_FLOAT_FORM},/* 36.5 as double, nested */
		/* the shortest forms of values that need the width are fine */
		{"fa45001000", MT_OK},
		{"fb40424ccccccccccd", MT_OK},
		/* integral floats are not reduced to ints: 97.0 stays a float */
		{"f95610", MT_OK},
	};
	run_head_cases(c, N(c));
}

static void test_float_nonfinite_refused(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"f97e00", MT_ERR_CBOR_FLOAT_NONFINITE},  /* NaN */
		{"f97c01", MT_ERR_CBOR_FLOAT_NONFINITE},  /* signalling NaN */
		{"f9fe00", MT_ERR_CBOR_FLOAT_NONFINITE},  /* -NaN */
		{"f97c00", MT_ERR_CBOR_FLOAT_NONFINITE},  /* +Inf */
		{"f9fc00", MT_ERR_CBOR_FLOAT_NONFINITE},  /* -Inf */
		{"fa7fc00000", MT_ERR_CBOR_FLOAT_NONFINITE},
		{"fa7f800001", MT_ERR_CBOR_FLOAT_NONFINITE},
		{"fa7f800000", MT_ERR_CBOR_FLOAT_NONFINITE},
		{"faff800000", MT_ERR_CBOR_FLOAT_NONFINITE},
		{"fb7ff8000000000000", MT_ERR_CBOR_FLOAT_NONFINITE},
		{"fb7ff0000000000001", MT_ERR_CBOR_FLOAT_NONFINITE},
		{"fb7ff0000000000000", MT_ERR_CBOR_FLOAT_NONFINITE},
		{"fbfff0000000000000", MT_ERR_CBOR_FLOAT_NONFINITE},
		{"a101f97e00", MT_ERR_CBOR_FLOAT_NONFINITE},  /* anywhere in a message */
	};
	run_head_cases(c, N(c));
}

static void test_float_encoder_refuses_nonfinite(void **state)
{
	(void)state;
	const double bad[] = {NAN, -NAN, INFINITY, -INFINITY};
	for (size_t i = 0; i < N(bad); i++) {
		uint8_t buf[16];
		size_t len = 99;
		struct mt_cbor_enc e;
		mt_cbor_enc_init(&e, buf, sizeof(buf));
		mt_cbor_put_float(&e, bad[i]);
		assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_CBOR_FLOAT_NONFINITE);
		assert_int_equal(len, 99); /* no length reported on error */
		/* the error latches: later good writes do not clear it */
		mt_cbor_put_uint(&e, 1);
		assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_CBOR_FLOAT_NONFINITE);
	}
}

/* Seeded sweep: whatever double the encoder writes, the strict decoder takes
 * back bit-exactly; values built to fit half and single come out in 3 and 5
 * bytes. */
static void float_round_trip(double v, size_t want_len)
{
	uint8_t buf[16];
	size_t len;
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_float(&e, v);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_OK);
	if (want_len != 0 && len != want_len)
		fail_msg("%.17g encoded in %zu bytes, want %zu", v, len, want_len);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
	struct mt_cbor_dec d;
	struct mt_cbor_item it;
	mt_cbor_dec_init(&d, buf, len);
	assert_true(mt_cbor_next(&d, &it));
	assert_int_equal(mt_cbor_dec_finish(&d), MT_OK);
	assert_int_equal(it.type, MT_CBOR_FLOAT);
	if (memcmp(&it.f, &v, sizeof(v)) != 0)
		fail_msg("%.17g came back as %.17g", v, it.f);
}

/* Reference: is a (> 0, ≤ 65504) a binary16 value?  Its last significant
 * bit must not be below 2^-24 (subnormal step) nor below 2^(exp-10). */
static bool ref_is_half(double a)
{
	int ex;
	(void)frexp(a, &ex); /* a = m × 2^ex, 0.5 ≤ m < 1 */
	int shift = ex - 1 >= -14 ? 11 - ex : 24;
	double scaled = ldexp(a, shift);
	return scaled == floor(scaled);
}

static void test_float_round_trip_random(void **state)
{
	(void)state;
	uint64_t rng = UINT64_C(0x0123456789abcdef); /* xorshift64 state */
	for (int i = 0; i < 20000; i++) {
		uint64_t bits = mt_test_xorshift64(&rng);
		double v;
		memcpy(&v, &bits, sizeof(v));
		if (!isfinite(v))
			continue;
		float_round_trip(v, 0);
	}
	for (int i = 0; i < 20000; i++) {
		/* every finite binary16 value (sign, exponent 0..30, mantissa) */
		uint16_t h = (uint16_t)mt_test_xorshift64(&rng);
		if (((h >> 10) & 0x1f) == 0x1f)
			continue;
		int ex = (h >> 10) & 0x1f, m = h & 0x3ff;
		double v = ex == 0 ? ldexp(m, -24) : ldexp(m + 1024, ex - 25);
		if (h & 0x8000)
			v = -v;
		float_round_trip(v, 3);
	}
	for (int i = 0; i < 20000; i++) {
		uint32_t b = (uint32_t)mt_test_xorshift64(&rng);
		float f;
		memcpy(&f, &b, sizeof(f));
		if (!isfinite(f))
			continue;
		double v = f;
		/* those that are not also halves must take 5 bytes */
		bool half = v == 0 || (fabs(v) <= 65504.0 && ref_is_half(fabs(v)));
		float_round_trip(v, half ? 3 : 5);
	}
}

/* ---- simple values ---------------------------------------------------------- */

static void test_simple_values(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"f4", MT_OK}, {"f5", MT_OK}, {"f6", MT_OK},
		{"f7", MT_ERR_CBOR_SIMPLE},   /* undefined */
		{"e0", MT_ERR_CBOR_SIMPLE},   /* simple(0) */
		{"f3", MT_ERR_CBOR_SIMPLE},   /* simple(19) */
		{"f820", MT_ERR_CBOR_SIMPLE}, /* simple(32) */
		{"f8ff", MT_ERR_CBOR_SIMPLE},
		{"f818", MT_ERR_CBOR_SIMPLE},
		{"82f4f7", MT_ERR_CBOR_SIMPLE},
	};
	run_head_cases(c, N(c));
	struct mt_cbor_item it;
	assert_int_equal(next1("f4", &it), MT_OK);
	assert_int_equal(it.type, MT_CBOR_FALSE);
	assert_int_equal(next1("f5", &it), MT_OK);
	assert_int_equal(it.type, MT_CBOR_TRUE);
	assert_int_equal(next1("f6", &it), MT_OK);
	assert_int_equal(it.type, MT_CBOR_NULL);
}

/* ---- UTF-8 ------------------------------------------------------------------- */

static void test_utf8(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"60", MT_OK},
		{"63e282ac", MT_OK},         /* € */
		{"64f09f9880", MT_OK},       /* U+1F600 */
		{"64f48fbfbf", MT_OK},       /* U+10FFFF */
		{"63ed9fbf", MT_OK},         /* U+D7FF */
		{"63ee8080", MT_OK},         /* U+E000 */
		{"62c280", MT_OK},           /* U+0080 */
		{"62c080", MT_ERR_CBOR_UTF8},     /* overlong NUL */
		{"62c1bf", MT_ERR_CBOR_UTF8},     /* overlong */
		{"63e08080", MT_ERR_CBOR_UTF8},   /* overlong 3-byte */
		{"64f0808080", MT_ERR_CBOR_UTF8}, /* overlong 4-byte */
		{"63eda080", MT_ERR_CBOR_UTF8},   /* surrogate U+D800 */
		{"63edbfbf", MT_ERR_CBOR_UTF8},   /* surrogate U+DFFF */
		{"64f4908080", MT_ERR_CBOR_UTF8}, /* U+110000 */
		{"62e282", MT_ERR_CBOR_UTF8},     /* truncated sequence */
		{"6161e2", MT_ERR_CBOR_TRAILING}, /* (a complete "a", then a stray byte) */
		{"62 61e2", MT_ERR_CBOR_UTF8},    /* truncated at the end of the string */
		{"6180", MT_ERR_CBOR_UTF8},       /* lone continuation */
		{"61ff", MT_ERR_CBOR_UTF8},
		{"61f8", MT_ERR_CBOR_UTF8},
		{"a1 62c080 00", MT_ERR_CBOR_UTF8}, /* in a key */
		{"42c080", MT_OK},                /* byte strings are not text */
	};
	run_head_cases(c, N(c));

	assert_true(mt_utf8_valid((const uint8_t *)"", 0));
	assert_true(mt_utf8_valid((const uint8_t *)"\xe2\x82\xac", 3));
	assert_false(mt_utf8_valid((const uint8_t *)"\xc0\x80", 2));
	assert_false(mt_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));
	assert_false(mt_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
	assert_false(mt_utf8_valid((const uint8_t *)"\xe2\x82", 2));
	assert_false(mt_utf8_valid((const uint8_t *)"\xe2\x82\xac", 2)); /* cut by n */
}

/* ---- nesting depth ------------------------------------------------------------- */

/* n nested arrays, the innermost holding `inner` (NULL: empty). */
static size_t nested(uint8_t *buf, int n, const char *head, const char *inner)
{
	size_t len = 0;
	uint8_t h[4];
	size_t hn = mt_test_unhex(head, h, sizeof(h));
	for (int i = 0; i < n; i++) {
		/* the innermost container is empty unless `inner` is given */
		if (i == n - 1 && inner == NULL) {
			buf[len++] = (uint8_t)(h[0] & 0xe0); /* 80 or a0 */
			return len;
		}
		memcpy(buf + len, h, hn);
		len += hn;
	}
	len += mt_test_unhex(inner, buf + len, 16);
	return len;
}

static void test_depth(void **state)
{
	(void)state;
	uint8_t buf[64];
	size_t len;

	/* The top-level container is depth 1 (mt_cbor.h): 8 nested is the most. */
	len = nested(buf, 8, "81", NULL);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
	len = nested(buf, 9, "81", NULL);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_ERR_CBOR_DEPTH);
	/* A scalar inside the 8th container adds no nesting level. */
	len = nested(buf, 8, "81", "00");
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
	len = nested(buf, 9, "81", "00");
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_ERR_CBOR_DEPTH);
	/* Maps count the same: {1: {1: ... {}}} */
	len = nested(buf, 8, "a101", NULL);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
	len = nested(buf, 9, "a101", NULL);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_ERR_CBOR_DEPTH);
	len = nested(buf, 8, "a101", "00");
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
	/* Depth is of the deepest path, not of the sum of siblings. */
	len = mt_test_unhex("82 81818181818180 81818181818180", buf, sizeof(buf));
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
}

/* The pull parser's mt_cbor_skip() must agree with validate on depth. */
static void test_depth_skip(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"8181818181818180", MT_OK},            /* 8 arrays */
		{"818181818181818100", MT_OK},          /* 8 arrays around a scalar */
		{"a101a101a101a101a101a101a101a0", MT_OK},
		{"a101a101a101a101a101a101a101a10100", MT_OK},
		{"818181818181818180", MT_ERR_CBOR_DEPTH},  /* 9 arrays */
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += check_skip(&c[i]);
	assert_int_equal(bad, 0);
}

/* ---- maps: size, key type, order, uniqueness ----------------------------------- */

static size_t int_map(uint8_t *buf, unsigned n)
{
	size_t len = 0;
	buf[len++] = (uint8_t)(0xa0 | n); /* n ≤ 23 */
	for (unsigned k = 0; k < n; k++) {
		buf[len++] = (uint8_t)k;
		buf[len++] = 0xf6;
	}
	return len;
}

static void test_map_size(void **state)
{
	(void)state;
	uint8_t buf[64];
	size_t len = int_map(buf, 16);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
	len = int_map(buf, 17);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_ERR_CBOR_MAP_SIZE);
	/* an array of 17 is not limited */
	len = mt_test_unhex("91 0000000000000000000000000000000000", buf, sizeof(buf));
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
}

static void test_map_keys(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"a2 0100 0200", MT_OK},
		{"a2 0100 0100", MT_ERR_CBOR_KEY_DUP},
		{"a2 616100 616100", MT_ERR_CBOR_KEY_DUP},
		{"a2 2000 2000", MT_ERR_CBOR_KEY_DUP},
		{"a2 0200 0100", MT_ERR_CBOR_KEY_ORDER},
		/* bytewise order of the encodings: 10 (0a) < -1 (20) < "a" (6161) */
		{"a3 0a00 2000 616100", MT_OK},
		{"a2 2000 0a00", MT_ERR_CBOR_KEY_ORDER},
		{"a2 616100 2000", MT_ERR_CBOR_KEY_ORDER},
		{"a2 616100 0a00", MT_ERR_CBOR_KEY_ORDER},
		/* 24 (18 18) after 23 (17) */
		{"a2 1700 181800", MT_OK},
		{"a2 181800 1700", MT_ERR_CBOR_KEY_ORDER},
		/* bytewise, not length-first: 256 (190100) before -1 (20) */
		{"a2 19010000 2000", MT_OK},
		{"a2 2000 19010000", MT_ERR_CBOR_KEY_ORDER},
		/* "ab" (626162) after "b" (6162) */
		{"a2 616200 62616200", MT_OK},
		{"a2 62616200 616200", MT_ERR_CBOR_KEY_ORDER},
		/* "a" (6161) before "a\0" (626100): the length byte decides */
		{"a2 616100 62610000", MT_OK},
		/* key types */
		{"a1 8000", MT_ERR_CBOR_KEY_TYPE},     /* array */
		{"a1 a000", MT_ERR_CBOR_KEY_TYPE},     /* map */
		{"a1 4000", MT_ERR_CBOR_KEY_TYPE},     /* empty bstr */
		{"a1 416100", MT_ERR_CBOR_KEY_TYPE},   /* bstr */
		{"a1 f93c0000", MT_ERR_CBOR_KEY_TYPE}, /* float */
		{"a1 f400", MT_ERR_CBOR_KEY_TYPE},     /* false */
		{"a1 f600", MT_ERR_CBOR_KEY_TYPE},     /* null */
		{"a1 3bffffffffffffffff00", MT_OK},    /* the most negative int */
		{"a1 1bffffffffffffffff00", MT_OK},
		{"a1 6000", MT_OK},                    /* empty text */
		/* nested maps are checked too */
		{"a1 01 a2 0200 0100", MT_ERR_CBOR_KEY_ORDER},
		{"81 a2 0100 0100", MT_ERR_CBOR_KEY_DUP},
	};
	run_struct_cases(c, N(c), NULL, 0);
	/* a tag as a key: refused whether or not the tag itself is allowed */
	static const uint64_t t1[] = {1};
	static const struct vcase tagged[] = {{"a1 c10000", MT_ERR_CBOR_KEY_TYPE}};
	run_struct_cases(tagged, N(tagged), t1, 1);
}

/* ---- trailing and truncated ------------------------------------------------------ */

static void test_trailing(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"0000", MT_ERR_CBOR_TRAILING},
		{"8000", MT_ERR_CBOR_TRAILING},
		{"a0a0", MT_ERR_CBOR_TRAILING},
		{"6161 00", MT_ERR_CBOR_TRAILING},
		{"f6 f6", MT_ERR_CBOR_TRAILING},
	};
	run_head_cases(c, N(c));
	/* the pull parser: one item read, then finish says TRAILING */
	uint8_t buf[4] = {0x01, 0x02};
	struct mt_cbor_dec d;
	uint64_t v;
	mt_cbor_dec_init(&d, buf, 2);
	assert_true(mt_cbor_get_uint(&d, &v));
	assert_int_equal(v, 1);
	assert_int_equal(mt_cbor_dec_finish(&d), MT_ERR_CBOR_TRAILING);
	assert_true(mt_cbor_get_uint(&d, &v));
	assert_int_equal(v, 2);
	assert_int_equal(mt_cbor_dec_finish(&d), MT_OK);
}

static void test_truncated(void **state)
{
	(void)state;
	static const struct vcase c[] = {
		{"18", MT_ERR_CBOR_TRUNCATED},
		{"1901", MT_ERR_CBOR_TRUNCATED},
		{"1a000000", MT_ERR_CBOR_TRUNCATED},
		{"1b00000000000000", MT_ERR_CBOR_TRUNCATED},
		{"38", MT_ERR_CBOR_TRUNCATED},
		{"41", MT_ERR_CBOR_TRUNCATED},
		{"4301", MT_ERR_CBOR_TRUNCATED},
		{"58", MT_ERR_CBOR_TRUNCATED},
		{"5818", MT_ERR_CBOR_TRUNCATED},
		{"6261", MT_ERR_CBOR_TRUNCATED},
		{"82 00", MT_ERR_CBOR_TRUNCATED},
		{"a1 01", MT_ERR_CBOR_TRUNCATED},
		{"a2 0100", MT_ERR_CBOR_TRUNCATED},
		{"f9 00", MT_ERR_CBOR_TRUNCATED},
		{"fa 0000", MT_ERR_CBOR_TRUNCATED},
		{"fb 00000000000000", MT_ERR_CBOR_TRUNCATED},
		{"d8", MT_ERR_CBOR_TRUNCATED},
		/* lengths and counts far beyond the input: refused from the
		 * head, before anything is allocated or read */
		{"5bffffffffffffffff", MT_ERR_CBOR_TRUNCATED},
		{"5bffffffffffffffff 00", MT_ERR_CBOR_TRUNCATED},
		{"7bffffffffffffffff 61", MT_ERR_CBOR_TRUNCATED},
		{"5a7fffffff 00", MT_ERR_CBOR_TRUNCATED},
		{"5b0000000100000000", MT_ERR_CBOR_TRUNCATED},
		{"9b0000000100000000", MT_ERR_CBOR_TRUNCATED},  /* 2^32 items */
		{"9b0000000100000000 00", MT_ERR_CBOR_TRUNCATED},
		{"9bffffffffffffffff", MT_ERR_CBOR_TRUNCATED},
		{"9affffffff", MT_ERR_CBOR_TRUNCATED},
		{"bbffffffffffffffff", MT_ERR_CBOR_TRUNCATED},
		{"ba00010000 0000", MT_ERR_CBOR_TRUNCATED},
		{"81 5bffffffffffffffff", MT_ERR_CBOR_TRUNCATED},
	};
	run_head_cases(c, N(c));
	/* a tag with nothing after it (the tags allowed, so that only the
	 * missing content is wrong) */
	static const uint64_t t1_18[] = {1, 18};
	static const struct vcase tag_only[] = {
		{"c1", MT_ERR_CBOR_TRUNCATED},
		{"d2", MT_ERR_CBOR_TRUNCATED},
		{"81 c1", MT_ERR_CBOR_TRUNCATED},
	};
	run_struct_cases(tag_only, N(tag_only), t1_18, 2);
	/* empty input */
	uint8_t b = 0;
	assert_int_equal(mt_cbor_validate(&b, 0, NULL, 0), MT_ERR_CBOR_TRUNCATED);
	struct mt_cbor_dec d;
	struct mt_cbor_item it;
	mt_cbor_dec_init(&d, &b, 0);
	assert_false(mt_cbor_next(&d, &it));
	assert_int_equal(mt_cbor_dec_finish(&d), MT_ERR_CBOR_TRUNCATED);
}

/* ---- tags ----------------------------------------------------------------------- */

static void test_tags_allowed_list(void **state)
{
	(void)state;
	static const uint64_t t18[] = {18};
	static const uint64_t t16_17[] = {16, 17};
	static const uint64_t t_many[] = {16, 18, 256, UINT64_MAX};
	static const struct vcase none[] = {
		{"d280", MT_ERR_CBOR_TAG},
		{"c000", MT_ERR_CBOR_TAG},
		{"81 d280", MT_ERR_CBOR_TAG},
	};
	static const struct vcase only18[] = {
		{"d280", MT_OK},
		{"81 d280", MT_OK},
		{"d0 80", MT_ERR_CBOR_TAG},
		{"d2 d0 80", MT_ERR_CBOR_TAG}, /* allowed tag around a refused one */
		{"d8 18 80", MT_ERR_CBOR_TAG},
		{"d2 9fff", MT_ERR_CBOR_INDEFINITE},
	};
	static const struct vcase other[] = {{"d280", MT_ERR_CBOR_TAG}, {"d080", MT_OK}};
	static const struct vcase many[] = {
		{"d280", MT_OK},
		{"d9010000", MT_OK},
		{"dbffffffffffffffff00", MT_OK},
		{"d9010100", MT_ERR_CBOR_TAG},
		{"d1 00", MT_ERR_CBOR_TAG},
	};
	size_t bad = struct_cases(none, N(none), NULL, 0);
	bad += struct_cases(only18, N(only18), t18, 1);
	bad += struct_cases(other, N(other), t16_17, 2);
	bad += struct_cases(many, N(many), t_many, N(t_many));
	assert_int_equal(bad, 0);

	/* the pull parser reports the tag number and then the tagged item */
	struct mt_cbor_item it;
	assert_int_equal(next1("d2", &it), MT_OK);
	assert_int_equal(it.type, MT_CBOR_TAG);
	assert_int_equal(it.u, 18);
}

/* ---- typed getters and latching --------------------------------------------------- */

static void test_typed_getters(void **state)
{
	(void)state;
	uint8_t buf[64];
	size_t len;
	struct mt_cbor_dec d;
	int64_t i64;
	uint64_t u;

	len = mt_test_unhex("3b7fffffffffffffff", buf, sizeof(buf)); /* INT64_MIN */
	mt_cbor_dec_init(&d, buf, len);
	assert_true(mt_cbor_get_int64(&d, &i64));
	assert_true(i64 == INT64_MIN);
	assert_int_equal(mt_cbor_dec_finish(&d), MT_OK);

	len = mt_test_unhex("1b7fffffffffffffff", buf, sizeof(buf)); /* INT64_MAX */
	mt_cbor_dec_init(&d, buf, len);
	assert_true(mt_cbor_get_int64(&d, &i64));
	assert_true(i64 == INT64_MAX);

	len = mt_test_unhex("3b8000000000000000", buf, sizeof(buf)); /* INT64_MIN - 1 */
	mt_cbor_dec_init(&d, buf, len);
	assert_false(mt_cbor_get_int64(&d, &i64));
	assert_int_equal(mt_cbor_dec_finish(&d), MT_ERR_CBOR_RANGE);

	len = mt_test_unhex("1b8000000000000000", buf, sizeof(buf)); /* INT64_MAX + 1 */
	mt_cbor_dec_init(&d, buf, len);
	assert_false(mt_cbor_get_int64(&d, &i64));
	assert_int_equal(mt_cbor_dec_finish(&d), MT_ERR_CBOR_RANGE);

	len = mt_test_unhex("20", buf, sizeof(buf));
	mt_cbor_dec_init(&d, buf, len);
	assert_false(mt_cbor_get_uint(&d, &u));
	assert_int_equal(mt_cbor_dec_finish(&d), MT_ERR_CBOR_TYPE);

	/* latching: after the first failure every call fails with it */
	len = mt_test_unhex("6161 00 00", buf, sizeof(buf));
	mt_cbor_dec_init(&d, buf, len);
	assert_false(mt_cbor_get_uint(&d, &u));
	assert_int_equal(d.err, MT_ERR_CBOR_TYPE);
	assert_false(mt_cbor_get_uint(&d, &u));
	assert_false(mt_cbor_fail(&d, MT_ERR_CBOR_DEPTH));
	assert_int_equal(mt_cbor_dec_finish(&d), MT_ERR_CBOR_TYPE);

	/* string getters point into the input */
	len = mt_test_unhex("82 43010203 63616263", buf, sizeof(buf));
	mt_cbor_dec_init(&d, buf, len);
	const uint8_t *bp;
	const char *tp;
	size_t n;
	assert_true(mt_cbor_get_array(&d, &u));
	assert_int_equal(u, 2);
	assert_true(mt_cbor_get_bstr(&d, &bp, &n));
	assert_int_equal(n, 3);
	assert_ptr_equal(bp, buf + 2);
	assert_true(mt_cbor_get_tstr(&d, &tp, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(tp, "abc", 3);
	assert_int_equal(mt_cbor_dec_finish(&d), MT_OK);

	len = mt_test_unhex("a1 01 02", buf, sizeof(buf));
	mt_cbor_dec_init(&d, buf, len);
	assert_true(mt_cbor_get_map(&d, &u));
	assert_int_equal(u, 1);
	assert_false(mt_cbor_get_tag(&d, &u));
	assert_int_equal(mt_cbor_dec_finish(&d), MT_ERR_CBOR_TYPE);
}

/* ---- encoder ------------------------------------------------------------------- */

struct icase {
	uint64_t v;
	const char *uhex, *nhex; /* as uint, as negint (value -1 - v) */
};

static const struct icase int_bounds[] = {
	{0, "00", "20"},
	{23, "17", "37"},
	{24, "1818", "3818"},
	{255, "18ff", "38ff"},
	{256, "190100", "390100"},
	{65535, "19ffff", "39ffff"},
	{65536, "1a00010000", "3a00010000"},
	{UINT32_MAX, "1affffffff", "3affffffff"},
	{UINT64_C(1) << 32, "1b0000000100000000", "3b0000000100000000"},
	{UINT64_MAX, "1bffffffffffffffff", "3bffffffffffffffff"},
};

static void expect_enc(struct mt_cbor_enc *e, const char *want_hex)
{
	uint8_t want[64];
	size_t wn = mt_test_unhex(want_hex, want, sizeof(want)), len = 0;
	assert_int_equal(mt_cbor_enc_finish(e, &len), MT_OK);
	if (len != wn || memcmp(e->buf, want, wn) != 0) {
		char gh[160];
		mt_test_tohex(e->buf, len, gh, sizeof(gh));
		fail_msg("encoded %s, want %s", gh, want_hex);
	}
}

static void test_encoder_ints_and_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(int_bounds); i++) {
		uint8_t buf[16];
		struct mt_cbor_enc e;
		struct mt_cbor_dec d;
		struct mt_cbor_item it;
		size_t len;

		mt_cbor_enc_init(&e, buf, sizeof(buf));
		mt_cbor_put_uint(&e, int_bounds[i].v);
		expect_enc(&e, int_bounds[i].uhex);
		assert_int_equal(mt_cbor_head_len(int_bounds[i].v), e.len);
		assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_OK);
		mt_cbor_dec_init(&d, buf, len);
		assert_true(mt_cbor_next(&d, &it));
		assert_int_equal(mt_cbor_dec_finish(&d), MT_OK);
		assert_int_equal(it.type, MT_CBOR_UINT);
		assert_true(it.u == int_bounds[i].v);

		mt_cbor_enc_init(&e, buf, sizeof(buf));
		mt_cbor_put_negint(&e, int_bounds[i].v);
		expect_enc(&e, int_bounds[i].nhex);
		assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_OK);
		mt_cbor_dec_init(&d, buf, len);
		assert_true(mt_cbor_next(&d, &it));
		assert_int_equal(mt_cbor_dec_finish(&d), MT_OK);
		assert_int_equal(it.type, MT_CBOR_NEGINT);
		assert_true(it.u == int_bounds[i].v);
	}
	/* put_int: sign handled, INT64_MIN and INT64_MAX exact */
	static const struct {
		int64_t v;
		const char *hex;
	} s[] = {
		{0, "00"}, {-1, "20"}, {-24, "37"}, {-25, "3818"}, {-256, "38ff"},
		{-257, "390100"}, {INT64_MAX, "1b7fffffffffffffff"},
		{INT64_MIN, "3b7fffffffffffffff"},
	};
	for (size_t i = 0; i < N(s); i++) {
		uint8_t buf[16];
		struct mt_cbor_enc e;
		struct mt_cbor_dec d;
		int64_t back;
		mt_cbor_enc_init(&e, buf, sizeof(buf));
		mt_cbor_put_int(&e, s[i].v);
		expect_enc(&e, s[i].hex);
		mt_cbor_dec_init(&d, buf, e.len);
		assert_true(mt_cbor_get_int64(&d, &back));
		assert_true(back == s[i].v);
	}
}

static void test_encoder_heads(void **state)
{
	(void)state;
	uint8_t buf[400];
	struct mt_cbor_enc e;

	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_array(&e, 23);
	expect_enc(&e, "97");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_array(&e, 24);
	expect_enc(&e, "9818");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_map(&e, 16);
	expect_enc(&e, "b0");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_map(&e, 256);
	expect_enc(&e, "b90100");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_tag(&e, 18);
	expect_enc(&e, "d2");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_tag(&e, 24);
	expect_enc(&e, "d818");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_tag(&e, 65536);
	expect_enc(&e, "da00010000");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_bstr_head(&e, 256);
	expect_enc(&e, "590100");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_bstr(&e, (const uint8_t *)"\x01\x02", 2);
	expect_enc(&e, "420102");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_tstr(&e, "abcdefghijklmnopqrstuvwx", 24);
	expect_enc(&e, "7818 6162636465666768696a6b6c6d6e6f707172737475767778");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_bool(&e, false);
	mt_cbor_put_bool(&e, true);
	mt_cbor_put_null(&e);
	expect_enc(&e, "f4f5f6");
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_bstr(&e, NULL, 0);
	mt_cbor_put_tstr(&e, "", 0);
	expect_enc(&e, "4060");

	/* a composite written with the encoder validates as strict CBOR */
	static const uint64_t t18[] = {18};
	size_t len;
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_tag(&e, 18);
	mt_cbor_put_array(&e, 4);
	mt_cbor_put_map(&e, 3);
	mt_cbor_put_int(&e, 10);
	mt_cbor_put_float(&e, 97.0);
	mt_cbor_put_int(&e, -1);
	mt_cbor_put_tstr(&e, "\xe2\x82\xac", 3);
	mt_cbor_put_tstr(&e, "a", 1);
	mt_cbor_put_null(&e);
	mt_cbor_put_bstr_head(&e, 300);
	static const uint8_t zeros[300];
	mt_cbor_put_raw(&e, zeros, sizeof(zeros));
	mt_cbor_put_float(&e, 36.6);
	mt_cbor_put_uint(&e, UINT64_MAX);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_OK);
	assert_int_equal(buf[0], 0xd2);
	assert_int_equal(mt_cbor_validate(buf + 1, len - 1, NULL, 0), MT_OK);
	assert_int_equal(mt_cbor_validate(buf, len, t18, 1), MT_OK);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_ERR_CBOR_TAG);
}

static void test_encoder_buffer_latch(void **state)
{
	(void)state;
	uint8_t buf[16];
	struct mt_cbor_enc e;
	size_t len = 77;

	mt_cbor_enc_init(&e, buf, 0);
	mt_cbor_put_uint(&e, 0);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	assert_int_equal(len, 77);

	/* exactly enough is fine, one byte short is not */
	mt_cbor_enc_init(&e, buf, 3);
	mt_cbor_put_uint(&e, 256);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_OK);
	assert_int_equal(len, 3);
	mt_cbor_enc_init(&e, buf, 2);
	mt_cbor_put_uint(&e, 256);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);

	/* a later item that would fit does not clear the latch */
	mt_cbor_enc_init(&e, buf, 4);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_uint(&e, UINT32_MAX);
	mt_cbor_put_uint(&e, 2);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	assert_true(e.len <= e.cap);

	/* strings: the head fits but the bytes do not */
	mt_cbor_enc_init(&e, buf, 4);
	mt_cbor_put_tstr(&e, "abcd", 4);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	mt_cbor_enc_init(&e, buf, 4);
	mt_cbor_put_bstr(&e, (const uint8_t *)"abcd", 4);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	mt_cbor_enc_init(&e, buf, 5);
	mt_cbor_put_bstr(&e, (const uint8_t *)"abcd", 4);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_OK);

	/* floats of each width */
	mt_cbor_enc_init(&e, buf, 2);
	mt_cbor_put_float(&e, 97.0);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	mt_cbor_enc_init(&e, buf, 4);
	mt_cbor_put_float(&e, 100000.0);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	mt_cbor_enc_init(&e, buf, 8);
	mt_cbor_put_float(&e, 0.1);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);

	/* the other heads */
	mt_cbor_enc_init(&e, buf, 1);
	mt_cbor_put_array(&e, 24);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	mt_cbor_enc_init(&e, buf, 1);
	mt_cbor_put_map(&e, 24);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	mt_cbor_enc_init(&e, buf, 1);
	mt_cbor_put_tag(&e, 24);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	mt_cbor_enc_init(&e, buf, 0);
	mt_cbor_put_null(&e);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	mt_cbor_enc_init(&e, buf, 0);
	mt_cbor_put_bool(&e, true);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);
	mt_cbor_enc_init(&e, buf, 2);
	mt_cbor_put_raw(&e, (const uint8_t *)"abc", 3);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_ERR_BUFFER);

	/* finish may be asked without a length */
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_uint(&e, 1);
	assert_int_equal(mt_cbor_enc_finish(&e, NULL), MT_OK);
}

static void test_head_len(void **state)
{
	(void)state;
	assert_int_equal(mt_cbor_head_len(0), 1);
	assert_int_equal(mt_cbor_head_len(23), 1);
	assert_int_equal(mt_cbor_head_len(24), 2);
	assert_int_equal(mt_cbor_head_len(255), 2);
	assert_int_equal(mt_cbor_head_len(256), 3);
	assert_int_equal(mt_cbor_head_len(65535), 3);
	assert_int_equal(mt_cbor_head_len(65536), 5);
	assert_int_equal(mt_cbor_head_len(UINT32_MAX), 5);
	assert_int_equal(mt_cbor_head_len(UINT64_C(1) << 32), 9);
	assert_int_equal(mt_cbor_head_len(UINT64_MAX), 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shortest_heads_accepted),
		cmocka_unit_test(test_int_values_decoded),
		cmocka_unit_test(test_non_shortest_heads_refused),
		cmocka_unit_test(test_indefinite_refused),
		cmocka_unit_test(test_reserved_additional_info_refused),
		cmocka_unit_test(test_float_encoder_shortest),
		cmocka_unit_test(test_float_decoder_accepts_shortest),
		cmocka_unit_test(test_float_longer_forms_refused),
		cmocka_unit_test(test_float_nonfinite_refused),
		cmocka_unit_test(test_float_encoder_refuses_nonfinite),
		cmocka_unit_test(test_float_round_trip_random),
		cmocka_unit_test(test_simple_values),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_depth_skip),
		cmocka_unit_test(test_map_size),
		cmocka_unit_test(test_map_keys),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_tags_allowed_list),
		cmocka_unit_test(test_typed_getters),
		cmocka_unit_test(test_encoder_ints_and_round_trip),
		cmocka_unit_test(test_encoder_heads),
		cmocka_unit_test(test_encoder_buffer_latch),
		cmocka_unit_test(test_head_len),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
