/*
 * test_https.c — the hub's HTTPS server (src/hub/https.h): what reaches
 * the handler, what never does, and the TLS policy (protocol §2 and §8;
 * threats B09, B12, D10).
 *
 * The client side is OpenSSL driven by hand in this file: a blocking
 * socket, SSL_connect, a raw HTTP/1.1 request written byte for byte and
 * the answer parsed here.  Nothing of the server library is used to talk
 * to the server, so a mistake in it cannot hide itself, and the tests can
 * send what no well-behaved client would (garbage for a ClientHello, a
 * 100 KB certificate, a chain twenty deep, TLS 1.1, a CBC suite, a
 * renegotiation).
 *
 * Keys are software keys: each is made by OpenSSL (an EVP_PKEY, which the
 * TLS side needs) and imported into the key store as raw bytes
 * (mt_key_import_raw), so that mt_pki issues the certificates through the
 * key store exactly as the hub will, and the server test is independent of
 * the token bridge (mt_key_evp).  One CA issues the server's certificate
 * (TLS_SERVER for 127.0.0.1), the client's (OPERATIONAL), and a line of
 * nineteen sub-CAs under which leaves sit at the depths the B12 tests want.
 *
 * A refusal is proved two ways where it can be: the client fails, and the
 * same client succeeds against a permissive server built from the same
 * certificate and key (so the client was able, and the policy refused it),
 * and the handler's call count does not move.
 *
 * test_load prints the request rates it sees (full handshakes each).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "https.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_pki.h"

#define N_SUB 19 /* sub-CAs in the deep line */
#define ANSWER_MAX (256 * 1024)
#define IO_TIMEOUT_S 10

/* ------------------------------------------------------------ keys, certs */

struct soft {
	struct mt_key *k;
	EVP_PKEY *evp;
};

static void soft_new(struct soft *s)
{
	uint8_t priv[32];
	BIGNUM *bn = NULL;
	s->evp = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(s->evp);
	assert_int_equal(EVP_PKEY_get_bn_param(s->evp, OSSL_PKEY_PARAM_PRIV_KEY, &bn), 1);
	assert_int_equal(BN_bn2binpad(bn, priv, 32), 32);
	BN_clear_free(bn);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, priv, 32, &s->k), MT_OK);
	mt_wipe(priv, sizeof priv);
}

static void soft_free(struct soft *s)
{
	mt_key_free(s->k);
	EVP_PKEY_free(s->evp);
	memset(s, 0, sizeof *s);
}

static struct mt_cert *issue(struct soft *ca, const struct mt_cert *ca_cert, struct soft *subj,
                             const struct mt_pki_leaf *l)
{
	struct mt_cert *c = NULL;
	enum mt_err e = mt_pki_issue(ca->k, ca_cert, mt_key_public(subj->k), l, &c);
	if (e != MT_OK)
		fail_msg("mt_pki_issue: %s", mt_err_str(e));
	return c;
}

static X509 *x509_of(const struct mt_cert *c)
{
	size_t len = 0;
	const unsigned char *p = mt_cert_der(c, &len);
	X509 *x = d2i_X509(NULL, &p, (long)len);
	assert_non_null(x);
	return x;
}

static void append_pem(FILE *f, const struct mt_cert *c)
{
	char pem[8192];
	size_t len = 0;
	assert_int_equal(mt_cert_pem(c, pem, sizeof pem, &len), MT_OK);
	assert_int_equal(fwrite(pem, 1, len, f), len);
}

/* A self-signed certificate for `key` carrying an opaque extension of
 * `pad` bytes: a Certificate message far over MT_HTTPS_CERT_LIST_MAX. */
static X509 *big_cert(EVP_PKEY *key, size_t pad)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.4.1.55555.1", 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext;
	unsigned char *fill = calloc(1, pad);
	assert_non_null(x);
	assert_non_null(n);
	assert_non_null(oid);
	assert_non_null(os);
	assert_non_null(fill);
	assert_int_equal(ASN1_OCTET_STRING_set(os, fill, (int)pad), 1);
	ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, os);
	assert_non_null(ext);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 42), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                                            (const unsigned char *)"big", -1, -1, 0),
	                 1);
	assert_int_equal(X509_set_subject_name(x, n), 1);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(oid);
	X509_NAME_free(n);
	free(fill);
	return x;
}

/* ------------------------------------------------------------ the handler */

/* What the handler saw last, and how often it was called. */
struct seen {
	pthread_mutex_t mu;
	unsigned calls;
	char method[16];
	char path[256];
	char query[256];
	int has_query;
	char ctype[128];
	int has_ctype;
	char auth[256];
	int has_auth;
	uint8_t *body;
	size_t body_len;
	int body_nul; /* body[body_len] was NUL */
	size_t n_peer;
	uint8_t *peer[MT_HTTPS_PEER_MAX];
	size_t peer_len[MT_HTTPS_PEER_MAX];
	char source[MT_HTTPS_SOURCE_MAX];
	uint16_t source_port;
};

static void copy_str(char *dst, size_t cap, const char *src, int *has)
{
	if (has != NULL)
		*has = src != NULL;
	snprintf(dst, cap, "%s", src ? src : "");
}

static void seen_clear_locked(struct seen *s)
{
	free(s->body);
	s->body = NULL;
	for (size_t i = 0; i < MT_HTTPS_PEER_MAX; i++) {
		free(s->peer[i]);
		s->peer[i] = NULL;
	}
	s->n_peer = 0;
}

static unsigned seen_calls(struct seen *s)
{
	pthread_mutex_lock(&s->mu);
	unsigned n = s->calls;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* Make what the last handler call recorded visible to this thread.  The
 * tests read it afterwards without the lock (the handler has returned
 * before its answer is sent, and no other call runs meanwhile), so a failed
 * assertion cannot leave the lock held and hang the next test. */
static void seen_sync(struct seen *s)
{
	pthread_mutex_lock(&s->mu);
	pthread_mutex_unlock(&s->mu);
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	if (d != NULL && n > 0)
		memcpy(d, p, n);
	return d;
}

/* Paths: /echo answers the body back; /status0 leaves status 0;
 * /badheader names an invalid extra header; /crlf puts CR LF in the
 * Content-Type; anything else says "hello". */
static void handler(void *arg, const struct mt_https_req *rq, struct mt_https_resp *rs)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->mu);
	s->calls++;
	seen_clear_locked(s);
	copy_str(s->method, sizeof s->method, rq->method, NULL);
	copy_str(s->path, sizeof s->path, rq->path, NULL);
	copy_str(s->query, sizeof s->query, rq->query, &s->has_query);
	copy_str(s->ctype, sizeof s->ctype, rq->content_type, &s->has_ctype);
	copy_str(s->auth, sizeof s->auth, rq->authorization, &s->has_auth);
	s->body = dup_bytes(rq->body, rq->body_len);
	s->body_len = rq->body_len;
	s->body_nul = rq->body != NULL && rq->body[rq->body_len] == 0;
	s->n_peer = rq->n_peer;
	for (size_t i = 0; i < rq->n_peer && i < MT_HTTPS_PEER_MAX; i++) {
		s->peer[i] = dup_bytes(rq->peer_der[i], rq->peer_len[i]);
		s->peer_len[i] = rq->peer_len[i];
	}
	copy_str(s->source, sizeof s->source, rq->source, NULL);
	s->source_port = rq->source_port;
	pthread_mutex_unlock(&s->mu);

	if (strcmp(rq->path, "/echo") == 0) {
		rs->status = 200;
		rs->content_type = "application/x-test";
		rs->body = dup_bytes(rq->body, rq->body_len);
		rs->body_len = rq->body_len;
		rs->extra_header_name = "X-Extra";
		rs->extra_header_value = "yes";
	} else if (strcmp(rq->path, "/status0") == 0) {
		rs->body = dup_bytes("x", 1);
		rs->body_len = 1;
	} else if (strcmp(rq->path, "/badheader") == 0) {
		rs->status = 200;
		rs->body = dup_bytes("nope", 4);
		rs->body_len = 4;
		rs->extra_header_name = "Bad Name";
		rs->extra_header_value = "x";
	} else if (strcmp(rq->path, "/crlf") == 0) {
		rs->status = 200;
		rs->content_type = "text/plain\r\nX-Injected: 1";
		rs->body = dup_bytes("nope", 4);
		rs->body_len = 4;
	} else {
		rs->status = 200;
		rs->content_type = "text/plain; charset=utf-8";
		rs->body = dup_bytes("hello", 5);
		rs->body_len = 5;
	}
}

