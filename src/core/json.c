/*
 * json.c — the JSON form of an MTP/1 message (protocol §9; mt_json.h).
 *
 * JSON → message.  json_read.c reads the text into a tree (strict RFC 8259,
 * duplicate names refused, "\u0000" allowed so that every CBOR text string
 * has a JSON form, integers kept exact from −2^64 to 2^64 − 1); this file
 * walks the tree by hand, refusing any name it does not know at any level
 * and any value of the wrong JSON type, and finally asks mt_message_check()
 * — the same check the encoder applies — whether the result is a message.
 * The reader classifies numbers exactly as §9 wants: a number written with
 * '.', 'e' or 'E' is a float, any other an integer, and an integer keeps its
 * exact CBOR form (unsigned value, or −1 − value for a negative one), so
 * every `uint` and `int` field of §5 takes its whole range.  An integer the
 * reader could not hold (beyond 2^64 − 1 or below −2^64) is refused here,
 * with the name of the field it was meant for.  jansson, the library this
 * file used before, keeps integers in a long long and could not take
 * `"queue": 18446744073709551615` (json_read.c has the measurements).
 *
 * Memory: a first pass over the tree sizes one block (observations, then
 * the three text fields, then waveform sample bytes at ≤ 5 bytes a sample,
 * the bound of mt_waveform_encode for int32 deltas); the second pass fills
 * it.  The arena allocator checks every take against the size, so a
 * disagreement between the passes is an MT_ERR_INTERNAL, never an overrun.
 * The tree is freed before returning: the message owns nothing else.
 * Errors latch: the first reason written wins.
 *
 * Message → JSON is written by hand as well, because the protocol needs
 * integers over the whole CBOR range (uint64 and negative integers down to
 * −2^64) and floats that read back as the same double *and* still look like
 * floats (97.0 stays `97.0`; a plain "%.17g" would write `97` and turn the
 * value into an integer).  The shortest of %.15g/%.16g/%.17g that
 * round-trips is used, with ".0" appended when the text has no '.', 'e' or
 * 'n'.  Output grows in a heap buffer bounded at MT_JSON_OUT_MAX; a failure
 * latches and is reported once at the end.
 */
#include "medtrust/mt_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_int.h"

/* Bytes a waveform sample may take as a zigzag-LEB128 delta of int32s. */
#define MT_JSON_SAMPLE_BYTES 5
/* Upper bound of one formatted message (a checked message is far below). */
#define MT_JSON_OUT_MAX ((size_t)256 << 20)

/* ------------------------------------------------------------------ */
/* Parsing                                                              */
/* ------------------------------------------------------------------ */

struct mt_jp {
	char *why;
	size_t why_cap;
	enum mt_err err; /* first failure, latched */
	/* the arena */
	uint8_t *base;
	size_t used;
	size_t cap;
};

__attribute__((format(printf, 3, 4))) static void jp_fail(struct mt_jp *p, enum mt_err e,
                                                           const char *fmt, ...)
{
	va_list ap;

	if (p->err != MT_OK)
		return;
	p->err = e;
	if (p->why && p->why_cap > 0) {
		va_start(ap, fmt);
		vsnprintf(p->why, p->why_cap, fmt, ap);
		va_end(ap);
	}
}

static void *jp_take(struct mt_jp *p, size_t n)
{
	void *r;

	if (p->err != MT_OK)
		return NULL;
	if (n > p->cap - p->used) {
		jp_fail(p, MT_ERR_INTERNAL, "internal error: JSON arena too small");
		return NULL;
	}
	r = p->base + p->used;
	p->used += n;
	return r;
}

/* The member `name` of `obj`, or NULL. */
static const struct mt_jv *jp_get(const struct mt_jv *obj, const char *name)
{
	return mt_json__get(obj, name, strlen(name));
}

static bool jp_is(const struct mt_jv *v, enum mt_jv_type t)
{
	return v && v->type == t;
}

