/*
 * test_rules.c — per-patient threshold rules (mt_rules.h, docs/news2.md).
 *
 * The state machine: hold time (raised exactly when the breach has lasted
 * hold_ms, not a millisecond sooner; a single good sample restarts the
 * wait), the limit itself is no breach, hysteresis (no clear inside the
 * band, clear at limit ∓ hysteresis exactly), clear time, out-of-order and
 * same-millisecond samples, non-finite values and invalid rules ignored.
 * Then a reference model that keeps the whole history of samples and
 * decides each by the definition — scan back over the run of samples that
 * meet the condition — is run against mt_rule_feed over seeded random
 * streams (values around the limit, time steps that go backwards, repeat,
 * and jump), comparing every event.
 *
 * The text form: the grammar's accepted forms, a table of malformed texts
 * each refused with a reason and the output untouched, the canonical form
 * of mt_rule_format, and parse(format(r)) == r over random rules, every
 * double bit for bit.  The default rule set: count, validity, contents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_rules.h"
#include "mt_testutil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *ev_name(enum mt_rule_event e)
{
	switch (e) {
	case MT_RULE_NONE: return "NONE";
	case MT_RULE_RAISE: return "RAISE";
	case MT_RULE_CLEAR: return "CLEAR";
	}
	return "?";
}

static void feed(const struct mt_rule *r, struct mt_rule_state *st, uint64_t t, double v,
                 enum mt_rule_event want)
{
	enum mt_rule_event got = mt_rule_feed(r, st, t, v);
	if (got != want)
		fail_msg("t=%llu v=%g: want %s, got %s", (unsigned long long)t, v, ev_name(want),
		         ev_name(got));
}

static const struct mt_rule spo2_30s = { 150456, MT_RULE_BELOW, 90, 0, 30000, 0, 2 };

/* ---- state machine ------------------------------------------------------ */

static void test_hold_time(void **state)
{
	(void)state;
	struct mt_rule_state st;
	mt_rule_state_init(&st);
	feed(&spo2_30s, &st, 0, 95, MT_RULE_NONE);
	feed(&spo2_30s, &st, 1000, 89, MT_RULE_NONE);  /* breach starts */
	feed(&spo2_30s, &st, 15000, 85, MT_RULE_NONE);
	feed(&spo2_30s, &st, 30999, 89, MT_RULE_NONE); /* 29.999 s */
	feed(&spo2_30s, &st, 31000, 89, MT_RULE_RAISE); /* 30 s exactly */
	assert_true(st.raised);
	feed(&spo2_30s, &st, 32000, 70, MT_RULE_NONE); /* raised once per episode */
	feed(&spo2_30s, &st, 90000, 70, MT_RULE_NONE);

	/* a single sample not in breach restarts the wait */
	mt_rule_state_init(&st);
	feed(&spo2_30s, &st, 0, 89, MT_RULE_NONE);
	feed(&spo2_30s, &st, 20000, 89, MT_RULE_NONE);
	feed(&spo2_30s, &st, 25000, 90, MT_RULE_NONE); /* the limit is not a breach */
	feed(&spo2_30s, &st, 26000, 89, MT_RULE_NONE); /* new wait from 26 s */
	feed(&spo2_30s, &st, 30000, 89, MT_RULE_NONE);
	feed(&spo2_30s, &st, 55999, 89, MT_RULE_NONE);
	feed(&spo2_30s, &st, 56000, 89, MT_RULE_RAISE);

	/* sparse samples: raised at the first sample past the hold */
	mt_rule_state_init(&st);
	feed(&spo2_30s, &st, 0, 80, MT_RULE_NONE);
	feed(&spo2_30s, &st, 600000, 80, MT_RULE_RAISE);

	/* hold 0: the first breaching sample raises */
	struct mt_rule now = spo2_30s;
	now.hold_ms = 0;
	mt_rule_state_init(&st);
	feed(&now, &st, 5, 90, MT_RULE_NONE);
	feed(&now, &st, 6, 89.999, MT_RULE_RAISE);
	/* and with hysteresis 0, clear_ms 0: the first good sample clears */
	feed(&now, &st, 7, 90, MT_RULE_CLEAR);
	feed(&now, &st, 8, 89, MT_RULE_RAISE);
}

