/*
 * cmd_audit.c — `medtrust audit verify | tail | export | append |
 * checkpoint`: the hub's audit chain for people, SIEMs and tests
 * (mt_audit.h, docs/audit.md; threats J01–J03, J06).
 *
 *   audit verify --db FILE --hub-pub HUB_PUB.pem [--checkpoints FILE]
 *   audit tail --db FILE [-n N]
 *   audit export --db FILE [--from SEQ] [--to SEQ]
 *   audit append --db FILE --key URI --checkpoints FILE --actor A --action X
 *                [--subject S] [--outcome ok|refused|error] [--detail JSON]
 *                [--count N]
 *   audit checkpoint --db FILE --key URI --checkpoints FILE
 *
 * Everything here is a thin shell around the library: verification is
 * mt_audit_verify(), the JSON lines are mt_audit_export() /
 * mt_audit_tail(), writing is mt_audit_append() / mt_audit_checkpoint()
 * with the library's default checkpoint rules (every 1,000 records or
 * hour).  The library reads no clock, so the record time of `append` and
 * `checkpoint` is this process's CLOCK_REALTIME.
 *
 * Reading commands never create a database: a --db that does not exist is
 * exit 1, not an empty chain that verifies.  (The SQLite store opens its
 * file read-write and puts the append-only triggers back when they are
 * missing, so verify a copy when the file itself is evidence.)
 *
 * Exit codes as everywhere (cli.h): 0; 1 for a database, key or file
 * failure; 2 when verify finds the chain broken, with
 *   bad: record <seq>: <reason>: <sentence>
 * on stderr, <reason> one word per verdict code (mt_audit_reason_word);
 * 64 usage (and an event field the library refuses); 65 a --detail that is
 * not a JSON object.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "medtrust/mt_audit.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"

/* Bound of --count: one invocation appends at most this many events. */
#define MT_CLI_AUDIT_COUNT_MAX 1000000u

static const char verify_usage[] =
        "medtrust audit verify --db FILE --hub-pub HUB_PUB.pem [--checkpoints FILE]";
static const char tail_usage[] = "medtrust audit tail --db FILE [-n N]";
static const char export_usage[] = "medtrust audit export --db FILE [--from SEQ] [--to SEQ]";
static const char append_usage[] =
        "medtrust audit append --db FILE --key URI --checkpoints FILE --actor A --action X "
        "[--subject S] [--outcome ok|refused|error] [--detail JSON] [--count N]";
static const char checkpoint_usage[] =
        "medtrust audit checkpoint --db FILE --key URI --checkpoints FILE";

static const char audit_help[] =
        "usage: medtrust audit verify --db FILE --hub-pub HUB_PUB.pem\n"
        "                             [--checkpoints FILE]\n"
        "       medtrust audit tail --db FILE [-n N]\n"
        "       medtrust audit export --db FILE [--from SEQ] [--to SEQ]\n"
        "       medtrust audit append --db FILE --key URI --checkpoints FILE\n"
        "                             --actor A --action X [options]\n"
        "       medtrust audit checkpoint --db FILE --key URI --checkpoints FILE\n"
        "\n"
        "The hub's audit chain (docs/audit.md): one record per security event or\n"
        "user action, each carrying the SHA-256 of the record before it, with a\n"
        "checkpoint signed by the hub key at least every 1,000 records or hour,\n"
        "kept in the database and in an outside checkpoint file.\n"
        "\n"
        "Commands:\n"
        "  verify      check the whole chain; name the first bad record\n"
        "  tail        print the last N records as JSON lines\n"
        "  export      print a range of records as JSON lines (for SIEMs)\n"
        "  append      append an event (operators and tests)\n"
        "  checkpoint  sign a checkpoint over the chain now\n"
        "\n"
        "Run 'medtrust audit <command> --help' for the options of each.\n"
        "\n"
        "Exit codes: 0 success, 1 database, key or file failure, 2 chain broken\n"
        "(verify), 64 usage error, 65 --detail not a JSON object (append).\n";

