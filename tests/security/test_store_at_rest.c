/*
 * test_store_at_rest.c — the readings store from the attacker's and the
 * fault's side (threats J04, J05, FI05, FI09; docs/storage.md).
 *
 *   J04  someone with the database files (data.db, its -wal and -shm, a
 *        backup) searches them for a patient's name, MRN, birth date and
 *        for the bytes of a reading: none is there.  A positive control (a
 *        device id, which is stored in the clear) proves the search reads
 *        the real contents.
 *   J05  a DBA edits a row with plain SQL — a ciphertext or IV byte, the
 *        device, counter, DEK id, time, type (also by a value that only
 *        narrowing would hide), certificate, patient; swaps two rows'
 *        ciphertexts; edits a wrapped DEK, a patient's ward or swaps two
 *        patients' identities: each read is MT_ERR_STORE_TAMPERED, and
 *        restoring the row makes it readable again (so the refusal came
 *        from the edit).
 *   FI09 a hub process dies: committed batches survive, a batch in flight
 *        leaves nothing, the database opens clean.  The child is this
 *        program exec'ed afresh (PKCS#11 sessions do not survive fork), it
 *        reports each commit on a pipe — the "receipt" — and is killed
 *        with SIGKILL at a point chosen by the parent; every receipted
 *        counter must be there and no half batch.  The store runs in WAL
 *        mode with synchronous=FULL (asserted), which is what makes a
 *        commit durable against power loss as well (threats.md FI09).
 *   FI05 a full disk (PRAGMA max_page_count, per connection, stands in for
 *        ENOSPC: SQLite reports SQLITE_FULL either way) is a passing
 *        failure: MT_ERR_STORE_FULL, the transaction (readings and window)
 *        gone, nothing stored, and the next commit after space is freed
 *        works.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_store.h"
#include "mt_softhsm.h"
#include "store_int.h"

#define FI09_BATCH 5

static struct mt_softhsm hsm;
static struct mt_kek *kek;
static char kek_uri[512], tmpdir[256], db[320];
static int db_n;

/* The distinctive plaintexts J04 looks for. */
static const char patient_name[] = "Zebedee Quartermain-Test";
static const char patient_mrn[] = "MRN-ZQ-77316502";
static const char patient_birth[] = "1947-11-05";
static const uint8_t reading_marker[] = {0x7e, 0x51, 0xc3, 0x09, 'S', 'p', 'O', '2', '-', '9',
                                         '7', '.', '5', '-', 'Z', 'Q', 0xa8, 0x33, 0x01, 0xfe};

static int group_setup(void **state)
{
	(void)state;
	if (mt_softhsm_init(&hsm, "at-rest", "1234", "5678") != 0)
		return -1;
	if (mt_softhsm_uri(&hsm, "kek", NULL, kek_uri, sizeof kek_uri) != 0 ||
	    mt_key_generate_kek(kek_uri) != MT_OK || mt_kek_open(kek_uri, &kek) != MT_OK)
		return -1;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mt-at-rest-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	char cmd[400];

	(void)state;
	mt_kek_free(kek);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return -1;
	return mt_softhsm_cleanup(&hsm);
}

static int setup(void **state)
{
	(void)state;
	snprintf(db, sizeof db, "%s/data-%d.db", tmpdir, ++db_n);
	return 0;
}

static struct mt_store *open_store(void)
{
	struct mt_store *s = NULL;

	assert_int_equal(mt_store_open(db, kek, &s), MT_OK);
	return s;
}

static void fill_reading(struct mt_store_reading *r, uint8_t *sign1, size_t len, const char *dev,
                         uint64_t ctr)
{
	memset(r, 0, sizeof *r);
	for (size_t i = 0; i < len; i++)
		sign1[i] = (uint8_t)(i * 7 + ctr);
	r->dev = dev;
	r->ctr = ctr;
	r->epoch = 3;
	r->typ = 1;
	r->ts_ms = 1764300000000 + ctr;
	r->received_ms = 1764300000100 + ctr;
	r->cert_serial = "6a01b2c3d4e5f60718293a4b5c6d7e8f";
	r->sign1 = sign1;
	r->sign1_len = len;
}

