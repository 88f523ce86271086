/*
 * clients.c — registered FHIR clients in the registry database, their
 * scopes, and the JWT client assertions they sign (mt_clients.h,
 * docs/fhir.md; RFC 7515, RFC 7523, SMART backend services).
 *
 * Table (medtrust.db, created when missing, the way users.c keeps console
 * users):
 *
 *   fhir_clients(name TEXT PRIMARY KEY, alg TEXT CHECK IN ('ES384','RS384'),
 *                key_pem TEXT, scopes TEXT, created_at INTEGER,
 *                disabled_at INTEGER)
 *
 * The algorithm is derived from the key when the client is registered and
 * stored beside it: an assertion's `alg` header must name exactly that one,
 * so "alg: none", HS384 keyed with the public key and an RS/ES swap are all
 * refused by one comparison before any signature arithmetic (threat G05).
 *
 * The JWT reader is the library's strict JSON reader (json_int.h): the
 * same UTF-8, duplicate-name and depth rules as every other JSON the hub
 * reads.  Everything is bounded before it is decoded: the compact text
 * (MT_JWT_MAX), each decoded part, each kept string.
 */
#define _POSIX_C_SOURCE 200809L

#include "medtrust/mt_clients.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sqlite3.h>

#include "json_int.h"

#define BUSY_TIMEOUT_MS 5000
#define PART_MAX 4096 /* decoded bytes of the header or the claims */

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS fhir_clients("
        " name TEXT PRIMARY KEY,"
        " alg TEXT NOT NULL CHECK(alg IN ('ES384', 'RS384')),"
        " key_pem TEXT NOT NULL,"
        " scopes TEXT NOT NULL,"
        " created_at INTEGER NOT NULL,"
        " disabled_at INTEGER NOT NULL DEFAULT 0)";

struct mt_clients {
	sqlite3 *db;
};

/* ---- scopes --------------------------------------------------------------- */

static const char *const scope_types[] = {"Patient", "Observation", "Device", "Provenance", "*"};

bool mt_scope_valid(const char *s, size_t len)
{
	const char *dot, *perm;
	size_t tl, pl;

	if (s == NULL || len < 9 || len > MT_SCOPE_MAX || strncmp(s, "system/", 7) != 0)
		return false;
	dot = memchr(s + 7, '.', len - 7);
	if (dot == NULL)
		return false;
	tl = (size_t)(dot - (s + 7));
	perm = dot + 1;
	pl = len - 7 - tl - 1;
	{
		bool known = false;

		for (size_t i = 0; i < sizeof scope_types / sizeof scope_types[0]; i++)
			if (strlen(scope_types[i]) == tl && memcmp(scope_types[i], s + 7, tl) == 0)
				known = true;
		if (!known)
			return false;
	}
	if (pl == 4 && memcmp(perm, "read", 4) == 0)
		return true;
	if (pl == 1 && (perm[0] == 'r' || perm[0] == 's'))
		return true;
	return pl == 2 && perm[0] == 'r' && perm[1] == 's';
}

bool mt_scopes_allow(const char *scopes, const char *type, char interaction)
{
	const char *p = scopes;

	if (scopes == NULL || type == NULL)
		return false;
	while (*p != '\0') {
		size_t n = strcspn(p, " ");

		if (mt_scope_valid(p, n)) {
			const char *dot = memchr(p, '.', n);
			size_t tl = (size_t)(dot - (p + 7));
			const char *perm = dot + 1;
			size_t pl = n - 8 - tl;
			bool type_ok = (tl == 1 && p[7] == '*') ||
			               (tl == strlen(type) && memcmp(p + 7, type, tl) == 0);

			if (type_ok && ((pl == 4 && memcmp(perm, "read", 4) == 0) ||
			                memchr(perm, interaction, pl) != NULL))
				return true;
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

enum mt_err mt_scopes_normalise(const char *in, char *out, size_t cap)
{
	const char *p = in;
	size_t o = 0;

	if (in == NULL || out == NULL || cap == 0)
		return MT_ERR_ARG;
	out[0] = '\0';
	while (*p != '\0') {
		size_t n;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		n = strcspn(p, " ");
		if (!mt_scope_valid(p, n)) {
			out[0] = '\0';
			return MT_ERR_ARG;
		}
		/* drop a duplicate: compare with every scope already out */
		{
			bool dup = false;
			const char *q = out;

			while (*q != '\0') {
				size_t m = strcspn(q, " ");

				if (m == n && memcmp(q, p, n) == 0)
					dup = true;
				q += m;
				if (*q == ' ')
					q++;
			}
			if (!dup) {
				if (o + (o ? 1 : 0) + n + 1 > cap) {
					out[0] = '\0';
					return MT_ERR_BUFFER;
				}
				if (o)
					out[o++] = ' ';
				memcpy(out + o, p, n);
				o += n;
				out[o] = '\0';
			}
		}
		p += n;
	}
	return o == 0 ? MT_ERR_ARG : MT_OK;
}

/* ---- keys ---------------------------------------------------------------- */

const char *mt_client_alg_name(enum mt_client_alg a)
{
	return a == MT_CLIENT_ES384 ? "ES384" : a == MT_CLIENT_RS384 ? "RS384" : "?";
}

static EVP_PKEY *read_pem(const char *pem)
{
	size_t n = pem ? strlen(pem) : 0;
	BIO *bio;
	EVP_PKEY *k;

	if (n == 0 || n > MT_CLIENT_KEY_PEM_MAX)
		return NULL;
	bio = BIO_new_mem_buf(pem, (int)n);
	k = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return k;
}

static enum mt_err key_alg(EVP_PKEY *k, enum mt_client_alg *alg)
{
	if (EVP_PKEY_is_a(k, "EC")) {
		char group[64];
		size_t gl = 0;

		if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
		                                   &gl) != 1 ||
		    strcmp(group, "secp384r1") != 0)
			return MT_ERR_KEY_TYPE;
		*alg = MT_CLIENT_ES384;
		return MT_OK;
	}
	if (EVP_PKEY_is_a(k, "RSA")) {
		int bits = EVP_PKEY_get_bits(k);

		if (bits < 2048 || bits > 8192)
			return MT_ERR_KEY_TYPE;
		*alg = MT_CLIENT_RS384;
		return MT_OK;
	}
	return MT_ERR_KEY_TYPE;
}

enum mt_err mt_client_key_alg(const char *pem, enum mt_client_alg *alg)
{
	EVP_PKEY *k;
	enum mt_err e;

	if (pem == NULL || alg == NULL)
		return MT_ERR_ARG;
	k = read_pem(pem);
	if (k == NULL)
		return MT_ERR_KEY_FORMAT;
	e = key_alg(k, alg);
	EVP_PKEY_free(k);
	return e;
}

/* ---- the table ------------------------------------------------------------ */

bool mt_client_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > MT_CLIENT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return false;
	}
	return true;
}

