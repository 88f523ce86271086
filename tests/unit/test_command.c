/*
 * test_command.c — downlink commands (mt_command.h; protocol §6).
 *
 * What is proved:
 *   - a rotate-epoch command signed with the command key opens on the
 *     device with every field intact; its payload is the exact
 *     deterministic CBOR of §6 and its header the exact bytes
 *     d2 84 43 a10126 a1 04 48 <kid>; a command with other args (reboot {},
 *     set-config with a map) round-trips too;
 *   - the device refuses, each with the code that names the check and in
 *     the protocol's order: a command signed by another key (its own kid:
 *     MT_ERR_CMD_KID; the pinned kid over another key's signature, or a
 *     payload altered after signing: MT_ERR_CMD_SIGNATURE), a command for
 *     another device (MT_ERR_CMD_DEVICE), a counter not above the last one
 *     accepted — equal or lower (MT_ERR_CMD_REPLAY), a ts more than 300 s
 *     either side of the device's clock (MT_ERR_CMD_STALE; exactly 300 s
 *     passes);
 *   - garbage never opens: empty input, every truncation and every
 *     single-byte change of a good command, untagged or EdDSA commands, an
 *     extra header label, seeded random bytes; validly signed payloads
 *     that break the schema (a key missing or extra, keys out of order, an
 *     epoch over 2^32 − 1, extra rotate args, an unknown command, args not a
 *     map, a counter ≥ 2^63) are MT_ERR_CMD_PAYLOAD;
 *   - the encoder refuses what it must not sign (bad device id, unknown
 *     command, args that are not one strict map).
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_command.h"
#include "medtrust/mt_cose.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "mt_testutil.h"

#define DEV "dev-1"
#define NOW UINT64_C(1733222400000)
#define CMD_D "9d8b60562b657c527ed152c8df12959d410ab9d3ac5c5fc610c5ab68c9811b9a"
#define OTHER_D "08407d9a4f7cd61da29518e67ec1d25a7ec131531cd565172fa9f0f4e38da125"
#define ED_SEED "41777f260c55b026d93597915b3b85e31c20ce4c80dfe71085566280e5d1d581"

static struct mt_key *cmd_key, *other_key, *ed_key;

static struct mt_key *import(enum mt_key_type t, const char *hex)
{
	uint8_t raw[32];
	struct mt_key *k = NULL;

	mt_test_unhex_exact(hex, raw, sizeof raw);
	assert_int_equal(mt_key_import_raw(t, MT_KEY_ROLE_SIGN, raw, sizeof raw, &k), MT_OK);
	mt_wipe(raw, sizeof raw);
	return k;
}

static int setup(void **state)
{
	(void)state;
	cmd_key = import(MT_KEY_P256, CMD_D);
	other_key = import(MT_KEY_P256, OTHER_D);
	ed_key = import(MT_KEY_ED25519, ED_SEED);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	mt_key_free(cmd_key);
	mt_key_free(other_key);
	mt_key_free(ed_key);
	return 0;
}

static struct mt_command rotate(uint64_t ctr, uint64_t ts, uint32_t epoch, const char *dev)
{
	struct mt_command c;

	memset(&c, 0, sizeof c);
	(void)snprintf(c.dev, sizeof c.dev, "%s", dev);
	c.dev_len = strlen(dev);
	c.ctr = ctr;
	c.ts = ts;
	c.cmd = MT_CMD_ROTATE_EPOCH;
	c.new_epoch = epoch;
	return c;
}

static struct mt_command_check check(bool has_last, uint64_t last)
{
	struct mt_command_check k = {
	        .key = mt_key_public(cmd_key), .dev = DEV, .dev_len = strlen(DEV),
	        .has_last = has_last, .last_ctr = last, .now_ms = NOW,
	};
	return k;
}

static size_t sign(struct mt_key *key, const struct mt_command *c, uint8_t *out, size_t cap)
{
	size_t n = 0;

	assert_int_equal(mt_command_sign(key, c, out, cap, &n), MT_OK);
	return n;
}

/* A tagged ES256 Sign1 of `payload` by `key` with kid `kid` (any bytes). */
static size_t sign_raw(struct mt_key *key, const uint8_t *kid, const uint8_t *payload,
                       size_t plen, uint8_t *out, size_t cap)
{
	size_t n = 0;

	assert_int_equal(mt_cose_sign1_sign(key, MT_COSE_ALG_ES256, kid, MT_KID_LEN, payload, plen,
	                                    NULL, 0, out, cap, &n),
	                 MT_OK);
	return n;
}

