/*
 * https.c — the hub's HTTPS server (https.h): libevent 2.1's evhttp over
 * bufferevent_openssl, one event loop per worker thread, TLS client
 * certificates handed to the handler as DER (protocol §2 EST, §8; threats
 * B09, B12, D10; docs/hub-https.md says why libevent and OpenSSL).
 *
 * Shape.  mt_https_start binds one listening socket per worker, all on
 * the same address and port with SO_REUSEPORT, so the kernel spreads new
 * connections over the workers and TLS handshakes (the costly part: an
 * ECDSA signature, perhaps in a token) run in parallel without any lock of
 * ours.  Each worker owns an event_base and an evhttp; nothing is shared
 * between workers but the SSL_CTX (OpenSSL makes SSL_new on a shared
 * context thread-safe) and the handler, which must be thread-safe itself.
 * Every socket is bound and listening before mt_https_start returns, so a
 * caller (a test, the daemon's readiness report) may connect at once.
 *
 * Trust.  The server decides nothing about who the client is.  It asks for
 * a certificate, lets the handshake prove possession of the leaf's key
 * (CertificateVerify; OpenSSL checks it whatever the chain verdict), and
 * passes the chain as sent, leaf first, to the handler, which verifies it
 * against the roots that apply to its endpoint.  OpenSSL's own path
 * building is replaced by a callback that only counts the certificates:
 * a hostile client cannot make us build paths through twenty certificates
 * it made up (B12), and with no roots in the SSL_CTX a "verified" flag from
 * OpenSSL would mean nothing anyway.
 *
 * TLS policy (B09), fixed in mt_https_ssl_ctx: TLS 1.2 minimum; TLS 1.2
 * suites ECDHE with AES-GCM or ChaCha20-Poly1305 only (no CBC, no static
 * RSA, no anonymous suites); TLS 1.3 with its three standard suites; groups
 * P-256 and X25519; security level 2; no renegotiation, no compression, no
 * tickets and no session cache, so every connection runs a full handshake
 * and presents its certificate (the handler sees the client's chain on
 * every request, never a resumed session's stale identity).
 *
 * Bounds, each enforced before the handler runs: the client's Certificate
 * message (MT_HTTPS_CERT_LIST_MAX bytes) and chain length
 * (MT_HTTPS_PEER_MAX); request line plus headers (MT_HTTPS_HEADERS_MAX,
 * evhttp answers 413 or drops); the body (body_max: evhttp answers 413
 * from Content-Length or from the chunks read so far, and the request
 * callback checks once more); the idle timeout, which covers the TLS
 * handshake too (a client that connects and says nothing is dropped, as is
 * one that dribbles a ClientHello: slowloris, D10); open connections per
 * worker (max_conns: each new connection's SSL carries its worker in
 * ex_data, the SSL's free callback counts it out; at the bound the
 * worker's listener is disabled, so new clients wait in the kernel's
 * backlog rather than costing us memory and descriptors).  Per-source
 * rate limits are the handler's (it sees `source`).
 *
 * Memory per request: evhttp's own buffers, then one allocation holding
 * the body copy (NUL-terminated) and the peer certificates' DER, plus the
 * decoded path from evhttp_uridecode; all freed before the callback
 * returns.  The handler's answer body is handed to evbuffer by reference
 * and freed by libevent when sent.
 *
 * Plaintext never reaches the handler: if SSL_new fails (memory), evhttp
 * falls back to a plain bufferevent; the request callback sees no SSL and
 * refuses without calling the handler.
 *
 * Stopping.  Each worker has a "stop" event; mt_https_stop activates it
 * from the calling thread (evthread_use_pthreads makes that safe and wakes
 * the loop) and its callback breaks the loop from inside.  An activation
 * made before the loop starts is kept until it runs, where a bare
 * event_base_loopbreak would be forgotten (the loop clears its break flag
 * when it starts).  The worker then frees its evhttp on its own thread,
 * which closes the listener and every open connection, and runs the base
 * without blocking until nothing is active: a closed connection's
 * bufferevent and SSL are freed by callbacks libevent queues for later,
 * and event_base_free would drop some of those unrun (a leak ASan saw when
 * a client had just hung up).  Then the threads are joined and the bases
 * freed.
 *
 * Signals.  OpenSSL writes to sockets with write(2), so a peer that went
 * away raises SIGPIPE.  Worker threads start with every signal blocked: a
 * SIGPIPE stays pending on the worker and the write fails with EPIPE, and
 * the process's own handlers (SIGTERM for the daemon) run on its threads.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* SO_REUSEPORT */

