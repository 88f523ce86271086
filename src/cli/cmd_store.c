/*
 * cmd_store.c — the readings store from the command line (docs/storage.md,
 * docs/cli.md; threats J04, J05):
 *
 *   verify-record [-c CONF] (ID | FIRST-LAST | --all)
 *   patient add --name N --mrn M --ward W [--bed B] [--birth-date D] [-c CONF]
 *   patient list [-c CONF]
 *   patient assign DEVICE PATIENT_ID [-c CONF]
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
 * patient: identities are encrypted at rest; `list` decrypts them for the
 * operator (and is audited as `patient.list`, a read of identities).  No
 * audit record ever carries a name or MRN: patients are named by id.
 * Exit codes: 0; 1 a deployment, store or key failure; 2 refused (unknown
 * device or patient, an assignment earlier than the current one); 64
 * usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "medtrust/mt_cbor.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_util.h"
#include "medtrust/mt_verify.h"

#define EXIT_VERIFY_FAILED 1
#define EXIT_VERIFY_UNUSABLE 2

static const char verify_usage[] = "medtrust verify-record [-c CONF] (ID | FIRST-LAST | --all)";
static const char patient_usage[] = "medtrust patient add|list|assign ... [-c CONF]";

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
        "usage: medtrust patient add --name N --mrn M --ward W [--bed B]\n"
        "                            [--birth-date YYYY-MM-DD] [-c CONF]\n"
        "       medtrust patient list [-c CONF]\n"
        "       medtrust patient assign DEVICE PATIENT_ID [-c CONF]\n"
        "\n"
        "add stores a patient (name, MRN and birth date encrypted at rest; ward\n"
        "and bed in the clear) and prints the new id.  list prints every patient,\n"
        "decrypted, as JSON lines.  assign ties DEVICE (a device of the registry)\n"
        "to PATIENT_ID from now on, ending its previous assignment; 0 unassigns.\n"
        "Readings are tied to the patient their device is assigned to at the\n"
        "reading's time.  Every command writes an audit record naming patients\n"
        "by id only.\n"
        "\n"
        "  --name N          1-256 bytes        --mrn M    medical record number\n"
        "  --ward W          1-64 bytes         --bed B    0-32 bytes\n"
        "  --birth-date D    YYYY-MM-DD\n"
        "  -c, --config CONF the deployment's medtrust.conf\n"
        "\n"
        "Exit codes: 0; 1 a deployment, store or key failure; 2 refused (unknown\n"
        "device or patient); 64 usage.\n";

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

static bool date_ok(const char *t)
{
	if (strlen(t) != 10 || t[4] != '-' || t[7] != '-')
		return false;
	for (size_t i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (t[i] < '0' || t[i] > '9'))
			return false;
	int m = (t[5] - '0') * 10 + (t[6] - '0'), day = (t[8] - '0') * 10 + (t[9] - '0');
	return m >= 1 && m <= 12 && day >= 1 && day <= 31;
}

static int patient_add(int argc, char **argv)
{
	const char *cmd = "patient add", *conf = NULL, *name = NULL, *mrn = NULL, *ward = NULL,
	           *bed = NULL, *birth = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {"name", 0, MT_CLI_VALUE, &name, NULL},
	                                  {"mrn", 0, MT_CLI_VALUE, &mrn, NULL},
	                                  {"ward", 0, MT_CLI_VALUE, &ward, NULL},
	                                  {"bed", 0, MT_CLI_VALUE, &bed, NULL},
	                                  {"birth-date", 0, MT_CLI_VALUE, &birth, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_patient *p = NULL;
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	char detail[512], subject[48], js[3][420];
	int64_t id = 0;
	bool audit_open = false;
	enum mt_err e, ae;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	rc = MT_EXIT_OK;
	if (name == NULL || mrn == NULL || ward == NULL)
		return mt_cli__usage(cmd, patient_usage, "--name, --mrn and --ward are required");
	if (!field_ok(name, MT_STORE_TEXT_MAX, false))
		return mt_cli__usage(cmd, patient_usage, "--name: 1-%d bytes of UTF-8, no control "
		                     "characters", MT_STORE_TEXT_MAX);
	if (!field_ok(mrn, MT_STORE_TEXT_MAX, false))
		return mt_cli__usage(cmd, patient_usage, "--mrn: 1-%d bytes of UTF-8, no control "
		                     "characters", MT_STORE_TEXT_MAX);
	if (!field_ok(ward, sizeof p->ward - 1, false))
		return mt_cli__usage(cmd, patient_usage, "--ward: 1-%zu bytes of UTF-8",
		                     sizeof p->ward - 1);
	if (bed != NULL && !field_ok(bed, sizeof p->bed - 1, true))
		return mt_cli__usage(cmd, patient_usage, "--bed: at most %zu bytes of UTF-8",
		                     sizeof p->bed - 1);
	if (birth != NULL && !date_ok(birth))
		return mt_cli__usage(cmd, patient_usage, "--birth-date: give YYYY-MM-DD");
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return mt_cli__error(cmd, MT_ERR_NOMEM);
	memcpy(p->name, name, strlen(name));
	memcpy(p->mrn, mrn, strlen(mrn));
	if (birth != NULL)
		memcpy(p->birth_date, birth, strlen(birth));
	memcpy(p->ward, ward, strlen(ward));
	if (bed != NULL)
		memcpy(p->bed, bed, strlen(bed));
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
	} else {
		e = mt_store_patient_add(s, p, &id);
		if (e != MT_OK)
			rc = mt_cli__error("storing the patient", e);
	}
	if (audit_open) {
		(void)snprintf(subject, sizeof subject, "patient:%" PRId64, id);
		(void)snprintf(detail, sizeof detail, "{\"patient\":%" PRId64 ",\"ward\":%s,\"bed\":%s%s%s}",
		               id, mt_deploy_json_str(p->ward, js[0], sizeof js[0]),
		               mt_deploy_json_str(p->bed, js[1], sizeof js[1]),
		               e == MT_OK ? "" : ",\"error\":",
		               e == MT_OK ? "" : mt_deploy_json_str(mt_err_str(e), js[2], sizeof js[2]));
		ae = audit(d, "patient.add", e == MT_OK ? subject : NULL,
		           e == MT_OK ? MT_AUDIT_OK : MT_AUDIT_ERROR, detail);
		if (ae != MT_OK && rc == MT_EXIT_OK)
			rc = mt_cli__error("writing the audit record", ae);
	}
	if (rc == MT_EXIT_OK && (printf("%" PRId64 "\n", id) < 0 || fflush(stdout) != 0))
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	mt_wipe(p, sizeof *p);
	free(p);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

static int patient_list(int argc, char **argv)
{
	const char *cmd = "patient list", *conf = NULL;
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	struct mt_patient *p = NULL;
	int64_t *ids = NULL;
	size_t n = 0, got = 0;
	char detail[128];
	bool audit_open = false;
	enum mt_err e;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, NULL, 0);

	if (rc != MT_CLI_CONTINUE)
		return rc;
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
	(void)snprintf(detail, sizeof detail, "{\"patients\":%zu}", e == MT_OK ? n : 0);
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
		/* every field may become \u escapes: 6 bytes per input byte */
		char js[5][6 * (MT_STORE_TEXT_MAX + 1) + 3];

		e = mt_store_patient_get(s, ids[i], p);
		if (e != MT_OK) {
			fprintf(stderr, "error: patient %" PRId64 ": %s\n", ids[i], mt_err_str(e));
			rc = MT_EXIT_ERROR;
			continue;
		}
		printf("{\"id\":%" PRId64 ",\"ward\":%s,\"bed\":%s,\"name\":%s,\"mrn\":%s,"
		       "\"birth_date\":%s}\n",
		       p->id, mt_deploy_json_str(p->ward, js[0], sizeof js[0]),
		       mt_deploy_json_str(p->bed, js[1], sizeof js[1]),
		       mt_deploy_json_str(p->name, js[2], sizeof js[2]),
		       mt_deploy_json_str(p->mrn, js[3], sizeof js[3]),
		       mt_deploy_json_str(p->birth_date, js[4], sizeof js[4]));
		mt_wipe(js, sizeof js);
	}
	if (fflush(stdout) != 0)
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
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

