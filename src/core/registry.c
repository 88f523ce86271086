/*
 * registry.c — the device registry in SQLite (mt_registry.h,
 * docs/registry.md).
 *
 * Tables (created when missing, in the deployment's medtrust.db):
 *
 *   manufacturers(id, name, root_der, root_sha256 UNIQUE, added_at)
 *   manifests(id, sha256 UNIQUE, manufacturer_id, entries, imported_at)
 *   devices(serial PRIMARY KEY, class, manufacturer_id, manifest_id,
 *           birth_kid, birth_cert_sha256, status, status_reason,
 *           ldev_spki, kx_spki, epoch, cert_serial, cert_not_after,
 *           enrolled_at, updated_at)
 *   certs(serial PRIMARY KEY, device, not_before, not_after, issued_at,
 *         revoked_at, reason, der)
 *   crl_state(id = 1, number, next_update)
 *   device_commands(serial PRIMARY KEY, counter, command, sent_at): the
 *           last downlink command counter taken per device (protocol §6)
 *
 * Why the registry checks a manifest's chain itself rather than trusting
 * the caller: a manifest is the whitelist that lets devices in, so the
 * decision "this manifest is the manufacturer's" belongs next to the
 * write that records it, in one place that the CLI and the hub share.
 * Every multi-row change runs in one BEGIN IMMEDIATE transaction, so a
 * refused manifest leaves nothing behind (imported whole or not at all)
 * and two processes never interleave half-changes.
 *
 * Roots are cached in memory and reloaded when the manufacturers table
 * changed (its max(id)), so a hub sees a manufacturer added by the CLI
 * at its next enrolment without a restart.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "medtrust/mt_registry.h"
#include "medtrust/mt_util.h"
#include "pki_int.h"

struct mt_registry {
	sqlite3 *db;
	struct mt_cert *roots[MT_REG_ROOTS_MAX];
	int64_t root_ids[MT_REG_ROOTS_MAX];
	size_t n_roots;
	int64_t roots_max_id; /* -1: not loaded */
};

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS manufacturers("
        " id INTEGER PRIMARY KEY, name TEXT NOT NULL, root_der BLOB NOT NULL,"
        " root_sha256 BLOB NOT NULL UNIQUE, added_at INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS manifests("
        " id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL UNIQUE,"
        " manufacturer_id INTEGER NOT NULL REFERENCES manufacturers(id),"
        " entries INTEGER NOT NULL, imported_at INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS devices("
        " serial TEXT PRIMARY KEY, class TEXT NOT NULL,"
        " manufacturer_id INTEGER NOT NULL REFERENCES manufacturers(id),"
        " manifest_id INTEGER NOT NULL REFERENCES manifests(id),"
        " birth_kid BLOB NOT NULL, birth_cert_sha256 BLOB NOT NULL,"
        " status INTEGER NOT NULL CHECK(status BETWEEN 1 AND 5),"
        " status_reason TEXT NOT NULL DEFAULT '',"
        " ldev_spki BLOB, kx_spki BLOB, epoch INTEGER NOT NULL DEFAULT 0,"
        " cert_serial TEXT, cert_not_after INTEGER NOT NULL DEFAULT 0,"
        " enrolled_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS certs("
        " serial TEXT PRIMARY KEY, device TEXT NOT NULL REFERENCES devices(serial),"
        " not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
        " issued_at INTEGER NOT NULL, revoked_at INTEGER NOT NULL DEFAULT 0,"
        " reason INTEGER NOT NULL DEFAULT 0, der BLOB NOT NULL);"
        "CREATE INDEX IF NOT EXISTS certs_device ON certs(device);"
        "CREATE INDEX IF NOT EXISTS certs_revoked ON certs(revoked_at) WHERE revoked_at > 0;"
        "CREATE TABLE IF NOT EXISTS crl_state("
        " id INTEGER PRIMARY KEY CHECK(id = 1), number INTEGER NOT NULL,"
        " next_update INTEGER NOT NULL);"
        /* Added with downlink commands: a table of its own, so a database
         * of before gains it here (IF NOT EXISTS) without an ALTER. */
        "CREATE TABLE IF NOT EXISTS device_commands("
        " serial TEXT PRIMARY KEY REFERENCES devices(serial),"
        " counter INTEGER NOT NULL, command INTEGER NOT NULL, sent_at INTEGER NOT NULL);";

const char *mt_dev_status_name(enum mt_dev_status s)
{
	switch (s) {
	case MT_DEV_MANIFESTED: return "manifested";
	case MT_DEV_ACTIVE: return "active";
	case MT_DEV_REVOKED: return "revoked";
	case MT_DEV_DECOMMISSIONED: return "decommissioned";
	case MT_DEV_RELEASED: return "released";
	}
	return "?";
}

/* ---- small SQLite helpers ---------------------------------------------- */

static enum mt_err exec(struct mt_registry *r, const char *sql)
{
	return sqlite3_exec(r->db, sql, NULL, NULL, NULL) == SQLITE_OK ? MT_OK : MT_ERR_REG_DB;
}

static enum mt_err begin(struct mt_registry *r)
{
	return exec(r, "BEGIN IMMEDIATE");
}

/* COMMIT on success, ROLLBACK otherwise; returns e or the commit's error. */
static enum mt_err finish(struct mt_registry *r, enum mt_err e)
{
	if (e == MT_OK) {
		e = exec(r, "COMMIT");
		if (e == MT_OK)
			return MT_OK;
	}
	(void)sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	return e;
}

static enum mt_err prep(struct mt_registry *r, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(r->db, sql, -1, st, NULL) == SQLITE_OK ? MT_OK : MT_ERR_REG_DB;
}

/* Run a statement that returns no rows, then finalize it. */
static enum mt_err run_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? MT_OK : MT_ERR_REG_DB;
}

/* The first column of the first row of `sql` (no parameters).  MT_ERR_NOT_FOUND:
 * no row. */
static enum mt_err query_int64(struct mt_registry *r, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	enum mt_err e = prep(r, sql, &st);
	int rc;

	if (e != MT_OK)
		return e;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	e = rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}

