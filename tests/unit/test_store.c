/*
 * test_store.c — the readings store (mt_store.h, src/core/store.c): what
 * the hub's ingest relies on, one property per test.
 *
 *   - a reading and an alert come back exactly as put, with the row's
 *     columns, and the reading is tied to the device's patient at its ts;
 *   - a (dev, ctr) already stored is MT_ERR_PKT_DUPLICATE, changes nothing
 *     and leaves the transaction usable;
 *   - the anti-replay window is written in the transaction of its readings:
 *     a rollback discards both, a commit keeps both (protocol §5, A13);
 *   - counts and counter lists per device, ascending, with the total;
 *   - patients: add, read back decrypted, refusals of bad fields;
 *     assignments over time, and their lookup at a time;
 *   - data keys rotate after N rows and after their age; a DEK made in a
 *     transaction that rolled back is never used afterwards;
 *   - closing and reopening keeps everything;
 *   - a store opened without the KEK counts and lists, but neither reads
 *     ciphertext nor writes.
 *
 * Each test gets a fresh database in a private temporary directory; the
 * KEK lives in a SoftHSM2 token made once for the file (tests/support).
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_store.h"
#include "mt_softhsm.h"
#include "store_int.h"

static struct mt_softhsm hsm;
static struct mt_kek *kek;
static char tmpdir[256], db[320];
static int db_n;

static int group_setup(void **state)
{
	char uri[512];

	(void)state;
	if (mt_softhsm_init(&hsm, "store-test", "1234", "5678") != 0)
		return -1;
	if (mt_softhsm_uri(&hsm, "kek", NULL, uri, sizeof uri) != 0 ||
	    mt_key_generate_kek(uri) != MT_OK || mt_kek_open(uri, &kek) != MT_OK)
		return -1;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mt-store-XXXXXX");
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

/* A fresh database path for each test. */
static int setup(void **state)
{
	(void)state;
	snprintf(db, sizeof db, "%s/data-%d.db", tmpdir, ++db_n);
	return 0;
}

static struct mt_store *open_store(struct mt_kek *k)
{
	struct mt_store *s = NULL;

	assert_int_equal(mt_store_open(db, k, &s), MT_OK);
	assert_non_null(s);
	return s;
}

/* A reading of `dev` with counter `ctr`: its "Sign1" is recognisable
 * bytes (the store does not interpret them; test_store_verify does). */
struct reading {
	struct mt_store_reading r;
	uint8_t sign1[64];
};

static void make_reading(struct reading *x, const char *dev, uint64_t ctr, uint64_t ts)
{
	memset(x, 0, sizeof *x);
	for (size_t i = 0; i < sizeof x->sign1; i++)
		x->sign1[i] = (uint8_t)(ctr * 31 + i);
	x->r.dev = dev;
	x->r.ctr = ctr;
	x->r.epoch = 7;
	x->r.typ = 1;
	x->r.ts_ms = ts;
	x->r.received_ms = ts + 250;
	x->r.flags = MT_STORE_STALE;
	x->r.cert_serial = "4f3c2a19";
	x->r.sign1 = x->sign1;
	x->r.sign1_len = sizeof x->sign1;
}

static int64_t put_one(struct mt_store *s, const char *dev, uint64_t ctr, uint64_t ts)
{
	struct reading x;
	int64_t id = 0;

	make_reading(&x, dev, ctr, ts);
	assert_int_equal(mt_store_reading_put(s, &x.r, &id), MT_OK);
	assert_true(id > 0);
	return id;
}

static void expect_reading(struct mt_store *s, int64_t id, const char *dev, uint64_t ctr,
                           uint64_t ts)
{
	struct mt_store_row row;
	struct reading want;

	make_reading(&want, dev, ctr, ts);
	assert_int_equal(mt_store_reading_get(s, id, &row), MT_OK);
	assert_int_equal(row.id, id);
	assert_string_equal(row.dev, dev);
	assert_int_equal(row.ctr, ctr);
	assert_int_equal(row.epoch, 7);
	assert_int_equal(row.typ, 1);
	assert_int_equal(row.ts_ms, ts);
	assert_int_equal(row.received_ms, ts + 250);
	assert_int_equal(row.flags, MT_STORE_STALE);
	assert_string_equal(row.cert_serial, "4f3c2a19");
	assert_int_equal(row.sign1_len, sizeof want.sign1);
	assert_memory_equal(row.sign1, want.sign1, sizeof want.sign1);
	mt_store_row_clear(&row);
	assert_null(row.sign1);
}

