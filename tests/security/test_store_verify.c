/*
 * test_store_verify.c — re-verifying stored readings (mt_verify.h, the
 * logic of `medtrust verify-record`; threat J05: "DBA edits a stored
 * reading → re-verification of the stored device signature fails").
 *
 * The fixture is a whole hub in miniature, made with the library alone:
 * an operator CA, a manufacturer root and its manifest signer, a registry
 * that imported the manifest and recorded an operational certificate for
 * each device (dev-1 P-256, dev-2 Ed25519, dev-3 P-256, dev-4 P-256 with a
 * certificate of a foreign CA), and a store under a KEK in SoftHSM2.  Each
 * reading stored is a real COSE_Sign1 by the device's key over a real
 * message, exactly as the hub's ingest keeps it.
 *
 * Each test stores what an attacker or a fault would leave behind and
 * checks the verdict names the right check: a good reading of either
 * algorithm passes; an edited ciphertext is tampered; a Sign1 with one
 * signature byte changed (and then properly re-encrypted, as someone
 * holding the data key could) fails the signature; another device's
 * certificate, a foreign kid, an algorithm the key does not have, a message
 * that is not the row, a certificate the registry never issued, one of
 * another CA, one expired or not yet valid at receipt, one revoked before
 * receipt — each fails with its own verdict; one revoked after receipt
 * does not.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "medtrust/mt_cose.h"
#include "medtrust/mt_manifest.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_pki.h"
#include "medtrust/mt_registry.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_verify.h"
#include "mt_softhsm.h"

#define NDEV 4

static struct mt_softhsm hsm;
static struct mt_kek *kek;
static char tmpdir[256], db[320], regdb[320];
static struct mt_registry *reg;
static struct mt_store *store;
static struct mt_key *ca_key, *foreign_key, *stranger;
static struct mt_cert *ca_cert, *foreign_cert;
static int64_t now;

static const char *const dev_id[NDEV] = {"dev-1", "dev-2", "dev-3", "dev-4"};
static struct mt_key *dev_key[NDEV];
static struct mt_cert *dev_cert[NDEV];
static char dev_serial[NDEV][MT_REG_CERT_SERIAL_MAX];

static struct mt_key *p256(void)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	BIGNUM *d = NULL;
	uint8_t raw[32];
	struct mt_key *k = NULL;

	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
	assert_int_equal(BN_bn2binpad(d, raw, 32), 32);
	BN_clear_free(d);
	EVP_PKEY_free(pk);
	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, raw, 32, &k), MT_OK);
	mt_wipe(raw, sizeof raw);
	return k;
}

static struct mt_key *ed25519(void)
{
	uint8_t seed[32];
	struct mt_key *k = NULL;

	assert_int_equal(mt_random(seed, sizeof seed), MT_OK);
	assert_int_equal(mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, seed, 32, &k), MT_OK);
	mt_wipe(seed, sizeof seed);
	return k;
}

static struct mt_cert *self_signed_ca(struct mt_key *k, const char *subject)
{
	struct mt_pki_ca_opts o = {0};
	struct mt_cert *c = NULL;

	o.subject = subject;
	o.path_len = -1;
	o.not_before = now - 3600; /* valid at `now` even if a second ticks meanwhile */
	assert_int_equal(mt_pki_ca_create(k, &o, &c), MT_OK);
	return c;
}

static struct mt_cert *operational(struct mt_key *issuer, struct mt_cert *issuer_cert,
                                   struct mt_key *k, const char *id)
{
	struct mt_pki_leaf leaf = {0};
	struct mt_cert *c = NULL;

	leaf.profile = MT_PKI_OPERATIONAL;
	leaf.id = id;
	leaf.not_before = now - 3600;
	assert_int_equal(mt_pki_issue(issuer, issuer_cert, mt_key_public(k), &leaf, &c), MT_OK);
	return c;
}

