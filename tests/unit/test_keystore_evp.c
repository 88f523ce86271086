/*
 * test_keystore_evp.c — mt_key_evp: key store keys as OpenSSL EVP_PKEYs for
 * TLS (mt_keystore.h; src/core/keystore_evp.c; threats I01, I03, I08).
 *
 * What it proves, each against a fresh SoftHSM2 token and a fresh
 * temporary directory:
 *  - a P-256 key in the token, through its EVP_PKEY, signs with
 *    EVP_DigestSign (SHA-256, and SHA-384/512/224/1 to exercise the cut or
 *    padding of the digest to 32 bytes); the signature verifies with the
 *    key's public half (mt_sig_verify_der and OpenSSL), a tampered message
 *    does not, and the EVP_PKEY holds no private scalar;
 *  - real TLS handshakes in memory (two SSL objects over a BIO pair): the
 *    token key as the server's certificate key (TLS 1.3, and TLS 1.2 forced
 *    to ECDSA+SHA384), the client verifying the chain and host name; then
 *    the token key as the *client's* certificate key, the server requesting
 *    a certificate and seeing the one the client sent;
 *  - a `file:` key (and an in-memory one) is handed out as itself and does
 *    the same, P-256 and Ed25519;
 *  - refusals: an Ed25519 token key and derive-only keys are
 *    MT_ERR_KEY_TYPE, with *out NULL;
 *  - threads: two threads signing 200 times each with two different keys of
 *    the same token (one shared session) at once, through the EVP_PKEY and
 *    now and then mt_key_sign, while a third opens, uses and frees another
 *    key of that token; then two threads sharing one EVP_PKEY: every
 *    signature verifies.
 *
 * libssl.  libmedtrust links libcrypto only, and the test executables link
 * what libmedtrust does, so this test loads libssl.so.3 itself (dlopen) and
 * calls it through a table typed from <openssl/ssl.h>.  When libssl cannot
 * be loaded the TLS tests report themselves skipped; the rest still run.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* EVP_PKEY_get0_EC_KEY: "no private scalar" */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <pthread.h>
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

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "keystore_int.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_pki.h"
#include "mt_softhsm.h"

#define PASS "correct horse battery staple"
#define PIN "1234"
#define SO_PIN "5678"
#define LABEL "mt-evp"
#define HOST "hub.test"
#define THREAD_SIGNS 200

/* ---- libssl, loaded at run time -------------------------------------- */

#define SSL_FUNCS(X)                                                                               \
	X(TLS_server_method)                                                                       \
	X(TLS_client_method)                                                                       \
	X(SSL_CTX_new)                                                                             \
	X(SSL_CTX_free)                                                                            \
	X(SSL_CTX_ctrl)                                                                            \
	X(SSL_CTX_use_certificate)                                                                 \
	X(SSL_CTX_use_PrivateKey)                                                                  \
	X(SSL_CTX_check_private_key)                                                               \
	X(SSL_CTX_set_verify)                                                                      \
	X(SSL_CTX_get_cert_store)                                                                  \
	X(SSL_new)                                                                                 \
	X(SSL_free)                                                                                \
	X(SSL_set_bio)                                                                             \
	X(SSL_set_connect_state)                                                                   \
	X(SSL_set_accept_state)                                                                    \
	X(SSL_set1_host)                                                                           \
	X(SSL_do_handshake)                                                                        \
	X(SSL_get_error)                                                                           \
	X(SSL_get_verify_result)                                                                   \
	X(SSL_version)                                                                             \
	X(SSL_get1_peer_certificate)                                                               \
	X(SSL_write)                                                                               \
	X(SSL_read)

static struct {
#define SSL_FN_FIELD(fn) __typeof__(fn) *fn;
	SSL_FUNCS(SSL_FN_FIELD)
#undef SSL_FN_FIELD
	int tried;
	int ok;
} S;

/* 1 when libssl's functions are in S.  The library stays loaded. */
static int ssl_load(void)
{
	if (S.tried)
		return S.ok;
	S.tried = 1;
	void *lib = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL)
		return 0;
