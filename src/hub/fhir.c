/*
 * fhir.c — FHIR R4 resources, searches and paging over the hub's store
 * and registry (fhir.h, docs/fhir.md; clinical.md §1, §5).
 *
 * Shape of a request: method and body (405) → format (406) → query parsed
 * strictly into at most QP_MAX decoded parameters (400) → route → bearer
 * token and scope (401/403, smart.h) → the parameters the resource knows
 * (400 for any other) → read under the lock → JSON.  Every answer is
 * application/fhir+json; every refusal is an OperationOutcome, and every
 * refusal and read is one audit record (fhir.read, fhir.refused) naming
 * the client when known.
 *
 * Observations are made from the device-signed messages the store keeps
 * (the same decoding as the console): one per scalar observation, except
 * that a systolic and a diastolic pressure of one message become one
 * blood-pressure panel (85354-9, components 8480-6 and 8462-4, at the
 * systolic's index; the diastolic has no Observation of its own), and an
 * ECG waveform becomes valueSampledData.  Values are printed with the
 * observation's `places`, else the defaults of clinical.md §1.
 *
 * Searches read reading ids in device-time order (mt_store_fhir.h),
 * decrypt each (at most SCAN_MAX per request: a search that would need
 * more is refused as too costly, narrow it with date or patient), expand
 * and filter them, and keep the page [_offset, _offset + _count).  A
 * search's first page fixes a snapshot (`_snapshot`, the highest reading
 * id then stored) that its next links carry, so paging to the end yields
 * every match exactly once and `total` stays the same while new readings
 * arrive.  Date filters compare the observation's own time (message ts +
 * offset); the store is asked with a day of slack on the upper bound, so
 * an observation more than a day older than its message is not found by
 * a `lt`/`le` bound (documented).
 *
 * JSON is written by a small builder here rather than jansson, because a
 * quantity must keep its device precision ("36.50"), which a double
 * cannot carry through jansson.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* timegm */

#include "fhir.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "medtrust/mt_cose.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_registry.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_store_fhir.h"
#include "medtrust/mt_store_query.h"

#define QP_MAX 16            /* query parameters */
#define QUERY_MAX 2048       /* bytes of a query string */
#define COUNT_DEFAULT 20
#define COUNT_MAX 100
#define SCAN_MAX 20000       /* readings decrypted per search */
#define PATIENTS_SCAN 10000
#define DEVICES_SCAN 10000
#define BODY_OUT_MAX (32u << 20)
#define DAY_MS UINT64_C(86400000)
#define CODES_MAX 8
#define DEFAULT_MRN_SYSTEM "urn:medtrust:mrn"
#define DEVICE_ID_SYSTEM "urn:medtrust:device-id"
#define EXT_BASE "urn:medtrust:fhir:StructureDefinition:"
#define LOINC "http://loinc.org"
#define MDC "urn:iso:std:iso:11073:10101"
#define UCUM "http://unitsofmeasure.org"
#define SD "http://hl7.org/fhir/StructureDefinition/"
#define FHIR_JSON "application/fhir+json"

struct mt_fhir {
	struct mt_deploy *d;
	struct mt_smart *smart;
	mt_console_audit_fn audit;
	void *audit_arg;
	pthread_mutex_t lock; /* store, reg, obs */
	struct mt_store *store;
	struct mt_registry *reg;
	struct mt_obs *obs; /* MT_OBS_MAX */
	char mrn_system[256];
};

/* ---- quantities (clinical.md §1) ------------------------------------------ */

struct qty {
	uint32_t code;
	const char *refid;
	const char *loinc, *loinc2; /* NULL: none */
	const char *display;
	const char *ucum;
	const char *profile; /* the specific vital-signs profile, or NULL */
	bool lab;            /* category laboratory (glucose), not vital-signs */
	uint8_t places;
};

static const struct qty qtys[] = {
        {147842, "MDC_ECG_HEART_RATE", "8867-4", NULL, "Heart rate", "/min", SD "heartrate", false, 0},
        {149530, "MDC_PULS_OXIM_PULS_RATE", "8867-4", NULL, "Heart rate", "/min", SD "heartrate", false, 0},
        {150456, "MDC_PULS_OXIM_SAT_O2", "2708-6", "59408-5", "Oxygen saturation", "%", SD "oxygensat", false, 0},
        {150021, "MDC_PRESS_BLD_NONINV_SYS", "8480-6", NULL, "Systolic blood pressure", "mm[Hg]", NULL, false, 0},
        {150022, "MDC_PRESS_BLD_NONINV_DIA", "8462-4", NULL, "Diastolic blood pressure", "mm[Hg]", NULL, false, 0},
        {150023, "MDC_PRESS_BLD_NONINV_MEAN", "8478-0", NULL, "Mean blood pressure", "mm[Hg]", NULL, false, 0},
        {150364, "MDC_TEMP_BODY", "8310-5", NULL, "Body temperature", "Cel", SD "bodytemp", false, 1},
        {151562, "MDC_RESP_RATE", "9279-1", NULL, "Respiratory rate", "/min", SD "resprate", false, 0},
        {160184, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", "41653-7", NULL, "Glucose in capillary blood", "mg/dL", NULL, true, 0},
        {131330, "MDC_ECG_ELEC_POTL_II", NULL, NULL, "ECG lead II", "mV", NULL, false, 3},
        {8532992, "MDC_AI_MED_DISPENSED_FIXED", NULL, NULL, "Inhaler dose dispensed", "1", NULL, false, 0},
};

static const struct qty *qty_of(uint32_t code)
{
	for (size_t i = 0; i < sizeof qtys / sizeof qtys[0]; i++)
		if (qtys[i].code == code)
			return &qtys[i];
	return NULL;
}

/* ---- JSON builder ------------------------------------------------------------ */

struct jb {
	char *b;
	size_t n, cap;
	bool bad;
	int depth;
	bool first[40];
};

static void jb_put(struct jb *j, const char *s, size_t n)
{
	if (j->bad)
		return;
	if (j->n + n + 1 > j->cap) {
		size_t nc = j->cap ? j->cap : 4096;
		char *nb;

		while (nc < j->n + n + 1)
			nc *= 2;
		if (nc > BODY_OUT_MAX || (nb = realloc(j->b, nc)) == NULL) {
			j->bad = true;
			return;
		}
		j->b = nb;
		j->cap = nc;
	}
	memcpy(j->b + j->n, s, n);
	j->n += n;
	j->b[j->n] = '\0';
}

static void jb_puts(struct jb *j, const char *s)
{
	jb_put(j, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void jb_printf(struct jb *j, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf)
		j->bad = true;
	else
		jb_put(j, buf, (size_t)n);
}

static void jb_strv(struct jb *j, const char *s, size_t n)
{
	jb_put(j, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t k = i;

		while (k < n && (unsigned char)s[k] >= 0x20 && s[k] != '"' && s[k] != '\\')
			k++;
		if (k > i) {
			jb_put(j, s + i, k - i);
			i = k - 1;
			continue;
		}
		if (c == '"')
			jb_puts(j, "\\\"");
		else if (c == '\\')
			jb_puts(j, "\\\\");
		else
			jb_printf(j, "\\u%04x", c);
	}
	jb_put(j, "\"", 1);
}

static void jb_sep(struct jb *j, const char *key)
{
	if (!j->first[j->depth])
		jb_put(j, ",", 1);
	j->first[j->depth] = false;
	if (key != NULL) {
		jb_strv(j, key, strlen(key));
		jb_put(j, ":", 1);
	}
}

static void jb_open(struct jb *j, const char *key, char c)
{
	jb_sep(j, key);
	jb_put(j, &c, 1);
	if (j->depth + 1 >= (int)(sizeof j->first / sizeof j->first[0])) {
		j->bad = true;
		return;
	}
	j->first[++j->depth] = true;
}

static void jb_close(struct jb *j, char c)
{
	jb_put(j, &c, 1);
	if (j->depth > 0)
		j->depth--;
}

static void jb_str(struct jb *j, const char *key, const char *v)
{
	jb_sep(j, key);
	jb_strv(j, v, strlen(v));
}

static void jb_raw(struct jb *j, const char *key, const char *raw)
{
	jb_sep(j, key);
	jb_puts(j, raw);
}

static void jb_int(struct jb *j, const char *key, int64_t v)
{
	jb_sep(j, key);
	jb_printf(j, "%" PRId64, v);
}

/* {"system": s, "code": c[, "display": d]} as an array element */
static void jb_coding(struct jb *j, const char *system, const char *code, const char *display)
{
	jb_open(j, NULL, '{');
	jb_str(j, "system", system);
	jb_str(j, "code", code);
	if (display != NULL)
		jb_str(j, "display", display);
	jb_close(j, '}');
}

static void jb_ref(struct jb *j, const char *key, const char *type, const char *id)
{
	char r[160];

	(void)snprintf(r, sizeof r, "%s/%s", type, id);
	jb_open(j, key, '{');
	jb_str(j, "reference", r);
	jb_close(j, '}');
}

/* ISO 8601 instant with milliseconds, UTC */
static void iso_ms(uint64_t ms, char out[64])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1) {
		(void)snprintf(out, 64, "1970-01-01T00:00:00.000Z");
		return;
	}
	(void)snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
	               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	               (unsigned)(ms % 1000));
}

