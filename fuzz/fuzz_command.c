/*
 * fuzz_command.c — libFuzzer harness for what a device parses from
 * mt/v1/<id>/down/cmd: signed downlink commands (protocol §6,
 * mt_command_open).
 *
 * A forged command stops at the kid or the signature; but the hub — or
 * whoever holds the command key — can sign any payload, and the device's
 * decoder must survive that too.  So:
 *
 *   first byte 0xff   the rest is a payload: signed here (ES256) with the
 *                     world's P-256 key standing in for the command key,
 *                     its kid in the unprotected header, so mutated
 *                     payloads reach the decoder behind the signature;
 *   anything else     the input is the command as received.
 *
 * The device is FZ_DEV, its last accepted counter 5, its clock fixed.
 * Whatever opens must keep the contract the agent acts on: the command is
 * for FZ_DEV, its counter above 5, its ts within 300 s, a known command
 * whose args are one strict map (a rotate-epoch's exactly {1: epoch}),
 * and the payload is the canonical encoding of what was decoded (strict
 * CBOR has one encoding per value), so nothing rides along unread.
 */
#include "fuzz_common.h"

#include <medtrust/mt_command.h>
#include <medtrust/mt_cose.h>

#define FZ_NOW UINT64_C(1733222400000)
#define FZ_LAST 5u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t signed_buf[FZ_BUF], again[FZ_BUF];
	struct fz_world *w = fz_world();
	struct mt_key *key = w->ldev[FZ_P256];
	struct mt_command_check chk = {
	        .key = mt_key_public(key), .dev = FZ_DEV, .dev_len = strlen(FZ_DEV),
	        .has_last = true, .last_ctr = FZ_LAST, .now_ms = FZ_NOW,
	};
	struct mt_command c;
	struct mt_cose_sign1 s;
	const uint8_t *in = data;
	size_t n = size, m = 0;

	if (size > MT_COMMAND_MAX)
		return 0;
	if (size > 0 && data[0] == 0xff) {
		if (mt_cose_sign1_sign(key, MT_COSE_ALG_ES256, mt_pubkey_kid(mt_key_public(key)),
		                       MT_KID_LEN, data + 1, size - 1, NULL, 0, signed_buf,
		                       sizeof signed_buf, &n) != MT_OK)
			return 0;
		in = signed_buf;
	}
	if (mt_command_open(&chk, in, n, &c) != MT_OK)
		return 0;
	if (c.dev_len != strlen(FZ_DEV) || strcmp(c.dev, FZ_DEV) != 0 || c.ctr <= FZ_LAST ||
	    (c.ts > FZ_NOW ? c.ts - FZ_NOW : FZ_NOW - c.ts) > MT_COMMAND_SKEW_MS ||
	    strcmp(mt_command_name(c.cmd), "?") == 0)
		abort();
	if (c.args < in || c.args + c.args_len > in + n || c.args_len == 0 ||
	    (c.args[0] >> 5) != 5 || mt_cbor_validate(c.args, c.args_len, NULL, 0) != MT_OK)
		abort();
	if (c.cmd == MT_CMD_ROTATE_EPOCH) {
		uint8_t want[16];
		struct mt_cbor_enc e;
		size_t wl = 0;

		mt_cbor_enc_init(&e, want, sizeof want);
		mt_cbor_put_map(&e, 1);
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_uint(&e, c.new_epoch);
		if (mt_cbor_enc_finish(&e, &wl) != MT_OK || wl != c.args_len ||
		    memcmp(want, c.args, wl) != 0)
			abort();
	}
	/* canonical: what was decoded encodes back to the very payload */
	if (mt_cose_sign1_decode(in, n, true, &s) != MT_OK ||
	    mt_command_encode(&c, again, sizeof again, &m) != MT_OK || m != s.payload_len ||
	    memcmp(again, s.payload, m) != 0)
		abort();
	return 0;
}
