/*
 * console.c — medtrustd's web console: the router, sessions, sign-in,
 * CSRF, lockout, re-authentication and the ward overview (console.h,
 * console_int.h; docs/console.md; threats F01–F07, F09, F10, F16;
 * clinical.md §1, §3).  The other views live in console_patient.c,
 * console_fleet.c, console_admin.c and console_auditview.c.
 *
 * Pages.  Every page is HTML built in the hub, in one buffer per request,
 * with every string that comes from data (patient names and MRNs, wards,
 * beds, device ids, user names, the hospital's name) passed through
 * mt_html_escape, the one escaper (F06, F07).  The live pages (ward,
 * patient) are kept current by the hub's own scripts — the scripts under web/ and uPlot,
 * compiled into medtrustd at build time and served from /static/ — which
 * write data into the page as text only.  The Content-Security-Policy is
 * `default-src 'none'; script-src 'self'; connect-src 'self'; style-src
 * 'self'; ...`: an injected <script>, inline or from elsewhere, an inline
 * event handler or style, or a frame would not run even if escaping
 * failed.
 *
 * Who sees what (F09, F10, F17).  The router (views[]) names the roles
 * that may open each path: clinicians the ward, their patients and the
 * alarms; biomedical engineers the fleet and onboarding; administrators
 * the administration pages; auditors (and administrators) the audit
 * chain.  Any other role gets 403, audited as console.forbidden.  Within a
 * role, a clinician sees only the patients of their wards (user_wards),
 * on the ward page, by a patient's URL (404, as for an unknown id) and on
 * the live stream (live.c filters each event).  An administrative change
 * needs the password given within console_reauth_s (default 5 min):
 * con_recent_auth sends the browser through /reauth, which checks the
 * password (and second factor) as a sign-in does, counted toward the
 * lockout.
 *
 * Sessions (F03, F04).  A session is 32 bytes from RAND_bytes, sent once
 * as the base64url cookie mt_session (HttpOnly; Secure; SameSite=Strict;
 * Path=/) and kept here only as its SHA-256, with the user, role, whether
 * the password must change, the session's CSRF token and its times: a
 * memory dump yields no usable cookie.  Lookups compare hashes with
 * CRYPTO_memcmp.  A session dies after IDLE_S without a request of the
 * user's (the live stream does not count, so a screen left open does
 * sign out) or ABSOLUTE_S after sign-in, whichever comes first,
 * and at sign-out; a sign-in always makes a new session and drops the one
 * the browser presented (no fixation), as does a password change.  The
 * table holds SESSIONS_MAX sessions; a new one evicts the least recently
 * used.  Sessions are per hub process: a restart signs everyone out.
 *
 * CSRF (F05).  Every form carries a hidden `csrf` field.  Signed in, it
 * is the session's own random token, compared in constant time on every
 * POST.  The sign-in form has no session yet: it gets a signed double
 * submit — a random cookie mt_login_csrf (Path=/login) and, in the form,
 * HMAC-SHA-256 of that cookie under a key made at start-up — so a page
 * elsewhere can neither read the pair nor forge one, even on a host that
 * can set cookies for ours.  A POST without a valid token is 403 and
 * changes nothing.
 *
 * Brute force (F01).  Per account: MT_USERS_MAX_FAILS wrong passwords
 * lock it for MT_USERS_LOCK_S (mt_users.h), in the database, so the CLI
 * and other hubs see it.  Names that do not exist are locked the same way
 * in memory (the "ghost" table, keyed by the name's hash), so that the
 * lockout answer does not reveal which names exist, and an unknown name
 * costs the same argon2id work as a known one (mt_users_login).  Per
 * source address: SOURCE_FAILS_MAX failed sign-ins within SOURCE_WINDOW_S
 * block further attempts from it until the window ends (password
 * spraying across accounts).  Wrong credentials answer 401 with one
 * sentence whatever was wrong; a locked account or source 429 with
 * another.  Every sign-in, failure and lockout is an audit record
 * (console.login ok/refused, console.lockout) naming the user and the
 * source, never the password.
 *
 * The ward page (clinical.md §1, §3).  One tile per patient of the
 * clinician's wards.  Patients come from the readings store, decrypted
 * here (name, MRN); the newest value of each quantity from their
 * readings: for each patient the console remembers the newest observation
 * of each code and the highest reading id it has looked at, and on each
 * view decrypts only readings stored since (at most BACKFILL of them,
 * newest device time first: mt_store_latest_reading_ids), verifying
 * nothing again — the hub verified each at ingest and they are stored
 * authenticated.  Values are printed with the observation's `places`, or
 * the default of clinical.md §1.  The newest NEWS2 and the open alarms
 * are painted too; web/ward.js then follows the live stream.  A patient
 * whose newest reading reached the hub more than STALE_S ago is marked
 * "no data for N s" — the technical "device offline" hint of §3, on the
 * hub's clock, not the device's.  Showing identities is audited as
 * console.ward.view, once per session per VIEW_AUDIT_S.
 *
 * Inputs are bounded before they are parsed: form bodies MT_FORM_BODY_MAX
 * (4 KiB, else 413), application/x-www-form-urlencoded only (else 415),
 * parsed strictly (mt_form.h, else 400); the Cookie header by https.c's
 * header limit.
 */
#define _POSIX_C_SOURCE 200809L

#include "console_int.h"
#include "clinical.h"
#include "live.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "medtrust/mt_cose.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_form.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_store_clinical.h"
#include "medtrust/mt_store_query.h"
#include "medtrust/mt_totp.h"
#include "medtrust/mt_users.h"

/* ---- quantities (clinical.md §1) ------------------------------------------ */

enum qty { Q_HR, Q_PR, Q_SPO2, Q_RR, Q_TEMP, Q_SYS, Q_DIA, Q_GLU, Q__N };

static const struct {
	uint32_t code;
	const char *label;
	const char *unit;
	uint8_t places; /* when the observation gives none */
} qtys[Q__N] = {
        [Q_HR] = {147842, "HR", "/min", 0},    [Q_PR] = {149530, "PR", "/min", 0},
        [Q_SPO2] = {150456, "SpO\xe2\x82\x82", "%", 0},
        [Q_RR] = {151562, "RR", "/min", 0},    [Q_TEMP] = {150364, "Temp", "\xc2\xb0" "C", 1},
        [Q_SYS] = {150021, "NIBP", "mmHg", 0}, [Q_DIA] = {150022, "NIBP dia", "mmHg", 0},
        [Q_GLU] = {160184, "Glucose", "mg/dL", 0},
};

struct latest {
	bool has;
	double v;
	uint8_t places;
	uint64_t t_ms; /* the observation's time: ts + t */
};

struct pcache {
	int64_t pid;
	int64_t last_id;      /* the highest reading id looked at */
	uint64_t newest_rx_ms; /* hub clock at receipt of the newest reading */
	struct latest q[Q__N];
};

/* ---- small helpers ------------------------------------------------------------ */

static void b64url(const uint8_t *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;

	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
	}
	out[o] = '\0';
}

/* A fresh token: 32 random bytes as base64url (43 characters). */
static bool new_token(char out[TOKEN_B64 + 1])
{
	uint8_t r[TOKEN_BYTES];
	bool ok = RAND_bytes(r, (int)sizeof r) == 1;

	if (ok)
		b64url(r, sizeof r, out);
	OPENSSL_cleanse(r, sizeof r);
	return ok;
}

/* A string that has the shape of one of our tokens. */
bool con_token_shape(const char *t)
{
	size_t n = 0;

	if (t == NULL)
		return false;
	for (; t[n] != '\0'; n++) {
		char c = t[n];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return n == TOKEN_B64;
}

/* Constant-time comparison of two tokens of the right shape. */
bool con_token_equal(const char *a, const char *b)
{
	return con_token_shape(a) && con_token_shape(b) && CRYPTO_memcmp(a, b, TOKEN_B64) == 0;
}

static void hash_text(const char *s, uint8_t out[32])
{
	unsigned int n = 32;

	if (EVP_Digest(s, strlen(s), out, &n, EVP_sha256(), NULL) != 1)
		memset(out, 0, 32); /* never matches a stored hash of a real token */
}

/* The sign-in form's half of the double submit: HMAC(key, cookie). */
static bool login_mac(const struct mt_console *c, const char *cookie, char out[TOKEN_B64 + 1])
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (HMAC(EVP_sha256(), c->csrf_key, (int)sizeof c->csrf_key, (const uint8_t *)cookie,
	         strlen(cookie), mac, &n) == NULL ||
	    n != 32)
		return false;
	b64url(mac, 32, out);
	return true;
}

/* ---- the answer ------------------------------------------------------------------ */


bool con_room(struct out *o, size_t more)
{
	size_t cap;
	char *np;

	if (o->failed)
		return false;
	if (more > PAGE_MAX || o->n + more + 1 > PAGE_MAX) {
		o->failed = true;
		return false;
	}
	if (o->n + more + 1 <= o->cap)
		return true;
	cap = o->cap ? o->cap : 8192;
	while (cap < o->n + more + 1)
		cap *= 2;
	if (cap > PAGE_MAX)
		cap = PAGE_MAX;
	np = realloc(o->p, cap);
	if (np == NULL) {
		o->failed = true;
		return false;
	}
	o->p = np;
	o->cap = cap;
	return true;
}

/* Markup written by this file (never data). */
void con_lit(struct out *o, const char *s)
{
	size_t n = strlen(s);

	if (!con_room(o, n))
		return;
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

/* Numbers and markup of this file's own making; never a data string (use
 * out_text for those). */
void con_fmt(struct out *o, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= sizeof buf) {
		o->failed = true;
		return;
	}
	con_lit(o, buf);
}

/* Text from data, escaped (the only way data reaches a page). */
void con_text(struct out *o, const char *s)
{
	size_t n = s ? strlen(s) : 0, w = 0;

	if (!con_room(o, MT_HTML_ESCAPE_MAX(n)))
		return;
	if (mt_html_escape(s ? s : "", n, o->p + o->n, o->cap - o->n, &w) != MT_OK) {
		o->failed = true;
		return;
	}
	o->n += w;
}

void con_free(struct out *o)
{
	free(o->p);
	o->p = NULL;
	o->n = o->cap = 0;
}

void con_header(struct mt_https_resp *rs, const char *name, const char *fmt, ...)
{
	struct mt_https_header *h;
	va_list ap;
	int k;

	if (rs->n_headers >= MT_HTTPS_HEADERS_OUT) {
		rs->n_headers = MT_HTTPS_HEADERS_OUT + 1; /* the server answers 500 */
		return;
	}
	h = &rs->headers[rs->n_headers];
	va_start(ap, fmt);
	k = vsnprintf(h->value, sizeof h->value, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= sizeof h->value) {
		rs->n_headers = MT_HTTPS_HEADERS_OUT + 1;
		return;
	}
	h->name = name;
	rs->n_headers++;
}

/* The headers of every console answer (F06, F16).  https.c adds
 * Cache-Control: no-store and X-Content-Type-Options: nosniff to all. */
static void security_headers(struct mt_https_resp *rs)
{
	con_header(rs, "Content-Security-Policy", "%s",
	           "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
	           "img-src 'self'; form-action 'self'; "
	           "frame-ancestors 'none'; base-uri 'none'");
	con_header(rs, "Strict-Transport-Security", "%s", "max-age=31536000");
	con_header(rs, "Referrer-Policy", "%s", "no-referrer");
	con_header(rs, "X-Frame-Options", "%s", "DENY");
	con_header(rs, "Cross-Origin-Opener-Policy", "%s", "same-origin");
}

