/*
 * console_fleet.c — the biomedical engineer's views: the fleet (/fleet,
 * /api/fleet), revoking and decommissioning a device from it
 * (/fleet/<id>/revoke, /fleet/<id>/decommission) and onboarding
 * (/onboarding) (console_int.h; docs/console-fleet.md; threats F09, F10,
 * D06).  The router has already let only the biomed role in.
 *
 * Where each column comes from.  The registry (its own read-only
 * connection per request, mt_registry_open_readonly: the console never
 * shares the hub's handle, which is the EST service's under the hub's
 * lock) gives the devices, their status, class and newest operational
 * certificate.  The readings store (the console's connection, under
 * store_lock) gives, per device, the patient it is assigned to now
 * (mt_store_assigned, then the patient decrypted), the newest packet's
 * time of receipt on the hub's clock, the counters missing below the
 * highest stored (mt_store_fleet.h) and the newest status reading (typ 3),
 * decrypted and decoded for its battery and firmware.  The audit chain
 * (mt_audit_search, read-only, newest first) gives the packets the ingest
 * refused: it counts refusals in memory and leaves in the chain one
 * packet.refused record per device and stage at once and then at most one
 * a minute carrying the count, so the sum of those counts over the newest
 * REFUSED_SCAN records is the number shown, and the page says so.
 *
 * Changes.  Revoke and decommission go through a confirmation page that
 * says what will happen and asks for the device id to be typed; the POST
 * needs the session's CSRF token (F05), a password given within
 * console_reauth_s (F10, con_recent_auth), the typed id, and for a
 * revocation a reason from a fixed list.  The change itself is
 * mt_lifecycle_change — the very code `medtrust device revoke` runs:
 * registry change, a fresh CRL at once, the revoke hook — on a registry
 * connection opened for the request.  The hub's ingest learns of it as it
 * learns of the CLI's: it polls the registry's data_version every 100 ms,
 * which any commit by another connection moves, and rebuilds its device
 * cache, so the device's next packet is refused as inactive; the broker
 * plugin polls the withdrawals likewise.  The CA key is the hub's
 * (c->d->ca_key, opened before the console and never changed; a key
 * serialises its own signatures) and CRL files are written one at a time
 * within the process (mt_lifecycle_crl_refresh).  Every outcome is an
 * audit record with the CLI's action names (device.revoke,
 * device.revoke.refused, device.decommission, ...), actor user:<name>.
 *
 * Rotating a device's key epoch (/fleet/<id>/rotate) has the same
 * confirmation, CSRF, re-authentication and typed id, but the change is
 * not the registry's alone: it is a signed downlink command, which only
 * the hub's ingest can send (it holds the broker connection and the
 * command key).  So the console calls a hook (mt_console_set_rotate,
 * medtrustd sets it to mt_ingest_rotate_hook once the ingest runs); no
 * hook, no action (503).  Audit: device.rotate_epoch, outcome ok with
 * both epochs and the command counter, refused or error with a reason
 * (docs/commands.md).
 *
 * Patients' names are identities: a fleet page that shows them is audited
 * (console.fleet.view, once per user per VIEW_AUDIT_S).  Every string of
 * data — device ids, classes, wards, beds, names, firmware versions,
 * audit fields — goes through con_text or con_json.  Inputs are checked
 * before use: the query string parsed strictly with only `status` known
 * (400 otherwise), device ids in paths must have a device id's shape and
 * exist (404, never echoed), other sub-paths 404, other methods 405.
 */
#define _POSIX_C_SOURCE 200809L

#include "console_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "medtrust/mt_audit.h"
#include "medtrust/mt_audit_search.h"
#include "medtrust/mt_cose.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_lifecycle.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_registry.h"
#include "medtrust/mt_registry_list.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_store_fleet.h"

#define FLEET_MAX 4096                   /* devices on one fleet page */
#define REFUSED_SCAN MT_AUDIT_SEARCH_MAX /* newest packet.refused records summed */
#define ATTEMPTS_SHOWN 200               /* refused onboarding attempts listed */
#define PENDING_SHOWN 500                /* devices pending onboarding listed */
#define MANIFESTS_SHOWN 200
#define FW_MAX 64
#define VIEWERS_MAX 64

/* ---- small helpers ---------------------------------------------------------------- */

static void not_found(struct mt_console *c, struct mt_https_resp *rs, const struct session *s,
                      bool api)
{
	if (api)
		con_api_error(rs, 404, "no such endpoint");
	else
		con_message(c, rs, 404, s, "Not found", "There is no such page.");
}

static void bad_method(struct mt_console *c, struct mt_https_resp *rs, const struct session *s,
                       bool api, const char *allow)
{
	if (api)
		con_api_error(rs, 405, "method not allowed");
	else
		con_message(c, rs, 405, s, "Method not allowed",
		            "This page does not take that method.");
	con_header(rs, "Allow", "%s", allow);
}

/* A time of ours (Unix seconds) as UTC text; "" when there is none. */
static void utc(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	out[0] = '\0';
	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		out[0] = '\0';
}

static void out_time(struct out *o, int64_t t)
{
	char b[32];

	utc(t, b);
	if (b[0] == '\0')
		con_lit(o, "<span class=\"none\">\xe2\x80\x94</span>");
	else
		con_fmt(o, "<span class=\"t\">%s</span>", b);
}

static bool status_by_name(const char *s, enum mt_dev_status *out)
{
	for (int i = MT_DEV_MANIFESTED; i <= MT_DEV_RELEASED; i++) {
		if (strcmp(s, mt_dev_status_name((enum mt_dev_status)i)) == 0) {
			*out = (enum mt_dev_status)i;
			return true;
		}
	}
	return false;
}

/* The query of /fleet and /api/fleet: none, or status=<a status> (or
 * status= for all).  false on anything else. */
static bool parse_status_query(const char *q, enum mt_dev_status *st)
{
	struct mt_form *f;
	const char *v;
	bool ok;

	*st = 0;
	if (q == NULL)
		return true;
	f = calloc(1, sizeof *f);
	if (f == NULL)
		return false;
	ok = mt_form_parse((const uint8_t *)q, strlen(q), f) == MT_OK && f->n == 1 &&
	     (v = mt_form_get(f, "status")) != NULL && (v[0] == '\0' || status_by_name(v, st));
	free(f);
	return ok;
}

/* Was the patients' identities view audited for this user lately?  The
 * console's session table is console.c's; this keeps its own small
 * memory of who was audited when (under its own lock). */
static pthread_mutex_t viewers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char user[MT_USER_NAME_MAX + 1];
	int64_t at;
} viewers[VIEWERS_MAX];

static bool view_audit_due(const char *user, int64_t now)
{
	size_t oldest = 0;
	bool due = true;

	pthread_mutex_lock(&viewers_lock);
	for (size_t i = 0; i < VIEWERS_MAX; i++) {
		if (strcmp(viewers[i].user, user) == 0) {
			due = now - viewers[i].at >= VIEW_AUDIT_S || now < viewers[i].at;
			if (due)
				viewers[i].at = now;
			pthread_mutex_unlock(&viewers_lock);
			return due;
		}
		if (viewers[i].at < viewers[oldest].at)
			oldest = i;
	}
	(void)snprintf(viewers[oldest].user, sizeof viewers[oldest].user, "%s", user);
	viewers[oldest].at = now;
	pthread_mutex_unlock(&viewers_lock);
	return due;
}

/* ---- the fleet's rows --------------------------------------------------------------- */

struct frow {
	char id[MT_DEVICE_ID_MAX + 1];
	char cls[MT_MANIFEST_CLASS_MAX + 1];
	enum mt_dev_status status;
	char reason[MT_REG_REASON_MAX + 1];
	int64_t manifest_id;
	int64_t cert_not_after; /* 0: never enrolled */
	bool onboarded;         /* a kx key is recorded */
	uint32_t epoch;         /* the hub's current key epoch for it */
	/* the store */
	bool has_store;
	struct mt_store_fleet_dev st;
	bool has_patient;
	int64_t patient_id;
	char ward[65], bed[33];
	char name[MT_STORE_TEXT_MAX + 1];
	bool has_battery, has_fw;
	unsigned battery;
	char fw[FW_MAX];
	/* the audit chain */
	uint64_t refused;
	char stage[24];
};

