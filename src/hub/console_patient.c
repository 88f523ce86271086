/*
 * console_patient.c — the patient page of the web console and the JSON it
 * draws from (console_int.h; docs/console.md, "The patient page").
 *
 *   GET /patient/<id>                      the page: identity, devices, NEWS2,
 *                                          alarms with Acknowledge, charts
 *   GET /api/patient/<id>/series?window=S  readings of the last S seconds
 *                                          (900, 3600 or 86400) as JSON
 *
 * Only clinicians reach this file (the router), and only for patients of
 * their own wards: any other patient id — unknown, of another ward,
 * malformed — gets the same 404, so the answer does not tell which ids
 * exist (F09), and the refusal of an existing patient is audited as
 * console.forbidden.
 *
 * The series.  The readings of the window are listed oldest first by the
 * store's index (device time); at most SERIES_POINTS of them are decrypted
 * and decoded — every k-th when there are more, so 24 hours at 1 Hz is
 * 86,400 readings of which about 1,500 are drawn.  The newest ECG strip is
 * looked for among the newest STRIP_LOOK readings.  Each is decrypted in
 * the hub (the store is encrypted at rest) and its COSE_Sign1 decoded
 * without verifying again: the hub verified each at ingest and stores
 * them authenticated.  The page then keeps itself current from the live
 * stream (web/patient.js).
 */
#define _POSIX_C_SOURCE 200809L

#include "console_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_cose.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_store_fhir.h"
#include "medtrust/mt_store_query.h"

#define SERIES_IDS_MAX 200000u /* readings listed per window, at most */
#define SERIES_POINTS 1500u    /* readings decoded per window, at most */
#define SERIES_CODES 16u       /* distinct codes per answer */
#define STRIP_LOOK 32u         /* newest readings searched for an ECG strip */
#define STRIP_MAX 4096u        /* samples of the strip shown */
#define NEWS2_ROWS 2048u
#define NEWS2_TABLE 20u
#define ECG_CODE 131330u

struct series {
	uint32_t code;
	size_t n, cap;
	uint64_t *t;
	double *v;
};

struct strip {
	bool has;
	uint64_t t0_ms, period_us;
	double scale;
	size_t n;
	int32_t s[STRIP_MAX];
};

struct collect {
	struct series s[SERIES_CODES];
	size_t n;
	bool failed;
};

static struct series *series_of(struct collect *k, uint32_t code)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->s[i].code == code)
			return &k->s[i];
	if (k->n == SERIES_CODES)
		return NULL;
	k->s[k->n].code = code;
	return &k->s[k->n++];
}

static void series_add(struct collect *k, uint32_t code, uint64_t t, double v)
{
	struct series *s = series_of(k, code);

	if (s == NULL || k->failed)
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		uint64_t *nt = realloc(s->t, cap * sizeof *nt);
		double *nv;

		if (nt == NULL) {
			k->failed = true;
			return;
		}
		s->t = nt;
		nv = realloc(s->v, cap * sizeof *nv);
		if (nv == NULL) {
			k->failed = true;
			return;
		}
		s->v = nv;
		s->cap = cap;
	}
	s->t[s->n] = t;
	s->v[s->n] = v;
	s->n++;
}

static void collect_free(struct collect *k)
{
	for (size_t i = 0; i < k->n; i++) {
		free(k->s[i].t);
		free(k->s[i].v);
	}
	k->n = 0;
}

/* Decrypt and decode reading `id` into c->obs (store_lock held); false
 * when it is not a vitals message that still decodes. */
