/*
 * queue.h — the device's store-and-forward queue and its message counter
 * (protocol §4a, §5; threats FI07, FI12, FI19; docs/device-agent.md).
 *
 * The queue keeps every packet the device has sealed until a receipt from
 * the hub covers its counter: MQTT acknowledgements end at the broker, so
 * only a receipt lets a packet go.  It lives in a directory of its own, one
 * file per packet, each written to a temporary name, fsync'ed, renamed
 * into place and the directory fsync'ed — so after a power cut a packet is
 * either wholly in the queue or was never acknowledged to the caller, and
 * a torn temporary file is discarded at the next open.  Every file carries
 * a header (magic, counter, topic, length) and the SHA-256 of its body;
 * a file that does not check out is moved aside to `bad/` and counted,
 * never sent.
 *
 * Full queue policy (FI07): the queue holds at most `max_packets` packets.
 * When a new packet would exceed it, the oldest routine packet (vitals,
 * status, ack) is dropped and counted; alerts are never dropped — an alert
 * is accepted even above the bound, up to a hard limit of twice the bound,
 * past which MT_ERR_QUEUE_FULL is returned (and the caller keeps the alert
 * in memory and retries).  The dropped count is persisted and reported by
 * the device in its next status packet.
 *
 * The counter (§5: strictly increasing over the device's life) is reserved
 * in blocks: the end of the current block is written durably (temporary
 * file, fsync, rename, fsync of the directory) before any counter of the
 * block is used, so a restart at any instant continues past every counter
 * ever handed out, skipping the rest of the block (receipts allow gaps).
 */
#ifndef MT_AGENT_QUEUE_H
#define MT_AGENT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medtrust/mt_err.h"

enum mt_dq_topic {
	MT_DQ_VITALS = 1, /* up/vitals, sealed */
	MT_DQ_ALERT = 2,  /* up/alert, fast packet: never dropped */
	MT_DQ_STATUS = 3, /* up/status, sealed */
	MT_DQ_ACK = 4,    /* up/ack, sealed */
};

struct mt_dq;

/* Bounds: the largest packet (protocol §5, stage 1), the largest
 * max_packets, the damaged files kept in bad/, the last counter (§5: ctr
 * < 2^63) and the largest counter block (a restart skips less than one
 * block, far below the hub's counter-jump alarm of 2^20, §5 stage 13). */
#define MT_DQ_MAX_LEN 65536
#define MT_DQ_MAX_PACKETS (UINT64_C(1) << 20)
#define MT_DQ_BAD_KEEP 64
#define MT_CTR_LIMIT ((UINT64_C(1) << 63) - 1)
#define MT_CTR_MAX_BLOCK (UINT64_C(1) << 20)

/* Open (creating, mode 0700) the queue in directory `dir` (its parent must
 * exist); loads the index of what is queued, removing temporary leftovers
 * of a crash, finishing a drop a crash interrupted, and moving damaged
 * files to `dir`/bad/.  If more routine packets are on disk than
 * `max_packets` (a smaller bound than last time) the oldest are dropped
 * and counted now.  One process at a time: the directory is locked
 * (flock) until mt_dq_close.  The queue is not thread-safe; the caller
 * serialises calls.  `max_packets` is 1..MT_DQ_MAX_PACKETS.  Errors:
 * MT_ERR_IO (also: the queue is open elsewhere), MT_ERR_NOMEM (also: more
 * than 2 × MT_DQ_MAX_PACKETS packet files), MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_dq_open(const char *dir, size_t max_packets, struct mt_dq **out);
void mt_dq_close(struct mt_dq *q);

/* Add a packet durably: on MT_OK it survives a crash.  `ctr` must be above
 * every counter queued before (the counter is strictly increasing): above
 * every counter now queued and the last one dropped — so a put refused
 * for MT_ERR_IO or MT_ERR_QUEUE_FULL may be retried with the same counter
 * as long as no newer packet was queued in between.
 * At the bound the oldest routine packet is dropped first (recorded in
 * the dropped count before its file is removed).  A routine packet that
 * arrives when the queue is at its bound and holds only alerts is itself
 * the oldest routine packet: it is dropped and counted, nothing is
 * written, and MT_OK is returned (mt_dq_dropped() rises by one).  `pkt`
 * is copied; the caller keeps it.  Errors: MT_ERR_QUEUE_FULL (alerts
 * only, past the hard limit), MT_ERR_IO (the packet is not queued; a
 * drop made for it may stand), MT_ERR_ARG (ctr not increasing or above
 * MT_CTR_LIMIT, unknown topic, len 0 or over 65,536). */
