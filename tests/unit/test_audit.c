/*
 * test_audit.c — mt_audit: the chain, its checkpoints, verification and the
 * JSON-lines export on the SQLite store (mt_audit.h, docs/audit.md).
 *
 * The main flow runs three times, with the hub key in memory (P-256 and
 * Ed25519, mt_key_import_raw) and in a fresh SoftHSM2 token (P-256,
 * tests/support/mt_softhsm.c): 5,000 events with a checkpoint every 1,000,
 * each checkpoint in the chain and in the outside file, and a clean
 * verification; append throughput is printed for information.  Then the
 * time rule (a quiet log is checkpointed after an hour of record time, by
 * append or by tick), checkpoints on demand, the hashed encoding (strict
 * deterministic CBOR, hash = SHA-256 of it), refusal of bad events with
 * nothing written, the SQLite triggers and WAL mode, a seq conflict, and
 * the export, every line of which jansson must parse.  Tampering lives in
 * tests/security/test_audit_integrity.c.
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
#include <jansson.h>
#include <sqlite3.h>

#include "medtrust/mt_audit.h"
#include "medtrust/mt_cbor.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "mt_softhsm.h"

#define PIN "1234"
#define SO_PIN "5678"
#define T0 1764300000000ull /* 2025-11-28T03:20:00Z */

enum keykind { KEY_P256_MEM, KEY_ED25519_MEM, KEY_P256_TOKEN };

struct fx {
	enum keykind kind;
	struct mt_softhsm hsm;
	int token;
	int skip;
	char dir[64];
	char db[128];
	char cpfile[128];
	struct mt_key *key;
};

static const uint8_t SCALAR_A[32] = {0xc9, 0xaf, 0xa9, 0xd8, 0x45, 0xba, 0x75, 0x16,
                                     0x6b, 0x5c, 0x21, 0x57, 0x67, 0xb1, 0xd6, 0x93,
                                     0x4e, 0x50, 0xc3, 0xdb, 0x36, 0xe8, 0x9b, 0x12,
                                     0x7b, 0x8a, 0x62, 0x2b, 0x12, 0x0f, 0x67, 0x21};

static void rm_tree(const char *dir)
{
	const char *argv[] = {"rm", "-rf", dir, NULL};
	(void)mt_softhsm_spawn(argv, NULL);
}

static int fx_setup_kind(void **state, enum keykind kind)
{
	struct fx *fx = calloc(1, sizeof *fx);
	if (fx == NULL)
		return -1;
	fx->kind = kind;
	snprintf(fx->dir, sizeof fx->dir, "/tmp/mt-audit-XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->db, sizeof fx->db, "%s/audit.db", fx->dir);
	snprintf(fx->cpfile, sizeof fx->cpfile, "%s/checkpoints", fx->dir);
	if (kind == KEY_P256_TOKEN) {
		char uri[512];
		if (!mt_softhsm_available()) {
			fx->skip = 1;
			*state = fx;
			return 0;
		}
		if (mt_softhsm_init(&fx->hsm, "mt-audit", PIN, SO_PIN) != 0)
			return -1;
		fx->token = 1;
		if (mt_softhsm_uri(&fx->hsm, "hub-audit", NULL, uri, sizeof uri) != 0 ||
		    mt_key_generate(uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &fx->key) != MT_OK)
			return -1;
	} else if (kind == KEY_ED25519_MEM) {
		if (mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, SCALAR_A, 32, &fx->key) !=
		    MT_OK)
			return -1;
	} else {
		if (mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, SCALAR_A, 32, &fx->key) !=
		    MT_OK)
			return -1;
	}
	*state = fx;
	return 0;
}

static int setup_p256(void **state)
{
	return fx_setup_kind(state, KEY_P256_MEM);
}
static int setup_ed25519(void **state)
{
	return fx_setup_kind(state, KEY_ED25519_MEM);
}
static int setup_token(void **state)
{
	return fx_setup_kind(state, KEY_P256_TOKEN);
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	int rc = 0;
	mt_key_free(fx->key);
	if (fx->token && mt_softhsm_cleanup(&fx->hsm) != 0)
		rc = -1;
	rm_tree(fx->dir);
	free(fx);
	return rc;
}

