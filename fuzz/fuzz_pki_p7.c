/*
 * fuzz_pki_p7.c — libFuzzer harness for certs-only PKCS#7 (RFC 7030
 * §4.1.3 /cacerts, §4.2.3 simpleenroll answers): what a device reads from
 * the hub's EST server, and the hub from a peer's, through
 * mt_pki_p7_parse().
 *
 * The parser must never crash, leak or return a half-filled list: on
 * refusal *n is 0; on success 1 ≤ *n ≤ cap and every entry is a
 * certificate.  What it accepts must survive a round trip through the
 * writer: mt_pki_p7_certs() of the returned list (size query, then copy)
 * parses again to the same certificates, byte for byte, in the same order —
 * the hub re-serves bundles it has read, and a device must see the chain the
 * hub meant.  The base64 writer (the EST body) must agree in size with
 * itself.  A bundle of more certificates than `cap` is MT_ERR_BUFFER and
 * leaves nothing allocated, which the harness checks with cap = 1.
 *
 * The seed corpus (fuzz/corpus/fuzz_pki_p7/) holds real bundles made by
 * the library (one certificate; a leaf and its CA) and hand-made edge
 * cases (empty, truncated, trailing bytes).
 */
#include "fuzz_common.h"

#include "medtrust/mt_pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void free_all(struct mt_cert **certs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mt_cert_free(certs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_cert *certs[MT_PKI_CHAIN_MAX] = {0}, *again[MT_PKI_CHAIN_MAX] = {0};
	size_t n = 99, n2 = 99;
	enum mt_err e = mt_pki_p7_parse(data, size, certs, MT_PKI_CHAIN_MAX, &n);

	/* With room for one certificate: the same verdict, or MT_ERR_BUFFER
	 * (which the count may be found to need before a bad certificate). */
	struct mt_cert *one[1] = {0};
	size_t n1 = 99;
	enum mt_err e1 = mt_pki_p7_parse(data, size, one, 1, &n1);
	if (e1 == MT_OK) {
		if (e != MT_OK || n != 1 || n1 != 1 || one[0] == NULL)
			abort();
	} else if (n1 != 0 || (e1 == MT_ERR_BUFFER ? e == MT_OK && n < 2 : e1 != e)) {
		abort();
	}
	free_all(one, n1);

	if (e != MT_OK) {
		if (n != 0)
			abort();
		return 0;
	}
	if (n == 0 || n > MT_PKI_CHAIN_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (certs[i] == NULL)
			abort();

	const struct mt_cert *const *list = (const struct mt_cert *const *)certs;
	size_t len = 0, len2 = 0;
	if (mt_pki_p7_certs(list, n, NULL, 0, &len) != MT_ERR_BUFFER || len == 0)
		abort();
	uint8_t *der = malloc(len);
	if (der == NULL)
		abort();
	if (mt_pki_p7_certs(list, n, der, len, &len2) != MT_OK || len2 != len)
		abort();
	if (mt_pki_p7_parse(der, len, again, MT_PKI_CHAIN_MAX, &n2) != MT_OK || n2 != n)
		abort();
	for (size_t i = 0; i < n; i++) {
		size_t a = 0, b = 0;
		const uint8_t *da = mt_cert_der(certs[i], &a), *db = mt_cert_der(again[i], &b);
		if (a != b || memcmp(da, db, a) != 0)
			abort();
	}
	free_all(again, n2);
	free(der);

	size_t b64_len = 0, b64_len2 = 0;
	if (mt_pki_p7_certs_b64(list, n, NULL, 0, &b64_len) != MT_ERR_BUFFER || b64_len == 0)
		abort();
	char *b64 = malloc(b64_len + 1);
	if (b64 == NULL)
		abort();
	if (mt_pki_p7_certs_b64(list, n, b64, b64_len + 1, &b64_len2) != MT_OK ||
	    b64_len2 != b64_len || strlen(b64) != b64_len)
		abort();
	free(b64);

	free_all(certs, n);
	return 0;
}
