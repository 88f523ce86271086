/*
 * test_audit_integrity.c — threats J01, J02, J03 and J06: the audit chain
 * names the first bad record whatever is done to the database, and two
 * processes appending at once still make one linear chain
 * (spec/threats.md group J; mt_audit.h; docs/audit.md "Tampering").
 *
 * How the tests tamper.  Each case starts from a copy of a pristine chain
 * (250 events, a checkpoint every 100, so records 101 and 202 are
 * checkpoints; some cases end it with an on-demand checkpoint, record 253)
 * and then acts as an attacker with write access to the SQLite file: it
 * drops the two triggers that refuse UPDATE and DELETE (they are defence in
 * depth, not a control: anyone who can write the file can drop them) and
 * edits rows with plain SQL, or re-inserts rows through the store's own
 * append, recomputing hashes with mt_audit_record_hash() where the attack
 * calls for it and signing with a key of its own where it tries to forge a
 * checkpoint.  The outside checkpoint file is left alone unless the case is
 * about it.  Each case asserts the exact reason and sequence number
 * docs/audit.md promises.
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "medtrust/mt_audit.h"
#include "medtrust/mt_cbor.h"
#include "medtrust/mt_cose.h"
#include "medtrust/mt_keystore.h"

#define T0 1764300000000ull
#define EVENTS 250
#define EVERY 100

static const uint8_t HUB_SCALAR[32] = {0xc9, 0xaf, 0xa9, 0xd8, 0x45, 0xba, 0x75, 0x16,
                                       0x6b, 0x5c, 0x21, 0x57, 0x67, 0xb1, 0xd6, 0x93,
                                       0x4e, 0x50, 0xc3, 0xdb, 0x36, 0xe8, 0x9b, 0x12,
                                       0x7b, 0x8a, 0x62, 0x2b, 0x12, 0x0f, 0x67, 0x21};
static const uint8_t EVIL_SCALAR[32] = {0x51, 0x9b, 0x42, 0x3d, 0x71, 0x5f, 0x8b, 0x58,
                                        0x1f, 0x4f, 0xa8, 0xee, 0x59, 0xf4, 0x77, 0x1a,
                                        0x5b, 0x44, 0xc8, 0x13, 0x0b, 0x4e, 0x3e, 0xac,
                                        0xca, 0x54, 0xa5, 0x6d, 0xda, 0x72, 0xb4, 0x64};

struct fx {
	char dir[64];
	char pristine[128]; /* 250 events, checkpoints at 101 and 202, last 252 */
	char sealed[128];   /* the same plus an on-demand checkpoint, 253 */
	char cp_pristine[128], cp_sealed[128]; /* their outside files */
	char db[128];                          /* the copy a case tampers with */
	char cpfile[128];
	struct mt_key *hub, *evil;
};

static enum mt_err copy_one(const struct mt_audit_record *r, void *arg)
{
	memcpy(arg, r, sizeof *r);
	return MT_OK;
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
}

/* A chain of EVENTS events at db, checkpoints in cpfile. */
static void build(const char *db, const char *cpfile, struct mt_key *key, bool seal)
{
	struct mt_audit_store *st;
	struct mt_audit *a;
	struct mt_audit_config cfg = {EVERY, 0, cpfile};
	char subj[32], detail[64];
	bool done;

	assert_int_equal(mt_audit_sqlite_open(db, &st), MT_OK);
	assert_int_equal(mt_audit_open(st, key, &cfg, &a), MT_OK);
	for (int i = 1; i <= EVENTS; i++) {
		struct mt_audit_event ev = {i % 3 ? "alice" : "icu-7", "device.reading.refused",
		                            subj, MT_AUDIT_REFUSED, detail};
		snprintf(subj, sizeof subj, "icu-%d", i % 17);
		snprintf(detail, sizeof detail, "{\"ctr\":%d,\"reason\":\"replay\"}", i);
		assert_int_equal(mt_audit_append(a, T0 + 1000 * (uint64_t)i, &ev, NULL), MT_OK);
	}
	if (seal) {
		assert_int_equal(mt_audit_checkpoint(a, T0 + 1000 * (EVENTS + 1), &done), MT_OK);
		assert_true(done);
	}
	mt_audit_close(a); /* the last connection: WAL folded into the file */
}

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof fx->dir, "/tmp/mt-auditsec-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->pristine, sizeof fx->pristine, "%s/pristine.db", fx->dir);
	snprintf(fx->sealed, sizeof fx->sealed, "%s/sealed.db", fx->dir);
	snprintf(fx->cp_pristine, sizeof fx->cp_pristine, "%s/pristine.cp", fx->dir);
	snprintf(fx->cp_sealed, sizeof fx->cp_sealed, "%s/sealed.cp", fx->dir);
	snprintf(fx->db, sizeof fx->db, "%s/work.db", fx->dir);
	snprintf(fx->cpfile, sizeof fx->cpfile, "%s/work.cp", fx->dir);
	if (mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, HUB_SCALAR, 32, &fx->hub) != MT_OK ||
	    mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, EVIL_SCALAR, 32, &fx->evil) != MT_OK)
		return -1;
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];
	mt_key_free(fx->hub);
	mt_key_free(fx->evil);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

