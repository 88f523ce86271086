/*
 * cbor.c — strict CBOR decoding and deterministic encoding over libcbor.
 *
 * MTP/1 treats every encoding choice as part of the message: two encoders
 * that disagree on a byte would produce signatures that only one of them can
 * reproduce, and a decoder that tolerates alternative forms lets an attacker
 * make "the same" packet in many byte patterns (duplicates that dodge a
 * byte-level de-duplication, keys that a lax parser reads twice).  So the
 * decoder accepts exactly one encoding per value (protocol.md, "Strict
 * CBOR"), and the encoder produces exactly that one.
 *
 * Decoding.  libcbor's streaming decoder (cbor_stream_decode) decodes one
 * head per call and reports it through callbacks; it never allocates.  Before
 * handing it a byte we screen the initial byte ourselves — reserved
 * additional-information values, indefinite lengths and the break code,
 * simple values other than false/true/null — and we bound string lengths
 * against the remaining input, so libcbor only ever sees heads we accept.
 * After the callback we check that the head was in its shortest form (the
 * additional information tells its width) and that floats are finite and in
 * the shortest width that keeps their value.  Text strings must be UTF-8.
 *
 * Structure — nesting depth, map size, key types, key order and uniqueness,
 * allowed tags, trailing bytes — is the job of mt_cbor_validate(), which walks
 * one whole item.  Schema decoders (COSE, messages) call it first and then
 * pull items with the typed getters, so their code reads like the schema.
 *
 * Errors latch (STYLE.md): the first failure is kept in d->err / e->err and
 * every later call fails with it.
 */
#include "medtrust/mt_cbor.h"

#include <cbor.h>
#include <math.h>
#include <string.h>

/* ---- decoding ---------------------------------------------------------- */

/* What the libcbor callbacks saw for one head. */
struct head {
	int kind; /* 0 none, 1 uint, 2 negint, 3 bstr, 4 tstr, 5 array, 6 map,
	             7 tag, 8 float16, 9 float32, 10 float64, 11 false, 12 true,
	             13 null, 14 other (refused) */
	uint64_t u;
	double f;
	const uint8_t *ptr;
	size_t n;
};

#define H(it) ((struct head *)(it))
static void cb_u8(void *c, uint8_t v) { H(c)->kind = 1; H(c)->u = v; }
static void cb_u16(void *c, uint16_t v) { H(c)->kind = 1; H(c)->u = v; }
static void cb_u32(void *c, uint32_t v) { H(c)->kind = 1; H(c)->u = v; }
static void cb_u64(void *c, uint64_t v) { H(c)->kind = 1; H(c)->u = v; }
static void cb_n8(void *c, uint8_t v) { H(c)->kind = 2; H(c)->u = v; }
static void cb_n16(void *c, uint16_t v) { H(c)->kind = 2; H(c)->u = v; }
static void cb_n32(void *c, uint32_t v) { H(c)->kind = 2; H(c)->u = v; }
static void cb_n64(void *c, uint64_t v) { H(c)->kind = 2; H(c)->u = v; }
static void cb_bstr(void *c, cbor_data p, uint64_t n)
{
	H(c)->kind = 3; H(c)->ptr = p; H(c)->n = (size_t)n;
}
static void cb_tstr(void *c, cbor_data p, uint64_t n)
{
	H(c)->kind = 4; H(c)->ptr = p; H(c)->n = (size_t)n;
}
static void cb_array(void *c, uint64_t n) { H(c)->kind = 5; H(c)->u = n; }
static void cb_map(void *c, uint64_t n) { H(c)->kind = 6; H(c)->u = n; }
static void cb_tag(void *c, uint64_t t) { H(c)->kind = 7; H(c)->u = t; }
static void cb_f2(void *c, float v) { H(c)->kind = 8; H(c)->f = v; }
static void cb_f4(void *c, float v) { H(c)->kind = 9; H(c)->f = v; }
static void cb_f8(void *c, double v) { H(c)->kind = 10; H(c)->f = v; }
static void cb_bool(void *c, bool v) { H(c)->kind = v ? 12 : 11; }
static void cb_null(void *c) { H(c)->kind = 13; }
static void cb_other(void *c) { H(c)->kind = 14; }
#undef H

