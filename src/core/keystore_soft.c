/*
 * keystore_soft.c — the software key store backend: keys imported from raw
 * bytes (memory only) and `file:` keys, encrypted PKCS#8 PEM files
 * (mt_keystore.h; protocol §9 "Key URIs").
 *
 * What it does.  A software key is an OpenSSL EVP_PKEY held in our memory.
 * mt_key_import_raw() builds one from a P-256 scalar (32 bytes, or 33 with a
 * leading zero; 1 ≤ d < n) or a 32-byte Ed25519 seed — test vectors and
 * unit tests use these.  A `file:` key is a PEM "ENCRYPTED PRIVATE KEY"
 * (PKCS#8 v2: PBES2, AES-256-CBC) whose passphrase is the environment
 * variable MEDTRUST_KEY_PASSPHRASE.  We write them with
 * PEM_write_bio_PKCS8PrivateKey(EVP_aes_256_cbc) and read whatever PBES2
 * OpenSSL's PKCS8_decrypt accepts (PBKDF2 or scrypt), so files made by
 * `openssl genpkey -aes-256-cbc` and by Python cryptography's
 * BestAvailableEncryption open too.  Signing and ECDH go through the crypto
 * adapter (mt_sign__evp, mt_ecdh__derive in crypto_int.h): this file only
 * manages keys, it does no curve arithmetic of its own beyond deriving a
 * raw scalar's public point.
 *
 * Invariants.
 *  - A key file is created with O_CREAT|O_EXCL (never overwritten: an
 *    existing path is MT_ERR_KS_EXISTS), O_NOFOLLOW and mode 0600, and is
 *    fsync'ed before the key is handed out; a half-written file is removed.
 *  - Opening refuses a file that group or others may read or write
 *    (MT_ERR_KS_PERMISSION, threat I06), that is not a regular file, or that
 *    holds an *unencrypted* private key (also MT_ERR_KS_PERMISSION: the key
 *    is not protected as the deployment requires).  A missing, empty or
 *    wrong passphrase is MT_ERR_KS_PASSPHRASE; a missing file
 *    MT_ERR_KS_KEY_NOT_FOUND.  The file is checked on the descriptor we
 *    read from (fstat), so a swap between check and read changes nothing.
 *  - Roles.  A PKCS#8 file records no usage, so a P-256 file key opened
 *    from disk may both sign and derive; the handle returned by
 *    mt_key_generate() keeps the single role it was generated for.
 *    Ed25519 keys only sign.  Role separation that survives a restart is
 *    the token's job (keystore_pkcs11.c); software keys are for development
 *    and fleet simulation (mt_keystore.h).
 *  - Secrets: the passphrase is read from the environment and never
 *    copied; temporary private values (raw scalars, held in secure BIGNUMs whose
 *    OSSL_PARAM copies OpenSSL clears on free) are wiped; the EVP_PKEY is freed (OpenSSL clears private key material) by
 *    mt_key_free().  The public half is rebuilt from raw public bytes, so
 *    the mt_pubkey never shares the private EVP_PKEY.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "crypto_int.h"
#include "keystore_int.h"

#define PASSPHRASE_ENV "MEDTRUST_KEY_PASSPHRASE"
#define PASSPHRASE_MAX 1024
#define KEY_FILE_MAX (64 * 1024)

static enum mt_err soft_sign(struct mt_key *k, const uint8_t *msg, size_t len,
                             uint8_t sig[MT_SIG_LEN])
{
	return mt_sign__evp((EVP_PKEY *)k->state, msg, len, sig);
}

static enum mt_err soft_ecdh(struct mt_key *k, const struct mt_pubkey *peer, uint8_t x[32])
{
	return mt_ecdh__derive((EVP_PKEY *)k->state, peer, x);
}

static void soft_release(struct mt_key *k)
{
	EVP_PKEY_free((EVP_PKEY *)k->state);
	k->state = NULL;
}

static const struct mt_keystore__backend soft_backend = {
        .name = "software",
        .sign = soft_sign,
        .ecdh = soft_ecdh,
        .release = soft_release,
};

/* The key type of an EVP_PKEY, or MT_ERR_KS_KEY_TYPE for anything other
 * than a named-curve P-256 or an Ed25519 key. */
static enum mt_err type_of(EVP_PKEY *pkey, enum mt_key_type *type)
{
	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		*type = MT_KEY_ED25519;
		return MT_OK;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		char group[64];
		size_t glen = 0;
		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), &glen) &&
		    (OBJ_sn2nid(group) == NID_X9_62_prime256v1 ||
		     EC_curve_nist2nid(group) == NID_X9_62_prime256v1)) {
			*type = MT_KEY_P256;
			return MT_OK;
		}
	}
	return MT_ERR_KS_KEY_TYPE;
}

