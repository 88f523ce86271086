/*
 * cmd_store.c — the readings store from the command line (docs/storage.md,
 * docs/cli.md; threats J04, J05):
 *
 *   verify-record [-c CONF] (ID | FIRST-LAST | --all)
 *   patient add --name N --mrn M --ward W [--birth D] [--sex S] [--room R]
 *               [--bed B] [--spo2-scale 1|2] [--oxygen air|oxygen]
 *               [--acvpu A|C|V|P|U] [--news2 on|off] [-c CONF]
 *   patient edit ID [the options of add] [-c CONF]
 *   patient list [--ward W] [-c CONF]
 *   patient show ID [-c CONF]
 *   patient assign DEVICE PATIENT_ID [--since ISO8601|now] [-c CONF]
 *   patient unassign DEVICE [--at ISO8601|now] [-c CONF]
 *   patient assignments [--device DEV | --patient ID] [-c CONF]
 *   patient rule add ID "RULE" | rule list ID | rule del RULE_ID [-c CONF]
 *
 * CONF is the deployment's medtrust.conf (default $MEDTRUST_CONFIG, else
 * ./medtrust.conf), as for every lifecycle command.  All of them need the
 * hub's token: the store's data keys are wrapped by the KEK, and every
 * command writes an audit record (actor "cli:<login>") before it answers.
 *
 * verify-record re-verifies stored readings (mt_verify.h): for each, one
 * line `record N: FAIL <reason>` when it fails, then `verified N records:
 * N ok, M failed`, all on stdout.  Its exit codes are its own, because an
 * auditor's script must tell "the evidence is bad" from "the check could
 * not run": 0 every record verified, 1 at least one failed, 2 the
 * deployment, store, registry or audit chain unusable, 64 usage.  One
 * audit record per run, action `record.verify`, outcome ok (all good),
 * refused (records failed) or error (could not run), with the counts and
 * the first failing id.
 *
 * patient (docs/patients.md): identities are encrypted at rest; `list` and
 * `show` decrypt them for the operator (and are audited as patient.list
 * and patient.show, reads of identities).  Every change is audited
 * (patient.add, .edit, .assign, .rule.add, .rule.del, and their .refused
 * forms).  No audit record ever carries a name, MRN, birth date or sex:
 * patients are named by id; wards, beds, rooms, NEWS2 settings and rule
 * texts are not identity and are recorded.  Rules are checked with
 * mt_rule_parse and stored in mt_rule_format's canonical text.  Exit
 * codes: 0; 1 a deployment, store or key failure; 2 refused (unknown
 * device, patient or rule, an MRN another patient has, an assignment
 * earlier than the current one); 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "medtrust/mt_cbor.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_rules.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_util.h"
#include "medtrust/mt_verify.h"

#define EXIT_VERIFY_FAILED 1
#define EXIT_VERIFY_UNUSABLE 2

static const char verify_usage[] = "medtrust verify-record [-c CONF] (ID | FIRST-LAST | --all)";
static const char patient_usage[] =
        "medtrust patient add|edit|list|show|assign|unassign|assignments|rule ... [-c CONF]";

static const char verify_help[] =
        "usage: medtrust verify-record [-c CONF] (ID | FIRST-LAST | --all)\n"
        "\n"
        "Re-verify stored readings: each row must decrypt (nothing edited, moved\n"
        "or swapped), its operational certificate must be in the registry, issued\n"
        "to the row's device, chain to the operator CA and be valid and unrevoked\n"
        "when the hub received the reading; the device's Sign1 must carry that\n"
        "key's algorithm and kid and verify; and the signed message must name the\n"
        "row's device, counter, time and type.\n"
        "\n"
        "Prints 'record N: FAIL <reason>' for each failing record and a summary\n"
        "'verified N records: N ok, M failed'.  One audit record (record.verify).\n"
        "\n"
        "  ID            one record (a missing one fails)\n"
        "  FIRST-LAST    the stored records with FIRST <= id <= LAST\n"
        "  --all         every stored record\n"
        "  -c, --config CONF   the deployment's medtrust.conf\n"
        "\n"
        "Exit codes: 0 all verified, 1 a record failed, 2 the store, registry or\n"
        "audit chain unusable, 64 usage.\n";

static const char patient_help[] =
        "usage: medtrust patient add --name N --mrn M --ward W [--birth-date YYYY-MM-DD]\n"
        "                            [--sex S] [--room R] [--bed B] [--spo2-scale 1|2]\n"
        "                            [--oxygen air|oxygen] [--acvpu A|C|V|P|U]\n"
        "                            [--news2 on|off] [-c CONF]\n"
        "       medtrust patient edit ID [any option of add] [-c CONF]\n"
        "       medtrust patient list [--ward W] [-c CONF]\n"
        "       medtrust patient show ID [-c CONF]\n"
        "       medtrust patient assign DEVICE PATIENT_ID [--since ISO8601|now] [-c CONF]\n"
        "       medtrust patient unassign DEVICE [--at ISO8601|now] [-c CONF]\n"
        "       medtrust patient assignments [--device DEV | --patient ID] [-c CONF]\n"
        "       medtrust patient rule add ID \"RULE\" | rule list ID | rule del RULE_ID\n"
        "\n"
        "add stores a patient (name, MRN, birth date and sex encrypted at rest;\n"
        "ward, room, bed and the NEWS2 settings in the clear) and prints the new\n"
        "id; an MRN another patient has is refused.  edit changes only the fields\n"
        "given.  list prints every patient (or one ward's), decrypted, as JSON\n"
        "lines; show prints one with its devices and rules.  assign ties DEVICE (a\n"
        "device of the registry) to PATIENT_ID from --since on (default now),\n"
        "ending its previous assignment; 0 or unassign ends it.  Readings are tied\n"
        "to the patient their device is assigned to at the reading's time.\n"
        "assignments lists assignments with their time ranges.  rule add checks\n"
        "RULE (docs/news2.md, e.g. \"150456 < 90 for 30s hyst 2 prio high\") and\n"
        "stores it for the patient; it prints the rule's id.  Every change writes\n"
        "an audit record naming patients by id only.\n"
        "\n"
        "  --name N          1-256 bytes        --mrn M    medical record number, 1-64 bytes\n"
        "  --ward W          1-64 bytes         --room R, --bed B   0-32 bytes\n"
        "  --birth-date D, --birth D   YYYY-MM-DD, a real date not in the future\n"
        "  --sex S           male | female | other | unknown\n"
        "  --spo2-scale 1|2  NEWS2 SpO2 scale (2: confirmed hypercapnic respiratory failure)\n"
        "  --oxygen O        air | oxygen | unknown (unknown: scored as air, shown as assumed)\n"
        "  --acvpu A         A | C | V | P | U | unknown (unknown: scored as alert, shown)\n"
        "  --news2 on|off    off: NEWS2 not applicable (under 16, pregnant), not computed\n"
        "  ISO8601           YYYY-MM-DDTHH:MM[:SS[.fff]] and Z or +HH:MM\n"
        "  -c, --config CONF the deployment's medtrust.conf\n"
        "\n"
        "Text options: UTF-8 without control characters.  Exit codes: 0; 1 a\n"
        "deployment, store or key failure; 2 refused (unknown device, patient or\n"
        "rule, an MRN in use); 64 usage.\n";

/* ---- shared ------------------------------------------------------------ */

