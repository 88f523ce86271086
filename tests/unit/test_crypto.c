/*
 * test_crypto.c — the OpenSSL adapter (mt_crypto.h, crypto_int.h).
 *
 * What is proved, and where it comes from:
 *   - kid (protocol §1): the MTP/1 vector keys give the vectors' kids, from
 *     the DER SPKI, from raw points, from a compressed-point SPKI (normalised
 *     to the uncompressed form before hashing) and from the key store.
 *   - data and receipt keys (protocol §4, §4a): HKDF over the vectors' ECDH
 *     secret reproduces data_key / receipt_key; the ECDH secret itself comes
 *     out of both sides of the exchange.
 *   - signatures (protocol §4; threat "forged packet"): round trips for
 *     ES256 and Ed25519 (and P-384, P-521, Ed448 for generic COSE), any split
 *     of the signed bytes into prefix and message, tampering refused
 *     (MT_ERR_SIG_INVALID), r or s = 0 or ≥ n and wrong lengths refused as
 *     MT_ERR_SIG_FORMAT before any curve arithmetic, high s accepted, strict
 *     DER for mt_sig_verify_der, the RFC 8032 §7.1 test 1 signature.
 *   - public keys: points off the curve, truncated or padded DER, keys of
 *     other kinds refused with the right code; PEM write/read round trip.
 *   - AES-GCM (threat "AEAD forgery"): round trips for every key size, in
 *     place, across key-size changes on one context; a truncated or altered
 *     tag, ciphertext or AAD is MT_ERR_AEAD_TAG and leaves the output wiped.
 * Tests that need ../shared/vectors/mtp1 skip themselves when it is absent;
 * the others always run.
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
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include "crypto_int.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "mt_testjson.h"
#include "mt_testutil.h"

/* The group order n of a curve, from OpenSSL, left-padded to `len` bytes. */
static void order_of(int nid, uint8_t *out, size_t len)
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(nid);
	assert_non_null(g);
	assert_int_equal(BN_bn2binpad(EC_GROUP_get0_order(g), out, (int)len), (int)len);
	EC_GROUP_free(g);
}

/* Big-endian a := b - a for `len`-byte numbers (b > a). */
static void sub_from(uint8_t *a, const uint8_t *b, size_t len)
{
	int borrow = 0;
	for (size_t i = len; i-- > 0;) {
		int d = (int)b[i] - (int)a[i] - borrow;
		borrow = d < 0;
		a[i] = (uint8_t)(d + (borrow ? 256 : 0));
	}
}

static EVP_PKEY *keygen(const char *type, const char *group)
{
	EVP_PKEY *k = group ? EVP_PKEY_Q_keygen(NULL, NULL, type, group)
	                    : EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(k);
	return k;
}

/* ------------------------------------------------------------ kids */

static void test_kid_vectors(void **state)
{
	(void)state;
	MT_TEST_NEED_MTP1();
	size_t sl, kl, el, ekl, dl, seedl;
	uint8_t *spki = mt_test_mtp1_hex("ldev_p256_spki", &sl),
	        *kid = mt_test_mtp1_hex("ldev_p256_kid", &kl);
	uint8_t *espki = mt_test_mtp1_hex("ldev_ed25519_spki", &el),
	        *ekid = mt_test_mtp1_hex("ldev_ed25519_kid", &ekl);
	uint8_t *d = mt_test_mtp1_hex("ldev_p256_d", &dl),
	        *seed = mt_test_mtp1_hex("ldev_ed25519_seed", &seedl);
	uint8_t k[MT_KID_LEN], out[MT_SPKI_MAX], comp[MT_SPKI_MAX];
	size_t ol;
	struct mt_pubkey *pk = NULL;
	struct mt_key *key = NULL;

	assert_int_equal(kl, MT_KID_LEN);
	assert_int_equal(mt_kid_of_spki(spki, sl, k), MT_OK);
	assert_memory_equal(k, kid, MT_KID_LEN);
	assert_int_equal(mt_kid_of_spki(espki, el, k), MT_OK);
	assert_memory_equal(k, ekid, MT_KID_LEN);

	/* From the raw point, and its SPKI is the normalised one. */
	assert_int_equal(sl, 91);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_P256, spki + 26, 65, &pk), MT_OK);
	assert_int_equal(mt_pubkey_type(pk), MT_KEY_P256);
	assert_memory_equal(mt_pubkey_kid(pk), kid, MT_KID_LEN);
	assert_int_equal(mt_pubkey_spki(pk, out, sizeof out, &ol), MT_OK);
	assert_int_equal(ol, sl);
	assert_memory_equal(out, spki, sl);
	assert_int_equal(mt_pubkey_spki(pk, out, sl - 1, &ol), MT_ERR_BUFFER);
	mt_pubkey_free(pk);

	/* A compressed-point SPKI has the same kid (normalised first). */
	size_t cl = mt_test_unhex("3039301306072a8648ce3d020106082a8648ce3d030107032200", comp,
	                sizeof comp);
	comp[cl] = (uint8_t)(0x02 | (spki[sl - 1] & 1));
	memcpy(comp + cl + 1, spki + 27, 32);
	cl += 33;
	assert_int_equal(mt_kid_of_spki(comp, cl, k), MT_OK);
	assert_memory_equal(k, kid, MT_KID_LEN);
	assert_int_equal(mt_pubkey_from_spki(comp, cl, &pk), MT_OK);
	assert_int_equal(mt_pubkey_spki(pk, out, sizeof out, &ol), MT_OK);
	assert_int_equal(ol, sl);
	assert_memory_equal(out, spki, sl); /* uncompressed again */
	mt_pubkey_free(pk);
	/* The other parity is another point: another kid (or off the curve). */
	comp[cl - 33] ^= 1;
	if (mt_kid_of_spki(comp, cl, k) == MT_OK)
		assert_memory_not_equal(k, kid, MT_KID_LEN);
	/* Compressed raw point. */
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_P256, comp + cl - 33, 33, &pk), MT_OK);
	assert_memory_not_equal(mt_pubkey_kid(pk), kid, MT_KID_LEN);
	mt_pubkey_free(pk);

	/* Ed25519 from the raw key. */
	assert_int_equal(el, 44);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_ED25519, espki + 12, 32, &pk), MT_OK);
	assert_memory_equal(mt_pubkey_kid(pk), ekid, MT_KID_LEN);
	mt_pubkey_free(pk);

	/* The key store's public halves carry the same kids. */
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d, dl, &key), MT_OK);
	assert_memory_equal(mt_pubkey_kid(mt_key_public(key)), kid, MT_KID_LEN);
	mt_key_free(key);
	assert_int_equal(mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, seed, seedl, &key),
	                 MT_OK);
	assert_memory_equal(mt_pubkey_kid(mt_key_public(key)), ekid, MT_KID_LEN);
	mt_key_free(key);

	free(spki);
	free(kid);
	free(espki);
	free(ekid);
	free(d);
	free(seed);
}

