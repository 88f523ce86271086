/*
 * clinical.c — the clinical engine (clinical.h; docs/alarms.md).
 *
 * One thread owns the engine's state and its own store connection; the
 * ingest's committer only queues events for it (two queues: alerts are
 * always taken before readings).  The console's acknowledgements run on
 * the console's thread under `slock`, the lock of the store connection
 * and of the open-alarm table.
 *
 * State kept in memory, rebuilt from traffic after a restart:
 *  - per patient: the newest value of each NEWS2 parameter and of each
 *    code a rule watches, with its device time and reading id; the
 *    patient's rules and their hold/clear state; ward and NEWS2 settings
 *    (read from the store, refreshed every PATIENT_REFRESH_MS);
 *  - per device: when it was last heard of (hub clock) and the interval
 *    between its packets (for "offline"), its counters' gaps, its battery;
 *  - the open alarms (loaded from the store at start), for de-duplication
 *    and escalation.
 * Alarms themselves are durable: the store has them, with every
 * transition and the HL7 journal entry for it.
 */
#define _POSIX_C_SOURCE 200809L

#include "clinical.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medtrust/mt_cose.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_news2.h"
#include "medtrust/mt_registry.h"
#include "medtrust/mt_rules.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_store_clinical.h"
#include "medtrust/mt_util.h"

#define QUEUE_MAX 200000
#define HASH 1024
#define RULES_MAX 16
#define GAPS_MAX 8
#define PATIENT_REFRESH_MS 60000
#define GAP_GRACE_MS 120000         /* a counter gap becomes an alarm after this */
#define OFFLINE_MIN_MS 15000        /* "no data for 3 × its interval", at least this */
#define DEVICE_ALARM_QUIET_MS 600000/* a device alert resolves 10 min after its last repeat */
#define ATTACK_QUIET_MS 600000
#define BATTERY_LOW 15
#define BATTERY_OK 25
#define SKEW_MS 300000
#define STALE_MS 86400000
#define NEWS2_KEEP_MS 60000         /* an unchanged score is stored at most once a minute */
#define OPEN_MAX 4096
#define N2_BATCH 1024               /* NEWS2 rows per write */
#define N2_DELAY_MS 250             /* ... or after this long */

/* Medtrust's own event codes for alarms that are not a device's (PCD-04
 * OBX facet 1; docs/alarms.md lists them). */
enum {
	CODE_NEWS2 = 9001,
	CODE_RULE = 9002,
	CODE_OFFLINE = 9101,
	CODE_GAP = 9102,
	CODE_BATTERY = 9103,
	CODE_CERT = 9104,
	CODE_SKEW = 9105,
	CODE_ATTACK = 9201,
	CODE_REVOKED = 9202,
	CODE_HUB = 9301,
};

enum ev_kind { EV_READING, EV_ALERT, EV_SECURITY };

struct ev {
	struct ev *next;
	enum ev_kind kind;
	char dev[MT_DEVICE_ID_MAX + 1];
	int64_t ref;
	uint64_t ctr, ts_ms, received_ms, committed_ms, code, count;
	unsigned prio, flags;
	uint8_t typ;
	char text[MT_TEXT_MAX + 1];
	size_t len;
	uint8_t data[];
};

struct val {
	bool has;
	double v;
	uint64_t t;
	int64_t reading;
	unsigned places;
};

struct pstate {
	struct pstate *next;
	int64_t id;
	bool known; /* the store has it */
	char ward[65];
	bool scale2, na;
	char oxygen, acvpu;
	uint64_t info_ms;
	struct val p[MT_NEWS2_PARAMS];
	struct mt_rule rules[RULES_MAX];
	struct mt_rule_state rst[RULES_MAX];
	struct val rv[RULES_MAX]; /* the value that last fed each rule */
	size_t n_rules;
	int last_score;        /* -1: none yet */
	unsigned last_missing;
	uint64_t last_score_ms;
};

struct gap {
	uint64_t from, to, since;
};

struct dstate {
	struct dstate *next;
	char dev[MT_DEVICE_ID_MAX + 1];
	uint64_t last_rx, interval, n;
	uint64_t max_ctr;
	bool seen_ctr;
	struct gap gaps[GAPS_MAX];
	size_t n_gaps;
	uint64_t attack_ms;
	int64_t patient; /* last patient its readings belonged to */
};

struct open_alarm {
	int64_t id, patient_id;
	char dev[MT_DEVICE_ID_MAX + 1];
	char cond[MT_ALARM_COND_MAX];
	unsigned prio;
	bool acked, escalated;
	uint64_t raised_ms, last_ms; /* last_ms: last time the condition was seen */
};

struct mt_clinical {
	struct mt_clinical_opts o;
	struct mt_store *store;  /* under slock */
	struct mt_registry *reg; /* engine thread */
	int64_t reg_version;
	pthread_mutex_t slock;

	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct ev *ahead, *atail, *rhead, *rtail;
	size_t queued;
	bool stopping;
	pthread_t thread;
	bool running;

	struct pstate *ph[HASH];
	struct dstate *dh[HASH];
	struct open_alarm open[OPEN_MAX]; /* under slock */
	size_t n_open;
	uint64_t started_ms, last_reg_scan_ms, last_cert_scan_ms;
	struct mt_obs *obs;
	/* NEWS2 history rows not yet written: one transaction for many, so
	 * the engine takes the store's write lock (which the ingest's
	 * committer needs) once per batch, not once per score. */
	struct news2_pending {
		int64_t patient;
		uint64_t at_ms;
		int score;
		bool any_three;
		unsigned missing, assumed;
	} *n2;
	size_t n_n2;
	uint64_t n2_first_ms;

	_Atomic uint64_t st_readings, st_alerts, st_raised, st_transitions, st_scored, st_dropped,
	        st_ignored;
};

static uint64_t now_ms(void)
{
	return mt_deploy_now_ms();
}

static size_t hash_str(const char *s)
{
	size_t h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h % HASH;
}

static void audit(struct mt_clinical *c, const char *action, const char *subject,
                  enum mt_audit_outcome outcome, const char *detail)
{
	if (c->o.audit != NULL)
		c->o.audit(c->o.audit_ctx, "hub", action, subject, outcome, detail);
}

/* ---- queueing (committer thread) ------------------------------------------ */

