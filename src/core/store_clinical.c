/*
 * store_clinical.c — alarms, alarm transitions, NEWS2 history and the
 * export journal's reading side (mt_store_clinical.h; docs/alarms.md).
 *
 * Beside store.c on the store's connection (store_int.h), like
 * store_query.c.  Writers take the store's transaction (mt_store_begin /
 * mt_store_commit) so that an alarm's row, its transition and the
 * transition's journal entry commit together; the journal entry itself is
 * written by store.c's mt_store_journal_add.  Every value is a bound
 * parameter; nothing here is encrypted because nothing here identifies a
 * patient (the row id is a pseudonym; names and MRNs live encrypted in
 * `patients`).  Alarm rows are never deleted: a resolved alarm stays as
 * the record of what happened.
 */
#define _POSIX_C_SOURCE 200809L
#include "medtrust/mt_store_clinical.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "store_int.h"

static enum mt_err prep(struct mt_store *s, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(mt_store__sqlite(s), sql, -1, st, NULL) == SQLITE_OK
	               ? MT_OK
	               : MT_ERR_STORE_DB;
}

static enum mt_err step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return MT_OK;
	return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? MT_ERR_STORE_BUSY
	       : rc == SQLITE_FULL                      ? MT_ERR_STORE_FULL
	                                                : MT_ERR_STORE_DB;
}

static void col_str(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	(void)snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

static bool text_ok(const char *t, size_t cap, bool allow_empty)
{
	size_t n;

	if (t == NULL)
		return false;
	n = strnlen(t, cap);
	if (n == cap || (n == 0 && !allow_empty))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			return false;
	return true;
}

static enum mt_err event_add(struct mt_store *s, int64_t alarm_id, uint64_t at_ms,
                             const char *phase, const char *state, unsigned prio,
                             const char *actor, int64_t *event_id)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = prep(s,
	                     "INSERT INTO alarm_events(alarm_id, at_ms, phase, state, prio, actor)"
	                     " VALUES(?,?,?,?,?,?)",
	                     &st);
	int64_t id;

	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, alarm_id);
	sqlite3_bind_int64(st, 2, (int64_t)at_ms);
	sqlite3_bind_text(st, 3, phase, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, state, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, (int)prio);
	sqlite3_bind_text(st, 6, actor, -1, SQLITE_STATIC);
	e = step_done(st);
	if (e != MT_OK)
		return e;
	id = sqlite3_last_insert_rowid(mt_store__sqlite(s));
	if (event_id != NULL)
		*event_id = id;
	return mt_store_journal_add(s, MT_JOURNAL_ALARM, id);
}

static bool alarm_ok(const struct mt_alarm *a)
{
	return a != NULL && a->patient_id >= 0 && text_ok(a->dev, sizeof a->dev, true) &&
	       text_ok(a->cond, sizeof a->cond, false) &&
	       (strcmp(a->type, "SP") == 0 || strcmp(a->type, "ST") == 0 ||
	        strcmp(a->type, "SA") == 0) &&
	       a->prio >= MT_PRIO_LOW && a->prio <= MT_PRIO_HIGH &&
	       text_ok(a->text, sizeof a->text, true) &&
	       text_ok(a->readings, sizeof a->readings, true) && a->raised_ms < (UINT64_C(1) << 62);
}