#include "https.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define DEFAULT_THREADS 2
#define DEFAULT_BODY_MAX (64u * 1024u)
#define DEFAULT_IDLE_S 30
#define DEFAULT_BACKLOG 1024
#define DEFAULT_CONNS 512
#define IDLE_MAX_S 3600
#define BACKLOG_MAX 65535
#define EXTRA_NAME_MAX 64
#define EXTRA_VALUE_MAX 1024

#define TLS12_CIPHERS                                                                              \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                             \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "P-256:X25519"

struct worker {
	struct mt_https *srv;
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener; /* owned by http */
	struct event *stop_ev;
	pthread_t thread;
	int running;    /* the thread was created */
	int stopping;   /* evhttp_free under way: leave the listener alone */
	unsigned conns; /* open connections (SSL objects alive) */
	int paused;     /* the listener is disabled: conns reached max_conns */
};

struct mt_https {
	SSL_CTX *ctx;
	mt_https_handler h;
	mt_https_refusal on_refuse;
	void *arg;
	size_t body_max;
	unsigned max_conns; /* per worker */
	uint16_t port;
	unsigned n;
	struct worker *w; /* [n] */
};

/* ------------------------------------------------------------ helpers */

static void set_err(const struct mt_https_opts *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void set_err(const struct mt_https_opts *o, const char *fmt, ...)
{
	va_list ap;
	if (o == NULL || o->err == NULL || o->err_cap == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(o->err, o->err_cap, fmt, ap);
	va_end(ap);
}

static const char *status_text(int code)
{
	static const struct {
		int code;
		const char *text;
	} t[] = {
	        {200, "OK"},
	        {201, "Created"},
	        {202, "Accepted"},
	        {204, "No Content"},
	        {301, "Moved Permanently"},
	        {302, "Found"},
	        {303, "See Other"},
	        {304, "Not Modified"},
	        {307, "Temporary Redirect"},
	        {308, "Permanent Redirect"},
	        {400, "Bad Request"},
	        {401, "Unauthorized"},
	        {403, "Forbidden"},
	        {404, "Not Found"},
	        {405, "Method Not Allowed"},
	        {406, "Not Acceptable"},
	        {409, "Conflict"},
	        {410, "Gone"},
	        {411, "Length Required"},
	        {413, "Content Too Large"},
	        {414, "URI Too Long"},
	        {415, "Unsupported Media Type"},
	        {422, "Unprocessable Content"},
	        {429, "Too Many Requests"},
	        {431, "Request Header Fields Too Large"},
	        {500, "Internal Server Error"},
	        {501, "Not Implemented"},
	        {502, "Bad Gateway"},
	        {503, "Service Unavailable"},
	        {504, "Gateway Timeout"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i].code == code)
			return t[i].text;
	return code < 300   ? "OK"
	       : code < 400 ? "Redirect"
	       : code < 500 ? "Client Error"
	                    : "Server Error";
}

static const char *method_name(enum evhttp_cmd_type c)
{
	switch (c) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return NULL; /* TRACE, CONNECT: not allowed (evhttp_set_allowed_methods) */
	}
}

/* RFC 9110 §5.6.2 token. */
static int is_token(const char *s, size_t max)
{
	size_t n = 0;
	if (s == NULL || *s == '\0')
		return 0;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= max)
			return 0;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (strchr("!#$%&'*+-.^_`|~", c) == NULL)
			return 0;
	}
	return 1;
}

/* A header value we send: visible ASCII, space and tab; no CR, LF or
 * other control characters. */
static int is_field_value(const char *s, size_t max)
{
	size_t n = 0;
	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= max || c == 0x7f || (c < 0x20 && c != '\t'))
			return 0;
	}
	return 1;
}

/* How many times header `name` occurs. */
static size_t header_count(const struct evkeyvalq *hs, const char *name)
{
	size_t n = 0;
	const struct evkeyval *kv;
	for (kv = hs->tqh_first; kv != NULL; kv = kv->next.tqe_next)
		if (strcasecmp(kv->key, name) == 0)
			n++;
	return n;
}

static void free_ref(const void *data, size_t len, void *extra)
{
	(void)len;
	(void)extra;
	free((void *)data);
}

/* Answer a request the server refuses itself: a short text body, and the
 * connection closed after it (what was sent may not be framed as the
 * client meant). */
static void refuse(struct evhttp_request *req, int code)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	const char *text = status_text(code);
	evhttp_clear_headers(oh);
	(void)evhttp_add_header(oh, "Content-Type", "text/plain; charset=utf-8");
	(void)evhttp_add_header(oh, "Cache-Control", "no-store");
	(void)evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
	(void)evhttp_add_header(oh, "Connection", "close");
	if (b != NULL)
		(void)evbuffer_add_printf(b, "refused: %d %s\n", code, text);
	evhttp_send_reply(req, code, text, b);
	if (b != NULL)
		evbuffer_free(b);
}