#define SSL_FN_LOAD(fn)                                                                            \
	do {                                                                                       \
		void *sym = dlsym(lib, #fn);                                                       \
		if (sym == NULL)                                                                   \
			return 0;                                                                  \
		memcpy(&S.fn, &sym, sizeof(sym));                                                  \
	} while (0);
	SSL_FUNCS(SSL_FN_LOAD)
#undef SSL_FN_LOAD
	S.ok = 1;
	return 1;
}

/* ---- fixture ----------------------------------------------------------- */

struct fx {
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
	struct fx *fx = calloc(1, sizeof(*fx));
	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/mt-evp-test-XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	if (!mt_softhsm_available())
		fx->skip = 1;
	else if (mt_softhsm_init(&fx->hsm, LABEL, PIN, SO_PIN) != 0)
		return -1;
	setenv("MEDTRUST_KEY_PASSPHRASE", PASS, 1);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	int rc = 0;
	if (!fx->skip && mt_softhsm_cleanup(&fx->hsm) != 0)
		rc = -1; /* a key left open (an EVP_PKEY not freed?) or the directory stuck */
	rm_tree(fx->dir);
	unsetenv("MEDTRUST_KEY_PASSPHRASE");
	free(fx);
	return rc;
}

#define SKIP_IF_NO_TOKEN(fx)                                                                       \
	do {                                                                                       \
		if ((fx)->skip)                                                                    \
			skip();                                                                    \
	} while (0)

static void token_uri(const struct fx *fx, const char *name, char *buf, size_t cap)
{
	assert_int_equal(mt_softhsm_uri(&fx->hsm, name, NULL, buf, cap), 0);
}

static void file_uri(const struct fx *fx, const char *name, char *buf, size_t cap)
{
	assert_true((size_t)snprintf(buf, cap, "file:%s/%s.key", fx->dir, name) < cap);
}

static struct mt_key *gen(const char *uri, enum mt_key_type type, enum mt_key_role role)
{
	struct mt_key *k = NULL;
	enum mt_err e = mt_key_generate(uri, type, role, &k);
	if (e != MT_OK)
		fail_msg("mt_key_generate: %s", mt_err_str(e));
	return k;
}

static EVP_PKEY *evp_of(struct mt_key *k)
{
	EVP_PKEY *p = NULL;
	enum mt_err e = mt_key_evp(k, &p);
	if (e != MT_OK)
		fail_msg("mt_key_evp: %s", mt_err_str(e));
	assert_non_null(p);
	return p;
}

/* The public half as an OpenSSL key, from its SPKI: independent of
 * keystore_evp.c. */
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

/* ---- signing through the EVP_PKEY -------------------------------------- */

/* EVP_DigestSign with `md` (NULL for Ed25519) into sig[cap]; 1 on success.
 * No cmocka assertion: threads call it. */
static int evp_sign(EVP_PKEY *key, const EVP_MD *md, const uint8_t *msg, size_t len, uint8_t *sig,
                    size_t cap, size_t *sig_len)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c != NULL && EVP_DigestSignInit(c, NULL, md, NULL, key) == 1 &&
	         EVP_DigestSign(c, NULL, sig_len, msg, len) == 1 && *sig_len <= cap &&
	         EVP_DigestSign(c, sig, sig_len, msg, len) == 1;
	EVP_MD_CTX_free(c);
	return ok;
}

static int evp_verify(EVP_PKEY *pub, const EVP_MD *md, const uint8_t *msg, size_t len,
                      const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c != NULL && EVP_DigestVerifyInit(c, NULL, md, NULL, pub) == 1 &&
	         EVP_DigestVerify(c, sig, sig_len, msg, len) == 1;
	EVP_MD_CTX_free(c);
	return ok;
}

/* Sign msg with the EVP_PKEY of `k` using `md`, verify with the key's
 * public half, and refuse a tampered message and a tampered signature. */
