/*
 * test_json.c — the JSON form of a message (protocol §9, mt_json.h) and the
 * strict RFC 8259 reader under it (src/core/json_read.c, json_int.h).
 *
 * §9 makes every JSON integer a CBOR int and promises integers "exactly
 * (any uint64)"; §5 leaves most `uint` and `int` fields unbounded, so the
 * JSON form must carry −2^64 .. 2^64 − 1 both ways.  The reader exists
 * because jansson cannot (its json_int_t is a long long), so these tests pin
 * what it now owns:
 *
 *   - the reader on its own: every escape of RFC 8259 §7, surrogate pairs
 *     joined into one code point, lone surrogates, bad escapes, raw control
 *     characters and invalid UTF-8 refused; literals; the number grammar
 *     (leading zeros, '+', bare '.', NaN are not JSON); integers exact at
 *     every boundary (2^63 − 1, 2^63, 2^64 − 1 kept, 2^64 out of range;
 *     −2^63, −2^64 kept, −2^64 − 1 out of range); floats through strtod
 *     (97.0 stays a float, 1e300, −0.0 with its sign, 5e-324, 1e400 refused);
 *     duplicate names refused also when an escape spells the same name and
 *     in objects large enough to take the sorting path; the nesting, value
 *     and size bounds at their edges; nothing but whitespace after the value;
 *     error positions;
 *   - the message form: big integers in every unbounded field survive
 *     JSON → message → JSON unchanged and JSON → message → CBOR → message →
 *     JSON unchanged; out-of-range integers and over-bound fields are schema
 *     errors (exit 65 in `packet seal`), malformed text a syntax error.
 *
 * Inputs with a NUL byte are passed with explicit lengths; everything else
 * is a C string.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json_int.h"
#include "medtrust/mt_json.h"
#include "medtrust/mt_message.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------ */

/* Read `text` (a C string); on success the caller frees `d`. */
static enum mt_err rd(const char *text, struct mt_jdoc *d)
{
	char why[MT_JSON_WHY_MAX];
	enum mt_err e = mt_json__read(text, strlen(text), d, why, sizeof why);

	if (e == MT_OK)
		assert_non_null(d->root);
	else
		assert_true(why[0] != '\0'); /* a refusal names its reason */
	return e;
}

/* Expect `text` to be refused as a syntax error; prints it otherwise. */
static size_t expect_syntax(const char *label, const char *text, size_t len)
{
	struct mt_jdoc d;
	char why[MT_JSON_WHY_MAX];
	enum mt_err e = mt_json__read(text, len, &d, why, sizeof why);

	if (e == MT_OK) {
		print_error("%s: accepted, want a syntax error\n", label);
		mt_json__free(&d);
		return 1;
	}
	if (e != MT_ERR_JSON_SYNTAX) {
		print_error("%s: %s, want a syntax error\n", label, mt_err_str(e));
		return 1;
	}
	if (why[0] == '\0') {
		print_error("%s: refused without a reason\n", label);
		return 1;
	}
	/* the doc holds nothing after a refusal */
	assert_null(d.root);
	assert_null(d.text);
	assert_null(d.blocks);
	return 0;
}

/* The single string a text reads to, compared with want[0..wn). */
static size_t expect_str(const char *label, const char *text, const char *want, size_t wn)
{
	struct mt_jdoc d;
	char why[MT_JSON_WHY_MAX];
	size_t bad = 0;

	if (mt_json__read(text, strlen(text), &d, why, sizeof why) != MT_OK) {
		print_error("%s: refused: %s\n", label, why);
		return 1;
	}
	if (d.root->type != MT_JV_STRING || d.root->len != wn || memcmp(d.root->s, want, wn) != 0 ||
	    d.root->s[wn] != '\0') {
		print_error("%s: decoded to something else\n", label);
		bad = 1;
	}
	mt_json__free(&d);
	return bad;
}

/* A top-level integer read back as (type, u). */
static size_t expect_integer(const char *text, enum mt_jv_type type, uint64_t u, bool neg)
{
	struct mt_jdoc d;
	size_t bad = 0;

	if (rd(text, &d) != MT_OK) {
		print_error("%s: refused\n", text);
		return 1;
	}
	if (d.root->type != type || (type != MT_JV_BIGINT && d.root->u != u) ||
	    (type == MT_JV_BIGINT && d.root->neg != neg)) {
		print_error("%s: read as type %d, u %llu, neg %d\n", text, (int)d.root->type,
		            (unsigned long long)d.root->u, (int)d.root->neg);
		bad = 1;
	}
	mt_json__free(&d);
	return bad;
}

static double read_float(const char *text)
{
	struct mt_jdoc d;
	double f;

	assert_int_equal(rd(text, &d), MT_OK);
	assert_int_equal(d.root->type, MT_JV_FLOAT);
	f = d.root->f;
	mt_json__free(&d);
	return f;
}

/* Parse `text` as a message, expecting `want`. */
static size_t expect_msg(const char *label, const char *text, enum mt_err want)
{
	struct mt_json_message jm;
	char why[MT_JSON_WHY_MAX];
	enum mt_err e = mt_json_message_parse(text, strlen(text), &jm, why, sizeof why);

	if (e == MT_OK)
		mt_json_message_free(&jm);
	if (e != want) {
		print_error("%s: got %s (%s), want %s\n", label, mt_err_str(e), why,
		            mt_err_str(want));
		return 1;
	}
	if (e != MT_OK && why[0] == '\0') {
		print_error("%s: refused without a reason\n", label);
		return 1;
	}
	return 0;
}

/* `text` must be in the formatter's own form: parse → format gives it back;
 * encode → decode → format gives it back too. */
