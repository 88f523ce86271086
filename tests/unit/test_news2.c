/*
 * test_news2.c — the NEWS2 scorer (mt_news2.h) against spec/clinical.md §2.
 *
 * What is proved, and how:
 *  - Every band boundary of every measured parameter, both sides, read off
 *    the chart by hand into one table (value → expected sub-score), with
 *    the half-up rounding cases beside each boundary (20.5 → 21, 38.05 →
 *    38.1, 35.04 → 35.0, 38.049 → 38.0 ...).  SpO2 on scale 1, on scale 2
 *    on air and on scale 2 on oxygen, including 92/93 (0/0 on air, 0/1 on
 *    oxygen).
 *  - A sweep: every whole value 0–300 and every half n.5 of each whole-unit
 *    parameter, and every tenth 30.0–45.0 °C and every half-tenth of
 *    temperature, written as decimal text and read with strtod as a device
 *    reading would be, and every temperature half and tenth as a float32
 *    (a device measuring in single precision), against a second model of
 *    the chart written as inclusive intervals (the form the spec prints),
 *    so a slip in either table shows.
 *  - Every combination of sub-scores of the seven parameters (4096 inputs)
 *    through mt_news2_score: aggregate = sum, any_three, and the trigger,
 *    risk, monitoring and priority of the last table of §2 — so every
 *    aggregate threshold (0, 1, 4, 5, 6, 7, 20) and the single-3 rule are
 *    crossed from both sides; then named cases for each.
 *  - Air/oxygen, each ACVPU letter, unknown oxygen/consciousness (scored as
 *    air/alert and flagged assumed), missing parameters (mask, complete,
 *    aggregate over what is present), not applicable (distinct result, no
 *    score), non-finite inputs and bad letters refused, the MDC mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_news2.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- one value, one sub-score ------------------------------------------ */

/* SpO2 variants of the table below */
enum sp { S1 = 0, S2_AIR = 1, S2_O2 = 2, S1_O2 = 3 };

struct band_case {
	enum mt_news2_param p;
	enum sp sp; /* SpO2 only */
	double v;
	uint8_t want;
};

#define RR MT_NEWS2_RESP_RATE
#define SPO2 MT_NEWS2_SPO2
#define SYS MT_NEWS2_SYSTOLIC
#define PUL MT_NEWS2_PULSE
#define TMP MT_NEWS2_TEMPERATURE

