/*
 * physio.h — the fleet simulator's virtual patient (docs/simulator.md):
 * plausible vital signs with scripted scenarios, for `medtrust-device sim`.
 *
 * A patient is a visible struct the caller allocates (one per virtual
 * device); nothing here allocates, reads a clock, touches a socket or calls
 * rand().  Time comes in as arguments (ms on the device's clock) and is
 * stretched by a time-acceleration factor into simulated physiological
 * time; randomness comes from a xoshiro256** generator inside the struct,
 * seeded by the caller, so the same seed and the same sequence of calls
 * give the same observations on every run.
 *
 * Each call to mt_physio_sample() advances the patient to `now_ms` and
 * writes the observations the device's class reports at that instant,
 * with the MDC codes, units and display precision of clinical.md §1, as
 * struct mt_obs ready for a vitals message (protocol §5).  A quantity the
 * device has no value for this tick (sensor dropout, an episodic
 * measurement not due) is simply absent from the output.
 *
 * Device alarms are edge-triggered with hysteresis: a limit crossing
 * queues one alarm, which mt_physio_alarm() hands out once, and the same
 * alarm cannot be raised again until the value has come back past the
 * clearing limit.  The code table is in docs/simulator.md.
 */
#ifndef MT_AGENT_PHYSIO_H
#define MT_AGENT_PHYSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medtrust/mt_err.h"
#include "medtrust/mt_message.h"

/* Scenarios.  MT_PHYSIO_MIXED is a fleet-level choice: it never stays in a
 * patient (mt_physio_scenario_for() resolves it). */
enum mt_physio_scenario {
	MT_PHYSIO_STABLE = 0,
	MT_PHYSIO_SEPSIS,
	MT_PHYSIO_HYPOXIA,
	MT_PHYSIO_DROPOUT,
	MT_PHYSIO_LOW_BATTERY,
	MT_PHYSIO_MIXED,
};

/* Device classes: which quantities a device reports (docs/simulator.md). */
enum mt_physio_class {
	MT_PHYSIO_BEDSIDE = 0, /* "bedside-monitor": ECG HR, SpO2, pulse, RR, temp, NIBP, ECG II */
	MT_PHYSIO_WEARABLE,    /* "wearable": pulse, SpO2, RR, temp */
	MT_PHYSIO_GLUCOSE,     /* "glucose-meter": capillary glucose, hourly */
	MT_PHYSIO_INHALER,     /* "smart-inhaler": doses dispensed */
};

/* The most observations one mt_physio_sample() call writes. */
#define MT_PHYSIO_OBS_MAX 8
/* Alarm text bound, NUL included (well inside protocol §5's 256 bytes). */
#define MT_PHYSIO_TEXT_MAX 64
/* ECG lead II waveform: 250 Hz, 5 µV a step. */
#define MT_PHYSIO_ECG_PERIOD_US 4000u
#define MT_PHYSIO_ECG_SCALE_MV 0.005

/* Alarm codes (medtrust's own table, docs/simulator.md: clinical.md gives
 * only the generic MDC_EVT_ALARM).  1xxx physiological, 11xx technical. */
#define MT_PHYSIO_ALARM_SPO2_LOW 1001u   /* SpO2 < 85 %, clears ≥ 90 %, high */
#define MT_PHYSIO_ALARM_HR_HIGH 1002u    /* HR > 140 /min, clears ≤ 130, high */
#define MT_PHYSIO_ALARM_HR_LOW 1003u     /* HR < 40 /min, clears ≥ 45, high */
#define MT_PHYSIO_ALARM_RR_HIGH 1004u    /* RR > 30 /min, clears ≤ 26, medium */
#define MT_PHYSIO_ALARM_BATTERY 1101u    /* battery ≤ 10 %, clears ≥ 20 %, low */
#define MT_PHYSIO_ALARM_SENSOR_OFF 1102u /* a sensor stopped reporting, low */

/* ---- the patient (fields are the module's; read them, do not write) ---- */

struct mt_physio_rng {
	uint64_t s[4]; /* xoshiro256** state */
};

/* One slowly drifting quantity: personal baseline plus an Ornstein–
 * Uhlenbeck drift clamped to ±limit. */
