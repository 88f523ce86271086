/*
 * test_pki.c — mt_pki: certificates, CSRs, CRLs, PKCS#7 and chain
 * verification, every signature made through the key store (mt_pki.h,
 * protocol §1 and §2, threats B01–B05 and D04).
 *
 * Every product is read back with OpenSSL here, not with mt_pki's own
 * getters: each profile's subject, extensions and their criticality,
 * validity (the birth certificate's 99991231235959Z GeneralizedTime), EKU,
 * key usage, and the serial (16 bytes, positive, different each time).  CA
 * and leaves are made with keys in a fresh SoftHSM2 token
 * (tests/support/mt_softhsm.h) and with in-memory keys
 * (mt_key_import_raw); subjects and issuers are P-256 and Ed25519.
 *
 * The bad certificates the verifier must refuse are built here with
 * OpenSSL and a software copy of the CA key (a CA:TRUE leaf, a leaf
 * without digitalSignature, one without keyUsage), or with mt_pki itself
 * where it can make them (expired and not-yet-valid via the validity, a
 * serverAuth-only TLS_SERVER leaf, a fake root carrying the real root's
 * name, a leaf on a CRL).  Tests carry the threat row they prove.
 *
 * With MT_PKI_OUT set to a directory, test_export writes PEM/DER files
 * there for tests/pki/test_pki_openssl.sh, which checks them with the
 * `openssl` command line alone.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto_int.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_pki.h"
#include "mt_softhsm.h"

#define DAY 86400
#define CA_SUBJECT "CN=medtrust operator CA,O=Hospital"

/* ------------------------------------------------------------ helpers */

/* A key both as an in-memory mt_key and as an OpenSSL EVP_PKEY (for the
 * test to sign what mt_pki must refuse). */
struct soft {
	struct mt_key *k;
	EVP_PKEY *evp;
};

static void soft_new(struct soft *s, enum mt_key_type t)
{
	uint8_t priv[32];
	size_t n = sizeof priv;
	if (t == MT_KEY_P256) {
		BIGNUM *bn = NULL;
		s->evp = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		assert_non_null(s->evp);
		assert_int_equal(EVP_PKEY_get_bn_param(s->evp, OSSL_PKEY_PARAM_PRIV_KEY, &bn), 1);
		assert_int_equal(BN_bn2binpad(bn, priv, 32), 32);
		BN_clear_free(bn);
	} else {
		s->evp = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		assert_non_null(s->evp);
		assert_int_equal(EVP_PKEY_get_raw_private_key(s->evp, priv, &n), 1);
		assert_int_equal(n, 32);
	}
	assert_int_equal(mt_key_import_raw(t, MT_KEY_ROLE_SIGN, priv, 32, &s->k), MT_OK);
	mt_wipe(priv, sizeof priv);
}

static void soft_free(struct soft *s)
{
	mt_key_free(s->k);
	EVP_PKEY_free(s->evp);
	memset(s, 0, sizeof(*s));
}

/* An independent OpenSSL parse of a certificate's DER. */
static X509 *x509_of(const struct mt_cert *c)
{
	size_t len = 0;
	const uint8_t *der = mt_cert_der(c, &len);
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	assert_non_null(x);
	assert_ptr_equal(p, der + len);
	return x;
}

static struct mt_cert *make_ca(struct mt_key *k, const char *subject, int path_len)
{
	struct mt_pki_ca_opts o = {.subject = subject, .path_len = path_len};
	struct mt_cert *ca = NULL;
	enum mt_err e = mt_pki_ca_create(k, &o, &ca);
	if (e != MT_OK)
		fail_msg("mt_pki_ca_create: %s", mt_err_str(e));
	return ca;
}

static struct mt_cert *issue(struct mt_key *ca_key, const struct mt_cert *ca,
                             const struct mt_pubkey *pub, const struct mt_pki_leaf *l)
{
	struct mt_cert *c = NULL;
	enum mt_err e = mt_pki_issue(ca_key, ca, pub, l, &c);
	if (e != MT_OK)
		fail_msg("mt_pki_issue: %s", mt_err_str(e));
	return c;
}

static struct mt_cert *operational(struct mt_key *ca_key, const struct mt_cert *ca,
                                   const struct mt_pubkey *pub, const char *id)
{
	struct mt_pki_leaf l = {.profile = MT_PKI_OPERATIONAL, .id = id};
	return issue(ca_key, ca, pub, &l);
}

static void name_is(const X509_NAME *n, const char *want)
{
	char buf[512];
	BIO *b = BIO_new(BIO_s_mem());
	assert_non_null(b);
	assert_true(X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0);
	int len = BIO_read(b, buf, sizeof buf - 1);
	assert_true(len >= 0);
	buf[len] = '\0';
	BIO_free(b);
	if (strcmp(buf, want) != 0)
		fail_msg("name \"%s\", want \"%s\"", buf, want);
}

/* The extension `nid` of x: present exactly once with criticality `crit`. */
static void *ext_of(X509 *x, int nid, int crit)
{
	int c = -1, idx = -1;
	void *v = X509_get_ext_d2i(x, nid, &c, &idx);
	assert_non_null(v);
	assert_int_equal(c, crit);
	assert_int_equal(X509_get_ext_by_NID(x, nid, idx), -1);
	return v;
}

static void no_ext(X509 *x, int nid)
{
	assert_int_equal(X509_get_ext_by_NID(x, nid, -1), -1);
}

static void check_basic(X509 *x, int ca, long pathlen)
{
	BASIC_CONSTRAINTS *bc = ext_of(x, NID_basic_constraints, 1);
	assert_int_equal(bc->ca != 0, ca);
	if (pathlen < 0)
		assert_null(bc->pathlen);
	else
		assert_int_equal(ASN1_INTEGER_get(bc->pathlen), pathlen);
	BASIC_CONSTRAINTS_free(bc);
}

/* keyUsage critical, exactly the bits in `want` (bit i = 1 << i). */
static void check_ku(X509 *x, unsigned want)
{
	ASN1_BIT_STRING *ku = ext_of(x, NID_key_usage, 1);
	for (int i = 0; i < 9; i++)
		assert_int_equal(ASN1_BIT_STRING_get_bit(ku, i), (want >> i) & 1);
	ASN1_BIT_STRING_free(ku);
}

/* EKU non-critical, exactly one purpose `nid`; nid 0 = no EKU at all. */
static void check_eku(X509 *x, int nid)
{
	if (nid == 0) {
		no_ext(x, NID_ext_key_usage);
		return;
	}
	EXTENDED_KEY_USAGE *eku = ext_of(x, NID_ext_key_usage, 0);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), nid);
	EXTENDED_KEY_USAGE_free(eku);
}

/* SKI = SHA-1 of the key bits; AKI keyid = the issuer's SKI, nothing else. */
static void check_ski_aki(X509 *x, X509 *issuer)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	ASN1_OCTET_STRING *ski = ext_of(x, NID_subject_key_identifier, 0);
	AUTHORITY_KEYID *aki = ext_of(x, NID_authority_key_identifier, 0);
	assert_int_equal(X509_pubkey_digest(x, EVP_sha1(), md, &mdlen), 1);
	assert_int_equal(ASN1_STRING_length(ski), (int)mdlen);
	assert_memory_equal(ASN1_STRING_get0_data(ski), md, mdlen);
	assert_non_null(aki->keyid);
	assert_null(aki->issuer);
	assert_null(aki->serial);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid, X509_get0_subject_key_id(issuer)), 0);
	ASN1_OCTET_STRING_free(ski);
	AUTHORITY_KEYID_free(aki);
}

/* Serial: 16 bytes, positive, first byte 0x40..0x7f; copied to `out`. */
static void check_serial(X509 *x, uint8_t out[16])
{
	const ASN1_INTEGER *s = X509_get0_serialNumber(x);
	assert_int_equal(ASN1_STRING_type(s), V_ASN1_INTEGER);
	assert_int_equal(ASN1_STRING_length(s), 16);
	const unsigned char *d = ASN1_STRING_get0_data(s);
	assert_true(d[0] >= 0x40 && d[0] <= 0x7f);
	memcpy(out, d, 16);
}

static long validity_secs(X509 *x)
{
	int days = 0, secs = 0;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
	                 1);
	return (long)days * DAY + secs;
}

static void check_common_leaf(X509 *x, X509 *ca)
{
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca)), 0);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(ca)), 1);
	check_ski_aki(x, ca);
}

static void expect_verify(const struct mt_cert *leaf, const struct mt_cert *root,
                          const struct mt_pki_verify_opts *o, enum mt_err want)
{
	const struct mt_cert *roots[] = {root};
	enum mt_err got = mt_pki_verify(leaf, roots, 1, o);
	if (got != want)
		fail_msg("mt_pki_verify: %s (%d), want %s (%d)", mt_err_str(got), (int)got,
		         mt_err_str(want), (int)want);
}

/* A certificate made by OpenSSL alone, signed with the CA's software key:
 * for the shapes mt_pki_issue will not produce (nc: nameConstraints). */
