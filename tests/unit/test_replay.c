/*
 * test_replay.c — the anti-replay window of protocol.md §5 (mt_replay.h).
 *
 * The window is W = 1024 counters wide, as IPsec ESP (RFC 4303 §3.4.3):
 * a fresh window accepts any first counter, 0 included; with top T a counter
 * above T is new and slides the window, one in (T − 1024, T] not yet seen is
 * new, one seen is a duplicate, and one ≤ T − 1024 is too old.  A counter
 * more than 2^20 above T is a "counter jump" (threat A15) and refused without
 * moving the window.  The state is an 8-byte big-endian top (2^64 − 1 =
 * empty) and a 128-byte bitmap, bit i = counter T − i, 136 bytes in all.
 *
 * The edges are tested one by one (T − 1023 / T − 1024, a jump of 2^20 /
 * 2^20 + 1, slides by 1, 7, 8, 9, 1023, 1024 and 5000 — the byte and window
 * boundaries of the bitmap shift).  Then a reference model that knows
 * nothing of bitmaps — a plain set of the counters marked so far, and the
 * highest of them — is run against the window over seeded random sequences
 * of 10,000 operations, comparing every verdict and, after every mark, all
 * 1024 bits of the saved state.  Only counters the check called NEW are
 * marked, and some of those are deliberately left unmarked, as the hub does
 * when it refuses a packet for a passing reason before commit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_replay.h"
#include "mt_testutil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define JUMP MT_REPLAY_MAX_JUMP

static const char *verdict_name(enum mt_replay_verdict v)
{
	switch (v) {
	case MT_REPLAY_NEW: return "NEW";
	case MT_REPLAY_DUPLICATE: return "DUPLICATE";
	case MT_REPLAY_TOO_OLD: return "TOO_OLD";
	case MT_REPLAY_JUMP: return "JUMP";
	}
	return "?";
}

static void expect(const struct mt_replay *w, uint64_t ctr, enum mt_replay_verdict want)
{
	enum mt_replay_verdict got = mt_replay_check(w, ctr);
	if (got != want)
		fail_msg("ctr %llu (top %llu): want %s, got %s", (unsigned long long)ctr,
		         (unsigned long long)w->top, verdict_name(want), verdict_name(got));
}

/* check must say NEW, then mark */
static void accept(struct mt_replay *w, uint64_t ctr)
{
	expect(w, ctr, MT_REPLAY_NEW);
	mt_replay_mark(w, ctr);
	expect(w, ctr, MT_REPLAY_DUPLICATE);
}

static uint64_t saved_top(const uint8_t s[MT_REPLAY_STATE_LEN])
{
	uint64_t t = 0;
	for (int i = 0; i < 8; i++)
		t = t << 8 | s[i];
	return t;
}

static bool saved_bit(const uint8_t s[MT_REPLAY_STATE_LEN], unsigned i)
{
	return (s[8 + i / 8] >> (i % 8)) & 1;
}

/* ---- the reference model: a set of marked counters ----------------------- */

#define SET_SLOTS (1u << 15)
struct model {
	bool empty;
	uint64_t top;
	uint64_t key[SET_SLOTS];
	bool used[SET_SLOTS];
};

static size_t slot_of(uint64_t k)
{
	k ^= k >> 33;
	k *= UINT64_C(0xff51afd7ed558ccd);
	k ^= k >> 33;
	return (size_t)(k & (SET_SLOTS - 1));
}

static bool model_seen(const struct model *m, uint64_t k)
{
	for (size_t s = slot_of(k);; s = (s + 1) & (SET_SLOTS - 1)) {
		if (!m->used[s])
			return false;
		if (m->key[s] == k)
			return true;
	}
}

static void model_mark(struct model *m, uint64_t k)
{
	size_t s = slot_of(k);
	while (m->used[s] && m->key[s] != k)
		s = (s + 1) & (SET_SLOTS - 1);
	m->used[s] = true;
	m->key[s] = k;
	if (m->empty || k > m->top)
		m->top = k;
	m->empty = false;
}

