/*
 * pki.c — certificates, requests, CRLs and certs-only PKCS#7 signed through
 * the key store (mt_pki.h; protocol §1 for the profiles and the kid, §2 for
 * EST; threats B01–B06, B11, D04).
 *
 * Why it is shaped so.  Every CA and device key of medtrust lives in a
 * token (or, for tests and the fleet simulator, in an encrypted file or in
 * memory) behind mt_key_sign(); the private half is never an EVP_PKEY we
 * could hand to X509_sign().  The usual ways round that — an OpenSSL
 * ENGINE or a PKCS#11 provider — would put a second path to the token
 * beside the key store, with its own PIN handling and session rules.  So
 * this file uses OpenSSL for what it is good at, the ASN.1, and signs
 * itself:
 *
 *   1. build the object (X509, X509_REQ or X509_CRL) with OpenSSL's
 *      setters, including the signature AlgorithmIdentifier inside the
 *      to-be-signed part (ecdsa-with-SHA256 for a P-256 issuer, Ed25519 for
 *      an Ed25519 issuer, no parameters — RFC 5758 §3.2, RFC 8410 §6);
 *   2. serialise the to-be-signed part (i2d_re_X509_tbs and friends);
 *   3. sign those bytes with mt_key_sign(), which returns the COSE form:
 *      ES256 r ‖ s (turned here into the DER ECDSA-Sig-Value X.509 wants)
 *      or the 64-byte Ed25519 signature, used as is;
 *   4. assemble SEQUENCE { tbs, algorithm, BIT STRING signature } by hand —
 *      three TLVs, the only DER this file writes itself;
 *   5. parse the result back with OpenSSL (d2i_*) and verify it with the
 *      issuer's public key (X509_verify and friends, which also insist that
 *      the inner and outer algorithm identifiers agree).  A product that does
 *      not verify is MT_ERR_PKI_SELF_CHECK and is never returned: a token
 *      that signs wrongly, or a bug here, cannot mint a certificate that
 *      fails later in the field.
 *
 * OpenSSL has a public setter for a certificate's inner algorithm
 * (X509_get0_tbs_sigalg gives the field; we own the object), a request has
 * no inner algorithm, but a CRL's inner algorithm can only be written by
 * X509_CRL_sign().  For a CRL we therefore let X509_CRL_sign() fill both
 * algorithm fields with a throw-away in-memory key of the issuer's type, and
 * discard that signature: only the fields it wrote are kept, and step 5
 * proves the final CRL carries the key store's signature.
 *
 * Extensions are built from OpenSSL's typed structures (BASIC_CONSTRAINTS,
 * key usage bit strings, GENERAL_NAMES ...) and never from configuration
 * strings, so no caller-supplied text is ever parsed as OpenSSL "conf"
 * syntax (a DNS name with a comma cannot smuggle in a second entry).
 * Names come from RFC 4514 strings parsed here with a small allow-list of
 * attributes and bounded values.
 *
 * Verification (mt_pki_verify) is OpenSSL's X509_STORE path building with
 * X509_V_FLAG_X509_STRICT and the caller's time, then the leaf rules of
 * threat B05 that OpenSSL's purposes do not enforce (a CA:TRUE leaf, a leaf
 * without keyUsage or EKU, keyAgreement standing in for digitalSignature).
 * OpenSSL's many verdicts are folded into the few the hub acts upon, each a
 * distinct error code; anything unknown folds into "untrusted", so a new
 * OpenSSL verdict fails closed.
 *
 * Inputs from the network (certificates, CSRs, CRLs, PKCS#7) are bounded
 * before OpenSSL sees them and must be one DER object with nothing after
 * it.  OpenSSL's error queue is cleared on every failure.  Nothing here
 * holds a secret: private keys stay behind mt_key_sign(), and the
 * throw-away CRL placeholder key is freed at once.
 */
#define _POSIX_C_SOURCE 200809L

#include "medtrust/mt_pki.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "crypto_int.h"
#include "medtrust/mt_util.h"
#include "pki_int.h"

#define MT_PKI_DAY 86400
#define MT_PKI_NAME_MAX 512      /* an RFC 4514 subject string */
#define MT_PKI_RDN_MAX 16        /* RDNs in a subject */
#define MT_PKI_VALUE_MAX 64      /* bytes of one attribute value */
#define MT_PKI_SIGDER_MAX 72     /* DER ECDSA-Sig-Value for P-256 */
#define MT_PKI_LIFETIME_MAX (100LL * 366 * MT_PKI_DAY)
#define MT_PKI_TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

struct mt_cert {
	X509 *x;
	uint8_t *der;
	size_t der_len;
};

/* Signature AlgorithmIdentifiers, DER, no parameters. */
static const uint8_t alg_es256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                    0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t alg_ed25519[] = {0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70};

static enum mt_err ossl_fail(enum mt_err e)
{
	ERR_clear_error();
	return e;
}

static int64_t now_or(int64_t t)
{
	return t != 0 ? t : (int64_t)time(NULL);
}

/* ------------------------------------------------------------ DER bits */

static size_t der_len_len(size_t n)
{
	size_t k = 1;
	if (n < 0x80)
		return 1;
	while (n > 0) {
		k++;
		n >>= 8;
	}
	return k;
}

static size_t der_put_len(uint8_t *out, size_t n)
{
	size_t k = der_len_len(n);
	if (k == 1) {
		out[0] = (uint8_t)n;
		return 1;
	}
	out[0] = (uint8_t)(0x80 | (k - 1));
	for (size_t i = k - 1; i >= 1; i--) {
		out[i] = (uint8_t)(n & 0xff);
		n >>= 8;
	}
	return k;
}

/* INTEGER of a 32-byte big-endian magnitude, minimal. */
static size_t der_uint32b(const uint8_t *v, uint8_t *out)
{
	size_t skip = 0;
	while (skip < 31 && v[skip] == 0)
		skip++;
	size_t n = 32 - skip;
	int pad = (v[skip] & 0x80) != 0;
	out[0] = 0x02;
	out[1] = (uint8_t)(n + (size_t)pad);
	size_t k = 2;
	if (pad)
		out[k++] = 0x00;
	memcpy(out + k, v + skip, n);
	return k + n;
}

/* r ‖ s (32 + 32) into DER ECDSA-Sig-Value; returns its length. */
static size_t rs_to_der(const uint8_t rs[MT_SIG_LEN], uint8_t out[MT_PKI_SIGDER_MAX])
{
	uint8_t body[MT_PKI_SIGDER_MAX];
	size_t n = der_uint32b(rs, body);
	n += der_uint32b(rs + 32, body + n);
	out[0] = 0x30;
	out[1] = (uint8_t)n; /* at most 70 */
	memcpy(out + 2, body, n);
	return n + 2;
}

/* ----------------------------------------------------- signing pipeline */

static int key_alg(enum mt_key_type t, int *nid, const uint8_t **alg, size_t *alg_len)
{
	if (t == MT_KEY_P256) {
		*nid = NID_ecdsa_with_SHA256;
		*alg = alg_es256;
		*alg_len = sizeof alg_es256;
		return 1;
	}
	if (t == MT_KEY_ED25519) {
		*nid = NID_ED25519;
		*alg = alg_ed25519;
		*alg_len = sizeof alg_ed25519;
		return 1;
	}
	return 0;
}

/* Sign `tbs` with `k` and assemble SEQUENCE { tbs, alg, BIT STRING sig }
 * into a new malloc'd buffer. */
static enum mt_err sign_assemble(struct mt_key *k, const uint8_t *tbs, size_t tbs_len,
                                 uint8_t **out, size_t *out_len)
{
	uint8_t rs[MT_SIG_LEN], sig[MT_PKI_SIGDER_MAX];
	const uint8_t *alg;
	size_t alg_len, sig_len;
	int nid;
	enum mt_err e;

	*out = NULL;
	if (!key_alg(mt_key_type(k), &nid, &alg, &alg_len))
		return MT_ERR_KEY_TYPE;
	if ((e = mt_key_sign(k, tbs, tbs_len, rs)) != MT_OK)
		return e;
	if (mt_key_type(k) == MT_KEY_P256) {
		sig_len = rs_to_der(rs, sig);
	} else {
		memcpy(sig, rs, MT_SIG_LEN);
		sig_len = MT_SIG_LEN;
	}
	size_t bits = 1 + sig_len;
	size_t body = tbs_len + alg_len + 1 + der_len_len(bits) + bits;
	size_t total = 1 + der_len_len(body) + body;
	uint8_t *p = malloc(total);
	if (p == NULL)
		return MT_ERR_NOMEM;
	size_t at = 0;
	p[at++] = 0x30;
	at += der_put_len(p + at, body);
	memcpy(p + at, tbs, tbs_len);
	at += tbs_len;
	memcpy(p + at, alg, alg_len);
	at += alg_len;
	p[at++] = 0x03;
	at += der_put_len(p + at, bits);
	p[at++] = 0x00; /* no unused bits */
	memcpy(p + at, sig, sig_len);
	at += sig_len;
	if (at != total) {
		free(p);
		return MT_ERR_INTERNAL;
	}
	*out = p;
	*out_len = total;
	return MT_OK;
}