/* ---- round trips ------------------------------------------------------------ */

static void test_rotate_roundtrip(void **state)
{
	(void)state;
	struct mt_command c = rotate(7, NOW, 8, DEV), got;
	struct mt_command_check k = check(true, 6);
	uint8_t buf[512], payload[128], want[128];
	size_t n = sign(cmd_key, &c, buf, sizeof buf), pn = 0;
	const uint8_t head[] = {0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa1, 0x04, 0x48};
	/* {1: "dev-1", 2: 7, 3: 1733222400000, 4: 2, 5: {1: 8}} */
	size_t wn = mt_test_unhex("a5 01 65 6465762d31 02 07 03 1b 000001938c1b0000 04 02 05 a1 01 08",
	                          want, sizeof want);

	assert_int_equal(mt_command_encode(&c, payload, sizeof payload, &pn), MT_OK);
	assert_int_equal(pn, wn);
	assert_memory_equal(payload, want, wn);
	assert_memory_equal(buf, head, sizeof head);
	assert_memory_equal(buf + sizeof head, mt_pubkey_kid(mt_key_public(cmd_key)), MT_KID_LEN);

	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_OK);
	assert_string_equal(got.dev, DEV);
	assert_int_equal(got.dev_len, 5);
	assert_int_equal(got.ctr, 7);
	assert_int_equal(got.ts, NOW);
	assert_int_equal(got.cmd, MT_CMD_ROTATE_EPOCH);
	assert_int_equal(got.new_epoch, 8);
	assert_int_equal(got.args_len, 3);
	assert_memory_equal(got.args, "\xa1\x01\x08", 3);
	/* the first command a device ever sees: any counter, 0 included */
	c = rotate(0, NOW, UINT32_MAX, DEV);
	n = sign(cmd_key, &c, buf, sizeof buf);
	k = check(false, 0);
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_OK);
	assert_int_equal(got.new_epoch, UINT32_MAX);
	assert_string_equal(mt_command_name(MT_CMD_ROTATE_EPOCH), "rotate-epoch");
	assert_string_equal(mt_command_name(99), "?");
}

static void test_other_commands_roundtrip(void **state)
{
	(void)state;
	struct mt_command c = rotate(9, NOW, 0, DEV), got;
	struct mt_command_check k = check(true, 8);
	const uint8_t cfg[] = {0xa1, 0x01, 0xa1, 0x61, 'x', 0x01}; /* {1: {"x": 1}} */
	uint8_t buf[512];
	size_t n;

	c.cmd = MT_CMD_REBOOT; /* args NULL: {} */
	n = sign(cmd_key, &c, buf, sizeof buf);
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_OK);
	assert_int_equal(got.cmd, MT_CMD_REBOOT);
	assert_int_equal(got.args_len, 1);
	assert_int_equal(got.args[0], 0xa0);
	c.cmd = MT_CMD_SET_CONFIG;
	c.args = cfg;
	c.args_len = sizeof cfg;
	n = sign(cmd_key, &c, buf, sizeof buf);
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_OK);
	assert_int_equal(got.args_len, sizeof cfg);
	assert_memory_equal(got.args, cfg, sizeof cfg);
}

/* ---- refusals of a well-formed command ----------------------------------------- */

