/*
 * cmd_broker.c — `medtrust broker run [-c CONF]`: start the deployment's
 * own mosquitto with the configuration `medtrust init` wrote
 * (mosquitto_conf in medtrust.conf; docs/broker.md).
 *
 * The broker's TLS key lives in the hub's SoftHSM2 token and mosquitto
 * reaches it through OpenSSL's PKCS#11 engine, which needs two things in
 * its environment: SOFTHSM2_CONF (which token directory) and OPENSSL_CONF
 * (the engine section, openssl.cnf beside mosquitto.conf, pointing the
 * engine straight at SoftHSM2).  This command sets both from the
 * deployment and then becomes mosquitto (exec), so a service manager
 * supervises mosquitto itself and signals reach it directly.
 *
 * Exit codes (cli.h) only when it cannot exec: 1 the deployment or
 * mosquitto missing; 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "medtrust/mt_deploy.h"

static const char broker_usage[] = "medtrust broker run [-c CONF]";
static const char broker_help[] =
        "usage: medtrust broker run [-c CONF]\n"
        "\n"
        "Run the deployment's mosquitto (in the foreground) with the configuration\n"
        "'medtrust init' wrote, the broker's TLS key used inside the hub's token\n"
        "through OpenSSL's PKCS#11 engine.\n"
        "  -c, --config CONF   the deployment's medtrust.conf\n";

static int broker_run(int argc, char **argv)
{
	const char *conf = NULL, *mconf;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	char why[512] = "", cnf[PATH_MAX], path[PATH_MAX];
	struct mt_deploy *d = NULL;
	const char *slash;
	int rc = mt_cli__parse_operands("broker run", broker_usage, broker_help, argc, argv, opts,
	                                NULL, 0);
	enum mt_err e;

	if (rc != MT_CLI_CONTINUE)
		return rc;
	e = mt_deploy_open(conf, &d, why, sizeof why); /* sets SOFTHSM2_CONF */
	if (e != MT_OK) {
		fprintf(stderr, "error: opening the deployment: %s\n", why[0] ? why : mt_err_str(e));
		return MT_EXIT_ERROR;
	}
	mconf = mt_deploy_get(d, "mosquitto_conf");
	if (mconf == NULL || strlen(mconf) >= sizeof path) {
		fprintf(stderr, "error: the deployment has no mosquitto_conf (made before the "
		                "broker was part of 'medtrust init')\n");
		mt_deploy_close(d);
		return MT_EXIT_ERROR;
	}
	(void)snprintf(path, sizeof path, "%s", mconf);
	mt_deploy_close(d);
	slash = strrchr(path, '/');
	if (slash == NULL ||
	    (size_t)snprintf(cnf, sizeof cnf, "%.*s/openssl.cnf", (int)(slash - path), path) >=
	            sizeof cnf ||
	    setenv("OPENSSL_CONF", cnf, 1) != 0) {
		fprintf(stderr, "error: cannot set OPENSSL_CONF for %s\n", path);
		return MT_EXIT_ERROR;
	}
	fflush(NULL);
	{
		char *const args[] = {"mosquitto", "-c", path, NULL};

		execvp("mosquitto", args);
		execv("/usr/sbin/mosquitto", args);
	}
	fprintf(stderr, "error: cannot run mosquitto (is the 'mosquitto' package installed?)\n");
	return MT_EXIT_ERROR;
}

int mt_cli_broker(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {{"run", broker_run}, {NULL, NULL}};

	return mt_cli__dispatch("broker", broker_usage, broker_help, subs, argc, argv);
}