/* ------------------------------------------------------ ECDH + HKDF */

static void test_data_key_vectors(void **state)
{
	(void)state;
	MT_TEST_NEED_MTP1();
	size_t l1, l2, l3, l4, l5, l6, l7, l8;
	uint8_t *hub_d = mt_test_mtp1_hex("hub_kx_d", &l1),
	        *hub_spki = mt_test_mtp1_hex("hub_kx_spki", &l2);
	uint8_t *dev_d = mt_test_mtp1_hex("dev_kx_d", &l3),
	        *dev_spki = mt_test_mtp1_hex("dev_kx_spki", &l4);
	uint8_t *ecdh_x = mt_test_mtp1_hex("ecdh_x", &l5),
	        *info = mt_test_mtp1_hex("hkdf_info_data", &l6);
	uint8_t *data_key = mt_test_mtp1_hex("data_key", &l7),
	        *receipt_key = mt_test_mtp1_hex("receipt_key", &l8);
	const uint8_t salt[4] = {0x00, 0x00, 0x00, 0x07}; /* epoch 7, big-endian */
	const char *dev = mt_test_json_str(mt_test_mtp1, "device_id");
	uint8_t x[32], k[32], rinfo[64];
	struct mt_pubkey *hub_pub = NULL, *dev_pub = NULL;
	struct mt_key *hub = NULL, *devk = NULL;

	assert_non_null(dev);
	assert_int_equal(json_integer_value(json_object_get(mt_test_mtp1, "epoch")), 7);
	assert_int_equal(mt_pubkey_from_spki(hub_spki, l2, &hub_pub), MT_OK);
	assert_int_equal(mt_pubkey_from_spki(dev_spki, l4, &dev_pub), MT_OK);

	/* Both sides of the exchange, through the key store. */
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_DERIVE, dev_d, l3, &devk),
	                 MT_OK);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_DERIVE, hub_d, l1, &hub),
	                 MT_OK);
	assert_int_equal(mt_key_ecdh(devk, hub_pub, x), MT_OK);
	assert_memory_equal(x, ecdh_x, 32);
	memset(x, 0, sizeof x);
	assert_int_equal(mt_key_ecdh(hub, dev_pub, x), MT_OK);
	assert_memory_equal(x, ecdh_x, 32);

	/* K = HKDF(x, salt = epoch, info = "MTP/1 A256GCM " ‖ id). */
	assert_string_equal(dev, "dev-1");
	assert_int_equal(l6, 14 + strlen(dev));
	assert_memory_equal(info, "MTP/1 A256GCM dev-1", l6);
	assert_int_equal(mt_hkdf_sha256(ecdh_x, 32, salt, 4, info, l6, k, 32), MT_OK);
	assert_memory_equal(k, data_key, 32);
	/* receipt key: info = "MTP/1 receipt " ‖ id */
	int n = snprintf((char *)rinfo, sizeof rinfo, "MTP/1 receipt %s", dev);
	assert_int_equal(mt_hkdf_sha256(ecdh_x, 32, salt, 4, rinfo, (size_t)n, k, 32), MT_OK);
	assert_memory_equal(k, receipt_key, 32);
	/* Another epoch gives another key. */
	const uint8_t salt8[4] = {0, 0, 0, 8};
	assert_int_equal(mt_hkdf_sha256(ecdh_x, 32, salt8, 4, info, l6, k, 32), MT_OK);
	assert_memory_not_equal(k, data_key, 32);

	mt_key_free(hub);
	mt_key_free(devk);
	mt_pubkey_free(hub_pub);
	mt_pubkey_free(dev_pub);
	free(hub_d);
	free(hub_spki);
	free(dev_d);
	free(dev_spki);
	free(ecdh_x);
	free(info);
	free(data_key);
	free(receipt_key);
}

