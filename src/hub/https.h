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
 * thread-safe.  Requests are bounded before they reach the handler:
 * headers (8 KiB), body (`body_max`), and a connection idle timeout.
 */
#ifndef MT_HUB_HTTPS_H
#define MT_HUB_HTTPS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "medtrust/mt_err.h"

#define MT_HTTPS_PEER_MAX 8        /* certificates of a client chain handed on */
#define MT_HTTPS_SOURCE_MAX 64     /* "IPv6 text" */

/* One request as the handler sees it.  Everything is owned by the server
 * and valid only during the handler call. */
struct mt_https_req {
	const char *method;       /* "GET", "POST", ... */
	const char *path;         /* decoded path, no query: "/.well-known/est/cacerts" */
	const char *query;        /* raw query string or NULL */
	const char *content_type; /* the Content-Type header or NULL */
	const char *authorization;/* the Authorization header or NULL */
	const uint8_t *body;      /* NUL-terminated copy; body_len excludes the NUL */
	size_t body_len;
	/* The client's certificates as sent in the handshake, leaf first
	 * (n_peer = 0: none).  The handshake proved the leaf's key; nothing
	 * else about them is checked. */
	const uint8_t *peer_der[MT_HTTPS_PEER_MAX];
	size_t peer_len[MT_HTTPS_PEER_MAX];
	size_t n_peer;
	char source[MT_HTTPS_SOURCE_MAX]; /* client IP address, text */
	uint16_t source_port;
};

/* The handler's answer.  `body` is malloc'ed by the handler (or NULL) and
 * freed by the server.  status 0 is taken as 500. */
struct mt_https_resp {
	int status;
	const char *content_type; /* a string literal, or NULL */
	uint8_t *body;
	size_t body_len;
	const char *extra_header_name;  /* optional, e.g. "Retry-After" */
	const char *extra_header_value; /* copied */
};

typedef void (*mt_https_handler)(void *arg, const struct mt_https_req *rq,
                                 struct mt_https_resp *rs);

struct mt_https_opts {
	const char *addr;      /* "127.0.0.1", "::", ...; NULL = "127.0.0.1" */
	uint16_t port;         /* 0 = any free port (mt_https_port tells) */
	SSL_CTX *ssl_ctx;      /* from mt_https_ssl_ctx; the server takes a reference */
	unsigned threads;      /* 0 = 2 */
	size_t body_max;       /* 0 = 64 KiB */
	unsigned idle_timeout_s; /* 0 = 30 */
	int backlog;           /* 0 = 1024 */
};

struct mt_https;

/* A server-side SSL_CTX with the policy above, the certificate chain
 * cert_pem (leaf first, PEM file) and `key` (an EVP_PKEY, e.g. from
 * mt_key_evp: the key may live in a token), requesting (not requiring) a
 * client certificate and accepting any chain the client sends (the handler
 * verifies).  Errors: MT_ERR_ARG, MT_ERR_IO (cert file), MT_ERR_PKI_FORMAT,
 * MT_ERR_CRYPTO (OpenSSL refused the key or settings). */
MT_NODISCARD enum mt_err mt_https_ssl_ctx(const char *cert_pem, EVP_PKEY *key, SSL_CTX **out);

/* Bind, listen and start the worker threads.  Errors: MT_ERR_ARG,
 * MT_ERR_IO (bind/listen: the message names the address), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_https_start(const struct mt_https_opts *o, mt_https_handler h,
                                        void *arg, struct mt_https **out);

/* The port actually bound (useful with port 0). */
uint16_t mt_https_port(const struct mt_https *s);

/* Stop accepting, finish or drop open connections, join the threads and
 * free everything.  NULL is a no-op. */
void mt_https_stop(struct mt_https *s);

#endif
