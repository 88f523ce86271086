/*
 * test_packet.c — the packet codec's own contract (src/core/packet.c,
 * protocol §4, §4a, §5): what goes in comes out, on the exact bytes.
 *
 * Three kinds of test live here.  Byte tests pin the sealer to the protocol:
 * the EdDSA and fast vectors of ../shared/vectors/mtp1 (copied into the
 * fixture) are reproduced to the byte, and an ES256 packet is taken apart
 * with the fixture's spec-only workbench and rebuilt identically.  Round
 * trips prove every typ, a waveform and the largest packet survive seal and
 * open unchanged, one byte over refused.  Rule tests walk the edges of the
 * policy the opener applies without being attacked: epochs (current and
 * previous; only 0 at 0; no wrap at the top), kind and typ per topic, the
 * clock-skew and stale flags at their exact boundaries, and receipts.
 *
 * The attacks themselves are in tests/security/test_threats_packet.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_cose.h"
#include "mt_testpkt.h"

#define EXPECT(fx, topic, p, n, want, what)                                                        \
	assert_true(mt_tp_expect((fx), (topic), (p), (n), (want), (what)))

static uint8_t pkt[MT_TP_BUF], pkt2[MT_TP_BUF], mb[MT_TP_BUF], pt[MT_TP_BUF], vec[MT_TP_BUF];

/* Compare the decoded message with what was sealed, field by field. */
static void assert_same_message(const struct mt_message *a, const struct mt_message *b)
{
	assert_int_equal(a->dev_len, b->dev_len);
	assert_memory_equal(a->dev, b->dev, a->dev_len);
	assert_int_equal(a->ctr, b->ctr);
	assert_int_equal(a->ts, b->ts);
	assert_int_equal(a->typ, b->typ);
	assert_int_equal(a->has, b->has);
	assert_int_equal(a->n_obs, b->n_obs);
	for (size_t i = 0; i < a->n_obs; i++) {
		const struct mt_obs *x = &a->obs[i], *y = &b->obs[i];
		assert_int_equal(x->waveform, y->waveform);
		assert_int_equal(x->t.kind, y->t.kind);
		assert_int_equal(x->t.u, y->t.u);
		assert_int_equal(x->code, y->code);
		assert_int_equal(x->unit, y->unit);
		if (x->waveform) {
			assert_int_equal(x->period_us, y->period_us);
			assert_int_equal(x->scale.kind, y->scale.kind);
			assert_true(mt_num_to_double(&x->scale) == mt_num_to_double(&y->scale));
			assert_int_equal(x->samples_len, y->samples_len);
			assert_memory_equal(x->samples, y->samples, x->samples_len);
			assert_int_equal(x->n_samples, y->n_samples);
		} else {
			assert_int_equal(x->value.kind, y->value.kind);
			assert_int_equal(x->value.u, y->value.u);
			assert_true(x->value.f == y->value.f);
			assert_int_equal(x->has_places, y->has_places);
			assert_int_equal(x->places, y->places);
		}
	}
	if (a->has & MT_MSG_ST) {
		unsigned h = a->st.has;
		assert_int_equal(h, b->st.has);
		if (h & MT_ST_BATTERY)
			assert_int_equal(a->st.battery, b->st.battery);
		if (h & MT_ST_FW) {
			assert_int_equal(a->st.fw_len, b->st.fw_len);
			assert_memory_equal(a->st.fw, b->st.fw, a->st.fw_len);
		}
		if (h & MT_ST_QUEUE)
			assert_int_equal(a->st.queue, b->st.queue);
		if (h & MT_ST_UPTIME)
			assert_int_equal(a->st.uptime, b->st.uptime);
		if (h & MT_ST_RSSI) {
			assert_int_equal(a->st.rssi.kind, b->st.rssi.kind);
			assert_int_equal(a->st.rssi.u, b->st.rssi.u);
		}
	}
	if (a->has & MT_MSG_ACK) {
		assert_int_equal(a->ack.ctr, b->ack.ctr);
		assert_int_equal(a->ack.result, b->ack.result);
		assert_int_equal(a->ack.detail_len, b->ack.detail_len);
		assert_memory_equal(a->ack.detail, b->ack.detail, a->ack.detail_len);
	}
	if (a->has & MT_MSG_ALRT) {
		assert_int_equal(a->alrt.code, b->alrt.code);
		assert_int_equal(a->alrt.prio, b->alrt.prio);
		assert_int_equal(a->alrt.text_len, b->alrt.text_len);
		assert_memory_equal(a->alrt.text, b->alrt.text, a->alrt.text_len);
	}
}

/* ---- keys and bytes -------------------------------------------------------- */

