/*
 * agent.h — the device side of onboarding (protocol §2), for the
 * medtrust-device agent and the onboarding benchmark (docs/device-agent.md).
 *
 * Two layers:
 *
 *  - EST client calls (mt_est_*): one HTTPS request each, over libcurl with
 *    OpenSSL, the TLS client key taken from the key store through
 *    mt_key_evp (so a token key signs the handshake inside the token).  The
 *    hub is authenticated against a given CA file (the hospital's operator
 *    CA, provisioned with the device's network settings — RFC 7030 §4.1.1's
 *    "explicit trust anchor"); there is no trust on first use.
 *
 *  - The agent (mt_agent_*): a device directory made by `medtrust mfg make`
 *    (device.conf, birth.pem, the birth key) gains, on first start,
 *    `ldev` and `kx` keys generated in the same store (the token, or
 *    encrypted files for --soft devices), an operational certificate
 *    (op.pem), the operator CA chain (hub-ca.pem) and the onboarding bundle
 *    (bundle.json).  It renews at 2/3 of the certificate's lifetime with
 *    simplereenroll and, when the certificate has expired, enrols afresh
 *    with the birth certificate.
 */
#ifndef MT_AGENT_H
#define MT_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medtrust/mt_err.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_pki.h"

#define MT_AGENT_URI_MAX 1200
#define MT_AGENT_WHY_MAX 512

/* ---- EST client ---------------------------------------------------------- */

struct mt_est_client {
	const char *hub_url;  /* "https://host:port" (no trailing slash) */
	const char *hub_ca;   /* PEM file: the CA that signed the hub's TLS cert */
	const struct mt_cert *cert; /* TLS client certificate (NULL: none) */
	struct mt_key *key;         /* its key (NULL: none) */
	long timeout_s;             /* 0 = 30 */
};

/* The last answer of a call: HTTP status (0 = no answer) and a sentence. */
struct mt_est_result {
	long http_status;
	char why[MT_AGENT_WHY_MAX];
};

/* GET /.well-known/est/cacerts: up to `cap` certificates.  Errors:
 * MT_ERR_IO (transport; r->why says), MT_ERR_REFUSED (an HTTP error
 * status), MT_ERR_PKI_FORMAT (an answer that is not a certs-only PKCS#7). */
MT_NODISCARD enum mt_err mt_est_cacerts(const struct mt_est_client *c, struct mt_cert **certs,
                                        size_t cap, size_t *n, struct mt_est_result *r);

/* POST simpleenroll (reenroll = false) or simplereenroll with `csr` (DER):
 * the issued certificate.  A refusal by the hub is MT_ERR_REFUSED with
 * r->http_status and the hub's sentence in r->why. */
MT_NODISCARD enum mt_err mt_est_enroll(const struct mt_est_client *c, bool reenroll,
                                       const uint8_t *csr, size_t csr_len, struct mt_cert **out,
                                       struct mt_est_result *r);

/* POST /mt/v1/onboard with the kx key's DER SPKI: the bundle JSON text
 * (malloc'ed, NUL-terminated).  Refusal as mt_est_enroll. */
MT_NODISCARD enum mt_err mt_est_onboard(const struct mt_est_client *c, const uint8_t *kx_spki,
                                        size_t kx_len, char **bundle, struct mt_est_result *r);

/* ---- the agent ------------------------------------------------------------ */

struct mt_agent_device {
	char dir[PATH_MAX];
	char serial[MT_DEVICE_ID_MAX + 1];
	char device_class[65];
	char idev_uri[MT_AGENT_URI_MAX];
	char ldev_uri[MT_AGENT_URI_MAX];
	char kx_uri[MT_AGENT_URI_MAX];
	char softhsm2_conf[PATH_MAX]; /* empty for --soft devices */
	char birth_cert[PATH_MAX];
};

/* Read DIR/device.conf (written by `medtrust mfg make`) and derive the
 * ldev and kx key URIs (same token, objects "ldev" and "kx"; or
 * DIR/ldev.key and DIR/kx.key).  Sets SOFTHSM2_CONF for a token device. */
MT_NODISCARD enum mt_err mt_agent_device_load(const char *dir, struct mt_agent_device *d,
                                              char *why, size_t why_cap);

struct mt_agent_opts {
	const char *hub_url;
	const char *hub_ca;
	long timeout_s;
};

/* What mt_agent_step did. */
enum mt_agent_action {
	MT_AGENT_NOTHING = 0,   /* certificate fresh, bundle present */
	MT_AGENT_ENROLLED = 1,  /* a (fresh) enrolment with the birth certificate */
	MT_AGENT_RENEWED = 2,   /* simplereenroll with the operational certificate */
};

/* One pass of the agent at time `now`: enrol when there is no usable
 * operational certificate (none, or expired: fall back to the birth
 * certificate), renew when 2/3 of its lifetime has passed (or `force_renew`),
 * and onboard (kx + bundle) when the bundle is missing or after an
 * enrolment.  *next_check receives when to call again (the 2/3 point).
 * Errors: MT_ERR_REFUSED (the hub refused: r->why), MT_ERR_IO, key
 * store and PKI errors. */
MT_NODISCARD enum mt_err mt_agent_step(const struct mt_agent_device *d,
                                       const struct mt_agent_opts *o, int64_t now,
                                       bool force_renew, enum mt_agent_action *did,
                                       int64_t *next_check, struct mt_est_result *r);

#endif