static const struct band_case band_cases[] = {
	/* respiration rate: ≤8 3 | 9–11 1 | 12–20 0 | 21–24 2 | ≥25 3 */
	{ RR, 0, 0, 3 }, { RR, 0, 8, 3 }, { RR, 0, 9, 1 }, { RR, 0, 11, 1 },
	{ RR, 0, 12, 0 }, { RR, 0, 20, 0 }, { RR, 0, 21, 2 }, { RR, 0, 24, 2 },
	{ RR, 0, 25, 3 }, { RR, 0, 60, 3 },
	{ RR, 0, 8.49, 3 }, { RR, 0, 8.5, 1 }, { RR, 0, 11.49, 1 }, { RR, 0, 11.5, 0 },
	{ RR, 0, 20.49, 0 }, { RR, 0, 20.5, 2 }, { RR, 0, 24.49, 2 }, { RR, 0, 24.5, 3 },
	/* SpO2 scale 1: ≤91 3 | 92–93 2 | 94–95 1 | ≥96 0 */
	{ SPO2, S1, 50, 3 }, { SPO2, S1, 91, 3 }, { SPO2, S1, 92, 2 }, { SPO2, S1, 93, 2 },
	{ SPO2, S1, 94, 1 }, { SPO2, S1, 95, 1 }, { SPO2, S1, 96, 0 }, { SPO2, S1, 100, 0 },
	{ SPO2, S1, 91.49, 3 }, { SPO2, S1, 91.5, 2 }, { SPO2, S1, 93.5, 1 },
	{ SPO2, S1, 95.49, 1 }, { SPO2, S1, 95.5, 0 },
	/* scale 1 ignores oxygen for the SpO2 row (oxygen has its own row) */
	{ SPO2, S1_O2, 91, 3 }, { SPO2, S1_O2, 92, 2 }, { SPO2, S1_O2, 95, 1 },
	{ SPO2, S1_O2, 96, 0 }, { SPO2, S1_O2, 100, 0 },
	/* scale 2 on air: ≤83 3 | 84–85 2 | 86–87 1 | 88–92 0 | ≥93 0 */
	{ SPO2, S2_AIR, 70, 3 }, { SPO2, S2_AIR, 83, 3 }, { SPO2, S2_AIR, 84, 2 },
	{ SPO2, S2_AIR, 85, 2 }, { SPO2, S2_AIR, 86, 1 }, { SPO2, S2_AIR, 87, 1 },
	{ SPO2, S2_AIR, 88, 0 }, { SPO2, S2_AIR, 92, 0 }, { SPO2, S2_AIR, 93, 0 },
	{ SPO2, S2_AIR, 94, 0 }, { SPO2, S2_AIR, 95, 0 }, { SPO2, S2_AIR, 96, 0 },
	{ SPO2, S2_AIR, 97, 0 }, { SPO2, S2_AIR, 100, 0 },
	{ SPO2, S2_AIR, 83.49, 3 }, { SPO2, S2_AIR, 83.5, 2 }, { SPO2, S2_AIR, 87.5, 0 },
	{ SPO2, S2_AIR, 92.5, 0 },
	/* scale 2 on oxygen: ... 88–92 0 | 93–94 1 | 95–96 2 | ≥97 3 */
	{ SPO2, S2_O2, 70, 3 }, { SPO2, S2_O2, 83, 3 }, { SPO2, S2_O2, 84, 2 },
	{ SPO2, S2_O2, 85, 2 }, { SPO2, S2_O2, 86, 1 }, { SPO2, S2_O2, 87, 1 },
	{ SPO2, S2_O2, 88, 0 }, { SPO2, S2_O2, 92, 0 }, { SPO2, S2_O2, 93, 1 },
	{ SPO2, S2_O2, 94, 1 }, { SPO2, S2_O2, 95, 2 }, { SPO2, S2_O2, 96, 2 },
	{ SPO2, S2_O2, 97, 3 }, { SPO2, S2_O2, 100, 3 },
	{ SPO2, S2_O2, 92.49, 0 }, { SPO2, S2_O2, 92.5, 1 }, { SPO2, S2_O2, 94.5, 2 },
	{ SPO2, S2_O2, 96.49, 2 }, { SPO2, S2_O2, 96.5, 3 },
	/* systolic: ≤90 3 | 91–100 2 | 101–110 1 | 111–219 0 | ≥220 3 */
	{ SYS, 0, 40, 3 }, { SYS, 0, 90, 3 }, { SYS, 0, 91, 2 }, { SYS, 0, 100, 2 },
	{ SYS, 0, 101, 1 }, { SYS, 0, 110, 1 }, { SYS, 0, 111, 0 }, { SYS, 0, 219, 0 },
	{ SYS, 0, 220, 3 }, { SYS, 0, 300, 3 },
	{ SYS, 0, 90.49, 3 }, { SYS, 0, 90.5, 2 }, { SYS, 0, 110.5, 0 },
	{ SYS, 0, 219.49, 0 }, { SYS, 0, 219.5, 3 },
	/* pulse: ≤40 3 | 41–50 1 | 51–90 0 | 91–110 1 | 111–130 2 | ≥131 3 */
	{ PUL, 0, 0, 3 }, { PUL, 0, 40, 3 }, { PUL, 0, 41, 1 }, { PUL, 0, 50, 1 },
	{ PUL, 0, 51, 0 }, { PUL, 0, 90, 0 }, { PUL, 0, 91, 1 }, { PUL, 0, 110, 1 },
	{ PUL, 0, 111, 2 }, { PUL, 0, 130, 2 }, { PUL, 0, 131, 3 }, { PUL, 0, 250, 3 },
	{ PUL, 0, 40.49, 3 }, { PUL, 0, 40.5, 1 }, { PUL, 0, 50.5, 0 }, { PUL, 0, 90.5, 1 },
	{ PUL, 0, 110.5, 2 }, { PUL, 0, 130.49, 2 }, { PUL, 0, 130.5, 3 },
	/* temperature: ≤35.0 3 | 35.1–36.0 1 | 36.1–38.0 0 | 38.1–39.0 1 | ≥39.1 2 */
	{ TMP, 0, 30.0, 3 }, { TMP, 0, 35.0, 3 }, { TMP, 0, 35.1, 1 }, { TMP, 0, 36.0, 1 },
	{ TMP, 0, 36.1, 0 }, { TMP, 0, 38.0, 0 }, { TMP, 0, 38.1, 1 }, { TMP, 0, 39.0, 1 },
	{ TMP, 0, 39.1, 2 }, { TMP, 0, 42.0, 2 },
	/* half-up to 0.1 °C, and the binary trap: 38.05 is 38.0499… */
	{ TMP, 0, 35.04, 3 }, { TMP, 0, 35.049, 3 }, { TMP, 0, 35.05, 1 },
	{ TMP, 0, 36.049, 1 }, { TMP, 0, 36.05, 0 }, { TMP, 0, 38.049, 0 },
	{ TMP, 0, 38.05, 1 }, { TMP, 0, 39.049, 1 }, { TMP, 0, 39.05, 2 },
	{ TMP, 0, 35.95, 1 }, { TMP, 0, 38.0499, 0 }, { TMP, 0, 35.0499, 3 },
	/* the same halves sent by a device that measures in float32:
	 * 38.05f is 38.0499992…, within MT_NEWS2_EPS of the half */
	{ TMP, 0, (double)35.05f, 1 }, { TMP, 0, (double)36.05f, 0 },
	{ TMP, 0, (double)38.05f, 1 }, { TMP, 0, (double)39.05f, 2 },
	{ TMP, 0, (double)35.04f, 3 }, { TMP, 0, (double)38.049f, 0 },
	{ TMP, 0, (double)37.95f, 0 }, { TMP, 0, (double)38.95f, 1 },
	/* far outside the plausible ranges: still a sub-score, no overflow */
	{ RR, 0, 1e308, 3 }, { RR, 0, -1e308, 3 }, { TMP, 0, 1e308, 2 },
	{ TMP, 0, -1e308, 3 }, { PUL, 0, -0.0, 3 }, { SYS, 0, 0.49999999999999994, 3 },
};