struct fleet {
	struct frow *r;
	size_t n, total;
	enum mt_dev_status want;
	size_t refusal_records; /* packet.refused records read */
};

static enum mt_err fleet_add(const struct mt_device_rec *d, void *arg)
{
	struct fleet *f = arg;
	struct frow *r;

	f->total++;
	if (f->n >= FLEET_MAX)
		return MT_OK;
	r = &f->r[f->n++];
	memset(r, 0, sizeof *r);
	(void)snprintf(r->id, sizeof r->id, "%s", d->serial);
	(void)snprintf(r->cls, sizeof r->cls, "%s", d->device_class);
	(void)snprintf(r->reason, sizeof r->reason, "%s", d->status_reason);
	r->status = d->status;
	r->manifest_id = d->manifest_id;
	r->cert_not_after = d->cert_serial[0] != '\0' ? d->cert_not_after : 0;
	r->onboarded = d->kx_spki_len > 0;
	r->epoch = d->epoch;
	return MT_OK;
}

static int frow_cmp_id(const void *key, const void *elem)
{
	return strcmp((const char *)key, ((const struct frow *)elem)->id);
}

/* The devices of the registry (status `want`, 0: all) into f (serial
 * order), at most FLEET_MAX; f->total counts them all. */
static enum mt_err read_registry(struct mt_console *c, enum mt_dev_status want, struct fleet *f)
{
	const char *db = mt_deploy_get(c->d, "db_path");
	struct mt_registry *reg = NULL;
	enum mt_err e;

	f->r = calloc(FLEET_MAX, sizeof *f->r);
	if (f->r == NULL)
		return MT_ERR_NOMEM;
	e = db != NULL ? mt_registry_open_readonly(db, &reg) : MT_ERR_ARG;
	if (e == MT_OK)
		e = mt_registry_devices(reg, want, fleet_add, f);
	mt_registry_close(reg);
	return e;
}

/* Battery and firmware of the status reading `id` (under store_lock). */
static void read_status(struct mt_console *c, int64_t id, struct frow *r)
{
	struct mt_store_row row;
	struct mt_cose_sign1 s1;
	struct mt_message m;

	memset(&row, 0, sizeof row);
	if (mt_store_reading_get(c->store, id, &row) == MT_OK && row.typ == MT_TYP_STATUS &&
	    mt_cose_sign1_decode(row.sign1, row.sign1_len, true, &s1) == MT_OK &&
	    s1.payload != NULL &&
	    mt_message_decode(s1.payload, s1.payload_len, &m, c->obs, MT_OBS_MAX, NULL) == MT_OK) {
		if ((m.st.has & MT_ST_BATTERY) && m.st.battery <= 100) {
			r->has_battery = true;
			r->battery = (unsigned)m.st.battery;
		}
		if ((m.st.has & MT_ST_FW) && m.st.fw != NULL && m.st.fw_len > 0) {
			size_t n = m.st.fw_len < sizeof r->fw - 1 ? m.st.fw_len : sizeof r->fw - 1;
			const char *nul = memchr(m.st.fw, '\0', n);

			if (nul != NULL)
				n = (size_t)(nul - m.st.fw);
			memcpy(r->fw, m.st.fw, n);
			r->fw[n] = '\0';
			r->has_fw = n > 0;
		}
	}
	mt_store_row_clear(&row);
}

/* The patient device `r` is assigned to now (under store_lock). */
static void read_patient(struct mt_console *c, uint64_t now_ms, struct frow *r)
{
	struct mt_patient *p;
	int64_t pid = 0;

	if (mt_store_assigned(c->store, r->id, now_ms, &pid) != MT_OK || pid <= 0)
		return;
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return;
	r->patient_id = pid;
	if (mt_store_patient_get(c->store, pid, p) == MT_OK) {
		r->has_patient = true;
		(void)snprintf(r->ward, sizeof r->ward, "%s", p->ward);
		(void)snprintf(r->bed, sizeof r->bed, "%s", p->bed);
		(void)snprintf(r->name, sizeof r->name, "%s", p->name);
	}
	mt_wipe(p, sizeof *p);
	free(p);
}

static void read_store(struct mt_console *c, struct fleet *f)
{
	uint64_t now_ms = mt_deploy_now_ms();

	pthread_mutex_lock(&c->store_lock);
	for (size_t i = 0; c->store != NULL && i < f->n; i++) {
		struct frow *r = &f->r[i];

		if (mt_store_fleet_device(c->store, r->id, &r->st) != MT_OK)
			continue;
		r->has_store = true;
		read_patient(c, now_ms, r);
		if (r->st.status_id > 0)
			read_status(c, r->st.status_id, r);
	}
	pthread_mutex_unlock(&c->store_lock);
}

/* packet.refused records: {"stage":..., "count":N, "detail":...}. */
static enum mt_err refusal_cb(const struct mt_audit_record *a, void *arg)
{
	struct fleet *f = arg;
	struct frow *r;
	json_t *j, *cnt, *stage;
	uint64_t n = 1;

	f->refusal_records++;
	if (a->malformed || strcmp(a->action, "packet.refused") != 0)
		return MT_OK;
	r = bsearch(a->subject, f->r, f->n, sizeof *f->r, frow_cmp_id);
	if (r == NULL)
		return MT_OK;
	j = json_loads(a->detail, 0, NULL);
	cnt = j ? json_object_get(j, "count") : NULL;
	stage = j ? json_object_get(j, "stage") : NULL;
	if (json_is_integer(cnt) && json_integer_value(cnt) > 0)
		n = (uint64_t)json_integer_value(cnt);
	if (r->stage[0] == '\0' && json_is_string(stage)) /* newest first: the latest stage */
		(void)snprintf(r->stage, sizeof r->stage, "%s", json_string_value(stage));
	json_decref(j);
	r->refused += n;
	return MT_OK;
}

static void read_refusals(struct mt_console *c, struct fleet *f)
{
	const char *db = mt_deploy_get(c->d, "db_path");
	struct mt_audit_search q;

	memset(&q, 0, sizeof q);
	q.action = "packet.refused";
	q.outcome = -1;
	q.events_only = true;
	q.limit = REFUSED_SCAN;
	if (db == NULL || f->n == 0 || mt_audit_search(db, &q, refusal_cb, f) != MT_OK)
		f->refusal_records = 0;
}

static void fleet_free(struct fleet *f)
{
	if (f->r != NULL)
		mt_wipe(f->r, FLEET_MAX * sizeof *f->r);
	free(f->r);
	f->r = NULL;
}

/* ---- GET /fleet, GET /api/fleet --------------------------------------------------------- */

static bool may_revoke(enum mt_dev_status s)
{
	return s == MT_DEV_MANIFESTED || s == MT_DEV_ACTIVE;
}

static bool may_decommission(enum mt_dev_status s)
{
	return s == MT_DEV_MANIFESTED || s == MT_DEV_ACTIVE || s == MT_DEV_REVOKED;
}

static void out_ago(struct out *o, uint64_t now_ms, uint64_t at_ms)
{
	uint64_t s = now_ms > at_ms ? (now_ms - at_ms) / 1000 : 0;

	if (s < 120)
		con_fmt(o, "%" PRIu64 " s ago", s);
	else if (s < 7200)
		con_fmt(o, "%" PRIu64 " min ago", s / 60);
	else if (s < 172800)
		con_fmt(o, "%" PRIu64 " h ago", s / 3600);
	else
		con_fmt(o, "%" PRIu64 " days ago", s / 86400);
}

static bool may_rotate(const struct frow *r)
{
	return r->status == MT_DEV_ACTIVE && r->onboarded && r->epoch < UINT32_MAX;
}

static bool rotate_hooked(struct mt_console *c);

