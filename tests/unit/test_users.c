/*
 * test_users.c — console users (mt_users.h): argon2id hashes, one-time
 * passwords, the forced change, lockout and reset (threats F01, F02, F04).
 *
 * Each test works on a fresh database in a temporary directory, with time
 * moved by hand (the module reads no clock).  What is checked:
 *   - the stored hash is argon2id with the interactive parameters, is not
 *     the password, and verifies with libsodium directly (round trip);
 *   - one-time passwords: 24 characters of the unambiguous alphabet, all
 *     different over a few hundred;
 *   - a new user must change; the change checks the current password and
 *     the policy (F02), clears must_change, and the old password stops
 *     working;
 *   - four failures are just failures, the fifth locks for 15 minutes,
 *     during which the right password is refused unverified; after the
 *     lock the right password works, and a failure starts a new count;
 *     a success clears the count;
 *   - reset: a locked account is unlocked, failures cleared, must_change
 *     set, the old password gone; unknown users are not found;
 *   - an unknown name is a plain failure and creates nothing;
 *   - a hash made with weaker parameters is renewed at the next login;
 *   - name, role and policy checks refuse what they should.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "medtrust/mt_users.h"

#define T0 1800000000

struct fx {
	char dir[64];
	char db[128];
	struct mt_users *u;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	if (f == NULL)
		return -1;
	(void)snprintf(f->dir, sizeof f->dir, "/tmp/mt-users-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	(void)snprintf(f->db, sizeof f->db, "%s/medtrust.db", f->dir);
	if (mt_users_open(f->db, &f->u) != MT_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[160];

	mt_users_close(f->u);
	for (const char *const *s = (const char *const[]){"", "-wal", "-shm", NULL}; *s; s++) {
		(void)snprintf(p, sizeof p, "%s%s", f->db, *s);
		(void)unlink(p);
	}
	(void)rmdir(f->dir);
	free(f);
	return 0;
}

/* The stored hash of `name`, read with SQL. */
static void stored_hash(struct fx *f, const char *name, char out[crypto_pwhash_STRBYTES])
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	memset(out, 0, crypto_pwhash_STRBYTES);
	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT hash FROM users WHERE name = ?", -1, &st,
	                                    NULL),
	                 SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_true(strlen((const char *)sqlite3_column_text(st, 0)) < crypto_pwhash_STRBYTES);
	memcpy(out, sqlite3_column_text(st, 0), strlen((const char *)sqlite3_column_text(st, 0)));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static enum mt_login login(struct fx *f, const char *name, const char *pw, int64_t now,
                           struct mt_user *u)
{
	enum mt_login v = MT_LOGIN_OK;

	assert_int_equal(mt_users_login(f->u, name, pw, now, &v, u), MT_OK);
	return v;
}

static void test_hash_round_trip(void **state)
{
	struct fx *f = *state;
	char otp[MT_USER_OTP_LEN + 1], hash[crypto_pwhash_STRBYTES];
	struct mt_user u;
	bool exists = true;

	assert_int_equal(mt_users_otp(otp, sizeof otp), MT_OK);
	assert_int_equal(mt_users_add(f->u, "ann", MT_ROLE_CLINICIAN, otp, T0, &exists), MT_OK);
	assert_false(exists);
	stored_hash(f, "ann", hash);
	assert_memory_equal(hash, "$argon2id$v=19$m=65536,t=2,p=1$", 31);
	assert_null(strstr(hash, otp));
	assert_int_equal(crypto_pwhash_str_verify(hash, otp, strlen(otp)), 0);
	assert_int_not_equal(crypto_pwhash_str_verify(hash, "not it", 6), 0);

	assert_int_equal(mt_users_get(f->u, "ann", &u), MT_OK);
	assert_string_equal(u.name, "ann");
	assert_int_equal(u.role, MT_ROLE_CLINICIAN);
	assert_true(u.must_change);
	assert_int_equal(u.failed, 0);
	assert_int_equal(u.created_at, T0);

	assert_int_equal(login(f, "ann", otp, T0 + 1, &u), MT_LOGIN_OK);
	assert_true(u.must_change);
	/* the name is taken */
	assert_int_equal(mt_users_add(f->u, "ann", MT_ROLE_ADMIN, otp, T0, &exists), MT_ERR_ARG);
	assert_true(exists);
	assert_int_equal(mt_users_get(f->u, "ann", &u), MT_OK);
	assert_int_equal(u.role, MT_ROLE_CLINICIAN); /* unchanged */
}

