/*
 * onboard.c — the onboarding benchmark and the 1,000-device end-to-end run
 * (`make bench-onboard`; tests/onboard/test_fleet.sh runs it as a test).
 *
 *   onboard [--devices N] [--clients T] [--hub-threads H] [--medtrust PATH]
 *           [--dir DIR] [--json]
 *
 * What it does, all real: `medtrust init` a deployment, `medtrust mfg
 * init` a manufacturer and `mfg make --soft` N devices (birth keys in
 * encrypted files), `trust add-manufacturer` and `manifest import` — the
 * set-up, timed apart.  Then it starts the hub's HTTPS onboarding service
 * in this process (mt_hub + mt_https, the code medtrustd runs, with the
 * hub's keys in its SoftHSM2 token) and T client threads that enrol every
 * device over TLS with its birth certificate (EST simpleenroll) and then
 * onboard it (/mt/v1/onboard with the new operational certificate and a kx
 * key).  Finally it reads the registry back and checks that every device
 * is active, holds the certificate it was given and is at key epoch 1.
 *
 * Figures: enrolments per second (phase 1: simpleenroll only) and
 * onboardings per second (phase 2), each over wall-clock time of the whole
 * phase.  Clients and hub share this machine's cores, so the figure is a
 * floor for a hub with its own machine.  What the client side does ahead
 * of the timed phases (so the figure is the exchange, not the device's
 * key generation): load each birth key, generate its ldev and kx keys in
 * memory, and build its CSR.  Goal (issue 3): ≥ 300 enrolments/s on the
 * 2-core reference machine.  Exit 0 when every device onboarded and the
 * registry agrees; 1 otherwise.  The verdict against the goal is printed,
 * not enforced (a noisy machine must not fail a test run).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/rand.h>

#include "agent.h"
#include "hub.h"
#include "https.h"
#include "medtrust/mt_est.h"
#include "medtrust/mt_keystore.h"

#define GOAL_PER_S 300.0

struct dev {
	char serial[MT_DEVICE_ID_MAX + 1];
	struct mt_cert *birth, *op;
	struct mt_key *idev, *ldev, *kx;
	uint8_t csr[1024];
	size_t csr_len;
	bool enrolled, onboarded;
};

static struct dev *devs;
static size_t n_devs;
static atomic_size_t next_dev;
static atomic_size_t failures;
static char hub_url[64], hub_ca[PATH_MAX];
static uint16_t hub_port;
static int phase;
static bool use_curl;          /* --client curl: the agent's libcurl client */
static SSL_CTX *client_ctx;    /* --client openssl: one context, an SSL per request */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(char *const argv[])
{
	int status;
	pid_t pid;

	fflush(NULL); /* nothing buffered may be written twice */
	pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- the lean client ------------------------------------------------------
 * One SSL_CTX for all devices (the hub's CA, TLS 1.2+, host check on
 * 127.0.0.1), each request a new connection and handshake with the
 * device's own certificate and key set on its SSL: what a device does, less
 * the per-connection SSL_CTX that libcurl builds (in OpenSSL 3.0 that alone
 * costs about as much as the handshake, and this machine's two cores are
 * shared by clients and hub). */

static bool client_ctx_init(void)
{
	client_ctx = SSL_CTX_new(TLS_client_method());
	return client_ctx != NULL && SSL_CTX_set_min_proto_version(client_ctx, TLS1_2_VERSION) == 1 &&
	       SSL_CTX_load_verify_locations(client_ctx, hub_ca, NULL) == 1 &&
	       (SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL), 1) &&
	       SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF) >= 0;
}

/* POST `body` to `path` as the device (cert, key); the answer's body (of at
 * most cap - 1 bytes) into out, NUL-terminated.  The HTTP status, or -1. */
static int lean_post(const char *path, const char *ctype, const char *body, const struct mt_cert *cert,
                     struct mt_key *key, char *out, size_t cap)
{
	struct sockaddr_in sa = {0};
	char req[4096], *buf = malloc(65536);
	const uint8_t *der;
	size_t der_len, got = 0;
	int fd = -1, one = 1, status = -1, n;
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	SSL *ssl = NULL;
	char *hdr_end;

