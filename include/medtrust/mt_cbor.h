/*
 * mt_cbor.h — strict CBOR on top of libcbor, with no allocation.
 *
 * Decoding is a pull parser: mt_cbor_next() reads one data item head (and the
 * bytes of a string) through libcbor's streaming decoder and refuses anything
 * protocol.md's "Strict CBOR" forbids at the head level: indefinite lengths,
 * non-shortest heads, floats not in their shortest exact width, NaN and
 * infinities, simple values other than false/true/null, invalid UTF-8.
 * Structural rules that need context — nesting depth ≤ 8, maps ≤ 16 entries,
 * map keys int or tstr, unique and in bytewise order of their encodings, the
 * allowed tags, no trailing bytes — are checked by mt_cbor_validate() over a
 * whole item before a schema decoder walks it.
 *
 * The decoder latches its first error: after one failure every call fails
 * with the same code, and mt_cbor_dec_finish() reports it.  Nothing decoded
 * may be used before the error is checked.  Strings are returned as pointers
 * into the input, which must outlive their use.
 *
 * Encoding writes core deterministic CBOR (RFC 8949 §4.2.1) into a caller
 * buffer; it too latches its first error (MT_ERR_BUFFER when full).  Callers
 * write map keys in ascending order; mt_cbor_put_float() picks the shortest
 * of half, single and double precision that keeps the value exactly.
 */
#ifndef MT_CBOR_H
#define MT_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"

#define MT_CBOR_MAX_DEPTH 8
#define MT_CBOR_MAX_MAP 16

enum mt_cbor_type {
	MT_CBOR_UINT,   /* u = value */
	MT_CBOR_NEGINT, /* u = n, value = -1 - n */
	MT_CBOR_BSTR,   /* ptr, u = length */
	MT_CBOR_TSTR,   /* ptr, u = length; valid UTF-8 */
	MT_CBOR_ARRAY,  /* u = count */
	MT_CBOR_MAP,    /* u = number of pairs */
	MT_CBOR_TAG,    /* u = tag number; the tagged item follows */
	MT_CBOR_FLOAT,  /* f = value (finite) */
	MT_CBOR_FALSE,
	MT_CBOR_TRUE,
	MT_CBOR_NULL,
};

struct mt_cbor_item {
	enum mt_cbor_type type;
	uint64_t u;
	double f;
	const uint8_t *ptr;
	size_t start; /* offset of the item's head in the input */
	size_t end;   /* offset just past the head (and string bytes) */
};

struct mt_cbor_dec {
	const uint8_t *buf;
	size_t len;
	size_t pos;
	enum mt_err err;
};

void mt_cbor_dec_init(struct mt_cbor_dec *d, const uint8_t *buf, size_t len);
/* Read the next head.  Returns false (and latches d->err) on any error,
 * including reading past the end (MT_ERR_CBOR_TRUNCATED). */
bool mt_cbor_next(struct mt_cbor_dec *d, struct mt_cbor_item *it);
/* Skip one whole item (with its contents), checking each head strictly. */
bool mt_cbor_skip(struct mt_cbor_dec *d);
/* Latch `e` unless an error is already latched; returns false. */
bool mt_cbor_fail(struct mt_cbor_dec *d, enum mt_err e);

/* Typed reads: each reads one head and latches MT_ERR_CBOR_TYPE if it is of
 * another type (MT_ERR_CBOR_RANGE if an integer does not fit). */
bool mt_cbor_get_uint(struct mt_cbor_dec *d, uint64_t *v);
bool mt_cbor_get_int64(struct mt_cbor_dec *d, int64_t *v);
bool mt_cbor_get_bstr(struct mt_cbor_dec *d, const uint8_t **p, size_t *n);
bool mt_cbor_get_tstr(struct mt_cbor_dec *d, const char **p, size_t *n);
bool mt_cbor_get_array(struct mt_cbor_dec *d, uint64_t *count);
bool mt_cbor_get_map(struct mt_cbor_dec *d, uint64_t *pairs);
bool mt_cbor_get_tag(struct mt_cbor_dec *d, uint64_t *tag);

/* MT_OK when the whole input was consumed and no error is latched;
 * otherwise the latched error, or MT_ERR_CBOR_TRAILING. */
MT_NODISCARD enum mt_err mt_cbor_dec_finish(const struct mt_cbor_dec *d);

/* Validate that buf[0..len) is exactly one strict item: every head rule
 * above plus depth, map size, key type/order/uniqueness, and tags only from
 * `tags` (a list of n_tags allowed tag numbers; NULL/0 for none). */
MT_NODISCARD enum mt_err mt_cbor_validate(const uint8_t *buf, size_t len,
                                          const uint64_t *tags, size_t n_tags);

struct mt_cbor_enc {
	uint8_t *buf;
	size_t cap;
	size_t len;
	enum mt_err err;
};

void mt_cbor_enc_init(struct mt_cbor_enc *e, uint8_t *buf, size_t cap);
void mt_cbor_put_uint(struct mt_cbor_enc *e, uint64_t v);
void mt_cbor_put_int(struct mt_cbor_enc *e, int64_t v);
void mt_cbor_put_negint(struct mt_cbor_enc *e, uint64_t n); /* value -1 - n */
void mt_cbor_put_bstr(struct mt_cbor_enc *e, const uint8_t *p, size_t n);
void mt_cbor_put_bstr_head(struct mt_cbor_enc *e, size_t n);
void mt_cbor_put_tstr(struct mt_cbor_enc *e, const char *p, size_t n);
void mt_cbor_put_array(struct mt_cbor_enc *e, size_t count);
void mt_cbor_put_map(struct mt_cbor_enc *e, size_t pairs);
void mt_cbor_put_tag(struct mt_cbor_enc *e, uint64_t tag);
/* Shortest exact float; NaN and infinities latch MT_ERR_CBOR_FLOAT_NONFINITE. */
void mt_cbor_put_float(struct mt_cbor_enc *e, double v);
void mt_cbor_put_bool(struct mt_cbor_enc *e, bool v);
void mt_cbor_put_null(struct mt_cbor_enc *e);
void mt_cbor_put_raw(struct mt_cbor_enc *e, const uint8_t *p, size_t n);
/* Bytes a head for `n` takes (1, 2, 3, 5 or 9). */
size_t mt_cbor_head_len(uint64_t n);
MT_NODISCARD enum mt_err mt_cbor_enc_finish(const struct mt_cbor_enc *e, size_t *len);

/* Is p[0..n) valid UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF)? */
bool mt_utf8_valid(const uint8_t *p, size_t n);

#endif