static const char verify_help[] =
        "usage: medtrust audit verify --db FILE --hub-pub HUB_PUB.pem\n"
        "                             [--checkpoints FILE]\n"
        "\n"
        "Read the whole chain in order and check every record: sequence without\n"
        "gaps, well-formed fields, its hash, its link to the record before, and\n"
        "for a checkpoint the hub's signature and the record it names.  With\n"
        "--checkpoints, every line of the outside checkpoint file must be signed\n"
        "by the hub key and match the chain, and the chain must reach its newest\n"
        "checkpoint: that is what detects a cut-off tail.\n"
        "\n"
        "On an intact chain prints one line on stdout:\n"
        "  ok: R records, C checkpoints (X in the outside file), last seq S,\n"
        "  last checkpoint seq P, U records after it not yet signed\n"
        "\n"
        "Options:\n"
        "  --db FILE           the audit database (SQLite); must exist\n"
        "  --hub-pub FILE      the hub's checkpoint-signing public key, PEM\n"
        "  --checkpoints FILE  the outside checkpoint file (one hex COSE_Sign1 a\n"
        "                      line).  A missing file counts as empty (a note says\n"
        "                      so); without this option truncation cannot be seen\n"
        "  -h, --help          show this help\n"
        "\n"
        "Exit codes:\n"
        "  0   the chain is intact\n"
        "  1   the database, key or checkpoint file could not be read\n"
        "      (error: <what>: <reason>)\n"
        "  2   the chain is broken: on stderr\n"
        "        bad: record <seq>: <reason>: <sentence>\n"
        "      naming the first bad record, <reason> one of\n"
        "        edited      the record does not hash to its stored hash\n"
        "        missing     <seq> is absent (a gap: deleted)\n"
        "        order       moved, swapped or duplicated\n"
        "        link        prev_hash is not the previous hash (inserted)\n"
        "        checkpoint-signature  a checkpoint not signed by the hub key\n"
        "        checkpoint  a checkpoint that does not match the chain\n"
        "        truncated   the chain ends before its last outside checkpoint\n"
        "        malformed   a stored field out of bounds\n"
        "      or, for a bad line of the checkpoint file,\n"
        "        bad: checkpoint file: checkpoint-signature: <sentence>\n"
        "  64  usage error\n";

static const char tail_help[] =
        "usage: medtrust audit tail --db FILE [-n N]\n"
        "\n"
        "Print the last N records (default 20; fewer when the chain is shorter)\n"
        "in ascending seq, one JSON object a line:\n"
        "  {\"seq\":1,\"time_ms\":...,\"time\":\"2026-11-28T07:00:00.000Z\",\n"
        "   \"kind\":\"event\",\"actor\":\"alice\",\"action\":\"device.onboard\",\n"
        "   \"subject\":\"icu-7\",\"outcome\":\"ok\",\"detail\":{...},\n"
        "   \"prev_hash\":\"<hex>\",\"hash\":\"<hex>\"}\n"
        "A checkpoint adds \"checkpoint\":\"<hex COSE_Sign1>\".  Nothing is verified:\n"
        "run 'medtrust audit verify' first.\n"
        "\n"
        "Options:\n"
        "  --db FILE     the audit database (SQLite); must exist\n"
        "  -n, --lines N number of records, 0 to 4294967295 (default 20)\n"
        "  -h, --help    show this help\n"
        "\n"
        "Exit codes: 0 success, 1 database failure or stdout failed, 64 usage error.\n";

static const char export_help[] =
        "usage: medtrust audit export --db FILE [--from SEQ] [--to SEQ]\n"
        "\n"
        "Print the records --from..--to (inclusive; default the whole chain) in\n"
        "ascending seq as JSON lines, the form 'medtrust audit tail --help' shows,\n"
        "for people and SIEMs.  Nothing is verified: run 'medtrust audit verify'\n"
        "first.\n"
        "\n"
        "Options:\n"
        "  --db FILE    the audit database (SQLite); must exist\n"
        "  --from SEQ   first record (default 1); sequence numbers start at 1\n"
        "  --to SEQ     last record (default the last one); not below --from\n"
        "  -h, --help   show this help\n"
        "\n"
        "Exit codes: 0 success, 1 database failure or stdout failed, 64 usage error.\n";

