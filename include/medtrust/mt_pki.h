/*
 * mt_pki.h — X.509 certificates, PKCS#10 requests, CRLs and certs-only
 * PKCS#7, every signature made through the key store (protocol §1 and §2,
 * threats B01–B06, D04).
 *
 * Private keys never leave their token, so nothing here takes a private
 * key: each signature is made by mt_key_sign() on the DER of the
 * to-be-signed part, and each product is parsed back and verified with the
 * issuer's public key before it is returned.  A signature that does not
 * verify is an error (MT_ERR_PKI_SELF_CHECK), never an output.
 *
 * Certificates are held in an opaque, immutable `struct mt_cert` (a parsed
 * certificate and its exact DER); one may be read by several threads at once.
 * CSRs, CRLs and PKCS#7 bundles go in and out as DER in caller-owned
 * buffers: a function that writes one takes `out`, `cap` and `*len`; when
 * `cap` is too small it returns MT_ERR_BUFFER with *len set to the size
 * needed (call again with a larger buffer; a second call makes a new
 * signature, so the bytes differ but the size does not grow for ECDSA by more
 * than 2 bytes — ask for *len + 8 to be safe).
 *
 * Names.  Subjects are written as RFC 4514 strings, "CN=medtrust operator
 * CA,O=Hospital": most specific RDN first, so the DER holds them in reverse
 * order (O, then CN), the way OpenSSL prints them.  Attributes allowed: CN,
 * O, OU, C, ST, L, serialNumber, DC; values 1–64 bytes of UTF-8 without
 * control characters; `\,` escapes a comma.  Anything else is
 * MT_ERR_PKI_SUBJECT.
 *
 * Times are Unix seconds (int64_t).  A `not_before` or `at` of 0 means
 * "now" (the system clock).  UTCTime is used up to 2049, GeneralizedTime
 * from 2050 (RFC 5280 §4.1.2.5); birth certificates end at
 * 99991231235959Z (IEEE 802.1AR).
 *
 * Serial numbers are 16 random bytes, positive, first byte 0x40–0x7f (so
 * the DER INTEGER is exactly 16 bytes; 126 bits of randomness).
 *
 * Key types: issuers (CA keys) P-256 (ecdsa-with-SHA256) or Ed25519;
 * subjects P-256 or Ed25519.  Other keys: MT_ERR_KEY_TYPE.
 *
 * Every function returns MT_ERR_ARG for NULL or out-of-range arguments,
 * MT_ERR_NOMEM, and MT_ERR_CRYPTO when OpenSSL fails unexpectedly, beside
 * the errors named at each declaration.  Key-store failures
 * (MT_ERR_KS_KEY_TYPE, MT_ERR_KS_OPERATION) are passed through unchanged.
 */
#ifndef MT_PKI_H
#define MT_PKI_H

#include <stddef.h>
#include <stdint.h>

#include "mt_crypto.h"
#include "mt_err.h"
#include "mt_keystore.h"

#define MT_PKI_INPUT_MAX 16384      /* bytes: certificates and CSRs parsed here */
#define MT_PKI_CRL_MAX (1 << 20)    /* bytes: CRLs parsed here */
#define MT_PKI_CHAIN_MAX 8          /* certificates in a PKCS#7 bundle or a chain */
#define MT_PKI_NAMES_MAX 16         /* subjectAltName entries */
#define MT_PKI_FINGERPRINT_LEN 32   /* SHA-256 of the certificate DER */
#define MT_PKI_SERIAL_LEN 16
#define MT_PKI_CN_MAX 65            /* a CN of 64 bytes and its NUL */

struct mt_cert;

/* ---- certificates as objects --------------------------------------- */

/* Parse one DER certificate (at most MT_PKI_INPUT_MAX bytes, no trailing
 * bytes).  *out is new; free it with mt_cert_free().  Nothing is verified.
 * Errors: MT_ERR_PKI_TOO_LARGE, MT_ERR_PKI_FORMAT. */
