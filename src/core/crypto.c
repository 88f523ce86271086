/*
 * crypto.c — the OpenSSL adapter (mt_crypto.h, crypto_int.h).
 *
 * This is the one file of libmedtrust that calls OpenSSL's primitives.  It
 * turns public keys into `struct mt_pubkey`, verifies COSE-form signatures,
 * hashes, derives keys with HKDF, seals and opens AES-GCM, and offers the key
 * store two software helpers (ECDH and signing with an EVP_PKEY).
 *
 * Public keys (protocol §1).  Only the exact DER forms of the supported keys
 * are accepted: SubjectPublicKeyInfo with the named-curve OID and a SEC1
 * point (compressed or uncompressed) for P-256/P-384/P-521, the RFC 8410
 * form for Ed25519/Ed448.  Anything else — BER, explicit curve parameters,
 * unused parameters, trailing bytes — is MT_ERR_KEY_FORMAT (or
 * MT_ERR_KEY_TYPE for a well-formed key of another kind).  The DER is never
 * handed to OpenSSL's decoder on the accepting path: the header bytes are
 * compared with the ones this file builds, and the point is imported with
 * EVP_PKEY_fromdata() and checked to lie on the curve.  Every key carries its
 * normalised SPKI (P-256 uncompressed) and its kid, the first 8 bytes of
 * SHA-256 over that SPKI, computed once.
 *
 * Signatures.  ECDSA signatures arrive as r ‖ s (COSE, RFC 9053 §2.1): the
 * length must be exactly twice the field size and 1 ≤ r, s < n is checked on
 * the bytes, before any curve arithmetic, against the group order fetched
 * once from OpenSSL.  High s is accepted (protocol §4).  The r ‖ s form is
 * turned into DER on the stack (no BIGNUM, no allocation) and verified with
 * EVP_PKEY_verify() over a digest computed from the two parts pre ‖ msg
 * without joining them.  EdDSA is pure (EVP_DigestVerify with no digest);
 * there the parts are joined, on the stack when small.  DER input
 * (mt_sig_verify_der) is parsed strictly by this file and then takes the same
 * path, so the range rules hold for both forms.
 *
 * Speed.  The hub verifies one signature per packet, so the verify path does
 * the least OpenSSL allows: the key is parsed once, digests and ciphers are
 * fetched once per process (CRYPTO_THREAD_run_once) rather than implicitly
 * per call, and the only allocations are OpenSSL's own contexts (an
 * EVP_MD_CTX and an EVP_PKEY_CTX per verification; keeping them would tie a
 * key to one thread, and a shared `struct mt_pubkey` must be usable by many).
 * AES-GCM keeps its EVP_CIPHER_CTX in `struct mt_aead` and re-keys it per
 * call (a fresh context costs three times as much, FIELD-NOTES); the cipher
 * is passed again only when the key size changes, so the provider context is
 * reused.
 *
 * Secrets.  Key material that passes through this file (derived keys, ECDH
 * secrets, plaintext that failed authentication) is wiped with
 * OPENSSL_cleanse; comparisons of secrets use CRYPTO_memcmp.  OpenSSL's
 * error queue is cleared whenever a call fails, so refusals leave no state
 * behind in the thread.
 */
#define _POSIX_C_SOURCE 200809L

#include "crypto_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define MT_FIELD_MAX 66          /* P-521 field bytes */
#define MT_SIGDER_MAX (3 + 2 * (2 + MT_FIELD_MAX + 1))
#define MT_ED_JOIN_STACK 1024    /* EdDSA: pre ‖ msg up to this size on the stack */
#define MT_PEM_FILE_MAX 65536

/* ---------------------------------------------------------------- curves */

struct mt_curve {
	enum mt_key_type type;
	const char *name;        /* OpenSSL group name (EC) or key type (EdDSA) */
	int nid;                 /* EC only */
	const uint8_t *oid;      /* curve OID (EC) or algorithm OID (EdDSA) */
	size_t oid_len;
	size_t field;            /* bytes of a field element / of the raw key */
	size_t sig_len;
	int hash_bits;           /* the curve's own ECDSA hash; 0 for EdDSA */
};

static const uint8_t oid_ec_pubkey[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const uint8_t oid_p256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x2b, 0x81, 0x04, 0x00, 0x22};
static const uint8_t oid_p521[] = {0x2b, 0x81, 0x04, 0x00, 0x23};
static const uint8_t oid_ed25519[] = {0x2b, 0x65, 0x70};
static const uint8_t oid_ed448[] = {0x2b, 0x65, 0x71};

static const struct mt_curve mt_curves[] = {
	{MT_KEY_P256, "prime256v1", NID_X9_62_prime256v1, oid_p256, sizeof oid_p256, 32, 64, 256},
	{MT_KEY_ED25519, "ED25519", 0, oid_ed25519, sizeof oid_ed25519, 32, 64, 0},
	{MT_KEY_P384, "secp384r1", NID_secp384r1, oid_p384, sizeof oid_p384, 48, 96, 384},
	{MT_KEY_P521, "secp521r1", NID_secp521r1, oid_p521, sizeof oid_p521, 66, 132, 512},
	{MT_KEY_ED448, "ED448", 0, oid_ed448, sizeof oid_ed448, 57, 114, 0},
};
#define MT_N_CURVES (sizeof mt_curves / sizeof mt_curves[0])