/* Fresh working copies of a pristine chain and its outside file. */
static void fresh(struct fx *fx, bool sealed)
{
	copy_file(sealed ? fx->sealed : fx->pristine, fx->db);
	copy_file(sealed ? fx->cp_sealed : fx->cp_pristine, fx->cpfile);
}

/* The attacker's SQL: triggers dropped first. */
static void sql(const char *db, const char *stmt)
{
	sqlite3 *h;
	char *err = NULL;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	if (sqlite3_exec(h,
	                 "DROP TRIGGER IF EXISTS audit_no_update;"
	                 "DROP TRIGGER IF EXISTS audit_no_delete;",
	                 NULL, NULL, &err) != SQLITE_OK ||
	    sqlite3_exec(h, stmt, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", stmt, err);
	sqlite3_close(h);
}

static void read_rec(const char *db, uint64_t seq, struct mt_audit_record *r)
{
	struct mt_audit_store *st;
	r->seq = 0;
	assert_int_equal(mt_audit_sqlite_open(db, &st), MT_OK);
	assert_int_equal(st->ops->read(st->ctx, seq, seq, copy_one, r), MT_OK);
	mt_audit_store_close(st);
	assert_int_equal(r->seq, seq);
}

/* Replace every column of row `seq` with r's fields (r->seq is ignored). */
static void overwrite(const char *db, uint64_t seq, const struct mt_audit_record *r)
{
	sqlite3 *h;
	sqlite3_stmt *q;
	sql(db, "SELECT 1"); /* drops the triggers */
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h,
	                                    "UPDATE audit SET time_ms=?, kind=?, actor=?, action=?,"
	                                    " subject=?, outcome=?, detail=?, checkpoint=?,"
	                                    " prev_hash=?, hash=? WHERE seq=?",
	                                    -1, &q, NULL),
	                 SQLITE_OK);
	sqlite3_bind_int64(q, 1, (sqlite3_int64)r->time_ms);
	sqlite3_bind_int(q, 2, (int)r->kind);
	sqlite3_bind_text(q, 3, r->actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, r->action, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 5, r->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 6, (int)r->outcome);
	sqlite3_bind_text(q, 7, r->detail, -1, SQLITE_STATIC);
	if (r->kind == MT_AUDIT_CHECKPOINT)
		sqlite3_bind_blob(q, 8, r->cose, (int)r->cose_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 8);
	sqlite3_bind_blob(q, 9, r->prev_hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(q, 10, r->hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(q, 11, (sqlite3_int64)seq);
	assert_int_equal(sqlite3_step(q), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(h), 1);
	sqlite3_finalize(q);
	sqlite3_close(h);
}

static struct mt_audit_verdict verify(struct fx *fx, const char *cpfile)
{
	struct mt_audit_store *st;
	struct mt_audit_verdict v;
	assert_int_equal(mt_audit_sqlite_open(fx->db, &st), MT_OK);
	enum mt_err e = mt_audit_verify(st, mt_key_public(fx->hub), cpfile, &v);
	assert_int_equal(e, v.err);
	mt_audit_store_close(st);
	return v;
}

#define EXPECT(fx, cp, want_err, want_seq)                                                         \
	do {                                                                                       \
		struct mt_audit_verdict v_ = verify((fx), (cp));                                   \
		if (v_.err != (want_err) || v_.seq != (uint64_t)(want_seq))                        \
			fail_msg("got %d at %llu (%s), want %d at %llu", v_.err,                   \
			         (unsigned long long)v_.seq, v_.why, (want_err),                   \
			         (unsigned long long)(want_seq));                                  \
	} while (0)

static void prepare(struct fx *fx)
{
	build(fx->pristine, fx->cp_pristine, fx->hub, false);
	build(fx->sealed, fx->cp_sealed, fx->hub, true);
	fresh(fx, false);
	EXPECT(fx, fx->cpfile, MT_OK, 0);
	fresh(fx, true);
	EXPECT(fx, fx->cpfile, MT_OK, 0);
}

/* ---- J01 ---------------------------------------------------------------- */

enum field { F_ACTOR, F_DETAIL, F_TIME, F_OUTCOME, F_HASH, F_PREV, F_COSE };

static void flip(struct mt_audit_record *r, enum field f)
{
	switch (f) {
	case F_ACTOR:
		r->actor[0] ^= 0x01;
		break;
	case F_DETAIL:
		r->detail[strlen(r->detail) - 3] ^= 0x01;
		break;
	case F_TIME:
		r->time_ms ^= 0x400;
		break;
	case F_OUTCOME:
		r->outcome = MT_AUDIT_OK;
		break;
	case F_HASH:
		r->hash[7] ^= 0x20;
		break;
	case F_PREV:
		r->prev_hash[0] ^= 0x80;
		break;
	case F_COSE:
		r->cose[r->cose_len - 1] ^= 0x01;
		break;
	}
}

static void J01_byte_flip_names_first_bad_record(void **state)
{
	struct fx *fx = *state;
	static const uint64_t ks[] = {1, 126, 252}; /* first, middle, last */
	static const enum field fields[] = {F_ACTOR, F_DETAIL, F_TIME, F_OUTCOME, F_HASH, F_PREV};
	struct mt_audit_record *r = malloc(sizeof *r);

	assert_non_null(r);
	prepare(fx);
	for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
		for (size_t j = 0; j < sizeof fields / sizeof fields[0]; j++) {
			fresh(fx, false);
			read_rec(fx->db, ks[i], r);
			flip(r, fields[j]);
			overwrite(fx->db, ks[i], r);
			EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_EDITED, ks[i]);
			EXPECT(fx, NULL, MT_ERR_AUDIT_EDITED, ks[i]);
		}
	}
	/* One byte of a checkpoint record's signature: the record is edited. */
	fresh(fx, false);
	read_rec(fx->db, 101, r);
	assert_int_equal(r->kind, MT_AUDIT_CHECKPOINT);
	flip(r, F_COSE);
	overwrite(fx->db, 101, r);
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_EDITED, 101);
	/* ... and with its hash recomputed, the signature no longer verifies. */
	assert_int_equal(mt_audit_record_hash(r, r->hash), MT_OK);
	overwrite(fx->db, 101, r);
	EXPECT(fx, NULL, MT_ERR_AUDIT_CHECKPOINT_SIG, 101);
	/* A flip with the record's own hash recomputed breaks the next link. */
	fresh(fx, false);
	read_rec(fx->db, 126, r);
	flip(r, F_ACTOR);
	assert_int_equal(mt_audit_record_hash(r, r->hash), MT_OK);
	overwrite(fx->db, 126, r);
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_LINK, 127);
	/* The same on the record before a checkpoint: the checkpoint record
	 * no longer links to it. */
	fresh(fx, false);
	read_rec(fx->db, 201, r);
	flip(r, F_DETAIL);
	assert_int_equal(mt_audit_record_hash(r, r->hash), MT_OK);
	overwrite(fx->db, 201, r);
	EXPECT(fx, NULL, MT_ERR_AUDIT_LINK, 202);
	/* ... and the outside file, which holds 201's hash, names 201 itself. */
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_CHECKPOINT, 201);
	free(r);
}