static void derive_keys_match_vector(void **state)
{
	struct mt_tp *fx = *state;
	uint8_t want[32], k[32], r[32];
	mt_test_unhex_exact(mt_tp_hex_ecdh_x, want, sizeof(want));
	assert_memory_equal(fx->ecdh_x, want, 32);
	assert_int_equal(mt_packet_derive_keys(fx->ecdh_x, 7, "dev-1", 5, k, r), MT_OK);
	mt_test_unhex_exact(mt_tp_hex_data_key, want, sizeof(want));
	assert_memory_equal(k, want, 32);
	mt_test_unhex_exact(mt_tp_hex_receipt_key, want, sizeof(want));
	assert_memory_equal(r, want, 32);
	/* each output alone gives the same value */
	uint8_t k2[32];
	assert_int_equal(mt_packet_derive_keys(fx->ecdh_x, 7, "dev-1", 5, k2, NULL), MT_OK);
	assert_memory_equal(k2, k, 32);
	/* epoch and device id are inputs */
	assert_int_equal(mt_packet_derive_keys(fx->ecdh_x, 6, "dev-1", 5, k2, NULL), MT_OK);
	assert_memory_not_equal(k2, k, 32);
	assert_int_equal(mt_packet_derive_keys(fx->ecdh_x, 7, "dev-2", 5, k2, NULL), MT_OK);
	assert_memory_not_equal(k2, k, 32);
	assert_int_not_equal(mt_packet_derive_keys(fx->ecdh_x, 7, "-bad", 4, k2, NULL), MT_OK);
	/* kids of the fixture keys are the vector's */
	uint8_t kid[8];
	mt_test_unhex_exact(mt_tp_hex_ldev_p256_kid, kid, sizeof(kid));
	assert_memory_equal(mt_pubkey_kid(mt_key_public(fx->p256)), kid, 8);
	mt_test_unhex_exact(mt_tp_hex_ldev_ed25519_kid, kid, sizeof(kid));
	assert_memory_equal(mt_pubkey_kid(mt_key_public(fx->ed25519)), kid, 8);
}

static void sealed_eddsa_matches_vector_bytes(void **state)
{
	struct mt_tp *fx = *state; /* Ed25519 device */
	struct mt_message m;
	struct mt_obs obs[8];
	size_t ml = mt_test_unhex(mt_tp_hex_message, mb, sizeof(mb)), n;
	size_t vl = mt_test_unhex(mt_tp_hex_sealed_eddsa_packet, vec, sizeof(vec));
	assert_int_equal(mt_message_decode(mb, ml, &m, obs, 8, NULL), MT_OK);
	assert_int_equal(mt_tp_seal_epoch(fx, &m, false, 7, mt_tp_iv, pkt, sizeof(pkt), &n), MT_OK);
	assert_int_equal(n, vl);
	assert_memory_equal(pkt, vec, vl);

	EXPECT(fx, MT_TOPIC_VITALS, vec, vl, MT_OK, "the vector packet");
	assert_int_equal(fx->res.kind, MT_PACKET_SEALED);
	assert_int_equal(fx->res.msg.ctr, 42);
	assert_same_message(&fx->res.msg, &m);
}

static void fast_matches_vector_bytes(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_message m;
	struct mt_obs obs[8];
	size_t ml = mt_test_unhex(mt_tp_hex_alert_message, mb, sizeof(mb)), n;
	size_t vl = mt_test_unhex(mt_tp_hex_fast_packet, vec, sizeof(vec));
	assert_int_equal(mt_message_decode(mb, ml, &m, obs, 8, NULL), MT_OK);
	assert_int_equal(mt_tp_seal_epoch(fx, &m, true, 7, mt_tp_iv, pkt, sizeof(pkt), &n), MT_OK);
	assert_int_equal(n, vl);
	assert_memory_equal(pkt, vec, vl);
	/* and the workbench builds the same bytes from the spec alone */
	assert_int_equal(mt_tp_encrypt(fx, mb, ml, pkt2, sizeof(pkt2)), vl);
	assert_memory_equal(pkt2, vec, vl);

	EXPECT(fx, MT_TOPIC_ALERT, vec, vl, MT_OK, "the vector fast packet");
	assert_int_equal(fx->res.kind, MT_PACKET_FAST);
	assert_same_message(&fx->res.msg, &m);
}

/* ES256 is randomised, so take the sealer's packet apart with the spec's
 * bytes and put it back together: it must come out identical. */
static void sealed_es256_layout_is_protocol_bytes(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	size_t n;
	mt_tp_vitals(fx, &mm, 41);
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	assert_int_equal(mt_tp_seal_epoch(fx, &mm.m, false, 7, mt_tp_iv, pkt, sizeof(pkt), &n),
	                 MT_OK);
	static const uint8_t head[] = {0xd0, 0x83, 0x43, 0xa1, 0x01, 0x03, 0xa2, 0x04,
	                               0x44, 0,    0,    0,    7,    0x05, 0x4c};
	assert_memory_equal(pkt, head, sizeof(head));
	assert_memory_equal(pkt + 15, mt_tp_iv, 12);

	size_t sl = mt_tp_decrypt(fx, pkt, n, pt, sizeof(pt));
	uint8_t want[32];
	size_t wl = 0;
	want[wl++] = 0xd2;
	want[wl++] = 0x84;
	want[wl++] = 0x43;
	wl += mt_tp_prot(fx, want + wl);
	wl += mt_tp_unprot(fx, want + wl);
	assert_memory_equal(want + 3, "\xa1\x01\x26", 3);
	assert_memory_equal(pt, want, wl);
	uint8_t mh[9];
	size_t mhl = mt_tp_head(2, ml, mh);
	assert_memory_equal(pt + wl, mh, mhl);
	assert_memory_equal(pt + wl + mhl, mb, ml);
	assert_int_equal(sl, wl + mhl + ml + 2 + 64);
	assert_memory_equal(pt + sl - 66, "\x58\x40", 2);

	/* the signature verifies over the spec's Sig_structure */
	size_t tl = mt_tp_sig_structure(want + 3, 3, mb, ml, vec, sizeof(vec));
	assert_int_equal(mt_sig_verify(mt_key_public(fx->ldev), NULL, 0, vec, tl, pt + sl - 64, 64),
	                 MT_OK);
	/* and the workbench rebuilds the packet byte for byte */
	size_t m = mt_tp_encrypt(fx, pt, sl, pkt2, sizeof(pkt2));
	assert_int_equal(m, n);
	assert_memory_equal(pkt2, pkt, n);
}