MT_NODISCARD enum mt_err mt_cert_from_der(const uint8_t *der, size_t len, struct mt_cert **out);
/* The same from a certificate OpenSSL already parsed (a TLS peer's): `x`
 * (an X509) is shared, not copied — *out holds a reference of its own —
 * so its public key is not decoded again.  Errors as mt_cert_from_der. */
struct x509_st;
MT_NODISCARD enum mt_err mt_cert_from_x509(struct x509_st *x, struct mt_cert **out);

/* The same from PEM text holding exactly one "CERTIFICATE" block. */
MT_NODISCARD enum mt_err mt_cert_from_pem(const char *pem, size_t len, struct mt_cert **out);
/* The same from a PEM file (at most 64 KiB).  Errors: those of
 * mt_file_read (MT_ERR_NOT_FOUND, MT_ERR_IO, ...) and mt_cert_from_pem. */
MT_NODISCARD enum mt_err mt_cert_from_pem_file(const char *path, struct mt_cert **out);
void mt_cert_free(struct mt_cert *c);

/* The certificate's DER, owned by `c` (valid until mt_cert_free). */
const uint8_t *mt_cert_der(const struct mt_cert *c, size_t *len);
/* PEM text, NUL-terminated, into out[0..cap); *len excludes the NUL.
 * Errors: MT_ERR_BUFFER (*len = bytes needed without the NUL). */
MT_NODISCARD enum mt_err mt_cert_pem(const struct mt_cert *c, char *out, size_t cap, size_t *len);
/* The subject public key as a new mt_pubkey (the caller frees it).
 * Errors: MT_ERR_KEY_TYPE, MT_ERR_KEY_FORMAT. */
MT_NODISCARD enum mt_err mt_cert_pubkey(const struct mt_cert *c, struct mt_pubkey **out);
/* SHA-256 of the DER (device manifest entries, protocol §1). */
MT_NODISCARD enum mt_err mt_cert_fingerprint(const struct mt_cert *c,
                                             uint8_t out[MT_PKI_FINGERPRINT_LEN]);
/* kid of the subject public key (mt_kid_of_spki).  Errors as mt_cert_pubkey. */
MT_NODISCARD enum mt_err mt_cert_kid(const struct mt_cert *c, uint8_t kid[MT_KID_LEN]);
/* The subject's (single) commonName, NUL-terminated.  Errors:
 * MT_ERR_NOT_FOUND (no CN), MT_ERR_PKI_SUBJECT (several CNs, or a CN with
 * a NUL or control character), MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_cert_subject_cn(const struct mt_cert *c, char *out, size_t cap);
/* The serial number's magnitude, big-endian.  Errors: MT_ERR_BUFFER
 * (*len = bytes needed), MT_ERR_PKI_FORMAT (negative serial). */
MT_NODISCARD enum mt_err mt_cert_serial(const struct mt_cert *c, uint8_t *out, size_t cap,
                                        size_t *len);
/* notBefore and notAfter as Unix seconds (either pointer may be NULL). */
MT_NODISCARD enum mt_err mt_cert_validity(const struct mt_cert *c, int64_t *not_before,
                                          int64_t *not_after);

/* ---- issuing --------------------------------------------------------- */

/* A self-signed CA certificate for `key`: subject = issuer = `subject`,
 * basicConstraints CA:TRUE critical (with pathLenConstraint when
 * path_len ≥ 0), keyUsage keyCertSign+cRLSign critical, SKI and AKI (its own
 * SKI).  Validity: from not_before (0 = now) for lifetime_s seconds
 * (0 = ten years).  Errors: MT_ERR_PKI_SUBJECT, MT_ERR_KEY_TYPE (key neither
 * P-256 nor Ed25519), MT_ERR_PKI_SELF_CHECK, key-store errors. */
struct mt_pki_ca_opts {
	const char *subject;
	int64_t not_before;
	int64_t lifetime_s;
	int path_len; /* -1: no pathLenConstraint */
};
MT_NODISCARD enum mt_err mt_pki_ca_create(struct mt_key *key, const struct mt_pki_ca_opts *o,
                                          struct mt_cert **out);

