/*
 * test_form.c — the console's input and output text (mt_form.h): strict
 * urlencoded forms, Cookie headers, HTML escaping (threats F05–F08, H).
 *
 * Forms: what a browser sends parses exactly (escapes, '+', UTF-8); each
 * malformation a browser never produces is refused on its own — a bare
 * name, an empty pair, a trailing '&', a bad or short %-escape, a raw
 * character outside the unreserved set, a duplicated name, a NUL or other
 * control character or invalid UTF-8 once decoded — and leaves no field
 * and no decoded byte behind; each bound (body, fields, name) holds at
 * exactly its limit and fails one past it.
 *
 * Cookies: ours is found among others, foreign junk is skipped, ours given
 * twice or with a forbidden octet is refused, a longer name that merely
 * starts with ours is not ours.
 *
 * HTML: the five special characters become entities; valid UTF-8 passes;
 * invalid bytes, overlongs, surrogates, C0/C1 controls become U+FFFD; a
 * short buffer yields "" rather than a cut entity; and over 20,000 random
 * strings the output, in a buffer of MT_HTML_ESCAPE_MAX, never holds a raw
 * < > " ' and every & opens an entity.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_form.h"
#include "mt_testutil.h"

static enum mt_err parse(const char *s, struct mt_form *f)
{
	return mt_form_parse((const uint8_t *)s, strlen(s), f);
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static void test_form_valid(void **state)
{
	struct mt_form f;
	(void)state;

	assert_int_equal(parse("user=ann&password=p%C3%A4ss+w%2Bord%21%3D%26&csrf=a-b_c.d~e*", &f),
	                 MT_OK);
	assert_int_equal(f.n, 3);
	assert_string_equal(mt_form_get(&f, "user"), "ann");
	assert_string_equal(mt_form_get(&f, "password"), "p\xc3\xa4ss w+ord!=&");
	assert_int_equal(f.value_len[1], strlen("p\xc3\xa4ss w+ord!=&"));
	assert_string_equal(mt_form_get(&f, "csrf"), "a-b_c.d~e*");
	assert_null(mt_form_get(&f, "nope"));
	assert_null(mt_form_get(&f, "USER")); /* names are exact */

	assert_int_equal(parse("a=&b=1", &f), MT_OK); /* an empty value is a value */
	assert_string_equal(mt_form_get(&f, "a"), "");
	assert_int_equal(parse("", &f), MT_OK);
	assert_int_equal(f.n, 0);
	assert_int_equal(mt_form_parse(NULL, 0, &f), MT_OK);

	mt_form_wipe(&f);
	assert_int_equal(parse("secret=hunter2-hunter2", &f), MT_OK);
	mt_form_wipe(&f);
	assert_int_equal(f.n, 0);
	assert_null(mt_form_get(&f, "secret"));
	assert_true(all_zero(f.buf, sizeof f.buf));
}

static void test_form_refused(void **state)
{
	static const char *const bad[] = {
	        "a",        "=x",       "a=1&",      "&a=1",     "a=1&&b=2", "a=%zz",
	        "a=%2",     "a=%",      "a=1&a=2",   "a=%00",    "a=%0a",    "a=%09",
	        "a=%7f",    "a=%ff",    "a=%c3",     "a=%ed%a0%80", "a=<",   "a b=1",
	        "a=1;b=2",  "a=x y",    "a=\"q\"",   "a%41=1",   "a+b=1",    "a=1&=2",
	        "a=é",      "a=1\n",    "a\n=1",
	};
	struct mt_form f;
	(void)state;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&f, 0x55, sizeof f);
		if (parse(bad[i], &f) != MT_ERR_ARG)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(f.n, 0);
		assert_true(all_zero(f.buf, sizeof f.buf)); /* nothing decoded stays */
	}
	assert_int_equal(mt_form_parse(NULL, 3, &f), MT_ERR_ARG);
	assert_int_equal(mt_form_parse((const uint8_t *)"a=1", 3, NULL), MT_ERR_ARG);
}

