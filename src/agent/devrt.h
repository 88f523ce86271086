/*
 * devrt.h — a device's telemetry runtime: readings batched, sealed in the
 * device's key store, kept in the on-disk queue until a receipt covers
 * them, sent over MQTT 5 with mutual TLS (protocol §3, §4, §4a;
 * docs/device-agent.md).
 *
 * One runtime per device; many may share one thread (the fleet
 * simulator): the caller owns the event loop, asks for the socket and
 * whether it wants to write, and calls mt_devrt_service when the socket
 * is ready or a timer is due (at least every 100 ms).  Nothing here blocks
 * for long except the TCP connect to the broker (local network) and the
 * TLS handshake, whose signature runs in the device's token.
 *
 * Life of a reading: mt_devrt_observe puts it in the current batch; every
 * batch_ms the batch becomes one vitals message (typ 1), with the next
 * counter (reserved in blocks, queue.h), signed and encrypted (a sealed
 * packet), written durably to the queue, then published (QoS 1).  A
 * receipt on down/rcpt — opened with the receipt key of the current or
 * previous epoch — releases the counters it names from the queue.  After
 * a reconnect, or 30 s without a receipt while packets wait, the queue is
 * sent again, oldest first.  A critical alert (mt_devrt_alert) goes at
 * once as a fast packet on up/alert (queued like the rest: an alert is
 * never dropped), and its observations ride in the next sealed packet,
 * so every stored observation is signed.
 *
 * Commands on down/cmd (protocol §6) are verified against the command
 * certificate pinned in bundle.json; a rotate-epoch switches the epoch of
 * new packets (kept in bundle.json) and every verified command is
 * answered on up/ack (docs/commands.md).
 */
#ifndef MT_AGENT_DEVRT_H
#define MT_AGENT_DEVRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "medtrust/mt_message.h"

struct mt_devrt_opts {
	uint32_t batch_ms;   /* 0 = 5000 */
	uint32_t status_ms;  /* 0 = 60000: a status packet (battery, queue, uptime) */
	uint32_t resend_ms;  /* 0 = 30000 (§4a) */
	size_t queue_max;    /* 0 = 100000 packets */
	const char *broker;  /* NULL: the bundle's; else mqtts://host:port */
	const char *fw;      /* firmware version reported in status; NULL = "medtrust-device" */
	/* Ledger hooks for the fault suite (may be NULL): a counter sealed and
	 * queued, and a receipt range that released queued counters. */
	void (*on_sent)(void *ctx, const char *dev, uint64_t ctr, unsigned typ);
	void (*on_receipt)(void *ctx, const char *dev, uint64_t first, uint64_t last);
	void *hook_ctx;
};

struct mt_devrt_stats {
	uint64_t sealed, published, receipts, released, resent, alerts, reconnects;
	uint64_t refused_receipts; /* receipts that did not open */
	uint64_t commands;         /* verified commands (protocol §6), answered on up/ack */
	uint64_t refused_commands; /* commands that did not verify: dropped, unanswered */
	size_t queued;
	bool connected;
};

struct mt_devrt;

/* Open the runtime of an onboarded device (op.pem, bundle.json present:
 * mt_agent_step first).  Opens ldev and kx in the device's store, derives
 * the epoch's keys, opens DIR/queue/ and DIR/counter.  `why` says what
 * failed.  Errors: MT_ERR_NOT_FOUND (not onboarded), key store, queue and
 * parse errors. */
MT_NODISCARD enum mt_err mt_devrt_open(const struct mt_agent_device *d,
                                       const struct mt_devrt_opts *o, struct mt_devrt **out,
                                       char *why, size_t why_cap);
void mt_devrt_close(struct mt_devrt *rt);

const char *mt_devrt_id(const struct mt_devrt *rt);

/* The socket to watch (-1 when not connected) and whether to watch it for
 * writing too. */
int mt_devrt_socket(struct mt_devrt *rt);
bool mt_devrt_want_write(struct mt_devrt *rt);

/* Do what is due at `now_ms`: read/write when the socket is ready,
 * keep-alive, (re)connect with jittered back-off, seal the batch when due,
 * status, resends. */
void mt_devrt_service(struct mt_devrt *rt, bool readable, bool writable, uint64_t now_ms);

/* Add observations to the current batch (`at_ms`: when they were taken;
 * waveform sample bytes are copied).  A full batch (1,024 observations or
 * 48 KiB) is sealed at once.  Errors: MT_ERR_ARG, queue and key store
 * errors of an early seal. */
MT_NODISCARD enum mt_err mt_devrt_observe(struct mt_devrt *rt, const struct mt_obs *obs,
                                          size_t n, uint64_t at_ms);

/* Send a critical alert now (fast packet, typ 2, on up/alert) carrying
 * `obs` (may be 0); the observations also join the batch.  Errors:
 * MT_ERR_ARG, queue (MT_ERR_QUEUE_FULL past the alert limit) and crypto
 * errors. */
MT_NODISCARD enum mt_err mt_devrt_alert(struct mt_devrt *rt, uint64_t code, unsigned prio,
                                        const char *text, const struct mt_obs *obs, size_t n,
                                        uint64_t now_ms);

void mt_devrt_set_battery(struct mt_devrt *rt, unsigned battery);
void mt_devrt_stats(const struct mt_devrt *rt, struct mt_devrt_stats *s);

/* Publish `len` bytes as they are on mt/v1/<id>/up/<leaf> (QoS 1), outside
 * the queue — for `medtrust-device inject`, the attacker's-side test tool
 * (a device whose key was stolen can send anything).  Errors: MT_ERR_IO
 * (not connected, or the client refused). */
MT_NODISCARD enum mt_err mt_devrt_publish_raw(struct mt_devrt *rt, const char *leaf,
                                              const uint8_t *pkt, size_t len);
bool mt_devrt_connected(const struct mt_devrt *rt);

/* Seal what is batched now (at stop, so that nothing taken is lost). */
MT_NODISCARD enum mt_err mt_devrt_flush(struct mt_devrt *rt, uint64_t now_ms);

#endif