static void test_otp(void **state)
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	char seen[300][MT_USER_OTP_LEN + 1], small[MT_USER_OTP_LEN];
	(void)state;

	for (int i = 0; i < 300; i++) {
		assert_int_equal(mt_users_otp(seen[i], sizeof seen[i]), MT_OK);
		assert_int_equal(strlen(seen[i]), MT_USER_OTP_LEN);
		assert_true(MT_USER_OTP_LEN >= 20);
		for (size_t k = 0; k < MT_USER_OTP_LEN; k++)
			assert_non_null(memchr(alphabet, seen[i][k], sizeof alphabet - 1));
		for (int j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	}
	assert_int_equal(mt_users_otp(small, sizeof small), MT_ERR_ARG);
}

static void test_must_change(void **state)
{
	struct fx *f = *state;
	const char *otp = "one-time-Password-123", *mine = "my own passphrase";
	const char *why = NULL;
	enum mt_login v;
	struct mt_user u;

	assert_int_equal(mt_users_add(f->u, "bob", MT_ROLE_ADMIN, otp, T0, NULL), MT_OK);
	/* wrong current: a failure, counted */
	assert_int_equal(mt_users_change_password(f->u, "bob", "wrong-one-123", mine, T0, &v, &why),
	                 MT_OK);
	assert_int_equal(v, MT_LOGIN_BAD);
	assert_int_equal(mt_users_get(f->u, "bob", &u), MT_OK);
	assert_int_equal(u.failed, 1);
	/* policy (F02) */
	assert_int_equal(mt_users_change_password(f->u, "bob", otp, "short", T0, &v, &why),
	                 MT_ERR_ARG);
	assert_int_equal(v, MT_LOGIN_OK);
	assert_non_null(strstr(why, "12 characters"));
	assert_int_equal(mt_users_change_password(f->u, "bob", otp, otp, T0, &v, &why), MT_ERR_ARG);
	assert_non_null(strstr(why, "differ"));
	assert_int_equal(mt_users_change_password(f->u, "bob", otp, "Password1234", T0, &v, &why),
	                 MT_ERR_ARG);
	assert_int_equal(mt_users_get(f->u, "bob", &u), MT_OK);
	assert_true(u.must_change); /* nothing changed yet */
	/* the change */
	assert_int_equal(mt_users_change_password(f->u, "bob", otp, mine, T0 + 5, &v, &why), MT_OK);
	assert_int_equal(v, MT_LOGIN_OK);
	assert_int_equal(mt_users_get(f->u, "bob", &u), MT_OK);
	assert_false(u.must_change);
	assert_int_equal(u.updated_at, T0 + 5);
	assert_int_equal(login(f, "bob", otp, T0 + 6, NULL), MT_LOGIN_BAD);
	assert_int_equal(login(f, "bob", mine, T0 + 7, &u), MT_LOGIN_OK);
	assert_false(u.must_change);
}

/* F15: a one-time password signs in for MT_USERS_OTP_TTL_S after it was
 * made; later it is refused even though right, without counting as a
 * failure; a chosen password never expires. */