static void copy_text(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;

	if (n >= cap)
		n = cap - 1;
	if (n > 0)
		memcpy(out, t, n);
	out[n] = '\0';
}

/* Copy a blob column of exactly `want` bytes (0 = up to cap, length in *len). */
static bool copy_blob(sqlite3_stmt *st, int col, uint8_t *out, size_t cap, size_t *len)
{
	const void *b = sqlite3_column_blob(st, col);
	size_t n = b ? (size_t)sqlite3_column_bytes(st, col) : 0;

	if (n > cap)
		return false;
	if (n > 0)
		memcpy(out, b, n);
	if (len)
		*len = n;
	return true;
}

/* ---- open / close ------------------------------------------------------ */

/* A handle on the database at `path` opened with `flags` (NOMUTEX added:
 * one thread at a time) and a busy timeout; *out is NULL on failure. */
static enum mt_err registry_new(const char *path, int flags, int busy_ms,
                                struct mt_registry **out)
{
	struct mt_registry *r;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (path == NULL)
		return MT_ERR_ARG;
	r = calloc(1, sizeof *r);
	if (r == NULL)
		return MT_ERR_NOMEM;
	r->roots_max_id = -1;
	if (sqlite3_open_v2(path, &r->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		mt_registry_close(r);
		return MT_ERR_REG_DB;
	}
	sqlite3_busy_timeout(r->db, busy_ms);
	*out = r;
	return MT_OK;
}

enum mt_err mt_registry_open(const char *path, struct mt_registry **out)
{
	struct mt_registry *r;
	enum mt_err e = registry_new(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 30000, &r);

	if (e != MT_OK)
		return e;
	e = exec(r, "PRAGMA journal_mode=WAL");
	if (e == MT_OK)
		e = exec(r, "PRAGMA synchronous=FULL");
	if (e == MT_OK)
		e = exec(r, "PRAGMA foreign_keys=ON");
	if (e == MT_OK) {
		e = begin(r);
		if (e == MT_OK)
			e = finish(r, exec(r, schema));
	}
	if (e != MT_OK) {
		mt_registry_close(r);
		return e;
	}
	*out = r;
	return MT_OK;
}

static void roots_clear(struct mt_registry *r)
{
	for (size_t i = 0; i < r->n_roots; i++)
		mt_cert_free(r->roots[i]);
	r->n_roots = 0;
	r->roots_max_id = -1;
}

void mt_registry_close(struct mt_registry *r)
{
	if (r == NULL)
		return;
	roots_clear(r);
	sqlite3_close(r->db);
	free(r);
}

/* ---- manufacturers ----------------------------------------------------- */

static enum mt_err roots_load(struct mt_registry *r)
{
	sqlite3_stmt *st;
	int64_t max_id = 0;
	enum mt_err e = query_int64(r, "SELECT coalesce(max(id), 0) FROM manufacturers", &max_id);

	if (e != MT_OK)
		return e == MT_ERR_NOT_FOUND ? MT_ERR_REG_DB : e;
	if (max_id == r->roots_max_id)
		return MT_OK;
	roots_clear(r);
	e = prep(r, "SELECT id, root_der FROM manufacturers ORDER BY id", &st);
	if (e != MT_OK)
		return e;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct mt_cert *c;

		if (r->n_roots == MT_REG_ROOTS_MAX)
			break;
		if (mt_cert_from_der(sqlite3_column_blob(st, 1),
		                     (size_t)sqlite3_column_bytes(st, 1), &c) != MT_OK)
			continue; /* a row we cannot read trusts nothing */
		r->root_ids[r->n_roots] = sqlite3_column_int64(st, 0);
		r->roots[r->n_roots++] = c;
	}
	sqlite3_finalize(st);
	r->roots_max_id = max_id;
	return MT_OK;
}

enum mt_err mt_registry_roots(struct mt_registry *r, const struct mt_cert *const **roots,
                              const int64_t **ids, size_t *n)
{
	enum mt_err e = roots_load(r);

	if (e != MT_OK)
		return e;
	*roots = (const struct mt_cert *const *)r->roots;
	*ids = r->root_ids;
	*n = r->n_roots;
	return MT_OK;
}

/* A self-signed CA certificate, valid at `now`, whose signature verifies
 * with its own key: what may be a manufacturer root. */
static enum mt_err check_root(const struct mt_cert *root, int64_t now)
{
	X509 *x = mt_cert__x509(root);
	EVP_PKEY *pk = X509_get0_pubkey(x);
	int64_t nb, na;

	if (pk == NULL || X509_check_issued(x, x) != X509_V_OK || X509_check_ca(x) != 1 ||
	    X509_verify(x, pk) != 1)
		return MT_ERR_PKI_ISSUER;
	if (mt_cert_validity(root, &nb, &na) != MT_OK)
		return MT_ERR_PKI_FORMAT;
	if (now < nb)
		return MT_ERR_PKI_NOT_YET_VALID;
	if (now > na)
		return MT_ERR_PKI_EXPIRED;
	return MT_OK;
}

