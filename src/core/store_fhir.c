/*
 * store_fhir.c — read-side queries of the readings store for the FHIR API
 * (mt_store_fhir.h, docs/fhir.md).
 *
 * A file of its own beside store.c and store_query.c, on the store's
 * connection through store_int.h.  Plain SELECTs with bound parameters
 * (nothing a client sent ever becomes SQL text), served by the index
 * readings(patient_id, ts_ms) for a patient's search; nothing decrypted.
 */
#include "medtrust/mt_store_fhir.h"

#include <string.h>

#include <sqlite3.h>

#include "store_int.h"

static int64_t clamp_ts(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

enum mt_err mt_store_fhir_reading_ids(struct mt_store *s, const struct mt_store_fhir_range *r,
                                      int64_t *ids, size_t cap, size_t *n, bool *more)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc = SQLITE_DONE;

	if (n != NULL)
		*n = 0;
	if (more != NULL)
		*more = false;
	if (s == NULL || r == NULL || n == NULL || more == NULL || (ids == NULL && cap > 0) ||
	    r->patient_id < 0)
		return MT_ERR_ARG;
	if (sqlite3_prepare_v2(mt_store__sqlite(s),
	                       "SELECT id FROM readings WHERE typ = 1 AND patient_id > 0"
	                       " AND (?1 = 0 OR patient_id = ?1) AND ts_ms >= ?2 AND ts_ms < ?3"
	                       " AND id <= ?4 ORDER BY ts_ms, id LIMIT ?5",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	sqlite3_bind_int64(st, 1, r->patient_id);
	sqlite3_bind_int64(st, 2, clamp_ts(r->ts_from));
	sqlite3_bind_int64(st, 3, clamp_ts(r->ts_to));
	sqlite3_bind_int64(st, 4, r->max_id);
	sqlite3_bind_int64(st, 5, cap >= (size_t)INT32_MAX ? INT32_MAX : (int64_t)cap + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			*more = true;
			rc = SQLITE_DONE;
			break;
		}
		ids[(*n)++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE)
		e = MT_ERR_STORE_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_store_fhir_max_id(struct mt_store *s, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;

	if (s == NULL || id == NULL)
		return MT_ERR_ARG;
	*id = 0;
	if (sqlite3_prepare_v2(mt_store__sqlite(s), "SELECT COALESCE(MAX(id), 0) FROM readings", -1,
	                       &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	if (sqlite3_step(st) == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	else
		e = MT_ERR_STORE_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_store_fhir_latest_status(struct mt_store *s, const char *dev, int64_t *id)
{
	if (s == NULL || dev == NULL || id == NULL)
		return MT_ERR_ARG;
	return mt_store__one(mt_store__sqlite(s),
	                     "SELECT id FROM readings WHERE dev = ? AND typ = 3"
	                     " ORDER BY ctr DESC LIMIT 1",
	                     dev, id);
}
