/*
 * agent.c — EST client calls and the device agent's onboarding and renewal
 * (agent.h, protocol §2, docs/device-agent.md).
 *
 * Transport: one libcurl easy handle per call (a new TLS session each
 * time — the client certificate differs between calls, and EST state is
 * per request).  The TLS client key is installed through
 * CURLOPT_SSL_CTX_FUNCTION as an EVP_PKEY from mt_key_evp, so a token key
 * stays in its token; the hub is verified against `hub_ca` with host-name
 * checking on.  Answers are read into a bounded buffer (64 KiB): a hub
 * that sends more is cut off and the call fails.
 *
 * State files in the device directory, each replaced atomically
 * (temporary file, fsync, rename) so a power cut leaves the old one or the
 * new one: op.pem (operational certificate), hub-ca.pem (the operator CA
 * from /cacerts), bundle.json (the onboarding bundle, 0600).  Keys: ldev
 * and kx, generated once in the device's own store and reused across
 * renewals (the hub's key-epoch rule ties a kx key to an epoch; a new
 * epoch starts only when the kx key changes).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent.h"
#include "medtrust/mt_config.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_util.h"

#define AGENT_ANSWER_MAX 65536
#define AGENT_CERTS_MAX 4

/* ---- HTTPS through libcurl ------------------------------------------------ */

struct answer {
	char *buf;
	size_t len;
	bool overflow;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t k = size * n;

	if (a->len + k > AGENT_ANSWER_MAX) {
		a->overflow = true;
		return 0; /* abort the transfer */
	}
	memcpy(a->buf + a->len, p, k);
	a->len += k;
	a->buf[a->len] = '\0';
	return k;
}

struct tls_client {
	const struct mt_cert *cert;
	EVP_PKEY *pkey;
};

static CURLcode on_ssl_ctx(CURL *curl, void *sslctx, void *arg)
{
	struct tls_client *t = arg;
	SSL_CTX *ctx = sslctx;
	const uint8_t *der;
	size_t len;
	X509 *x;

	(void)curl;
	if (t->cert == NULL)
		return CURLE_OK;
	der = mt_cert_der(t->cert, &len);
	x = d2i_X509(NULL, &der, (long)len);
	if (x == NULL)
		return CURLE_SSL_CERTPROBLEM;
	if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, t->pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		X509_free(x);
		return CURLE_SSL_CERTPROBLEM;
	}
	X509_free(x);
	return CURLE_OK;
}

static bool curl_ready(void)
{
	static int state; /* 0 not yet, 1 ok, -1 failed; set before any thread */

	if (state == 0)
		state = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : -1;
	return state == 1;
}

/* One request.  body NULL = GET. */
static enum mt_err https(const struct mt_est_client *c, const char *path, const char *ctype,
                         const void *body, size_t body_len, struct answer *a,
                         struct mt_est_result *r)
{
	char url[1024], hdr[128], errbuf[CURL_ERROR_SIZE] = "";
	struct tls_client t = {c->cert, NULL};
	struct curl_slist *headers = NULL;
	CURL *curl = NULL;
	CURLcode cc;
	enum mt_err e = MT_OK;

