/*
 * https.h — the hub's HTTPS server: libevent's evhttp over OpenSSL, with
 * TLS client certificates (protocol §2 EST, §8; docs/hub-https.md).
 *
 * The server owns sockets, TLS and HTTP/1.1 framing only.  It decides
 * nothing about trust: it *requests* a client certificate, lets the
 * handshake prove possession of its key (the CertificateVerify message),
 * and hands the certificate chain the client sent, as DER, to the handler,
 * which verifies it against the roots that apply to the endpoint (the
 * manufacturers' for EST enrolment, the operator CA's for the rest).  The
 * TLS policy is fixed here: TLS 1.2 minimum, ECDHE with AEAD suites only, no
 * renegotiation, no compression, no session tickets (threat B09).
 *
 * Threads: `threads` worker threads, each with its own event base and
 * listening socket on the same port (SO_REUSEPORT), so handshakes run in
 * parallel.  The handler is called from any of them and must be
 * thread-safe; it runs on the worker's event loop, so while it works that
 * worker serves nobody else (keep it short; a slow token signature is the
 * longest thing it should wait for).  Requests are bounded before they
 * reach the handler: the client's certificate list (MT_HTTPS_CERT_LIST_MAX
 * bytes, MT_HTTPS_PEER_MAX certificates, else the handshake fails: threat
 * B12), request line and headers (MT_HTTPS_HEADERS_MAX), body (`body_max`),
 * open connections per thread (`max_conns`), and a connection idle timeout
 * that also bounds a handshake that never ends.  Worker threads block every
 * signal (SIGPIPE from a peer that went away included), so signals go to
 * the caller's threads.
 *
 * Changes to this contract since it was first written (docs/hub-https.md):
 *   - mt_https_opts gained `err`/`err_cap`, where mt_https_start writes a
 *     sentence naming what failed ("bind 127.0.0.1:8443: Address already
 *     in use"): the daemon must be able to say which address it could not
 *     take.
 *   - the limits are named constants (MT_HTTPS_HEADERS_MAX,
 *     MT_HTTPS_CERT_LIST_MAX, MT_HTTPS_THREADS_MAX, MT_HTTPS_BODY_LIMIT,
 *     MT_HTTPS_CONNS_LIMIT).
 *   - mt_https_opts gained `max_conns`: open connections are bounded per
 *     thread like everything else that grows (libevent 2.1's evhttp has
 *     no such bound; without one a flood of idle handshakes also runs the
 *     process out of descriptors, and accept() failing with EMFILE spins).
 *   - the client chain is vetted by an SSL_CTX certificate-verify callback
 *     (SSL_CTX_set_cert_verify_callback) that only counts certificates,
 *     instead of OpenSSL's path building with a verify callback returning
 *     1: a hostile chain costs no path-building work (B12), and the
 *     handshake's CertificateVerify still proves the leaf's key.
 *   - `source` is IPv4 text for IPv4-mapped IPv6 peers of a "::" listener,
 *     so per-source limits (D10) see one address per client.
 *   - for the web console (console.h, docs/console.md): mt_https_req
 *     gained `cookie` (the Cookie header; given twice: refused), and
 *     mt_https_resp gained `headers[]`, up to MT_HTTPS_HEADERS_OUT more
 *     answer headers with their values held in the answer itself (a
 *     console page carries seven security headers, Set-Cookie and
 *     Location; a session cookie is made per request, so its value
 *     cannot be a string literal).  Both are additive: a handler that
 *     leaves them zero answers exactly as before.
 */
#ifndef MT_HUB_HTTPS_H
#define MT_HUB_HTTPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "medtrust/mt_err.h"

#define MT_HTTPS_PEER_MAX 8        /* certificates of a client chain (more: handshake fails) */
#define MT_HTTPS_SOURCE_MAX 64     /* "IPv6 text" */
#define MT_HTTPS_HEADERS_MAX 8192  /* request line and headers, bytes */
#define MT_HTTPS_CERT_LIST_MAX 32768 /* the client's Certificate message, bytes */
#define MT_HTTPS_THREADS_MAX 64    /* worker threads */
#define MT_HTTPS_BODY_LIMIT (16u << 20) /* the largest body_max accepted */
#define MT_HTTPS_CONNS_LIMIT 65536 /* the largest max_conns accepted */
#define MT_HTTPS_HEADERS_OUT 12    /* headers[] of an answer */
#define MT_HTTPS_HEADER_VALUE_MAX 1024 /* bytes of one answer header value, NUL included */