static int64_t sql_int(struct mt_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(mt_store__sqlite(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* ---- readings ------------------------------------------------------------ */

static void reading_and_alert_round_trip(void **state)
{
	static const uint8_t alert_msg[] = {0xa4, 0x01, 0x65, 'd', 'e', 'v', '-', '1', 0x02, 0x09};
	struct mt_store_alert_row arow;
	struct mt_store *s = open_store(kek);
	int64_t id1, id2, aid = 0;

	(void)state;
	assert_int_equal(mt_store_begin(s), MT_OK);
	id1 = put_one(s, "dev-1", 5, 1764300000000);
	id2 = put_one(s, "dev-1", 6, 1764300001000);
	assert_int_equal(mt_store_alert_put(s, "dev-1", 4, 1764299999000, 1764299999100, alert_msg,
	                                    sizeof alert_msg, &aid),
	                 MT_OK);
	assert_int_equal(mt_store_commit(s), MT_OK);
	assert_true(id2 > id1);
	expect_reading(s, id1, "dev-1", 5, 1764300000000);
	expect_reading(s, id2, "dev-1", 6, 1764300001000);
	assert_int_equal(mt_store_alert_get(s, aid, &arow), MT_OK);
	assert_string_equal(arow.dev, "dev-1");
	assert_int_equal(arow.ctr, 4);
	assert_int_equal(arow.ts_ms, 1764299999000);
	assert_int_equal(arow.received_ms, 1764299999100);
	assert_int_equal(arow.patient_id, 0);
	assert_int_equal(arow.msg_len, sizeof alert_msg);
	assert_memory_equal(arow.msg, alert_msg, sizeof alert_msg);
	mt_store_alert_row_clear(&arow);
	/* Not there: not found; the ciphertext is not the plaintext. */
	{
		struct mt_store_row row;

		assert_int_equal(mt_store_reading_get(s, id2 + 100, &row), MT_ERR_NOT_FOUND);
		assert_int_equal(sql_int(s, "SELECT length(ct) FROM readings LIMIT 1"), 64 + 16);
	}
	mt_store_close(s);
}

static void bad_readings_refused(void **state)
{
	struct mt_store *s = open_store(kek);
	struct reading x;

	(void)state;
	make_reading(&x, "dev-1", 1, 1000);
	/* Outside a transaction. */
	assert_int_equal(mt_store_reading_put(s, &x.r, NULL), MT_ERR_ARG);
	assert_int_equal(mt_store_begin(s), MT_OK);
	assert_int_equal(mt_store_begin(s), MT_ERR_ARG); /* no nesting */
	x.r.dev = "bad id!";
	assert_int_equal(mt_store_reading_put(s, &x.r, NULL), MT_ERR_ARG);
	x.r.dev = "dev-1";
	x.r.ctr = UINT64_C(1) << 63;
	assert_int_equal(mt_store_reading_put(s, &x.r, NULL), MT_ERR_ARG);
	x.r.ctr = 1;
	x.r.typ = 5;
	assert_int_equal(mt_store_reading_put(s, &x.r, NULL), MT_ERR_ARG);
	x.r.typ = 1;
	x.r.cert_serial = "4F3C"; /* upper case: not how the registry writes serials */
	assert_int_equal(mt_store_reading_put(s, &x.r, NULL), MT_ERR_ARG);
	x.r.cert_serial = "4f3c";
	x.r.sign1_len = 0;
	assert_int_equal(mt_store_reading_put(s, &x.r, NULL), MT_ERR_ARG);
	x.r.sign1_len = sizeof x.sign1;
	assert_int_equal(mt_store_reading_put(s, &x.r, NULL), MT_OK);
	assert_int_equal(mt_store_commit(s), MT_OK);
	/* Commit without a transaction is an error, not a silent success. */
	assert_int_equal(mt_store_commit(s), MT_ERR_STORE_DB);
	{
		uint64_t n = 0;

		assert_int_equal(mt_store_count(s, NULL, &n), MT_OK);
		assert_int_equal(n, 1);
	}
	mt_store_close(s);
}

static void duplicate_changes_nothing(void **state)
{
	struct mt_store *s = open_store(kek);
	struct mt_store_row row;
	struct reading x;
	uint64_t n = 0;
	int64_t id, id2 = 0, other = -1;

	(void)state;
	assert_int_equal(mt_store_begin(s), MT_OK);
	id = put_one(s, "dev-1", 42, 5000);
	assert_int_equal(mt_store_commit(s), MT_OK);

	assert_int_equal(mt_store_begin(s), MT_OK);
	make_reading(&x, "dev-1", 42, 9000);
	memset(x.sign1, 0xee, sizeof x.sign1);
	assert_int_equal(mt_store_reading_put(s, &x.r, &other), MT_ERR_PKT_DUPLICATE);
	assert_int_equal(other, -1); /* no id handed out */
	/* The transaction goes on: another counter of the batch is stored. */
	make_reading(&x, "dev-1", 43, 9000);
	assert_int_equal(mt_store_reading_put(s, &x.r, &id2), MT_OK);
	assert_int_equal(mt_store_commit(s), MT_OK);

	assert_int_equal(mt_store_count(s, "dev-1", &n), MT_OK);
	assert_int_equal(n, 2);
	expect_reading(s, id, "dev-1", 42, 5000); /* the first one, untouched */
	assert_int_equal(mt_store_reading_get(s, id2, &row), MT_OK);
	assert_int_equal(row.ctr, 43);
	mt_store_row_clear(&row);
	/* The same counter of another device is not a duplicate. */
	assert_int_equal(mt_store_begin(s), MT_OK);
	put_one(s, "dev-2", 42, 5000);
	assert_int_equal(mt_store_commit(s), MT_OK);
	mt_store_close(s);
}

/* A13: the window and its readings commit, or roll back, together. */
static void window_saved_in_the_transaction(void **state)
{
	uint8_t saved[MT_REPLAY_STATE_LEN], back[MT_REPLAY_STATE_LEN];
	struct mt_store *s = open_store(kek);
	struct mt_replay w;
	uint64_t n = 99;

	(void)state;
	assert_int_equal(mt_store_begin(s), MT_OK);
	assert_int_equal(mt_store_window_load(s, "dev-1", &w), MT_OK);
	assert_int_equal(w.top, MT_REPLAY_EMPTY);
	assert_int_equal(mt_replay_check(&w, 10), MT_REPLAY_NEW);
	mt_replay_mark(&w, 10);
	assert_int_equal(mt_store_window_save(s, "dev-1", &w), MT_OK);
	put_one(s, "dev-1", 10, 1000);
	mt_store_rollback(s);
	assert_int_equal(mt_store_count(s, "dev-1", &n), MT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(mt_store_window_load(s, "dev-1", &w), MT_OK);
	assert_int_equal(w.top, MT_REPLAY_EMPTY);

	/* Committed: both there, also for another connection and after reopen. */
	assert_int_equal(mt_store_begin(s), MT_OK);
	assert_int_equal(mt_store_window_load(s, "dev-1", &w), MT_OK);
	mt_replay_mark(&w, 10);
	mt_replay_mark(&w, 12);
	assert_int_equal(mt_store_window_save(s, "dev-1", &w), MT_OK);
	put_one(s, "dev-1", 10, 1000);
	put_one(s, "dev-1", 12, 1200);
	assert_int_equal(mt_store_commit(s), MT_OK);
	mt_replay_save(&w, saved);
	{
		struct mt_store *reader = open_store(NULL);

		assert_int_equal(mt_store_window_load(reader, "dev-1", &w), MT_OK);
		mt_replay_save(&w, back);
		assert_memory_equal(back, saved, sizeof saved);
		assert_int_equal(mt_replay_check(&w, 12), MT_REPLAY_DUPLICATE);
		assert_int_equal(mt_replay_check(&w, 11), MT_REPLAY_NEW);
		mt_store_close(reader);
	}
	mt_store_close(s);
	s = open_store(kek);
	assert_int_equal(mt_store_window_load(s, "dev-1", &w), MT_OK);
	mt_replay_save(&w, back);
	assert_memory_equal(back, saved, sizeof saved);
	assert_int_equal(mt_store_count(s, "dev-1", &n), MT_OK);
	assert_int_equal(n, 2);
	/* Saving needs the transaction. */
	assert_int_equal(mt_store_window_save(s, "dev-1", &w), MT_ERR_ARG);
	mt_store_close(s);
}

static void counters_listed_ascending(void **state)
{
	static const uint64_t put_a[] = {7, 3, 1000000, 4, 0};
	struct mt_store *s = open_store(kek);
	uint64_t ctrs[8], n64 = 0;
	size_t n = 0;

	(void)state;
	assert_int_equal(mt_store_begin(s), MT_OK);
	for (size_t i = 0; i < sizeof put_a / sizeof put_a[0]; i++)
		put_one(s, "dev-a", put_a[i], 1000 + i);
	put_one(s, "dev-b", 5, 1000);
	put_one(s, "dev-b", 2, 1000);
	assert_int_equal(mt_store_commit(s), MT_OK);

	assert_int_equal(mt_store_counters(s, "dev-a", ctrs, 8, &n), MT_OK);
	assert_int_equal(n, 5);
	assert_int_equal(ctrs[0], 0);
	assert_int_equal(ctrs[1], 3);
	assert_int_equal(ctrs[2], 4);
	assert_int_equal(ctrs[3], 7);
	assert_int_equal(ctrs[4], 1000000);
	/* A short array gets the first ones; n is still the total. */
	memset(ctrs, 0xff, sizeof ctrs);
	assert_int_equal(mt_store_counters(s, "dev-b", ctrs, 1, &n), MT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(ctrs[0], 2);
	assert_int_equal(ctrs[1], UINT64_MAX);
	assert_int_equal(mt_store_counters(s, "dev-none", ctrs, 8, &n), MT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(mt_store_count(s, "dev-a", &n64), MT_OK);
	assert_int_equal(n64, 5);
	assert_int_equal(mt_store_count(s, NULL, &n64), MT_OK);
	assert_int_equal(n64, 7);
	mt_store_close(s);
}

/* ---- patients ------------------------------------------------------------- */

static void fill_patient(struct mt_patient *p, const char *name, const char *mrn,
                         const char *birth, const char *ward, const char *bed)
{
	memset(p, 0, sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", name);
	snprintf(p->mrn, sizeof p->mrn, "%s", mrn);
	snprintf(p->birth_date, sizeof p->birth_date, "%s", birth);
	snprintf(p->ward, sizeof p->ward, "%s", ward);
	snprintf(p->bed, sizeof p->bed, "%s", bed);
}

static void patients_and_assignments(void **state)
{
	struct mt_store *s = open_store(kek);
	struct mt_patient p, back;
	struct mt_store_row row;
	int64_t p1 = 0, p2 = 0, pid = -1, ids[4], rid;
	size_t n = 0;

	(void)state;
	fill_patient(&p, "Åsa Lindqvist", "MRN-0001", "1961-04-30", "ICU", "7");
	assert_int_equal(mt_store_patient_add(s, &p, &p1), MT_OK);
	fill_patient(&p, "Tomás O'Neill", "MRN-0002", "", "Ward 3", "");
	assert_int_equal(mt_store_patient_add(s, &p, &p2), MT_OK);
	assert_true(p1 > 0 && p2 > p1);
	assert_int_equal(mt_store_patient_get(s, p1, &back), MT_OK);
	assert_int_equal(back.id, p1);
	assert_string_equal(back.name, "Åsa Lindqvist");
	assert_string_equal(back.mrn, "MRN-0001");
	assert_string_equal(back.birth_date, "1961-04-30");
	assert_string_equal(back.ward, "ICU");
	assert_string_equal(back.bed, "7");
	assert_int_equal(mt_store_patient_get(s, p2, &back), MT_OK);
	assert_string_equal(back.name, "Tomás O'Neill");
	assert_string_equal(back.birth_date, "");
	assert_int_equal(mt_store_patient_get(s, p2 + 1, &back), MT_ERR_NOT_FOUND);
	assert_int_equal(mt_store_patient_ids(s, ids, 4, &n), MT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], p1);
	assert_int_equal(ids[1], p2);

	/* Refusals. */
	fill_patient(&p, "", "MRN-9", "", "ICU", "1");
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_ERR_ARG);
	fill_patient(&p, "X", "", "", "ICU", "1");
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_ERR_ARG);
	fill_patient(&p, "X", "M", "1961-13-01", "ICU", "1");
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_ERR_ARG);
	fill_patient(&p, "X", "M", "30/04/1961", "ICU", "1");
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_ERR_ARG);
	fill_patient(&p, "X\x01Y", "M", "", "ICU", "1");
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_ERR_ARG);
	fill_patient(&p, "X\xc3", "M", "", "ICU", "1"); /* truncated UTF-8 */
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_ERR_ARG);
	memset(p.mrn, 'A', sizeof p.mrn);                /* not NUL-terminated */
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_ERR_ARG);
	assert_int_equal(pid, -1);
	assert_int_equal(mt_store_patient_ids(s, NULL, 0, &n), MT_OK);
	assert_int_equal(n, 2);

	/* Assignments over time: [1000, 2000) p1, [2000, 3000) p2, then none. */
	assert_int_equal(mt_store_assign(s, "dev-1", p1, 1000), MT_OK);
	assert_int_equal(mt_store_assign(s, "dev-1", p2, 2000), MT_OK);
	assert_int_equal(mt_store_assign(s, "dev-1", 0, 3000), MT_OK);
	assert_int_equal(mt_store_assign(s, "dev-1", p2 + 5, 4000), MT_ERR_NOT_FOUND);
	assert_int_equal(mt_store_assign(s, "bad id!", p1, 4000), MT_ERR_ARG);
	assert_int_equal(mt_store_assign(s, "dev-2", p1, 5000), MT_OK);
	assert_int_equal(mt_store_assign(s, "dev-2", p2, 4500), MT_ERR_ARG); /* before the open one */
	{
		static const struct {
			uint64_t at;
			int which;
		} want[] = {{999, 0}, {1000, 1}, {1999, 1}, {2000, 2}, {2999, 2}, {3000, 0}, {99999, 0}};

		for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
			int64_t expect = want[i].which == 1 ? p1 : want[i].which == 2 ? p2 : 0;

			assert_int_equal(mt_store_assigned(s, "dev-1", want[i].at, &pid), MT_OK);
			assert_int_equal(pid, expect);
		}
	}
	assert_int_equal(mt_store_assigned(s, "dev-2", 6000, &pid), MT_OK);
	assert_int_equal(pid, p1);
	/* A reading takes the patient of its ts, not of now. */
	assert_int_equal(mt_store_begin(s), MT_OK);
	rid = put_one(s, "dev-1", 1, 1500);
	assert_int_equal(mt_store_commit(s), MT_OK);
	assert_int_equal(mt_store_reading_get(s, rid, &row), MT_OK);
	assert_int_equal(row.patient_id, p1);
	mt_store_row_clear(&row);
	assert_int_equal(mt_store_begin(s), MT_OK);
	rid = put_one(s, "dev-1", 2, 2500);
	assert_int_equal(mt_store_commit(s), MT_OK);
	assert_int_equal(mt_store_reading_get(s, rid, &row), MT_OK);
	assert_int_equal(row.patient_id, p2);
	mt_store_row_clear(&row);
	/* Not inside the caller's transaction. */
	assert_int_equal(mt_store_begin(s), MT_OK);
	assert_int_equal(mt_store_assign(s, "dev-1", p1, 9000), MT_ERR_ARG);
	fill_patient(&p, "Y", "M", "", "ICU", "1");
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_ERR_ARG);
	mt_store_rollback(s);
	mt_store_close(s);
}