/* Copy `der` to a caller's buffer, or say how much is needed. */
static enum mt_err put_out(const uint8_t *der, size_t n, uint8_t *out, size_t cap, size_t *len)
{
	*len = n;
	if (out == NULL || cap < n)
		return MT_ERR_BUFFER;
	memcpy(out, der, n);
	return MT_OK;
}

/* ---------------------------------------------------------- mt_cert */

static enum mt_err cert_adopt(X509 *x, const uint8_t *der, size_t len, struct mt_cert **out)
{
	struct mt_cert *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return MT_ERR_NOMEM;
	if ((c->der = malloc(len)) == NULL) {
		free(c);
		return MT_ERR_NOMEM;
	}
	memcpy(c->der, der, len);
	c->der_len = len;
	c->x = x;
	*out = c;
	return MT_OK;
}

enum mt_err mt_cert_from_der(const uint8_t *der, size_t len, struct mt_cert **out)
{
	const unsigned char *p = der;
	unsigned char *re = NULL;
	int n, canonical;
	X509 *x;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (der == NULL || len == 0)
		return MT_ERR_ARG;
	if (len > MT_PKI_INPUT_MAX)
		return MT_ERR_PKI_TOO_LARGE;
	x = d2i_X509(NULL, &p, (long)len);
	if (x == NULL)
		return ossl_fail(MT_ERR_PKI_FORMAT);
	/* DER, not BER: d2i_X509 also takes indefinite and over-long lengths,
	 * and the outer SEQUENCE, signatureAlgorithm and signature lie outside
	 * the signature, so anyone could re-encode a certificate into other
	 * bytes — another fingerprint, another PEM — that still verify.  The
	 * re-encoding (which keeps the signed part's bytes) must be the input. */
	n = i2d_X509(x, &re);
	canonical = n > 0 && (size_t)n == len && memcmp(re, der, len) == 0;
	OPENSSL_free(re);
	/* Fill the extension cache now: afterwards the object is only read,
	 * and a certificate with undecodable extensions is refused here. */
	if (p != der + len || !canonical || X509_check_purpose(x, -1, 0) != 1) {
		X509_free(x);
		return ossl_fail(MT_ERR_PKI_FORMAT);
	}
	if ((e = cert_adopt(x, der, len, out)) != MT_OK)
		X509_free(x);
	return e;
}

enum mt_err mt_cert_from_pem_file(const char *path, struct mt_cert **out)
{
	uint8_t *pem = NULL;
	size_t len = 0;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	e = mt_file_read(path, 65536, &pem, &len);
	if (e == MT_OK)
		e = mt_cert_from_pem((const char *)pem, len, out);
	free(pem);
	return e;
}

enum mt_err mt_cert_from_x509(struct x509_st *x, struct mt_cert **out)
{
	unsigned char *der = NULL;
	int n;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (x == NULL)
		return MT_ERR_ARG;
	n = i2d_X509(x, &der);
	if (n <= 0) {
		OPENSSL_free(der);
		return ossl_fail(MT_ERR_PKI_FORMAT);
	}
	if ((size_t)n > MT_PKI_INPUT_MAX) {
		OPENSSL_free(der);
		return MT_ERR_PKI_TOO_LARGE;
	}
	if (X509_check_purpose(x, -1, 0) != 1) {
		OPENSSL_free(der);
		return ossl_fail(MT_ERR_PKI_FORMAT);
	}
	if (X509_up_ref(x) != 1) {
		OPENSSL_free(der);
		return MT_ERR_NOMEM;
	}
	e = cert_adopt(x, der, (size_t)n, out);
	if (e != MT_OK)
		X509_free(x);
	OPENSSL_free(der);
	return e;
}

enum mt_err mt_cert_from_pem(const char *pem, size_t len, struct mt_cert **out)
{
	static const char begin[] = "-----BEGIN ";
	unsigned char *der = NULL;
	size_t blocks = 0;
	X509 *x;
	BIO *b;
	int n;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (pem == NULL || len == 0)
		return MT_ERR_ARG;
	if (len > 2 * MT_PKI_INPUT_MAX)
		return MT_ERR_PKI_TOO_LARGE;
	for (size_t i = 0; i + sizeof begin - 1 <= len; i++)
		if (memcmp(pem + i, begin, sizeof begin - 1) == 0)
			blocks++;
	if (blocks != 1)
		return MT_ERR_PKI_FORMAT;
	if ((b = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (x == NULL)
		return ossl_fail(MT_ERR_PKI_FORMAT);
	n = i2d_X509(x, &der);
	X509_free(x);
	if (n <= 0)
		return ossl_fail(MT_ERR_PKI_FORMAT);
	e = mt_cert_from_der(der, (size_t)n, out);
	OPENSSL_free(der);
	return e;
}

void mt_cert_free(struct mt_cert *c)
{
	if (c == NULL)
		return;
	X509_free(c->x);
	free(c->der);
	free(c);
}

X509 *mt_cert__x509(const struct mt_cert *c)
{
	return c != NULL ? c->x : NULL;
}

const uint8_t *mt_cert_der(const struct mt_cert *c, size_t *len)
{
	if (c == NULL) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = c->der_len;
	return c->der;
}

enum mt_err mt_cert_pem(const struct mt_cert *c, char *out, size_t cap, size_t *len)
{
	BIO *b;
	char *data;
	long n;
	enum mt_err e = MT_OK;

	if (c == NULL || len == NULL)
		return MT_ERR_ARG;
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	if (PEM_write_bio_X509(b, c->x) != 1) {
		BIO_free(b);
		return ossl_fail(MT_ERR_CRYPTO);
	}
	n = BIO_get_mem_data(b, &data);
	*len = (size_t)n;
	if (n <= 0)
		e = MT_ERR_CRYPTO;
	else if (out == NULL || cap < (size_t)n + 1)
		e = MT_ERR_BUFFER;
	else {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	return e;
}

/* From the SPKI's DER through mt_pubkey_from_spki, as mt_cert_kid does,
 * not from OpenSSL's EVP_PKEY: its decoder overlooks malformed keys (a
 * BIT STRING with unused bits), and a key the kid cannot name must not be
 * usable either — one certificate, one verdict on its key. */
enum mt_err mt_cert_pubkey(const struct mt_cert *c, struct mt_pubkey **out)
{
	unsigned char *spki = NULL;
	int n;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (c == NULL)
		return MT_ERR_ARG;
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c->x), &spki);
	if (n <= 0)
		return ossl_fail(MT_ERR_KEY_FORMAT);
	e = mt_pubkey_from_spki(spki, (size_t)n, out);
	OPENSSL_free(spki);
	ERR_clear_error();
	return e;
}

enum mt_err mt_cert_fingerprint(const struct mt_cert *c, uint8_t out[MT_PKI_FINGERPRINT_LEN])
{
	if (c == NULL || out == NULL)
		return MT_ERR_ARG;
	return mt_sha256(c->der, c->der_len, out);
}

enum mt_err mt_cert_kid(const struct mt_cert *c, uint8_t kid[MT_KID_LEN])
{
	unsigned char *spki = NULL;
	int n;
	enum mt_err e;

	if (c == NULL || kid == NULL)
		return MT_ERR_ARG;
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c->x), &spki);
	if (n <= 0)
		return ossl_fail(MT_ERR_KEY_FORMAT);
	e = mt_kid_of_spki(spki, (size_t)n, kid);
	OPENSSL_free(spki);
	return e;
}

/* The single CN of `name` as checked UTF-8. */
static enum mt_err name_cn(const X509_NAME *name, char *out, size_t cap)
{
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf = NULL;
	int n;

	if (out == NULL || cap == 0)
		return MT_ERR_ARG;
	out[0] = '\0';
	if (i < 0)
		return MT_ERR_NOT_FOUND;
	if (X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return MT_ERR_PKI_SUBJECT;
	n = ASN1_STRING_to_UTF8(&utf, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n < 0)
		return ossl_fail(MT_ERR_PKI_SUBJECT);
	enum mt_err e = MT_OK;
	if (n == 0 || n > MT_PKI_VALUE_MAX)
		e = MT_ERR_PKI_SUBJECT;
	for (int j = 0; e == MT_OK && j < n; j++)
		if (utf[j] < 0x20 || utf[j] == 0x7f)
			e = MT_ERR_PKI_SUBJECT;
	if (e == MT_OK && (size_t)n + 1 > cap)
		e = MT_ERR_BUFFER;
	if (e == MT_OK) {
		memcpy(out, utf, (size_t)n);
		out[n] = '\0';
	}
	OPENSSL_free(utf);
	return e;
}

enum mt_err mt_cert_subject_cn(const struct mt_cert *c, char *out, size_t cap)
{
	if (c == NULL)
		return MT_ERR_ARG;
	return name_cn(X509_get_subject_name(c->x), out, cap);
}

enum mt_err mt_cert_serial(const struct mt_cert *c, uint8_t *out, size_t cap, size_t *len)
{
	const ASN1_INTEGER *s;