/* A header the handler may add: a token name that is not one the server
 * frames or sets itself, a value without CR, LF or controls. */
static int header_ok(const char *n, const char *v)
{
	return is_token(n, EXTRA_NAME_MAX) && is_field_value(v, EXTRA_VALUE_MAX) &&
	       strcasecmp(n, "Content-Length") != 0 && strcasecmp(n, "Transfer-Encoding") != 0 &&
	       strcasecmp(n, "Connection") != 0 && strcasecmp(n, "Content-Type") != 0 &&
	       strcasecmp(n, "Cache-Control") != 0;
}

/* Send the handler's answer; takes rs->body. */
/* ---- streamed answers ------------------------------------------------
 *
 * Two owners hold a stream: the server (until the connection closes or
 * the answer ends; on the worker thread) and the handler's subscriber
 * (until mt_https_stream_release; any thread).  `lock` guards the queued
 * bytes and the flags; `req` and `wake` are touched only on the worker,
 * or under the lock to fire `wake`.  The last owner frees it. */
struct mt_https_stream {
	pthread_mutex_t lock;
	int refs;
	bool closed;  /* no more sends: the connection went or the answer ended */
	bool end_req; /* the subscriber let go, or fell behind: end the answer */
	struct evhttp_request *req;      /* worker only; NULL once closed */
	struct evhttp_connection *evcon; /* worker only */
	struct event *wake;              /* on the worker's base; NULL once closed */
	struct evbuffer *out;            /* queued, under lock */
};

static void stream_unref(struct mt_https_stream *st)
{
	int left;

	pthread_mutex_lock(&st->lock);
	left = --st->refs;
	pthread_mutex_unlock(&st->lock);
	if (left > 0)
		return;
	evbuffer_free(st->out);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* Worker: the server lets go (connection closed, or answer ended). */
static void stream_detach(struct mt_https_stream *st)
{
	struct event *ev;

	pthread_mutex_lock(&st->lock);
	st->closed = true;
	st->req = NULL;
	ev = st->wake;
	st->wake = NULL;
	pthread_mutex_unlock(&st->lock);
	if (st->evcon != NULL)
		evhttp_connection_set_closecb(st->evcon, NULL, NULL);
	st->evcon = NULL;
	if (ev != NULL)
		event_free(ev);
	stream_unref(st);
}

static void stream_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct mt_https_stream *st = arg;
	struct evhttp_request *req = st->req; /* the worker's own field */

	(void)evcon;
	stream_detach(st);
	/* The client went away while the answer streamed: libevent has taken
	 * the unfinished request off the connection and leaves it to its
	 * user (it frees only requests still attached, as at a stop). */
	if (req != NULL && evhttp_request_get_connection(req) == NULL)
		evhttp_request_free(req);
}

static void stream_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct mt_https_stream *st = arg;
	struct evbuffer *b = evbuffer_new();
	struct evhttp_request *req;
	bool end;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&st->lock);
	req = st->req;
	end = st->end_req;
	if (b != NULL)
		(void)evbuffer_add_buffer(b, st->out);
	pthread_mutex_unlock(&st->lock);
	if (req != NULL && b != NULL && evbuffer_get_length(b) > 0)
		evhttp_send_reply_chunk(req, b);
	if (b != NULL)
		evbuffer_free(b);
	if (req != NULL && (end || b == NULL)) {
		/* Let go first: ending the answer may close the connection
		 * (and would call the close callback on a stream let go of). */
		stream_detach(st);
		evhttp_send_reply_end(req);
	}
}

bool mt_https_stream_send(struct mt_https_stream *st, const void *data, size_t len)
{
	bool ok;

	if (st == NULL)
		return false;
	pthread_mutex_lock(&st->lock);
	ok = !st->closed && !st->end_req;
	if (ok && evbuffer_get_length(st->out) + len > MT_HTTPS_STREAM_MAX) {
		st->end_req = true; /* a client that does not read is cut off */
		ok = false;
	} else if (ok && evbuffer_add(st->out, data, len) != 0) {
		st->end_req = true;
		ok = false;
	}
	if (st->wake != NULL)
		event_active(st->wake, EV_READ, 0);
	pthread_mutex_unlock(&st->lock);
	return ok;
}

