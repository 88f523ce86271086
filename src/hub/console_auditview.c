/*
 * console_auditview.c — the auditor's view of the audit chain: /audit,
 * /audit/security and /api/audit (roles auditor and admin; console_int.h,
 * docs/console-admin.md; threats F07, F08, F17, J01).
 *
 * The auditor's first question is "can I trust this log?", so every page
 * opens with the chain's verification — the check `medtrust audit verify`
 * makes (mt_audit_verify: every hash, every link, every checkpoint
 * signature against the hub's audit_pub, the outside checkpoint file) —
 * then the records, newest first, a page of PAGE_ROWS at a time
 * (?before=<seq>), filtered by actor (exact), action (prefix), outcome and
 * a range of UTC days (?from=YYYY-MM-DD&to=YYYY-MM-DD, both inclusive).
 * /audit/security is the same list narrowed to what a security review
 * reads first: every refusal and error, and the actions that change who
 * may do what (sign-in lockouts, forbidden pages, CSRF refusals, users,
 * devices, manufacturers, clients, certificates).
 *
 * Verification reads the whole chain; on a long one that takes seconds,
 * so its result is kept VERIFY_KEEP_S and the page says when it was made.
 * One verification runs at a time (vlock); a request arriving meanwhile
 * waits for it and shares its answer.  The list itself is always read
 * fresh (mt_audit_search.h: one SELECT on a read-only connection).
 *
 * Read-only (F17).  Nothing here writes: no route under /audit takes
 * anything but GET (405 otherwise, the method refused before any work),
 * the search connection is opened read-only, and the table refuses UPDATE
 * and DELETE besides.  An auditor cannot change data or remove records
 * through the console because no code path exists that would.
 *
 * Inputs (F07, F08).  The query string is parsed strictly (mt_form_parse:
 * no duplicates, no stray characters), only known names are accepted, and
 * each value must have its shape (an actor of [A-Za-z0-9:._@/+-], an
 * action of [a-z0-9._], a real calendar day, a decimal seq); anything else
 * is a 400 that quotes nothing of the request.  Values reach SQL only as
 * bound parameters.  Every string of a record — actor, action, subject,
 * detail — is data (a device id, a user name, a client's text) and goes
 * through con_text or con_json.
 */
#define _POSIX_C_SOURCE 200809L

#include "console_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medtrust/mt_audit.h"
#include "medtrust/mt_audit_search.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_util.h"

#define PAGE_ROWS 100
#define VERIFY_KEEP_S 30

/* What /audit/security shows besides every refusal and error: actions
 * that change who may do what, and the console's own alarms. */
static const char *const notable[] = {
        "console.lockout",
        "console.forbidden",
        "console.csrf",
        "console.reauth",
        "user.",
        "device.",
        "trust.",
        "client.",
        "crl.",
        "manifest.",
        "deployment.",
};

/* ---- verification (kept VERIFY_KEEP_S) ------------------------------------------------------ */

struct verified {
	bool have;
	char db[512]; /* the chain it is about */
	int64_t at;   /* when it was made (hub clock, s) */
	uint64_t took_ms;
	enum mt_err err; /* MT_OK, a verdict, or an operational failure */
	struct mt_audit_verdict v;
	uint64_t last_cp; /* seq of the newest checkpoint record */
	uint64_t last_ms; /* time of the newest record read */
};

static pthread_mutex_t vlock = PTHREAD_MUTEX_INITIALIZER;
static struct verified vcache;

static enum mt_err keep_time(const struct mt_audit_record *r, void *arg)
{
	*(uint64_t *)arg = r->time_ms;
	return MT_OK;
}

