/*
 * mt_clients.h — the FHIR API's registered clients (SMART backend services)
 * and the JWT client assertions they authenticate with (docs/fhir.md;
 * clinical.md §5; RFC 7523, RFC 7515, SMART App Launch "backend services").
 *
 * Clients live in the table `fhir_clients` of the deployment's registry
 * database (`db_path`, medtrust.db), beside devices and console users, so
 * one backup carries them:
 *
 *   fhir_clients(name PRIMARY KEY, alg, key_pem, scopes, created_at,
 *                disabled_at)
 *
 * A client is a name (its OAuth client_id, also the JWT's iss and sub), a
 * public key in PEM (EC P-384 for ES384 or RSA of 2048..8192 bits for
 * RS384: the algorithm is fixed by the key at registration and stored, so
 * an assertion cannot pick another), and the scopes it may ever be granted
 * (space-separated, each one of those mt_scope_valid accepts).  Clients are
 * never deleted, only disabled (disabled_at > 0): the audit chain keeps
 * naming them.
 *
 * Assertions.  mt_jwt_parse splits a compact JWS into its three parts,
 * decodes them (strict base64url: no padding, no other characters, unused
 * bits zero), reads the header and the claims with libmedtrust's strict
 * JSON reader (json_read.c: UTF-8, no duplicate names, nesting bounded)
 * and keeps what the token endpoint needs.  It refuses, before any key is
 * looked at: more than MT_JWT_MAX bytes, not three parts, a header that
 * is not an object with a string `alg`, any header that would make a
 * verifier fetch or trust a key the assertion carries (jku, x5u, jwk, x5c)
 * or a `crit`, claims that are not an object, iss/sub/jti/aud of the
 * wrong type, exp/iat/nbf that are not integers.  It does no I/O, reads no
 * clock and keeps no state, so it is fuzzed as it is
 * (fuzz/fuzz_fhir_jwt.c).  Policy (alg allowed, exp window, audience,
 * replay) is the token endpoint's (src/hub/smart.c); mt_jwt_verify checks
 * only the signature with a registered key.
 *
 * Threads: a `struct mt_clients` is one SQLite connection, used by one
 * thread at a time.  mt_jwt_* keep no state and are thread-safe.
 */
#ifndef MT_CLIENTS_H
#define MT_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"

#define MT_CLIENT_NAME_MAX 64    /* [A-Za-z0-9][A-Za-z0-9._-]{0,63} */
#define MT_CLIENT_KEY_PEM_MAX 4096
#define MT_CLIENT_SCOPES_MAX 1024 /* bytes of the space-separated scope list */
#define MT_SCOPE_MAX 64          /* bytes of one scope */

/* ---- scopes --------------------------------------------------------------- */

/* Is s[0..len) a scope the hub knows: `system/<Type>.<perm>` with Type one
 * of Patient, Observation, Device, Provenance or `*`, and perm `read` (SMART
 * v1) or a non-empty subset of "rs" in that order (v2: `r`, `s`, `rs`)? */
bool mt_scope_valid(const char *s, size_t len);

/* Does the space-separated scope list `scopes` allow `interaction` ('r'
 * read, 's' search) on `type`? */
bool mt_scopes_allow(const char *scopes, const char *type, char interaction);

/* ---- the client registry -------------------------------------------------- */

enum mt_client_alg { MT_CLIENT_ES384 = 1, MT_CLIENT_RS384 = 2 };

/* "ES384", "RS384"; "?" otherwise. */
const char *mt_client_alg_name(enum mt_client_alg a);

struct mt_client {
	char name[MT_CLIENT_NAME_MAX + 1];
	enum mt_client_alg alg;
	char key_pem[MT_CLIENT_KEY_PEM_MAX + 1];
	char scopes[MT_CLIENT_SCOPES_MAX + 1];
	int64_t created_at;
	int64_t disabled_at; /* 0: enabled */
};

struct mt_clients;

/* Is `name` a client name (MT_CLIENT_NAME_MAX, charset above)? */
bool mt_client_name_valid(const char *name);

/* Open the clients of the registry database `db_path` (creating the table
 * when missing).  Errors: MT_ERR_ARG, MT_ERR_NOMEM, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_clients_open(const char *db_path, struct mt_clients **out);
void mt_clients_close(struct mt_clients *c);

/* The algorithm a public key `pem` (NUL-terminated PEM SubjectPublicKeyInfo)
 * signs with: ES384 for an EC P-384 key, RS384 for RSA of 2048..8192 bits.
 * Errors: MT_ERR_KEY_FORMAT (not a PEM public key), MT_ERR_KEY_TYPE (any
 * other curve, key type or size). */
MT_NODISCARD enum mt_err mt_client_key_alg(const char *pem, enum mt_client_alg *alg);

