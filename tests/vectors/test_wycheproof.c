/*
 * test_wycheproof.c — every Project Wycheproof vector that medtrust's
 * primitives can express, run through the public adapter (mt_crypto.h) and
 * the key store's ECDH (mt_keystore.h).  Requirement: the crypto adapter
 * gives the expected verdict on known-bad inputs (threat rows "forged
 * signature", "invalid-curve ECDH", "AEAD forgery"; protocol §4: 1 ≤ r, s < n,
 * no low-s rule, points on the curve).
 *
 * Verdicts.  `valid` must pass and produce the expected output; `invalid`
 * must be refused.  `acceptable` cases get the policy stated beside each
 * file below, asserted like any other verdict.  Groups that the adapter's
 * API cannot express (AES-GCM with an IV other than 96 bits) are counted as
 * "skipped by policy" and printed; no vector is silently dropped: the totals
 * printed per file add up to the file's numberOfTests, which is asserted.
 *
 * Exit 77 (skipped) when $MT_VECTORS_DIR or one of its files is absent.
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

#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "mt_testjson.h"

#define W(f) "wycheproof/" f

static const char *const mt_files[] = {
	W("ecdsa_secp256r1_sha256_p1363_test.json"),
	W("ecdsa_secp256r1_sha256_test.json"),
	W("ed25519_test.json"),
	W("aes_gcm_test.json"),
	W("hkdf_sha256_test.json"),
	W("ecdh_secp256r1_test.json"),
	W("ecdh_secp256r1_ecpoint_test.json"),
};

struct counts {
	size_t valid, invalid, acc_pass, acc_refused, skipped;
};

/* One test group of a file: run its tests and count their verdicts. */
typedef void group_fn(const char *file, const json_t *g, struct counts *c, void *ctx);

/*
 * Every group of wycheproof/<file> (main() has seen that it exists) through
 * `group`, then the file's totals: printed, checked to add up to the file's
 * numberOfTests (nothing dropped) and to hold both verdicts.
 */
static void run_file(const char *file, group_fn *group, void *ctx)
{
	char rel[256];
	struct counts c = {0};
	size_t gi;
	json_t *j, *g;

	assert_true((size_t)snprintf(rel, sizeof rel, W("%s"), file) < sizeof rel);
	j = mt_test_load_json(rel);
	assert_non_null(j);
	json_array_foreach(json_object_get(j, "testGroups"), gi, g)
		group(file, g, &c, ctx);

	size_t total = c.valid + c.invalid + c.acc_pass + c.acc_refused + c.skipped;
	printf("wycheproof %s: %zu valid passed, %zu invalid refused, %zu acceptable "
	       "passed, %zu acceptable refused, %zu skipped by policy (total %zu)\n",
	       file, c.valid, c.invalid, c.acc_pass, c.acc_refused, c.skipped, total);
	/* Nothing dropped: every test of the file got a verdict or a policy. */
	assert_int_equal(total, (size_t)json_integer_value(json_object_get(j, "numberOfTests")));
	assert_true(c.valid > 0 && c.invalid > 0);
	json_decref(j);
}

static const char *result_of(const json_t *t)
{
	const char *r = mt_test_json_str(t, "result");
	assert_non_null(r);
	return r;
}

static bool has_flag(const json_t *t, const char *flag)
{
	const json_t *fl = json_object_get(t, "flags");
	size_t i;
	const json_t *f;
	json_array_foreach(fl, i, f)
		if (json_is_string(f) && strcmp(json_string_value(f), flag) == 0)
			return true;
	return false;
}

static void fail_vector(const char *file, const json_t *t, const char *what, int e)
{
	fprintf(stderr, "%s tcId %lld (%s): %s (%s)\n", file,
	        (long long)json_integer_value(json_object_get(t, "tcId")),
	        mt_test_json_str(t, "comment"), what, mt_err_str((enum mt_err)e));
	fail();
}

/* ------------------------------------------------------- signatures */