static bool reading_decode(struct mt_console *c, int64_t id, struct mt_message *m)
{
	struct mt_store_row row;
	struct mt_cose_sign1 s1;
	bool ok = false;

	memset(&row, 0, sizeof row);
	if (mt_store_reading_get(c->store, id, &row) == MT_OK && row.typ == MT_TYP_VITALS &&
	    mt_cose_sign1_decode(row.sign1, row.sign1_len, true, &s1) == MT_OK &&
	    s1.payload != NULL &&
	    mt_message_decode(s1.payload, s1.payload_len, m, c->obs, MT_OBS_MAX, NULL) == MT_OK)
		ok = true;
	/* c->obs points into the row's bytes for waveforms: the caller uses
	 * them before the next call, so the row is cleared after copying */
	if (ok) {
		for (size_t i = 0; i < m->n_obs; i++)
			if (c->obs[i].waveform)
				c->obs[i].samples_len = 0; /* not kept past the row */
	}
	mt_store_row_clear(&row);
	return ok;
}

/* The newest ECG strip among the newest readings (store_lock held). */
static void find_strip(struct mt_console *c, int64_t pid, struct strip *st)
{
	int64_t ids[STRIP_LOOK];
	size_t n = 0;

	st->has = false;
	if (mt_store_latest_reading_ids(c->store, pid, 0, STRIP_LOOK, ids, &n) != MT_OK)
		return;
	for (size_t i = 0; i < n && !st->has; i++) {
		struct mt_store_row row;
		struct mt_cose_sign1 s1;
		struct mt_message m;

		memset(&row, 0, sizeof row);
		if (mt_store_reading_get(c->store, ids[i], &row) == MT_OK &&
		    row.typ == MT_TYP_VITALS &&
		    mt_cose_sign1_decode(row.sign1, row.sign1_len, true, &s1) == MT_OK &&
		    s1.payload != NULL &&
		    mt_message_decode(s1.payload, s1.payload_len, &m, c->obs, MT_OBS_MAX, NULL) ==
		            MT_OK) {
			for (size_t k = 0; k < m.n_obs; k++) {
				const struct mt_obs *o = &c->obs[k];
				uint64_t t;
				size_t got = 0;
				double scale = mt_num_to_double(&o->scale);

				if (!o->waveform || o->code != ECG_CODE ||
				    !mt_message_obs_time(&m, o, &t) || !isfinite(scale))
					continue;
				if (mt_waveform_decode(o->samples, o->samples_len, NULL, 0, &got) != MT_OK ||
				    got == 0 || got > STRIP_MAX ||
				    mt_waveform_decode(o->samples, o->samples_len, st->s, STRIP_MAX, &got) !=
				            MT_OK)
					continue;
				st->has = true;
				st->t0_ms = t;
				st->period_us = o->period_us;
				st->scale = scale;
				st->n = got;
				break;
			}
		}
		mt_store_row_clear(&row);
	}
}

/* The patient, if this clinician may see them (store_lock NOT held).
 * false: answer 404 (and audit when the patient exists elsewhere). */
static bool patient_for(struct mt_console *c, const struct mt_https_req *rq,
                        const struct session *s, int64_t pid, struct mt_patient *p)
{
	struct mt_live_filter lf;
	enum mt_err e;

	if (pid < 1 || c->store == NULL || !con_session_filter(c, s, &lf))
		return false;
	pthread_mutex_lock(&c->store_lock);
	e = mt_store_patient_get(c->store, pid, p);
	pthread_mutex_unlock(&c->store_lock);
	if (e != MT_OK)
		return false;
	if (!con_filter_allows(&lf, p->ward)) {
		con_audit(c, s->user, rq, "console.forbidden", s->user, MT_AUDIT_REFUSED,
		          "\"patient\":%" PRId64 ",\"reason\":\"not_your_ward\"", pid);
		mt_wipe(p, sizeof *p);
		return false;
	}
	return true;
}

/* ---- GET /api/patient/<id>/series ---------------------------------------------------- */

static void api_series(struct mt_console *c, const struct mt_https_req *rq,
                       struct mt_https_resp *rs, int64_t pid)
{
	struct mt_store_fhir_range r;
	struct collect k;
	struct strip *st = NULL;
	struct mt_news2_row *n2 = NULL;
	struct out o = {0};
	int64_t *ids = NULL;
	size_t n = 0, n_n2 = 0, step;
	uint64_t win = 0, now_ms = mt_deploy_now_ms();
	bool more = false;
	enum mt_err e;

