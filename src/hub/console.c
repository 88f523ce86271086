/*
 * console.c — medtrustd's web console: server-rendered HTML, sessions,
 * CSRF, lockout, the ward overview (console.h; docs/console.md; threats
 * F01–F07, F16; clinical.md §1, §3).
 *
 * No JavaScript.  Every page is HTML built here, in one buffer per
 * request, with every string that comes from data (patient names and
 * MRNs, wards, beds, device ids, user names, the hospital's name) passed
 * through mt_html_escape, the one escaper (F06, F07).  The pages need
 * nothing but a same-origin stylesheet, so the Content-Security-Policy is
 * `default-src 'none'; style-src 'self'; ...`: an injected <script>,
 * inline or not, an inline style or a frame would not run even if
 * escaping failed.  The ward page refreshes itself with <meta
 * http-equiv="refresh">, which CSP leaves alone.
 *
 * Sessions (F03, F04).  A session is 32 bytes from RAND_bytes, sent once
 * as the base64url cookie mt_session (HttpOnly; Secure; SameSite=Strict;
 * Path=/) and kept here only as its SHA-256, with the user, role, whether
 * the password must change, the session's CSRF token and its times: a
 * memory dump yields no usable cookie.  Lookups compare hashes with
 * CRYPTO_memcmp.  A session dies after IDLE_S without a request of the
 * user's (the ward page's own refreshes do not count, so a screen left
 * open does sign out) or ABSOLUTE_S after sign-in, whichever comes first,
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
 * The ward page (clinical.md §1, §3).  Patients come from the readings
 * store, decrypted here (name, MRN); their devices from the open
 * assignments; the newest value of each quantity from their readings:
 * for each patient the console remembers the newest observation of each
 * code and the highest reading id it has looked at, and on each view
 * decrypts only readings stored since (at most BACKFILL of them, newest
 * device time first: mt_store_latest_reading_ids), verifying nothing
 * again — the hub verified each at ingest and they are stored
 * authenticated.  Values are printed with the observation's `places`, or
 * the default of clinical.md §1.  A patient whose newest reading reached
 * the hub more than STALE_S ago is marked "no data for N s" — the
 * technical "device offline" hint of §3, on the hub's clock, not the
 * device's.  Showing identities is audited as console.ward.view, once per
 * session per VIEW_AUDIT_S.
 *
 * Inputs are bounded before they are parsed: form bodies MT_FORM_BODY_MAX
 * (4 KiB, else 413), application/x-www-form-urlencoded only (else 415),
 * parsed strictly (mt_form.h, else 400); the Cookie header by https.c's
 * header limit.
 */
#define _POSIX_C_SOURCE 200809L

#include "console.h"
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
#include "medtrust/mt_users.h"

#define SESSIONS_MAX 256
#define IDLE_S 900               /* 15 minutes */
#define ABSOLUTE_S (8 * 3600)    /* 8 hours */
#define TOKEN_BYTES 32
#define TOKEN_B64 43             /* base64url of 32 bytes, no padding */
#define COOKIE_SESSION "mt_session"
#define COOKIE_LOGIN "mt_login_csrf"
#define LOGIN_CSRF_S 3600        /* life of a sign-in form */
#define SOURCES_MAX 256
#define SOURCE_FAILS_MAX 30
#define SOURCE_WINDOW_S 900
#define GHOSTS_MAX 256
#define AUDIT_EVERY 100          /* throttled attempts per audit record */
#define PATIENTS_MAX 2048        /* patients on the ward page */
#define DEVICES_SHOWN 4          /* devices per patient */
#define BACKFILL 256             /* readings decrypted per patient per view, at most */
#define STALE_S 60
#define VIEW_AUDIT_S 900
#define PAGE_MAX (8u << 20)
#define REFRESH_S 10

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

/* ---- state ------------------------------------------------------------------ */

struct session {
	bool used;
	uint8_t hash[32]; /* SHA-256 of the cookie value */
	char user[MT_USER_NAME_MAX + 1];
	enum mt_role role;
	bool must_change;
	char csrf[TOKEN_B64 + 1];
	int64_t created, last_seen, viewed;
};

struct source {
	char addr[MT_HTTPS_SOURCE_MAX];
	unsigned fails;
	int64_t since, last;
	uint64_t throttled;
};

struct ghost {
	uint8_t name_hash[32];
	unsigned fails;
	int64_t locked_until, last;
};

