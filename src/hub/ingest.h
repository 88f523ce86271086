/*
 * ingest.h — medtrustd's telemetry ingest: MQTT 5 in, verified readings
 * durably stored, receipts out (protocol §3, §4, §4a, §5; docs/ingest.md).
 *
 *   broker ──$share/hub/mt/v1/+/up/#──▶ network thread ─▶ per-device queues
 *        ─▶ workers (stages 1–12 and 14 of §5, in parallel)
 *        ─▶ committer (stage 13, the window, and the rows: one transaction
 *           per group, synchronous=FULL)
 *        ─▶ receipts on mt/v1/<id>/down/rcpt, at most one per device per
 *           second, only for what a finished commit covers
 *
 * Invariants:
 *  - Nothing is receipted before the transaction that stores it (or that
 *    records it as a duplicate or permanent refusal) has committed; a
 *    passing failure (disk full, lock) receipts nothing, so the device
 *    sends again.  Broker acknowledgements mean nothing here.
 *  - The anti-replay window is read and written inside the same
 *    transaction as the readings, so a crash at any instant leaves window
 *    and data consistent (FI03), and two hubs on one database never both
 *    accept one counter.
 *  - Bad input never blocks good input: each device has its own bounded
 *    queue and the workers serve devices round-robin, so a device flooding
 *    garbage delays only itself; a device whose packets keep failing is
 *    throttled by a refusal budget before any crypto is spent (H04).
 *  - Every refusal is counted under its stage's name and audited; the
 *    audit is aggregated per device and stage (one record at the first
 *    refusal, then one summary per minute with the count), so a flood
 *    cannot bloat the chain (H09).
 */
#ifndef MT_HUB_INGEST_H
#define MT_HUB_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "medtrust/mt_audit.h"
#include "medtrust/mt_deploy.h"
#include "medtrust/mt_err.h"
#include "syncer.h"

/* Refusal and outcome counters, by name (docs/ingest.md lists them). */
enum mt_ingest_count {
	MT_IC_RECEIVED = 0, /* MQTT messages taken from the broker */
	MT_IC_STORED,       /* readings committed */
	MT_IC_ALERTS,       /* fast-packet alerts committed and raised */
	MT_IC_DUPLICATE,    /* counters seen before: receipted, not stored */
	MT_IC_SIZE, MT_IC_CBOR, MT_IC_HEADER, MT_IC_EPOCH, MT_IC_AEAD, MT_IC_INNER, MT_IC_ALG,
	MT_IC_KID, MT_IC_SIGNATURE, MT_IC_MESSAGE, MT_IC_DEV, MT_IC_INACTIVE, MT_IC_REPLAY,
	MT_IC_IMPLAUSIBLE,
	MT_IC_COUNTER_JUMP, /* replay stage: more than 2^20 above the top (an alarm) */
	MT_IC_IV_REUSE,     /* two different packets under one key and IV (an alarm, A16) */
	MT_IC_TOPIC,        /* a topic that is not mt/v1/<id>/up/<leaf> */
	MT_IC_THROTTLED,    /* dropped before crypto: the device's refusal budget is spent */
	MT_IC_OVERLOAD,     /* dropped: the device's or the hub's queue is full (resent later) */
	MT_IC_STORE_FAILED, /* in a group whose commit failed (passing: resent later) */
	MT_IC_RECEIPTS,     /* receipts published */
	MT_IC_SKEWED,       /* stored flagged clock-skewed (technical alarm) */
	MT_IC_STALE,        /* stored flagged stale */
	MT_IC_N
};

const char *mt_ingest_count_name(enum mt_ingest_count c);

/* An alert raised from a fast packet, after its commit. */
struct mt_ingest_alert {
	const char *dev;
	uint64_t ctr, ts_ms, received_ms, committed_ms;
	uint64_t code;
	unsigned prio;    /* 1 low, 2 medium, 3 high */
	const char *text; /* may be "" */
	int64_t id;       /* its row in the store (alerts table) */
};

/* A reading (a sealed packet's Sign1, typ 1 vitals or 3 status) after the
 * commit that stored it; `sign1` is valid only during the call. */
struct mt_ingest_reading {
	const char *dev;
	int64_t id;       /* its row in the store */
	uint64_t ctr, ts_ms, received_ms, committed_ms;
	uint8_t typ;
	unsigned flags;   /* MT_STORE_SKEWED | MT_STORE_STALE */
	const uint8_t *sign1;
	size_t sign1_len;
};

