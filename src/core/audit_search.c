/*
 * audit_search.c — the audit chain searched newest first (mt_audit_search.h).
 *
 * One statement per call, assembled from constant fragments according to
 * which filters are set, with numbered parameters (?1, ?2, ...) bound to
 * the values: no byte of a filter reaches the SQL text (F08).  The order is
 * the primary key's, descending, so SQLite walks the table backwards from
 * `before` and stops at the LIMIT: a page of an unfiltered view costs the
 * page, however long the chain; a filter that matches rarely costs a scan
 * (bounded by the chain's length — the table has no index but seq and
 * kind, and an auditor's search is worth the wait).
 *
 * The connection is read-only and lives for the call: the caller's thread
 * owns it, and nothing stays open between pages.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "medtrust/mt_audit_search.h"

#include "audit_int.h"

#define SQL_MAX 4096

struct sql {
	char s[SQL_MAX];
	size_t n;
	int params;
	bool full;
};

static void put(struct sql *q, const char *frag)
{
	size_t k = strlen(frag);

	if (q->full || q->n + k + 1 > sizeof q->s) {
		q->full = true;
		return;
	}
	memcpy(q->s + q->n, frag, k + 1);
	q->n += k;
}

/* "?N" of the next parameter (a number of ours, never input). */
static int param(struct sql *q)
{
	char buf[16];

	q->params++;
	(void)snprintf(buf, sizeof buf, "?%d", q->params);
	put(q, buf);
	return q->params;
}

/* "substr(action, 1, length(?N)) = ?N": a prefix without LIKE's wildcards. */
static int prefix(struct sql *q)
{
	char buf[64];

	q->params++;
	(void)snprintf(buf, sizeof buf, "substr(action, 1, length(?%d)) = ?%d", q->params,
	               q->params);
	put(q, buf);
	return q->params;
}

static void get_hash(sqlite3_stmt *st, int col, uint8_t out[MT_AUDIT_HASH_LEN],
                     struct mt_audit_record *r)
{
	const void *p = sqlite3_column_blob(st, col);

	if (sqlite3_column_type(st, col) != SQLITE_BLOB || p == NULL ||
	    sqlite3_column_bytes(st, col) != MT_AUDIT_HASH_LEN) {
		r->malformed = true;
		return;
	}
	memcpy(out, p, MT_AUDIT_HASH_LEN);
}

static void row(sqlite3_stmt *st, struct mt_audit_record *r)
{
	mt_audit__row_fields(st, r);
	get_hash(st, 8, r->prev_hash, r);
	get_hash(st, 9, r->hash, r);
}

enum mt_err mt_audit_search(const char *db_path, const struct mt_audit_search *q,
                            mt_audit_record_cb cb, void *arg)
{
	struct sql *sql = NULL;
	struct mt_audit_record *rec = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int p_actor = 0, p_action = 0, p_outcome = 0, p_from = 0, p_to = 0, p_before = 0;
	int p_notable[MT_AUDIT_SEARCH_NOTABLE_MAX], p_limit, rc = SQLITE_OK;
	size_t limit;
	enum mt_err e = MT_OK;

	if (db_path == NULL || q == NULL || cb == NULL ||
	    q->n_notable > MT_AUDIT_SEARCH_NOTABLE_MAX ||
	    (q->n_notable > 0 && q->notable == NULL) || q->limit > MT_AUDIT_SEARCH_MAX ||
	    q->outcome < -1 || q->outcome > MT_AUDIT_ERROR || q->from_ms > (uint64_t)INT64_MAX ||
	    q->to_ms > (uint64_t)INT64_MAX || q->before > (uint64_t)INT64_MAX)
		return MT_ERR_ARG;
	for (size_t i = 0; i < q->n_notable; i++)
		if (q->notable[i] == NULL || q->notable[i][0] == '\0')
			return MT_ERR_ARG;
	limit = q->limit ? q->limit : MT_AUDIT_SEARCH_MAX;

	sql = calloc(1, sizeof *sql);
	rec = malloc(sizeof *rec);
	if (sql == NULL || rec == NULL) {
		e = MT_ERR_NOMEM;
		goto out;
	}
	put(sql, "SELECT seq, time_ms, kind, actor, action, subject, outcome, detail, prev_hash, "
	         "hash FROM audit WHERE 1");
	if (q->events_only)
		put(sql, " AND kind = 0");
	if (q->actor != NULL) {
		put(sql, " AND actor = ");
		p_actor = param(sql);
	}
	if (q->action != NULL) {
		put(sql, " AND ");
		p_action = prefix(sql);
	}
	if (q->outcome >= 0) {
		put(sql, " AND outcome = ");
		p_outcome = param(sql);
	}
	if (q->from_ms > 0) {
		put(sql, " AND time_ms >= ");
		p_from = param(sql);
	}
	if (q->to_ms > 0) {
		put(sql, " AND time_ms < ");
		p_to = param(sql);
	}
	if (q->before > 0) {
		put(sql, " AND seq < ");
		p_before = param(sql);
	}
	if (q->n_notable > 0) {
		put(sql, " AND (outcome <> 0");
		for (size_t i = 0; i < q->n_notable; i++) {
			put(sql, " OR ");
			p_notable[i] = prefix(sql);
		}
		put(sql, ")");
	}
	put(sql, " ORDER BY seq DESC LIMIT ");
	p_limit = param(sql);
	if (sql->full) {
		e = MT_ERR_ARG;
		goto out;
	}

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	            SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, sql->s, -1, &st, NULL) != SQLITE_OK) {
		e = MT_ERR_AUDIT_STORE;
		goto out;
	}
	if (p_actor)
		rc |= sqlite3_bind_text(st, p_actor, q->actor, -1, SQLITE_STATIC);
	if (p_action)
		rc |= sqlite3_bind_text(st, p_action, q->action, -1, SQLITE_STATIC);
	if (p_outcome)
		rc |= sqlite3_bind_int(st, p_outcome, q->outcome);
	if (p_from)
		rc |= sqlite3_bind_int64(st, p_from, (sqlite3_int64)q->from_ms);
	if (p_to)
		rc |= sqlite3_bind_int64(st, p_to, (sqlite3_int64)q->to_ms);
	if (p_before)
		rc |= sqlite3_bind_int64(st, p_before, (sqlite3_int64)q->before);
	for (size_t i = 0; i < q->n_notable; i++)
		rc |= sqlite3_bind_text(st, p_notable[i], q->notable[i], -1, SQLITE_STATIC);
	rc |= sqlite3_bind_int64(st, p_limit, (sqlite3_int64)limit);
	if (rc != SQLITE_OK) {
		e = MT_ERR_AUDIT_STORE;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row(st, rec);
		e = cb(rec, arg);
		if (e != MT_OK)
			break;
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_AUDIT_STORE;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(rec);
	free(sql);
	return e;
}