static bool sp_scale2(enum sp s) { return s == S2_AIR || s == S2_O2; }
static bool sp_oxygen(enum sp s) { return s == S2_O2 || s == S1_O2; }

static void test_every_band_boundary(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(band_cases); i++) {
		const struct band_case *c = &band_cases[i];
		uint8_t got = 99;
		if (mt_news2_subscore(c->p, c->v, sp_scale2(c->sp), sp_oxygen(c->sp), &got) != MT_OK)
			fail_msg("case %zu: %s %.17g refused", i, mt_news2_param_name(c->p), c->v);
		if (got != c->want)
			fail_msg("case %zu: %s %.17g (spo2 variant %d): want %u, got %u", i,
			         mt_news2_param_name(c->p), c->v, (int)c->sp, c->want, got);

		/* the same through the whole scorer, alone in the input */
		struct mt_news2_input in;
		struct mt_news2_result r;
		mt_news2_input_init(&in);
		in.spo2_scale2 = sp_scale2(c->sp);
		in.oxygen = sp_oxygen(c->sp) ? 'O' : 'A';
		in.consciousness = 'A';
		assert_int_equal(mt_news2_input_set(&in, c->p, c->v), MT_OK);
		assert_int_equal(mt_news2_score(&in, &r), MT_OK);
		assert_int_equal(r.sub[c->p], c->want);
		assert_int_equal(r.aggregate, c->want + (sp_oxygen(c->sp) ? 2 : 0));
	}
	print_message("news2: %zu band cases\n", N(band_cases));
}

/* ---- the sweep, against the chart as inclusive intervals ---------------- */

struct interval {
	int lo, hi; /* inclusive, in the chart's unit (tenths for temperature) */
	uint8_t score;
};

#define LO -1000000
#define HI 1000000
static const struct interval m_rr[] = {
	{ LO, 8, 3 }, { 9, 11, 1 }, { 12, 20, 0 }, { 21, 24, 2 }, { 25, HI, 3 } };
static const struct interval m_s1[] = {
	{ LO, 91, 3 }, { 92, 93, 2 }, { 94, 95, 1 }, { 96, HI, 0 } };
static const struct interval m_s2_air[] = {
	{ LO, 83, 3 }, { 84, 85, 2 }, { 86, 87, 1 }, { 88, 92, 0 }, { 93, HI, 0 } };
static const struct interval m_s2_o2[] = {
	{ LO, 83, 3 }, { 84, 85, 2 }, { 86, 87, 1 }, { 88, 92, 0 },
	{ 93, 94, 1 }, { 95, 96, 2 }, { 97, HI, 3 } };
static const struct interval m_sys[] = {
	{ LO, 90, 3 }, { 91, 100, 2 }, { 101, 110, 1 }, { 111, 219, 0 }, { 220, HI, 3 } };
static const struct interval m_pulse[] = {
	{ LO, 40, 3 }, { 41, 50, 1 }, { 51, 90, 0 }, { 91, 110, 1 }, { 111, 130, 2 },
	{ 131, HI, 3 } };
static const struct interval m_temp[] = {
	{ LO, 350, 3 }, { 351, 360, 1 }, { 361, 380, 0 }, { 381, 390, 1 }, { 391, HI, 2 } };

static uint8_t model(const struct interval *iv, size_t n, int x)
{
	for (size_t i = 0; i < n; i++)
		if (x >= iv[i].lo && x <= iv[i].hi)
			return iv[i].score;
	fail_msg("model has no band for %d", x);
	return 0;
}

struct sweep {
	enum mt_news2_param p;
	bool scale2, oxygen;
	const struct interval *iv;
	size_t n;
};

static double read_text(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	assert_true(*end == '\0');
	return v;
}

static void check_one(const struct sweep *s, const char *text, int rounded)
{
	uint8_t got = 99, want = model(s->iv, s->n, rounded);
	assert_int_equal(mt_news2_subscore(s->p, read_text(text), s->scale2, s->oxygen, &got),
	                 MT_OK);
	if (got != want)
		fail_msg("%s \"%s\" (scale2 %d oxygen %d): want %u, got %u",
		         mt_news2_param_name(s->p), text, s->scale2, s->oxygen, want, got);
}