enum mt_pki_profile {
	/* Protocol §1.  Subject CN=<id>, O=<manufacturer>, serialNumber=<id>;
	 * keyUsage digitalSignature (critical); EKU clientAuth; notAfter
	 * 99991231235959Z (lifetime_s must be 0).  serialNumber is an X.520
	 * PrintableString, so an id with '_' is MT_ERR_PKI_SUBJECT here. */
	MT_PKI_BIRTH = 1,
	/* Protocol §1.  Subject CN=<id>; digitalSignature; clientAuth; default
	 * lifetime 30 days. */
	MT_PKI_OPERATIONAL = 2,
	/* Broker and hub: subject from `subject`, subjectAltName from dns/ip
	 * (at least one entry); digitalSignature; serverAuth; default 1 year. */
	MT_PKI_TLS_SERVER = 3,
	/* Hub-to-broker and other service clients: `subject`; digitalSignature;
	 * clientAuth; optional subjectAltName; default 1 year. */
	MT_PKI_TLS_CLIENT = 4,
	/* Command, firmware and manifest signers: `subject`; digitalSignature
	 * only; EKU codeSigning when `code_signing_eku`; default 1 year. */
	MT_PKI_SIGNER = 5,
	/* An intermediate CA: `subject`; CA:TRUE (path_len as for the root),
	 * keyCertSign+cRLSign; default 5 years. */
	MT_PKI_SUB_CA = 6,
};

/* What to issue.  Unused fields must be 0/NULL.  `id` is a device id
 * (protocol: [A-Za-z0-9][A-Za-z0-9._-]{0,63}); `dns` names are host names
 * (letters, digits, '-', '.', no wildcard, at most 253 bytes); `ip` entries
 * are IPv4 or IPv6 text.  At most MT_PKI_NAMES_MAX names in all. */
struct mt_pki_leaf {
	enum mt_pki_profile profile;
	const char *id;           /* BIRTH, OPERATIONAL */
	const char *manufacturer; /* BIRTH */
	const char *subject;      /* TLS_SERVER, TLS_CLIENT, SIGNER, SUB_CA */
	const char *const *dns;
	size_t n_dns;
	const char *const *ip;
	size_t n_ip;
	int64_t not_before;       /* 0 = now */
	int64_t lifetime_s;       /* 0 = the profile's default */
	int path_len;             /* SUB_CA only: -1 = none */
	int code_signing_eku;     /* SIGNER only */
};

/* Issue a certificate for `subject_key` signed by `ca_key`, whose
 * certificate is `ca_cert`: issuer name and AKI from ca_cert, a fresh
 * serial, basicConstraints CA:FALSE (critical) for every profile but
 * SUB_CA, SKI of the subject key.  Errors: MT_ERR_PKI_ISSUER (ca_cert is
 * not a CA certificate with keyCertSign, or its key is not ca_key's),
 * MT_ERR_PKI_SUBJECT (id, manufacturer, subject or a name malformed or
 * missing for the profile), MT_ERR_KEY_TYPE, MT_ERR_PKI_SELF_CHECK,
 * key-store errors. */
MT_NODISCARD enum mt_err mt_pki_issue(struct mt_key *ca_key, const struct mt_cert *ca_cert,
                                      const struct mt_pubkey *subject_key,
                                      const struct mt_pki_leaf *leaf, struct mt_cert **out);

/* ---- PKCS#10 (EST, protocol §2) ------------------------------------- */

/* A CSR for `key` with subject CN=<cn> (a device id), no attributes,
 * signed by the key (proof of possession).  DER into out[0..cap).
 * Errors: MT_ERR_PKI_SUBJECT, MT_ERR_KEY_TYPE, MT_ERR_BUFFER,
 * MT_ERR_PKI_SELF_CHECK, key-store errors. */
MT_NODISCARD enum mt_err mt_pki_csr_create(struct mt_key *key, const char *cn, uint8_t *out,
                                           size_t cap, size_t *len);