/* An integer the reader could not hold: say so with the field's name. */
static void jp_bigint(struct mt_jp *p, const struct mt_jv *v, const char *where)
{
	jp_fail(p, MT_ERR_JSON_SCHEMA,
	        "%s: integer %s (a CBOR int is -18446744073709551616 to "
	        "18446744073709551615)",
	        where, v->neg ? "too small" : "too large");
}

static bool jp_uint(struct mt_jp *p, const struct mt_jv *v, const char *where, uint64_t *out)
{
	if (jp_is(v, MT_JV_UINT)) {
		*out = v->u;
		return true;
	}
	if (jp_is(v, MT_JV_NEGINT) || (jp_is(v, MT_JV_BIGINT) && v->neg))
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: must not be negative", where);
	else if (jp_is(v, MT_JV_BIGINT))
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: larger than 18446744073709551615", where);
	else
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: expected an unsigned integer", where);
	return false;
}

static bool jp_uint32(struct mt_jp *p, const struct mt_jv *v, const char *where,
                      uint32_t *out)
{
	uint64_t u;

	if (!jp_uint(p, v, where, &u))
		return false;
	if (u > UINT32_MAX) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: larger than 4294967295", where);
		return false;
	}
	*out = (uint32_t)u;
	return true;
}

/* An integer of either sign (the protocol's `int`), kept exact. */
static bool jp_int(struct mt_jp *p, const struct mt_jv *v, const char *where,
                   struct mt_num *out)
{
	if (jp_is(v, MT_JV_UINT) || jp_is(v, MT_JV_NEGINT))
		return mt_json__num(v, out);
	if (jp_is(v, MT_JV_BIGINT))
		jp_bigint(p, v, where);
	else
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: expected an integer", where);
	return false;
}

static bool jp_num(struct mt_jp *p, const struct mt_jv *v, const char *where,
                   struct mt_num *out)
{
	/* the reader refuses overflowing float literals, so a float is finite */
	if (mt_json__num(v, out))
		return true;
	if (jp_is(v, MT_JV_BIGINT))
		jp_bigint(p, v, where);
	else
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: expected a number", where);
	return false;
}

/* Copy a JSON string into the arena (NUL-terminated for convenience). */
static bool jp_text(struct mt_jp *p, const struct mt_jv *v, const char *where,
                    const char **out, size_t *len)
{
	char *dst;

	if (!jp_is(v, MT_JV_STRING)) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: expected a string", where);
		return false;
	}
	dst = jp_take(p, v->len + 1);
	if (!dst)
		return false;
	memcpy(dst, v->s, v->len);
	dst[v->len] = '\0';
	*out = dst;
	*len = v->len;
	return true;
}

/* Show a name from the input in an error: at most 64 bytes, anything but
 * printable ASCII as '?'. */
static const char *jp_shown(const struct mt_jv *member, char buf[68])
{
	size_t n = member->name_len < 64 ? member->name_len : 64, i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)member->name[i];

		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[i] = '\0';
	return buf;
}

/* Refuse any name of `obj` that is not in the NULL-terminated `names`
 * (compared with the name's length: a name with a NUL inside is unknown). */
static bool jp_names(struct mt_jp *p, const struct mt_jv *obj, const char *where,
                     const char *const *names)
{
	const struct mt_jv *v;
	size_t i;

	for (v = obj->first; v; v = v->next) {
		for (i = 0; names[i]; i++)
			if (strlen(names[i]) == v->name_len &&
			    memcmp(names[i], v->name, v->name_len) == 0)
				break;
		if (!names[i]) {
			char shown[68];

			jp_fail(p, MT_ERR_JSON_SCHEMA, "unknown name \"%s\" in %s",
			        jp_shown(v, shown), where);
			return false;
		}
	}
	return true;
}