static const char *actor(char *buf, size_t cap)
{
	struct passwd *pw = getpwuid(getuid());

	(void)snprintf(buf, cap, "cli:%s", pw && pw->pw_name ? pw->pw_name : "unknown");
	return buf;
}

/* Open the deployment, its audit chain and a store connection; on failure
 * print why and return the error (*audit_ok says whether the audit chain
 * is open, so that the failure can still be recorded; the caller closes
 * what was opened). */
static enum mt_err open_all(const char *conf, struct mt_deploy **d, struct mt_store **s,
                            bool *audit_ok)
{
	char why[512] = "";
	enum mt_err e = mt_deploy_open(conf, d, why, sizeof why);

	*s = NULL;
	*audit_ok = false;
	if (e != MT_OK) {
		*d = NULL;
		fprintf(stderr, "error: opening the deployment: %s\n", why[0] ? why : mt_err_str(e));
		return e;
	}
	e = mt_deploy_open_audit(*d);
	if (e != MT_OK) {
		fprintf(stderr, "error: opening the audit chain: %s\n", mt_err_str(e));
		return e;
	}
	*audit_ok = true;
	e = mt_deploy_open_store(*d, s);
	if (e != MT_OK) {
		char path[4096] = "";

		if (mt_deploy_data_path(*d, path, sizeof path) != MT_OK)
			path[0] = '\0';
		fprintf(stderr, "error: opening the readings store %s: %s\n", path, mt_err_str(e));
		*s = NULL;
	}
	return e;
}

static enum mt_err audit(struct mt_deploy *d, const char *action, const char *subject,
                         enum mt_audit_outcome outcome, const char *detail)
{
	char who[96];

	return mt_deploy_audit(d, actor(who, sizeof who), action, subject, outcome, detail);
}

/* ---- verify-record ------------------------------------------------------- */

struct verify_run {
	struct mt_store *s;
	struct mt_registry *reg;
	const struct mt_cert *ca;
	uint64_t n, ok, failed;
	int64_t first_failed;
	enum mt_err fatal; /* an operational failure that stopped the walk */
};

static enum mt_err verify_one(void *ctx, int64_t id)
{
	struct verify_run *v = ctx;
	enum mt_err verdict = MT_OK;
	char why[256] = "";
	enum mt_err e = mt_verify_reading(v->s, v->reg, v->ca, id, &verdict, why, sizeof why);

	if (e != MT_OK) {
		v->fatal = e;
		return e;
	}
	v->n++;
	if (verdict == MT_OK) {
		v->ok++;
		return MT_OK;
	}
	v->failed++;
	if (v->first_failed == 0)
		v->first_failed = id;
	printf("record %" PRId64 ": FAIL %s\n", id, why[0] ? why : mt_err_str(verdict));
	return MT_OK;
}

/* "17" or "3-9" into [first, last]; false when it is neither. */
static bool parse_selector(const char *t, int64_t *first, int64_t *last)
{
	const char *dash = strchr(t, '-');
	char a[32];
	uint64_t x, y;

	if (dash == NULL) {
		if (!mt_cli__parse_u64(t, &x) || x == 0 || x > (uint64_t)INT64_MAX)
			return false;
		*first = *last = (int64_t)x;
		return true;
	}
	if ((size_t)(dash - t) >= sizeof a)
		return false;
	memcpy(a, t, (size_t)(dash - t));
	a[dash - t] = '\0';
	if (!mt_cli__parse_u64(a, &x) || !mt_cli__parse_u64(dash + 1, &y) || x == 0 || y < x ||
	    y > (uint64_t)INT64_MAX)
		return false;
	*first = (int64_t)x;
	*last = (int64_t)y;
	return true;
}

int mt_cli_verify_record(int argc, char **argv)
{
	const char *cmd = "verify-record", *conf = NULL, *selector;
	bool all = false, single = false, audit_open = false;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"all", 0, MT_CLI_FLAG_ONCE, NULL, &all},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct verify_run v = {0};
	struct mt_deploy *d = NULL;
	struct mt_cert *ca = NULL;
	int64_t first = 1, last = INT64_MAX;
	char detail[512], js[2][128], first_s[32];
	enum mt_err e = MT_OK, ae;
	int first_pos, rc = mt_cli__parse_opts(cmd, verify_usage, verify_help, argc, argv, opts,
	                                       &first_pos);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (all) {
		if (argc - first_pos != 0)
			return mt_cli__usage(cmd, verify_usage, "--all takes no ID");
		selector = "all";
	} else {
		if (argc - first_pos != 1)
			return mt_cli__usage(cmd, verify_usage, "give one ID, FIRST-LAST or --all");
		selector = argv[first_pos];
		single = strchr(selector, '-') == NULL;
		if (!parse_selector(selector, &first, &last))
			return mt_cli__usage(cmd, verify_usage,
			                     "'%s' is neither a record id nor FIRST-LAST (ids from 1)",
			                     selector);
	}
	e = open_all(conf, &d, &v.s, &audit_open);
	if (e != MT_OK)
		goto done;
	e = mt_cert_from_pem_file(mt_deploy_get(d, "ca_cert"), &ca);
	if (e != MT_OK) {
		fprintf(stderr, "error: reading the operator CA certificate %s: %s\n",
		        mt_deploy_get(d, "ca_cert"), mt_err_str(e));
		goto done;
	}
	v.reg = d->reg;
	v.ca = ca;
	if (single)
		e = verify_one(&v, first); /* a named record that is missing fails */
	else
		e = mt_store_reading_ids(v.s, first, last, verify_one, &v);
	if (e != MT_OK)
		fprintf(stderr, "error: verifying records: %s\n", mt_err_str(e));
