/*
 * test_message.c — the MTP/1 message of protocol.md §5 and the plausibility
 * ranges of clinical.md §1 (mt_message.h).
 *
 * The message is a closed schema: which keys a message must and may carry
 * depends on its `typ`, every key is known at every level, and every field
 * has a type and a bound.  A message that breaks any of it is refused at
 * stage 10 (`message`, MT_ERR_PKT_MESSAGE); one that is well formed but
 * clinically impossible is refused later, at stage 14 (`implausible`,
 * MT_ERR_PKT_IMPLAUSIBLE), by a separate call — so the tests keep the two
 * apart and check that each refusal comes from the right stage.
 *
 * Inputs that the encoder would refuse are written with the raw CBOR encoder
 * (or as hex), always in strict, correctly ordered CBOR, so that a refusal
 * proves the schema check and not an accident of key order; the tests assert
 * that mt_cbor_validate() accepts those inputs.  Each bound is tested at its
 * edge from both sides (64/65 bytes of device id, 2^63 − 1 / 2^63 counter,
 * 256/257 bytes of text, 1024/1025 observations, ...).  Where §5 sets no
 * bound the bound is CBOR's own: an observation's t and st.rssi (`int`) are
 * accepted and re-encoded byte for byte from −2^64 to 2^64 − 1 (t only
 * ≤ 0), and refused as floats.
 *
 * The worked vectors of ../shared/vectors/mtp1/vectors.json (`message`,
 * `alert_message`) are copied here as hex, so the test does not depend on
 * that directory: they must decode to the values the vector README names and
 * re-encode byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_message.h"
#include "mt_testutil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* MDC codes and units of clinical.md §1 */
#define HR 147842u
#define PULSE 149530u
#define SPO2 150456u
#define SYS 150021u
#define DIA 150022u
#define MEAN 150023u
#define TEMP 150364u
#define RESP 151562u
#define GLU 160184u
#define ECG_II 131330u
#define INHALER 8532992u
#define U_BPM 264864u
#define U_PCT 262688u
#define U_MMHG 266016u
#define U_DEGC 268192u
#define U_RPM 264928u
#define U_MGDL 264274u
#define U_MV 266418u
#define U_DIMLESS 262656u

/* ---- helpers --------------------------------------------------------------- */

static uint8_t buf[65536];
static uint8_t buf2[65536];
static struct mt_obs obs_buf[MT_OBS_MAX + 2];

/* Decode `p` and compare the result with `want`; print the input on a
 * mismatch.  Returns 1 on mismatch so that tables can list them all. */
static size_t expect_decode(const char *label, const uint8_t *p, size_t n, enum mt_err want)
{
	struct mt_message m;
	const char *why = NULL;
	enum mt_err got = mt_message_decode(p, n, &m, obs_buf, MT_OBS_MAX, &why);
	if (got != want) {
		print_error("%s: want %d (%s), got %d (%s)%s%s\n", label, (int)want,
		            mt_err_str(want), (int)got, mt_err_str(got), why ? ": " : "",
		            why ? why : "");
		mt_test_print_hex("  input", p, n);
		return 1;
	}
	if (got != MT_OK && why == NULL) {
		print_error("%s: refused without a reason\n", label);
		return 1;
	}
	return 0;
}

/* `prefix` and `tail` joined as hex, checked to be strict CBOR (so that a
 * refusal is the schema's) and then expect_decode()d.  Returns 1 on a
 * mismatch, like expect_decode(). */
static size_t expect_decode_hex(const char *label, const char *prefix, const char *tail,
                                enum mt_err want)
{
	char h[256];
	uint8_t in[128];
	assert_true((size_t)snprintf(h, sizeof(h), "%s %s", prefix, tail) < sizeof(h));
	size_t n = mt_test_unhex(h, in, sizeof(in));
	if (mt_cbor_validate(in, n, NULL, 0) != MT_OK) {
		print_error("%s: test input is not strict CBOR\n", label);
		return 1;
	}
	return expect_decode(label, in, n, want);
}

/* Raw builders (mt_cbor_enc) for messages the encoder would refuse. */
static void put_common(struct mt_cbor_enc *e, size_t pairs, uint64_t typ)
{
	mt_cbor_put_map(e, pairs);
	mt_cbor_put_uint(e, 1);
	mt_cbor_put_tstr(e, "dev-1", 5);
	mt_cbor_put_uint(e, 2);
	mt_cbor_put_uint(e, 42);
	mt_cbor_put_uint(e, 3);
	mt_cbor_put_uint(e, UINT64_C(1700000000000));
	mt_cbor_put_uint(e, 4);
	mt_cbor_put_uint(e, typ);
}

static void put_scalar(struct mt_cbor_enc *e, int64_t t, uint64_t code, int64_t v, uint64_t unit)
{
	mt_cbor_put_array(e, 4);
	mt_cbor_put_int(e, t);
	mt_cbor_put_uint(e, code);
	mt_cbor_put_int(e, v);
	mt_cbor_put_uint(e, unit);
}

/* A value for optional key k (5..8) that is valid on its own. */
static void put_group(struct mt_cbor_enc *e, unsigned k)
{
	mt_cbor_put_uint(e, k);
	switch (k) {
	case 5:
		mt_cbor_put_array(e, 1);
		put_scalar(e, 0, SPO2, 97, U_PCT);
		break;
	case 6:
		mt_cbor_put_map(e, 1);
		mt_cbor_put_uint(e, 1);
		mt_cbor_put_uint(e, 50);
		break;
	case 7:
		mt_cbor_put_map(e, 2);
		mt_cbor_put_uint(e, 1);
		mt_cbor_put_uint(e, 7);
		mt_cbor_put_uint(e, 2);
		mt_cbor_put_uint(e, 0);
		break;
	case 8:
		mt_cbor_put_map(e, 2);
		mt_cbor_put_uint(e, 1);
		mt_cbor_put_uint(e, 1001);
		mt_cbor_put_uint(e, 2);
		mt_cbor_put_uint(e, 3);
		break;
	}
}

/* A message with the common keys (those in `common`, bits 1..4) and the
 * groups in `groups` (bits 5..8). */
static size_t build(uint64_t typ, unsigned common, unsigned groups)
{
	struct mt_cbor_enc e;
	size_t len, pairs = 0;
	for (unsigned k = 1; k <= 8; k++)
		pairs += ((common | groups) >> k) & 1;
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_map(&e, pairs);
	if (common & (1u << 1)) {
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_tstr(&e, "dev-1", 5);
	}
	if (common & (1u << 2)) {
		mt_cbor_put_uint(&e, 2);
		mt_cbor_put_uint(&e, 42);
	}
	if (common & (1u << 3)) {
		mt_cbor_put_uint(&e, 3);
		mt_cbor_put_uint(&e, UINT64_C(1700000000000));
	}
	if (common & (1u << 4)) {
		mt_cbor_put_uint(&e, 4);
		mt_cbor_put_uint(&e, typ);
	}
	for (unsigned k = 5; k <= 8; k++)
		if (groups & (1u << k))
			put_group(&e, k);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_OK);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
	return len;
}

#define COMMON ((1u << 1) | (1u << 2) | (1u << 3) | (1u << 4))
/* What put_common(e, 5, typ) writes, as hex, up to typ's value:
 * {1: "dev-1", 2: 42, 3: 1700000000000, 4: ... */
#define HEX_COMMON_42 "a5 01 656465762d31 02 182a 03 1b0000018bcfe56800 04"

static size_t finish(struct mt_cbor_enc *e)
{
	size_t len;
	assert_int_equal(mt_cbor_enc_finish(e, &len), MT_OK);
	/* the inputs are strict CBOR: a refusal is the schema's */
	assert_int_equal(mt_cbor_validate(e->buf, len, NULL, 0), MT_OK);
	return len;
}

static void init_msg(struct mt_message *m, uint64_t typ)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->dev, "dev-1", 6);
	m->dev_len = 5;
	m->ctr = 42;
	m->ts = UINT64_C(1700000000000);
	m->typ = typ;
}

/* A vitals message (init_msg) carrying the n observations at o. */
static void init_vitals(struct mt_message *m, struct mt_obs *o, size_t n)
{
	init_msg(m, MT_TYP_VITALS);
	m->has = MT_MSG_OBS;
	m->obs = o;
	m->n_obs = n;
}

static void scalar(struct mt_obs *o, int64_t t, uint32_t code, uint32_t unit)
{
	memset(o, 0, sizeof(*o));
	mt_num_set_int(&o->t, t);
	o->code = code;
	o->unit = unit;
	mt_num_set_int(&o->value, 0);
}

static bool num_eq(const struct mt_num *a, const struct mt_num *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == MT_NUM_FLOAT)
		return memcmp(&a->f, &b->f, sizeof(double)) == 0;
	return a->u == b->u;
}

/* An integer mt_num that fits int64, as an int64 (fails the test otherwise). */
static int64_t num_i64(const struct mt_num *n)
{
	int64_t v = 0;
	assert_true(mt_num_get_int64(n, &v));
	return v;
}

static void assert_text(const char *p, size_t n, const char *want, size_t wn)
{
	assert_non_null(p);
	assert_int_equal(n, wn);
	assert_memory_equal(p, want, wn);
}

