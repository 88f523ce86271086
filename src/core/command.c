/*
 * command.c — downlink commands (mt_command.h; protocol §6).
 *
 * Signing is mt_cose_sign1_sign over the payload this file encodes: a map
 * of five keys in ascending order, so deterministic by construction; the
 * args of a rotate-epoch are made here ({1: epoch}), those of any other
 * command are the caller's and must already be one strict CBOR map.
 *
 * Opening is strict and in the order the essay of mt_command.h lists.
 * The header is checked as bytes, as the packet codec does (protocol §4):
 * after the generic decoder accepted a tagged Sign1, the command must
 * begin with exactly
 *
 *   d2 84 43 a10126 a1 04 48 <kid: 8 bytes>
 *
 * — ES256 in the protected bucket and nothing else, the kid alone in the
 * unprotected one — so that no label can ride along unverified, and the
 * kid is compared with the pinned key's before any signature work.  The
 * payload is decoded only after the signature verified; what it holds is
 * then checked key by key with no optional and no unknown key.  A refusal
 * after the payload decoded leaves the command in *out, so the device can
 * log what it refused (never act on it).
 */
#include "medtrust/mt_command.h"

#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_cose.h"

#define CTR_LIMIT (UINT64_C(1) << 63)
#define TS_LIMIT (UINT64_C(1) << 53)

static const uint8_t cmd_head[] = {0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa1, 0x04, 0x48};

const char *mt_command_name(uint64_t cmd)
{
	switch (cmd) {
	case MT_CMD_SET_CONFIG: return "set-config";
	case MT_CMD_ROTATE_EPOCH: return "rotate-epoch";
	case MT_CMD_FIRMWARE_UPDATE: return "firmware-update";
	case MT_CMD_REBOOT: return "reboot";
	case MT_CMD_DECOMMISSION: return "decommission";
	case MT_CMD_LICENSE: return "license";
	default: return "?";
	}
}

static bool known(uint64_t cmd)
{
	return cmd >= MT_CMD_SET_CONFIG && cmd <= MT_CMD_LICENSE;
}

/* Is p[0..n) one strict CBOR map? */
static bool is_map(const uint8_t *p, size_t n)
{
	return n > 0 && (p[0] >> 5) == 5 && mt_cbor_validate(p, n, NULL, 0) == MT_OK;
}

enum mt_err mt_command_encode(const struct mt_command *c, uint8_t *out, size_t cap, size_t *len)
{
	static const uint8_t empty[] = {0xa0};
	struct mt_cbor_enc e;

	if (c == NULL || out == NULL || len == NULL || c->dev_len == 0 ||
	    c->dev_len > MT_DEVICE_ID_MAX || !mt_device_id_valid(c->dev, c->dev_len) ||
	    c->ctr >= CTR_LIMIT || c->ts >= TS_LIMIT || !known(c->cmd))
		return MT_ERR_ARG;
	if (c->cmd != MT_CMD_ROTATE_EPOCH && c->args != NULL && !is_map(c->args, c->args_len))
		return MT_ERR_ARG;
	mt_cbor_enc_init(&e, out, cap);
	mt_cbor_put_map(&e, 5);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_tstr(&e, c->dev, c->dev_len);
	mt_cbor_put_uint(&e, 2);
	mt_cbor_put_uint(&e, c->ctr);
	mt_cbor_put_uint(&e, 3);
	mt_cbor_put_uint(&e, c->ts);
	mt_cbor_put_uint(&e, 4);
	mt_cbor_put_uint(&e, c->cmd);
	mt_cbor_put_uint(&e, 5);
	if (c->cmd == MT_CMD_ROTATE_EPOCH) {
		mt_cbor_put_map(&e, 1);
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_uint(&e, c->new_epoch);
	} else if (c->args != NULL) {
		mt_cbor_put_raw(&e, c->args, c->args_len);
	} else {
		mt_cbor_put_raw(&e, empty, sizeof empty);
	}
	return mt_cbor_enc_finish(&e, len);
}

enum mt_err mt_command_sign(struct mt_key *key, const struct mt_command *c, uint8_t *out,
                            size_t cap, size_t *len)
{
	uint8_t payload[1024];
	uint8_t *p = payload;
	size_t plen = 0, need;
	enum mt_err e;

	if (key == NULL || c == NULL || out == NULL || len == NULL)
		return MT_ERR_ARG;
	if (mt_key_type(key) != MT_KEY_P256)
		return MT_ERR_COSE_ALG;
	/* The payload: the five keys (≤ 120 bytes) and the args. */
	need = 128 + (c->cmd == MT_CMD_ROTATE_EPOCH || c->args == NULL ? 0 : c->args_len);
	if (need > MT_COMMAND_MAX)
		return MT_ERR_ARG;
	if (need > sizeof payload) {
		p = malloc(need);
		if (p == NULL)
			return MT_ERR_NOMEM;
	}
	e = mt_command_encode(c, p, need, &plen);
	if (e == MT_OK)
		e = mt_cose_sign1_sign(key, MT_COSE_ALG_ES256, mt_pubkey_kid(mt_key_public(key)),
		                       MT_KID_LEN, p, plen, NULL, 0, out, cap, len);
	if (e == MT_OK && *len > MT_COMMAND_MAX)
		e = MT_ERR_ARG;
	if (p != payload)
		free(p);
	return e;
}

