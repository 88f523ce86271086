/*
 * mt_json.h — the JSON form of an MTP/1 message (protocol §9), both ways.
 *
 * The JSON form is how operators, tests and other implementations hand a
 * message to `medtrust packet seal` and read one back from `packet open`.
 * It uses the names of protocol §5:
 *
 *   {"dev": "icu-7", "ctr": 42, "ts": 1733222400000, "typ": 1,
 *    "obs": [[0, 150456, 97.0, 262688], [0, 150364, 36.5, 268192, 1],
 *            [-500, 131330, 266418, 2000, 0.005, [1, 0, 64, -64]]],
 *    "st": {"battery": 80, "fw": "1.2.3", "queue": 0, "uptime": 60, "rssi": -60},
 *    "ack": {"ctr": 7, "result": 0, "detail": "ok"},
 *    "alrt": {"code": 1001, "prio": 3, "text": "SpO2 low"}}
 *
 * An observation is an array in CBOR order: scalar `[t, code, value, unit]`
 * or `[t, code, value, unit, places]`, waveform `[t, code, unit, period_us,
 * scale, [samples...]]` (six elements, the last an array of int32 samples).
 *
 * Numbers.  A JSON number written with '.', 'e' or 'E' is a float (a CBOR
 * float on the wire), any other is an integer: `97.0` and `97` are different
 * messages.  Integers are exact in both directions over the whole CBOR
 * range, −2^64 to 2^64 − 1 (uint64 and negative integers down to −2^64), so
 * `"queue": 18446744073709551615` or an observation t of
 * -18446744073709551616 read and print as written; an integer outside that
 * range is a schema error (no CBOR int holds it), and one inside it but
 * outside its field's bound (ctr ≥ 2^63, a code above 2^32 − 1, ...) is
 * refused like any other schema violation.  `-0` is the integer 0.  A float
 * literal that overflows a double (1e400) is a syntax error.  Output prints
 * floats in the shortest of %.15g, %.16g and %.17g that reads back as the
 * same double, with ".0" appended when that text would otherwise read as an
 * integer (97.0 → `97.0`, 1e300 → `1e+300`, −0.0 → `-0.0`).  Both
 * directions assume the C locale's decimal point (the CLI never calls
 * setlocale).
 *
 * The text is read by libmedtrust's own strict RFC 8259 reader
 * (src/core/json_read.c, which says why jansson could not be used): at most
 * MT_JSON_TEXT_MAX bytes, valid UTF-8 inside strings, every escape decoded,
 * surrogate pairs joined and lone surrogates refused, "\u0000" allowed
 * (every CBOR text string has a JSON form), nesting at most 32 deep, at
 * most 2^20 values (a message that fits a packet has fewer than 70,000),
 * nothing but whitespace after the object.
 *
 * Parsing is strict: duplicate names, unknown names at any level, values of
 * the wrong JSON type, a `dev`/`ctr`/`ts`/`typ` missing, an `ack` without
 * `ctr` and `result` or an `alrt` without `code` and `prio` are refused;
 * then mt_message_check() (mt_message.h) decides whether the message is a
 * valid MTP/1 message.  Everything it refuses is MT_ERR_JSON_SCHEMA.
 *
 * Memory.  mt_json_message_parse() allocates one block holding the
 * observations, the text fields and the zigzag-LEB128 waveform samples
 * (mt_waveform_encode); `msg` points into it until
 * mt_json_message_free(), which frees the block and zeroes the object.
 * mt_json_message_format() returns a malloc'd, NUL-terminated string the
 * caller frees with free().  Nothing here keeps state between calls; both
 * are safe to call from several threads on different objects.
 */
#ifndef MT_JSON_H
#define MT_JSON_H

#include <stddef.h>

#include "mt_err.h"
#include "mt_message.h"

/* Room for any number mt_json_format_num() prints, NUL included
 * ("-18446744073709551616" and "-2.2250738585072014e-308" both fit). */
#define MT_JSON_NUM_MAX 32
/* Room for the reason a parse failure writes. */
#define MT_JSON_WHY_MAX 192
/* The longest JSON text mt_json_message_parse() reads (16 MiB). */
#define MT_JSON_TEXT_MAX ((size_t)16 << 20)

/* A message parsed from JSON together with the memory it points into. */
struct mt_json_message {
	struct mt_message msg; /* valid after a successful parse */
	void *block;           /* owned: observations, texts, samples */
};

/* Parse `len` bytes of JSON text into `out` (which need not be initialised)
 * and check the result with mt_message_check().  On failure `out` holds
 * nothing to free and `why` (may be NULL; `why_cap` bytes, MT_JSON_WHY_MAX
 * is enough) receives a reason such as `unknown name "foo" in "st"` or
 * `line 1, column 7: ...` for a syntax error.
 * Errors: MT_ERR_JSON_SYNTAX (not RFC 8259 JSON, a duplicate name, a float
 * literal that overflows a double, more than MT_JSON_TEXT_MAX bytes, nesting
 * deeper than 32, more than 2^20 values), MT_ERR_JSON_SCHEMA (JSON, but not
 * a valid message: an integer outside −2^64 .. 2^64 − 1 included),
 * MT_ERR_NOMEM, MT_ERR_ARG (out NULL, text NULL with len > 0). */
MT_NODISCARD enum mt_err mt_json_message_parse(const char *text, size_t len,
                                               struct mt_json_message *out,
                                               char *why, size_t why_cap);

/* Free what a successful parse allocated; safe on a zeroed or freed object. */
void mt_json_message_free(struct mt_json_message *jm);

/* Format `m` as one line of JSON (no newline), names in CBOR key order,
 * ", " and ": " as separators.  Waveform samples are decoded with
 * mt_waveform_decode().  `m` should be a checked message; the formatter
 * itself refuses only what JSON cannot say.  On success *out is a malloc'd
 * NUL-terminated string of *len bytes (len may be NULL).
 * Errors: MT_ERR_ARG (a non-finite float, text that is not UTF-8, a device
 * id longer than MT_DEVICE_ID_MAX), MT_ERR_PKT_MESSAGE (waveform samples
 * that do not decode), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_json_message_format(const struct mt_message *m, char **out,
                                                size_t *len);

/* Print a finite double the way the JSON form does into buf[0..cap)
 * (MT_JSON_NUM_MAX suffices).  Errors: MT_ERR_ARG (NaN or infinity),
 * MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_json_format_double(double v, char *buf, size_t cap);

/* Print an mt_num exactly: an integer for MT_NUM_UINT / MT_NUM_NEGINT
 * (−1 − u), a float per mt_json_format_double() for MT_NUM_FLOAT.
 * Errors as mt_json_format_double(). */
MT_NODISCARD enum mt_err mt_json_format_num(const struct mt_num *n, char *buf, size_t cap);

#endif
