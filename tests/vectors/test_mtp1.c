/*
 * test_mtp1.c — MTP/1's own vectors (../shared/vectors/mtp1/vectors.json),
 * reproduced byte for byte through the project's code.
 *
 * Each value the vector file gives is recomputed from its inputs with the
 * same functions the device and hub use: kids from SPKIs, the ECDH secret
 * through the key store (in-memory keys imported from the vector scalars),
 * data and receipt keys through mt_packet_derive_keys, the COSE structures
 * through mt_cose, the message through the strict decoder and deterministic
 * encoder, and whole packets through mt_packet_seal with the vectors' fixed
 * IV.  EdDSA is deterministic, so the sealed EdDSA packet must match to the
 * byte; the ES256 one is checked by opening it.
 *
 * The vectors live outside the repository; without them the test reports
 * itself skipped (exit 77).  A vector file that is there but is not JSON is
 * a failure, never a skip (mt_testjson.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "medtrust/mt_cose.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_packet.h"
#include "mt_testjson.h"
#include "mt_testutil.h"

struct bytes {
	uint8_t b[4096];
	size_t n;
};

static void hexval(const char *name, struct bytes *out)
{
	const char *h = mt_test_json_str(mt_test_mtp1, name);
	assert_non_null(h);
	out->n = mt_test_unhex(h, out->b, sizeof(out->b));
}

static void assert_bytes(const uint8_t *got, size_t got_n, const struct bytes *want)
{
	assert_int_equal(got_n, want->n);
	assert_memory_equal(got, want->b, want->n);
}

static const char *dev(void) { return mt_test_json_str(mt_test_mtp1, "device_id"); }
static uint32_t epoch(void)
{
	return (uint32_t)json_integer_value(json_object_get(mt_test_mtp1, "epoch"));
}

static struct mt_key *import(const char *name, enum mt_key_type t, enum mt_key_role role)
{
	struct bytes d;
	struct mt_key *k = NULL;
	hexval(name, &d);
	assert_int_equal(mt_key_import_raw(t, role, d.b, d.n, &k), MT_OK);
	return k;
}

static struct mt_pubkey *pub(const char *name)
{
	struct bytes s;
	struct mt_pubkey *pk = NULL;
	hexval(name, &s);
	assert_int_equal(mt_pubkey_from_spki(s.b, s.n, &pk), MT_OK);
	return pk;
}

static void test_kids(void **state)
{
	(void)state;
	const char *names[][2] = {{"ldev_p256_spki", "ldev_p256_kid"},
	                          {"ldev_ed25519_spki", "ldev_ed25519_kid"}};
	for (size_t i = 0; i < 2; i++) {
		struct bytes spki, kid;
		uint8_t got[MT_KID_LEN];
		hexval(names[i][0], &spki);
		hexval(names[i][1], &kid);
		assert_int_equal(mt_kid_of_spki(spki.b, spki.n, got), MT_OK);
		assert_bytes(got, sizeof(got), &kid);
	}
	/* The kid of a key made from the private scalar is the same. */
	struct mt_key *k = import("ldev_p256_d", MT_KEY_P256, MT_KEY_ROLE_SIGN);
	struct bytes kid;
	hexval("ldev_p256_kid", &kid);
	assert_bytes(mt_pubkey_kid(mt_key_public(k)), MT_KID_LEN, &kid);
	mt_key_free(k);
	k = import("ldev_ed25519_seed", MT_KEY_ED25519, MT_KEY_ROLE_SIGN);
	hexval("ldev_ed25519_kid", &kid);
	assert_bytes(mt_pubkey_kid(mt_key_public(k)), MT_KID_LEN, &kid);
	mt_key_free(k);
}