/* ---- round trips ------------------------------------------------------------ */

static void roundtrip(struct mt_tp *fx, const struct mt_message *m, bool fast, enum mt_topic topic)
{
	size_t n;
	assert_int_equal(mt_tp_seal_epoch(fx, m, fast, fx->epoch, NULL, pkt, sizeof(pkt), &n),
	                 MT_OK);
	assert_true(n <= MT_PACKET_MAX);
	EXPECT(fx, topic, pkt, n, MT_OK, fast ? "fast round trip" : "sealed round trip");
	assert_int_equal(fx->res.kind, fast ? MT_PACKET_FAST : MT_PACKET_SEALED);
	assert_int_equal(fx->res.epoch, fx->epoch);
	assert_memory_equal(fx->res.iv, pkt + 15, MT_AEAD_IV_LEN);
	assert_string_equal(fx->res.detail, "");
	assert_false(fx->res.clock_skewed);
	assert_false(fx->res.stale);
	assert_same_message(&fx->res.msg, m);
	if (fast) {
		assert_null(fx->res.sign1);
	} else {
		assert_non_null(fx->res.sign1);
		size_t sl = mt_tp_decrypt(fx, pkt, n, pt, sizeof(pt));
		assert_int_equal(fx->res.sign1_len, sl);
		assert_memory_equal(fx->res.sign1, pt, sl);
	}
}

static void roundtrip_sealed(void **state)
{
	struct mt_tp *fx = *state; /* run for both key types */
	struct mt_tp_msg mm;
	mt_tp_vitals(fx, &mm, 41);
	roundtrip(fx, &mm.m, false, MT_TOPIC_VITALS);
	mt_tp_vitals(fx, &mm, 42);
	roundtrip(fx, &mm.m, false, MT_TOPIC_NONE);
}

static void roundtrip_fast(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	mt_tp_alert(fx, &mm, 41);
	roundtrip(fx, &mm.m, true, MT_TOPIC_ALERT);
	mt_tp_alert(fx, &mm, 42); /* without observations or text */
	mm.m.has = MT_MSG_ALRT;
	mm.m.n_obs = 0;
	mm.m.obs = NULL;
	mm.m.alrt.text = NULL;
	mm.m.alrt.text_len = 0;
	roundtrip(fx, &mm.m, true, MT_TOPIC_NONE);
}

static void every_typ_roundtrip(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	mt_tp_vitals(fx, &mm, 41);
	roundtrip(fx, &mm.m, false, MT_TOPIC_VITALS);
	mt_tp_alert(fx, &mm, 42);
	roundtrip(fx, &mm.m, true, MT_TOPIC_ALERT);
	mt_tp_status(fx, &mm, 43);
	roundtrip(fx, &mm.m, false, MT_TOPIC_STATUS);
	mt_tp_status(fx, &mm, 44); /* one entry only */
	mm.m.st.has = MT_ST_RSSI;
	mt_num_set_int(&mm.m.st.rssi, -120);
	roundtrip(fx, &mm.m, false, MT_TOPIC_STATUS);
	mt_tp_ack(fx, &mm, 45);
	roundtrip(fx, &mm.m, false, MT_TOPIC_ACK);
	mt_tp_ack(fx, &mm, 46); /* error result, no detail */
	mm.m.ack.result = 3;
	mm.m.ack.detail = NULL;
	mm.m.ack.detail_len = 0;
	roundtrip(fx, &mm.m, false, MT_TOPIC_ACK);
	/* A sealed typ 2 has no topic of its own; `packet open` (no topic)
	 * takes it. */
	mt_tp_alert(fx, &mm, 47);
	roundtrip(fx, &mm.m, false, MT_TOPIC_NONE);
}

static void waveform_roundtrip(void **state)
{
	struct mt_tp *fx = *state;
	static const int32_t samples[] = {1, 0, 64, -64, 100000};
	static const uint8_t want[] = {0x02, 0x01, 0x80, 0x01, 0xff, 0x01, 0xc0, 0x9b, 0x0c};
	uint8_t enc[64];
	int32_t back[8];
	size_t el, nb;
	struct mt_tp_msg mm;

	assert_int_equal(mt_waveform_encode(samples, 5, enc, sizeof(enc), &el), MT_OK);
	assert_int_equal(el, sizeof(want));
	assert_memory_equal(enc, want, el);

	mt_tp_vitals(fx, &mm, 41);
	mm.m.n_obs = 2;
	struct mt_obs *w = &mm.obs[1];
	memset(w, 0, sizeof(*w));
	w->waveform = true;
	mt_num_set_int(&w->t, -500);
	w->code = 131330;
	w->unit = 266418;
	w->period_us = 4000;
	mt_num_set_float(&w->scale, 0.005);
	w->samples = enc;
	w->samples_len = el;
	w->n_samples = 5;
	roundtrip(fx, &mm.m, false, MT_TOPIC_VITALS);
	const struct mt_obs *o = &fx->res.msg.obs[1];
	assert_true(o->waveform);
	assert_int_equal(o->n_samples, 5);
	assert_int_equal(mt_waveform_decode(o->samples, o->samples_len, back, 8, &nb), MT_OK);
	assert_int_equal(nb, 5);
	assert_memory_equal(back, samples, sizeof(samples));
}

