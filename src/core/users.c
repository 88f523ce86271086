/*
 * users.c — console users in the registry database: argon2id hashes
 * (libsodium), forced changes, lockout (mt_users.h, docs/console.md;
 * threats F01, F02, F04).
 *
 * Table (medtrust.db, created when missing):
 *
 *   users(name TEXT PRIMARY KEY, role TEXT, hash TEXT, must_change INTEGER,
 *         failed INTEGER, locked_until INTEGER, created_at INTEGER,
 *         updated_at INTEGER)
 *   user_wards(user TEXT, ward TEXT, PRIMARY KEY(user, ward))
 *
 * The role is stored as its name, with a CHECK, so that an operator
 * reading the table with the sqlite3 shell reads "clinician", and a row
 * edited to an unknown role is refused by the database itself.  The hash
 * is libsodium's encoded string ("$argon2id$v=19$m=65536,t=2,p=1$...");
 * nothing else about a password is stored.
 *
 * A login reads the row, verifies outside any transaction (argon2id is
 * the slow part and must not hold the database's write lock), then
 * records the outcome in one BEGIN IMMEDIATE transaction whose UPDATE
 * counts in SQL (failed = failed + 1), so that concurrent failures from
 * two threads, two hubs or the CLI are all counted.  A lock that has run
 * out is treated as no lock: the next failure starts a new count at 1.
 *
 * An unknown name verifies a dummy hash (made once, lazily, from random
 * bytes), so that "no such user" costs what "wrong password" costs and
 * the answer time does not tell which names exist.
 *
 * Every password copy made here (the dummy's input) is wiped; the hashes
 * read from the database are wiped after use too, since an offline attack
 * on a hash is the next best thing to the password.
 */
#define _POSIX_C_SOURCE 200809L

#include "medtrust/mt_users.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sodium.h>
#include <sqlite3.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_totp.h"

