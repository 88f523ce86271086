/*
 * main.c — `medtrust`, the command-line tool: dispatcher, help, version,
 * and the small helpers every command shares.
 *
 * The tool is how operators, tests and other implementations reach the
 * codec (protocol §9) and the hub's audit chain (docs/audit.md).  The first
 * word picks the command group (`packet`, `key`, `audit`, ...); each group
 * dispatches on its second word with mt_cli__dispatch and describes its
 * options as a table for mt_cli__parse_opts (getopt_long underneath), so
 * that every command reports option errors the same way.  Exit codes are
 * fixed for the whole tool (cli.h): 0 success, 1 key store or I/O failure,
 * 2 refusal (or a broken audit chain), 64 usage, 65 invalid JSON input.
 *
 * Numbers on the command line are parsed with strtoull and an end pointer,
 * digits only, range-checked: "07" is 7, "-1", "+1", " 1", "1x" and
 * "4294967296" (for a uint32) are usage errors, never silently something
 * else.
 *
 * Output is binary-safe (packets go to stdout raw) and every write is
 * checked, including the final flush: a full disk is an error (exit 1),
 * not a truncated packet with exit 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char mt_top_help[] =
	"usage: medtrust <command> [<args>]\n"
	"       medtrust --help | --version\n"
	"\n"
	"The medtrust command-line tool: seal and open MTP/1 packets (protocol\n"
	"section 9), manage the keys they use, and read and check the hub's\n"
	"audit chain.\n"
	"\n"
	"Commands:\n"
	"  packet seal   seal a JSON message into a sealed or fast packet\n"
	"  packet open   check and open a packet, print its message as JSON\n"
	"  key generate  generate a P-256 or Ed25519 key in a key store\n"
	"  key public    print or write the public key of a stored key (PEM)\n"
	"  key kid       print the kid of a stored key or a public key file\n"
	"  audit verify  check the whole audit chain, name the first bad record\n"
	"  audit tail    print the last records of the audit chain (JSON lines)\n"
	"  audit export  print a range of audit records (JSON lines, for SIEMs)\n"
	"  audit append  append an event to the audit chain (operators, tests)\n"
	"  audit checkpoint\n"
	"                sign a checkpoint over the audit chain now\n"
	"  init DIR      create a hub deployment (token, keys, PKI, database, config)\n"
	"  config check  read a medtrust.conf back and print its keys\n"
	"  mfg init      create a manufacturer (token, root CA, signer certificates)\n"
	"  mfg make      make N devices (birth keys, birth certificates, manifest)\n"
	"  mfg verify-manifest\n"
	"                check a device manifest against a manufacturer root\n"
	"  trust add-manufacturer ROOT.pem\n"
	"                trust a manufacturer root (its manifests and birth certs)\n"
	"  manifest import FILE\n"
	"                verify a device manifest and record its devices\n"
	"  device list|show|revoke|decommission|release\n"
	"                the device registry and the devices' certificates\n"
	"  crl refresh   sign a new CRL of the operator CA now\n"
	"  broker run    run the deployment's mosquitto (its key in the hub's token)\n"
	"  verify-record ID | FIRST-LAST | --all\n"
	"                re-verify stored readings (decryption, certificate, signature)\n"
	"  patient add|edit|list|show|assign|unassign|assignments|rule\n"
	"                patients (identity encrypted at rest), NEWS2 settings,\n"
	"                threshold rules, device assignments\n"
	"  user add|reset|list|wards\n"
	"                console users (one-time passwords, argon2id, lockout, wards)\n"
	"  client add|list|disable\n"
	"                FHIR clients (SMART backend services: public key, scopes)\n"
	"  hl7 listen    an HL7 v2 MLLP receiver (tests, sites that pull)\n"
	"\n"
	"Run 'medtrust <command> --help' (e.g. 'medtrust packet seal --help') for\n"
	"the options of each.\n"
	"\n"
	"Key URIs:\n"
	"  pkcs11:token=T;object=L?pin-value=PIN   a key in a PKCS#11 token (RFC 7512;\n"
	"                                          pin-source=FILE reads the PIN)\n"
	"  file:PATH                               an encrypted PKCS#8 PEM file; the\n"
	"                                          passphrase is MEDTRUST_KEY_PASSPHRASE\n"
	"\n"
	"Exit codes:\n"
	"  0   success\n"
	"  1   key store, file or system failure   (error: <what>: <reason>)\n"
	"  2   packet refused                      (refused: <stage>: <detail>)\n"
	"      or audit chain broken               (bad: record <seq>: <reason>: ...)\n"
	"  (verify-record: 1 a record failed, 2 store or registry unusable)\n"
	"  64  usage error\n"
	"  65  invalid JSON input                  (invalid JSON: <reason>)\n"
	"\n"
	"Options:\n"
	"  -h, --help     show this help\n"
	"  -V, --version  print 'medtrust " MT_CLI_VERSION "'\n";

bool mt_cli__parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end = NULL;
	const char *c;

	if (!s || !*s)
		return false;
	for (c = s; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || !end || *end != '\0') /* ERANGE: above UINT64_MAX */
		return false;
	*out = (uint64_t)v;
	return true;
}