/* The software helper directly: an EVP_PKEY pair derives the same x both ways. */
static void test_ecdh_evp(void **state)
{
	(void)state;
	EVP_PKEY *a = keygen("EC", "P-256"), *b = keygen("EC", "P-256");
	EVP_PKEY *ed = keygen("ED25519", NULL);
	struct mt_pubkey *pa = NULL, *pb = NULL, *ped = NULL;
	uint8_t x1[32], x2[32];

	assert_int_equal(mt_pubkey__from_evp(a, &pa), MT_OK);
	assert_int_equal(mt_pubkey__from_evp(b, &pb), MT_OK);
	assert_int_equal(mt_pubkey__from_evp(ed, &ped), MT_OK);
	assert_ptr_equal(mt_pubkey__evp(pa), a);
	assert_int_equal(mt_ecdh__derive(a, pb, x1), MT_OK);
	assert_int_equal(mt_ecdh__derive(b, pa, x2), MT_OK);
	assert_memory_equal(x1, x2, 32);
	assert_int_equal(mt_ecdh__derive(a, ped, x1), MT_ERR_KEY_TYPE);
	assert_int_equal(mt_ecdh__derive(ed, pa, x1), MT_ERR_KEY_TYPE);
	mt_pubkey_free(pa);
	mt_pubkey_free(pb);
	mt_pubkey_free(ped);
	EVP_PKEY_free(a); /* the mt_pubkeys held their own references */
	EVP_PKEY_free(b);
	EVP_PKEY_free(ed);
}

static void test_hkdf_limits(void **state)
{
	(void)state;
	static uint8_t out[255 * 32 + 1];
	const uint8_t ikm[4] = {1, 2, 3, 4};

	assert_int_equal(mt_hkdf_sha256(ikm, 4, NULL, 0, NULL, 0, out, 255 * 32), MT_OK);
	assert_int_equal(mt_hkdf_sha256(ikm, 4, NULL, 0, NULL, 0, out, 255 * 32 + 1),
	                 MT_ERR_ARG);
	assert_int_equal(mt_hkdf_sha256(ikm, 4, NULL, 0, NULL, 0, out, 0), MT_ERR_ARG);
	assert_int_equal(mt_hkdf_sha256(NULL, 4, NULL, 0, NULL, 0, out, 32), MT_ERR_ARG);
	/* RFC 5869 A.3: empty salt and info. */
	uint8_t ikm3[22], okm3[42];
	memset(ikm3, 0x0b, sizeof ikm3);
	mt_test_unhex_exact(
	        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4"
	        "b61a96c8",
	        okm3, sizeof okm3);
	assert_int_equal(mt_hkdf_sha256(ikm3, 22, NULL, 0, NULL, 0, out, 42), MT_OK);
	assert_memory_equal(out, okm3, 42);
}

/* ------------------------------------------------------------ ES256 */

static void test_es256_roundtrip(void **state)
{
	(void)state;
	EVP_PKEY *k = keygen("EC", "P-256");
	struct mt_pubkey *pk = NULL;
	uint8_t msg[100], sig[MT_SIG_LEN], bad[MT_SIG_LEN + 1];

	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (uint8_t)(i * 7);
	assert_int_equal(mt_pubkey__from_evp(k, &pk), MT_OK);
	assert_int_equal(mt_pubkey_type(pk), MT_KEY_P256);
	assert_int_equal(mt_sign__evp(k, msg, sizeof msg, sig), MT_OK);
	/* Every split of the signed bytes into prefix ‖ message verifies. */
	for (size_t cut = 0; cut <= sizeof msg; cut++)
		assert_int_equal(mt_sig_verify(pk, msg, cut, msg + cut, sizeof msg - cut, sig,
		                               MT_SIG_LEN),
		                 MT_OK);
	assert_int_equal(mt_sig_verify_hash(pk, 256, NULL, 0, msg, sizeof msg, sig, 64), MT_OK);
	/* The wrong hash, a changed message or signature: refused. */
	assert_int_equal(mt_sig_verify_hash(pk, 384, NULL, 0, msg, sizeof msg, sig, 64),
	                 MT_ERR_SIG_INVALID);
	assert_int_equal(mt_sig_verify_hash(pk, 1, NULL, 0, msg, sizeof msg, sig, 64),
	                 MT_ERR_ARG);
	msg[50] ^= 1;
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, sig, 64), MT_ERR_SIG_INVALID);
	msg[50] ^= 1;
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg - 1, sig, 64),
	                 MT_ERR_SIG_INVALID);
	for (size_t i = 0; i < MT_SIG_LEN; i += 9) {
		memcpy(bad, sig, MT_SIG_LEN);
		bad[i] ^= 0x10;
		enum mt_err e = mt_sig_verify(pk, NULL, 0, msg, sizeof msg, bad, 64);
		assert_true(e == MT_ERR_SIG_INVALID || e == MT_ERR_SIG_FORMAT);
	}
	/* Lengths other than 64 (DER inside COSE is refused). */
	memcpy(bad, sig, MT_SIG_LEN);
	bad[64] = 0;
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, bad, 65), MT_ERR_SIG_FORMAT);
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, sig, 63), MT_ERR_SIG_FORMAT);
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, sig, 0), MT_ERR_SIG_FORMAT);
	/* Empty message. */
	assert_int_equal(mt_sign__evp(k, NULL, 0, sig), MT_OK);
	assert_int_equal(mt_sig_verify(pk, NULL, 0, NULL, 0, sig, 64), MT_OK);
	mt_pubkey_free(pk);
	EVP_PKEY_free(k);
}