static struct mt_cert *forge_nc(EVP_PKEY *ca_evp, const struct mt_cert *ca, EVP_PKEY *subj,
                                const char *bc, const char *ku, const char *eku, const char *nc)
{
	X509 *cax = x509_of(ca), *x = X509_new();
	X509V3_CTX ctx;
	const char *vals[] = {bc, ku, eku, "hash", "keyid:always", nc};
	const int nids[] = {NID_basic_constraints, NID_key_usage, NID_ext_key_usage,
	                    NID_subject_key_identifier, NID_authority_key_identifier,
	                    NID_name_constraints};
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(serial, 4242), 1);
	assert_int_equal(X509_set_serialNumber(x, serial), 1);
	ASN1_INTEGER_free(serial);
	X509_NAME *n = X509_NAME_new();
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	                                            (const unsigned char *)"forged-1", -1, -1, 0),
	                 1);
	assert_int_equal(X509_set_subject_name(x, n), 1);
	X509_NAME_free(n);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(cax)), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), DAY));
	assert_int_equal(X509_set_pubkey(x, subj), 1);
	X509V3_set_ctx(&ctx, cax, x, NULL, NULL, 0);
	for (size_t i = 0; i < 6; i++) {
		if (vals[i] == NULL)
			continue;
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nids[i], vals[i]);
		assert_non_null(ext);
		assert_int_equal(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, ca_evp, EVP_sha256()) > 0);
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);
	assert_true(len > 0);
	struct mt_cert *c = NULL;
	assert_int_equal(mt_cert_from_der(der, (size_t)len, &c), MT_OK);
	OPENSSL_free(der);
	X509_free(x);
	X509_free(cax);
	return c;
}

static struct mt_cert *forge(EVP_PKEY *ca_evp, const struct mt_cert *ca, EVP_PKEY *subj,
                             const char *bc, const char *ku, const char *eku)
{
	return forge_nc(ca_evp, ca, subj, bc, ku, eku, NULL);
}

/* -------------------------------------------------------- profiles */

static void test_ca_profile(void **state)
{
	(void)state;
	struct soft ca;
	soft_new(&ca, MT_KEY_P256);
	struct mt_pki_ca_opts o = {.subject = CA_SUBJECT, .path_len = 1, .lifetime_s = 20 * DAY};
	struct mt_cert *c = NULL, *c2 = NULL;
	assert_int_equal(mt_pki_ca_create(ca.k, &o, &c), MT_OK);
	o.path_len = -1;
	o.lifetime_s = 0;
	assert_int_equal(mt_pki_ca_create(ca.k, &o, &c2), MT_OK);

	X509 *x = x509_of(c), *x2 = x509_of(c2);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	name_is(X509_get_subject_name(x), "CN=medtrust operator CA,O=Hospital");
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	check_basic(x, 1, 1);
	check_basic(x2, 1, -1);
	check_ku(x, (1u << 5) | (1u << 6));
	check_eku(x, 0);
	check_ski_aki(x, x);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_int_equal(validity_secs(x), 20L * DAY);
	assert_int_equal(validity_secs(x2), 3653L * DAY);
	/* notBefore is now (give or take the test's own run time). */
	int64_t nb = 0;
	assert_int_equal(mt_cert_validity(c, &nb, NULL), MT_OK);
	assert_true(nb <= (int64_t)time(NULL) && nb >= (int64_t)time(NULL) - 60);
	uint8_t s1[16], s2[16];
	check_serial(x, s1);
	check_serial(x2, s2);
	assert_memory_not_equal(s1, s2, 16);
	/* mt_cert getters agree with OpenSSL. */
	uint8_t ser[20];
	size_t sl = 0;
	assert_int_equal(mt_cert_serial(c, ser, sizeof ser, &sl), MT_OK);
	assert_int_equal(sl, 16);
	assert_memory_equal(ser, s1, 16);
	assert_int_equal(mt_cert_serial(c, ser, 3, &sl), MT_ERR_BUFFER);
	assert_int_equal(sl, 16);
	char cn[MT_PKI_CN_MAX];
	assert_int_equal(mt_cert_subject_cn(c, cn, sizeof cn), MT_OK);
	assert_string_equal(cn, "medtrust operator CA");
	assert_int_equal(mt_cert_subject_cn(c, cn, 4), MT_ERR_BUFFER);
	/* The CA verifies as its own root for nothing: it is not a leaf. */
	expect_verify(c, c, NULL, MT_ERR_PKI_USAGE);

	X509_free(x);
	X509_free(x2);
	mt_cert_free(c);
	mt_cert_free(c2);
	soft_free(&ca);
}

static void test_birth_profile(void **state)
{
	(void)state;
	struct soft ca, dev;
	soft_new(&ca, MT_KEY_P256);
	soft_new(&dev, MT_KEY_P256);
	struct mt_cert *root = make_ca(ca.k, "CN=Acme Manufacturer Root,O=Acme Medical", -1);
	struct mt_pki_leaf l = {.profile = MT_PKI_BIRTH, .id = "SN-0001.a", .manufacturer = "Acme Medical"};
	struct mt_cert *c = issue(ca.k, root, mt_key_public(dev.k), &l);
	X509 *x = x509_of(c), *cax = x509_of(root);

	check_common_leaf(x, cax);
	name_is(X509_get_subject_name(x), "CN=SN-0001.a,serialNumber=SN-0001.a,O=Acme Medical");
	check_basic(x, 0, -1);
	check_ku(x, 1u);
	check_eku(x, NID_client_auth);
	no_ext(x, NID_subject_alt_name);
	const ASN1_TIME *na = X509_get0_notAfter(x);
	assert_int_equal(ASN1_STRING_type(na), V_ASN1_GENERALIZEDTIME);
	assert_int_equal(ASN1_STRING_length(na), 15);
	assert_memory_equal(ASN1_STRING_get0_data(na), "99991231235959Z", 15);
	assert_int_equal(ASN1_STRING_type(X509_get0_notBefore(x)), V_ASN1_UTCTIME);
	expect_verify(c, root, NULL, MT_OK);

	/* lifetime_s is meaningless for a birth certificate. */
	struct mt_cert *bad = NULL;
	l.lifetime_s = DAY;
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(dev.k), &l, &bad), MT_ERR_ARG);
	assert_null(bad);
	l.lifetime_s = 0;
	/* serialNumber is a PrintableString (X.520): no '_' in a birth serial. */
	l.id = "SN_1";
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(dev.k), &l, &bad),
	                 MT_ERR_PKI_SUBJECT);
	l.id = "SN-1";
	l.manufacturer = NULL;
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(dev.k), &l, &bad),
	                 MT_ERR_PKI_SUBJECT);

	X509_free(x);
	X509_free(cax);
	mt_cert_free(c);
	mt_cert_free(root);
	soft_free(&ca);
	soft_free(&dev);
}