/* One request as the handler sees it.  Everything is owned by the server
 * and valid only during the handler call. */
struct mt_https_req {
	const char *method;       /* "GET", "POST", ... */
	const char *path;         /* percent-decoded path, no query: "/.well-known/est/cacerts"
	                           * ("/" when the request had none; a %00 is refused) */
	const char *query;        /* raw query string or NULL */
	const char *content_type; /* the Content-Type header or NULL (given twice: refused) */
	const char *authorization;/* the Authorization header or NULL (given twice: refused) */
	const char *cookie;       /* the Cookie header or NULL (given twice: refused) */
	const char *accept;       /* the Accept header or NULL (the first if repeated; FHIR
	                           * content negotiation, fhir.h) */
	const uint8_t *body;      /* NUL-terminated copy; body_len excludes the NUL */
	size_t body_len;
	/* The client's certificates as sent in the handshake, leaf first
	 * (n_peer = 0: none).  The handshake proved the leaf's key; nothing
	 * else about them is checked. */
	const uint8_t *peer_der[MT_HTTPS_PEER_MAX];
	size_t peer_len[MT_HTTPS_PEER_MAX];
	/* The same certificates as OpenSSL parsed them in the handshake
	 * (X509 *, borrowed for the handler call): mt_cert_from_x509 takes
	 * them without decoding their keys a second time. */
	struct x509_st *peer_x509[MT_HTTPS_PEER_MAX];
	size_t n_peer;
	char source[MT_HTTPS_SOURCE_MAX]; /* client IP address, text (IPv4-mapped: IPv4) */
	uint16_t source_port;
};

/* The handler's answer, zeroed before the call.  `body` is malloc'ed by
 * the handler (or NULL) and freed by the server.  status 0 is taken as 500;
 * a status outside 200..599, or a Content-Type or extra header that could
 * not be sent as given (CR, LF, a name that is not an RFC 9110 token, or a
 * framing header: Content-Length, Transfer-Encoding, Connection), turns the
 * answer into a bodiless 500.  Every answer carries `Cache-Control:
 * no-store` and `X-Content-Type-Options: nosniff`; a body without a
 * content_type goes as application/octet-stream. */
struct mt_https_header {
	const char *name; /* a string literal: an RFC 9110 token of ≤ 64 bytes */
	char value[MT_HTTPS_HEADER_VALUE_MAX]; /* NUL-terminated */
};

struct mt_https_stream; /* a streamed answer: see below */
typedef void (*mt_https_stream_fn)(void *ctx, struct mt_https_stream *st);

struct mt_https_resp {
	int status;
	const char *content_type; /* a string literal, or NULL */
	uint8_t *body;
	size_t body_len;
	const char *extra_header_name;  /* optional, e.g. "Retry-After" (≤ 64 bytes) */
	const char *extra_header_value; /* copied (≤ 1024 bytes) */
	/* More headers, sent in order after the extra header, under the same
	 * rules (a name may repeat: two Set-Cookie).  n_headers >
	 * MT_HTTPS_HEADERS_OUT, like a header that breaks a rule, turns the
	 * answer into a bodiless 500. */
	size_t n_headers;
	struct mt_https_header headers[MT_HTTPS_HEADERS_OUT];
	/* A streamed answer (see below): NULL for an ordinary one. */
	mt_https_stream_fn stream_open;
	void *stream_ctx;
};

typedef void (*mt_https_handler)(void *arg, const struct mt_https_req *rq,
                                 struct mt_https_resp *rs);

/* ---- streamed answers (Server-Sent Events) ---------------------------------
 *
 * A handler that sets rs->stream_open (with status 200 and a content_type
 * such as "text/event-stream") answers with a stream: the headers and the
 * body, if any, go out at once as the start of a chunked answer, the
 * connection stays open, and stream_open(stream_ctx, st) is called (on the
 * worker, right after the handler) with the stream's handle.  From then
 * on any thread may queue bytes on it with mt_https_stream_send until it
 * says the stream is closed; the one who got the handle ends its use with
 * mt_https_stream_release (which also ends the answer if the client is
 * still there).  Queued bytes are bounded (MT_HTTPS_STREAM_MAX): a client
 * that does not read is cut off, never buffered without end.  A stream
 * survives its connection's idle timeout (the console's live view is open
 * for hours); the writer sends a comment line now and then so a dead
 * client is noticed. */