/* ---- data keys ------------------------------------------------------------ */

static void dek_rotates_after_rows_and_age(void **state)
{
	struct mt_store *s = open_store(kek), *fresh;
	int64_t ids[8];
	struct timespec ms5 = {0, 5 * 1000 * 1000};

	(void)state;
	mt_store_set_dek_limits(s, 3, 0);
	assert_int_equal(mt_store_begin(s), MT_OK);
	for (uint64_t i = 0; i < 7; i++)
		ids[i] = put_one(s, "dev-1", i, 1000 + i);
	assert_int_equal(mt_store_commit(s), MT_OK);
	/* 3 + 3 + 1 rows: three DEKs, counted. */
	assert_int_equal(sql_int(s, "SELECT count(*) FROM deks"), 3);
	assert_int_equal(sql_int(s, "SELECT count(DISTINCT dek_id) FROM readings"), 3);
	assert_int_equal(sql_int(s, "SELECT max(n) FROM (SELECT count(*) AS n FROM readings"
	                            " GROUP BY dek_id)"),
	                 3);
	assert_int_equal(sql_int(s, "SELECT sum(n_rows) FROM deks"), 7);
	/* The third DEK continues in the next transaction, then a fourth. */
	assert_int_equal(mt_store_begin(s), MT_OK);
	ids[7] = put_one(s, "dev-1", 7, 1007);
	put_one(s, "dev-1", 8, 1008);
	put_one(s, "dev-1", 9, 1009);
	assert_int_equal(mt_store_commit(s), MT_OK);
	assert_int_equal(sql_int(s, "SELECT count(*) FROM deks"), 4);

	/* Age: a DEK older than its life is not used for new rows. */
	mt_store_set_dek_limits(s, 0, 1);
	nanosleep(&ms5, NULL);
	assert_int_equal(mt_store_begin(s), MT_OK);
	put_one(s, "dev-1", 10, 1010);
	assert_int_equal(mt_store_commit(s), MT_OK);
	assert_int_equal(sql_int(s, "SELECT count(*) FROM deks"), 5);
	mt_store_set_dek_limits(s, 0, 0);

	/* Every row decrypts, also through a fresh connection (no cache). */
	fresh = open_store(kek);
	for (uint64_t i = 0; i < 8; i++)
		expect_reading(fresh, ids[i], "dev-1", i, 1000 + i);
	mt_store_close(fresh);
	mt_store_close(s);
}

