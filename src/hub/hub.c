/*
 * hub.c — the onboarding service of medtrustd (hub.h, protocol §2,
 * docs/onboarding.md).
 *
 * Every request runs the same shape: rate limit → authenticate the TLS
 * client certificate for what the endpoint needs → parse the body →
 * decide under the hub lock (registry, CA, audit) → answer.  Every exit
 * after the rate limit writes exactly one audit record naming the outcome
 * (`est.enroll`, `est.enroll.refused`, ...), the device or the source
 * address, and a one-word reason; refusals answer `refused: <sentence>`
 * as text/plain with the HTTP status that fits (400 bad request body, 401
 * no or unverifiable client certificate, 403 policy, 415 content type,
 * 429 rate limit).
 *
 * The enrolment decisions, in order (simpleenroll):
 *   1. a client certificate was presented (the TLS handshake proved its key)
 *   2. it chains to a trusted manufacturer root, as a clientAuth leaf
 *      (an operational certificate here is refused: reenroll is the way)
 *   3. its CN is a device id, and that serial stands in an imported manifest
 *   4. the manifest entry's manufacturer is the root it chained to, and the
 *      entry's birth-key kid and birth-certificate hash are this
 *      certificate's: otherwise a clone (same serial, another key) — D02
 *   5. the device is manifested or active (not revoked, decommissioned or
 *      released) — D06
 *   6. the CSR: base64 DER, bounded, well formed, signed by its own key
 *      (proof of possession, D04), CN equal to the serial (B11), a key other
 *      than the birth key
 *   7. issue CN=<serial from the birth certificate> for the CSR's key; a
 *      fresh enrolment supersedes (revokes) the device's earlier
 *      certificates, so only one operational identity is alive
 * A fresh enrolment that supersedes certificates signs a new CRL at once
 * and runs the revoke hook, as `medtrust device revoke` does.
 * simplereenroll checks the operational certificate instead (chains to the
 * operator CA, is the registry's, not revoked, device active) and does not
 * supersede: the old certificate simply expires.
 *
 * Rate limits (D10): a bucket per source address (est_rate/s, est_burst)
 * for every endpoint but /healthz, and a bucket per device id for
 * enrolment (burst 10, one per 6 s) that only birth certificates chaining
 * to a trusted manufacturer draw on.  A refused request is audited when it
 * is the first of a run and then every 100th, with the count, so a flood
 * cannot flood the audit chain but leaves its size in it.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "hub.h"
#include "console.h"
#include "fhir.h"
#include "medtrust/mt_est.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_util.h"
#include "mt_mqtt.h"
#include "ratelimit.h"

#define HUB_ID_RATE (1.0 / 6.0)
#define HUB_ID_BURST 10.0
#define HUB_AUDIT_EVERY 100 /* rate-limited refusals per audit record */
#define HUB_PEM_MAX 8192

struct mt_hub {
	struct mt_deploy *d;
	struct mt_key *tls_key; /* after mt_hub_ssl_ctx */
	pthread_mutex_t lock;
	struct mt_rl rl_source, rl_id;
	uint64_t op_lifetime_s;
	char *cacerts_b64; /* EST /cacerts body */
	size_t cacerts_len;
	char ca_pem[HUB_PEM_MAX];
	char cmd_pem[HUB_PEM_MAX];
	char hub_kx_b64[2 * MT_SPKI_MAX];
	char broker_url[300];
	int64_t crl_next_update;
	struct mt_console *console; /* every path but EST, /mt/ and /healthz */
	struct mt_smart *smart;     /* /auth/token, /.well-known/smart-configuration */
	struct mt_fhir *fhir;       /* /fhir/ (fhir.h) */
};

struct mt_deploy *mt_hub_deploy(struct mt_hub *h)
{
	return h->d;
}

struct mt_console *mt_hub_console(struct mt_hub *h)
{
	return h->console;
}

/* ---- small helpers ------------------------------------------------------ */

static void answer(struct mt_https_resp *rs, int status, const char *ctype, const void *body,
                   size_t len)
{
	rs->status = status;
	rs->content_type = ctype;
	rs->body = malloc(len + 1);
	if (rs->body == NULL) {
		rs->status = 500;
		rs->body_len = 0;
		return;
	}
	memcpy(rs->body, body, len);
	rs->body[len] = '\0';
	rs->body_len = len;
}

__attribute__((format(printf, 3, 4))) static void answer_text(struct mt_https_resp *rs,
                                                               int status, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	answer(rs, status, "text/plain; charset=utf-8", buf, (size_t)n);
}

static bool ctype_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	if (ct == NULL)
		return false;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* The audit record of one outcome.  `who` is the device id when known. */
static void audit_outcome(struct mt_hub *h, const struct mt_https_req *rq, const char *action,
                          const char *who, enum mt_audit_outcome outcome, const char *reason,
                          const char *extra)
{
	char actor[MT_AUDIT_ACTOR_MAX + 1], detail[1024], js[3][300];
	enum mt_err e;

	if (who != NULL && who[0] != '\0')
		(void)snprintf(actor, sizeof actor, "device:%s", who);
	else
		(void)snprintf(actor, sizeof actor, "ip:%s", rq->source);
	(void)snprintf(detail, sizeof detail, "{\"source\":%s,\"path\":%s,\"reason\":%s%s%s}",
	               mt_deploy_json_str(rq->source, js[0], sizeof js[0]),
	               mt_deploy_json_str(rq->path, js[1], sizeof js[1]),
	               mt_deploy_json_str(reason, js[2], sizeof js[2]), extra ? "," : "",
	               extra ? extra : "");
	e = mt_deploy_audit(h->d, actor, action, who && who[0] ? who : NULL, outcome, detail);
	if (e != MT_OK)
		fprintf(stderr, "medtrustd: AUDIT WRITE FAILED (%s) for %s %s\n", mt_err_str(e),
		        action, actor);
}

