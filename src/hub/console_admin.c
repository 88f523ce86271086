/*
 * console_admin.c — the administrator's view: /admin and below (role
 * admin; console_int.h, docs/console-admin.md; threats F05, F06, F08, F10).
 *
 *   /admin                 an index of what follows
 *   /admin/users           users: role, wards, second factor, locked,
 *                          must change; add, reset, set wards (POST)
 *   /admin/wards           each ward: its patients, its users
 *   /admin/patients        patients (decrypted) and their devices now
 *   /admin/manufacturers   trusted manufacturers, imported manifests
 *   /admin/integrations    HL7 destinations and the journal's position,
 *                          FHIR settings and clients
 *
 * Only /admin/users changes anything, and the same three changes the CLI
 * makes (`medtrust user add|reset|wards`), audited the same way — actions
 * user.add, user.reset, user.wards, their `.refused` forms with a reason —
 * with the administrator as actor (user:<name>) instead of cli:<login>.
 * Each POST passes, in this order: a strictly parsed form (con_read_form),
 * the session's CSRF token (F05: 403 and console.csrf.refused otherwise,
 * nothing done), a password given within console_reauth_s (F10: else a
 * 303 to /reauth?next=/admin/users, nothing done), then the input's shape.
 * Input that is refused is audited as `.refused` with a reason, never with
 * what was typed when it is not a valid name (an audit field must not carry
 * control characters or unbounded text).
 *
 * One-time passwords (add, reset) come from mt_users_otp (RAND_bytes),
 * appear once on the answer page (Cache-Control: no-store, like every
 * console answer) and nowhere else: not in the audit record, not in the
 * log, wiped from this file's buffers once the page is built.
 *
 * Reading: users under login_lock (the console's one users connection);
 * patients under store_lock, decrypted as the ward page does, wiped after
 * rendering, the view audited (console.patients.view: identities shown);
 * manufacturers and manifests from a read-only registry connection
 * (mt_registry_list.h); HL7 cursors from hl7out.db, read-only.  Every
 * data string — names, MRNs, wards, beds, device ids, manufacturer CNs,
 * client names and scopes, host names — goes through con_text (F06).
 */
#define _POSIX_C_SOURCE 200809L

#include "console_int.h"
#include "hl7out.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "medtrust/mt_clients.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_registry_list.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_store_clinical.h"
#include "medtrust/mt_store_query.h"
#include "medtrust/mt_users.h"

#define BACK "/admin/users" /* where a re-authentication returns */
#define WARDS_SHOWN 1024    /* distinct wards on /admin/wards */
#define PAIRS_MAX 65536     /* (user, ward) pairs read for /admin/wards */
#define AUDIT_EXTRA_MAX 700 /* con_audit keeps ~768 bytes of members */

/* ---- small helpers -------------------------------------------------------------------------- */

static void fmt_s(int64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, cap, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		(void)snprintf(buf, cap, "\xe2\x80\x94");
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void not_found(struct mt_console *c, struct mt_https_resp *rs, const struct session *s)
{
	con_message(c, rs, 404, s, "Not found", "There is no such page.");
}

static void admin_nav(struct out *o, const char *here)
{
	static const struct {
		const char *href, *label;
	} pages[] = {
	        {"/admin/users", "Users"},
	        {"/admin/wards", "Wards"},
	        {"/admin/patients", "Patients"},
	        {"/admin/manufacturers", "Manufacturers"},
	        {"/admin/integrations", "Integrations"},
	};

	con_lit(o, "<nav class=\"sub\">");
	for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++)
		con_fmt(o, "<a href=\"%s\"%s>%s</a> ", pages[i].href,
		        strcmp(pages[i].href, here) == 0 ? " aria-current=\"page\"" : "",
		        pages[i].label);
	con_lit(o, "</nav>");
}

/* ---- /admin --------------------------------------------------------------------------------- */

static void index_page(struct mt_console *c, struct mt_https_resp *rs, const struct session *s)
{
	struct out o = {0};

	con_page_start(c, &o, "Administration", s, NULL);
	con_lit(&o, "<h1>Administration</h1><ul class=\"index\">"
	            "<li><a href=\"/admin/users\">Users</a> \xe2\x80\x94 who may sign in, their "
	            "roles and wards; add a user, reset a password, set a clinician's wards</li>"
	            "<li><a href=\"/admin/wards\">Wards</a> \xe2\x80\x94 each ward, its patients "
	            "and the clinicians who see it</li>"
	            "<li><a href=\"/admin/patients\">Patients</a> \xe2\x80\x94 patients and the "
	            "devices assigned to them now</li>"
	            "<li><a href=\"/admin/manufacturers\">Manufacturers</a> \xe2\x80\x94 trusted "
	            "manufacturers and the manifests imported</li>"
	            "<li><a href=\"/admin/integrations\">Integrations</a> \xe2\x80\x94 HL7 "
	            "destinations and FHIR clients</li>"
	            "<li><a href=\"/audit\">Audit</a> \xe2\x80\x94 the audit chain and its "
	            "verification</li></ul>");
	con_fmt(&o,
	        "<p class=\"t\">Changes ask for your password again when it was last given "
	        "more than %" PRId64 " s ago, and every change is an audit record.</p>",
	        c->reauth_s);
	con_page_end(&o);
	con_send_page(rs, 200, &o);
}

/* ---- /admin/users --------------------------------------------------------------------------- */

struct user_walk {
	struct mt_console *c;
	struct out *o;
	const struct session *s;
	int64_t now;
	size_t n;
	bool first_ward;
};