static void set_cookie(struct mt_https_resp *rs, const char *name, const char *value,
                       const char *path, long max_age)
{
	if (max_age >= 0)
		con_header(rs, "Set-Cookie", "%s=%s; Path=%s; Max-Age=%ld; Secure; HttpOnly; "
		                             "SameSite=Strict",
		           name, value, path, max_age);
	else
		con_header(rs, "Set-Cookie", "%s=%s; Path=%s; Secure; HttpOnly; SameSite=Strict", name,
		           value, path);
}

void con_send_page(struct mt_https_resp *rs, int status, struct out *o)
{
	if (o->failed || o->p == NULL) {
		con_free(o);
		rs->status = 500;
		rs->content_type = "text/plain; charset=utf-8";
		rs->body = (uint8_t *)strdup("the page could not be built\n");
		rs->body_len = rs->body ? strlen((char *)rs->body) : 0;
		return;
	}
	rs->status = status;
	rs->content_type = "text/html; charset=utf-8";
	rs->body = (uint8_t *)o->p;
	rs->body_len = o->n;
	o->p = NULL;
}

void con_redirect(struct mt_https_resp *rs, const char *to)
{
	rs->status = 303;
	con_header(rs, "Location", "%s", to);
}

/* ---- pages -------------------------------------------------------------------------- */

/* The navigation of each role: the pages it may open. */
static const struct {
	unsigned roles;
	const char *href, *label;
} nav[] = {
        {CON_ROLE(MT_ROLE_CLINICIAN), "/ward", "Ward"},
        {CON_ROLE(MT_ROLE_BIOMED), "/fleet", "Fleet"},
        {CON_ROLE(MT_ROLE_BIOMED), "/onboarding", "Onboarding"},
        {CON_ROLE(MT_ROLE_ADMIN), "/admin", "Administration"},
        {CON_ROLE(MT_ROLE_ADMIN) | CON_ROLE(MT_ROLE_AUDITOR), "/audit", "Audit"},
};

/* Where a session must go before anything else: the forced password
 * change, then an administrator's second factor (F15); NULL: nowhere. */
static const char *first_step(const struct session *s)
{
	return s->must_change ? "/password" : s->need_totp ? "/totp" : NULL;
}

/* Where a role lands after sign-in. */
static const char *home_of(enum mt_role r)
{
	switch (r) {
	case MT_ROLE_CLINICIAN: return "/ward";
	case MT_ROLE_BIOMED: return "/fleet";
	case MT_ROLE_ADMIN: return "/admin";
	case MT_ROLE_AUDITOR: return "/audit";
	}
	return "/login";
}