/* ---- J02 ---------------------------------------------------------------- */

/* Read seq from..to into a malloc'd array. */
static struct mt_audit_record *read_range(const char *db, uint64_t from, uint64_t to)
{
	struct mt_audit_record *rs = calloc(to - from + 1, sizeof *rs);
	assert_non_null(rs);
	for (uint64_t s = from; s <= to; s++)
		read_rec(db, s, &rs[s - from]);
	return rs;
}

static void append_raw(const char *db, const struct mt_audit_record *r)
{
	struct mt_audit_store *st;
	assert_int_equal(mt_audit_sqlite_open(db, &st), MT_OK);
	assert_int_equal(st->ops->append(st->ctx, r), MT_OK);
	mt_audit_store_close(st);
}

/* The checkpoint payload {1: seq, 2: hash, 3: time}, signed by `key`. */
static void resign(struct mt_audit_record *r, uint64_t seq, const uint8_t hash[32],
                   struct mt_key *key)
{
	uint8_t payload[64];
	size_t n = 0;
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, payload, sizeof payload);
	mt_cbor_put_map(&e, 3);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_uint(&e, seq);
	mt_cbor_put_uint(&e, 2);
	mt_cbor_put_bstr(&e, hash, 32);
	mt_cbor_put_uint(&e, 3);
	mt_cbor_put_uint(&e, r->time_ms);
	assert_int_equal(mt_cbor_enc_finish(&e, &n), MT_OK);
	assert_int_equal(mt_cose_sign1_sign(key, MT_COSE_ALG_ES256,
	                                    mt_pubkey_kid(mt_key_public(key)), MT_KID_LEN, payload,
	                                    n, (const uint8_t *)MT_AUDIT_CHECKPOINT_AAD,
	                                    strlen(MT_AUDIT_CHECKPOINT_AAD), r->cose,
	                                    sizeof r->cose, &r->cose_len),
	                 MT_OK);
}