	memset(r, 0, sizeof *r);
	a->len = 0;
	a->overflow = false;
	a->buf = malloc(AGENT_ANSWER_MAX + 1);
	if (a->buf == NULL)
		return MT_ERR_NOMEM;
	a->buf[0] = '\0';
	if (!curl_ready() || (size_t)snprintf(url, sizeof url, "%s%s", c->hub_url, path) >= sizeof url)
		return MT_ERR_ARG;
	if (c->cert != NULL) {
		if (c->key == NULL)
			return MT_ERR_ARG;
		e = mt_key_evp(c->key, &t.pkey);
		if (e != MT_OK)
			return e;
	}
	curl = curl_easy_init();
	if (curl == NULL) {
		EVP_PKEY_free(t.pkey);
		return MT_ERR_NOMEM;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_CAINFO, c->hub_ca);
	curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, &t);
	curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, c->timeout_s > 0 ? c->timeout_s : 30L);
	curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	if (body != NULL) {
		(void)snprintf(hdr, sizeof hdr, "Content-Type: %s", ctype);
		headers = curl_slist_append(headers, hdr);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->http_status);
	if (cc != CURLE_OK) {
		mt_say(r->why, sizeof r->why, "%s: %s", url,
		    a->overflow ? "answer too large" : errbuf[0] ? errbuf : curl_easy_strerror(cc));
		e = MT_ERR_IO;
	} else if (r->http_status != 200) {
		size_t n = strcspn(a->buf, "\n");

		mt_say(r->why, sizeof r->why, "%s: HTTP %ld: %.*s", path, r->http_status,
		    (int)(n < 300 ? n : 300), a->buf);
		e = MT_ERR_REFUSED;
	}
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	EVP_PKEY_free(t.pkey);
	return e;
}

static bool b64_decode(const char *in, size_t len, uint8_t **out, size_t *olen)
{
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	uint8_t *buf = malloc(len / 4 * 3 + 8);
	int n1 = 0, n2 = 0;
	bool ok;

	ok = ctx != NULL && buf != NULL && len <= INT32_MAX;
	if (ok) {
		EVP_DecodeInit(ctx);
		ok = EVP_DecodeUpdate(ctx, buf, &n1, (const unsigned char *)in, (int)len) >= 0 &&
		     EVP_DecodeFinal(ctx, buf + n1, &n2) == 1 && n1 + n2 > 0;
	}
	EVP_ENCODE_CTX_free(ctx);
	if (!ok) {
		free(buf);
		return false;
	}
	*out = buf;
	*olen = (size_t)(n1 + n2);
	return true;
}

/* A certs-only PKCS#7 in base64: its certificates. */
static enum mt_err p7_answer(const struct answer *a, struct mt_cert **certs, size_t cap,
                             size_t *n, struct mt_est_result *r)
{
	uint8_t *der = NULL;
	size_t len = 0;
	enum mt_err e;

	if (!b64_decode(a->buf, a->len, &der, &len)) {
		mt_say(r->why, sizeof r->why, "the answer is not base64");
		return MT_ERR_PKI_FORMAT;
	}
	e = mt_pki_p7_parse(der, len, certs, cap, n);
	free(der);
	if (e != MT_OK)
		mt_say(r->why, sizeof r->why, "the answer is not a certs-only PKCS#7: %s", mt_err_str(e));
	return e;
}

enum mt_err mt_est_cacerts(const struct mt_est_client *c, struct mt_cert **certs, size_t cap,
                           size_t *n, struct mt_est_result *r)
{
	struct answer a = {0};
	enum mt_err e = https(c, "/.well-known/est/cacerts", NULL, NULL, 0, &a, r);

	if (e == MT_OK)
		e = p7_answer(&a, certs, cap, n, r);
	free(a.buf);
	return e;
}

enum mt_err mt_est_enroll(const struct mt_est_client *c, bool reenroll, const uint8_t *csr,
                          size_t csr_len, struct mt_cert **out, struct mt_est_result *r)
{
	struct mt_cert *certs[AGENT_CERTS_MAX] = {0};
	struct answer a = {0};
	size_t n = 0;
	char *b64 = malloc(4 * ((csr_len + 2) / 3) + 1);
	enum mt_err e;

	if (b64 == NULL)
		return MT_ERR_NOMEM;
	EVP_EncodeBlock((unsigned char *)b64, csr, (int)csr_len);
	e = https(c, reenroll ? "/.well-known/est/simplereenroll" : "/.well-known/est/simpleenroll",
	          "application/pkcs10", b64, strlen(b64), &a, r);
	free(b64);
	if (e == MT_OK)
		e = p7_answer(&a, certs, AGENT_CERTS_MAX, &n, r);
	free(a.buf);
	if (e != MT_OK)
		return e;
	*out = certs[0];
	for (size_t i = 1; i < n; i++)
		mt_cert_free(certs[i]);
	return MT_OK;
}

