/*
 * test_physio.c — the fleet simulator's virtual patient (src/agent/physio.h,
 * docs/simulator.md; DESIGN.md: "the fleet simulator: thousands of virtual
 * patients and devices ... for the demo, tests and benchmarks").
 *
 * What the simulator promises, each part checked from outside:
 *
 *  - Every observation it makes is one the hub accepts: over 24 simulated
 *    hours, every scenario and every device class, sampled every 5 s,
 *    each tick's observations form a vitals message that passes
 *    mt_message_check (stage 10) and mt_message_plausible (stage 14) and
 *    encodes and decodes back; every alarm forms an alert message that
 *    passes the same; each class reports only its own quantities, with the
 *    MDC code, unit and places of clinical.md §1.
 *  - It replays: the same seed gives the same observations, another seed
 *    others, and asking for ECG strips does not disturb the vital signs.
 *  - The scenarios do what they say, judged by a NEWS2 aggregate computed
 *    here from clinical.md §2 (scale 1, air, alert), independently of the
 *    module: stable patients stay inside the adult ranges of the brief and
 *    score ≤ 1; sepsis patients score ≥ 7 once the onset is over (also
 *    when the time is accelerated); hypoxia gives SpO2 < 88 % episodes with
 *    a compensatory heart-rate rise and exactly one SpO2 alarm each;
 *    dropout leaves gaps, each announced by one sensor-off alarm; the
 *    battery of a low-battery device falls monotonically to 5 %.
 *  - The ECG lead II strip survives mt_waveform_encode/decode, stays in
 *    bounds, and beats at the reported heart rate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "medtrust/mt_message.h"
#include "physio.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* MDC codes and units of clinical.md §1 */
#define HR 147842u
#define PULSE 149530u
#define SPO2 150456u
#define SYS 150021u
#define DIA 150022u
#define MEAN 150023u
#define TEMP 150364u
#define RESP 151562u
#define GLU 160184u
#define ECG_II 131330u
#define DOSE 8532992u
#define U_BPM 264864u
#define U_PCT 262688u
#define U_MMHG 266016u
#define U_DEGC 268192u
#define U_RPM 264928u
#define U_MGDL 264274u
#define U_MV 266418u
#define U_DIMLESS 262656u

#define T0 UINT64_C(1700000000000)
#define DAY_MS UINT64_C(86400000)
#define TICK_MS UINT64_C(5000)

static const enum mt_physio_scenario all_scenarios[] = {
	MT_PHYSIO_STABLE,  MT_PHYSIO_SEPSIS,      MT_PHYSIO_HYPOXIA,
	MT_PHYSIO_DROPOUT, MT_PHYSIO_LOW_BATTERY, MT_PHYSIO_MIXED,
};
static const enum mt_physio_class all_classes[] = {
	MT_PHYSIO_BEDSIDE, MT_PHYSIO_WEARABLE, MT_PHYSIO_GLUCOSE, MT_PHYSIO_INHALER};

/* ---- what a tick reported ------------------------------------------------- */

enum { I_HR, I_PULSE, I_SPO2, I_RESP, I_TEMP, I_SYS, I_DIA, I_MEAN, I_GLU, I_DOSE, NI };
static const struct {
	uint32_t code, unit;
	uint8_t places;
} quantity[NI] = {
	[I_HR] = {HR, U_BPM, 0},     [I_PULSE] = {PULSE, U_BPM, 0}, [I_SPO2] = {SPO2, U_PCT, 0},
	[I_RESP] = {RESP, U_RPM, 0}, [I_TEMP] = {TEMP, U_DEGC, 1},  [I_SYS] = {SYS, U_MMHG, 0},
	[I_DIA] = {DIA, U_MMHG, 0},  [I_MEAN] = {MEAN, U_MMHG, 0},  [I_GLU] = {GLU, U_MGDL, 0},
	[I_DOSE] = {DOSE, U_DIMLESS, 0},
};

/* Which quantities each class may report (docs/simulator.md). */
static unsigned class_may(enum mt_physio_class c)
{
	switch (c) {
	case MT_PHYSIO_BEDSIDE:
		return 1u << I_HR | 1u << I_PULSE | 1u << I_SPO2 | 1u << I_RESP | 1u << I_TEMP |
		       1u << I_SYS | 1u << I_DIA | 1u << I_MEAN;
	case MT_PHYSIO_WEARABLE:
		return 1u << I_PULSE | 1u << I_SPO2 | 1u << I_RESP | 1u << I_TEMP;
	case MT_PHYSIO_GLUCOSE:
		return 1u << I_GLU;
	case MT_PHYSIO_INHALER:
		return 1u << I_DOSE;
	}
	return 0;
}

struct seen {
	unsigned now;     /* reported this tick */
	unsigned ever;    /* reported at least once */
	double v[NI];     /* latest reported value */
};

/* One tick: sample at `at` with batch ts = at, check the observations'
 * form, and fold them into `s`.  Returns the count. */