static void sign_verify_md(struct mt_key *k, EVP_PKEY *key, const EVP_MD *md)
{
	static const uint8_t msg[] = "TLS 1.3, server CertificateVerify";
	uint8_t sig[256], bad[sizeof(msg) - 1];
	size_t sig_len = 0;
	EVP_PKEY *pub = evp_of_pub(mt_key_public(k));
	ERR_clear_error();
	assert_int_equal(evp_sign(key, md, msg, sizeof(msg) - 1, sig, sizeof(sig), &sig_len), 1);
	assert_int_equal(evp_verify(pub, md, msg, sizeof(msg) - 1, sig, sig_len), 1);
	memcpy(bad, msg, sizeof(bad));
	bad[3] ^= 0x20;
	assert_int_equal(evp_verify(pub, md, bad, sizeof(bad), sig, sig_len), 0);
	sig[sig_len - 1] ^= 1;
	assert_int_equal(evp_verify(pub, md, msg, sizeof(msg) - 1, sig, sig_len), 0);
	ERR_clear_error();
	EVP_PKEY_free(pub);
}

/* The DER ECDSA signature with SHA-256 verifies through the library's own
 * verifier too, and a tampered message does not. */
static void sign_verify_mt(struct mt_key *k, EVP_PKEY *key)
{
	static const uint8_t msg[] = "vital signs: HR 72, SpO2 98";
	uint8_t sig[128], bad[sizeof(msg) - 1];
	size_t sig_len = 0;
	assert_int_equal(
	        evp_sign(key, EVP_sha256(), msg, sizeof(msg) - 1, sig, sizeof(sig), &sig_len), 1);
	assert_int_equal(
	        mt_sig_verify_der(mt_key_public(k), 256, msg, sizeof(msg) - 1, sig, sig_len),
	        MT_OK);
	memcpy(bad, msg, sizeof(bad));
	bad[0] ^= 1;
	assert_int_equal(mt_sig_verify_der(mt_key_public(k), 256, bad, sizeof(bad), sig, sig_len),
	                 MT_ERR_SIG_INVALID);
}

static void test_token_p256_signs(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char uri[1024];
	token_uri(fx, "tls", uri, sizeof(uri));
	struct mt_key *k = gen(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN);
	EVP_PKEY *key = evp_of(k);

	/* A P-256 key whose public half is the token key's, and nothing more:
	 * the private scalar never left the token. */
	EVP_PKEY *pub = evp_of_pub(mt_key_public(k));
	assert_true(EVP_PKEY_is_a(key, "EC"));
	assert_int_equal(EVP_PKEY_get_bits(key), 256);
	assert_int_equal(EVP_PKEY_eq(key, pub), 1);
	const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(key);
	assert_non_null(ec);
	assert_null(EC_KEY_get0_private_key(ec));
	EVP_PKEY_free(pub);

	sign_verify_mt(k, key);
	sign_verify_md(k, key, EVP_sha256());
	/* TLS 1.2 may pair ECDSA with other hashes: longer ones are cut to
	 * 256 bits, shorter ones are the same integer. */
	sign_verify_md(k, key, EVP_sha384());
	sign_verify_md(k, key, EVP_sha512());
	sign_verify_md(k, key, EVP_sha224());
	sign_verify_md(k, key, EVP_sha1());

	/* A second EVP_PKEY of the same key, and the key reopened by URI. */
	EVP_PKEY *key2 = evp_of(k);
	sign_verify_md(k, key2, EVP_sha256());
	EVP_PKEY_free(key2);
	struct mt_key *k2 = NULL;
	assert_int_equal(mt_key_open(uri, &k2), MT_OK);
	key2 = evp_of(k2);
	sign_verify_md(k, key2, EVP_sha256());
	EVP_PKEY_free(key2);
	mt_key_free(k2);

	EVP_PKEY_free(key);
	mt_key_free(k);
}

/* ---- TLS in memory ------------------------------------------------------ */