done:
	if (v.first_failed > 0)
		(void)snprintf(first_s, sizeof first_s, "%" PRId64, v.first_failed);
	else
		(void)snprintf(first_s, sizeof first_s, "null");
	(void)snprintf(detail, sizeof detail,
	               "{\"selector\":%s,\"verified\":%" PRIu64 ",\"ok\":%" PRIu64
	               ",\"failed\":%" PRIu64 ",\"first_failed\":%s%s%s}",
	               mt_deploy_json_str(selector, js[0], sizeof js[0]), v.n, v.ok, v.failed,
	               first_s, e == MT_OK ? "" : ",\"error\":",
	               e == MT_OK ? "" : mt_deploy_json_str(mt_err_str(e), js[1], sizeof js[1]));
	ae = audit_open ? audit(d, "record.verify", selector,
	                        e != MT_OK       ? MT_AUDIT_ERROR
	                        : v.failed > 0   ? MT_AUDIT_REFUSED
	                                         : MT_AUDIT_OK,
	                        detail)
	                : MT_ERR_ARG;
	if (audit_open && ae != MT_OK)
		fprintf(stderr, "error: writing the audit record: %s\n", mt_err_str(ae));
	if (e == MT_OK && ae == MT_OK) {
		if (printf("verified %" PRIu64 " records: %" PRIu64 " ok, %" PRIu64 " failed\n", v.n,
		           v.ok, v.failed) < 0 ||
		    fflush(stdout) != 0)
			rc = EXIT_VERIFY_UNUSABLE;
		else
			rc = v.failed > 0 ? EXIT_VERIFY_FAILED : MT_EXIT_OK;
	} else {
		(void)fflush(stdout);
		rc = EXIT_VERIFY_UNUSABLE;
	}
	mt_cert_free(ca);
	mt_store_close(v.s);
	mt_deploy_close(d);
	return rc;
}

/* ---- patient ------------------------------------------------------------- */

#define MRN_MAX 64 /* bytes: MRNs are short codes; the store allows more */

/* 1..max bytes (0..max when empty is allowed) of UTF-8 without control
 * characters. */
static bool field_ok(const char *t, size_t max, bool allow_empty)
{
	size_t n = strlen(t);

	if (n > max || (n == 0 && !allow_empty) || !mt_utf8_valid((const uint8_t *)t, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			return false;
	return true;
}

static int digits(const char *t, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return -1;
		v = v * 10 + (t[i] - '0');
	}
	return v;
}

/* A real YYYY-MM-DD date; *days its day number. */
static bool date_parse(const char *t, int64_t *days)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d;

	if (strlen(t) < 10 || t[4] != '-' || t[7] != '-')
		return false;
	y = digits(t, 4);
	m = digits(t + 5, 2);
	d = digits(t + 8, 2);
	if (y < 1 || m < 1 || m > 12 || d < 1)
		return false;
	if (d > mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)))
		return false;
	*days = mt_days_from_civil(y, (unsigned)m, (unsigned)d);
	return true;
}

/* A birth date: a real date, not after today (UTC). */
static bool birth_ok(const char *t)
{
	int64_t days;

	return strlen(t) == 10 && date_parse(t, &days) &&
	       days <= (int64_t)(mt_deploy_now_ms() / 86400000u);
}

/* "now", or YYYY-MM-DDTHH:MM[:SS[.fff]] followed by Z or ±HH:MM, into
 * Unix milliseconds. */
static bool when_parse(const char *t, uint64_t *ms)
{
	int64_t days, v;
	int hh, mi, ss = 0, frac = 0;
	size_t k = 16;

	if (strcmp(t, "now") == 0) {
		*ms = mt_deploy_now_ms();
		return true;
	}
	if (strlen(t) < 17 || !date_parse(t, &days) || (t[10] != 'T' && t[10] != 't') ||
	    t[13] != ':')
		return false;
	hh = digits(t + 11, 2);
	mi = digits(t + 14, 2);
	if (t[k] == ':') {
		ss = digits(t + 17, 2);
		k = 19;
		if (t[k] == '.') {
			size_t f = 0;

			for (k++; t[k] >= '0' && t[k] <= '9'; k++, f++)
				if (f < 3)
					frac = frac * 10 + (t[k] - '0');
			if (f == 0)
				return false;
			for (; f < 3; f++)
				frac *= 10;
		}
	}
	if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59)
		return false;
	v = ((days * 24 + hh) * 60 + mi) * 60 + ss;
	if ((t[k] == 'Z' || t[k] == 'z') && t[k + 1] == '\0') {
		/* UTC */
	} else if ((t[k] == '+' || t[k] == '-') && strlen(t + k) == 6 && t[k + 3] == ':') {
		int oh = digits(t + k + 1, 2), om = digits(t + k + 4, 2);

		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return false;
		v += (t[k] == '+' ? -1 : 1) * (oh * 3600 + om * 60);
	} else {
		return false;
	}
	if (v < 0)
		return false;
	*ms = (uint64_t)v * 1000u + (uint64_t)frac;
	return true;
}

/* Unix milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static const char *iso_ms(uint64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000u);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		(void)snprintf(buf, cap, "?");
		return buf;
	}
	(void)snprintf(buf + strlen(buf), cap - strlen(buf), ".%03uZ", (unsigned)(ms % 1000u));
	return buf;
}

/* The options `patient add` and `patient edit` share. */
struct patient_opts {
	const char *name, *mrn, *birth, *birth_date, *sex, *ward, *room, *bed, *scale, *oxygen,
	        *acvpu, *news2;
};

#define PATIENT_OPTS(o)                                                                      \
	{"name", 0, MT_CLI_VALUE, &(o).name, NULL}, {"mrn", 0, MT_CLI_VALUE, &(o).mrn, NULL},  \
	        {"birth", 0, MT_CLI_VALUE, &(o).birth, NULL},                                    \
	        {"birth-date", 0, MT_CLI_VALUE, &(o).birth_date, NULL},                          \
	        {"sex", 0, MT_CLI_VALUE, &(o).sex, NULL},                                        \
	        {"ward", 0, MT_CLI_VALUE, &(o).ward, NULL},                                      \
	        {"room", 0, MT_CLI_VALUE, &(o).room, NULL},                                      \
	        {"bed", 0, MT_CLI_VALUE, &(o).bed, NULL},                                        \
	        {"spo2-scale", 0, MT_CLI_VALUE, &(o).scale, NULL},                               \
	        {"oxygen", 0, MT_CLI_VALUE, &(o).oxygen, NULL},                                  \
	        {"acvpu", 0, MT_CLI_VALUE, &(o).acvpu, NULL},                                    \
	        {"news2", 0, MT_CLI_VALUE, &(o).news2, NULL}