static void dek_of_a_rolled_back_transaction_is_forgotten(void **state)
{
	struct mt_store *s = open_store(kek), *fresh;
	int64_t before, id;

	(void)state;
	assert_int_equal(mt_store_begin(s), MT_OK);
	put_one(s, "dev-1", 1, 1000);
	assert_int_equal(mt_store_commit(s), MT_OK);
	before = sql_int(s, "SELECT max(id) FROM deks");
	/* Force a new DEK, then roll back: its id is free again. */
	mt_store_set_dek_limits(s, 1, 0);
	assert_int_equal(mt_store_begin(s), MT_OK);
	put_one(s, "dev-1", 2, 1000);
	assert_int_equal(sql_int(s, "SELECT max(id) FROM deks"), before + 1);
	mt_store_rollback(s);
	assert_int_equal(sql_int(s, "SELECT max(id) FROM deks"), before);
	/* The next DEK takes the same id with another key: the row must
	 * decrypt for a connection that never saw the rolled-back key. */
	assert_int_equal(mt_store_begin(s), MT_OK);
	id = put_one(s, "dev-1", 2, 1000);
	assert_int_equal(mt_store_commit(s), MT_OK);
	assert_int_equal(sql_int(s, "SELECT max(id) FROM deks"), before + 1);
	fresh = open_store(kek);
	expect_reading(fresh, id, "dev-1", 2, 1000);
	mt_store_close(fresh);
	expect_reading(s, id, "dev-1", 2, 1000);
	mt_store_close(s);
}

