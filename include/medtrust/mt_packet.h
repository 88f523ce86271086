/*
 * mt_packet.h — sealing and opening MTP/1 packets (protocol §4, §4a, §5).
 *
 *   sealed packet = COSE_Encrypt0( COSE_Sign1( message ) )
 *   fast packet   = COSE_Encrypt0( message ), typ 2 only, on up/alert only
 *   receipt       = COSE_Encrypt0( {1: dev, 2: ranges, 3: ts} ) under the
 *                   receipt key, external_aad "rcpt:" ‖ dev
 *
 * The header bytes are fixed by the protocol and compared as bytes.
 *
 * Opening runs the fourteen checks of §5 in the protocol's order and stops
 * at the first failure, returning its MT_ERR_PKT_* code (the stage) and a
 * detail sentence.  Key material and device status come from a
 * caller-supplied lookup, called once per packet with the device id the
 * transport vouches for (topic and certificate identity).  A device the
 * lookup does not know has no keys to decrypt with, so it is refused at the
 * `inactive` stage straight away (docs/protocol-notes.md).
 *
 * Memory: sealing writes into the caller's buffer and allocates nothing —
 * the Sig_structure prefix is laid down in place in front of the message and
 * then overwritten with the Sign1 prefix of the same length, and the AEAD
 * encrypts in place.  Opening uses an mt_opener, a reusable per-thread
 * context holding the AEAD state, a 64 KiB plaintext buffer and the
 * observation array; results point into it until the next call.
 */
#ifndef MT_PACKET_H
#define MT_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_crypto.h"
#include "mt_err.h"
#include "mt_keystore.h"
#include "mt_message.h"
#include "mt_replay.h"

#define MT_KEY_LEN 32
#define MT_RECEIPT_MAX_RANGES 512
/* Bytes a sealed packet adds to a message of up to 65,535 bytes, at most:
 * outer header 27 + ciphertext head 3 + tag 16 + Sign1 prefix 17 +
 * payload head 3 + signature 66. */
#define MT_PACKET_OVERHEAD 132

enum mt_topic {
	MT_TOPIC_NONE = 0, /* no transport (medtrust packet open): skip topic checks */
	MT_TOPIC_VITALS,
	MT_TOPIC_ALERT,
	MT_TOPIC_STATUS,
	MT_TOPIC_ACK,
};

enum mt_packet_kind { MT_PACKET_SEALED = 1, MT_PACKET_FAST = 2 };

enum mt_view_status {
	MT_VIEW_ACTIVE = 1,
	MT_VIEW_REVOKED = 2,
	MT_VIEW_DECOMMISSIONED = 3,
};

/* What the lookup tells the opener about one device. */
struct mt_device_view {
	enum mt_view_status status;
	bool check_status;            /* false: skip stage 12 (no registry) */
	const struct mt_pubkey *ldev; /* registered operational key: fixes alg and kid */
	bool check_epoch;             /* false: skip stage 4 (packet open without --epoch) */
	uint32_t epoch;               /* the hub's current epoch for the device */
	/* Fill the 32-byte data key K of `epoch` (called only for an accepted
	 * epoch); the opener wipes it after use. */
	enum mt_err (*data_key)(void *ctx, uint32_t epoch, uint8_t key[MT_KEY_LEN]);
	void *data_key_ctx;
	struct mt_replay *window;     /* NULL: skip stage 13; else checked and marked */
};

/* Return MT_OK and fill `view`, or MT_ERR_NOT_FOUND for an unknown device. */
typedef enum mt_err (*mt_device_lookup_fn)(void *ctx, const char *dev, size_t dev_len,
                                           struct mt_device_view *view);

struct mt_open_params {
	const char *dev; /* identity vouched for by topic and certificate */
	size_t dev_len;
	enum mt_topic topic;
	mt_device_lookup_fn lookup;
	void *lookup_ctx;
	uint64_t now_ms; /* hub clock for the skew/stale flags; 0 = do not flag */
};