/* Compare two messages field by field. */
static void assert_msg_equal(const struct mt_message *a, const struct mt_message *b)
{
	assert_int_equal(a->dev_len, b->dev_len);
	assert_memory_equal(a->dev, b->dev, a->dev_len);
	assert_int_equal(a->dev[a->dev_len], '\0');
	assert_true(a->ctr == b->ctr);
	assert_true(a->ts == b->ts);
	assert_true(a->typ == b->typ);
	assert_int_equal(a->has, b->has);
	if (a->has & MT_MSG_OBS) {
		assert_int_equal(a->n_obs, b->n_obs);
		for (size_t i = 0; i < a->n_obs; i++) {
			const struct mt_obs *x = &a->obs[i], *y = &b->obs[i];
			assert_int_equal(x->waveform, y->waveform);
			assert_true(num_eq(&x->t, &y->t));
			assert_int_equal(x->code, y->code);
			assert_int_equal(x->unit, y->unit);
			if (x->waveform) {
				assert_true(x->period_us == y->period_us);
				assert_true(num_eq(&x->scale, &y->scale));
				assert_int_equal(x->samples_len, y->samples_len);
				assert_memory_equal(x->samples, y->samples, x->samples_len);
				assert_int_equal(x->n_samples, y->n_samples);
			} else {
				assert_true(num_eq(&x->value, &y->value));
				assert_int_equal(x->has_places, y->has_places);
				if (x->has_places)
					assert_int_equal(x->places, y->places);
			}
		}
	}
	if (a->has & MT_MSG_ST) {
		assert_int_equal(a->st.has, b->st.has);
		if (a->st.has & MT_ST_BATTERY)
			assert_true(a->st.battery == b->st.battery);
		if (a->st.has & MT_ST_FW)
			assert_text(a->st.fw, a->st.fw_len, b->st.fw, b->st.fw_len);
		if (a->st.has & MT_ST_QUEUE)
			assert_true(a->st.queue == b->st.queue);
		if (a->st.has & MT_ST_UPTIME)
			assert_true(a->st.uptime == b->st.uptime);
		if (a->st.has & MT_ST_RSSI)
			assert_true(num_eq(&a->st.rssi, &b->st.rssi));
	}
	if (a->has & MT_MSG_ACK) {
		assert_true(a->ack.ctr == b->ack.ctr);
		assert_true(a->ack.result == b->ack.result);
		assert_int_equal(a->ack.detail == NULL, b->ack.detail == NULL);
		if (a->ack.detail)
			assert_text(a->ack.detail, a->ack.detail_len, b->ack.detail,
			            b->ack.detail_len);
	}
	if (a->has & MT_MSG_ALRT) {
		assert_true(a->alrt.code == b->alrt.code);
		assert_true(a->alrt.prio == b->alrt.prio);
		assert_int_equal(a->alrt.text == NULL, b->alrt.text == NULL);
		if (a->alrt.text)
			assert_text(a->alrt.text, a->alrt.text_len, b->alrt.text, b->alrt.text_len);
	}
}

/* Encode, decode, compare, re-encode: the bytes must be identical. */
static void round_trip(const struct mt_message *m)
{
	struct mt_message back;
	size_t len, len2;
	const char *why = NULL;
	assert_int_equal(mt_message_check(m, &why), MT_OK);
	assert_int_equal(mt_message_encode(m, buf, sizeof(buf), &len), MT_OK);
	assert_int_equal(mt_cbor_validate(buf, len, NULL, 0), MT_OK);
	enum mt_err e = mt_message_decode(buf, len, &back, obs_buf, MT_OBS_MAX, &why);
	if (e != MT_OK) {
		mt_test_print_hex("encoded", buf, len);
		fail_msg("decode refused its own encoding: %s", why ? why : "?");
	}
	assert_msg_equal(&back, m);
	assert_int_equal(mt_message_encode(&back, buf2, sizeof(buf2), &len2), MT_OK);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
}

/* ---- worked vectors --------------------------------------------------------- */

static const char vec_message[] =
	"a501656465762d3102182a031b0000019ac8798b000401058384001a00024bb818611a00"
	"040220843901f31a00024b5cfb40424ccccccccccd1a000417a0843901f31a00024b5cf9"
	"50901a000417a0";

static const char vec_alert[] =
	"a601656465762d3102182b031b0000019ac8798b000402058184001a00024bb818541a00"
	"04022008a3011903e90203036853704f32206c6f77";

static void test_vector_message(void **state)
{
	(void)state;
	uint8_t in[256];
	size_t n = mt_test_unhex(vec_message, in, sizeof(in)), len;
	struct mt_message m;
	const char *why = NULL;
	assert_int_equal(mt_message_decode(in, n, &m, obs_buf, MT_OBS_MAX, &why), MT_OK);
	assert_string_equal(m.dev, "dev-1");
	assert_int_equal(m.dev_len, 5);
	assert_int_equal(m.ctr, 42);
	assert_true(m.ts == UINT64_C(0x19ac8798b00));
	assert_int_equal(m.typ, MT_TYP_VITALS);
	assert_int_equal(m.has, MT_MSG_OBS);
	assert_int_equal(m.n_obs, 3);
	assert_ptr_equal(m.obs, obs_buf);
	/* 97 as an int */
	assert_false(m.obs[0].waveform);
	assert_int_equal(num_i64(&m.obs[0].t), 0);
	assert_int_equal(m.obs[0].code, SPO2);
	assert_int_equal(m.obs[0].unit, U_PCT);
	assert_int_equal(m.obs[0].value.kind, MT_NUM_UINT);
	assert_int_equal(m.obs[0].value.u, 97);
	assert_false(m.obs[0].has_places);
	/* 36.6 as a float64 */
	assert_int_equal(num_i64(&m.obs[1].t), -500);
	assert_int_equal(m.obs[1].code, TEMP);
	assert_int_equal(m.obs[1].unit, U_DEGC);
	assert_int_equal(m.obs[1].value.kind, MT_NUM_FLOAT);
	assert_true(m.obs[1].value.f == 36.6);
	/* 36.5 as a float16 */
	assert_int_equal(num_i64(&m.obs[2].t), -500);
	assert_int_equal(m.obs[2].value.kind, MT_NUM_FLOAT);
	assert_true(m.obs[2].value.f == 36.5);
	assert_int_equal(mt_message_plausible(&m, &why), MT_OK);
	/* byte for byte back */
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	assert_int_equal(len, n);
	assert_memory_equal(buf, in, n);
}

static void test_vector_alert_message(void **state)
{
	(void)state;
	uint8_t in[256];
	size_t n = mt_test_unhex(vec_alert, in, sizeof(in)), len;
	struct mt_message m;
	const char *why = NULL;
	assert_int_equal(mt_message_decode(in, n, &m, obs_buf, MT_OBS_MAX, &why), MT_OK);
	assert_int_equal(m.ctr, 43);
	assert_int_equal(m.typ, MT_TYP_ALERT);
	assert_int_equal(m.has, MT_MSG_OBS | MT_MSG_ALRT);
	assert_int_equal(m.n_obs, 1);
	assert_int_equal(m.obs[0].value.u, 84);
	assert_int_equal(m.alrt.code, 1001);
	assert_int_equal(m.alrt.prio, 3);
	assert_text(m.alrt.text, m.alrt.text_len, "SpO2 low", 8);
	assert_int_equal(mt_message_plausible(&m, &why), MT_OK);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	assert_int_equal(len, n);
	assert_memory_equal(buf, in, n);
}

/* ---- round trips of each typ ------------------------------------------------ */

static void test_round_trip_vitals(void **state)
{
	(void)state;
	struct mt_message m;
	struct mt_obs o[5];
	init_vitals(&m, o, 5);
	scalar(&o[0], 0, HR, U_BPM);
	mt_num_set_int(&o[0].value, 72);
	scalar(&o[1], -1000, TEMP, U_DEGC);
	mt_num_set_float(&o[1].value, 36.5);
	o[1].has_places = true;
	o[1].places = 2; /* shown as 36.50 */
	scalar(&o[2], -2000, TEMP, U_DEGC);
	mt_num_set_float(&o[2].value, 36.6);
	o[2].has_places = true;
	o[2].places = 0;
	scalar(&o[3], INT64_MIN, GLU, U_MGDL);
	mt_num_set_int(&o[3].value, -5); /* schema allows it; plausibility does not */
	scalar(&o[4], -1, SPO2, U_PCT);
	o[4].value.kind = MT_NUM_UINT;
	o[4].value.u = UINT64_MAX; /* integers kept exact whatever their size */
	o[4].has_places = true;
	o[4].places = 6;
	round_trip(&m);

	/* and with one observation, max counter and timestamp */
	m.n_obs = 1;
	m.ctr = (UINT64_C(1) << 63) - 1;
	m.ts = (UINT64_C(1) << 53) - 1;
	round_trip(&m);
}