enum insert_mode { INS_PLAIN, INS_REHASH, INS_RESIGN };

/* Insert a forged record at `at`, moving every later record up by one;
 * INS_REHASH re-chains them (new seq, prev_hash and hash), INS_RESIGN also
 * re-signs the checkpoints with the attacker's key. */
static void insert_forged(struct fx *fx, uint64_t at, uint64_t last, enum insert_mode mode)
{
	struct mt_audit_record *rs = read_range(fx->db, at - 1, last);
	struct mt_audit_record *forged = calloc(1, sizeof *forged);
	char stmt[96];
	uint8_t prev[32];

	assert_non_null(forged);
	snprintf(stmt, sizeof stmt, "DELETE FROM audit WHERE seq >= %llu", (unsigned long long)at);
	sql(fx->db, stmt);
	*forged = rs[1];
	forged->seq = at;
	forged->kind = MT_AUDIT_EVENT;
	forged->cose_len = 0;
	memcpy(forged->actor, "mallory", 8);
	memcpy(forged->action, "user.role.grant", 16);
	memcpy(forged->detail, "{\"role\":\"admin\"}", 17);
	memcpy(forged->prev_hash, rs[0].hash, 32);
	assert_int_equal(mt_audit_record_hash(forged, forged->hash), MT_OK);
	append_raw(fx->db, forged);
	memcpy(prev, forged->hash, 32);
	for (uint64_t s = at; s <= last; s++) {
		struct mt_audit_record *r = &rs[s - at + 1];
		r->seq = s + 1;
		if (mode != INS_PLAIN) {
			if (mode == INS_RESIGN && r->kind == MT_AUDIT_CHECKPOINT)
				resign(r, s, prev, fx->evil);
			memcpy(r->prev_hash, prev, 32);
			assert_int_equal(mt_audit_record_hash(r, r->hash), MT_OK);
			memcpy(prev, r->hash, 32);
		}
		append_raw(fx->db, r);
	}
	free(forged);
	free(rs);
}

