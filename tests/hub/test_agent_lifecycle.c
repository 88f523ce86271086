/*
 * test_agent_lifecycle.c — the device agent's certificate life against the
 * real hub service (issue 3 part 5; protocol §2).
 *
 * Set-up (once): `medtrust init`, `mfg init`, `mfg make --soft` of three
 * devices, `trust add-manufacturer`, `manifest import` through the real
 * CLI ($MEDTRUST_BIN), then the hub's HTTPS onboarding service in this
 * process (mt_hub + mt_https, as medtrustd runs it).  The agent's clock is
 * a parameter of mt_agent_step, so the tests move it, not the machine's:
 *
 *   first start       → enrols with the birth certificate, onboards (ldev,
 *                       kx, op.pem, hub-ca.pem, bundle.json exist; bundle
 *                       names the device; registry active, epoch 1)
 *   before 2/3        → does nothing
 *   at 2/3 of life    → renews with simplereenroll (new certificate, same
 *                       ldev key; the old one stays valid until it expires)
 *   after expiry      → falls back to a fresh enrolment with the birth
 *                       certificate; the hub supersedes (revokes) the
 *                       earlier certificates
 *   revoked device    → the next pass is refused (MT_ERR_REFUSED, HTTP 403)
 *                       and nothing is stored
 *
 * And threat D03, from the attacker's side: someone who captured a
 * device's enrolment (its birth certificate is public, its CSR too) replays
 * it without the birth key — a TLS client presenting the real birth
 * certificate whose CertificateVerify is signed by another key.  The
 * handshake must fail, no certificate be issued, the registry unchanged.
 */