static void test_one_time_expiry(void **state)
{
	struct fx *f = *state;
	const char *otp = "one-time-Password-456", *mine = "my own passphrase";
	const char *why = NULL;
	enum mt_login v;
	struct mt_user u;

	assert_int_equal(mt_users_add(f->u, "dot", MT_ROLE_CLINICIAN, otp, T0, NULL), MT_OK);
	assert_int_equal(login(f, "dot", otp, T0 + MT_USERS_OTP_TTL_S, NULL), MT_LOGIN_OK);
	assert_int_equal(login(f, "dot", otp, T0 + MT_USERS_OTP_TTL_S + 1, NULL), MT_LOGIN_EXPIRED);
	assert_int_equal(login(f, "dot", "wrong-one-123", T0 + MT_USERS_OTP_TTL_S + 1, NULL),
	                 MT_LOGIN_BAD);
	assert_int_equal(mt_users_get(f->u, "dot", &u), MT_OK);
	assert_int_equal(u.failed, 1); /* the wrong one counted, the expired one did not */
	assert_true(u.must_change);
	/* nor can it be changed into a password of one's own */
	assert_int_equal(mt_users_change_password(f->u, "dot", otp, mine, T0 + MT_USERS_OTP_TTL_S + 2,
	                                          &v, &why),
	                 MT_OK);
	assert_int_equal(v, MT_LOGIN_EXPIRED);
	/* a chosen password does not expire */
	assert_int_equal(mt_users_add(f->u, "eli", MT_ROLE_CLINICIAN, otp, T0, NULL), MT_OK);
	assert_int_equal(mt_users_change_password(f->u, "eli", otp, mine, T0 + 1, &v, &why), MT_OK);
	assert_int_equal(v, MT_LOGIN_OK);
	assert_int_equal(login(f, "eli", mine, T0 + 10 * MT_USERS_OTP_TTL_S, NULL), MT_LOGIN_OK);
}

static void test_lockout(void **state)
{
	struct fx *f = *state;
	const char *pw = "correct horse battery";
	struct mt_user u;
	int64_t t = T0, locked_at;

	assert_int_equal(mt_users_add(f->u, "cy", MT_ROLE_BIOMED, pw, t, NULL), MT_OK);
	/* a success clears failures */
	assert_int_equal(login(f, "cy", "nope-nope-nope", t, NULL), MT_LOGIN_BAD);
	assert_int_equal(login(f, "cy", "nope-nope-nope", t, NULL), MT_LOGIN_BAD);
	assert_int_equal(login(f, "cy", pw, t, NULL), MT_LOGIN_OK);
	assert_int_equal(mt_users_get(f->u, "cy", &u), MT_OK);
	assert_int_equal(u.failed, 0);
	for (int i = 1; i < MT_USERS_MAX_FAILS; i++) {
		assert_int_equal(login(f, "cy", "nope-nope-nope", ++t, NULL), MT_LOGIN_BAD);
		assert_int_equal(mt_users_get(f->u, "cy", &u), MT_OK);
		assert_int_equal(u.failed, (unsigned)i);
		assert_false(mt_user_locked(&u, t));
	}
	locked_at = ++t;
	assert_int_equal(login(f, "cy", "nope-nope-nope", locked_at, &u), MT_LOGIN_LOCKED_NOW);
	assert_int_equal(u.locked_until, locked_at + MT_USERS_LOCK_S);
	assert_true(mt_user_locked(&u, locked_at));
	/* locked: even the right password */
	assert_int_equal(login(f, "cy", pw, locked_at + 1, NULL), MT_LOGIN_LOCKED);
	assert_int_equal(login(f, "cy", pw, locked_at + MT_USERS_LOCK_S - 1, NULL),
	                 MT_LOGIN_LOCKED);
	assert_int_equal(login(f, "cy", "nope-nope-nope", locked_at + 2, NULL), MT_LOGIN_LOCKED);
	/* the lock runs out: the right password works */
	assert_int_equal(login(f, "cy", pw, locked_at + MT_USERS_LOCK_S, &u), MT_LOGIN_OK);
	assert_int_equal(u.failed, 0);
	assert_int_equal(u.locked_until, 0);

	/* lock again; after it runs out a failure starts a new count at 1 */
	t = locked_at + 2 * MT_USERS_LOCK_S;
	for (int i = 0; i < MT_USERS_MAX_FAILS - 1; i++)
		assert_int_equal(login(f, "cy", "nope-nope-nope", ++t, NULL), MT_LOGIN_BAD);
	assert_int_equal(login(f, "cy", "nope-nope-nope", ++t, NULL), MT_LOGIN_LOCKED_NOW);
	t += MT_USERS_LOCK_S;
	assert_int_equal(login(f, "cy", "nope-nope-nope", t, &u), MT_LOGIN_BAD);
	assert_int_equal(mt_users_get(f->u, "cy", &u), MT_OK);
	assert_int_equal(u.failed, 1);
	assert_false(mt_user_locked(&u, t));
}

