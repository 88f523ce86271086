/*
 * fuzz_console_form.c — libFuzzer harness for what a browser sends the
 * web console and what it shows back (mt_form.h; console.c; threats F05,
 * F06, F07, H): anyone who completes a TLS handshake reaches these parsers
 * before signing in.
 *
 * The first byte picks the function, the rest is the input:
 *   0 mod 3  mt_form_parse (a POST body)
 *   1 mod 3  mt_form_cookie (a Cookie header, cut at its first NUL)
 *   2 mod 3  mt_html_escape (text from data, on its way into a page)
 * Checked beyond "no crash, no leak":
 *   - an accepted form has at most MT_FORM_FIELDS_MAX fields, distinct
 *     non-empty names of the allowed characters, values that are UTF-8
 *     without control characters and of the length recorded; encoded again
 *     the way a browser does it and parsed again, it gives the same fields;
 *     a refused form leaves no field and no decoded byte; wiping clears all;
 *   - a cookie value found is cookie-octets only and fits its buffer;
 *   - escaped text holds no raw < > " ' or control character, every &
 *     opens one of the six entities, and it fits MT_HTML_ESCAPE_MAX.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* Encode a form again as a browser would (WHATWG urlencoded serializer). */
static size_t reencode(const struct mt_form *f, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < f->n; i++) {
		const char *v = f->value[i];
		int k = snprintf(out + o, cap - o, "%s%s=", i ? "&" : "", f->name[i]);

		if (k < 0 || (size_t)k >= cap - o)
			abort();
		o += (size_t)k;
		for (size_t j = 0; j < f->value_len[i]; j++) {
			unsigned char c = (unsigned char)v[j];

			if (o + 4 > cap)
				abort();
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '*' || c == '-' || c == '.' || c == '_') {
				out[o++] = (char)c;
			} else if (c == ' ') {
				out[o++] = '+';
			} else {
				out[o++] = '%';
				out[o++] = hex[c >> 4];
				out[o++] = hex[c & 15];
			}
		}
	}
	return o;
}

static void check_form(const uint8_t *in, size_t len)
{
	static struct mt_form f, g;
	static char again[3 * MT_FORM_BODY_MAX + 64];
	size_t n;

	if (mt_form_parse(in, len, &f) != MT_OK) {
		if (f.n != 0 || !all_zero(f.buf, sizeof f.buf))
			abort();
		return;
	}
	if (f.n > MT_FORM_FIELDS_MAX)
		abort();
	for (size_t i = 0; i < f.n; i++) {
		size_t nl = strlen(f.name[i]);

		if (nl == 0 || nl > MT_FORM_NAME_MAX || strlen(f.value[i]) != f.value_len[i] ||
		    !mt_utf8_valid((const uint8_t *)f.value[i], f.value_len[i]))
			abort();
		for (size_t j = 0; j < f.value_len[i]; j++)
			if ((unsigned char)f.value[i][j] < 0x20 || f.value[i][j] == 0x7f)
				abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(f.name[i], f.name[j]) == 0)
				abort();
		if (mt_form_get(&f, f.name[i]) != f.value[i])
			abort();
	}
	n = reencode(&f, again, sizeof again);
	if (n <= MT_FORM_BODY_MAX) {
		if (mt_form_parse((const uint8_t *)again, n, &g) != MT_OK || g.n != f.n)
			abort();
		for (size_t i = 0; i < f.n; i++)
			if (strcmp(f.name[i], g.name[i]) != 0 || strcmp(f.value[i], g.value[i]) != 0)
				abort();
		mt_form_wipe(&g);
	}
	mt_form_wipe(&f);
	if (f.n != 0 || !all_zero(f.buf, sizeof f.buf))
		abort();
}

static void check_cookie(const uint8_t *in, size_t len)
{
	static char header[16384];
	char out[64];

	if (len >= sizeof header)
		len = sizeof header - 1;
	memcpy(header, in, len);
	header[len] = '\0';
	if (mt_form_cookie(header, "mt_session", out, sizeof out) != MT_OK)
		return;
	for (size_t i = 0; out[i] != '\0'; i++) {
		unsigned char c = (unsigned char)out[i];

		if (i >= sizeof out - 1 || c <= 0x20 || c == '"' || c == ',' || c == ';' ||
		    c == '\\' || c >= 0x7f)
			abort();
	}
}

static void check_escape(const uint8_t *in, size_t len)
{
	static char out[MT_HTML_ESCAPE_MAX(70000)];
	size_t n = 0;

	if (len > 70000)
		return;
	if (mt_html_escape((const char *)in, len, out, MT_HTML_ESCAPE_MAX(len), &n) != MT_OK ||
	    strlen(out) != n || n > 8 * len)
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c == '<' || c == '>' || c == '"' || c == '\'' || c < 0x20 || c == 0x7f)
			abort();
		if (c == '&' && strncmp(out + i, "&amp;", 5) != 0 && strncmp(out + i, "&lt;", 4) != 0 &&
		    strncmp(out + i, "&gt;", 4) != 0 && strncmp(out + i, "&quot;", 6) != 0 &&
		    strncmp(out + i, "&#39;", 5) != 0 && strncmp(out + i, "&#xFFFD;", 8) != 0)
			abort();
	}
	if (!mt_utf8_valid((const uint8_t *)out, n))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0: check_form(data + 1, size - 1); break;
	case 1: check_cookie(data + 1, size - 1); break;
	default: check_escape(data + 1, size - 1); break;
	}
	return 0;
}