/*
 * The tests of one signature group.  Each signature is verified against pk
 * over the whole message and, where pk2 is given (the same key read from its
 * raw form), against pk2 with the message arriving as prefix + rest, which
 * must not change the verdict.  `der`: the signatures are DER
 * (mt_sig_verify_der, SHA-256), else COSE r ‖ s.  `valid` must verify;
 * `invalid` must be refused as MT_ERR_SIG_FORMAT or MT_ERR_SIG_INVALID.
 */
static void run_sig_tests(const char *file, const json_t *g, const struct mt_pubkey *pk,
                          const struct mt_pubkey *pk2, bool der, struct counts *c)
{
	size_t ti;
	json_t *t;

	json_array_foreach(json_object_get(g, "tests"), ti, t) {
		size_t ml, sl;
		uint8_t *msg = mt_test_json_hex(t, "msg", &ml);
		uint8_t *sig = mt_test_json_hex(t, "sig", &sl);
		enum mt_err e = der ? mt_sig_verify_der(pk, 256, msg, ml, sig, sl)
		                    : mt_sig_verify(pk, NULL, 0, msg, ml, sig, sl);
		if (pk2 != NULL) {
			enum mt_err e2 = mt_sig_verify(pk2, msg, ml / 2, msg + ml / 2, ml - ml / 2,
			                               sig, sl);
			if (e != e2)
				fail_vector(file, t, "split message changed the verdict", e2);
		}
		if (strcmp(result_of(t), "valid") == 0) {
			if (e != MT_OK)
				fail_vector(file, t, "valid signature refused", e);
			c->valid++;
		} else {
			assert_string_equal(result_of(t), "invalid");
			if (e != MT_ERR_SIG_FORMAT && e != MT_ERR_SIG_INVALID)
				fail_vector(file, t, "invalid signature not refused", e);
			c->invalid++;
		}
		free(msg);
		free(sig);
	}
}

/* The group's key from its DER SPKI (*pk) and from its raw form
 * publicKey[raw_name] (*pk2); both must be the same key (the same kid). */
static void group_keys(const json_t *g, enum mt_key_type type, const char *raw_name,
                       struct mt_pubkey **pk, struct mt_pubkey **pk2)
{
	size_t dl, rl;
	uint8_t *der = mt_test_json_hex(g, "publicKeyDer", &dl);
	uint8_t *raw = mt_test_json_hex(json_object_get(g, "publicKey"), raw_name, &rl);

	*pk = *pk2 = NULL;
	assert_int_equal(mt_pubkey_from_spki(der, dl, pk), MT_OK);
	assert_int_equal(mt_pubkey_from_raw(type, raw, rl, pk2), MT_OK);
	assert_memory_equal(mt_pubkey_kid(*pk), mt_pubkey_kid(*pk2), MT_KID_LEN);
	free(der);
	free(raw);
}

/* ------------------------------------------------------------ ECDSA */

/* ES256 in COSE form (r ‖ s).  No acceptable cases in this file. */
static void ecdsa_p1363_group(const char *file, const json_t *g, struct counts *c, void *ctx)
{
	struct mt_pubkey *pk, *pk2;
	(void)ctx;
	assert_string_equal(mt_test_json_str(g, "sha"), "SHA-256");
	group_keys(g, MT_KEY_P256, "uncompressed", &pk, &pk2);
	run_sig_tests(file, g, pk, pk2, false, c);
	mt_pubkey_free(pk);
	mt_pubkey_free(pk2);
}

static void test_ecdsa_p1363(void **state)
{
	(void)state;
	run_file("ecdsa_secp256r1_sha256_p1363_test.json", ecdsa_p1363_group, NULL);
}

/* ECDSA with DER signatures (X.509, CSRs): strict DER, no BER leniency.
 * No acceptable cases in this file. */