enum mt_err mt_registry_add_manufacturer(struct mt_registry *r, const struct mt_cert *root,
                                         int64_t now, int64_t *id, bool *existed)
{
	uint8_t fp[MT_PKI_FINGERPRINT_LEN];
	char name[MT_REG_NAME_MAX + 1];
	const uint8_t *der;
	size_t der_len;
	sqlite3_stmt *st;
	enum mt_err e;

	if (r == NULL || root == NULL || id == NULL || existed == NULL)
		return MT_ERR_ARG;
	*existed = false;
	e = check_root(root, now);
	if (e == MT_OK)
		e = mt_cert_fingerprint(root, fp);
	if (e != MT_OK)
		return e;
	if (mt_cert_subject_cn(root, name, sizeof name) != MT_OK)
		(void)snprintf(name, sizeof name, "(no CN)");
	der = mt_cert_der(root, &der_len);
	e = begin(r);
	if (e != MT_OK)
		return e;
	e = prep(r, "SELECT id FROM manufacturers WHERE root_sha256 = ?", &st);
	if (e == MT_OK) {
		sqlite3_bind_blob(st, 1, fp, sizeof fp, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*id = sqlite3_column_int64(st, 0);
			*existed = true;
		}
		sqlite3_finalize(st);
	}
	if (e == MT_OK && !*existed) {
		e = prep(r, "SELECT count(*) FROM manufacturers", &st);
		if (e == MT_OK) {
			if (sqlite3_step(st) != SQLITE_ROW)
				e = MT_ERR_REG_DB;
			else if (sqlite3_column_int64(st, 0) >= MT_REG_ROOTS_MAX)
				e = MT_ERR_BUFFER;
			sqlite3_finalize(st);
		}
	}
	if (e == MT_OK && !*existed) {
		e = prep(r,
		         "INSERT INTO manufacturers(name, root_der, root_sha256, added_at) "
		         "VALUES (?, ?, ?, ?)",
		         &st);
		if (e == MT_OK) {
			sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
			sqlite3_bind_blob(st, 2, der, (int)der_len, SQLITE_STATIC);
			sqlite3_bind_blob(st, 3, fp, sizeof fp, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, now);
			e = run_done(st);
			*id = sqlite3_last_insert_rowid(r->db);
		}
	}
	return finish(r, e);
}

enum mt_err mt_registry_chain_to_root(struct mt_registry *r, const struct mt_cert *leaf,
                                      const struct mt_cert *const *intermediates,
                                      size_t n_intermediates, enum mt_pki_purpose purpose,
                                      int64_t now, int64_t *mfg_id)
{
	struct mt_pki_verify_opts o = {0};
	enum mt_err first = MT_ERR_PKI_UNTRUSTED;
	enum mt_err e = roots_load(r);

	if (e != MT_OK)
		return e;
	o.at = now;
	o.purpose = purpose;
	o.intermediates = intermediates;
	o.n_intermediates = n_intermediates;
	/* One root at a time, so that the answer says which manufacturer. */
	for (size_t i = 0; i < r->n_roots; i++) {
		const struct mt_cert *one[1] = {r->roots[i]};

		e = mt_pki_verify(leaf, one, 1, &o);
		if (e == MT_OK) {
			*mfg_id = r->root_ids[i];
			return MT_OK;
		}
		/* "untrusted" says least; keep a more telling verdict. */
		if (first == MT_ERR_PKI_UNTRUSTED)
			first = e;
	}
	return first;
}

/* ---- manifests --------------------------------------------------------- */

/* The existing row for one manifest entry, if any. */
struct existing {
	bool found;
	int64_t manufacturer_id;
	uint8_t kid[MT_KID_LEN];
	uint8_t cert_sha[32];
	enum mt_dev_status status;
};

static enum mt_err entry_lookup(struct mt_registry *r, sqlite3_stmt *st, const char *serial,
                                struct existing *x)
{
	int rc;

	memset(x, 0, sizeof *x);
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return MT_OK;
	if (rc != SQLITE_ROW)
		return MT_ERR_REG_DB;
	x->found = true;
	x->manufacturer_id = sqlite3_column_int64(st, 0);
	if (!copy_blob(st, 1, x->kid, sizeof x->kid, NULL) ||
	    !copy_blob(st, 2, x->cert_sha, sizeof x->cert_sha, NULL))
		return MT_ERR_REG_DB;
	x->status = (enum mt_dev_status)sqlite3_column_int(st, 3);
	(void)r;
	return MT_OK;
}

