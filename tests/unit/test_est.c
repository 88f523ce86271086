/*
 * test_est.c — the onboarding body parsers (mt_est.h): exact base64 and the
 * strict /mt/v1/onboard JSON, from the attacker's side: every malformed
 * form a client could send is refused, nothing is half-read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "medtrust/mt_est.h"
#include "medtrust/mt_keystore.h"

static enum mt_err dec(const char *s, uint8_t *out, size_t cap, size_t *n)
{
	return mt_est_b64_decode((const uint8_t *)s, strlen(s), out, cap, n);
}

static void b64_accepts_rfc4648_with_line_breaks(void **state)
{
	uint8_t out[64];
	size_t n = 0;

	(void)state;
	assert_int_equal(dec("QUJD", out, sizeof out, &n), MT_OK);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "ABC", 3);
	assert_int_equal(dec("QUJD\r\nREVG\nRw==\n", out, sizeof out, &n), MT_OK);
	assert_int_equal(n, 7);
	assert_memory_equal(out, "ABCDEFG", 7);
	assert_int_equal(dec("QUJDRA==", out, sizeof out, &n), MT_OK);
	assert_int_equal(n, 4);
	assert_int_equal(dec("QUJDREU=", out, sizeof out, &n), MT_OK);
	assert_int_equal(n, 5);
}

static void b64_refuses_everything_else(void **state)
{
	static const char *const bad[] = {
	        "",          /* nothing */
	        "QUJ",       /* not a whole quantum, no padding */
	        "QUJDR",     /* one character left over */
	        "QUJDRA=",   /* padding short */
	        "QUJDRA===", /* padding long */
	        "QU=D",      /* data after padding */
	        "QUJD-_==",  /* base64url alphabet */
	        "QUJD!",     /* junk */
	        "QUJDRB==",  /* non-zero bits in the padding */
	        "QUJDREV=",  /* non-zero bits in the padding */
	        "====",
	};
	uint8_t out[64];
	size_t n = 99;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (dec(bad[i], out, sizeof out, &n) != MT_ERR_ARG)
			fail_msg("accepted %s", bad[i]);
	}
	/* Output over the caller's capacity is refused, not truncated. */
	assert_int_equal(dec("QUJDREVG", out, 5, &n), MT_ERR_ARG);
	assert_int_equal(dec("QUJDREVG", out, 6, &n), MT_OK);
}

static void onboard_body_strict(void **state)
{
	struct mt_key *k = NULL, *ed = NULL;
	uint8_t spki[MT_SPKI_MAX], raw[32], got[MT_SPKI_MAX];
	size_t spki_len = 0, n = 0;
	char b64[2 * MT_SPKI_MAX], body[1024];
	const char *why = NULL;

	(void)state;
	memset(raw, 7, sizeof raw);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_DERIVE, raw, 32, &k), MT_OK);
	assert_int_equal(mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, raw, 32, &ed), MT_OK);
	assert_int_equal(mt_pubkey_spki(mt_key_public(k), spki, sizeof spki, &spki_len), MT_OK);
	EVP_EncodeBlock((unsigned char *)b64, spki, (int)spki_len);

	snprintf(body, sizeof body, "{\"kx\": \"%s\"}", b64);
	assert_int_equal(mt_est_onboard_body((uint8_t *)body, strlen(body), got, &n, &why), MT_OK);
	assert_int_equal(n, spki_len);
	assert_memory_equal(got, spki, n);

	snprintf(body, sizeof body, "{\"kx\": \"%s\", \"kx2\": 1}", b64);
	assert_int_equal(mt_est_onboard_body((uint8_t *)body, strlen(body), got, &n, &why),
	                 MT_ERR_JSON_SCHEMA);
	assert_non_null(why);
	snprintf(body, sizeof body, "{\"kx\": \"%s\", \"kx\": \"%s\"}", b64, b64);
	assert_int_equal(mt_est_onboard_body((uint8_t *)body, strlen(body), got, &n, &why),
	                 MT_ERR_JSON_SYNTAX);
	snprintf(body, sizeof body, "{\"kx\": \"%s\"} x", b64);
	assert_int_equal(mt_est_onboard_body((uint8_t *)body, strlen(body), got, &n, &why),
	                 MT_ERR_JSON_SYNTAX);
	snprintf(body, sizeof body, "[\"%s\"]", b64);
	assert_int_equal(mt_est_onboard_body((uint8_t *)body, strlen(body), got, &n, &why),
	                 MT_ERR_JSON_SCHEMA);
	snprintf(body, sizeof body, "{\"kx\": 12}");
	assert_int_equal(mt_est_onboard_body((uint8_t *)body, strlen(body), got, &n, &why),
	                 MT_ERR_JSON_SCHEMA);
	snprintf(body, sizeof body, "{\"kx\": \"QUJD\"}");
	assert_int_equal(mt_est_onboard_body((uint8_t *)body, strlen(body), got, &n, &why),
	                 MT_ERR_KEY_FORMAT);
	/* An Ed25519 key is not a kx key. */
	assert_int_equal(mt_pubkey_spki(mt_key_public(ed), spki, sizeof spki, &spki_len), MT_OK);
	EVP_EncodeBlock((unsigned char *)b64, spki, (int)spki_len);
	snprintf(body, sizeof body, "{\"kx\": \"%s\"}", b64);
	assert_int_equal(mt_est_onboard_body((uint8_t *)body, strlen(body), got, &n, &why),
	                 MT_ERR_KEY_TYPE);
	/* Over 4 KiB. */
	{
		static uint8_t big[5000];

		memset(big, ' ', sizeof big);
		assert_int_equal(mt_est_onboard_body(big, sizeof big, got, &n, &why),
		                 MT_ERR_JSON_SYNTAX);
	}
	mt_key_free(k);
	mt_key_free(ed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(b64_accepts_rfc4648_with_line_breaks),
	        cmocka_unit_test(b64_refuses_everything_else),
	        cmocka_unit_test(onboard_body_strict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