bool mt_cli__parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;

	if (!mt_cli__parse_u64(s, &v) || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

int mt_cli__usage(const char *cmd, const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "medtrust %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\nTry 'medtrust %s --help'.\n", usage, cmd);
	return MT_EXIT_USAGE;
}

#define MT_CLI_OPTS_MAX 32

int mt_cli__parse_opts(const char *cmd, const char *usage, const char *help, int argc,
                       char **argv, const struct mt_cli_opt *opts, int *first_positional)
{
	bool want_help = false;
	struct option lopts[MT_CLI_OPTS_MAX + 2];
	char shortopts[2 * MT_CLI_OPTS_MAX + 4] = ":h";
	size_t n = 0, s = 2;
	int c;

	for (n = 0; opts[n].name; n++) {
		if (n == MT_CLI_OPTS_MAX)
			abort(); /* a programming error: raise MT_CLI_OPTS_MAX */
		lopts[n].name = opts[n].name;
		lopts[n].has_arg = opts[n].kind == MT_CLI_VALUE ? required_argument : no_argument;
		lopts[n].flag = NULL;
		lopts[n].val = opts[n].short_name ? opts[n].short_name : 256 + (int)n;
		if (opts[n].short_name) {
			shortopts[s++] = opts[n].short_name;
			if (opts[n].kind == MT_CLI_VALUE)
				shortopts[s++] = ':';
		}
	}
	shortopts[s] = '\0';
	lopts[n] = (struct option){"help", no_argument, NULL, 'h'};
	lopts[n + 1] = (struct option){NULL, 0, NULL, 0};

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, lopts, NULL)) != -1) {
		const struct mt_cli_opt *o = NULL;
		const char *arg = argv[optind - 1];
		size_t i;

		if (c == 'h') {
			want_help = true;
			continue;
		}
		for (i = 0; i < n; i++)
			if (c == lopts[i].val)
				o = &opts[i];
		if (!o) {
			if (c == ':')
				return mt_cli__usage(cmd, usage, "option '%s' needs a value", arg);
			if (optopt && optopt < 256)
				return mt_cli__usage(cmd, usage, "unknown option '-%c'", optopt);
			return mt_cli__usage(cmd, usage, "unknown option '%s'", arg);
		}
		if (o->kind == MT_CLI_VALUE) {
			if (*o->value)
				return mt_cli__usage(cmd, usage, "option '%s' given twice", arg);
			*o->value = optarg;
		} else {
			if (*o->flag && o->kind == MT_CLI_FLAG_ONCE)
				return mt_cli__usage(cmd, usage, "option '--%s' given twice", o->name);
			*o->flag = true;
		}
	}
	if (want_help)
		return mt_cli__print_help(help);
	*first_positional = optind;
	return MT_CLI_CONTINUE;
}

int mt_cli__print_help(const char *text)
{
	if (fputs(text, stdout) == EOF || fflush(stdout) != 0)
		return MT_EXIT_ERROR;
	return MT_EXIT_OK;
}

int mt_cli__dispatch(const char *group, const char *usage, const char *help,
                     const struct mt_cli_sub *subs, int argc, char **argv)
{
	const char *sub;

	if (argc < 2) {
		fprintf(stderr, "usage: %s\nTry 'medtrust %s --help'.\n", usage, group);
		return MT_EXIT_USAGE;
	}
	sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0)
		return mt_cli__print_help(help);
	for (; subs->name; subs++)
		if (strcmp(sub, subs->name) == 0)
			return subs->run(argc - 1, argv + 1);
	fprintf(stderr, "medtrust %s: unknown command '%s'\nTry 'medtrust %s --help'.\n", group,
	        sub, group);
	return MT_EXIT_USAGE;
}