static void test_above_and_limit(void **state)
{
	(void)state;
	const struct mt_rule hr = { 147842, MT_RULE_ABOVE, 130, 0, 0, 0, 2 };
	struct mt_rule_state st;
	mt_rule_state_init(&st);
	feed(&hr, &st, 0, 130, MT_RULE_NONE);
	feed(&hr, &st, 1, -1e300, MT_RULE_NONE);
	feed(&hr, &st, 2, nextafter(130, 200), MT_RULE_RAISE);
	feed(&hr, &st, 3, 130, MT_RULE_CLEAR);
	feed(&hr, &st, 4, 1e300, MT_RULE_RAISE);
}

static void test_hysteresis(void **state)
{
	(void)state;
	struct mt_rule_state st;
	/* ABOVE 130, hyst 5: clears at ≤ 125 */
	const struct mt_rule hr = { 147842, MT_RULE_ABOVE, 130, 5, 0, 0, 2 };
	mt_rule_state_init(&st);
	feed(&hr, &st, 0, 131, MT_RULE_RAISE);
	feed(&hr, &st, 1, 130, MT_RULE_NONE);     /* no longer a breach, but in the band */
	feed(&hr, &st, 2, 127, MT_RULE_NONE);
	feed(&hr, &st, 3, nextafter(125, 200), MT_RULE_NONE);
	feed(&hr, &st, 4, 135, MT_RULE_NONE);     /* back in breach: still raised, no event */
	feed(&hr, &st, 5, 125, MT_RULE_CLEAR);    /* limit − hysteresis exactly */
	feed(&hr, &st, 6, 129, MT_RULE_NONE);     /* band: not a breach, nothing */
	feed(&hr, &st, 7, 130.5, MT_RULE_RAISE);  /* a new episode */

	/* BELOW 90, hyst 2: clears at ≥ 92 */
	const struct mt_rule sp = { 150456, MT_RULE_BELOW, 90, 2, 0, 0, 3 };
	mt_rule_state_init(&st);
	feed(&sp, &st, 0, 89, MT_RULE_RAISE);
	feed(&sp, &st, 1, 90, MT_RULE_NONE);
	feed(&sp, &st, 2, 91.999, MT_RULE_NONE);
	feed(&sp, &st, 3, 92, MT_RULE_CLEAR);
	feed(&sp, &st, 4, 90, MT_RULE_NONE);
	feed(&sp, &st, 5, 89.5, MT_RULE_RAISE);
}

static void test_clear_time(void **state)
{
	(void)state;
	/* BELOW 90 for 10 s, hyst 2, clear after 10 s of ≥ 92 */
	const struct mt_rule sp = { 150456, MT_RULE_BELOW, 90, 2, 10000, 10000, 3 };
	struct mt_rule_state st;
	mt_rule_state_init(&st);
	feed(&sp, &st, 0, 85, MT_RULE_NONE);
	feed(&sp, &st, 10000, 85, MT_RULE_RAISE);
	feed(&sp, &st, 100000, 95, MT_RULE_NONE);  /* recovery starts */
	feed(&sp, &st, 105000, 96, MT_RULE_NONE);
	feed(&sp, &st, 108000, 91, MT_RULE_NONE);  /* in the band: restarts */
	feed(&sp, &st, 110000, 92, MT_RULE_NONE);  /* recovery from 110 s */
	feed(&sp, &st, 119999, 97, MT_RULE_NONE);
	feed(&sp, &st, 120000, 97, MT_RULE_CLEAR);
	assert_false(st.raised);
	feed(&sp, &st, 121000, 97, MT_RULE_NONE);
	/* a new episode needs the full hold again */
	feed(&sp, &st, 130000, 80, MT_RULE_NONE);
	feed(&sp, &st, 139999, 80, MT_RULE_NONE);
	feed(&sp, &st, 140000, 80, MT_RULE_RAISE);
	/* breaching again during recovery restarts the clear wait too */
	feed(&sp, &st, 150000, 99, MT_RULE_NONE);
	feed(&sp, &st, 155000, 80, MT_RULE_NONE);
	feed(&sp, &st, 160000, 99, MT_RULE_NONE);
	feed(&sp, &st, 169999, 99, MT_RULE_NONE);
	feed(&sp, &st, 170000, 99, MT_RULE_CLEAR);
}

