/*
 * cmd_client.c — FHIR API clients from the command line (mt_clients.h,
 * docs/fhir.md; SMART backend services):
 *
 *   client add NAME --key PUB.pem --scopes "system/Patient.read ..." [-c CONF]
 *   client list [-c CONF]
 *   client disable NAME [-c CONF]
 *
 * `add` registers NAME (its OAuth client_id) with a public key (EC P-384:
 * ES384, or RSA of 2048..8192 bits: RS384; the algorithm is fixed by the
 * key) and the scopes it may ever be granted.  `disable` stops new tokens
 * for it (tokens already issued live out their 5 minutes).  `list` prints
 * one JSON line per client: name, alg, scopes, created_at, disabled.
 *
 * Every change writes an audit record (actor "cli:<login>"): client.add,
 * client.add.refused, client.disable, client.disable.refused.  When the
 * record cannot be written the command fails (exit 1).
 *
 * Exit codes: 0; 1 a deployment, database or file failure; 2 refused (name
 * taken, unusable key or scopes, no such client); 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "medtrust/mt_clients.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_util.h"

static const char client_usage[] = "medtrust client add|list|disable ... [-c CONF]";

static const char client_help[] =
        "usage: medtrust client add NAME --key PUB.pem --scopes \"SCOPE ...\" [-c CONF]\n"
        "       medtrust client list [-c CONF]\n"
        "       medtrust client disable NAME [-c CONF]\n"
        "\n"
        "Clients of the FHIR API (SMART backend services, docs/fhir.md).  add\n"
        "registers NAME, its public key and the scopes it may be granted; the client\n"
        "then asks POST /auth/token for tokens with a JWT assertion signed by its\n"
        "private key.  disable refuses it new tokens.  list prints one JSON line per\n"
        "client.  Every change is an audit record.\n"
        "\n"
        "  NAME               1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit):\n"
        "                     the client_id, and the JWT's iss and sub\n"
        "  --key PUB.pem      EC P-384 public key (ES384) or RSA 2048-8192 (RS384), PEM\n"
        "  --scopes LIST      space-separated: system/<Type>.read (v1) or .r .s .rs (v2),\n"
        "                     Type one of Patient Observation Device Provenance *\n"
        "  -c, --config CONF  the deployment's medtrust.conf\n"
        "\n"
        "Exit codes: 0; 1 a deployment, database or file failure; 2 refused (name taken,\n"
        "unusable key or scopes, no such client); 64 usage.\n";

static const char *actor(char *buf, size_t cap)
{
	struct passwd *pw = getpwuid(getuid());

	(void)snprintf(buf, cap, "cli:%s", pw && pw->pw_name ? pw->pw_name : "unknown");
	return buf;
}

static enum mt_err open_clients(const char *conf, bool audit, struct mt_deploy **d,
                                struct mt_clients **c)
{
	char why[512] = "";
	enum mt_err e = mt_deploy_open(conf, d, why, sizeof why);

	*c = NULL;
	if (e != MT_OK) {
		*d = NULL;
		fprintf(stderr, "error: opening the deployment: %s\n", why[0] ? why : mt_err_str(e));
		return e;
	}
	if (audit) {
		e = mt_deploy_open_audit(*d);
		if (e != MT_OK) {
			fprintf(stderr, "error: opening the audit chain: %s\n", mt_err_str(e));
			return e;
		}
	}
	e = mt_clients_open(mt_deploy_get(*d, "db_path"), c);
	if (e != MT_OK)
		fprintf(stderr, "error: opening the clients in %s: %s\n",
		        mt_deploy_get(*d, "db_path"), mt_err_str(e));
	return e;
}

static int client_add(int argc, char **argv)
{
	const char *cmd = "client add", *conf = NULL, *key = NULL, *scopes = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"key", 0, MT_CLI_VALUE, &key, NULL},
	                                  {"scopes", 0, MT_CLI_VALUE, &scopes, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	char who[96], detail[MT_CLIENT_SCOPES_MAX + 128], js[MT_CLIENT_SCOPES_MAX + 8],
	        norm[MT_CLIENT_SCOPES_MAX + 1];
	struct mt_deploy *d = NULL;
	struct mt_clients *c = NULL;
	enum mt_client_alg alg = 0;
	uint8_t *pem = NULL;
	size_t pem_len = 0;
	bool exists = false;
	const char *reason = NULL;
	enum mt_err e, ae;
	int rc = mt_cli__parse_operands(cmd, client_usage, client_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!mt_client_name_valid(pos[0]))
		return mt_cli__usage(cmd, client_usage, "'%s' is not a client name", pos[0]);
	if (key == NULL || scopes == NULL)
		return mt_cli__usage(cmd, client_usage, "--key and --scopes are required");
	e = mt_file_read(key, MT_CLIENT_KEY_PEM_MAX, &pem, &pem_len);
	if (e != MT_OK) {
		fprintf(stderr, "error: reading %s: %s\n", key, mt_err_str(e));
		return MT_EXIT_ERROR;
	}
	e = open_clients(conf, true, &d, &c);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto out;
	}
	if (mt_scopes_normalise(scopes, norm, sizeof norm) != MT_OK) {
		reason = "scopes";
		e = MT_ERR_ARG;
	} else if (mt_client_key_alg((const char *)pem, &alg) != MT_OK) {
		reason = "key";
		e = MT_ERR_KEY_TYPE;
	} else {
		e = mt_clients_add(c, pos[0], (const char *)pem, norm, mt_deploy_now(), &exists);
		reason = exists ? "exists" : e != MT_OK ? "error" : NULL;
	}
	(void)snprintf(detail, sizeof detail, "{\"alg\":\"%s\",\"scopes\":%s%s%s%s}",
	               mt_client_alg_name(alg), mt_deploy_json_str(norm[0] ? norm : scopes, js, sizeof js),
	               reason ? ",\"reason\":\"" : "", reason ? reason : "", reason ? "\"" : "");
	ae = mt_deploy_audit(d, actor(who, sizeof who), e == MT_OK ? "client.add" : "client.add.refused",
	                     pos[0],
	                     e == MT_OK ? MT_AUDIT_OK
	                     : (reason && strcmp(reason, "error") == 0) ? MT_AUDIT_ERROR
	                                                                : MT_AUDIT_REFUSED,
	                     detail);
	if (e != MT_OK && reason != NULL && strcmp(reason, "error") != 0) {
		fprintf(stderr, "refused: %s\n",
		        strcmp(reason, "exists") == 0 ? "a client of that name exists"
		        : strcmp(reason, "key") == 0
		                ? "the key is not a PEM EC P-384 or RSA 2048-8192 public key"
		                : "--scopes: each must be system/<Patient|Observation|Device|Provenance|*>"
		                  ".<read|r|s|rs>");
		rc = MT_EXIT_REFUSED;
	} else if (e != MT_OK) {
		rc = mt_cli__error("adding the client", e);
	} else if (ae != MT_OK) {
		rc = mt_cli__error("writing the audit record (the client was added; disable it)", ae);
	} else {
		printf("{\"name\":\"%s\",\"alg\":\"%s\",\"scopes\":%s}\n", pos[0],
		       mt_client_alg_name(alg), mt_deploy_json_str(norm, js, sizeof js));
		rc = fflush(stdout) == 0 ? MT_EXIT_OK : mt_cli__error("writing stdout", MT_ERR_IO);
	}
out:
	free(pem);
	mt_clients_close(c);
	mt_deploy_close(d);
	return rc;
}

static int client_disable(int argc, char **argv)
{
	const char *cmd = "client disable", *conf = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	char who[96];
	struct mt_deploy *d = NULL;
	struct mt_clients *c = NULL;
	bool already = false;
	enum mt_err e, ae;
	int rc = mt_cli__parse_operands(cmd, client_usage, client_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!mt_client_name_valid(pos[0]))
		return mt_cli__usage(cmd, client_usage, "'%s' is not a client name", pos[0]);
	e = open_clients(conf, true, &d, &c);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto out;
	}
	e = mt_clients_disable(c, pos[0], mt_deploy_now(), &already);
	ae = mt_deploy_audit(d, actor(who, sizeof who),
	                     e == MT_OK ? "client.disable" : "client.disable.refused", pos[0],
	                     e == MT_OK ? MT_AUDIT_OK : e == MT_ERR_NOT_FOUND ? MT_AUDIT_REFUSED
	                                                                       : MT_AUDIT_ERROR,
	                     e == MT_ERR_NOT_FOUND ? "{\"reason\":\"no_such_client\"}"
	                     : already             ? "{\"already\":true}"
	                                           : NULL);
	if (e == MT_ERR_NOT_FOUND) {
		fprintf(stderr, "refused: no client named '%s'\n", pos[0]);
		rc = MT_EXIT_REFUSED;
	} else if (e != MT_OK) {
		rc = mt_cli__error("disabling the client", e);
	} else if (ae != MT_OK) {
		rc = mt_cli__error("writing the audit record (the client was disabled)", ae);
	} else {
		fprintf(stderr, "%s %s\n", already ? "already disabled:" : "disabled", pos[0]);
		rc = MT_EXIT_OK;
	}
out:
	mt_clients_close(c);
	mt_deploy_close(d);
	return rc;
}

static enum mt_err list_one(void *ctx, const struct mt_client *cl)
{
	char js[2][MT_CLIENT_SCOPES_MAX * 6 + 3];

	(void)ctx;
	if (printf("{\"name\":%s,\"alg\":\"%s\",\"scopes\":%s,\"created_at\":%lld,\"disabled\":%s}\n",
	           mt_deploy_json_str(cl->name, js[0], sizeof js[0]), mt_client_alg_name(cl->alg),
	           mt_deploy_json_str(cl->scopes, js[1], sizeof js[1]), (long long)cl->created_at,
	           cl->disabled_at ? "true" : "false") < 0)
		return MT_ERR_IO;
	return MT_OK;
}

static int client_list(int argc, char **argv)
{
	const char *cmd = "client list", *conf = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	struct mt_clients *c = NULL;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, client_usage, client_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	rc = MT_EXIT_OK;
	e = open_clients(conf, false, &d, &c);
	if (e != MT_OK)
		rc = MT_EXIT_ERROR;
	else if ((e = mt_clients_list(c, list_one, NULL)) != MT_OK)
		rc = mt_cli__error("listing the clients", e);
	else if (fflush(stdout) != 0)
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	mt_clients_close(c);
	mt_deploy_close(d);
	return rc;
}

int mt_cli_client(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {{"add", client_add},
	                                         {"list", client_list},
	                                         {"disable", client_disable},
	                                         {NULL, NULL}};

	return mt_cli__dispatch("client", client_usage, client_help, subs, argc, argv);
}
