/*
 * hl7out.h — medtrustd's HL7 v2 sender: every entry of the hub's export
 * journal goes to every configured destination as one MLLP message
 * (PCD-01 observations, PCD-04 alerts; clinical.md §4; docs/hl7.md;
 * threats G05, G10).
 *
 *   journal (the hub's, append-only, seq 1, 2, 3 …)
 *        ─next/render─▶ one thread per destination
 *        ─MLLP─▶ receiver ─ACK─▶ cursor (SQLite, synchronous=FULL)
 *
 * Invariants:
 *  - Strictly in seq order per destination, one message outstanding per
 *    connection, the answer read on the same connection.
 *  - A seq counts as done only after a valid ACK whose MSA-2 is the
 *    control id sent (AA/CA: acknowledged; AE/CE: parked, see below), and
 *    the cursor (the highest done seq) is committed with synchronous=FULL
 *    before the next message is taken.  A garbage ACK, a wrong MSA-2, a
 *    frame without end block (the answer timeout), an oversize frame (the
 *    frame cap), a close or a timeout never advance it: the connection is
 *    dropped and the same message is sent again (G05).
 *  - The control id (MSH-10) is `<prefix><seq>`, a function of seq only,
 *    so the message resent after a crash or restart carries the same
 *    MSH-10 and the receiver can de-duplicate on MSH-3 + MSH-10 (G10).
 *  - AE/CE: the seq is parked (kept in the cursor database with the
 *    receiver's text), on_park is called and an audit record written, and
 *    delivery goes on with the next seq: a parked message blocks nothing.
 *    AR/CR: the same message is sent again after the back-off.
 *  - A message the source cannot render for good (MT_ERR_HL7_*,
 *    MT_ERR_ARG: e.g. a control character in a stored name) is parked
 *    the same way; any other render or `next` failure (store busy, no
 *    memory) is retried after the back-off.  MT_ERR_NOT_FOUND from render
 *    means "nothing to send for this seq": it is skipped.
 *  - The cursor database holds dest names, seqs, control ids and ACK
 *    texts: no patient data.
 */
#ifndef MT_HUB_HL7OUT_H
#define MT_HUB_HL7OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medtrust/mt_audit.h"
#include "medtrust/mt_err.h"

/* Where messages come from: the hub's journal.  Every callback may be
 * called from several sender threads at once. */
struct mt_hl7_source {
	/* The smallest journal seq > after; MT_ERR_NOT_FOUND (or *seq 0) when
	 * there is none yet. */
	enum mt_err (*next)(void *ctx, uint64_t after, uint64_t *seq);
	/* The message for seq with MSH-10 = control_id, malloc'ed (*msg, *len;
	 * the sender frees it).  MT_ERR_NOT_FOUND: nothing to send (skipped). */
	enum mt_err (*render)(void *ctx, uint64_t seq, const char *control_id, char **msg,
	                      size_t *len);
	void *ctx;
	/* Optional (may be NULL): the highest seq in the journal, for the
	 * backlog figure of mt_hl7out_stats. */
	enum mt_err (*last)(void *ctx, uint64_t *seq);
};

#define MT_HL7OUT_DESTS_MAX 16
#define MT_HL7OUT_NAME_MAX 32
#define MT_HL7OUT_HOST_MAX 255

struct mt_hl7_dest {
	char name[MT_HL7OUT_NAME_MAX + 1]; /* [A-Za-z0-9_.-], 1..32 bytes, unique */
	char host[MT_HL7OUT_HOST_MAX + 1]; /* name or address (IPv6 without brackets) */
	uint16_t port;
	unsigned timeout_ms;   /* connect and answer timeout; 0: 10,000 */
	unsigned retry_min_ms; /* first back-off; 0: 1,000 */
	unsigned retry_max_ms; /* back-off bound; 0: 30,000 */
};

struct mt_hl7out_opts {
	const struct mt_hl7_dest *dests; /* 1..MT_HL7OUT_DESTS_MAX, copied */
	size_t n_dests;
	struct mt_hl7_source src;
	const char *cursor_path;    /* SQLite file, created 0600 when absent */
	const char *control_prefix; /* NULL: "MEDTRUST-"; [A-Za-z0-9_.-], ≤ 32 bytes */
	size_t frame_max;           /* answer frame cap; 0: MT_HL7_FRAME_MAX */
	unsigned poll_ms;           /* journal poll period; 0: 1,000 */
	/* Audit sink, as mt_ingest_opts.audit (thread-safe); may be NULL. */
	void (*audit)(void *ctx, const char *actor, const char *action, const char *subject,
	              enum mt_audit_outcome outcome, const char *detail);
	void *audit_ctx;
	/* A message parked (AE/CE, or not renderable): the hub raises a
	 * technical alarm.  Sender thread; may be NULL. */
	void (*on_park)(void *ctx, const char *dest, uint64_t seq, const char *control_id,
	                const char *text);
	void *park_ctx;
};

struct mt_hl7out_stats {
	char name[MT_HL7OUT_NAME_MAX + 1];
	uint64_t sent;    /* transmissions, resends included */
	uint64_t acked;   /* AA/CA received (since start) */
	uint64_t parked;  /* AE/CE or not renderable (since start) */
	uint64_t resends; /* transmissions of a message sent before */
	uint64_t cursor;  /* the highest seq done (durable) */
	uint64_t backlog; /* journal seqs after the cursor (0 without src.last) */
	bool connected;
	char last_error[128]; /* "" or the last failure, for operators */
};

struct mt_hl7out;

/* Parse one destination "NAME=HOST:PORT" ("[v6addr]:PORT" for IPv6) into
 * *d (timeouts 0 = defaults).  Errors: MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_hl7out_parse_dest(const char *text, struct mt_hl7_dest *d);
/* Parse a comma-separated list of them (e.g. the value of hl7_dest) into
 * d[0..cap); *n the count.  Names must be unique.  Errors: MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_hl7out_parse_dests(const char *text, struct mt_hl7_dest *d,
                                               size_t cap, size_t *n);

/* Open the cursor database, load each destination's cursor, start one
 * thread per destination.  `why` says what failed.  Errors: MT_ERR_ARG,
 * MT_ERR_IO (the cursor database), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_hl7out_start(const struct mt_hl7out_opts *o, struct mt_hl7out **out,
                                         char *why, size_t why_cap);
/* Stop the threads and close everything (a message in flight stays unacked
 * and is sent again, same MSH-10, after the next start).  NULL is a no-op. */
void mt_hl7out_stop(struct mt_hl7out *o);
/* New journal entries are committed: wake the senders (any thread). */
void mt_hl7out_kick(struct mt_hl7out *o);

/* Copy the figures of up to cap destinations; returns the number of
 * destinations. */
size_t mt_hl7out_stats(struct mt_hl7out *o, struct mt_hl7out_stats *out, size_t cap);
/* One line "hl7 NAME: connected|down cursor=N backlog=N sent=N acked=N
 * parked=N resends=N[ error=...]" into buf (snprintf's result). */
int mt_hl7out_stats_line(const struct mt_hl7out_stats *s, char *buf, size_t cap);

#endif
