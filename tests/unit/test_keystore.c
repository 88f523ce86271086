/*
 * test_keystore.c — mt_keystore: one suite, both backends (mt_keystore.h,
 * protocol §1 and §9).
 *
 * The shared tests run twice, once with `pkcs11:` URIs into a fresh SoftHSM2
 * token (tests/support/mt_softhsm.c) and once with `file:` URIs into a fresh
 * temporary directory: generate, reopen by URI, sign and verify with
 * mt_sig_verify, ECDH both ways and against OpenSSL computed here, refusal to
 * overwrite, role separation.  Backend-specific tests follow: PINs,
 * pin-source, token selection and session sharing for PKCS#11; passphrase,
 * file modes, unencrypted and foreign files (openssl genpkey, Python
 * cryptography) for files; raw import against published vectors (RFC 6979
 * A.2.5, RFC 8032 §7.1); and the URI parser's refusals.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "keystore_int.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "mt_softhsm.h"
#include "mt_testutil.h"

#define PASS "correct horse battery staple"
#define PIN "1234"
#define SO_PIN "5678"
#define LABEL "mt-ks"

struct backend {
	const char *name;
	int pkcs11;
};

static const struct backend BE_pkcs11 = {"pkcs11", 1};
static const struct backend BE_file = {"file", 0};

struct fx {
	const struct backend *be;
	struct mt_softhsm hsm;
	char dir[256];
	int skip;
};

static void rm_tree(const char *dir)
{
	const char *argv[] = {"rm", "-rf", dir, NULL};
	(void)mt_softhsm_spawn(argv, NULL);
}

static int fx_setup(void **state)
{
	const struct backend *be = *state;
	struct fx *fx = calloc(1, sizeof(*fx));
	if (fx == NULL)
		return -1;
	fx->be = be != NULL ? be : &BE_file;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/mt-ks-test-XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	if (fx->be->pkcs11) {
		if (!mt_softhsm_available())
			fx->skip = 1;
		else if (mt_softhsm_init(&fx->hsm, LABEL, PIN, SO_PIN) != 0)
			return -1;
	}
	setenv("MEDTRUST_KEY_PASSPHRASE", PASS, 1);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	int rc = 0;
	if (fx->be->pkcs11 && mt_softhsm_cleanup(&fx->hsm) != 0)
		rc = -1; /* a key left open, or the token directory stuck */
	rm_tree(fx->dir);
	unsetenv("MEDTRUST_KEY_PASSPHRASE");
	unsetenv("MEDTRUST_PKCS11_MODULE");
	free(fx);
	return rc;
}

#define SKIP_IF_NO_TOKEN(fx)                                                                       \
	do {                                                                                       \
		if ((fx)->skip)                                                                    \
			skip();                                                                    \
	} while (0)

/* The URI of key `name` in the fixture's backend. */
static void uri_of(const struct fx *fx, const char *name, char *buf, size_t cap)
{
	if (fx->be->pkcs11)
		assert_int_equal(mt_softhsm_uri(&fx->hsm, name, NULL, buf, cap), 0);
	else
		assert_true((size_t)snprintf(buf, cap, "file:%s/%s.key", fx->dir, name) < cap);
}

static void file_path(const struct fx *fx, const char *name, char *buf, size_t cap)
{
	assert_true((size_t)snprintf(buf, cap, "%s/%s", fx->dir, name) < cap);
}

static void assert_kid_eq(const struct mt_key *a, const struct mt_key *b)
{
	assert_memory_equal(mt_pubkey_kid(mt_key_public(a)), mt_pubkey_kid(mt_key_public(b)),
	                    MT_KID_LEN);
}

static void sign_and_verify(struct mt_key *k, const struct mt_pubkey *pub)
{
	static const uint8_t msg[] = "vital signs: HR 72, SpO2 98";
	uint8_t sig[MT_SIG_LEN];
	assert_int_equal(mt_key_sign(k, msg, sizeof(msg) - 1, sig), MT_OK);
	assert_int_equal(mt_sig_verify(pub, NULL, 0, msg, sizeof(msg) - 1, sig, sizeof(sig)),
	                 MT_OK);
	/* The signature covers the message: one flipped bit is refused. */
	uint8_t other[sizeof(msg) - 1];
	memcpy(other, msg, sizeof(other));
	other[0] ^= 1;
	assert_int_equal(mt_sig_verify(pub, NULL, 0, other, sizeof(other), sig, sizeof(sig)),
	                 MT_ERR_SIG_INVALID);
	/* Empty messages sign too. */
	assert_int_equal(mt_key_sign(k, NULL, 0, sig), MT_OK);
	assert_int_equal(mt_sig_verify(pub, NULL, 0, NULL, 0, sig, sizeof(sig)), MT_OK);
}

/* ---- shared suite ----------------------------------------------------- */

static void generate_sign_reopen(void **state, enum mt_key_type type, const char *name)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char uri[1024];
	struct mt_key *k = NULL, *k2 = NULL;
	uri_of(fx, name, uri, sizeof(uri));
	assert_int_equal(mt_key_generate(uri, type, MT_KEY_ROLE_SIGN, &k), MT_OK);
	assert_non_null(k);
	assert_int_equal(mt_key_type(k), type);
	assert_int_equal(mt_pubkey_type(mt_key_public(k)), type);
	sign_and_verify(k, mt_key_public(k));

	assert_int_equal(mt_key_open(uri, &k2), MT_OK);
	assert_int_equal(mt_key_type(k2), type);
	assert_kid_eq(k, k2);
	/* The reopened key signs for the original public key. */
	sign_and_verify(k2, mt_key_public(k));
	mt_key_free(k2);
	mt_key_free(k);
}

static void test_p256_generate_sign_reopen(void **state)
{
	generate_sign_reopen(state, MT_KEY_P256, "ldev");
}

static void test_ed25519_generate_sign_reopen(void **state)
{
	generate_sign_reopen(state, MT_KEY_ED25519, "ldev-ed");
}

