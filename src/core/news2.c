/*
 * news2.c — the NEWS2 chart of spec/clinical.md §2 (mt_news2.h).
 *
 * Each measured value is first rounded half up to the chart's resolution
 * (whole units; temperature in tenths of a degree), then looked up in its
 * row.  The rows are written as the chart prints them — the upper bound of
 * each band, inclusive — so that a reader can hold this file next to the
 * table and check every number.  Rounding stays in double (floor and a
 * comparison of the exact remainder x − floor(x)), never through an integer
 * conversion, so that no input, however large, overflows.
 *
 * Check order in mt_news2_score: arguments, then every present value for
 * finiteness and the two letters for validity (so an invalid input is
 * refused even for a patient NEWS2 does not apply to), then applicability,
 * then scoring.  The result is written only once complete; on an error it
 * holds the not-applicable result, so that a caller who ignored the error
 * (the compiler makes that hard) still sees no score.
 *
 * Trigger (clinical.md §2, last table): aggregate ≥ 7 → high (continuous);
 * 5–6 → medium (hourly); a single 3 with aggregate ≤ 4 → medium, risk
 * "low-medium" (hourly); 1–4 → low (4-6-hourly); 0 → none (12-hourly).
 * The texts are ASCII, for HL7, JSON and logs.
 */
#include "medtrust/mt_news2.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* Round half up to a whole number.  x − floor(x) is exact for every finite
 * double, so this never suffers the x + 0.5 rounding error
 * (0.49999999999999994 + 0.5 == 1.0). */
static double round_half_up(double x, double eps)
{
	double f = floor(x);
	return x - f >= 0.5 - eps ? f + 1.0 : f;
}

/* A band row: score of every value ≤ upper[i] (first match), else last. */
struct band {
	double upper;
	uint8_t score;
};

static uint8_t band_lookup(const struct band *rows, size_t n, uint8_t above, double v)
{
	for (size_t i = 0; i < n; i++)
		if (v <= rows[i].upper)
			return rows[i].score;
	return above;
}

#define NROWS(a) (sizeof(a) / sizeof((a)[0]))

/* respiration rate /min: ≤8 →3, 9–11 →1, 12–20 →0, 21–24 →2, ≥25 →3 */
static const struct band rr_rows[] = { { 8, 3 }, { 11, 1 }, { 20, 0 }, { 24, 2 } };
/* SpO2 scale 1 %: ≤91 →3, 92–93 →2, 94–95 →1, ≥96 →0 */
static const struct band spo2_s1_rows[] = { { 91, 3 }, { 93, 2 }, { 95, 1 } };
/* SpO2 scale 2 %: ≤83 →3, 84–85 →2, 86–87 →1, 88–92 →0; ≥93: air →0,
 * oxygen 93–94 →1, 95–96 →2, ≥97 →3 */
static const struct band spo2_s2_rows[] = { { 83, 3 }, { 85, 2 }, { 87, 1 }, { 92, 0 } };
static const struct band spo2_s2_o2_rows[] = { { 94, 1 }, { 96, 2 } };
/* systolic mmHg: ≤90 →3, 91–100 →2, 101–110 →1, 111–219 →0, ≥220 →3 */
static const struct band sys_rows[] = { { 90, 3 }, { 100, 2 }, { 110, 1 }, { 219, 0 } };
/* pulse /min: ≤40 →3, 41–50 →1, 51–90 →0, 91–110 →1, 111–130 →2, ≥131 →3 */
static const struct band pulse_rows[] = {
	{ 40, 3 }, { 50, 1 }, { 90, 0 }, { 110, 1 }, { 130, 2 },
};
/* temperature in tenths of °C: ≤35.0 →3, 35.1–36.0 →1, 36.1–38.0 →0,
 * 38.1–39.0 →1, ≥39.1 →2 */
static const struct band temp_rows[] = {
	{ 350, 3 }, { 360, 1 }, { 380, 0 }, { 390, 1 },
};