static void ecdsa_der_group(const char *file, const json_t *g, struct counts *c, void *ctx)
{
	size_t dl;
	uint8_t *der = mt_test_json_hex(g, "publicKeyDer", &dl);
	struct mt_pubkey *pk = NULL;
	(void)ctx;
	assert_string_equal(mt_test_json_str(g, "sha"), "SHA-256");
	assert_int_equal(mt_pubkey_from_spki(der, dl, &pk), MT_OK);
	run_sig_tests(file, g, pk, NULL, true, c);
	mt_pubkey_free(pk);
	free(der);
}

static void test_ecdsa_der(void **state)
{
	(void)state;
	run_file("ecdsa_secp256r1_sha256_test.json", ecdsa_der_group, NULL);
}

/* ---------------------------------------------------------- Ed25519 */

/* Pure Ed25519 (RFC 8032 §5.1.7).  No acceptable cases in this file. */
static void ed25519_group(const char *file, const json_t *g, struct counts *c, void *ctx)
{
	struct mt_pubkey *pk, *pk2;
	(void)ctx;
	group_keys(g, MT_KEY_ED25519, "pk", &pk, &pk2);
	assert_int_equal(mt_pubkey_type(pk), MT_KEY_ED25519);
	run_sig_tests(file, g, pk, pk2, false, c);
	mt_pubkey_free(pk);
	mt_pubkey_free(pk2);
}

static void test_ed25519(void **state)
{
	(void)state;
	run_file("ed25519_test.json", ed25519_group, NULL);
}

/* ---------------------------------------------------------- AES-GCM */

/*
 * Policy: mt_aead takes 128/192/256-bit keys, a 96-bit IV and a 128-bit tag,
 * nothing else (protocol §4).  Groups with another IV or tag size cannot be
 * expressed through the API and are skipped by policy (counted).  In the
 * groups that run, a valid case must seal to exactly ct ‖ tag and open to
 * exactly msg (also in place); an invalid case must fail with
 * MT_ERR_AEAD_TAG and leave the output buffer wiped (all zero).  No
 * acceptable cases in this file.
 */
static void aes_gcm_group(const char *file, const json_t *g, struct counts *c, void *ctx)
{
	struct mt_aead *a = ctx;
	json_int_t ks = json_integer_value(json_object_get(g, "keySize"));
	json_int_t ivs = json_integer_value(json_object_get(g, "ivSize"));
	json_int_t ts = json_integer_value(json_object_get(g, "tagSize"));
	bool runs = (ks == 128 || ks == 192 || ks == 256) && ivs == 96 && ts == 128;
	size_t ti;
	json_t *t;

	json_array_foreach(json_object_get(g, "tests"), ti, t) {
		if (!runs) {
			c->skipped++;
			continue;
		}
		size_t kl, ivl, al, ml, cl, tl;
		uint8_t *key = mt_test_json_hex(t, "key", &kl);
		uint8_t *iv = mt_test_json_hex(t, "iv", &ivl);
		uint8_t *aad = mt_test_json_hex(t, "aad", &al);
		uint8_t *msg = mt_test_json_hex(t, "msg", &ml);
		uint8_t *ct = mt_test_json_hex(t, "ct", &cl);
		uint8_t *tag = mt_test_json_hex(t, "tag", &tl);
		uint8_t *ctt = malloc(cl + tl + 1), *out = malloc(cl + tl + 1);
		enum mt_err e;

		assert_non_null(ctt);
		assert_non_null(out);
		assert_int_equal(kl * 8, (size_t)ks);
		assert_int_equal(ivl, MT_AEAD_IV_LEN);
		assert_int_equal(tl, MT_AEAD_TAG_LEN);
		memcpy(ctt, ct, cl);
		memcpy(ctt + cl, tag, tl);
		memset(out, 0xa5, cl + tl + 1);
		e = mt_aead_open(a, key, kl, iv, aad, al, ctt, cl + tl, out);
		if (strcmp(result_of(t), "valid") == 0) {
			if (e != MT_OK)
				fail_vector(file, t, "valid ciphertext refused", e);
			assert_int_equal(ml, cl);
			assert_memory_equal(out, msg, ml);
			/* seal reproduces ct ‖ tag */
			memset(out, 0, cl + tl + 1);
			e = mt_aead_seal(a, key, kl, iv, aad, al, msg, ml, out);
			assert_int_equal(e, MT_OK);
			assert_memory_equal(out, ctt, cl + tl);
			/* open in place */
			assert_int_equal(mt_aead_open(a, key, kl, iv, aad, al, out, cl + tl, out),
			                 MT_OK);
			assert_memory_equal(out, msg, ml);
			c->valid++;
		} else {
			assert_string_equal(result_of(t), "invalid");
			if (e != MT_ERR_AEAD_TAG)
				fail_vector(file, t, "forged ciphertext not refused", e);
			for (size_t i = 0; i < cl; i++)
				assert_int_equal(out[i], 0); /* unauthenticated plaintext wiped */
			c->invalid++;
		}
		free(key);
		free(iv);
		free(aad);
		free(msg);
		free(ct);
		free(tag);
		free(ctt);
		free(out);
	}
}