static bool jp_object(struct mt_jp *p, const struct mt_jv *v, const char *where)
{
	if (!jp_is(v, MT_JV_OBJECT)) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: expected an object", where);
		return false;
	}
	return true;
}

/* Is `v` a waveform observation: six elements, the last an array? */
static bool jp_is_waveform(const struct mt_jv *v)
{
	return jp_is(v, MT_JV_ARRAY) && v->len == 6 && jp_is(mt_json__at(v, 5), MT_JV_ARRAY);
}

/* One sample: an integer in int32. */
static bool jp_sample(struct mt_jp *p, const struct mt_jv *s, const char *where, size_t i,
                      int32_t *out)
{
	if (jp_is(s, MT_JV_UINT) && s->u <= (uint64_t)INT32_MAX) {
		*out = (int32_t)s->u;
		return true;
	}
	if (jp_is(s, MT_JV_NEGINT) && s->u <= (uint64_t)INT32_MAX) {
		*out = (int32_t)(-1 - (int64_t)s->u);
		return true;
	}
	if (jp_is(s, MT_JV_UINT) || jp_is(s, MT_JV_NEGINT) || jp_is(s, MT_JV_BIGINT))
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s[%zu]: outside int32", where, i);
	else
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s[%zu]: expected an integer", where, i);
	return false;
}

static bool jp_waveform(struct mt_jp *p, const struct mt_jv *samples, size_t idx,
                        struct mt_obs *o)
{
	char where[64];
	const struct mt_jv *s;
	size_t n = samples->len;
	size_t i, len = 0;
	int32_t *tmp;
	uint8_t *dst;
	enum mt_err e;

	snprintf(where, sizeof where, "obs[%zu][5] (samples)", idx);
	if (n < 1 || n > MT_WAVE_MAX_SAMPLES) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: 1 to 65536 samples", where);
		return false;
	}
	tmp = malloc(n * sizeof *tmp);
	if (!tmp) {
		jp_fail(p, MT_ERR_NOMEM, "out of memory");
		return false;
	}
	for (i = 0, s = samples->first; i < n && s; i++, s = s->next)
		if (!jp_sample(p, s, where, i, &tmp[i]))
			goto out;
	dst = jp_take(p, n * MT_JSON_SAMPLE_BYTES);
	if (!dst)
		goto out;
	e = mt_waveform_encode(tmp, n, dst, n * MT_JSON_SAMPLE_BYTES, &len);
	if (e != MT_OK) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: cannot encode: %s", where, mt_err_str(e));
		goto out;
	}
	o->samples = dst;
	o->samples_len = len;
	o->n_samples = (uint32_t)n;
out:
	free(tmp);
	return p->err == MT_OK;
}

static bool jp_obs(struct mt_jp *p, const struct mt_jv *a, size_t idx, struct mt_obs *o)
{
	char where[48];
	const struct mt_jv *v;
	size_t k;

	if (!jp_is(a, MT_JV_ARRAY) || a->len < 4 || a->len > 6) {
		jp_fail(p, MT_ERR_JSON_SCHEMA,
		        "obs[%zu]: expected [t, code, value, unit(, places)] or "
		        "[t, code, unit, period_us, scale, [samples]]",
		        idx);
		return false;
	}
	if (a->len == 6 && !jp_is_waveform(a)) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "obs[%zu][5]: a waveform's samples must be an array",
		        idx);
		return false;
	}
	o->waveform = a->len == 6;
	for (k = 0, v = a->first; v; k++, v = v->next) {
		snprintf(where, sizeof where, "obs[%zu][%zu]", idx, k);
		if (o->waveform) {
			switch (k) {
			case 0: jp_int(p, v, where, &o->t); break;
			case 1: jp_uint32(p, v, where, &o->code); break;
			case 2: jp_uint32(p, v, where, &o->unit); break;
			case 3: jp_uint(p, v, where, &o->period_us); break;
			case 4: jp_num(p, v, where, &o->scale); break;
			default: jp_waveform(p, v, idx, o); break;
			}
		} else {
			uint64_t places;

			switch (k) {
			case 0: jp_int(p, v, where, &o->t); break;
			case 1: jp_uint32(p, v, where, &o->code); break;
			case 2: jp_num(p, v, where, &o->value); break;
			case 3: jp_uint32(p, v, where, &o->unit); break;
			default:
				if (jp_uint(p, v, where, &places)) {
					if (places > UINT8_MAX)
						jp_fail(p, MT_ERR_JSON_SCHEMA, "%s: places 0 to 6",
						        where);
					o->has_places = true;
					o->places = (uint8_t)places;
				}
				break;
			}
		}
		if (p->err != MT_OK)
			return false;
	}
	return true;
}