static const struct cbor_callbacks strict_callbacks = {
	.uint8 = cb_u8, .uint16 = cb_u16, .uint32 = cb_u32, .uint64 = cb_u64,
	.negint8 = cb_n8, .negint16 = cb_n16, .negint32 = cb_n32, .negint64 = cb_n64,
	.byte_string_start = cb_other, .byte_string = cb_bstr,
	.string = cb_tstr, .string_start = cb_other,
	.indef_array_start = cb_other, .array_start = cb_array,
	.indef_map_start = cb_other, .map_start = cb_map,
	.tag = cb_tag,
	.float2 = cb_f2, .float4 = cb_f4, .float8 = cb_f8,
	.undefined = cb_other, .null = cb_null, .boolean = cb_bool,
	.indef_break = cb_other,
};

/* Is v exactly representable in a binary float with `mant` significand bits
 * (including the hidden one), minimum normal exponent `emin` and maximum
 * finite value `max`?  Scaling by powers of two is exact, so the test is
 * exact for every finite double. */
static bool fits_float(double v, int mant, int emin, double max)
{
	if (v == 0.0)
		return true; /* ±0 exist in every width */
	double a = fabs(v);
	if (a > max)
		return false;
	int e;
	(void)frexp(a, &e); /* a = m × 2^e, 0.5 ≤ m < 1 */
	int lsb = (e - 1 >= emin) ? e - mant : emin - mant + 1;
	double scaled = ldexp(a, -lsb);
	return scaled == floor(scaled);
}

static bool fits_half(double v) { return fits_float(v, 11, -14, 65504.0); }
static bool fits_single(double v)
{
	return fits_float(v, 24, -126, 3.4028234663852886e38);
}

void mt_cbor_dec_init(struct mt_cbor_dec *d, const uint8_t *buf, size_t len)
{
	d->buf = buf;
	d->len = len;
	d->pos = 0;
	d->err = MT_OK;
}

bool mt_cbor_fail(struct mt_cbor_dec *d, enum mt_err e)
{
	if (d->err == MT_OK)
		d->err = e;
	return false;
}

/* The argument of a head starting at p (n bytes available), for bounding
 * string lengths before libcbor sees them. */
static bool head_arg(const uint8_t *p, size_t n, uint64_t *arg, size_t *hlen)
{
	uint8_t ai = p[0] & 31;
	size_t w = ai < 24 ? 0 : ai == 24 ? 1 : ai == 25 ? 2 : ai == 26 ? 4 : 8;
	if (n < 1 + w)
		return false;
	uint64_t v = ai < 24 ? ai : 0;
	for (size_t i = 0; i < w; i++)
		v = (v << 8) | p[1 + i];
	*arg = v;
	*hlen = 1 + w;
	return true;
}

