/*
 * mt_news2.h — the National Early Warning Score 2 (Royal College of
 * Physicians, 2017) exactly as spec/clinical.md §2 charts it, and the
 * medtrust alert priority the hub derives from it.
 *
 * Seven parameters, each scored 0–3 by the chart: respiration rate, SpO2
 * (scale 1, or scale 2 for the clinician-designated hypercapnic patients),
 * air or oxygen, systolic blood pressure, pulse, consciousness (ACVPU) and
 * temperature.  The aggregate is the sum, 0–20.  Five parameters are
 * measured (they arrive as readings); air/oxygen and consciousness come
 * from the patient record or a device that reports them.
 *
 * Invariants the scorer keeps, and why:
 *  - Values between the chart's bands are rounded half up to its resolution
 *    before banding: whole numbers for every measured parameter, 0.1 °C for
 *    temperature (a project decision, clinical.md §2).  So RR 20.5 → 21
 *    (score 2), 38.05 °C → 38.1 (score 1), 35.04 °C → 35.0 (score 3).
 *    Temperature is rounded in tenths with a tolerance of MT_NEWS2_EPS
 *    tenths, so that 38.05 sent as a float32 (38.0499992…) still rounds up
 *    as a reader of the chart expects.
 *  - A non-finite value (NaN, ±Inf) is refused with MT_ERR_ARG, never
 *    scored, even for a patient to whom NEWS2 does not apply.
 *  - A missing measured parameter scores nothing: the aggregate is the sum
 *    over what is present, `missing` says which are absent and `complete`
 *    is false.  Sub-scores are never negative, so an incomplete aggregate is
 *    a lower bound of the true one: the trigger may rise when the missing
 *    values arrive, never fall.  The caller decides what to show.
 *  - Unknown oxygen (0) is scored as air, unknown consciousness (0) as
 *    alert — the chart's assumption — and the `assumed` mask says so.
 *    They are not "missing": they are scored.
 *  - A patient to whom NEWS2 does not apply (under 16, pregnant) gets no
 *    score: `applicable` is false, every number is 0, the trigger is NONE
 *    and the texts say "not applicable".
 *
 * Pure: no I/O, no allocation, no global state; safe from any thread.
 * Every string returned is static.
 */
#ifndef MT_NEWS2_H
#define MT_NEWS2_H

#include <stdbool.h>
#include <stdint.h>

#include "mt_err.h"

/* The seven parameters, in the chart's row order.  The value indexes
 * mt_news2_result.sub and is the bit number in the masks. */
enum mt_news2_param {
	MT_NEWS2_RESP_RATE = 0,     /* breaths /min */
	MT_NEWS2_SPO2 = 1,          /* % */
	MT_NEWS2_AIR_OXYGEN = 2,    /* from the patient record */
	MT_NEWS2_SYSTOLIC = 3,      /* mmHg */
	MT_NEWS2_PULSE = 4,         /* beats /min */
	MT_NEWS2_CONSCIOUSNESS = 5, /* ACVPU, from the patient record */
	MT_NEWS2_TEMPERATURE = 6,   /* °C */
	MT_NEWS2_PARAM_NONE = 7,    /* not a NEWS2 parameter */
};
#define MT_NEWS2_PARAMS 7
#define MT_NEWS2_BIT(p) (1u << (unsigned)(p))

/* Tolerance of the temperature rounding, in tenths of a degree (so
 * 1e-5 °C): a value within it below a half-tenth counts as the half.
 * Decimal text needs none (38.05 × 10 is exactly 380.5 in binary64), but a
 * device that measures in single precision sends 38.05 as the float32
 * 38.0499992…, 7.6e-6 tenths short of the half; the worst float32 error
 * over 20–45 °C is 1.6e-5 tenths.  1e-4 tenths covers it with room and is
 * a thousand times finer than any thermometer reports.  Whole-number
 * parameters need no tolerance: their halves are exact in float32 and
 * binary64 alike. */
#define MT_NEWS2_EPS 1e-4

/* One measured value: `present` false means missing (value ignored). */
struct mt_news2_vital {
	bool present;
	double value;
};

/* The scorer's input.  Zero-initialised (or mt_news2_input_init) means:
 * everything missing, scale 1, oxygen and consciousness unknown,
 * applicable. */