/* The protocol's rule, written from §5 without a bitmap. */
static enum mt_replay_verdict model_check(const struct model *m, uint64_t ctr)
{
	if (m->empty)
		return MT_REPLAY_NEW;
	if (ctr > m->top)
		return ctr - m->top > JUMP ? MT_REPLAY_JUMP : MT_REPLAY_NEW;
	if (m->top >= MT_REPLAY_WINDOW && ctr <= m->top - MT_REPLAY_WINDOW)
		return MT_REPLAY_TOO_OLD;
	return model_seen(m, ctr) ? MT_REPLAY_DUPLICATE : MT_REPLAY_NEW;
}

/* Every bit of the saved window against the model. */
static void compare_state(const struct mt_replay *w, const struct model *m)
{
	uint8_t s[MT_REPLAY_STATE_LEN];
	mt_replay_save(w, s);
	if (m->empty) {
		assert_true(saved_top(s) == MT_REPLAY_EMPTY);
		for (size_t i = 8; i < MT_REPLAY_STATE_LEN; i++)
			assert_int_equal(s[i], 0);
		return;
	}
	assert_true(saved_top(s) == m->top);
	for (unsigned i = 0; i < MT_REPLAY_WINDOW; i++) {
		bool want = m->top >= i && model_seen(m, m->top - i);
		if (saved_bit(s, i) != want)
			fail_msg("top %llu: bit %u (ctr %llu) is %d, want %d",
			         (unsigned long long)m->top, i, (unsigned long long)(m->top - i),
			         (int)saved_bit(s, i), (int)want);
	}
}

static struct model model;

static void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	m->empty = true;
}

/* ---- fresh window ---------------------------------------------------------- */

static void test_fresh_window_accepts_any_first(void **state)
{
	(void)state;
	const uint64_t first[] = {0, 1, 1023, 1024, JUMP + 5, UINT64_C(1) << 62,
	                          (UINT64_C(1) << 63) - 1};
	for (size_t i = 0; i < N(first); i++) {
		struct mt_replay w;
		uint8_t s[MT_REPLAY_STATE_LEN];
		mt_replay_init(&w);
		assert_true(w.top == MT_REPLAY_EMPTY);
		accept(&w, first[i]);
		mt_replay_save(&w, s);
		assert_true(saved_top(s) == first[i]);
		assert_true(saved_bit(s, 0));
		for (unsigned b = 1; b < MT_REPLAY_WINDOW; b++)
			assert_false(saved_bit(s, b));
	}
	/* a fresh window has no "too old" and no "jump" */
	struct mt_replay w;
	mt_replay_init(&w);
	expect(&w, 0, MT_REPLAY_NEW);
	expect(&w, UINT64_MAX - 1, MT_REPLAY_NEW);
}

static void test_duplicates_and_out_of_order(void **state)
{
	(void)state;
	struct mt_replay w;
	mt_replay_init(&w);
	accept(&w, 100);
	accept(&w, 105);
	expect(&w, 100, MT_REPLAY_DUPLICATE);
	for (uint64_t c = 101; c <= 104; c++)
		expect(&w, c, MT_REPLAY_NEW);
	/* in-window, out of order: accepted once */
	accept(&w, 103);
	expect(&w, 103, MT_REPLAY_DUPLICATE);
	accept(&w, 0);
	expect(&w, 0, MT_REPLAY_DUPLICATE);
	assert_true(w.top == 105);
	/* the top itself is a duplicate */
	expect(&w, 105, MT_REPLAY_DUPLICATE);
	/* unmarked counters stay new however often they are checked */
	for (int i = 0; i < 3; i++)
		expect(&w, 104, MT_REPLAY_NEW);
}

