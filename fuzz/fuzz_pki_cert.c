/*
 * fuzz_pki_cert.c — libFuzzer harness for X.509 certificates as peers
 * present them (TLS clients and servers, EST, manifests' x5chain, CA files
 * an operator imports; mt_pki.h, threats B01–B06): outside input read by
 * mt_cert_from_der() and mt_cert_from_pem().
 *
 * Every input is tried both ways, as DER and as PEM text, so the seeds are
 * plain .der and .pem files and need no mode byte; an input in one form is
 * refused by the other parser after a few bytes.  Neither parser may crash,
 * leak or hand back a certificate whose getters misbehave.  On success the
 * harness calls every getter and checks what mt_pki.h promises:
 *
 *   - mt_cert_der: the bytes parse again to a certificate with the same
 *     DER, and (from DER) they are the input itself, nothing trailing;
 *   - mt_cert_pem: the size query and the copy agree, the text is
 *     NUL-terminated and parses back (mt_cert_from_pem) to the same DER —
 *     the two forms of one certificate have one fingerprint;
 *   - mt_cert_fingerprint is SHA-256 of that DER;
 *   - mt_cert_pubkey and mt_cert_kid agree: both succeed or both fail, and
 *     the kid is the public key's kid;
 *   - mt_cert_subject_cn refuses with one of its documented errors or
 *     gives 1–64 bytes of UTF-8 text without control characters;
 *   - mt_cert_serial's size query and copy agree;
 *   - mt_cert_validity gives the same times with either pointer NULL.
 *
 * Any other error code from a getter is a broken promise and aborts.
 * The seed corpus (fuzz/corpus/fuzz_pki_cert/) holds real CA, birth,
 * operational and server certificates of both key types made by the
 * library, in both forms, and hand-made edge cases (empty, truncated, two
 * PEM blocks, trailing bytes).
 */
#include "fuzz_common.h"

#include "medtrust/mt_pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_der(const struct mt_cert *a, const struct mt_cert *b)
{
	size_t la = 0, lb = 0;
	const uint8_t *da = mt_cert_der(a, &la), *db = mt_cert_der(b, &lb);
	return da != NULL && db != NULL && la == lb && memcmp(da, db, la) == 0;
}

static void check_cert(const struct mt_cert *c)
{
	struct mt_cert *again = NULL;
	size_t len = 0;
	const uint8_t *der = mt_cert_der(c, &len);
	if (der == NULL || len == 0 || len > MT_PKI_INPUT_MAX)
		abort();

	/* The DER parses again, to the same bytes. */
	if (mt_cert_from_der(der, len, &again) != MT_OK || !same_der(c, again))
		abort();
	mt_cert_free(again);
	again = NULL;

	/* Fingerprint = SHA-256 of the DER. */
	uint8_t fp[MT_PKI_FINGERPRINT_LEN], want[32];
	if (mt_cert_fingerprint(c, fp) != MT_OK || mt_sha256(der, len, want) != MT_OK ||
	    memcmp(fp, want, sizeof fp) != 0)
		abort();

	/* PEM: size query, copy, and back to the same DER. */
	size_t pem_len = 0, pem_len2 = 0;
	if (mt_cert_pem(c, NULL, 0, &pem_len) != MT_ERR_BUFFER || pem_len == 0)
		abort();
	char *pem = malloc(pem_len + 1);
	if (pem == NULL)
		abort();
	if (mt_cert_pem(c, pem, pem_len + 1, &pem_len2) != MT_OK || pem_len2 != pem_len ||
	    strlen(pem) != pem_len)
		abort();
	if (mt_cert_from_pem(pem, pem_len, &again) != MT_OK || !same_der(c, again))
		abort();
	mt_cert_free(again);
	free(pem);

	/* Public key and kid agree. */
	struct mt_pubkey *pk = NULL;
	uint8_t kid[MT_KID_LEN];
	enum mt_err ep = mt_cert_pubkey(c, &pk), ek = mt_cert_kid(c, kid);
	if ((ep == MT_OK) != (ek == MT_OK))
		abort();
	if (ep == MT_OK) {
		if (pk == NULL || memcmp(mt_pubkey_kid(pk), kid, MT_KID_LEN) != 0)
			abort();
	} else if (pk != NULL ||
	           (ep != MT_ERR_KEY_TYPE && ep != MT_ERR_KEY_FORMAT && ep != MT_ERR_NOMEM)) {
		abort();
	}
	mt_pubkey_free(pk);

	/* Subject CN: text, or a documented refusal. */
	char cn[MT_PKI_CN_MAX];
	enum mt_err e = mt_cert_subject_cn(c, cn, sizeof cn);
	if (e == MT_OK) {
		if (!fuzz_text_ok(cn))
			abort();
	} else if (e != MT_ERR_NOT_FOUND && e != MT_ERR_PKI_SUBJECT && e != MT_ERR_NOMEM) {
		abort(); /* a 64-byte CN fits MT_PKI_CN_MAX: never MT_ERR_BUFFER */
	}

	/* Serial: size query and copy agree. */
	size_t sl = 0, sl2 = 0;
	e = mt_cert_serial(c, NULL, 0, &sl);
	if (e == MT_ERR_BUFFER) {
		uint8_t *serial = malloc(sl + 1);
		if (serial == NULL)
			abort();
		if (mt_cert_serial(c, serial, sl + 1, &sl2) != MT_OK || sl2 != sl)
			abort();
		free(serial);
	} else if (e != MT_ERR_PKI_FORMAT) {
		abort();
	}

	/* Validity: the same times asked together or one at a time. */
	int64_t nb = 0, na = 0, nb1 = 0, na1 = 0;
	e = mt_cert_validity(c, &nb, &na);
	if (e == MT_OK) {
		if (mt_cert_validity(c, &nb1, NULL) != MT_OK ||
		    mt_cert_validity(c, NULL, &na1) != MT_OK || nb1 != nb || na1 != na)
			abort();
	} else if (e != MT_ERR_PKI_FORMAT && e != MT_ERR_NOMEM) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char sentinel;
	struct mt_cert *c = (struct mt_cert *)(void *)&sentinel; /* must become NULL */
	size_t len = 0;

	if (mt_cert_from_der(data, size, &c) == MT_OK) {
		const uint8_t *der = mt_cert_der(c, &len);
		if (len != size || memcmp(der, data, size) != 0)
			abort(); /* the DER kept is the input, nothing trailing */
		check_cert(c);
		mt_cert_free(c);
	} else if (c != NULL) {
		abort();
	}

	c = (struct mt_cert *)(void *)&sentinel;
	if (mt_cert_from_pem((const char *)data, size, &c) == MT_OK) {
		check_cert(c);
		mt_cert_free(c);
	} else if (c != NULL) {
		abort();
	}
	return 0;
}