static void test_forged(void **state)
{
	(void)state;
	struct mt_command c = rotate(7, NOW, 8, DEV), got;
	struct mt_command_check k = check(true, 6);
	uint8_t buf[512], payload[128];
	size_t n, pn = 0;

	/* another key's command, with its own kid: no other key is tried */
	n = sign(other_key, &c, buf, sizeof buf);
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_KID);
	assert_int_equal(got.ctr, 0); /* nothing decoded */
	/* another key's signature under the pinned kid */
	assert_int_equal(mt_command_encode(&c, payload, sizeof payload, &pn), MT_OK);
	n = sign_raw(other_key, mt_pubkey_kid(mt_key_public(cmd_key)), payload, pn, buf,
	             sizeof buf);
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_SIGNATURE);
	/* the pinned key's command with its epoch changed after signing */
	n = sign(cmd_key, &c, buf, sizeof buf);
	assert_int_equal(buf[n - 64 - 2 - 1], 0x08); /* ... 05 a1 01 08 | 58 40 <sig> */
	buf[n - 64 - 2 - 1] = 0x09;
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_SIGNATURE);
	/* a signature out of range (all zero) */
	n = sign(cmd_key, &c, buf, sizeof buf);
	memset(buf + n - 64, 0, 64);
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_SIGNATURE);
}

static void test_other_device(void **state)
{
	(void)state;
	struct mt_command c = rotate(7, NOW, 8, "dev-2"), got;
	struct mt_command_check k = check(false, 0);
	uint8_t buf[512];
	size_t n = sign(cmd_key, &c, buf, sizeof buf);

	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_DEVICE);
	assert_string_equal(got.dev, "dev-2"); /* decoded, for the log */
	/* a prefix of the id, or the id and more, is another device too */
	c = rotate(7, NOW, 8, "dev-");
	n = sign(cmd_key, &c, buf, sizeof buf);
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_DEVICE);
	c = rotate(7, NOW, 8, "dev-10");
	n = sign(cmd_key, &c, buf, sizeof buf);
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_DEVICE);
}

static void test_replay(void **state)
{
	(void)state;
	struct mt_command c = rotate(7, NOW, 8, DEV), got;
	struct mt_command_check k;
	uint8_t buf[512];
	size_t n = sign(cmd_key, &c, buf, sizeof buf);

	k = check(true, 7); /* the same command again */
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_REPLAY);
	k = check(true, 100); /* an old one */
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_REPLAY);
	k = check(true, 6);
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_OK);
	/* a replay is refused before its age is looked at */
	k = check(true, 7);
	k.now_ms = NOW + 3600000;
	assert_int_equal(mt_command_open(&k, buf, n, &got), MT_ERR_CMD_REPLAY);
}

static void test_stale(void **state)
{
	(void)state;
	struct mt_command_check k = check(true, 6);
	struct mt_command c, got;
	uint8_t buf[512];
	size_t n;
	const struct {
		uint64_t ts;
		enum mt_err want;
	} cases[] = {
	        {NOW - MT_COMMAND_SKEW_MS, MT_OK},
	        {NOW + MT_COMMAND_SKEW_MS, MT_OK},
	        {NOW - MT_COMMAND_SKEW_MS - 1, MT_ERR_CMD_STALE},
	        {NOW + MT_COMMAND_SKEW_MS + 1, MT_ERR_CMD_STALE},
	        {0, MT_ERR_CMD_STALE},
	        {(UINT64_C(1) << 53) - 1, MT_ERR_CMD_STALE},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c = rotate(7, cases[i].ts, 8, DEV);
		n = sign(cmd_key, &c, buf, sizeof buf);
		assert_int_equal(mt_command_open(&k, buf, n, &got), cases[i].want);
	}
}

/* ---- garbage ------------------------------------------------------------------------ */

