/*
 * store.c — the readings store in SQLite, encrypted at rest (mt_store.h,
 * docs/storage.md; protocol §4a, §5; threats A13, J04, J05, FI05, FI09).
 *
 * Tables (data.db, created when missing):
 *
 *   deks(id, wrapped, created_ms, n_rows)        data keys, wrapped by the KEK
 *   readings(id, dev, ctr, epoch, typ, ts_ms, received_ms, flags,
 *            cert_serial, patient_id, dek_id, iv, ct)   UNIQUE(dev, ctr)
 *   alerts(id, dev, ctr, ts_ms, received_ms, patient_id, dek_id, iv, ct)
 *   windows(dev PRIMARY KEY, state)              anti-replay state, 136 bytes
 *   patients(id, ward, bed, dek_id, iv, ct, room, spo2_scale2, oxygen, acvpu,
 *            news2_na, aad_v)                     name, MRN, birth date, sex in ct
 *   patient_rules(id, patient_id, rule, created_ms)   threshold rules, plain
 *   assignments(id, dev, patient_id, since_ms, until_ms)
 *
 * Columns added to a table after its first version are added to older
 * files at open (migrate_patients: PRAGMA table_info, ALTER TABLE).
 *
 * Indexes: UNIQUE(dev, ctr) on readings (the duplicate backstop, and the
 * per-device counts and counter lists ride on it), readings(patient_id,
 * ts_ms) for a patient's history, assignments(dev, since_ms) for the
 * lookup every put makes.  Nothing else: each index is one more B-tree
 * written per reading at ingest.
 *
 * Encryption.  A reading's Sign1, an alert's message and a patient's
 * identity are AES-256-GCM ciphertext (mt_aead, one context reused) under
 * a data-encryption key (DEK), with a fresh random 12-byte IV per row.
 * The AAD is the row itself — every other column that describes it — so
 * that editing a plain column, moving a ciphertext to another row or
 * swapping two rows' ciphertexts fails authentication
 * (MT_ERR_STORE_TAMPERED, threat J05).  Integers enter the AAD as the
 * 8-byte big-endian value exactly as stored, texts as a 2-byte
 * big-endian length and their bytes:
 *
 *   reading: "mt-store:reading:" dev ctr dek_id epoch typ ts_ms
 *            received_ms flags patient_id cert_serial
 *   alert:   "mt-store:alert:" dev ctr dek_id ts_ms received_ms patient_id
 *   patient: "mt-store:patient:v2:" id dek_id ward bed room spo2_scale2
 *            oxygen acvpu news2_na            (aad_v 2; plaintext has sex)
 *            "mt-store:patient:" id dek_id ward bed   (aad_v 1, older rows,
 *            whose added columns must hold their defaults; docs/patients.md)
 *
 * A patient's id is known only once the row exists, so a patient is
 * inserted with an empty ciphertext and updated in the same transaction.
 * Integer columns are read back with their SQLite type checked and put in
 * the AAD before they are narrowed, so an edit that would wrap around on
 * narrowing (typ 257 read as 1) still changes the AAD.
 *
 * DEKs are 32 random bytes, wrapped inside the token by the KEK
 * (mt_kek_wrap, RFC 3394) and stored wrapped.  A DEK encrypts at most
 * MT_STORE_DEK_MAX_ROWS rows or lives MT_STORE_DEK_MAX_AGE_MS, then the
 * next write makes a new one.  The newest DEK is re-read at the first
 * write of every transaction (one indexed SELECT), and its row count is
 * added to at commit (one UPDATE), so two writers on one database share
 * the bound.  Unwrapped DEKs are cached in memory by id (at most
 * DEK_CACHE, least recently used evicted and wiped) and wiped at close.  A
 * rollback empties the cache: a DEK made in the rolled-back transaction
 * is gone, and its id may be given to another key by the next insert.
 *
 * Transactions.  mt_store_begin is BEGIN IMMEDIATE, so the write lock is
 * taken up front and a busy database is reported at once
 * (MT_ERR_STORE_BUSY) rather than at the first insert.  A passing failure
 * inside the transaction (SQLITE_FULL, SQLITE_IOERR: MT_ERR_STORE_FULL;
 * SQLITE_BUSY, SQLITE_LOCKED: MT_ERR_STORE_BUSY) rolls the whole
 * transaction back at once; later calls of the transaction return the
 * same error until the caller commits (which reports it) or rolls back.
 * WAL with synchronous=FULL: COMMIT returns after the WAL is fsync'ed, so
 * what mt_store_commit acknowledged survives a power cut (FI09), and
 * readers on another connection never wait for the writer.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_store.h"
#include "store_int.h"

#define DEK_CACHE 32
#define AAD_MAX 512
#define BUSY_TIMEOUT_MS 5000
#define PATIENT_PT_MAX 1024 /* CBOR [name, mrn, birth_date] of ≤ 256 bytes each */
#define SCHEMA_VERSION 1

/* The patients' columns added after version 1 of the table (room, NEWS2
 * settings, the AAD version); a database made before them gets them by
 * ALTER TABLE at open (migrate_patients), with the defaults that a
 * version-1 row must keep (docs/patients.md). */
#define PATIENT_NEW_COLS                                                                     \
	" room TEXT NOT NULL DEFAULT '', spo2_scale2 INTEGER NOT NULL DEFAULT 0,"            \
	" oxygen TEXT NOT NULL DEFAULT '', acvpu TEXT NOT NULL DEFAULT '',"                  \
	" news2_na INTEGER NOT NULL DEFAULT 0, aad_v INTEGER NOT NULL DEFAULT 1"

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS deks("
        " id INTEGER PRIMARY KEY, wrapped BLOB NOT NULL, created_ms INTEGER NOT NULL,"
        " n_rows INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS readings("
        " id INTEGER PRIMARY KEY, dev TEXT NOT NULL, ctr INTEGER NOT NULL,"
        " epoch INTEGER NOT NULL, typ INTEGER NOT NULL, ts_ms INTEGER NOT NULL,"
        " received_ms INTEGER NOT NULL, flags INTEGER NOT NULL, cert_serial TEXT NOT NULL,"
        " patient_id INTEGER NOT NULL, dek_id INTEGER NOT NULL REFERENCES deks(id),"
        " iv BLOB NOT NULL, ct BLOB NOT NULL, UNIQUE(dev, ctr));"
        "CREATE INDEX IF NOT EXISTS readings_patient_ts ON readings(patient_id, ts_ms);"
        "CREATE TABLE IF NOT EXISTS alerts("
        " id INTEGER PRIMARY KEY, dev TEXT NOT NULL, ctr INTEGER NOT NULL,"
        " ts_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, patient_id INTEGER NOT NULL,"
        " dek_id INTEGER NOT NULL REFERENCES deks(id), iv BLOB NOT NULL, ct BLOB NOT NULL,"
        " UNIQUE(dev, ctr));"
        "CREATE TABLE IF NOT EXISTS windows("
        " dev TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS patients("
        " id INTEGER PRIMARY KEY, ward TEXT NOT NULL, bed TEXT NOT NULL,"
        " dek_id INTEGER NOT NULL REFERENCES deks(id), iv BLOB NOT NULL, ct BLOB NOT NULL,"
        PATIENT_NEW_COLS ");"
        "CREATE TABLE IF NOT EXISTS patient_rules("
        " id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patients(id),"
        " rule TEXT NOT NULL, created_ms INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS patient_rules_patient ON patient_rules(patient_id);"
        "CREATE TABLE IF NOT EXISTS assignments("
        " id INTEGER PRIMARY KEY, dev TEXT NOT NULL,"
        " patient_id INTEGER NOT NULL REFERENCES patients(id),"
        " since_ms INTEGER NOT NULL, until_ms INTEGER);"
        "CREATE INDEX IF NOT EXISTS assignments_dev ON assignments(dev, since_ms);"
        /* The export journal (mt_store_clinical.h): what goes out to HL7
         * destinations, in commit order; a vitals reading's entry is
         * written in the reading's own transaction, so nothing stored is
         * ever missing from it. */
        "CREATE TABLE IF NOT EXISTS journal("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL, ref INTEGER NOT NULL,"
        " created_ms INTEGER NOT NULL);"
        /* Alarms and their transitions (mt_store_clinical.h, docs/alarms.md). */
        "CREATE TABLE IF NOT EXISTS alarms("
        " id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL, dev TEXT NOT NULL,"
        " cond TEXT NOT NULL, type TEXT NOT NULL, prio INTEGER NOT NULL, code INTEGER NOT NULL,"
        " state TEXT NOT NULL, text TEXT NOT NULL, raised_ms INTEGER NOT NULL,"
        " acked_ms INTEGER, acked_by TEXT, resolved_ms INTEGER, escalated_ms INTEGER,"
        " readings TEXT NOT NULL);"
        "CREATE INDEX IF NOT EXISTS alarms_open ON alarms(state, patient_id);"
        "CREATE TABLE IF NOT EXISTS alarm_events("
        " id INTEGER PRIMARY KEY, alarm_id INTEGER NOT NULL REFERENCES alarms(id),"
        " at_ms INTEGER NOT NULL, phase TEXT NOT NULL, state TEXT NOT NULL,"
        " prio INTEGER NOT NULL, actor TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS news2("
        " id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL, at_ms INTEGER NOT NULL,"
        " score INTEGER NOT NULL, any_three INTEGER NOT NULL, missing INTEGER NOT NULL,"
        " assumed INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS news2_patient ON news2(patient_id, at_ms);";

/* Prepared once, reused (SQLITE_PREPARE_PERSISTENT). */
enum stmt_id {
	ST_DEK_NEWEST,
	ST_DEK_WRAPPED,
	ST_DEK_INSERT,
	ST_DEK_ADD_ROWS,
	ST_READING_INSERT,
	ST_READING_GET,
	ST_ALERT_INSERT,
	ST_ALERT_GET,
	ST_WINDOW_LOAD,
	ST_WINDOW_SAVE,
	ST_ASSIGNED,
	ST_COUNT,
	ST_COUNT_ALL,
	ST_JOURNAL_INSERT,
	ST__N
};

static const char *const stmt_sql[ST__N] = {
        [ST_DEK_NEWEST] = "SELECT id, wrapped, created_ms, n_rows FROM deks ORDER BY id DESC LIMIT 1",
        [ST_DEK_WRAPPED] = "SELECT wrapped FROM deks WHERE id = ?",
        [ST_DEK_INSERT] = "INSERT INTO deks(wrapped, created_ms, n_rows) VALUES(?, ?, 0)",
        [ST_DEK_ADD_ROWS] = "UPDATE deks SET n_rows = n_rows + ? WHERE id = ?",
        [ST_READING_INSERT] =
                "INSERT INTO readings(dev, ctr, epoch, typ, ts_ms, received_ms, flags,"
                " cert_serial, patient_id, dek_id, iv, ct) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
        [ST_READING_GET] = "SELECT dev, ctr, epoch, typ, ts_ms, received_ms, flags,"
                           " cert_serial, patient_id, dek_id, iv, ct FROM readings WHERE id = ?",
        [ST_ALERT_INSERT] = "INSERT INTO alerts(dev, ctr, ts_ms, received_ms, patient_id,"
                            " dek_id, iv, ct) VALUES(?,?,?,?,?,?,?,?)",
        [ST_ALERT_GET] = "SELECT dev, ctr, ts_ms, received_ms, patient_id, dek_id, iv, ct"
                         " FROM alerts WHERE id = ?",
        [ST_WINDOW_LOAD] = "SELECT state FROM windows WHERE dev = ?",
        [ST_WINDOW_SAVE] = "INSERT INTO windows(dev, state) VALUES(?, ?)"
                           " ON CONFLICT(dev) DO UPDATE SET state = excluded.state",
        [ST_ASSIGNED] = "SELECT patient_id FROM assignments WHERE dev = ? AND since_ms <= ?"
                        " AND (until_ms IS NULL OR until_ms > ?)"
                        " ORDER BY since_ms DESC, id DESC LIMIT 1",
        [ST_COUNT] = "SELECT count(*) FROM readings WHERE dev = ?",
        [ST_COUNT_ALL] = "SELECT count(*) FROM readings",
        [ST_JOURNAL_INSERT] = "INSERT INTO journal(kind, ref, created_ms) VALUES(?, ?, ?)",
};

struct dek_slot {
	int64_t id;     /* 0: free */
	bool pending;   /* made in the open transaction */
	uint64_t used;  /* LRU tick */
	uint8_t key[MT_DEK_LEN];
};

enum tx_state { TX_NONE, TX_OPEN, TX_FAILED };

struct mt_store {
	sqlite3 *db;
	struct mt_kek *kek; /* borrowed; NULL: count and list only */
	struct mt_aead *aead;
	sqlite3_stmt *st[ST__N];

	enum tx_state tx;
	enum mt_err tx_err; /* TX_FAILED: what rolled it back */

	/* The DEK this transaction writes under. */
	bool cur_checked;   /* looked up in this transaction */
	int64_t cur_id;     /* 0: none yet */
	uint64_t cur_rows;  /* its row count as committed */
	uint64_t tx_rows;   /* rows encrypted under it in this transaction */
	uint64_t max_rows, max_age_ms;

	struct dek_slot deks[DEK_CACHE];
	uint64_t tick;

	uint8_t *buf; /* ciphertext of the row being written */
	size_t buf_cap;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* SQLite's result code as ours: a full disk or I/O failure and a lock
 * held too long are passing failures; anything else is the database's. */
static enum mt_err map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW: return MT_OK;
	case SQLITE_FULL:
	case SQLITE_IOERR: return MT_ERR_STORE_FULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return MT_ERR_STORE_BUSY;
	case SQLITE_NOMEM: return MT_ERR_NOMEM;
	default: return MT_ERR_STORE_DB;
	}
}