/* Trust a manufacturer, import a manifest of dev-1..dev-4, enrol each. */
static void make_registry(void)
{
	struct mt_key *root_key = p256(), *signer_key = p256();
	struct mt_cert *root = self_signed_ca(root_key, "CN=Verify Medical root");
	struct mt_pki_leaf leaf = {0};
	struct mt_cert *signer = NULL;
	struct mt_manifest_entry e[NDEV];
	struct mt_registry_import res;
	const uint8_t *chain[1];
	size_t chain_len[1];
	uint8_t *man = NULL;
	size_t man_len = 0;
	int64_t mfg = 0;
	bool existed = true;
	char why[256];

	leaf.profile = MT_PKI_SIGNER;
	leaf.subject = "CN=Verify Medical manifest signer";
	leaf.not_before = now - 3600;
	assert_int_equal(mt_pki_issue(root_key, root, mt_key_public(signer_key), &leaf, &signer),
	                 MT_OK);
	for (int i = 0; i < NDEV; i++) {
		memset(&e[i], 0, sizeof e[i]);
		snprintf(e[i].serial, sizeof e[i].serial, "%s", dev_id[i]);
		snprintf(e[i].device_class, sizeof e[i].device_class, "%s", "monitor");
		memset(e[i].birth_kid, 0x10 + i, MT_KID_LEN);
		memset(e[i].birth_cert_sha256, 0x20 + i, 32);
	}
	chain[0] = mt_cert_der(signer, &chain_len[0]);
	assert_int_equal(mt_manifest_sign(signer_key, chain, chain_len, 1, e, NDEV, &man, &man_len),
	                 MT_OK);
	assert_int_equal(mt_registry_open(regdb, &reg), MT_OK);
	assert_int_equal(mt_registry_add_manufacturer(reg, root, now, &mfg, &existed), MT_OK);
	assert_false(existed);
	assert_int_equal(mt_registry_import_manifest(reg, man, man_len, now, &res, why, sizeof why),
	                 MT_OK);
	assert_int_equal(res.added, NDEV);
	free(man);
	mt_cert_free(signer);
	mt_cert_free(root);
	mt_key_free(signer_key);
	mt_key_free(root_key);

	for (int i = 0; i < NDEV; i++) {
		uint8_t spki[MT_SPKI_MAX];
		size_t spki_len = 0;

		dev_key[i] = i == 1 ? ed25519() : p256();
		dev_cert[i] = i == 3 ? operational(foreign_key, foreign_cert, dev_key[i], dev_id[i])
		                     : operational(ca_key, ca_cert, dev_key[i], dev_id[i]);
		assert_int_equal(mt_pubkey_spki(mt_key_public(dev_key[i]), spki, sizeof spki, &spki_len),
		                 MT_OK);
		assert_int_equal(mt_registry_enrolled(reg, dev_id[i], dev_cert[i], spki, spki_len,
		                                      false, now, NULL),
		                 MT_OK);
		assert_int_equal(mt_registry_cert_serial_hex(dev_cert[i], dev_serial[i]), MT_OK);
	}
}

static int setup(void **state)
{
	char uri[512];

	(void)state;
	if (mt_softhsm_init(&hsm, "verify-test", "1234", "5678") != 0)
		return -1;
	if (mt_softhsm_uri(&hsm, "kek", NULL, uri, sizeof uri) != 0 ||
	    mt_key_generate_kek(uri) != MT_OK || mt_kek_open(uri, &kek) != MT_OK)
		return -1;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mt-verify-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(db, sizeof db, "%s/data.db", tmpdir);
	snprintf(regdb, sizeof regdb, "%s/medtrust.db", tmpdir);
	now = (int64_t)time(NULL);
	ca_key = p256();
	ca_cert = self_signed_ca(ca_key, "CN=Test medtrust operator CA");
	foreign_key = p256();
	foreign_cert = self_signed_ca(foreign_key, "CN=Test medtrust operator CA");
	stranger = p256();
	make_registry();
	return mt_store_open(db, kek, &store) == MT_OK ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[400];

	(void)state;
	mt_store_close(store);
	mt_registry_close(reg);
	for (int i = 0; i < NDEV; i++) {
		mt_key_free(dev_key[i]);
		mt_cert_free(dev_cert[i]);
	}
	mt_key_free(ca_key);
	mt_key_free(foreign_key);
	mt_key_free(stranger);
	mt_cert_free(ca_cert);
	mt_cert_free(foreign_cert);
	mt_kek_free(kek);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return -1;
	return mt_softhsm_cleanup(&hsm);
}

/* ---- making readings ----------------------------------------------------- */

static uint64_t next_ctr = 1;

