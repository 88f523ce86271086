/*
 * lifecycle.c — withdrawing a device's access: registry change, fresh
 * CRL, revoke hook, in that order, for the CLI and the console alike
 * (mt_lifecycle.h says why that order and what a failure of each step
 * means).
 *
 * Nothing here writes the audit record: the caller knows its actor
 * (cli:<login>, user:<name>) and must audit whatever the outcome;
 * mt_lifecycle_detail gives both the same members.  The CRL mutex is a
 * static of this file because the CRL file is one per deployment and
 * mt_file_replace writes it through one temporary name: two threads of a
 * process must not both be between "open the temporary" and "rename".
 */
#define _POSIX_C_SOURCE 200809L

#include "medtrust/mt_lifecycle.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t crl_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct {
	const char *name;
	enum mt_pki_reason reason;
} reasons[] = {
        {"unspecified", MT_PKI_REASON_UNSPECIFIED},
        {"keyCompromise", MT_PKI_REASON_KEY_COMPROMISE},
        {"cACompromise", MT_PKI_REASON_CA_COMPROMISE},
        {"affiliationChanged", MT_PKI_REASON_AFFILIATION_CHANGED},
        {"superseded", MT_PKI_REASON_SUPERSEDED},
        {"cessationOfOperation", MT_PKI_REASON_CESSATION_OF_OPERATION},
        {"certificateHold", MT_PKI_REASON_CERTIFICATE_HOLD},
        {"privilegeWithdrawn", MT_PKI_REASON_PRIVILEGE_WITHDRAWN},
        {"aACompromise", MT_PKI_REASON_AA_COMPROMISE},
};

bool mt_lifecycle_reason(const char *name, enum mt_pki_reason *out)
{
	if (name == NULL)
		return false;
	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
		if (strcmp(reasons[i].name, name) == 0) {
			if (out != NULL)
				*out = reasons[i].reason;
			return true;
		}
	}
	return false;
}

const char *mt_lifecycle_reason_name(enum mt_pki_reason r)
{
	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
		if (reasons[i].reason == r)
			return reasons[i].name;
	return NULL;
}

const char *mt_lifecycle_action(enum mt_lifecycle_act act)
{
	switch (act) {
	case MT_LC_REVOKE:
		return "device.revoke";
	case MT_LC_DECOMMISSION:
		return "device.decommission";
	case MT_LC_RELEASE:
		return "device.release";
	}
	return "device.?";
}

enum mt_err mt_lifecycle_crl_refresh(struct mt_deploy *d, int64_t now, int64_t *next_update)
{
	enum mt_err e;

	pthread_mutex_lock(&crl_lock);
	e = mt_deploy_crl_refresh(d, now, next_update);
	pthread_mutex_unlock(&crl_lock);
	return e;
}

enum mt_err mt_lifecycle_change(struct mt_deploy *d, enum mt_lifecycle_act act, const char *serial,
                                enum mt_pki_reason reason, int64_t now,
                                struct mt_lifecycle_result *res)
{
	const char *rname;
	struct mt_device_rec r;

	if (res == NULL)
		return MT_ERR_ARG;
	memset(res, 0, sizeof *res);
	if (d == NULL || d->reg == NULL || serial == NULL) {
		res->change = MT_ERR_ARG;
		return MT_ERR_ARG;
	}
	res->hook_configured = mt_deploy_get(d, "revoke_hook") != NULL;
	if (act == MT_LC_REVOKE)
		res->change = mt_registry_revoke(d->reg, serial, reason, now, &res->n_certs);
	else if (act == MT_LC_DECOMMISSION)
		res->change = mt_registry_decommission(d->reg, serial, now, &res->n_certs);
	else if (act == MT_LC_RELEASE)
		res->change = mt_registry_release(d->reg, serial, now);
	else
		res->change = MT_ERR_ARG;
	if (mt_registry_device(d->reg, serial, &r) == MT_OK)
		res->status = r.status;
	if (res->change != MT_OK || act == MT_LC_RELEASE)
		return res->change;
	res->crl = mt_deploy_open_ca(d);
	if (res->crl == MT_OK)
		res->crl = mt_lifecycle_crl_refresh(d, now, &res->crl_next_update);
	res->crl_signed = res->crl == MT_OK;
	rname = act == MT_LC_REVOKE ? mt_lifecycle_reason_name(reason) : "cessationOfOperation";
	res->hook = mt_deploy_revoke_hook(d, serial, rname ? rname : "unspecified");
	return MT_OK;
}

void mt_lifecycle_detail(enum mt_lifecycle_act act, enum mt_pki_reason reason,
                         const struct mt_lifecycle_result *res, char *out, size_t cap)
{
	const char *rname = act == MT_LC_RELEASE        ? "released"
	                    : act == MT_LC_DECOMMISSION ? "cessationOfOperation"
	                                                : mt_lifecycle_reason_name(reason);
	char js[160];
	int n;

	if (out == NULL || cap == 0)
		return;
	n = snprintf(out, cap,
	             "\"reason\":\"%s\",\"certificates_revoked\":%zu,\"crl_next_update\":%" PRId64
	             ",\"crl\":\"%s\",\"hook\":\"%s\"%s%s",
	             rname ? rname : "unspecified", res->n_certs, res->crl_next_update,
	             act == MT_LC_RELEASE || res->change != MT_OK ? "unchanged"
	             : res->crl == MT_OK                          ? "signed"
	                                                          : "FAILED",
	             !res->hook_configured || res->change != MT_OK || act == MT_LC_RELEASE ? "none"
	             : res->hook == MT_OK                                                  ? "ok"
	                                  : "FAILED",
	             res->change == MT_OK ? "" : ",\"error\":",
	             res->change == MT_OK
	                     ? ""
	                     : mt_deploy_json_str(mt_err_str(res->change), js, sizeof js));
	if (n < 0 || (size_t)n >= cap)
		(void)snprintf(out, cap, "\"reason\":\"%s\"", rname ? rname : "unspecified");
}