bool mt_https_stream_open(struct mt_https_stream *st)
{
	bool open;

	if (st == NULL)
		return false;
	pthread_mutex_lock(&st->lock);
	open = !st->closed && !st->end_req;
	pthread_mutex_unlock(&st->lock);
	return open;
}

void mt_https_stream_release(struct mt_https_stream *st)
{
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->lock);
	st->end_req = true;
	if (st->wake != NULL)
		event_active(st->wake, EV_READ, 0);
	pthread_mutex_unlock(&st->lock);
	stream_unref(st);
}

/* Start a streamed answer (headers already added) and hand it over. */
static void stream_start(struct worker *w, struct evhttp_request *req, struct mt_https_resp *rs,
                         struct evbuffer *first)
{
	struct mt_https_stream *st = calloc(1, sizeof *st);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (st == NULL || evcon == NULL || (st->out = evbuffer_new()) == NULL ||
	    (st->wake = event_new(w->base, -1, 0, stream_on_wake, st)) == NULL) {
		if (st != NULL) {
			if (st->out != NULL)
				evbuffer_free(st->out);
			free(st);
		}
		refuse(req, 503);
		return;
	}
	pthread_mutex_init(&st->lock, NULL);
	st->refs = 2;
	st->req = req;
	st->evcon = evcon;
	/* The stream outlives the idle timeout: no read or write deadline. */
	evhttp_connection_set_timeout(evcon, 0);
	evhttp_connection_set_closecb(evcon, stream_on_close, st);
	evhttp_send_reply_start(req, 200, "OK");
	if (evbuffer_get_length(first) > 0)
		evhttp_send_reply_chunk(req, first);
	rs->stream_open(rs->stream_ctx, st);
}

static void send_answer(struct worker *w, struct evhttp_request *req, struct mt_https_resp *rs)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct evbuffer *b = NULL;
	const char *ct = rs->content_type;
	int code = rs->status == 0 ? 500 : rs->status;
	int ok = code >= 200 && code <= 599;

	if (ct == NULL && rs->body_len > 0)
		ct = "application/octet-stream";
	if (ok && ct != NULL && !is_field_value(ct, EXTRA_VALUE_MAX))
		ok = 0;
	if (ok && rs->extra_header_name != NULL &&
	    !header_ok(rs->extra_header_name, rs->extra_header_value))
		ok = 0;
	if (ok && rs->n_headers > MT_HTTPS_HEADERS_OUT)
		ok = 0;
	for (size_t i = 0; ok && i < rs->n_headers; i++)
		if (memchr(rs->headers[i].value, '\0', sizeof rs->headers[i].value) == NULL ||
		    !header_ok(rs->headers[i].name, rs->headers[i].value))
			ok = 0;
	if (ok && rs->body == NULL && rs->body_len > 0)
		ok = 0;
	if (ok) {
		b = evbuffer_new();
		if (b == NULL)
			ok = 0;
	}
	if (ok && rs->body_len > 0) {
		if (evbuffer_add_reference(b, rs->body, rs->body_len, free_ref, NULL) != 0)
			ok = 0;
		else
			rs->body = NULL; /* libevent frees it once sent */
	}
	if (ok && ct != NULL && evhttp_add_header(oh, "Content-Type", ct) != 0)
		ok = 0;
	if (ok && rs->extra_header_name != NULL &&
	    evhttp_add_header(oh, rs->extra_header_name, rs->extra_header_value) != 0)
		ok = 0;
	for (size_t i = 0; ok && i < rs->n_headers; i++)
		if (evhttp_add_header(oh, rs->headers[i].name, rs->headers[i].value) != 0)
			ok = 0;
	if (ok && (evhttp_add_header(oh, "Cache-Control", "no-store") != 0 ||
	           evhttp_add_header(oh, "X-Content-Type-Options", "nosniff") != 0))
		ok = 0;
	free(rs->body);
	rs->body = NULL;
	if (!ok) {
		if (b != NULL)
			evbuffer_free(b);
		refuse(req, 500);
		return;
	}
	if (rs->stream_open != NULL && code == 200)
		stream_start(w, req, rs, b);
	else
		evhttp_send_reply(req, code, status_text(code), b);
	evbuffer_free(b);
}

/* The peer address as text; IPv4-mapped IPv6 as IPv4. */
static void peer_address(struct evhttp_connection *evcon, char *out, size_t cap, uint16_t *port)
{
	const struct sockaddr *sa = evhttp_connection_get_addr(evcon);
	out[0] = '\0';
	*port = 0;
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		(void)inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)cap);
		*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			(void)inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], out, (socklen_t)cap);
		else
			(void)inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)cap);
		*port = ntohs(in6->sin6_port);
	}
}

/* ------------------------------------------------------------ requests */

