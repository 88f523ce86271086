/*
 * mt_testpkt.h — a device, a hub view of it, and an attacker's workbench for
 * the MTP/1 packet codec tests (protocol §4, §4a, §5; threats group A).
 *
 * The fixture is one device, "dev-1", whose keys are the fixed scalars of
 * ../shared/vectors/mtp1/vectors.json, copied here as hex so that the tests
 * run where the vectors are absent: a P-256 and an Ed25519 operational key
 * (one of them registered, chosen at setup), the device and hub kx keys, and
 * the ECDH x-coordinate from which every epoch's data and receipt keys are
 * derived.  The hub's view — status, current epoch, replay window, whether
 * the device is known — is plain fields of struct mt_tp that a test changes
 * before it opens; the lookup callback serves them and the data-key callback
 * counts its calls (threat A18: no AEAD work for a refused epoch).
 *
 * The workbench builds packets without the code under test, straight from
 * the bytes of protocol §4, so that a test can hand the opener what an
 * attacker would: mt_tp_sign1() writes a Sign1 with any protected and
 * unprotected bytes and a correct signature, mt_tp_encrypt() wraps any
 * plaintext in the exact outer header under the real data key (so crafted
 * inner objects still pass the AEAD), and the byte helpers patch, rewrap and
 * decrypt.  Everything asserts through cmocka on a setup failure; the
 * verdict helpers return bool and print what went wrong, so that the test's
 * own line is the one cmocka reports.
 *
 * Ownership: struct mt_tp owns its keys, AEAD context and opener; results
 * in fx->res point into the opener until the next open.
 */
#ifndef MT_TESTPKT_H
#define MT_TESTPKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medtrust/mt_crypto.h"
#include "medtrust/mt_err.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_packet.h"
#include "medtrust/mt_replay.h"
#include "mt_testutil.h"

#define MT_TP_DEV "dev-1"
#define MT_TP_EPOCH 7u
#define MT_TP_TS UINT64_C(1764300000000) /* 2025-11-28, ms */
#define MT_TP_BUF (MT_PACKET_MAX + 4096)

/* The vector values (lowercase hex). */
extern const char mt_tp_hex_hub_kx_d[], mt_tp_hex_dev_kx_d[];
extern const char mt_tp_hex_ldev_p256_d[], mt_tp_hex_ldev_p256_kid[];
extern const char mt_tp_hex_ldev_ed25519_seed[], mt_tp_hex_ldev_ed25519_kid[];
extern const char mt_tp_hex_ecdh_x[], mt_tp_hex_data_key[], mt_tp_hex_receipt_key[];
extern const char mt_tp_hex_message[], mt_tp_hex_sealed_eddsa_packet[];
extern const char mt_tp_hex_alert_message[], mt_tp_hex_fast_packet[];
extern const char mt_tp_hex_receipt_packet[];
extern const uint8_t mt_tp_iv[MT_AEAD_IV_LEN]; /* 00 01 .. 0b */

struct mt_tp {
	char dev[MT_DEVICE_ID_MAX + 1];
	size_t dev_len;
	struct mt_key *p256, *ed25519; /* both operational keys */
	struct mt_key *ldev;           /* the registered one of the two */
	struct mt_key *other;          /* another device's P-256 key */
	struct mt_key *kx, *hub_kx;
	uint8_t ecdh_x[32];

	/* the hub's view, served by the lookup */
	bool known;
	enum mt_view_status status;
	bool check_status;
	bool check_epoch;
	uint32_t epoch;
	const struct mt_pubkey *registered; /* default mt_key_public(ldev) */
	bool use_window;
	struct mt_replay window;
	uint64_t now_ms;
	unsigned lookup_calls, data_key_calls;

	struct mt_aead *aead;
	struct mt_opener *opener;
	struct mt_open_result res;
};

/* A message with room for its observations (do not copy: m.obs points in). */
struct mt_tp_msg {
	struct mt_message m;
	struct mt_obs obs[4];
};

/* Device with `t` (MT_KEY_P256 or MT_KEY_ED25519) registered, active,
 * epoch 7 checked, status checked, a fresh window in use, now_ms 0. */
struct mt_tp *mt_tp_new(enum mt_key_type t);
void mt_tp_free(struct mt_tp *fx);
/* cmocka setup/teardown wrappers. */
int mt_tp_setup_p256(void **state);
int mt_tp_setup_ed25519(void **state);
int mt_tp_teardown(void **state);

/* Messages: typical content for dev-1, the given counter, ts MT_TP_TS. */
void mt_tp_vitals(const struct mt_tp *fx, struct mt_tp_msg *mm, uint64_t ctr);
void mt_tp_alert(const struct mt_tp *fx, struct mt_tp_msg *mm, uint64_t ctr);
void mt_tp_status(const struct mt_tp *fx, struct mt_tp_msg *mm, uint64_t ctr);
void mt_tp_ack(const struct mt_tp *fx, struct mt_tp_msg *mm, uint64_t ctr);
/* mt_message_encode, asserting success. */
size_t mt_tp_encode(const struct mt_message *m, uint8_t *out, size_t cap);

/* Keys of an epoch (derived from the fixture's ECDH secret). */
void mt_tp_data_key(const struct mt_tp *fx, uint32_t epoch, uint8_t key[MT_KEY_LEN]);
void mt_tp_receipt_key(const struct mt_tp *fx, uint32_t epoch, uint8_t key[MT_KEY_LEN]);

/* The code under test's sealer, under the key of `epoch`, IV fixed when
 * iv != NULL.  Returns its verdict. */