/* Parse and check a DER CSR (hub side), in this order:
 *   MT_ERR_PKI_TOO_LARGE   more than MT_PKI_INPUT_MAX bytes
 *   MT_ERR_PKI_FORMAT      not one DER CertificationRequest, trailing bytes,
 *                          version other than 0
 *   MT_ERR_KEY_TYPE        key neither P-256 nor Ed25519
 *   MT_ERR_PKI_ALG         signature algorithm not ecdsa-with-SHA256 (P-256)
 *                          or Ed25519 (Ed25519)
 *   MT_ERR_PKI_CSR_POP     the signature does not verify with the CSR's key
 *   MT_ERR_PKI_CSR_REQUEST an attribute other than extensionRequest, or a
 *                          requested extension that asks for a CA
 *                          (basicConstraints CA:TRUE, keyCertSign, cRLSign,
 *                          nameConstraints) or that is not understood
 *   MT_ERR_NOT_FOUND / MT_ERR_PKI_SUBJECT / MT_ERR_BUFFER  as
 *                          mt_cert_subject_cn, for the subject CN
 * On success `cn` holds the CN and *pub (when pub != NULL) a new public key
 * the caller frees.  The CN is what the device asked for, nothing more: the
 * hub takes the subject from the birth identity (threat B11). */
MT_NODISCARD enum mt_err mt_pki_csr_verify(const uint8_t *der, size_t len, char *cn,
                                           size_t cn_cap, struct mt_pubkey **pub);

/* ---- CRL ------------------------------------------------------------- */

/* RFC 5280 §5.3.1 reason codes (7 is unused). */
enum mt_pki_reason {
	MT_PKI_REASON_UNSPECIFIED = 0,
	MT_PKI_REASON_KEY_COMPROMISE = 1,
	MT_PKI_REASON_CA_COMPROMISE = 2,
	MT_PKI_REASON_AFFILIATION_CHANGED = 3,
	MT_PKI_REASON_SUPERSEDED = 4,
	MT_PKI_REASON_CESSATION_OF_OPERATION = 5,
	MT_PKI_REASON_CERTIFICATE_HOLD = 6,
	MT_PKI_REASON_REMOVE_FROM_CRL = 8,
	MT_PKI_REASON_PRIVILEGE_WITHDRAWN = 9,
	MT_PKI_REASON_AA_COMPROMISE = 10,
};

struct mt_pki_revoked {
	const uint8_t *serial; /* magnitude, big-endian, 1..20 bytes */
	size_t serial_len;
	int64_t when;          /* revocation time; 0 = now */
	enum mt_pki_reason reason; /* UNSPECIFIED puts no reasonCode entry */
};

struct mt_pki_crl_opts {
	const struct mt_pki_revoked *revoked;
	size_t n_revoked;
	int64_t this_update;   /* 0 = now */
	int64_t next_update;   /* absolute; must be later than this_update */
	uint64_t crl_number;   /* monotonically increasing, the caller's to keep */
};

/* A v2 CRL signed by `ca_key` (certificate `ca_cert`): issuer, thisUpdate,
 * nextUpdate, the entries sorted by serial, cRLNumber and AKI.  DER into
 * out[0..cap).  Errors: MT_ERR_PKI_ISSUER (as mt_pki_issue, or ca_cert
 * lacks cRLSign), MT_ERR_BUFFER, MT_ERR_PKI_SELF_CHECK, key-store errors. */
MT_NODISCARD enum mt_err mt_pki_crl_create(struct mt_key *ca_key, const struct mt_cert *ca_cert,
                                           const struct mt_pki_crl_opts *o, uint8_t *out,
                                           size_t cap, size_t *len);

/* ---- PKCS#7 certs-only (RFC 7030 §4.1.3, §4.2.3) -------------------- */