static void jp_status(struct mt_jp *p, const struct mt_jv *st, struct mt_message *m)
{
	static const char *const names[] = {"battery", "fw", "queue", "uptime", "rssi", NULL};
	const struct mt_jv *v;

	if (!jp_object(p, st, "\"st\"") || !jp_names(p, st, "\"st\"", names))
		return;
	m->has |= MT_MSG_ST;
	if ((v = jp_get(st, "battery")) && jp_uint(p, v, "st.battery", &m->st.battery))
		m->st.has |= MT_ST_BATTERY;
	if ((v = jp_get(st, "fw")) && jp_text(p, v, "st.fw", &m->st.fw, &m->st.fw_len))
		m->st.has |= MT_ST_FW;
	if ((v = jp_get(st, "queue")) && jp_uint(p, v, "st.queue", &m->st.queue))
		m->st.has |= MT_ST_QUEUE;
	if ((v = jp_get(st, "uptime")) && jp_uint(p, v, "st.uptime", &m->st.uptime))
		m->st.has |= MT_ST_UPTIME;
	if ((v = jp_get(st, "rssi")) && jp_int(p, v, "st.rssi", &m->st.rssi))
		m->st.has |= MT_ST_RSSI;
}

static void jp_ack(struct mt_jp *p, const struct mt_jv *ack, struct mt_message *m)
{
	static const char *const names[] = {"ctr", "result", "detail", NULL};
	const struct mt_jv *c, *r, *d;

	if (!jp_object(p, ack, "\"ack\"") || !jp_names(p, ack, "\"ack\"", names))
		return;
	c = jp_get(ack, "ctr");
	r = jp_get(ack, "result");
	if (!c || !r) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "\"ack\" needs \"ctr\" and \"result\"");
		return;
	}
	m->has |= MT_MSG_ACK;
	jp_uint(p, c, "ack.ctr", &m->ack.ctr);
	jp_uint(p, r, "ack.result", &m->ack.result);
	if ((d = jp_get(ack, "detail")))
		jp_text(p, d, "ack.detail", &m->ack.detail, &m->ack.detail_len);
}

static void jp_alert(struct mt_jp *p, const struct mt_jv *al, struct mt_message *m)
{
	static const char *const names[] = {"code", "prio", "text", NULL};
	const struct mt_jv *c, *r, *t;

	if (!jp_object(p, al, "\"alrt\"") || !jp_names(p, al, "\"alrt\"", names))
		return;
	c = jp_get(al, "code");
	r = jp_get(al, "prio");
	if (!c || !r) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "\"alrt\" needs \"code\" and \"prio\"");
		return;
	}
	m->has |= MT_MSG_ALRT;
	jp_uint(p, c, "alrt.code", &m->alrt.code);
	jp_uint(p, r, "alrt.prio", &m->alrt.prio);
	if ((t = jp_get(al, "text")))
		jp_text(p, t, "alrt.text", &m->alrt.text, &m->alrt.text_len);
}

/* First pass: the bytes the arena needs for `root` (an object).  Refuses
 * what would make the sizes unbounded before anything is allocated. */