/* kpub as an OpenSSL key, from its SPKI: independent of the key store. */
static EVP_PKEY *evp_of_pub(const struct mt_pubkey *pub)
{
	uint8_t spki[MT_SPKI_MAX];
	size_t len = 0;
	assert_int_equal(mt_pubkey_spki(pub, spki, sizeof(spki), &len), MT_OK);
	const unsigned char *p = spki;
	EVP_PKEY *e = d2i_PUBKEY(NULL, &p, (long)len);
	assert_non_null(e);
	return e;
}

static void openssl_ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t x[32])
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	size_t len = 32;
	assert_non_null(c);
	assert_int_equal(EVP_PKEY_derive_init(c), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(c, peer), 1);
	assert_int_equal(EVP_PKEY_derive(c, x, &len), 1);
	assert_int_equal(len, 32);
	EVP_PKEY_CTX_free(c);
}

static struct mt_pubkey *pub_of_evp(EVP_PKEY *e)
{
	uint8_t pt[65];
	size_t len = 0;
	struct mt_pubkey *pub = NULL;
	assert_int_equal(
	        EVP_PKEY_get_octet_string_param(e, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len),
	        1);
	assert_int_equal(mt_pubkey_from_raw(MT_KEY_P256, pt, len, &pub), MT_OK);
	return pub;
}

static void test_ecdh_both_ways_and_software(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char ua[1024], ub[1024];
	struct mt_key *a = NULL, *b = NULL, *a2 = NULL;
	uint8_t xab[32], xba[32], xa2b[32], xsoft[32], xks[32];
	uri_of(fx, "kx-a", ua, sizeof(ua));
	uri_of(fx, "kx-b", ub, sizeof(ub));
	assert_int_equal(mt_key_generate(ua, MT_KEY_P256, MT_KEY_ROLE_DERIVE, &a), MT_OK);
	assert_int_equal(mt_key_generate(ub, MT_KEY_P256, MT_KEY_ROLE_DERIVE, &b), MT_OK);
	assert_int_equal(mt_key_ecdh(a, mt_key_public(b), xab), MT_OK);
	assert_int_equal(mt_key_ecdh(b, mt_key_public(a), xba), MT_OK);
	assert_memory_equal(xab, xba, 32);
	/* Different peers give different secrets. */
	assert_int_equal(mt_key_ecdh(a, mt_key_public(a), xa2b), MT_OK);
	assert_memory_not_equal(xab, xa2b, 32);

	/* Reopened by URI, the key derives the same secret. */
	assert_int_equal(mt_key_open(ua, &a2), MT_OK);
	assert_int_equal(mt_key_ecdh(a2, mt_key_public(b), xa2b), MT_OK);
	assert_memory_equal(xab, xa2b, 32);

	/* Against OpenSSL, computed here from the public half only. */
	EVP_PKEY *soft = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(soft);
	struct mt_pubkey *soft_pub = pub_of_evp(soft);
	EVP_PKEY *apub = evp_of_pub(mt_key_public(a));
	assert_int_equal(mt_key_ecdh(a, soft_pub, xks), MT_OK);
	openssl_ecdh(soft, apub, xsoft);
	assert_memory_equal(xks, xsoft, 32);

	EVP_PKEY_free(apub);
	mt_pubkey_free(soft_pub);
	EVP_PKEY_free(soft);
	mt_key_free(a2);
	mt_key_free(b);
	mt_key_free(a);
}

static void test_generate_twice_exists(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char uri[1024];
	struct mt_key *k = NULL, *k2 = NULL, *k3 = NULL;
	uri_of(fx, "once", uri, sizeof(uri));
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_OK);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k2),
	                 MT_ERR_KS_EXISTS);
	assert_null(k2);
	assert_int_equal(mt_key_generate(uri, MT_KEY_ED25519, MT_KEY_ROLE_SIGN, &k2),
	                 MT_ERR_KS_EXISTS);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_DERIVE, &k2),
	                 MT_ERR_KS_EXISTS);
	/* The first key is intact: same public key after reopening. */
	assert_int_equal(mt_key_open(uri, &k3), MT_OK);
	assert_kid_eq(k, k3);
	mt_key_free(k3);
	mt_key_free(k);
}

static void test_roles_enforced(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char us[1024], ud[1024], ue[1024];
	struct mt_key *s = NULL, *d = NULL, *ed = NULL;
	uint8_t sig[MT_SIG_LEN], x[32];
	uri_of(fx, "sign", us, sizeof(us));
	uri_of(fx, "derive", ud, sizeof(ud));
	uri_of(fx, "ed", ue, sizeof(ue));
	assert_int_equal(mt_key_generate(us, MT_KEY_P256, MT_KEY_ROLE_SIGN, &s), MT_OK);
	assert_int_equal(mt_key_generate(ud, MT_KEY_P256, MT_KEY_ROLE_DERIVE, &d), MT_OK);
	assert_int_equal(mt_key_generate(ue, MT_KEY_ED25519, MT_KEY_ROLE_SIGN, &ed), MT_OK);

	assert_int_equal(mt_key_sign(d, (const uint8_t *)"m", 1, sig), MT_ERR_KS_KEY_TYPE);
	assert_int_equal(mt_key_ecdh(s, mt_key_public(d), x), MT_ERR_KS_KEY_TYPE);
	assert_int_equal(mt_key_ecdh(ed, mt_key_public(d), x), MT_ERR_KS_KEY_TYPE);
	/* A P-256 derive key with an Ed25519 peer. */
	assert_int_equal(mt_key_ecdh(d, mt_key_public(ed), x), MT_ERR_KS_KEY_TYPE);
	/* Ed25519 has no key agreement in MTP/1. */
	struct mt_key *none = NULL;
	char ux[1024];
	uri_of(fx, "ed-derive", ux, sizeof(ux));
	assert_int_equal(mt_key_generate(ux, MT_KEY_ED25519, MT_KEY_ROLE_DERIVE, &none),
	                 MT_ERR_KS_KEY_TYPE);
	assert_null(none);
	assert_int_equal(mt_key_generate(ux, MT_KEY_P384, MT_KEY_ROLE_SIGN, &none),
	                 MT_ERR_UNSUPPORTED);

	mt_key_free(s);
	mt_key_free(d);
	s = d = NULL;
	assert_int_equal(mt_key_open(us, &s), MT_OK);
	assert_int_equal(mt_key_open(ud, &d), MT_OK);
	assert_int_equal(mt_key_ecdh(s, mt_key_public(d), x),
	                 fx->be->pkcs11 ? MT_ERR_KS_KEY_TYPE : MT_OK);
	if (fx->be->pkcs11) {
		/* The token remembers the role across reopening. */
		assert_int_equal(mt_key_sign(d, (const uint8_t *)"m", 1, sig), MT_ERR_KS_KEY_TYPE);
	} else {
		/* A PKCS#8 file records no usage: reopened P-256 file keys may do
		 * both (documented in keystore_soft.c). */
		assert_int_equal(mt_key_sign(d, (const uint8_t *)"m", 1, sig), MT_OK);
	}
	mt_key_free(s);
	mt_key_free(d);
	mt_key_free(ed);
}