static enum mt_err ward_cell(void *ctx, const char *ward)
{
	struct user_walk *w = ctx;

	if (!w->first_ward)
		con_lit(w->o, ", ");
	con_text(w->o, ward);
	w->first_ward = false;
	return MT_OK;
}

/* One row of the users table (login_lock held). */
static enum mt_err user_row(void *ctx, const struct mt_user *u)
{
	struct user_walk *w = ctx;
	struct out *o = w->o;
	enum mt_err e;

	con_lit(o, "<tr><td>");
	con_text(o, u->name);
	con_lit(o, "</td><td>");
	con_text(o, mt_role_name(u->role));
	con_lit(o, "</td><td>");
	w->first_ward = true;
	e = mt_users_wards(w->c->users, u->name, ward_cell, w);
	if (e != MT_OK)
		return e;
	if (w->first_ward)
		con_lit(o, "<span class=\"none\">none</span>");
	con_fmt(o, "</td><td>%s</td><td>%s</td><td>%s</td><td>", u->totp ? "on" : "off",
	        mt_user_locked(u, w->now) ? "<b>locked</b>" : "no", u->must_change ? "yes" : "no");
	con_lit(o, "<form method=\"post\" action=\"/admin/users\"><input type=\"hidden\" "
	           "name=\"op\" value=\"reset\"><input type=\"hidden\" name=\"name\" value=\"");
	con_text(o, u->name);
	con_lit(o, "\">");
	con_csrf_field(o, w->s);
	con_lit(o, "<button type=\"submit\">Reset password</button></form>");
	if (u->role == MT_ROLE_CLINICIAN) {
		con_lit(o, "<form method=\"post\" action=\"/admin/users\"><input type=\"hidden\" "
		           "name=\"op\" value=\"wards\"><input type=\"hidden\" name=\"name\" "
		           "value=\"");
		con_text(o, u->name);
		con_lit(o, "\">");
		con_csrf_field(o, w->s);
		con_lit(o, "<label>Wards, separated by commas <input name=\"wards\" "
		           "maxlength=\"3000\" value=\"");
		w->first_ward = true;
		e = mt_users_wards(w->c->users, u->name, ward_cell, w);
		if (e != MT_OK)
			return e;
		con_lit(o, "\"></label><button type=\"submit\">Set wards</button></form>");
	}
	con_lit(o, "</td></tr>");
	w->n++;
	return o->failed ? MT_ERR_NOMEM : MT_OK;
}

static void users_page(struct mt_console *c, struct mt_https_resp *rs, const struct session *s,
                       int64_t now, int status, const char *msg)
{
	struct out o = {0};
	struct user_walk w = {c, &o, s, now, 0, true};
	enum mt_err e;

	con_page_start(c, &o, "Users", s, NULL);
	con_lit(&o, "<h1>Users</h1>");
	admin_nav(&o, "/admin/users");
	con_alert(&o, msg);
	con_lit(&o, "<form class=\"add\" method=\"post\" action=\"/admin/users\"><h2>Add a user"
	            "</h2><input type=\"hidden\" name=\"op\" value=\"add\">");
	con_csrf_field(&o, s);
	con_lit(&o, "<label>Name <input name=\"name\" required maxlength=\"64\" "
	            "pattern=\"[a-z0-9][a-z0-9._\\-]{0,63}\" autocapitalize=\"none\" "
	            "spellcheck=\"false\"></label><label>Role <select name=\"role\">"
	            "<option>clinician</option><option>biomed</option><option>auditor</option>"
	            "<option>admin</option></select></label><button type=\"submit\">Add</button>"
	            "<p class=\"t\">The answer shows a one-time password, once: the user must "
	            "choose their own at the first sign-in.</p></form>");
	con_lit(&o, "<table class=\"users\"><thead><tr><th>Name</th><th>Role</th><th>Wards</th>"
	            "<th>Second factor</th><th>Locked</th><th>Must change password</th>"
	            "<th>Actions</th></tr></thead><tbody>");
	pthread_mutex_lock(&c->login_lock);
	e = mt_users_list(c->users, user_row, &w);
	pthread_mutex_unlock(&c->login_lock);
	con_lit(&o, "</tbody></table>");
	if (e != MT_OK) {
		con_free(&o);
		con_message(c, rs, 503, s, "Users unavailable",
		            "The users could not be read just now.");
		return;
	}
	con_lit(&o, "<p class=\"t\">A second factor is given with <code>medtrust user totp</code> "
	            "on the hub (its secret is shown once, on the hub's terminal).</p>");
	con_page_end(&o);
	con_send_page(rs, status, &o);
}

/* The page that shows a one-time password, once. */
static void otp_page(struct mt_console *c, struct mt_https_resp *rs, const struct session *s,
                     const char *title, const char *name, const char *role, const char *otp,
                     bool unlocked)
{
	struct out o = {0};

	con_page_start(c, &o, title, s, NULL);
	con_lit(&o, "<h1>");
	con_text(&o, title);
	con_lit(&o, "</h1><p>");
	con_text(&o, name);
	if (role != NULL) {
		con_lit(&o, " (");
		con_text(&o, role);
		con_lit(&o, ")");
	}
	con_lit(&o, unlocked ? " is unlocked and has" : " has");
	con_lit(&o, " this one-time password:</p><p class=\"otp\"><code>");
	con_text(&o, otp);
	con_lit(&o, "</code></p><p class=\"note\">It is shown this once and kept nowhere but as a "
	            "hash: give it to the user by a channel you trust. At the first sign-in they "
	            "must choose their own password.</p><p><a href=\"/admin/users\">Back to the "
	            "users</a></p>");
	con_page_end(&o);
	con_send_page(rs, 200, &o);
}