static void test_operational_profile(void **state)
{
	(void)state;
	struct soft ca, dev, ed;
	soft_new(&ca, MT_KEY_P256);
	soft_new(&dev, MT_KEY_P256);
	soft_new(&ed, MT_KEY_ED25519);
	struct mt_cert *root = make_ca(ca.k, CA_SUBJECT, 0);
	struct mt_cert *c = operational(ca.k, root, mt_key_public(dev.k), "dev-1");
	struct mt_cert *ce = operational(ca.k, root, mt_key_public(ed.k), "dev-ed");
	X509 *x = x509_of(c), *xe = x509_of(ce), *cax = x509_of(root);

	for (int i = 0; i < 2; i++) {
		X509 *y = i == 0 ? x : xe;
		check_common_leaf(y, cax);
		check_basic(y, 0, -1);
		check_ku(y, 1u);
		check_eku(y, NID_client_auth);
		assert_int_equal(validity_secs(y), 30L * DAY);
		assert_int_equal(X509_get_signature_nid(y), NID_ecdsa_with_SHA256);
	}
	name_is(X509_get_subject_name(x), "CN=dev-1");
	name_is(X509_get_subject_name(xe), "CN=dev-ed");
	assert_true(EVP_PKEY_is_a(X509_get0_pubkey(xe), "ED25519"));
	uint8_t s1[16], s2[16];
	check_serial(x, s1);
	check_serial(xe, s2);
	assert_memory_not_equal(s1, s2, 16);
	expect_verify(c, root, NULL, MT_OK);
	expect_verify(ce, root, NULL, MT_OK);

	/* Fingerprint = SHA-256 of the DER; kid = the key's kid (protocol §1). */
	uint8_t fp[32], want[32], kid[MT_KID_LEN];
	size_t len = 0;
	const uint8_t *der = mt_cert_der(ce, &len);
	assert_int_equal(mt_cert_fingerprint(ce, fp), MT_OK);
	assert_non_null(EVP_Digest(der, len, want, NULL, EVP_sha256(), NULL));
	assert_memory_equal(fp, want, 32);
	assert_int_equal(mt_cert_kid(ce, kid), MT_OK);
	assert_memory_equal(kid, mt_pubkey_kid(mt_key_public(ed.k)), MT_KID_LEN);
	assert_int_equal(mt_cert_kid(c, kid), MT_OK);
	assert_memory_equal(kid, mt_pubkey_kid(mt_key_public(dev.k)), MT_KID_LEN);
	struct mt_pubkey *pk = NULL;
	assert_int_equal(mt_cert_pubkey(c, &pk), MT_OK);
	assert_memory_equal(mt_pubkey_kid(pk), mt_pubkey_kid(mt_key_public(dev.k)), MT_KID_LEN);
	mt_pubkey_free(pk);

	/* Explicit lifetime and start. */
	struct mt_pki_leaf l = {.profile = MT_PKI_OPERATIONAL, .id = "dev-2",
	                        .not_before = 1700000000, .lifetime_s = 3600};
	struct mt_cert *c3 = issue(ca.k, root, mt_key_public(dev.k), &l);
	int64_t nb = 0, na = 0;
	assert_int_equal(mt_cert_validity(c3, &nb, &na), MT_OK);
	assert_int_equal(nb, 1700000000);
	assert_int_equal(na, 1700003600);

	/* PEM out and back in. */
	char pem[4096];
	size_t pl = 0;
	assert_int_equal(mt_cert_pem(c, pem, sizeof pem, &pl), MT_OK);
	assert_int_equal(strlen(pem), pl);
	assert_int_equal(mt_cert_pem(c, pem, 10, &pl), MT_ERR_BUFFER);
	assert_int_equal(mt_cert_pem(c, pem, sizeof pem, &pl), MT_OK);
	struct mt_cert *back = NULL;
	assert_int_equal(mt_cert_from_pem(pem, pl, &back), MT_OK);
	size_t l1 = 0, l2 = 0;
	const uint8_t *d1 = mt_cert_der(c, &l1), *d2 = mt_cert_der(back, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(d1, d2, l1);
	mt_cert_free(back);
	/* Exactly one PEM block. */
	char two[8192];
	memcpy(two, pem, pl);
	memcpy(two + pl, pem, pl);
	assert_int_equal(mt_cert_from_pem(two, 2 * pl, &back), MT_ERR_PKI_FORMAT);
	assert_int_equal(mt_cert_from_pem("junk", 4, &back), MT_ERR_PKI_FORMAT);
	assert_null(back);

	X509_free(x);
	X509_free(xe);
	X509_free(cax);
	mt_cert_free(c);
	mt_cert_free(ce);
	mt_cert_free(c3);
	mt_cert_free(root);
	soft_free(&ca);
	soft_free(&dev);
	soft_free(&ed);
}

static void test_tls_signer_subca_profiles(void **state)
{
	(void)state;
	struct soft ca, k;
	soft_new(&ca, MT_KEY_P256);
	soft_new(&k, MT_KEY_P256);
	struct mt_cert *root = make_ca(ca.k, CA_SUBJECT, -1);
	X509 *cax = x509_of(root);
	const char *dns[] = {"broker.hospital.example", "hub"};
	const char *ips[] = {"10.0.0.7", "::1"};

	struct mt_pki_leaf srv = {.profile = MT_PKI_TLS_SERVER, .subject = "CN=broker.hospital.example",
	                          .dns = dns, .n_dns = 2, .ip = ips, .n_ip = 2};
	struct mt_cert *cs = issue(ca.k, root, mt_key_public(k.k), &srv);
	X509 *xs = x509_of(cs);
	check_common_leaf(xs, cax);
	check_basic(xs, 0, -1);
	check_ku(xs, 1u);
	check_eku(xs, NID_server_auth);
	assert_int_equal(validity_secs(xs), 365L * DAY);
	assert_int_equal(X509_check_host(xs, "broker.hospital.example", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(xs, "hub", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(xs, "10.0.0.7", 0), 1);
	assert_int_equal(X509_check_ip_asc(xs, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(xs, "10.0.0.8", 0), 0);
	GENERAL_NAMES *gens = ext_of(xs, NID_subject_alt_name, 0);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 4);
	GENERAL_NAMES_free(gens);
	struct mt_pki_verify_opts vs = {.purpose = MT_PKI_PURPOSE_SERVER};
	expect_verify(cs, root, &vs, MT_OK);

	struct mt_pki_leaf cli = {.profile = MT_PKI_TLS_CLIENT, .subject = "CN=medtrustd,O=Hospital"};
	struct mt_cert *cc = issue(ca.k, root, mt_key_public(k.k), &cli);
	X509 *xc = x509_of(cc);
	check_common_leaf(xc, cax);
	check_basic(xc, 0, -1);
	check_ku(xc, 1u);
	check_eku(xc, NID_client_auth);
	no_ext(xc, NID_subject_alt_name);
	name_is(X509_get_subject_name(xc), "CN=medtrustd,O=Hospital");
	expect_verify(cc, root, NULL, MT_OK);
	expect_verify(cc, root, &vs, MT_ERR_PKI_USAGE);

	struct mt_pki_leaf sig = {.profile = MT_PKI_SIGNER, .subject = "CN=medtrust command signer"};
	struct mt_cert *cg = issue(ca.k, root, mt_key_public(k.k), &sig);
	X509 *xg = x509_of(cg);
	check_common_leaf(xg, cax);
	check_basic(xg, 0, -1);
	check_ku(xg, 1u);
	check_eku(xg, 0);
	struct mt_pki_verify_opts vg = {.purpose = MT_PKI_PURPOSE_SIGNER};
	expect_verify(cg, root, &vg, MT_OK);
	expect_verify(cg, root, NULL, MT_ERR_PKI_USAGE); /* not a TLS client */
	sig.code_signing_eku = 1;
	struct mt_cert *cg2 = issue(ca.k, root, mt_key_public(k.k), &sig);
	X509 *xg2 = x509_of(cg2);
	check_eku(xg2, NID_code_sign);
	expect_verify(cg2, root, &vg, MT_OK);

	/* A sub-CA with pathLen 0 and a device under it. */
	struct soft sub;
	soft_new(&sub, MT_KEY_P256);
	struct mt_pki_leaf sca = {.profile = MT_PKI_SUB_CA, .subject = "CN=ward 7 issuing CA,O=Hospital",
	                          .path_len = 0};
	struct mt_cert *csub = issue(ca.k, root, mt_key_public(sub.k), &sca);
	X509 *xsub = x509_of(csub);
	check_common_leaf(xsub, cax);
	check_basic(xsub, 1, 0);
	check_ku(xsub, (1u << 5) | (1u << 6));
	check_eku(xsub, 0);
	assert_int_equal(validity_secs(xsub), 1826L * DAY);
	struct mt_cert *leaf = operational(sub.k, csub, mt_key_public(k.k), "dev-9");
	const struct mt_cert *inter[] = {csub};
	struct mt_pki_verify_opts vi = {.intermediates = inter, .n_intermediates = 1};
	expect_verify(leaf, root, &vi, MT_OK);
	expect_verify(leaf, root, NULL, MT_ERR_PKI_UNTRUSTED);
	/* B06: a CA under the pathLen-0 sub-CA may not issue. */
	struct soft sub2;
	soft_new(&sub2, MT_KEY_P256);
	sca.subject = "CN=ward 7 bed 3 CA,O=Hospital"; /* not self-issued */
	struct mt_cert *csub2 = issue(sub.k, csub, mt_key_public(sub2.k), &sca);
	struct mt_cert *leaf2 = operational(sub2.k, csub2, mt_key_public(k.k), "dev-10");
	const struct mt_cert *inter2[] = {csub2, csub};
	struct mt_pki_verify_opts vi2 = {.intermediates = inter2, .n_intermediates = 2};
	expect_verify(leaf2, root, &vi2, MT_ERR_PKI_CHAIN);

	/* A leaf is no issuer; a CA cert with another key is no issuer. */
	struct mt_cert *bad = NULL;
	assert_int_equal(mt_pki_issue(k.k, cc, mt_key_public(k.k), &cli, &bad), MT_ERR_PKI_ISSUER);
	assert_int_equal(mt_pki_issue(sub.k, root, mt_key_public(k.k), &cli, &bad),
	                 MT_ERR_PKI_ISSUER);
	assert_null(bad);

	X509_free(cax);
	X509_free(xs);
	X509_free(xc);
	X509_free(xg);
	X509_free(xg2);
	X509_free(xsub);
	mt_cert_free(cs);
	mt_cert_free(cc);
	mt_cert_free(cg);
	mt_cert_free(cg2);
	mt_cert_free(csub);
	mt_cert_free(csub2);
	mt_cert_free(leaf);
	mt_cert_free(leaf2);
	mt_cert_free(root);
	soft_free(&ca);
	soft_free(&k);
	soft_free(&sub);
	soft_free(&sub2);
}

static void test_issue_refusals(void **state)
{
	(void)state;
	struct soft ca, k;
	soft_new(&ca, MT_KEY_P256);
	soft_new(&k, MT_KEY_P256);
	struct mt_cert *root = make_ca(ca.k, CA_SUBJECT, -1), *c = NULL;
	struct mt_pki_ca_opts o = {.path_len = -1};
	static const char *const bad_subjects[] = {
	        "", "CN", "CN=", "XX=y", "CN=a,", "CN=a,,O=b", "C=USA", "CN=a\\",
	        "CN=0123456789012345678901234567890123456789012345678901234567890123456789",
	        "CN=tab\there", "emailAddress=a@b"};
	for (size_t i = 0; i < sizeof bad_subjects / sizeof bad_subjects[0]; i++) {
		o.subject = bad_subjects[i];
		if (mt_pki_ca_create(ca.k, &o, &c) != MT_ERR_PKI_SUBJECT)
			fail_msg("subject \"%s\" accepted", bad_subjects[i]);
		assert_null(c);
	}
	/* Escaped comma is a value character. */
	o.subject = "CN=Ward 7\\, east,O=Hospital";
	assert_int_equal(mt_pki_ca_create(ca.k, &o, &c), MT_OK);
	X509 *x = x509_of(c);
	name_is(X509_get_subject_name(x), "CN=Ward 7\\, east,O=Hospital");
	X509_free(x);
	mt_cert_free(c);
	c = NULL;

	static const char *const bad_ids[] = {"", "-dev", "dev 1", "dev/1", "dév",
	                                      "0123456789012345678901234567890123456789012345678901234567890123X"};
	for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
		struct mt_pki_leaf l = {.profile = MT_PKI_OPERATIONAL, .id = bad_ids[i]};
		if (mt_pki_issue(ca.k, root, mt_key_public(k.k), &l, &c) != MT_ERR_PKI_SUBJECT)
			fail_msg("device id \"%s\" accepted", bad_ids[i]);
	}
	static const char *const bad_dns[] = {"*.com", "*.hospital.example", "a..b", "-a.b",
	                                      "a-.b", "a b", ""};
	for (size_t i = 0; i < sizeof bad_dns / sizeof bad_dns[0]; i++) {
		struct mt_pki_leaf l = {.profile = MT_PKI_TLS_SERVER, .subject = "CN=x",
		                        .dns = &bad_dns[i], .n_dns = 1};
		if (mt_pki_issue(ca.k, root, mt_key_public(k.k), &l, &c) != MT_ERR_PKI_SUBJECT)
			fail_msg("DNS name \"%s\" accepted", bad_dns[i]);
	}
	const char *bad_ip[] = {"10.0.0.256"};
	struct mt_pki_leaf l = {.profile = MT_PKI_TLS_SERVER, .subject = "CN=x", .ip = bad_ip, .n_ip = 1};
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(k.k), &l, &c), MT_ERR_PKI_SUBJECT);
	l.n_ip = 0; /* a server certificate needs a name */
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(k.k), &l, &c), MT_ERR_PKI_SUBJECT);
	const char *dns[] = {"hub"};
	struct mt_pki_leaf op = {.profile = MT_PKI_OPERATIONAL, .id = "d", .dns = dns, .n_dns = 1};
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(k.k), &op, &c), MT_ERR_PKI_SUBJECT);
	op.n_dns = 0;
	/* Times past 9999 or before 1970. */
	op.not_before = 253402300800LL;
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(k.k), &op, &c), MT_ERR_ARG);
	op.not_before = 253402300799LL - DAY;
	op.lifetime_s = 2 * DAY;
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(k.k), &op, &c), MT_ERR_ARG);
	op.not_before = -1;
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(k.k), &op, &c), MT_ERR_ARG);
	op.not_before = 0;
	op.lifetime_s = 0;
	op.profile = (enum mt_pki_profile)99;
	assert_int_equal(mt_pki_issue(ca.k, root, mt_key_public(k.k), &op, &c), MT_ERR_ARG);

	/* A P-384 subject key is not a medtrust key. */
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	struct mt_pubkey *pk384 = NULL;
	assert_non_null(p384);
	assert_int_equal(mt_pubkey__from_evp(p384, &pk384), MT_OK);
	op.profile = MT_PKI_OPERATIONAL;
	assert_int_equal(mt_pki_issue(ca.k, root, pk384, &op, &c), MT_ERR_KEY_TYPE);
	assert_null(c);
	mt_pubkey_free(pk384);
	EVP_PKEY_free(p384);

	/* Parsing refuses garbage, trailing bytes and oversized input. */
	size_t len = 0;
	const uint8_t *der = mt_cert_der(root, &len);
	uint8_t buf[4096];
	memcpy(buf, der, len);
	buf[len] = 0;
	assert_int_equal(mt_cert_from_der(buf, len + 1, &c), MT_ERR_PKI_FORMAT);
	assert_int_equal(mt_cert_from_der(buf, len - 1, &c), MT_ERR_PKI_FORMAT);
	assert_int_equal(mt_cert_from_der((const uint8_t *)"garbage", 7, &c), MT_ERR_PKI_FORMAT);
	uint8_t *big = calloc(1, MT_PKI_INPUT_MAX + 1);
	assert_non_null(big);
	assert_int_equal(mt_cert_from_der(big, MT_PKI_INPUT_MAX + 1, &c), MT_ERR_PKI_TOO_LARGE);
	free(big);
	assert_null(c);

	mt_cert_free(root);
	soft_free(&ca);
	soft_free(&k);
}