static void test_open_missing_key(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char uri[1024];
	struct mt_key *k = (struct mt_key *)&k; /* must be reset to NULL */
	uri_of(fx, "nobody", uri, sizeof(uri));
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_KEY_NOT_FOUND);
	assert_null(k);
}

/* ---- PKCS#11 only ------------------------------------------------------ */

static void test_p11_wrong_and_missing_pin(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char uri[1024];
	struct mt_key *k = NULL;
	assert_int_equal(mt_softhsm_uri(&fx->hsm, "k", NULL, uri, sizeof(uri)), 0);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_OK);
	mt_key_free(k);
	k = NULL;
	const char *bad[] = {
	        "pkcs11:token=" LABEL ";object=k?pin-value=0000",
	        "pkcs11:token=" LABEL ";object=k?pin-value=",
	        "pkcs11:token=" LABEL ";object=k?pin-value=12345",
	        "pkcs11:token=" LABEL ";object=k",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(mt_key_open(bad[i], &k), MT_ERR_KS_PIN);
		assert_null(k);
		assert_int_equal(mt_key_generate(bad[i], MT_KEY_P256, MT_KEY_ROLE_SIGN, &k),
		                 MT_ERR_KS_PIN);
	}
	/* The right PIN still works after the failures. */
	assert_int_equal(mt_key_open("pkcs11:token=" LABEL ";object=k?pin-value=" PIN, &k), MT_OK);
	mt_key_free(k);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_p11_pin_source(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char path[512], uri[1024];
	struct mt_key *k = NULL, *k2 = NULL;
	file_path(fx, "pin", path, sizeof(path));

	/* One trailing newline is stripped. */
	write_text(path, PIN "\n", 0600);
	snprintf(uri, sizeof(uri), "pkcs11:token=" LABEL ";object=ps?pin-source=%s", path);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_OK);
	mt_key_free(k);
	k = NULL;
	assert_int_equal(mt_keystore__p11_reset(), MT_OK); /* log in afresh below */

	/* Without a newline; as a file: URI; leniently in the path. */
	write_text(path, PIN, 0600);
	assert_int_equal(mt_key_open(uri, &k), MT_OK);
	mt_key_free(k);
	k = NULL;
	snprintf(uri, sizeof(uri), "pkcs11:token=" LABEL ";object=ps?pin-source=file:%s", path);
	assert_int_equal(mt_key_open(uri, &k), MT_OK);
	mt_key_free(k);
	k = NULL;
	snprintf(uri, sizeof(uri), "pkcs11:token=" LABEL ";object=ps;pin-source=%s", path);
	assert_int_equal(mt_key_open(uri, &k), MT_OK);
	mt_key_free(k);
	k = NULL;

	/* Wrong PIN in the file, two newlines (only one is stripped), no file,
	 * a command. */
	write_text(path, "4321\n", 0600);
	snprintf(uri, sizeof(uri), "pkcs11:token=" LABEL ";object=ps?pin-source=%s", path);
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_PIN);
	write_text(path, PIN "\n\n", 0600);
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_PIN);
	snprintf(uri, sizeof(uri), "pkcs11:token=" LABEL ";object=ps?pin-source=%s.missing", path);
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_PIN);
	assert_int_equal(
	        mt_key_open("pkcs11:token=" LABEL ";object=ps?pin-source=%7Cecho%201234", &k),
	        MT_ERR_KS_URI);
	assert_null(k);

	/* A second URI for the logged-in token shares its session but must
	 * still present the right PIN. */
	write_text(path, PIN "\r\n", 0600);
	snprintf(uri, sizeof(uri), "pkcs11:token=" LABEL ";object=ps?pin-source=%s", path);
	assert_int_equal(mt_key_open(uri, &k), MT_OK);
	assert_int_equal(mt_key_open("pkcs11:token=" LABEL ";object=ps?pin-value=" PIN, &k2),
	                 MT_OK);
	assert_kid_eq(k, k2);
	mt_key_free(k2);
	k2 = NULL;
	assert_int_equal(mt_key_open("pkcs11:token=" LABEL ";object=ps?pin-value=9999", &k2),
	                 MT_ERR_KS_PIN);
	assert_int_equal(mt_key_open("pkcs11:token=" LABEL ";object=ps", &k2), MT_ERR_KS_PIN);
	assert_null(k2);
	/* Keys open: the registry refuses to unload under them. */
	assert_int_equal(mt_keystore__p11_reset(), MT_ERR_INTERNAL);
	mt_key_free(k);
}

