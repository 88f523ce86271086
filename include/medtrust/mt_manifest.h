/*
 * mt_manifest.h — the device manifest (protocol §1): the manufacturer's
 * signed whitelist of the devices it made, handed to the hospital with them.
 *
 *   manifest = tagged COSE_Sign1 (ES256) by the manufacturer's manifest key,
 *              protected {1: -7, 33: x5chain}, unprotected {},
 *              payload  [ {1: serial, 2: device class, 3: kid of the birth
 *                          key (8 bytes), 4: SHA-256 of the birth certificate
 *                          DER (32 bytes)}, ... ]
 *
 * The chain travels in the *protected* bucket (RFC 9360 allows either), so
 * the signature covers which certificate is claimed to have made it: a
 * relay cannot swap the chain for another one with the same key.  Leaf
 * first, root left out (§1).
 *
 * Opening a manifest checks, in order: strict CBOR and the Sign1 shape, the
 * algorithm, that the x5chain leaf parses and its key verifies the
 * signature, then the payload schema (serials are device ids, unique within
 * the manifest; classes 1–64 bytes of printable UTF-8; kid 8 bytes; digest
 * 32 bytes).  Whether the chain leads to a trusted manufacturer root is the
 * caller's decision (the registry holds the trusted roots): the opened
 * manifest exposes the chain's DER certificates for that.  A manifest that
 * fails any check is refused whole.
 *
 * Memory: mt_manifest_sign() allocates its output; mt_manifest_open()
 * allocates the entry array and copies the chain, both released by
 * mt_manifest_free().  The factory and the hub use these; devices do not.
 */
#ifndef MT_MANIFEST_H
#define MT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "mt_crypto.h"
#include "mt_err.h"
#include "mt_keystore.h"
#include "mt_message.h"

#define MT_MANIFEST_MAX (16u * 1024 * 1024) /* bytes of a manifest file */
#define MT_MANIFEST_CLASS_MAX 64
#define MT_MANIFEST_CHAIN_MAX 4             /* certificates in x5chain */

struct mt_manifest_entry {
	char serial[MT_DEVICE_ID_MAX + 1]; /* the device id, NUL-terminated */
	char device_class[MT_MANIFEST_CLASS_MAX + 1];
	uint8_t birth_kid[MT_KID_LEN];
	uint8_t birth_cert_sha256[32];
};

struct mt_manifest {
	struct mt_manifest_entry *entries;
	size_t n_entries;
	uint8_t *chain[MT_MANIFEST_CHAIN_MAX]; /* DER certificates, leaf first */
	size_t chain_len[MT_MANIFEST_CHAIN_MAX];
	size_t n_chain;
};

/* Sign `n` entries with `signer` (P-256, the manifest key), carrying the
 * DER certificates chain[0..n_chain) (leaf = the signer's certificate).
 * *out is malloc'ed; the caller frees it.  Errors: MT_ERR_ARG (an entry
 * fails the schema, duplicate serials, 0 or too many certificates),
 * MT_ERR_KEY_TYPE (signer not P-256), MT_ERR_NOMEM, key store errors. */
MT_NODISCARD enum mt_err mt_manifest_sign(struct mt_key *signer, const uint8_t *const *chain,
                                          const size_t *chain_len, size_t n_chain,
                                          const struct mt_manifest_entry *entries, size_t n,
                                          uint8_t **out, size_t *out_len);

/* Open and verify `buf` as described above.  On success fills `m` (free it
 * with mt_manifest_free).  Errors: MT_ERR_ARG (over MT_MANIFEST_MAX),
 * MT_ERR_CBOR_* / MT_ERR_COSE_FORMAT (shape), MT_ERR_COSE_ALG, MT_ERR_KEY_FORMAT
 * (leaf certificate unparsable), MT_ERR_SIG_INVALID / MT_ERR_SIG_FORMAT,
 * MT_ERR_PKT_MESSAGE (payload schema, with a reason in *why), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_manifest_open(const uint8_t *buf, size_t len, struct mt_manifest *m,
                                          const char **why);

void mt_manifest_free(struct mt_manifest *m);

#endif