static void test_out_of_order(void **state)
{
	(void)state;
	struct mt_rule_state st, before;
	mt_rule_state_init(&st);
	feed(&spo2_30s, &st, 10000, 85, MT_RULE_NONE); /* wait from 10 s */
	/* older samples are ignored, whatever they say */
	before = st;
	feed(&spo2_30s, &st, 9999, 99, MT_RULE_NONE);
	feed(&spo2_30s, &st, 0, 70, MT_RULE_NONE);
	assert_memory_equal(&st, &before, sizeof(st));
	/* the wait still runs from 10 s, not from 0 s */
	feed(&spo2_30s, &st, 39999, 85, MT_RULE_NONE);
	/* an old good sample does not break the run either */
	feed(&spo2_30s, &st, 20000, 99, MT_RULE_NONE);
	/* the same millisecond as the newest is taken */
	feed(&spo2_30s, &st, 39999, 85, MT_RULE_NONE);
	feed(&spo2_30s, &st, 40000, 85, MT_RULE_RAISE);
	/* an old good sample does not clear */
	feed(&spo2_30s, &st, 30000, 99, MT_RULE_NONE);
	assert_true(st.raised);
	/* a same-ms good sample does */
	feed(&spo2_30s, &st, 40000, 99, MT_RULE_CLEAR);

	/* times near 2^64 do not wrap */
	struct mt_rule now = spo2_30s;
	now.hold_ms = 1;
	mt_rule_state_init(&st);
	feed(&now, &st, UINT64_MAX - 1, 80, MT_RULE_NONE);
	feed(&now, &st, UINT64_MAX - 1, 80, MT_RULE_NONE);
	feed(&now, &st, 0, 80, MT_RULE_NONE); /* ignored: older */
	feed(&now, &st, UINT64_MAX, 80, MT_RULE_RAISE);
}

static void test_ignored_inputs(void **state)
{
	(void)state;
	struct mt_rule_state st, before;
	mt_rule_state_init(&st);
	feed(&spo2_30s, &st, 1000, 85, MT_RULE_NONE);
	before = st;
	/* non-finite values: not readings */
	feed(&spo2_30s, &st, 2000, NAN, MT_RULE_NONE);
	feed(&spo2_30s, &st, 3000, -INFINITY, MT_RULE_NONE);
	feed(&spo2_30s, &st, 4000, INFINITY, MT_RULE_NONE);
	assert_memory_equal(&st, &before, sizeof(st));
	/* invalid rules and NULLs */
	struct mt_rule bad = spo2_30s;
	bad.prio = 0;
	feed(&bad, &st, 40000, 80, MT_RULE_NONE);
	bad = spo2_30s;
	bad.limit = NAN;
	feed(&bad, &st, 40000, 80, MT_RULE_NONE);
	feed(NULL, &st, 40000, 80, MT_RULE_NONE);
	assert_memory_equal(&st, &before, sizeof(st));
	assert_int_equal(mt_rule_feed(&spo2_30s, NULL, 40000, 80), MT_RULE_NONE);
	/* and the valid rule still raises on time */
	feed(&spo2_30s, &st, 31000, 80, MT_RULE_RAISE);
}

static void test_validate(void **state)
{
	(void)state;
	struct mt_rule r = spo2_30s;
	assert_int_equal(mt_rule_validate(&r), MT_OK);
	assert_int_equal(mt_rule_validate(NULL), MT_ERR_ARG);
	r = spo2_30s; r.mdc_code = 0;
	assert_int_equal(mt_rule_validate(&r), MT_ERR_ARG);
	r = spo2_30s; r.dir = (enum mt_rule_dir)2;
	assert_int_equal(mt_rule_validate(&r), MT_ERR_ARG);
	r = spo2_30s; r.limit = INFINITY;
	assert_int_equal(mt_rule_validate(&r), MT_ERR_ARG);
	r = spo2_30s; r.limit = NAN;
	assert_int_equal(mt_rule_validate(&r), MT_ERR_ARG);
	r = spo2_30s; r.hysteresis = -0.5;
	assert_int_equal(mt_rule_validate(&r), MT_ERR_ARG);
	r = spo2_30s; r.hysteresis = NAN;
	assert_int_equal(mt_rule_validate(&r), MT_ERR_ARG);
	r = spo2_30s; r.hysteresis = INFINITY;
	assert_int_equal(mt_rule_validate(&r), MT_ERR_ARG);
	r = spo2_30s; r.prio = 0;
	assert_int_equal(mt_rule_validate(&r), MT_ERR_ARG);
	r = spo2_30s; r.prio = 4;
	assert_int_equal(mt_rule_validate(&r), MT_ERR_ARG);
	for (unsigned p = 1; p <= 3; p++) {
		r = spo2_30s; r.prio = p;
		assert_int_equal(mt_rule_validate(&r), MT_OK);
	}
}

/* ---- reference model ---------------------------------------------------- */

#define HIST_MAX 4096
struct sample {
	uint64_t t;
	double v;
};

struct ref {
	struct sample h[HIST_MAX]; /* samples taken (in order) */
	size_t n;
	size_t since_event;        /* index of the first sample after the last event */
	bool raised;
};