/* ---- size ---------------------------------------------------------------------- */

static uint8_t zeros[MT_PACKET_MAX]; /* each 00 is one zero sample */

static enum mt_err seal_wave(struct mt_tp *fx, uint64_t ctr, size_t n_samples, size_t *len)
{
	struct mt_tp_msg mm;
	mt_tp_vitals(fx, &mm, ctr);
	mm.m.n_obs = 1;
	struct mt_obs *w = &mm.obs[0];
	memset(w, 0, sizeof(*w));
	w->waveform = true;
	w->code = 131330;
	w->unit = 266418;
	w->period_us = 2000;
	mt_num_set_int(&w->scale, 1);
	w->samples = zeros;
	w->samples_len = n_samples;
	w->n_samples = (uint32_t)n_samples;
	return mt_tp_seal_epoch(fx, &mm.m, false, fx->epoch, NULL, pkt, sizeof(pkt), len);
}

static void largest_packet_fits_one_byte_more_refused(void **state)
{
	struct mt_tp *fx = *state;
	size_t len, n = 60000;
	assert_int_equal(seal_wave(fx, 41, n, &len), MT_OK);
	n += MT_PACKET_MAX - len;
	assert_int_equal(seal_wave(fx, 41, n, &len), MT_OK);
	assert_int_equal(len, MT_PACKET_MAX);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, len, MT_OK, "a packet of exactly 65,536 bytes");
	assert_int_equal(fx->res.msg.obs[0].n_samples, n);

	/* a byte over, at the sealer... */
	size_t over;
	assert_int_equal(seal_wave(fx, 42, n + 1, &over), MT_ERR_PKT_SIZE);
	/* ...and at the opener, where size is stage 1, before strict CBOR */
	assert_int_equal(seal_wave(fx, 42, n, &len), MT_OK);
	pkt[len] = 0x00;
	EXPECT(fx, MT_TOPIC_VITALS, pkt, len + 1, MT_ERR_PKT_SIZE, "65,537 bytes");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, len, MT_OK, "control: the same 65,536");
}

static void open_refuses_over_65536_at_size(void **state)
{
	struct mt_tp *fx = *state;
	memset(pkt, 0xa5, MT_PACKET_MAX + 2);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, MT_PACKET_MAX + 1, MT_ERR_PKT_SIZE, "65,537 bytes of a5");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, MT_PACKET_MAX + 2, MT_ERR_PKT_SIZE, "65,538 bytes");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, MT_PACKET_MAX, MT_ERR_PKT_CBOR,
	       "65,536 bytes of a5: not size");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, 0, MT_ERR_PKT_CBOR, "empty input");
}

/* ---- epochs ------------------------------------------------------------------------ */

static void epoch_current_and_previous_accepted(void **state)
{
	struct mt_tp *fx = *state;
	assert_true(mt_tp_expect_epoch(fx, 7, 1, MT_OK));
	assert_true(mt_tp_expect_epoch(fx, 6, 2, MT_OK));
	assert_true(mt_tp_expect_epoch(fx, 5, 3, MT_ERR_PKT_EPOCH));
	assert_true(mt_tp_expect_epoch(fx, 8, 4, MT_ERR_PKT_EPOCH));
}

static void epoch_zero_accepts_only_zero(void **state)
{
	struct mt_tp *fx = *state;
	fx->epoch = 0;
	assert_true(mt_tp_expect_epoch(fx, 0, 1, MT_OK));
	assert_true(
	        mt_tp_expect_epoch(fx, UINT32_MAX, 2, MT_ERR_PKT_EPOCH)); /* 0 − 1 must not wrap */
	assert_true(mt_tp_expect_epoch(fx, 1, 3, MT_ERR_PKT_EPOCH));
}

static void epoch_at_the_top_does_not_wrap(void **state)
{
	struct mt_tp *fx = *state;
	fx->epoch = UINT32_MAX;
	assert_true(mt_tp_expect_epoch(fx, UINT32_MAX, 1, MT_OK));
	assert_true(mt_tp_expect_epoch(fx, UINT32_MAX - 1, 2, MT_OK));
	assert_true(mt_tp_expect_epoch(fx, 0, 3, MT_ERR_PKT_EPOCH));
	assert_true(mt_tp_expect_epoch(fx, UINT32_MAX - 2, 4, MT_ERR_PKT_EPOCH));
}

static void epoch_unchecked_without_registry(void **state)
{
	struct mt_tp *fx = *state;
	fx->check_epoch = false; /* medtrust packet open without --epoch */
	assert_true(mt_tp_expect_epoch(fx, 1234, 1, MT_OK));
	assert_true(mt_tp_expect_epoch(fx, 0, 2, MT_OK));
}

/* ---- kind and typ per topic ------------------------------------------------------------- */