static bool passing(enum mt_err e)
{
	return e == MT_ERR_STORE_FULL || e == MT_ERR_STORE_BUSY;
}

static enum mt_err exec(struct mt_store *s, const char *sql)
{
	return map_rc(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

/* The cached statement `id`, reset and unbound. */
static enum mt_err stmt(struct mt_store *s, enum stmt_id id, sqlite3_stmt **out)
{
	if (s->st[id] == NULL) {
		int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
		                            &s->st[id], NULL);
		if (rc != SQLITE_OK) {
			s->st[id] = NULL;
			return map_rc(rc) == MT_OK ? MT_ERR_STORE_DB : map_rc(rc);
		}
	}
	sqlite3_reset(s->st[id]);
	sqlite3_clear_bindings(s->st[id]);
	*out = s->st[id];
	return MT_OK;
}

/* Step a statement that returns no rows; reset it. */
static enum mt_err step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? MT_OK : map_rc(rc) == MT_OK ? MT_ERR_STORE_DB : map_rc(rc);
}

/* An error from a statement step: SQLITE_ROW/DONE where unexpected too. */
static enum mt_err step_err(int rc)
{
	enum mt_err e = map_rc(rc);

	return e == MT_OK ? MT_ERR_STORE_DB : e;
}

static bool u64_fits(uint64_t v)
{
	return v <= (uint64_t)INT64_MAX;
}

/* Text of at most `max` bytes, NUL-terminated, valid UTF-8 without
 * control characters.  `cap` is the size of the array it sits in. */