enum mt_err mt_tp_seal_epoch(struct mt_tp *fx, const struct mt_message *m, bool fast,
                             uint32_t epoch, const uint8_t *iv, uint8_t *out, size_t cap,
                             size_t *len);
/* Same at fx->epoch, asserting success; returns the length. */
size_t mt_tp_seal(struct mt_tp *fx, const struct mt_message *m, bool fast, uint8_t *out,
                  size_t cap);
/* A sealed typical vitals packet with counter `ctr`. */
size_t mt_tp_seal_vitals(struct mt_tp *fx, uint64_t ctr, uint8_t *out, size_t cap);

/* ---- the workbench: packets built from protocol §4 bytes alone -------- */

/* Standard headers for the registered key: protected a10126 | a10127 (3
 * bytes) and unprotected a1 04 48 <kid> (11 bytes). */
size_t mt_tp_prot(const struct mt_tp *fx, uint8_t out[3]);
size_t mt_tp_unprot_kid(const uint8_t kid[MT_KID_LEN], uint8_t out[11]);
size_t mt_tp_unprot(const struct mt_tp *fx, uint8_t out[11]);

/* Sig_structure ["Signature1", prot, h'', payload] into out; returns its
 * length. */
size_t mt_tp_sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                           size_t payload_len, uint8_t *out, size_t cap);
/* Sign that Sig_structure with `k`. */
void mt_tp_sign(struct mt_key *k, const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                size_t payload_len, uint8_t sig[MT_SIG_LEN]);
/* Assemble [prot bstr, unprot (raw CBOR bytes), payload bstr, sig bstr],
 * tagged 18 when `tagged`.  Returns the length. */
size_t mt_tp_sign1_raw(bool tagged, const uint8_t *prot, size_t prot_len, const uint8_t *unprot,
                       size_t unprot_len, const uint8_t *payload, size_t payload_len,
                       const uint8_t *sig, size_t sig_len, uint8_t *out, size_t cap);
/* Tagged Sign1 signed correctly by `k` (NULL: the registered key) over the
 * given protected bytes. */
size_t mt_tp_sign1(struct mt_tp *fx, struct mt_key *k, const uint8_t *prot, size_t prot_len,
                   const uint8_t *unprot, size_t unprot_len, const uint8_t *payload,
                   size_t payload_len, uint8_t *out, size_t cap);

/* Outer packet of §4 around `pt`: AAD = Enc_structure with `dev` (NULL:
 * fx->dev), key of `epoch`, IV mt_tp_iv.  Returns the length. */
size_t mt_tp_encrypt_as(struct mt_tp *fx, const char *dev, uint32_t epoch, const uint8_t *pt,
                        size_t pt_len, uint8_t *out, size_t cap);
size_t mt_tp_encrypt(struct mt_tp *fx, const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap);
/* A sealed packet of arbitrary message bytes: standard Sign1 by the
 * registered key, encrypted at fx->epoch. */
size_t mt_tp_seal_payload(struct mt_tp *fx, const uint8_t *msg, size_t msg_len, uint8_t *out,
                          size_t cap);

/* Where the ciphertext ‖ tag of a packet starts, and its length (asserts
 * the §4 layout up to it). */
size_t mt_tp_ct_offset(const uint8_t *pkt, size_t len, size_t *ct_len);
/* The packet's header (first 27 bytes) with `ct` as its ciphertext bstr. */
size_t mt_tp_rewrap(const uint8_t *pkt, const uint8_t *ct, size_t ct_len, uint8_t *out, size_t cap);
/* Decrypt a packet of fx->dev with the data key of its epoch. */
size_t mt_tp_decrypt(struct mt_tp *fx, const uint8_t *pkt, size_t len, uint8_t *pt, size_t cap);
/* Replace the first occurrence of `from` by `to` in buf[0..len); asserts
 * it is found and fits.  Returns the new length. */
size_t mt_tp_patch(uint8_t *buf, size_t len, size_t cap, const uint8_t *from, size_t from_len,
                   const uint8_t *to, size_t to_len);
/* CBOR head of a major type (0..7) and argument, shortest form. */
size_t mt_tp_head(unsigned major, uint64_t arg, uint8_t *out);

/* ---- opening and verdicts ------------------------------------------- */

/* Open with the fixture's lookup as sender fx->dev on `topic`; the result
 * is in fx->res. */
enum mt_err mt_tp_open(struct mt_tp *fx, enum mt_topic topic, const uint8_t *pkt, size_t len);

/* Open and check the verdict is `want` (MT_OK included); for every refusal
 * that is neither `implausible` nor OK, also that the window's serial form
 * is unchanged.  A refusal must name its stage and give a detail.  Prints
 * `what` and the difference on failure; returns whether all held. */
bool mt_tp_expect(struct mt_tp *fx, enum mt_topic topic, const uint8_t *pkt, size_t len,
                  enum mt_err want, const char *what);

/* Seal typical vitals with counter `ctr` under the key of `epoch` and
 * mt_tp_expect() the verdict `want` on the vitals topic; then also, for
 * MT_ERR_PKT_EPOCH, that no data key was derived before the refusal (threat
 * A18: no AEAD work for a refused epoch), and for MT_OK, that the result
 * names `epoch` and exactly one data key was derived. */
bool mt_tp_expect_epoch(struct mt_tp *fx, uint32_t epoch, uint64_t ctr, enum mt_err want);

void mt_tp_window_save(const struct mt_tp *fx, uint8_t out[MT_REPLAY_STATE_LEN]);
/* Reset the window and mark top − 5, top − 2 and top. */
void mt_tp_window_prime(struct mt_tp *fx, uint64_t top);

/* Name of a verdict for messages: the stage, or mt_err_str. */
const char *mt_tp_name(enum mt_err e);

#endif
