/*
 * test_threats_packet.c — the attacker's side of the packet codec: one test
 * per row of threats.md group A (and I09) that mt_packet_open decides alone.
 *
 * Each test forges what the row describes and asserts the exact refusal
 * stage of protocol §5 — the stage, not just "refused", because the stage
 * is what the hub counts, audits and alarms on, and because a refusal at the
 * wrong stage usually means a check ran on data that an earlier check should
 * have stopped.  For every refusal before stage 13 the replay window's
 * serial form must come out byte-identical (mt_tp_expect checks it): a
 * packet that did not pass its signature must not be able to move the window
 * and lock the device out.  Every negative runs beside its positive control,
 * so a test cannot pass because everything is refused.
 *
 * Forgeries are built with the workbench of tests/support/mt_testpkt.h,
 * straight from the bytes of protocol §4 and under the real data key, so a
 * malformed inner object still passes the AEAD and reaches the check that
 * owns it.  Where the spec leaves a choice of stage, the test says which it
 * accepts and why.
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

#include "mt_testpkt.h"

#define EXPECT(fx, topic, p, n, want, what)                                                        \
	assert_true(mt_tp_expect((fx), (topic), (p), (n), (want), (what)))

static uint8_t pkt[MT_TP_BUF], pkt2[MT_TP_BUF], s1[MT_TP_BUF], mb[MT_TP_BUF], mb2[MT_TP_BUF],
        pt[MT_TP_BUF];

/* P-256 group order n, big-endian. */
static const uint8_t p256_n[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
                                   0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
/* Ed25519 group order L, little-endian (RFC 8032). */
static const uint8_t ed_l[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                 0xa2, 0xde, 0xf9, 0xde, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

/* out = a − b, 32-byte big-endian, a ≥ b. */
static void sub_be(const uint8_t *a, const uint8_t *b, uint8_t *out)
{
	int borrow = 0;
	for (int i = 31; i >= 0; i--) {
		int d = a[i] - b[i] - borrow;
		borrow = d < 0;
		out[i] = (uint8_t)(d + (borrow ? 256 : 0));
	}
}

/* out = a + b, 32-byte little-endian (no overflow expected). */
static void add_le(const uint8_t *a, const uint8_t *b, uint8_t *out)
{
	unsigned carry = 0;
	for (int i = 0; i < 32; i++) {
		unsigned s = (unsigned)a[i] + b[i] + carry;
		out[i] = (uint8_t)s;
		carry = s >> 8;
	}
	assert_int_equal(carry, 0);
}

/* A sealed packet of message `m` whose Sign1 carries signature sig[0..sig_len)
 * and otherwise the standard headers. */
static size_t seal_with_sig(struct mt_tp *fx, const uint8_t *m, size_t m_len, const uint8_t *sig,
                            size_t sig_len, uint8_t *out)
{
	uint8_t prot[3], unprot[11];
	size_t pl = mt_tp_prot(fx, prot), ul = mt_tp_unprot(fx, unprot);
	size_t n =
	        mt_tp_sign1_raw(true, prot, pl, unprot, ul, m, m_len, sig, sig_len, s1, sizeof(s1));
	return mt_tp_encrypt(fx, s1, n, out, MT_TP_BUF);
}

/* A sealed packet of vitals `ctr` whose Sign1 has the given protected and
 * unprotected bytes, signed by `k` (NULL: registered key) over them. */
static size_t seal_with_headers(struct mt_tp *fx, uint64_t ctr, struct mt_key *k,
                                const uint8_t *prot, size_t pl, const uint8_t *unprot, size_t ul,
                                uint8_t *out)
{
	struct mt_tp_msg mm;
	mt_tp_vitals(fx, &mm, ctr);
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	size_t n = mt_tp_sign1(fx, k, prot, pl, unprot, ul, mb, ml, s1, sizeof(s1));
	return mt_tp_encrypt(fx, s1, n, out, MT_TP_BUF);
}

/* ---- A01 ------------------------------------------------------------------ */

static void sweep(struct mt_tp *fx, enum mt_topic topic, uint8_t *p, size_t n)
{
	size_t ct_len, off = mt_tp_ct_offset(p, n, &ct_len);
	char what[96];

	/* Every bit of ciphertext ‖ tag: the tag must catch it. */
	for (size_t i = off; i < n; i++) {
		for (unsigned b = 0; b < 8; b++) {
			p[i] ^= (uint8_t)(1u << b);
			snprintf(what, sizeof(what), "ciphertext byte %zu bit %u", i, b);
			bool ok = mt_tp_expect(fx, topic, p, n, MT_ERR_PKT_AEAD, what);
			p[i] ^= (uint8_t)(1u << b);
			assert_true(ok);
		}
	}
	/* Every bit of the header: refused at cbor, header or epoch — or at
	 * aead where the flip lands in the IV or turns epoch 7 into 6. */
	for (size_t i = 0; i < off; i++) {
		for (unsigned b = 0; b < 8; b++) {
			uint8_t before[MT_REPLAY_STATE_LEN], after[MT_REPLAY_STATE_LEN];
			unsigned calls = fx->data_key_calls;
			p[i] ^= (uint8_t)(1u << b);
			uint32_t ep = (uint32_t)p[9] << 24 | (uint32_t)p[10] << 16 |
			              (uint32_t)p[11] << 8 | p[12];
			mt_tp_window_save(fx, before);
			enum mt_err got = mt_tp_open(fx, topic, p, n);
			mt_tp_window_save(fx, after);
			p[i] ^= (uint8_t)(1u << b);
			if (got == MT_OK || memcmp(before, after, sizeof(before)) != 0 ||
			    (got != MT_ERR_PKT_CBOR && got != MT_ERR_PKT_HEADER &&
			     got != MT_ERR_PKT_EPOCH && got != MT_ERR_PKT_AEAD))
				fail_msg("header byte %zu bit %u: %s (%s)", i, b, mt_tp_name(got),
				         fx->res.detail);
			if (i >= 15 && i < 27 && got != MT_ERR_PKT_AEAD)
				fail_msg("IV byte %zu bit %u: %s, want aead", i, b,
				         mt_tp_name(got));
			if (i >= 9 && i < 13) {
				enum mt_err want =
				        ep == MT_TP_EPOCH - 1 ? MT_ERR_PKT_AEAD : MT_ERR_PKT_EPOCH;
				if (got != want)
					fail_msg("epoch byte %zu bit %u (epoch %u): %s, want %s", i,
					         b, ep, mt_tp_name(got), mt_tp_name(want));
				if (want == MT_ERR_PKT_EPOCH && fx->data_key_calls != calls)
					fail_msg("epoch %u refused after key derivation", ep);
			}
		}
	}
}

static void A01_bit_flip_sweep_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;

	/* sealed, on up/vitals */
	size_t n = mt_tp_seal_vitals(fx, 41, pkt, sizeof(pkt));
	mt_tp_window_prime(fx, 40);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: untouched sealed packet");
	mt_tp_window_prime(fx, 40); /* counter 41 is new again */
	sweep(fx, MT_TOPIC_VITALS, pkt, n);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: restored sealed packet");

	/* fast, on up/alert */
	mt_tp_alert(fx, &mm, 42);
	n = mt_tp_seal(fx, &mm.m, true, pkt, sizeof(pkt));
	sweep(fx, MT_TOPIC_ALERT, pkt, n);
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_OK, "control: restored fast packet");
}

/* ---- A02 ------------------------------------------------------------------ */

