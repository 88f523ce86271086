/*
 * mt_crypto.h — the OpenSSL adapter: public keys, signatures, hashes, HKDF,
 * AES-GCM and randomness.  The only module that talks to OpenSSL's
 * primitives directly (the key store drives tokens through PKCS#11).
 *
 * Public keys are parsed once into a `struct mt_pubkey` and reused: parsing a
 * P-256 SubjectPublicKeyInfo costs more than two verifications (FIELD-NOTES),
 * so the hub caches one per device.  A parsed key is immutable and may be used
 * by several threads at once.  Its `kid` (protocol §1: first 8 bytes of
 * SHA-256 over the DER SPKI, P-256 with the uncompressed point, Ed25519 in
 * RFC 8410 form) is computed when the key is parsed.
 *
 * Signatures use the COSE forms: ES256 is r ‖ s, 32 bytes each, with
 * 1 ≤ r, s < n checked before the curve arithmetic and no low-s rule;
 * EdDSA is RFC 8032 pure Ed25519, 64 bytes.  DER signatures are accepted only
 * by mt_sig_verify_der(), for X.509 and test vectors.
 *
 * An `struct mt_aead` holds reusable AES-GCM contexts (a fresh context per
 * message costs three times as much); one thread at a time per object.
 */
#ifndef MT_CRYPTO_H
#define MT_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"

enum mt_key_type {
	MT_KEY_NONE = 0,
	MT_KEY_P256 = 1,    /* ES256 */
	MT_KEY_ED25519 = 2, /* EdDSA */
	/* The following exist only for generic COSE verification (test vectors
	 * of the COSE working group); MTP/1 uses P-256 and Ed25519 alone. */
	MT_KEY_P384 = 3,
	MT_KEY_P521 = 4,
	MT_KEY_ED448 = 5,
};

#define MT_KID_LEN 8
#define MT_SIG_LEN 64        /* ES256 r‖s and Ed25519 */
#define MT_SPKI_MAX 160      /* DER SPKI of any supported key */
#define MT_AEAD_TAG_LEN 16
#define MT_AEAD_IV_LEN 12

struct mt_pubkey;

/* Parse a DER SubjectPublicKeyInfo.  P-256 points may be compressed or
 * uncompressed (they are normalised); the point must lie on the curve.
 * Ed25519 accepts the RFC 8410 OID.  On success *out is a new key the caller
 * frees with mt_pubkey_free().  Errors: MT_ERR_KEY_FORMAT, MT_ERR_KEY_TYPE,
 * MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_pubkey_from_spki(const uint8_t *der, size_t len,
                                             struct mt_pubkey **out);
/* As above from PEM text ("-----BEGIN PUBLIC KEY-----"). */
MT_NODISCARD enum mt_err mt_pubkey_from_pem(const char *pem, size_t len,
                                            struct mt_pubkey **out);
/* As above from a PEM file.  Adds MT_ERR_IO. */
MT_NODISCARD enum mt_err mt_pubkey_from_pem_file(const char *path,
                                                 struct mt_pubkey **out);
/* From raw key bytes: a SEC1 point (65 bytes uncompressed or 33 compressed)
 * for the NIST curves, the 32/57-byte public key for Ed25519/Ed448. */
MT_NODISCARD enum mt_err mt_pubkey_from_raw(enum mt_key_type type,
                                            const uint8_t *raw, size_t len,
                                            struct mt_pubkey **out);
void mt_pubkey_free(struct mt_pubkey *pk);

enum mt_key_type mt_pubkey_type(const struct mt_pubkey *pk);
/* The key's kid: MT_KID_LEN bytes owned by `pk`. */
const uint8_t *mt_pubkey_kid(const struct mt_pubkey *pk);
/* The normalised DER SPKI (the bytes the kid is computed over). */
MT_NODISCARD enum mt_err mt_pubkey_spki(const struct mt_pubkey *pk, uint8_t *out,
                                        size_t cap, size_t *len);
/* Write the key as a PEM "PUBLIC KEY" to `path` (mode 0644). */
MT_NODISCARD enum mt_err mt_pubkey_write_pem(const struct mt_pubkey *pk,
                                             const char *path);
