/*
 * mt_keystore.h — private keys behind one interface, chosen by URI.
 *
 *   pkcs11:token=hub;object=kx;pin-value=1234        a key in a PKCS#11 token
 *   pkcs11:token=hub;object=kx?pin-source=/run/pin&module-path=/usr/lib/softhsm/libsofthsm2.so
 *   file:/var/lib/medtrust/dev-1.key                 encrypted PKCS#8 PEM file
 *
 * pkcs11: URIs follow RFC 7512: path attributes `token`, `manufacturer`,
 * `serial`, `model`, `object` (the key's CKA_LABEL), `id` (CKA_ID,
 * percent-encoded bytes), `type` (private); query attributes `pin-value`,
 * `pin-source` (a file holding the PIN), `module-path`.  Without
 * `module-path` the module is $MEDTRUST_PKCS11_MODULE, else SoftHSM2's
 * /usr/lib/softhsm/libsofthsm2.so.  A module is loaded and initialised once
 * per process; several keys in one token share one logged-in session
 * (CKR_USER_ALREADY_LOGGED_IN counts as logged in).
 *
 * Keys generated in a token are CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE and
 * not CKA_EXTRACTABLE, with exactly the usage of their role: a signing key has
 * CKA_SIGN and no CKA_DERIVE, a key-agreement key CKA_DERIVE and no CKA_SIGN
 * (threats I01–I03).  Only the public half ever leaves the token.
 *
 * file: keys are PKCS#8 PEM encrypted with the passphrase in the environment
 * variable MEDTRUST_KEY_PASSPHRASE (AES-256-CBC, scrypt/PBKDF2 per OpenSSL's
 * PKCS#8 v2), written with mode 0600; a key file readable by group or others
 * is refused when opened.  For development and for simulating large fleets.
 *
 * Keys imported from raw bytes (mt_key_import_raw) live only in memory: test
 * vectors and unit tests use them.
 *
 * Signing with a `struct mt_key` (mt_key_sign, mt_key_evp) is serialised
 * per key, so one key may serve several threads; opening and freeing it
 * are one thread's.  mt_key_free() wipes any secret it holds in memory.
 */
#ifndef MT_KEYSTORE_H
#define MT_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "mt_crypto.h"
#include "mt_err.h"

enum mt_key_role {
	MT_KEY_ROLE_SIGN = 1,   /* ldev, idev, command, CA keys: CKA_SIGN only */
	MT_KEY_ROLE_DERIVE = 2, /* kx keys: CKA_DERIVE only (ECDH) */
};

struct mt_key;

/* Open the existing private key named by `uri`.
 * Errors: MT_ERR_KS_URI, MT_ERR_KS_MODULE, MT_ERR_KS_TOKEN, MT_ERR_KS_PIN,
 * MT_ERR_KS_KEY_NOT_FOUND, MT_ERR_KS_PASSPHRASE, MT_ERR_KS_PERMISSION,
 * MT_ERR_IO, MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_key_open(const char *uri, struct mt_key **out);

/* Generate a new key pair at `uri`: inside the token for pkcs11: (the URI's
 * `object` becomes CKA_LABEL, its `id` CKA_ID, or a random 8-byte id), or
 * as a new encrypted file for file: (refusing to overwrite).  Types:
 * MT_KEY_P256 (sign or derive) and MT_KEY_ED25519 (sign) where the token
 * supports it.  Errors: those of mt_key_open, MT_ERR_KS_EXISTS,
 * MT_ERR_UNSUPPORTED, MT_ERR_KS_OPERATION. */
MT_NODISCARD enum mt_err mt_key_generate(const char *uri, enum mt_key_type type,
                                         enum mt_key_role role, struct mt_key **out);

/* Generate the deployment's key-encryption key at the pkcs11: `uri` (its
 * `object` becomes CKA_LABEL; `id` CKA_ID, or a random 8-byte id): an
 * AES-256 secret key (CKK_AES) that is CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, not CKA_EXTRACTABLE, not modifiable or copyable, with
 * CKA_WRAP and CKA_UNWRAP and nothing else (no ENCRYPT, DECRYPT, SIGN,
 * VERIFY, DERIVE): it only ever wraps other keys, so a logged-in attacker
 * cannot use it as a decryption oracle for arbitrary data.  Nothing is
 * returned: mt_kek_open opens it for wrapping data keys (docs/keystore.md).
 * file: URIs are MT_ERR_UNSUPPORTED (a software KEK would sit next to what
 * it protects).  Errors: those of mt_key_open, MT_ERR_KS_EXISTS (any object
 * with that label or id), MT_ERR_UNSUPPORTED (also: the token lacks
 * CKM_AES_KEY_GEN), MT_ERR_KS_OPERATION. */
MT_NODISCARD enum mt_err mt_key_generate_kek(const char *uri);

