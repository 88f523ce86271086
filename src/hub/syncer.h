/*
 * syncer.h — durability after the fact for the hub's store (data.db).
 *
 * The hub's writers that sit on the alarm path (the ingest's committer,
 * the clinical engine) commit with mt_store_defer_sync: a COMMIT writes
 * the WAL and returns without waiting for the disk, so the database's
 * write lock is never held through an fsync and an alarm never waits
 * behind a slow flush (on a shared virtual disk one fsync can take
 * hundreds of milliseconds).  What must not happen before the rows are on
 * disk — a receipt that lets a device forget its packets, an audit record
 * naming an alarm row — is handed to the syncer: its thread fsyncs the WAL
 * on a connection of its own (one fsync covers every commit made before
 * it) and then runs what waited, in the order given.
 */
#ifndef MT_HUB_SYNCER_H
#define MT_HUB_SYNCER_H

#include <stdbool.h>

#include "medtrust/mt_deploy.h"
#include "medtrust/mt_err.h"

struct mt_syncer;

/* What runs once the commits made before mt_syncer_after are durable:
 * durable false when the fsync failed (nothing may be promised then; the
 * syncer has logged it). */
typedef void (*mt_syncer_fn)(void *arg, bool durable);

/* Open a store connection of its own and start the thread.
 * Errors: the store's, MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_syncer_start(struct mt_deploy *d, struct mt_syncer **out);
/* Run what is queued (after a last fsync) and stop. */
void mt_syncer_stop(struct mt_syncer *s);
/* Queue fn(arg) to run on the syncer's thread after the next fsync that
 * begins after this call.  fn owns arg.  MT_ERR_NOMEM: nothing queued. */
MT_NODISCARD enum mt_err mt_syncer_after(struct mt_syncer *s, mt_syncer_fn fn, void *arg);
/* Wait until the commits made before this call are durable: MT_OK, or
 * MT_ERR_STORE_FULL when the fsync failed. */
MT_NODISCARD enum mt_err mt_syncer_wait(struct mt_syncer *s);
/* fsyncs done and failed so far. */
void mt_syncer_counts(struct mt_syncer *s, unsigned long long *syncs, unsigned long long *failed);

#endif
