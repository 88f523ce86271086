/*
 * test_cose_wg.c — the COSE working group's Sign1 and Encrypt0 examples
 * (cose-wg/Examples, in $MT_VECTORS_DIR/cose) through mt_cose.h.
 * Requirement: the generic COSE layer interoperates with RFC 9052/9053 as
 * others implement it, and refuses what the examples mark as failures
 * (wrong tag, altered signature/tag, unknown algorithm, altered protected
 * bucket).
 *
 * In scope: every file whose output is a COSE_Sign1 (tag 18 or untagged
 * with a `sign0` input) or a COSE_Encrypt0 (tag 16, or untagged with an
 * `encrypted` input): everything in sign1-tests, ecdsa-examples/ecdsa-sig-NN,
 * eddsa-examples/eddsa-sig-NN, everything in encrypted-tests (enc-NN and
 * aes-gcm-01, which is an Encrypt0) and aes-gcm-examples/aes-gcm-enc-NN.  The remaining files
 * (COSE_Sign, COSE_Encrypt with recipients) are out of scope; the test
 * asserts that each one it meets really is one of those, so nothing in
 * scope is dropped by a wrong guess.
 *
 * For each file: decode `output.cbor`; a `"fail": true` file must be refused,
 * and with the error its `failures` entry predicts; any other must verify
 * (or decrypt to the plaintext) with the JSON key and `external` AAD.  For
 * passing files the ToBeSign / AAD intermediates are rebuilt with
 * mt_cose_sig1_prefix / mt_cose_enc0_structure and compared byte for byte,
 * and an Encrypt0 whose headers are exactly the form mt_cose_encrypt0_encrypt
 * writes is re-encrypted with the fixed IV and compared byte for byte.
 *
 * Exit 77 (skipped) when $MT_VECTORS_DIR/cose is absent.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glob.h>

#include "medtrust/mt_cose.h"
#include "medtrust/mt_crypto.h"
#include "mt_testjson.h"

static const char *const mt_patterns[] = {
	"cose/sign1-tests/*.json",
	"cose/ecdsa-examples/*.json",
	"cose/eddsa-examples/*.json",
	"cose/encrypted-tests/*.json",
	"cose/aes-gcm-examples/*.json",
};

struct tally {
	size_t sign_pass, sign_fail, enc_pass, enc_fail, tbs_checked, aad_checked,
	    reencrypted, out_of_scope;
};

static uint8_t *b64_field(const json_t *key, const char *name, size_t *len)
{
	const char *s = mt_test_json_str(key, name);
	uint8_t *b = NULL;
	assert_non_null(s);
	assert_int_equal(mt_test_b64url(s, &b, len), 0);
	return b;
}

/* The public key of a JWK-style JSON key object. */
static struct mt_pubkey *jwk_public(const json_t *key)
{
	const char *kty = mt_test_json_str(key, "kty");
	const char *crv = mt_test_json_str(key, "crv");
	struct mt_pubkey *pk = NULL;

	assert_non_null(kty);
	assert_non_null(crv);
	if (strcmp(kty, "EC") == 0) {
		enum mt_key_type t = strcmp(crv, "P-256") == 0   ? MT_KEY_P256
		                     : strcmp(crv, "P-384") == 0 ? MT_KEY_P384
		                     : strcmp(crv, "P-521") == 0 ? MT_KEY_P521
		                                                 : MT_KEY_NONE;
		size_t xl, yl;
		uint8_t *x = b64_field(key, "x", &xl), *y = b64_field(key, "y", &yl);
		uint8_t pt[1 + 2 * 66];
		assert_int_not_equal(t, MT_KEY_NONE);
		assert_int_equal(xl, yl);
		assert_true(xl <= 66);
		pt[0] = 0x04;
		memcpy(pt + 1, x, xl);
		memcpy(pt + 1 + xl, y, yl);
		assert_int_equal(mt_pubkey_from_raw(t, pt, 1 + 2 * xl, &pk), MT_OK);
		free(x);
		free(y);
	} else {
		assert_string_equal(kty, "OKP");
		enum mt_key_type t = strcmp(crv, "Ed25519") == 0 ? MT_KEY_ED25519
		                     : strcmp(crv, "Ed448") == 0 ? MT_KEY_ED448
		                                                 : MT_KEY_NONE;
		size_t xl;
		uint8_t *x;
		assert_int_not_equal(t, MT_KEY_NONE);
		if (mt_test_json_str(key, "x_hex") != NULL)
			x = mt_test_json_hex(key, "x_hex", &xl);
		else
			x = b64_field(key, "x", &xl);
		assert_int_equal(mt_pubkey_from_raw(t, x, xl, &pk), MT_OK);
		free(x);
	}
	assert_non_null(pk);
	return pk;
}