struct mt_news2_input {
	struct mt_news2_vital resp_rate;   /* /min */
	struct mt_news2_vital spo2;        /* % */
	struct mt_news2_vital systolic;    /* mmHg */
	struct mt_news2_vital pulse;       /* /min (ECG heart rate or oximeter pulse) */
	struct mt_news2_vital temperature; /* °C */
	bool spo2_scale2;    /* clinician-set: hypercapnic respiratory failure */
	char oxygen;         /* 'A' air, 'O' oxygen, 0 unknown (scored as air) */
	char consciousness;  /* 'A','C','V','P','U', 0 unknown (scored as A) */
	bool not_applicable; /* under 16 or pregnant: no score */
};

enum mt_news2_trigger {
	MT_NEWS2_TRIGGER_NONE = 0,   /* aggregate 0 (or not applicable) */
	MT_NEWS2_TRIGGER_LOW = 1,    /* aggregate 1–4 */
	MT_NEWS2_TRIGGER_MEDIUM = 2, /* a single parameter 3, or aggregate 5–6 */
	MT_NEWS2_TRIGGER_HIGH = 3,   /* aggregate ≥ 7 */
};

struct mt_news2_result {
	bool applicable;         /* false: not computed, all below 0/NONE */
	bool complete;           /* all five measured parameters present */
	uint8_t sub[MT_NEWS2_PARAMS]; /* 0–3 each; 0 for a missing one */
	uint8_t aggregate;       /* 0–20, over the parameters present */
	bool any_three;          /* some single parameter scored 3 */
	uint8_t missing;         /* MT_NEWS2_BIT(p) per missing measured p */
	uint8_t assumed;         /* MT_NEWS2_BIT(AIR_OXYGEN / CONSCIOUSNESS) */
	enum mt_news2_trigger trigger;
	/* The medtrust alert priority, the same scale as mt_rule.prio:
	 * 0 none, 1 low (advisory), 2 medium, 3 high.  Equals `trigger`. */
	unsigned prio;
	/* Static ASCII text: "low", "low-medium", "medium", "high" (or "not
	 * applicable"). */
	const char *risk;
	/* Static ASCII text of the minimum monitoring frequency: "12-hourly",
	 * "4-6-hourly", "hourly", "continuous" (or "not applicable"). */
	const char *monitoring;
};

/* Everything missing, scale 1, oxygen and consciousness unknown. */
void mt_news2_input_init(struct mt_news2_input *in);

/* Set measured parameter `p` (RESP_RATE, SPO2, SYSTOLIC, PULSE,
 * TEMPERATURE) present with `value`.  MT_ERR_ARG for another `p` or a
 * non-finite value (the input is then unchanged). */
MT_NODISCARD enum mt_err mt_news2_input_set(struct mt_news2_input *in,
                                            enum mt_news2_param p, double value);

/* Score `in` into `*out` (which is always fully written: on an error it
 * holds the not-applicable result).  MT_OK, including for a patient to whom
 * NEWS2 does not apply (out->applicable false).  MT_ERR_ARG: NULL pointer,
 * a present value that is NaN or infinite, an oxygen letter other than
 * 'A'/'O'/0, a consciousness letter other than A/C/V/P/U/0 (upper case
 * only). */
MT_NODISCARD enum mt_err mt_news2_score(const struct mt_news2_input *in,
                                        struct mt_news2_result *out);

/* The sub-score (0–3) of one measured value, rounded as above: `p` one of
 * the five measured parameters; `scale2` and `on_oxygen` matter only for
 * SPO2.  MT_ERR_ARG for another `p`, a non-finite value or NULL `score`. */
MT_NODISCARD enum mt_err mt_news2_subscore(enum mt_news2_param p, double value,
                                           bool scale2, bool on_oxygen,
                                           uint8_t *score);

/* The NEWS2 parameter an MDC code feeds (clinical.md §1): 151562 → RESP_RATE,
 * 150456 → SPO2, 150021 → SYSTOLIC, 147842 (ECG heart rate) and 149530
 * (oximeter pulse rate) → PULSE, 150364 → TEMPERATURE, anything else →
 * PARAM_NONE.  When both pulse sources report, the caller passes the most
 * recent value (docs/news2.md). */
enum mt_news2_param mt_news2_param_of_mdc(uint32_t mdc_code);

/* "resp_rate", "spo2", "air_oxygen", "systolic", "pulse", "consciousness",
 * "temperature"; "none" for PARAM_NONE and any other value. */
const char *mt_news2_param_name(enum mt_news2_param p);

/* "none", "low", "medium", "high"; "?" for any other value. */
const char *mt_news2_trigger_name(enum mt_news2_trigger t);

#endif
