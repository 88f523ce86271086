/*
 * test_syncer.c — deferred durability of the hub's store (src/hub/syncer.c,
 * mt_store_defer_sync / mt_store_sync):
 *
 *   - a commit on a deferring connection is visible at once, and the jobs
 *     queued after it run after an fsync, in the order queued, told that
 *     the rows are durable; mt_syncer_wait returns after them;
 *   - a job queued while the syncer runs jobs waits for a later fsync (a
 *     job never rides on an fsync that began before its commit);
 *   - stopping runs what is still queued;
 *   - bad arguments and a deployment without a store are refused.
 *
 * The KEK lives in a SoftHSM2 token made once for the file (tests/support).
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

#include "medtrust/mt_config.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_store.h"
#include "mt_softhsm.h"
#include "syncer.h"

static struct mt_softhsm hsm;
static char kek_uri[512], tmpdir[256];
static int n_db;

static int group_setup(void **state)
{
	(void)state;
	if (mt_softhsm_init(&hsm, "syncer-test", "1234", "5678") != 0)
		return -1;
	if (mt_softhsm_uri(&hsm, "kek", NULL, kek_uri, sizeof kek_uri) != 0 ||
	    mt_key_generate_kek(kek_uri) != MT_OK)
		return -1;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mt-syncer-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	char cmd[400];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return -1;
	return mt_softhsm_cleanup(&hsm);
}

/* A deployment that names a fresh data.db and the KEK. */
static struct mt_deploy *deploy_new(bool with_store)
{
	static const char *const known[] = {"data_path", "kek_key"};
	struct mt_deploy *d = calloc(1, sizeof *d);
	char text[1200];
	int n;

	assert_non_null(d);
	if (with_store)
		n = snprintf(text, sizeof text, "data_path %s/data-%d.db\nkek_key %s\n", tmpdir,
		             ++n_db, kek_uri);
	else /* no data_path, no db_path: nowhere to open a store */
		n = snprintf(text, sizeof text, "kek_key %s\n", kek_uri);
	assert_true(n > 0 && (size_t)n < sizeof text);
	assert_int_equal(mt_config_parse(text, (size_t)n, known, 2, &d->conf, NULL), MT_OK);
	return d;
}

static void deploy_free(struct mt_deploy *d)
{
	mt_kek_free(d->kek);
	mt_config_free(d->conf);
	free(d);
}

static int64_t put_reading(struct mt_store *s, const char *dev, uint64_t ctr)
{
	static const uint8_t sign1[] = {0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26};
	struct mt_store_reading r = {
	        .dev = dev, .ctr = ctr, .epoch = 1, .typ = 1, .ts_ms = 1000 + ctr,
	        .received_ms = 1100 + ctr, .cert_serial = "01", .sign1 = sign1,
	        .sign1_len = sizeof sign1,
	};
	int64_t id = 0;

	assert_int_equal(mt_store_reading_put(s, &r, &id), MT_OK);
	return id;
}

/* What the jobs saw, in the order they ran. */
struct trace {
	struct mt_syncer *s;
	int order[8];
	bool durable[8];
	unsigned long long syncs_at[8];
	size_t n;
};

struct job {
	struct trace *t;
	int tag;
	bool requeue; /* queue job tag+100 from inside this one */
};

static void job_fn(void *arg, bool durable)
{
	struct job *j = arg;
	struct trace *t = j->t;

	if (t->n < 8) {
		t->order[t->n] = j->tag;
		t->durable[t->n] = durable;
		mt_syncer_counts(t->s, &t->syncs_at[t->n], NULL);
		t->n++;
	}
	if (j->requeue) {
		struct job *k = calloc(1, sizeof *k);

		assert_non_null(k);
		k->t = t;
		k->tag = j->tag + 100;
		assert_int_equal(mt_syncer_after(t->s, job_fn, k), MT_OK);
	}
	free(j);
}

static void queue_job(struct trace *t, int tag, bool requeue)
{
	struct job *j = calloc(1, sizeof *j);

	assert_non_null(j);
	j->t = t;
	j->tag = tag;
	j->requeue = requeue;
	assert_int_equal(mt_syncer_after(t->s, job_fn, j), MT_OK);
}

