/*
 * clinical.h — medtrustd's clinical engine: verified readings become
 * scores and alarms a nurse can act on (docs/alarms.md; clinical.md §2,
 * §3; threats A20, A25, A26).
 *
 *   ingest committer ──reading / alert / refusal burst──▶ engine queue
 *      (alerts ahead of readings: the fast channel is never stuck behind
 *       a backlog of routine vitals)
 *   engine thread: latest value of each parameter per patient → NEWS2
 *      and the patient's threshold rules; device-originated alerts; the
 *      technical and security alarms (offline, counter gap, battery low,
 *      certificate expiring, possible attack, revoked, clock skew) →
 *      alarms in the store (one transaction each, with their HL7 journal
 *      entry) → audit → the console's live stream (live.h)
 *
 * Invariants:
 *  - Only what the ingest stored reaches the engine, after its commit:
 *    a refused, replayed or implausible packet never raises anything, and
 *    a replayed fast packet is a duplicate at the committer, not here.
 *  - A reading from a device the registry no longer holds active, or
 *    flagged clock-skewed or stale, neither raises nor clears a clinical
 *    alarm (protocol §5; it still counts as a sign of life).
 *  - One condition is one alarm: (patient, device, condition) has at most
 *    one open alarm; a repeat refreshes it, a higher priority replaces it.
 *  - Every transition (raise, update, acknowledge, escalate, resolve) is
 *    a row in alarm_events and a journal entry (HL7 PCD-04), committed
 *    together, then a live event and an audit record, in that order.
 */
#ifndef MT_HUB_CLINICAL_H
#define MT_HUB_CLINICAL_H

#include <stdbool.h>
#include <stdint.h>

#include "ingest.h"
#include "live.h"
#include "medtrust/mt_audit.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_err.h"
#include "syncer.h"

struct mt_clinical_opts {
	struct mt_deploy *d;   /* data store, registry path, conf */
	struct mt_live *live;  /* may be NULL */
	void (*audit)(void *ctx, const char *actor, const char *action, const char *subject,
	              enum mt_audit_outcome outcome, const char *detail);
	void *audit_ctx;
	/* New journal entries are committed (the HL7 senders' wake-up). */
	void (*journal_kick)(void *ctx);
	void *kick_ctx;
	/* When set, the engine commits without waiting for the disk and a
	 * transition's audit record and journal kick wait for the syncer's
	 * fsync (the live event does not); an acknowledgement returns once
	 * durable.  NULL: every commit is durable when it returns. */
	struct mt_syncer *syncer;
	uint32_t escalate_ms; /* 0: alarm_escalate_s from the conf, default 120 s */
	uint32_t fresh_ms;    /* 0: news2_fresh_s from the conf, default 15 min */
};

struct mt_clinical;

MT_NODISCARD enum mt_err mt_clinical_start(const struct mt_clinical_opts *o,
                                           struct mt_clinical **out, char *why,
                                           size_t why_cap);
void mt_clinical_stop(struct mt_clinical *c);

/* The ingest's callbacks (committer thread; they only queue). */
void mt_clinical_on_reading(void *ctx, const struct mt_ingest_reading *r);
void mt_clinical_on_alert(void *ctx, const struct mt_ingest_alert *a);
void mt_clinical_on_security(void *ctx, const char *dev, const char *what, uint64_t count);

/* Acknowledge alarm `id` as `user` (any thread).  Errors: MT_ERR_NOT_FOUND,
 * MT_ERR_REFUSED (not active), store errors. */
MT_NODISCARD enum mt_err mt_clinical_ack(struct mt_clinical *c, int64_t id, const char *user);

/* A technical alarm of the hub itself (no patient, no device), e.g. an
 * HL7 message parked by its receiver: condition `cond`, medium priority.
 * Any thread. */
void mt_clinical_hub_alarm(struct mt_clinical *c, const char *cond, const char *text);

/* The ward of patient `id` as the engine knows it ("" when unknown): for
 * authorising a console user against an alarm. */
void mt_clinical_patient_ward(struct mt_clinical *c, int64_t id, char *ward, size_t cap);

struct mt_clinical_stats {
	uint64_t readings, alerts, alarms_raised, transitions, news2_scored, dropped, ignored;
	uint64_t queued;
};
void mt_clinical_stats(struct mt_clinical *c, struct mt_clinical_stats *s);

#endif
