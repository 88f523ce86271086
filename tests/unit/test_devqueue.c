/*
 * test_devqueue.c — the device's store-and-forward queue and message
 * counter (src/agent/queue.h; protocol §4a, §5; threats FI07, FI19, A22;
 * docs/device-agent.md).
 *
 * Plain behaviour first: puts walked back oldest first with their bytes,
 * walks from a counter, acknowledgements by ranges in any order, with
 * overlaps and with counters never queued (A22: such a receipt releases
 * nothing else), contents and counts kept across close and reopen, the
 * argument refusals, and the directory lock.
 *
 * The full-queue policy (FI07) with literal expectations: routine packets
 * dropped oldest first and counted, the count persisted; alerts never
 * dropped, accepted up to twice the bound, then MT_ERR_QUEUE_FULL; a
 * refused alert retried with its own counter; a smaller bound at reopen.
 * Each time the conservation equation "put − acked − present = dropped"
 * is checked: what the device would report is what it lost.
 *
 * Damage: a flipped byte, a truncated file, a renamed file, a bad name, a
 * symbolic link and a directory under a packet's name are moved to bad/
 * and never walked; damage found during a walk likewise; temporary
 * leftovers are removed and foreign files left alone.
 *
 * The counter: strictly increasing, a reopen continues at the end of the
 * reserved block, the 2^63 − 1 limit, and every kind of damaged file
 * refused with MT_ERR_QUEUE_CORRUPT.
 *
 * FI19: a forked child runs a fixed scenario and _exit()s right after the
 * N-th system call that changes the disk (queue_int.h's hook), for every
 * N; the parent reopens and checks that no counter handed out is handed
 * out again, that every packet whose put returned MT_OK is there, that
 * nothing partial is walked, and that the dropped count is exact, against
 * a model of the policy that records what each operation may change.  A
 * second sweep kills a free-running child with SIGKILL at random moments.
 * Finally a throughput figure (puts per second, each with its fsyncs) is
 * printed; nothing is asserted about it.
 */
#define _XOPEN_SOURCE 700

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "medtrust/mt_crypto.h"
#include "mt_testutil.h"
#include "queue.h"
#include "queue_int.h"

#define V MT_DQ_VITALS
#define A MT_DQ_ALERT
#define S MT_DQ_STATUS
#define K MT_DQ_ACK
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixture: a temporary directory ------------------------------------------ */

struct fx {
	char base[64];
	char q[96];   /* base/q, the queue */
	char ctr[96]; /* base/ctr, the counter file */
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void rm_tree(const char *dir)
{
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
		/* best effort */
	}
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);

	if (fx == NULL)
		return -1;
	snprintf(fx->base, sizeof fx->base, "/tmp/mt-dq-XXXXXX");
	if (mkdtemp(fx->base) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->q, sizeof fx->q, "%s/q", fx->base);
	snprintf(fx->ctr, sizeof fx->ctr, "%s/ctr", fx->base);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	rm_tree(fx->base);
	free(fx);
	return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

/* The bytes of the packet with counter ctr: a length and content that
 * depend on ctr, so that a walk can check every byte it is given. */
static size_t pkt_len(uint64_t ctr)
{
	return 1 + (size_t)(ctr * 37 % 300);
}

static void pkt_fill(uint64_t ctr, uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(ctr * 31 + i * 7 + (ctr >> 8));
}

static enum mt_err put(struct mt_dq *q, uint64_t ctr, enum mt_dq_topic t)
{
	uint8_t buf[400];
	size_t len = pkt_len(ctr);

	pkt_fill(ctr, buf, len);
	return mt_dq_put(q, ctr, t, buf, len);
}

#define WALK_MAX 64
struct walked {
	size_t n;
	uint64_t ctr[WALK_MAX];
	enum mt_dq_topic topic[WALK_MAX];
	bool bytes_ok;
	size_t stop_after; /* 0: never */
};

static enum mt_err collect(void *ctx, uint64_t ctr, enum mt_dq_topic topic, const uint8_t *pkt,
                           size_t len)
{
	struct walked *w = ctx;
	uint8_t want[400];

	if (w->n == WALK_MAX)
		return MT_ERR_BUFFER;
	if (len != pkt_len(ctr)) {
		w->bytes_ok = false;
	} else {
		pkt_fill(ctr, want, len);
		if (memcmp(want, pkt, len) != 0)
			w->bytes_ok = false;
	}
	w->ctr[w->n] = ctr;
	w->topic[w->n] = topic;
	w->n++;
	if (w->stop_after != 0 && w->n == w->stop_after)
		return MT_ERR_REFUSED;
	return MT_OK;
}

static void walk(struct mt_dq *q, uint64_t from, struct walked *w)
{
	memset(w, 0, sizeof *w);
	w->bytes_ok = true;
	assert_int_equal(mt_dq_walk(q, from, collect, w), MT_OK);
	assert_true(w->bytes_ok);
}

/* The walk must give exactly these counters, in this order. */
static void expect_walk(struct mt_dq *q, const uint64_t *want, size_t n)
{
	struct walked w;

	walk(q, 0, &w);
	if (w.n != n)
		fail_msg("walk gave %zu packets, want %zu", w.n, n);
	for (size_t i = 0; i < n; i++) {
		if (w.ctr[i] != want[i])
			fail_msg("walk[%zu] = %" PRIu64 ", want %" PRIu64, i, w.ctr[i], want[i]);
	}
	assert_int_equal(mt_dq_count(q), n);
	assert_true(mt_dq_oldest(q) == (n == 0 ? UINT64_MAX : want[0]));
}