static void push(struct mt_clinical *c, struct ev *e)
{
	pthread_mutex_lock(&c->qlock);
	if (c->queued >= QUEUE_MAX || c->stopping) {
		pthread_mutex_unlock(&c->qlock);
		atomic_fetch_add(&c->st_dropped, 1);
		free(e);
		return;
	}
	if (e->kind == EV_READING) {
		if (c->rtail != NULL)
			c->rtail->next = e;
		else
			c->rhead = e;
		c->rtail = e;
	} else {
		if (c->atail != NULL)
			c->atail->next = e;
		else
			c->ahead = e;
		c->atail = e;
	}
	c->queued++;
	pthread_cond_signal(&c->qcond);
	pthread_mutex_unlock(&c->qlock);
}

static struct ev *ev_new(enum ev_kind kind, const char *dev, size_t len)
{
	struct ev *e = calloc(1, sizeof *e + len);

	if (e == NULL)
		return NULL;
	e->kind = kind;
	(void)snprintf(e->dev, sizeof e->dev, "%s", dev);
	e->len = len;
	return e;
}

void mt_clinical_on_reading(void *ctx, const struct mt_ingest_reading *r)
{
	struct mt_clinical *c = ctx;
	struct ev *e;

	if (c == NULL || r == NULL || r->sign1 == NULL)
		return;
	e = ev_new(EV_READING, r->dev, r->sign1_len);
	if (e == NULL) {
		atomic_fetch_add(&c->st_dropped, 1);
		return;
	}
	e->ref = r->id;
	e->ctr = r->ctr;
	e->ts_ms = r->ts_ms;
	e->received_ms = r->received_ms;
	e->committed_ms = r->committed_ms;
	e->flags = r->flags;
	e->typ = r->typ;
	memcpy(e->data, r->sign1, r->sign1_len);
	push(c, e);
}

void mt_clinical_on_alert(void *ctx, const struct mt_ingest_alert *a)
{
	struct mt_clinical *c = ctx;
	struct ev *e;

	if (c == NULL || a == NULL)
		return;
	e = ev_new(EV_ALERT, a->dev, 0);
	if (e == NULL) {
		atomic_fetch_add(&c->st_dropped, 1);
		return;
	}
	e->ref = a->id;
	e->ctr = a->ctr;
	e->ts_ms = a->ts_ms;
	e->received_ms = a->received_ms;
	e->committed_ms = a->committed_ms;
	e->code = a->code;
	e->prio = a->prio;
	(void)snprintf(e->text, sizeof e->text, "%s", a->text != NULL ? a->text : "");
	push(c, e);
}

void mt_clinical_on_security(void *ctx, const char *dev, const char *what, uint64_t count)
{
	struct mt_clinical *c = ctx;
	struct ev *e;

	if (c == NULL || dev == NULL)
		return;
	e = ev_new(EV_SECURITY, dev, 0);
	if (e == NULL)
		return;
	e->count = count;
	e->received_ms = now_ms();
	(void)snprintf(e->text, sizeof e->text, "%s", what != NULL ? what : "");
	push(c, e);
}

/* ---- state lookups (engine thread) ---------------------------------------- */

static struct dstate *dev_state(struct mt_clinical *c, const char *dev)
{
	size_t h = hash_str(dev);
	struct dstate *d;

	for (d = c->dh[h]; d != NULL; d = d->next)
		if (strcmp(d->dev, dev) == 0)
			return d;
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	(void)snprintf(d->dev, sizeof d->dev, "%s", dev);
	d->next = c->dh[h];
	c->dh[h] = d;
	return d;
}

static enum mt_err rule_cb(void *ctx, const struct mt_patient_rule *r)
{
	struct pstate *p = ctx;
	struct mt_rule rule;

	if (p->n_rules < RULES_MAX && mt_rule_parse(r->text, &rule, NULL) == MT_OK) {
		p->rules[p->n_rules] = rule;
		mt_rule_state_init(&p->rst[p->n_rules]);
		p->n_rules++;
	}
	return MT_OK;
}

/* Read the patient's record: ward, NEWS2 settings, rules (slock held). */
static void patient_load(struct mt_clinical *c, struct pstate *p, uint64_t now)
{
	struct mt_patient rec;
	size_t n = 0;

	p->info_ms = now;
	if (mt_store_patient_get(c->store, p->id, &rec) != MT_OK) {
		p->known = false;
		return;
	}
	p->known = true;
	(void)snprintf(p->ward, sizeof p->ward, "%s", rec.ward);
	p->scale2 = rec.spo2_scale2;
	p->na = rec.news2_na;
	p->oxygen = rec.oxygen;
	p->acvpu = rec.acvpu;
	mt_wipe(&rec, sizeof rec);
	/* Rules: the patient's own, or the defaults when it has none.  A
	 * reload keeps the state of a rule whose text did not change. */
	{
		struct pstate fresh;

		memset(&fresh, 0, sizeof fresh);
		if (mt_store_rules(c->store, p->id, rule_cb, &fresh) != MT_OK || fresh.n_rules == 0) {
			fresh.n_rules = 0;
			if (mt_rules_default(fresh.rules, RULES_MAX, &n) == MT_OK)
				fresh.n_rules = n;
			for (size_t i = 0; i < fresh.n_rules; i++)
				mt_rule_state_init(&fresh.rst[i]);
		}
		for (size_t i = 0; i < fresh.n_rules; i++)
			for (size_t j = 0; j < p->n_rules; j++)
				if (memcmp(&fresh.rules[i], &p->rules[j], sizeof fresh.rules[i]) == 0) {
					fresh.rst[i] = p->rst[j];
					fresh.rv[i] = p->rv[j];
				}
		memcpy(p->rules, fresh.rules, sizeof p->rules);
		memcpy(p->rst, fresh.rst, sizeof p->rst);
		memcpy(p->rv, fresh.rv, sizeof p->rv);
		p->n_rules = fresh.n_rules;
	}
}

static struct pstate *patient_state(struct mt_clinical *c, int64_t id, uint64_t now)
{
	size_t h = (size_t)id % HASH;
	struct pstate *p;

	for (p = c->ph[h]; p != NULL; p = p->next)
		if (p->id == id)
			break;
	if (p == NULL) {
		p = calloc(1, sizeof *p);
		if (p == NULL)
			return NULL;
		p->id = id;
		p->last_score = -1;
		p->next = c->ph[h];
		c->ph[h] = p;
		p->info_ms = 0;
	}
	if (p->info_ms == 0 || now - p->info_ms >= PATIENT_REFRESH_MS)
		patient_load(c, p, now);
	return p;
}

/* Patient `id`'s ward from the store, "" when unknown (slock held). */
static void store_ward(struct mt_clinical *c, int64_t id, char *ward, size_t cap)
{
	struct mt_patient rec;

	if (cap > 0)
		ward[0] = '\0';
	if (mt_store_patient_get(c->store, id, &rec) == MT_OK)
		(void)snprintf(ward, cap, "%s", rec.ward);
	mt_wipe(&rec, sizeof rec);
}

