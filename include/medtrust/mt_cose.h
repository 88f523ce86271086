/*
 * mt_cose.h — COSE_Sign1 and COSE_Encrypt0 (RFC 9052, algorithms RFC 9053).
 *
 * Two levels.  The structure builders (mt_cose_sig1_prefix,
 * mt_cose_enc0_structure) write the exact bytes that are signed or used as
 * AAD; MTP/1's packet codec builds on them and on fixed header bytes.  The
 * generic decoders and verifiers handle any well-formed Sign1/Encrypt0 — the
 * COSE working group's examples, and later manifests, commands and firmware
 * manifests.  Generic decoding is strict CBOR (mt_cbor.h) with tags 16 and
 * 18 allowed; the algorithm is read from the protected bucket, else the
 * unprotected one; a `crit` header (label 2) naming any label this code does
 * not process is refused (MT_ERR_COSE_CRIT).
 *
 * Decoded structures point into the caller's input buffer.
 */
#ifndef MT_COSE_H
#define MT_COSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_crypto.h"
#include "mt_err.h"
#include "mt_keystore.h"

#define MT_COSE_TAG_ENCRYPT0 16
#define MT_COSE_TAG_SIGN1 18

#define MT_COSE_ALG_ES256 (-7)
#define MT_COSE_ALG_ES384 (-35)
#define MT_COSE_ALG_ES512 (-36)
#define MT_COSE_ALG_EDDSA (-8)
#define MT_COSE_ALG_A128GCM 1
#define MT_COSE_ALG_A192GCM 2
#define MT_COSE_ALG_A256GCM 3

#define MT_COSE_HDR_ALG 1
#define MT_COSE_HDR_CRIT 2
#define MT_COSE_HDR_CTYP 3
#define MT_COSE_HDR_KID 4
#define MT_COSE_HDR_IV 5
#define MT_COSE_HDR_X5CHAIN 33

/* Header parameters this code understands, from one bucket. */
struct mt_cose_hdr {
	bool has_alg;
	int64_t alg;
	const uint8_t *kid;     /* NULL when absent */
	size_t kid_len;
	const uint8_t *iv;      /* NULL when absent */
	size_t iv_len;
	const uint8_t *x5chain; /* encoded item (bstr or array of bstr), NULL when absent */
	size_t x5chain_len;
};

struct mt_cose_sign1 {
	bool tagged;
	const uint8_t *prot; /* contents of the protected bstr (may be empty; an
	                        empty map h'a0' is reported as empty, RFC 9052 §3) */
	size_t prot_len;
	struct mt_cose_hdr ph, uh; /* protected and unprotected parameters */
	const uint8_t *payload; /* NULL when detached (nil) */
	size_t payload_len;
	const uint8_t *sig;
	size_t sig_len;
};

struct mt_cose_encrypt0 {
	bool tagged;
	const uint8_t *prot;
	size_t prot_len;
	struct mt_cose_hdr ph, uh;
	const uint8_t *ct; /* ciphertext ‖ tag */
	size_t ct_len;
};

/* Sig_structure for Sign1 up to and including the head of the payload bstr:
 *   84 6a "Signature1" bstr(prot) bstr(aad) head(payload_len)
 * The bytes to sign are this prefix followed by the payload. */
MT_NODISCARD enum mt_err mt_cose_sig1_prefix(const uint8_t *prot, size_t prot_len,
                                             const uint8_t *aad, size_t aad_len,
                                             size_t payload_len, uint8_t *out,
                                             size_t cap, size_t *len);
/* Enc_structure ["Encrypt0", prot, aad]. */
MT_NODISCARD enum mt_err mt_cose_enc0_structure(const uint8_t *prot, size_t prot_len,
                                                const uint8_t *aad, size_t aad_len,
                                                uint8_t *out, size_t cap, size_t *len);

/* Decode.  require_tag refuses an untagged message; a wrong tag is always
 * refused.  Errors: MT_ERR_CBOR_* for CBOR faults, MT_ERR_COSE_FORMAT for a
 * wrong shape (array length, bucket types, duplicated label in both
 * buckets), MT_ERR_COSE_CRIT. */
MT_NODISCARD enum mt_err mt_cose_sign1_decode(const uint8_t *buf, size_t len,
                                              bool require_tag,
                                              struct mt_cose_sign1 *out);
MT_NODISCARD enum mt_err mt_cose_encrypt0_decode(const uint8_t *buf, size_t len,
                                                 bool require_tag,
                                                 struct mt_cose_encrypt0 *out);

/* Verify with `pk`.  The algorithm must be present and fit the key (ES256,
 * ES384, ES512 over an EC key; EdDSA over an Ed25519/Ed448 key), else
 * MT_ERR_COSE_ALG.  Then MT_ERR_SIG_FORMAT or MT_ERR_SIG_INVALID. */
MT_NODISCARD enum mt_err mt_cose_sign1_verify(const struct mt_cose_sign1 *s,
                                              const struct mt_pubkey *pk,
                                              const uint8_t *aad, size_t aad_len);

/* Decrypt with `key` (length must fit the algorithm, A128/192/256GCM) and the
 * IV of the unprotected bucket (12 bytes).  Writes ct_len − 16 bytes to out.
 * Errors: MT_ERR_COSE_ALG, MT_ERR_COSE_FORMAT, MT_ERR_BUFFER, MT_ERR_AEAD_TAG. */
MT_NODISCARD enum mt_err mt_cose_encrypt0_decrypt(const struct mt_cose_encrypt0 *e,
                                                  struct mt_aead *aead,
                                                  const uint8_t *key, size_t key_len,
                                                  const uint8_t *aad, size_t aad_len,
                                                  uint8_t *out, size_t cap,
                                                  size_t *out_len);

/* Make a tagged Sign1 with protected {1: alg} and unprotected {4: kid}
 * (kid may be NULL).  alg is MT_COSE_ALG_ES256 or MT_COSE_ALG_EDDSA and must
 * fit the key.  Errors: MT_ERR_BUFFER, MT_ERR_COSE_ALG, key store errors. */
MT_NODISCARD enum mt_err mt_cose_sign1_sign(struct mt_key *key, int64_t alg,
                                            const uint8_t *kid, size_t kid_len,
                                            const uint8_t *payload, size_t payload_len,
                                            const uint8_t *aad, size_t aad_len,
                                            uint8_t *out, size_t cap, size_t *len);

/* Make a tagged Encrypt0 with protected {1: alg}, unprotected {5: iv}. */
MT_NODISCARD enum mt_err mt_cose_encrypt0_encrypt(struct mt_aead *aead, int64_t alg,
                                                  const uint8_t *key, size_t key_len,
                                                  const uint8_t iv[MT_AEAD_IV_LEN],
                                                  const uint8_t *pt, size_t pt_len,
                                                  const uint8_t *aad, size_t aad_len,
                                                  uint8_t *out, size_t cap, size_t *len);

#endif
