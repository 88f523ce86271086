/*
 * mt_mqtt.h — what the hub and the device agent share to speak MQTT 5 over
 * mutual TLS to the broker (protocol §3; docs/ingest.md, docs/device-agent.md).
 *
 * Both sides use libmosquitto with a TLS context of our own making
 * (MOSQ_OPT_SSL_CTX), because the client key lives in a token: the
 * context carries the EVP_PKEY from mt_key_evp, whose signing runs inside
 * the token, so the private key is never exported.  The context is the
 * same policy on both sides: TLS 1.2 at least (1.3 preferred), AEAD suites
 * only, the broker verified against the operator CA and its certificate
 * name checked against the host connected to, no session tickets.
 *
 * libmosquitto does none of its own certificate checks when handed a
 * context (it only sets SNI), so every check lives here.
 */
#ifndef MT_NET_MQTT_H
#define MT_NET_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>
#include <openssl/ssl.h>

#include "medtrust/mt_err.h"

#define MT_MQTT_HOST_MAX 256
#define MT_MQTT_TOPIC_MAX 128 /* mt/v1/<64-byte id>/down/rcpt and some */
#define MT_MQTT_SESSION_EXPIRY 86400u /* protocol §3: at least a day */

/* "mqtts://host:port" (port required, host a name or an IPv4 address or
 * [IPv6]).  Errors: MT_ERR_ARG. */
struct mt_mqtt_url {
	char host[MT_MQTT_HOST_MAX];
	uint16_t port;
};
MT_NODISCARD enum mt_err mt_mqtt_parse_url(const char *url, struct mt_mqtt_url *u);

/* A client TLS context: trust exactly the certificates in `ca_file`,
 * present `cert_file` (PEM, leaf first) with `key` (which the context
 * references), check the server's name against `host` (DNS name or IP
 * address).  The caller frees *out with SSL_CTX_free.  `why` says what
 * failed.  Errors: MT_ERR_IO (a file), MT_ERR_PKI_FORMAT, MT_ERR_CRYPTO. */
MT_NODISCARD enum mt_err mt_mqtt_tls_ctx(const char *ca_file, const char *cert_file,
                                         EVP_PKEY *key, const char *host, SSL_CTX **out,
                                         char *why, size_t why_cap);

/* Load a renewed client certificate (and its key) into an existing
 * context, for the next connection.  (libmosquitto keeps a reference to
 * the context it was given and never drops it when handed another, so a
 * client keeps one context for life.)  Errors: MT_ERR_PKI_FORMAT,
 * MT_ERR_CRYPTO. */
MT_NODISCARD enum mt_err mt_mqtt_tls_reload(SSL_CTX *ctx, const char *cert_file, EVP_PKEY *key);

/* A libmosquitto client speaking MQTT 5 over `ctx` (referenced, not
 * owned: free the client first), username = `username`, client id
 * `client_id`, with clean start as given.  Call mt_mqtt_lib_init once per
 * process first.  Errors: MT_ERR_NOMEM, MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_mqtt_client(const char *client_id, const char *username,
                                        bool clean_start, SSL_CTX *ctx, void *userdata,
                                        struct mosquitto **out);

/* Connect (mosquitto_connect_bind_v5: the TCP connection is made here,
 * the TLS handshake and CONNECT run in the loop that follows) with session
 * expiry `expiry_s` (0: none).  Call again to reconnect.  Returns a
 * MOSQ_ERR_* code. */
int mt_mqtt_connect(struct mosquitto *m, const struct mt_mqtt_url *u, int keepalive_s,
                    uint32_t expiry_s);

/* mosquitto_lib_init, once (thread-safe). */
void mt_mqtt_lib_init(void);

/* Split "mt/v1/<id>/up/<leaf>": the id (NUL-terminated into id[0..65))
 * and the leaf.  False for anything else (a topic the broker's ACL should
 * never have let through). */
bool mt_mqtt_topic_up(const char *topic, char id[65], const char **leaf);

#endif