static void test_round_trip_waveform(void **state)
{
	(void)state;
	static const int32_t samples[] = {1, 0, 64, -64, 100000};
	uint8_t sb[64];
	size_t sl;
	struct mt_message m;
	struct mt_obs o[2];
	assert_int_equal(mt_waveform_encode(samples, N(samples), sb, sizeof(sb), &sl), MT_OK);
	init_vitals(&m, o, 2);
	memset(&o[0], 0, sizeof(o[0]));
	o[0].waveform = true;
	mt_num_set_int(&o[0].t, -4000);
	o[0].code = ECG_II;
	o[0].unit = U_MV;
	o[0].period_us = 4000;
	mt_num_set_float(&o[0].scale, 0.005);
	o[0].samples = sb;
	o[0].samples_len = sl;
	o[0].n_samples = 5;
	scalar(&o[1], 0, HR, U_BPM);
	mt_num_set_int(&o[1].value, 60);
	round_trip(&m);
	/* integer scales, negative included */
	mt_num_set_int(&o[0].scale, -3);
	round_trip(&m);
	/* the waveform is the 6-element array of §5 with the samples as bstr */
	size_t len;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	static const uint8_t tail[] = {0x86, 0x39, 0x0f, 0x9f, 0x1a, 0x00, 0x02, 0x01, 0x02,
	                               0x1a, 0x00, 0x04, 0x10, 0xb2, 0x19, 0x0f, 0xa0,
	                               0x22, 0x49, 0x02, 0x01, 0x80, 0x01, 0xff, 0x01,
	                               0xc0, 0x9b, 0x0c};
	bool found = false;
	for (size_t i = 0; i + sizeof(tail) <= len; i++)
		found = found || memcmp(buf + i, tail, sizeof(tail)) == 0;
	if (!found) {
		mt_test_print_hex("encoded", buf, len);
		fail_msg("waveform not encoded as [t, code, unit, period_us, scale, samples]");
	}
}

static void test_round_trip_alert(void **state)
{
	(void)state;
	struct mt_message m;
	struct mt_obs o[1];
	init_msg(&m, MT_TYP_ALERT);
	m.has = MT_MSG_ALRT;
	m.alrt.code = 1001;
	m.alrt.prio = 1;
	round_trip(&m); /* without obs, without text */
	m.alrt.prio = 3;
	m.alrt.text = "SpO2 low \xe2\x80\x94 check probe";
	m.alrt.text_len = strlen(m.alrt.text);
	round_trip(&m); /* with text */
	m.has |= MT_MSG_OBS;
	m.obs = o;
	m.n_obs = 1;
	scalar(&o[0], -10, SPO2, U_PCT);
	mt_num_set_int(&o[0].value, 84);
	round_trip(&m); /* with obs */
	m.alrt.prio = 2;
	m.alrt.text = NULL;
	m.alrt.text_len = 0;
	round_trip(&m);
}

static void test_round_trip_status(void **state)
{
	(void)state;
	struct mt_message m;
	init_msg(&m, MT_TYP_STATUS);
	m.has = MT_MSG_ST;
	m.st.battery = 100;
	m.st.fw = "1.2.3";
	m.st.fw_len = 5;
	m.st.queue = 12;
	m.st.uptime = UINT64_C(86400) * 365;
	mt_num_set_int(&m.st.rssi, -67);
	/* each status key alone, then all of them */
	const unsigned each[] = {MT_ST_BATTERY, MT_ST_FW, MT_ST_QUEUE, MT_ST_UPTIME, MT_ST_RSSI};
	for (size_t i = 0; i < N(each); i++) {
		m.st.has = each[i];
		round_trip(&m);
	}
	m.st.has = MT_ST_BATTERY | MT_ST_FW | MT_ST_QUEUE | MT_ST_UPTIME | MT_ST_RSSI;
	round_trip(&m);
	mt_num_set_int(&m.st.rssi, 5);
	m.st.battery = 0;
	round_trip(&m);
}

static void test_round_trip_ack(void **state)
{
	(void)state;
	struct mt_message m;
	init_msg(&m, MT_TYP_ACK);
	m.has = MT_MSG_ACK;
	m.ack.ctr = 9;
	m.ack.result = 0;
	round_trip(&m); /* without detail */
	m.ack.result = 3;
	m.ack.detail = "manifest version not above installed";
	m.ack.detail_len = strlen(m.ack.detail);
	round_trip(&m); /* with detail */
	m.ack.detail = "";
	m.ack.detail_len = 0;
	round_trip(&m); /* empty detail is still a detail */
}

/* ---- the typ table --------------------------------------------------------- */

static void test_typ_table(void **state)
{
	(void)state;
	/* protocol.md §5: must have / may have (keys 5..8), else must not */
	static const struct {
		uint64_t typ;
		unsigned must, may;
	} table[] = {
		{1, 1u << 5, 0},
		{2, 1u << 8, 1u << 5},
		{3, 1u << 6, 0},
		{4, 1u << 7, 0},
	};
	size_t bad = 0;
	for (size_t t = 0; t < N(table); t++) {
		/* every subset of the optional groups */
		for (unsigned sub = 0; sub < 16; sub++) {
			unsigned groups = sub << 5;
			bool ok = (groups & table[t].must) == table[t].must &&
			          (groups & ~(table[t].must | table[t].may)) == 0;
			char label[64];
			snprintf(label, sizeof(label), "typ %u groups 0x%x", (unsigned)table[t].typ,
			         groups);
			size_t len = build(table[t].typ, COMMON, groups);
			bad += expect_decode(label, buf, len, ok ? MT_OK : MT_ERR_PKT_MESSAGE);
		}
		/* each of dev, ctr, ts, typ missing */
		for (unsigned k = 1; k <= 4; k++) {
			char label[64];
			snprintf(label, sizeof(label), "typ %u without key %u",
			         (unsigned)table[t].typ, k);
			size_t len = build(table[t].typ, COMMON & ~(1u << k), table[t].must);
			bad += expect_decode(label, buf, len, MT_ERR_PKT_MESSAGE);
		}
	}
	/* unknown typ values */
	const uint64_t typs[] = {0, 5, 255, UINT64_MAX};
	for (size_t i = 0; i < N(typs); i++) {
		size_t len = build(typs[i], COMMON, 1u << 5);
		bad += expect_decode("unknown typ", buf, len, MT_ERR_PKT_MESSAGE);
	}
	assert_int_equal(bad, 0);
}

static void test_typ_table_encoder(void **state)
{
	(void)state;
	struct mt_message m;
	struct mt_obs o[1];
	size_t len;
	const char *why = NULL;
	scalar(&o[0], 0, SPO2, U_PCT);

	init_msg(&m, MT_TYP_VITALS); /* vitals with st */
	m.has = MT_MSG_OBS | MT_MSG_ST;
	m.obs = o;
	m.n_obs = 1;
	m.st.has = MT_ST_BATTERY;
	assert_int_equal(mt_message_check(&m, &why), MT_ERR_PKT_MESSAGE);
	assert_non_null(why);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);

	init_msg(&m, MT_TYP_VITALS); /* vitals without obs */
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);

	init_msg(&m, MT_TYP_STATUS); /* status with obs */
	m.has = MT_MSG_ST | MT_MSG_OBS;
	m.st.has = MT_ST_BATTERY;
	m.obs = o;
	m.n_obs = 1;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);

	init_msg(&m, MT_TYP_ACK); /* ack with alrt */
	m.has = MT_MSG_ACK | MT_MSG_ALRT;
	m.alrt.prio = 1;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);

	init_msg(&m, 5);
	m.has = MT_MSG_OBS;
	m.obs = o;
	m.n_obs = 1;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);

	/* MT_ERR_BUFFER when the output is too small, OK at the exact size */
	init_vitals(&m, o, 1);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	size_t exact = len;
	assert_int_equal(mt_message_encode(&m, buf, exact, &len), MT_OK);
	assert_int_equal(len, exact);
	assert_int_equal(mt_message_encode(&m, buf, exact - 1, &len), MT_ERR_BUFFER);
}

/* ---- unknown keys -------------------------------------------------------------- */

static void test_unknown_top_level_keys(void **state)
{
	(void)state;
	struct mt_cbor_enc e;
	size_t len, bad = 0;

	/* key 0: sorts first */
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_map(&e, 6);
	mt_cbor_put_uint(&e, 0);
	mt_cbor_put_uint(&e, 0);
	/* the rest of a valid vitals message, keys 1..5 */
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_tstr(&e, "dev-1", 5);
	mt_cbor_put_uint(&e, 2);
	mt_cbor_put_uint(&e, 42);
	mt_cbor_put_uint(&e, 3);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_uint(&e, 4);
	mt_cbor_put_uint(&e, 1);
	put_group(&e, 5);
	len = finish(&e);
	bad += expect_decode("key 0", buf, len, MT_ERR_PKT_MESSAGE);

	/* keys after 5, in bytewise order: 9 (09) < -1 (20) < "dev" (63...) */
	static const struct {
		const char *label;
		int kind; /* 0 uint 9, 1 negint -1, 2 tstr "dev" */
	} extra[] = {{"key 9", 0}, {"key -1", 1}, {"key \"dev\"", 2}};
	for (size_t i = 0; i < N(extra); i++) {
		mt_cbor_enc_init(&e, buf, sizeof(buf));
		put_common(&e, 6, 1);
		put_group(&e, 5);
		if (extra[i].kind == 0)
			mt_cbor_put_uint(&e, 9);
		else if (extra[i].kind == 1)
			mt_cbor_put_int(&e, -1);
		else
			mt_cbor_put_tstr(&e, "dev", 3);
		mt_cbor_put_tstr(&e, "dev-1", 5);
		len = finish(&e);
		bad += expect_decode(extra[i].label, buf, len, MT_ERR_PKT_MESSAGE);
	}
	assert_int_equal(bad, 0);
}

