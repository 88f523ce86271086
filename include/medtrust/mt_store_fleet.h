/*
 * mt_store_fleet.h — read-side queries of the readings store for the
 * biomedical engineer's fleet view (src/hub/console_fleet.c,
 * docs/console-fleet.md).
 *
 * Like mt_store_query.h and mt_store_fhir.h, kept apart from store.c so
 * that the writer and its readers change independently: everything here
 * only SELECTs plain columns (device, counter, type, the hub's time of
 * receipt) with bound parameters, served by the UNIQUE(dev, ctr) indexes
 * of readings and alerts, and decrypts nothing; the caller decrypts what
 * it picked with mt_store_reading_get.  Use a store connection of its own
 * (mt_deploy_open_store), one thread at a time.
 */
#ifndef MT_STORE_FLEET_H
#define MT_STORE_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"
#include "mt_store.h"

/* What the store holds of one device's packets (readings and alerts). */
struct mt_store_fleet_dev {
	uint64_t stored;  /* packets stored (readings and alerts) */
	uint64_t ctr_min; /* their lowest and highest counter (0 when none) */
	uint64_t ctr_max;
	uint64_t missing;    /* counters between ctr_min and ctr_max never stored */
	uint64_t last_rx_ms; /* hub clock at receipt of the newest (by counter) */
	int64_t status_id;   /* the newest status reading (typ 3, by counter); 0: none */
};

/* The summary of device `dev`.  `missing` counts every counter below the
 * highest stored that the store does not hold: packets lost or still in
 * the device's queue, and counters a device skipped on purpose (an agent
 * restarting skips the rest of its reserved block, protocol §4a) — a
 * number to look into, not proof of loss.  Its cost is one pass over the
 * device's index entries.  Errors: MT_ERR_ARG, MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_fleet_device(struct mt_store *s, const char *dev,
                                               struct mt_store_fleet_dev *out);

#endif