static void A02_truncated_or_extended_tag_refused(void **state)
{
	struct mt_tp *fx = *state;
	static const size_t keep[] = {15, 12, 8, 4, 0};
	uint8_t ct[MT_TP_BUF];
	char what[64];
	size_t ct_len;

	mt_tp_window_prime(fx, 40);
	size_t n = mt_tp_seal_vitals(fx, 41, pkt, sizeof(pkt));
	size_t off = mt_tp_ct_offset(pkt, n, &ct_len);
	memcpy(ct, pkt + off, ct_len);

	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		size_t m = mt_tp_rewrap(pkt, ct, ct_len - MT_AEAD_TAG_LEN + keep[i], pkt2,
		                        sizeof(pkt2));
		snprintf(what, sizeof(what), "tag truncated to %zu bytes", keep[i]);
		EXPECT(fx, MT_TOPIC_VITALS, pkt2, m, MT_ERR_PKT_AEAD, what);
	}
	/* Ciphertext shorter than a tag at all. */
	static const size_t tiny[] = {15, 1, 0};
	for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++) {
		size_t m = mt_tp_rewrap(pkt, ct, tiny[i], pkt2, sizeof(pkt2));
		snprintf(what, sizeof(what), "ciphertext of %zu bytes", tiny[i]);
		EXPECT(fx, MT_TOPIC_VITALS, pkt2, m, MT_ERR_PKT_AEAD, what);
	}
	/* Bytes appended inside the bstr: 1, 16 (a second "tag"), the tag again. */
	memset(ct + ct_len, 0, 16);
	size_t m = mt_tp_rewrap(pkt, ct, ct_len + 1, pkt2, sizeof(pkt2));
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, m, MT_ERR_PKT_AEAD, "one byte appended in the bstr");
	m = mt_tp_rewrap(pkt, ct, ct_len + 16, pkt2, sizeof(pkt2));
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, m, MT_ERR_PKT_AEAD, "16 bytes appended in the bstr");
	memcpy(ct + ct_len, ct + ct_len - MT_AEAD_TAG_LEN, MT_AEAD_TAG_LEN);
	m = mt_tp_rewrap(pkt, ct, ct_len + 16, pkt2, sizeof(pkt2));
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, m, MT_ERR_PKT_AEAD, "tag repeated in the bstr");

	/* Bytes appended after the packet: not one CBOR item any more. */
	memcpy(pkt2, pkt, n);
	pkt2[n] = 0x00;
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, n + 1, MT_ERR_PKT_CBOR, "a byte after the packet");
	memcpy(pkt2 + n, pkt, n);
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, 2 * n, MT_ERR_PKT_CBOR, "the packet twice");

	/* control: the rewrapped original is fine */
	m = mt_tp_rewrap(pkt, pkt + off, ct_len, pkt2, sizeof(pkt2));
	assert_memory_equal(pkt2, pkt, n);
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, m, MT_OK, "control: rewrapped original");
}

/* ---- A04 ------------------------------------------------------------------ */

static void splice(struct mt_tp *fx)
{
	struct mt_tp_msg a, b;
	uint8_t prot[3], sig_a[MT_SIG_LEN], sig_b[MT_SIG_LEN], sig_o[MT_SIG_LEN];
	size_t pl = mt_tp_prot(fx, prot);

	mt_tp_window_prime(fx, 40);
	mt_tp_vitals(fx, &a, 41);
	mt_tp_vitals(fx, &b, 42);
	mt_num_set_int(&b.obs[0].value, 140); /* a different reading */
	size_t la = mt_tp_encode(&a.m, mb, sizeof(mb));
	size_t lb = mt_tp_encode(&b.m, mb2, sizeof(mb2));
	mt_tp_sign(fx->ldev, prot, pl, mb, la, sig_a);
	mt_tp_sign(fx->ldev, prot, pl, mb2, lb, sig_b);
	mt_tp_sign(fx->other, prot, pl, mb2, lb, sig_o);

	size_t n = seal_with_sig(fx, mb2, lb, sig_a, sizeof(sig_a), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE, "A's signature on B");
	n = seal_with_sig(fx, mb2, lb, sig_o, sizeof(sig_o), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE,
	       "another device's signature on B");
	/* The first half of B's signature with the second half of A's. */
	uint8_t half[MT_SIG_LEN];
	memcpy(half, sig_b, 32);
	memcpy(half + 32, sig_a + 32, 32);
	n = seal_with_sig(fx, mb2, lb, half, sizeof(half), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE, "halves of two signatures");

	n = seal_with_sig(fx, mb2, lb, sig_b, sizeof(sig_b), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: B with its own signature");
	n = seal_with_sig(fx, mb, la, sig_a, sizeof(sig_a), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: A with its own signature");
}

static void A04_signature_spliced_onto_other_payload_refused(void **state)
{
	splice(*state);
}

static void A04_signature_spliced_onto_other_payload_refused_eddsa(void **state)
{
	splice(*state);
}

/* ---- A05 ------------------------------------------------------------------ */

static void A05_psychic_signatures_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	uint8_t prot[3], sig[MT_SIG_LEN], bad[MT_SIG_LEN], zero[32] = {0}, ff[32], one[32] = {0};
	uint8_t n1[32];
	size_t pl = mt_tp_prot(fx, prot);

	assert_int_equal(mt_key_type(fx->ldev), MT_KEY_P256);
	memset(ff, 0xff, sizeof(ff));
	one[31] = 1;
	memcpy(n1, p256_n, 32);
	n1[31] += 1; /* n + 1 (last byte 0x51, no carry) */

	mt_tp_window_prime(fx, 40);
	mt_tp_vitals(fx, &mm, 41);
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	mt_tp_sign(fx->ldev, prot, pl, mb, ml, sig);
	const uint8_t *r = sig, *s = sig + 32;

	const struct {
		const char *what;
		const uint8_t *r, *s;
	} cases[] = {
	        {"r = 0", zero, s},       {"s = 0", r, zero},      {"r = s = 0", zero, zero},
	        {"r = n", p256_n, s},     {"s = n", r, p256_n},    {"r = s = n", p256_n, p256_n},
	        {"r = n + 1", n1, s},     {"s = n + 1", r, n1},    {"r = 2^256 - 1", ff, s},
	        {"s = 2^256 - 1", r, ff}, {"all ff", ff, ff},      {"r = s (r)", r, r},
	        {"r = s (s)", s, s},      {"r = s = 1", one, one}, {"r = 1", one, s},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, cases[i].r, 32);
		memcpy(bad + 32, cases[i].s, 32);
		size_t n = seal_with_sig(fx, mb, ml, bad, sizeof(bad), pkt);
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE, cases[i].what);
	}

	/* High-s: (r, n − s) verifies too, and is the same packet. */
	uint8_t hi[MT_SIG_LEN];
	memcpy(hi, r, 32);
	sub_be(p256_n, s, hi + 32);
	assert_memory_not_equal(hi + 32, s, 32);
	size_t n_hi = seal_with_sig(fx, mb, ml, hi, sizeof(hi), pkt2);
	size_t n_lo = seal_with_sig(fx, mb, ml, sig, sizeof(sig), pkt);

	EXPECT(fx, MT_TOPIC_VITALS, pkt2, n_hi, MT_OK, "(r, n - s) accepted: no low-s rule");
	assert_int_equal(fx->res.msg.ctr, 41);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n_lo, MT_ERR_PKT_DUPLICATE,
	       "(r, s) after (r, n - s): same counter, a duplicate");

	mt_tp_window_prime(fx, 40);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n_lo, MT_OK, "control: (r, s)");
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, n_hi, MT_ERR_PKT_DUPLICATE,
	       "(r, n - s) after (r, s): a duplicate, not a new packet");
	assert_int_equal(fx->res.msg.ctr, 41);
}