static void test_aes_gcm(void **state)
{
	(void)state;
	struct mt_aead *a = NULL;
	assert_int_equal(mt_aead_new(&a), MT_OK);
	run_file("aes_gcm_test.json", aes_gcm_group, a);
	mt_aead_free(a);
}

/* ------------------------------------------------------------- HKDF */

/* valid: exact output; invalid (output longer than 255 × 32): refused with
 * MT_ERR_ARG.  No acceptable cases in this file. */
static void hkdf_group(const char *file, const json_t *g, struct counts *c, void *ctx)
{
	size_t ti;
	json_t *t;

	(void)ctx;
	json_array_foreach(json_object_get(g, "tests"), ti, t) {
		size_t il, sl, nl, ol;
		uint8_t *ikm = mt_test_json_hex(t, "ikm", &il);
		uint8_t *salt = mt_test_json_hex(t, "salt", &sl);
		uint8_t *info = mt_test_json_hex(t, "info", &nl);
		uint8_t *okm = mt_test_json_hex(t, "okm", &ol);
		size_t size = (size_t)json_integer_value(json_object_get(t, "size"));
		uint8_t *out = malloc(size + 1);
		enum mt_err e;

		assert_non_null(out);
		e = mt_hkdf_sha256(ikm, il, salt, sl, info, nl, out, size);
		if (strcmp(result_of(t), "valid") == 0) {
			if (e != MT_OK)
				fail_vector(file, t, "valid derivation refused", e);
			assert_int_equal(ol, size);
			assert_memory_equal(out, okm, size);
			c->valid++;
		} else {
			assert_string_equal(result_of(t), "invalid");
			if (e != MT_ERR_ARG)
				fail_vector(file, t, "invalid derivation not refused", e);
			c->invalid++;
		}
		free(ikm);
		free(salt);
		free(info);
		free(okm);
		free(out);
	}
}

static void test_hkdf(void **state)
{
	(void)state;
	run_file("hkdf_sha256_test.json", hkdf_group, NULL);
}

/* ------------------------------------------------------------- ECDH */

/* The private scalar of a vector (up to 33 bytes, sometimes shorter than 32)
 * as exactly 32 big-endian bytes. */
static void scalar32(const uint8_t *d, size_t dl, uint8_t out[32])
{
	while (dl > 32 && d[0] == 0) {
		d++;
		dl--;
	}
	assert_true(dl <= 32);
	memset(out, 0, 32);
	memcpy(out + 32 - dl, d, dl);
}

/*
 * One ECDH vector through the project's key code: the public key parsed by
 * `parse` (SPKI or raw point), the private key imported into the key store,
 * mt_key_ecdh.  Returns MT_OK with the shared x in `x`, or the first error.
 */
static enum mt_err ecdh_one(const json_t *t, bool spki, uint8_t x[32])
{
	size_t pl, dl;
	uint8_t *pub = mt_test_json_hex(t, "public", &pl);
	uint8_t *priv = mt_test_json_hex(t, "private", &dl);
	uint8_t d[32];
	struct mt_pubkey *peer = NULL;
	struct mt_key *k = NULL;
	enum mt_err e;

