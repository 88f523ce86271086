/*
 * test_cose.c — COSE_Sign1 / COSE_Encrypt0 (mt_cose.h; RFC 9052, RFC 9053).
 *
 * What is proved:
 *   - the structure builders write exactly the bytes protocol §4 and the
 *     MTP/1 vectors give (Sig_structure of the EdDSA packet, Enc_structure of
 *     packets and receipts), and refuse a short buffer;
 *   - the generic decoders open the vectors' sealed, fast and receipt
 *     packets (decrypt with K, verify the inner Sign1 with the ldev key);
 *   - signing reproduces the vectors' inner Sign1 byte for byte (EdDSA is
 *     deterministic) and ES256 round-trips; tampering, the wrong AAD, the
 *     wrong key type are refused with the error that names them;
 *   - every structural refusal listed in cose.c's essay (tag, array shape,
 *     bucket types, duplicated labels, crit, header value types, strict CBOR
 *     of the object and of the protected bucket) carries its error code.
 * Tests that need ../shared/vectors/mtp1 skip themselves when it is absent.
 */
#define _POSIX_C_SOURCE 200809L

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
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "mt_testjson.h"
#include "mt_testutil.h"

static const uint8_t dev1[] = {'d', 'e', 'v', '-', '1'};

/* ------------------------------------------------------------ builders */

static void test_structures(void **state)
{
	(void)state;
	MT_TEST_NEED_MTP1();
	size_t ml, sl, el, rl, n;
	uint8_t *msg = mt_test_mtp1_hex("message", &ml),
	        *sig = mt_test_mtp1_hex("sig_structure_eddsa", &sl);
	uint8_t *enc = mt_test_mtp1_hex("enc_structure", &el),
	        *rcpt = mt_test_mtp1_hex("receipt_enc_structure", &rl);
	const uint8_t eddsa[] = {0xa1, 0x01, 0x27}, a256[] = {0xa1, 0x01, 0x03};
	const uint8_t rcpt_aad[] = {'r', 'c', 'p', 't', ':', 'd', 'e', 'v', '-', '1'};
	uint8_t out[128];

	assert_int_equal(mt_cose_sig1_prefix(eddsa, 3, NULL, 0, ml, out, sizeof out, &n), MT_OK);
	assert_int_equal(n + ml, sl);
	assert_memory_equal(out, sig, n);
	assert_memory_equal(sig + n, msg, ml);
	assert_int_equal(mt_cose_sig1_prefix(eddsa, 3, NULL, 0, ml, out, n - 1, &n),
	                 MT_ERR_BUFFER);

	assert_int_equal(mt_cose_enc0_structure(a256, 3, dev1, sizeof dev1, out, sizeof out, &n),
	                 MT_OK);
	assert_int_equal(n, el);
	assert_memory_equal(out, enc, el);
	assert_int_equal(mt_cose_enc0_structure(a256, 3, rcpt_aad, sizeof rcpt_aad, out,
	                                        sizeof out, &n),
	                 MT_OK);
	assert_int_equal(n, rl);
	assert_memory_equal(out, rcpt, rl);
	assert_int_equal(mt_cose_enc0_structure(a256, 3, dev1, sizeof dev1, out, el - 1, &n),
	                 MT_ERR_BUFFER);
	free(msg);
	free(sig);
	free(enc);
	free(rcpt);
}

/* Fixed layouts, independent of the vectors: protocol §4 in bytes. */
static void test_structures_fixed(void **state)
{
	(void)state;
	uint8_t out[600], want[64];
	const uint8_t es256[] = {0xa1, 0x01, 0x26};
	size_t n, wl;

	assert_int_equal(mt_cose_sig1_prefix(es256, 3, NULL, 0, 300, out, sizeof out, &n), MT_OK);
	wl = mt_test_unhex("84 6a 5369676e617475726531 43 a10126 40 59 012c", want, sizeof want);
	assert_int_equal(n, wl);
	assert_memory_equal(out, want, wl);
	/* Empty protected bucket, external AAD. */
	assert_int_equal(mt_cose_sig1_prefix(NULL, 0, dev1, 5, 0, out, sizeof out, &n), MT_OK);
	wl = mt_test_unhex("84 6a 5369676e617475726531 40 45 6465762d31 40", want, sizeof want);
	assert_int_equal(n, wl);
	assert_memory_equal(out, want, wl);
	assert_int_equal(mt_cose_enc0_structure(NULL, 0, NULL, 0, out, sizeof out, &n), MT_OK);
	wl = mt_test_unhex("83 68 456e637279707430 40 40", want, sizeof want);
	assert_int_equal(n, wl);
	assert_memory_equal(out, want, wl);
}