static void A05_signature_length_or_der_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	uint8_t prot[3], sig[MT_SIG_LEN], buf[80], der[80];
	size_t pl = mt_tp_prot(fx, prot);

	mt_tp_window_prime(fx, 40);
	mt_tp_vitals(fx, &mm, 41);
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	mt_tp_sign(fx->ldev, prot, pl, mb, ml, sig);

	static const size_t lens[] = {0, 32, 63, 65, 72};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char what[48];
		memset(buf, 0, sizeof(buf));
		memcpy(buf, sig, lens[i] < 64 ? lens[i] : 64);
		size_t n = seal_with_sig(fx, mb, ml, buf, lens[i], pkt);
		snprintf(what, sizeof(what), "signature of %zu bytes", lens[i]);
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE, what);
	}
	/* The same signature in DER (ECDSA-Sig-Value): refused inside COSE. */
	size_t d = 2;
	for (int half = 0; half < 2; half++) {
		const uint8_t *v = sig + 32 * half;
		size_t skip = 0;
		while (skip < 31 && v[skip] == 0 && !(v[skip + 1] & 0x80))
			skip++;
		bool pad = v[skip] & 0x80;
		der[d++] = 0x02;
		der[d++] = (uint8_t)(32 - skip + pad);
		if (pad)
			der[d++] = 0;
		memcpy(der + d, v + skip, 32 - skip);
		d += 32 - skip;
	}
	der[0] = 0x30;
	der[1] = (uint8_t)(d - 2);
	/* positive control: it is the valid signature, only in another form */
	size_t tl = mt_tp_sig_structure(prot, pl, mb, ml, pt, sizeof(pt));
	assert_int_equal(mt_sig_verify_der(mt_key_public(fx->ldev), 256, pt, tl, der, d), MT_OK);
	size_t n = seal_with_sig(fx, mb, ml, der, d, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE, "DER signature");

	n = seal_with_sig(fx, mb, ml, sig, sizeof(sig), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: raw r || s");
}

/* EdDSA: RFC 8032 §5.1.7 refuses S ≥ L, so S + L (the Ed25519 malleability)
 * is refused, unlike ES256's n − s. */
static void A05_eddsa_malleated_s_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	uint8_t prot[3], sig[MT_SIG_LEN], bad[MT_SIG_LEN];
	size_t pl = mt_tp_prot(fx, prot);

	assert_int_equal(mt_key_type(fx->ldev), MT_KEY_ED25519);
	mt_tp_window_prime(fx, 40);
	mt_tp_vitals(fx, &mm, 41);
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	mt_tp_sign(fx->ldev, prot, pl, mb, ml, sig);

	memcpy(bad, sig, 32);
	add_le(sig + 32, ed_l, bad + 32);
	size_t n = seal_with_sig(fx, mb, ml, bad, sizeof(bad), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE, "S + L");
	memcpy(bad + 32, ed_l, 32);
	n = seal_with_sig(fx, mb, ml, bad, sizeof(bad), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE, "S = L");
	memset(bad, 0, sizeof(bad));
	n = seal_with_sig(fx, mb, ml, bad, sizeof(bad), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE, "all zero");
	memset(bad, 0xff, sizeof(bad));
	n = seal_with_sig(fx, mb, ml, bad, sizeof(bad), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_SIGNATURE, "all ff");

	n = seal_with_sig(fx, mb, ml, sig, sizeof(sig), pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: the real signature");
}

/* ---- A08 ------------------------------------------------------------------ */

struct hdr_case {
	const char *what;
	const uint8_t *prot;
	size_t prot_len;
	bool sign_other_type; /* sign with the other key type (honest for that alg) */
};

static void run_alg_cases(struct mt_tp *fx, const struct hdr_case *c, size_t nc)
{
	uint8_t unprot[11];
	size_t ul = mt_tp_unprot(fx, unprot);
	struct mt_key *other_type = fx->ldev == fx->p256 ? fx->ed25519 : fx->p256;
	mt_tp_window_prime(fx, 40);
	for (size_t i = 0; i < nc; i++) {
		size_t n = seal_with_headers(fx, 41, c[i].sign_other_type ? other_type : NULL,
		                             c[i].prot, c[i].prot_len, unprot, ul, pkt);
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_ALG, c[i].what);
	}
	uint8_t prot[3];
	size_t pl = mt_tp_prot(fx, prot);
	size_t n = seal_with_headers(fx, 41, NULL, prot, pl, unprot, ul, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: the registered alg");
}

static void A08_alg_confusion_refused(void **state)
{
	struct mt_tp *fx = *state; /* P-256 device */
	static const uint8_t empty_map[] = {0xa0};
	static const uint8_t es384[] = {0xa1, 0x01, 0x38, 0x22};
	static const uint8_t eddsa[] = {0xa1, 0x01, 0x27};
	static const uint8_t es256[] = {0xa1, 0x01, 0x26};
	static const uint8_t hmac[] = {0xa1, 0x01, 0x05};
	static const uint8_t text[] = {0xa1, 0x01, 0x65, 'E', 'S', '2', '5', '6'};
	static const uint8_t none[] = {0xa1, 0x01, 0x00};
	static const uint8_t rs256[] = {0xa1, 0x01, 0x39, 0x01, 0x00};
	/* -7 in a non-shortest head, and the label in a non-shortest head: the
	 * protected bytes are compared as bytes, not re-interpreted. */
	static const uint8_t es256_long[] = {0xa1, 0x01, 0x38, 0x06};
	static const uint8_t label_long[] = {0xa1, 0x18, 0x01, 0x26};
	const struct hdr_case p256_cases[] = {
	        {"protected h'' (alg missing)", NULL, 0, false},
	        {"protected {} (alg missing)", empty_map, sizeof(empty_map), false},
	        {"ES384 header", es384, sizeof(es384), false},
	        {"EdDSA header on a P-256 device", eddsa, sizeof(eddsa), true},
	        {"HMAC 256/256 header", hmac, sizeof(hmac), false},
	        {"alg as text \"ES256\"", text, sizeof(text), false},
	        {"alg 0 (none-like)", none, sizeof(none), false},
	        {"RS256 header", rs256, sizeof(rs256), false},
	        {"ES256 with a non-shortest -7", es256_long, sizeof(es256_long), false},
	        {"ES256 with a non-shortest label", label_long, sizeof(label_long), false},
	};
	run_alg_cases(fx, p256_cases, sizeof(p256_cases) / sizeof(p256_cases[0]));

	/* alg -7 only in the unprotected bucket, protected empty. */
	uint8_t unprot[16] = {0xa2, 0x01, 0x26, 0x04, 0x48};
	memcpy(unprot + 5, mt_pubkey_kid(mt_key_public(fx->ldev)), MT_KID_LEN);
	size_t n = seal_with_headers(fx, 41, NULL, NULL, 0, unprot, 13, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_ALG, "alg only in the unprotected bucket");

	/* The Ed25519 device: ES256 and ES384 headers. */
	struct mt_tp *ed = mt_tp_new(MT_KEY_ED25519);
	const struct hdr_case ed_cases[] = {
	        {"ES256 header on an Ed25519 device", es256, sizeof(es256), true},
	        {"ES384 header on an Ed25519 device", es384, sizeof(es384), false},
	        {"protected h'' on an Ed25519 device", NULL, 0, false},
	        {"alg 0 on an Ed25519 device", none, sizeof(none), false},
	};
	run_alg_cases(ed, ed_cases, sizeof(ed_cases) / sizeof(ed_cases[0]));
	mt_tp_free(ed);
}

/* ---- A09 ------------------------------------------------------------------ */