	if (rq->query != NULL && strcmp(rq->query, "window=900") == 0)
		win = 900;
	else if (rq->query != NULL && strcmp(rq->query, "window=3600") == 0)
		win = 3600;
	else if (rq->query != NULL && strcmp(rq->query, "window=86400") == 0)
		win = 86400;
	if (win == 0) {
		con_api_error(rs, 400, "window must be 900, 3600 or 86400");
		return;
	}
	memset(&k, 0, sizeof k);
	memset(&r, 0, sizeof r);
	r.patient_id = pid;
	r.ts_from = now_ms - win * 1000;
	r.ts_to = UINT64_MAX;
	r.max_id = INT64_MAX;
	ids = malloc(SERIES_IDS_MAX * sizeof *ids);
	st = malloc(sizeof *st);
	n2 = malloc(NEWS2_ROWS * sizeof *n2);
	if (ids == NULL || st == NULL || n2 == NULL) {
		free(ids);
		free(st);
		free(n2);
		con_api_error(rs, 503, "out of memory");
		return;
	}
	pthread_mutex_lock(&c->store_lock);
	e = mt_store_fhir_reading_ids(c->store, &r, ids, SERIES_IDS_MAX, &n, &more);
	step = n / SERIES_POINTS + 1;
	for (size_t i = 0; e == MT_OK && i < n; i += step) {
		struct mt_message m;

		if (!reading_decode(c, ids[i], &m))
			continue;
		for (size_t j = 0; j < m.n_obs; j++) {
			const struct mt_obs *ob = &c->obs[j];
			uint64_t t;
			double v;

			if (ob->waveform || !mt_message_obs_time(&m, ob, &t))
				continue;
			v = mt_num_to_double(&ob->value);
			if (isfinite(v))
				series_add(&k, ob->code, t, v);
		}
	}
	if (e == MT_OK)
		find_strip(c, pid, st);
	if (e == MT_OK)
		e = mt_store_news2_history(c->store, pid, r.ts_from, n2, NEWS2_ROWS, &n_n2);
	pthread_mutex_unlock(&c->store_lock);
	if (e != MT_OK || k.failed) {
		collect_free(&k);
		free(ids);
		free(st);
		free(n2);
		con_api_error(rs, 503, "the readings could not be read just now");
		return;
	}
	con_fmt(&o, "{\"patient\":%" PRId64 ",\"now_ms\":%" PRIu64 ",\"window_s\":%" PRIu64
	        ",\"readings\":%zu,\"step\":%zu,\"more\":%s,\"obs\":{",
	        pid, now_ms, win, n, step, more ? "true" : "false");
	for (size_t i = 0; i < k.n; i++) {
		const struct series *s = &k.s[i];

		con_fmt(&o, "%s\"%" PRIu32 "\":[[", i ? "," : "", s->code);
		for (size_t j = 0; j < s->n; j++)
			con_fmt(&o, "%s%" PRIu64, j ? "," : "", s->t[j]);
		con_lit(&o, "],[");
		for (size_t j = 0; j < s->n; j++)
			con_fmt(&o, "%s%.6g", j ? "," : "", s->v[j]);
		con_lit(&o, "]]");
	}
	con_lit(&o, "},\"ecg\":");
	if (st->has) {
		con_fmt(&o, "{\"t0_ms\":%" PRIu64 ",\"period_us\":%" PRIu64 ",\"scale\":%.9g,\"v\":[",
		        st->t0_ms, st->period_us, st->scale);
		for (size_t j = 0; j < st->n; j++)
			con_fmt(&o, "%s%" PRId32, j ? "," : "", st->s[j]);
		con_lit(&o, "]}");
	} else {
		con_lit(&o, "null");
	}
	con_lit(&o, ",\"news2\":[[");
	for (size_t j = 0; j < n_n2; j++)
		con_fmt(&o, "%s%" PRIu64, j ? "," : "", n2[j].at_ms);
	con_lit(&o, "],[");
	for (size_t j = 0; j < n_n2; j++)
		con_fmt(&o, "%s%d", j ? "," : "", n2[j].score);
	con_lit(&o, "]]}");
	collect_free(&k);
	free(ids);
	free(st);
	free(n2);
	con_send_json(rs, 200, &o);
}