static void set_text(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/* Check the given options and apply them to *p; the names of the fields
 * that change go into changed[] (*nchanged).  NULL, or the usage message
 * (in msg). */
static const char *patient_apply(const struct patient_opts *o, struct mt_patient *p,
                                 const char **changed, size_t *nchanged, char *msg, size_t cap)
{
	const char *birth = o->birth != NULL ? o->birth : o->birth_date;

	*nchanged = 0;
	if (o->birth != NULL && o->birth_date != NULL)
		return "give --birth or --birth-date, not both";
	if (o->name != NULL && !field_ok(o->name, MT_STORE_TEXT_MAX, false)) {
		(void)snprintf(msg, cap, "--name: 1-%d bytes of UTF-8, no control characters",
		               MT_STORE_TEXT_MAX);
		return msg;
	}
	if (o->mrn != NULL && !field_ok(o->mrn, MRN_MAX, false)) {
		(void)snprintf(msg, cap, "--mrn: 1-%d bytes of UTF-8, no control characters",
		               MRN_MAX);
		return msg;
	}
	if (o->ward != NULL && !field_ok(o->ward, sizeof p->ward - 1, false)) {
		(void)snprintf(msg, cap, "--ward: 1-%zu bytes of UTF-8, no control characters",
		               sizeof p->ward - 1);
		return msg;
	}
	if (o->room != NULL && !field_ok(o->room, sizeof p->room - 1, true)) {
		(void)snprintf(msg, cap, "--room: at most %zu bytes of UTF-8, no control characters",
		               sizeof p->room - 1);
		return msg;
	}
	if (o->bed != NULL && !field_ok(o->bed, sizeof p->bed - 1, true)) {
		(void)snprintf(msg, cap, "--bed: at most %zu bytes of UTF-8, no control characters",
		               sizeof p->bed - 1);
		return msg;
	}
	if (birth != NULL && birth[0] != '\0' && !birth_ok(birth))
		return "--birth: a real date YYYY-MM-DD, not in the future (\"\" clears it)";
	if (o->sex != NULL && strcmp(o->sex, "male") != 0 && strcmp(o->sex, "female") != 0 &&
	    strcmp(o->sex, "other") != 0 && strcmp(o->sex, "unknown") != 0)
		return "--sex: male, female, other or unknown";
	if (o->scale != NULL && strcmp(o->scale, "1") != 0 && strcmp(o->scale, "2") != 0)
		return "--spo2-scale: 1 or 2 (2 only for confirmed hypercapnic respiratory failure)";
	if (o->oxygen != NULL && strcmp(o->oxygen, "air") != 0 && strcmp(o->oxygen, "oxygen") != 0 &&
	    strcmp(o->oxygen, "unknown") != 0)
		return "--oxygen: air, oxygen or unknown";
	if (o->acvpu != NULL && (strlen(o->acvpu) != 1 || strchr("ACVPU", o->acvpu[0]) == NULL) &&
	    strcmp(o->acvpu, "unknown") != 0)
		return "--acvpu: A, C, V, P, U or unknown";
	if (o->news2 != NULL && strcmp(o->news2, "on") != 0 && strcmp(o->news2, "off") != 0)
		return "--news2: on or off (off: not applicable, e.g. under 16 or pregnant)";
#define CHANGE(opt, field, expr)                                                             \
	do {                                                                                 \
		if ((opt) != NULL) {                                                         \
			expr;                                                                \
			changed[(*nchanged)++] = (field);                                    \
		}                                                                            \
	} while (0)
	CHANGE(o->name, "name", set_text(p->name, sizeof p->name, o->name));
	CHANGE(o->mrn, "mrn", set_text(p->mrn, sizeof p->mrn, o->mrn));
	CHANGE(birth, "birth_date", set_text(p->birth_date, sizeof p->birth_date, birth));
	CHANGE(o->sex, "sex", set_text(p->sex, sizeof p->sex, o->sex));
	CHANGE(o->ward, "ward", set_text(p->ward, sizeof p->ward, o->ward));
	CHANGE(o->room, "room", set_text(p->room, sizeof p->room, o->room));
	CHANGE(o->bed, "bed", set_text(p->bed, sizeof p->bed, o->bed));
	CHANGE(o->scale, "spo2_scale", p->spo2_scale2 = o->scale[0] == '2');
	CHANGE(o->oxygen, "oxygen",
	       p->oxygen = strcmp(o->oxygen, "air") == 0      ? 'A'
	                   : strcmp(o->oxygen, "oxygen") == 0 ? 'O'
	                                                      : 0);
	CHANGE(o->acvpu, "acvpu", p->acvpu = strcmp(o->acvpu, "unknown") == 0 ? 0 : o->acvpu[0]);
	CHANGE(o->news2, "news2", p->news2_na = strcmp(o->news2, "off") == 0);
#undef CHANGE
	return NULL;
}

static const char *oxygen_name(char c)
{
	return c == 'A' ? "air" : c == 'O' ? "oxygen" : "unknown";
}

static const char *acvpu_name(char c)
{
	static const char *const names[] = {"A", "C", "V", "P", "U"};
	const char *k = c != 0 ? strchr("ACVPU", c) : NULL;

	return k != NULL ? names[k - "ACVPU"] : "unknown";
}

/* The JSON of a patient's NEWS2 settings (no identity: fit for audit). */
static void news2_json(const struct mt_patient *p, char *buf, size_t cap)
{
	(void)snprintf(buf, cap,
	               "\"spo2_scale\":%d,\"oxygen\":\"%s\",\"acvpu\":\"%s\",\"news2\":\"%s\"",
	               p->spo2_scale2 ? 2 : 1, oxygen_name(p->oxygen), acvpu_name(p->acvpu),
	               p->news2_na ? "off" : "on");
}

/* Print one patient as a JSON line (with `extra` inside the object). */
static bool patient_print(const struct mt_patient *p, const char *extra)
{
	/* every field may become \u escapes: 6 bytes per input byte */
	char js[7][6 * (MT_STORE_TEXT_MAX + 1) + 3], n2[160];
	bool ok;

	news2_json(p, n2, sizeof n2);
	ok = printf("{\"id\":%" PRId64 ",\"ward\":%s,\"bed\":%s,\"name\":%s,\"mrn\":%s,"
	            "\"birth_date\":%s,\"room\":%s,\"sex\":%s,%s%s}\n",
	            p->id, mt_deploy_json_str(p->ward, js[0], sizeof js[0]),
	            mt_deploy_json_str(p->bed, js[1], sizeof js[1]),
	            mt_deploy_json_str(p->name, js[2], sizeof js[2]),
	            mt_deploy_json_str(p->mrn, js[3], sizeof js[3]),
	            mt_deploy_json_str(p->birth_date, js[4], sizeof js[4]),
	            mt_deploy_json_str(p->room, js[5], sizeof js[5]),
	            mt_deploy_json_str(p->sex[0] ? p->sex : "unknown", js[6], sizeof js[6]), n2,
	            extra != NULL ? extra : "") >= 0;
	mt_wipe(js, sizeof js);
	return ok;
}

/* The patient id operand: 1..INT64_MAX. */
static bool pid_parse(const char *t, int64_t *id)
{
	uint64_t v;

	if (!mt_cli__parse_u64(t, &v) || v == 0 || v > (uint64_t)INT64_MAX)
		return false;
	*id = (int64_t)v;
	return true;
}

/* Write audit record `action` and fold its failure into rc. */
static int audit_rc(struct mt_deploy *d, bool audit_open, int rc, const char *action,
                    const char *subject, enum mt_audit_outcome outcome, const char *detail)
{
	enum mt_err ae;

	if (!audit_open)
		return rc;
	ae = audit(d, action, subject, outcome, detail);
	if (ae != MT_OK && rc == MT_EXIT_OK)
		rc = mt_cli__error("writing the audit record", ae);
	return rc;
}

static int patient_add(int argc, char **argv)
{
	const char *cmd = "patient add", *conf = NULL;
	struct patient_opts o = {0};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  PATIENT_OPTS(o),
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_patient *p = NULL;
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	char detail[768], subject[48], js[3][420], msg[160], n2[160];
	const char *changed[16], *bad, *refusal = NULL;
	size_t nchanged = 0;
	int64_t id = 0, other = 0;
	bool audit_open = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	rc = MT_EXIT_OK;
	if (o.name == NULL || o.mrn == NULL || o.ward == NULL)
		return mt_cli__usage(cmd, patient_usage, "--name, --mrn and --ward are required");
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return mt_cli__error(cmd, MT_ERR_NOMEM);
	bad = patient_apply(&o, p, changed, &nchanged, msg, sizeof msg);
	if (bad != NULL) {
		free(p);
		return mt_cli__usage(cmd, patient_usage, "%s", bad);
	}
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
	} else {
		/* One patient per MRN: a second admission is an edit. */
		e = mt_store_patient_find_mrn(s, p->mrn, &other);
		if (e == MT_OK) {
			refusal = "a patient with this MRN exists";
			e = MT_ERR_ARG;
			rc = MT_EXIT_REFUSED;
		} else if (e == MT_ERR_NOT_FOUND) {
			e = mt_store_patient_add(s, p, &id);
			if (e != MT_OK)
				rc = mt_cli__error("storing the patient", e);
		} else {
			rc = mt_cli__error("looking the MRN up", e);
		}
	}
	if (audit_open) {
		news2_json(p, n2, sizeof n2);
		(void)snprintf(subject, sizeof subject, "patient:%" PRId64, e == MT_OK ? id : other);
		(void)snprintf(detail, sizeof detail,
		               "{\"patient\":%" PRId64 ",\"ward\":%s,\"bed\":%s,\"room\":%s,%s%s%s}",
		               e == MT_OK ? id : other,
		               mt_deploy_json_str(p->ward, js[0], sizeof js[0]),
		               mt_deploy_json_str(p->bed, js[1], sizeof js[1]),
		               mt_deploy_json_str(p->room, js[2], sizeof js[2]), n2,
		               e == MT_OK ? "" : ",\"error\":",
		               e == MT_OK        ? ""
		               : refusal != NULL ? "\"mrn_exists\""
		                                 : "\"error\"");
		rc = audit_rc(d, audit_open, rc, e == MT_OK ? "patient.add" : "patient.add.refused",
		              e == MT_OK || refusal != NULL ? subject : NULL,
		              e == MT_OK ? MT_AUDIT_OK : refusal ? MT_AUDIT_REFUSED : MT_AUDIT_ERROR,
		              detail);
	}
	if (refusal != NULL)
		fprintf(stderr, "refused: %s (patient %" PRId64 "; change it with patient edit)\n",
		        refusal, other);
	if (rc == MT_EXIT_OK && (printf("%" PRId64 "\n", id) < 0 || fflush(stdout) != 0))
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	mt_wipe(p, sizeof *p);
	free(p);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

static int patient_edit(int argc, char **argv)
{
	const char *cmd = "patient edit", *conf = NULL, *pos[1] = {NULL};
	struct patient_opts o = {0};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  PATIENT_OPTS(o),
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_patient *p = NULL, *given = NULL;
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	char detail[768], subject[48], msg[160], n2[160], list[256];
	const char *changed[16], *bad, *refusal = NULL;
	size_t nchanged = 0, ln = 0;
	int64_t id = 0, other = 0;
	bool audit_open = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	rc = MT_EXIT_OK;
	if (!pid_parse(pos[0], &id))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a patient id", pos[0]);
	p = calloc(1, sizeof *p);
	given = calloc(1, sizeof *given);
	if (p == NULL || given == NULL) {
		free(p);
		free(given);
		return mt_cli__error(cmd, MT_ERR_NOMEM);
	}
	/* Check the options before anything is opened (a usage error writes
	 * nothing). */
	bad = patient_apply(&o, given, changed, &nchanged, msg, sizeof msg);
	if (bad == NULL && nchanged == 0)
		bad = "nothing to change: give at least one option";
	if (bad != NULL) {
		free(p);
		free(given);
		return mt_cli__usage(cmd, patient_usage, "%s", bad);
	}
	(void)snprintf(subject, sizeof subject, "patient:%" PRId64, id);
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto audit_it;
	}
	e = mt_store_patient_get(s, id, p);
	if (e == MT_OK)
		bad = patient_apply(&o, p, changed, &nchanged, msg, sizeof msg);
	if (e == MT_OK && o.mrn != NULL) {
		e = mt_store_patient_find_mrn(s, p->mrn, &other);
		if (e == MT_OK && other != id)
			refusal = "another patient has this MRN";
		e = e == MT_ERR_NOT_FOUND || e == MT_OK ? MT_OK : e;
	}
	if (e == MT_OK && refusal == NULL)
		e = mt_store_patient_update(s, p);
	if (e == MT_ERR_NOT_FOUND)
		refusal = "no such patient";
	if (refusal != NULL)
		rc = MT_EXIT_REFUSED;
	else if (e != MT_OK)
		rc = mt_cli__error("updating the patient", e);
audit_it:
	list[0] = '\0';
	for (size_t i = 0; i < nchanged; i++) {
		int k = snprintf(list + ln, sizeof list - ln, "%s\"%s\"", i ? "," : "", changed[i]);

		if (k > 0 && (size_t)k < sizeof list - ln)
			ln += (size_t)k;
	}
	if (rc == MT_EXIT_OK)
		news2_json(p, n2, sizeof n2);
	else
		(void)snprintf(n2, sizeof n2, "\"error\":\"%s\"",
		               refusal == NULL ? "error"
		               : other != 0    ? "mrn_exists"
		                               : "no_such_patient");
	(void)snprintf(detail, sizeof detail, "{\"patient\":%" PRId64 ",\"changed\":[%s],%s}", id,
	               list, n2);
	rc = audit_rc(d, audit_open, rc, refusal ? "patient.edit.refused" : "patient.edit",
	              subject,
	              rc == MT_EXIT_OK ? MT_AUDIT_OK : refusal ? MT_AUDIT_REFUSED : MT_AUDIT_ERROR,
	              detail);
	if (refusal != NULL)
		fprintf(stderr, "refused: %s: %s\n", refusal, other != 0 ? "--mrn" : pos[0]);
	else if (rc == MT_EXIT_OK)
		fprintf(stderr, "updated patient %" PRId64 "\n", id);
	mt_wipe(p, sizeof *p);
	mt_wipe(given, sizeof *given);
	free(p);
	free(given);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

static int patient_list(int argc, char **argv)
{
	const char *cmd = "patient list", *conf = NULL, *ward = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"ward", 0, MT_CLI_VALUE, &ward, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	struct mt_patient *p = NULL;
	int64_t *ids = NULL;
	size_t n = 0, got = 0, shown = 0;
	char detail[256], js[6 * 65 + 3];
	bool audit_open = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (ward != NULL && !field_ok(ward, 64, false))
		return mt_cli__usage(cmd, patient_usage, "--ward: 1-64 bytes of UTF-8");
	rc = MT_EXIT_OK;
	if (open_all(conf, &d, &s, &audit_open) != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto out;
	}
	/* The ids (count first, then fill), audited before anything is shown. */
	e = mt_store_patient_ids(s, NULL, 0, &n);
	if (e == MT_OK && n > 0) {
		ids = calloc(n, sizeof *ids);
		if (ids == NULL)
			e = MT_ERR_NOMEM;
		else
			e = mt_store_patient_ids(s, ids, n, &got);
		if (e == MT_OK && got < n)
			n = got;
	}
	(void)snprintf(detail, sizeof detail, "{\"patients\":%zu%s%s}", e == MT_OK ? n : 0,
	               ward != NULL ? ",\"ward\":" : "",
	               ward != NULL ? mt_deploy_json_str(ward, js, sizeof js) : "");
	{
		enum mt_err ae = audit(d, "patient.list", NULL,
		                       e == MT_OK ? MT_AUDIT_OK : MT_AUDIT_ERROR, detail);

		if (e != MT_OK) {
			rc = mt_cli__error("reading the patients", e);
			goto out;
		}
		if (ae != MT_OK) {
			rc = mt_cli__error("writing the audit record", ae);
			goto out;
		}
	}
	p = calloc(1, sizeof *p);
	if (p == NULL) {
		rc = mt_cli__error(cmd, MT_ERR_NOMEM);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		e = mt_store_patient_get(s, ids[i], p);
		if (e != MT_OK) {
			fprintf(stderr, "error: patient %" PRId64 ": %s\n", ids[i], mt_err_str(e));
			rc = MT_EXIT_ERROR;
			continue;
		}
		if (ward != NULL && strcmp(ward, p->ward) != 0)
			continue;
		if (!patient_print(p, NULL))
			rc = mt_cli__error("writing stdout", MT_ERR_IO);
		shown++;
	}
	if (fflush(stdout) != 0)
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	(void)shown;
out:
	if (p != NULL) {
		mt_wipe(p, sizeof *p);
		free(p);
	}
	free(ids);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

/* A growing JSON array in a fixed buffer (devices and rules of `show`). */
struct jarr {
	char s[16384];
	size_t n;
	bool over;
};

static void jarr_add(struct jarr *a, const char *item)
{
	size_t k = strlen(item);

	if (a->over || a->n + k + 2 >= sizeof a->s) {
		a->over = true;
		return;
	}
	if (a->n > 0)
		a->s[a->n++] = ',';
	memcpy(a->s + a->n, item, k);
	a->n += k;
	a->s[a->n] = '\0';
}

static enum mt_err show_dev(void *ctx, const struct mt_assignment *a)
{
	char item[256], js[6 * (MT_DEVICE_ID_MAX + 1) + 3], t[40];

	if (!a->open)
		return MT_OK;
	(void)snprintf(item, sizeof item, "{\"dev\":%s,\"since\":\"%s\"}",
	               mt_deploy_json_str(a->dev, js, sizeof js), iso_ms(a->since_ms, t, sizeof t));
	jarr_add(ctx, item);
	return MT_OK;
}

static enum mt_err show_rule(void *ctx, const struct mt_patient_rule *r)
{
	char item[6 * (MT_STORE_RULE_MAX + 1) + 64], js[6 * (MT_STORE_RULE_MAX + 1) + 3];

	(void)snprintf(item, sizeof item, "{\"id\":%" PRId64 ",\"rule\":%s}", r->id,
	               mt_deploy_json_str(r->text, js, sizeof js));
	jarr_add(ctx, item);
	return MT_OK;
}

static int patient_show(int argc, char **argv)
{
	const char *cmd = "patient show", *conf = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	struct mt_patient *p = NULL;
	struct jarr *devs = NULL, *rules = NULL;
	char subject[48], *extra = NULL;
	int64_t id = 0;
	bool audit_open = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!pid_parse(pos[0], &id))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a patient id", pos[0]);
	rc = MT_EXIT_OK;
	(void)snprintf(subject, sizeof subject, "patient:%" PRId64, id);
	p = calloc(1, sizeof *p);
	devs = calloc(1, sizeof *devs);
	rules = calloc(1, sizeof *rules);
	extra = malloc(2 * sizeof devs->s + 64);
	if (p == NULL || devs == NULL || rules == NULL || extra == NULL) {
		rc = mt_cli__error(cmd, MT_ERR_NOMEM);
		goto out;
	}
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto out;
	}
	e = mt_store_patient_get(s, id, p);
	if (e == MT_OK)
		e = mt_store_assignments(s, NULL, id, show_dev, devs);
	if (e == MT_OK)
		e = mt_store_rules(s, id, show_rule, rules);
	rc = audit_rc(d, audit_open,
	              e == MT_OK                ? MT_EXIT_OK
	              : e == MT_ERR_NOT_FOUND ? MT_EXIT_REFUSED
	                                      : MT_EXIT_ERROR,
	              e == MT_ERR_NOT_FOUND ? "patient.show.refused" : "patient.show", subject,
	              e == MT_OK                ? MT_AUDIT_OK
	              : e == MT_ERR_NOT_FOUND ? MT_AUDIT_REFUSED
	                                      : MT_AUDIT_ERROR,
	              e == MT_OK ? "{}" : "{\"error\":\"not_found\"}");
	if (e == MT_ERR_NOT_FOUND) {
		fprintf(stderr, "refused: no such patient: %s\n", pos[0]);
	} else if (e != MT_OK) {
		rc = mt_cli__error("reading the patient", e);
	} else if (rc == MT_EXIT_OK) {
		(void)snprintf(extra, 2 * sizeof devs->s + 64, ",\"devices\":[%s],\"rules\":[%s]",
		               devs->s, rules->s);
		if (!patient_print(p, extra) || fflush(stdout) != 0)
			rc = mt_cli__error("writing stdout", MT_ERR_IO);
	}
out:
	if (p != NULL)
		mt_wipe(p, sizeof *p);
	free(p);
	free(devs);
	free(rules);
	free(extra);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

/* assign (pid > 0) or unassign (pid 0) DEVICE at `since`. */
static int assign_run(const char *cmd, const char *conf, const char *dev, uint64_t pid,
                      const char *pid_s, uint64_t since)
{
	struct mt_device_rec rec;
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	char detail[512], js[160];
	const char *refusal = NULL, *refused = NULL;
	bool audit_open = false;
	enum mt_err e = MT_OK;
	int rc = MT_EXIT_OK;

	(void)cmd;
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto audit_it;
	}
	e = mt_registry_device(d->reg, dev, &rec);
	if (e == MT_ERR_REG_UNKNOWN) {
		refusal = "no such device in the registry";
		refused = dev;
	} else if (e == MT_OK) {
		e = mt_store_assign(s, dev, (int64_t)pid, since);
		if (e == MT_ERR_NOT_FOUND) {
			refusal = "no such patient";
			refused = pid_s;
		} else if (e == MT_ERR_ARG) {
			refusal = "the device's current assignment starts later than that time";
			refused = dev;
		}
	}
	if (refusal != NULL)
		rc = MT_EXIT_REFUSED;
	else if (e != MT_OK)
		rc = mt_cli__error("assigning the device", e);
audit_it:
	(void)snprintf(detail, sizeof detail,
	               "{\"patient\":%" PRIu64 ",\"since_ms\":%" PRIu64 "%s%s}", pid, since,
	               e == MT_OK ? "" : ",\"error\":",
	               e == MT_OK ? ""
	                          : mt_deploy_json_str(refusal ? refusal : mt_err_str(e), js,
	                                               sizeof js));
	rc = audit_rc(d, audit_open, rc, e == MT_OK ? "patient.assign" : "patient.assign.refused",
	              dev, e == MT_OK ? MT_AUDIT_OK : refusal ? MT_AUDIT_REFUSED : MT_AUDIT_ERROR,
	              detail);
	if (refusal != NULL)
		fprintf(stderr, "refused: %s: %s\n", refusal, refused);
	else if (rc == MT_EXIT_OK && pid == 0)
		fprintf(stderr, "unassigned %s\n", dev);
	else if (rc == MT_EXIT_OK)
		fprintf(stderr, "assigned %s to patient %" PRIu64 "\n", dev, pid);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

static int patient_assign(int argc, char **argv)
{
	const char *cmd = "patient assign", *conf = NULL, *since_s = NULL, *pos[2] = {NULL, NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"since", 0, MT_CLI_VALUE, &since_s, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	uint64_t pid = 0, since = 0;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, pos, 2);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!mt_device_id_valid(pos[0], strlen(pos[0])))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a device id", pos[0]);
	if (!mt_cli__parse_u64(pos[1], &pid) || pid > (uint64_t)INT64_MAX)
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a patient id (0 unassigns)",
		                     pos[1]);
	if (!when_parse(since_s != NULL ? since_s : "now", &since))
		return mt_cli__usage(cmd, patient_usage,
		                     "--since: 'now' or YYYY-MM-DDTHH:MM[:SS[.fff]] with Z or +HH:MM");
	return assign_run(cmd, conf, pos[0], pid, pos[1], since);
}

