/*
 * crypto_int.h — OpenSSL-level hooks shared inside libmedtrust only
 * (crypto.c provides them; the key store's software and PKCS#11 backends
 * use them).  Never installed, never included outside src/core.
 */
#ifndef MT_CRYPTO_INT_H
#define MT_CRYPTO_INT_H

#include <openssl/evp.h>

#include "medtrust/mt_crypto.h"

/* Wrap an EVP_PKEY holding a public (or private) key as an mt_pubkey: takes
 * its own reference (EVP_PKEY_up_ref), normalises and computes the kid.
 * Only the public half is ever used through the result. */
enum mt_err mt_pubkey__from_evp(EVP_PKEY *pkey, struct mt_pubkey **out);
/* The EVP_PKEY inside `pk`, borrowed. */
EVP_PKEY *mt_pubkey__evp(const struct mt_pubkey *pk);
/* Software ECDH P-256: x-coordinate of priv × peer. */
enum mt_err mt_ecdh__derive(EVP_PKEY *priv, const struct mt_pubkey *peer, uint8_t x[32]);
/* Software signature in COSE form: ES256 (r ‖ s) or pure Ed25519. */
enum mt_err mt_sign__evp(EVP_PKEY *priv, const uint8_t *msg, size_t len,
                         uint8_t sig[MT_SIG_LEN]);

#endif