static const struct mt_curve *curve_of(enum mt_key_type t)
{
	for (size_t i = 0; i < MT_N_CURVES; i++)
		if (mt_curves[i].type == t)
			return &mt_curves[i];
	return NULL;
}

static int is_ec(const struct mt_curve *c)
{
	return c->nid != 0;
}

/* -------------------------------------------- algorithms fetched once */

static struct {
	EVP_MD *sha256, *sha384, *sha512;
	EVP_CIPHER *gcm[3]; /* AES-128/192/256-GCM */
	EVP_KDF *hkdf;
	uint8_t order[MT_N_CURVES][MT_FIELD_MAX]; /* n of each EC curve, field bytes */
	int ok;
} mt_alg;
static CRYPTO_ONCE mt_alg_once = CRYPTO_ONCE_STATIC_INIT;

static void alg_init(void)
{
	mt_alg.sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	mt_alg.sha384 = EVP_MD_fetch(NULL, "SHA2-384", NULL);
	mt_alg.sha512 = EVP_MD_fetch(NULL, "SHA2-512", NULL);
	mt_alg.gcm[0] = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
	mt_alg.gcm[1] = EVP_CIPHER_fetch(NULL, "AES-192-GCM", NULL);
	mt_alg.gcm[2] = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	mt_alg.hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	int ok = mt_alg.sha256 && mt_alg.sha384 && mt_alg.sha512 && mt_alg.gcm[0] &&
	         mt_alg.gcm[1] && mt_alg.gcm[2] && mt_alg.hkdf;
	for (size_t i = 0; ok && i < MT_N_CURVES; i++) {
		const struct mt_curve *c = &mt_curves[i];
		if (!is_ec(c))
			continue;
		EC_GROUP *g = EC_GROUP_new_by_curve_name(c->nid);
		const BIGNUM *n = g ? EC_GROUP_get0_order(g) : NULL;
		if (n == NULL || BN_bn2binpad(n, mt_alg.order[i], (int)c->field) != (int)c->field)
			ok = 0;
		EC_GROUP_free(g);
	}
	mt_alg.ok = ok;
	ERR_clear_error();
}

static int alg_ready(void)
{
	return CRYPTO_THREAD_run_once(&mt_alg_once, alg_init) && mt_alg.ok;
}

static const uint8_t *order_of(const struct mt_curve *c)
{
	return mt_alg.order[c - mt_curves];
}

static const EVP_MD *md_of_bits(int bits)
{
	switch (bits) {
	case 256: return mt_alg.sha256;
	case 384: return mt_alg.sha384;
	case 512: return mt_alg.sha512;
	default: return NULL;
	}
}

/* Clear OpenSSL's error queue and pass `e` through. */
static enum mt_err ossl_fail(enum mt_err e)
{
	ERR_clear_error();
	return e;
}

/* ------------------------------------------------------------ pubkeys */

struct mt_pubkey {
	const struct mt_curve *curve;
	EVP_PKEY *pkey;
	uint8_t kid[MT_KID_LEN];
	size_t spki_len;
	uint8_t spki[MT_SPKI_MAX];
};

static size_t der_put_len(uint8_t *out, size_t n)
{
	if (n < 0x80) {
		out[0] = (uint8_t)n;
		return 1;
	}
	out[0] = 0x81; /* every length here is below 256 */
	out[1] = (uint8_t)n;
	return 2;
}

static size_t der_len_len(size_t n)
{
	return n < 0x80 ? 1 : 2;
}

/*
 * Write the DER SPKI of a key of curve `c` up to (not including) the
 * `pt_len` bytes of the point / raw key, which follow the header directly.
 * Returns the header length (at most 26 bytes).
 */
static size_t spki_header(const struct mt_curve *c, size_t pt_len, uint8_t *out)
{
	size_t alg_body = is_ec(c) ? (2 + sizeof oid_ec_pubkey) + (2 + c->oid_len)
	                           : (2 + c->oid_len);
	size_t alg_len = 1 + der_len_len(alg_body) + alg_body;
	size_t bit_body = 1 + pt_len;
	size_t bit_len = 1 + der_len_len(bit_body) + bit_body;
	size_t o = 0;

	out[o++] = 0x30;
	o += der_put_len(out + o, alg_len + bit_len);
	out[o++] = 0x30;
	o += der_put_len(out + o, alg_body);
	if (is_ec(c)) {
		out[o++] = 0x06;
		out[o++] = (uint8_t)sizeof oid_ec_pubkey;
		memcpy(out + o, oid_ec_pubkey, sizeof oid_ec_pubkey);
		o += sizeof oid_ec_pubkey;
	}
	out[o++] = 0x06;
	out[o++] = (uint8_t)c->oid_len;
	memcpy(out + o, c->oid, c->oid_len);
	o += c->oid_len;
	out[o++] = 0x03;
	o += der_put_len(out + o, bit_body);
	out[o++] = 0x00;
	return o;
}

/* Fill pk->spki from the uncompressed point / raw key and compute the kid. */
static enum mt_err pubkey_finish(struct mt_pubkey *pk, const uint8_t *pt, size_t pt_len)
{
	uint8_t h[32];
	size_t hl = spki_header(pk->curve, pt_len, pk->spki);