/* refuse(), after telling on_refuse who and what. */
static void refuse_told(const struct mt_https *s, struct evhttp_request *req, const char *method,
                        int code)
{
	if (s->on_refuse != NULL) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		const char *uri = evhttp_request_get_uri(req);
		char source[MT_HTTPS_SOURCE_MAX] = "", path[256];
		uint16_t port = 0;
		size_t n = uri ? strcspn(uri, "?") : 0;

		if (evcon != NULL)
			peer_address(evcon, source, sizeof source, &port);
		if (n >= sizeof path)
			n = sizeof path - 1;
		if (n > 0)
			memcpy(path, uri, n);
		path[n] = '\0';
		s->on_refuse(s->arg, source, method ? method : "?", path, code);
	}
	refuse(req, code);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	struct mt_https *s = w->srv;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct mt_https_req rq;
	struct mt_https_resp rs;
	X509 *leaf;
	STACK_OF(X509) * chain;
	size_t body_len, total, n_chain = 0, der_len[MT_HTTPS_PEER_MAX];
	X509 *certs[MT_HTTPS_PEER_MAX];
	const char *raw_path;
	char *path = NULL;
	size_t path_len = 0;
	uint8_t *mem = NULL, *p;

	/* Only TLS reaches the handler (see the note on SSL_new above). */
	if (ssl == NULL || !SSL_is_init_finished(ssl) || uri == NULL) {
		refuse_told(s, req, NULL, ssl == NULL ? 500 : 400);
		return;
	}
	memset(&rq, 0, sizeof rq);
	memset(&rs, 0, sizeof rs);

	rq.method = method_name(evhttp_request_get_command(req));
	if (rq.method == NULL) {
		refuse_told(s, req, rq.method, 405);
		return;
	}
	body_len = evbuffer_get_length(in);
	if (body_len > s->body_max) {
		refuse_told(s, req, rq.method, 413);
		return;
	}
	/* Headers whose meaning is ambiguous when given twice.  evhttp frames
	 * the body by the first Content-Length; a second one that says
	 * otherwise is a smuggling attempt, not a client bug. */
	if (header_count(ih, "Content-Type") > 1 || header_count(ih, "Authorization") > 1 ||
	    header_count(ih, "Cookie") > 1 ||
	    header_count(ih, "Content-Length") > 1 || header_count(ih, "Transfer-Encoding") > 1 ||
	    header_count(ih, "Host") > 1) {
		refuse_told(s, req, rq.method, 400);
		return;
	}

	/* Certificates: the leaf, then the rest as sent (server side,
	 * SSL_get_peer_cert_chain leaves the leaf out). */
	leaf = SSL_get0_peer_certificate(ssl);
	chain = SSL_get_peer_cert_chain(ssl);
	if (leaf != NULL) {
		int m = chain ? sk_X509_num(chain) : 0;
		certs[n_chain++] = leaf;
		for (int i = 0; i < m; i++) {
			X509 *x = sk_X509_value(chain, i);
			if (x == leaf)
				continue;
			if (n_chain == MT_HTTPS_PEER_MAX) {
				/* The verify callback refuses such a chain in the
				 * handshake; a caller's own SSL_CTX may not. */
				refuse_told(s, req, rq.method, 400);
				return;
			}
			certs[n_chain++] = x;
		}
	}
	total = body_len + 1;
	for (size_t i = 0; i < n_chain; i++) {
		int l = i2d_X509(certs[i], NULL);
		if (l <= 0 || (size_t)l > MT_HTTPS_CERT_LIST_MAX) {
			refuse_told(s, req, rq.method, 400);
			ERR_clear_error();
			return;
		}
		der_len[i] = (size_t)l;
		total += (size_t)l;
	}

	raw_path = evhttp_uri_get_path(uri);
	if (raw_path == NULL || raw_path[0] == '\0')
		raw_path = "/";
	path = evhttp_uridecode(raw_path, 0, &path_len);
	if (path == NULL) {
		refuse_told(s, req, rq.method, 500);
		return;
	}
	if (strlen(path) != path_len) { /* a %00 */
		free(path);
		refuse_told(s, req, rq.method, 400);
		return;
	}

	mem = malloc(total);
	if (mem == NULL) {
		free(path);
		refuse_told(s, req, rq.method, 503);
		return;
	}
	if (body_len > 0 && evbuffer_copyout(in, mem, body_len) != (ev_ssize_t)body_len) {
		free(mem);
		free(path);
		refuse_told(s, req, rq.method, 500);
		return;
	}
	mem[body_len] = 0;
	p = mem + body_len + 1;
	for (size_t i = 0; i < n_chain; i++) {
		unsigned char *q = p;
		if (i2d_X509(certs[i], &q) != (int)der_len[i]) {
			free(mem);
			free(path);
			ERR_clear_error();
			refuse_told(s, req, rq.method, 500);
			return;
		}
		rq.peer_der[i] = p;
		rq.peer_len[i] = der_len[i];
		rq.peer_x509[i] = certs[i];
		p += der_len[i];
	}
	rq.n_peer = n_chain;
	rq.body = mem;
	rq.body_len = body_len;
	rq.path = path;
	rq.query = evhttp_uri_get_query(uri);
	rq.content_type = evhttp_find_header(ih, "Content-Type");
	rq.authorization = evhttp_find_header(ih, "Authorization");
	rq.cookie = evhttp_find_header(ih, "Cookie");
	rq.accept = evhttp_find_header(ih, "Accept");
	peer_address(evcon, rq.source, sizeof rq.source, &rq.source_port);

	s->h(s->arg, &rq, &rs);

	free(mem);
	free(path);
	send_answer(w, req, &rs);
}

