/*
 * console_int.h — what the console's files share (console.c and the
 * views in console_*.c); not an interface for the rest of the hub, which
 * sees console.h only.
 *
 * console.c owns the state, the sessions, sign-in, CSRF and the router;
 * each view file renders its pages and answers its JSON through the
 * helpers below, and never writes a data string but through con_text
 * (HTML) or mt_deploy_json_str (JSON).  The router has already checked
 * the session, the forced password change and the role before a view's
 * handler runs (con_route); a view checks what is finer than a role —
 * a clinician's wards (F09), a CSRF token on every POST (F05), a recent
 * sign-in before an administrative change (F10).
 */
#ifndef MT_HUB_CONSOLE_INT_H
#define MT_HUB_CONSOLE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "console.h"
#include "live.h"
#include "medtrust/mt_form.h"
#include "medtrust/mt_store_clinical.h"
#include "medtrust/mt_users.h"

#define SESSIONS_MAX 256
#define IDLE_S 900               /* 15 minutes */
#define ABSOLUTE_S (8 * 3600)    /* 8 hours */
#define REAUTH_S 300             /* default of console_reauth_s */
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

/* ---- state ------------------------------------------------------------------ */

struct session {
	bool used;
	uint8_t hash[32]; /* SHA-256 of the cookie value */
	char user[MT_USER_NAME_MAX + 1];
	enum mt_role role;
	bool must_change;
	char csrf[TOKEN_B64 + 1];
	int64_t created, last_seen, viewed;
	int64_t authed; /* the last time the password was given (sign-in, /reauth) */
	bool need_totp; /* an administrator without a second factor: /totp first */
	bool has_pending;
	uint8_t pending_totp[32]; /* the key being enrolled at /totp (wiped after) */
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

struct pcache;

struct mt_console {
	struct mt_deploy *d;
	struct mt_kek *kek; /* the deployment's (d->kek): second-factor keys */
	mt_console_audit_fn audit;
	void *audit_arg;
	uint8_t csrf_key[32];
	char hospital[256];
	int64_t reauth_s; /* console_reauth_s: how recent a password an admin change needs */
	bool admin_mfa;   /* console_admin_mfa required (default): admins need a second factor */

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