void con_page_start(const struct mt_console *c, struct out *o, const char *title,
                    const struct session *s, const char *scripts)
{
	con_lit(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
	con_lit(o, "<title>");
	con_text(o, title);
	con_lit(o, " \xe2\x80\x94 medtrust</title>"
	           "<link rel=\"stylesheet\" href=\"/static/console.css\">");
	for (const char *p = scripts; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, " ");
		char name[64];

		if (n > 0 && n < sizeof name) {
			memcpy(name, p, n);
			name[n] = '\0';
			if (strstr(name, ".css") != NULL)
				con_fmt(o, "<link rel=\"stylesheet\" href=\"/static/%s\">", name);
			else
				con_fmt(o, "<script src=\"/static/%s\" defer></script>", name);
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	con_lit(o, "</head><body><header><span class=\"brand\">medtrust");
	if (c->hospital[0] != '\0') {
		con_lit(o, " \xc2\xb7 ");
		con_text(o, c->hospital);
	}
	con_lit(o, "</span>");
	if (s != NULL) {
		if (!s->must_change) {
			con_lit(o, "<nav>");
			for (size_t i = 0; i < sizeof nav / sizeof nav[0]; i++)
				if (nav[i].roles & CON_ROLE(s->role))
					con_fmt(o, "<a href=\"%s\">%s</a>", nav[i].href, nav[i].label);
			con_lit(o, "</nav>");
		}
		con_lit(o, "<span id=\"live\" class=\"live\" hidden></span><span>");
		con_text(o, s->user);
		con_lit(o, " (");
		con_text(o, mt_role_name(s->role));
		con_lit(o, ")</span><form method=\"post\" action=\"/logout\">");
		con_csrf_field(o, s);
		con_lit(o, "<button type=\"submit\">Sign out</button></form>");
	}
	con_lit(o, "</header><main>");
}

void con_alert(struct out *o, const char *msg)
{
	if (msg == NULL)
		return;
	con_lit(o, "<p class=\"msg\" role=\"alert\">");
	con_text(o, msg);
	con_lit(o, "</p>");
}

void con_csrf_field(struct out *o, const struct session *s)
{
	con_lit(o, "<input type=\"hidden\" name=\"csrf\" value=\"");
	con_text(o, s->csrf);
	con_lit(o, "\">");
}

void con_page_end(struct out *o)
{
	con_lit(o, "</main></body></html>\n");
}

/* The sign-in page, with a fresh signed double-submit pair. */
static void login_page(struct mt_console *c, struct mt_https_resp *rs, int status,
                       const char *msg)
{
	char cookie[TOKEN_B64 + 1], field[TOKEN_B64 + 1];
	struct out o = {0};

	if (!new_token(cookie) || !login_mac(c, cookie, field)) {
		rs->status = 503;
		return;
	}
	set_cookie(rs, COOKIE_LOGIN, cookie, "/login", LOGIN_CSRF_S);
	con_page_start(c, &o, "Sign in", NULL, NULL);
	con_lit(&o, "<form class=\"box\" method=\"post\" action=\"/login\" "
	            "accept-charset=\"UTF-8\"><h1>Sign in</h1>");
	con_alert(&o, msg);
	con_lit(&o, "<label>User name<input name=\"user\" autocomplete=\"username\" required "
	            "maxlength=\"64\" autocapitalize=\"none\" spellcheck=\"false\" autofocus>"
	            "</label><label>Password<input type=\"password\" name=\"password\" "
	            "autocomplete=\"current-password\" required maxlength=\"256\"></label>"
	            "<label>Code from your authenticator, if you have one<input name=\"code\" "
	            "autocomplete=\"one-time-code\" inputmode=\"numeric\" maxlength=\"6\" "
	            "pattern=\"[0-9]{6}\"></label>"
	            "<input type=\"hidden\" name=\"csrf\" value=\"");
	con_text(&o, field);
	con_lit(&o, "\"><button type=\"submit\">Sign in</button></form>");
	con_page_end(&o);
	con_send_page(rs, status, &o);
	OPENSSL_cleanse(cookie, sizeof cookie);
}

static void password_page(struct mt_console *c, struct mt_https_resp *rs, int status,
                          const struct session *s, const char *msg)
{
	struct out o = {0};

	con_page_start(c, &o, "Change password", s, NULL);
	con_lit(&o, "<form class=\"box\" method=\"post\" action=\"/password\" "
	            "accept-charset=\"UTF-8\"><h1>Change password</h1>");
	if (s->must_change)
		con_lit(&o, "<p class=\"note\">You signed in with a one-time password: choose your "
		            "own before you go on.</p>");
	con_alert(&o, msg);
	con_lit(&o, "<label>Current password<input type=\"password\" name=\"current\" "
	            "autocomplete=\"current-password\" required maxlength=\"256\"></label>"
	            "<label>New password (at least 12 characters)<input type=\"password\" "
	            "name=\"new\" autocomplete=\"new-password\" required minlength=\"12\" "
	            "maxlength=\"256\"></label><label>New password again<input type=\"password\" "
	            "name=\"repeat\" autocomplete=\"new-password\" required minlength=\"12\" "
	            "maxlength=\"256\"></label><input type=\"hidden\" name=\"csrf\" value=\"");
	con_text(&o, s->csrf);
	con_lit(&o, "\"><button type=\"submit\">Change password</button></form>");
	con_page_end(&o);
	con_send_page(rs, status, &o);
}

void con_message(struct mt_console *c, struct mt_https_resp *rs, int status,
                         const struct session *s, const char *title, const char *text)
{
	struct out o = {0};

	con_page_start(c, &o, title, s, NULL);
	con_lit(&o, "<h1>");
	con_text(&o, title);
	con_lit(&o, "</h1><p>");
	con_text(&o, text);
	con_lit(&o, "</p>");
	con_page_end(&o);
	con_send_page(rs, status, &o);
}

/* ---- audit ---------------------------------------------------------------------------- */

void con_audit(struct mt_console *c, const char *actor_user, const struct mt_https_req *rq,
      const char *action, const char *subject, enum mt_audit_outcome outcome, const char *fmt,
      ...)
{
	char actor[MT_USER_NAME_MAX + 8], detail[1024], extra[768], js[2][160];
	va_list ap;

	if (c->audit == NULL)
		return;
	/* every call passes a format: the detail always has members */
	if (actor_user != NULL)
		(void)snprintf(actor, sizeof actor, "user:%s", actor_user);
	else
		(void)snprintf(actor, sizeof actor, "ip:%s", rq->source[0] ? rq->source : "?");
	va_start(ap, fmt);
	if (vsnprintf(extra, sizeof extra, fmt, ap) >= (int)sizeof extra)
		extra[0] = '\0'; /* cut JSON is no JSON: drop the extra members */
	va_end(ap);
	(void)snprintf(detail, sizeof detail, "{\"source\":%s,\"path\":%s%s%s}",
	               mt_deploy_json_str(rq->source, js[0], sizeof js[0]),
	               mt_deploy_json_str(rq->path, js[1], sizeof js[1]), extra[0] ? "," : "",
	               extra);
	c->audit(c->audit_arg, actor, action, subject, outcome, detail);
}

/* ---- sessions ----------------------------------------------------------------------------- */

static bool session_live(const struct session *s, int64_t now)
{
	return s->used && now - s->last_seen < IDLE_S && now - s->created < ABSOLUTE_S &&
	       now >= s->created - 60; /* a clock stepped far back ends sessions */
}

/* The session of the request's cookie (under sess_lock): its index, or
 * -1.  An expired one is dropped.  `touch` counts the request as the
 * user's activity. */
static int session_find(struct mt_console *c, const struct mt_https_req *rq, int64_t now,
                        bool touch)
{
	char tok[TOKEN_B64 + 2];
	uint8_t h[32];
	int found = -1;

	if (mt_form_cookie(rq->cookie, COOKIE_SESSION, tok, sizeof tok) != MT_OK ||
	    !con_token_shape(tok))
		return -1;
	hash_text(tok, h);
	OPENSSL_cleanse(tok, sizeof tok);
	for (int i = 0; i < SESSIONS_MAX; i++) /* every slot: no early exit */
		if (c->sess[i].used && CRYPTO_memcmp(c->sess[i].hash, h, 32) == 0)
			found = i;
	if (found < 0)
		return -1;
	if (!session_live(&c->sess[found], now)) {
		OPENSSL_cleanse(&c->sess[found], sizeof c->sess[found]);
		return -1;
	}
	if (touch)
		c->sess[found].last_seen = now;
	return found;
}

/* A copy of the request's live session, or false. */
static bool session_get(struct mt_console *c, const struct mt_https_req *rq, int64_t now,
                        bool touch, struct session *out)
{
	int i;

	pthread_mutex_lock(&c->sess_lock);
	i = session_find(c, rq, now, touch);
	if (i >= 0)
		*out = c->sess[i];
	pthread_mutex_unlock(&c->sess_lock);
	return i >= 0;
}

static void session_drop(struct mt_console *c, const struct mt_https_req *rq, int64_t now)
{
	int i;

	pthread_mutex_lock(&c->sess_lock);
	i = session_find(c, rq, now, false);
	if (i >= 0)
		OPENSSL_cleanse(&c->sess[i], sizeof c->sess[i]);
	pthread_mutex_unlock(&c->sess_lock);
}

/* Drop every session of `user` (a lockout during a password change). */
static void session_drop_user(struct mt_console *c, const char *user)
{
	pthread_mutex_lock(&c->sess_lock);
	for (int i = 0; i < SESSIONS_MAX; i++)
		if (c->sess[i].used && strcmp(c->sess[i].user, user) == 0)
			OPENSSL_cleanse(&c->sess[i], sizeof c->sess[i]);
	pthread_mutex_unlock(&c->sess_lock);
}

/* A new session for `u`, replacing the request's own (F03), and its
 * cookie on the answer.  false: no randomness. */
static bool session_new(struct mt_console *c, const struct mt_https_req *rq,
                        struct mt_https_resp *rs, const struct mt_user *u, int64_t now,
                        struct session *out)
{
	char tok[TOKEN_B64 + 1];
	struct session s;
	int slot = -1, old;

	memset(&s, 0, sizeof s);
	if (!new_token(tok) || !new_token(s.csrf)) {
		OPENSSL_cleanse(tok, sizeof tok);
		return false;
	}
	s.used = true;
	hash_text(tok, s.hash);
	memcpy(s.user, u->name, sizeof s.user);
	s.role = u->role;
	s.must_change = u->must_change;
	s.need_totp = c->admin_mfa && u->role == MT_ROLE_ADMIN && !u->totp;
	s.created = s.last_seen = s.authed = now;
	pthread_mutex_lock(&c->sess_lock);
	old = session_find(c, rq, now, false);
	if (old >= 0)
		OPENSSL_cleanse(&c->sess[old], sizeof c->sess[old]);
	for (int i = 0; i < SESSIONS_MAX && slot < 0; i++)
		if (!c->sess[i].used || !session_live(&c->sess[i], now))
			slot = i;
	if (slot < 0) { /* full: evict the least recently used */
		slot = 0;
		for (int i = 1; i < SESSIONS_MAX; i++)
			if (c->sess[i].last_seen < c->sess[slot].last_seen)
				slot = i;
	}
	c->sess[slot] = s;
	pthread_mutex_unlock(&c->sess_lock);
	set_cookie(rs, COOKIE_SESSION, tok, "/", -1);
	OPENSSL_cleanse(tok, sizeof tok);
	if (out != NULL)
		*out = s;
	OPENSSL_cleanse(&s, sizeof s);
	return true;
}

/* ---- brute-force bookkeeping (under sess_lock) ------------------------------------------------ */

static struct source *source_slot(struct mt_console *c, const char *addr, int64_t now,
                                  bool create)
{
	struct source *victim = NULL; /* an empty slot, else the least recent */

	for (int i = 0; i < SOURCES_MAX; i++) {
		struct source *s = &c->src[i];

		if (s->addr[0] != '\0' && strcmp(s->addr, addr) == 0) {
			if (now - s->since >= SOURCE_WINDOW_S) { /* a new window */
				s->fails = 0;
				s->throttled = 0;
				s->since = now;
			}
			return s;
		}
		if (victim == NULL ||
		    (victim->addr[0] != '\0' && (s->addr[0] == '\0' || s->last < victim->last)))
			victim = s;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof *victim);
	(void)snprintf(victim->addr, sizeof victim->addr, "%s", addr);
	victim->since = victim->last = now;
	return victim;
}

/* Is the source blocked?  Counts the attempt when it is; *audit_it says
 * whether this refusal should be audited (the first, then every 100th). */
static bool source_blocked(struct mt_console *c, const char *addr, int64_t now, bool *audit_it,
                           uint64_t *count)
{
	struct source *s;
	bool blocked = false;

	*audit_it = false;
	pthread_mutex_lock(&c->sess_lock);
	s = source_slot(c, addr, now, false);
	if (s != NULL && s->fails >= SOURCE_FAILS_MAX) {
		blocked = true;
		s->throttled++;
		*count = s->throttled;
		*audit_it = s->throttled % AUDIT_EVERY == 1;
	}
	pthread_mutex_unlock(&c->sess_lock);
	return blocked;
}

static void source_failed(struct mt_console *c, const char *addr, int64_t now)
{
	struct source *s;

	pthread_mutex_lock(&c->sess_lock);
	s = source_slot(c, addr, now, true);
	s->fails++;
	s->last = now;
	if (s->fails < SOURCE_FAILS_MAX)
		s->throttled = 0;
	pthread_mutex_unlock(&c->sess_lock);
}

static struct ghost *ghost_slot(struct mt_console *c, const uint8_t h[32], bool create)
{
	struct ghost *oldest = &c->ghosts[0];

	for (int i = 0; i < GHOSTS_MAX; i++) {
		struct ghost *g = &c->ghosts[i];

		if (g->last != 0 && CRYPTO_memcmp(g->name_hash, h, 32) == 0)
			return g;
		if (g->last < oldest->last)
			oldest = g;
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof *oldest);
	memcpy(oldest->name_hash, h, 32);
	return oldest;
}

/* Is the unknown name `name` locked like an account would be? */
static bool ghost_locked(struct mt_console *c, const char *name, int64_t now)
{
	uint8_t h[32];
	struct ghost *g;
	bool locked;

	hash_text(name, h);
	pthread_mutex_lock(&c->sess_lock);
	g = ghost_slot(c, h, false);
	locked = g != NULL && g->locked_until > now;
	pthread_mutex_unlock(&c->sess_lock);
	return locked;
}

/* A failure for an unknown name; true when it locked the name now. */
static bool ghost_failed(struct mt_console *c, const char *name, int64_t now)
{
	uint8_t h[32];
	struct ghost *g;
	bool locked_now = false;

	hash_text(name, h);
	pthread_mutex_lock(&c->sess_lock);
	g = ghost_slot(c, h, true);
	if (g->locked_until != 0 && g->locked_until <= now) {
		g->fails = 0;
		g->locked_until = 0;
	}
	g->fails++;
	g->last = now;
	if (g->fails >= MT_USERS_MAX_FAILS && g->locked_until == 0) {
		g->locked_until = now + MT_USERS_LOCK_S;
		locked_now = true;
	}
	pthread_mutex_unlock(&c->sess_lock);
	return locked_now;
}

/* ---- forms ------------------------------------------------------------------------------------ */

bool con_ctype_form(const char *ct)
{
	static const char want[] = "application/x-www-form-urlencoded";
	size_t n = sizeof want - 1;

	if (ct == NULL)
		return false;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Parse the POST body into *f; false with the answer set on refusal. */
bool con_read_form(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, struct mt_form *f)
{
	f->n = 0;
	if (!con_ctype_form(rq->content_type)) {
		con_message(c, rs, 415, NULL, "Unsupported form", "The form was not sent as "
		             "application/x-www-form-urlencoded.");
		return false;
	}
	if (rq->body_len > MT_FORM_BODY_MAX) {
		con_message(c, rs, 413, NULL, "Form too large", "The form is larger than 4 KiB.");
		return false;
	}
	if (mt_form_parse(rq->body, rq->body_len, f) != MT_OK) {
		con_message(c, rs, 400, NULL, "Bad form", "The form could not be read.");
		return false;
	}
	return true;
}

void con_csrf_refused(struct mt_console *c, const struct mt_https_req *rq,
                         struct mt_https_resp *rs, const char *user)
{
	con_audit(c, user, rq, "console.csrf.refused", user, MT_AUDIT_REFUSED, "\"method\":\"POST\"");
	con_message(c, rs, 403, NULL, "Request refused",
	             "The form was stale or did not come from this console. Go back, reload the "
	             "page and try again.");
}

/* ---- sign in, password, sign out ------------------------------------------------------------ */

static const char bad_credentials[] = "The user name, password or code is wrong.";
static const char locked_text[] =
        "Too many failed sign-ins. Try again later, or ask an administrator to reset the "
        "account.";

static void do_login(struct mt_console *c, const struct mt_https_req *rq,
                     struct mt_https_resp *rs, int64_t now)
{
	struct mt_form *f = calloc(1, sizeof *f);
	char cookie[TOKEN_B64 + 2], want[TOKEN_B64 + 1], js[2][200], ex[64];
	const char *user, *pw, *code, *field;
	struct mt_user u;
	struct session s;
	enum mt_login verdict = MT_LOGIN_BAD;
	bool audit_it = false, valid_name;
	uint64_t count = 0;
	enum mt_err e;

	if (f == NULL) {
		rs->status = 503;
		return;
	}
	if (!con_read_form(c, rq, rs, f))
		goto out;
	field = mt_form_get(f, "csrf");
	if (mt_form_cookie(rq->cookie, COOKIE_LOGIN, cookie, sizeof cookie) != MT_OK ||
	    !con_token_shape(cookie) || !login_mac(c, cookie, want) || !con_token_equal(field, want)) {
		con_csrf_refused(c, rq, rs, NULL);
		goto out;
	}
	user = mt_form_get(f, "user");
	pw = mt_form_get(f, "password");
	code = mt_form_get(f, "code");
	if (code != NULL && code[0] == '\0')
		code = NULL;
	if (user == NULL || pw == NULL || user[0] == '\0' || pw[0] == '\0') {
		login_page(c, rs, 400, "Give a user name and a password.");
		goto out;
	}
	valid_name = mt_user_name_valid(user);
	mt_deploy_json_str(user, js[0], 100); /* the name as typed, cut short */
	if (source_blocked(c, rq->source, now, &audit_it, &count)) {
		if (audit_it) {
			(void)snprintf(ex, sizeof ex, "%" PRIu64, count);
			con_audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_REFUSED,
			      "\"user\":%s,\"reason\":\"source_throttled\",\"refused_in_a_row\":%s",
			      js[0], ex);
		}
		login_page(c, rs, 429, locked_text);
		goto out;
	}
	memset(&u, 0, sizeof u);
	if (ghost_locked(c, user, now)) {
		/* an unknown name that failed as often as locks an account: the
		 * answer of a locked account, at its cost (no hashing) */
		verdict = MT_LOGIN_LOCKED;
		e = MT_OK;
	} else {
		pthread_mutex_lock(&c->login_lock);
		e = valid_name ? mt_users_get(c->users, user, &u) : MT_ERR_NOT_FOUND;
		if (e == MT_ERR_NOT_FOUND) {
			/* the dummy hash: an account's cost, then an account's answer */
			e = mt_users_login(c->users, user, pw, now, &verdict, NULL);
			verdict = ghost_failed(c, user, now) ? MT_LOGIN_LOCKED_NOW : MT_LOGIN_BAD;
		} else if (e == MT_OK) {
			e = mt_users_sign_in(c->users, user, pw, code, c->kek, now, &verdict, &u);
		}
		pthread_mutex_unlock(&c->login_lock);
	}
	if (e != MT_OK) {
		con_audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_ERROR,
		      "\"user\":%s,\"reason\":\"users_unavailable\",\"error\":%s", js[0],
		      mt_deploy_json_str(mt_err_str(e), js[1], sizeof js[1]));
		login_page(c, rs, 503, "Sign-in is unavailable right now. Try again later.");
		goto out;
	}
	switch (verdict) {
	case MT_LOGIN_OK:
		if (!session_new(c, rq, rs, &u, now, &s)) {
			rs->status = 503;
			goto out;
		}
		set_cookie(rs, COOKIE_LOGIN, "", "/login", 0);
		con_audit(c, u.name, rq, "console.login", u.name, MT_AUDIT_OK,
		      "\"user\":%s,\"role\":\"%s\",\"must_change\":%s", js[0], mt_role_name(u.role),
		      u.must_change ? "true" : "false");
		con_redirect(rs, first_step(&s) ? first_step(&s) : home_of(u.role));
		OPENSSL_cleanse(&s, sizeof s);
		break;
	case MT_LOGIN_LOCKED_NOW:
		source_failed(c, rq->source, now);
		con_audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_REFUSED,
		      "\"user\":%s,\"reason\":\"bad_credentials\"", js[0]);
		(void)snprintf(ex, sizeof ex, "%d", MT_USERS_LOCK_S);
		con_audit(c, NULL, rq, "console.lockout", valid_name ? user : NULL, MT_AUDIT_REFUSED,
		      "\"user\":%s,\"failures\":%d,\"locked_s\":%s", js[0], MT_USERS_MAX_FAILS, ex);
		login_page(c, rs, 429, locked_text);
		break;
	case MT_LOGIN_LOCKED:
		con_audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_REFUSED,
		      "\"user\":%s,\"reason\":\"locked\"", js[0]);
		login_page(c, rs, 429, locked_text);
		break;
	case MT_LOGIN_EXPIRED: /* only after the right password: nothing to hide */
		con_audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_REFUSED,
		          "\"user\":%s,\"reason\":\"one_time_expired\"", js[0]);
		login_page(c, rs, 401, "This one-time password has expired. Ask an administrator "
		           "for a new one.");
		break;
	default:
		source_failed(c, rq->source, now);
		con_audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_REFUSED,
		      "\"user\":%s,\"reason\":\"bad_credentials\"", js[0]);
		login_page(c, rs, 401, bad_credentials);
		break;
	}