/* Refuse: audit (under the lock, taken here) and answer. */
__attribute__((format(printf, 7, 8))) static void
refuse(struct mt_hub *h, const struct mt_https_req *rq, struct mt_https_resp *rs, int status,
       const char *action, const char *who_reason[2], const char *fmt, ...)
{
	char sentence[400];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(sentence, sizeof sentence, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&h->lock);
	audit_outcome(h, rq, action, who_reason[0], MT_AUDIT_REFUSED, who_reason[1], NULL);
	pthread_mutex_unlock(&h->lock);
	answer_text(rs, status, "refused: %s", sentence);
}

/* ---- opening ------------------------------------------------------------ */

/* A small text file into out[0..cap), NUL-terminated. */
static enum mt_err read_text(const char *path, char *out, size_t cap, size_t *len)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	enum mt_err e = mt_file_read(path, cap - 1, &buf, &n);

	if (e == MT_OK) {
		memcpy(out, buf, n + 1);
		if (len)
			*len = n;
	}
	free(buf);
	return e;
}

static enum mt_err load_public(struct mt_hub *h, char *why, size_t cap)
{
	const struct mt_cert *chain[1] = {h->d->ca_cert};
	char pem[HUB_PEM_MAX];
	uint8_t spki[MT_SPKI_MAX];
	size_t n, spki_len;
	struct mt_pubkey *pk = NULL;
	EVP_PKEY *ep = NULL;
	BIO *bio;
	enum mt_err e;
	const char *kxp = mt_deploy_get(h->d, "hub_kx_pub");
	const char *cmdp = mt_deploy_get(h->d, "cmd_cert");
	const char *hosts = mt_deploy_get(h->d, "broker_hosts");
	const char *url = mt_deploy_get(h->d, "broker_url");

	e = mt_cert_pem(h->d->ca_cert, h->ca_pem, sizeof h->ca_pem, &n);
	if (e == MT_OK)
		e = mt_pki_p7_certs_b64_alloc(chain, 1, &h->cacerts_b64, &h->cacerts_len);
	if (e != MT_OK) {
		(void)snprintf(why, cap, "building the CA bundle: %s", mt_err_str(e));
		return e;
	}
	if (cmdp == NULL || read_text(cmdp, h->cmd_pem, sizeof h->cmd_pem, NULL) != MT_OK) {
		(void)snprintf(why, cap, "cannot read cmd_cert %s", cmdp ? cmdp : "(not set)");
		return MT_ERR_IO;
	}
	if (kxp == NULL || read_text(kxp, pem, sizeof pem, &n) != MT_OK) {
		(void)snprintf(why, cap, "cannot read hub_kx_pub %s", kxp ? kxp : "(not set)");
		return MT_ERR_IO;
	}
	bio = BIO_new_mem_buf(pem, (int)n);
	ep = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	{
		unsigned char *der = NULL;
		int dl = ep ? i2d_PUBKEY(ep, &der) : -1;

		e = dl > 0 ? mt_pubkey_from_spki(der, (size_t)dl, &pk) : MT_ERR_KEY_FORMAT;
		OPENSSL_free(der);
	}
	EVP_PKEY_free(ep);
	if (e == MT_OK)
		e = mt_pubkey_spki(pk, spki, sizeof spki, &spki_len);
	mt_pubkey_free(pk);
	if (e != MT_OK) {
		(void)snprintf(why, cap, "hub_kx_pub %s: %s", kxp, mt_err_str(e));
		return e;
	}
	EVP_EncodeBlock((unsigned char *)h->hub_kx_b64, spki, (int)spki_len);
	if (url != NULL) {
		(void)snprintf(h->broker_url, sizeof h->broker_url, "%s", url);
	} else {
		size_t hl = hosts ? strcspn(hosts, ",") : 0;
		uint64_t port = 8883;

		if (mt_deploy_uint(h->d, "broker_port", 8883, 65535, &port) != MT_OK)
			port = 8883;
		(void)snprintf(h->broker_url, sizeof h->broker_url, "mqtts://%.*s:%u", (int)hl,
		               hl ? hosts : "localhost", (unsigned)port);
	}
	return MT_OK;
}

enum mt_err mt_hub_open(const char *conf_path, struct mt_hub **out, char *why, size_t why_cap)
{
	struct mt_hub *h = calloc(1, sizeof *h);
	uint64_t days, rate, burst;
	enum mt_err e;

	if (h == NULL)
		return MT_ERR_NOMEM;
	pthread_mutex_init(&h->lock, NULL);
	e = mt_deploy_open(conf_path, &h->d, why, why_cap);
	if (e != MT_OK) {
		mt_hub_close(h);
		return e;
	}
	if (mt_deploy_uint(h->d, "op_cert_days", MT_DEPLOY_OP_CERT_DAYS, 3650, &days) != MT_OK ||
	    mt_deploy_uint(h->d, "est_rate", MT_DEPLOY_EST_RATE, 1000000, &rate) != MT_OK ||
	    mt_deploy_uint(h->d, "est_burst", MT_DEPLOY_EST_BURST, 1000000, &burst) != MT_OK) {
		(void)snprintf(why, why_cap, "op_cert_days, est_rate or est_burst is not a number "
		                             "in range");
		mt_hub_close(h);
		return MT_ERR_ARG;
	}
	h->op_lifetime_s = days * 86400;
	if (!mt_rl_init(&h->rl_source, (double)rate, (double)burst) ||
	    !mt_rl_init(&h->rl_id, HUB_ID_RATE, HUB_ID_BURST)) {
		mt_hub_close(h);
		return MT_ERR_NOMEM;
	}
	e = mt_deploy_open_ca(h->d);
	if (e != MT_OK) {
		(void)snprintf(why, why_cap, "opening the operator CA (ca_key, ca_cert): %s",
		               mt_err_str(e));
		mt_hub_close(h);
		return e;
	}
	e = mt_deploy_open_audit(h->d);
	if (e != MT_OK) {
		(void)snprintf(why, why_cap, "opening the audit chain: %s", mt_err_str(e));
		mt_hub_close(h);
		return e;
	}
	e = load_public(h, why, why_cap);
	if (e == MT_OK)
		e = mt_registry_crl_next_update(h->d->reg, &h->crl_next_update);
	if (e == MT_OK) {
		char note[256];

		e = mt_console_open(h->d, mt_hub_audit, h, &h->console, note, sizeof note);
		if (e != MT_OK)
			(void)snprintf(why, why_cap, "%s", note[0] ? note : "the console failed");
		else if (note[0] != '\0')
			fprintf(stderr, "medtrustd: %s\n", note);
	}
	if (e == MT_OK) { /* the FHIR API (fhir.h, smart.h) */
		char note[256] = "";

		e = mt_smart_open(h->d, mt_hub_audit, h, &h->smart, why, why_cap);
		if (e == MT_OK)
			e = mt_fhir_open(h->d, h->smart, mt_hub_audit, h, &h->fhir, note, sizeof note);
		if (note[0] != '\0')
			fprintf(stderr, "medtrustd: %s\n", note);
	}
	if (e != MT_OK) {
		mt_hub_close(h);
		return e;
	}
	*out = h;
	return MT_OK;
}