static bool ref_breach(const struct mt_rule *r, double v)
{
	return r->dir == MT_RULE_ABOVE ? v > r->limit : v < r->limit;
}

static bool ref_recovered(const struct mt_rule *r, double v)
{
	return r->dir == MT_RULE_ABOVE ? v <= r->limit - r->hysteresis
	                               : v >= r->limit + r->hysteresis;
}

/* By the definition: the condition (breach while not raised, recovery
 * while raised) met by every taken sample from some j after the last event
 * up to this one, and this one at least hold (clear) ms after sample j,
 * for the earliest such j. */
static enum mt_rule_event ref_feed(const struct mt_rule *r, struct ref *m, uint64_t t, double v)
{
	if (m->n > 0 && t < m->h[m->n - 1].t)
		return MT_RULE_NONE;
	assert_true(m->n < HIST_MAX);
	m->h[m->n++] = (struct sample){ t, v };
	size_t i = m->n - 1, j = m->n;
	while (j > m->since_event) {
		double x = m->h[j - 1].v;
		if (!(m->raised ? ref_recovered(r, x) : ref_breach(r, x)))
			break;
		j--;
	}
	if (j == m->n) /* this sample does not meet the condition */
		return MT_RULE_NONE;
	uint64_t need = m->raised ? r->clear_ms : r->hold_ms;
	if (m->h[i].t - m->h[j].t < need)
		return MT_RULE_NONE;
	m->raised = !m->raised;
	m->since_event = m->n;
	return m->raised ? MT_RULE_RAISE : MT_RULE_CLEAR;
}

static void test_against_reference_model(void **state)
{
	(void)state;
	uint64_t rng = 0x6e657773322d7275ull;
	unsigned raises = 0, clears = 0, ignored = 0, samples = 0;
	static struct ref m;
	for (int run = 0; run < 300; run++) {
		struct mt_rule r;
		r.mdc_code = 150456;
		r.dir = (mt_test_xorshift64(&rng) & 1) ? MT_RULE_ABOVE : MT_RULE_BELOW;
		r.limit = 90;
		r.hysteresis = (double)(mt_test_xorshift64(&rng) % 4);
		r.hold_ms = (uint32_t)(mt_test_xorshift64(&rng) % 4) * 1000;
		r.clear_ms = (uint32_t)(mt_test_xorshift64(&rng) % 4) * 1000;
		r.prio = 2;
		struct mt_rule_state st;
		mt_rule_state_init(&st);
		memset(&m, 0, sizeof(m));
		uint64_t t = mt_test_xorshift64(&rng) % 100000;
		for (int k = 0; k < 2000; k++) {
			uint64_t x = mt_test_xorshift64(&rng);
			switch (x % 16) {
			case 0: t = t > 5000 ? t - (x >> 8) % 5000 : t; break; /* older */
			case 1: break;                                        /* same ms */
			case 2: t += 10000; break;                            /* a gap */
			default: t += 100 + (x >> 8) % 900; break;
			}
			double v = 85 + (double)((x >> 20) % 11);     /* 85..95 */
			if ((x >> 40) % 4 == 0)
				v += 0.5;
			if ((x >> 44) % 64 == 0)
				v = NAN;
			enum mt_rule_event want =
				isfinite(v) ? ref_feed(&r, &m, t, v) : MT_RULE_NONE;
			enum mt_rule_event got = mt_rule_feed(&r, &st, t, v);
			if (got != want)
				fail_msg("run %d step %d t=%llu v=%g (dir %d hyst %g hold %u clear %u):"
				         " want %s, got %s", run, k, (unsigned long long)t, v, r.dir,
				         r.hysteresis, r.hold_ms, r.clear_ms, ev_name(want), ev_name(got));
			raises += got == MT_RULE_RAISE;
			clears += got == MT_RULE_CLEAR;
			ignored += m.n > 0 && t < m.h[m.n - 1].t;
			samples++;
		}
	}
	assert_true(raises > 1000 && clears > 1000 && ignored > 1000);
	print_message("rules: %u samples, %u raises, %u clears, %u out of order: all as the model\n",
	              samples, raises, clears, ignored);
}

/* ---- text form ---------------------------------------------------------- */

struct good {
	const char *text;
	struct mt_rule want;
	const char *canonical;
};