#define _POSIX_C_SOURCE 200809L
/* The D03 attacker below needs an EC_KEY_METHOD (a key whose public half
 * is the victim's and whose signatures are the attacker's): deprecated in
 * OpenSSL 3.0, still the only way to put such a key under a TLS client. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "agent.h"
#include "hub.h"
#include "https.h"

static char base[256], conf[512], lot[512], hub_url[64], hub_ca[512];
static const char *bin;
static struct mt_hub *hub;
static struct mt_https *srv;
static SSL_CTX *ctx;

static int run(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4,
               const char *a5, const char *a6, const char *a7, const char *a8, const char *a9,
               const char *a10)
{
	const char *argv[] = {bin, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, NULL};
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
			_exit(127);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int setup(void **state)
{
	char p[3][512], root[600], man[600];

	(void)state;
	bin = getenv("MEDTRUST_BIN");
	if (bin == NULL)
		return -1;
	setenv("MEDTRUST_KEY_PASSPHRASE", "agent-lifecycle-test", 1);
	snprintf(base, sizeof base, "/tmp/mt-agent-XXXXXX");
	if (mkdtemp(base) == NULL)
		return -1;
	snprintf(p[0], sizeof p[0], "%s/hub", base);
	snprintf(p[1], sizeof p[1], "%s/mfg", base);
	snprintf(lot, sizeof lot, "%s/lot", base);
	snprintf(conf, sizeof conf, "%s/hub/medtrust.conf", base);
	snprintf(root, sizeof root, "%s/root.pem", p[1]);
	snprintf(man, sizeof man, "%s/manifest.cose", lot);
	if (run("init", p[0], NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) != 0 ||
	    run("mfg", "init", p[1], "--name", "Lifecycle Medical", NULL, NULL, NULL, NULL, NULL,
	        NULL) != 0 ||
	    run("mfg", "make", "--mfg", p[1], "--count", "3", "--class", "monitor", "--out", lot,
	        "--soft") != 0 ||
	    run("trust", "add-manufacturer", root, "-c", conf, NULL, NULL, NULL, NULL, NULL,
	        NULL) != 0 ||
	    run("manifest", "import", man, "-c", conf, NULL, NULL, NULL, NULL, NULL, NULL) != 0)
		return -1;
	{
		char why[256] = "";
		struct mt_https_opts o = {0};

		if (mt_hub_open(conf, &hub, why, sizeof why) != MT_OK) {
			fprintf(stderr, "hub: %s\n", why);
			return -1;
		}
		if (mt_hub_ssl_ctx(hub, &ctx, why, sizeof why) != MT_OK)
			return -1;
		o.ssl_ctx = ctx;
	o.on_refuse = mt_hub_refused;
		o.threads = 1;
		if (mt_https_start(&o, mt_hub_handle, hub, &srv) != MT_OK)
			return -1;
	}
	snprintf(hub_url, sizeof hub_url, "https://127.0.0.1:%u", (unsigned)mt_https_port(srv));
	snprintf(hub_ca, sizeof hub_ca, "%s/hub/pki/ca.pem", base);
	return 0;
}

static int teardown(void **state)
{
	char cmd[400];

	(void)state;
	mt_https_stop(srv);
	SSL_CTX_free(ctx);
	mt_hub_close(hub);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

static void device(int i, struct mt_agent_device *d)
{
	char dir[600], why[256] = "";

	snprintf(dir, sizeof dir, "%s/lifecycle-medical-%06d", lot, i);
	assert_int_equal(mt_agent_device_load(dir, d, why, sizeof why), MT_OK);
}

static bool exists(const struct mt_agent_device *d, const char *name)
{
	char p[PATH_MAX + 64];
	struct stat st;

	snprintf(p, sizeof p, "%s/%s", d->dir, name);
	return stat(p, &st) == 0;
}

static void op_serial(const struct mt_agent_device *d, char out[MT_REG_CERT_SERIAL_MAX],
                      int64_t *nb, int64_t *na)
{
	char p[PATH_MAX + 16], pem[8192];
	struct mt_cert *c = NULL;
	FILE *f;
	size_t n;

	snprintf(p, sizeof p, "%s/op.pem", d->dir);
	f = fopen(p, "rb");
	assert_non_null(f);
	n = fread(pem, 1, sizeof pem - 1, f);
	fclose(f);
	assert_int_equal(mt_cert_from_pem(pem, n, &c), MT_OK);
	assert_int_equal(mt_registry_cert_serial_hex(c, out), MT_OK);
	assert_int_equal(mt_cert_validity(c, nb, na), MT_OK);
	mt_cert_free(c);
}

static void first_start_renewal_and_fallback(void **state)
{
	struct mt_agent_opts o = {hub_url, hub_ca, 30};
	struct mt_agent_device d;
	struct mt_device_rec rec;
	struct mt_est_result r;
	struct mt_cert_rec cr;
	enum mt_agent_action did;
	char s1[MT_REG_CERT_SERIAL_MAX], s2[MT_REG_CERT_SERIAL_MAX], s3[MT_REG_CERT_SERIAL_MAX];
	int64_t nb, na, next = 0, now = mt_deploy_now();
	struct mt_registry *reg = mt_hub_deploy(hub)->reg;

	(void)state;
	device(1, &d);
	assert_false(exists(&d, "op.pem"));
	/* First start: enrol with the birth certificate and onboard. */
	assert_int_equal(mt_agent_step(&d, &o, now, false, &did, &next, &r), MT_OK);
	assert_int_equal(did, MT_AGENT_ENROLLED);
	assert_true(exists(&d, "op.pem") && exists(&d, "bundle.json") && exists(&d, "hub-ca.pem") &&
	            exists(&d, "ldev.key") && exists(&d, "kx.key"));
	op_serial(&d, s1, &nb, &na);
	assert_true(next == nb + (na - nb) * 2 / 3);
	assert_true(na - nb >= 30 * 86400 && na - nb <= 30 * 86400 + 600);
	assert_int_equal(mt_registry_device(reg, d.serial, &rec), MT_OK);
	assert_int_equal(rec.status, MT_DEV_ACTIVE);
	assert_int_equal(rec.epoch, 1);
	assert_string_equal(rec.cert_serial, s1);

	/* Before the 2/3 point: nothing to do. */
	assert_int_equal(mt_agent_step(&d, &o, next - 10, false, &did, NULL, &r), MT_OK);
	assert_int_equal(did, MT_AGENT_NOTHING);
	op_serial(&d, s2, &nb, &na);
	assert_string_equal(s1, s2);

	/* At 2/3: simplereenroll with the operational certificate. */
	assert_int_equal(mt_agent_step(&d, &o, next, false, &did, NULL, &r), MT_OK);
	assert_int_equal(did, MT_AGENT_RENEWED);
	op_serial(&d, s2, &nb, &na);
	assert_string_not_equal(s1, s2);
	assert_int_equal(mt_registry_cert(reg, s1, &cr), MT_OK);
	assert_int_equal(cr.revoked_at, 0); /* renewal does not revoke the old one */
	assert_int_equal(mt_registry_device(reg, d.serial, &rec), MT_OK);
	assert_string_equal(rec.cert_serial, s2);
	assert_int_equal(rec.epoch, 1); /* same kx key, same epoch */

	/* Expired while switched off: fresh enrolment with the birth cert. */
	assert_int_equal(mt_agent_step(&d, &o, na + 1, false, &did, NULL, &r), MT_OK);
	assert_int_equal(did, MT_AGENT_ENROLLED);
	op_serial(&d, s3, &nb, &na);
	assert_string_not_equal(s3, s2);
	assert_int_equal(mt_registry_cert(reg, s2, &cr), MT_OK);
	assert_true(cr.revoked_at > 0); /* superseded by the fresh enrolment */
	assert_int_equal(cr.reason, MT_PKI_REASON_SUPERSEDED);
	assert_int_equal(mt_registry_cert(reg, s3, &cr), MT_OK);
	assert_int_equal(cr.revoked_at, 0);
}