static int patient_assign(int argc, char **argv)
{
	const char *cmd = "patient assign", *conf = NULL, *pos[2] = {NULL, NULL};
	const struct mt_cli_opt opts[] = {{"config", 'c', MT_CLI_VALUE, &conf, NULL},
	                                  {NULL, 0, MT_CLI_VALUE, NULL, NULL}};
	struct mt_device_rec rec;
	struct mt_deploy *d = NULL;
	struct mt_store *s = NULL;
	uint64_t pid = 0, since = mt_deploy_now_ms();
	char detail[512], js[160];
	const char *refusal = NULL, *refused = NULL;
	bool audit_open = false;
	enum mt_err e = MT_OK, ae;
	int rc = mt_cli__parse_operands(cmd, patient_usage, patient_help, argc, argv, opts, pos, 2);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	rc = MT_EXIT_OK;
	if (!mt_device_id_valid(pos[0], strlen(pos[0])))
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a device id", pos[0]);
	if (!mt_cli__parse_u64(pos[1], &pid) || pid > (uint64_t)INT64_MAX)
		return mt_cli__usage(cmd, patient_usage, "'%s' is not a patient id (0 unassigns)",
		                     pos[1]);
	e = open_all(conf, &d, &s, &audit_open);
	if (e != MT_OK) {
		rc = MT_EXIT_ERROR;
		goto audit_it;
	}
	e = mt_registry_device(d->reg, pos[0], &rec);
	if (e == MT_ERR_REG_UNKNOWN) {
		refusal = "no such device in the registry";
		refused = pos[0];
	} else if (e == MT_OK) {
		e = mt_store_assign(s, pos[0], (int64_t)pid, since);
		if (e == MT_ERR_NOT_FOUND) {
			refusal = "no such patient";
			refused = pos[1];
		} else if (e == MT_ERR_ARG) {
			refusal = "the device's current assignment starts later than now";
			refused = pos[0];
		}
	}
	if (refusal != NULL)
		rc = MT_EXIT_REFUSED;
	else if (e != MT_OK)
		rc = mt_cli__error("assigning the device", e);
audit_it:
	if (audit_open) {
		(void)snprintf(detail, sizeof detail,
		               "{\"patient\":%" PRIu64 ",\"since_ms\":%" PRIu64 "%s%s}", pid, since,
		               e == MT_OK ? "" : ",\"error\":",
		               e == MT_OK ? ""
		                          : mt_deploy_json_str(refusal ? refusal : mt_err_str(e), js,
		                                               sizeof js));
		ae = audit(d, e == MT_OK ? "patient.assign" : "patient.assign.refused", pos[0],
		           e == MT_OK ? MT_AUDIT_OK : refusal ? MT_AUDIT_REFUSED : MT_AUDIT_ERROR,
		           detail);
		if (ae != MT_OK && rc == MT_EXIT_OK)
			rc = mt_cli__error("writing the audit record", ae);
	}
	if (refusal != NULL)
		fprintf(stderr, "refused: %s: %s\n", refusal, refused);
	else if (rc == MT_EXIT_OK && pid == 0)
		fprintf(stderr, "unassigned %s\n", pos[0]);
	else if (rc == MT_EXIT_OK)
		fprintf(stderr, "assigned %s to patient %" PRIu64 "\n", pos[0], pid);
	mt_store_close(s);
	mt_deploy_close(d);
	return rc;
}

int mt_cli_patient(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
	        {"add", patient_add}, {"list", patient_list}, {"assign", patient_assign}, {NULL, NULL}};

	return mt_cli__dispatch("patient", patient_usage, patient_help, subs, argc, argv);
}