enum mt_err mt_est_onboard(const struct mt_est_client *c, const uint8_t *kx_spki, size_t kx_len,
                           char **bundle, struct mt_est_result *r)
{
	char body[64 + 2 * MT_SPKI_MAX], b64[2 * MT_SPKI_MAX];
	struct answer a = {0};
	enum mt_err e;

	if (kx_len > MT_SPKI_MAX)
		return MT_ERR_ARG;
	EVP_EncodeBlock((unsigned char *)b64, kx_spki, (int)kx_len);
	(void)snprintf(body, sizeof body, "{\"kx\":\"%s\"}", b64);
	e = https(c, "/mt/v1/onboard", "application/json", body, strlen(body), &a, r);
	if (e != MT_OK) {
		free(a.buf);
		return e;
	}
	*bundle = a.buf;
	return MT_OK;
}

/* ---- the device directory ------------------------------------------------- */

static const char *const device_keys[] = {"serial",        "class",      "manufacturer",
                                          "key",           "softhsm2-conf", "birth-cert",
                                          "mfg-root"};

static bool copy(char *dst, size_t cap, const char *src)
{
	return src != NULL && (size_t)snprintf(dst, cap, "%s", src) < cap;
}

enum mt_err mt_agent_device_load(const char *dir, struct mt_agent_device *d, char *why,
                                 size_t why_cap)
{
	char path[PATH_MAX];
	struct mt_config *c = NULL;
	unsigned line = 0;
	const char *key;
	enum mt_err e;

	memset(d, 0, sizeof *d);
	if (!copy(d->dir, sizeof d->dir, dir) ||
	    (size_t)snprintf(path, sizeof path, "%s/device.conf", dir) >= sizeof path)
		return MT_ERR_ARG;
	e = mt_config_load(path, device_keys, sizeof device_keys / sizeof device_keys[0], &c, &line);
	if (e != MT_OK) {
		mt_say(why, why_cap, "%s%s%u: %s", path, line ? " line " : "", line, mt_err_str(e));
		return e;
	}
	key = mt_config_get(c, "key");
	if (!copy(d->serial, sizeof d->serial, mt_config_get(c, "serial")) ||
	    !mt_device_id_valid(d->serial, strlen(d->serial)) ||
	    !copy(d->device_class, sizeof d->device_class, mt_config_get(c, "class")) ||
	    !copy(d->idev_uri, sizeof d->idev_uri, key) ||
	    !copy(d->birth_cert, sizeof d->birth_cert, mt_config_get(c, "birth-cert"))) {
		mt_say(why, why_cap, "%s: serial, class, key or birth-cert missing or malformed", path);
		mt_config_free(c);
		return MT_ERR_ARG;
	}
	if (mt_config_get(c, "softhsm2-conf") != NULL)
		(void)copy(d->softhsm2_conf, sizeof d->softhsm2_conf,
		           mt_config_get(c, "softhsm2-conf"));
	mt_config_free(c);
	key = d->idev_uri; /* the configuration's copy is gone */
	if (strncmp(key, "file:", 5) == 0) {
		if ((size_t)snprintf(d->ldev_uri, sizeof d->ldev_uri, "file:%s/ldev.key", dir) >=
		            sizeof d->ldev_uri ||
		    (size_t)snprintf(d->kx_uri, sizeof d->kx_uri, "file:%s/kx.key", dir) >=
		            sizeof d->kx_uri)
			return MT_ERR_ARG;
	} else {
		/* pkcs11:...;object=idev?... → object=ldev / object=kx */
		const char *o = strstr(key, "object=idev");
		size_t pre;

		if (o == NULL) {
			mt_say(why, why_cap, "%s: the birth key URI names no object=idev", path);
			return MT_ERR_ARG;
		}
		pre = (size_t)(o - key);
		if ((size_t)snprintf(d->ldev_uri, sizeof d->ldev_uri, "%.*sobject=ldev%s", (int)pre,
		                     key, o + 11) >= sizeof d->ldev_uri ||
		    (size_t)snprintf(d->kx_uri, sizeof d->kx_uri, "%.*sobject=kx%s", (int)pre, key,
		                     o + 11) >= sizeof d->kx_uri)
			return MT_ERR_ARG;
	}
	if (d->softhsm2_conf[0] && setenv("SOFTHSM2_CONF", d->softhsm2_conf, 1) != 0)
		return MT_ERR_IO;
	return MT_OK;
}