static size_t jp_size(struct mt_jp *p, const struct mt_jv *root)
{
	static const char *const texts[][2] = {
		{"st", "fw"}, {"ack", "detail"}, {"alrt", "text"}};
	const struct mt_jv *obs = jp_get(root, "obs"), *o;
	size_t total = 0, i;

	if (jp_is(obs, MT_JV_ARRAY)) {
		if (obs->len > MT_OBS_MAX) {
			jp_fail(p, MT_ERR_JSON_SCHEMA, "\"obs\": more than %d observations",
			        MT_OBS_MAX);
			return 0;
		}
		total += obs->len * sizeof(struct mt_obs);
		for (i = 0, o = obs->first; o; i++, o = o->next) {
			if (jp_is_waveform(o)) {
				size_t ns = mt_json__at(o, 5)->len;

				if (ns > MT_WAVE_MAX_SAMPLES) {
					jp_fail(p, MT_ERR_JSON_SCHEMA,
					        "obs[%zu][5] (samples): 1 to 65536 samples", i);
					return 0;
				}
				total += ns * MT_JSON_SAMPLE_BYTES;
			}
		}
	}
	for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		const struct mt_jv *t = jp_get(jp_get(root, texts[i][0]), texts[i][1]);

		if (jp_is(t, MT_JV_STRING))
			total += t->len + 1;
	}
	return total;
}

static void jp_message(struct mt_jp *p, const struct mt_jv *root, struct mt_message *m)
{
	static const char *const names[] = {"dev", "ctr", "ts",  "typ", "obs",
	                                    "st",  "ack", "alrt", NULL};
	static const char *const required[] = {"dev", "ctr", "ts", "typ"};
	const struct mt_jv *v, *o;
	size_t i;

	if (!jp_names(p, root, "the message", names))
		return;
	for (i = 0; i < sizeof required / sizeof required[0]; i++) {
		if (!jp_get(root, required[i])) {
			jp_fail(p, MT_ERR_JSON_SCHEMA, "missing \"%s\"", required[i]);
			return;
		}
	}
	v = jp_get(root, "dev");
	if (!jp_is(v, MT_JV_STRING)) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "dev: expected a string");
		return;
	}
	if (v->len > MT_DEVICE_ID_MAX) {
		jp_fail(p, MT_ERR_JSON_SCHEMA, "dev: longer than %d bytes", MT_DEVICE_ID_MAX);
		return;
	}
	m->dev_len = v->len;
	memcpy(m->dev, v->s, m->dev_len);
	m->dev[m->dev_len] = '\0';
	jp_uint(p, jp_get(root, "ctr"), "ctr", &m->ctr);
	jp_uint(p, jp_get(root, "ts"), "ts", &m->ts);
	jp_uint(p, jp_get(root, "typ"), "typ", &m->typ);

	if (p->err == MT_OK && (v = jp_get(root, "obs"))) {
		if (!jp_is(v, MT_JV_ARRAY)) {
			jp_fail(p, MT_ERR_JSON_SCHEMA, "obs: expected an array");
			return;
		}
		m->has |= MT_MSG_OBS;
		m->n_obs = v->len;
		m->obs = v->len ? jp_take(p, v->len * sizeof(struct mt_obs)) : NULL;
		for (i = 0, o = v->first; o && p->err == MT_OK; i++, o = o->next)
			jp_obs(p, o, i, &m->obs[i]);
	}
	if (p->err == MT_OK && (v = jp_get(root, "st")))
		jp_status(p, v, m);
	if (p->err == MT_OK && (v = jp_get(root, "ack")))
		jp_ack(p, v, m);
	if (p->err == MT_OK && (v = jp_get(root, "alrt")))
		jp_alert(p, v, m);
}

