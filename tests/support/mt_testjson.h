/*
 * mt_testjson.h — small helpers shared by the cmocka tests that read the
 * external vectors in $MT_VECTORS_DIR (../shared/vectors): locating and
 * loading a JSON file with jansson, decoding its hex fields (with
 * mt_test_hex() of mt_testutil.h) and base64url, and the MTP/1 vector set
 * (mtp1/vectors.json) as a cmocka group fixture.
 *
 * A test whose vectors are absent exits with MT_TEST_SKIP (77), which CTest
 * reports as skipped (SKIP_RETURN_CODE); a vector file that exists but does
 * not parse is a failure, never a skip.  Where only some tests of a binary
 * need the MTP/1 set, those tests skip themselves (MT_TEST_NEED_MTP1) and
 * the others still run when the set is absent.
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

#include "mt_testutil.h" /* mt_test_hex(), which the hex readers below use */

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

/* Decode base64url without padding (RFC 4648 §5; padding tolerated). */
int mt_test_b64url(const char *s, uint8_t **out, size_t *len);

/* The hex string at obj[key], decoded; aborts the test run when absent or
 * malformed (a broken vector file is a failure). */
uint8_t *mt_test_json_hex(const json_t *obj, const char *key, size_t *len);

/* obj[key] as a string, or NULL. */
const char *mt_test_json_str(const json_t *obj, const char *key);

/* The MTP/1 vector set: mt_test_mtp1_setup() (a cmocka group setup) loads
 * mtp1/vectors.json into mt_test_mtp1, which stays NULL when the file is
 * absent; mt_test_mtp1_teardown() frees it.  mt_test_mtp1_hex() is
 * mt_test_json_hex() on it. */
extern json_t *mt_test_mtp1;
int mt_test_mtp1_setup(void **state);
int mt_test_mtp1_teardown(void **state);
uint8_t *mt_test_mtp1_hex(const char *name, size_t *len);

/* In a cmocka test: skip it (with a line saying why) when the MTP/1 vectors
 * are absent.  Needs <stdio.h> and <cmocka.h>. */
#define MT_TEST_NEED_MTP1()                                                                        \
	do {                                                                                       \
		if (mt_test_mtp1 == NULL) {                                                        \
			printf("mtp1/vectors.json absent: skipped\n");                             \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

#endif