enum mt_err mt_news2_subscore(enum mt_news2_param p, double value, bool scale2,
                              bool on_oxygen, uint8_t *score)
{
	if (!score || !isfinite(value))
		return MT_ERR_ARG;
	double v = round_half_up(value, 0.0);
	switch (p) {
	case MT_NEWS2_RESP_RATE:
		*score = band_lookup(rr_rows, NROWS(rr_rows), 3, v);
		return MT_OK;
	case MT_NEWS2_SPO2:
		if (!scale2) {
			*score = band_lookup(spo2_s1_rows, NROWS(spo2_s1_rows), 0, v);
		} else if (v <= 92 || !on_oxygen) {
			*score = band_lookup(spo2_s2_rows, NROWS(spo2_s2_rows), 0, v);
		} else {
			*score = band_lookup(spo2_s2_o2_rows, NROWS(spo2_s2_o2_rows), 3, v);
		}
		return MT_OK;
	case MT_NEWS2_SYSTOLIC:
		*score = band_lookup(sys_rows, NROWS(sys_rows), 3, v);
		return MT_OK;
	case MT_NEWS2_PULSE:
		*score = band_lookup(pulse_rows, NROWS(pulse_rows), 3, v);
		return MT_OK;
	case MT_NEWS2_TEMPERATURE:
		/* In tenths, with the documented tolerance for halves that
		 * arrive a hair short (38.05 as a float32 is 38.0499992…).
		 * (A value so large that × 10 overflows rounds to ±Inf, which
		 * still bands correctly.) */
		v = round_half_up(value * 10.0, MT_NEWS2_EPS);
		*score = band_lookup(temp_rows, NROWS(temp_rows), 2, v);
		return MT_OK;
	case MT_NEWS2_AIR_OXYGEN:
	case MT_NEWS2_CONSCIOUSNESS:
	case MT_NEWS2_PARAM_NONE:
		break;
	}
	return MT_ERR_ARG;
}

void mt_news2_input_init(struct mt_news2_input *in)
{
	memset(in, 0, sizeof(*in));
}

static const struct mt_news2_vital *vital_of(const struct mt_news2_input *in,
                                             enum mt_news2_param p)
{
	switch (p) {
	case MT_NEWS2_RESP_RATE: return &in->resp_rate;
	case MT_NEWS2_SPO2: return &in->spo2;
	case MT_NEWS2_SYSTOLIC: return &in->systolic;
	case MT_NEWS2_PULSE: return &in->pulse;
	case MT_NEWS2_TEMPERATURE: return &in->temperature;
	case MT_NEWS2_AIR_OXYGEN:
	case MT_NEWS2_CONSCIOUSNESS:
	case MT_NEWS2_PARAM_NONE:
		break;
	}
	return NULL;
}

enum mt_err mt_news2_input_set(struct mt_news2_input *in, enum mt_news2_param p,
                               double value)
{
	if (!in || !isfinite(value))
		return MT_ERR_ARG;
	struct mt_news2_vital *v;
	switch (p) {
	case MT_NEWS2_RESP_RATE: v = &in->resp_rate; break;
	case MT_NEWS2_SPO2: v = &in->spo2; break;
	case MT_NEWS2_SYSTOLIC: v = &in->systolic; break;
	case MT_NEWS2_PULSE: v = &in->pulse; break;
	case MT_NEWS2_TEMPERATURE: v = &in->temperature; break;
	default: return MT_ERR_ARG;
	}
	v->present = true;
	v->value = value;
	return MT_OK;
}

static void not_applicable(struct mt_news2_result *out)
{
	memset(out, 0, sizeof(*out));
	out->applicable = false;
	out->trigger = MT_NEWS2_TRIGGER_NONE;
	out->prio = 0;
	out->risk = "not applicable";
	out->monitoring = "not applicable";
}

static const enum mt_news2_param measured[] = {
	MT_NEWS2_RESP_RATE, MT_NEWS2_SPO2, MT_NEWS2_SYSTOLIC, MT_NEWS2_PULSE,
	MT_NEWS2_TEMPERATURE,
};

enum mt_err mt_news2_score(const struct mt_news2_input *in, struct mt_news2_result *out)
{
	if (!out)
		return MT_ERR_ARG;
	not_applicable(out);
	if (!in)
		return MT_ERR_ARG;

	/* Validate everything before looking at applicability. */
	for (size_t i = 0; i < NROWS(measured); i++) {
		const struct mt_news2_vital *v = vital_of(in, measured[i]);
		if (v->present && !isfinite(v->value))
			return MT_ERR_ARG;
	}
	if (in->oxygen != 0 && in->oxygen != 'A' && in->oxygen != 'O')
		return MT_ERR_ARG;
	if (in->consciousness != 0 && !memchr("ACVPU", in->consciousness, 5))
		return MT_ERR_ARG;
	if (in->not_applicable)
		return MT_OK;

