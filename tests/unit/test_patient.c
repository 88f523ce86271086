/*
 * test_patient.c — the full patient record and what hangs off it
 * (mt_store.h patient, rule and assignment sections; mt_users.h wards;
 * docs/patients.md):
 *
 *   - every field of struct mt_patient round-trips (room, sex, NEWS2
 *     settings, "unknown" kept as 0), an update re-encrypts and changes
 *     only what the caller changed, and bad records are refused (a birth
 *     date that is no real day, a sex or ACVPU outside the codes);
 *   - the plain columns are bound by the AAD: a room, SpO2 scale, oxygen,
 *     ACVPU, NEWS2-applicable flag or AAD version edited in the file
 *     without the key reads as MT_ERR_STORE_TAMPERED (threat J05);
 *   - migration: a data.db made with the version-1 CREATE TABLE statements
 *     and a version-1 row (sealed here, independently, with the version-1
 *     AAD) opens, gains the new columns, reads back (sex "", settings
 *     unknown), cannot have its new columns edited unnoticed, and is
 *     rewritten as version 2 by an update;
 *   - find by MRN (a decrypting scan): found, not found, after an edit;
 *   - per-patient rules: add, list (per patient and all), delete, refusals;
 *   - assignments over time: a reading belongs to the patient assigned at
 *     its time (P1 from t0, P2 from t1, none from t2), and the listing
 *     shows those ranges, filtered by device or patient;
 *   - clinician ↔ ward: set, list, replace, clear, may-see, refusals.
 *
 * Each test gets a fresh database; the KEK lives in a SoftHSM2 token.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_users.h"
#include "mt_softhsm.h"

static struct mt_softhsm hsm;
static struct mt_kek *kek;
static char tmpdir[256], db[320];
static int db_n;

static int group_setup(void **state)
{
	char uri[512];

	(void)state;
	if (mt_softhsm_init(&hsm, "patient-test", "1234", "5678") != 0)
		return -1;
	if (mt_softhsm_uri(&hsm, "kek", NULL, uri, sizeof uri) != 0 ||
	    mt_key_generate_kek(uri) != MT_OK || mt_kek_open(uri, &kek) != MT_OK)
		return -1;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mt-patient-XXXXXX");
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

/* Run SQL on the file behind the store's back (the attacker without the key). */
static void sql(const char *q)
{
	sqlite3 *h = NULL;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, q, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

static void fill(struct mt_patient *p, const char *name, const char *mrn)
{
	memset(p, 0, sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", name);
	snprintf(p->mrn, sizeof p->mrn, "%s", mrn);
	snprintf(p->birth_date, sizeof p->birth_date, "1948-02-29");
	snprintf(p->ward, sizeof p->ward, "Ward B (respiratory)");
	snprintf(p->room, sizeof p->room, "B2");
	snprintf(p->bed, sizeof p->bed, "4");
	snprintf(p->sex, sizeof p->sex, "female");
	p->spo2_scale2 = true;
	p->oxygen = 'O';
	p->acvpu = 'C';
	p->news2_na = false;
}

static void full_record_round_trips_and_updates(void **state)
{
	struct mt_store *s = open_store();
	struct mt_patient p, back;
	int64_t id = 0, id2 = 0;

	(void)state;
	fill(&p, "Grace Hopper", "MRN-1906");
	assert_int_equal(mt_store_patient_add(s, &p, &id), MT_OK);
	assert_int_equal(mt_store_patient_get(s, id, &back), MT_OK);
	assert_int_equal(back.id, id);
	assert_string_equal(back.name, "Grace Hopper");
	assert_string_equal(back.mrn, "MRN-1906");
	assert_string_equal(back.birth_date, "1948-02-29");
	assert_string_equal(back.ward, "Ward B (respiratory)");
	assert_string_equal(back.room, "B2");
	assert_string_equal(back.bed, "4");
	assert_string_equal(back.sex, "female");
	assert_true(back.spo2_scale2);
	assert_int_equal(back.oxygen, 'O');
	assert_int_equal(back.acvpu, 'C');
	assert_false(back.news2_na);

	/* Unknown settings stay unknown (0), not "air"/"alert". */
	fill(&p, "Alan Turing", "MRN-1912");
	p.oxygen = 0;
	p.acvpu = 0;
	p.sex[0] = '\0';
	p.spo2_scale2 = false;
	p.news2_na = true;
	assert_int_equal(mt_store_patient_add(s, &p, &id2), MT_OK);
	assert_int_equal(mt_store_patient_get(s, id2, &back), MT_OK);
	assert_int_equal(back.oxygen, 0);
	assert_int_equal(back.acvpu, 0);
	assert_string_equal(back.sex, "");
	assert_true(back.news2_na);
	assert_false(back.spo2_scale2);

	/* Update: read, change, write back; the other patient is untouched. */
	assert_int_equal(mt_store_patient_get(s, id, &back), MT_OK);
	back.oxygen = 'A';
	back.acvpu = 'A';
	snprintf(back.room, sizeof back.room, "ICU-1");
	snprintf(back.name, sizeof back.name, "Grace B. Hopper");
	assert_int_equal(mt_store_patient_update(s, &back), MT_OK);
	assert_int_equal(mt_store_patient_get(s, id, &p), MT_OK);
	assert_string_equal(p.name, "Grace B. Hopper");
	assert_string_equal(p.room, "ICU-1");
	assert_int_equal(p.oxygen, 'A');
	assert_int_equal(p.acvpu, 'A');
	assert_true(p.spo2_scale2);
	assert_string_equal(p.mrn, "MRN-1906");
	assert_int_equal(mt_store_patient_get(s, id2, &back), MT_OK);
	assert_string_equal(back.name, "Alan Turing");

	/* Update of a patient that does not exist, and bad ids. */
	p.id = id2 + 100;
	assert_int_equal(mt_store_patient_update(s, &p), MT_ERR_NOT_FOUND);
	p.id = 0;
	assert_int_equal(mt_store_patient_update(s, &p), MT_ERR_ARG);

	/* Refusals: each one field off. */
	{
		struct mt_patient bad;
		int64_t none = -1;

		fill(&bad, "X", "M");
		snprintf(bad.birth_date, sizeof bad.birth_date, "1949-02-29"); /* not a leap year */
		assert_false(mt_store_patient_valid(&bad));
		assert_int_equal(mt_store_patient_add(s, &bad, &none), MT_ERR_ARG);
		fill(&bad, "X", "M");
		snprintf(bad.birth_date, sizeof bad.birth_date, "1961-04-31");
		assert_int_equal(mt_store_patient_add(s, &bad, &none), MT_ERR_ARG);
		fill(&bad, "X", "M");
		snprintf(bad.sex, sizeof bad.sex, "F");
		assert_int_equal(mt_store_patient_add(s, &bad, &none), MT_ERR_ARG);
		fill(&bad, "X", "M");
		bad.oxygen = 'X';
		assert_int_equal(mt_store_patient_add(s, &bad, &none), MT_ERR_ARG);
		fill(&bad, "X", "M");
		bad.acvpu = 'a';
		assert_int_equal(mt_store_patient_add(s, &bad, &none), MT_ERR_ARG);
		fill(&bad, "X", "M");
		bad.room[0] = '\x1b';
		assert_int_equal(mt_store_patient_add(s, &bad, &none), MT_ERR_ARG);
		fill(&bad, "X", "M");
		memset(bad.room, 'r', sizeof bad.room); /* not NUL-terminated */
		assert_int_equal(mt_store_patient_add(s, &bad, &none), MT_ERR_ARG);
		bad.id = id;
		assert_int_equal(mt_store_patient_update(s, &bad), MT_ERR_ARG);
		assert_int_equal(none, -1);
		fill(&bad, "X", "M");
		snprintf(bad.birth_date, sizeof bad.birth_date, "2000-02-29"); /* a leap year */
		assert_true(mt_store_patient_valid(&bad));
	}
	/* The refused update changed nothing. */
	assert_int_equal(mt_store_patient_get(s, id, &back), MT_OK);
	assert_string_equal(back.room, "ICU-1");
	mt_store_close(s);
}

/* Edit one plain column of patient `id` in the file; the row must read as
 * tampered; then put the value back and it must read again. */
static void expect_tampered(struct mt_store *s, int64_t id, const char *set, const char *undo)
{
	struct mt_patient back;
	char q[256];

	snprintf(q, sizeof q, "UPDATE patients SET %s WHERE id = %lld", set, (long long)id);
	sql(q);
	assert_int_equal(mt_store_patient_get(s, id, &back), MT_ERR_STORE_TAMPERED);
	assert_string_equal(back.name, ""); /* nothing half-decrypted is left */
	snprintf(q, sizeof q, "UPDATE patients SET %s WHERE id = %lld", undo, (long long)id);
	sql(q);
	assert_int_equal(mt_store_patient_get(s, id, &back), MT_OK);
}

static void plain_columns_are_bound(void **state)
{
	struct mt_store *s = open_store();
	struct mt_patient p;
	int64_t id = 0;

	(void)state;
	fill(&p, "Edsger Dijkstra", "MRN-1930");
	assert_int_equal(mt_store_patient_add(s, &p, &id), MT_OK);
	expect_tampered(s, id, "room = 'B3'", "room = 'B2'");
	expect_tampered(s, id, "spo2_scale2 = 0", "spo2_scale2 = 1");
	expect_tampered(s, id, "oxygen = 'A'", "oxygen = 'O'");
	expect_tampered(s, id, "oxygen = ''", "oxygen = 'O'");
	expect_tampered(s, id, "acvpu = 'A'", "acvpu = 'C'");
	expect_tampered(s, id, "news2_na = 1", "news2_na = 0");
	expect_tampered(s, id, "aad_v = 1", "aad_v = 2");
	expect_tampered(s, id, "ward = 'ICU'", "ward = 'Ward B (respiratory)'");
	expect_tampered(s, id, "bed = '5'", "bed = '4'");
	expect_tampered(s, id, "spo2_scale2 = x'01'", "spo2_scale2 = 1"); /* a blob, not the int */
	mt_store_close(s);
}

/* The version-1 layout, exactly as store.c created it before room, sex and
 * the NEWS2 settings. */
static const char old_schema[] =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE deks(id INTEGER PRIMARY KEY, wrapped BLOB NOT NULL,"
        " created_ms INTEGER NOT NULL, n_rows INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE patients(id INTEGER PRIMARY KEY, ward TEXT NOT NULL, bed TEXT NOT NULL,"
        " dek_id INTEGER NOT NULL REFERENCES deks(id), iv BLOB NOT NULL, ct BLOB NOT NULL);"
        "CREATE TABLE assignments(id INTEGER PRIMARY KEY, dev TEXT NOT NULL,"
        " patient_id INTEGER NOT NULL REFERENCES patients(id),"
        " since_ms INTEGER NOT NULL, until_ms INTEGER);"
        "PRAGMA user_version=1;";

static void put_be64(uint8_t *b, size_t *n, int64_t v)
{
	for (int i = 7; i >= 0; i--)
		b[(*n)++] = (uint8_t)((uint64_t)v >> (8 * i));
}

static void put_text(uint8_t *b, size_t *n, const char *t)
{
	size_t k = strlen(t);

	b[(*n)++] = (uint8_t)(k >> 8);
	b[(*n)++] = (uint8_t)k;
	memcpy(b + *n, t, k);
	*n += k;
}

/* A version-1 data.db with patient 1 (Ada, MRN-1815, 1815-12-10, ICU, bed 3)
 * sealed with the version-1 AAD (docs/storage.md). */
static void make_old_db(void)
{
	uint8_t dek[MT_DEK_LEN], wrapped[MT_DEK_WRAPPED_LEN], iv[MT_AEAD_IV_LEN];
	uint8_t pt[256], ct[256 + MT_AEAD_TAG_LEN], aad[128];
	size_t pt_len = 0, aad_len = 0;
	struct mt_cbor_enc enc;
	struct mt_aead *a = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3 *h = NULL;

	assert_int_equal(mt_random(dek, sizeof dek), MT_OK);
	assert_int_equal(mt_random(iv, sizeof iv), MT_OK);
	assert_int_equal(mt_kek_wrap(kek, dek, wrapped), MT_OK);
	mt_cbor_enc_init(&enc, pt, sizeof pt);
	mt_cbor_put_array(&enc, 3);
	mt_cbor_put_tstr(&enc, "Ada Lovelace", 12);
	mt_cbor_put_tstr(&enc, "MRN-1815", 8);
	mt_cbor_put_tstr(&enc, "1815-12-10", 10);
	assert_int_equal(mt_cbor_enc_finish(&enc, &pt_len), MT_OK);
	memcpy(aad, "mt-store:patient:", 17);
	aad_len = 17;
	put_be64(aad, &aad_len, 1); /* id */
	put_be64(aad, &aad_len, 1); /* dek_id */
	put_text(aad, &aad_len, "ICU");
	put_text(aad, &aad_len, "3");
	assert_int_equal(mt_aead_new(&a), MT_OK);
	assert_int_equal(mt_aead_seal(a, dek, sizeof dek, iv, aad, aad_len, pt, pt_len, ct), MT_OK);
	mt_aead_free(a);

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, old_schema, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "INSERT INTO deks(id, wrapped, created_ms, n_rows)"
	                                       " VALUES(1, ?, 0, 1)",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_blob(st, 1, wrapped, sizeof wrapped, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(h, "INSERT INTO patients(id, ward, bed, dek_id, iv, ct)"
	                                       " VALUES(1, 'ICU', '3', 1, ?, ?)",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_blob(st, 1, iv, sizeof iv, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, ct, (int)(pt_len + MT_AEAD_TAG_LEN), SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(h);
}

static int has_column(const char *table, const char *col)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	char q[128];
	int found = 0;

	snprintf(q, sizeof q, "PRAGMA table_info(%s)", table);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, q, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		if (strcmp((const char *)sqlite3_column_text(st, 1), col) == 0)
			found = 1;
	sqlite3_finalize(st);
	sqlite3_close(h);
	return found;
}

static void old_database_migrates(void **state)
{
	struct mt_store *s;
	struct mt_patient p;
	int64_t id = 0, found = 0;

	(void)state;
	make_old_db();
	assert_false(has_column("patients", "aad_v"));
	s = open_store();
	assert_true(has_column("patients", "room"));
	assert_true(has_column("patients", "aad_v"));
	assert_true(has_column("patient_rules", "rule"));

	assert_int_equal(mt_store_patient_get(s, 1, &p), MT_OK);
	assert_string_equal(p.name, "Ada Lovelace");
	assert_string_equal(p.mrn, "MRN-1815");
	assert_string_equal(p.birth_date, "1815-12-10");
	assert_string_equal(p.ward, "ICU");
	assert_string_equal(p.bed, "3");
	assert_string_equal(p.room, "");
	assert_string_equal(p.sex, "");
	assert_int_equal(p.oxygen, 0);
	assert_int_equal(p.acvpu, 0);
	assert_false(p.spo2_scale2);
	assert_false(p.news2_na);
	assert_int_equal(mt_store_patient_find_mrn(s, "MRN-1815", &found), MT_OK);
	assert_int_equal(found, 1);

	/* The version-1 AAD does not cover the new columns: they must stay at
	 * their defaults, and a version-1 row cannot be relabelled v2. */
	expect_tampered(s, 1, "spo2_scale2 = 1", "spo2_scale2 = 0");
	expect_tampered(s, 1, "oxygen = 'O'", "oxygen = ''");
	expect_tampered(s, 1, "acvpu = 'U'", "acvpu = ''");
	expect_tampered(s, 1, "news2_na = 1", "news2_na = 0");
	expect_tampered(s, 1, "room = 'X'", "room = ''");
	expect_tampered(s, 1, "aad_v = 2", "aad_v = 1");
	expect_tampered(s, 1, "bed = '4'", "bed = '3'");

	/* New rows next to old ones, and an update rewrites the old row as v2. */
	fill(&p, "Charles Babbage", "MRN-1791");
	assert_int_equal(mt_store_patient_add(s, &p, &id), MT_OK);
	assert_int_equal(id, 2);
	assert_int_equal(mt_store_patient_get(s, 1, &p), MT_OK);
	snprintf(p.sex, sizeof p.sex, "female");
	p.oxygen = 'A';
	assert_int_equal(mt_store_patient_update(s, &p), MT_OK);
	mt_store_close(s);

	s = open_store(); /* a second open migrates nothing more */
	assert_int_equal(mt_store_patient_get(s, 1, &p), MT_OK);
	assert_string_equal(p.name, "Ada Lovelace");
	assert_string_equal(p.sex, "female");
	assert_int_equal(p.oxygen, 'A');
	expect_tampered(s, 1, "aad_v = 1", "aad_v = 2");
	expect_tampered(s, 1, "oxygen = ''", "oxygen = 'A'");
	mt_store_close(s);
}

static void find_by_mrn(void **state)
{
	struct mt_store *s = open_store();
	struct mt_patient p;
	int64_t a = 0, b = 0, found = -1;

	(void)state;
	assert_int_equal(mt_store_patient_find_mrn(s, "MRN-A", &found), MT_ERR_NOT_FOUND);
	assert_int_equal(found, 0);
	fill(&p, "Patient A", "MRN-A");
	assert_int_equal(mt_store_patient_add(s, &p, &a), MT_OK);
	fill(&p, "Patient B", "MRN-B");
	assert_int_equal(mt_store_patient_add(s, &p, &b), MT_OK);
	assert_int_equal(mt_store_patient_find_mrn(s, "MRN-B", &found), MT_OK);
	assert_int_equal(found, b);
	assert_int_equal(mt_store_patient_find_mrn(s, "MRN-A", &found), MT_OK);
	assert_int_equal(found, a);
	assert_int_equal(mt_store_patient_find_mrn(s, "mrn-a", &found), MT_ERR_NOT_FOUND);
	assert_int_equal(mt_store_patient_find_mrn(s, "MRN-", &found), MT_ERR_NOT_FOUND);
	/* After an edit the old MRN is gone. */
	assert_int_equal(mt_store_patient_get(s, b, &p), MT_OK);
	snprintf(p.mrn, sizeof p.mrn, "MRN-B2");
	assert_int_equal(mt_store_patient_update(s, &p), MT_OK);
	assert_int_equal(mt_store_patient_find_mrn(s, "MRN-B", &found), MT_ERR_NOT_FOUND);
	assert_int_equal(mt_store_patient_find_mrn(s, "MRN-B2", &found), MT_OK);
	assert_int_equal(found, b);
	/* A row that does not authenticate stops the scan: not silently skipped. */
	sql("UPDATE patients SET bed = 'moved' WHERE id = 1");
	assert_int_equal(mt_store_patient_find_mrn(s, "MRN-B2", &found), MT_ERR_STORE_TAMPERED);
	assert_int_equal(mt_store_patient_find_mrn(NULL, "MRN-B2", &found), MT_ERR_ARG);
	mt_store_close(s);
}

struct rule_seen {
	int n;
	int64_t ids[8];
	char text[8][MT_STORE_RULE_MAX + 1];
};

static enum mt_err rule_cb(void *ctx, const struct mt_patient_rule *r)
{
	struct rule_seen *rs = ctx;

	if (rs->n < 8) {
		rs->ids[rs->n] = r->id;
		snprintf(rs->text[rs->n], sizeof rs->text[0], "%s", r->text);
	}
	rs->n++;
	assert_true(r->created_ms > 0);
	return MT_OK;
}

static void rules_add_list_delete(void **state)
{
	struct mt_store *s = open_store();
	struct mt_patient p;
	struct rule_seen rs;
	int64_t a = 0, b = 0, r1 = 0, r2 = 0, r3 = 0, owner = 0;
	char big[MT_STORE_RULE_MAX + 2];

	(void)state;
	fill(&p, "Rule Patient", "MRN-R1");
	assert_int_equal(mt_store_patient_add(s, &p, &a), MT_OK);
	fill(&p, "Other Patient", "MRN-R2");
	assert_int_equal(mt_store_patient_add(s, &p, &b), MT_OK);
	assert_int_equal(mt_store_rule_add(s, a, "150456<88 for 30s prio high", &r1), MT_OK);
	assert_int_equal(mt_store_rule_add(s, a, "147842>140 prio medium", &r2), MT_OK);
	assert_int_equal(mt_store_rule_add(s, b, "150456<85 prio high", &r3), MT_OK);
	assert_true(r1 > 0 && r2 > r1 && r3 > r2);

	memset(&rs, 0, sizeof rs);
	assert_int_equal(mt_store_rules(s, a, rule_cb, &rs), MT_OK);
	assert_int_equal(rs.n, 2);
	assert_int_equal(rs.ids[0], r1);
	assert_string_equal(rs.text[0], "150456<88 for 30s prio high");
	assert_string_equal(rs.text[1], "147842>140 prio medium");
	memset(&rs, 0, sizeof rs);
	assert_int_equal(mt_store_rules(s, 0, rule_cb, &rs), MT_OK);
	assert_int_equal(rs.n, 3);

	/* Refusals. */
	assert_int_equal(mt_store_rule_add(s, b + 10, "150456<85 prio high", &r3),
	                 MT_ERR_NOT_FOUND);
	assert_int_equal(r3, 0);
	assert_int_equal(mt_store_rule_add(s, a, "", NULL), MT_ERR_ARG);
	assert_int_equal(mt_store_rule_add(s, a, "150456<85\nprio high", NULL), MT_ERR_ARG);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(mt_store_rule_add(s, a, big, NULL), MT_ERR_ARG);
	big[MT_STORE_RULE_MAX] = '\0'; /* exactly the maximum */
	assert_int_equal(mt_store_rule_add(s, a, big, &r3), MT_OK);

	/* Delete: the owner is reported, a second delete is not found. */
	assert_int_equal(mt_store_rule_del(s, r1, &owner), MT_OK);
	assert_int_equal(owner, a);
	assert_int_equal(mt_store_rule_del(s, r1, &owner), MT_ERR_NOT_FOUND);
	assert_int_equal(mt_store_rule_del(s, 0, NULL), MT_ERR_ARG);
	memset(&rs, 0, sizeof rs);
	assert_int_equal(mt_store_rules(s, a, rule_cb, &rs), MT_OK);
	assert_int_equal(rs.n, 2);
	assert_int_equal(rs.ids[0], r2);
	mt_store_close(s);
}

struct asg_seen {
	int n;
	struct mt_assignment a[8];
};

static enum mt_err asg_cb(void *ctx, const struct mt_assignment *a)
{
	struct asg_seen *as = ctx;

	if (as->n < 8)
		as->a[as->n] = *a;
	as->n++;
	return MT_OK;
}

static int64_t put_reading(struct mt_store *s, const char *dev, uint64_t ctr, uint64_t ts)
{
	static const uint8_t sign1[16] = {0xd2, 1, 2, 3};
	struct mt_store_reading r = {dev,       ctr, 1,    1,     ts, ts + 10, 0, "01ab",
	                             sign1, sizeof sign1};
	int64_t id = 0;

	assert_int_equal(mt_store_begin(s), MT_OK);
	assert_int_equal(mt_store_reading_put(s, &r, &id), MT_OK);
	assert_int_equal(mt_store_commit(s), MT_OK);
	return id;
}

static int64_t reading_patient(struct mt_store *s, int64_t id)
{
	struct mt_store_row row;
	int64_t pid;

	assert_int_equal(mt_store_reading_get(s, id, &row), MT_OK);
	pid = row.patient_id;
	mt_store_row_clear(&row);
	return pid;
}

static void reading_belongs_to_patient_of_its_time(void **state)
{
	const uint64_t t0 = 1733222400000u, t1 = t0 + 3600000u, t2 = t1 + 3600000u;
	struct mt_store *s = open_store();
	struct mt_patient p;
	struct asg_seen as;
	int64_t p1 = 0, p2 = 0;

	(void)state;
	fill(&p, "First Patient", "MRN-P1");
	assert_int_equal(mt_store_patient_add(s, &p, &p1), MT_OK);
	fill(&p, "Second Patient", "MRN-P2");
	assert_int_equal(mt_store_patient_add(s, &p, &p2), MT_OK);
	assert_int_equal(mt_store_assign(s, "dev-7", p1, t0), MT_OK);
	assert_int_equal(mt_store_assign(s, "dev-7", p2, t1), MT_OK);
	assert_int_equal(mt_store_assign(s, "dev-8", p2, t0), MT_OK);

	/* Before t0 nobody, between t0 and t1 P1, from t1 P2 — also for a
	 * reading that arrives late (stored after the reassignment). */
	assert_int_equal(reading_patient(s, put_reading(s, "dev-7", 1, t0 - 1)), 0);
	assert_int_equal(reading_patient(s, put_reading(s, "dev-7", 2, t0)), p1);
	assert_int_equal(reading_patient(s, put_reading(s, "dev-7", 3, t1 - 1)), p1);
	assert_int_equal(reading_patient(s, put_reading(s, "dev-7", 4, t1)), p2);
	assert_int_equal(reading_patient(s, put_reading(s, "dev-7", 5, t1 + 5000)), p2);
	/* Unassigned at t2: none after, P2 still before. */
	assert_int_equal(mt_store_assign(s, "dev-7", 0, t2), MT_OK);
	assert_int_equal(reading_patient(s, put_reading(s, "dev-7", 6, t2)), 0);
	assert_int_equal(reading_patient(s, put_reading(s, "dev-7", 7, t2 - 1)), p2);
	/* Going back before the open assignment is refused (dev-8 open at t0). */
	assert_int_equal(mt_store_assign(s, "dev-8", p1, t0 - 1), MT_ERR_ARG);

	/* The listing: dev-7 [t0, t1) P1, [t1, t2) P2; dev-8 [t0, open) P2. */
	memset(&as, 0, sizeof as);
	assert_int_equal(mt_store_assignments(s, NULL, 0, asg_cb, &as), MT_OK);
	assert_int_equal(as.n, 3);
	assert_string_equal(as.a[0].dev, "dev-7");
	assert_int_equal(as.a[0].patient_id, p1);
	assert_int_equal(as.a[0].since_ms, t0);
	assert_int_equal(as.a[0].until_ms, t1);
	assert_false(as.a[0].open);
	assert_int_equal(as.a[1].patient_id, p2);
	assert_int_equal(as.a[1].since_ms, t1);
	assert_int_equal(as.a[1].until_ms, t2);
	assert_string_equal(as.a[2].dev, "dev-8");
	assert_true(as.a[2].open);
	assert_int_equal(as.a[2].until_ms, 0);
	memset(&as, 0, sizeof as);
	assert_int_equal(mt_store_assignments(s, "dev-8", 0, asg_cb, &as), MT_OK);
	assert_int_equal(as.n, 1);
	memset(&as, 0, sizeof as);
	assert_int_equal(mt_store_assignments(s, NULL, p2, asg_cb, &as), MT_OK);
	assert_int_equal(as.n, 2);
	memset(&as, 0, sizeof as);
	assert_int_equal(mt_store_assignments(s, "dev-7", p1, asg_cb, &as), MT_OK);
	assert_int_equal(as.n, 1);
	assert_int_equal(mt_store_assignments(s, "bad id!", 0, asg_cb, &as), MT_ERR_ARG);
	assert_int_equal(mt_store_assignments(s, NULL, -1, asg_cb, &as), MT_ERR_ARG);
	mt_store_close(s);
}

struct ward_seen {
	int n;
	char w[8][MT_USER_WARD_MAX + 1];
};

static enum mt_err ward_cb(void *ctx, const char *ward)
{
	struct ward_seen *ws = ctx;

	if (ws->n < 8)
		snprintf(ws->w[ws->n], sizeof ws->w[0], "%s", ward);
	ws->n++;
	return MT_OK;
}

static void clinician_wards(void **state)
{
	char path[400];
	struct mt_users *u = NULL;
	struct ward_seen ws;
	const char *two[] = {"Ward B (respiratory)", "ICU", "ICU"};
	const char *bad[] = {"ICU", "bad\tward"};
	const char *one[] = {"HDU"};
	bool ok = true;
	char big[MT_USER_WARD_MAX + 2];

	(void)state;
	snprintf(path, sizeof path, "%s/users-%d.db", tmpdir, db_n);
	assert_int_equal(mt_users_open(path, &u), MT_OK);
	assert_int_equal(mt_users_add(u, "dr.who", MT_ROLE_CLINICIAN, "one-time-password-1", 1000,
	                              NULL),
	                 MT_OK);
	assert_int_equal(mt_users_add(u, "nurse", MT_ROLE_CLINICIAN, "one-time-password-2", 1000,
	                              NULL),
	                 MT_OK);

	/* Nothing yet: may see nothing. */
	assert_int_equal(mt_users_may_see_ward(u, "dr.who", "ICU", &ok), MT_OK);
	assert_false(ok);
	assert_int_equal(mt_users_wards_set(u, "dr.who", two, 3), MT_OK); /* ICU twice: once */
	memset(&ws, 0, sizeof ws);
	assert_int_equal(mt_users_wards(u, "dr.who", ward_cb, &ws), MT_OK);
	assert_int_equal(ws.n, 2);
	assert_string_equal(ws.w[0], "ICU");
	assert_string_equal(ws.w[1], "Ward B (respiratory)");
	assert_int_equal(mt_users_may_see_ward(u, "dr.who", "ICU", &ok), MT_OK);
	assert_true(ok);
	assert_int_equal(mt_users_may_see_ward(u, "dr.who", "icu", &ok), MT_OK);
	assert_false(ok); /* byte for byte */
	assert_int_equal(mt_users_may_see_ward(u, "nurse", "ICU", &ok), MT_OK);
	assert_false(ok); /* another user's wards are not hers */
	assert_int_equal(mt_users_may_see_ward(u, "nobody", "ICU", &ok), MT_OK);
	assert_false(ok);

	/* Replace, refusals that change nothing, clear. */
	assert_int_equal(mt_users_wards_set(u, "dr.who", one, 1), MT_OK);
	assert_int_equal(mt_users_may_see_ward(u, "dr.who", "ICU", &ok), MT_OK);
	assert_false(ok);
	assert_int_equal(mt_users_may_see_ward(u, "dr.who", "HDU", &ok), MT_OK);
	assert_true(ok);
	assert_int_equal(mt_users_wards_set(u, "dr.who", bad, 2), MT_ERR_ARG);
	assert_int_equal(mt_users_wards_set(u, "nobody", one, 1), MT_ERR_NOT_FOUND);
	assert_int_equal(mt_users_wards_set(u, "Bad Name", one, 1), MT_ERR_ARG);
	assert_int_equal(mt_users_wards_set(u, "dr.who", NULL, 1), MT_ERR_ARG);
	assert_int_equal(mt_users_wards_set(u, "dr.who", one, MT_USER_WARDS_MAX + 1), MT_ERR_ARG);
	memset(big, 'w', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_false(mt_user_ward_valid(big));
	assert_false(mt_user_ward_valid(""));
	assert_true(mt_user_ward_valid("Ward A (cardiology)"));
	memset(&ws, 0, sizeof ws);
	assert_int_equal(mt_users_wards(u, "dr.who", ward_cb, &ws), MT_OK);
	assert_int_equal(ws.n, 1);
	assert_string_equal(ws.w[0], "HDU");
	assert_int_equal(mt_users_wards_set(u, "dr.who", NULL, 0), MT_OK);
	memset(&ws, 0, sizeof ws);
	assert_int_equal(mt_users_wards(u, "dr.who", ward_cb, &ws), MT_OK);
	assert_int_equal(ws.n, 0);
	assert_int_equal(mt_users_may_see_ward(u, "dr.who", "HDU", &ok), MT_OK);
	assert_false(ok);
	mt_users_close(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(full_record_round_trips_and_updates, setup),
	        cmocka_unit_test_setup(plain_columns_are_bound, setup),
	        cmocka_unit_test_setup(old_database_migrates, setup),
	        cmocka_unit_test_setup(find_by_mrn, setup),
	        cmocka_unit_test_setup(rules_add_list_delete, setup),
	        cmocka_unit_test_setup(reading_belongs_to_patient_of_its_time, setup),
	        cmocka_unit_test_setup(clinician_wards, setup),
	};

	if (!mt_softhsm_available())
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
