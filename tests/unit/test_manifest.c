/*
 * test_manifest.c — device manifests (protocol §1): what the factory signs
 * opens at the hospital, and nothing else does.
 *
 * The manufacturer's manifest key is an in-memory P-256 key; its
 * certificate is made here with OpenSSL directly (the project's own PKI
 * module is tested elsewhere), so this test depends only on the manifest
 * code and the COSE layer under it.  Forgeries are built byte by byte and
 * signed with the real key where the point is to reach the payload checks,
 * or with another key where the point is the signature.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_cose.h"
#include "medtrust/mt_manifest.h"
#include "mt_testutil.h"

struct signer {
	struct mt_key *key;
	uint8_t cert[1024];
	size_t cert_len;
};

/* A P-256 key as an mt_key, and a self-signed certificate for it. */
static void make_signer(struct signer *s, const char *cn)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	BIGNUM *d = NULL;
	uint8_t raw[32];
	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
	assert_int_equal(BN_bn2binpad(d, raw, 32), 32);
	BN_clear_free(d);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, raw, 32, &s->key), MT_OK);
	mt_wipe(raw, sizeof(raw));

	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                            (const unsigned char *)cn, -1, -1, 0),
	                 1);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	int n = i2d_X509(x, NULL);
	assert_true(n > 0 && (size_t)n <= sizeof(s->cert));
	uint8_t *p = s->cert;
	i2d_X509(x, &p);
	s->cert_len = (size_t)n;
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static void entry(struct mt_manifest_entry *e, const char *serial, uint8_t fill)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->serial, sizeof(e->serial), "%s", serial);
	snprintf(e->device_class, sizeof(e->device_class), "%s", "bedside-monitor");
	memset(e->birth_kid, fill, MT_KID_LEN);
	memset(e->birth_cert_sha256, (uint8_t)(fill + 1), 32);
}

static void sign_and_open_round_trip(void **state)
{
	(void)state;
	struct signer s;
	struct mt_manifest_entry e[300];
	struct mt_manifest m;
	uint8_t *out;
	size_t len;
	const char *why;
	make_signer(&s, "Acme manifest signing");
	for (size_t i = 0; i < 300; i++) {
		char serial[32];
		snprintf(serial, sizeof(serial), "ACME-%05zu", i);
		entry(&e[i], serial, (uint8_t)i);
	}
	const uint8_t *chain[] = {s.cert};
	assert_int_equal(mt_manifest_sign(s.key, chain, &s.cert_len, 1, e, 300, &out, &len), MT_OK);
	assert_int_equal(out[0], 0xd2); /* tagged Sign1 */
	assert_int_equal(mt_manifest_open(out, len, &m, &why), MT_OK);
	assert_int_equal(m.n_entries, 300);
	assert_int_equal(m.n_chain, 1);
	assert_int_equal(m.chain_len[0], s.cert_len);
	assert_memory_equal(m.chain[0], s.cert, s.cert_len);
	for (size_t i = 0; i < 300; i++) {
		assert_string_equal(m.entries[i].serial, e[i].serial);
		assert_string_equal(m.entries[i].device_class, "bedside-monitor");
		assert_memory_equal(m.entries[i].birth_kid, e[i].birth_kid, MT_KID_LEN);
		assert_memory_equal(m.entries[i].birth_cert_sha256, e[i].birth_cert_sha256, 32);
	}
	mt_manifest_free(&m);

	/* Every single-byte change anywhere is refused whole. */
	size_t refused = 0;
	for (size_t i = 0; i < len; i += (i < 200 ? 1 : 97)) {
		out[i] ^= 0x01;
		if (mt_manifest_open(out, len, &m, &why) != MT_OK)
			refused++;
		else
			mt_manifest_free(&m);
		out[i] ^= 0x01;
	}
	size_t tried = 200 + (len - 200 + 96) / 97;
	assert_int_equal(refused, tried);
	/* Truncated and extended copies. */
	assert_int_not_equal(mt_manifest_open(out, len - 1, &m, &why), MT_OK);
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, out, len);
	longer[len] = 0;
	assert_int_not_equal(mt_manifest_open(longer, len + 1, &m, &why), MT_OK);
	free(longer);
	free(out);
	mt_key_free(s.key);
}