static size_t tick(struct mt_physio_patient *p, uint64_t at, struct mt_obs *obs,
                   struct seen *s)
{
	size_t n = 99;
	assert_int_equal(mt_physio_sample(p, at, at, obs, MT_PHYSIO_OBS_MAX, &n), MT_OK);
	assert_true(n <= MT_PHYSIO_OBS_MAX);
	s->now = 0;
	for (size_t i = 0; i < n; i++) {
		int q = -1;
		for (int k = 0; k < NI; k++)
			if (quantity[k].code == obs[i].code)
				q = k;
		if (q < 0)
			fail_msg("unknown code %u", obs[i].code);
		assert_false(obs[i].waveform);
		assert_int_equal(obs[i].unit, quantity[q].unit);
		assert_true(obs[i].has_places);
		assert_int_equal(obs[i].places, quantity[q].places);
		/* batch ts = sample time: t is exactly 0 */
		assert_int_equal(obs[i].t.kind, MT_NUM_UINT);
		assert_int_equal(obs[i].t.u, 0);
		double v = mt_num_to_double(&obs[i].value);
		if (quantity[q].places == 0) {
			assert_int_equal(obs[i].value.kind, MT_NUM_UINT);
		} else {
			double tenths = v * 10;
			assert_true(fabs(tenths - floor(tenths + 0.5)) < 1e-6);
		}
		if (s->now & (1u << q))
			fail_msg("code %u twice in one tick", obs[i].code);
		s->now |= 1u << q;
		s->ever |= 1u << q;
		s->v[q] = v;
	}
	return n;
}

static void init_msg(struct mt_message *m, uint64_t typ, uint64_t ts, uint64_t ctr)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->dev, "sim-0001", 9);
	m->dev_len = 8;
	m->ctr = ctr;
	m->ts = ts;
	m->typ = typ;
}

/* The hub's view: schema, plausibility, encode and decode back. */
static void hub_accepts(const struct mt_message *m)
{
	static uint8_t buf[MT_PACKET_MAX];
	static struct mt_obs back_obs[MT_OBS_MAX];
	struct mt_message back;
	const char *why = NULL;
	size_t len = 0;
	if (mt_message_check(m, &why) != MT_OK)
		fail_msg("message check: %s", why ? why : "?");
	if (mt_message_plausible(m, &why) != MT_OK)
		fail_msg("implausible: %s", why ? why : "?");
	assert_int_equal(mt_message_encode(m, buf, sizeof(buf), &len), MT_OK);
	if (mt_message_decode(buf, len, &back, back_obs, N(back_obs), &why) != MT_OK)
		fail_msg("decode: %s", why ? why : "?");
	assert_int_equal(back.n_obs, m->n_obs);
	for (size_t i = 0; i < m->n_obs; i++) {
		assert_int_equal(back_obs[i].code, m->obs[i].code);
		assert_true(mt_num_to_double(&back_obs[i].value) ==
		            mt_num_to_double(&m->obs[i].value));
	}
}

static void hub_accepts_alarm(const struct mt_physio_alarm *a, uint64_t ts, uint64_t ctr)
{
	struct mt_message m;
	init_msg(&m, MT_TYP_ALERT, ts, ctr);
	m.has = MT_MSG_ALRT;
	m.alrt.code = a->code;
	m.alrt.prio = a->prio;
	m.alrt.text = a->text;
	m.alrt.text_len = strlen(a->text);
	assert_true(m.alrt.text_len > 0 && m.alrt.text_len < MT_PHYSIO_TEXT_MAX);
	assert_true(a->prio >= 1 && a->prio <= 3);
	assert_true(a->n_obs <= 1);
	if (a->n_obs) {
		m.has |= MT_MSG_OBS;
		m.obs = (struct mt_obs *)a->obs;
		m.n_obs = a->n_obs;
	}
	hub_accepts(&m);
}

/* ---- NEWS2 (clinical.md §2, scale 1, air, alert), written from the table -- */

static long whole(double v)
{
	return (long)floor(v + 0.5); /* round half up */
}

static int news2_rr(double v)
{
	long x = whole(v);
	return x <= 8 ? 3 : x <= 11 ? 1 : x <= 20 ? 0 : x <= 24 ? 2 : 3;
}

static int news2_spo2(double v)
{
	long x = whole(v);
	return x <= 91 ? 3 : x <= 93 ? 2 : x <= 95 ? 1 : 0;
}

static int news2_sbp(double v)
{
	long x = whole(v);
	return x <= 90 ? 3 : x <= 100 ? 2 : x <= 110 ? 1 : x <= 219 ? 0 : 3;
}

static int news2_pulse(double v)
{
	long x = whole(v);
	return x <= 40 ? 3 : x <= 50 ? 1 : x <= 90 ? 0 : x <= 110 ? 1 : x <= 130 ? 2 : 3;
}

static int news2_temp(double v)
{
	long x = whole(v * 10); /* banded to 0.1 °C */
	return x <= 350 ? 3 : x <= 360 ? 1 : x <= 380 ? 0 : x <= 390 ? 1 : 2;
}

/* The aggregate from the latest values of a bedside monitor. */
static int news2(const struct seen *s)
{
	assert_true((s->ever & (1u << I_HR)) && (s->ever & (1u << I_SPO2)) &&
	            (s->ever & (1u << I_RESP)) && (s->ever & (1u << I_TEMP)) &&
	            (s->ever & (1u << I_SYS)));
	return news2_rr(s->v[I_RESP]) + news2_spo2(s->v[I_SPO2]) + news2_sbp(s->v[I_SYS]) +
	       news2_pulse(s->v[I_HR]) + news2_temp(s->v[I_TEMP]) + 0 /* air */ +
	       0 /* alert */;
}