static void revoked_device_is_refused(void **state)
{
	struct mt_agent_opts o = {hub_url, hub_ca, 30};
	struct mt_agent_device d;
	struct mt_est_result r;
	enum mt_agent_action did;
	char s1[MT_REG_CERT_SERIAL_MAX], s2[MT_REG_CERT_SERIAL_MAX];
	int64_t nb, na, next = 0;

	(void)state;
	device(2, &d);
	assert_int_equal(mt_agent_step(&d, &o, mt_deploy_now(), false, &did, &next, &r), MT_OK);
	assert_int_equal(did, MT_AGENT_ENROLLED);
	op_serial(&d, s1, &nb, &na);
	assert_int_equal(run("device", "revoke", d.serial, "--reason", "keyCompromise", "-c", conf,
	                     NULL, NULL, NULL, NULL),
	                 0);
	/* Renewal with the revoked certificate: refused, nothing stored. */
	assert_int_equal(mt_agent_step(&d, &o, mt_deploy_now(), true, &did, NULL, &r),
	                 MT_ERR_REFUSED);
	assert_int_equal(r.http_status, 403);
	assert_non_null(strstr(r.why, "revoked"));
	/* Fresh enrolment with the birth certificate: refused too (D06). */
	assert_int_equal(mt_agent_step(&d, &o, na + 1, false, &did, NULL, &r), MT_ERR_REFUSED);
	assert_int_equal(r.http_status, 403);
	assert_non_null(strstr(r.why, "revoked"));
	op_serial(&d, s2, &nb, &na);
	assert_string_equal(s1, s2);
}

static void B08_hub_not_under_the_pinned_ca_refused(void **state)
{
	struct mt_agent_opts o = {hub_url, NULL, 10};
	struct mt_agent_device d;
	struct mt_est_result r;
	enum mt_agent_action did;
	char other[600];

	(void)state;
	/* The manufacturer's root is a CA, but not the hub's: the agent must
	 * refuse the hub's TLS certificate (threat B08). */
	snprintf(other, sizeof other, "%s/mfg/root.pem", base);
	o.hub_ca = other;
	device(3, &d);
	assert_int_equal(mt_agent_step(&d, &o, mt_deploy_now(), false, &did, NULL, &r), MT_ERR_IO);
	assert_int_equal(r.http_status, 0);
	assert_false(exists(&d, "op.pem"));
}

/* The CRL is re-signed before it expires: at half its life medtrustd's
 * periodic work signs a new one (a higher number, a later nextUpdate), and
 * not again until the next half-life. */
static void crl_renewed_before_it_expires(void **state)
{
	struct mt_registry *reg = mt_hub_deploy(hub)->reg;
	int64_t now = mt_deploy_now(), next0 = 0, next1 = 0, next2 = 0;
	bool signed_crl = false;

	(void)state;
	assert_int_equal(mt_hub_tick(hub, now, &signed_crl), MT_OK);
	assert_int_equal(mt_registry_crl_next_update(reg, &next0), MT_OK);
	assert_true(next0 > now + 3 * 86400); /* fresh: 7 days, or signed just now */
	/* Two days later: still more than half its life left, nothing to do. */
	assert_int_equal(mt_hub_tick(hub, next0 - 5 * 86400, &signed_crl), MT_OK);
	assert_false(signed_crl);
	/* Four days on: under half left, a new CRL. */
	assert_int_equal(mt_hub_tick(hub, next0 - 3 * 86400 + 1, &signed_crl), MT_OK);
	assert_true(signed_crl);
	assert_int_equal(mt_registry_crl_next_update(reg, &next1), MT_OK);
	assert_true(next1 > next0);
	assert_int_equal(mt_hub_tick(hub, next0 - 3 * 86400 + 2, &signed_crl), MT_OK);
	assert_false(signed_crl);
	assert_int_equal(mt_registry_crl_next_update(reg, &next2), MT_OK);
	assert_true(next2 == next1);
}

/* ---- D03: the attacker's key ------------------------------------------ */

