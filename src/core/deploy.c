/*
 * deploy.c — opening a hub deployment from its medtrust.conf (mt_deploy.h).
 *
 * This file glues the pieces `medtrust init` made: the configuration
 * reader (config.c), the registry (registry.c), the audit writer
 * (audit.c over audit_sqlite.c), the key store and the CA.  It owns no
 * policy of its own beyond two: the CRL it writes always covers every
 * revoked certificate still unexpired (a CRL is rebuilt from the
 * registry, never patched), and it is replaced atomically, so a reader
 * (the broker, openssl, a device) sees the old CRL or the new one, never
 * half of one.
 *
 * The readings store (mt_store.h) is opened here too, because it needs
 * the deployment's KEK: the KEK is opened once and kept, and every call
 * of mt_deploy_open_store gives a new connection (the hub holds a writer
 * and a reader) on data_path, by default data.db beside db_path.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "medtrust/mt_deploy.h"
#include "medtrust/mt_util.h"

const char *const mt_deploy_keys[] = {
        "hospital",        "softhsm2_conf",   "ca_key",       "hub_tls_key",
        "broker_tls_key",  "kx_key",          "cmd_key",      "audit_key",
        "kek_key",         "ca_cert",         "hub_tls_cert", "broker_tls_cert",
        "hub_client_cert", "cmd_cert",        "hub_kx_pub",   "audit_pub",
        "crl",             "hub_hosts",       "broker_hosts", "db_path",
        "audit_checkpoints", "mosquitto_conf", "broker_port",
        /* optional, with defaults (mt_deploy.h) */
        "hub_listen",      "hub_port",        "hub_threads",  "broker_url",
        "op_cert_days",    "crl_days",        "est_rate",     "est_burst",
        "revoke_hook",     "data_path",
        /* the clinical layer (docs/alarms.md, docs/hl7.md, docs/fhir.md) */
        "alarm_escalate_s", "news2_fresh_s", "hl7_dest",     "hl7_app",
        "hl7_facility",    "hl7_ack_timeout_s", "fhir_mrn_system", "hub_url",
        /* the web console (docs/console.md) */
        "console_reauth_s", "console_admin_mfa",
};
const size_t mt_deploy_n_keys = sizeof mt_deploy_keys / sizeof mt_deploy_keys[0];

static const char *const required[] = {"db_path", "ca_cert", "crl"};

int64_t mt_deploy_now(void)
{
	return (int64_t)time(NULL);
}

uint64_t mt_deploy_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

enum mt_err mt_deploy_open(const char *conf_path, struct mt_deploy **out, char *why,
                           size_t why_cap)
{
	struct mt_deploy *d;
	unsigned line = 0;
	const char *hsm;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (conf_path == NULL)
		conf_path = getenv("MEDTRUST_CONFIG");
	if (conf_path == NULL || conf_path[0] == '\0')
		conf_path = "medtrust.conf";
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return MT_ERR_NOMEM;
	e = mt_config_load(conf_path, mt_deploy_keys, mt_deploy_n_keys, &d->conf, &line);
	if (e != MT_OK) {
		if (line > 0)
			mt_say(why, why_cap, "%s line %u: %s", conf_path, line, mt_err_str(e));
		else
			mt_say(why, why_cap, "%s: %s", conf_path, mt_err_str(e));
		mt_deploy_close(d);
		return e;
	}
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
		if (mt_config_get(d->conf, required[i]) == NULL) {
			mt_say(why, why_cap, "%s: the key '%s' is missing", conf_path, required[i]);
			mt_deploy_close(d);
			return MT_ERR_ARG;
		}
	}
	hsm = mt_config_get(d->conf, "softhsm2_conf");
	if (hsm != NULL && setenv("SOFTHSM2_CONF", hsm, 1) != 0) {
		mt_deploy_close(d);
		return MT_ERR_IO;
	}
	e = mt_registry_open(mt_config_get(d->conf, "db_path"), &d->reg);
	if (e != MT_OK) {
		mt_say(why, why_cap, "%s: cannot open the registry", mt_config_get(d->conf, "db_path"));
		mt_deploy_close(d);
		return e;
	}
	*out = d;
	return MT_OK;
}