static void test_p11_token_selection(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	struct mt_key *k = NULL, *k2 = NULL;
	char uri[1024];
	assert_int_equal(mt_softhsm_uri(&fx->hsm, "sel", NULL, uri, sizeof(uri)), 0);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_OK);

	/* Token attributes beyond the label, percent-encoded. */
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;manufacturer=SoftHSM%20project;"
	                             "model=SoftHSM%20v2;object=sel;type=private?pin-value=" PIN,
	                             &k2),
	                 MT_OK);
	assert_kid_eq(k, k2);
	mt_key_free(k2);
	k2 = NULL;
	/* %6D%74 = "mt": percent-decoding of the label. */
	assert_int_equal(mt_key_open("pkcs11:token=%6D%74-ks;object=sel?pin-value=" PIN, &k2),
	                 MT_OK);
	mt_key_free(k2);
	k2 = NULL;
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;manufacturer=Acme;object=sel"
	                             "?pin-value=" PIN,
	                             &k2),
	                 MT_ERR_KS_TOKEN);
	assert_int_equal(mt_key_open("pkcs11:token=mt-k;object=sel?pin-value=" PIN, &k2),
	                 MT_ERR_KS_TOKEN); /* a prefix of the label is not the label */
	assert_int_equal(mt_key_open("pkcs11:token=other;object=sel?pin-value=" PIN, &k2),
	                 MT_ERR_KS_TOKEN);
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;library-manufacturer=SoftHSM;"
	                             "object=sel?pin-value=" PIN,
	                             &k2),
	                 MT_OK);
	mt_key_free(k2);
	k2 = NULL;
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;library-manufacturer=Other;"
	                             "object=sel?pin-value=" PIN,
	                             &k2),
	                 MT_ERR_KS_TOKEN);

	/* Module: module-path, then MEDTRUST_PKCS11_MODULE, then the default. */
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;object=sel?pin-value=" PIN
	                             "&module-path=/nonexistent/libpkcs11.so",
	                             &k2),
	                 MT_ERR_KS_MODULE);
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;object=sel?pin-value=" PIN
	                             "&module-path=/etc/passwd",
	                             &k2),
	                 MT_ERR_KS_MODULE);
	setenv("MEDTRUST_PKCS11_MODULE", "/nonexistent/libpkcs11.so", 1);
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;object=sel?pin-value=" PIN, &k2),
	                 MT_ERR_KS_MODULE);
	setenv("MEDTRUST_PKCS11_MODULE", MT_SOFTHSM_MODULE, 1);
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;object=sel?pin-value=" PIN, &k2), MT_OK);
	mt_key_free(k2);
	k2 = NULL;
	unsetenv("MEDTRUST_PKCS11_MODULE");
	/* Leniently: pin-value and module-path in the path. */
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;object=sel;pin-value=" PIN
	                             ";module-path=" MT_SOFTHSM_MODULE,
	                             &k2),
	                 MT_OK);
	assert_kid_eq(k, k2);
	mt_key_free(k2);
	mt_key_free(k);
}

static void test_p11_id_attribute(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	struct mt_key *k = NULL, *k2 = NULL;
	assert_int_equal(mt_key_generate("pkcs11:token=mt-ks;object=byid;id=%A1%b2%00%ff"
	                                 "?pin-value=" PIN,
	                                 MT_KEY_P256, MT_KEY_ROLE_DERIVE, &k),
	                 MT_OK);
	/* By id alone, by id and label. */
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;id=%a1%B2%00%FF?pin-value=" PIN, &k2),
	                 MT_OK);
	assert_kid_eq(k, k2);
	mt_key_free(k2);
	k2 = NULL;
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;object=byid;id=%a1%b2%00%ff"
	                             "?pin-value=" PIN,
	                             &k2),
	                 MT_OK);
	mt_key_free(k2);
	k2 = NULL;
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;id=%a1%b2%00?pin-value=" PIN, &k2),
	                 MT_ERR_KS_KEY_NOT_FOUND);
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;object=byid;id=%01?pin-value=" PIN, &k2),
	                 MT_ERR_KS_KEY_NOT_FOUND);
	/* Another label with the same id already exists. */
	assert_int_equal(mt_key_generate("pkcs11:token=mt-ks;object=other;id=%a1%b2%00%ff"
	                                 "?pin-value=" PIN,
	                                 MT_KEY_P256, MT_KEY_ROLE_SIGN, &k2),
	                 MT_ERR_KS_EXISTS);
	/* Without an id the key gets a random one; open by label works. */
	assert_int_equal(mt_key_generate("pkcs11:token=mt-ks;object=noid?pin-value=" PIN,
	                                 MT_KEY_P256, MT_KEY_ROLE_SIGN, &k2),
	                 MT_OK);
	mt_key_free(k2);
	k2 = NULL;
	assert_int_equal(mt_key_open("pkcs11:token=mt-ks;object=noid?pin-value=" PIN, &k2), MT_OK);
	mt_key_free(k2);
	mt_key_free(k);
}

/* ---- files only --------------------------------------------------------- */

/* The key-encryption key (mt_key_generate_kek): an AES-256 secret key in
 * the token that only wraps and unwraps, sensitive and never extractable
 * (threat I01: a logged-in attacker reads no key material and gets no
 * encrypt/decrypt oracle); a second one under the same label is refused,
 * and a file: KEK does not exist. */
static void test_p11_kek(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char uri[1024];
	struct mt_key *k = NULL;
	struct mt_softhsm_raw raw;

	uri_of(fx, "kek", uri, sizeof(uri));
	assert_int_equal(mt_key_generate_kek(uri), MT_OK);
	assert_int_equal(mt_key_generate_kek(uri), MT_ERR_KS_EXISTS);
	/* Nor may a key pair take the KEK's label. */
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_ERR_KS_EXISTS);
	assert_null(k);
	assert_int_equal(mt_key_generate_kek("file:/tmp/nope.key"), MT_ERR_UNSUPPORTED);

	assert_int_equal(mt_softhsm_raw_open(&raw, LABEL, PIN), 0);
	CK_OBJECT_HANDLE h = mt_softhsm_raw_find(&raw, CKO_SECRET_KEY, "kek");
	assert_true(h != CK_INVALID_HANDLE);
	CK_KEY_TYPE kt = 0;
	CK_ULONG vlen = 0;
	CK_BBOOL b[10];
	CK_ATTRIBUTE a[] = {
	        {CKA_KEY_TYPE, &kt, sizeof(kt)},   {CKA_VALUE_LEN, &vlen, sizeof(vlen)},
	        {CKA_TOKEN, &b[0], 1},             {CKA_SENSITIVE, &b[1], 1},
	        {CKA_EXTRACTABLE, &b[2], 1},       {CKA_WRAP, &b[3], 1},
	        {CKA_UNWRAP, &b[4], 1},            {CKA_ENCRYPT, &b[5], 1},
	        {CKA_DECRYPT, &b[6], 1},           {CKA_ALWAYS_SENSITIVE, &b[7], 1},
	        {CKA_NEVER_EXTRACTABLE, &b[8], 1}, {CKA_PRIVATE, &b[9], 1},
	};
	assert_int_equal(raw.f->C_GetAttributeValue(raw.s, h, a, sizeof(a) / sizeof(a[0])), CKR_OK);
	assert_int_equal(kt, CKK_AES);
	assert_int_equal(vlen, 32);
	assert_true(b[0] && b[1] && !b[2] && b[3] && b[4] && !b[5] && !b[6] && b[7] && b[8] && b[9]);
	/* The value itself cannot be read. */
	uint8_t value[32];
	CK_ATTRIBUTE v = {CKA_VALUE, value, sizeof(value)};
	assert_int_not_equal(raw.f->C_GetAttributeValue(raw.s, h, &v, 1), CKR_OK);
	mt_softhsm_raw_close(&raw);
}