/* Keys in a SoftHSM2 token: P-256 CA, P-256 and Ed25519 devices. */
static void test_pkcs11_token_keys(void **state)
{
	(void)state;
	struct mt_softhsm h;
	char uri[512];
	struct mt_key *cak = NULL, *birth = NULL, *ldev = NULL;
	if (!mt_softhsm_available())
		skip();
	assert_int_equal(mt_softhsm_init(&h, "mt-pki", "1234", "5678"), 0);
	assert_int_equal(mt_softhsm_uri(&h, "ca", NULL, uri, sizeof uri), 0);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &cak), MT_OK);
	assert_int_equal(mt_softhsm_uri(&h, "idev", NULL, uri, sizeof uri), 0);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &birth), MT_OK);
	assert_int_equal(mt_softhsm_uri(&h, "ldev", NULL, uri, sizeof uri), 0);
	assert_int_equal(mt_key_generate(uri, MT_KEY_ED25519, MT_KEY_ROLE_SIGN, &ldev), MT_OK);

	struct mt_cert *root = make_ca(cak, CA_SUBJECT, 0);
	struct mt_pki_leaf bl = {.profile = MT_PKI_BIRTH, .id = "SN-77", .manufacturer = "Acme"};
	struct mt_cert *bc = issue(cak, root, mt_key_public(birth), &bl);
	expect_verify(bc, root, NULL, MT_OK);

	/* The device makes its CSR in the token; the hub checks it. */
	uint8_t csr[1024];
	size_t csr_len = 0;
	char cn[MT_PKI_CN_MAX];
	struct mt_pubkey *pub = NULL;
	assert_int_equal(mt_pki_csr_create(ldev, "SN-77", csr, sizeof csr, &csr_len), MT_OK);
	assert_int_equal(mt_pki_csr_verify(csr, csr_len, cn, sizeof cn, &pub), MT_OK);
	assert_string_equal(cn, "SN-77");
	assert_int_equal(mt_pubkey_type(pub), MT_KEY_ED25519);
	assert_memory_equal(mt_pubkey_kid(pub), mt_pubkey_kid(mt_key_public(ldev)), MT_KID_LEN);
	struct mt_cert *oc = operational(cak, root, pub, "SN-77");
	X509 *x = x509_of(oc), *cax = x509_of(root);
	check_common_leaf(x, cax);
	assert_true(EVP_PKEY_is_a(X509_get0_pubkey(x), "ED25519"));
	expect_verify(oc, root, NULL, MT_OK);

	/* A CRL from the token key. */
	uint8_t serial[16], crl[1024];
	size_t sl = 0, crl_len = 0;
	assert_int_equal(mt_cert_serial(oc, serial, sizeof serial, &sl), MT_OK);
	struct mt_pki_revoked r = {.serial = serial, .serial_len = sl,
	                           .reason = MT_PKI_REASON_KEY_COMPROMISE};
	struct mt_pki_crl_opts co = {.revoked = &r, .n_revoked = 1,
	                             .next_update = (int64_t)time(NULL) + DAY, .crl_number = 1};
	assert_int_equal(mt_pki_crl_create(cak, root, &co, crl, sizeof crl, &crl_len), MT_OK);
	struct mt_pki_verify_opts vo = {.crl = crl, .crl_len = crl_len};
	expect_verify(oc, root, &vo, MT_ERR_PKI_REVOKED);
	expect_verify(bc, root, &vo, MT_OK);

	X509_free(x);
	X509_free(cax);
	mt_pubkey_free(pub);
	mt_cert_free(oc);
	mt_cert_free(bc);
	mt_cert_free(root);
	mt_key_free(cak);
	mt_key_free(birth);
	mt_key_free(ldev);
	assert_int_equal(mt_softhsm_cleanup(&h), 0);
}

static void test_ed25519_issuer(void **state)
{
	(void)state;
	struct soft ca, dev;
	soft_new(&ca, MT_KEY_ED25519);
	soft_new(&dev, MT_KEY_P256);
	struct mt_cert *root = make_ca(ca.k, "CN=Ed CA", -1);
	X509 *cax = x509_of(root);
	assert_int_equal(X509_get_signature_nid(cax), NID_ED25519);
	assert_int_equal(X509_verify(cax, X509_get0_pubkey(cax)), 1);
	struct mt_cert *c = operational(ca.k, root, mt_key_public(dev.k), "dev-1");
	X509 *x = x509_of(c);
	check_common_leaf(x, cax);
	assert_int_equal(X509_get_signature_nid(x), NID_ED25519);
	expect_verify(c, root, NULL, MT_OK);
	uint8_t crl[1024];
	size_t crl_len = 0;
	struct mt_pki_crl_opts co = {.next_update = (int64_t)time(NULL) + DAY, .crl_number = 9};
	assert_int_equal(mt_pki_crl_create(ca.k, root, &co, crl, sizeof crl, &crl_len), MT_OK);
	struct mt_pki_verify_opts vo = {.crl = crl, .crl_len = crl_len};
	expect_verify(c, root, &vo, MT_OK);
	X509_free(x);
	X509_free(cax);
	mt_cert_free(c);
	mt_cert_free(root);
	soft_free(&ca);
	soft_free(&dev);
}

/* ------------------------------------------------------------- CSRs */

/* A CSR built by OpenSSL: subject CN, key `pub`, signed by `signer` with
 * `md` (NULL for Ed25519), extensions from `exts` (conf strings, may be
 * NULL), a challengePassword attribute when asked. */