enum mt_err mt_hub_ssl_ctx(struct mt_hub *h, SSL_CTX **ctx, char *why, size_t why_cap)
{
	const char *uri = mt_deploy_get(h->d, "hub_tls_key");
	const char *cert = mt_deploy_get(h->d, "hub_tls_cert");
	EVP_PKEY *pkey = NULL;
	enum mt_err e;

	if (uri == NULL || cert == NULL) {
		mt_say(why, why_cap, "hub_tls_key or hub_tls_cert is not set");
		return MT_ERR_ARG;
	}
	e = h->tls_key ? MT_OK : mt_key_open(uri, &h->tls_key);
	if (e == MT_OK)
		e = mt_key_evp(h->tls_key, &pkey);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot open the TLS key (hub_tls_key): %s", mt_err_str(e));
		return e;
	}
	e = mt_https_ssl_ctx(cert, pkey, ctx); /* takes its own reference */
	EVP_PKEY_free(pkey);
	if (e != MT_OK)
		mt_say(why, why_cap, "TLS set-up failed (hub_tls_cert %s): %s", cert, mt_err_str(e));
	return e;
}

enum mt_err mt_hub_mqtt_ssl_ctx(struct mt_hub *h, const char *broker_host, SSL_CTX **ctx,
                                char *why, size_t why_cap)
{
	const char *uri = mt_deploy_get(h->d, "hub_tls_key");
	const char *cert = mt_deploy_get(h->d, "hub_client_cert");
	const char *ca = mt_deploy_get(h->d, "ca_cert");
	EVP_PKEY *pkey = NULL;
	enum mt_err e;

	if (uri == NULL || cert == NULL || ca == NULL) {
		mt_say(why, why_cap, "hub_tls_key, hub_client_cert or ca_cert is not set");
		return MT_ERR_ARG;
	}
	pthread_mutex_lock(&h->lock);
	e = h->tls_key ? MT_OK : mt_key_open(uri, &h->tls_key);
	pthread_mutex_unlock(&h->lock);
	if (e == MT_OK)
		e = mt_key_evp(h->tls_key, &pkey);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot open the TLS key (hub_tls_key): %s", mt_err_str(e));
		return e;
	}
	e = mt_mqtt_tls_ctx(ca, cert, pkey, broker_host, ctx, why, why_cap);
	EVP_PKEY_free(pkey);
	return e;
}

void mt_hub_audit(void *arg, const char *actor, const char *action, const char *subject,
                  enum mt_audit_outcome outcome, const char *detail)
{
	struct mt_hub *h = arg;
	enum mt_err e;

	pthread_mutex_lock(&h->lock);
	e = mt_deploy_audit(h->d, actor, action, subject, outcome, detail);
	pthread_mutex_unlock(&h->lock);
	if (e != MT_OK)
		fprintf(stderr, "medtrustd: AUDIT WRITE FAILED (%s) for %s %s\n", mt_err_str(e),
		        action, actor);
}