static bool text_ok(const char *t, size_t cap, size_t max, bool allow_empty)
{
	size_t n;

	if (t == NULL)
		return false;
	n = strnlen(t, cap);
	if (n == cap || n > max || (n == 0 && !allow_empty))
		return false;
	if (!mt_utf8_valid((const uint8_t *)t, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			return false;
	return true;
}

/* ---- AAD ---------------------------------------------------------------- */

struct aad {
	uint8_t b[AAD_MAX];
	size_t n;
	bool over;
};

static void aad_init(struct aad *a, const char *label)
{
	size_t n = strlen(label);

	a->n = 0;
	a->over = n > sizeof a->b;
	if (!a->over) {
		memcpy(a->b, label, n);
		a->n = n;
	}
}

static void aad_i64(struct aad *a, int64_t v)
{
	uint64_t u = (uint64_t)v;

	if (a->n + 8 > sizeof a->b) {
		a->over = true;
		return;
	}
	for (int i = 7; i >= 0; i--)
		a->b[a->n++] = (uint8_t)(u >> (8 * i));
}

static void aad_text(struct aad *a, const void *t, size_t n)
{
	if (n > 0xffff || a->n + 2 + n > sizeof a->b) {
		a->over = true;
		return;
	}
	a->b[a->n++] = (uint8_t)(n >> 8);
	a->b[a->n++] = (uint8_t)n;
	if (n > 0)
		memcpy(a->b + a->n, t, n);
	a->n += n;
}

/* ---- open / close ------------------------------------------------------- */

sqlite3 *mt_store__sqlite(struct mt_store *s)
{
	return s != NULL ? s->db : NULL;
}

/* Create the file with mode 0600 when it does not exist, so that SQLite's
 * -wal and -shm files (which take the database file's mode) are private
 * too, whatever the caller's umask. */
/* The write lock is held by another connection (the hub's committer and
 * its clinical engine write the same file): wait in short steps.
 * SQLite's own busy_timeout sleeps 1, 2, 5, 10 ... up to 100 ms between
 * tries, so a writer that loses the lock to a commit of a few ms could
 * sleep far longer than the commit took — a fast packet's alarm queued
 * behind a sleeping thread.  Steps of 0.25 ms doubling to 4 ms, for
 * BUSY_TIMEOUT_MS in all. */
static int busy_wait(void *arg, int n)
{
	static const long step_us[] = {250, 250, 500, 500, 1000, 1000, 2000, 2000};
	long us = n < (int)(sizeof step_us / sizeof step_us[0]) ? step_us[n] : 4000;
	long waited = 0;
	struct timespec ts;

	(void)arg;
	for (int i = 0; i < n && waited < (long)BUSY_TIMEOUT_MS * 1000; i++)
		waited += i < (int)(sizeof step_us / sizeof step_us[0]) ? step_us[i] : 4000;
	if (waited >= (long)BUSY_TIMEOUT_MS * 1000)
		return 0; /* give up: SQLITE_BUSY */
	ts.tv_sec = 0;
	ts.tv_nsec = us * 1000;
	nanosleep(&ts, NULL);
	return 1;
}

static enum mt_err create_private(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd >= 0)
		return close(fd) == 0 ? MT_OK : MT_ERR_STORE_DB;
	return errno == EEXIST ? MT_OK : MT_ERR_STORE_DB;
}

/* Add the patients' columns a database made before them lacks
 * (PATIENT_NEW_COLS), inside the schema transaction of mt_store_open. */
static enum mt_err migrate_patients(struct mt_store *s)
{
	static const struct {
		const char *name, *ddl;
	} cols[] = {
	        {"room", "ALTER TABLE patients ADD COLUMN room TEXT NOT NULL DEFAULT ''"},
	        {"spo2_scale2",
	         "ALTER TABLE patients ADD COLUMN spo2_scale2 INTEGER NOT NULL DEFAULT 0"},
	        {"oxygen", "ALTER TABLE patients ADD COLUMN oxygen TEXT NOT NULL DEFAULT ''"},
	        {"acvpu", "ALTER TABLE patients ADD COLUMN acvpu TEXT NOT NULL DEFAULT ''"},
	        {"news2_na", "ALTER TABLE patients ADD COLUMN news2_na INTEGER NOT NULL DEFAULT 0"},
	        {"aad_v", "ALTER TABLE patients ADD COLUMN aad_v INTEGER NOT NULL DEFAULT 1"},
	};
	bool have[sizeof cols / sizeof cols[0]] = {false};
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc;

	if (sqlite3_prepare_v2(s->db, "PRAGMA table_info(patients)", -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);

		for (size_t i = 0; name != NULL && i < sizeof cols / sizeof cols[0]; i++)
			if (strcmp(name, cols[i].name) == 0)
				have[i] = true;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return step_err(rc);
	for (size_t i = 0; e == MT_OK && i < sizeof cols / sizeof cols[0]; i++)
		if (!have[i])
			e = exec(s, cols[i].ddl);
	return e;
}

enum mt_err mt_store_open(const char *path, struct mt_kek *kek, struct mt_store **out)
{
	struct mt_store *s;
	sqlite3_stmt *st = NULL;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return MT_ERR_ARG;
	e = create_private(path);
	if (e != MT_OK)
		return e;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return MT_ERR_NOMEM;
	s->kek = kek;
	s->max_rows = MT_STORE_DEK_MAX_ROWS;
	s->max_age_ms = MT_STORE_DEK_MAX_AGE_MS;
	e = mt_aead_new(&s->aead);
	if (e != MT_OK)
		goto fail;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		e = MT_ERR_STORE_DB;
		goto fail;
	}
	sqlite3_busy_handler(s->db, busy_wait, NULL);
	sqlite3_extended_result_codes(s->db, 1); /* SQLITE_CONSTRAINT_UNIQUE: a duplicate */
	/* journal_mode answers with a row: the mode now in force. */
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		sqlite3_finalize(st);
		e = MT_ERR_STORE_DB;
		goto fail;
	}
	sqlite3_finalize(st);
	e = exec(s, "PRAGMA synchronous=FULL");
	if (e == MT_OK)
		e = exec(s, "PRAGMA foreign_keys=ON");
	if (e == MT_OK)
		e = exec(s, "BEGIN IMMEDIATE");
	if (e == MT_OK) {
		e = exec(s, schema);
		if (e == MT_OK)
			e = migrate_patients(s);
		if (e == MT_OK)
			e = exec(s, "PRAGMA user_version=1");
		if (e == MT_OK)
			e = exec(s, "COMMIT");
		if (e != MT_OK)
			(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (e != MT_OK)
		goto fail;
	*out = s;
	return MT_OK;
fail:
	mt_store_close(s);
	return e == MT_ERR_NOMEM ? e : MT_ERR_STORE_DB;
}

void mt_store_close(struct mt_store *s)
{
	if (s == NULL)
		return;
	if (s->tx == TX_OPEN && s->db != NULL)
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = 0; i < ST__N; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	OPENSSL_cleanse(s->deks, sizeof s->deks);
	mt_aead_free(s->aead);
	free(s->buf);
	free(s);
}

enum mt_err mt_store_autocheckpoint(struct mt_store *s, bool on)
{
	if (s == NULL)
		return MT_ERR_ARG;
	return exec(s, on ? "PRAGMA wal_autocheckpoint=1000" : "PRAGMA wal_autocheckpoint=0");
}

enum mt_err mt_store_checkpoint(struct mt_store *s)
{
	int rc;

	if (s == NULL)
		return MT_ERR_ARG;
	rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return rc == SQLITE_OK || rc == SQLITE_BUSY ? MT_OK : map_rc(rc);
}

enum mt_err mt_store_defer_sync(struct mt_store *s)
{
	if (s == NULL)
		return MT_ERR_ARG;
	return exec(s, "PRAGMA synchronous=NORMAL");
}

enum mt_err mt_store_sync(struct mt_store *s)
{
	sqlite3_file *wal = NULL;

	if (s == NULL)
		return MT_ERR_ARG;
	/* The connection's handle on the WAL (open once it has read the
	 * database in WAL mode, which mt_store_open did).  fsync works on the
	 * file, not the descriptor: it covers every connection's frames. */
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK ||
	    wal == NULL || wal->pMethods == NULL)
		return MT_ERR_STORE_DB;
	return wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL) == SQLITE_OK ? MT_OK
	                                                                  : MT_ERR_STORE_FULL;
}

void mt_store_set_dek_limits(struct mt_store *s, uint64_t max_rows, uint64_t max_age_ms)
{
	if (s == NULL)
		return;
	s->max_rows = max_rows ? max_rows : MT_STORE_DEK_MAX_ROWS;
	s->max_age_ms = max_age_ms ? max_age_ms : MT_STORE_DEK_MAX_AGE_MS;
}

/* ---- the DEK cache ------------------------------------------------------ */

static struct dek_slot *dek_cached(struct mt_store *s, int64_t id)
{
	for (size_t i = 0; i < DEK_CACHE; i++) {
		if (s->deks[i].id == id) {
			s->deks[i].used = ++s->tick;
			return &s->deks[i];
		}
	}
	return NULL;
}

/* A free slot, or the least recently used one (never one of this
 * transaction, never the current DEK), wiped. */
static struct dek_slot *dek_slot_free(struct mt_store *s)
{
	struct dek_slot *best = NULL;

	for (size_t i = 0; i < DEK_CACHE; i++) {
		struct dek_slot *d = &s->deks[i];

		if (d->id == 0)
			return d;
		if (d->pending || d->id == s->cur_id)
			continue;
		if (best == NULL || d->used < best->used)
			best = d;
	}
	if (best == NULL) /* every slot pending: cannot happen with one current DEK */
		best = &s->deks[0];
	OPENSSL_cleanse(best, sizeof *best);
	return best;
}

/* The key of DEK `id`, unwrapping it on first use.  MT_ERR_STORE_TAMPERED
 * when the DEK is missing or does not unwrap. */
static enum mt_err dek_key(struct mt_store *s, int64_t id, const uint8_t **key)
{
	struct dek_slot *d = dek_cached(s, id);
	uint8_t wrapped[MT_DEK_WRAPPED_LEN];
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (d != NULL) {
		*key = d->key;
		return MT_OK;
	}
	if (s->kek == NULL)
		return MT_ERR_ARG;
	e = stmt(s, ST_DEK_WRAPPED, &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *w = sqlite3_column_blob(st, 0);

		if (sqlite3_column_type(st, 0) != SQLITE_BLOB ||
		    sqlite3_column_bytes(st, 0) != MT_DEK_WRAPPED_LEN || w == NULL)
			e = MT_ERR_STORE_TAMPERED;
		else
			memcpy(wrapped, w, MT_DEK_WRAPPED_LEN);
	} else {
		e = rc == SQLITE_DONE ? MT_ERR_STORE_TAMPERED : step_err(rc);
	}
	sqlite3_reset(st);
	if (e != MT_OK)
		return e;
	d = dek_slot_free(s);
	if (mt_kek_unwrap(s->kek, wrapped, d->key) != MT_OK) {
		OPENSSL_cleanse(d, sizeof *d);
		return MT_ERR_STORE_TAMPERED;
	}
	d->id = id;
	d->pending = false;
	d->used = ++s->tick;
	*key = d->key;
	return MT_OK;
}

/* Add this transaction's rows to the current DEK's count. */
static enum mt_err dek_flush_rows(struct mt_store *s)
{
	sqlite3_stmt *st;
	enum mt_err e;

	if (s->tx_rows == 0 || s->cur_id == 0)
		return MT_OK;
	e = stmt(s, ST_DEK_ADD_ROWS, &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, (int64_t)s->tx_rows);
	sqlite3_bind_int64(st, 2, s->cur_id);
	e = step_done(st);
	if (e == MT_OK) {
		s->cur_rows += s->tx_rows;
		s->tx_rows = 0;
	}
	return e;
}

/* A new DEK: random, wrapped in the token, inserted, cached as pending. */
static enum mt_err dek_new(struct mt_store *s)
{
	uint8_t wrapped[MT_DEK_WRAPPED_LEN];
	struct dek_slot *d;
	sqlite3_stmt *st;
	enum mt_err e;

	e = dek_flush_rows(s);
	if (e != MT_OK)
		return e;
	d = dek_slot_free(s);
	e = mt_random(d->key, MT_DEK_LEN);
	if (e == MT_OK)
		e = mt_kek_wrap(s->kek, d->key, wrapped);
	if (e == MT_OK)
		e = stmt(s, ST_DEK_INSERT, &st);
	if (e == MT_OK) {
		sqlite3_bind_blob(st, 1, wrapped, MT_DEK_WRAPPED_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)now_ms());
		e = step_done(st);
	}
	if (e != MT_OK) {
		OPENSSL_cleanse(d, sizeof *d);
		return e;
	}
	d->id = sqlite3_last_insert_rowid(s->db);
	d->pending = true;
	d->used = ++s->tick;
	s->cur_id = d->id;
	s->cur_rows = 0;
	s->tx_rows = 0;
	return MT_OK;
}

/* The DEK to encrypt the next row under (inside a transaction). */
static enum mt_err dek_for_write(struct mt_store *s, int64_t *id, const uint8_t **key)
{
	enum mt_err e;