static void do_add(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
                   const struct session *s, int64_t now, const struct mt_form *f)
{
	const char *name = mt_form_get(f, "name"), *role_s = mt_form_get(f, "role");
	char otp[MT_USER_OTP_LEN + 1];
	enum mt_role role;
	bool exists = false;
	enum mt_err e;

	if (!mt_user_name_valid(name)) {
		con_audit(c, s->user, rq, "user.add.refused", NULL, MT_AUDIT_REFUSED,
		          "\"reason\":\"bad_name\"");
		users_page(
		        c, rs, s, now, 400,
		        "A user name is 1-64 of a-z 0-9 . _ - and starts with a letter or digit.");
		return;
	}
	if (role_s == NULL || !mt_role_parse(role_s, &role)) {
		con_audit(c, s->user, rq, "user.add.refused", name, MT_AUDIT_REFUSED,
		          "\"reason\":\"bad_role\"");
		users_page(c, rs, s, now, 400,
		           "The role is none of admin, clinician, biomed, auditor.");
		return;
	}
	memset(otp, 0, sizeof otp);
	e = mt_users_otp(otp, sizeof otp);
	if (e == MT_OK) {
		pthread_mutex_lock(&c->login_lock);
		e = mt_users_add(c->users, name, role, otp, now, &exists);
		pthread_mutex_unlock(&c->login_lock);
	}
	if (exists) {
		con_audit(c, s->user, rq, "user.add.refused", name, MT_AUDIT_REFUSED,
		          "\"role\":\"%s\",\"reason\":\"exists\"", mt_role_name(role));
		users_page(c, rs, s, now, 409,
		           "A user of that name exists: reset its password instead.");
	} else if (e != MT_OK) {
		con_audit(c, s->user, rq, "user.add", name, MT_AUDIT_ERROR,
		          "\"role\":\"%s\",\"reason\":\"error\"", mt_role_name(role));
		users_page(c, rs, s, now, 503, "The user could not be added just now.");
	} else {
		con_audit(c, s->user, rq, "user.add", name, MT_AUDIT_OK, "\"role\":\"%s\"",
		          mt_role_name(role));
		otp_page(c, rs, s, "User added", name, mt_role_name(role), otp, false);
	}
	OPENSSL_cleanse(otp, sizeof otp);
}

static void do_reset(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
                     const struct session *s, int64_t now, const struct mt_form *f)
{
	const char *name = mt_form_get(f, "name");
	char otp[MT_USER_OTP_LEN + 1];
	struct mt_user before;
	bool was_locked = false;
	enum mt_err e;

	if (!mt_user_name_valid(name)) {
		con_audit(c, s->user, rq, "user.reset.refused", NULL, MT_AUDIT_REFUSED,
		          "\"reason\":\"bad_name\"");
		users_page(c, rs, s, now, 400, "That is not a user name.");
		return;
	}
	memset(otp, 0, sizeof otp);
	pthread_mutex_lock(&c->login_lock);
	e = mt_users_get(c->users, name, &before);
	if (e == MT_OK) {
		was_locked = mt_user_locked(&before, now);
		e = mt_users_otp(otp, sizeof otp);
	}
	if (e == MT_OK)
		e = mt_users_reset(c->users, name, otp, now);
	pthread_mutex_unlock(&c->login_lock);
	if (e == MT_ERR_NOT_FOUND) {
		con_audit(c, s->user, rq, "user.reset.refused", name, MT_AUDIT_REFUSED,
		          "\"reason\":\"no_such_user\"");
		users_page(c, rs, s, now, 404, "There is no user of that name.");
	} else if (e != MT_OK) {
		con_audit(c, s->user, rq, "user.reset", name, MT_AUDIT_ERROR,
		          "\"unlocked\":false,\"reason\":\"error\"");
		users_page(c, rs, s, now, 503, "The password could not be reset just now.");
	} else {
		con_audit(c, s->user, rq, "user.reset", name, MT_AUDIT_OK, "\"unlocked\":%s",
		          was_locked ? "true" : "false");
		otp_page(c, rs, s, "Password reset", name, NULL, otp, was_locked);
	}
	OPENSSL_cleanse(otp, sizeof otp);
}

/* A user's wards as a JSON array into b (bounded; false when it does not fit). */
struct jwards {
	char s[AUDIT_EXTRA_MAX / 2];
	size_t n;
	size_t count;
	bool full;
};

static enum mt_err jward(void *ctx, const char *ward)
{
	struct jwards *b = ctx;
	char js[6 * MT_USER_WARD_MAX + 3];
	int k;

	b->count++;
	if (b->full)
		return MT_OK;
	k = snprintf(b->s + b->n, sizeof b->s - b->n, "%s%s", b->n > 1 ? "," : "",
	             mt_deploy_json_str(ward, js, sizeof js));
	if (k < 0 || (size_t)k + 2 >= sizeof b->s - b->n)
		b->full = true;
	else
		b->n += (size_t)k;
	return MT_OK;
}

static enum mt_err wards_json(struct mt_users *u, const char *name, struct jwards *b)
{
	enum mt_err e;

	memset(b, 0, sizeof *b);
	b->s[0] = '[';
	b->n = 1;
	e = mt_users_wards(u, name, jward, b);
	if (!b->full) {
		b->s[b->n++] = ']';
		b->s[b->n] = '\0';
	}
	return e;
}