static int64_t put(struct mt_store *s, const char *dev, uint64_t ctr)
{
	struct mt_store_reading r;
	uint8_t sign1[96];
	int64_t id = 0;

	fill_reading(&r, sign1, sizeof sign1, dev, ctr);
	assert_int_equal(mt_store_reading_put(s, &r, &id), MT_OK);
	return id;
}

static void add_patient(struct mt_store *s, const char *name, const char *mrn,
                        const char *birth, int64_t *id)
{
	struct mt_patient p;

	memset(&p, 0, sizeof p);
	snprintf(p.name, sizeof p.name, "%s", name);
	snprintf(p.mrn, sizeof p.mrn, "%s", mrn);
	snprintf(p.birth_date, sizeof p.birth_date, "%s", birth);
	snprintf(p.ward, sizeof p.ward, "%s", "ICU");
	snprintf(p.bed, sizeof p.bed, "%s", "4");
	assert_int_equal(mt_store_patient_add(s, &p, id), MT_OK);
}

/* ---- J04 ----------------------------------------------------------------- */

/* Whether `needle` occurs in file path (a missing file holds nothing). */
static bool file_holds(const char *path, const void *needle, size_t n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	size_t len, cap = 64u << 20;
	bool found = false;

	if (f == NULL)
		return false;
	buf = malloc(cap);
	assert_non_null(buf);
	len = fread(buf, 1, cap, f);
	fclose(f);
	for (size_t i = 0; n <= len && i + n <= len && !found; i++)
		found = memcmp(buf + i, needle, n) == 0;
	free(buf);
	return found;
}

/* Search data.db, -wal and -shm for every plaintext; and for the control. */
static void scan_files(const char *when)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	const char *dev = "zq-monitor-17";
	bool control = false;

	for (size_t i = 0; i < 3; i++) {
		char p[400];

		snprintf(p, sizeof p, "%s%s", db, suffix[i]);
		if (file_holds(p, patient_name, strlen(patient_name)) ||
		    file_holds(p, "Quartermain", 11) || file_holds(p, patient_mrn, strlen(patient_mrn)) ||
		    file_holds(p, "77316502", 8) || file_holds(p, patient_birth, strlen(patient_birth)) ||
		    file_holds(p, reading_marker, sizeof reading_marker) ||
		    file_holds(p, reading_marker + 4, 12))
			fail_msg("%s: %s holds a plaintext", when, p);
		control = control || file_holds(p, dev, strlen(dev));
	}
	if (!control)
		fail_msg("%s: the scan found not even the device id stored in the clear", when);
}

static void J04_db_files_hold_no_plaintext(void **state)
{
	struct mt_store *s = open_store();
	struct mt_store_reading r;
	uint8_t sign1[512];
	int64_t pid = 0, rid = 0, aid = 0;
	struct mt_patient back;

	(void)state;
	add_patient(s, patient_name, patient_mrn, patient_birth, &pid);
	assert_int_equal(mt_store_assign(s, "zq-monitor-17", pid, 1000), MT_OK);
	assert_int_equal(mt_store_begin(s), MT_OK);
	for (uint64_t ctr = 1; ctr <= 20; ctr++) {
		fill_reading(&r, sign1, sizeof sign1, "zq-monitor-17", ctr);
		/* the marker at the start, in the middle and at the end */
		memcpy(sign1, reading_marker, sizeof reading_marker);
		memcpy(sign1 + 200, reading_marker, sizeof reading_marker);
		memcpy(sign1 + sizeof sign1 - sizeof reading_marker, reading_marker,
		       sizeof reading_marker);
		assert_int_equal(mt_store_reading_put(s, &r, &rid), MT_OK);
	}
	assert_int_equal(mt_store_alert_put(s, "zq-monitor-17", 21, 1764300000000, 1764300000001,
	                                    reading_marker, sizeof reading_marker, &aid),
	                 MT_OK);
	assert_int_equal(mt_store_commit(s), MT_OK);
	/* It is all there for the key holder... */
	assert_int_equal(mt_store_patient_get(s, pid, &back), MT_OK);
	assert_string_equal(back.name, patient_name);
	{
		struct mt_store_row row;

		assert_int_equal(mt_store_reading_get(s, rid, &row), MT_OK);
		assert_memory_equal(row.sign1, reading_marker, sizeof reading_marker);
		assert_int_equal(row.patient_id, pid);
		mt_store_row_clear(&row);
	}
	/* ... and nowhere in the files: while open (the WAL holds the rows) ... */
	scan_files("open");
	mt_store_close(s);
	/* ... and after close (checkpointed into data.db). */
	scan_files("closed");
}