static void test_sweep_against_interval_model(void **state)
{
	(void)state;
	const struct sweep whole[] = {
		{ RR, false, false, m_rr, N(m_rr) },
		{ SPO2, false, false, m_s1, N(m_s1) },
		{ SPO2, false, true, m_s1, N(m_s1) },
		{ SPO2, true, false, m_s2_air, N(m_s2_air) },
		{ SPO2, true, true, m_s2_o2, N(m_s2_o2) },
		{ SYS, false, false, m_sys, N(m_sys) },
		{ PUL, false, false, m_pulse, N(m_pulse) },
	};
	char text[32];
	unsigned checked = 0;
	for (size_t k = 0; k < N(whole); k++) {
		for (int x = 0; x <= 300; x++) {
			snprintf(text, sizeof(text), "%d", x);
			check_one(&whole[k], text, x);
			snprintf(text, sizeof(text), "%d.5", x); /* half up */
			check_one(&whole[k], text, x + 1);
			snprintf(text, sizeof(text), "%d.49", x);
			check_one(&whole[k], text, x);
			snprintf(text, sizeof(text), "%d.51", x);
			check_one(&whole[k], text, x + 1);
			checked += 4;
		}
	}
	const struct sweep temp = { TMP, false, false, m_temp, N(m_temp) };
	for (int t = 300; t <= 450; t++) { /* tenths of a degree */
		snprintf(text, sizeof(text), "%d.%d", t / 10, t % 10);
		check_one(&temp, text, t);
		snprintf(text, sizeof(text), "%d.%d5", t / 10, t % 10); /* half up */
		check_one(&temp, text, t + 1);
		snprintf(text, sizeof(text), "%d.%d49", t / 10, t % 10);
		check_one(&temp, text, t);
		snprintf(text, sizeof(text), "%d.%d499", t / 10, t % 10);
		check_one(&temp, text, t);
		checked += 4;
		/* and each half as float32 (within MT_NEWS2_EPS), and each tenth */
		uint8_t got = 99;
		float f = (float)((t * 10 + 5) / 100.0);
		assert_int_equal(mt_news2_subscore(TMP, (double)f, false, false, &got), MT_OK);
		if (got != model(m_temp, N(m_temp), t + 1))
			fail_msg("float32 %.9g: want %u, got %u", (double)f,
			         model(m_temp, N(m_temp), t + 1), got);
		f = (float)(t / 10.0);
		assert_int_equal(mt_news2_subscore(TMP, (double)f, false, false, &got), MT_OK);
		assert_int_equal(got, model(m_temp, N(m_temp), t));
		checked += 2;
	}
	print_message("news2: %u swept values agree with the interval model\n", checked);
}

/* ---- every combination of sub-scores ------------------------------------ */

/* A value scoring s for each parameter (scale 1); 0xff = no such score. */
static const double rep_rr[4] = { 16, 10, 22, 30 };
static const double rep_spo2[4] = { 97, 94, 92, 85 };
static const double rep_sys[4] = { 120, 105, 95, 80 };
static const double rep_pulse[4] = { 70, 95, 120, 140 };
static const double rep_temp[4] = { 37.0, 38.5, 39.5, 34.0 };

struct expect_trigger {
	enum mt_news2_trigger trigger;
	unsigned prio;
	const char *risk, *monitoring;
};

/* clinical.md §2, last table, as written there */
static struct expect_trigger table_row(unsigned agg, bool any3)
{
	if (agg >= 7)
		return (struct expect_trigger){ MT_NEWS2_TRIGGER_HIGH, 3, "high", "continuous" };
	if (agg >= 5)
		return (struct expect_trigger){ MT_NEWS2_TRIGGER_MEDIUM, 2, "medium", "hourly" };
	if (any3)
		return (struct expect_trigger){ MT_NEWS2_TRIGGER_MEDIUM, 2, "low-medium", "hourly" };
	if (agg >= 1)
		return (struct expect_trigger){ MT_NEWS2_TRIGGER_LOW, 1, "low", "4-6-hourly" };
	return (struct expect_trigger){ MT_NEWS2_TRIGGER_NONE, 0, "low", "12-hourly" };
}

static void check_trigger(const struct mt_news2_result *r, unsigned agg, bool any3)
{
	struct expect_trigger e = table_row(agg, any3);
	assert_int_equal(r->aggregate, agg);
	assert_int_equal(r->any_three, any3);
	assert_int_equal(r->trigger, e.trigger);
	assert_int_equal(r->prio, e.prio);
	assert_string_equal(r->risk, e.risk);
	assert_string_equal(r->monitoring, e.monitoring);
}

static void test_every_combination(void **state)
{
	(void)state;
	static const char acvpu_rep[2] = { 'A', 'V' };
	static const char o2_rep[2] = { 'A', 'O' };
	unsigned count = 0, seen_agg[21] = { 0 };
	for (unsigned a = 0; a < 4; a++)
	for (unsigned b = 0; b < 4; b++)
	for (unsigned c = 0; c < 2; c++)
	for (unsigned d = 0; d < 4; d++)
	for (unsigned e = 0; e < 4; e++)
	for (unsigned f = 0; f < 2; f++)
	for (unsigned g = 0; g < 4; g++) {
		struct mt_news2_input in;
		struct mt_news2_result r;
		mt_news2_input_init(&in);
		assert_int_equal(mt_news2_input_set(&in, RR, rep_rr[a]), MT_OK);
		assert_int_equal(mt_news2_input_set(&in, SPO2, rep_spo2[b]), MT_OK);
		in.oxygen = o2_rep[c];
		assert_int_equal(mt_news2_input_set(&in, SYS, rep_sys[d]), MT_OK);
		assert_int_equal(mt_news2_input_set(&in, PUL, rep_pulse[e]), MT_OK);
		in.consciousness = acvpu_rep[f];
		assert_int_equal(mt_news2_input_set(&in, TMP, rep_temp[g]), MT_OK);
		assert_int_equal(mt_news2_score(&in, &r), MT_OK);

		const unsigned sub[7] = { a, b, c * 2, d, e, f * 3, g };
		unsigned agg = 0;
		bool any3 = false;
		for (int p = 0; p < 7; p++) {
			if (r.sub[p] != sub[p])
				fail_msg("%s: want %u got %u", mt_news2_param_name(p), sub[p], r.sub[p]);
			agg += sub[p];
			any3 = any3 || sub[p] == 3;
		}
		assert_true(r.applicable);
		assert_true(r.complete);
		assert_int_equal(r.missing, 0);
		assert_int_equal(r.assumed, 0);
		check_trigger(&r, agg, any3);
		seen_agg[agg]++;
		count++;
	}
	for (unsigned x = 0; x <= 20; x++)
		assert_true(seen_agg[x] > 0); /* every aggregate 0..20 was reached */
	print_message("news2: %u combinations, aggregates 0-20 all reached\n", count);
}