static void do_wards(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
                     const struct session *s, int64_t now, const struct mt_form *f)
{
	const char *name = mt_form_get(f, "name"), *text = mt_form_get(f, "wards");
	char buf[MT_FORM_BODY_MAX + 1];
	const char *wards[MT_USER_WARDS_MAX];
	struct jwards before, after;
	struct mt_user u;
	size_t n = 0;
	bool bad = false;
	enum mt_err e;

	if (!mt_user_name_valid(name)) {
		con_audit(c, s->user, rq, "user.wards.refused", NULL, MT_AUDIT_REFUSED,
		          "\"reason\":\"bad_name\"");
		users_page(c, rs, s, now, 400, "That is not a user name.");
		return;
	}
	if (text == NULL)
		text = "";
	(void)snprintf(buf, sizeof buf, "%s", text);
	/* split on commas (a form value holds no line ends: mt_form refuses control
	 * characters); trim spaces; skip empty pieces */
	for (char *p = buf; *p != '\0' && !bad;) {
		size_t k = strcspn(p, ",");
		char *next = p + k + (p[k] != '\0');
		char *end = p + k;

		*end = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*p != '\0') {
			if (n == MT_USER_WARDS_MAX || !mt_user_ward_valid(p))
				bad = true;
			else
				wards[n++] = p;
		}
		p = next;
	}
	if (bad) {
		con_audit(c, s->user, rq, "user.wards.refused", name, MT_AUDIT_REFUSED,
		          "\"reason\":\"bad_ward\"");
		users_page(c, rs, s, now, 400,
		           "A ward is 1-64 bytes of text without control characters; at most 64 "
		           "wards.");
		return;
	}
	pthread_mutex_lock(&c->login_lock);
	e = mt_users_get(c->users, name, &u);
	if (e == MT_OK)
		e = wards_json(c->users, name, &before);
	if (e == MT_OK)
		e = mt_users_wards_set(c->users, name, wards, n);
	if (e == MT_OK)
		e = wards_json(c->users, name, &after);
	pthread_mutex_unlock(&c->login_lock);
	if (e == MT_ERR_NOT_FOUND) {
		con_audit(c, s->user, rq, "user.wards.refused", name, MT_AUDIT_REFUSED,
		          "\"reason\":\"no_such_user\"");
		users_page(c, rs, s, now, 404, "There is no user of that name.");
		return;
	}
	if (e != MT_OK) {
		con_audit(c, s->user, rq, "user.wards", name, MT_AUDIT_ERROR,
		          "\"reason\":\"error\"");
		users_page(c, rs, s, now, 503, "The wards could not be set just now.");
		return;
	}
	if (!before.full && !after.full)
		con_audit(c, s->user, rq, "user.wards", name, MT_AUDIT_OK,
		          "\"before\":%s,\"after\":%s", before.s, after.s);
	else /* too long for one record: the counts */
		con_audit(c, s->user, rq, "user.wards", name, MT_AUDIT_OK,
		          "\"before_count\":%zu,\"after_count\":%zu", before.count, after.count);
	con_redirect(rs, "/admin/users");
}

/* POST /admin/users: op = add | reset | wards. */
static void users_post(struct mt_console *c, const struct mt_https_req *rq,
                       struct mt_https_resp *rs, const struct session *s, int64_t now)
{
	struct mt_form *f = calloc(1, sizeof *f);
	const char *op;

	if (f == NULL) {
		rs->status = 503;
		return;
	}
	if (!con_read_form(c, rq, rs, f) || !con_csrf_ok(c, rq, rs, s, f))
		goto out;
	if (!con_recent_auth(c, rs, s, now, BACK))
		goto out; /* F10: the password again first; nothing done */
	op = mt_form_get(f, "op");
	if (op != NULL && strcmp(op, "add") == 0)
		do_add(c, rq, rs, s, now, f);
	else if (op != NULL && strcmp(op, "reset") == 0)
		do_reset(c, rq, rs, s, now, f);
	else if (op != NULL && strcmp(op, "wards") == 0)
		do_wards(c, rq, rs, s, now, f);
	else
		users_page(c, rs, s, now, 400, "That is not an action of this page.");
out:
	mt_form_wipe(f);
	free(f);
}

/* ---- /admin/wards --------------------------------------------------------------------------- */

struct ward_info {
	char name[MT_USER_WARD_MAX + 1];
	size_t patients;
};

struct pair {
	char user[MT_USER_NAME_MAX + 1];
	enum mt_role role;
	char ward[MT_USER_WARD_MAX + 1];
};

struct ward_set {
	struct ward_info *w;
	size_t n;
	bool cut;
	struct pair *pairs;
	size_t n_pairs, cap_pairs;
	const char *user; /* the user being walked */
	enum mt_role role;
	struct mt_users *users;
	bool failed;
};

static struct ward_info *ward_of(struct ward_set *ws, const char *name)
{
	for (size_t i = 0; i < ws->n; i++)
		if (strcmp(ws->w[i].name, name) == 0)
			return &ws->w[i];
	if (ws->n == WARDS_SHOWN) {
		ws->cut = true;
		return NULL;
	}
	(void)snprintf(ws->w[ws->n].name, sizeof ws->w[ws->n].name, "%s", name);
	ws->w[ws->n].patients = 0;
	return &ws->w[ws->n++];
}

static enum mt_err pair_add(void *ctx, const char *ward)
{
	struct ward_set *ws = ctx;
	struct pair *p;