static void fleet_row(struct out *o, const struct frow *r, int64_t now, uint64_t now_ms,
                      bool rotate)
{
	con_lit(o, "<tr id=\"dev-");
	con_text(o, r->id);
	con_lit(o, "\"><td class=\"dev\">");
	con_text(o, r->id);
	if (r->cls[0] != '\0') {
		con_lit(o, "<span class=\"t\">");
		con_text(o, r->cls);
		con_lit(o, "</span>");
	}
	con_fmt(o, "</td><td class=\"status\"><span class=\"st-%s\">%s</span>",
	        mt_dev_status_name(r->status), mt_dev_status_name(r->status));
	if (r->status == MT_DEV_ACTIVE && !r->onboarded)
		con_lit(o, "<span class=\"t\">enrolled, not onboarded</span>");
	if (r->reason[0] != '\0' && r->status != MT_DEV_ACTIVE && r->status != MT_DEV_MANIFESTED) {
		con_lit(o, "<span class=\"t\">");
		con_text(o, r->reason);
		con_lit(o, "</span>");
	}
	con_lit(o, "</td><td class=\"patient\">");
	if (r->has_patient) {
		con_text(o, r->ward);
		con_lit(o, " \xc2\xb7 bed ");
		con_text(o, r->bed);
		con_lit(o, "<span class=\"t\">");
		con_text(o, r->name);
		con_lit(o, "</span>");
	} else if (r->patient_id > 0) {
		con_fmt(o, "patient %" PRId64 " <span class=\"t\">(record unreadable)</span>",
		        r->patient_id);
	} else {
		con_lit(o, "<span class=\"none\">not assigned</span>");
	}
	con_lit(o, "</td>");
	/* last seen: the hub's clock at receipt of the newest packet */
	if (r->has_store && r->st.last_rx_ms > 0) {
		con_lit(o, now_ms - r->st.last_rx_ms > (uint64_t)STALE_S * 1000 &&
		                           now_ms > r->st.last_rx_ms
		                   ? "<td class=\"seen stale\">"
		                   : "<td class=\"seen\">");
		out_ago(o, now_ms, r->st.last_rx_ms);
		out_time(o, (int64_t)(r->st.last_rx_ms / 1000));
		con_lit(o, "</td>");
	} else {
		con_lit(o, "<td class=\"seen\"><span class=\"none\">never</span></td>");
	}
	if (r->has_battery)
		con_fmt(o, "<td class=\"battery%s\">%u %%</td>", r->battery < 20 ? " stale" : "",
		        r->battery);
	else
		con_lit(o, "<td class=\"battery\"><span class=\"none\">\xe2\x80\x94</span></td>");
	con_lit(o, "<td class=\"fw\">");
	if (r->has_fw)
		con_text(o, r->fw);
	else
		con_lit(o, "<span class=\"none\">\xe2\x80\x94</span>");
	con_lit(o, "</td>");
	if (r->cert_not_after > 0) {
		int64_t left = r->cert_not_after - now;

		con_lit(o, left <= 0 ? "<td class=\"cert stale\">" : "<td class=\"cert\">");
		if (left <= 0)
			con_lit(o, "expired");
		else
			con_fmt(o, "in %" PRId64 " days", left / 86400);
		out_time(o, r->cert_not_after);
		con_lit(o, "</td>");
	} else {
		con_lit(o, "<td class=\"cert\"><span class=\"none\">not enrolled</span></td>");
	}
	if (r->has_store)
		con_fmt(o,
		        "<td class=\"missing\">%" PRIu64 "<span class=\"t\">of %" PRIu64
		        " stored</span></td>",
		        r->st.missing, r->st.stored);
	else
		con_lit(o, "<td class=\"missing\"><span class=\"none\">\xe2\x80\x94</span></td>");
	con_fmt(o, "<td class=\"refused\">%" PRIu64, r->refused);
	if (r->stage[0] != '\0') {
		con_lit(o, "<span class=\"t\">last: ");
		con_text(o, r->stage);
		con_lit(o, "</span>");
	}
	con_lit(o, "</td><td class=\"actions\">");
	if (may_revoke(r->status)) {
		con_lit(o, "<a class=\"act\" href=\"/fleet/");
		con_text(o, r->id);
		con_lit(o, "/revoke\">Revoke\xe2\x80\xa6</a> ");
	}
	if (may_decommission(r->status)) {
		con_lit(o, "<a class=\"act\" href=\"/fleet/");
		con_text(o, r->id);
		con_lit(o, "/decommission\">Decommission\xe2\x80\xa6</a>");
	}
	if (rotate && may_rotate(r)) {
		con_lit(o, " <a class=\"act\" href=\"/fleet/");
		con_text(o, r->id);
		con_lit(o, "/rotate\">Rotate epoch\xe2\x80\xa6</a>");
	}
	con_lit(o, "</td></tr>");
}

static void fleet_page(struct mt_console *c, const struct mt_https_req *rq,
                       struct mt_https_resp *rs, struct session *s, int64_t now,
                       const struct fleet *f)
{
	struct out o = {0};
	uint64_t now_ms = mt_deploy_now_ms();
	size_t named = 0;
	bool rotate;

	con_page_start(c, &o, "Fleet", s, NULL);
	con_lit(&o, "<h1>Fleet</h1><form class=\"filter\" method=\"get\" action=\"/fleet\">"
	            "<label>Status <select name=\"status\"><option value=\"\">all</option>");
	for (int i = MT_DEV_MANIFESTED; i <= MT_DEV_RELEASED; i++)
		con_fmt(&o, "<option value=\"%s\"%s>%s</option>",
		        mt_dev_status_name((enum mt_dev_status)i),
		        f->want == (enum mt_dev_status)i ? " selected" : "",
		        mt_dev_status_name((enum mt_dev_status)i));
	con_lit(&o, "</select></label> <button type=\"submit\">Show</button></form>");
	if (f->total > f->n)
		con_fmt(&o, "<p class=\"note\">%zu devices; the first %zu (by id) are shown.</p>",
		        f->total, f->n);
	else
		con_fmt(&o, "<p class=\"small\">%zu device%s.</p>", f->n, f->n == 1 ? "" : "s");
	if (c->store == NULL)
		con_lit(&o,
		        "<p class=\"note\">The readings store could not be opened: patients, last "
		        "seen, battery, firmware and counters are not shown.</p>");
	con_lit(&o, "<table class=\"fleet\"><thead><tr><th>Device</th><th>Status</th>"
	            "<th>Patient</th><th>Last seen</th><th>Battery</th><th>Firmware</th>"
	            "<th>Certificate expires</th><th>Missing counters</th>"
	            "<th>Refused packets</th><th>Actions</th></tr></thead><tbody>");
	rotate = rotate_hooked(c);
	for (size_t i = 0; i < f->n; i++) {
		fleet_row(&o, &f->r[i], now, now_ms, rotate);
		named += f->r[i].has_patient;
	}
	if (f->n == 0)
		con_lit(&o, "<tr><td colspan=\"10\" class=\"none\">No devices.</td></tr>");
	con_lit(&o, "</tbody></table>");
	con_fmt(&o,
	        "<p class=\"small\">Last seen: the hub's clock when the newest packet arrived. "
	        "Missing counters: counters below the highest stored that the store does not "
	        "hold. Refused packets: summed from the newest %d packet.refused audit "
	        "records (%zu read).</p>",
	        REFUSED_SCAN, f->refusal_records);
	con_page_end(&o);
	if (named > 0 && view_audit_due(s->user, now))
		con_audit(c, s->user, rq, "console.fleet.view", s->user, MT_AUDIT_OK,
		          "\"devices\":%zu,\"patients_named\":%zu", f->n, named);
	con_send_page(rs, 200, &o);
}