/* ------------------------------------------- the vectors' packets */

struct opened {
	uint8_t pt[512];
	size_t pt_len;
};

static void open_packet(const char *name, const char *keyname, const uint8_t *aad,
                        size_t aad_len, struct opened *o)
{
	size_t pl, kl;
	uint8_t *pkt = mt_test_mtp1_hex(name, &pl), *key = mt_test_mtp1_hex(keyname, &kl);
	struct mt_cose_encrypt0 e;
	struct mt_aead *a = NULL;
	uint8_t iv[12];

	assert_int_equal(mt_cose_encrypt0_decode(pkt, pl, true, &e), MT_OK);
	assert_true(e.tagged);
	assert_int_equal(e.prot_len, 3);
	assert_true(e.ph.has_alg);
	assert_int_equal(e.ph.alg, MT_COSE_ALG_A256GCM);
	assert_false(e.uh.has_alg);
	assert_non_null(e.uh.kid); /* label 4 carries the epoch in MTP/1 */
	assert_int_equal(e.uh.kid_len, 4);
	assert_memory_equal(e.uh.kid, "\0\0\0\x07", 4);
	assert_int_equal(e.uh.iv_len, 12);
	mt_test_unhex_exact("000102030405060708090a0b", iv, sizeof iv);
	assert_memory_equal(e.uh.iv, iv, 12);
	assert_int_equal(mt_aead_new(&a), MT_OK);
	assert_int_equal(mt_cose_encrypt0_decrypt(&e, a, key, kl, aad, aad_len, o->pt,
	                                          sizeof o->pt, &o->pt_len),
	                 MT_OK);
	/* The wrong AAD (another device) and a short buffer are refused. */
	uint8_t other[512];
	size_t ol;
	assert_int_equal(mt_cose_encrypt0_decrypt(&e, a, key, kl, aad, aad_len - 1, other,
	                                          sizeof other, &ol),
	                 MT_ERR_AEAD_TAG);
	assert_int_equal(mt_cose_encrypt0_decrypt(&e, a, key, kl, aad, aad_len, other,
	                                          o->pt_len - 1, &ol),
	                 MT_ERR_BUFFER);
	mt_aead_free(a);
	free(pkt);
	free(key);
}

static void test_vector_packets(void **state)
{
	(void)state;
	MT_TEST_NEED_MTP1();
	struct opened o;
	size_t ml, al, sl, kl;
	uint8_t *msg = mt_test_mtp1_hex("message", &ml),
	        *alert = mt_test_mtp1_hex("alert_message", &al);
	uint8_t *spki = mt_test_mtp1_hex("ldev_ed25519_spki", &sl),
	        *kid = mt_test_mtp1_hex("ldev_ed25519_kid", &kl);
	struct mt_pubkey *pk = NULL, *wrong = NULL;
	struct mt_cose_sign1 s;
	size_t wl;
	uint8_t *wspki = mt_test_mtp1_hex("ldev_p256_spki", &wl);
	const uint8_t rcpt_aad[] = {'r', 'c', 'p', 't', ':', 'd', 'e', 'v', '-', '1'};

	assert_int_equal(mt_pubkey_from_spki(spki, sl, &pk), MT_OK);
	assert_int_equal(mt_pubkey_from_spki(wspki, wl, &wrong), MT_OK);

	/* Sealed: Encrypt0(Sign1(message)). */
	open_packet("sealed_eddsa_packet", "data_key", dev1, sizeof dev1, &o);
	assert_int_equal(o.pt[0], 0xd2);
	assert_int_equal(mt_cose_sign1_decode(o.pt, o.pt_len, true, &s), MT_OK);
	assert_true(s.ph.has_alg);
	assert_int_equal(s.ph.alg, MT_COSE_ALG_EDDSA);
	assert_int_equal(s.uh.kid_len, MT_KID_LEN);
	assert_memory_equal(s.uh.kid, kid, MT_KID_LEN);
	assert_memory_equal(s.uh.kid, mt_pubkey_kid(pk), MT_KID_LEN);
	assert_int_equal(s.payload_len, ml);
	assert_memory_equal(s.payload, msg, ml);
	assert_int_equal(s.sig_len, 64);
	assert_int_equal(mt_cose_sign1_verify(&s, pk, NULL, 0), MT_OK);
	assert_int_equal(mt_cose_sign1_verify(&s, pk, dev1, sizeof dev1), MT_ERR_SIG_INVALID);
	assert_int_equal(mt_cose_sign1_verify(&s, wrong, NULL, 0), MT_ERR_COSE_ALG);
	o.pt[o.pt_len - 1] ^= 1; /* last signature byte */
	assert_int_equal(mt_cose_sign1_decode(o.pt, o.pt_len, true, &s), MT_OK);
	assert_int_equal(mt_cose_sign1_verify(&s, pk, NULL, 0), MT_ERR_SIG_INVALID);

	/* Fast: Encrypt0(message). */
	open_packet("fast_packet", "data_key", dev1, sizeof dev1, &o);
	assert_int_equal(o.pt_len, al);
	assert_memory_equal(o.pt, alert, al);

	/* Receipt: under the receipt key, AAD "rcpt:" ‖ id; a strict CBOR map. */
	open_packet("receipt_packet", "receipt_key", rcpt_aad, sizeof rcpt_aad, &o);
	assert_int_equal(o.pt[0], 0xa3);
	assert_int_equal(mt_cbor_validate(o.pt, o.pt_len, NULL, 0), MT_OK);

	mt_pubkey_free(pk);
	mt_pubkey_free(wrong);
	free(msg);
	free(alert);
	free(spki);
	free(kid);
	free(wspki);
}