out:
	mt_form_wipe(f);
	free(f);
	OPENSSL_cleanse(cookie, sizeof cookie);
}

static void do_password(struct mt_console *c, const struct mt_https_req *rq,
                        struct mt_https_resp *rs, const struct session *s, int64_t now)
{
	struct mt_form *f = calloc(1, sizeof *f);
	const char *cur, *next, *rep, *why = NULL;
	enum mt_login verdict = MT_LOGIN_BAD;
	struct mt_user u;
	enum mt_err e;

	if (f == NULL) {
		rs->status = 503;
		return;
	}
	if (!con_read_form(c, rq, rs, f))
		goto out;
	if (!con_token_equal(mt_form_get(f, "csrf"), s->csrf)) {
		con_csrf_refused(c, rq, rs, s->user);
		goto out;
	}
	cur = mt_form_get(f, "current");
	next = mt_form_get(f, "new");
	rep = mt_form_get(f, "repeat");
	if (cur == NULL || next == NULL || rep == NULL) {
		password_page(c, rs, 400, s, "Fill in every field.");
		goto out;
	}
	if (strcmp(next, rep) != 0) {
		password_page(c, rs, 400, s, "The two new passwords differ.");
		goto out;
	}
	pthread_mutex_lock(&c->login_lock);
	e = mt_users_change_password(c->users, s->user, cur, next, now, &verdict, &why);
	if (e == MT_OK)
		e = mt_users_get(c->users, s->user, &u);
	pthread_mutex_unlock(&c->login_lock);
	if (verdict == MT_LOGIN_LOCKED || verdict == MT_LOGIN_LOCKED_NOW) {
		session_drop_user(c, s->user);
		set_cookie(rs, COOKIE_SESSION, "", "/", 0);
		con_audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_REFUSED,
		      "\"reason\":\"%s\"", verdict == MT_LOGIN_LOCKED ? "locked" : "bad_current");
		if (verdict == MT_LOGIN_LOCKED_NOW)
			con_audit(c, s->user, rq, "console.lockout", s->user, MT_AUDIT_REFUSED,
			      "\"failures\":%d,\"locked_s\":%d", MT_USERS_MAX_FAILS, MT_USERS_LOCK_S);
		login_page(c, rs, 429, locked_text);
		goto out;
	}
	if (verdict != MT_LOGIN_OK) {
		con_audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_REFUSED,
		      "\"reason\":\"bad_current\"");
		password_page(c, rs, 401, s, "The current password is wrong.");
		goto out;
	}
	if (e == MT_ERR_ARG && why != NULL) {
		con_audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_REFUSED,
		      "\"reason\":\"policy\"");
		password_page(c, rs, 400, s, why);
		goto out;
	}
	if (e != MT_OK) {
		con_audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_ERROR,
		      "\"reason\":\"users_unavailable\"");
		password_page(c, rs, 503, s, "The password could not be changed. Try again later.");
		goto out;
	}
	/* A new session id for the new password (and the old one gone). */
	if (!session_new(c, rq, rs, &u, now, NULL)) {
		rs->status = 503;
		goto out;
	}
	con_audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_OK, "\"was_one_time\":%s",
	      s->must_change ? "true" : "false");
	con_redirect(rs, s->need_totp && c->admin_mfa ? "/totp" : home_of(s->role));
out:
	mt_form_wipe(f);
	free(f);
}

static void do_logout(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, const struct session *s, int64_t now)
{
	struct mt_form *f = calloc(1, sizeof *f);

	if (f == NULL) {
		rs->status = 503;
		return;
	}
	if (!con_read_form(c, rq, rs, f))
		goto out;
	if (!con_token_equal(mt_form_get(f, "csrf"), s->csrf)) {
		con_csrf_refused(c, rq, rs, s->user);
		goto out;
	}
	session_drop(c, rq, now);
	set_cookie(rs, COOKIE_SESSION, "", "/", 0);
	con_audit(c, s->user, rq, "console.logout", s->user, MT_AUDIT_OK, "\"session\":\"ended\"");
	con_redirect(rs, "/login");
out:
	mt_form_wipe(f);
	free(f);
}

/* ---- the ward page ------------------------------------------------------------------------------- */

static struct pcache *cache_for(struct mt_console *c, int64_t pid)
{
	for (size_t i = 0; i < c->n_cache; i++)
		if (c->cache[i].pid == pid)
			return &c->cache[i];
	if (c->n_cache == PATIENTS_MAX)
		return NULL;
	memset(&c->cache[c->n_cache], 0, sizeof c->cache[c->n_cache]);
	c->cache[c->n_cache].pid = pid;
	return &c->cache[c->n_cache++];
}

/* Fold one decrypted reading into the patient's newest values. */
static void fold_reading(struct mt_console *c, struct pcache *pc, const struct mt_store_row *row)
{
	struct mt_cose_sign1 s1;
	struct mt_message m;

	if (row->received_ms > pc->newest_rx_ms)
		pc->newest_rx_ms = row->received_ms;
	if (row->typ != MT_TYP_VITALS)
		return;
	if (mt_cose_sign1_decode(row->sign1, row->sign1_len, true, &s1) != MT_OK ||
	    s1.payload == NULL ||
	    mt_message_decode(s1.payload, s1.payload_len, &m, c->obs, MT_OBS_MAX, NULL) != MT_OK)
		return; /* verified at ingest; nothing to show if it no longer decodes */
	for (size_t i = 0; i < m.n_obs; i++) {
		const struct mt_obs *o = &c->obs[i];
		uint64_t t;

		if (o->waveform || !mt_message_obs_time(&m, o, &t))
			continue;
		for (int q = 0; q < Q__N; q++) {
			struct latest *l = &pc->q[q];

			if (qtys[q].code != o->code)
				continue;
			if (l->has && l->t_ms > t)
				break;
			l->has = true;
			l->v = mt_num_to_double(&o->value);
			l->places = o->has_places && o->places <= 6 ? o->places : qtys[q].places;
			l->t_ms = t;
			break;
		}
	}
}

/* Bring the patient's newest values up to date (under store_lock). */
static enum mt_err refresh_patient(struct mt_console *c, struct pcache *pc)
{
	int64_t ids[BACKFILL], top = pc->last_id;
	size_t n = 0;
	enum mt_err e = mt_store_latest_reading_ids(c->store, pc->pid, pc->last_id, BACKFILL, ids,
	                                            &n);

	if (e != MT_OK)
		return e;
	for (size_t i = 0; i < n; i++) {
		struct mt_store_row row;

		memset(&row, 0, sizeof row);
		e = mt_store_reading_get(c->store, ids[i], &row);
		if (e == MT_OK)
			fold_reading(c, pc, &row);
		mt_store_row_clear(&row);
		if (e != MT_OK && e != MT_ERR_STORE_TAMPERED && e != MT_ERR_NOT_FOUND)
			return e;
		if (ids[i] > top)
			top = ids[i];
	}
	pc->last_id = top;
	return MT_OK;
}

static void out_value(struct out *o, const struct latest *l)
{
	con_fmt(o, "%.*f", (int)l->places, l->v);
}

struct row {
	struct mt_patient p;
	char devs[DEVICES_SHOWN][MT_DEVICE_ID_MAX + 1];
	size_t n_devs;
	struct pcache pc;
	bool has_pc;
	struct mt_news2_row n2; /* the newest score; at_ms 0: none */
};

/* The open alarms of the wards shown (for the first paint of the tiles;
 * the live stream keeps them current). */
#define ALARMS_SHOWN 512
#define N2_ROWS 1024               /* NEWS2 rows read for the newest */
#define N2_SINCE_MS (15 * 60 * 1000ull)
enum mt_err con_alarm_keep(void *ctx, const struct mt_alarm *a)
{
	struct alarm_set *set = ctx;
	struct alarm_brief *b;

	if (a->patient_id < 1 || set->n >= set->cap)
		return MT_OK;
	b = &set->a[set->n++];
	b->id = a->id;
	b->patient = a->patient_id;
	b->prio = a->prio;
	b->acked = strcmp(a->state, "acknowledged") == 0;
	(void)snprintf(b->text, sizeof b->text, "%s", a->text);
	return MT_OK;
}

const char *con_prio_word(unsigned p)
{
	return p == MT_PRIO_HIGH ? "high" : p == MT_PRIO_MEDIUM ? "medium" : p == MT_PRIO_LOW ? "low"
	                                                                                   : "none";
}

/* NEWS2's clinical response band (clinical.md §2): 0 none, 1-4 low, a
 * single parameter of 3 low-medium, 5-6 medium, 7+ high. */
const char *con_news2_band(const struct mt_news2_row *n)
{
	if (n->score >= 7)
		return "high";
	if (n->score >= 5)
		return "medium";
	if (n->any_three)
		return "lowmed";
	return n->score > 0 ? "low" : "zero";
}

