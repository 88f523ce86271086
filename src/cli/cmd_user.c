/*
 * cmd_user.c — console users from the command line (mt_users.h,
 * docs/console.md, docs/cli.md; threats F01, F02):
 *
 *   user add NAME --role ROLE [-c CONF]
 *   user reset NAME [-c CONF]
 *   user list [-c CONF]
 *   user wards NAME (WARD... | --none) [-c CONF]
 *
 * `add` and `reset` print a fresh one-time password on stdout — that line
 * and nothing else, so that a script can take it (`make demo` does) — and
 * the user must choose their own at the first sign-in.  The password is
 * made here from RAND_bytes (mt_users_otp), never typed on a command line
 * (where `ps` and shell histories would keep it), never written to the
 * audit chain, and wiped from memory once printed.  `reset` also clears
 * the failure count and unlocks the account.  `list` prints one JSON line
 * per user: name, role, must_change, locked, wards — never a hash.  `wards`
 * replaces the set of wards whose patients the user sees in the console
 * (mt_users.h; --none clears it) and is audited as user.wards, with the
 * wards before and after (ward names are not patient identity).
 *
 * Every change writes an audit record before anything is printed (actor
 * "cli:<login>"): user.add, user.reset, or user.add.refused /
 * user.reset.refused, naming the user and never the password.  When the
 * record cannot be written the command fails (exit 1) and prints no
 * password: an account change that leaves no trace is not made visible.
 *
 * Exit codes: 0; 1 a deployment, database or key failure; 2 refused (the
 * name is taken for add, unknown for reset); 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_totp.h"
#include "medtrust/mt_users.h"

static const char user_usage[] = "medtrust user add|reset|list|wards|totp ... [-c CONF]";

static const char user_help[] =
        "usage: medtrust user add NAME --role ROLE [-c CONF]\n"
        "       medtrust user reset NAME [-c CONF]\n"
        "       medtrust user list [-c CONF]\n"
        "       medtrust user wards NAME (WARD... | --none) [-c CONF]\n"
        "       medtrust user totp NAME [--off] [-c CONF]\n"
        "\n"
        "Users of the web console.  add creates NAME with ROLE (admin, clinician,\n"
        "biomed or auditor) and prints a one-time password on stdout; reset gives\n"
        "an existing user a new one-time password and unlocks the account.  Either\n"
        "way the user must choose their own password (at least 12 characters) at\n"
        "the first sign-in.  list prints one JSON line per user: name, role,\n"
        "must_change, locked, wards.  wards replaces the wards whose patients NAME\n"
        "sees in the console (a clinician sees only those); --none clears them.\n"
        "totp gives NAME a second factor: a new TOTP key (RFC 6238, SHA-1, six\n"
        "digits, 30 s), kept wrapped by the deployment's KEK, printed once on\n"
        "stdout as an otpauth:// URI and its base32 secret for an authenticator\n"
        "app; from then on the console asks NAME for a code with the password.\n"
        "--off removes it.\n"
        "Passwords are stored only as argon2id hashes, and\n"
        "every change is an audit record that never holds a password.\n"
        "\n"
        "  NAME               1-64 of a-z 0-9 . _ - (starting with a letter or digit)\n"
        "  --role ROLE        admin | clinician | biomed | auditor\n"
        "  WARD               1-64 bytes of UTF-8, no control characters (at most 64)\n"
        "  -c, --config CONF  the deployment's medtrust.conf\n"
        "\n"
        "Exit codes: 0; 1 a deployment, database or key failure; 2 refused (add: the\n"
        "name is taken; reset, wards, totp: no such user); 64 usage.\n";

static const char *actor(char *buf, size_t cap)
{
	struct passwd *pw = getpwuid(getuid());

	(void)snprintf(buf, cap, "cli:%s", pw && pw->pw_name ? pw->pw_name : "unknown");
	return buf;
}

/* Open the deployment, its audit chain (with `audit`) and its users; on
 * failure say why on stderr. */
static enum mt_err open_users(const char *conf, bool audit, struct mt_deploy **d,
                              struct mt_users **u)
{
	char why[512] = "";
	enum mt_err e = mt_deploy_open(conf, d, why, sizeof why);

