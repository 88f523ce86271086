/*
 * hl7.c — the HL7 v2.6 encoder of IHE PCD-01 and PCD-04, the parser of
 * received headers and acknowledgements, and MLLP framing (mt_hl7.h;
 * clinical.md §4; docs/hl7.md).
 *
 * The encoder writes through one small builder (struct hb) that knows
 * which field of the current segment it is in: hb_field(b, n) pads with
 * `|` up to field n, so every field lands at its number without counting
 * separators by hand (MSH is the one special case: MSH-1 is the `|` itself
 * and MSH-2 the encoding characters, so the builder starts MSH at field 2).
 * The builder latches its first error and every later append is a no-op,
 * so the message functions read as the segment layout and check once at
 * the end.  Caller text goes through hb_text() only, which escapes it
 * (§4) or refuses it: no raw caller byte can become a delimiter.
 *
 * The parser never copies the message: it walks segments (CR, LF or CRLF
 * ends) and fields in place with explicit lengths, never past `len`, and
 * unescapes only the few fields it returns, into fixed buffers.
 */
#define _POSIX_C_SOURCE 200809L

#include "medtrust/mt_hl7.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- code tables (clinical.md §1) ---- */

struct mdc_row {
	uint32_t code;
	const char *refid;
	uint32_t unit;
	unsigned places;
};