static void test_garbage(void **state)
{
	(void)state;
	struct mt_command c = rotate(7, NOW, 8, DEV), got;
	struct mt_command_check k = check(true, 6);
	uint8_t buf[512], bad[512], payload[128];
	size_t n = sign(cmd_key, &c, buf, sizeof buf), pn = 0, bn;
	uint64_t seed = 0x5eed0c0d;

	assert_int_equal(mt_command_open(&k, buf, 0, &got), MT_ERR_CMD_FORMAT);
	assert_int_equal(mt_command_open(&k, NULL, 0, &got), MT_ERR_CMD_FORMAT);
	/* every truncation, every byte changed (each bit pattern once per byte) */
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(mt_command_open(&k, buf, i, &got), MT_OK);
	for (size_t i = 0; i < n; i++) {
		memcpy(bad, buf, n);
		bad[i] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(mt_command_open(&k, bad, n, &got), MT_OK);
	}
	/* untagged: the same bytes without d2 */
	assert_int_equal(mt_command_open(&k, buf + 1, n - 1, &got), MT_ERR_CMD_FORMAT);
	/* trailing byte */
	memcpy(bad, buf, n);
	bad[n] = 0x00;
	assert_int_equal(mt_command_open(&k, bad, n + 1, &got), MT_ERR_CMD_FORMAT);
	/* EdDSA: the command key is ES256 */
	assert_int_equal(mt_command_encode(&c, payload, sizeof payload, &pn), MT_OK);
	assert_int_equal(mt_cose_sign1_sign(ed_key, MT_COSE_ALG_EDDSA,
	                                    mt_pubkey_kid(mt_key_public(cmd_key)), MT_KID_LEN,
	                                    payload, pn, NULL, 0, bad, sizeof bad, &bn),
	                 MT_OK);
	assert_int_equal(mt_command_open(&k, bad, bn, &got), MT_ERR_CMD_FORMAT);
	/* no kid */
	assert_int_equal(mt_cose_sign1_sign(cmd_key, MT_COSE_ALG_ES256, NULL, 0, payload, pn, NULL,
	                                    0, bad, sizeof bad, &bn),
	                 MT_OK);
	assert_int_equal(mt_command_open(&k, bad, bn, &got), MT_ERR_CMD_FORMAT);
	/* an extra unprotected label: {4: kid, 5: 12-byte iv} — rebuilt by hand */
	{
		struct mt_cbor_enc e;
		size_t off = 9 + MT_KID_LEN; /* d2 84 43 a10126 a1 04 48 kid */

		mt_cbor_enc_init(&e, bad, sizeof bad);
		mt_cbor_put_raw(&e, buf, 6);
		mt_cbor_put_map(&e, 2);
		mt_cbor_put_uint(&e, 4);
		mt_cbor_put_bstr(&e, buf + 9, MT_KID_LEN);
		mt_cbor_put_uint(&e, 5);
		mt_cbor_put_bstr(&e, (const uint8_t *)"123456789012", 12);
		mt_cbor_put_raw(&e, buf + off, n - off);
		assert_int_equal(mt_cbor_enc_finish(&e, &bn), MT_OK);
		assert_int_equal(mt_command_open(&k, bad, bn, &got), MT_ERR_CMD_FORMAT);
	}
	/* seeded random bytes, and random bytes behind a good header */
	for (int r = 0; r < 2000; r++) {
		size_t len = (size_t)(mt_test_xorshift64(&seed) % sizeof bad);
		size_t from = r % 2 ? 17 : 0;

		for (size_t i = 0; i < len; i++)
			bad[i] = (uint8_t)mt_test_xorshift64(&seed);
		if (from && len > from)
			memcpy(bad, buf, from);
		assert_int_not_equal(mt_command_open(&k, bad, len, &got), MT_OK);
	}
	/* too large */
	assert_int_equal(mt_command_open(&k, buf, MT_COMMAND_MAX + 1, &got), MT_ERR_CMD_FORMAT);
}