enum mt_err mt_json_message_parse(const char *text, size_t len, struct mt_json_message *out,
                                  char *why, size_t why_cap)
{
	struct mt_jp p;
	struct mt_jdoc doc;
	size_t size;
	const char *reason = NULL;
	enum mt_err e;

	if (why && why_cap)
		why[0] = '\0';
	if (!out)
		return MT_ERR_ARG;
	memset(out, 0, sizeof *out);
	if (!text && len)
		return MT_ERR_ARG;
	memset(&p, 0, sizeof p);
	p.why = why;
	p.why_cap = why_cap;

	e = mt_json__read(text, len, &doc, why, why_cap);
	if (e != MT_OK)
		return e;
	if (!jp_is(doc.root, MT_JV_OBJECT)) {
		jp_fail(&p, MT_ERR_JSON_SCHEMA, "a message is a JSON object");
		goto fail;
	}
	size = jp_size(&p, doc.root);
	if (p.err != MT_OK)
		goto fail;
	p.cap = size;
	p.base = calloc(1, size ? size : 1);
	if (!p.base) {
		jp_fail(&p, MT_ERR_NOMEM, "out of memory");
		goto fail;
	}
	jp_message(&p, doc.root, &out->msg);
	if (p.err != MT_OK)
		goto fail;
	if (mt_message_check(&out->msg, &reason) != MT_OK) {
		jp_fail(&p, MT_ERR_JSON_SCHEMA, "%s", reason ? reason : "not an MTP/1 message");
		goto fail;
	}
	mt_json__free(&doc);
	out->block = p.base;
	return MT_OK;
fail:
	mt_json__free(&doc);
	free(p.base);
	memset(out, 0, sizeof *out);
	return p.err;
}

void mt_json_message_free(struct mt_json_message *jm)
{
	if (!jm)
		return;
	free(jm->block);
	memset(jm, 0, sizeof *jm);
}

/* ------------------------------------------------------------------ */
/* Formatting                                                           */
/* ------------------------------------------------------------------ */

enum mt_err mt_json_format_double(double v, char *buf, size_t cap)
{
	char tmp[MT_JSON_NUM_MAX];
	int prec, n = 0;

	if (!buf || cap == 0)
		return MT_ERR_ARG;
	if (!isfinite(v))
		return MT_ERR_ARG;
	for (prec = 15; prec <= 17; prec++) {
		double back;

		n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
		if (n < 0 || (size_t)n >= sizeof tmp)
			return MT_ERR_INTERNAL;
		back = strtod(tmp, NULL);
		if (back == v && signbit(back) == signbit(v))
			break;
	}
	/* %.17g always round-trips an IEEE double, so prec ≤ 17 here. */
	if (!strpbrk(tmp, ".en")) {
		if ((size_t)n + 2 >= sizeof tmp)
			return MT_ERR_INTERNAL;
		memcpy(tmp + n, ".0", 3);
		n += 2;
	}
	if ((size_t)n >= cap)
		return MT_ERR_BUFFER;
	memcpy(buf, tmp, (size_t)n + 1);
	return MT_OK;
}

enum mt_err mt_json_format_num(const struct mt_num *num, char *buf, size_t cap)
{
	int n;

	if (!num || !buf || cap == 0)
		return MT_ERR_ARG;
	switch (num->kind) {
	case MT_NUM_UINT:
		n = snprintf(buf, cap, "%" PRIu64, num->u);
		break;
	case MT_NUM_NEGINT:
		/* value = −1 − u; its magnitude u + 1 overflows only at −2^64 */
		if (num->u == UINT64_MAX)
			n = snprintf(buf, cap, "-18446744073709551616");
		else
			n = snprintf(buf, cap, "-%" PRIu64, num->u + 1);
		break;
	case MT_NUM_FLOAT:
		return mt_json_format_double(num->f, buf, cap);
	default:
		return MT_ERR_ARG;
	}
	if (n < 0)
		return MT_ERR_INTERNAL;
	if ((size_t)n >= cap)
		return MT_ERR_BUFFER;
	return MT_OK;
}