static const struct good goods[] = {
	{ "150456<90 for 30s hyst 2 prio high",
	  { 150456, MT_RULE_BELOW, 90, 2, 30000, 0, 3 },
	  "150456<90 for 30s hyst 2 prio high" },
	{ "  150456 < 90\tfor 30s   hyst 2 prio high  ",
	  { 150456, MT_RULE_BELOW, 90, 2, 30000, 0, 3 },
	  "150456<90 for 30s hyst 2 prio high" },
	{ "147842>130 prio medium",
	  { 147842, MT_RULE_ABOVE, 130, 0, 0, 0, 2 }, "147842>130 prio medium" },
	{ "prio 1 147842>130", { 0, 0, 0, 0, 0, 0, 0 }, NULL }, /* refused: code first */
	{ "147842 >130 prio 3 clear 2min hyst 0.5 for 500ms",
	  { 147842, MT_RULE_ABOVE, 130, 0.5, 500, 120000, 3 },
	  "147842>130 for 500ms hyst 0.5 clear 2min prio high" },
	{ "150364>38.5 for 1h prio 1",
	  { 150364, MT_RULE_ABOVE, 38.5, 0, 3600000, 0, 1 }, "150364>38.5 for 1h prio low" },
	{ "150364>38.5 for 90s prio 2",
	  { 150364, MT_RULE_ABOVE, 38.5, 0, 90000, 0, 2 }, "150364>38.5 for 90s prio medium" },
	{ "150364>38.5 for 60000ms prio 2",
	  { 150364, MT_RULE_ABOVE, 38.5, 0, 60000, 0, 2 }, "150364>38.5 for 1min prio medium" },
	{ "131330<-0.25 prio low",
	  { 131330, MT_RULE_BELOW, -0.25, 0, 0, 0, 1 }, "131330<-0.25 prio low" },
	{ "160184>1.5e2 prio low",
	  { 160184, MT_RULE_ABOVE, 150, 0, 0, 0, 1 }, "160184>150 prio low" },
	{ "160184>1E-3 prio low",
	  { 160184, MT_RULE_ABOVE, 0.001, 0, 0, 0, 1 }, "160184>0.001 prio low" },
	{ "4294967295>0 for 4294967295ms prio low",
	  { 4294967295u, MT_RULE_ABOVE, 0, 0, 4294967295u, 0, 1 },
	  "4294967295>0 for 4294967295ms prio low" },
	{ "1<0.1 for 0s hyst 0 clear 0ms prio low",
	  { 1, MT_RULE_BELOW, 0.1, 0, 0, 0, 1 }, "1<0.1 prio low" },
};

static void same_rule(const struct mt_rule *a, const struct mt_rule *b, const char *ctx)
{
	if (a->mdc_code != b->mdc_code || a->dir != b->dir ||
	    memcmp(&a->limit, &b->limit, sizeof(double)) != 0 ||
	    a->hysteresis != b->hysteresis || a->hold_ms != b->hold_ms ||
	    a->clear_ms != b->clear_ms || a->prio != b->prio)
		fail_msg("%s: rules differ: %u %d %.17g %.17g %u %u %u vs %u %d %.17g %.17g %u %u %u",
		         ctx, a->mdc_code, a->dir, a->limit, a->hysteresis, a->hold_ms,
		         a->clear_ms, a->prio, b->mdc_code, b->dir, b->limit, b->hysteresis,
		         b->hold_ms, b->clear_ms, b->prio);
}

static void test_parse_and_format(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(goods); i++) {
		struct mt_rule r;
		const char *why = "unset";
		enum mt_err e = mt_rule_parse(goods[i].text, &r, &why);
		if (!goods[i].canonical) {
			assert_int_equal(e, MT_ERR_ARG);
			continue;
		}
		if (e != MT_OK)
			fail_msg("\"%s\" refused: %s", goods[i].text, why ? why : "(null)");
		assert_null(why);
		same_rule(&r, &goods[i].want, goods[i].text);
		char buf[MT_RULE_TEXT_MAX];
		assert_int_equal(mt_rule_format(&r, buf, sizeof(buf)), MT_OK);
		assert_string_equal(buf, goods[i].canonical);
		struct mt_rule back;
		assert_int_equal(mt_rule_parse(buf, &back, NULL), MT_OK);
		same_rule(&back, &r, buf);
	}
}