void mt_clinical_patient_ward(struct mt_clinical *c, int64_t id, char *ward, size_t cap)
{
	if (cap > 0)
		ward[0] = '\0';
	if (c == NULL || id < 1)
		return;
	pthread_mutex_lock(&c->slock);
	store_ward(c, id, ward, cap);
	pthread_mutex_unlock(&c->slock);
}

/* src as printable ASCII into out (the rest becomes '?'): a device's or
 * a receiver's text goes into the store, HL7 and the console as plain
 * text. */
static void ascii_text(char *out, size_t cap, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < cap && src[i] != '\0'; i++)
		out[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	if (cap > 0)
		out[i] = '\0';
}

/* ---- alarms (slock held) ---------------------------------------------------- */

static struct open_alarm *open_find(struct mt_clinical *c, int64_t patient, const char *dev,
                                    const char *cond)
{
	for (size_t i = 0; i < c->n_open; i++) {
		struct open_alarm *a = &c->open[i];

		if (a->patient_id == patient && strcmp(a->dev, dev) == 0 &&
		    strcmp(a->cond, cond) == 0)
			return a;
	}
	return NULL;
}

static struct open_alarm *open_by_id(struct mt_clinical *c, int64_t id)
{
	for (size_t i = 0; i < c->n_open; i++)
		if (c->open[i].id == id)
			return &c->open[i];
	return NULL;
}

static void open_remove(struct mt_clinical *c, struct open_alarm *a)
{
	size_t i = (size_t)(a - c->open);

	c->open[i] = c->open[--c->n_open];
}

static const char *prio_name(unsigned p)
{
	return p == MT_PRIO_HIGH ? "high" : p == MT_PRIO_MEDIUM ? "medium" : p == MT_PRIO_LOW ? "low"
	                                                                                   : "none";
}

/* JSON string body of `s` (ASCII-safe; alarm texts are ours). */
static void json_str(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; *s != '\0' && o + 7 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
}

/* A transition's audit record and the HL7 senders' wake-up, once the
 * transition is on disk: the audit chain must never name an alarm row a
 * power cut could take back (opts.syncer). */
struct told_job {
	struct mt_clinical *c;
	char subject[MT_DEVICE_ID_MAX + 1];
	char detail[];
};

/* The audit record and the wake-up, once `durable` is known. */
static void told_record(struct mt_clinical *c, const char *subject, const char *detail,
                        bool durable)
{
	audit(c, "alarm.transition", subject[0] ? subject : NULL,
	      durable ? MT_AUDIT_OK : MT_AUDIT_ERROR, detail);
	if (durable && c->o.journal_kick != NULL)
		c->o.journal_kick(c->o.kick_ctx);
}

static void told_durable(void *arg, bool durable)
{
	struct told_job *j = arg;

	told_record(j->c, j->subject, j->detail, durable);
	free(j);
}

static void told_after(struct mt_clinical *c, const char *subject, const char *detail)
{
	size_t n = strlen(detail) + 1;
	struct told_job *j = c->o.syncer != NULL ? malloc(sizeof *j + n) : NULL;

	if (j != NULL) {
		j->c = c;
		(void)snprintf(j->subject, sizeof j->subject, "%s", subject);
		memcpy(j->detail, detail, n);
		if (mt_syncer_after(c->o.syncer, told_durable, j) == MT_OK)
			return;
		free(j);
	}
	/* No syncer (commits are durable), or short of memory: here. */
	told_record(c, subject, detail, c->o.syncer == NULL || mt_syncer_wait(c->o.syncer) == MT_OK);
}

/* Audit and publish one transition of alarm `id` (slock held). */
static void told(struct mt_clinical *c, int64_t id, const char *phase, const char *actor)
{
	struct mt_alarm a;
	char text[2 * MT_ALARM_TEXT_MAX], detail[640], ward[65] = "";
	struct pstate *p = NULL;

	atomic_fetch_add(&c->st_transitions, 1);
	if (mt_store_alarm_get(c->store, id, &a) != MT_OK)
		return;
	json_str(text, sizeof text, a.text);
	(void)snprintf(detail, sizeof detail,
	               "{\"alarm\":%" PRId64 ",\"phase\":\"%s\",\"state\":\"%s\",\"priority\":\"%s\","
	               "\"type\":\"%s\",\"cond\":\"%s\",\"code\":%" PRIu32 ",\"patient\":%" PRId64
	               ",\"device\":\"%s\",\"by\":\"%s\",\"readings\":\"%s\"}",
	               id, phase, a.state, prio_name(a.prio), a.type, a.cond, a.code, a.patient_id,
	               a.dev, actor, a.readings);
	if (a.patient_id > 0) {
		size_t h = (size_t)a.patient_id % HASH;

		for (p = c->ph[h]; p != NULL && p->id != a.patient_id; p = p->next)
			;
		if (p != NULL)
			(void)snprintf(ward, sizeof ward, "%s", p->ward);
		else
			store_ward(c, a.patient_id, ward, sizeof ward);
	}
	if (c->o.live != NULL) {
		char ev[1024], wj[2 * 65 + 8];

		json_str(wj, sizeof wj, ward); /* a ward is any text (F06) */

		(void)snprintf(ev, sizeof ev,
		               "{\"alarm\":%" PRId64 ",\"phase\":\"%s\",\"state\":\"%s\","
		               "\"priority\":\"%s\",\"type\":\"%s\",\"cond\":\"%s\",\"patient\":%" PRId64
		               ",\"ward\":\"%s\",\"device\":\"%s\",\"text\":\"%s\",\"raised_ms\":%" PRIu64
		               ",\"by\":\"%s\",\"at_ms\":%" PRIu64 "}",
		               id, phase, a.state, prio_name(a.prio), a.type, a.cond, a.patient_id, wj,
		               a.dev, text, a.raised_ms, actor, now_ms());
		mt_live_publish(c->o.live, "alarm", ward, ev);
	}
	/* The live event first: a nurse waits for neither the store's fsync
	 * nor the audit chain's. */
	told_after(c, a.dev, detail);
}

/* Raise (or refresh) the alarm of (patient, dev, cond).  A repeat at the
 * same or lower priority refreshes it; a higher priority ends it and
 * raises a new one (a nurse must hear the change). */