/* ---- J05 ----------------------------------------------------------------- */

static sqlite3 *raw_open(void)
{
	sqlite3 *h = NULL;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	sqlite3_busy_timeout(h, 5000);
	return h;
}

/* Run every statement of `sql` with ?1 = x and ?2 = y where they occur. */
static void run_sql(sqlite3 *h, const char *sql, int64_t x, int64_t y)
{
	const char *tail = sql;

	while (tail != NULL && *tail != '\0') {
		sqlite3_stmt *st = NULL;
		const char *next = NULL;
		int rc;

		if (sqlite3_prepare_v2(h, tail, -1, &st, &next) != SQLITE_OK)
			fail_msg("%s: %s", tail, sqlite3_errmsg(h));
		if (st == NULL) /* only blanks left */
			break;
		if (sqlite3_bind_parameter_count(st) >= 1)
			sqlite3_bind_int64(st, 1, x);
		if (sqlite3_bind_parameter_count(st) >= 2)
			sqlite3_bind_int64(st, 2, y);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		if (rc != SQLITE_DONE)
			fail_msg("%s: %s", tail, sqlite3_errmsg(h));
		sqlite3_finalize(st);
		tail = next;
	}
}

/* Flip one bit of byte `at` of the blob column `col` of readings row `id`. */
static void flip(sqlite3 *h, const char *col, int64_t id, int at)
{
	char sql[128];
	sqlite3_stmt *st = NULL;
	uint8_t b[70000];
	int n;

	snprintf(sql, sizeof sql, "SELECT %s FROM readings WHERE id = ?1", col);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_bytes(st, 0);
	assert_true(n > at && (size_t)n <= sizeof b);
	memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
	sqlite3_finalize(st);
	b[at] ^= 0x10;
	snprintf(sql, sizeof sql, "UPDATE readings SET %s = ?2 WHERE id = ?1", col);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_blob(st, 2, b, n, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static enum mt_err read_reading(int64_t id)
{
	struct mt_store *s = open_store(); /* fresh: no DEK cached */
	struct mt_store_row row;
	enum mt_err e = mt_store_reading_get(s, id, &row);

	mt_store_row_clear(&row);
	mt_store_close(s);
	return e;
}

static enum mt_err read_patient(int64_t id)
{
	struct mt_store *s = open_store();
	struct mt_patient p;
	enum mt_err e = mt_store_patient_get(s, id, &p);

	mt_store_close(s);
	return e;
}

#define RESTORE_READINGS "DELETE FROM readings; INSERT INTO readings SELECT * FROM keep"

/* After an edit: refused; after restoring: readable again. */
static void expect_tampered_then_restore(sqlite3 *h, int64_t id, const char *what)
{
	if (read_reading(id) != MT_ERR_STORE_TAMPERED)
		fail_msg("reading %lld not refused after: %s", (long long)id, what);
	run_sql(h, RESTORE_READINGS, 0, 0);
	if (read_reading(id) != MT_OK)
		fail_msg("reading %lld not readable after undoing: %s", (long long)id, what);
}

static void J05_edited_row_is_tampered(void **state)
{
	static const char *const edits[] = {
	        /* the row's plain columns (?1 the row, ?2 another patient) */
	        "UPDATE readings SET dev = 'dev-2' WHERE id = ?1",
	        "UPDATE readings SET dev = 'dev-1' || char(0) || 'x' WHERE id = ?1",
	        "UPDATE readings SET ctr = ctr + 100 WHERE id = ?1",
	        "UPDATE readings SET dek_id = (SELECT dek_id FROM keep WHERE id <> ?1) WHERE id = ?1",
	        "UPDATE readings SET ts_ms = ts_ms - 3600000 WHERE id = ?1",
	        "UPDATE readings SET received_ms = received_ms + 1 WHERE id = ?1",
	        "UPDATE readings SET typ = typ + 256 WHERE id = ?1", /* 257 narrows to 1 */
	        "UPDATE readings SET epoch = epoch + 1 WHERE id = ?1",
	        "UPDATE readings SET flags = 1 WHERE id = ?1",
	        "UPDATE readings SET cert_serial = 'ff' WHERE id = ?1",
	        "UPDATE readings SET patient_id = ?2 WHERE id = ?1",
	        "UPDATE readings SET iv = x'000000000000000000000000' WHERE id = ?1",
	        "UPDATE readings SET ct = substr(ct, 1, length(ct) - 1) WHERE id = ?1",
	};
	struct mt_store *s = open_store();
	int64_t a, b, p1 = 0, p2 = 0;
	sqlite3 *h;

	(void)state;
	/* One DEK per row, so that a row can be pointed at another real DEK. */
	mt_store_set_dek_limits(s, 1, 0);
	add_patient(s, "Patient One", "MRN-1", "", &p1);
	add_patient(s, "Patient Two", "MRN-2", "", &p2);
	assert_int_equal(mt_store_assign(s, "dev-1", p1, 0), MT_OK);
	assert_int_equal(mt_store_begin(s), MT_OK);
	a = put(s, "dev-1", 10);
	b = put(s, "dev-1", 11);
	assert_int_equal(mt_store_commit(s), MT_OK);
	mt_store_close(s);
	assert_int_equal(read_reading(a), MT_OK);
	assert_int_equal(read_reading(b), MT_OK);

	h = raw_open();
	run_sql(h, "CREATE TEMP TABLE keep AS SELECT * FROM readings;"
	           "CREATE TEMP TABLE keep_p AS SELECT * FROM patients;"
	           "CREATE TEMP TABLE keep_d AS SELECT * FROM deks",
	        0, 0);
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		run_sql(h, edits[i], a, p2);
		expect_tampered_then_restore(h, a, edits[i]);
	}
	/* One bit of the ciphertext (first, middle, tag) or of the IV. */
	static const struct {
		const char *col;
		int at;
	} bits[] = {{"ct", 0}, {"ct", 50}, {"ct", 96 + 15}, {"iv", 0}, {"iv", 11}};
	for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
		flip(h, bits[i].col, a, bits[i].at);
		expect_tampered_then_restore(h, a, bits[i].col);
	}
	/* Swap the two rows' (iv, ct): each fails. */
	run_sql(h,
	        "UPDATE readings SET iv = (SELECT iv FROM keep WHERE id = ?2),"
	        " ct = (SELECT ct FROM keep WHERE id = ?2) WHERE id = ?1;"
	        "UPDATE readings SET iv = (SELECT iv FROM keep WHERE id = ?1),"
	        " ct = (SELECT ct FROM keep WHERE id = ?1) WHERE id = ?2",
	        a, b);
	assert_int_equal(read_reading(b), MT_ERR_STORE_TAMPERED);
	expect_tampered_then_restore(h, a, "swapped ciphertexts");
	assert_int_equal(read_reading(b), MT_OK);

	/* A wrapped DEK edited: what it encrypted no longer reads. */
	run_sql(h,
	        "UPDATE deks SET wrapped = x'00' || substr(wrapped, 2)"
	        " WHERE id = (SELECT dek_id FROM readings WHERE id = ?1)",
	        a, 0);
	assert_int_equal(read_reading(a), MT_ERR_STORE_TAMPERED);
	assert_int_equal(read_reading(b), MT_OK); /* its own DEK */
	run_sql(h, "DELETE FROM deks; INSERT INTO deks SELECT * FROM keep_d", 0, 0);
	assert_int_equal(read_reading(a), MT_OK);

	/* Patients: a moved bed, a swapped identity. */
	assert_int_equal(read_patient(p1), MT_OK);
	run_sql(h, "UPDATE patients SET bed = '5' WHERE id = ?1", p1, 0);
	assert_int_equal(read_patient(p1), MT_ERR_STORE_TAMPERED);
	run_sql(h, "DELETE FROM patients; INSERT INTO patients SELECT * FROM keep_p", 0, 0);
	assert_int_equal(read_patient(p1), MT_OK);
	run_sql(h,
	        "UPDATE patients SET dek_id = (SELECT dek_id FROM keep_p WHERE id = ?2),"
	        " iv = (SELECT iv FROM keep_p WHERE id = ?2),"
	        " ct = (SELECT ct FROM keep_p WHERE id = ?2) WHERE id = ?1",
	        p1, p2);
	assert_int_equal(read_patient(p1), MT_ERR_STORE_TAMPERED);
	assert_int_equal(read_patient(p2), MT_OK);
	run_sql(h, "DELETE FROM patients; INSERT INTO patients SELECT * FROM keep_p", 0, 0);
	assert_int_equal(read_patient(p1), MT_OK);
	sqlite3_close(h);
}

