/*
 * hub.h — medtrustd's onboarding service: the EST endpoints and
 * /mt/v1/onboard of protocol §2 behind the HTTPS server (https.h), with
 * every check §2 asks for, per-source and per-identity rate limits, and an
 * audit record for every outcome (docs/onboarding.md; threats B, D).
 *
 *   GET  /.well-known/est/cacerts          no client certificate needed
 *   POST /.well-known/est/simpleenroll     birth certificate (TLS client cert)
 *   POST /.well-known/est/simplereenroll   current operational certificate
 *   POST /mt/v1/onboard                    current operational certificate
 *   GET  /healthz                          "ok" (for supervisors and tests)
 *   anything else                          the web console (console.h,
 *                                          docs/console.md)
 *
 * mt_hub_handle is the https.h handler; it is thread-safe (the registry,
 * the CA key and the audit writer are used under one lock; TLS, CSR
 * parsing and proof-of-possession run outside it).
 */
#ifndef MT_HUB_HUB_H
#define MT_HUB_HUB_H

#include <stdint.h>

#include "https.h"
#include "medtrust/mt_deploy.h"

struct mt_hub;

/* Open the deployment at conf_path (mt_deploy_open), its CA, audit writer
 * and the public material served to devices.  `why` gets a sentence on
 * failure. */
MT_NODISCARD enum mt_err mt_hub_open(const char *conf_path, struct mt_hub **out, char *why,
                                     size_t why_cap);
void mt_hub_close(struct mt_hub *h);

struct mt_deploy *mt_hub_deploy(struct mt_hub *h);
/* The web console (NULL when it could not be opened). */
struct mt_console *mt_hub_console(struct mt_hub *h);

/* The hub's TLS server context (mt_https_ssl_ctx) for hub_tls_cert with
 * the key hub_tls_key, which the hub opens and keeps until mt_hub_close:
 * free *ctx (SSL_CTX_free) before closing the hub.  `why` says what failed. */
MT_NODISCARD enum mt_err mt_hub_ssl_ctx(struct mt_hub *h, SSL_CTX **ctx, char *why,
                                        size_t why_cap);

/* The hub's client TLS context for the broker (mt_mqtt_tls_ctx): its
 * client certificate hub_client_cert (CN=hub) with hub_tls_key in the
 * token, the broker checked against ca_cert and the name `broker_host`.
 * Free *ctx (SSL_CTX_free) before closing the hub. */
MT_NODISCARD enum mt_err mt_hub_mqtt_ssl_ctx(struct mt_hub *h, const char *broker_host,
                                             SSL_CTX **ctx, char *why, size_t why_cap);

/* Append an audit record (thread-safe: the hub's audit writer is used
 * under its lock); a failure to write is reported on stderr.  The shape
 * of mt_ingest_opts.audit (arg = the hub). */
void mt_hub_audit(void *arg, const char *actor, const char *action, const char *subject,
                  enum mt_audit_outcome outcome, const char *detail);

/* The https.h handler (arg = the hub). */
void mt_hub_handle(void *arg, const struct mt_https_req *rq, struct mt_https_resp *rs);

/* The https.h refusal callback (arg = the hub): audits what the HTTP
 * layer refused before the handler saw it (an oversized body, ambiguous
 * headers), drawing on the source's rate-limit bucket like any request. */
void mt_hub_refused(void *arg, const char *source, const char *method, const char *path,
                    int status);

/* Periodic work (medtrustd calls it every few seconds): a new CRL when
 * the current one is past half its life (so the fleet is never locked
 * out by an expired CRL), an audit checkpoint when one is due by time.
 * *crl_signed (may be NULL) says whether a CRL was signed. */
MT_NODISCARD enum mt_err mt_hub_tick(struct mt_hub *h, int64_t now, bool *crl_signed);

#endif