/* One alarm as the tiles and the patient page show it: its priority's
 * colour, flashing while unacknowledged (IEC 60601-1-8), a button to
 * acknowledge it. */
void con_alarm_item(struct out *o, const struct alarm_brief *b)
{
	con_fmt(o, "<li class=\"alarm p-%s%s\" data-alarm=\"%" PRId64 "\"><span class=\"at\">",
	        con_prio_word(b->prio), b->acked ? " acked" : "", b->id);
	con_text(o, b->text);
	con_lit(o, "</span>");
	if (b->acked)
		con_lit(o, " <span class=\"ackd\">acknowledged</span>");
	else
		con_fmt(o, " <button type=\"button\" class=\"ack\" data-ack=\"%" PRId64
		        "\">Acknowledge</button>", b->id);
	con_lit(o, "</li>");
}

static void ward_tile(struct out *o, const struct row *r, const struct alarm_brief *alarms,
                      size_t n_alarms, int64_t now, uint64_t now_ms)
{
	static const int cols[] = {Q_HR, Q_SPO2, Q_RR, Q_TEMP, Q_SYS, Q_GLU};
	uint64_t rx = r->has_pc ? r->pc.newest_rx_ms : 0;
	bool stale = rx == 0 || (now_ms > rx && now_ms - rx > (uint64_t)STALE_S * 1000);

	con_fmt(o, "<article class=\"tile%s\" id=\"p%" PRId64 "\" data-patient=\"%" PRId64
	        "\" data-rx=\"%" PRIu64 "\"><a class=\"who\" href=\"/patient/%" PRId64
	        "\"><span class=\"bed\">",
	        stale ? " stale" : "", r->p.id, r->p.id, rx, r->p.id);
	con_text(o, r->p.bed[0] ? r->p.bed : "\xe2\x80\x94");
	con_lit(o, "</span> <span class=\"name\">");
	con_text(o, r->p.name);
	con_lit(o, "</span> <span class=\"mrn\">");
	con_text(o, r->p.mrn);
	con_lit(o, "</span></a>");
	if (r->n2.at_ms != 0)
		con_fmt(o, "<div class=\"news2 b-%s\" data-news2><span>NEWS2</span> <b>%d</b></div>",
		        con_news2_band(&r->n2), r->n2.score);
	else
		con_lit(o, "<div class=\"news2 b-none\" data-news2><span>NEWS2</span> <b>\xe2\x80\x94"
		           "</b></div>");
	con_lit(o, "<div class=\"vals\">");
	for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
		int q = cols[k];
		const struct latest *l = r->has_pc ? &r->pc.q[q] : NULL;

		/* heart rate from the ECG, else the pulse rate of the oximeter */
		if (q == Q_HR && (l == NULL || !l->has) && r->has_pc)
			l = &r->pc.q[Q_PR];
		con_fmt(o, "<div class=\"q\"><span class=\"l\">%s</span> <span class=\"v\">",
		        qtys[q].label);
		if (q == Q_HR)
			con_fmt(o, "<span data-c=\"%" PRIu32 " %" PRIu32 "\" data-p=\"0\">",
			        qtys[Q_HR].code, qtys[Q_PR].code);
		else
			con_fmt(o, "<span data-c=\"%" PRIu32 "\" data-p=\"%u\">", qtys[q].code,
			        (unsigned)qtys[q].places);
		if (l != NULL && l->has)
			out_value(o, l);
		else
			con_lit(o, "\xe2\x80\x94");
		con_lit(o, "</span>");
		if (q == Q_SYS) {
			const struct latest *d = r->has_pc ? &r->pc.q[Q_DIA] : NULL;

			con_fmt(o, "/<span data-c=\"%" PRIu32 "\" data-p=\"0\">", qtys[Q_DIA].code);
			if (d != NULL && d->has)
				out_value(o, d);
			else
				con_lit(o, "\xe2\x80\x94");
			con_lit(o, "</span>");
		}
		con_lit(o, "</span> <span class=\"u\">");
		con_text(o, qtys[q].unit);
		con_lit(o, "</span></div>");
	}
	con_lit(o, "</div><ul class=\"alarms\" data-alarms>");
	for (size_t i = 0; i < n_alarms; i++)
		if (alarms[i].patient == r->p.id)
			con_alarm_item(o, &alarms[i]);
	con_lit(o, "</ul><p class=\"fresh\" data-fresh>");
	if (rx == 0)
		con_lit(o, "no data yet");
	else if (stale)
		con_fmt(o, "no data for %" PRIu64 " s", (now_ms - rx) / 1000);
	else
		con_fmt(o, "%" PRIu64 " s ago", now_ms > rx ? (now_ms - rx) / 1000 : 0);
	con_lit(o, "</p></article>");
	(void)now;
}

static int bed_cmp(const char *a, const char *b)
{
	char *ea, *eb;
	unsigned long x = strtoul(a, &ea, 10), y = strtoul(b, &eb, 10);

	if (a[0] >= '0' && a[0] <= '9' && b[0] >= '0' && b[0] <= '9' && *ea == '\0' &&
	    *eb == '\0')
		return x < y ? -1 : x > y;
	return strcmp(a, b);
}

static int row_cmp(const void *pa, const void *pb)
{
	const struct row *a = pa, *b = pb;
	int k = strcmp(a->p.ward, b->p.ward);

	if (k == 0)
		k = bed_cmp(a->p.bed, b->p.bed);
	if (k == 0)
		k = a->p.id < b->p.id ? -1 : a->p.id > b->p.id;
	return k;
}

bool con_patient_read(struct mt_console *c, int64_t id, struct mt_patient *p, size_t *failed,
                      enum mt_err *e)
{
	enum mt_err pe = mt_store_patient_get(c->store, id, p);

	if (pe == MT_OK)
		return true;
	mt_wipe(p, sizeof *p);
	(*failed)++;
	if (pe != MT_ERR_STORE_TAMPERED && pe != MT_ERR_NOT_FOUND)
		*e = pe;
	return false;
}

static void ward_page(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, struct session *s, int64_t now)
{
	struct row *rows = NULL;
	size_t n = 0, total = 0, shown = 0, failed = 0, n_alarms = 0;
	struct out o = {0};
	uint64_t now_ms = mt_deploy_now_ms();
	enum mt_err e = MT_OK;
	struct mt_live_filter lf;
	struct alarm_set set = {NULL, 0, ALARMS_SHOWN};
	struct mt_news2_row *n2 = NULL;
	struct alarm_brief *alarms = NULL;
	bool audit_view;

	if (!con_session_filter(c, s, &lf)) {
		con_message(c, rs, 503, s, "Wards unavailable", "Your wards could not be read just now.");
		return;
	}
	pthread_mutex_lock(&c->store_lock);
	if (c->store == NULL) {
		pthread_mutex_unlock(&c->store_lock);
		con_message(c, rs, 503, s, "Readings unavailable",
		             "The readings store could not be opened; see the hub's log.");
		return;
	}
	e = mt_store_patient_ids(c->store, c->ids, PATIENTS_MAX, &total);
	n = e == MT_OK ? (total < PATIENTS_MAX ? total : PATIENTS_MAX) : 0;
	n2 = calloc(N2_ROWS, sizeof *n2);
	alarms = calloc(ALARMS_SHOWN, sizeof *alarms);
	if (n2 == NULL || alarms == NULL)
		e = MT_ERR_NOMEM;
	if (n > 0 && e == MT_OK) {
		rows = calloc(n, sizeof *rows);
		if (rows == NULL)
			e = MT_ERR_NOMEM;
	}
	for (size_t i = 0; e == MT_OK && i < n; i++) {
		struct row *r = &rows[shown];
		struct pcache *pc;
		size_t k = 0;
		enum mt_err pe;

		if (!con_patient_read(c, c->ids[i], &r->p, &failed, &e))
			continue;
		if (!con_filter_allows(&lf, r->p.ward)) { /* not a ward of this clinician's (F09) */
			mt_wipe(&r->p, sizeof r->p);
			continue;
		}
		pe = mt_store_patient_devices(c->store, r->p.id, r->devs, DEVICES_SHOWN, &r->n_devs);
		if (pe != MT_OK)
			r->n_devs = 0;
		pc = cache_for(c, r->p.id);
		if (pc != NULL && refresh_patient(c, pc) == MT_OK) {
			r->pc = *pc;
			r->has_pc = true;
		}
		if (mt_store_news2_history(c->store, r->p.id, now_ms - N2_SINCE_MS, n2, N2_ROWS, &k) ==
		            MT_OK &&
		    k > 0)
			r->n2 = n2[k - 1];
		shown++;
	}
	set.a = alarms;
	if (e == MT_OK && mt_store_alarms(c->store, true, 0, ALARMS_SHOWN, con_alarm_keep, &set) != MT_OK)
		set.n = 0; /* the stream brings them */
	n_alarms = set.n;
	pthread_mutex_unlock(&c->store_lock);
	free(n2);
	if (e != MT_OK) {
		if (rows != NULL)
			mt_wipe(rows, n * sizeof *rows);
		free(rows);
		free(alarms);
		fprintf(stderr, "medtrustd: console: reading the ward: %s\n", mt_err_str(e));
		con_message(c, rs, 503, s, "Readings unavailable",
		             "The readings store could not be read just now; try again.");
		return;
	}
	if (shown > 1)
		qsort(rows, shown, sizeof *rows, row_cmp);

	pthread_mutex_lock(&c->sess_lock);
	{
		int i = session_find(c, rq, now, false);

		audit_view = i >= 0 && now - c->sess[i].viewed >= VIEW_AUDIT_S;
		if (audit_view)
			c->sess[i].viewed = now;
	}
	pthread_mutex_unlock(&c->sess_lock);
	if (audit_view)
		con_audit(c, s->user, rq, "console.ward.view", NULL, MT_AUDIT_OK, "\"patients\":%zu",
		      shown);

	con_page_start(c, &o, "Wards", s, "console.js ward.js");
	con_fmt(&o, "<div id=\"board\" data-now=\"%" PRIu64 "\" data-stale=\"%d\" data-csrf=\"",
	        now_ms, STALE_S);
	con_text(&o, s->csrf);
	con_lit(&o, "\"><h1>Wards</h1><p id=\"broken\" class=\"broken\" role=\"alert\" hidden>"
	            "Live updates interrupted \xe2\x80\x94 the values below may be old. "
	            "Reconnecting\xe2\x80\xa6</p>");
	if (shown == 0)
		con_lit(&o, "<p class=\"none\">No patients on your wards.</p>");
	for (size_t i = 0; i < shown; i++) {
		const struct row *r = &rows[i];

		if (i == 0 || strcmp(r->p.ward, rows[i - 1].p.ward) != 0) {
			if (i > 0)
				con_lit(&o, "</div></section>");
			con_lit(&o, "<section class=\"ward\"><h2>");
			con_text(&o, r->p.ward[0] ? r->p.ward : "(no ward)");
			con_lit(&o, "</h2><div class=\"tiles\">");
		}
		ward_tile(&o, r, alarms, n_alarms, now, now_ms);
	}
	if (shown > 0)
		con_lit(&o, "</div></section>");
	if (total > n || failed > 0)
		con_fmt(&o, "<p class=\"note\">%zu of %zu patients shown%s.</p>", shown, total,
		        failed ? " (some records could not be decrypted; see verify-record)" : "");
	con_lit(&o, "</div><footer>Each tile shows the newest value of each quantity, live. "
	            "A tile turns grey with \xe2\x80\x9cno data\xe2\x80\x9d when no reading reached "
	            "the hub for over ");
	con_fmt(&o, "%d s (the device may be offline). Alarms flash: red high priority, yellow "
	        "medium; an acknowledged alarm stays lit without flashing.</footer>",
	        STALE_S);
	con_page_end(&o);
	if (rows != NULL)
		mt_wipe(rows, n * sizeof *rows);
	free(rows);
	free(alarms);
	con_send_page(rs, 200, &o);
}