static void fleet_json(struct mt_https_resp *rs, const struct fleet *f)
{
	struct out o = {0};

	con_lit(&o, "{\"devices\":[");
	for (size_t i = 0; i < f->n; i++) {
		const struct frow *r = &f->r[i];

		con_lit(&o, i ? ",{\"id\":" : "{\"id\":");
		con_json(&o, r->id);
		con_lit(&o, ",\"class\":");
		con_json(&o, r->cls);
		con_fmt(&o, ",\"status\":\"%s\",\"reason\":", mt_dev_status_name(r->status));
		con_json(&o, r->reason);
		con_fmt(&o, ",\"onboarded\":%s,\"epoch\":%u,\"patient\":",
		        r->onboarded ? "true" : "false", (unsigned)r->epoch);
		if (r->has_patient) {
			con_fmt(&o, "{\"id\":%" PRId64 ",\"ward\":", r->patient_id);
			con_json(&o, r->ward);
			con_lit(&o, ",\"bed\":");
			con_json(&o, r->bed);
			con_lit(&o, ",\"name\":");
			con_json(&o, r->name);
			con_lit(&o, "}");
		} else {
			con_lit(&o, "null");
		}
		if (r->has_store && r->st.last_rx_ms > 0)
			con_fmt(&o, ",\"last_seen_ms\":%" PRIu64, r->st.last_rx_ms);
		else
			con_lit(&o, ",\"last_seen_ms\":null");
		if (r->has_battery)
			con_fmt(&o, ",\"battery\":%u", r->battery);
		else
			con_lit(&o, ",\"battery\":null");
		con_lit(&o, ",\"firmware\":");
		if (r->has_fw)
			con_json(&o, r->fw);
		else
			con_lit(&o, "null");
		if (r->cert_not_after > 0)
			con_fmt(&o, ",\"cert_not_after\":%" PRId64, r->cert_not_after);
		else
			con_lit(&o, ",\"cert_not_after\":null");
		if (r->has_store)
			con_fmt(&o, ",\"stored\":%" PRIu64 ",\"missing_counters\":%" PRIu64,
			        r->st.stored, r->st.missing);
		else
			con_lit(&o, ",\"stored\":null,\"missing_counters\":null");
		con_fmt(&o, ",\"refused_packets\":%" PRIu64 "}", r->refused);
	}
	con_fmt(&o, "],\"total\":%zu,\"refusal_records_read\":%zu}", f->total, f->refusal_records);
	con_send_json(rs, 200, &o);
}

static void view_list(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
                      struct session *s, int64_t now, bool api)
{
	struct fleet f;
	enum mt_err e;

	memset(&f, 0, sizeof f);
	if (!parse_status_query(rq->query, &f.want)) {
		if (api)
			con_api_error(rs, 400, "the only filter is status=<a device status>");
		else
			con_message(
			        c, rs, 400, s, "Bad request",
			        "The only filter is a device status: manifested, active, revoked, "
			        "decommissioned or released.");
		return;
	}
	e = read_registry(c, f.want, &f);
	if (e != MT_OK) {
		fleet_free(&f);
		fprintf(stderr, "medtrustd: console: reading the registry: %s\n", mt_err_str(e));
		if (api)
			con_api_error(rs, 503, "the registry could not be read");
		else
			con_message(c, rs, 503, s, "Registry unavailable",
			            "The device registry could not be read just now; try again.");
		return;
	}
	read_store(c, &f);
	read_refusals(c, &f);
	if (api)
		fleet_json(rs, &f);
	else
		fleet_page(c, rq, rs, s, now, &f);
	fleet_free(&f);
}

/* ---- revoke, decommission ------------------------------------------------------------------ */

/* The reasons a biomedical engineer may give (RFC 5280 names; the CLI
 * accepts a few more, which are the CA's business). */
static const struct {
	const char *name, *label;
} console_reasons[] = {
        {"keyCompromise", "Key compromise: its key may be known to someone else"},
        {"privilegeWithdrawn", "Privilege withdrawn: it must no longer send data"},
        {"affiliationChanged", "Affiliation changed: it now belongs elsewhere"},
        {"superseded", "Superseded: replaced by another device"},
        {"cessationOfOperation", "Cessation of operation: out of service"},
        {"unspecified", "Unspecified"},
};

static bool console_reason(const char *v, enum mt_pki_reason *out)
{
	if (v == NULL)
		return false;
	for (size_t i = 0; i < sizeof console_reasons / sizeof console_reasons[0]; i++)
		if (strcmp(v, console_reasons[i].name) == 0)
			return mt_lifecycle_reason(v, out);
	return false;
}

/* "/fleet/<id>/<verb>": the id (shape checked) and the action. */
static bool parse_action_path(const char *p, char id[MT_DEVICE_ID_MAX + 1],
                              enum mt_lifecycle_act *act)
{
	const char *rest = p + sizeof "/fleet/" - 1, *slash = strchr(rest, '/');
	size_t n;

	if (slash == NULL)
		return false;
	n = (size_t)(slash - rest);
	if (n == 0 || n > MT_DEVICE_ID_MAX || !mt_device_id_valid(rest, n))
		return false;
	memcpy(id, rest, n);
	id[n] = '\0';
	if (strcmp(slash, "/revoke") == 0)
		*act = MT_LC_REVOKE;
	else if (strcmp(slash, "/decommission") == 0)
		*act = MT_LC_DECOMMISSION;
	else
		return false;
	return true;
}

static const char *verb_of(enum mt_lifecycle_act act)
{
	return act == MT_LC_REVOKE ? "revoke" : "decommission";
}

/* One device as the confirmation page needs it: the registry's record
 * and its patient. */
static enum mt_err one_device(struct mt_console *c, const char *id, struct frow *r)
{
	const char *db = mt_deploy_get(c->d, "db_path");
	struct mt_registry *reg = NULL;
	struct mt_device_rec *d = calloc(1, sizeof *d);
	enum mt_err e;
	struct fleet f;

	memset(r, 0, sizeof *r);
	if (d == NULL)
		return MT_ERR_NOMEM;
	e = db != NULL ? mt_registry_open_readonly(db, &reg) : MT_ERR_ARG;
	if (e == MT_OK)
		e = mt_registry_device(reg, id, d);
	mt_registry_close(reg);
	if (e == MT_OK) {
		memset(&f, 0, sizeof f);
		f.r = r;
		(void)fleet_add(d, &f);
		pthread_mutex_lock(&c->store_lock);
		if (c->store != NULL)
			read_patient(c, mt_deploy_now_ms(), r);
		pthread_mutex_unlock(&c->store_lock);
	}
	free(d);
	return e;
}

/* ", measuring NAME (WARD, bed BED)" when the device has a patient: the
 * confirmation pages say whose monitoring the action stops. */
static void patient_clause(struct out *o, const struct frow *r)
{
	if (!r->has_patient)
		return;
	con_lit(o, ", measuring ");
	con_text(o, r->name);
	con_lit(o, " (");
	con_text(o, r->ward);
	con_lit(o, ", bed ");
	con_text(o, r->bed);
	con_lit(o, ")");
}

static void confirm_page(struct mt_console *c, struct mt_https_resp *rs, int status,
                         const struct session *s, const struct frow *r, enum mt_lifecycle_act act,
                         const char *msg)
{
	struct out o = {0};
	const char *verb = verb_of(act);

	con_page_start(c, &o, act == MT_LC_REVOKE ? "Revoke a device" : "Decommission a device", s,
	               NULL);
	con_lit(&o, "<form class=\"box wide\" method=\"post\" action=\"/fleet/");
	con_text(&o, r->id);
	con_fmt(&o, "/%s\"><h1>%s <span class=\"dev\">", verb,
	        act == MT_LC_REVOKE ? "Revoke" : "Decommission");
	con_text(&o, r->id);
	con_fmt(&o, "</span></h1><p>Now <b>%s</b>", mt_dev_status_name(r->status));
	patient_clause(&o, r);
	con_lit(&o, ".</p><p>What happens:</p><ul>"
	            "<li>every certificate of the device is revoked and a new certificate "
	            "revocation list is signed at once;</li>"
	            "<li>the hub and the broker refuse its packets from the next one on: "
	            "<b>its readings stop reaching the console and the patient's record</b>;</li>"
	            "<li>the deployment's revoke hook, if one is configured, is run;</li>");
	if (act == MT_LC_REVOKE)
		con_lit(&o,
		        "<li>it cannot enrol again: to bring it back it must be decommissioned, "
		        "released and claimed by a new manifest.</li>");
	else
		con_lit(&o,
		        "<li>it is marked decommissioned; its records stay. It can only come back "
		        "through <code>medtrust device release</code> and a new manifest.</li>");
	con_lit(&o, "</ul>");
	con_alert(&o, msg);
	if (act == MT_LC_REVOKE) {
		con_lit(&o, "<label>Reason<select name=\"reason\" required>"
		            "<option value=\"\">choose\xe2\x80\xa6</option>");
		for (size_t i = 0; i < sizeof console_reasons / sizeof console_reasons[0]; i++)
			con_fmt(&o, "<option value=\"%s\">%s</option>", console_reasons[i].name,
			        console_reasons[i].label);
		con_lit(&o, "</select></label>");
	}
	con_lit(&o, "<label>Type the device id to confirm<input name=\"confirm\" "
	            "autocomplete=\"off\" spellcheck=\"false\" required></label>");
	con_csrf_field(&o, s);
	con_fmt(&o,
	        "<button type=\"submit\" class=\"danger\">%s</button> "
	        "<a href=\"/fleet\">Cancel</a></form>",
	        act == MT_LC_REVOKE ? "Revoke" : "Decommission");
	con_page_end(&o);
	con_send_page(rs, status, &o);
}

