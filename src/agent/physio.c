/*
 * physio.c — the virtual patient of the fleet simulator (physio.h,
 * docs/simulator.md).
 *
 * A patient is three layers, each computed from simulated time t (device
 * time since start × time_scale):
 *
 *  1. Personal physiology: a baseline per quantity drawn from the seed,
 *     plus a slow Ornstein–Uhlenbeck drift (updated exactly for any step,
 *     so the tick rate does not change its statistics) clamped to ±limit.
 *     Baselines, drift limits and noise are chosen so that a stable adult
 *     stays inside HR 60–90, RR 12–18, SpO2 96–99, SBP 110–135, DBP 65–85,
 *     temperature 36.4–37.3 — a NEWS2 aggregate of 0 (clinical.md §2).
 *  2. The scenario, layered on top: sepsis pulls each quantity towards a
 *     septic target along a smoothstep over the onset; hypoxia cuts SpO2
 *     to an 81–83 % nadir for 1–3 min with a compensatory HR/RR rise;
 *     dropout switches one sensor group off at a time; low-battery drains
 *     the battery to 5 %.
 *  3. The device: which quantities its class reports and when (continuous
 *     every tick, NIBP every 15 simulated minutes, glucose hourly, inhaler
 *     doses on schedule), measurement noise, rounding to the display
 *     precision of clinical.md §1 and hard clamps that keep every value
 *     inside the plausible ranges the hub enforces.
 *
 * Noise is Irwin–Hall (sum of four uniforms, scaled to unit variance), not
 * Box–Muller: it is bounded (±2√3 σ), so the range guarantees above are
 * arithmetic, not probabilities, and the unit test can insist on them.
 *
 * Determinism: one xoshiro256** stream (seeded through splitmix64) feeds
 * the physiology, in an order fixed by the sequence of calls; the ECG
 * strip draws from a second stream, so asking for a waveform or not does
 * not change the vital signs.  The baselines are the stream's first draws,
 * so one seed is one person whatever the scenario.
 *
 * Alarms are evaluated on the values reported (what a real device would
 * see), edge-triggered with hysteresis: crossing the raise limit while the
 * alarm is inactive makes it active and pending; it becomes inactive only
 * past the clearing limit.  Pending alarms wait in a bit set until
 * mt_physio_alarm() hands them out.
 */
#include "physio.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- MDC codes and units (clinical.md §1) ---------------------------------- */

#define C_HR 147842u
#define C_PULSE 149530u
#define C_SPO2 150456u
#define C_SYS 150021u
#define C_DIA 150022u
#define C_MEAN 150023u
#define C_TEMP 150364u
#define C_RESP 151562u
#define C_GLU 160184u
#define C_ECG_II 131330u
#define C_DOSE 8532992u /* MDC_AI_MED_DISPENSED_FIXED (derived, see docs) */
#define U_BPM 264864u
#define U_PCT 262688u
#define U_MMHG 266016u
#define U_DEGC 268192u
#define U_RPM 264928u
#define U_MGDL 264274u
#define U_MV 266418u
#define U_DIMLESS 262656u

#define PI 3.14159265358979323846

/* Schedules, in simulated seconds. */
#define NIBP_EVERY_S 900.0
#define GLU_EVERY_S 3600.0
#define DOSE_EVERY_S 43200.0