static void J02_delete_reorder_insert_detected(void **state)
{
	struct fx *fx = *state;
	struct mt_audit_record *a = malloc(sizeof *a), *b = malloc(sizeof *b);
	static const uint64_t del[] = {1, 126, 101, 252};
	static const uint64_t swaps[][2] = {{126, 140}, {126, 127}, {100, 101}, {1, 252}};

	assert_true(a != NULL && b != NULL);
	prepare(fx);
	/* Delete record k: the verifier names k, the missing sequence number. */
	for (size_t i = 0; i < sizeof del / sizeof del[0]; i++) {
		char stmt[64];
		fresh(fx, false);
		snprintf(stmt, sizeof stmt, "DELETE FROM audit WHERE seq = %llu",
		         (unsigned long long)del[i]);
		sql(fx->db, stmt);
		if (del[i] == 252) /* the last: after the last checkpoint, see J03 */
			EXPECT(fx, fx->cpfile, MT_OK, 0);
		else
			EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_MISSING, del[i]);
	}
	/* The last record when a checkpoint closes the chain: truncation. */
	fresh(fx, true);
	sql(fx->db, "DELETE FROM audit WHERE seq = 253");
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_TRUNCATED, 253);

	/* Swap two records (every column but seq): the first is named. */
	for (size_t i = 0; i < sizeof swaps / sizeof swaps[0]; i++) {
		fresh(fx, false);
		read_rec(fx->db, swaps[i][0], a);
		read_rec(fx->db, swaps[i][1], b);
		overwrite(fx->db, swaps[i][0], b);
		overwrite(fx->db, swaps[i][1], a);
		EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_ORDER, swaps[i][0]);
	}

	/* Insert a forged record at 126 with a correct hash and link: the
	 * next record (moved to 127) is named. */
	fresh(fx, false);
	insert_forged(fx, 126, 252, INS_PLAIN);
	EXPECT(fx, NULL, MT_ERR_AUDIT_ORDER, 127);
	/* ... re-chaining everything after it: the next checkpoint (now 203)
	 * signed a different history. */
	fresh(fx, false);
	insert_forged(fx, 126, 252, INS_REHASH);
	EXPECT(fx, NULL, MT_ERR_AUDIT_CHECKPOINT, 203);
	/* ... and re-signing the checkpoints with another key: refused. */
	fresh(fx, false);
	insert_forged(fx, 126, 252, INS_RESIGN);
	EXPECT(fx, NULL, MT_ERR_AUDIT_CHECKPOINT_SIG, 203);
	/* An insertion after the last checkpoint with a correct link is not
	 * detectable until the next checkpoint: the documented window. */
	fresh(fx, false);
	insert_forged(fx, 240, 252, INS_REHASH);
	EXPECT(fx, fx->cpfile, MT_OK, 0);
	free(a);
	free(b);
}

/* Every checkpoint the chain carries must be the hub's. */
static void J02_checkpoint_signed_by_another_key_refused(void **state)
{
	struct fx *fx = *state;
	struct mt_audit_store *st;
	struct mt_audit *w;
	struct mt_audit_config cfg = {EVERY, 0, NULL};
	struct mt_audit_event ev = {"mallory", "user.login", NULL, MT_AUDIT_OK, NULL};
	struct mt_audit_record *r = malloc(sizeof *r);
	uint64_t first_evil = 0;
	bool done = false;
	FILE *f;

	assert_non_null(r);
	prepare(fx);
	/* A writer with the wrong key continues the chain. */
	fresh(fx, false);
	assert_int_equal(mt_audit_sqlite_open(fx->db, &st), MT_OK);
	assert_int_equal(mt_audit_open(st, fx->evil, &cfg, &w), MT_OK);
	assert_int_equal(mt_audit_append(w, T0 + 999999, &ev, NULL), MT_OK);
	assert_int_equal(mt_audit_checkpoint(w, T0 + 999999, &done), MT_OK);
	assert_true(done);
	mt_audit_close(w);
	first_evil = 254;
	read_rec(fx->db, first_evil, r);
	assert_int_equal(r->kind, MT_AUDIT_CHECKPOINT);
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_CHECKPOINT_SIG, first_evil);

	/* A checkpoint record replaced by one signed with another key over the
	 * right statement, hash recomputed: refused at that record. */
	fresh(fx, false);
	read_rec(fx->db, 101, r);
	resign(r, 100, r->prev_hash, fx->evil);
	assert_int_equal(mt_audit_record_hash(r, r->hash), MT_OK);
	overwrite(fx->db, 101, r);
	EXPECT(fx, NULL, MT_ERR_AUDIT_CHECKPOINT_SIG, 101);

	/* A line in the outside file signed by another key: refused. */
	fresh(fx, false);
	read_rec(fx->db, 202, r);
	resign(r, 201, r->prev_hash, fx->evil);
	f = fopen(fx->cpfile, "a");
	assert_non_null(f);
	for (size_t i = 0; i < r->cose_len; i++)
		fprintf(f, "%02x", r->cose[i]);
	fputc('\n', f);
	fclose(f);
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_CHECKPOINT_SIG, 0);
	free(r);
}

