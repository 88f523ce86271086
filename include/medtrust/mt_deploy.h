/*
 * mt_deploy.h — a hub deployment opened from its medtrust.conf: the one
 * place where the CLI's lifecycle commands (trust, manifest, device, crl)
 * and medtrustd find the keys, certificates, database, registry, audit
 * chain and CRL that `medtrust init` made (docs/operations.md).
 *
 * Opening sets SOFTHSM2_CONF from the file's softhsm2_conf before any
 * token is touched (SoftHSM2 reads it once per process).  Keys are opened
 * only when asked for, so `medtrust device list` never needs the token.
 *
 * Audit: every lifecycle action goes through mt_deploy_audit(), which
 * stamps the time and writes one record in the chain.  A failure to write
 * the audit record is an error of the action (fail closed): a state change
 * that cannot be recorded is reported as failed, and callers audit before
 * they answer.
 */
#ifndef MT_DEPLOY_H
#define MT_DEPLOY_H

#include <stddef.h>
#include <stdint.h>

#include "mt_audit.h"
#include "mt_config.h"
#include "mt_err.h"
#include "mt_keystore.h"
#include "mt_pki.h"
#include "mt_registry.h"
#include "mt_store.h"

/* Every key medtrust.conf may hold (docs/operations.md lists them). */
extern const char *const mt_deploy_keys[];
extern const size_t mt_deploy_n_keys;

/* Defaults of the optional keys. */
#define MT_DEPLOY_HUB_PORT 8443
#define MT_DEPLOY_OP_CERT_DAYS 30
#define MT_DEPLOY_CRL_DAYS 7
#define MT_DEPLOY_EST_RATE 20    /* requests per second per source address */
#define MT_DEPLOY_EST_BURST 200  /* bucket size per source address */

struct mt_deploy {
	struct mt_config *conf;
	struct mt_registry *reg;   /* open after mt_deploy_open */
	struct mt_audit *audit;    /* after mt_deploy_open_audit */
	struct mt_key *audit_key;
	struct mt_key *ca_key;     /* after mt_deploy_open_ca */
	struct mt_cert *ca_cert;   /* after mt_deploy_open_ca */
	struct mt_kek *kek;        /* after mt_deploy_open_store: the KEK
	                            * (kek_key), shared by every store opened */
};

/* Read `conf_path` (NULL: $MEDTRUST_CONFIG, else ./medtrust.conf), set
 * SOFTHSM2_CONF, open the registry in db_path.  `why` (may be NULL)
 * receives a sentence on failure.  Errors: MT_ERR_IO (no such file),
 * the mt_config errors (with the line in `why`), MT_ERR_ARG (a required
 * key missing), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_deploy_open(const char *conf_path, struct mt_deploy **out,
                                        char *why, size_t why_cap);
void mt_deploy_close(struct mt_deploy *d);

/* A key's value, or NULL. */
const char *mt_deploy_get(const struct mt_deploy *d, const char *key);
/* An unsigned integer key, or `dflt` when absent; MT_ERR_ARG when present
 * but not a decimal in [1, max]. */
MT_NODISCARD enum mt_err mt_deploy_uint(const struct mt_deploy *d, const char *key,
                                        uint64_t dflt, uint64_t max, uint64_t *out);

/* Open the audit writer (audit_key, db_path, audit_checkpoints). */
MT_NODISCARD enum mt_err mt_deploy_open_audit(struct mt_deploy *d);
/* Open the operator CA (ca_key, ca_cert). */
MT_NODISCARD enum mt_err mt_deploy_open_ca(struct mt_deploy *d);

/* The readings store's path: `data_path`, or by default data.db in the
 * directory of `db_path` ("data.db" when db_path has no directory).
 * Errors: MT_ERR_BUFFER (does not fit cap), MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_deploy_data_path(const struct mt_deploy *d, char *out, size_t cap);

/* A NEW connection to the deployment's readings store (mt_store.h) at
 * mt_deploy_data_path, created when absent (mode 0600).  The KEK
 * (`kek_key`, a pkcs11: URI with its PIN in pin-source or pin-value) is
 * opened at the first call and kept in d->kek for every later store; the
 * caller closes each store with mt_store_close before mt_deploy_close.
 * The hub opens two: a writer (its committer) and a reader.  Errors:
 * MT_ERR_ARG (no kek_key), the mt_kek_open errors (MT_ERR_KS_PIN,
 * MT_ERR_KS_KEY_NOT_FOUND, ...), the mt_store_open errors. */
MT_NODISCARD enum mt_err mt_deploy_open_store(struct mt_deploy *d, struct mt_store **out);

/* Append one audit record now.  `detail` is a JSON object text or NULL.
 * Errors: as mt_audit_append; MT_ERR_ARG when the writer is not open. */
MT_NODISCARD enum mt_err mt_deploy_audit(struct mt_deploy *d, const char *actor,
                                         const char *action, const char *subject,
                                         enum mt_audit_outcome outcome, const char *detail);

/* Write the JSON string form of `s` (quotes included) into out[0..cap),
 * truncating safely at a character boundary; returns out. */
char *mt_deploy_json_str(const char *s, char *out, size_t cap);

/* Sign a new CRL (every revoked, unexpired operational certificate; the
 * next CRL number; nextUpdate now + crl_days) and replace the `crl` file
 * atomically (temporary file, fsync, rename; mode 0644).  *next_update
 * (may be NULL) receives nextUpdate.  Needs mt_deploy_open_ca.  Errors:
 * key store, PKI and registry errors, MT_ERR_IO. */
MT_NODISCARD enum mt_err mt_deploy_crl_refresh(struct mt_deploy *d, int64_t now,
                                               int64_t *next_update);

/* Run the configured revoke_hook (if any) as `HOOK DEVICE-ID REASON`
 * without a shell, and wait for it.  Errors: MT_ERR_IO when it cannot
 * run or exits non-zero (the revocation itself stands). */
MT_NODISCARD enum mt_err mt_deploy_revoke_hook(struct mt_deploy *d, const char *device,
                                               const char *reason);

/* The current time in Unix seconds and milliseconds. */
int64_t mt_deploy_now(void);
uint64_t mt_deploy_now_ms(void);

#endif
