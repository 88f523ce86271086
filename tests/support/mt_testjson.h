/*
 * mt_testjson.h — small helpers shared by the cmocka tests that read the
 * external vectors in $MT_VECTORS_DIR (../shared/vectors): locating and
 * loading a JSON file with jansson, and decoding hex and base64url.
 *
 * A test whose vectors are absent exits with MT_TEST_SKIP (77), which CTest
 * reports as skipped (SKIP_RETURN_CODE); a vector file that exists but does
 * not parse is a failure, never a skip.
 *
 * Every buffer returned is malloc'd (never NULL on success, even for zero
 * bytes) and freed by the caller with free().
 */
#ifndef MT_TESTJSON_H
#define MT_TESTJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define MT_TEST_SKIP 77

/* $MT_VECTORS_DIR, or NULL when unset, empty or not a directory. */
const char *mt_test_vectors_dir(void);

/* Does $MT_VECTORS_DIR/<rel> exist as a regular file? */
bool mt_test_vector_exists(const char *rel);

/* Write "$MT_VECTORS_DIR/<rel>" into buf; false when it does not fit or the
 * directory is unknown. */
bool mt_test_vector_path(const char *rel, char *buf, size_t cap);

/* Load $MT_VECTORS_DIR/<rel>.  Returns NULL when the file is absent; prints
 * the reason and aborts the process (a failure) when it exists but is not
 * JSON.  The caller json_decref()s the result. */
json_t *mt_test_load_json(const char *rel);

/* Decode hex (either case, even length).  0 on success, -1 on bad input. */
int mt_test_hex(const char *hex, uint8_t **out, size_t *len);

/* Decode base64url without padding (RFC 4648 §5; padding tolerated). */
int mt_test_b64url(const char *s, uint8_t **out, size_t *len);

/* The hex string at obj[key], decoded; aborts the test run when absent or
 * malformed (a broken vector file is a failure). */
uint8_t *mt_test_json_hex(const json_t *obj, const char *key, size_t *len);

/* obj[key] as a string, or NULL. */
const char *mt_test_json_str(const json_t *obj, const char *key);

#endif