/* r, s outside [1, n-1] are refused as MT_ERR_SIG_FORMAT; high s is accepted. */
static void test_es256_range(void **state)
{
	(void)state;
	EVP_PKEY *k = keygen("EC", "P-256");
	struct mt_pubkey *pk = NULL;
	const uint8_t msg[] = "range";
	uint8_t sig[64], t[64], n[32], known_n[32];

	order_of(NID_X9_62_prime256v1, n, 32);
	mt_test_unhex_exact("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
	                    known_n, 32);
	assert_memory_equal(n, known_n, 32);
	assert_int_equal(mt_pubkey__from_evp(k, &pk), MT_OK);
	assert_int_equal(mt_sign__evp(k, msg, sizeof msg, sig), MT_OK);
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, sig, 64), MT_OK);

	memcpy(t, sig, 64);
	memset(t, 0, 32); /* r = 0 */
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, t, 64), MT_ERR_SIG_FORMAT);
	memcpy(t, sig, 64);
	memset(t + 32, 0, 32); /* s = 0 */
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, t, 64), MT_ERR_SIG_FORMAT);
	memcpy(t, sig, 64);
	memcpy(t, n, 32); /* r = n */
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, t, 64), MT_ERR_SIG_FORMAT);
	memcpy(t, sig, 64);
	memcpy(t + 32, n, 32); /* s = n */
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, t, 64), MT_ERR_SIG_FORMAT);
	memset(t, 0xff, 64); /* r, s = 2^256 - 1 */
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, t, 64), MT_ERR_SIG_FORMAT);
	memcpy(t, sig, 64);
	memcpy(t, n, 32);
	t[31]--; /* r = n - 1: in range, just wrong */
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, t, 64), MT_ERR_SIG_INVALID);
	memset(t, 0, 64);
	t[31] = 1;
	t[63] = 1; /* r = s = 1 */
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, t, 64), MT_ERR_SIG_INVALID);

	/* (r, n - s) is the other valid signature: accepted (no low-s rule). */
	memcpy(t, sig, 64);
	sub_from(t + 32, n, 32);
	assert_memory_not_equal(t + 32, sig + 32, 32);
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, t, 64), MT_OK);
	mt_pubkey_free(pk);
	EVP_PKEY_free(k);
}

/* DER signatures: OpenSSL's own encoding verifies; any deviation does not. */
static void test_es256_der(void **state)
{
	(void)state;
	EVP_PKEY *k = keygen("EC", "P-256");
	EVP_PKEY *ed = keygen("ED25519", NULL);
	struct mt_pubkey *pk = NULL, *ped = NULL;
	const uint8_t msg[] = "der";
	uint8_t sig[64], der[80], t[84];
	unsigned char *p = der;
	int dl;

	assert_int_equal(mt_pubkey__from_evp(k, &pk), MT_OK);
	assert_int_equal(mt_pubkey__from_evp(ed, &ped), MT_OK);
	assert_int_equal(mt_sign__evp(k, msg, sizeof msg, sig), MT_OK);
	ECDSA_SIG *es = ECDSA_SIG_new();
	assert_non_null(es);
	assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)),
	                 1);
	dl = i2d_ECDSA_SIG(es, &p);
	ECDSA_SIG_free(es);
	assert_true(dl > 8 && dl <= 72);

	assert_int_equal(mt_sig_verify_der(pk, 256, msg, sizeof msg, der, (size_t)dl), MT_OK);
	assert_int_equal(mt_sig_verify_der(pk, 384, msg, sizeof msg, der, (size_t)dl),
	                 MT_ERR_SIG_INVALID);
	assert_int_equal(mt_sig_verify_der(pk, 0, msg, sizeof msg, der, (size_t)dl), MT_ERR_ARG);
	assert_int_equal(mt_sig_verify_der(ped, 256, msg, sizeof msg, der, (size_t)dl),
	                 MT_ERR_KEY_TYPE);
	/* trailing byte */
	memcpy(t, der, (size_t)dl);
	t[dl] = 0;
	assert_int_equal(mt_sig_verify_der(pk, 256, msg, sizeof msg, t, (size_t)dl + 1),
	                 MT_ERR_SIG_FORMAT);
	/* truncated */
	assert_int_equal(mt_sig_verify_der(pk, 256, msg, sizeof msg, der, (size_t)dl - 1),
	                 MT_ERR_SIG_FORMAT);
	/* long-form length where the short form fits (BER) */
	t[0] = 0x30;
	t[1] = 0x81;
	t[2] = der[1];
	memcpy(t + 3, der + 2, (size_t)dl - 2);
	assert_int_equal(mt_sig_verify_der(pk, 256, msg, sizeof msg, t, (size_t)dl + 1),
	                 MT_ERR_SIG_FORMAT);
	/* r with a superfluous leading zero */
	size_t rl = der[3];
	t[0] = 0x30;
	t[1] = (uint8_t)(der[1] + 1);
	t[2] = 0x02;
	t[3] = (uint8_t)(rl + 1);
	t[4] = 0x00;
	memcpy(t + 5, der + 4, (size_t)dl - 4);
	assert_int_equal(mt_sig_verify_der(pk, 256, msg, sizeof msg, t, (size_t)dl + 1),
	                 MT_ERR_SIG_FORMAT);
	/* r negative (top bit set without a zero byte), r zero */
	const uint8_t neg[] = {0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01};
	assert_int_equal(mt_sig_verify_der(pk, 256, msg, sizeof msg, neg, sizeof neg),
	                 MT_ERR_SIG_FORMAT);
	const uint8_t zero[] = {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01};
	assert_int_equal(mt_sig_verify_der(pk, 256, msg, sizeof msg, zero, sizeof zero),
	                 MT_ERR_SIG_FORMAT);
	mt_pubkey_free(pk);
	mt_pubkey_free(ped);
	EVP_PKEY_free(k);
	EVP_PKEY_free(ed);
}