	if (hl + pt_len > sizeof pk->spki)
		return MT_ERR_INTERNAL;
	memcpy(pk->spki + hl, pt, pt_len);
	pk->spki_len = hl + pt_len;
	if (mt_sha256(pk->spki, pk->spki_len, h) != MT_OK)
		return MT_ERR_CRYPTO;
	memcpy(pk->kid, h, MT_KID_LEN);
	return MT_OK;
}

/* The uncompressed SEC1 point of an EC key (1 + 2 × field bytes). */
static enum mt_err ec_point_of(const struct mt_curve *c, const EVP_PKEY *pkey,
                               uint8_t *out)
{
	BIGNUM *x = NULL, *y = NULL;
	enum mt_err e = MT_ERR_KEY_FORMAT;

	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
	    BN_bn2binpad(x, out + 1, (int)c->field) == (int)c->field &&
	    BN_bn2binpad(y, out + 1 + c->field, (int)c->field) == (int)c->field) {
		out[0] = 0x04;
		e = MT_OK;
	}
	BN_free(x);
	BN_free(y);
	return e == MT_OK ? e : ossl_fail(e);
}

/* Is the public point of `pkey` valid (on the curve, in range, not ∞)? */
static int ec_public_ok(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int ok = pc != NULL && EVP_PKEY_public_check_quick(pc) == 1;
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static enum mt_err pubkey_wrap(const struct mt_curve *c, EVP_PKEY *pkey,
                               struct mt_pubkey **out)
{
	uint8_t pt[1 + 2 * MT_FIELD_MAX];
	size_t pt_len;
	enum mt_err e;
	struct mt_pubkey *pk;

	if (is_ec(c)) {
		if (!ec_public_ok(pkey))
			return ossl_fail(MT_ERR_KEY_FORMAT);
		if ((e = ec_point_of(c, pkey, pt)) != MT_OK)
			return e;
		pt_len = 1 + 2 * c->field;
	} else {
		pt_len = c->field;
		size_t got = pt_len;
		if (EVP_PKEY_get_raw_public_key(pkey, pt, &got) != 1 || got != pt_len)
			return ossl_fail(MT_ERR_KEY_FORMAT);
	}
	pk = calloc(1, sizeof *pk);
	if (pk == NULL)
		return MT_ERR_NOMEM;
	pk->curve = c;
	if ((e = pubkey_finish(pk, pt, pt_len)) != MT_OK) {
		free(pk);
		return e;
	}
	if (EVP_PKEY_up_ref(pkey) != 1) {
		free(pk);
		return ossl_fail(MT_ERR_CRYPTO);
	}
	pk->pkey = pkey;
	*out = pk;
	return MT_OK;
}

enum mt_err mt_pubkey_from_raw(enum mt_key_type type, const uint8_t *raw, size_t len,
                               struct mt_pubkey **out)
{
	const struct mt_curve *c = curve_of(type);
	EVP_PKEY *pkey = NULL;
	enum mt_err e;

	if (out == NULL || (raw == NULL && len > 0))
		return MT_ERR_ARG;
	*out = NULL;
	if (c == NULL)
		return MT_ERR_KEY_TYPE;
	if (!alg_ready())
		return ossl_fail(MT_ERR_CRYPTO);

	if (is_ec(c)) {
		int unc = len == 1 + 2 * c->field && raw[0] == 0x04;
		int cmp = len == 1 + c->field && (raw[0] == 0x02 || raw[0] == 0x03);
		if (!unc && !cmp)
			return MT_ERR_KEY_FORMAT;
		OSSL_PARAM params[3];
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
		                                             (char *)c->name, 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
		                                              (void *)raw, len);
		params[2] = OSSL_PARAM_construct_end();
		EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		if (pc == NULL)
			return ossl_fail(MT_ERR_NOMEM);
		int ok = EVP_PKEY_fromdata_init(pc) == 1 &&
		         EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1;
		EVP_PKEY_CTX_free(pc);
		if (!ok)
			return ossl_fail(MT_ERR_KEY_FORMAT);
	} else {
		if (len != c->field)
			return MT_ERR_KEY_FORMAT;
		pkey = EVP_PKEY_new_raw_public_key_ex(NULL, c->name, NULL, raw, len);
		if (pkey == NULL)
			return ossl_fail(MT_ERR_KEY_FORMAT);
	}
	e = pubkey_wrap(c, pkey, out);
	EVP_PKEY_free(pkey); /* pubkey_wrap took its own reference */
	return e;
}

/* A DER SPKI that is not in one of our exact forms: a well-formed key of a
 * kind we do not support is MT_ERR_KEY_TYPE, anything else MT_ERR_KEY_FORMAT. */
static enum mt_err spki_classify(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	EVP_PKEY *k;
	enum mt_err e = MT_ERR_KEY_FORMAT;

	if (len > LONG_MAX)
		return e;
	k = d2i_PUBKEY(NULL, &p, (long)len);
	if (k == NULL)
		return ossl_fail(e);
	if (!EVP_PKEY_is_a(k, "EC") && !EVP_PKEY_is_a(k, "ED25519") &&
	    !EVP_PKEY_is_a(k, "ED448")) {
		e = MT_ERR_KEY_TYPE;
	} else if (EVP_PKEY_is_a(k, "EC")) {
		char name[64];
		size_t nl = 0;
		if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, name,
		                                   sizeof name, &nl) == 1) {
			e = MT_ERR_KEY_TYPE;
			for (size_t i = 0; i < MT_N_CURVES; i++)
				if (is_ec(&mt_curves[i]) && strcmp(name, mt_curves[i].name) == 0)
					e = MT_ERR_KEY_FORMAT; /* ours, but not in DER form */
		}
	}
	EVP_PKEY_free(k);
	return ossl_fail(e);
}