static void test_bad_payloads(void **state)
{
	(void)state;
	struct mt_command_check k = check(true, 6);
	const uint8_t *kid = mt_pubkey_kid(mt_key_public(cmd_key));
	struct mt_command got;
	const char *const payloads[] = {
	        /* four keys: args missing */
	        "a4 01 65 6465762d31 02 07 03 1b 000001938c1b0000 04 02",
	        /* six keys: an unknown 6 */
	        "a6 01 65 6465762d31 02 07 03 1b 000001938c1b0000 04 02 05 a1 01 08 06 00",
	        /* 2 before 1 (not in order: refused as strict CBOR) */
	        "a5 02 07 01 65 6465762d31 03 1b 000001938c1b0000 04 02 05 a1 01 08",
	        /* epoch over 2^32 - 1 */
	        "a5 01 65 6465762d31 02 07 03 1b 000001938c1b0000 04 02 05 a1 01 1b 0000000100000000",
	        /* rotate args with an extra key */
	        "a5 01 65 6465762d31 02 07 03 1b 000001938c1b0000 04 02 05 a2 01 08 02 00",
	        /* rotate args empty */
	        "a5 01 65 6465762d31 02 07 03 1b 000001938c1b0000 04 02 05 a0",
	        /* unknown command 7 */
	        "a5 01 65 6465762d31 02 07 03 1b 000001938c1b0000 04 07 05 a0",
	        /* args not a map */
	        "a5 01 65 6465762d31 02 07 03 1b 000001938c1b0000 04 04 05 80",
	        /* counter 2^63 */
	        "a5 01 65 6465762d31 02 1b 8000000000000000 03 1b 000001938c1b0000 04 04 05 a0",
	        /* ts 2^53 */
	        "a5 01 65 6465762d31 02 07 03 1b 0020000000000000 04 04 05 a0",
	        /* device id as bytes */
	        "a5 01 45 6465762d31 02 07 03 1b 000001938c1b0000 04 02 05 a1 01 08",
	        /* device id not of the grammar */
	        "a5 01 65 6465762f31 02 07 03 1b 000001938c1b0000 04 02 05 a1 01 08",
	        /* negative counter */
	        "a5 01 65 6465762d31 02 26 03 1b 000001938c1b0000 04 02 05 a1 01 08",
	        /* a tag inside */
	        "a5 01 65 6465762d31 02 07 03 c1 1b 000001938c1b0000 04 02 05 a1 01 08",
	        /* not a map */
	        "85 65 6465762d31 07 1b 000001938c1b0000 02 a1 01 08",
	        /* trailing byte */
	        "a5 01 65 6465762d31 02 07 03 1b 000001938c1b0000 04 02 05 a1 01 08 00",
	};
	uint8_t payload[128], buf[512];

	for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
		size_t pn = mt_test_unhex(payloads[i], payload, sizeof payload);
		size_t n = sign_raw(cmd_key, kid, payload, pn, buf, sizeof buf);

		if (mt_command_open(&k, buf, n, &got) != MT_ERR_CMD_PAYLOAD)
			fail_msg("payload %zu (%s) not refused as MT_ERR_CMD_PAYLOAD", i, payloads[i]);
	}
}

static void test_encode_refusals(void **state)
{
	(void)state;
	struct mt_command c = rotate(7, NOW, 8, DEV);
	const uint8_t two_maps[] = {0xa0, 0xa0}, not_map[] = {0x80}, bad_map[] = {0xa1, 0x01};
	uint8_t buf[512];
	size_t n;

	c = rotate(7, NOW, 8, "bad/id");
	assert_int_equal(mt_command_sign(cmd_key, &c, buf, sizeof buf, &n), MT_ERR_ARG);
	c = rotate(7, NOW, 8, DEV);
	c.cmd = 7;
	assert_int_equal(mt_command_sign(cmd_key, &c, buf, sizeof buf, &n), MT_ERR_ARG);
	c.cmd = MT_CMD_REBOOT;
	c.args = two_maps;
	c.args_len = sizeof two_maps;
	assert_int_equal(mt_command_sign(cmd_key, &c, buf, sizeof buf, &n), MT_ERR_ARG);
	c.args = not_map;
	c.args_len = sizeof not_map;
	assert_int_equal(mt_command_sign(cmd_key, &c, buf, sizeof buf, &n), MT_ERR_ARG);
	c.args = bad_map;
	c.args_len = sizeof bad_map;
	assert_int_equal(mt_command_sign(cmd_key, &c, buf, sizeof buf, &n), MT_ERR_ARG);
	c = rotate(UINT64_C(1) << 63, NOW, 8, DEV);
	assert_int_equal(mt_command_sign(cmd_key, &c, buf, sizeof buf, &n), MT_ERR_ARG);
	c = rotate(7, NOW, 8, DEV);
	assert_int_equal(mt_command_sign(ed_key, &c, buf, sizeof buf, &n), MT_ERR_COSE_ALG);
	assert_int_equal(mt_command_sign(cmd_key, &c, buf, 40, &n), MT_ERR_BUFFER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rotate_roundtrip), cmocka_unit_test(test_other_commands_roundtrip),
	        cmocka_unit_test(test_forged),           cmocka_unit_test(test_other_device),
	        cmocka_unit_test(test_replay),           cmocka_unit_test(test_stale),
	        cmocka_unit_test(test_garbage),          cmocka_unit_test(test_bad_payloads),
	        cmocka_unit_test(test_encode_refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