static void result_page(struct mt_console *c, struct mt_https_resp *rs, const struct session *s,
                        const char *id, enum mt_lifecycle_act act,
                        const struct mt_lifecycle_result *res)
{
	struct out o = {0};
	char when[32];

	con_page_start(c, &o, act == MT_LC_REVOKE ? "Device revoked" : "Device decommissioned", s,
	               NULL);
	con_lit(&o, "<div class=\"box wide\"><h1><span class=\"dev\">");
	con_text(&o, id);
	con_fmt(&o, "</span> %s</h1><ul>", act == MT_LC_REVOKE ? "revoked" : "decommissioned");
	con_fmt(&o, "<li>status now: <b>%s</b></li>",
	        res->status ? mt_dev_status_name(res->status) : "unknown");
	con_fmt(&o, "<li>%zu certificate%s revoked</li>", res->n_certs,
	        res->n_certs == 1 ? "" : "s");
	utc(res->crl_next_update, when);
	if (res->crl == MT_OK)
		con_fmt(&o,
		        "<li>a new certificate revocation list was signed (next update %s)</li>",
		        when[0] ? when : "?");
	else
		con_lit(&o, "<li class=\"msg\">the new certificate revocation list could not be "
		            "signed: the revocation stands in the registry; run <code>medtrust crl "
		            "refresh</code></li>");
	if (!res->hook_configured)
		con_lit(&o, "<li>no revoke hook is configured</li>");
	else if (res->hook == MT_OK)
		con_lit(&o, "<li>the revoke hook ran</li>");
	else
		con_lit(&o, "<li class=\"msg\">the revoke hook failed (the revocation stands); see "
		            "the hub's log</li>");
	con_lit(&o, "</ul><p>The hub refuses the device's packets from now on.</p>"
	            "<p><a href=\"/fleet\">Back to the fleet</a></p></div>");
	con_page_end(&o);
	con_send_page(rs, 200, &o);
}

/* The change, on a registry connection of this request's, with the hub's
 * CA (see the file's essay); the CLI runs the same mt_lifecycle_change. */
static enum mt_err apply_change(struct mt_console *c, const char *id, enum mt_lifecycle_act act,
                                enum mt_pki_reason reason, int64_t now,
                                struct mt_lifecycle_result *res)
{
	const char *db = mt_deploy_get(c->d, "db_path");
	struct mt_deploy own;
	enum mt_err e;

	memset(res, 0, sizeof *res);
	memset(&own, 0, sizeof own);
	own.conf = c->d->conf;       /* read-only after the deployment opened */
	own.ca_key = c->d->ca_key;   /* the hub's; a key serialises its own use */
	own.ca_cert = c->d->ca_cert; /* read-only */
	e = db != NULL ? mt_registry_open(db, &own.reg) : MT_ERR_ARG;
	if (e != MT_OK) {
		res->change = e;
		return e;
	}
	e = mt_lifecycle_change(&own, act, id, reason, now, res);
	mt_registry_close(own.reg);
	if (own.ca_key != c->d->ca_key) /* opened by mt_deploy_open_ca for this call */
		mt_key_free(own.ca_key);
	if (own.ca_cert != c->d->ca_cert)
		mt_cert_free(own.ca_cert);
	return e;
}

static void audit_change(struct mt_console *c, const struct session *s,
                         const struct mt_https_req *rq, enum mt_lifecycle_act act, const char *id,
                         enum mt_audit_outcome outcome, bool refused, const char *members)
{
	char action[80];

	(void)snprintf(action, sizeof action, "%s%s", mt_lifecycle_action(act),
	               refused ? ".refused" : "");
	con_audit(c, s->user, rq, action, id, outcome, "\"via\":\"console\",%s", members);
}

/* What every action's POST does first: the form, its CSRF token, a
 * recent password (else /reauth and back to /fleet/<id>/<verb>), the
 * device as the registry has it now.  false: the answer is set. */
static bool action_start(struct mt_console *c, const struct mt_https_req *rq,
                         struct mt_https_resp *rs, struct session *s, int64_t now,
                         const char *id, const char *verb, struct mt_form *f, struct frow *r)
{
	char back[MT_DEVICE_ID_MAX + 32];
	enum mt_err e;

	if (!con_read_form(c, rq, rs, f) || !con_csrf_ok(c, rq, rs, s, f))
		return false;
	(void)snprintf(back, sizeof back, "/fleet/%s/%s", id, verb);
	if (!con_recent_auth(c, rs, s, now, back))
		return false;
	e = one_device(c, id, r);
	if (e == MT_ERR_REG_UNKNOWN) {
		not_found(c, rs, s, false);
		return false;
	}
	if (e != MT_OK) {
		con_message(c, rs, 503, s, "Registry unavailable",
		            "The device registry could not be read just now; nothing was changed.");
		return false;
	}
	return true;
}

static void do_change(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
                      struct session *s, int64_t now, const char *id, enum mt_lifecycle_act act)
{
	struct mt_form *f = calloc(1, sizeof *f);
	struct mt_lifecycle_result res;
	enum mt_pki_reason reason = MT_PKI_REASON_CESSATION_OF_OPERATION;
	char members[480];
	const char *confirm;
	struct frow *r = calloc(1, sizeof *r);
	enum mt_err e;

	if (f == NULL || r == NULL) {
		con_message(c, rs, 503, s, "Busy", "The hub is short of memory; try again.");
		goto out;
	}
	if (!action_start(c, rq, rs, s, now, id, verb_of(act), f, r))
		goto out;
	confirm = mt_form_get(f, "confirm");
	if (confirm == NULL || strcmp(confirm, id) != 0) {
		audit_change(c, s, rq, act, id, MT_AUDIT_REFUSED, true,
		             "\"reason\":\"confirmation_mismatch\"");
		confirm_page(c, rs, 400, s, r, act,
		             "The device id typed does not match: nothing was changed.");
		goto out;
	}
	if (act == MT_LC_REVOKE && !console_reason(mt_form_get(f, "reason"), &reason)) {
		audit_change(c, s, rq, act, id, MT_AUDIT_REFUSED, true, "\"reason\":\"no_reason\"");
		confirm_page(c, rs, 400, s, r, act, "Choose a reason: nothing was changed.");
		goto out;
	}
	e = apply_change(c, id, act, reason, now, &res);
	mt_lifecycle_detail(act, reason, &res, members, sizeof members);
	if (e == MT_OK) {
		audit_change(c, s, rq, act, id, MT_AUDIT_OK, false, members);
		if (res.crl != MT_OK || res.hook != MT_OK)
			fprintf(stderr, "medtrustd: console: %s %s by %s: crl %s, hook %s\n",
			        verb_of(act), id, s->user, mt_err_str(res.crl),
			        mt_err_str(res.hook));
		result_page(c, rs, s, id, act, &res);
	} else if (e == MT_ERR_REG_STATE || e == MT_ERR_REG_UNKNOWN) {
		audit_change(c, s, rq, act, id, MT_AUDIT_REFUSED, true, members);
		if (res.status != 0)
			r->status = res.status;
		confirm_page(c, rs, 409, s, r, act,
		             "The device's status does not allow this (someone may have changed it "
		             "meanwhile): nothing was changed.");
	} else {
		audit_change(c, s, rq, act, id, MT_AUDIT_ERROR, true, members);
		fprintf(stderr, "medtrustd: console: %s %s: %s\n", verb_of(act), id, mt_err_str(e));
		con_message(
		        c, rs, 503, s, "Registry unavailable",
		        "The device registry could not be changed just now; nothing was changed.");
	}
out:
	if (f != NULL)
		mt_form_wipe(f);
	free(f);
	if (r != NULL)
		mt_wipe(r, sizeof *r);
	free(r);
}

