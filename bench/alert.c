/*
 * alert.c — a device's fast packet to the alarm on the console's live
 * stream, under 1,000 devices of routine vitals (`make bench-alert`,
 * build/bench/alert).
 *
 *   alert [--devices N] [--rate P] [--alerts A] [--alert-rate F]
 *         [--sender-threads T] [--ingest-workers W] [--goal-ms MS]
 *         [--unassigned] [--varying-vitals] [--medtrust PATH] [--dir DIR]
 *         [--keep]
 *
 * The deployment is bench/ingest's (bench_common.h): medtrust init with its
 * own mosquitto and plugin, N soft-key devices onboarded over EST by the
 * agent's code, each on its own MQTT 5 connection over mutual TLS.  Then:
 *   - every device is assigned to a patient (N patients on wards of 40
 *     beds) in the readings store, as `medtrust patient add/assign` would
 *     (--unassigned: none, so the engine scores nothing);
 *   - a console user is made with `medtrust user add --role biomed` (it
 *     sees every ward) and medtrustd is restarted with ingest;
 *   - this program signs in over HTTPS as a browser does (GET /login: the
 *     csrf field and the mt_login_csrf cookie; POST /login; the forced
 *     password change at /password; the mt_session cookie of the last
 *     Set-Cookie) and opens GET /api/stream (Server-Sent Events) on a
 *     thread of its own, a plain OpenSSL socket that verifies the hub's
 *     certificate against the deployment's pki/ca.pem;
 *   - warm-up: reading 0 of every device (the hub's key cache) and a few
 *     fast packets (the alarm path's first use), not measured;
 *   - the run: every device sends vitals on a plan (packet k due at
 *     t0 + k / P, device k mod N: P = N gives one reading per device per
 *     second) and, from 2 s in, A fast packets at F per second, each from
 *     another device and with its own alert code (2000 + j: one alarm per
 *     fast packet, never de-duplicated into an earlier one), sealed ahead
 *     like the vitals (ts = the planned send time) and published on the
 *     device's own connection to mt/v1/<id>/up/alert by the sender thread
 *     that serves that device, among its vitals.
 * Latency of fast packet j: t0 = CLOCK_MONOTONIC just before its publish
 * (libmosquitto writes it at once), t1 = when the stream's reader has
 * read the bytes holding its `event: alarm` with phase "start" (matched by
 * device and cond "device:<code>").  The event's raised_ms (the hub's
 * arrival time of the packet) and at_ms (the engine's publication on the
 * stream) split it into publish → hub arrival, arrival → published
 * (verify, group commit, engine queue, the alarm's row and journal entry
 * in one fsync'ed transaction, audit) and published → read (the stream's
 * worker, TLS); those are wall-clock milliseconds, converted with one
 * CLOCK_REALTIME − CLOCK_MONOTONIC offset taken at start.
 * Beside it: the background rate the hub committed (its SIGUSR1 counter
 * line, first to last sample of the run), the ingest's own latency
 * figures (SIGUSR2 before the run), the engine's counters and the
 * deepest queue sampled, and CPU time of medtrustd, mosquitto and this
 * process from /proc.
 * The goal: p99 ≤ 50 ms from publish to the alarm on the stream.  PASS
 * when every fast packet's alarm arrived and p99 ≤ the goal.
 * Exit status: 0 when every fast packet raised its alarm on the stream
 * and the hub stored every vitals packet (whatever the verdict), 1
 * otherwise, 64 on a usage error.  Not part of ctest.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench_common.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_util.h"

#define CODE_BASE 2000u   /* fast packet j carries alert code CODE_BASE + j */
#define WARM_CODE 1900u   /* the warm-up's fast packets */
#define WARM_ALERTS 5
#define LEAD_S 2          /* background before the first fast packet */
#define TAIL_S 1          /* background after the last */
#define BEDS_PER_WARD 40
#define CONSOLE_USER "bench-console"
#define CONSOLE_PW "bench-Alert-console-Passw0rd!"
#define HTTP_MAX (256 * 1024)
#define SAMPLE_MS 250

/* One fast packet's figures. */
struct alert_rec {
	struct pkt *p;             /* its packet (sent_ns after the job) */
	_Atomic uint64_t t1_ns;    /* read on the stream; 0: not yet */
	uint64_t raised_ms, at_ms; /* from the event */
	uint64_t ts_ms;            /* its planned send time, sealed in as ts */
	int64_t commit_after_ts;   /* the hub's log: committed_ms − ts_ms; −1: no line */
};

/* The stream reader. */
struct sse {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	pthread_t th;
	bool started;
	_Atomic bool stop, hello, closed;
	struct alert_rec *rec;
	size_t n_rec;
	uint32_t code0;
	_Atomic uint64_t events, alarms, matched, unmatched, bytes;
	/* de-chunking */
	int cstate;      /* 0 size line, 1 data, 2 CRLF after data */
	size_t cleft;
	char cline[32];
	size_t cline_n;
	/* events */
	char *ev;
	size_t ev_n, ev_cap;
};

static double g_off_ms; /* CLOCK_REALTIME − CLOCK_MONOTONIC, ms */

static double mono_to_real_ms(uint64_t ns)
{
	return (double)ns / 1e6 + g_off_ms;
}

/* ---- TLS to the hub ------------------------------------------------------------- */