/* The ex_data slot of an SSL that holds its worker, and the slot's free
 * callback: an SSL is freed when its connection closes, so this is where a
 * worker's connection count goes down (and a paused listener resumes). */
static int conn_idx = -1;

static void on_ssl_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct worker *w = ptr;
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (w == NULL) /* an SSL that is not one of ours */
		return;
	if (w->conns > 0)
		w->conns--;
	if (w->paused && !w->stopping && w->conns < w->srv->max_conns) {
		if (evconnlistener_enable(w->listener) == 0)
			w->paused = 0;
	}
}

/* A new connection: a TLS bufferevent in the accepting state, counted
 * against max_conns (at the bound the listener pauses; new clients wait in
 * the kernel's backlog).  Runs on the worker's thread, as does every
 * on_ssl_free of its connections.  Returning NULL would make evhttp use a
 * plain socket; on_request refuses those. */
static struct bufferevent *on_bev(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	SSL *ssl = SSL_new(w->srv->ctx);
	struct bufferevent *bev;
	if (ssl == NULL) {
		ERR_clear_error();
		return NULL;
	}
	if (SSL_set_ex_data(ssl, conn_idx, w) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	w->conns++;
	if (w->conns >= w->srv->max_conns && !w->paused) {
		if (evconnlistener_disable(w->listener) == 0)
			w->paused = 1;
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		/* Whether libevent 2.1 freed `ssl` on this path differs between
		 * its error branches; leaking on an out-of-memory path beats a
		 * double free. */
		ERR_clear_error();
		return NULL;
	}
	/* A client that closes without close_notify is the common case
	 * (curl, browsers): treat it as EOF, not as an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* ------------------------------------------------------------ TLS context */

/* Replaces X509_verify_cert: count the client's certificates, build no
 * path (the handler verifies against the endpoint's roots). */
static int count_chain(X509_STORE_CTX *xs, void *arg)
{
	STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(xs);
	int n = sent ? sk_X509_num(sent) : 0;
	(void)arg;
	if (n > MT_HTTPS_PEER_MAX) {
		X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_CHAIN_TOO_LONG);
		return 0;
	}
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

enum mt_err mt_https_ssl_ctx(const char *cert_pem, EVP_PKEY *key, SSL_CTX **out)
{
	SSL_CTX *ctx;
	FILE *f;
	enum mt_err e = MT_ERR_CRYPTO;

	if (cert_pem == NULL || key == NULL || out == NULL)
		return MT_ERR_ARG;
	f = fopen(cert_pem, "r");
	if (f == NULL)
		return MT_ERR_IO;
	fclose(f);

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		ERR_clear_error();
		return MT_ERR_NOMEM;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		goto fail;
	SSL_CTX_set_security_level(ctx, 2);
	if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	                                 SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_set_num_tickets(ctx, 0) != 1)
		goto fail;
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_max_cert_list(ctx, MT_HTTPS_CERT_LIST_MAX);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, count_chain, NULL);

	if (SSL_CTX_use_certificate_chain_file(ctx, cert_pem) != 1) {
		e = MT_ERR_PKI_FORMAT;
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	ERR_clear_error();
	*out = ctx;
	return MT_OK;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return e;
}

/* ------------------------------------------------------------ server */

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_ok;

static void evthread_init(void)
{
	evthread_ok = evthread_use_pthreads() == 0;
	conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, on_ssl_free);
	if (conn_idx < 0)
		evthread_ok = 0;
}