static struct mt_audit *open_writer(struct fx *fx, uint64_t every, uint64_t ms, bool ext)
{
	struct mt_audit_store *st = NULL;
	struct mt_audit *a = NULL;
	struct mt_audit_config cfg = {every, ms, ext ? fx->cpfile : NULL};
	assert_int_equal(mt_audit_sqlite_open(fx->db, &st), MT_OK);
	assert_int_equal(mt_audit_open(st, fx->key, &cfg, &a), MT_OK);
	return a;
}

static struct mt_audit_event ev_n(uint64_t i, char *subj, size_t cap)
{
	struct mt_audit_event ev = {"alice", "device.onboard", subj, MT_AUDIT_OK, NULL};
	snprintf(subj, cap, "icu-%llu", (unsigned long long)i);
	if (i % 7 == 0)
		ev.outcome = MT_AUDIT_REFUSED;
	return ev;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct counter {
	uint64_t events, checkpoints, last_seq;
	uint64_t cp_seqs[64];
};

static enum mt_err count_cb(const struct mt_audit_record *r, void *arg)
{
	struct counter *c = arg;
	if (r->kind == MT_AUDIT_CHECKPOINT) {
		if (c->checkpoints < 64)
			c->cp_seqs[c->checkpoints] = r->seq;
		c->checkpoints++;
	} else {
		c->events++;
	}
	c->last_seq = r->seq;
	return MT_OK;
}

static struct counter count(struct mt_audit_store *st)
{
	struct counter c;
	memset(&c, 0, sizeof c);
	assert_int_equal(st->ops->read(st->ctx, 1, UINT64_MAX, count_cb, &c), MT_OK);
	return c;
}

static size_t file_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int ch;
	if (f == NULL)
		return 0;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* 5,000 events, a checkpoint after every 1,000: 5,005 records.  Every
 * commit is fsync'd (synchronous=FULL), so the time is the disk's: from
 * under a second to about 20 s on a busy development VM. */
static void five_thousand_records_verify(void **state)
{
	struct fx *fx = *state;
	struct mt_audit *a;
	struct mt_audit_verdict v;
	struct counter c;
	char subj[32];
	double t;
	const uint64_t n = 5000, cps = n / 1000;

	if (fx->skip)
		skip();
	a = open_writer(fx, 1000, 0, true);
	t = now_s();
	for (uint64_t i = 1; i <= n; i++) {
		struct mt_audit_event ev = ev_n(i, subj, sizeof subj);
		uint64_t seq = 0;
		assert_int_equal(mt_audit_append(a, T0 + i, &ev, &seq), MT_OK);
		assert_int_equal(seq, i + (i - 1) / 1000); /* one checkpoint per 1,000 before it */
	}
	t = now_s() - t;
	print_message("audit append (%s key): %llu events in %.2f s, %.0f records/s\n",
	              fx->kind == KEY_P256_TOKEN ? "SoftHSM2 P-256"
	              : fx->kind == KEY_P256_MEM ? "in-memory P-256"
	                                         : "in-memory Ed25519",
	              (unsigned long long)n, t, (double)n / (t > 0 ? t : 1e-9));

	c = count(mt_audit_store_of(a));
	assert_int_equal(c.events, n);
	assert_int_equal(c.checkpoints, cps);
	for (uint64_t k = 0; k < cps; k++)
		assert_int_equal(c.cp_seqs[k], (k + 1) * 1001);
	assert_int_equal(file_lines(fx->cpfile), cps);

	t = now_s();
	assert_int_equal(
	        mt_audit_verify(mt_audit_store_of(a), mt_key_public(fx->key), fx->cpfile, &v),
	        MT_OK);
	t = now_s() - t;
	print_message("audit verify: %llu records in %.2f s (%s)\n", (unsigned long long)v.records,
	              t, v.why);
	assert_int_equal(v.err, MT_OK);
	assert_int_equal(v.seq, 0);
	assert_int_equal(v.records, n + cps);
	assert_int_equal(v.checkpoints, cps);
	assert_int_equal(v.external, cps);
	assert_int_equal(v.last_seq, n + cps);
	mt_audit_close(a);
}

/* A quiet log: no 1,000 records, but an hour of record time. */
static void checkpoint_every_hour_of_record_time(void **state)
{
	struct fx *fx = *state;
	struct mt_audit *a = open_writer(fx, 1000, 0, true);
	struct mt_audit_event ev = {"hub", "mqtt.connect", "icu-1", MT_AUDIT_OK, NULL};
	struct mt_audit_verdict v;
	struct counter c;
	const uint64_t min = 60000;
	bool done = true;

	/* Records at 0, 20, 40 minutes: none due; at 60 the first is an hour old. */
	for (uint64_t m = 0; m <= 40; m += 20)
		assert_int_equal(mt_audit_append(a, T0 + m * min, &ev, NULL), MT_OK);
	c = count(mt_audit_store_of(a));
	assert_int_equal(c.checkpoints, 0);
	assert_int_equal(mt_audit_append(a, T0 + 60 * min, &ev, NULL), MT_OK);
	c = count(mt_audit_store_of(a));
	assert_int_equal(c.checkpoints, 1);
	assert_int_equal(c.cp_seqs[0], 5);

	/* tick: nothing uncovered → nothing; one record, 59 minutes → nothing;
	 * an hour → a checkpoint. */
	assert_int_equal(mt_audit_tick(a, T0 + 200 * min, &done), MT_OK);
	assert_false(done);
	assert_int_equal(mt_audit_append(a, T0 + 200 * min, &ev, NULL), MT_OK);
	assert_int_equal(mt_audit_tick(a, T0 + 259 * min, &done), MT_OK);
	assert_false(done);
	assert_int_equal(mt_audit_tick(a, T0 + 260 * min, &done), MT_OK);
	assert_true(done);
	c = count(mt_audit_store_of(a));
	assert_int_equal(c.checkpoints, 2);
	assert_int_equal(c.cp_seqs[1], 7);
	/* A clock that went backwards makes nothing due and breaks nothing. */
	assert_int_equal(mt_audit_append(a, T0, &ev, NULL), MT_OK);
	assert_int_equal(mt_audit_tick(a, T0 - 1, &done), MT_OK);
	assert_false(done);

	assert_int_equal(
	        mt_audit_verify(mt_audit_store_of(a), mt_key_public(fx->key), fx->cpfile, &v),
	        MT_OK);
	assert_int_equal(v.checkpoints, 2);
	assert_int_equal(v.external, 2);
	mt_audit_close(a);
}

static void checkpoint_on_demand(void **state)
{
	struct fx *fx = *state;
	struct mt_audit *a = open_writer(fx, 1000, 0, true);
	struct mt_audit_event ev = {"bob", "user.login", NULL, MT_AUDIT_OK,
	                            "{\"ip\":\"10.0.0.9\"}"};
	struct mt_audit_verdict v;
	bool done = true;

	assert_int_equal(mt_audit_checkpoint(a, T0, &done), MT_OK); /* empty log */
	assert_false(done);
	assert_int_equal(mt_audit_append(a, T0, &ev, NULL), MT_OK);
	assert_int_equal(mt_audit_checkpoint(a, T0 + 1, &done), MT_OK);
	assert_true(done);
	assert_int_equal(mt_audit_checkpoint(a, T0 + 2, &done), MT_OK); /* nothing new */
	assert_false(done);
	assert_int_equal(file_lines(fx->cpfile), 1);
	assert_int_equal(
	        mt_audit_verify(mt_audit_store_of(a), mt_key_public(fx->key), fx->cpfile, &v),
	        MT_OK);
	assert_int_equal(v.records, 2);
	assert_int_equal(v.external, 1);
	mt_audit_close(a);
}

/* The hashed bytes: deterministic CBOR with keys 0..10, hash = SHA-256. */
static void record_encoding_is_strict_cbor(void **state)
{
	(void)state;
	/* clang-format off */
	static const uint8_t head[] = {
		0xab,                                      /* map of 11 */
		0x00, 0x01,                                /* 0: version 1 */
		0x01, 0x07,                                /* 1: seq 7 */
		0x02, 0x1b, 0x00, 0x00, 0x01, 0x9a, 0xc8, 0x79, 0x8b, 0x00, /* 2: time */
		0x03, 0x00,                                /* 3: kind event */
		0x04, 0x63, 'h', 'u', 'b',                 /* 4: actor */
		0x05, 0x6f, 'o', 'n', 'b', 'o', 'a', 'r', 'd', '.',
		            'r', 'e', 'f', 'u', 's', 'e', 'd', /* 5: action */
		0x06, 0x65, 'i', 'c', 'u', '-', '7',       /* 6: subject */
		0x07, 0x01,                                /* 7: refused */
		0x08, 0x62, '{', '}',                      /* 8: detail */
		0x09, 0x58, 0x20,                          /* 9: prev_hash, bstr 32 */
	};
	/* clang-format on */
	struct mt_audit_record r;
	uint8_t enc[MT_AUDIT_ENCODING_MAX], h1[32], h2[32];
	size_t n = 0;

	memset(&r, 0, sizeof r);
	r.seq = 7;
	r.time_ms = T0;
	r.kind = MT_AUDIT_EVENT;
	r.outcome = MT_AUDIT_REFUSED;
	memcpy(r.actor, "hub", 4);
	memcpy(r.action, "onboard.refused", 16);
	memcpy(r.subject, "icu-7", 6);
	memcpy(r.detail, "{}", 3);
	memset(r.prev_hash, 0xaa, 32);
	assert_int_equal(mt_audit_record_encode(&r, enc, sizeof enc, &n), MT_OK);
	assert_int_equal(n, sizeof head + 32 + 2);
	assert_memory_equal(enc, head, sizeof head);
	assert_int_equal(enc[sizeof head + 32], 0x0a); /* 10: checkpoint */
	assert_int_equal(enc[sizeof head + 33], 0x40); /* empty bstr */
	assert_int_equal(mt_cbor_validate(enc, n, NULL, 0), MT_OK);
	assert_int_equal(mt_sha256(enc, n, h1), MT_OK);
	assert_int_equal(mt_audit_record_hash(&r, h2), MT_OK);
	assert_memory_equal(h1, h2, 32);
	/* Every field is hashed: changing any one changes the hash. */
	r.outcome = MT_AUDIT_ERROR;
	assert_int_equal(mt_audit_record_hash(&r, h2), MT_OK);
	assert_memory_not_equal(h1, h2, 32);
	/* An out-of-range field cannot be encoded. */
	r.kind = (enum mt_audit_kind)5;
	assert_int_equal(mt_audit_record_encode(&r, enc, sizeof enc, &n), MT_ERR_AUDIT_FORMAT);
	r.kind = MT_AUDIT_EVENT;
	memset(r.actor, 'a', sizeof r.actor); /* no NUL inside the field */
	assert_int_equal(mt_audit_record_hash(&r, h2), MT_ERR_AUDIT_FORMAT);
}

static void bad_events_refused_nothing_written(void **state)
{
	struct fx *fx = *state;
	struct mt_audit *a = open_writer(fx, 1000, 0, false);
	static char long_detail[MT_AUDIT_DETAIL_MAX + 16];
	static char long_actor[MT_AUDIT_ACTOR_MAX + 2];
	struct {
		struct mt_audit_event ev;
		enum mt_err want;
	} cases[] = {
	        {{NULL, "a.b", NULL, MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"", "a.b", NULL, MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{long_actor, "a.b", NULL, MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", "Onboard", NULL, MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", "a..b", NULL, MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", ".a", NULL, MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", "a.", NULL, MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", "", NULL, MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", "a b", NULL, MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", "a.b", "line\nbreak", MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", "a.b", "\xc3\x28", MT_AUDIT_OK, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", "a.b", NULL, (enum mt_audit_outcome)3, NULL}, MT_ERR_AUDIT_FIELD},
	        {{"x", "a.b", NULL, MT_AUDIT_OK, "[]"}, MT_ERR_AUDIT_DETAIL},
	        {{"x", "a.b", NULL, MT_AUDIT_OK, "1"}, MT_ERR_AUDIT_DETAIL},
	        {{"x", "a.b", NULL, MT_AUDIT_OK, "{\"a\":1"}, MT_ERR_AUDIT_DETAIL},
	        {{"x", "a.b", NULL, MT_AUDIT_OK, "{\"a\":1,\"a\":2}"}, MT_ERR_AUDIT_DETAIL},
	        {{"x", "a.b", NULL, MT_AUDIT_OK, "{\"a\":\"\xff\"}"}, MT_ERR_AUDIT_DETAIL},
	        {{"x", "a.b", NULL, MT_AUDIT_OK, long_detail}, MT_ERR_AUDIT_DETAIL},
	};
	struct mt_audit_event good = {"x", "a_1.b2.c", "", MT_AUDIT_ERROR, " { \"k\" : [1, 2] } "};
	struct counter c;
	uint64_t seq = 0;

	memset(long_actor, 'a', sizeof long_actor - 1);
	long_detail[0] = '{';
	long_detail[1] = '"';
	memset(long_detail + 2, 'd', sizeof long_detail - 6);
	memcpy(long_detail + sizeof long_detail - 4, "\":1", 3);
	long_detail[sizeof long_detail - 2] = '}';
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum mt_err e = mt_audit_append(a, T0, &cases[i].ev, NULL);
		if (e != cases[i].want)
			fail_msg("case %zu: %d, want %d", i, e, cases[i].want);
	}
	c = count(mt_audit_store_of(a));
	assert_int_equal(c.events + c.checkpoints, 0);
	assert_int_equal(mt_audit_append(a, T0, &good, &seq), MT_OK);
	assert_int_equal(seq, 1);
	assert_int_equal(mt_audit_append(a, (uint64_t)INT64_MAX + 1, &good, &seq), MT_ERR_ARG);
	mt_audit_close(a);
}

static void sqlite_store_wal_triggers_conflict(void **state)
{
	struct fx *fx = *state;
	struct mt_audit *a = open_writer(fx, 1000, 0, false);
	struct mt_audit_event ev = {"x", "a.b", NULL, MT_AUDIT_OK, NULL};
	struct mt_audit_store *st;
	struct mt_audit_record *r = calloc(1, sizeof *r);
	sqlite3 *db;
	sqlite3_stmt *q;
	char *err = NULL;

	assert_non_null(r);
	assert_int_equal(mt_audit_append(a, T0, &ev, NULL), MT_OK);
	assert_int_equal(mt_audit_append(a, T0, &ev, NULL), MT_OK);
	st = mt_audit_store_of(a);
	/* The store refuses a second record 2. */
	assert_int_equal(st->ops->last(st->ctx, r), MT_OK);
	assert_int_equal(r->seq, 2);
	assert_false(r->malformed);
	assert_int_equal(st->ops->begin(st->ctx), MT_OK);
	assert_int_equal(st->ops->append(st->ctx, r), MT_ERR_AUDIT_CONFLICT);
	st->ops->rollback(st->ctx);

	assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	assert_int_not_equal(
	        sqlite3_exec(db, "UPDATE audit SET actor = 'y' WHERE seq = 1", NULL, NULL, &err),
	        SQLITE_OK);
	assert_non_null(strstr(err, "append-only"));
	sqlite3_free(err);
	err = NULL;
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit WHERE seq = 2", NULL, NULL, &err),
	                     SQLITE_OK);
	assert_non_null(strstr(err, "append-only"));
	sqlite3_free(err);
	sqlite3_close(db);
	assert_int_equal(count(st).events, 2);
	free(r);
	mt_audit_close(a);
}

struct lines {
	size_t n;
	uint64_t first, last;
	size_t checkpoints;
	int bad;
};

static enum mt_err line_cb(const char *line, size_t len, void *arg)
{
	struct lines *l = arg;
	json_error_t jerr;
	json_t *o;
	const char *hash, *prev;
	uint64_t seq;

	if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1) != NULL) {
		l->bad++;
		return MT_OK;
	}
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (o == NULL) {
		print_error("bad JSON line: %s (%s)\n", line, jerr.text);
		l->bad++;
		return MT_OK;
	}
	seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
	hash = json_string_value(json_object_get(o, "hash"));
	prev = json_string_value(json_object_get(o, "prev_hash"));
	if (seq == 0 || hash == NULL || strlen(hash) != 64 || prev == NULL || strlen(prev) != 64 ||
	    !json_is_object(json_object_get(o, "detail")) ||
	    !json_is_string(json_object_get(o, "actor")) ||
	    !json_is_string(json_object_get(o, "time")) ||
	    json_integer_value(json_object_get(o, "time_ms")) <= 0)
		l->bad++;
	for (const char *p = hash; p != NULL && *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			l->bad++;
	if (strcmp(json_string_value(json_object_get(o, "kind")), "checkpoint") == 0) {
		l->checkpoints++;
		if (!json_is_string(json_object_get(o, "checkpoint")))
			l->bad++;
	}
	if (l->n == 0)
		l->first = seq;
	else if (seq != l->last + 1)
		l->bad++;
	l->last = seq;
	l->n++;
	json_decref(o);
	return MT_OK;
}

static void export_json_lines_parse(void **state)
{
	struct fx *fx = *state;
	struct mt_audit *a = open_writer(fx, 10, 0, false);
	struct mt_audit_event ev = {
	        "dr. \"quote\" \\ o'brien", "ui.patient.view",
	        "patient \xc3\xa9t\xc3\xa9 \xe2\x82\xac", MT_AUDIT_OK,
	        "{\"why\":\"line\\nbreak \\u0000 \xf0\x9f\x98\x80\",\"n\":[1,2.5]}"};
	struct lines l;
	struct mt_audit_record r;
	char buf[MT_AUDIT_JSON_MAX];
	size_t n = 0;
	json_t *o;

	for (int i = 0; i < 25; i++)
		assert_int_equal(mt_audit_append(a, T0 + (uint64_t)i, &ev, NULL), MT_OK);
	memset(&l, 0, sizeof l);
	assert_int_equal(mt_audit_export(mt_audit_store_of(a), 0, 0, line_cb, &l), MT_OK);
	assert_int_equal(l.bad, 0);
	assert_int_equal(l.n, 27); /* 25 events, 2 checkpoints */
	assert_int_equal(l.checkpoints, 2);
	assert_int_equal(l.first, 1);
	assert_int_equal(l.last, 27);

	memset(&l, 0, sizeof l);
	assert_int_equal(mt_audit_export(mt_audit_store_of(a), 5, 9, line_cb, &l), MT_OK);
	assert_int_equal(l.n, 5);
	assert_int_equal(l.first, 5);
	memset(&l, 0, sizeof l);
	assert_int_equal(mt_audit_tail(mt_audit_store_of(a), 3, line_cb, &l), MT_OK);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.first, 25);
	assert_int_equal(l.last, 27);
	memset(&l, 0, sizeof l);
	assert_int_equal(mt_audit_tail(mt_audit_store_of(a), 1000, line_cb, &l), MT_OK);
	assert_int_equal(l.n, 27);
	assert_int_equal(l.bad, 0);