/* Normalise a scope list: split on spaces, every scope mt_scope_valid,
 * duplicates dropped, joined by one space into out[0..cap).  Errors:
 * MT_ERR_ARG (an unknown scope, or none), MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_scopes_normalise(const char *in, char *out, size_t cap);

/* Register a client.  *exists (may be NULL) says the name is taken
 * (then MT_ERR_ARG).  Errors: MT_ERR_ARG (name, scopes), mt_client_key_alg's,
 * MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_clients_add(struct mt_clients *c, const char *name,
                                        const char *key_pem, const char *scopes, int64_t now,
                                        bool *exists);
/* The client `name` (disabled ones too).  Errors: MT_ERR_ARG,
 * MT_ERR_NOT_FOUND, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_clients_get(struct mt_clients *c, const char *name,
                                        struct mt_client *out);
/* Disable `name` from `now` on (disabling again changes nothing and says
 * so in *already, which may be NULL).  Errors: MT_ERR_ARG,
 * MT_ERR_NOT_FOUND, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_clients_disable(struct mt_clients *c, const char *name,
                                            int64_t now, bool *already);
/* Every client in name order; a non-MT_OK return from cb stops the walk
 * and is returned.  Errors: MT_ERR_REG_DB, cb's. */
MT_NODISCARD enum mt_err mt_clients_list(struct mt_clients *c,
                                         enum mt_err (*cb)(void *ctx,
                                                           const struct mt_client *client),
                                         void *ctx);

/* ---- JWT client assertions -------------------------------------------- */

#define MT_JWT_MAX 8192        /* bytes of a compact JWS */
#define MT_JWT_SIG_MAX 1024    /* bytes of a decoded signature (RSA 8192) */
#define MT_JWT_TEXT_MAX 256    /* bytes of iss, sub, jti, aud, kid, typ */
#define MT_JWT_AUD_MAX 4       /* audiences in an array `aud` */

#define MT_JWT_HAS_EXP 1u
#define MT_JWT_HAS_IAT 2u
#define MT_JWT_HAS_NBF 4u

/* What mt_jwt_parse keeps.  Strings are NUL-terminated copies (a claim with
 * a NUL inside is refused); `signing_input` points into the caller's text
 * (header "." payload) and is valid while it lives. */
struct mt_jwt {
	char alg[16];
	char typ[MT_JWT_TEXT_MAX + 1]; /* "" when absent */
	char kid[MT_JWT_TEXT_MAX + 1]; /* "" when absent */
	char iss[MT_JWT_TEXT_MAX + 1]; /* "" when absent */
	char sub[MT_JWT_TEXT_MAX + 1];
	char jti[MT_JWT_TEXT_MAX + 1];
	char aud[MT_JWT_AUD_MAX][MT_JWT_TEXT_MAX + 1];
	size_t n_aud;
	unsigned has; /* MT_JWT_HAS_* */
	int64_t exp, iat, nbf;
	const char *signing_input;
	size_t signing_input_len;
	uint8_t sig[MT_JWT_SIG_MAX];
	size_t sig_len;
};

/* Parse the compact JWS text[0..len) into *out.  `why` (may be NULL) gets
 * a static sentence on refusal.  Errors: MT_ERR_ARG (NULL), MT_ERR_BUFFER
 * (over a bound), MT_ERR_SIG_FORMAT (not three base64url parts),
 * MT_ERR_JSON_SYNTAX (a part is not strict JSON), MT_ERR_JSON_SCHEMA (a
 * header or claim of the wrong type, a member missing), MT_ERR_UNSUPPORTED
 * (jku, x5u, jwk, x5c or crit in the header), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_jwt_parse(const char *text, size_t len, struct mt_jwt *out,
                                      const char **why);

/* Base64url without padding (RFC 7515 §2) of in[0..len) decoded into
 * out[0..cap), strictly.  Errors: MT_ERR_SIG_FORMAT, MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                                          size_t *out_len);

/* Verify the signature of `jwt` with the public key `key_pem` of
 * algorithm `alg`: jwt->alg must name exactly that algorithm (ES384: the
 * JWS form r||s of 96 bytes, turned into DER for OpenSSL; RS384: PKCS #1
 * v1.5 with SHA-384).  Errors: MT_ERR_COSE_ALG (jwt->alg is not the key's),
 * MT_ERR_SIG_FORMAT (wrong length, r or s out of range), MT_ERR_SIG_INVALID,
 * MT_ERR_KEY_FORMAT, MT_ERR_CRYPTO. */
MT_NODISCARD enum mt_err mt_jwt_verify(const struct mt_jwt *jwt, enum mt_client_alg alg,
                                       const char *key_pem);

#endif