	(void)ward_of(ws, ward);
	if (ws->n_pairs == ws->cap_pairs) {
		size_t cap = ws->cap_pairs ? 2 * ws->cap_pairs : 256;
		struct pair *np;

		if (cap > PAIRS_MAX) {
			ws->cut = true;
			return MT_OK;
		}
		np = realloc(ws->pairs, cap * sizeof *np);
		if (np == NULL)
			return MT_ERR_NOMEM;
		ws->pairs = np;
		ws->cap_pairs = cap;
	}
	p = &ws->pairs[ws->n_pairs++];
	(void)snprintf(p->user, sizeof p->user, "%s", ws->user);
	p->role = ws->role;
	(void)snprintf(p->ward, sizeof p->ward, "%s", ward);
	return MT_OK;
}

static enum mt_err user_pairs(void *ctx, const struct mt_user *u)
{
	struct ward_set *ws = ctx;

	ws->user = u->name;
	ws->role = u->role;
	return mt_users_wards(ws->users, u->name, pair_add, ws);
}

static int ward_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ward_info *)a)->name, ((const struct ward_info *)b)->name);
}

static void wards_page(struct mt_console *c, struct mt_https_resp *rs, const struct session *s)
{
	struct ward_set ws;
	struct mt_patient p;
	struct out o = {0};
	size_t total = 0, n;
	enum mt_err e = MT_OK;

	memset(&ws, 0, sizeof ws);
	ws.w = calloc(WARDS_SHOWN, sizeof *ws.w);
	if (ws.w == NULL) {
		rs->status = 503;
		return;
	}
	pthread_mutex_lock(&c->store_lock);
	if (c->store != NULL)
		e = mt_store_patient_ids(c->store, c->ids, PATIENTS_MAX, &total);
	n = c->store != NULL && e == MT_OK ? (total < PATIENTS_MAX ? total : PATIENTS_MAX) : 0;
	for (size_t i = 0; e == MT_OK && i < n; i++) {
		struct ward_info *wi;

		if (mt_store_patient_get(c->store, c->ids[i], &p) != MT_OK)
			continue;
		wi = ward_of(&ws, p.ward);
		if (wi != NULL)
			wi->patients++;
	}
	mt_wipe(&p, sizeof p);
	pthread_mutex_unlock(&c->store_lock);
	if (e == MT_OK) {
		ws.users = c->users;
		pthread_mutex_lock(&c->login_lock);
		e = mt_users_list(c->users, user_pairs, &ws);
		pthread_mutex_unlock(&c->login_lock);
	}
	if (e != MT_OK) {
		free(ws.w);
		free(ws.pairs);
		con_message(c, rs, 503, s, "Wards unavailable",
		            "The wards could not be read just now.");
		return;
	}
	if (ws.n > 1)
		qsort(ws.w, ws.n, sizeof *ws.w, ward_cmp);

	con_page_start(c, &o, "Wards", s, NULL);
	con_lit(&o, "<h1>Wards</h1>");
	admin_nav(&o, "/admin/wards");
	if (c->store == NULL)
		con_lit(&o, "<p class=\"note\">The readings store is not open: patients are not "
		            "counted.</p>");
	con_lit(&o, "<table class=\"wards\"><thead><tr><th>Ward</th><th>Patients</th>"
	            "<th>Clinicians who see it</th><th>Others holding it</th></tr></thead><tbody>");
	for (size_t i = 0; i < ws.n; i++) {
		bool any[2] = {false, false};

		con_lit(&o, "<tr><td>");
		con_text(&o, ws.w[i].name[0] ? ws.w[i].name : "(no ward)");
		con_fmt(&o, "</td><td>%zu</td>", ws.w[i].patients);
		for (int k = 0; k < 2; k++) {
			con_lit(&o, "<td>");
			for (size_t j = 0; j < ws.n_pairs; j++) {
				const struct pair *pr = &ws.pairs[j];

				if (strcmp(pr->ward, ws.w[i].name) != 0 ||
				    (pr->role == MT_ROLE_CLINICIAN) != (k == 0))
					continue;
				if (any[k])
					con_lit(&o, ", ");
				con_text(&o, pr->user);
				if (k == 1) {
					con_lit(&o, " (");
					con_text(&o, mt_role_name(pr->role));
					con_lit(&o, ")");
				}
				any[k] = true;
			}
			if (!any[k])
				con_lit(&o, k == 0 ? "<span class=\"none\">nobody</span>" : "");
			con_lit(&o, "</td>");
		}
		con_lit(&o, "</tr>");
	}
	con_lit(&o, "</tbody></table>");
	if (ws.n == 0)
		con_lit(&o, "<p class=\"none\">No ward has patients or clinicians yet.</p>");
	if (ws.cut || total > n)
		con_lit(&o, "<p class=\"note\">The list is cut short: there are more wards or "
		            "patients than this page shows.</p>");
	con_lit(&o, "<p class=\"t\">Wards come from the patients' records and from the users' "
	            "ward lists; a clinician sees the patients of their wards only.</p>");
	con_page_end(&o);
	free(ws.w);
	free(ws.pairs);
	con_send_page(rs, 200, &o);
}

/* ---- /admin/patients ------------------------------------------------------------------------ */

struct prow {
	struct mt_patient p;
	char devs[DEVICES_SHOWN][MT_DEVICE_ID_MAX + 1];
	size_t n_devs;
};

static int prow_cmp(const void *pa, const void *pb)
{
	const struct prow *a = pa, *b = pb;
	int k = strcmp(a->p.ward, b->p.ward);

	if (k == 0)
		k = strcmp(a->p.bed, b->p.bed);
	if (k == 0)
		k = a->p.id < b->p.id ? -1 : a->p.id > b->p.id;
	return k;
}

