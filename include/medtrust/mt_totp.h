/*
 * mt_totp.h — one-time passwords for the console's second factor:
 * HOTP (RFC 4226) and TOTP (RFC 6238), and the otpauth:// URI an
 * authenticator app reads.
 *
 * The console's factor is TOTP with HMAC-SHA1, 30-second steps and six
 * digits: what every authenticator app accepts by default.  SHA-256 and
 * SHA-512 are here for completeness and for RFC 6238's vectors.
 *
 * Invariants, and why:
 *  - mt_totp_check accepts the current step and one step either side (a
 *    phone's clock a little off, a code typed as the step turns) and
 *    nothing wider;
 *  - it refuses any step at or below *last_step, so a code once used —
 *    seen over a shoulder, replayed from a log — never signs in again, even
 *    within its 30 seconds; the caller stores the step it returns;
 *  - candidate codes are compared in constant time, and every candidate in
 *    the window is computed whatever the outcome;
 *  - a code that is not exactly six ASCII digits is MT_ERR_ARG, before any
 *    HMAC;
 *  - nothing here keeps the key: callers wipe it (mt_wipe) when done.
 *
 * Pure apart from the HMAC in libcrypto: no I/O, no allocation, no global
 * state; safe from any thread.
 */
#ifndef MT_TOTP_H
#define MT_TOTP_H

#include <stddef.h>
#include <stdint.h>

#include "medtrust/mt_err.h"

#define MT_TOTP_KEY_LEN 32   /* bytes of a key medtrust makes (256 bits: a KEK-wrappable key) */
#define MT_TOTP_KEY_MAX 64   /* bytes of any key accepted */
#define MT_TOTP_STEP_S 30    /* seconds per step */
#define MT_TOTP_DIGITS 6     /* digits of a console code */
#define MT_TOTP_URI_MAX 512  /* bytes of an otpauth:// URI, NUL included */

enum mt_totp_alg { MT_TOTP_SHA1, MT_TOTP_SHA256, MT_TOTP_SHA512 };

/* HOTP value of `counter` with `digits` (6–8) digits.  Errors: MT_ERR_ARG
 * (no key, a key over MT_TOTP_KEY_MAX, digits out of range), MT_ERR_CRYPTO. */
MT_NODISCARD enum mt_err mt_hotp(enum mt_totp_alg alg, const uint8_t *key, size_t key_len,
                                 uint64_t counter, unsigned digits, uint32_t *out);

/* TOTP value at unix time `t` (step MT_TOTP_STEP_S).  As mt_hotp; t < 0 is
 * MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_totp(enum mt_totp_alg alg, const uint8_t *key, size_t key_len,
                                 int64_t t, unsigned digits, uint32_t *out);

/* Check a console code (SHA-1, six digits) typed at unix time `now`.
 * *last_step is the step of the last code accepted for this key (0: none);
 * on MT_OK it becomes the step that matched.  Errors: MT_ERR_ARG (a code
 * that is not six digits, a bad key or time), MT_ERR_REFUSED (wrong,
 * outside the window, or a step already used), MT_ERR_CRYPTO. */
MT_NODISCARD enum mt_err mt_totp_check(const uint8_t *key, size_t key_len, const char *code,
                                       int64_t now, uint64_t *last_step);

/* RFC 4648 base32 without padding (what otpauth URIs carry).  Errors:
 * MT_ERR_ARG, MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_base32(const uint8_t *in, size_t len, char *out, size_t cap);

/* "otpauth://totp/<issuer>:<account>?secret=<base32>&issuer=<issuer>
 * &algorithm=SHA1&digits=6&period=30".  issuer and account must be
 * [A-Za-z0-9._-] (nothing to escape).  Errors: MT_ERR_ARG, MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_totp_uri(const char *issuer, const char *account,
                                     const uint8_t *key, size_t key_len, char *out,
                                     size_t cap);

#endif