/* ------------------------------------------------------------ fixture */

static struct {
	char dir[64];
	char srv_pem[128];
	struct soft ca, srv, cli, sub[N_SUB];
	struct mt_cert *ca_cert, *srv_cert, *cli_cert, *sub_cert[N_SUB];
	/* leaf_at[k]: the client's key certified by sub[k] */
	struct mt_cert *leaf_at[N_SUB];
	X509 *x_ca, *x_cli, *x_sub[N_SUB], *x_leaf_at[N_SUB];
	SSL_CTX *srv_ctx;
	struct seen seen;
} F;

static int group_setup(void **state)
{
	(void)state;
	struct mt_pki_ca_opts cao = {.subject = "CN=test CA,O=medtrust", .path_len = -1};
	const char *ip[] = {"127.0.0.1"};
	struct mt_pki_leaf srv = {
	        .profile = MT_PKI_TLS_SERVER, .subject = "CN=hub", .ip = ip, .n_ip = 1};
	struct mt_pki_leaf cli = {.profile = MT_PKI_OPERATIONAL, .id = "dev-1"};
	FILE *f;

	pthread_mutex_init(&F.seen.mu, NULL);
	snprintf(F.dir, sizeof F.dir, "/tmp/mt-https-XXXXXX");
	assert_non_null(mkdtemp(F.dir));
	snprintf(F.srv_pem, sizeof F.srv_pem, "%s/server.pem", F.dir);

	soft_new(&F.ca);
	soft_new(&F.srv);
	soft_new(&F.cli);
	assert_int_equal(mt_pki_ca_create(F.ca.k, &cao, &F.ca_cert), MT_OK);
	F.srv_cert = issue(&F.ca, F.ca_cert, &F.srv, &srv);
	F.cli_cert = issue(&F.ca, F.ca_cert, &F.cli, &cli);
	for (int i = 0; i < N_SUB; i++) {
		char subj[64];
		struct mt_pki_leaf l = {.profile = MT_PKI_SUB_CA, .subject = subj, .path_len = -1};
		snprintf(subj, sizeof subj, "CN=sub %d", i);
		soft_new(&F.sub[i]);
		F.sub_cert[i] = issue(i ? &F.sub[i - 1] : &F.ca, i ? F.sub_cert[i - 1] : F.ca_cert,
		                      &F.sub[i], &l);
		F.x_sub[i] = x509_of(F.sub_cert[i]);
		F.leaf_at[i] = issue(&F.sub[i], F.sub_cert[i], &F.cli, &cli);
		F.x_leaf_at[i] = x509_of(F.leaf_at[i]);
	}
	F.x_ca = x509_of(F.ca_cert);
	F.x_cli = x509_of(F.cli_cert);

	/* The server's chain file: leaf first, then the CA. */
	f = fopen(F.srv_pem, "w");
	assert_non_null(f);
	append_pem(f, F.srv_cert);
	append_pem(f, F.ca_cert);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(mt_https_ssl_ctx(F.srv_pem, F.srv.evp, &F.srv_ctx), MT_OK);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	char p[128];
	SSL_CTX_free(F.srv_ctx);
	for (int i = 0; i < N_SUB; i++) {
		X509_free(F.x_sub[i]);
		X509_free(F.x_leaf_at[i]);
		mt_cert_free(F.sub_cert[i]);
		mt_cert_free(F.leaf_at[i]);
		soft_free(&F.sub[i]);
	}
	X509_free(F.x_ca);
	X509_free(F.x_cli);
	mt_cert_free(F.ca_cert);
	mt_cert_free(F.srv_cert);
	mt_cert_free(F.cli_cert);
	soft_free(&F.ca);
	soft_free(&F.srv);
	soft_free(&F.cli);
	pthread_mutex_lock(&F.seen.mu);
	seen_clear_locked(&F.seen);
	pthread_mutex_unlock(&F.seen.mu);
	pthread_mutex_destroy(&F.seen.mu);
	snprintf(p, sizeof p, "%s/garbage.pem", F.dir);
	(void)unlink(p);
	(void)unlink(F.srv_pem);
	(void)rmdir(F.dir);
	return 0;
}

static struct mt_https *start_conns(SSL_CTX *ctx, unsigned threads, size_t body_max,
                                    unsigned idle_s, unsigned max_conns)
{
	char err[256];
	struct mt_https_opts o = {.addr = "127.0.0.1",
	                          .ssl_ctx = ctx,
	                          .threads = threads,
	                          .body_max = body_max,
	                          .idle_timeout_s = idle_s,
	                          .max_conns = max_conns,
	                          .err = err,
	                          .err_cap = sizeof err};
	struct mt_https *s = NULL;
	enum mt_err e = mt_https_start(&o, handler, &F.seen, &s);
	if (e != MT_OK)
		fail_msg("mt_https_start: %s: %s", mt_err_str(e), err);
	assert_int_not_equal(mt_https_port(s), 0);
	return s;
}

static struct mt_https *start_with(SSL_CTX *ctx, unsigned threads, size_t body_max, unsigned idle_s)
{
	return start_conns(ctx, threads, body_max, idle_s, 0);
}

static struct mt_https *start(void)
{
	return start_with(F.srv_ctx, 2, 0, 0);
}

/* A server context that allows everything: the control for refusals. */
static SSL_CTX *permissive_ctx(void)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	assert_non_null(c);
	assert_int_equal(SSL_CTX_set_min_proto_version(c, TLS1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_cipher_list(c, "ALL:COMPLEMENTOFALL:@SECLEVEL=0"), 1);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(c, F.srv_pem), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(c, F.srv.evp), 1);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(c, NULL, NULL);
	return c;
}

/* ------------------------------------------------------------ the client */

struct cli_cfg {
	int min_ver, max_ver; /* 0 = OpenSSL's defaults */
	const char *ciphers;  /* TLS 1.2 and below; NULL = default */
	X509 *cert;           /* client certificate, or NULL */
	X509 *const *chain;   /* sent after it */
	size_t n_chain;
};