	n = snprintf(req, sizeof req,
	             "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
	             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	             path, ctype, strlen(body));
	der = mt_cert_der(cert, &der_len);
	x = d2i_X509(NULL, &der, (long)der_len);
	if (buf == NULL || n <= 0 || (size_t)n >= sizeof req || x == NULL ||
	    mt_key_evp(key, &pkey) != MT_OK)
		goto out;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(hub_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		goto out;
	ssl = SSL_new(client_ctx);
	if (ssl == NULL || SSL_use_certificate(ssl, x) != 1 || SSL_use_PrivateKey(ssl, pkey) != 1 ||
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1") != 1 ||
	    SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1 || SSL_write(ssl, req, n) != n ||
	    SSL_write(ssl, body, (int)strlen(body)) != (int)strlen(body))
		goto out;
	for (;;) {
		int k = SSL_read(ssl, buf + got, (int)(65535 - got));

		if (k <= 0)
			break;
		got += (size_t)k;
	}
	buf[got] = '\0';
	hdr_end = strstr(buf, "\r\n\r\n");
	if (got < 12 || strncmp(buf, "HTTP/1.1 ", 9) != 0 || hdr_end == NULL)
		goto out;
	status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	(void)snprintf(out, cap, "%s", hdr_end + 4);
out:
	ERR_clear_error();
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	EVP_PKEY_free(pkey);
	X509_free(x);
	free(buf);
	return status;
}

static enum mt_err lean_enroll(struct dev *d, struct mt_est_result *r)
{
	char b64[2048], *answer = malloc(65536);
	uint8_t der[8192];
	size_t len = 0, n = 0;
	struct mt_cert *certs[2] = {0};
	int st;
	enum mt_err e = MT_ERR_REFUSED;

	memset(r, 0, sizeof *r);
	if (answer == NULL)
		return MT_ERR_NOMEM;
	EVP_EncodeBlock((unsigned char *)b64, d->csr, (int)d->csr_len);
	st = lean_post("/.well-known/est/simpleenroll", "application/pkcs10", b64, d->birth, d->idev,
	               answer, 65536);
	r->http_status = st;
	if (st == 200 && mt_est_b64_decode((const uint8_t *)answer, strlen(answer), der, sizeof der,
	                                   &len) == MT_OK &&
	    mt_pki_p7_parse(der, len, certs, 2, &n) == MT_OK && n == 1) {
		d->op = certs[0];
		e = MT_OK;
	} else {
		(void)snprintf(r->why, sizeof r->why, "simpleenroll: HTTP %d: %.200s", st, answer);
	}
	free(answer);
	return e;
}

static enum mt_err lean_onboard(struct dev *d, const uint8_t *spki, size_t len, char **bundle,
                                struct mt_est_result *r)
{
	char b64[2 * MT_SPKI_MAX], body[64 + 2 * MT_SPKI_MAX], *answer = malloc(65536);
	int st;