	scalar32(priv, dl, d);
	e = spki ? mt_pubkey_from_spki(pub, pl, &peer)
	         : mt_pubkey_from_raw(MT_KEY_P256, pub, pl, &peer);
	if (e == MT_OK) {
		assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_DERIVE, d, 32, &k),
		                 MT_OK);
		e = mt_key_ecdh(k, peer, x);
	}
	mt_key_free(k);
	mt_pubkey_free(peer);
	mt_wipe(d, sizeof d);
	free(pub);
	free(priv);
	return e;
}

/*
 * Policy for `acceptable` ECDH cases, per flag:
 *   CompressedPublic / CompressedPoint — accepted: protocol §1 lets P-256
 *     points arrive compressed (they are normalised); the shared secret must
 *     then equal the expected one.
 *   InvalidAsn — refused: public keys must be exact DER; no BER leniency.
 *   UnnamedCurve, UnusedParam (with ModifiedCofactor, NoCofactor,
 *     WrongOrder, ModifiedGenerator, ModifiedCurveParameter) — refused: only
 *     the named-curve OID of prime256v1 is accepted, never explicit curve
 *     parameters.
 * `invalid` keys must fail to parse or to derive; `valid` ones must derive
 * exactly `shared`.
 */
static void ecdh_group(const char *file, const json_t *g, struct counts *c, void *ctx)
{
	bool spki = *(const bool *)ctx;
	size_t ti;
	json_t *t;

	assert_string_equal(mt_test_json_str(g, "curve"), "secp256r1");
	json_array_foreach(json_object_get(g, "tests"), ti, t) {
		uint8_t x[32];
		size_t sl;
		uint8_t *shared = mt_test_json_hex(t, "shared", &sl);
		enum mt_err e = ecdh_one(t, spki, x);
		const char *r = result_of(t);
		bool accept;

		if (strcmp(r, "valid") == 0) {
			accept = true;
		} else if (strcmp(r, "invalid") == 0) {
			accept = false;
		} else {
			assert_string_equal(r, "acceptable");
			accept = has_flag(t, "CompressedPublic") && !has_flag(t, "InvalidAsn") &&
			         !has_flag(t, "UnnamedCurve") && !has_flag(t, "UnusedParam");
		}
		if (accept) {
			if (e != MT_OK)
				fail_vector(file, t, "key agreement refused", e);
			assert_int_equal(sl, 32);
			assert_memory_equal(x, shared, 32);
		} else if (e == MT_OK) {
			fail_vector(file, t, "key agreement not refused", e);
		}
		if (strcmp(r, "valid") == 0)
			c->valid++;
		else if (strcmp(r, "invalid") == 0)
			c->invalid++;
		else if (accept)
			c->acc_pass++;
		else
			c->acc_refused++;
		free(shared);
	}
}

static void test_ecdh_spki(void **state)
{
	(void)state;
	bool spki = true;
	run_file("ecdh_secp256r1_test.json", ecdh_group, &spki);
}

static void test_ecdh_ecpoint(void **state)
{
	(void)state;
	bool spki = false;
	run_file("ecdh_secp256r1_ecpoint_test.json", ecdh_group, &spki);
}

int main(void)
{
	for (size_t i = 0; i < sizeof mt_files / sizeof mt_files[0]; i++) {
		if (!mt_test_vector_exists(mt_files[i])) {
			printf("skipped: $MT_VECTORS_DIR/%s is absent\n", mt_files[i]);
			return MT_TEST_SKIP;
		}
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ecdsa_p1363), cmocka_unit_test(test_ecdsa_der),
		cmocka_unit_test(test_ed25519),     cmocka_unit_test(test_aes_gcm),
		cmocka_unit_test(test_hkdf),        cmocka_unit_test(test_ecdh_spki),
		cmocka_unit_test(test_ecdh_ecpoint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