static void assert_json_round_trip(const char *text)
{
	static uint8_t cbor[2 * MT_PACKET_MAX];
	static struct mt_obs obs[MT_OBS_MAX];
	struct mt_json_message jm;
	struct mt_message back;
	char why[MT_JSON_WHY_MAX];
	char *out = NULL, *out2 = NULL;
	const char *reason = NULL;
	size_t len = 0, len2 = 0, clen = 0;

	if (mt_json_message_parse(text, strlen(text), &jm, why, sizeof why) != MT_OK)
		fail_msg("refused: %s\n  %s", why, text);
	assert_int_equal(mt_json_message_format(&jm.msg, &out, &len), MT_OK);
	if (len != strlen(text) || memcmp(out, text, len) != 0)
		fail_msg("JSON → message → JSON differs:\n  in  %s\n  out %s", text, out);
	assert_int_equal(mt_message_encode(&jm.msg, cbor, sizeof cbor, &clen), MT_OK);
	if (mt_message_decode(cbor, clen, &back, obs, MT_OBS_MAX, &reason) != MT_OK)
		fail_msg("decode refused the encoding: %s\n  %s", reason ? reason : "?", text);
	assert_int_equal(mt_json_message_format(&back, &out2, &len2), MT_OK);
	if (len2 != len || memcmp(out2, text, len) != 0)
		fail_msg("JSON → CBOR → JSON differs:\n  in  %s\n  out %s", text, out2);
	free(out);
	free(out2);
	mt_json_message_free(&jm);
}

/* ---- strings ------------------------------------------------------------ */