	*u = NULL;
	if (e != MT_OK) {
		*d = NULL;
		fprintf(stderr, "error: opening the deployment: %s\n", why[0] ? why : mt_err_str(e));
		return e;
	}
	if (audit) {
		e = mt_deploy_open_audit(*d);
		if (e != MT_OK) {
			fprintf(stderr, "error: opening the audit chain: %s\n", mt_err_str(e));
			return e;
		}
	}
	e = mt_users_open(mt_deploy_get(*d, "db_path"), u);
	if (e != MT_OK)
		fprintf(stderr, "error: opening the users in %s: %s\n", mt_deploy_get(*d, "db_path"),
		        mt_err_str(e));
	return e;
}

static int print_password(char *otp)
{
	int rc = MT_EXIT_OK;

	if (printf("%s\n", otp) < 0 || fflush(stdout) != 0)
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	OPENSSL_cleanse(otp, MT_USER_OTP_LEN + 1);
	return rc;
}

/* Audit a change to `name`: `action` with `fields` (JSON members) and the
 * reason of a failure, or `action`.refused when there is no such user.
 * Then the exit code: 2 no such user, 1 when `doing` failed or the record
 * could not be written (`made` says what stands), else 0. */
static int audit_change(struct mt_deploy *d, const char *action, const char *name,
                        const char *fields, enum mt_err e, const char *doing, const char *made)
{
	char who[96], detail[160], act[48];
	enum mt_err ae;

	(void)snprintf(detail, sizeof detail, "{%s%s}", fields,
	               e == MT_ERR_NOT_FOUND ? ",\"reason\":\"no_such_user\""
	               : e != MT_OK          ? ",\"reason\":\"error\""
	                                     : "");
	(void)snprintf(act, sizeof act, "%s%s", action, e == MT_ERR_NOT_FOUND ? ".refused" : "");
	ae = mt_deploy_audit(d, actor(who, sizeof who), act, name,
	                     e == MT_OK ? MT_AUDIT_OK : e == MT_ERR_NOT_FOUND ? MT_AUDIT_REFUSED
	                                                                       : MT_AUDIT_ERROR,
	                     detail);
	if (e == MT_ERR_NOT_FOUND) {
		fprintf(stderr, "refused: no user named '%s'\n", name);
		return MT_EXIT_REFUSED;
	}
	if (e != MT_OK)
		return mt_cli__error(doing, e);
	if (ae != MT_OK)
		return mt_cli__error(made, ae);
	return MT_EXIT_OK;
}

static int user_add(int argc, char **argv)
{
	const char *cmd = "user add", *conf = NULL, *role_s = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"role", 0, MT_CLI_VALUE, &role_s, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	char otp[MT_USER_OTP_LEN + 1], who[96], detail[128];
	struct mt_deploy *d = NULL;
	struct mt_users *u = NULL;
	enum mt_role role;
	bool exists = false;
	enum mt_err e, ae;
	int rc = mt_cli__parse_operands(cmd, user_usage, user_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!mt_user_name_valid(pos[0]))
		return mt_cli__usage(cmd, user_usage, "'%s' is not a user name (1-64 of a-z 0-9 . _ -)",
		                     pos[0]);
	if (role_s == NULL)
		return mt_cli__usage(cmd, user_usage, "--role is required");
	if (!mt_role_parse(role_s, &role))
		return mt_cli__usage(cmd, user_usage,
		                     "--role: '%s' is none of admin, clinician, biomed, auditor", role_s);
	memset(otp, 0, sizeof otp);
	e = open_users(conf, true, &d, &u);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto out;
	}
	e = mt_users_otp(otp, sizeof otp);
	if (e == MT_OK)
		e = mt_users_add(u, pos[0], role, otp, mt_deploy_now(), &exists);
	(void)snprintf(detail, sizeof detail, "{\"role\":\"%s\"%s}", mt_role_name(role),
	               exists ? ",\"reason\":\"exists\"" : e != MT_OK ? ",\"reason\":\"error\"" : "");
	ae = mt_deploy_audit(d, actor(who, sizeof who), exists ? "user.add.refused" : "user.add",
	                     pos[0], e == MT_OK ? MT_AUDIT_OK : exists ? MT_AUDIT_REFUSED
	                                                               : MT_AUDIT_ERROR,
	                     detail);
	if (exists) {
		fprintf(stderr, "refused: a user named '%s' exists (medtrust user reset gives it a new "
		                "password)\n",
		        pos[0]);
		rc = MT_EXIT_REFUSED;
	} else if (e != MT_OK) {
		rc = mt_cli__error("adding the user", e);
	} else if (ae != MT_OK) {
		rc = mt_cli__error("writing the audit record (the user was added; reset it)", ae);
	} else {
		rc = print_password(otp);
	}
	if (rc == MT_EXIT_OK)
		fprintf(stderr, "added %s (%s): the password printed is for one sign-in only\n", pos[0],
		        mt_role_name(role));