/* A degenerate SignedData holding certs[0..n) (1 ≤ n ≤ MT_PKI_CHAIN_MAX),
 * in that order.  DER into out[0..cap).  Errors: MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_pki_p7_certs(const struct mt_cert *const *certs, size_t n,
                                         uint8_t *out, size_t cap, size_t *len);
/* The same in base64 (RFC 2045 lines of 64 characters, each ended by
 * "\n"), the body of an EST `application/pkcs7-mime` answer; NUL-terminated,
 * *len excludes the NUL.  Errors: MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_pki_p7_certs_b64(const struct mt_cert *const *certs, size_t n,
                                             char *out, size_t cap, size_t *len);
/* The same into a new NUL-terminated buffer (*out, the caller frees it),
 * built once: for an answer whose size is not known in advance. */
MT_NODISCARD enum mt_err mt_pki_p7_certs_b64_alloc(const struct mt_cert *const *certs, size_t n,
                                                   char **out, size_t *len);
/* Read a certs-only PKCS#7 (DER, at most MT_PKI_CRL_MAX bytes): up to
 * `cap` (≤ MT_PKI_CHAIN_MAX) new certificates into certs[0..*n), in the
 * bundle's order; the caller frees each.  Errors: MT_ERR_PKI_TOO_LARGE,
 * MT_ERR_PKI_FORMAT (not SignedData, has signers, or no certificate),
 * MT_ERR_BUFFER (more than `cap` certificates). */
MT_NODISCARD enum mt_err mt_pki_p7_parse(const uint8_t *der, size_t len, struct mt_cert **certs,
                                         size_t cap, size_t *n);

/* ---- verification ---------------------------------------------------- */

enum mt_pki_purpose {
	MT_PKI_PURPOSE_CLIENT = 0, /* TLS client / EST: EKU clientAuth */
	MT_PKI_PURPOSE_SERVER = 1, /* TLS server: EKU serverAuth */
	MT_PKI_PURPOSE_SIGNER = 2, /* command/firmware/manifest signer: digitalSignature */
};

struct mt_pki_verify_opts {
	int64_t at;                   /* time of the check; 0 = now */
	enum mt_pki_purpose purpose;
	const struct mt_cert *const *intermediates; /* untrusted, may be NULL */
	size_t n_intermediates;
	const uint8_t *crl;           /* DER CRL of the leaf's issuer, or NULL: */
	size_t crl_len;               /*   no revocation check, unless ... */
	int crl_required;             /* ... this is set: then no CRL is
	                               * MT_ERR_PKI_CRL (fail closed, B04) */
};

/* Verify `leaf` up to one of roots[0..n_roots) (the only trust anchors,
 * self-signed),
 * through the optional intermediates, with OpenSSL's X509_STORE under
 * X509_V_FLAG_X509_STRICT, then the leaf rules of threat B05: not a CA,
 * keyUsage present with digitalSignature and without keyCertSign/cRLSign,
 * EKU present and holding the purpose's usage (SIGNER: no EKU needed).
 * o may be NULL (now, CLIENT, no CRL).  Errors, each a distinct verdict:
 *   MT_ERR_PKI_UNTRUSTED      no path to a given root (B01: a fake root
 *                             carrying the real root's name)
 *   MT_ERR_PKI_SIGNATURE      a signature in the path does not verify
 *   MT_ERR_PKI_EXPIRED        a certificate in the path has expired (B02)
 *   MT_ERR_PKI_NOT_YET_VALID  a certificate is not yet valid (B02)
 *   MT_ERR_PKI_REVOKED        the leaf is on the CRL (B03)
 *   MT_ERR_PKI_CRL            the CRL is missing (crl_required), unparsable,
 *                             of another issuer,
 *                             badly signed, expired or not yet valid: fail
 *                             closed (B04)
 *   MT_ERR_PKI_USAGE          wrong key usage or EKU, a CA:TRUE leaf, a CA
 *                             in the path that may not sign certificates
 *   MT_ERR_PKI_CHAIN          path too long, pathLen or name constraints
 *                             violated, a malformed certificate (B06)
 */
MT_NODISCARD enum mt_err mt_pki_verify(const struct mt_cert *leaf,
                                       const struct mt_cert *const *roots, size_t n_roots,
                                       const struct mt_pki_verify_opts *o);

#endif
