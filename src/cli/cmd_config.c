/*
 * cmd_config.c — `medtrust config check FILE`: read a deployment's
 * medtrust.conf with the same reader every tool uses (mt_config.h) and
 * print its keys, one `key value` per line in file order.
 *
 * The list of keys below is the contract between `medtrust init`, which
 * writes the file, and everything that reads it: a key init writes but this
 * list lacks is refused here, so the CLI test that runs init and then
 * `config check` proves writer and reader agree.  Keys are added here when
 * something reads them, never speculatively (docs/operations.md).
 *
 * Exit codes: 0 the file is valid; 1 it cannot be read; 2 it is refused
 * ("refused: line N: <reason>"); 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "cli.h"
#include "medtrust/mt_config.h"
#include "medtrust/mt_deploy.h"


static const char check_usage[] = "medtrust config check FILE";

static const char config_help[] =
        "usage: medtrust config check FILE\n"
        "\n"
        "Read a deployment's configuration file (medtrust.conf, written by\n"
        "'medtrust init') and print its keys, one 'key value' per line.  Refuses,\n"
        "naming the line, a line that is not 'key value', an unknown or repeated\n"
        "key, invalid UTF-8 or a control character, and a line over 4096 bytes.\n"
        "\n"
        "Exit codes: 0 valid, 1 unreadable, 2 refused, 64 usage.\n";

int mt_cli_config(int argc, char **argv)
{
	struct mt_config *c = NULL;
	unsigned line = 0;
	enum mt_err e;
	int rc = MT_EXIT_OK;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	                  strcmp(argv[1], "help") == 0)) {
		if (fputs(config_help, stdout) == EOF || fflush(stdout) != 0)
			return MT_EXIT_ERROR;
		return MT_EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "check") != 0)
		return mt_cli__usage("config", check_usage, "unknown or missing command");
	if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
		if (fputs(config_help, stdout) == EOF || fflush(stdout) != 0)
			return MT_EXIT_ERROR;
		return MT_EXIT_OK;
	}
	if (argc != 3 || argv[2][0] == '-')
		return mt_cli__usage("config", check_usage, "give exactly one FILE");
	e = mt_config_load(argv[2], mt_deploy_keys, mt_deploy_n_keys, &c,
	                   &line);
	if (e == MT_ERR_IO || e == MT_ERR_NOMEM) {
		fprintf(stderr, "error: reading %s: %s\n", argv[2], mt_err_str(e));
		return MT_EXIT_ERROR;
	}
	if (e != MT_OK) {
		fprintf(stderr, "refused: %s: line %u: %s\n", argv[2], line, mt_err_str(e));
		return MT_EXIT_REFUSED;
	}
	for (size_t i = 0; i < mt_config_count(c) && rc == MT_EXIT_OK; i++) {
		const char *k, *v;
		if (mt_config_entry(c, i, &k, &v, NULL) != MT_OK || printf("%s %s\n", k, v) < 0)
			rc = mt_cli__error("writing stdout", MT_ERR_IO);
	}
	if (rc == MT_EXIT_OK && fflush(stdout) != 0)
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	mt_config_free(c);
	return rc;
}
