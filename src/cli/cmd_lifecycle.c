/*
 * cmd_lifecycle.c — the hospital side of the device identity lifecycle
 * (protocol §1–§2, docs/registry.md):
 *
 *   trust add-manufacturer ROOT.pem [-c CONF]
 *   trust list [-c CONF]
 *   manifest import FILE [-c CONF]
 *   device list [--status S] [-c CONF]
 *   device show ID [-c CONF]
 *   device revoke ID --reason R [-c CONF]
 *   device decommission ID [-c CONF]
 *   device release ID [-c CONF]
 *   crl refresh [-c CONF]
 *
 * CONF is the deployment's medtrust.conf (default $MEDTRUST_CONFIG, else
 * ./medtrust.conf).  Every command that changes something writes an audit
 * record whether it succeeds or is refused; the actor is "cli:<login
 * name>".  Revocation and decommissioning sign a fresh CRL at once (so the
 * revocation reaches every verifier that reads the CRL file) and then run
 * the deployment's revoke_hook (for integrations outside medtrust; the
 * broker plugin watches the registry itself); a failing hook is reported
 * (exit 1) but the revocation stands.  That sequence is mt_lifecycle_change
 * (mt_lifecycle.h), which the console's /fleet runs too.
 *
 * Output is JSON lines on stdout for list/show (for scripts), a sentence
 * on stderr otherwise.  Exit codes (cli.h): 0; 1 a deployment, database or
 * key failure; 2 refused (a manifest that does not verify, a device whose
 * status forbids the action); 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_lifecycle.h"
#include "medtrust/mt_util.h"

#define LC_FILE_MAX (16u * 1024 * 1024)

static const char trust_usage[] = "medtrust trust add-manufacturer ROOT.pem | list [-c CONF]";
static const char manifest_usage[] = "medtrust manifest import FILE [-c CONF]";
static const char device_usage[] =
        "medtrust device list|show|revoke|decommission|release ... [-c CONF]";
static const char crl_usage[] = "medtrust crl refresh [-c CONF]";

static const char trust_help[] =
        "usage: medtrust trust add-manufacturer ROOT.pem [-c CONF]\n"
        "       medtrust trust list [-c CONF]\n"
        "\n"
        "Trust a manufacturer's root CA certificate (PEM): its manifests may then\n"
        "be imported and its birth certificates enrol.  'list' prints the trusted\n"
        "manufacturers as JSON lines.\n"
        "  -c, --config CONF   the deployment's medtrust.conf\n";
static const char manifest_help[] =
        "usage: medtrust manifest import FILE [-c CONF]\n"
        "\n"
        "Verify a device manifest (its COSE signature, and its signer's chain to a\n"
        "trusted manufacturer root) and record its entries as the devices allowed\n"
        "to enrol.  Refused whole (exit 2) on a bad signature, an untrusted\n"
        "manufacturer, or a serial already owned by another manifest or birth key.\n"
        "  -c, --config CONF   the deployment's medtrust.conf\n";
static const char device_help[] =
        "usage: medtrust device list [--status S] [-c CONF]\n"
        "       medtrust device show ID [-c CONF]\n"
        "       medtrust device revoke ID --reason R [-c CONF]\n"
        "       medtrust device decommission ID [-c CONF]\n"
        "       medtrust device release ID [-c CONF]\n"
        "\n"
        "list/show print devices as JSON lines.  revoke revokes every certificate\n"
        "of the device with reason R (RFC 5280: unspecified keyCompromise\n"
        "cACompromise affiliationChanged superseded cessationOfOperation\n"
        "certificateHold privilegeWithdrawn aACompromise), signs a new CRL and runs\n"
        "the revoke hook.  decommission revokes and marks the device\n"
        "decommissioned, keeping its records.  release lets another owner's\n"
        "manifest claim a decommissioned device.\n"
        "  -c, --config CONF   the deployment's medtrust.conf\n";
static const char crl_help[] =
        "usage: medtrust crl refresh [-c CONF]\n"
        "\n"
        "Sign a new CRL now (medtrustd does this before the old one expires).\n";

/* ---- shared ------------------------------------------------------------ */

/* Open the deployment; with `writer`, its audit chain too (commands that
 * change something); reading commands never need the token. */