static bool tls_open(SSL_CTX **ctx, SSL **ssl, int *fd, uint16_t port, const char *ca)
{
	struct sockaddr_in sa = {0};
	int one = 1;

	*ssl = NULL;
	*fd = -1;
	if (*ctx == NULL) {
		*ctx = SSL_CTX_new(TLS_client_method());
		if (*ctx == NULL || SSL_CTX_load_verify_locations(*ctx, ca, NULL) != 1)
			return false;
		SSL_CTX_set_verify(*ctx, SSL_VERIFY_PEER, NULL);
	}
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*fd < 0 || connect(*fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		return false;
	(void)setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	*ssl = SSL_new(*ctx);
	if (*ssl == NULL || SSL_set_fd(*ssl, *fd) != 1 ||
	    SSL_set_tlsext_host_name(*ssl, "localhost") != 1 || SSL_set1_host(*ssl, "localhost") != 1 ||
	    SSL_connect(*ssl) != 1) {
		bench_err("TLS to the hub failed: %s\n",
		          ERR_reason_error_string(ERR_peek_last_error()) ? ERR_reason_error_string(
		                                                                    ERR_get_error())
		                                                              : "?");
		return false;
	}
	return true;
}

static void tls_close(SSL **ssl, int *fd)
{
	if (*ssl != NULL) {
		(void)SSL_shutdown(*ssl);
		SSL_free(*ssl);
	}
	*ssl = NULL;
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static bool tls_write_all(SSL *ssl, const char *buf, size_t n)
{
	while (n > 0) {
		int w = SSL_write(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);

		if (w <= 0)
			return false;
		buf += w;
		n -= (size_t)w;
	}
	return true;
}

/* ---- a browser, as far as signing in needs one ------------------------------------- */

struct browser {
	SSL_CTX *ctx;
	uint16_t port;
	const char *ca;
	char login_csrf[128], session[128]; /* the two cookies */
	int status;
	char location[256];
	char *body; /* of the last answer, NUL-terminated */
};

static void cookie_take(struct browser *b, const char *v)
{
	const char *eq = strchr(v, '='), *end = strchr(v, ';');
	char *dst;
	size_t cap, n;

	if (eq == NULL)
		return;
	if (end == NULL)
		end = v + strlen(v);
	if ((size_t)(eq - v) == strlen("mt_session") && strncmp(v, "mt_session", 10) == 0) {
		dst = b->session;
		cap = sizeof b->session;
	} else if ((size_t)(eq - v) == strlen("mt_login_csrf") && strncmp(v, "mt_login_csrf", 13) == 0) {
		dst = b->login_csrf;
		cap = sizeof b->login_csrf;
	} else {
		return;
	}
	n = (size_t)(end - eq - 1);
	if (n >= cap)
		n = 0;
	memcpy(dst, eq + 1, n);
	dst[n] = '\0';
}

/* One request on its own connection (Connection: close); the answer's
 * status, Location, cookies and body. */
static bool http(struct browser *b, const char *method, const char *path, const char *form)
{
	char req[2048], cookies[300] = "";
	char *buf = malloc(HTTP_MAX + 1), *hend, *line;
	size_t n = 0, clen = SIZE_MAX;
	SSL *ssl = NULL;
	int fd = -1;
	bool ok = false;

	b->status = 0;
	b->location[0] = '\0';
	free(b->body);
	b->body = NULL;
	if (buf == NULL)
		return false;
	if (b->login_csrf[0] != '\0' && strcmp(path, "/login") == 0)
		(void)snprintf(cookies, sizeof cookies, "mt_login_csrf=%s", b->login_csrf);
	if (b->session[0] != '\0')
		(void)snprintf(cookies + strlen(cookies), sizeof cookies - strlen(cookies), "%smt_session=%s",
		               cookies[0] ? "; " : "", b->session);
	{
		char hcookie[320] = "", hform[160] = "";

		if (cookies[0] != '\0' &&
		    !fmt(hcookie, sizeof hcookie, "Cookie: %s\r\n", cookies))
			hcookie[0] = '\0';
		if (form != NULL &&
		    !fmt(hform, sizeof hform,
		         "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n",
		         strlen(form)))
			hform[0] = '\0';
		if (!fmt(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
		                          "%s%s\r\n%s",
		         method, path, hcookie, hform, form ? form : "")) {
			free(buf);
			return false;
		}
	}
	if (!tls_open(&b->ctx, &ssl, &fd, b->port, b->ca) || !tls_write_all(ssl, req, strlen(req)))
		goto out;
	for (;;) {
		int r = SSL_read(ssl, buf + n, (int)(HTTP_MAX - n));

		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		hend = strstr(buf, "\r\n\r\n");
		if (hend != NULL && clen == SIZE_MAX) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");

			if (cl != NULL && cl < hend)
				clen = (size_t)strtoull(cl + 17, NULL, 10);
		}
		if (hend != NULL && clen != SIZE_MAX && n >= (size_t)(hend + 4 - buf) + clen)
			break;
		if (n >= HTTP_MAX)
			break;
	}
	buf[n] = '\0';
	hend = strstr(buf, "\r\n\r\n");
	if (hend == NULL || sscanf(buf, "HTTP/1.%*d %d", &b->status) != 1)
		goto out;
	*hend = '\0';
	for (line = strstr(buf, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
		char *v = line + 2;

		if (strncasecmp(v, "Set-Cookie: ", 12) == 0) {
			char *e = strstr(v, "\r\n");
			char save = 0;

			if (e != NULL) {
				save = *e;
				*e = '\0';
			}
			cookie_take(b, v + 12);
			if (e != NULL)
				*e = save;
		} else if (strncasecmp(v, "Location: ", 10) == 0) {
			size_t l = strcspn(v + 10, "\r\n");

			if (l < sizeof b->location) {
				memcpy(b->location, v + 10, l);
				b->location[l] = '\0';
			}
		}
	}
	b->body = strdup(hend + 4);
	ok = b->body != NULL;
out:
	tls_close(&ssl, &fd);
	free(buf);
	return ok;
}

static bool csrf_of(const char *page, char *out, size_t cap)
{
	const char *p = page ? strstr(page, "name=\"csrf\" value=\"") : NULL;
	size_t n;

	if (p == NULL)
		return false;
	p += strlen("name=\"csrf\" value=\"");
	n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
	if (n == 0 || n >= cap)
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

/* application/x-www-form-urlencoded value */
static void form_enc(char *out, size_t cap, const char *v)
{
	size_t o = 0;

	for (; *v && o + 4 < cap; v++) {
		unsigned char ch = (unsigned char)*v;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, cap - o, "%%%02X", ch);
	}
	out[o] = '\0';
}

/* Sign in with the one-time password and change it, as the console makes
 * a new user do; b->session holds the session cookie after. */
static bool sign_in(struct browser *b, const char *otp)
{
	char csrf[128], form[1024], u[128], p1[256], p2[256];

	if (!http(b, "GET", "/login", NULL) || b->status != 200 || !csrf_of(b->body, csrf, sizeof csrf)) {
		bench_err("GET /login: %d\n", b->status);
		return false;
	}
	form_enc(u, sizeof u, CONSOLE_USER);
	form_enc(p1, sizeof p1, otp);
	if (!fmt(form, sizeof form, "user=%s&password=%s&csrf=%s", u, p1, csrf) ||
	    !http(b, "POST", "/login", form) || b->status != 303 || b->session[0] == '\0') {
		bench_err("POST /login: %d (%s)\n", b->status, b->location);
		return false;
	}
	if (!http(b, "GET", "/password", NULL) || b->status != 200 ||
	    !csrf_of(b->body, csrf, sizeof csrf)) {
		bench_err("GET /password: %d\n", b->status);
		return false;
	}
	form_enc(p2, sizeof p2, CONSOLE_PW);
	if (!fmt(form, sizeof form, "current=%s&new=%s&repeat=%s&csrf=%s", p1, p2, p2, csrf) ||
	    !http(b, "POST", "/password", form) || b->status != 303) {
		bench_err("POST /password: %d (%s)\n", b->status, b->body ? b->body : "");
		return false;
	}
	return true;
}

/* ---- the live stream ------------------------------------------------------------------- */

static const char *json_num(const char *data, const char *key, uint64_t *v)
{
	const char *p = strstr(data, key);

	if (p == NULL)
		return NULL;
	*v = strtoull(p + strlen(key), NULL, 10);
	return p;
}

/* One complete event (its lines, without the blank line). */
static void sse_event(struct sse *s, char *ev, uint64_t t1)
{
	const char *type = NULL, *data = NULL, *dev, *cond;
	uint64_t code = 0, raised = 0, at = 0;

	for (char *line = ev, *nl; line != NULL; line = nl) {
		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl++ = '\0';
		if (strncmp(line, "event: ", 7) == 0)
			type = line + 7;
		else if (strncmp(line, "data: ", 6) == 0)
			data = line + 6;
	}
	if (type == NULL)
		return;
	atomic_fetch_add(&s->events, 1);
	if (strcmp(type, "hello") == 0) {
		atomic_store(&s->hello, true);
		return;
	}
	if (strcmp(type, "alarm") != 0 || data == NULL)
		return;
	atomic_fetch_add(&s->alarms, 1);
	if (strstr(data, "\"phase\":\"start\"") == NULL ||
	    (cond = strstr(data, "\"cond\":\"device:")) == NULL ||
	    (dev = strstr(data, "\"device\":\"")) == NULL) {
		atomic_fetch_add(&s->unmatched, 1); /* another alarm, or another phase */
		return;
	}
	code = strtoull(cond + strlen("\"cond\":\"device:"), NULL, 10);
	dev += strlen("\"device\":\"");
	(void)json_num(data, "\"raised_ms\":", &raised);
	(void)json_num(data, "\"at_ms\":", &at);
	if (code >= s->code0 && code - s->code0 < s->n_rec) {
		struct alert_rec *r = &s->rec[code - s->code0];
		const char *serial = r->p->d->ad.serial;
		size_t sl = strlen(serial);

		if (strncmp(dev, serial, sl) == 0 && dev[sl] == '"' &&
		    atomic_load(&r->t1_ns) == 0) {
			r->raised_ms = raised;
			r->at_ms = at;
			atomic_store(&r->t1_ns, t1);
			atomic_fetch_add(&s->matched, 1);
			return;
		}
	}
	atomic_fetch_add(&s->unmatched, 1);
}

/* De-chunked bytes of the stream: split into events at blank lines. */
static void sse_text(struct sse *s, const char *p, size_t n, uint64_t t1)
{
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (ch == '\r')
			continue;
		if (s->ev_n + 2 > s->ev_cap) {
			size_t cap = s->ev_cap ? 2 * s->ev_cap : 8192;
			char *ev = realloc(s->ev, cap);

			if (ev == NULL)
				return;
			s->ev = ev;
			s->ev_cap = cap;
		}
		if (ch == '\n' && s->ev_n > 0 && s->ev[s->ev_n - 1] == '\n') {
			s->ev[s->ev_n - 1] = '\0';
			sse_event(s, s->ev, t1);
			s->ev_n = 0;
			continue;
		}
		if (ch == '\n' && s->ev_n == 0)
			continue;
		s->ev[s->ev_n++] = ch;
	}
}

/* The body arrives chunked (HTTP/1.1, evhttp's streamed reply). */
static void sse_chunked(struct sse *s, const char *p, size_t n, uint64_t t1)
{
	size_t i = 0;

	while (i < n) {
		if (s->cstate == 0) { /* size line */
			char ch = p[i++];

			if (ch == '\n') {
				s->cline[s->cline_n] = '\0';
				s->cleft = (size_t)strtoull(s->cline, NULL, 16);
				s->cline_n = 0;
				s->cstate = s->cleft > 0 ? 1 : 0;
			} else if (ch != '\r' && s->cline_n + 1 < sizeof s->cline) {
				s->cline[s->cline_n++] = ch;
			}
		} else if (s->cstate == 1) { /* data */
			size_t k = n - i < s->cleft ? n - i : s->cleft;

			sse_text(s, p + i, k, t1);
			i += k;
			s->cleft -= k;
			if (s->cleft == 0)
				s->cstate = 2;
		} else { /* the CRLF after the data */
			if (p[i++] == '\n')
				s->cstate = 0;
		}
	}
}

static void *sse_main(void *arg)
{
	struct sse *s = arg;
	char buf[65536];
	bool head = true, chunked = false;
	size_t hn = 0;
	char hbuf[8192];

	while (!atomic_load(&s->stop)) {
		int r = SSL_read(s->ssl, buf, sizeof buf);
		uint64_t t1 = mono_ns();

		if (r <= 0)
			break;
		atomic_fetch_add(&s->bytes, (uint64_t)r);
		if (head) {
			size_t k = (size_t)r < sizeof hbuf - 1 - hn ? (size_t)r : sizeof hbuf - 1 - hn;
			char *end;

			memcpy(hbuf + hn, buf, k);
			hn += k;
			hbuf[hn] = '\0';
			end = strstr(hbuf, "\r\n\r\n");
			if (end == NULL)
				continue;
			if (strncmp(hbuf, "HTTP/1.1 200", 12) != 0) {
				bench_err("GET /api/stream: %.40s\n", hbuf);
				break;
			}
			chunked = strcasestr(hbuf, "Transfer-Encoding: chunked") != NULL;
			head = false;
			{
				size_t body_off = (size_t)(end + 4 - hbuf);
				size_t consumed_before = hn - k; /* of hbuf, before this read */
				size_t from = body_off - consumed_before;

				if (from < (size_t)r) {
					if (chunked)
						sse_chunked(s, buf + from, (size_t)r - from, t1);
					else
						sse_text(s, buf + from, (size_t)r - from, t1);
				}
			}
			continue;
		}
		if (chunked)
			sse_chunked(s, buf, (size_t)r, t1);
		else
			sse_text(s, buf, (size_t)r, t1);
	}
	atomic_store(&s->closed, true);
	return NULL;
}

static bool sse_open(struct sse *s, struct browser *b)
{
	char req[512];

	s->fd = -1;
	if (!fmt(req, sizeof req,
	         "GET /api/stream HTTP/1.1\r\nHost: localhost\r\nCookie: mt_session=%s\r\n"
	         "Accept: text/event-stream\r\n\r\n",
	         b->session) ||
	    !tls_open(&s->ctx, &s->ssl, &s->fd, b->port, b->ca) ||
	    !tls_write_all(s->ssl, req, strlen(req)))
		return false;
	s->started = pthread_create(&s->th, NULL, sse_main, s) == 0;
	for (int i = 0; s->started && i < 500 && !atomic_load(&s->hello) && !atomic_load(&s->closed);
	     i++)
		sleep_ms(20);
	return atomic_load(&s->hello);
}

static void sse_close(struct sse *s)
{
	atomic_store(&s->stop, true);
	if (s->fd >= 0)
		(void)shutdown(s->fd, SHUT_RDWR);
	if (s->started)
		pthread_join(s->th, NULL);
	s->started = false;
	if (s->ssl != NULL)
		SSL_free(s->ssl);
	s->ssl = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	SSL_CTX_free(s->ctx);
	s->ctx = NULL;
	free(s->ev);
	s->ev = NULL;
}

/* ---- patients and the console user ------------------------------------------------------- */

static bool assign_patients(double *secs)
{
	struct mt_deploy *d = NULL;
	struct mt_store *st = NULL;
	char why[512] = "";
	uint64_t t0 = mono_ns(), now = real_ms() - 60000; /* assigned a minute ago */
	enum mt_err e = mt_deploy_open(B.conf, &d, why, sizeof why);

	if (e == MT_OK)
		e = mt_deploy_open_store(d, &st);
	for (size_t i = 0; e == MT_OK && i < B.n_dev; i++) {
		struct mt_patient p;
		int64_t id = 0;

		memset(&p, 0, sizeof p);
		(void)snprintf(p.name, sizeof p.name, "Bench Patient %zu", i);
		(void)snprintf(p.mrn, sizeof p.mrn, "BENCH%06zu", i);
		(void)snprintf(p.ward, sizeof p.ward, "W%02zu", i / BEDS_PER_WARD + 1);
		(void)snprintf(p.bed, sizeof p.bed, "%zu", i % BEDS_PER_WARD + 1);
		e = mt_store_patient_add(st, &p, &id);
		if (e == MT_OK)
			e = mt_store_assign(st, B.devs[i].ad.serial, id, now);
	}
	if (e != MT_OK)
		bench_err("patients: %s%s%s\n", mt_err_str(e), why[0] ? ": " : "", why);
	mt_store_close(st);
	mt_deploy_close(d);
	*secs = (double)(mono_ns() - t0) / 1e9;
	return e == MT_OK;
}

/* `medtrust user add` prints the one-time password as its last line. */
static bool console_user(const struct bench_env *E, char *otp, size_t cap)
{
	char log[PATH_MAX + 16], line[512];
	char *argv[] = {(char *)E->bin, "user", "add", CONSOLE_USER, "--role", "biomed", "-c", B.conf,
	                NULL};
	FILE *f;
	bool ok = false;

	if (!fmt(log, sizeof log, "%s/user.log", B.dir) || run_cmd(argv, log) != 0) {
		bench_err("medtrust user add failed\n");
		print_tail(log, 1000);
		return false;
	}
	f = fopen(log, "r");
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		size_t n = strcspn(line, "\r\n");

		line[n] = '\0';
		if (n > 0 && n < cap && strchr(line, ' ') == NULL) {
			memcpy(otp, line, n + 1);
			ok = true;
		}
	}
	if (f != NULL)
		fclose(f);
	if (!ok)
		bench_err("no one-time password in %s\n", log);
	return ok;
}