bool mt_cbor_next(struct mt_cbor_dec *d, struct mt_cbor_item *it)
{
	if (d->err != MT_OK)
		return false;
	if (d->pos >= d->len)
		return mt_cbor_fail(d, MT_ERR_CBOR_TRUNCATED);

	const uint8_t *p = d->buf + d->pos;
	size_t avail = d->len - d->pos;
	uint8_t ib = p[0], major = ib >> 5, ai = ib & 31;

	if (ai >= 28 && ai <= 30)
		return mt_cbor_fail(d, MT_ERR_CBOR_MALFORMED);
	if (ai == 31)
		return mt_cbor_fail(d, (major >= 2 && major <= 5) || major == 7
		                               ? MT_ERR_CBOR_INDEFINITE
		                               : MT_ERR_CBOR_MALFORMED);
	if (major == 7 && !(ib == 0xf4 || ib == 0xf5 || ib == 0xf6 || ib == 0xf9 ||
	                    ib == 0xfa || ib == 0xfb))
		return mt_cbor_fail(d, MT_ERR_CBOR_SIMPLE);

	uint64_t arg;
	size_t hlen;
	if (!head_arg(p, avail, &arg, &hlen))
		return mt_cbor_fail(d, MT_ERR_CBOR_TRUNCATED);
	if ((major == 2 || major == 3) && arg > avail - hlen)
		return mt_cbor_fail(d, MT_ERR_CBOR_TRUNCATED);

	struct head h = {0};
	struct cbor_decoder_result r;
	if (major == 6 && ai < 24) {
		/* libcbor 0.8 (Debian 12) refuses one-byte tag heads 6..20 in its
		 * streaming decoder as "unassigned" — COSE's 16 and 18 among them —
		 * so these heads, whose value is the initial byte itself, are
		 * decoded here. */
		h.kind = 7;
		h.u = ai;
		r.status = CBOR_DECODER_FINISHED;
		r.read = 1;
	} else {
		r = cbor_stream_decode(p, avail, &strict_callbacks, &h);
	}
	if (r.status == CBOR_DECODER_NEDATA)
		return mt_cbor_fail(d, MT_ERR_CBOR_TRUNCATED);
	if (r.status != CBOR_DECODER_FINISHED || h.kind == 0 || h.kind == 14 ||
	    r.read == 0 || r.read > avail)
		return mt_cbor_fail(d, MT_ERR_CBOR_MALFORMED);

	/* Shortest head: the width the additional information chose must be
	 * the smallest that holds the argument. */
	if (major != 7) {
		bool shortest = ai < 24 || (ai == 24 && arg >= 24) ||
		                (ai == 25 && arg > 0xff) || (ai == 26 && arg > 0xffff) ||
		                (ai == 27 && arg > 0xffffffffu);
		if (!shortest)
			return mt_cbor_fail(d, MT_ERR_CBOR_NOT_SHORTEST);
	}

	memset(it, 0, sizeof(*it));
	it->start = d->pos;
	it->end = d->pos + r.read;
	switch (h.kind) {
	case 1: it->type = MT_CBOR_UINT; it->u = h.u; break;
	case 2: it->type = MT_CBOR_NEGINT; it->u = h.u; break;
	case 3: it->type = MT_CBOR_BSTR; it->ptr = h.ptr; it->u = h.n; break;
	case 4:
		if (!mt_utf8_valid(h.ptr, h.n))
			return mt_cbor_fail(d, MT_ERR_CBOR_UTF8);
		it->type = MT_CBOR_TSTR; it->ptr = h.ptr; it->u = h.n;
		break;
	case 5: it->type = MT_CBOR_ARRAY; it->u = h.u; break;
	case 6: it->type = MT_CBOR_MAP; it->u = h.u; break;
	case 7: it->type = MT_CBOR_TAG; it->u = h.u; break;
	case 8: case 9: case 10:
		if (!isfinite(h.f))
			return mt_cbor_fail(d, MT_ERR_CBOR_FLOAT_NONFINITE);
		if ((h.kind == 9 && fits_half(h.f)) ||
		    (h.kind == 10 && fits_single(h.f)))
			return mt_cbor_fail(d, MT_ERR_CBOR_FLOAT_FORM);
		it->type = MT_CBOR_FLOAT; it->f = h.f;
		break;
	case 11: it->type = MT_CBOR_FALSE; break;
	case 12: it->type = MT_CBOR_TRUE; break;
	case 13: it->type = MT_CBOR_NULL; break;
	default: return mt_cbor_fail(d, MT_ERR_CBOR_MALFORMED);
	}
	/* A container cannot hold more items than bytes remain. */
	if ((it->type == MT_CBOR_ARRAY && it->u > d->len - it->end) ||
	    (it->type == MT_CBOR_MAP && it->u > (d->len - it->end) / 2))
		return mt_cbor_fail(d, MT_ERR_CBOR_TRUNCATED);
	d->pos = it->end;
	return true;
}

/* `depth` = containers around this item; a container at depth 8 is the
 * deepest allowed, the same rule as mt_cbor_validate(). */