static void test_form_bounds(void **state)
{
	char body[MT_FORM_BODY_MAX + 2], name[MT_FORM_NAME_MAX + 4];
	struct mt_form f;
	size_t n = 0;
	(void)state;

	/* the body: exactly MT_FORM_BODY_MAX parses, one more byte does not */
	memcpy(body, "a=", 2);
	memset(body + 2, 'x', MT_FORM_BODY_MAX - 2);
	assert_int_equal(mt_form_parse((const uint8_t *)body, MT_FORM_BODY_MAX, &f), MT_OK);
	assert_int_equal(f.value_len[0], MT_FORM_BODY_MAX - 2);
	body[MT_FORM_BODY_MAX] = 'x';
	assert_int_equal(mt_form_parse((const uint8_t *)body, MT_FORM_BODY_MAX + 1, &f),
	                 MT_ERR_BUFFER);
	assert_int_equal(f.n, 0);

	/* fields: 16 parse, 17 do not */
	for (int i = 0; i < MT_FORM_FIELDS_MAX; i++)
		n += (size_t)snprintf(body + n, sizeof body - n, "%sf%d=%d", i ? "&" : "", i, i);
	assert_int_equal(mt_form_parse((const uint8_t *)body, n, &f), MT_OK);
	assert_int_equal(f.n, MT_FORM_FIELDS_MAX);
	assert_string_equal(mt_form_get(&f, "f15"), "15");
	n += (size_t)snprintf(body + n, sizeof body - n, "&g=1");
	assert_int_equal(mt_form_parse((const uint8_t *)body, n, &f), MT_ERR_BUFFER);

	/* names: 32 bytes parse, 33 do not */
	memset(name, 'n', MT_FORM_NAME_MAX);
	memcpy(name + MT_FORM_NAME_MAX, "=1", 3);
	assert_int_equal(parse(name, &f), MT_OK);
	memset(name, 'n', MT_FORM_NAME_MAX + 1);
	memcpy(name + MT_FORM_NAME_MAX + 1, "=1", 3);
	assert_int_equal(parse(name, &f), MT_ERR_BUFFER);
}

static void test_cookie(void **state)
{
	char out[64];
	(void)state;

	assert_int_equal(mt_form_cookie("a=1; mt_session=XYZ-_1; b=2", "mt_session", out, sizeof out),
	                 MT_OK);
	assert_string_equal(out, "XYZ-_1");
	assert_int_equal(mt_form_cookie("mt_session=v", "mt_session", out, sizeof out), MT_OK);
	assert_string_equal(out, "v");
	assert_int_equal(mt_form_cookie("mt_session=\"quoted\"", "mt_session", out, sizeof out),
	                 MT_OK);
	assert_string_equal(out, "quoted");
	assert_int_equal(mt_form_cookie("junk; =x; a b=c; mt_session=Q", "mt_session", out,
	                                sizeof out),
	                 MT_OK);
	assert_string_equal(out, "Q");
	assert_int_equal(mt_form_cookie("xmt_session=1; mt_session=2", "mt_session", out,
	                                sizeof out),
	                 MT_OK);
	assert_string_equal(out, "2");
	assert_int_equal(mt_form_cookie("mt_session2=1", "mt_session", out, sizeof out),
	                 MT_ERR_NOT_FOUND);
	assert_int_equal(mt_form_cookie("", "mt_session", out, sizeof out), MT_ERR_NOT_FOUND);
	assert_int_equal(mt_form_cookie(NULL, "mt_session", out, sizeof out), MT_ERR_NOT_FOUND);
	/* ours twice: which one? neither */
	assert_int_equal(mt_form_cookie("mt_session=a; mt_session=b", "mt_session", out,
	                                sizeof out),
	                 MT_ERR_ARG);
	assert_string_equal(out, "");
	/* forbidden octets in ours */
	assert_int_equal(mt_form_cookie("mt_session=a,b", "mt_session", out, sizeof out),
	                 MT_ERR_ARG);
	assert_int_equal(mt_form_cookie("mt_session=a\\b", "mt_session", out, sizeof out),
	                 MT_ERR_ARG);
	assert_int_equal(mt_form_cookie("mt_session=a b", "mt_session", out, sizeof out),
	                 MT_ERR_ARG);
	assert_int_equal(mt_form_cookie("mt_session=\"a", "mt_session", out, sizeof out),
	                 MT_ERR_ARG);
	/* too long for the caller */
	assert_int_equal(mt_form_cookie("mt_session=0123456789", "mt_session", out, 10),
	                 MT_ERR_BUFFER);
	assert_int_equal(mt_form_cookie("mt_session=012345678", "mt_session", out, 10), MT_OK);
	assert_int_equal(mt_form_cookie("a=1", NULL, out, sizeof out), MT_ERR_ARG);
}