static const char *const bads[] = {
	"", "   ", "abc", "prio high", "<90 prio low",
	"0<90 prio low", "4294967296<90 prio low", "0150456<90 prio low",
	"-150456<90 prio low", "150456=90 prio low", "150456<<90 prio low",
	"150456<=90 prio low", "150456<prio low", "150456< prio low",
	"150456<90", "150456<90 for 30s", "150456<90 prio", "150456<90 prio ",
	"150456<90 prio urgent", "150456<90 prio HIGH", "150456<90 PRIO high",
	"150456<90 prio 0", "150456<90 prio 4", "150456<90 prio lowx",
	"150456<90 prio low;", "150456<90 prio low extra", "150456<90 prio low 3",
	"150456<90 bogus 3 prio low", "150456<90prio low", "150456<90 priolow",
	"150456<90 for 30 prio high", "150456<90 for 30 s prio high",
	"150456<90 for 30sec prio high", "150456<90 for 30S prio high",
	"150456<90 for -1s prio low", "150456<90 for 1.5s prio low",
	"150456<90 for 01s prio low", "150456<90 for s prio low",
	"150456<90 for 4294968s prio low", "150456<90 for 4294967296ms prio low",
	"150456<90 for 1194h prio low", "150456<90 for 99999999999999999999ms prio low",
	"150456<90 for 1s for 2s prio low", "150456<90 prio low prio high",
	"150456<90 hyst 1 hyst 2 prio low", "150456<90 clear 1s clear 1s prio low",
	"150456<90 hyst -1 prio low", "150456<90 hyst nan prio low",
	"150456<90 hyst inf prio low", "150456<90 hyst prio low",
	"150456<inf prio low", "150456<nan prio low", "150456<NaN prio low",
	"150456<0x10 prio low", "150456<+90 prio low", "150456<90. prio low",
	"150456<.5 prio low", "150456<1e prio low", "150456<1e+ prio low",
	"150456<1e999 prio low", "150456<-1e999 prio low", "150456<9 0 prio low",
	"150456<90,5 prio low", "150456<90 prio low\n", "150456<90\nprio low",
	"150456<90 prio l\xc3\xb3w", "150456\xc2\xa0<90 prio low",
	"150456<90 prio low #comment",
};

static void test_parse_refusals(void **state)
{
	(void)state;
	struct mt_rule sentinel, r;
	memset(&sentinel, 0xa5, sizeof(sentinel));
	for (size_t i = 0; i < N(bads); i++) {
		const char *why = NULL;
		r = sentinel;
		if (mt_rule_parse(bads[i], &r, &why) != MT_ERR_ARG)
			fail_msg("\"%s\" was accepted", bads[i]);
		assert_non_null(why);
		assert_true(strlen(why) > 5);
		assert_memory_equal(&r, &sentinel, sizeof(r)); /* out untouched */
	}
	/* the reason names the fault */
	static const struct {
		const char *text, *why_has;
	} reasons[] = {
		{ "150456<90", "prio" },
		{ "150456<90 for 30 prio high", "unit" },
		{ "150456<90 for 4294968s prio low", "too long" },
		{ "150456<90 hyst -1 prio low", "negative" },
		{ "150456<90 prio low prio low", "twice" },
		{ "150456<90 prio urgent", "priority" },
		{ "0<90 prio low", "MDC code 0" },
		{ "150456=90 prio low", "'<' or '>'" },
		{ "150456<90 colour red prio low", "unknown clause" },
		{ "150456<1e999 prio low", "out of range" },
	};
	for (size_t i = 0; i < N(reasons); i++) {
		const char *why = NULL;
		assert_int_equal(mt_rule_parse(reasons[i].text, &r, &why), MT_ERR_ARG);
		if (!why || !strstr(why, reasons[i].why_has))
			fail_msg("\"%s\": reason \"%s\" does not say \"%s\"", reasons[i].text,
			         why ? why : "(null)", reasons[i].why_has);
	}
	assert_int_equal(mt_rule_parse(NULL, &r, NULL), MT_ERR_ARG);
	assert_int_equal(mt_rule_parse("150456<90 prio low", NULL, NULL), MT_ERR_ARG);

	/* the length bound: MT_RULE_TEXT_MAX bytes read, one more refused */
	char text[MT_RULE_TEXT_MAX + 2];
	const char *base = "150456<90 prio low";
	memset(text, ' ', sizeof(text));
	memcpy(text, base, strlen(base));
	text[MT_RULE_TEXT_MAX] = '\0';
	assert_int_equal(mt_rule_parse(text, &r, NULL), MT_OK);
	text[MT_RULE_TEXT_MAX] = ' ';
	text[MT_RULE_TEXT_MAX + 1] = '\0';
	const char *why = NULL;
	assert_int_equal(mt_rule_parse(text, &r, &why), MT_ERR_ARG);
	assert_string_equal(why, "rule text too long");
	print_message("rules: %zu malformed texts refused\n", N(bads));
}