/* ---- state files ---------------------------------------------------------- */

/* DIR/NAME replaced atomically (mt_file_replace). */
static enum mt_err replace_file(const char *dir, const char *name, const void *data, size_t len,
                                unsigned mode)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return MT_ERR_ARG;
	return mt_file_replace(path, data, len, mode);
}

static enum mt_err save_cert(const char *dir, const char *name, const struct mt_cert *c)
{
	char pem[8192];
	size_t n;
	enum mt_err e = mt_cert_pem(c, pem, sizeof pem, &n);

	return e == MT_OK ? replace_file(dir, name, pem, n, 0644) : e;
}

static enum mt_err load_cert_in(const char *dir, const char *name, struct mt_cert **out)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return MT_ERR_ARG;
	return mt_cert_from_pem_file(path, out);
}

static bool file_exists(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	return (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path &&
	       stat(path, &st) == 0;
}

/* Open the key at uri, generating it on first use. */
static enum mt_err key_get(const char *uri, enum mt_key_role role, struct mt_key **k)
{
	enum mt_err e = mt_key_open(uri, k);

	if (e == MT_ERR_KS_KEY_NOT_FOUND)
		e = mt_key_generate(uri, MT_KEY_P256, role, k);
	return e;
}

/* ---- one pass ------------------------------------------------------------- */

/* Enrol (birth cert) or renew (operational cert) the ldev key. */
static enum mt_err enrol(const struct mt_agent_device *d, const struct mt_agent_opts *o,
                         struct mt_key *ldev, const struct mt_cert *client_cert,
                         struct mt_key *client_key, bool reenroll, struct mt_est_result *r)
{
	struct mt_est_client c = {o->hub_url, o->hub_ca, client_cert, client_key, o->timeout_s};
	struct mt_cert *cas[AGENT_CERTS_MAX] = {0}, *op = NULL;
	struct mt_pubkey *pk = NULL;
	uint8_t csr[2048];
	size_t csr_len = 0, n_ca = 0;
	enum mt_err e;

	if (!reenroll) {
		/* Fetch the operator CA chain (devices verify the broker with it). */
		e = mt_est_cacerts(&c, cas, AGENT_CERTS_MAX, &n_ca, r);
		if (e == MT_OK) {
			char pem[16384];
			size_t used = 0;

			for (size_t i = 0; i < n_ca && e == MT_OK; i++) {
				size_t len = 0;

				e = mt_cert_pem(cas[i], pem + used, sizeof pem - used, &len);
				used += len;
			}
			if (e == MT_OK)
				e = replace_file(d->dir, "hub-ca.pem", pem, used, 0644);
		}
		for (size_t i = 0; i < n_ca; i++)
			mt_cert_free(cas[i]);
		if (e != MT_OK)
			return e;
	}
	e = mt_pki_csr_create(ldev, d->serial, csr, sizeof csr, &csr_len);
	if (e == MT_OK)
		e = mt_est_enroll(&c, reenroll, csr, csr_len, &op, r);
	/* The answer must be for us and our key: a hub answering with something
	 * else is refused here, not stored. */
	if (e == MT_OK) {
		char cn[MT_PKI_CN_MAX];

		e = mt_cert_subject_cn(op, cn, sizeof cn);
		if (e == MT_OK && strcmp(cn, d->serial) != 0)
			e = MT_ERR_PKI_SUBJECT;
		if (e == MT_OK)
			e = mt_cert_pubkey(op, &pk);
		if (e == MT_OK && memcmp(mt_pubkey_kid(pk), mt_pubkey_kid(mt_key_public(ldev)),
		                         MT_KID_LEN) != 0)
			e = MT_ERR_PKI_SUBJECT;
		if (e != MT_OK)
			mt_say(r->why, sizeof r->why, "the hub's certificate is not for %s's ldev key",
			    d->serial);
	}
	if (e == MT_OK)
		e = save_cert(d->dir, "op.pem", op);
	mt_pubkey_free(pk);
	mt_cert_free(op);
	return e;
}

static enum mt_err onboard(const struct mt_agent_device *d, const struct mt_agent_opts *o,
                           const struct mt_cert *op, struct mt_key *ldev,
                           struct mt_est_result *r)
{
	struct mt_est_client c = {o->hub_url, o->hub_ca, op, ldev, o->timeout_s};
	struct mt_key *kx = NULL;
	uint8_t spki[MT_SPKI_MAX];
	size_t spki_len = 0;
	char *bundle = NULL;
	enum mt_err e = key_get(d->kx_uri, MT_KEY_ROLE_DERIVE, &kx);

	if (e == MT_OK)
		e = mt_pubkey_spki(mt_key_public(kx), spki, sizeof spki, &spki_len);
	mt_key_free(kx);
	if (e == MT_OK)
		e = mt_est_onboard(&c, spki, spki_len, &bundle, r);
	if (e == MT_OK)
		e = replace_file(d->dir, "bundle.json", bundle, strlen(bundle), 0600);
	free(bundle);
	return e;
}

enum mt_err mt_agent_step(const struct mt_agent_device *d, const struct mt_agent_opts *o,
                          int64_t now, bool force_renew, enum mt_agent_action *did,
                          int64_t *next_check, struct mt_est_result *r)
{
	struct mt_cert *op = NULL, *birth = NULL;
	struct mt_key *ldev = NULL, *idev = NULL;
	int64_t nb = 0, na = 0;
	bool fresh = false, renewed = false;
	enum mt_err e;

	memset(r, 0, sizeof *r);
	*did = MT_AGENT_NOTHING;
	e = key_get(d->ldev_uri, MT_KEY_ROLE_SIGN, &ldev);
	if (e != MT_OK) {
		mt_say(r->why, sizeof r->why, "ldev key %s: %s", d->ldev_uri, mt_err_str(e));
		return e;
	}
	if (load_cert_in(d->dir, "op.pem", &op) == MT_OK &&
	    mt_cert_validity(op, &nb, &na) == MT_OK && now < na) {
		if (force_renew || now >= nb + (na - nb) * 2 / 3) {
			e = enrol(d, o, ldev, op, ldev, true, r);
			renewed = e == MT_OK;
		}
	} else {
		/* None yet, or expired: a fresh enrolment with the birth identity. */
		e = mt_key_open(d->idev_uri, &idev);
		if (e == MT_OK)
			e = mt_cert_from_pem_file(d->birth_cert, &birth);
		if (e == MT_OK)
			e = enrol(d, o, ldev, birth, idev, false, r);
		else
			mt_say(r->why, sizeof r->why, "birth identity: %s", mt_err_str(e));
		fresh = e == MT_OK;
	}
	if (e == MT_OK && (fresh || renewed)) {
		mt_cert_free(op);
		op = NULL;
		e = load_cert_in(d->dir, "op.pem", &op);
		if (e == MT_OK)
			e = mt_cert_validity(op, &nb, &na);
	}
	if (e == MT_OK && (fresh || !file_exists(d->dir, "bundle.json")))
		e = onboard(d, o, op, ldev, r);
	if (e == MT_OK) {
		*did = fresh ? MT_AGENT_ENROLLED : renewed ? MT_AGENT_RENEWED : MT_AGENT_NOTHING;
		if (next_check)
			*next_check = nb + (na - nb) * 2 / 3;
	}
	mt_cert_free(op);
	mt_cert_free(birth);
	mt_key_free(idev);
	mt_key_free(ldev);
	return e;
}