/* A status message of `dev` (typ 3, battery 80) with counter and ts. */
static size_t message(const char *dev, uint64_t ctr, uint64_t ts, uint8_t *out, size_t cap)
{
	struct mt_message m;
	size_t len = 0;

	memset(&m, 0, sizeof m);
	snprintf(m.dev, sizeof m.dev, "%s", dev);
	m.dev_len = strlen(dev);
	m.ctr = ctr;
	m.ts = ts;
	m.typ = MT_TYP_STATUS;
	m.has = MT_MSG_ST;
	m.st.has = MT_ST_BATTERY;
	m.st.battery = 80;
	assert_int_equal(mt_message_encode(&m, out, cap, &len), MT_OK);
	return len;
}

/* A tagged Sign1 over msg by `k`, with `kid_of`'s kid in the header. */
static size_t sign1(struct mt_key *k, struct mt_key *kid_of, const uint8_t *msg, size_t msg_len,
                    uint8_t *out, size_t cap)
{
	int64_t alg = mt_key_type(k) == MT_KEY_ED25519 ? MT_COSE_ALG_EDDSA : MT_COSE_ALG_ES256;
	size_t len = 0;

	assert_int_equal(mt_cose_sign1_sign(k, alg, mt_pubkey_kid(mt_key_public(kid_of)), MT_KID_LEN,
	                                    msg, msg_len, NULL, 0, out, cap, &len),
	                 MT_OK);
	return len;
}

/* Store `s1` as a reading of row_dev (counter ctr, ts) under cert serial,
 * received at `received_s`; returns its id. */
static int64_t store_row(const char *row_dev, uint64_t ctr, uint64_t ts, const char *serial,
                         int64_t received_s, const uint8_t *s1, size_t s1_len)
{
	struct mt_store_reading r = {0};
	int64_t id = 0;

	r.dev = row_dev;
	r.ctr = ctr;
	r.epoch = 1;
	r.typ = MT_TYP_STATUS;
	r.ts_ms = ts;
	r.received_ms = (uint64_t)received_s * 1000u;
	r.cert_serial = serial;
	r.sign1 = s1;
	r.sign1_len = s1_len;
	assert_int_equal(mt_store_begin(store), MT_OK);
	assert_int_equal(mt_store_reading_put(store, &r, &id), MT_OK);
	assert_int_equal(mt_store_commit(store), MT_OK);
	return id;
}

/* The common case: device i signs its own message, stored honestly. */
static int64_t good_row(int i, int64_t received_s)
{
	uint8_t msg[256], s1[512];
	uint64_t ctr = next_ctr++, ts = (uint64_t)received_s * 1000u - 20;
	size_t ml = message(dev_id[i], ctr, ts, msg, sizeof msg);
	size_t sl = sign1(dev_key[i], dev_key[i], msg, ml, s1, sizeof s1);

	return store_row(dev_id[i], ctr, ts, dev_serial[i], received_s, s1, sl);
}

static enum mt_err verdict_of(int64_t id, const struct mt_cert *ca)
{
	enum mt_err v = MT_ERR_INTERNAL;
	char why[256] = "";

	assert_int_equal(mt_verify_reading(store, reg, ca, id, &v, why, sizeof why), MT_OK);
	if (v != MT_OK)
		assert_true(why[0] != '\0'); /* a failure says why */
	else
		assert_string_equal(why, "");
	return v;
}

/* ---- the tests ------------------------------------------------------------ */

static void J05_good_records_verify(void **state)
{
	(void)state;
	assert_int_equal(verdict_of(good_row(0, now + 60), ca_cert), MT_OK); /* ES256 */
	assert_int_equal(verdict_of(good_row(1, now + 60), ca_cert), MT_OK); /* EdDSA */
	assert_int_equal(verdict_of(good_row(2, now + 60), ca_cert), MT_OK);
	/* The same record against another CA of the same name: not trusted. */
	assert_int_equal(verdict_of(good_row(0, now + 60), foreign_cert), MT_ERR_PKI_UNTRUSTED);
	assert_int_equal(verdict_of(999999, ca_cert), MT_ERR_NOT_FOUND);
}