static void sealed_typ_must_match_topic(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	size_t n;

	mt_tp_vitals(fx, &mm, 41);
	n = mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_STATUS, pkt, n, MT_ERR_PKT_MESSAGE, "sealed typ 1 on up/status");
	EXPECT(fx, MT_TOPIC_ACK, pkt, n, MT_ERR_PKT_MESSAGE, "sealed typ 1 on up/ack");
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_INNER, "sealed packet on up/alert");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: sealed typ 1 on up/vitals");

	mt_tp_status(fx, &mm, 42);
	n = mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_MESSAGE, "sealed typ 3 on up/vitals");
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_INNER, "sealed typ 3 on up/alert");
	EXPECT(fx, MT_TOPIC_STATUS, pkt, n, MT_OK, "control: sealed typ 3 on up/status");

	mt_tp_ack(fx, &mm, 43);
	n = mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_STATUS, pkt, n, MT_ERR_PKT_MESSAGE, "sealed typ 4 on up/status");
	EXPECT(fx, MT_TOPIC_ACK, pkt, n, MT_OK, "control: sealed typ 4 on up/ack");

	mt_tp_alert(fx, &mm, 44);
	n = mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_INNER, "sealed typ 2 on up/alert");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_MESSAGE, "sealed typ 2 on up/vitals");
}

/* ---- clock flags -------------------------------------------------------------------------- */

static void flags_at(struct mt_tp *fx, uint64_t now, uint64_t ts, uint64_t ctr, bool skewed,
                     bool stale)
{
	struct mt_tp_msg mm;
	char what[96];
	fx->now_ms = now;
	mt_tp_vitals(fx, &mm, ctr);
	mm.m.ts = ts;
	size_t n = mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
	snprintf(what, sizeof(what), "ts - now = %lld ms", (long long)(ts - now));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, what);
	if (fx->res.clock_skewed != skewed || fx->res.stale != stale)
		fail_msg("%s: skewed %d stale %d, want %d %d", what, fx->res.clock_skewed,
		         fx->res.stale, skewed, stale);
}

static void clock_skew_and_stale_flags(void **state)
{
	struct mt_tp *fx = *state;
	const uint64_t now = MT_TP_TS, min5 = 5 * 60 * 1000, day = UINT64_C(24) * 3600 * 1000;
	uint64_t c = 1;
	flags_at(fx, now, now, c++, false, false);
	flags_at(fx, now, now + min5, c++, false, false);
	flags_at(fx, now, now + min5 + 1, c++, true, false);
	flags_at(fx, now, now + day, c++, true, false);
	flags_at(fx, now, now - day, c++, false, false);
	flags_at(fx, now, now - day - 1, c++, false, true);
	flags_at(fx, now, 0, c++, false, true);
	/* now_ms 0: no hub clock, nothing flagged */
	flags_at(fx, 0, now + day, c++, false, false);
	flags_at(fx, 0, 0, c++, false, false);
}

/* ---- receipts ---------------------------------------------------------------------------- */

static enum mt_err seal_receipt(struct mt_tp *fx, uint64_t (*ranges)[2], size_t n, uint8_t *out,
                                size_t *len)
{
	uint8_t rk[MT_KEY_LEN];
	mt_tp_receipt_key(fx, fx->epoch, rk);
	struct mt_receipt rc = {.dev = fx->dev,
	                        .dev_len = fx->dev_len,
	                        .ranges = ranges,
	                        .n_ranges = n,
	                        .ts = MT_TP_TS};
	return mt_receipt_seal(fx->aead, rk, fx->epoch, NULL, &rc, out, MT_TP_BUF, len);
}

static enum mt_err open_receipt(struct mt_tp *fx, const char *dev, const uint8_t *key,
                                const uint8_t *p, size_t n, uint64_t (*ranges)[2], size_t cap,
                                struct mt_receipt *r)
{
	return mt_receipt_open(fx->aead, key, dev, strlen(dev), p, n, pt, sizeof(pt), ranges, cap,
	                       r);
}

static void receipt_roundtrip(void **state)
{
	struct mt_tp *fx = *state;
	uint64_t in[3][2] = {{0, 0}, {2, 40}, {UINT64_C(1) << 40, (UINT64_C(1) << 40) + 7}};
	uint64_t out[8][2];
	struct mt_receipt r;
	uint8_t rk[MT_KEY_LEN];
	uint32_t ep;
	size_t n;

	assert_int_equal(seal_receipt(fx, in, 3, pkt, &n), MT_OK);
	assert_int_equal(mt_packet_epoch(pkt, n, &ep), MT_OK);
	assert_int_equal(ep, fx->epoch);
	mt_tp_receipt_key(fx, ep, rk);
	memset(&r, 0, sizeof(r));
	assert_int_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 8, &r), MT_OK);
	assert_int_equal(r.dev_len, 5);
	assert_memory_equal(r.dev, "dev-1", 5);
	assert_int_equal(r.n_ranges, 3);
	assert_memory_equal(r.ranges, in, sizeof(in));
	assert_int_equal(r.ts, MT_TP_TS);

	/* An empty receipt (nothing resolved) is still a receipt. */
	assert_int_equal(seal_receipt(fx, in, 0, pkt, &n), MT_OK);
	assert_int_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 8, &r), MT_OK);
	assert_int_equal(r.n_ranges, 0);

	/* The vector receipt opens with the vector receipt key. */
	uint8_t vk[32];
	mt_test_unhex_exact(mt_tp_hex_receipt_key, vk, sizeof(vk));
	size_t vl = mt_test_unhex(mt_tp_hex_receipt_packet, vec, sizeof(vec));
	assert_int_equal(open_receipt(fx, "dev-1", vk, vec, vl, out, 8, &r), MT_OK);
	assert_int_equal(r.dev_len, 5);
	assert_memory_equal(r.dev, "dev-1", 5);
}

