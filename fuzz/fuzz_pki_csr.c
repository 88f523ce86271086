/*
 * fuzz_pki_csr.c — libFuzzer harness for PKCS#10 requests as the hub's EST
 * handler receives them from devices (protocol §2, RFC 7030 §4.2): outside
 * input that, once accepted, becomes a certificate signed by the fleet CA
 * (threats B11, D04).
 *
 * mt_pki_csr_verify() takes DER only — the EST body's base64 is undone by
 * the HTTP layer before it — so the input goes in as is, with no mode byte.
 * It must never crash, leak or accept a request it should refuse.  What it
 * accepts must keep mt_pki.h's promises, which the harness checks:
 *
 *   - the CN is NUL-terminated, 1–64 bytes, valid UTF-8 (no surrogates, no
 *     overlong forms) without control characters: the hub logs it and
 *     compares it with the birth identity, so it must be text;
 *   - the public key is P-256 or Ed25519 and usable: its kid exists and is
 *     the kid of its own normalised SPKI (the key the certificate will
 *     carry is the key the kid names);
 *   - the verdict does not depend on whether the caller asked for the key,
 *     and a refusal leaves no key behind and an empty CN.
 *
 * The seed corpus (fuzz/corpus/fuzz_pki_csr/) holds real requests of both
 * key types, requests with extensionRequest attributes allowed and refused,
 * a bad proof of possession and an RSA key, so that mutations reach every
 * check of the documented order: format, key type, algorithm, POP,
 * attributes, subject.
 */
#include "fuzz_common.h"

#include "medtrust/mt_pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char cn[MT_PKI_CN_MAX], cn2[MT_PKI_CN_MAX];
	static char sentinel;
	struct mt_pubkey *pub = (struct mt_pubkey *)(void *)&sentinel; /* must become NULL */
	enum mt_err e, e2;

	memset(cn, 'x', sizeof cn);
	e = mt_pki_csr_verify(data, size, cn, sizeof cn, &pub);
	e2 = mt_pki_csr_verify(data, size, cn2, sizeof cn2, NULL);
	if (e != e2)
		abort(); /* the verdict does not depend on asking for the key */
	if (e != MT_OK) {
		/* A refusal leaves no key, and no CN once the input was looked at. */
		if (pub != NULL || (size != 0 && (cn[0] != '\0' || cn2[0] != '\0')))
			abort();
		return 0;
	}
	if (pub == NULL || strcmp(cn, cn2) != 0 || !fuzz_text_ok(cn))
		abort();

	enum mt_key_type t = mt_pubkey_type(pub);
	if (t != MT_KEY_P256 && t != MT_KEY_ED25519)
		abort();
	const uint8_t *kid = mt_pubkey_kid(pub);
	uint8_t spki[MT_SPKI_MAX], kid2[MT_KID_LEN];
	size_t spki_len = 0;
	if (kid == NULL || mt_pubkey_spki(pub, spki, sizeof spki, &spki_len) != MT_OK ||
	    mt_kid_of_spki(spki, spki_len, kid2) != MT_OK || memcmp(kid, kid2, MT_KID_LEN) != 0)
		abort();
	mt_pubkey_free(pub);
	return 0;
}