/* kid of a DER SPKI, normalising it first.  Errors as mt_pubkey_from_spki. */
MT_NODISCARD enum mt_err mt_kid_of_spki(const uint8_t *der, size_t len,
                                        uint8_t kid[MT_KID_LEN]);

/* Verify a COSE-form signature over the concatenation pre ‖ msg (either
 * part may be empty; the split lets callers sign a structure's prefix and a
 * payload without copying them together).  P-256/P-384/P-521 hash with
 * SHA-256/384/512 and take r ‖ s of 2 × the field size; Ed25519/Ed448 are
 * pure.  Errors: MT_ERR_SIG_FORMAT (length, r or s out of [1, n-1]),
 * MT_ERR_SIG_INVALID, MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_sig_verify(const struct mt_pubkey *pk, const uint8_t *pre,
                                       size_t pre_len, const uint8_t *msg,
                                       size_t msg_len, const uint8_t *sig,
                                       size_t sig_len);
/* Verify an ECDSA signature in DER form, hashed with `hash_bits`
 * (256, 384 or 512).  DER must be strict (no BER leniency). */
MT_NODISCARD enum mt_err mt_sig_verify_der(const struct mt_pubkey *pk, int hash_bits,
                                           const uint8_t *msg, size_t msg_len,
                                           const uint8_t *der, size_t der_len);
/* Same as mt_sig_verify() with an explicit hash for ECDSA (COSE ES512 over
 * P-256 exists in the COSE examples).  hash_bits 0 = the curve's own. */
MT_NODISCARD enum mt_err mt_sig_verify_hash(const struct mt_pubkey *pk, int hash_bits,
                                            const uint8_t *pre, size_t pre_len,
                                            const uint8_t *msg, size_t msg_len,
                                            const uint8_t *sig, size_t sig_len);

MT_NODISCARD enum mt_err mt_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

/* HKDF-SHA256 (RFC 5869), extract and expand.  out_len ≤ 255 × 32. */
MT_NODISCARD enum mt_err mt_hkdf_sha256(const uint8_t *ikm, size_t ikm_len,
                                        const uint8_t *salt, size_t salt_len,
                                        const uint8_t *info, size_t info_len,
                                        uint8_t *out, size_t out_len);

/* Cryptographically secure random bytes (fork-safe). MT_ERR_RANDOM. */
MT_NODISCARD enum mt_err mt_random(uint8_t *buf, size_t len);

/* Wipe a secret (OPENSSL_cleanse). */
void mt_wipe(void *p, size_t len);
/* Constant-time equality: 1 when equal. */
int mt_ct_equal(const void *a, const void *b, size_t len);

struct mt_aead;
MT_NODISCARD enum mt_err mt_aead_new(struct mt_aead **out);
void mt_aead_free(struct mt_aead *a);
/* AES-GCM with a key of 16, 24 or 32 bytes, a 12-byte IV and a 16-byte tag.
 * seal writes pt_len + 16 bytes (ciphertext ‖ tag) to `out`; out may equal
 * pt.  Errors: MT_ERR_ARG, MT_ERR_CRYPTO. */
MT_NODISCARD enum mt_err mt_aead_seal(struct mt_aead *a, const uint8_t *key,
                                      size_t key_len, const uint8_t iv[MT_AEAD_IV_LEN],
                                      const uint8_t *aad, size_t aad_len,
                                      const uint8_t *pt, size_t pt_len, uint8_t *out);
/* open reads ct_len bytes (ciphertext ‖ 16-byte tag) and writes ct_len − 16
 * bytes of plaintext to `out` (may equal ct); when the tag does not verify
 * those bytes are wiped before returning, so nothing unauthenticated leaks.  Errors: MT_ERR_ARG
 * (ct_len < 16), MT_ERR_AEAD_TAG. */
MT_NODISCARD enum mt_err mt_aead_open(struct mt_aead *a, const uint8_t *key,
                                      size_t key_len, const uint8_t iv[MT_AEAD_IV_LEN],
                                      const uint8_t *aad, size_t aad_len,
                                      const uint8_t *ct, size_t ct_len, uint8_t *out);

#endif
