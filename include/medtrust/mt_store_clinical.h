/*
 * mt_store_clinical.h — alarms, their transitions, NEWS2 history and the
 * export journal, in the data store (data.db; docs/alarms.md).
 *
 * The clinical engine of medtrustd (src/hub/clinical.c) is the one writer
 * of these tables, on a store handle of its own; the console and the HL7
 * sender read them.  Every function that writes runs its own transaction
 * (BEGIN IMMEDIATE … COMMIT: synchronous=FULL, like the readings), so an
 * alarm, its transition row and the transition's journal entry (the HL7
 * PCD-04 to send) are durable together or not at all.
 *
 * What an alarm row holds: the patient's row id (never the identity, which
 * is encrypted in `patients`), the device id, the condition it stands for
 * (`cond`: one condition is one alarm, so the engine finds the open alarm
 * of a condition before raising another), IEC 60601-1-8 priority, the
 * IHE PCD type (SP physiological, ST technical, SA advisory), its state
 * (active → acknowledged → resolved), who acknowledged it and when, and
 * the stored readings that triggered it (`readings`: "r<id>" for a
 * reading, "a<id>" for a fast-packet alert, comma-separated, at most a
 * few).  `text` is a short operator message without identity.
 */
#ifndef MT_STORE_CLINICAL_H
#define MT_STORE_CLINICAL_H

#include <stdbool.h>
#include <stdint.h>

#include "mt_err.h"
#include "mt_message.h"
#include "mt_store.h"

#define MT_ALARM_COND_MAX 64
#define MT_ALARM_TEXT_MAX 200
#define MT_ALARM_REFS_MAX 200
#define MT_ALARM_ACTOR_MAX 80

enum mt_alarm_prio { MT_PRIO_NONE = 0, MT_PRIO_LOW = 1, MT_PRIO_MEDIUM = 2, MT_PRIO_HIGH = 3 };

struct mt_alarm {
	int64_t id;
	int64_t patient_id;                     /* 0: a device's technical alarm, no patient */
	char dev[MT_DEVICE_ID_MAX + 1];         /* "" when not about one device */
	char cond[MT_ALARM_COND_MAX];           /* "news2", "rule:3", "device:1002", "offline", … */
	char type[3];                           /* "SP" "ST" "SA" */
	unsigned prio;                          /* enum mt_alarm_prio */
	uint32_t code;                          /* the event code (MDC or medtrust's) */
	char state[16];                         /* "active" "acknowledged" "resolved" */
	char text[MT_ALARM_TEXT_MAX];
	uint64_t raised_ms, acked_ms, resolved_ms, escalated_ms; /* 0: not yet */
	char acked_by[MT_ALARM_ACTOR_MAX];
	char readings[MT_ALARM_REFS_MAX];
};

/* One transition (alarm_events row), as HL7 PCD-04 reports it. */
struct mt_alarm_event {
	int64_t id, alarm_id;
	uint64_t at_ms;
	char phase[16]; /* "start" "update" "escalate" "end" */
	char state[16]; /* the alarm's state after it */
	unsigned prio;
	char actor[MT_ALARM_ACTOR_MAX];
};

/* Raise alarm *a (id, state, times after raised_ms are ignored): one
 * transaction writes the alarm (state active), its "start" event and the
 * event's journal entry.  *id and *event_id (may be NULL) get the new ids.
 * Errors: MT_ERR_ARG, MT_ERR_STORE_DB, MT_ERR_STORE_BUSY. */
MT_NODISCARD enum mt_err mt_store_alarm_raise(struct mt_store *s, const struct mt_alarm *a,
                                              int64_t *id, int64_t *event_id);

/* A transition of alarm `id` at at_ms by `actor`: phase "ack" (state
 * acknowledged, acked_by/acked_ms set; only from active), "escalate"
 * (escalated_ms set, prio kept), "update" (prio and text changed to the
 * given ones, state kept), "end" (state resolved).  One transaction with
 * its event and journal entry.  Errors: MT_ERR_NOT_FOUND (no such alarm),
 * MT_ERR_REFUSED (resolved already; ack of an acknowledged one), MT_ERR_ARG,
 * store errors. */
MT_NODISCARD enum mt_err mt_store_alarm_transition(struct mt_store *s, int64_t id,
                                                   const char *phase, uint64_t at_ms,
                                                   const char *actor, unsigned prio,
                                                   const char *text, int64_t *event_id);

MT_NODISCARD enum mt_err mt_store_alarm_get(struct mt_store *s, int64_t id, struct mt_alarm *a);

/* The open (active or acknowledged) alarm of (patient_id, dev, cond).
 * Errors: MT_ERR_NOT_FOUND, store errors. */
MT_NODISCARD enum mt_err mt_store_alarm_open(struct mt_store *s, int64_t patient_id,
                                             const char *dev, const char *cond,
                                             struct mt_alarm *a);

/* Alarms newest first: open ones only, or all; patient_id > 0 restricts to
 * one patient.  At most `max`; cb's error stops the walk and is returned. */
MT_NODISCARD enum mt_err mt_store_alarms(struct mt_store *s, bool open_only, int64_t patient_id,
                                         size_t max,
                                         enum mt_err (*cb)(void *ctx, const struct mt_alarm *a),
                                         void *ctx);

MT_NODISCARD enum mt_err mt_store_alarm_event_get(struct mt_store *s, int64_t event_id,
                                                  struct mt_alarm_event *ev);

/* The first journal entry with seq > after: MT_OK with *seq, *kind, *ref;
 * MT_ERR_NOT_FOUND when there is none yet. */
MT_NODISCARD enum mt_err mt_store_journal_next(struct mt_store *s, uint64_t after, uint64_t *seq,
                                               int *kind, int64_t *ref);
/* The highest journal seq (0: empty). */
MT_NODISCARD enum mt_err mt_store_journal_last(struct mt_store *s, uint64_t *seq);
MT_NODISCARD enum mt_err mt_store_journal_get(struct mt_store *s, uint64_t seq, int *kind,
                                              int64_t *ref);

/* NEWS2 history: one row per recomputed score. */
MT_NODISCARD enum mt_err mt_store_news2_put(struct mt_store *s, int64_t patient_id,
                                            uint64_t at_ms, int score, bool any_three,
                                            unsigned missing, unsigned assumed);
struct mt_news2_row {
	uint64_t at_ms;
	int score;
	bool any_three;
	unsigned missing, assumed;
};
/* The patient's scores since since_ms, oldest first, at most `max`. */
MT_NODISCARD enum mt_err mt_store_news2_history(struct mt_store *s, int64_t patient_id,
                                                uint64_t since_ms, struct mt_news2_row *rows,
                                                size_t max, size_t *n);

#endif