struct pki {
	struct mt_key *ca_key;
	struct mt_cert *ca;
	X509 *ca_x509;
};

static X509 *x509_of(const struct mt_cert *c)
{
	size_t len = 0;
	const unsigned char *p = mt_cert_der(c, &len);
	X509 *x = d2i_X509(NULL, &p, (long)len);
	assert_non_null(x);
	return x;
}

static void pki_init(struct pki *p)
{
	uint8_t d[32];
	memset(p, 0, sizeof(*p));
	assert_int_equal(mt_random(d, sizeof(d)), MT_OK);
	d[0] &= 0x7f; /* below the group order */
	d[0] |= 0x01; /* and not zero */
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d, sizeof(d), &p->ca_key),
	                 MT_OK);
	mt_wipe(d, sizeof(d));
	struct mt_pki_ca_opts o = {"CN=medtrust test CA,O=medtrust tests", 0, 0, -1};
	enum mt_err e = mt_pki_ca_create(p->ca_key, &o, &p->ca);
	if (e != MT_OK)
		fail_msg("mt_pki_ca_create: %s", mt_err_str(e));
	p->ca_x509 = x509_of(p->ca);
}

static void pki_free(struct pki *p)
{
	X509_free(p->ca_x509);
	mt_cert_free(p->ca);
	mt_key_free(p->ca_key);
}

/* A TLS server (TLS_SERVER profile, dNSName HOST) or client (TLS_CLIENT)
 * certificate for `k`'s public half, issued by the test CA. */
static X509 *issue(const struct pki *p, struct mt_key *k, enum mt_pki_profile profile)
{
	static const char *const dns[] = {HOST};
	struct mt_pki_leaf l;
	struct mt_cert *c = NULL;
	memset(&l, 0, sizeof(l));
	l.profile = profile;
	l.subject = profile == MT_PKI_TLS_SERVER ? "CN=" HOST : "CN=device-0001";
	if (profile == MT_PKI_TLS_SERVER) {
		l.dns = dns;
		l.n_dns = 1;
	}
	l.path_len = -1;
	enum mt_err e = mt_pki_issue(p->ca_key, p->ca, mt_key_public(k), &l, &c);
	if (e != MT_OK)
		fail_msg("mt_pki_issue: %s", mt_err_str(e));
	X509 *x = x509_of(c);
	mt_cert_free(c);
	return x;
}

static int verify_calls;

/* The server's verify callback: accepts whatever the client sent (the hub
 * verifies client chains itself, src/hub/https.h), counting the calls. */
static int accept_any(int preverify_ok, X509_STORE_CTX *ctx)
{
	(void)preverify_ok;
	(void)ctx;
	verify_calls++;
	return 1;
}

struct tls_opts {
	int version;         /* TLS1_3_VERSION or TLS1_2_VERSION */
	const char *sigalgs; /* client's signature algorithms, or NULL */
	EVP_PKEY *server_key;
	X509 *server_cert;
	EVP_PKEY *client_key; /* NULL: no client certificate asked for */
	X509 *client_cert;
};

static SSL_CTX *ctx_new(const SSL_METHOD *m, int version)
{
	SSL_CTX *c = S.SSL_CTX_new(m);
	assert_non_null(c);
	assert_int_equal(S.SSL_CTX_ctrl(c, SSL_CTRL_SET_MIN_PROTO_VERSION, version, NULL), 1);
	assert_int_equal(S.SSL_CTX_ctrl(c, SSL_CTRL_SET_MAX_PROTO_VERSION, version, NULL), 1);
	return c;
}

static void use_identity(SSL_CTX *c, X509 *cert, EVP_PKEY *key)
{
	assert_int_equal(S.SSL_CTX_use_certificate(c, cert), 1);
	assert_int_equal(S.SSL_CTX_use_PrivateKey(c, key), 1);
	assert_int_equal(S.SSL_CTX_check_private_key(c), 1);
}