static void test_unknown_nested_keys(void **state)
{
	(void)state;
	/* <typ> <group key> <group map>, after the common keys as put_common()
	 * writes them */
	static const struct {
		const char *label, *tail;
	} c[] = {
	        {"st key 6", "03 06 a2 01 1832 06 01"},            /* {1: 50, 6: 1} */
	        {"st key 0", "03 06 a2 00 01 01 1832"},            /* {0: 1, 1: 50} */
	        {"st key \"fw\"", "03 06 a2 01 1832 626677 6178"}, /* {1: 50, "fw": "x"} */
	        {"ack key 4", "04 07 a3 01 07 02 00 04 6178"},     /* {1: 7, 2: 0, 4: "x"} */
	        {"ack key -1", "04 07 a3 01 07 02 00 20 00"},      /* {1: 7, 2: 0, -1: 0} */
	        {"alrt key 4", "02 08 a3 01 1903e9 02 03 04 00"},  /* {1: 1001, 2: 3, 4: 0} */
	        {"alrt key 0", "02 08 a3 00 00 01 1903e9 02 03"},  /* {0: 0, 1: 1001, 2: 3} */
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += expect_decode_hex(c[i].label, HEX_COMMON_42, c[i].tail, MT_ERR_PKT_MESSAGE);
	assert_int_equal(bad, 0);
}

/* ---- device id --------------------------------------------------------------- */

static size_t msg_with_dev(const char *dev, size_t n)
{
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_map(&e, 5);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_tstr(&e, dev, n);
	mt_cbor_put_uint(&e, 2);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_uint(&e, 3);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_uint(&e, 4);
	mt_cbor_put_uint(&e, 1);
	put_group(&e, 5);
	return finish(&e);
}

static void test_device_id(void **state)
{
	(void)state;
	char id64[65], id65[66];
	memset(id64, 'a', 64);
	id64[64] = '\0';
	memset(id65, 'Z', 65);
	id65[65] = '\0';
	static const char ok_last[] = "0123456789012345678901234567890123456789012345678901234567890._-";
	static const struct {
		const char *id;
		bool ok;
	} c[] = {
		{"a", true}, {"Z", true}, {"7", true}, {"dev-1", true},
		{"SN.0042_b-C", true}, {"a.", true}, {"a-", true}, {"a_", true},
		{"", false}, {".abc", false}, {"-abc", false}, {"_abc", false},
		{"a/b", false}, {"a b", false}, {" ab", false}, {"d\xc3\xa9v", false},
		{"a+b", false}, {"a:b", false}, {"a#b", false}, {"a\\b", false},
		{"a\x7f", false}, {"a~", false},
	};
	size_t bad = 0, len;
	for (size_t i = 0; i < N(c); i++) {
		size_t n = strlen(c[i].id);
		if (mt_device_id_valid(c[i].id, n) != c[i].ok) {
			print_error("mt_device_id_valid(\"%s\") != %d\n", c[i].id, (int)c[i].ok);
			bad++;
		}
		len = msg_with_dev(c[i].id, n);
		bad += expect_decode(c[i].id, buf, len, c[i].ok ? MT_OK : MT_ERR_PKT_MESSAGE);
	}
	assert_int_equal(strlen(ok_last), 64);
	assert_true(mt_device_id_valid(ok_last, 64));
	assert_true(mt_device_id_valid(id64, 64));
	assert_false(mt_device_id_valid(id65, 65));
	assert_false(mt_device_id_valid("a\0b", 3)); /* NUL inside */
	len = msg_with_dev(id64, 64);
	bad += expect_decode("64-byte id", buf, len, MT_OK);
	len = msg_with_dev(id65, 65);
	bad += expect_decode("65-byte id", buf, len, MT_ERR_PKT_MESSAGE);
	len = msg_with_dev("a\0b", 3);
	bad += expect_decode("id with NUL", buf, len, MT_ERR_PKT_MESSAGE);
	assert_int_equal(bad, 0);

	/* decoding copies the id and NUL-terminates it */
	struct mt_message m;
	len = msg_with_dev(id64, 64);
	assert_int_equal(mt_message_decode(buf, len, &m, obs_buf, MT_OBS_MAX, NULL), MT_OK);
	assert_int_equal(m.dev_len, 64);
	assert_string_equal(m.dev, id64);

	/* the encoder refuses what the decoder refuses */
	struct mt_obs o[1];
	scalar(&o[0], 0, SPO2, U_PCT);
	init_vitals(&m, o, 1);
	memcpy(m.dev, ".abc", 5);
	m.dev_len = 4;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	m.dev_len = 0;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	memcpy(m.dev, id64, 65);
	m.dev_len = 64;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
}

/* ---- counter, timestamp, text ----------------------------------------------- */

static size_t msg_ctr_ts(uint64_t ctr, uint64_t ts)
{
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	mt_cbor_put_map(&e, 5);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_tstr(&e, "dev-1", 5);
	mt_cbor_put_uint(&e, 2);
	mt_cbor_put_uint(&e, ctr);
	mt_cbor_put_uint(&e, 3);
	mt_cbor_put_uint(&e, ts);
	mt_cbor_put_uint(&e, 4);
	mt_cbor_put_uint(&e, 1);
	put_group(&e, 5);
	return finish(&e);
}

static void test_counter_and_timestamp_bounds(void **state)
{
	(void)state;
	const uint64_t c63 = UINT64_C(1) << 63, t53 = UINT64_C(1) << 53;
	size_t bad = 0, len;
	len = msg_ctr_ts(0, 0);
	bad += expect_decode("ctr 0 ts 0", buf, len, MT_OK);
	len = msg_ctr_ts(c63 - 1, 1);
	bad += expect_decode("ctr 2^63-1", buf, len, MT_OK);
	len = msg_ctr_ts(c63, 1);
	bad += expect_decode("ctr 2^63", buf, len, MT_ERR_PKT_MESSAGE);
	len = msg_ctr_ts(UINT64_MAX, 1);
	bad += expect_decode("ctr 2^64-1", buf, len, MT_ERR_PKT_MESSAGE);
	len = msg_ctr_ts(1, t53 - 1);
	bad += expect_decode("ts 2^53-1", buf, len, MT_OK);
	len = msg_ctr_ts(1, t53);
	bad += expect_decode("ts 2^53", buf, len, MT_ERR_PKT_MESSAGE);
	assert_int_equal(bad, 0);

	/* negative or non-integer counters and timestamps */
	uint8_t in[64];
	size_t n = mt_test_unhex(
	        "a5 01 65646576 2d31 02 20 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a00040220", in,
	        sizeof(in));
	assert_int_equal(expect_decode("ctr -1", in, n, MT_ERR_PKT_MESSAGE), 0);
	n = mt_test_unhex(
	        "a5 01 65646576 2d31 02 f93c00 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a00040220",
	        in, sizeof(in));
	assert_int_equal(expect_decode("ctr 1.0", in, n, MT_ERR_PKT_MESSAGE), 0);
	n = mt_test_unhex(
	        "a5 01 65646576 2d31 02 01 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a00040220", in,
	        sizeof(in));
	assert_int_equal(expect_decode("baseline", in, n, MT_OK), 0);

	/* the encoder holds the same bounds */
	struct mt_message m;
	struct mt_obs o[1];
	scalar(&o[0], 0, SPO2, U_PCT);
	init_vitals(&m, o, 1);
	m.ctr = c63;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	m.ctr = c63 - 1;
	m.ts = t53;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	m.ts = t53 - 1;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
}

/* A message of typ `typ` whose one text field is `n` bytes of `c`. */
static size_t msg_text(int which, size_t n, char c)
{
	static char text[512];
	memset(text, c, n);
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	if (which == 0) { /* alrt text */
		put_common(&e, 5, 2);
		mt_cbor_put_uint(&e, 8);
		mt_cbor_put_map(&e, 3);
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_uint(&e, 2);
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_uint(&e, 3);
		mt_cbor_put_tstr(&e, text, n);
	} else if (which == 1) { /* ack detail */
		put_common(&e, 5, 4);
		mt_cbor_put_uint(&e, 7);
		mt_cbor_put_map(&e, 3);
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_uint(&e, 2);
		mt_cbor_put_uint(&e, 0);
		mt_cbor_put_uint(&e, 3);
		mt_cbor_put_tstr(&e, text, n);
	} else { /* st fw */
		put_common(&e, 5, 3);
		mt_cbor_put_uint(&e, 6);
		mt_cbor_put_map(&e, 1);
		mt_cbor_put_uint(&e, 2);
		mt_cbor_put_tstr(&e, text, n);
	}
	return finish(&e);
}

static void test_text_bounds(void **state)
{
	(void)state;
	static const char *names[] = {"alrt text", "ack detail", "st fw"};
	size_t bad = 0;
	for (int w = 0; w < 3; w++) {
		char label[64];
		size_t len = msg_text(w, 256, 'x');
		snprintf(label, sizeof(label), "%s of 256 bytes", names[w]);
		bad += expect_decode(label, buf, len, MT_OK);
		len = msg_text(w, 257, 'x');
		snprintf(label, sizeof(label), "%s of 257 bytes", names[w]);
		bad += expect_decode(label, buf, len, MT_ERR_PKT_MESSAGE);
		len = msg_text(w, 0, 'x');
		snprintf(label, sizeof(label), "%s empty", names[w]);
		bad += expect_decode(label, buf, len, MT_OK);
	}
	assert_int_equal(bad, 0);

	/* the encoder: 256 ok, 257 refused, in each field */
	char text[257];
	memset(text, 'y', sizeof(text));
	struct mt_message m;
	size_t len;
	init_msg(&m, MT_TYP_ALERT);
	m.has = MT_MSG_ALRT;
	m.alrt.prio = 2;
	m.alrt.text = text;
	m.alrt.text_len = 256;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	m.alrt.text_len = 257;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	init_msg(&m, MT_TYP_ACK);
	m.has = MT_MSG_ACK;
	m.ack.detail = text;
	m.ack.detail_len = 256;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	m.ack.detail_len = 257;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	init_msg(&m, MT_TYP_STATUS);
	m.has = MT_MSG_ST;
	m.st.has = MT_ST_FW;
	m.st.fw = text;
	m.st.fw_len = 256;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	m.st.fw_len = 257;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	/* text that is not UTF-8 is refused by the encoder too */
	m.st.fw = "\xc0\x80";
	m.st.fw_len = 2;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
}

/* ---- observations -------------------------------------------------------------- */

/* Vitals with n scalar observations, time offset t for all. */
static size_t msg_n_obs(size_t n, int64_t t)
{
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, buf, sizeof(buf));
	put_common(&e, 5, 1);
	mt_cbor_put_uint(&e, 5);
	mt_cbor_put_array(&e, n);
	for (size_t i = 0; i < n; i++)
		put_scalar(&e, t, SPO2, 97, U_PCT);
	return finish(&e);
}

