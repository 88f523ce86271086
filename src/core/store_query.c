/*
 * store_query.c — read-side queries of the readings store for the console
 * (mt_store_query.h; docs/storage.md).
 *
 * A file of its own beside store.c, on the store's connection through
 * store_int.h: the writer's code stays as its owner shaped it, and the
 * console's questions ("the newest readings of this patient", "which
 * device does this patient wear") live next to each other.  Both are
 * plain SELECTs on plain columns with bound parameters (F08: nothing a
 * user or a device typed ever becomes SQL text), served by the indexes
 * the store already keeps; neither decrypts anything.
 */
#include "medtrust/mt_store_query.h"

#include <string.h>

#include <sqlite3.h>

#include "store_int.h"

enum mt_err mt_store_latest_reading_ids(struct mt_store *s, int64_t patient_id,
                                        int64_t after_id, size_t max, int64_t *ids, size_t *n)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc = SQLITE_DONE;

	if (n != NULL)
		*n = 0;
	if (s == NULL || n == NULL || patient_id < 1 || (ids == NULL && max > 0))
		return MT_ERR_ARG;
	if (max == 0)
		return MT_OK;
	if (sqlite3_prepare_v2(mt_store__sqlite(s),
	                       "SELECT id FROM readings WHERE patient_id = ? AND id > ?"
	                       " ORDER BY ts_ms DESC, id DESC LIMIT ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	sqlite3_bind_int64(st, 1, patient_id);
	sqlite3_bind_int64(st, 2, after_id < 0 ? 0 : after_id);
	sqlite3_bind_int64(st, 3, max > (size_t)INT32_MAX ? INT32_MAX : (int64_t)max);
	while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ids[(*n)++] = sqlite3_column_int64(st, 0);
	if (*n < max && rc != SQLITE_DONE)
		e = MT_ERR_STORE_DB;
	sqlite3_finalize(st);
	return e;
}

enum mt_err mt_store_patient_devices(struct mt_store *s, int64_t patient_id,
                                     char (*devs)[MT_DEVICE_ID_MAX + 1], size_t cap, size_t *n)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_OK;
	int rc = SQLITE_DONE;

	if (n != NULL)
		*n = 0;
	if (s == NULL || n == NULL || patient_id < 1 || (devs == NULL && cap > 0))
		return MT_ERR_ARG;
	if (sqlite3_prepare_v2(mt_store__sqlite(s),
	                       "SELECT dev FROM assignments WHERE patient_id = ?"
	                       " AND until_ms IS NULL ORDER BY since_ms DESC, id DESC",
	                       -1, &st, NULL) != SQLITE_OK)
		return MT_ERR_STORE_DB;
	sqlite3_bind_int64(st, 1, patient_id);
	while (*n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *d = sqlite3_column_text(st, 0);
		size_t len = d ? strlen((const char *)d) : 0;

		if (len == 0 || len > MT_DEVICE_ID_MAX)
			continue; /* not a device id: nothing to show */
		memcpy(devs[*n], d, len + 1);
		(*n)++;
	}
	if (*n < cap && rc != SQLITE_DONE)
		e = MT_ERR_STORE_DB;
	sqlite3_finalize(st);
	return e;
}
