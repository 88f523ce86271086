/*
 * fuzz_fhir_jwt.c — libFuzzer harness for the JWT client assertions of the
 * FHIR token endpoint (mt_clients.h: mt_jwt_parse, mt_b64url_decode,
 * mt_scopes_normalise; src/hub/smart.c; threats G02, G03, G05): anyone who
 * reaches POST /auth/token reaches this parser before any key is looked at.
 *
 * The first byte picks the function, the rest is the input:
 *   0 mod 3  mt_jwt_parse (a compact JWS; then mt_jwt_verify with a fixed
 *            P-384 key, which must never accept: the harness cannot sign)
 *   1 mod 3  mt_b64url_decode
 *   2 mod 3  mt_scopes_normalise (the input cut at its first NUL)
 * Checked beyond "no crash, no leak":
 *   - an accepted JWT has a non-empty NUL-free alg, at most MT_JWT_AUD_MAX
 *     audiences, a signature that fits, a signing input that is the text up
 *     to the second dot;
 *   - a decoded base64url string encodes back to exactly the input;
 *   - a normalised scope list is made only of valid scopes, normalises to
 *     itself.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_clients.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char key_pem[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEk1gtq4Sd/Ab2bNEE3SYSt9F0KDDFCYLE\n"
        "fnoTeM/XqKBt3RU5VyfAOqyXLRXCMXYzyRYaiCHX2aERAKjTiQFwuYF611eddwDf\n"
        "0USnWWja91H01xjhyiCFazqulTZMRx/j\n"
        "-----END PUBLIC KEY-----\n";

static void fuzz_jwt(const char *t, size_t n)
{
	struct mt_jwt *j = malloc(sizeof *j);
	const char *why = NULL;

	if (j == NULL)
		abort();
	if (mt_jwt_parse(t, n, j, &why) == MT_OK) {
		const char *d1 = memchr(t, '.', n);

		if (j->alg[0] == '\0' || strlen(j->alg) >= sizeof j->alg || j->n_aud > MT_JWT_AUD_MAX ||
		    j->sig_len > MT_JWT_SIG_MAX || j->signing_input != t || d1 == NULL ||
		    memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - t)) != t + j->signing_input_len)
			abort();
		if (mt_jwt_verify(j, MT_CLIENT_ES384, key_pem) == MT_OK)
			abort(); /* nobody here holds the private key */
	} else if (why == NULL && n <= MT_JWT_MAX) {
		abort(); /* every refusal names its reason */
	}
	free(j);
}

static void fuzz_b64(const char *t, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t *out = malloc(n + 1);
	char *back = malloc(2 * n + 4);
	size_t len = 0, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (out == NULL || back == NULL)
		abort();
	if (mt_b64url_decode(t, n, out, n + 1, &len) == MT_OK) {
		for (size_t i = 0; i < len; i++) {
			acc = (acc << 8) | out[i];
			bits += 8;
			while (bits >= 6) {
				bits -= 6;
				back[o++] = a[(acc >> bits) & 63];
			}
		}
		if (bits > 0)
			back[o++] = a[(acc << (6 - bits)) & 63];
		if (o != n || memcmp(back, t, n) != 0)
			abort();
	}
	free(out);
	free(back);
}

static void fuzz_scopes(const char *t, size_t n)
{
	char *in = malloc(n + 1);
	char out[MT_CLIENT_SCOPES_MAX + 1], again[MT_CLIENT_SCOPES_MAX + 1];

	if (in == NULL)
		abort();
	memcpy(in, t, n);
	in[n] = '\0';
	if (mt_scopes_normalise(in, out, sizeof out) == MT_OK) {
		const char *p = out;

		while (*p) {
			size_t l = strcspn(p, " ");

			if (!mt_scope_valid(p, l))
				abort();
			p += l;
			if (*p == ' ')
				p++;
		}
		if (mt_scopes_normalise(out, again, sizeof again) != MT_OK || strcmp(out, again) != 0)
			abort();
	}
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data + 1;

	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0: fuzz_jwt(t, size - 1); break;
	case 1: fuzz_b64(t, size - 1); break;
	default: fuzz_scopes(t, size - 1); break;
	}
	return 0;
}
