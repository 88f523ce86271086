/*
 * est.c — strict parsing of onboarding request bodies (mt_est.h).
 *
 * The base64 decoder is written out here rather than taken from OpenSSL's
 * EVP_Decode*, because those accept more than the alphabet (they skip
 * some characters and stop quietly at '-'), and a body that is not exactly
 * base64 must be refused, not half-read.  The JSON body goes through the
 * library's strict reader (json_read.c), so duplicates, trailing garbage
 * and bad UTF-8 are refused the same way everywhere.
 */
#include <string.h>

#include "json_int.h"
#include "medtrust/mt_est.h"

#define EST_ONBOARD_MAX 4096

static int b64_val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

enum mt_err mt_est_b64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                              size_t *out_len)
{
	uint32_t acc = 0;
	size_t n = 0, o = 0, pad = 0;

	if ((in == NULL && len > 0) || out_len == NULL || (out == NULL && cap > 0))
		return MT_ERR_ARG;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];
		int v;

		if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			if (pad > 2)
				return MT_ERR_ARG;
			continue;
		}
		v = b64_val(c);
		if (v < 0 || pad > 0) /* a data character after padding */
			return MT_ERR_ARG;
		acc = acc << 6 | (uint32_t)v;
		if (++n % 4 == 0) {
			if (o + 3 > cap)
				return MT_ERR_ARG;
			out[o++] = (uint8_t)(acc >> 16);
			out[o++] = (uint8_t)(acc >> 8);
			out[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	/* The last quantum: 2 or 3 characters with matching padding. */
	switch (n % 4) {
	case 0:
		if (pad != 0)
			return MT_ERR_ARG;
		break;
	case 2:
		if (pad != 2 || (acc & 0xf) != 0 || o + 1 > cap)
			return MT_ERR_ARG;
		out[o++] = (uint8_t)(acc >> 4);
		break;
	case 3:
		if (pad != 1 || (acc & 0x3) != 0 || o + 2 > cap)
			return MT_ERR_ARG;
		out[o++] = (uint8_t)(acc >> 10);
		out[o++] = (uint8_t)(acc >> 2);
		break;
	default:
		return MT_ERR_ARG;
	}
	if (o == 0)
		return MT_ERR_ARG;
	*out_len = o;
	return MT_OK;
}

enum mt_err mt_est_onboard_body(const uint8_t *body, size_t len, uint8_t spki[MT_SPKI_MAX],
                                size_t *spki_len, const char **why)
{
	struct mt_jdoc doc;
	const struct mt_jv *kx;
	struct mt_pubkey *pk = NULL;
	enum mt_err e;
	const char *w = NULL;

	if (body == NULL || spki == NULL || spki_len == NULL)
		return MT_ERR_ARG;
	if (len > EST_ONBOARD_MAX) {
		if (why)
			*why = "the body is over 4 KiB";
		return MT_ERR_JSON_SYNTAX;
	}
	e = mt_json__read((const char *)body, len, &doc, NULL, 0);
	if (e != MT_OK) {
		if (why)
			*why = "the body is not JSON";
		return e == MT_ERR_NOMEM ? e : MT_ERR_JSON_SYNTAX;
	}
	kx = mt_json__get(doc.root, "kx", 2);
	if (doc.root->type != MT_JV_OBJECT || doc.root->len != 1 || kx == NULL ||
	    kx->type != MT_JV_STRING) {
		e = MT_ERR_JSON_SCHEMA;
		w = "the body must be {\"kx\": \"<base64 DER SPKI>\"} and nothing else";
	} else if (mt_est_b64_decode((const uint8_t *)kx->s, kx->len, spki, MT_SPKI_MAX,
	                             spki_len) != MT_OK) {
		e = MT_ERR_KEY_FORMAT;
		w = "kx is not base64";
	} else if ((e = mt_pubkey_from_spki(spki, *spki_len, &pk)) != MT_OK) {
		w = "kx is not a DER SubjectPublicKeyInfo";
	} else if (mt_pubkey_type(pk) != MT_KEY_P256) {
		e = MT_ERR_KEY_TYPE;
		w = "kx must be a P-256 key";
	}
	mt_pubkey_free(pk);
	mt_json__free(&doc);
	if (why)
		*why = w;
	return e;
}
