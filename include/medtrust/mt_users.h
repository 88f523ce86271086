/*
 * mt_users.h — the people who use the console: names, roles, argon2id
 * password hashes, forced password changes and lockout (DESIGN.md trust
 * model, "people"; threats F01, F02, F04, F10; docs/console.md).
 *
 * Users live in the table `users` of the deployment's registry database
 * (`db_path`, medtrust.db), beside the devices and the audit chain, so a
 * backup of that one file carries them:
 *
 *   users(name PRIMARY KEY, role, hash, must_change, failed, locked_until,
 *         created_at, updated_at)
 *   user_wards(user, ward)    the wards whose patients a clinician sees
 *
 * Passwords.  Hashes are libsodium's crypto_pwhash_str: argon2id with
 * OPSLIMIT_INTERACTIVE (2 passes) and MEMLIMIT_INTERACTIVE (64 MiB), salt
 * and parameters inside the encoded string.  Interactive rather than
 * moderate (256 MiB, about 0.7 s) because the hub verifies passwords on
 * its HTTPS worker threads: 64 MiB and tens of milliseconds per attempt
 * keep a burst of logins from exhausting the hub's memory or stalling
 * the event loops, and still exceed OWASP's argon2id floor (19 MiB, t=2)
 * three times over.  A hash made with other parameters is re-hashed at
 * the next successful login (crypto_pwhash_str_needs_rehash), so raising
 * them later takes effect without a reset.  The library never logs a
 * password, never returns a hash, and wipes every copy of a password it
 * makes; callers wipe theirs.
 *
 * Lockout (F01).  MT_USERS_MAX_FAILS wrong passwords in a row lock the
 * account for MT_USERS_LOCK_S seconds; while locked, a login is refused
 * without looking at the password (the right one included), so guessing
 * gains nothing.  A success resets the count; a reset (mt_users_reset)
 * unlocks.  Counts are updated in SQL (failed = failed + 1), so two hubs
 * or two threads on one database lose no failure.
 *
 * Times are Unix seconds given by the caller (the library reads no clock,
 * so tests move time by hand).
 *
 * Threads: a `struct mt_users` is one SQLite connection, used by one
 * thread at a time (the console serialises its logins).  The CLI and the
 * hub may use the database at once (WAL, a busy timeout).
 */
#ifndef MT_USERS_H
#define MT_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"

#define MT_USER_NAME_MAX 64      /* bytes of a user name: [a-z0-9][a-z0-9._-]{0,63} */
#define MT_USER_PASSWORD_MIN 12  /* characters (code points) of a chosen password (F02) */
#define MT_USER_PASSWORD_MAX 256 /* bytes of any password accepted as input */
#define MT_USER_OTP_LEN 24       /* characters of a one-time password */
#define MT_USERS_MAX_FAILS 5     /* failures in a row that lock an account */
#define MT_USERS_LOCK_S 900      /* seconds an account stays locked */

enum mt_role {
	MT_ROLE_ADMIN = 1,
	MT_ROLE_CLINICIAN = 2,
	MT_ROLE_BIOMED = 3,
	MT_ROLE_AUDITOR = 4,
};

/* "admin", "clinician", "biomed", "auditor"; "?" for anything else. */
const char *mt_role_name(enum mt_role r);
/* The role named `s` (exactly one of the names above): true and *out set. */
bool mt_role_parse(const char *s, enum mt_role *out);

/* Is `name` a user name: 1..MT_USER_NAME_MAX bytes of lower-case letters,
 * digits, '.', '_' and '-', starting with a letter or digit. */
bool mt_user_name_valid(const char *name);

/* What a caller may know of a user (never the hash). */
struct mt_user {
	char name[MT_USER_NAME_MAX + 1];
	enum mt_role role;
	bool must_change;     /* the password is a one-time password */
	unsigned failed;      /* wrong passwords in a row */
	int64_t locked_until; /* 0: not locked; else Unix seconds */
	int64_t created_at, updated_at;
	bool totp;            /* signs in with a TOTP code as well (mt_users_sign_in) */
};