#define BUSY_TIMEOUT_MS 5000
#define OPS crypto_pwhash_OPSLIMIT_INTERACTIVE
#define MEM crypto_pwhash_MEMLIMIT_INTERACTIVE

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS users("
        " name TEXT PRIMARY KEY,"
        " role TEXT NOT NULL CHECK(role IN ('admin', 'clinician', 'biomed', 'auditor')),"
        " hash TEXT NOT NULL,"
        " must_change INTEGER NOT NULL DEFAULT 1 CHECK(must_change IN (0, 1)),"
        " failed INTEGER NOT NULL DEFAULT 0,"
        " locked_until INTEGER NOT NULL DEFAULT 0,"
        " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS user_wards("
        " user TEXT NOT NULL REFERENCES users(name), ward TEXT NOT NULL,"
        " PRIMARY KEY(user, ward)) WITHOUT ROWID";

struct mt_users {
	sqlite3 *db;
	char dummy[crypto_pwhash_STRBYTES]; /* "" until the first unknown name */
};

static const char *const role_names[] = {NULL, "admin", "clinician", "biomed", "auditor"};

const char *mt_role_name(enum mt_role r)
{
	return r >= MT_ROLE_ADMIN && r <= MT_ROLE_AUDITOR ? role_names[r] : "?";
}

bool mt_role_parse(const char *s, enum mt_role *out)
{
	if (s == NULL)
		return false;
	for (int r = MT_ROLE_ADMIN; r <= MT_ROLE_AUDITOR; r++)
		if (strcmp(s, role_names[r]) == 0) {
			if (out != NULL)
				*out = (enum mt_role)r;
			return true;
		}
	return false;
}

bool mt_user_name_valid(const char *name)
{
	size_t n;

	if (name == NULL)
		return false;
	n = strlen(name);
	if (n == 0 || n > MT_USER_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return false;
	}
	return true;
}

bool mt_user_locked(const struct mt_user *u, int64_t now)
{
	return u != NULL && u->locked_until > now;
}

/* ---- opening ------------------------------------------------------------- */

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ok;

static void sodium_start(void)
{
	sodium_ok = sodium_init() >= 0;
}

static bool has_totp_column(struct mt_users *u)
{
	sqlite3_stmt *st = NULL;
	bool has;

	if (sqlite3_prepare_v2(u->db, "SELECT 1 FROM pragma_table_info('users') WHERE name = 'totp'",
	                       -1, &st, NULL) != SQLITE_OK)
		return false;
	has = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return has;
}

/* The second factor's columns, added to a registry made before them: the
 * KEK-wrapped TOTP key (NULL: no second factor) and the last step used. */
static enum mt_err add_totp_columns(struct mt_users *u)
{
	enum mt_err e = MT_OK;

	if (has_totp_column(u))
		return MT_OK;
	if (sqlite3_exec(u->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	if (!has_totp_column(u) && /* another process may have been first */
	    sqlite3_exec(u->db,
	                 "ALTER TABLE users ADD COLUMN totp BLOB;"
	                 "ALTER TABLE users ADD COLUMN totp_step INTEGER NOT NULL DEFAULT 0",
	                 NULL, NULL, NULL) != SQLITE_OK)
		e = MT_ERR_REG_DB;
	if (sqlite3_exec(u->db, e == MT_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		e = MT_ERR_REG_DB;
	return e;
}

enum mt_err mt_users_open(const char *db_path, struct mt_users **out)
{
	struct mt_users *u;

	if (db_path == NULL || out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	(void)pthread_once(&sodium_once, sodium_start);
	if (!sodium_ok)
		return MT_ERR_CRYPTO;
	u = calloc(1, sizeof *u);
	if (u == NULL)
		return MT_ERR_NOMEM;
	if (sqlite3_open_v2(db_path, &u->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		mt_users_close(u);
		return MT_ERR_REG_DB;
	}
	sqlite3_busy_timeout(u->db, BUSY_TIMEOUT_MS);
	if (sqlite3_exec(u->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(u->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(u->db, schema, NULL, NULL, NULL) != SQLITE_OK || add_totp_columns(u) != MT_OK) {
		mt_users_close(u);
		return MT_ERR_REG_DB;
	}
	*out = u;
	return MT_OK;
}

void mt_users_close(struct mt_users *u)
{
	if (u == NULL)
		return;
	sqlite3_close(u->db);
	OPENSSL_cleanse(u->dummy, sizeof u->dummy);
	free(u);
}

/* ---- passwords ------------------------------------------------------------ */

/* No 0 O o 1 l I: a password read aloud or copied from paper survives. */
static const char otp_alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

enum mt_err mt_users_otp(char *out, size_t cap)
{
	const size_t n_sym = sizeof otp_alphabet - 1; /* 56 */
	const unsigned limit = (unsigned)(256 / n_sym * n_sym); /* 224: no modulo bias */
	uint8_t r[64];
	size_t o = 0;

	if (out == NULL || cap < MT_USER_OTP_LEN + 1)
		return MT_ERR_ARG;
	while (o < MT_USER_OTP_LEN) {
		if (RAND_bytes(r, (int)sizeof r) != 1) {
			OPENSSL_cleanse(out, cap);
			OPENSSL_cleanse(r, sizeof r);
			return MT_ERR_RANDOM;
		}
		for (size_t i = 0; i < sizeof r && o < MT_USER_OTP_LEN; i++)
			if (r[i] < limit)
				out[o++] = otp_alphabet[r[i] % n_sym];
	}
	out[o] = '\0';
	OPENSSL_cleanse(r, sizeof r);
	return MT_OK;
}

/* The passwords everyone tries first that are long enough to pass the
 * length rule (compared without case).  A stand-in for a breached-password
 * corpus (F02), which is later work (docs/console.md). */
static const char *const common[] = {
        "password1234",   "password12345", "password123456", "passwordpassword",
        "123456789012",   "1234567890123", "12345678901234", "123456789abc",
        "qwertyuiop12",   "qwerty123456",  "qwertyuiopasdf", "iloveyou1234",
        "letmein12345",   "welcome12345",  "administrator",  "changeme1234",
        "medtrust1234",   "abc123456789",  "abcdefghijkl",   "trustno1trustno1",
};

static size_t code_points(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

enum mt_err mt_users_password_ok(const char *name, const char *current, const char *pw,
                                 const char **why)
{
	const char *reason = NULL;
	size_t len;

	if (pw == NULL) {
		reason = "no password given";
		goto out;
	}
	len = strlen(pw);
	if (len > MT_USER_PASSWORD_MAX) {
		reason = "the password is too long (at most 256 bytes)";
		goto out;
	}
	if (!mt_utf8_valid((const uint8_t *)pw, len)) {
		reason = "the password is not valid text";
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)pw[i] < 0x20 || pw[i] == 0x7f) {
			reason = "the password holds a control character";
			goto out;
		}
	if (code_points(pw) < MT_USER_PASSWORD_MIN) {
		reason = "the password must have at least 12 characters";
		goto out;
	}
	if (current != NULL && strcmp(pw, current) == 0) {
		reason = "the new password must differ from the current one";
		goto out;
	}
	if (name != NULL && strcasecmp(pw, name) == 0) {
		reason = "the password must not be the user name";
		goto out;
	}
	{
		size_t same = 1;

		for (size_t i = 1; i < len; i++)
			if (pw[i] == pw[0])
				same++;
		if (same == len) {
			reason = "the password is one character repeated";
			goto out;
		}
	}
	for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
		if (strcasecmp(pw, common[i]) == 0) {
			reason = "the password is one of the most common passwords";
			goto out;
		}
out:
	if (why != NULL)
		*why = reason;
	return reason == NULL ? MT_OK : MT_ERR_ARG;
}

/* argon2id of pw into out. */
static enum mt_err hash_password(const char *pw, char out[crypto_pwhash_STRBYTES])
{
	size_t len = strlen(pw);

	if (len > MT_USER_PASSWORD_MAX)
		return MT_ERR_ARG;
	memset(out, 0, crypto_pwhash_STRBYTES);
	if (crypto_pwhash_str(out, pw, (unsigned long long)len, OPS, MEM) != 0)
		return MT_ERR_CRYPTO;
	if (strncmp(out, "$argon2id$", 10) != 0) { /* the library's default changed */
		OPENSSL_cleanse(out, crypto_pwhash_STRBYTES);
		return MT_ERR_CRYPTO;
	}
	return MT_OK;
}

static bool verify_password(const char hash[crypto_pwhash_STRBYTES], const char *pw)
{
	size_t len = strlen(pw);

	if (len > MT_USER_PASSWORD_MAX)
		return false;
	return crypto_pwhash_str_verify(hash, pw, (unsigned long long)len) == 0;
}

/* The dummy hash an unknown name is checked against (made at first use). */
static enum mt_err dummy_hash(struct mt_users *u)
{
	uint8_t r[18];
	char pw[sizeof r * 2 + 1];
	enum mt_err e;

	if (u->dummy[0] != '\0')
		return MT_OK;
	if (RAND_bytes(r, (int)sizeof r) != 1)
		return MT_ERR_RANDOM;
	for (size_t i = 0; i < sizeof r; i++) {
		pw[2 * i] = "0123456789abcdef"[r[i] >> 4];
		pw[2 * i + 1] = "0123456789abcdef"[r[i] & 15];
	}
	pw[sizeof pw - 1] = '\0';
	e = hash_password(pw, u->dummy);
	OPENSSL_cleanse(r, sizeof r);
	OPENSSL_cleanse(pw, sizeof pw);
	return e;
}

/* ---- rows ------------------------------------------------------------------ */

static enum mt_err step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	return rc == SQLITE_DONE ? MT_OK : MT_ERR_REG_DB;
}

/* Fill *out from columns name, role, must_change, failed, locked_until,
 * created_at, updated_at starting at column `c`. */
static enum mt_err row_user(sqlite3_stmt *st, int c, struct mt_user *out)
{
	const unsigned char *name = sqlite3_column_text(st, c);
	const unsigned char *role = sqlite3_column_text(st, c + 1);
	size_t n;

	memset(out, 0, sizeof *out);
	if (name == NULL || role == NULL)
		return MT_ERR_REG_DB;
	n = strlen((const char *)name);
	if (n > MT_USER_NAME_MAX || !mt_role_parse((const char *)role, &out->role))
		return MT_ERR_REG_DB;
	memcpy(out->name, name, n);
	out->must_change = sqlite3_column_int64(st, c + 2) != 0;
	{
		int64_t f = sqlite3_column_int64(st, c + 3);

		out->failed = f < 0 ? 0 : f > 1000000 ? 1000000u : (unsigned)f;
	}
	out->locked_until = sqlite3_column_int64(st, c + 4);
	out->created_at = sqlite3_column_int64(st, c + 5);
	out->updated_at = sqlite3_column_int64(st, c + 6);
	out->totp = sqlite3_column_int64(st, c + 7) != 0;
	return MT_OK;
}

#define USER_COLS \
	"name, role, must_change, failed, locked_until, created_at, updated_at, totp IS NOT NULL"

/* The user and (when hash is not NULL) its hash. */
static enum mt_err fetch(struct mt_users *u, const char *name, struct mt_user *out,
                         char hash[crypto_pwhash_STRBYTES])
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (sqlite3_prepare_v2(u->db, "SELECT " USER_COLS ", hash FROM users WHERE name = ?", -1,
	                       &st, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		e = MT_ERR_NOT_FOUND;
	} else if (rc != SQLITE_ROW) {
		e = MT_ERR_REG_DB;
	} else {
		e = row_user(st, 0, out);
		if (e == MT_OK && hash != NULL) {
			const unsigned char *h = sqlite3_column_text(st, 8);
			size_t n = h ? strlen((const char *)h) : 0;

			memset(hash, 0, crypto_pwhash_STRBYTES);
			if (n == 0 || n >= crypto_pwhash_STRBYTES)
				e = MT_ERR_REG_DB;
			else
				memcpy(hash, h, n);
		}
	}
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_users_get(struct mt_users *u, const char *name, struct mt_user *out)
{
	if (u == NULL || out == NULL || !mt_user_name_valid(name))
		return MT_ERR_ARG;
	return fetch(u, name, out, NULL);
}

enum mt_err mt_users_list(struct mt_users *u,
                          enum mt_err (*cb)(void *ctx, const struct mt_user *user), void *ctx)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc;

	if (u == NULL || cb == NULL)
		return MT_ERR_ARG;
	if (sqlite3_prepare_v2(u->db, "SELECT " USER_COLS " FROM users ORDER BY name", -1, &st,
	                       NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mt_user user;

		e = row_user(st, 0, &user);
		if (e == MT_OK)
			e = cb(ctx, &user);
		if (e != MT_OK)
			break;
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_users_add(struct mt_users *u, const char *name, enum mt_role role,
                         const char *otp, int64_t now, bool *exists)
{
	char hash[crypto_pwhash_STRBYTES];
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (exists != NULL)
		*exists = false;
	if (u == NULL || !mt_user_name_valid(name) || otp == NULL ||
	    strcmp(mt_role_name(role), "?") == 0 || strlen(otp) < MT_USER_PASSWORD_MIN)
		return MT_ERR_ARG;
	e = hash_password(otp, hash);
	if (e != MT_OK)
		return e;
	if (sqlite3_prepare_v2(u->db,
	                       "INSERT INTO users(name, role, hash, must_change, failed,"
	                       " locked_until, created_at, updated_at) VALUES(?, ?, ?, 1, 0, 0, ?, ?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		e = MT_ERR_REG_DB;
	} else {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, mt_role_name(role), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_int64(st, 5, now);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			e = MT_OK;
		} else if (sqlite3_extended_errcode(u->db) == SQLITE_CONSTRAINT_PRIMARYKEY) {
			e = MT_ERR_ARG;
			if (exists != NULL)
				*exists = true;
		} else {
			e = MT_ERR_REG_DB;
		}
	}
	sqlite3_finalize(st);
	OPENSSL_cleanse(hash, sizeof hash);
	return e;
}

/* Set the hash and the must_change flag, clear failures and the lock. */
static enum mt_err set_password(struct mt_users *u, const char *name, const char *pw,
                                bool must_change, int64_t now)
{
	char hash[crypto_pwhash_STRBYTES];
	sqlite3_stmt *st = NULL;
	enum mt_err e = hash_password(pw, hash);

	if (e != MT_OK)
		return e;
	if (sqlite3_prepare_v2(u->db,
	                       "UPDATE users SET hash = ?, must_change = ?, failed = 0,"
	                       " locked_until = 0, updated_at = ? WHERE name = ?",
	                       -1, &st, NULL) != SQLITE_OK) {
		e = MT_ERR_REG_DB;
	} else {
		sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, must_change ? 1 : 0);
		sqlite3_bind_int64(st, 3, now);
		sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
		e = step_done(st);
		if (e == MT_OK && sqlite3_changes(u->db) != 1)
			e = MT_ERR_NOT_FOUND;
	}
	sqlite3_finalize(st);
	OPENSSL_cleanse(hash, sizeof hash);
	return e;
}

enum mt_err mt_users_reset(struct mt_users *u, const char *name, const char *otp, int64_t now)
{
	if (u == NULL || !mt_user_name_valid(name) || otp == NULL ||
	    strlen(otp) < MT_USER_PASSWORD_MIN)
		return MT_ERR_ARG;
	return set_password(u, name, otp, true, now);
}

/* ---- logins -------------------------------------------------------------- */

/* Record a failure: count it (a run-out lock starts a new count), lock at
 * MT_USERS_MAX_FAILS.  *locked_now says whether this failure locked. */
static enum mt_err record_failure(struct mt_users *u, const char *name, int64_t now,
                                  bool *locked_now, struct mt_user *user)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;

	*locked_now = false;
	if (sqlite3_exec(u->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	e = sqlite3_prepare_v2(u->db,
	                       "UPDATE users SET"
	                       " failed = CASE WHEN locked_until > 0 AND locked_until <= ?1"
	                       "   THEN 1 ELSE failed + 1 END,"
	                       " locked_until = CASE WHEN locked_until > ?1 THEN locked_until"
	                       "   ELSE 0 END"
	                       " WHERE name = ?2",
	                       -1, &st, NULL) == SQLITE_OK
	            ? MT_OK
	            : MT_ERR_REG_DB;
	if (e == MT_OK) {
		sqlite3_bind_int64(st, 1, now);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		e = step_done(st);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (e == MT_OK)
		e = fetch(u, name, user, NULL);
	if (e == MT_OK && user->failed >= MT_USERS_MAX_FAILS && user->locked_until <= now) {
		if (sqlite3_prepare_v2(u->db, "UPDATE users SET locked_until = ? WHERE name = ?", -1,
		                       &st, NULL) != SQLITE_OK) {
			e = MT_ERR_REG_DB;
		} else {
			sqlite3_bind_int64(st, 1, now + MT_USERS_LOCK_S);
			sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
			e = step_done(st);
			user->locked_until = now + MT_USERS_LOCK_S;
			*locked_now = e == MT_OK;
		}
		sqlite3_finalize(st);
	}
	if (e == MT_OK && sqlite3_exec(u->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		e = MT_ERR_REG_DB;
	if (e != MT_OK) {
		(void)sqlite3_exec(u->db, "ROLLBACK", NULL, NULL, NULL);
		*locked_now = false;
	}
	return e;
}

/* A success: failures cleared; the hash renewed when its parameters are
 * not today's. */
static enum mt_err record_success(struct mt_users *u, const char *name, const char *pw,
                                  const char hash[crypto_pwhash_STRBYTES])
{
	char fresh[crypto_pwhash_STRBYTES];
	sqlite3_stmt *st = NULL;
	bool rehash = crypto_pwhash_str_needs_rehash(hash, OPS, MEM) != 0;
	enum mt_err e = MT_OK;

	if (rehash && hash_password(pw, fresh) != MT_OK)
		rehash = false; /* keep the old hash; try again next time */
	if (sqlite3_prepare_v2(u->db,
	                       rehash ? "UPDATE users SET failed = 0, locked_until = 0, hash = ?2"
	                                " WHERE name = ?1"
	                              : "UPDATE users SET failed = 0, locked_until = 0"
	                                " WHERE name = ?1",
	                       -1, &st, NULL) != SQLITE_OK) {
		e = MT_ERR_REG_DB;
	} else {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (rehash)
			sqlite3_bind_text(st, 2, fresh, -1, SQLITE_STATIC);
		e = step_done(st);
	}
	sqlite3_finalize(st);
	if (rehash)
		OPENSSL_cleanse(fresh, sizeof fresh);
	return e;
}

/* The code for `name`'s TOTP key: unwrapped with the KEK, checked against
 * the last step used, and the step it matched recorded — only if still
 * above the last (a code used at the same moment elsewhere loses). */
static bool totp_ok(struct mt_users *u, const char *name, const char *code, struct mt_kek *kek,
                    int64_t now)
{
	sqlite3_stmt *st = NULL;
	uint8_t wrapped[MT_DEK_WRAPPED_LEN], key[MT_DEK_LEN];
	uint64_t step = 0;
	bool ok = false;

	if (code == NULL || kek == NULL)
		return false;
	if (sqlite3_prepare_v2(u->db, "SELECT totp, totp_step FROM users WHERE name = ?", -1, &st,
	                       NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_bytes(st, 0) == (int)sizeof wrapped && sqlite3_column_int64(st, 1) >= 0) {
		memcpy(wrapped, sqlite3_column_blob(st, 0), sizeof wrapped);
		step = (uint64_t)sqlite3_column_int64(st, 1);
		ok = true;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (!ok)
		return false;
	ok = mt_kek_unwrap(kek, wrapped, key) == MT_OK &&
	     mt_totp_check(key, sizeof key, code, now, &step) == MT_OK;
	mt_wipe(key, sizeof key);
	if (!ok)
		return false;
	ok = sqlite3_prepare_v2(u->db,
	                        "UPDATE users SET totp_step = ?2 WHERE name = ?1 AND totp_step < ?2",
	                        -1, &st, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)step);
		ok = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(u->db) == 1;
	}
	sqlite3_finalize(st);
	return ok;
}

static enum mt_err login(struct mt_users *u, const char *name, const char *password,
                         bool need_factor, const char *code, struct mt_kek *kek, int64_t now,
                         enum mt_login *verdict, struct mt_user *out)
{
	char hash[crypto_pwhash_STRBYTES];
	struct mt_user user;
	enum mt_err e;
	bool ok, locked_now = false;

	if (verdict != NULL)
		*verdict = MT_LOGIN_BAD;
	if (out != NULL)
		memset(out, 0, sizeof *out);
	if (u == NULL || name == NULL || password == NULL || verdict == NULL)
		return MT_ERR_ARG;
	e = mt_user_name_valid(name) ? fetch(u, name, &user, hash) : MT_ERR_NOT_FOUND;
	if (e == MT_ERR_NOT_FOUND) {
		/* the same work as a known name, then the same answer */
		e = dummy_hash(u);
		if (e == MT_OK)
			(void)verify_password(u->dummy, password);
		return e == MT_ERR_RANDOM ? e : MT_OK;
	}
	if (e != MT_OK)
		return e;
	if (mt_user_locked(&user, now)) {
		OPENSSL_cleanse(hash, sizeof hash);
		*verdict = MT_LOGIN_LOCKED;
		if (out != NULL)
			*out = user;
		return MT_OK;
	}
	ok = verify_password(hash, password);
	/* The second factor only after the password, and a wrong or missing
	 * code is a failure like a wrong password: it counts, it locks. */
	if (ok && need_factor && user.totp)
		ok = totp_ok(u, name, code, kek, now);
	if (ok && user.must_change && now - user.updated_at > MT_USERS_OTP_TTL_S) {
		/* a one-time password past its life: the right one, refused */
		OPENSSL_cleanse(hash, sizeof hash);
		*verdict = MT_LOGIN_EXPIRED;
		return MT_OK;
	}
	if (ok) {
		e = record_success(u, name, password, hash);
		OPENSSL_cleanse(hash, sizeof hash);
		if (e != MT_OK)
			return e;
		user.failed = 0;
		user.locked_until = 0;
		*verdict = MT_LOGIN_OK;
		if (out != NULL)
			*out = user;
		return MT_OK;
	}
	OPENSSL_cleanse(hash, sizeof hash);
	e = record_failure(u, name, now, &locked_now, &user);
	if (e != MT_OK)
		return e;
	if (locked_now || mt_user_locked(&user, now)) {
		*verdict = locked_now ? MT_LOGIN_LOCKED_NOW : MT_LOGIN_LOCKED;
		if (out != NULL)
			*out = user;
	}
	return MT_OK;
}

enum mt_err mt_users_login(struct mt_users *u, const char *name, const char *password,
                           int64_t now, enum mt_login *verdict, struct mt_user *out)
{
	return login(u, name, password, false, NULL, NULL, now, verdict, out);
}

enum mt_err mt_users_sign_in(struct mt_users *u, const char *name, const char *password,
                             const char *code, struct mt_kek *kek, int64_t now,
                             enum mt_login *verdict, struct mt_user *out)
{
	return login(u, name, password, true, code, kek, now, verdict, out);
}

enum mt_err mt_users_totp_set(struct mt_users *u, const char *name,
                              const uint8_t wrapped[MT_DEK_WRAPPED_LEN], int64_t now)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_ERR_REG_DB;

	if (u == NULL || !mt_user_name_valid(name))
		return MT_ERR_ARG;
	if (sqlite3_prepare_v2(u->db,
	                       "UPDATE users SET totp = ?2, totp_step = 0, updated_at = ?3 "
	                       "WHERE name = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (wrapped != NULL)
		sqlite3_bind_blob(st, 2, wrapped, MT_DEK_WRAPPED_LEN, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_int64(st, 3, now);
	if (sqlite3_step(st) == SQLITE_DONE)
		e = sqlite3_changes(u->db) == 1 ? MT_OK : MT_ERR_NOT_FOUND;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_users_change_password(struct mt_users *u, const char *name, const char *current,
                                     const char *next, int64_t now, enum mt_login *verdict,
                                     const char **why)
{
	enum mt_err e;

	if (why != NULL)
		*why = NULL;
	if (verdict != NULL)
		*verdict = MT_LOGIN_BAD;
	if (u == NULL || name == NULL || current == NULL || next == NULL || verdict == NULL)
		return MT_ERR_ARG;
	e = mt_users_login(u, name, current, now, verdict, NULL);
	if (e != MT_OK || *verdict != MT_LOGIN_OK)
		return e;
	e = mt_users_password_ok(name, current, next, why);
	if (e != MT_OK)
		return e;
	return set_password(u, name, next, false, now);
}

/* ---- clinician ↔ ward ------------------------------------------------------ */

bool mt_user_ward_valid(const char *ward)
{
	size_t n;

	if (ward == NULL)
		return false;
	n = strnlen(ward, MT_USER_WARD_MAX + 1);
	if (n == 0 || n > MT_USER_WARD_MAX || !mt_utf8_valid((const uint8_t *)ward, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)ward[i] < 0x20 || ward[i] == 0x7f)
			return false;
	return true;
}

enum mt_err mt_users_wards_set(struct mt_users *u, const char *name, const char *const *wards,
                               size_t n)
{
	struct mt_user who;
	sqlite3_stmt *st = NULL;
	enum mt_err e;

	if (u == NULL || !mt_user_name_valid(name) || (wards == NULL && n > 0) ||
	    n > MT_USER_WARDS_MAX)
		return MT_ERR_ARG;
	for (size_t i = 0; i < n; i++)
		if (!mt_user_ward_valid(wards[i]))
			return MT_ERR_ARG;
	if (sqlite3_exec(u->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	e = fetch(u, name, &who, NULL);
	if (e == MT_OK) {
		if (sqlite3_prepare_v2(u->db, "DELETE FROM user_wards WHERE user = ?", -1, &st,
		                       NULL) != SQLITE_OK) {
			e = MT_ERR_REG_DB;
		} else {
			sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
			e = step_done(st);
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (e == MT_OK && n > 0 &&
	    sqlite3_prepare_v2(u->db, "INSERT OR IGNORE INTO user_wards(user, ward) VALUES(?, ?)",
	                       -1, &st, NULL) != SQLITE_OK)
		e = MT_ERR_REG_DB;
	for (size_t i = 0; e == MT_OK && i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, wards[i], -1, SQLITE_STATIC);
		e = step_done(st);
	}
	sqlite3_finalize(st);
	if (e == MT_OK && sqlite3_exec(u->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		e = MT_ERR_REG_DB;
	if (e != MT_OK)
		(void)sqlite3_exec(u->db, "ROLLBACK", NULL, NULL, NULL);
	return e;
}

enum mt_err mt_users_wards(struct mt_users *u, const char *name,
                           enum mt_err (*cb)(void *ctx, const char *ward), void *ctx)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc;

	if (u == NULL || cb == NULL || !mt_user_name_valid(name))
		return MT_ERR_ARG;
	if (sqlite3_prepare_v2(u->db, "SELECT ward FROM user_wards WHERE user = ? ORDER BY ward",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *w = (const char *)sqlite3_column_text(st, 0);

		if (w == NULL || !mt_user_ward_valid(w)) {
			e = MT_ERR_REG_DB;
			break;
		}
		e = cb(ctx, w);
		if (e != MT_OK)
			break;
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_users_may_see_ward(struct mt_users *u, const char *name, const char *ward,
                                  bool *ok)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (ok != NULL)
		*ok = false;
	if (u == NULL || ok == NULL || ward == NULL || !mt_user_name_valid(name))
		return MT_ERR_ARG;
	if (!mt_user_ward_valid(ward))
		return MT_OK;
	if (sqlite3_prepare_v2(u->db, "SELECT 1 FROM user_wards WHERE user = ? AND ward = ?", -1,
	                       &st, NULL) != SQLITE_OK)
		return MT_ERR_REG_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ward, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return MT_ERR_REG_DB;
	*ok = rc == SQLITE_ROW;
	return MT_OK;
}