enum mt_err mt_clients_open(const char *db_path, struct mt_clients **out)
{
	struct mt_clients *c;

	if (db_path == NULL || out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return MT_ERR_NOMEM;
	if (sqlite3_open_v2(db_path, &c->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		mt_clients_close(c);
		return MT_ERR_REG_DB;
	}
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(c->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		mt_clients_close(c);
		return MT_ERR_REG_DB;
	}
	*out = c;
	return MT_OK;
}

void mt_clients_close(struct mt_clients *c)
{
	if (c == NULL)
		return;
	sqlite3_close(c->db);
	free(c);
}

static bool col_copy(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = t ? strlen((const char *)t) : 0;

	if (t == NULL || n >= cap)
		return false;
	memcpy(out, t, n + 1);
	return true;
}

static enum mt_err row_client(sqlite3_stmt *st, struct mt_client *out)
{
	char alg[8];

	memset(out, 0, sizeof *out);
	if (!col_copy(st, 0, out->name, sizeof out->name) || !col_copy(st, 1, alg, sizeof alg) ||
	    !col_copy(st, 2, out->key_pem, sizeof out->key_pem) ||
	    !col_copy(st, 3, out->scopes, sizeof out->scopes))
		return MT_ERR_REG_DB;
	out->alg = strcmp(alg, "ES384") == 0 ? MT_CLIENT_ES384
	           : strcmp(alg, "RS384") == 0 ? MT_CLIENT_RS384
	                                       : (enum mt_client_alg)0;
	if (out->alg == 0)
		return MT_ERR_REG_DB;
	out->created_at = sqlite3_column_int64(st, 4);
	out->disabled_at = sqlite3_column_int64(st, 5);
	return MT_OK;
}

#define CLIENT_COLS "name, alg, key_pem, scopes, created_at, disabled_at"

enum mt_err mt_clients_add(struct mt_clients *c, const char *name, const char *key_pem,
                           const char *scopes, int64_t now, bool *exists)
{
	char norm[MT_CLIENT_SCOPES_MAX + 1];
	enum mt_client_alg alg;
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (exists != NULL)
		*exists = false;
	if (c == NULL || !mt_client_name_valid(name) || key_pem == NULL || scopes == NULL)
		return MT_ERR_ARG;
	e = mt_scopes_normalise(scopes, norm, sizeof norm);
	if (e != MT_OK)
		return e == MT_ERR_BUFFER ? MT_ERR_ARG : e;
	e = mt_client_key_alg(key_pem, &alg);
	if (e != MT_OK)
		return e;
	if (sqlite3_prepare_v2(c->db,
	                       "INSERT INTO fhir_clients(" CLIENT_COLS ") VALUES(?, ?, ?, ?, ?, 0)",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, mt_client_alg_name(alg), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, key_pem, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, norm, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		e = MT_OK;
	} else if (sqlite3_extended_errcode(c->db) == SQLITE_CONSTRAINT_PRIMARYKEY) {
		e = MT_ERR_ARG;
		if (exists != NULL)
			*exists = true;
	} else {
		e = MT_ERR_REG_DB;
	}
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_clients_get(struct mt_clients *c, const char *name, struct mt_client *out)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (c == NULL || out == NULL || !mt_client_name_valid(name))
		return MT_ERR_ARG;
	if (sqlite3_prepare_v2(c->db, "SELECT " CLIENT_COLS " FROM fhir_clients WHERE name = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	e = rc == SQLITE_ROW ? row_client(st, out) : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND
	                                                               : MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_clients_disable(struct mt_clients *c, const char *name, int64_t now,
                               bool *already)
{
	struct mt_client cl;
	sqlite3_stmt *st = NULL;
	enum mt_err e;

	if (already != NULL)
		*already = false;
	e = mt_clients_get(c, name, &cl);
	if (e != MT_OK)
		return e;
	if (cl.disabled_at != 0) {
		if (already != NULL)
			*already = true;
		return MT_OK;
	}
	if (sqlite3_prepare_v2(c->db,
	                       "UPDATE fhir_clients SET disabled_at = ? WHERE name = ?"
	                       " AND disabled_at = 0",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	sqlite3_bind_int64(st, 1, now > 0 ? now : 1);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	e = sqlite3_step(st) == SQLITE_DONE ? MT_OK : MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_clients_list(struct mt_clients *c,
                            enum mt_err (*cb)(void *ctx, const struct mt_client *client),
                            void *ctx)
{
	sqlite3_stmt *st = NULL;
	struct mt_client *cl;
	enum mt_err e = MT_OK;
	int rc;

	if (c == NULL || cb == NULL)
		return MT_ERR_ARG;
	cl = malloc(sizeof *cl);
	if (cl == NULL)
		return MT_ERR_NOMEM;
	if (sqlite3_prepare_v2(c->db, "SELECT " CLIENT_COLS " FROM fhir_clients ORDER BY name", -1,
	                       &st, NULL) != SQLITE_OK) {
		free(cl);
		return MT_ERR_REG_DB;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e = row_client(st, cl);
		if (e == MT_OK)
			e = cb(ctx, cl);
		if (e != MT_OK)
			break;
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_REG_DB;
	sqlite3_finalize(st);
	free(cl);
	return e;
}

/* ---- JWT ------------------------------------------------------------------ */

static int b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

enum mt_err mt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                             size_t *out_len)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	if ((in == NULL && len > 0) || out_len == NULL)
		return MT_ERR_ARG;
	*out_len = 0;
	if (len % 4 == 1)
		return MT_ERR_SIG_FORMAT;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_val((unsigned char)in[i]);

		if (v < 0)
			return MT_ERR_SIG_FORMAT;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return MT_ERR_BUFFER;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) /* the unused low bits of the last character must be zero */
		return MT_ERR_SIG_FORMAT;
	*out_len = o;
	return MT_OK;
}

/* A string member into out[0..cap): absent (true, out ""), a string
 * without NUL that fits (true), anything else (false). */
static bool get_str(const struct mt_jv *obj, const char *name, char *out, size_t cap)
{
	const struct mt_jv *v = mt_json__get(obj, name, strlen(name));

	out[0] = '\0';
	if (v == NULL)
		return true;
	if (v->type != MT_JV_STRING || v->len >= cap || v->len == 0 ||
	    memchr(v->s, '\0', v->len) != NULL)
		return false;
	memcpy(out, v->s, v->len + 1);
	return true;
}

/* An integer member (NumericDate, RFC 7519 §2: we take integers only). */
static bool get_int(const struct mt_jv *obj, const char *name, int64_t *out, bool *has)
{
	const struct mt_jv *v = mt_json__get(obj, name, strlen(name));

	*has = false;
	if (v == NULL)
		return true;
	if (v->type == MT_JV_UINT && v->u <= (uint64_t)INT64_MAX) {
		*out = (int64_t)v->u;
	} else if (v->type == MT_JV_NEGINT && v->u < (uint64_t)INT64_MAX) {
		*out = -1 - (int64_t)v->u;
	} else {
		return false;
	}
	*has = true;
	return true;
}

static enum mt_err read_part(const char *b64, size_t len, struct mt_jdoc *doc, const char **why,
                             const char *which)
{
	uint8_t buf[PART_MAX];
	size_t n = 0;
	enum mt_err e = mt_b64url_decode(b64, len, buf, sizeof buf, &n);

	if (e != MT_OK) {
		*why = e == MT_ERR_BUFFER ? "a part of the assertion is too long"
		                          : "a part of the assertion is not base64url";
		return e;
	}
	e = mt_json__read((const char *)buf, n, doc, NULL, 0);
	if (e == MT_OK && doc->root->type != MT_JV_OBJECT) {
		mt_json__free(doc);
		e = MT_ERR_JSON_SCHEMA;
	}
	if (e != MT_OK)
		*why = which;
	return e;
}

enum mt_err mt_jwt_parse(const char *text, size_t len, struct mt_jwt *out, const char **why)
{
	static const char *const banned[] = {"jku", "x5u", "jwk", "x5c", "crit"};
	static const char *const header_known[] = {"alg", "typ", "kid", "cty"};
	const char *d1, *d2, *dummy;
	struct mt_jdoc hd, cl;
	const struct mt_jv *v;
	bool has;
	enum mt_err e;

	if (why == NULL)
		why = &dummy;
	*why = NULL;
	if (text == NULL || out == NULL)
		return MT_ERR_ARG;
	memset(out, 0, sizeof *out);
	if (len > MT_JWT_MAX) {
		*why = "the assertion is too long";
		return MT_ERR_BUFFER;
	}
	d1 = memchr(text, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - text)) : NULL;
	if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - text)) != NULL ||
	    d1 == text || d2 == d1 + 1) {
		*why = "the assertion is not a compact JWS of three parts";
		return MT_ERR_SIG_FORMAT;
	}
	e = mt_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - text), out->sig, sizeof out->sig,
	                     &out->sig_len);
	if (e != MT_OK) {
		*why = "the signature is not base64url or is too long";
		return e;
	}
	out->signing_input = text;
	out->signing_input_len = (size_t)(d2 - text);

	e = read_part(text, (size_t)(d1 - text), &hd, why, "the JWS header is not a JSON object");
	if (e != MT_OK)
		return e;
	for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
		if (mt_json__get(hd.root, banned[i], strlen(banned[i])) != NULL) {
			mt_json__free(&hd);
			*why = "the JWS header names a key or a critical extension (jku, x5u, jwk, x5c, "
			       "crit): never followed";
			return MT_ERR_UNSUPPORTED;
		}
	for (v = hd.root->first; v != NULL; v = v->next) {
		bool known = false;

		for (size_t i = 0; i < sizeof header_known / sizeof header_known[0]; i++)
			if (strcmp(v->name, header_known[i]) == 0 && v->name_len == strlen(v->name))
				known = true;
		if (!known) {
			mt_json__free(&hd);
			*why = "the JWS header has a member other than alg, typ, kid, cty";
			return MT_ERR_JSON_SCHEMA;
		}
	}
	v = mt_json__get(hd.root, "alg", 3);
	if (v == NULL || v->type != MT_JV_STRING || v->len == 0 || v->len >= sizeof out->alg ||
	    memchr(v->s, '\0', v->len) != NULL || !get_str(hd.root, "typ", out->typ, sizeof out->typ) ||
	    !get_str(hd.root, "kid", out->kid, sizeof out->kid)) {
		mt_json__free(&hd);
		*why = "the JWS header has no string alg, or typ/kid of the wrong type";
		return MT_ERR_JSON_SCHEMA;
	}
	memcpy(out->alg, v->s, v->len + 1);
	{
		const struct mt_jv *cty = mt_json__get(hd.root, "cty", 3);

		if (cty != NULL && cty->type != MT_JV_STRING) {
			mt_json__free(&hd);
			*why = "the JWS header's cty is not a string";
			return MT_ERR_JSON_SCHEMA;
		}
	}
	mt_json__free(&hd);

	e = read_part(d1 + 1, (size_t)(d2 - d1 - 1), &cl, why, "the claims are not a JSON object");
	if (e != MT_OK)
		return e;
	e = MT_ERR_JSON_SCHEMA;
	if (!get_str(cl.root, "iss", out->iss, sizeof out->iss) ||
	    !get_str(cl.root, "sub", out->sub, sizeof out->sub) ||
	    !get_str(cl.root, "jti", out->jti, sizeof out->jti)) {
		*why = "iss, sub or jti is not a non-empty string of at most 256 bytes";
		goto done;
	}
	v = mt_json__get(cl.root, "aud", 3);
	if (v != NULL && v->type == MT_JV_STRING) {
		if (!get_str(cl.root, "aud", out->aud[0], sizeof out->aud[0])) {
			*why = "aud is not a usable string";
			goto done;
		}
		out->n_aud = 1;
	} else if (v != NULL && v->type == MT_JV_ARRAY) {
		if (v->len == 0 || v->len > MT_JWT_AUD_MAX) {
			*why = "aud is an array of none or too many audiences";
			goto done;
		}
		for (const struct mt_jv *a = v->first; a != NULL; a = a->next) {
			if (a->type != MT_JV_STRING || a->len == 0 || a->len > MT_JWT_TEXT_MAX ||
			    memchr(a->s, '\0', a->len) != NULL) {
				*why = "aud holds something other than a usable string";
				goto done;
			}
			memcpy(out->aud[out->n_aud++], a->s, a->len + 1);
		}
	} else if (v != NULL) {
		*why = "aud is neither a string nor an array of strings";
		goto done;
	}
	if (!get_int(cl.root, "exp", &out->exp, &has)) {
		*why = "exp is not an integer";
		goto done;
	}
	out->has |= has ? MT_JWT_HAS_EXP : 0;
	if (!get_int(cl.root, "iat", &out->iat, &has)) {
		*why = "iat is not an integer";
		goto done;
	}
	out->has |= has ? MT_JWT_HAS_IAT : 0;
	if (!get_int(cl.root, "nbf", &out->nbf, &has)) {
		*why = "nbf is not an integer";
		goto done;
	}
	out->has |= has ? MT_JWT_HAS_NBF : 0;
	e = MT_OK;
done:
	mt_json__free(&cl);
	return e;
}

/* r||s (48 + 48 bytes) as a DER ECDSA-Sig-Value into *der (OPENSSL_free). */
static enum mt_err es384_der(const uint8_t *sig, size_t len, unsigned char **der, int *der_len)
{
	ECDSA_SIG *s;
	BIGNUM *r, *ss;