struct mt_ingest_opts {
	struct mt_deploy *d;      /* conf (broker_url, data_path, kx_key, ...), store */
	SSL_CTX *ssl_ctx;         /* client context for the broker (hub client cert) */
	const char *client_id;    /* "hub" or "hub/<name>"; NULL = "hub/<hostname>" */
	unsigned workers;         /* verify threads; 0 = number of CPUs */
	/* Audit sink (thread-safe; the hub serialises its audit writer). */
	void (*audit)(void *ctx, const char *actor, const char *action, const char *subject,
	              enum mt_audit_outcome outcome, const char *detail);
	void *audit_ctx;
	/* Called (committer thread) for each alert after its commit; may be NULL. */
	void (*on_alert)(void *ctx, const struct mt_ingest_alert *a);
	void *alert_ctx;
	/* Called (committer thread) for each stored reading after its commit;
	 * may be NULL.  Gets alert_ctx. */
	void (*on_reading)(void *ctx, const struct mt_ingest_reading *r);
	/* Called when a device's refusal budget runs out (a burst of refused
	 * packets: "possible attack"), at most once a minute per device; may
	 * be NULL.  Gets alert_ctx; any thread. */
	void (*on_security)(void *ctx, const char *dev, const char *what, uint64_t count);
	/* When set, the committer commits without waiting for the disk
	 * (mt_store_defer_sync) and the counters a group resolved reach the
	 * receipt lists only after the syncer's fsync covers them; on_alert
	 * and on_reading come right after the commit.  NULL: every commit is
	 * durable when it returns. */
	struct mt_syncer *syncer;
};

struct mt_ingest;

/* The broker the deployment names: broker_url, else localhost:broker_port.
 * Errors: MT_ERR_ARG. */
struct mt_mqtt_url;
MT_NODISCARD enum mt_err mt_ingest_broker_url(const struct mt_deploy *d, struct mt_mqtt_url *u);

/* Open the store, the registry, the hub's kx key and start the threads and
 * the broker connection (which retries with back-off until it stands).
 * `why` says what failed.  Errors: store, registry and key store errors,
 * MT_ERR_ARG (broker_url unusable), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_ingest_start(const struct mt_ingest_opts *o, struct mt_ingest **out,
                                         char *why, size_t why_cap);
/* Stop: disconnect, finish the group being committed, stop the threads.
 * Queued but uncommitted packets are dropped (unreceipted: devices resend). */
void mt_ingest_stop(struct mt_ingest *g);

/* Rotate device `dev`'s key epoch with a signed downlink command
 * (protocol §4, §6; docs/commands.md): the registry takes the device's
 * next command counter and moves its epoch N → N+1 in one transaction
 * (from then on the ingest accepts N+1 and N), the command {2 rotate-epoch,
 * {1: N+1}} is signed with the command key (cmd_key, in the hub's token)
 * and published QoS 1 on mt/v1/<dev>/down/cmd over the ingest's broker
 * connection.  Thread-safe (the console calls it from HTTPS workers); one
 * command at a time.  *old_epoch, *new_epoch, *ctr are set once the
 * registry changed; `why` gets a sentence on failure.  Errors: MT_ERR_ARG,
 * MT_ERR_UNSUPPORTED (no usable command key: nothing changed), MT_ERR_IO
 * before the registry (not connected to the broker: nothing changed),
 * mt_registry_rotate_epoch's (nothing changed); after the registry
 * changed, signing errors or MT_ERR_IO (the publish failed: the epoch
 * moved, N is still accepted, the device stays on N until a rotation
 * reaches it). */
MT_NODISCARD enum mt_err mt_ingest_rotate_epoch(struct mt_ingest *g, const char *dev,
                                                uint32_t *old_epoch, uint32_t *new_epoch,
                                                uint64_t *ctr, char *why, size_t why_cap);
/* The same with g as a void pointer: the console's rotate hook
 * (mt_console_set_rotate). */
MT_NODISCARD enum mt_err mt_ingest_rotate_hook(void *g, const char *dev, uint32_t *old_epoch,
                                               uint32_t *new_epoch, uint64_t *ctr, char *why,
                                               size_t why_cap);

/* A snapshot of the counters, and whether the broker link is up. */
void mt_ingest_counts(struct mt_ingest *g, uint64_t out[MT_IC_N], bool *connected);

/* Latency to the commit that stored a reading, from its device timestamp
 * (the whole path: device queue, network, broker, hub) or, with hub_only,
 * from its arrival at the hub, over every reading stored since start (or
 * the last reset): percentiles in ms (`q` in (0, 1]; values above 60 s
 * count as 60,000).  0 when nothing is stored. */
uint64_t mt_ingest_latency_ms(struct mt_ingest *g, double q, bool hub_only);
/* Start the latency figures afresh (medtrustd: SIGUSR2). */
void mt_ingest_latency_reset(struct mt_ingest *g);

#endif