/* ECDH both ways gives ecdh_x; HKDF gives the data and receipt keys. */
static void test_keys(void **state)
{
	(void)state;
	struct bytes want_x, want_k, want_r, info;
	uint8_t x1[32], x2[32], k[32], r[32];
	struct mt_key *dkx = import("dev_kx_d", MT_KEY_P256, MT_KEY_ROLE_DERIVE);
	struct mt_key *hkx = import("hub_kx_d", MT_KEY_P256, MT_KEY_ROLE_DERIVE);
	struct mt_pubkey *dpub = pub("dev_kx_spki"), *hpub = pub("hub_kx_spki");
	assert_int_equal(mt_key_ecdh(dkx, hpub, x1), MT_OK);
	assert_int_equal(mt_key_ecdh(hkx, dpub, x2), MT_OK);
	hexval("ecdh_x", &want_x);
	assert_bytes(x1, 32, &want_x);
	assert_bytes(x2, 32, &want_x);

	hexval("hkdf_info_data", &info);
	assert_int_equal(info.n, strlen("MTP/1 A256GCM ") + strlen(dev()));
	assert_memory_equal(info.b, "MTP/1 A256GCM ", 14);
	assert_int_equal(mt_packet_derive_keys(x1, epoch(), dev(), strlen(dev()), k, r), MT_OK);
	hexval("data_key", &want_k);
	hexval("receipt_key", &want_r);
	assert_bytes(k, 32, &want_k);
	assert_bytes(r, 32, &want_r);
	mt_key_free(dkx);
	mt_key_free(hkx);
	mt_pubkey_free(dpub);
	mt_pubkey_free(hpub);
}

static void test_structures(void **state)
{
	(void)state;
	static const uint8_t a10103[] = {0xa1, 0x01, 0x03}, a10127[] = {0xa1, 0x01, 0x27};
	uint8_t out[4096], aad[80];
	size_t n;
	struct bytes want, msg;

	hexval("enc_structure", &want);
	assert_int_equal(mt_cose_enc0_structure(a10103, 3, (const uint8_t *)dev(), strlen(dev()),
	                                        out, sizeof(out), &n),
	                 MT_OK);
	assert_bytes(out, n, &want);

	memcpy(aad, "rcpt:", 5);
	memcpy(aad + 5, dev(), strlen(dev()));
	hexval("receipt_enc_structure", &want);
	assert_int_equal(mt_cose_enc0_structure(a10103, 3, aad, 5 + strlen(dev()), out,
	                                        sizeof(out), &n),
	                 MT_OK);
	assert_bytes(out, n, &want);

	hexval("message", &msg);
	hexval("sig_structure_eddsa", &want);
	assert_int_equal(mt_cose_sig1_prefix(a10127, 3, NULL, 0, msg.n, out, sizeof(out), &n),
	                 MT_OK);
	memcpy(out + n, msg.b, msg.n);
	assert_bytes(out, n + msg.n, &want);
}

static void test_message_roundtrip(void **state)
{
	(void)state;
	static struct mt_obs obs[MT_OBS_MAX];
	struct mt_message m;
	struct bytes msg;
	uint8_t out[4096];
	size_t n;
	const char *why = NULL;
	const char *names[] = {"message", "alert_message"};
	for (size_t i = 0; i < 2; i++) {
		hexval(names[i], &msg);
		assert_int_equal(mt_message_decode(msg.b, msg.n, &m, obs, MT_OBS_MAX, &why), MT_OK);
		assert_string_equal(m.dev, dev());
		assert_int_equal(mt_message_encode(&m, out, sizeof(out), &n), MT_OK);
		assert_bytes(out, n, &msg);
	}
	/* The typ-1 vector: 97 as an int, 36.6 as float64, 36.5 as float16. */
	hexval("message", &msg);
	assert_int_equal(mt_message_decode(msg.b, msg.n, &m, obs, MT_OBS_MAX, &why), MT_OK);
	assert_int_equal(m.typ, MT_TYP_VITALS);
	assert_int_equal(m.n_obs, 3);
	assert_int_equal(obs[0].value.kind, MT_NUM_UINT);
	assert_int_equal(obs[0].value.u, 97);
	assert_int_equal(obs[1].value.kind, MT_NUM_FLOAT);
	assert_true(obs[1].value.f == 36.6);
	assert_true(obs[2].value.f == 36.5);
}

static void test_waveform(void **state)
{
	(void)state;
	json_t *arr = json_object_get(mt_test_mtp1, "waveform_samples");
	int32_t s[16];
	size_t n = json_array_size(arr), len, back_n;
	uint8_t out[64];
	int32_t back[16];
	struct bytes want;
	assert_true(n > 0 && n <= 16);
	for (size_t i = 0; i < n; i++)
		s[i] = (int32_t)json_integer_value(json_array_get(arr, i));
	hexval("waveform_bstr", &want);
	assert_int_equal(mt_waveform_encode(s, n, out, sizeof(out), &len), MT_OK);
	assert_bytes(out, len, &want);
	assert_int_equal(mt_waveform_decode(want.b, want.n, back, 16, &back_n), MT_OK);
	assert_int_equal(back_n, n);
	assert_memory_equal(back, s, n * sizeof(int32_t));
}