/* ---- data keys under the key-encryption key (storage at rest) ----------
 *
 * Envelope encryption: stored secrets (readings, patient identity) are
 * encrypted in software with random 256-bit data keys, and each data key
 * is kept only wrapped by the deployment's KEK, which never leaves the
 * token (RFC 3394 AES key wrap, CKM_AES_KEY_WRAP, computed inside the
 * token).  A stolen database holds wrapped keys only.  */
#define MT_DEK_LEN 32
#define MT_DEK_WRAPPED_LEN 40 /* RFC 3394: the key and an 8-byte check value */

struct mt_kek;

/* Open the KEK at the pkcs11: `uri` (made by mt_key_generate_kek): a
 * secret key found by its label (`object`) and/or `id`.  Errors: those of
 * mt_key_open (MT_ERR_KS_KEY_NOT_FOUND, MT_ERR_KS_PIN, ...),
 * MT_ERR_UNSUPPORTED (file: URIs; a token without CKM_AES_KEY_WRAP),
 * MT_ERR_KS_KEY_TYPE (the object is not an AES key allowed to wrap and
 * unwrap), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_kek_open(const char *uri, struct mt_kek **out);
void mt_kek_free(struct mt_kek *k);

/* Wrap `dek` (MT_DEK_LEN bytes) under the KEK, inside the token.  The
 * plaintext key exists in the token only as a session object for the
 * duration of the call.  Errors: MT_ERR_KS_OPERATION. */
MT_NODISCARD enum mt_err mt_kek_wrap(struct mt_kek *k, const uint8_t dek[MT_DEK_LEN],
                                     uint8_t wrapped[MT_DEK_WRAPPED_LEN]);

/* Unwrap into `dek` (the caller wipes it with mt_wipe when done).  A
 * wrapped key that was altered, or wrapped under another KEK, fails the
 * RFC 3394 integrity check: MT_ERR_KS_OPERATION, and dek is zeroed. */
MT_NODISCARD enum mt_err mt_kek_unwrap(struct mt_kek *k, const uint8_t wrapped[MT_DEK_WRAPPED_LEN],
                                       uint8_t dek[MT_DEK_LEN]);

/* An in-memory key from its raw private value: the 32-byte scalar of P-256
 * (leading zero bytes allowed up to 33 bytes) or the 32-byte Ed25519 seed. */
MT_NODISCARD enum mt_err mt_key_import_raw(enum mt_key_type type, enum mt_key_role role,
                                           const uint8_t *priv, size_t len,
                                           struct mt_key **out);

void mt_key_free(struct mt_key *k);

enum mt_key_type mt_key_type(const struct mt_key *k);
/* The public half, owned by `k` (valid until mt_key_free). */
const struct mt_pubkey *mt_key_public(const struct mt_key *k);

/* Sign `msg` in the COSE form: ES256 (SHA-256 computed outside the token,
 * CKM_ECDSA inside, r ‖ s) or pure Ed25519 (CKM_EDDSA).  Writes MT_SIG_LEN
 * bytes.  Errors: MT_ERR_KS_KEY_TYPE (a derive-only key),
 * MT_ERR_KS_OPERATION (token failure: the caller must not fall back). */
MT_NODISCARD enum mt_err mt_key_sign(struct mt_key *k, const uint8_t *msg, size_t len,
                                     uint8_t sig[MT_SIG_LEN]);

/* ECDH P-256 with `peer`: writes the 32-byte x-coordinate of the shared
 * point (the IKM of protocol §4).  The caller wipes it after use.
 * Errors: MT_ERR_KS_KEY_TYPE (not a P-256 derive key, or peer not P-256),
 * MT_ERR_KS_OPERATION. */
MT_NODISCARD enum mt_err mt_key_ecdh(struct mt_key *k, const struct mt_pubkey *peer,
                                     uint8_t x[32]);

/* An OpenSSL EVP_PKEY that signs with `k`, for TLS (SSL_CTX_use_PrivateKey,
 * SSL_use_PrivateKey) and nothing else.  For a software key it is the key
 * itself (a new reference).  For a P-256 key in a PKCS#11 token it is a
 * public key whose ECDSA signing operation is routed through the token
 * (the digest is computed by OpenSSL, signed in the token, as mt_key_sign
 * does for ES256): the private key never leaves the token.  Signing is
 * serialised per key, so one key may serve several TLS threads.  `k` must
 * outlive the EVP_PKEY.  The caller frees *out with EVP_PKEY_free.
 * Errors: MT_ERR_KEY_TYPE (an Ed25519 token key, or a derive-only key),
 * MT_ERR_CRYPTO, MT_ERR_NOMEM. */
struct evp_pkey_st;
MT_NODISCARD enum mt_err mt_key_evp(struct mt_key *k, struct evp_pkey_st **out);

#endif