/* Close the listener and every connection of w.  A closed connection's
 * bufferevent is freed by callbacks libevent queues on the base
 * (finalizers, deferred event callbacks holding a reference); event_base_free
 * would cancel those that are not finalizers, leaking the bufferevent and
 * its SSL, so the base is run until nothing is active. */
static void worker_close(struct worker *w)
{
	w->stopping = 1;
	if (w->http != NULL) {
		evhttp_free(w->http);
		w->http = NULL;
		w->listener = NULL;
	}
	for (int i = 0; i < 16; i++)
		if (event_base_loop(w->base, EVLOOP_NONBLOCK) != 0)
			break; /* 1: nothing left at all; -1: error */
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	event_base_loopbreak(w->base);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	(void)event_base_dispatch(w->base);
	worker_close(w); /* on this thread, where its connections live */
	return NULL;
}

union sa_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

static int parse_addr(const char *addr, uint16_t port, union sa_any *u, socklen_t *len)
{
	memset(u, 0, sizeof *u);
	if (inet_pton(AF_INET, addr, &u->in.sin_addr) == 1) {
		u->in.sin_family = AF_INET;
		u->in.sin_port = htons(port);
		*len = sizeof u->in;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &u->in6.sin6_addr) == 1) {
		u->in6.sin6_family = AF_INET6;
		u->in6.sin6_port = htons(port);
		*len = sizeof u->in6;
		return 0;
	}
	return -1;
}

/* A bound, listening, non-blocking socket; -1 with o->err set. */
static int listen_on(const struct mt_https_opts *o, const char *addr, uint16_t port, int backlog,
                     uint16_t *bound)
{
	union sa_any u;
	socklen_t len;
	int fd, one = 1, fl;
	const char *step;

	if (parse_addr(addr, port, &u, &len) != 0)
		return -1;
	fd = socket(u.sa.sa_family, SOCK_STREAM, 0);
	if (fd < 0) {
		step = "socket";
		goto fail;
	}
	step = "setsockopt";
	/* TCP_NODELAY is inherited by accepted sockets: OpenSSL writes a
	 * response as several records, and Nagle's algorithm would hold the
	 * later ones for the peer's delayed ACK (tens of milliseconds each). */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
		goto fail;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		step = "fcntl";
		goto fail;
	}
	step = "bind";
	if (bind(fd, &u.sa, len) != 0)
		goto fail;
	step = "listen";
	if (listen(fd, backlog) != 0)
		goto fail;
	step = "getsockname";
	len = sizeof u;
	if (getsockname(fd, &u.sa, &len) != 0)
		goto fail;
	*bound = ntohs(u.sa.sa_family == AF_INET ? u.in.sin_port : u.in6.sin6_port);
	return fd;
fail : {
	int err = errno;
	if (u.sa.sa_family == AF_INET6)
		set_err(o, "%s [%s]:%u: %s", step, addr, (unsigned)port, strerror(err));
	else
		set_err(o, "%s %s:%u: %s", step, addr, (unsigned)port, strerror(err));
	if (fd >= 0)
		close(fd);
	return -1;
}
}

static void server_free(struct mt_https *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < s->n; i++)
		if (s->w[i].running && s->w[i].stop_ev != NULL)
			event_active(s->w[i].stop_ev, EV_READ, 0);
	for (unsigned i = 0; i < s->n; i++)
		if (s->w[i].running)
			(void)pthread_join(s->w[i].thread, NULL);
	for (unsigned i = 0; i < s->n; i++) {
		struct worker *w = &s->w[i];
		if (w->base != NULL)
			worker_close(w); /* a worker whose thread never ran */
		if (w->stop_ev != NULL)
			event_free(w->stop_ev);
		if (w->base != NULL)
			event_base_free(w->base);
	}
	free(s->w);
	SSL_CTX_free(s->ctx);
	free(s);
}

/* Set up worker i on listening socket fd (taken in every case). */
static enum mt_err worker_init(struct mt_https *s, unsigned i, int fd, unsigned idle_s)
{
	struct worker *w = &s->w[i];
	struct evhttp_bound_socket *bound;
	w->srv = s;
	w->base = event_base_new();
	if (w->base == NULL) {
		close(fd);
		return MT_ERR_NOMEM;
	}
	w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
	w->http = evhttp_new(w->base);
	if (w->stop_ev == NULL || w->http == NULL) {
		close(fd);
		return MT_ERR_NOMEM;
	}
	evhttp_set_bevcb(w->http, on_bev, w);
	evhttp_set_gencb(w->http, on_request, w);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(w->http, MT_HTTPS_HEADERS_MAX);
	/* evhttp's own bound is four times ours, so that a body over body_max
	 * is still read and refused by on_request, where on_refuse tells the
	 * hub (which audits it); only a body over four times the bound gets
	 * evhttp's bare 413 on the declared length, without reading it. */
	evhttp_set_max_body_size(w->http, (ev_ssize_t)(s->body_max > MT_HTTPS_BODY_LIMIT / 4
	                                                       ? MT_HTTPS_BODY_LIMIT
	                                                       : s->body_max * 4));
	evhttp_set_timeout(w->http, (int)idle_s);
	evhttp_set_default_content_type(w->http, NULL);
	bound = evhttp_accept_socket_with_handle(w->http, fd);
	if (bound == NULL) {
		close(fd);
		return MT_ERR_NOMEM;
	}
	w->listener = evhttp_bound_socket_get_listener(bound);
	return MT_OK;
}