static bool skip_item(struct mt_cbor_dec *d, int depth)
{
	struct mt_cbor_item it;
	if (!mt_cbor_next(d, &it))
		return false;
	uint64_t n;
	if (it.type == MT_CBOR_ARRAY)
		n = it.u;
	else if (it.type == MT_CBOR_MAP)
		n = it.u * 2;
	else if (it.type == MT_CBOR_TAG)
		n = 1;
	else
		return true;
	if (depth + 1 > MT_CBOR_MAX_DEPTH)
		return mt_cbor_fail(d, MT_ERR_CBOR_DEPTH);
	for (uint64_t i = 0; i < n; i++)
		if (!skip_item(d, depth + 1))
			return false;
	return true;
}

bool mt_cbor_skip(struct mt_cbor_dec *d) { return skip_item(d, 0); }

static bool get_type(struct mt_cbor_dec *d, struct mt_cbor_item *it, enum mt_cbor_type t)
{
	if (!mt_cbor_next(d, it))
		return false;
	if (it->type != t)
		return mt_cbor_fail(d, MT_ERR_CBOR_TYPE);
	return true;
}

bool mt_cbor_get_uint(struct mt_cbor_dec *d, uint64_t *v)
{
	struct mt_cbor_item it;
	if (!get_type(d, &it, MT_CBOR_UINT))
		return false;
	*v = it.u;
	return true;
}

bool mt_cbor_get_int64(struct mt_cbor_dec *d, int64_t *v)
{
	struct mt_cbor_item it;
	if (!mt_cbor_next(d, &it))
		return false;
	if (it.type != MT_CBOR_UINT && it.type != MT_CBOR_NEGINT)
		return mt_cbor_fail(d, MT_ERR_CBOR_TYPE);
	if (it.u > (uint64_t)INT64_MAX)
		return mt_cbor_fail(d, MT_ERR_CBOR_RANGE);
	*v = it.type == MT_CBOR_UINT ? (int64_t)it.u : -1 - (int64_t)it.u;
	return true;
}

bool mt_cbor_get_bstr(struct mt_cbor_dec *d, const uint8_t **p, size_t *n)
{
	struct mt_cbor_item it;
	if (!get_type(d, &it, MT_CBOR_BSTR))
		return false;
	*p = it.ptr;
	*n = (size_t)it.u;
	return true;
}

bool mt_cbor_get_tstr(struct mt_cbor_dec *d, const char **p, size_t *n)
{
	struct mt_cbor_item it;
	if (!get_type(d, &it, MT_CBOR_TSTR))
		return false;
	*p = (const char *)it.ptr;
	*n = (size_t)it.u;
	return true;
}

bool mt_cbor_get_array(struct mt_cbor_dec *d, uint64_t *count)
{
	struct mt_cbor_item it;
	if (!get_type(d, &it, MT_CBOR_ARRAY))
		return false;
	*count = it.u;
	return true;
}

bool mt_cbor_get_map(struct mt_cbor_dec *d, uint64_t *pairs)
{
	struct mt_cbor_item it;
	if (!get_type(d, &it, MT_CBOR_MAP))
		return false;
	*pairs = it.u;
	return true;
}

bool mt_cbor_get_tag(struct mt_cbor_dec *d, uint64_t *tag)
{
	struct mt_cbor_item it;
	if (!get_type(d, &it, MT_CBOR_TAG))
		return false;
	*tag = it.u;
	return true;
}

enum mt_err mt_cbor_dec_finish(const struct mt_cbor_dec *d)
{
	if (d->err != MT_OK)
		return d->err;
	return d->pos == d->len ? MT_OK : MT_ERR_CBOR_TRAILING;
}

struct vctx {
	struct mt_cbor_dec d;
	const uint64_t *tags;
	size_t n_tags;
};

/* Bytewise lexicographic comparison of two encoded keys (RFC 8949 §4.2.1). */
static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	size_t n = an < bn ? an : bn;
	int c = memcmp(a, b, n);
	if (c != 0)
		return c;
	return an < bn ? -1 : an > bn ? 1 : 0;
}

