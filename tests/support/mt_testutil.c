/*
 * mt_testutil.c — see mt_testutil.h.  Test-only code.
 *
 * mt_test_unhex() fails the running test through cmocka rather than
 * returning an error, because every caller passes a literal: a bad digit
 * there is a typo in the test, and the message names the string so that the
 * typo is found from the log alone.  mt_test_hex() returns -1 instead,
 * because its callers decode fields of vector files and know the field's
 * name, which makes the better message.  Both use the one digit table,
 * mt_test_hexval().
 */
#include "mt_testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

int mt_test_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t mt_test_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (const char *s = hex; *s; s++) {
		int v;
		if (*s == ' ')
			continue;
		v = mt_test_hexval((unsigned char)*s);
		if (v < 0)
			fail_msg("bad hex digit in test data: %s", s);
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n >= cap)
			fail_msg("test data longer than its %zu-byte buffer: %s", cap, hex);
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	if (hi >= 0)
		fail_msg("odd number of hex digits in test data: %s", hex);
	return n;
}

void mt_test_unhex_exact(const char *hex, uint8_t *out, size_t n)
{
	size_t got = mt_test_unhex(hex, out, n);
	if (got != n)
		fail_msg("test data is %zu bytes, want %zu: %s", got, n, hex);
}

int mt_test_hex(const char *hex, uint8_t **out, size_t *len)
{
	size_t n = strlen(hex);
	uint8_t *b;

	if (n % 2 != 0)
		return -1;
	b = malloc(n / 2 + 1);
	if (b == NULL)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = mt_test_hexval((unsigned char)hex[2 * i]);
		int lo = mt_test_hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(b);
			return -1;
		}
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	*out = b;
	*len = n / 2;
	return 0;
}

void mt_test_tohex(const uint8_t *p, size_t n, char *out, size_t cap)
{
	static const char d[] = "0123456789abcdef";
	size_t o = 0;

	if (cap == 0)
		return;
	for (size_t i = 0; i < n && o + 3 <= cap; i++) {
		out[o++] = d[p[i] >> 4];
		out[o++] = d[p[i] & 15];
	}
	out[o] = '\0';
}

void mt_test_print_hex(const char *label, const uint8_t *p, size_t n)
{
	enum { SHOWN = 96 };
	char line[2 * SHOWN + 1];

	mt_test_tohex(p, n < SHOWN ? n : SHOWN, line, sizeof line);
	print_error("%s: %s%s (%zu bytes)\n", label, line, n > SHOWN ? "..." : "", n);
}

uint64_t mt_test_xorshift64(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}