/* ---- random numbers ---------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static void rng_seed(struct mt_physio_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

/* xoshiro256** (Blackman and Vigna). */
static uint64_t rng_next(struct mt_physio_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* Uniform in [0, 1). */
static double rng_unit(struct mt_physio_rng *r)
{
	return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_uni(struct mt_physio_rng *r, double lo, double hi)
{
	return lo + (hi - lo) * rng_unit(r);
}

/* Mean 0, variance 1, bounded by ±2√3 (Irwin–Hall of four). */
static double rng_gauss(struct mt_physio_rng *r)
{
	double s = rng_unit(r) + rng_unit(r) + rng_unit(r) + rng_unit(r);
	return (s - 2.0) * 1.7320508075688772;
}

/* ---- names ------------------------------------------------------------------- */

static const char *const scenario_names[] = {
	[MT_PHYSIO_STABLE] = "stable",   [MT_PHYSIO_SEPSIS] = "sepsis",
	[MT_PHYSIO_HYPOXIA] = "hypoxia", [MT_PHYSIO_DROPOUT] = "dropout",
	[MT_PHYSIO_LOW_BATTERY] = "low-battery", [MT_PHYSIO_MIXED] = "mixed",
};
static const char *const class_names[] = {
	[MT_PHYSIO_BEDSIDE] = "bedside-monitor",
	[MT_PHYSIO_WEARABLE] = "wearable",
	[MT_PHYSIO_GLUCOSE] = "glucose-meter",
	[MT_PHYSIO_INHALER] = "smart-inhaler",
};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

bool mt_physio_scenario_parse(const char *name, enum mt_physio_scenario *s)
{
	if (name == NULL)
		return false;
	for (size_t i = 0; i < NELEM(scenario_names); i++)
		if (strcmp(name, scenario_names[i]) == 0) {
			*s = (enum mt_physio_scenario)i;
			return true;
		}
	return false;
}

const char *mt_physio_scenario_name(enum mt_physio_scenario s)
{
	return (unsigned)s < NELEM(scenario_names) ? scenario_names[s] : "?";
}

bool mt_physio_class_parse(const char *name, enum mt_physio_class *c)
{
	if (name == NULL)
		return false;
	for (size_t i = 0; i < NELEM(class_names); i++)
		if (strcmp(name, class_names[i]) == 0) {
			*c = (enum mt_physio_class)i;
			return true;
		}
	return false;
}

const char *mt_physio_class_name(enum mt_physio_class c)
{
	return (unsigned)c < NELEM(class_names) ? class_names[c] : "?";
}

enum mt_physio_scenario mt_physio_scenario_for(enum mt_physio_scenario s, uint64_t index)
{
	static const enum mt_physio_scenario deal[10] = {
		MT_PHYSIO_STABLE, MT_PHYSIO_SEPSIS,  MT_PHYSIO_STABLE, MT_PHYSIO_HYPOXIA,
		MT_PHYSIO_STABLE, MT_PHYSIO_DROPOUT, MT_PHYSIO_STABLE, MT_PHYSIO_LOW_BATTERY,
		MT_PHYSIO_STABLE, MT_PHYSIO_STABLE,
	};
	if (s != MT_PHYSIO_MIXED)
		return s;
	return deal[index % 10];
}

/* ---- the device class ------------------------------------------------------------ */

#define G(g) (1u << MT_PHYSIO__G_##g)

static unsigned class_groups(enum mt_physio_class c)
{
	switch (c) {
	case MT_PHYSIO_BEDSIDE:
		return G(OXI) | G(ECG) | G(RESP) | G(TEMP) | G(NIBP);
	case MT_PHYSIO_WEARABLE:
		return G(OXI) | G(RESP) | G(TEMP);
	case MT_PHYSIO_GLUCOSE:
		return G(GLU);
	case MT_PHYSIO_INHALER:
		return G(DOSE);
	}
	return 0;
}

/* The continuous groups (reported every tick), which can drop out for a
 * period and raise "sensor off". */
#define CONTINUOUS (G(OXI) | G(ECG) | G(RESP) | G(TEMP))

/* ---- set-up ------------------------------------------------------------------ */

static void drift_init(struct mt_physio_drift *d, struct mt_physio_rng *r, double lo,
                       double hi, double sigma, double limit, double tau_s)
{
	d->base = rng_uni(r, lo, hi);
	d->sigma = sigma;
	d->limit = limit;
	d->tau_s = tau_s;
	d->x = rng_uni(r, -limit / 2, limit / 2);
}

void mt_physio_init(struct mt_physio_patient *p, enum mt_physio_scenario s,
                    enum mt_physio_class c, uint64_t seed, double time_scale,
                    uint64_t start_ms)
{
	memset(p, 0, sizeof(*p));
	p->scenario = mt_physio_scenario_for(s, seed);
	if ((unsigned)p->scenario >= (unsigned)MT_PHYSIO_MIXED)
		p->scenario = MT_PHYSIO_STABLE;
	p->device_class = (unsigned)c < NELEM(class_names) ? c : MT_PHYSIO_WEARABLE;
	p->time_scale = (isfinite(time_scale) && time_scale > 0) ? time_scale : 1.0;
	p->start_ms = start_ms;
	p->tick_ms = start_ms;
	rng_seed(&p->rng, seed);
	rng_seed(&p->ecg_rng, seed ^ 0x45434721u);
	struct mt_physio_rng *r = &p->rng;

	/* The person: first draws of the stream, whatever the scenario. */
	drift_init(&p->q[MT_PHYSIO__HR], r, 68, 80, 2.5, 5, 1200);
	drift_init(&p->q[MT_PHYSIO__RR], r, 14, 16, 0.5, 1, 900);
	drift_init(&p->q[MT_PHYSIO__SPO2], r, 97.5, 98, 0.3, 0.6, 600);
	drift_init(&p->q[MT_PHYSIO__SBP], r, 119, 126, 2.5, 4, 1800);
	drift_init(&p->q[MT_PHYSIO__DBP], r, 72, 78, 1.5, 3, 1800);
	drift_init(&p->q[MT_PHYSIO__TEMP], r, 36.7, 37.0, 0.1, 0.2, 3600);
	drift_init(&p->q[MT_PHYSIO__GLU], r, 90, 120, 8, 15, 3600);

	/* Sepsis targets.  With the drift damped to 40 % and the noise bounded,
	 * a septic reading stays within HR 117–131, RR 24–29, SpO2 92–94, SBP
	 * 84–95, temperature 38.9–39.7 (or 35.2–36.0): even the worst corner
	 * scores NEWS2 RR 2 + SpO2 2 + SBP 2 + HR 2 + temperature 1 = 9. */
	p->sepsis.delay_s = 300;
	p->sepsis.dur_s = rng_uni(r, 1200, 2400);
	p->sepsis.hr = rng_uni(r, 122, 126);
	p->sepsis.rr = rng_uni(r, 25.5, 27.5);
	p->sepsis.spo2 = rng_uni(r, 92.8, 93.2);
	p->sepsis.sbp = rng_uni(r, 88, 91);
	p->sepsis.dbp = rng_uni(r, 50, 58);
	p->sepsis.temp = rng_unit(r) < 0.2 ? rng_uni(r, 35.4, 35.8) : rng_uni(r, 39.1, 39.5);
	p->sepsis.glu = rng_uni(r, 160, 220);

	p->hyp.next_s = rng_uni(r, 180, 600);
	p->drop.next_s = rng_uni(r, 60, 300);
	p->drop.group = -1;
	p->next_nibp_s = 0;
	p->next_glu_s = 0;
	p->next_dose_s = rng_uni(r, 0, DOSE_EVERY_S);
	p->next_rescue_s = rng_uni(r, 7200, 36000);

	double b0 = rng_uni(r, 80, 100);
	if (p->scenario == MT_PHYSIO_LOW_BATTERY) {
		p->battery0 = rng_uni(r, 40, 60);
		p->battery_floor = 5;
		p->battery_slope = (p->battery0 - 5) / rng_uni(r, 7200, 14400);
	} else if (p->device_class == MT_PHYSIO_BEDSIDE) {
		p->battery0 = 100; /* on mains */
		p->battery_floor = 100;
	} else {
		p->battery0 = b0;
		p->battery_floor = 30;
		p->battery_slope = 1.0 / 3600;
	}
	for (int i = 0; i < MT_PHYSIO__NQ; i++)
		p->now[i] = p->q[i].base + p->q[i].x;
}

void mt_physio_set_onset(struct mt_physio_patient *p, uint32_t delay_s, uint32_t duration_s)
{
	p->sepsis.delay_s = delay_s;
	p->sepsis.dur_s = duration_s > 0 ? duration_s : 1;
}

/* ---- the physiology at simulated time t ------------------------------------------- */

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static double smoothstep(double x)
{
	x = clamp(x, 0, 1);
	return x * x * (3 - 2 * x);
}

static void drift_step(struct mt_physio_drift *d, struct mt_physio_rng *r, double dt)
{
	double a = exp(-dt / d->tau_s);
	d->x = d->x * a + d->sigma * sqrt(1 - a * a) * rng_gauss(r);
	d->x = clamp(d->x, -d->limit, d->limit);
}

/* Run the event schedules up to p->t_s. */
static void events(struct mt_physio_patient *p)
{
	struct mt_physio_rng *r = &p->rng;
	double t = p->t_s;
	if (p->scenario == MT_PHYSIO_HYPOXIA) {
		while (t >= p->hyp.next_s) {
			p->hyp.start_s = p->hyp.next_s;
			p->hyp.end_s = p->hyp.start_s + rng_uni(r, 60, 180);
			p->hyp.nadir = rng_uni(r, 81, 83);
			p->hyp.hr_rise = rng_uni(r, 15, 25);
			p->hyp.rr_rise = rng_uni(r, 4, 8);
			p->hyp.episodes++;
			p->hyp_rescue = true;
			p->hyp.next_s = p->hyp.end_s + rng_uni(r, 600, 1800);
		}
	}
	unsigned cont = class_groups(p->device_class) & CONTINUOUS;
	if (p->scenario == MT_PHYSIO_DROPOUT && cont) {
		if (p->drop.group >= 0 && t >= p->drop.until_s)
			p->drop.group = -1;
		while (p->drop.group < 0 && t >= p->drop.next_s) {
			int n = 0, pick, g;
			for (g = 0; g < MT_PHYSIO__NG; g++)
				n += (cont >> g) & 1;
			pick = (int)(rng_unit(r) * n);
			for (g = 0; g < MT_PHYSIO__NG; g++)
				if (((cont >> g) & 1) && pick-- == 0)
					break;
			p->drop.until_s = p->drop.next_s + rng_uni(r, 30, 300);
			p->drop.next_s = p->drop.until_s + rng_uni(r, 300, 1200);
			p->drop.periods++;
			if (t < p->drop.until_s)
				p->drop.group = g;
		}
	}
}

static void advance(struct mt_physio_patient *p, double t_new)
{
	double dt = t_new - p->t_s;
	if (dt > 0)
		for (int i = 0; i < MT_PHYSIO__NQ; i++)
			drift_step(&p->q[i], &p->rng, dt);
	p->t_s = t_new;
	events(p);

	double t = p->t_s, v[MT_PHYSIO__NQ];
	for (int i = 0; i < MT_PHYSIO__NQ; i++)
		v[i] = p->q[i].base + p->q[i].x;
	if (p->scenario == MT_PHYSIO_SEPSIS) {
		double s = smoothstep((t - p->sepsis.delay_s) / p->sepsis.dur_s);
		const double target[MT_PHYSIO__NQ] = {
			[MT_PHYSIO__HR] = p->sepsis.hr,   [MT_PHYSIO__RR] = p->sepsis.rr,
			[MT_PHYSIO__SPO2] = p->sepsis.spo2, [MT_PHYSIO__SBP] = p->sepsis.sbp,
			[MT_PHYSIO__DBP] = p->sepsis.dbp, [MT_PHYSIO__TEMP] = p->sepsis.temp,
			[MT_PHYSIO__GLU] = p->sepsis.glu,
		};
		/* towards the target, the personal drift damped to 40 % */
		for (int i = 0; i < MT_PHYSIO__NQ; i++)
			v[i] += s * (target[i] - p->q[i].base) - 0.6 * s * p->q[i].x;
	}
	if (p->scenario == MT_PHYSIO_HYPOXIA && p->hyp.episodes > 0 && t >= p->hyp.start_s &&
	    t <= p->hyp.end_s) {
		/* 15 s fall, plateau, 30 s recovery */
		double d = fmin(1.0, fmin((t - p->hyp.start_s) / 15.0, (p->hyp.end_s - t) / 30.0));
		d = clamp(d, 0, 1);
		v[MT_PHYSIO__SPO2] -= d * (v[MT_PHYSIO__SPO2] - p->hyp.nadir);
		v[MT_PHYSIO__HR] += d * p->hyp.hr_rise;
		v[MT_PHYSIO__RR] += d * p->hyp.rr_rise;
	}
	memcpy(p->now, v, sizeof(v));
}

/* ---- observations -------------------------------------------------------------- */

/* t = at − batch (≤ 0; 0 when at is not before batch). */
static void set_t(struct mt_num *n, uint64_t at_ms, uint64_t batch_ms)
{
	if (at_ms >= batch_ms)
		mt_num_set_uint(n, 0);
	else
		mt_num_set_negint(n, batch_ms - at_ms - 1);
}

static double round_to(double v, uint8_t places)
{
	return places == 0 ? floor(v + 0.5) : floor(v * 10 + 0.5) / 10;
}

static void scalar(struct mt_obs *o, uint64_t at_ms, uint64_t batch_ms, uint32_t code,
                   uint32_t unit, double v, uint8_t places)
{
	memset(o, 0, sizeof(*o));
	set_t(&o->t, at_ms, batch_ms);
	o->code = code;
	o->unit = unit;
	if (places == 0)
		mt_num_set_uint(&o->value, (uint64_t)v); /* v ≥ 0, whole */
	else
		mt_num_set_float(&o->value, v);
	o->has_places = true;
	o->places = places;
}

/* A measured value: truth + bounded noise, rounded, clamped. */
static double measure(struct mt_physio_patient *p, double truth, double sigma, double lo,
                      double hi, uint8_t places)
{
	return clamp(round_to(truth + sigma * rng_gauss(&p->rng), places), lo, hi);
}

/* ---- alarms ---------------------------------------------------------------------- */

struct alarm_def {
	uint32_t code;
	uint8_t prio;
};
static const struct alarm_def alarm_defs[MT_PHYSIO__NALARM] = {
	[MT_PHYSIO__A_SPO2_LOW] = {MT_PHYSIO_ALARM_SPO2_LOW, 3},
	[MT_PHYSIO__A_HR_HIGH] = {MT_PHYSIO_ALARM_HR_HIGH, 3},
	[MT_PHYSIO__A_HR_LOW] = {MT_PHYSIO_ALARM_HR_LOW, 3},
	[MT_PHYSIO__A_RR_HIGH] = {MT_PHYSIO_ALARM_RR_HIGH, 2},
	[MT_PHYSIO__A_BATTERY] = {MT_PHYSIO_ALARM_BATTERY, 1},
	[MT_PHYSIO__A_OFF + 0] = {MT_PHYSIO_ALARM_SENSOR_OFF, 1},
	[MT_PHYSIO__A_OFF + 1] = {MT_PHYSIO_ALARM_SENSOR_OFF, 1},
	[MT_PHYSIO__A_OFF + 2] = {MT_PHYSIO_ALARM_SENSOR_OFF, 1},
	[MT_PHYSIO__A_OFF + 3] = {MT_PHYSIO_ALARM_SENSOR_OFF, 1},
};
static const char *const group_names[4] = {
	[MT_PHYSIO__G_OXI] = "SpO2 probe",
	[MT_PHYSIO__G_ECG] = "ECG leads",
	[MT_PHYSIO__G_RESP] = "Respiration sensor",
	[MT_PHYSIO__G_TEMP] = "Temperature probe",
};

/* Edge with hysteresis: raise when `over` and inactive, clear when `under`. */
static void edge(struct mt_physio_patient *p, int slot, bool over, bool under,
                 uint32_t code, uint32_t unit, double value, const char *what)
{
	uint32_t bit = 1u << slot;
	if (over && !(p->active & bit)) {
		p->active |= bit;
		p->pending |= bit;
		p->src[slot].code = code;
		p->src[slot].unit = unit;
		p->src[slot].value = value;
		p->src[slot].places = 0;
		p->src[slot].has_obs = code != 0;
		p->src[slot].at_ms = p->tick_ms;
		size_t n = strlen(what);
		if (n >= sizeof(p->src[slot].what))
			n = sizeof(p->src[slot].what) - 1;
		memcpy(p->src[slot].what, what, n);
		p->src[slot].what[n] = '\0';
	} else if (under) {
		p->active &= ~bit;
	}
}

bool mt_physio_alarm(struct mt_physio_patient *p, uint64_t batch_ts_ms,
                     struct mt_physio_alarm *a)
{
	int best = -1;
	for (int i = 0; i < MT_PHYSIO__NALARM; i++)
		if ((p->pending & (1u << i)) &&
		    (best < 0 || alarm_defs[i].prio > alarm_defs[best].prio))
			best = i;
	if (best < 0)
		return false;
	p->pending &= ~(1u << best);
	memset(a, 0, sizeof(*a));
	a->code = alarm_defs[best].code;
	a->prio = alarm_defs[best].prio;
	const char *what = p->src[best].what;
	double v = p->src[best].value;
	int r;
	switch (best) {
	case MT_PHYSIO__A_SPO2_LOW:
		r = snprintf(a->text, sizeof(a->text), "SpO2 low: %.0f %% (limit < 85 %%)", v);
		break;
	case MT_PHYSIO__A_HR_HIGH:
		r = snprintf(a->text, sizeof(a->text), "%s high: %.0f /min (limit > 140)", what, v);
		break;
	case MT_PHYSIO__A_HR_LOW:
		r = snprintf(a->text, sizeof(a->text), "%s low: %.0f /min (limit < 40)", what, v);
		break;
	case MT_PHYSIO__A_RR_HIGH:
		r = snprintf(a->text, sizeof(a->text), "Respiratory rate high: %.0f /min (limit > 30)",
		             v);
		break;
	case MT_PHYSIO__A_BATTERY:
		r = snprintf(a->text, sizeof(a->text), "Battery low: %.0f %%", v);
		break;
	default:
		r = snprintf(a->text, sizeof(a->text), "%s off: no signal", what);
		break;
	}
	if (r < 0)
		a->text[0] = '\0';
	if (p->src[best].has_obs) {
		scalar(&a->obs[0], p->src[best].at_ms, batch_ts_ms, p->src[best].code,
		       p->src[best].unit, v, p->src[best].places);
		a->n_obs = 1;
	}
	return true;
}

/* ---- a tick ---------------------------------------------------------------------- */

static double battery_level(const struct mt_physio_patient *p)
{
	double b = p->battery0 - p->battery_slope * p->t_s;
	return b < p->battery_floor ? p->battery_floor : b;
}

uint8_t mt_physio_battery(const struct mt_physio_patient *p)
{
	return (uint8_t)clamp(floor(battery_level(p) + 0.5), 0, 100);
}

/* Is an episodic measurement due at t?  Moves the schedule past t. */
static bool due(double *next, double t, double every)
{
	if (t < *next)
		return false;
	while (*next <= t)
		*next += every;
	return true;
}

enum mt_err mt_physio_sample(struct mt_physio_patient *p, uint64_t now_ms,
                             uint64_t batch_ts_ms, struct mt_obs *obs, size_t cap,
                             size_t *n)
{
	*n = 0;
	if (cap < MT_PHYSIO_OBS_MAX)
		return MT_ERR_BUFFER;
	if (now_ms > p->tick_ms)
		p->tick_ms = now_ms;
	double t = (double)(p->tick_ms - p->start_ms) / 1000.0 * p->time_scale;
	advance(p, t > p->t_s ? t : p->t_s);
	p->ticks++;

	struct mt_physio_rng *r = &p->rng;
	const double *v = p->now;
	unsigned groups = class_groups(p->device_class);
	bool dropout = p->scenario == MT_PHYSIO_DROPOUT;
	unsigned off = p->drop.group >= 0 ? 1u << p->drop.group : 0;
	uint64_t at = p->tick_ms;
	size_t k = 0;

	/* Draw every noise term every tick, reported or not, so that a dropout
	 * does not shift the stream. */
	double hr = measure(p, v[MT_PHYSIO__HR], 0.8, 25, 250, 0);
	double pulse = measure(p, v[MT_PHYSIO__HR], 0.8, 25, 250, 0);
	double spo2 = measure(p, v[MT_PHYSIO__SPO2], 0.25, 50, 100, 0);
	double rr = measure(p, v[MT_PHYSIO__RR], 0.3, 4, 60, 0);
	double temp = measure(p, v[MT_PHYSIO__TEMP], 0.03, 30, 43, 1);
	double sys = measure(p, v[MT_PHYSIO__SBP], 0.8, 40, 260, 0);
	double dia = measure(p, v[MT_PHYSIO__DBP], 0.8, 30, 200, 0);
	double glu = measure(p, v[MT_PHYSIO__GLU], 3, 20, 600, 0);
	double lose = rng_unit(r); /* an episodic reading lost (dropout) */
	if (dia >= sys - 10)
		dia = sys - 10;
	double mean = floor(dia + (sys - dia) / 3 + 0.5);

	bool has_hr = (groups & G(ECG)) && !(off & G(ECG));
	bool has_oxi = (groups & G(OXI)) && !(off & G(OXI));
	bool has_rr = (groups & G(RESP)) && !(off & G(RESP));
	bool has_temp = (groups & G(TEMP)) && !(off & G(TEMP));
	if (has_hr)
		scalar(&obs[k++], at, batch_ts_ms, C_HR, U_BPM, hr, 0);
	if (has_oxi) {
		scalar(&obs[k++], at, batch_ts_ms, C_PULSE, U_BPM, pulse, 0);
		scalar(&obs[k++], at, batch_ts_ms, C_SPO2, U_PCT, spo2, 0);
	}
	if (has_rr)
		scalar(&obs[k++], at, batch_ts_ms, C_RESP, U_RPM, rr, 0);
	if (has_temp)
		scalar(&obs[k++], at, batch_ts_ms, C_TEMP, U_DEGC, temp, 1);
	if ((groups & G(NIBP)) && due(&p->next_nibp_s, p->t_s, NIBP_EVERY_S) &&
	    !(dropout && lose < 0.25)) {
		scalar(&obs[k++], at, batch_ts_ms, C_SYS, U_MMHG, sys, 0);
		scalar(&obs[k++], at, batch_ts_ms, C_DIA, U_MMHG, dia, 0);
		scalar(&obs[k++], at, batch_ts_ms, C_MEAN, U_MMHG, mean, 0);
	}
	if ((groups & G(GLU)) && due(&p->next_glu_s, p->t_s, GLU_EVERY_S) &&
	    !(dropout && lose < 0.25))
		scalar(&obs[k++], at, batch_ts_ms, C_GLU, U_MGDL, glu, 0);
	if (groups & G(DOSE)) {
		unsigned puffs = 0;
		if (due(&p->next_dose_s, p->t_s, DOSE_EVERY_S))
			puffs += 2; /* maintenance */
		while (p->t_s >= p->next_rescue_s) {
			puffs += 1;
			p->next_rescue_s += rng_uni(r, 7200, 36000);
		}
		if (p->hyp_rescue && rng_unit(r) < 0.5)
			puffs += 1; /* reliever at the start of a desaturation */
		if (puffs > 0 && !(dropout && lose < 0.25))
			scalar(&obs[k++], at, batch_ts_ms, C_DOSE, U_DIMLESS, puffs > 100u ? 100u : puffs, 0);
	}
	p->hyp_rescue = false;

	/* Device alarms on what was reported. */
	if (has_oxi)
		edge(p, MT_PHYSIO__A_SPO2_LOW, spo2 < 85, spo2 >= 90, C_SPO2, U_PCT, spo2, "SpO2");
	if (has_hr || has_oxi) {
		double h = has_hr ? hr : pulse;
		uint32_t code = has_hr ? C_HR : C_PULSE;
		const char *what = has_hr ? "Heart rate" : "Pulse rate";
		p->hr_shown = h;
		edge(p, MT_PHYSIO__A_HR_HIGH, h > 140, h <= 130, code, U_BPM, h, what);
		edge(p, MT_PHYSIO__A_HR_LOW, h < 40, h >= 45, code, U_BPM, h, what);
	}
	if (has_rr)
		edge(p, MT_PHYSIO__A_RR_HIGH, rr > 30, rr <= 26, C_RESP, U_RPM, rr, "RR");
	double batt = mt_physio_battery(p);
	edge(p, MT_PHYSIO__A_BATTERY, batt <= 10, batt >= 20, 0, 0, batt, "Battery");
	for (int g = 0; g < 4; g++)
		if (groups & (1u << g)) {
			bool is_off = (off >> g) & 1;
			edge(p, MT_PHYSIO__A_OFF + g, is_off, !is_off, 0, 0, 0, group_names[g]);
		}
	*n = k;
	return MT_OK;
}

/* ---- ECG lead II ------------------------------------------------------------------ */

/* One beat as five Gaussian waves (P, Q, R, S, T) around its R peak, the
 * T wave moving in with the heart rate (QT ∝ √RR, Bazett). */
static double beat(double dt, double rr_s)
{
	static const struct {
		double a, at, w;
	} wave[5] = {
		{0.15, -0.16, 0.025}, {-0.10, -0.03, 0.010}, {1.20, 0.0, 0.012},
		{-0.25, 0.03, 0.010}, {0.30, 0.0, 0.050},
	};
	double sum = 0;
	for (int i = 0; i < 5; i++) {
		double at = i == 4 ? 0.26 * sqrt(rr_s) : wave[i].at;
		double x = (dt - at) / wave[i].w;
		sum += wave[i].a * exp(-0.5 * x * x);
	}
	return sum;
}

enum mt_err mt_physio_ecg(struct mt_physio_patient *p, uint64_t batch_ts_ms,
                          int32_t *samples, uint32_t n, uint8_t *bytes,
                          size_t bytes_cap, struct mt_obs *o)
{
	if (n == 0 || n > MT_WAVE_MAX_SAMPLES)
		return MT_ERR_ARG;
	if (p->device_class != MT_PHYSIO_BEDSIDE)
		return MT_ERR_UNSUPPORTED;
	if (p->ticks == 0 || p->drop.group == MT_PHYSIO__G_ECG)
		return MT_ERR_NOT_FOUND;
	double hr = clamp(p->hr_shown > 0 ? p->hr_shown : p->now[MT_PHYSIO__HR], 25, 250);
	double rr_s = 60.0 / hr;
	double period_s = MT_PHYSIO_ECG_PERIOD_US / 1e6;
	uint64_t span_ms = (uint64_t)n * MT_PHYSIO_ECG_PERIOD_US / 1000;
	uint64_t first_ms = p->tick_ms > span_ms ? p->tick_ms - span_ms : 0;
	/* Device time of the first sample, in s since the start (the ECG runs
	 * in real time: an accelerated heart would look wrong). */
	double t0 = ((double)first_ms - (double)p->start_ms) / 1000.0;
	for (uint32_t i = 0; i < n; i++) {
		double t = t0 + i * period_s;
		double k = floor(t / rr_s);
		double tau = t - k * rr_s - 0.4 * rr_s; /* R peak at 40 % of the cycle */
		double mv = beat(tau + rr_s, rr_s) + beat(tau, rr_s) + beat(tau - rr_s, rr_s);
		mv += 0.05 * sin(2 * PI * 0.25 * t) + 0.01 * rng_gauss(&p->ecg_rng);
		mv = clamp(mv, -1.0, 2.0);
		samples[i] = (int32_t)floor(mv / MT_PHYSIO_ECG_SCALE_MV + 0.5);
	}
	size_t len = 0;
	enum mt_err e = mt_waveform_encode(samples, n, bytes, bytes_cap, &len);
	if (e != MT_OK)
		return e;
	memset(o, 0, sizeof(*o));
	o->waveform = true;
	set_t(&o->t, first_ms, batch_ts_ms);
	o->code = C_ECG_II;
	o->unit = U_MV;
	o->period_us = MT_PHYSIO_ECG_PERIOD_US;
	mt_num_set_float(&o->scale, MT_PHYSIO_ECG_SCALE_MV);
	o->samples = bytes;
	o->samples_len = len;
	o->n_samples = n;
	return MT_OK;
}