static void test_observation_count(void **state)
{
	(void)state;
	size_t bad = 0, len;
	struct mt_message m;
	len = msg_n_obs(1024, 0);
	bad += expect_decode("1024 observations", buf, len, MT_OK);
	len = msg_n_obs(1025, 0);
	bad += expect_decode("1025 observations", buf, len, MT_ERR_PKT_MESSAGE);
	len = msg_n_obs(0, 0);
	bad += expect_decode("0 observations", buf, len, MT_ERR_PKT_MESSAGE);
	assert_int_equal(bad, 0);

	len = msg_n_obs(1024, 0);
	assert_int_equal(mt_message_decode(buf, len, &m, obs_buf, MT_OBS_MAX, NULL), MT_OK);
	assert_int_equal(m.n_obs, 1024);
	/* the caller's array must hold them all */
	len = msg_n_obs(3, 0);
	assert_int_equal(mt_message_decode(buf, len, &m, obs_buf, 3, NULL), MT_OK);
	const char *why = NULL;
	assert_int_equal(mt_message_decode(buf, len, &m, obs_buf, 2, &why), MT_ERR_PKT_MESSAGE);
	assert_non_null(why);
	assert_int_equal(mt_message_decode(buf, len, &m, obs_buf, 0, NULL), MT_ERR_PKT_MESSAGE);

	/* the encoder: 1024 ok, 1025 and 0 refused */
	static struct mt_obs o[MT_OBS_MAX + 1];
	for (size_t i = 0; i < N(o); i++) {
		scalar(&o[i], 0, SPO2, U_PCT);
		mt_num_set_int(&o[i].value, 97);
	}
	init_vitals(&m, o, 1024);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	m.n_obs = 1025;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	m.n_obs = 0;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
}

static void test_observation_fields(void **state)
{
	(void)state;
	size_t bad = 0, len;
	len = msg_n_obs(1, 0);
	bad += expect_decode("t = 0", buf, len, MT_OK);
	len = msg_n_obs(1, -1);
	bad += expect_decode("t = -1", buf, len, MT_OK);
	len = msg_n_obs(1, 1);
	bad += expect_decode("t = 1", buf, len, MT_ERR_PKT_MESSAGE);
	len = msg_n_obs(1, INT64_MAX);
	bad += expect_decode("t = 2^63-1", buf, len, MT_ERR_PKT_MESSAGE);

	/* hand-written observations inside a vitals message:
	 * a5 01 "dev-1" 02 01 03 01 04 01 05 81 <obs> */
	static const struct {
		const char *label, *obs;
		enum mt_err want;
	} c[] = {
		{"places 0", "85 00 1a00024bb8 1861 1a00040220 00", MT_OK},
		{"places 6", "85 00 1a00024bb8 1861 1a00040220 06", MT_OK},
		{"places 7", "85 00 1a00024bb8 1861 1a00040220 07", MT_ERR_PKT_MESSAGE},
		{"places -1", "85 00 1a00024bb8 1861 1a00040220 20", MT_ERR_PKT_MESSAGE},
		{"places 1.0", "85 00 1a00024bb8 1861 1a00040220 f93c00", MT_ERR_PKT_MESSAGE},
		{"array of 3", "83 00 1a00024bb8 1861", MT_ERR_PKT_MESSAGE},
		{"array of 7", "87 00 1a00024bb8 1a00040220 19 0fa0 01 41 02 00", MT_ERR_PKT_MESSAGE},
		{"array of 0", "80", MT_ERR_PKT_MESSAGE},
		{"not an array", "a0", MT_ERR_PKT_MESSAGE},
		{"float value", "84 00 1a00024b5c f95090 1a000417a0", MT_OK},
		{"negative value", "84 00 1a00024bb8 20 1a00040220", MT_OK},
		{"text value", "84 00 1a00024bb8 6139 1a00040220", MT_ERR_PKT_MESSAGE},
		{"bstr value", "84 00 1a00024bb8 4161 1a00040220", MT_ERR_PKT_MESSAGE},
		{"null value", "84 00 1a00024bb8 f6 1a00040220", MT_ERR_PKT_MESSAGE},
		{"bool value", "84 00 1a00024bb8 f5 1a00040220", MT_ERR_PKT_MESSAGE},
		{"code 2^32-1", "84 00 1affffffff 1861 1a00040220", MT_OK},
		{"code 2^32", "84 00 1b0000000100000000 1861 1a00040220", MT_ERR_PKT_MESSAGE},
		{"code -1", "84 00 20 1861 1a00040220", MT_ERR_PKT_MESSAGE},
		{"unit 2^32", "84 00 1a00024bb8 1861 1b0000000100000000", MT_ERR_PKT_MESSAGE},
		{"t float", "84 f90000 1a00024bb8 1861 1a00040220", MT_ERR_PKT_MESSAGE},
		{"t positive", "84 01 1a00024bb8 1861 1a00040220", MT_ERR_PKT_MESSAGE},
		/* waveforms [t, code, unit, period_us, scale, samples] */
		{"waveform", "86 00 1a00020102 1a000410b2 190fa0 01 4102", MT_OK},
		{"waveform float scale", "86 00 1a00020102 1a000410b2 190fa0 f93c00 4102", MT_OK},
		{"waveform negative scale", "86 00 1a00020102 1a000410b2 190fa0 20 4102", MT_OK},
		{"waveform period 0", "86 00 1a00020102 1a000410b2 00 01 4102", MT_ERR_PKT_MESSAGE},
		{"waveform scale 0", "86 00 1a00020102 1a000410b2 190fa0 00 4102", MT_ERR_PKT_MESSAGE},
		{"waveform scale 0.0", "86 00 1a00020102 1a000410b2 190fa0 f90000 4102", MT_ERR_PKT_MESSAGE},
		{"waveform scale -0.0", "86 00 1a00020102 1a000410b2 190fa0 f98000 4102", MT_ERR_PKT_MESSAGE},
		{"waveform no samples", "86 00 1a00020102 1a000410b2 190fa0 01 40", MT_ERR_PKT_MESSAGE},
		{"waveform non-shortest", "86 00 1a00020102 1a000410b2 190fa0 01 428000", MT_ERR_PKT_MESSAGE},
		{"waveform truncated", "86 00 1a00020102 1a000410b2 190fa0 01 4180", MT_ERR_PKT_MESSAGE},
		{"waveform samples as text", "86 00 1a00020102 1a000410b2 190fa0 01 6102", MT_ERR_PKT_MESSAGE},
		{"waveform t positive", "86 01 1a00020102 1a000410b2 190fa0 01 4102", MT_ERR_PKT_MESSAGE},
		{"waveform period -1", "86 00 1a00020102 1a000410b2 20 01 4102", MT_ERR_PKT_MESSAGE},
	};
	for (size_t i = 0; i < N(c); i++)
		bad += expect_decode_hex(c[i].label, "a5 01 656465762d31 02 01 03 01 04 01 05 81",
		                         c[i].obs, c[i].want);
	assert_int_equal(bad, 0);

	/* decoded waveform fields */
	uint8_t in[64];
	struct mt_message m;
	size_t n = mt_test_unhex("a5 01 656465762d31 02 01 03 01 04 01 05 81 "
	               "86 39 0f9f 1a00020102 1a000410b2 190fa0 fb3f747ae147ae147b 49 02018001ff01c09b0c",
	               in, sizeof(in));
	assert_int_equal(mt_message_decode(in, n, &m, obs_buf, MT_OBS_MAX, NULL), MT_OK);
	assert_true(m.obs[0].waveform);
	assert_int_equal(num_i64(&m.obs[0].t), -4000);
	assert_int_equal(m.obs[0].code, ECG_II);
	assert_int_equal(m.obs[0].unit, U_MV);
	assert_int_equal(m.obs[0].period_us, 4000);
	assert_int_equal(m.obs[0].scale.kind, MT_NUM_FLOAT);
	assert_true(m.obs[0].scale.f == 0.005);
	assert_int_equal(m.obs[0].samples_len, 9);
	assert_ptr_equal(m.obs[0].samples, in + n - 9); /* points into the input */
	assert_int_equal(m.obs[0].n_samples, 5);

	/* the encoder checks the sample count against the samples */
	struct mt_message w = m;
	w.obs[0].n_samples = 4;
	size_t len2;
	assert_int_equal(mt_message_encode(&w, buf, sizeof(buf), &len2), MT_ERR_PKT_MESSAGE);
	w.obs[0].n_samples = 5;
	w.obs[0].period_us = 0;
	assert_int_equal(mt_message_encode(&w, buf, sizeof(buf), &len2), MT_ERR_PKT_MESSAGE);
	w.obs[0].period_us = 4000;
	assert_int_equal(mt_message_encode(&w, buf, sizeof(buf), &len2), MT_OK);
	assert_int_equal(len2, n);
	assert_memory_equal(buf, in, n);
	/* the encoder refuses a positive t, places above 6 and a NaN value */
	struct mt_obs o[1];
	scalar(&o[0], 1, SPO2, U_PCT);
	init_vitals(&w, o, 1);
	assert_int_equal(mt_message_encode(&w, buf, sizeof(buf), &len2), MT_ERR_PKT_MESSAGE);
	mt_num_set_int(&o[0].t, 0);
	o[0].has_places = true;
	o[0].places = 7;
	assert_int_equal(mt_message_encode(&w, buf, sizeof(buf), &len2), MT_ERR_PKT_MESSAGE);
	o[0].places = 6;
	mt_num_set_float(&o[0].value, NAN);
	assert_int_equal(mt_message_encode(&w, buf, sizeof(buf), &len2), MT_ERR_PKT_MESSAGE);
	mt_num_set_float(&o[0].value, INFINITY);
	assert_int_equal(mt_message_encode(&w, buf, sizeof(buf), &len2), MT_ERR_PKT_MESSAGE);
	mt_num_set_float(&o[0].value, 97.0);
	assert_int_equal(mt_message_encode(&w, buf, sizeof(buf), &len2), MT_OK);
}