	memset(r, 0, sizeof *r);
	if (answer == NULL)
		return MT_ERR_NOMEM;
	EVP_EncodeBlock((unsigned char *)b64, spki, (int)len);
	(void)snprintf(body, sizeof body, "{\"kx\":\"%s\"}", b64);
	st = lean_post("/mt/v1/onboard", "application/json", body, d->op, d->ldev, answer, 65536);
	r->http_status = st;
	if (st != 200) {
		(void)snprintf(r->why, sizeof r->why, "onboard: HTTP %d: %.200s", st, answer);
		free(answer);
		return MT_ERR_REFUSED;
	}
	*bundle = answer;
	return MT_OK;
}

static void *client(void *arg)
{
	(void)arg;
	for (;;) {
		size_t i = atomic_fetch_add(&next_dev, 1);
		struct mt_est_result r;
		struct dev *d;
		enum mt_err e;

		if (i >= n_devs)
			return NULL;
		d = &devs[i];
		if (phase == 1) {
			struct mt_est_client c = {hub_url, hub_ca, d->birth, d->idev, 30};

			e = use_curl ? mt_est_enroll(&c, false, d->csr, d->csr_len, &d->op, &r)
			             : lean_enroll(d, &r);
			d->enrolled = e == MT_OK;
		} else {
			struct mt_est_client c = {hub_url, hub_ca, d->op, d->ldev, 30};
			uint8_t spki[MT_SPKI_MAX];
			size_t len = 0;
			char *bundle = NULL;

			e = d->op == NULL ? MT_ERR_ARG
			                  : mt_pubkey_spki(mt_key_public(d->kx), spki, sizeof spki, &len);
			if (e == MT_OK)
				e = use_curl ? mt_est_onboard(&c, spki, len, &bundle, &r)
				             : lean_onboard(d, spki, len, &bundle, &r);
			d->onboarded = e == MT_OK && strstr(bundle, "\"epoch\":1") != NULL;
			free(bundle);
		}
		if (e != MT_OK && atomic_fetch_add(&failures, 1) < 5)
			fprintf(stderr, "onboard: %s: %s\n", d->serial, r.why[0] ? r.why : mt_err_str(e));
	}
}

static double run_phase(int which, unsigned clients)
{
	pthread_t th[64];
	double t0;

	phase = which;
	atomic_store(&next_dev, 0);
	t0 = now_s();
	for (unsigned i = 0; i < clients; i++)
		pthread_create(&th[i], NULL, client, NULL);
	for (unsigned i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	return now_s() - t0;
}

static struct mt_key *mem_key(void)
{
	uint8_t d[32];
	struct mt_key *k = NULL;

	for (int tries = 0; tries < 8 && k == NULL; tries++) {
		if (RAND_bytes(d, sizeof d) != 1)
			break;
		d[0] &= 0x7f; /* below the group order */
		if (mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, d, sizeof d, &k) != MT_OK)
			k = NULL;
	}
	OPENSSL_cleanse(d, sizeof d);
	return k;
}

static int load_devices(const char *lot)
{
	struct dirent **names = NULL;
	int n = scandir(lot, &names, NULL, alphasort);

	if (n < 0)
		return -1;
	devs = calloc((size_t)n, sizeof *devs);
	for (int i = 0; i < n; i++) {
		char dir[PATH_MAX], why[256];
		struct mt_agent_device ad;
		struct dev *d = &devs[n_devs];
		char pem[8192];
		FILE *f;
		size_t len;

		if (names[i]->d_name[0] == '.' || strcmp(names[i]->d_name, "manifest.cose") == 0 ||
		    (size_t)snprintf(dir, sizeof dir, "%s/%s", lot, names[i]->d_name) >= sizeof dir ||
		    mt_agent_device_load(dir, &ad, why, sizeof why) != MT_OK) {
			free(names[i]);
			continue;
		}
		free(names[i]);
		f = fopen(ad.birth_cert, "rb");
		len = f ? fread(pem, 1, sizeof pem - 1, f) : 0;
		if (f)
			fclose(f);
		pem[len] = '\0';
		(void)snprintf(d->serial, sizeof d->serial, "%s", ad.serial);
		d->ldev = mem_key();
		d->kx = mem_key();
		if (mt_cert_from_pem(pem, len, &d->birth) != MT_OK ||
		    mt_key_open(ad.idev_uri, &d->idev) != MT_OK || d->ldev == NULL || d->kx == NULL ||
		    mt_pki_csr_create(d->ldev, d->serial, d->csr, sizeof d->csr, &d->csr_len) != MT_OK) {
			fprintf(stderr, "onboard: cannot load device %s\n", dir);
			return -1;
		}
		n_devs++;
	}
	free(names);
	return 0;
}

struct check {
	size_t active, right_cert, epoch1;
};

static enum mt_err count_dev(const struct mt_device_rec *r, void *arg)
{
	struct check *c = arg;

