/*
 * mt_store_fhir.h — read-side queries of the readings store for the FHIR
 * API (src/hub/fhir.c, docs/fhir.md; clinical.md §5).
 *
 * Like mt_store_query.h, kept apart from store.c so that the writer and
 * these readers change independently: everything here only SELECTs plain
 * columns (ids, device, typ, patient, device time) with bound parameters
 * and decrypts nothing; the caller decrypts what it picked with
 * mt_store_reading_get.  Use a store connection of its own
 * (mt_deploy_open_store), one thread at a time.
 */
#ifndef MT_STORE_FHIR_H
#define MT_STORE_FHIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"
#include "mt_message.h"
#include "mt_store.h"

/* A search over stored vital-sign readings (typ 1) that belong to a
 * patient (patient_id > 0 in the row). */
struct mt_store_fhir_range {
	int64_t patient_id; /* 0: any patient */
	uint64_t ts_from;   /* device time ts_ms ≥ ts_from (0: no bound) */
	uint64_t ts_to;     /* ts_ms < ts_to (UINT64_MAX: no bound) */
	int64_t max_id;     /* only rows with id ≤ max_id (a paging snapshot) */
};

/* Ids of the readings in `r`, oldest device time first (ts_ms, then id),
 * at most `cap` into ids[0..cap); *n the number written; *more set when
 * there are more than cap.  Errors: MT_ERR_ARG, MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_fhir_reading_ids(struct mt_store *s,
                                                   const struct mt_store_fhir_range *r,
                                                   int64_t *ids, size_t cap, size_t *n,
                                                   bool *more);

/* The highest reading id stored (0: none).  Errors: MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_fhir_max_id(struct mt_store *s, int64_t *id);

/* The newest status reading (typ 3) of device `dev` (0: none), for the
 * firmware version it reported.  Errors: MT_ERR_ARG, MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_fhir_latest_status(struct mt_store *s, const char *dev,
                                                     int64_t *id);

#endif