static const struct mdc_row mdc_rows[] = {
	{147842, "MDC_ECG_HEART_RATE", 264864, 0},
	{149530, "MDC_PULS_OXIM_PULS_RATE", 264864, 0},
	{150456, "MDC_PULS_OXIM_SAT_O2", 262688, 0},
	{150021, "MDC_PRESS_BLD_NONINV_SYS", 266016, 0},
	{150022, "MDC_PRESS_BLD_NONINV_DIA", 266016, 0},
	{150023, "MDC_PRESS_BLD_NONINV_MEAN", 266016, 0},
	{150364, "MDC_TEMP_BODY", 268192, 1},
	{151562, "MDC_RESP_RATE", 264928, 0},
	{160184, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", 264274, 0},
	{131330, "MDC_ECG_ELEC_POTL_II", 266418, 0},
	{8532992, "MDC_AI_MED_DISPENSED_FIXED", 262656, 0}, /* derived (§1) */
};

static const struct {
	uint32_t code;
	const char *refid;
} unit_rows[] = {
	{264864, "MDC_DIM_BEAT_PER_MIN"}, {262688, "MDC_DIM_PERCENT"},
	{266016, "MDC_DIM_MMHG"},         {268192, "MDC_DIM_DEGC"},
	{264928, "MDC_DIM_RESP_PER_MIN"}, {264274, "MDC_DIM_MILLI_G_PER_DL"},
	{266418, "MDC_DIM_MILLI_VOLT"},   {262656, "MDC_DIM_DIMLESS"},
};

static const struct mdc_row *mdc_find(uint32_t code)
{
	for (size_t i = 0; i < sizeof mdc_rows / sizeof mdc_rows[0]; i++)
		if (mdc_rows[i].code == code)
			return &mdc_rows[i];
	return NULL;
}

const char *mt_hl7_mdc_refid(uint32_t code)
{
	const struct mdc_row *r = mdc_find(code);

	return r ? r->refid : NULL;
}

uint32_t mt_hl7_mdc_unit(uint32_t code)
{
	const struct mdc_row *r = mdc_find(code);

	return r ? r->unit : 0;
}

unsigned mt_hl7_mdc_places(uint32_t code)
{
	const struct mdc_row *r = mdc_find(code);

	return r ? r->places : 0;
}

const char *mt_hl7_mdc_unit_refid(uint32_t unit_code)
{
	for (size_t i = 0; i < sizeof unit_rows / sizeof unit_rows[0]; i++)
		if (unit_rows[i].code == unit_code)
			return unit_rows[i].refid;
	return NULL;
}

/* ---- escaping ---- */

/* Length of the valid UTF-8 sequence at s[0..n), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;

		if (n < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;

		if (n < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

enum mt_err mt_hl7_escape(const char *text, size_t n, char *out, size_t cap, size_t *olen)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t o = 0;

	if ((!text && n) || !out || cap == 0)
		return MT_ERR_ARG;
	for (size_t i = 0; i < n;) {
		const char *rep = NULL;
		char tmp[8];
		size_t k;

		switch (s[i]) {
		case '\\': rep = "\\E\\"; break;
		case '|': rep = "\\F\\"; break;
		case '^': rep = "\\S\\"; break;
		case '~': rep = "\\R\\"; break;
		case '&': rep = "\\T\\"; break;
		case 0x0d: rep = "\\X0D\\"; break;
		case 0x0a: rep = "\\X0A\\"; break;
		case 0x0b: rep = "\\X0B\\"; break;
		case 0x1c: rep = "\\X1C\\"; break;
		default: break;
		}
		if (rep) {
			k = strlen(rep);
			memcpy(tmp, rep, k);
		} else {
			if (s[i] < 0x20 || s[i] == 0x7f)
				return MT_ERR_HL7_TEXT;
			k = utf8_len(s + i, n - i);
			if (k == 0)
				return MT_ERR_HL7_TEXT;
			memcpy(tmp, s + i, k);
		}
		if (o + k + 1 > cap)
			return MT_ERR_BUFFER;
		memcpy(out + o, tmp, k);
		o += k;
		i += rep ? 1 : k;
	}
	out[o] = '\0';
	if (olen)
		*olen = o;
	return MT_OK;
}

/* ---- numbers and times ---- */

enum mt_err mt_hl7_format_value(double v, unsigned places, char *out, size_t cap)
{
	char tmp[48];
	int k;
	const char *p = tmp;

	if (!out || cap == 0)
		return MT_ERR_ARG;
	if (!isfinite(v) || fabs(v) >= 1e15 || places > MT_HL7_PLACES_MAX)
		return MT_ERR_HL7_VALUE;
	k = snprintf(tmp, sizeof tmp, "%.*f", (int)places, v);
	if (k < 0 || (size_t)k >= sizeof tmp)
		return MT_ERR_HL7_VALUE;
	if (tmp[0] == '-') { /* "-0", "-0.00": a rounded zero carries no sign */
		bool zero = true;

		for (const char *c = tmp + 1; *c; c++)
			if (*c != '0' && *c != '.')
				zero = false;
		if (zero) {
			p = tmp + 1;
			k--;
		}
	}
	if ((size_t)k + 1 > cap)
		return MT_ERR_BUFFER;
	memcpy(out, p, (size_t)k + 1);
	return MT_OK;
}

enum mt_err mt_hl7_format_time(uint64_t ms, char *out, size_t cap)
{
	struct tm tm;
	time_t t;
	int k;

	if (!out || ms / 1000 > (uint64_t)253402300799) /* 9999-12-31T23:59:59Z */
		return MT_ERR_HL7_VALUE;
	t = (time_t)(ms / 1000);
	if (!gmtime_r(&t, &tm))
		return MT_ERR_HL7_VALUE;
	k = snprintf(out, cap, "%04d%02d%02d%02d%02d%02d+0000", tm.tm_year + 1900, tm.tm_mon + 1,
	             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (k < 0 || (size_t)k >= cap)
		return MT_ERR_BUFFER;
	return MT_OK;
}

/* ---- the builder ---- */

struct hb {
	char *p;
	size_t n, cap;
	enum mt_err err;
	unsigned field;
};

static void hb_raw(struct hb *b, const char *s, size_t n)
{
	if (b->err != MT_OK)
		return;
	if (n > MT_HL7_MSG_MAX || b->n + n > MT_HL7_MSG_MAX) {
		b->err = MT_ERR_HL7_TOO_LARGE;
		return;
	}
	if (b->n + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 1024;
		char *np;

		while (ncap < b->n + n + 1)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (!np) {
			b->err = MT_ERR_NOMEM;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void hb_str(struct hb *b, const char *s)
{
	hb_raw(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void hb_fmt(struct hb *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= sizeof tmp) {
		if (b->err == MT_OK)
			b->err = MT_ERR_INTERNAL;
		return;
	}
	hb_raw(b, tmp, (size_t)k);
}

/* Escaped caller text (NULL writes nothing). */
static void hb_textn(struct hb *b, const char *s, size_t n)
{
	char *tmp;
	size_t cap, olen = 0;
	enum mt_err e;

	if (b->err != MT_OK || !s || n == 0)
		return;
	if (n > MT_HL7_MSG_MAX) {
		b->err = MT_ERR_HL7_TOO_LARGE;
		return;
	}
	cap = 5 * n + 1;
	tmp = malloc(cap);
	if (!tmp) {
		b->err = MT_ERR_NOMEM;
		return;
	}
	e = mt_hl7_escape(s, n, tmp, cap, &olen);
	if (e != MT_OK)
		b->err = e;
	else
		hb_raw(b, tmp, olen);
	free(tmp);
}

static void hb_text(struct hb *b, const char *s)
{
	if (s)
		hb_textn(b, s, strlen(s));
}

static void hb_seg(struct hb *b, const char *name)
{
	hb_str(b, name);
	b->field = 0;
}

static void hb_end(struct hb *b)
{
	hb_raw(b, "\r", 1);
}

static void hb_field(struct hb *b, unsigned n)
{
	while (b->field < n) {
		hb_raw(b, "|", 1);
		b->field++;
	}
}

static void hb_time(struct hb *b, uint64_t ms)
{
	char t[32];
	enum mt_err e = mt_hl7_format_time(ms, t, sizeof t);

	if (e != MT_OK) {
		if (b->err == MT_OK)
			b->err = e;
		return;
	}
	hb_str(b, t);
}

static void hb_value(struct hb *b, double v, unsigned places)
{
	char t[64];
	enum mt_err e = mt_hl7_format_value(v, places, t, sizeof t);

	if (e != MT_OK) {
		if (b->err == MT_OK)
			b->err = e;
		return;
	}
	hb_str(b, t);
}

static void hb_fail(struct hb *b, enum mt_err e)
{
	if (b->err == MT_OK)
		b->err = e;
}

static bool empty(const char *s)
{
	return !s || !*s;
}

static enum mt_err hb_finish(struct hb *b, char **out, size_t *len)
{
	if (b->err != MT_OK) {
		free(b->p);
		return b->err;
	}
	*out = b->p;
	*len = b->n;
	return MT_OK;
}

static void hb_msh(struct hb *b, const struct mt_hl7_msh *m, const char *type,
                   const char *profile)
{
	if (empty(m->app) || empty(m->control_id) || strlen(m->control_id) > MT_HL7_ID_MAX)
		hb_fail(b, MT_ERR_HL7_VALUE);
	hb_seg(b, "MSH");
	hb_str(b, "|^~\\&");
	b->field = 2;
	hb_field(b, 3);
	hb_text(b, m->app);
	hb_field(b, 4);
	hb_text(b, m->facility);
	hb_field(b, 5);
	hb_text(b, m->recv_app);
	hb_field(b, 6);
	hb_text(b, m->recv_facility);
	hb_field(b, 7);
	hb_time(b, m->time_ms);
	hb_field(b, 9);
	hb_str(b, type);
	hb_field(b, 10);
	hb_text(b, m->control_id);
	hb_field(b, 11);
	hb_str(b, "P");
	hb_field(b, 12);
	hb_str(b, "2.6");
	hb_field(b, 15);
	hb_str(b, profile ? "AL" : "NE");
	hb_field(b, 16);
	hb_str(b, "NE");
	if (profile) {
		hb_field(b, 21);
		hb_str(b, profile);
	}
	hb_end(b);
}

static bool leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "YYYY-MM-DD" → "YYYYMMDD" (a real date), else false. */
static bool birth_date(const char *s, char out[9])
{
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return false;
	y = (unsigned)((s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0'));
	m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
	d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
	if (y < 1800 || m < 1 || m > 12 || d < 1 ||
	    d > mdays[m - 1] + (m == 2 && leap(y) ? 1u : 0u))
		return false;
	memcpy(out, s, 4);
	memcpy(out + 4, s + 5, 2);
	memcpy(out + 6, s + 8, 2);
	out[8] = '\0';
	return true;
}

static void hb_patient(struct hb *b, const struct mt_hl7_patient *p)
{
	const char *name, *end, *sp;
	char bd[9];

	if (empty(p->mrn) || empty(p->name)) {
		hb_fail(b, MT_ERR_HL7_VALUE);
		return;
	}
	hb_seg(b, "PID");
	hb_field(b, 1);
	hb_str(b, "1");
	hb_field(b, 3);
	hb_text(b, p->mrn);
	hb_str(b, "^^^");
	hb_text(b, p->authority);
	hb_str(b, "^MR");
	hb_field(b, 5);
	/* family^given, split at the last space; surrounding spaces trimmed */
	name = p->name;
	while (*name == ' ')
		name++;
	end = name + strlen(name);
	while (end > name && end[-1] == ' ')
		end--;
	if (end == name) {
		hb_fail(b, MT_ERR_HL7_VALUE);
		return;
	}
	sp = NULL;
	for (const char *c = name; c < end; c++)
		if (*c == ' ')
			sp = c;
	if (sp) {
		const char *gend = sp;

		while (gend > name && gend[-1] == ' ')
			gend--;
		hb_textn(b, sp + 1, (size_t)(end - sp - 1));
		hb_str(b, "^");
		hb_textn(b, name, (size_t)(gend - name));
	} else {
		hb_textn(b, name, (size_t)(end - name));
	}
	if (!empty(p->birth_date)) {
		if (!birth_date(p->birth_date, bd)) {
			hb_fail(b, MT_ERR_HL7_VALUE);
			return;
		}
		hb_field(b, 7);
		hb_str(b, bd);
	}
	if (!empty(p->sex)) {
		static const char *const words[] = {"male", "female", "other", "unknown"};
		static const char *const codes[] = {"M", "F", "O", "U"};
		const char *code = NULL;

		for (size_t i = 0; i < 4; i++)
			if (strcmp(p->sex, words[i]) == 0)
				code = codes[i];
		if (!code) {
			hb_fail(b, MT_ERR_HL7_VALUE);
			return;
		}
		hb_field(b, 8);
		hb_str(b, code);
	}
	hb_end(b);

	hb_seg(b, "PV1");
	hb_field(b, 1);
	hb_str(b, "1");
	hb_field(b, 2);
	hb_str(b, "I");
	if (!empty(p->ward) || !empty(p->room) || !empty(p->bed)) {
		hb_field(b, 3);
		hb_text(b, p->ward);
		hb_str(b, "^");
		hb_text(b, p->room);
		hb_str(b, "^");
		hb_text(b, p->bed);
	}
	hb_end(b);
}

static void hb_obr(struct hb *b, const struct mt_hl7_msh *m, const char *service,
                   uint64_t time_ms, const char *parent)
{
	hb_seg(b, "OBR");
	hb_field(b, 1);
	hb_str(b, "1");
	hb_field(b, 3);
	hb_text(b, m->control_id);
	hb_str(b, "^");
	hb_text(b, m->app);
	hb_field(b, 4);
	hb_str(b, service);
	hb_field(b, 7);
	hb_time(b, time_ms);
	if (parent) {
		hb_field(b, 29);
		hb_text(b, parent);
	}
	hb_end(b);
}

static bool flag_ok(const char *f)
{
	static const char *const ok[] = {"N", "L", "LL", "H", "HH"};

	if (empty(f))
		return true;
	for (size_t i = 0; i < 5; i++)
		if (strcmp(f, ok[i]) == 0)
			return true;
	return false;
}

/* OBX-2..OBX-6 of a numeric metric (code, sub-id, value, unit). */
static void hb_metric_fields(struct hb *b, const struct mt_hl7_metric *x, const char *subid)
{
	const char *refid = x->refid ? x->refid : mt_hl7_mdc_refid(x->code);
	const char *urefid = x->unit_refid ? x->unit_refid : mt_hl7_mdc_unit_refid(x->unit_code);

	if (!flag_ok(x->flag))
		hb_fail(b, MT_ERR_HL7_VALUE);
	hb_field(b, 2);
	hb_str(b, "NM");
	hb_field(b, 3);
	hb_fmt(b, "%lu^", (unsigned long)x->code);
	hb_text(b, refid);
	hb_str(b, "^MDC");
	hb_field(b, 4);
	hb_str(b, subid);
	hb_field(b, 5);
	hb_value(b, x->value, x->places);
	hb_field(b, 6);
	hb_fmt(b, "%lu^", (unsigned long)x->unit_code);
	hb_text(b, urefid);
	hb_str(b, "^MDC");
}

enum mt_err mt_hl7_build_pcd01(const struct mt_hl7_msh *msh, const struct mt_hl7_patient *pat,
                               const struct mt_hl7_device *dev,
                               const struct mt_hl7_observation *obs, char **out, size_t *len)
{
	struct hb b = {0};
	unsigned setid = 1;

	if (!msh || !pat || !dev || !obs || !out || !len || (!obs->metrics && obs->n_metrics))
		return MT_ERR_ARG;
	*out = NULL;
	*len = 0;
	if (obs->n_metrics == 0 || obs->n_metrics > MT_HL7_METRICS_MAX || empty(dev->id))
		return MT_ERR_HL7_VALUE;
	hb_msh(&b, msh, "ORU^R01^ORU_R01", "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO");
	hb_patient(&b, pat);
	hb_obr(&b, msh, "182777000^monitoring of patient^SCT", obs->time_ms, NULL);

	hb_seg(&b, "OBX");
	hb_field(&b, 1);
	hb_fmt(&b, "%u", setid++);
	hb_field(&b, 3);
	hb_str(&b, "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC");
	hb_field(&b, 4);
	hb_str(&b, "1.0.0.0");
	hb_field(&b, 11);
	hb_str(&b, "X");
	hb_field(&b, 18);
	hb_text(&b, dev->id);
	if (!empty(dev->manufacturer)) {
		hb_str(&b, "^");
		hb_text(&b, dev->manufacturer);
	}
	hb_end(&b);

	for (size_t i = 0; i < obs->n_metrics; i++) {
		const struct mt_hl7_metric *x = &obs->metrics[i];
		char subid[32];

		snprintf(subid, sizeof subid, "1.0.0.%zu", i + 1);
		hb_seg(&b, "OBX");
		hb_field(&b, 1);
		hb_fmt(&b, "%u", setid++);
		hb_metric_fields(&b, x, subid);
		if (!empty(x->flag)) {
			hb_field(&b, 8);
			hb_str(&b, x->flag);
		}
		hb_field(&b, 11);
		hb_str(&b, "R");
		if (x->episodic) {
			hb_field(&b, 14);
			hb_time(&b, obs->time_ms);
		}
		hb_end(&b);
	}
	return hb_finish(&b, out, len);
}

/* One ST/CWE facet of an alert (k = 3..7). */
static void hb_facet(struct hb *b, unsigned *setid, unsigned k, const char *ident,
                     const char *value, const struct mt_hl7_alert *a,
                     const struct mt_hl7_device *dev)
{
	hb_seg(b, "OBX");
	hb_field(b, 1);
	hb_fmt(b, "%u", (*setid)++);
	hb_field(b, 2);
	hb_str(b, "ST");
	hb_field(b, 3);
	hb_str(b, ident);
	hb_field(b, 4);
	hb_fmt(b, "1.0.0.1.%u", k);
	hb_field(b, 5);
	hb_str(b, value);
	hb_field(b, 11);
	hb_str(b, "F");
	hb_field(b, 14);
	hb_time(b, a->time_ms);
	if (dev && !empty(dev->id)) {
		hb_field(b, 18);
		hb_text(b, dev->id);
	}
	hb_end(b);
}

enum mt_err mt_hl7_build_pcd04(const struct mt_hl7_msh *msh, const struct mt_hl7_patient *pat,
                               const struct mt_hl7_device *dev, const struct mt_hl7_alert *a,
                               char **out, size_t *len)
{
	static const char *const phases[] = {"start", "continue", "end"};
	static const char *const states[] = {"active", "inactive", "latched"};
	static const char *const prios[] = {"PH", "PM", "PL", "PN"};
	static const char *const types[] = {"SP", "ST", "SA"};
	struct hb b = {0};
	unsigned setid = 1;

	if (!msh || !a || !out || !len)
		return MT_ERR_ARG;
	*out = NULL;
	*len = 0;
	if (empty(a->alert_id) || empty(a->event_name) || (unsigned)a->phase > 2 ||
	    (unsigned)a->state > 2 || (unsigned)a->prio > 3 || (unsigned)a->type > 2)
		return MT_ERR_HL7_VALUE;
	hb_msh(&b, msh, "ORU^R40^ORU_R40",
	       "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.4.1^ISO");
	if (pat)
		hb_patient(&b, pat);
	hb_obr(&b, msh, "196616^MDC_EVT_ALARM^MDC", a->time_ms, a->alert_id);

	/* facet 1: the event */
	hb_seg(&b, "OBX");
	hb_field(&b, 1);
	hb_fmt(&b, "%u", setid++);
	hb_field(&b, 2);
	hb_str(&b, "CWE");
	hb_field(&b, 3);
	hb_str(&b, "196616^MDC_EVT_ALARM^MDC");
	hb_field(&b, 4);
	hb_str(&b, "1.0.0.1.1");
	hb_field(&b, 5);
	hb_fmt(&b, "%lu^", (unsigned long)a->event_code);
	hb_text(&b, a->event_name);
	hb_str(&b, "^");
	hb_text(&b, a->event_system ? a->event_system : "MDC");
	if (!empty(a->text)) {
		hb_str(&b, "^^^^^^");
		hb_text(&b, a->text);
	}
	hb_field(&b, 11);
	hb_str(&b, "F");
	hb_field(&b, 14);
	hb_time(&b, a->time_ms);
	if (dev && !empty(dev->id)) {
		hb_field(&b, 18);
		hb_text(&b, dev->id);
	}
	hb_end(&b);

	/* facet 2: the source metric */
	if (a->has_source) {
		hb_seg(&b, "OBX");
		hb_field(&b, 1);
		hb_fmt(&b, "%u", setid++);
		hb_metric_fields(&b, &a->source, "1.0.0.1.2");
		if (a->has_limits) {
			hb_field(&b, 7);
			hb_value(&b, a->low, a->source.places);
			hb_str(&b, "-");
			hb_value(&b, a->high, a->source.places);
		}
		if (!empty(a->source.flag)) {
			hb_field(&b, 8);
			hb_str(&b, a->source.flag);
		}
		hb_field(&b, 11);
		hb_str(&b, "F");
		hb_field(&b, 14);
		hb_time(&b, a->time_ms);
		if (dev && !empty(dev->id)) {
			hb_field(&b, 18);
			hb_text(&b, dev->id);
		}
		hb_end(&b);
	}
	hb_facet(&b, &setid, 3, "68481^MDC_ATTR_EVENT_PHASE^MDC", phases[a->phase], a, dev);
	hb_facet(&b, &setid, 4, "68482^MDC_ATTR_ALARM_STATE^MDC", states[a->state], a, dev);
	hb_facet(&b, &setid, 5, "68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC",
	         a->acknowledged ? "alert-acknowledged" : "enabled", a, dev);
	hb_facet(&b, &setid, 6, "68484^MDC_ATTR_ALARM_PRIORITY^MDC", prios[a->prio], a, dev);
	hb_facet(&b, &setid, 7, "68485^MDC_ATTR_ALERT_TYPE^MDC", types[a->type], a, dev);
	return hb_finish(&b, out, len);
}

enum mt_err mt_hl7_build_ack(const struct mt_hl7_header *in, const char *app,
                             const char *facility, uint64_t time_ms,
                             const char *ack_control_id, const char *code, const char *text,
                             char **out, size_t *len)
{
	static const char *const codes[] = {"AA", "AE", "AR", "CA", "CE", "CR"};
	struct mt_hl7_msh m = {app, facility, in ? in->app : NULL, in ? in->facility : NULL,
	                       time_ms, ack_control_id};
	struct hb b = {0};
	bool known = false;
	char type[40];

	if (!in || !code || !out || !len)
		return MT_ERR_ARG;
	*out = NULL;
	*len = 0;
	for (size_t i = 0; i < 6; i++)
		if (strcmp(code, codes[i]) == 0)
			known = true;
	if (!known || empty(in->control_id))
		return MT_ERR_HL7_VALUE;
	/* the trigger went through the parser: letters and digits only */
	for (const char *c = in->trigger; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
			return MT_ERR_HL7_VALUE;
	snprintf(type, sizeof type, "ACK^%s^ACK", in->trigger);
	hb_msh(&b, &m, type, NULL);
	hb_seg(&b, "MSA");
	hb_field(&b, 1);
	hb_str(&b, code);
	hb_field(&b, 2);
	hb_text(&b, in->control_id);
	if (!empty(text)) {
		hb_field(&b, 3);
		hb_text(&b, text);
	}
	hb_end(&b);
	return hb_finish(&b, out, len);
}

/* ---- parsing ---- */

struct span {
	const uint8_t *p;
	size_t n;
};

/* The next segment at *pos (CR, LF or CRLF ends; empty ones skipped).
 * false at the end. */
static bool next_segment(const uint8_t *m, size_t len, size_t *pos, struct span *seg)
{
	while (*pos < len) {
		size_t s = *pos, e = s;

		while (e < len && m[e] != '\r' && m[e] != '\n')
			e++;
		if (e < len && m[e] == '\r' && e + 1 < len && m[e + 1] == '\n')
			*pos = e + 2;
		else
			*pos = e < len ? e + 1 : e;
		if (e > s) {
			seg->p = m + s;
			seg->n = e - s;
			return true;
		}
	}
	return false;
}

/* Part `idx` of s split at `sep` (empty when there are fewer). */
static struct span part(struct span s, uint8_t sep, size_t idx)
{
	size_t i = 0, start = 0, k = 0;

	for (; i <= s.n; i++) {
		if (i == s.n || s.p[i] == sep) {
			if (k == idx)
				return (struct span){s.p + start, i - start};
			k++;
			start = i + 1;
		}
	}
	return (struct span){s.p + s.n, 0};
}

static struct span component(struct span field, size_t idx)
{
	return part(part(field, '~', 0), '^', idx);
}

static int hexv(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Unescape s into out[0..cap) (NUL-terminated).  Known escapes only.
 * `cut` allows truncation (text); otherwise too long is an error. */
static bool unescape(struct span s, char *out, size_t cap, bool cut)
{
	size_t o = 0;

	for (size_t i = 0; i < s.n;) {
		uint8_t buf[64];
		size_t k = 0;

		if (s.p[i] == '\\') {
			size_t j = i + 1;

			while (j < s.n && s.p[j] != '\\')
				j++;
			if (j >= s.n || j == i + 1)
				return false;
			if (j == i + 2) {
				switch (s.p[i + 1]) {
				case 'F': buf[k++] = '|'; break;
				case 'S': buf[k++] = '^'; break;
				case 'T': buf[k++] = '&'; break;
				case 'R': buf[k++] = '~'; break;
				case 'E': buf[k++] = '\\'; break;
				default: return false;
				}
			} else if (s.p[i + 1] == 'X' && (j - i - 2) % 2 == 0 && j - i - 2 <= 2 * sizeof buf) {
				for (size_t h = i + 2; h < j; h += 2) {
					int hi = hexv(s.p[h]), lo = hexv(s.p[h + 1]);

					if (hi < 0 || lo < 0)
						return false;
					buf[k++] = (uint8_t)(hi * 16 + lo);
				}
			} else {
				return false;
			}
			i = j + 1;
		} else {
			buf[k++] = s.p[i++];
		}
		for (size_t q = 0; q < k; q++) {
			if (buf[q] == 0)
				return false;
			if (o + 1 >= cap) {
				if (!cut)
					return false;
				out[o] = '\0';
				return true;
			}
			out[o++] = (char)buf[q];
		}
	}
	out[o] = '\0';
	return true;
}

/* An identifier: unescaped, fits, valid UTF-8, no control characters. */
static bool get_id(struct span s, char *out, size_t cap)
{
	const unsigned char *u = (const unsigned char *)out;
	size_t n;

	if (!unescape(s, out, cap, false))
		return false;
	n = strlen(out);
	for (size_t i = 0; i < n;) {
		size_t k;

		if (u[i] < 0x20 || u[i] == 0x7f)
			return false;
		k = utf8_len(u + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/* Text from a peer: unescaped when it can be, else raw; then every byte
 * that is not valid UTF-8 or is a control character becomes '?', and the
 * result is cut at a character boundary. */
static void get_text(struct span s, char *out, size_t cap)
{
	char tmp[4 * (MT_HL7_TEXT_MAX + 1)];
	size_t n, o = 0;

	if (!unescape(s, tmp, sizeof tmp, true)) {
		n = s.n < sizeof tmp - 1 ? s.n : sizeof tmp - 1;
		memcpy(tmp, s.p, n);
		for (size_t i = 0; i < n; i++)
			if (tmp[i] == 0)
				tmp[i] = '?';
		tmp[n] = '\0';
	}
	n = strlen(tmp);
	for (size_t i = 0; i < n;) {
		const unsigned char *u = (const unsigned char *)tmp + i;
		size_t k = (*u < 0x20 || *u == 0x7f) ? 0 : utf8_len(u, n - i);

		if (o + (k ? k : 1) + 1 > cap)
			break;
		if (k == 0) {
			out[o++] = '?';
			i++;
		} else {
			memcpy(out + o, u, k);
			o += k;
			i += k;
		}
	}
	out[o] = '\0';
}

static bool seg_name_ok(struct span seg)
{
	if (seg.n < 3)
		return false;
	for (size_t i = 0; i < 3; i++)
		if (!((seg.p[i] >= 'A' && seg.p[i] <= 'Z') || (seg.p[i] >= '0' && seg.p[i] <= '9')))
			return false;
	return seg.n == 3 || seg.p[3] == '|';
}

static bool seg_is(struct span seg, const char *name)
{
	return seg.n >= 3 && memcmp(seg.p, name, 3) == 0;
}

/* MSH-n (n ≥ 2) of an MSH segment. */
static struct span msh_field(struct span msh, size_t n)
{
	return part(msh, '|', n - 1);
}

enum mt_err mt_hl7_parse_header(const uint8_t *msg, size_t len, struct mt_hl7_header *h)
{
	struct span seg, enc;
	size_t pos = 0;

	if (!msg || !h)
		return MT_ERR_ARG;
	memset(h, 0, sizeof *h);
	if (len > MT_HL7_PARSE_MAX)
		return MT_ERR_HL7_TOO_LARGE;
	if (memchr(msg, 0, len))
		return MT_ERR_HL7_SYNTAX;
	if (!next_segment(msg, len, &pos, &seg) || seg.n < 8 || memcmp(seg.p, "MSH|", 4) != 0)
		return MT_ERR_HL7_SYNTAX;
	enc = msh_field(seg, 2);
	if (!((enc.n == 4 && memcmp(enc.p, "^~\\&", 4) == 0) ||
	      (enc.n == 5 && memcmp(enc.p, "^~\\&#", 5) == 0)))
		return MT_ERR_HL7_SYNTAX;
	if (!get_id(component(msh_field(seg, 3), 0), h->app, sizeof h->app) ||
	    !get_id(component(msh_field(seg, 4), 0), h->facility, sizeof h->facility) ||
	    !get_id(component(msh_field(seg, 9), 0), h->type, sizeof h->type) ||
	    !get_id(component(msh_field(seg, 9), 1), h->trigger, sizeof h->trigger) ||
	    !get_id(msh_field(seg, 10), h->control_id, sizeof h->control_id) ||
	    !get_id(component(msh_field(seg, 12), 0), h->version, sizeof h->version) ||
	    !get_id(component(msh_field(seg, 21), 2), h->profile_oid, sizeof h->profile_oid))
		return MT_ERR_HL7_SYNTAX;
	if (!h->type[0] || !h->control_id[0])
		return MT_ERR_HL7_SYNTAX;
	while (next_segment(msg, len, &pos, &seg))
		if (!seg_name_ok(seg) || seg_is(seg, "MSH"))
			return MT_ERR_HL7_SYNTAX;
	return MT_OK;
}

enum mt_err mt_hl7_parse_ack(const uint8_t *msg, size_t len, struct mt_hl7_ack *a)
{
	static const struct {
		const char *text;
		enum mt_hl7_ack_code code;
	} codes[] = {
		{"AA", MT_HL7_ACK_ACCEPT}, {"CA", MT_HL7_ACK_ACCEPT}, {"AE", MT_HL7_ACK_ERROR},
		{"CE", MT_HL7_ACK_ERROR},  {"AR", MT_HL7_ACK_REJECT}, {"CR", MT_HL7_ACK_REJECT},
	};
	struct span seg, msa = {NULL, 0}, f;
	size_t pos = 0, n_msa = 0;
	bool known = false;
	enum mt_err e;

	if (!msg || !a)
		return MT_ERR_ARG;
	memset(a, 0, sizeof *a);
	e = mt_hl7_parse_header(msg, len, &a->msh);
	if (e != MT_OK)
		return e;
	if (strcmp(a->msh.type, "ACK") != 0)
		return MT_ERR_HL7_SYNTAX;
	while (next_segment(msg, len, &pos, &seg))
		if (seg_is(seg, "MSA")) {
			msa = seg;
			n_msa++;
		}
	if (n_msa != 1)
		return MT_ERR_HL7_SYNTAX;
	f = part(msa, '|', 1);
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		if (f.n == 2 && memcmp(f.p, codes[i].text, 2) == 0) {
			a->code = codes[i].code;
			memcpy(a->code_text, codes[i].text, 3);
			known = true;
		}
	if (!known)
		return MT_ERR_HL7_SYNTAX;
	if (!get_id(part(msa, '|', 2), a->control_id, sizeof a->control_id) || !a->control_id[0])
		return MT_ERR_HL7_SYNTAX;
	get_text(part(msa, '|', 3), a->text, sizeof a->text);
	return MT_OK;
}

bool mt_hl7_profile_is_pcd04(const char *oid)
{
	static const char root[] = "1.3.6.1.4.1.19376.1.";
	static const char *const tails[] = {"6.1.4.1", "6.4.4", "6.4.4.1"};

	if (!oid || strncmp(oid, root, sizeof root - 1) != 0)
		return false;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(oid + sizeof root - 1, tails[i]) == 0)
			return true;
	return false;
}

/* ---- MLLP ---- */

#define MLLP_SB 0x0b
#define MLLP_EB 0x1c
#define MLLP_CR 0x0d

void mt_mllp_init(struct mt_mllp_reader *r, size_t max)
{
	memset(r, 0, sizeof *r);
	r->max = max ? max : MT_HL7_FRAME_MAX;
}

void mt_mllp_free(struct mt_mllp_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof *r);
}

void mt_mllp_reset(struct mt_mllp_reader *r)
{
	r->len = 0;
	r->in_frame = r->saw_end = r->failed = false;
}

static enum mt_err mllp_fail(struct mt_mllp_reader *r, enum mt_err e)
{
	r->failed = true;
	r->in_frame = r->saw_end = false;
	r->len = 0;
	return e;
}

enum mt_err mt_mllp_feed(struct mt_mllp_reader *r, const uint8_t *in, size_t n, size_t *used,
                         const uint8_t **frame, size_t *frame_len)
{
	size_t i = 0;

	if (!r || (!in && n) || !used || !frame || !frame_len)
		return MT_ERR_ARG;
	*used = 0;
	*frame = NULL;
	*frame_len = 0;
	if (r->failed)
		return MT_ERR_HL7_FRAME;
	while (i < n) {
		uint8_t c = in[i];

		if (!r->in_frame) {
			i++;
			if (c == MLLP_SB) {
				r->in_frame = true;
				r->saw_end = false;
				r->len = 0;
			} else if (c != '\r' && c != '\n' && c != ' ' && c != '\t') {
				*used = i;
				return mllp_fail(r, MT_ERR_HL7_FRAME);
			}
			continue;
		}
		if (r->saw_end) {
			i++;
			if (c != MLLP_CR) {
				*used = i;
				return mllp_fail(r, MT_ERR_HL7_FRAME);
			}
			r->in_frame = r->saw_end = false;
			*used = i;
			*frame = r->buf ? r->buf : (const uint8_t *)"";
			*frame_len = r->len;
			return MT_OK;
		}
		if (c == MLLP_EB) {
			r->saw_end = true;
			i++;
			continue;
		}
		if (c == MLLP_SB) {
			*used = i + 1;
			return mllp_fail(r, MT_ERR_HL7_FRAME);
		}
		{
			/* copy the run of ordinary bytes at once */
			size_t j = i;

			while (j < n && in[j] != MLLP_EB && in[j] != MLLP_SB)
				j++;
			if (j - i > r->max - r->len) {
				*used = j;
				return mllp_fail(r, MT_ERR_HL7_TOO_LARGE);
			}
			if (r->len + (j - i) > r->cap) {
				size_t ncap = r->cap ? r->cap : 4096;
				uint8_t *nb;

				while (ncap < r->len + (j - i))
					ncap *= 2;
				if (ncap > r->max)
					ncap = r->max;
				nb = realloc(r->buf, ncap);
				if (!nb) {
					*used = i;
					return mllp_fail(r, MT_ERR_NOMEM);
				}
				r->buf = nb;
				r->cap = ncap;
			}
			memcpy(r->buf + r->len, in + i, j - i);
			r->len += j - i;
			i = j;
		}
	}
	*used = n;
	return MT_OK;
}

enum mt_err mt_mllp_wrap(const char *msg, size_t len, uint8_t **out, size_t *out_len)
{
	uint8_t *p;

	if ((!msg && len) || !out || !out_len)
		return MT_ERR_ARG;
	if (len > MT_HL7_FRAME_MAX)
		return MT_ERR_HL7_TOO_LARGE;
	p = malloc(len + 3);
	if (!p)
		return MT_ERR_NOMEM;
	p[0] = MLLP_SB;
	if (len)
		memcpy(p + 1, msg, len);
	p[len + 1] = MLLP_EB;
	p[len + 2] = MLLP_CR;
	*out = p;
	*out_len = len + 3;
	return MT_OK;
}