static void test_window_edge(void **state)
{
	(void)state;
	struct mt_replay w;
	const uint64_t T = 5000;
	mt_replay_init(&w);
	accept(&w, T);
	expect(&w, T - 1023, MT_REPLAY_NEW);
	expect(&w, T - 1024, MT_REPLAY_TOO_OLD);
	expect(&w, T - 1025, MT_REPLAY_TOO_OLD);
	expect(&w, 0, MT_REPLAY_TOO_OLD);
	accept(&w, T - 1023);
	/* one step up: T − 1023 falls out, T − 1022 is the oldest */
	accept(&w, T + 1);
	expect(&w, T - 1023, MT_REPLAY_TOO_OLD);
	expect(&w, T - 1022, MT_REPLAY_NEW);

	/* near zero: with T = 1023 counter 0 is in the window, with 1024 not */
	mt_replay_init(&w);
	accept(&w, 1023);
	expect(&w, 0, MT_REPLAY_NEW);
	accept(&w, 0);
	accept(&w, 1024);
	expect(&w, 0, MT_REPLAY_TOO_OLD);
	expect(&w, 1, MT_REPLAY_NEW);

	/* at the top of the counter range (ctr < 2^63) */
	const uint64_t H = (UINT64_C(1) << 63) - 1;
	mt_replay_init(&w);
	accept(&w, H);
	expect(&w, H - 1023, MT_REPLAY_NEW);
	expect(&w, H - 1024, MT_REPLAY_TOO_OLD);
	expect(&w, H, MT_REPLAY_DUPLICATE);
}

static void test_jump(void **state)
{
	(void)state;
	struct mt_replay w;
	uint8_t before[MT_REPLAY_STATE_LEN], after[MT_REPLAY_STATE_LEN];
	const uint64_t T = 1000;
	mt_replay_init(&w);
	accept(&w, T);
	accept(&w, T - 5);
	mt_replay_save(&w, before);

	expect(&w, T + JUMP + 1, MT_REPLAY_JUMP);
	expect(&w, T + JUMP + 1000, MT_REPLAY_JUMP);
	expect(&w, UINT64_C(1) << 62, MT_REPLAY_JUMP);
	expect(&w, UINT64_MAX - 1, MT_REPLAY_JUMP);
	mt_replay_save(&w, after);
	assert_memory_equal(before, after, MT_REPLAY_STATE_LEN); /* window unchanged */
	/* the refused counter is not "seen": still a jump, not a duplicate */
	expect(&w, T + JUMP + 1, MT_REPLAY_JUMP);
	expect(&w, T - 5, MT_REPLAY_DUPLICATE);
	expect(&w, T + 1, MT_REPLAY_NEW);

	/* exactly 2^20 above the top is accepted and moves the window */
	expect(&w, T + JUMP, MT_REPLAY_NEW);
	mt_replay_mark(&w, T + JUMP);
	assert_true(w.top == T + JUMP);
	expect(&w, T, MT_REPLAY_TOO_OLD);
	expect(&w, T + JUMP + JUMP, MT_REPLAY_NEW);
	expect(&w, T + JUMP + JUMP + 1, MT_REPLAY_JUMP);

	/* at the high end of the counter range nothing overflows */
	const uint64_t H = (UINT64_C(1) << 63) - 1;
	mt_replay_init(&w);
	accept(&w, H - JUMP);
	expect(&w, H, MT_REPLAY_NEW);
	expect(&w, H + 1, MT_REPLAY_JUMP);
}

/* Slide by s from a window with a known pattern; every bit is checked. */
static void test_slides(void **state)
{
	(void)state;
	const uint64_t slides[] = {1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 511, 1023, 1024, 1025, 5000};
	const uint64_t T = 100000;
	const uint64_t back[] = {0, 1, 3, 7, 8, 9, 15, 16, 100, 511, 512, 1000, 1014, 1015,
	                         1016, 1017, 1022, 1023};
	for (size_t i = 0; i < N(slides); i++) {
		struct mt_replay w;
		mt_replay_init(&w);
		model_init(&model);
		accept(&w, T - 1023); /* the oldest first, so that each later one is new */
		model_mark(&model, T - 1023);
		accept(&w, T);
		model_mark(&model, T);
		for (size_t b = 0; b < N(back); b++) {
			uint64_t c = T - back[b];
			if (mt_replay_check(&w, c) == MT_REPLAY_NEW) {
				mt_replay_mark(&w, c);
				model_mark(&model, c);
			}
		}
		compare_state(&w, &model);
		accept(&w, T + slides[i]);
		model_mark(&model, T + slides[i]);
		compare_state(&w, &model);
		/* the verdicts agree for every old counter and its neighbours */
		for (size_t b = 0; b < N(back); b++)
			for (int d = -1; d <= 1; d++) {
				uint64_t c = T - back[b] + (uint64_t)(int64_t)d;
				expect(&w, c, model_check(&model, c));
			}
		/* and a second slide by the same amount */
		accept(&w, T + 2 * slides[i]);
		model_mark(&model, T + 2 * slides[i]);
		compare_state(&w, &model);
	}
}