static int open_deploy(const char *conf, bool writer, struct mt_deploy **d)
{
	char why[512] = "";
	enum mt_err e = mt_deploy_open(conf, d, why, sizeof why);

	if (e != MT_OK) {
		fprintf(stderr, "error: opening the deployment: %s\n", why[0] ? why : mt_err_str(e));
		return MT_EXIT_ERROR;
	}
	if (!writer)
		return MT_EXIT_OK;
	e = mt_deploy_open_audit(*d);
	if (e != MT_OK) {
		mt_deploy_close(*d);
		*d = NULL;
		return mt_cli__error("opening the audit chain", e);
	}
	return MT_EXIT_OK;
}

static const char *actor(char *buf, size_t cap)
{
	struct passwd *pw = getpwuid(getuid());

	(void)snprintf(buf, cap, "cli:%s", pw && pw->pw_name ? pw->pw_name : "unknown");
	return buf;
}

/* Audit one outcome; a failure to record is an error (fail closed). */
static int audit(struct mt_deploy *d, const char *action, const char *subject,
                 enum mt_audit_outcome outcome, const char *detail)
{
	char who[96];
	enum mt_err e = mt_deploy_audit(d, actor(who, sizeof who), action, subject, outcome, detail);

	return e == MT_OK ? MT_EXIT_OK : mt_cli__error("writing the audit record", e);
}

/* The whole file at `path`, at most `max` bytes; NULL (and *rc) on error. */
static char *read_file(const char *path, size_t max, size_t *len, int *rc)
{
	uint8_t *buf = NULL;
	enum mt_err e = mt_file_read(path, max, &buf, len);

	if (e != MT_OK) {
		fprintf(stderr, "error: reading %s: %s\n", path,
		        e == MT_ERR_BUFFER ? "file too large" : mt_err_str(e));
		*rc = MT_EXIT_ERROR;
		return NULL;
	}
	*rc = MT_EXIT_OK;
	return (char *)buf;
}

/* ---- trust ------------------------------------------------------------- */

static int trust_add(int argc, char **argv)
{
	const char *cmd = "trust add-manufacturer", *conf = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	char detail[512], name[MT_REG_NAME_MAX + 1] = "", fphex[65], js[2][160];
	uint8_t fp[32];
	struct mt_deploy *d = NULL;
	struct mt_cert *root = NULL;
	bool existed = false;
	int64_t id = 0;
	size_t len;
	char *pem;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, trust_usage, trust_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	pem = read_file(pos[0], 65536, &len, &rc);
	if (pem == NULL)
		return rc;
	rc = open_deploy(conf, true, &d);
	if (rc != MT_EXIT_OK) {
		free(pem);
		return rc;
	}
	e = mt_cert_from_pem(pem, len, &root);
	free(pem);
	if (e == MT_OK)
		e = mt_registry_add_manufacturer(d->reg, root, mt_deploy_now(), &id, &existed);
	if (root != NULL) {
		if (mt_cert_subject_cn(root, name, sizeof name) != MT_OK)
			name[0] = '\0';
		if (mt_cert_fingerprint(root, fp) == MT_OK)
			mt_cli__hex(fp, sizeof fp, fphex);
		else
			fphex[0] = '\0';
	} else {
		fphex[0] = '\0';
	}
	(void)snprintf(detail, sizeof detail, "{\"name\":%s,\"sha256\":%s%s%s}",
	               mt_deploy_json_str(name, js[0], sizeof js[0]),
	               mt_deploy_json_str(fphex, js[1], sizeof js[1]),
	               e == MT_OK ? "" : ",\"error\":", e == MT_OK ? "" : "1");
	rc = audit(d, e == MT_OK ? "trust.add_manufacturer" : "trust.add_manufacturer.refused",
	           name[0] ? name : pos[0], e == MT_OK ? MT_AUDIT_OK : MT_AUDIT_REFUSED, detail);
	if (e != MT_OK) {
		fprintf(stderr, "refused: %s is not a usable manufacturer root: %s\n", pos[0],
		        mt_err_str(e));
		rc = MT_EXIT_REFUSED;
	} else if (rc == MT_EXIT_OK) {
		fprintf(stderr, "%s manufacturer %" PRId64 " \"%s\" (root SHA-256 %s)\n",
		        existed ? "already trusted:" : "trusted:", id, name, fphex);
	}
	mt_cert_free(root);
	mt_deploy_close(d);
	return rc;
}