/* ---- answers ------------------------------------------------------------------ */

static void answer_jb(struct mt_https_resp *rs, int status, struct jb *j)
{
	if (j->bad || j->depth != 0) {
		free(j->b);
		rs->status = 500;
		return;
	}
	rs->status = status;
	rs->content_type = FHIR_JSON;
	rs->body = (uint8_t *)j->b;
	rs->body_len = j->n;
	j->b = NULL;
}

/* An OperationOutcome: one issue of `severity`, `code` (IssueType) and
 * diagnostics text. */
static void outcome_body(struct jb *j, const char *severity, const char *code, const char *text)
{
	jb_open(j, NULL, '{');
	jb_str(j, "resourceType", "OperationOutcome");
	jb_open(j, "issue", '[');
	jb_open(j, NULL, '{');
	jb_str(j, "severity", severity);
	jb_str(j, "code", code);
	jb_str(j, "diagnostics", text);
	jb_close(j, '}');
	jb_close(j, ']');
	jb_close(j, '}');
}

static void audit_fhir(struct mt_fhir *f, const struct mt_https_req *rq, const char *client,
                       const char *action, enum mt_audit_outcome oc, const char *reason,
                       const char *what, int64_t n)
{
	char actor[128], detail[900], js[3][300];

	if (client != NULL && client[0] != '\0')
		(void)snprintf(actor, sizeof actor, "fhir-client:%s", client);
	else
		(void)snprintf(actor, sizeof actor, "ip:%s", rq->source);
	(void)snprintf(detail, sizeof detail,
	               "{\"source\":%s,\"path\":%s,\"reason\":%s,\"results\":%" PRId64 "}",
	               mt_deploy_json_str(rq->source, js[0], sizeof js[0]),
	               mt_deploy_json_str(what ? what : rq->path, js[1], sizeof js[1]),
	               mt_deploy_json_str(reason, js[2], sizeof js[2]), n);
	f->audit(f->audit_arg, actor, action, client && client[0] ? client : NULL, oc, detail);
}

__attribute__((format(printf, 7, 8))) static void
refuse(struct mt_fhir *f, const struct mt_https_req *rq, struct mt_https_resp *rs, int status,
       const char *issue, const char *client, const char *fmt, ...)
{
	char text[400];
	struct jb j = {0};
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	j.first[0] = true;
	outcome_body(&j, status >= 500 ? "fatal" : "error", issue, text);
	answer_jb(rs, status, &j);
	audit_fhir(f, rq, client, "fhir.refused", status >= 500 ? MT_AUDIT_ERROR : MT_AUDIT_REFUSED,
	           issue, NULL, status);
}

/* ---- the query ---------------------------------------------------------------- */

struct qparam {
	char name[48];
	char *value; /* decoded, NUL-terminated, inside struct query's buf */
	bool used;
};

struct query {
	size_t n;
	struct qparam p[QP_MAX];
	char buf[QUERY_MAX + QP_MAX];
};

static int hexv(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* Strict UTF-8 (no overlong forms, no surrogates, ≤ U+10FFFF) without C0,
 * DEL or C1 control characters. */
static bool text_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t len;
		uint32_t cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4, cp = c & 0x07;
		else
			return false;
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			return false;
		i += len;
	}
	return true;
}

/* Parse the raw query; *why says what is wrong. */
static bool query_parse(const char *raw, struct query *q, const char **why)
{
	size_t o = 0, len = raw ? strlen(raw) : 0;
	const char *p = raw;

	memset(q, 0, sizeof *q);
	if (len == 0)
		return true;
	if (len > QUERY_MAX) {
		*why = "the query string is too long";
		return false;
	}
	while (p < raw + len) {
		size_t n = strcspn(p, "&");
		const char *eq = memchr(p, '=', n);
		struct qparam *qp;
		size_t nl, start;

		if (n == 0) {
			p++;
			continue;
		}
		if (q->n == QP_MAX) {
			*why = "too many query parameters";
			return false;
		}
		if (eq == NULL || eq == p) {
			*why = "a query parameter without a name or a value";
			return false;
		}
		nl = (size_t)(eq - p);
		qp = &q->p[q->n];
		if (nl >= sizeof qp->name) {
			*why = "a query parameter name is too long";
			return false;
		}
		for (size_t i = 0; i < nl; i++) {
			char c = p[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '_' || c == '-' || c == '.' || c == ':')) {
				*why = "a query parameter name has characters no search parameter has";
				return false;
			}
		}
		memcpy(qp->name, p, nl);
		start = o;
		for (const char *v = eq + 1; v < p + n; v++) {
			if (*v == '%') {
				int a = v + 2 < p + n ? hexv(v[1]) : -1, b = a >= 0 ? hexv(v[2]) : -1;

				if (a < 0 || b < 0) {
					*why = "a bad %-escape in the query";
					return false;
				}
				q->buf[o++] = (char)(a * 16 + b);
				v += 2;
			} else if (*v == '+') {
				q->buf[o++] = ' ';
			} else {
				q->buf[o++] = *v;
			}
		}
		if (o == start) {
			*why = "a query parameter with an empty value";
			return false;
		}
		if (!text_ok((const unsigned char *)q->buf + start, o - start)) {
			*why = "a query value is not UTF-8 text (overlong form, surrogate, control "
			       "character or NUL)";
			return false;
		}
		q->buf[o++] = '\0';
		qp->value = q->buf + start;
		q->n++;
		p += n;
	}
	return true;
}

/* The single value of `name`, or NULL; *dup set when given twice. */
static const char *qget(struct query *q, const char *name, bool *dup)
{
	const char *v = NULL;

	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->p[i].name, name) == 0) {
			if (v != NULL)
				*dup = true;
			v = q->p[i].value;
			q->p[i].used = true;
		}
	return v;
}

/* After a handler took what it knows: the first parameter nobody used. */
static const char *qunused(const struct query *q)
{
	for (size_t i = 0; i < q->n; i++)
		if (!q->p[i].used)
			return q->p[i].name;
	return NULL;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0' || strlen(s) > 19)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* A local reference: "ID" or "Type/ID" (this server's), into id. */
static bool local_ref(const char *v, const char *type, char *id, size_t cap)
{
	size_t tl = strlen(type);

	if (strncmp(v, type, tl) == 0 && v[tl] == '/')
		v += tl + 1;
	if (strchr(v, '/') != NULL || strchr(v, ':') != NULL || strlen(v) >= cap || v[0] == '\0')
		return false;
	for (const char *c = v; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      *c == '-' || *c == '.' || *c == '_'))
			return false;
	(void)snprintf(id, cap, "%s", v);
	return true;
}

static void url_enc(struct jb *j, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			jb_put(j, (const char *)&c, 1);
		else
			jb_printf(j, "%%%02X", c);
	}
}

/* ---- dates ---------------------------------------------------------------------- */

struct range {
	uint64_t lo, hi; /* lo ≤ t < hi */
};