static void J05_altered_ct_is_tampered(void **state)
{
	int64_t id = good_row(0, now + 60);
	sqlite3 *h = NULL;
	char sql[200];

	(void)state;
	assert_int_equal(verdict_of(id, ca_cert), MT_OK);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	snprintf(sql, sizeof sql,
	         "UPDATE readings SET ct = substr(ct, 1, 20) || x'00' || substr(ct, 22)"
	         " WHERE id = %lld",
	         (long long)id);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(verdict_of(id, ca_cert), MT_ERR_STORE_TAMPERED);
}

/* Someone with the data key re-encrypts a Sign1 whose signature was
 * changed: the row decrypts, the device's signature does not verify. */
static void J05_changed_signature_fails(void **state)
{
	uint8_t msg[256], s1[512];
	uint64_t ctr = next_ctr++, ts = (uint64_t)(now + 60) * 1000u;
	size_t ml = message("dev-1", ctr, ts, msg, sizeof msg);
	size_t sl = sign1(dev_key[0], dev_key[0], msg, ml, s1, sizeof s1);

	(void)state;
	s1[sl - 1] ^= 0x01;
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[0], now + 60, s1, sl),
	                            ca_cert),
	                 MT_ERR_PKT_SIGNATURE);
	/* The payload changed under the same signature (a splice) fails too:
	 * the last byte of the message is the battery level, 80 -> 81. */
	ctr = next_ctr++;
	ml = message("dev-1", ctr, ts, msg, sizeof msg);
	sl = sign1(dev_key[0], dev_key[0], msg, ml, s1, sizeof s1);
	{
		size_t at = sl - 2 - MT_SIG_LEN - 1; /* before 58 40 <signature> */

		assert_int_equal(s1[at], 80);
		s1[at] = 81;
	}
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[0], now + 60, s1, sl),
	                            ca_cert),
	                 MT_ERR_PKT_SIGNATURE);
}

static void J05_certificate_of_another_device_fails(void **state)
{
	uint8_t msg[256], s1[512];
	uint64_t ctr = next_ctr++, ts = (uint64_t)(now + 60) * 1000u;
	size_t ml = message("dev-1", ctr, ts, msg, sizeof msg);
	size_t sl = sign1(dev_key[0], dev_key[0], msg, ml, s1, sizeof s1);

	(void)state;
	/* dev-1's reading filed under dev-3's certificate. */
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[2], now + 60, s1, sl),
	                            ca_cert),
	                 MT_ERR_PKT_DEV);
	/* dev-3's key signing a message claiming dev-1, filed as dev-1's. */
	ctr = next_ctr++;
	ml = message("dev-1", ctr, ts, msg, sizeof msg);
	sl = sign1(dev_key[2], dev_key[2], msg, ml, s1, sizeof s1);
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[0], now + 60, s1, sl),
	                            ca_cert),
	                 MT_ERR_PKT_KID);
	/* ... or with dev-1's kid in the header: the signature fails. */
	ctr = next_ctr++;
	ml = message("dev-1", ctr, ts, msg, sizeof msg);
	sl = sign1(stranger, dev_key[0], msg, ml, s1, sizeof s1);
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[0], now + 60, s1, sl),
	                            ca_cert),
	                 MT_ERR_PKT_SIGNATURE);
	/* An EdDSA Sign1 on a P-256 device: the algorithm is the key's. */
	ctr = next_ctr++;
	ml = message("dev-1", ctr, ts, msg, sizeof msg);
	sl = sign1(dev_key[1], dev_key[1], msg, ml, s1, sizeof s1);
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[0], now + 60, s1, sl),
	                            ca_cert),
	                 MT_ERR_PKT_ALG);
}