static void A09_malformed_cose_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	uint8_t prot[3], unprot[11], sig[MT_SIG_LEN], hdr[32];
	const uint8_t *kid = mt_pubkey_kid(mt_key_public(fx->ldev));
	size_t pl = mt_tp_prot(fx, prot), ul = mt_tp_unprot(fx, unprot), n, m;

	mt_tp_window_prime(fx, 40);
	mt_tp_vitals(fx, &mm, 41);
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));

	/* crit in the protected bucket: the protected bytes are wrong → alg. */
	static const uint8_t crit_prot[] = {0xa2, 0x01, 0x26, 0x02, 0x81, 0x18, 0x63};
	n = seal_with_headers(fx, 41, NULL, crit_prot, sizeof(crit_prot), unprot, ul, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_ALG, "crit [99] protected");

	/* crit in the unprotected bucket: not exactly {4: kid} → kid. */
	static const uint8_t crit_unprot_head[] = {0xa2, 0x02, 0x81, 0x18, 0x63, 0x04, 0x48};
	memcpy(hdr, crit_unprot_head, sizeof(crit_unprot_head));
	memcpy(hdr + sizeof(crit_unprot_head), kid, MT_KID_LEN);
	n = seal_with_headers(fx, 41, NULL, prot, pl, hdr, sizeof(crit_unprot_head) + MT_KID_LEN,
	                      pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "crit [99] unprotected");

	/* alg in both buckets: the unprotected one is not exactly {4: kid}. */
	static const uint8_t alg_unprot_head[] = {0xa2, 0x01, 0x26, 0x04, 0x48};
	memcpy(hdr, alg_unprot_head, sizeof(alg_unprot_head));
	hdr[2] = prot[2];
	memcpy(hdr + sizeof(alg_unprot_head), kid, MT_KID_LEN);
	n = seal_with_headers(fx, 41, NULL, prot, pl, hdr, sizeof(alg_unprot_head) + MT_KID_LEN,
	                      pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "alg in both buckets");

	/* kid in both buckets: the protected bytes are not a10126 → alg. */
	uint8_t kid_prot[16] = {0xa2, 0x01, prot[2], 0x04, 0x48};
	memcpy(kid_prot + 5, kid, MT_KID_LEN);
	n = seal_with_headers(fx, 41, NULL, kid_prot, 13, unprot, ul, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_ALG, "kid in both buckets");

	/* Unprotected bucket in the wrong key order (not deterministic). */
	{
		uint8_t u[16] = {0xa2, 0x04, 0x48};
		memcpy(u + 3, kid, MT_KID_LEN);
		u[11] = 0x01;
		u[12] = prot[2];
		n = seal_with_headers(fx, 41, NULL, prot, pl, u, 13, pkt);
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER,
		       "unprotected keys out of order");
	}

	mt_tp_sign(fx->ldev, prot, pl, mb, ml, sig);
	size_t sl = mt_tp_sign1_raw(true, prot, pl, unprot, ul, mb, ml, sig, sizeof(sig), s1,
	                            sizeof(s1));

	/* Indefinite-length array for the Sign1. */
	memcpy(pt, s1, sl);
	assert_int_equal(pt[1], 0x84);
	pt[1] = 0x9f;
	pt[sl] = 0xff;
	n = mt_tp_encrypt(fx, pt, sl + 1, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "indefinite-length Sign1 array");

	/* Indefinite-length (chunked) payload bstr. */
	memcpy(pt, s1, sl);
	uint8_t mhead[4];
	size_t mh = mt_tp_head(2, ml, mhead);
	size_t at = 1 + 1 + 1 + pl + ul; /* d2 84 43 prot unprot */
	assert_memory_equal(pt + at, mhead, mh);
	memmove(pt + at + 1, pt + at, sl - at);
	pt[at] = 0x5f;
	memmove(pt + at + 1 + mh + ml + 1, pt + at + 1 + mh + ml, sl - at - mh - ml);
	pt[at + 1 + mh + ml] = 0xff;
	n = mt_tp_encrypt(fx, pt, sl + 2, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "indefinite-length payload");

	/* Non-shortest head inside the Sign1: 58 40 → 59 00 40 for the signature. */
	memcpy(pt, s1, sl);
	static const uint8_t sh[] = {0x58, 0x40}, lh[] = {0x59, 0x00, 0x40};
	assert_memory_equal(pt + sl - 66, sh, 2);
	memmove(pt + sl - 64 + 1, pt + sl - 64, 64);
	memcpy(pt + sl - 66, lh, 3);
	n = mt_tp_encrypt(fx, pt, sl + 1, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "non-shortest head in the Sign1");

	/* Trailing byte after the Sign1 inside the plaintext. */
	memcpy(pt, s1, sl);
	pt[sl] = 0x00;
	n = mt_tp_encrypt(fx, pt, sl + 1, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "byte after the Sign1");

	/* A Sign1 that is fine around a payload that is not: stage 10, not 6. */
	{
		memcpy(mb2, mb, ml);
		mb2[ml] = 0x00; /* trailing byte inside the payload */
		n = mt_tp_seal_payload(fx, mb2, ml + 1, pkt, sizeof(pkt));
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_MESSAGE,
		       "trailing byte inside the signed payload");
		n = mt_tp_seal_payload(fx, mb2, 0, pkt, sizeof(pkt));
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_MESSAGE, "empty signed payload");
	}

	/* Sign1 without tag 18: plaintext does not start with d2, so it is
	 * decoded as a fast packet's message and is not one → inner. */
	n = mt_tp_encrypt(fx, s1 + 1, sl - 1, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_NONE, pkt, n, MT_ERR_PKT_INNER, "untagged Sign1 (no topic)");
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_INNER, "untagged Sign1 on up/alert");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "untagged Sign1 on up/vitals");
	/* Under tag 16, or tag 18 twice. */
	memcpy(pt, s1, sl);
	pt[0] = 0xd0;
	n = mt_tp_encrypt(fx, pt, sl, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "Sign1 under tag 16");
	pt[0] = 0xd2;
	memcpy(pt + 1, s1, sl);
	n = mt_tp_encrypt(fx, pt, sl + 1, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "tag 18 twice");
	/* Arrays of 3 and 5, an unprotected bstr, a nil payload, empty plaintext. */
	memcpy(pt, s1, sl);
	pt[1] = 0x83;
	n = mt_tp_encrypt(fx, pt, sl - 66, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "Sign1 of 3 elements");
	pt[1] = 0x85;
	memcpy(pt + sl, "\x40", 1);
	n = mt_tp_encrypt(fx, pt, sl + 1, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "Sign1 of 5 elements");
	{
		uint8_t ub[12] = {0x4b};
		memcpy(ub + 1, unprot, ul);
		m = mt_tp_sign1(fx, NULL, prot, pl, ub, ul + 1, mb, ml, pt, sizeof(pt));
		n = mt_tp_encrypt(fx, pt, m, pkt, sizeof(pkt));
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "unprotected as a bstr");
	}
	{
		m = 0;
		pt[m++] = 0xd2;
		pt[m++] = 0x84;
		pt[m++] = 0x43;
		memcpy(pt + m, prot, pl);
		m += pl;
		memcpy(pt + m, unprot, ul);
		m += ul;
		pt[m++] = 0xf6; /* nil: detached payload */
		pt[m++] = 0x58;
		pt[m++] = 0x40;
		memcpy(pt + m, sig, 64);
		m += 64;
		n = mt_tp_encrypt(fx, pt, m, pkt, sizeof(pkt));
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "detached (nil) payload");
	}
	n = mt_tp_encrypt(fx, pt, 0, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "empty plaintext");

	/* ---- the outer object ---- */
	size_t good = mt_tp_encrypt(fx, s1, sl, pkt, sizeof(pkt));
	size_t ct_len, off = mt_tp_ct_offset(pkt, good, &ct_len);
	assert_true(ct_len >= 24 && ct_len < 256);

	/* Non-shortest head: ciphertext 58 xx → 59 00 xx; epoch 44 → 58 04. */
	memcpy(pkt2, pkt, 27);
	pkt2[27] = 0x59;
	pkt2[28] = 0x00;
	pkt2[29] = (uint8_t)ct_len;
	memcpy(pkt2 + 30, pkt + off, ct_len);
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, 30 + ct_len, MT_ERR_PKT_CBOR,
	       "non-shortest ciphertext head");
	memcpy(pkt2, pkt, good);
	static const uint8_t e44[] = {0xa2, 0x04, 0x44}, e58[] = {0xa2, 0x04, 0x58, 0x04};
	m = mt_tp_patch(pkt2, good, sizeof(pkt2), e44, 3, e58, 4);
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, m, MT_ERR_PKT_CBOR, "non-shortest epoch head");

	/* Trailing bytes after the packet. */
	memcpy(pkt2, pkt, good);
	pkt2[good] = 0xf6;
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, good + 1, MT_ERR_PKT_CBOR, "byte after the packet");

	/* Wrong outer tag: 18 (a valid COSE tag, wrong here) → header. */
	memcpy(pkt2, pkt, good);
	pkt2[0] = 0xd2;
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, good, MT_ERR_PKT_HEADER, "outer tag 18");
	/* Tag 998: strict CBOR refuses tags the protocol does not name, so the
	 * spec puts it at stage 2 (cbor); header would also be a refusal. */
	pkt2[0] = 0xd9;
	pkt2[1] = 0x03;
	pkt2[2] = 0xe6;
	memcpy(pkt2 + 3, pkt + 1, good - 1);
	enum mt_err got = mt_tp_open(fx, MT_TOPIC_VITALS, pkt2, good + 2);
	print_message("      outer tag 998 refused at: %s (%s)\n", mt_tp_name(got), fx->res.detail);
	assert_true(got == MT_ERR_PKT_CBOR || got == MT_ERR_PKT_HEADER);
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, good + 2, got, "outer tag 998");
	/* Missing outer tag; tag 16 twice. */
	EXPECT(fx, MT_TOPIC_VITALS, pkt + 1, good - 1, MT_ERR_PKT_HEADER, "no outer tag");
	pkt2[0] = 0xd0;
	memcpy(pkt2 + 1, pkt, good);
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, good + 1, MT_ERR_PKT_HEADER, "tag 16 twice");

	EXPECT(fx, MT_TOPIC_VITALS, pkt, good, MT_OK, "control: the well-formed packet");
}