/* ---- FI09 ----------------------------------------------------------------- */

/* The child: `commit` commits batches of FI09_BATCH readings of `dev`
 * (counters from 0), writing the last counter of each batch to fd after
 * its commit returned, until killed or `limit` batches; then _exit
 * without closing.  `pending` writes one batch, reports "p" and waits to
 * be killed inside the transaction. */
static int fi09_child(const char *mode, const char *path, const char *uri, const char *dev,
                      int fd, int limit)
{
	struct mt_kek *k = NULL;
	struct mt_store *s = NULL;
	uint64_t ctr = 0;

	if (mt_kek_open(uri, &k) != MT_OK || mt_store_open(path, k, &s) != MT_OK)
		return 3;
	if (strcmp(mode, "pending") == 0) {
		uint64_t n = 0;

		if (mt_store_count(s, dev, &n) != MT_OK || mt_store_begin(s) != MT_OK)
			return 4;
		for (uint64_t i = 0; i < FI09_BATCH; i++) {
			struct mt_store_reading r;
			uint8_t sign1[96];

			fill_reading(&r, sign1, sizeof sign1, dev, n + i);
			if (mt_store_reading_put(s, &r, NULL) != MT_OK)
				return 5;
		}
		if (write(fd, "p", 1) != 1)
			return 6;
		for (;;)
			pause();
	}
	for (int b = 0; b < limit; b++) {
		struct mt_replay w;

		if (mt_store_begin(s) != MT_OK || mt_store_window_load(s, dev, &w) != MT_OK)
			return 7;
		for (int i = 0; i < FI09_BATCH; i++, ctr++) {
			struct mt_store_reading r;
			uint8_t sign1[96];

			fill_reading(&r, sign1, sizeof sign1, dev, ctr);
			if (mt_store_reading_put(s, &r, NULL) != MT_OK)
				return 8;
			if (mt_replay_check(&w, ctr) == MT_REPLAY_NEW)
				mt_replay_mark(&w, ctr);
		}
		if (mt_store_window_save(s, dev, &w) != MT_OK || mt_store_commit(s) != MT_OK)
			return 9;
		/* the receipt: only now may the device forget the batch */
		if (dprintf(fd, "%llu\n", (unsigned long long)(ctr - 1)) < 0)
			return 10;
	}
	_exit(0); /* no close: the process just ends */
}