static void test_format_edges(void **state)
{
	(void)state;
	const struct mt_rule r = { 150456, MT_RULE_BELOW, 90, 2, 30000, 0, 3 };
	const char *want = "150456<90 for 30s hyst 2 prio high";
	char buf[MT_RULE_TEXT_MAX];
	size_t len = strlen(want);
	assert_int_equal(mt_rule_format(&r, buf, len + 1), MT_OK);
	assert_string_equal(buf, want);
	assert_int_equal(mt_rule_format(&r, buf, len), MT_ERR_BUFFER);
	assert_string_equal(buf, "");
	assert_int_equal(mt_rule_format(&r, buf, 1), MT_ERR_BUFFER);
	assert_int_equal(mt_rule_format(&r, buf, 0), MT_ERR_ARG);
	assert_int_equal(mt_rule_format(&r, NULL, 10), MT_ERR_ARG);
	assert_int_equal(mt_rule_format(NULL, buf, sizeof(buf)), MT_ERR_ARG);
	struct mt_rule bad = r;
	bad.prio = 9;
	memcpy(buf, "junk", 5);
	assert_int_equal(mt_rule_format(&bad, buf, sizeof(buf)), MT_ERR_ARG);
	assert_string_equal(buf, "");
}

/* A random finite double: random bits, or a "clinical" decimal. */
static double random_double(uint64_t *rng)
{
	uint64_t x = mt_test_xorshift64(rng);
	if (x % 3 == 0) { /* 53 random bits at a magnitude 1e-4 .. 1e17 */
		double m = (double)(mt_test_xorshift64(rng) >> 11) / 9007199254740992.0;
		double d = m * pow(10.0, (double)((int)((x >> 8) % 21) - 4));
		return (x >> 40) & 1 ? -d : d;
	}
	if (x % 3 == 1) {
		double d;
		uint64_t bits = mt_test_xorshift64(rng);
		memcpy(&d, &bits, sizeof(d));
		return isfinite(d) ? d : 1.0;
	}
	return (double)(int64_t)((x >> 1) % 400001 - 200000) / 1000.0;
}

static void test_round_trip_random(void **state)
{
	(void)state;
	uint64_t rng = 0x72756c6573212121ull;
	size_t longest = 0;
	const uint32_t mults[] = { 1, 1000, 60000, 3600000 };
	for (int i = 0; i < 20000; i++) {
		struct mt_rule r;
		r.mdc_code = (uint32_t)(mt_test_xorshift64(&rng) % UINT32_MAX) + 1;
		r.dir = (mt_test_xorshift64(&rng) & 1) ? MT_RULE_ABOVE : MT_RULE_BELOW;
		r.limit = random_double(&rng);
		r.hysteresis = fabs(random_double(&rng));
		if (mt_test_xorshift64(&rng) % 4 == 0)
			r.hysteresis = 0;
		for (int k = 0; k < 2; k++) {
			uint64_t x = mt_test_xorshift64(&rng);
			uint32_t ms = (x & 3) == 0 ? 0
			              : (x & 3) == 1 ? (uint32_t)(x >> 32)
			                             : (uint32_t)((x >> 8) % 1000) *
			                                       mults[(x >> 4) % 4];
			if (k == 0)
				r.hold_ms = ms;
			else
				r.clear_ms = ms;
		}
		r.prio = 1 + (unsigned)(mt_test_xorshift64(&rng) % 3);
		assert_int_equal(mt_rule_validate(&r), MT_OK);

		char buf[MT_RULE_TEXT_MAX];
		if (mt_rule_format(&r, buf, sizeof(buf)) != MT_OK)
			fail_msg("format failed for limit %.17g hyst %.17g", r.limit, r.hysteresis);
		if (strlen(buf) > longest)
			longest = strlen(buf);
		struct mt_rule back;
		const char *why = NULL;
		if (mt_rule_parse(buf, &back, &why) != MT_OK)
			fail_msg("\"%s\" does not parse: %s", buf, why);
		same_rule(&back, &r, buf);
		assert_memory_equal(&back.hysteresis, &r.hysteresis, sizeof(double));
	}
	print_message("rules: 20000 random rules round-trip, longest text %zu bytes (max %d)\n",
	              longest, MT_RULE_TEXT_MAX);
}

/* The longest text format can write fits MT_RULE_TEXT_MAX: the widest
 * code, 17 significant digits in plain decimals, unaligned durations. */