static void receipt_wrong_device_or_key_refused(void **state)
{
	struct mt_tp *fx = *state;
	uint64_t in[1][2] = {{5, 9}}, out[4][2];
	struct mt_receipt r;
	uint8_t rk[MT_KEY_LEN], dk[MT_KEY_LEN];
	size_t n;
	mt_tp_receipt_key(fx, fx->epoch, rk);
	mt_tp_data_key(fx, fx->epoch, dk);

	assert_int_equal(seal_receipt(fx, in, 1, pkt, &n), MT_OK);
	assert_int_equal(open_receipt(fx, "dev-2", rk, pkt, n, out, 4, &r), MT_ERR_PKT_AEAD);
	assert_int_equal(open_receipt(fx, "dev-1", dk, pkt, n, out, 4, &r), MT_ERR_PKT_AEAD);
	/* A receipt is not a packet, and a packet is not a receipt. */
	EXPECT(fx, MT_TOPIC_NONE, pkt, n, MT_ERR_PKT_AEAD, "receipt opened as a packet");
	size_t m = mt_tp_seal_vitals(fx, 41, pkt2, sizeof(pkt2));
	assert_int_equal(open_receipt(fx, "dev-1", rk, pkt2, m, out, 4, &r), MT_ERR_PKT_AEAD);
	assert_int_equal(open_receipt(fx, "dev-1", dk, pkt2, m, out, 4, &r), MT_ERR_PKT_AEAD);
	/* tampered */
	pkt[n - 1] ^= 1;
	assert_int_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 4, &r), MT_ERR_PKT_AEAD);
	pkt[n - 1] ^= 1;
	/* more ranges than the caller can hold, or too small a scratch buffer */
	assert_int_not_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 0, &r), MT_OK);
	assert_int_not_equal(mt_receipt_open(fx->aead, rk, "dev-1", 5, pkt, n, pt, 4, out, 4, &r),
	                     MT_OK);
	assert_int_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 4, &r), MT_OK);
}

/* A receipt made by hand: the §4 layout under the receipt key, AAD "rcpt:dev-1". */
static size_t craft_receipt(struct mt_tp *fx, const uint8_t *p, size_t pl, uint8_t *out)
{
	static const uint8_t head[] = {0xd0, 0x83, 0x43, 0xa1, 0x01, 0x03, 0xa2, 0x04,
	                               0x44, 0,    0,    0,    7,    0x05, 0x4c};
	static const uint8_t aad[] = {0x83, 0x68, 'E',  'n',  'c',  'r',  'y', 'p', 't',
	                              '0',  0x43, 0xa1, 0x01, 0x03, 0x4a, 'r', 'c', 'p',
	                              't',  ':',  'd',  'e',  'v',  '-',  '1'};
	uint8_t rk[MT_KEY_LEN];
	size_t n = 0;
	assert_int_equal(fx->epoch, 7);
	mt_tp_receipt_key(fx, 7, rk);
	memcpy(out, head, sizeof(head));
	n += sizeof(head);
	memcpy(out + n, mt_tp_iv, 12);
	n += 12;
	n += mt_tp_head(2, pl + 16, out + n);
	assert_int_equal(mt_aead_seal(fx->aead, rk, 32, mt_tp_iv, aad, sizeof(aad), p, pl, out + n),
	                 MT_OK);
	return n + pl + 16;
}

static void receipt_ranges_sorted_disjoint_merged(void **state)
{
	struct mt_tp *fx = *state;
	struct {
		const char *what;
		uint64_t r[2][2];
	} bad[] = {
	        {"unsorted", {{10, 12}, {1, 2}}},
	        {"overlapping", {{1, 5}, {5, 9}}},
	        {"overlapping inside", {{1, 9}, {3, 4}}},
	        {"adjacent, not merged", {{1, 4}, {5, 9}}},
	        {"equal", {{3, 3}, {3, 3}}},
	        {"first > last", {{1, 2}, {9, 5}}},
	        {"after a range ending at 2^64 - 1", {{0, UINT64_MAX}, {5, 6}}},
	};
	uint64_t ok[2][2] = {{1, 4}, {6, 9}}, out[4][2];
	size_t n;
	struct mt_receipt r;
	uint8_t rk[MT_KEY_LEN];
	mt_tp_receipt_key(fx, fx->epoch, rk);

	unsigned sealed_bad = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum mt_err e = seal_receipt(fx, bad[i].r, 2, pkt, &n);
		if (e == MT_OK) {
			print_error("receipt with ranges %s sealed\n", bad[i].what);
			sealed_bad++;
		}
	}
	assert_int_equal(seal_receipt(fx, ok, 2, pkt, &n), MT_OK);
	assert_int_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 4, &r), MT_OK);

	/* The opener holds the same line against a hand-made receipt. */
	static const uint8_t unsorted[] = {0xa3, 0x01, 0x65, 'd',  'e',  'v',  '-',  '1',  0x02,
	                                   0x82, 0x82, 0x0a, 0x0c, 0x82, 0x01, 0x02, 0x03, 0x00};
	static const uint8_t adjacent[] = {0xa3, 0x01, 0x65, 'd',  'e',  'v',  '-',  '1',  0x02,
	                                   0x82, 0x82, 0x01, 0x04, 0x82, 0x05, 0x09, 0x03, 0x00};
	static const uint8_t good[] = {0xa3, 0x01, 0x65, 'd',  'e',  'v',  '-',  '1',  0x02,
	                               0x82, 0x82, 0x01, 0x04, 0x82, 0x06, 0x09, 0x03, 0x00};
	/* [[0, 2^64 - 1], [5, 6]]: overlapping, whatever unsigned arithmetic says */
	static const uint8_t wrap[] = {0xa3, 0x01, 0x65, 'd',  'e',  'v',  '-',  '1',  0x02,
	                               0x82, 0x82, 0x00, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff,
	                               0xff, 0xff, 0xff, 0x82, 0x05, 0x06, 0x03, 0x00};
	static const uint8_t other[] = {0xa3, 0x01, 0x65, 'd',  'e',  'v',  '-', '2',
	                                0x02, 0x81, 0x82, 0x01, 0x04, 0x03, 0x00};
	n = craft_receipt(fx, unsorted, sizeof(unsorted), pkt);
	assert_int_not_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 4, &r), MT_OK);
	n = craft_receipt(fx, adjacent, sizeof(adjacent), pkt);
	assert_int_not_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 4, &r), MT_OK);
	n = craft_receipt(fx, wrap, sizeof(wrap), pkt);
	if (open_receipt(fx, "dev-1", rk, pkt, n, out, 4, &r) == MT_OK) {
		print_error("receipt opened with a range after [0, 2^64 - 1]\n");
		sealed_bad++;
	}
	n = craft_receipt(fx, other, sizeof(other), pkt);
	enum mt_err e = open_receipt(fx, "dev-1", rk, pkt, n, out, 4, &r);
	assert_int_not_equal(e, MT_OK); /* names another device */
	assert_non_null(mt_err_stage(e));
	n = craft_receipt(fx, good, sizeof(good), pkt);
	assert_int_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 4, &r), MT_OK);
	assert_int_equal(r.n_ranges, 2);
	assert_int_equal(out[1][0], 6);
	if (sealed_bad)
		fail_msg("%u receipt(s) with bad ranges sealed or opened", sealed_bad);
}

