/*
 * audit_sqlite.c — the SQLite backend of the audit store (mt_audit.h,
 * struct mt_audit_store_ops; docs/audit.md "Storage").
 *
 * One table, `audit`, one row per record, seq its INTEGER PRIMARY KEY (so
 * unique, and the order rows are read in), every hashed field a column of
 * its own so that SQL can search the log.  The table is STRICT, so a column
 * holds the type it declares.  Nothing in our code updates or deletes a row,
 * and two triggers refuse UPDATE and DELETE from anyone else's code too:
 * defence in depth only — whoever can write the file can drop them, which is
 * what the chain and the signed checkpoints are for (the tamper tests drop
 * them, then edit rows with plain SQL).
 *
 * Durability and concurrency: WAL journal with synchronous=FULL, so a
 * committed record survives power loss; writers open their transaction with
 * BEGIN IMMEDIATE, which takes the database's write lock up front, so two
 * processes appending at once wait for each other (30-second busy timeout)
 * instead of both reading the same last record and forking the chain (J06).
 * Readers see a consistent snapshot from WAL and never block the writer.
 *
 * A row that does not fit struct mt_audit_record (a field longer than its
 * bound, a NUL inside text, a hash not 32 bytes, a value of the wrong type
 * or range) is still handed to the reader, marked `malformed`, so that the
 * verifier can name it instead of the store failing as a whole.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "medtrust/mt_audit.h"

#include "audit_int.h"

#define COLS                                                                                       \
	"seq, time_ms, kind, actor, action, subject, outcome, detail, checkpoint, "                \
	"prev_hash, hash"

static const char SCHEMA[] = "CREATE TABLE IF NOT EXISTS audit ("
                             " seq INTEGER PRIMARY KEY CHECK (seq >= 1),"
                             " time_ms INTEGER NOT NULL CHECK (time_ms >= 0),"
                             " kind INTEGER NOT NULL CHECK (kind IN (0, 1)),"
                             " actor TEXT NOT NULL,"
                             " action TEXT NOT NULL,"
                             " subject TEXT NOT NULL,"
                             " outcome INTEGER NOT NULL CHECK (outcome IN (0, 1, 2)),"
                             " detail TEXT NOT NULL,"
                             " checkpoint BLOB,"
                             " prev_hash BLOB NOT NULL,"
                             " hash BLOB NOT NULL) STRICT;"
                             "CREATE INDEX IF NOT EXISTS audit_kind ON audit (kind, seq);"
                             "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
                             " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
                             "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
                             " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;";

struct sq {
	struct mt_audit_store store; /* first: the object mt_audit_sqlite_open returns */
	sqlite3 *db;
	sqlite3_stmt *ins, *last, *lastcp, *range;
	struct mt_audit_record scratch; /* the record a range read hands out */
};

static void sq_close(void *ctx)
{
	struct sq *s = ctx;
	if (s == NULL)
		return;
	sqlite3_finalize(s->ins);
	sqlite3_finalize(s->last);
	sqlite3_finalize(s->lastcp);
	sqlite3_finalize(s->range);
	sqlite3_close(s->db);
	free(s);
}

static enum mt_err sq_exec(struct sq *s, const char *sql)
{
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? MT_OK : MT_ERR_AUDIT_STORE;
}

static enum mt_err sq_begin(void *ctx)
{
	return sq_exec(ctx, "BEGIN IMMEDIATE");
}
static enum mt_err sq_commit(void *ctx)
{
	return sq_exec(ctx, "COMMIT");
}

static void sq_rollback(void *ctx)
{
	struct sq *s = ctx;
	if (!sqlite3_get_autocommit(s->db))
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static enum mt_err sq_append(void *ctx, const struct mt_audit_record *r)
{
	struct sq *s = ctx;
	sqlite3_stmt *st = s->ins;
	int rc;

	if (st == NULL)
		return MT_ERR_AUDIT_STORE; /* opened read-only */
	if (r->seq == 0 || r->seq > (uint64_t)INT64_MAX || r->time_ms > (uint64_t)INT64_MAX ||
	    r->cose_len > sizeof r->cose)
		return MT_ERR_ARG;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)r->seq);
	rc |= sqlite3_bind_int64(st, 2, (sqlite3_int64)r->time_ms);
	rc |= sqlite3_bind_int(st, 3, (int)r->kind);
	rc |= sqlite3_bind_text(st, 4, r->actor, -1, SQLITE_STATIC);
	rc |= sqlite3_bind_text(st, 5, r->action, -1, SQLITE_STATIC);
	rc |= sqlite3_bind_text(st, 6, r->subject, -1, SQLITE_STATIC);
	rc |= sqlite3_bind_int(st, 7, (int)r->outcome);
	rc |= sqlite3_bind_text(st, 8, r->detail, -1, SQLITE_STATIC);
	if (r->kind == MT_AUDIT_CHECKPOINT)
		rc |= sqlite3_bind_blob(st, 9, r->cose, (int)r->cose_len, SQLITE_STATIC);
	else
		rc |= sqlite3_bind_null(st, 9);
	rc |= sqlite3_bind_blob(st, 10, r->prev_hash, MT_AUDIT_HASH_LEN, SQLITE_STATIC);
	rc |= sqlite3_bind_blob(st, 11, r->hash, MT_AUDIT_HASH_LEN, SQLITE_STATIC);
	if (rc != SQLITE_OK)
		return MT_ERR_AUDIT_STORE;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return MT_OK;
	if (rc == SQLITE_CONSTRAINT &&
	    sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
		return MT_ERR_AUDIT_CONFLICT;
	return MT_ERR_AUDIT_STORE;
}