static void test_file_passphrase(void **state)
{
	struct fx *fx = *state;
	char uri[1024];
	struct mt_key *k = NULL;
	uri_of(fx, "pp", uri, sizeof(uri));
	unsetenv("MEDTRUST_KEY_PASSPHRASE");
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k),
	                 MT_ERR_KS_PASSPHRASE);
	setenv("MEDTRUST_KEY_PASSPHRASE", "", 1);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k),
	                 MT_ERR_KS_PASSPHRASE);
	setenv("MEDTRUST_KEY_PASSPHRASE", PASS, 1);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_OK);
	mt_key_free(k);
	k = NULL;

	unsetenv("MEDTRUST_KEY_PASSPHRASE");
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_PASSPHRASE);
	setenv("MEDTRUST_KEY_PASSPHRASE", "correct horse battery stapler", 1);
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_PASSPHRASE);
	setenv("MEDTRUST_KEY_PASSPHRASE", "", 1);
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_PASSPHRASE);
	assert_null(k);
	setenv("MEDTRUST_KEY_PASSPHRASE", PASS, 1);
	assert_int_equal(mt_key_open(uri, &k), MT_OK);
	mt_key_free(k);
}

static void test_file_modes(void **state)
{
	struct fx *fx = *state;
	char uri[1024], path[512], head[64];
	struct mt_key *k = NULL;
	struct stat st;
	uri_of(fx, "mode", uri, sizeof(uri));
	file_path(fx, "mode.key", path, sizeof(path));
	mode_t old = umask(0); /* a permissive umask must not matter */
	assert_int_equal(mt_key_generate(uri, MT_KEY_ED25519, MT_KEY_ROLE_SIGN, &k), MT_OK);
	umask(old);
	mt_key_free(k);
	k = NULL;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(head, sizeof(head), fp));
	fclose(fp);
	assert_string_equal(head, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n");

	static const mode_t unsafe[] = {0644, 0640, 0604, 0660, 0602, 0620, 0601};
	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
		assert_int_equal(chmod(path, unsafe[i]), 0);
		assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_PERMISSION);
		assert_null(k);
	}
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(mt_key_open(uri, &k), MT_OK);
	mt_key_free(k);
}

static void test_file_refuses_overwrite_and_odd_files(void **state)
{
	struct fx *fx = *state;
	char uri[1024], path[512], target[512];
	struct mt_key *k = NULL;
	struct stat st;
	/* An unrelated file at the path: refused and untouched. */
	file_path(fx, "taken.key", path, sizeof(path));
	write_text(path, "not a key\n", 0600);
	uri_of(fx, "taken", uri, sizeof(uri));
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_ERR_KS_EXISTS);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 10);
	/* Not a PEM key at all. */
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KEY_FORMAT);
	/* A dangling symlink at the path is not followed. */
	file_path(fx, "link.key", path, sizeof(path));
	file_path(fx, "link-target", target, sizeof(target));
	assert_int_equal(symlink(target, path), 0);
	uri_of(fx, "link", uri, sizeof(uri));
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_ERR_KS_EXISTS);
	assert_int_equal(lstat(target, &st), -1);
	/* A missing directory, a directory, a missing file. */
	snprintf(uri, sizeof(uri), "file:%s/no/such/dir.key", fx->dir);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_ERR_IO);
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_KEY_NOT_FOUND);
	snprintf(uri, sizeof(uri), "file:%s", fx->dir);
	assert_int_equal(chmod(fx->dir, 0700), 0);
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_IO);
	assert_null(k);
}

/* Run a tool; returns its exit status (-1: could not run). */
static int run(const char *const argv[])
{
	return mt_softhsm_spawn(argv, NULL);
}

static void check_foreign_key(const char *key_path, const char *pub_path, enum mt_key_type type)
{
	char uri[1024];
	struct mt_key *k = NULL;
	struct mt_pubkey *pub = NULL;
	assert_int_equal(chmod(key_path, 0600), 0);
	snprintf(uri, sizeof(uri), "file:%s", key_path);
	assert_int_equal(mt_key_open(uri, &k), MT_OK);
	assert_int_equal(mt_key_type(k), type);
	assert_int_equal(mt_pubkey_from_pem_file(pub_path, &pub), MT_OK);
	/* The key we read is the key the tool wrote. */
	assert_memory_equal(mt_pubkey_kid(pub), mt_pubkey_kid(mt_key_public(k)), MT_KID_LEN);
	sign_and_verify(k, pub);
	mt_pubkey_free(pub);
	mt_key_free(k);
}

static void test_file_unencrypted_refused(void **state)
{
	struct fx *fx = *state;
	char path[512], uri[1024];
	struct mt_key *k = NULL;
	file_path(fx, "plain.key", path, sizeof(path));
	const char *gen[] = {"openssl", "genpkey",  "-algorithm",
	                     "EC",      "-pkeyopt", "ec_paramgen_curve:P-256",
	                     "-out",    path,       NULL};
	if (run(gen) != 0)
		skip();
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(uri, sizeof(uri), "file:%s", path);
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_PERMISSION);
	assert_null(k);
}