static void raise_alarm(struct mt_clinical *c, int64_t patient, const char *dev, const char *cond,
                        const char *type, unsigned prio, uint32_t code, const char *text,
                        const char *refs, uint64_t at)
{
	struct open_alarm *o;
	struct mt_alarm a;
	int64_t id = 0;

	if (prio < MT_PRIO_LOW || prio > MT_PRIO_HIGH)
		return;
	pthread_mutex_lock(&c->slock);
	o = open_find(c, patient, dev, cond);
	if (o != NULL) {
		o->last_ms = at;
		if (prio <= o->prio) {
			pthread_mutex_unlock(&c->slock);
			return;
		}
		if (mt_store_alarm_transition(c->store, o->id, "end", at, "hub", 0, NULL, NULL) ==
		    MT_OK) {
			int64_t old = o->id;

			open_remove(c, o);
			told(c, old, "end", "hub");
		}
	}
	memset(&a, 0, sizeof a);
	a.patient_id = patient;
	(void)snprintf(a.dev, sizeof a.dev, "%s", dev);
	(void)snprintf(a.cond, sizeof a.cond, "%s", cond);
	(void)snprintf(a.type, sizeof a.type, "%s", type);
	a.prio = prio;
	a.code = code;
	(void)snprintf(a.text, sizeof a.text, "%s", text);
	(void)snprintf(a.readings, sizeof a.readings, "%s", refs);
	a.raised_ms = at;
	if (c->n_open < OPEN_MAX && mt_store_alarm_raise(c->store, &a, &id, NULL) == MT_OK) {
		struct open_alarm *n = &c->open[c->n_open++];

		memset(n, 0, sizeof *n);
		n->id = id;
		n->patient_id = patient;
		(void)snprintf(n->dev, sizeof n->dev, "%s", dev);
		(void)snprintf(n->cond, sizeof n->cond, "%s", cond);
		n->prio = prio;
		n->raised_ms = n->last_ms = at;
		atomic_fetch_add(&c->st_raised, 1);
		told(c, id, "start", "hub");
	} else {
		fprintf(stderr, "medtrustd: ALARM: could not record alarm %s for %s (%s)\n", cond, dev,
		        text);
	}
	pthread_mutex_unlock(&c->slock);
}

/* End the open alarm of (patient, dev, cond), if any. */
static void end_alarm(struct mt_clinical *c, int64_t patient, const char *dev, const char *cond,
                      uint64_t at)
{
	struct open_alarm *o;

	pthread_mutex_lock(&c->slock);
	o = open_find(c, patient, dev, cond);
	if (o != NULL &&
	    mt_store_alarm_transition(c->store, o->id, "end", at, "hub", 0, NULL, NULL) == MT_OK) {
		int64_t id = o->id;

		open_remove(c, o);
		told(c, id, "end", "hub");
	}
	pthread_mutex_unlock(&c->slock);
}

/* Lower the priority of an open alarm in place (no new alert). */
static void lower_alarm(struct mt_clinical *c, int64_t patient, const char *dev, const char *cond,
                        unsigned prio, const char *text, uint64_t at)
{
	struct open_alarm *o;

	pthread_mutex_lock(&c->slock);
	o = open_find(c, patient, dev, cond);
	if (o != NULL && prio < o->prio &&
	    mt_store_alarm_transition(c->store, o->id, "update", at, "hub", prio, text, NULL) ==
	            MT_OK) {
		o->prio = prio;
		told(c, o->id, "update", "hub");
	}
	pthread_mutex_unlock(&c->slock);
}

void mt_clinical_hub_alarm(struct mt_clinical *c, const char *cond, const char *text)
{
	char t[MT_ALARM_TEXT_MAX];

	if (c == NULL || cond == NULL || text == NULL)
		return;
	ascii_text(t, sizeof t, text);
	raise_alarm(c, 0, "", cond, "ST", MT_PRIO_MEDIUM, CODE_HUB, t, "", now_ms());
}

enum mt_err mt_clinical_ack(struct mt_clinical *c, int64_t id, const char *user)
{
	struct open_alarm *o;
	enum mt_err e;

	if (c == NULL || user == NULL || id < 1)
		return MT_ERR_ARG;
	pthread_mutex_lock(&c->slock);
	e = mt_store_alarm_transition(c->store, id, "ack", now_ms(), user, 0, NULL, NULL);
	if (e == MT_OK) {
		o = open_by_id(c, id);
		if (o != NULL)
			o->acked = true;
		told(c, id, "ack", user);
	}
	pthread_mutex_unlock(&c->slock);
	/* A clinician's acknowledgement is answered once it is on disk. */
	if (e == MT_OK && c->o.syncer != NULL)
		e = mt_syncer_wait(c->o.syncer);
	return e;
}

/* ---- devices ----------------------------------------------------------------- */

static bool device_active(struct mt_clinical *c, const char *dev)
{
	struct mt_device_rec rec;

	return mt_registry_device(c->reg, dev, &rec) == MT_OK && rec.status == MT_DEV_ACTIVE;
}

/* Counters: remember gaps below the highest seen; fill them as they come. */
static void track_counter(struct dstate *d, uint64_t ctr, uint64_t now)
{
	if (!d->seen_ctr) {
		d->seen_ctr = true;
		d->max_ctr = ctr;
		return;
	}
	if (ctr > d->max_ctr) {
		if (ctr > d->max_ctr + 1 && d->n_gaps < GAPS_MAX)
			d->gaps[d->n_gaps++] = (struct gap){d->max_ctr + 1, ctr - 1, now};
		d->max_ctr = ctr;
		return;
	}
	for (size_t i = 0; i < d->n_gaps; i++) {
		struct gap *g = &d->gaps[i];

		if (ctr < g->from || ctr > g->to)
			continue;
		if (g->from == g->to) {
			d->gaps[i] = d->gaps[--d->n_gaps];
		} else if (ctr == g->from) {
			g->from++;
		} else if (ctr == g->to) {
			g->to--;
		} else if (d->n_gaps < GAPS_MAX) {
			d->gaps[d->n_gaps++] = (struct gap){ctr + 1, g->to, g->since};
			g->to = ctr - 1;
		} else {
			g->to = ctr - 1; /* no room to split: forget the upper part */
		}
		return;
	}
}

static void device_heard(struct mt_clinical *c, struct dstate *d, int64_t patient, uint64_t rx)
{
	if (d->n > 0 && rx > d->last_rx) {
		uint64_t gap = rx - d->last_rx;

		d->interval = d->interval == 0 ? gap : (d->interval * 7 + gap) / 8;
	}
	if (rx > d->last_rx)
		d->last_rx = rx;
	d->n++;
	if (patient > 0)
		d->patient = patient;
	end_alarm(c, d->patient, d->dev, "offline", rx);
}