/* ---- reopen, and a store without the KEK ---------------------------------- */

static void reopen_keeps_everything(void **state)
{
	struct mt_store *s = open_store(kek);
	struct mt_patient p, back;
	struct mt_replay w;
	int64_t pid = 0, rid, found = 0;
	uint64_t n = 0;

	(void)state;
	fill_patient(&p, "Ngozi Adeyemi", "MRN-77", "1990-01-02", "HDU", "3");
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_OK);
	assert_int_equal(mt_store_assign(s, "dev-9", pid, 100), MT_OK);
	assert_int_equal(mt_store_begin(s), MT_OK);
	mt_replay_init(&w);
	mt_replay_mark(&w, 77);
	assert_int_equal(mt_store_window_save(s, "dev-9", &w), MT_OK);
	rid = put_one(s, "dev-9", 77, 5000);
	assert_int_equal(mt_store_commit(s), MT_OK);
	mt_store_close(s);

	s = open_store(kek);
	expect_reading(s, rid, "dev-9", 77, 5000);
	assert_int_equal(mt_store_patient_get(s, pid, &back), MT_OK);
	assert_string_equal(back.name, "Ngozi Adeyemi");
	assert_string_equal(back.mrn, "MRN-77");
	assert_int_equal(mt_store_assigned(s, "dev-9", 5000, &found), MT_OK);
	assert_int_equal(found, pid);
	assert_int_equal(mt_store_window_load(s, "dev-9", &w), MT_OK);
	assert_int_equal(w.top, 77);
	assert_int_equal(mt_store_count(s, NULL, &n), MT_OK);
	assert_int_equal(n, 1);
	mt_store_close(s);
}