static void check_escape(const char *in, size_t len, const char *want)
{
	char out[MT_HTML_ESCAPE_MAX(64)];
	size_t n = 99;

	assert_true(len <= 64);
	assert_int_equal(mt_html_escape(in, len, out, sizeof out, &n), MT_OK);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

#define FFFD "&#xFFFD;"
#define ESC(s, want) check_escape(s, sizeof(s) - 1, want)

static void test_html_escape(void **state)
{
	char small[8];
	size_t n = 7;
	(void)state;

	ESC("<script>alert('x')</script>&\"",
	             "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;");
	ESC("Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80",
	             "Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80");
	ESC("", "");
	ESC("a\xff" "b", "a" FFFD "b");
	ESC("\x01\n\t\x7f", FFFD FFFD FFFD FFFD);
	ESC("\xc0\xaf", FFFD FFFD);              /* overlong '/' */
	ESC("\xe0\x80\xaf", FFFD FFFD FFFD);     /* overlong */
	ESC("\xed\xa0\x80", FFFD FFFD FFFD);     /* a surrogate */
	ESC("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD); /* above U+10FFFF */
	ESC("\xc2\x85", FFFD FFFD);              /* C1 control NEL */
	ESC("\xe2\x82", FFFD FFFD);              /* cut short */
	ESC("a\0b", "a" FFFD "b");               /* NUL inside */

	assert_int_equal(mt_html_escape("<<", 2, small, sizeof small, &n), MT_ERR_BUFFER);
	assert_string_equal(small, ""); /* never "&lt;&l" */
	assert_int_equal(n, 0);
	assert_int_equal(mt_html_escape("abcdefg", 7, small, sizeof small, &n), MT_OK);
	assert_int_equal(mt_html_escape("abcdefgh", 8, small, sizeof small, &n), MT_ERR_BUFFER);
	assert_int_equal(mt_html_escape(NULL, 1, small, sizeof small, &n), MT_ERR_ARG);
	assert_int_equal(mt_html_escape("a", 1, NULL, 1, &n), MT_ERR_ARG);
}

/* Random bytes, weighted towards the characters that matter. */
static void test_html_escape_random(void **state)
{
	static const char pick[] = "<>\"'&a\xc3\xa9\xe2\x82\xac\xff\x01";
	char in[48], out[MT_HTML_ESCAPE_MAX(48)];
	uint64_t seed = 0x9e3779b97f4a7c15u;
	(void)state;

	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(mt_test_xorshift64(&seed) % sizeof in), n = 0;

		for (size_t i = 0; i < len; i++) {
			uint64_t r = mt_test_xorshift64(&seed);

			in[i] = (r & 1) ? (char)(r >> 8) : pick[(r >> 8) % (sizeof pick - 1)];
		}
		assert_int_equal(mt_html_escape(in, len, out, sizeof out, &n), MT_OK);
		assert_int_equal(strlen(out), n);
		for (size_t i = 0; i < n; i++) {
			assert_true(out[i] != '<' && out[i] != '>' && out[i] != '"' && out[i] != '\'');
			if (out[i] == '&')
				assert_true(strncmp(out + i, "&amp;", 5) == 0 ||
				            strncmp(out + i, "&lt;", 4) == 0 ||
				            strncmp(out + i, "&gt;", 4) == 0 ||
				            strncmp(out + i, "&quot;", 6) == 0 ||
				            strncmp(out + i, "&#39;", 5) == 0 ||
				            strncmp(out + i, FFFD, 8) == 0);
			assert_true((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_form_valid),      cmocka_unit_test(test_form_refused),
	        cmocka_unit_test(test_form_bounds),     cmocka_unit_test(test_cookie),
	        cmocka_unit_test(test_html_escape),     cmocka_unit_test(test_html_escape_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