/* §5 types t and rssi as `int`: a CBOR major type 0 or 1 integer, −2^64 to
 * 2^64 − 1.  Another implementation may send any of them; they must be
 * accepted (t only when ≤ 0) and re-encoded byte for byte, not refused for
 * not fitting int64. */
static void test_int_fields_beyond_int64(void **state)
{
	(void)state;
	static const struct {
		const char *label, *tail; /* after a5 01 "dev-1" 02 01 03 01 04 */
		enum mt_err want;
		bool is_t;       /* the value is an observation t (else st.rssi) */
		enum mt_num_kind kind;
		uint64_t u;
	} c[] = {
		{"t = -2^64", "01 05 81 84 3bffffffffffffffff 1a00024182 183c 1a00040aa0", MT_OK,
		 true, MT_NUM_NEGINT, UINT64_MAX},
		{"t = -2^63-1", "01 05 81 84 3b8000000000000000 1a00024182 183c 1a00040aa0", MT_OK,
		 true, MT_NUM_NEGINT, UINT64_C(1) << 63},
		{"t = -2^63", "01 05 81 84 3b7fffffffffffffff 1a00024182 183c 1a00040aa0", MT_OK,
		 true, MT_NUM_NEGINT, (UINT64_C(1) << 63) - 1},
		{"waveform t = -2^64", "01 05 81 86 3bffffffffffffffff 1a00020102 1a000410b2 190fa0 01 4102",
		 MT_OK, true, MT_NUM_NEGINT, UINT64_MAX},
		{"rssi = 2^63", "03 06 a1 05 1b8000000000000000", MT_OK, false, MT_NUM_UINT,
		 UINT64_C(1) << 63},
		{"rssi = 2^64-1", "03 06 a1 05 1bffffffffffffffff", MT_OK, false, MT_NUM_UINT,
		 UINT64_MAX},
		{"rssi = -2^64", "03 06 a1 05 3bffffffffffffffff", MT_OK, false, MT_NUM_NEGINT,
		 UINT64_MAX},
		{"rssi = -2^63-1", "03 06 a1 05 3b8000000000000000", MT_OK, false, MT_NUM_NEGINT,
		 UINT64_C(1) << 63},
		/* t stays ≤ 0 and an integer whatever its size */
		{"t = 1", "01 05 81 84 01 1a00024182 183c 1a00040aa0", MT_ERR_PKT_MESSAGE, true, 0, 0},
		{"t = 2^63", "01 05 81 84 1b8000000000000000 1a00024182 183c 1a00040aa0",
		 MT_ERR_PKT_MESSAGE, true, 0, 0},
		{"t = 2^64-1", "01 05 81 84 1bffffffffffffffff 1a00024182 183c 1a00040aa0",
		 MT_ERR_PKT_MESSAGE, true, 0, 0},
		{"t = -1.0", "01 05 81 84 f9bc00 1a00024182 183c 1a00040aa0", MT_ERR_PKT_MESSAGE, true,
		 0, 0},
		{"t = 0.0", "01 05 81 84 f90000 1a00024182 183c 1a00040aa0", MT_ERR_PKT_MESSAGE, true,
		 0, 0},
		{"t = -2^64 as float", "01 05 81 84 fadf800000 1a00024182 183c 1a00040aa0",
		 MT_ERR_PKT_MESSAGE, true, 0, 0},
		{"rssi = -1.0", "03 06 a1 05 f9bc00", MT_ERR_PKT_MESSAGE, false, 0, 0},
		{"rssi = 2^64 as float", "03 06 a1 05 fa5f800000", MT_ERR_PKT_MESSAGE, false, 0, 0},
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++) {
		char h[256];
		uint8_t in[128], out[128];
		struct mt_message m;
		size_t n, len;
		snprintf(h, sizeof(h), "a5 01 656465762d31 02 01 03 01 04 %s", c[i].tail);
		n = mt_test_unhex(h, in, sizeof(in));
		if (mt_cbor_validate(in, n, NULL, 0) != MT_OK) {
			print_error("%s: test input is not strict CBOR\n", c[i].label);
			bad++;
			continue;
		}
		bad += expect_decode(c[i].label, in, n, c[i].want);
		if (c[i].want != MT_OK)
			continue;
		assert_int_equal(mt_message_decode(in, n, &m, obs_buf, MT_OBS_MAX, NULL), MT_OK);
		const struct mt_num *v = c[i].is_t ? &m.obs[0].t : &m.st.rssi;
		if (v->kind != c[i].kind || v->u != c[i].u) {
			print_error("%s: decoded as kind %d, u %llu\n", c[i].label, (int)v->kind,
			            (unsigned long long)v->u);
			bad++;
		}
		/* byte for byte back */
		assert_int_equal(mt_message_encode(&m, out, sizeof(out), &len), MT_OK);
		if (len != n || memcmp(out, in, n) != 0) {
			print_error("%s: re-encoding differs\n", c[i].label);
			mt_test_print_hex("  in ", in, n);
			mt_test_print_hex("  out", out, len);
			bad++;
		}
	}
	assert_int_equal(bad, 0);

	/* built with the helpers: encode, decode, re-encode */
	struct mt_message m;
	struct mt_obs o[2];
	init_vitals(&m, o, 1);
	scalar(&o[0], 0, HR, U_BPM);
	mt_num_set_negint(&o[0].t, UINT64_MAX); /* −2^64 */
	round_trip(&m);
	mt_num_set_negint(&o[0].t, UINT64_C(1) << 63); /* −2^63 − 1 */
	round_trip(&m);
	mt_num_set_uint(&o[0].t, 0);
	round_trip(&m);
	init_msg(&m, MT_TYP_STATUS);
	m.has = MT_MSG_ST;
	m.st.has = MT_ST_RSSI;
	mt_num_set_uint(&m.st.rssi, UINT64_C(1) << 63);
	round_trip(&m);
	mt_num_set_negint(&m.st.rssi, UINT64_MAX);
	round_trip(&m);

	/* the encoder refuses t > 0, a float t and a float rssi */
	size_t len;
	init_vitals(&m, o, 1);
	scalar(&o[0], 0, HR, U_BPM);
	mt_num_set_uint(&o[0].t, 1);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	mt_num_set_uint(&o[0].t, UINT64_MAX);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	mt_num_set_float(&o[0].t, -1.0);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	mt_num_set_float(&o[0].t, 0.0);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	mt_num_set_int(&o[0].t, -1);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	init_msg(&m, MT_TYP_STATUS);
	m.has = MT_MSG_ST;
	m.st.has = MT_ST_RSSI;
	mt_num_set_float(&m.st.rssi, -60.0);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	mt_num_set_int(&m.st.rssi, -60);
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
}