/* ---- figures --------------------------------------------------------------------------- */

/* medtrustd logs each committed fast packet: "DEVICE ALERT <dev> code <c>
 * ... raised <N> ms after the device's timestamp" (committed_ms − ts_ms). */
static void commit_times(const char *log, struct alert_rec *rec, size_t n, uint32_t code0)
{
	FILE *f = fopen(log, "r");
	char line[1024];

	for (size_t j = 0; j < n; j++)
		rec[j].commit_after_ts = -1;
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		const char *p = strstr(line, "DEVICE ALERT "), *c, *r;
		unsigned long long code, ms;

		if (p == NULL || (c = strstr(p, " code ")) == NULL ||
		    (r = strstr(p, "; raised ")) == NULL)
			continue;
		code = strtoull(c + 6, NULL, 10);
		ms = strtoull(r + 9, NULL, 10);
		if (code >= code0 && code - code0 < n)
			rec[code - code0].commit_after_ts = (int64_t)ms;
	}
	if (f != NULL)
		fclose(f);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double q)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static void print_dist(const char *name, double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_dbl);
	printf("  %-44s p50 %6.1f  p95 %6.1f  p99 %6.1f  max %6.1f ms  (n=%zu)\n", name,
	       pct(v, n, 0.50), pct(v, n, 0.95), pct(v, n, 0.99), n ? v[n - 1] : 0.0, n);
}