/* ---- readings ------------------------------------------------------------------ */

static void refs_add(char *refs, size_t cap, int64_t reading)
{
	size_t n = strlen(refs);

	if (reading < 1)
		return;
	(void)snprintf(refs + n, cap - n, "%sr%" PRId64, n ? "," : "", reading);
}

static void news2_eval(struct mt_clinical *c, struct pstate *p, const char *dev, uint64_t t)
{
	struct mt_news2_input in;
	struct mt_news2_result r;
	char refs[MT_ALARM_REFS_MAX] = "", text[MT_ALARM_TEXT_MAX];

	if (p->na)
		return;
	mt_news2_input_init(&in);
	in.spo2_scale2 = p->scale2;
	in.oxygen = p->oxygen;
	in.consciousness = p->acvpu;
	for (int k = 0; k < MT_NEWS2_PARAMS; k++) {
		struct val *v = &p->p[k];

		if (!v->has || v->t + c->o.fresh_ms < t)
			continue; /* missing, or older than the freshness window */
		if (mt_news2_input_set(&in, (enum mt_news2_param)k, v->v) == MT_OK)
			refs_add(refs, sizeof refs, v->reading);
	}
	if (mt_news2_score(&in, &r) != MT_OK || !r.applicable)
		return;
	atomic_fetch_add(&c->st_scored, 1);
	if (r.aggregate != p->last_score || r.missing != p->last_missing ||
	    t - p->last_score_ms >= NEWS2_KEEP_MS) {
		if (c->n_n2 < N2_BATCH) {
			if (c->n_n2 == 0)
				c->n2_first_ms = now_ms();
			c->n2[c->n_n2++] = (struct news2_pending){p->id, t, r.aggregate, r.any_three,
			                                          r.missing, r.assumed};
		}
		if (c->o.live != NULL) {
			char ev[256];

			(void)snprintf(ev, sizeof ev,
			               "{\"patient\":%" PRId64 ",\"score\":%u,\"any_three\":%s,"
			               "\"priority\":\"%s\",\"missing\":%u,\"assumed\":%u,\"at_ms\":%" PRIu64
			               "}",
			               p->id, r.aggregate, r.any_three ? "true" : "false",
			               prio_name(r.prio), r.missing, r.assumed, t);
			mt_live_publish(c->o.live, "news2", p->ward, ev);
		}
		p->last_score = r.aggregate;
		p->last_missing = r.missing;
		p->last_score_ms = t;
	}
	(void)snprintf(text, sizeof text, "NEWS2 %u (%s risk%s%s%s)", r.aggregate, r.risk,
	               r.any_three ? ", a single parameter scored 3" : "",
	               r.complete ? "" : ", partial: parameters missing",
	               r.assumed ? ", air/alert assumed" : "");
	if (r.prio == MT_PRIO_NONE) {
		end_alarm(c, p->id, "", "news2", t);
	} else {
		struct open_alarm *o;
		unsigned cur = 0;

		pthread_mutex_lock(&c->slock);
		o = open_find(c, p->id, "", "news2");
		if (o != NULL)
			cur = o->prio;
		pthread_mutex_unlock(&c->slock);
		if (cur != 0 && r.prio < cur)
			lower_alarm(c, p->id, "", "news2", r.prio, text, t);
		else
			raise_alarm(c, p->id, "", "news2", "SP", r.prio, CODE_NEWS2, text, refs, t);
	}
	(void)dev;
}

static void rules_feed(struct mt_clinical *c, struct pstate *p, const char *dev, uint32_t code,
                       double v, uint64_t t, int64_t reading)
{
	for (size_t i = 0; i < p->n_rules; i++) {
		struct mt_rule *r = &p->rules[i];
		enum mt_rule_event ev;
		char cond[MT_ALARM_COND_MAX], text[MT_ALARM_TEXT_MAX], rt[128], refs[32] = "";

		if (r->mdc_code != code)
			continue;
		ev = mt_rule_feed(r, &p->rst[i], t, v);
		p->rv[i] = (struct val){true, v, t, reading, 0};
		if (ev == MT_RULE_NONE)
			continue;
		if (mt_rule_format(r, rt, sizeof rt) != MT_OK)
			(void)snprintf(rt, sizeof rt, "rule %zu", i);
		(void)snprintf(cond, sizeof cond, "rule:%" PRIu32 "%c%g", r->mdc_code,
		               r->dir == MT_RULE_ABOVE ? '>' : '<', r->limit);
		if (ev == MT_RULE_RAISE) {
			(void)snprintf(text, sizeof text, "%g breaches %s", v, rt);
			refs_add(refs, sizeof refs, reading);
			raise_alarm(c, p->id, "", cond, "SP", r->prio, CODE_RULE, text, refs, t);
		} else {
			end_alarm(c, p->id, "", cond, t);
		}
	}
	(void)dev;
}

static void on_vitals(struct mt_clinical *c, const struct ev *e, const struct mt_message *m,
                      int64_t patient)
{
	struct pstate *p;
	bool changed = false;
	uint64_t newest = 0;
	char live[1400];
	size_t lo = 0;

	pthread_mutex_lock(&c->slock);
	p = patient_state(c, patient, now_ms());
	pthread_mutex_unlock(&c->slock);
	if (p == NULL || !p->known)
		return;
	lo = (size_t)snprintf(live, sizeof live,
	                      "{\"patient\":%" PRId64 ",\"device\":\"%s\",\"reading\":%" PRId64
	                      ",\"at_ms\":%" PRIu64 ",\"obs\":[",
	                      patient, e->dev, e->ref, now_ms());
	for (size_t i = 0; i < m->n_obs; i++) {
		const struct mt_obs *o = &m->obs[i];
		uint64_t t;
		double v;
		enum mt_news2_param k;

		if (o->waveform || !mt_message_obs_time(m, o, &t))
			continue;
		v = mt_num_to_double(&o->value);
		if (!isfinite(v))
			continue; /* refused at ingest; never scored */
		if (t > newest)
			newest = t;
		k = mt_news2_param_of_mdc(o->code);
		if (k != MT_NEWS2_PARAM_NONE && (!p->p[k].has || t >= p->p[k].t)) {
			p->p[k] = (struct val){true, v, t, e->ref, o->has_places ? o->places : 0};
			changed = true;
		}
		rules_feed(c, p, e->dev, o->code, v, t, e->ref);
		if (lo + 64 < sizeof live)
			lo += (size_t)snprintf(live + lo, sizeof live - lo,
			                       "%s{\"code\":%" PRIu32 ",\"v\":%.6g,\"p\":%u,\"t\":%" PRIu64
			                       "}",
			                       lo > 0 && live[lo - 1] != '[' ? "," : "", o->code, v,
			                       o->has_places ? o->places : 99u, t);
	}
	if (lo + 3 < sizeof live && c->o.live != NULL) {
		(void)snprintf(live + lo, sizeof live - lo, "]}");
		mt_live_publish(c->o.live, "vitals", p->ward, live);
	}
	if (changed)
		news2_eval(c, p, e->dev, newest);
}