void mt_hub_close(struct mt_hub *h)
{
	if (h == NULL)
		return;
	mt_fhir_close(h->fhir);
	mt_smart_close(h->smart);
	mt_console_close(h->console);
	mt_key_free(h->tls_key);
	mt_deploy_close(h->d);
	mt_rl_free(&h->rl_source);
	mt_rl_free(&h->rl_id);
	free(h->cacerts_b64);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* ---- authentication of the client certificate -------------------------- */

/* The client's certificates, parsed: leaf + intermediates. */
struct peer {
	struct mt_cert *c[MT_HTTPS_PEER_MAX];
	size_t n;
	char cn[MT_PKI_CN_MAX];
};

static void peer_free(struct peer *p)
{
	for (size_t i = 0; i < p->n; i++)
		mt_cert_free(p->c[i]);
	p->n = 0;
}

static enum mt_err peer_parse(const struct mt_https_req *rq, struct peer *p)
{
	enum mt_err e = MT_OK;

	memset(p, 0, sizeof *p);
	for (size_t i = 0; i < rq->n_peer && e == MT_OK; i++) {
		e = mt_cert_from_x509(rq->peer_x509[i], &p->c[i]);
		if (e == MT_OK)
			p->n++;
	}
	if (e == MT_OK && p->n > 0)
		e = mt_cert_subject_cn(p->c[0], p->cn, sizeof p->cn);
	if (e == MT_OK && p->n > 0 && !mt_device_id_valid(p->cn, strlen(p->cn)))
		e = MT_ERR_PKI_SUBJECT;
	return e;
}

/* The client certificate an endpoint needs: parsed into *p (the caller
 * frees it) with wr[0] its CN; or refused (401, audited) and false. */
static bool peer_take(struct mt_hub *h, const struct mt_https_req *rq, struct mt_https_resp *rs,
                      const char *act, const char *need, struct peer *p, const char *wr[2])
{
	enum mt_err e;

	if (rq->n_peer == 0) {
		wr[1] = "no_client_certificate";
		refuse(h, rq, rs, 401, act, wr, "%s", need);
		return false;
	}
	e = peer_parse(rq, p);
	if (e != MT_OK) {
		peer_free(p);
		wr[1] = "bad_certificate";
		refuse(h, rq, rs, 401, act, wr, "client certificate unusable: %s", mt_err_str(e));
		return false;
	}
	wr[0] = p->cn;
	return true;
}

static const char *pki_word(enum mt_err e)
{
	switch (e) {
	case MT_ERR_PKI_UNTRUSTED: return "untrusted";
	case MT_ERR_PKI_SIGNATURE: return "bad_signature";
	case MT_ERR_PKI_EXPIRED: return "expired";
	case MT_ERR_PKI_NOT_YET_VALID: return "not_yet_valid";
	case MT_ERR_PKI_REVOKED: return "revoked";
	case MT_ERR_PKI_USAGE: return "usage";
	case MT_ERR_PKI_CHAIN: return "chain";
	default: return "bad_certificate";
	}
}

/* An operational certificate: chains to the operator CA, is the one the
 * registry issued, unrevoked, for an active device.  Under the lock.
 * On refusal fills *word and *sentence and returns the HTTP status. */
static int check_operational(struct mt_hub *h, const struct peer *p, int64_t now,
                             struct mt_device_rec *dev, const char **word,
                             char *sentence, size_t cap)
{
	const struct mt_cert *roots[1] = {h->d->ca_cert};
	struct mt_pki_verify_opts o = {0};
	char serial[MT_REG_CERT_SERIAL_MAX];
	struct mt_cert_rec cr;
	int64_t mfg;
	enum mt_err e;

	o.at = now;
	o.purpose = MT_PKI_PURPOSE_CLIENT;
	o.intermediates = (const struct mt_cert *const *)p->c + 1;
	o.n_intermediates = p->n - 1;
	e = mt_pki_verify(p->c[0], roots, 1, &o);
	if (e != MT_OK) {
		if (mt_registry_chain_to_root(h->d->reg, p->c[0], o.intermediates,
		                              o.n_intermediates, MT_PKI_PURPOSE_CLIENT, now,
		                              &mfg) == MT_OK) {
			*word = "birth_certificate";
			(void)snprintf(sentence, cap,
			               "this endpoint needs the device's operational certificate, "
			               "not its birth certificate");
			return 403;
		}
		*word = pki_word(e);
		(void)snprintf(sentence, cap, "client certificate not accepted: %s", mt_err_str(e));
		return 401;
	}
	e = mt_registry_cert_serial_hex(p->c[0], serial);
	if (e == MT_OK)
		e = mt_registry_cert(h->d->reg, serial, &cr);
	if (e != MT_OK || strcmp(cr.device, p->cn) != 0) {
		*word = "unknown_certificate";
		(void)snprintf(sentence, cap, "certificate %s was not issued by this hub's registry",
		               serial);
		return 401;
	}
	if (cr.revoked_at != 0) {
		*word = "revoked";
		(void)snprintf(sentence, cap, "certificate %s of %s is revoked", serial, p->cn);
		return 403;
	}
	e = mt_registry_device(h->d->reg, p->cn, dev);
	if (e != MT_OK || dev->status != MT_DEV_ACTIVE) {
		*word = e != MT_OK ? "unknown_device" : mt_dev_status_name(dev->status);
		(void)snprintf(sentence, cap, "device %s is %s", p->cn,
		               e != MT_OK ? "unknown" : mt_dev_status_name(dev->status));
		return 403;
	}
	return 0;
}

/* ---- the CSR ------------------------------------------------------------ */

struct csr {
	char cn[MT_PKI_CN_MAX];
	struct mt_pubkey *pub;
};

/* Parse, check PoP.  On refusal: word, sentence and an HTTP status. */
static int csr_parse(const struct mt_https_req *rq, struct csr *c, const char **word,
                     char *sentence, size_t cap)
{
	uint8_t der[MT_PKI_INPUT_MAX + 4];
	size_t len = 0;
	enum mt_err e;

	memset(c, 0, sizeof *c);
	if (!ctype_is(rq->content_type, "application/pkcs10")) {
		*word = "content_type";
		(void)snprintf(sentence, cap, "the body must be application/pkcs10 (base64 DER)");
		return 415;
	}
	if (rq->body_len > 4 * (MT_PKI_INPUT_MAX / 3) + 1024) {
		*word = "csr_too_large";
		(void)snprintf(sentence, cap, "CSR over %u bytes", (unsigned)MT_PKI_INPUT_MAX);
		return 413;
	}
	if (mt_est_b64_decode(rq->body, rq->body_len, der, sizeof der, &len) != MT_OK) {
		*word = "csr_not_base64";
		(void)snprintf(sentence, cap, "the body is not a base64 PKCS#10 request");
		return 400;
	}
	e = mt_pki_csr_verify(der, len, c->cn, sizeof c->cn, &c->pub);
	if (e != MT_OK) {
		*word = e == MT_ERR_PKI_CSR_POP ? "csr_pop" : e == MT_ERR_PKI_TOO_LARGE ? "csr_too_large"
		        : e == MT_ERR_PKI_CSR_REQUEST                                    ? "csr_request"
		                                                                        : "csr_invalid";
		(void)snprintf(sentence, cap, "CSR refused: %s", mt_err_str(e));
		return 400;
	}
	return 0;
}

/* Issue for `serial` and answer with the PKCS#7.  Called under the lock,
 * which it drops while the certificate is signed.  MT_ERR_REG_STATE: the
 * device's status changed meanwhile (revoked, decommissioned). */
static enum mt_err issue(struct mt_hub *h, const char *serial, const struct mt_pubkey *pub,
                         bool supersede, int64_t now, struct mt_https_resp *rs, char *extra,
                         size_t extra_cap, size_t *superseded)
{
	struct mt_pki_leaf leaf = {0};
	struct mt_cert *cert = NULL;
	char cs[MT_REG_CERT_SERIAL_MAX];
	uint8_t spki[MT_SPKI_MAX];
	size_t spki_len = 0;
	size_t len = 0, n_sup = 0;
	int64_t na = 0;
	char *b64 = NULL;
	enum mt_err e;

	leaf.profile = MT_PKI_OPERATIONAL;
	leaf.id = serial;
	leaf.not_before = now - 60; /* clock skew between hub and device */
	leaf.lifetime_s = (int64_t)h->op_lifetime_s + 60;
	/* Signing touches nothing shared but the CA key, which serialises its
	 * own use (mt_keystore.h): let other requests use the registry
	 * meanwhile.  mt_registry_enrolled checks the device's status again in
	 * its own transaction, so a revocation in between still wins. */
	pthread_mutex_unlock(&h->lock);
	e = mt_pki_issue(h->d->ca_key, h->d->ca_cert, pub, &leaf, &cert);
	pthread_mutex_lock(&h->lock);
	if (e == MT_OK)
		e = mt_pubkey_spki(pub, spki, sizeof spki, &spki_len);
	if (e == MT_OK)
		e = mt_registry_enrolled(h->d->reg, serial, cert, spki, spki_len, supersede, now,
		                         &n_sup);
	if (e == MT_OK) {
		const struct mt_cert *one[1] = {cert};

		e = mt_pki_p7_certs_b64_alloc(one, 1, &b64, &len);
	}
	if (e == MT_OK && mt_registry_cert_serial_hex(cert, cs) == MT_OK &&
	    mt_cert_validity(cert, NULL, &na) == MT_OK)
		(void)snprintf(extra, extra_cap,
		               "\"cert_serial\":\"%s\",\"not_after\":%" PRId64 ",\"superseded\":%zu",
		               cs, na, n_sup);
	mt_cert_free(cert);
	if (e != MT_OK) {
		free(b64);
		return e;
	}
	*superseded = n_sup;
	rs->status = 200;
	rs->content_type = "application/pkcs7-mime; smime-type=certs-only";
	rs->body = (uint8_t *)b64;
	rs->body_len = len;
	rs->extra_header_name = "Content-Transfer-Encoding";
	rs->extra_header_value = "base64";
	return MT_OK;
}

/* Certificates superseded by a fresh enrolment are revoked in the
 * registry (the hub refuses them at once); publish that to everyone else
 * who reads the CRL — the broker above all — and run the revoke hook so
 * live sessions of the old identity drop.  Under the lock. */
static void superseded_published(struct mt_hub *h, const struct mt_https_req *rq,
                                 const char *serial, int64_t now)
{
	int64_t next = 0;
	enum mt_err ce = mt_deploy_crl_refresh(h->d, now, &next);
	enum mt_err he = mt_deploy_revoke_hook(h->d, serial, "superseded");
	char ex[160];

	if (ce == MT_OK)
		h->crl_next_update = next;
	(void)snprintf(ex, sizeof ex, "\"crl\":\"%s\",\"crl_next_update\":%" PRId64 ",\"hook\":\"%s\"",
	               ce == MT_OK ? "signed" : "FAILED", next,
	               mt_deploy_get(h->d, "revoke_hook") == NULL ? "none"
	               : he == MT_OK                              ? "ok"
	                                                          : "FAILED");
	audit_outcome(h, rq, "crl.superseded", serial, ce == MT_OK ? MT_AUDIT_OK : MT_AUDIT_ERROR,
	              "superseded", ex);
}

/* ---- endpoints ---------------------------------------------------------- */

static void ep_cacerts(struct mt_hub *h, const struct mt_https_req *rq,
                       struct mt_https_resp *rs)
{
	(void)rq;
	answer(rs, 200, "application/pkcs7-mime", h->cacerts_b64, h->cacerts_len);
	rs->extra_header_name = "Content-Transfer-Encoding";
	rs->extra_header_value = "base64";
}

static void ep_enroll(struct mt_hub *h, const struct mt_https_req *rq, struct mt_https_resp *rs,
                      int64_t now)
{
	static const char *act = "est.enroll.refused";
	char sentence[400], extra[256] = "", kid_s[2 * MT_KID_LEN + 1];
	const char *wr[2] = {NULL, NULL};
	uint8_t kid[MT_KID_LEN], fp[32];
	struct mt_device_rec dev;
	struct peer p;
	struct csr c = {0};
	int64_t mfg = 0;
	uint64_t refused = 0;
	enum mt_err e;
	int st;

	if (!peer_take(h, rq, rs, act, "simpleenroll needs the device's birth certificate as TLS client certificate", &p, wr))
		return;
	pthread_mutex_lock(&h->lock);
	e = mt_registry_chain_to_root(h->d->reg, p.c[0], (const struct mt_cert *const *)p.c + 1,
	                              p.n - 1, MT_PKI_PURPOSE_CLIENT, now, &mfg);
	/* The per-device budget counts only birth certificates that chain to a
	 * trusted manufacturer: a stranger naming a device in a certificate of
	 * its own cannot spend the device's enrolments (D10). */
	if (e == MT_OK && !mt_rl_take(&h->rl_id, p.cn, mt_deploy_now_ms(), &refused)) {
		if (refused % HUB_AUDIT_EVERY == 1) {
			char ex[64];

			(void)snprintf(ex, sizeof ex, "\"refused_in_a_row\":%" PRIu64, refused);
			audit_outcome(h, rq, "est.rate_limited", p.cn, MT_AUDIT_REFUSED, "identity", ex);
		}
		pthread_mutex_unlock(&h->lock);
		peer_free(&p);
		answer_text(rs, 429, "refused: too many enrolments for this device; retry later");
		rs->extra_header_name = "Retry-After";
		rs->extra_header_value = "6";
		return;
	}
	pthread_mutex_unlock(&h->lock);
	if (e != MT_OK) {
		const struct mt_cert *roots[1] = {h->d->ca_cert};

		if (mt_pki_verify(p.c[0], roots, 1, NULL) == MT_OK) {
			wr[1] = "operational_certificate";
			refuse(h, rq, rs, 403, act, wr,
			       "simpleenroll needs the birth certificate; renew with simplereenroll");
		} else {
			wr[1] = e == MT_ERR_PKI_UNTRUSTED ? "unknown_manufacturer" : pki_word(e);
			refuse(h, rq, rs, 403, act, wr,
			       "birth certificate of %s does not chain to a trusted manufacturer: %s",
			       p.cn, mt_err_str(e));
		}
		peer_free(&p);
		return;
	}
	st = csr_parse(rq, &c, &wr[1], sentence, sizeof sentence);
	if (st == 0 && strcmp(c.cn, p.cn) != 0) {
		st = 403;
		wr[1] = "csr_subject";
		(void)snprintf(sentence, sizeof sentence,
		               "the CSR asks for CN=%.64s but the birth certificate is %s", c.cn, p.cn);
	}
	if (st == 0 && mt_cert_kid(p.c[0], kid) == MT_OK &&
	    memcmp(kid, mt_pubkey_kid(c.pub), MT_KID_LEN) == 0) {
		st = 400;
		wr[1] = "csr_birth_key";
		(void)snprintf(sentence, sizeof sentence,
		               "the CSR's key is the birth key; ldev must be a new key");
	}
	if (st != 0) {
		refuse(h, rq, rs, st, act, wr, "%s", sentence);
		mt_pubkey_free(c.pub);
		peer_free(&p);
		return;
	}
	if (mt_cert_kid(p.c[0], kid) != MT_OK || mt_cert_fingerprint(p.c[0], fp) != MT_OK) {
		wr[1] = "bad_certificate";
		refuse(h, rq, rs, 401, act, wr, "birth certificate unusable");
		mt_pubkey_free(c.pub);
		peer_free(&p);
		return;
	}
	for (size_t i = 0; i < MT_KID_LEN; i++)
		(void)snprintf(kid_s + 2 * i, 3, "%02x", kid[i]);

	pthread_mutex_lock(&h->lock);
	e = mt_registry_device(h->d->reg, p.cn, &dev);
	if (e == MT_ERR_REG_UNKNOWN) {
		wr[1] = "not_in_manifest";
		(void)snprintf(sentence, sizeof sentence, "serial %s is in no imported manifest", p.cn);
		st = 403;
	} else if (e != MT_OK) {
		wr[1] = "registry";
		(void)snprintf(sentence, sizeof sentence, "registry failure");
		st = 500;
	} else if (dev.manufacturer_id != mfg ||
	           !mt_ct_equal(dev.birth_kid, kid, MT_KID_LEN) ||
	           !mt_ct_equal(dev.birth_cert_sha256, fp, 32)) {
		wr[1] = "clone";
		(void)snprintf(sentence, sizeof sentence,
		               "possible clone: serial %s presented birth key %s, which is not the "
		               "manifest's",
		               p.cn, kid_s);
		st = 403;
	} else if (dev.status != MT_DEV_MANIFESTED && dev.status != MT_DEV_ACTIVE) {
		wr[1] = mt_dev_status_name(dev.status);
		(void)snprintf(sentence, sizeof sentence, "device %s is %s", p.cn,
		               mt_dev_status_name(dev.status));
		st = 403;
	}
	if (st == 0) {
		size_t n_sup = 0;

		e = issue(h, p.cn, c.pub, dev.status == MT_DEV_ACTIVE, now, rs, extra, sizeof extra,
		          &n_sup);
		if (e == MT_OK) {
			audit_outcome(h, rq, "est.enroll", p.cn, MT_AUDIT_OK,
			              dev.status == MT_DEV_ACTIVE ? "re-enrolment" : "first_enrolment",
			              extra);
			if (n_sup > 0)
				superseded_published(h, rq, p.cn, now);
		} else if (e == MT_ERR_REG_STATE) {
			wr[1] = "status_changed";
			(void)snprintf(sentence, sizeof sentence,
			               "device %s changed status during enrolment", p.cn);
			st = 403;
		} else {
			wr[1] = "issue_failed";
			(void)snprintf(sentence, sizeof sentence, "could not issue: %s", mt_err_str(e));
			st = 500;
		}
	}
	if (st != 0) {
		char ex[64];

		(void)snprintf(ex, sizeof ex, "\"birth_kid\":\"%s\"", kid_s);
		audit_outcome(h, rq, act, p.cn,
		              st == 500 ? MT_AUDIT_ERROR : MT_AUDIT_REFUSED, wr[1], ex);
	}
	pthread_mutex_unlock(&h->lock);
	if (st != 0)
		answer_text(rs, st, "refused: %s", sentence);
	mt_pubkey_free(c.pub);
	peer_free(&p);
}

static void ep_reenroll(struct mt_hub *h, const struct mt_https_req *rq,
                        struct mt_https_resp *rs, int64_t now)
{
	static const char *act = "est.reenroll.refused";
	char sentence[400], extra[256] = "";
	const char *wr[2] = {NULL, NULL};
	struct mt_device_rec dev;
	struct peer p;
	struct csr c = {0};
	enum mt_err e;
	int st;

	if (!peer_take(h, rq, rs, act, "simplereenroll needs the device's operational certificate", &p, wr))
		return;
	st = csr_parse(rq, &c, &wr[1], sentence, sizeof sentence);
	if (st == 0 && strcmp(c.cn, p.cn) != 0) {
		st = 403;
		wr[1] = "csr_subject";
		(void)snprintf(sentence, sizeof sentence,
		               "the CSR asks for CN=%.64s but the certificate is %s", c.cn, p.cn);
	}
	pthread_mutex_lock(&h->lock);
	if (st == 0)
		st = check_operational(h, &p, now, &dev, &wr[1], sentence, sizeof sentence);
	if (st == 0 && mt_ct_equal(dev.birth_kid, mt_pubkey_kid(c.pub), MT_KID_LEN)) {
		st = 400;
		wr[1] = "csr_birth_key";
		(void)snprintf(sentence, sizeof sentence,
		               "the CSR's key is the birth key; ldev must be a new key");
	}
	if (st == 0) {
		size_t n_sup = 0;

		e = issue(h, p.cn, c.pub, false, now, rs, extra, sizeof extra, &n_sup);
		if (e == MT_OK) {
			audit_outcome(h, rq, "est.reenroll", p.cn, MT_AUDIT_OK, "renewal", extra);
		} else if (e == MT_ERR_REG_STATE) {
			st = 403;
			wr[1] = "status_changed";
			(void)snprintf(sentence, sizeof sentence,
			               "device %s changed status during re-enrolment", p.cn);
		} else {
			st = 500;
			wr[1] = "issue_failed";
			(void)snprintf(sentence, sizeof sentence, "could not issue: %s", mt_err_str(e));
		}
	}
	if (st != 0)
		audit_outcome(h, rq, act, p.cn, st == 500 ? MT_AUDIT_ERROR : MT_AUDIT_REFUSED, wr[1],
		              NULL);
	pthread_mutex_unlock(&h->lock);
	if (st != 0)
		answer_text(rs, st, "refused: %s", sentence);
	mt_pubkey_free(c.pub);
	peer_free(&p);
}

/* The JSON body {"kx": "<base64 DER SPKI>"}: the key, or a refusal. */
static int onboard_body(const struct mt_https_req *rq, uint8_t *spki, size_t *spki_len,
                        const char **word, char *sentence, size_t cap)
{
	const char *why = NULL;
	enum mt_err e;

	if (!ctype_is(rq->content_type, "application/json")) {
		*word = "content_type";
		(void)snprintf(sentence, cap, "the body must be application/json");
		return 415;
	}
	e = mt_est_onboard_body(rq->body, rq->body_len, spki, spki_len, &why);
	if (e != MT_OK) {
		*word = e == MT_ERR_KEY_FORMAT || e == MT_ERR_KEY_TYPE ? "kx_key" : "body";
		(void)snprintf(sentence, cap, "%s", why ? why : mt_err_str(e));
		return 400;
	}
	return 0;
}

static void ep_onboard(struct mt_hub *h, const struct mt_https_req *rq, struct mt_https_resp *rs,
                       int64_t now)
{
	static const char *act = "onboard.refused";
	char sentence[400], extra[64];
	const char *wr[2] = {NULL, NULL};
	uint8_t spki[MT_SPKI_MAX];
	size_t spki_len = 0;
	struct mt_device_rec dev;
	struct peer p;
	uint32_t epoch = 0;
	enum mt_err e;
	int st;

	if (!peer_take(h, rq, rs, act, "onboarding needs the operational certificate", &p, wr))
		return;
	st = onboard_body(rq, spki, &spki_len, &wr[1], sentence, sizeof sentence);
	pthread_mutex_lock(&h->lock);
	if (st == 0)
		st = check_operational(h, &p, now, &dev, &wr[1], sentence, sizeof sentence);
	if (st == 0) {
		e = mt_registry_set_kx(h->d->reg, p.cn, spki, spki_len, now, &epoch);
		if (e != MT_OK) {
			st = 500;
			wr[1] = "registry";
			(void)snprintf(sentence, sizeof sentence, "registry failure: %s", mt_err_str(e));
		}
	}
	if (st == 0) {
		json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:{s:I}}", "device_id", p.cn,
		                      "broker", h->broker_url, "broker_ca", h->ca_pem, "hub_kx",
		                      h->hub_kx_b64, "command_cert", h->cmd_pem, "epoch",
		                      (json_int_t)epoch, "config", "cert_lifetime_s",
		                      (json_int_t)h->op_lifetime_s);
		char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;

		json_decref(b);
		if (text == NULL) {
			st = 500;
			wr[1] = "nomem";
			(void)snprintf(sentence, sizeof sentence, "out of memory");
		} else {
			rs->status = 200;
			rs->content_type = "application/json";
			rs->body = (uint8_t *)text;
			rs->body_len = strlen(text);
			(void)snprintf(extra, sizeof extra, "\"epoch\":%" PRIu32, epoch);
			audit_outcome(h, rq, "onboard", p.cn, MT_AUDIT_OK, "bundle", extra);
		}
	}
	if (st != 0)
		audit_outcome(h, rq, act, p.cn, st == 500 ? MT_AUDIT_ERROR : MT_AUDIT_REFUSED, wr[1],
		              NULL);
	pthread_mutex_unlock(&h->lock);
	if (st != 0)
		answer_text(rs, st, "refused: %s", sentence);
	peer_free(&p);
}