/* Copy a text column into dst[0..cap), marking r malformed when it is not
 * text, holds a NUL or does not fit. */
static void get_text(sqlite3_stmt *st, int col, char *dst, size_t cap, struct mt_audit_record *r)
{
	const unsigned char *p = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (sqlite3_column_type(st, col) != SQLITE_TEXT || p == NULL) {
		r->malformed = true;
		dst[0] = '\0';
		return;
	}
	if (n >= cap || memchr(p, '\0', n) != NULL) {
		r->malformed = true;
		n = strnlen((const char *)p, cap - 1);
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
}

static void get_blob(sqlite3_stmt *st, int col, uint8_t *dst, size_t cap, size_t *len,
                     struct mt_audit_record *r)
{
	const void *p = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (sqlite3_column_type(st, col) != SQLITE_BLOB || (p == NULL && n > 0) || n > cap) {
		r->malformed = true;
		n = 0;
	}
	if (n > 0)
		memcpy(dst, p, n);
	*len = n;
}

static uint64_t get_u(sqlite3_stmt *st, int col, uint64_t max, struct mt_audit_record *r)
{
	sqlite3_int64 v = sqlite3_column_int64(st, col);
	if (sqlite3_column_type(st, col) != SQLITE_INTEGER || v < 0 || (uint64_t)v > max) {
		r->malformed = true;
		return 0;
	}
	return (uint64_t)v;
}

void mt_audit__row_fields(sqlite3_stmt *st, struct mt_audit_record *r)
{
	memset(r, 0, sizeof *r);
	r->seq = get_u(st, 0, (uint64_t)INT64_MAX, r);
	r->time_ms = get_u(st, 1, (uint64_t)INT64_MAX, r);
	r->kind = (enum mt_audit_kind)get_u(st, 2, MT_AUDIT_CHECKPOINT, r);
	get_text(st, 3, r->actor, sizeof r->actor, r);
	get_text(st, 4, r->action, sizeof r->action, r);
	get_text(st, 5, r->subject, sizeof r->subject, r);
	r->outcome = (enum mt_audit_outcome)get_u(st, 6, MT_AUDIT_ERROR, r);
	get_text(st, 7, r->detail, sizeof r->detail, r);
}

static void row(sqlite3_stmt *st, struct mt_audit_record *r)
{
	size_t n;

	mt_audit__row_fields(st, r);
	if (sqlite3_column_type(st, 8) == SQLITE_NULL) {
		r->cose_len = 0;
		if (r->kind == MT_AUDIT_CHECKPOINT)
			r->malformed = true;
	} else {
		get_blob(st, 8, r->cose, sizeof r->cose, &r->cose_len, r);
		if (r->kind != MT_AUDIT_CHECKPOINT)
			r->malformed = true;
	}
	get_blob(st, 9, r->prev_hash, sizeof r->prev_hash, &n, r);
	if (n != MT_AUDIT_HASH_LEN)
		r->malformed = true;
	get_blob(st, 10, r->hash, sizeof r->hash, &n, r);
	if (n != MT_AUDIT_HASH_LEN)
		r->malformed = true;
}

static enum mt_err sq_last(void *ctx, struct mt_audit_record *r)
{
	struct sq *s = ctx;
	int rc;
	enum mt_err e;

	sqlite3_reset(s->last);
	rc = sqlite3_step(s->last);
	if (rc == SQLITE_ROW) {
		row(s->last, r);
		e = MT_OK;
	} else {
		e = rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : MT_ERR_AUDIT_STORE;
	}
	sqlite3_reset(s->last);
	return e;
}

static enum mt_err sq_last_checkpoint(void *ctx, uint64_t *seq)
{
	struct sq *s = ctx;
	enum mt_err e = MT_ERR_AUDIT_STORE;

	sqlite3_reset(s->lastcp);
	if (sqlite3_step(s->lastcp) == SQLITE_ROW) {
		sqlite3_int64 v = sqlite3_column_int64(s->lastcp, 0);
		/* max() of no rows is NULL, read as 0 */
		*seq = v > 0 ? (uint64_t)v : 0;
		e = MT_OK;
	}
	sqlite3_reset(s->lastcp);
	return e;
}

static enum mt_err sq_read(void *ctx, uint64_t from, uint64_t to, mt_audit_record_cb cb, void *arg)
{
	struct sq *s = ctx;
	sqlite3_stmt *st = s->range;
	enum mt_err e = MT_OK;
	int rc;

	if (cb == NULL)
		return MT_ERR_ARG;
	if (from > (uint64_t)INT64_MAX)
		return MT_OK;
	if (to > (uint64_t)INT64_MAX)
		to = (uint64_t)INT64_MAX;
	sqlite3_reset(st);
	if (sqlite3_bind_int64(st, 1, (sqlite3_int64)from) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)to) != SQLITE_OK)
		return MT_ERR_AUDIT_STORE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row(st, &s->scratch);
		e = cb(&s->scratch, arg);
		if (e != MT_OK)
			break;
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_AUDIT_STORE;
	sqlite3_reset(st);
	return e;
}