static void test_news2_reference(void **state)
{
	(void)state;
	/* the table's band edges, so that the judge itself is right */
	assert_int_equal(news2_rr(8), 3);
	assert_int_equal(news2_rr(9), 1);
	assert_int_equal(news2_rr(20), 0);
	assert_int_equal(news2_rr(21), 2);
	assert_int_equal(news2_rr(25), 3);
	assert_int_equal(news2_spo2(91), 3);
	assert_int_equal(news2_spo2(93), 2);
	assert_int_equal(news2_spo2(95), 1);
	assert_int_equal(news2_spo2(96), 0);
	assert_int_equal(news2_sbp(90), 3);
	assert_int_equal(news2_sbp(101), 1);
	assert_int_equal(news2_sbp(111), 0);
	assert_int_equal(news2_sbp(220), 3);
	assert_int_equal(news2_pulse(40), 3);
	assert_int_equal(news2_pulse(91), 1);
	assert_int_equal(news2_pulse(111), 2);
	assert_int_equal(news2_pulse(131), 3);
	assert_int_equal(news2_temp(35.0), 3);
	assert_int_equal(news2_temp(35.1), 1);
	assert_int_equal(news2_temp(36.1), 0);
	assert_int_equal(news2_temp(38.1), 1);
	assert_int_equal(news2_temp(39.1), 2);
}

/* ---- names ----------------------------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	static const char *const sn[] = {"stable", "sepsis", "hypoxia", "dropout",
	                                 "low-battery", "mixed"};
	static const char *const cn[] = {"bedside-monitor", "wearable", "glucose-meter",
	                                 "smart-inhaler"};
	for (size_t i = 0; i < N(sn); i++) {
		enum mt_physio_scenario s = MT_PHYSIO_MIXED;
		if (!mt_physio_scenario_parse(sn[i], &s))
			fail_msg("%s not parsed", sn[i]);
		assert_int_equal(s, all_scenarios[i]);
		assert_string_equal(mt_physio_scenario_name(s), sn[i]);
	}
	for (size_t i = 0; i < N(cn); i++) {
		enum mt_physio_class c = MT_PHYSIO_INHALER;
		if (!mt_physio_class_parse(cn[i], &c))
			fail_msg("%s not parsed", cn[i]);
		assert_int_equal(c, all_classes[i]);
		assert_string_equal(mt_physio_class_name(c), cn[i]);
	}
	enum mt_physio_scenario s = MT_PHYSIO_SEPSIS;
	enum mt_physio_class c = MT_PHYSIO_GLUCOSE;
	static const char *const bad[] = {"", "Stable", "low_battery", "sepsis ", "bedside",
	                                   "wearables"};
	for (size_t i = 0; i < N(bad); i++) {
		if (mt_physio_scenario_parse(bad[i], &s) || mt_physio_class_parse(bad[i], &c))
			fail_msg("\"%s\" accepted", bad[i]);
	}
	if (mt_physio_scenario_parse(NULL, &s) || mt_physio_class_parse(NULL, &c))
		fail_msg("NULL accepted");
	assert_int_equal(s, MT_PHYSIO_SEPSIS); /* untouched */
	assert_int_equal(c, MT_PHYSIO_GLUCOSE);
	assert_string_equal(mt_physio_scenario_name((enum mt_physio_scenario)77), "?");
	assert_string_equal(mt_physio_class_name((enum mt_physio_class)77), "?");
}

/* mixed: six stable and one of each other scenario in every ten devices */
static void test_mixed_fleet(void **state)
{
	(void)state;
	unsigned count[MT_PHYSIO_MIXED + 1] = {0};
	for (uint64_t i = 0; i < 1000; i++) {
		enum mt_physio_scenario s = mt_physio_scenario_for(MT_PHYSIO_MIXED, i);
		assert_true(s < MT_PHYSIO_MIXED);
		assert_int_equal(s, mt_physio_scenario_for(MT_PHYSIO_MIXED, i)); /* stable */
		count[s]++;
		if (i % 10 == 9) { /* every block of ten */
			assert_int_equal(count[MT_PHYSIO_STABLE], (i + 1) / 10 * 6);
			assert_int_equal(count[MT_PHYSIO_SEPSIS], (i + 1) / 10);
		}
	}
	assert_int_equal(count[MT_PHYSIO_HYPOXIA], 100);
	assert_int_equal(count[MT_PHYSIO_DROPOUT], 100);
	assert_int_equal(count[MT_PHYSIO_LOW_BATTERY], 100);
	for (size_t k = 0; k + 1 < N(all_scenarios); k++)
		assert_int_equal(mt_physio_scenario_for(all_scenarios[k], 3), all_scenarios[k]);
	/* a patient never keeps "mixed" */
	struct mt_physio_patient p;
	for (uint64_t seed = 0; seed < 20; seed++) {
		mt_physio_init(&p, MT_PHYSIO_MIXED, MT_PHYSIO_WEARABLE, seed, 1, T0);
		assert_int_equal(p.scenario, mt_physio_scenario_for(MT_PHYSIO_MIXED, seed));
	}
}

/* ---- every observation, every scenario, every class, 24 h -------------------- */

static void test_day_plausible(void **state)
{
	(void)state;
	static struct mt_physio_patient p;
	struct mt_obs obs[MT_PHYSIO_OBS_MAX];
	uint64_t ctr = 0, messages = 0, alarms = 0;
	for (size_t si = 0; si < N(all_scenarios); si++)
		for (size_t ci = 0; ci < N(all_classes); ci++) {
			struct seen s = {0};
			mt_physio_init(&p, all_scenarios[si], all_classes[ci], 1000 + si * 10 + ci, 1,
			               T0);
			for (uint64_t at = T0; at < T0 + DAY_MS; at += TICK_MS) {
				size_t n = tick(&p, at, obs, &s);
				if (s.now & ~class_may(all_classes[ci]))
					fail_msg("%s reported a quantity not its own",
					         mt_physio_class_name(all_classes[ci]));
				if (n > 0) {
					struct mt_message m;
					init_msg(&m, MT_TYP_VITALS, at, ctr++);
					m.has = MT_MSG_OBS;
					m.obs = obs;
					m.n_obs = n;
					hub_accepts(&m);
					messages++;
				}
				struct mt_physio_alarm a;
				while (mt_physio_alarm(&p, at, &a)) {
					hub_accepts_alarm(&a, at, ctr++);
					alarms++;
				}
				assert_true(mt_physio_battery(&p) <= 100);
			}
			/* each class reported everything it has, at least once */
			if (all_classes[ci] != MT_PHYSIO_INHALER || s.ever)
				assert_int_equal(s.ever, class_may(all_classes[ci]));
		}
	assert_true(messages > 200000);
	assert_true(alarms > 50);
}

