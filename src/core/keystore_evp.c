/*
 * keystore_evp.c — a key store key as an OpenSSL EVP_PKEY, for TLS
 * (mt_key_evp in mt_keystore.h; docs/keystore.md "Keys in TLS").
 *
 * What it does.  The hub's HTTPS server and the device agent's client
 * authenticate with keys that live in a PKCS#11 token, and OpenSSL's TLS
 * wants an EVP_PKEY.  A software key (file:, or imported raw) already is
 * one: we hand out a new reference to it.  A P-256 key in a token becomes a
 * *public* EC_KEY — the token's public point on prime256v1 — with a private
 * EC_KEY_METHOD: a copy of OpenSSL's default whose sign_sig callback takes
 * the digest OpenSSL computed (the TLS 1.3 CertificateVerify transcript hash,
 * or any other EVP_DigestSign digest), has the token sign it with CKM_ECDSA
 * (mt_keystore__sign_digest, the same mechanism mt_key_sign uses for ES256)
 * and returns r and s as an ECDSA_SIG.  The EC_KEY finds its mt_key in an
 * ex_data slot of our own.
 *
 * Why the legacy EC_KEY_METHOD and not an OpenSSL 3 provider: an EVP_PKEY
 * whose EC_KEY has a non-default method is "foreign" to OpenSSL 3.0 and is
 * driven through the legacy EVP_PKEY_METHOD path, which calls the method's
 * sign; libssl signs with it like any other key.  That is what libp11's
 * engine does on OpenSSL 3.0, and it costs one small file instead of a
 * provider with its own key manager, store and signature dispatch tables.
 * The price is the deprecated EC_KEY API, which this file alone uses: it
 * defines OPENSSL_SUPPRESS_DEPRECATED before any OpenSSL header.  The
 * interface (mt_key_evp) does not leak the choice; a provider can replace
 * this file when OpenSSL removes EC_KEY_METHOD.
 *
 * Invariants.
 *  - The private key never leaves the token: the EC_KEY we build has no
 *    private scalar, so anything OpenSSL does with the EVP_PKEY that is not
 *    a signature through our method fails rather than computing in
 *    software (threats I01, I08).  There is no fallback: a token failure is
 *    a failed signature (the TLS handshake aborts).
 *  - Only ECDSA: sign_setup is absent and a caller-supplied nonce (kinv, r
 *    of ECDSA_sign_ex) is refused, because the token draws its own.
 *  - The digest is brought to the 32 bytes ECDSA uses for P-256's 256-bit
 *    order (FIPS 186-4 §6.4: the leftmost 256 bits of a longer hash; a
 *    shorter one is the same integer left-padded with zeros), so TLS 1.2's
 *    ECDSA with SHA-384 or SHA-1 signs correctly even though the token is
 *    asked for exactly what mt_key_sign asks it for.
 *  - Threads: the EVP_PKEY may sign from several threads at once;
 *    mt_keystore__sign_digest serialises per key (the key's lock) and the
 *    PKCS#11 backend per token session (its op_lock).  The method and the
 *    ex_data index are made once (pthread_once) and live until exit.
 *  - Lifetime: the EVP_PKEY borrows the mt_key; the caller keeps the key
 *    open until the last reference to the EVP_PKEY is gone (mt_keystore.h).
 *  - Refused with MT_ERR_KEY_TYPE: derive-only keys of either backend and
 *    Ed25519 keys in a token (OpenSSL has no EVP hook for a foreign Ed25519
 *    key).  A software Ed25519 key is handed out like any software key.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* EC_KEY_METHOD: see the essay above */
#define _POSIX_C_SOURCE 200809L

#include "medtrust/mt_keystore.h"

#include <pthread.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "crypto_int.h"
#include "keystore_int.h"

#define P256_DIGEST_LEN 32 /* bytes of hash ECDSA uses with a 256-bit order */

static pthread_once_t method_once = PTHREAD_ONCE_INIT;
static EC_KEY_METHOD *token_method; /* NULL when it could not be made */
static int key_index = -1;          /* our EC_KEY ex_data slot: the mt_key */

/* ECDSA_do_sign through the token.  kinv and r are a precomputed nonce,
 * which a token cannot use: refused. */