int mt_cli__error(const char *what, enum mt_err e)
{
	fprintf(stderr, "error: %s: %s\n", what, mt_err_str(e));
	return MT_EXIT_ERROR;
}

int mt_cli__parse_operands(const char *cmd, const char *usage, const char *help, int argc,
                           char **argv, const struct mt_cli_opt *opts, const char **pos,
                           int npos)
{
	int first, rc = mt_cli__parse_opts(cmd, usage, help, argc, argv, opts, &first);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (argc - first != npos)
		return mt_cli__usage(cmd, usage, "expected %d operand(s), got %d", npos,
		                     argc - first);
	for (int i = 0; i < npos; i++)
		pos[i] = argv[first + i];
	return MT_CLI_CONTINUE;
}

enum mt_err mt_cli__read_all(FILE *f, size_t max, uint8_t **buf, size_t *len, bool *more)
{
	size_t cap = 65536, n = 0;
	uint8_t *p;

	*buf = NULL;
	*len = 0;
	*more = false;
	if (cap > max + 2)
		cap = max + 2;
	p = malloc(cap);
	if (!p)
		return MT_ERR_NOMEM;
	for (;;) {
		size_t got;

		if (n == cap - 1) { /* keep one byte for the NUL */
			size_t ncap = cap * 2;
			uint8_t *np;

			if (ncap > max + 2)
				ncap = max + 2;
			np = realloc(p, ncap);
			if (!np) {
				free(p);
				return MT_ERR_NOMEM;
			}
			p = np;
			cap = ncap;
		}
		got = fread(p + n, 1, cap - 1 - n, f);
		n += got;
		if (n > max) {
			*more = true;
			n = max + 1;
			break;
		}
		if (got == 0) {
			if (ferror(f)) {
				free(p);
				return MT_ERR_IO;
			}
			break;
		}
	}
	p[n] = 0;
	*buf = p;
	*len = n;
	return MT_OK;
}

enum mt_err mt_cli__write_stdout(const void *buf, size_t len)
{
	if (len && fwrite(buf, 1, len, stdout) != len)
		return MT_ERR_IO;
	if (fflush(stdout) != 0 || ferror(stdout))
		return MT_ERR_IO;
	return MT_OK;
}

void mt_cli__hex(const uint8_t *buf, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hex[buf[i] >> 4];
		out[2 * i + 1] = hex[buf[i] & 15];
	}
	out[2 * len] = '\0';
}

int main(int argc, char **argv)
{
	static const struct mt_cli_sub commands[] = {
		{"packet", mt_cli_packet}, {"key", mt_cli_key},   {"audit", mt_cli_audit},
		{"mfg", mt_cli_mfg},       {"init", mt_cli_init}, {"config", mt_cli_config},
		{"trust", mt_cli_trust},   {"manifest", mt_cli_manifest},
		{"device", mt_cli_device}, {"crl", mt_cli_crl},
		{"broker", mt_cli_broker},
		{"verify-record", mt_cli_verify_record}, {"patient", mt_cli_patient},
		{"user", mt_cli_user},
		{"client", mt_cli_client},
		{"hl7", mt_cli_hl7},
		{NULL, NULL},
	};
	const struct mt_cli_sub *sub;
	const char *cmd;

	if (argc < 2) {
		fputs("usage: medtrust <command> [<args>]\nTry 'medtrust --help'.\n", stderr);
		return MT_EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		if (fputs(mt_top_help, stdout) == EOF || fflush(stdout) != 0)
			return MT_EXIT_ERROR;
		return MT_EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		if (puts("medtrust " MT_CLI_VERSION) == EOF || fflush(stdout) != 0)
			return MT_EXIT_ERROR;
		return MT_EXIT_OK;
	}
	for (sub = commands; sub->name; sub++)
		if (strcmp(cmd, sub->name) == 0)
			return sub->run(argc - 1, argv + 1);
	fprintf(stderr, "medtrust: unknown command '%s'\nTry 'medtrust --help'.\n", cmd);
	return MT_EXIT_USAGE;
}
