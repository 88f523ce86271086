/*
 * json_read.c — a strict RFC 8259 reader for the JSON form of a message
 * (protocol §9; json_int.h describes the tree it builds).
 *
 * Why not jansson, the JSON library DESIGN.md lists.  §9 says a JSON number
 * without '.', 'e' or 'E' becomes a CBOR int, and §5 types ack `ctr`,
 * `result`, alert `code`, status `queue` and `uptime`, `period_us`, and any
 * integer observation value or scale as CBOR `uint` or `int` without a bound
 * — every integer from −2^64 to 2^64 − 1.  jansson keeps a JSON integer in
 * json_int_t, a long long.  Measured with jansson 2.14 (Debian 12):
 * json_loadb() takes 9223372036854775807 but refuses 9223372036854775808
 * and 18446744073709551615 ("too big integer") and -9223372036854775809
 * ("too big negative integer"); with its only other option,
 * JSON_DECODE_INT_AS_REAL, 97 comes back as a real (the int/float
 * distinction §9 requires is gone) and 9007199254740993 as
 * 9007199254740992.  No flag or hook hands back the digits, so a valid
 * message made by another implementation could be printed by `packet open`
 * but not sealed again by `packet seal` (`medtrust packet seal` exited 65 on
 * `"queue": 18446744073709551615`).  The reader here keeps each integer as
 * a sign and a uint64 magnitude — the CBOR encoding itself (value or
 * −1 − value) — and is otherwise as strict as jansson was, or stricter.
 * jansson stays in the build for the tests, which read JSON vector files.
 *
 * What it accepts is exactly RFC 8259 JSON text, with these rules where the
 * RFC leaves a choice: any value may be the top level; whitespace is space,
 * tab, LF and CR only, and nothing else may follow the top-level value; no
 * byte-order mark; duplicate names are refused (compared as decoded bytes);
 * strings must be valid UTF-8 and may not hold raw control characters; every
 * escape of the RFC is decoded, \u escapes of a surrogate pair are joined
 * into one code point and a lone surrogate is refused (it has no UTF-8
 * form); "\u0000" is allowed so that every CBOR text string has a JSON form.
 * Numbers follow the RFC grammar exactly (no leading zeros, no '+', no bare
 * '.', no NaN or Infinity); a float is converted with strtod() in the C
 * locale and refused when the result is not finite.
 *
 * Bounds, so that hostile input costs bounded memory and stack: the text
 * (MT_JSON_TEXT_MAX), the nesting depth (MT_JSON_DEPTH_MAX; the parser is
 * recursive and this bounds its stack), and the number of values
 * (MT_JSON_VALUES_MAX, bounding the nodes).  Decoded strings never take
 * more bytes than their quoted form did, so one buffer of the input's size
 * holds them all; nodes come from blocks that are never moved, so the tree
 * can be made of plain pointers.  Duplicate names are found by sorting each
 * object's members, O(n log n), so a huge object cannot turn the check
 * quadratic.
 *
 * Errors latch: the first failure, with its line and column, is the one
 * reported, and every later step returns at once.
 */
#include "json_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nodes per block: the first block is small (most texts are one message),
 * later ones double up to a cap so that one allocation stays modest. */
#define JR_BLOCK_FIRST 256
#define JR_BLOCK_LAST 65536
/* Members sorted on the stack before the duplicate check mallocs. */
#define JR_SMALL_OBJECT 32

struct mt_jblock {
	struct mt_jblock *next;
	size_t used, cap;
	struct mt_jv v[];
};

struct mt_jr {
	const unsigned char *start, *p, *end;
	struct mt_jdoc *doc;
	char *tp, *tend; /* decoded-string buffer: write position, end */
	size_t depth;
	enum mt_err err;
	char *why;
	size_t why_cap;
};

