/*
 * rules.c — per-patient threshold rules (mt_rules.h, docs/news2.md).
 *
 * The state machine has two phases, "not raised" and "raised", and in each
 * at most one wait (pending, since): for the hold time of a breach, or for
 * the clear time of a recovery.  A wait starts at the first sample that
 * meets its condition and ends, successfully, at the first later (or same)
 * sample that still meets it with t − since ≥ the time asked; any sample
 * that does not meet it cancels the wait.  So the condition has held at
 * every sample across the whole interval — the only kind of "continuously"
 * that sampled data can show.  Samples older than the newest taken are
 * ignored, which keeps `t − since` from ever wrapping.
 *
 * The text form is parsed by hand over a bounded string, token by token,
 * without strtok (banned) and without trusting strtod's leniency: each
 * number is first matched against the strict grammar in mt_rules.h and
 * only that span is given to strtod (C locale, as everywhere in
 * medtrust).  Formatting prints each double in the shortest plain decimal
 * (or, far from clinical magnitudes, %g) that reads back to the same value,
 * so parse(format(r)) == r bit for bit.
 */
#include "medtrust/mt_rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mt_rule_state_init(struct mt_rule_state *st)
{
	memset(st, 0, sizeof(*st));
}

enum mt_err mt_rule_validate(const struct mt_rule *r)
{
	if (!r || r->mdc_code == 0)
		return MT_ERR_ARG;
	if (r->dir != MT_RULE_ABOVE && r->dir != MT_RULE_BELOW)
		return MT_ERR_ARG;
	if (!isfinite(r->limit) || !isfinite(r->hysteresis) || !(r->hysteresis >= 0))
		return MT_ERR_ARG;
	if (r->prio < MT_RULE_PRIO_LOW || r->prio > MT_RULE_PRIO_HIGH)
		return MT_ERR_ARG;
	return MT_OK;
}

static bool breaches(const struct mt_rule *r, double v)
{
	return r->dir == MT_RULE_ABOVE ? v > r->limit : v < r->limit;
}

static bool recovered(const struct mt_rule *r, double v)
{
	return r->dir == MT_RULE_ABOVE ? v <= r->limit - r->hysteresis
	                               : v >= r->limit + r->hysteresis;
}

enum mt_rule_event mt_rule_feed(const struct mt_rule *r, struct mt_rule_state *st,
                                uint64_t t_ms, double value)
{
	if (!st || mt_rule_validate(r) != MT_OK || !isfinite(value))
		return MT_RULE_NONE;
	if (st->seen && t_ms < st->last_t)
		return MT_RULE_NONE; /* out of order: the present is already judged */
	st->seen = true;
	st->last_t = t_ms;

	bool meets = st->raised ? recovered(r, value) : breaches(r, value);
	if (!meets) {
		st->pending = false;
		return MT_RULE_NONE;
	}
	if (!st->pending) {
		st->pending = true;
		st->since = t_ms;
	}
	uint32_t need = st->raised ? r->clear_ms : r->hold_ms;
	if (t_ms - st->since < need)
		return MT_RULE_NONE;
	st->pending = false;
	st->raised = !st->raised;
	return st->raised ? MT_RULE_RAISE : MT_RULE_CLEAR;
}

/* ---- text form ---------------------------------------------------------- */

struct lex {
	const char *p, *end;
	const char *why;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t skip_blanks(struct lex *lx)
{
	size_t n = 0;
	while (lx->p < lx->end && is_blank(*lx->p)) {
		lx->p++;
		n++;
	}
	return n;
}

static bool fail(struct lex *lx, const char *why)
{
	if (!lx->why)
		lx->why = why;
	return false;
}

static size_t digits(const char *p, const char *end)
{
	size_t n = 0;
	while (p + n < end && is_digit(p[n]))
		n++;
	return n;
}

/* Unsigned decimal, no sign, no leading zero (except "0" itself), ≤ max. */
static bool lex_uint(struct lex *lx, uint64_t max, uint64_t *out, const char *why)
{
	size_t n = digits(lx->p, lx->end);
	if (n == 0)
		return fail(lx, why);
	if (n > 1 && lx->p[0] == '0')
		return fail(lx, "leading zero in a number");
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(lx->p[i] - '0');
		if (v > (max - d) / 10)
			return fail(lx, "number too large");
		v = v * 10 + d;
	}
	lx->p += n;
	*out = v;
	return true;
}

