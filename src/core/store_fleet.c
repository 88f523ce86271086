/*
 * store_fleet.c — read-side queries of the readings store for the fleet
 * view (mt_store_fleet.h, docs/console-fleet.md).
 *
 * A file of its own beside store.c, store_query.c and store_fhir.c, on
 * the store's connection through store_int.h.  Plain SELECTs with bound
 * parameters; each is served by the UNIQUE(dev, ctr) index of its table,
 * so the newest rows are found without a scan and the count walks only
 * the device's own index entries.  Counters are one space per device
 * across readings and alerts (the replay window covers both), so the
 * summary adds the two tables.
 */
#include "medtrust/mt_store_fleet.h"

#include <string.h>

#include <sqlite3.h>

#include "store_int.h"

/* count(*), min(ctr), max(ctr) of `table` for dev. */
static enum mt_err span(sqlite3 *db, const char *sql, const char *dev, uint64_t *n, uint64_t *lo,
                        uint64_t *hi)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;

	*n = *lo = *hi = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		int64_t c = sqlite3_column_int64(st, 0), a = sqlite3_column_int64(st, 1),
		        b = sqlite3_column_int64(st, 2);

		if (c < 0 || a < 0 || b < a)
			e = MT_ERR_STORE_DB;
		else if (c > 0) {
			*n = (uint64_t)c;
			*lo = (uint64_t)a;
			*hi = (uint64_t)b;
		}
	} else {
		e = MT_ERR_STORE_DB;
	}
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_store__one(sqlite3 *db, const char *sql, const char *dev, int64_t *v)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc;

	*v = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		e = MT_ERR_STORE_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_store_fleet_device(struct mt_store *s, const char *dev,
                                  struct mt_store_fleet_dev *out)
{
	uint64_t nr, lr, hr, na, la, ha;
	int64_t rx_r = 0, rx_a = 0;
	sqlite3 *db;
	enum mt_err e;

	if (out != NULL)
		memset(out, 0, sizeof *out);
	if (s == NULL || dev == NULL || out == NULL)
		return MT_ERR_ARG;
	db = mt_store__sqlite(s);
	e = span(db,
	         "SELECT count(*), coalesce(min(ctr), 0), coalesce(max(ctr), 0)"
	         " FROM readings WHERE dev = ?",
	         dev, &nr, &lr, &hr);
	if (e == MT_OK)
		e = span(db,
		         "SELECT count(*), coalesce(min(ctr), 0), coalesce(max(ctr), 0)"
		         " FROM alerts WHERE dev = ?",
		         dev, &na, &la, &ha);
	if (e == MT_OK)
		e = mt_store__one(
		        db,
		        "SELECT received_ms FROM readings WHERE dev = ? ORDER BY ctr DESC LIMIT 1",
		        dev, &rx_r);
	if (e == MT_OK)
		e = mt_store__one(
		        db,
		        "SELECT received_ms FROM alerts WHERE dev = ? ORDER BY ctr DESC LIMIT 1",
		        dev, &rx_a);
	if (e == MT_OK)
		e = mt_store__one(db,
		                  "SELECT id FROM readings WHERE dev = ? AND typ = 3"
		                  " ORDER BY ctr DESC LIMIT 1",
		                  dev, &out->status_id);
	if (e != MT_OK) {
		memset(out, 0, sizeof *out);
		return e;
	}
	out->stored = nr + na;
	if (nr > 0 && na > 0) {
		out->ctr_min = lr < la ? lr : la;
		out->ctr_max = hr > ha ? hr : ha;
	} else if (nr > 0) {
		out->ctr_min = lr;
		out->ctr_max = hr;
	} else if (na > 0) {
		out->ctr_min = la;
		out->ctr_max = ha;
	}
	if (out->stored > 0 && out->ctr_max - out->ctr_min + 1 > out->stored)
		out->missing = out->ctr_max - out->ctr_min + 1 - out->stored;
	rx_r = rx_r > rx_a ? rx_r : rx_a;
	out->last_rx_ms = rx_r > 0 ? (uint64_t)rx_r : 0;
	return MT_OK;
}