static SSL_CTX *cli_ctx(const struct cli_cfg *c)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return NULL;
	if (c != NULL && c->min_ver)
		SSL_CTX_set_min_proto_version(ctx, c->min_ver);
	if (c != NULL && c->max_ver)
		SSL_CTX_set_max_proto_version(ctx, c->max_ver);
	if (c != NULL && c->ciphers && SSL_CTX_set_cipher_list(ctx, c->ciphers) != 1)
		goto fail;
	if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), F.x_ca) != 1)
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Send exactly the chain configured, nothing OpenSSL adds from the
	 * store. */
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	if (X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), "127.0.0.1") != 1)
		goto fail;
	if (c != NULL && c->cert != NULL) {
		if (SSL_CTX_use_certificate(ctx, c->cert) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, F.cli.evp) != 1)
			goto fail;
		for (size_t i = 0; i < c->n_chain; i++)
			if (SSL_CTX_add1_chain_cert(ctx, c->chain[i]) != 1)
				goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct conn {
	int fd;
	SSL *ssl;
};

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

/* 0: connected; -1: no TCP connection; -2: the handshake failed. */
static int conn_open(SSL_CTX *ctx, uint16_t port, struct conn *c)
{
	c->ssl = NULL;
	c->fd = tcp_connect(port);
	if (c->fd < 0)
		return -1;
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1) {
		ERR_clear_error();
		conn_close(c);
		return -2;
	}
	return 0;
}

static uint16_t conn_local_port(const struct conn *c)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	if (getsockname(c->fd, (struct sockaddr *)&a, &len) != 0)
		return 0;
	return ntohs(a.sin_port);
}