/* One step of a handshake: 1 done, 0 wants more, -1 failed. */
static int step(SSL *s)
{
	int r = S.SSL_do_handshake(s);
	if (r == 1)
		return 1;
	int err = S.SSL_get_error(s, r);
	return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* Handshake a client and a server over a BIO pair, exchange a message each
 * way, and check what each side saw. */
static void tls_run(const struct pki *p, const struct tls_opts *o)
{
	SSL_CTX *sc = ctx_new(S.TLS_server_method(), o->version);
	SSL_CTX *cc = ctx_new(S.TLS_client_method(), o->version);
	use_identity(sc, o->server_cert, o->server_key);
	assert_int_equal(X509_STORE_add_cert(S.SSL_CTX_get_cert_store(cc), p->ca_x509), 1);
	S.SSL_CTX_set_verify(cc, SSL_VERIFY_PEER, NULL);
	if (o->sigalgs != NULL)
		assert_int_equal(
		        S.SSL_CTX_ctrl(cc, SSL_CTRL_SET_SIGALGS_LIST, 0, (void *)o->sigalgs), 1);
	if (o->client_key != NULL) {
		use_identity(cc, o->client_cert, o->client_key);
		S.SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		                     accept_any);
	}
	SSL *server = S.SSL_new(sc);
	SSL *client = S.SSL_new(cc);
	BIO *bs = NULL, *bc = NULL;
	assert_non_null(server);
	assert_non_null(client);
	assert_int_equal(BIO_new_bio_pair(&bs, 0, &bc, 0), 1);
	S.SSL_set_bio(server, bs, bs);
	S.SSL_set_bio(client, bc, bc);
	S.SSL_set_accept_state(server);
	S.SSL_set_connect_state(client);
	assert_int_equal(S.SSL_set1_host(client, HOST), 1);

	verify_calls = 0;
	int cdone = 0, sdone = 0;
	for (int i = 0; i < 100 && !(cdone && sdone); i++) {
		if (!cdone)
			cdone = step(client);
		if (!sdone)
			sdone = step(server);
		if (cdone < 0 || sdone < 0) {
			ERR_print_errors_fp(stderr);
			fail_msg("TLS handshake failed (client %d, server %d)", cdone, sdone);
		}
	}
	assert_int_equal(cdone, 1);
	assert_int_equal(sdone, 1);
	assert_int_equal(S.SSL_version(client), o->version);
	assert_int_equal(S.SSL_version(server), o->version);
	/* The client verified the server's chain and name. */
	assert_int_equal(S.SSL_get_verify_result(client), X509_V_OK);
	X509 *seen = S.SSL_get1_peer_certificate(client);
	assert_non_null(seen);
	assert_int_equal(X509_cmp(seen, o->server_cert), 0);
	X509_free(seen);
	/* The server saw the client's certificate, or none was asked for. */
	seen = S.SSL_get1_peer_certificate(server);
	if (o->client_key != NULL) {
		assert_non_null(seen);
		assert_int_equal(X509_cmp(seen, o->client_cert), 0);
		assert_true(verify_calls > 0);
		X509_free(seen);
	} else {
		assert_null(seen);
	}

	/* Application data both ways over the keys just agreed. */
	char buf[16];
	assert_int_equal(S.SSL_write(client, "ping", 4), 4);
	assert_int_equal(S.SSL_read(server, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(S.SSL_write(server, "pong", 4), 4);
	int n;
	do {
		n = S.SSL_read(client, buf, sizeof(buf)); /* after any session tickets */
	} while (n <= 0 && S.SSL_get_error(client, n) == SSL_ERROR_WANT_READ);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "pong", 4);

	S.SSL_free(client);
	S.SSL_free(server);
	S.SSL_CTX_free(cc);
	S.SSL_CTX_free(sc);
}

/* `k` as the server's key, then as the client's (with a software peer). */
static void tls_both_roles(struct mt_key *k)
{
	struct pki p;
	pki_init(&p);
	EVP_PKEY *key = evp_of(k);
	X509 *server_cert = issue(&p, k, MT_PKI_TLS_SERVER);
	X509 *client_cert = issue(&p, k, MT_PKI_TLS_CLIENT);

	/* A software peer for the other end. */
	struct mt_key *peer = NULL;
	uint8_t d[32];
	assert_int_equal(mt_random(d, sizeof(d)), MT_OK);
	d[0] = (uint8_t)((d[0] & 0x7f) | 0x01);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d, sizeof(d), &peer),
	                 MT_OK);
	mt_wipe(d, sizeof(d));
	EVP_PKEY *peer_key = evp_of(peer);
	X509 *peer_server = issue(&p, peer, MT_PKI_TLS_SERVER);
	X509 *peer_client = issue(&p, peer, MT_PKI_TLS_CLIENT);

	/* Server key: TLS 1.3 (ecdsa_secp256r1_sha256) ... */
	struct tls_opts o = {TLS1_3_VERSION, NULL, key, server_cert, NULL, NULL};
	tls_run(&p, &o);
	/* ... with a client certificate too (both ends' keys sign) ... */
	o.client_key = peer_key;
	o.client_cert = peer_client;
	tls_run(&p, &o);
	/* ... and TLS 1.2 where the client only accepts ECDSA with SHA-384:
	 * the token signs a 48-byte digest cut to 32. */
	if (mt_key_type(k) == MT_KEY_P256) {
		struct tls_opts o12 = {TLS1_2_VERSION, "ECDSA+SHA384", key,
		                       server_cert,    NULL,           NULL};
		tls_run(&p, &o12);
	}

	/* Client key: the server asks for a certificate and sees ours. */
	struct tls_opts oc = {TLS1_3_VERSION, NULL, peer_key, peer_server, key, client_cert};
	tls_run(&p, &oc);

	X509_free(peer_client);
	X509_free(peer_server);
	EVP_PKEY_free(peer_key);
	mt_key_free(peer);
	X509_free(client_cert);
	X509_free(server_cert);
	EVP_PKEY_free(key);
	pki_free(&p);
}