static void view_action(struct mt_console *c, const struct mt_https_req *rq,
                        struct mt_https_resp *rs, struct session *s, int64_t now)
{
	bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;
	char id[MT_DEVICE_ID_MAX + 1];
	enum mt_lifecycle_act act;
	struct frow *r;
	enum mt_err e;

	if (!parse_action_path(rq->path, id, &act)) {
		not_found(c, rs, s, false);
		return;
	}
	if (!get && !post) {
		bad_method(c, rs, s, false, "GET, POST");
		return;
	}
	if (rq->query != NULL) {
		con_message(c, rs, 400, s, "Bad request", "Unexpected query string.");
		return;
	}
	if (post) {
		do_change(c, rq, rs, s, now, id, act);
		return;
	}
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		con_message(c, rs, 503, s, "Busy", "The hub is short of memory; try again.");
		return;
	}
	e = one_device(c, id, r);
	if (e == MT_ERR_REG_UNKNOWN)
		not_found(c, rs, s, false);
	else if (e != MT_OK)
		con_message(c, rs, 503, s, "Registry unavailable",
		            "The device registry could not be read just now; try again.");
	else if (act == MT_LC_REVOKE ? !may_revoke(r->status) : !may_decommission(r->status))
		con_message(c, rs, 409, s, "Nothing to do",
		            act == MT_LC_REVOKE
		                    ? "Only a manifested or active device can be revoked."
		                    : "Only a manifested, active or revoked device can be "
		                      "decommissioned.");
	else
		confirm_page(c, rs, 200, s, r, act, NULL);
	mt_wipe(r, sizeof *r);
	free(r);
}

/* ---- rotate epoch ------------------------------------------------------------------------------ */

/* The hook (mt_console_set_rotate) is read and called under this lock, so
 * clearing it waits for a rotation in progress (medtrustd clears it before
 * it stops the ingest).  Rotations are rare and one at a time anyway: the
 * ingest sends one command at a time. */
static pthread_mutex_t rotate_lock = PTHREAD_MUTEX_INITIALIZER;

void mt_console_set_rotate(struct mt_console *c, mt_console_rotate_fn fn, void *arg)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&rotate_lock);
	c->rotate = fn;
	c->rotate_arg = arg;
	pthread_mutex_unlock(&rotate_lock);
}

static bool rotate_hooked(struct mt_console *c)
{
	bool on;

	pthread_mutex_lock(&rotate_lock);
	on = c->rotate != NULL;
	pthread_mutex_unlock(&rotate_lock);
	return on;
}

/* "/fleet/<id>/rotate": the id (shape checked). */
static bool parse_rotate_path(const char *p, char id[MT_DEVICE_ID_MAX + 1])
{
	const char *rest = p + sizeof "/fleet/" - 1, *slash = strchr(rest, '/');
	size_t n;

	if (slash == NULL || strcmp(slash, "/rotate") != 0)
		return false;
	n = (size_t)(slash - rest);
	if (n == 0 || n > MT_DEVICE_ID_MAX || !mt_device_id_valid(rest, n))
		return false;
	memcpy(id, rest, n);
	id[n] = '\0';
	return true;
}

static void no_ingest(struct mt_console *c, struct mt_https_resp *rs, const struct session *s)
{
	con_message(c, rs, 503, s, "Telemetry ingest not running",
	            "Rotating a device's key epoch sends it a signed command over the broker, "
	            "which this hub is not connected to (its telemetry ingest is not running): "
	            "nothing was changed.");
}

static void rotate_confirm(struct mt_console *c, struct mt_https_resp *rs, int status,
                           const struct session *s, const struct frow *r, const char *msg)
{
	struct out o = {0};

	con_page_start(c, &o, "Rotate a device's key epoch", s, NULL);
	con_lit(&o, "<form class=\"box wide\" method=\"post\" action=\"/fleet/");
	con_text(&o, r->id);
	con_lit(&o, "/rotate\"><h1>Rotate the key epoch of <span class=\"dev\">");
	con_text(&o, r->id);
	con_fmt(&o, "</span></h1><p>Now <b>%s</b>, key epoch <b>%u</b>",
	        mt_dev_status_name(r->status), (unsigned)r->epoch);
	patient_clause(&o, r);
	/* con_fmt writes at most 511 bytes a call: the sentences go in pieces */
	con_fmt(&o,
	        ".</p><p>What happens:</p><ul>"
	        "<li>the hub moves the device to key epoch <b>%u</b> and sends it a "
	        "<b>rotate-epoch command signed with the hub's command key</b>;</li>",
	        (unsigned)r->epoch + 1);
	con_fmt(&o,
	        "<li>the device checks the signature against the command certificate it "
	        "pinned at onboarding, encrypts its new packets under the keys of epoch %u "
	        "and answers with an acknowledgement;</li>",
	        (unsigned)r->epoch + 1);
	con_fmt(&o,
	        "<li>packets of epoch %u (sealed before the command arrived, or sent again "
	        "from the device's queue) are still accepted <b>until the next rotation</b>: "
	        "readings are not interrupted.</li></ul>",
	        (unsigned)r->epoch);
	con_alert(&o, msg);
	con_lit(&o, "<label>Type the device id to confirm<input name=\"confirm\" "
	            "autocomplete=\"off\" spellcheck=\"false\" required></label>");
	con_csrf_field(&o, s);
	con_lit(&o, "<button type=\"submit\">Rotate epoch</button> "
	            "<a href=\"/fleet\">Cancel</a></form>");
	con_page_end(&o);
	con_send_page(rs, status, &o);
}

static void rotate_result(struct mt_console *c, struct mt_https_resp *rs, const struct session *s,
                          const char *id, uint32_t old_epoch, uint32_t new_epoch, uint64_t ctr)
{
	struct out o = {0};

	con_page_start(c, &o, "Key epoch rotated", s, NULL);
	con_lit(&o, "<div class=\"box wide\"><h1>Key epoch of <span class=\"dev\">");
	con_text(&o, id);
	con_fmt(&o,
	        "</span> rotated</h1><ul>"
	        "<li>key epoch now: <b class=\"epoch\">%u</b> (was %u)</li>"
	        "<li>the signed rotate-epoch command (command counter %" PRIu64 ") was "
	        "sent to the device</li>",
	        (unsigned)new_epoch, (unsigned)old_epoch, ctr);
	con_fmt(&o,
	        "<li>packets of epoch %u are still accepted until the next rotation</li></ul>",
	        (unsigned)old_epoch);
	con_lit(&o, "<p>The device switches when the command reaches it and answers with an "
	            "acknowledgement; a device that is offline gets it when it reconnects.</p>"
	            "<p><a href=\"/fleet\">Back to the fleet</a></p></div>");
	con_page_end(&o);
	con_send_page(rs, 200, &o);
}

static void rotate_post(struct mt_console *c, const struct mt_https_req *rq,
                        struct mt_https_resp *rs, struct session *s, int64_t now, const char *id,
                        struct frow *r)
{
	struct mt_form *f = calloc(1, sizeof *f);
	char why[192] = "", wj[256];
	const char *confirm;
	uint32_t old_epoch = 0, new_epoch = 0;
	uint64_t ctr = 0;
	bool hooked;
	enum mt_err e;

