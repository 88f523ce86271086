/*
 * mqtt.c — the MQTT-over-mTLS plumbing the hub and the device agent share
 * (mt_mqtt.h).  Policy lives in one place: a change of cipher list or TLS
 * floor here changes both ends of the link at once.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "mt_mqtt.h"
#include <mqtt_protocol.h>
#include "medtrust/mt_message.h"
#include "medtrust/mt_util.h"

#define TLS12_CIPHERS                                                                              \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                             \
	"ECDHE-ECDSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "P-256:X25519"

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init_once(void)
{
	mosquitto_lib_init();
}

void mt_mqtt_lib_init(void)
{
	pthread_once(&lib_once, lib_init_once);
}

enum mt_err mt_mqtt_parse_url(const char *url, struct mt_mqtt_url *u)
{
	static const char scheme[] = "mqtts://";
	const char *h, *colon, *end;
	unsigned long port = 0;
	size_t hl;

	if (url == NULL || u == NULL || strncmp(url, scheme, sizeof scheme - 1) != 0)
		return MT_ERR_ARG;
	h = url + sizeof scheme - 1;
	if (*h == '[') {
		end = strchr(h, ']');
		if (end == NULL || end[1] != ':')
			return MT_ERR_ARG;
		h++;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(h, ':');
		if (colon == NULL)
			return MT_ERR_ARG;
		hl = (size_t)(colon - h);
	}
	if (hl == 0 || hl >= sizeof u->host || colon[1] == '\0')
		return MT_ERR_ARG;
	for (const char *p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return MT_ERR_ARG;
		port = port * 10 + (unsigned long)(*p - '0');
		if (port > 65535)
			return MT_ERR_ARG;
	}
	if (port == 0)
		return MT_ERR_ARG;
	memcpy(u->host, h, hl);
	u->host[hl] = '\0';
	u->port = (uint16_t)port;
	return MT_OK;
}

enum mt_err mt_mqtt_tls_ctx(const char *ca_file, const char *cert_file, EVP_PKEY *key,
                            const char *host, SSL_CTX **out, char *why, size_t why_cap)
{
	SSL_CTX *ctx;
	X509_VERIFY_PARAM *vp;
	unsigned char ip[16];
	enum mt_err e = MT_ERR_CRYPTO;

	if (ca_file == NULL || cert_file == NULL || key == NULL || host == NULL || out == NULL)
		return MT_ERR_ARG;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		ERR_clear_error();
		return MT_ERR_NOMEM;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
		mt_say(why, why_cap, "TLS policy not accepted by OpenSSL");
		goto fail;
	}
	SSL_CTX_set_security_level(ctx, 2);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	                                 SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		mt_say(why, why_cap, "cannot load the CA %s", ca_file);
		e = MT_ERR_IO;
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	vp = SSL_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1)
			goto fail;
	} else if (X509_VERIFY_PARAM_set1_host(vp, host, 0) != 1) {
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		mt_say(why, why_cap, "cannot load the client certificate %s", cert_file);
		e = MT_ERR_PKI_FORMAT;
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		mt_say(why, why_cap, "the key is not the one of %s", cert_file);
		goto fail;
	}
	ERR_clear_error();
	*out = ctx;
	return MT_OK;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return e;
}

enum mt_err mt_mqtt_tls_reload(SSL_CTX *ctx, const char *cert_file, EVP_PKEY *key)
{
	enum mt_err e = MT_OK;

	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
		e = MT_ERR_PKI_FORMAT;
	else if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		e = MT_ERR_CRYPTO;
	ERR_clear_error();
	return e;
}

enum mt_err mt_mqtt_client(const char *client_id, const char *username, bool clean_start,
                           SSL_CTX *ctx, void *userdata, struct mosquitto **out)
{
	struct mosquitto *m;

	if (client_id == NULL || username == NULL || ctx == NULL || out == NULL)
		return MT_ERR_ARG;
	m = mosquitto_new(client_id, clean_start, userdata);
	if (m == NULL)
		return MT_ERR_NOMEM;
	if (mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) != MOSQ_ERR_SUCCESS ||
	    mosquitto_void_option(m, MOSQ_OPT_SSL_CTX, ctx) != MOSQ_ERR_SUCCESS ||
	    mosquitto_int_option(m, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0) != MOSQ_ERR_SUCCESS ||
	    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1) != MOSQ_ERR_SUCCESS ||
	    mosquitto_username_pw_set(m, username, NULL) != MOSQ_ERR_SUCCESS) {
		mosquitto_destroy(m);
		return MT_ERR_ARG;
	}
	/* Reconnects are the caller's: it backs off with jitter (FIELD-NOTES:
	 * a reconnect storm costs the broker ~2.5 ms of CPU per device). */
	*out = m;
	return MT_OK;
}

int mt_mqtt_connect(struct mosquitto *m, const struct mt_mqtt_url *u, int keepalive_s,
                    uint32_t expiry_s)
{
	mosquitto_property *props = NULL;
	int rc;

	if (expiry_s > 0) {
		rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, expiry_s);
		if (rc != MOSQ_ERR_SUCCESS)
			return rc;
	}
	rc = mosquitto_connect_bind_v5(m, u->host, u->port, keepalive_s, NULL, props);
	mosquitto_property_free_all(&props);
	return rc;
}

bool mt_mqtt_topic_up(const char *topic, char id[65], const char **leaf)
{
	static const char pre[] = "mt/v1/";
	const char *p, *slash;
	size_t n;

	if (topic == NULL || strncmp(topic, pre, sizeof pre - 1) != 0)
		return false;
	p = topic + sizeof pre - 1;
	slash = strchr(p, '/');
	if (slash == NULL)
		return false;
	n = (size_t)(slash - p);
	if (!mt_device_id_valid(p, n) || strncmp(slash, "/up/", 4) != 0)
		return false;
	memcpy(id, p, n);
	id[n] = '\0';
	*leaf = slash + 4;
	return strchr(*leaf, '/') == NULL && (*leaf)[0] != '\0';
}
