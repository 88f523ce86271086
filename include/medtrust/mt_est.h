/*
 * mt_est.h — the bodies of onboarding requests (protocol §2), parsed
 * strictly before anything is decided: the base64 of an EST request and
 * the JSON of /mt/v1/onboard.  Outside input, so bounded and fuzzed
 * (fuzz/fuzz_est_body.c).
 */
#ifndef MT_EST_H
#define MT_EST_H

#include <stddef.h>
#include <stdint.h>

#include "mt_crypto.h"
#include "mt_err.h"

/* An EST body: base64 (RFC 4648 alphabet, '=' padding only at the end,
 * line breaks, spaces and tabs ignored — RFC 7030 bodies come in 64- or
 * 76-character lines) into out[0..cap).  Anything else, a length that is
 * not a whole number of quanta, or output over cap is MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_est_b64_decode(const uint8_t *in, size_t len, uint8_t *out,
                                           size_t cap, size_t *out_len);

/* The /mt/v1/onboard body: exactly {"kx": "<base64 DER SPKI>"} (no other
 * member, strict JSON, at most 4 KiB), the key P-256.  On success
 * spki[0..*spki_len) is the key's DER SPKI as sent.  Errors:
 * MT_ERR_JSON_SYNTAX, MT_ERR_JSON_SCHEMA (shape), MT_ERR_KEY_FORMAT /
 * MT_ERR_KEY_TYPE (not a P-256 public key); *why (may be NULL) a static
 * sentence. */
MT_NODISCARD enum mt_err mt_est_onboard_body(const uint8_t *body, size_t len,
                                             uint8_t spki[MT_SPKI_MAX], size_t *spki_len,
                                             const char **why);

#endif