enum mt_err mt_store_alarm_raise(struct mt_store *s, const struct mt_alarm *a, int64_t *id,
                                 int64_t *event_id)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int64_t aid;

	if (s == NULL || !alarm_ok(a))
		return MT_ERR_ARG;
	e = mt_store_begin(s);
	if (e != MT_OK)
		return e;
	e = prep(s,
	         "INSERT INTO alarms(patient_id, dev, cond, type, prio, code, state, text,"
	         " raised_ms, readings) VALUES(?,?,?,?,?,?,'active',?,?,?)",
	         &st);
	if (e == MT_OK) {
		sqlite3_bind_int64(st, 1, a->patient_id);
		sqlite3_bind_text(st, 2, a->dev, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, a->cond, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, a->type, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, (int)a->prio);
		sqlite3_bind_int64(st, 6, a->code);
		sqlite3_bind_text(st, 7, a->text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, (int64_t)a->raised_ms);
		sqlite3_bind_text(st, 9, a->readings, -1, SQLITE_STATIC);
		e = step_done(st);
	}
	aid = sqlite3_last_insert_rowid(mt_store__sqlite(s));
	if (e == MT_OK)
		e = event_add(s, aid, a->raised_ms, "start", "active", a->prio, "hub", event_id);
	if (e != MT_OK) {
		mt_store_rollback(s);
		return e;
	}
	e = mt_store_commit(s);
	if (e == MT_OK && id != NULL)
		*id = aid;
	return e;
}

static void alarm_row(sqlite3_stmt *st, struct mt_alarm *a)
{
	memset(a, 0, sizeof *a);
	a->id = sqlite3_column_int64(st, 0);
	a->patient_id = sqlite3_column_int64(st, 1);
	col_str(st, 2, a->dev, sizeof a->dev);
	col_str(st, 3, a->cond, sizeof a->cond);
	col_str(st, 4, a->type, sizeof a->type);
	a->prio = (unsigned)sqlite3_column_int(st, 5);
	a->code = (uint32_t)sqlite3_column_int64(st, 6);
	col_str(st, 7, a->state, sizeof a->state);
	col_str(st, 8, a->text, sizeof a->text);
	a->raised_ms = (uint64_t)sqlite3_column_int64(st, 9);
	a->acked_ms = (uint64_t)sqlite3_column_int64(st, 10);
	col_str(st, 11, a->acked_by, sizeof a->acked_by);
	a->resolved_ms = (uint64_t)sqlite3_column_int64(st, 12);
	a->escalated_ms = (uint64_t)sqlite3_column_int64(st, 13);
	col_str(st, 14, a->readings, sizeof a->readings);
}

#define ALARM_COLS                                                                                 \
	"id, patient_id, dev, cond, type, prio, code, state, text, raised_ms, acked_ms,"          \
	" acked_by, resolved_ms, escalated_ms, readings"

enum mt_err mt_store_alarm_get(struct mt_store *s, int64_t id, struct mt_alarm *a)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (s == NULL || a == NULL || id < 1)
		return MT_ERR_ARG;
	e = prep(s, "SELECT " ALARM_COLS " FROM alarms WHERE id = ?", &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		alarm_row(st, a);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : MT_ERR_STORE_DB;
}

enum mt_err mt_store_alarm_open(struct mt_store *s, int64_t patient_id, const char *dev,
                                const char *cond, struct mt_alarm *a)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (s == NULL || a == NULL || dev == NULL || cond == NULL)
		return MT_ERR_ARG;
	e = prep(s,
	         "SELECT " ALARM_COLS " FROM alarms WHERE state IN ('active','acknowledged')"
	         " AND patient_id = ? AND dev = ? AND cond = ? ORDER BY id DESC LIMIT 1",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, patient_id);
	sqlite3_bind_text(st, 2, dev, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, cond, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		alarm_row(st, a);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : MT_ERR_STORE_DB;
}