/* ---- named cases -------------------------------------------------------- */

struct named {
	const char *what;
	double rr, spo2, sys, pulse, temp;
	char o2, acvpu;
	bool scale2;
	unsigned agg;
	bool any3;
	enum mt_news2_trigger trigger;
	const char *risk;
};

static const struct named named_cases[] = {
	{ "all normal", 16, 98, 120, 70, 37.0, 'A', 'A', false, 0, false,
	  MT_NEWS2_TRIGGER_NONE, "low" },
	{ "aggregate 1", 16, 98, 120, 95, 37.0, 'A', 'A', false, 1, false,
	  MT_NEWS2_TRIGGER_LOW, "low" },
	{ "aggregate 4", 22, 98, 95, 70, 37.0, 'A', 'A', false, 4, false,
	  MT_NEWS2_TRIGGER_LOW, "low" },
	{ "aggregate 3 with one 3 (RR 8)", 8, 98, 120, 70, 37.0, 'A', 'A', false, 3, true,
	  MT_NEWS2_TRIGGER_MEDIUM, "low-medium" },
	{ "aggregate 4 with one 3 (pulse 131)", 16, 98, 120, 131, 38.5, 'A', 'A', false, 4, true,
	  MT_NEWS2_TRIGGER_MEDIUM, "low-medium" },
	{ "aggregate 3, new confusion", 16, 98, 120, 70, 37.0, 'A', 'C', false, 3, true,
	  MT_NEWS2_TRIGGER_MEDIUM, "low-medium" },
	{ "aggregate 5", 22, 98, 95, 95, 37.0, 'A', 'A', false, 5, false,
	  MT_NEWS2_TRIGGER_MEDIUM, "medium" },
	{ "aggregate 6", 22, 98, 95, 95, 38.5, 'A', 'A', false, 6, false,
	  MT_NEWS2_TRIGGER_MEDIUM, "medium" },
	{ "aggregate 6 with one 3", 25, 98, 95, 95, 37.0, 'A', 'A', false, 6, true,
	  MT_NEWS2_TRIGGER_MEDIUM, "medium" },
	{ "aggregate 8 (oxygen)", 22, 98, 95, 95, 38.5, 'O', 'A', false, 8, false,
	  MT_NEWS2_TRIGGER_HIGH, "high" },
	{ "aggregate 7 exactly", 22, 94, 95, 95, 38.5, 'A', 'A', false, 7, false,
	  MT_NEWS2_TRIGGER_HIGH, "high" },
	{ "aggregate 7 with one 3", 22, 98, 95, 70, 37.0, 'A', 'U', false, 7, true,
	  MT_NEWS2_TRIGGER_HIGH, "high" },
	{ "aggregate 20 (scale 1)", 5, 80, 80, 150, 34.0, 'O', 'U', false, 20, true,
	  MT_NEWS2_TRIGGER_HIGH, "high" },
	{ "aggregate 20 (scale 2, 97 on oxygen)", 30, 97, 230, 30, 35.0, 'O', 'P', true, 20,
	  true, MT_NEWS2_TRIGGER_HIGH, "high" },
	{ "scale 2 on air, 97: 0", 16, 97, 120, 70, 37.0, 'A', 'A', true, 0, false,
	  MT_NEWS2_TRIGGER_NONE, "low" },
	{ "scale 2 on oxygen, 92: 0 + oxygen 2", 16, 92, 120, 70, 37.0, 'O', 'A', true, 2,
	  false, MT_NEWS2_TRIGGER_LOW, "low" },
	{ "scale 2 on oxygen, 93: 1 + oxygen 2", 16, 93, 120, 70, 37.0, 'O', 'A', true, 3,
	  false, MT_NEWS2_TRIGGER_LOW, "low" },
	{ "scale 1 on oxygen, 93: 2 + oxygen 2", 16, 93, 120, 70, 37.0, 'O', 'A', false, 4,
	  false, MT_NEWS2_TRIGGER_LOW, "low" },
	{ "RR 20.5 rounds to 21", 20.5, 98, 120, 70, 37.0, 'A', 'A', false, 2, false,
	  MT_NEWS2_TRIGGER_LOW, "low" },
	{ "38.05 rounds to 38.1", 16, 98, 120, 70, 38.05, 'A', 'A', false, 1, false,
	  MT_NEWS2_TRIGGER_LOW, "low" },
	{ "35.04 rounds to 35.0", 16, 98, 120, 70, 35.04, 'A', 'A', false, 3, true,
	  MT_NEWS2_TRIGGER_MEDIUM, "low-medium" },
};