enum mt_err mt_pubkey_from_spki(const uint8_t *der, size_t len, struct mt_pubkey **out)
{
	uint8_t hdr[32];

	if (out == NULL || (der == NULL && len > 0))
		return MT_ERR_ARG;
	*out = NULL;
	for (size_t i = 0; i < MT_N_CURVES; i++) {
		const struct mt_curve *c = &mt_curves[i];
		size_t forms[2] = {is_ec(c) ? 1 + 2 * c->field : c->field,
		                   is_ec(c) ? 1 + c->field : 0};
		for (size_t f = 0; f < 2; f++) {
			if (forms[f] == 0)
				continue;
			size_t hl = spki_header(c, forms[f], hdr);
			if (len == hl + forms[f] && memcmp(der, hdr, hl) == 0)
				return mt_pubkey_from_raw(c->type, der + hl, forms[f], out);
		}
	}
	return spki_classify(der, len);
}

enum mt_err mt_pubkey_from_pem(const char *pem, size_t len, struct mt_pubkey **out)
{
	BIO *bio;
	enum mt_err e = MT_ERR_KEY_FORMAT;

	if (out == NULL || pem == NULL || len > INT_MAX)
		return MT_ERR_ARG;
	*out = NULL;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	for (;;) {
		char *name = NULL, *header = NULL;
		unsigned char *data = NULL;
		long dlen = 0;
		if (PEM_read_bio(bio, &name, &header, &data, &dlen) != 1)
			break;
		int found = strcmp(name, "PUBLIC KEY") == 0;
		if (found)
			e = mt_pubkey_from_spki(data, (size_t)dlen, out);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		if (found)
			break;
	}
	BIO_free(bio);
	return e == MT_OK ? e : ossl_fail(e);
}

enum mt_err mt_pubkey_from_pem_file(const char *path, struct mt_pubkey **out)
{
	FILE *f;
	char *buf;
	size_t n;
	enum mt_err e;

	if (path == NULL || out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	f = fopen(path, "rb");
	if (f == NULL)
		return MT_ERR_IO;
	buf = malloc(MT_PEM_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return MT_ERR_NOMEM;
	}
	n = fread(buf, 1, MT_PEM_FILE_MAX + 1, f);
	if (ferror(f)) {
		e = MT_ERR_IO;
	} else if (n > MT_PEM_FILE_MAX) {
		e = MT_ERR_KEY_FORMAT; /* no public key file is this large */
	} else {
		e = mt_pubkey_from_pem(buf, n, out);
	}
	fclose(f);
	free(buf);
	return e;
}

void mt_pubkey_free(struct mt_pubkey *pk)
{
	if (pk == NULL)
		return;
	EVP_PKEY_free(pk->pkey);
	free(pk);
}

enum mt_key_type mt_pubkey_type(const struct mt_pubkey *pk)
{
	return pk != NULL ? pk->curve->type : MT_KEY_NONE;
}

const uint8_t *mt_pubkey_kid(const struct mt_pubkey *pk)
{
	return pk != NULL ? pk->kid : NULL;
}

enum mt_err mt_pubkey_spki(const struct mt_pubkey *pk, uint8_t *out, size_t cap,
                           size_t *len)
{
	if (pk == NULL || out == NULL || len == NULL)
		return MT_ERR_ARG;
	if (cap < pk->spki_len)
		return MT_ERR_BUFFER;
	memcpy(out, pk->spki, pk->spki_len);
	*len = pk->spki_len;
	return MT_OK;
}

enum mt_err mt_pubkey_write_pem(const struct mt_pubkey *pk, const char *path)
{
	BIO *bio;
	char *text = NULL;
	long tlen;
	enum mt_err e = MT_OK;
	int fd;

	if (pk == NULL || path == NULL)
		return MT_ERR_ARG;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	if (PEM_write_bio(bio, "PUBLIC KEY", "", pk->spki, (long)pk->spki_len) <= 0 ||
	    (tlen = BIO_get_mem_data(bio, &text)) <= 0) {
		BIO_free(bio);
		return ossl_fail(MT_ERR_CRYPTO);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		BIO_free(bio);
		return MT_ERR_IO;
	}
	if (fchmod(fd, 0644) != 0) /* an existing file keeps no other mode */
		e = MT_ERR_IO;
	for (long off = 0; e == MT_OK && off < tlen;) {
		ssize_t w = write(fd, text + off, (size_t)(tlen - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			e = MT_ERR_IO;
			break;
		}
		off += w;
	}
	if (close(fd) != 0)
		e = MT_ERR_IO;
	BIO_free(bio);
	return e;
}

enum mt_err mt_kid_of_spki(const uint8_t *der, size_t len, uint8_t kid[MT_KID_LEN])
{
	struct mt_pubkey *pk;
	enum mt_err e;