	if (c == NULL || len == NULL)
		return MT_ERR_ARG;
	s = X509_get0_serialNumber(c->x);
	if (s == NULL || ASN1_STRING_type(s) != V_ASN1_INTEGER)
		return MT_ERR_PKI_FORMAT;
	return put_out(ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s), out, cap, len);
}

static enum mt_err time_of(const ASN1_TIME *t, int64_t *secs)
{
	ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
	int days = 0, s = 0, ok;

	if (epoch == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	ok = ASN1_TIME_diff(&days, &s, epoch, t);
	ASN1_TIME_free(epoch);
	if (!ok)
		return ossl_fail(MT_ERR_PKI_FORMAT);
	*secs = (int64_t)days * MT_PKI_DAY + s;
	return MT_OK;
}

enum mt_err mt_cert_validity(const struct mt_cert *c, int64_t *not_before, int64_t *not_after)
{
	enum mt_err e = MT_OK;

	if (c == NULL)
		return MT_ERR_ARG;
	if (not_before != NULL)
		e = time_of(X509_get0_notBefore(c->x), not_before);
	if (e == MT_OK && not_after != NULL)
		e = time_of(X509_get0_notAfter(c->x), not_after);
	return e;
}

/* ----------------------------------------------------------- names */

/* protocol: [A-Za-z0-9][A-Za-z0-9._-]{0,63} */
static int is_device_id(const char *s)
{
	size_t n;
	if (s == NULL || (n = strlen(s)) == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return 0;
	}
	return 1;
}

/* A host name: LDH labels of 1..63, no wildcard, 1..253 bytes. */
static int is_dns_name(const char *s)
{
	size_t n, label = 0;
	if (s == NULL || (n = strlen(s)) == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		int ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		         (c >= 'a' && c <= 'z') || (c == '-' && label > 0);
		if (!ok || ++label > 63)
			return 0;
	}
	return label > 0 && s[n - 1] != '-';
}

static const char *const name_attrs[] = {"CN", "O", "OU", "C", "ST", "L", "serialNumber", "DC"};

static int value_ok(const char *attr, const char *v, size_t n)
{
	if (n == 0 || n > MT_PKI_VALUE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return 0;
	if (strcmp(attr, "C") == 0)
		return n == 2;
	return 1;
}

/* Append attribute `attr` = v[0..n) as a new last RDN. */
static enum mt_err name_add(X509_NAME *nm, const char *attr, const char *v, size_t n)
{
	if (!value_ok(attr, v, n))
		return MT_ERR_PKI_SUBJECT;
	if (X509_NAME_add_entry_by_txt(nm, attr, MBSTRING_UTF8, (const unsigned char *)v,
	                               (int)n, -1, 0) != 1)
		return ossl_fail(MT_ERR_PKI_SUBJECT);
	return MT_OK;
}

/* RFC 4514 subset: "A=v,B=w" with `\` escaping the next character. */
static enum mt_err name_parse(const char *s, X509_NAME **out)
{
	char attr[MT_PKI_RDN_MAX][16];
	char val[MT_PKI_RDN_MAX][MT_PKI_VALUE_MAX + 1];
	size_t vlen[MT_PKI_RDN_MAX];
	size_t n = 0, len, i = 0;
	X509_NAME *nm;
	enum mt_err e = MT_OK;

	*out = NULL;
	if (s == NULL || (len = strlen(s)) == 0 || len > MT_PKI_NAME_MAX)
		return MT_ERR_PKI_SUBJECT;
	while (i < len) {
		size_t a = 0, v = 0;
		int known = 0;
		if (n == MT_PKI_RDN_MAX)
			return MT_ERR_PKI_SUBJECT;
		while (i < len && s[i] == ' ')
			i++;
		while (i < len && s[i] != '=') {
			if (a + 1 >= sizeof attr[0])
				return MT_ERR_PKI_SUBJECT;
			attr[n][a++] = s[i++];
		}
		attr[n][a] = '\0';
		if (i == len)
			return MT_ERR_PKI_SUBJECT; /* no '=' */
		i++;
		for (size_t k = 0; k < sizeof name_attrs / sizeof name_attrs[0]; k++)
			if (strcmp(attr[n], name_attrs[k]) == 0)
				known = 1;
		if (!known)
			return MT_ERR_PKI_SUBJECT;
		while (i < len && s[i] != ',') {
			if (s[i] == '\\') {
				if (++i == len)
					return MT_ERR_PKI_SUBJECT;
			}
			if (v >= MT_PKI_VALUE_MAX)
				return MT_ERR_PKI_SUBJECT;
			val[n][v++] = s[i++];
		}
		val[n][v] = '\0';
		vlen[n] = v;
		n++;
		if (i < len) {
			i++; /* ',' */
			if (i == len)
				return MT_ERR_PKI_SUBJECT; /* trailing comma */
		}
	}
	if ((nm = X509_NAME_new()) == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	/* RFC 4514 writes the most specific RDN first: the DER is reversed. */
	for (size_t k = n; k-- > 0 && e == MT_OK;)
		e = name_add(nm, attr[k], val[k], vlen[k]);
	if (e != MT_OK) {
		X509_NAME_free(nm);
		return e;
	}
	*out = nm;
	return MT_OK;
}

/* ------------------------------------------------------- extensions */

static enum mt_err add_ext(X509 *x, int nid, void *value, int crit)
{
	if (X509_add1_ext_i2d(x, nid, value, crit, X509V3_ADD_REPLACE) != 1)
		return ossl_fail(MT_ERR_CRYPTO);
	return MT_OK;
}

static enum mt_err ext_basic(X509 *x, int ca, int path_len)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	enum mt_err e = MT_ERR_NOMEM;

	if (bc == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	bc->ca = ca ? 0xff : 0;
	if (ca && path_len >= 0) {
		if ((bc->pathlen = ASN1_INTEGER_new()) == NULL ||
		    ASN1_INTEGER_set(bc->pathlen, path_len) != 1)
			goto done;
	}
	e = add_ext(x, NID_basic_constraints, bc, 1);
done:
	BASIC_CONSTRAINTS_free(bc);
	return e == MT_ERR_NOMEM ? ossl_fail(e) : e;
}

/* keyUsage bits: 0 digitalSignature, 5 keyCertSign, 6 cRLSign. */
static enum mt_err ext_key_usage(X509 *x, const int *bits, size_t n)
{
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	enum mt_err e = MT_OK;

	if (ku == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	for (size_t i = 0; i < n && e == MT_OK; i++)
		if (ASN1_BIT_STRING_set_bit(ku, bits[i], 1) != 1)
			e = ossl_fail(MT_ERR_NOMEM);
	if (e == MT_OK)
		e = add_ext(x, NID_key_usage, ku, 1);
	ASN1_BIT_STRING_free(ku);
	return e;
}

static enum mt_err ext_eku(X509 *x, int nid)
{
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	enum mt_err e;

	if (eku == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	if (sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(nid)) <= 0)
		e = ossl_fail(MT_ERR_NOMEM);
	else
		e = add_ext(x, NID_ext_key_usage, eku, 0);
	sk_ASN1_OBJECT_free(eku); /* the object is OpenSSL's static one */
	return e;
}

/* SKI: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1). */
static enum mt_err ext_ski(X509 *x, ASN1_OCTET_STRING **keep)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	ASN1_OCTET_STRING *ski;
	enum mt_err e;

	if (X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) != 1)
		return ossl_fail(MT_ERR_CRYPTO);
	if ((ski = ASN1_OCTET_STRING_new()) == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	if (ASN1_OCTET_STRING_set(ski, md, (int)mdlen) != 1)
		e = ossl_fail(MT_ERR_NOMEM);
	else
		e = add_ext(x, NID_subject_key_identifier, ski, 0);
	if (e == MT_OK && keep != NULL) {
		*keep = ski;
		return MT_OK;
	}
	ASN1_OCTET_STRING_free(ski);
	return e;
}

static AUTHORITY_KEYID *akid_of(const ASN1_OCTET_STRING *ski)
{
	AUTHORITY_KEYID *a = AUTHORITY_KEYID_new();
	if (a == NULL)
		return NULL;
	if ((a->keyid = ASN1_OCTET_STRING_dup(ski)) == NULL) {
		AUTHORITY_KEYID_free(a);
		return NULL;
	}
	return a;
}

static enum mt_err ext_aki(X509 *x, const ASN1_OCTET_STRING *issuer_ski)
{
	AUTHORITY_KEYID *a = akid_of(issuer_ski);
	enum mt_err e;
	if (a == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	e = add_ext(x, NID_authority_key_identifier, a, 0);
	AUTHORITY_KEYID_free(a);
	return e;
}

static enum mt_err ext_san(X509 *x, const struct mt_pki_leaf *l)
{
	GENERAL_NAMES *gens;
	enum mt_err e = MT_OK;

	if (l->n_dns + l->n_ip == 0)
		return MT_OK;
	if (l->n_dns > MT_PKI_NAMES_MAX || l->n_ip > MT_PKI_NAMES_MAX ||
	    l->n_dns + l->n_ip > MT_PKI_NAMES_MAX || (l->n_dns > 0 && l->dns == NULL) ||
	    (l->n_ip > 0 && l->ip == NULL))
		return MT_ERR_PKI_SUBJECT;
	if ((gens = sk_GENERAL_NAME_new_null()) == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	for (size_t i = 0; i < l->n_dns + l->n_ip && e == MT_OK; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		if (g == NULL) {
			e = ossl_fail(MT_ERR_NOMEM);
			break;
		}
		if (i < l->n_dns) {
			const char *d = l->dns[i];
			ASN1_IA5STRING *s;
			if (!is_dns_name(d) || (s = ASN1_IA5STRING_new()) == NULL) {
				e = MT_ERR_PKI_SUBJECT;
			} else if (ASN1_STRING_set(s, d, (int)strlen(d)) != 1) {
				ASN1_IA5STRING_free(s);
				e = MT_ERR_NOMEM;
			} else {
				GENERAL_NAME_set0_value(g, GEN_DNS, s);
			}
		} else {
			const char *ip = l->ip[i - l->n_dns];
			ASN1_OCTET_STRING *o = ip != NULL ? a2i_IPADDRESS(ip) : NULL;
			if (o == NULL)
				e = MT_ERR_PKI_SUBJECT;
			else
				GENERAL_NAME_set0_value(g, GEN_IPADD, o);
		}
		if (e != MT_OK || sk_GENERAL_NAME_push(gens, g) <= 0) {
			GENERAL_NAME_free(g);
			if (e == MT_OK)
				e = MT_ERR_NOMEM;
		}
	}
	if (e == MT_OK)
		e = add_ext(x, NID_subject_alt_name, gens, 0);
	GENERAL_NAMES_free(gens);
	return e != MT_OK ? ossl_fail(e) : e;
}

/* ------------------------------------------------------- certificates */

static enum mt_err set_serial(X509 *x)
{
	uint8_t b[MT_PKI_SERIAL_LEN];
	ASN1_INTEGER *ai;
	enum mt_err e;

	if ((e = mt_random(b, sizeof b)) != MT_OK)
		return e;
	b[0] = (uint8_t)((b[0] & 0x3f) | 0x40); /* positive, exactly 16 bytes */
	if ((ai = ASN1_INTEGER_new()) == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	if (ASN1_STRING_set(ai, b, sizeof b) != 1 || X509_set_serialNumber(x, ai) != 1)
		e = ossl_fail(MT_ERR_NOMEM);
	ASN1_INTEGER_free(ai);
	return e;
}

static enum mt_err set_time(ASN1_TIME *t, int64_t secs)
{
	if (secs < 0 || secs > MT_PKI_TIME_MAX || (int64_t)(time_t)secs != secs)
		return MT_ERR_ARG;
	if (ASN1_TIME_adj(t, (time_t)secs, 0, 0) == NULL)
		return ossl_fail(MT_ERR_ARG);
	return MT_OK;
}

static enum mt_err set_validity(X509 *x, int64_t not_before, int64_t lifetime, int forever)
{
	int64_t nb = now_or(not_before);
	enum mt_err e;

	if (not_before < 0 || nb > MT_PKI_TIME_MAX || lifetime < 0 ||
	    lifetime > MT_PKI_LIFETIME_MAX)
		return MT_ERR_ARG; /* nb + lifetime cannot overflow now */
	if ((e = set_time(X509_getm_notBefore(x), nb)) != MT_OK)
		return e;
	if (forever) {
		/* IEEE 802.1AR: no well-defined expiration. */
		if (ASN1_TIME_set_string_X509(X509_getm_notAfter(x), "99991231235959Z") != 1)
			return ossl_fail(MT_ERR_CRYPTO);
		return MT_OK;
	}
	return set_time(X509_getm_notAfter(x), nb + lifetime);
}

/* Steps 1–5 of the file comment for a certificate whose fields are set. */
static enum mt_err cert_sign(struct mt_key *k, X509 *x, EVP_PKEY *issuer_pub,
                             struct mt_cert **out)
{
	const uint8_t *alg;
	size_t alg_len, der_len = 0;
	unsigned char *tbs = NULL;
	uint8_t *der = NULL;
	const unsigned char *p;
	X509 *y = NULL;
	int nid, n;
	enum mt_err e;

	if (!key_alg(mt_key_type(k), &nid, &alg, &alg_len))
		return MT_ERR_KEY_TYPE;
	/* The TBS algorithm field is ours to fill: OpenSSL gives no other
	 * setter than the signing functions we cannot use. */
	X509_ALGOR *tbs_alg = (X509_ALGOR *)X509_get0_tbs_sigalg(x);
	if (X509_ALGOR_set0(tbs_alg, OBJ_nid2obj(nid), V_ASN1_UNDEF, NULL) != 1)
		return ossl_fail(MT_ERR_CRYPTO);
	if ((n = i2d_re_X509_tbs(x, &tbs)) <= 0)
		return ossl_fail(MT_ERR_CRYPTO);
	e = sign_assemble(k, tbs, (size_t)n, &der, &der_len);
	OPENSSL_free(tbs);
	if (e != MT_OK)
		return e;
	p = der;
	y = d2i_X509(NULL, &p, (long)der_len);
	if (y == NULL || p != der + der_len) {
		e = ossl_fail(MT_ERR_INTERNAL);
	} else if (X509_verify(y, issuer_pub) != 1) {
		e = ossl_fail(MT_ERR_PKI_SELF_CHECK);
	} else if (X509_check_purpose(y, -1, 0) != 1) {
		e = ossl_fail(MT_ERR_INTERNAL);
	} else if ((e = cert_adopt(y, der, der_len, out)) == MT_OK) {
		y = NULL;
	}
	X509_free(y);
	free(der);
	return e;
}

/* Put `pk` into x's SubjectPublicKeyInfo from its normalised DER SPKI
 * (protocol §1's forms: P-256 uncompressed, Ed25519 RFC 8410), setting
 * the algorithm and key bits directly.  X509_set_pubkey would do the same
 * by encoding the key and decoding it again (OpenSSL 3.0's decoders: about
 * as costly as a signature verification, once per enrolment at the hub);
 * the certificate's own self-check (cert_sign) parses the result anyway. */
static enum mt_err set_subject_key(X509 *x, const struct mt_pubkey *pk)
{
	static const uint8_t p256_prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
	                                      0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
	                                      0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
	static const uint8_t ed_prefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
	                                    0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
	X509_PUBKEY *xpk = X509_get_X509_PUBKEY(x);
	uint8_t spki[MT_SPKI_MAX], *bits;
	size_t len = 0, off;
	int ok;

	if (xpk == NULL || mt_pubkey_spki(pk, spki, sizeof spki, &len) != MT_OK)
		return MT_ERR_CRYPTO;
	if (mt_pubkey_type(pk) == MT_KEY_P256 && len == sizeof p256_prefix + 65 &&
	    memcmp(spki, p256_prefix, sizeof p256_prefix) == 0) {
		off = sizeof p256_prefix;
	} else if (mt_pubkey_type(pk) == MT_KEY_ED25519 && len == sizeof ed_prefix + 32 &&
	           memcmp(spki, ed_prefix, sizeof ed_prefix) == 0) {
		off = sizeof ed_prefix;
	} else {
		return X509_set_pubkey(x, mt_pubkey__evp(pk)) == 1 ? MT_OK : ossl_fail(MT_ERR_CRYPTO);
	}
	bits = OPENSSL_memdup(spki + off, len - off);
	if (bits == NULL)
		return MT_ERR_NOMEM;
	if (mt_pubkey_type(pk) == MT_KEY_P256)
		ok = X509_PUBKEY_set0_param(xpk, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
		                            OBJ_nid2obj(NID_X9_62_prime256v1), bits, (int)(len - off));
	else
		ok = X509_PUBKEY_set0_param(xpk, OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, NULL, bits,
		                            (int)(len - off));
	if (ok != 1) {
		OPENSSL_free(bits);
		return ossl_fail(MT_ERR_CRYPTO);
	}
	return MT_OK;
}

static enum mt_err issuer_key_type(struct mt_key *k)
{
	enum mt_key_type t = mt_key_type(k);
	return (t == MT_KEY_P256 || t == MT_KEY_ED25519) ? MT_OK : MT_ERR_KEY_TYPE;
}

static enum mt_err subject_key_type(const struct mt_pubkey *pk)
{
	enum mt_key_type t = mt_pubkey_type(pk);
	return (t == MT_KEY_P256 || t == MT_KEY_ED25519) ? MT_OK : MT_ERR_KEY_TYPE;
}

enum mt_err mt_pki_ca_create(struct mt_key *key, const struct mt_pki_ca_opts *o,
                             struct mt_cert **out)
{
	static const int ku[] = {5, 6};
	const struct mt_pubkey *pub;
	ASN1_OCTET_STRING *ski = NULL;
	X509_NAME *nm = NULL;
	X509 *x = NULL;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (key == NULL || o == NULL || o->path_len < -1)
		return MT_ERR_ARG;
	if ((e = issuer_key_type(key)) != MT_OK)
		return e;
	pub = mt_key_public(key);
	if ((e = name_parse(o->subject, &nm)) != MT_OK)
		return e;
	if ((x = X509_new()) == NULL) {
		X509_NAME_free(nm);
		return ossl_fail(MT_ERR_NOMEM);
	}
	if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_subject_name(x, nm) != 1 ||
	    X509_set_issuer_name(x, nm) != 1 || X509_set_pubkey(x, mt_pubkey__evp(pub)) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	if ((e = set_serial(x)) != MT_OK ||
	    (e = set_validity(x, o->not_before,
	                      o->lifetime_s != 0 ? o->lifetime_s : 3653LL * MT_PKI_DAY, 0)) !=
	            MT_OK ||
	    (e = ext_basic(x, 1, o->path_len)) != MT_OK || (e = ext_key_usage(x, ku, 2)) != MT_OK ||
	    (e = ext_ski(x, &ski)) != MT_OK || (e = ext_aki(x, ski)) != MT_OK)
		goto done;
	e = cert_sign(key, x, mt_pubkey__evp(pub), out);
done:
	ASN1_OCTET_STRING_free(ski);
	X509_NAME_free(nm);
	X509_free(x);
	return e;
}

/* ca_cert must be a CA that may sign certificates (or CRLs) with ca_key. */
static enum mt_err check_issuer(struct mt_key *ca_key, const struct mt_cert *ca, uint32_t need_ku)
{
	EVP_PKEY *cpk;
	uint32_t fl;
	enum mt_err e;

	if ((e = issuer_key_type(ca_key)) != MT_OK)
		return e;
	fl = X509_get_extension_flags(ca->x);
	if (!(fl & EXFLAG_CA) || !(fl & EXFLAG_KUSAGE) ||
	    (X509_get_key_usage(ca->x) & need_ku) != need_ku ||
	    X509_get0_subject_key_id(ca->x) == NULL)
		return MT_ERR_PKI_ISSUER;
	cpk = X509_get0_pubkey(ca->x);
	if (cpk == NULL || EVP_PKEY_eq(cpk, mt_pubkey__evp(mt_key_public(ca_key))) != 1)
		return ossl_fail(MT_ERR_PKI_ISSUER);
	return MT_OK;
}

/* Subject name of a leaf profile. */
static enum mt_err leaf_name(const struct mt_pki_leaf *l, X509_NAME **out)
{
	X509_NAME *nm;
	enum mt_err e;

	*out = NULL;
	switch (l->profile) {
	case MT_PKI_BIRTH:
		if (!is_device_id(l->id) || l->manufacturer == NULL)
			return MT_ERR_PKI_SUBJECT;
		if ((nm = X509_NAME_new()) == NULL)
			return ossl_fail(MT_ERR_NOMEM);
		if ((e = name_add(nm, "O", l->manufacturer, strlen(l->manufacturer))) != MT_OK ||
		    (e = name_add(nm, "serialNumber", l->id, strlen(l->id))) != MT_OK ||
		    (e = name_add(nm, "CN", l->id, strlen(l->id))) != MT_OK) {
			X509_NAME_free(nm);
			return e;
		}
		*out = nm;
		return MT_OK;
	case MT_PKI_OPERATIONAL:
		if (!is_device_id(l->id))
			return MT_ERR_PKI_SUBJECT;
		if ((nm = X509_NAME_new()) == NULL)
			return ossl_fail(MT_ERR_NOMEM);
		if ((e = name_add(nm, "CN", l->id, strlen(l->id))) != MT_OK) {
			X509_NAME_free(nm);
			return e;
		}
		*out = nm;
		return MT_OK;
	case MT_PKI_TLS_SERVER:
	case MT_PKI_TLS_CLIENT:
	case MT_PKI_SIGNER:
	case MT_PKI_SUB_CA:
		return name_parse(l->subject, out);
	}
	return MT_ERR_ARG;
}

enum mt_err mt_pki_issue(struct mt_key *ca_key, const struct mt_cert *ca_cert,
                         const struct mt_pubkey *subject_key, const struct mt_pki_leaf *l,
                         struct mt_cert **out)
{
	static const int ku_sig[] = {0}, ku_ca[] = {5, 6};
	X509_NAME *nm = NULL;
	X509 *x = NULL;
	int64_t lifetime;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (ca_key == NULL || ca_cert == NULL || subject_key == NULL || l == NULL ||
	    l->profile < MT_PKI_BIRTH || l->profile > MT_PKI_SUB_CA || l->path_len < -1)
		return MT_ERR_ARG;
	if (l->profile == MT_PKI_BIRTH && l->lifetime_s != 0)
		return MT_ERR_ARG;
	if ((e = check_issuer(ca_key, ca_cert, KU_KEY_CERT_SIGN)) != MT_OK)
		return e;
	if ((e = subject_key_type(subject_key)) != MT_OK)
		return e;
	if ((l->n_dns + l->n_ip > 0 && l->profile != MT_PKI_TLS_SERVER &&
	     l->profile != MT_PKI_TLS_CLIENT) ||
	    (l->profile == MT_PKI_TLS_SERVER && l->n_dns + l->n_ip == 0))
		return MT_ERR_PKI_SUBJECT;
	switch (l->profile) {
	case MT_PKI_OPERATIONAL: lifetime = 30LL * MT_PKI_DAY; break;
	case MT_PKI_SUB_CA: lifetime = 1826LL * MT_PKI_DAY; break;
	default: lifetime = 365LL * MT_PKI_DAY; break;
	}
	if (l->lifetime_s != 0)
		lifetime = l->lifetime_s;
	if ((e = leaf_name(l, &nm)) != MT_OK)
		return e;
	if ((x = X509_new()) == NULL) {
		X509_NAME_free(nm);
		return ossl_fail(MT_ERR_NOMEM);
	}
	if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_subject_name(x, nm) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca_cert->x)) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	if ((e = set_subject_key(x, subject_key)) != MT_OK)
		goto done;
	if ((e = set_serial(x)) != MT_OK ||
	    (e = set_validity(x, l->not_before, lifetime, l->profile == MT_PKI_BIRTH)) != MT_OK)
		goto done;
	if (l->profile == MT_PKI_SUB_CA)
		e = ext_basic(x, 1, l->path_len);
	else
		e = ext_basic(x, 0, -1);
	if (e != MT_OK)
		goto done;
	if (l->profile == MT_PKI_SUB_CA)
		e = ext_key_usage(x, ku_ca, 2);
	else
		e = ext_key_usage(x, ku_sig, 1);
	if (e != MT_OK)
		goto done;
	switch (l->profile) {
	case MT_PKI_BIRTH:
	case MT_PKI_OPERATIONAL:
	case MT_PKI_TLS_CLIENT: e = ext_eku(x, NID_client_auth); break;
	case MT_PKI_TLS_SERVER: e = ext_eku(x, NID_server_auth); break;
	case MT_PKI_SIGNER: e = l->code_signing_eku ? ext_eku(x, NID_code_sign) : MT_OK; break;
	case MT_PKI_SUB_CA: break;
	}
	if (e != MT_OK || (e = ext_san(x, l)) != MT_OK || (e = ext_ski(x, NULL)) != MT_OK ||
	    (e = ext_aki(x, X509_get0_subject_key_id(ca_cert->x))) != MT_OK)
		goto done;
	e = cert_sign(ca_key, x, X509_get0_pubkey(ca_cert->x), out);
done:
	X509_NAME_free(nm);
	X509_free(x);
	return e;
}

/* ------------------------------------------------------------- CSRs */

enum mt_err mt_pki_csr_create(struct mt_key *key, const char *cn, uint8_t *out, size_t cap,
                              size_t *len)
{
	const struct mt_pubkey *pub;
	X509_REQ *req = NULL, *back = NULL;
	X509_NAME *nm = NULL;
	unsigned char *tbs = NULL;
	uint8_t *der = NULL;
	const unsigned char *p;
	size_t der_len = 0;
	int n;
	enum mt_err e;

	if (key == NULL || len == NULL)
		return MT_ERR_ARG;
	*len = 0;
	if ((e = issuer_key_type(key)) != MT_OK)
		return e;
	if (!is_device_id(cn))
		return MT_ERR_PKI_SUBJECT;
	pub = mt_key_public(key);
	if ((nm = X509_NAME_new()) == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	if ((e = name_add(nm, "CN", cn, strlen(cn))) != MT_OK)
		goto done;
	if ((req = X509_REQ_new()) == NULL || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, nm) != 1 ||
	    X509_REQ_set_pubkey(req, mt_pubkey__evp(pub)) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	if ((n = i2d_re_X509_REQ_tbs(req, &tbs)) <= 0) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	if ((e = sign_assemble(key, tbs, (size_t)n, &der, &der_len)) != MT_OK)
		goto done;
	p = der;
	back = d2i_X509_REQ(NULL, &p, (long)der_len);
	if (back == NULL || p != der + der_len)
		e = ossl_fail(MT_ERR_INTERNAL);
	else if (X509_REQ_verify(back, mt_pubkey__evp(pub)) != 1)
		e = ossl_fail(MT_ERR_PKI_SELF_CHECK);
	else
		e = put_out(der, der_len, out, cap, len);
done:
	OPENSSL_free(tbs);
	free(der);
	X509_REQ_free(back);
	X509_REQ_free(req);
	X509_NAME_free(nm);
	return e;
}

/* Requested extensions: nothing that makes a CA, nothing not understood. */
static enum mt_err csr_check_ext(X509_EXTENSION *ext)
{
	int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
	enum mt_err e = MT_OK;

	switch (nid) {
	case NID_basic_constraints: {
		BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i(ext);
		if (bc == NULL || bc->ca)
			e = MT_ERR_PKI_CSR_REQUEST;
		BASIC_CONSTRAINTS_free(bc);
		break;
	}
	case NID_key_usage: {
		ASN1_BIT_STRING *ku = X509V3_EXT_d2i(ext);
		if (ku == NULL || ASN1_BIT_STRING_get_bit(ku, 5) || ASN1_BIT_STRING_get_bit(ku, 6))
			e = MT_ERR_PKI_CSR_REQUEST;
		ASN1_BIT_STRING_free(ku);
		break;
	}
	case NID_ext_key_usage: {
		EXTENDED_KEY_USAGE *eku = X509V3_EXT_d2i(ext); /* must at least decode */
		if (eku == NULL)
			e = MT_ERR_PKI_CSR_REQUEST;
		EXTENDED_KEY_USAGE_free(eku);
		break;
	}
	case NID_subject_alt_name: {
		GENERAL_NAMES *gens = X509V3_EXT_d2i(ext);
		if (gens == NULL)
			e = MT_ERR_PKI_CSR_REQUEST;
		GENERAL_NAMES_free(gens);
		break;
	}
	case NID_subject_key_identifier: {
		ASN1_OCTET_STRING *ski = X509V3_EXT_d2i(ext);
		if (ski == NULL)
			e = MT_ERR_PKI_CSR_REQUEST;
		ASN1_OCTET_STRING_free(ski);
		break;
	}
	default: e = MT_ERR_PKI_CSR_REQUEST; break; /* incl. nameConstraints */
	}
	return e == MT_OK ? e : ossl_fail(e);
}

static enum mt_err csr_check_attrs(X509_REQ *req)
{
	int n = X509_REQ_get_attr_count(req), ext_req = 0;
	STACK_OF(X509_EXTENSION) *exts;
	enum mt_err e = MT_OK;

	for (int i = 0; i < n; i++) {
		X509_ATTRIBUTE *a = X509_REQ_get_attr(req, i);
		if (a == NULL || OBJ_obj2nid(X509_ATTRIBUTE_get0_object(a)) != NID_ext_req)
			return MT_ERR_PKI_CSR_REQUEST;
		ext_req++;
	}
	if (ext_req == 0)
		return MT_OK;
	if (ext_req > 1)
		return MT_ERR_PKI_CSR_REQUEST;
	if ((exts = X509_REQ_get_extensions(req)) == NULL)
		return ossl_fail(MT_ERR_PKI_CSR_REQUEST);
	for (int i = 0; i < sk_X509_EXTENSION_num(exts) && e == MT_OK; i++)
		e = csr_check_ext(sk_X509_EXTENSION_value(exts, i));
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return e;
}

enum mt_err mt_pki_csr_verify(const uint8_t *der, size_t len, char *cn, size_t cn_cap,
                              struct mt_pubkey **pub)
{
	const unsigned char *p = der;
	const ASN1_BIT_STRING *sig;
	const X509_ALGOR *alg;
	const ASN1_OBJECT *obj;
	struct mt_pubkey *pk = NULL;
	X509_REQ *req;
	EVP_PKEY *evp;
	int ptype, want;
	enum mt_err e;

	if (pub != NULL)
		*pub = NULL;
	if (der == NULL || len == 0 || cn == NULL || cn_cap == 0)
		return MT_ERR_ARG;
	cn[0] = '\0';
	if (len > MT_PKI_INPUT_MAX)
		return MT_ERR_PKI_TOO_LARGE;
	req = d2i_X509_REQ(NULL, &p, (long)len);
	if (req == NULL)
		return ossl_fail(MT_ERR_PKI_FORMAT);
	if (p != der + len || X509_REQ_get_version(req) != X509_REQ_VERSION_1) {
		e = MT_ERR_PKI_FORMAT;
		goto done;
	}
	if ((evp = X509_REQ_get0_pubkey(req)) == NULL) {
		e = MT_ERR_KEY_TYPE;
		goto done;
	}
	if ((e = mt_pubkey__from_evp(evp, &pk)) != MT_OK)
		goto done;
	if ((e = subject_key_type(pk)) != MT_OK)
		goto done;
	want = mt_pubkey_type(pk) == MT_KEY_P256 ? NID_ecdsa_with_SHA256 : NID_ED25519;
	X509_REQ_get0_signature(req, &sig, &alg);
	X509_ALGOR_get0(&obj, &ptype, NULL, alg);
	if (OBJ_obj2nid(obj) != want || ptype != V_ASN1_UNDEF) {
		e = MT_ERR_PKI_ALG;
		goto done;
	}
	if (X509_REQ_verify(req, evp) != 1) {
		e = MT_ERR_PKI_CSR_POP;
		goto done;
	}
	if ((e = csr_check_attrs(req)) != MT_OK)
		goto done;
	if ((e = name_cn(X509_REQ_get_subject_name(req), cn, cn_cap)) != MT_OK)
		goto done;
	if (pub != NULL) {
		*pub = pk;
		pk = NULL;
	}
done:
	if (e != MT_OK)
		cn[0] = '\0';
	mt_pubkey_free(pk);
	X509_REQ_free(req);
	ERR_clear_error();
	return e;
}

/* -------------------------------------------------------------- CRLs */

/* An ASN1_INTEGER from a big-endian magnitude, leading zeros stripped. */
static ASN1_INTEGER *int_of(const uint8_t *v, size_t n)
{
	ASN1_INTEGER *ai;
	while (n > 0 && v[0] == 0) {
		v++;
		n--;
	}
	if (n == 0 || n > 20 || (ai = ASN1_INTEGER_new()) == NULL)
		return NULL;
	if (ASN1_STRING_set(ai, v, (int)n) != 1) {
		ASN1_INTEGER_free(ai);
		return NULL;
	}
	return ai;
}

static int reason_ok(enum mt_pki_reason r)
{
	return (int)r >= 0 && (int)r <= 10 && (int)r != 7;
}

static enum mt_err crl_add(X509_CRL *crl, const struct mt_pki_revoked *r)
{
	X509_REVOKED *rv;
	ASN1_INTEGER *serial;
	ASN1_TIME *t;
	enum mt_err e = MT_OK;

	if (r->serial == NULL || !reason_ok(r->reason) || r->when < 0 ||
	    now_or(r->when) > MT_PKI_TIME_MAX)
		return MT_ERR_ARG;
	if ((serial = int_of(r->serial, r->serial_len)) == NULL)
		return ossl_fail(MT_ERR_ARG);
	t = ASN1_TIME_adj(NULL, (time_t)now_or(r->when), 0, 0);
	rv = X509_REVOKED_new();
	if (t == NULL || rv == NULL || X509_REVOKED_set_serialNumber(rv, serial) != 1 ||
	    X509_REVOKED_set_revocationDate(rv, t) != 1)
		e = MT_ERR_NOMEM;
	if (e == MT_OK && r->reason != MT_PKI_REASON_UNSPECIFIED) {
		ASN1_ENUMERATED *en = ASN1_ENUMERATED_new();
		if (en == NULL || ASN1_ENUMERATED_set(en, (long)r->reason) != 1 ||
		    X509_REVOKED_add1_ext_i2d(rv, NID_crl_reason, en, 0, 0) != 1)
			e = MT_ERR_NOMEM;
		ASN1_ENUMERATED_free(en);
	}
	if (e == MT_OK && X509_CRL_add0_revoked(crl, rv) != 1)
		e = MT_ERR_NOMEM;
	if (e == MT_OK)
		rv = NULL;
	X509_REVOKED_free(rv);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(serial);
	return e == MT_OK ? e : ossl_fail(e);
}

/* Let X509_CRL_sign() write both algorithm fields with a throw-away key of
 * the issuer's type (see the file comment); its signature is discarded. */
static enum mt_err crl_fill_algs(X509_CRL *crl, enum mt_key_type t)
{
	EVP_PKEY *tmp;
	int ok;

	if (t == MT_KEY_P256)
		tmp = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		tmp = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (tmp == NULL)
		return ossl_fail(MT_ERR_CRYPTO);
	ok = X509_CRL_sign(crl, tmp, t == MT_KEY_P256 ? EVP_sha256() : NULL) > 0;
	EVP_PKEY_free(tmp);
	return ok ? MT_OK : ossl_fail(MT_ERR_CRYPTO);
}

enum mt_err mt_pki_crl_create(struct mt_key *ca_key, const struct mt_cert *ca_cert,
                              const struct mt_pki_crl_opts *o, uint8_t *out, size_t cap,
                              size_t *len)
{
	X509_CRL *crl = NULL, *back = NULL;
	ASN1_TIME *t = NULL;
	ASN1_INTEGER *num = NULL;
	AUTHORITY_KEYID *akid = NULL;
	unsigned char *tbs = NULL;
	uint8_t *der = NULL;
	const unsigned char *p;
	size_t der_len = 0;
	int64_t this_update;
	int n;
	enum mt_err e;

	if (ca_key == NULL || ca_cert == NULL || o == NULL || len == NULL ||
	    (o->n_revoked > 0 && o->revoked == NULL) || o->this_update < 0)
		return MT_ERR_ARG;
	*len = 0;
	this_update = now_or(o->this_update);
	if (o->next_update <= this_update || o->crl_number > (uint64_t)INT64_MAX)
		return MT_ERR_ARG;
	if ((e = check_issuer(ca_key, ca_cert, KU_CRL_SIGN)) != MT_OK)
		return e;
	if ((crl = X509_CRL_new()) == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	if (X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca_cert->x)) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	if ((t = ASN1_TIME_new()) == NULL) {
		e = ossl_fail(MT_ERR_NOMEM);
		goto done;
	}
	if ((e = set_time(t, this_update)) != MT_OK)
		goto done;
	if (X509_CRL_set1_lastUpdate(crl, t) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	if ((e = set_time(t, o->next_update)) != MT_OK)
		goto done;
	if (X509_CRL_set1_nextUpdate(crl, t) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	for (size_t i = 0; i < o->n_revoked; i++)
		if ((e = crl_add(crl, &o->revoked[i])) != MT_OK)
			goto done;
	if (X509_CRL_sort(crl) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	if ((num = ASN1_INTEGER_new()) == NULL ||
	    ASN1_INTEGER_set_uint64(num, o->crl_number) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1 ||
	    (akid = akid_of(X509_get0_subject_key_id(ca_cert->x))) == NULL ||
	    X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0) != 1) {
		e = ossl_fail(MT_ERR_NOMEM);
		goto done;
	}
	if ((e = crl_fill_algs(crl, mt_key_type(ca_key))) != MT_OK)
		goto done;
	if ((n = i2d_re_X509_CRL_tbs(crl, &tbs)) <= 0) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	if ((e = sign_assemble(ca_key, tbs, (size_t)n, &der, &der_len)) != MT_OK)
		goto done;
	p = der;
	back = d2i_X509_CRL(NULL, &p, (long)der_len);
	if (back == NULL || p != der + der_len)
		e = ossl_fail(MT_ERR_INTERNAL);
	else if (X509_CRL_verify(back, X509_get0_pubkey(ca_cert->x)) != 1)
		e = ossl_fail(MT_ERR_PKI_SELF_CHECK);
	else
		e = put_out(der, der_len, out, cap, len);
done:
	OPENSSL_free(tbs);
	free(der);
	AUTHORITY_KEYID_free(akid);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(t);
	X509_CRL_free(back);
	X509_CRL_free(crl);
	return e;
}

/* ----------------------------------------------------------- PKCS#7 */

static enum mt_err p7_build(const struct mt_cert *const *certs, size_t n, unsigned char **der,
                            int *der_len)
{
	PKCS7 *p7;
	enum mt_err e = MT_OK;

	*der = NULL;
	if (certs == NULL || n == 0 || n > MT_PKI_CHAIN_MAX)
		return MT_ERR_ARG;
	for (size_t i = 0; i < n; i++)
		if (certs[i] == NULL)
			return MT_ERR_ARG;
	if ((p7 = PKCS7_new()) == NULL)
		return ossl_fail(MT_ERR_NOMEM);
	/* RFC 7030 §4.1.3: SignedData, no signers, encapsulated id-data with
	 * no content; `certificates` is a SEQUENCE OF in OpenSSL's template,
	 * so the order given is kept. */
	if (PKCS7_set_type(p7, NID_pkcs7_signed) != 1 || PKCS7_content_new(p7, NID_pkcs7_data) != 1)
		e = MT_ERR_CRYPTO;
	for (size_t i = 0; i < n && e == MT_OK; i++)
		if (PKCS7_add_certificate(p7, certs[i]->x) != 1)
			e = MT_ERR_NOMEM;
	if (e == MT_OK && (*der_len = i2d_PKCS7(p7, der)) <= 0)
		e = MT_ERR_CRYPTO;
	PKCS7_free(p7);
	return e == MT_OK ? e : ossl_fail(e);
}

enum mt_err mt_pki_p7_certs(const struct mt_cert *const *certs, size_t n, uint8_t *out,
                            size_t cap, size_t *len)
{
	unsigned char *der;
	int der_len = 0;
	enum mt_err e;

	if (len == NULL)
		return MT_ERR_ARG;
	*len = 0;
	if ((e = p7_build(certs, n, &der, &der_len)) != MT_OK)
		return e;
	e = put_out(der, (size_t)der_len, out, cap, len);
	OPENSSL_free(der);
	return e;
}

enum mt_err mt_pki_p7_certs_b64_alloc(const struct mt_cert *const *certs, size_t n, char **out,
                                      size_t *len)
{
	unsigned char *der;
	unsigned char *b64 = NULL;
	int der_len = 0, l1 = 0, l2 = 0;
	EVP_ENCODE_CTX *ctx = NULL;
	enum mt_err e;

	if (out == NULL || len == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	*len = 0;
	if ((e = p7_build(certs, n, &der, &der_len)) != MT_OK)
		return e;
	/* 64 characters and a newline per 48 bytes, the last line shorter. */
	size_t need = ((size_t)der_len + 47) / 48 * 65 + 8; /* and OpenSSL's NULs */
	if ((b64 = malloc(need)) == NULL || (ctx = EVP_ENCODE_CTX_new()) == NULL) {
		e = ossl_fail(MT_ERR_NOMEM);
		goto done;
	}
	EVP_EncodeInit(ctx);
	if (EVP_EncodeUpdate(ctx, b64, &l1, der, der_len) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	EVP_EncodeFinal(ctx, b64 + l1, &l2);
	*len = (size_t)l1 + (size_t)l2;
	if (*len >= need) {
		e = MT_ERR_INTERNAL;
		*len = 0;
	} else {
		b64[*len] = '\0';
		*out = (char *)b64;
		b64 = NULL;
	}
done:
	EVP_ENCODE_CTX_free(ctx);
	free(b64);
	OPENSSL_free(der);
	return e;
}

enum mt_err mt_pki_p7_certs_b64(const struct mt_cert *const *certs, size_t n, char *out,
                                size_t cap, size_t *len)
{
	char *b64 = NULL;
	enum mt_err e;

	if (len == NULL)
		return MT_ERR_ARG;
	e = mt_pki_p7_certs_b64_alloc(certs, n, &b64, len);
	if (e == MT_OK && (out == NULL || cap < *len + 1))
		e = MT_ERR_BUFFER;
	else if (e == MT_OK)
		memcpy(out, b64, *len + 1);
	free(b64);
	return e;
}

enum mt_err mt_pki_p7_parse(const uint8_t *der, size_t len, struct mt_cert **certs, size_t cap,
                            size_t *n)
{
	const unsigned char *p = der;
	STACK_OF(X509) *sk;
	PKCS7 *p7;
	enum mt_err e = MT_OK;
	int cnt;

	if (n == NULL)
		return MT_ERR_ARG;
	*n = 0;
	if (der == NULL || len == 0 || certs == NULL || cap == 0 || cap > MT_PKI_CHAIN_MAX)
		return MT_ERR_ARG;
	if (len > MT_PKI_CRL_MAX)
		return MT_ERR_PKI_TOO_LARGE;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	if (p7 == NULL)
		return ossl_fail(MT_ERR_PKI_FORMAT);
	if (p != der + len || !PKCS7_type_is_signed(p7) || p7->d.sign == NULL ||
	    sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info) > 0 ||
	    (sk = p7->d.sign->cert) == NULL || (cnt = sk_X509_num(sk)) <= 0) {
		PKCS7_free(p7);
		return ossl_fail(MT_ERR_PKI_FORMAT);
	}
	if ((size_t)cnt > cap) {
		PKCS7_free(p7);
		return MT_ERR_BUFFER;
	}
	for (int i = 0; i < cnt && e == MT_OK; i++) {
		unsigned char *c = NULL;
		int cl = i2d_X509(sk_X509_value(sk, i), &c);
		if (cl <= 0)
			e = ossl_fail(MT_ERR_PKI_FORMAT);
		else if ((e = mt_cert_from_der(c, (size_t)cl, &certs[i])) == MT_OK)
			(*n)++;
		OPENSSL_free(c);
	}
	PKCS7_free(p7);
	if (e != MT_OK) {
		for (size_t i = 0; i < *n; i++) {
			mt_cert_free(certs[i]);
			certs[i] = NULL;
		}
		*n = 0;
	}
	return e;
}

/* ------------------------------------------------------- verification */

static enum mt_err verdict_of(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED: return MT_ERR_PKI_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID: return MT_ERR_PKI_NOT_YET_VALID;
	case X509_V_ERR_CERT_REVOKED: return MT_ERR_PKI_REVOKED;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
	case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
	case X509_V_ERR_UNSUPPORTED_SIGNATURE_ALGORITHM: return MT_ERR_PKI_SIGNATURE;
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
	case X509_V_ERR_DIFFERENT_CRL_SCOPE:
	case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
	case X509_V_ERR_CRL_PATH_VALIDATION_ERROR: return MT_ERR_PKI_CRL;
	case X509_V_ERR_INVALID_PURPOSE:
	case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
	case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
	case X509_V_ERR_KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA:
	case X509_V_ERR_INVALID_CA: return MT_ERR_PKI_USAGE;
	case X509_V_ERR_PATH_LENGTH_EXCEEDED:
	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
	case X509_V_ERR_PERMITTED_VIOLATION:
	case X509_V_ERR_EXCLUDED_VIOLATION:
	case X509_V_ERR_SUBTREE_MINMAX:
	case X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE:
	case X509_V_ERR_UNSUPPORTED_CONSTRAINT_SYNTAX:
	case X509_V_ERR_UNSUPPORTED_NAME_SYNTAX:
	case X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION:
	case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
	case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
	case X509_V_ERR_INVALID_EXTENSION:
	case X509_V_ERR_INVALID_NON_CA:
	case X509_V_ERR_PATHLEN_INVALID_FOR_NON_CA:
	case X509_V_ERR_PATHLEN_WITHOUT_KU_KEY_CERT_SIGN:
	case X509_V_ERR_CA_BCONS_NOT_CRITICAL:
	case X509_V_ERR_CA_CERT_MISSING_KEY_USAGE:
	case X509_V_ERR_ISSUER_NAME_EMPTY:
	case X509_V_ERR_SUBJECT_NAME_EMPTY:
	case X509_V_ERR_MISSING_AUTHORITY_KEY_IDENTIFIER:
	case X509_V_ERR_MISSING_SUBJECT_KEY_IDENTIFIER:
	case X509_V_ERR_EMPTY_SUBJECT_ALT_NAME:
	case X509_V_ERR_EMPTY_SUBJECT_SAN_NOT_CRITICAL:
	case X509_V_ERR_AUTHORITY_KEY_IDENTIFIER_CRITICAL:
	case X509_V_ERR_SUBJECT_KEY_IDENTIFIER_CRITICAL:
	case X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH:
	case X509_V_ERR_SIGNATURE_ALGORITHM_INCONSISTENCY:
	case X509_V_ERR_EXTENSIONS_REQUIRE_VERSION_3:
	case X509_V_ERR_EC_KEY_EXPLICIT_PARAMS: return MT_ERR_PKI_CHAIN;
	default: return MT_ERR_PKI_UNTRUSTED; /* unknown verdicts fail closed */
	}
}

/* Threat B05: what OpenSSL's purposes let through at the leaf. */
static enum mt_err leaf_rules(X509 *x, enum mt_pki_purpose purpose)
{
	uint32_t fl = X509_get_extension_flags(x), ku, xku;

	if ((fl & EXFLAG_CA) || X509_check_ca(x) != 0)
		return MT_ERR_PKI_USAGE;
	if (!(fl & EXFLAG_KUSAGE))
		return MT_ERR_PKI_USAGE;
	ku = X509_get_key_usage(x);
	if (!(ku & KU_DIGITAL_SIGNATURE) || (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))
		return MT_ERR_PKI_USAGE;
	if (purpose == MT_PKI_PURPOSE_SIGNER)
		return MT_OK;
	if (!(fl & EXFLAG_XKUSAGE))
		return MT_ERR_PKI_USAGE;
	xku = X509_get_extended_key_usage(x);
	if (!(xku & (purpose == MT_PKI_PURPOSE_CLIENT ? XKU_SSL_CLIENT : XKU_SSL_SERVER)))
		return MT_ERR_PKI_USAGE;
	return MT_OK;
}

enum mt_err mt_pki_verify(const struct mt_cert *leaf, const struct mt_cert *const *roots,
                          size_t n_roots, const struct mt_pki_verify_opts *o)
{
	static const struct mt_pki_verify_opts dflt = {0};
	X509_STORE *st = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *chain = NULL;
	STACK_OF(X509_CRL) *crls = NULL;
	X509_CRL *crl = NULL;
	X509_VERIFY_PARAM *param;
	unsigned long flags = X509_V_FLAG_X509_STRICT;
	int64_t at;
	enum mt_err e = MT_OK;

	if (o == NULL)
		o = &dflt;
	if (leaf == NULL || roots == NULL || n_roots == 0 || n_roots > MT_PKI_CHAIN_MAX ||
	    o->n_intermediates > MT_PKI_CHAIN_MAX ||
	    (o->n_intermediates > 0 && o->intermediates == NULL) || o->at < 0 ||
	    (o->purpose != MT_PKI_PURPOSE_CLIENT && o->purpose != MT_PKI_PURPOSE_SERVER &&
	     o->purpose != MT_PKI_PURPOSE_SIGNER))
		return MT_ERR_ARG;
	at = now_or(o->at);
	if (at > MT_PKI_TIME_MAX || (int64_t)(time_t)at != at)
		return MT_ERR_ARG;
	if (o->crl == NULL && o->crl_required)
		return MT_ERR_PKI_CRL;
	if (o->crl != NULL) {
		const unsigned char *p = o->crl;
		if (o->crl_len == 0 || o->crl_len > MT_PKI_CRL_MAX)
			return MT_ERR_PKI_CRL;
		crl = d2i_X509_CRL(NULL, &p, (long)o->crl_len);
		if (crl == NULL || p != o->crl + o->crl_len) {
			X509_CRL_free(crl);
			return ossl_fail(MT_ERR_PKI_CRL);
		}
		if ((crls = sk_X509_CRL_new_null()) == NULL || sk_X509_CRL_push(crls, crl) <= 0) {
			X509_CRL_free(crl);
			e = ossl_fail(MT_ERR_NOMEM);
			goto done;
		}
		flags |= X509_V_FLAG_CRL_CHECK;
	}
	if ((st = X509_STORE_new()) == NULL || (chain = sk_X509_new_null()) == NULL ||
	    (ctx = X509_STORE_CTX_new()) == NULL) {
		e = ossl_fail(MT_ERR_NOMEM);
		goto done;
	}
	for (size_t i = 0; i < n_roots; i++)
		if (roots[i] == NULL || X509_STORE_add_cert(st, roots[i]->x) != 1) {
			e = ossl_fail(roots[i] == NULL ? MT_ERR_ARG : MT_ERR_NOMEM);
			goto done;
		}
	for (size_t i = 0; i < o->n_intermediates; i++)
		if (o->intermediates[i] == NULL || sk_X509_push(chain, o->intermediates[i]->x) <= 0) {
			e = ossl_fail(o->intermediates[i] == NULL ? MT_ERR_ARG : MT_ERR_NOMEM);
			goto done;
		}
	if (X509_STORE_CTX_init(ctx, st, leaf->x, chain) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, (time_t)at);
	X509_VERIFY_PARAM_set_flags(param, flags);
	X509_VERIFY_PARAM_set_depth(param, MT_PKI_CHAIN_MAX);
	if (o->purpose != MT_PKI_PURPOSE_SIGNER &&
	    X509_STORE_CTX_set_purpose(ctx, o->purpose == MT_PKI_PURPOSE_CLIENT
	                                            ? X509_PURPOSE_SSL_CLIENT
	                                            : X509_PURPOSE_SSL_SERVER) != 1) {
		e = ossl_fail(MT_ERR_CRYPTO);
		goto done;
	}
	if (crls != NULL)
		X509_STORE_CTX_set0_crls(ctx, crls);
	if (X509_verify_cert(ctx) != 1) {
		e = ossl_fail(verdict_of(X509_STORE_CTX_get_error(ctx)));
		goto done;
	}
	e = leaf_rules(leaf->x, o->purpose);
done:
	X509_STORE_CTX_free(ctx);
	sk_X509_free(chain);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	X509_STORE_free(st);
	return e;
}