/* ---- determinism ---------------------------------------------------------------- */

/* A fingerprint of every observation of `hours` simulated hours. */
static uint64_t fingerprint(enum mt_physio_scenario sc, enum mt_physio_class c,
                            uint64_t seed, unsigned hours, bool with_ecg)
{
	static struct mt_physio_patient p;
	struct mt_obs obs[MT_PHYSIO_OBS_MAX];
	static int32_t samples[1250];
	static uint8_t bytes[5 * 1250];
	uint64_t h = 1469598103934665603u;
	mt_physio_init(&p, sc, c, seed, 1, T0);
	for (uint64_t at = T0; at < T0 + hours * UINT64_C(3600000); at += TICK_MS) {
		size_t n = 0;
		assert_int_equal(mt_physio_sample(&p, at, at, obs, N(obs), &n), MT_OK);
		for (size_t i = 0; i < n; i++) {
			double v = mt_num_to_double(&obs[i].value);
			uint64_t bits;
			memcpy(&bits, &v, sizeof(bits));
			h = (h ^ obs[i].code) * 1099511628211u;
			h = (h ^ bits) * 1099511628211u;
		}
		h = (h ^ n ^ ((uint64_t)mt_physio_battery(&p) << 8)) * 1099511628211u;
		struct mt_physio_alarm a;
		while (mt_physio_alarm(&p, at, &a))
			h = (h ^ a.code) * 1099511628211u;
		if (with_ecg) {
			struct mt_obs w;
			enum mt_err e = mt_physio_ecg(&p, at, samples, N(samples), bytes,
			                              sizeof(bytes), &w);
			if (e != MT_OK && e != MT_ERR_NOT_FOUND)
				fail_msg("ecg: %d", (int)e);
		}
	}
	return h;
}

static void test_determinism(void **state)
{
	(void)state;
	for (size_t si = 0; si + 1 < N(all_scenarios); si++) {
		enum mt_physio_scenario sc = all_scenarios[si];
		uint64_t a = fingerprint(sc, MT_PHYSIO_BEDSIDE, 42, 3, false);
		uint64_t b = fingerprint(sc, MT_PHYSIO_BEDSIDE, 42, 3, false);
		uint64_t c = fingerprint(sc, MT_PHYSIO_BEDSIDE, 43, 3, false);
		uint64_t e = fingerprint(sc, MT_PHYSIO_BEDSIDE, 42, 3, true);
		assert_true(a == b); /* same seed, same run */
		assert_true(a != c); /* another seed, another patient */
		assert_true(a == e); /* ECG strips do not disturb the vitals */
	}
	/* the same seed is the same person whatever the scenario: identical
	 * baselines */
	struct mt_physio_patient p1, p2;
	mt_physio_init(&p1, MT_PHYSIO_STABLE, MT_PHYSIO_BEDSIDE, 7, 1, T0);
	mt_physio_init(&p2, MT_PHYSIO_SEPSIS, MT_PHYSIO_BEDSIDE, 7, 1, T0);
	for (int i = 0; i < MT_PHYSIO__NQ; i++)
		assert_true(p1.q[i].base == p2.q[i].base);
}

/* ---- stable ------------------------------------------------------------------------ */

static void test_stable_news2_low(void **state)
{
	(void)state;
	static struct mt_physio_patient p;
	struct mt_obs obs[MT_PHYSIO_OBS_MAX];
	uint64_t ticks = 0, low = 0;
	for (uint64_t seed = 1; seed <= 20; seed++) {
		struct seen s = {0};
		mt_physio_init(&p, MT_PHYSIO_STABLE, MT_PHYSIO_BEDSIDE, seed, 1, T0);
		for (uint64_t at = T0; at < T0 + DAY_MS; at += TICK_MS) {
			(void)tick(&p, at, obs, &s);
			/* the adult ranges of docs/simulator.md, every reading */
			if (s.now & (1u << I_HR))
				assert_true(s.v[I_HR] >= 60 && s.v[I_HR] <= 90);
			assert_true(s.v[I_PULSE] >= 60 && s.v[I_PULSE] <= 90);
			assert_true(s.v[I_RESP] >= 12 && s.v[I_RESP] <= 18);
			assert_true(s.v[I_SPO2] >= 96 && s.v[I_SPO2] <= 99);
			assert_true(s.v[I_SYS] >= 110 && s.v[I_SYS] <= 135);
			assert_true(s.v[I_DIA] >= 65 && s.v[I_DIA] <= 85);
			assert_true(s.v[I_TEMP] >= 36.4 - 1e-9 && s.v[I_TEMP] <= 37.3 + 1e-9);
			int score = news2(&s);
			assert_true(score <= 2);
			low += score <= 1;
			ticks++;
			/* no device alarm for a stable adult on mains */
			struct mt_physio_alarm a;
			if (mt_physio_alarm(&p, at, &a))
				fail_msg("stable patient alarmed: %s", a.text);
		}
		assert_int_equal(mt_physio_battery(&p), 100);
	}
	assert_true(low * 100 >= ticks * 95); /* "mostly 0-1": 95 % of ticks at least */
}

/* ---- sepsis ------------------------------------------------------------------------ */

static uint64_t sepsis_readings, sepsis_out, sbp_readings, sbp_out;