enum mt_err mt_store_alarm_transition(struct mt_store *s, int64_t id, const char *phase,
                                      uint64_t at_ms, const char *actor, unsigned prio,
                                      const char *text, int64_t *event_id)
{
	struct mt_alarm a;
	sqlite3_stmt *st = NULL;
	const char *state;
	enum mt_err e;

	if (s == NULL || phase == NULL || !text_ok(actor, MT_ALARM_ACTOR_MAX, false))
		return MT_ERR_ARG;
	e = mt_store_begin(s);
	if (e != MT_OK)
		return e;
	e = mt_store_alarm_get(s, id, &a);
	if (e == MT_OK && strcmp(a.state, "resolved") == 0)
		e = MT_ERR_REFUSED;
	if (e != MT_OK)
		goto fail;
	state = a.state;
	if (strcmp(phase, "ack") == 0) {
		if (strcmp(a.state, "active") != 0) {
			e = MT_ERR_REFUSED;
			goto fail;
		}
		state = "acknowledged";
		e = prep(s,
		         "UPDATE alarms SET state = 'acknowledged', acked_ms = ?, acked_by = ?"
		         " WHERE id = ?",
		         &st);
		if (e == MT_OK) {
			sqlite3_bind_int64(st, 1, (int64_t)at_ms);
			sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
		}
	} else if (strcmp(phase, "escalate") == 0) {
		e = prep(s, "UPDATE alarms SET escalated_ms = ? WHERE id = ?", &st);
		if (e == MT_OK)
			sqlite3_bind_int64(st, 1, (int64_t)at_ms);
		prio = a.prio;
	} else if (strcmp(phase, "update") == 0) {
		if (prio < MT_PRIO_LOW || prio > MT_PRIO_HIGH ||
		    !text_ok(text, MT_ALARM_TEXT_MAX, true)) {
			e = MT_ERR_ARG;
			goto fail;
		}
		e = prep(s, "UPDATE alarms SET prio = ?, text = ? WHERE id = ?", &st);
		if (e == MT_OK) {
			sqlite3_bind_int(st, 1, (int)prio);
			sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
		}
	} else if (strcmp(phase, "end") == 0) {
		state = "resolved";
		e = prep(s, "UPDATE alarms SET state = 'resolved', resolved_ms = ? WHERE id = ?", &st);
		if (e == MT_OK)
			sqlite3_bind_int64(st, 1, (int64_t)at_ms);
		prio = a.prio;
	} else {
		e = MT_ERR_ARG;
	}
	if (e != MT_OK)
		goto fail;
	sqlite3_bind_int64(st, sqlite3_bind_parameter_count(st), id);
	e = step_done(st);
	if (e == MT_OK)
		e = event_add(s, id, at_ms, phase, state, prio, actor, event_id);
	if (e != MT_OK)
		goto fail;
	return mt_store_commit(s);
fail:
	mt_store_rollback(s);
	return e;
}