void mt_deploy_close(struct mt_deploy *d)
{
	if (d == NULL)
		return;
	mt_audit_close(d->audit);
	mt_key_free(d->audit_key);
	mt_key_free(d->ca_key);
	mt_cert_free(d->ca_cert);
	mt_kek_free(d->kek);
	mt_registry_close(d->reg);
	mt_config_free(d->conf);
	free(d);
}

const char *mt_deploy_get(const struct mt_deploy *d, const char *key)
{
	return mt_config_get(d->conf, key);
}

enum mt_err mt_deploy_uint(const struct mt_deploy *d, const char *key, uint64_t dflt,
                           uint64_t max, uint64_t *out)
{
	const char *v = mt_config_get(d->conf, key);
	uint64_t x = 0;

	if (v == NULL) {
		*out = dflt;
		return MT_OK;
	}
	if (*v == '\0')
		return MT_ERR_ARG;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9' || x > (UINT64_MAX - 9) / 10)
			return MT_ERR_ARG;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (x < 1 || x > max)
		return MT_ERR_ARG;
	*out = x;
	return MT_OK;
}

enum mt_err mt_deploy_open_audit(struct mt_deploy *d)
{
	struct mt_audit_config cfg = {0, 0, mt_config_get(d->conf, "audit_checkpoints")};
	struct mt_audit_store *store = NULL;
	const char *uri = mt_config_get(d->conf, "audit_key");
	enum mt_err e;

	if (d->audit != NULL)
		return MT_OK;
	if (uri == NULL)
		return MT_ERR_ARG;
	e = mt_key_open(uri, &d->audit_key);
	if (e == MT_OK)
		e = mt_audit_sqlite_open(mt_config_get(d->conf, "db_path"), &store);
	if (e == MT_OK)
		e = mt_audit_open(store, d->audit_key, &cfg, &d->audit); /* takes the store */
	return e;
}

enum mt_err mt_deploy_open_ca(struct mt_deploy *d)
{
	const char *uri = mt_config_get(d->conf, "ca_key");
	enum mt_err e;

	if (d->ca_key != NULL)
		return MT_OK;
	if (uri == NULL)
		return MT_ERR_ARG;
	e = mt_cert_from_pem_file(mt_config_get(d->conf, "ca_cert"), &d->ca_cert);
	if (e == MT_OK)
		e = mt_key_open(uri, &d->ca_key);
	return e;
}

enum mt_err mt_deploy_data_path(const struct mt_deploy *d, char *out, size_t cap)
{
	const char *v, *db, *slash;
	int n;

	if (d == NULL || out == NULL || cap == 0)
		return MT_ERR_ARG;
	v = mt_config_get(d->conf, "data_path");
	if (v != NULL) {
		n = snprintf(out, cap, "%s", v);
	} else {
		db = mt_config_get(d->conf, "db_path");
		if (db == NULL)
			return MT_ERR_ARG;
		slash = strrchr(db, '/');
		if (slash == NULL)
			n = snprintf(out, cap, "data.db");
		else
			n = snprintf(out, cap, "%.*s/data.db", (int)(slash - db), db);
	}
	return n > 0 && (size_t)n < cap ? MT_OK : MT_ERR_BUFFER;
}

enum mt_err mt_deploy_open_store(struct mt_deploy *d, struct mt_store **out)
{
	char path[PATH_MAX];
	const char *uri;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (d == NULL)
		return MT_ERR_ARG;
	e = mt_deploy_data_path(d, path, sizeof path);
	if (e != MT_OK)
		return e;
	if (d->kek == NULL) {
		uri = mt_config_get(d->conf, "kek_key");
		if (uri == NULL)
			return MT_ERR_ARG;
		e = mt_kek_open(uri, &d->kek);
		if (e != MT_OK)
			return e;
	}
	return mt_store_open(path, d->kek, out);
}

