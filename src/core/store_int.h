/*
 * store_int.h — what the readings store (store.c) shows to tests and to
 * nothing else: its SQLite connection, so that a fault test can set a
 * per-connection limit (PRAGMA max_page_count stands in for a full disk,
 * threat FI05) or read a pragma back (synchronous=FULL, FI09).  Not
 * installed, not for the hub: everything a caller needs is in mt_store.h.
 */
#ifndef MT_STORE_INT_H
#define MT_STORE_INT_H

#include <sqlite3.h>

#include "medtrust/mt_store.h"

/* The store's connection, owned by `s` (valid until mt_store_close). */
sqlite3 *mt_store__sqlite(struct mt_store *s);

/* One int64 of the first row of `sql` bound to dev (*v 0 when no row).
 * MT_OK or MT_ERR_STORE_DB.  For the store's listing files (store_fhir.c,
 * store_fleet.c). */
enum mt_err mt_store__one(sqlite3 *db, const char *sql, const char *dev, int64_t *v);

#endif