static void test_reset(void **state)
{
	struct fx *f = *state;
	const char *pw = "first password here", *otp = "reset-one-time-4242";
	struct mt_user u;

	assert_int_equal(mt_users_add(f->u, "dee", MT_ROLE_AUDITOR, pw, T0, NULL), MT_OK);
	for (int i = 0; i < MT_USERS_MAX_FAILS; i++)
		(void)login(f, "dee", "wrong wrong wrong", T0 + i, NULL);
	assert_int_equal(mt_users_get(f->u, "dee", &u), MT_OK);
	assert_true(mt_user_locked(&u, T0 + 10));
	assert_int_equal(mt_users_reset(f->u, "dee", otp, T0 + 10), MT_OK);
	assert_int_equal(mt_users_get(f->u, "dee", &u), MT_OK);
	assert_false(mt_user_locked(&u, T0 + 10));
	assert_int_equal(u.failed, 0);
	assert_true(u.must_change);
	assert_int_equal(u.updated_at, T0 + 10);
	assert_int_equal(login(f, "dee", pw, T0 + 11, NULL), MT_LOGIN_BAD);
	assert_int_equal(login(f, "dee", otp, T0 + 12, &u), MT_LOGIN_OK);
	assert_true(u.must_change);
	assert_int_equal(mt_users_reset(f->u, "nobody", otp, T0), MT_ERR_NOT_FOUND);
	assert_int_equal(mt_users_reset(f->u, "dee", "short", T0), MT_ERR_ARG);
}

static enum mt_err collect(void *ctx, const struct mt_user *u)
{
	char *names = ctx;
	size_t n = strlen(names);

	(void)snprintf(names + n, 128 - n, "%s:%s,", u->name, mt_role_name(u->role));
	return MT_OK;
}

static void test_unknown_and_list(void **state)
{
	struct fx *f = *state;
	char names[128] = "";
	struct mt_user u;

	assert_int_equal(login(f, "ghost", "whatever-it-is", T0, NULL), MT_LOGIN_BAD);
	assert_int_equal(login(f, "Not A Name", "whatever-it-is", T0, NULL), MT_LOGIN_BAD);
	assert_int_equal(mt_users_get(f->u, "ghost", &u), MT_ERR_NOT_FOUND);
	assert_int_equal(mt_users_add(f->u, "zed", MT_ROLE_ADMIN, "zed's password 1", T0, NULL),
	                 MT_OK);
	assert_int_equal(mt_users_add(f->u, "amy.b", MT_ROLE_AUDITOR, "amy's password 1", T0, NULL),
	                 MT_OK);
	assert_int_equal(mt_users_list(f->u, collect, names), MT_OK);
	assert_string_equal(names, "amy.b:auditor,zed:admin,");
}