/* Wrap `pkey` (ownership passes to the key, also on failure) as a key. */
static enum mt_err wrap_pkey(EVP_PKEY *pkey, enum mt_key_type type, unsigned roles,
                             struct mt_key **out)
{
	uint8_t raw[133];
	size_t len = 0;
	struct mt_key *k = NULL;
	enum mt_err e = mt_keystore__key_new(&soft_backend, type, roles, &k);
	if (e != MT_OK) {
		EVP_PKEY_free(pkey);
		return e;
	}
	k->state = pkey;
	if (type == MT_KEY_P256) {
		if (!EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, raw,
		                                     sizeof(raw), &len))
			e = MT_ERR_CRYPTO;
	} else {
		len = sizeof(raw);
		if (!EVP_PKEY_get_raw_public_key(pkey, raw, &len))
			e = MT_ERR_CRYPTO;
	}
	if (e == MT_OK)
		e = mt_pubkey_from_raw(type, raw, len, &k->pub);
	if (e != MT_OK) {
		mt_key_free(k);
		return e;
	}
	*out = k;
	return MT_OK;
}

/* ---- raw import --------------------------------------------------------- */

static enum mt_err p256_from_scalar(const uint8_t d32[32], EVP_PKEY **out)
{
	enum mt_err e = MT_ERR_CRYPTO;
	EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BIGNUM *d = BN_secure_new();
	EC_POINT *pub = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	uint8_t point[65];

	if (group == NULL || d == NULL || BN_bin2bn(d32, 32, d) == NULL)
		goto done;
	if (BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(group)) >= 0) {
		e = MT_ERR_KEY_FORMAT; /* not in [1, n-1] */
		goto done;
	}
	pub = EC_POINT_new(group);
	if (pub == NULL || !EC_POINT_mul(group, pub, d, NULL, NULL, NULL) ||
	    EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, point, sizeof(point),
	                       NULL) != sizeof(point))
		goto done;
	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
	                                     0) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
		goto done;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, params) <= 0)
		goto done;
	e = MT_OK;
done:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params); /* the secure BN's copy is cleared (OSSL_PARAM_ALLOCATED_END) */
	OSSL_PARAM_BLD_free(bld);
	EC_POINT_free(pub);
	BN_clear_free(d);
	EC_GROUP_free(group);
	return e;
}

enum mt_err mt_keystore__soft_import_raw(enum mt_key_type type, unsigned roles, const uint8_t *priv,
                                         size_t len, struct mt_key **out)
{
	EVP_PKEY *pkey = NULL;
	enum mt_err e;
	if (type == MT_KEY_P256) {
		if (len == 33 && priv[0] == 0) {
			priv++;
			len--;
		}
		if (len != 32)
			return MT_ERR_ARG;
		e = p256_from_scalar(priv, &pkey);
	} else if (type == MT_KEY_ED25519) {
		if (len != 32)
			return MT_ERR_ARG;
		pkey = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, priv, len);
		e = pkey != NULL ? MT_OK : MT_ERR_CRYPTO;
	} else {
		return MT_ERR_UNSUPPORTED;
	}
	if (e != MT_OK)
		return e;
	return wrap_pkey(pkey, type, roles, out);
}

/* ---- files ------------------------------------------------------------- */

/* The passphrase, borrowed from the environment; NULL when missing, empty
 * or absurdly long. */
static const char *passphrase(void)
{
	const char *p = getenv(PASSPHRASE_ENV);
	if (p == NULL || p[0] == '\0' || strnlen(p, PASSPHRASE_MAX + 1) > PASSPHRASE_MAX)
		return NULL;
	return p;
}

static enum mt_err write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return MT_ERR_IO;
		p += w;
		n -= (size_t)w;
	}
	return MT_OK;
}

enum mt_err mt_keystore__file_generate(const char *path, enum mt_key_type type,
                                       enum mt_key_role role, struct mt_key **out)
{
	const char *pass = passphrase();
	EVP_PKEY *pkey = NULL;
	struct mt_key *k = NULL;
	BIO *bio = NULL;
	char *pem = NULL;
	long pem_len;
	enum mt_err e;
	int fd;

	if (pass == NULL)
		return MT_ERR_KS_PASSPHRASE;
	if (type == MT_KEY_P256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL)
		return MT_ERR_CRYPTO;
	e = wrap_pkey(pkey, type, (unsigned)role, &k);
	if (e != MT_OK)
		return e;