/* Seeded random sequences against the model. */
static void random_run(uint64_t seed, int ops)
{
	static const uint64_t steps[] = {1, 7, 8, 9, 1023, 1024, 1025, 5000};
	struct mt_replay w;
	uint64_t rng = seed; /* xorshift64 state */
	mt_replay_init(&w);
	model_init(&model);
	size_t counts[4] = {0};
	for (int op = 0; op < ops; op++) {
		uint64_t r = mt_test_xorshift64(&rng), pick = r % 100, x = r >> 8, ctr;
		uint64_t top = model.empty ? 0 : model.top;
		if (model.empty)
			ctr = x % 3000; /* first counters near 0, so windows span 0 */
		else if (pick < 30)
			ctr = top + 1 + x % 16;
		else if (pick < 40)
			ctr = top + steps[x % N(steps)];
		else if (pick < 45)
			ctr = top + JUMP - 1 + x % 3; /* 2^20 − 1, 2^20, 2^20 + 1 */
		else if (pick < 75)
			ctr = top - x % (top < 1100 ? top + 1 : 1100);
		else if (pick < 90)
			ctr = top - x % (top < 16 ? top + 1 : 16);
		else if (pick < 95)
			ctr = x % (top + 1);
		else
			ctr = top >= 1024 ? top - 1023 - x % 2 : top;

		enum mt_replay_verdict want = model_check(&model, ctr);
		enum mt_replay_verdict got = mt_replay_check(&w, ctr);
		if (got != want)
			fail_msg("seed %llx op %d: ctr %llu top %llu: want %s, got %s",
			         (unsigned long long)seed, op, (unsigned long long)ctr,
			         (unsigned long long)top, verdict_name(want), verdict_name(got));
		counts[got]++;
		/* mark most NEW counters; leave some out, as a refused commit would */
		if (got == MT_REPLAY_NEW && (r & 0xf) != 0) {
			mt_replay_mark(&w, ctr);
			model_mark(&model, ctr);
			compare_state(&w, &model);
		}
	}
	/* the run exercised every verdict */
	for (int v = 0; v < 4; v++)
		if (counts[v] == 0)
			fail_msg("seed %llx: verdict %s never seen", (unsigned long long)seed,
			         verdict_name((enum mt_replay_verdict)v));
}

static void test_random_against_model(void **state)
{
	(void)state;
	random_run(UINT64_C(0x243f6a8885a308d3), 10000);
	random_run(UINT64_C(0x13198a2e03707344), 10000);
	random_run(UINT64_C(0xa4093822299f31d0), 10000);
}

/* ---- serial form ------------------------------------------------------------- */