#define MT_HTTPS_STREAM_MAX (1u << 20)
/* Queue `len` bytes (any thread).  false: the stream is closed (client
 * gone, server stopping, or it fell MT_HTTPS_STREAM_MAX behind): release it. */
bool mt_https_stream_send(struct mt_https_stream *st, const void *data, size_t len);
/* Whether the stream is still open (any thread). */
bool mt_https_stream_open(struct mt_https_stream *st);
/* The caller's handle ends (any thread); the answer ends if still open. */
void mt_https_stream_release(struct mt_https_stream *st);

/* Told of every request the server refuses itself, before the handler
 * would see it (413 body over body_max, 400 ambiguous headers or path,
 * 405 method, 5xx): the client's address, the method (or "?") and the
 * raw path (query cut off, at most 255 bytes), and the status sent.  The
 * hub audits these.  Called on a worker thread; must be thread-safe. */
typedef void (*mt_https_refusal)(void *arg, const char *source, const char *method,
                                 const char *path, int status);

struct mt_https_opts {
	const char *addr;      /* "127.0.0.1", "::", ...; NULL = "127.0.0.1" */
	uint16_t port;         /* 0 = any free port (mt_https_port tells) */
	SSL_CTX *ssl_ctx;      /* from mt_https_ssl_ctx; the server takes a reference */
	unsigned threads;      /* 0 = 2 */
	size_t body_max;       /* 0 = 64 KiB */
	unsigned idle_timeout_s; /* 0 = 30 */
	int backlog;           /* 0 = 1024 */
	unsigned max_conns;    /* open connections per thread; 0 = 512.  At the
	                        * bound the thread stops accepting (new clients
	                        * wait in the backlog) until one closes. */
	mt_https_refusal on_refuse; /* optional; gets the handler's arg */
	char *err;             /* optional: why mt_https_start failed, NUL-terminated */
	size_t err_cap;        /* bytes at err */
};

struct mt_https;

/* A server-side SSL_CTX with the policy above, the certificate chain
 * cert_pem (leaf first, PEM file) and `key` (an EVP_PKEY, e.g. from
 * mt_key_evp: the key may live in a token), requesting (not requiring) a
 * client certificate and accepting any chain the client sends of at most
 * MT_HTTPS_PEER_MAX certificates (the handler verifies).  *out is new with
 * one reference, the caller's (SSL_CTX_free); it takes its own reference to
 * `key`.  Errors: MT_ERR_ARG, MT_ERR_IO (cert file unreadable),
 * MT_ERR_PKI_FORMAT (no certificate in it), MT_ERR_CRYPTO (OpenSSL refused
 * the key or a setting, or the key is not the certificate's). */
MT_NODISCARD enum mt_err mt_https_ssl_ctx(const char *cert_pem, EVP_PKEY *key, SSL_CTX **out);

/* Bind, listen and start the worker threads.  When it returns MT_OK every
 * socket is bound and listening: a client may connect at once (its
 * connection waits in the backlog until a worker accepts it).  `addr` is
 * numeric (no name lookup).  Limits: threads ≤ MT_HTTPS_THREADS_MAX,
 * body_max ≤ MT_HTTPS_BODY_LIMIT, idle_timeout_s ≤ 3600, backlog ≤ 65535,
 * max_conns ≤ MT_HTTPS_CONNS_LIMIT (threads × max_conns descriptors must
 * fit under RLIMIT_NOFILE).
 * Errors: MT_ERR_ARG (NULL, a limit exceeded, addr not numeric),
 * MT_ERR_IO (socket/bind/listen: the message in o->err names the address
 * and the reason), MT_ERR_NOMEM (also: libevent or a thread could not be
 * set up), MT_ERR_INTERNAL (the signal mask could not be set).  On error
 * nothing is left running and *out is untouched. */
MT_NODISCARD enum mt_err mt_https_start(const struct mt_https_opts *o, mt_https_handler h,
                                        void *arg, struct mt_https **out);

/* The port actually bound (useful with port 0). */
uint16_t mt_https_port(const struct mt_https *s);

/* Stop accepting, drop open connections (a request half read is
 * dropped; the handler is never interrupted: stop waits for a handler
 * call in progress), join the threads and free everything.  Safe from any
 * thread but a worker (not from inside the handler).  NULL is a no-op. */
void mt_https_stop(struct mt_https *s);

#endif