static size_t forge_csr(EVP_PKEY *pub, EVP_PKEY *signer, const EVP_MD *md, const char *bc,
                        int challenge, uint8_t *out, size_t cap)
{
	X509_REQ *r = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	assert_non_null(r);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	                                            (const unsigned char *)"dev-1", -1, -1, 0),
	                 1);
	assert_int_equal(X509_REQ_set_subject_name(r, n), 1);
	X509_NAME_free(n);
	assert_int_equal(X509_REQ_set_pubkey(r, pub), 1);
	if (bc != NULL) {
		STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, bc);
		assert_non_null(e);
		sk_X509_EXTENSION_push(exts, e);
		assert_int_equal(X509_REQ_add_extensions(r, exts), 1);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	if (challenge)
		assert_int_equal(X509_REQ_add1_attr_by_NID(r, NID_pkcs9_challengePassword,
		                                           MBSTRING_UTF8,
		                                           (const unsigned char *)"secret", -1),
		                 1);
	assert_true(X509_REQ_sign(r, signer, md) > 0);
	unsigned char *der = NULL;
	int len = i2d_X509_REQ(r, &der);
	assert_true(len > 0 && (size_t)len <= cap);
	memcpy(out, der, (size_t)len);
	OPENSSL_free(der);
	X509_REQ_free(r);
	return (size_t)len;
}

static void expect_csr(const uint8_t *der, size_t len, enum mt_err want)
{
	char cn[MT_PKI_CN_MAX];
	struct mt_pubkey *pub = NULL;
	enum mt_err got = mt_pki_csr_verify(der, len, cn, sizeof cn, &pub);
	if (got != want)
		fail_msg("mt_pki_csr_verify: %s, want %s", mt_err_str(got), mt_err_str(want));
	if (got != MT_OK) {
		assert_null(pub);
		assert_string_equal(cn, "");
	}
	mt_pubkey_free(pub);
}

static void test_csr_round_trip(void **state)
{
	(void)state;
	struct soft k;
	soft_new(&k, MT_KEY_P256);
	uint8_t csr[1024];
	size_t len = 0;
	assert_int_equal(mt_pki_csr_create(k.k, "SN-0001", csr, 10, &len), MT_ERR_BUFFER);
	assert_true(len > 10);
	assert_int_equal(mt_pki_csr_create(k.k, "SN-0001", csr, sizeof csr, &len), MT_OK);

	/* OpenSSL's reading of it. */
	const unsigned char *p = csr;
	X509_REQ *r = d2i_X509_REQ(NULL, &p, (long)len);
	assert_non_null(r);
	assert_int_equal(X509_REQ_get_version(r), 0);
	name_is(X509_REQ_get_subject_name(r), "CN=SN-0001");
	assert_int_equal(X509_REQ_get_attr_count(r), 0);
	assert_int_equal(X509_REQ_get_signature_nid(r), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_REQ_verify(r, X509_REQ_get0_pubkey(r)), 1);
	X509_REQ_free(r);

	char cn[MT_PKI_CN_MAX];
	struct mt_pubkey *pub = NULL;
	assert_int_equal(mt_pki_csr_verify(csr, len, cn, sizeof cn, &pub), MT_OK);
	assert_string_equal(cn, "SN-0001");
	assert_memory_equal(mt_pubkey_kid(pub), mt_pubkey_kid(mt_key_public(k.k)), MT_KID_LEN);
	mt_pubkey_free(pub);
	assert_int_equal(mt_pki_csr_verify(csr, len, cn, sizeof cn, NULL), MT_OK);
	assert_int_equal(mt_pki_csr_verify(csr, len, cn, 4, NULL), MT_ERR_BUFFER);
	assert_int_equal(mt_pki_csr_create(k.k, "bad id", csr, sizeof csr, &len), MT_ERR_PKI_SUBJECT);
	soft_free(&k);
}

/* D04: proof of possession, and the CSR refusals of mt_pki.h. */
static void test_D04_csr_refusals(void **state)
{
	(void)state;
	struct soft a, b;
	soft_new(&a, MT_KEY_P256);
	soft_new(&b, MT_KEY_P256);
	uint8_t csr[2048], bad[2048];
	size_t len = 0, n;
	assert_int_equal(mt_pki_csr_create(a.k, "dev-1", csr, sizeof csr, &len), MT_OK);

	/* Tampered signature: every byte of the signature BIT STRING's
	 * last 16 bytes flipped in turn (the DER stays parseable). */
	for (size_t i = len - 16; i < len; i++) {
		memcpy(bad, csr, len);
		bad[i] ^= 0x01;
		char cn[MT_PKI_CN_MAX];
		enum mt_err e = mt_pki_csr_verify(bad, len, cn, sizeof cn, NULL);
		assert_true(e == MT_ERR_PKI_CSR_POP || e == MT_ERR_PKI_FORMAT);
	}
	/* Tampered subject (inside the signed part). */
	memcpy(bad, csr, len);
	for (size_t i = 0; i + 5 <= len; i++)
		if (memcmp(bad + i, "dev-1", 5) == 0)
			bad[i + 4] = '2';
	expect_csr(bad, len, MT_ERR_PKI_CSR_POP);
	/* Key b, signed by key a: another key's signature. */
	n = forge_csr(b.evp, a.evp, EVP_sha256(), NULL, 0, bad, sizeof bad);
	expect_csr(bad, n, MT_ERR_PKI_CSR_POP);
	/* Correctly signed by OpenSSL: accepted. */
	n = forge_csr(b.evp, b.evp, EVP_sha256(), NULL, 0, bad, sizeof bad);
	expect_csr(bad, n, MT_OK);
	/* Another hash than the key's. */
	n = forge_csr(b.evp, b.evp, EVP_sha384(), NULL, 0, bad, sizeof bad);
	expect_csr(bad, n, MT_ERR_PKI_ALG);
	/* Asking for a CA, or carrying a password attribute. */
	n = forge_csr(b.evp, b.evp, EVP_sha256(), "critical,CA:TRUE", 0, bad, sizeof bad);
	expect_csr(bad, n, MT_ERR_PKI_CSR_REQUEST);
	n = forge_csr(b.evp, b.evp, EVP_sha256(), "critical,CA:FALSE", 0, bad, sizeof bad);
	expect_csr(bad, n, MT_OK);
	n = forge_csr(b.evp, b.evp, EVP_sha256(), NULL, 1, bad, sizeof bad);
	expect_csr(bad, n, MT_ERR_PKI_CSR_REQUEST);
	/* A key type medtrust does not use. */
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	assert_non_null(p384);
	n = forge_csr(p384, p384, EVP_sha256(), NULL, 0, bad, sizeof bad);
	expect_csr(bad, n, MT_ERR_KEY_TYPE);
	EVP_PKEY_free(p384);
	/* Garbage, truncation, trailing bytes, 100 KiB. */
	expect_csr((const uint8_t *)"\x30\x03\x02\x01\x00", 5, MT_ERR_PKI_FORMAT);
	expect_csr(csr, len - 1, MT_ERR_PKI_FORMAT);
	memcpy(bad, csr, len);
	bad[len] = 0;
	expect_csr(bad, len + 1, MT_ERR_PKI_FORMAT);
	uint8_t *big = malloc(100 * 1024);
	assert_non_null(big);
	memset(big, 0x30, 100 * 1024);
	expect_csr(big, 100 * 1024, MT_ERR_PKI_TOO_LARGE);
	free(big);
	soft_free(&a);
	soft_free(&b);
}

/* -------------------------------------------------------------- CRLs */

static void test_crl_content(void **state)
{
	(void)state;
	struct soft ca;
	soft_new(&ca, MT_KEY_P256);
	struct mt_cert *root = make_ca(ca.k, CA_SUBJECT, -1);
	X509 *cax = x509_of(root);
	const uint8_t s1[] = {0x7f, 0x01, 0x02}, s2[] = {0x00, 0x05}, s3[] = {0x80};
	struct mt_pki_revoked rv[] = {
	        {.serial = s1, .serial_len = 3, .when = 1700000000, .reason = MT_PKI_REASON_KEY_COMPROMISE},
	        {.serial = s2, .serial_len = 2, .when = 1700000100, .reason = MT_PKI_REASON_UNSPECIFIED},
	        {.serial = s3, .serial_len = 1, .when = 1700000200, .reason = MT_PKI_REASON_CESSATION_OF_OPERATION},
	};
	struct mt_pki_crl_opts o = {.revoked = rv, .n_revoked = 3, .this_update = 1700001000,
	                            .next_update = 1700001000 + 7 * DAY, .crl_number = 42};
	uint8_t der[2048];
	size_t len = 0;
	assert_int_equal(mt_pki_crl_create(ca.k, root, &o, der, 16, &len), MT_ERR_BUFFER);
	assert_int_equal(mt_pki_crl_create(ca.k, root, &o, der, sizeof der, &len), MT_OK);

	const unsigned char *p = der;
	X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
	assert_non_null(crl);
	assert_ptr_equal(p, der + len);
	assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(cax)), 1);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(cax)), 0);
	assert_int_equal(X509_CRL_get_signature_nid(crl), NID_ecdsa_with_SHA256);
	time_t t = 1700001000;
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_CRL_get0_lastUpdate(crl), t), 0);
	t += 7 * DAY;
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl), t), 0);
	ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	assert_non_null(num);
	assert_int_equal(ASN1_INTEGER_get(num), 42);
	ASN1_INTEGER_free(num);
	AUTHORITY_KEYID *aki = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
	assert_non_null(aki);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid, X509_get0_subject_key_id(cax)), 0);
	AUTHORITY_KEYID_free(aki);

	STACK_OF(X509_REVOKED) *list = X509_CRL_get_REVOKED(crl);
	assert_int_equal(sk_X509_REVOKED_num(list), 3);
	int found = 0;
	for (int i = 0; i < 3; i++) {
		X509_REVOKED *r = sk_X509_REVOKED_value(list, i);
		const ASN1_INTEGER *sn = X509_REVOKED_get0_serialNumber(r);
		long v = ASN1_INTEGER_get(sn);
		int crit = -1;
		ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
		if (v == 0x7f0102) {
			assert_non_null(reason);
			assert_int_equal(ASN1_ENUMERATED_get(reason), 1);
			assert_int_equal(crit, 0);
			t = 1700000000;
			assert_int_equal(ASN1_TIME_cmp_time_t(X509_REVOKED_get0_revocationDate(r), t), 0);
			found |= 1;
		} else if (v == 5) {
			assert_null(reason);
			found |= 2;
		} else if (v == 0x80) {
			assert_non_null(reason);
			assert_int_equal(ASN1_ENUMERATED_get(reason), 5);
			found |= 4;
		}
		ASN1_ENUMERATED_free(reason);
	}
	assert_int_equal(found, 7);
	X509_CRL_free(crl);

	/* Refusals: nextUpdate not after thisUpdate, reason 7, empty serial,
	 * a leaf as issuer. */
	o.next_update = o.this_update;
	assert_int_equal(mt_pki_crl_create(ca.k, root, &o, der, sizeof der, &len), MT_ERR_ARG);
	o.next_update = o.this_update + DAY;
	rv[0].reason = (enum mt_pki_reason)7;
	assert_int_equal(mt_pki_crl_create(ca.k, root, &o, der, sizeof der, &len), MT_ERR_ARG);
	rv[0].reason = MT_PKI_REASON_SUPERSEDED;
	rv[1].serial_len = 1; /* just the 0x00 */
	assert_int_equal(mt_pki_crl_create(ca.k, root, &o, der, sizeof der, &len), MT_ERR_ARG);

	X509_free(cax);
	mt_cert_free(root);
	soft_free(&ca);
}