/* Is the user locked at `now`? */
bool mt_user_locked(const struct mt_user *u, int64_t now);

struct mt_users;

/* Open the users table in the SQLite database `db_path` (created when
 * absent; the table too), and initialise libsodium.  Errors: MT_ERR_ARG,
 * MT_ERR_REG_DB (the database cannot be opened or the table made),
 * MT_ERR_CRYPTO (libsodium failed to initialise), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_users_open(const char *db_path, struct mt_users **out);
void mt_users_close(struct mt_users *u);

/* A fresh one-time password: MT_USER_OTP_LEN characters drawn uniformly
 * (rejection sampling over RAND_bytes) from an alphabet without the
 * look-alikes 0 O o 1 l I (56 symbols: about 139 bits).  out needs
 * MT_USER_OTP_LEN + 1 bytes.  Errors: MT_ERR_ARG (cap), MT_ERR_RANDOM. */
MT_NODISCARD enum mt_err mt_users_otp(char *out, size_t cap);

/* Whether `pw` may become `name`'s password (F02): MT_USER_PASSWORD_MIN
 * to MT_USER_PASSWORD_MAX bytes of UTF-8 without control characters, not
 * the user name, not `current` (when not NULL), not one of a short list
 * of the most common passwords.  MT_OK, or MT_ERR_ARG with a sentence
 * for the user in *why. */
MT_NODISCARD enum mt_err mt_users_password_ok(const char *name, const char *current,
                                              const char *pw, const char **why);

/* Add user `name` with `role` and the one-time password `otp` (must_change
 * set).  Errors: MT_ERR_ARG (a bad name, role or password; or the name is
 * taken: *exists (may be NULL) then says so), MT_ERR_CRYPTO (hashing
 * failed: out of memory for argon2id), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_users_add(struct mt_users *u, const char *name, enum mt_role role,
                                      const char *otp, int64_t now, bool *exists);

/* Give `name` the one-time password `otp`: must_change set, failures
 * cleared, unlocked.  Errors: MT_ERR_NOT_FOUND, MT_ERR_ARG,
 * MT_ERR_CRYPTO, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_users_reset(struct mt_users *u, const char *name, const char *otp,
                                        int64_t now);

/* User `name` (without the hash).  Errors: MT_ERR_NOT_FOUND, MT_ERR_ARG,
 * MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_users_get(struct mt_users *u, const char *name,
                                      struct mt_user *out);

/* Every user, by name, `cb` called for each; a non-MT_OK return from cb
 * stops the walk and is returned.  Errors: MT_ERR_REG_DB, cb's. */
MT_NODISCARD enum mt_err mt_users_list(struct mt_users *u,
                                       enum mt_err (*cb)(void *ctx, const struct mt_user *user),
                                       void *ctx);

enum mt_login {
	MT_LOGIN_OK = 0,   /* *out is the user */
	MT_LOGIN_BAD = 1,  /* no such user, or a wrong password */
	MT_LOGIN_LOCKED = 2, /* locked: the password was not looked at */
	MT_LOGIN_LOCKED_NOW = 3, /* a wrong password that locked the account */
	MT_LOGIN_EXPIRED = 4, /* the right one-time password, given too late
	                         (MT_USERS_OTP_TTL_S): refused, not counted */
};

/* A one-time password (user add, reset) signs in for this long after it
 * was made; then only a new one (reset) does (threat F15). */
#define MT_USERS_OTP_TTL_S (72 * 3600)