static const char append_help[] =
        "usage: medtrust audit append --db FILE --key URI --checkpoints FILE\n"
        "                             --actor A --action X [--subject S]\n"
        "                             [--outcome ok|refused|error] [--detail JSON]\n"
        "                             [--count N]\n"
        "\n"
        "Append one event to the chain (the database is created when absent),\n"
        "timed now, and print its seq on stdout.  A checkpoint signed with --key\n"
        "follows when one is due (1,000 records since the last, or the oldest\n"
        "unsigned record an hour old) and is also appended to --checkpoints.\n"
        "\n"
        "Options:\n"
        "  --db FILE            the audit database (SQLite)\n"
        "  --key URI            the hub's checkpoint-signing key (P-256 or Ed25519)\n"
        "  --checkpoints FILE   the outside checkpoint file (created when absent)\n"
        "  --actor A            who: a user name, a device id, \"hub\" (1-128 bytes)\n"
        "  --action X           what: a dotted name of [a-z0-9_]+ parts, at most\n"
        "                       64 bytes, e.g. device.onboard\n"
        "  --subject S          what it was done to (0-256 bytes; default empty)\n"
        "  --outcome O          ok (default), refused or error\n"
        "  --detail JSON        a JSON object of at most 8192 bytes, stored byte\n"
        "                       for byte (default {})\n"
        "  --count N            append N identical events, 1 to 1000000 (default 1),\n"
        "                       printing each seq on its own line\n"
        "  -h, --help           show this help\n"
        "Text is UTF-8 without control characters.\n"
        "\n"
        "Exit codes:\n"
        "  0   appended\n"
        "  1   database, key or checkpoint file failure (error: <what>: <reason>).\n"
        "      When only the due checkpoint failed (key cannot sign, file cannot be\n"
        "      written) the event IS recorded and its seq printed; the next append\n"
        "      or 'medtrust audit checkpoint' signs it\n"
        "  64  usage error, or an --actor, --action or --subject the chain refuses\n"
        "  65  --detail is not a JSON object within bounds (invalid JSON: <reason>)\n";

static const char checkpoint_help[] =
        "usage: medtrust audit checkpoint --db FILE --key URI --checkpoints FILE\n"
        "\n"
        "Sign a checkpoint over the chain now, whatever the schedule, e.g. after\n"
        "an important event or before a backup.  Prints the checkpoint record's\n"
        "seq on stdout; when the chain is empty or already ends with a checkpoint\n"
        "there is nothing to sign: a note on stderr, exit 0.\n"
        "\n"
        "Options:\n"
        "  --db FILE            the audit database (SQLite)\n"
        "  --key URI            the hub's checkpoint-signing key (P-256 or Ed25519)\n"
        "  --checkpoints FILE   the outside checkpoint file (created when absent)\n"
        "  -h, --help           show this help\n"
        "\n"
        "Exit codes: 0 success, 1 database, key or file failure, 64 usage error.\n";

/* The options of every audit command; each command accepts a subset. */
struct audit_opts {
	const char *db, *hub_pub, *checkpoints, *lines, *from, *to, *key;
	const char *actor, *action, *subject, *outcome, *detail, *count;
};

/* mt_cli__parse_opts over `opts` (whose values point into `o`), then no
 * operand: MT_CLI_CONTINUE, or the exit code (usage error, --help). */
static int parse(int argc, char **argv, const struct mt_cli_opt *opts, const char *cmd,
                 const char *usage, const char *help, struct audit_opts *o)
{
	int pos, rc;

	memset(o, 0, sizeof *o);
	rc = mt_cli__parse_opts(cmd, usage, help, argc, argv, opts, &pos);
	if (rc == MT_CLI_CONTINUE && pos != argc)
		return mt_cli__usage(cmd, usage, "unexpected argument '%s'", argv[pos]);
	return rc;
}