/* `external` of a layer, decoded (empty when absent). */
static uint8_t *external_of(const json_t *layer, size_t *len)
{
	if (mt_test_json_str(layer, "external") != NULL)
		return mt_test_json_hex(layer, "external", len);
	*len = 0;
	return calloc(1, 1);
}

/* The error a `failures` entry predicts, or -1 when the file passes. */
static int expected_failure(const json_t *input, bool enc)
{
	const json_t *f = json_object_get(input, "failures");
	if (f == NULL)
		return -1;
	if (json_object_get(f, "ChangeCBORTag") != NULL)
		return MT_ERR_CBOR_TAG;
	if (json_object_get(f, "ChangeTag") != NULL)
		return enc ? MT_ERR_AEAD_TAG : MT_ERR_SIG_INVALID;
	if (json_object_get(f, "ChangeAttr") != NULL)
		return MT_ERR_COSE_ALG;
	if (json_object_get(f, "AddProtected") != NULL ||
	    json_object_get(f, "RemoveProtected") != NULL)
		return enc ? MT_ERR_AEAD_TAG : MT_ERR_SIG_INVALID;
	return -1; /* ChangeProtected, RemoveCBORTag: still valid messages */
}

static void run_sign1(const char *path, const json_t *j, const uint8_t *cbor, size_t len,
                      struct tally *ty)
{
	const json_t *input = json_object_get(j, "input");
	const json_t *sign0 = json_object_get(input, "sign0");
	bool must_fail = json_is_true(json_object_get(j, "fail"));
	int predicted = expected_failure(input, false);
	const char *pt = mt_test_json_str(input, "plaintext");
	struct mt_pubkey *pk = jwk_public(json_object_get(sign0, "key"));
	struct mt_cose_sign1 s;
	size_t al;
	uint8_t *aad = external_of(sign0, &al);
	enum mt_err e;

	assert_non_null(pt);
	e = mt_cose_sign1_decode(cbor, len, false, &s);
	if (e == MT_OK)
		e = mt_cose_sign1_verify(&s, pk, aad, al);
	if (must_fail) {
		if (e == MT_OK || (predicted >= 0 && (int)e != predicted)) {
			fprintf(stderr, "%s: expected refusal %d, got %s\n", path, predicted,
			        mt_err_str(e));
			fail();
		}
		ty->sign_fail++;
	} else {
		if (e != MT_OK) {
			fprintf(stderr, "%s: %s\n", path, mt_err_str(e));
			fail();
		}
		assert_int_equal(s.payload_len, strlen(pt));
		assert_memory_equal(s.payload, pt, s.payload_len);
		/* A tampered payload must not verify. */
		uint8_t *copy = malloc(s.payload_len);
		assert_non_null(copy);
		memcpy(copy, s.payload, s.payload_len);
		copy[0] ^= 1;
		struct mt_cose_sign1 t = s;
		t.payload = copy;
		assert_int_equal(mt_cose_sign1_verify(&t, pk, aad, al), MT_ERR_SIG_INVALID);
		free(copy);

		const json_t *im = json_object_get(j, "intermediates");
		if (mt_test_json_str(im, "ToBeSign_hex") != NULL) {
			size_t tl, pl;
			uint8_t *tbs = mt_test_json_hex(im, "ToBeSign_hex", &tl);
			uint8_t pre[256];
			assert_int_equal(mt_cose_sig1_prefix(s.prot, s.prot_len, aad, al,
			                                     s.payload_len, pre, sizeof pre, &pl),
			                 MT_OK);
			assert_int_equal(pl + s.payload_len, tl);
			assert_memory_equal(pre, tbs, pl);
			assert_memory_equal(s.payload, tbs + pl, s.payload_len);
			free(tbs);
			ty->tbs_checked++;
		}
		ty->sign_pass++;
	}
	free(aad);
	mt_pubkey_free(pk);
}