/* Verify the chain now (vlock held). */
static void verify_now(const struct mt_console *c, const char *db, struct verified *out,
                       int64_t now)
{
	const char *pub = mt_deploy_get(c->d, "audit_pub");
	const char *cps = mt_deploy_get(c->d, "audit_checkpoints");
	struct mt_audit_store *st = NULL;
	struct mt_pubkey *pk = NULL;
	uint64_t t0 = mt_deploy_now_ms();
	enum mt_err e;

	memset(out, 0, sizeof *out);
	out->have = true;
	out->at = now;
	(void)snprintf(out->db, sizeof out->db, "%s", db);
	if (pub == NULL) {
		out->err = MT_ERR_ARG;
		(void)snprintf(
		        out->v.why, sizeof out->v.why,
		        "the deployment names no audit_pub: the checkpoint signatures cannot "
		        "be checked");
		return;
	}
	e = mt_pubkey_from_pem_file(pub, &pk);
	if (e == MT_OK)
		e = mt_audit_sqlite_open_readonly(db, &st);
	if (e != MT_OK) {
		out->err = e;
		(void)snprintf(out->v.why, sizeof out->v.why, "the chain could not be opened: %s",
		               mt_err_str(e));
		mt_pubkey_free(pk);
		return;
	}
	out->err = mt_audit_verify(st, pk, cps, &out->v);
	if (out->err == MT_OK) {
		if (st->ops->last_checkpoint(st->ctx, &out->last_cp) != MT_OK)
			out->last_cp = 0;
		if (out->v.last_seq > 0 && st->ops->read(st->ctx, out->v.last_seq, out->v.last_seq,
		                                         keep_time, &out->last_ms) != MT_OK)
			out->last_ms = 0;
	}
	out->took_ms = mt_deploy_now_ms() - t0;
	mt_audit_store_close(st);
	mt_pubkey_free(pk);
}

/* The chain's verification, at most VERIFY_KEEP_S old, copied to *out. */
static void verification(const struct mt_console *c, const char *db, int64_t now,
                         struct verified *out)
{
	pthread_mutex_lock(&vlock);
	if (!vcache.have || strcmp(vcache.db, db) != 0 || now - vcache.at >= VERIFY_KEEP_S ||
	    now < vcache.at)
		verify_now(c, db, &vcache, now);
	*out = vcache;
	pthread_mutex_unlock(&vlock);
}

/* ---- small formatting ----------------------------------------------------------------------- */

/* "2025-11-28 03:20:00 UTC" of milliseconds since 1970. */
static void fmt_ms(uint64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		(void)snprintf(buf, cap, "?");
}

static const char *outcome_word(enum mt_audit_outcome o)
{
	return o == MT_AUDIT_OK ? "ok" : o == MT_AUDIT_REFUSED ? "refused" : "error";
}

/* Percent-encode s for a query value into out (bounded; false: no room). */
static bool url_enc(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		             (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';

		if (o + (plain ? 1 : 3) >= cap)
			return false;
		if (plain) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return true;
}

/* ---- the query string (strict) -------------------------------------------------------------- */

struct filters {
	char actor[MT_AUDIT_ACTOR_MAX + 1];
	char action[MT_AUDIT_ACTION_MAX + 1];
	char from[11], to[11]; /* YYYY-MM-DD as given, or "" */
	int outcome;           /* -1: any */
	uint64_t from_ms, to_ms, before;
};

static bool actor_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MT_AUDIT_ACTOR_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(":._@/+-", *s) != NULL))
			return false;
	return true;
}

static bool action_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MT_AUDIT_ACTION_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' ||
		      *s == '_'))
			return false;
	return true;
}

/* "YYYY-MM-DD", a real day from 1970 to 9999: its first millisecond. */
static bool parse_day(const char *s, uint64_t *ms)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y = 0, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return false;
	for (int i = 0; i < 4; i++)
		y = y * 10 + (unsigned)(s[i] - '0');
	m = (unsigned)(s[5] - '0') * 10 + (unsigned)(s[6] - '0');
	d = (unsigned)(s[8] - '0') * 10 + (unsigned)(s[9] - '0');
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	*ms = (uint64_t)mt_days_from_civil(y, m, d) * 86400000u;
	return true;
}