static int trust_list(int argc, char **argv)
{
	const char *cmd = "trust list", *conf = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	const struct mt_cert *const *roots;
	const int64_t *ids;
	struct mt_deploy *d = NULL;
	size_t n;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, trust_usage, trust_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	rc = open_deploy(conf, false, &d);
	if (rc != MT_EXIT_OK)
		return rc;
	e = mt_registry_roots(d->reg, &roots, &ids, &n);
	for (size_t i = 0; e == MT_OK && i < n; i++) {
		char name[MT_REG_NAME_MAX + 1] = "", js[300], fphex[65];
		uint8_t fp[32];

		if (mt_cert_subject_cn(roots[i], name, sizeof name) != MT_OK)
			name[0] = '\0';
		if (mt_cert_fingerprint(roots[i], fp) != MT_OK)
			continue;
		mt_cli__hex(fp, sizeof fp, fphex);
		printf("{\"id\":%" PRId64 ",\"name\":%s,\"root_sha256\":\"%s\"}\n", ids[i],
		       mt_deploy_json_str(name, js, sizeof js), fphex);
	}
	mt_deploy_close(d);
	if (e != MT_OK)
		return mt_cli__error("reading the registry", e);
	return fflush(stdout) == 0 ? MT_EXIT_OK : MT_EXIT_ERROR;
}

int mt_cli_trust(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
	        {"add-manufacturer", trust_add}, {"list", trust_list}, {NULL, NULL}};

	return mt_cli__dispatch("trust", trust_usage, trust_help, subs, argc, argv);
}

/* ---- manifest ---------------------------------------------------------- */

static int manifest_import(int argc, char **argv)
{
	const char *cmd = "manifest import", *conf = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_registry_import res;
	struct mt_deploy *d = NULL;
	char why[512] = "", detail[1024], js[2][600];
	uint8_t *buf;
	size_t len;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, manifest_usage, manifest_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	buf = (uint8_t *)read_file(pos[0], LC_FILE_MAX, &len, &rc);
	if (buf == NULL)
		return rc;
	rc = open_deploy(conf, true, &d);
	if (rc != MT_EXIT_OK) {
		free(buf);
		return rc;
	}
	e = mt_registry_import_manifest(d->reg, buf, len, mt_deploy_now(), &res, why, sizeof why);
	free(buf);
	if (e == MT_OK)
		(void)snprintf(detail, sizeof detail,
		               "{\"file\":%s,\"manifest\":%" PRId64 ",\"manufacturer\":%" PRId64
		               ",\"added\":%zu,\"claimed\":%zu,\"unchanged\":%zu}",
		               mt_deploy_json_str(pos[0], js[0], sizeof js[0]), res.manifest_id,
		               res.manufacturer_id, res.added, res.claimed, res.unchanged);
	else
		(void)snprintf(detail, sizeof detail, "{\"file\":%s,\"reason\":%s}",
		               mt_deploy_json_str(pos[0], js[0], sizeof js[0]),
		               mt_deploy_json_str(why[0] ? why : mt_err_str(e), js[1], sizeof js[1]));
	rc = audit(d, e == MT_OK ? "manifest.import" : "manifest.import.refused", pos[0],
	           e == MT_OK ? MT_AUDIT_OK : MT_AUDIT_REFUSED, detail);
	if (e != MT_OK) {
		fprintf(stderr, "refused: %s: %s\n", pos[0], why[0] ? why : mt_err_str(e));
		rc = e == MT_ERR_REG_DB ? MT_EXIT_ERROR : MT_EXIT_REFUSED;
	} else if (rc == MT_EXIT_OK) {
		fprintf(stderr,
		        "imported %s: %zu new device(s), %zu claimed, %zu already known "
		        "(manifest %" PRId64 ")\n",
		        pos[0], res.added, res.claimed, res.unchanged, res.manifest_id);
	}
	mt_deploy_close(d);
	return rc;
}