static enum mt_err import_entries(struct mt_registry *r, const struct mt_manifest *m,
                                  int64_t now, struct mt_registry_import *res, char *why,
                                  size_t why_cap)
{
	sqlite3_stmt *look = NULL, *ins = NULL, *claim = NULL;
	enum mt_err e = prep(r,
	                     "SELECT manufacturer_id, birth_kid, birth_cert_sha256, status "
	                     "FROM devices WHERE serial = ?",
	                     &look);

	if (e == MT_OK)
		e = prep(r,
		         "INSERT INTO devices(serial, class, manufacturer_id, manifest_id, birth_kid,"
		         " birth_cert_sha256, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
		         &ins);
	if (e == MT_OK)
		e = prep(r,
		         "UPDATE devices SET class = ?2, manufacturer_id = ?3, manifest_id = ?4,"
		         " birth_kid = ?5, birth_cert_sha256 = ?6, status = 1, status_reason = '',"
		         " ldev_spki = NULL, kx_spki = NULL, cert_serial = NULL, cert_not_after = 0,"
		         " enrolled_at = 0, updated_at = ?7 WHERE serial = ?1",
		         &claim);
	for (size_t i = 0; e == MT_OK && i < m->n_entries; i++) {
		const struct mt_manifest_entry *en = &m->entries[i];
		struct existing x;
		sqlite3_stmt *w;

		e = entry_lookup(r, look, en->serial, &x);
		if (e != MT_OK)
			break;
		if (x.found && x.status != MT_DEV_RELEASED) {
			if (x.manufacturer_id == res->manufacturer_id &&
			    memcmp(x.kid, en->birth_kid, MT_KID_LEN) == 0 &&
			    memcmp(x.cert_sha, en->birth_cert_sha256, 32) == 0) {
				res->unchanged++;
				continue;
			}
			(void)snprintf(res->conflict_serial, sizeof res->conflict_serial, "%s",
			               en->serial);
			mt_say(why, why_cap,
			    "device %s is already registered with another manufacturer or birth "
			    "key (release it first if it changed owner)",
			    en->serial);
			e = MT_ERR_REG_CONFLICT;
			break;
		}
		w = x.found ? claim : ins;
		sqlite3_reset(w);
		sqlite3_bind_text(w, 1, en->serial, -1, SQLITE_STATIC);
		sqlite3_bind_text(w, 2, en->device_class, -1, SQLITE_STATIC);
		sqlite3_bind_int64(w, 3, res->manufacturer_id);
		sqlite3_bind_int64(w, 4, res->manifest_id);
		sqlite3_bind_blob(w, 5, en->birth_kid, MT_KID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(w, 6, en->birth_cert_sha256, 32, SQLITE_STATIC);
		sqlite3_bind_int64(w, 7, now);
		if (sqlite3_step(w) != SQLITE_DONE) {
			e = MT_ERR_REG_DB;
			break;
		}
		if (x.found)
			res->claimed++;
		else
			res->added++;
	}
	sqlite3_finalize(look);
	sqlite3_finalize(ins);
	sqlite3_finalize(claim);
	return e;
}

/* Verify the manifest signer's chain to a trusted root: *mfg_id. */
static enum mt_err manifest_chain(struct mt_registry *r, const struct mt_manifest *m,
                                  int64_t now, int64_t *mfg_id)
{
	struct mt_cert *certs[MT_MANIFEST_CHAIN_MAX] = {0};
	enum mt_err e = MT_OK;
	size_t n = 0;

	for (; n < m->n_chain && e == MT_OK; n++)
		e = mt_cert_from_der(m->chain[n], m->chain_len[n], &certs[n]);
	if (e == MT_OK)
		e = mt_registry_chain_to_root(r, certs[0], (const struct mt_cert *const *)certs + 1,
		                              n - 1, MT_PKI_PURPOSE_SIGNER, now, mfg_id);
	for (size_t i = 0; i < n; i++)
		mt_cert_free(certs[i]);
	return e;
}

enum mt_err mt_registry_import_manifest(struct mt_registry *r, const uint8_t *buf, size_t len,
                                        int64_t now, struct mt_registry_import *res,
                                        char *why, size_t why_cap)
{
	struct mt_manifest m = {0};
	uint8_t sha[32];
	const char *mwhy = NULL;
	sqlite3_stmt *st;
	bool seen = false;
	enum mt_err e;

	if (r == NULL || buf == NULL || res == NULL)
		return MT_ERR_ARG;
	memset(res, 0, sizeof *res);
	mt_say(why, why_cap, "%s", "");
	e = mt_manifest_open(buf, len, &m, &mwhy);
	if (e != MT_OK) {
		mt_say(why, why_cap, "the manifest does not verify: %s",
		    mwhy ? mwhy : mt_err_str(e));
		return e;
	}
	e = manifest_chain(r, &m, now, &res->manufacturer_id);
	if (e != MT_OK) {
		mt_say(why, why_cap,
		    "the manifest's signer does not chain to a trusted manufacturer root: %s",
		    mt_err_str(e));
		mt_manifest_free(&m);
		return MT_ERR_REG_UNTRUSTED;
	}
	if (EVP_Digest(buf, len, sha, NULL, EVP_sha256(), NULL) != 1) {
		mt_manifest_free(&m);
		return MT_ERR_CRYPTO;
	}
	e = begin(r);
	if (e == MT_OK)
		e = prep(r, "SELECT id FROM manifests WHERE sha256 = ?", &st);
	if (e == MT_OK) {
		sqlite3_bind_blob(st, 1, sha, sizeof sha, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			res->manifest_id = sqlite3_column_int64(st, 0);
			seen = true;
		}
		sqlite3_finalize(st);
	}
	if (e == MT_OK && !seen) {
		e = prep(r,
		         "INSERT INTO manifests(sha256, manufacturer_id, entries, imported_at) "
		         "VALUES (?, ?, ?, ?)",
		         &st);
		if (e == MT_OK) {
			sqlite3_bind_blob(st, 1, sha, sizeof sha, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, res->manufacturer_id);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)m.n_entries);
			sqlite3_bind_int64(st, 4, now);
			e = run_done(st);
			res->manifest_id = sqlite3_last_insert_rowid(r->db);
		}
	}
	if (e == MT_OK)
		e = import_entries(r, &m, now, res, why, why_cap);
	if (e == MT_ERR_REG_DB)
		mt_say(why, why_cap, "%s", sqlite3_errmsg(r->db));
	mt_manifest_free(&m);
	return finish(r, e);
}

/* ---- devices ----------------------------------------------------------- */

#define DEVICE_COLS                                                                        \
	"serial, class, manufacturer_id, manifest_id, birth_kid, birth_cert_sha256, status," \
	" status_reason, ldev_spki, kx_spki, epoch, cert_serial, cert_not_after,"            \
	" enrolled_at, updated_at"

static enum mt_err device_row(sqlite3_stmt *st, struct mt_device_rec *d)
{
	memset(d, 0, sizeof *d);
	copy_text(st, 0, d->serial, sizeof d->serial);
	copy_text(st, 1, d->device_class, sizeof d->device_class);
	d->manufacturer_id = sqlite3_column_int64(st, 2);
	d->manifest_id = sqlite3_column_int64(st, 3);
	if (!copy_blob(st, 4, d->birth_kid, sizeof d->birth_kid, NULL) ||
	    !copy_blob(st, 5, d->birth_cert_sha256, sizeof d->birth_cert_sha256, NULL) ||
	    !copy_blob(st, 8, d->ldev_spki, sizeof d->ldev_spki, &d->ldev_spki_len) ||
	    !copy_blob(st, 9, d->kx_spki, sizeof d->kx_spki, &d->kx_spki_len))
		return MT_ERR_REG_DB;
	d->status = (enum mt_dev_status)sqlite3_column_int(st, 6);
	copy_text(st, 7, d->status_reason, sizeof d->status_reason);
	d->epoch = (uint32_t)sqlite3_column_int64(st, 10);
	copy_text(st, 11, d->cert_serial, sizeof d->cert_serial);
	d->cert_not_after = sqlite3_column_int64(st, 12);
	d->enrolled_at = sqlite3_column_int64(st, 13);
	d->updated_at = sqlite3_column_int64(st, 14);
	return MT_OK;
}