	c->active += r->status == MT_DEV_ACTIVE;
	c->epoch1 += r->epoch == 1;
	for (size_t i = 0; i < n_devs; i++) {
		char cs[MT_REG_CERT_SERIAL_MAX];

		if (strcmp(devs[i].serial, r->serial) == 0 && devs[i].op != NULL &&
		    mt_registry_cert_serial_hex(devs[i].op, cs) == MT_OK &&
		    strcmp(cs, r->cert_serial) == 0)
			c->right_cert++;
	}
	return MT_OK;
}

int main(int argc, char **argv)
{
	unsigned long n = 1000, clients = 4, hub_threads = 2;
	const char *medtrust = "build/medtrust", *base = NULL;
	bool json = false;
	char dir[PATH_MAX] = "", path[5][PATH_MAX], count[24], why[512] = "";
	struct mt_hub *hub = NULL;
	struct mt_https *srv = NULL;
	struct mt_https_opts o = {0};
	SSL_CTX *ctx = NULL;
	struct check chk = {0};
	double t0, t_setup, t_enrol, t_onboard;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--json") == 0) {
			json = true;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "usage: onboard [--devices N] [--clients T] [--hub-threads H] "
			                "[--medtrust PATH] [--dir DIR] [--client openssl|curl] [--json]\n");
			return 64;
		}
		i++;
		if (strcmp(a, "--devices") == 0)
			n = strtoul(v, NULL, 10);
		else if (strcmp(a, "--clients") == 0)
			clients = strtoul(v, NULL, 10);
		else if (strcmp(a, "--hub-threads") == 0)
			hub_threads = strtoul(v, NULL, 10);
		else if (strcmp(a, "--medtrust") == 0)
			medtrust = v;
		else if (strcmp(a, "--dir") == 0)
			base = v;
		else if (strcmp(a, "--client") == 0 && (strcmp(v, "curl") == 0 || strcmp(v, "openssl") == 0))
			use_curl = strcmp(v, "curl") == 0;
		else
			return 64;
	}
	if (n < 1 || n > 100000 || clients < 1 || clients > 64 || hub_threads < 1 ||
	    hub_threads > 16)
		return 64;
	signal(SIGPIPE, SIG_IGN); /* peers closing mid-write are ordinary here */
	setenv("MEDTRUST_KEY_PASSPHRASE", "bench-onboard-passphrase", 1);
	(void)snprintf(dir, sizeof dir, "%s/mt-onboard-XXXXXX", base ? base : "/tmp");
	if (mkdtemp(dir) == NULL)
		return 1;
	(void)snprintf(path[0], sizeof path[0], "%s/hub", dir);
	(void)snprintf(path[1], sizeof path[1], "%s/mfg", dir);
	(void)snprintf(path[2], sizeof path[2], "%s/lot", dir);
	(void)snprintf(path[3], sizeof path[3], "%s/hub/medtrust.conf", dir);
	(void)snprintf(count, sizeof count, "%lu", n);

	t0 = now_s();
	{
		char *init[] = {(char *)medtrust, "init", path[0], NULL};
		char *mfg[] = {(char *)medtrust, "mfg", "init", path[1], "--name", "Bench Medical",
		               NULL};
		char *make[] = {(char *)medtrust, "mfg", "make", "--mfg", path[1], "--count", count,
		                "--class", "wearable", "--out", path[2], "--soft", NULL};
		char root[PATH_MAX], man[PATH_MAX];
		char *trust[] = {(char *)medtrust, "trust", "add-manufacturer", root, "-c", path[3],
		                 NULL};
		char *import[] = {(char *)medtrust, "manifest", "import", man, "-c", path[3], NULL};
		FILE *f;

		if ((size_t)snprintf(root, sizeof root, "%s/root.pem", path[1]) >= sizeof root ||
		    (size_t)snprintf(man, sizeof man, "%s/manifest.cose", path[2]) >= sizeof man)
			goto out;
		if (run(init) != 0 || run(mfg) != 0 || run(make) != 0) {
			fprintf(stderr, "onboard: set-up failed (is --medtrust %s right?)\n", medtrust);
			goto out;
		}
		/* The benchmark's one client address sends every request. */
		f = fopen(path[3], "a");
		if (f == NULL || fputs("est_rate 1000000\nest_burst 1000000\n", f) < 0 ||
		    fclose(f) != 0)
			goto out;
		if (run(trust) != 0 || run(import) != 0) {
			fprintf(stderr, "onboard: trust or manifest import failed\n");
			goto out;
		}
	}
	if (load_devices(path[2]) != 0 || n_devs != n) {
		fprintf(stderr, "onboard: loaded %zu of %lu devices\n", n_devs, n);
		goto out;
	}
	t_setup = now_s() - t0;

	if (mt_hub_open(path[3], &hub, why, sizeof why) != MT_OK) {
		fprintf(stderr, "onboard: hub: %s\n", why);
		goto out;
	}
	if (mt_hub_ssl_ctx(hub, &ctx, why, sizeof why) != MT_OK) {
		fprintf(stderr, "onboard: %s\n", why);
		goto out;
	}
	o.addr = "127.0.0.1";
	o.ssl_ctx = ctx;
	o.on_refuse = mt_hub_refused;
	o.threads = (unsigned)hub_threads;
	if (mt_https_start(&o, mt_hub_handle, hub, &srv) != MT_OK)
		goto out;
	hub_port = mt_https_port(srv);
	(void)snprintf(hub_url, sizeof hub_url, "https://127.0.0.1:%u", (unsigned)hub_port);
	if ((size_t)snprintf(hub_ca, sizeof hub_ca, "%s/pki/ca.pem", path[0]) >= sizeof hub_ca)
		goto out;

	if (!use_curl && !client_ctx_init()) {
		fprintf(stderr, "onboard: client TLS set-up failed\n");
		goto out;
	}
	t_enrol = run_phase(1, (unsigned)clients);
	t_onboard = run_phase(2, (unsigned)clients);
	mt_https_stop(srv);
	srv = NULL;

	if (mt_registry_devices(mt_hub_deploy(hub)->reg, 0, count_dev, &chk) != MT_OK)
		goto out;
	{
		size_t enrolled = 0, onboarded = 0;
		double rate = (double)n / t_enrol, orate = (double)n / t_onboard;

		for (size_t i = 0; i < n_devs; i++) {
			enrolled += devs[i].enrolled;
			onboarded += devs[i].onboarded;
		}
		if (json)
			printf("{\"devices\":%lu,\"clients\":%lu,\"client\":\"%s\",\"hub_threads\":%lu,"
			       "\"setup_s\":%.2f,"
			       "\"enrolled\":%zu,\"enrol_s\":%.3f,\"enrolments_per_s\":%.1f,"
			       "\"onboarded\":%zu,\"onboard_s\":%.3f,\"onboardings_per_s\":%.1f,"
			       "\"registry_active\":%zu,\"registry_cert_matches\":%zu,\"goal_per_s\":%.0f,"
			       "\"goal_met\":%s}\n",
			       n, clients, use_curl ? "curl" : "openssl", hub_threads, t_setup, enrolled,
			       t_enrol, rate, onboarded,
			       t_onboard, orate, chk.active, chk.right_cert, GOAL_PER_S,
			       rate >= GOAL_PER_S ? "true" : "false");
		else
			printf("onboard: %lu soft-key devices, %lu client threads (%s), %lu hub threads\n"
			       "  set-up (init, mfg make, trust, manifest import, load keys): %.1f s\n"
			       "  enrol (EST simpleenroll over mTLS): %zu/%lu in %.2f s = %.0f "
			       "enrolments/s (goal >= %.0f/s: %s)\n"
			       "  onboard (/mt/v1/onboard, kx + bundle): %zu/%lu in %.2f s = %.0f/s\n"
			       "  registry: %zu active, %zu with the certificate the device holds, "
			       "%zu at epoch 1\n",
			       n, clients, use_curl ? "libcurl" : "OpenSSL", hub_threads, t_setup, enrolled,
			       n, t_enrol, rate, GOAL_PER_S,
			       rate >= GOAL_PER_S ? "met" : "NOT met", onboarded, n, t_onboard, orate,
			       chk.active, chk.right_cert, chk.epoch1);
		rc = enrolled == n && onboarded == n && chk.active == n && chk.right_cert == n &&
		                     chk.epoch1 == n
		             ? 0
		             : 1;
	}
out:
	mt_https_stop(srv);
	SSL_CTX_free(client_ctx);
	SSL_CTX_free(ctx);
	mt_hub_close(hub);
	for (size_t i = 0; i < n_devs; i++) {
		mt_cert_free(devs[i].birth);
		mt_cert_free(devs[i].op);
		mt_key_free(devs[i].idev);
		mt_key_free(devs[i].ldev);
		mt_key_free(devs[i].kx);
	}
	free(devs);
	if (dir[0] && base == NULL) {
		char *rm[] = {"/bin/rm", "-rf", dir, NULL};

		(void)run(rm);
	}
	return rc;
}