	if (len != 96)
		return MT_ERR_SIG_FORMAT;
	s = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 48, NULL);
	ss = BN_bin2bn(sig + 48, 48, NULL);
	if (s == NULL || r == NULL || ss == NULL || BN_is_zero(r) || BN_is_zero(ss) ||
	    ECDSA_SIG_set0(s, r, ss) != 1) {
		ECDSA_SIG_free(s);
		BN_free(r);
		BN_free(ss);
		return MT_ERR_SIG_FORMAT;
	}
	*der = NULL;
	*der_len = i2d_ECDSA_SIG(s, der);
	ECDSA_SIG_free(s);
	return *der_len > 0 ? MT_OK : MT_ERR_CRYPTO;
}

enum mt_err mt_jwt_verify(const struct mt_jwt *jwt, enum mt_client_alg alg, const char *key_pem)
{
	EVP_PKEY *k;
	EVP_MD_CTX *md = NULL;
	enum mt_client_alg kalg;
	unsigned char *der = NULL;
	const unsigned char *sig;
	size_t sig_len;
	enum mt_err e;
	int rc;

	if (jwt == NULL || key_pem == NULL)
		return MT_ERR_ARG;
	if (strcmp(jwt->alg, mt_client_alg_name(alg)) != 0)
		return MT_ERR_COSE_ALG;
	k = read_pem(key_pem);
	if (k == NULL)
		return MT_ERR_KEY_FORMAT;
	e = key_alg(k, &kalg);
	if (e == MT_OK && kalg != alg)
		e = MT_ERR_COSE_ALG;
	sig = jwt->sig;
	sig_len = jwt->sig_len;
	if (e == MT_OK && alg == MT_CLIENT_ES384) {
		int dl = 0;

		e = es384_der(jwt->sig, jwt->sig_len, &der, &dl);
		sig = der;
		sig_len = (size_t)dl;
	} else if (e == MT_OK && sig_len != (size_t)EVP_PKEY_get_size(k)) {
		e = MT_ERR_SIG_FORMAT;
	}
	if (e == MT_OK) {
		md = EVP_MD_CTX_new();
		if (md == NULL || EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, k) != 1) {
			e = MT_ERR_CRYPTO;
		} else {
			rc = EVP_DigestVerify(md, sig, sig_len,
			                      (const unsigned char *)jwt->signing_input,
			                      jwt->signing_input_len);
			e = rc == 1 ? MT_OK : MT_ERR_SIG_INVALID;
		}
	}
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	return e;
}