static void test_named_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(named_cases); i++) {
		const struct named *c = &named_cases[i];
		struct mt_news2_input in;
		struct mt_news2_result r;
		mt_news2_input_init(&in);
		in.resp_rate = (struct mt_news2_vital){ true, c->rr };
		in.spo2 = (struct mt_news2_vital){ true, c->spo2 };
		in.systolic = (struct mt_news2_vital){ true, c->sys };
		in.pulse = (struct mt_news2_vital){ true, c->pulse };
		in.temperature = (struct mt_news2_vital){ true, c->temp };
		in.oxygen = c->o2;
		in.consciousness = c->acvpu;
		in.spo2_scale2 = c->scale2;
		assert_int_equal(mt_news2_score(&in, &r), MT_OK);
		if (r.aggregate != c->agg || r.any_three != c->any3 || r.trigger != c->trigger ||
		    strcmp(r.risk, c->risk) != 0)
			fail_msg("%s: want %u/%d/%s/%s, got %u/%d/%s/%s", c->what, c->agg, c->any3,
			         mt_news2_trigger_name(c->trigger), c->risk, r.aggregate,
			         r.any_three, mt_news2_trigger_name(r.trigger), r.risk);
		check_trigger(&r, c->agg, c->any3);
	}
}

/* ---- the two record parameters ------------------------------------------ */

static void full_normal(struct mt_news2_input *in)
{
	mt_news2_input_init(in);
	in->resp_rate = (struct mt_news2_vital){ true, 16 };
	in->spo2 = (struct mt_news2_vital){ true, 98 };
	in->systolic = (struct mt_news2_vital){ true, 120 };
	in->pulse = (struct mt_news2_vital){ true, 70 };
	in->temperature = (struct mt_news2_vital){ true, 37.0 };
	in->oxygen = 'A';
	in->consciousness = 'A';
}

static void test_air_oxygen_and_acvpu(void **state)
{
	(void)state;
	struct mt_news2_input in;
	struct mt_news2_result r;

	full_normal(&in);
	in.oxygen = 'A';
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_int_equal(r.sub[MT_NEWS2_AIR_OXYGEN], 0);
	in.oxygen = 'O';
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_int_equal(r.sub[MT_NEWS2_AIR_OXYGEN], 2);
	assert_int_equal(r.aggregate, 2);
	assert_false(r.any_three);
	assert_int_equal(r.trigger, MT_NEWS2_TRIGGER_LOW);
	assert_int_equal(r.assumed, 0);

	static const struct {
		char c;
		uint8_t want;
	} letters[] = { { 'A', 0 }, { 'C', 3 }, { 'V', 3 }, { 'P', 3 }, { 'U', 3 } };
	for (size_t i = 0; i < N(letters); i++) {
		full_normal(&in);
		in.consciousness = letters[i].c;
		assert_int_equal(mt_news2_score(&in, &r), MT_OK);
		assert_int_equal(r.sub[MT_NEWS2_CONSCIOUSNESS], letters[i].want);
		assert_int_equal(r.aggregate, letters[i].want);
		assert_int_equal(r.any_three, letters[i].want == 3);
		assert_int_equal(r.trigger, letters[i].want ? MT_NEWS2_TRIGGER_MEDIUM
		                                            : MT_NEWS2_TRIGGER_NONE);
		assert_int_equal(r.assumed, 0);
	}
}

static void test_assumed(void **state)
{
	(void)state;
	struct mt_news2_input in;
	struct mt_news2_result r;

	/* unknown oxygen: scored as air, flagged */
	full_normal(&in);
	in.oxygen = 0;
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_int_equal(r.sub[MT_NEWS2_AIR_OXYGEN], 0);
	assert_int_equal(r.assumed, MT_NEWS2_BIT(MT_NEWS2_AIR_OXYGEN));
	assert_true(r.complete); /* assumed is not missing */
	assert_int_equal(r.missing, 0);

	/* and on scale 2, 97 % with unknown oxygen is "on air": 0, not 3 */
	in.spo2_scale2 = true;
	in.spo2.value = 97;
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_int_equal(r.sub[MT_NEWS2_SPO2], 0);
	assert_int_equal(r.aggregate, 0);

	/* unknown consciousness: scored as alert, flagged */
	full_normal(&in);
	in.consciousness = 0;
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_int_equal(r.sub[MT_NEWS2_CONSCIOUSNESS], 0);
	assert_int_equal(r.assumed, MT_NEWS2_BIT(MT_NEWS2_CONSCIOUSNESS));

	/* both */
	full_normal(&in);
	in.consciousness = 0;
	in.oxygen = 0;
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_int_equal(r.assumed, MT_NEWS2_BIT(MT_NEWS2_CONSCIOUSNESS) |
	                            MT_NEWS2_BIT(MT_NEWS2_AIR_OXYGEN));
	assert_int_equal(r.aggregate, 0);
	assert_int_equal(r.trigger, MT_NEWS2_TRIGGER_NONE);
}