static const char usage[] =
        "usage: alert [--devices N] [--rate P] [--alerts A] [--alert-rate F]\n"
        "             [--sender-threads T] [--ingest-workers W] [--goal-ms MS] [--unassigned]\n"
        "             [--varying-vitals] [--medtrust PATH] [--dir DIR] [--trace FILE] [--keep]\n"
        "  --devices N          onboarded devices, each one MQTT connection (default 1000)\n"
        "  --rate P             background vitals packets/s, all devices (default: N, 1/s each)\n"
        "  --alerts A           fast packets measured (default 300)\n"
        "  --alert-rate F       fast packets per second (default 10)\n"
        "  --sender-threads T   event loops of the sender (default 2)\n"
        "  --ingest-workers W   medtrustd --ingest-workers (default: its own)\n"
        "  --goal-ms MS         the p99 goal (default 50)\n"
        "  --unassigned         no patients: the engine scores nothing\n"
        "  --varying-vitals     a device's values change with every reading (NEWS2 moves)\n"
        "  --medtrust PATH      the CLI; medtrustd and medtrust_mosq.so beside it\n"
        "                       (default build/medtrust)\n"
        "  --dir DIR            where the temporary deployment goes (default /tmp)\n"
        "  --trace FILE         write each fast packet's figures and each sample of the\n"
        "                       hub's counters there (tab-separated, s from the run's start)\n"
        "  --keep               keep the deployment and its logs\n";