static void test_file_reads_openssl_genpkey(void **state)
{
	struct fx *fx = *state;
	char key[512], pub[512];
	file_path(fx, "ossl-ec.key", key, sizeof(key));
	file_path(fx, "ossl-ec.pub", pub, sizeof(pub));
	const char *gen[] = {"openssl",      "genpkey",  "-algorithm",
	                     "EC",           "-pkeyopt", "ec_paramgen_curve:P-256",
	                     "-aes-256-cbc", "-pass",    "env:MEDTRUST_KEY_PASSPHRASE",
	                     "-out",         key,        NULL};
	const char *out[] = {
	        "openssl", "pkey", "-in", key, "-passin", "env:MEDTRUST_KEY_PASSPHRASE",
	        "-pubout", "-out", pub,   NULL};
	if (run(gen) != 0)
		skip();
	assert_int_equal(run(out), 0);
	check_foreign_key(key, pub, MT_KEY_P256);

	file_path(fx, "ossl-ed.key", key, sizeof(key));
	file_path(fx, "ossl-ed.pub", pub, sizeof(pub));
	const char *gen_ed[] = {"openssl",
	                        "genpkey",
	                        "-algorithm",
	                        "ED25519",
	                        "-aes-256-cbc",
	                        "-pass",
	                        "env:MEDTRUST_KEY_PASSPHRASE",
	                        "-out",
	                        key,
	                        NULL};
	const char *out_ed[] = {
	        "openssl", "pkey", "-in", key, "-passin", "env:MEDTRUST_KEY_PASSPHRASE",
	        "-pubout", "-out", pub,   NULL};
	assert_int_equal(run(gen_ed), 0);
	assert_int_equal(run(out_ed), 0);
	check_foreign_key(key, pub, MT_KEY_ED25519);

	/* A well-formed, correctly encrypted key of a curve MTP/1 does not use. */
	char uri[1024];
	struct mt_key *k = NULL;
	file_path(fx, "ossl-p384.key", key, sizeof(key));
	const char *gen_384[] = {"openssl",      "genpkey",  "-algorithm",
	                         "EC",           "-pkeyopt", "ec_paramgen_curve:P-384",
	                         "-aes-256-cbc", "-pass",    "env:MEDTRUST_KEY_PASSPHRASE",
	                         "-out",         key,        NULL};
	assert_int_equal(run(gen_384), 0);
	assert_int_equal(chmod(key, 0600), 0);
	snprintf(uri, sizeof(uri), "file:%s", key);
	assert_int_equal(mt_key_open(uri, &k), MT_ERR_KS_KEY_TYPE);
	assert_null(k);
}

static void test_file_reads_python_cryptography(void **state)
{
	struct fx *fx = *state;
	char dir_arg[300];
	static const char script[] =
	        "import os, sys\n"
	        "from cryptography.hazmat.primitives import serialization as s\n"
	        "from cryptography.hazmat.primitives.asymmetric import ec, ed25519\n"
	        "pw = os.environ['MEDTRUST_KEY_PASSPHRASE'].encode()\n"
	        "for name, k in (('py-ec', ec.generate_private_key(ec.SECP256R1())),\n"
	        "                ('py-ed', ed25519.Ed25519PrivateKey.generate())):\n"
	        "    d = sys.argv[1]\n"
	        "    fd = os.open(f'{d}/{name}.key', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n"
	        "    os.write(fd, k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8,\n"
	        "                                 s.BestAvailableEncryption(pw)))\n"
	        "    os.close(fd)\n"
	        "    open(f'{d}/{name}.pub', 'wb').write(k.public_key().public_bytes(\n"
	        "        s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))\n";
	snprintf(dir_arg, sizeof(dir_arg), "%s", fx->dir);
	const char *probe[] = {"/usr/bin/python3", "-c", "import cryptography", NULL};
	if (run(probe) != 0)
		skip();
	const char *py[] = {"/usr/bin/python3", "-c", script, dir_arg, NULL};
	assert_int_equal(run(py), 0);
	char key[512], pub[512];
	file_path(fx, "py-ec.key", key, sizeof(key));
	file_path(fx, "py-ec.pub", pub, sizeof(pub));
	check_foreign_key(key, pub, MT_KEY_P256);
	file_path(fx, "py-ed.key", key, sizeof(key));
	file_path(fx, "py-ed.pub", pub, sizeof(pub));
	check_foreign_key(key, pub, MT_KEY_ED25519);
}

static void test_file_uri_forms(void **state)
{
	struct fx *fx = *state;
	char uri[1024];
	struct mt_key *k = NULL, *k2 = NULL;
	snprintf(uri, sizeof(uri), "file:%s/form.key", fx->dir);
	assert_int_equal(mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k), MT_OK);
	snprintf(uri, sizeof(uri), "file://%s/form.key", fx->dir);
	assert_int_equal(mt_key_open(uri, &k2), MT_OK);
	assert_kid_eq(k, k2);
	mt_key_free(k2);
	snprintf(uri, sizeof(uri), "FILE://localhost%s/%%66orm.key", fx->dir);
	assert_int_equal(mt_key_open(uri, &k2), MT_OK);
	assert_kid_eq(k, k2);
	mt_key_free(k2);
	k2 = NULL;
	snprintf(uri, sizeof(uri), "file://elsewhere%s/form.key", fx->dir);
	assert_int_equal(mt_key_open(uri, &k2), MT_ERR_KS_URI);
	mt_key_free(k);
}

/* ---- raw import: published vectors ---------------------------------------- */

static void raw_public(const struct mt_key *k, uint8_t *out, size_t n)
{
	uint8_t spki[MT_SPKI_MAX];
	size_t len = 0;
	assert_int_equal(mt_pubkey_spki(mt_key_public(k), spki, sizeof(spki), &len), MT_OK);
	assert_true(len >= n);
	memcpy(out, spki + len - n, n);
}

