/*
 * registry_list.c — manufacturers and manifests listed for the console
 * (mt_registry_list.h).
 *
 * Two constant SELECTs over the tables registry.c makes (manufacturers,
 * manifests, devices), on a read-only connection that lives for the call.
 * Counts come from the devices table in the same statement, so a listing
 * is one consistent snapshot.  Text is copied bounded; a row that does not
 * fit (a name longer than a CN can be) is cut, never overrun.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include <sqlite3.h>

#include "medtrust/mt_registry_list.h"

static const char MFG_SQL[] = "SELECT m.id, m.name, m.root_sha256, m.added_at,"
                              " (SELECT count(*) FROM manifests f WHERE f.manufacturer_id = m.id),"
                              " (SELECT count(*) FROM devices d WHERE d.manufacturer_id = m.id)"
                              " FROM manufacturers m ORDER BY m.id";

static const char MANIFEST_SQL[] =
        "SELECT f.id, f.manufacturer_id, coalesce(m.name, ''), f.sha256, f.entries,"
        " f.imported_at,"
        " (SELECT count(*) FROM devices d WHERE d.manifest_id = f.id AND d.status = 2),"
        " (SELECT count(*) FROM devices d WHERE d.manifest_id = f.id AND d.status IN (3, 4))"
        " FROM manifests f LEFT JOIN manufacturers m ON m.id = f.manufacturer_id"
        " ORDER BY f.id DESC";

static void text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
	const unsigned char *p = sqlite3_column_text(st, col);
	size_t n = p ? strnlen((const char *)p, cap - 1) : 0;

	if (n > 0)
		memcpy(dst, p, n);
	dst[n] = '\0';
}

static void sha(sqlite3_stmt *st, int col, uint8_t out[32])
{
	const void *p = sqlite3_column_blob(st, col);

	if (p != NULL && sqlite3_column_bytes(st, col) == 32)
		memcpy(out, p, 32);
	else
		memset(out, 0, 32);
}

static uint64_t count(sqlite3_stmt *st, int col)
{
	sqlite3_int64 v = sqlite3_column_int64(st, col);

	return v > 0 ? (uint64_t)v : 0;
}

/* Run sql on a read-only connection to path and hand each row to row(st, arg),
 * stopping at the first error it returns; the connection lives for the call. */
static enum mt_err each_row(const char *path, const char *sql,
                            enum mt_err (*row)(sqlite3_stmt *st, void *arg), void *arg)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc = SQLITE_DONE;

	if (path == NULL)
		return MT_ERR_ARG;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	            SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		e = MT_ERR_REG_DB;
	while (e == MT_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		e = row(st, arg);
	if (e == MT_OK && rc != SQLITE_DONE)
		e = MT_ERR_REG_DB;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return e;
}

struct mfg_walk {
	enum mt_err (*cb)(void *ctx, const struct mt_registry_mfg *m);
	void *ctx;
};

static enum mt_err mfg_row(sqlite3_stmt *st, void *arg)
{
	const struct mfg_walk *w = arg;
	struct mt_registry_mfg m;

	memset(&m, 0, sizeof m);
	m.id = sqlite3_column_int64(st, 0);
	text(st, 1, m.name, sizeof m.name);
	sha(st, 2, m.root_sha256);
	m.added_at = sqlite3_column_int64(st, 3);
	m.manifests = count(st, 4);
	m.devices = count(st, 5);
	return w->cb(w->ctx, &m);
}

enum mt_err mt_registry_list_manufacturers(const char *db_path,
                                           enum mt_err (*cb)(void *ctx,
                                                             const struct mt_registry_mfg *m),
                                           void *ctx)
{
	struct mfg_walk w = {cb, ctx};

	if (cb == NULL)
		return MT_ERR_ARG;
	return each_row(db_path, MFG_SQL, mfg_row, &w);
}

struct manifest_walk {
	enum mt_err (*cb)(void *ctx, const struct mt_registry_manifest *m);
	void *ctx;
};

static enum mt_err manifest_row(sqlite3_stmt *st, void *arg)
{
	const struct manifest_walk *w = arg;
	struct mt_registry_manifest m;

	memset(&m, 0, sizeof m);
	m.id = sqlite3_column_int64(st, 0);
	m.manufacturer_id = sqlite3_column_int64(st, 1);
	text(st, 2, m.manufacturer, sizeof m.manufacturer);
	sha(st, 3, m.sha256);
	m.entries = count(st, 4);
	m.imported_at = sqlite3_column_int64(st, 5);
	m.active = count(st, 6);
	m.revoked = count(st, 7);
	return w->cb(w->ctx, &m);
}

enum mt_err mt_registry_list_manifests(const char *db_path,
                                       enum mt_err (*cb)(void *ctx,
                                                         const struct mt_registry_manifest *m),
                                       void *ctx)
{
	struct manifest_walk w = {cb, ctx};

	if (cb == NULL)
		return MT_ERR_ARG;
	return each_row(db_path, MANIFEST_SQL, manifest_row, &w);
}