static void test_bad_letters_refused(void **state)
{
	(void)state;
	static const char bad[] = { 'a', 'o', 'X', 'N', ' ', '1', (char)0xC3 };
	struct mt_news2_input in;
	struct mt_news2_result r;
	for (size_t i = 0; i < N(bad); i++) {
		full_normal(&in);
		in.oxygen = bad[i];
		assert_int_equal(mt_news2_score(&in, &r), MT_ERR_ARG);
		assert_false(r.applicable);
		full_normal(&in);
		in.consciousness = bad[i] == 'a' ? 'c' : bad[i];
		assert_int_equal(mt_news2_score(&in, &r), MT_ERR_ARG);
		assert_false(r.applicable);
		assert_int_equal(r.aggregate, 0);
	}
	full_normal(&in);
	in.oxygen = 'O';
	in.consciousness = 'A';
	assert_int_equal(mt_news2_score(&in, &r), MT_OK); /* the control */
}

/* ---- missing, not applicable, refused ----------------------------------- */

static const enum mt_news2_param measured[] = { RR, SPO2, SYS, PUL, TMP };

static struct mt_news2_vital *vital(struct mt_news2_input *in, enum mt_news2_param p)
{
	switch (p) {
	case RR: return &in->resp_rate;
	case SPO2: return &in->spo2;
	case SYS: return &in->systolic;
	case PUL: return &in->pulse;
	case TMP: return &in->temperature;
	default: fail_msg("not measured"); return NULL;
	}
}

static void test_missing(void **state)
{
	(void)state;
	struct mt_news2_input in;
	struct mt_news2_result r;

	/* nothing measured at all: only the record parameters score */
	mt_news2_input_init(&in);
	in.oxygen = 'O';
	in.consciousness = 'A';
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_true(r.applicable);
	assert_false(r.complete);
	assert_int_equal(r.missing, MT_NEWS2_BIT(RR) | MT_NEWS2_BIT(SPO2) | MT_NEWS2_BIT(SYS) |
	                            MT_NEWS2_BIT(PUL) | MT_NEWS2_BIT(TMP));
	assert_int_equal(r.aggregate, 2);
	assert_int_equal(r.trigger, MT_NEWS2_TRIGGER_LOW);

	/* each one missing alone, its value scoring 3 were it present */
	static const double bad[] = { 30, 80, 80, 150, 34.0 };
	for (size_t i = 0; i < N(measured); i++) {
		full_normal(&in);
		vital(&in, measured[i])->value = bad[i];
		assert_int_equal(mt_news2_score(&in, &r), MT_OK);
		assert_int_equal(r.sub[measured[i]], 3);
		assert_true(r.complete);
		vital(&in, measured[i])->present = false;
		assert_int_equal(mt_news2_score(&in, &r), MT_OK);
		assert_false(r.complete);
		assert_int_equal(r.missing, MT_NEWS2_BIT(measured[i]));
		assert_int_equal(r.sub[measured[i]], 0);
		assert_int_equal(r.aggregate, 0);
		assert_int_equal(r.trigger, MT_NEWS2_TRIGGER_NONE);
		/* a missing value is ignored even when it is garbage */
		vital(&in, measured[i])->value = NAN;
		assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	}

	/* the aggregate over what is present still triggers */
	full_normal(&in);
	in.resp_rate.value = 25;     /* 3 */
	in.systolic.value = 95;      /* 2 */
	in.temperature.value = 39.5; /* 2 */
	in.spo2.present = false;
	in.pulse.present = false;
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_int_equal(r.aggregate, 7);
	assert_int_equal(r.trigger, MT_NEWS2_TRIGGER_HIGH);
	assert_false(r.complete);
	assert_int_equal(r.missing, MT_NEWS2_BIT(SPO2) | MT_NEWS2_BIT(PUL));
}

static void test_not_applicable(void **state)
{
	(void)state;
	struct mt_news2_input in;
	struct mt_news2_result r;
	/* values that would score 20 */
	mt_news2_input_init(&in);
	in.resp_rate = (struct mt_news2_vital){ true, 5 };
	in.spo2 = (struct mt_news2_vital){ true, 80 };
	in.systolic = (struct mt_news2_vital){ true, 80 };
	in.pulse = (struct mt_news2_vital){ true, 150 };
	in.temperature = (struct mt_news2_vital){ true, 34 };
	in.oxygen = 'O';
	in.consciousness = 'U';
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_true(r.applicable);
	assert_int_equal(r.aggregate, 20);

	in.not_applicable = true;
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_false(r.applicable);
	assert_int_equal(r.aggregate, 0);
	assert_false(r.any_three);
	assert_false(r.complete);
	for (int p = 0; p < MT_NEWS2_PARAMS; p++)
		assert_int_equal(r.sub[p], 0);
	assert_int_equal(r.trigger, MT_NEWS2_TRIGGER_NONE);
	assert_int_equal(r.prio, 0);
	assert_string_equal(r.risk, "not applicable");
	assert_string_equal(r.monitoring, "not applicable");

	/* still refuses what is not a number */
	in.pulse.value = NAN;
	assert_int_equal(mt_news2_score(&in, &r), MT_ERR_ARG);
}