static bool validate_item(struct vctx *v, int depth)
{
	struct mt_cbor_dec *d = &v->d;
	struct mt_cbor_item it;
	if (!mt_cbor_next(d, &it))
		return false;
	switch (it.type) {
	case MT_CBOR_ARRAY:
		if (depth + 1 > MT_CBOR_MAX_DEPTH)
			return mt_cbor_fail(d, MT_ERR_CBOR_DEPTH);
		for (uint64_t i = 0; i < it.u; i++)
			if (!validate_item(v, depth + 1))
				return false;
		return true;
	case MT_CBOR_MAP: {
		if (depth + 1 > MT_CBOR_MAX_DEPTH)
			return mt_cbor_fail(d, MT_ERR_CBOR_DEPTH);
		if (it.u > MT_CBOR_MAX_MAP)
			return mt_cbor_fail(d, MT_ERR_CBOR_MAP_SIZE);
		size_t prev_s = 0, prev_e = 0;
		for (uint64_t i = 0; i < it.u; i++) {
			struct mt_cbor_item k;
			if (!mt_cbor_next(d, &k))
				return false;
			if (k.type != MT_CBOR_UINT && k.type != MT_CBOR_NEGINT &&
			    k.type != MT_CBOR_TSTR)
				return mt_cbor_fail(d, MT_ERR_CBOR_KEY_TYPE);
			if (i > 0) {
				int c = key_cmp(d->buf + prev_s, prev_e - prev_s,
				                d->buf + k.start, k.end - k.start);
				if (c == 0)
					return mt_cbor_fail(d, MT_ERR_CBOR_KEY_DUP);
				if (c > 0)
					return mt_cbor_fail(d, MT_ERR_CBOR_KEY_ORDER);
			}
			prev_s = k.start;
			prev_e = k.end;
			if (!validate_item(v, depth + 1))
				return false;
		}
		return true;
	}
	case MT_CBOR_TAG: {
		bool ok = false;
		for (size_t i = 0; i < v->n_tags; i++)
			ok = ok || v->tags[i] == it.u;
		if (!ok)
			return mt_cbor_fail(d, MT_ERR_CBOR_TAG);
		if (depth + 1 > MT_CBOR_MAX_DEPTH)
			return mt_cbor_fail(d, MT_ERR_CBOR_DEPTH);
		return validate_item(v, depth + 1);
	}
	default:
		return true;
	}
}

enum mt_err mt_cbor_validate(const uint8_t *buf, size_t len, const uint64_t *tags,
                             size_t n_tags)
{
	struct vctx v = {.tags = tags, .n_tags = n_tags};
	mt_cbor_dec_init(&v.d, buf, len);
	validate_item(&v, 0);
	return mt_cbor_dec_finish(&v.d);
}

bool mt_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			len = 2; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* ---- encoding ---------------------------------------------------------- */

void mt_cbor_enc_init(struct mt_cbor_enc *e, uint8_t *buf, size_t cap)
{
	e->buf = buf;
	e->cap = cap;
	e->len = 0;
	e->err = MT_OK;
}

/* Account for `n` bytes written by a libcbor encoder (0 = did not fit). */
static void wrote(struct mt_cbor_enc *e, size_t n)
{
	if (n == 0)
		e->err = MT_ERR_BUFFER;
	else
		e->len += n;
}

#define ROOM(e) ((e)->buf + (e)->len), ((e)->cap - (e)->len)

void mt_cbor_put_uint(struct mt_cbor_enc *e, uint64_t v)
{
	if (e->err == MT_OK)
		wrote(e, cbor_encode_uint(v, ROOM(e)));
}

void mt_cbor_put_negint(struct mt_cbor_enc *e, uint64_t n)
{
	if (e->err == MT_OK)
		wrote(e, cbor_encode_negint(n, ROOM(e)));
}

void mt_cbor_put_int(struct mt_cbor_enc *e, int64_t v)
{
	if (v >= 0)
		mt_cbor_put_uint(e, (uint64_t)v);
	else
		mt_cbor_put_negint(e, (uint64_t)(-(v + 1)));
}