/* ---- st, ack, alrt --------------------------------------------------------------- */

static void test_groups(void **state)
{
	(void)state;
	/* common part of each: a5 01 "dev-1" 02 01 03 01 04 <typ> <key> <value> */
	static const struct {
		const char *label, *tail;
		enum mt_err want;
	} c[] = {
		{"battery 100", "03 06 a1 01 1864", MT_OK},
		{"battery 101", "03 06 a1 01 1865", MT_ERR_PKT_MESSAGE},
		{"battery 0", "03 06 a1 01 00", MT_OK},
		{"battery -1", "03 06 a1 01 20", MT_ERR_PKT_MESSAGE},
		{"status empty", "03 06 a0", MT_ERR_PKT_MESSAGE},
		{"status not a map", "03 06 80", MT_ERR_PKT_MESSAGE},
		{"status fw as bstr", "03 06 a1 02 4161", MT_ERR_PKT_MESSAGE},
		{"status queue -1", "03 06 a1 03 20", MT_ERR_PKT_MESSAGE},
		{"status uptime -1", "03 06 a1 04 20", MT_ERR_PKT_MESSAGE},
		{"status rssi -120", "03 06 a1 05 3877", MT_OK},
		{"status rssi 10", "03 06 a1 05 0a", MT_OK},
		{"status rssi 1.5", "03 06 a1 05 f93e00", MT_ERR_PKT_MESSAGE},
		{"status all", "03 06 a5 01 1864 02 6131 03 00 04 00 05 20", MT_OK},
		{"ack ctr+result", "04 07 a2 01 01 02 00", MT_OK},
		{"ack with detail", "04 07 a3 01 01 02 05 03 626f6b", MT_OK},
		{"ack without result", "04 07 a1 01 01", MT_ERR_PKT_MESSAGE},
		{"ack without ctr", "04 07 a1 02 00", MT_ERR_PKT_MESSAGE},
		{"ack detail only", "04 07 a1 03 626f6b", MT_ERR_PKT_MESSAGE},
		{"ack empty", "04 07 a0", MT_ERR_PKT_MESSAGE},
		{"ack result -1", "04 07 a2 01 01 02 20", MT_ERR_PKT_MESSAGE},
		{"ack detail as bstr", "04 07 a3 01 01 02 00 03 41 6b", MT_ERR_PKT_MESSAGE},
		{"alrt prio 1", "02 08 a2 01 01 02 01", MT_OK},
		{"alrt prio 3", "02 08 a2 01 01 02 03", MT_OK},
		{"alrt prio 0", "02 08 a2 01 01 02 00", MT_ERR_PKT_MESSAGE},
		{"alrt prio 4", "02 08 a2 01 01 02 04", MT_ERR_PKT_MESSAGE},
		{"alrt prio -1", "02 08 a2 01 01 02 20", MT_ERR_PKT_MESSAGE},
		{"alrt without prio", "02 08 a1 01 01", MT_ERR_PKT_MESSAGE},
		{"alrt without code", "02 08 a1 02 01", MT_ERR_PKT_MESSAGE},
		{"alrt code -1", "02 08 a2 01 20 02 01", MT_ERR_PKT_MESSAGE},
		{"alrt text", "02 08 a3 01 01 02 01 03 6161", MT_OK},
		{"alrt text as int", "02 08 a3 01 01 02 01 03 01", MT_ERR_PKT_MESSAGE},
		{"alrt not a map", "02 08 82 01 01", MT_ERR_PKT_MESSAGE},
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += expect_decode_hex(c[i].label, "a5 01 656465762d31 02 01 03 01 04", c[i].tail,
		                         c[i].want);
	assert_int_equal(bad, 0);

	/* the encoder: battery 101, empty status, prio 0 and 4 */
	struct mt_message m;
	size_t len;
	init_msg(&m, MT_TYP_STATUS);
	m.has = MT_MSG_ST;
	m.st.has = MT_ST_BATTERY;
	m.st.battery = 101;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	m.st.battery = 100;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_OK);
	m.st.has = 0;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	init_msg(&m, MT_TYP_ALERT);
	m.has = MT_MSG_ALRT;
	m.alrt.prio = 0;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
	m.alrt.prio = 4;
	assert_int_equal(mt_message_encode(&m, buf, sizeof(buf), &len), MT_ERR_PKT_MESSAGE);
}

/* ---- not a message at all ------------------------------------------------------- */

static void test_not_a_message(void **state)
{
	(void)state;
	static const struct {
		const char *label, *hex;
	} c[] = {
		{"empty map", "a0"},
		{"array", "85 01 02 03 04 05"},
		{"uint", "01"},
		{"tagged message", "d818 a5 01 656465762d31 02 01 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a00040220"},
		{"trailing byte", "a5 01 656465762d31 02 01 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a00040220 00"},
		{"truncated", "a5 01 656465762d31 02 01 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a000402"},
		{"keys out of order", "a5 02 01 01 656465762d31 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a00040220"},
		{"duplicate key", "a6 01 656465762d31 02 01 02 01 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a00040220"},
		{"dev as bstr", "a5 01 456465762d31 02 01 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a00040220"},
		{"non-shortest ctr", "a5 01 656465762d31 02 1801 03 01 04 01 05 81 84 00 1a00024bb8 1861 1a00040220"},
		{"value 97.0 as float32", "a5 01 656465762d31 02 01 03 01 04 01 05 81 84 00 1a00024bb8 fa42c20000 1a00040220"},
		{"NaN value", "a5 01 656465762d31 02 01 03 01 04 01 05 81 84 00 1a00024bb8 f97e00 1a00040220"},
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++) {
		uint8_t in[128];
		size_t n = mt_test_unhex(c[i].hex, in, sizeof(in));
		bad += expect_decode(c[i].label, in, n, MT_ERR_PKT_MESSAGE);
	}
	uint8_t z = 0;
	bad += expect_decode("zero bytes", &z, 0, MT_ERR_PKT_MESSAGE);
	assert_int_equal(bad, 0);
}

/* ---- plausibility (clinical.md §1) --------------------------------------------- */

static enum mt_err plausible_one(uint32_t code, uint32_t unit, const struct mt_num *v)
{
	struct mt_message m;
	struct mt_obs o[1];
	const char *why = NULL;
	init_vitals(&m, o, 1);
	scalar(&o[0], 0, code, unit);
	o[0].value = *v;
	enum mt_err e = mt_message_plausible(&m, &why);
	if (e != MT_OK && why == NULL)
		fail_msg("implausible without a reason");
	return e;
}

static size_t expect_plausible(const char *label, uint32_t code, uint32_t unit,
                               const struct mt_num *v, enum mt_err want)
{
	enum mt_err got = plausible_one(code, unit, v);
	if (got != want) {
		print_error("%s (code %u unit %u value %.17g): want %d, got %d\n", label,
		            (unsigned)code, (unsigned)unit, mt_num_to_double(v), (int)want, (int)got);
		return 1;
	}
	return 0;
}

static void test_plausible_ranges(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		uint32_t code, unit;
		double min, max;
		bool integral; /* range ends are whole numbers */
	} q[] = {
		{"heart rate", HR, U_BPM, 0, 350, true},
		{"pulse rate", PULSE, U_BPM, 0, 350, true},
		{"SpO2", SPO2, U_PCT, 0, 100, true},
		{"NIBP systolic", SYS, U_MMHG, 0, 400, true},
		{"NIBP diastolic", DIA, U_MMHG, 0, 400, true},
		{"NIBP mean", MEAN, U_MMHG, 0, 400, true},
		{"temperature", TEMP, U_DEGC, 20.0, 45.0, true},
		{"respiratory rate", RESP, U_RPM, 0, 150, true},
		{"glucose", GLU, U_MGDL, 0, 2000, true},
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(q); i++) {
		struct mt_num v;
		/* the ends, as ints and as floats */
		mt_num_set_int(&v, (int64_t)q[i].min);
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_OK);
		mt_num_set_int(&v, (int64_t)q[i].max);
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_OK);
		mt_num_set_float(&v, q[i].min);
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_OK);
		mt_num_set_float(&v, q[i].max);
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_OK);
		mt_num_set_float(&v, (q[i].min + q[i].max) / 2);
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_OK);
		/* just outside */
		mt_num_set_int(&v, (int64_t)q[i].min - 1);
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_ERR_PKT_IMPLAUSIBLE);
		mt_num_set_int(&v, (int64_t)q[i].max + 1);
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_ERR_PKT_IMPLAUSIBLE);
		mt_num_set_float(&v, nextafter(q[i].min, -INFINITY));
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_ERR_PKT_IMPLAUSIBLE);
		mt_num_set_float(&v, nextafter(q[i].max, INFINITY));
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_ERR_PKT_IMPLAUSIBLE);
		/* far outside, at the ends of the number kinds */
		v.kind = MT_NUM_UINT;
		v.u = UINT64_MAX;
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_ERR_PKT_IMPLAUSIBLE);
		v.kind = MT_NUM_NEGINT;
		v.u = UINT64_MAX;
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_ERR_PKT_IMPLAUSIBLE);
		mt_num_set_float(&v, -1e300);
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_ERR_PKT_IMPLAUSIBLE);
		mt_num_set_float(&v, 1e300);
		bad += expect_plausible(q[i].name, q[i].code, q[i].unit, &v, MT_ERR_PKT_IMPLAUSIBLE);
	}
	/* temperature to a tenth: 19.9 and 45.1 out */
	struct mt_num t;
	mt_num_set_float(&t, 19.9);
	bad += expect_plausible("temperature 19.9", TEMP, U_DEGC, &t, MT_ERR_PKT_IMPLAUSIBLE);
	mt_num_set_float(&t, 45.1);
	bad += expect_plausible("temperature 45.1", TEMP, U_DEGC, &t, MT_ERR_PKT_IMPLAUSIBLE);
	mt_num_set_float(&t, 36.6);
	bad += expect_plausible("temperature 36.6", TEMP, U_DEGC, &t, MT_OK);
	assert_int_equal(bad, 0);
}