/* Open an existing database for reading commands: never create one. */
static int open_existing(const char *path, struct mt_audit_store **store)
{
	struct stat st;
	enum mt_err e;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "error: opening --db %s: %s\n", path, mt_err_str(MT_ERR_NOT_FOUND));
		return MT_EXIT_ERROR;
	}
	e = mt_audit_sqlite_open_readonly(path, store);
	if (e != MT_OK) {
		fprintf(stderr, "error: opening --db %s: %s\n", path, mt_err_str(e));
		return MT_EXIT_ERROR;
	}
	return MT_EXIT_OK;
}

static int audit_verify(int argc, char **argv)
{
	const char *cmd = "audit verify";
	struct audit_opts o;
	const struct mt_cli_opt opts[] = {
	        {"db", 0, MT_CLI_VALUE, &o.db, NULL},
	        {"hub-pub", 0, MT_CLI_VALUE, &o.hub_pub, NULL},
	        {"checkpoints", 0, MT_CLI_VALUE, &o.checkpoints, NULL},
	        {NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	struct mt_audit_store *store = NULL;
	struct mt_pubkey *hub = NULL;
	struct mt_audit_verdict v;
	uint64_t last_cp = 0;
	const char *word, *why;
	enum mt_err e;
	int rc;

	rc = parse(argc, argv, opts, cmd, verify_usage, verify_help, &o);
	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!o.db)
		return mt_cli__usage(cmd, verify_usage, "missing --db");
	if (!o.hub_pub)
		return mt_cli__usage(cmd, verify_usage, "missing --hub-pub");

	e = mt_pubkey_from_pem_file(o.hub_pub, &hub);
	if (e != MT_OK) {
		fprintf(stderr, "error: reading --hub-pub %s: %s\n", o.hub_pub, mt_err_str(e));
		return MT_EXIT_ERROR;
	}
	rc = open_existing(o.db, &store);
	if (rc != MT_EXIT_OK)
		goto out;
	if (!o.checkpoints) {
		fputs("note: no --checkpoints given: a cut-off tail cannot be detected\n", stderr);
	} else {
		struct stat st;
		if (stat(o.checkpoints, &st) != 0)
			fprintf(stderr, "note: --checkpoints %s does not exist: counted as empty\n",
			        o.checkpoints);
	}

	e = mt_audit_verify(store, hub, o.checkpoints, &v);
	word = mt_audit_reason_word(e);
	if (e == MT_OK) {
		e = store->ops->last_checkpoint(store->ctx, &last_cp);
		if (e != MT_OK) {
			rc = mt_cli__error("reading the last checkpoint", e);
			goto out;
		}
		if (printf("ok: %llu records, %llu checkpoints (%llu in the outside file), "
		           "last seq %llu, last checkpoint seq %llu, %llu records after it not "
		           "yet signed\n",
		           (unsigned long long)v.records, (unsigned long long)v.checkpoints,
		           (unsigned long long)v.external, (unsigned long long)v.last_seq,
		           (unsigned long long)last_cp,
		           (unsigned long long)(v.last_seq - last_cp)) < 0 ||
		    fflush(stdout) != 0)
			rc = mt_cli__error("writing stdout", MT_ERR_IO);
		else
			rc = MT_EXIT_OK;
	} else if (word && v.seq != 0) {
		/* v.why reads "record <seq>: <sentence>": keep the sentence. */
		char prefix[40];
		int n = snprintf(prefix, sizeof prefix, "record %llu: ", (unsigned long long)v.seq);
		why = v.why;
		if (n > 0 && (size_t)n < sizeof prefix && strncmp(why, prefix, (size_t)n) == 0)
			why += n;
		fprintf(stderr, "bad: record %llu: %s: %s\n", (unsigned long long)v.seq, word, why);
		rc = MT_EXIT_REFUSED;
	} else if (word) { /* a bad line of the outside file */
		fprintf(stderr, "bad: checkpoint file: %s: %s\n", word, v.why);
		rc = MT_EXIT_REFUSED;
	} else {
		fprintf(stderr, "error: verifying --db %s: %s\n", o.db, v.why);
		rc = MT_EXIT_ERROR;
	}
out:
	mt_audit_store_close(store);
	mt_pubkey_free(hub);
	return rc;
}

/* Write one JSON line to stdout (flushed once at the end). */
static enum mt_err put_line(const char *line, size_t len, void *arg)
{
	(void)arg;
	return fwrite(line, 1, len, stdout) == len ? MT_OK : MT_ERR_IO;
}

/* Finish a JSON-lines command: report `e`, flush stdout. */
static int lines_done(enum mt_err e)
{
	if (e == MT_OK && (fflush(stdout) != 0 || ferror(stdout)))
		e = MT_ERR_IO;
	if (e == MT_ERR_IO)
		return mt_cli__error("writing stdout", e);
	if (e != MT_OK)
		return mt_cli__error("reading the audit database", e);
	return MT_EXIT_OK;
}

static int audit_tail(int argc, char **argv)
{
	const char *cmd = "audit tail";
	struct audit_opts o;
	const struct mt_cli_opt opts[] = {
	        {"db", 0, MT_CLI_VALUE, &o.db, NULL},
	        {"lines", 'n', MT_CLI_VALUE, &o.lines, NULL},
	        {NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	struct mt_audit_store *store = NULL;
	uint32_t n = 20;
	int rc;

	rc = parse(argc, argv, opts, cmd, tail_usage, tail_help, &o);
	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!o.db)
		return mt_cli__usage(cmd, tail_usage, "missing --db");
	if (o.lines && !mt_cli__parse_u32(o.lines, &n))
		return mt_cli__usage(cmd, tail_usage, "-n: '%s' is not a number from 0 to %u",
		                     o.lines, (unsigned)UINT32_MAX);
	rc = open_existing(o.db, &store);
	if (rc != MT_EXIT_OK)
		return rc;
	rc = lines_done(mt_audit_tail(store, n, put_line, NULL));
	mt_audit_store_close(store);
	return rc;
}

static bool parse_seq(const char *s, uint64_t *out)
{
	return mt_cli__parse_u64(s, out) && *out >= 1 && *out <= (uint64_t)INT64_MAX;
}

static int audit_export(int argc, char **argv)
{
	const char *cmd = "audit export";
	struct audit_opts o;
	const struct mt_cli_opt opts[] = {
	        {"db", 0, MT_CLI_VALUE, &o.db, NULL},
	        {"from", 0, MT_CLI_VALUE, &o.from, NULL},
	        {"to", 0, MT_CLI_VALUE, &o.to, NULL},
	        {NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	struct mt_audit_store *store = NULL;
	uint64_t from = 1, to = 0; /* to 0: through the last record */
	int rc;

	rc = parse(argc, argv, opts, cmd, export_usage, export_help, &o);
	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!o.db)
		return mt_cli__usage(cmd, export_usage, "missing --db");
	if (o.from && !parse_seq(o.from, &from))
		return mt_cli__usage(cmd, export_usage, "--from: '%s' is not a sequence number",
		                     o.from);
	if (o.to && !parse_seq(o.to, &to))
		return mt_cli__usage(cmd, export_usage, "--to: '%s' is not a sequence number",
		                     o.to);
	if (o.to && to < from)
		return mt_cli__usage(cmd, export_usage, "--to %llu is below --from %llu",
		                     (unsigned long long)to, (unsigned long long)from);
	rc = open_existing(o.db, &store);
	if (rc != MT_EXIT_OK)
		return rc;
	rc = lines_done(mt_audit_export(store, from, to, put_line, NULL));
	mt_audit_store_close(store);
	return rc;
}

/* Milliseconds since 1970 UTC: the record time (the library reads no clock). */
static uint64_t now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Open the hub key and a writer over --db with --checkpoints. */
static int open_writer(const struct audit_opts *o, struct mt_key **key, struct mt_audit **a)
{
	struct mt_audit_config cfg = {0, 0, o->checkpoints};
	struct mt_audit_store *store = NULL;
	enum mt_err e;

	e = mt_key_open(o->key, key);
	if (e != MT_OK)
		return mt_cli__error("opening --key", e);
	e = mt_audit_sqlite_open(o->db, &store);
	if (e != MT_OK) {
		fprintf(stderr, "error: opening --db %s: %s\n", o->db, mt_err_str(e));
		return MT_EXIT_ERROR;
	}
	e = mt_audit_open(store, *key, &cfg, a); /* takes the store */
	if (e != MT_OK)
		return mt_cli__error("opening the audit chain with --key", e);
	return MT_EXIT_OK;
}

/* Report a failed write (append or checkpoint); `seq` is the event's or 0. */
static int write_failed(const struct audit_opts *o, enum mt_err e, uint64_t seq)
{
	if (e == MT_ERR_IO) {
		fprintf(stderr,
		        "error: writing --checkpoints %s: %s (the records are in the database; "
		        "the next checkpoint covers them)\n",
		        o->checkpoints, mt_err_str(e));
	} else if (seq != 0) {
		fprintf(stderr,
		        "error: signing the due checkpoint: %s (event %llu is recorded; the "
		        "next append or 'medtrust audit checkpoint' retries)\n",
		        mt_err_str(e), (unsigned long long)seq);
	} else if (e == MT_ERR_AUDIT_FORMAT) {
		fprintf(stderr, "error: appending to --db %s: %s (run 'medtrust audit verify')\n",
		        o->db, mt_err_str(e));
	} else {
		fprintf(stderr, "error: writing to --db %s: %s\n", o->db, mt_err_str(e));
	}
	return MT_EXIT_ERROR;
}

static int audit_append(int argc, char **argv)
{
	const char *cmd = "audit append";
	struct audit_opts o;
	const struct mt_cli_opt opts[] = {
	        {"db", 0, MT_CLI_VALUE, &o.db, NULL},
	        {"key", 0, MT_CLI_VALUE, &o.key, NULL},
	        {"checkpoints", 0, MT_CLI_VALUE, &o.checkpoints, NULL},
	        {"actor", 0, MT_CLI_VALUE, &o.actor, NULL},
	        {"action", 0, MT_CLI_VALUE, &o.action, NULL},
	        {"subject", 0, MT_CLI_VALUE, &o.subject, NULL},
	        {"outcome", 0, MT_CLI_VALUE, &o.outcome, NULL},
	        {"detail", 0, MT_CLI_VALUE, &o.detail, NULL},
	        {"count", 0, MT_CLI_VALUE, &o.count, NULL},
	        {NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	struct mt_audit_event ev;
	struct mt_key *key = NULL;
	struct mt_audit *a = NULL;
	uint32_t count = 1;
	int rc;

	rc = parse(argc, argv, opts, cmd, append_usage, append_help, &o);
	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!o.db)
		return mt_cli__usage(cmd, append_usage, "missing --db");
	if (!o.key)
		return mt_cli__usage(cmd, append_usage, "missing --key");
	if (!o.checkpoints)
		return mt_cli__usage(cmd, append_usage, "missing --checkpoints");
	if (!o.actor)
		return mt_cli__usage(cmd, append_usage, "missing --actor");
	if (!o.action)
		return mt_cli__usage(cmd, append_usage, "missing --action");
	memset(&ev, 0, sizeof ev);
	ev.actor = o.actor;
	ev.action = o.action;
	ev.subject = o.subject;
	ev.detail = o.detail;
	ev.outcome = MT_AUDIT_OK;
	if (o.outcome) {
		if (strcmp(o.outcome, "ok") == 0)
			ev.outcome = MT_AUDIT_OK;
		else if (strcmp(o.outcome, "refused") == 0)
			ev.outcome = MT_AUDIT_REFUSED;
		else if (strcmp(o.outcome, "error") == 0)
			ev.outcome = MT_AUDIT_ERROR;
		else
			return mt_cli__usage(cmd, append_usage,
			                     "--outcome: '%s' is not ok, refused or error",
			                     o.outcome);
	}
	if (o.count &&
	    (!mt_cli__parse_u32(o.count, &count) || count == 0 || count > MT_CLI_AUDIT_COUNT_MAX))
		return mt_cli__usage(cmd, append_usage,
		                     "--count: '%s' is not a number from 1 to %u", o.count,
		                     MT_CLI_AUDIT_COUNT_MAX);

	rc = open_writer(&o, &key, &a);
	for (uint32_t i = 0; rc == MT_EXIT_OK && i < count; i++) {
		uint64_t seq = 0;
		enum mt_err e = mt_audit_append(a, now_ms(), &ev, &seq);

		if (seq != 0 && printf("%llu\n", (unsigned long long)seq) < 0) {
			rc = mt_cli__error("writing stdout", MT_ERR_IO);
			break;
		}
		if (e == MT_ERR_AUDIT_FIELD)
			rc = mt_cli__usage(
			        cmd, append_usage,
			        "--actor, --action or --subject refused: %s (see --help)",
			        mt_err_str(e));
		else if (e == MT_ERR_AUDIT_DETAIL) {
			fprintf(stderr, "invalid JSON: --detail: %s\n", mt_err_str(e));
			rc = MT_EXIT_DATAERR;
		} else if (e != MT_OK)
			rc = write_failed(&o, e, seq);
	}
	if (fflush(stdout) != 0 && rc == MT_EXIT_OK)
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	mt_audit_close(a);
	mt_key_free(key);
	return rc;
}

static int audit_checkpoint(int argc, char **argv)
{
	const char *cmd = "audit checkpoint";
	struct audit_opts o;
	const struct mt_cli_opt opts[] = {
	        {"db", 0, MT_CLI_VALUE, &o.db, NULL},
	        {"key", 0, MT_CLI_VALUE, &o.key, NULL},
	        {"checkpoints", 0, MT_CLI_VALUE, &o.checkpoints, NULL},
	        {NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	struct mt_key *key = NULL;
	struct mt_audit *a = NULL;
	bool done = false;
	enum mt_err e;
	int rc;

	rc = parse(argc, argv, opts, cmd, checkpoint_usage, checkpoint_help, &o);
	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!o.db)
		return mt_cli__usage(cmd, checkpoint_usage, "missing --db");
	if (!o.key)
		return mt_cli__usage(cmd, checkpoint_usage, "missing --key");
	if (!o.checkpoints)
		return mt_cli__usage(cmd, checkpoint_usage, "missing --checkpoints");

	rc = open_writer(&o, &key, &a);
	if (rc == MT_EXIT_OK) {
		e = mt_audit_checkpoint(a, now_ms(), &done);
		if (e != MT_OK && e != MT_ERR_IO) {
			rc = write_failed(&o, e, 0);
		} else if (done) {
			struct mt_audit_store *s = mt_audit_store_of(a);
			uint64_t cp = 0;
			enum mt_err e2 = s->ops->last_checkpoint(s->ctx, &cp);

			if (e2 != MT_OK)
				rc = mt_cli__error("reading the last checkpoint", e2);
			else if (printf("%llu\n", (unsigned long long)cp) < 0 ||
			         fflush(stdout) != 0)
				rc = mt_cli__error("writing stdout", MT_ERR_IO);
			if (e == MT_ERR_IO)
				rc = write_failed(&o, e, 0);
		} else {
			fputs("note: nothing to checkpoint: the chain is empty or ends with a "
			      "checkpoint\n",
			      stderr);
		}
	}
	mt_audit_close(a);
	mt_key_free(key);
	return rc;
}

int mt_cli_audit(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
	        {"verify", audit_verify},         {"tail", audit_tail},
	        {"export", audit_export},         {"append", audit_append},
	        {"checkpoint", audit_checkpoint}, {NULL, NULL},
	};

	return mt_cli__dispatch("audit", "medtrust audit verify|tail|export|append|checkpoint ...",
	                        audit_help, subs, argc, argv);
}