#define SKIP_IF_NO_SSL()                                                                           \
	do {                                                                                       \
		if (!ssl_load()) {                                                                 \
			print_message("libssl.so.3 not loadable: TLS test skipped\n");             \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static void test_token_key_in_tls(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	SKIP_IF_NO_SSL();
	char uri[1024];
	token_uri(fx, "hub-tls", uri, sizeof(uri));
	struct mt_key *k = gen(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN);
	tls_both_roles(k);
	mt_key_free(k);
}

/* ---- software keys -------------------------------------------------------- */

static void test_file_key_is_itself(void **state)
{
	struct fx *fx = *state;
	char uri[1024];
	file_uri(fx, "tls", uri, sizeof(uri));
	struct mt_key *k = gen(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN);
	EVP_PKEY *key = evp_of(k);
	/* The key itself, one more reference: the same object each time. */
	EVP_PKEY *again = evp_of(k);
	assert_ptr_equal(key, again);
	EVP_PKEY_free(again);
	EVP_PKEY *pub = evp_of_pub(mt_key_public(k));
	assert_int_equal(EVP_PKEY_eq(key, pub), 1);
	EVP_PKEY_free(pub);
	sign_verify_mt(k, key);
	sign_verify_md(k, key, EVP_sha256());
	EVP_PKEY_free(key);
	mt_key_free(k);

	/* Reopened from the file (both roles: PKCS#8 records no usage). */
	assert_int_equal(mt_key_open(uri, &k), MT_OK);
	key = evp_of(k);
	sign_verify_md(k, key, EVP_sha256());
	EVP_PKEY_free(key);
	mt_key_free(k);

	/* Ed25519 in a file: pure EdDSA, no digest. */
	file_uri(fx, "tls-ed", uri, sizeof(uri));
	k = gen(uri, MT_KEY_ED25519, MT_KEY_ROLE_SIGN);
	key = evp_of(k);
	assert_true(EVP_PKEY_is_a(key, "ED25519"));
	sign_verify_md(k, key, NULL);
	EVP_PKEY_free(key);
	mt_key_free(k);
}

static void test_file_key_in_tls(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_SSL();
	char uri[1024];
	file_uri(fx, "hub-tls", uri, sizeof(uri));
	struct mt_key *k = gen(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN);
	tls_both_roles(k);
	mt_key_free(k);
	file_uri(fx, "hub-tls-ed", uri, sizeof(uri));
	k = gen(uri, MT_KEY_ED25519, MT_KEY_ROLE_SIGN);
	tls_both_roles(k);
	mt_key_free(k);
}

/* ---- refusals ----------------------------------------------------------- */

static void assert_refused(struct mt_key *k)
{
	EVP_PKEY *p = (EVP_PKEY *)1; /* must be reset */
	assert_int_equal(mt_key_evp(k, &p), MT_ERR_KEY_TYPE);
	assert_null(p);
}

static void test_refusals(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char uri[1024];
	EVP_PKEY *p = NULL;

	/* Ed25519 in a token: no EVP hook for a foreign Ed25519 key. */
	token_uri(fx, "ed", uri, sizeof(uri));
	struct mt_key *ed = gen(uri, MT_KEY_ED25519, MT_KEY_ROLE_SIGN);
	assert_refused(ed);
	mt_key_free(ed);

	/* Derive-only keys never sign (threat I03), in a token ... */
	token_uri(fx, "kx", uri, sizeof(uri));
	struct mt_key *kx = gen(uri, MT_KEY_P256, MT_KEY_ROLE_DERIVE);
	assert_refused(kx);
	mt_key_free(kx);
	/* ... reopened by URI (the token remembers the role) ... */
	assert_int_equal(mt_key_open(uri, &kx), MT_OK);
	assert_refused(kx);
	mt_key_free(kx);
	/* ... as a file key generated for key agreement ... */
	file_uri(fx, "kx", uri, sizeof(uri));
	kx = gen(uri, MT_KEY_P256, MT_KEY_ROLE_DERIVE);
	assert_refused(kx);
	mt_key_free(kx);
	/* ... and in memory. */
	uint8_t d[32];
	memset(d, 0x11, sizeof(d));
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_DERIVE, d, sizeof(d), &kx),
	                 MT_OK);
	assert_refused(kx);
	mt_key_free(kx);

	/* Arguments. */
	assert_int_equal(mt_key_evp(NULL, &p), MT_ERR_ARG);
	assert_null(p);
}