struct mt_open_result {
	enum mt_err err;        /* MT_OK, MT_ERR_PKT_*, or a system error */
	char detail[192];       /* why, for refusals: "<sentence>" */
	enum mt_packet_kind kind;
	uint32_t epoch;
	uint8_t iv[MT_AEAD_IV_LEN];
	const uint8_t *sign1;   /* sealed: the inner Sign1 bytes (for storage) */
	size_t sign1_len;
	struct mt_message msg;  /* valid when err is MT_OK, IMPLAUSIBLE or DUPLICATE */
	bool clock_skewed;      /* ts > now + 5 min */
	bool stale;             /* ts < now − 24 h */
};

struct mt_opener;
MT_NODISCARD enum mt_err mt_opener_new(struct mt_opener **out);
void mt_opener_free(struct mt_opener *o);

/* Open `pkt`; the verdict is both returned and stored in r->err. */
MT_NODISCARD enum mt_err mt_packet_open(struct mt_opener *o, const struct mt_open_params *p,
                                        const uint8_t *pkt, size_t len,
                                        struct mt_open_result *r);

struct mt_seal_params {
	const char *dev; /* the device id (Enc_structure AAD) */
	size_t dev_len;
	uint32_t epoch;
	const uint8_t *data_key; /* K of `epoch`, 32 bytes */
	struct mt_key *ldev;     /* sealed packets: the signing key; unused for fast */
	bool fast;               /* fast packet: message must be typ 2 */
	const uint8_t *iv;       /* NULL: random (always, outside test vectors) */
	struct mt_aead *aead;
};

/* Seal `m` into out[0..cap).  Errors: MT_ERR_PKT_MESSAGE (invalid message
 * or a fast packet not of typ 2), MT_ERR_BUFFER, MT_ERR_PKT_SIZE (the packet
 * would exceed 65,536 bytes), key store and crypto errors. */
MT_NODISCARD enum mt_err mt_packet_seal(const struct mt_seal_params *p,
                                        const struct mt_message *m, uint8_t *out,
                                        size_t cap, size_t *len);

/* K and the receipt key of one device and epoch, from the ECDH x-coordinate
 * (protocol §4, §4a).  Either output may be NULL. */
MT_NODISCARD enum mt_err mt_packet_derive_keys(const uint8_t ecdh_x[32], uint32_t epoch,
                                               const char *dev, size_t dev_len,
                                               uint8_t data_key[MT_KEY_LEN],
                                               uint8_t receipt_key[MT_KEY_LEN]);

/* Read the epoch of a packet's header without any crypto (MT_ERR_PKT_CBOR /
 * MT_ERR_PKT_HEADER when it has none). */
MT_NODISCARD enum mt_err mt_packet_epoch(const uint8_t *pkt, size_t len, uint32_t *epoch);

struct mt_receipt {
	const char *dev;
	size_t dev_len;
	uint64_t (*ranges)[2]; /* [first, last], sorted, disjoint, merged */
	size_t n_ranges;       /* ≤ 512 */
	uint64_t ts;           /* ms, hub clock */
};

MT_NODISCARD enum mt_err mt_receipt_seal(struct mt_aead *aead,
                                         const uint8_t receipt_key[MT_KEY_LEN],
                                         uint32_t epoch, const uint8_t *iv,
                                         const struct mt_receipt *r, uint8_t *out,
                                         size_t cap, size_t *len);
/* Open a receipt for device `dev` with the receipt key of its epoch
 * (see mt_packet_epoch).  Ranges go into ranges[0..cap).  r->dev points
 * into `scratch` (≥ len bytes), which also receives the plaintext.
 * Errors: MT_ERR_PKT_* stages as for packets (header, aead, message). */
MT_NODISCARD enum mt_err mt_receipt_open(struct mt_aead *aead,
                                         const uint8_t receipt_key[MT_KEY_LEN],
                                         const char *dev, size_t dev_len,
                                         const uint8_t *pkt, size_t len,
                                         uint8_t *scratch, size_t scratch_cap,
                                         uint64_t (*ranges)[2], size_t cap,
                                         struct mt_receipt *r);

#endif