	bio = BIO_new(BIO_s_mem());
	if (bio == NULL) {
		e = MT_ERR_NOMEM;
		goto fail;
	}
	if (!PEM_write_bio_PKCS8PrivateKey(bio, (EVP_PKEY *)k->state, EVP_aes_256_cbc(), pass,
	                                   (int)strlen(pass), NULL, NULL)) {
		e = MT_ERR_CRYPTO;
		goto fail;
	}
	pem_len = BIO_get_mem_data(bio, &pem);
	if (pem_len <= 0) {
		e = MT_ERR_CRYPTO;
		goto fail;
	}

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno == EEXIST || errno == ELOOP ? MT_ERR_KS_EXISTS : MT_ERR_IO;
		goto fail;
	}
	e = write_all(fd, (const uint8_t *)pem, (size_t)pem_len);
	if (e == MT_OK && fchmod(fd, 0600) != 0)
		e = MT_ERR_IO;
	if (e == MT_OK && fsync(fd) != 0)
		e = MT_ERR_IO;
	if (close(fd) != 0 && e == MT_OK)
		e = MT_ERR_IO;
	if (e != MT_OK) {
		(void)unlink(path); /* ours: created above with O_EXCL */
		goto fail;
	}
	BIO_free(bio);
	*out = k;
	return MT_OK;
fail:
	BIO_free(bio);
	mt_key_free(k);
	return e;
}

/* Read the whole key file through one descriptor, checking what it is and
 * who may read it on that same descriptor. */
static enum mt_err read_key_file(const char *path, uint8_t **buf, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? MT_ERR_KS_KEY_NOT_FOUND : MT_ERR_IO;
	enum mt_err e = MT_OK;
	uint8_t *b = NULL;
	size_t n = 0;
	if (fstat(fd, &st) != 0)
		e = MT_ERR_IO;
	else if (!S_ISREG(st.st_mode))
		e = MT_ERR_IO;
	else if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		e = MT_ERR_KS_PERMISSION;
	else if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX)
		e = MT_ERR_KEY_FORMAT;
	if (e == MT_OK) {
		b = malloc((size_t)st.st_size);
		if (b == NULL)
			e = MT_ERR_NOMEM;
	}
	while (e == MT_OK && n < (size_t)st.st_size) {
		ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			e = MT_ERR_IO;
		else
			n += (size_t)r;
	}
	close(fd);
	if (e != MT_OK) {
		if (b != NULL)
			OPENSSL_cleanse(b, n);
		free(b);
		return e;
	}
	*buf = b;
	*len = n;
	return MT_OK;
}

/* Decrypt an "ENCRYPTED PRIVATE KEY" PEM.  Any other PEM type is refused:
 * an unencrypted private key as unprotected (MT_ERR_KS_PERMISSION), the
 * rest as not a key (MT_ERR_KEY_FORMAT). */
static enum mt_err decrypt_pem(const uint8_t *buf, size_t len, const char *pass, EVP_PKEY **out)
{
	enum mt_err e = MT_ERR_KEY_FORMAT;
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long der_len = 0;
	X509_SIG *p8 = NULL;
	PKCS8_PRIV_KEY_INFO *p8inf = NULL;
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	if (bio == NULL)
		return MT_ERR_NOMEM;
	if (!PEM_read_bio(bio, &name, &header, &der, &der_len))
		goto done;
	if (strcmp(name, PEM_STRING_PKCS8INF) == 0 || strcmp(name, PEM_STRING_ECPRIVATEKEY) == 0 ||
	    strcmp(name, "OPENSSH PRIVATE KEY") == 0 || strcmp(name, PEM_STRING_RSA) == 0) {
		e = MT_ERR_KS_PERMISSION;
		goto done;
	}
	if (strcmp(name, PEM_STRING_PKCS8) != 0 || header[0] != '\0')
		goto done;
	const unsigned char *p = der;
	p8 = d2i_X509_SIG(NULL, &p, der_len);
	if (p8 == NULL || p != der + der_len)
		goto done;
	p8inf = PKCS8_decrypt(p8, pass, (int)strlen(pass));
	if (p8inf == NULL) {
		e = MT_ERR_KS_PASSPHRASE;
		goto done;
	}
	*out = EVP_PKCS82PKEY(p8inf);
	e = *out != NULL ? MT_OK : MT_ERR_KEY_FORMAT;
done:
	PKCS8_PRIV_KEY_INFO_free(p8inf);
	X509_SIG_free(p8);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	BIO_free(bio);
	return e;
}

enum mt_err mt_keystore__file_open(const char *path, struct mt_key **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	EVP_PKEY *pkey = NULL;
	enum mt_key_type type = MT_KEY_NONE;
	enum mt_err e = read_key_file(path, &buf, &len);
	if (e != MT_OK)
		return e;
	const char *pass = passphrase();
	if (pass == NULL)
		e = MT_ERR_KS_PASSPHRASE;
	else if (len > INT_MAX)
		e = MT_ERR_KEY_FORMAT;
	else
		e = decrypt_pem(buf, len, pass, &pkey);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (e == MT_OK)
		e = type_of(pkey, &type);
	if (e != MT_OK) {
		EVP_PKEY_free(pkey);
		return e;
	}
	unsigned roles = type == MT_KEY_P256 ? MT_KEYSTORE__ROLE_SIGN | MT_KEYSTORE__ROLE_DERIVE
	                                     : MT_KEYSTORE__ROLE_SIGN;
	return wrap_pkey(pkey, type, roles, out);
}