/* Signing the vectors' message with the vectors' Ed25519 seed gives the
 * inner Sign1 of the sealed packet, byte for byte; sealing it again with
 * the generic encoder round-trips. */
static void test_sign_reproduces_vector(void **state)
{
	(void)state;
	MT_TEST_NEED_MTP1();
	struct opened o;
	size_t ml, sl, kl, dkl, n = 0;
	uint8_t *msg = mt_test_mtp1_hex("message", &ml),
	        *seed = mt_test_mtp1_hex("ldev_ed25519_seed", &sl);
	uint8_t *kid = mt_test_mtp1_hex("ldev_ed25519_kid", &kl),
	        *dk = mt_test_mtp1_hex("data_key", &dkl);
	struct mt_key *k = NULL;
	uint8_t out[512], pkt[600], back[600], iv[12] = {9, 8, 7};
	struct mt_aead *a = NULL;
	struct mt_cose_encrypt0 e;
	size_t pl = 0, bl = 0;

	open_packet("sealed_eddsa_packet", "data_key", dev1, sizeof dev1, &o);
	assert_int_equal(mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, seed, sl, &k), MT_OK);
	assert_int_equal(mt_cose_sign1_sign(k, MT_COSE_ALG_EDDSA, kid, kl, msg, ml, NULL, 0, out,
	                                    sizeof out, &n),
	                 MT_OK);
	assert_int_equal(n, o.pt_len);
	assert_memory_equal(out, o.pt, n);
	assert_int_equal(mt_cose_sign1_sign(k, MT_COSE_ALG_EDDSA, kid, kl, msg, ml, NULL, 0, out,
	                                    n - 1, &n),
	                 MT_ERR_BUFFER);
	assert_int_equal(mt_cose_sign1_sign(k, MT_COSE_ALG_ES256, kid, kl, msg, ml, NULL, 0, out,
	                                    sizeof out, &n),
	                 MT_ERR_COSE_ALG);

	/* Encrypt0 round trip of the inner Sign1 with the data key. */
	assert_int_equal(mt_aead_new(&a), MT_OK);
	assert_int_equal(mt_cose_encrypt0_encrypt(a, MT_COSE_ALG_A256GCM, dk, dkl, iv, o.pt,
	                                          o.pt_len, dev1, sizeof dev1, pkt, sizeof pkt,
	                                          &pl),
	                 MT_OK);
	assert_int_equal(pkt[0], 0xd0);
	assert_int_equal(mt_cose_encrypt0_decode(pkt, pl, true, &e), MT_OK);
	assert_int_equal(mt_cose_encrypt0_decrypt(&e, a, dk, dkl, dev1, sizeof dev1, back,
	                                          sizeof back, &bl),
	                 MT_OK);
	assert_int_equal(bl, o.pt_len);
	assert_memory_equal(back, o.pt, bl);
	assert_int_equal(mt_cose_encrypt0_encrypt(a, MT_COSE_ALG_A256GCM, dk, dkl, iv, o.pt,
	                                          o.pt_len, dev1, sizeof dev1, pkt, pl - 1, &pl),
	                 MT_ERR_BUFFER);
	assert_int_equal(mt_cose_encrypt0_encrypt(a, MT_COSE_ALG_A128GCM, dk, dkl, iv, o.pt,
	                                          o.pt_len, NULL, 0, pkt, sizeof pkt, &pl),
	                 MT_ERR_COSE_ALG);
	assert_int_equal(mt_cose_encrypt0_encrypt(a, 99, dk, dkl, iv, o.pt, o.pt_len, NULL, 0,
	                                          pkt, sizeof pkt, &pl),
	                 MT_ERR_COSE_ALG);
	mt_aead_free(a);
	mt_key_free(k);
	free(msg);
	free(seed);
	free(kid);
	free(dk);
}