/* The outer object's header (stage 3): only the §4 bytes.  Each forgery
 * keeps a valid ciphertext, so a header check that let it through would
 * show up as a wrong stage, not a lucky refusal. */
static void A09_outer_header_shape_refused(void **state)
{
	struct mt_tp *fx = *state;
	uint8_t ct[MT_TP_BUF], h[64];
	size_t ct_len;
	mt_tp_window_prime(fx, 40);
	size_t n = mt_tp_seal_vitals(fx, 41, pkt, sizeof(pkt));
	size_t off = mt_tp_ct_offset(pkt, n, &ct_len);
	memcpy(ct, pkt + off, ct_len);
	const uint8_t *ep = pkt + 9, *iv = pkt + 15;

	struct {
		const char *what;
		const char *hex; /* header up to the ciphertext; E = epoch, I = IV */
		enum mt_err want;
	} cases[] = {
	        {"protected A128GCM", "d08343a10101a20444E054cI", MT_ERR_PKT_HEADER},
	        {"protected A192GCM", "d08343a10102a20444E054cI", MT_ERR_PKT_HEADER},
	        {"protected h''", "d08340a20444E054cI", MT_ERR_PKT_HEADER},
	        {"protected {}", "d08341a0a20444E054cI", MT_ERR_PKT_HEADER},
	        {"crit in protected", "d08347a2010302811863a20444E054cI", MT_ERR_PKT_HEADER},
	        {"extra unprotected label", "d08343a10103a30444E054cI0600", MT_ERR_PKT_HEADER},
	        {"alg also unprotected", "d08343a10103a301030444E054cI", MT_ERR_PKT_HEADER},
	        {"epoch as an uint", "d08343a10103a20407054cI", MT_ERR_PKT_HEADER},
	        {"epoch of 3 bytes",
	         "d08343a10103a2044300000705"
	         "4cI",
	         MT_ERR_PKT_HEADER},
	        {"epoch of 5 bytes", "d08343a10103a204450000000007054cI", MT_ERR_PKT_HEADER},
	        {"IV of 11 bytes", "d08343a10103a20444E054b000102030405060708090a",
	         MT_ERR_PKT_HEADER},
	        {"IV of 13 bytes", "d08343a10103a20444E054dI0c", MT_ERR_PKT_HEADER},
	        {"IV missing", "d08343a10103a10444E", MT_ERR_PKT_HEADER},
	        {"epoch missing", "d08343a10103a1054cI", MT_ERR_PKT_HEADER},
	        {"unprotected as a bstr", "d08343a1010340", MT_ERR_PKT_HEADER},
	        {"labels out of order", "d08343a10103a2054cI0444E", MT_ERR_PKT_CBOR},
	        {"label twice", "d08343a10103a20444E0444E", MT_ERR_PKT_CBOR},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t hl = 0;
		for (const char *c = cases[i].hex; *c;) {
			if (*c == 'E' || *c == 'I') {
				size_t k = *c == 'E' ? 4 : 12;
				memcpy(h + hl, *c == 'E' ? ep : iv, k);
				hl += k;
				c++;
				continue;
			}
			char two[3] = {c[0], c[1], 0};
			hl += mt_test_unhex(two, h + hl, sizeof(h) - hl);
			c += 2;
		}
		size_t m = hl;
		memcpy(pkt2, h, hl);
		m += mt_tp_head(2, ct_len, pkt2 + m);
		memcpy(pkt2 + m, ct, ct_len);
		m += ct_len;
		EXPECT(fx, MT_TOPIC_VITALS, pkt2, m, cases[i].want, cases[i].what);
	}
	/* Shapes of the array itself. */
	static const uint8_t nil_ct[] = {0xf6};
	memcpy(pkt2, pkt, 27);
	memcpy(pkt2 + 27, nil_ct, 1);
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, 28, MT_ERR_PKT_HEADER, "nil ciphertext");
	memcpy(pkt2, pkt, n);
	pkt2[1] = 0x84;
	pkt2[n] = 0x40;
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, n + 1, MT_ERR_PKT_HEADER, "array of 4");
	pkt2[1] = 0x82;
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, 27, MT_ERR_PKT_HEADER, "array of 2 (no ciphertext)");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: the §4 header");
}

/* ---- A10 ------------------------------------------------------------------ */