static void run_encrypt0(const char *path, const json_t *j, const uint8_t *cbor, size_t len,
                         struct tally *ty)
{
	const json_t *input = json_object_get(j, "input");
	const json_t *enc = json_object_get(input, "encrypted");
	const json_t *rcp = json_array_get(json_object_get(enc, "recipients"), 0);
	bool must_fail = json_is_true(json_object_get(j, "fail"));
	int predicted = expected_failure(input, true);
	const char *pt = mt_test_json_str(input, "plaintext");
	struct mt_cose_encrypt0 e0;
	struct mt_aead *aead = NULL;
	size_t kl, al, ol = 0;
	uint8_t *key = b64_field(json_object_get(rcp, "key"), "k", &kl);
	uint8_t *aad = external_of(enc, &al);
	uint8_t *out = malloc(len + 1);
	enum mt_err e;

	assert_non_null(pt);
	assert_non_null(out);
	assert_int_equal(mt_aead_new(&aead), MT_OK);
	memset(out, 0xa5, len + 1);
	e = mt_cose_encrypt0_decode(cbor, len, false, &e0);
	if (e == MT_OK)
		e = mt_cose_encrypt0_decrypt(&e0, aead, key, kl, aad, al, out, len, &ol);
	if (must_fail) {
		if (e == MT_OK || (predicted >= 0 && (int)e != predicted)) {
			fprintf(stderr, "%s: expected refusal %d, got %s\n", path, predicted,
			        mt_err_str(e));
			fail();
		}
		if (e == MT_ERR_AEAD_TAG)
			for (size_t i = 0; i + MT_AEAD_TAG_LEN < e0.ct_len; i++)
				assert_int_equal(out[i], 0); /* wiped */
		ty->enc_fail++;
	} else {
		if (e != MT_OK) {
			fprintf(stderr, "%s: %s\n", path, mt_err_str(e));
			fail();
		}
		assert_int_equal(ol, strlen(pt));
		assert_memory_equal(out, pt, ol);

		const json_t *im = json_object_get(j, "intermediates");
		if (mt_test_json_str(im, "AAD_hex") != NULL) {
			size_t xl, sl;
			uint8_t *x = mt_test_json_hex(im, "AAD_hex", &xl);
			uint8_t st[256];
			assert_int_equal(mt_cose_enc0_structure(e0.prot, e0.prot_len, aad, al, st,
			                                        sizeof st, &sl),
			                 MT_OK);
			assert_int_equal(sl, xl);
			assert_memory_equal(st, x, xl);
			free(x);
			ty->aad_checked++;
		}
		/* Headers exactly {1: alg} / {5: iv}: our encoder must reproduce it. */
		static const uint8_t form[] = {0xd0, 0x83, 0x43, 0xa1, 0x01};
		if (len > 27 && memcmp(cbor, form, sizeof form) == 0 && cbor[6] == 0xa1 &&
		    cbor[7] == 0x05 && cbor[8] == 0x4c) {
			uint8_t *again = malloc(len + 16);
			size_t gl = 0;
			assert_non_null(again);
			assert_int_equal(mt_cose_encrypt0_encrypt(aead, e0.ph.alg, key, kl, e0.uh.iv,
			                                          (const uint8_t *)pt, strlen(pt),
			                                          aad, al, again, len + 16, &gl),
			                 MT_OK);
			assert_int_equal(gl, len);
			assert_memory_equal(again, cbor, len);
			free(again);
			ty->reencrypted++;
		}
		ty->enc_pass++;
	}
	mt_aead_free(aead);
	free(out);
	free(aad);
	free(key);
}