/* ---- J03 ---------------------------------------------------------------- */

static void J03_truncated_tail_detected_against_checkpoint(void **state)
{
	struct fx *fx = *state;
	static const uint64_t cut[] = {1, 2, 52, 60, 200, 252};
	struct mt_audit_record *rs;
	char stmt[64];
	FILE *f;

	prepare(fx);
	/* Sealed chain (1..253, checkpoint records 101, 202, 253): cutting the
	 * last N records is named at the first missing one. */
	for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
		uint64_t keep = 253 - cut[i];
		fresh(fx, true);
		snprintf(stmt, sizeof stmt, "DELETE FROM audit WHERE seq > %llu",
		         (unsigned long long)keep);
		sql(fx->db, stmt);
		EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_TRUNCATED, keep + 1);
		/* the chain alone cannot see it: that is what the file is for */
		if (keep > 0)
			EXPECT(fx, NULL, MT_OK, 0);
	}
	/* Everything deleted. */
	fresh(fx, true);
	sql(fx->db, "DELETE FROM audit");
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_TRUNCATED, 1);

	/* Unsealed chain (last checkpoint record 202, records to 252): a cut
	 * that reaches below 202 is detected; one above it is the documented
	 * window after the last checkpoint. */
	fresh(fx, false);
	sql(fx->db, "DELETE FROM audit WHERE seq > 200");
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_TRUNCATED, 201);
	fresh(fx, false);
	sql(fx->db, "DELETE FROM audit WHERE seq > 201");
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_TRUNCATED, 202);
	fresh(fx, false);
	sql(fx->db, "DELETE FROM audit WHERE seq > 230");
	EXPECT(fx, fx->cpfile, MT_OK, 0);

	/* Deleting every checkpoint record and re-chaining the rest into a
	 * consistent chain of events: only the outside file sees it, at the
	 * place of the first checkpoint. */
	fresh(fx, true);
	rs = read_range(fx->db, 101, 253);
	sql(fx->db, "DELETE FROM audit WHERE seq > 100");
	{
		uint64_t seq = 101;
		struct mt_audit_record *prev = calloc(1, sizeof *prev);
		assert_non_null(prev);
		read_rec(fx->db, 100, prev);
		for (size_t i = 0; i < 153; i++) {
			if (rs[i].kind == MT_AUDIT_CHECKPOINT)
				continue;
			rs[i].seq = seq++;
			memcpy(rs[i].prev_hash, prev->hash, 32);
			assert_int_equal(mt_audit_record_hash(&rs[i], rs[i].hash), MT_OK);
			append_raw(fx->db, &rs[i]);
			*prev = rs[i];
		}
		free(prev);
	}
	EXPECT(fx, NULL, MT_OK, 0);
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_CHECKPOINT, 101);
	free(rs);

	/* The outside file itself: a flipped digit is refused, and an empty
	 * or missing file hides a truncation (keep it safe and elsewhere). */
	fresh(fx, true);
	f = fopen(fx->cpfile, "r+");
	assert_non_null(f);
	assert_int_equal(fseek(f, 40, SEEK_SET), 0);
	{
		int c = fgetc(f);
		assert_int_equal(fseek(f, 40, SEEK_SET), 0);
		fputc(c == '0' ? '1' : '0', f);
	}
	fclose(f);
	EXPECT(fx, fx->cpfile, MT_ERR_AUDIT_CHECKPOINT_SIG, 0);
	fresh(fx, true);
	sql(fx->db, "DELETE FROM audit WHERE seq > 150");
	assert_int_equal(unlink(fx->cpfile), 0);
	EXPECT(fx, fx->cpfile, MT_OK, 0);
}

/* ---- J06 ---------------------------------------------------------------- */

#define WRITERS 2
#define PER_WRITER 300

/* A child: its own key object and store connection, PER_WRITER events,
 * started when the parent closes the pipe so that all run at once. */