	if (kid == NULL)
		return MT_ERR_ARG;
	if ((e = mt_pubkey_from_spki(der, len, &pk)) != MT_OK)
		return e;
	memcpy(kid, pk->kid, MT_KID_LEN);
	mt_pubkey_free(pk);
	return MT_OK;
}

static const struct mt_curve *curve_of_evp(const EVP_PKEY *pkey)
{
	if (EVP_PKEY_is_a(pkey, "ED25519"))
		return curve_of(MT_KEY_ED25519);
	if (EVP_PKEY_is_a(pkey, "ED448"))
		return curve_of(MT_KEY_ED448);
	if (EVP_PKEY_is_a(pkey, "EC")) {
		char name[64];
		size_t nl = 0;
		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name,
		                                   sizeof name, &nl) != 1) {
			ERR_clear_error();
			return NULL;
		}
		for (size_t i = 0; i < MT_N_CURVES; i++)
			if (is_ec(&mt_curves[i]) && strcmp(name, mt_curves[i].name) == 0)
				return &mt_curves[i];
	}
	return NULL;
}

enum mt_err mt_pubkey__from_evp(EVP_PKEY *pkey, struct mt_pubkey **out)
{
	const struct mt_curve *c;

	if (pkey == NULL || out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (!alg_ready())
		return ossl_fail(MT_ERR_CRYPTO);
	if ((c = curve_of_evp(pkey)) == NULL)
		return MT_ERR_KEY_TYPE;
	return pubkey_wrap(c, pkey, out);
}

EVP_PKEY *mt_pubkey__evp(const struct mt_pubkey *pk)
{
	return pk != NULL ? pk->pkey : NULL;
}

/* --------------------------------------------------------- signatures */

/* 1 ≤ v < n, both `len` bytes big-endian. */
static int scalar_in_range(const uint8_t *v, const uint8_t *n, size_t len)
{
	uint8_t any = 0;
	for (size_t i = 0; i < len; i++)
		any |= v[i];
	return any != 0 && memcmp(v, n, len) < 0;
}

/* DER INTEGER of the unsigned big-endian v[0..len). */
static size_t der_uint(uint8_t *out, const uint8_t *v, size_t len)
{
	while (len > 1 && v[0] == 0) {
		v++;
		len--;
	}
	size_t pad = (v[0] & 0x80) ? 1 : 0;
	out[0] = 0x02;
	out[1] = (uint8_t)(len + pad); /* ≤ 67 */
	out[2] = 0;
	memcpy(out + 2 + pad, v, len);
	return 2 + pad + len;
}

/* r ‖ s (each `field` bytes) → DER ECDSA-Sig-Value in `out`. */
static size_t rs_to_der(const uint8_t *rs, size_t field, uint8_t *out)
{
	uint8_t body[2 * (2 + MT_FIELD_MAX + 1)];
	size_t bl = der_uint(body, rs, field);
	bl += der_uint(body + bl, rs + field, field);
	size_t o = 0;
	out[o++] = 0x30;
	o += der_put_len(out + o, bl);
	memcpy(out + o, body, bl);
	return o + bl;
}

/* Read one strict DER INTEGER (positive, minimal, at most `field` bytes of
 * magnitude) into out[0..field), left-padded.  Returns bytes consumed or 0. */
static size_t der_get_uint(const uint8_t *p, size_t n, uint8_t *out, size_t field)
{
	if (n < 3 || p[0] != 0x02 || p[1] >= 0x80)
		return 0;
	size_t il = p[1];
	const uint8_t *v = p + 2;
	if (il == 0 || il > n - 2)
		return 0;
	if (v[0] & 0x80)
		return 0; /* negative */
	if (v[0] == 0 && il > 1) {
		if (!(v[1] & 0x80))
			return 0; /* not minimal */
		v++;
		il--;
	}
	if (il > field)
		return 0;
	memset(out, 0, field - il);
	memcpy(out + field - il, v, il);
	return 2 + (size_t)p[1];
}

/* Strict DER ECDSA-Sig-Value → r ‖ s.  MT_ERR_SIG_FORMAT on any deviation. */
static enum mt_err der_to_rs(const uint8_t *der, size_t len, size_t field, uint8_t *rs)
{
	size_t body, o;