void mt_hub_handle(void *arg, const struct mt_https_req *rq, struct mt_https_resp *rs)
{
	struct mt_hub *h = arg;
	int64_t now = mt_deploy_now();
	uint64_t refused = 0;
	bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;
	bool ok;

	if (strcmp(rq->path, "/healthz") == 0 && get) {
		answer(rs, 200, "text/plain", "ok\n", 3);
		return;
	}
	pthread_mutex_lock(&h->lock);
	ok = mt_rl_take(&h->rl_source, rq->source, mt_deploy_now_ms(), &refused);
	if (!ok && refused % HUB_AUDIT_EVERY == 1) {
		char ex[64];

		(void)snprintf(ex, sizeof ex, "\"refused_in_a_row\":%" PRIu64, refused);
		audit_outcome(h, rq, "http.rate_limited", NULL, MT_AUDIT_REFUSED, "source", ex);
	}
	pthread_mutex_unlock(&h->lock);
	if (!ok) {
		answer_text(rs, 429, "refused: too many requests from %s; retry later", rq->source);
		rs->extra_header_name = "Retry-After";
		rs->extra_header_value = "1";
		return;
	}
	if (h->fhir != NULL && strncmp(rq->path, "/fhir", 5) == 0 &&
	    (rq->path[5] == '\0' || rq->path[5] == '/')) {
		mt_fhir_handle(h->fhir, rq, rs); /* the FHIR API (fhir.h) */
		return;
	}
	if (h->smart != NULL && (strcmp(rq->path, "/auth/token") == 0 ||
	                         strcmp(rq->path, "/.well-known/smart-configuration") == 0)) {
		mt_smart_handle(h->smart, rq, rs); /* SMART authorization (smart.h) */
		return;
	}
	if (h->console != NULL && strncmp(rq->path, "/.well-known/", 13) != 0 &&
	    strncmp(rq->path, "/mt/", 4) != 0) {
		mt_console_handle(h->console, rq, rs); /* the web console (console.h) */
		return;
	}
	if (strcmp(rq->path, "/.well-known/est/cacerts") == 0 && get)
		ep_cacerts(h, rq, rs);
	else if (strcmp(rq->path, "/.well-known/est/simpleenroll") == 0 && post)
		ep_enroll(h, rq, rs, now);
	else if (strcmp(rq->path, "/.well-known/est/simplereenroll") == 0 && post)
		ep_reenroll(h, rq, rs, now);
	else if (strcmp(rq->path, "/mt/v1/onboard") == 0 && post)
		ep_onboard(h, rq, rs, now);
	else
		answer_text(rs, 404, "no such endpoint: %s %s", rq->method, rq->path);
}