/* ---- GET /patient/<id> ------------------------------------------------------------------ */

static void news2_table(struct out *o, const struct mt_news2_row *rows, size_t n)
{
	con_lit(o, "<table class=\"n2\"><thead><tr><th>Time</th><th>NEWS2</th><th>Band</th>"
	           "<th>Missing</th><th>Assumed</th></tr></thead><tbody>");
	if (n == 0)
		con_lit(o, "<tr><td colspan=\"5\" class=\"none\">No score in the last 24 h.</td></tr>");
	for (size_t i = n; i > 0 && n - i < NEWS2_TABLE; i--) {
		const struct mt_news2_row *r = &rows[i - 1];

		con_fmt(o, "<tr><td><time data-ms=\"%" PRIu64 "\"></time></td><td><span "
		        "class=\"news2 b-%s\"><b>%d</b></span></td><td>%s</td><td>%u</td><td>%u</td>"
		        "</tr>",
		        r->at_ms, con_news2_band(r), r->score, con_news2_band(r), r->missing,
		        r->assumed);
	}
	con_lit(o, "</tbody></table>");
}

static void patient_page(struct mt_console *c, const struct mt_https_req *rq,
                         struct mt_https_resp *rs, struct session *s, int64_t pid)
{
	struct mt_patient p;
	char devs[DEVICES_SHOWN][MT_DEVICE_ID_MAX + 1];
	size_t n_devs = 0, n_n2 = 0;
	struct mt_news2_row *n2 = calloc(NEWS2_ROWS, sizeof *n2);
	struct alarm_set set = {calloc(64, sizeof(struct alarm_brief)), 0, 64};
	uint64_t now_ms = mt_deploy_now_ms();
	struct out o = {0};
	enum mt_err e = MT_OK;

	if (n2 == NULL || set.a == NULL) {
		free(n2);
		free(set.a);
		con_message(c, rs, 503, s, "Unavailable", "Out of memory.");
		return;
	}
	if (!patient_for(c, rq, s, pid, &p)) {
		free(n2);
		free(set.a);
		con_message(c, rs, 404, s, "Not found", "There is no such patient on your wards.");
		return;
	}
	pthread_mutex_lock(&c->store_lock);
	if (mt_store_patient_devices(c->store, pid, devs, DEVICES_SHOWN, &n_devs) != MT_OK)
		n_devs = 0;
	if (mt_store_news2_history(c->store, pid, now_ms - 24 * 3600 * 1000ull, n2, NEWS2_ROWS,
	                           &n_n2) != MT_OK)
		n_n2 = 0;
	e = mt_store_alarms(c->store, true, pid, 64, con_alarm_keep, &set);
	pthread_mutex_unlock(&c->store_lock);
	if (e != MT_OK)
		set.n = 0;