/* -?digits[.digits][(e|E)[+-]digits], given to strtod once matched. */
static bool lex_number(struct lex *lx, double *out)
{
	const char *s = lx->p, *q = s;
	if (q < lx->end && *q == '-')
		q++;
	size_t n = digits(q, lx->end);
	if (n == 0)
		return fail(lx, "a number was expected");
	q += n;
	if (q < lx->end && *q == '.') {
		n = digits(q + 1, lx->end);
		if (n == 0)
			return fail(lx, "digits must follow the decimal point");
		q += 1 + n;
	}
	if (q < lx->end && (*q == 'e' || *q == 'E')) {
		const char *x = q + 1;
		if (x < lx->end && (*x == '+' || *x == '-'))
			x++;
		n = digits(x, lx->end);
		if (n == 0)
			return fail(lx, "digits must follow the exponent");
		q = x + n;
	}
	char tmp[MT_RULE_TEXT_MAX + 1];
	size_t len = (size_t)(q - s);
	if (len >= sizeof(tmp))
		return fail(lx, "number too long");
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	char *e = NULL;
	double v = strtod(tmp, &e);
	if (e != tmp + len)
		return fail(lx, "number not readable");
	/* Overflow gives ±HUGE_VAL; an underflow to a subnormal or zero is
	 * a finite number and kept. */
	if (!isfinite(v))
		return fail(lx, "number out of range");
	lx->p = q;
	*out = v;
	return true;
}

/* A keyword or unit: the longest run of [a-z0-9]. */
static size_t word_len(const char *p, const char *end)
{
	size_t n = 0;
	while (p + n < end && ((p[n] >= 'a' && p[n] <= 'z') || is_digit(p[n])))
		n++;
	return n;
}

static bool word_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(p, w, n) == 0;
}

/* digits then ms|s|min|h, no blank between; result ≤ UINT32_MAX ms. */
static bool lex_duration(struct lex *lx, uint32_t *out)
{
	uint64_t v;
	if (!lex_uint(lx, UINT32_MAX, &v, "a duration (e.g. 30s) was expected"))
		return false;
	size_t n = 0;
	while (lx->p + n < lx->end && lx->p[n] >= 'a' && lx->p[n] <= 'z')
		n++;
	uint64_t mult;
	if (word_is(lx->p, n, "ms"))
		mult = 1;
	else if (word_is(lx->p, n, "s"))
		mult = 1000;
	else if (word_is(lx->p, n, "min"))
		mult = 60000;
	else if (word_is(lx->p, n, "h"))
		mult = 3600000;
	else
		return fail(lx, "a duration needs a unit: ms, s, min or h");
	if (v > UINT32_MAX / mult)
		return fail(lx, "duration too long (at most 4294967295 ms)");
	lx->p += n;
	*out = (uint32_t)(v * mult);
	return true;
}

static bool lex_prio(struct lex *lx, unsigned *out)
{
	size_t n = word_len(lx->p, lx->end);
	static const struct {
		const char *w;
		unsigned prio;
	} names[] = {
		{ "low", 1 }, { "medium", 2 }, { "high", 3 }, { "1", 1 }, { "2", 2 }, { "3", 3 },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (word_is(lx->p, n, names[i].w)) {
			lx->p += n;
			*out = names[i].prio;
			return true;
		}
	}
	return fail(lx, "priority must be low, medium, high, 1, 2 or 3");
}

