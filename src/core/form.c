/*
 * form.c — urlencoded form bodies and Cookie headers in, HTML text out
 * (mt_form.h; docs/console.md; threats F05–F08).
 *
 * The form parser makes one pass over the body with an explicit state per
 * pair (name, then value), decoding into f->buf as it goes: decoding only
 * shortens ('+' is one byte, "%XX" three bytes become one), so buf needs
 * the body's length plus two NULs per field, and no step can write past
 * it.  Every refusal leaves the form empty and its buffer wiped, so a
 * caller that ignores the error still finds no half-parsed password.
 *
 * The escaper decodes UTF-8 itself (shortest form only, no surrogates,
 * nothing above U+10FFFF) rather than trusting that stored text is valid:
 * the console shows strings that devices and operators wrote, and one
 * stray byte must not let a browser resynchronise into markup.
 */
#include "medtrust/mt_form.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>

#include "medtrust/mt_cbor.h"

static bool is_alnum(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool name_char(uint8_t c)
{
	return is_alnum(c) || c == '_' || c == '.' || c == '-';
}

static bool value_char(uint8_t c)
{
	return is_alnum(c) || c == '*' || c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static enum mt_err form_fail(struct mt_form *f, enum mt_err e)
{
	mt_form_wipe(f);
	return e;
}

enum mt_err mt_form_parse(const uint8_t *body, size_t len, struct mt_form *f)
{
	size_t i = 0, o = 0;

	if (f == NULL)
		return MT_ERR_ARG;
	f->n = 0;
	if (body == NULL && len > 0)
		return form_fail(f, MT_ERR_ARG);
	if (len > MT_FORM_BODY_MAX)
		return form_fail(f, MT_ERR_BUFFER);
	if (len == 0)
		return MT_OK;
	while (i <= len) {
		size_t name_at = o, value_at, k;

		if (f->n == MT_FORM_FIELDS_MAX)
			return form_fail(f, MT_ERR_BUFFER);
		/* the name: raw characters up to '=' */
		while (i < len && body[i] != '=') {
			if (!name_char(body[i]))
				return form_fail(f, MT_ERR_ARG);
			if (o - name_at == MT_FORM_NAME_MAX)
				return form_fail(f, MT_ERR_BUFFER);
			f->buf[o++] = (char)body[i++];
		}
		if (i == len || o == name_at) /* no '=', or an empty name */
			return form_fail(f, MT_ERR_ARG);
		f->buf[o++] = '\0';
		i++; /* '=' */
		value_at = o;
		/* the value: up to '&' or the end */
		while (i < len && body[i] != '&') {
			uint8_t c = body[i];

			if (c == '+') {
				f->buf[o++] = ' ';
				i++;
			} else if (c == '%') {
				int hi, lo;

				if (len - i < 3)
					return form_fail(f, MT_ERR_ARG);
				hi = hexval(body[i + 1]);
				lo = hexval(body[i + 2]);
				if (hi < 0 || lo < 0)
					return form_fail(f, MT_ERR_ARG);
				f->buf[o++] = (char)(hi * 16 + lo);
				i += 3;
			} else if (value_char(c)) {
				f->buf[o++] = (char)c;
				i++;
			} else {
				return form_fail(f, MT_ERR_ARG);
			}
		}
		/* decoded: UTF-8, no control character (NUL included) */
		for (k = value_at; k < o; k++) {
			uint8_t c = (uint8_t)f->buf[k];

			if (c < 0x20 || c == 0x7f)
				return form_fail(f, MT_ERR_ARG);
		}
		if (!mt_utf8_valid((const uint8_t *)f->buf + value_at, o - value_at))
			return form_fail(f, MT_ERR_ARG);
		f->buf[o++] = '\0';
		for (k = 0; k < f->n; k++)
			if (strcmp(f->name[k], f->buf + name_at) == 0)
				return form_fail(f, MT_ERR_ARG);
		f->name[f->n] = f->buf + name_at;
		f->value[f->n] = f->buf + value_at;
		f->value_len[f->n] = o - 1 - value_at;
		f->n++;
		if (i == len)
			break;
		i++; /* '&': a pair must follow */
		if (i == len)
			return form_fail(f, MT_ERR_ARG);
	}
	return MT_OK;
}

const char *mt_form_get(const struct mt_form *f, const char *name)
{
	if (f == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < f->n && i < MT_FORM_FIELDS_MAX; i++)
		if (strcmp(f->name[i], name) == 0)
			return f->value[i];
	return NULL;
}

void mt_form_wipe(struct mt_form *f)
{
	if (f == NULL)
		return;
	OPENSSL_cleanse(f->buf, sizeof f->buf);
	memset(f->value_len, 0, sizeof f->value_len);
	for (size_t i = 0; i < MT_FORM_FIELDS_MAX; i++)
		f->name[i] = f->value[i] = NULL;
	f->n = 0;
}

/* ---- cookies -------------------------------------------------------------- */

/* RFC 6265 §4.1.1 cookie-octet. */
static bool cookie_octet(uint8_t c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
	       (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static bool token_char(uint8_t c)
{
	return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

enum mt_err mt_form_cookie(const char *header, const char *name, char *out, size_t cap)
{
	const char *p = header;
	size_t want = name ? strlen(name) : 0;
	bool found = false;

	if (out != NULL && cap > 0)
		out[0] = '\0';
	if (name == NULL || out == NULL || cap == 0 || want == 0)
		return MT_ERR_ARG;
	if (header == NULL)
		return MT_ERR_NOT_FOUND;
	while (*p != '\0') {
		const char *pair, *eq, *v, *end;
		size_t n, vlen, k;
		bool ok = true;

		while (*p == ' ' || *p == '\t')
			p++;
		pair = p;
		end = pair + strcspn(pair, ";");
		p = *end == ';' ? end + 1 : end;
		eq = memchr(pair, '=', (size_t)(end - pair));
		if (eq == NULL)
			continue; /* not a pair: someone else's */
		n = (size_t)(eq - pair);
		for (k = 0; k < n; k++)
			if (!token_char((uint8_t)pair[k]))
				ok = false;
		if (!ok || n != want || memcmp(pair, name, n) != 0)
			continue;
		/* ours: strict from here */
		if (found) {
			out[0] = '\0';
			return MT_ERR_ARG;
		}
		found = true;
		v = eq + 1;
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--; /* trailing whitespace before ';' (RFC 6265 §5.2) */
		vlen = (size_t)(end - v);
		if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
			v++;
			vlen -= 2;
		}
		for (k = 0; k < vlen; k++)
			if (!cookie_octet((uint8_t)v[k])) {
				out[0] = '\0';
				return MT_ERR_ARG;
			}
		if (vlen >= cap) {
			out[0] = '\0';
			return MT_ERR_BUFFER;
		}
		memcpy(out, v, vlen);
		out[vlen] = '\0';
	}
	return found ? MT_OK : MT_ERR_NOT_FOUND;
}

/* ---- HTML ----------------------------------------------------------------- */

/* The length of the UTF-8 sequence at p[0..n) that is valid and not a
 * control character (C1 included), or 0. */
static size_t utf8_char(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	uint32_t cp;
	size_t len;

	if (c < 0x80)
		return (c < 0x20 || c == 0x7f) ? 0 : 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1fu;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0fu;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07u;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

enum mt_err mt_html_escape(const char *in, size_t len, char *out, size_t cap, size_t *out_len)
{
	const uint8_t *p = (const uint8_t *)in;
	size_t i = 0, o = 0;

	if (out_len != NULL)
		*out_len = 0;
	if ((in == NULL && len > 0) || out == NULL || cap == 0)
		return MT_ERR_ARG;
	while (i < len) {
		const char *rep = NULL;
		size_t n = 1, w;

		switch (p[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default:
			n = utf8_char(p + i, len - i);
			if (n == 0) {
				rep = "&#xFFFD;";
				n = 1;
			}
		}
		w = rep ? strlen(rep) : n;
		if (cap - o <= w) {
			out[0] = '\0';
			return MT_ERR_BUFFER;
		}
		memcpy(out + o, rep ? rep : in + i, w);
		o += w;
		i += n;
	}
	out[o] = '\0';
	if (out_len != NULL)
		*out_len = o;
	return MT_OK;
}