/* ------------------------------------------------------------ ES256 */

static void test_es256_roundtrip(void **state)
{
	(void)state;
	uint8_t d[32], out[256], want[32];
	struct mt_key *k = NULL, *ed = NULL;
	struct mt_cose_sign1 s;
	const uint8_t payload[] = "payload";
	const uint8_t kid[] = {1, 2, 3, 4, 5, 6, 7, 8};
	const uint8_t ext[] = {0xaa, 0xbb};
	size_t n = 0, wl;

	/* A fixed private scalar (any value in [1, n-1] works). */
	memset(d, 0x11, sizeof d);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d, 32, &k), MT_OK);
	memset(d, 0x22, sizeof d);
	assert_int_equal(mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, d, 32, &ed), MT_OK);
	const struct mt_pubkey *pk = mt_key_public(k);

	assert_int_equal(mt_cose_sign1_sign(k, MT_COSE_ALG_ES256, kid, sizeof kid, payload,
	                                    sizeof payload, ext, sizeof ext, out, sizeof out, &n),
	                 MT_OK);
	wl = mt_test_unhex("d2 84 43 a10126 a1 04 48 0102030405060708 48", want, sizeof want);
	assert_memory_equal(out, want, wl);
	assert_int_equal(n, wl + sizeof payload + 2 + 64);
	assert_int_equal(mt_cose_sign1_decode(out, n, true, &s), MT_OK);
	assert_int_equal(mt_cose_sign1_verify(&s, pk, ext, sizeof ext), MT_OK);
	assert_int_equal(mt_cose_sign1_verify(&s, pk, NULL, 0), MT_ERR_SIG_INVALID);
	assert_int_equal(mt_cose_sign1_verify(&s, mt_key_public(ed), ext, sizeof ext),
	                 MT_ERR_COSE_ALG);
	/* A changed payload byte or signature length. */
	out[wl] ^= 1;
	assert_int_equal(mt_cose_sign1_decode(out, n, true, &s), MT_OK);
	assert_int_equal(mt_cose_sign1_verify(&s, pk, ext, sizeof ext), MT_ERR_SIG_INVALID);
	out[wl] ^= 1;
	s.sig_len = 63;
	assert_int_equal(mt_cose_sign1_verify(&s, pk, ext, sizeof ext), MT_ERR_SIG_FORMAT);

	/* Without kid: unprotected {}. */
	assert_int_equal(mt_cose_sign1_sign(k, MT_COSE_ALG_ES256, NULL, 0, payload, sizeof payload,
	                                    NULL, 0, out, sizeof out, &n),
	                 MT_OK);
	wl = mt_test_unhex("d2 84 43 a10126 a0 48", want, sizeof want);
	assert_memory_equal(out, want, wl);
	assert_int_equal(mt_cose_sign1_decode(out, n, true, &s), MT_OK);
	assert_null(s.uh.kid);
	assert_int_equal(mt_cose_sign1_verify(&s, pk, NULL, 0), MT_OK);
	/* Empty payload. */
	assert_int_equal(mt_cose_sign1_sign(k, MT_COSE_ALG_ES256, NULL, 0, NULL, 0, NULL, 0, out,
	                                    sizeof out, &n),
	                 MT_OK);
	assert_int_equal(mt_cose_sign1_decode(out, n, true, &s), MT_OK);
	assert_non_null(s.payload);
	assert_int_equal(s.payload_len, 0);
	assert_int_equal(mt_cose_sign1_verify(&s, pk, NULL, 0), MT_OK);

	/* alg must fit the key. */
	assert_int_equal(mt_cose_sign1_sign(k, MT_COSE_ALG_EDDSA, NULL, 0, payload,
	                                    sizeof payload, NULL, 0, out, sizeof out, &n),
	                 MT_ERR_COSE_ALG);
	assert_int_equal(mt_cose_sign1_sign(k, MT_COSE_ALG_ES384, NULL, 0, payload,
	                                    sizeof payload, NULL, 0, out, sizeof out, &n),
	                 MT_ERR_COSE_ALG);
	/* Large external AAD and protected bucket take the heap path. */
	uint8_t *big = calloc(1, 2000);
	assert_non_null(big);
	assert_int_equal(mt_cose_sign1_sign(k, MT_COSE_ALG_ES256, NULL, 0, payload, sizeof payload,
	                                    big, 2000, out, sizeof out, &n),
	                 MT_OK);
	assert_int_equal(mt_cose_sign1_decode(out, n, true, &s), MT_OK);
	assert_int_equal(mt_cose_sign1_verify(&s, pk, big, 2000), MT_OK);
	big[1999] = 1;
	assert_int_equal(mt_cose_sign1_verify(&s, pk, big, 2000), MT_ERR_SIG_INVALID);
	free(big);
	mt_key_free(k);
	mt_key_free(ed);
}