enum mt_err mt_deploy_audit(struct mt_deploy *d, const char *actor, const char *action,
                            const char *subject, enum mt_audit_outcome outcome,
                            const char *detail)
{
	struct mt_audit_event ev = {actor, action, subject, outcome, detail};

	if (d->audit == NULL)
		return MT_ERR_ARG;
	return mt_audit_append(d->audit, mt_deploy_now_ms(), &ev, NULL);
}

char *mt_deploy_json_str(const char *s, char *out, size_t cap)
{
	static const char hx[] = "0123456789abcdef";
	size_t o = 0;

	if (cap < 3) {
		if (cap > 0)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		char esc[7];
		size_t k = 0;

		if (*p == '"' || *p == '\\') {
			esc[k++] = '\\';
			esc[k++] = (char)*p;
		} else if (*p < 0x20 || *p == 0x7f) {
			esc[k++] = '\\';
			esc[k++] = 'u';
			esc[k++] = '0';
			esc[k++] = '0';
			esc[k++] = hx[*p >> 4];
			esc[k++] = hx[*p & 15];
		} else {
			esc[k++] = (char)*p;
		}
		if (o + k + 2 > cap)
			break;
		memcpy(out + o, esc, k);
		o += k;
	}
	/* Never end inside a UTF-8 sequence. */
	while (o > 1 && ((unsigned char)out[o - 1] & 0xc0) == 0x80)
		o--;
	if (o > 1 && ((unsigned char)out[o - 1] & 0xc0) == 0xc0)
		o--;
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

enum mt_err mt_deploy_crl_refresh(struct mt_deploy *d, int64_t now, int64_t *next_update)
{
	struct mt_registry_revoked *list = NULL;
	struct mt_pki_revoked *rv = NULL;
	struct mt_pki_crl_opts o = {0};
	uint64_t days;
	size_t n = 0, cap, der_len = 0;
	uint8_t *der = NULL;
	BIO *bio = NULL;
	BUF_MEM *mem;
	enum mt_err e;

	if (d->ca_key == NULL)
		return MT_ERR_ARG;
	e = mt_deploy_uint(d, "crl_days", MT_DEPLOY_CRL_DAYS, 365, &days);
	if (e == MT_OK)
		e = mt_registry_revoked_list(d->reg, now, &list, &n);
	if (e != MT_OK)
		return e;
	rv = calloc(n ? n : 1, sizeof *rv);
	cap = 4096 + n * 64;
	der = malloc(cap);
	if (rv == NULL || der == NULL) {
		e = MT_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rv[i].serial = list[i].serial;
		rv[i].serial_len = list[i].serial_len;
		rv[i].when = list[i].when;
		rv[i].reason = list[i].reason;
	}
	o.revoked = rv;
	o.n_revoked = n;
	o.this_update = now;
	o.next_update = now + (int64_t)days * 86400;
	e = mt_registry_crl_next(d->reg, o.next_update, &o.crl_number);
	if (e == MT_OK)
		e = mt_pki_crl_create(d->ca_key, d->ca_cert, &o, der, cap, &der_len);
	if (e != MT_OK)
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio(bio, "X509 CRL", "", der, (long)der_len) <= 0) {
		e = MT_ERR_CRYPTO;
		goto out;
	}
	BIO_get_mem_ptr(bio, &mem);
	e = mt_file_replace(mt_config_get(d->conf, "crl"), mem->data, mem->length, 0644);
	if (e == MT_OK && next_update != NULL)
		*next_update = o.next_update;
out:
	BIO_free(bio);
	free(der);
	free(rv);
	mt_registry_revoked_free(list);
	return e;
}

enum mt_err mt_deploy_revoke_hook(struct mt_deploy *d, const char *device, const char *reason)
{
	const char *hook = mt_config_get(d->conf, "revoke_hook");
	int status;
	pid_t pid;

	if (hook == NULL)
		return MT_OK;
	pid = fork();
	if (pid < 0)
		return MT_ERR_IO;
	if (pid == 0) {
		char *const argv[] = {(char *)hook, (char *)device, (char *)reason, NULL};

		execv(hook, argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return MT_ERR_IO;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? MT_OK : MT_ERR_IO;
}
