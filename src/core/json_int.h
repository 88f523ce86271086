/*
 * json_int.h — the strict JSON reader inside libmedtrust (json_read.c),
 * used by the JSON form of a message (json.c) and by its unit tests.  Never
 * installed, never included outside src/core and tests/.
 *
 * mt_json__read() turns RFC 8259 text into a read-only tree of struct
 * mt_jv.  It exists because the protocol's JSON form (§9) needs every
 * integer from −2^64 to 2^64 − 1 exactly, which jansson's json_int_t (a
 * long long) cannot hold; json_read.c says more.  What the tree promises:
 *
 *   - numbers: one written without '.', 'e', 'E' is an integer, kept exact
 *     as MT_JV_UINT (value u) or MT_JV_NEGINT (value −1 − u, the CBOR
 *     encoding, so −2^64 is u = UINT64_MAX); "-0" is the integer 0.  An
 *     integer outside −2^64 .. 2^64 − 1 is MT_JV_BIGINT: its sign is kept,
 *     its value is not, and the caller decides how to refuse it.  Any other
 *     number is MT_JV_FLOAT, the double strtod() gives, always finite (a
 *     literal that overflows a double is a syntax error);
 *   - strings: escapes decoded, surrogate pairs joined, the result valid
 *     UTF-8 (lone surrogates and invalid UTF-8 in the input are syntax
 *     errors); "\u0000" is allowed, so a string is a pointer and a length,
 *     and is also NUL-terminated for convenience;
 *   - objects: names unique (compared as bytes), members in input order;
 *   - bounds: input at most MT_JSON_TEXT_MAX bytes, nesting at most
 *     MT_JSON_DEPTH_MAX containers, at most MT_JSON_VALUES_MAX values;
 *   - nothing but whitespace after the top-level value (any JSON value may
 *     be the top level, as RFC 8259 allows).
 *
 * Memory: the document owns every node and string; mt_json__free() releases
 * them in one step.  Nodes never move once made, so pointers into the tree
 * stay valid until then.
 */
#ifndef MT_JSON_INT_H
#define MT_JSON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medtrust/mt_err.h"
#include "medtrust/mt_json.h"
#include "medtrust/mt_message.h"

/* Containers nested deeper than this are refused (a message needs 4). */
#define MT_JSON_DEPTH_MAX 32
/* Values (every string, number, literal, array and object) in one text.
 * A message that fits a 65,536-byte packet has fewer than 70,000. */
#define MT_JSON_VALUES_MAX ((size_t)1 << 20)

enum mt_jv_type {
	MT_JV_NULL,
	MT_JV_FALSE,
	MT_JV_TRUE,
	MT_JV_UINT,   /* u = value */
	MT_JV_NEGINT, /* value = −1 − u */
	MT_JV_BIGINT, /* integer outside −2^64 .. 2^64 − 1; neg = its sign */
	MT_JV_FLOAT,  /* f = value, finite */
	MT_JV_STRING, /* s, len */
	MT_JV_ARRAY,  /* count elements from first along next */
	MT_JV_OBJECT, /* count members from first along next, each with a name */
};

struct mt_jv {
	enum mt_jv_type type;
	bool neg;                  /* MT_JV_BIGINT: negative */
	uint64_t u;                /* MT_JV_UINT, MT_JV_NEGINT */
	double f;                  /* MT_JV_FLOAT */
	const char *s;             /* MT_JV_STRING: len bytes, then a NUL */
	size_t len;                /* MT_JV_STRING: bytes; MT_JV_ARRAY, MT_JV_OBJECT: members */
	const struct mt_jv *first; /* first element or member; NULL when empty */
	const struct mt_jv *next;  /* next sibling in the parent; NULL when last */
	const char *name;          /* member of an object: its name, then a NUL */
	size_t name_len;
};

struct mt_jblock; /* node storage, json_read.c */

struct mt_jdoc {
	const struct mt_jv *root; /* NULL until a successful read */
	char *text;               /* decoded strings and names */
	struct mt_jblock *blocks;
	size_t n_values;
};

/* Read `len` bytes of JSON text into `doc` (which need not be initialised).
 * On failure `doc` holds nothing to free and `why` (may be NULL, why_cap
 * bytes) receives "line L, column C: <reason>".
 * Errors: MT_ERR_JSON_SYNTAX (not RFC 8259 JSON, a duplicate name, a
 * number that overflows a double, a bound exceeded), MT_ERR_NOMEM,
 * MT_ERR_ARG (text NULL with len > 0, doc NULL). */
enum mt_err mt_json__read(const char *text, size_t len, struct mt_jdoc *doc, char *why,
                          size_t why_cap);

/* Free everything `doc` holds; safe on a zeroed or freed document. */
void mt_json__free(struct mt_jdoc *doc);

/* The member of object `obj` named name[0..name_len), or NULL (also when
 * `obj` is not an object). */
const struct mt_jv *mt_json__get(const struct mt_jv *obj, const char *name, size_t name_len);
/* The i-th element of array `arr`, or NULL (linear in i). */
const struct mt_jv *mt_json__at(const struct mt_jv *arr, size_t i);
/* A number node as a struct mt_num; false for anything else, BIGINT
 * included. */
bool mt_json__num(const struct mt_jv *v, struct mt_num *out);

/* Length of the valid UTF-8 sequence at s[0..n) (n ≥ 1), or 0 when it is
 * not one: overlong forms, surrogates and code points above U+10FFFF are
 * refused.  Shared by the reader and the formatter. */
size_t mt_json__utf8_seq(const unsigned char *s, size_t n);

#endif