/* Run a septic bedside patient; return the device ms from start after which
 * NEWS2 never fell below 7 again (UINT64_MAX: never reached), and check
 * that it scored ≤ 1 before the onset began. */
static uint64_t sepsis_run(uint64_t seed, double scale, uint32_t delay_s, uint32_t dur_s,
                           uint64_t run_ms, uint64_t tick_ms)
{
	static struct mt_physio_patient p;
	struct mt_obs obs[MT_PHYSIO_OBS_MAX];
	struct seen s = {0};
	uint64_t high_since = UINT64_MAX;
	mt_physio_init(&p, MT_PHYSIO_SEPSIS, MT_PHYSIO_BEDSIDE, seed, scale, T0);
	if (dur_s)
		mt_physio_set_onset(&p, delay_s, dur_s);
	double delay = p.sepsis.delay_s, done = p.sepsis.delay_s + p.sepsis.dur_s;
	bool cold = p.sepsis.temp < 37;
	for (uint64_t at = T0; at < T0 + run_ms; at += tick_ms) {
		(void)tick(&p, at, obs, &s);
		int score = news2(&s);
		double sim_s = (double)(at - T0) / 1000 * scale;
		if (sim_s < delay)
			assert_true(score <= 1);
		if (sim_s >= done) {
			/* the septic ranges of docs/simulator.md */
			sepsis_readings++;
			sepsis_out += !(s.v[I_HR] >= 115 && s.v[I_HR] <= 135);
			sepsis_out += !(s.v[I_RESP] >= 24 && s.v[I_RESP] <= 30);
			sepsis_out += !(s.v[I_SPO2] >= 92 && s.v[I_SPO2] <= 94);
			sepsis_out += cold ? !(s.v[I_TEMP] >= 35.0 && s.v[I_TEMP] <= 36.0 + 1e-9)
			                   : !(s.v[I_TEMP] >= 38.8 - 1e-9 && s.v[I_TEMP] <= 39.8 + 1e-9);
			if (s.now & (1u << I_SYS)) {
				sbp_readings++;
				sbp_out += !(s.v[I_SYS] >= 85 && s.v[I_SYS] <= 95);
			}
		}
		if (score >= 7) {
			if (high_since == UINT64_MAX)
				high_since = at - T0;
		} else {
			high_since = UINT64_MAX;
		}
		/* sepsis stays inside the device's alarm limits: NEWS2 is the
		 * hub's to compute */
		struct mt_physio_alarm a;
		if (mt_physio_alarm(&p, at, &a))
			fail_msg("septic patient alarmed: %s", a.text);
	}
	return high_since;
}

static void test_sepsis_news2_high(void **state)
{
	(void)state;
	/* real time: the default onset (5 min healthy, 20–40 min onset) plus one
	 * NIBP cycle (15 min) for the blood pressure to be measured */
	for (uint64_t seed = 1; seed <= 20; seed++) {
		uint64_t since = sepsis_run(seed, 1, 0, 0, 4 * UINT64_C(3600000), TICK_MS);
		if (since > (300 + 2400 + 900) * UINT64_C(1000))
			fail_msg("seed %llu: NEWS2 ≥ 7 only from %llu ms", (unsigned long long)seed,
			         (unsigned long long)since);
	}
	/* after the onset, every reading in the septic ranges (4 quantities a
	 * tick), SBP (per NIBP cycle) but for the tails of the noise */
	assert_true(sepsis_readings > 20 * 2000);
	if (sepsis_out != 0)
		fail_msg("%llu of %llu septic readings out of range", (unsigned long long)sepsis_out,
		         (unsigned long long)sepsis_readings * 4);
	assert_true(sbp_readings >= 20 * 8);
	assert_true(sbp_out * 100 <= sbp_readings * 5);
	/* accelerated ×30: the same within two minutes of device time */
	for (uint64_t seed = 1; seed <= 10; seed++) {
		uint64_t since = sepsis_run(seed, 30, 0, 0, 10 * UINT64_C(60000), 1000);
		assert_true(since <= 120 * UINT64_C(1000));
	}
	/* a configured onset: 1 min healthy, 10 min onset, ×10 */
	uint64_t since = sepsis_run(5, 10, 60, 600, 10 * UINT64_C(60000), 1000);
	assert_true(since <= (60 + 600 + 900) * UINT64_C(100));
	assert_true(since >= 60 * UINT64_C(100)); /* not before the onset began */
}

/* ---- hypoxia -------------------------------------------------------------------------- */

/* A day of hypoxia.  hr_rise > 0 and nadir > 0 reach into the model and
 * override what each episode drew: a heart rate pushed over 140, or a
 * nadir that hovers around the 85 % limit so that noise crosses it again
 * and again (the hysteresis must keep that to one alarm). */