/* ---------------------------------------------------------- EdDSA */

static void test_ed25519(void **state)
{
	(void)state;
	/* RFC 8032 §7.1, TEST 1 (empty message). */
	uint8_t seed[32], pub[32], expect[64], sig[64], bad[64];
	mt_test_unhex_exact("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	                    seed, 32);
	mt_test_unhex_exact("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pub,
	                    32);
	mt_test_unhex_exact(
	        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc6"
	        "1e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
	        expect, 64);
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, seed, 32);
	struct mt_pubkey *pk = NULL, *pk2 = NULL;
	assert_non_null(k);
	assert_int_equal(mt_pubkey__from_evp(k, &pk), MT_OK);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_ED25519, pub, 32, &pk2), MT_OK);
	assert_memory_equal(mt_pubkey_kid(pk), mt_pubkey_kid(pk2), MT_KID_LEN);
	assert_int_equal(mt_sign__evp(k, NULL, 0, sig), MT_OK);
	assert_memory_equal(sig, expect, 64);
	assert_int_equal(mt_sig_verify(pk2, NULL, 0, NULL, 0, sig, 64), MT_OK);

	uint8_t msg[300];
	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (uint8_t)i;
	assert_int_equal(mt_sign__evp(k, msg, sizeof msg, sig), MT_OK);
	for (size_t cut = 0; cut <= sizeof msg; cut += 13)
		assert_int_equal(mt_sig_verify(pk, msg, cut, msg + cut, sizeof msg - cut, sig, 64),
		                 MT_OK);
	/* Larger than the stack join buffer: the heap path. */
	uint8_t *big = malloc(5000);
	assert_non_null(big);
	memset(big, 0x5a, 5000);
	assert_int_equal(mt_sign__evp(k, big, 5000, sig), MT_OK);
	assert_int_equal(mt_sig_verify(pk, big, 2500, big + 2500, 2500, sig, 64), MT_OK);
	big[4999] ^= 1;
	assert_int_equal(mt_sig_verify(pk, big, 2500, big + 2500, 2500, sig, 64),
	                 MT_ERR_SIG_INVALID);
	free(big);

	assert_int_equal(mt_sign__evp(k, msg, sizeof msg, sig), MT_OK);
	memcpy(bad, sig, 64);
	bad[10] ^= 1;
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, bad, 64), MT_ERR_SIG_INVALID);
	msg[0] ^= 1;
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, sig, 64), MT_ERR_SIG_INVALID);
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, sig, 63), MT_ERR_SIG_FORMAT);
	assert_int_equal(mt_sig_verify_hash(pk, 256, NULL, 0, msg, sizeof msg, sig, 64),
	                 MT_ERR_ARG);
	mt_pubkey_free(pk);
	mt_pubkey_free(pk2);
	EVP_PKEY_free(k);
}

/* ------------------------------- other curves (generic COSE only) */

static void ecdsa_other(const char *group, int nid, int bits, size_t field,
                        enum mt_key_type type)
{
	EVP_PKEY *k = keygen("EC", group);
	struct mt_pubkey *pk = NULL, *pk2 = NULL;
	const uint8_t msg[] = "other curve";
	uint8_t der[160], rs[132], n[66], spki[MT_SPKI_MAX];
	size_t dl = sizeof der, sl;
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	const char *md = bits == 384 ? "SHA384" : "SHA512";

	assert_int_equal(mt_pubkey__from_evp(k, &pk), MT_OK);
	assert_int_equal(mt_pubkey_type(pk), type);
	assert_int_equal(mt_pubkey_spki(pk, spki, sizeof spki, &sl), MT_OK);
	assert_int_equal(mt_pubkey_from_spki(spki, sl, &pk2), MT_OK);
	assert_memory_equal(mt_pubkey_kid(pk), mt_pubkey_kid(pk2), MT_KID_LEN);
	/* Our SPKI is what OpenSSL writes. */
	unsigned char *ossl = NULL;
	int ol = i2d_PUBKEY(k, &ossl);
	assert_int_equal((size_t)ol, sl);
	assert_memory_equal(ossl, spki, sl);
	OPENSSL_free(ossl);

