/*
 * test_totp.c — HOTP/TOTP and the otpauth URI (mt_totp.h, src/core/totp.c):
 *
 *   - RFC 4226 Appendix D's ten HOTP values;
 *   - RFC 6238 Appendix B's eighteen TOTP values (SHA-1, SHA-256, SHA-512,
 *     eight digits, times up to 20,000,000,000);
 *   - the console check: the current step and one either side accepted,
 *     two steps away refused, a step once used refused (replay), an older
 *     step after a newer one refused, malformed codes refused before any
 *     HMAC;
 *   - RFC 4648 §10's base32 vectors, and the URI an authenticator reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_totp.h"

static const uint8_t key20[] = "12345678901234567890";
static const uint8_t key32[] = "12345678901234567890123456789012";
static const uint8_t key64[] =
        "1234567890123456789012345678901234567890123456789012345678901234";

static void rfc4226_hotp(void **state)
{
	static const uint32_t want[] = {755224, 287082, 359152, 969429, 338314,
	                                254676, 287922, 162583, 399871, 520489};

	(void)state;
	for (uint64_t c = 0; c < 10; c++) {
		uint32_t v = 0;

		assert_int_equal(mt_hotp(MT_TOTP_SHA1, key20, 20, c, 6, &v), MT_OK);
		assert_int_equal(v, want[c]);
	}
}

static void rfc6238_totp(void **state)
{
	static const struct {
		int64_t t;
		uint32_t sha1, sha256, sha512;
	} v[] = {
	        {59, 94287082, 46119246, 90693936},
	        {1111111109, 7081804, 68084774, 25091201},
	        {1111111111, 14050471, 67062674, 99943326},
	        {1234567890, 89005924, 91819424, 93441116},
	        {2000000000, 69279037, 90698825, 38618901},
	        {20000000000, 65353130, 77737706, 47863826},
	};

	(void)state;
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		uint32_t a = 0, b = 0, c = 0;

		assert_int_equal(mt_totp(MT_TOTP_SHA1, key20, 20, v[i].t, 8, &a), MT_OK);
		assert_int_equal(mt_totp(MT_TOTP_SHA256, key32, 32, v[i].t, 8, &b), MT_OK);
		assert_int_equal(mt_totp(MT_TOTP_SHA512, key64, 64, v[i].t, 8, &c), MT_OK);
		assert_int_equal(a, v[i].sha1);
		assert_int_equal(b, v[i].sha256);
		assert_int_equal(c, v[i].sha512);
	}
}

static void bad_arguments(void **state)
{
	uint32_t v;
	uint8_t big[MT_TOTP_KEY_MAX + 1] = {0};

	(void)state;
	assert_int_equal(mt_hotp(MT_TOTP_SHA1, NULL, 20, 0, 6, &v), MT_ERR_ARG);
	assert_int_equal(mt_hotp(MT_TOTP_SHA1, key20, 0, 0, 6, &v), MT_ERR_ARG);
	assert_int_equal(mt_hotp(MT_TOTP_SHA1, big, sizeof big, 0, 6, &v), MT_ERR_ARG);
	assert_int_equal(mt_hotp(MT_TOTP_SHA1, key20, 20, 0, 5, &v), MT_ERR_ARG);
	assert_int_equal(mt_hotp(MT_TOTP_SHA1, key20, 20, 0, 9, &v), MT_ERR_ARG);
	assert_int_equal(mt_hotp((enum mt_totp_alg)7, key20, 20, 0, 6, &v), MT_ERR_ARG);
	assert_int_equal(mt_totp(MT_TOTP_SHA1, key20, 20, -1, 6, &v), MT_ERR_ARG);
}

/* The six-digit code of step s. */
static void code_at(uint64_t s, char out[7])
{
	uint32_t v = 0;

	assert_int_equal(mt_hotp(MT_TOTP_SHA1, key20, 20, s, 6, &v), MT_OK);
	snprintf(out, 7, "%06u", (unsigned)v);
}