struct mt_physio_drift {
	double base, x, sigma, limit, tau_s;
};

enum {
	MT_PHYSIO__HR, MT_PHYSIO__RR, MT_PHYSIO__SPO2, MT_PHYSIO__SBP, MT_PHYSIO__DBP,
	MT_PHYSIO__TEMP, MT_PHYSIO__GLU, MT_PHYSIO__NQ
};
/* Sensor groups: what drops out together. */
enum {
	MT_PHYSIO__G_OXI, MT_PHYSIO__G_ECG, MT_PHYSIO__G_RESP, MT_PHYSIO__G_TEMP,
	MT_PHYSIO__G_NIBP, MT_PHYSIO__G_GLU, MT_PHYSIO__G_DOSE, MT_PHYSIO__NG
};
/* Alarm slots: four physiological, battery, and sensor-off for each of the
 * four continuous groups (MT_PHYSIO__A_OFF + group). */
enum {
	MT_PHYSIO__A_SPO2_LOW, MT_PHYSIO__A_HR_HIGH, MT_PHYSIO__A_HR_LOW, MT_PHYSIO__A_RR_HIGH,
	MT_PHYSIO__A_BATTERY, MT_PHYSIO__A_OFF, MT_PHYSIO__NALARM = MT_PHYSIO__A_OFF + 4
};

struct mt_physio_patient {
	enum mt_physio_scenario scenario;
	enum mt_physio_class device_class;
	double time_scale;        /* simulated s per device s */
	uint64_t start_ms;        /* device time of simulated t = 0 */
	uint64_t tick_ms;         /* device time of the last sample (start_ms before) */
	double t_s;               /* simulated seconds since start */
	uint64_t ticks;           /* mt_physio_sample() calls that advanced */
	struct mt_physio_rng rng; /* physiology and schedules */
	struct mt_physio_rng ecg_rng;
	struct mt_physio_drift q[MT_PHYSIO__NQ];
	double now[MT_PHYSIO__NQ]; /* the patient's true values at t_s */
	double hr_shown;           /* last reported heart (or pulse) rate, for the ECG */
	struct {                   /* sepsis: onset s(t) = smoothstep over [delay, delay+dur] */
		double delay_s, dur_s;
		double hr, rr, spo2, sbp, dbp, temp, glu; /* targets */
	} sepsis;
	struct { /* hypoxia: desaturation episodes */
		double next_s, end_s, start_s, nadir, hr_rise, rr_rise;
		uint32_t episodes; /* started so far */
	} hyp;
	struct { /* dropout: one continuous sensor group off at a time */
		double next_s, until_s;
		int group;         /* −1: none off */
		uint32_t periods;  /* started so far */
	} drop;
	double next_nibp_s, next_glu_s, next_dose_s, next_rescue_s;
	bool hyp_rescue;   /* an episode began since the last dose check */
	double battery0, battery_slope, battery_floor; /* % , %/s, % */
	/* alarms: active (past the raise limit, not yet cleared), pending (raised,
	 * not yet handed out), with the value that raised each */
	uint32_t active, pending;
	struct {
		uint32_t code, unit;
		double value;
		uint8_t places;
		bool has_obs;
		uint64_t at_ms;
		char what[24];
	} src[MT_PHYSIO__NALARM];
};

/* One alarm, for the `alrt` map of an alert message (protocol §5 key 8)
 * and its optional observations (key 5). */
struct mt_physio_alarm {
	uint32_t code;                 /* table above */
	uint8_t prio;                  /* 1 low, 2 medium, 3 high */
	char text[MT_PHYSIO_TEXT_MAX]; /* NUL-terminated ASCII */
	struct mt_obs obs[1];          /* the reading that crossed the limit */
	size_t n_obs;                  /* 1 physiological, 0 technical */
};

/* ---- names ---------------------------------------------------------------- */

/* "stable" "sepsis" "hypoxia" "dropout" "low-battery" "mixed".  Parse: true
 * and *s set for a known name, false (untouched) otherwise. */
MT_NODISCARD bool mt_physio_scenario_parse(const char *name, enum mt_physio_scenario *s);
const char *mt_physio_scenario_name(enum mt_physio_scenario s); /* "?" if unknown */
/* "bedside-monitor" "wearable" "glucose-meter" "smart-inhaler". */
MT_NODISCARD bool mt_physio_class_parse(const char *name, enum mt_physio_class *c);
const char *mt_physio_class_name(enum mt_physio_class c);