enum mt_err mt_registry_device(struct mt_registry *r, const char *serial,
                               struct mt_device_rec *out)
{
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (r == NULL || serial == NULL || out == NULL)
		return MT_ERR_ARG;
	e = prep(r, "SELECT " DEVICE_COLS " FROM devices WHERE serial = ?", &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		e = device_row(st, out);
	else
		e = rc == SQLITE_DONE ? MT_ERR_REG_UNKNOWN : MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_registry_devices(struct mt_registry *r, enum mt_dev_status status,
                                mt_registry_device_cb cb, void *arg)
{
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (r == NULL || cb == NULL)
		return MT_ERR_ARG;
	e = prep(r,
	         "SELECT " DEVICE_COLS " FROM devices WHERE ?1 = 0 OR status = ?1 ORDER BY serial",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int(st, 1, (int)status);
	while (e == MT_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mt_device_rec d;

		e = device_row(st, &d);
		if (e == MT_OK)
			e = cb(&d, arg);
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_registry_cert_serial_hex(const struct mt_cert *c, char out[MT_REG_CERT_SERIAL_MAX])
{
	uint8_t s[20];
	size_t n;
	enum mt_err e = mt_cert_serial(c, s, sizeof s, &n);
	static const char hx[] = "0123456789abcdef";

	if (e != MT_OK)
		return e;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[s[i] >> 4];
		out[2 * i + 1] = hx[s[i] & 15];
	}
	out[2 * n] = '\0';
	return MT_OK;
}

/* The device's status inside a transaction. */
static enum mt_err status_of(struct mt_registry *r, const char *serial, enum mt_dev_status *s)
{
	sqlite3_stmt *st;
	enum mt_err e = prep(r, "SELECT status FROM devices WHERE serial = ?", &st);
	int rc;

	if (e != MT_OK)
		return e;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*s = (enum mt_dev_status)sqlite3_column_int(st, 0);
	e = rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_REG_UNKNOWN : MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}

/* Revoke the device's unrevoked, unexpired certificates (but `keep`). */
static enum mt_err revoke_certs(struct mt_registry *r, const char *serial, const char *keep,
                                enum mt_pki_reason reason, int64_t now, size_t *n)
{
	sqlite3_stmt *st;
	enum mt_err e = prep(r,
	                     "UPDATE certs SET revoked_at = ?1, reason = ?2 WHERE device = ?3"
	                     " AND revoked_at = 0 AND not_after > ?1 AND serial IS NOT ?4",
	                     &st);

	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, (int)reason);
	sqlite3_bind_text(st, 3, serial, -1, SQLITE_STATIC);
	if (keep != NULL)
		sqlite3_bind_text(st, 4, keep, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	e = run_done(st);
	if (e == MT_OK && n != NULL)
		*n = (size_t)sqlite3_changes(r->db);
	return e;
}

static enum mt_err set_status(struct mt_registry *r, const char *serial,
                              enum mt_dev_status s, const char *reason, int64_t now)
{
	sqlite3_stmt *st;
	enum mt_err e = prep(r,
	                     "UPDATE devices SET status = ?, status_reason = ?, updated_at = ?"
	                     " WHERE serial = ?",
	                     &st);

	if (e != MT_OK)
		return e;
	sqlite3_bind_int(st, 1, (int)s);
	sqlite3_bind_text(st, 2, reason ? reason : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_text(st, 4, serial, -1, SQLITE_STATIC);
	return run_done(st);
}

enum mt_err mt_registry_enrolled(struct mt_registry *r, const char *serial,
                                 const struct mt_cert *cert, const uint8_t *spki,
                                 size_t spki_len, bool supersede, int64_t now,
                                 size_t *n_superseded)
{
	char cs[MT_REG_CERT_SERIAL_MAX];
	size_t der_len;
	const uint8_t *der;
	int64_t nb, na;
	enum mt_dev_status s;
	sqlite3_stmt *st;
	enum mt_err e;

	if (r == NULL || serial == NULL || cert == NULL || spki == NULL || spki_len == 0 ||
	    spki_len > MT_SPKI_MAX)
		return MT_ERR_ARG;
	if (n_superseded)
		*n_superseded = 0;
	e = mt_registry_cert_serial_hex(cert, cs);
	if (e == MT_OK)
		e = mt_cert_validity(cert, &nb, &na);
	if (e != MT_OK)
		return e;
	der = mt_cert_der(cert, &der_len);
	e = begin(r);
	if (e != MT_OK)
		return e;
	e = status_of(r, serial, &s);
	if (e == MT_OK && s != MT_DEV_MANIFESTED && s != MT_DEV_ACTIVE)
		e = MT_ERR_REG_STATE;
	if (e == MT_OK)
		e = prep(r,
		         "INSERT INTO certs(serial, device, not_before, not_after, issued_at, der)"
		         " VALUES (?, ?, ?, ?, ?, ?)",
		         &st);
	if (e == MT_OK) {
		sqlite3_bind_text(st, 1, cs, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, serial, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, nb);
		sqlite3_bind_int64(st, 4, na);
		sqlite3_bind_int64(st, 5, now);
		sqlite3_bind_blob(st, 6, der, (int)der_len, SQLITE_STATIC);
		e = run_done(st);
	}
	if (e == MT_OK && supersede)
		e = revoke_certs(r, serial, cs, MT_PKI_REASON_SUPERSEDED, now, n_superseded);
	if (e == MT_OK)
		e = prep(r,
		         "UPDATE devices SET status = 2, status_reason = '', ldev_spki = ?,"
		         " cert_serial = ?, cert_not_after = ?,"
		         " enrolled_at = CASE WHEN ?5 THEN ?4 ELSE enrolled_at END,"
		         " updated_at = ?4 WHERE serial = ?6",
		         &st);
	if (e == MT_OK) {
		sqlite3_bind_blob(st, 1, spki, (int)spki_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, cs, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, na);
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_int(st, 5, supersede || s == MT_DEV_MANIFESTED);
		sqlite3_bind_text(st, 6, serial, -1, SQLITE_STATIC);
		e = run_done(st);
	}
	return finish(r, e);
}

enum mt_err mt_registry_set_kx(struct mt_registry *r, const char *serial, const uint8_t *spki,
                               size_t len, int64_t now, uint32_t *epoch)
{
	struct mt_device_rec d;
	sqlite3_stmt *st;
	enum mt_err e;

	if (r == NULL || serial == NULL || spki == NULL || len == 0 || len > MT_SPKI_MAX ||
	    epoch == NULL)
		return MT_ERR_ARG;
	e = begin(r);
	if (e != MT_OK)
		return e;
	e = mt_registry_device(r, serial, &d);
	if (e == MT_OK && d.status != MT_DEV_ACTIVE)
		e = MT_ERR_REG_STATE;
	if (e == MT_OK && d.kx_spki_len == len && memcmp(d.kx_spki, spki, len) == 0) {
		*epoch = d.epoch;
		return finish(r, MT_OK);
	}
	if (e == MT_OK)
		e = d.epoch == UINT32_MAX ? MT_ERR_REG_STATE : MT_OK;
	if (e == MT_OK)
		e = prep(r,
		         "UPDATE devices SET kx_spki = ?, epoch = ?, updated_at = ? WHERE serial = ?",
		         &st);
	if (e == MT_OK) {
		sqlite3_bind_blob(st, 1, spki, (int)len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)d.epoch + 1);
		sqlite3_bind_int64(st, 3, now);
		sqlite3_bind_text(st, 4, serial, -1, SQLITE_STATIC);
		e = run_done(st);
		*epoch = d.epoch + 1;
	}
	return finish(r, e);
}

/* Take the device's next command counter (the last one + 1; 1 for the
 * first) inside the caller's transaction. */
static enum mt_err next_command(struct mt_registry *r, const char *serial, uint64_t cmd,
                                int64_t now, uint64_t *ctr)
{
	sqlite3_stmt *st;
	int64_t last = 0;
	enum mt_err e = prep(r, "SELECT counter FROM device_commands WHERE serial = ?", &st);
	int rc;

	if (e != MT_OK)
		return e;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		last = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return MT_ERR_REG_DB;
	if (last < 0 || last == INT64_MAX)
		return MT_ERR_REG_STATE;
	e = prep(r,
	         "INSERT INTO device_commands(serial, counter, command, sent_at) VALUES(?, ?, ?, ?)"
	         " ON CONFLICT(serial) DO UPDATE SET counter = excluded.counter,"
	         " command = excluded.command, sent_at = excluded.sent_at",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, last + 1);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)cmd);
	sqlite3_bind_int64(st, 4, now);
	e = run_done(st);
	if (e == MT_OK)
		*ctr = (uint64_t)last + 1;
	return e;
}

enum mt_err mt_registry_rotate_epoch(struct mt_registry *r, const char *serial, int64_t now,
                                     uint32_t *old_epoch, uint32_t *new_epoch, uint64_t *ctr)
{
	struct mt_device_rec d;
	sqlite3_stmt *st;
	uint64_t taken = 0;
	enum mt_err e;

	if (r == NULL || serial == NULL || old_epoch == NULL || new_epoch == NULL || ctr == NULL)
		return MT_ERR_ARG;
	e = begin(r);
	if (e != MT_OK)
		return e;
	e = mt_registry_device(r, serial, &d);
	if (e == MT_OK && (d.status != MT_DEV_ACTIVE || d.kx_spki_len == 0 ||
	                   d.ldev_spki_len == 0 || d.epoch == UINT32_MAX))
		e = MT_ERR_REG_STATE;
	if (e == MT_OK)
		e = next_command(r, serial, 2 /* rotate-epoch */, now, &taken);
	if (e == MT_OK)
		e = prep(r, "UPDATE devices SET epoch = ?, updated_at = ? WHERE serial = ?", &st);
	if (e == MT_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)d.epoch + 1);
		sqlite3_bind_int64(st, 2, now);
		sqlite3_bind_text(st, 3, serial, -1, SQLITE_STATIC);
		e = run_done(st);
	}
	e = finish(r, e);
	if (e == MT_OK) { /* only what was committed */
		*old_epoch = d.epoch;
		*new_epoch = d.epoch + 1;
		*ctr = taken;
	}
	return e;
}