	assert_non_null(mc);
	assert_int_equal(EVP_DigestSignInit_ex(mc, NULL, md, NULL, NULL, k, NULL), 1);
	assert_int_equal(EVP_DigestSign(mc, der, &dl, msg, sizeof msg), 1);
	EVP_MD_CTX_free(mc);
	assert_int_equal(mt_sig_verify_der(pk, bits, msg, sizeof msg, der, dl), MT_OK);

	const unsigned char *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
	assert_non_null(es);
	BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, (int)field);
	BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + field, (int)field);
	ECDSA_SIG_free(es);
	assert_int_equal(mt_sig_verify(pk2, msg, 3, msg + 3, sizeof msg - 3, rs, 2 * field), MT_OK);
	assert_int_equal(mt_sig_verify(pk2, NULL, 0, msg, sizeof msg, rs, 64), MT_ERR_SIG_FORMAT);
	order_of(nid, n, field);
	memcpy(rs, n, field);
	assert_int_equal(mt_sig_verify(pk2, NULL, 0, msg, sizeof msg, rs, 2 * field),
	                 MT_ERR_SIG_FORMAT);
	/* Signing is for P-256 and Ed25519 only. */
	assert_int_equal(mt_sign__evp(k, msg, sizeof msg, rs), MT_ERR_KEY_TYPE);
	mt_pubkey_free(pk);
	mt_pubkey_free(pk2);
	EVP_PKEY_free(k);
}

static void test_other_curves(void **state)
{
	(void)state;
	ecdsa_other("P-384", NID_secp384r1, 384, 48, MT_KEY_P384);
	ecdsa_other("P-521", NID_secp521r1, 512, 66, MT_KEY_P521);

	EVP_PKEY *k = keygen("ED448", NULL);
	struct mt_pubkey *pk = NULL;
	const uint8_t msg[] = "ed448";
	uint8_t sig[114];
	size_t sl = sizeof sig;
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	assert_non_null(mc);
	assert_int_equal(EVP_DigestSignInit_ex(mc, NULL, NULL, NULL, NULL, k, NULL), 1);
	assert_int_equal(EVP_DigestSign(mc, sig, &sl, msg, sizeof msg), 1);
	EVP_MD_CTX_free(mc);
	assert_int_equal(mt_pubkey__from_evp(k, &pk), MT_OK);
	assert_int_equal(mt_pubkey_type(pk), MT_KEY_ED448);
	assert_int_equal(mt_sig_verify(pk, msg, 2, msg + 2, sizeof msg - 2, sig, 114), MT_OK);
	sig[0] ^= 1;
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, sig, 114), MT_ERR_SIG_INVALID);
	assert_int_equal(mt_sig_verify(pk, NULL, 0, msg, sizeof msg, sig, 64), MT_ERR_SIG_FORMAT);
	mt_pubkey_free(pk);
	EVP_PKEY_free(k);
}

/* ------------------------------------------------- public key parsing */

static void expect_spki(EVP_PKEY *k, enum mt_err want)
{
	unsigned char *der = NULL;
	int dl = i2d_PUBKEY(k, &der);
	struct mt_pubkey *pk = NULL;
	assert_true(dl > 0);
	assert_int_equal(mt_pubkey_from_spki(der, (size_t)dl, &pk), want);
	assert_null(pk);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

static void test_pubkey_refusals(void **state)
{
	(void)state;
	uint8_t spki[91], t[100];
	struct mt_pubkey *pk = NULL;

	mt_test_unhex_exact(
	        "3059301306072a8648ce3d020106082a8648ce3d03010703420004e643249c2d6e3adde9a434bd0c02"
	        "8b3bc1be120d3a91ff27d35843485004b655854bf0e07bf58cbe5aeed504f128023c753a46342c78d7"
	        "5aff3db9393330d52d",
	        spki, sizeof spki);
	assert_int_equal(mt_pubkey_from_spki(spki, 91, &pk), MT_OK);
	mt_pubkey_free(pk);
	pk = NULL;
	/* Point off the curve. */
	memcpy(t, spki, 91);
	t[90] ^= 1;
	assert_int_equal(mt_pubkey_from_spki(t, 91, &pk), MT_ERR_KEY_FORMAT);
	assert_null(pk);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_P256, t + 26, 65, &pk), MT_ERR_KEY_FORMAT);
	/* x ≥ p */
	memset(t + 27, 0xff, 32);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_P256, t + 26, 65, &pk), MT_ERR_KEY_FORMAT);
	/* Truncated, padded, trailing bytes, wrong point prefix. */
	assert_int_equal(mt_pubkey_from_spki(spki, 90, &pk), MT_ERR_KEY_FORMAT);
	memcpy(t, spki, 91);
	t[91] = 0;
	assert_int_equal(mt_pubkey_from_spki(t, 92, &pk), MT_ERR_KEY_FORMAT);
	memcpy(t, spki, 91);
	t[26] = 0x06; /* hybrid form */
	assert_int_equal(mt_pubkey_from_spki(t, 91, &pk), MT_ERR_KEY_FORMAT);
	assert_int_equal(mt_pubkey_from_spki(spki, 0, &pk), MT_ERR_KEY_FORMAT);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_P256, spki + 27, 64, &pk), MT_ERR_KEY_FORMAT);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_P256, spki + 26, 33, &pk), MT_ERR_KEY_FORMAT);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_ED25519, spki, 31, &pk), MT_ERR_KEY_FORMAT);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_NONE, spki, 32, &pk), MT_ERR_KEY_TYPE);
	assert_int_equal(mt_pubkey_from_spki(NULL, 0, NULL), MT_ERR_ARG);
	/* Keys of other kinds. */
	expect_spki(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024), MT_ERR_KEY_TYPE);
	expect_spki(keygen("X25519", NULL), MT_ERR_KEY_TYPE);
	expect_spki(keygen("EC", "P-224"), MT_ERR_KEY_TYPE);
	expect_spki(keygen("EC", "secp256k1"), MT_ERR_KEY_TYPE);
	assert_int_equal(mt_pubkey_type(NULL), MT_KEY_NONE);
}