static void A10_wrong_kid_refused(void **state)
{
	struct mt_tp *fx = *state;
	uint8_t prot[3], unprot[16];
	static const uint8_t unknown[MT_KID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
	const uint8_t *kid = mt_pubkey_kid(mt_key_public(fx->ldev));
	size_t pl = mt_tp_prot(fx, prot), n;

	mt_tp_window_prime(fx, 40);
	mt_tp_unprot_kid(mt_pubkey_kid(mt_key_public(fx->other)), unprot);
	n = seal_with_headers(fx, 41, NULL, prot, pl, unprot, 11, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "another device's kid");
	/* Signed by the other key as well: the kid is never used to choose one. */
	n = seal_with_headers(fx, 41, fx->other, prot, pl, unprot, 11, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "another device's kid and signature");
	mt_tp_unprot_kid(unknown, unprot);
	n = seal_with_headers(fx, 41, NULL, prot, pl, unprot, 11, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "unknown kid");
	mt_tp_unprot_kid(
	        mt_pubkey_kid(mt_key_public(fx->ldev == fx->p256 ? fx->ed25519 : fx->p256)),
	        unprot);
	n = seal_with_headers(fx, 41, NULL, prot, pl, unprot, 11, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "kid of the device's other key");

	static const uint8_t empty[] = {0xa0};
	n = seal_with_headers(fx, 41, NULL, prot, pl, empty, 1, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "kid missing");
	unprot[0] = 0xa1;
	unprot[1] = 0x04;
	unprot[2] = 0x47;
	memcpy(unprot + 3, kid, 7);
	n = seal_with_headers(fx, 41, NULL, prot, pl, unprot, 10, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "kid of 7 bytes");
	unprot[2] = 0x49;
	memcpy(unprot + 3, kid, 8);
	unprot[11] = 0;
	n = seal_with_headers(fx, 41, NULL, prot, pl, unprot, 12, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "kid of 9 bytes");
	unprot[2] = 0x68; /* text string of 8 */
	memcpy(unprot + 3, "abcdefgh", 8);
	n = seal_with_headers(fx, 41, NULL, prot, pl, unprot, 11, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_KID, "kid as a text string");

	size_t ul = mt_tp_unprot(fx, unprot);
	n = seal_with_headers(fx, 41, NULL, prot, pl, unprot, ul, pkt);
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: the registered kid");
}

/* ---- A11, A12, A15, A20: replay ----------------------------------------- */

static void A11_exact_replay_is_duplicate(void **state)
{
	struct mt_tp *fx = *state;
	mt_tp_window_prime(fx, 40);
	size_t n = mt_tp_seal_vitals(fx, 41, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "first delivery");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_DUPLICATE, "exact replay");
	assert_int_equal(fx->res.msg.ctr, 41); /* the duplicate names its counter */
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_DUPLICATE, "third delivery");

	/* The captured Sign1 re-encrypted under a fresh IV: still a duplicate. */
	size_t pl = mt_tp_decrypt(fx, pkt, n, pt, sizeof(pt));
	size_t m = mt_tp_encrypt(fx, pt, pl, pkt2, sizeof(pkt2));
	assert_memory_not_equal(pkt2 + 15, pkt + 15, MT_AEAD_IV_LEN);
	EXPECT(fx, MT_TOPIC_VITALS, pkt2, m, MT_ERR_PKT_DUPLICATE, "re-encrypted replay");

	n = mt_tp_seal_vitals(fx, 39, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: unseen counter inside the window");
}

static void A12_below_window_refused(void **state)
{
	struct mt_tp *fx = *state;
	mt_tp_window_prime(fx, 5000);
	size_t n = mt_tp_seal_vitals(fx, 5000 - 1024, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_REPLAY, "top - 1024");
	n = mt_tp_seal_vitals(fx, 0, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_REPLAY, "counter 0");
	n = mt_tp_seal_vitals(fx, 5000 - 1023, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: top - 1023");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_DUPLICATE, "top - 1023 again");
}

static void A15_counter_jump_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	const uint64_t top = 1000, jump = UINT64_C(1) << 20;

	mt_tp_window_prime(fx, top);
	size_t n = mt_tp_seal_vitals(fx, top + jump + 1, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_REPLAY, "top + 2^20 + 1");
	assert_non_null(strstr(fx->res.detail, "counter jump"));
	n = mt_tp_seal_vitals(fx, top + (UINT64_C(1) << 40), pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_REPLAY, "top + 2^40");
	assert_non_null(strstr(fx->res.detail, "counter jump"));
	n = mt_tp_seal_vitals(fx, top + jump, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: top + 2^20");

	/* A fresh window takes 2^63 − 1 once, and never wraps after it. */
	mt_replay_init(&fx->window);
	const uint64_t max = (UINT64_C(1) << 63) - 1;
	n = mt_tp_seal_vitals(fx, max, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "fresh window: 2^63 - 1");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_DUPLICATE, "2^63 - 1 again");
	n = mt_tp_seal_vitals(fx, 0, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_REPLAY, "0 after 2^63 - 1: no wrap");

	/* 2^63 and 2^64 − 1 are not counters at all: the encoder refuses them
	 * and a hand-made message is refused at `message`. */
	mt_tp_vitals(fx, &mm, UINT64_C(1) << 63);
	size_t len;
	assert_int_equal(mt_message_encode(&mm.m, mb, sizeof(mb), &len), MT_ERR_PKT_MESSAGE);
	mt_tp_vitals(fx, &mm, max);
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	static const uint8_t from[] = {0x02, 0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t to63[] = {0x02, 0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t to64[] = {0x02, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	memcpy(mb2, mb, ml);
	mt_tp_patch(mb2, ml, sizeof(mb2), from, sizeof(from), to63, sizeof(to63));
	mt_replay_init(&fx->window);
	n = mt_tp_seal_payload(fx, mb2, ml, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_MESSAGE, "counter 2^63");
	memcpy(mb2, mb, ml);
	mt_tp_patch(mb2, ml, sizeof(mb2), from, sizeof(from), to64, sizeof(to64));
	n = mt_tp_seal_payload(fx, mb2, ml, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_MESSAGE, "counter 2^64 - 1");
	n = mt_tp_seal_payload(fx, mb, ml, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: the unpatched message");
}

static void A20_fast_alert_replay_is_duplicate(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	mt_tp_window_prime(fx, 58);
	mt_tp_alert(fx, &mm, 60);
	size_t n = mt_tp_seal(fx, &mm.m, true, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_OK, "first alert");
	assert_int_equal(fx->res.kind, MT_PACKET_FAST);
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_DUPLICATE, "replayed alert");
	/* Fast and sealed packets share the device's window. */
	n = mt_tp_seal_vitals(fx, 61, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "sealed vitals 61");
	mt_tp_alert(fx, &mm, 61);
	n = mt_tp_seal(fx, &mm.m, true, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_DUPLICATE, "fast alert reusing 61");
	mt_tp_alert(fx, &mm, 62);
	n = mt_tp_seal(fx, &mm.m, true, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_OK, "control: next alert");
}

/* ---- A18, I09: epochs ------------------------------------------------------ */

static void A18_epoch_old_or_future_refused_before_aead(void **state)
{
	struct mt_tp *fx = *state;
	assert_int_equal(fx->epoch, 7);
	mt_tp_window_prime(fx, 40);
	assert_true(mt_tp_expect_epoch(fx, 5, 41, MT_ERR_PKT_EPOCH));
	assert_true(mt_tp_expect_epoch(fx, 8, 42, MT_ERR_PKT_EPOCH));
	assert_true(mt_tp_expect_epoch(fx, UINT32_MAX, 43, MT_ERR_PKT_EPOCH));
	assert_true(mt_tp_expect_epoch(fx, 0, 44, MT_ERR_PKT_EPOCH));
	assert_true(mt_tp_expect_epoch(fx, 7, 45, MT_OK));
	assert_true(mt_tp_expect_epoch(fx, 6, 46, MT_OK));
}

static void I09_epoch_rotation_previous_accepted_two_back_refused(void **state)
{
	struct mt_tp *fx = *state;
	mt_tp_window_prime(fx, 40);
	fx->epoch = 8; /* the hub sent rotate-epoch 8 */
	assert_true(mt_tp_expect_epoch(fx, 7, 41, MT_OK));
	assert_true(mt_tp_expect_epoch(fx, 8, 42, MT_OK));
	assert_true(mt_tp_expect_epoch(fx, 6, 43, MT_ERR_PKT_EPOCH));
	fx->epoch = 9; /* then 9: packets of 7 stop */
	assert_true(mt_tp_expect_epoch(fx, 7, 44, MT_ERR_PKT_EPOCH));
	assert_true(mt_tp_expect_epoch(fx, 8, 45, MT_OK));
}

/* ---- A19 ------------------------------------------------------------------ */

/* Observations must not come back from a refused packet.  Counted rather
 * than failed at once, so that the stage checks after it still run. */
static unsigned obs_leaks;
static void assert_no_observations(const struct mt_tp *fx, const char *what)
{
	if (fx->res.msg.n_obs != 0 || fx->res.msg.obs != NULL) {
		print_error("%s: refused (%s) but %zu observation(s) returned\n", what,
		            mt_tp_name(fx->res.err), fx->res.msg.n_obs);
		obs_leaks++;
	}
}

static void A19_fast_packet_with_vitals_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	size_t n, len;

	obs_leaks = 0;
	mt_tp_window_prime(fx, 40);
	/* The sealer will not make one... */
	mt_tp_vitals(fx, &mm, 41);
	assert_int_equal(mt_tp_seal_epoch(fx, &mm.m, true, fx->epoch, NULL, pkt, sizeof(pkt), &len),
	                 MT_ERR_PKT_MESSAGE);
	/* ...so the attacker does: a typ-1 message straight under the AEAD. */
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	n = mt_tp_encrypt(fx, mb, ml, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_INNER, "fast typ 1 on up/alert");
	assert_no_observations(fx, "fast typ 1 on up/alert");
	EXPECT(fx, MT_TOPIC_NONE, pkt, n, MT_ERR_PKT_INNER, "fast typ 1, no topic");
	assert_no_observations(fx, "fast typ 1, no topic");
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INNER, "fast typ 1 on up/vitals");
	assert_no_observations(fx, "fast typ 1 on up/vitals");
	/* Status and ack too: only typ 2 travels fast. */
	mt_tp_status(fx, &mm, 41);
	ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	n = mt_tp_encrypt(fx, mb, ml, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_INNER, "fast typ 3 on up/alert");

	/* A fast packet's message is decoded at stage 6: its faults are `inner`. */
	mt_tp_alert(fx, &mm, 41);
	ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	mb[ml] = 0x00;
	n = mt_tp_encrypt(fx, mb, ml + 1, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_INNER, "fast alert with a trailing byte");
	mm.m.alrt.prio = 3;
	ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	static const uint8_t prio3[] = {0x02, 0x03, 0x03}, prio4[] = {0x02, 0x04, 0x03};
	mt_tp_patch(mb, ml, sizeof(mb), prio3, 3, prio4, 3); /* prio 4: not in the schema */
	n = mt_tp_encrypt(fx, mb, ml, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_INNER, "fast alert with prio 4");

	/* A valid fast alert on any topic but up/alert. */
	mt_tp_alert(fx, &mm, 41);
	n = mt_tp_seal(fx, &mm.m, true, pkt, sizeof(pkt));
	static const enum mt_topic wrong[] = {MT_TOPIC_VITALS, MT_TOPIC_STATUS, MT_TOPIC_ACK};
	for (size_t i = 0; i < 3; i++) {
		EXPECT(fx, wrong[i], pkt, n, MT_ERR_PKT_INNER, "fast typ 2 off up/alert");
		assert_no_observations(fx, "fast typ 2 off up/alert");
	}
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_OK, "control: fast typ 2 on up/alert");
	assert_int_equal(fx->res.msg.typ, MT_TYP_ALERT);
	assert_int_equal(fx->res.kind, MT_PACKET_FAST);
	assert_null(fx->res.sign1);
	if (obs_leaks)
		fail_msg("%u refusal(s) returned observations", obs_leaks);
}