	if (f == NULL) {
		con_message(c, rs, 503, s, "Busy", "The hub is short of memory; try again.");
		return;
	}
	if (!action_start(c, rq, rs, s, now, id, "rotate", f, r))
		goto out;
	confirm = mt_form_get(f, "confirm");
	if (confirm == NULL || strcmp(confirm, id) != 0) {
		con_audit(c, s->user, rq, "device.rotate_epoch", id, MT_AUDIT_REFUSED,
		          "\"via\":\"console\",\"reason\":\"confirmation_mismatch\"");
		rotate_confirm(c, rs, 400, s, r,
		               "The device id typed does not match: nothing was changed.");
		goto out;
	}
	if (!may_rotate(r)) {
		con_audit(c, s->user, rq, "device.rotate_epoch", id, MT_AUDIT_REFUSED,
		          "\"via\":\"console\",\"reason\":\"status\",\"status\":\"%s\"",
		          mt_dev_status_name(r->status));
		con_message(c, rs, 409, s, "Nothing to do",
		            "Only an active, onboarded device's key epoch can be rotated.");
		goto out;
	}
	pthread_mutex_lock(&rotate_lock);
	hooked = c->rotate != NULL;
	e = hooked ? c->rotate(c->rotate_arg, id, &old_epoch, &new_epoch, &ctr, why, sizeof why)
	           : MT_ERR_UNSUPPORTED;
	pthread_mutex_unlock(&rotate_lock);
	mt_deploy_json_str(why[0] ? why : mt_err_str(e), wj, sizeof wj);
	if (e == MT_OK) {
		con_audit(c, s->user, rq, "device.rotate_epoch", id, MT_AUDIT_OK,
		          "\"via\":\"console\",\"old_epoch\":%u,\"new_epoch\":%u,"
		          "\"command_counter\":%" PRIu64,
		          (unsigned)old_epoch, (unsigned)new_epoch, ctr);
		rotate_result(c, rs, s, id, old_epoch, new_epoch, ctr);
	} else if (e == MT_ERR_REG_STATE || e == MT_ERR_REG_UNKNOWN) {
		con_audit(c, s->user, rq, "device.rotate_epoch", id, MT_AUDIT_REFUSED,
		          "\"via\":\"console\",\"reason\":\"status\",\"why\":%s", wj);
		con_message(c, rs, 409, s, "Nothing to do",
		            "The device's status does not allow this (someone may have changed it "
		            "meanwhile): nothing was changed.");
	} else if (ctr == 0) { /* before the registry: nothing changed */
		con_audit(c, s->user, rq, "device.rotate_epoch", id, MT_AUDIT_ERROR,
		          "\"via\":\"console\",\"reason\":\"%s\",\"why\":%s",
		          !hooked ? "no_ingest"
		          : e == MT_ERR_UNSUPPORTED ? "no_command_key"
		                                    : "not_sent",
		          wj);
		fprintf(stderr, "medtrustd: console: rotate %s: %s\n", id, why[0] ? why : mt_err_str(e));
		if (!hooked)
			no_ingest(c, rs, s);
		else
			con_message(c, rs, 503, s, "Command not sent",
			            "The command could not be sent just now (see the hub's log); "
			            "nothing was changed.");
	} else { /* the epoch moved, the command did not leave */
		con_audit(c, s->user, rq, "device.rotate_epoch", id, MT_AUDIT_ERROR,
		          "\"via\":\"console\",\"reason\":\"not_sent\",\"old_epoch\":%u,"
		          "\"new_epoch\":%u,\"command_counter\":%" PRIu64 ",\"why\":%s",
		          (unsigned)old_epoch, (unsigned)new_epoch, ctr, wj);
		fprintf(stderr, "medtrustd: console: rotate %s: %s\n", id, why[0] ? why : mt_err_str(e));
		con_message(c, rs, 503, s, "Command not sent",
		            "The hub moved the device to the next key epoch but the command could not "
		            "be sent (see the hub's log). The device keeps its epoch, which the hub "
		            "still accepts; rotate again once the hub is connected.");
	}
out:
	mt_form_wipe(f);
	free(f);
}

static void view_rotate(struct mt_console *c, const struct mt_https_req *rq,
                        struct mt_https_resp *rs, struct session *s, int64_t now, const char *id)
{
	bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;
	struct frow *r;
	enum mt_err e;

	if (!get && !post) {
		bad_method(c, rs, s, false, "GET, POST");
		return;
	}
	if (rq->query != NULL) {
		con_message(c, rs, 400, s, "Bad request", "Unexpected query string.");
		return;
	}
	if (!rotate_hooked(c)) {
		if (post)
			con_audit(c, s->user, rq, "device.rotate_epoch", id, MT_AUDIT_ERROR,
			          "\"via\":\"console\",\"reason\":\"no_ingest\"");
		no_ingest(c, rs, s);
		return;
	}
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		con_message(c, rs, 503, s, "Busy", "The hub is short of memory; try again.");
		return;
	}
	if (post) {
		rotate_post(c, rq, rs, s, now, id, r);
	} else {
		e = one_device(c, id, r);
		if (e == MT_ERR_REG_UNKNOWN)
			not_found(c, rs, s, false);
		else if (e != MT_OK)
			con_message(c, rs, 503, s, "Registry unavailable",
			            "The device registry could not be read just now; try again.");
		else if (!may_rotate(r))
			con_message(c, rs, 409, s, "Nothing to do",
			            "Only an active, onboarded device's key epoch can be rotated.");
		else
			rotate_confirm(c, rs, 200, s, r, NULL);
	}
	mt_wipe(r, sizeof *r);
	free(r);
}

/* ---- GET /onboarding ------------------------------------------------------------------------ */

struct attempt {
	uint64_t seq, time_ms;
	char action[MT_AUDIT_ACTION_MAX + 1];
	char actor[MT_AUDIT_ACTOR_MAX + 1];
	char subject[MT_AUDIT_SUBJECT_MAX + 1];
	char reason[160];
	char source[64];
};

struct attempts {
	struct attempt *a;
	size_t n, cap;
};

/* What the EST and onboarding service (hub.c) and the CLI write when they
 * refuse a device or a manifest. */
static const char *const refusal_actions[] = {
        "est.enroll.refused", "est.reenroll.refused",    "est.rate_limited",
        "onboard.refused",    "manifest.import.refused", "trust.add_manufacturer.refused",
};

static void detail_str(json_t *j, const char *key, char *out, size_t cap)
{
	json_t *v = j ? json_object_get(j, key) : NULL;

	if (json_is_string(v))
		(void)snprintf(out, cap, "%s", json_string_value(v));
	else if (json_is_integer(v))
		(void)snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
}

static enum mt_err attempt_cb(const struct mt_audit_record *r, void *arg)
{
	struct attempts *l = arg;
	struct attempt *a;
	json_t *j;

	if (l->n >= l->cap)
		return MT_OK;
	a = &l->a[l->n++];
	memset(a, 0, sizeof *a);
	a->seq = r->seq;
	a->time_ms = r->time_ms;
	(void)snprintf(a->action, sizeof a->action, "%s", r->action);
	(void)snprintf(a->actor, sizeof a->actor, "%s", r->actor);
	(void)snprintf(a->subject, sizeof a->subject, "%s", r->subject);
	j = json_loads(r->detail, 0, NULL);
	detail_str(j, "reason", a->reason, sizeof a->reason);
	detail_str(j, "source", a->source, sizeof a->source);
	json_decref(j);
	return MT_OK;
}

static int attempt_newest_first(const void *pa, const void *pb)
{
	const struct attempt *a = pa, *b = pb;

	return a->seq < b->seq ? 1 : a->seq > b->seq ? -1 : 0;
}

/* The newest ATTEMPTS_SHOWN refusals of every kind, newest first. */
static enum mt_err read_attempts(struct mt_console *c, struct attempts *l)
{
	const size_t kinds = sizeof refusal_actions / sizeof refusal_actions[0];
	const char *db = mt_deploy_get(c->d, "db_path");
	enum mt_err e = MT_OK;

	l->cap = kinds * ATTEMPTS_SHOWN;
	l->a = calloc(l->cap, sizeof *l->a);
	if (l->a == NULL)
		return MT_ERR_NOMEM;
	if (db == NULL)
		return MT_ERR_ARG;
	for (size_t i = 0; e == MT_OK && i < kinds; i++) {
		struct mt_audit_search q;
		size_t before = l->n;

		memset(&q, 0, sizeof q);
		q.action = refusal_actions[i];
		q.outcome = -1;
		q.events_only = true;
		q.limit = ATTEMPTS_SHOWN;
		e = mt_audit_search(db, &q, attempt_cb, l);
		/* a prefix: est.enroll.refused must not gather other actions */
		for (size_t k = before; k < l->n; k++)
			if (strcmp(l->a[k].action, refusal_actions[i]) != 0)
				l->a[k].seq = 0;
	}
	qsort(l->a, l->n, sizeof *l->a, attempt_newest_first);
	while (l->n > 0 && l->a[l->n - 1].seq == 0)
		l->n--;
	if (l->n > ATTEMPTS_SHOWN)
		l->n = ATTEMPTS_SHOWN;
	return e;
}