static void test_format_longest(void **state)
{
	(void)state;
	struct mt_rule r = { UINT32_MAX, MT_RULE_BELOW, -0.00012345678901234567,
	                     0.00098765432109876543, UINT32_MAX, UINT32_MAX - 1, 2 };
	char buf[MT_RULE_TEXT_MAX];
	assert_int_equal(mt_rule_format(&r, buf, sizeof(buf)), MT_OK);
	print_message("rules: longest form (%zu bytes): %s\n", strlen(buf), buf);
	assert_string_equal(buf, "4294967295<-0.00012345678901234567 for 4294967295ms"
	                         " hyst 0.0009876543210987653 clear 4294967294ms prio medium");
	struct mt_rule back;
	assert_int_equal(mt_rule_parse(buf, &back, NULL), MT_OK);
	same_rule(&back, &r, buf);
	r.limit = -1.2345678901234567e-300; /* %g form */
	r.hysteresis = 1.2345678901234567e300;
	assert_int_equal(mt_rule_format(&r, buf, sizeof(buf)), MT_OK);
	print_message("rules: exponent form (%zu bytes): %s\n", strlen(buf), buf);
	assert_int_equal(mt_rule_parse(buf, &back, NULL), MT_OK);
	same_rule(&back, &r, buf);
}

static void test_defaults(void **state)
{
	(void)state;
	struct mt_rule rules[MT_RULES_DEFAULT_COUNT + 1];
	size_t n = 0;
	assert_int_equal(mt_rules_default(rules, N(rules), &n), MT_OK);
	assert_int_equal(n, MT_RULES_DEFAULT_COUNT);
	static const char *const want[MT_RULES_DEFAULT_COUNT] = {
		"150456<90 for 30s hyst 2 prio medium",
		"150456<85 for 10s hyst 2 prio high",
		"147842>130 for 30s hyst 5 prio medium",
		"147842<40 for 10s hyst 5 prio high",
		"149530>130 for 30s hyst 5 prio medium",
		"149530<40 for 10s hyst 5 prio high",
		"150021<90 hyst 5 prio medium",
	};
	for (size_t i = 0; i < n; i++) {
		char buf[MT_RULE_TEXT_MAX];
		assert_int_equal(mt_rule_validate(&rules[i]), MT_OK);
		assert_int_equal(mt_rule_format(&rules[i], buf, sizeof(buf)), MT_OK);
		assert_string_equal(buf, want[i]);
		print_message("rules: default %zu: %s\n", i, buf);
	}
	/* too small: nothing written, the count needed */
	struct mt_rule few[MT_RULES_DEFAULT_COUNT - 1];
	memset(few, 0, sizeof(few));
	n = 0;
	assert_int_equal(mt_rules_default(few, N(few), &n), MT_ERR_BUFFER);
	assert_int_equal(n, MT_RULES_DEFAULT_COUNT);
	assert_int_equal(few[0].mdc_code, 0);
	n = 0;
	assert_int_equal(mt_rules_default(NULL, 0, &n), MT_ERR_BUFFER);
	assert_int_equal(n, MT_RULES_DEFAULT_COUNT);
	assert_int_equal(mt_rules_default(NULL, 3, &n), MT_ERR_ARG);
	assert_int_equal(mt_rules_default(rules, N(rules), NULL), MT_ERR_ARG);

	/* the SpO2 pair behaves as documented: 84 % raises high after 10 s,
	 * medium after 30 s */
	struct mt_rule_state med, high;
	mt_rule_state_init(&med);
	mt_rule_state_init(&high);
	assert_int_equal(mt_rule_feed(&rules[0], &med, 0, 84), MT_RULE_NONE);
	assert_int_equal(mt_rule_feed(&rules[1], &high, 0, 84), MT_RULE_NONE);
	assert_int_equal(mt_rule_feed(&rules[0], &med, 10000, 84), MT_RULE_NONE);
	assert_int_equal(mt_rule_feed(&rules[1], &high, 10000, 84), MT_RULE_RAISE);
	assert_int_equal(mt_rule_feed(&rules[0], &med, 30000, 84), MT_RULE_RAISE);
	/* NIBP: one reading raises */
	struct mt_rule_state bp;
	mt_rule_state_init(&bp);
	assert_int_equal(mt_rule_feed(&rules[6], &bp, 0, 88), MT_RULE_RAISE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hold_time),
		cmocka_unit_test(test_above_and_limit),
		cmocka_unit_test(test_hysteresis),
		cmocka_unit_test(test_clear_time),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_ignored_inputs),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_against_reference_model),
		cmocka_unit_test(test_parse_and_format),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_format_edges),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_format_longest),
		cmocka_unit_test(test_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