/* Run the child; kill it with SIGKILL after it reported `kill_after`
 * receipts (0: let it finish).  Returns the highest receipted counter + 1
 * (0 when none), or for `pending`, 1 when it reported its open batch. */
static uint64_t fi09_run(const char *mode, const char *dev, int kill_after, int limit)
{
	char fd_s[16], limit_s[16], line[64];
	int p[2], status, got = 0;
	uint64_t acked = 0;
	size_t used = 0;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	snprintf(fd_s, sizeof fd_s, "%d", p[1]);
	snprintf(limit_s, sizeof limit_s, "%d", limit);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *const argv[] = {"test_store_at_rest", "--fi09-child", (char *)mode, db, kek_uri,
		                      (char *)dev, fd_s, limit_s, NULL};

		close(p[0]);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		char c;
		ssize_t n = read(p[0], &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (c == 'p') {
			got = 1;
			break;
		}
		if (c != '\n') {
			if (used + 1 < sizeof line)
				line[used++] = c;
			continue;
		}
		line[used] = '\0';
		used = 0;
		acked = strtoull(line, NULL, 10) + 1;
		if (kill_after > 0 && ++got == kill_after)
			break;
	}
	if (kill_after > 0 || strcmp(mode, "pending") == 0)
		kill(pid, SIGKILL);
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (kill_after == 0 && strcmp(mode, "pending") != 0) {
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	} else if (strcmp(mode, "pending") == 0) {
		assert_int_equal(got, 1);
		return 1;
	}
	return acked;
}