static void hypoxia_run(enum mt_physio_class c, uint64_t seed, double hr_rise, double nadir)
{
	static struct mt_physio_patient p;
	struct mt_obs obs[MT_PHYSIO_OBS_MAX];
	struct seen s = {0};
	unsigned episodes = 0, spo2_alarms = 0, hr_alarms = 0, below85 = 0, crossings = 0;
	bool in_episode = false, ep_below85 = false;
	double prev_spo2 = 100;
	double hr_in = 0, hr_all = 0, min_spo2 = 100;
	unsigned n_in = 0, n_all = 0;
	mt_physio_init(&p, MT_PHYSIO_HYPOXIA, c, seed, 1, T0);
	unsigned i_rate = c == MT_PHYSIO_BEDSIDE ? I_HR : I_PULSE;
	for (uint64_t at = T0; at < T0 + DAY_MS; at += TICK_MS) {
		if (hr_rise > 0)
			p.hyp.hr_rise = hr_rise;
		if (nadir > 0)
			p.hyp.nadir = nadir;
		(void)tick(&p, at, obs, &s);
		double spo2 = s.v[I_SPO2];
		if (spo2 < min_spo2)
			min_spo2 = spo2;
		if (!in_episode && spo2 < 88) {
			in_episode = true;
			ep_below85 = false;
			episodes++;
		} else if (in_episode && spo2 >= 94) {
			in_episode = false;
		}
		if (spo2 < 85 && !ep_below85) {
			ep_below85 = true;
			below85++;
		}
		crossings += spo2 < 85 && prev_spo2 >= 85;
		prev_spo2 = spo2;
		if (spo2 < 88) {
			hr_in += s.v[i_rate];
			n_in++;
		}
		hr_all += s.v[i_rate];
		n_all++;
		struct mt_physio_alarm a;
		while (mt_physio_alarm(&p, at, &a)) {
			hub_accepts_alarm(&a, at, 1);
			if (a.code == MT_PHYSIO_ALARM_SPO2_LOW) {
				spo2_alarms++;
				assert_int_equal(a.prio, 3);
				assert_int_equal(a.n_obs, 1);
				assert_int_equal(a.obs[0].code, SPO2);
				assert_true(mt_num_to_double(&a.obs[0].value) < 85);
				assert_true(in_episode);
			} else if (a.code == MT_PHYSIO_ALARM_HR_HIGH) {
				hr_alarms++;
				assert_int_equal(a.obs[0].code, quantity[i_rate].code);
				assert_true(mt_num_to_double(&a.obs[0].value) > 140);
			} else {
				fail_msg("unexpected alarm %u: %s", a.code, a.text);
			}
		}
	}
	/* 10–30 min apart, 1–3 min long: dozens a day */
	if (episodes < 30 || episodes > 120)
		fail_msg("%u episodes", episodes);
	assert_int_equal(episodes, p.hyp.episodes);
	/* one alarm per episode that went below the limit, however often the
	 * reading crossed it: edge-triggered, with hysteresis */
	assert_int_equal(spo2_alarms, below85);
	if (nadir > 0) {
		if (crossings < spo2_alarms + 20)
			fail_msg("%u crossings, %u alarms: hysteresis not exercised", crossings,
			         spo2_alarms);
	} else {
		assert_int_equal(below85, episodes); /* every episode reaches 80–84 % */
		assert_int_equal(crossings, episodes);
	}
	assert_true(below85 >= episodes / 2);
	assert_true(min_spo2 >= 80);
	/* the heart compensates */
	assert_true(hr_in / n_in >= hr_all / n_all + 10);
	if (hr_rise > 0)
		assert_int_equal(hr_alarms, episodes);
	else
		assert_int_equal(hr_alarms, 0);
}

static void test_hypoxia_episodes(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 4; seed++) {
		hypoxia_run(MT_PHYSIO_BEDSIDE, seed, 0, 0);
		hypoxia_run(MT_PHYSIO_WEARABLE, seed, 0, 0);
	}
	/* the heart-rate alarm, edge-triggered the same way */
	hypoxia_run(MT_PHYSIO_BEDSIDE, 9, 90, 0);
	hypoxia_run(MT_PHYSIO_WEARABLE, 9, 90, 0);
	/* a nadir hovering at the limit: many crossings, one alarm each episode */
	hypoxia_run(MT_PHYSIO_BEDSIDE, 10, 0, 84.6);
	hypoxia_run(MT_PHYSIO_WEARABLE, 10, 0, 84.6);
}

/* ---- dropout ------------------------------------------------------------------------ */

struct gaps {
	unsigned gaps, alarms, readings[NI];
};

static struct gaps dropout_run(enum mt_physio_scenario sc, enum mt_physio_class c,
                               uint64_t seed)
{
	static struct mt_physio_patient p;
	struct mt_obs obs[MT_PHYSIO_OBS_MAX];
	static int32_t samples[250];
	static uint8_t bytes[5 * 250];
	struct seen s = {0};
	struct gaps g = {0};
	unsigned cont = class_may(c) & (1u << I_HR | 1u << I_PULSE | 1u << I_SPO2 |
	                                1u << I_RESP | 1u << I_TEMP);
	unsigned prev = cont;
	mt_physio_init(&p, sc, c, seed, 1, T0);
	for (uint64_t at = T0; at < T0 + DAY_MS; at += TICK_MS) {
		(void)tick(&p, at, obs, &s);
		for (int q = 0; q < NI; q++)
			g.readings[q] += (s.now >> q) & 1;
		unsigned missing = cont & ~s.now;
		/* a group going missing: SpO2 and pulse go together */
		unsigned started = missing & prev;
		if (started & (1u << I_SPO2))
			assert_true(started & (1u << I_PULSE));
		started &= ~(1u << I_PULSE);
		g.gaps += (unsigned)__builtin_popcount(started);
		prev = s.now;
		if (c == MT_PHYSIO_BEDSIDE) {
			struct mt_obs w;
			enum mt_err e = mt_physio_ecg(&p, at, samples, N(samples), bytes,
			                              sizeof(bytes), &w);
			assert_int_equal(e, (missing & (1u << I_HR)) ? MT_ERR_NOT_FOUND : MT_OK);
		}
		struct mt_physio_alarm a;
		while (mt_physio_alarm(&p, at, &a)) {
			hub_accepts_alarm(&a, at, 1);
			assert_int_equal(a.code, MT_PHYSIO_ALARM_SENSOR_OFF);
			assert_int_equal(a.prio, 1);
			assert_int_equal(a.n_obs, 0);
			assert_non_null(strstr(a.text, "off"));
			g.alarms++;
		}
	}
	return g;
}