/* A lookup serving the vector device: registered key, epoch 7, data key. */
struct fixture {
	struct mt_pubkey *ldev;
	uint8_t k[32];
	struct mt_replay window;
};

static enum mt_err data_key(void *ctx, uint32_t ep, uint8_t key[MT_KEY_LEN])
{
	struct fixture *f = ctx;
	if (ep != epoch())
		return MT_ERR_NOT_FOUND;
	memcpy(key, f->k, MT_KEY_LEN);
	return MT_OK;
}

static enum mt_err lookup(void *ctx, const char *d, size_t n, struct mt_device_view *v)
{
	struct fixture *f = ctx;
	if (n != strlen(dev()) || memcmp(d, dev(), n) != 0)
		return MT_ERR_NOT_FOUND;
	v->status = MT_VIEW_ACTIVE;
	v->check_status = true;
	v->ldev = f->ldev;
	v->check_epoch = true;
	v->epoch = epoch();
	v->data_key = data_key;
	v->data_key_ctx = f;
	v->window = &f->window;
	return MT_OK;
}

static void seal_and_compare(const char *msg_name, const char *ldev_name,
                             enum mt_key_type type, bool fast, const char *want_name)
{
	static struct mt_obs obs[MT_OBS_MAX];
	struct mt_message m;
	struct bytes msg, iv, want, kbytes;
	struct mt_key *ldev = ldev_name ? import(ldev_name, type, MT_KEY_ROLE_SIGN) : NULL;
	struct mt_aead *aead;
	uint8_t out[MT_PACKET_MAX];
	size_t n;
	hexval(msg_name, &msg);
	hexval("iv", &iv);
	hexval("data_key", &kbytes);
	assert_int_equal(mt_message_decode(msg.b, msg.n, &m, obs, MT_OBS_MAX, NULL), MT_OK);
	assert_int_equal(mt_aead_new(&aead), MT_OK);
	struct mt_seal_params sp = {.dev = dev(), .dev_len = strlen(dev()), .epoch = epoch(),
	                            .data_key = kbytes.b, .ldev = ldev, .fast = fast,
	                            .iv = iv.b, .aead = aead};
	assert_int_equal(mt_packet_seal(&sp, &m, out, sizeof(out), &n), MT_OK);
	if (want_name) {
		hexval(want_name, &want);
		assert_bytes(out, n, &want);
	}

	/* Whatever was sealed opens, as the same message, exactly once. */
	struct fixture f = {.ldev = NULL};
	struct mt_opener *o;
	struct mt_open_result r;
	memcpy(f.k, kbytes.b, 32);
	mt_replay_init(&f.window);
	f.ldev = ldev ? (struct mt_pubkey *)mt_key_public(ldev) : pub("ldev_p256_spki");
	assert_int_equal(mt_opener_new(&o), MT_OK);
	struct mt_open_params op = {.dev = dev(), .dev_len = strlen(dev()),
	                            .topic = fast ? MT_TOPIC_ALERT : MT_TOPIC_VITALS,
	                            .lookup = lookup, .lookup_ctx = &f};
	assert_int_equal(mt_packet_open(o, &op, out, n, &r), MT_OK);
	assert_int_equal(r.kind, fast ? MT_PACKET_FAST : MT_PACKET_SEALED);
	assert_int_equal(r.epoch, epoch());
	uint8_t re[4096];
	size_t re_n;
	assert_int_equal(mt_message_encode(&r.msg, re, sizeof(re), &re_n), MT_OK);
	assert_bytes(re, re_n, &msg);
	assert_int_equal(mt_packet_open(o, &op, out, n, &r), MT_ERR_PKT_DUPLICATE);
	mt_opener_free(o);
	if (!ldev)
		mt_pubkey_free(f.ldev);
	mt_key_free(ldev);
	mt_aead_free(aead);
}

