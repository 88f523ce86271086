/*
 * cli.h — what the files of the `medtrust` command-line tool share.
 *
 * The tool is a thin shell around libmedtrust (protocol §9): main.c
 * dispatches on the first word, cmd_packet.c implements `packet seal` and
 * `packet open`, cmd_key.c the `key` commands, cmd_audit.c the `audit`
 * commands.  Nothing here is installed or used outside src/cli.
 *
 * Exit codes are part of the command-line contract (protocol §9, sysexits
 * for 64 and 65) and are the same for every command:
 *   0  success
 *   1  key store, file or system failure ("error: <what>: <reason>")
 *   2  the packet was refused ("refused: <stage>: <detail>"), or the audit
 *      chain is broken ("bad: record <seq>: <reason>: <detail>")
 *   64 usage error (unknown or missing option, bad number, bad device id)
 *   65 invalid JSON input (syntax or schema: "invalid JSON: <reason>")
 */
#ifndef MT_CLI_H
#define MT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "medtrust/mt_err.h"

#define MT_CLI_VERSION "0.1.0"

#define MT_EXIT_OK 0
#define MT_EXIT_ERROR 1
#define MT_EXIT_REFUSED 2
#define MT_EXIT_USAGE 64
#define MT_EXIT_DATAERR 65

/* `medtrust packet ...`, `medtrust key ...` and `medtrust audit ...`;
 * argv[0] is the command word. */
int mt_cli_packet(int argc, char **argv);
int mt_cli_key(int argc, char **argv);
int mt_cli_audit(int argc, char **argv);
/* `medtrust mfg ...` (cmd_mfg.c): manufacturer, devices, device manifest. */
int mt_cli_mfg(int argc, char **argv);
/* `medtrust init DIR` (cmd_init.c) and `medtrust config check` (cmd_config.c). */
int mt_cli_init(int argc, char **argv);
int mt_cli_config(int argc, char **argv);
/* `medtrust trust|manifest|device|crl ...` (cmd_lifecycle.c): the registry. */
int mt_cli_trust(int argc, char **argv);
int mt_cli_manifest(int argc, char **argv);
int mt_cli_device(int argc, char **argv);
int mt_cli_crl(int argc, char **argv);
/* `medtrust broker run` (cmd_broker.c): the deployment's mosquitto. */
int mt_cli_broker(int argc, char **argv);
/* `medtrust verify-record` and `medtrust patient ...` (cmd_store.c): the
 * readings store.  verify-record has exit codes of its own: 0 all
 * verified, 1 a record failed, 2 store/registry/audit unusable, 64 usage. */
int mt_cli_verify_record(int argc, char **argv);
int mt_cli_patient(int argc, char **argv);
/* `medtrust user add|reset|list` (cmd_user.c): console users. */
int mt_cli_user(int argc, char **argv);
/* `medtrust client add|list|disable` (cmd_client.c): FHIR API clients. */
int mt_cli_client(int argc, char **argv);
/* `medtrust hl7 listen|sample` (cmd_hl7.c): an MLLP receiver, test messages. */
int mt_cli_hl7(int argc, char **argv);

/* Parse a decimal uint32 exactly: digits only, no sign, no spaces, no
 * overflow.  false on anything else. */
bool mt_cli__parse_u32(const char *s, uint32_t *out);
/* The same for a uint64 (sequence numbers of the audit chain). */
bool mt_cli__parse_u64(const char *s, uint64_t *out);

/* Print "medtrust <cmd>: <message>", the usage line and a pointer to
 * --help on stderr; return MT_EXIT_USAGE. */
__attribute__((format(printf, 3, 4))) int mt_cli__usage(const char *cmd, const char *usage,
                                                         const char *fmt, ...);

/* One option of a command, for mt_cli__parse_opts.  `name` is the long
 * name without "--"; `short_name` is 0 or the one-letter form.  An
 * MT_CLI_VALUE option stores its value in *value (given twice is a usage
 * error); an MT_CLI_FLAG sets *flag and may be repeated; an
 * MT_CLI_FLAG_ONCE sets *flag and may not.  A table ends with a NULL name;
 * --help/-h is always accepted and is not listed. */
enum mt_cli_opt_kind { MT_CLI_VALUE, MT_CLI_FLAG, MT_CLI_FLAG_ONCE };

struct mt_cli_opt {
	const char *name;
	char short_name;
	enum mt_cli_opt_kind kind;
	const char **value;
	bool *flag;
};

/* What mt_cli__parse_opts returns when the command should go on. */
#define MT_CLI_CONTINUE (-1)

/* getopt_long over `opts` (argv[0] is the command word).  An unknown
 * option, a missing value or an option given twice is reported with
 * mt_cli__usage(cmd, usage, ...) and MT_EXIT_USAGE returned; otherwise
 * --help/-h anywhere prints `help` (mt_cli__print_help's exit code), and
 * without it *first_positional is set to the index of the first operand and
 * MT_CLI_CONTINUE returned. */
int mt_cli__parse_opts(const char *cmd, const char *usage, const char *help, int argc,
                       char **argv, const struct mt_cli_opt *opts, int *first_positional);

/* mt_cli__parse_opts, then exactly `npos` operands, which go to pos[]
 * (a usage error otherwise).  MT_CLI_CONTINUE when the command goes on. */
int mt_cli__parse_operands(const char *cmd, const char *usage, const char *help, int argc,
                           char **argv, const struct mt_cli_opt *opts, const char **pos,
                           int npos);

/* fputs(text, stdout) and flush: MT_EXIT_OK, or MT_EXIT_ERROR on failure. */
int mt_cli__print_help(const char *text);

/* A subcommand of a command group, for mt_cli__dispatch. */
struct mt_cli_sub {
	const char *name;
	int (*run)(int argc, char **argv);
};

/* `medtrust <group> <sub> ...` (argv[0] is the group word): with no
 * subcommand prints "usage: <usage>\nTry 'medtrust <group> --help'." and
 * returns MT_EXIT_USAGE; --help, -h or help prints `help`; an unknown word
 * is a usage error; otherwise runs the table entry with argv + 1.  `subs`
 * ends with a NULL name. */
int mt_cli__dispatch(const char *group, const char *usage, const char *help,
                     const struct mt_cli_sub *subs, int argc, char **argv);

/* Print "error: <what>: <mt_err_str(e)>" on stderr; return MT_EXIT_ERROR. */
int mt_cli__error(const char *what, enum mt_err e);

/* Read all of `f` into a malloc'd buffer, at most `max` bytes.  *more is
 * set when the stream holds more than `max` (then *len == max + 1 bytes
 * were read and kept).  The buffer gets one extra NUL byte after *len.
 * Errors: MT_ERR_IO, MT_ERR_NOMEM. */
enum mt_err mt_cli__read_all(FILE *f, size_t max, uint8_t **buf, size_t *len, bool *more);

/* Write `len` bytes to stdout and flush; MT_ERR_IO on failure. */
enum mt_err mt_cli__write_stdout(const void *buf, size_t len);

/* Lowercase hex of buf[0..len) into out (2 × len + 1 bytes). */
void mt_cli__hex(const uint8_t *buf, size_t len, char *out);

#endif