static bool parse_rule(struct lex *lx, struct mt_rule *r)
{
	uint64_t code;
	skip_blanks(lx);
	if (!lex_uint(lx, UINT32_MAX, &code, "the rule must start with an MDC code"))
		return false;
	if (code == 0)
		return fail(lx, "MDC code 0 is not a quantity");
	r->mdc_code = (uint32_t)code;
	skip_blanks(lx);
	if (lx->p < lx->end && *lx->p == '<')
		r->dir = MT_RULE_BELOW;
	else if (lx->p < lx->end && *lx->p == '>')
		r->dir = MT_RULE_ABOVE;
	else
		return fail(lx, "'<' or '>' must follow the MDC code");
	lx->p++;
	skip_blanks(lx);
	if (!lex_number(lx, &r->limit))
		return false;

	bool have_for = false, have_hyst = false, have_clear = false, have_prio = false;
	for (;;) {
		size_t gap = skip_blanks(lx);
		if (lx->p == lx->end)
			break;
		if (gap == 0)
			return fail(lx, "a blank must separate the clauses");
		size_t n = word_len(lx->p, lx->end);
		const char *kw = lx->p;
		lx->p += n;
		if (skip_blanks(lx) == 0 || lx->p == lx->end)
			return fail(lx, n ? "a value must follow the keyword"
			                  : "unexpected character");
		bool *seen;
		bool ok;
		if (word_is(kw, n, "for")) {
			seen = &have_for;
			ok = lex_duration(lx, &r->hold_ms);
		} else if (word_is(kw, n, "hyst")) {
			seen = &have_hyst;
			ok = lex_number(lx, &r->hysteresis);
			if (ok && !(r->hysteresis >= 0))
				ok = fail(lx, "hysteresis must not be negative");
		} else if (word_is(kw, n, "clear")) {
			seen = &have_clear;
			ok = lex_duration(lx, &r->clear_ms);
		} else if (word_is(kw, n, "prio")) {
			seen = &have_prio;
			ok = lex_prio(lx, &r->prio);
		} else {
			return fail(lx, "unknown clause (for, hyst, clear, prio)");
		}
		if (!ok)
			return false;
		if (*seen)
			return fail(lx, "a clause is given twice");
		*seen = true;
	}
	if (!have_prio)
		return fail(lx, "the priority (prio low|medium|high) is required");
	return true;
}

enum mt_err mt_rule_parse(const char *text, struct mt_rule *out, const char **why)
{
	if (why)
		*why = NULL;
	if (!text || !out) {
		if (why)
			*why = "no text or no output";
		return MT_ERR_ARG;
	}
	size_t len = 0; /* strnlen is POSIX, not C11 */
	while (len <= MT_RULE_TEXT_MAX && text[len] != '\0')
		len++;
	if (len > MT_RULE_TEXT_MAX) {
		if (why)
			*why = "rule text too long";
		return MT_ERR_ARG;
	}
	struct lex lx = { .p = text, .end = text + len, .why = NULL };
	struct mt_rule r;
	memset(&r, 0, sizeof(r));
	if (!parse_rule(&lx, &r) || mt_rule_validate(&r) != MT_OK) {
		if (why)
			*why = lx.why ? lx.why : "invalid rule";
		return MT_ERR_ARG;
	}
	*out = r;
	return MT_OK;
}

/* The shortest plain decimal (%.*f) that reads back as exactly v, for
 * 1e-4 ≤ |v| < 1e17 and 0 (every limit a clinician writes); other values
 * in the shortest %.*g, which may use an exponent.  Either way mt_rule_parse
 * reads it back bit for bit (-0 stays -0). */
static int fmt_double(char *buf, size_t cap, double v)
{
	int n = -1;
	double a = fabs(v);
	if (a == 0 || (a >= 1e-4 && a < 1e17)) {
		for (int d = 0; d <= 24; d++) {
			n = snprintf(buf, cap, "%.*f", d, v);
			if (n < 0 || (size_t)n >= cap)
				return -1;
			if (strtod(buf, NULL) == v)
				return n;
		}
	}
	for (int prec = 1; prec <= 17; prec++) {
		n = snprintf(buf, cap, "%.*g", prec, v);
		if (n < 0 || (size_t)n >= cap)
			return -1;
		if (strtod(buf, NULL) == v)
			break;
	}
	return n;
}

static int fmt_duration(char *buf, size_t cap, uint32_t ms)
{
	static const struct {
		uint32_t mult;
		const char *unit;
	} units[] = { { 3600000, "h" }, { 60000, "min" }, { 1000, "s" }, { 1, "ms" } };
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms % units[i].mult == 0)
			return snprintf(buf, cap, "%lu%s", (unsigned long)(ms / units[i].mult),
			                units[i].unit);
	return -1; /* not reached: every ms is a multiple of 1 */
}

