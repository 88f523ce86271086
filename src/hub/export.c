/*
 * export.c — journal entries rendered as HL7 v2 for the senders
 * (export.h; docs/hl7.md).
 *
 * PCD-01: the reading's numeric observations, each with the device's
 * precision (`places`, else clinical.md §1's default), NIBP episodic; the
 * patient the reading was stored for (none: nothing to send, skipped).
 * PCD-04: one alarm transition: start → phase start, acknowledge /
 * escalate / update → continue, end → end; state active or inactive;
 * inactivation "acknowledged" once acknowledged; medtrust's own event
 * codes under the coding system MEDTRUST.  MSH-7 is the time of what is
 * reported (the reading's arrival, the transition), so a resend is the
 * same message byte for byte.
 */
#define _POSIX_C_SOURCE 200809L

#include "export.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_cose.h"
#include "medtrust/mt_hl7.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_store_clinical.h"
#include "medtrust/mt_util.h"

struct mt_export {
	pthread_mutex_t lock;
	struct mt_store *store;
	struct mt_obs *obs;
	char app[64], facility[128], authority[128];
	uint64_t synced; /* journal entries up to this seq are known on disk */
};

static void conf_text(struct mt_deploy *d, const char *key, const char *dflt, char *out,
                      size_t cap)
{
	const char *v = mt_deploy_get(d, key);

	(void)snprintf(out, cap, "%s", v != NULL && v[0] != '\0' ? v : dflt);
}

enum mt_err mt_export_open(struct mt_deploy *d, struct mt_export **out)
{
	struct mt_export *x;
	enum mt_err e;

	if (d == NULL || out == NULL)
		return MT_ERR_ARG;
	x = calloc(1, sizeof *x);
	if (x == NULL)
		return MT_ERR_NOMEM;
	x->obs = calloc(MT_OBS_MAX, sizeof *x->obs);
	if (x->obs == NULL) {
		free(x);
		return MT_ERR_NOMEM;
	}
	pthread_mutex_init(&x->lock, NULL);
	conf_text(d, "hl7_app", "MEDTRUST", x->app, sizeof x->app);
	conf_text(d, "hl7_facility", mt_deploy_get(d, "hospital") ? mt_deploy_get(d, "hospital")
	                                                          : "MEDTRUST",
	          x->facility, sizeof x->facility);
	conf_text(d, "hospital", "MEDTRUST", x->authority, sizeof x->authority);
	e = mt_deploy_open_store(d, &x->store);
	if (e != MT_OK) {
		mt_export_close(x);
		return e;
	}
	*out = x;
	return MT_OK;
}