/* Check `password` for `name` at `now`.  An unknown name costs the same
 * argon2id work as a known one (a dummy hash is verified), so timing does
 * not tell which names exist.  On MT_LOGIN_OK failures are cleared and
 * the hash is renewed if its parameters are outdated; on a wrong password
 * the failure count goes up and may lock the account.  *out (may be NULL)
 * gets the user on MT_LOGIN_OK, LOCKED and LOCKED_NOW.  Errors (the
 * verdict is then MT_LOGIN_BAD): MT_ERR_ARG (NULL), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_users_login(struct mt_users *u, const char *name,
                                        const char *password, int64_t now,
                                        enum mt_login *verdict, struct mt_user *out);

/* The console's sign-in: mt_users_login, and for a user with a second
 * factor also `code` (six digits from the authenticator, mt_totp.h),
 * checked with the TOTP key unwrapped by `kek` only after the password
 * matched.  A missing, wrong or replayed code is MT_LOGIN_BAD and counts
 * as a failure like a wrong password (five lock the account).  Errors as
 * mt_users_login. */
struct mt_kek;
MT_NODISCARD enum mt_err mt_users_sign_in(struct mt_users *u, const char *name,
                                          const char *password, const char *code,
                                          struct mt_kek *kek, int64_t now,
                                          enum mt_login *verdict, struct mt_user *out);

/* Give `name` a second factor: its TOTP key wrapped by the deployment's KEK
 * (mt_kek_wrap; 40 bytes), or NULL to remove it.  The last step used is
 * reset.  Errors: MT_ERR_ARG, MT_ERR_NOT_FOUND, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_users_totp_set(struct mt_users *u, const char *name,
                                           const uint8_t wrapped[40], int64_t now);

/* Change `name`'s password from `current` to `next` (the user's own
 * change, must_change cleared).  `current` is checked like a login (a
 * wrong one counts as a failure and may lock: a stolen session cannot
 * guess it), then `next` against mt_users_password_ok.  *verdict says
 * how `current` fared; when it is MT_LOGIN_OK and `next` is refused,
 * MT_ERR_ARG is returned with the reason in *why.  Errors: MT_ERR_ARG,
 * MT_ERR_CRYPTO, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_users_change_password(struct mt_users *u, const char *name,
                                                  const char *current, const char *next,
                                                  int64_t now, enum mt_login *verdict,
                                                  const char **why);

/* ---- clinician ↔ ward --------------------------------------------------- */

/* Each user has a set of wards (table user_wards(user, ward) in the same
 * database): the wards whose patients a clinician may see in the console.
 * A ward is 1..MT_USER_WARD_MAX bytes of UTF-8 without control
 * characters, compared byte for byte with a patient's ward (mt_store.h).
 * The role decides whether the set matters (the console's policy: a
 * clinician sees the patients of their wards; these calls only keep and
 * answer the set). */
#define MT_USER_WARD_MAX 64   /* bytes, as struct mt_patient's ward */
#define MT_USER_WARDS_MAX 64  /* wards one user may hold */

/* Is `ward` a ward name (1..MT_USER_WARD_MAX bytes of UTF-8, no control
 * characters)? */
bool mt_user_ward_valid(const char *ward);

/* Replace `name`'s wards with wards[0..n) (duplicates count once; n 0
 * clears), in one transaction.  Errors: MT_ERR_NOT_FOUND (no such user),
 * MT_ERR_ARG (a bad name or ward, more than MT_USER_WARDS_MAX, wards NULL
 * with n > 0), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_users_wards_set(struct mt_users *u, const char *name,
                                            const char *const *wards, size_t n);

/* `name`'s wards in byte order, `cb` called for each; a non-MT_OK return
 * from cb stops the walk and is returned.  A user with no wards (or no
 * such user) gives no call: use mt_users_get to tell them apart.  Errors:
 * MT_ERR_ARG, MT_ERR_REG_DB, cb's. */
MT_NODISCARD enum mt_err mt_users_wards(struct mt_users *u, const char *name,
                                        enum mt_err (*cb)(void *ctx, const char *ward),
                                        void *ctx);

/* *ok: whether `ward` is in `name`'s set (false for an unknown user or a
 * ward that is not a ward name).  Errors: MT_ERR_ARG (NULL, a bad user
 * name), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_users_may_see_ward(struct mt_users *u, const char *name,
                                               const char *ward, bool *ok);

#endif