	con_page_start(c, &o, p.name, s, "uPlot.min.css uPlot.min.js console.js patient.js");
	con_fmt(&o, "<div id=\"board\" data-now=\"%" PRIu64 "\" data-stale=\"%d\" data-patient=\"%"
	        PRId64 "\" data-csrf=\"", now_ms, STALE_S, pid);
	con_text(&o, s->csrf);
	con_lit(&o, "\"><p><a href=\"/ward\">\xe2\x86\x90 Ward</a></p><div class=\"ptop\"><h1>");
	con_text(&o, p.name);
	con_lit(&o, "</h1><span>MRN ");
	con_text(&o, p.mrn);
	con_lit(&o, "</span><span>");
	con_text(&o, p.ward);
	con_lit(&o, " \xc2\xb7 bed ");
	con_text(&o, p.bed[0] ? p.bed : "\xe2\x80\x94");
	con_lit(&o, "</span>");
	if (n_n2 > 0)
		con_fmt(&o, "<div class=\"news2 b-%s\" data-news2><span>NEWS2</span> <b>%d</b></div>",
		        con_news2_band(&n2[n_n2 - 1]), n2[n_n2 - 1].score);
	else
		con_lit(&o, "<div class=\"news2 b-none\" data-news2><span>NEWS2</span> <b>\xe2\x80\x94"
		            "</b></div>");
	con_lit(&o, "<span class=\"small\">devices: ");
	if (n_devs == 0)
		con_lit(&o, "none");
	for (size_t i = 0; i < n_devs; i++) {
		if (i > 0)
			con_lit(&o, ", ");
		con_lit(&o, "<span class=\"dev\">");
		con_text(&o, devs[i]);
		con_lit(&o, "</span>");
	}
	con_lit(&o, "</span><p class=\"fresh\" data-fresh></p></div>"
	            "<p id=\"broken\" class=\"broken\" role=\"alert\" hidden>Live updates "
	            "interrupted \xe2\x80\x94 the values below may be old. Reconnecting"
	            "\xe2\x80\xa6</p><section><h2>Alarms</h2><ul class=\"alarms\" data-alarms>");
	for (size_t i = 0; i < set.n; i++)
		con_alarm_item(&o, &set.a[i]);
	con_lit(&o, "</ul><p class=\"small\" data-no-alarms");
	if (set.n > 0)
		con_lit(&o, " hidden");
	con_lit(&o, ">No active alarm.</p></section>"
	            "<div class=\"windows\" role=\"group\" aria-label=\"time window\">"
	            "<button type=\"button\" data-w=\"900\" aria-pressed=\"true\">15 min</button>"
	            "<button type=\"button\" data-w=\"3600\" aria-pressed=\"false\">1 h</button>"
	            "<button type=\"button\" data-w=\"86400\" aria-pressed=\"false\">24 h</button>"
	            "</div><div class=\"charts\" id=\"charts\"></div>"
	            "<section><h2>NEWS2 history</h2>");
	news2_table(&o, n2, n_n2);
	con_lit(&o, "</section></div>");
	con_page_end(&o);
	con_audit(c, s->user, rq, "console.patient.view", NULL, MT_AUDIT_OK,
	          "\"patient\":%" PRId64, pid);
	mt_wipe(&p, sizeof p);
	free(n2);
	free(set.a);
	con_send_page(rs, 200, &o);
}

void con_view_patient(struct mt_console *c, const struct mt_https_req *rq,
                      struct mt_https_resp *rs, struct session *s, int64_t now)
{
	bool api = strncmp(rq->path, "/api/", 5) == 0;
	const char *rest = rq->path + (api ? sizeof "/api/patient/" : sizeof "/patient/") - 1;
	char num[24];
	size_t len = strcspn(rest, "/");
	int64_t pid = 0;
	struct mt_patient p;

	(void)now;
	if (len < sizeof num) {
		memcpy(num, rest, len);
		num[len] = '\0';
		pid = con_parse_id(num);
	}
	if (strcmp(rq->method, "GET") != 0) {
		if (api)
			con_api_error(rs, 405, "GET only");
		else
			con_message(c, rs, 405, s, "Method not allowed", "This page is read only.");
		return;
	}
	if (!api) {
		if (pid < 1 || rest[len] != '\0') {
			con_message(c, rs, 404, s, "Not found", "There is no such patient on your wards.");
			return;
		}
		if (rq->query != NULL) {
			con_message(c, rs, 400, s, "Bad request", "Unexpected query string.");
			return;
		}
		patient_page(c, rq, rs, s, pid);
		return;
	}
	if (pid < 1 || strcmp(rest + len, "/series") != 0 || !patient_for(c, rq, s, pid, &p)) {
		con_api_error(rs, 404, "no such patient on your wards");
		return;
	}
	mt_wipe(&p, sizeof p);
	api_series(c, rq, rs, pid);
}