	if (s->kek == NULL)
		return MT_ERR_ARG;
	if (!s->cur_checked) {
		sqlite3_stmt *st;
		int rc;
		bool usable = false;
		uint64_t now = now_ms();

		s->cur_id = 0;
		s->cur_rows = s->tx_rows = 0;
		e = stmt(s, ST_DEK_NEWEST, &st);
		if (e != MT_OK)
			return e;
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			int64_t did = sqlite3_column_int64(st, 0);
			int64_t created = sqlite3_column_int64(st, 2);
			int64_t rows = sqlite3_column_int64(st, 3);

			usable = did > 0 && rows >= 0 && (uint64_t)rows < s->max_rows &&
			         created >= 0 && now >= (uint64_t)created &&
			         now - (uint64_t)created < s->max_age_ms;
			if (usable) {
				s->cur_id = did;
				s->cur_rows = (uint64_t)rows;
			}
		} else if (rc != SQLITE_DONE) {
			sqlite3_reset(st);
			return step_err(rc);
		}
		sqlite3_reset(st);
		s->cur_checked = true;
	}
	if (s->cur_id == 0 || s->cur_rows + s->tx_rows >= s->max_rows) {
		e = dek_new(s);
		if (e != MT_OK)
			return e;
	}
	e = dek_key(s, s->cur_id, key);
	if (e == MT_ERR_STORE_TAMPERED) {
		/* The newest DEK no longer unwraps (its row was edited): write
		 * under a new one rather than stop ingest; what the old one
		 * encrypted reads back as tampered. */
		s->tx_rows = 0;
		s->cur_id = 0;
		e = dek_new(s);
		if (e == MT_OK)
			e = dek_key(s, s->cur_id, key);
	}
	if (e != MT_OK)
		return e;
	*id = s->cur_id;
	return MT_OK;
}

/* ---- transactions ------------------------------------------------------- */

static void tx_reset(struct mt_store *s)
{
	s->tx = TX_NONE;
	s->tx_err = MT_OK;
	s->cur_checked = false;
	s->cur_id = 0;
	s->cur_rows = s->tx_rows = 0;
}

/* ROLLBACK and forget the cached DEKs: those this transaction made are
 * gone with it (a DEK made here and evicted, then read back from the
 * transaction's own rows, is no longer marked as made here, so the whole
 * cache goes; rollbacks are rare and a DEK unwraps again on first use). */
static void tx_abort(struct mt_store *s)
{
	(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	OPENSSL_cleanse(s->deks, sizeof s->deks);
	tx_reset(s);
}

/* A step inside the transaction failed with `e`: a passing failure rolls
 * the whole transaction back (mt_store.h). */
static enum mt_err tx_fail(struct mt_store *s, enum mt_err e)
{
	if (passing(e) && s->tx == TX_OPEN) {
		tx_abort(s);
		s->tx = TX_FAILED;
		s->tx_err = e;
	}
	return e;
}

/* MT_OK when a transaction is open for writing. */
static enum mt_err tx_check(const struct mt_store *s)
{
	if (s->tx == TX_FAILED)
		return s->tx_err;
	return s->tx == TX_OPEN ? MT_OK : MT_ERR_ARG;
}

enum mt_err mt_store_begin(struct mt_store *s)
{
	enum mt_err e;

	if (s == NULL || s->tx == TX_OPEN)
		return MT_ERR_ARG;
	tx_reset(s);
	e = exec(s, "BEGIN IMMEDIATE");
	if (e != MT_OK)
		return e == MT_ERR_STORE_BUSY ? e : MT_ERR_STORE_DB;
	s->tx = TX_OPEN;
	return MT_OK;
}

enum mt_err mt_store_commit(struct mt_store *s)
{
	enum mt_err e;

	if (s == NULL)
		return MT_ERR_ARG;
	if (s->tx != TX_OPEN) {
		e = s->tx == TX_FAILED ? s->tx_err : MT_ERR_STORE_DB;
		tx_reset(s);
		return e;
	}
	e = dek_flush_rows(s);
	if (e == MT_OK)
		e = exec(s, "COMMIT");
	if (e != MT_OK) {
		tx_abort(s);
		return e == MT_ERR_NOMEM ? MT_ERR_STORE_DB : e;
	}
	for (size_t i = 0; i < DEK_CACHE; i++)
		s->deks[i].pending = false;
	tx_reset(s);
	return MT_OK;
}

void mt_store_rollback(struct mt_store *s)
{
	if (s == NULL)
		return;
	if (s->tx == TX_OPEN)
		tx_abort(s);
	tx_reset(s);
}

/* ---- windows ------------------------------------------------------------ */

enum mt_err mt_store_window_load(struct mt_store *s, const char *dev, struct mt_replay *w)
{
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (s == NULL || dev == NULL || w == NULL)
		return MT_ERR_ARG;
	if (s->tx == TX_FAILED)
		return s->tx_err;
	e = stmt(s, ST_WINDOW_LOAD, &st);
	if (e != MT_OK)
		return tx_fail(s, e);
	sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *b = sqlite3_column_blob(st, 0);

		if (b == NULL || sqlite3_column_bytes(st, 0) != MT_REPLAY_STATE_LEN ||
		    mt_replay_load(w, b) != MT_OK)
			e = MT_ERR_STORE_DB;
	} else if (rc == SQLITE_DONE) {
		mt_replay_init(w);
	} else {
		e = step_err(rc);
	}
	sqlite3_reset(st);
	return tx_fail(s, e);
}

enum mt_err mt_store_window_save(struct mt_store *s, const char *dev, const struct mt_replay *w)
{
	uint8_t state[MT_REPLAY_STATE_LEN];
	sqlite3_stmt *st;
	enum mt_err e;

	if (s == NULL || dev == NULL || w == NULL || !mt_device_id_valid(dev, strlen(dev)))
		return MT_ERR_ARG;
	e = tx_check(s);
	if (e != MT_OK)
		return e;
	mt_replay_save(w, state);
	e = stmt(s, ST_WINDOW_SAVE, &st);
	if (e == MT_OK) {
		sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, state, sizeof state, SQLITE_STATIC);
		e = step_done(st);
	}
	return tx_fail(s, e);
}

/* ---- assignments -------------------------------------------------------- */

enum mt_err mt_store_assigned(struct mt_store *s, const char *dev, uint64_t at_ms,
                              int64_t *patient_id)
{
	int64_t at = u64_fits(at_ms) ? (int64_t)at_ms : INT64_MAX;
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (s == NULL || dev == NULL || patient_id == NULL)
		return MT_ERR_ARG;
	*patient_id = 0;
	e = stmt(s, ST_ASSIGNED, &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, at);
	sqlite3_bind_int64(st, 3, at);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*patient_id = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		e = step_err(rc);
	sqlite3_reset(st);
	return e;
}