struct mt_console {
	struct mt_deploy *d;
	struct mt_kek *kek; /* the deployment's (d->kek): second-factor keys */
	mt_console_audit_fn audit;
	void *audit_arg;
	uint8_t csrf_key[32];
	char hospital[256];

	pthread_mutex_t sess_lock; /* sess, src, ghosts */
	struct session sess[SESSIONS_MAX];
	struct source src[SOURCES_MAX];
	struct ghost ghosts[GHOSTS_MAX];

	pthread_mutex_t login_lock; /* users */
	struct mt_users *users;

	pthread_mutex_t store_lock; /* store, cache, obs, ids */
	struct mt_store *store;
	struct pcache *cache;
	size_t n_cache;
	struct mt_obs *obs; /* [MT_OBS_MAX] */
	int64_t *ids;       /* [PATIENTS_MAX] */

	/* The live stream and alarms (mt_console_set_clinical); NULL: none. */
	struct mt_live *live;
	struct mt_clinical *clin;
};

/* ---- the stylesheet ---------------------------------------------------------- */

static const char css[] =
        ":root{--bg:#f4f6f8;--fg:#1b2430;--mute:#5b6675;--line:#d5dbe2;--acc:#0b5cad;"
        "--warn:#9a5b00;--warnbg:#fff4de;--bad:#a1121b;--badbg:#fde8e9}\n"
        "*{box-sizing:border-box}\n"
        "body{margin:0;font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
        "background:var(--bg);color:var(--fg)}\n"
        "header{display:flex;align-items:center;gap:1em;padding:.6em 1.2em;background:#12304f;"
        "color:#fff}\n"
        "header .brand{font-weight:600;margin-right:auto}\n"
        "header form{margin:0}\n"
        "header button{background:transparent;color:#fff;border:1px solid #8aa4c0;"
        "border-radius:4px;padding:.25em .8em;cursor:pointer}\n"
        "main{padding:1em 1.2em}\n"
        "h1{font-size:1.3em;margin:.2em 0 .8em}\n"
        "h2{font-size:1.1em;margin:1.2em 0 .4em}\n"
        ".box{max-width:26em;margin:3em auto;background:#fff;border:1px solid var(--line);"
        "border-radius:8px;padding:1.5em}\n"
        ".box label{display:block;margin:.8em 0}\n"
        ".box input{display:block;width:100%;padding:.45em;margin-top:.2em;"
        "border:1px solid var(--line);border-radius:4px;font:inherit}\n"
        ".box button{margin-top:1em;padding:.5em 1.4em;background:var(--acc);color:#fff;"
        "border:0;border-radius:4px;font:inherit;cursor:pointer}\n"
        ".msg{padding:.5em .8em;border-radius:4px;background:var(--badbg);color:var(--bad)}\n"
        ".note{padding:.5em .8em;border-radius:4px;background:var(--warnbg);color:var(--warn)}\n"
        "table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}\n"
        "th,td{text-align:left;padding:.4em .6em;border-bottom:1px solid var(--line);"
        "vertical-align:top}\n"
        "th{font-size:.85em;color:var(--mute);font-weight:600;background:#eef1f4}\n"
        ".v{font-size:1.25em;font-weight:600;font-variant-numeric:tabular-nums}\n"
        ".u{color:var(--mute);font-size:.85em}\n"
        "time,.t{display:block;color:var(--mute);font-size:.8em}\n"
        ".none{color:var(--mute)}\n"
        ".stale{color:var(--warn);background:var(--warnbg);font-weight:600}\n"
        ".dev{font-family:ui-monospace,monospace;font-size:.85em}\n"
        "footer{padding:1em 1.2em;color:var(--mute);font-size:.8em}\n";

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
static bool token_shape(const char *t)
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
static bool token_equal(const char *a, const char *b)
{
	return token_shape(a) && token_shape(b) && CRYPTO_memcmp(a, b, TOKEN_B64) == 0;
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

struct out {
	char *p;
	size_t n, cap;
	bool failed;
};

static bool out_room(struct out *o, size_t more)
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
static void out_lit(struct out *o, const char *s)
{
	size_t n = strlen(s);

	if (!out_room(o, n))
		return;
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

/* Numbers and markup of this file's own making; never a data string (use
 * out_text for those). */
__attribute__((format(printf, 2, 3))) static void out_fmt(struct out *o, const char *fmt, ...)
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
	out_lit(o, buf);
}

/* Text from data, escaped (the only way data reaches a page). */
static void out_text(struct out *o, const char *s)
{
	size_t n = s ? strlen(s) : 0, w = 0;

	if (!out_room(o, MT_HTML_ESCAPE_MAX(n)))
		return;
	if (mt_html_escape(s ? s : "", n, o->p + o->n, o->cap - o->n, &w) != MT_OK) {
		o->failed = true;
		return;
	}
	o->n += w;
}

static void out_free(struct out *o)
{
	free(o->p);
	o->p = NULL;
	o->n = o->cap = 0;
}

__attribute__((format(printf, 3, 4))) static void add_header(struct mt_https_resp *rs,
                                                             const char *name, const char *fmt,
                                                             ...)
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
	add_header(rs, "Content-Security-Policy", "%s",
	           "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
	           "frame-ancestors 'none'; base-uri 'none'");
	add_header(rs, "Strict-Transport-Security", "%s", "max-age=31536000");
	add_header(rs, "Referrer-Policy", "%s", "no-referrer");
	add_header(rs, "X-Frame-Options", "%s", "DENY");
	add_header(rs, "Cross-Origin-Opener-Policy", "%s", "same-origin");
}