/* ---- A23, A24 -------------------------------------------------------------- */

static void A23_dev_mismatch_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	uint8_t prot[3], unprot[11];
	size_t pl = mt_tp_prot(fx, prot), ul = mt_tp_unprot(fx, unprot), n, ml;

	mt_tp_window_prime(fx, 40);
	static const char *const others[] = {"dev-2", "DEV-1", "dev-1x", "dev-"};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		char what[64];
		mt_tp_vitals(fx, &mm, 41);
		mm.m.dev_len = strlen(others[i]);
		memcpy(mm.m.dev, others[i], mm.m.dev_len + 1);
		ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
		n = mt_tp_seal_payload(fx, mb, ml, pkt, sizeof(pkt));
		snprintf(what, sizeof(what), "sealed, message dev %s", others[i]);
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_DEV, what);
	}
	/* Fast: the AEAD binds the key, not the message's claim. */
	mt_tp_alert(fx, &mm, 41);
	memcpy(mm.m.dev, "dev-2", 6);
	ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	n = mt_tp_encrypt(fx, mb, ml, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_DEV, "fast, message dev dev-2");

	/* Encrypted for another id than the sender's: the AAD differs. */
	mt_tp_vitals(fx, &mm, 41);
	ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	size_t sl = mt_tp_sign1(fx, NULL, prot, pl, unprot, ul, mb, ml, s1, sizeof(s1));
	n = mt_tp_encrypt_as(fx, "dev-2", fx->epoch, s1, sl, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_AEAD, "Enc_structure of dev-2");

	n = mt_tp_encrypt(fx, s1, sl, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: dev-1 throughout");
}

static void A24_inactive_device_refused(void **state)
{
	struct mt_tp *fx = *state;
	uint8_t bad[MT_TP_BUF];
	mt_tp_window_prime(fx, 40);
	size_t n = mt_tp_seal_vitals(fx, 41, pkt, sizeof(pkt));

	fx->status = MT_VIEW_REVOKED;
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INACTIVE, "revoked");
	assert_non_null(strstr(fx->res.detail, "revoked"));
	fx->status = MT_VIEW_DECOMMISSIONED;
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INACTIVE, "decommissioned");
	assert_non_null(strstr(fx->res.detail, "decommissioned"));

	/* Stage 12 comes after the signature: a forged packet of a revoked
	 * device is a signature refusal. */
	size_t pl = mt_tp_decrypt(fx, pkt, n, pt, sizeof(pt));
	pt[pl - 1] ^= 0x01;
	size_t m = mt_tp_encrypt(fx, pt, pl, bad, sizeof(bad));
	EXPECT(fx, MT_TOPIC_VITALS, bad, m, MT_ERR_PKT_SIGNATURE, "revoked, bad signature");

	/* Unknown: no keys, so no AEAD work either. */
	fx->status = MT_VIEW_ACTIVE;
	fx->known = false;
	unsigned calls = fx->data_key_calls;
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_INACTIVE, "unknown device");
	assert_int_equal(fx->data_key_calls, calls);
	fx->known = true;

	/* No registry (packet open): stage 12 skipped. */
	fx->status = MT_VIEW_REVOKED;
	fx->check_status = false;
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: revoked, no registry check");
	fx->status = MT_VIEW_ACTIVE;
	fx->check_status = true;
	n = mt_tp_seal_vitals(fx, 42, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: active");
}

/* ---- A25 ------------------------------------------------------------------ */

static void A25_skewed_or_stale_ts_flagged_not_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	mt_tp_window_prime(fx, 40);
	fx->now_ms = MT_TP_TS;

	mt_tp_vitals(fx, &mm, 41);
	mm.m.ts = MT_TP_TS + 6 * 60 * 1000;
	size_t n = mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "ts 6 min ahead");
	assert_true(fx->res.clock_skewed);
	assert_false(fx->res.stale);

	mt_tp_vitals(fx, &mm, 42);
	mm.m.ts = MT_TP_TS - UINT64_C(365) * 24 * 3600 * 1000;
	n = mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "ts one year old");
	assert_true(fx->res.stale);
	assert_false(fx->res.clock_skewed);

	n = mt_tp_seal_vitals(fx, 43, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: ts now");
	assert_false(fx->res.stale);
	assert_false(fx->res.clock_skewed);
}

/* ---- A26 ------------------------------------------------------------------ */