size_t mt_json__utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* ---- errors ------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static void
jr_fail(struct mt_jr *r, enum mt_err e, const unsigned char *at, const char *fmt, ...)
{
	char reason[128];
	size_t line = 1, col = 1;
	const unsigned char *q;
	va_list ap;

	if (r->err != MT_OK)
		return;
	r->err = e;
	if (!r->why || r->why_cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (!at) {
		snprintf(r->why, r->why_cap, "%s", reason);
		return;
	}
	for (q = r->start; q < at; q++) {
		if (*q == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	snprintf(r->why, r->why_cap, "line %zu, column %zu: %s", line, col, reason);
}

/* Name the byte at r->p for an error message. */
static void jr_unexpected(struct mt_jr *r, const char *wanted)
{
	if (r->p >= r->end)
		jr_fail(r, MT_ERR_JSON_SYNTAX, r->p, "unexpected end of input, %s", wanted);
	else if (*r->p > 0x20 && *r->p < 0x7f)
		jr_fail(r, MT_ERR_JSON_SYNTAX, r->p, "unexpected '%c', %s", *r->p, wanted);
	else
		jr_fail(r, MT_ERR_JSON_SYNTAX, r->p, "unexpected byte 0x%02x, %s", *r->p, wanted);
}

/* ---- nodes -------------------------------------------------------------- */

static struct mt_jv *jr_node(struct mt_jr *r, enum mt_jv_type type)
{
	struct mt_jdoc *d = r->doc;
	struct mt_jblock *b = d->blocks;
	struct mt_jv *v;

	if (d->n_values >= MT_JSON_VALUES_MAX) {
		jr_fail(r, MT_ERR_JSON_SYNTAX, r->p, "more than %zu values", MT_JSON_VALUES_MAX);
		return NULL;
	}
	if (!b || b->used == b->cap) {
		size_t cap = b ? b->cap * 2 : JR_BLOCK_FIRST;

		if (cap > JR_BLOCK_LAST)
			cap = JR_BLOCK_LAST;
		b = malloc(sizeof *b + cap * sizeof b->v[0]);
		if (!b) {
			jr_fail(r, MT_ERR_NOMEM, NULL, "out of memory");
			return NULL;
		}
		b->next = d->blocks;
		b->used = 0;
		b->cap = cap;
		d->blocks = b;
	}
	v = &b->v[b->used++];
	memset(v, 0, sizeof *v);
	v->type = type;
	d->n_values++;
	return v;
}

static bool jr_is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void jr_skip_ws(struct mt_jr *r)
{
	while (r->p < r->end && jr_is_ws(*r->p))
		r->p++;
}

static bool jr_is_digit(const struct mt_jr *r)
{
	return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

/* ---- strings ------------------------------------------------------------ */

static bool jr_put(struct mt_jr *r, const void *src, size_t n)
{
	if (n > (size_t)(r->tend - r->tp)) {
		/* cannot happen: decoded text is never longer than its quoted form */
		jr_fail(r, MT_ERR_INTERNAL, r->p, "internal error: string buffer too small");
		return false;
	}
	memcpy(r->tp, src, n);
	r->tp += n;
	return true;
}

static bool jr_hex4(struct mt_jr *r, uint32_t *out)
{
	uint32_t v = 0;

	if (r->end - r->p < 4) {
		jr_fail(r, MT_ERR_JSON_SYNTAX, r->p, "\\u needs four hex digits");
		return false;
	}
	for (int i = 0; i < 4; i++) {
		unsigned char c = r->p[i];
		uint32_t d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else {
			jr_fail(r, MT_ERR_JSON_SYNTAX, r->p, "\\u needs four hex digits");
			return false;
		}
		v = v << 4 | d;
	}
	r->p += 4;
	*out = v;
	return true;
}

/* The escape after a backslash (r->p at the backslash). */
static bool jr_escape(struct mt_jr *r)
{
	const unsigned char *at = r->p;
	unsigned char buf[4];
	uint32_t cp, lo;
	size_t n;

	r->p++;
	if (r->p >= r->end) {
		jr_fail(r, MT_ERR_JSON_SYNTAX, at, "unterminated string");
		return false;
	}
	switch (*r->p++) {
	case '"':
		return jr_put(r, "\"", 1);
	case '\\':
		return jr_put(r, "\\", 1);
	case '/':
		return jr_put(r, "/", 1);
	case 'b':
		return jr_put(r, "\b", 1);
	case 'f':
		return jr_put(r, "\f", 1);
	case 'n':
		return jr_put(r, "\n", 1);
	case 'r':
		return jr_put(r, "\r", 1);
	case 't':
		return jr_put(r, "\t", 1);
	case 'u':
		break;
	default:
		r->p--;
		if (*r->p > 0x20 && *r->p < 0x7f)
			jr_fail(r, MT_ERR_JSON_SYNTAX, at, "invalid escape \\%c", *r->p);
		else
			jr_fail(r, MT_ERR_JSON_SYNTAX, at, "invalid escape");
		return false;
	}
	if (!jr_hex4(r, &cp))
		return false;
	if (cp >= 0xdc00 && cp <= 0xdfff) {
		jr_fail(r, MT_ERR_JSON_SYNTAX, at, "lone low surrogate \\u%04x", (unsigned)cp);
		return false;
	}
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') {
			jr_fail(r, MT_ERR_JSON_SYNTAX, at, "lone high surrogate \\u%04x",
			        (unsigned)cp);
			return false;
		}
		r->p += 2;
		if (!jr_hex4(r, &lo))
			return false;
		if (lo < 0xdc00 || lo > 0xdfff) {
			jr_fail(r, MT_ERR_JSON_SYNTAX, at,
			        "high surrogate \\u%04x not followed by a low one", (unsigned)cp);
			return false;
		}
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (cp < 0x80) {
		buf[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		buf[0] = (unsigned char)(0xc0 | cp >> 6);
		buf[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		buf[0] = (unsigned char)(0xe0 | cp >> 12);
		buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		buf[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		buf[0] = (unsigned char)(0xf0 | cp >> 18);
		buf[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		buf[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		buf[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return jr_put(r, buf, n);
}

/* A string (r->p at the opening quote), decoded into the text buffer. */
static bool jr_string(struct mt_jr *r, const char **out, size_t *len)
{
	const unsigned char *at = r->p;
	char *s = r->tp;

	r->p++;
	for (;;) {
		unsigned char c;
		size_t k;

		if (r->p >= r->end) {
			jr_fail(r, MT_ERR_JSON_SYNTAX, at, "unterminated string");
			return false;
		}
		c = *r->p;
		if (c == '"') {
			r->p++;
			break;
		}
		if (c == '\\') {
			if (!jr_escape(r))
				return false;
			continue;
		}
		if (c < 0x20) {
			jr_fail(r, MT_ERR_JSON_SYNTAX, r->p,
			        "control character 0x%02x in a string (escape it)", c);
			return false;
		}
		k = mt_json__utf8_seq(r->p, (size_t)(r->end - r->p));
		if (k == 0) {
			jr_fail(r, MT_ERR_JSON_SYNTAX, r->p, "invalid UTF-8 in a string");
			return false;
		}
		if (!jr_put(r, r->p, k))
			return false;
		r->p += k;
	}
	*len = (size_t)(r->tp - s);
	if (!jr_put(r, "", 1))
		return false;
	*out = s;
	return true;
}

/* ---- numbers ------------------------------------------------------------ */

static struct mt_jv *jr_number(struct mt_jr *r)
{
	static const char two64[] = "18446744073709551616";
	const unsigned char *s = r->p, *digits, *int_end;
	bool neg = false, is_float = false, over = false;
	uint64_t m = 0;
	struct mt_jv *v;

	if (*r->p == '-') {
		neg = true;
		r->p++;
	}
	digits = r->p;
	if (!jr_is_digit(r)) {
		jr_unexpected(r, "expected a digit");
		return NULL;
	}
	if (*r->p == '0') {
		r->p++;
		if (jr_is_digit(r)) {
			jr_fail(r, MT_ERR_JSON_SYNTAX, s, "number with a leading zero");
			return NULL;
		}
	} else {
		while (jr_is_digit(r))
			r->p++;
	}
	int_end = r->p;
	if (r->p < r->end && *r->p == '.') {
		r->p++;
		if (!jr_is_digit(r)) {
			jr_unexpected(r, "expected a digit after '.'");
			return NULL;
		}
		while (jr_is_digit(r))
			r->p++;
		is_float = true;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (!jr_is_digit(r)) {
			jr_unexpected(r, "expected a digit in the exponent");
			return NULL;
		}
		while (jr_is_digit(r))
			r->p++;
		is_float = true;
	}

	if (is_float) {
		char small[64], *buf = small, *end = NULL;
		size_t n = (size_t)(r->p - s);
		double f;

		if (n >= sizeof small) {
			buf = malloc(n + 1);
			if (!buf) {
				jr_fail(r, MT_ERR_NOMEM, NULL, "out of memory");
				return NULL;
			}
		}
		memcpy(buf, s, n);
		buf[n] = '\0';
		f = strtod(buf, &end);
		if (end != buf + n) {
			jr_fail(r, MT_ERR_INTERNAL, s, "internal error: strtod disagrees");
		} else if (!isfinite(f)) {
			jr_fail(r, MT_ERR_JSON_SYNTAX, s, "number too large for a double");
		}
		if (buf != small)
			free(buf);
		if (r->err != MT_OK)
			return NULL;
		v = jr_node(r, MT_JV_FLOAT);
		if (v)
			v->f = f;
		return v;
	}

	for (const unsigned char *q = digits; q < int_end; q++) {
		unsigned d = *q - '0';

		if (m > (UINT64_MAX - d) / 10) {
			over = true;
			break;
		}
		m = m * 10 + d;
	}
	if (!over && !neg) {
		v = jr_node(r, MT_JV_UINT);
		if (v)
			v->u = m;
	} else if (!over && m == 0) {
		v = jr_node(r, MT_JV_UINT); /* "-0": the integer 0 */
	} else if (!over) {
		v = jr_node(r, MT_JV_NEGINT);
		if (v)
			v->u = m - 1;
	} else if (neg && (size_t)(int_end - digits) == sizeof two64 - 1 &&
	           memcmp(digits, two64, sizeof two64 - 1) == 0) {
		v = jr_node(r, MT_JV_NEGINT); /* −2^64, the most negative CBOR int */
		if (v)
			v->u = UINT64_MAX;
	} else {
		v = jr_node(r, MT_JV_BIGINT);
		if (v)
			v->neg = neg;
	}
	return v;
}

/* ---- containers --------------------------------------------------------- */

static struct mt_jv *jr_value(struct mt_jr *r);

static int jr_name_cmp(const void *a, const void *b)
{
	const struct mt_jv *x = *(const struct mt_jv *const *)a;
	const struct mt_jv *y = *(const struct mt_jv *const *)b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);

	if (c)
		return c;
	return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* Refuse an object with two members of the same name. */
static bool jr_unique(struct mt_jr *r, const struct mt_jv *obj, const unsigned char *at)
{
	const struct mt_jv *small[JR_SMALL_OBJECT], **m = small, *v;
	size_t i = 0;
	bool ok = true;

	if (obj->len < 2)
		return true;
	if (obj->len > JR_SMALL_OBJECT) {
		m = malloc(obj->len * sizeof *m);
		if (!m) {
			jr_fail(r, MT_ERR_NOMEM, NULL, "out of memory");
			return false;
		}
	}
	for (v = obj->first; v; v = v->next)
		m[i++] = v;
	qsort(m, i, sizeof *m, jr_name_cmp);
	for (i = 1; i < obj->len && ok; i++) {
		if (jr_name_cmp(&m[i - 1], &m[i]) == 0) {
			char shown[68];
			size_t k, n = m[i]->name_len < 64 ? m[i]->name_len : 64;

			for (k = 0; k < n; k++) {
				unsigned char c = (unsigned char)m[i]->name[k];

				shown[k] = c >= 0x20 && c < 0x7f ? (char)c : '?';
			}
			shown[k] = '\0';
			jr_fail(r, MT_ERR_JSON_SYNTAX, at, "duplicate name \"%s\" in an object",
			        shown);
			ok = false;
		}
	}
	if (m != small)
		free(m);
	return ok;
}

static bool jr_enter(struct mt_jr *r)
{
	if (r->depth >= MT_JSON_DEPTH_MAX) {
		jr_fail(r, MT_ERR_JSON_SYNTAX, r->p, "nesting deeper than %d", MT_JSON_DEPTH_MAX);
		return false;
	}
	r->depth++;
	r->p++; /* the '[' or '{' */
	return true;
}

static struct mt_jv *jr_array(struct mt_jr *r)
{
	struct mt_jv *a, *last = NULL, *v;

	if (!jr_enter(r) || !(a = jr_node(r, MT_JV_ARRAY)))
		return NULL;
	jr_skip_ws(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		r->depth--;
		return a;
	}
	for (;;) {
		if (!(v = jr_value(r)))
			return NULL;
		if (last)
			last->next = v;
		else
			a->first = v;
		last = v;
		a->len++;
		jr_skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			break;
		}
		jr_unexpected(r, "expected ',' or ']'");
		return NULL;
	}
	r->depth--;
	return a;
}

static struct mt_jv *jr_object(struct mt_jr *r)
{
	const unsigned char *at = r->p;
	struct mt_jv *o, *last = NULL, *v;

	if (!jr_enter(r) || !(o = jr_node(r, MT_JV_OBJECT)))
		return NULL;
	jr_skip_ws(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		r->depth--;
		return o;
	}
	for (;;) {
		const char *name;
		size_t name_len;

		jr_skip_ws(r);
		if (r->p >= r->end || *r->p != '"') {
			jr_unexpected(r, "expected a name in double quotes");
			return NULL;
		}
		if (!jr_string(r, &name, &name_len))
			return NULL;
		jr_skip_ws(r);
		if (r->p >= r->end || *r->p != ':') {
			jr_unexpected(r, "expected ':'");
			return NULL;
		}
		r->p++;
		if (!(v = jr_value(r)))
			return NULL;
		v->name = name;
		v->name_len = name_len;
		if (last)
			last->next = v;
		else
			o->first = v;
		last = v;
		o->len++;
		jr_skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			break;
		}
		jr_unexpected(r, "expected ',' or '}'");
		return NULL;
	}
	r->depth--;
	if (!jr_unique(r, o, at))
		return NULL;
	return o;
}

static struct mt_jv *jr_literal(struct mt_jr *r, const char *word, enum mt_jv_type type)
{
	size_t n = strlen(word);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) {
		jr_unexpected(r, "expected a value");
		return NULL;
	}
	r->p += n;
	return jr_node(r, type);
}

static struct mt_jv *jr_value(struct mt_jr *r)
{
	struct mt_jv *v;

	jr_skip_ws(r);
	if (r->p >= r->end) {
		jr_unexpected(r, "expected a value");
		return NULL;
	}
	switch (*r->p) {
	case '{':
		return jr_object(r);
	case '[':
		return jr_array(r);
	case '"':
		if (!(v = jr_node(r, MT_JV_STRING)) || !jr_string(r, &v->s, &v->len))
			return NULL;
		return v;
	case 't':
		return jr_literal(r, "true", MT_JV_TRUE);
	case 'f':
		return jr_literal(r, "false", MT_JV_FALSE);
	case 'n':
		return jr_literal(r, "null", MT_JV_NULL);
	default:
		if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
			return jr_number(r);
		jr_unexpected(r, "expected a value");
		return NULL;
	}
}

/* ---- the document ------------------------------------------------------- */

enum mt_err mt_json__read(const char *text, size_t len, struct mt_jdoc *doc, char *why,
                          size_t why_cap)
{
	struct mt_jr r;
	const struct mt_jv *root;

	if (why && why_cap)
		why[0] = '\0';
	if (!doc)
		return MT_ERR_ARG;
	memset(doc, 0, sizeof *doc);
	if (!text && len)
		return MT_ERR_ARG;
	memset(&r, 0, sizeof r);
	r.why = why;
	r.why_cap = why_cap;
	r.doc = doc;
	r.start = r.p = (const unsigned char *)(text ? text : "");
	r.end = r.start + len;
	if (len > MT_JSON_TEXT_MAX) {
		jr_fail(&r, MT_ERR_JSON_SYNTAX, NULL, "input larger than %zu bytes",
		        (size_t)MT_JSON_TEXT_MAX);
		return r.err;
	}
	doc->text = malloc(len + 1);
	if (!doc->text)
		return MT_ERR_NOMEM;
	r.tp = doc->text;
	r.tend = doc->text + len + 1;

	root = jr_value(&r);
	if (root) {
		jr_skip_ws(&r);
		if (r.p < r.end)
			jr_unexpected(&r, "expected the end of the input after the value");
	}
	if (r.err != MT_OK || !root) {
		mt_json__free(doc);
		return r.err != MT_OK ? r.err : MT_ERR_INTERNAL;
	}
	doc->root = root;
	return MT_OK;
}

void mt_json__free(struct mt_jdoc *doc)
{
	struct mt_jblock *b, *next;

	if (!doc)
		return;
	for (b = doc->blocks; b; b = next) {
		next = b->next;
		free(b);
	}
	free(doc->text);
	memset(doc, 0, sizeof *doc);
}

const struct mt_jv *mt_json__get(const struct mt_jv *obj, const char *name, size_t name_len)
{
	const struct mt_jv *v;

	if (!obj || obj->type != MT_JV_OBJECT)
		return NULL;
	for (v = obj->first; v; v = v->next)
		if (v->name_len == name_len && memcmp(v->name, name, name_len) == 0)
			return v;
	return NULL;
}

const struct mt_jv *mt_json__at(const struct mt_jv *arr, size_t i)
{
	const struct mt_jv *v;

	if (!arr || arr->type != MT_JV_ARRAY || i >= arr->len)
		return NULL;
	for (v = arr->first; v && i; v = v->next)
		i--;
	return v;
}

bool mt_json__num(const struct mt_jv *v, struct mt_num *out)
{
	if (!v)
		return false;
	switch (v->type) {
	case MT_JV_UINT:
		mt_num_set_uint(out, v->u);
		return true;
	case MT_JV_NEGINT:
		mt_num_set_negint(out, v->u);
		return true;
	case MT_JV_FLOAT:
		mt_num_set_float(out, v->f);
		return true;
	default:
		return false;
	}
}