static int patient_unassign(int argc, char **argv)
{
	const char *cmd = "patient unassign", *conf = NULL, *at_s = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"at", 0, MT_CLI_VALUE, &at_s, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	uint64_t at = 0;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!mt_device_id_valid(pos[0], strlen(pos[0])))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a device id", pos[0]);
	if (!when_parse(at_s != NULL ? at_s : "now", &at))
		return mt_cli__usage(cmd, patient_usage,
		                     "--at: 'now' or YYYY-MM-DDTHH:MM[:SS[.fff]] with Z or +HH:MM");
	return assign_run(cmd, conf, pos[0], 0, "0", at);
}

static enum mt_err print_assignment(void *ctx, const struct mt_assignment *a)
{
	char js[6 * (MT_DEVICE_ID_MAX + 1) + 3], t[2][40];

	(void)ctx;
	if (a->open)
		(void)snprintf(t[1], sizeof t[1], "null");
	else
		(void)snprintf(t[1], sizeof t[1], "\"%s\"", iso_ms(a->until_ms, t[0], sizeof t[0]));
	if (printf("{\"dev\":%s,\"patient\":%" PRId64 ",\"since\":\"%s\",\"until\":%s,"
	           "\"since_ms\":%" PRIu64 ",\"until_ms\":%s%" PRIu64 "}\n",
	           mt_deploy_json_str(a->dev, js, sizeof js), a->patient_id,
	           iso_ms(a->since_ms, t[0], sizeof t[0]), t[1], a->since_ms, "",
	           a->open ? 0 : a->until_ms) < 0)
		return MT_ERR_IO;
	return MT_OK;
}

