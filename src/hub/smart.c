/*
 * smart.c — the token endpoint and bearer-token checks of the FHIR API
 * (smart.h, docs/fhir.md; SMART backend services, RFC 6749 §5, RFC 7523).
 *
 * A token request is checked in a fixed order, and the first failure is
 * the answer (RFC 6749 §5.2 error codes; its one-word reason goes to the
 * audit chain as fhir.token.refused):
 *   1. POST, application/x-www-form-urlencoded, ≤ MT_SMART_BODY_MAX bytes,
 *      a strict form (mt_form.h) of known fields only        400 invalid_request
 *   2. grant_type = client_credentials                        400 unsupported_grant_type
 *   3. client_assertion_type = ...:jwt-bearer, an assertion    400 invalid_request
 *   4. the assertion parses (mt_jwt_parse: no jku/x5u/jwk)     401 invalid_client
 *   5. iss = sub = a registered, enabled client (and client_id, when
 *      sent, the same)                                         401 invalid_client
 *   6. alg is the client's registered algorithm, the signature
 *      verifies with its registered key                        401 invalid_client
 *   7. aud is this hub's token endpoint                        401 invalid_client
 *   8. exp present, not past, at most 5 min ahead; nbf not ahead 400 invalid_grant
 *   9. jti present and never seen (kept until exp)            400 invalid_grant
 *  10. scope: every word a known scope; granted = asked ∩ registered,
 *      not empty                                               400 invalid_scope
 * The signature is checked before anything that would record the jti, so
 * a stranger who knows a client's name cannot burn its jtis.
 *
 * Tables.  Both the token table and the jti table are hash tables of
 * fixed size: the key's SHA-256 picks a bucket of BUCKET slots.  A full
 * token bucket evicts the token that expires first (its client asks
 * again); a full jti bucket of unexpired entries refuses the assertion
 * (temporarily_unavailable, 503): replay protection is never traded for
 * room.
 */
#define _POSIX_C_SOURCE 200809L

#include "smart.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "medtrust/mt_crypto.h"
#include "medtrust/mt_form.h"

#define BUCKET 8
#define TOKEN_BYTES 32
#define TOKEN_B64 43
#define AUDS_MAX 8
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

struct token {
	uint8_t hash[32];
	int64_t expires; /* 0: free */
	char client[MT_CLIENT_NAME_MAX + 1];
	char scopes[MT_CLIENT_SCOPES_MAX + 1];
};

struct jti {
	uint8_t hash[32];
	int64_t expires; /* 0: free */
};

struct mt_smart {
	struct mt_deploy *d;
	mt_console_audit_fn audit;
	void *audit_arg;
	pthread_mutex_t lock;
	struct mt_clients *clients;
	struct token *tokens; /* MT_SMART_TOKENS_MAX */
	struct jti *jtis;     /* MT_SMART_JTIS_MAX */
	char base[MT_SMART_URL_MAX];
	char auds[AUDS_MAX][MT_SMART_URL_MAX + 16];
	size_t n_auds;
};

const char *mt_smart_base_url(const struct mt_smart *s)
{
	return s->base;
}

enum mt_err mt_smart_open(struct mt_deploy *d, mt_console_audit_fn audit, void *audit_arg,
                          struct mt_smart **out, char *why, size_t why_cap)
{
	const char *url = mt_deploy_get(d, "hub_url");
	const char *hosts = mt_deploy_get(d, "hub_hosts");
	uint64_t port = MT_DEPLOY_HUB_PORT;
	struct mt_smart *s;
	enum mt_err e;