static void patients_page(struct mt_console *c, const struct mt_https_req *rq,
                          struct mt_https_resp *rs, const struct session *s)
{
	struct prow *rows = NULL;
	struct out o = {0};
	size_t total = 0, n = 0, shown = 0, failed = 0;
	enum mt_err e = MT_OK;

	pthread_mutex_lock(&c->store_lock);
	if (c->store == NULL) {
		pthread_mutex_unlock(&c->store_lock);
		con_message(c, rs, 503, s, "Patients unavailable",
		            "The readings store could not be opened; see the hub's log.");
		return;
	}
	e = mt_store_patient_ids(c->store, c->ids, PATIENTS_MAX, &total);
	n = e == MT_OK ? (total < PATIENTS_MAX ? total : PATIENTS_MAX) : 0;
	if (n > 0) {
		rows = calloc(n, sizeof *rows);
		if (rows == NULL)
			e = MT_ERR_NOMEM;
	}
	for (size_t i = 0; e == MT_OK && i < n; i++) {
		struct prow *r = &rows[shown];

		if (!con_patient_read(c, c->ids[i], &r->p, &failed, &e))
			continue;
		if (mt_store_patient_devices(c->store, r->p.id, r->devs, DEVICES_SHOWN,
		                             &r->n_devs) != MT_OK)
			r->n_devs = 0;
		shown++;
	}
	pthread_mutex_unlock(&c->store_lock);
	if (e != MT_OK) {
		if (rows != NULL)
			mt_wipe(rows, n * sizeof *rows);
		free(rows);
		fprintf(stderr, "medtrustd: console: reading the patients: %s\n", mt_err_str(e));
		con_message(c, rs, 503, s, "Patients unavailable",
		            "The readings store could not be read just now; try again.");
		return;
	}
	if (shown > 1)
		qsort(rows, shown, sizeof *rows, prow_cmp);
	con_audit(c, s->user, rq, "console.patients.view", NULL, MT_AUDIT_OK, "\"patients\":%zu",
	          shown);

	con_page_start(c, &o, "Patients", s, NULL);
	con_lit(&o, "<h1>Patients</h1>");
	admin_nav(&o, "/admin/patients");
	con_lit(&o, "<table class=\"patients\"><thead><tr><th>Ward</th><th>Bed</th><th>Name</th>"
	            "<th>MRN</th><th>Devices now</th></tr></thead><tbody>");
	for (size_t i = 0; i < shown; i++) {
		const struct prow *r = &rows[i];

		con_lit(&o, "<tr><td>");
		con_text(&o, r->p.ward);
		con_lit(&o, "</td><td>");
		con_text(&o, r->p.bed);
		con_lit(&o, "</td><td>");
		con_text(&o, r->p.name);
		con_lit(&o, "</td><td>");
		con_text(&o, r->p.mrn);
		con_lit(&o, "</td><td>");
		for (size_t k = 0; k < r->n_devs; k++) {
			con_lit(&o, k ? ", <span class=\"dev\">" : "<span class=\"dev\">");
			con_text(&o, r->devs[k]);
			con_lit(&o, "</span>");
		}
		if (r->n_devs == 0)
			con_lit(&o, "<span class=\"none\">none</span>");
		con_lit(&o, "</td></tr>");
	}
	con_lit(&o, "</tbody></table>");
	if (shown == 0)
		con_lit(&o, "<p class=\"none\">No patients.</p>");
	if (total > n || failed > 0)
		con_fmt(&o, "<p class=\"note\">%zu of %zu patients shown%s.</p>", shown, total,
		        failed ? " (some records could not be decrypted; see verify-record)" : "");
	con_lit(&o, "<p class=\"t\">Patients and assignments are managed with <code>medtrust "
	            "patient</code> on the hub. Showing this page is an audit record "
	            "(console.patients.view).</p>");
	con_page_end(&o);
	if (rows != NULL)
		mt_wipe(rows, n * sizeof *rows);
	free(rows);
	con_send_page(rs, 200, &o);
}

/* ---- /admin/manufacturers ------------------------------------------------------------------- */

/* The cells both registry tables start with: id, name, SHA-256, when (the last cell
 * left open for the caller's counts). */
static void registry_cells(struct out *o, int64_t id, const char *name, const uint8_t sha[32],
                           int64_t at)
{
	char fp[65], when[40];

	hex(sha, 32, fp);
	fmt_s(at, when, sizeof when);
	con_fmt(o, "<tr><td>%" PRId64 "</td><td>", id);
	con_text(o, name);
	con_lit(o, "</td><td><code class=\"dev\">");
	con_text(o, fp);
	con_lit(o, "</code></td><td>");
	con_text(o, when);
}

static enum mt_err mfg_row(void *ctx, const struct mt_registry_mfg *m)
{
	struct out *o = ctx;

	registry_cells(o, m->id, m->name, m->root_sha256, m->added_at);
	con_fmt(o, "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>", m->manifests, m->devices);
	return o->failed ? MT_ERR_NOMEM : MT_OK;
}

static enum mt_err manifest_row(void *ctx, const struct mt_registry_manifest *m)
{
	struct out *o = ctx;

	registry_cells(o, m->id, m->manufacturer, m->sha256, m->imported_at);
	con_fmt(o, "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>",
	        m->entries, m->active, m->revoked);
	return o->failed ? MT_ERR_NOMEM : MT_OK;
}