static void run_file(const char *path, struct tally *ty)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	const json_t *input, *output;
	uint8_t *cbor;
	size_t len;

	if (j == NULL) {
		fprintf(stderr, "%s:%d: %s\n", path, jerr.line, jerr.text);
		fail();
	}
	input = json_object_get(j, "input");
	output = json_object_get(j, "output");
	cbor = mt_test_json_hex(output, "cbor", &len);
	assert_true(len > 0);
	bool has_sign0 = json_object_get(input, "sign0") != NULL;
	bool has_enc = json_object_get(input, "encrypted") != NULL;
	if (has_sign0 && (cbor[0] == 0xd2 || cbor[0] == 0x84 ||
	                  json_object_get(json_object_get(input, "failures"), "ChangeCBORTag"))) {
		run_sign1(path, j, cbor, len, ty);
	} else if (has_enc && (cbor[0] == 0xd0 || cbor[0] == 0x83 ||
	                       json_object_get(json_object_get(input, "failures"),
	                                       "ChangeCBORTag"))) {
		run_encrypt0(path, j, cbor, len, ty);
	} else {
		/* Out of scope: must be a COSE_Sign (98) or COSE_Encrypt (96). */
		assert_true(json_object_get(input, "sign") != NULL ||
		            json_object_get(input, "enveloped") != NULL);
		assert_true(cbor[0] == 0xd8 && (cbor[1] == 96 || cbor[1] == 98));
		ty->out_of_scope++;
	}
	free(cbor);
	json_decref(j);
}

static void test_cose_examples(void **state)
{
	(void)state;
	struct tally ty = {0};

	for (size_t p = 0; p < sizeof mt_patterns / sizeof mt_patterns[0]; p++) {
		char pat[4096];
		glob_t g;
		assert_true(mt_test_vector_path(mt_patterns[p], pat, sizeof pat));
		assert_int_equal(glob(pat, 0, NULL, &g), 0);
		for (size_t i = 0; i < g.gl_pathc; i++)
			run_file(g.gl_pathv[i], &ty);
		globfree(&g);
	}
	printf("cose-wg: Sign1 %zu verified, %zu refused as expected; Encrypt0 %zu "
	       "decrypted, %zu refused as expected; ToBeSign %zu and Enc_structure %zu "
	       "rebuilt byte-exact; %zu re-encrypted byte-exact; %zu COSE_Sign/Encrypt "
	       "files out of scope\n",
	       ty.sign_pass, ty.sign_fail, ty.enc_pass, ty.enc_fail, ty.tbs_checked,
	       ty.aad_checked, ty.reencrypted, ty.out_of_scope);
	/* The set shipped in ../shared/vectors (cose-wg/Examples 53c9d63). */
	assert_int_equal(ty.sign_pass, 9);
	assert_int_equal(ty.sign_fail, 6);
	assert_int_equal(ty.enc_pass, 7);
	assert_int_equal(ty.enc_fail, 7);
	assert_int_equal(ty.tbs_checked, ty.sign_pass);
	assert_int_equal(ty.aad_checked, ty.enc_pass);
	assert_true(ty.reencrypted >= 5);
}

int main(void)
{
	if (!mt_test_vector_exists("cose/sign1-tests/sign-pass-01.json")) {
		printf("skipped: $MT_VECTORS_DIR/cose is absent\n");
		return MT_TEST_SKIP;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cose_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