static const struct mt_audit_store_ops SQ_OPS = {
        .begin = sq_begin,
        .commit = sq_commit,
        .rollback = sq_rollback,
        .append = sq_append,
        .last = sq_last,
        .last_checkpoint = sq_last_checkpoint,
        .read = sq_read,
        .close = sq_close,
};

/* Switch to WAL.  The switch needs a moment of exclusive access, which a
 * second process opening the file at the same time can hold: retry. */
static enum mt_err set_wal(struct sq *s)
{
	for (int i = 0; i < 200; i++) {
		sqlite3_stmt *st = NULL;
		int ok = 0;
		if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) ==
		            SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW) {
			const unsigned char *m = sqlite3_column_text(st, 0);
			ok = m != NULL && strcmp((const char *)m, "wal") == 0;
		}
		sqlite3_finalize(st);
		if (ok)
			return MT_OK;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return MT_ERR_AUDIT_STORE;
}

/* Open read-write (creating the file and schema) or read-only (touching
 * nothing: what verify, tail and export use, so that checking a database
 * kept as evidence does not change it). */
static enum mt_err sq_open(const char *path, bool writable, struct mt_audit_store **out)
{
	struct sq *s;
	enum mt_err e;

	if (out != NULL)
		*out = NULL;
	if (path == NULL || out == NULL)
		return MT_ERR_ARG;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return MT_ERR_NOMEM;
	s->store.ops = &SQ_OPS;
	s->store.ctx = s;
	int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
	if (sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		sq_close(s);
		return MT_ERR_AUDIT_STORE;
	}
	sqlite3_busy_timeout(s->db, 30000);
	e = writable ? set_wal(s) : MT_OK;
	if (e == MT_OK && writable)
		e = sq_exec(s, "PRAGMA synchronous=FULL");
	if (e == MT_OK && writable)
		e = sq_exec(s, "BEGIN IMMEDIATE");
	if (e == MT_OK && writable) {
		e = sq_exec(s, SCHEMA);
		if (e == MT_OK)
			e = sq_exec(s, "COMMIT");
		if (e != MT_OK)
			sq_rollback(s);
	}
	if (e == MT_OK && writable &&
	    sqlite3_prepare_v2(s->db, "INSERT INTO audit (" COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?)",
	                       -1, &s->ins, NULL) != SQLITE_OK)
		e = MT_ERR_AUDIT_STORE;
	if (e == MT_OK &&
	    (sqlite3_prepare_v2(s->db, "SELECT " COLS " FROM audit ORDER BY seq DESC LIMIT 1", -1,
	                        &s->last, NULL) != SQLITE_OK ||
	     sqlite3_prepare_v2(s->db, "SELECT max(seq) FROM audit WHERE kind = 1", -1, &s->lastcp,
	                        NULL) != SQLITE_OK ||
	     sqlite3_prepare_v2(s->db,
	                        "SELECT " COLS " FROM audit WHERE seq BETWEEN ? AND ? ORDER BY seq",
	                        -1, &s->range, NULL) != SQLITE_OK))
		e = MT_ERR_AUDIT_STORE;
	if (e != MT_OK) {
		sq_close(s);
		return e;
	}
	*out = &s->store;
	return MT_OK;
}

enum mt_err mt_audit_sqlite_open(const char *path, struct mt_audit_store **out)
{
	return sq_open(path, true, out);
}

enum mt_err mt_audit_sqlite_open_readonly(const char *path, struct mt_audit_store **out)
{
	return sq_open(path, false, out);
}