static void test_import_raw_p256_vector(void **state)
{
	(void)state;
	/* RFC 6979 A.2.5: the P-256 key. */
	uint8_t d[33], want[65], got[65];
	struct mt_key *k = NULL, *k2 = NULL;
	d[0] = 0;
	mt_test_unhex_exact("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721",
	                    d + 1, 32);
	want[0] = 0x04;
	mt_test_unhex_exact("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6",
	                    want + 1, 32);
	mt_test_unhex_exact("7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299",
	                    want + 33, 32);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d + 1, 32, &k), MT_OK);
	raw_public(k, got, 65);
	assert_memory_equal(got, want, 65);
	sign_and_verify(k, mt_key_public(k));
	/* 33 bytes with a leading zero: the same key. */
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d, 33, &k2), MT_OK);
	assert_kid_eq(k, k2);
	mt_key_free(k2);
	k2 = NULL;
	/* A sign key does not derive. */
	uint8_t x[32];
	assert_int_equal(mt_key_ecdh(k, mt_key_public(k), x), MT_ERR_KS_KEY_TYPE);
	mt_key_free(k);

	/* Refusals: length, a non-zero 33rd byte, 0, n, and above n. */
	uint8_t bad[33];
	memset(bad, 0, sizeof(bad));
	bad[0] = 1;
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, bad, 33, &k2),
	                 MT_ERR_ARG);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d + 1, 31, &k2),
	                 MT_ERR_ARG);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d + 1, 0, &k2),
	                 MT_ERR_ARG);
	memset(bad, 0, sizeof(bad));
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, bad, 32, &k2),
	                 MT_ERR_KEY_FORMAT);
	mt_test_unhex_exact("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", bad,
	                    32);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, bad, 32, &k2),
	                 MT_ERR_KEY_FORMAT);
	memset(bad, 0xff, 32);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, bad, 32, &k2),
	                 MT_ERR_KEY_FORMAT);
	assert_null(k2);
	/* n - 1 is the largest valid scalar. */
	mt_test_unhex_exact("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632550", bad,
	                    32);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_DERIVE, bad, 32, &k2), MT_OK);
	mt_key_free(k2);
}

static void test_import_raw_ed25519_vector(void **state)
{
	(void)state;
	/* RFC 8032 §7.1, TEST 1 (empty message). */
	uint8_t seed[32], pub[32], got[32], want_sig[64], sig[64];
	struct mt_key *k = NULL;
	mt_test_unhex_exact("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	                    seed, 32);
	mt_test_unhex_exact("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pub,
	                    32);
	mt_test_unhex_exact("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb882"
	                    "1590a33bacc61e39"
	                    "701cf9b46bd25bf5f0595bbe24655141438e7a100b",
	                    want_sig, 64);
	assert_int_equal(mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, seed, 32, &k), MT_OK);
	assert_int_equal(mt_key_type(k), MT_KEY_ED25519);
	raw_public(k, got, 32);
	assert_memory_equal(got, pub, 32);
	assert_int_equal(mt_key_sign(k, NULL, 0, sig), MT_OK);
	assert_memory_equal(sig, want_sig, 64);
	mt_key_free(k);
	k = NULL;
	assert_int_equal(mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, seed, 31, &k),
	                 MT_ERR_ARG);
	assert_int_equal(mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_DERIVE, seed, 32, &k),
	                 MT_ERR_KS_KEY_TYPE);
	assert_int_equal(mt_key_import_raw(MT_KEY_P384, MT_KEY_ROLE_SIGN, seed, 32, &k),
	                 MT_ERR_UNSUPPORTED);
	assert_int_equal(mt_key_import_raw(MT_KEY_ED25519, (enum mt_key_role)3, seed, 32, &k),
	                 MT_ERR_ARG);
	assert_null(k);
}

static void test_import_raw_ecdh(void **state)
{
	(void)state;
	uint8_t da[32], db[32], xab[32], xba[32];
	struct mt_key *a = NULL, *b = NULL;
	memset(da, 0x11, 32);
	memset(db, 0x22, 32);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_DERIVE, da, 32, &a), MT_OK);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_DERIVE, db, 32, &b), MT_OK);
	assert_int_equal(mt_key_ecdh(a, mt_key_public(b), xab), MT_OK);
	assert_int_equal(mt_key_ecdh(b, mt_key_public(a), xba), MT_OK);
	assert_memory_equal(xab, xba, 32);
	uint8_t sig[MT_SIG_LEN];
	assert_int_equal(mt_key_sign(a, (const uint8_t *)"x", 1, sig), MT_ERR_KS_KEY_TYPE);
	mt_key_free(a);
	mt_key_free(b);
	/* NULL is harmless. */
	mt_key_free(NULL);
	assert_int_equal(mt_key_type(NULL), MT_KEY_NONE);
	assert_null(mt_key_public(NULL));
}

/* ---- URIs --------------------------------------------------------------- */

