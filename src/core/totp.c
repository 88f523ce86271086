/*
 * totp.c — HOTP/TOTP codes and the otpauth URI (mt_totp.h).
 *
 * HOTP (RFC 4226 §5): HMAC over the 8-byte big-endian counter, dynamic
 * truncation (the low nibble of the last byte picks four bytes, top bit
 * cleared), modulo 10^digits.  TOTP (RFC 6238 §4): the counter is
 * floor(t / 30).
 */
#include "medtrust/mt_totp.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "medtrust/mt_crypto.h"

static const uint32_t ten_pow[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                 100000000};

enum mt_err mt_hotp(enum mt_totp_alg alg, const uint8_t *key, size_t key_len, uint64_t counter,
                    unsigned digits, uint32_t *out)
{
	const EVP_MD *md = alg == MT_TOTP_SHA1     ? EVP_sha1()
	                   : alg == MT_TOTP_SHA256 ? EVP_sha256()
	                   : alg == MT_TOTP_SHA512 ? EVP_sha512()
	                                           : NULL;
	uint8_t msg[8], mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0, off;
	uint32_t bin;

	if (md == NULL || key == NULL || key_len == 0 || key_len > MT_TOTP_KEY_MAX ||
	    digits < 6 || digits > 8 || out == NULL)
		return MT_ERR_ARG;
	for (int i = 7; i >= 0; i--) {
		msg[i] = (uint8_t)(counter & 0xff);
		counter >>= 8;
	}
	if (HMAC(md, key, (int)key_len, msg, sizeof msg, mac, &mac_len) == NULL || mac_len < 20)
		return MT_ERR_CRYPTO;
	off = mac[mac_len - 1] & 0x0f;
	bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
	      ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
	OPENSSL_cleanse(mac, sizeof mac);
	*out = bin % ten_pow[digits];
	return MT_OK;
}

enum mt_err mt_totp(enum mt_totp_alg alg, const uint8_t *key, size_t key_len, int64_t t,
                    unsigned digits, uint32_t *out)
{
	if (t < 0)
		return MT_ERR_ARG;
	return mt_hotp(alg, key, key_len, (uint64_t)t / MT_TOTP_STEP_S, digits, out);
}

enum mt_err mt_totp_check(const uint8_t *key, size_t key_len, const char *code, int64_t now,
                          uint64_t *last_step)
{
	char want[MT_TOTP_DIGITS + 1];
	uint64_t step, matched = 0;
	bool found = false;

	if (code == NULL || last_step == NULL || now < MT_TOTP_STEP_S)
		return MT_ERR_ARG;
	if (strlen(code) != MT_TOTP_DIGITS)
		return MT_ERR_ARG;
	for (size_t i = 0; i < MT_TOTP_DIGITS; i++)
		if (code[i] < '0' || code[i] > '9')
			return MT_ERR_ARG;
	step = (uint64_t)now / MT_TOTP_STEP_S;
	/* Every candidate is computed and compared, match or not. */
	for (uint64_t s = step - 1; s <= step + 1; s++) {
		uint32_t v;
		enum mt_err e = mt_hotp(MT_TOTP_SHA1, key, key_len, s, MT_TOTP_DIGITS, &v);

		if (e != MT_OK) {
			mt_wipe(want, sizeof want);
			return e;
		}
		(void)snprintf(want, sizeof want, "%06u", (unsigned)v);
		if (CRYPTO_memcmp(want, code, MT_TOTP_DIGITS) == 0 && s > *last_step && !found) {
			found = true;
			matched = s;
		}
	}
	mt_wipe(want, sizeof want);
	if (!found)
		return MT_ERR_REFUSED;
	*last_step = matched;
	return MT_OK;
}

enum mt_err mt_base32(const uint8_t *in, size_t len, char *out, size_t cap)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	size_t need = (len * 8 + 4) / 5 + 1, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if ((in == NULL && len > 0) || out == NULL)
		return MT_ERR_ARG;
	if (cap < need)
		return MT_ERR_BUFFER;
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = alphabet[(acc >> bits) & 31];
		}
	}
	if (bits > 0)
		out[o++] = alphabet[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return MT_OK;
}

static bool plain(const char *s)
{
	if (s == NULL || s[0] == '\0' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

enum mt_err mt_totp_uri(const char *issuer, const char *account, const uint8_t *key,
                        size_t key_len, char *out, size_t cap)
{
	char secret[(MT_TOTP_KEY_MAX * 8 + 4) / 5 + 1];
	enum mt_err e;
	int n;

	if (!plain(issuer) || !plain(account) || key == NULL || key_len == 0 ||
	    key_len > MT_TOTP_KEY_MAX || out == NULL || cap == 0)
		return MT_ERR_ARG;
	e = mt_base32(key, key_len, secret, sizeof secret);
	if (e != MT_OK)
		return e;
	n = snprintf(out, cap,
	             "otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d",
	             issuer, account, secret, issuer, MT_TOTP_DIGITS, MT_TOTP_STEP_S);
	mt_wipe(secret, sizeof secret);
	if (n < 0 || (size_t)n >= cap) {
		mt_wipe(out, cap);
		return MT_ERR_BUFFER;
	}
	return MT_OK;
}