/* --------------------------------------------------- decode refusals */

struct dcase {
	const char *hex;
	bool require_tag;
	enum mt_err want;
};

/* Sign1 cases.  The base object is
 *   d2 84 43 a10126 a1 04 42 3131 44 74657374 42 abcd
 * (protected {1: -7}, unprotected {4: h'3131'}, payload "test", sig h'abcd'). */
static const struct dcase mt_sign1_cases[] = {
	{"d2 84 43a10126 a1044231 31 4474657374 42abcd", true, MT_OK},
	{"84 43a10126 a1044231 31 4474657374 42abcd", false, MT_OK},
	{"84 43a10126 a1044231 31 4474657374 42abcd", true, MT_ERR_COSE_FORMAT},
	{"d0 84 43a10126 a1044231 31 4474657374 42abcd", false, MT_ERR_CBOR_TAG},
	{"d903e6 84 43a10126 a1044231 31 4474657374 42abcd", false, MT_ERR_CBOR_TAG},
	{"d812 84 43a10126 a1044231 31 4474657374 42abcd", false, MT_ERR_CBOR_NOT_SHORTEST},
	{"d2 d820 84 43a10126 a1044231 31 4474657374 42abcd", false, MT_ERR_CBOR_TAG},
	{"d2 d2 84 43a10126 a1044231 31 4474657374 42abcd", false, MT_ERR_CBOR_TAG},
	{"d2 84 43a10126 a1 04 d2 40 4474657374 42abcd", false, MT_ERR_CBOR_TAG},
	{"d2 83 43a10126 a1044231 31 4474657374", false, MT_ERR_COSE_FORMAT},
	{"d2 85 43a10126 a1044231 31 4474657374 42abcd 40", false, MT_ERR_COSE_FORMAT},
	{"d2 a1 01 02", false, MT_ERR_COSE_FORMAT},
	/* protected bucket: not a bstr, not a map, not strict, keys out of order */
	{"d2 84 626869 a1044231 31 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	{"d2 84 4101 a1044231 31 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	{"d2 84 42a000 a1044231 31 4474657374 42abcd", false, MT_ERR_CBOR_TRAILING},
	{"d2 84 47a2044231310126 a0 4474657374 42abcd", false, MT_ERR_CBOR_KEY_ORDER},
	{"d2 84 44a1013806 a0 4474657374 42abcd", false, MT_ERR_CBOR_NOT_SHORTEST},
	/* unprotected bucket not a map */
	{"d2 84 43a10126 80 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	/* a label in both buckets */
	{"d2 84 46a2012604 4131 a1044231 31 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	{"d2 84 43a10126 a20126044231 31 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	/* crit: unprotected, empty, unknown label, text label, not an array, ok */
	{"d2 84 43a10126 a2028104 044231 31 4474657374 42abcd", false, MT_ERR_COSE_CRIT},
	{"d2 84 45a2012602 80 a1044231 31 4474657374 42abcd", false, MT_ERR_COSE_CRIT},
	{"d2 84 47a20126028118 63 a1044231 31 4474657374 42abcd", false, MT_ERR_COSE_CRIT},
	{"d2 84 47a20126028161 78 a1044231 31 4474657374 42abcd", false, MT_ERR_COSE_CRIT},
	{"d2 84 45a2012602 03 a1044231 31 4474657374 42abcd", false, MT_ERR_COSE_CRIT},
	{"d2 84 46a2012602 8103 a10442 3131 4474657374 42abcd", false, MT_ERR_COSE_CRIT},
	{"d2 84 46a2012602 8104 a10442 3131 4474657374 42abcd", false, MT_OK},
	{"d2 84 47a2012602 820104 a10442 3131 4474657374 42abcd", false, MT_OK},
	/* header value types */
	{"d2 84 43a10126 a1046231 31 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	{"d2 84 43a10126 a10501 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	{"d2 84 45a1016265 73 a0 4474657374 42abcd", false, MT_ERR_COSE_ALG},
	{"d2 84 45a101f93c 00 a0 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	{"d2 84 4ba1011bffffffffffffffff a0 4474657374 42abcd", false, MT_ERR_COSE_ALG},
	{"d2 84 43a10126 a1182180 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	{"d2 84 43a10126 a118218101 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	{"d2 84 43a10126 a1182101 4474657374 42abcd", false, MT_ERR_COSE_FORMAT},
	/* other labels, text labels: skipped */
	{"d2 84 45a2012603 00 a2 0442 3131 6178 01 4474657374 42abcd", false, MT_OK},
	/* payload and signature types */
	{"d2 84 43a10126 a0 f6 42abcd", false, MT_OK},
	{"d2 84 43a10126 a0 01 42abcd", false, MT_ERR_COSE_FORMAT},
	{"d2 84 43a10126 a0 4474657374 01", false, MT_ERR_COSE_FORMAT},
	/* strict CBOR of the whole object */
	{"d2 84 43a10126 a1044231 31 4474657374 42abcd 00", false, MT_ERR_CBOR_TRAILING},
	{"d2 84 43a10126 a1044231 31 4474657374 42ab", false, MT_ERR_CBOR_TRUNCATED},
	{"d2 9f 43a10126 a1044231 31 4474657374 42abcd ff", false, MT_ERR_CBOR_INDEFINITE},
	{"d2 84 43a10126 a1044231 31 5800 42abcd", false, MT_ERR_CBOR_NOT_SHORTEST},
	{"d2 84 43a10126 a1 18 04 4231 31 4474657374 42abcd", false, MT_ERR_CBOR_NOT_SHORTEST},
	{"d2 84 43a10126 a2 05 40 04 40 4474657374 42abcd", false, MT_ERR_CBOR_KEY_ORDER},
	{"d2 84 43a10126 a1 04 d820 40 4474657374 42abcd", false, MT_ERR_CBOR_TAG},
	{"", false, MT_ERR_CBOR_TRUNCATED},
	{"d2", false, MT_ERR_CBOR_TRUNCATED},
	{"dc 84", false, MT_ERR_CBOR_MALFORMED},
};

static void test_sign1_decode_refusals(void **state)
{
	(void)state;
	int bad = 0;
	for (size_t i = 0; i < sizeof mt_sign1_cases / sizeof mt_sign1_cases[0]; i++) {
		const struct dcase *c = &mt_sign1_cases[i];
		uint8_t buf[128];
		struct mt_cose_sign1 s;
		size_t n = mt_test_unhex(c->hex, buf, sizeof buf);
		enum mt_err e = mt_cose_sign1_decode(buf, n, c->require_tag, &s);
		if (e != c->want) {
			printf("sign1 case %zu (%s): got %d %s, want %d\n", i, c->hex, e,
			       mt_err_str(e), c->want);
			bad++;
		}
		if (e != MT_OK)
			assert_null(s.sig); /* nothing half-decoded is left behind */
	}
	assert_int_equal(bad, 0);
}

static void test_sign1_decoded_fields(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct mt_cose_sign1 s;
	size_t n;

	/* protected h'a0' counts as empty (RFC 9052 §3) */
	n = mt_test_unhex("d2 84 41a0 a20126044231 31 4474657374 42abcd", buf, sizeof buf);
	assert_int_equal(mt_cose_sign1_decode(buf, n, true, &s), MT_OK);
	assert_int_equal(s.prot_len, 0);
	assert_false(s.ph.has_alg);
	assert_true(s.uh.has_alg);
	assert_int_equal(s.uh.alg, -7);
	assert_int_equal(s.uh.kid_len, 2);
	assert_memory_equal(s.uh.kid, "11", 2);
	assert_int_equal(s.payload_len, 4);
	assert_memory_equal(s.payload, "test", 4);
	assert_int_equal(s.sig_len, 2);

	/* x5chain: one bstr, or an array of them; the encoded item is returned */
	n = mt_test_unhex("d2 84 43a10126 a1 1821 42aabb 4474657374 42abcd", buf, sizeof buf);
	assert_int_equal(mt_cose_sign1_decode(buf, n, true, &s), MT_OK);
	assert_int_equal(s.uh.x5chain_len, 3);
	assert_memory_equal(s.uh.x5chain, "\x42\xaa\xbb", 3);
	n = mt_test_unhex("d2 84 43a10126 a1 1821 8241aa41bb 4474657374 42abcd", buf, sizeof buf);
	assert_int_equal(mt_cose_sign1_decode(buf, n, true, &s), MT_OK);
	assert_int_equal(s.uh.x5chain_len, 5);
	assert_memory_equal(s.uh.x5chain, "\x82\x41\xaa\x41\xbb", 5);
	assert_true(s.tagged);

	/* Detached payload decodes; verifying it is not supported; no alg. */
	uint8_t d[32];
	struct mt_key *k = NULL;
	memset(d, 0x33, sizeof d);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d, 32, &k), MT_OK);
	n = mt_test_unhex("d2 84 43a10126 a0 f6 42abcd", buf, sizeof buf);
	assert_int_equal(mt_cose_sign1_decode(buf, n, true, &s), MT_OK);
	assert_null(s.payload);
	assert_int_equal(mt_cose_sign1_verify(&s, mt_key_public(k), NULL, 0), MT_ERR_COSE_FORMAT);
	n = mt_test_unhex("d2 84 40 a0 4474657374 42abcd", buf, sizeof buf);
	assert_int_equal(mt_cose_sign1_decode(buf, n, true, &s), MT_OK);
	assert_int_equal(mt_cose_sign1_verify(&s, mt_key_public(k), NULL, 0), MT_ERR_COSE_ALG);
	n = mt_test_unhex("d2 84 44a1013822 a0 4474657374 42abcd", buf, sizeof buf); /* ES384 */
	assert_int_equal(mt_cose_sign1_decode(buf, n, true, &s), MT_OK);
	assert_int_equal(mt_cose_sign1_verify(&s, mt_key_public(k), NULL, 0), MT_ERR_SIG_FORMAT);
	n = mt_test_unhex("d2 84 45a1013903e6 a0 4474657374 42abcd", buf,
	                  sizeof buf); /* alg -999 */
	assert_int_equal(mt_cose_sign1_decode(buf, n, true, &s), MT_OK);
	assert_int_equal(mt_cose_sign1_verify(&s, mt_key_public(k), NULL, 0), MT_ERR_COSE_ALG);
	mt_key_free(k);
}

/* ------------------------------------------------------- Encrypt0 */

static void test_encrypt0(void **state)
{
	(void)state;
	uint8_t key[16], iv[12], pkt[128], out[128], buf[128];
	const uint8_t pt[] = "hello";
	struct mt_aead *a = NULL;
	struct mt_cose_encrypt0 e, t;
	size_t n = 0, ol = 0;

	memset(key, 0x42, sizeof key);
	memset(iv, 0x24, sizeof iv);
	assert_int_equal(mt_aead_new(&a), MT_OK);
	assert_int_equal(mt_cose_encrypt0_encrypt(a, MT_COSE_ALG_A128GCM, key, 16, iv, pt,
	                                          sizeof pt, NULL, 0, pkt, sizeof pkt, &n),
	                 MT_OK);
	uint8_t want[32];
	size_t wl = mt_test_unhex("d0 83 43 a10101 a1 05 4c 242424242424242424242424 56", want,
	                          sizeof want);
	assert_memory_equal(pkt, want, wl);
	assert_int_equal(n, wl + sizeof pt + 16);
	assert_int_equal(mt_cose_encrypt0_decode(pkt, n, true, &e), MT_OK);
	assert_int_equal(mt_cose_encrypt0_decrypt(&e, a, key, 16, NULL, 0, out, sizeof out, &ol),
	                 MT_OK);
	assert_int_equal(ol, sizeof pt);
	assert_memory_equal(out, pt, ol);

	/* Decrypt refusals from the structure. */
	t = e;
	t.uh.iv_len = 11;
	assert_int_equal(mt_cose_encrypt0_decrypt(&t, a, key, 16, NULL, 0, out, sizeof out, &ol),
	                 MT_ERR_COSE_FORMAT);
	t = e;
	t.uh.iv = NULL;
	assert_int_equal(mt_cose_encrypt0_decrypt(&t, a, key, 16, NULL, 0, out, sizeof out, &ol),
	                 MT_ERR_COSE_FORMAT);
	t = e;
	t.ct_len = 15;
	assert_int_equal(mt_cose_encrypt0_decrypt(&t, a, key, 16, NULL, 0, out, sizeof out, &ol),
	                 MT_ERR_COSE_FORMAT);
	t = e;
	t.ct_len--; /* a tag one byte short */
	assert_int_equal(mt_cose_encrypt0_decrypt(&t, a, key, 16, NULL, 0, out, sizeof out, &ol),
	                 MT_ERR_AEAD_TAG);
	t = e;
	t.ph.has_alg = false;
	assert_int_equal(mt_cose_encrypt0_decrypt(&t, a, key, 16, NULL, 0, out, sizeof out, &ol),
	                 MT_ERR_COSE_ALG);
	assert_int_equal(mt_cose_encrypt0_decrypt(&e, a, key, 15, NULL, 0, out, sizeof out, &ol),
	                 MT_ERR_COSE_ALG);
	uint8_t k32[32] = {0};
	assert_int_equal(mt_cose_encrypt0_decrypt(&e, a, k32, 32, NULL, 0, out, sizeof out, &ol),
	                 MT_ERR_COSE_ALG);
	assert_int_equal(mt_cose_encrypt0_decrypt(&e, a, key, 16, NULL, 0, out, sizeof pt - 1, &ol),
	                 MT_ERR_BUFFER);
	assert_int_equal(mt_cose_encrypt0_decrypt(&e, a, key, 16, (const uint8_t *)"x", 1, out,
	                                          sizeof out, &ol),
	                 MT_ERR_AEAD_TAG);
	/* The protected bucket is authenticated: A128GCM → the same alg written
	 * in the unprotected bucket instead fails the tag. */
	n = mt_test_unhex("d0 83 40 a2 0101 054c 242424242424242424242424", buf, sizeof buf);
	buf[n++] = 0x56;
	memcpy(buf + n, pkt + wl, sizeof pt + 16);
	n += sizeof pt + 16;
	assert_int_equal(mt_cose_encrypt0_decode(buf, n, true, &t), MT_OK);
	assert_false(t.ph.has_alg);
	assert_true(t.uh.has_alg);
	assert_int_equal(mt_cose_encrypt0_decrypt(&t, a, key, 16, NULL, 0, out, sizeof out, &ol),
	                 MT_ERR_AEAD_TAG);

	/* Decode refusals. */
	n = mt_test_unhex("d0 83 43a10101 a2 054c 242424242424242424242424 06 4101 4100", buf,
	                  sizeof buf);
	assert_int_equal(mt_cose_encrypt0_decode(buf, n, true, &t), MT_ERR_COSE_FORMAT);
	n = mt_test_unhex("d2 83 43a10101 a0 4100", buf, sizeof buf);
	assert_int_equal(mt_cose_encrypt0_decode(buf, n, false, &t), MT_ERR_CBOR_TAG);
	n = mt_test_unhex("d0 84 43a10101 a0 4100 40", buf, sizeof buf);
	assert_int_equal(mt_cose_encrypt0_decode(buf, n, false, &t), MT_ERR_COSE_FORMAT);
	n = mt_test_unhex("83 43a10101 a0 4100", buf, sizeof buf);
	assert_int_equal(mt_cose_encrypt0_decode(buf, n, true, &t), MT_ERR_COSE_FORMAT);
	assert_int_equal(mt_cose_encrypt0_decode(buf, n, false, &t), MT_OK);
	assert_false(t.tagged);
	n = mt_test_unhex("d0 83 43a10101 a0 f6", buf, sizeof buf);
	assert_int_equal(mt_cose_encrypt0_decode(buf, n, false, &t), MT_ERR_COSE_FORMAT);
	mt_aead_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structures),
		cmocka_unit_test(test_structures_fixed),
		cmocka_unit_test(test_vector_packets),
		cmocka_unit_test(test_sign_reproduces_vector),
		cmocka_unit_test(test_es256_roundtrip),
		cmocka_unit_test(test_sign1_decode_refusals),
		cmocka_unit_test(test_sign1_decoded_fields),
		cmocka_unit_test(test_encrypt0),
	};
	return cmocka_run_group_tests(tests, mt_test_mtp1_setup, mt_test_mtp1_teardown);
}