out:
	OPENSSL_cleanse(otp, sizeof otp);
	mt_users_close(u);
	mt_deploy_close(d);
	return rc;
}

static int user_reset(int argc, char **argv)
{
	const char *cmd = "user reset", *conf = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	char otp[MT_USER_OTP_LEN + 1];
	struct mt_deploy *d = NULL;
	struct mt_users *u = NULL;
	struct mt_user before;
	bool was_locked = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, user_usage, user_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!mt_user_name_valid(pos[0]))
		return mt_cli__usage(cmd, user_usage, "'%s' is not a user name (1-64 of a-z 0-9 . _ -)",
		                     pos[0]);
	memset(otp, 0, sizeof otp);
	e = open_users(conf, true, &d, &u);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto out;
	}
	e = mt_users_get(u, pos[0], &before);
	if (e == MT_OK) {
		was_locked = mt_user_locked(&before, mt_deploy_now());
		e = mt_users_otp(otp, sizeof otp);
	}
	if (e == MT_OK)
		e = mt_users_reset(u, pos[0], otp, mt_deploy_now());
	rc = audit_change(d, "user.reset", pos[0],
	                  was_locked ? "\"unlocked\":true" : "\"unlocked\":false", e,
	                  "resetting the user",
	                  "writing the audit record (the password was reset; reset again)");
	if (rc == MT_EXIT_OK)
		rc = print_password(otp);
	if (rc == MT_EXIT_OK)
		fprintf(stderr, "reset %s%s: the password printed is for one sign-in only\n", pos[0],
		        was_locked ? " (unlocked)" : "");
out:
	OPENSSL_cleanse(otp, sizeof otp);
	mt_users_close(u);
	mt_deploy_close(d);
	return rc;
}

/* A new TOTP key for `name`, wrapped by the KEK and stored; the URI and
 * the secret for the authenticator on stdout (mt_totp.h). */
static enum mt_err totp_enable(struct mt_deploy *d, struct mt_users *u, const char *name)
{
	uint8_t key[MT_DEK_LEN], wrapped[MT_DEK_WRAPPED_LEN];
	char uri[MT_TOTP_URI_MAX], secret[(MT_DEK_LEN * 8 + 4) / 5 + 1];
	struct mt_kek *kek = NULL;
	enum mt_err e;

	e = mt_deploy_get(d, "kek_key") != NULL ? mt_kek_open(mt_deploy_get(d, "kek_key"), &kek)
	                                        : MT_ERR_ARG;
	if (e == MT_OK)
		e = mt_random(key, sizeof key);
	if (e == MT_OK)
		e = mt_kek_wrap(kek, key, wrapped);
	if (e == MT_OK)
		e = mt_totp_uri("medtrust", name, key, sizeof key, uri, sizeof uri);
	if (e == MT_OK)
		e = mt_base32(key, sizeof key, secret, sizeof secret);
	if (e == MT_OK)
		e = mt_users_totp_set(u, name, wrapped, mt_deploy_now());
	if (e == MT_OK && (printf("%s\nsecret: %s\n", uri, secret) < 0 || fflush(stdout) != 0))
		e = MT_ERR_IO;
	mt_wipe(key, sizeof key);
	mt_wipe(uri, sizeof uri);
	mt_wipe(secret, sizeof secret);
	mt_kek_free(kek);
	return e;
}