	if (len < 2 || der[0] != 0x30)
		return MT_ERR_SIG_FORMAT;
	if (der[1] < 0x80) {
		body = der[1];
		o = 2;
	} else if (der[1] == 0x81 && len >= 3 && der[2] >= 0x80) {
		body = der[2];
		o = 3;
	} else {
		return MT_ERR_SIG_FORMAT;
	}
	if (body != len - o)
		return MT_ERR_SIG_FORMAT;
	size_t a = der_get_uint(der + o, len - o, rs, field);
	if (a == 0)
		return MT_ERR_SIG_FORMAT;
	o += a;
	size_t b = der_get_uint(der + o, len - o, rs + field, field);
	if (b == 0 || o + b != len)
		return MT_ERR_SIG_FORMAT;
	return MT_OK;
}

static enum mt_err ecdsa_verify(const struct mt_pubkey *pk, const EVP_MD *md,
                                const uint8_t *pre, size_t pre_len, const uint8_t *msg,
                                size_t msg_len, const uint8_t *rs)
{
	const struct mt_curve *c = pk->curve;
	uint8_t dg[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	uint8_t der[MT_SIGDER_MAX];
	size_t der_len;
	EVP_MD_CTX *mc;
	EVP_PKEY_CTX *pc;
	int ok, r;

	if (!scalar_in_range(rs, order_of(c), c->field) ||
	    !scalar_in_range(rs + c->field, order_of(c), c->field))
		return MT_ERR_SIG_FORMAT;

	mc = EVP_MD_CTX_new();
	if (mc == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	ok = EVP_DigestInit_ex2(mc, md, NULL) == 1 &&
	     (pre_len == 0 || EVP_DigestUpdate(mc, pre, pre_len) == 1) &&
	     (msg_len == 0 || EVP_DigestUpdate(mc, msg, msg_len) == 1) &&
	     EVP_DigestFinal_ex(mc, dg, &dlen) == 1;
	EVP_MD_CTX_free(mc);
	if (!ok)
		return ossl_fail(MT_ERR_CRYPTO);

	der_len = rs_to_der(rs, c->field, der);
	pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk->pkey, NULL);
	if (pc == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	if (EVP_PKEY_verify_init(pc) != 1) {
		EVP_PKEY_CTX_free(pc);
		return ossl_fail(MT_ERR_CRYPTO);
	}
	r = EVP_PKEY_verify(pc, der, der_len, dg, dlen);
	EVP_PKEY_CTX_free(pc);
	return r == 1 ? MT_OK : ossl_fail(MT_ERR_SIG_INVALID);
}

static enum mt_err eddsa_verify(const struct mt_pubkey *pk, const uint8_t *pre,
                                size_t pre_len, const uint8_t *msg, size_t msg_len,
                                const uint8_t *sig, size_t sig_len)
{
	uint8_t stack[MT_ED_JOIN_STACK];
	uint8_t *joined = NULL;
	const uint8_t *tbs;
	size_t tbs_len;
	EVP_MD_CTX *mc;
	int r;

	if (pre_len == 0) {
		tbs = msg;
		tbs_len = msg_len;
	} else if (msg_len == 0) {
		tbs = pre;
		tbs_len = pre_len;
	} else {
		if (msg_len > SIZE_MAX - pre_len)
			return MT_ERR_ARG;
		tbs_len = pre_len + msg_len;
		if (tbs_len <= sizeof stack) {
			joined = stack;
		} else if ((joined = malloc(tbs_len)) == NULL) {
			return MT_ERR_NOMEM;
		}
		memcpy(joined, pre, pre_len);
		memcpy(joined + pre_len, msg, msg_len);
		tbs = joined;
	}
	static const uint8_t empty[1];
	if (tbs == NULL)
		tbs = empty;

	mc = EVP_MD_CTX_new();
	if (mc == NULL) {
		r = -2;
	} else if (EVP_DigestVerifyInit_ex(mc, NULL, NULL, NULL, NULL, pk->pkey, NULL) != 1) {
		r = -3;
	} else {
		r = EVP_DigestVerify(mc, sig, sig_len, tbs, tbs_len);
	}
	EVP_MD_CTX_free(mc);
	if (joined != NULL && joined != stack)
		free(joined);
	if (r == 1)
		return MT_OK;
	if (r == -2)
		return MT_ERR_NOMEM;
	return ossl_fail(r == -3 ? MT_ERR_CRYPTO : MT_ERR_SIG_INVALID);
}

enum mt_err mt_sig_verify_hash(const struct mt_pubkey *pk, int hash_bits,
                               const uint8_t *pre, size_t pre_len, const uint8_t *msg,
                               size_t msg_len, const uint8_t *sig, size_t sig_len)
{
	if (pk == NULL || (pre == NULL && pre_len > 0) || (msg == NULL && msg_len > 0) ||
	    (sig == NULL && sig_len > 0))
		return MT_ERR_ARG;
	const struct mt_curve *c = pk->curve;
	if (!is_ec(c)) {
		if (hash_bits != 0)
			return MT_ERR_ARG;
		if (sig_len != c->sig_len)
			return MT_ERR_SIG_FORMAT;
		return eddsa_verify(pk, pre, pre_len, msg, msg_len, sig, sig_len);
	}
	if (!alg_ready())
		return ossl_fail(MT_ERR_CRYPTO);
	const EVP_MD *md = md_of_bits(hash_bits == 0 ? c->hash_bits : hash_bits);
	if (md == NULL)
		return MT_ERR_ARG;
	if (sig_len != c->sig_len)
		return MT_ERR_SIG_FORMAT;
	return ecdsa_verify(pk, md, pre, pre_len, msg, msg_len, sig);
}

enum mt_err mt_sig_verify(const struct mt_pubkey *pk, const uint8_t *pre, size_t pre_len,
                          const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                          size_t sig_len)
{
	return mt_sig_verify_hash(pk, 0, pre, pre_len, msg, msg_len, sig, sig_len);
}

enum mt_err mt_sig_verify_der(const struct mt_pubkey *pk, int hash_bits,
                              const uint8_t *msg, size_t msg_len, const uint8_t *der,
                              size_t der_len)
{
	uint8_t rs[2 * MT_FIELD_MAX];
	enum mt_err e;

	if (pk == NULL || (msg == NULL && msg_len > 0) || (der == NULL && der_len > 0))
		return MT_ERR_ARG;
	if (!is_ec(pk->curve))
		return MT_ERR_KEY_TYPE;
	if (!alg_ready())
		return ossl_fail(MT_ERR_CRYPTO);
	const EVP_MD *md = md_of_bits(hash_bits);
	if (md == NULL)
		return MT_ERR_ARG;
	if ((e = der_to_rs(der, der_len, pk->curve->field, rs)) != MT_OK)
		return e;
	return ecdsa_verify(pk, md, NULL, 0, msg, msg_len, rs);
}

/* ------------------------------------------------------- hash and HKDF */

enum mt_err mt_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	static const uint8_t empty[1];
	unsigned int ol = 0;

	if ((data == NULL && len > 0) || out == NULL)
		return MT_ERR_ARG;
	if (!alg_ready())
		return ossl_fail(MT_ERR_CRYPTO);
	if (EVP_Digest(data != NULL ? data : empty, len, out, &ol, mt_alg.sha256, NULL) != 1 ||
	    ol != 32)
		return ossl_fail(MT_ERR_CRYPTO);
	return MT_OK;
}

enum mt_err mt_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                           size_t salt_len, const uint8_t *info, size_t info_len,
                           uint8_t *out, size_t out_len)
{
	static const uint8_t empty[1];
	OSSL_PARAM params[5], *p = params;
	EVP_KDF_CTX *kc;
	int ok;

	if ((ikm == NULL && ikm_len > 0) || (salt == NULL && salt_len > 0) ||
	    (info == NULL && info_len > 0) || out == NULL || out_len == 0 ||
	    out_len > 255 * 32)
		return MT_ERR_ARG;
	if (!alg_ready())
		return ossl_fail(MT_ERR_CRYPTO);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA2-256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	                                         (void *)(ikm ? ikm : empty), ikm_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	                                         (void *)(salt ? salt : empty), salt_len);
	if (info_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info,
		                                         info_len);
	*p = OSSL_PARAM_construct_end();
	kc = EVP_KDF_CTX_new(mt_alg.hkdf);
	if (kc == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	ok = EVP_KDF_derive(kc, out, out_len, params) == 1;
	EVP_KDF_CTX_free(kc); /* cleanses the copies of ikm and salt */
	if (!ok) {
		OPENSSL_cleanse(out, out_len);
		return ossl_fail(MT_ERR_CRYPTO);
	}
	return MT_OK;
}

/* ------------------------------------------------- randomness, helpers */

enum mt_err mt_random(uint8_t *buf, size_t len)
{
	if (buf == NULL && len > 0)
		return MT_ERR_ARG;
	while (len > 0) {
		int n = len > (size_t)INT_MAX ? INT_MAX : (int)len;
		if (RAND_bytes(buf, n) != 1)
			return ossl_fail(MT_ERR_RANDOM);
		buf += n;
		len -= (size_t)n;
	}
	return MT_OK;
}

void mt_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		OPENSSL_cleanse(p, len);
}