enum mt_err mt_store_alarms(struct mt_store *s, bool open_only, int64_t patient_id, size_t max,
                            enum mt_err (*cb)(void *ctx, const struct mt_alarm *a), void *ctx)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	struct mt_alarm a;
	int rc;

	if (s == NULL || cb == NULL)
		return MT_ERR_ARG;
	e = prep(s,
	         "SELECT " ALARM_COLS " FROM alarms WHERE (?1 = 0 OR state IN"
	         " ('active','acknowledged')) AND (?2 = 0 OR patient_id = ?2)"
	         " ORDER BY id DESC LIMIT ?3",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int(st, 1, open_only ? 1 : 0);
	sqlite3_bind_int64(st, 2, patient_id);
	sqlite3_bind_int64(st, 3, max > INT32_MAX ? INT32_MAX : (int64_t)max);
	while (e == MT_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		alarm_row(st, &a);
		e = cb(ctx, &a);
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_STORE_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_store_alarm_event_get(struct mt_store *s, int64_t event_id,
                                     struct mt_alarm_event *ev)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (s == NULL || ev == NULL || event_id < 1)
		return MT_ERR_ARG;
	e = prep(s,
	         "SELECT id, alarm_id, at_ms, phase, state, prio, actor FROM alarm_events"
	         " WHERE id = ?",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, event_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		memset(ev, 0, sizeof *ev);
		ev->id = sqlite3_column_int64(st, 0);
		ev->alarm_id = sqlite3_column_int64(st, 1);
		ev->at_ms = (uint64_t)sqlite3_column_int64(st, 2);
		col_str(st, 3, ev->phase, sizeof ev->phase);
		col_str(st, 4, ev->state, sizeof ev->state);
		ev->prio = (unsigned)sqlite3_column_int(st, 5);
		col_str(st, 6, ev->actor, sizeof ev->actor);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : MT_ERR_STORE_DB;
}

static enum mt_err journal_one(struct mt_store *s, const char *sql, uint64_t key, uint64_t *seq,
                               int *kind, int64_t *ref)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (s == NULL || kind == NULL || ref == NULL || key > (uint64_t)INT64_MAX)
		return MT_ERR_ARG;
	e = prep(s, sql, &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, (int64_t)key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (seq != NULL)
			*seq = (uint64_t)sqlite3_column_int64(st, 0);
		*kind = sqlite3_column_int(st, 1);
		*ref = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : MT_ERR_STORE_DB;
}

enum mt_err mt_store_journal_next(struct mt_store *s, uint64_t after, uint64_t *seq, int *kind,
                                  int64_t *ref)
{
	if (seq == NULL)
		return MT_ERR_ARG;
	return journal_one(s, "SELECT seq, kind, ref FROM journal WHERE seq > ? ORDER BY seq LIMIT 1",
	                   after, seq, kind, ref);
}

enum mt_err mt_store_journal_last(struct mt_store *s, uint64_t *seq)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (s == NULL || seq == NULL)
		return MT_ERR_ARG;
	e = prep(s, "SELECT coalesce(max(seq), 0) FROM journal", &st);
	if (e != MT_OK)
		return e;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? MT_OK : MT_ERR_STORE_DB;
}

enum mt_err mt_store_journal_get(struct mt_store *s, uint64_t seq, int *kind, int64_t *ref)
{
	return journal_one(s, "SELECT seq, kind, ref FROM journal WHERE seq = ?", seq, NULL, kind,
	                   ref);
}

enum mt_err mt_store_news2_put(struct mt_store *s, int64_t patient_id, uint64_t at_ms, int score,
                               bool any_three, unsigned missing, unsigned assumed)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;

	if (s == NULL || patient_id < 1 || score < 0 || score > 20)
		return MT_ERR_ARG;
	e = prep(s,
	         "INSERT INTO news2(patient_id, at_ms, score, any_three, missing, assumed)"
	         " VALUES(?,?,?,?,?,?)",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, patient_id);
	sqlite3_bind_int64(st, 2, (int64_t)at_ms);
	sqlite3_bind_int(st, 3, score);
	sqlite3_bind_int(st, 4, any_three ? 1 : 0);
	sqlite3_bind_int(st, 5, (int)missing);
	sqlite3_bind_int(st, 6, (int)assumed);
	return step_done(st);
}

enum mt_err mt_store_news2_history(struct mt_store *s, int64_t patient_id, uint64_t since_ms,
                                   struct mt_news2_row *rows, size_t max, size_t *n)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc = SQLITE_DONE;

	if (n != NULL)
		*n = 0;
	if (s == NULL || n == NULL || (rows == NULL && max > 0))
		return MT_ERR_ARG;
	e = prep(s,
	         "SELECT at_ms, score, any_three, missing, assumed FROM news2 WHERE patient_id = ?"
	         " AND at_ms >= ? ORDER BY at_ms, id LIMIT ?",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, patient_id);
	sqlite3_bind_int64(st, 2, since_ms > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)since_ms);
	sqlite3_bind_int64(st, 3, max > INT32_MAX ? INT32_MAX : (int64_t)max);
	while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mt_news2_row *r = &rows[(*n)++];

		r->at_ms = (uint64_t)sqlite3_column_int64(st, 0);
		r->score = sqlite3_column_int(st, 1);
		r->any_three = sqlite3_column_int(st, 2) != 0;
		r->missing = (unsigned)sqlite3_column_int(st, 3);
		r->assumed = (unsigned)sqlite3_column_int(st, 4);
	}
	if (*n < max && rc != SQLITE_DONE)
		e = MT_ERR_STORE_DB;
	sqlite3_finalize(st);
	return e;
}