static int user_totp(int argc, char **argv)
{
	const char *cmd = "user totp", *conf = NULL, *pos[1] = {NULL};
	bool off = false;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"off", 0, MT_CLI_FLAG, NULL, &off},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	struct mt_users *u = NULL;
	struct mt_user user;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, user_usage, user_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!mt_user_name_valid(pos[0]))
		return mt_cli__usage(cmd, user_usage, "'%s' is not a user name (1-64 of a-z 0-9 . _ -)",
		                     pos[0]);
	e = open_users(conf, true, &d, &u);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto out;
	}
	e = mt_users_get(u, pos[0], &user);
	if (e == MT_OK)
		e = off ? mt_users_totp_set(u, pos[0], NULL, mt_deploy_now())
		        : totp_enable(d, u, pos[0]);
	rc = audit_change(d, "user.totp", pos[0],
	                  off ? "\"second_factor\":false" : "\"second_factor\":true", e,
	                  off ? "removing the second factor" : "making the second factor",
	                  "writing the audit record (the change was made)");
	if (rc == MT_EXIT_OK)
		fprintf(stderr, off ? "%s signs in with a password alone\n"
		                    : "%s now signs in with a code from the authenticator as well: "
		                      "add the URI or the secret above to it (shown once)\n",
		        pos[0]);
out:
	mt_users_close(u);
	mt_deploy_close(d);
	return rc;
}

struct list_run {
	struct mt_users *u;
	int64_t now;
	bool failed;
};

/* The JSON array of a user's wards, appended to a buffer. */
struct ward_buf {
	char s[MT_USER_WARDS_MAX * (6 * MT_USER_WARD_MAX + 3) + 3];
	size_t n;
	bool first;
};

static enum mt_err ward_append(void *ctx, const char *ward)
{
	struct ward_buf *b = ctx;
	char js[6 * MT_USER_WARD_MAX + 3];
	int k = snprintf(b->s + b->n, sizeof b->s - b->n, "%s%s", b->first ? "" : ",",
	                 mt_deploy_json_str(ward, js, sizeof js));

	if (k < 0 || (size_t)k >= sizeof b->s - b->n)
		return MT_ERR_BUFFER;
	b->n += (size_t)k;
	b->first = false;
	return MT_OK;
}

/* "[...]" of `name`'s wards into *b. */
static enum mt_err wards_json(struct mt_users *u, const char *name, struct ward_buf *b)
{
	enum mt_err e;

	b->n = 1;
	b->s[0] = '[';
	b->s[1] = '\0';
	b->first = true;
	e = mt_users_wards(u, name, ward_append, b);
	if (e == MT_OK && b->n + 2 > sizeof b->s)
		e = MT_ERR_BUFFER;
	if (e == MT_OK) {
		b->s[b->n++] = ']';
		b->s[b->n] = '\0';
	}
	return e;
}

static enum mt_err list_one(void *ctx, const struct mt_user *user)
{
	struct list_run *r = ctx;
	char js[2][6 * (MT_USER_NAME_MAX + 1) + 3];
	struct ward_buf *w = malloc(sizeof *w);
	enum mt_err e;

	if (w == NULL)
		return MT_ERR_NOMEM;
	e = wards_json(r->u, user->name, w);
	if (e == MT_OK &&
	    printf("{\"name\":%s,\"role\":%s,\"must_change\":%s,\"locked\":%s,\"totp\":%s,"
	           "\"wards\":%s}\n",
	           mt_deploy_json_str(user->name, js[0], sizeof js[0]),
	           mt_deploy_json_str(mt_role_name(user->role), js[1], sizeof js[1]),
	           user->must_change ? "true" : "false",
	           mt_user_locked(user, r->now) ? "true" : "false", user->totp ? "true" : "false",
	           w->s) < 0) {
		r->failed = true;
		e = MT_ERR_IO;
	}
	free(w);
	return e;
}

static int user_list(int argc, char **argv)
{
	const char *cmd = "user list", *conf = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	struct mt_users *u = NULL;
	struct list_run r = {NULL, mt_deploy_now(), false};
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, user_usage, user_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	rc = MT_EXIT_OK;
	e = open_users(conf, false, &d, &u);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
	} else {
		r.u = u;
		e = mt_users_list(u, list_one, &r);
		if (e != MT_OK)
			rc = mt_cli__error(r.failed ? "writing stdout" : "reading the users", e);
		else if (fflush(stdout) != 0)
			rc = mt_cli__error("writing stdout", MT_ERR_IO);
	}
	mt_users_close(u);
	mt_deploy_close(d);
	return rc;
}