int mt_ct_equal(const void *a, const void *b, size_t len)
{
	if (len == 0)
		return 1;
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* ------------------------------------------------------------- AES-GCM */

struct mt_aead {
	EVP_CIPHER_CTX *ctx;
	const EVP_CIPHER *cur; /* cipher the context was last set up with */
};

enum mt_err mt_aead_new(struct mt_aead **out)
{
	struct mt_aead *a;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (!alg_ready())
		return ossl_fail(MT_ERR_CRYPTO);
	a = calloc(1, sizeof *a);
	if (a == NULL)
		return MT_ERR_NOMEM;
	a->ctx = EVP_CIPHER_CTX_new();
	if (a->ctx == NULL) {
		free(a);
		return ossl_fail(MT_ERR_NOMEM);
	}
	*out = a;
	return MT_OK;
}

void mt_aead_free(struct mt_aead *a)
{
	if (a == NULL)
		return;
	EVP_CIPHER_CTX_free(a->ctx); /* cleanses the key schedule */
	free(a);
}

/* Key the context for one message.  The cipher is handed to OpenSSL only
 * when it changes: passing it again would rebuild the provider context. */
static int aead_init(struct mt_aead *a, const uint8_t *key, size_t key_len,
                     const uint8_t *iv, int enc)
{
	const EVP_CIPHER *c;

	switch (key_len) {
	case 16: c = mt_alg.gcm[0]; break;
	case 24: c = mt_alg.gcm[1]; break;
	case 32: c = mt_alg.gcm[2]; break;
	default: return 0;
	}
	if (EVP_CipherInit_ex2(a->ctx, c == a->cur ? NULL : c, key, iv, enc, NULL) != 1) {
		a->cur = NULL;
		EVP_CIPHER_CTX_reset(a->ctx);
		return 0;
	}
	a->cur = c;
	return 1;
}

enum mt_err mt_aead_seal(struct mt_aead *a, const uint8_t *key, size_t key_len,
                         const uint8_t iv[MT_AEAD_IV_LEN], const uint8_t *aad,
                         size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out)
{
	int n = 0;

	if (a == NULL || key == NULL || iv == NULL || out == NULL ||
	    (aad == NULL && aad_len > 0) || (pt == NULL && pt_len > 0) ||
	    aad_len > INT_MAX || pt_len > INT_MAX - MT_AEAD_TAG_LEN ||
	    (key_len != 16 && key_len != 24 && key_len != 32))
		return MT_ERR_ARG;
	if (!aead_init(a, key, key_len, iv, 1))
		return ossl_fail(MT_ERR_CRYPTO);
	if ((aad_len > 0 && EVP_CipherUpdate(a->ctx, NULL, &n, aad, (int)aad_len) != 1) ||
	    (pt_len > 0 && (EVP_CipherUpdate(a->ctx, out, &n, pt, (int)pt_len) != 1 ||
	                    (size_t)n != pt_len)) ||
	    EVP_CipherFinal_ex(a->ctx, out + pt_len, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, MT_AEAD_TAG_LEN,
	                        out + pt_len) != 1) {
		OPENSSL_cleanse(out, pt_len + MT_AEAD_TAG_LEN);
		return ossl_fail(MT_ERR_CRYPTO);
	}
	return MT_OK;
}

enum mt_err mt_aead_open(struct mt_aead *a, const uint8_t *key, size_t key_len,
                         const uint8_t iv[MT_AEAD_IV_LEN], const uint8_t *aad,
                         size_t aad_len, const uint8_t *ct, size_t ct_len, uint8_t *out)
{
	uint8_t tag[MT_AEAD_TAG_LEN];
	size_t pt_len;
	int n = 0;
	uint8_t dummy;

	if (a == NULL || key == NULL || iv == NULL || ct == NULL || out == NULL ||
	    (aad == NULL && aad_len > 0) || ct_len < MT_AEAD_TAG_LEN || aad_len > INT_MAX ||
	    ct_len > INT_MAX || (key_len != 16 && key_len != 24 && key_len != 32))
		return MT_ERR_ARG;
	pt_len = ct_len - MT_AEAD_TAG_LEN;
	memcpy(tag, ct + pt_len, MT_AEAD_TAG_LEN); /* out may overlap ct */
	if (!aead_init(a, key, key_len, iv, 0))
		return ossl_fail(MT_ERR_CRYPTO);
	if ((aad_len > 0 && EVP_CipherUpdate(a->ctx, NULL, &n, aad, (int)aad_len) != 1) ||
	    (pt_len > 0 && (EVP_CipherUpdate(a->ctx, out, &n, ct, (int)pt_len) != 1 ||
	                    (size_t)n != pt_len)) ||
	    EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, MT_AEAD_TAG_LEN, tag) != 1) {
		OPENSSL_cleanse(out, pt_len);
		return ossl_fail(MT_ERR_CRYPTO);
	}
	if (EVP_CipherFinal_ex(a->ctx, pt_len > 0 ? out + pt_len : &dummy, &n) != 1) {
		OPENSSL_cleanse(out, pt_len);
		return ossl_fail(MT_ERR_AEAD_TAG);
	}
	return MT_OK;
}

