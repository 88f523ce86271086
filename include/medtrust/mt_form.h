/*
 * mt_form.h — the web console's text at its edges: form bodies
 * (application/x-www-form-urlencoded) and Cookie headers coming in, HTML
 * text going out (docs/console.md; threats F05, F06, F07, F08, H).
 *
 * Everything a browser sends the console passes through here before the
 * console looks at it, and everything the console shows that came from
 * data (a patient's name, a device id, a user name) passes through
 * mt_html_escape on its way out.  The functions do no I/O and allocate
 * nothing: the caller owns every buffer, so they are fuzzed as they are
 * (fuzz/fuzz_console_form.c) and unit-tested without a server
 * (tests/unit/test_form.c).
 *
 * Forms are parsed strictly, because a browser's serialiser (WHATWG URL
 * §5.2, "application/x-www-form-urlencoded serializing") is strict: pairs
 * `name=value` joined by '&', no empty pair, no pair without '=', names
 * of [A-Za-z0-9_.-] written raw, values of [A-Za-z0-9*-._~] written raw,
 * '+' for a space and "%XX" (two hex digits) for every other byte.  A
 * name given twice is refused (which of the two would count is exactly
 * the ambiguity an attacker wants), as is a decoded value that is not
 * UTF-8 or holds a control character (NUL included: C strings end there).
 * Bounds: MT_FORM_BODY_MAX bytes, MT_FORM_FIELDS_MAX fields, names of at
 * most MT_FORM_NAME_MAX bytes.
 *
 * Values may be passwords: mt_form_wipe clears the decoded copy.
 */
#ifndef MT_FORM_H
#define MT_FORM_H

#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"

#define MT_FORM_BODY_MAX 4096 /* bytes of a form body */
#define MT_FORM_FIELDS_MAX 16
#define MT_FORM_NAME_MAX 32

/* A parsed form.  name[i] and value[i] are NUL-terminated strings inside
 * buf (decoding never lengthens a field; each field adds two NULs).  The
 * struct is the caller's (about 4.5 KiB) and holds no pointer outside
 * itself, so it must not be copied by value while in use. */
struct mt_form {
	size_t n;
	const char *name[MT_FORM_FIELDS_MAX];
	const char *value[MT_FORM_FIELDS_MAX];
	size_t value_len[MT_FORM_FIELDS_MAX];
	char buf[MT_FORM_BODY_MAX + 2 * MT_FORM_FIELDS_MAX];
};

/* Parse body[0..len) into *f (an empty body is a form of no fields).
 * Errors: MT_ERR_ARG (NULL; malformed: an empty pair, no '=', a character
 * not allowed raw, a bad %-escape, a duplicated name, a value that is not
 * UTF-8 or holds a control character), MT_ERR_BUFFER (over
 * MT_FORM_BODY_MAX bytes, MT_FORM_FIELDS_MAX fields or a name over
 * MT_FORM_NAME_MAX).  On error *f holds no field (n = 0, buf wiped). */
MT_NODISCARD enum mt_err mt_form_parse(const uint8_t *body, size_t len, struct mt_form *f);

/* The value of field `name`, or NULL when the form has none. */
const char *mt_form_get(const struct mt_form *f, const char *name);

/* Wipe every decoded byte (OPENSSL_cleanse) and forget the fields. */
void mt_form_wipe(struct mt_form *f);

/* The value of cookie `name` in a Cookie request header (RFC 6265 §4.2:
 * "a=b; c=d"), into out[0..cap) NUL-terminated.  Pairs that are not
 * well formed are skipped (other applications on the same host may set
 * cookies of their own), but ours must be a cookie-value of
 * cookie-octets (optionally in double quotes) and appear once.
 * Errors: MT_ERR_NOT_FOUND (no such cookie, or header NULL),
 * MT_ERR_ARG (given twice, or not a valid cookie-value), MT_ERR_BUFFER
 * (longer than cap - 1). */
MT_NODISCARD enum mt_err mt_form_cookie(const char *header, const char *name, char *out,
                                        size_t cap);

/* The worst-case size of mt_html_escape's output for n input bytes,
 * NUL included (one invalid byte becomes the 8 bytes "&#xFFFD;"). */
#define MT_HTML_ESCAPE_MAX(n) (8 * (size_t)(n) + 1)

/* HTML-escape in[0..len) into out[0..cap), NUL-terminated, *out_len (may
 * be NULL) the length without the NUL.  & < > " ' become &amp; &lt; &gt;
 * &quot; &#39;, so the result is inert in element content and in quoted
 * attribute values alike; bytes that are not UTF-8, C0 and C1 control
 * characters (tab and newline included) and DEL become U+FFFD
 * ("&#xFFFD;"); every other UTF-8 sequence is copied.  Errors: MT_ERR_ARG
 * (NULL), MT_ERR_BUFFER (cap too small: out is then "" — never a cut
 * entity). */
MT_NODISCARD enum mt_err mt_html_escape(const char *in, size_t len, char *out, size_t cap,
                                        size_t *out_len);

#endif
