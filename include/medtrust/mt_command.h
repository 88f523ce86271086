/*
 * mt_command.h — downlink commands (protocol §6): the hub signs, the
 * device verifies.
 *
 *   command = COSE_Sign1, tag 18, protected {1: -7 (ES256)}, unprotected
 *             {4: kid of the command key}, payload
 *             {1: device id, 2: command counter, 3: ts (ms), 4: command,
 *              5: args (map)}
 *
 * The hub signs with its command key (in its token); the device verifies
 * against the key of the command certificate it pinned at onboarding (the
 * bundle's `command_cert`), in this order, each refusal with its own code:
 *
 *   1. MT_ERR_CMD_FORMAT     over MT_COMMAND_MAX bytes, not strict CBOR, not
 *                            a tagged Sign1, alg not ES256 in the protected
 *                            bucket, no 8-byte kid in the unprotected one
 *   2. MT_ERR_CMD_KID        the kid is not the pinned key's (no other key
 *                            is ever tried)
 *   3. MT_ERR_CMD_SIGNATURE  the signature is malformed or does not verify
 *   4. MT_ERR_CMD_PAYLOAD    the payload is not strict CBOR or not exactly
 *                            the five keys above with their types (ctr <
 *                            2^63, ts < 2^53, command 1..6, args a map; a
 *                            rotate-epoch's args exactly {1: uint32})
 *   5. MT_ERR_CMD_DEVICE     key 1 is not the device itself
 *   6. MT_ERR_CMD_REPLAY     the counter is not above the last one accepted
 *   7. MT_ERR_CMD_STALE      |now − ts| > 300 s
 *
 * Nothing of the payload is decoded before the signature verified (the
 * payload an attacker controls reaches the CBOR decoder only with a key he
 * does not have).  The device then acts and answers on up/ack (a typ 4
 * message, protocol §5) with MT_CMD_RESULT_*; docs/commands.md gives the
 * decisions where the protocol is silent.
 *
 * Memory: nothing is allocated; a decoded command's `args` points into
 * the caller's input.  No clock is read: `now_ms` comes from the caller.
 */
#ifndef MT_COMMAND_H
#define MT_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_crypto.h"
#include "mt_err.h"
#include "mt_keystore.h"
#include "mt_message.h"

/* Commands (protocol §6). */
#define MT_CMD_SET_CONFIG 1
#define MT_CMD_ROTATE_EPOCH 2
#define MT_CMD_FIRMWARE_UPDATE 3
#define MT_CMD_REBOOT 4
#define MT_CMD_DECOMMISSION 5
#define MT_CMD_LICENSE 6

/* Results in an acknowledgement (protocol §5, ack key 2; 0 = ok is the
 * protocol's, the others ours: docs/commands.md). */
#define MT_CMD_RESULT_OK 0
#define MT_CMD_RESULT_UNSUPPORTED 1 /* a verified command this device does not do */
#define MT_CMD_RESULT_ARGS 2        /* verified, but its arguments cannot be applied */
#define MT_CMD_RESULT_FAILED 3      /* the device failed to apply it (storage) */

#define MT_COMMAND_MAX MT_PACKET_MAX   /* bytes of a whole command */
#define MT_COMMAND_SKEW_MS 300000u     /* |now − ts| allowed */

struct mt_command {
	char dev[MT_DEVICE_ID_MAX + 1]; /* NUL-terminated */
	size_t dev_len;
	uint64_t ctr; /* < 2^63, strictly increasing per device */
	uint64_t ts;  /* ms since the Unix epoch, hub clock; < 2^53 */
	uint64_t cmd; /* MT_CMD_* */
	/* The encoded args map.  Signing: used for commands other than
	 * rotate-epoch (NULL/0 = {}); it must be one strict CBOR map.
	 * Opening: points into the input. */
	const uint8_t *args;
	size_t args_len;
	uint32_t new_epoch; /* rotate-epoch: args {1: new epoch} */
};

/* The payload's deterministic CBOR into out[0..cap).  Errors: MT_ERR_ARG
 * (device id, counter, ts or command out of range; args not one strict
 * map), MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_command_encode(const struct mt_command *c, uint8_t *out, size_t cap,
                                           size_t *len);

/* Sign `c` with the command key `key` (P-256: ES256) as a tagged Sign1
 * whose unprotected kid is the key's kid.  Errors: mt_command_encode's,
 * MT_ERR_COSE_ALG (not a P-256 key), MT_ERR_NOMEM, key store errors
 * (MT_ERR_KS_OPERATION: the token failed; nothing is written). */
MT_NODISCARD enum mt_err mt_command_sign(struct mt_key *key, const struct mt_command *c,
                                         uint8_t *out, size_t cap, size_t *len);

/* What a device checks a command against. */
struct mt_command_check {
	const struct mt_pubkey *key; /* the pinned command certificate's key (P-256) */
	const char *dev;             /* the device itself */
	size_t dev_len;
	bool has_last;               /* false: no command accepted yet */
	uint64_t last_ctr;           /* the last accepted command's counter */
	uint64_t now_ms;             /* the device's clock */
};

/* Verify and decode buf[0..len) in the order of the file's essay.  On
 * MT_OK *out is the command (args pointing into buf); on a refusal *out is
 * zeroed except that, from MT_ERR_CMD_DEVICE on, it holds the decoded
 * payload (for the device's log).  Errors: MT_ERR_ARG (missing check
 * fields), then MT_ERR_CMD_* as above, MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_command_open(const struct mt_command_check *chk, const uint8_t *buf,
                                         size_t len, struct mt_command *out);

/* "set-config", "rotate-epoch", ...; "?" for anything else. */
const char *mt_command_name(uint64_t cmd);

#endif
