/*
 * mt_rules.h — per-patient threshold rules: "this quantity above (or below)
 * a limit for at least D seconds raises an alarm of priority P", the state
 * machine that evaluates one rule for one patient, and the rule's one-line
 * text form for the CLI and the configuration (docs/news2.md).
 *
 * A rule names an MDC code (clinical.md §1), a direction, a limit, a
 * hysteresis, a hold time, a clear time and a priority (1 low, 2 medium,
 * 3 high; IEC 60601-1-8, clinical.md §3).
 *
 * The state machine (mt_rule_feed), one struct mt_rule_state per patient ×
 * rule, fed the rule's readings with their times in milliseconds:
 *  - breach: value > limit (ABOVE) or value < limit (BELOW), strictly; the
 *    limit itself is not a breach.
 *  - raise: the first sample at which every sample since the first
 *    breaching one has breached and t − t(first breaching) ≥ hold_ms.  With
 *    hold_ms 0 the first breaching sample raises.  One sample that does not
 *    breach restarts the wait.
 *  - clear (only once raised): the value is back past the limit by the
 *    hysteresis — value ≤ limit − hysteresis (ABOVE) or value ≥ limit +
 *    hysteresis (BELOW) — at every sample for at least clear_ms, timed the
 *    same way.  A sample in the band between (or breaching again) restarts
 *    the wait.  With hysteresis 0 and clear_ms 0, the first sample that no
 *    longer breaches clears.
 *  - a sample older than the newest one seen is ignored (NONE, state
 *    unchanged): readings arrive out of order from store-and-forward queues
 *    and the state machine judges the present.  A sample of the same
 *    millisecond as the newest is taken.  A non-finite value is ignored.
 *  - events are edges: RAISE once per episode, then CLEAR once.
 *  Time is whatever monotone ms clock the caller uses (the readings' own
 *  times); the machine never reads a clock, and only advances when fed.
 *
 * Pure: no I/O, no allocation, no global state.  A rule is immutable once
 * validated; a state is owned by the caller and used by one thread at a
 * time.
 */
#ifndef MT_RULES_H
#define MT_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"

enum mt_rule_dir { MT_RULE_ABOVE = 0, MT_RULE_BELOW = 1 };

struct mt_rule {
	uint32_t mdc_code;  /* non-zero */
	enum mt_rule_dir dir;
	double limit;       /* finite, in the code's unit (clinical.md §1) */
	double hysteresis;  /* finite, ≥ 0 */
	uint32_t hold_ms;   /* breach must last this long before RAISE */
	uint32_t clear_ms;  /* recovery must last this long before CLEAR */
	unsigned prio;      /* 1 low, 2 medium, 3 high */
};

#define MT_RULE_PRIO_LOW 1u
#define MT_RULE_PRIO_MEDIUM 2u
#define MT_RULE_PRIO_HIGH 3u

/* The longest rule text mt_rule_parse reads, and a buffer mt_rule_format
 * always fits in (with its NUL). */
#define MT_RULE_TEXT_MAX 160

/* Per patient × rule.  Zero-initialised (or mt_rule_state_init) = nothing
 * seen, not raised. */
struct mt_rule_state {
	bool seen;         /* a sample was taken */
	uint64_t last_t;   /* time of the newest sample taken */
	bool raised;       /* the alarm is on (RAISE given, CLEAR not yet) */
	bool pending;      /* waiting: for hold (not raised) or clear (raised) */
	uint64_t since;    /* time of the first sample of that wait */
};

enum mt_rule_event { MT_RULE_NONE = 0, MT_RULE_RAISE = 1, MT_RULE_CLEAR = 2 };

void mt_rule_state_init(struct mt_rule_state *st);

/* MT_OK when `r` is a rule mt_rule_feed may run: mdc_code non-zero, dir
 * ABOVE or BELOW, limit finite, hysteresis finite and ≥ 0, prio 1–3.
 * MT_ERR_ARG otherwise (and for NULL). */
MT_NODISCARD enum mt_err mt_rule_validate(const struct mt_rule *r);

/* Feed one sample (t_ms, value) of the rule's quantity; returns the edge it
 * causes.  `r` must be valid (mt_rule_validate); an invalid rule or NULL
 * arguments give NONE and leave the state unchanged. */
enum mt_rule_event mt_rule_feed(const struct mt_rule *r, struct mt_rule_state *st,
                                uint64_t t_ms, double value);

/* Parse one rule from text (docs/news2.md, "Rule text"):
 *
 *     <code> <op> <limit> [for <dur>] [hyst <number>] [clear <dur>] prio <p>
 *
 * e.g. "150456 < 90 for 30s hyst 2 prio high" or "147842>130 for 1min prio
 * medium".  <code> a decimal MDC code 1–4294967295 without leading zeros;
 * <op> '<' (BELOW) or '>' (ABOVE); numbers -?digits[.digits][e[+-]digits]
 * (no inf, nan, hex or leading '+'); <dur> digits followed at once by ms,
 * s, min or h, at most 4294967295 ms; <p> low, medium, high or 1, 2, 3.
 * The clauses come in any order, each at most once; prio is required.
 * Blanks (space, tab) separate tokens and may surround <op>; keywords are
 * lower case.  The text is at most MT_RULE_TEXT_MAX bytes.
 *
 * MT_OK and `*out` set; MT_ERR_ARG on anything else (out untouched), with
 * `*why` (when `why` is not NULL) a static sentence naming the fault. */
MT_NODISCARD enum mt_err mt_rule_parse(const char *text, struct mt_rule *out,
                                       const char **why);

/* The canonical text of `r`, which mt_rule_parse reads back to the same rule
 * (every double exactly): "<code><op><limit>[ for <dur>][ hyst <h>][ clear
 * <dur>] prio <low|medium|high>", zero clauses left out, durations in the
 * largest of h, min, s, ms that is exact, numbers in the shortest plain
 * decimal that reads back exactly (%g form only outside 1e-4..1e17).
 * At most 112 bytes.  MT_ERR_ARG for an invalid rule
 * or NULL; MT_ERR_BUFFER when `cap` is too small (MT_RULE_TEXT_MAX always
 * suffices); buf is then an empty string when cap > 0. */
MT_NODISCARD enum mt_err mt_rule_format(const struct mt_rule *r, char *buf, size_t cap);

/* The default rule set for a new patient (docs/news2.md says why each):
 *   SpO2 150456 < 90 for 30 s, hyst 2, medium; < 85 for 10 s, hyst 2, high
 *   heart rate 147842 and pulse rate 149530: > 130 for 30 s, hyst 5,
 *     medium; < 40 for 10 s, hyst 5, high
 *   NIBP systolic 150021 < 90 at once (episodic), hyst 5, medium
 * all with clear_ms 0.  Writes MT_RULES_DEFAULT_COUNT rules to out and sets
 * *n; MT_ERR_BUFFER (nothing written, *n the count needed) when cap is
 * smaller (out may then be NULL: cap 0 asks for the count); MT_ERR_ARG
 * for a NULL n, or a NULL out with cap > 0. */
#define MT_RULES_DEFAULT_COUNT 7
MT_NODISCARD enum mt_err mt_rules_default(struct mt_rule *out, size_t cap, size_t *n);

#endif