void mt_hub_refused(void *arg, const char *source, const char *method, const char *path,
                    int status)
{
	struct mt_hub *h = arg;
	struct mt_https_req rq;
	const char *action = "http.refused", *reason;
	char ex[96];
	uint64_t refused = 0;
	bool ok;

	memset(&rq, 0, sizeof rq);
	(void)snprintf(rq.source, sizeof rq.source, "%s", source);
	rq.path = path;
	rq.method = method;
	if (strcmp(path, "/.well-known/est/simpleenroll") == 0)
		action = "est.enroll.refused";
	else if (strcmp(path, "/.well-known/est/simplereenroll") == 0)
		action = "est.reenroll.refused";
	else if (strcmp(path, "/mt/v1/onboard") == 0)
		action = "onboard.refused";
	reason = status == 413   ? (strcmp(action, "onboard.refused") == 0 ? "body_too_large"
	                                                                      : "csr_too_large")
	         : status == 405 ? "method"
	         : status >= 500 ? "server_error"
	                         : "bad_request";
	(void)snprintf(ex, sizeof ex, "\"status\":%d,\"method\":\"%.16s\"", status,
	               method[0] >= 'A' && method[0] <= 'Z' ? method : "?");
	pthread_mutex_lock(&h->lock);
	ok = mt_rl_take(&h->rl_source, source, mt_deploy_now_ms(), &refused);
	if (ok)
		audit_outcome(h, &rq, action, NULL,
		              status >= 500 ? MT_AUDIT_ERROR : MT_AUDIT_REFUSED, reason, ex);
	else if (refused % HUB_AUDIT_EVERY == 1)
		audit_outcome(h, &rq, "http.rate_limited", NULL, MT_AUDIT_REFUSED, "source", NULL);
	pthread_mutex_unlock(&h->lock);
}