/* ---- dispatch ------------------------------------------------------------------------------------- */

/* ---- the live stream and alarms (JSON; docs/alarms.md) -------------------------------------- */

void con_api_answer(struct mt_https_resp *rs, int status, char *json)
{
	rs->status = json != NULL ? status : 503;
	rs->content_type = "application/json";
	rs->body = (uint8_t *)json;
	rs->body_len = json != NULL ? strlen(json) : 0;
}

void con_api_error(struct mt_https_resp *rs, int status, const char *why)
{
	char buf[256];

	(void)snprintf(buf, sizeof buf, "{\"error\":\"%s\"}", why);
	con_api_answer(rs, status, strdup(buf));
}

static enum mt_err ward_add(void *ctx, const char *ward)
{
	struct mt_live_filter *f = ctx;

	if (f->n_wards < MT_LIVE_WARDS_MAX)
		(void)snprintf(f->wards[f->n_wards++], sizeof f->wards[0], "%s", ward);
	return MT_OK;
}

/* What a session may see: every ward (admin, biomed, auditor), or a
 * clinician's own wards (F13). */
bool con_session_filter(struct mt_console *c, const struct session *s,
                           struct mt_live_filter *f)
{
	bool ok;

	memset(f, 0, sizeof *f);
	(void)snprintf(f->user, sizeof f->user, "%s", s->user);
	if (s->role != MT_ROLE_CLINICIAN) {
		f->all = true;
		return true;
	}
	pthread_mutex_lock(&c->login_lock);
	ok = mt_users_wards(c->users, s->user, ward_add, f) == MT_OK;
	pthread_mutex_unlock(&c->login_lock);
	return ok;
}

bool con_filter_allows(const struct mt_live_filter *f, const char *ward)
{
	if (f->all)
		return true;
	for (size_t i = 0; i < f->n_wards; i++)
		if (strcmp(f->wards[i], ward) == 0)
			return true;
	return false;
}

/* What a new stream is handed: its filter and the live hub. */
struct stream_ctx {
	struct mt_live_filter f;
	struct mt_live *live;
};

static void stream_open(void *ctx, struct mt_https_stream *st)
{
	struct stream_ctx *sc = ctx;

	(void)mt_live_subscribe(sc->live, st, &sc->f);
	free(sc);
}

static void api_stream(struct mt_console *c, const struct mt_https_req *rq,
                       struct mt_https_resp *rs, const struct session *s)
{
	struct stream_ctx *sc = calloc(1, sizeof *sc);

	if (c->live == NULL || sc == NULL) {
		free(sc);
		con_api_error(rs, 503, "no live stream on this hub");
		return;
	}
	if (!con_session_filter(c, s, &sc->f)) {
		free(sc);
		con_api_error(rs, 503, "wards unavailable");
		return;
	}
	sc->live = c->live;
	sc->f.has_session = true;
	memcpy(sc->f.session, s->hash, sizeof sc->f.session);
	con_audit(c, s->user, rq, "console.stream.open", s->user, MT_AUDIT_OK,
	      "\"wards\":%zu,\"all\":%s", sc->f.n_wards, sc->f.all ? "true" : "false");
	rs->status = 200;
	rs->content_type = "text/event-stream";
	rs->stream_open = stream_open;
	rs->stream_ctx = sc;
}

struct alarm_list {
	struct mt_console *c;
	struct mt_live_filter f;
	struct out o;
	size_t n;
};

static enum mt_err alarm_json(void *ctx, const struct mt_alarm *a)
{
	struct alarm_list *l = ctx;
	char ward[65] = "", line[1400], text[2 * MT_ALARM_TEXT_MAX + 8], wj[160];

	if (a->patient_id > 0)
		mt_clinical_patient_ward(l->c->clin, a->patient_id, ward, sizeof ward);
	if (!con_filter_allows(&l->f, ward))
		return MT_OK;
	(void)snprintf(line, sizeof line,
	               "%s{\"alarm\":%" PRId64 ",\"patient\":%" PRId64 ",\"ward\":%s,"
	               "\"device\":\"%s\",\"cond\":\"%s\",\"type\":\"%s\",\"priority\":%u,"
	               "\"state\":\"%s\",\"text\":%s,\"raised_ms\":%" PRIu64 ",\"acked_ms\":%" PRIu64
	               ",\"acked_by\":\"%s\",\"escalated_ms\":%" PRIu64 ",\"readings\":\"%s\"}",
	               l->n ? "," : "", a->id, a->patient_id,
	               mt_deploy_json_str(ward, wj, sizeof wj), a->dev, a->cond, a->type, a->prio,
	               a->state, mt_deploy_json_str(a->text, text, sizeof text), a->raised_ms,
	               a->acked_ms, a->acked_by, a->escalated_ms, a->readings);
	con_lit(&l->o, line);
	l->n++;
	return MT_OK;
}

static void api_alarms(struct mt_console *c, const struct mt_https_req *rq,
                       struct mt_https_resp *rs, const struct session *s)
{
	struct alarm_list l;
	bool all = rq->query != NULL && strcmp(rq->query, "all=1") == 0;
	enum mt_err e;

	memset(&l, 0, sizeof l);
	l.c = c;
	if (c->clin == NULL || c->store == NULL || !con_session_filter(c, s, &l.f)) {
		con_api_error(rs, 503, "alarms unavailable");
		return;
	}
	con_lit(&l.o, "{\"alarms\":[");
	pthread_mutex_lock(&c->store_lock);
	e = mt_store_alarms(c->store, !all, 0, 500, alarm_json, &l);
	pthread_mutex_unlock(&c->store_lock);
	con_lit(&l.o, "]}");
	if (e != MT_OK || l.o.failed) {
		con_free(&l.o);
		con_api_error(rs, 503, "alarms unavailable");
		return;
	}
	rs->status = 200;
	rs->content_type = "application/json";
	rs->body = (uint8_t *)l.o.p;
	rs->body_len = l.o.n;
}

/* POST /api/alarms/ack (form: id, csrf).  Clinical rights: a clinician
 * for an alarm of their wards; a biomedical engineer for a technical
 * alarm; nobody else (F12).  Every refusal is audited; the transition
 * itself is audited by the engine with the user as actor. */
static void api_ack(struct mt_console *c, const struct mt_https_req *rq,
                    struct mt_https_resp *rs, const struct session *s)
{
	struct mt_form f;
	const char *id_s, *csrf;
	struct mt_alarm a;
	struct mt_live_filter lf;
	char ward[65] = "";
	int64_t id = 0;
	enum mt_err e;
	bool ok;

	if (!con_ctype_form(rq->content_type) || rq->body_len > MT_FORM_BODY_MAX ||
	    mt_form_parse(rq->body, rq->body_len, &f) != MT_OK) {
		con_api_error(rs, 400, "bad form");
		return;
	}
	csrf = mt_form_get(&f, "csrf");
	if (csrf == NULL || !con_token_shape(csrf) || !con_token_equal(csrf, s->csrf)) {
		con_audit(c, s->user, rq, "console.csrf.refused", s->user, MT_AUDIT_REFUSED,
		      "\"method\":\"POST\"");
		con_api_error(rs, 403, "missing or wrong CSRF token");
		return;
	}
	id_s = mt_form_get(&f, "id");
	for (const char *q = id_s; q != NULL && *q; q++) {
		if (*q < '0' || *q > '9' || id > (INT64_MAX - 9) / 10) {
			id = 0;
			break;
		}
		id = id * 10 + (*q - '0');
	}
	if (id < 1 || c->clin == NULL || c->store == NULL) {
		con_api_error(rs, 400, "no such alarm");
		return;
	}
	pthread_mutex_lock(&c->store_lock);
	e = mt_store_alarm_get(c->store, id, &a);
	pthread_mutex_unlock(&c->store_lock);
	if (e != MT_OK) {
		con_api_error(rs, 404, "no such alarm");
		return;
	}
	if (a.patient_id > 0)
		mt_clinical_patient_ward(c->clin, a.patient_id, ward, sizeof ward);
	ok = (s->role == MT_ROLE_CLINICIAN && con_session_filter(c, s, &lf) &&
	      con_filter_allows(&lf, ward)) ||
	     (s->role == MT_ROLE_BIOMED && strcmp(a.type, "ST") == 0);
	if (!ok) {
		con_audit(c, s->user, rq, "alarm.ack", s->user, MT_AUDIT_REFUSED,
		      "\"alarm\":%" PRId64 ",\"role\":\"%s\"", id, mt_role_name(s->role));
		con_api_error(rs, 403, "your role may not acknowledge this alarm");
		return;
	}
	e = mt_clinical_ack(c->clin, id, s->user);
	if (e == MT_ERR_REFUSED) {
		con_api_error(rs, 409, "the alarm is not active");
		return;
	}
	if (e != MT_OK) {
		con_api_error(rs, 503, "the acknowledgement could not be recorded");
		return;
	}
	con_api_error(rs, 200, "acknowledged");
}

/* ---- shared by the views (console_int.h) ------------------------------------------ */

void con_json(struct out *o, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *buf;

	if (n > PAGE_MAX / 7 || o->failed) {
		o->failed = true;
		return;
	}
	buf = malloc(6 * n + 3);
	if (buf == NULL) {
		o->failed = true;
		return;
	}
	con_lit(o, mt_deploy_json_str(s ? s : "", buf, 6 * n + 3));
	free(buf);
}

void con_send_json(struct mt_https_resp *rs, int status, struct out *o)
{
	if (o->failed || o->p == NULL) {
		con_free(o);
		con_api_error(rs, 503, "the answer could not be built");
		return;
	}
	rs->status = status;
	rs->content_type = "application/json";
	rs->body = (uint8_t *)o->p;
	rs->body_len = o->n;
	o->p = NULL;
}

bool con_csrf_ok(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
                 const struct session *s, const struct mt_form *f)
{
	const char *t = mt_form_get(f, "csrf");

	if (t != NULL && con_token_shape(t) && con_token_equal(t, s->csrf))
		return true;
	con_csrf_refused(c, rq, rs, s->user);
	return false;
}

int64_t con_parse_id(const char *s)
{
	int64_t v = 0;

	if (s == NULL || *s == '\0' || *s == '0')
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/* A path of ours to come back to: '/', then letters, digits, '/', '-',
 * '_', '.' (device ids have dots; never right after a '/', so no "..")
 * — no scheme, no host, no "//", no query. */
static bool back_path(const char *p)
{
	if (p == NULL || p[0] != '/' || p[1] == '/' || strlen(p) > 128)
		return false;
	for (const char *q = p; *q; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
		      *q == '/' || *q == '-' || *q == '_' || (*q == '.' && q[-1] != '/')))
			return false;
	return true;
}