static void test_sealed_eddsa_packet(void **state)
{
	(void)state;
	seal_and_compare("message", "ldev_ed25519_seed", MT_KEY_ED25519, false,
	                 "sealed_eddsa_packet");
}

static void test_sealed_es256_packet(void **state)
{
	(void)state;
	seal_and_compare("message", "ldev_p256_d", MT_KEY_P256, false, NULL);
}

static void test_fast_packet(void **state)
{
	(void)state;
	seal_and_compare("alert_message", NULL, MT_KEY_NONE, true, "fast_packet");
}

/* The vector sealed packet opens (with the vector's own public key). */
static void test_open_vector_packet(void **state)
{
	(void)state;
	struct fixture f;
	struct bytes pkt, k;
	struct mt_opener *o;
	struct mt_open_result r;
	hexval("data_key", &k);
	memcpy(f.k, k.b, 32);
	mt_replay_init(&f.window);
	f.ldev = pub("ldev_ed25519_spki");
	hexval("sealed_eddsa_packet", &pkt);
	assert_int_equal(mt_opener_new(&o), MT_OK);
	struct mt_open_params op = {.dev = dev(), .dev_len = strlen(dev()),
	                            .topic = MT_TOPIC_VITALS, .lookup = lookup, .lookup_ctx = &f};
	assert_int_equal(mt_packet_open(o, &op, pkt.b, pkt.n, &r), MT_OK);
	assert_int_equal(r.msg.ctr, 42);
	assert_int_equal(r.msg.n_obs, 3);
	mt_opener_free(o);
	mt_pubkey_free(f.ldev);
}

static void test_receipt(void **state)
{
	(void)state;
	struct bytes pkt, rk, iv;
	struct mt_aead *aead;
	uint8_t scratch[1024], out[1024];
	uint64_t ranges[MT_RECEIPT_MAX_RANGES][2];
	struct mt_receipt r;
	uint32_t ep;
	size_t n;
	hexval("receipt_packet", &pkt);
	hexval("receipt_key", &rk);
	hexval("iv", &iv);
	assert_int_equal(mt_aead_new(&aead), MT_OK);
	assert_int_equal(mt_packet_epoch(pkt.b, pkt.n, &ep), MT_OK);
	assert_int_equal(ep, epoch());
	assert_int_equal(mt_receipt_open(aead, rk.b, dev(), strlen(dev()), pkt.b, pkt.n, scratch,
	                                 sizeof(scratch), ranges, MT_RECEIPT_MAX_RANGES, &r),
	                 MT_OK);
	assert_true(r.n_ranges >= 1);
	/* Re-sealing the same receipt with the same IV gives the same bytes. */
	char devcopy[MT_DEVICE_ID_MAX + 1];
	memcpy(devcopy, r.dev, r.dev_len);
	devcopy[r.dev_len] = '\0';
	r.dev = devcopy;
	assert_int_equal(mt_receipt_seal(aead, rk.b, ep, iv.b, &r, out, sizeof(out), &n), MT_OK);
	assert_bytes(out, n, &pkt);
	/* Under another device's name it does not open. */
	assert_int_equal(mt_receipt_open(aead, rk.b, "dev-2", 5, pkt.b, pkt.n, scratch,
	                                 sizeof(scratch), ranges, MT_RECEIPT_MAX_RANGES, &r),
	                 MT_ERR_PKT_AEAD);
	mt_aead_free(aead);
}

int main(void)
{
	if (!mt_test_vector_exists("mtp1/vectors.json")) {
		const char *dir = getenv("MT_VECTORS_DIR");
		printf("skipped: MTP/1 vectors not found (MT_VECTORS_DIR=%s)\n", dir ? dir : "");
		return MT_TEST_SKIP;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kids),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_structures),
		cmocka_unit_test(test_message_roundtrip),
		cmocka_unit_test(test_waveform),
		cmocka_unit_test(test_sealed_eddsa_packet),
		cmocka_unit_test(test_sealed_es256_packet),
		cmocka_unit_test(test_fast_packet),
		cmocka_unit_test(test_open_vector_packet),
		cmocka_unit_test(test_receipt),
	};
	return cmocka_run_group_tests_name("mtp1_vectors", tests, mt_test_mtp1_setup,
	                                   mt_test_mtp1_teardown);
}