static void manufacturers_page(struct mt_console *c, struct mt_https_resp *rs,
                               const struct session *s)
{
	const char *db = mt_deploy_get(c->d, "db_path");
	struct out o = {0};
	enum mt_err e;

	con_page_start(c, &o, "Manufacturers", s, NULL);
	con_lit(&o, "<h1>Manufacturers</h1>");
	admin_nav(&o, "/admin/manufacturers");
	con_lit(&o, "<h2>Trusted manufacturers</h2><table class=\"mfg\"><thead><tr><th>Id</th>"
	            "<th>Name (root CN)</th><th>Root SHA-256</th><th>Added</th><th>Manifests</th>"
	            "<th>Devices</th></tr></thead><tbody>");
	e = mt_registry_list_manufacturers(db, mfg_row, &o);
	con_lit(&o, "</tbody></table><h2>Manifests imported</h2><table class=\"manifests\">"
	            "<thead><tr><th>Id</th><th>Manufacturer</th><th>SHA-256</th><th>Imported</th>"
	            "<th>Devices listed</th><th>Active</th><th>Revoked or decommissioned</th></tr>"
	            "</thead><tbody>");
	if (e == MT_OK)
		e = mt_registry_list_manifests(db, manifest_row, &o);
	con_lit(&o, "</tbody></table><p class=\"t\">A manufacturer is trusted with "
	            "<code>medtrust trust add-manufacturer</code> and a manifest imported with "
	            "<code>medtrust manifest import</code> on the hub: both verify signatures and "
	            "are audited.</p>");
	con_page_end(&o);
	if (e != MT_OK) {
		con_free(&o);
		con_message(c, rs, 503, s, "Registry unavailable",
		            "The registry could not be read just now.");
		return;
	}
	con_send_page(rs, 200, &o);
}

/* ---- /admin/integrations -------------------------------------------------------------------- */

/* hl7out.db beside the data store (export.c puts it there). */
static bool hl7_cursor_path(const struct mt_console *c, char *out, size_t cap)
{
	char *slash;

	if (mt_deploy_data_path(c->d, out, cap) != MT_OK)
		return false;
	slash = strrchr(out, '/');
	if (slash != NULL)
		slash[1] = '\0';
	else
		out[0] = '\0';
	if (strlen(out) + sizeof "hl7out.db" > cap)
		return false;
	memcpy(out + strlen(out), "hl7out.db", sizeof "hl7out.db");
	return true;
}

/* A destination's durable cursor and parked count, read-only; false when
 * the sender has not recorded any yet. */
static bool hl7_cursor(const char *path, const char *dest, int64_t *cursor, int64_t *parked)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool ok = false;

	*cursor = *parked = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	            SQLITE_OK ||
	    sqlite3_busy_timeout(db, 1000) != SQLITE_OK)
		goto out;
	if (sqlite3_prepare_v2(db, "SELECT seq FROM hl7_cursor WHERE dest = ?1", -1, &st, NULL) ==
	            SQLITE_OK &&
	    sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		*cursor = sqlite3_column_int64(st, 0);
		ok = true;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM hl7_parked WHERE dest = ?1", -1, &st,
	                       NULL) == SQLITE_OK &&
	    sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		*parked = sqlite3_column_int64(st, 0);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}

static enum mt_err client_row(void *ctx, const struct mt_client *cl)
{
	struct out *o = ctx;
	char when[40], off[40];

	fmt_s(cl->created_at, when, sizeof when);
	fmt_s(cl->disabled_at, off, sizeof off);
	con_lit(o, "<tr><td>");
	con_text(o, cl->name);
	con_lit(o, "</td><td>");
	con_text(o, mt_client_alg_name(cl->alg));
	con_lit(o, "</td><td>");
	con_text(o, cl->scopes);
	con_lit(o, "</td><td>");
	con_text(o, when);
	con_lit(o, "</td><td>");
	if (cl->disabled_at > 0) {
		con_lit(o, "disabled ");
		con_text(o, off);
	} else {
		con_lit(o, "enabled");
	}
	con_lit(o, "</td></tr>");
	return o->failed ? MT_ERR_NOMEM : MT_OK;
}

static void conf_row(struct out *o, const struct mt_console *c, const char *key, const char *dflt)
{
	const char *v = mt_deploy_get(c->d, key);

	con_lit(o, "<tr><th scope=\"row\">");
	con_lit(o, key);
	con_lit(o, "</th><td>");
	if (v != NULL) {
		con_text(o, v);
	} else {
		con_lit(o, "<span class=\"none\">");
		con_text(o, dflt);
		con_lit(o, "</span>");
	}
	con_lit(o, "</td></tr>");
}