bool con_recent_auth(struct mt_console *c, struct mt_https_resp *rs, const struct session *s,
                     int64_t now, const char *back)
{
	if (now - s->authed < c->reauth_s && now >= s->authed)
		return true;
	if (back_path(back))
		con_header(rs, "Location", "/reauth?next=%s", back);
	else
		con_header(rs, "Location", "%s", "/reauth");
	rs->status = 303;
	return false;
}

static void reauth_page(struct mt_console *c, struct mt_https_resp *rs, int status,
                        const struct session *s, const char *next, const char *msg)
{
	struct out o = {0};

	con_page_start(c, &o, "Confirm it is you", s, NULL);
	con_lit(&o, "<form class=\"box\" method=\"post\" action=\"/reauth\"><h1>Confirm it is "
	            "you</h1><p>This change needs your password again (it was last given over ");
	con_fmt(&o, "%" PRId64 " minutes ago).</p>", c->reauth_s / 60);
	con_alert(&o, msg);
	con_lit(&o, "<label>Password<input type=\"password\" name=\"password\" "
	            "autocomplete=\"current-password\" required autofocus></label>"
	            "<label>Code (if you have a second factor)<input name=\"code\" "
	            "inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\"></label>"
	            "<input type=\"hidden\" name=\"next\" value=\"");
	con_text(&o, back_path(next) ? next : home_of(s->role));
	con_lit(&o, "\">");
	con_csrf_field(&o, s);
	con_lit(&o, "<button type=\"submit\">Confirm</button></form>");
	con_page_end(&o);
	con_send_page(rs, status, &o);
}

/* GET /reauth?next=PATH, POST /reauth (password, code, next, csrf): the
 * password again, counted toward the lockout like a sign-in (F01, F10). */
static void do_reauth(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, struct session *s, int64_t now)
{
	struct mt_form *f = calloc(1, sizeof *f);
	enum mt_login verdict = MT_LOGIN_BAD;
	struct mt_user u;
	const char *pw, *code, *next;
	enum mt_err e;
	int i;

	if (f == NULL) {
		rs->status = 503;
		return;
	}
	if (strcmp(rq->method, "GET") == 0) {
		next = NULL;
		if (rq->query != NULL && mt_form_parse((const uint8_t *)rq->query, strlen(rq->query),
		                                        f) == MT_OK)
			next = mt_form_get(f, "next");
		reauth_page(c, rs, 200, s, next, NULL);
		goto out;
	}
	if (!con_read_form(c, rq, rs, f) || !con_csrf_ok(c, rq, rs, s, f))
		goto out;
	pw = mt_form_get(f, "password");
	code = mt_form_get(f, "code");
	next = mt_form_get(f, "next");
	if (code != NULL && code[0] == '\0')
		code = NULL;
	if (pw == NULL || pw[0] == '\0') {
		reauth_page(c, rs, 400, s, next, "Give your password.");
		goto out;
	}
	memset(&u, 0, sizeof u);
	pthread_mutex_lock(&c->login_lock);
	e = mt_users_sign_in(c->users, s->user, pw, code, c->kek, now, &verdict, &u);
	pthread_mutex_unlock(&c->login_lock);
	OPENSSL_cleanse(&u, sizeof u);
	if (e != MT_OK || verdict != MT_LOGIN_OK) {
		con_audit(c, s->user, rq, "console.reauth", s->user,
		          e != MT_OK ? MT_AUDIT_ERROR : MT_AUDIT_REFUSED, "\"reason\":\"%s\"",
		          e != MT_OK ? "users_unavailable"
		          : verdict == MT_LOGIN_OK ? "?"
		          : (verdict == MT_LOGIN_LOCKED || verdict == MT_LOGIN_LOCKED_NOW)
		                  ? "locked"
		                  : "bad_credentials");
		if (verdict == MT_LOGIN_LOCKED || verdict == MT_LOGIN_LOCKED_NOW) {
			session_drop_user(c, s->user);
			con_redirect(rs, "/login");
		} else {
			reauth_page(c, rs, e != MT_OK ? 503 : 401, s, next, bad_credentials);
		}
		goto out;
	}
	pthread_mutex_lock(&c->sess_lock);
	i = session_find(c, rq, now, true);
	if (i >= 0)
		c->sess[i].authed = now;
	pthread_mutex_unlock(&c->sess_lock);
	con_audit(c, s->user, rq, "console.reauth", s->user, MT_AUDIT_OK, "\"role\":\"%s\"",
	          mt_role_name(s->role));
	con_redirect(rs, back_path(next) ? next : home_of(s->role));
out:
	mt_form_wipe(f);
	free(f);
}

/* mt_live's guard: does the session a stream was opened in still live?
 * Sign-out, a timeout or a password change end its streams too (F04). */
static bool stream_session_lives(void *arg, const uint8_t session[32])
{
	struct mt_console *c = arg;
	int64_t now = mt_deploy_now();
	bool live = false;

	pthread_mutex_lock(&c->sess_lock);
	for (int i = 0; i < SESSIONS_MAX; i++)
		if (c->sess[i].used && CRYPTO_memcmp(c->sess[i].hash, session, 32) == 0 &&
		    session_live(&c->sess[i], now))
			live = true;
	pthread_mutex_unlock(&c->sess_lock);
	return live;
}

void mt_console_set_clinical(struct mt_console *c, struct mt_live *live, struct mt_clinical *clin)
{
	if (c == NULL)
		return;
	c->live = live;
	c->clin = clin;
	mt_live_set_guard(live, stream_session_lives, c);
}

/* ---- an administrator's second factor (F15) ------------------------------------------------ */

static void totp_page(struct mt_console *c, struct mt_https_resp *rs, int status,
                      const struct session *s, const uint8_t key[32], const char *msg)
{
	char uri[MT_TOTP_URI_MAX], secret[(32 * 8 + 4) / 5 + 1];
	struct out o = {0};

	if (mt_totp_uri("medtrust", s->user, key, 32, uri, sizeof uri) != MT_OK ||
	    mt_base32(key, 32, secret, sizeof secret) != MT_OK) {
		con_message(c, rs, 503, s, "Unavailable", "The key could not be shown.");
		return;
	}
	con_page_start(c, &o, "Second factor", s, NULL);
	con_lit(&o, "<form class=\"box wide\" method=\"post\" action=\"/totp\"><h1>Set up your "
	            "second factor</h1><p>Administrators sign in with a code from an authenticator "
	            "app as well as their password. Add this key to the app (type the secret, or "
	            "give it the link), then type the six-digit code it shows.</p>");
	con_alert(&o, msg);
	con_lit(&o, "<p class=\"otp\">Secret: <code id=\"totp-secret\">");
	con_text(&o, secret);
	con_lit(&o, "</code></p><p class=\"small\">Link: <code id=\"totp-uri\">");
	con_text(&o, uri);
	con_lit(&o, "</code></p><label>Code<input name=\"code\" inputmode=\"numeric\" "
	            "autocomplete=\"one-time-code\" maxlength=\"6\" required autofocus></label>");
	con_csrf_field(&o, s);
	con_lit(&o, "<button type=\"submit\">Confirm</button></form>");
	con_page_end(&o);
	mt_wipe(uri, sizeof uri);
	mt_wipe(secret, sizeof secret);
	con_send_page(rs, status, &o);
}

/* GET /totp: a new key, kept in the session until confirmed; POST /totp
 * (code, csrf): the code proves the authenticator holds it, then the key
 * is stored wrapped by the KEK and the session may go on.  Until then an
 * administrator without a second factor reaches nothing else. */
static void do_totp(struct mt_console *c, const struct mt_https_req *rq,
                    struct mt_https_resp *rs, struct session *s, int64_t now)
{
	struct mt_form *f = NULL;
	uint8_t key[32], wrapped[MT_DEK_WRAPPED_LEN];
	uint64_t step = 0;
	bool have = false;
	enum mt_err e;
	int i;

	pthread_mutex_lock(&c->sess_lock);
	i = session_find(c, rq, now, false);
	if (i >= 0 && !c->sess[i].has_pending && mt_random(c->sess[i].pending_totp, 32) == MT_OK)
		c->sess[i].has_pending = true;
	if (i >= 0 && c->sess[i].has_pending) {
		memcpy(key, c->sess[i].pending_totp, sizeof key);
		have = true;
	}
	pthread_mutex_unlock(&c->sess_lock);
	if (!have) {
		con_message(c, rs, 503, s, "Unavailable", "A key could not be made; try again.");
		return;
	}
	if (strcmp(rq->method, "GET") == 0) {
		totp_page(c, rs, 200, s, key, NULL);
		goto out;
	}
	f = calloc(1, sizeof *f);
	if (f == NULL) {
		rs->status = 503;
		goto out;
	}
	if (!con_read_form(c, rq, rs, f) || !con_csrf_ok(c, rq, rs, s, f))
		goto out;
	if (mt_totp_check(key, sizeof key, mt_form_get(f, "code"), now, &step) != MT_OK) {
		con_audit(c, s->user, rq, "user.totp.refused", s->user, MT_AUDIT_REFUSED,
		          "\"via\":\"console\",\"reason\":\"wrong_code\"");
		totp_page(c, rs, 400, s, key, "That code does not match. Check the app's clock "
		          "and type the code it shows now.");
		goto out;
	}
	e = c->kek != NULL ? mt_kek_wrap(c->kek, key, wrapped) : MT_ERR_ARG;
	if (e == MT_OK) {
		pthread_mutex_lock(&c->login_lock);
		e = mt_users_totp_set(c->users, s->user, wrapped, now);
		pthread_mutex_unlock(&c->login_lock);
	}
	if (e != MT_OK) {
		con_audit(c, s->user, rq, "user.totp.refused", s->user, MT_AUDIT_ERROR,
		          "\"via\":\"console\",\"reason\":\"not_stored\"");
		con_message(c, rs, 503, s, "Unavailable", "The second factor could not be stored.");
		goto out;
	}
	pthread_mutex_lock(&c->sess_lock);
	i = session_find(c, rq, now, true);
	if (i >= 0) {
		c->sess[i].need_totp = false;
		c->sess[i].has_pending = false;
		mt_wipe(c->sess[i].pending_totp, sizeof c->sess[i].pending_totp);
	}
	pthread_mutex_unlock(&c->sess_lock);
	con_audit(c, s->user, rq, "user.totp", s->user, MT_AUDIT_OK,
	          "\"via\":\"console\",\"role\":\"%s\"", mt_role_name(s->role));
	con_redirect(rs, home_of(s->role));
out:
	mt_wipe(key, sizeof key);
	mt_wipe(wrapped, sizeof wrapped);
	if (f != NULL) {
		mt_form_wipe(f);
		free(f);
	}
}

/* ---- the router ------------------------------------------------------------------------------ */

#define R_CLIN CON_ROLE(MT_ROLE_CLINICIAN)
#define R_BIOMED CON_ROLE(MT_ROLE_BIOMED)
#define R_ADMIN CON_ROLE(MT_ROLE_ADMIN)
#define R_AUDITOR CON_ROLE(MT_ROLE_AUDITOR)
#define R_ANY (R_CLIN | R_BIOMED | R_ADMIN | R_AUDITOR)

static void view_ward(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, struct session *s, int64_t now);
static void view_api(struct mt_console *c, const struct mt_https_req *rq,
                     struct mt_https_resp *rs, struct session *s, int64_t now);