void mt_cbor_put_bstr_head(struct mt_cbor_enc *e, size_t n)
{
	if (e->err == MT_OK)
		wrote(e, cbor_encode_bytestring_start(n, ROOM(e)));
}

void mt_cbor_put_raw(struct mt_cbor_enc *e, const uint8_t *p, size_t n)
{
	if (e->err != MT_OK)
		return;
	if (e->cap - e->len < n) {
		e->err = MT_ERR_BUFFER;
		return;
	}
	if (n > 0)
		memmove(e->buf + e->len, p, n);
	e->len += n;
}

void mt_cbor_put_bstr(struct mt_cbor_enc *e, const uint8_t *p, size_t n)
{
	mt_cbor_put_bstr_head(e, n);
	mt_cbor_put_raw(e, p, n);
}

void mt_cbor_put_tstr(struct mt_cbor_enc *e, const char *p, size_t n)
{
	if (e->err == MT_OK)
		wrote(e, cbor_encode_string_start(n, ROOM(e)));
	mt_cbor_put_raw(e, (const uint8_t *)p, n);
}

void mt_cbor_put_array(struct mt_cbor_enc *e, size_t count)
{
	if (e->err == MT_OK)
		wrote(e, cbor_encode_array_start(count, ROOM(e)));
}

void mt_cbor_put_map(struct mt_cbor_enc *e, size_t pairs)
{
	if (e->err == MT_OK)
		wrote(e, cbor_encode_map_start(pairs, ROOM(e)));
}

void mt_cbor_put_tag(struct mt_cbor_enc *e, uint64_t tag)
{
	if (e->err == MT_OK)
		wrote(e, cbor_encode_tag(tag, ROOM(e)));
}

/* binary16 bits of a value known to fit exactly (fits_half). */
static uint16_t half_bits(double v)
{
	uint16_t sign = signbit(v) ? 0x8000 : 0;
	double a = fabs(v);
	if (a == 0.0)
		return sign;
	int e;
	(void)frexp(a, &e);
	if (e - 1 >= -14) { /* normal: a = 1.m × 2^(e-1) */
		uint16_t mant = (uint16_t)(ldexp(a, 11 - e) - 1024.0);
		return (uint16_t)(sign | (uint16_t)((e - 1 + 15) << 10) | mant);
	}
	return (uint16_t)(sign | (uint16_t)ldexp(a, 24)); /* subnormal */
}

void mt_cbor_put_float(struct mt_cbor_enc *e, double v)
{
	if (e->err != MT_OK)
		return;
	if (!isfinite(v)) {
		e->err = MT_ERR_CBOR_FLOAT_NONFINITE;
		return;
	}
	if (fits_half(v)) {
		/* Written by hand rather than with cbor_encode_half(), which
		 * rounds through float and mishandles some subnormals in the
		 * libcbor versions Debian ships; v fits exactly here. */
		uint16_t b = half_bits(v);
		uint8_t raw[3] = {0xf9, (uint8_t)(b >> 8), (uint8_t)b};
		mt_cbor_put_raw(e, raw, 3);
	} else if (fits_single(v)) {
		wrote(e, cbor_encode_single((float)v, ROOM(e)));
	} else {
		wrote(e, cbor_encode_double(v, ROOM(e)));
	}
}

void mt_cbor_put_bool(struct mt_cbor_enc *e, bool v)
{
	if (e->err == MT_OK)
		wrote(e, cbor_encode_bool(v, ROOM(e)));
}

void mt_cbor_put_null(struct mt_cbor_enc *e)
{
	if (e->err == MT_OK)
		wrote(e, cbor_encode_null(ROOM(e)));
}

size_t mt_cbor_head_len(uint64_t n)
{
	return n < 24 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : n <= 0xffffffffu ? 5 : 9;
}

enum mt_err mt_cbor_enc_finish(const struct mt_cbor_enc *e, size_t *len)
{
	if (e->err != MT_OK)
		return e->err;
	if (len)
		*len = e->len;
	return MT_OK;
}