/* ---- threads ------------------------------------------------------------ */

struct worker {
	struct mt_key *k;
	EVP_PKEY *key; /* mt_key_evp of k */
	EVP_PKEY *pub; /* k's public half, from its SPKI */
	unsigned id;
	unsigned ok;  /* signatures made and verified */
	unsigned bad; /* failures of any kind */
};

/* Sign THREAD_SIGNS distinct messages through the EVP_PKEY and verify each;
 * every fourth also through mt_key_sign, so both ways into the token's one
 * session run at once. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	for (unsigned i = 0; i < THREAD_SIGNS; i++) {
		uint8_t msg[64], sig[128], rs[MT_SIG_LEN];
		size_t sig_len = 0;
		int n = snprintf((char *)msg, sizeof(msg), "thread %u message %u", w->id, i);
		if (n <= 0 || (size_t)n >= sizeof(msg)) {
			w->bad++;
			continue;
		}
		if (evp_sign(w->key, EVP_sha256(), msg, (size_t)n, sig, sizeof(sig), &sig_len) &&
		    evp_verify(w->pub, EVP_sha256(), msg, (size_t)n, sig, sig_len))
			w->ok++;
		else
			w->bad++;
		if (i % 4 == 0) {
			if (mt_key_sign(w->k, msg, (size_t)n, rs) != MT_OK ||
			    mt_sig_verify(mt_key_public(w->k), NULL, 0, msg, (size_t)n, rs,
			                  sizeof(rs)) != MT_OK)
				w->bad++;
		}
	}
	ERR_clear_error();
	return NULL;
}

/* Meanwhile, another user of the same token: open a third key by URI,
 * sign once, free it — the registry and the session's object searches run
 * while the workers sign. */