static size_t seal_one_obs(struct mt_tp *fx, uint64_t ctr, uint32_t code, uint32_t unit,
                           const struct mt_num *v)
{
	struct mt_tp_msg mm;
	mt_tp_vitals(fx, &mm, ctr);
	mm.m.n_obs = 1;
	mm.obs[0].code = code;
	mm.obs[0].unit = unit;
	mm.obs[0].value = *v;
	mm.obs[0].has_places = false;
	return mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
}

static void A26_implausible_values_refused(void **state)
{
	struct mt_tp *fx = *state;
	struct mt_tp_msg mm;
	struct mt_num v;
	uint64_t ctr = 41;
	char what[96];

	struct obs_case {
		const char *what;
		uint32_t code, unit;
		bool is_float;
		double f;
		int64_t i;
	};
	static const struct obs_case bad[] = {
	        {"heart rate 10000", 147842, 264864, false, 0, 10000},
	        {"heart rate 350.5", 147842, 264864, true, 350.5, 0},
	        {"SpO2 101", 150456, 262688, false, 0, 101},
	        {"temperature 19.9", 150364, 268192, true, 19.9, 0},
	        {"temperature 45.1", 150364, 268192, true, 45.1, 0},
	        {"unknown MDC code", 12345, 264864, false, 0, 60},
	        {"heart rate in %", 147842, 262688, false, 0, 72},
	        {"SpO2 in /min", 150456, 264864, false, 0, 97},
	        {"negative heart rate", 147842, 264864, false, 0, -1},
	        {"negative SpO2 -0.5", 150456, 262688, true, -0.5, 0},
	        {"systolic 401", 150021, 266016, false, 0, 401},
	        {"respiratory rate 151", 151562, 264928, false, 0, 151},
	        {"glucose 2001", 160184, 264274, false, 0, 2001},
	};
	static const struct obs_case good[] = {
	        {"heart rate 0", 147842, 264864, false, 0, 0},
	        {"heart rate 350", 147842, 264864, false, 0, 350},
	        {"pulse 350", 149530, 264864, false, 0, 350},
	        {"SpO2 100", 150456, 262688, false, 0, 100},
	        {"temperature 20.0", 150364, 268192, true, 20.0, 0},
	        {"temperature 45.0", 150364, 268192, true, 45.0, 0},
	        {"systolic 400", 150021, 266016, false, 0, 400},
	        {"respiratory rate 150", 151562, 264928, false, 0, 150},
	        {"glucose 2000", 160184, 264274, false, 0, 2000},
	};

	mt_tp_window_prime(fx, 40);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++, ctr++) {
		if (bad[i].is_float)
			mt_num_set_float(&v, bad[i].f);
		else
			mt_num_set_int(&v, bad[i].i);
		size_t n = seal_one_obs(fx, ctr, bad[i].code, bad[i].unit, &v);
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_IMPLAUSIBLE, bad[i].what);
		/* Signed data from the device: its counter is now seen (§5). */
		if (mt_replay_check(&fx->window, ctr) != MT_REPLAY_DUPLICATE)
			fail_msg("%s: counter %llu not marked seen after `implausible`",
			         bad[i].what, (unsigned long long)ctr);
		snprintf(what, sizeof(what), "%s, delivered again", bad[i].what);
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_DUPLICATE, what);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++, ctr++) {
		if (good[i].is_float)
			mt_num_set_float(&v, good[i].f);
		else
			mt_num_set_int(&v, good[i].i);
		size_t n = seal_one_obs(fx, ctr, good[i].code, good[i].unit, &v);
		snprintf(what, sizeof(what), "control: %s", good[i].what);
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, what);
	}

	/* One bad reading among good ones refuses the packet. */
	mt_tp_vitals(fx, &mm, ctr++);
	mt_num_set_float(&mm.obs[2].value, 50.0);
	size_t n = mt_tp_seal(fx, &mm.m, false, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_IMPLAUSIBLE, "third of three at 50 C");
	/* In a fast alert as well. */
	mt_tp_alert(fx, &mm, ctr++);
	mt_num_set_int(&mm.obs[0].value, 140);
	n = mt_tp_seal(fx, &mm.m, true, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_ALERT, pkt, n, MT_ERR_PKT_IMPLAUSIBLE, "fast alert with SpO2 140");

	/* NaN and infinities cannot even be encoded... */
	static const double nonfinite[] = {NAN, INFINITY, -INFINITY};
	for (size_t i = 0; i < 3; i++) {
		size_t len;
		mt_tp_vitals(fx, &mm, ctr);
		mt_num_set_float(&mm.obs[0].value, nonfinite[i]);
		assert_int_equal(mt_message_encode(&mm.m, mb, sizeof(mb), &len),
		                 MT_ERR_PKT_MESSAGE);
	}
	/* ...and hand-made ones are refused at `message`, before the window. */
	mt_tp_vitals(fx, &mm, ctr);
	mt_num_set_float(&mm.obs[0].value, 1.5); /* f9 3e00 */
	size_t ml = mt_tp_encode(&mm.m, mb, sizeof(mb));
	static const uint8_t f15[] = {0xf9, 0x3e, 0x00};
	const struct {
		const char *what;
		uint8_t b[9];
		size_t n;
	} nf[] = {
	        {"f9 7e00 (NaN)", {0xf9, 0x7e, 0x00}, 3},
	        {"f9 7c00 (+Inf)", {0xf9, 0x7c, 0x00}, 3},
	        {"f9 fc00 (-Inf)", {0xf9, 0xfc, 0x00}, 3},
	        {"fb 7ff8000000000000 (NaN)", {0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}, 9},
	        {"fa 7fc00000 (NaN)", {0xfa, 0x7f, 0xc0, 0, 0}, 5},
	};
	for (size_t i = 0; i < sizeof(nf) / sizeof(nf[0]); i++) {
		memcpy(mb2, mb, ml);
		size_t m = mt_tp_patch(mb2, ml, sizeof(mb2), f15, sizeof(f15), nf[i].b, nf[i].n);
		n = mt_tp_seal_payload(fx, mb2, m, pkt, sizeof(pkt));
		EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_ERR_PKT_MESSAGE, nf[i].what);
	}
	n = mt_tp_seal_payload(fx, mb, ml, pkt, sizeof(pkt));
	EXPECT(fx, MT_TOPIC_VITALS, pkt, n, MT_OK, "control: heart rate 1.5, unpatched");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(A01_bit_flip_sweep_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A02_truncated_or_extended_tag_refused,
	                                        mt_tp_setup_p256, mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A04_signature_spliced_onto_other_payload_refused,
	                                        mt_tp_setup_p256, mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(
	                A04_signature_spliced_onto_other_payload_refused_eddsa, mt_tp_setup_ed25519,
	                mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A05_psychic_signatures_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A05_signature_length_or_der_refused,
	                                        mt_tp_setup_p256, mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A05_eddsa_malleated_s_refused, mt_tp_setup_ed25519,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A08_alg_confusion_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A09_malformed_cose_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A09_outer_header_shape_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A10_wrong_kid_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A11_exact_replay_is_duplicate, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A12_below_window_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A15_counter_jump_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A18_epoch_old_or_future_refused_before_aead,
	                                        mt_tp_setup_p256, mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A19_fast_packet_with_vitals_refused,
	                                        mt_tp_setup_p256, mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A20_fast_alert_replay_is_duplicate,
	                                        mt_tp_setup_p256, mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A23_dev_mismatch_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A24_inactive_device_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A25_skewed_or_stale_ts_flagged_not_refused,
	                                        mt_tp_setup_p256, mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(A26_implausible_values_refused, mt_tp_setup_p256,
	                                        mt_tp_teardown),
	        cmocka_unit_test_setup_teardown(
	                I09_epoch_rotation_previous_accepted_two_back_refused, mt_tp_setup_p256,
	                mt_tp_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