static void test_malformed_uris_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
	        "",
	        "pkcs11",
	        "pkcs11:",
	        "pkcs12:token=a;object=b",
	        "http://example.com/key",
	        "file:",
	        "file://",
	        "file://host/tmp/k.key",
	        "file:/tmp/k.key?x=1",
	        "file:/tmp/k.key#frag",
	        "file:/tmp/k%2.key",
	        "file:/tmp/k%00.key",
	        "file:/tmp/k\n.key",
	        "pkcs11:token=a",           /* no object */
	        "pkcs11:object=b",          /* no token */
	        "pkcs11:token=a;object=b;", /* empty attribute */
	        "pkcs11:token=a;;object=b",
	        "pkcs11:token=a;object=b?",
	        "pkcs11:token=a;object=b?pin-value=1&",
	        "pkcs11:token=a;object", /* no '=' */
	        "pkcs11:token=a;=b",
	        "pkcs11:token=a;object=",           /* empty value */
	        "pkcs11:token=a;object=b;object=c", /* duplicated */
	        "pkcs11:token=a;token=a;object=b",
	        "pkcs11:token=a;object=b?pin-value=1&pin-value=1",
	        "pkcs11:token=a;object=b?pin-value=1&pin-source=/x",
	        "pkcs11:token=a;object=b;pin-value=1?pin-value=1",
	        "pkcs11:token=a;object=b;colour=red", /* unknown */
	        "pkcs11:token=a;object=b;x-vendor=1",
	        "pkcs11:token=a;object=b;slot-id=1",
	        "pkcs11:token=a;object=b?module-name=softhsm2",
	        "pkcs11:token=a;object=b?token=a", /* path attribute in the query */
	        "pkcs11:token=a;object=b;type=cert",
	        "pkcs11:token=a;object=b;type=public",
	        "pkcs11:token=a;object=b%", /* bad escapes */
	        "pkcs11:token=a;object=b%4",
	        "pkcs11:token=a;object=b%zz",
	        "pkcs11:token=a;object=b%00", /* NUL in a label */
	        "pkcs11:token=a;object=b c",  /* unescaped space */
	        "pkcs11:token=a;object=b\"",
	        "pkcs11:token=a;object=b#frag",
	        "pkcs11:token=a;object=b\xc3\xa9", /* raw UTF-8 must be escaped */
	        "pkcs11:token=a;object=b;id=",
	        "pkcs11:token=a;object=b;library-version=x",
	        "pkcs11:token=a;object=b;library-version=1.2.3",
	        "pkcs11:token=a;object=b;library-version=256",
	        "pkcs11:Token=a;object=b", /* names are lower case */
	        "pkcs11:token=a;object=b?pin-source=%7C/bin/pin",
	};
	struct mt_key *k = (struct mt_key *)&k;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum mt_err e = mt_key_open(bad[i], &k);
		if (e != MT_ERR_KS_URI)
			fail_msg("open accepted or misjudged URI #%zu \"%s\": %d", i, bad[i], e);
		assert_null(k);
		e = mt_key_generate(bad[i], MT_KEY_P256, MT_KEY_ROLE_SIGN, &k);
		if (e != MT_ERR_KS_URI)
			fail_msg("generate accepted or misjudged URI #%zu \"%s\": %d", i, bad[i],
			         e);
	}
	/* Too long. */
	char *huge = malloc(MT_KEYSTORE__URI_MAX + 64);
	assert_non_null(huge);
	memset(huge, 'a', MT_KEYSTORE__URI_MAX + 63);
	memcpy(huge, "pkcs11:token=a;object=", 22);
	huge[MT_KEYSTORE__URI_MAX + 63] = '\0';
	assert_int_equal(mt_key_open(huge, &k), MT_ERR_KS_URI);
	free(huge);
	assert_int_equal(mt_key_open(NULL, &k), MT_ERR_ARG);
	assert_int_equal(mt_key_open("file:/x", NULL), MT_ERR_ARG);
}

static void test_uri_parser_values(void **state)
{
	(void)state;
	struct mt_keystore__uri u;
	assert_int_equal(mt_keystore__uri_parse("PKCS11:token=My%20Token;serial=0123;"
	                                        "object=kx%2Fa;id=%00%01;library-version=2.6"
	                                        "?pin-value=12%2634&module-path=/usr/lib/x.so",
	                                        &u),
	                 MT_OK);
	assert_int_equal(u.scheme, MT_KEYSTORE__SCHEME_PKCS11);
	assert_string_equal(u.token, "My Token");
	assert_string_equal(u.serial, "0123");
	assert_string_equal(u.object, "kx/a");
	assert_int_equal(u.id_len, 2);
	assert_int_equal(u.id[0], 0);
	assert_int_equal(u.id[1], 1);
	assert_int_equal(u.has_library_version, 1);
	assert_int_equal(u.library_version_major, 2);
	assert_int_equal(u.library_version_minor, 6);
	assert_string_equal(u.pin, "12&34");
	assert_int_equal(u.pin_len, 5);
	assert_string_equal(u.module_path, "/usr/lib/x.so");
	mt_keystore__uri_clear(&u);
	assert_null(u.token);

	assert_int_equal(mt_keystore__uri_parse("file:/var/lib/medtrust/dev%201.key", &u), MT_OK);
	assert_int_equal(u.scheme, MT_KEYSTORE__SCHEME_FILE);
	assert_string_equal(u.path, "/var/lib/medtrust/dev 1.key");
	mt_keystore__uri_clear(&u);
	assert_int_equal(mt_keystore__uri_parse("file:relative/dev.key", &u), MT_OK);
	assert_string_equal(u.path, "relative/dev.key");
	mt_keystore__uri_clear(&u);
}

/* Each parametrised test is listed once per backend, named fn[backend]. */
#define ON(fn, be)                                                                                 \
	{                                                                                          \
		.name = #fn "[" #be "]", .test_func = fn, .setup_func = fx_setup,                  \
		.teardown_func = fx_teardown, .initial_state = (void *)&BE_##be,                   \
	}
#define BOTH(fn) ON(fn, pkcs11), ON(fn, file)
#define P11(fn) ON(fn, pkcs11)
#define FILEB(fn) ON(fn, file)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        BOTH(test_p256_generate_sign_reopen),
	        BOTH(test_ed25519_generate_sign_reopen),
	        BOTH(test_ecdh_both_ways_and_software),
	        BOTH(test_generate_twice_exists),
	        BOTH(test_roles_enforced),
	        BOTH(test_open_missing_key),
	        P11(test_p11_wrong_and_missing_pin),
	        P11(test_p11_pin_source),
	        P11(test_p11_token_selection),
	        P11(test_p11_id_attribute),
	        P11(test_p11_kek),
	        FILEB(test_file_passphrase),
	        FILEB(test_file_modes),
	        FILEB(test_file_refuses_overwrite_and_odd_files),
	        FILEB(test_file_unencrypted_refused),
	        FILEB(test_file_reads_openssl_genpkey),
	        FILEB(test_file_reads_python_cryptography),
	        FILEB(test_file_uri_forms),
	        cmocka_unit_test(test_import_raw_p256_vector),
	        cmocka_unit_test(test_import_raw_ed25519_vector),
	        cmocka_unit_test(test_import_raw_ecdh),
	        cmocka_unit_test(test_malformed_uris_refused),
	        cmocka_unit_test(test_uri_parser_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