static size_t count_entries(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (prefix == NULL || strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void path_of(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < cap);
}

static void pkt_path(char *out, size_t cap, const char *dir, uint64_t ctr)
{
	char name[32];

	snprintf(name, sizeof name, "%016" PRIx64 ".pkt", ctr);
	path_of(out, cap, dir, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- the queue: plain behaviour ----------------------------------------------- */

static void test_put_walk_ack(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;
	struct walked w;
	size_t removed = 99;

	assert_int_equal(mt_dq_open(fx->q, 100, &q), MT_OK);
	expect_walk(q, NULL, 0);
	for (uint64_t c = 10; c <= 30; c += 2)
		assert_int_equal(put(q, c, c % 6 == 0 ? A : V), MT_OK);
	{
		const uint64_t want[] = {10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
		expect_walk(q, want, N(want));
	}
	walk(q, 0, &w);
	assert_int_equal(w.topic[0], V); /* 10 */
	assert_int_equal(w.topic[1], A); /* 12 */
	assert_int_equal(w.topic[4], A); /* 18 */
	/* From a counter: the first counter ≥ from, between and on packets. */
	walk(q, 21, &w);
	assert_int_equal(w.n, 5);
	assert_true(w.ctr[0] == 22);
	walk(q, 30, &w);
	assert_int_equal(w.n, 1);
	walk(q, 31, &w);
	assert_int_equal(w.n, 0);
	/* The callback's refusal stops the walk and is returned. */
	memset(&w, 0, sizeof w);
	w.bytes_ok = true;
	w.stop_after = 3;
	assert_int_equal(mt_dq_walk(q, 0, collect, &w), MT_ERR_REFUSED);
	assert_int_equal(w.n, 3);

	/* A22: a receipt naming only counters never queued releases nothing. */
	{
		const uint64_t r[][2] = {{11, 11}, {13, 13}, {0, 9}, {31, UINT64_MAX}, {29, 29}};
		assert_int_equal(mt_dq_ack(q, r, N(r), &removed), MT_OK);
		assert_int_equal(removed, 0);
		assert_int_equal(mt_dq_count(q), 11);
	}
	/* Unsorted, overlapping, reversed (ignored), half outside. */
	{
		const uint64_t r[][2] = {{26, 27}, {5, 12}, {11, 14}, {20, 16}, {29, 1000}};
		const uint64_t want[] = {16, 18, 20, 22, 24, 28};
		assert_int_equal(mt_dq_ack(q, r, N(r), &removed), MT_OK);
		assert_int_equal(removed, 5); /* 10 12 14 26 30 */
		expect_walk(q, want, N(want));
	}
	/* Again: already acknowledged counters are ignored. */
	{
		const uint64_t r[][2] = {{10, 14}, {26, 26}};
		assert_int_equal(mt_dq_ack(q, r, N(r), NULL), MT_OK);
		assert_int_equal(mt_dq_count(q), 6);
	}
	assert_int_equal(mt_dq_ack(q, NULL, 0, &removed), MT_OK);
	assert_int_equal(removed, 0);
	mt_dq_close(q);

	/* Reopen keeps contents (bytes checked by the walk) and topics. */
	assert_int_equal(mt_dq_open(fx->q, 100, &q), MT_OK);
	{
		const uint64_t want[] = {16, 18, 20, 22, 24, 28};
		expect_walk(q, want, N(want));
		walk(q, 0, &w);
		assert_int_equal(w.topic[0], V);
		assert_int_equal(w.topic[1], A);
		assert_int_equal(w.topic[5], V);
	}
	assert_int_equal(mt_dq_dropped(q), 0);
	assert_int_equal(mt_dq_bad(q), 0);
	/* One file per queued packet, nothing else but bad/. */
	assert_int_equal(count_entries(fx->q, NULL), 7);
	{
		const uint64_t r[][2] = {{0, UINT64_MAX}};
		assert_int_equal(mt_dq_ack(q, r, 1, &removed), MT_OK);
		assert_int_equal(removed, 6);
	}
	expect_walk(q, NULL, 0);
	assert_int_equal(count_entries(fx->q, NULL), 1);
	mt_dq_close(q);
}

/* The callback may acknowledge and put while it walks. */
struct ack_in_walk {
	struct mt_dq *q;
	size_t n;
	uint64_t seen[16];
};

static enum mt_err ack_as_we_go(void *ctx, uint64_t ctr, enum mt_dq_topic topic, const uint8_t *pkt,
                                size_t len)
{
	struct ack_in_walk *a = ctx;
	const uint64_t r[][2] = {{ctr, ctr + 1}}; /* this one and the next */

	(void)topic;
	(void)pkt;
	(void)len;
	if (a->n == N(a->seen))
		return MT_ERR_BUFFER;
	a->seen[a->n++] = ctr;
	if (mt_dq_ack(a->q, r, 1, NULL) != MT_OK)
		return MT_ERR_IO;
	if (ctr == 1 && put(a->q, 10, V) != MT_OK)
		return MT_ERR_IO;
	return MT_OK;
}

static void test_walk_callback_modifies(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;
	struct ack_in_walk a = {0};

	assert_int_equal(mt_dq_open(fx->q, 100, &q), MT_OK);
	for (uint64_t c = 1; c <= 6; c++)
		assert_int_equal(put(q, c, V), MT_OK);
	a.q = q;
	assert_int_equal(mt_dq_walk(q, 0, ack_as_we_go, &a), MT_OK);
	/* 1 acks 1–2 and puts 10; 3 acks 3–4; 5 acks 5–6; 10 acks itself. */
	assert_int_equal(a.n, 4);
	assert_true(a.seen[0] == 1 && a.seen[1] == 3 && a.seen[2] == 5 && a.seen[3] == 10);
	assert_int_equal(mt_dq_count(q), 0);
	mt_dq_close(q);
}

static void test_arguments(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q, *q2 = (struct mt_dq *)1;
	uint8_t big[MT_DQ_MAX_LEN + 1] = {0};

	assert_int_equal(mt_dq_open(fx->q, 0, &q), MT_ERR_ARG);
	assert_int_equal(mt_dq_open(fx->q, (size_t)MT_DQ_MAX_PACKETS + 1, &q), MT_ERR_ARG);
	assert_int_equal(mt_dq_open(NULL, 4, &q), MT_ERR_ARG);
	assert_int_equal(mt_dq_open("", 4, &q), MT_ERR_ARG);
	{
		char nope[160];
		path_of(nope, sizeof nope, fx->base, "no/such/parent");
		assert_int_equal(mt_dq_open(nope, 4, &q), MT_ERR_IO);
	}
	assert_int_equal(mt_dq_open(fx->q, 4, &q), MT_OK);
	/* One process, one open: the directory is locked. */
	assert_int_equal(mt_dq_open(fx->q, 4, &q2), MT_ERR_IO);
	assert_null(q2);

	assert_int_equal(mt_dq_put(q, 5, V, big, 0), MT_ERR_ARG);
	assert_int_equal(mt_dq_put(q, 5, V, big, MT_DQ_MAX_LEN + 1), MT_ERR_ARG);
	assert_int_equal(mt_dq_put(q, 5, V, NULL, 10), MT_ERR_ARG);
	assert_int_equal(mt_dq_put(q, 5, (enum mt_dq_topic)0, big, 10), MT_ERR_ARG);
	assert_int_equal(mt_dq_put(q, 5, (enum mt_dq_topic)5, big, 10), MT_ERR_ARG);
	assert_int_equal(mt_dq_put(q, MT_CTR_LIMIT + 1, V, big, 10), MT_ERR_ARG);
	assert_int_equal(mt_dq_put(q, MT_CTR_LIMIT, V, big, MT_DQ_MAX_LEN), MT_OK);
	{
		const uint64_t r[][2] = {{MT_CTR_LIMIT, MT_CTR_LIMIT}};
		assert_int_equal(mt_dq_ack(q, r, 1, NULL), MT_OK);
	}
	assert_int_equal(mt_dq_count(q), 0);
	/* Counters must increase past what is queued. */
	assert_int_equal(put(q, 5, S), MT_OK);
	assert_int_equal(put(q, 5, S), MT_ERR_ARG);
	assert_int_equal(put(q, 4, K), MT_ERR_ARG);
	assert_int_equal(put(q, 6, K), MT_OK);
	assert_int_equal(mt_dq_count(q), 2);
	assert_int_equal(mt_dq_ack(q, NULL, 1, NULL), MT_ERR_ARG);
	assert_int_equal(mt_dq_walk(q, 0, NULL, NULL), MT_ERR_ARG);
	mt_dq_close(q);
	mt_dq_close(NULL);
	/* The lock went with the close. */
	assert_int_equal(mt_dq_open(fx->q, 4, &q), MT_OK);
	{
		const uint64_t want[] = {5, 6};
		expect_walk(q, want, 2);
	}
	mt_dq_close(q);
}

/* ---- the full-queue policy (FI07) -------------------------------------------- */

/* What the device reports as dropped must be what it lost:
 * put − acked − queued. */
static void conservation(struct mt_dq *q, uint64_t put_ok, uint64_t acked)
{
	uint64_t lost = put_ok - acked - mt_dq_count(q);

	if (mt_dq_dropped(q) != lost)
		fail_msg("FI07: dropped %" PRIu64 " but %" PRIu64 " packets lost", mt_dq_dropped(q),
		         lost);
}

static void test_FI07_vitals_dropped_oldest_first(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;

	assert_int_equal(mt_dq_open(fx->q, 4, &q), MT_OK);
	for (uint64_t c = 1; c <= 4; c++)
		assert_int_equal(put(q, c, c == 3 ? S : V), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 0);
	assert_int_equal(put(q, 5, V), MT_OK);
	assert_int_equal(put(q, 6, K), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 2);
	{
		const uint64_t want[] = {3, 4, 5, 6};
		expect_walk(q, want, N(want));
	}
	conservation(q, 6, 0);
	mt_dq_close(q);

	/* The count survives a reopen and goes on counting. */
	assert_int_equal(mt_dq_open(fx->q, 4, &q), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 2);
	assert_int_equal(put(q, 7, V), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 3);
	{
		const uint64_t want[] = {4, 5, 6, 7};
		expect_walk(q, want, N(want));
	}
	conservation(q, 7, 0);
	/* An acknowledgement makes room: nothing more is dropped. */
	{
		const uint64_t r[][2] = {{4, 5}};
		assert_int_equal(mt_dq_ack(q, r, 1, NULL), MT_OK);
	}
	assert_int_equal(put(q, 8, V), MT_OK);
	assert_int_equal(put(q, 9, V), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 3);
	conservation(q, 9, 2);
	mt_dq_close(q);
	assert_int_equal(mt_dq_open(fx->q, 4, &q), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 3);
	conservation(q, 9, 2);
	mt_dq_close(q);
}

static void test_FI07_alerts_never_dropped(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;
	uint64_t c = 0, put_ok = 0;

	assert_int_equal(mt_dq_open(fx->q, 3, &q), MT_OK);
	assert_int_equal(put(q, ++c, V), MT_OK); /* 1 */
	assert_int_equal(put(q, ++c, A), MT_OK); /* 2 */
	assert_int_equal(put(q, ++c, V), MT_OK); /* 3 */
	/* At the bound an alert pushes out the oldest routine packet. */
	assert_int_equal(put(q, ++c, A), MT_OK); /* 4: drops 1 */
	assert_int_equal(put(q, ++c, A), MT_OK); /* 5: drops 3 */
	assert_int_equal(mt_dq_dropped(q), 2);
	{
		const uint64_t want[] = {2, 4, 5};
		expect_walk(q, want, N(want));
	}
	/* Only alerts: a routine packet is itself the oldest routine one. */
	assert_int_equal(put(q, ++c, V), MT_OK); /* 6: dropped */
	assert_int_equal(mt_dq_dropped(q), 3);
	assert_int_equal(mt_dq_count(q), 3);
	/* Alerts above the bound, up to twice it. */
	assert_int_equal(put(q, ++c, A), MT_OK); /* 7 */
	assert_int_equal(put(q, ++c, A), MT_OK); /* 8 */
	assert_int_equal(put(q, ++c, A), MT_OK); /* 9 */
	assert_int_equal(mt_dq_count(q), 6);
	assert_int_equal(put(q, ++c, A), MT_ERR_QUEUE_FULL); /* 10 */
	assert_int_equal(put(q, c, A), MT_ERR_QUEUE_FULL);
	assert_int_equal(put(q, c + 1, S), MT_OK); /* 11: dropped */
	assert_int_equal(mt_dq_dropped(q), 4);
	assert_int_equal(mt_dq_count(q), 6);
	put_ok = 9 + 1; /* 1–9 and 11 */
	conservation(q, put_ok, 0);
	mt_dq_close(q);

	/* After reopen the same holds; a receipt makes room and the refused
	 * alert goes in with its own counter (nothing newer was queued). */
	assert_int_equal(mt_dq_open(fx->q, 3, &q), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 4);
	assert_int_equal(put(q, 10, A), MT_ERR_QUEUE_FULL);
	{
		const uint64_t r[][2] = {{2, 2}};
		assert_int_equal(mt_dq_ack(q, r, 1, NULL), MT_OK);
	}
	assert_int_equal(put(q, 10, A), MT_OK);
	put_ok++;
	{
		const uint64_t want[] = {4, 5, 7, 8, 9, 10};
		expect_walk(q, want, N(want));
	}
	conservation(q, put_ok, 1);
	/* Drain to below the bound: routine packets are queued again. */
	{
		const uint64_t r[][2] = {{0, 8}};
		assert_int_equal(mt_dq_ack(q, r, 1, NULL), MT_OK);
	}
	assert_int_equal(put(q, 12, V), MT_OK);
	assert_int_equal(put(q, 13, V), MT_OK); /* 9 10 12 13: at 3, drops 12 */
	assert_int_equal(mt_dq_dropped(q), 5);
	{
		const uint64_t want[] = {9, 10, 13};
		expect_walk(q, want, N(want));
	}
	conservation(q, put_ok + 2, 5);
	mt_dq_close(q);
}

static void test_FI07_smaller_bound_at_open(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;

	assert_int_equal(mt_dq_open(fx->q, 10, &q), MT_OK);
	for (uint64_t c = 1; c <= 8; c++)
		assert_int_equal(put(q, c, c % 4 == 0 ? A : V), MT_OK); /* alerts 4, 8 */
	mt_dq_close(q);
	assert_int_equal(mt_dq_open(fx->q, 3, &q), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 5); /* 1 2 3 5 6 */
	{
		const uint64_t want[] = {4, 7, 8};
		expect_walk(q, want, N(want));
	}
	conservation(q, 8, 0);
	mt_dq_close(q);
	/* Bound 1 with two alerts: both kept, a third accepted (2 × 1). */
	assert_int_equal(mt_dq_open(fx->q, 1, &q), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 6);
	{
		const uint64_t want[] = {4, 8};
		expect_walk(q, want, N(want));
	}
	assert_int_equal(put(q, 9, A), MT_ERR_QUEUE_FULL);
	assert_int_equal(put(q, 9, V), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 7);
	mt_dq_close(q);
}

/* ---- damage -------------------------------------------------------------------- */

static void test_damaged_files_moved_to_bad(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;
	char p[160], p2[160], bad[160];
	uint8_t buf[1024];
	size_t n;

	path_of(bad, sizeof bad, fx->q, "bad");
	assert_int_equal(mt_dq_open(fx->q, 100, &q), MT_OK);
	for (uint64_t c = 1; c <= 8; c++)
		assert_int_equal(put(q, c, V), MT_OK);
	mt_dq_close(q);

	/* 1: a flipped byte in the body. */
	pkt_path(p, sizeof p, fx->q, 1);
	n = read_file(p, buf, sizeof buf);
	buf[20] ^= 0x01;
	write_file(p, buf, n);
	/* 2: truncated (the digest cut off). */
	pkt_path(p, sizeof p, fx->q, 2);
	n = read_file(p, buf, sizeof buf);
	assert_int_equal(truncate(p, (off_t)(n - 5)), 0);
	/* 3: renamed to counter 30 (the name no longer matches the inside). */
	pkt_path(p, sizeof p, fx->q, 3);
	pkt_path(p2, sizeof p2, fx->q, 30);
	assert_int_equal(rename(p, p2), 0);
	/* 4: a flipped byte in the header's length. */
	pkt_path(p, sizeof p, fx->q, 4);
	n = read_file(p, buf, sizeof buf);
	buf[17] ^= 0x01;
	write_file(p, buf, n);
	/* 5: the digest of the right bytes, but one byte appended. */
	pkt_path(p, sizeof p, fx->q, 5);
	n = read_file(p, buf, sizeof buf);
	buf[n] = 0;
	write_file(p, buf, n + 1);
	/* Not packets' names: upper-case hex, too short. */
	path_of(p, sizeof p, fx->q, "000000000000000A.pkt");
	write_file(p, "x", 1);
	path_of(p, sizeof p, fx->q, "0a.pkt");
	write_file(p, "x", 1);
	/* A symbolic link and a directory under packets' names. */
	pkt_path(p, sizeof p, fx->q, 40);
	pkt_path(p2, sizeof p2, fx->q, 6);
	assert_int_equal(symlink(p2, p), 0);
	pkt_path(p, sizeof p, fx->q, 41);
	assert_int_equal(mkdir(p, 0700), 0);
	/* An empty file. */
	pkt_path(p, sizeof p, fx->q, 42);
	write_file(p, "", 0);
	/* Temporary leftovers of a crash, and a foreign file. */
	path_of(p, sizeof p, fx->q, "tmp-put");
	write_file(p, "MTQ1", 4);
	path_of(p, sizeof p, fx->q, "tmp-dropped");
	write_file(p, "MT", 2);
	path_of(p, sizeof p, fx->q, "README");
	write_file(p, "hello", 5);

	assert_int_equal(mt_dq_open(fx->q, 100, &q), MT_OK);
	assert_int_equal(mt_dq_bad(q), 10);
	{
		const uint64_t want[] = {6, 7, 8};
		expect_walk(q, want, N(want));
	}
	assert_int_equal(count_entries(bad, NULL), 10);
	assert_int_equal(count_entries(fx->q, "tmp-"), 0);
	path_of(p, sizeof p, fx->q, "README");
	assert_true(exists(p));
	path_of(p, sizeof p, bad, "0000000000000001.pkt");
	assert_true(exists(p));
	/* The symbolic link went to bad/ as a link; its target is untouched. */
	pkt_path(p, sizeof p, fx->q, 6);
	assert_true(exists(p));

	/* Damage found by a walk: moved aside, counted, skipped. */
	pkt_path(p, sizeof p, fx->q, 7);
	n = read_file(p, buf, sizeof buf);
	buf[n - 1] ^= 0x80;
	write_file(p, buf, n);
	{
		const uint64_t want[] = {6, 8};
		expect_walk(q, want, N(want));
	}
	assert_int_equal(mt_dq_bad(q), 11);
	/* A file deleted behind the queue's back: counted as lost. */
	pkt_path(p, sizeof p, fx->q, 8);
	assert_int_equal(unlink(p), 0);
	{
		const uint64_t want[] = {6};
		expect_walk(q, want, N(want));
	}
	assert_int_equal(mt_dq_bad(q), 12);
	mt_dq_close(q);

	/* Nothing bad is met again at the next open. */
	assert_int_equal(mt_dq_open(fx->q, 100, &q), MT_OK);
	assert_int_equal(mt_dq_bad(q), 0);
	assert_int_equal(mt_dq_count(q), 1);
	mt_dq_close(q);
}

static void test_bad_dir_bounded(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;
	char p[160], bad[160];

	path_of(bad, sizeof bad, fx->q, "bad");
	assert_int_equal(mkdir(fx->q, 0700), 0);
	for (uint64_t c = 1; c <= MT_DQ_BAD_KEEP + 10; c++) {
		pkt_path(p, sizeof p, fx->q, c);
		write_file(p, "garbage", 7);
	}
	assert_int_equal(mt_dq_open(fx->q, 10, &q), MT_OK);
	assert_int_equal(mt_dq_bad(q), MT_DQ_BAD_KEEP + 10);
	assert_int_equal(mt_dq_count(q), 0);
	assert_int_equal(count_entries(bad, NULL), MT_DQ_BAD_KEEP);
	assert_int_equal(count_entries(fx->q, NULL), 1); /* bad/ */
	mt_dq_close(q);
}

static void test_damaged_dropped_record(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;
	char p[160];
	uint8_t buf[64];
	size_t n;

	assert_int_equal(mt_dq_open(fx->q, 1, &q), MT_OK);
	assert_int_equal(put(q, 1, V), MT_OK);
	assert_int_equal(put(q, 2, V), MT_OK);
	assert_int_equal(mt_dq_dropped(q), 1);
	mt_dq_close(q);
	path_of(p, sizeof p, fx->q, "dropped");
	n = read_file(p, buf, sizeof buf);
	assert_int_equal(n, 28);
	buf[11] ^= 0x01; /* the count */
	write_file(p, buf, n);
	/* Documented: moved to bad/, counted as bad, the count starts again. */
	assert_int_equal(mt_dq_open(fx->q, 1, &q), MT_OK);
	assert_int_equal(mt_dq_bad(q), 1);
	assert_int_equal(mt_dq_dropped(q), 0);
	assert_int_equal(mt_dq_count(q), 1);
	mt_dq_close(q);
}

/* ---- the counter ------------------------------------------------------------------ */

static void write_ctr_file(const char *path, uint64_t end)
{
	uint8_t rec[20], d[32];

	memcpy(rec, "MTC1", 4);
	for (int i = 0; i < 8; i++)
		rec[4 + i] = (uint8_t)(end >> (56 - 8 * i));
	assert_int_equal(mt_sha256(rec, 12, d), MT_OK);
	memcpy(rec + 12, d, 8);
	write_file(path, rec, sizeof rec);
}

static void test_counter_blocks(void **state)
{
	struct fx *fx = *state;
	struct mt_ctr *c;
	uint64_t v, last = 0;
	uint8_t buf[64];

	assert_int_equal(mt_ctr_open(fx->ctr, 4, &c), MT_OK);
	/* Created at 0. */
	assert_int_equal(read_file(fx->ctr, buf, sizeof buf), 20);
	for (uint64_t i = 0; i < 10; i++) {
		assert_int_equal(mt_ctr_next(c, &v), MT_OK);
		assert_true(v == i);
	}
	mt_ctr_close(c);
	/* 0–9 handed out from blocks ending 4, 8, 12: the rest of the last
	 * block is skipped. */
	assert_int_equal(mt_ctr_open(fx->ctr, 4, &c), MT_OK);
	assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	assert_true(v == 12);
	mt_ctr_close(c);
	/* A reopen without a next skips nothing more; a new block size
	 * applies from the next reservation. */
	assert_int_equal(mt_ctr_open(fx->ctr, 100, &c), MT_OK);
	assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	assert_true(v == 16);
	last = v;
	for (int i = 0; i < 250; i++) {
		assert_int_equal(mt_ctr_next(c, &v), MT_OK);
		assert_true(v == last + 1);
		last = v;
	}
	mt_ctr_close(c);
	assert_int_equal(mt_ctr_open(fx->ctr, 1, &c), MT_OK);
	assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	assert_true(v == 316); /* 16 + 3 × 100 */
	assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	assert_true(v == 317);
	mt_ctr_close(c);

	assert_int_equal(mt_ctr_open(fx->ctr, 0, &c), MT_ERR_ARG);
	assert_int_equal(mt_ctr_open(fx->ctr, MT_CTR_MAX_BLOCK + 1, &c), MT_ERR_ARG);
	assert_int_equal(mt_ctr_open(NULL, 1, &c), MT_ERR_ARG);
	assert_int_equal(mt_ctr_open("/tmp/", 1, &c), MT_ERR_ARG);
	assert_int_equal(mt_ctr_open("/nonexistent-mt-dir/ctr", 1, &c), MT_ERR_IO);
}

static void test_counter_limit(void **state)
{
	struct fx *fx = *state;
	struct mt_ctr *c;
	uint64_t v;

	write_ctr_file(fx->ctr, MT_CTR_LIMIT - 1);
	assert_int_equal(mt_ctr_open(fx->ctr, 16, &c), MT_OK);
	assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	assert_true(v == MT_CTR_LIMIT - 1);
	assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	assert_true(v == MT_CTR_LIMIT);
	assert_int_equal(mt_ctr_next(c, &v), MT_ERR_QUEUE_FULL);
	assert_int_equal(mt_ctr_next(c, &v), MT_ERR_QUEUE_FULL);
	mt_ctr_close(c);
	/* The end on disk is 2^63: exhausted at once after a reopen. */
	assert_int_equal(mt_ctr_open(fx->ctr, 16, &c), MT_OK);
	assert_int_equal(mt_ctr_next(c, &v), MT_ERR_QUEUE_FULL);
	mt_ctr_close(c);
	write_ctr_file(fx->ctr, MT_CTR_LIMIT + 2);
	assert_int_equal(mt_ctr_open(fx->ctr, 16, &c), MT_ERR_QUEUE_CORRUPT);
}

static void test_counter_damaged(void **state)
{
	struct fx *fx = *state;
	struct mt_ctr *c;
	uint8_t good[20], buf[32];
	char tmp[160];

	assert_int_equal(mt_ctr_open(fx->ctr, 8, &c), MT_OK);
	{
		uint64_t v;
		assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	}
	mt_ctr_close(c);
	assert_int_equal(read_file(fx->ctr, good, sizeof good), 20);

	for (size_t i = 0; i < sizeof good; i++) { /* every byte, one bit */
		memcpy(buf, good, sizeof good);
		buf[i] ^= 0x10;
		write_file(fx->ctr, buf, sizeof good);
		c = (struct mt_ctr *)1;
		assert_int_equal(mt_ctr_open(fx->ctr, 8, &c), MT_ERR_QUEUE_CORRUPT);
		assert_null(c);
	}
	write_file(fx->ctr, good, 19); /* truncated */
	assert_int_equal(mt_ctr_open(fx->ctr, 8, &c), MT_ERR_QUEUE_CORRUPT);
	memcpy(buf, good, 20);
	buf[20] = '\n';
	write_file(fx->ctr, buf, 21); /* one byte more */
	assert_int_equal(mt_ctr_open(fx->ctr, 8, &c), MT_ERR_QUEUE_CORRUPT);
	write_file(fx->ctr, "", 0); /* empty */
	assert_int_equal(mt_ctr_open(fx->ctr, 8, &c), MT_ERR_QUEUE_CORRUPT);
	write_file(fx->ctr, "8\n", 2); /* a plausible guess is still a guess */
	assert_int_equal(mt_ctr_open(fx->ctr, 8, &c), MT_ERR_QUEUE_CORRUPT);
	assert_int_equal(unlink(fx->ctr), 0);
	assert_int_equal(mkdir(fx->ctr, 0700), 0); /* not a file */
	assert_int_equal(mt_ctr_open(fx->ctr, 8, &c), MT_ERR_QUEUE_CORRUPT);
	assert_int_equal(rmdir(fx->ctr), 0);

	/* The good file back, with a torn temporary beside it: removed. */
	write_file(fx->ctr, good, sizeof good);
	path_of(tmp, sizeof tmp, fx->base, "ctr.tmp");
	write_file(tmp, "MTC", 3);
	assert_int_equal(mt_ctr_open(fx->ctr, 8, &c), MT_OK);
	assert_false(exists(tmp));
	{
		uint64_t v;
		assert_int_equal(mt_ctr_next(c, &v), MT_OK);
		assert_true(v == 8);
	}
	mt_ctr_close(c);
}

/* ---- the order of the durable steps ------------------------------------------------ */

/* A process crash (the sweeps below) keeps what the page cache holds; a
 * power cut does not.  What makes a power cut safe is the order of the
 * steps — data fsync'ed before the rename, the directory fsync'ed before
 * MT_OK — so that order is asserted here, step by step. */
static char g_trace[512];

static void trace_step(const char *what)
{
	size_t n = strlen(g_trace);

	snprintf(g_trace + n, sizeof g_trace - n, "%s%s", n ? " " : "", what);
}

static void expect_trace(const char *want)
{
	if (strcmp(g_trace, want) != 0)
		fail_msg("steps\n  got  \"%s\"\n  want \"%s\"", g_trace, want);
	g_trace[0] = '\0';
}

static void test_FI19_step_order(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;
	struct mt_ctr *c;
	uint64_t v;

	assert_int_equal(mt_dq_open(fx->q, 2, &q), MT_OK);
	assert_int_equal(mt_ctr_open(fx->ctr, 2, &c), MT_OK);
	g_trace[0] = '\0';
	mt_dq__step_hook = trace_step;

	assert_int_equal(put(q, 1, V), MT_OK);
	expect_trace("open write write write fsync close rename dirfsync");
	assert_int_equal(put(q, 2, A), MT_OK);
	g_trace[0] = '\0';
	/* At the bound: the packet synced, then the drop record synced and
	 * in place, then the victim unlinked, then the packet renamed. */
	assert_int_equal(put(q, 3, A), MT_OK);
	expect_trace("open write write write fsync close "
	             "open write fsync close rename dirfsync unlink "
	             "rename dirfsync");
	assert_int_equal(mt_dq_dropped(q), 1);
	/* Alerts above the bound; then a routine packet drops itself: only
	 * the record is written. */
	assert_int_equal(put(q, 4, A), MT_OK);
	g_trace[0] = '\0';
	assert_int_equal(put(q, 5, V), MT_OK);
	expect_trace("open write fsync close rename dirfsync");
	/* An acknowledgement: unlinks, one directory fsync. */
	{
		const uint64_t r[][2] = {{2, 4}};
		assert_int_equal(mt_dq_ack(q, r, 1, NULL), MT_OK);
	}
	expect_trace("unlink unlink unlink dirfsync");
	{
		const uint64_t r[][2] = {{2, 4}};
		assert_int_equal(mt_dq_ack(q, r, 1, NULL), MT_OK);
	}
	expect_trace("");
	/* The counter: the block's end synced and in place before the first
	 * counter of the block is handed out; nothing within the block. */
	assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	expect_trace("open write fsync close rename dirfsync");
	assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	expect_trace("");
	assert_int_equal(mt_ctr_next(c, &v), MT_OK);
	expect_trace("open write fsync close rename dirfsync");

	mt_dq__step_hook = NULL;
	mt_dq_close(q);
	mt_ctr_close(c);
}

/* ---- FI19: a power cut at every write step ------------------------------------------ */

#define CRASH_EXIT 42
#define BROKEN_EXIT 3

static long g_steps, g_crash_at;

static void count_step(const char *what)
{
	(void)what;
	g_steps++;
	if (g_crash_at != 0 && g_steps == g_crash_at)
		_exit(CRASH_EXIT);
}

static void write_pipe(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		_exit(BROKEN_EXIT);
}

/* Fork a child that runs fn(arg, pipe) with a crash after step crash_at
 * (0: none); returns its exit status and what it wrote to the pipe. */
static int run_child(void (*fn)(const void *arg, int fd), const void *arg, long crash_at,
                     uint8_t *out, size_t cap, size_t *n)
{
	int p[2], status;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		g_steps = 0;
		g_crash_at = crash_at;
		mt_dq__step_hook = count_step;
		fn(arg, p[1]);
		_exit(0);
	}
	close(p[1]);
	*n = 0;
	for (;;) {
		ssize_t r = read(p[0], out + *n, cap - *n);

		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r >= 0);
		if (r == 0)
			break;
		*n += (size_t)r;
		assert_true(*n < cap);
	}
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Count the steps of fn when it runs to the end (in a child too, so that
 * the counting run and the crashing runs are the same program). */
static long count_steps(void (*fn)(const void *arg, int fd), const void *arg)
{
	uint8_t out[4096];
	size_t n;
	long steps;
	int p[2], status;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		g_steps = 0;
		g_crash_at = 0;
		mt_dq__step_hook = count_step;
		fn(arg, -1);
		write_pipe(p[1], &g_steps, sizeof g_steps);
		_exit(0);
	}
	close(p[1]);
	n = 0;
	for (;;) {
		ssize_t r = read(p[0], out + n, sizeof out - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(n, sizeof steps);
	memcpy(&steps, out, sizeof steps);
	return steps;
}

/* The counter scenario: block 3, seven counters, reopen, four more.
 * Each counter handed out is written to the pipe before anything else. */
struct ctr_scen {
	const char *path;
};

static void ctr_scenario(const void *arg, int fd)
{
	const struct ctr_scen *s = arg;
	struct mt_ctr *c;
	uint64_t v;

	for (int round = 0; round < 2; round++) {
		if (mt_ctr_open(s->path, 3, &c) != MT_OK)
			_exit(BROKEN_EXIT);
		for (int i = 0; i < (round == 0 ? 7 : 4); i++) {
			if (mt_ctr_next(c, &v) != MT_OK)
				_exit(BROKEN_EXIT);
			if (fd >= 0)
				write_pipe(fd, &v, sizeof v);
		}
		mt_ctr_close(c);
	}
}

static void test_FI19_power_cut_sweep_counter(void **state)
{
	struct fx *fx = *state;
	struct ctr_scen s = {fx->ctr};
	long total = count_steps(ctr_scenario, &s);

	assert_true(total >= 30); /* 6 per reservation, 6 reservations */
	(void)unlink(fx->ctr);
	for (long crash = 1; crash <= total + 1; crash++) {
		uint8_t out[1024];
		size_t n;
		int rc;
		uint64_t v, prev = 0, top = 0;
		bool any = false;
		struct mt_ctr *c;

		rc = run_child(ctr_scenario, &s, crash, out, sizeof out, &n);
		assert_int_equal(rc, crash <= total ? CRASH_EXIT : 0);
		assert_int_equal(n % 8, 0);
		for (size_t i = 0; i < n; i += 8) {
			memcpy(&v, out + i, 8);
			if (any && v <= prev)
				fail_msg("crash %ld: counter %" PRIu64 " after %" PRIu64, crash, v,
				         prev);
			prev = top = v;
			any = true;
		}
		/* The file is never left damaged, and never goes back. */
		rc = mt_ctr_open(fx->ctr, 3, &c);
		if (rc != MT_OK)
			fail_msg("crash after step %ld: open gave %d", crash, rc);
		assert_int_equal(mt_ctr_next(c, &v), MT_OK);
		if (any && v <= top)
			fail_msg("FI19: crash after step %ld: counter %" PRIu64
			         " handed out again (last before the crash %" PRIu64 ")",
			         crash, v, top);
		/* The skip is bounded: at most the rest of one block and one
		 * reserved but unused block (protocol §5's jump bound). */
		if (any && v > top + 2 * 3)
			fail_msg("crash after step %ld: skipped from %" PRIu64 " to %" PRIu64,
			         crash, top, v);
		mt_ctr_close(c);
		assert_int_equal(unlink(fx->ctr), 0);
	}
	print_message("FI19 counter: %ld crash points, reuse 0\n", total);
}

/* The queue scenario and its model.  Counters stay below 64 so that a set
 * of counters is a bit mask. */
enum op_kind { OP_OPEN, OP_CLOSE, OP_PUT, OP_ACK };

struct qop {
	enum op_kind kind;
	uint64_t ctr;
	enum mt_dq_topic topic;
	enum mt_err want;
	uint64_t r[3][2];
	size_t nr;
};

#define SWEEP_MAX 3

static const struct qop SCEN[] = {
	{.kind = OP_OPEN},
	{.kind = OP_PUT, .ctr = 1, .topic = V, .want = MT_OK},
	{.kind = OP_PUT, .ctr = 2, .topic = V, .want = MT_OK},
	{.kind = OP_PUT, .ctr = 3, .topic = A, .want = MT_OK},
	{.kind = OP_PUT, .ctr = 4, .topic = V, .want = MT_OK}, /* drops 1 */
	{.kind = OP_PUT, .ctr = 5, .topic = S, .want = MT_OK}, /* drops 2 */
	{.kind = OP_ACK, .r = {{4, 4}, {40, 50}}, .nr = 2},
	{.kind = OP_CLOSE},
	{.kind = OP_OPEN},
	{.kind = OP_PUT, .ctr = 6, .topic = A, .want = MT_OK},
	{.kind = OP_PUT, .ctr = 7, .topic = A, .want = MT_OK}, /* drops 5 */
	{.kind = OP_PUT, .ctr = 8, .topic = V, .want = MT_OK}, /* itself dropped */
	{.kind = OP_PUT, .ctr = 9, .topic = A, .want = MT_OK}, /* above the bound */
	{.kind = OP_PUT, .ctr = 10, .topic = A, .want = MT_OK},
	{.kind = OP_PUT, .ctr = 11, .topic = A, .want = MT_OK},
	{.kind = OP_PUT, .ctr = 12, .topic = A, .want = MT_ERR_QUEUE_FULL},
	{.kind = OP_ACK, .r = {{12, 3}, {3, 3}, {6, 7}}, .nr = 3},
	{.kind = OP_PUT, .ctr = 12, .topic = A, .want = MT_OK}, /* the refused alert again */
	{.kind = OP_PUT, .ctr = 13, .topic = K, .want = MT_OK}, /* itself dropped */
	{.kind = OP_ACK, .r = {{9, 10}}, .nr = 1},
	{.kind = OP_PUT, .ctr = 14, .topic = V, .want = MT_OK},
	{.kind = OP_PUT, .ctr = 15, .topic = V, .want = MT_OK}, /* drops 14 */
	{.kind = OP_CLOSE},
};
#define NOPS N(SCEN)

struct mstate {
	uint64_t present; /* bit c: counter c queued */
	uint64_t dropped;
	uint64_t victim; /* bit: dropped from the queue by this op */
	uint64_t acked;  /* bit: removed by this op's ranges */
	enum mt_err result;
};

static enum mt_dq_topic g_topic[64];

static int popcount64(uint64_t x)
{
	int n = 0;

	for (; x != 0; x &= x - 1)
		n++;
	return n;
}

/* The policy as queue.h words it, with no knowledge of the code. */
static struct mstate model_apply(struct mstate s, const struct qop *op)
{
	s.victim = s.acked = 0;
	s.result = MT_OK;
	if (op->kind == OP_PUT) {
		int n = popcount64(s.present);

		if (n >= SWEEP_MAX) {
			uint64_t routine = 0;

			for (int c = 0; c < 64; c++) {
				if ((s.present >> c & 1) && g_topic[c] != A) {
					routine = UINT64_C(1) << c;
					break;
				}
			}
			if (routine != 0) {
				s.present &= ~routine;
				s.victim = routine;
				s.dropped++;
			} else if (op->topic != A) {
				s.dropped++;
				return s;
			} else if (n >= 2 * SWEEP_MAX) {
				s.result = MT_ERR_QUEUE_FULL;
				return s;
			}
		}
		s.present |= UINT64_C(1) << op->ctr;
	} else if (op->kind == OP_ACK) {
		for (size_t i = 0; i < op->nr; i++) {
			for (uint64_t c = op->r[i][0]; c <= op->r[i][1] && c < 64; c++)
				s.acked |= (UINT64_C(1) << c) & s.present;
		}
		s.present &= ~s.acked;
	}
	return s;
}

struct q_scen {
	const char *dir;
};

static void q_scenario(const void *arg, int fd)
{
	const struct q_scen *s = arg;
	struct mt_dq *q = NULL;

	for (size_t i = 0; i < NOPS; i++) {
		const struct qop *op = &SCEN[i];
		uint8_t done = (uint8_t)i;

		switch (op->kind) {
		case OP_OPEN:
			if (mt_dq_open(s->dir, SWEEP_MAX, &q) != MT_OK)
				_exit(BROKEN_EXIT);
			break;
		case OP_CLOSE:
			mt_dq_close(q);
			q = NULL;
			break;
		case OP_PUT:
			if (put(q, op->ctr, op->topic) != op->want)
				_exit(BROKEN_EXIT);
			break;
		case OP_ACK:
			if (mt_dq_ack(q, (const uint64_t(*)[2])op->r, op->nr, NULL) != MT_OK)
				_exit(BROKEN_EXIT);
			break;
		}
		if (fd >= 0)
			write_pipe(fd, &done, 1);
	}
}

/* After a crash during op `k` (ops before it complete): the queue on disk
 * must be st[k] or st[k + 1], or an intermediate that the op's own
 * changes explain; and the dropped count must say exactly which. */
static void check_after_crash(const char *dir, long crash, const struct mstate *st, size_t k)
{
	const struct mstate *a = &st[k], *b = &st[k < NOPS ? k + 1 : k];
	struct mt_dq *q;
	struct walked w;
	uint64_t present = 0, d, lost, allowed;
	enum mt_err e = mt_dq_open(dir, SWEEP_MAX, &q);

	if (e != MT_OK)
		fail_msg("crash after step %ld: open gave %d", crash, e);
	walk(q, 0, &w); /* every byte of every packet checked */
	for (size_t i = 0; i < w.n; i++) {
		assert_true(w.ctr[i] < 64);
		if (w.topic[i] != g_topic[w.ctr[i]])
			fail_msg("crash %ld: packet %" PRIu64 " has the wrong topic", crash,
			         w.ctr[i]);
		present |= UINT64_C(1) << w.ctr[i];
	}
	d = mt_dq_dropped(q);
	if (mt_dq_bad(q) != 0)
		fail_msg("crash after step %ld: %zu damaged files", crash, mt_dq_bad(q));
	assert_int_equal(count_entries(dir, "tmp-"), 0);
	assert_int_equal(mt_dq_count(q), (size_t)popcount64(present));
	if (d != a->dropped && d != b->dropped)
		fail_msg("crash after step %ld (op %zu): dropped %" PRIu64 ", want %" PRIu64
		         " or %" PRIu64,
		         crash, k, d, a->dropped, b->dropped);
	/* Nothing appears that neither state holds. */
	if ((present & ~(a->present | b->present)) != 0)
		fail_msg("crash after step %ld (op %zu): unexpected packets %#" PRIx64, crash, k,
		         present & ~(a->present | b->present));
	/* Nothing is lost that the op in flight does not account for: its
	 * acknowledged counters, and its victim only when the drop is counted. */
	lost = a->present & ~present;
	allowed = b->acked | (d == b->dropped && b->dropped != a->dropped ? b->victim : 0);
	if ((lost & ~allowed) != 0)
		fail_msg("FI19: crash after step %ld (op %zu): packets %#" PRIx64
		         " lost (dropped %" PRIu64 ")",
		         crash, k, lost & ~allowed, d);
	/* A counted drop has really gone. */
	if (d == b->dropped && b->dropped != a->dropped)
		assert_true((present & b->victim) == 0);
	/* And the queue goes on working. */
	mt_dq_close(q);
	assert_int_equal(mt_dq_open(dir, SWEEP_MAX, &q), MT_OK);
	assert_true(mt_dq_dropped(q) == d);
	assert_int_equal(mt_dq_count(q), (size_t)popcount64(present));
	{
		const uint64_t r[][2] = {{0, 63}};
		assert_int_equal(mt_dq_ack(q, r, 1, NULL), MT_OK);
	}
	assert_int_equal(put(q, 60, A), MT_OK);
	mt_dq_close(q);
	assert_int_equal(mt_dq_open(dir, SWEEP_MAX, &q), MT_OK);
	assert_int_equal(mt_dq_count(q), 1);
	assert_true(mt_dq_oldest(q) == 60);
	mt_dq_close(q);
}

static void test_FI19_power_cut_sweep_queue(void **state)
{
	struct fx *fx = *state;
	struct q_scen s = {fx->q};
	struct mstate st[NOPS + 1];
	long total;

	memset(g_topic, 0, sizeof g_topic);
	for (size_t i = 0; i < NOPS; i++) {
		if (SCEN[i].kind == OP_PUT)
			g_topic[SCEN[i].ctr] = SCEN[i].topic;
	}
	g_topic[60] = A;
	memset(&st[0], 0, sizeof st[0]);
	for (size_t i = 0; i < NOPS; i++) {
		st[i + 1] = model_apply(st[i], &SCEN[i]);
		if (SCEN[i].kind == OP_PUT)
			assert_int_equal(st[i + 1].result, SCEN[i].want);
	}
	/* The model agrees with the comments of SCEN. */
	assert_true(st[NOPS].present ==
	            (UINT64_C(1) << 11 | UINT64_C(1) << 12 | UINT64_C(1) << 15));
	assert_true(st[NOPS].dropped == 6);

	total = count_steps(q_scenario, &s);
	assert_true(total > 50);
	rm_tree(fx->q);
	for (long crash = 1; crash <= total + 1; crash++) {
		uint8_t out[256];
		size_t n;
		int rc = run_child(q_scenario, &s, crash, out, sizeof out, &n);

		assert_int_equal(rc, crash <= total ? CRASH_EXIT : 0);
		assert_true(n <= NOPS);
		check_after_crash(fx->q, crash, st, n);
		rm_tree(fx->q);
	}
	print_message("FI19 queue: %ld crash points over %zu operations, lost 0\n", total, NOPS);
}

/* A free-running child (counter + queue, as the agent uses them) killed
 * with SIGKILL at a random moment; reported events come through a pipe. */
struct ev {
	uint8_t kind; /* 'P' put done, 'a' ack about to start, 'A' ack done */
	uint64_t ctr; /* put: the counter; ack: up to and including */
};

#define KILL_ROUNDS 16

struct kill_scen {
	const char *dir, *ctr;
};

static void kill_scenario(const void *arg, int fd)
{
	const struct kill_scen *s = arg;
	struct mt_dq *q;
	struct mt_ctr *c;

	if (mt_dq_open(s->dir, 1000, &q) != MT_OK || mt_ctr_open(s->ctr, 8, &c) != MT_OK)
		_exit(BROKEN_EXIT);
	for (int i = 0; i < 5000; i++) {
		uint64_t v;
		struct ev e;

		memset(&e, 0, sizeof e);
		e.kind = 'P';
		if (mt_ctr_next(c, &v) != MT_OK || put(q, v, i % 5 == 0 ? A : V) != MT_OK)
			_exit(BROKEN_EXIT);
		e.ctr = v;
		write_pipe(fd, &e, sizeof e);
		if (i % 7 == 6) {
			const uint64_t r[][2] = {{0, v - 3}};

			e.kind = 'a';
			e.ctr = v - 3;
			write_pipe(fd, &e, sizeof e);
			if (mt_dq_ack(q, r, 1, NULL) != MT_OK)
				_exit(BROKEN_EXIT);
			e.kind = 'A';
			write_pipe(fd, &e, sizeof e);
		}
	}
	mt_dq_close(q);
	mt_ctr_close(c);
}

static void test_FI19_sigkill_random(void **state)
{
	struct fx *fx = *state;
	struct kill_scen s = {fx->q, fx->ctr};
	uint64_t seed = 0x9e3779b97f4a7c15u;
	static struct ev evs[20000];
	size_t puts_seen = 0;

	for (int round = 0; round < KILL_ROUNDS; round++) {
		int p[2], status;
		pid_t pid;
		size_t n = 0, nev;
		uint64_t top = 0, acked_to = 0, acking_to = 0;
		bool any = false, acking = false, acked_any = false;
		struct mt_dq *q;
		struct mt_ctr *c;
		struct walked w;
		uint64_t v;
		struct timespec ts;

		assert_int_equal(pipe(p), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			kill_scenario(&s, p[1]);
			_exit(0);
		}
		close(p[1]);
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(mt_test_xorshift64(&seed) % 100000000); /* < 100 ms */
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		for (;;) {
			ssize_t r = read(p[0], (uint8_t *)evs + n, sizeof evs - n);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		close(p[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		nev = n / sizeof evs[0];
		for (size_t i = 0; i < nev; i++) {
			if (evs[i].kind == 'P') {
				puts_seen++;
				assert_true(!any || evs[i].ctr > top);
				top = evs[i].ctr;
				any = true;
			} else if (evs[i].kind == 'a') {
				acking = true;
				acking_to = evs[i].ctr;
			} else {
				acking = false;
				acked_any = true;
				acked_to = evs[i].ctr;
			}
		}
		/* Counter: never again. */
		assert_int_equal(mt_ctr_open(fx->ctr, 8, &c), MT_OK);
		assert_int_equal(mt_ctr_next(c, &v), MT_OK);
		if (any && v <= top)
			fail_msg("FI19: round %d: counter %" PRIu64 " reused (top %" PRIu64 ")",
			         round, v, top);
		mt_ctr_close(c);
		/* Queue: every put reported and not acknowledged is there. */
		assert_int_equal(mt_dq_open(fx->q, 1000, &q), MT_OK);
		assert_int_equal(mt_dq_bad(q), 0);
		memset(&w, 0, sizeof w);
		w.bytes_ok = true;
		{
			/* Only the newest WALK_MAX are collected; start near the top. */
			uint64_t from = top > 40 ? top - 40 : 0;
			assert_int_equal(mt_dq_walk(q, from, collect, &w), MT_OK);
		}
		assert_true(w.bytes_ok);
		for (size_t i = 0; i < nev; i++) {
			uint64_t cc = evs[i].ctr;
			bool found = false, may_be_gone;

			if (evs[i].kind != 'P' || cc + 40 < top)
				continue;
			may_be_gone = (acked_any && cc <= acked_to) || (acking && cc <= acking_to);
			for (size_t j = 0; j < w.n; j++)
				found = found || w.ctr[j] == cc;
			if (!found && !may_be_gone)
				fail_msg("FI19: round %d: packet %" PRIu64 " lost", round, cc);
			if (found && acked_any && cc <= acked_to)
				fail_msg("round %d: packet %" PRIu64 " back after its ack", round,
				         cc);
		}
		for (size_t j = 0; j < w.n; j++) /* nothing never put, but the one in flight */
			assert_true(any ? w.ctr[j] <= top + 8 : true);
		assert_int_equal(mt_dq_dropped(q), 0);
		mt_dq_close(q);
		rm_tree(fx->q);
		assert_int_equal(unlink(fx->ctr), 0);
	}
	print_message("FI19 SIGKILL: %d kills, %zu puts confirmed before them, lost 0\n",
	              KILL_ROUNDS, puts_seen);
}

/* ---- a figure ---------------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_throughput(void **state)
{
	struct fx *fx = *state;
	struct mt_dq *q;
	struct mt_ctr *c;
	const int n = 400;
	double t0, t1, t2, t3;
	uint64_t v;
	size_t removed;

	assert_int_equal(mt_dq_open(fx->q, 10000, &q), MT_OK);
	assert_int_equal(mt_ctr_open(fx->ctr, 256, &c), MT_OK);
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		assert_int_equal(mt_ctr_next(c, &v), MT_OK);
		assert_int_equal(put(q, v, V), MT_OK);
	}
	t1 = now_s();
	mt_dq_close(q);
	t2 = now_s();
	assert_int_equal(mt_dq_open(fx->q, 10000, &q), MT_OK);
	t3 = now_s();
	assert_int_equal(mt_dq_count(q), (size_t)n);
	{
		const uint64_t r[][2] = {{0, UINT64_MAX}};
		double t4 = now_s(), t5;
		assert_int_equal(mt_dq_ack(q, r, 1, &removed), MT_OK);
		t5 = now_s();
		assert_int_equal(removed, (size_t)n);
		print_message("queue: %.0f puts/s (each fsynced, ~150-byte packets), "
		              "open of %d packets %.1f ms, ack of %d %.1f ms\n",
		              n / (t1 - t0), n, (t3 - t2) * 1e3, n, (t5 - t4) * 1e3);
	}
	mt_dq_close(q);
	mt_ctr_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_walk_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk_callback_modifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_FI07_vitals_dropped_oldest_first, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_FI07_alerts_never_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_FI07_smaller_bound_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_files_moved_to_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_dir_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_dropped_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_FI19_step_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_FI19_power_cut_sweep_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_FI19_power_cut_sweep_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_FI19_sigkill_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