static void test_dropout_gaps(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct gaps d = dropout_run(MT_PHYSIO_DROPOUT, MT_PHYSIO_BEDSIDE, seed);
		struct gaps w = dropout_run(MT_PHYSIO_DROPOUT, MT_PHYSIO_WEARABLE, seed);
		struct gaps s = dropout_run(MT_PHYSIO_STABLE, MT_PHYSIO_WEARABLE, seed);
		/* 5–20 min apart: dozens of gaps a day, each one alarm */
		assert_true(d.gaps >= 30 && w.gaps >= 30);
		assert_int_equal(d.alarms, d.gaps);
		assert_int_equal(w.alarms, w.gaps);
		assert_int_equal(s.gaps, 0);
		assert_int_equal(s.alarms, 0);
		assert_int_equal(s.readings[I_SPO2], DAY_MS / TICK_MS);
		assert_true(w.readings[I_SPO2] < DAY_MS / TICK_MS);
		/* NIBP readings lost too (96 due in a day) */
		struct gaps b = dropout_run(MT_PHYSIO_STABLE, MT_PHYSIO_BEDSIDE, seed);
		assert_int_equal(b.readings[I_SYS], 96);
		assert_true(d.readings[I_SYS] < 96);
	}
	/* episodic classes lose readings: hourly glucose */
	unsigned lost = 0;
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct gaps s = dropout_run(MT_PHYSIO_STABLE, MT_PHYSIO_GLUCOSE, seed);
		struct gaps d = dropout_run(MT_PHYSIO_DROPOUT, MT_PHYSIO_GLUCOSE, seed);
		assert_int_equal(s.readings[I_GLU], 24);
		assert_true(d.readings[I_GLU] <= 24);
		lost += 24 - d.readings[I_GLU];
	}
	assert_true(lost >= 10);
}

/* ---- low battery ------------------------------------------------------------------------ */

static void test_low_battery(void **state)
{
	(void)state;
	static struct mt_physio_patient p;
	struct mt_obs obs[MT_PHYSIO_OBS_MAX];
	for (size_t ci = 0; ci < N(all_classes); ci++)
		for (uint64_t seed = 1; seed <= 3; seed++) {
			struct seen s = {0};
			unsigned alarms = 0;
			mt_physio_init(&p, MT_PHYSIO_LOW_BATTERY, all_classes[ci], seed, 1, T0);
			uint8_t first = mt_physio_battery(&p), prev = first;
			assert_true(first >= 40 && first <= 60);
			for (uint64_t at = T0; at < T0 + DAY_MS; at += TICK_MS) {
				(void)tick(&p, at, obs, &s);
				uint8_t b = mt_physio_battery(&p);
				assert_true(b <= prev); /* never rises */
				prev = b;
				struct mt_physio_alarm a;
				while (mt_physio_alarm(&p, at, &a)) {
					hub_accepts_alarm(&a, at, 1);
					assert_int_equal(a.code, MT_PHYSIO_ALARM_BATTERY);
					assert_true(b <= 10);
					alarms++;
				}
			}
			assert_int_equal(prev, 5); /* near 5 % in the end */
			assert_int_equal(alarms, 1);
		}
	/* the same drain at ×30 reaches 5 % within 8 minutes */
	mt_physio_init(&p, MT_PHYSIO_LOW_BATTERY, MT_PHYSIO_WEARABLE, 3, 30, T0);
	struct seen s = {0};
	for (uint64_t at = T0; at <= T0 + 8 * UINT64_C(60000); at += 1000)
		(void)tick(&p, at, obs, &s);
	assert_int_equal(mt_physio_battery(&p), 5);
	/* others: wearables drain slowly to no less than 30 %, monitors on mains */
	mt_physio_init(&p, MT_PHYSIO_STABLE, MT_PHYSIO_WEARABLE, 3, 1, T0);
	uint8_t b0 = mt_physio_battery(&p);
	for (uint64_t at = T0; at < T0 + 3 * DAY_MS; at += 60000)
		(void)tick(&p, at, obs, &s);
	assert_true(mt_physio_battery(&p) < b0);
	assert_int_equal(mt_physio_battery(&p), 30);
	struct mt_physio_alarm a;
	assert_false(mt_physio_alarm(&p, T0, &a));
}

/* ---- ECG lead II ---------------------------------------------------------------------- */