struct mt_jb {
	char *p;
	size_t len;
	size_t cap;
	enum mt_err err; /* latched */
};

static void jb_put(struct mt_jb *b, const char *s, size_t n)
{
	if (b->err != MT_OK)
		return;
	if (n > MT_JSON_OUT_MAX - b->len) {
		b->err = MT_ERR_NOMEM;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->err = MT_ERR_NOMEM;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void jb_puts(struct mt_jb *b, const char *s)
{
	jb_put(b, s, strlen(s));
}

static void jb_num(struct mt_jb *b, const struct mt_num *n)
{
	char tmp[MT_JSON_NUM_MAX];
	enum mt_err e;

	if (b->err != MT_OK)
		return;
	e = mt_json_format_num(n, tmp, sizeof tmp);
	if (e != MT_OK) {
		b->err = e;
		return;
	}
	jb_puts(b, tmp);
}

static void jb_u64(struct mt_jb *b, uint64_t v)
{
	struct mt_num n = {.kind = MT_NUM_UINT, .u = v};

	jb_num(b, &n);
}

static void jb_i64(struct mt_jb *b, int64_t v)
{
	struct mt_num n;

	mt_num_set_int(&n, v);
	jb_num(b, &n);
}

/* A JSON string: '"' and '\' escaped, control characters as \u00XX. */
static void jb_str(struct mt_jb *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0;

	jb_put(b, "\"", 1);
	while (i < n && b->err == MT_OK) {
		size_t k = mt_json__utf8_seq(u + i, n - i);

		if (k == 0) {
			b->err = MT_ERR_ARG;
			return;
		}
		if (k == 1 && (u[i] < 0x20 || u[i] == '"' || u[i] == '\\')) {
			char esc[6] = {'\\', 'u', '0', '0', hex[u[i] >> 4], hex[u[i] & 15]};

			jb_put(b, s + run, i - run);
			if (u[i] == '"')
				jb_put(b, "\\\"", 2);
			else if (u[i] == '\\')
				jb_put(b, "\\\\", 2);
			else
				jb_put(b, esc, sizeof esc);
			run = i + 1;
		}
		i += k;
	}
	jb_put(b, s + run, n - run);
	jb_put(b, "\"", 1);
}

static void jb_key(struct mt_jb *b, const char *name, bool first)
{
	if (!first)
		jb_put(b, ", ", 2);
	jb_put(b, "\"", 1);
	jb_puts(b, name);
	jb_put(b, "\": ", 3);
}

static void jb_waveform_samples(struct mt_jb *b, const struct mt_obs *o)
{
	int32_t *s;
	size_t n = 0, i;
	enum mt_err e;

	if (b->err != MT_OK)
		return;
	e = mt_waveform_decode(o->samples, o->samples_len, NULL, 0, &n);
	if (e != MT_OK || n == 0) {
		b->err = MT_ERR_PKT_MESSAGE;
		return;
	}
	s = malloc(n * sizeof *s);
	if (!s) {
		b->err = MT_ERR_NOMEM;
		return;
	}
	e = mt_waveform_decode(o->samples, o->samples_len, s, n, &n);
	if (e != MT_OK) {
		b->err = MT_ERR_PKT_MESSAGE;
		free(s);
		return;
	}
	jb_put(b, "[", 1);
	for (i = 0; i < n; i++) {
		if (i)
			jb_put(b, ", ", 2);
		jb_i64(b, s[i]);
	}
	jb_put(b, "]", 1);
	free(s);
}

static void jb_obs(struct mt_jb *b, const struct mt_obs *o)
{
	jb_put(b, "[", 1);
	jb_num(b, &o->t);
	jb_put(b, ", ", 2);
	jb_u64(b, o->code);
	jb_put(b, ", ", 2);
	if (o->waveform) {
		jb_u64(b, o->unit);
		jb_put(b, ", ", 2);
		jb_u64(b, o->period_us);
		jb_put(b, ", ", 2);
		jb_num(b, &o->scale);
		jb_put(b, ", ", 2);
		jb_waveform_samples(b, o);
	} else {
		jb_num(b, &o->value);
		jb_put(b, ", ", 2);
		jb_u64(b, o->unit);
		if (o->has_places) {
			jb_put(b, ", ", 2);
			jb_u64(b, o->places);
		}
	}
	jb_put(b, "]", 1);
}

enum mt_err mt_json_message_format(const struct mt_message *m, char **out, size_t *len)
{
	struct mt_jb b = {0};
	size_t i;

	if (!m || !out)
		return MT_ERR_ARG;
	*out = NULL;
	if (len)
		*len = 0;
	if (m->dev_len > MT_DEVICE_ID_MAX || (m->n_obs && !m->obs && (m->has & MT_MSG_OBS)))
		return MT_ERR_ARG;

	jb_put(&b, "{", 1);
	jb_key(&b, "dev", true);
	jb_str(&b, m->dev, m->dev_len);
	jb_key(&b, "ctr", false);
	jb_u64(&b, m->ctr);
	jb_key(&b, "ts", false);
	jb_u64(&b, m->ts);
	jb_key(&b, "typ", false);
	jb_u64(&b, m->typ);
	if (m->has & MT_MSG_OBS) {
		jb_key(&b, "obs", false);
		jb_put(&b, "[", 1);
		for (i = 0; i < m->n_obs; i++) {
			if (i)
				jb_put(&b, ", ", 2);
			jb_obs(&b, &m->obs[i]);
		}
		jb_put(&b, "]", 1);
	}
	if (m->has & MT_MSG_ST) {
		bool first = true;

		jb_key(&b, "st", false);
		jb_put(&b, "{", 1);
		if (m->st.has & MT_ST_BATTERY) {
			jb_key(&b, "battery", first);
			jb_u64(&b, m->st.battery);
			first = false;
		}
		if (m->st.has & MT_ST_FW) {
			jb_key(&b, "fw", first);
			jb_str(&b, m->st.fw ? m->st.fw : "", m->st.fw ? m->st.fw_len : 0);
			first = false;
		}
		if (m->st.has & MT_ST_QUEUE) {
			jb_key(&b, "queue", first);
			jb_u64(&b, m->st.queue);
			first = false;
		}
		if (m->st.has & MT_ST_UPTIME) {
			jb_key(&b, "uptime", first);
			jb_u64(&b, m->st.uptime);
			first = false;
		}
		if (m->st.has & MT_ST_RSSI) {
			jb_key(&b, "rssi", first);
			jb_num(&b, &m->st.rssi);
		}
		jb_put(&b, "}", 1);
	}
	if (m->has & MT_MSG_ACK) {
		jb_key(&b, "ack", false);
		jb_put(&b, "{", 1);
		jb_key(&b, "ctr", true);
		jb_u64(&b, m->ack.ctr);
		jb_key(&b, "result", false);
		jb_u64(&b, m->ack.result);
		if (m->ack.detail) {
			jb_key(&b, "detail", false);
			jb_str(&b, m->ack.detail, m->ack.detail_len);
		}
		jb_put(&b, "}", 1);
	}
	if (m->has & MT_MSG_ALRT) {
		jb_key(&b, "alrt", false);
		jb_put(&b, "{", 1);
		jb_key(&b, "code", true);
		jb_u64(&b, m->alrt.code);
		jb_key(&b, "prio", false);
		jb_u64(&b, m->alrt.prio);
		if (m->alrt.text) {
			jb_key(&b, "text", false);
			jb_str(&b, m->alrt.text, m->alrt.text_len);
		}
		jb_put(&b, "}", 1);
	}
	jb_put(&b, "}", 1);

	if (b.err != MT_OK) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	if (len)
		*len = b.len;
	return MT_OK;
}