	/* One line in detail: fields round-trip through jansson. */
	memset(&r, 0, sizeof r);
	r.seq = 1;
	r.time_ms = T0;
	memcpy(r.actor, ev.actor, strlen(ev.actor) + 1);
	memcpy(r.action, ev.action, strlen(ev.action) + 1);
	memcpy(r.subject, ev.subject, strlen(ev.subject) + 1);
	memcpy(r.detail, ev.detail, strlen(ev.detail) + 1);
	r.hash[0] = 0xab;
	assert_int_equal(mt_audit_record_json(&r, buf, sizeof buf, &n), MT_OK);
	o = json_loadb(buf, n, JSON_ALLOW_NUL, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "actor")), ev.actor);
	assert_string_equal(json_string_value(json_object_get(o, "subject")), ev.subject);
	assert_string_equal(json_string_value(json_object_get(o, "time")),
	                    "2025-11-28T03:20:00.000Z");
	assert_string_equal(json_string_value(json_object_get(o, "outcome")), "ok");
	assert_int_equal(json_array_size(json_object_get(json_object_get(o, "detail"), "n")), 2);
	assert_string_equal(json_string_value(json_object_get(o, "hash")),
	                    "ab00000000000000000000000000000000000000000000000000000000000000");
	json_decref(o);
	/* A tampered detail that is not JSON still gives a valid line. */
	memcpy(r.detail, "{\"x\":", 6);
	assert_int_equal(mt_audit_record_json(&r, buf, sizeof buf, &n), MT_OK);
	o = json_loadb(buf, n, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "detail_invalid")), "{\"x\":");
	json_decref(o);
	assert_int_equal(mt_audit_record_json(&r, buf, 40, &n), MT_ERR_BUFFER);
	mt_audit_close(a);
}