/* ---------------------------------------------- key store helpers */

enum mt_err mt_ecdh__derive(EVP_PKEY *priv, const struct mt_pubkey *peer, uint8_t x[32])
{
	const struct mt_curve *c;
	EVP_PKEY_CTX *pc;
	size_t xl = 32;
	int ok;

	if (priv == NULL || peer == NULL || x == NULL)
		return MT_ERR_ARG;
	c = curve_of_evp(priv);
	if (c == NULL || c->type != MT_KEY_P256 || peer->curve->type != MT_KEY_P256)
		return MT_ERR_KEY_TYPE;
	pc = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	if (pc == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	/* The peer was checked to lie on the curve when it was parsed. */
	ok = EVP_PKEY_derive_init(pc) == 1 &&
	     EVP_PKEY_derive_set_peer_ex(pc, peer->pkey, 0) == 1 &&
	     EVP_PKEY_derive(pc, x, &xl) == 1 && xl == 32;
	EVP_PKEY_CTX_free(pc);
	if (!ok) {
		OPENSSL_cleanse(x, 32);
		return ossl_fail(MT_ERR_CRYPTO);
	}
	return MT_OK;
}

enum mt_err mt_sign__evp(EVP_PKEY *priv, const uint8_t *msg, size_t len,
                         uint8_t sig[MT_SIG_LEN])
{
	static const uint8_t empty[1];
	const struct mt_curve *c;

	if (priv == NULL || sig == NULL || (msg == NULL && len > 0))
		return MT_ERR_ARG;
	if (msg == NULL)
		msg = empty;
	if (!alg_ready())
		return ossl_fail(MT_ERR_CRYPTO);
	c = curve_of_evp(priv);
	if (c == NULL || (c->type != MT_KEY_P256 && c->type != MT_KEY_ED25519))
		return MT_ERR_KEY_TYPE;

	if (c->type == MT_KEY_ED25519) {
		EVP_MD_CTX *mc = EVP_MD_CTX_new();
		size_t sl = MT_SIG_LEN;
		int ok = mc != NULL &&
		         EVP_DigestSignInit_ex(mc, NULL, NULL, NULL, NULL, priv, NULL) == 1 &&
		         EVP_DigestSign(mc, sig, &sl, msg, len) == 1 && sl == MT_SIG_LEN;
		EVP_MD_CTX_free(mc);
		return ok ? MT_OK : ossl_fail(MT_ERR_CRYPTO);
	}

	uint8_t dg[32], der[MT_SIGDER_MAX];
	size_t dl = sizeof der;
	if (mt_sha256(msg, len, dg) != MT_OK)
		return MT_ERR_CRYPTO;
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	int ok = pc != NULL && EVP_PKEY_sign_init(pc) == 1 &&
	         EVP_PKEY_sign(pc, der, &dl, dg, sizeof dg) == 1;
	EVP_PKEY_CTX_free(pc);
	if (!ok)
		return ossl_fail(MT_ERR_CRYPTO);
	if (der_to_rs(der, dl, 32, sig) != MT_OK)
		return MT_ERR_INTERNAL;
	return MT_OK;
}
