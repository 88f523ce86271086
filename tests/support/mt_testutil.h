/*
 * mt_testutil.h — the small helpers every cmocka test wants and none owns:
 * hex in both directions and a seeded pseudo-random sequence.
 *
 * They used to be written again in each test file, each copy a little
 * different (one took upper case, one skipped spaces, one checked the
 * length, one did not); here there is one of each, and it keeps every check
 * that any of the copies it replaced made.
 *
 * Hex.  Test data is written as hex, in either case, with spaces allowed
 * between bytes for legibility ("a5 01 656465762d31").  mt_test_unhex()
 * decodes into the caller's buffer and fails the running test on anything
 * wrong: a character that is not a hex digit or a space, an odd number of
 * digits, more bytes than the buffer holds; mt_test_unhex_exact() also
 * wants the exact length, for values of a fixed size.  Test data that is
 * broken is a broken test, never a shorter input.  mt_test_hex() is the
 * variant for data read from files (the vector sets): it allocates, does
 * not allow spaces, and returns -1 instead of failing, so that its caller
 * can say which field of which file was bad.  mt_test_tohex() and
 * mt_test_print_hex() go the other way, for the messages a test prints
 * before it fails.
 *
 * Randomness.  mt_test_xorshift64() is Marsaglia's xorshift64 (13, 7, 17)
 * over a caller-held state: a fixed seed gives the same sequence on every
 * machine and every run, so a failure found by a sweep is a failure that
 * reproduces.  It is not for anything that must be unpredictable.
 *
 * Everything here runs inside a cmocka test (it uses fail_msg and
 * print_error), except mt_test_hex(), which runs anywhere.
 */
#ifndef MT_TESTUTIL_H
#define MT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* The value of a hex digit (either case), or -1. */
int mt_test_hexval(int c);

/* Decode hex (either case, spaces ignored) into out[0..cap).  Fails the
 * test on a non-hex character, an odd digit count or overflow.  Returns the
 * byte count. */
size_t mt_test_unhex(const char *hex, uint8_t *out, size_t cap);

/* mt_test_unhex() that must give exactly n bytes (a value of fixed size:
 * a scalar, a point coordinate, a signature); fails the test otherwise. */
void mt_test_unhex_exact(const char *hex, uint8_t *out, size_t n);

/* Decode hex (either case, even length, no spaces) into a malloc'd buffer
 * (never NULL on success, even for zero bytes; the caller frees it).
 * 0 on success, -1 on bad input or no memory. */
int mt_test_hex(const char *hex, uint8_t **out, size_t *len);

/* Lower-case hex of p[0..n) into out, NUL-terminated, cut short (at a byte
 * boundary) when out has room for less than all of it. */
void mt_test_tohex(const uint8_t *p, size_t n, char *out, size_t cap);

/* print_error "<label>: <hex> (<n> bytes)", the hex cut after 96 bytes with
 * "...". */
void mt_test_print_hex(const char *label, const uint8_t *p, size_t n);

/* xorshift64: advance *state and return the new value.  *state must not be
 * 0 (the sequence would stay 0). */
uint64_t mt_test_xorshift64(uint64_t *state);

#endif