static void receipt_512_ranges_ok_513_refused(void **state)
{
	struct mt_tp *fx = *state;
	static uint64_t in[MT_RECEIPT_MAX_RANGES + 1][2], out[MT_RECEIPT_MAX_RANGES + 1][2];
	struct mt_receipt r;
	uint8_t rk[MT_KEY_LEN];
	size_t n;
	for (size_t i = 0; i < MT_RECEIPT_MAX_RANGES + 1; i++) {
		in[i][0] = 3 * i;
		in[i][1] = 3 * i + 1;
	}
	mt_tp_receipt_key(fx, fx->epoch, rk);
	assert_int_equal(seal_receipt(fx, in, 512, pkt, &n), MT_OK);
	assert_int_equal(open_receipt(fx, "dev-1", rk, pkt, n, out, 513, &r), MT_OK);
	assert_int_equal(r.n_ranges, 512);
	assert_memory_equal(out, in, 512 * sizeof(in[0]));
	assert_int_not_equal(seal_receipt(fx, in, 513, pkt, &n), MT_OK);
}

/* ---- the rest of the API ------------------------------------------------------------------- */

static void packet_epoch_reads_the_header(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	uint32_t ep = 0;
	size_t n;
	mt_tp_vitals(fx, &mm, 41);
	assert_int_equal(mt_tp_seal_epoch(fx, &mm.m, false, 0xdeadbeef, NULL, pkt, sizeof(pkt), &n),
	                 MT_OK);
	assert_int_equal(mt_packet_epoch(pkt, n, &ep), MT_OK);
	assert_int_equal(ep, 0xdeadbeef);
	n = mt_tp_seal_vitals(fx, 42, pkt, sizeof(pkt));
	assert_int_equal(mt_packet_epoch(pkt, n, &ep), MT_OK);
	assert_int_equal(ep, 7);

	static const uint8_t garbage[] = "hello";
	enum mt_err e = mt_packet_epoch(garbage, 5, &ep);
	assert_true(e == MT_ERR_PKT_CBOR || e == MT_ERR_PKT_HEADER);
	assert_int_equal(mt_packet_epoch(pkt, n - 1, &ep), MT_ERR_PKT_CBOR);
	assert_int_equal(mt_packet_epoch(pkt + 1, n - 1, &ep), MT_ERR_PKT_HEADER);
	static const uint8_t empty_array[] = {0x80};
	assert_int_equal(mt_packet_epoch(empty_array, 1, &ep), MT_ERR_PKT_HEADER);
}

static void open_returns_sign1_that_verifies_again(void **state)
{
	struct mt_tp *fx = *state; /* both key types */
	struct mt_tp_msg mm;
	struct mt_cose_sign1 s;
	uint8_t copy[1024];
	mt_tp_vitals(fx, &mm, 41);
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	size_t n = mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "sealed");
	assert_non_null(fx->res.sign1);
	assert_true(fx->res.sign1_len <= sizeof(copy));
	size_t sl = fx->res.sign1_len;
	memcpy(copy, fx->res.sign1, sl);

	assert_int_equal(mt_cose_sign1_decode(copy, sl, true, &s), MT_OK);
	assert_true(s.tagged);
	assert_int_equal(s.payload_len, ml);
	assert_memory_equal(s.payload, mb, ml);
	assert_int_equal(s.uh.kid_len, MT_KID_LEN);
	assert_memory_equal(s.uh.kid, mt_pubkey_kid(mt_key_public(fx->ldev)), MT_KID_LEN);
	assert_int_equal(mt_cose_sign1_verify(&s, mt_key_public(fx->ldev), NULL, 0), MT_OK);
	/* what is stored still proves who said it: another key does not verify */
	assert_int_not_equal(mt_cose_sign1_verify(&s, mt_key_public(fx->other), NULL, 0), MT_OK);
	copy[sl - 1] ^= 1;
	assert_int_equal(mt_cose_sign1_decode(copy, sl, true, &s), MT_OK);
	assert_int_not_equal(mt_cose_sign1_verify(&s, mt_key_public(fx->ldev), NULL, 0), MT_OK);
}