static int conn_write(struct conn *c, const void *p, size_t n)
{
	while (n > 0) {
		int w = SSL_write(c->ssl, p, n > 65536 ? 65536 : (int)n);
		if (w <= 0) {
			ERR_clear_error();
			return -1;
		}
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

struct answer {
	int status;
	char head[MT_HTTPS_HEADERS_MAX]; /* status line and headers */
	uint8_t *body;
	size_t body_len;
};

static void answer_free(struct answer *a)
{
	free(a->body);
	a->body = NULL;
}

/* The value of header `name` in a->head (first occurrence), or NULL. */
static const char *answer_header(const struct answer *a, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = strstr(a->head, "\r\n");
	while (p != NULL && p[2] != '\0') {
		const char *line = p + 2;
		const char *end = strstr(line, "\r\n");
		if (end == NULL)
			end = line + strlen(line);
		if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
		    line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(out, cap, "%.*s", (int)(end - v), v);
			return out;
		}
		p = *end ? end : NULL;
	}
	return NULL;
}

/* Read one answer; 0, or -1 when the connection failed or closed first. */
static int read_answer(struct conn *c, struct answer *a)
{
	uint8_t *buf = malloc(ANSWER_MAX);
	size_t have = 0, head_len = 0, need = 0;
	char cl[32];
	memset(a, 0, sizeof *a);
	if (buf == NULL)
		return -1;
	for (;;) {
		int r;
		if (head_len == 0) {
			for (size_t i = 3; i < have; i++)
				if (memcmp(buf + i - 3, "\r\n\r\n", 4) == 0) {
					head_len = i + 1;
					break;
				}
			if (head_len != 0) {
				char *end;
				unsigned long v;
				if (head_len >= sizeof a->head)
					goto fail;
				memcpy(a->head, buf, head_len);
				a->head[head_len] = '\0';
				if (strncmp(a->head, "HTTP/1.1 ", 9) != 0)
					goto fail;
				a->status = (int)strtol(a->head + 9, NULL, 10);
				if (answer_header(a, "Content-Length", cl, sizeof cl) == NULL)
					goto fail;
				errno = 0;
				v = strtoul(cl, &end, 10);
				if (errno != 0 || *end != '\0' || v > ANSWER_MAX - head_len)
					goto fail;
				need = head_len + v;
			}
		}
		if (head_len != 0 && have >= need)
			break;
		if (have == ANSWER_MAX)
			goto fail;
		r = SSL_read(c->ssl, buf + have, (int)(ANSWER_MAX - have));
		if (r <= 0) {
			ERR_clear_error();
			goto fail;
		}
		have += (size_t)r;
	}
	a->body_len = need - head_len;
	a->body = dup_bytes(buf + head_len, a->body_len);
	free(buf);
	return a->body ? 0 : -1;
fail:
	free(buf);
	return -1;
}

/* One request on a new connection.  0; -1/-2 as conn_open; -3: no answer. */
static int exchange(SSL_CTX *ctx, uint16_t port, const void *req, size_t len, struct answer *a,
                    uint16_t *local_port)
{
	struct conn c;
	int r = conn_open(ctx, port, &c);
	memset(a, 0, sizeof *a);
	if (r != 0)
		return r;
	if (local_port != NULL)
		*local_port = conn_local_port(&c);
	r = conn_write(&c, req, len) == 0 && read_answer(&c, a) == 0 ? 0 : -3;
	conn_close(&c);
	return r;
}

static int get(SSL_CTX *ctx, uint16_t port, const char *path, struct answer *a)
{
	char req[512];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
	return exchange(ctx, port, req, (size_t)n, a, NULL);
}

/* The client can reach the server: GET / answers 200 "hello". */
static void assert_serving(SSL_CTX *cli, uint16_t port)
{
	struct answer a;
	assert_int_equal(get(cli, port, "/", &a), 0);
	assert_int_equal(a.status, 200);
	assert_int_equal(a.body_len, 5);
	assert_memory_equal(a.body, "hello", 5);
	answer_free(&a);
}

/* Wait for the server to close c (EOF or error, not our timeout). */
static int dropped_within(struct conn *c, double max_s)
{
	uint8_t b[4096];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		ssize_t r = recv(c->fd, b, sizeof b, 0);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			break; /* reset: dropped too */
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 <= max_s;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ tests */

static void test_ssl_ctx_errors(void **state)
{
	(void)state;
	SSL_CTX *c = NULL;
	char p[128];
	FILE *f;
	struct soft other;

	assert_int_equal(mt_https_ssl_ctx(NULL, F.srv.evp, &c), MT_ERR_ARG);
	assert_int_equal(mt_https_ssl_ctx(F.srv_pem, NULL, &c), MT_ERR_ARG);
	assert_int_equal(mt_https_ssl_ctx(F.srv_pem, F.srv.evp, NULL), MT_ERR_ARG);
	snprintf(p, sizeof p, "%s/absent.pem", F.dir);
	assert_int_equal(mt_https_ssl_ctx(p, F.srv.evp, &c), MT_ERR_IO);
	snprintf(p, sizeof p, "%s/garbage.pem", F.dir);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("not a certificate\n", f);
	fclose(f);
	assert_int_equal(mt_https_ssl_ctx(p, F.srv.evp, &c), MT_ERR_PKI_FORMAT);
	/* A key that is not the certificate's. */
	soft_new(&other);
	assert_int_equal(mt_https_ssl_ctx(F.srv_pem, other.evp, &c), MT_ERR_CRYPTO);
	soft_free(&other);
	assert_null(c);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_start_errors(void **state)
{
	(void)state;
	char err[256];
	struct mt_https_opts o = {.ssl_ctx = F.srv_ctx, .err = err, .err_cap = sizeof err};
	struct mt_https *s = NULL;
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd;
	char want[64];

	assert_int_equal(mt_https_start(NULL, handler, NULL, &s), MT_ERR_ARG);
	assert_int_equal(mt_https_start(&o, NULL, NULL, &s), MT_ERR_ARG);
	assert_int_equal(mt_https_start(&o, handler, NULL, NULL), MT_ERR_ARG);
	o.addr = "localhost"; /* numeric only */
	assert_int_equal(mt_https_start(&o, handler, NULL, &s), MT_ERR_ARG);
	o.addr = "127.0.0.1";
	o.threads = MT_HTTPS_THREADS_MAX + 1;
	assert_int_equal(mt_https_start(&o, handler, NULL, &s), MT_ERR_ARG);
	o.threads = 0;
	o.body_max = MT_HTTPS_BODY_LIMIT + 1;
	assert_int_equal(mt_https_start(&o, handler, NULL, &s), MT_ERR_ARG);
	o.body_max = 0;

	/* A port held by a socket without SO_REUSEPORT: bind fails, and the
	 * message names the address. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	o.port = ntohs(a.sin_port);
	assert_int_equal(mt_https_start(&o, handler, NULL, &s), MT_ERR_IO);
	snprintf(want, sizeof want, "bind 127.0.0.1:%u: ", (unsigned)o.port);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error message \"%s\", want it to start \"%s\"", err, want);
	assert_null(s);
	close(fd);
	mt_https_stop(NULL);
}

/* A GET without a client certificate: the handler sees every field and
 * n_peer = 0; its answer arrives as set, with Cache-Control: no-store. */
static void test_get_no_client_cert(void **state)
{
	(void)state;
	struct mt_https *s = start();
	SSL_CTX *cli = cli_ctx(NULL);
	struct answer a;
	char v[256];
	uint16_t local = 0;
	const char req[] = "GET /a%20b/c?x=1&y=%41 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                   "Authorization: Bearer abc.def\r\n\r\n";
	unsigned before = seen_calls(&F.seen);

	assert_non_null(cli);
	assert_int_equal(exchange(cli, mt_https_port(s), req, sizeof req - 1, &a, &local), 0);
	assert_int_equal(seen_calls(&F.seen), before + 1);
	assert_int_equal(a.status, 200);
	assert_true(strncmp(a.head, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_int_equal(a.body_len, 5);
	assert_memory_equal(a.body, "hello", 5);
	assert_string_equal(answer_header(&a, "Content-Type", v, sizeof v),
	                    "text/plain; charset=utf-8");
	assert_string_equal(answer_header(&a, "Cache-Control", v, sizeof v), "no-store");
	assert_string_equal(answer_header(&a, "X-Content-Type-Options", v, sizeof v), "nosniff");
	answer_free(&a);

	seen_sync(&F.seen);
	assert_string_equal(F.seen.method, "GET");
	assert_string_equal(F.seen.path, "/a b/c");
	assert_true(F.seen.has_query);
	assert_string_equal(F.seen.query, "x=1&y=%41"); /* raw */
	assert_false(F.seen.has_ctype);
	assert_true(F.seen.has_auth);
	assert_string_equal(F.seen.auth, "Bearer abc.def");
	assert_int_equal(F.seen.body_len, 0);
	assert_true(F.seen.body_nul);
	assert_int_equal(F.seen.n_peer, 0);
	assert_string_equal(F.seen.source, "127.0.0.1");
	assert_int_equal(F.seen.source_port, local);

	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* The handler sees the client's certificates exactly as sent, leaf first,
 * with TLS 1.3 and with TLS 1.2. */
static void client_cert_case(int version)
{
	struct mt_https *s = start();
	X509 *chain[1] = {F.x_sub[0]};
	struct cli_cfg one = {.min_ver = version, .max_ver = version, .cert = F.x_cli};
	struct cli_cfg two = {.min_ver = version,
	                      .max_ver = version,
	                      .cert = F.x_leaf_at[0],
	                      .chain = chain,
	                      .n_chain = 1};
	SSL_CTX *c1 = cli_ctx(&one), *c2 = cli_ctx(&two);
	struct answer a;
	size_t len;
	const uint8_t *der;

	assert_non_null(c1);
	assert_non_null(c2);
	assert_int_equal(get(c1, mt_https_port(s), "/", &a), 0);
	assert_int_equal(a.status, 200);
	answer_free(&a);
	seen_sync(&F.seen);
	assert_int_equal(F.seen.n_peer, 1);
	der = mt_cert_der(F.cli_cert, &len);
	assert_int_equal(F.seen.peer_len[0], len);
	assert_memory_equal(F.seen.peer[0], der, len);

	assert_int_equal(get(c2, mt_https_port(s), "/", &a), 0);
	assert_int_equal(a.status, 200);
	answer_free(&a);
	seen_sync(&F.seen);
	assert_int_equal(F.seen.n_peer, 2);
	der = mt_cert_der(F.leaf_at[0], &len);
	assert_int_equal(F.seen.peer_len[0], len);
	assert_memory_equal(F.seen.peer[0], der, len);
	der = mt_cert_der(F.sub_cert[0], &len);
	assert_int_equal(F.seen.peer_len[1], len);
	assert_memory_equal(F.seen.peer[1], der, len);

	SSL_CTX_free(c1);
	SSL_CTX_free(c2);
	mt_https_stop(s);
}

static void test_client_cert_tls13(void **state)
{
	(void)state;
	client_cert_case(TLS1_3_VERSION);
}

static void test_client_cert_tls12(void **state)
{
	(void)state;
	client_cert_case(TLS1_2_VERSION);
}

/* A binary body with NUL bytes arrives exactly, NUL-terminated, and comes
 * back with the handler's Content-Type and extra header. */
static void test_post_binary_body(void **state)
{
	(void)state;
	struct mt_https *s = start();
	SSL_CTX *cli = cli_ctx(NULL);
	uint8_t body[3000];
	char head[256], v[64];
	uint8_t *req;
	size_t hl, n;
	struct answer a;
	uint64_t x = 0x9e3779b97f4a7c15u;

	assert_non_null(cli);
	for (size_t i = 0; i < sizeof body; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		body[i] = (i % 7 == 0) ? 0 : (uint8_t)x;
	}
	hl = (size_t)snprintf(head, sizeof head,
	                      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
	                      "application/cose\r\nContent-Length: %zu\r\n\r\n",
	                      sizeof body);
	n = hl + sizeof body;
	req = malloc(n);
	assert_non_null(req);
	memcpy(req, head, hl);
	memcpy(req + hl, body, sizeof body);
	assert_int_equal(exchange(cli, mt_https_port(s), req, n, &a, NULL), 0);
	free(req);
	assert_int_equal(a.status, 200);
	assert_int_equal(a.body_len, sizeof body);
	assert_memory_equal(a.body, body, sizeof body);
	assert_string_equal(answer_header(&a, "Content-Type", v, sizeof v), "application/x-test");
	assert_string_equal(answer_header(&a, "X-Extra", v, sizeof v), "yes");
	assert_string_equal(answer_header(&a, "Cache-Control", v, sizeof v), "no-store");
	answer_free(&a);

	seen_sync(&F.seen);
	assert_string_equal(F.seen.method, "POST");
	assert_string_equal(F.seen.path, "/echo");
	assert_false(F.seen.has_query);
	assert_string_equal(F.seen.ctype, "application/cose");
	assert_int_equal(F.seen.body_len, sizeof body);
	assert_memory_equal(F.seen.body, body, sizeof body);
	assert_true(F.seen.body_nul);

	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* Over body_max: 413 and the handler is not called, whether the length is
 * announced or the body comes chunked; exactly body_max goes through. */
static void test_body_too_large(void **state)
{
	(void)state;
	struct mt_https *s = start_with(F.srv_ctx, 2, 1024, 0);
	SSL_CTX *cli = cli_ctx(NULL);
	char req[4096];
	struct answer a;
	size_t hl;
	unsigned before;

	assert_non_null(cli);
	for (int over = 0; over <= 1; over++) {
		size_t bl = 1024 + (size_t)over;
		before = seen_calls(&F.seen);
		hl = (size_t)snprintf(
		        req, sizeof req,
		        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n", bl);
		memset(req + hl, 'b', bl);
		assert_int_equal(exchange(cli, mt_https_port(s), req, hl + bl, &a, NULL), 0);
		assert_int_equal(a.status, over ? 413 : 200);
		assert_int_equal(seen_calls(&F.seen), before + (over ? 0 : 1));
		answer_free(&a);
	}

	before = seen_calls(&F.seen);
	hl = (size_t)snprintf(req, sizeof req,
	                      "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	                      "7d0\r\n");
	memset(req + hl, 'c', 2000);
	hl += 2000;
	memcpy(req + hl, "\r\n0\r\n\r\n", 7);
	hl += 7;
	assert_int_equal(exchange(cli, mt_https_port(s), req, hl, &a, NULL), 0);
	assert_int_equal(a.status, 413);
	assert_int_equal(seen_calls(&F.seen), before);
	answer_free(&a);

	assert_serving(cli, mt_https_port(s));
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* Headers over MT_HTTPS_HEADERS_MAX: refused (an error status or the
 * connection dropped), never handed on; a long request line too. */
static void test_headers_too_large(void **state)
{
	(void)state;
	struct mt_https *s = start();
	SSL_CTX *cli = cli_ctx(NULL);
	size_t cap = 3 * MT_HTTPS_HEADERS_MAX, n;
	char *req = malloc(cap);
	struct answer a;
	unsigned before = seen_calls(&F.seen);
	int r;

	assert_non_null(cli);
	assert_non_null(req);
	n = (size_t)snprintf(req, cap, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
	memset(req + n, 'h', MT_HTTPS_HEADERS_MAX + 100);
	n += MT_HTTPS_HEADERS_MAX + 100;
	memcpy(req + n, "\r\n\r\n", 4);
	n += 4;
	r = exchange(cli, mt_https_port(s), req, n, &a, NULL);
	assert_true(r == -3 || (r == 0 && a.status >= 400));
	answer_free(&a);

	/* Many small headers adding up. */
	n = (size_t)snprintf(req, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; n + 64 < cap && i < 600; i++)
		n += (size_t)snprintf(req + n, cap - n, "X-H%d: %s\r\n", i, "vvvvvvvvvvvvvvvv");
	n += (size_t)snprintf(req + n, cap - n, "\r\n");
	r = exchange(cli, mt_https_port(s), req, n, &a, NULL);
	assert_true(r == -3 || (r == 0 && a.status >= 400));
	answer_free(&a);

	/* A request line longer than the bound. */
	memcpy(req, "GET /", 5);
	memset(req + 5, 'p', MT_HTTPS_HEADERS_MAX + 100);
	n = 5 + MT_HTTPS_HEADERS_MAX + 100;
	n += (size_t)snprintf(req + n, cap - n, " HTTP/1.1\r\nHost: h\r\n\r\n");
	r = exchange(cli, mt_https_port(s), req, n, &a, NULL);
	assert_true(r == -3 || (r == 0 && a.status >= 400));
	answer_free(&a);

	assert_int_equal(seen_calls(&F.seen), before);
	assert_serving(cli, mt_https_port(s));
	free(req);
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* Ambiguous or hostile requests the server answers itself: a header that
 * must be single given twice (Authorization, Content-Type, Content-Length,
 * Host), Content-Length with chunked encoding, %00 in the path, TRACE. */
static void test_refused_requests(void **state)
{
	(void)state;
	struct mt_https *s = start();
	SSL_CTX *cli = cli_ctx(NULL);
	struct answer a;
	unsigned before = seen_calls(&F.seen);
	const char dup_auth[] = "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a\r\n"
	                        "Authorization: Bearer b\r\n\r\n";
	const char dup_ct[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: a/b\r\n"
	                      "Content-Type: c/d\r\nContent-Length: 0\r\n\r\n";
	const char dup_cl[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
	                      "Content-Length: 40\r\n\r\nabcd";
	const char dup_host[] = "GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n";
	const char te_cl[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
	                     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
	const char nul_path[] = "GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n";
	const char trace[] = "TRACE / HTTP/1.1\r\nHost: h\r\n\r\n";

	assert_non_null(cli);
	assert_int_equal(exchange(cli, mt_https_port(s), dup_auth, sizeof dup_auth - 1, &a, NULL),
	                 0);
	assert_int_equal(a.status, 400);
	answer_free(&a);
	assert_int_equal(exchange(cli, mt_https_port(s), dup_ct, sizeof dup_ct - 1, &a, NULL), 0);
	assert_int_equal(a.status, 400);
	answer_free(&a);
	assert_int_equal(exchange(cli, mt_https_port(s), dup_cl, sizeof dup_cl - 1, &a, NULL), 0);
	assert_int_equal(a.status, 400);
	answer_free(&a);
	assert_int_equal(exchange(cli, mt_https_port(s), dup_host, sizeof dup_host - 1, &a, NULL),
	                 0);
	assert_int_equal(a.status, 400);
	answer_free(&a);
	assert_int_equal(exchange(cli, mt_https_port(s), te_cl, sizeof te_cl - 1, &a, NULL), 0);
	assert_int_equal(a.status, 400);
	answer_free(&a);
	assert_int_equal(exchange(cli, mt_https_port(s), nul_path, sizeof nul_path - 1, &a, NULL),
	                 0);
	assert_int_equal(a.status, 400);
	answer_free(&a);
	assert_int_equal(exchange(cli, mt_https_port(s), trace, sizeof trace - 1, &a, NULL), 0);
	assert_true(a.status == 405 || a.status == 501);
	answer_free(&a);
	assert_int_equal(seen_calls(&F.seen), before);
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* Answers the server will not send as given become 500. */
static void test_handler_answers(void **state)
{
	(void)state;
	struct mt_https *s = start();
	SSL_CTX *cli = cli_ctx(NULL);
	struct answer a;
	char v[64];

	assert_non_null(cli);
	assert_int_equal(get(cli, mt_https_port(s), "/status0", &a), 0);
	assert_int_equal(a.status, 500);
	answer_free(&a);
	assert_int_equal(get(cli, mt_https_port(s), "/badheader", &a), 0);
	assert_int_equal(a.status, 500);
	assert_null(answer_header(&a, "Bad Name", v, sizeof v));
	answer_free(&a);
	assert_int_equal(get(cli, mt_https_port(s), "/crlf", &a), 0);
	assert_int_equal(a.status, 500);
	assert_null(answer_header(&a, "X-Injected", v, sizeof v));
	answer_free(&a);
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* Several requests on one connection; the client's certificate is seen on
 * each. */
static void test_keepalive(void **state)
{
	(void)state;
	struct mt_https *s = start();
	struct cli_cfg cfg = {.cert = F.x_cli};
	SSL_CTX *cli = cli_ctx(&cfg);
	struct conn c;
	const char req[] = "GET /k HTTP/1.1\r\nHost: h\r\n\r\n";
	unsigned before = seen_calls(&F.seen);

	assert_non_null(cli);
	assert_int_equal(conn_open(cli, mt_https_port(s), &c), 0);
	for (int i = 0; i < 10; i++) {
		struct answer a;
		assert_int_equal(conn_write(&c, req, sizeof req - 1), 0);
		assert_int_equal(read_answer(&c, &a), 0);
		assert_int_equal(a.status, 200);
		answer_free(&a);
		seen_sync(&F.seen);
		assert_int_equal(F.seen.n_peer, 1);
	}
	assert_int_equal(seen_calls(&F.seen), before + 10);
	conn_close(&c);
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* B09: a client that can only do `cfg` fails against the policy and
 * succeeds against the permissive control server. */
static void refused_but_possible(const struct cli_cfg *cfg, const char *what)
{
	struct mt_https *s = start();
	SSL_CTX *perm_ctx = permissive_ctx();
	struct mt_https *perm = start_with(perm_ctx, 1, 0, 0);
	SSL_CTX *cli = cli_ctx(cfg);
	struct answer a;
	unsigned before;
	int r;

	assert_non_null(cli);
	r = get(cli, mt_https_port(perm), "/", &a);
	if (r != 0)
		fail_msg("%s: the control server refused the client too (%d)", what, r);
	answer_free(&a);
	before = seen_calls(&F.seen);
	r = get(cli, mt_https_port(s), "/", &a);
	answer_free(&a);
	if (r != -2)
		fail_msg("%s: the handshake was not refused (%d)", what, r);
	assert_int_equal(seen_calls(&F.seen), before);
	mt_https_stop(perm);
	SSL_CTX_free(perm_ctx);
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

static void test_B09_old_protocols_refused(void **state)
{
	(void)state;
	struct cli_cfg tls11 = {.min_ver = TLS1_VERSION,
	                        .max_ver = TLS1_1_VERSION,
	                        .ciphers = "DEFAULT:@SECLEVEL=0"};
	struct cli_cfg tls10 = {
	        .min_ver = TLS1_VERSION, .max_ver = TLS1_VERSION, .ciphers = "DEFAULT:@SECLEVEL=0"};
	refused_but_possible(&tls11, "TLS 1.1");
	refused_but_possible(&tls10, "TLS 1.0");
}

static void test_B09_weak_suites_refused(void **state)
{
	(void)state;
	struct cli_cfg cbc = {.min_ver = TLS1_2_VERSION,
	                      .max_ver = TLS1_2_VERSION,
	                      .ciphers = "ECDHE-ECDSA-AES128-SHA256"};
	struct cli_cfg cbc_sha1 = {.min_ver = TLS1_2_VERSION,
	                           .max_ver = TLS1_2_VERSION,
	                           .ciphers = "ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0"};
	struct cli_cfg anon = {.min_ver = TLS1_2_VERSION,
	                       .max_ver = TLS1_2_VERSION,
	                       .ciphers = "aNULL:@SECLEVEL=0"};
	struct cli_cfg aead12 = {.min_ver = TLS1_2_VERSION,
	                         .max_ver = TLS1_2_VERSION,
	                         .ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305"};
	struct mt_https *s;
	SSL_CTX *cli;
	struct conn c;

	refused_but_possible(&cbc, "ECDHE-ECDSA-AES128-SHA256");
	refused_but_possible(&cbc_sha1, "ECDHE-ECDSA-AES256-SHA");
	/* Anonymous suites: the control cannot certify the client's choice
	 * (the client does not check an anonymous server), so only the
	 * refusal is asserted. */
	s = start();
	cli = SSL_CTX_new(TLS_client_method());
	assert_non_null(cli);
	assert_int_equal(SSL_CTX_set_max_proto_version(cli, TLS1_2_VERSION), 1);
	assert_int_equal(SSL_CTX_set_cipher_list(cli, anon.ciphers), 1);
	assert_int_equal(conn_open(cli, mt_https_port(s), &c), -2);
	SSL_CTX_free(cli);

	/* And what is allowed is negotiated as such. */
	cli = cli_ctx(&aead12);
	assert_non_null(cli);
	assert_int_equal(conn_open(cli, mt_https_port(s), &c), 0);
	assert_string_equal(SSL_get_version(c.ssl), "TLSv1.2");
	assert_string_equal(SSL_get_cipher_name(c.ssl), "ECDHE-ECDSA-CHACHA20-POLY1305");
	conn_close(&c);
	SSL_CTX_free(cli);
	cli = cli_ctx(NULL);
	assert_non_null(cli);
	assert_int_equal(conn_open(cli, mt_https_port(s), &c), 0);
	assert_string_equal(SSL_get_version(c.ssl), "TLSv1.3");
	conn_close(&c);
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* A TLS 1.2 connection, one answer, a client-initiated renegotiation,
 * another answer: 1 when all of it worked.  *sess: the session (new). */
static int renegotiated(SSL_CTX *cli, uint16_t port, SSL_SESSION **sess)
{
	const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	struct conn c;
	struct answer a;
	int ok = 0;

	*sess = NULL;
	if (conn_open(cli, port, &c) != 0)
		return 0;
	if (conn_write(&c, req, sizeof req - 1) == 0 && read_answer(&c, &a) == 0) {
		answer_free(&a);
		*sess = SSL_get1_session(c.ssl);
		if (SSL_renegotiate(c.ssl) == 1 && SSL_do_handshake(c.ssl) == 1 &&
		    conn_write(&c, req, sizeof req - 1) == 0 && read_answer(&c, &a) == 0) {
			ok = a.status == 200;
			answer_free(&a);
		}
	}
	ERR_clear_error();
	conn_close(&c);
	return ok;
}

/* 1 when a new connection offering `sess` resumed it. */
static int resumed(SSL_CTX *cli, uint16_t port, SSL_SESSION *sess)
{
	struct conn c = {.ssl = NULL};
	int r = 0;
	c.fd = tcp_connect(port);
	if (c.fd < 0)
		return 0;
	c.ssl = SSL_new(cli);
	if (c.ssl != NULL && SSL_set_fd(c.ssl, c.fd) == 1 && SSL_set_session(c.ssl, sess) == 1 &&
	    SSL_connect(c.ssl) == 1)
		r = SSL_session_reused(c.ssl);
	ERR_clear_error();
	conn_close(&c);
	return r;
}

/* 1 when a TLS 1.3 exchange left the client a resumable session (a
 * ticket). */
static int tls13_ticket(SSL_CTX *cli, uint16_t port)
{
	const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	struct conn c;
	struct answer a;
	int r = 0;
	if (conn_open(cli, port, &c) != 0)
		return 0;
	if (conn_write(&c, req, sizeof req - 1) == 0 && read_answer(&c, &a) == 0) {
		SSL_SESSION *sess = SSL_get1_session(c.ssl);
		answer_free(&a);
		r = sess != NULL && SSL_session_reused(c.ssl) == 0 &&
		    SSL_SESSION_is_resumable(sess);
		SSL_SESSION_free(sess);
	}
	conn_close(&c);
	return r;
}

/* B09: a client-initiated renegotiation fails, a TLS 1.2 session is never
 * resumed and TLS 1.3 sends no ticket — each shown possible first against
 * the permissive control server (which allows renegotiation and keeps a
 * session cache). */
static void test_B09_no_renegotiation_no_resumption(void **state)
{
	(void)state;
	struct mt_https *s = start();
	SSL_CTX *perm_ctx = permissive_ctx();
	struct mt_https *perm;
	struct cli_cfg cfg = {.min_ver = TLS1_2_VERSION, .max_ver = TLS1_2_VERSION};
	SSL_CTX *cli12 = cli_ctx(&cfg), *cli13 = cli_ctx(NULL);
	SSL_SESSION *sess;
	unsigned before;

	SSL_CTX_set_options(perm_ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
	assert_int_equal(SSL_CTX_set_session_id_context(perm_ctx, (const unsigned char *)"t", 1),
	                 1);
	perm = start_with(perm_ctx, 1, 0, 0);
	assert_non_null(cli12);
	assert_non_null(cli13);

	assert_int_equal(renegotiated(cli12, mt_https_port(perm), &sess), 1);
	assert_non_null(sess);
	assert_int_equal(resumed(cli12, mt_https_port(perm), sess), 1);
	SSL_SESSION_free(sess);
	assert_int_equal(tls13_ticket(cli13, mt_https_port(perm)), 1);

	before = seen_calls(&F.seen);
	assert_int_equal(renegotiated(cli12, mt_https_port(s), &sess), 0);
	assert_int_equal(seen_calls(&F.seen), before + 1); /* the first answer only */
	assert_non_null(sess);
	assert_int_equal(resumed(cli12, mt_https_port(s), sess), 0);
	SSL_SESSION_free(sess);
	assert_int_equal(tls13_ticket(cli13, mt_https_port(s)), 0);

	mt_https_stop(perm);
	SSL_CTX_free(perm_ctx);
	SSL_CTX_free(cli12);
	SSL_CTX_free(cli13);
	mt_https_stop(s);
}

/* B12: at most MT_HTTPS_PEER_MAX certificates and MT_HTTPS_CERT_LIST_MAX
 * bytes; over either the handshake fails, and the server goes on. */
static void test_B12_oversized_chain(void **state)
{
	(void)state;
	struct mt_https *s = start();
	X509 *chain[N_SUB];
	struct answer a;
	SSL_CTX *cli;
	unsigned before;
	X509 *big;

	/* leaf_at[k] and sub[k], sub[k-1] ... sub[0]: k + 2 certificates. */
	for (int k = 0; k < N_SUB; k++)
		chain[k] = NULL;
	{
		int k = MT_HTTPS_PEER_MAX - 2; /* exactly the bound */
		struct cli_cfg cfg = {
		        .cert = F.x_leaf_at[k], .chain = chain, .n_chain = (size_t)k + 1};
		for (int i = 0; i <= k; i++)
			chain[i] = F.x_sub[k - i];
		cli = cli_ctx(&cfg);
		assert_non_null(cli);
		assert_int_equal(get(cli, mt_https_port(s), "/", &a), 0);
		assert_int_equal(a.status, 200);
		answer_free(&a);
		SSL_CTX_free(cli);
		seen_sync(&F.seen);
		assert_int_equal(F.seen.n_peer, MT_HTTPS_PEER_MAX);
		for (int i = 0; i < MT_HTTPS_PEER_MAX; i++) {
			size_t len;
			const uint8_t *der =
			        mt_cert_der(i == 0 ? F.leaf_at[k] : F.sub_cert[k - (i - 1)], &len);
			assert_int_equal(F.seen.peer_len[i], len);
			assert_memory_equal(F.seen.peer[i], der, len);
		}
	}
	for (int k = MT_HTTPS_PEER_MAX - 1; k < N_SUB; k += N_SUB - MT_HTTPS_PEER_MAX) {
		/* one over the bound, then twenty deep */
		struct cli_cfg cfg = {
		        .cert = F.x_leaf_at[k], .chain = chain, .n_chain = (size_t)k + 1};
		int r;
		for (int i = 0; i <= k; i++)
			chain[i] = F.x_sub[k - i];
		for (int version = TLS1_2_VERSION; version <= TLS1_3_VERSION; version++) {
			cfg.min_ver = cfg.max_ver = version;
			cli = cli_ctx(&cfg);
			assert_non_null(cli);
			before = seen_calls(&F.seen);
			r = get(cli, mt_https_port(s), "/", &a);
			answer_free(&a);
			/* TLS 1.3 clients finish before the server has read
			 * their certificate: the refusal comes with the answer. */
			if (r != -2 && r != -3)
				fail_msg("%d certificates, TLS %x: not refused (%d)", k + 2,
				         version, r);
			assert_int_equal(seen_calls(&F.seen), before);
			SSL_CTX_free(cli);
		}
	}

	/* A single 100 KB certificate. */
	big = big_cert(F.cli.evp, 100 * 1024);
	{
		struct cli_cfg cfg = {.cert = big};
		int r;
		cli = cli_ctx(&cfg);
		assert_non_null(cli);
		before = seen_calls(&F.seen);
		r = get(cli, mt_https_port(s), "/", &a);
		answer_free(&a);
		assert_true(r == -2 || r == -3);
		assert_int_equal(seen_calls(&F.seen), before);
		SSL_CTX_free(cli);
	}
	X509_free(big);

	cli = cli_ctx(NULL);
	assert_non_null(cli);
	assert_serving(cli, mt_https_port(s));
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* Garbage for a ClientHello (plain HTTP, random bytes) is dropped at
 * once; the server goes on serving. */
static void test_garbage_dropped(void **state)
{
	(void)state;
	struct mt_https *s = start();
	SSL_CTX *cli = cli_ctx(NULL);
	const char plain[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	uint8_t junk[600];
	unsigned before = seen_calls(&F.seen);
	struct conn c = {.ssl = NULL};
	uint64_t x = 88172645463325252u;

	for (size_t i = 0; i < sizeof junk; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		junk[i] = (uint8_t)x;
	}
	junk[0] = 0x16; /* looks like a handshake record, is not */
	junk[1] = 0x03;
	junk[2] = 0x01;

	c.fd = tcp_connect(mt_https_port(s));
	assert_true(c.fd >= 0);
	assert_int_equal(send(c.fd, plain, sizeof plain - 1, 0), (ssize_t)(sizeof plain - 1));
	assert_true(dropped_within(&c, 5.0));
	conn_close(&c);

	c.fd = tcp_connect(mt_https_port(s));
	assert_true(c.fd >= 0);
	assert_int_equal(send(c.fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
	assert_true(dropped_within(&c, 5.0));
	conn_close(&c);

	assert_int_equal(seen_calls(&F.seen), before);
	assert_non_null(cli);
	assert_serving(cli, mt_https_port(s));
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* D10 (slowloris): a connection that never completes its handshake is
 * dropped after the idle timeout. */
static void test_idle_handshake_dropped(void **state)
{
	(void)state;
	struct mt_https *s = start_with(F.srv_ctx, 1, 0, 1);
	struct conn c = {.ssl = NULL};
	double t0;

	c.fd = tcp_connect(mt_https_port(s));
	assert_true(c.fd >= 0);
	t0 = now_s();
	assert_int_equal(send(c.fd, "\x16\x03\x01", 3, 0), 3); /* a record header, then silence */
	assert_true(dropped_within(&c, 5.0));
	assert_true(now_s() - t0 >= 0.5);
	conn_close(&c);
	mt_https_stop(s);
}

/* D10: at max_conns open connections a worker stops accepting; the next
 * client waits (its handshake does not start) until one closes, then is
 * served. */
static void test_max_conns(void **state)
{
	(void)state;
	struct mt_https *s = start_conns(F.srv_ctx, 1, 0, 0, 2);
	SSL_CTX *cli = cli_ctx(NULL);
	struct conn c1, c2, c3;
	struct timeval short_tv = {.tv_usec = 300 * 1000};
	struct answer a;
	int ok = 0;

	assert_non_null(cli);
	assert_int_equal(conn_open(cli, mt_https_port(s), &c1), 0);
	assert_int_equal(conn_open(cli, mt_https_port(s), &c2), 0);
	/* The third gets a TCP connection (the backlog) but no ServerHello. */
	c3.fd = tcp_connect(mt_https_port(s));
	assert_true(c3.fd >= 0);
	assert_int_equal(setsockopt(c3.fd, SOL_SOCKET, SO_RCVTIMEO, &short_tv, sizeof short_tv), 0);
	c3.ssl = SSL_new(cli);
	assert_non_null(c3.ssl);
	assert_int_equal(SSL_set_fd(c3.ssl, c3.fd), 1);
	assert_true(SSL_connect(c3.ssl) <= 0);
	ERR_clear_error();
	conn_close(&c3);

	/* One closes: the worker accepts again. */
	conn_close(&c1);
	for (int i = 0; i < 40 && !ok; i++) {
		if (get(cli, mt_https_port(s), "/", &a) == 0 && a.status == 200)
			ok = 1;
		answer_free(&a);
	}
	assert_true(ok);
	conn_close(&c2);
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

struct load {
	SSL_CTX *cli;
	uint16_t port;
	int n;
	int ok;
};

static void *load_thread(void *arg)
{
	struct load *l = arg;
	for (int i = 0; i < l->n; i++) {
		struct answer a;
		if (get(l->cli, l->port, "/", &a) == 0 && a.status == 200 && a.body_len == 5)
			l->ok++;
		answer_free(&a);
	}
	return NULL;
}

/* threads = 2: 200 sequential requests, then 50 from 5 concurrent
 * clients, each on a new connection (a full handshake), all answered. */
static void test_load(void **state)
{
	(void)state;
	struct mt_https *s = start_with(F.srv_ctx, 2, 0, 0);
	struct cli_cfg cfg = {.cert = F.x_cli};
	SSL_CTX *cli = cli_ctx(&cfg);
	struct load one = {.cli = cli, .port = mt_https_port(s), .n = 200};
	struct load many[5];
	pthread_t th[5];
	unsigned before = seen_calls(&F.seen);
	double t0, t1, t2;
	int ok = 0;

	assert_non_null(cli);
	t0 = now_s();
	load_thread(&one);
	t1 = now_s();
	assert_int_equal(one.ok, 200);
	for (int i = 0; i < 5; i++) {
		many[i] = (struct load){.cli = cli, .port = mt_https_port(s), .n = 10};
		assert_int_equal(pthread_create(&th[i], NULL, load_thread, &many[i]), 0);
	}
	for (int i = 0; i < 5; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		ok += many[i].ok;
	}
	t2 = now_s();
	assert_int_equal(ok, 50);
	assert_int_equal(seen_calls(&F.seen), before + 250);
	print_message("test_load: 200 sequential in %.3f s (%.0f req/s), 50 concurrent in %.3f s "
	              "(%.0f req/s), each a full TLS 1.3 handshake with a client certificate\n",
	              t1 - t0, 200.0 / (t1 - t0), t2 - t1, 50.0 / (t2 - t1));
	SSL_CTX_free(cli);
	mt_https_stop(s);
}

/* mt_https_stop returns promptly with connections open (one idle after
 * its handshake, one that never started it), and drops them. */
static void test_stop_with_open_connections(void **state)
{
	(void)state;
	struct mt_https *s = start_with(F.srv_ctx, 2, 0, 0);
	SSL_CTX *cli = cli_ctx(NULL);
	struct conn tls, raw = {.ssl = NULL};
	const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	struct answer a;
	double t0, dt;
	uint8_t b[64];

	assert_non_null(cli);
	assert_int_equal(conn_open(cli, mt_https_port(s), &tls), 0);
	assert_int_equal(conn_write(&tls, req, sizeof req - 1), 0);
	assert_int_equal(read_answer(&tls, &a), 0); /* kept alive */
	answer_free(&a);
	raw.fd = tcp_connect(mt_https_port(s));
	assert_true(raw.fd >= 0);
	nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL); /* let it be accepted */

	t0 = now_s();
	mt_https_stop(s);
	dt = now_s() - t0;
	if (dt > 1.0)
		fail_msg("mt_https_stop took %.3f s", dt);
	assert_true(SSL_read(tls.ssl, b, sizeof b) <= 0);
	ERR_clear_error();
	assert_true(dropped_within(&raw, 2.0));
	conn_close(&tls);
	conn_close(&raw);
	SSL_CTX_free(cli);

	/* And at once after start, before any worker ran. */
	s = start_with(F.srv_ctx, 4, 0, 0);
	t0 = now_s();
	mt_https_stop(s);
	assert_true(now_s() - t0 < 1.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ssl_ctx_errors),
	        cmocka_unit_test(test_start_errors),
	        cmocka_unit_test(test_get_no_client_cert),
	        cmocka_unit_test(test_client_cert_tls13),
	        cmocka_unit_test(test_client_cert_tls12),
	        cmocka_unit_test(test_post_binary_body),
	        cmocka_unit_test(test_body_too_large),
	        cmocka_unit_test(test_headers_too_large),
	        cmocka_unit_test(test_refused_requests),
	        cmocka_unit_test(test_handler_answers),
	        cmocka_unit_test(test_keepalive),
	        cmocka_unit_test(test_B09_old_protocols_refused),
	        cmocka_unit_test(test_B09_weak_suites_refused),
	        cmocka_unit_test(test_B09_no_renegotiation_no_resumption),
	        cmocka_unit_test(test_B12_oversized_chain),
	        cmocka_unit_test(test_garbage_dropped),
	        cmocka_unit_test(test_idle_handshake_dropped),
	        cmocka_unit_test(test_max_conns),
	        cmocka_unit_test(test_load),
	        cmocka_unit_test(test_stop_with_open_connections),
	};
	int r;
	/* A client writing to a connection the server dropped must not die. */
	signal(SIGPIPE, SIG_IGN);
	if (getenv("MT_TEST_FILTER") != NULL) /* e.g. MT_TEST_FILTER=test_load */
		cmocka_set_test_filter(getenv("MT_TEST_FILTER"));
	r = cmocka_run_group_tests(tests, group_setup, group_teardown);
	libevent_global_shutdown();
	return r;
}
