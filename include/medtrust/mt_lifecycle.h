/*
 * mt_lifecycle.h — withdrawing a device's access, one implementation for
 * every front end: `medtrust device revoke|decommission|release` (the CLI)
 * and the biomedical engineer's console (/fleet) both call
 * mt_lifecycle_change, so the registry change, the fresh CRL and the
 * revoke hook happen in the same order with the same failure rules
 * wherever the engineer stands (docs/registry.md, docs/console-fleet.md;
 * threats D06, F10).
 *
 * The order, and why:
 *   1. the registry change (mt_registry_revoke, _decommission, _release):
 *      this is the decision; every verifier that reads the registry — the
 *      hub's ingest (it polls the registry's data_version every 100 ms and
 *      rebuilds its device cache), the broker plugin (it polls the
 *      withdrawals) — refuses the device from its next packet on;
 *   2. a fresh CRL signed at once (not for release), so verifiers that
 *      read only the CRL file learn of it without waiting for the next
 *      scheduled one;
 *   3. the deployment's revoke_hook, for integrations outside medtrust.
 * A failure of 2 or 3 does not undo 1: the revocation stands and the
 * result says what failed (the CLI exits 1, the console says so and the
 * audit record carries "crl":"FAILED" or "hook":"FAILED").
 *
 * The caller writes the audit record (it knows its actor); the members of
 * its detail come from mt_lifecycle_detail so that the CLI's and the
 * console's records read alike.
 *
 * CRLs signed through mt_lifecycle_crl_refresh are serialised within the
 * process (a static mutex): two threads of one process (the console's
 * workers) never write the CRL file at once, and the later-numbered CRL
 * is always the one left in place.
 */
#ifndef MT_LIFECYCLE_H
#define MT_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_deploy.h"
#include "mt_err.h"
#include "mt_pki.h"
#include "mt_registry.h"

enum mt_lifecycle_act {
	MT_LC_REVOKE = 0,
	MT_LC_DECOMMISSION = 1,
	MT_LC_RELEASE = 2,
};

/* What one change did.  `change` is the registry's verdict; `crl` and
 * `hook` are MT_OK when they were not run (a refused change, a release,
 * no revoke_hook configured). */
struct mt_lifecycle_result {
	enum mt_err change;        /* MT_OK, MT_ERR_REG_UNKNOWN, MT_ERR_REG_STATE, MT_ERR_REG_DB */
	enum mt_err crl;           /* the new CRL: MT_OK or why it failed */
	enum mt_err hook;          /* the revoke hook: MT_OK or MT_ERR_IO */
	bool crl_signed;           /* a CRL was signed */
	bool hook_configured;      /* revoke_hook is set in medtrust.conf */
	size_t n_certs;            /* certificates revoked by the change */
	int64_t crl_next_update;   /* nextUpdate of the new CRL (0: none signed) */
	enum mt_dev_status status; /* the device's status after the call (0: unknown) */
};

/* The RFC 5280 reason named `name` (the names of `medtrust device revoke
 * --reason`: unspecified keyCompromise cACompromise affiliationChanged
 * superseded cessationOfOperation certificateHold privilegeWithdrawn
 * aACompromise); false for anything else. */
bool mt_lifecycle_reason(const char *name, enum mt_pki_reason *out);
/* The name of reason `r`, or NULL when it is not one of those. */
const char *mt_lifecycle_reason_name(enum mt_pki_reason r);

/* "device.revoke", "device.decommission", "device.release". */
const char *mt_lifecycle_action(enum mt_lifecycle_act act);

/* Change device `serial` at `now`: the registry change on d->reg, then
 * (revoke, decommission) mt_deploy_open_ca when d has no CA yet, a fresh
 * CRL (mt_lifecycle_crl_refresh) and the revoke hook with the reason's
 * name (decommission: cessationOfOperation).  `reason` is used by
 * MT_LC_REVOKE only.  `d` is used by one thread at a time (its registry
 * handle); the CA key may be shared (keys are thread-safe).  Returns
 * res->change (so MT_OK means the registry change was made, whatever
 * became of the CRL and the hook); MT_ERR_ARG for a NULL argument. */
MT_NODISCARD enum mt_err mt_lifecycle_change(struct mt_deploy *d, enum mt_lifecycle_act act,
                                             const char *serial, enum mt_pki_reason reason,
                                             int64_t now, struct mt_lifecycle_result *res);

/* mt_deploy_crl_refresh under the process's CRL mutex. */
MT_NODISCARD enum mt_err mt_lifecycle_crl_refresh(struct mt_deploy *d, int64_t now,
                                                  int64_t *next_update);

/* The members (no braces) of the audit detail of a change, as JSON of
 * ours: "reason","certificates_revoked","crl_next_update","crl" (signed,
 * FAILED, unchanged), "hook" (none, ok, FAILED), and "error" when the
 * change was refused.  Truncated output is replaced by a shorter set of
 * members that fits (cap ≥ 160 always fits something). */
void mt_lifecycle_detail(enum mt_lifecycle_act act, enum mt_pki_reason reason,
                         const struct mt_lifecycle_result *res, char *out, size_t cap);

#endif