	/* The rotate-epoch hook (mt_console_set_rotate; console_fleet.c reads
	 * and writes it under its own lock); NULL: no ingest. */
	mt_console_rotate_fn rotate;
	void *rotate_arg;
};

/* ---- building an answer ------------------------------------------------------- */

/* A page or JSON document being built: one buffer, at most PAGE_MAX; any
 * failure sticks (`failed`) and con_send_page answers 500. */
struct out {
	char *p;
	size_t n, cap;
	bool failed;
};

bool con_room(struct out *o, size_t more);
/* Markup or JSON of the console's own making (never data). */
void con_lit(struct out *o, const char *s);
/* Numbers and markup of the console's own making; never a data string. */
__attribute__((format(printf, 2, 3))) void con_fmt(struct out *o, const char *fmt, ...);
/* Text from data, HTML-escaped (the only way data reaches a page). */
void con_text(struct out *o, const char *s);
/* A data string as a JSON string literal, quotes included. */
void con_json(struct out *o, const char *s);
void con_free(struct out *o);

/* One more response header (the server answers 500 when they overflow). */
__attribute__((format(printf, 3, 4))) void con_header(struct mt_https_resp *rs,
                                                      const char *name, const char *fmt, ...);
/* Hand the page to the response (200, 403, ...); takes o's buffer. */
void con_send_page(struct mt_https_resp *rs, int status, struct out *o);
/* Hand JSON built in o to the response. */
void con_send_json(struct mt_https_resp *rs, int status, struct out *o);
void con_redirect(struct mt_https_resp *rs, const char *to);

/* The page frame: head, stylesheet, `scripts` (NULL or a space-separated
 * list of /static/ names loaded with <script src defer>), the header
 * with the user and the navigation of their role; con_page_end closes it. */
void con_page_start(const struct mt_console *c, struct out *o, const char *title,
                    const struct session *s, const char *scripts);
void con_page_end(struct out *o);
/* A whole page with a title and one sentence. */
void con_message(struct mt_console *c, struct mt_https_resp *rs, int status,
                 const struct session *s, const char *title, const char *text);

/* JSON answers: {"error": why} with `why` a constant of ours. */
void con_api_answer(struct mt_https_resp *rs, int status, char *json);
void con_api_error(struct mt_https_resp *rs, int status, const char *why);

/* ---- audit ---------------------------------------------------------------------- */

/* An audit record: actor user:<name> (NULL: ip:<source>), detail
 * {"source", "path", then the members `fmt` makes (JSON of ours)}. */
__attribute__((format(printf, 7, 8))) void
con_audit(struct mt_console *c, const char *actor_user, const struct mt_https_req *rq,
          const char *action, const char *subject, enum mt_audit_outcome outcome,
          const char *fmt, ...);

/* ---- forms, CSRF, re-authentication ----------------------------------------------- */

bool con_ctype_form(const char *ct);
bool con_token_shape(const char *t);
bool con_token_equal(const char *a, const char *b);
/* Parse the POST body into *f; false with the answer (415, 413, 400) set. */
bool con_read_form(struct mt_console *c, const struct mt_https_req *rq,
                   struct mt_https_resp *rs, struct mt_form *f);
/* The form's csrf field is the session's token (constant time); false
 * with 403 answered and console.csrf.refused audited. */
bool con_csrf_ok(struct mt_console *c, const struct mt_https_req *rq,
                 struct mt_https_resp *rs, const struct session *s, const struct mt_form *f);
void con_csrf_refused(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, const char *user);
/* `msg` (NULL: nothing) as the page's alert paragraph, escaped. */
void con_alert(struct out *o, const char *msg);
/* The hidden csrf input of a form of this session. */
void con_csrf_field(struct out *o, const struct session *s);
/* Was the password given within console_reauth_s (sign-in or /reauth)?
 * When not, answers 303 to /reauth?next=<back> (a path of ours, no query)
 * and returns false: an administrative change asks for it again (F10). */
bool con_recent_auth(struct mt_console *c, struct mt_https_resp *rs, const struct session *s,
                     int64_t now, const char *back);

/* ---- who sees what ------------------------------------------------------------------ */

/* Every ward (non-clinicians), or a clinician's own (F09, F13). */
bool con_session_filter(struct mt_console *c, const struct session *s,
                        struct mt_live_filter *f);
bool con_filter_allows(const struct mt_live_filter *f, const char *ward);

/* A decimal row id in 1..INT64_MAX; 0 when `s` is anything else. */
int64_t con_parse_id(const char *s);

/* Decrypt patient `id` into *p, store_lock held.  true: *p is the patient.  false:
 * *p is wiped and *failed counted; a tampered or vanished row leaves *e alone (the
 * page says how many it could not show), any other error is put in *e. */
bool con_patient_read(struct mt_console *c, int64_t id, struct mt_patient *p, size_t *failed,
                      enum mt_err *e);

/* ---- clinical pieces shared by the ward and the patient page ------------------------ */

/* An open alarm as a tile or the patient page shows it. */
struct alarm_brief {
	int64_t id, patient;
	unsigned prio; /* enum mt_alarm_prio */
	bool acked;
	char text[MT_ALARM_TEXT_MAX];
};
struct alarm_set {
	struct alarm_brief *a;
	size_t n, cap;
};
/* mt_store_alarms callback: patients' alarms into the alarm_set ctx. */
enum mt_err con_alarm_keep(void *ctx, const struct mt_alarm *a);
/* <li> of one alarm: its priority's colour, flashing while not
 * acknowledged (IEC 60601-1-8), an Acknowledge button. */
void con_alarm_item(struct out *o, const struct alarm_brief *b);
/* "high" "medium" "low" "none". */
const char *con_prio_word(unsigned p);
/* NEWS2's response band of a score: "zero" "low" "lowmed" "medium" "high". */
const char *con_news2_band(const struct mt_news2_row *n);

/* ---- views ---------------------------------------------------------------------------- */

/* A view: called by the router for every method on its paths, with a live
 * session of an allowed role whose password need not change. */
typedef void (*con_view_fn)(struct mt_console *c, const struct mt_https_req *rq,
                            struct mt_https_resp *rs, struct session *s, int64_t now);

#define CON_ROLE(r) (1u << (unsigned)(r))

/* console_patient.c: GET /patient/<id>, GET /api/patient/<id>/series,
 * /api/patient/<id>/news2 (clinicians of the patient's ward). */
void con_view_patient(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, struct session *s, int64_t now);
/* console_fleet.c: /fleet, /onboarding and their actions (biomed). */
void con_view_fleet(struct mt_console *c, const struct mt_https_req *rq,
                    struct mt_https_resp *rs, struct session *s, int64_t now);
/* console_admin.c: /admin and below (admin). */
void con_view_admin(struct mt_console *c, const struct mt_https_req *rq,
                    struct mt_https_resp *rs, struct session *s, int64_t now);
/* console_auditview.c: /audit and below (auditor, admin). */
void con_view_audit(struct mt_console *c, const struct mt_https_req *rq,
                    struct mt_https_resp *rs, struct session *s, int64_t now);

/* Static files served at /static/<name> (console_assets.c, generated at
 * build time from web/ and the npm packages): NULL when unknown. */
struct con_asset {
	const char *name, *type;
	const unsigned char *data;
	size_t len;
};
const struct con_asset *con_asset_find(const char *name);

#endif