int mt_cli_manifest(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {{"import", manifest_import}, {NULL, NULL}};

	return mt_cli__dispatch("manifest", manifest_usage, manifest_help, subs, argc, argv);
}

/* ---- device ------------------------------------------------------------ */

static enum mt_err print_device(const struct mt_device_rec *r, void *arg)
{
	char kid[2 * MT_KID_LEN + 1], js[2][160];

	(void)arg;
	mt_cli__hex(r->birth_kid, MT_KID_LEN, kid);
	printf("{\"id\":%s,\"class\":%s,\"status\":\"%s\",\"reason\":\"%s\",\"manufacturer\":%" PRId64
	       ",\"manifest\":%" PRId64 ",\"birth_kid\":\"%s\",\"enrolled\":%s,\"epoch\":%u,"
	       "\"cert_serial\":\"%s\",\"cert_not_after\":%" PRId64 ",\"updated_at\":%" PRId64
	       "}\n",
	       mt_deploy_json_str(r->serial, js[0], sizeof js[0]),
	       mt_deploy_json_str(r->device_class, js[1], sizeof js[1]),
	       mt_dev_status_name(r->status), r->status_reason, r->manufacturer_id,
	       r->manifest_id, kid, r->enrolled_at ? "true" : "false", r->epoch, r->cert_serial,
	       r->cert_not_after, r->updated_at);
	return MT_OK;
}

static bool status_by_name(const char *s, enum mt_dev_status *out)
{
	for (int i = MT_DEV_MANIFESTED; i <= MT_DEV_RELEASED; i++) {
		if (strcmp(s, mt_dev_status_name((enum mt_dev_status)i)) == 0) {
			*out = (enum mt_dev_status)i;
			return true;
		}
	}
	return false;
}

static int device_list(int argc, char **argv)
{
	const char *cmd = "device list", *conf = NULL, *status = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"status", 0, MT_CLI_VALUE, &status, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	enum mt_dev_status s = 0;
	struct mt_deploy *d = NULL;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, device_usage, device_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (status && !status_by_name(status, &s))
		return mt_cli__usage(cmd, device_usage, "--status: unknown status '%s'", status);
	rc = open_deploy(conf, false, &d);
	if (rc != MT_EXIT_OK)
		return rc;
	e = mt_registry_devices(d->reg, s, print_device, NULL);
	mt_deploy_close(d);
	if (e != MT_OK)
		return mt_cli__error("reading the registry", e);
	return fflush(stdout) == 0 ? MT_EXIT_OK : MT_EXIT_ERROR;
}

static int device_show(int argc, char **argv)
{
	const char *cmd = "device show", *conf = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_device_rec r;
	struct mt_deploy *d = NULL;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, device_usage, device_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	rc = open_deploy(conf, false, &d);
	if (rc != MT_EXIT_OK)
		return rc;
	e = mt_registry_device(d->reg, pos[0], &r);
	mt_deploy_close(d);
	if (e == MT_ERR_REG_UNKNOWN) {
		fprintf(stderr, "error: no device '%s' in the registry\n", pos[0]);
		return MT_EXIT_ERROR;
	}
	if (e != MT_OK)
		return mt_cli__error("reading the registry", e);
	(void)print_device(&r, NULL);
	return fflush(stdout) == 0 ? MT_EXIT_OK : MT_EXIT_ERROR;
}

/* revoke / decommission / release: the change, its CRL and hook
 * (mt_lifecycle_change, shared with the console), then the audit. */