static int writer(const char *db, const char *cpfile, int id, int go)
{
	struct mt_key *key = NULL;
	struct mt_audit_store *st = NULL;
	struct mt_audit *a = NULL;
	struct mt_audit_config cfg = {EVERY, 0, cpfile};
	char actor[16];
	int rc = 0;

	snprintf(actor, sizeof actor, "writer-%d", id);
	while (read(go, actor + 15, 1) > 0) /* blocks until the parent closes it */
		;
	close(go);
	if (mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, HUB_SCALAR, 32, &key) != MT_OK ||
	    mt_audit_sqlite_open(db, &st) != MT_OK || mt_audit_open(st, key, &cfg, &a) != MT_OK)
		return 2;
	for (int i = 0; i < PER_WRITER && rc == 0; i++) {
		struct mt_audit_event ev = {actor, "hub.ingest", NULL, MT_AUDIT_OK, NULL};
		enum mt_err e = mt_audit_append(a, T0 + (uint64_t)i, &ev, NULL);
		/* A hub appends now and then, not in a tight loop: pausing lets
		 * the other writer's retries win the lock, so the two really
		 * interleave instead of running one after the other. */
		struct timespec pause = {0, 1000 * 1000};
		nanosleep(&pause, NULL);
		if (e != MT_OK) {
			fprintf(stderr, "writer %d: %s\n", id, mt_err_str(e));
			rc = 3;
		}
	}
	mt_audit_close(a);
	mt_key_free(key);
	return rc;
}

struct tally {
	uint64_t per[WRITERS], switches, checkpoints;
	char prev[16];
};

static enum mt_err tally_cb(const struct mt_audit_record *r, void *arg)
{
	struct tally *t = arg;
	int id;
	if (r->kind == MT_AUDIT_CHECKPOINT) {
		t->checkpoints++;
		return MT_OK;
	}
	if (strncmp(r->actor, "writer-", 7) != 0)
		return MT_ERR_INTERNAL;
	id = r->actor[7] - '0';
	if (id < 0 || id >= WRITERS)
		return MT_ERR_INTERNAL;
	t->per[id]++;
	if (t->prev[0] != '\0' && strcmp(t->prev, r->actor) != 0)
		t->switches++;
	memcpy(t->prev, r->actor, strlen(r->actor) + 1);
	return MT_OK;
}

static void J06_two_writers_one_linear_chain(void **state)
{
	struct fx *fx = *state;
	struct mt_audit_store *st;
	struct mt_audit_verdict v;
	struct tally t;
	pid_t pids[WRITERS];
	int go[2];

	/* The database exists before the writers start; no connection is open
	 * across fork(). */
	assert_int_equal(mt_audit_sqlite_open(fx->db, &st), MT_OK);
	mt_audit_store_close(st);
	assert_int_equal(pipe(go), 0);
	for (int i = 0; i < WRITERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(go[1]);
			_exit(writer(fx->db, fx->cpfile, i, go[0]));
		}
	}
	close(go[0]);
	close(go[1]); /* go */
	for (int i = 0; i < WRITERS; i++) {
		int status = 0;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(mt_audit_sqlite_open(fx->db, &st), MT_OK);
	assert_int_equal(mt_audit_verify(st, mt_key_public(fx->hub), fx->cpfile, &v), MT_OK);
	memset(&t, 0, sizeof t);
	assert_int_equal(st->ops->read(st->ctx, 1, UINT64_MAX, tally_cb, &t), MT_OK);
	mt_audit_store_close(st);
	/* One gap-free chain (verify checked continuity and every link) holding
	 * every event of every writer, checkpointed every EVERY records. */
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(t.per[i], PER_WRITER);
	assert_int_equal(t.checkpoints, WRITERS * PER_WRITER / EVERY);
	assert_int_equal(v.records, WRITERS * PER_WRITER + t.checkpoints);
	assert_int_equal(v.external, t.checkpoints);
	print_message("J06: %d writers, %llu records, %llu writer switches in the chain\n", WRITERS,
	              (unsigned long long)v.records, (unsigned long long)t.switches);
	/* They did write at the same time (hundreds of switches in practice). */
	assert_true(t.switches >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(J01_byte_flip_names_first_bad_record, fx_setup,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(J02_delete_reorder_insert_detected, fx_setup,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(J02_checkpoint_signed_by_another_key_refused,
	                                        fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(J03_truncated_tail_detected_against_checkpoint,
	                                        fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(J06_two_writers_one_linear_chain, fx_setup,
	                                        fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