/* A manifest whose chain names another key: the signature does not verify. */
static void wrong_certificate_refused(void **state)
{
	(void)state;
	struct signer s, other;
	struct mt_manifest_entry e;
	struct mt_manifest m;
	uint8_t *out;
	size_t len;
	make_signer(&s, "Acme manifest signing");
	make_signer(&other, "Acme manifest signing");
	entry(&e, "ACME-1", 1);
	const uint8_t *chain[] = {other.cert};
	assert_int_equal(mt_manifest_sign(s.key, chain, &other.cert_len, 1, &e, 1, &out, &len),
	                 MT_OK);
	assert_int_equal(mt_manifest_open(out, len, &m, NULL), MT_ERR_SIG_INVALID);
	free(out);
	mt_key_free(s.key);
	mt_key_free(other.key);
}

static void bad_entries_refused_at_signing(void **state)
{
	(void)state;
	struct signer s;
	struct mt_manifest_entry e[2];
	uint8_t *out = NULL;
	size_t len;
	make_signer(&s, "Acme");
	const uint8_t *chain[] = {s.cert};
	entry(&e[0], "ACME-1", 1);
	entry(&e[1], "ACME-1", 2);
	assert_int_equal(mt_manifest_sign(s.key, chain, &s.cert_len, 1, e, 2, &out, &len),
	                 MT_ERR_ARG); /* duplicate serial */
	entry(&e[1], "-bad", 2);
	assert_int_equal(mt_manifest_sign(s.key, chain, &s.cert_len, 1, e, 2, &out, &len),
	                 MT_ERR_ARG); /* not a device id */
	entry(&e[1], "ACME-2", 2);
	e[1].device_class[0] = '\0';
	assert_int_equal(mt_manifest_sign(s.key, chain, &s.cert_len, 1, e, 2, &out, &len),
	                 MT_ERR_ARG); /* empty class */
	assert_int_equal(mt_manifest_sign(s.key, chain, &s.cert_len, 1, e, 0, &out, &len),
	                 MT_ERR_ARG); /* no devices */
	assert_int_equal(mt_manifest_sign(s.key, chain, &s.cert_len, 0, e, 1, &out, &len),
	                 MT_ERR_ARG); /* no certificate */
	assert_null(out);
	mt_key_free(s.key);
}

/* Build a tagged Sign1 with the given protected, unprotected and payload
 * bytes, signed for real by `key`. */
static size_t forge(struct mt_key *key, const uint8_t *prot, size_t prot_len,
                    const uint8_t *unprot, size_t unprot_len, const uint8_t *pay,
                    size_t pay_len, uint8_t *out, size_t cap)
{
	uint8_t tbs[4096], sig[MT_SIG_LEN];
	size_t pre, len;
	assert_int_equal(mt_cose_sig1_prefix(prot, prot_len, NULL, 0, pay_len, tbs, sizeof(tbs),
	                                     &pre),
	                 MT_OK);
	memcpy(tbs + pre, pay, pay_len);
	assert_int_equal(mt_key_sign(key, tbs, pre + pay_len, sig), MT_OK);
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, out, cap);
	mt_cbor_put_tag(&e, MT_COSE_TAG_SIGN1);
	mt_cbor_put_array(&e, 4);
	mt_cbor_put_bstr(&e, prot, prot_len);
	mt_cbor_put_raw(&e, unprot, unprot_len);
	mt_cbor_put_bstr(&e, pay, pay_len);
	mt_cbor_put_bstr(&e, sig, MT_SIG_LEN);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_OK);
	return len;
}

static size_t prot_with_chain(const struct signer *s, int64_t alg, uint8_t *out, size_t cap)
{
	struct mt_cbor_enc e;
	size_t len;
	mt_cbor_enc_init(&e, out, cap);
	mt_cbor_put_map(&e, 2);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_int(&e, alg);
	mt_cbor_put_uint(&e, 33);
	mt_cbor_put_bstr(&e, s->cert, s->cert_len);
	assert_int_equal(mt_cbor_enc_finish(&e, &len), MT_OK);
	return len;
}