static enum mt_err count_ids(void *ctx, int64_t id)
{
	(void)id;
	(*(size_t *)ctx)++;
	return MT_OK;
}

static void kekless_store_counts_but_cannot_decrypt(void **state)
{
	struct mt_store *s = open_store(kek), *ro;
	struct mt_patient p, back;
	struct mt_store_row row;
	struct reading x;
	uint64_t ctrs[4], n = 0;
	int64_t pid = 0, rid, ids[2];
	size_t k = 0, walked = 0;

	(void)state;
	fill_patient(&p, "Kekless Patient", "MRN-5", "", "ICU", "1");
	assert_int_equal(mt_store_patient_add(s, &p, &pid), MT_OK);
	assert_int_equal(mt_store_begin(s), MT_OK);
	rid = put_one(s, "dev-1", 3, 1000);
	put_one(s, "dev-1", 4, 1000);
	assert_int_equal(mt_store_commit(s), MT_OK);
	mt_store_close(s);

	ro = open_store(NULL);
	assert_int_equal(mt_store_count(ro, "dev-1", &n), MT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(mt_store_counters(ro, "dev-1", ctrs, 4, &k), MT_OK);
	assert_int_equal(k, 2);
	assert_int_equal(ctrs[1], 4);
	assert_int_equal(mt_store_reading_ids(ro, 0, INT64_MAX, count_ids, &walked), MT_OK);
	assert_int_equal(walked, 2);
	assert_int_equal(mt_store_patient_ids(ro, ids, 2, &k), MT_OK);
	assert_int_equal(k, 1);
	/* No decryption, no writing. */
	assert_int_equal(mt_store_reading_get(ro, rid, &row), MT_ERR_ARG);
	assert_null(row.sign1);
	assert_int_equal(mt_store_patient_get(ro, pid, &back), MT_ERR_ARG);
	assert_string_equal(back.name, "");
	assert_int_equal(mt_store_begin(ro), MT_OK);
	make_reading(&x, "dev-1", 5, 1000);
	assert_int_equal(mt_store_reading_put(ro, &x.r, NULL), MT_ERR_ARG);
	mt_store_rollback(ro);
	assert_int_equal(mt_store_patient_add(ro, &p, &pid), MT_ERR_ARG);
	mt_store_close(ro);
}

static void open_refuses_garbage(void **state)
{
	struct mt_store *s = (struct mt_store *)1;
	FILE *f;

	(void)state;
	assert_int_equal(mt_store_open(NULL, kek, &s), MT_ERR_ARG);
	assert_null(s);
	f = fopen(db, "wb");
	assert_non_null(f);
	fputs("this is not an SQLite database, and it is long enough to be looked at", f);
	fclose(f);
	assert_int_equal(mt_store_open(db, kek, &s), MT_ERR_STORE_DB);
	assert_null(s);
	mt_store_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(reading_and_alert_round_trip, setup),
	        cmocka_unit_test_setup(bad_readings_refused, setup),
	        cmocka_unit_test_setup(duplicate_changes_nothing, setup),
	        cmocka_unit_test_setup(window_saved_in_the_transaction, setup),
	        cmocka_unit_test_setup(counters_listed_ascending, setup),
	        cmocka_unit_test_setup(patients_and_assignments, setup),
	        cmocka_unit_test_setup(dek_rotates_after_rows_and_age, setup),
	        cmocka_unit_test_setup(dek_of_a_rolled_back_transaction_is_forgotten, setup),
	        cmocka_unit_test_setup(reopen_keeps_everything, setup),
	        cmocka_unit_test_setup(kekless_store_counts_but_cannot_decrypt, setup),
	        cmocka_unit_test_setup(open_refuses_garbage, setup),
	};

	if (!mt_softhsm_available())
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