static void jobs_run_in_order_after_the_fsync(void **state)
{
	struct mt_deploy *d = deploy_new(true);
	struct mt_store *w = NULL, *r = NULL;
	struct trace t = {0};
	struct mt_store_row row;
	unsigned long long syncs = 0, failed = 1;
	int64_t id;

	(void)state;
	assert_int_equal(mt_syncer_start(d, &t.s), MT_OK);
	assert_int_equal(mt_deploy_open_store(d, &w), MT_OK);
	assert_int_equal(mt_store_defer_sync(w), MT_OK);
	assert_int_equal(mt_store_begin(w), MT_OK);
	id = put_reading(w, "dev-1", 7);
	assert_int_equal(mt_store_commit(w), MT_OK);
	/* Committed is visible to another connection before any fsync. */
	assert_int_equal(mt_deploy_open_store(d, &r), MT_OK);
	assert_int_equal(mt_store_reading_get(r, id, &row), MT_OK);
	assert_int_equal(row.ctr, 7);
	mt_store_row_clear(&row);

	queue_job(&t, 1, false);
	queue_job(&t, 2, false);
	queue_job(&t, 3, false);
	assert_int_equal(mt_syncer_wait(t.s), MT_OK);
	assert_int_equal(t.n, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(t.order[i], (int)i + 1);
		assert_true(t.durable[i]);
		assert_true(t.syncs_at[i] >= 1); /* ran after an fsync */
	}
	mt_syncer_counts(t.s, &syncs, &failed);
	assert_true(syncs >= 1);
	assert_int_equal(failed, 0);
	/* The store's own fsync works from any connection to the file. */
	assert_int_equal(mt_store_sync(r), MT_OK);
	mt_store_close(r);
	mt_store_close(w);
	mt_syncer_stop(t.s);
	deploy_free(d);
}

static void a_job_queued_late_waits_for_a_later_fsync(void **state)
{
	struct mt_deploy *d = deploy_new(true);
	struct trace t = {0};

	(void)state;
	assert_int_equal(mt_syncer_start(d, &t.s), MT_OK);
	queue_job(&t, 1, true); /* queues 101 while the syncer runs jobs */
	assert_int_equal(mt_syncer_wait(t.s), MT_OK);
	assert_int_equal(mt_syncer_wait(t.s), MT_OK); /* 101 has run by now */
	assert_int_equal(t.n, 2);
	assert_int_equal(t.order[0], 1);
	assert_int_equal(t.order[1], 101);
	assert_true(t.syncs_at[1] > t.syncs_at[0]);
	mt_syncer_stop(t.s);
	deploy_free(d);
}

static void stop_runs_what_is_queued(void **state)
{
	struct mt_deploy *d = deploy_new(true);
	struct trace t = {0};

	(void)state;
	assert_int_equal(mt_syncer_start(d, &t.s), MT_OK);
	queue_job(&t, 5, false);
	queue_job(&t, 6, false);
	mt_syncer_stop(t.s);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.order[0], 5);
	assert_int_equal(t.order[1], 6);
	assert_true(t.durable[0] && t.durable[1]);
	deploy_free(d);
}

static void refusals(void **state)
{
	struct mt_deploy *d = deploy_new(false);
	struct mt_syncer *s = NULL;

	(void)state;
	assert_int_not_equal(mt_syncer_start(d, &s), MT_OK);
	assert_null(s);
	assert_int_equal(mt_syncer_start(NULL, &s), MT_ERR_ARG);
	assert_int_equal(mt_syncer_after(NULL, job_fn, NULL), MT_ERR_ARG);
	assert_int_equal(mt_store_sync(NULL), MT_ERR_ARG);
	assert_int_equal(mt_store_defer_sync(NULL), MT_ERR_ARG);
	deploy_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(jobs_run_in_order_after_the_fsync),
	        cmocka_unit_test(a_job_queued_late_waits_for_a_later_fsync),
	        cmocka_unit_test(stop_runs_what_is_queued),
	        cmocka_unit_test(refusals),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
