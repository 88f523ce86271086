/*
 * smart.h — SMART backend-services authorization for the FHIR API
 * (clinical.md §5; SMART App Launch 2.x "backend services"; RFC 6749,
 * RFC 7521/7523; docs/fhir.md; threats G04, G05, G07).
 *
 *   GET  /.well-known/smart-configuration   what a client needs to ask
 *   POST /auth/token                         client_credentials with a
 *                                            private_key_jwt assertion
 *
 * A registered client (mt_clients.h, `medtrust client add`) proves itself
 * with a JWT it signs with its key: alg exactly the client's (ES384 or
 * RS384: never none, never HS*), iss = sub = its name, aud = this hub's
 * token endpoint URL, exp not past and at most 5 minutes ahead, a jti
 * never seen before (kept until its exp: a replay is refused).  No key is
 * ever taken from the assertion and no URL is ever fetched.  The grant is
 * the intersection of the scopes asked for and those registered.
 *
 * Access tokens are 32 random bytes (base64url), opaque; the hub keeps only
 * their SHA-256, with the client, its granted scopes and the expiry (5
 * minutes), in a bounded in-memory table (MT_SMART_TOKENS_MAX; expired
 * entries are dropped first).  A restart forgets every token: clients ask
 * again.  Neither the assertion nor a token is ever logged or audited.
 *
 * Every issuance (fhir.token) and refusal (fhir.token.refused, with a
 * one-word reason) is audited through the hub's audit callback.
 *
 * Threads: every function is thread-safe (one lock over the tables and
 * the clients database connection).
 */
#ifndef MT_HUB_SMART_H
#define MT_HUB_SMART_H

#include <stddef.h>

#include "console.h"
#include "https.h"
#include "medtrust/mt_clients.h"
#include "medtrust/mt_deploy.h"

#define MT_SMART_TOKEN_LIFE_S 300
#define MT_SMART_ASSERTION_LIFE_S 300 /* exp at most this far ahead */
#define MT_SMART_TOKENS_MAX 4096
#define MT_SMART_JTIS_MAX 65536
#define MT_SMART_BODY_MAX 16384 /* bytes of a token request */
#define MT_SMART_URL_MAX 512

struct mt_smart;

/* Open over deployment `d` (borrowed; it must outlive this): the clients
 * table in db_path and the public base URL (hub_url, else
 * https://<first of hub_hosts>:<hub_port>).  Errors: MT_ERR_ARG,
 * MT_ERR_NOMEM, mt_clients_open's; `why` gets a sentence. */
MT_NODISCARD enum mt_err mt_smart_open(struct mt_deploy *d, mt_console_audit_fn audit,
                                       void *audit_arg, struct mt_smart **out, char *why,
                                       size_t why_cap);
void mt_smart_close(struct mt_smart *s);

/* The public base URL, without a trailing slash ("https://hub:8443"). */
const char *mt_smart_base_url(const struct mt_smart *s);

/* GET /.well-known/smart-configuration and POST /auth/token. */
void mt_smart_handle(struct mt_smart *s, const struct mt_https_req *rq,
                     struct mt_https_resp *rs);

/* Check the request's bearer token for `interaction` ('r' read, 's'
 * search) on resource `type`.  Returns 0 (allowed: client[] names the
 * client), 401 (no token, malformed, unknown or expired: *why says which)
 * or 403 (the token's scopes do not cover it). */
int mt_smart_authorize(struct mt_smart *s, const struct mt_https_req *rq, const char *type,
                       char interaction, char client[MT_CLIENT_NAME_MAX + 1],
                       const char **why);

/* For tests: forget every token (as a restart would). */
void mt_smart_forget_tokens(struct mt_smart *s);

#endif