static void test_escapes(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
		size_t wn;
	} c[] = {
	        {"\"\\\"\"", "\"", 1},
	        {"\"\\\\\"", "\\", 1},
	        {"\"\\/\"", "/", 1},
	        {"\"\\b\"", "\b", 1},
	        {"\"\\f\"", "\f", 1},
	        {"\"\\n\"", "\n", 1},
	        {"\"\\r\"", "\r", 1},
	        {"\"\\t\"", "\t", 1},
	        {"\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"", "a\"b\\c/d\be\ff\ng\rh\ti", 17},
	        {"\"\\u0000\"", "\0", 1},
	        {"\"a\\u0000b\"", "a\0b", 3},
	        {"\"\\u0041\"", "A", 1},
	        {"\"\\u001f\"", "\x1f", 1},
	        {"\"\\u007f\"", "\x7f", 1},
	        {"\"\\u0080\"", "\xc2\x80", 2},
	        {"\"\\u00e9\"", "\xc3\xa9", 2},
	        {"\"\\u00E9\"", "\xc3\xa9", 2}, /* hex digits in either case */
	        {"\"\\u07ff\"", "\xdf\xbf", 2},
	        {"\"\\u0800\"", "\xe0\xa0\x80", 3},
	        {"\"\\u20ac\"", "\xe2\x82\xac", 3},
	        {"\"\\uD7FF\"", "\xed\x9f\xbf", 3},
	        {"\"\\uE000\"", "\xee\x80\x80", 3},
	        {"\"\\uffff\"", "\xef\xbf\xbf", 3},
	        /* surrogate pairs become one 4-byte sequence */
	        {"\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 4}, /* U+10000 */
	        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4}, /* U+1F600 */
	        {"\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4},
	        {"\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
	        {"\"x\\ud83d\\ude00y\"", "x\xf0\x9f\x98\x80y", 6},
	        /* raw UTF-8 passes through; DEL needs no escape */
	        {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"",
	         "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f", 10},
	        {"\"\"", "", 0},
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += expect_str(c[i].text, c[i].text, c[i].want, c[i].wn);
	assert_int_equal(bad, 0);
}

static void test_bad_strings(void **state)
{
	(void)state;
	static const char *const c[] = {
	        /* escapes RFC 8259 does not have */
	        "\"\\x41\"",
	        "\"\\a\"",
	        "\"\\U0041\"",
	        "\"\\'\"",
	        "\"\\0\"",
	        "\"\\ \"",
	        /* \u with fewer than four hex digits */
	        "\"\\u\"",
	        "\"\\u12\"",
	        "\"\\u12g4\"",
	        "\"\\u-123\"",
	        "\"\\u 123\"",
	        /* lone surrogates, a high one followed by anything but a low one */
	        "\"\\ud83d\"",
	        "\"\\ud83dx\"",
	        "\"\\ud83d\\u0041\"",
	        "\"\\ud83d\\ud83d\"",
	        "\"\\ude00\"",
	        "\"\\udfff\"",
	        "\"\\ude00\\ud83d\"",
	        "\"\\ud83d\\n\"",
	        "\"\\ud83d\\\"",
	        "\"\\ud83d\\u\"",
	        "\"\\ud83d\\udc\"",
	        /* unterminated */
	        "\"abc",
	        "\"",
	        "\"\\",
	        "\"\\\"",
	        "\"\\u00e9",
	        /* raw control characters */
	        "\"a\x01\"",
	        "\"\t\"",
	        "\"\n\"",
	        "\"\r\"",
	        "\"\x1f\"",
	        /* invalid UTF-8 */
	        "\"\xff\"",
	        "\"\xfe\"",
	        "\"\x80\"",
	        "\"\xbf\"",
	        "\"\xc0\x80\"",
	        "\"\xc1\xbf\"",
	        "\"\xe0\x80\x80\"",
	        "\"\xe0\x9f\xbf\"",
	        "\"\xed\xa0\x80\"",
	        "\"\xed\xbf\xbf\"",
	        "\"\xf0\x80\x80\x80\"",
	        "\"\xf0\x8f\xbf\xbf\"",
	        "\"\xf4\x90\x80\x80\"",
	        "\"\xf5\x80\x80\x80\"",
	        "\"\xc3\"",
	        "\"\xe2\x82\"",
	        "\"\xf0\x9f\x98\"",
	        "\"\xc3\x41\"",
	        "\"\xe2\x28\xa1\"",
	        /* strings in single quotes are not JSON */
	        "'a'",
	        /* invalid UTF-8 in a name */
	        "{\"\xff\": 1}",
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += expect_syntax(c[i], c[i], strlen(c[i]));
	/* a NUL byte in the input is a raw control character */
	bad += expect_syntax("raw NUL", "\"a\0b\"", 5);
	bad += expect_syntax("NUL after the value", "1\0", 2);
	assert_int_equal(bad, 0);
}

/* ---- numbers ------------------------------------------------------------ */

static void test_integer_boundaries(void **state)
{
	(void)state;
	size_t bad = 0;
	bad += expect_integer("0", MT_JV_UINT, 0, false);
	bad += expect_integer("-0", MT_JV_UINT, 0, false); /* the integer 0 */
	bad += expect_integer("1", MT_JV_UINT, 1, false);
	bad += expect_integer("-1", MT_JV_NEGINT, 0, false);
	bad += expect_integer("4294967295", MT_JV_UINT, UINT32_MAX, false);
	bad += expect_integer("9223372036854775807", MT_JV_UINT, INT64_MAX, false); /* 2^63 − 1 */
	bad += expect_integer("9223372036854775808", MT_JV_UINT, UINT64_C(1) << 63,
	                      false);                                                 /* 2^63 */
	bad += expect_integer("18446744073709551615", MT_JV_UINT, UINT64_MAX, false); /* 2^64 − 1 */
	bad += expect_integer("18446744073709551616", MT_JV_BIGINT, 0, false);        /* 2^64 */
	bad += expect_integer("18446744073709551620", MT_JV_BIGINT, 0, false);
	bad += expect_integer("99999999999999999999", MT_JV_BIGINT, 0, false);
	bad += expect_integer("100000000000000000000000000000000000000000", MT_JV_BIGINT, 0, false);
	bad += expect_integer("-9223372036854775808", MT_JV_NEGINT, (UINT64_C(1) << 63) - 1,
	                      false); /* −2^63 */
	bad += expect_integer("-9223372036854775809", MT_JV_NEGINT, UINT64_C(1) << 63,
	                      false); /* −2^63 − 1 */
	bad += expect_integer("-18446744073709551615", MT_JV_NEGINT, UINT64_MAX - 1, false);
	bad += expect_integer("-18446744073709551616", MT_JV_NEGINT, UINT64_MAX, false); /* −2^64 */
	bad += expect_integer("-18446744073709551617", MT_JV_BIGINT, 0, true); /* −2^64 − 1 */
	bad += expect_integer("-18446744073709551626", MT_JV_BIGINT, 0, true);
	bad += expect_integer("-99999999999999999999", MT_JV_BIGINT, 0, true);
	bad += expect_integer("-184467440737095516160", MT_JV_BIGINT, 0, true);
	bad += expect_integer(" \t\r\n42 \t\r\n", MT_JV_UINT, 42, false);
	assert_int_equal(bad, 0);

	/* as mt_num */
	struct mt_jdoc d;
	struct mt_num n;
	assert_int_equal(rd("[-18446744073709551616, 18446744073709551615, 1.5, "
	                    "18446744073709551616, null]",
	                    &d),
	                 MT_OK);
	assert_true(mt_json__num(mt_json__at(d.root, 0), &n));
	assert_int_equal(n.kind, MT_NUM_NEGINT);
	assert_true(n.u == UINT64_MAX);
	assert_true(mt_json__num(mt_json__at(d.root, 1), &n));
	assert_int_equal(n.kind, MT_NUM_UINT);
	assert_true(n.u == UINT64_MAX);
	assert_true(mt_json__num(mt_json__at(d.root, 2), &n));
	assert_int_equal(n.kind, MT_NUM_FLOAT);
	assert_true(n.f == 1.5);
	assert_false(mt_json__num(mt_json__at(d.root, 3), &n)); /* out of range */
	assert_false(mt_json__num(mt_json__at(d.root, 4), &n)); /* null */
	assert_null(mt_json__at(d.root, 5));
	assert_false(mt_json__num(NULL, &n));
	mt_json__free(&d);
}

static void test_floats(void **state)
{
	(void)state;
	double f;

	/* a '.', 'e' or 'E' makes a float, whatever the value */
	f = read_float("97.0");
	assert_true(f == 97.0);
	f = read_float("1e2");
	assert_true(f == 100.0);
	f = read_float("1E2");
	assert_true(f == 100.0);
	f = read_float("1e+2");
	assert_true(f == 100.0);
	f = read_float("1E-2");
	assert_true(f == 0.01);
	f = read_float("0.0");
	assert_true(f == 0.0 && !signbit(f));
	f = read_float("-0.0");
	assert_true(f == 0.0 && signbit(f));
	f = read_float("-0e0");
	assert_true(f == 0.0 && signbit(f));
	f = read_float("36.6");
	assert_true(f == 36.6);
	f = read_float("1e300");
	assert_true(f == 1e300);
	f = read_float("-1e300");
	assert_true(f == -1e300);
	f = read_float("1.7976931348623157e308");
	assert_true(f == 1.7976931348623157e308);
	f = read_float("2.2250738585072014e-308");
	assert_true(f == 2.2250738585072014e-308);
	f = read_float("5e-324"); /* the smallest subnormal */
	assert_true(f == 5e-324 && f > 0);
	f = read_float("1e-400"); /* underflows to 0: still a finite double */
	assert_true(f == 0.0);
	f = read_float("18446744073709551616.0");
	assert_true(f == 18446744073709551616.0);
	f = read_float("123456789012345678901234567890e-20");
	assert_true(f == 1234567890.1234567890123456789);
	/* a long lexeme (more than the reader's stack buffer) */
	char longf[200];
	memset(longf, '0', sizeof longf);
	longf[0] = '0';
	longf[1] = '.';
	longf[sizeof longf - 2] = '5';
	longf[sizeof longf - 1] = '\0';
	f = read_float(longf);
	assert_true(f > 0 && f < 1e-190);

	size_t bad = 0;
	bad += expect_syntax("1e400", "1e400", 5);
	bad += expect_syntax("-1e400", "-1e400", 6);
	bad += expect_syntax("1.8e308", "1.8e308", 7);
	assert_int_equal(bad, 0);
}

static void test_number_grammar(void **state)
{
	(void)state;
	static const char *const c[] = {
	        "01",        "-01",   "00",   "-00",  "00.5",  "+1",  "+0",  ".5",
	        "-.5",       "1.",    "1.e5", "-",    "--1",   "- 1", "1e",  "1e+",
	        "1E-",       "1e5.5", "0x10", "0b1",  "1_000", "NaN", "nan", "Infinity",
	        "-Infinity", "inf",   "1.5e", "0.e1", "1 2",   "1,",  "١",
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += expect_syntax(c[i], c[i], strlen(c[i]));
	assert_int_equal(bad, 0);
}

/* ---- structure ---------------------------------------------------------- */

static void test_literals_and_structure(void **state)
{
	(void)state;
	struct mt_jdoc d;

	assert_int_equal(rd("true", &d), MT_OK);
	assert_int_equal(d.root->type, MT_JV_TRUE);
	mt_json__free(&d);
	assert_int_equal(rd("false", &d), MT_OK);
	assert_int_equal(d.root->type, MT_JV_FALSE);
	mt_json__free(&d);
	assert_int_equal(rd("null", &d), MT_OK);
	assert_int_equal(d.root->type, MT_JV_NULL);
	mt_json__free(&d);
	mt_json__free(&d); /* twice is harmless */
	mt_json__free(NULL);

	/* members in input order, found by name, names with a NUL inside */
	assert_int_equal(rd(" { \"b\" : [ 1 , \"x\" , { } , [ ] ] , \"a\\u0000\" : true , "
	                    "\"a\" : null } ",
	                    &d),
	                 MT_OK);
	assert_int_equal(d.root->type, MT_JV_OBJECT);
	assert_int_equal(d.root->len, 3);
	const struct mt_jv *b = d.root->first;
	assert_int_equal(b->name_len, 1);
	assert_string_equal(b->name, "b");
	assert_int_equal(b->type, MT_JV_ARRAY);
	assert_int_equal(b->len, 4);
	assert_int_equal(mt_json__at(b, 0)->type, MT_JV_UINT);
	assert_int_equal(mt_json__at(b, 1)->type, MT_JV_STRING);
	assert_int_equal(mt_json__at(b, 2)->type, MT_JV_OBJECT);
	assert_null(mt_json__at(b, 2)->first);
	assert_int_equal(mt_json__at(b, 3)->type, MT_JV_ARRAY);
	assert_int_equal(mt_json__at(b, 3)->len, 0);
	assert_ptr_equal(mt_json__get(d.root, "b", 1), b);
	assert_int_equal(mt_json__get(d.root, "a", 1)->type, MT_JV_NULL);
	assert_int_equal(mt_json__get(d.root, "a\0", 2)->type, MT_JV_TRUE);
	assert_null(mt_json__get(d.root, "c", 1));
	assert_null(mt_json__get(b, "b", 1)); /* not an object */
	assert_null(mt_json__get(NULL, "b", 1));
	assert_null(mt_json__at(d.root, 0)); /* not an array */
	mt_json__free(&d);

	static const char *const c[] = {
	        "",
	        " ",
	        "\n\t\r ",
	        "[",
	        "]",
	        "{",
	        "}",
	        "[1",
	        "[1,",
	        "[1,]",
	        "[,1]",
	        "[1 2]",
	        "{\"a\"}",
	        "{\"a\":}",
	        "{\"a\" 1}",
	        "{\"a\":1,}",
	        "{,\"a\":1}",
	        "{a:1}",
	        "{1:1}",
	        "{\"a\":1 \"b\":2}",
	        "{\"a\":1;\"b\":2}",
	        "{'a':1}",
	        "[1;2]",
	        "tru",
	        "True",
	        "TRUE",
	        "nul",
	        "NULL",
	        "fals",
	        "undefined",
	        "/* c */ 1",
	        "1 // c",
	        "#",
	        "\xef\xbb\xbf{}",
	        "\v1",
	        "\f1",
	        "\xc2\xa0\x31", /* a no-break space before 1 */
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += expect_syntax(c[i], c[i], strlen(c[i]));
	assert_int_equal(bad, 0);
}

static void test_trailing_garbage(void **state)
{
	(void)state;
	struct mt_jdoc d;
	static const char *const c[] = {
	        "{} x",        "{}}",    "{}{}",       "[]]",   "[] []", "1 2",
	        "\"a\" \"b\"", "truex",  "true false", "nulll", "1x",    "0 0",
	        "{\"a\":1}\"", "[]\x01", "[] \xff",    "{} ,",  "[]\v",
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += expect_syntax(c[i], c[i], strlen(c[i]));
	assert_int_equal(bad, 0);
	/* whitespace is fine */
	assert_int_equal(rd(" \t\r\n{} \t\r\n", &d), MT_OK);
	mt_json__free(&d);
}

static void test_duplicate_names(void **state)
{
	(void)state;
	struct mt_jdoc d;
	char big[4096];
	size_t bad = 0, n;

	bad += expect_syntax("a a", "{\"a\": 1, \"a\": 2}", 16);
	bad += expect_syntax("same value", "{\"a\": 1, \"a\": 1}", 16);
	bad += expect_syntax("escape spells the same name", "{\"a\": 1, \"\\u0061\": 2}", 21);
	bad += expect_syntax("nested", "[{\"x\": {\"b\": 1, \"c\": 2, \"b\": 3}}]", 33);
	bad += expect_syntax("NUL names", "{\"a\\u0000\": 1, \"a\\u0000\": 2}", 28);
	assert_int_equal(bad, 0);

	/* names that differ only after a NUL, or by case, are different */
	assert_int_equal(rd("{\"a\": 1, \"a\\u0000\": 2, \"a\\u0000b\": 3, \"A\": 4}", &d), MT_OK);
	mt_json__free(&d);
	/* the same name in different objects is fine */
	assert_int_equal(rd("{\"a\": {\"a\": 1}, \"b\": {\"a\": 2}}", &d), MT_OK);
	mt_json__free(&d);

	/* a large object (the sorting path): 200 unique names, then a repeat */
	n = 0;
	big[n++] = '{';
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(big + n, sizeof big - n, "%s\"k%d\": %d", i ? ", " : "", i,
		                      i);
	big[n] = '}';
	big[n + 1] = '\0';
	assert_int_equal(rd(big, &d), MT_OK);
	assert_int_equal(d.root->len, 200);
	assert_int_equal(mt_json__get(d.root, "k199", 4)->u, 199);
	mt_json__free(&d);
	n += (size_t)snprintf(big + n, sizeof big - n, ", \"k17\": 0}");
	assert_int_equal(expect_syntax("200 names and a repeat", big, n), 0);
}

static void test_bounds(void **state)
{
	(void)state;
	struct mt_jdoc d;
	char text[2 * MT_JSON_DEPTH_MAX + 16];
	size_t n;

	/* nesting: MT_JSON_DEPTH_MAX containers deep is fine, one more is not */
	for (int depth = MT_JSON_DEPTH_MAX; depth <= MT_JSON_DEPTH_MAX + 1; depth++) {
		n = 0;
		for (int i = 0; i < depth; i++)
			text[n++] = '[';
		for (int i = 0; i < depth; i++)
			text[n++] = ']';
		text[n] = '\0';
		if (depth == MT_JSON_DEPTH_MAX) {
			assert_int_equal(rd(text, &d), MT_OK);
			mt_json__free(&d);
		} else {
			assert_int_equal(expect_syntax("arrays too deep", text, n), 0);
		}
	}
	/* objects count the same way */
	char obj[8 * MT_JSON_DEPTH_MAX + 16];
	for (int depth = MT_JSON_DEPTH_MAX; depth <= MT_JSON_DEPTH_MAX + 1; depth++) {
		n = 0;
		for (int i = 0; i < depth - 1; i++)
			n += (size_t)snprintf(obj + n, sizeof obj - n, "{\"a\":");
		obj[n++] = '[';
		obj[n++] = ']';
		for (int i = 0; i < depth - 1; i++)
			obj[n++] = '}';
		obj[n] = '\0';
		if (depth == MT_JSON_DEPTH_MAX) {
			assert_int_equal(rd(obj, &d), MT_OK);
			mt_json__free(&d);
		} else {
			assert_int_equal(expect_syntax("objects too deep", obj, n), 0);
		}
	}
	/* a deep but unclosed input fails on depth, not on the stack */
	static char deep[100000];
	memset(deep, '[', sizeof deep);
	assert_int_equal(expect_syntax("100000 '['", deep, sizeof deep), 0);

	/* values: MT_JSON_VALUES_MAX in all (the array and MAX − 1 zeros) is
	 * fine, one more is not */
	size_t cap = 2 * MT_JSON_VALUES_MAX + 8;
	char *vals = malloc(cap);
	assert_non_null(vals);
	for (size_t count = MT_JSON_VALUES_MAX - 1; count <= MT_JSON_VALUES_MAX; count++) {
		n = 0;
		vals[n++] = '[';
		for (size_t i = 0; i < count; i++) {
			if (i)
				vals[n++] = ',';
			vals[n++] = '0';
		}
		vals[n++] = ']';
		if (count == MT_JSON_VALUES_MAX - 1) {
			char why[MT_JSON_WHY_MAX];
			assert_int_equal(mt_json__read(vals, n, &d, why, sizeof why), MT_OK);
			assert_int_equal(d.root->len, count);
			assert_int_equal(d.n_values, MT_JSON_VALUES_MAX);
			mt_json__free(&d);
		} else {
			assert_int_equal(expect_syntax("too many values", vals, n), 0);
		}
	}
	free(vals);

	/* size: MT_JSON_TEXT_MAX bytes read, one more refused before reading */
	char *huge = malloc(MT_JSON_TEXT_MAX + 1);
	assert_non_null(huge);
	memset(huge, ' ', MT_JSON_TEXT_MAX + 1);
	huge[0] = '0';
	assert_int_equal(mt_json__read(huge, MT_JSON_TEXT_MAX, &d, NULL, 0), MT_OK);
	mt_json__free(&d);
	assert_int_equal(expect_syntax("over MT_JSON_TEXT_MAX", huge, MT_JSON_TEXT_MAX + 1), 0);
	struct mt_json_message jm;
	assert_int_equal(mt_json_message_parse(huge, MT_JSON_TEXT_MAX + 1, &jm, NULL, 0),
	                 MT_ERR_JSON_SYNTAX);
	free(huge);

	/* arguments */
	assert_int_equal(mt_json__read(NULL, 1, &d, NULL, 0), MT_ERR_ARG);
	assert_int_equal(mt_json__read("1", 1, NULL, NULL, 0), MT_ERR_ARG);
	assert_int_equal(expect_syntax("NULL, 0", NULL, 0), 0);
}

static void test_error_positions(void **state)
{
	(void)state;
	struct mt_jdoc d;
	char why[MT_JSON_WHY_MAX];
	const char *t = "{\"a\": 1,\n  \"b\": tru}";

	assert_int_equal(mt_json__read(t, strlen(t), &d, why, sizeof why), MT_ERR_JSON_SYNTAX);
	assert_non_null(strstr(why, "line 2, column 8"));
	t = "[1, 2,\n\n 01]";
	assert_int_equal(mt_json__read(t, strlen(t), &d, why, sizeof why), MT_ERR_JSON_SYNTAX);
	assert_non_null(strstr(why, "line 3, column 2"));
	assert_non_null(strstr(why, "leading zero"));
	t = "{\"dev\": 1, \"dev\": 2}";
	assert_int_equal(mt_json__read(t, strlen(t), &d, why, sizeof why), MT_ERR_JSON_SYNTAX);
	assert_non_null(strstr(why, "duplicate name \"dev\""));
	t = "\"\\ud83d\"";
	assert_int_equal(mt_json__read(t, strlen(t), &d, why, sizeof why), MT_ERR_JSON_SYNTAX);
	assert_non_null(strstr(why, "surrogate"));
	/* a short reason buffer is filled, not overrun */
	char tiny[8];
	memset(tiny, 'x', sizeof tiny);
	assert_int_equal(mt_json__read("[", 1, &d, tiny, sizeof tiny), MT_ERR_JSON_SYNTAX);
	assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

/* ---- the message form --------------------------------------------------- */

static void test_message_round_trips(void **state)
{
	(void)state;
	/* In the formatter's own form, so that JSON → message → JSON is the
	 * identity; the integers are the protocol's whole range where §5 sets no
	 * bound, and the largest values where it does. */
	static const char *const c[] = {
	        /* uint fields above int64 */
	        "{\"dev\": \"dev-1\", \"ctr\": 80, \"ts\": 1733222400000, \"typ\": 3, \"st\": "
	        "{\"queue\": 18446744073709551615, \"uptime\": 9223372036854775808}}",
	        "{\"dev\": \"dev-1\", \"ctr\": 92, \"ts\": 1733222400000, \"typ\": 4, \"ack\": "
	        "{\"ctr\": 18446744073709551615, \"result\": 9223372036854775808}}",
	        "{\"dev\": \"dev-1\", \"ctr\": 94, \"ts\": 1733222400000, \"typ\": 2, \"alrt\": "
	        "{\"code\": 18446744073709551615, \"prio\": 3}}",
	        "{\"dev\": \"dev-1\", \"ctr\": 93, \"ts\": 1733222400000, \"typ\": 1, \"obs\": "
	        "[[0, 131330, 266418, 18446744073709551615, 0.005, [1, 2]]]}",
	        /* int fields beyond int64 */
	        "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1733222400000, \"typ\": 1, \"obs\": "
	        "[[-18446744073709551616, 147842, 60, 264864], "
	        "[-9223372036854775809, 147842, 60, 264864], "
	        "[-9223372036854775808, 147842, 60, 264864, 0], "
	        "[-18446744073709551616, 131330, 266418, 1, 18446744073709551615, [-2147483648, "
	        "2147483647]]]}",
	        "{\"dev\": \"dev-1\", \"ctr\": 2, \"ts\": 1, \"typ\": 3, \"st\": "
	        "{\"rssi\": 9223372036854775808}}",
	        "{\"dev\": \"dev-1\", \"ctr\": 2, \"ts\": 1, \"typ\": 3, \"st\": "
	        "{\"rssi\": 18446744073709551615}}",
	        "{\"dev\": \"dev-1\", \"ctr\": 2, \"ts\": 1, \"typ\": 3, \"st\": "
	        "{\"rssi\": -18446744073709551616}}",
	        /* values and scales of any integer, floats that stay floats */
	        "{\"dev\": \"dev-1\", \"ctr\": 3, \"ts\": 1, \"typ\": 1, \"obs\": "
	        "[[0, 150456, 18446744073709551615, 262688], "
	        "[0, 150456, -18446744073709551616, 262688], "
	        "[0, 150456, 97.0, 262688], [0, 150456, 97, 262688], "
	        "[0, 150456, 1e+300, 262688], [0, 150456, -0.0, 262688], "
	        "[0, 150456, 4.94065645841247e-324, 262688], " /* 5e-324 as printed */
	        "[0, 131330, 266418, 1, -18446744073709551616, [0]]]}",
	        /* the bounded fields at their edges */
	        "{\"dev\": \"dev-1\", \"ctr\": 9223372036854775807, \"ts\": 9007199254740991, "
	        "\"typ\": 3, \"st\": {\"battery\": 100, \"fw\": \"\", \"queue\": 0, \"uptime\": 0, "
	        "\"rssi\": 0}}",
	        /* text with every character the formatter escapes */
	        "{\"dev\": \"dev-1\", \"ctr\": 5, \"ts\": 1, \"typ\": 2, \"alrt\": {\"code\": 1, "
	        "\"prio\": 2, \"text\": \"\\\" \\\\ \\u0000\\u0001\\u0008\\u0009\\u000a\\u000c"
	        "\\u000d\\u001f \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 /\x7f\"}}",
	};
	for (size_t i = 0; i < N(c); i++)
		assert_json_round_trip(c[i]);

	/* Input in other spellings reads to the same message. */
	struct mt_json_message jm;
	char *out = NULL;
	size_t len;
	const char *in = "{\"dev\":\"dev-1\",\"ctr\":5,\"ts\":1,\"typ\":2,\"alrt\":{\"code\":1,"
	                 "\"prio\":2,\"text\":\"\\b\\f\\n\\r\\t\\/\\u00E9\\uD83D\\uDE00\"}}";
	assert_int_equal(mt_json_message_parse(in, strlen(in), &jm, NULL, 0), MT_OK);
	assert_int_equal(mt_json_message_format(&jm.msg, &out, &len), MT_OK);
	assert_string_equal(out,
	                    "{\"dev\": \"dev-1\", \"ctr\": 5, \"ts\": 1, \"typ\": 2, \"alrt\": "
	                    "{\"code\": 1, \"prio\": 2, \"text\": "
	                    "\"\\u0008\\u000c\\u000a\\u000d\\u0009/\xc3\xa9\xf0\x9f\x98\x80\"}}");
	free(out);
	mt_json_message_free(&jm);

	/* The values themselves, not just their text. */
	in = "{\"dev\": \"d\", \"ctr\": 1, \"ts\": 1, \"typ\": 1, \"obs\": "
	     "[[-18446744073709551616, 147842, -0, 264864]]}";
	assert_int_equal(mt_json_message_parse(in, strlen(in), &jm, NULL, 0), MT_OK);
	assert_int_equal(jm.msg.obs[0].t.kind, MT_NUM_NEGINT);
	assert_true(jm.msg.obs[0].t.u == UINT64_MAX);
	assert_int_equal(jm.msg.obs[0].value.kind, MT_NUM_UINT); /* -0 is the integer 0 */
	assert_true(jm.msg.obs[0].value.u == 0);
	mt_json_message_free(&jm);
	mt_json_message_free(&jm);
}

static void test_message_integer_limits(void **state)
{
	(void)state;
#define MSG(body) "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, " body "}"
#define ST(x) MSG("\"typ\": 3, \"st\": {" x "}")
#define ACK(x) MSG("\"typ\": 4, \"ack\": {" x "}")
#define OBS(x) MSG("\"typ\": 1, \"obs\": [" x "]")
	static const struct {
		const char *label, *text;
		enum mt_err want;
	} c[] = {
	        {"queue 2^64-1", ST("\"queue\": 18446744073709551615"), MT_OK},
	        {"queue 2^64", ST("\"queue\": 18446744073709551616"), MT_ERR_JSON_SCHEMA},
	        {"queue 10^30", ST("\"queue\": 1000000000000000000000000000000"),
	         MT_ERR_JSON_SCHEMA},
	        {"queue -1", ST("\"queue\": -1"), MT_ERR_JSON_SCHEMA},
	        {"queue -2^64-1", ST("\"queue\": -18446744073709551617"), MT_ERR_JSON_SCHEMA},
	        {"queue 1.0", ST("\"queue\": 1.0"), MT_ERR_JSON_SCHEMA},
	        {"uptime 2^64-1", ST("\"uptime\": 18446744073709551615"), MT_OK},
	        {"uptime 2^64", ST("\"uptime\": 18446744073709551616"), MT_ERR_JSON_SCHEMA},
	        {"rssi -2^64", ST("\"rssi\": -18446744073709551616"), MT_OK},
	        {"rssi -2^64-1", ST("\"rssi\": -18446744073709551617"), MT_ERR_JSON_SCHEMA},
	        {"rssi 2^64-1", ST("\"rssi\": 18446744073709551615"), MT_OK},
	        {"rssi 2^64", ST("\"rssi\": 18446744073709551616"), MT_ERR_JSON_SCHEMA},
	        {"rssi -60.0", ST("\"rssi\": -60.0"), MT_ERR_JSON_SCHEMA},
	        {"battery 2^64-1", ST("\"battery\": 18446744073709551615"), MT_ERR_JSON_SCHEMA},
	        {"ack ctr 2^64-1", ACK("\"ctr\": 18446744073709551615, \"result\": 0"), MT_OK},
	        {"ack ctr 2^64", ACK("\"ctr\": 18446744073709551616, \"result\": 0"),
	         MT_ERR_JSON_SCHEMA},
	        {"ack result 2^64-1", ACK("\"ctr\": 0, \"result\": 18446744073709551615"), MT_OK},
	        {"ack result -2^64", ACK("\"ctr\": 0, \"result\": -18446744073709551616"),
	         MT_ERR_JSON_SCHEMA},
	        {"t -2^64", OBS("[-18446744073709551616, 147842, 60, 264864]"), MT_OK},
	        {"t -2^64-1", OBS("[-18446744073709551617, 147842, 60, 264864]"),
	         MT_ERR_JSON_SCHEMA},
	        {"t 1", OBS("[1, 147842, 60, 264864]"), MT_ERR_JSON_SCHEMA},
	        {"t 2^64-1", OBS("[18446744073709551615, 147842, 60, 264864]"), MT_ERR_JSON_SCHEMA},
	        {"t -1.0", OBS("[-1.0, 147842, 60, 264864]"), MT_ERR_JSON_SCHEMA},
	        {"t -0", OBS("[-0, 147842, 60, 264864]"), MT_OK},
	        {"value 2^64", OBS("[0, 147842, 18446744073709551616, 264864]"),
	         MT_ERR_JSON_SCHEMA},
	        {"value -2^64-1", OBS("[0, 147842, -18446744073709551617, 264864]"),
	         MT_ERR_JSON_SCHEMA},
	        {"value 2^64.0", OBS("[0, 147842, 18446744073709551616.0, 264864]"), MT_OK},
	        {"value 1e400", OBS("[0, 147842, 1e400, 264864]"), MT_ERR_JSON_SYNTAX},
	        {"code 2^32", OBS("[0, 4294967296, 60, 264864]"), MT_ERR_JSON_SCHEMA},
	        {"code 2^64", OBS("[0, 18446744073709551616, 60, 264864]"), MT_ERR_JSON_SCHEMA},
	        {"period 2^64-1", OBS("[0, 131330, 266418, 18446744073709551615, 1, [0]]"), MT_OK},
	        {"period 2^64", OBS("[0, 131330, 266418, 18446744073709551616, 1, [0]]"),
	         MT_ERR_JSON_SCHEMA},
	        {"scale 2^64", OBS("[0, 131330, 266418, 1, 18446744073709551616, [0]]"),
	         MT_ERR_JSON_SCHEMA},
	        {"sample 2^31", OBS("[0, 131330, 266418, 1, 1, [2147483648]]"), MT_ERR_JSON_SCHEMA},
	        {"sample -2^31-1", OBS("[0, 131330, 266418, 1, 1, [-2147483649]]"),
	         MT_ERR_JSON_SCHEMA},
	        {"sample 2^64", OBS("[0, 131330, 266418, 1, 1, [18446744073709551616]]"),
	         MT_ERR_JSON_SCHEMA},
	        {"sample 1.0", OBS("[0, 131330, 266418, 1, 1, [1.0]]"), MT_ERR_JSON_SCHEMA},
	        {"places 2^64-1", OBS("[0, 147842, 60, 264864, 18446744073709551615]"),
	         MT_ERR_JSON_SCHEMA},
	        /* bounded top-level fields */
	        {"ctr 2^63-1",
	         "{\"dev\": \"d\", \"ctr\": 9223372036854775807, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_OK},
	        {"ctr 2^63",
	         "{\"dev\": \"d\", \"ctr\": 9223372036854775808, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"ctr 2^64-1",
	         "{\"dev\": \"d\", \"ctr\": 18446744073709551615, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"ctr 2^64",
	         "{\"dev\": \"d\", \"ctr\": 18446744073709551616, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"ts 2^53",
	         "{\"dev\": \"d\", \"ctr\": 1, \"ts\": 9007199254740992, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"typ 2^64+1",
	         "{\"dev\": \"d\", \"ctr\": 1, \"ts\": 1, \"typ\": 18446744073709551617, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	};
#undef MSG
#undef ST
#undef ACK
#undef OBS
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += expect_msg(c[i].label, c[i].text, c[i].want);
	assert_int_equal(bad, 0);

	/* an out-of-range integer names its field */
	struct mt_json_message jm;
	char why[MT_JSON_WHY_MAX];
	const char *t = "{\"dev\": \"d\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, \"st\": "
	                "{\"queue\": 18446744073709551616}}";
	assert_int_equal(mt_json_message_parse(t, strlen(t), &jm, why, sizeof why),
	                 MT_ERR_JSON_SCHEMA);
	assert_non_null(strstr(why, "st.queue"));
	t = "{\"dev\": \"d\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, \"st\": "
	    "{\"rssi\": -18446744073709551617}}";
	assert_int_equal(mt_json_message_parse(t, strlen(t), &jm, why, sizeof why),
	                 MT_ERR_JSON_SCHEMA);
	assert_non_null(strstr(why, "st.rssi"));
}

static void test_message_strictness(void **state)
{
	(void)state;
	static const struct {
		const char *label, *text;
		enum mt_err want;
	} c[] = {
	        {"not JSON", "{\"dev\": \"dev-1\", ", MT_ERR_JSON_SYNTAX},
	        {"empty", "", MT_ERR_JSON_SYNTAX},
	        {"an array", "[]", MT_ERR_JSON_SCHEMA},
	        {"a number", "1", MT_ERR_JSON_SCHEMA},
	        {"duplicate name",
	         "{\"dev\": \"dev-1\", \"dev\": \"dev-2\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SYNTAX},
	        {"duplicate name, escaped",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0, \"q\\u0075eue\": 1}}",
	         MT_ERR_JSON_SYNTAX},
	        {"name with a NUL",
	         "{\"dev\\u0000\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"dev with a NUL",
	         "{\"dev\": \"dev\\u0000-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"text with a NUL",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 2, "
	         "\"alrt\": {\"code\": 1, \"prio\": 2, \"text\": \"a\\u0000b\"}}",
	         MT_OK},
	        {"text lone surrogate",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 2, "
	         "\"alrt\": {\"code\": 1, \"prio\": 2, \"text\": \"\\udead\"}}",
	         MT_ERR_JSON_SYNTAX},
	        {"trailing garbage",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}} x",
	         MT_ERR_JSON_SYNTAX},
	        {"trailing whitespace",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}\n",
	         MT_OK},
	        {"unknown name",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"battery\": 5, \"colour\": 1}}",
	         MT_ERR_JSON_SCHEMA},
	        {"null ctr",
	         "{\"dev\": \"dev-1\", \"ctr\": null, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"bool ctr",
	         "{\"dev\": \"dev-1\", \"ctr\": true, \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"string ctr",
	         "{\"dev\": \"dev-1\", \"ctr\": \"1\", \"ts\": 1, \"typ\": 3, "
	         "\"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"missing ts",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"typ\": 3, \"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	        {"samples not an array",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 1, "
	         "\"obs\": [[0, 131330, 266418, 1, 1, 5]]}",
	         MT_ERR_JSON_SCHEMA},
	        {"no samples",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 1, "
	         "\"obs\": [[0, 131330, 266418, 1, 1, []]]}",
	         MT_ERR_JSON_SCHEMA},
	        {"obs of 3",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 1, "
	         "\"obs\": [[0, 131330, 266418]]}",
	         MT_ERR_JSON_SCHEMA},
	        {"obs empty",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 1, \"obs\": []}",
	         MT_ERR_JSON_SCHEMA},
	        {"obs an object",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 1, \"obs\": {}}",
	         MT_ERR_JSON_SCHEMA},
	        {"st an array",
	         "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, \"st\": []}",
	         MT_ERR_JSON_SCHEMA},
	        {"dev 65 bytes",
	         "{\"dev\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
	         "\"ctr\": 1, \"ts\": 1, \"typ\": 3, \"st\": {\"queue\": 0}}",
	         MT_ERR_JSON_SCHEMA},
	};
	size_t bad = 0;
	for (size_t i = 0; i < N(c); i++)
		bad += expect_msg(c[i].label, c[i].text, c[i].want);
	assert_int_equal(bad, 0);

	/* arguments */
	struct mt_json_message jm;
	assert_int_equal(mt_json_message_parse(NULL, 1, &jm, NULL, 0), MT_ERR_ARG);
	assert_int_equal(mt_json_message_parse("{}", 2, NULL, NULL, 0), MT_ERR_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_escapes),
	        cmocka_unit_test(test_bad_strings),
	        cmocka_unit_test(test_integer_boundaries),
	        cmocka_unit_test(test_floats),
	        cmocka_unit_test(test_number_grammar),
	        cmocka_unit_test(test_literals_and_structure),
	        cmocka_unit_test(test_trailing_garbage),
	        cmocka_unit_test(test_duplicate_names),
	        cmocka_unit_test(test_bounds),
	        cmocka_unit_test(test_error_positions),
	        cmocka_unit_test(test_message_round_trips),
	        cmocka_unit_test(test_message_integer_limits),
	        cmocka_unit_test(test_message_strictness),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
