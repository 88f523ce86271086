/*
 * mt_store_query.h — read-side queries of the readings store for the
 * console (mt_store.h; docs/storage.md, docs/console.md).
 *
 * Kept apart from mt_store.h so that the store's writer (store.c) and
 * these readers can change independently: everything here only SELECTs,
 * on the plain columns and indexes the store already has
 * (readings(patient_id, ts_ms), assignments), and decrypts nothing — the
 * caller decrypts what it picked with mt_store_reading_get.  Use a store
 * connection of its own (mt_deploy_open_store), one thread at a time.
 */
#ifndef MT_STORE_QUERY_H
#define MT_STORE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"
#include "mt_message.h"
#include "mt_store.h"

/* Ids of patient `patient_id`'s readings with id > after_id (0: all),
 * newest device time first (ts_ms descending, then id descending), at most
 * `max` of them into ids[0..max); *n the number written.  The index
 * readings(patient_id, ts_ms) serves the order, so the cost is `max` rows
 * however long the history.  Errors: MT_ERR_ARG (NULL, patient_id < 1),
 * MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_latest_reading_ids(struct mt_store *s, int64_t patient_id,
                                                     int64_t after_id, size_t max,
                                                     int64_t *ids, size_t *n);

/* The devices assigned to patient `patient_id` now (open assignments),
 * the most recently assigned first, at most `cap` into devs; *n the
 * number written.  Errors: MT_ERR_ARG, MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_patient_devices(struct mt_store *s, int64_t patient_id,
                                                  char (*devs)[MT_DEVICE_ID_MAX + 1],
                                                  size_t cap, size_t *n);

#endif