static void test_pem(void **state)
{
	(void)state;
	EVP_PKEY *k = keygen("EC", "P-256");
	struct mt_pubkey *pk = NULL, *back = NULL;
	char path[] = "/tmp/mt_test_crypto_XXXXXX";
	int fd = mkstemp(path);
	uint8_t a[MT_SPKI_MAX], b[MT_SPKI_MAX];
	size_t al, bl;
	struct stat st;

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mt_pubkey__from_evp(k, &pk), MT_OK);
	assert_int_equal(mt_pubkey_write_pem(pk, path), MT_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0022, 0); /* not writable by others */
	assert_int_equal(mt_pubkey_from_pem_file(path, &back), MT_OK);
	assert_int_equal(mt_pubkey_spki(pk, a, sizeof a, &al), MT_OK);
	assert_int_equal(mt_pubkey_spki(back, b, sizeof b, &bl), MT_OK);
	assert_int_equal(al, bl);
	assert_memory_equal(a, b, al);
	assert_memory_equal(mt_pubkey_kid(pk), mt_pubkey_kid(back), MT_KID_LEN);
	mt_pubkey_free(back);
	back = NULL;
	unlink(path);
	assert_int_equal(mt_pubkey_from_pem_file(path, &back), MT_ERR_IO);

	static const char junk[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
	assert_int_equal(mt_pubkey_from_pem(junk, sizeof junk - 1, &back), MT_ERR_KEY_FORMAT);
	assert_int_equal(mt_pubkey_from_pem("hello", 5, &back), MT_ERR_KEY_FORMAT);
	static const char ed[] = "-----BEGIN PUBLIC KEY-----\n"
	                         "MCowBQYDK2VwAyEAfU0Of2FTpptiQrUiq77mhf2kQg+INLEIw72uNp71Sfo=\n"
	                         "-----END PUBLIC KEY-----\n";
	assert_int_equal(mt_pubkey_from_pem(ed, sizeof ed - 1, &back), MT_OK);
	assert_int_equal(mt_pubkey_type(back), MT_KEY_ED25519);
	mt_pubkey_free(back);
	mt_pubkey_free(pk);
	EVP_PKEY_free(k);
}

/* ------------------------------------------------------------ AEAD */