	if (d == NULL || audit == NULL || out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (mt_deploy_uint(d, "hub_port", MT_DEPLOY_HUB_PORT, 65535, &port) != MT_OK)
		port = MT_DEPLOY_HUB_PORT;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return MT_ERR_NOMEM;
	s->d = d;
	s->audit = audit;
	s->audit_arg = audit_arg;
	pthread_mutex_init(&s->lock, NULL);
	s->tokens = calloc(MT_SMART_TOKENS_MAX, sizeof *s->tokens);
	s->jtis = calloc(MT_SMART_JTIS_MAX, sizeof *s->jtis);
	if (s->tokens == NULL || s->jtis == NULL) {
		mt_smart_close(s);
		return MT_ERR_NOMEM;
	}
	/* Every name the hub's certificate carries, at the configured port. */
	while (hosts != NULL && *hosts != '\0' && s->n_auds < AUDS_MAX - 1) {
		size_t n = strcspn(hosts, ",");

		while (n > 0 && hosts[0] == ' ') {
			hosts++;
			n--;
		}
		if (n > 0 && n < 256) {
			(void)snprintf(s->auds[s->n_auds], sizeof s->auds[0], "https://%.*s:%u/auth/token",
			               (int)n, hosts, (unsigned)port);
			if (s->n_auds == 0)
				(void)snprintf(s->base, sizeof s->base, "https://%.*s:%u", (int)n, hosts,
				               (unsigned)port);
			s->n_auds++;
		}
		hosts += n;
		if (*hosts == ',')
			hosts++;
	}
	if (url != NULL && strlen(url) < MT_SMART_URL_MAX - 1) {
		size_t n = strlen(url);

		while (n > 0 && url[n - 1] == '/')
			n--;
		(void)snprintf(s->base, sizeof s->base, "%.*s", (int)n, url);
		(void)snprintf(s->auds[s->n_auds++], sizeof s->auds[0], "%s/auth/token", s->base);
	}
	if (s->base[0] == '\0')
		(void)snprintf(s->base, sizeof s->base, "https://localhost:%u", (unsigned)port);
	e = mt_clients_open(mt_deploy_get(d, "db_path"), &s->clients);
	if (e != MT_OK) {
		if (why != NULL)
			(void)snprintf(why, why_cap, "FHIR clients in %s: %s", mt_deploy_get(d, "db_path"),
			               mt_err_str(e));
		mt_smart_close(s);
		return e;
	}
	*out = s;
	return MT_OK;
}

void mt_smart_close(struct mt_smart *s)
{
	if (s == NULL)
		return;
	mt_clients_close(s->clients);
	if (s->tokens != NULL)
		mt_wipe(s->tokens, MT_SMART_TOKENS_MAX * sizeof *s->tokens);
	free(s->tokens);
	free(s->jtis);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void mt_smart_forget_tokens(struct mt_smart *s)
{
	pthread_mutex_lock(&s->lock);
	mt_wipe(s->tokens, MT_SMART_TOKENS_MAX * sizeof *s->tokens);
	pthread_mutex_unlock(&s->lock);
}

/* ---- answers -------------------------------------------------------------- */

static void answer_json(struct mt_https_resp *rs, int status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (text == NULL) {
		rs->status = 500;
		return;
	}
	rs->status = status;
	rs->content_type = "application/json";
	rs->body = (uint8_t *)text;
	rs->body_len = strlen(text);
}

static void audit_token(struct mt_smart *s, const struct mt_https_req *rq, const char *client,
                        bool ok, const char *reason, const char *scope)
{
	char actor[128], detail[1600], js[3][MT_CLIENT_SCOPES_MAX + 8];

	if (client != NULL && mt_client_name_valid(client))
		(void)snprintf(actor, sizeof actor, "fhir-client:%s", client);
	else
		(void)snprintf(actor, sizeof actor, "ip:%s", rq->source);
	(void)snprintf(detail, sizeof detail, "{\"source\":%s,\"reason\":%s%s%s}",
	               mt_deploy_json_str(rq->source, js[0], sizeof js[0]),
	               mt_deploy_json_str(reason, js[1], sizeof js[1]), scope ? ",\"scope\":" : "",
	               scope ? mt_deploy_json_str(scope, js[2], sizeof js[2]) : "");
	s->audit(s->audit_arg, actor, ok ? "fhir.token" : "fhir.token.refused",
	         client != NULL && mt_client_name_valid(client) ? client : NULL,
	         ok ? MT_AUDIT_OK : MT_AUDIT_REFUSED, detail);
}

/* RFC 6749 §5.2: {"error": code, "error_description": sentence}. */
static void refuse(struct mt_smart *s, const struct mt_https_req *rq, struct mt_https_resp *rs,
                   int status, const char *code, const char *client, const char *reason,
                   const char *sentence)
{
	audit_token(s, rq, client, false, reason, NULL);
	answer_json(rs, status, json_pack("{s:s, s:s}", "error", code, "error_description", sentence));
	if (status == 401) {
		rs->extra_header_name = "WWW-Authenticate";
		rs->extra_header_value = "Bearer error=\"invalid_client\"";
	}
}

/* ---- tables ----------------------------------------------------------- */

static size_t bucket_of(const uint8_t h[32], size_t n_slots)
{
	uint32_t v = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];

	return (size_t)(v % (uint32_t)(n_slots / BUCKET)) * BUCKET;
}

/* Record jti (hash) until exp: false when seen (replay) or no room. */
static bool jti_take(struct mt_smart *s, const uint8_t h[32], int64_t exp, int64_t now,
                     bool *no_room)
{
	size_t b = bucket_of(h, MT_SMART_JTIS_MAX);
	struct jti *free_slot = NULL;

	*no_room = false;
	for (size_t i = 0; i < BUCKET; i++) {
		struct jti *j = &s->jtis[b + i];

		if (j->expires != 0 && j->expires < now)
			j->expires = 0; /* its assertion could not be used any more */
		if (j->expires != 0 && CRYPTO_memcmp(j->hash, h, 32) == 0)
			return false;
		if (j->expires == 0 && free_slot == NULL)
			free_slot = j;
	}
	if (free_slot == NULL) {
		*no_room = true;
		return false;
	}
	memcpy(free_slot->hash, h, 32);
	free_slot->expires = exp;
	return true;
}

static void token_put(struct mt_smart *s, const uint8_t h[32], const char *client,
                      const char *scopes, int64_t expires, int64_t now)
{
	size_t b = bucket_of(h, MT_SMART_TOKENS_MAX);
	struct token *slot = NULL;

	for (size_t i = 0; i < BUCKET; i++) {
		struct token *t = &s->tokens[b + i];

		if (t->expires != 0 && t->expires <= now)
			t->expires = 0;
		if (t->expires == 0) {
			slot = t;
			break;
		}
		if (slot == NULL || t->expires < slot->expires)
			slot = t; /* the bucket is full: evict the one that ends first */
	}
	memset(slot, 0, sizeof *slot);
	memcpy(slot->hash, h, 32);
	slot->expires = expires;
	(void)snprintf(slot->client, sizeof slot->client, "%s", client);
	(void)snprintf(slot->scopes, sizeof slot->scopes, "%s", scopes);
}

/* ---- the token endpoint ---------------------------------------------------- */

static bool ctype_form(const char *ct)
{
	static const char want[] = "application/x-www-form-urlencoded";
	size_t n = sizeof want - 1;

	if (ct == NULL)
		return false;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* The granted scopes: each word asked for that the registered list covers
 * for every interaction it names.  false when a word is no known scope. */
static bool grant(const char *asked, const char *registered, char *out, size_t cap)
{
	const char *p = asked;
	size_t o = 0;

	out[0] = '\0';
	while (*p != '\0') {
		size_t n = strcspn(p, " ");
		char word[MT_SCOPE_MAX + 1], type[32];
		const char *dot, *perm;
		bool ok;

		if (n == 0) {
			p++;
			continue;
		}
		if (!mt_scope_valid(p, n))
			return false;
		memcpy(word, p, n);
		word[n] = '\0';
		dot = strchr(word + 7, '.');
		(void)snprintf(type, sizeof type, "%.*s", (int)(dot - (word + 7)), word + 7);
		perm = dot + 1;
		if (strcmp(perm, "read") == 0)
			ok = mt_scopes_allow(registered, type, 'r') && mt_scopes_allow(registered, type, 's');
		else
			ok = (strchr(perm, 'r') == NULL || mt_scopes_allow(registered, type, 'r')) &&
			     (strchr(perm, 's') == NULL || mt_scopes_allow(registered, type, 's'));
		if (ok && o + n + 2 < cap && strstr(out, word) == NULL) {
			if (o)
				out[o++] = ' ';
			memcpy(out + o, word, n + 1);
			o += n;
		}
		p += n;
	}
	return true;
}

static void token_endpoint(struct mt_smart *s, const struct mt_https_req *rq,
                           struct mt_https_resp *rs)
{
	static const char *const known[] = {"grant_type", "client_assertion_type",
	                                    "client_assertion", "scope", "client_id"};
	struct mt_form *f = NULL;
	struct mt_jwt *jwt = NULL;
	struct mt_client *cl = NULL;
	const char *gt, *cat, *ca, *scope, *cid, *why = NULL;
	char granted[MT_CLIENT_SCOPES_MAX + 1], token_b64[TOKEN_B64 + 2];
	uint8_t raw[TOKEN_BYTES], h[32];
	int64_t now = mt_deploy_now();
	bool aud_ok = false, no_room = false, fresh;
	enum mt_err e;

	if (strcmp(rq->method, "POST") != 0) {
		refuse(s, rq, rs, 405, "invalid_request", NULL, "method",
		       "the token endpoint takes POST only");
		rs->extra_header_name = "Allow";
		rs->extra_header_value = "POST";
		return;
	}
	if (rq->body_len > MT_SMART_BODY_MAX) {
		refuse(s, rq, rs, 413, "invalid_request", NULL, "body_too_large",
		       "the token request is over 16 KiB");
		return;
	}
	if (!ctype_form(rq->content_type)) {
		refuse(s, rq, rs, 400, "invalid_request", NULL, "content_type",
		       "the token request must be application/x-www-form-urlencoded");
		return;
	}
	f = malloc(sizeof *f);
	jwt = malloc(sizeof *jwt);
	cl = malloc(sizeof *cl);
	if (f == NULL || jwt == NULL || cl == NULL) {
		rs->status = 503;
		goto out;
	}
	if (mt_form_parse(rq->body, rq->body_len, f) != MT_OK) {
		refuse(s, rq, rs, 400, "invalid_request", NULL, "form",
		       "the token request is not a well-formed form (a field twice, bad escapes, "
		       "control characters, or too long)");
		goto out;
	}
	for (size_t i = 0; i < f->n; i++) {
		bool k = false;

		for (size_t j = 0; j < sizeof known / sizeof known[0]; j++)
			k = k || strcmp(f->name[i], known[j]) == 0;
		if (!k) {
			refuse(s, rq, rs, 400, "invalid_request", NULL, "unknown_field",
			       "the token request has a field this endpoint does not take");
			goto out;
		}
	}
	gt = mt_form_get(f, "grant_type");
	cat = mt_form_get(f, "client_assertion_type");
	ca = mt_form_get(f, "client_assertion");
	scope = mt_form_get(f, "scope");
	cid = mt_form_get(f, "client_id");
	if (gt == NULL || strcmp(gt, "client_credentials") != 0) {
		refuse(s, rq, rs, 400, "unsupported_grant_type", NULL, "grant_type",
		       "grant_type must be client_credentials");
		goto out;
	}
	if (cat == NULL || strcmp(cat, ASSERTION_TYPE) != 0 || ca == NULL || ca[0] == '\0') {
		refuse(s, rq, rs, 400, "invalid_request", NULL, "assertion_type",
		       "client_assertion_type must be " ASSERTION_TYPE " with a client_assertion");
		goto out;
	}
	if (scope == NULL || scope[0] == '\0') {
		refuse(s, rq, rs, 400, "invalid_scope", NULL, "no_scope", "scope is required");
		goto out;
	}
	e = mt_jwt_parse(ca, strlen(ca), jwt, &why);
	if (e != MT_OK) {
		refuse(s, rq, rs, 401, "invalid_client", NULL,
		       e == MT_ERR_UNSUPPORTED ? "jwt_key_header" : "jwt_malformed",
		       why ? why : "the client assertion is not a JWT");
		goto out;
	}
	if (jwt->iss[0] == '\0' || strcmp(jwt->iss, jwt->sub) != 0 ||
	    !mt_client_name_valid(jwt->iss) || (cid != NULL && strcmp(cid, jwt->iss) != 0)) {
		refuse(s, rq, rs, 401, "invalid_client", NULL, "iss_sub",
		       "iss and sub must both be the client id (and client_id, when sent)");
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	e = mt_clients_get(s->clients, jwt->iss, cl);
	pthread_mutex_unlock(&s->lock);
	if (e != MT_OK || cl->disabled_at != 0) {
		refuse(s, rq, rs, 401, "invalid_client", jwt->iss,
		       e == MT_ERR_NOT_FOUND ? "unknown_client" : e != MT_OK ? "registry" : "disabled",
		       "no such client, or it is disabled");
		goto out;
	}
	if (strcmp(jwt->alg, mt_client_alg_name(cl->alg)) != 0) {
		refuse(s, rq, rs, 401, "invalid_client", jwt->iss, "alg",
		       "alg is not the algorithm registered for this client");
		goto out;
	}
	e = mt_jwt_verify(jwt, cl->alg, cl->key_pem);
	if (e != MT_OK) {
		refuse(s, rq, rs, 401, "invalid_client", jwt->iss, "signature",
		       "the assertion's signature does not verify with the client's key");
		goto out;
	}
	for (size_t i = 0; i < jwt->n_aud; i++)
		for (size_t j = 0; j < s->n_auds; j++)
			aud_ok = aud_ok || strcmp(jwt->aud[i], s->auds[j]) == 0;
	if (!aud_ok) {
		refuse(s, rq, rs, 401, "invalid_client", jwt->iss, "audience",
		       "aud must be this hub's token endpoint URL");
		goto out;
	}
	if (!(jwt->has & MT_JWT_HAS_EXP) || jwt->exp <= now ||
	    jwt->exp > now + MT_SMART_ASSERTION_LIFE_S ||
	    ((jwt->has & MT_JWT_HAS_NBF) && jwt->nbf > now + 30)) {
		refuse(s, rq, rs, 400, "invalid_grant", jwt->iss, "expiry",
		       "exp must be present, not past, and at most 5 minutes ahead");
		goto out;
	}
	if (jwt->jti[0] == '\0') {
		refuse(s, rq, rs, 400, "invalid_grant", jwt->iss, "no_jti", "jti is required");
		goto out;
	}
	{
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		unsigned hl = 0;

		if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(md, jwt->iss, strlen(jwt->iss) + 1) != 1 ||
		    EVP_DigestUpdate(md, jwt->jti, strlen(jwt->jti)) != 1 ||
		    EVP_DigestFinal_ex(md, h, &hl) != 1) {
			EVP_MD_CTX_free(md);
			rs->status = 500;
			goto out;
		}
		EVP_MD_CTX_free(md);
	}
	pthread_mutex_lock(&s->lock);
	fresh = jti_take(s, h, jwt->exp, now, &no_room);
	pthread_mutex_unlock(&s->lock);
	if (!fresh) {
		if (no_room)
			refuse(s, rq, rs, 503, "temporarily_unavailable", jwt->iss, "jti_table_full",
			       "too many assertions in flight; retry shortly");
		else
			refuse(s, rq, rs, 400, "invalid_grant", jwt->iss, "replay",
			       "this assertion (jti) was used before");
		goto out;
	}
	if (!grant(scope, cl->scopes, granted, sizeof granted)) {
		refuse(s, rq, rs, 400, "invalid_scope", jwt->iss, "unknown_scope",
		       "scope holds a word that is no scope this server knows");
		goto out;
	}
	if (granted[0] == '\0') {
		refuse(s, rq, rs, 400, "invalid_scope", jwt->iss, "no_scope_granted",
		       "none of the scopes asked for is registered for this client");
		goto out;
	}
	if (mt_random(raw, sizeof raw) != MT_OK) {
		rs->status = 503;
		goto out;
	}
	{
		/* base64url of all 32 bytes, without padding */
		static const char a[] =
		        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		size_t o = 0;
		uint32_t acc = 0;
		unsigned bits = 0;

		for (size_t i = 0; i < sizeof raw; i++) {
			acc = (acc << 8) | raw[i];
			bits += 8;
			while (bits >= 6) {
				bits -= 6;
				token_b64[o++] = a[(acc >> bits) & 63];
			}
		}
		if (bits > 0)
			token_b64[o++] = a[(acc << (6 - bits)) & 63];
		token_b64[o] = '\0';
	}
	mt_wipe(raw, sizeof raw);
	if (mt_sha256((const uint8_t *)token_b64, strlen(token_b64), h) != MT_OK) {
		rs->status = 500;
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	token_put(s, h, jwt->iss, granted, now + MT_SMART_TOKEN_LIFE_S, now);
	pthread_mutex_unlock(&s->lock);
	audit_token(s, rq, jwt->iss, true, "issued", granted);
	answer_json(rs, 200,
	            json_pack("{s:s, s:s, s:i, s:s}", "access_token", token_b64, "token_type",
	                      "bearer", "expires_in", MT_SMART_TOKEN_LIFE_S, "scope", granted));
	rs->extra_header_name = "Pragma";
	rs->extra_header_value = "no-cache";
	mt_wipe(token_b64, sizeof token_b64);
out:
	if (f != NULL)
		mt_form_wipe(f);
	free(f);
	if (jwt != NULL)
		mt_wipe(jwt, sizeof *jwt);
	free(jwt);
	free(cl);
}

static void smart_config(struct mt_smart *s, struct mt_https_resp *rs)
{
	char token_url[MT_SMART_URL_MAX + 16];
	json_t *j;

	(void)snprintf(token_url, sizeof token_url, "%s/auth/token", s->base);
	j = json_pack("{s:s, s:s, s:[s], s:[s,s], s:[s], s:[s,s,s,s,s,s,s,s,s,s], s:[s,s]}",
	              "issuer", s->base, "token_endpoint", token_url,
	              "token_endpoint_auth_methods_supported", "private_key_jwt",
	              "token_endpoint_auth_signing_alg_values_supported", "ES384", "RS384",
	              "grant_types_supported", "client_credentials", "scopes_supported",
	              "system/*.read", "system/*.rs", "system/Patient.read", "system/Patient.rs",
	              "system/Observation.read", "system/Observation.rs", "system/Device.read",
	              "system/Device.rs", "system/Provenance.read", "system/Provenance.rs",
	              "capabilities", "client-confidential-asymmetric", "permission-v2");
	answer_json(rs, 200, j);
}

void mt_smart_handle(struct mt_smart *s, const struct mt_https_req *rq, struct mt_https_resp *rs)
{
	if (strcmp(rq->path, "/.well-known/smart-configuration") == 0) {
		if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
			answer_json(rs, 405, json_pack("{s:s}", "error", "method not allowed"));
			rs->extra_header_name = "Allow";
			rs->extra_header_value = "GET";
			return;
		}
		smart_config(s, rs);
		return;
	}
	token_endpoint(s, rq, rs);
}

/* ---- bearer tokens --------------------------------------------------------- */

int mt_smart_authorize(struct mt_smart *s, const struct mt_https_req *rq, const char *type,
                       char interaction, char client[MT_CLIENT_NAME_MAX + 1], const char **why)
{
	const char *a = rq->authorization, *tok;
	uint8_t h[32];
	int64_t now = mt_deploy_now();
	size_t b;
	int st = 401;

	client[0] = '\0';
	*why = "no bearer token";
	if (a == NULL)
		return 401;
	if (strncasecmp(a, "Bearer ", 7) != 0) {
		*why = "the Authorization header is not a Bearer token";
		return 401;
	}
	tok = a + 7;
	while (*tok == ' ')
		tok++;
	if (strlen(tok) != TOKEN_B64 || strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
	                                            "vwxyz0123456789-_") != TOKEN_B64) {
		*why = "the bearer token is malformed";
		return 401;
	}
	if (mt_sha256((const uint8_t *)tok, TOKEN_B64, h) != MT_OK)
		return 401;
	b = bucket_of(h, MT_SMART_TOKENS_MAX);
	*why = "the bearer token is unknown or expired";
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < BUCKET; i++) {
		struct token *t = &s->tokens[b + i];

		if (t->expires == 0 || CRYPTO_memcmp(t->hash, h, 32) != 0)
			continue;
		if (t->expires <= now) {
			memset(t, 0, sizeof *t);
			break;
		}
		(void)snprintf(client, MT_CLIENT_NAME_MAX + 1, "%s", t->client);
		if (mt_scopes_allow(t->scopes, type, interaction)) {
			st = 0;
			*why = NULL;
		} else {
			st = 403;
			*why = "the token's scopes do not cover this resource and interaction";
		}
		break;
	}
	pthread_mutex_unlock(&s->lock);
	return st;
}