static int device_change(int argc, char **argv, enum mt_lifecycle_act act)
{
	static const char *const names[] = {"device revoke", "device decommission",
	                                    "device release"};
	const char *cmd = names[act], *conf = NULL, *reason_s = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"reason", 0, MT_CLI_VALUE, &reason_s, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	enum mt_pki_reason reason = MT_PKI_REASON_CESSATION_OF_OPERATION;
	struct mt_lifecycle_result res;
	char members[480], detail[512], action[80];
	struct mt_deploy *d = NULL;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, device_usage, device_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (act == MT_LC_REVOKE) {
		if (reason_s == NULL)
			return mt_cli__usage(cmd, device_usage, "missing --reason");
		if (!mt_lifecycle_reason(reason_s, &reason))
			return mt_cli__usage(cmd, device_usage, "--reason: unknown reason '%s'",
			                     reason_s);
	} else if (reason_s != NULL) {
		return mt_cli__usage(cmd, device_usage, "--reason is for 'device revoke' only");
	}
	rc = open_deploy(conf, true, &d);
	if (rc != MT_EXIT_OK)
		return rc;
	e = mt_lifecycle_change(d, act, pos[0], reason, mt_deploy_now(), &res);
	mt_lifecycle_detail(act, reason, &res, members, sizeof members);
	(void)snprintf(detail, sizeof detail, "{%s}", members);
	(void)snprintf(action, sizeof action, "%s%s", mt_lifecycle_action(act),
	               e == MT_OK ? "" : ".refused");
	rc = audit(d, action, pos[0], e == MT_OK ? MT_AUDIT_OK : MT_AUDIT_REFUSED, detail);
	if (e == MT_ERR_REG_UNKNOWN || e == MT_ERR_REG_STATE) {
		if (e == MT_ERR_REG_STATE && res.status != 0)
			fprintf(stderr, "refused: device %s is %s\n", pos[0],
			        mt_dev_status_name(res.status));
		else
			fprintf(stderr, "refused: %s: %s\n", pos[0], mt_err_str(e));
		rc = MT_EXIT_REFUSED;
	} else if (e != MT_OK) {
		rc = mt_cli__error(cmd, e);
	} else if (res.crl != MT_OK) {
		rc = mt_cli__error("signing the new CRL (the registry change stands; run 'medtrust "
		                   "crl refresh')",
		                   res.crl);
	} else if (res.hook != MT_OK) {
		fprintf(stderr, "error: the revoke hook %s failed (the revocation stands)\n",
		        mt_deploy_get(d, "revoke_hook"));
		rc = MT_EXIT_ERROR;
	} else if (rc == MT_EXIT_OK) {
		fprintf(stderr, "%s: %s (%zu certificate(s) revoked%s)\n", cmd, pos[0], res.n_certs,
		        act == MT_LC_RELEASE ? "" : ", new CRL signed");
	}
	mt_deploy_close(d);
	return rc;
}

static int device_revoke(int argc, char **argv)
{
	return device_change(argc, argv, MT_LC_REVOKE);
}

static int device_decommission(int argc, char **argv)
{
	return device_change(argc, argv, MT_LC_DECOMMISSION);
}

static int device_release(int argc, char **argv)
{
	return device_change(argc, argv, MT_LC_RELEASE);
}

int mt_cli_device(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
	        {"list", device_list},     {"show", device_show},
	        {"revoke", device_revoke}, {"decommission", device_decommission},
	        {"release", device_release}, {NULL, NULL}};

	return mt_cli__dispatch("device", device_usage, device_help, subs, argc, argv);
}

/* ---- crl --------------------------------------------------------------- */

static int crl_refresh(int argc, char **argv)
{
	const char *cmd = "crl refresh", *conf = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	char detail[128];
	int64_t next = 0;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, crl_usage, crl_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	rc = open_deploy(conf, true, &d);
	if (rc != MT_EXIT_OK)
		return rc;
	e = mt_deploy_open_ca(d);
	if (e == MT_OK)
		e = mt_deploy_crl_refresh(d, mt_deploy_now(), &next);
	(void)snprintf(detail, sizeof detail, "{\"next_update\":%" PRId64 "}", next);
	rc = audit(d, e == MT_OK ? "crl.refresh" : "crl.refresh.failed", mt_deploy_get(d, "crl"),
	           e == MT_OK ? MT_AUDIT_OK : MT_AUDIT_ERROR, detail);
	if (e != MT_OK)
		rc = mt_cli__error("signing the CRL", e);
	else if (rc == MT_EXIT_OK)
		fprintf(stderr, "new CRL %s, next update %" PRId64 "\n", mt_deploy_get(d, "crl"), next);
	mt_deploy_close(d);
	return rc;
}

int mt_cli_crl(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {{"refresh", crl_refresh}, {NULL, NULL}};

	return mt_cli__dispatch("crl", crl_usage, crl_help, subs, argc, argv);
}