static void on_reading(struct mt_clinical *c, const struct ev *e)
{
	struct mt_cose_sign1 s1;
	struct mt_message m;
	struct dstate *d = dev_state(c, e->dev);
	int64_t patient = 0;
	uint64_t now = now_ms();

	atomic_fetch_add(&c->st_readings, 1);
	if (d == NULL)
		return;
	if (mt_cose_sign1_decode(e->data, e->len, true, &s1) != MT_OK || s1.payload == NULL ||
	    mt_message_decode(s1.payload, s1.payload_len, &m, c->obs, MT_OBS_MAX, NULL) != MT_OK)
		return; /* verified at ingest: cannot happen */
	pthread_mutex_lock(&c->slock);
	if (mt_store_assigned(c->store, e->dev, e->ts_ms, &patient) != MT_OK)
		patient = 0;
	pthread_mutex_unlock(&c->slock);
	track_counter(d, e->ctr, now);
	device_heard(c, d, patient, e->received_ms);
	if (e->typ == MT_TYP_STATUS && (m.st.has & MT_ST_BATTERY)) {
		char text[96];

		(void)snprintf(text, sizeof text, "battery %" PRIu64 " %%", m.st.battery);
		if (m.st.battery <= BATTERY_LOW)
			raise_alarm(c, d->patient, e->dev, "battery", "ST", MT_PRIO_LOW, CODE_BATTERY,
			            text, "", e->received_ms);
		else if (m.st.battery >= BATTERY_OK)
			end_alarm(c, d->patient, e->dev, "battery", e->received_ms);
	}
	if (e->flags & MT_STORE_SKEWED) {
		char refs[32] = "";

		refs_add(refs, sizeof refs, e->ref);
		raise_alarm(c, d->patient, e->dev, "clock", "ST", MT_PRIO_LOW, CODE_SKEW,
		            "device clock ahead of the hub by more than 5 min: its data is not scored",
		            refs, e->received_ms);
	}
	/* Not scored: skewed or stale data (protocol §5), a device no longer
	 * active, a reading nobody is assigned to. */
	if ((e->flags & (MT_STORE_SKEWED | MT_STORE_STALE)) || patient == 0 ||
	    e->typ != MT_TYP_VITALS || !device_active(c, e->dev)) {
		if (e->typ == MT_TYP_VITALS)
			atomic_fetch_add(&c->st_ignored, 1);
		return;
	}
	on_vitals(c, e, &m, patient);
}

/* A device-originated alert (fast packet, committed and de-duplicated by
 * the ingest). */
static void on_alert(struct mt_clinical *c, const struct ev *e)
{
	struct dstate *d = dev_state(c, e->dev);
	int64_t patient = 0;
	char cond[MT_ALARM_COND_MAX], refs[32], text[MT_ALARM_TEXT_MAX];
	bool technical = e->code >= 1100 && e->code < 1200;

	atomic_fetch_add(&c->st_alerts, 1);
	if (d == NULL)
		return;
	pthread_mutex_lock(&c->slock);
	if (mt_store_assigned(c->store, e->dev, e->ts_ms, &patient) != MT_OK)
		patient = 0;
	pthread_mutex_unlock(&c->slock);
	track_counter(d, e->ctr, e->received_ms);
	device_heard(c, d, patient, e->received_ms);
	/* A fast packet from a device that is not active, from the future or
	 * from yesterday raises nothing (A25; the ingest refuses the inactive
	 * already: this closes the race with a revocation). */
	if (!device_active(c, e->dev) || e->ts_ms > e->received_ms + SKEW_MS ||
	    e->received_ms > e->ts_ms + STALE_MS) {
		atomic_fetch_add(&c->st_ignored, 1);
		return;
	}
	(void)snprintf(cond, sizeof cond, "device:%" PRIu64, e->code);
	(void)snprintf(refs, sizeof refs, "a%" PRId64, e->ref);
	{
		char dt[101];

		ascii_text(dt, sizeof dt, e->text);
		(void)snprintf(text, sizeof text, "device alarm %" PRIu64 "%s%s", e->code,
		               dt[0] ? ": " : "", dt);
	}
	raise_alarm(c, patient, e->dev, cond, technical ? "ST" : "SP", e->prio, (uint32_t)e->code,
	            text, refs, e->received_ms);
}

static void on_security(struct mt_clinical *c, const struct ev *e)
{
	struct dstate *d = dev_state(c, e->dev);
	char text[MT_ALARM_TEXT_MAX];

	if (d == NULL)
		return;
	d->attack_ms = e->received_ms;
	(void)snprintf(text, sizeof text,
	               "possible attack: %.60s, %" PRIu64 " packets refused and dropped", e->text,
	               e->count);
	raise_alarm(c, d->patient, e->dev, "attack", "ST", MT_PRIO_MEDIUM, CODE_ATTACK, text, "",
	            e->received_ms);
}

/* ---- the tick: offline, gaps, escalation, registry ----------------------------- */

struct scan {
	struct mt_clinical *c;
	int64_t since;
	uint64_t now;
};

static enum mt_err withdrawn_cb(const struct mt_device_rec *r, void *arg)
{
	struct scan *s = arg;
	struct dstate *d;
	char text[MT_ALARM_TEXT_MAX];

	if (r->updated_at < s->since)
		return MT_OK;
	d = dev_state(s->c, r->serial);
	(void)snprintf(text, sizeof text, "device %s: %s", mt_dev_status_name(r->status),
	               r->status_reason);
	raise_alarm(s->c, d != NULL ? d->patient : 0, r->serial, "revoked", "ST", MT_PRIO_MEDIUM,
	            CODE_REVOKED, text, "", s->now);
	return MT_OK;
}

static enum mt_err cert_cb(const struct mt_device_rec *r, void *arg)
{
	struct scan *s = arg;
	struct mt_cert_rec cr;
	int64_t now = (int64_t)(s->now / 1000), life, left;
	struct dstate *d;