static EC_KEY *attacker_key;

static ECDSA_SIG *attacker_sign(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
                                const BIGNUM *r, EC_KEY *eckey)
{
	(void)kinv;
	(void)r;
	(void)eckey;
	return ECDSA_do_sign(dgst, dlen, attacker_key); /* not the birth key */
}

static void D03_replayed_enrolment_without_the_birth_key_refused(void **state)
{
	struct mt_agent_device d;
	struct mt_device_rec before, after;
	struct mt_key *ldev = NULL;
	EC_KEY_METHOD *meth = NULL;
	EC_KEY *victim = NULL;
	EVP_PKEY *fake = EVP_PKEY_new();
	X509 *birth = NULL;
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	FILE *f;
	uint8_t csr[1024], raw[32];
	size_t csr_len = 0;
	char req[4096], b64[1600], answer[512] = "";
	struct sockaddr_in sa;
	int fd, n, got = 0, connected;

	(void)state;
	device(3, &d);
	assert_int_equal(mt_registry_device(mt_hub_deploy(hub)->reg, d.serial, &before), MT_OK);
	/* The captured request: the device's CSR for an ldev key. */
	memset(raw, 0x5a, sizeof raw);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, raw, 32, &ldev), MT_OK);
	assert_int_equal(mt_pki_csr_create(ldev, d.serial, csr, sizeof csr, &csr_len), MT_OK);
	EVP_EncodeBlock((unsigned char *)b64, csr, (int)csr_len);
	n = snprintf(req, sizeof req,
	             "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	             "Content-Type: application/pkcs10\r\nContent-Length: %zu\r\n"
	             "Connection: close\r\n\r\n%s",
	             strlen(b64), b64);
	assert_true(n > 0 && (size_t)n < sizeof req);

	/* The public birth certificate, with a key that is the victim's in
	 * public and the attacker's in signing. */
	f = fopen(d.birth_cert, "rb");
	assert_non_null(f);
	birth = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(birth);
	attacker_key = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	assert_int_equal(EC_KEY_generate_key(attacker_key), 1);
	victim = EC_KEY_dup(EVP_PKEY_get0_EC_KEY(X509_get0_pubkey(birth)));
	meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
	{
		int (*sign)(int, const unsigned char *, int, unsigned char *, unsigned int *,
		            const BIGNUM *, const BIGNUM *, EC_KEY *) = NULL;
		int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;

		EC_KEY_METHOD_get_sign(meth, &sign, &sign_setup, NULL);
		EC_KEY_METHOD_set_sign(meth, sign, sign_setup, attacker_sign);
	}
	assert_int_equal(EC_KEY_set_method(victim, meth), 1);
	assert_int_equal(EVP_PKEY_assign_EC_KEY(fake, victim), 1);
	assert_int_equal(SSL_CTX_use_certificate(cctx, birth), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(cctx, fake), 1); /* the public halves match */
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	assert_int_equal(SSL_CTX_load_verify_locations(cctx, hub_ca, NULL), 1);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(mt_https_port(srv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ssl = SSL_new(cctx);
	SSL_set_fd(ssl, fd);
	connected = SSL_connect(ssl) == 1;
	if (connected && SSL_write(ssl, req, n) == n) {
		for (;;) { /* TLS 1.3: the server's alert arrives here */
			int k = SSL_read(ssl, answer + got, (int)sizeof answer - 1 - got);

			if (k <= 0)
				break;
			got += k;
		}
	}
	answer[got] = '\0';
	ERR_clear_error();
	/* No HTTP answer at all: the handshake failed at the hub. */
	assert_int_equal(got, 0);
	assert_int_equal(mt_registry_device(mt_hub_deploy(hub)->reg, d.serial, &after), MT_OK);
	assert_int_equal(after.status, before.status);
	assert_string_equal(after.cert_serial, before.cert_serial);

	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(cctx);
	EVP_PKEY_free(fake);
	EC_KEY_METHOD_free(meth);
	EC_KEY_free(attacker_key);
	X509_free(birth);
	mt_key_free(ldev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(first_start_renewal_and_fallback),
	        cmocka_unit_test(revoked_device_is_refused),
	        cmocka_unit_test(B08_hub_not_under_the_pinned_ca_refused),
	        cmocka_unit_test(D03_replayed_enrolment_without_the_birth_key_refused),
	        cmocka_unit_test(crl_renewed_before_it_expires),
	};

	if (getenv("MEDTRUST_BIN") == NULL)
		return 77;
	/* A peer closing mid-write (the hub refusing the D03 attacker) is an
	 * ordinary event for a network client, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