static void forged_shapes_refused(void **state)
{
	(void)state;
	struct signer s;
	struct mt_manifest m;
	uint8_t prot[1200], pkt[4096], pay[512];
	size_t plen, n;
	const char *why = NULL;
	static const uint8_t empty_map[] = {0xa0};
	make_signer(&s, "Acme");

	/* One good entry, then the same payload with a duplicated serial. */
	static const char *good_hex =
		"81a4016641434d452d3102676d6f6e69746f72034801010101010101010458"
		"200202020202020202020202020202020202020202020202020202020202020202";
	size_t good_len = mt_test_unhex(good_hex, pay, sizeof(pay));
	plen = prot_with_chain(&s, MT_COSE_ALG_ES256, prot, sizeof(prot));
	n = forge(s.key, prot, plen, empty_map, 1, pay, good_len, pkt, sizeof(pkt));
	assert_int_equal(mt_manifest_open(pkt, n, &m, &why), MT_OK);
	assert_string_equal(m.entries[0].serial, "ACME-1");
	mt_manifest_free(&m);

	/* duplicate serial, correctly signed */
	uint8_t dup[512];
	dup[0] = 0x82;
	memcpy(dup + 1, pay + 1, good_len - 1);
	memcpy(dup + good_len, pay + 1, good_len - 1);
	n = forge(s.key, prot, plen, empty_map, 1, dup, 2 * good_len - 1, pkt, sizeof(pkt));
	assert_int_equal(mt_manifest_open(pkt, n, &m, &why), MT_ERR_PKT_MESSAGE);
	assert_non_null(why);

	/* kid of 7 bytes */
	static const char *short_kid =
		"81a4016641434d452d3102676d6f6e69746f7203470101010101010104"
		"5820" "0202020202020202020202020202020202020202020202020202020202020202";
	size_t sk = mt_test_unhex(short_kid, dup, sizeof(dup));
	n = forge(s.key, prot, plen, empty_map, 1, dup, sk, pkt, sizeof(pkt));
	assert_int_equal(mt_manifest_open(pkt, n, &m, &why), MT_ERR_PKT_MESSAGE);

	/* an unknown fifth key in the entry */
	static const char *extra =
		"81a5016641434d452d3102676d6f6e69746f720348010101010101010104"
		"58200202020202020202020202020202020202020202020202020202020202020202" "05f4";
	sk = mt_test_unhex(extra, dup, sizeof(dup));
	n = forge(s.key, prot, plen, empty_map, 1, dup, sk, pkt, sizeof(pkt));
	assert_int_equal(mt_manifest_open(pkt, n, &m, &why), MT_ERR_PKT_MESSAGE);

	/* empty list */
	static const uint8_t none[] = {0x80};
	n = forge(s.key, prot, plen, empty_map, 1, none, 1, pkt, sizeof(pkt));
	assert_int_equal(mt_manifest_open(pkt, n, &m, &why), MT_ERR_PKT_MESSAGE);

	/* EdDSA named in the header of an ES256 signature */
	plen = prot_with_chain(&s, MT_COSE_ALG_EDDSA, prot, sizeof(prot));
	n = forge(s.key, prot, plen, empty_map, 1, pay, good_len, pkt, sizeof(pkt));
	assert_int_equal(mt_manifest_open(pkt, n, &m, &why), MT_ERR_COSE_ALG);

	/* chain only in the unprotected bucket */
	static const uint8_t alg_only[] = {0xa1, 0x01, 0x26};
	uint8_t unprot[1200];
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, unprot, sizeof(unprot));
	mt_cbor_put_map(&e, 1);
	mt_cbor_put_uint(&e, 33);
	mt_cbor_put_bstr(&e, s.cert, s.cert_len);
	size_t ulen;
	assert_int_equal(mt_cbor_enc_finish(&e, &ulen), MT_OK);
	n = forge(s.key, alg_only, 3, unprot, ulen, pay, good_len, pkt, sizeof(pkt));
	assert_int_equal(mt_manifest_open(pkt, n, &m, &why), MT_ERR_COSE_FORMAT);

	/* garbage, empty input, oversized input */
	static const uint8_t garbage[] = {0xd2, 0x84, 0xff, 0x00};
	assert_int_not_equal(mt_manifest_open(garbage, sizeof(garbage), &m, &why), MT_OK);
	assert_int_not_equal(mt_manifest_open(garbage, 0, &m, &why), MT_OK);
	assert_int_equal(mt_manifest_open(garbage, (size_t)MT_MANIFEST_MAX + 1, &m, &why),
	                 MT_ERR_ARG);
	mt_key_free(s.key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sign_and_open_round_trip),
		cmocka_unit_test(wrong_certificate_refused),
		cmocka_unit_test(bad_entries_refused_at_signing),
		cmocka_unit_test(forged_shapes_refused),
	};
	return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