MT_NODISCARD enum mt_err mt_dq_put(struct mt_dq *q, uint64_t ctr, enum mt_dq_topic topic,
                                   const uint8_t *pkt, size_t len);

/* Remove every queued packet whose counter lies in one of the ranges
 * ([first, last], inclusive; any order, overlaps allowed, counters never
 * queued ignored — a forged or stale receipt can release nothing the hub
 * did not resolve, and the receipt was authenticated before this call;
 * a range with first > last is ignored).  One directory fsync per call.
 * *removed (may be NULL) says how many.  Errors: MT_ERR_IO, MT_ERR_ARG
 * (ranges NULL with n > 0). */
MT_NODISCARD enum mt_err mt_dq_ack(struct mt_dq *q, const uint64_t (*ranges)[2], size_t n,
                                   size_t *removed);

/* Packets queued, and the oldest's counter (UINT64_MAX when empty). */
size_t mt_dq_count(const struct mt_dq *q);
uint64_t mt_dq_oldest(const struct mt_dq *q);
/* Packets dropped by the full-queue policy over the queue's life (persisted;
 * exact across power cuts: a drop is recorded before its file goes). */
uint64_t mt_dq_dropped(const struct mt_dq *q);
/* Files found damaged (bad header, length, digest, or a name that does not
 * match the counter inside) since this mt_dq_open, at open or during a
 * walk: each was moved to `bad/` (or deleted once `bad/` holds
 * MT_DQ_BAD_KEEP files) and is never walked.  Not persisted — the files in
 * `bad/` are the lasting record. */
size_t mt_dq_bad(const struct mt_dq *q);

/* Walk queued packets oldest first (by counter) from the first counter
 * ≥ `from`; `cb` gets each packet's bytes (valid during the call), each
 * file read and checked again first (a damaged one is moved to bad/,
 * counted in mt_dq_bad and skipped).  cb may call mt_dq_put and
 * mt_dq_ack on the same queue; the walk goes on from the next counter
 * above the one just given.  A non-MT_OK return from cb stops the walk
 * and is returned.  Errors: MT_ERR_IO, cb's. */
MT_NODISCARD enum mt_err mt_dq_walk(struct mt_dq *q, uint64_t from,
                                    enum mt_err (*cb)(void *ctx, uint64_t ctr,
                                                      enum mt_dq_topic topic,
                                                      const uint8_t *pkt, size_t len),
                                    void *ctx);

/* ---- the counter ------------------------------------------------------------ */

struct mt_ctr;

/* Open the counter file `path` (created at 0 when absent), reserving in
 * blocks of `block` (1..MT_CTR_MAX_BLOCK).  The file's directory must
 * exist; `path`.tmp is the temporary name.  One process at a time (not
 * locked: the agent owns the file).  Errors: MT_ERR_IO,
 * MT_ERR_QUEUE_CORRUPT (the file is damaged: the device refuses to guess a
 * counter), MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_ctr_open(const char *path, uint64_t block, struct mt_ctr **out);
void mt_ctr_close(struct mt_ctr *c);
/* The next counter, reserving a new block durably when the current one is
 * used up.  Errors: MT_ERR_IO (nothing handed out), MT_ERR_QUEUE_FULL
 * (counters exhausted at 2^63 − 1). */
MT_NODISCARD enum mt_err mt_ctr_next(struct mt_ctr *c, uint64_t *ctr);

#endif