static int patient_assignments(int argc, char **argv)
{
	const char *cmd = "patient assignments", *conf = NULL, *dev = NULL, *pid_s = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"device", 0, MT_CLI_VALUE, &dev, NULL},
	                                  {"patient", 0, MT_CLI_VALUE, &pid_s, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	int64_t pid = 0;
	bool audit_open = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (dev != NULL && pid_s != NULL)
		return mt_cli__usage(cmd, patient_usage, "give --device or --patient, not both");
	if (dev != NULL && !mt_device_id_valid(dev, strlen(dev)))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a device id", dev);
	if (pid_s != NULL && !pid_parse(pid_s, &pid))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a patient id", pid_s);
	rc = MT_EXIT_OK;
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK)
		rc = MT_EXIT_ERROR;
	else if ((e = mt_store_assignments(s, dev, pid, print_assignment, NULL)) != MT_OK)
		rc = mt_cli__error("listing the assignments", e);
	else if (fflush(stdout) != 0)
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

/* ---- patient rule ------------------------------------------------------------ */

static int rule_add(int argc, char **argv)
{
	const char *cmd = "patient rule add", *conf = NULL, *pos[2] = {NULL, NULL}, *why = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	char text[MT_RULE_TEXT_MAX + 1], detail[768], js[6 * (MT_RULE_TEXT_MAX + 1) + 3],
	        subject[48];
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	struct mt_rule rule;
	int64_t pid = 0, rid = 0;
	bool audit_open = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, pos, 2);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!pid_parse(pos[0], &pid))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a patient id", pos[0]);
	if (mt_rule_parse(pos[1], &rule, &why) != MT_OK)
		return mt_cli__usage(cmd, patient_usage, "not a rule: %s (docs/news2.md, \"Rule text\")",
		                     why != NULL ? why : "malformed");
	/* Stored in its canonical form, which reads back to the same rule. */
	if (mt_rule_format(&rule, text, sizeof text) != MT_OK)
		return mt_cli__error("formatting the rule", MT_ERR_INTERNAL);
	rc = MT_EXIT_OK;
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK)
		rc = MT_EXIT_ERROR;
	else if ((e = mt_store_rule_add(s, pid, text, &rid)) == MT_ERR_NOT_FOUND)
		rc = MT_EXIT_REFUSED;
	else if (e != MT_OK)
		rc = mt_cli__error("storing the rule", e);
	(void)snprintf(subject, sizeof subject, "patient:%" PRId64, pid);
	(void)snprintf(detail, sizeof detail,
	               "{\"patient\":%" PRId64 ",\"rule_id\":%" PRId64 ",\"rule\":%s%s}", pid, rid,
	               mt_deploy_json_str(text, js, sizeof js),
	               e == MT_OK ? "" : e == MT_ERR_NOT_FOUND ? ",\"error\":\"no_such_patient\""
	                                                       : ",\"error\":\"error\"");
	rc = audit_rc(d, audit_open, rc,
	              e == MT_ERR_NOT_FOUND ? "patient.rule.add.refused" : "patient.rule.add",
	              subject,
	              e == MT_OK ? MT_AUDIT_OK : e == MT_ERR_NOT_FOUND ? MT_AUDIT_REFUSED
	                                                               : MT_AUDIT_ERROR,
	              detail);
	if (e == MT_ERR_NOT_FOUND)
		fprintf(stderr, "refused: no such patient: %s\n", pos[0]);
	if (rc == MT_EXIT_OK) {
		if (printf("%" PRId64 "\n", rid) < 0 || fflush(stdout) != 0)
			rc = mt_cli__error("writing stdout", MT_ERR_IO);
		fprintf(stderr, "rule %" PRId64 " of patient %" PRId64 ": %s\n", rid, pid, text);
	}
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