struct opener {
	const char *uri;
	unsigned ok;
	unsigned bad;
};

static void *opener_run(void *arg)
{
	struct opener *o = arg;
	static const uint8_t msg[] = "opened and closed";
	for (unsigned i = 0; i < THREAD_SIGNS / 4; i++) {
		struct mt_key *k = NULL;
		uint8_t rs[MT_SIG_LEN];
		if (mt_key_open(o->uri, &k) == MT_OK &&
		    mt_key_sign(k, msg, sizeof(msg) - 1, rs) == MT_OK &&
		    mt_sig_verify(mt_key_public(k), NULL, 0, msg, sizeof(msg) - 1, rs,
		                  sizeof(rs)) == MT_OK)
			o->ok++;
		else
			o->bad++;
		mt_key_free(k);
	}
	return NULL;
}

static void run_workers(struct worker *w, size_t n, struct opener *o)
{
	pthread_t th[4], oth;
	assert_true(n <= 4);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	if (o != NULL)
		assert_int_equal(pthread_create(&oth, NULL, opener_run, o), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	if (o != NULL) {
		assert_int_equal(pthread_join(oth, NULL), 0);
		assert_int_equal(o->bad, 0);
		assert_int_equal(o->ok, THREAD_SIGNS / 4);
	}
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(w[i].bad, 0);
		assert_int_equal(w[i].ok, THREAD_SIGNS);
	}
}

static void test_threads_share_token(void **state)
{
	struct fx *fx = *state;
	SKIP_IF_NO_TOKEN(fx);
	char ua[1024], ub[1024], uc[1024];
	token_uri(fx, "tls-a", ua, sizeof(ua));
	token_uri(fx, "tls-b", ub, sizeof(ub));
	token_uri(fx, "other", uc, sizeof(uc));
	struct mt_key *ga = gen(ua, MT_KEY_P256, MT_KEY_ROLE_SIGN);
	struct mt_key *gb = gen(ub, MT_KEY_P256, MT_KEY_ROLE_SIGN);
	struct mt_key *gc = gen(uc, MT_KEY_P256, MT_KEY_ROLE_SIGN);
	mt_key_free(gc);
	mt_key_free(gb);
	mt_key_free(ga);
	/* Two URIs naming the same token: one shared, logged-in session. */
	struct mt_key *a = NULL, *b = NULL;
	assert_int_equal(mt_key_open(ua, &a), MT_OK);
	assert_int_equal(mt_key_open(ub, &b), MT_OK);

	struct worker w[2];
	memset(w, 0, sizeof(w));
	w[0] = (struct worker){a, evp_of(a), evp_of_pub(mt_key_public(a)), 0, 0, 0};
	w[1] = (struct worker){b, evp_of(b), evp_of_pub(mt_key_public(b)), 1, 0, 0};
	struct opener o = {uc, 0, 0};
	run_workers(w, 2, &o);
	for (size_t i = 0; i < 2; i++) {
		EVP_PKEY_free(w[i].key);
		EVP_PKEY_free(w[i].pub);
	}

	/* Two threads on one EVP_PKEY: one key serving several TLS threads. */
	EVP_PKEY *shared = evp_of(a);
	EVP_PKEY *pub = evp_of_pub(mt_key_public(a));
	w[0] = (struct worker){a, shared, pub, 2, 0, 0};
	w[1] = (struct worker){a, shared, pub, 3, 0, 0};
	run_workers(w, 2, NULL);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(shared);

	mt_key_free(b);
	mt_key_free(a);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
	        T(test_token_p256_signs), T(test_token_key_in_tls), T(test_file_key_is_itself),
	        T(test_file_key_in_tls),  T(test_refusals),         T(test_threads_share_token),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