static bool known(const char *name)
{
	static const char *const names[] = {"actor", "action", "outcome", "from", "to", "before"};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* Parse the query into *f: false for anything we do not take. */
static bool parse_filters(const char *query, struct filters *f)
{
	struct mt_form *form;
	bool ok = true;

	memset(f, 0, sizeof *f);
	f->outcome = -1;
	if (query == NULL)
		return true;
	if (strlen(query) > MT_FORM_BODY_MAX)
		return false;
	form = calloc(1, sizeof *form);
	if (form == NULL || mt_form_parse((const uint8_t *)query, strlen(query), form) != MT_OK) {
		free(form);
		return false;
	}
	for (size_t i = 0; ok && i < form->n; i++) {
		const char *k = form->name[i], *v = form->value[i];

		if (strlen(v) != form->value_len[i] || !known(k)) {
			ok = false; /* a NUL inside, or not a filter of ours */
		} else if (v[0] == '\0' && strcmp(k, "before") != 0) {
			/* an empty field of the filter form: no filter */
		} else if (strcmp(k, "actor") == 0) {
			ok = actor_ok(v);
			if (ok)
				(void)snprintf(f->actor, sizeof f->actor, "%s", v);
		} else if (strcmp(k, "action") == 0) {
			ok = action_ok(v);
			if (ok)
				(void)snprintf(f->action, sizeof f->action, "%s", v);
		} else if (strcmp(k, "outcome") == 0) {
			f->outcome = strcmp(v, "ok") == 0        ? MT_AUDIT_OK
			             : strcmp(v, "refused") == 0 ? MT_AUDIT_REFUSED
			             : strcmp(v, "error") == 0   ? MT_AUDIT_ERROR
			                                         : -2;
			ok = f->outcome != -2;
		} else if (strcmp(k, "from") == 0) {
			ok = parse_day(v, &f->from_ms);
			if (ok)
				memcpy(f->from, v, 11);
		} else if (strcmp(k, "to") == 0) {
			ok = parse_day(v, &f->to_ms);
			if (ok) {
				memcpy(f->to, v, 11);
				f->to_ms += 86400000u; /* through the end of that day */
			}
		} else if (strcmp(k, "before") == 0) {
			int64_t b = con_parse_id(v);

			ok = b > 0;
			f->before = (uint64_t)b;
		} else {
			ok = false;
		}
	}
	if (ok && f->from_ms > 0 && f->to_ms > 0 && f->to_ms <= f->from_ms)
		ok = false;
	mt_form_wipe(form);
	free(form);
	return ok;
}

/* The query string of `f` (before replaced by `before`, 0: none), '?'
 * included, or "" when there is nothing. */
static void filters_query(const struct filters *f, uint64_t before, char *out, size_t cap)
{
	char enc[3 * MT_AUDIT_ACTOR_MAX + 1];
	size_t n = 0;
	int k;

	out[0] = '\0';
#define ADD(name, val)                                                                             \
	do {                                                                                       \
		if (url_enc((val), enc, sizeof enc)) {                                             \
			k = snprintf(out + n, cap - n, "%s%s=%s", n ? "&" : "?", (name), enc);     \
			if (k > 0 && (size_t)k < cap - n)                                          \
				n += (size_t)k;                                                    \
		}                                                                                  \
	} while (0)
	if (f->actor[0])
		ADD("actor", f->actor);
	if (f->action[0])
		ADD("action", f->action);
	if (f->outcome >= 0)
		ADD("outcome", outcome_word((enum mt_audit_outcome)f->outcome));
	if (f->from[0])
		ADD("from", f->from);
	if (f->to[0])
		ADD("to", f->to);
	if (before > 0) {
		char b[24];

		(void)snprintf(b, sizeof b, "%" PRIu64, before);
		ADD("before", b);
	}
#undef ADD
}

/* ---- the list ------------------------------------------------------------------------------- */

struct listing {
	struct out *o;
	bool json;
	size_t n;
	uint64_t oldest; /* seq of the last record listed */
};

/* `text` linked to the list filtered by it (`key` actor or action), or plain when it
 * does not fit a query. */
static void filter_link(struct out *o, const char *key, const char *text)
{
	char enc[3 * MT_AUDIT_ACTOR_MAX + 1], href[3 * MT_AUDIT_ACTOR_MAX + 32];

	if (url_enc(text, enc, sizeof enc)) {
		(void)snprintf(href, sizeof href, "/audit?%s=%s", key, enc);
		con_lit(o, "<a href=\"");
		con_text(o, href);
		con_lit(o, "\">");
		con_text(o, text);
		con_lit(o, "</a>");
	} else {
		con_text(o, text);
	}
}

static void record_html(struct out *o, const struct mt_audit_record *r)
{
	char when[40];

	fmt_ms(r->time_ms, when, sizeof when);
	con_fmt(o, "<tr class=\"o-%s%s\" id=\"r%" PRIu64 "\"><td>%" PRIu64 "</td><td>",
	        outcome_word(r->outcome), r->malformed ? " malformed" : "", r->seq, r->seq);
	con_text(o, when);
	con_lit(o, "</td><td>");
	filter_link(o, "actor", r->actor);
	con_lit(o, "</td><td>");
	if (r->kind == MT_AUDIT_CHECKPOINT)
		con_lit(o, "<b>checkpoint</b> ");
	filter_link(o, "action", r->action);
	con_lit(o, "</td><td>");
	con_text(o, r->subject);
	con_fmt(o, "</td><td>%s%s</td><td><code class=\"detail\">", outcome_word(r->outcome),
	        r->malformed ? " (malformed row)" : "");
	con_text(o, r->detail);
	con_lit(o, "</code></td></tr>");
}

static void record_json(struct out *o, const struct mt_audit_record *r, bool first)
{
	char when[40];

	fmt_ms(r->time_ms, when, sizeof when);
	con_fmt(o, "%s{\"seq\":%" PRIu64 ",\"time_ms\":%" PRIu64 ",\"time\":", first ? "" : ",",
	        r->seq, r->time_ms);
	con_json(o, when);
	con_fmt(o, ",\"kind\":\"%s\",\"actor\":",
	        r->kind == MT_AUDIT_CHECKPOINT ? "checkpoint" : "event");
	con_json(o, r->actor);
	con_lit(o, ",\"action\":");
	con_json(o, r->action);
	con_lit(o, ",\"subject\":");
	con_json(o, r->subject);
	con_fmt(o, ",\"outcome\":\"%s\",\"malformed\":%s,\"detail\":", outcome_word(r->outcome),
	        r->malformed ? "true" : "false");
	con_json(o, r->detail); /* as a string: the text exactly as stored */
	con_lit(o, "}");
}

static enum mt_err list_one(const struct mt_audit_record *r, void *arg)
{
	struct listing *l = arg;

	if (l->json)
		record_json(l->o, r, l->n == 0);
	else
		record_html(l->o, r);
	l->n++;
	l->oldest = r->seq;
	return l->o->failed ? MT_ERR_NOMEM : MT_OK;
}

/* ---- the pages ------------------------------------------------------------------------------ */

static void status_html(struct out *o, const struct verified *vf)
{
	char when[40], at[40];

	fmt_ms((uint64_t)vf->at * 1000u, at, sizeof at);
	if (vf->err == MT_OK) {
		con_fmt(o,
		        "<section class=\"chain verified\" id=\"chain\"><h2>Chain verified</h2>"
		        "<p>Verified, %" PRIu64 " records",
		        vf->v.records);
		if (vf->v.last_seq > 0) {
			fmt_ms(vf->last_ms, when, sizeof when);
			con_fmt(o, ", the last (seq %" PRIu64 ") at ", vf->v.last_seq);
			con_text(o, when);
		}
		con_fmt(o,
		        ". Every hash and link holds; %" PRIu64 " checkpoint signatures by the hub "
		        "verified (%" PRIu64 " matched in the outside checkpoint file); %" PRIu64
		        " records after the last checkpoint are not yet signed.</p>",
		        vf->v.checkpoints, vf->v.external,
		        vf->v.last_seq >= vf->last_cp ? vf->v.last_seq - vf->last_cp : 0);
	} else if (mt_audit_reason_word(vf->err) != NULL) {
		con_lit(o, "<section class=\"chain broken\" id=\"chain\"><h2>Chain broken</h2>"
		           "<p class=\"msg\" role=\"alert\">");
		if (vf->v.seq != 0)
			con_fmt(o,
			        "The first bad record is seq %" PRIu64
			        " (<a href=\"/audit?before=%" PRIu64 "\">show it</a>): %s. ",
			        vf->v.seq, vf->v.seq + 1, mt_audit_reason_word(vf->err));
		else
			con_fmt(o, "The outside checkpoint file does not match (%s). ",
			        mt_audit_reason_word(vf->err));
		con_text(o, vf->v.why);
		con_lit(o,
		        " Records from there on cannot be trusted as evidence; keep the database "
		        "and the checkpoint file as they are and see docs/audit.md.</p>");
	} else {
		con_lit(o, "<section class=\"chain unverified\" id=\"chain\"><h2>Chain not "
		           "verified</h2><p class=\"note\" role=\"alert\">The chain could not be "
		           "verified: ");
		con_text(o, vf->v.why);
		con_lit(o, "</p>");
	}
	con_lit(o, "<p class=\"t\">Checked at ");
	con_text(o, at);
	con_fmt(o,
	        " in %" PRIu64 " ms; the result is kept for %d s, so records added since may "
	        "not be counted yet.</p></section>",
	        vf->took_ms, VERIFY_KEEP_S);
}

static void status_json(struct out *o, const struct verified *vf)
{
	const char *word = mt_audit_reason_word(vf->err);

	con_fmt(o,
	        "\"verification\":{\"status\":\"%s\",\"records\":%" PRIu64 ",\"last_seq\":%" PRIu64
	        ",\"last_time_ms\":%" PRIu64 ",\"checkpoints\":%" PRIu64 ",\"external\":%" PRIu64
	        ",\"bad_seq\":%" PRIu64 ",\"reason\":\"%s\",\"checked_at\":%" PRId64
	        ",\"kept_s\":%d,\"why\":",
	        vf->err == MT_OK ? "verified"
	        : word != NULL   ? "broken"
	                         : "unverified",
	        vf->v.records, vf->v.last_seq, vf->last_ms, vf->v.checkpoints, vf->v.external,
	        vf->v.seq, word != NULL ? word : "", vf->at, VERIFY_KEEP_S);
	con_json(o, vf->v.why);
	con_lit(o, "}");
}

static void filter_form(struct out *o, const char *action_path, const struct filters *f)
{
	static const char *const outs[] = {"ok", "refused", "error"};

	con_lit(o, "<form class=\"filters\" method=\"get\" action=\"");
	con_lit(o, action_path);
	con_lit(o, "\"><label>Actor <input name=\"actor\" maxlength=\"128\" "
	           "placeholder=\"user:alice\" value=\"");
	con_text(o, f->actor);
	con_lit(o, "\"></label><label>Action (prefix) <input name=\"action\" maxlength=\"64\" "
	           "placeholder=\"user.\" value=\"");
	con_text(o, f->action);
	con_lit(o, "\"></label><label>Outcome <select name=\"outcome\"><option value=\"\">any"
	           "</option>");
	for (int i = 0; i < 3; i++)
		con_fmt(o, "<option%s>%s</option>", f->outcome == i ? " selected" : "", outs[i]);
	con_lit(o, "</select></label><label>From <input type=\"date\" name=\"from\" value=\"");
	con_text(o, f->from);
	con_lit(o, "\"></label><label>To <input type=\"date\" name=\"to\" value=\"");
	con_text(o, f->to);
	con_lit(o, "\"></label><button type=\"submit\">Filter</button> <a href=\"");
	con_lit(o, action_path);
	con_lit(o, "\">Clear</a></form>");
}

/* The search one page asks for: the filters, a page of rows, and for the security view
 * only the notable events. */
static void search_query(const struct filters *f, bool security, struct mt_audit_search *q)
{
	memset(q, 0, sizeof *q);
	q->actor = f->actor[0] ? f->actor : NULL;
	q->action = f->action[0] ? f->action : NULL;
	q->outcome = f->outcome;
	q->from_ms = f->from_ms;
	q->to_ms = f->to_ms;
	q->before = f->before;
	q->limit = PAGE_ROWS;
	if (security) {
		q->notable = notable;
		q->n_notable = sizeof notable / sizeof notable[0];
		q->events_only = true;
	}
}

static void audit_page(struct mt_console *c, struct mt_https_resp *rs, const struct session *s,
                       int64_t now, const char *db, const struct filters *f, bool security)
{
	const char *path = security ? "/audit/security" : "/audit";
	struct mt_audit_search q;
	struct verified vf;
	struct listing l;
	struct out o = {0};
	char more[1024];
	enum mt_err e;

	verification(c, db, now, &vf);
	search_query(f, security, &q);
	memset(&l, 0, sizeof l);
	l.o = &o;

	con_page_start(c, &o, security ? "Security events" : "Audit", s, NULL);
	con_fmt(&o,
	        "<h1>%s</h1><nav class=\"sub\"><a href=\"/audit\">All records</a> "
	        "<a href=\"/audit/security\">Security events</a></nav>",
	        security ? "Security events" : "Audit log");
	status_html(&o, &vf);
	con_lit(&o, "<p class=\"note\">The audit log is append-only: records are added by the "
	            "hub and the command line, and nobody — administrators and auditors included "
	            "— can change or delete one here. Each record carries the hash of the one "
	            "before it, and the hub signs checkpoints, so an edit elsewhere shows above as "
	            "a broken chain.</p>");
	if (security)
		con_lit(&o, "<p>Every refusal and error, and every change of who may do what: "
		            "lockouts, pages refused to a role, CSRF refusals, re-authentications, "
		            "users, devices, manufacturers, manifests, FHIR clients and "
		            "certificates.</p>");
	filter_form(&o, path, f);
	con_lit(&o, "<table class=\"audit\"><thead><tr><th>Seq</th><th>Time (UTC)</th><th>Actor"
	            "</th><th>Action</th><th>Subject</th><th>Outcome</th><th>Detail</th></tr>"
	            "</thead><tbody>");
	e = mt_audit_search(db, &q, list_one, &l);
	con_lit(&o, "</tbody></table>");
	if (e != MT_OK) {
		con_free(&o);
		fprintf(stderr, "medtrustd: console: reading the audit chain: %s\n", mt_err_str(e));
		con_message(c, rs, 503, s, "Audit unavailable",
		            "The audit chain could not be read just now; try again.");
		return;
	}
	if (l.n == 0)
		con_lit(&o, "<p class=\"none\">No records match.</p>");
	if (l.n == PAGE_ROWS && l.oldest > 1) {
		filters_query(f, l.oldest, more, sizeof more);
		con_lit(&o, "<p class=\"pager\"><a rel=\"next\" href=\"");
		con_lit(&o, path);
		con_text(&o, more);
		con_lit(&o, "\">Older records \xe2\x86\x92</a></p>");
	}
	con_page_end(&o);
	con_send_page(rs, 200, &o);
}

static void audit_api(struct mt_console *c, struct mt_https_resp *rs, int64_t now, const char *db,
                      const struct filters *f, bool security)
{
	struct mt_audit_search q;
	struct verified vf;
	struct listing l;
	struct out o = {0};
	enum mt_err e;

	verification(c, db, now, &vf);
	search_query(f, security, &q);
	memset(&l, 0, sizeof l);
	l.o = &o;
	l.json = true;
	con_lit(&o, "{");
	status_json(&o, &vf);
	con_lit(&o, ",\"records\":[");
	e = mt_audit_search(db, &q, list_one, &l);
	con_lit(&o, "]");
	if (l.n == PAGE_ROWS && l.oldest > 1)
		con_fmt(&o, ",\"next_before\":%" PRIu64, l.oldest);
	con_lit(&o, "}");
	if (e != MT_OK) {
		con_free(&o);
		con_api_error(rs, 503, "the audit chain could not be read");
		return;
	}
	con_send_json(rs, 200, &o);
}

void con_view_audit(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
                    struct session *s, int64_t now)
{
	bool api = strncmp(rq->path, "/api/", 5) == 0;
	const char *db = mt_deploy_get(c->d, "db_path");
	const char *p = api ? rq->path + 4 : rq->path; /* "/audit..." */
	bool security;
	struct filters f;

	/* F17: the auditor's view only reads; no method but GET exists here. */
	if (strcmp(rq->method, "GET") != 0) {
		if (api) {
			con_api_error(rs, 405, "the audit log is read-only");
		} else {
			con_message(c, rs, 405, s, "Method not allowed",
			            "The audit log is append-only: nothing here can be changed.");
		}
		con_header(rs, "Allow", "%s", "GET");
		return;
	}
	if (strcmp(p, "/audit") == 0) {
		security = false;
	} else if (strcmp(p, "/audit/security") == 0) {
		security = true;
	} else {
		if (api)
			con_api_error(rs, 404, "no such endpoint");
		else
			con_message(c, rs, 404, s, "Not found", "There is no such page.");
		return;
	}
	if (!parse_filters(rq->query, &f)) {
		if (api)
			con_api_error(rs, 400, "bad filter");
		else
			con_message(
			        c, rs, 400, s, "Bad request",
			        "A filter was not understood. Actors are like user:alice, actions "
			        "like user.add, outcomes ok, refused or error, days YYYY-MM-DD.");
		return;
	}
	if (db == NULL) {
		if (api)
			con_api_error(rs, 503, "no audit chain configured");
		else
			con_message(c, rs, 503, s, "Audit unavailable",
			            "The deployment names no db_path.");
		return;
	}
	if (api)
		audit_api(c, rs, now, db, &f, security);
	else
		audit_page(c, rs, s, now, db, &f, security);
}