static void integrations_page(struct mt_console *c, struct mt_https_resp *rs,
                              const struct session *s)
{
	struct mt_hl7_dest *dests = calloc(MT_HL7OUT_DESTS_MAX, sizeof *dests);
	const char *spec = mt_deploy_get(c->d, "hl7_dest");
	struct mt_clients *cls = NULL;
	struct out o = {0};
	char cpath[4096];
	uint64_t last = 0;
	bool have_last = false, have_cpath;
	size_t n = 0;
	enum mt_err e;

	if (dests == NULL) {
		rs->status = 503;
		return;
	}
	pthread_mutex_lock(&c->store_lock);
	if (c->store != NULL && mt_store_journal_last(c->store, &last) == MT_OK)
		have_last = true;
	pthread_mutex_unlock(&c->store_lock);
	have_cpath = hl7_cursor_path(c, cpath, sizeof cpath);

	con_page_start(c, &o, "Integrations", s, NULL);
	con_lit(&o, "<h1>Integrations</h1>");
	admin_nav(&o, "/admin/integrations");
	con_lit(&o, "<h2>HL7 v2 (MLLP)</h2>");
	if (spec == NULL || spec[0] == '\0') {
		con_lit(&o,
		        "<p class=\"none\">No destination is configured (<code>hl7_dest</code> in "
		        "medtrust.conf).</p>");
	} else if (mt_hl7out_parse_dests(spec, dests, MT_HL7OUT_DESTS_MAX, &n) != MT_OK) {
		con_lit(&o, "<p class=\"msg\">hl7_dest could not be read (expected "
		            "NAME=HOST:PORT[, ...]); the hub does not export.</p>");
		n = 0;
	}
	if (have_last)
		con_fmt(&o, "<p>The export journal holds entries up to seq %" PRIu64 ".</p>", last);
	if (n > 0) {
		con_lit(&o,
		        "<table class=\"hl7\"><thead><tr><th>Name</th><th>Host</th><th>Port</th>"
		        "<th>Delivered up to</th><th>Behind</th><th>Parked</th></tr></thead>"
		        "<tbody>");
		for (size_t i = 0; i < n; i++) {
			int64_t cur = 0, parked = 0;
			bool have = have_cpath && hl7_cursor(cpath, dests[i].name, &cur, &parked);

			con_lit(&o, "<tr><td>");
			con_text(&o, dests[i].name);
			con_lit(&o, "</td><td>");
			con_text(&o, dests[i].host);
			con_fmt(&o, "</td><td>%u</td>", (unsigned)dests[i].port);
			if (have)
				con_fmt(&o,
				        "<td>%" PRId64 "</td><td>%" PRIu64 "</td><td>%" PRId64
				        "</td>",
				        cur,
				        have_last && last > (uint64_t)cur ? last - (uint64_t)cur
				                                          : 0,
				        parked);
			else
				con_lit(&o, "<td colspan=\"3\"><span class=\"none\">nothing "
				            "delivered yet"
				            "</span></td>");
			con_lit(&o, "</tr>");
		}
		con_lit(&o, "</tbody></table>");
	}
	con_lit(&o, "<table class=\"conf\"><tbody>");
	conf_row(&o, c, "hl7_app", "MEDTRUST (default)");
	conf_row(&o, c, "hl7_facility", "the hospital's name (default)");
	conf_row(&o, c, "hl7_ack_timeout_s", "10 (default)");
	con_lit(&o, "</tbody></table><h2>FHIR</h2><table class=\"conf\"><tbody>");
	conf_row(&o, c, "hub_url", "not set");
	conf_row(&o, c, "fhir_mrn_system", "not set");
	con_lit(&o, "</tbody></table><h3>Clients (SMART Backend Services)</h3><table "
	            "class=\"clients\"><thead><tr><th>Name</th><th>Key</th><th>Scopes</th>"
	            "<th>Registered</th><th>State</th></tr></thead><tbody>");
	e = mt_clients_open(mt_deploy_get(c->d, "db_path"), &cls);
	if (e == MT_OK)
		e = mt_clients_list(cls, client_row, &o);
	mt_clients_close(cls);
	con_lit(&o, "</tbody></table>");
	if (e != MT_OK)
		con_lit(&o, "<p class=\"msg\">The FHIR clients could not be read just now.</p>");
	con_lit(&o, "<p class=\"t\">Destinations are set in medtrust.conf and clients with "
	            "<code>medtrust client</code> on the hub; both are audited there.</p>");
	con_page_end(&o);
	free(dests);
	con_send_page(rs, 200, &o);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

void con_view_admin(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
                    struct session *s, int64_t now)
{
	bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;
	const char *p = rq->path;

	if (strncmp(p, "/api/", 5) == 0) {
		con_api_error(rs, 404, "no such endpoint");
		return;
	}
	if (strcmp(p, "/admin/users") == 0 && post) {
		if (rq->query != NULL) {
			con_message(c, rs, 400, s, "Bad request", "Unexpected query string.");
			return;
		}
		users_post(c, rq, rs, s, now);
		return;
	}
	if (strcmp(p, "/admin") != 0 && strcmp(p, "/admin/users") != 0 &&
	    strcmp(p, "/admin/wards") != 0 && strcmp(p, "/admin/patients") != 0 &&
	    strcmp(p, "/admin/manufacturers") != 0 && strcmp(p, "/admin/integrations") != 0) {
		not_found(c, rs, s);
		return;
	}
	if (!get) {
		con_message(c, rs, 405, s, "Method not allowed",
		            "This page does not take that method.");
		con_header(rs, "Allow", "%s", strcmp(p, "/admin/users") == 0 ? "GET, POST" : "GET");
		return;
	}
	if (rq->query != NULL) {
		con_message(c, rs, 400, s, "Bad request", "Unexpected query string.");
		return;
	}
	if (strcmp(p, "/admin") == 0)
		index_page(c, rs, s);
	else if (strcmp(p, "/admin/users") == 0)
		users_page(c, rs, s, now, 200, NULL);
	else if (strcmp(p, "/admin/wards") == 0)
		wards_page(c, rs, s);
	else if (strcmp(p, "/admin/patients") == 0)
		patients_page(c, rq, rs, s);
	else if (strcmp(p, "/admin/manufacturers") == 0)
		manufacturers_page(c, rs, s);
	else
		integrations_page(c, rs, s);
}