static void test_rehash(void **state)
{
	struct fx *f = *state;
	const char *pw = "an old strong password";
	char weak[crypto_pwhash_STRBYTES], now[crypto_pwhash_STRBYTES];
	sqlite3 *db = NULL;
	char *sql;

	assert_int_equal(mt_users_add(f->u, "old", MT_ROLE_CLINICIAN, pw, T0, NULL), MT_OK);
	assert_int_equal(crypto_pwhash_str(weak, pw, strlen(pw), crypto_pwhash_OPSLIMIT_MIN,
	                                   crypto_pwhash_MEMLIMIT_MIN),
	                 0);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	sql = sqlite3_mprintf("UPDATE users SET hash = %Q WHERE name = 'old'", weak);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_free(sql);
	sqlite3_close(db);
	assert_int_equal(login(f, "old", pw, T0, NULL), MT_LOGIN_OK);
	stored_hash(f, "old", now);
	assert_string_not_equal(now, weak);
	assert_memory_equal(now, "$argon2id$v=19$m=65536,t=2,p=1$", 31);
	assert_int_equal(login(f, "old", pw, T0, NULL), MT_LOGIN_OK);
}

static void test_checks(void **state)
{
	const char *why = NULL;
	enum mt_role r;
	(void)state;

	assert_true(mt_user_name_valid("admin"));
	assert_true(mt_user_name_valid("a.b_c-9"));
	assert_false(mt_user_name_valid(""));
	assert_false(mt_user_name_valid("Admin"));
	assert_false(mt_user_name_valid(".dot"));
	assert_false(mt_user_name_valid("a b"));
	assert_false(mt_user_name_valid("<script>"));
	{
		char name[MT_USER_NAME_MAX + 2];

		memset(name, 'a', MT_USER_NAME_MAX);
		name[MT_USER_NAME_MAX] = '\0';
		assert_true(mt_user_name_valid(name)); /* 64 */
		name[MT_USER_NAME_MAX] = 'a';
		name[MT_USER_NAME_MAX + 1] = '\0';
		assert_false(mt_user_name_valid(name)); /* 65 */
	}
	assert_true(mt_role_parse("biomed", &r));
	assert_int_equal(r, MT_ROLE_BIOMED);
	assert_false(mt_role_parse("root", &r));
	assert_false(mt_role_parse("Admin", &r));
	assert_string_equal(mt_role_name((enum mt_role)9), "?");

	assert_int_equal(mt_users_password_ok("ann", NULL, "twelve chars", &why), MT_OK);
	assert_null(why);
	assert_int_equal(mt_users_password_ok("ann", NULL, "eleven char", &why), MT_ERR_ARG);
	/* twelve characters of UTF-8 are more than twelve bytes: counted as characters */
	assert_int_equal(mt_users_password_ok("ann", NULL, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	                                                   "\xc3\xa9",
	                                      &why),
	                 MT_ERR_ARG);
	assert_int_equal(mt_users_password_ok("ann", NULL,
	                                      "\xc3\xa9t\xc3\xa9 \xc3\xa0 la plage", &why),
	                 MT_OK);
	assert_int_equal(mt_users_password_ok("ann", NULL, "aaaaaaaaaaaaaaaa", &why), MT_ERR_ARG);
	assert_int_equal(mt_users_password_ok("ann", NULL, "QWERTY123456", &why), MT_ERR_ARG);
	assert_int_equal(mt_users_password_ok("longusername", NULL, "LongUserName", &why),
	                 MT_ERR_ARG);
	assert_int_equal(mt_users_password_ok("ann", NULL, "tab\there is bad", &why), MT_ERR_ARG);
	assert_int_equal(mt_users_password_ok("ann", NULL, "bad utf8 \xff here", &why),
	                 MT_ERR_ARG);
	assert_int_equal(mt_users_password_ok("ann", "same password!", "same password!", &why),
	                 MT_ERR_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_hash_round_trip, setup, teardown),
	        cmocka_unit_test(test_otp),
	        cmocka_unit_test_setup_teardown(test_must_change, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_one_time_expiry, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_lockout, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unknown_and_list, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rehash, setup, teardown),
	        cmocka_unit_test(test_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