static void test_aead(void **state)
{
	(void)state;
	struct mt_aead *a = NULL;
	uint8_t key[32], iv[12], aad[20], pt[100], ct[116], out[116];
	const size_t lens[] = {16, 32, 24, 16};

	assert_int_equal(mt_random(key, sizeof key), MT_OK);
	assert_int_equal(mt_random(iv, sizeof iv), MT_OK);
	memset(aad, 0x41, sizeof aad);
	for (size_t i = 0; i < sizeof pt; i++)
		pt[i] = (uint8_t)i;
	assert_int_equal(mt_aead_new(&a), MT_OK);

	for (size_t ki = 0; ki < sizeof lens / sizeof lens[0]; ki++) {
		size_t kl = lens[ki];
		assert_int_equal(mt_aead_seal(a, key, kl, iv, aad, sizeof aad, pt, sizeof pt, ct),
		                 MT_OK);
		assert_memory_not_equal(ct, pt, sizeof pt);
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, ct, sizeof ct, out),
		                 MT_OK);
		assert_memory_equal(out, pt, sizeof pt);

		/* Altered ciphertext, tag, AAD, IV, key: refused and wiped. */
		for (size_t pos = 0; pos < sizeof ct; pos += 23) {
			uint8_t t[116];
			memcpy(t, ct, sizeof t);
			t[pos] ^= 0x80;
			memset(out, 0xa5, sizeof out);
			assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, t, sizeof t, out),
			                 MT_ERR_AEAD_TAG);
			for (size_t i = 0; i < sizeof pt; i++)
				assert_int_equal(out[i], 0);
		}
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad - 1, ct, sizeof ct, out),
		                 MT_ERR_AEAD_TAG);
		iv[0] ^= 1;
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, ct, sizeof ct, out),
		                 MT_ERR_AEAD_TAG);
		iv[0] ^= 1;
		key[kl - 1] ^= 1;
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, ct, sizeof ct, out),
		                 MT_ERR_AEAD_TAG);
		key[kl - 1] ^= 1;
		/* Truncated tags: 15, 12, 4 bytes of it, or none. */
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, ct, sizeof ct - 1, out),
		                 MT_ERR_AEAD_TAG);
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, ct, sizeof ct - 4, out),
		                 MT_ERR_AEAD_TAG);
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, ct, sizeof ct - 12, out),
		                 MT_ERR_AEAD_TAG);
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, ct, 15, out), MT_ERR_ARG);
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, ct, 0, out), MT_ERR_ARG);
		/* In place. */
		memcpy(out, ct, sizeof ct);
		assert_int_equal(mt_aead_open(a, key, kl, iv, aad, sizeof aad, out, sizeof out, out),
		                 MT_OK);
		assert_memory_equal(out, pt, sizeof pt);
		memcpy(out, pt, sizeof pt);
		assert_int_equal(mt_aead_seal(a, key, kl, iv, aad, sizeof aad, out, sizeof pt, out),
		                 MT_OK);
		assert_memory_equal(out, ct, sizeof ct);
	}
	/* Empty plaintext and AAD: the tag alone. */
	assert_int_equal(mt_aead_seal(a, key, 32, iv, NULL, 0, NULL, 0, ct), MT_OK);
	assert_int_equal(mt_aead_open(a, key, 32, iv, NULL, 0, ct, 16, out), MT_OK);
	ct[3] ^= 1;
	assert_int_equal(mt_aead_open(a, key, 32, iv, NULL, 0, ct, 16, out), MT_ERR_AEAD_TAG);
	/* Key sizes the API does not take. */
	assert_int_equal(mt_aead_seal(a, key, 20, iv, NULL, 0, pt, 10, ct), MT_ERR_ARG);
	assert_int_equal(mt_aead_open(a, key, 0, iv, NULL, 0, ct, 16, out), MT_ERR_ARG);
	/* The context still works after refusals. */
	assert_int_equal(mt_aead_seal(a, key, 32, iv, aad, 3, pt, 7, ct), MT_OK);
	assert_int_equal(mt_aead_open(a, key, 32, iv, aad, 3, ct, 23, out), MT_OK);
	assert_memory_equal(out, pt, 7);
	mt_aead_free(a);
	mt_aead_free(NULL);
}

/* NIST GCM test case 14 (AES-256, zero key and IV, one zero block). */
static void test_aead_known_answer(void **state)
{
	(void)state;
	struct mt_aead *a = NULL;
	uint8_t key[32] = {0}, iv[12] = {0}, pt[16] = {0}, out[32], want[32];
	mt_test_unhex_exact("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
	                    want, 32);
	assert_int_equal(mt_aead_new(&a), MT_OK);
	assert_int_equal(mt_aead_seal(a, key, 32, iv, NULL, 0, pt, 16, out), MT_OK);
	assert_memory_equal(out, want, 32);
	mt_aead_free(a);
}

/* --------------------------------------------------------- helpers */

static void test_misc(void **state)
{
	(void)state;
	uint8_t a[32] = {0}, b[32] = {0}, h[32], want[32];

	assert_int_equal(mt_random(a, sizeof a), MT_OK);
	assert_int_equal(mt_random(b, sizeof b), MT_OK);
	assert_memory_not_equal(a, b, sizeof a);
	assert_int_equal(mt_random(NULL, 0), MT_OK);
	assert_int_equal(mt_random(NULL, 1), MT_ERR_ARG);
	assert_true(mt_ct_equal(a, a, sizeof a));
	assert_false(mt_ct_equal(a, b, sizeof a));
	assert_true(mt_ct_equal(a, b, 0));
	mt_wipe(a, sizeof a);
	memset(b, 0, sizeof b);
	assert_memory_equal(a, b, sizeof a);
	mt_wipe(NULL, 0);

	mt_test_unhex_exact("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	                    want, 32);
	assert_int_equal(mt_sha256((const uint8_t *)"abc", 3, h), MT_OK);
	assert_memory_equal(h, want, 32);
	mt_test_unhex_exact("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	                    want, 32);
	assert_int_equal(mt_sha256(NULL, 0, h), MT_OK);
	assert_memory_equal(h, want, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kid_vectors),   cmocka_unit_test(test_data_key_vectors),
		cmocka_unit_test(test_ecdh_evp),      cmocka_unit_test(test_hkdf_limits),
		cmocka_unit_test(test_es256_roundtrip), cmocka_unit_test(test_es256_range),
		cmocka_unit_test(test_es256_der),     cmocka_unit_test(test_ed25519),
		cmocka_unit_test(test_other_curves),  cmocka_unit_test(test_pubkey_refusals),
		cmocka_unit_test(test_pem),           cmocka_unit_test(test_aead),
		cmocka_unit_test(test_aead_known_answer), cmocka_unit_test(test_misc),
	};
	return cmocka_run_group_tests(tests, mt_test_mtp1_setup, mt_test_mtp1_teardown);
}