static void J05_message_must_be_the_row(void **state)
{
	uint8_t msg[256], s1[512];
	uint64_t ctr = next_ctr++, ts = (uint64_t)(now + 60) * 1000u;
	size_t ml, sl;

	(void)state;
	/* Signed counter differs from the row's. */
	ml = message("dev-1", ctr + 1000, ts, msg, sizeof msg);
	sl = sign1(dev_key[0], dev_key[0], msg, ml, s1, sizeof s1);
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[0], now + 60, s1, sl),
	                            ca_cert),
	                 MT_ERR_PKT_MESSAGE);
	/* Signed time differs. */
	ctr = next_ctr++;
	ml = message("dev-1", ctr, ts - 3600000, msg, sizeof msg);
	sl = sign1(dev_key[0], dev_key[0], msg, ml, s1, sizeof s1);
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[0], now + 60, s1, sl),
	                            ca_cert),
	                 MT_ERR_PKT_MESSAGE);
	/* A payload that is not a message at all, properly signed. */
	ctr = next_ctr++;
	{
		static const uint8_t junk[] = {0xa1, 0x63, 'f', 'o', 'o', 0x01};

		sl = sign1(dev_key[0], dev_key[0], junk, sizeof junk, s1, sizeof s1);
	}
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[0], now + 60, s1, sl),
	                            ca_cert),
	                 MT_ERR_PKT_MESSAGE);
	/* Not a tagged Sign1 (the tag stripped). */
	ctr = next_ctr++;
	ml = message("dev-1", ctr, ts, msg, sizeof msg);
	sl = sign1(dev_key[0], dev_key[0], msg, ml, s1, sizeof s1);
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, dev_serial[0], now + 60, s1 + 1,
	                                      sl - 1),
	                            ca_cert),
	                 MT_ERR_PKT_INNER);
}

static void J05_certificate_must_be_valid_at_receipt(void **state)
{
	int64_t nb = 0, na = 0;
	uint8_t msg[256], s1[512];
	uint64_t ctr = next_ctr++, ts = (uint64_t)(now + 60) * 1000u;
	size_t ml = message("dev-1", ctr, ts, msg, sizeof msg);
	size_t sl = sign1(dev_key[0], dev_key[0], msg, ml, s1, sizeof s1);
	size_t n = 0;

	(void)state;
	/* A serial the registry never issued. */
	assert_int_equal(verdict_of(store_row("dev-1", ctr, ts, "7777", now + 60, s1, sl), ca_cert),
	                 MT_ERR_PKI_UNTRUSTED);
	/* dev-4's certificate is of another CA. */
	assert_int_equal(verdict_of(good_row(3, now + 60), ca_cert), MT_ERR_PKI_UNTRUSTED);
	/* Received after the certificate expired, or before it began. */
	assert_int_equal(mt_cert_validity(dev_cert[0], &nb, &na), MT_OK);
	assert_int_equal(verdict_of(good_row(0, na + 86400), ca_cert), MT_ERR_PKI_EXPIRED);
	assert_int_equal(verdict_of(good_row(0, nb - 86400), ca_cert), MT_ERR_PKI_NOT_YET_VALID);
	/* Revoked after receipt: still evidence.  Revoked before: not. */
	assert_int_equal(mt_registry_revoke(reg, "dev-3", MT_PKI_REASON_KEY_COMPROMISE, now + 100, &n),
	                 MT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(verdict_of(good_row(2, now + 60), ca_cert), MT_OK);
	assert_int_equal(verdict_of(good_row(2, now + 200), ca_cert), MT_ERR_PKI_REVOKED);
}

static void verify_refuses_bad_calls(void **state)
{
	enum mt_err v = MT_OK;
	struct mt_store *ro = NULL;

	(void)state;
	assert_int_equal(mt_verify_reading(NULL, reg, ca_cert, 1, &v, NULL, 0), MT_ERR_ARG);
	assert_int_equal(mt_verify_reading(store, reg, ca_cert, 1, NULL, NULL, 0), MT_ERR_ARG);
	/* A store without the KEK cannot reach a verdict. */
	assert_int_equal(mt_store_open(db, NULL, &ro), MT_OK);
	assert_int_equal(mt_verify_reading(ro, reg, ca_cert, good_row(0, now + 60), &v, NULL, 0),
	                 MT_ERR_ARG);
	mt_store_close(ro);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(J05_good_records_verify),
	        cmocka_unit_test(J05_altered_ct_is_tampered),
	        cmocka_unit_test(J05_changed_signature_fails),
	        cmocka_unit_test(J05_certificate_of_another_device_fails),
	        cmocka_unit_test(J05_message_must_be_the_row),
	        cmocka_unit_test(J05_certificate_must_be_valid_at_receipt),
	        cmocka_unit_test(verify_refuses_bad_calls),
	};

	if (!mt_softhsm_available())
		return 77;
	return cmocka_run_group_tests(tests, setup, teardown);
}