/* ----------------------------------------------------------- PKCS#7 */

static void test_p7_certs_only(void **state)
{
	(void)state;
	struct soft ca, k;
	soft_new(&ca, MT_KEY_P256);
	soft_new(&k, MT_KEY_P256);
	struct mt_cert *root = make_ca(ca.k, CA_SUBJECT, -1);
	struct mt_cert *leaf = operational(ca.k, root, mt_key_public(k.k), "dev-1");
	const struct mt_cert *chain[] = {leaf, root};
	uint8_t der[4096];
	size_t len = 0;
	assert_int_equal(mt_pki_p7_certs(chain, 2, der, 8, &len), MT_ERR_BUFFER);
	assert_int_equal(mt_pki_p7_certs(chain, 2, der, sizeof der, &len), MT_OK);
	size_t none = 0;
	assert_int_equal(mt_pki_p7_certs(chain, 0, der, sizeof der, &none), MT_ERR_ARG);

	const unsigned char *p = der;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	assert_true(PKCS7_type_is_signed(p7));
	assert_int_equal(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 0);
	assert_int_equal(OBJ_obj2nid(p7->d.sign->contents->type), NID_pkcs7_data);
	assert_int_equal(sk_X509_num(p7->d.sign->cert), 2);
	for (int i = 0; i < 2; i++) {
		size_t cl = 0;
		const uint8_t *cd = mt_cert_der(chain[i], &cl);
		unsigned char *e = NULL;
		int el = i2d_X509(sk_X509_value(p7->d.sign->cert, i), &e);
		assert_int_equal((size_t)el, cl);
		assert_memory_equal(e, cd, cl);
		OPENSSL_free(e);
	}
	PKCS7_free(p7);

	/* base64 form decodes to the same DER; 64-character lines. */
	char b64[8192];
	size_t bl = 0;
	assert_int_equal(mt_pki_p7_certs_b64(chain, 2, b64, 16, &bl), MT_ERR_BUFFER);
	assert_int_equal(mt_pki_p7_certs_b64(chain, 2, b64, sizeof b64, &bl), MT_OK);
	assert_int_equal(strlen(b64), bl);
	assert_int_equal(b64[64], '\n');
	assert_int_equal(b64[bl - 1], '\n');
	BIO *mem = BIO_new_mem_buf(b64, (int)bl), *dec = BIO_new(BIO_f_base64());
	BIO_push(dec, mem);
	uint8_t back[4096];
	int got = BIO_read(dec, back, sizeof back);
	BIO_free_all(dec);
	assert_int_equal(got, (int)len);
	assert_memory_equal(back, der, len);

	/* And back into certificates. */
	struct mt_cert *certs[MT_PKI_CHAIN_MAX];
	size_t n = 0;
	assert_int_equal(mt_pki_p7_parse(der, len, certs, 1, &n), MT_ERR_BUFFER);
	assert_int_equal(mt_pki_p7_parse(der, len, certs, MT_PKI_CHAIN_MAX, &n), MT_OK);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		size_t l1 = 0, l2 = 0;
		const uint8_t *d1 = mt_cert_der(certs[i], &l1), *d2 = mt_cert_der(chain[i], &l2);
		assert_int_equal(l1, l2);
		assert_memory_equal(d1, d2, l1);
		mt_cert_free(certs[i]);
	}
	assert_int_equal(mt_pki_p7_parse(der, len - 1, certs, MT_PKI_CHAIN_MAX, &n),
	                 MT_ERR_PKI_FORMAT);

	mt_cert_free(leaf);
	mt_cert_free(root);
	soft_free(&ca);
	soft_free(&k);
}

/* ---------------------------------------------------- verification */

struct vfx {
	struct soft ca, dev;
	struct mt_cert *root;
};

static void vfx_init(struct vfx *f)
{
	soft_new(&f->ca, MT_KEY_P256);
	soft_new(&f->dev, MT_KEY_P256);
	f->root = make_ca(f->ca.k, CA_SUBJECT, -1);
}

static void vfx_free(struct vfx *f)
{
	mt_cert_free(f->root);
	soft_free(&f->ca);
	soft_free(&f->dev);
}

static void test_B01_fake_root_same_name(void **state)
{
	(void)state;
	struct vfx f;
	vfx_init(&f);
	struct soft fake;
	soft_new(&fake, MT_KEY_P256);
	struct mt_cert *fake_root = make_ca(fake.k, CA_SUBJECT, -1);
	struct mt_cert *c = operational(fake.k, fake_root, mt_key_public(f.dev.k), "dev-1");
	X509 *a = x509_of(f.root), *b = x509_of(fake_root);
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)), 0);
	X509_free(a);
	X509_free(b);
	expect_verify(c, fake_root, NULL, MT_OK); /* fine under its own root */
	expect_verify(c, f.root, NULL, MT_ERR_PKI_UNTRUSTED);
	/* Even handed the fake root as an "intermediate". */
	const struct mt_cert *inter[] = {fake_root};
	struct mt_pki_verify_opts o = {.intermediates = inter, .n_intermediates = 1};
	expect_verify(c, f.root, &o, MT_ERR_PKI_UNTRUSTED);
	mt_cert_free(c);
	mt_cert_free(fake_root);
	soft_free(&fake);
	vfx_free(&f);
}

static void test_B02_expired_and_not_yet_valid(void **state)
{
	(void)state;
	struct vfx f;
	vfx_init(&f);
	int64_t now = (int64_t)time(NULL);
	struct mt_pki_leaf l = {.profile = MT_PKI_OPERATIONAL, .id = "dev-1",
	                        .not_before = now - 40 * DAY, .lifetime_s = 30 * DAY};
	struct mt_cert *old = issue(f.ca.k, f.root, mt_key_public(f.dev.k), &l);
	l.not_before = now + DAY;
	struct mt_cert *future = issue(f.ca.k, f.root, mt_key_public(f.dev.k), &l);
	expect_verify(old, f.root, NULL, MT_ERR_PKI_EXPIRED);
	expect_verify(future, f.root, NULL, MT_ERR_PKI_NOT_YET_VALID);
	/* The same certificates at a time inside their validity. */
	struct mt_pki_verify_opts o = {.at = now + 2 * DAY};
	expect_verify(future, f.root, &o, MT_OK);
	/* And a fresh one checked 31 days ahead. */
	struct mt_cert *c = operational(f.ca.k, f.root, mt_key_public(f.dev.k), "dev-1");
	o.at = now + 31 * DAY;
	expect_verify(c, f.root, &o, MT_ERR_PKI_EXPIRED);
	mt_cert_free(c);
	mt_cert_free(old);
	mt_cert_free(future);
	vfx_free(&f);
}