enum mt_err mt_store_assign(struct mt_store *s, const char *dev, int64_t patient_id,
                            uint64_t since_ms)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (s == NULL || dev == NULL || !mt_device_id_valid(dev, strlen(dev)) || patient_id < 0 ||
	    !u64_fits(since_ms))
		return MT_ERR_ARG;
	e = mt_store_begin(s);
	if (e != MT_OK)
		return e;
	if (patient_id != 0) {
		if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM patients WHERE id = ?", -1, &st, NULL) !=
		    SQLITE_OK) {
			e = MT_ERR_STORE_DB;
		} else {
			sqlite3_bind_int64(st, 1, patient_id);
			rc = sqlite3_step(st);
			e = rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : step_err(rc);
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	/* An open assignment that starts after `since` cannot end at it. */
	if (e == MT_OK) {
		if (sqlite3_prepare_v2(s->db,
		                       "SELECT 1 FROM assignments WHERE dev = ? AND until_ms IS NULL"
		                       " AND since_ms > ?",
		                       -1, &st, NULL) != SQLITE_OK) {
			e = MT_ERR_STORE_DB;
		} else {
			sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (int64_t)since_ms);
			rc = sqlite3_step(st);
			e = rc == SQLITE_ROW ? MT_ERR_ARG : rc == SQLITE_DONE ? MT_OK : step_err(rc);
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (e == MT_OK) {
		if (sqlite3_prepare_v2(s->db,
		                       "UPDATE assignments SET until_ms = ? WHERE dev = ?"
		                       " AND until_ms IS NULL",
		                       -1, &st, NULL) != SQLITE_OK) {
			e = MT_ERR_STORE_DB;
		} else {
			sqlite3_bind_int64(st, 1, (int64_t)since_ms);
			sqlite3_bind_text(st, 2, dev, -1, SQLITE_STATIC);
			e = step_done(st);
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (e == MT_OK && patient_id != 0) {
		if (sqlite3_prepare_v2(s->db,
		                       "INSERT INTO assignments(dev, patient_id, since_ms, until_ms)"
		                       " VALUES(?, ?, ?, NULL)",
		                       -1, &st, NULL) != SQLITE_OK) {
			e = MT_ERR_STORE_DB;
		} else {
			sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, patient_id);
			sqlite3_bind_int64(st, 3, (int64_t)since_ms);
			e = step_done(st);
		}
		sqlite3_finalize(st);
	}
	if (e != MT_OK) {
		mt_store_rollback(s);
		return e;
	}
	return mt_store_commit(s);
}

/* ---- readings ----------------------------------------------------------- */

static bool serial_ok(const char *c)
{
	size_t n;

	if (c == NULL)
		return false;
	n = strnlen(c, MT_STORE_CERT_MAX);
	if (n == 0 || n >= MT_STORE_CERT_MAX)
		return false;
	return strspn(c, "0123456789abcdef") == n;
}

/* Room for n bytes of ciphertext in s->buf. */
static enum mt_err buf_reserve(struct mt_store *s, size_t n)
{
	uint8_t *p;

	if (n <= s->buf_cap)
		return MT_OK;
	p = realloc(s->buf, n);
	if (p == NULL)
		return MT_ERR_NOMEM;
	s->buf = p;
	s->buf_cap = n;
	return MT_OK;
}

static void aad_reading(struct aad *a, const char *dev, size_t dev_len, int64_t ctr,
                        int64_t dek_id, int64_t epoch, int64_t typ, int64_t ts,
                        int64_t received, int64_t flags, int64_t patient, const char *cert,
                        size_t cert_len)
{
	aad_init(a, "mt-store:reading:");
	aad_text(a, dev, dev_len);
	aad_i64(a, ctr);
	aad_i64(a, dek_id);
	aad_i64(a, epoch);
	aad_i64(a, typ);
	aad_i64(a, ts);
	aad_i64(a, received);
	aad_i64(a, flags);
	aad_i64(a, patient);
	aad_text(a, cert, cert_len);
}

static void aad_alert(struct aad *a, const char *dev, size_t dev_len, int64_t ctr,
                      int64_t dek_id, int64_t ts, int64_t received, int64_t patient)
{
	aad_init(a, "mt-store:alert:");
	aad_text(a, dev, dev_len);
	aad_i64(a, ctr);
	aad_i64(a, dek_id);
	aad_i64(a, ts);
	aad_i64(a, received);
	aad_i64(a, patient);
}

/* Seal pt under DEK `key` with a random IV into s->buf (pt_len + 16). */
static enum mt_err seal_row(struct mt_store *s, const uint8_t *key, uint8_t iv[MT_AEAD_IV_LEN],
                            const struct aad *a, const uint8_t *pt, size_t pt_len)
{
	enum mt_err e;

	if (a->over)
		return MT_ERR_INTERNAL;
	e = buf_reserve(s, pt_len + MT_AEAD_TAG_LEN);
	if (e == MT_OK)
		e = mt_random(iv, MT_AEAD_IV_LEN);
	if (e == MT_OK)
		e = mt_aead_seal(s->aead, key, MT_DEK_LEN, iv, a->b, a->n, pt, pt_len, s->buf);
	return e;
}

enum mt_err mt_store_reading_put(struct mt_store *s, const struct mt_store_reading *r,
                                 int64_t *id)
{
	uint8_t iv[MT_AEAD_IV_LEN];
	const uint8_t *key;
	int64_t dek_id = 0, patient = 0, rowid;
	struct aad a;
	sqlite3_stmt *st;
	size_t dev_len;
	enum mt_err e;
	int rc;

	if (s == NULL || r == NULL || r->dev == NULL)
		return MT_ERR_ARG;
	dev_len = strnlen(r->dev, MT_DEVICE_ID_MAX + 1);
	if (!mt_device_id_valid(r->dev, dev_len) || r->ctr >= (UINT64_C(1) << 63) ||
	    r->typ < MT_TYP_VITALS || r->typ > MT_TYP_ACK || !u64_fits(r->ts_ms) ||
	    !u64_fits(r->received_ms) || r->flags > (MT_STORE_SKEWED | MT_STORE_STALE) ||
	    !serial_ok(r->cert_serial) || r->sign1 == NULL || r->sign1_len == 0 ||
	    r->sign1_len > MT_PACKET_MAX)
		return MT_ERR_ARG;
	if (s->kek == NULL)
		return MT_ERR_ARG;
	e = tx_check(s);
	if (e != MT_OK)
		return e;
	e = mt_store_assigned(s, r->dev, r->ts_ms, &patient);
	if (e == MT_OK)
		e = dek_for_write(s, &dek_id, &key);
	if (e != MT_OK)
		return tx_fail(s, e);
	aad_reading(&a, r->dev, dev_len, (int64_t)r->ctr, dek_id, (int64_t)r->epoch,
	            (int64_t)r->typ, (int64_t)r->ts_ms, (int64_t)r->received_ms,
	            (int64_t)r->flags, patient, r->cert_serial, strlen(r->cert_serial));
	e = seal_row(s, key, iv, &a, r->sign1, r->sign1_len);
	if (e == MT_OK)
		e = stmt(s, ST_READING_INSERT, &st);
	if (e != MT_OK)
		return tx_fail(s, e);
	sqlite3_bind_text(st, 1, r->dev, (int)dev_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)r->ctr);
	sqlite3_bind_int64(st, 3, (int64_t)r->epoch);
	sqlite3_bind_int64(st, 4, (int64_t)r->typ);
	sqlite3_bind_int64(st, 5, (int64_t)r->ts_ms);
	sqlite3_bind_int64(st, 6, (int64_t)r->received_ms);
	sqlite3_bind_int64(st, 7, (int64_t)r->flags);
	sqlite3_bind_text(st, 8, r->cert_serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, patient);
	sqlite3_bind_int64(st, 10, dek_id);
	sqlite3_bind_blob(st, 11, iv, sizeof iv, SQLITE_STATIC);
	sqlite3_bind_blob(st, 12, s->buf, (int)(r->sign1_len + MT_AEAD_TAG_LEN), SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return MT_ERR_PKT_DUPLICATE; /* the statement alone is undone */
	if (rc != SQLITE_DONE)
		return tx_fail(s, step_err(rc));
	s->tx_rows++;
	rowid = sqlite3_last_insert_rowid(s->db);
	if (id != NULL)
		*id = rowid;
	if (r->typ == MT_TYP_VITALS)
		return mt_store_journal_add(s, MT_JOURNAL_READING, rowid);
	return MT_OK;
}

enum mt_err mt_store_journal_add(struct mt_store *s, int kind, int64_t ref)
{
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (s == NULL || (kind != MT_JOURNAL_READING && kind != MT_JOURNAL_ALARM) || ref < 1)
		return MT_ERR_ARG;
	e = tx_check(s);
	if (e == MT_OK)
		e = stmt(s, ST_JOURNAL_INSERT, &st);
	if (e != MT_OK)
		return tx_fail(s, e);
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_int64(st, 2, ref);
	sqlite3_bind_int64(st, 3, (int64_t)now_ms());
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return tx_fail(s, step_err(rc));
	return MT_OK;
}

enum mt_err mt_store_alert_put(struct mt_store *s, const char *dev, uint64_t ctr, uint64_t ts_ms,
                               uint64_t received_ms, const uint8_t *msg, size_t msg_len,
                               int64_t *id)
{
	uint8_t iv[MT_AEAD_IV_LEN];
	const uint8_t *key;
	int64_t dek_id = 0, patient = 0;
	struct aad a;
	sqlite3_stmt *st;
	size_t dev_len;
	enum mt_err e;
	int rc;

	if (s == NULL || dev == NULL)
		return MT_ERR_ARG;
	dev_len = strnlen(dev, MT_DEVICE_ID_MAX + 1);
	if (!mt_device_id_valid(dev, dev_len) || ctr >= (UINT64_C(1) << 63) || !u64_fits(ts_ms) ||
	    !u64_fits(received_ms) || msg == NULL || msg_len == 0 || msg_len > MT_PACKET_MAX ||
	    s->kek == NULL)
		return MT_ERR_ARG;
	e = tx_check(s);
	if (e != MT_OK)
		return e;
	e = mt_store_assigned(s, dev, ts_ms, &patient);
	if (e == MT_OK)
		e = dek_for_write(s, &dek_id, &key);
	if (e != MT_OK)
		return tx_fail(s, e);
	aad_alert(&a, dev, dev_len, (int64_t)ctr, dek_id, (int64_t)ts_ms, (int64_t)received_ms,
	          patient);
	e = seal_row(s, key, iv, &a, msg, msg_len);
	if (e == MT_OK)
		e = stmt(s, ST_ALERT_INSERT, &st);
	if (e != MT_OK)
		return tx_fail(s, e);
	sqlite3_bind_text(st, 1, dev, (int)dev_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)ctr);
	sqlite3_bind_int64(st, 3, (int64_t)ts_ms);
	sqlite3_bind_int64(st, 4, (int64_t)received_ms);
	sqlite3_bind_int64(st, 5, patient);
	sqlite3_bind_int64(st, 6, dek_id);
	sqlite3_bind_blob(st, 7, iv, sizeof iv, SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, s->buf, (int)(msg_len + MT_AEAD_TAG_LEN), SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return MT_ERR_PKT_DUPLICATE;
	if (rc != SQLITE_DONE)
		return tx_fail(s, step_err(rc));
	s->tx_rows++;
	if (id != NULL)
		*id = sqlite3_last_insert_rowid(s->db);
	return MT_OK;
}

/* Column `col` as an integer; false when it holds anything else. */
static bool col_i64(sqlite3_stmt *st, int col, int64_t *v)
{
	if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
		return false;
	*v = sqlite3_column_int64(st, col);
	return true;
}

/* Column `col` as text of at most max bytes into out (cap > max). */
static bool col_text(sqlite3_stmt *st, int col, char *out, size_t max, size_t *len)
{
	const unsigned char *t;
	int n;

	if (sqlite3_column_type(st, col) != SQLITE_TEXT)
		return false;
	t = sqlite3_column_text(st, col);
	n = sqlite3_column_bytes(st, col);
	if (t == NULL || n < 0 || (size_t)n > max || memchr(t, 0, (size_t)n) != NULL)
		return false;
	memcpy(out, t, (size_t)n);
	out[n] = '\0';
	if (len != NULL)
		*len = (size_t)n;
	return true;
}

/* Decrypt the (iv, ct) columns at iv_col, iv_col + 1 under DEK dek_id into
 * a new buffer.  MT_ERR_STORE_TAMPERED for anything that does not
 * authenticate. */
static enum mt_err open_row(struct mt_store *s, sqlite3_stmt *st, int iv_col, int64_t dek_id,
                            const struct aad *a, uint8_t **pt, size_t *pt_len)
{
	const uint8_t *key, *iv, *ct;
	int iv_len, ct_len;
	uint8_t *out;
	enum mt_err e;

	*pt = NULL;
	*pt_len = 0;
	iv = sqlite3_column_blob(st, iv_col);
	iv_len = sqlite3_column_bytes(st, iv_col);
	ct = sqlite3_column_blob(st, iv_col + 1);
	ct_len = sqlite3_column_bytes(st, iv_col + 1);
	if (a->over || sqlite3_column_type(st, iv_col) != SQLITE_BLOB || iv == NULL ||
	    iv_len != MT_AEAD_IV_LEN || sqlite3_column_type(st, iv_col + 1) != SQLITE_BLOB ||
	    ct == NULL || ct_len <= MT_AEAD_TAG_LEN || ct_len > MT_PACKET_MAX + MT_AEAD_TAG_LEN)
		return MT_ERR_STORE_TAMPERED;
	e = dek_key(s, dek_id, &key);
	if (e != MT_OK)
		return e;
	out = malloc((size_t)ct_len);
	if (out == NULL)
		return MT_ERR_NOMEM;
	e = mt_aead_open(s->aead, key, MT_DEK_LEN, iv, a->b, a->n, ct, (size_t)ct_len, out);
	if (e != MT_OK) {
		free(out); /* mt_aead_open wiped it */
		return e == MT_ERR_AEAD_TAG || e == MT_ERR_ARG ? MT_ERR_STORE_TAMPERED : e;
	}
	*pt = out;
	*pt_len = (size_t)ct_len - MT_AEAD_TAG_LEN;
	return MT_OK;
}

enum mt_err mt_store_reading_get(struct mt_store *s, int64_t id, struct mt_store_row *row)
{
	int64_t ctr, epoch, typ, ts, recv, flags, patient, dek_id;
	size_t dev_len = 0, cert_len = 0;
	struct aad a;
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (row != NULL)
		memset(row, 0, sizeof *row);
	if (s == NULL || row == NULL)
		return MT_ERR_ARG;
	if (s->kek == NULL)
		return MT_ERR_ARG;
	e = stmt(s, ST_READING_GET, &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : step_err(rc);
	}
	if (!col_text(st, 0, row->dev, MT_DEVICE_ID_MAX, &dev_len) || !col_i64(st, 1, &ctr) ||
	    !col_i64(st, 2, &epoch) || !col_i64(st, 3, &typ) || !col_i64(st, 4, &ts) ||
	    !col_i64(st, 5, &recv) || !col_i64(st, 6, &flags) ||
	    !col_text(st, 7, row->cert_serial, MT_STORE_CERT_MAX - 1, &cert_len) ||
	    !col_i64(st, 8, &patient) || !col_i64(st, 9, &dek_id)) {
		e = MT_ERR_STORE_TAMPERED;
	} else {
		aad_reading(&a, row->dev, dev_len, ctr, dek_id, epoch, typ, ts, recv, flags, patient,
		            row->cert_serial, cert_len);
		e = open_row(s, st, 10, dek_id, &a, &row->sign1, &row->sign1_len);
	}
	sqlite3_reset(st);
	/* Authentic values are the ones we wrote; anything out of range was
	 * not written by us and so cannot have authenticated. */
	if (e == MT_OK && (ctr < 0 || epoch < 0 || epoch > (int64_t)UINT32_MAX || typ < 1 ||
	                   typ > 4 || ts < 0 || recv < 0 || flags < 0 ||
	                   flags > (int64_t)(MT_STORE_SKEWED | MT_STORE_STALE) || patient < 0))
		e = MT_ERR_STORE_TAMPERED;
	if (e != MT_OK) {
		mt_store_row_clear(row);
		return e;
	}
	row->id = id;
	row->ctr = (uint64_t)ctr;
	row->epoch = (uint32_t)epoch;
	row->typ = (uint8_t)typ;
	row->ts_ms = (uint64_t)ts;
	row->received_ms = (uint64_t)recv;
	row->flags = (unsigned)flags;
	row->patient_id = patient;
	return MT_OK;
}

void mt_store_row_clear(struct mt_store_row *row)
{
	if (row == NULL)
		return;
	if (row->sign1 != NULL) {
		OPENSSL_cleanse(row->sign1, row->sign1_len);
		free(row->sign1);
	}
	memset(row, 0, sizeof *row);
}

enum mt_err mt_store_alert_get(struct mt_store *s, int64_t id, struct mt_store_alert_row *row)
{
	int64_t ctr, ts, recv, patient, dek_id;
	size_t dev_len = 0;
	struct aad a;
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (row != NULL)
		memset(row, 0, sizeof *row);
	if (s == NULL || row == NULL || s->kek == NULL)
		return MT_ERR_ARG;
	e = stmt(s, ST_ALERT_GET, &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : step_err(rc);
	}
	if (!col_text(st, 0, row->dev, MT_DEVICE_ID_MAX, &dev_len) || !col_i64(st, 1, &ctr) ||
	    !col_i64(st, 2, &ts) || !col_i64(st, 3, &recv) || !col_i64(st, 4, &patient) ||
	    !col_i64(st, 5, &dek_id)) {
		e = MT_ERR_STORE_TAMPERED;
	} else {
		aad_alert(&a, row->dev, dev_len, ctr, dek_id, ts, recv, patient);
		e = open_row(s, st, 6, dek_id, &a, &row->msg, &row->msg_len);
	}
	sqlite3_reset(st);
	if (e == MT_OK && (ctr < 0 || ts < 0 || recv < 0 || patient < 0))
		e = MT_ERR_STORE_TAMPERED;
	if (e != MT_OK) {
		mt_store_alert_row_clear(row);
		return e;
	}
	row->id = id;
	row->ctr = (uint64_t)ctr;
	row->ts_ms = (uint64_t)ts;
	row->received_ms = (uint64_t)recv;
	row->patient_id = patient;
	return MT_OK;
}

void mt_store_alert_row_clear(struct mt_store_alert_row *row)
{
	if (row == NULL)
		return;
	if (row->msg != NULL) {
		OPENSSL_cleanse(row->msg, row->msg_len);
		free(row->msg);
	}
	memset(row, 0, sizeof *row);
}

enum mt_err mt_store_reading_ids(struct mt_store *s, int64_t first, int64_t last,
                                 enum mt_err (*cb)(void *ctx, int64_t id), void *ctx)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc;

	if (s == NULL || cb == NULL)
		return MT_ERR_ARG;
	/* A statement of its own: cb may read the store meanwhile. */
	if (sqlite3_prepare_v2(s->db, "SELECT id FROM readings WHERE id BETWEEN ? AND ? ORDER BY id",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	sqlite3_bind_int64(st, 1, first);
	sqlite3_bind_int64(st, 2, last);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e = cb(ctx, sqlite3_column_int64(st, 0));
		if (e != MT_OK)
			break;
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = step_err(rc);
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_store_count(struct mt_store *s, const char *dev, uint64_t *n)
{
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (s == NULL || n == NULL)
		return MT_ERR_ARG;
	*n = 0;
	e = stmt(s, dev != NULL ? ST_COUNT : ST_COUNT_ALL, &st);
	if (e != MT_OK)
		return e;
	if (dev != NULL)
		sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t v = sqlite3_column_int64(st, 0);

		*n = v > 0 ? (uint64_t)v : 0;
	} else {
		e = step_err(rc);
	}
	sqlite3_reset(st);
	return e;
}

enum mt_err mt_store_counters(struct mt_store *s, const char *dev, uint64_t *ctrs, size_t cap,
                              size_t *n)
{
	sqlite3_stmt *st = NULL;
	size_t k = 0;
	int rc;

	if (s == NULL || n == NULL || (ctrs == NULL && cap > 0))
		return MT_ERR_ARG;
	*n = 0;
	if (sqlite3_prepare_v2(s->db,
	                       dev != NULL ? "SELECT ctr FROM readings WHERE dev = ? ORDER BY ctr"
	                                   : "SELECT ctr FROM readings ORDER BY ctr",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	if (dev != NULL)
		sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (ctrs != NULL && k < cap)
			ctrs[k] = (uint64_t)sqlite3_column_int64(st, 0);
		k++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return step_err(rc);
	*n = k;
	return MT_OK;
}

/* ---- patients ------------------------------------------------------------- */

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "" or a real YYYY-MM-DD date (year 1..9999, leap years counted). */
static bool birth_date_ok(const char *d)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	size_t n = strnlen(d, MT_STORE_TEXT_MAX + 1);
	int y, m, day;

	if (n == 0)
		return true;
	if (n != 10 || d[4] != '-' || d[7] != '-')
		return false;
	for (size_t i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9'))
			return false;
	y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
	m = (d[5] - '0') * 10 + (d[6] - '0');
	day = (d[8] - '0') * 10 + (d[9] - '0');
	if (y < 1 || m < 1 || m > 12 || day < 1)
		return false;
	return day <= mdays[m - 1] + (m == 2 && leap(y) ? 1 : 0);
}

static bool sex_ok(const char *t, size_t cap)
{
	static const char *const codes[] = {"", "male", "female", "other", "unknown"};

	if (strnlen(t, cap) == cap)
		return false;
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		if (strcmp(t, codes[i]) == 0)
			return true;
	return false;
}

static bool oxygen_ok(char c)
{
	return c == 0 || c == 'A' || c == 'O';
}

static bool acvpu_ok(char c)
{
	return c == 0 || c == 'A' || c == 'C' || c == 'V' || c == 'P' || c == 'U';
}

bool mt_store_patient_valid(const struct mt_patient *p)
{
	return p != NULL && text_ok(p->name, sizeof p->name, MT_STORE_TEXT_MAX, false) &&
	       text_ok(p->mrn, sizeof p->mrn, MT_STORE_TEXT_MAX, false) &&
	       text_ok(p->birth_date, sizeof p->birth_date, MT_STORE_TEXT_MAX, true) &&
	       birth_date_ok(p->birth_date) &&
	       text_ok(p->ward, sizeof p->ward, sizeof p->ward - 1, true) &&
	       text_ok(p->bed, sizeof p->bed, sizeof p->bed - 1, true) &&
	       text_ok(p->room, sizeof p->room, sizeof p->room - 1, true) &&
	       sex_ok(p->sex, sizeof p->sex) && oxygen_ok(p->oxygen) && acvpu_ok(p->acvpu);
}

/* The plain columns of a patient row, as stored and as bound into the AAD. */
struct patient_plain {
	const char *ward, *bed, *room;
	size_t ward_len, bed_len, room_len;
	int64_t spo2_scale2, news2_na; /* 0 or 1 */
	char oxygen[2], acvpu[2];      /* "" or one letter */
	int64_t aad_v;
};

static void plain_of(const struct mt_patient *p, struct patient_plain *pl)
{
	memset(pl, 0, sizeof *pl);
	pl->ward = p->ward;
	pl->ward_len = strlen(p->ward);
	pl->bed = p->bed;
	pl->bed_len = strlen(p->bed);
	pl->room = p->room;
	pl->room_len = strlen(p->room);
	pl->spo2_scale2 = p->spo2_scale2 ? 1 : 0;
	pl->news2_na = p->news2_na ? 1 : 0;
	pl->oxygen[0] = p->oxygen;
	pl->acvpu[0] = p->acvpu;
	pl->aad_v = MT_STORE_PATIENT_AAD_V;
}

/* Version 1 (rows from before room, sex and NEWS2 settings): the label,
 * id, dek_id, ward, bed.  Version 2: its own label (so that a row cannot
 * be read as the other version), then room and the four NEWS2 settings
 * too. */
static void aad_patient(struct aad *a, int64_t id, int64_t dek_id, const struct patient_plain *pl)
{
	aad_init(a, pl->aad_v == 1 ? "mt-store:patient:" : "mt-store:patient:v2:");
	aad_i64(a, id);
	aad_i64(a, dek_id);
	aad_text(a, pl->ward, pl->ward_len);
	aad_text(a, pl->bed, pl->bed_len);
	if (pl->aad_v == 1)
		return;
	aad_text(a, pl->room, pl->room_len);
	aad_i64(a, pl->spo2_scale2);
	aad_text(a, pl->oxygen, strlen(pl->oxygen));
	aad_text(a, pl->acvpu, strlen(pl->acvpu));
	aad_i64(a, pl->news2_na);
}

/* Seal `p` as the current version into row `pid` (inside the caller's
 * transaction).  MT_ERR_NOT_FOUND when the row does not exist. */
static enum mt_err patient_write(struct mt_store *s, int64_t pid, const struct mt_patient *p)
{
	uint8_t pt[PATIENT_PT_MAX], iv[MT_AEAD_IV_LEN];
	struct mt_cbor_enc enc;
	struct patient_plain pl;
	const uint8_t *key;
	int64_t dek_id = 0;
	size_t pt_len = 0;
	sqlite3_stmt *st = NULL;
	struct aad a;
	enum mt_err e;

	mt_cbor_enc_init(&enc, pt, sizeof pt);
	mt_cbor_put_array(&enc, 4);
	mt_cbor_put_tstr(&enc, p->name, strlen(p->name));
	mt_cbor_put_tstr(&enc, p->mrn, strlen(p->mrn));
	mt_cbor_put_tstr(&enc, p->birth_date, strlen(p->birth_date));
	mt_cbor_put_tstr(&enc, p->sex, strlen(p->sex));
	if (mt_cbor_enc_finish(&enc, &pt_len) != MT_OK) {
		OPENSSL_cleanse(pt, sizeof pt);
		return MT_ERR_INTERNAL;
	}
	plain_of(p, &pl);
	e = dek_for_write(s, &dek_id, &key);
	if (e == MT_OK) {
		aad_patient(&a, pid, dek_id, &pl);
		e = seal_row(s, key, iv, &a, pt, pt_len);
	}
	OPENSSL_cleanse(pt, sizeof pt);
	if (e == MT_OK &&
	    sqlite3_prepare_v2(s->db,
	                       "UPDATE patients SET ward = ?, bed = ?, room = ?, spo2_scale2 = ?,"
	                       " oxygen = ?, acvpu = ?, news2_na = ?, aad_v = ?, dek_id = ?, iv = ?,"
	                       " ct = ? WHERE id = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		e = MT_ERR_STORE_DB;
	if (e == MT_OK) {
		sqlite3_bind_text(st, 1, pl.ward, (int)pl.ward_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, pl.bed, (int)pl.bed_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, pl.room, (int)pl.room_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, pl.spo2_scale2);
		sqlite3_bind_text(st, 5, pl.oxygen, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, pl.acvpu, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, pl.news2_na);
		sqlite3_bind_int64(st, 8, pl.aad_v);
		sqlite3_bind_int64(st, 9, dek_id);
		sqlite3_bind_blob(st, 10, iv, sizeof iv, SQLITE_STATIC);
		sqlite3_bind_blob(st, 11, s->buf, (int)(pt_len + MT_AEAD_TAG_LEN), SQLITE_STATIC);
		sqlite3_bind_int64(st, 12, pid);
		e = step_done(st);
		if (e == MT_OK && sqlite3_changes(s->db) != 1)
			e = MT_ERR_NOT_FOUND;
	}
	sqlite3_finalize(st);
	if (e == MT_OK)
		s->tx_rows++;
	return e;
}

enum mt_err mt_store_patient_add(struct mt_store *s, const struct mt_patient *p, int64_t *id)
{
	const uint8_t *key;
	int64_t dek_id = 0, pid = 0;
	sqlite3_stmt *st = NULL;
	enum mt_err e;

	if (s == NULL || p == NULL || id == NULL || !mt_store_patient_valid(p) || s->kek == NULL)
		return MT_ERR_ARG;
	e = mt_store_begin(s);
	if (e != MT_OK)
		return e;
	/* The row first, for its id (its dek_id must name a DEK); its
	 * ciphertext in the same transaction. */
	e = dek_for_write(s, &dek_id, &key);
	if (e == MT_OK &&
	    sqlite3_prepare_v2(s->db,
	                       "INSERT INTO patients(ward, bed, dek_id, iv, ct, aad_v)"
	                       " VALUES('', '', ?, x'', x'', ?)",
	                       -1, &st, NULL) != SQLITE_OK)
		e = MT_ERR_STORE_DB;
	if (e == MT_OK) {
		sqlite3_bind_int64(st, 1, dek_id);
		sqlite3_bind_int64(st, 2, MT_STORE_PATIENT_AAD_V);
		e = step_done(st);
		pid = sqlite3_last_insert_rowid(s->db);
	}
	sqlite3_finalize(st);
	if (e == MT_OK)
		e = patient_write(s, pid, p);
	if (e != MT_OK) {
		mt_store_rollback(s);
		return e;
	}
	e = mt_store_commit(s);
	if (e == MT_OK)
		*id = pid;
	return e;
}

enum mt_err mt_store_patient_update(struct mt_store *s, const struct mt_patient *p)
{
	enum mt_err e;

	if (s == NULL || p == NULL || p->id < 1 || !mt_store_patient_valid(p) || s->kek == NULL)
		return MT_ERR_ARG;
	e = mt_store_begin(s);
	if (e != MT_OK)
		return e;
	e = patient_write(s, p->id, p);
	if (e != MT_OK) {
		mt_store_rollback(s);
		return e;
	}
	return mt_store_commit(s);
}

/* [name, mrn, birth_date] (version 1) or [name, mrn, birth_date, sex]
 * (version 2) into p. */
static bool patient_decode(const uint8_t *pt, size_t len, int64_t aad_v, struct mt_patient *p)
{
	struct mt_cbor_dec d;
	uint64_t n;
	char *dst[4] = {p->name, p->mrn, p->birth_date, p->sex};
	size_t cap[4] = {sizeof p->name, sizeof p->mrn, sizeof p->birth_date, sizeof p->sex};
	size_t want = aad_v == 1 ? 3 : 4;

	mt_cbor_dec_init(&d, pt, len);
	if (!mt_cbor_get_array(&d, &n) || n != want)
		return false;
	for (size_t i = 0; i < want; i++) {
		const char *t;
		size_t tn;

		if (!mt_cbor_get_tstr(&d, &t, &tn) || tn >= cap[i] || memchr(t, 0, tn) != NULL)
			return false;
		memcpy(dst[i], t, tn);
		dst[i][tn] = '\0';
	}
	return mt_cbor_dec_finish(&d) == MT_OK && sex_ok(p->sex, sizeof p->sex);
}

#define PATIENT_COLS                                                                         \
	"ward, bed, room, spo2_scale2, oxygen, acvpu, news2_na, aad_v, dek_id, iv, ct"
#define PATIENT_IV_COL 9

/* The patient on the current row of `st` (PATIENT_COLS), decrypted. */
static enum mt_err patient_row(struct mt_store *s, sqlite3_stmt *st, int64_t id,
                               struct mt_patient *p)
{
	struct patient_plain pl;
	size_t pt_len = 0;
	int64_t dek_id;
	uint8_t *pt = NULL;
	struct aad a;
	enum mt_err e = MT_OK;

	memset(p, 0, sizeof *p);
	memset(&pl, 0, sizeof pl);
	if (!col_text(st, 0, p->ward, sizeof p->ward - 1, &pl.ward_len) ||
	    !col_text(st, 1, p->bed, sizeof p->bed - 1, &pl.bed_len) ||
	    !col_text(st, 2, p->room, sizeof p->room - 1, &pl.room_len) ||
	    !col_i64(st, 3, &pl.spo2_scale2) || !col_text(st, 4, pl.oxygen, 1, NULL) ||
	    !col_text(st, 5, pl.acvpu, 1, NULL) || !col_i64(st, 6, &pl.news2_na) ||
	    !col_i64(st, 7, &pl.aad_v) || !col_i64(st, 8, &dek_id))
		return MT_ERR_STORE_TAMPERED;
	pl.ward = p->ward;
	pl.bed = p->bed;
	pl.room = p->room;
	/* Only values this store writes; a version-1 row predates the new
	 * columns, so they must hold their defaults (its AAD does not cover
	 * them: anything else is an edit). */
	if ((pl.aad_v != 1 && pl.aad_v != MT_STORE_PATIENT_AAD_V) ||
	    (pl.spo2_scale2 != 0 && pl.spo2_scale2 != 1) || (pl.news2_na != 0 && pl.news2_na != 1) ||
	    (pl.oxygen[0] != 0 && !oxygen_ok(pl.oxygen[0])) ||
	    (pl.acvpu[0] != 0 && !acvpu_ok(pl.acvpu[0])) ||
	    (pl.aad_v == 1 && (pl.room_len != 0 || pl.spo2_scale2 != 0 || pl.news2_na != 0 ||
	                       pl.oxygen[0] != 0 || pl.acvpu[0] != 0)))
		return MT_ERR_STORE_TAMPERED;
	aad_patient(&a, id, dek_id, &pl);
	e = open_row(s, st, PATIENT_IV_COL, dek_id, &a, &pt, &pt_len);
	if (e == MT_OK && !patient_decode(pt, pt_len, pl.aad_v, p))
		e = MT_ERR_STORE_TAMPERED;
	if (pt != NULL) {
		OPENSSL_cleanse(pt, pt_len);
		free(pt);
	}
	if (e != MT_OK) {
		OPENSSL_cleanse(p, sizeof *p);
		return e;
	}
	p->id = id;
	p->spo2_scale2 = pl.spo2_scale2 == 1;
	p->news2_na = pl.news2_na == 1;
	p->oxygen = pl.oxygen[0];
	p->acvpu = pl.acvpu[0];
	return MT_OK;
}

enum mt_err mt_store_patient_get(struct mt_store *s, int64_t id, struct mt_patient *p)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (p != NULL)
		memset(p, 0, sizeof *p);
	if (s == NULL || p == NULL || s->kek == NULL)
		return MT_ERR_ARG;
	if (sqlite3_prepare_v2(s->db, "SELECT " PATIENT_COLS " FROM patients WHERE id = ?", -1,
	                       &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		e = patient_row(s, st, id, p);
	else
		e = rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : step_err(rc);
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_store_patient_find_mrn(struct mt_store *s, const char *mrn, int64_t *id)
{
	struct mt_patient *p;
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_ERR_NOT_FOUND;
	int rc;

	if (id != NULL)
		*id = 0;
	if (s == NULL || mrn == NULL || id == NULL || s->kek == NULL)
		return MT_ERR_ARG;
	p = malloc(sizeof *p);
	if (p == NULL)
		return MT_ERR_NOMEM;
	if (sqlite3_prepare_v2(s->db, "SELECT " PATIENT_COLS ", id FROM patients ORDER BY id", -1,
	                       &st, NULL) != SQLITE_OK) {
		free(p);
		return MT_ERR_STORE_DB;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t pid = sqlite3_column_int64(st, PATIENT_IV_COL + 2);
		enum mt_err pe = patient_row(s, st, pid, p);

		if (pe != MT_OK) {
			e = pe;
			break;
		}
		if (strcmp(p->mrn, mrn) == 0) {
			*id = pid;
			e = MT_OK;
			break;
		}
	}
	if (e == MT_ERR_NOT_FOUND && rc != SQLITE_DONE)
		e = step_err(rc);
	sqlite3_finalize(st);
	OPENSSL_cleanse(p, sizeof *p);
	free(p);
	return e;
}

enum mt_err mt_store_patient_ids(struct mt_store *s, int64_t *ids, size_t cap, size_t *n)
{
	sqlite3_stmt *st = NULL;
	size_t k = 0;
	int rc;

	if (s == NULL || n == NULL || (ids == NULL && cap > 0))
		return MT_ERR_ARG;
	*n = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT id FROM patients ORDER BY id", -1, &st, NULL) !=
	    SQLITE_OK)
		return MT_ERR_STORE_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (ids != NULL && k < cap)
			ids[k] = sqlite3_column_int64(st, 0);
		k++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return step_err(rc);
	*n = k;
	return MT_OK;
}

/* ---- per-patient rules ------------------------------------------------------ */

/* MT_OK when patient `pid` exists, MT_ERR_NOT_FOUND when not. */
static enum mt_err patient_exists(struct mt_store *s, int64_t pid)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e;
	int rc;

	if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM patients WHERE id = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return MT_ERR_STORE_DB;
	sqlite3_bind_int64(st, 1, pid);
	rc = sqlite3_step(st);
	e = rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : step_err(rc);
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_store_rule_add(struct mt_store *s, int64_t patient_id, const char *text,
                              int64_t *id)
{
	sqlite3_stmt *st = NULL;
	int64_t rid = 0;
	enum mt_err e;

	if (id != NULL)
		*id = 0;
	if (s == NULL || patient_id < 1 ||
	    !text_ok(text, MT_STORE_RULE_MAX + 1, MT_STORE_RULE_MAX, false))
		return MT_ERR_ARG;
	e = mt_store_begin(s);
	if (e != MT_OK)
		return e;
	e = patient_exists(s, patient_id);
	if (e == MT_OK &&
	    sqlite3_prepare_v2(s->db,
	                       "INSERT INTO patient_rules(patient_id, rule, created_ms)"
	                       " VALUES(?, ?, ?)",
	                       -1, &st, NULL) != SQLITE_OK)
		e = MT_ERR_STORE_DB;
	if (e == MT_OK) {
		sqlite3_bind_int64(st, 1, patient_id);
		sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (int64_t)now_ms());
		e = step_done(st);
		rid = sqlite3_last_insert_rowid(s->db);
	}
	sqlite3_finalize(st);
	if (e != MT_OK) {
		mt_store_rollback(s);
		return e;
	}
	e = mt_store_commit(s);
	if (e == MT_OK && id != NULL)
		*id = rid;
	return e;
}

enum mt_err mt_store_rule_del(struct mt_store *s, int64_t id, int64_t *patient_id)
{
	sqlite3_stmt *st = NULL;
	int64_t pid = 0;
	enum mt_err e;
	int rc;

	if (patient_id != NULL)
		*patient_id = 0;
	if (s == NULL || id < 1)
		return MT_ERR_ARG;
	e = mt_store_begin(s);
	if (e != MT_OK)
		return e;
	if (sqlite3_prepare_v2(s->db, "SELECT patient_id FROM patient_rules WHERE id = ?", -1, &st,
	                       NULL) != SQLITE_OK) {
		e = MT_ERR_STORE_DB;
	} else {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			pid = sqlite3_column_int64(st, 0);
		e = rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : step_err(rc);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (e == MT_OK &&
	    sqlite3_prepare_v2(s->db, "DELETE FROM patient_rules WHERE id = ?", -1, &st, NULL) !=
	            SQLITE_OK)
		e = MT_ERR_STORE_DB;
	if (e == MT_OK) {
		sqlite3_bind_int64(st, 1, id);
		e = step_done(st);
	}
	sqlite3_finalize(st);
	if (e != MT_OK) {
		mt_store_rollback(s);
		return e;
	}
	e = mt_store_commit(s);
	if (e == MT_OK && patient_id != NULL)
		*patient_id = pid;
	return e;
}

enum mt_err mt_store_rules(struct mt_store *s, int64_t patient_id,
                           enum mt_err (*cb)(void *ctx, const struct mt_patient_rule *r),
                           void *ctx)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc;

	if (s == NULL || cb == NULL || patient_id < 0)
		return MT_ERR_ARG;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT id, patient_id, rule, created_ms FROM patient_rules"
	                       " WHERE ?1 = 0 OR patient_id = ?1 ORDER BY id",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	sqlite3_bind_int64(st, 1, patient_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mt_patient_rule r;
		int64_t created;

		memset(&r, 0, sizeof r);
		if (!col_i64(st, 0, &r.id) || !col_i64(st, 1, &r.patient_id) ||
		    !col_text(st, 2, r.text, MT_STORE_RULE_MAX, NULL) || !col_i64(st, 3, &created) ||
		    created < 0) {
			e = MT_ERR_STORE_DB;
			break;
		}
		r.created_ms = (uint64_t)created;
		e = cb(ctx, &r);
		if (e != MT_OK)
			break;
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = step_err(rc);
	sqlite3_finalize(st);
	return e;
}

/* ---- assignments, listed ------------------------------------------------------ */

enum mt_err mt_store_assignments(struct mt_store *s, const char *dev, int64_t patient_id,
                                 enum mt_err (*cb)(void *ctx, const struct mt_assignment *a),
                                 void *ctx)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc;

	if (s == NULL || cb == NULL || patient_id < 0 ||
	    (dev != NULL && !mt_device_id_valid(dev, strnlen(dev, MT_DEVICE_ID_MAX + 1))))
		return MT_ERR_ARG;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT id, dev, patient_id, since_ms, until_ms FROM assignments"
	                       " WHERE (?1 IS NULL OR dev = ?1) AND (?2 = 0 OR patient_id = ?2)"
	                       " ORDER BY dev, since_ms, id",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	if (dev != NULL)
		sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, patient_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mt_assignment a;
		int64_t since, until = 0;

		memset(&a, 0, sizeof a);
		a.open = sqlite3_column_type(st, 4) == SQLITE_NULL;
		if (!col_i64(st, 0, &a.id) || !col_text(st, 1, a.dev, MT_DEVICE_ID_MAX, NULL) ||
		    !col_i64(st, 2, &a.patient_id) || !col_i64(st, 3, &since) || since < 0 ||
		    (!a.open && (!col_i64(st, 4, &until) || until < since))) {
			e = MT_ERR_STORE_DB;
			break;
		}
		a.since_ms = (uint64_t)since;
		a.until_ms = (uint64_t)until;
		e = cb(ctx, &a);
		if (e != MT_OK)
			break;
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = step_err(rc);
	sqlite3_finalize(st);
	return e;
}