static void seal_refuses_bad_input(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	uint8_t key[MT_KEY_LEN], small[64];
	size_t n;

	mt_tp_vitals(fx, &mm, 41);
	assert_int_equal(mt_tp_seal_epoch(fx, &mm.m, true, 7, NULL, pkt, sizeof(pkt), &n),
	                 MT_ERR_PKT_MESSAGE); /* fast must be typ 2 */
	mt_tp_vitals(fx, &mm, UINT64_C(1) << 63);
	assert_int_equal(mt_tp_seal_epoch(fx, &mm.m, false, 7, NULL, pkt, sizeof(pkt), &n),
	                 MT_ERR_PKT_MESSAGE);
	mt_tp_vitals(fx, &mm, 41);
	mt_num_set_float(&mm.obs[0].value, NAN);
	assert_int_equal(mt_tp_seal_epoch(fx, &mm.m, false, 7, NULL, pkt, sizeof(pkt), &n),
	                 MT_ERR_PKT_MESSAGE);
	mt_tp_vitals(fx, &mm, 41);
	mm.m.n_obs = 0; /* vitals need 1..1024 observations */
	assert_int_equal(mt_tp_seal_epoch(fx, &mm.m, false, 7, NULL, pkt, sizeof(pkt), &n),
	                 MT_ERR_PKT_MESSAGE);

	mt_tp_vitals(fx, &mm, 41);
	mt_tp_data_key(fx, 7, key);
	struct mt_seal_params sp = {.dev = fx->dev,
	                            .dev_len = fx->dev_len,
	                            .epoch = 7,
	                            .data_key = key,
	                            .ldev = fx->ldev,
	                            .aead = fx->aead};
	assert_int_equal(mt_packet_seal(&sp, &mm.m, small, sizeof(small), &n), MT_ERR_BUFFER);
	assert_int_equal(mt_packet_seal(&sp, &mm.m, pkt, 150, &n), MT_ERR_BUFFER);
	sp.dev = "-bad";
	sp.dev_len = 4;
	assert_int_not_equal(mt_packet_seal(&sp, &mm.m, pkt, sizeof(pkt), &n), MT_OK);
	sp.dev = fx->dev;
	sp.dev_len = fx->dev_len;
	sp.ldev = fx->kx; /* a derive-only key never signs */
	assert_int_not_equal(mt_packet_seal(&sp, &mm.m, pkt, sizeof(pkt), &n), MT_OK);
	sp.ldev = fx->ldev;
	assert_int_equal(mt_packet_seal(&sp, &mm.m, pkt, sizeof(pkt), &n), MT_OK);
	mt_wipe(key, sizeof(key));
}

/* Threat I07 in miniature: the sealer draws a fresh IV every time. */
static void random_iv_fresh_per_seal(void **state)
{
	struct mt_tp *fx = *state;
	uint8_t ivs[16][MT_AEAD_IV_LEN];
	for (size_t i = 0; i < 16; i++) {
		size_t n = mt_tp_seal_vitals(fx, 41, pkt, sizeof(pkt));
		assert_true(n > 27);
		memcpy(ivs[i], pkt + 15, MT_AEAD_IV_LEN);
		for (size_t j = 0; j < i; j++)
			assert_memory_not_equal(ivs[i], ivs[j], MT_AEAD_IV_LEN);
	}
}

int main(void)
{
#define T_P(f) cmocka_unit_test_setup_teardown(f, mt_tp_setup_p256, mt_tp_teardown)
#define T_E(f) cmocka_unit_test_setup_teardown(f, mt_tp_setup_ed25519, mt_tp_teardown)
	const struct CMUnitTest tests[] = {
	        T_P(derive_keys_match_vector),
	        T_E(sealed_eddsa_matches_vector_bytes),
	        T_P(fast_matches_vector_bytes),
	        T_P(sealed_es256_layout_is_protocol_bytes),
	        T_P(roundtrip_sealed),
	        T_E(roundtrip_sealed),
	        T_P(roundtrip_fast),
	        T_P(every_typ_roundtrip),
	        T_E(every_typ_roundtrip),
	        T_P(waveform_roundtrip),
	        T_P(largest_packet_fits_one_byte_more_refused),
	        T_P(open_refuses_over_65536_at_size),
	        T_P(epoch_current_and_previous_accepted),
	        T_P(epoch_zero_accepts_only_zero),
	        T_P(epoch_at_the_top_does_not_wrap),
	        T_P(epoch_unchecked_without_registry),
	        T_P(sealed_typ_must_match_topic),
	        T_P(clock_skew_and_stale_flags),
	        T_P(receipt_roundtrip),
	        T_P(receipt_wrong_device_or_key_refused),
	        T_P(receipt_ranges_sorted_disjoint_merged),
	        T_P(receipt_512_ranges_ok_513_refused),
	        T_P(packet_epoch_reads_the_header),
	        T_P(open_returns_sign1_that_verifies_again),
	        T_E(open_returns_sign1_that_verifies_again),
	        T_P(seal_refuses_bad_input),
	        T_P(random_iv_fresh_per_seal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