static void expect_clean_and_complete(const char *dev, uint64_t acked)
{
	struct mt_store *s = open_store();
	sqlite3_stmt *st = NULL;
	uint64_t *ctrs, n = 0;
	size_t k = 0;
	struct mt_replay w;

	assert_int_equal(sqlite3_prepare_v2(mt_store__sqlite(s), "PRAGMA integrity_check", -1, &st,
	                                    NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	assert_int_equal(mt_store_count(s, dev, &n), MT_OK);
	/* every receipted reading, and only whole batches */
	assert_true(n >= acked);
	assert_int_equal(n % FI09_BATCH, 0);
	ctrs = calloc(n ? n : 1, sizeof *ctrs);
	assert_non_null(ctrs);
	assert_int_equal(mt_store_counters(s, dev, ctrs, n, &k), MT_OK);
	assert_int_equal(k, n);
	for (size_t i = 0; i < k; i++)
		assert_int_equal(ctrs[i], i);
	free(ctrs);
	/* the window went with its data */
	assert_int_equal(mt_store_window_load(s, dev, &w), MT_OK);
	if (n > 0)
		assert_int_equal(w.top, n - 1);
	else
		assert_int_equal(w.top, MT_REPLAY_EMPTY);
	mt_store_close(s);
}

static void FI09_committed_rows_survive_reopen(void **state)
{
	struct mt_store *s = open_store();
	sqlite3_stmt *st = NULL;
	uint64_t acked, n = 0;

	(void)state;
	/* The store is WAL with synchronous=FULL (2): a commit is fsync'ed. */
	assert_int_equal(sqlite3_prepare_v2(mt_store__sqlite(s), "PRAGMA journal_mode", -1, &st,
	                                    NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(mt_store__sqlite(s), "PRAGMA synchronous", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	sqlite3_finalize(st);
	mt_store_close(s);

	/* A process that commits and ends without closing. */
	acked = fi09_run("commit", "fi-a", 0, 4);
	assert_int_equal(acked, 4 * FI09_BATCH);
	expect_clean_and_complete("fi-a", acked);

	/* Killed at three different points of a commit loop. */
	for (int kill_after = 1; kill_after <= 3; kill_after++) {
		char dev[16];

		snprintf(dev, sizeof dev, "fi-k%d", kill_after);
		acked = fi09_run("commit", dev, kill_after * 7, 100000);
		assert_true(acked >= (uint64_t)kill_after * 7 * FI09_BATCH);
		expect_clean_and_complete(dev, acked);
	}

	/* Killed inside a transaction: none of it. */
	assert_int_equal(fi09_run("pending", "fi-a", 0, 0), 1);
	expect_clean_and_complete("fi-a", 4 * FI09_BATCH);
	s = open_store();
	assert_int_equal(mt_store_count(s, "fi-a", &n), MT_OK);
	assert_int_equal(n, 4 * FI09_BATCH);
	mt_store_close(s);
}

/* ---- FI05 ----------------------------------------------------------------- */

static void FI05_full_disk_is_passing_failure(void **state)
{
	struct mt_store *s = open_store();
	struct mt_store_reading r;
	struct mt_replay w;
	static uint8_t big[60000];
	uint64_t n = 0;
	int64_t pages, id = 0;
	char sql[96];

	(void)state;
	assert_int_equal(mt_store_begin(s), MT_OK);
	put(s, "dev-1", 1);
	mt_replay_init(&w);
	mt_replay_mark(&w, 1);
	assert_int_equal(mt_store_window_save(s, "dev-1", &w), MT_OK);
	assert_int_equal(mt_store_commit(s), MT_OK);
	{
		sqlite3_stmt *st = NULL;

		assert_int_equal(sqlite3_prepare_v2(mt_store__sqlite(s), "PRAGMA page_count", -1, &st,
		                                    NULL),
		                 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		pages = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	/* The disk is full now: not one page more. */
	snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages);
	assert_int_equal(sqlite3_exec(mt_store__sqlite(s), sql, NULL, NULL, NULL), SQLITE_OK);

	assert_int_equal(mt_store_begin(s), MT_OK);
	mt_replay_mark(&w, 2);
	assert_int_equal(mt_store_window_save(s, "dev-1", &w), MT_OK);
	fill_reading(&r, big, sizeof big, "dev-1", 2);
	assert_int_equal(mt_store_reading_put(s, &r, &id), MT_ERR_STORE_FULL);
	/* The transaction is gone: later calls say so, commit too. */
	fill_reading(&r, big, 50, "dev-1", 3);
	assert_int_equal(mt_store_reading_put(s, &r, &id), MT_ERR_STORE_FULL);
	assert_int_equal(mt_store_window_save(s, "dev-1", &w), MT_ERR_STORE_FULL);
	assert_int_equal(mt_store_commit(s), MT_ERR_STORE_FULL);
	/* Nothing of it stored, the window as before, no corruption. */
	assert_int_equal(mt_store_count(s, "dev-1", &n), MT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(mt_store_window_load(s, "dev-1", &w), MT_OK);
	assert_int_equal(w.top, 1);

	/* Space freed: the device sends again, and it is stored. */
	assert_int_equal(sqlite3_exec(mt_store__sqlite(s), "PRAGMA max_page_count = 1073741823",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(mt_store_begin(s), MT_OK);
	mt_replay_mark(&w, 2);
	assert_int_equal(mt_store_window_save(s, "dev-1", &w), MT_OK);
	fill_reading(&r, big, sizeof big, "dev-1", 2);
	assert_int_equal(mt_store_reading_put(s, &r, &id), MT_OK);
	assert_int_equal(mt_store_commit(s), MT_OK);
	assert_int_equal(mt_store_count(s, "dev-1", &n), MT_OK);
	assert_int_equal(n, 2);
	{
		struct mt_store_row row;

		assert_int_equal(mt_store_reading_get(s, id, &row), MT_OK);
		assert_int_equal(row.sign1_len, sizeof big);
		assert_memory_equal(row.sign1, big, sizeof big);
		mt_store_row_clear(&row);
	}
	mt_store_close(s);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(J04_db_files_hold_no_plaintext, setup),
	        cmocka_unit_test_setup(J05_edited_row_is_tampered, setup),
	        cmocka_unit_test_setup(FI09_committed_rows_survive_reopen, setup),
	        cmocka_unit_test_setup(FI05_full_disk_is_passing_failure, setup),
	};

	if (argc == 8 && strcmp(argv[1], "--fi09-child") == 0)
		return fi09_child(argv[2], argv[3], argv[4], argv[5], (int)strtol(argv[6], NULL, 10),
		                  (int)strtol(argv[7], NULL, 10));
	if (!mt_softhsm_available())
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