static enum mt_err print_rule(void *ctx, const struct mt_patient_rule *r)
{
	char js[6 * (MT_STORE_RULE_MAX + 1) + 3], t[40];

	(void)ctx;
	if (printf("{\"id\":%" PRId64 ",\"patient\":%" PRId64 ",\"rule\":%s,\"created\":\"%s\"}\n",
	           r->id, r->patient_id, mt_deploy_json_str(r->text, js, sizeof js),
	           iso_ms(r->created_ms, t, sizeof t)) < 0)
		return MT_ERR_IO;
	return MT_OK;
}

static int rule_list(int argc, char **argv)
{
	const char *cmd = "patient rule list", *conf = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	int64_t pid = 0;
	bool audit_open = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!pid_parse(pos[0], &pid))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a patient id", pos[0]);
	rc = MT_EXIT_OK;
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK)
		rc = MT_EXIT_ERROR;
	else if ((e = mt_store_rules(s, pid, print_rule, NULL)) != MT_OK)
		rc = mt_cli__error("listing the rules", e);
	else if (fflush(stdout) != 0)
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

static int rule_del(int argc, char **argv)
{
	const char *cmd = "patient rule del", *conf = NULL, *pos[1] = {NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	char detail[128], subject[48];
	int64_t rid = 0, pid = 0;
	bool audit_open = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, pos, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (!pid_parse(pos[0], &rid))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a rule id", pos[0]);
	rc = MT_EXIT_OK;
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK)
		rc = MT_EXIT_ERROR;
	else if ((e = mt_store_rule_del(s, rid, &pid)) == MT_ERR_NOT_FOUND)
		rc = MT_EXIT_REFUSED;
	else if (e != MT_OK)
		rc = mt_cli__error("deleting the rule", e);
	(void)snprintf(subject, sizeof subject, "patient:%" PRId64, pid);
	(void)snprintf(detail, sizeof detail, "{\"patient\":%" PRId64 ",\"rule_id\":%" PRId64 "%s}",
	               pid, rid,
	               e == MT_OK ? "" : e == MT_ERR_NOT_FOUND ? ",\"error\":\"no_such_rule\""
	                                                       : ",\"error\":\"error\"");
	rc = audit_rc(d, audit_open, rc,
	              e == MT_ERR_NOT_FOUND ? "patient.rule.del.refused" : "patient.rule.del",
	              e == MT_OK ? subject : NULL,
	              e == MT_OK ? MT_AUDIT_OK : e == MT_ERR_NOT_FOUND ? MT_AUDIT_REFUSED
	                                                               : MT_AUDIT_ERROR,
	              detail);
	if (e == MT_ERR_NOT_FOUND)
		fprintf(stderr, "refused: no such rule: %s\n", pos[0]);
	else if (rc == MT_EXIT_OK)
		fprintf(stderr, "deleted rule %" PRId64 " of patient %" PRId64 "\n", rid, pid);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

static int patient_rule(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
	        {"add", rule_add}, {"list", rule_list}, {"del", rule_del}, {NULL, NULL}};

	return mt_cli__dispatch("patient rule", patient_usage, patient_help, subs, argc, argv);
}

int mt_cli_patient(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {{"add", patient_add},
	                                         {"edit", patient_edit},
	                                         {"list", patient_list},
	                                         {"show", patient_show},
	                                         {"assign", patient_assign},
	                                         {"unassign", patient_unassign},
	                                         {"assignments", patient_assignments},
	                                         {"rule", patient_rule},
	                                         {NULL, NULL}};

	return mt_cli__dispatch("patient", patient_usage, patient_help, subs, argc, argv);
}