/* Every signed-in path: who may open it (F09, F10, F17).  A prefix ending
 * in '/' matches what follows it; otherwise the path itself or below it. */
static const struct {
	const char *prefix;
	unsigned roles;
	con_view_fn fn;
} views[] = {
        {"/ward", R_CLIN, view_ward},
        {"/patient/", R_CLIN, con_view_patient},
        {"/api/patient/", R_CLIN, con_view_patient},
        {"/api/stream", R_CLIN | R_BIOMED, view_api},
        {"/api/alarms", R_CLIN | R_BIOMED, view_api},
        {"/fleet", R_BIOMED, con_view_fleet},
        {"/onboarding", R_BIOMED, con_view_fleet},
        {"/api/fleet", R_BIOMED, con_view_fleet},
        {"/admin", R_ADMIN, con_view_admin},
        {"/api/admin", R_ADMIN, con_view_admin},
        {"/audit", R_ADMIN | R_AUDITOR, con_view_audit},
        {"/api/audit", R_ADMIN | R_AUDITOR, con_view_audit},
        {"/reauth", R_ANY, do_reauth},
};

static bool path_under(const char *p, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(p, prefix, n) != 0)
		return false;
	return prefix[n - 1] == '/' ? p[n] != '\0' : p[n] == '\0' || p[n] == '/';
}

/* The ward overview, for clinicians: their wards only. */
static void view_ward(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, struct session *s, int64_t now)
{
	if (strcmp(rq->method, "GET") != 0) {
		con_message(c, rs, 405, s, "Method not allowed", "This page does not take that method.");
		return;
	}
	if (strcmp(rq->path, "/ward") != 0) {
		con_message(c, rs, 404, s, "Not found", "There is no such page.");
		return;
	}
	if (rq->query != NULL) {
		con_message(c, rs, 400, s, "Bad request", "Unexpected query string.");
		return;
	}
	ward_page(c, rq, rs, s, now);
}

/* The live stream and the alarms (JSON). */
static void view_api(struct mt_console *c, const struct mt_https_req *rq,
                     struct mt_https_resp *rs, struct session *s, int64_t now)
{
	bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;

	(void)now;
	if (strcmp(rq->path, "/api/stream") == 0 && get)
		api_stream(c, rq, rs, s);
	else if (strcmp(rq->path, "/api/alarms") == 0 && get)
		api_alarms(c, rq, rs, s);
	else if (strcmp(rq->path, "/api/alarms/ack") == 0 && post)
		api_ack(c, rq, rs, s);
	else
		con_api_error(rs, 404, "no such endpoint");
}

static bool serve_static(struct mt_https_resp *rs, const char *p)
{
	const struct con_asset *a = con_asset_find(p + sizeof "/static/" - 1);

	if (a == NULL)
		return false;
	rs->status = 200;
	rs->content_type = a->type;
	rs->body = malloc(a->len ? a->len : 1);
	if (rs->body == NULL) {
		rs->status = 503;
		return true;
	}
	memcpy(rs->body, a->data, a->len);
	rs->body_len = a->len;
	return true;
}

void mt_console_handle(struct mt_console *c, const struct mt_https_req *rq,
                       struct mt_https_resp *rs)
{
	int64_t now = mt_deploy_now();
	bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;
	bool api = strncmp(rq->path, "/api/", 5) == 0;
	const char *p = rq->path;
	struct session s;
	bool have;

	memset(&s, 0, sizeof s);
	security_headers(rs);

	if (strncmp(p, "/static/", 8) == 0) {
		if (!get)
			con_message(c, rs, 405, NULL, "Method not allowed", "Static files are read only.");
		else if (!serve_static(rs, p))
			con_message(c, rs, 404, NULL, "Not found", "There is no such file.");
		return;
	}
	if (strcmp(p, "/") == 0 && get) {
		have = session_get(c, rq, now, false, &s);
		con_redirect(rs, !have ? "/login" : first_step(&s) ? first_step(&s) : home_of(s.role));
		goto out;
	}
	if (strcmp(p, "/login") == 0 && (get || post)) {
		if (post) {
			do_login(c, rq, rs, now);
		} else if (session_get(c, rq, now, false, &s)) {
			con_redirect(rs, first_step(&s) ? first_step(&s) : home_of(s.role));
		} else {
			login_page(c, rs, 200, NULL);
		}
		goto out;
	}
	if ((strcmp(p, "/password") == 0 && (get || post)) || (strcmp(p, "/logout") == 0 && post)) {
		if (rq->query != NULL) {
			con_message(c, rs, 400, NULL, "Bad request", "Unexpected query string.");
			goto out;
		}
		if (!session_get(c, rq, now, true, &s)) {
			if (rq->cookie != NULL && strstr(rq->cookie, COOKIE_SESSION "=") != NULL)
				set_cookie(rs, COOKIE_SESSION, "", "/", 0); /* a dead session */
			con_redirect(rs, "/login");
			goto out;
		}
		if (strcmp(p, "/logout") == 0)
			do_logout(c, rq, rs, &s, now);
		else if (post)
			do_password(c, rq, rs, &s, now);
		else
			password_page(c, rs, 200, &s, NULL);
		goto out;
	}
	if (strcmp(p, "/totp") == 0 && (get || post)) {
		if (rq->query != NULL) {
			con_message(c, rs, 400, NULL, "Bad request", "Unexpected query string.");
			goto out;
		}
		if (!session_get(c, rq, now, true, &s)) {
			con_redirect(rs, "/login");
			goto out;
		}
		if (s.must_change)
			con_redirect(rs, "/password");
		else if (!s.need_totp)
			con_redirect(rs, home_of(s.role));
		else
			do_totp(c, rq, rs, &s, now);
		goto out;
	}
	for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
		if (!path_under(p, views[i].prefix))
			continue;
		/* the live stream is not the user's activity: a screen left open
		 * still signs out */
		if (!session_get(c, rq, now, strcmp(p, "/api/stream") != 0, &s)) {
			if (api) {
				con_api_error(rs, 401, "sign in first");
			} else {
				if (rq->cookie != NULL && strstr(rq->cookie, COOKIE_SESSION "=") != NULL)
					set_cookie(rs, COOKIE_SESSION, "", "/", 0);
				con_redirect(rs, "/login");
			}
			goto out;
		}
		if (first_step(&s) != NULL) {
			if (api)
				con_api_error(rs, 403, s.must_change ? "change your password first"
				                                     : "set up your second factor first");
			else
				con_redirect(rs, first_step(&s));
			goto out;
		}
		if (!(views[i].roles & CON_ROLE(s.role))) {
			con_audit(c, s.user, rq, "console.forbidden", s.user, MT_AUDIT_REFUSED,
			          "\"role\":\"%s\",\"method\":\"%s\"", mt_role_name(s.role),
			          get ? "GET" : post ? "POST" : "other");
			if (api)
				con_api_error(rs, 403, "your role may not use this");
			else
				con_message(c, rs, 403, &s, "Not allowed",
				            "Your role may not open this page.");
			goto out;
		}
		views[i].fn(c, rq, rs, &s, now);
		goto out;
	}
	if (api) {
		con_api_error(rs, 404, "no such endpoint");
		goto out;
	}
	if (strcmp(p, "/") == 0 || strcmp(p, "/login") == 0 || strcmp(p, "/password") == 0 ||
	    strcmp(p, "/logout") == 0 || strcmp(p, "/totp") == 0) {
		con_message(c, rs, 405, NULL, "Method not allowed", "This page does not take that "
		            "method.");
		goto out;
	}
	con_message(c, rs, 404, NULL, "Not found", "There is no such page.");
out:
	OPENSSL_cleanse(&s, sizeof s);
}

/* ---- life ------------------------------------------------------------------------------------------ */

enum mt_err mt_console_open(struct mt_deploy *d, mt_console_audit_fn audit_fn, void *audit_arg,
                            struct mt_console **out, char *why, size_t why_cap)
{
	struct mt_console *c;
	const char *db = d ? mt_deploy_get(d, "db_path") : NULL;
	const char *hosp = d ? mt_deploy_get(d, "hospital") : NULL;
	enum mt_err e;

	if (why != NULL && why_cap > 0)
		why[0] = '\0';
	if (d == NULL || out == NULL || db == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return MT_ERR_NOMEM;
	c->d = d;
	c->audit = audit_fn;
	c->audit_arg = audit_arg;
	{
		uint64_t v = REAUTH_S;

		if (mt_deploy_uint(d, "console_reauth_s", REAUTH_S, 86400, &v) != MT_OK) {
			if (why != NULL)
				(void)snprintf(why, why_cap, "console_reauth_s is not a number of seconds "
				                             "(1-86400)");
			free(c);
			return MT_ERR_ARG;
		}
		c->reauth_s = (int64_t)v;
	}
	{
		const char *mfa = mt_deploy_get(d, "console_admin_mfa");

		if (mfa != NULL && strcmp(mfa, "required") != 0 && strcmp(mfa, "optional") != 0) {
			if (why != NULL)
				(void)snprintf(why, why_cap, "console_admin_mfa is required or optional");
			free(c);
			return MT_ERR_ARG;
		}
		c->admin_mfa = mfa == NULL || strcmp(mfa, "required") == 0;
	}
	pthread_mutex_init(&c->sess_lock, NULL);
	pthread_mutex_init(&c->login_lock, NULL);
	pthread_mutex_init(&c->store_lock, NULL);
	if (hosp != NULL)
		(void)snprintf(c->hospital, sizeof c->hospital, "%s", hosp);
	if (RAND_bytes(c->csrf_key, (int)sizeof c->csrf_key) != 1) {
		mt_console_close(c);
		return MT_ERR_RANDOM;
	}
	c->cache = calloc(PATIENTS_MAX, sizeof *c->cache);
	c->obs = calloc(MT_OBS_MAX, sizeof *c->obs);
	c->ids = calloc(PATIENTS_MAX, sizeof *c->ids);
	if (c->cache == NULL || c->obs == NULL || c->ids == NULL) {
		mt_console_close(c);
		return MT_ERR_NOMEM;
	}
	e = mt_users_open(db, &c->users);
	if (e != MT_OK) {
		if (why != NULL)
			(void)snprintf(why, why_cap, "console users in %s: %s", db, mt_err_str(e));
		mt_console_close(c);
		return e;
	}
	e = mt_deploy_open_store(d, &c->store);
	c->kek = d->kek; /* opened with the store: unwraps second-factor keys */
	if (e != MT_OK) {
		c->store = NULL;
		if (why != NULL)
			(void)snprintf(why, why_cap, "the console shows no readings: the readings store "
			                             "could not be opened: %s",
			               mt_err_str(e));
	}
	*out = c;
	return MT_OK;
}

void mt_console_close(struct mt_console *c)
{
	if (c == NULL)
		return;
	mt_store_close(c->store);
	mt_users_close(c->users);
	if (c->cache != NULL)
		mt_wipe(c->cache, PATIENTS_MAX * sizeof *c->cache);
	free(c->cache);
	free(c->obs);
	free(c->ids);
	pthread_mutex_destroy(&c->sess_lock);
	pthread_mutex_destroy(&c->login_lock);
	pthread_mutex_destroy(&c->store_lock);
	OPENSSL_cleanse(c, sizeof *c);
	free(c);
}