static void test_save_load(void **state)
{
	(void)state;
	assert_int_equal(MT_REPLAY_STATE_LEN, 136);
	struct mt_replay w, v;
	uint8_t s[MT_REPLAY_STATE_LEN], s2[MT_REPLAY_STATE_LEN];
	const uint64_t T = UINT64_C(0x0102030405060708);

	/* empty: all-ones top, empty bitmap */
	mt_replay_init(&w);
	mt_replay_save(&w, s);
	for (int i = 0; i < 8; i++)
		assert_int_equal(s[i], 0xff);
	for (size_t i = 8; i < sizeof(s); i++)
		assert_int_equal(s[i], 0);
	memset(&v, 0x5a, sizeof(v));
	assert_int_equal(mt_replay_load(&v, s), MT_OK);
	assert_true(v.top == MT_REPLAY_EMPTY);
	expect(&v, 12345, MT_REPLAY_NEW);

	/* top big-endian; bit i of the bitmap is byte i / 8, bit i % 8 */
	accept(&w, T - 1023);
	accept(&w, T - 9);
	accept(&w, T);
	mt_replay_save(&w, s);
	static const uint8_t top_be[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	assert_memory_equal(s, top_be, 8);
	for (size_t i = 8; i < sizeof(s); i++) {
		uint8_t want = i == 8 ? 0x01 : i == 9 ? 0x02 : i == 8 + 127 ? 0x80 : 0;
		if (s[i] != want)
			fail_msg("state byte %zu is %02x, want %02x", i, s[i], want);
	}
	memset(&v, 0, sizeof(v));
	assert_int_equal(mt_replay_load(&v, s), MT_OK);
	mt_replay_save(&v, s2);
	assert_memory_equal(s, s2, sizeof(s));
	expect(&v, T, MT_REPLAY_DUPLICATE);
	expect(&v, T - 9, MT_REPLAY_DUPLICATE);
	expect(&v, T - 1023, MT_REPLAY_DUPLICATE);
	expect(&v, T - 8, MT_REPLAY_NEW);
	expect(&v, T - 1024, MT_REPLAY_TOO_OLD);
	expect(&v, T + JUMP + 1, MT_REPLAY_JUMP);

	/* a loaded window keeps working like the original */
	accept(&v, T + 3);
	accept(&w, T + 3);
	mt_replay_save(&v, s);
	mt_replay_save(&w, s2);
	assert_memory_equal(s, s2, sizeof(s));
	expect(&v, T - 1023, MT_REPLAY_TOO_OLD);
	expect(&v, T - 9, MT_REPLAY_DUPLICATE);
}

static void test_load_inconsistent(void **state)
{
	(void)state;
	uint8_t s[MT_REPLAY_STATE_LEN];
	struct mt_replay w, before;
	mt_replay_init(&w);
	accept(&w, 777);
	before = w;

	/* empty top with a bit set: bit 0, and a bit far down */
	memset(s, 0, sizeof(s));
	memset(s, 0xff, 8);
	s[8] = 0x01;
	assert_int_equal(mt_replay_load(&w, s), MT_ERR_ARG);
	s[8] = 0;
	s[8 + 100] = 0x10;
	assert_int_equal(mt_replay_load(&w, s), MT_ERR_ARG);
	s[8 + 100] = 0;
	s[8 + 127] = 0x80;
	assert_int_equal(mt_replay_load(&w, s), MT_ERR_ARG);
	s[8 + 127] = 0;
	assert_int_equal(mt_replay_load(&w, s), MT_OK); /* the clean empty state */
	w = before;

	/* a top whose own bit (bit 0) is clear */
	memset(s, 0, sizeof(s));
	s[7] = 5;
	assert_int_equal(mt_replay_load(&w, s), MT_ERR_ARG); /* no bits at all */
	s[8] = 0x02;                                         /* T − 1 only */
	assert_int_equal(mt_replay_load(&w, s), MT_ERR_ARG);
	s[8] = 0xfe;
	s[20] = 0xff;
	assert_int_equal(mt_replay_load(&w, s), MT_ERR_ARG);
	/* a refused load leaves the window as it was */
	uint8_t a[MT_REPLAY_STATE_LEN], b[MT_REPLAY_STATE_LEN];
	mt_replay_save(&w, a);
	mt_replay_save(&before, b);
	assert_memory_equal(a, b, sizeof(a));
	expect(&w, 777, MT_REPLAY_DUPLICATE);
	/* with its bit set the same top loads */
	memset(s, 0, sizeof(s));
	s[7] = 5;
	s[8] = 0x01;
	assert_int_equal(mt_replay_load(&w, s), MT_OK);
	assert_true(w.top == 5);
	expect(&w, 5, MT_REPLAY_DUPLICATE);
	expect(&w, 4, MT_REPLAY_NEW);
	/* top 0 with bit 0 is counter 0 seen */
	memset(s, 0, sizeof(s));
	s[8] = 0x01;
	assert_int_equal(mt_replay_load(&w, s), MT_OK);
	expect(&w, 0, MT_REPLAY_DUPLICATE);
	expect(&w, 1, MT_REPLAY_NEW);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_window_accepts_any_first),
		cmocka_unit_test(test_duplicates_and_out_of_order),
		cmocka_unit_test(test_window_edge),
		cmocka_unit_test(test_jump),
		cmocka_unit_test(test_slides),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_load_inconsistent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