static void test_B03_B04_revocation(void **state)
{
	(void)state;
	struct vfx f;
	vfx_init(&f);
	int64_t now = (int64_t)time(NULL);
	struct mt_cert *bad = operational(f.ca.k, f.root, mt_key_public(f.dev.k), "dev-1");
	struct mt_cert *good = operational(f.ca.k, f.root, mt_key_public(f.dev.k), "dev-2");
	uint8_t serial[20], crl[1024], other[1024];
	size_t sl = 0, len = 0, olen = 0;
	assert_int_equal(mt_cert_serial(bad, serial, sizeof serial, &sl), MT_OK);
	struct mt_pki_revoked r = {.serial = serial, .serial_len = sl,
	                           .reason = MT_PKI_REASON_KEY_COMPROMISE};
	struct mt_pki_crl_opts co = {.revoked = &r, .n_revoked = 1, .this_update = now - 60,
	                             .next_update = now + DAY, .crl_number = 2};
	assert_int_equal(mt_pki_crl_create(f.ca.k, f.root, &co, crl, sizeof crl, &len), MT_OK);
	struct mt_pki_verify_opts o = {.crl = crl, .crl_len = len};
	expect_verify(bad, f.root, &o, MT_ERR_PKI_REVOKED);
	expect_verify(good, f.root, &o, MT_OK);
	expect_verify(bad, f.root, NULL, MT_OK); /* no CRL given: no revocation check */
	struct mt_pki_verify_opts req = {.crl_required = 1};
	expect_verify(good, f.root, &req, MT_ERR_PKI_CRL); /* B04: missing CRL fails closed */
	req.crl = crl;
	req.crl_len = len;
	expect_verify(good, f.root, &req, MT_OK);

	/* B04: a CRL past its nextUpdate fails closed, for every leaf. */
	o.at = now + 2 * DAY;
	expect_verify(good, f.root, &o, MT_ERR_PKI_CRL);
	o.at = 0;
	/* A CRL from another CA (same name, other key), unparsable, truncated. */
	struct soft fake;
	soft_new(&fake, MT_KEY_P256);
	struct mt_cert *fake_root = make_ca(fake.k, CA_SUBJECT, -1);
	co.n_revoked = 0;
	assert_int_equal(mt_pki_crl_create(fake.k, fake_root, &co, other, sizeof other, &olen),
	                 MT_OK);
	struct mt_pki_verify_opts of = {.crl = other, .crl_len = olen};
	expect_verify(good, f.root, &of, MT_ERR_PKI_CRL);
	of.crl_len = olen - 1;
	expect_verify(good, f.root, &of, MT_ERR_PKI_CRL);
	of.crl = (const uint8_t *)"junk";
	of.crl_len = 4;
	expect_verify(good, f.root, &of, MT_ERR_PKI_CRL);
	/* A tampered CRL signature. */
	memcpy(other, crl, len);
	other[len - 1] ^= 1;
	of.crl = other;
	of.crl_len = len;
	expect_verify(good, f.root, &of, MT_ERR_PKI_CRL);

	mt_cert_free(fake_root);
	soft_free(&fake);
	mt_cert_free(bad);
	mt_cert_free(good);
	vfx_free(&f);
}

static void test_B05_leaf_usage(void **state)
{
	(void)state;
	struct vfx f;
	vfx_init(&f);
	const char *ca_true = "critical,CA:TRUE", *ca_false = "critical,CA:FALSE";
	const char *ds = "critical,digitalSignature", *ka = "critical,keyAgreement";
	/* The forging path itself is sound: a well-formed leaf passes. */
	struct mt_cert *ok = forge(f.ca.evp, f.root, f.dev.evp, ca_false, ds, "clientAuth");
	expect_verify(ok, f.root, NULL, MT_OK);
	struct mt_cert *ca_leaf = forge(f.ca.evp, f.root, f.dev.evp, ca_true, ds, "clientAuth");
	expect_verify(ca_leaf, f.root, NULL, MT_ERR_PKI_USAGE);
	struct mt_cert *no_ds = forge(f.ca.evp, f.root, f.dev.evp, ca_false, ka, "clientAuth");
	expect_verify(no_ds, f.root, NULL, MT_ERR_PKI_USAGE);
	struct mt_cert *no_ku = forge(f.ca.evp, f.root, f.dev.evp, ca_false, NULL, "clientAuth");
	expect_verify(no_ku, f.root, NULL, MT_ERR_PKI_USAGE);
	struct mt_cert *no_eku = forge(f.ca.evp, f.root, f.dev.evp, ca_false, ds, NULL);
	expect_verify(no_eku, f.root, NULL, MT_ERR_PKI_USAGE);
	struct mt_cert *cert_sign =
	        forge(f.ca.evp, f.root, f.dev.evp, ca_false, "critical,digitalSignature,keyCertSign",
	              "clientAuth");
	expect_verify(cert_sign, f.root, NULL, MT_ERR_PKI_USAGE);
	/* Only serverAuth: mt_pki's own TLS_SERVER profile. */
	const char *dns[] = {"hub"};
	struct mt_pki_leaf l = {.profile = MT_PKI_TLS_SERVER, .subject = "CN=dev-1", .dns = dns,
	                        .n_dns = 1};
	struct mt_cert *srv = issue(f.ca.k, f.root, mt_key_public(f.dev.k), &l);
	expect_verify(srv, f.root, NULL, MT_ERR_PKI_USAGE);
	/* A sub-CA certificate presented as a client. */
	struct mt_pki_leaf s = {.profile = MT_PKI_SUB_CA, .subject = "CN=sub", .path_len = -1};
	struct mt_cert *sub = issue(f.ca.k, f.root, mt_key_public(f.dev.k), &s);
	expect_verify(sub, f.root, NULL, MT_ERR_PKI_USAGE);
	mt_cert_free(ok);
	mt_cert_free(ca_leaf);
	mt_cert_free(no_ds);
	mt_cert_free(no_ku);
	mt_cert_free(no_eku);
	mt_cert_free(cert_sign);
	mt_cert_free(srv);
	mt_cert_free(sub);
	vfx_free(&f);
}

/* B06: path-building tricks.  A sub-CA's name constraints are enforced, an
 * over-long chain is refused before any path is built, and a loop of
 * cross-signed CAs ends in "untrusted", not in a hang. */
static void test_B06_path_building_tricks(void **state)
{
	(void)state;
	struct soft ca, sub, dev, a, b, other;
	soft_new(&ca, MT_KEY_P256);
	soft_new(&sub, MT_KEY_P256);
	soft_new(&dev, MT_KEY_P256);
	soft_new(&a, MT_KEY_P256);
	soft_new(&b, MT_KEY_P256);
	soft_new(&other, MT_KEY_P256);
	struct mt_cert *root = make_ca(ca.k, CA_SUBJECT, -1);

	/* 1. A sub-CA permitted only .hospital.example. */
	struct mt_cert *nc = forge_nc(ca.evp, root, sub.evp, "critical,CA:TRUE",
	                              "critical,keyCertSign,cRLSign", NULL,
	                              "critical,permitted;DNS:.hospital.example");
	const char *good_dns[] = {"hub.hospital.example"}, *evil_dns[] = {"hub.evil.example"};
	struct mt_pki_leaf tls = {.profile = MT_PKI_TLS_SERVER, .subject = "CN=hub",
	                          .dns = good_dns, .n_dns = 1};
	struct mt_cert *inside = issue(sub.k, nc, mt_key_public(dev.k), &tls);
	tls.dns = evil_dns;
	struct mt_cert *outside = issue(sub.k, nc, mt_key_public(dev.k), &tls);
	const struct mt_cert *via_nc[] = {nc};
	struct mt_pki_verify_opts vs = {.purpose = MT_PKI_PURPOSE_SERVER, .intermediates = via_nc,
	                                .n_intermediates = 1};
	expect_verify(inside, root, &vs, MT_OK);
	expect_verify(outside, root, &vs, MT_ERR_PKI_CHAIN);

	/* 2. Nine sub-CAs deep: over MT_PKI_CHAIN_MAX, refused outright. */
	struct soft chain[MT_PKI_CHAIN_MAX + 1];
	struct mt_cert *cc[MT_PKI_CHAIN_MAX + 1];
	const struct mt_cert *inter[MT_PKI_CHAIN_MAX + 1];
	struct mt_pki_leaf sca = {.profile = MT_PKI_SUB_CA, .path_len = -1};
	char subj[64];
	struct mt_key *issuer_k = ca.k;
	const struct mt_cert *issuer_c = root;
	for (size_t i = 0; i < MT_PKI_CHAIN_MAX + 1; i++) {
		soft_new(&chain[i], MT_KEY_P256);
		snprintf(subj, sizeof subj, "CN=level %zu CA", i + 1);
		sca.subject = subj;
		cc[i] = issue(issuer_k, issuer_c, mt_key_public(chain[i].k), &sca);
		inter[MT_PKI_CHAIN_MAX - i] = cc[i]; /* nearest the leaf first */
		issuer_k = chain[i].k;
		issuer_c = cc[i];
	}
	struct mt_cert *deep = operational(issuer_k, issuer_c, mt_key_public(dev.k), "dev-deep");
	struct mt_pki_verify_opts vd = {.intermediates = inter, .n_intermediates = MT_PKI_CHAIN_MAX + 1};
	const struct mt_cert *roots[] = {root};
	assert_int_not_equal(mt_pki_verify(deep, roots, 1, &vd), MT_OK);

	/* 3. A and B cross-sign each other; neither is trusted. */
	struct mt_cert *ra = make_ca(a.k, "CN=Loop CA A", -1), *rb = make_ca(b.k, "CN=Loop CA B", -1);
	struct mt_pki_leaf xa = {.profile = MT_PKI_SUB_CA, .subject = "CN=Loop CA A", .path_len = -1};
	struct mt_pki_leaf xb = {.profile = MT_PKI_SUB_CA, .subject = "CN=Loop CA B", .path_len = -1};
	struct mt_cert *a_by_b = issue(b.k, rb, mt_key_public(a.k), &xa);
	struct mt_cert *b_by_a = issue(a.k, ra, mt_key_public(b.k), &xb);
	struct mt_cert *looped = operational(a.k, ra, mt_key_public(dev.k), "dev-loop");
	struct mt_cert *trusted = make_ca(other.k, "CN=Unrelated Root", -1);
	const struct mt_cert *loop[] = {a_by_b, b_by_a};
	struct mt_pki_verify_opts vl = {.intermediates = loop, .n_intermediates = 2};
	expect_verify(looped, trusted, &vl, MT_ERR_PKI_UNTRUSTED);

	mt_cert_free(nc);
	mt_cert_free(inside);
	mt_cert_free(outside);
	for (size_t i = 0; i < MT_PKI_CHAIN_MAX + 1; i++) {
		mt_cert_free(cc[i]);
		soft_free(&chain[i]);
	}
	mt_cert_free(deep);
	mt_cert_free(ra);
	mt_cert_free(rb);
	mt_cert_free(a_by_b);
	mt_cert_free(b_by_a);
	mt_cert_free(looped);
	mt_cert_free(trusted);
	mt_cert_free(root);
	soft_free(&ca);
	soft_free(&sub);
	soft_free(&dev);
	soft_free(&a);
	soft_free(&b);
	soft_free(&other);
}