enum mt_err mt_registry_command_counter(struct mt_registry *r, const char *serial,
                                        uint64_t *ctr)
{
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (r == NULL || serial == NULL || ctr == NULL)
		return MT_ERR_ARG;
	e = prep(r, "SELECT counter FROM device_commands WHERE serial = ?", &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*ctr = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? MT_OK : MT_ERR_REG_DB;
}

static const char *reason_name(enum mt_pki_reason reason)
{
	switch (reason) {
	case MT_PKI_REASON_UNSPECIFIED: return "unspecified";
	case MT_PKI_REASON_KEY_COMPROMISE: return "keyCompromise";
	case MT_PKI_REASON_CA_COMPROMISE: return "cACompromise";
	case MT_PKI_REASON_AFFILIATION_CHANGED: return "affiliationChanged";
	case MT_PKI_REASON_SUPERSEDED: return "superseded";
	case MT_PKI_REASON_CESSATION_OF_OPERATION: return "cessationOfOperation";
	case MT_PKI_REASON_CERTIFICATE_HOLD: return "certificateHold";
	case MT_PKI_REASON_REMOVE_FROM_CRL: return "removeFromCRL";
	case MT_PKI_REASON_PRIVILEGE_WITHDRAWN: return "privilegeWithdrawn";
	case MT_PKI_REASON_AA_COMPROMISE: return "aACompromise";
	}
	return "unspecified";
}

/* Revoke every certificate with `reason` and set `status` (revoked or
 * decommissioned): one transaction, from any status but decommissioned
 * and released. */
static enum mt_err retire(struct mt_registry *r, const char *serial, enum mt_pki_reason reason,
                          enum mt_dev_status status, int64_t now, size_t *n_certs)
{
	enum mt_dev_status s;
	enum mt_err e;

	if (r == NULL || serial == NULL)
		return MT_ERR_ARG;
	e = begin(r);
	if (e != MT_OK)
		return e;
	e = status_of(r, serial, &s);
	if (e == MT_OK && (s == MT_DEV_DECOMMISSIONED || s == MT_DEV_RELEASED))
		e = MT_ERR_REG_STATE;
	if (e == MT_OK)
		e = revoke_certs(r, serial, NULL, reason, now, n_certs);
	if (e == MT_OK)
		e = set_status(r, serial, status, reason_name(reason), now);
	return finish(r, e);
}

enum mt_err mt_registry_revoke(struct mt_registry *r, const char *serial,
                               enum mt_pki_reason reason, int64_t now, size_t *n_certs)
{
	return retire(r, serial, reason, MT_DEV_REVOKED, now, n_certs);
}

enum mt_err mt_registry_decommission(struct mt_registry *r, const char *serial, int64_t now,
                                     size_t *n_certs)
{
	return retire(r, serial, MT_PKI_REASON_CESSATION_OF_OPERATION, MT_DEV_DECOMMISSIONED, now,
	              n_certs);
}

enum mt_err mt_registry_release(struct mt_registry *r, const char *serial, int64_t now)
{
	enum mt_dev_status s;
	enum mt_err e;

	if (r == NULL || serial == NULL)
		return MT_ERR_ARG;
	e = begin(r);
	if (e != MT_OK)
		return e;
	e = status_of(r, serial, &s);
	if (e == MT_OK && s != MT_DEV_DECOMMISSIONED)
		e = MT_ERR_REG_STATE;
	if (e == MT_OK)
		e = set_status(r, serial, MT_DEV_RELEASED, "released", now);
	return finish(r, e);
}

/* ---- certificates and the CRL ------------------------------------------ */

/* Columns 0-6 of a certs row (serial, device, not_before, not_after,
 * issued_at, revoked_at, reason) into `out`. */
static void cert_rec_read(sqlite3_stmt *st, struct mt_cert_rec *out)
{
	memset(out, 0, sizeof *out);
	copy_text(st, 0, out->serial, sizeof out->serial);
	copy_text(st, 1, out->device, sizeof out->device);
	out->not_before = sqlite3_column_int64(st, 2);
	out->not_after = sqlite3_column_int64(st, 3);
	out->issued_at = sqlite3_column_int64(st, 4);
	out->revoked_at = sqlite3_column_int64(st, 5);
	out->reason = (enum mt_pki_reason)sqlite3_column_int(st, 6);
}

enum mt_err mt_registry_cert(struct mt_registry *r, const char *serial, struct mt_cert_rec *out)
{
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (r == NULL || serial == NULL || out == NULL)
		return MT_ERR_ARG;
	e = prep(r,
	         "SELECT serial, device, not_before, not_after, issued_at, revoked_at, reason"
	         " FROM certs WHERE serial = ?",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		cert_rec_read(st, out);
	e = rc == SQLITE_ROW ? MT_OK : rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_registry_cert_load(struct mt_registry *r, const char *serial,
                                  struct mt_cert_rec *out, struct mt_cert **cert)
{
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (cert != NULL)
		*cert = NULL;
	if (r == NULL || serial == NULL || cert == NULL)
		return MT_ERR_ARG;
	e = prep(r,
	         "SELECT serial, device, not_before, not_after, issued_at, revoked_at, reason, der"
	         " FROM certs WHERE serial = ?",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *der = sqlite3_column_blob(st, 7);
		int der_len = sqlite3_column_bytes(st, 7);

		if (out != NULL)
			cert_rec_read(st, out);
		e = der != NULL && der_len > 0 ? mt_cert_from_der(der, (size_t)der_len, cert)
		                               : MT_ERR_PKI_FORMAT;
		if (e == MT_ERR_PKI_TOO_LARGE)
			e = MT_ERR_PKI_FORMAT;
	} else {
		e = rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : MT_ERR_REG_DB;
	}
	sqlite3_finalize(st);
	return e;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

enum mt_err mt_registry_revoked_list(struct mt_registry *r, int64_t now,
                                     struct mt_registry_revoked **out, size_t *n)
{
	struct mt_registry_revoked *list = NULL;
	size_t cap = 0, cnt = 0;
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (r == NULL || out == NULL || n == NULL)
		return MT_ERR_ARG;
	e = prep(r,
	         "SELECT serial, revoked_at, reason FROM certs"
	         " WHERE revoked_at > 0 AND not_after > ? ORDER BY serial",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, now);
	while (e == MT_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *hx = (const char *)sqlite3_column_text(st, 0);
		size_t hl = hx ? strlen(hx) : 0;
		struct mt_registry_revoked *one;

		if (hl == 0 || hl % 2 != 0 || hl > 40) {
			e = MT_ERR_REG_DB;
			break;
		}
		if (cnt == cap) {
			size_t nc = cap ? cap * 2 : 64;
			void *p = realloc(list, nc * sizeof *list);

			if (p == NULL) {
				e = MT_ERR_NOMEM;
				break;
			}
			list = p;
			cap = nc;
		}
		one = &list[cnt];
		one->serial_len = hl / 2;
		for (size_t i = 0; i < one->serial_len; i++) {
			int a = hexval(hx[2 * i]), b = hexval(hx[2 * i + 1]);

			if (a < 0 || b < 0) {
				e = MT_ERR_REG_DB;
				break;
			}
			one->serial[i] = (uint8_t)(a << 4 | b);
		}
		one->when = sqlite3_column_int64(st, 1);
		one->reason = (enum mt_pki_reason)sqlite3_column_int(st, 2);
		cnt++;
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_REG_DB;
	sqlite3_finalize(st);
	if (e != MT_OK) {
		free(list);
		return e;
	}
	*out = list;
	*n = cnt;
	return MT_OK;
}

void mt_registry_revoked_free(struct mt_registry_revoked *list)
{
	free(list);
}

enum mt_err mt_registry_crl_next(struct mt_registry *r, int64_t next_update, uint64_t *number)
{
	sqlite3_stmt *st;
	enum mt_err e;

	if (r == NULL || number == NULL)
		return MT_ERR_ARG;
	e = begin(r);
	if (e != MT_OK)
		return e;
	e = prep(r,
	         "INSERT INTO crl_state(id, number, next_update) VALUES (1, 2, ?1)"
	         " ON CONFLICT(id) DO UPDATE SET number = number + 1, next_update = ?1"
	         " RETURNING number",
	         &st);
	if (e == MT_OK) {
		sqlite3_bind_int64(st, 1, next_update);
		if (sqlite3_step(st) == SQLITE_ROW)
			*number = (uint64_t)sqlite3_column_int64(st, 0);
		else
			e = MT_ERR_REG_DB;
		sqlite3_finalize(st);
	}
	return finish(r, e);
}

enum mt_err mt_registry_crl_next_update(struct mt_registry *r, int64_t *next_update)
{
	enum mt_err e;

	if (r == NULL || next_update == NULL)
		return MT_ERR_ARG;
	*next_update = 0;
	e = query_int64(r, "SELECT next_update FROM crl_state WHERE id = 1", next_update);
	return e == MT_ERR_NOT_FOUND ? MT_OK : e;
}

/* ---- read-only access (the broker plugin) ------------------------------
 *
 * The mosquitto plugin decides every connection from this database while
 * the CLI and medtrustd write it, so it opens the file read-only and
 * never takes a write lock: in WAL mode its reads see the last commit and
 * never wait for a writer.  It must not create the file or the schema
 * either — a plugin pointed at the wrong path refuses to start rather
 * than deciding from an empty registry (fail closed, threat C10).  The
 * busy timeout is short because the caller is a broker's event loop; a
 * read that cannot proceed returns MT_ERR_REG_DB and the plugin refuses
 * the connection.
 */

enum mt_err mt_registry_open_readonly(const char *path, struct mt_registry **out)
{
	static const char *const probes[] = {
	        "SELECT serial, status, updated_at, cert_serial FROM devices LIMIT 0",
	        "SELECT serial, device, revoked_at, not_after, der FROM certs LIMIT 0",
	};
	struct mt_registry *r;
	enum mt_err e = registry_new(path, SQLITE_OPEN_READONLY, 250, &r);

	if (e != MT_OK)
		return e;
	e = exec(r, "PRAGMA query_only=1");
	for (size_t i = 0; e == MT_OK && i < sizeof probes / sizeof probes[0]; i++) {
		sqlite3_stmt *st;

		e = prep(r, probes[i], &st);
		if (e == MT_OK)
			sqlite3_finalize(st);
	}
	if (e != MT_OK) {
		mt_registry_close(r);
		return e;
	}
	*out = r;
	return MT_OK;
}

enum mt_err mt_registry_data_version(struct mt_registry *r, int64_t *version)
{
	enum mt_err e;

	if (r == NULL || version == NULL)
		return MT_ERR_ARG;
	e = query_int64(r, "PRAGMA data_version", version);
	return e == MT_ERR_NOT_FOUND ? MT_ERR_REG_DB : e;
}

enum mt_err mt_registry_cert_issued(struct mt_registry *r, const struct mt_cert *c,
                                    struct mt_cert_rec *out)
{
	char cs[MT_REG_CERT_SERIAL_MAX];
	const uint8_t *der;
	const void *stored;
	size_t der_len;
	sqlite3_stmt *st;
	enum mt_err e;
	int rc;

	if (r == NULL || c == NULL || out == NULL)
		return MT_ERR_ARG;
	e = mt_registry_cert_serial_hex(c, cs);
	if (e != MT_OK)
		return e;
	der = mt_cert_der(c, &der_len);
	if (der == NULL || der_len == 0)
		return MT_ERR_PKI_FORMAT;
	e = prep(r,
	         "SELECT serial, device, not_before, not_after, issued_at, revoked_at, reason, der"
	         " FROM certs WHERE serial = ?",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_text(st, 1, cs, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		stored = sqlite3_column_blob(st, 7);
		if (stored == NULL || (size_t)sqlite3_column_bytes(st, 7) != der_len ||
		    memcmp(stored, der, der_len) != 0) {
			e = MT_ERR_NOT_FOUND;
		} else {
			memset(out, 0, sizeof *out);
			copy_text(st, 0, out->serial, sizeof out->serial);
			copy_text(st, 1, out->device, sizeof out->device);
			out->not_before = sqlite3_column_int64(st, 2);
			out->not_after = sqlite3_column_int64(st, 3);
			out->issued_at = sqlite3_column_int64(st, 4);
			out->revoked_at = sqlite3_column_int64(st, 5);
			out->reason = (enum mt_pki_reason)sqlite3_column_int(st, 6);
		}
	} else {
		e = rc == SQLITE_DONE ? MT_ERR_NOT_FOUND : MT_ERR_REG_DB;
	}
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_registry_withdrawals_since(struct mt_registry *r, int64_t since,
                                          mt_registry_withdrawal_cb cb, void *arg)
{
	sqlite3_stmt *st;
	enum mt_err e;
	int rc = SQLITE_DONE;

	if (r == NULL || cb == NULL)
		return MT_ERR_ARG;
	/* certs_revoked (a partial index on revoked_at > 0) serves the second
	 * half; devices has no index on updated_at, and a scan of it costs
	 * about a millisecond per 10,000 devices — paid only when the
	 * database changed (mt_registry_data_version). */
	e = prep(r,
	         "SELECT serial, '', status, updated_at FROM devices"
	         " WHERE status IN (3, 4, 5) AND updated_at >= ?1"
	         " UNION ALL "
	         "SELECT c.device, c.serial, d.status, c.revoked_at FROM certs c"
	         " JOIN devices d ON d.serial = c.device"
	         " WHERE c.revoked_at > 0 AND c.revoked_at >= ?1"
	         " ORDER BY 4",
	         &st);
	if (e != MT_OK)
		return e;
	sqlite3_bind_int64(st, 1, since);
	while (e == MT_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mt_registry_withdrawal w;

		memset(&w, 0, sizeof w);
		copy_text(st, 0, w.device, sizeof w.device);
		copy_text(st, 1, w.cert_serial, sizeof w.cert_serial);
		w.status = (enum mt_dev_status)sqlite3_column_int(st, 2);
		w.at = sqlite3_column_int64(st, 3);
		e = cb(&w, arg);
	}
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_REG_DB;
	sqlite3_finalize(st);
	return e;
}