static void test_plausible_codes_and_units(void **state)
{
	(void)state;
	struct mt_num v;
	size_t bad = 0;
	mt_num_set_int(&v, 1);
	/* unknown codes */
	bad += expect_plausible("code 0", 0, U_BPM, &v, MT_ERR_PKT_IMPLAUSIBLE);
	bad += expect_plausible("code HR+1", HR + 1, U_BPM, &v, MT_ERR_PKT_IMPLAUSIBLE);
	bad += expect_plausible("code 2^32-1", UINT32_MAX, U_BPM, &v, MT_ERR_PKT_IMPLAUSIBLE);
	/* a unit that belongs to another quantity */
	bad += expect_plausible("HR in %", HR, U_PCT, &v, MT_ERR_PKT_IMPLAUSIBLE);
	bad += expect_plausible("SpO2 in /min", SPO2, U_BPM, &v, MT_ERR_PKT_IMPLAUSIBLE);
	bad += expect_plausible("resp in beats/min", RESP, U_BPM, &v, MT_ERR_PKT_IMPLAUSIBLE);
	bad += expect_plausible("NIBP in mg/dL", SYS, U_MGDL, &v, MT_ERR_PKT_IMPLAUSIBLE);
	bad += expect_plausible("glucose in mmHg", GLU, U_MMHG, &v, MT_ERR_PKT_IMPLAUSIBLE);
	mt_num_set_int(&v, 37);
	bad += expect_plausible("temp in /min", TEMP, U_BPM, &v, MT_ERR_PKT_IMPLAUSIBLE);
	/* the waveform code as a scalar */
	mt_num_set_int(&v, 1);
	bad += expect_plausible("ECG II as scalar", ECG_II, U_MV, &v, MT_ERR_PKT_IMPLAUSIBLE);
	/* the inhaler dose, a known code with its unit */
	bad += expect_plausible("inhaler dose", INHALER, U_DIMLESS, &v, MT_OK);
	bad += expect_plausible("inhaler dose in %", INHALER, U_PCT, &v, MT_ERR_PKT_IMPLAUSIBLE);
	assert_int_equal(bad, 0);

	/* waveforms: ECG II in mV accepted; a scalar quantity as a waveform, or
	 * the ECG in another unit, refused */
	static const int32_t s[] = {0, 10, -10};
	uint8_t sb[16];
	size_t sl;
	assert_int_equal(mt_waveform_encode(s, 3, sb, sizeof(sb), &sl), MT_OK);
	struct mt_message m;
	struct mt_obs o[2];
	const char *why = NULL;
	init_vitals(&m, o, 1);
	memset(&o[0], 0, sizeof(o[0]));
	o[0].waveform = true;
	o[0].code = ECG_II;
	o[0].unit = U_MV;
	o[0].period_us = 2000;
	mt_num_set_float(&o[0].scale, 0.001);
	o[0].samples = sb;
	o[0].samples_len = sl;
	o[0].n_samples = 3;
	assert_int_equal(mt_message_plausible(&m, &why), MT_OK);
	o[0].unit = U_BPM;
	assert_int_equal(mt_message_plausible(&m, &why), MT_ERR_PKT_IMPLAUSIBLE);
	o[0].unit = U_BPM;
	o[0].code = HR;
	assert_int_equal(mt_message_plausible(&m, &why), MT_ERR_PKT_IMPLAUSIBLE);

	/* every observation counts: a good one then a bad one */
	scalar(&o[0], 0, HR, U_BPM);
	mt_num_set_int(&o[0].value, 80);
	scalar(&o[1], 0, HR, U_BPM);
	mt_num_set_int(&o[1].value, 351);
	m.n_obs = 2;
	assert_int_equal(mt_message_plausible(&m, &why), MT_ERR_PKT_IMPLAUSIBLE);
	mt_num_set_int(&o[1].value, 350);
	assert_int_equal(mt_message_plausible(&m, &why), MT_OK);

	/* a message without observations has nothing implausible */
	init_msg(&m, MT_TYP_STATUS);
	m.has = MT_MSG_ST;
	m.st.has = MT_ST_BATTERY;
	assert_int_equal(mt_message_plausible(&m, &why), MT_OK);

	/* implausible is a later stage than the schema: the message decodes */
	uint8_t in[64];
	size_t n = mt_test_unhex(
	        "a5 01 656465762d31 02 01 03 01 04 01 05 81 84 00 1a00024182 19 2710 1a00040aa0",
	        in, sizeof(in)); /* heart rate 10000 */
	struct mt_message d;
	assert_int_equal(mt_message_decode(in, n, &d, obs_buf, MT_OBS_MAX, &why), MT_OK);
	assert_int_equal(mt_message_plausible(&d, &why), MT_ERR_PKT_IMPLAUSIBLE);
}

static void test_num_helpers(void **state)
{
	(void)state;
	struct mt_num n;
	mt_num_set_int(&n, INT64_MIN);
	assert_int_equal(n.kind, MT_NUM_NEGINT);
	assert_true(n.u == (UINT64_C(1) << 63) - 1);
	mt_num_set_int(&n, -1);
	assert_int_equal(n.kind, MT_NUM_NEGINT);
	assert_int_equal(n.u, 0);
	assert_true(mt_num_to_double(&n) == -1.0);
	mt_num_set_int(&n, 0);
	assert_int_equal(n.kind, MT_NUM_UINT);
	assert_true(mt_num_to_double(&n) == 0.0);
	mt_num_set_float(&n, 36.6);
	assert_int_equal(n.kind, MT_NUM_FLOAT);
	assert_true(mt_num_to_double(&n) == 36.6);
	assert_false(mt_num_is_int(&n));

	/* the whole CBOR range, and int64 where it fits */
	int64_t v = 7;
	assert_false(mt_num_get_int64(&n, &v)); /* a float */
	assert_int_equal(v, 7);
	mt_num_set_uint(&n, UINT64_MAX);
	assert_true(mt_num_is_int(&n));
	assert_int_equal(n.kind, MT_NUM_UINT);
	assert_false(mt_num_get_int64(&n, &v));
	mt_num_set_uint(&n, INT64_MAX);
	assert_true(mt_num_get_int64(&n, &v));
	assert_true(v == INT64_MAX);
	mt_num_set_uint(&n, (uint64_t)INT64_MAX + 1);
	assert_false(mt_num_get_int64(&n, &v));
	mt_num_set_negint(&n, UINT64_MAX); /* −2^64 */
	assert_true(mt_num_is_int(&n));
	assert_int_equal(n.kind, MT_NUM_NEGINT);
	assert_false(mt_num_get_int64(&n, &v));
	assert_true(mt_num_to_double(&n) == -18446744073709551616.0);
	mt_num_set_negint(&n, (uint64_t)INT64_MAX); /* −2^63 */
	assert_true(mt_num_get_int64(&n, &v));
	assert_true(v == INT64_MIN);
	mt_num_set_negint(&n, (uint64_t)INT64_MAX + 1); /* −2^63 − 1 */
	assert_false(mt_num_get_int64(&n, &v));
	mt_num_set_int(&n, -5);
	assert_true(mt_num_get_int64(&n, &v));
	assert_int_equal(v, -5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_message),
		cmocka_unit_test(test_vector_alert_message),
		cmocka_unit_test(test_round_trip_vitals),
		cmocka_unit_test(test_round_trip_waveform),
		cmocka_unit_test(test_round_trip_alert),
		cmocka_unit_test(test_round_trip_status),
		cmocka_unit_test(test_round_trip_ack),
		cmocka_unit_test(test_typ_table),
		cmocka_unit_test(test_typ_table_encoder),
		cmocka_unit_test(test_unknown_top_level_keys),
		cmocka_unit_test(test_unknown_nested_keys),
		cmocka_unit_test(test_device_id),
		cmocka_unit_test(test_counter_and_timestamp_bounds),
		cmocka_unit_test(test_text_bounds),
		cmocka_unit_test(test_observation_count),
		cmocka_unit_test(test_observation_fields),
		cmocka_unit_test(test_int_fields_beyond_int64),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_not_a_message),
		cmocka_unit_test(test_plausible_ranges),
		cmocka_unit_test(test_plausible_codes_and_units),
		cmocka_unit_test(test_num_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