/* mt_cert_from_x509: shares the parsed X509, same DER and fingerprint as
 * from_der, and the caller's reference stays the caller's. */
static void test_cert_from_x509(void **state)
{
	(void)state;
	struct soft ca;
	soft_new(&ca, MT_KEY_P256);
	struct mt_cert *root = make_ca(ca.k, CA_SUBJECT, 0), *again = NULL;
	X509 *x = x509_of(root);
	size_t a_len = 0, b_len = 0;
	uint8_t fa[32], fb[32];
	assert_int_equal(mt_cert_from_x509(x, &again), MT_OK);
	X509_free(x); /* again holds its own reference */
	const uint8_t *a = mt_cert_der(root, &a_len), *b = mt_cert_der(again, &b_len);
	assert_int_equal(a_len, b_len);
	assert_memory_equal(a, b, a_len);
	assert_int_equal(mt_cert_fingerprint(root, fa), MT_OK);
	assert_int_equal(mt_cert_fingerprint(again, fb), MT_OK);
	assert_memory_equal(fa, fb, 32);
	expect_verify(again, root, &(struct mt_pki_verify_opts){.purpose = MT_PKI_PURPOSE_SIGNER},
	              MT_ERR_PKI_USAGE); /* a CA is no leaf, whichever way it was read */
	mt_cert_free(again);
	assert_int_equal(mt_cert_from_x509(NULL, &again), MT_ERR_ARG);
	assert_null(again);
	mt_cert_free(root);
	soft_free(&ca);
}

static void test_bad_signature(void **state)
{
	(void)state;
	struct vfx f;
	vfx_init(&f);
	struct mt_cert *c = operational(f.ca.k, f.root, mt_key_public(f.dev.k), "dev-1");
	size_t len = 0;
	const uint8_t *der = mt_cert_der(c, &len);
	uint8_t bad[4096];
	memcpy(bad, der, len);
	bad[len - 3] ^= 0x01; /* inside s */
	struct mt_cert *b = NULL;
	assert_int_equal(mt_cert_from_der(bad, len, &b), MT_OK);
	expect_verify(b, f.root, NULL, MT_ERR_PKI_SIGNATURE);
	/* A changed subject inside the TBS, original signature. */
	memcpy(bad, der, len);
	for (size_t i = 0; i + 5 <= len; i++)
		if (memcmp(bad + i, "dev-1", 5) == 0)
			bad[i + 4] = '2';
	mt_cert_free(b);
	assert_int_equal(mt_cert_from_der(bad, len, &b), MT_OK);
	expect_verify(b, f.root, NULL, MT_ERR_PKI_SIGNATURE);
	mt_cert_free(b);
	mt_cert_free(c);
	vfx_free(&f);
}

/* ------------------------------------------ files for the openssl CLI */

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[512];
	assert_true((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path);
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void write_cert(const char *dir, const char *name, const struct mt_cert *c)
{
	char pem[4096];
	size_t len = 0;
	assert_int_equal(mt_cert_pem(c, pem, sizeof pem, &len), MT_OK);
	write_file(dir, name, pem, len);
}

/* DER of a CRL or CSR as PEM, via OpenSSL. */
static void write_pem(const char *dir, const char *name, const uint8_t *der, size_t len, int csr)
{
	const unsigned char *p = der;
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	assert_non_null(b);
	if (csr) {
		X509_REQ *r = d2i_X509_REQ(NULL, &p, (long)len);
		assert_non_null(r);
		assert_int_equal(PEM_write_bio_X509_REQ(b, r), 1);
		X509_REQ_free(r);
	} else {
		X509_CRL *c = d2i_X509_CRL(NULL, &p, (long)len);
		assert_non_null(c);
		assert_int_equal(PEM_write_bio_X509_CRL(b, c), 1);
		X509_CRL_free(c);
	}
	long n = BIO_get_mem_data(b, &data);
	assert_true(n > 0);
	write_file(dir, name, data, (size_t)n);
	BIO_free(b);
}

static void test_export(void **state)
{
	(void)state;
	const char *dir = getenv("MT_PKI_OUT");
	if (dir == NULL || *dir == '\0')
		skip();
	struct soft ca, dev, ed;
	soft_new(&ca, MT_KEY_P256);
	soft_new(&dev, MT_KEY_P256);
	soft_new(&ed, MT_KEY_ED25519);
	struct mt_cert *root = make_ca(ca.k, CA_SUBJECT, 0);
	struct mt_pki_leaf bl = {.profile = MT_PKI_BIRTH, .id = "SN-0001", .manufacturer = "Acme Medical"};
	struct mt_cert *birth = issue(ca.k, root, mt_key_public(dev.k), &bl);
	struct mt_cert *op = operational(ca.k, root, mt_key_public(dev.k), "SN-0001");
	struct mt_cert *op_ed = operational(ca.k, root, mt_key_public(ed.k), "SN-0002");
	const char *dns[] = {"broker.hospital.example"};
	const char *ips[] = {"127.0.0.1"};
	struct mt_pki_leaf sl = {.profile = MT_PKI_TLS_SERVER, .subject = "CN=broker.hospital.example",
	                         .dns = dns, .n_dns = 1, .ip = ips, .n_ip = 1};
	struct mt_cert *srv = issue(ca.k, root, mt_key_public(dev.k), &sl);
	struct mt_cert *revoked = operational(ca.k, root, mt_key_public(dev.k), "SN-0003");
	uint8_t serial[20], crl[1024], p7[4096], csr[1024];
	char b64[8192];
	size_t n = 0, crl_len = 0, p7_len = 0, b64_len = 0, csr_len = 0;
	assert_int_equal(mt_cert_serial(revoked, serial, sizeof serial, &n), MT_OK);
	struct mt_pki_revoked r = {.serial = serial, .serial_len = n,
	                           .reason = MT_PKI_REASON_KEY_COMPROMISE};
	struct mt_pki_crl_opts co = {.revoked = &r, .n_revoked = 1,
	                             .next_update = (int64_t)time(NULL) + 7 * DAY, .crl_number = 1};
	assert_int_equal(mt_pki_crl_create(ca.k, root, &co, crl, sizeof crl, &crl_len), MT_OK);
	const struct mt_cert *chain[] = {op, root};
	assert_int_equal(mt_pki_p7_certs(chain, 2, p7, sizeof p7, &p7_len), MT_OK);
	assert_int_equal(mt_pki_p7_certs_b64(chain, 2, b64, sizeof b64, &b64_len), MT_OK);
	assert_int_equal(mt_pki_csr_create(dev.k, "SN-0001", csr, sizeof csr, &csr_len), MT_OK);

	write_cert(dir, "ca.pem", root);
	write_cert(dir, "birth.pem", birth);
	write_cert(dir, "op.pem", op);
	write_cert(dir, "op_ed.pem", op_ed);
	write_cert(dir, "server.pem", srv);
	write_cert(dir, "revoked.pem", revoked);
	write_pem(dir, "crl.pem", crl, crl_len, 0);
	write_file(dir, "chain.p7b", p7, p7_len);
	write_file(dir, "chain.b64", b64, b64_len);
	write_pem(dir, "csr.pem", csr, csr_len, 1);

	mt_cert_free(root);
	mt_cert_free(birth);
	mt_cert_free(op);
	mt_cert_free(op_ed);
	mt_cert_free(srv);
	mt_cert_free(revoked);
	soft_free(&ca);
	soft_free(&dev);
	soft_free(&ed);
}

static void test_error_sentences(void **state)
{
	(void)state;
	for (int e = 600; e < 700; e++) {
		const char *s = mt_err_str((enum mt_err)e);
		assert_non_null(s);
	}
	assert_string_not_equal(mt_err_str(MT_ERR_PKI_REVOKED), "unknown error");
	assert_string_not_equal(mt_err_str(MT_ERR_PKI_CHAIN), "unknown error");
	assert_string_not_equal(mt_err_str(MT_ERR_PKI_SUBJECT), "unknown error");
	assert_null(mt_err_stage(MT_ERR_PKI_USAGE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ca_profile),
	        cmocka_unit_test(test_birth_profile),
	        cmocka_unit_test(test_operational_profile),
	        cmocka_unit_test(test_tls_signer_subca_profiles),
	        cmocka_unit_test(test_issue_refusals),
	        cmocka_unit_test(test_pkcs11_token_keys),
	        cmocka_unit_test(test_ed25519_issuer),
	        cmocka_unit_test(test_csr_round_trip),
	        cmocka_unit_test(test_D04_csr_refusals),
	        cmocka_unit_test(test_crl_content),
	        cmocka_unit_test(test_p7_certs_only),
	        cmocka_unit_test(test_B01_fake_root_same_name),
	        cmocka_unit_test(test_B02_expired_and_not_yet_valid),
	        cmocka_unit_test(test_B03_B04_revocation),
	        cmocka_unit_test(test_B05_leaf_usage),
	        cmocka_unit_test(test_B06_path_building_tricks),
	        cmocka_unit_test(test_cert_from_x509),
	        cmocka_unit_test(test_bad_signature),
	        cmocka_unit_test(test_export),
	        cmocka_unit_test(test_error_sentences),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