/* Decode the payload p[0..n) (strict CBOR already checked) into *c. */
static enum mt_err decode_payload(const uint8_t *p, size_t n, struct mt_command *c)
{
	struct mt_cbor_dec d;
	uint64_t pairs = 0, k[5] = {0}, epoch = 0;
	const char *dev = NULL;
	size_t dev_len = 0, args_at;

	mt_cbor_dec_init(&d, p, n);
	if (!mt_cbor_get_map(&d, &pairs) || pairs != 5 || !mt_cbor_get_uint(&d, &k[0]) ||
	    k[0] != 1 || !mt_cbor_get_tstr(&d, &dev, &dev_len) || !mt_cbor_get_uint(&d, &k[1]) ||
	    k[1] != 2 || !mt_cbor_get_uint(&d, &c->ctr) || !mt_cbor_get_uint(&d, &k[2]) ||
	    k[2] != 3 || !mt_cbor_get_uint(&d, &c->ts) || !mt_cbor_get_uint(&d, &k[3]) ||
	    k[3] != 4 || !mt_cbor_get_uint(&d, &c->cmd) || !mt_cbor_get_uint(&d, &k[4]) ||
	    k[4] != 5)
		return MT_ERR_CMD_PAYLOAD;
	args_at = d.pos;
	if (args_at >= n || (p[args_at] >> 5) != 5 || !mt_cbor_skip(&d) ||
	    mt_cbor_dec_finish(&d) != MT_OK)
		return MT_ERR_CMD_PAYLOAD;
	if (dev_len == 0 || dev_len > MT_DEVICE_ID_MAX || !mt_device_id_valid(dev, dev_len) ||
	    c->ctr >= CTR_LIMIT || c->ts >= TS_LIMIT || !known(c->cmd))
		return MT_ERR_CMD_PAYLOAD;
	c->args = p + args_at;
	c->args_len = n - args_at;
	if (c->cmd == MT_CMD_ROTATE_EPOCH) {
		mt_cbor_dec_init(&d, c->args, c->args_len);
		if (!mt_cbor_get_map(&d, &pairs) || pairs != 1 || !mt_cbor_get_uint(&d, &k[0]) ||
		    k[0] != 1 || !mt_cbor_get_uint(&d, &epoch) || epoch > UINT32_MAX ||
		    mt_cbor_dec_finish(&d) != MT_OK)
			return MT_ERR_CMD_PAYLOAD;
		c->new_epoch = (uint32_t)epoch;
	}
	memcpy(c->dev, dev, dev_len);
	c->dev[dev_len] = '\0';
	c->dev_len = dev_len;
	return MT_OK;
}

enum mt_err mt_command_open(const struct mt_command_check *chk, const uint8_t *buf, size_t len,
                            struct mt_command *out)
{
	struct mt_cose_sign1 s;
	struct mt_command c;
	enum mt_err e;

	if (out != NULL)
		memset(out, 0, sizeof *out);
	if (chk == NULL || out == NULL || (buf == NULL && len > 0) || chk->key == NULL ||
	    mt_pubkey_type(chk->key) != MT_KEY_P256 || chk->dev == NULL || chk->dev_len == 0)
		return MT_ERR_ARG;
	memset(&c, 0, sizeof c);

	/* 1 the shape: a tagged Sign1, exactly ES256 and a kid in the header */
	if (len > MT_COMMAND_MAX || len < sizeof cmd_head + MT_KID_LEN ||
	    mt_cose_sign1_decode(buf, len, true, &s) != MT_OK ||
	    memcmp(buf, cmd_head, sizeof cmd_head) != 0 || s.payload == NULL ||
	    s.uh.kid != buf + sizeof cmd_head || s.uh.kid_len != MT_KID_LEN)
		return MT_ERR_CMD_FORMAT;
	/* 2 the kid: the pinned key's, no other key is tried */
	if (!mt_ct_equal(s.uh.kid, mt_pubkey_kid(chk->key), MT_KID_LEN))
		return MT_ERR_CMD_KID;
	/* 3 the signature */
	e = mt_cose_sign1_verify(&s, chk->key, NULL, 0);
	if (e == MT_ERR_NOMEM)
		return e;
	if (e != MT_OK)
		return MT_ERR_CMD_SIGNATURE;
	/* 4 the payload, only now */
	if (mt_cbor_validate(s.payload, s.payload_len, NULL, 0) != MT_OK)
		return MT_ERR_CMD_PAYLOAD;
	e = decode_payload(s.payload, s.payload_len, &c);
	if (e != MT_OK)
		return e;
	*out = c;
	/* 5 for this device */
	if (c.dev_len != chk->dev_len || memcmp(c.dev, chk->dev, c.dev_len) != 0)
		return MT_ERR_CMD_DEVICE;
	/* 6 a new counter */
	if (chk->has_last && c.ctr <= chk->last_ctr)
		return MT_ERR_CMD_REPLAY;
	/* 7 fresh: |now − ts| ≤ 300 s */
	if ((c.ts > chk->now_ms ? c.ts - chk->now_ms : chk->now_ms - c.ts) > MT_COMMAND_SKEW_MS)
		return MT_ERR_CMD_STALE;
	return MT_OK;
}