struct manifests {
	struct mt_registry_manifest *m;
	size_t n, total;
};

static enum mt_err manifest_cb(void *ctx, const struct mt_registry_manifest *m)
{
	struct manifests *l = ctx;

	if (l->n < MANIFESTS_SHOWN)
		l->m[l->n++] = *m;
	l->total++;
	return MT_OK;
}

/* Devices not yet onboarded: manifested, or enrolled without a kx key. */
static enum mt_err pending_add(const struct mt_device_rec *d, void *arg)
{
	struct fleet *f = arg;

	if (d->status == MT_DEV_MANIFESTED || (d->status == MT_DEV_ACTIVE && d->kx_spki_len == 0))
		return fleet_add(d, f);
	return MT_OK;
}

static void onboarding_page(struct mt_console *c, struct mt_https_resp *rs, struct session *s)
{
	const char *db = mt_deploy_get(c->d, "db_path");
	struct manifests ml = {0};
	struct attempts al = {0};
	struct fleet pf;
	struct mt_registry *reg = NULL;
	struct out o = {0};
	enum mt_err em, ep, ea;

	memset(&pf, 0, sizeof pf);
	ml.m = calloc(MANIFESTS_SHOWN, sizeof *ml.m);
	pf.r = calloc(FLEET_MAX, sizeof *pf.r);
	if (ml.m == NULL || pf.r == NULL || db == NULL) {
		em = ep = MT_ERR_NOMEM;
	} else {
		em = mt_registry_list_manifests(db, manifest_cb, &ml);
		ep = mt_registry_open_readonly(db, &reg);
		if (ep == MT_OK)
			ep = mt_registry_devices(reg, 0, pending_add, &pf);
		mt_registry_close(reg);
	}
	ea = read_attempts(c, &al);

	con_page_start(c, &o, "Onboarding", s, NULL);
	con_lit(&o, "<h1>Onboarding</h1><h2>Manifests imported</h2>");
	if (em != MT_OK) {
		con_lit(&o, "<p class=\"msg\">The manifests could not be read just now.</p>");
	} else {
		con_lit(&o, "<table class=\"manifests\"><thead><tr><th>Imported</th>"
		            "<th>Manufacturer</th><th>Devices</th><th>Manifest</th></tr></"
		            "thead><tbody>");
		for (size_t i = 0; i < ml.n; i++) {
			const struct mt_registry_manifest *m = &ml.m[i];
			char fp[17];

			for (size_t k = 0; k < 8; k++)
				(void)snprintf(fp + 2 * k, 3, "%02x", m->sha256[k]);
			con_lit(&o, "<tr><td>");
			out_time(&o, m->imported_at);
			con_lit(&o, "</td><td>");
			con_text(&o, m->manufacturer);
			con_fmt(&o,
			        "</td><td>%" PRIu64 "<span class=\"t\">%" PRIu64 " active, %" PRIu64
			        " revoked or decommissioned</span></td><td class=\"dev\">#%" PRId64
			        "<span class=\"t\">SHA-256 %s\xe2\x80\xa6</span></td></tr>",
			        m->entries, m->active, m->revoked, m->id, fp);
		}
		if (ml.n == 0)
			con_lit(&o, "<tr><td colspan=\"4\" class=\"none\">No manifest imported yet "
			            "(<code>medtrust manifest import</code>).</td></tr>");
		con_lit(&o, "</tbody></table>");
		if (ml.total > ml.n)
			con_fmt(&o, "<p class=\"small\">The newest %zu of %zu are shown.</p>", ml.n,
			        ml.total);
	}
	con_lit(&o, "<h2>Devices pending</h2>");
	if (ep != MT_OK) {
		con_lit(&o, "<p class=\"msg\">The registry could not be read just now.</p>");
	} else {
		size_t shown = pf.n < PENDING_SHOWN ? pf.n : PENDING_SHOWN;

		con_lit(&o, "<table class=\"pending\"><thead><tr><th>Device</th><th>Class</th>"
		            "<th>Manifest</th><th>Waiting for</th></tr></thead><tbody>");
		for (size_t i = 0; i < shown; i++) {
			const struct frow *r = &pf.r[i];

			con_lit(&o, "<tr><td class=\"dev\">");
			con_text(&o, r->id);
			con_lit(&o, "</td><td>");
			con_text(&o, r->cls);
			con_fmt(&o, "</td><td>#%" PRId64 "</td><td>%s</td></tr>", r->manifest_id,
			        r->status == MT_DEV_MANIFESTED
			                ? "enrolment (EST)"
			                : "onboarding (its key exchange key)");
		}
		if (shown == 0)
			con_lit(&o,
			        "<tr><td colspan=\"4\" class=\"none\">None: every device of the "
			        "manifests has onboarded.</td></tr>");
		con_lit(&o, "</tbody></table>");
		if (pf.total > shown)
			con_fmt(&o, "<p class=\"small\">%zu pending; the first %zu are shown.</p>",
			        pf.total, shown);
	}
	con_fmt(&o,
	        "<h2>Refused attempts</h2><p class=\"small\">Refused enrolments, "
	        "re-enrolments, onboardings, manifest imports and manufacturer roots, from the "
	        "audit chain, newest first (at most %d).</p>",
	        ATTEMPTS_SHOWN);
	if (ea != MT_OK)
		con_lit(&o, "<p class=\"msg\">The audit chain could not be read just now.</p>");
	con_lit(&o, "<table class=\"attempts\"><thead><tr><th>When</th><th>What</th>"
	            "<th>Device</th><th>From</th><th>Why</th></tr></thead><tbody>");
	for (size_t i = 0; i < al.n; i++) {
		const struct attempt *a = &al.a[i];

		con_lit(&o, "<tr><td>");
		out_time(&o, (int64_t)(a->time_ms / 1000));
		con_lit(&o, "</td><td>");
		con_text(&o, a->action);
		con_lit(&o, "</td><td class=\"dev\">");
		if (a->subject[0] != '\0')
			con_text(&o, a->subject);
		else
			con_lit(&o, "<span class=\"none\">\xe2\x80\x94</span>");
		con_lit(&o, "</td><td>");
		con_text(&o, a->source[0] != '\0' ? a->source : a->actor);
		con_lit(&o, "</td><td class=\"why\">");
		con_text(&o, a->reason);
		con_lit(&o, "</td></tr>");
	}
	if (al.n == 0)
		con_lit(&o, "<tr><td colspan=\"5\" class=\"none\">None recorded.</td></tr>");
	con_lit(&o, "</tbody></table>");
	con_page_end(&o);
	con_send_page(rs, 200, &o);
	free(ml.m);
	free(al.a);
	fleet_free(&pf);
}

/* ---- the router's entry ------------------------------------------------------------------------ */

void con_view_fleet(struct mt_console *c, const struct mt_https_req *rq, struct mt_https_resp *rs,
                    struct session *s, int64_t now)
{
	const char *p = rq->path;
	bool get = strcmp(rq->method, "GET") == 0;

	if (strcmp(p, "/fleet") == 0 || strcmp(p, "/api/fleet") == 0) {
		bool api = p[1] == 'a';

		if (!get)
			bad_method(c, rs, s, api, "GET");
		else
			view_list(c, rq, rs, s, now, api);
		return;
	}
	if (strncmp(p, "/fleet/", 7) == 0) {
		char id[MT_DEVICE_ID_MAX + 1];

		if (parse_rotate_path(p, id))
			view_rotate(c, rq, rs, s, now, id);
		else
			view_action(c, rq, rs, s, now);
		return;
	}
	if (strcmp(p, "/onboarding") == 0) {
		if (!get)
			bad_method(c, rs, s, false, "GET");
		else if (rq->query != NULL)
			con_message(c, rs, 400, s, "Bad request", "Unexpected query string.");
		else
			onboarding_page(c, rs, s);
		return;
	}
	not_found(c, rs, s, strncmp(p, "/api/", 5) == 0);
}