/* The scenario of the index-th device of a fleet run under `s`: `s` itself
 * unless it is MT_PHYSIO_MIXED, which deals out, in every ten consecutive
 * indices, six stable and one each of sepsis, hypoxia, dropout and
 * low-battery (index 1 sepsis, 3 hypoxia, 5 dropout, 7 low-battery). */
enum mt_physio_scenario mt_physio_scenario_for(enum mt_physio_scenario s, uint64_t index);

/* ---- the patient ------------------------------------------------------------ */

/* Set up `p` (all of it; no other state is kept anywhere).  `seed` decides
 * the patient: personal baselines (the same for a given seed whatever the
 * scenario), drift, noise and event schedules.  `time_scale` is simulated
 * seconds per device second (1: real time; 30 shows a 30-minute sepsis
 * onset in a minute); values ≤ 0 or not finite count as 1.  `start_ms` is
 * the device time at which the simulation begins.  MT_PHYSIO_MIXED is
 * resolved as mt_physio_scenario_for(MT_PHYSIO_MIXED, seed). */
void mt_physio_init(struct mt_physio_patient *p, enum mt_physio_scenario s,
                    enum mt_physio_class c, uint64_t seed, double time_scale,
                    uint64_t start_ms);

/* Sepsis timing in simulated seconds (defaults: healthy for 5 min, then a
 * 20–40 min onset drawn from the seed).  Call after init, before the first
 * sample; no effect in other scenarios.  A zero duration counts as 1 s. */
void mt_physio_set_onset(struct mt_physio_patient *p, uint32_t delay_s, uint32_t duration_s);

/* Advance to device time `now_ms` (earlier than the previous call: time
 * stands still) and write this tick's observations to obs[0..*n), each
 * with t = now_ms − batch_ts_ms (0 when batch_ts_ms is earlier: protocol
 * §5 wants t ≤ 0).  *n may be 0 — then there is nothing to send.
 * Errors: MT_ERR_BUFFER when cap < MT_PHYSIO_OBS_MAX (nothing advanced,
 * *n = 0, so the caller can flush a batch and call again). */
MT_NODISCARD enum mt_err mt_physio_sample(struct mt_physio_patient *p, uint64_t now_ms,
                                          uint64_t batch_ts_ms, struct mt_obs *obs,
                                          size_t cap, size_t *n);

/* Hand out the next pending alarm (highest priority first), raised by an
 * earlier mt_physio_sample(): true and *a filled (obs t relative to
 * batch_ts_ms, as above), or false when none is pending.  Each limit
 * crossing is handed out exactly once. */
MT_NODISCARD bool mt_physio_alarm(struct mt_physio_patient *p, uint64_t batch_ts_ms,
                                  struct mt_physio_alarm *a);

/* Battery level in percent, 0..100, never rising (mains-powered bedside
 * monitors stay at 100 except in the low-battery scenario). */
uint8_t mt_physio_battery(const struct mt_physio_patient *p);

/* An ECG lead II strip of n samples (250 Hz) ending at the last sample
 * time, drawn for the last reported heart rate: raw samples to
 * samples[0..n), encoded into bytes[0..bytes_cap) (5 × n bytes always
 * suffice), and `o` set to the waveform observation pointing at `bytes`
 * (valid while `bytes` lives), t relative to batch_ts_ms.  Samples stay
 * within −1.0 … +2.0 mV.  Errors: MT_ERR_ARG (n = 0 or above
 * MT_WAVE_MAX_SAMPLES), MT_ERR_UNSUPPORTED (not a bedside monitor),
 * MT_ERR_NOT_FOUND (ECG leads off, or no sample taken yet: no strip this
 * tick), MT_ERR_BUFFER (bytes_cap too small). */
MT_NODISCARD enum mt_err mt_physio_ecg(struct mt_physio_patient *p, uint64_t batch_ts_ms,
                                       int32_t *samples, uint32_t n, uint8_t *bytes,
                                       size_t bytes_cap, struct mt_obs *o);

#endif