/* Wait until the hub has stored `want` more than base (or timeout). */
static bool wait_stored(struct hub *h, const struct counts *base, uint64_t want, unsigned timeout_s,
                        struct counts *c)
{
	uint64_t deadline = mono_ns() + (uint64_t)timeout_s * 1000000000u;

	while (!g_interrupted && mono_ns() < deadline && child_alive(&h->c)) {
		if (hub_sample(h, c) && c->stored + c->duplicate >= base->stored + base->duplicate + want)
			return true;
		sleep_ms(50);
	}
	return false;
}

int main(int argc, char **argv)
{
	unsigned long n_dev = 1000, rate = 0, n_alerts = 300, alert_rate = 10, n_snd = 2,
	              workers = 0, goal_ms = 50;
	const char *medtrust = "build/medtrust", *base = "/tmp", *workers_s = NULL, *trace = NULL;
	FILE *tf = NULL;
	bool unassigned = false, varying = false, complete = false, all_stored = false;
	static struct bench_env E;
	struct pkt *set_w = NULL, *set_r = NULL, *warm = NULL;
	size_t n_w = 0, n_r = 0, n_bg = 0;
	struct pkt **lists[SENDERS_MAX] = {0};
	struct alert_rec *rec = NULL;
	static struct sse sse;
	struct browser br = {0};
	struct counts c0, c1, c;
	struct cpu_snap cpu_a, cpu_b;
	double t_pat = 0, dur_s;
	uint64_t t_start = 0, *per_dev = NULL, max_queued = 0, first_s = 0, last_s = 0;
	uint64_t first_stored = 0, last_stored = 0;
	char otp[256];
	int rc = 1;

	memset(&cpu_a, 0, sizeof cpu_a);
	memset(&cpu_b, 0, sizeof cpu_b);
	memset(&c, 0, sizeof c);
	memset(&c1, 0, sizeof c1);
	sse.fd = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = true;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
		if (strcmp(a, "--keep") == 0) {
			E.keep = true;
			continue;
		}
		if (strcmp(a, "--unassigned") == 0) {
			unassigned = true;
			continue;
		}
		if (strcmp(a, "--varying-vitals") == 0) {
			varying = true;
			continue;
		}
		if (v == NULL) {
			fputs(usage, stderr);
			return 64;
		}
		i++;
		if (strcmp(a, "--devices") == 0)
			ok = parse_num(v, 1, 10000, &n_dev);
		else if (strcmp(a, "--rate") == 0)
			ok = parse_num(v, 1, 1000000, &rate);
		else if (strcmp(a, "--alerts") == 0)
			ok = parse_num(v, 1, 100000, &n_alerts);
		else if (strcmp(a, "--alert-rate") == 0)
			ok = parse_num(v, 1, 1000, &alert_rate);
		else if (strcmp(a, "--sender-threads") == 0)
			ok = parse_num(v, 1, SENDERS_MAX, &n_snd);
		else if (strcmp(a, "--ingest-workers") == 0) {
			ok = parse_num(v, 1, 64, &workers);
			workers_s = v;
		} else if (strcmp(a, "--goal-ms") == 0)
			ok = parse_num(v, 1, 100000, &goal_ms);
		else if (strcmp(a, "--medtrust") == 0)
			medtrust = v;
		else if (strcmp(a, "--dir") == 0)
			base = v;
		else if (strcmp(a, "--trace") == 0)
			trace = v;
		else
			ok = false;
		if (!ok) {
			fprintf(stderr, "alert: bad option %s %s\n%s", a, v, usage);
			return 64;
		}
	}
	if (rate == 0)
		rate = n_dev;
	if (trace != NULL && (tf = fopen(trace, "w")) == NULL) {
		fprintf(stderr, "alert: cannot write %s: %s\n", trace, strerror(errno));
		return 64;
	}
	bench_name = "alert";
	rc = bench_prepare(&E, medtrust, n_dev);
	if (rc != 0)
		return rc;
	rc = 1;
	B.n_snd = (unsigned)n_snd;
	B.steady_vitals = !varying;
	/* The run's length and its counters: per device, reading 0 (warm-up),
	 * its share of the background and its fast packets. */
	dur_s = LEAD_S + (double)n_alerts / (double)alert_rate + TAIL_S;
	n_bg = (size_t)(dur_s * (double)rate);
	B.n_ctr = 1 + n_bg / n_dev + 1 + n_alerts / n_dev + 1 + WARM_ALERTS;
	{
		struct timespec r1, m1, m2;

		clock_gettime(CLOCK_MONOTONIC, &m1);
		clock_gettime(CLOCK_REALTIME, &r1);
		clock_gettime(CLOCK_MONOTONIC, &m2);
		g_off_ms = ((double)r1.tv_sec * 1e3 + (double)r1.tv_nsec / 1e6) -
		           ((double)m1.tv_sec * 1e3 + (double)m1.tv_nsec / 1e6 +
		            (double)m2.tv_sec * 1e3 + (double)m2.tv_nsec / 1e6) / 2;
	}
	printf("alert: %lu devices, background %lu vitals packets/s (%.1f/s per device) for %.0f s, "
	       "%lu fast packets at %lu/s; %s; %ld CPUs shared by sender, broker and hub\n",
	       n_dev, rate, (double)rate / (double)n_dev, dur_s, n_alerts, alert_rate,
	       unassigned ? "no patients" : "every device assigned to a patient",
	       sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
	bench_background();

	if (!bench_up(&E, base, n_dev, NULL))
		goto out;
	if (!unassigned) {
		if (!assign_patients(&t_pat))
			goto out;
		printf("set-up: %zu patients on %zu wards, each assigned a device: %.1f s\n", B.n_dev,
		       (B.n_dev + BEDS_PER_WARD - 1) / BEDS_PER_WARD, t_pat);
	}
	if (!console_user(&E, otp, sizeof otp))
		goto out;
	child_stop(&E.hub.c);
	if (!hub_start(&E.hub, E.medtrustd, true, workers_s, E.hub_port) || !hub_sample(&E.hub, &c0))
		goto out;
	br.port = E.hub_port;
	br.ca = E.hub_ca;
	if (!sign_in(&br, otp))
		goto out;

	/* Warm-up: reading 0 of every device, then a few fast packets. */
	set_w = plan_set(0, 1, &n_w);
	if (set_w == NULL || seal_set(set_w, n_w, real_ms(), 0) != MT_OK ||
	    !start_job(set_w, n_w, mono_ns(), 0, lists) ||
	    !wait_stored(&E.hub, &c0, n_w, E.timeout_s, &c)) {
		bench_err("warm-up: the hub stored %llu of %zu\n",
		          (unsigned long long)(c.stored - c0.stored), n_w);
		print_tail(E.hub.c.log, 2000);
		goto out;
	}
	for (int i = 0; i < 1000 && !job_done(); i++)
		sleep_ms(5);

	/* The stream, then the warm-up's fast packets on it. */
	sse.rec = rec = calloc(n_alerts + WARM_ALERTS, sizeof *rec);
	warm = calloc(WARM_ALERTS, sizeof *warm);
	per_dev = calloc(n_dev, sizeof *per_dev);
	if (rec == NULL || warm == NULL || per_dev == NULL)
		goto out;
	for (size_t i = 0; i < n_dev; i++)
		per_dev[i] = 1;
	for (unsigned j = 0; j < WARM_ALERTS; j++) {
		size_t di = (j * 7919u + 17u) % n_dev;

		warm[j] = (struct pkt){.d = &B.devs[di], .ctr = per_dev[di]++, .k = j, .alert = true,
		                       .code = WARM_CODE + j};
		rec[n_alerts + j].p = &warm[j];
	}
	sse.code0 = WARM_CODE;
	sse.rec = rec + n_alerts;
	sse.n_rec = WARM_ALERTS;
	if (!sse_open(&sse, &br)) {
		bench_err("the live stream did not open (no hello)\n");
		goto out;
	}
	free_lists(lists);
	if (seal_set(warm, WARM_ALERTS, real_ms(), 0) != MT_OK ||
	    !start_job(warm, WARM_ALERTS, mono_ns() + 50000000u, 200e6, lists))
		goto out;
	for (int i = 0; i < 500 && atomic_load(&sse.matched) < WARM_ALERTS; i++)
		sleep_ms(20);
	if (atomic_load(&sse.matched) < WARM_ALERTS) {
		bench_err("warm-up: %llu of %d fast packets raised an alarm on the stream\n",
		          (unsigned long long)atomic_load(&sse.matched), WARM_ALERTS);
		print_tail(E.hub.c.log, 2000);
		goto out;
	}
	for (int i = 0; i < 1000 && !job_done(); i++)
		sleep_ms(5);

	/* The run's plan: background k = 0 .. n_bg − 1 (device k mod N), fast
	 * packet j at k = (LEAD_S + j / F) × P from device j × 7919 + 1 mod N. */
	set_r = calloc(n_bg + n_alerts, sizeof *set_r);
	if (set_r == NULL)
		goto out;
	{
		size_t j = 0, o = 0;

		for (size_t k = 0; k < n_bg; k++) {
			while (j < n_alerts &&
			       (size_t)(((double)LEAD_S + (double)j / (double)alert_rate) * (double)rate) <= k) {
				size_t di = (j * 7919u + 1u) % n_dev;

				set_r[o] = (struct pkt){.d = &B.devs[di], .ctr = per_dev[di]++,
				                        .k = (uint32_t)k, .alert = true,
				                        .code = CODE_BASE + (uint32_t)j};
				rec[j].p = &set_r[o++];
				j++;
			}
			set_r[o] = (struct pkt){.d = &B.devs[k % n_dev], .ctr = per_dev[k % n_dev]++,
			                        .k = (uint32_t)k};
			o++;
		}
		n_r = o;
		if (j < n_alerts) {
			bench_err("plan: %zu of %lu fast packets placed\n", j, n_alerts);
			goto out;
		}
	}
	for (size_t i = 0; i < n_dev; i++)
		if (per_dev[i] > B.n_ctr) {
			bench_err("plan: device %zu needs %llu counters\n", i,
			          (unsigned long long)per_dev[i]);
			goto out;
		}
	/* The stream now matches the run's codes (the reader only reads
	 * rec/code0 at an event: the warm-up's are all in). */
	sse.n_rec = 0;
	sse.code0 = CODE_BASE;
	sse.rec = rec;
	sse.n_rec = n_alerts;
	{
		uint64_t t0_ns, t0_ms;

		plan_start(n_r, E.seal_us, &t0_ns, &t0_ms);
		for (size_t j = 0; j < n_alerts; j++) /* as seal_set computes ts */
			rec[j].ts_ms = t0_ms + (uint64_t)((double)rec[j].p->k * (1000.0 / (double)rate));
		if (seal_set(set_r, n_r, t0_ms, 1000.0 / (double)rate) != MT_OK) {
			bench_err("sealing failed\n");
			goto out;
		}
		if (!hub_reset(&E.hub, &c0))
			goto out;
		sleep_until(t0_ns);
		free_lists(lists);
		cpu_snap(&cpu_a, E.hub.c.pid, E.broker.pid);
		t_start = t0_ns;
		if (!start_job(set_r, n_r, t0_ns, 1e9 / (double)rate, lists))
			goto out;
	}
	/* Follow: every SAMPLE_MS the hub's counters (committed rate, the
	 * engine's queue), until sent and every alarm arrived (or 10 s after). */
	{
		uint64_t sent_at = 0;

		first_stored = c0.stored;
		first_s = t_start;
		while (!g_interrupted) {
			uint64_t now;

			sleep_ms(SAMPLE_MS);
			now = mono_ns();
			if (!child_alive(&E.hub.c) || !child_alive(&E.broker)) {
				bench_err("%s died\n", E.hub.c.pid <= 0 ? "medtrustd" : "mosquitto");
				break;
			}
			if (hub_sample(&E.hub, &c)) {
				if (c.has_clin && c.clin_queued > max_queued)
					max_queued = c.clin_queued;
				if (tf != NULL)
					fprintf(tf, "sample\t%.3f\tstored\t%llu\treceived\t%llu\tqueued\t%llu\n",
					        (double)((int64_t)c.t_ns - (int64_t)t_start) / 1e9,
					        (unsigned long long)(c.stored - c0.stored),
					        (unsigned long long)(c.received - c0.received),
					        (unsigned long long)c.clin_queued);
				if (c.stored < c0.stored + n_bg) {
					last_stored = c.stored;
					last_s = c.t_ns;
				} else if (!all_stored) {
					all_stored = true;
					last_stored = c.stored;
					last_s = c.t_ns;
				}
				c1 = c;
			}
			if (sent_at == 0 && job_done())
				sent_at = now;
			if (sent_at != 0 && all_stored && atomic_load(&sse.matched) >= n_alerts)
				break;
			if (sent_at != 0 && now - sent_at > 10000000000ull)
				break;
		}
		cpu_snap(&cpu_b, E.hub.c.pid, E.broker.pid);
	}
	complete = job_done();

	/* ---- the report ---- */
	{
		double *lat = calloc(n_alerts, sizeof *lat), *a = calloc(n_alerts, sizeof *a);
		double *b = calloc(n_alerts, sizeof *b), *cc = calloc(n_alerts, sizeof *cc);
		double *pc = calloc(n_alerts, sizeof *pc), *cs = calloc(n_alerts, sizeof *cs);
		size_t n_pc = 0;
		size_t n = 0, missing = 0, worst[5] = {0}, nw = 0;
		double hz = (double)sysconf(_SC_CLK_TCK), wall = (double)(cpu_b.t_ns - cpu_a.t_ns) / 1e9;
		long np = sysconf(_SC_NPROCESSORS_ONLN);
		bool pass;
		uint64_t stored_bg;

		commit_times(E.hub.c.log, rec, n_alerts, CODE_BASE);
		if (lat == NULL || a == NULL || b == NULL || cc == NULL || pc == NULL || cs == NULL) {
			free(pc);
			free(cs);
			free(lat);
			free(a);
			free(b);
			free(cc);
			goto out;
		}
		for (size_t j = 0; j < n_alerts; j++) {
			uint64_t t1 = atomic_load(&rec[j].t1_ns), t0 = rec[j].p->sent_ns;
			double t0r, t1r;

			if (t1 == 0 || t0 == 0) {
				missing++;
				continue;
			}
			t0r = mono_to_real_ms(t0);
			t1r = mono_to_real_ms(t1);
			if (tf != NULL)
				fprintf(tf, "alert\t%.3f\t#%zu\t%s\tlatency\t%.1f\tarrival\t%.0f\tto_stream\t%.0f"
				            "\tread\t%.0f\tcommitted\t%.0f\n",
				        (double)((int64_t)t0 - (int64_t)t_start) / 1e9, j, rec[j].p->d->ad.serial,
				        (double)(t1 - t0) / 1e6, (double)rec[j].raised_ms - t0r,
				        (double)rec[j].at_ms - (double)rec[j].raised_ms, t1r - (double)rec[j].at_ms,
				        rec[j].commit_after_ts >= 0
				                ? (double)(rec[j].ts_ms + (uint64_t)rec[j].commit_after_ts) - t0r
				                : -1.0);
			lat[n] = (double)(t1 - t0) / 1e6;
			a[n] = (double)rec[j].raised_ms - t0r;
			b[n] = (double)rec[j].at_ms - (double)rec[j].raised_ms;
			cc[n] = t1r - (double)rec[j].at_ms;
			if (rec[j].commit_after_ts >= 0) {
				double committed = (double)(rec[j].ts_ms + (uint64_t)rec[j].commit_after_ts);

				pc[n_pc] = committed - t0r;
				cs[n_pc++] = (double)rec[j].at_ms - committed;
			}
			n++;
			/* the five slowest, by index */
			if (nw < 5) {
				worst[nw++] = j;
			} else {
				size_t m = 0;

				for (size_t q = 1; q < 5; q++)
					if (atomic_load(&rec[worst[q]].t1_ns) - rec[worst[q]].p->sent_ns <
					    atomic_load(&rec[worst[m]].t1_ns) - rec[worst[m]].p->sent_ns)
						m = q;
				if (t1 - t0 > atomic_load(&rec[worst[m]].t1_ns) - rec[worst[m]].p->sent_ns)
					worst[m] = j;
			}
		}
		printf("\n== background (medtrustd's counters over the run) ==\n");
		stored_bg = c1.stored - c0.stored;
		printf("  offered %lu vitals/s + %lu fast packets/s; the hub stored %llu of %zu vitals "
		       "packets (%s)\n",
		       rate, alert_rate, (unsigned long long)stored_bg, n_bg,
		       all_stored ? "all" : "NOT all");
		if (last_s > first_s)
			printf("  committed: %.0f packets/s (first due time to the %s sample)\n",
			       (double)(last_stored - first_stored) / ((double)(last_s - first_s) / 1e9),
			       all_stored ? "first complete" : "last");
		printf("  ingest latency (medtrustd, this run): device ts → commit p50 %llu ms, p99 %llu "
		       "ms; arrival → commit p50 %llu ms, p99 %llu ms\n",
		       (unsigned long long)c1.p50, (unsigned long long)c1.p99,
		       (unsigned long long)c1.hub_p50, (unsigned long long)c1.hub_p99);
		printf("  hub: %s\n", c1.line[0] ? strstr(c1.line, "ingest (") : "(no line)");
		if (c1.has_clin)
			printf("  engine: %s\n  engine queue: deepest sampled every %d ms: %llu events\n",
			       c1.clin_line, SAMPLE_MS, (unsigned long long)max_queued);
		printf("  stream: %llu events read (%llu alarm events, %llu of them not a fast packet's start), "
		       "%.1f MB\n",
		       (unsigned long long)atomic_load(&sse.events),
		       (unsigned long long)atomic_load(&sse.alarms),
		       (unsigned long long)atomic_load(&sse.unmatched),
		       (double)atomic_load(&sse.bytes) / 1e6);
		if (wall > 0) {
#define PCT(t) ((double)(t) / hz / wall * 100.0)
			printf("  CPU over %.1f s (%% of one core): medtrustd %.0f %%, mosquitto %.0f %%, "
			       "bench %.0f %%; machine busy %.0f %% of %ld00 %%\n",
			       wall, PCT(cpu_b.hub - cpu_a.hub), PCT(cpu_b.broker - cpu_a.broker),
			       PCT(cpu_b.self - cpu_a.self),
			       cpu_b.m_total > cpu_a.m_total
			               ? (double)(cpu_b.m_busy - cpu_a.m_busy) /
			                         (double)(cpu_b.m_total - cpu_a.m_total) * 100.0 * (double)np
			               : 0.0,
			       np);
			/* medtrustd by thread, with the names its threads carry */
			printf("  medtrustd by thread (%% of one core):");
			for (size_t i = 0; i < cpu_b.n_thr; i++) {
				uint64_t before = 0;
				char path[96], name[32] = "?";
				FILE *f;

				for (size_t q = 0; q < cpu_a.n_thr; q++)
					if (cpu_a.thr[q].tid == cpu_b.thr[i].tid)
						before = cpu_a.thr[q].ticks;
				(void)snprintf(path, sizeof path, "/proc/%ld/task/%ld/comm",
				               (long)E.hub.c.pid, cpu_b.thr[i].tid);
				f = fopen(path, "r");
				if (f != NULL) {
					if (fgets(name, sizeof name, f) != NULL)
						name[strcspn(name, "\n")] = '\0';
					fclose(f);
				}
				if (PCT(cpu_b.thr[i].ticks - before) >= 1.0)
					printf(" %s#%zu %.0f %%", name, i, PCT(cpu_b.thr[i].ticks - before));
			}
			printf("\n");
#undef PCT
		}
		printf("  sender: %llu published, %llu acknowledged by the broker, %llu failed; "
		       "connections lost %llu\n",
		       (unsigned long long)SND(published), (unsigned long long)SND(acked),
		       (unsigned long long)SND(pub_failed), (unsigned long long)SND(lost));

		printf("\n== fast packet → alarm on the console's live stream ==\n");
		print_dist("publish → event read (the figure)", lat, n);
		print_dist("  publish → hub arrival (raised_ms)", a, n);
		print_dist("  arrival → on the stream (at_ms)", b, n);
		print_dist("  on the stream → read by the console", cc, n);
		print_dist("  publish → committed (hub log)", pc, n_pc);
		print_dist("  committed → on the stream (engine)", cs, n_pc);
		printf("  (the split is wall-clock milliseconds of the hub: ±1 ms each)\n");
		if (missing > 0)
			printf("  MISSING: %zu of %lu fast packets raised no alarm on the stream\n", missing,
			       n_alerts);
		if (nw > 0) {
			printf("  slowest:");
			for (size_t q = 0; q < nw; q++) {
				struct alert_rec *r = &rec[worst[q]];
				double t0r = mono_to_real_ms(r->p->sent_ns);

				printf("%s #%zu %.1f ms (arrival %+.0f, to stream %llu, read %+.0f)",
				       q ? ";" : "", worst[q],
				       (double)(atomic_load(&r->t1_ns) - r->p->sent_ns) / 1e6,
				       (double)r->raised_ms - t0r,
				       (unsigned long long)(r->at_ms - r->raised_ms),
				       mono_to_real_ms(atomic_load(&r->t1_ns)) - (double)r->at_ms);
			}
			printf("\n");
		}
		printf("\n== verdict ==\n");
		pass = missing == 0 && n > 0 && pct(lat, n, 0.99) <= (double)goal_ms;
		printf("  goal: p99 <= %lu ms from a fast packet's publish to its alarm on the live "
		       "stream, under %zu devices at %lu vitals/s\n",
		       goal_ms, B.n_dev, rate);
		printf("  p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms, %zu of %lu alarms\n",
		       pct(lat, n, 0.50), pct(lat, n, 0.95), pct(lat, n, 0.99), n ? lat[n - 1] : 0.0,
		       n, n_alerts);
		printf("  GOAL: %s\n", pass ? "PASS" : "FAIL");
		fflush(stdout);
		rc = complete && missing == 0 && all_stored ? 0 : 1;
		free(lat);
		free(a);
		free(b);
		free(cc);
		free(pc);
		free(cs);
	}

out:
	sse_close(&sse);
	SSL_CTX_free(br.ctx);
	free(br.body);
	bench_down(&E, rc == 0);
	free_lists(lists);
	free_set(set_w, n_w);
	free_set(set_r, n_r);
	free_set(warm, WARM_ALERTS);
	free(rec);
	free(per_dev);
	if (tf != NULL)
		fclose(tf);
	return rc;
}