enum mt_err mt_hub_tick(struct mt_hub *h, int64_t now, bool *crl_signed)
{
	uint64_t days;
	int64_t next = 0;
	enum mt_err e = MT_OK;

	if (crl_signed)
		*crl_signed = false;
	if (mt_deploy_uint(h->d, "crl_days", MT_DEPLOY_CRL_DAYS, 365, &days) != MT_OK)
		days = MT_DEPLOY_CRL_DAYS;
	pthread_mutex_lock(&h->lock);
	/* The CLI may have signed one since: read the registry's figure. */
	if (mt_registry_crl_next_update(h->d->reg, &next) == MT_OK)
		h->crl_next_update = next;
	if (h->crl_next_update - now < (int64_t)days * 86400 / 2) {
		e = mt_deploy_crl_refresh(h->d, now, &next);
		if (e == MT_OK) {
			char ex[64];

			h->crl_next_update = next;
			(void)snprintf(ex, sizeof ex, "{\"next_update\":%" PRId64 "}", next);
			if (mt_deploy_audit(h->d, "hub", "crl.refresh", mt_deploy_get(h->d, "crl"),
			                    MT_AUDIT_OK, ex) != MT_OK)
				fprintf(stderr, "medtrustd: AUDIT WRITE FAILED for crl.refresh\n");
			if (crl_signed)
				*crl_signed = true;
		} else {
			if (mt_deploy_audit(h->d, "hub", "crl.refresh.failed",
			                    mt_deploy_get(h->d, "crl"), MT_AUDIT_ERROR, NULL) != MT_OK)
				fprintf(stderr, "medtrustd: AUDIT WRITE FAILED for crl.refresh.failed\n");
		}
	}
	{
		bool done;
		enum mt_err te = mt_audit_tick(h->d->audit, mt_deploy_now_ms(), &done);

		if (e == MT_OK)
			e = te;
	}
	pthread_mutex_unlock(&h->lock);
	return e;
}