	if (r->cert_serial[0] == '\0' || mt_registry_cert(s->c->reg, r->cert_serial, &cr) != MT_OK)
		return MT_OK;
	life = cr.not_after - cr.not_before;
	left = cr.not_after - now;
	d = dev_state(s->c, r->serial);
	if (life > 0 && left < life / 6) {
		char text[MT_ALARM_TEXT_MAX];

		(void)snprintf(text, sizeof text,
		               "operational certificate %s expires in %" PRId64 " s and was not renewed",
		               r->cert_serial, left > 0 ? left : 0);
		raise_alarm(s->c, d != NULL ? d->patient : 0, r->serial, "certificate", "ST",
		            MT_PRIO_LOW, CODE_CERT, text, "", s->now);
	} else {
		end_alarm(s->c, d != NULL ? d->patient : 0, r->serial, "certificate", s->now);
	}
	return MT_OK;
}

static void tick(struct mt_clinical *c)
{
	uint64_t now = now_ms();
	int64_t v = 0;

	/* Devices: offline, unfilled counter gaps, a quiet attacker. */
	for (size_t h = 0; h < HASH; h++)
		for (struct dstate *d = c->dh[h]; d != NULL; d = d->next) {
			uint64_t limit = 3 * d->interval;

			if (limit < OFFLINE_MIN_MS)
				limit = OFFLINE_MIN_MS;
			if (d->n >= 2 && now > d->last_rx + limit) {
				char text[MT_ALARM_TEXT_MAX];

				(void)snprintf(text, sizeof text,
				               "device offline: no data for %" PRIu64 " s (3 x its %" PRIu64
				               " ms interval)",
				               (now - d->last_rx) / 1000, d->interval);
				raise_alarm(c, d->patient, d->dev, "offline", "ST", MT_PRIO_MEDIUM,
				            CODE_OFFLINE, text, "", now);
			}
			{
				uint64_t missing = 0;

				for (size_t i = 0; i < d->n_gaps; i++)
					if (now > d->gaps[i].since + GAP_GRACE_MS)
						missing += d->gaps[i].to - d->gaps[i].from + 1;
				if (missing > 0) {
					char text[MT_ALARM_TEXT_MAX];

					(void)snprintf(text, sizeof text,
					               "counter gap: %" PRIu64 " packets missing for over %d s",
					               missing, GAP_GRACE_MS / 1000);
					raise_alarm(c, d->patient, d->dev, "gap", "ST", MT_PRIO_LOW, CODE_GAP,
					            text, "", now);
				} else if (d->n_gaps == 0) {
					end_alarm(c, d->patient, d->dev, "gap", now);
				}
			}
			if (d->attack_ms != 0 && now > d->attack_ms + ATTACK_QUIET_MS) {
				d->attack_ms = 0;
				end_alarm(c, d->patient, d->dev, "attack", now);
			}
		}
	/* Device alerts resolve once quiet; unacknowledged high and medium
	 * alarms escalate. */
	pthread_mutex_lock(&c->slock);
	for (size_t i = 0; i < c->n_open;) {
		struct open_alarm *o = &c->open[i];

		if (strncmp(o->cond, "device:", 7) == 0 && now > o->last_ms + DEVICE_ALARM_QUIET_MS &&
		    mt_store_alarm_transition(c->store, o->id, "end", now, "hub", 0, NULL, NULL) ==
		            MT_OK) {
			int64_t id = o->id;

			open_remove(c, o);
			told(c, id, "end", "hub");
			continue;
		}
		if (!o->acked && !o->escalated && o->prio >= MT_PRIO_MEDIUM &&
		    now > o->raised_ms + c->o.escalate_ms &&
		    mt_store_alarm_transition(c->store, o->id, "escalate", now, "hub", 0, NULL,
		                              NULL) == MT_OK) {
			o->escalated = true;
			told(c, o->id, "escalate", "hub");
		}
		i++;
	}
	pthread_mutex_unlock(&c->slock);
	/* The registry: withdrawn devices, certificates near their end. */
	if (mt_registry_data_version(c->reg, &v) == MT_OK && v != c->reg_version) {
		struct scan s = {c, (int64_t)(c->started_ms / 1000) - 60, now};

		c->reg_version = v;
		if (mt_registry_devices(c->reg, MT_DEV_REVOKED, withdrawn_cb, &s) != MT_OK ||
		    mt_registry_devices(c->reg, MT_DEV_DECOMMISSIONED, withdrawn_cb, &s) != MT_OK)
			fprintf(stderr, "medtrustd: clinical: registry scan failed\n");
	}
	if (now > c->last_cert_scan_ms + 60000) {
		struct scan s = {c, 0, now};

		c->last_cert_scan_ms = now;
		if (mt_registry_devices(c->reg, MT_DEV_ACTIVE, cert_cb, &s) != MT_OK)
			fprintf(stderr, "medtrustd: clinical: certificate scan failed\n");
	}
	if (c->o.live != NULL)
		mt_live_tick(c->o.live);
}

/* ---- the thread ---------------------------------------------------------------------- */

/* Write the pending NEWS2 rows in one transaction (engine thread). */
static void n2_flush(struct mt_clinical *c)
{
	enum mt_err e;

	if (c->n_n2 == 0)
		return;
	pthread_mutex_lock(&c->slock);
	e = mt_store_begin(c->store);
	for (size_t i = 0; i < c->n_n2 && e == MT_OK; i++) {
		const struct news2_pending *r = &c->n2[i];

		e = mt_store_news2_put(c->store, r->patient, r->at_ms, r->score, r->any_three,
		                       r->missing, r->assumed);
	}
	if (e == MT_OK)
		e = mt_store_commit(c->store);
	else
		mt_store_rollback(c->store);
	pthread_mutex_unlock(&c->slock);
	if (e != MT_OK)
		fprintf(stderr, "medtrustd: %zu NEWS2 scores not recorded: %s\n", c->n_n2,
		        mt_err_str(e));
	c->n_n2 = 0;
}