static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* A FHIR date or dateTime → the interval it denotes, in Unix ms. */
static bool parse_date(const char *s, struct range *r)
{
	struct tm tm;
	int y, mo = 1, d = 1, h = 0, mi = 0, se = 0, ms = 0;
	uint64_t width;
	int64_t off_s = 0;
	size_t n = strlen(s);
	time_t t;

	memset(&tm, 0, sizeof tm);
	if (n < 4 || !digits(s, 4, &y) || y < 1970 || y > 9999)
		return false;
	width = 0;
	if (n == 4) {
		width = 1; /* a year: computed below */
	} else if (n >= 7 && s[4] == '-' && digits(s + 5, 2, &mo) && mo >= 1 && mo <= 12) {
		if (n == 7) {
			width = 2;
		} else if (n >= 10 && s[7] == '-' && digits(s + 8, 2, &d) && d >= 1 && d <= 31) {
			if (n == 10) {
				width = DAY_MS;
			} else if (s[10] == 'T' && n >= 16 && digits(s + 11, 2, &h) && s[13] == ':' &&
			           digits(s + 14, 2, &mi) && h < 24 && mi < 60) {
				const char *z = s + 16;

				width = 60000;
				if (*z == ':' && digits(z + 1, 2, &se) && se < 60) {
					z += 3;
					width = 1000;
					if (*z == '.') {
						int k = 0;

						z++;
						while (z[k] >= '0' && z[k] <= '9' && k < 3) {
							ms = ms * 10 + (z[k] - '0');
							k++;
						}
						if (k == 0)
							return false;
						for (int m = k; m < 3; m++)
							ms *= 10;
						width = k == 1 ? 100 : k == 2 ? 10 : 1;
						z += k;
					}
				}
				if (strcmp(z, "Z") == 0) {
					off_s = 0;
				} else if ((z[0] == '+' || z[0] == '-') && strlen(z) == 6 && z[3] == ':') {
					int oh, om;

					if (!digits(z + 1, 2, &oh) || !digits(z + 4, 2, &om) || oh > 14 || om > 59)
						return false;
					off_s = (int64_t)(oh * 3600 + om * 60) * (z[0] == '+' ? 1 : -1);
				} else {
					return false;
				}
			} else {
				return false;
			}
		} else {
			return false;
		}
	} else {
		return false;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = timegm(&tm);
	if (t < 0 || (int64_t)t - off_s < 0)
		return false;
	r->lo = (uint64_t)((int64_t)t - off_s) * 1000 + (uint64_t)ms;
	if (width == 1 || width == 2) {
		struct tm e = tm;

		if (width == 1)
			e.tm_year++;
		else
			e.tm_mon++;
		r->hi = (uint64_t)timegm(&e) * 1000;
	} else {
		r->hi = r->lo + width;
	}
	return true;
}

/* Apply one `date` parameter value to [*from, *to). */
static bool apply_date(const char *v, uint64_t *from, uint64_t *to)
{
	struct range r;
	char pre[3] = "eq";

	if (strlen(v) > 2 && v[0] >= 'a' && v[0] <= 'z' && v[1] >= 'a' && v[1] <= 'z') {
		pre[0] = v[0];
		pre[1] = v[1];
		v += 2;
	}
	if (!parse_date(v, &r))
		return false;
	if (strcmp(pre, "eq") == 0) {
		*from = r.lo > *from ? r.lo : *from;
		*to = r.hi < *to ? r.hi : *to;
	} else if (strcmp(pre, "ge") == 0) {
		*from = r.lo > *from ? r.lo : *from;
	} else if (strcmp(pre, "gt") == 0) {
		*from = r.hi > *from ? r.hi : *from;
	} else if (strcmp(pre, "lt") == 0) {
		*to = r.lo < *to ? r.lo : *to;
	} else if (strcmp(pre, "le") == 0) {
		*to = r.hi < *to ? r.hi : *to;
	} else {
		return false;
	}
	return true;
}

/* ---- observations ------------------------------------------------------------------ */

/* A decoded reading (under the lock: obs is f->obs). */
struct dec {
	struct mt_store_row row;
	struct mt_cose_sign1 s1;
	struct mt_message m;
	bool ok;
};

static enum mt_err dec_load(struct mt_fhir *f, int64_t id, struct dec *d)
{
	enum mt_err e;

	memset(d, 0, sizeof *d);
	e = mt_store_reading_get(f->store, id, &d->row);
	if (e != MT_OK)
		return e;
	d->ok = d->row.typ == MT_TYP_VITALS && d->row.patient_id > 0 &&
	        mt_cose_sign1_decode(d->row.sign1, d->row.sign1_len, true, &d->s1) == MT_OK &&
	        d->s1.payload != NULL &&
	        mt_message_decode(d->s1.payload, d->s1.payload_len, &d->m, f->obs, MT_OBS_MAX,
	                          NULL) == MT_OK;
	return MT_OK;
}

static void dec_clear(struct dec *d)
{
	mt_store_row_clear(&d->row);
}

/* The index of a diastolic paired with the systolic at i, or -1. */
static long bp_partner(const struct mt_message *m, size_t i)
{
	if (m->obs[i].waveform || m->obs[i].code != 150021)
		return -1;
	for (size_t k = 0; k < m->n_obs; k++)
		if (!m->obs[k].waveform && m->obs[k].code == 150022)
			return (long)k;
	return -1;
}

/* Is observation i of the message an Observation of its own? (A
 * diastolic folded into a panel is not.) */
static bool obs_emitted(const struct mt_message *m, size_t i)
{
	if (!m->obs[i].waveform && m->obs[i].code == 150022)
		for (size_t k = 0; k < m->n_obs; k++)
			if (!m->obs[k].waveform && m->obs[k].code == 150021)
				return false;
	return true;
}

/* Does observation i match a code filter ("" or "[system|]code")? */
static bool code_match(const struct mt_message *m, size_t i, char codes[][64], size_t n_codes)
{
	const struct mt_obs *o = &m->obs[i];
	const struct qty *q = qty_of(o->code);
	bool bp = bp_partner(m, i) >= 0;
	char mdc[16];

	if (n_codes == 0)
		return true;
	(void)snprintf(mdc, sizeof mdc, "%" PRIu32, o->code);
	for (size_t c = 0; c < n_codes; c++) {
		const char *bar = strchr(codes[c], '|'), *code = bar ? bar + 1 : codes[c];
		size_t sl = bar ? (size_t)(bar - codes[c]) : 0;
		bool any = bar == NULL || sl == 0;
		bool loinc = any || (sl == strlen(LOINC) && memcmp(codes[c], LOINC, sl) == 0);
		bool mdcs = any || (sl == strlen(MDC) && memcmp(codes[c], MDC, sl) == 0);

		if (mdcs && strcmp(code, mdc) == 0)
			return true;
		if (loinc && bp && strcmp(code, "85354-9") == 0)
			return true;
		if (loinc && q != NULL && !bp &&
		    ((q->loinc && strcmp(code, q->loinc) == 0) || (q->loinc2 && strcmp(code, q->loinc2) == 0)))
			return true;
	}
	return false;
}

static void value_text(const struct mt_obs *o, const struct qty *q, char *out, size_t cap)
{
	unsigned places = o->has_places && o->places <= 6 ? o->places : q ? q->places : 0;
	double v = mt_num_to_double(&o->value);

	(void)snprintf(out, cap, "%.*f", (int)places, v);
	if (strcmp(out, "-0") == 0 || strncmp(out, "-0.", 3) == 0) {
		bool zero = strspn(out + 3, "0") == strlen(out + 3);

		if (zero)
			memmove(out, out + 1, strlen(out));
	}
}

static void quantity(struct jb *j, const char *key, const struct mt_obs *o, const struct qty *q)
{
	char v[64];

	value_text(o, q, v, sizeof v);
	jb_open(j, key, '{');
	jb_raw(j, "value", v);
	if (q != NULL) {
		jb_str(j, "unit", q->ucum);
		jb_str(j, "system", UCUM);
		jb_str(j, "code", q->ucum);
	} else {
		char u[16];

		(void)snprintf(u, sizeof u, "%" PRIu32, o->unit);
		jb_str(j, "unit", u);
		jb_str(j, "system", MDC);
		jb_str(j, "code", u);
	}
	jb_close(j, '}');
}

static void codeable(struct jb *j, const char *key, const struct mt_obs *o, const struct qty *q)
{
	char mdc[16];

	(void)snprintf(mdc, sizeof mdc, "%" PRIu32, o->code);
	jb_open(j, key, '{');
	jb_open(j, "coding", '[');
	if (q != NULL && q->loinc != NULL)
		jb_coding(j, LOINC, q->loinc, q->display);
	if (q != NULL && q->loinc2 != NULL)
		jb_coding(j, LOINC, q->loinc2, "Oxygen saturation in Arterial blood by Pulse oximetry");
	jb_coding(j, MDC, mdc, q ? q->refid : NULL);
	jb_close(j, ']');
	if (q != NULL)
		jb_str(j, "text", q->display);
	jb_close(j, '}');
}

static void sampled(struct jb *j, const struct mt_obs *o)
{
	int32_t *s = malloc(MT_WAVE_MAX_SAMPLES * sizeof *s);
	size_t n = 0;
	char num[40];

	if (s == NULL || mt_waveform_decode(o->samples, o->samples_len, s, MT_WAVE_MAX_SAMPLES, &n) !=
	                         MT_OK) {
		free(s);
		j->bad = true;
		return;
	}
	jb_open(j, "valueSampledData", '{');
	jb_open(j, "origin", '{');
	jb_raw(j, "value", "0");
	jb_str(j, "unit", "mV");
	jb_str(j, "system", UCUM);
	jb_str(j, "code", "mV");
	jb_close(j, '}');
	(void)snprintf(num, sizeof num, "%.3f", (double)o->period_us / 1000.0);
	jb_raw(j, "period", num);
	(void)snprintf(num, sizeof num, "%.17g", mt_num_to_double(&o->scale));
	jb_raw(j, "factor", num);
	jb_raw(j, "dimensions", "1");
	jb_sep(j, "data");
	jb_put(j, "\"", 1);
	for (size_t i = 0; i < n; i++)
		jb_printf(j, i ? " %" PRId32 : "%" PRId32, s[i]);
	jb_put(j, "\"", 1);
	jb_close(j, '}');
	free(s);
}

/* Observation i of reading d (obs_emitted(i) holds). */
static void observation(struct mt_fhir *f, struct jb *j, const char *key, const struct dec *d,
                        size_t i)
{
	const struct mt_message *m = &d->m;
	const struct mt_obs *o = &m->obs[i];
	const struct qty *q = qty_of(o->code);
	long dia = bp_partner(m, i);
	char id[64], pid[32], when[64], recv[64];
	uint64_t t = m->ts;

	(void)f;
	(void)snprintf(id, sizeof id, "r%" PRId64 "-%zu", d->row.id, i);
	(void)snprintf(pid, sizeof pid, "%" PRId64, d->row.patient_id);
	(void)mt_message_obs_time(m, o, &t);
	iso_ms(t, when);
	iso_ms(d->row.received_ms, recv);
	jb_open(j, key, '{');
	jb_str(j, "resourceType", "Observation");
	jb_str(j, "id", id);
	jb_open(j, "meta", '{');
	jb_str(j, "lastUpdated", recv);
	if (dia >= 0 || (q != NULL && q->loinc != NULL && !q->lab)) {
		jb_open(j, "profile", '[');
		jb_str(j, NULL, SD "vitalsigns");
		if (dia >= 0)
			jb_str(j, NULL, SD "bp");
		else if (q->profile != NULL)
			jb_str(j, NULL, q->profile);
		jb_close(j, ']');
	}
	jb_close(j, '}');
	jb_str(j, "status", "final");
	jb_open(j, "category", '[');
	jb_open(j, NULL, '{');
	jb_open(j, "coding", '[');
	if (q != NULL && q->lab)
		jb_coding(j, "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory",
		          "Laboratory");
	else
		jb_coding(j, "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs",
		          "Vital Signs");
	jb_close(j, ']');
	jb_close(j, '}');
	jb_close(j, ']');
	if (dia >= 0) {
		jb_open(j, "code", '{');
		jb_open(j, "coding", '[');
		jb_coding(j, LOINC, "85354-9", "Blood pressure panel with all children optional");
		jb_close(j, ']');
		jb_str(j, "text", "Blood pressure");
		jb_close(j, '}');
	} else {
		codeable(j, "code", o, q);
	}
	jb_ref(j, "subject", "Patient", pid);
	jb_str(j, "effectiveDateTime", when);
	if (dia >= 0) {
		jb_open(j, "component", '[');
		jb_open(j, NULL, '{');
		codeable(j, "code", o, q);
		quantity(j, "valueQuantity", o, q);
		jb_close(j, '}');
		jb_open(j, NULL, '{');
		codeable(j, "code", &m->obs[dia], qty_of(150022));
		quantity(j, "valueQuantity", &m->obs[dia], qty_of(150022));
		jb_close(j, '}');
		jb_close(j, ']');
	} else if (o->waveform) {
		sampled(j, o);
	} else {
		quantity(j, "valueQuantity", o, q);
	}
	jb_ref(j, "device", "Device", d->row.dev);
	jb_close(j, '}');
}

/* ---- other resources ----------------------------------------------------------------- */

static void patient(struct mt_fhir *f, struct jb *j, const char *key, const struct mt_patient *p)
{
	char id[32];

	(void)snprintf(id, sizeof id, "%" PRId64, p->id);
	jb_open(j, key, '{');
	jb_str(j, "resourceType", "Patient");
	jb_str(j, "id", id);
	jb_open(j, "identifier", '[');
	jb_open(j, NULL, '{');
	jb_str(j, "use", "usual");
	jb_open(j, "type", '{');
	jb_open(j, "coding", '[');
	jb_coding(j, "http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number");
	jb_close(j, ']');
	jb_close(j, '}');
	jb_str(j, "system", f->mrn_system);
	jb_str(j, "value", p->mrn);
	jb_close(j, '}');
	jb_close(j, ']');
	jb_open(j, "name", '[');
	jb_open(j, NULL, '{');
	jb_str(j, "text", p->name);
	jb_close(j, '}');
	jb_close(j, ']');
	if (strcmp(p->sex, "male") == 0 || strcmp(p->sex, "female") == 0 ||
	    strcmp(p->sex, "other") == 0 || strcmp(p->sex, "unknown") == 0)
		jb_str(j, "gender", p->sex);
	if (strlen(p->birth_date) == 10)
		jb_str(j, "birthDate", p->birth_date);
	jb_close(j, '}');
}

static const char *device_status(enum mt_dev_status s)
{
	return s == MT_DEV_ACTIVE ? "active" : "inactive";
}

/* Device `serial` (under the lock). */
static enum mt_err device(struct mt_fhir *f, struct jb *j, const char *key, const char *serial)
{
	struct mt_device_rec rec;
	const struct mt_cert *const *roots = NULL;
	const int64_t *ids = NULL;
	size_t n_roots = 0;
	char mfg[MT_REG_NAME_MAX + 1] = "";
	int64_t sid = 0, pid = 0;
	enum mt_err e = mt_registry_device(f->reg, serial, &rec);

	if (e != MT_OK)
		return e == MT_ERR_REG_UNKNOWN ? MT_ERR_NOT_FOUND : e;
	if (mt_registry_roots(f->reg, &roots, &ids, &n_roots) == MT_OK)
		for (size_t i = 0; i < n_roots; i++)
			if (ids[i] == rec.manufacturer_id &&
			    mt_cert_subject_cn(roots[i], mfg, sizeof mfg) != MT_OK)
				mfg[0] = '\0';
	jb_open(j, key, '{');
	jb_str(j, "resourceType", "Device");
	jb_str(j, "id", rec.serial);
	jb_open(j, "identifier", '[');
	jb_open(j, NULL, '{');
	jb_str(j, "system", DEVICE_ID_SYSTEM);
	jb_str(j, "value", rec.serial);
	jb_close(j, '}');
	jb_close(j, ']');
	jb_str(j, "status", device_status(rec.status));
	if (mfg[0] != '\0')
		jb_str(j, "manufacturer", mfg);
	jb_str(j, "serialNumber", rec.serial);
	if (rec.device_class[0] != '\0')
		jb_str(j, "modelNumber", rec.device_class);
	if (f->store != NULL && mt_store_fhir_latest_status(f->store, rec.serial, &sid) == MT_OK &&
	    sid > 0) {
		struct dec d;

		if (dec_load(f, sid, &d) == MT_OK && d.row.typ == MT_TYP_STATUS &&
		    mt_cose_sign1_decode(d.row.sign1, d.row.sign1_len, true, &d.s1) == MT_OK &&
		    d.s1.payload != NULL &&
		    mt_message_decode(d.s1.payload, d.s1.payload_len, &d.m, f->obs, MT_OBS_MAX, NULL) ==
		            MT_OK &&
		    (d.m.st.has & MT_ST_FW) && d.m.st.fw_len > 0 && d.m.st.fw_len < 128) {
			char fw[128];

			memcpy(fw, d.m.st.fw, d.m.st.fw_len);
			fw[d.m.st.fw_len] = '\0';
			jb_open(j, "version", '[');
			jb_open(j, NULL, '{');
			jb_str(j, "value", fw);
			jb_close(j, '}');
			jb_close(j, ']');
		}
		dec_clear(&d);
	}
	if (f->store != NULL && mt_store_assigned(f->store, rec.serial, mt_deploy_now_ms(), &pid) ==
	                                MT_OK &&
	    pid > 0) {
		char ps[32];

		(void)snprintf(ps, sizeof ps, "%" PRId64, pid);
		jb_ref(j, "patient", "Patient", ps);
	}
	jb_close(j, '}');
	return MT_OK;
}

/* Provenance of reading d (vital signs with at least one observation). */
static void provenance(struct jb *j, const char *key, const struct dec *d)
{
	char id[32], recv[64], hex[65], ref[96];
	uint8_t h[32];
	char *b64;
	size_t b64_len = 4 * ((d->row.sign1_len + 2) / 3) + 1;

	(void)snprintf(id, sizeof id, "r%" PRId64, d->row.id);
	iso_ms(d->row.received_ms, recv);
	if (mt_sha256(d->row.sign1, d->row.sign1_len, h) != MT_OK) {
		j->bad = true;
		return;
	}
	for (size_t i = 0; i < 32; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", h[i]);
	b64 = malloc(b64_len);
	if (b64 == NULL) {
		j->bad = true;
		return;
	}
	EVP_EncodeBlock((unsigned char *)b64, d->row.sign1, (int)d->row.sign1_len);
	jb_open(j, key, '{');
	jb_str(j, "resourceType", "Provenance");
	jb_str(j, "id", id);
	jb_open(j, "target", '[');
	for (size_t i = 0; i < d->m.n_obs; i++) {
		if (!obs_emitted(&d->m, i))
			continue;
		(void)snprintf(ref, sizeof ref, "Observation/r%" PRId64 "-%zu", d->row.id, i);
		jb_open(j, NULL, '{');
		jb_str(j, "reference", ref);
		jb_close(j, '}');
	}
	jb_close(j, ']');
	jb_str(j, "recorded", recv);
	jb_open(j, "agent", '[');
	jb_open(j, NULL, '{');
	jb_open(j, "type", '{');
	jb_open(j, "coding", '[');
	jb_coding(j, "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author",
	          "Author");
	jb_close(j, ']');
	jb_close(j, '}');
	jb_ref(j, "who", "Device", d->row.dev);
	jb_close(j, '}');
	jb_close(j, ']');
	jb_open(j, "signature", '[');
	jb_open(j, NULL, '{');
	jb_open(j, "extension", '[');
	jb_open(j, NULL, '{');
	jb_str(j, "url", EXT_BASE "cose-sign1-sha256");
	jb_str(j, "valueString", hex);
	jb_close(j, '}');
	jb_open(j, NULL, '{');
	jb_str(j, "url", EXT_BASE "operational-certificate-serial");
	jb_str(j, "valueString", d->row.cert_serial);
	jb_close(j, '}');
	jb_close(j, ']');
	jb_open(j, "type", '[');
	jb_coding(j, "urn:iso-astm:E1762-95:2013", "1.2.840.10065.1.12.1.5", "Verification Signature");
	jb_close(j, ']');
	jb_str(j, "when", recv);
	jb_ref(j, "who", "Device", d->row.dev);
	jb_str(j, "sigFormat", "application/cose");
	jb_str(j, "data", b64);
	jb_close(j, '}');
	jb_close(j, ']');
	jb_close(j, '}');
	free(b64);
}

/* ---- bundles ------------------------------------------------------------------------- */

struct page {
	uint64_t count, offset;
	int64_t snapshot;
	bool clamped;
	uint64_t total;
	struct jb *j;
};

static void bundle_open(struct jb *j)
{
	char now[64];

	iso_ms(mt_deploy_now_ms(), now);
	j->first[0] = true;
	jb_open(j, NULL, '{');
	jb_str(j, "resourceType", "Bundle");
	jb_open(j, "meta", '{');
	jb_str(j, "lastUpdated", now);
	jb_close(j, '}');
	jb_str(j, "type", "searchset");
	jb_open(j, "entry", '[');
}

static void entry_open(struct mt_fhir *f, struct jb *j, const char *type, const char *id)
{
	char url[MT_SMART_URL_MAX + 160];

	(void)snprintf(url, sizeof url, "%s/fhir/%s/%s", mt_smart_base_url(f->smart), type, id);
	jb_open(j, NULL, '{');
	jb_str(j, "fullUrl", url);
}

static void entry_close(struct jb *j)
{
	jb_open(j, "search", '{');
	jb_str(j, "mode", "match");
	jb_close(j, '}');
	jb_close(j, '}');
}

/* The link URL for a page: base/fhir/Type?<params>&_count=&_offset=&_snapshot= */
static void page_link(struct mt_fhir *f, struct jb *j, const char *rel, const char *type,
                      const struct query *q, const struct page *pg, uint64_t offset)
{
	jb_open(j, NULL, '{');
	jb_str(j, "relation", rel);
	jb_sep(j, "url");
	jb_put(j, "\"", 1);
	jb_puts(j, mt_smart_base_url(f->smart));
	jb_puts(j, "/fhir/");
	jb_puts(j, type);
	jb_puts(j, "?");
	for (size_t i = 0; i < q->n; i++) {
		const char *n = q->p[i].name;

		if (strcmp(n, "_count") == 0 || strcmp(n, "_offset") == 0 ||
		    strcmp(n, "_snapshot") == 0 || strcmp(n, "_format") == 0)
			continue;
		url_enc(j, n);
		jb_puts(j, "=");
		url_enc(j, q->p[i].value);
		jb_puts(j, "&");
	}
	jb_printf(j, "_count=%" PRIu64 "&_offset=%" PRIu64, pg->count, offset);
	if (pg->snapshot > 0)
		jb_printf(j, "&_snapshot=%" PRId64, pg->snapshot);
	jb_put(j, "\"", 1);
	jb_close(j, '}');
}

static void bundle_close(struct mt_fhir *f, struct jb *j, const char *type, const struct query *q,
                         const struct page *pg)
{
	if (pg->clamped) {
		jb_open(j, NULL, '{');
		jb_open(j, "resource", '{');
		jb_str(j, "resourceType", "OperationOutcome");
		jb_open(j, "issue", '[');
		jb_open(j, NULL, '{');
		jb_str(j, "severity", "warning");
		jb_str(j, "code", "informational");
		jb_str(j, "diagnostics", "_count was more than 100: pages hold at most 100 entries");
		jb_close(j, '}');
		jb_close(j, ']');
		jb_close(j, '}');
		jb_open(j, "search", '{');
		jb_str(j, "mode", "outcome");
		jb_close(j, '}');
		jb_close(j, '}');
	}
	jb_close(j, ']');
	jb_int(j, "total", (int64_t)pg->total);
	jb_open(j, "link", '[');
	page_link(f, j, "self", type, q, pg, pg->offset);
	if (pg->offset + pg->count < pg->total && pg->count > 0)
		page_link(f, j, "next", type, q, pg, pg->offset + pg->count);
	jb_close(j, ']');
	jb_close(j, '}');
}

/* Does the page take the match number `k` (0-based)? */
static bool page_takes(const struct page *pg, uint64_t k)
{
	return k >= pg->offset && k < pg->offset + pg->count;
}

/* ---- handlers -------------------------------------------------------------------------- */

struct ctx {
	struct mt_fhir *f;
	const struct mt_https_req *rq;
	struct mt_https_resp *rs;
	struct query *q;
	char client[MT_CLIENT_NAME_MAX + 1];
};

/* _count, _offset, _snapshot: false after answering 400. */
static bool paging(struct ctx *c, struct page *pg)
{
	bool dup = false;
	const char *cs = qget(c->q, "_count", &dup), *os = qget(c->q, "_offset", &dup),
	           *ss = qget(c->q, "_snapshot", &dup);
	uint64_t v;

	memset(pg, 0, sizeof *pg);
	pg->count = COUNT_DEFAULT;
	if (dup) {
		refuse(c->f, c->rq, c->rs, 400, "invalid", c->client, "a paging parameter given twice");
		return false;
	}
	if (cs != NULL) {
		if (!parse_u64(cs, UINT64_C(999999999), &v)) {
			refuse(c->f, c->rq, c->rs, 400, "invalid", c->client,
			       "_count must be a non-negative integer");
			return false;
		}
		pg->clamped = v > COUNT_MAX;
		pg->count = v > COUNT_MAX ? COUNT_MAX : v;
	}
	if (os != NULL && !parse_u64(os, UINT64_C(100000000), &pg->offset)) {
		refuse(c->f, c->rq, c->rs, 400, "invalid", c->client, "_offset must be an integer");
		return false;
	}
	if (ss != NULL) {
		if (!parse_u64(ss, (uint64_t)INT64_MAX, &v) || v == 0) {
			refuse(c->f, c->rq, c->rs, 400, "invalid", c->client, "_snapshot is not ours");
			return false;
		}
		pg->snapshot = (int64_t)v;
	}
	return true;
}

static bool no_unused(struct ctx *c)
{
	const char *u = qunused(c->q);

	if (u == NULL)
		return true;
	if (strcmp(u, "_include") == 0 || strcmp(u, "_revinclude") == 0 || strcmp(u, "_has") == 0 ||
	    strchr(u, '.') != NULL || strchr(u, ':') != NULL)
		refuse(c->f, c->rq, c->rs, 400, "not-supported", c->client,
		       "search parameter '%s' is not supported (no _include, _revinclude, _has, "
		       "chains or modifiers)",
		       u);
	else
		refuse(c->f, c->rq, c->rs, 400, "not-supported", c->client,
		       "unknown search parameter '%s' for this resource", u);
	return false;
}

static void done_read(struct ctx *c, struct jb *j, const char *type, int64_t n)
{
	answer_jb(c->rs, 200, j);
	audit_fhir(c->f, c->rq, c->client, "fhir.read", MT_AUDIT_OK, type, NULL, n);
}

static bool store_ready(struct ctx *c)
{
	if (c->f->store != NULL)
		return true;
	refuse(c->f, c->rq, c->rs, 503, "transient", c->client, "the readings store is not open");
	return false;
}

static void patient_read(struct ctx *c, const char *id)
{
	struct mt_patient *p = calloc(1, sizeof *p);
	struct jb j = {0};
	uint64_t v;
	enum mt_err e = MT_ERR_NOT_FOUND;

	if (p == NULL) {
		c->rs->status = 503;
		return;
	}
	if (parse_u64(id, (uint64_t)INT64_MAX, &v) && v > 0) {
		pthread_mutex_lock(&c->f->lock);
		e = mt_store_patient_get(c->f->store, (int64_t)v, p);
		pthread_mutex_unlock(&c->f->lock);
	}
	if (e != MT_OK) {
		refuse(c->f, c->rq, c->rs, e == MT_ERR_NOT_FOUND ? 404 : 500,
		       e == MT_ERR_NOT_FOUND ? "not-found" : "exception", c->client,
		       "Patient/%s: %s", id, e == MT_ERR_NOT_FOUND ? "no such patient" : mt_err_str(e));
	} else {
		j.first[0] = true;
		patient(c->f, &j, NULL, p);
		done_read(c, &j, "Patient", 1);
	}
	mt_wipe(p, sizeof *p);
	free(p);
}

static void patient_search(struct ctx *c)
{
	bool dup = false;
	const char *ident = qget(c->q, "identifier", &dup), *idp = qget(c->q, "_id", &dup);
	const char *sys = NULL, *mrn = NULL;
	size_t sys_len = 0, n = 0;
	int64_t *ids = NULL;
	struct mt_patient *p = NULL;
	struct page pg;
	struct jb j = {0};
	uint64_t k = 0, want_id = 0;
	enum mt_err e = MT_OK;

	if (!paging(c, &pg) || !no_unused(c))
		return;
	if (dup) {
		refuse(c->f, c->rq, c->rs, 400, "invalid", c->client, "a parameter given twice");
		return;
	}
	if (idp != NULL && (!parse_u64(idp, (uint64_t)INT64_MAX, &want_id) || want_id == 0)) {
		refuse(c->f, c->rq, c->rs, 400, "invalid", c->client, "_id is not a patient id");
		return;
	}
	if (ident != NULL) {
		const char *bar = strchr(ident, '|');

		mrn = bar ? bar + 1 : ident;
		if (bar != NULL) {
			sys = ident;
			sys_len = (size_t)(bar - ident);
		}
		if (mrn[0] == '\0') {
			refuse(c->f, c->rq, c->rs, 400, "invalid", c->client, "identifier has no value");
			return;
		}
	}
	ids = calloc(PATIENTS_SCAN, sizeof *ids);
	p = calloc(1, sizeof *p);
	if (ids == NULL || p == NULL) {
		free(ids);
		free(p);
		c->rs->status = 503;
		return;
	}
	bundle_open(&j);
	pthread_mutex_lock(&c->f->lock);
	e = mt_store_patient_ids(c->f->store, ids, PATIENTS_SCAN, &n);
	if (n > PATIENTS_SCAN)
		n = PATIENTS_SCAN;
	for (size_t i = 0; e == MT_OK && i < n; i++) {
		char id[32];

		if (want_id != 0 && (uint64_t)ids[i] != want_id)
			continue;
		if (mt_store_patient_get(c->f->store, ids[i], p) != MT_OK)
			continue;
		if (mrn != NULL &&
		    ((sys != NULL && sys_len > 0 &&
		      (sys_len != strlen(c->f->mrn_system) ||
		       memcmp(sys, c->f->mrn_system, sys_len) != 0)) ||
		     strcmp(p->mrn, mrn) != 0))
			continue;
		if (page_takes(&pg, k)) {
			(void)snprintf(id, sizeof id, "%" PRId64, p->id);
			entry_open(c->f, &j, "Patient", id);
			patient(c->f, &j, "resource", p);
			entry_close(&j);
		}
		k++;
	}
	pthread_mutex_unlock(&c->f->lock);
	mt_wipe(p, sizeof *p);
	free(p);
	free(ids);
	if (e != MT_OK) {
		free(j.b);
		refuse(c->f, c->rq, c->rs, 500, "exception", c->client, "the store: %s", mt_err_str(e));
		return;
	}
	pg.total = k;
	bundle_close(c->f, &j, "Patient", c->q, &pg);
	done_read(c, &j, "Patient", (int64_t)k);
}

/* "r<id>-<i>" or "r<id>" (idx NULL) */
static bool parse_rid(const char *s, int64_t *id, uint64_t *idx)
{
	char buf[48];
	char *dash;
	uint64_t v;

	if (s[0] != 'r' || strlen(s) >= sizeof buf)
		return false;
	(void)snprintf(buf, sizeof buf, "%s", s + 1);
	dash = strchr(buf, '-');
	if ((dash != NULL) != (idx != NULL))
		return false;
	if (dash != NULL) {
		*dash = '\0';
		if (!parse_u64(dash + 1, MT_OBS_MAX - 1, idx))
			return false;
	}
	if (!parse_u64(buf, (uint64_t)INT64_MAX, &v) || v == 0)
		return false;
	*id = (int64_t)v;
	return true;
}

static void observation_read(struct ctx *c, const char *id)
{
	struct dec d;
	struct jb j = {0};
	int64_t rid;
	uint64_t idx;
	bool found = false;
	enum mt_err e = MT_OK;

	if (parse_rid(id, &rid, &idx)) {
		pthread_mutex_lock(&c->f->lock);
		e = dec_load(c->f, rid, &d);
		if (e == MT_OK && d.ok && idx < d.m.n_obs && obs_emitted(&d.m, (size_t)idx)) {
			j.first[0] = true;
			observation(c->f, &j, NULL, &d, (size_t)idx);
			found = true;
		}
		if (e == MT_OK)
			dec_clear(&d);
		pthread_mutex_unlock(&c->f->lock);
	}
	if (!found) {
		free(j.b);
		refuse(c->f, c->rq, c->rs, e == MT_OK || e == MT_ERR_NOT_FOUND ? 404 : 500,
		       e == MT_OK || e == MT_ERR_NOT_FOUND ? "not-found" : "exception", c->client,
		       "Observation/%s: no such observation", id);
		return;
	}
	done_read(c, &j, "Observation", 1);
}

static void observation_search(struct ctx *c)
{
	struct mt_store_fhir_range r = {0, 0, UINT64_MAX, 0};
	char codes[CODES_MAX][64], pid_s[32];
	size_t n_codes = 0, n = 0;
	uint64_t from = 0, to = UINT64_MAX, k = 0, pv;
	int64_t *ids = NULL;
	bool dup = false, more = false;
	const char *pat = qget(c->q, "patient", &dup), *subj = NULL, *code;
	struct page pg;
	struct jb j = {0};
	enum mt_err e;

	{
		bool d2 = false;

		subj = qget(c->q, "subject", &d2);
		dup = dup || d2;
	}
	code = qget(c->q, "code", &dup);
	for (size_t i = 0; i < c->q->n; i++) /* date may repeat: ge and lt */
		if (strcmp(c->q->p[i].name, "date") == 0) {
			c->q->p[i].used = true;
			if (!apply_date(c->q->p[i].value, &from, &to)) {
				refuse(c->f, c->rq, c->rs, 400, "invalid", c->client,
				       "date must be [eq|ge|gt|le|lt]YYYY[-MM[-DD[Thh:mm[:ss[.sss]](Z|+hh:mm)]]]");
				return;
			}
		}
	if (!paging(c, &pg) || !no_unused(c))
		return;
	if (dup || (pat != NULL && subj != NULL)) {
		refuse(c->f, c->rq, c->rs, 400, "invalid", c->client,
		       "patient, subject and code may be given once (code takes a comma list)");
		return;
	}
	if (subj != NULL)
		pat = subj;
	if (pat != NULL) {
		if (!local_ref(pat, "Patient", pid_s, sizeof pid_s) ||
		    !parse_u64(pid_s, (uint64_t)INT64_MAX, &pv) || pv == 0) {
			refuse(c->f, c->rq, c->rs, 400, "invalid", c->client,
			       "patient must be an id or Patient/<id> of this server: references to "
			       "other servers are never followed");
			return;
		}
		r.patient_id = (int64_t)pv;
	}
	if (code != NULL) {
		const char *p = code;

		while (*p != '\0') {
			size_t l = strcspn(p, ",");

			if (l == 0 || l >= sizeof codes[0] || n_codes == CODES_MAX) {
				refuse(c->f, c->rq, c->rs, 400, "invalid", c->client,
				       "code: at most %d codes of at most 63 bytes", CODES_MAX);
				return;
			}
			memcpy(codes[n_codes], p, l);
			codes[n_codes++][l] = '\0';
			p += l;
			if (*p == ',')
				p++;
		}
	}
	if (!store_ready(c))
		return;
	ids = malloc(SCAN_MAX * sizeof *ids);
	if (ids == NULL) {
		c->rs->status = 503;
		return;
	}
	r.ts_from = from;
	r.ts_to = to > UINT64_MAX - DAY_MS ? UINT64_MAX : to + DAY_MS;
	pthread_mutex_lock(&c->f->lock);
	e = pg.snapshot > 0 ? MT_OK : mt_store_fhir_max_id(c->f->store, &pg.snapshot);
	r.max_id = pg.snapshot;
	if (e == MT_OK)
		e = mt_store_fhir_reading_ids(c->f->store, &r, ids, SCAN_MAX, &n, &more);
	if (e == MT_OK && more) {
		pthread_mutex_unlock(&c->f->lock);
		free(ids);
		refuse(c->f, c->rq, c->rs, 400, "too-costly", c->client,
		       "the search covers more than %d signed readings: narrow it with patient or date",
		       SCAN_MAX);
		return;
	}
	bundle_open(&j);
	for (size_t i = 0; e == MT_OK && i < n && !j.bad; i++) {
		struct dec d;

		if (dec_load(c->f, ids[i], &d) != MT_OK)
			continue;
		for (size_t o = 0; d.ok && o < d.m.n_obs; o++) {
			uint64_t t;

			if (!obs_emitted(&d.m, o) || !mt_message_obs_time(&d.m, &d.m.obs[o], &t) ||
			    t < from || t >= to || !code_match(&d.m, o, codes, n_codes))
				continue;
			if (page_takes(&pg, k)) {
				char oid[64];

				(void)snprintf(oid, sizeof oid, "r%" PRId64 "-%zu", d.row.id, o);
				entry_open(c->f, &j, "Observation", oid);
				observation(c->f, &j, "resource", &d, o);
				entry_close(&j);
			}
			k++;
		}
		dec_clear(&d);
	}
	pthread_mutex_unlock(&c->f->lock);
	free(ids);
	if (e != MT_OK) {
		free(j.b);
		refuse(c->f, c->rq, c->rs, 500, "exception", c->client, "the store: %s", mt_err_str(e));
		return;
	}
	pg.total = k;
	bundle_close(c->f, &j, "Observation", c->q, &pg);
	done_read(c, &j, "Observation", (int64_t)k);
}

static void device_read(struct ctx *c, const char *id)
{
	struct jb j = {0};
	enum mt_err e = MT_ERR_NOT_FOUND;

	j.first[0] = true;
	if (mt_device_id_valid(id, strlen(id))) {
		pthread_mutex_lock(&c->f->lock);
		e = device(c->f, &j, NULL, id);
		pthread_mutex_unlock(&c->f->lock);
	}
	if (e != MT_OK) {
		free(j.b);
		refuse(c->f, c->rq, c->rs, e == MT_ERR_NOT_FOUND ? 404 : 500,
		       e == MT_ERR_NOT_FOUND ? "not-found" : "exception", c->client,
		       "Device/%s: no such device", id);
		return;
	}
	done_read(c, &j, "Device", 1);
}

struct devlist {
	char (*ids)[MT_DEVICE_ID_MAX + 1];
	size_t n, cap;
};

static enum mt_err devlist_add(const struct mt_device_rec *d, void *arg)
{
	struct devlist *l = arg;

	if (l->n == l->cap)
		return MT_ERR_BUFFER;
	memcpy(l->ids[l->n++], d->serial, sizeof d->serial);
	return MT_OK;
}

static void device_search(struct ctx *c)
{
	bool dup = false;
	const char *pat = qget(c->q, "patient", &dup), *ident = qget(c->q, "identifier", &dup);
	char pid_s[32];
	uint64_t pv = 0, k = 0;
	struct devlist l = {0};
	struct page pg;
	struct jb j = {0};
	enum mt_err e = MT_OK;

	if (!paging(c, &pg) || !no_unused(c))
		return;
	if (dup) {
		refuse(c->f, c->rq, c->rs, 400, "invalid", c->client, "a parameter given twice");
		return;
	}
	if (pat != NULL && (!local_ref(pat, "Patient", pid_s, sizeof pid_s) ||
	                    !parse_u64(pid_s, (uint64_t)INT64_MAX, &pv) || pv == 0)) {
		refuse(c->f, c->rq, c->rs, 400, "invalid", c->client,
		       "patient must be an id or Patient/<id> of this server");
		return;
	}
	if (ident != NULL && strchr(ident, '|') != NULL) {
		const char *bar = strchr(ident, '|');

		if (bar != ident && ((size_t)(bar - ident) != strlen(DEVICE_ID_SYSTEM) ||
		                     memcmp(ident, DEVICE_ID_SYSTEM, strlen(DEVICE_ID_SYSTEM)) != 0))
			ident = "\x01"; /* another system: nothing matches */
		else
			ident = bar + 1;
	}
	l.cap = pv ? 64 : DEVICES_SCAN;
	l.ids = calloc(l.cap, sizeof *l.ids);
	if (l.ids == NULL) {
		c->rs->status = 503;
		return;
	}
	bundle_open(&j);
	pthread_mutex_lock(&c->f->lock);
	if (pv != 0) {
		if (c->f->store == NULL)
			e = MT_ERR_STORE_DB;
		else
			e = mt_store_patient_devices(c->f->store, (int64_t)pv, l.ids, l.cap, &l.n);
	} else {
		e = mt_registry_devices(c->f->reg, 0, devlist_add, &l);
		if (e == MT_ERR_BUFFER)
			e = MT_OK;
	}
	for (size_t i = 0; e == MT_OK && i < l.n; i++) {
		if (ident != NULL && strcmp(ident, l.ids[i]) != 0)
			continue;
		if (page_takes(&pg, k)) {
			struct jb probe = {0};

			probe.first[0] = true;
			if (device(c->f, &probe, NULL, l.ids[i]) != MT_OK) {
				free(probe.b);
				continue;
			}
			free(probe.b);
			entry_open(c->f, &j, "Device", l.ids[i]);
			(void)device(c->f, &j, "resource", l.ids[i]);
			entry_close(&j);
		}
		k++;
	}
	pthread_mutex_unlock(&c->f->lock);
	free(l.ids);
	if (e != MT_OK) {
		free(j.b);
		refuse(c->f, c->rq, c->rs, 500, "exception", c->client, "%s", mt_err_str(e));
		return;
	}
	pg.total = k;
	bundle_close(c->f, &j, "Device", c->q, &pg);
	done_read(c, &j, "Device", (int64_t)k);
}

/* Provenance r<id>: into j (key), true when the reading has observations. */
static bool provenance_of(struct mt_fhir *f, struct jb *j, const char *key, int64_t rid,
                          bool entry)
{
	struct dec d;
	bool ok = false;

	if (dec_load(f, rid, &d) != MT_OK)
		return false;
	if (d.ok && d.m.n_obs > 0) {
		if (entry) {
			char id[32];

			(void)snprintf(id, sizeof id, "r%" PRId64, rid);
			entry_open(f, j, "Provenance", id);
		}
		provenance(j, key, &d);
		if (entry)
			entry_close(j);
		ok = true;
	}
	dec_clear(&d);
	return ok;
}

static void provenance_read(struct ctx *c, const char *id)
{
	struct jb j = {0};
	int64_t rid;
	bool ok = false;

	j.first[0] = true;
	if (parse_rid(id, &rid, NULL)) {
		pthread_mutex_lock(&c->f->lock);
		ok = provenance_of(c->f, &j, NULL, rid, false);
		pthread_mutex_unlock(&c->f->lock);
	}
	if (!ok) {
		free(j.b);
		refuse(c->f, c->rq, c->rs, 404, "not-found", c->client, "Provenance/%s: not found", id);
		return;
	}
	done_read(c, &j, "Provenance", 1);
}

static void provenance_search(struct ctx *c)
{
	bool dup = false;
	const char *target = qget(c->q, "target", &dup);
	char oid[64];
	int64_t rid = 0;
	uint64_t idx = 0, k = 0;
	struct page pg;
	struct jb j = {0};

	if (!paging(c, &pg) || !no_unused(c))
		return;
	if (dup || target == NULL) {
		refuse(c->f, c->rq, c->rs, 400, "required", c->client,
		       "Provenance search needs target=Observation/<id> (once)");
		return;
	}
	if (!local_ref(target, "Observation", oid, sizeof oid) || !parse_rid(oid, &rid, &idx)) {
		refuse(c->f, c->rq, c->rs, 400, "invalid", c->client,
		       "target must be Observation/<id> of this server");
		return;
	}
	bundle_open(&j);
	pthread_mutex_lock(&c->f->lock);
	{
		struct dec d;

		if (dec_load(c->f, rid, &d) == MT_OK) {
			bool has = d.ok && idx < d.m.n_obs && obs_emitted(&d.m, (size_t)idx);

			dec_clear(&d);
			if (has) {
				if (page_takes(&pg, 0))
					(void)provenance_of(c->f, &j, "resource", rid, true);
				k = 1;
			}
		}
	}
	pthread_mutex_unlock(&c->f->lock);
	pg.total = k;
	bundle_close(c->f, &j, "Provenance", c->q, &pg);
	done_read(c, &j, "Provenance", (int64_t)k);
}

/* ---- metadata ---------------------------------------------------------------------- */

static void search_param(struct jb *j, const char *name, const char *type)
{
	jb_open(j, NULL, '{');
	jb_str(j, "name", name);
	jb_str(j, "type", type);
	jb_close(j, '}');
}

static void cap_resource(struct jb *j, const char *type, const char *const *params,
                         const char *const *types)
{
	jb_open(j, NULL, '{');
	jb_str(j, "type", type);
	jb_open(j, "interaction", '[');
	jb_open(j, NULL, '{');
	jb_str(j, "code", "read");
	jb_close(j, '}');
	jb_open(j, NULL, '{');
	jb_str(j, "code", "search-type");
	jb_close(j, '}');
	jb_close(j, ']');
	jb_open(j, "searchParam", '[');
	for (size_t i = 0; params[i] != NULL; i++)
		search_param(j, params[i], types[i]);
	jb_close(j, ']');
	jb_close(j, '}');
}

static void metadata(struct mt_fhir *f, const struct mt_https_req *rq, struct mt_https_resp *rs)
{
	static const char *const pp[] = {"identifier", "_id", NULL};
	static const char *const pt[] = {"token", "token", NULL};
	static const char *const op[] = {"patient", "subject", "code", "date", NULL};
	static const char *const ot[] = {"reference", "reference", "token", "date", NULL};
	static const char *const dp[] = {"patient", "identifier", NULL};
	static const char *const dt[] = {"reference", "token", NULL};
	static const char *const vp[] = {"target", NULL};
	static const char *const vt[] = {"reference", NULL};
	char now[64], url[MT_SMART_URL_MAX + 32];
	struct jb j = {0};

	iso_ms(mt_deploy_now_ms(), now);
	now[10] = '\0'; /* a date */
	j.first[0] = true;
	jb_open(&j, NULL, '{');
	jb_str(&j, "resourceType", "CapabilityStatement");
	jb_str(&j, "status", "active");
	jb_str(&j, "date", now);
	jb_str(&j, "publisher", "medtrust");
	jb_str(&j, "kind", "instance");
	jb_open(&j, "software", '{');
	jb_str(&j, "name", "medtrustd");
	jb_close(&j, '}');
	jb_open(&j, "implementation", '{');
	jb_str(&j, "description", "medtrust hub FHIR R4 read API");
	(void)snprintf(url, sizeof url, "%s/fhir", mt_smart_base_url(f->smart));
	jb_str(&j, "url", url);
	jb_close(&j, '}');
	jb_str(&j, "fhirVersion", "4.0.1");
	jb_open(&j, "format", '[');
	jb_str(&j, NULL, "json");
	jb_close(&j, ']');
	jb_open(&j, "rest", '[');
	jb_open(&j, NULL, '{');
	jb_str(&j, "mode", "server");
	jb_open(&j, "security", '{');
	jb_open(&j, "extension", '[');
	jb_open(&j, NULL, '{');
	jb_str(&j, "url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris");
	jb_open(&j, "extension", '[');
	jb_open(&j, NULL, '{');
	jb_str(&j, "url", "token");
	(void)snprintf(url, sizeof url, "%s/auth/token", mt_smart_base_url(f->smart));
	jb_str(&j, "valueUri", url);
	jb_close(&j, '}');
	jb_close(&j, ']');
	jb_close(&j, '}');
	jb_close(&j, ']');
	jb_open(&j, "service", '[');
	jb_open(&j, NULL, '{');
	jb_open(&j, "coding", '[');
	jb_coding(&j, "http://terminology.hl7.org/CodeSystem/restful-security-service", "SMART-on-FHIR",
	          "SMART-on-FHIR");
	jb_close(&j, ']');
	jb_close(&j, '}');
	jb_close(&j, ']');
	jb_str(&j, "description", "SMART backend services: client_credentials with a private_key_jwt "
	                          "assertion (ES384 or RS384); see /.well-known/smart-configuration");
	jb_close(&j, '}');
	jb_open(&j, "resource", '[');
	cap_resource(&j, "Patient", pp, pt);
	cap_resource(&j, "Observation", op, ot);
	cap_resource(&j, "Device", dp, dt);
	cap_resource(&j, "Provenance", vp, vt);
	jb_close(&j, ']');
	jb_close(&j, '}');
	jb_close(&j, ']');
	jb_close(&j, '}');
	answer_jb(rs, 200, &j);
	(void)rq;
}

/* ---- routing --------------------------------------------------------------------------- */

/* Does the client want something other than JSON? */
static bool wants_other(const struct mt_https_req *rq, struct query *q, const char **why)
{
	bool dup = false;
	const char *fmt = qget(q, "_format", &dup);

	if (fmt != NULL && strcmp(fmt, "json") != 0 && strcmp(fmt, "application/json") != 0 &&
	    strcmp(fmt, "application/fhir+json") != 0) {
		*why = "only JSON is served (_format=json); XML is never produced or parsed";
		return true;
	}
	if (rq->accept != NULL && strstr(rq->accept, "json") == NULL &&
	    strstr(rq->accept, "*/*") == NULL && strstr(rq->accept, "application/*") == NULL) {
		*why = "only application/fhir+json is served; XML is never produced or parsed";
		return true;
	}
	return false;
}

static const char *const types[] = {"Patient", "Observation", "Device", "Provenance"};

void mt_fhir_handle(struct mt_fhir *f, const struct mt_https_req *rq, struct mt_https_resp *rs)
{
	struct ctx c = {f, rq, rs, NULL, ""};
	const char *path = rq->path + 5; /* after "/fhir" */
	const char *why = NULL, *type = NULL, *slash;
	char id[80] = "";
	size_t tl;
	int st;

	if ((strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) ||
	    rq->body_len > 0) {
		refuse(f, rq, rs, 405, "not-supported", NULL,
		       "this FHIR server is read-only: GET without a body");
		rs->extra_header_name = "Allow";
		rs->extra_header_value = "GET";
		return;
	}
	c.q = malloc(sizeof *c.q);
	if (c.q == NULL) {
		rs->status = 503;
		return;
	}
	if (!query_parse(rq->query, c.q, &why)) {
		refuse(f, rq, rs, 400, "invalid", NULL, "%s", why);
		goto out;
	}
	if (wants_other(rq, c.q, &why)) {
		refuse(f, rq, rs, 406, "not-supported", NULL, "%s", why);
		goto out;
	}
	if (strcmp(path, "/metadata") == 0) {
		metadata(f, rq, rs);
		goto out;
	}
	if (path[0] != '/') {
		refuse(f, rq, rs, 404, "not-found", NULL, "no such FHIR endpoint");
		goto out;
	}
	path++;
	slash = strchr(path, '/');
	tl = slash ? (size_t)(slash - path) : strlen(path);
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strlen(types[i]) == tl && memcmp(types[i], path, tl) == 0)
			type = types[i];
	if (type == NULL) {
		refuse(f, rq, rs, 404, "not-supported", NULL, "no such resource type here");
		goto out;
	}
	if (slash != NULL) {
		if (strlen(slash + 1) == 0 || strlen(slash + 1) >= sizeof id ||
		    strchr(slash + 1, '/') != NULL) {
			refuse(f, rq, rs, 404, "not-found", NULL, "no such FHIR endpoint");
			goto out;
		}
		(void)snprintf(id, sizeof id, "%s", slash + 1);
	}
	st = mt_smart_authorize(f->smart, rq, type, id[0] ? 'r' : 's', c.client, &why);
	if (st != 0) {
		refuse(f, rq, rs, st, st == 401 ? "login" : "forbidden", c.client, "%s", why);
		if (st == 401) {
			rs->extra_header_name = "WWW-Authenticate";
			rs->extra_header_value = rq->authorization == NULL
			                                 ? "Bearer realm=\"fhir\""
			                                 : "Bearer realm=\"fhir\", error=\"invalid_token\"";
		}
		goto out;
	}
	if (id[0] != '\0') {
		const char *u = qunused(c.q);

		if (u != NULL) {
			refuse(f, rq, rs, 400, "not-supported", c.client,
			       "a read by id takes no parameter ('%s')", u);
			goto out;
		}
	}
	if (!store_ready(&c))
		goto out;
	if (strcmp(type, "Patient") == 0)
		id[0] ? patient_read(&c, id) : patient_search(&c);
	else if (strcmp(type, "Observation") == 0)
		id[0] ? observation_read(&c, id) : observation_search(&c);
	else if (strcmp(type, "Device") == 0)
		id[0] ? device_read(&c, id) : device_search(&c);
	else
		id[0] ? provenance_read(&c, id) : provenance_search(&c);
out:
	free(c.q);
}

/* ---- life ------------------------------------------------------------------------------- */

enum mt_err mt_fhir_open(struct mt_deploy *d, struct mt_smart *smart, mt_console_audit_fn audit,
                         void *audit_arg, struct mt_fhir **out, char *why, size_t why_cap)
{
	struct mt_fhir *f;
	const char *sys;
	enum mt_err e;

	if (d == NULL || smart == NULL || audit == NULL || out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (why != NULL && why_cap > 0)
		why[0] = '\0';
	f = calloc(1, sizeof *f);
	if (f == NULL)
		return MT_ERR_NOMEM;
	f->d = d;
	f->smart = smart;
	f->audit = audit;
	f->audit_arg = audit_arg;
	pthread_mutex_init(&f->lock, NULL);
	sys = mt_deploy_get(d, "fhir_mrn_system");
	(void)snprintf(f->mrn_system, sizeof f->mrn_system, "%s",
	               sys != NULL ? sys : DEFAULT_MRN_SYSTEM);
	f->obs = calloc(MT_OBS_MAX, sizeof *f->obs);
	if (f->obs == NULL) {
		mt_fhir_close(f);
		return MT_ERR_NOMEM;
	}
	e = mt_registry_open_readonly(mt_deploy_get(d, "db_path"), &f->reg);
	if (e != MT_OK) {
		if (why != NULL)
			(void)snprintf(why, why_cap, "FHIR: the registry: %s", mt_err_str(e));
		mt_fhir_close(f);
		return e;
	}
	e = mt_deploy_open_store(d, &f->store);
	if (e != MT_OK) {
		f->store = NULL;
		if (why != NULL)
			(void)snprintf(why, why_cap, "FHIR serves no resources: the readings store could "
			                             "not be opened: %s",
			               mt_err_str(e));
	}
	*out = f;
	return MT_OK;
}

void mt_fhir_close(struct mt_fhir *f)
{
	if (f == NULL)
		return;
	mt_store_close(f->store);
	mt_registry_close(f->reg);
	free(f->obs);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