	struct mt_news2_result r;
	memset(&r, 0, sizeof(r));
	r.applicable = true;

	bool on_oxygen = in->oxygen == 'O';
	if (in->oxygen == 0)
		r.assumed |= MT_NEWS2_BIT(MT_NEWS2_AIR_OXYGEN);
	r.sub[MT_NEWS2_AIR_OXYGEN] = on_oxygen ? 2 : 0;

	if (in->consciousness == 0)
		r.assumed |= MT_NEWS2_BIT(MT_NEWS2_CONSCIOUSNESS);
	r.sub[MT_NEWS2_CONSCIOUSNESS] =
		(in->consciousness == 0 || in->consciousness == 'A') ? 0 : 3;

	for (size_t i = 0; i < NROWS(measured); i++) {
		enum mt_news2_param p = measured[i];
		const struct mt_news2_vital *v = vital_of(in, p);
		if (!v->present) {
			r.missing |= (uint8_t)MT_NEWS2_BIT(p);
			continue;
		}
		enum mt_err e = mt_news2_subscore(p, v->value, in->spo2_scale2, on_oxygen,
		                                  &r.sub[p]);
		if (e != MT_OK)
			return e; /* cannot happen: checked above */
	}

	unsigned sum = 0;
	for (size_t p = 0; p < MT_NEWS2_PARAMS; p++) {
		sum += r.sub[p];
		if (r.sub[p] == 3)
			r.any_three = true;
	}
	r.aggregate = (uint8_t)sum;
	r.complete = r.missing == 0;

	if (sum >= 7) {
		r.trigger = MT_NEWS2_TRIGGER_HIGH;
		r.risk = "high";
		r.monitoring = "continuous";
	} else if (sum >= 5) {
		r.trigger = MT_NEWS2_TRIGGER_MEDIUM;
		r.risk = "medium";
		r.monitoring = "hourly";
	} else if (r.any_three) {
		r.trigger = MT_NEWS2_TRIGGER_MEDIUM;
		r.risk = "low-medium";
		r.monitoring = "hourly";
	} else if (sum >= 1) {
		r.trigger = MT_NEWS2_TRIGGER_LOW;
		r.risk = "low";
		r.monitoring = "4-6-hourly";
	} else {
		r.trigger = MT_NEWS2_TRIGGER_NONE;
		r.risk = "low";
		r.monitoring = "12-hourly";
	}
	r.prio = (unsigned)r.trigger;
	*out = r;
	return MT_OK;
}

enum mt_news2_param mt_news2_param_of_mdc(uint32_t mdc_code)
{
	switch (mdc_code) {
	case 151562: return MT_NEWS2_RESP_RATE;  /* MDC_RESP_RATE */
	case 150456: return MT_NEWS2_SPO2;       /* MDC_PULS_OXIM_SAT_O2 */
	case 150021: return MT_NEWS2_SYSTOLIC;   /* MDC_PRESS_BLD_NONINV_SYS */
	case 147842: return MT_NEWS2_PULSE;      /* MDC_ECG_HEART_RATE */
	case 149530: return MT_NEWS2_PULSE;      /* MDC_PULS_OXIM_PULS_RATE */
	case 150364: return MT_NEWS2_TEMPERATURE;/* MDC_TEMP_BODY */
	default: return MT_NEWS2_PARAM_NONE;
	}
}

const char *mt_news2_param_name(enum mt_news2_param p)
{
	switch (p) {
	case MT_NEWS2_RESP_RATE: return "resp_rate";
	case MT_NEWS2_SPO2: return "spo2";
	case MT_NEWS2_AIR_OXYGEN: return "air_oxygen";
	case MT_NEWS2_SYSTOLIC: return "systolic";
	case MT_NEWS2_PULSE: return "pulse";
	case MT_NEWS2_CONSCIOUSNESS: return "consciousness";
	case MT_NEWS2_TEMPERATURE: return "temperature";
	case MT_NEWS2_PARAM_NONE: break;
	}
	return "none";
}

const char *mt_news2_trigger_name(enum mt_news2_trigger t)
{
	switch (t) {
	case MT_NEWS2_TRIGGER_NONE: return "none";
	case MT_NEWS2_TRIGGER_LOW: return "low";
	case MT_NEWS2_TRIGGER_MEDIUM: return "medium";
	case MT_NEWS2_TRIGGER_HIGH: return "high";
	}
	return "?";
}