static void test_ecg_waveform(void **state)
{
	(void)state;
	static struct mt_physio_patient p;
	struct mt_obs obs[MT_PHYSIO_OBS_MAX + 1];
	static int32_t samples[2500], back[2500];
	static uint8_t bytes[5 * 2500];
	struct mt_obs w;
	struct seen s = {0};

	mt_physio_init(&p, MT_PHYSIO_STABLE, MT_PHYSIO_BEDSIDE, 11, 1, T0);
	/* no strip before the first sample */
	assert_int_equal(mt_physio_ecg(&p, T0, samples, 10, bytes, sizeof(bytes), &w),
	                 MT_ERR_NOT_FOUND);
	for (uint64_t at = T0; at < T0 + 600000; at += TICK_MS) {
		size_t n = tick(&p, at, obs, &s);
		/* a 10 s strip, in a message 1 s after the last sample */
		assert_int_equal(mt_physio_ecg(&p, at + 1000, samples, N(samples), bytes,
		                               sizeof(bytes), &w),
		                 MT_OK);
		assert_true(w.waveform);
		assert_int_equal(w.code, ECG_II);
		assert_int_equal(w.unit, U_MV);
		assert_int_equal(w.period_us, 4000);
		assert_int_equal(w.n_samples, N(samples));
		assert_true(mt_num_to_double(&w.scale) == 0.005);
		/* starts 10 s before the sample, 11 s before the message */
		int64_t t = 0;
		assert_true(mt_num_get_int64(&w.t, &t));
		assert_int_equal(t, -11000);
		size_t nb = 0;
		assert_int_equal(mt_waveform_decode(w.samples, w.samples_len, back, N(back), &nb),
		                 MT_OK);
		assert_int_equal(nb, N(samples));
		assert_memory_equal(back, samples, sizeof(samples));
		/* −1.0 … +2.0 mV, and one R peak (> 0.6 mV, local maximum) a beat */
		unsigned peaks = 0;
		for (size_t i = 0; i < N(samples); i++) {
			assert_true(samples[i] >= -200 && samples[i] <= 400);
			if (i > 0 && i + 1 < N(samples) && samples[i] > 120 &&
			    samples[i] >= samples[i - 1] && samples[i] > samples[i + 1])
				peaks++;
		}
		double want = s.v[I_HR] * 10 / 60;
		if (fabs(peaks - want) > 1.5)
			fail_msg("%u R peaks in 10 s at %.0f /min", peaks, s.v[I_HR]);
		/* the hub takes it, with the tick's scalars */
		obs[n] = w;
		struct mt_message m;
		init_msg(&m, MT_TYP_VITALS, at + 1000, 1);
		m.has = MT_MSG_OBS;
		m.obs = obs;
		m.n_obs = n + 1;
		hub_accepts(&m);
	}
	/* refusals */
	assert_int_equal(mt_physio_ecg(&p, T0, samples, 0, bytes, sizeof(bytes), &w),
	                 MT_ERR_ARG);
	assert_int_equal(mt_physio_ecg(&p, T0, samples, 100, bytes, 20, &w), MT_ERR_BUFFER);
	mt_physio_init(&p, MT_PHYSIO_STABLE, MT_PHYSIO_WEARABLE, 11, 1, T0);
	(void)tick(&p, T0, obs, &s);
	assert_int_equal(mt_physio_ecg(&p, T0, samples, 100, bytes, sizeof(bytes), &w),
	                 MT_ERR_UNSUPPORTED);
}

/* ---- the sample call's contract ---------------------------------------------------- */

static void test_sample_contract(void **state)
{
	(void)state;
	static struct mt_physio_patient p, q;
	struct mt_obs a[MT_PHYSIO_OBS_MAX], b[MT_PHYSIO_OBS_MAX];
	size_t na = 0, nb = 7;

	/* too small an array: refused before anything moves */
	mt_physio_init(&p, MT_PHYSIO_SEPSIS, MT_PHYSIO_BEDSIDE, 5, 1, T0);
	mt_physio_init(&q, MT_PHYSIO_SEPSIS, MT_PHYSIO_BEDSIDE, 5, 1, T0);
	assert_int_equal(mt_physio_sample(&p, T0 + 60000, T0 + 60000, a, MT_PHYSIO_OBS_MAX - 1,
	                                  &nb),
	                 MT_ERR_BUFFER);
	assert_int_equal(nb, 0);
	assert_memory_equal(&p, &q, sizeof(p));

	/* batch ts after the sample: t negative by the difference; before it: 0 */
	assert_int_equal(mt_physio_sample(&p, T0 + 60000, T0 + 62500, a, N(a), &na), MT_OK);
	assert_true(na >= 5);
	for (size_t i = 0; i < na; i++) {
		int64_t t = 1;
		assert_true(mt_num_get_int64(&a[i].t, &t));
		assert_int_equal(t, -2500);
	}
	assert_int_equal(mt_physio_sample(&q, T0 + 60000, T0, b, N(b), &nb), MT_OK);
	assert_int_equal(nb, na);
	for (size_t i = 0; i < nb; i++) {
		assert_int_equal(b[i].t.kind, MT_NUM_UINT);
		assert_int_equal(b[i].t.u, 0);
		assert_int_equal(b[i].code, a[i].code);
		assert_true(mt_num_to_double(&b[i].value) == mt_num_to_double(&a[i].value));
	}

	/* time going backwards stands still */
	double t_s = p.t_s;
	assert_int_equal(mt_physio_sample(&p, T0 + 1000, T0 + 1000, a, N(a), &na), MT_OK);
	assert_true(p.t_s == t_s);
	assert_int_equal(p.tick_ms, T0 + 60000);

	/* time scale: ×60 puts a minute of device time an hour into the patient */
	mt_physio_init(&p, MT_PHYSIO_STABLE, MT_PHYSIO_WEARABLE, 5, 60, T0);
	assert_int_equal(mt_physio_sample(&p, T0 + 60000, T0 + 60000, a, N(a), &na), MT_OK);
	assert_true(fabs(p.t_s - 3600) < 1e-9);
	/* nonsense scales count as real time */
	mt_physio_init(&p, MT_PHYSIO_STABLE, MT_PHYSIO_WEARABLE, 5, -3, T0);
	assert_true(p.time_scale == 1);
	mt_physio_init(&p, MT_PHYSIO_STABLE, MT_PHYSIO_WEARABLE, 5, NAN, T0);
	assert_true(p.time_scale == 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_news2_reference),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_mixed_fleet),
		cmocka_unit_test(test_day_plausible),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_stable_news2_low),
		cmocka_unit_test(test_sepsis_news2_high),
		cmocka_unit_test(test_hypoxia_episodes),
		cmocka_unit_test(test_dropout_gaps),
		cmocka_unit_test(test_low_battery),
		cmocka_unit_test(test_ecg_waveform),
		cmocka_unit_test(test_sample_contract),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