static void test_nonfinite_refused(void **state)
{
	(void)state;
	const double bad[] = { NAN, -NAN, INFINITY, -INFINITY };
	struct mt_news2_input in;
	struct mt_news2_result r;
	unsigned n = 0;
	for (size_t i = 0; i < N(measured); i++) {
		for (size_t j = 0; j < N(bad); j++) {
			full_normal(&in);
			in.oxygen = 'O'; /* so that a score would be non-zero */
			vital(&in, measured[i])->value = bad[j];
			memset(&r, 0x5a, sizeof(r));
			assert_int_equal(mt_news2_score(&in, &r), MT_ERR_ARG);
			assert_false(r.applicable); /* out holds no score */
			assert_int_equal(r.aggregate, 0);
			assert_int_equal(r.trigger, MT_NEWS2_TRIGGER_NONE);

			uint8_t s = 77;
			assert_int_equal(mt_news2_subscore(measured[i], bad[j], false, false, &s),
			                 MT_ERR_ARG);
			assert_int_equal(s, 77);

			mt_news2_input_init(&in);
			assert_int_equal(mt_news2_input_set(&in, measured[i], bad[j]), MT_ERR_ARG);
			assert_false(vital(&in, measured[i])->present);
			n++;
		}
	}
	print_message("news2: %u non-finite inputs refused\n", n);
}

static void test_api_edges(void **state)
{
	(void)state;
	struct mt_news2_input in;
	struct mt_news2_result r;
	uint8_t s;
	mt_news2_input_init(&in);
	assert_int_equal(mt_news2_score(NULL, &r), MT_ERR_ARG);
	assert_false(r.applicable);
	assert_int_equal(mt_news2_score(&in, NULL), MT_ERR_ARG);
	assert_int_equal(mt_news2_subscore(RR, 16, false, false, NULL), MT_ERR_ARG);
	assert_int_equal(mt_news2_subscore(MT_NEWS2_AIR_OXYGEN, 1, false, false, &s), MT_ERR_ARG);
	assert_int_equal(mt_news2_subscore(MT_NEWS2_CONSCIOUSNESS, 1, false, false, &s),
	                 MT_ERR_ARG);
	assert_int_equal(mt_news2_subscore(MT_NEWS2_PARAM_NONE, 1, false, false, &s), MT_ERR_ARG);
	assert_int_equal(mt_news2_input_set(&in, MT_NEWS2_AIR_OXYGEN, 1), MT_ERR_ARG);
	assert_int_equal(mt_news2_input_set(&in, MT_NEWS2_PARAM_NONE, 1), MT_ERR_ARG);
	assert_int_equal(mt_news2_input_set(NULL, RR, 1), MT_ERR_ARG);

	/* zero-initialised input: the documented defaults */
	assert_int_equal(mt_news2_score(&in, &r), MT_OK);
	assert_true(r.applicable);
	assert_false(r.complete);
	assert_int_equal(r.assumed, MT_NEWS2_BIT(MT_NEWS2_AIR_OXYGEN) |
	                            MT_NEWS2_BIT(MT_NEWS2_CONSCIOUSNESS));
	assert_int_equal(r.aggregate, 0);
	assert_string_equal(r.risk, "low");
	assert_string_equal(r.monitoring, "12-hourly");

	assert_string_equal(mt_news2_trigger_name(MT_NEWS2_TRIGGER_NONE), "none");
	assert_string_equal(mt_news2_trigger_name(MT_NEWS2_TRIGGER_LOW), "low");
	assert_string_equal(mt_news2_trigger_name(MT_NEWS2_TRIGGER_MEDIUM), "medium");
	assert_string_equal(mt_news2_trigger_name(MT_NEWS2_TRIGGER_HIGH), "high");
	assert_string_equal(mt_news2_param_name(MT_NEWS2_TEMPERATURE), "temperature");
	assert_string_equal(mt_news2_param_name(MT_NEWS2_PARAM_NONE), "none");
}

static void test_mdc_mapping(void **state)
{
	(void)state;
	static const struct {
		uint32_t code;
		enum mt_news2_param p;
	} map[] = {
		{ 151562, RR }, { 150456, SPO2 }, { 150021, SYS }, { 147842, PUL },
		{ 149530, PUL }, { 150364, TMP },
		/* not NEWS2 parameters */
		{ 150022, MT_NEWS2_PARAM_NONE }, { 150023, MT_NEWS2_PARAM_NONE },
		{ 160184, MT_NEWS2_PARAM_NONE }, { 131330, MT_NEWS2_PARAM_NONE },
		{ 8532992, MT_NEWS2_PARAM_NONE }, { 0, MT_NEWS2_PARAM_NONE },
		{ 151563, MT_NEWS2_PARAM_NONE }, { UINT32_MAX, MT_NEWS2_PARAM_NONE },
	};
	for (size_t i = 0; i < N(map); i++)
		if (mt_news2_param_of_mdc(map[i].code) != map[i].p)
			fail_msg("MDC %u: want %s", map[i].code, mt_news2_param_name(map[i].p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_band_boundary),
		cmocka_unit_test(test_sweep_against_interval_model),
		cmocka_unit_test(test_every_combination),
		cmocka_unit_test(test_named_cases),
		cmocka_unit_test(test_air_oxygen_and_acvpu),
		cmocka_unit_test(test_assumed),
		cmocka_unit_test(test_bad_letters_refused),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_not_applicable),
		cmocka_unit_test(test_nonfinite_refused),
		cmocka_unit_test(test_api_edges),
		cmocka_unit_test(test_mdc_mapping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