static void check_window_and_replay(void **state)
{
	const int64_t now = 1795000015; /* 15 s into its step */
	const uint64_t step = (uint64_t)now / 30;
	char c[7];
	uint64_t last = 0;

	(void)state;
	/* two steps either side: refused */
	code_at(step - 2, c);
	assert_int_equal(mt_totp_check(key20, 20, c, now, &last), MT_ERR_REFUSED);
	code_at(step + 2, c);
	assert_int_equal(mt_totp_check(key20, 20, c, now, &last), MT_ERR_REFUSED);
	assert_int_equal(last, 0);
	/* the previous step: accepted, remembered */
	code_at(step - 1, c);
	assert_int_equal(mt_totp_check(key20, 20, c, now, &last), MT_OK);
	assert_int_equal(last, step - 1);
	/* the same code again: a replay */
	assert_int_equal(mt_totp_check(key20, 20, c, now, &last), MT_ERR_REFUSED);
	/* the next step: accepted; then the current one is older: refused */
	code_at(step + 1, c);
	assert_int_equal(mt_totp_check(key20, 20, c, now, &last), MT_OK);
	assert_int_equal(last, step + 1);
	code_at(step, c);
	assert_int_equal(mt_totp_check(key20, 20, c, now, &last), MT_ERR_REFUSED);
	assert_int_equal(last, step + 1);
	/* a fresh key state takes the current step */
	last = 0;
	assert_int_equal(mt_totp_check(key20, 20, c, now, &last), MT_OK);
	assert_int_equal(last, step);
	/* a wrong code */
	last = 0;
	c[5] = c[5] == '9' ? '0' : (char)(c[5] + 1);
	assert_int_equal(mt_totp_check(key20, 20, c, now, &last), MT_ERR_REFUSED);
}

static void check_malformed_codes(void **state)
{
	static const char *const bad[] = {"", "12345", "1234567", "12345a", " 12345", "12 345",
	                                  "-12345", "１２３４５６"};
	uint64_t last = 0;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(mt_totp_check(key20, 20, bad[i], 1795000000, &last), MT_ERR_ARG);
	assert_int_equal(mt_totp_check(key20, 20, NULL, 1795000000, &last), MT_ERR_ARG);
	assert_int_equal(mt_totp_check(key20, 20, "123456", 1795000000, NULL), MT_ERR_ARG);
	assert_int_equal(mt_totp_check(key20, 20, "123456", 0, &last), MT_ERR_ARG);
	assert_int_equal(last, 0);
}

static void base32_rfc4648(void **state)
{
	static const char *const want[] = {"", "MY", "MZXQ", "MZXW6", "MZXW6YQ", "MZXW6YTB",
	                                   "MZXW6YTBOI"};
	char out[16];

	(void)state;
	for (size_t n = 0; n <= 6; n++) {
		assert_int_equal(mt_base32((const uint8_t *)"foobar", n, out, sizeof out), MT_OK);
		assert_string_equal(out, want[n]);
	}
	assert_int_equal(mt_base32((const uint8_t *)"foobar", 6, out, 10), MT_ERR_BUFFER);
	assert_int_equal(mt_base32((const uint8_t *)"foobar", 6, out, 11), MT_OK);
}

static void uri_for_an_authenticator(void **state)
{
	char uri[MT_TOTP_URI_MAX];

	(void)state;
	assert_int_equal(mt_totp_uri("medtrust", "nurse.ann", key20, 20, uri, sizeof uri), MT_OK);
	assert_string_equal(uri, "otpauth://totp/medtrust:nurse.ann?"
	                         "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=medtrust"
	                         "&algorithm=SHA1&digits=6&period=30");
	assert_int_equal(mt_totp_uri("medtrust", "a b", key20, 20, uri, sizeof uri), MT_ERR_ARG);
	assert_int_equal(mt_totp_uri("med:trust", "ann", key20, 20, uri, sizeof uri),
	                 MT_ERR_ARG);
	assert_int_equal(mt_totp_uri("medtrust", "ann", key20, 20, uri, 40), MT_ERR_BUFFER);
	assert_int_equal(uri[0], '\0'); /* no half a secret left behind */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(rfc4226_hotp),
	        cmocka_unit_test(rfc6238_totp),
	        cmocka_unit_test(bad_arguments),
	        cmocka_unit_test(check_window_and_replay),
	        cmocka_unit_test(check_malformed_codes),
	        cmocka_unit_test(base32_rfc4648),
	        cmocka_unit_test(uri_for_an_authenticator),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