enum mt_err mt_https_start(const struct mt_https_opts *o, mt_https_handler h, void *arg,
                           struct mt_https **out)
{
	struct mt_https *s;
	const char *addr;
	unsigned n, idle_s;
	int backlog;
	uint16_t port;
	sigset_t all, old;
	union sa_any probe;
	socklen_t probe_len;
	enum mt_err e;

	if (o != NULL && o->err != NULL && o->err_cap > 0)
		o->err[0] = '\0';
	if (o == NULL || h == NULL || out == NULL || o->ssl_ctx == NULL) {
		set_err(o, "missing argument");
		return MT_ERR_ARG;
	}
	addr = o->addr ? o->addr : "127.0.0.1";
	n = o->threads ? o->threads : DEFAULT_THREADS;
	idle_s = o->idle_timeout_s ? o->idle_timeout_s : DEFAULT_IDLE_S;
	backlog = o->backlog ? o->backlog : DEFAULT_BACKLOG;
	if (n > MT_HTTPS_THREADS_MAX || o->body_max > MT_HTTPS_BODY_LIMIT || idle_s > IDLE_MAX_S ||
	    backlog < 0 || backlog > BACKLOG_MAX || o->max_conns > MT_HTTPS_CONNS_LIMIT) {
		set_err(o, "a limit is out of range");
		return MT_ERR_ARG;
	}
	if (parse_addr(addr, 0, &probe, &probe_len) != 0) {
		set_err(o, "not a numeric IP address: %.64s", addr);
		return MT_ERR_ARG;
	}
	(void)pthread_once(&evthread_once, evthread_init);
	if (!evthread_ok) {
		set_err(o, "libevent threads could not be set up");
		return MT_ERR_NOMEM;
	}

	s = calloc(1, sizeof *s);
	if (s == NULL)
		return MT_ERR_NOMEM;
	s->w = calloc(n, sizeof *s->w);
	if (s->w == NULL) {
		free(s);
		return MT_ERR_NOMEM;
	}
	s->n = n;
	s->h = h;
	s->on_refuse = o->on_refuse;
	s->arg = arg;
	s->body_max = o->body_max ? o->body_max : DEFAULT_BODY_MAX;
	s->max_conns = o->max_conns ? o->max_conns : DEFAULT_CONNS;
	if (SSL_CTX_up_ref(o->ssl_ctx) != 1) {
		free(s->w);
		free(s);
		return MT_ERR_NOMEM;
	}
	s->ctx = o->ssl_ctx;

	/* Every socket bound and listening before any thread runs; with port
	 * 0 the first one picks the port and the others join it. */
	port = o->port;
	for (unsigned i = 0; i < n; i++) {
		uint16_t bound = 0;
		int fd = listen_on(o, addr, port, backlog, &bound);
		if (fd < 0) {
			server_free(s);
			return MT_ERR_IO;
		}
		if (i == 0)
			s->port = port = bound;
		e = worker_init(s, i, fd, idle_s);
		if (e != MT_OK) {
			set_err(o, "libevent could not set up a worker");
			server_free(s);
			return e;
		}
	}

	/* Workers inherit a mask blocking every signal (SIGPIPE included). */
	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0) {
		server_free(s);
		return MT_ERR_INTERNAL;
	}
	e = MT_OK;
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&s->w[i].thread, NULL, worker_main, &s->w[i]) != 0) {
			set_err(o, "could not start a worker thread");
			e = MT_ERR_NOMEM;
			break;
		}
		s->w[i].running = 1;
	}
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != MT_OK) {
		server_free(s);
		return e;
	}
	*out = s;
	return MT_OK;
}

uint16_t mt_https_port(const struct mt_https *s)
{
	return s ? s->port : 0;
}

void mt_https_stop(struct mt_https *s)
{
	server_free(s);
}