void mt_export_close(struct mt_export *x)
{
	if (x == NULL)
		return;
	mt_store_close(x->store);
	free(x->obs);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

static enum mt_err src_next(void *ctx, uint64_t after, uint64_t *seq)
{
	struct mt_export *x = ctx;
	int kind;
	int64_t ref;
	enum mt_err e;

	pthread_mutex_lock(&x->lock);
	e = mt_store_journal_next(x->store, after, seq, &kind, &ref);
	/* The hub's writers may commit before the disk has the rows
	 * (syncer.h): nothing leaves for a receiver before an fsync covers
	 * it, or a power cut could reuse its seq — and its control id. */
	if (e == MT_OK && *seq > x->synced) {
		uint64_t last = 0;

		e = mt_store_journal_last(x->store, &last);
		if (e == MT_OK)
			e = mt_store_sync(x->store);
		if (e == MT_OK)
			x->synced = last;
	}
	pthread_mutex_unlock(&x->lock);
	return e;
}

static enum mt_err src_last(void *ctx, uint64_t *seq)
{
	struct mt_export *x = ctx;
	enum mt_err e;

	pthread_mutex_lock(&x->lock);
	e = mt_store_journal_last(x->store, seq);
	pthread_mutex_unlock(&x->lock);
	return e;
}

static bool episodic(uint32_t code)
{
	return code >= 150021 && code <= 150023; /* NIBP */
}

static void patient_fields(const struct mt_patient *p, const char *authority,
                           struct mt_hl7_patient *hp)
{
	memset(hp, 0, sizeof *hp);
	hp->mrn = p->mrn;
	hp->authority = authority;
	hp->name = p->name;
	hp->birth_date = p->birth_date[0] ? p->birth_date : NULL;
	hp->sex = p->sex[0] ? p->sex : NULL;
	hp->ward = p->ward[0] ? p->ward : NULL;
	hp->room = p->room[0] ? p->room : NULL;
	hp->bed = p->bed[0] ? p->bed : NULL;
}

/* lock held */
static enum mt_err render_reading(struct mt_export *x, int64_t ref, const char *cid, char **msg,
                                  size_t *len)
{
	struct mt_store_row row;
	struct mt_patient p;
	struct mt_cose_sign1 s1;
	struct mt_message m;
	struct mt_hl7_metric met[MT_HL7_METRICS_MAX];
	size_t n = 0;
	enum mt_err e;

	memset(&row, 0, sizeof row);
	memset(&p, 0, sizeof p);
	e = mt_store_reading_get(x->store, ref, &row);
	if (e != MT_OK)
		return e;
	if (row.patient_id == 0) {
		e = MT_ERR_NOT_FOUND; /* nobody to report it for */
		goto out;
	}
	e = mt_store_patient_get(x->store, row.patient_id, &p);
	if (e == MT_OK && (mt_cose_sign1_decode(row.sign1, row.sign1_len, true, &s1) != MT_OK ||
	                   s1.payload == NULL ||
	                   mt_message_decode(s1.payload, s1.payload_len, &m, x->obs, MT_OBS_MAX,
	                                     NULL) != MT_OK))
		e = MT_ERR_NOT_FOUND;
	if (e != MT_OK)
		goto out;
	for (size_t i = 0; i < m.n_obs && n < MT_HL7_METRICS_MAX; i++) {
		const struct mt_obs *o = &m.obs[i];
		double v = mt_num_to_double(&o->value);

		if (o->waveform || !isfinite(v))
			continue;
		memset(&met[n], 0, sizeof met[n]);
		met[n].code = o->code;
		met[n].value = v;
		met[n].places = o->has_places && o->places <= MT_HL7_PLACES_MAX
		                        ? o->places
		                        : mt_hl7_mdc_places(o->code);
		met[n].unit_code = o->unit;
		met[n].episodic = episodic(o->code);
		n++;
	}
	if (n == 0) {
		e = MT_ERR_NOT_FOUND;
		goto out;
	}
	{
		struct mt_hl7_msh msh = {.app = x->app, .facility = x->facility,
		                         .time_ms = row.received_ms, .control_id = cid};
		struct mt_hl7_patient hp;
		struct mt_hl7_device hd = {.id = row.dev};
		struct mt_hl7_observation ob = {.time_ms = m.ts, .metrics = met, .n_metrics = n};

		patient_fields(&p, x->authority, &hp);
		e = mt_hl7_build_pcd01(&msh, &hp, &hd, &ob, msg, len);
	}
out:
	mt_wipe(&p, sizeof p);
	mt_store_row_clear(&row);
	return e;
}

/* lock held */
static enum mt_err render_alarm(struct mt_export *x, int64_t ref, const char *cid, char **msg,
                                size_t *len)
{
	struct mt_alarm_event ev;
	struct mt_alarm a;
	struct mt_patient p;
	struct mt_hl7_patient hp;
	struct mt_hl7_device hd;
	struct mt_hl7_alert al;
	char alert_id[96], name[80];
	bool have_p = false;
	enum mt_err e;

	memset(&p, 0, sizeof p);
	e = mt_store_alarm_event_get(x->store, ref, &ev);
	if (e == MT_OK)
		e = mt_store_alarm_get(x->store, ev.alarm_id, &a);
	if (e != MT_OK)
		return e;
	if (a.patient_id > 0 && mt_store_patient_get(x->store, a.patient_id, &p) == MT_OK) {
		patient_fields(&p, x->authority, &hp);
		have_p = true;
	}
	memset(&hd, 0, sizeof hd);
	hd.id = a.dev;
	memset(&al, 0, sizeof al);
	(void)snprintf(alert_id, sizeof alert_id, "%s-A%" PRId64, x->app, a.id);
	(void)snprintf(name, sizeof name, "MEDTRUST_EVT_%s", a.cond);
	for (char *q = name; *q; q++)
		if (*q == ':' || *q == '<' || *q == '>' || *q == '.')
			*q = '_';
	al.alert_id = alert_id;
	al.time_ms = ev.at_ms;
	al.event_code = a.code;
	al.event_name = name;
	al.event_system = "MEDTRUST";
	al.text = a.text;
	al.phase = strcmp(ev.phase, "start") == 0 ? MT_HL7_PHASE_START
	           : strcmp(ev.phase, "end") == 0 ? MT_HL7_PHASE_END
	                                          : MT_HL7_PHASE_CONTINUE;
	al.state = strcmp(ev.state, "resolved") == 0 ? MT_HL7_STATE_INACTIVE : MT_HL7_STATE_ACTIVE;
	al.acknowledged = strcmp(ev.state, "acknowledged") == 0 || strcmp(ev.phase, "ack") == 0;
	al.prio = ev.prio >= 3 ? MT_HL7_PRIO_HIGH : ev.prio == 2 ? MT_HL7_PRIO_MEDIUM
	                                                         : MT_HL7_PRIO_LOW;
	al.type = strcmp(a.type, "SP") == 0   ? MT_HL7_TYPE_PHYSIO
	          : strcmp(a.type, "ST") == 0 ? MT_HL7_TYPE_TECH
	                                      : MT_HL7_TYPE_ADVISORY;
	{
		struct mt_hl7_msh msh = {.app = x->app, .facility = x->facility,
		                         .time_ms = ev.at_ms, .control_id = cid};

		e = mt_hl7_build_pcd04(&msh, have_p ? &hp : NULL, a.dev[0] ? &hd : NULL, &al, msg,
		                       len);
	}
	mt_wipe(&p, sizeof p);
	return e;
}

static enum mt_err src_render(void *ctx, uint64_t seq, const char *cid, char **msg, size_t *len)
{
	struct mt_export *x = ctx;
	int kind;
	int64_t ref;
	enum mt_err e;

	pthread_mutex_lock(&x->lock);
	e = mt_store_journal_get(x->store, seq, &kind, &ref);
	if (e == MT_OK)
		e = kind == MT_JOURNAL_READING ? render_reading(x, ref, cid, msg, len)
		    : kind == MT_JOURNAL_ALARM ? render_alarm(x, ref, cid, msg, len)
		                               : MT_ERR_NOT_FOUND;
	pthread_mutex_unlock(&x->lock);
	return e;
}

struct mt_hl7_source mt_export_source(struct mt_export *x)
{
	struct mt_hl7_source s = {.next = src_next, .render = src_render, .ctx = x,
	                          .last = src_last};

	return s;
}

enum mt_err mt_export_start_senders(struct mt_deploy *d, struct mt_export *x,
                                    void (*audit)(void *, const char *, const char *,
                                                  const char *, enum mt_audit_outcome,
                                                  const char *),
                                    void *audit_ctx,
                                    void (*on_park)(void *, const char *, uint64_t,
                                                    const char *, const char *),
                                    void *park_ctx, struct mt_hl7out **out, char *why,
                                    size_t why_cap)
{
	struct mt_hl7_dest dests[MT_HL7OUT_DESTS_MAX];
	struct mt_hl7out_opts o;
	const char *spec = mt_deploy_get(d, "hl7_dest");
	char path[4096], prefix[40];
	uint64_t timeout_s = 0;
	size_t n = 0;
	char *slash;
	enum mt_err e;

	*out = NULL;
	if (spec == NULL || spec[0] == '\0')
		return MT_OK;
	e = mt_hl7out_parse_dests(spec, dests, MT_HL7OUT_DESTS_MAX, &n);
	if (e != MT_OK || n == 0) {
		mt_say(why, why_cap, "hl7_dest: expected NAME=HOST:PORT[, ...]");
		return MT_ERR_ARG;
	}
	e = mt_deploy_uint(d, "hl7_ack_timeout_s", 10, 3600, &timeout_s);
	if (e != MT_OK) {
		mt_say(why, why_cap, "hl7_ack_timeout_s: a number of seconds (1-3600)");
		return e;
	}
	for (size_t i = 0; i < n; i++)
		dests[i].timeout_ms = (unsigned)(timeout_s * 1000);
	e = mt_deploy_data_path(d, path, sizeof path);
	if (e != MT_OK)
		return e;
	slash = strrchr(path, '/');
	if (slash != NULL)
		slash[1] = '\0';
	else
		path[0] = '\0';
	if (strlen(path) + sizeof "hl7out.db" > sizeof path)
		return MT_ERR_ARG;
	memcpy(path + strlen(path), "hl7out.db", sizeof "hl7out.db");
	(void)snprintf(prefix, sizeof prefix, "%.30s-", x->app);
	memset(&o, 0, sizeof o);
	o.dests = dests;
	o.n_dests = n;
	o.src = mt_export_source(x);
	o.cursor_path = path;
	o.control_prefix = prefix;
	o.audit = audit;
	o.audit_ctx = audit_ctx;
	o.on_park = on_park;
	o.park_ctx = park_ctx;
	return mt_hl7out_start(&o, out, why, why_cap);
}