static void *engine_main(void *arg)
{
	struct mt_clinical *c = arg;
	uint64_t last_tick = 0;

	pthread_mutex_lock(&c->qlock);
	for (;;) {
		struct ev *e = NULL;
		uint64_t now;
		bool more;

		while (c->ahead == NULL && c->rhead == NULL && !c->stopping) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			if (pthread_cond_timedwait(&c->qcond, &c->qlock, &ts) != 0)
				break;
		}
		if (c->stopping)
			break;
		if (c->ahead != NULL) {
			e = c->ahead;
			c->ahead = e->next;
			if (c->ahead == NULL)
				c->atail = NULL;
		} else if (c->rhead != NULL) {
			e = c->rhead;
			c->rhead = e->next;
			if (c->rhead == NULL)
				c->rtail = NULL;
		}
		if (e != NULL)
			c->queued--;
		more = c->ahead != NULL || c->rhead != NULL;
		pthread_mutex_unlock(&c->qlock);
		if (e != NULL) {
			if (e->kind == EV_ALERT)
				on_alert(c, e);
			else if (e->kind == EV_READING)
				on_reading(c, e);
			else
				on_security(c, e);
			mt_wipe(e->data, e->len);
			free(e);
		}
		now = now_ms();
		if (c->n_n2 > 0 && (c->n_n2 >= N2_BATCH || now >= c->n2_first_ms + N2_DELAY_MS ||
		                    !more))
			n2_flush(c);
		if (now >= last_tick + 1000) {
			last_tick = now;
			tick(c);
		}
		pthread_mutex_lock(&c->qlock);
	}
	pthread_mutex_unlock(&c->qlock);
	return NULL;
}

static enum mt_err load_open(void *ctx, const struct mt_alarm *a)
{
	struct mt_clinical *c = ctx;
	struct open_alarm *o;

	if (c->n_open >= OPEN_MAX)
		return MT_OK;
	o = &c->open[c->n_open++];
	memset(o, 0, sizeof *o);
	o->id = a->id;
	o->patient_id = a->patient_id;
	(void)snprintf(o->dev, sizeof o->dev, "%s", a->dev);
	(void)snprintf(o->cond, sizeof o->cond, "%s", a->cond);
	o->prio = a->prio;
	o->acked = strcmp(a->state, "acknowledged") == 0;
	o->escalated = a->escalated_ms != 0;
	o->raised_ms = a->raised_ms;
	o->last_ms = now_ms(); /* quiet timers start again after a restart */
	return MT_OK;
}

enum mt_err mt_clinical_start(const struct mt_clinical_opts *o, struct mt_clinical **out,
                              char *why, size_t why_cap)
{
	struct mt_clinical *c;
	uint64_t v;
	enum mt_err e;

	if (o == NULL || o->d == NULL || out == NULL)
		return MT_ERR_ARG;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return MT_ERR_NOMEM;
	c->o = *o;
	pthread_mutex_init(&c->slock, NULL);
	pthread_mutex_init(&c->qlock, NULL);
	pthread_cond_init(&c->qcond, NULL);
	c->started_ms = now_ms();
	if (c->o.escalate_ms == 0) {
		e = mt_deploy_uint(o->d, "alarm_escalate_s", 120, 86400, &v);
		if (e != MT_OK) {
			mt_say(why, why_cap, "alarm_escalate_s is not a number of seconds (1-86400)");
			goto fail;
		}
		c->o.escalate_ms = (uint32_t)(v * 1000);
	}
	if (c->o.fresh_ms == 0) {
		e = mt_deploy_uint(o->d, "news2_fresh_s", 900, 86400, &v);
		if (e != MT_OK) {
			mt_say(why, why_cap, "news2_fresh_s is not a number of seconds (1-86400)");
			goto fail;
		}
		c->o.fresh_ms = (uint32_t)(v * 1000);
	}
	c->obs = calloc(MT_OBS_MAX, sizeof *c->obs);
	c->n2 = calloc(N2_BATCH, sizeof *c->n2);
	if (c->obs == NULL || c->n2 == NULL) {
		e = MT_ERR_NOMEM;
		goto fail;
	}
	e = mt_deploy_open_store(o->d, &c->store);
	if (e == MT_OK && o->syncer != NULL)
		e = mt_store_defer_sync(c->store);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot open the data store: %s", mt_err_str(e));
		goto fail;
	}
	e = mt_registry_open(mt_deploy_get(o->d, "db_path"), &c->reg);
	if (e == MT_OK)
		e = mt_registry_data_version(c->reg, &c->reg_version);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot open the registry: %s", mt_err_str(e));
		goto fail;
	}
	e = mt_store_alarms(c->store, true, 0, OPEN_MAX, load_open, c);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot read the open alarms: %s", mt_err_str(e));
		goto fail;
	}
	if (pthread_create(&c->thread, NULL, engine_main, c) != 0) {
		e = MT_ERR_NOMEM;
		goto fail;
	}
	c->running = true;
	*out = c;
	return MT_OK;
fail:
	mt_clinical_stop(c);
	return e;
}

void mt_clinical_stop(struct mt_clinical *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->qlock);
	c->stopping = true;
	pthread_cond_broadcast(&c->qcond);
	pthread_mutex_unlock(&c->qlock);
	if (c->running)
		pthread_join(c->thread, NULL);
	if (c->store != NULL)
		n2_flush(c);
	/* The syncer's jobs of ours name c: let them run before c goes. */
	if (c->o.syncer != NULL && mt_syncer_wait(c->o.syncer) != MT_OK) {
		/* logged by the syncer */
	}
	free(c->n2);
	for (struct ev *e = c->ahead, *n; e != NULL; e = n) {
		n = e->next;
		free(e);
	}
	for (struct ev *e = c->rhead, *n; e != NULL; e = n) {
		n = e->next;
		mt_wipe(e->data, e->len);
		free(e);
	}
	for (size_t h = 0; h < HASH; h++) {
		for (struct pstate *p = c->ph[h], *n; p != NULL; p = n) {
			n = p->next;
			mt_wipe(p, sizeof *p);
			free(p);
		}
		for (struct dstate *d = c->dh[h], *n; d != NULL; d = n) {
			n = d->next;
			free(d);
		}
	}
	mt_store_close(c->store);
	if (c->reg != NULL)
		mt_registry_close(c->reg);
	free(c->obs);
	pthread_mutex_destroy(&c->slock);
	pthread_mutex_destroy(&c->qlock);
	pthread_cond_destroy(&c->qcond);
	free(c);
}

void mt_clinical_stats(struct mt_clinical *c, struct mt_clinical_stats *s)
{
	memset(s, 0, sizeof *s);
	if (c == NULL)
		return;
	s->readings = atomic_load(&c->st_readings);
	s->alerts = atomic_load(&c->st_alerts);
	s->alarms_raised = atomic_load(&c->st_raised);
	s->transitions = atomic_load(&c->st_transitions);
	s->news2_scored = atomic_load(&c->st_scored);
	s->dropped = atomic_load(&c->st_dropped);
	s->ignored = atomic_load(&c->st_ignored);
	pthread_mutex_lock(&c->qlock);
	s->queued = c->queued;
	pthread_mutex_unlock(&c->qlock);
}