static int user_wards(int argc, char **argv)
{
	const char *cmd = "user wards", *conf = NULL, *name;
	bool none = false;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"none", 0, MT_CLI_FLAG_ONCE, NULL, &none},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct ward_buf *before = NULL, *after = NULL;
	struct mt_deploy *d = NULL;
	struct mt_users *u = NULL;
	const char *const *wards;
	char who[96], *detail = NULL;
	size_t n, detail_cap;
	enum mt_err e, ae;
	int first, rc = mt_cli__parse_opts(cmd, user_usage, user_help, argc, argv, opts, &first);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (argc - first < 1)
		return mt_cli__usage(cmd, user_usage, "give a user name, then wards or --none");
	name = argv[first];
	wards = (const char *const *)(argv + first + 1);
	n = (size_t)(argc - first - 1);
	if (!mt_user_name_valid(name))
		return mt_cli__usage(cmd, user_usage, "'%s' is not a user name (1-64 of a-z 0-9 . _ -)",
		                     name);
	if (none && n > 0)
		return mt_cli__usage(cmd, user_usage, "--none takes no wards");
	if (!none && n == 0)
		return mt_cli__usage(cmd, user_usage, "give at least one ward, or --none to clear");
	if (n > MT_USER_WARDS_MAX)
		return mt_cli__usage(cmd, user_usage, "at most %d wards", MT_USER_WARDS_MAX);
	for (size_t i = 0; i < n; i++)
		if (!mt_user_ward_valid(wards[i]))
			return mt_cli__usage(cmd, user_usage,
			                     "ward %zu: 1-%d bytes of UTF-8, no control characters",
			                     i + 1, MT_USER_WARD_MAX);
	before = calloc(1, sizeof *before);
	after = calloc(1, sizeof *after);
	detail_cap = 2 * sizeof before->s + 128;
	detail = malloc(detail_cap);
	if (before == NULL || after == NULL || detail == NULL) {
		rc = mt_cli__error(cmd, MT_ERR_NOMEM);
		goto out;
	}
	e = open_users(conf, true, &d, &u);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto out;
	}
	{
		struct mt_user tmp;

		e = mt_users_get(u, name, &tmp);
	}
	if (e == MT_OK)
		e = wards_json(u, name, before);
	if (e == MT_OK)
		e = mt_users_wards_set(u, name, wards, n);
	if (e == MT_OK)
		e = wards_json(u, name, after);
	if (e == MT_OK)
		(void)snprintf(detail, detail_cap, "{\"before\":%s,\"after\":%s}", before->s, after->s);
	else
		(void)snprintf(detail, detail_cap, "{\"reason\":\"%s\"}",
		               e == MT_ERR_NOT_FOUND ? "no_such_user" : "error");
	ae = mt_deploy_audit(d, actor(who, sizeof who),
	                     e == MT_ERR_NOT_FOUND ? "user.wards.refused" : "user.wards", name,
	                     e == MT_OK                ? MT_AUDIT_OK
	                     : e == MT_ERR_NOT_FOUND ? MT_AUDIT_REFUSED
	                                             : MT_AUDIT_ERROR,
	                     detail);
	if (e == MT_ERR_NOT_FOUND) {
		fprintf(stderr, "refused: no user named '%s'\n", name);
		rc = MT_EXIT_REFUSED;
	} else if (e != MT_OK) {
		rc = mt_cli__error("setting the wards", e);
	} else if (ae != MT_OK) {
		rc = mt_cli__error("writing the audit record (the wards were set)", ae);
	} else {
		rc = MT_EXIT_OK;
		fprintf(stderr, "%s: wards %s\n", name, after->s);
	}
out:
	free(before);
	free(after);
	free(detail);
	mt_users_close(u);
	mt_deploy_close(d);
	return rc;
}

int mt_cli_user(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
	        {"add", user_add},
	        {"reset", user_reset},
	        {"list", user_list},
	        {"wards", user_wards},
	        {"totp", user_totp},
	        {NULL, NULL}};

	return mt_cli__dispatch("user", user_usage, user_help, subs, argc, argv);
}