static ECDSA_SIG *token_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
                                 const BIGNUM *r, EC_KEY *eckey)
{
	struct mt_key *k = EC_KEY_get_ex_data(eckey, key_index);
	uint8_t digest[P256_DIGEST_LEN];
	uint8_t rs[MT_SIG_LEN];
	if (k == NULL || dgst == NULL || dlen <= 0 || kinv != NULL || r != NULL) {
		ERR_raise(ERR_LIB_EC, ERR_R_PASSED_INVALID_ARGUMENT);
		return NULL;
	}
	/* Leftmost 256 bits, or the shorter hash as the same integer. */
	memset(digest, 0, sizeof(digest));
	if ((size_t)dlen >= sizeof(digest))
		memcpy(digest, dgst, sizeof(digest));
	else
		memcpy(digest + sizeof(digest) - (size_t)dlen, dgst, (size_t)dlen);

	enum mt_err e = mt_keystore__sign_digest(k, digest, rs);
	if (e != MT_OK) {
		ERR_raise_data(ERR_LIB_EC, ERR_R_OPERATION_FAIL, "medtrust key store: %s",
		               mt_err_str(e));
		return NULL;
	}
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *br = BN_bin2bn(rs, MT_SIG_LEN / 2, NULL);
	BIGNUM *bs = BN_bin2bn(rs + MT_SIG_LEN / 2, MT_SIG_LEN / 2, NULL);
	if (sig == NULL || br == NULL || bs == NULL || !ECDSA_SIG_set0(sig, br, bs)) {
		ERR_raise(ERR_LIB_EC, ERR_R_MALLOC_FAILURE);
		BN_free(br);
		BN_free(bs);
		ECDSA_SIG_free(sig);
		return NULL;
	}
	return sig; /* owns br and bs now */
}

static void make_method(void)
{
	int (*sign)(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
	            unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey) =
	        NULL;
	key_index = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (key_index < 0)
		return;
	EC_KEY_METHOD *m = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
	if (m == NULL)
		return;
	/* OpenSSL's DER-producing sign calls ECDSA_do_sign_ex, which calls our
	 * sign_sig: keep it, drop sign_setup (the token makes its nonce). */
	EC_KEY_METHOD_get_sign(m, &sign, NULL, NULL);
	EC_KEY_METHOD_set_sign(m, sign, NULL, token_sign_sig);
	token_method = m;
}

/* The token key `k` (P-256, may sign) as a public EC_KEY signing through
 * the token, wrapped in a new EVP_PKEY. */
static enum mt_err token_evp(struct mt_key *k, EVP_PKEY **out)
{
	uint8_t point[65];
	size_t point_len = 0;
	enum mt_err e = MT_ERR_CRYPTO;
	EC_KEY *ec = NULL;
	EVP_PKEY *pkey = NULL;

	if (pthread_once(&method_once, make_method) != 0 || token_method == NULL)
		return MT_ERR_CRYPTO;
	/* The public point, from the key's own (already parsed) public half. */
	if (!EVP_PKEY_get_octet_string_param(mt_pubkey__evp(k->pub), OSSL_PKEY_PARAM_PUB_KEY, point,
	                                     sizeof(point), &point_len))
		return MT_ERR_CRYPTO;
	ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	pkey = EVP_PKEY_new();
	if (ec == NULL || pkey == NULL) {
		e = MT_ERR_NOMEM;
		goto fail;
	}
	/* The method first: EVP_PKEY_assign marks a key with a non-default
	 * method foreign, which routes it through the legacy path that calls
	 * our sign. */
	if (!EC_KEY_set_method(ec, token_method) || !EC_KEY_set_ex_data(ec, key_index, k) ||
	    !EC_KEY_oct2key(ec, point, point_len, NULL))
		goto fail;
	if (!EVP_PKEY_assign_EC_KEY(pkey, ec))
		goto fail;
	*out = pkey; /* owns ec */
	return MT_OK;
fail:
	EC_KEY_free(ec);
	EVP_PKEY_free(pkey);
	return e;
}

/* A software key's own EVP_PKEY, after checking it is the key whose public
 * half `k` carries (the software backend's state is that EVP_PKEY:
 * keystore_int.h, MT_KEYSTORE__SOFT_NAME). */
static enum mt_err soft_evp(struct mt_key *k, EVP_PKEY **out)
{
	EVP_PKEY *pkey = k->state;
	if (pkey == NULL || EVP_PKEY_eq(pkey, mt_pubkey__evp(k->pub)) != 1)
		return MT_ERR_CRYPTO;
	if (!EVP_PKEY_up_ref(pkey))
		return MT_ERR_CRYPTO;
	*out = pkey;
	return MT_OK;
}

enum mt_err mt_key_evp(struct mt_key *k, struct evp_pkey_st **out)
{
	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (k == NULL || k->be == NULL || k->pub == NULL)
		return MT_ERR_ARG;
	if ((k->roles & MT_KEYSTORE__ROLE_SIGN) == 0)
		return MT_ERR_KEY_TYPE; /* a derive-only key never signs (I03) */
	if (k->be->name != NULL && strcmp(k->be->name, MT_KEYSTORE__SOFT_NAME) == 0)
		return soft_evp(k, out);
	if (k->type != MT_KEY_P256 || k->be->sign_digest == NULL)
		return MT_ERR_KEY_TYPE;
	return token_evp(k, out);
}