/* A hub key that cannot sign (here a derive-only key) loses no event: the
 * event is committed and the error reported; the checkpoint stays due.  An
 * outside file that cannot be written is reported after the commit. */
static void checkpoint_failures_keep_events(void **state)
{
	struct fx *fx = *state;
	struct mt_audit_store *st;
	struct mt_audit *a;
	struct mt_key *derive;
	struct mt_audit_config cfg = {2, 0, NULL};
	struct mt_audit_event ev = {"x", "a.b", NULL, MT_AUDIT_OK, NULL};
	struct mt_audit_verdict v;
	struct counter c;
	uint64_t seq = 99;
	bool done = true;

	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_DERIVE, SCALAR_A, 32, &derive),
	                 MT_OK);
	assert_int_equal(mt_audit_sqlite_open(fx->db, &st), MT_OK);
	assert_int_equal(mt_audit_open(st, derive, &cfg, &a), MT_OK);
	assert_int_equal(mt_audit_append(a, T0, &ev, &seq), MT_OK);
	assert_int_equal(seq, 1);
	assert_int_equal(mt_audit_append(a, T0, &ev, &seq), MT_ERR_KS_KEY_TYPE);
	assert_int_equal(seq, 2); /* committed all the same */
	assert_int_equal(mt_audit_append(a, T0, &ev, &seq), MT_ERR_KS_KEY_TYPE);
	assert_int_equal(seq, 3);
	assert_int_equal(mt_audit_checkpoint(a, T0, &done), MT_ERR_KS_KEY_TYPE);
	assert_false(done);
	c = count(mt_audit_store_of(a));
	assert_int_equal(c.events, 3);
	assert_int_equal(c.checkpoints, 0);
	mt_audit_close(a);
	mt_key_free(derive);

	/* The proper key takes over: the overdue checkpoint comes at once. */
	cfg.checkpoint_path = "/nonexistent-dir/checkpoints";
	assert_int_equal(mt_audit_sqlite_open(fx->db, &st), MT_OK);
	assert_int_equal(mt_audit_open(st, fx->key, &cfg, &a), MT_OK);
	assert_int_equal(mt_audit_append(a, T0, &ev, &seq), MT_ERR_IO);
	assert_int_equal(seq, 4);
	c = count(mt_audit_store_of(a));
	assert_int_equal(c.events, 4);
	assert_int_equal(c.checkpoints, 1);
	assert_int_equal(c.cp_seqs[0], 5);
	assert_int_equal(mt_audit_verify(mt_audit_store_of(a), mt_key_public(fx->key), NULL, &v),
	                 MT_OK);
	assert_int_equal(v.checkpoints, 1);
	mt_audit_close(a);
}

#define KEYED(fn)                                                                                  \
	cmocka_unit_test_setup_teardown(fn, setup_p256, fx_teardown),                              \
	        cmocka_unit_test_setup_teardown(fn, setup_ed25519, fx_teardown),                   \
	        cmocka_unit_test_setup_teardown(fn, setup_token, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        KEYED(five_thousand_records_verify),
	        KEYED(checkpoint_every_hour_of_record_time),
	        cmocka_unit_test_setup_teardown(checkpoint_on_demand, setup_p256, fx_teardown),
	        cmocka_unit_test(record_encoding_is_strict_cbor),
	        cmocka_unit_test_setup_teardown(bad_events_refused_nothing_written, setup_p256,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(sqlite_store_wal_triggers_conflict, setup_p256,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(export_json_lines_parse, setup_p256, fx_teardown),
	        cmocka_unit_test_setup_teardown(checkpoint_failures_keep_events, setup_p256,
	                                        fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