static void set_cookie(struct mt_https_resp *rs, const char *name, const char *value,
                       const char *path, long max_age)
{
	if (max_age >= 0)
		add_header(rs, "Set-Cookie", "%s=%s; Path=%s; Max-Age=%ld; Secure; HttpOnly; "
		                             "SameSite=Strict",
		           name, value, path, max_age);
	else
		add_header(rs, "Set-Cookie", "%s=%s; Path=%s; Secure; HttpOnly; SameSite=Strict", name,
		           value, path);
}

static void send_page(struct mt_https_resp *rs, int status, struct out *o)
{
	if (o->failed || o->p == NULL) {
		out_free(o);
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

static void redirect(struct mt_https_resp *rs, const char *to)
{
	rs->status = 303;
	add_header(rs, "Location", "%s", to);
}

/* ---- pages -------------------------------------------------------------------------- */

static void page_start(const struct mt_console *c, struct out *o, const char *title,
                       const struct session *s, bool refresh)
{
	out_lit(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
	if (refresh)
		out_fmt(o, "<meta http-equiv=\"refresh\" content=\"%d; url=/ward?refresh=1\">",
		        REFRESH_S);
	out_lit(o, "<title>");
	out_text(o, title);
	out_lit(o, " \xe2\x80\x94 medtrust</title>"
	           "<link rel=\"stylesheet\" href=\"/static/console.css\"></head><body>"
	           "<header><span class=\"brand\">medtrust");
	if (c->hospital[0] != '\0') {
		out_lit(o, " \xc2\xb7 ");
		out_text(o, c->hospital);
	}
	out_lit(o, "</span>");
	if (s != NULL) {
		out_lit(o, "<span>");
		out_text(o, s->user);
		out_lit(o, " (");
		out_text(o, mt_role_name(s->role));
		out_lit(o, ")</span><form method=\"post\" action=\"/logout\">"
		           "<input type=\"hidden\" name=\"csrf\" value=\"");
		out_text(o, s->csrf);
		out_lit(o, "\"><button type=\"submit\">Sign out</button></form>");
	}
	out_lit(o, "</header><main>");
}

static void page_end(struct out *o)
{
	out_lit(o, "</main></body></html>\n");
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
	page_start(c, &o, "Sign in", NULL, false);
	out_lit(&o, "<form class=\"box\" method=\"post\" action=\"/login\" "
	            "accept-charset=\"UTF-8\"><h1>Sign in</h1>");
	if (msg != NULL) {
		out_lit(&o, "<p class=\"msg\" role=\"alert\">");
		out_text(&o, msg);
		out_lit(&o, "</p>");
	}
	out_lit(&o, "<label>User name<input name=\"user\" autocomplete=\"username\" required "
	            "maxlength=\"64\" autocapitalize=\"none\" spellcheck=\"false\" autofocus>"
	            "</label><label>Password<input type=\"password\" name=\"password\" "
	            "autocomplete=\"current-password\" required maxlength=\"256\"></label>"
	            "<label>Code from your authenticator, if you have one<input name=\"code\" "
	            "autocomplete=\"one-time-code\" inputmode=\"numeric\" maxlength=\"6\" "
	            "pattern=\"[0-9]{6}\"></label>"
	            "<input type=\"hidden\" name=\"csrf\" value=\"");
	out_text(&o, field);
	out_lit(&o, "\"><button type=\"submit\">Sign in</button></form>");
	page_end(&o);
	send_page(rs, status, &o);
	OPENSSL_cleanse(cookie, sizeof cookie);
}

static void password_page(struct mt_console *c, struct mt_https_resp *rs, int status,
                          const struct session *s, const char *msg)
{
	struct out o = {0};

	page_start(c, &o, "Change password", s, false);
	out_lit(&o, "<form class=\"box\" method=\"post\" action=\"/password\" "
	            "accept-charset=\"UTF-8\"><h1>Change password</h1>");
	if (s->must_change)
		out_lit(&o, "<p class=\"note\">You signed in with a one-time password: choose your "
		            "own before you go on.</p>");
	if (msg != NULL) {
		out_lit(&o, "<p class=\"msg\" role=\"alert\">");
		out_text(&o, msg);
		out_lit(&o, "</p>");
	}
	out_lit(&o, "<label>Current password<input type=\"password\" name=\"current\" "
	            "autocomplete=\"current-password\" required maxlength=\"256\"></label>"
	            "<label>New password (at least 12 characters)<input type=\"password\" "
	            "name=\"new\" autocomplete=\"new-password\" required minlength=\"12\" "
	            "maxlength=\"256\"></label><label>New password again<input type=\"password\" "
	            "name=\"repeat\" autocomplete=\"new-password\" required minlength=\"12\" "
	            "maxlength=\"256\"></label><input type=\"hidden\" name=\"csrf\" value=\"");
	out_text(&o, s->csrf);
	out_lit(&o, "\"><button type=\"submit\">Change password</button></form>");
	page_end(&o);
	send_page(rs, status, &o);
}

static void message_page(struct mt_console *c, struct mt_https_resp *rs, int status,
                         const struct session *s, const char *title, const char *text)
{
	struct out o = {0};

	page_start(c, &o, title, s, false);
	out_lit(&o, "<h1>");
	out_text(&o, title);
	out_lit(&o, "</h1><p>");
	out_text(&o, text);
	out_lit(&o, "</p>");
	page_end(&o);
	send_page(rs, status, &o);
}

/* ---- audit ---------------------------------------------------------------------------- */

__attribute__((format(printf, 7, 8))) static void
audit(struct mt_console *c, const char *actor_user, const struct mt_https_req *rq,
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
	    !token_shape(tok))
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
	s.created = s.last_seen = now;
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

static bool ctype_form(const char *ct)
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
static bool read_form(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, struct mt_form *f)
{
	f->n = 0;
	if (!ctype_form(rq->content_type)) {
		message_page(c, rs, 415, NULL, "Unsupported form", "The form was not sent as "
		             "application/x-www-form-urlencoded.");
		return false;
	}
	if (rq->body_len > MT_FORM_BODY_MAX) {
		message_page(c, rs, 413, NULL, "Form too large", "The form is larger than 4 KiB.");
		return false;
	}
	if (mt_form_parse(rq->body, rq->body_len, f) != MT_OK) {
		message_page(c, rs, 400, NULL, "Bad form", "The form could not be read.");
		return false;
	}
	return true;
}

static void csrf_refused(struct mt_console *c, const struct mt_https_req *rq,
                         struct mt_https_resp *rs, const char *user)
{
	audit(c, user, rq, "console.csrf.refused", user, MT_AUDIT_REFUSED, "\"method\":\"POST\"");
	message_page(c, rs, 403, NULL, "Request refused",
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
	if (!read_form(c, rq, rs, f))
		goto out;
	field = mt_form_get(f, "csrf");
	if (mt_form_cookie(rq->cookie, COOKIE_LOGIN, cookie, sizeof cookie) != MT_OK ||
	    !token_shape(cookie) || !login_mac(c, cookie, want) || !token_equal(field, want)) {
		csrf_refused(c, rq, rs, NULL);
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
			audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_REFUSED,
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
		audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_ERROR,
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
		audit(c, u.name, rq, "console.login", u.name, MT_AUDIT_OK,
		      "\"user\":%s,\"role\":\"%s\",\"must_change\":%s", js[0], mt_role_name(u.role),
		      u.must_change ? "true" : "false");
		redirect(rs, u.must_change ? "/password" : "/ward");
		OPENSSL_cleanse(&s, sizeof s);
		break;
	case MT_LOGIN_LOCKED_NOW:
		source_failed(c, rq->source, now);
		audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_REFUSED,
		      "\"user\":%s,\"reason\":\"bad_credentials\"", js[0]);
		(void)snprintf(ex, sizeof ex, "%d", MT_USERS_LOCK_S);
		audit(c, NULL, rq, "console.lockout", valid_name ? user : NULL, MT_AUDIT_REFUSED,
		      "\"user\":%s,\"failures\":%d,\"locked_s\":%s", js[0], MT_USERS_MAX_FAILS, ex);
		login_page(c, rs, 429, locked_text);
		break;
	case MT_LOGIN_LOCKED:
		audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_REFUSED,
		      "\"user\":%s,\"reason\":\"locked\"", js[0]);
		login_page(c, rs, 429, locked_text);
		break;
	default:
		source_failed(c, rq->source, now);
		audit(c, NULL, rq, "console.login", valid_name ? user : NULL, MT_AUDIT_REFUSED,
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
	if (!read_form(c, rq, rs, f))
		goto out;
	if (!token_equal(mt_form_get(f, "csrf"), s->csrf)) {
		csrf_refused(c, rq, rs, s->user);
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
		audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_REFUSED,
		      "\"reason\":\"%s\"", verdict == MT_LOGIN_LOCKED ? "locked" : "bad_current");
		if (verdict == MT_LOGIN_LOCKED_NOW)
			audit(c, s->user, rq, "console.lockout", s->user, MT_AUDIT_REFUSED,
			      "\"failures\":%d,\"locked_s\":%d", MT_USERS_MAX_FAILS, MT_USERS_LOCK_S);
		login_page(c, rs, 429, locked_text);
		goto out;
	}
	if (verdict != MT_LOGIN_OK) {
		audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_REFUSED,
		      "\"reason\":\"bad_current\"");
		password_page(c, rs, 401, s, "The current password is wrong.");
		goto out;
	}
	if (e == MT_ERR_ARG && why != NULL) {
		audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_REFUSED,
		      "\"reason\":\"policy\"");
		password_page(c, rs, 400, s, why);
		goto out;
	}
	if (e != MT_OK) {
		audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_ERROR,
		      "\"reason\":\"users_unavailable\"");
		password_page(c, rs, 503, s, "The password could not be changed. Try again later.");
		goto out;
	}
	/* A new session id for the new password (and the old one gone). */
	if (!session_new(c, rq, rs, &u, now, NULL)) {
		rs->status = 503;
		goto out;
	}
	audit(c, s->user, rq, "console.password", s->user, MT_AUDIT_OK, "\"was_one_time\":%s",
	      s->must_change ? "true" : "false");
	redirect(rs, "/ward");
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
	if (!read_form(c, rq, rs, f))
		goto out;
	if (!token_equal(mt_form_get(f, "csrf"), s->csrf)) {
		csrf_refused(c, rq, rs, s->user);
		goto out;
	}
	session_drop(c, rq, now);
	set_cookie(rs, COOKIE_SESSION, "", "/", 0);
	audit(c, s->user, rq, "console.logout", s->user, MT_AUDIT_OK, "\"session\":\"ended\"");
	redirect(rs, "/login");
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
		int64_t off = 0;
		uint64_t t, back;

		if (o->waveform || !mt_num_get_int64(&o->t, &off) || off > 0)
			continue;
		back = off == 0 ? 0 : (uint64_t)(-(off + 1)) + 1; /* |off|, INT64_MIN included */
		if (back > m.ts)
			continue;
		t = m.ts - back;
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

static void out_clock(struct out *o, uint64_t t_ms, time_t now)
{
	time_t t = (time_t)(t_ms / 1000);
	struct tm tm, today;
	char buf[32];

	if (localtime_r(&t, &tm) == NULL || localtime_r(&now, &today) == NULL) {
		out_lit(o, "<time>?</time>");
		return;
	}
	if (tm.tm_year == today.tm_year && tm.tm_yday == today.tm_yday)
		(void)strftime(buf, sizeof buf, "%H:%M:%S", &tm);
	else
		(void)strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
	out_lit(o, "<time>");
	out_text(o, buf);
	out_lit(o, "</time>");
}

static void out_value(struct out *o, const struct latest *l)
{
	out_fmt(o, "%.*f", (int)l->places, l->v);
}

static void out_cell(struct out *o, const struct pcache *pc, int q, time_t now)
{
	const struct latest *l = pc ? &pc->q[q] : NULL;

	if (l == NULL || !l->has) {
		out_lit(o, "<td class=\"none\">\xe2\x80\x94</td>");
		return;
	}
	out_lit(o, "<td><span class=\"v\">");
	out_value(o, l);
	if (q == Q_SYS) {
		const struct latest *d = &pc->q[Q_DIA];

		out_lit(o, "/");
		if (d->has)
			out_value(o, d);
		else
			out_lit(o, "\xe2\x80\x94");
	}
	out_lit(o, "</span> <span class=\"u\">");
	out_text(o, qtys[q].unit);
	out_lit(o, "</span>");
	out_clock(o, l->t_ms, now);
	out_lit(o, "</td>");
}

struct row {
	struct mt_patient p;
	char devs[DEVICES_SHOWN][MT_DEVICE_ID_MAX + 1];
	size_t n_devs;
	struct pcache pc;
	bool has_pc;
};

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

static void ward_page(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, struct session *s, int64_t now)
{
	static const int cols[] = {Q_HR, Q_PR, Q_SPO2, Q_RR, Q_TEMP, Q_SYS, Q_GLU};
	struct row *rows = NULL;
	size_t n = 0, total = 0, shown = 0, failed = 0;
	struct out o = {0};
	uint64_t now_ms = mt_deploy_now_ms();
	enum mt_err e = MT_OK;
	bool audit_view;

	pthread_mutex_lock(&c->store_lock);
	if (c->store == NULL) {
		pthread_mutex_unlock(&c->store_lock);
		message_page(c, rs, 503, s, "Readings unavailable",
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
		struct row *r = &rows[shown];
		struct pcache *pc;
		enum mt_err pe = mt_store_patient_get(c->store, c->ids[i], &r->p);

		if (pe != MT_OK) {
			mt_wipe(&r->p, sizeof r->p);
			failed++;
			if (pe != MT_ERR_STORE_TAMPERED && pe != MT_ERR_NOT_FOUND)
				e = pe;
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
		shown++;
	}
	pthread_mutex_unlock(&c->store_lock);
	if (e != MT_OK) {
		if (rows != NULL)
			mt_wipe(rows, n * sizeof *rows);
		free(rows);
		fprintf(stderr, "medtrustd: console: reading the ward: %s\n", mt_err_str(e));
		message_page(c, rs, 503, s, "Readings unavailable",
		             "The readings store could not be read just now; the page will try "
		             "again.");
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
		audit(c, s->user, rq, "console.ward.view", NULL, MT_AUDIT_OK, "\"patients\":%zu",
		      shown);

	page_start(c, &o, "Wards", s, true);
	out_lit(&o, "<h1>Wards</h1>");
	if (shown == 0)
		out_lit(&o, "<p class=\"none\">No patients yet.</p>");
	for (size_t i = 0; i < shown; i++) {
		const struct row *r = &rows[i];

		if (i == 0 || strcmp(r->p.ward, rows[i - 1].p.ward) != 0) {
			if (i > 0)
				out_lit(&o, "</tbody></table></section>");
			out_lit(&o, "<section><h2>");
			out_text(&o, r->p.ward[0] ? r->p.ward : "(no ward)");
			out_lit(&o, "</h2><table><thead><tr><th>Bed</th><th>Patient</th><th>MRN</th>"
			            "<th>Device</th>");
			for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
				out_lit(&o, "<th>");
				out_text(&o, qtys[cols[k]].label);
				out_lit(&o, "</th>");
			}
			out_lit(&o, "<th>Data</th></tr></thead><tbody>");
		}
		out_lit(&o, "<tr><td>");
		out_text(&o, r->p.bed);
		out_lit(&o, "</td><td>");
		out_text(&o, r->p.name);
		out_lit(&o, "</td><td>");
		out_text(&o, r->p.mrn);
		out_lit(&o, "</td><td>");
		if (r->n_devs == 0)
			out_lit(&o, "<span class=\"none\">none</span>");
		for (size_t k = 0; k < r->n_devs; k++) {
			out_lit(&o, "<span class=\"dev\">");
			out_text(&o, r->devs[k]);
			out_lit(&o, "</span>");
			if (k + 1 < r->n_devs)
				out_lit(&o, "<br>");
		}
		out_lit(&o, "</td>");
		for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++)
			out_cell(&o, r->has_pc ? &r->pc : NULL, cols[k], (time_t)now);
		if (!r->has_pc || r->pc.newest_rx_ms == 0) {
			out_lit(&o, "<td class=\"none\">no data yet</td>");
		} else {
			uint64_t age = now_ms > r->pc.newest_rx_ms ? (now_ms - r->pc.newest_rx_ms) / 1000
			                                           : 0;

			if (age > STALE_S)
				out_fmt(&o, "<td class=\"stale\">no data for %" PRIu64 " s</td>", age);
			else
				out_fmt(&o, "<td><span class=\"t\">%" PRIu64 " s ago</span></td>", age);
		}
		out_lit(&o, "</tr>");
	}
	if (shown > 0)
		out_lit(&o, "</tbody></table></section>");
	if (total > n || failed > 0)
		out_fmt(&o, "<p class=\"note\">%zu of %zu patients shown%s.</p>", shown, total,
		        failed ? " (some records could not be decrypted; see verify-record)" : "");
	out_lit(&o, "<footer>The newest value of each quantity, with the time the device "
	            "measured it. \xe2\x80\x9cNo data\xe2\x80\x9d: no reading reached the hub "
	            "for over ");
	out_fmt(&o, "%d s (the device may be offline). This page refreshes every %d s.</footer>",
	        STALE_S, REFRESH_S);
	page_end(&o);
	if (rows != NULL)
		mt_wipe(rows, n * sizeof *rows);
	free(rows);
	send_page(rs, 200, &o);
}

/* ---- dispatch ------------------------------------------------------------------------------------- */

/* ---- the live stream and alarms (JSON; docs/alarms.md) -------------------------------------- */

static void api_answer(struct mt_https_resp *rs, int status, char *json)
{
	rs->status = json != NULL ? status : 503;
	rs->content_type = "application/json";
	rs->body = (uint8_t *)json;
	rs->body_len = json != NULL ? strlen(json) : 0;
}

static void api_error(struct mt_https_resp *rs, int status, const char *why)
{
	char buf[256];

	(void)snprintf(buf, sizeof buf, "{\"error\":\"%s\"}", why);
	api_answer(rs, status, strdup(buf));
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
static bool session_filter(struct mt_console *c, const struct session *s,
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

static bool filter_allows(const struct mt_live_filter *f, const char *ward)
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
		api_error(rs, 503, "no live stream on this hub");
		return;
	}
	if (!session_filter(c, s, &sc->f)) {
		free(sc);
		api_error(rs, 503, "wards unavailable");
		return;
	}
	sc->live = c->live;
	audit(c, s->user, rq, "console.stream.open", s->user, MT_AUDIT_OK,
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
	if (!filter_allows(&l->f, ward))
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
	out_lit(&l->o, line);
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
	if (c->clin == NULL || c->store == NULL || !session_filter(c, s, &l.f)) {
		api_error(rs, 503, "alarms unavailable");
		return;
	}
	out_lit(&l.o, "{\"alarms\":[");
	pthread_mutex_lock(&c->store_lock);
	e = mt_store_alarms(c->store, !all, 0, 500, alarm_json, &l);
	pthread_mutex_unlock(&c->store_lock);
	out_lit(&l.o, "]}");
	if (e != MT_OK || l.o.failed) {
		out_free(&l.o);
		api_error(rs, 503, "alarms unavailable");
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

	if (!ctype_form(rq->content_type) || rq->body_len > MT_FORM_BODY_MAX ||
	    mt_form_parse(rq->body, rq->body_len, &f) != MT_OK) {
		api_error(rs, 400, "bad form");
		return;
	}
	csrf = mt_form_get(&f, "csrf");
	if (csrf == NULL || !token_shape(csrf) || !token_equal(csrf, s->csrf)) {
		audit(c, s->user, rq, "console.csrf.refused", s->user, MT_AUDIT_REFUSED,
		      "\"method\":\"POST\"");
		api_error(rs, 403, "missing or wrong CSRF token");
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
		api_error(rs, 400, "no such alarm");
		return;
	}
	pthread_mutex_lock(&c->store_lock);
	e = mt_store_alarm_get(c->store, id, &a);
	pthread_mutex_unlock(&c->store_lock);
	if (e != MT_OK) {
		api_error(rs, 404, "no such alarm");
		return;
	}
	if (a.patient_id > 0)
		mt_clinical_patient_ward(c->clin, a.patient_id, ward, sizeof ward);
	ok = (s->role == MT_ROLE_CLINICIAN && session_filter(c, s, &lf) &&
	      filter_allows(&lf, ward)) ||
	     (s->role == MT_ROLE_BIOMED && strcmp(a.type, "ST") == 0);
	if (!ok) {
		audit(c, s->user, rq, "alarm.ack", s->user, MT_AUDIT_REFUSED,
		      "\"alarm\":%" PRId64 ",\"role\":\"%s\"", id, mt_role_name(s->role));
		api_error(rs, 403, "your role may not acknowledge this alarm");
		return;
	}
	e = mt_clinical_ack(c->clin, id, s->user);
	if (e == MT_ERR_REFUSED) {
		api_error(rs, 409, "the alarm is not active");
		return;
	}
	if (e != MT_OK) {
		api_error(rs, 503, "the acknowledgement could not be recorded");
		return;
	}
	api_error(rs, 200, "acknowledged");
}

void mt_console_set_clinical(struct mt_console *c, struct mt_live *live, struct mt_clinical *clin)
{
	if (c == NULL)
		return;
	c->live = live;
	c->clin = clin;
}

void mt_console_handle(struct mt_console *c, const struct mt_https_req *rq,
                       struct mt_https_resp *rs)
{
	int64_t now = mt_deploy_now();
	bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;
	const char *p = rq->path;
	struct session s;
	bool have;

	memset(&s, 0, sizeof s);
	security_headers(rs);

	if (strcmp(p, "/static/console.css") == 0 && get) {
		rs->status = 200;
		rs->content_type = "text/css; charset=utf-8";
		rs->body = (uint8_t *)strdup(css);
		rs->body_len = rs->body ? sizeof css - 1 : 0;
		if (rs->body == NULL)
			rs->status = 503;
		return;
	}
	if (strcmp(p, "/") == 0 && get) {
		have = session_get(c, rq, now, false, &s);
		redirect(rs, !have ? "/login" : s.must_change ? "/password" : "/ward");
		goto out;
	}
	if (strcmp(p, "/login") == 0 && (get || post)) {
		if (post) {
			do_login(c, rq, rs, now);
		} else if (session_get(c, rq, now, false, &s)) {
			redirect(rs, s.must_change ? "/password" : "/ward");
		} else {
			login_page(c, rs, 200, NULL);
		}
		goto out;
	}
	if ((strcmp(p, "/ward") == 0 && get) || (strcmp(p, "/password") == 0 && (get || post)) ||
	    (strcmp(p, "/logout") == 0 && post)) {
		/* the ward page's own refreshes are not the user's activity */
		bool automatic = strcmp(p, "/ward") == 0 && rq->query != NULL &&
		                 strcmp(rq->query, "refresh=1") == 0;

		if (rq->query != NULL && !automatic) {
			message_page(c, rs, 400, NULL, "Bad request", "Unexpected query string.");
			goto out;
		}
		if (!session_get(c, rq, now, !automatic, &s)) {
			if (rq->cookie != NULL && strstr(rq->cookie, COOKIE_SESSION "=") != NULL)
				set_cookie(rs, COOKIE_SESSION, "", "/", 0); /* a dead session */
			redirect(rs, "/login");
			goto out;
		}
		if (strcmp(p, "/logout") == 0)
			do_logout(c, rq, rs, &s, now);
		else if (strcmp(p, "/password") == 0 && post)
			do_password(c, rq, rs, &s, now);
		else if (strcmp(p, "/password") == 0)
			password_page(c, rs, 200, &s, NULL);
		else if (s.must_change)
			redirect(rs, "/password");
		else
			ward_page(c, rq, rs, &s, now);
		goto out;
	}
	if (strncmp(p, "/api/", 5) == 0) {
		bool stream = strcmp(p, "/api/stream") == 0 && get;
		bool alarms = strcmp(p, "/api/alarms") == 0 && get;
		bool ack = strcmp(p, "/api/alarms/ack") == 0 && post;

		if (!stream && !alarms && !ack) {
			api_error(rs, 404, "no such endpoint");
			goto out;
		}
		/* the live stream is not the user's activity (like refreshes) */
		if (!session_get(c, rq, now, !stream, &s)) {
			api_error(rs, 401, "sign in first");
			goto out;
		}
		if (s.must_change) {
			api_error(rs, 403, "change your password first");
			goto out;
		}
		if (stream)
			api_stream(c, rq, rs, &s);
		else if (alarms)
			api_alarms(c, rq, rs, &s);
		else
			api_ack(c, rq, rs, &s);
		goto out;
	}
	if (strcmp(p, "/") == 0 || strcmp(p, "/login") == 0 || strcmp(p, "/ward") == 0 ||
	    strcmp(p, "/password") == 0 || strcmp(p, "/logout") == 0 ||
	    strcmp(p, "/static/console.css") == 0) {
		message_page(c, rs, 405, NULL, "Method not allowed", "This page does not take that "
		             "method.");
		goto out;
	}
	message_page(c, rs, 404, NULL, "Not found", "There is no such page.");
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