/* Append to buf at *off; false when it does not fit. */
static bool put(char *buf, size_t cap, size_t *off, const char *s)
{
	size_t n = strlen(s);
	if (*off + n >= cap)
		return false;
	memcpy(buf + *off, s, n + 1);
	*off += n;
	return true;
}

enum mt_err mt_rule_format(const struct mt_rule *r, char *buf, size_t cap)
{
	if (!buf || cap == 0)
		return MT_ERR_ARG;
	buf[0] = '\0';
	if (mt_rule_validate(r) != MT_OK)
		return MT_ERR_ARG;

	static const char *const prio_name[] = { NULL, "low", "medium", "high" };
	char tmp[64];
	size_t off = 0;
	bool ok = true;
	int n = snprintf(tmp, sizeof(tmp), "%lu%c", (unsigned long)r->mdc_code,
	                 r->dir == MT_RULE_BELOW ? '<' : '>');
	ok = ok && n > 0 && put(buf, cap, &off, tmp);
	ok = ok && fmt_double(tmp, sizeof(tmp), r->limit) > 0 && put(buf, cap, &off, tmp);
	if (ok && r->hold_ms) {
		ok = put(buf, cap, &off, " for ") &&
		     fmt_duration(tmp, sizeof(tmp), r->hold_ms) > 0 && put(buf, cap, &off, tmp);
	}
	if (ok && r->hysteresis != 0) {
		ok = put(buf, cap, &off, " hyst ") &&
		     fmt_double(tmp, sizeof(tmp), r->hysteresis) > 0 &&
		     put(buf, cap, &off, tmp);
	}
	if (ok && r->clear_ms) {
		ok = put(buf, cap, &off, " clear ") &&
		     fmt_duration(tmp, sizeof(tmp), r->clear_ms) > 0 && put(buf, cap, &off, tmp);
	}
	ok = ok && put(buf, cap, &off, " prio ") && put(buf, cap, &off, prio_name[r->prio]);
	if (!ok) {
		buf[0] = '\0';
		return MT_ERR_BUFFER;
	}
	return MT_OK;
}

/* ---- defaults ----------------------------------------------------------- */

static const struct mt_rule default_rules[MT_RULES_DEFAULT_COUNT] = {
	/* SpO2: sustained desaturation, then a deeper one. */
	{ 150456, MT_RULE_BELOW, 90, 2, 30000, 0, MT_RULE_PRIO_MEDIUM },
	{ 150456, MT_RULE_BELOW, 85, 2, 10000, 0, MT_RULE_PRIO_HIGH },
	/* Heart rate (ECG) and pulse rate (oximeter): a patient may wear
	 * either, so each source has the same pair. */
	{ 147842, MT_RULE_ABOVE, 130, 5, 30000, 0, MT_RULE_PRIO_MEDIUM },
	{ 147842, MT_RULE_BELOW, 40, 5, 10000, 0, MT_RULE_PRIO_HIGH },
	{ 149530, MT_RULE_ABOVE, 130, 5, 30000, 0, MT_RULE_PRIO_MEDIUM },
	{ 149530, MT_RULE_BELOW, 40, 5, 10000, 0, MT_RULE_PRIO_HIGH },
	/* NIBP systolic: episodic, each reading a deliberate measurement
	 * minutes apart, so no hold time (a hold would wait a whole cycle). */
	{ 150021, MT_RULE_BELOW, 90, 5, 0, 0, MT_RULE_PRIO_MEDIUM },
};

enum mt_err mt_rules_default(struct mt_rule *out, size_t cap, size_t *n)
{
	if (!n || (!out && cap > 0))
		return MT_ERR_ARG;
	*n = MT_RULES_DEFAULT_COUNT;
	if (cap < MT_RULES_DEFAULT_COUNT)
		return MT_ERR_BUFFER;
	memcpy(out, default_rules, sizeof(default_rules));
	return MT_OK;
}
