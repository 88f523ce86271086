/*
 * mt_audit.h — the hash-chained, append-only audit log with signed
 * checkpoints (DESIGN.md trust model, "evidence"; threats J01–J03, J06;
 * docs/audit.md).
 *
 * Every security event and user action becomes one record.  Records are
 * numbered from 1 without gaps, and each carries the SHA-256 of the record
 * before it (32 zero bytes before record 1), so editing, deleting,
 * reordering or inserting a record breaks the chain at a place the
 * verifier can name.  A chain alone proves nothing against someone who can
 * rewrite the whole database, so at least every `checkpoint_every` records
 * (1,000) and at least every `checkpoint_ms` (one hour) of record time the
 * hub signs a checkpoint — a COSE_Sign1 over {seq, hash, time} of the record
 * just before it — with its own key, appends it to the chain as a record of
 * its own kind, and appends it to a file outside the database.  A rewritten
 * chain then contradicts a signature nobody but the hub can make, and a
 * truncated chain ends before a checkpoint the outside file still holds.
 * What neither can show: records appended after the last checkpoint by
 * someone who can write the database (they are forgeable until the next
 * checkpoint signs them), and truncation of the records after the last
 * checkpoint.  Checkpoint often enough for that window to be acceptable.
 *
 * Hashed bytes.  hash = SHA-256 over one deterministic CBOR map (RFC 8949
 * §4.2.1) with integer keys 0..10, all always present, in this order:
 *
 *   0: 1 (format version)      1: seq (uint)         2: time_ms (uint)
 *   3: kind (0 event, 1 checkpoint)                  4: actor (tstr)
 *   5: action (tstr)           6: subject (tstr)     7: outcome (0 ok,
 *   1 refused, 2 error)        8: detail (tstr, the JSON object text exactly
 *   as stored)                 9: prev_hash (bstr, 32 bytes)
 *   10: checkpoint (bstr: the COSE_Sign1 for a checkpoint, empty for an event)
 *
 * A checkpoint's COSE_Sign1 is tagged (18), protected {1: alg} (ES256 or
 * EdDSA, whichever the hub key is), unprotected {4: kid of the hub key},
 * external AAD the ASCII bytes "medtrust audit checkpoint v1", payload the
 * deterministic CBOR map {1: seq, 2: hash (bstr 32), 3: time_ms} of the
 * record it covers: the one immediately before the checkpoint record, whose
 * time_ms is the checkpoint record's own.  The outside file holds one line
 * per checkpoint: the lowercase hex of that COSE_Sign1 and "\n".
 *
 * Record fields and their bounds: actor 1..128 bytes (a user name, a device
 * id, "hub"), action 1..64 bytes of a dotted name ([a-z0-9_]+ joined by
 * '.', e.g. "onboard.refused"), subject 0..256 bytes, all UTF-8 without
 * control characters; detail a JSON object (RFC 8259, strict) of at most
 * MT_AUDIT_DETAIL_MAX bytes, kept byte for byte as given ("{}" when none).
 * Times are milliseconds since 1970 UTC, given by the caller: nothing in
 * this module reads a clock.
 *
 * Storage sits behind a small interface (struct mt_audit_store_ops):
 * exclusive transactions, append, last record, last checkpoint and an
 * ascending range read.  SQLite is the backend implemented
 * (mt_audit_sqlite_open); the interface is what a PostgreSQL backend for
 * several hubs fills in.  Appending runs inside the store's exclusive
 * transaction — read the last record, chain to it, maybe checkpoint,
 * commit — so writers in several processes or hubs serialise into one
 * linear chain (J06).  The outside checkpoint file is written after the
 * commit and fsync'd; docs/audit.md says why that order.
 *
 * Ownership: mt_audit_open() takes the store (closed by mt_audit_close())
 * and borrows the hub key, which must outlive the object.  A `struct
 * mt_audit` and a store are used by one thread at a time; processes each
 * open their own.  Strings given to the functions here are copied.
 */
#ifndef MT_AUDIT_H
#define MT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_crypto.h"
#include "mt_err.h"
#include "mt_keystore.h"

#define MT_AUDIT_ACTOR_MAX 128
#define MT_AUDIT_ACTION_MAX 64
#define MT_AUDIT_SUBJECT_MAX 256
#define MT_AUDIT_DETAIL_MAX 8192
#define MT_AUDIT_COSE_MAX 256 /* a checkpoint COSE_Sign1 (about 140 bytes) */
#define MT_AUDIT_HASH_LEN 32
/* Largest hashed encoding of one record. */
#define MT_AUDIT_ENCODING_MAX                                                                      \
	(64 + MT_AUDIT_ACTOR_MAX + MT_AUDIT_ACTION_MAX + MT_AUDIT_SUBJECT_MAX +                    \
	 MT_AUDIT_DETAIL_MAX + MT_AUDIT_HASH_LEN + MT_AUDIT_COSE_MAX + 32)
/* Defaults of struct mt_audit_config. */
#define MT_AUDIT_CHECKPOINT_EVERY 1000
#define MT_AUDIT_CHECKPOINT_MS 3600000ull
/* The external AAD of every checkpoint signature. */
#define MT_AUDIT_CHECKPOINT_AAD "medtrust audit checkpoint v1"
/* Room for one JSON line of mt_audit_record_json(), newline and NUL included
 * (every byte of a field may become a 6-byte \u escape). */
#define MT_AUDIT_JSON_MAX                                                                          \
	(512 + 6 * (MT_AUDIT_ACTOR_MAX + MT_AUDIT_ACTION_MAX + MT_AUDIT_SUBJECT_MAX) +             \
	 6 * MT_AUDIT_DETAIL_MAX + 2 * MT_AUDIT_COSE_MAX + 4 * MT_AUDIT_HASH_LEN)

enum mt_audit_kind {
	MT_AUDIT_EVENT = 0,
	MT_AUDIT_CHECKPOINT = 1,
};

enum mt_audit_outcome {
	MT_AUDIT_OK = 0,
	MT_AUDIT_REFUSED = 1,
	MT_AUDIT_ERROR = 2,
};

/* What a caller logs. */
struct mt_audit_event {
	const char *actor;   /* who: a user, a device id, "hub" */
	const char *action;  /* dotted event name, "onboard.refused" */
	const char *subject; /* what it was done to; NULL for none */
	enum mt_audit_outcome outcome;
	const char *detail; /* JSON object text; NULL for "{}" */
};

/* One stored record.  Strings are NUL-terminated; `malformed` is set by a
 * store that read a row it could not represent (a field too long, a NUL
 * inside text, a value out of range): the verifier reports such a record
 * as MT_ERR_AUDIT_FORMAT. */
struct mt_audit_record {
	uint64_t seq;
	uint64_t time_ms;
	enum mt_audit_kind kind;
	enum mt_audit_outcome outcome;
	char actor[MT_AUDIT_ACTOR_MAX + 1];
	char action[MT_AUDIT_ACTION_MAX + 1];
	char subject[MT_AUDIT_SUBJECT_MAX + 1];
	char detail[MT_AUDIT_DETAIL_MAX + 1];
	uint8_t cose[MT_AUDIT_COSE_MAX]; /* checkpoint only */
	size_t cose_len;
	uint8_t prev_hash[MT_AUDIT_HASH_LEN];
	uint8_t hash[MT_AUDIT_HASH_LEN];
	bool malformed;
};

/* Called once per record of a range read, in ascending seq; a return other
 * than MT_OK stops the read and is returned by it. */
typedef enum mt_err (*mt_audit_record_cb)(const struct mt_audit_record *r, void *arg);

/* A storage backend.  Every function returns MT_OK or an error
 * (MT_ERR_AUDIT_STORE for a database failure, MT_ERR_NOMEM).
 *   begin     start an exclusive write transaction, waiting for other
 *             writers (in any process) to finish theirs
 *   commit    make it durable; rollback abandons it (never fails)
 *   append    insert one record; MT_ERR_AUDIT_CONFLICT when its seq exists
 *   last      the record with the highest seq; MT_ERR_NOT_FOUND when empty
 *   last_checkpoint  seq of the newest checkpoint record, 0 when none
 *   read      records from..to (inclusive) in ascending seq, as stored;
 *             the record handed to cb lives until cb returns, and cb must
 *             not call the store
 *   close     release everything (the store object included) */
struct mt_audit_store_ops {
	enum mt_err (*begin)(void *ctx);
	enum mt_err (*commit)(void *ctx);
	void (*rollback)(void *ctx);
	enum mt_err (*append)(void *ctx, const struct mt_audit_record *r);
	enum mt_err (*last)(void *ctx, struct mt_audit_record *r);
	enum mt_err (*last_checkpoint)(void *ctx, uint64_t *seq);
	enum mt_err (*read)(void *ctx, uint64_t from, uint64_t to, mt_audit_record_cb cb,
	                    void *arg);
	void (*close)(void *ctx);
};

struct mt_audit_store {
	const struct mt_audit_store_ops *ops;
	void *ctx;
};

/* Open (creating when absent) the SQLite audit database at `path`: WAL
 * journal, synchronous=FULL, a 30-second busy timeout, table `audit` with
 * seq as INTEGER PRIMARY KEY and triggers that refuse UPDATE and DELETE.
 * On success *out is a new store the caller closes with
 * mt_audit_store_close() or hands to mt_audit_open().
 * Errors: MT_ERR_ARG, MT_ERR_AUDIT_STORE (cannot open or create), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_audit_sqlite_open(const char *path, struct mt_audit_store **out);
/* Open an existing SQLite audit database read-only, changing nothing in it
 * (no schema, no journal switch, no triggers restored): for verifying,
 * tailing and exporting a database that is evidence.  Appending through it
 * fails with MT_ERR_AUDIT_STORE.  Errors as mt_audit_sqlite_open. */
MT_NODISCARD enum mt_err mt_audit_sqlite_open_readonly(const char *path,
                                                       struct mt_audit_store **out);

/* Close a store not handed to mt_audit_open(); NULL is fine. */
void mt_audit_store_close(struct mt_audit_store *s);

struct mt_audit_config {
	uint64_t checkpoint_every;   /* records between checkpoints; 0 = 1,000 */
	uint64_t checkpoint_ms;      /* record time between checkpoints; 0 = 1 h */
	const char *checkpoint_path; /* the outside checkpoint file; NULL = none
	                                (then truncation cannot be detected) */
};

struct mt_audit;

/* A writer: `store` (taken, even on failure), the hub's signing key `hub`
 * (borrowed; P-256 or Ed25519), `cfg` (copied; NULL for the defaults and no
 * outside file).  Errors: MT_ERR_ARG, MT_ERR_KEY_TYPE, MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_audit_open(struct mt_audit_store *store, struct mt_key *hub,
                                       const struct mt_audit_config *cfg, struct mt_audit **out);
void mt_audit_close(struct mt_audit *a);

/* Append one event at time `now_ms`, then a checkpoint when one is due:
 * checkpoint_every records since the last one, or the oldest record not yet
 * covered is checkpoint_ms older than now.  All in one store transaction.
 * *seq (may be NULL) receives the event's sequence number once it is
 * committed, and 0 when it is not.
 * Errors: MT_ERR_ARG (now_ms above INT64_MAX), MT_ERR_AUDIT_FIELD,
 * MT_ERR_AUDIT_DETAIL (refused event, nothing written),
 * MT_ERR_AUDIT_STORE, MT_ERR_AUDIT_CONFLICT, MT_ERR_AUDIT_FORMAT (the last
 * stored record is unusable: verify the chain) — nothing written; key
 * store and COSE errors from signing a due checkpoint — the event IS
 * committed (*seq set: a broken token must not stop the recording) and the
 * checkpoint is retried by the next append or tick; MT_ERR_IO (the outside
 * file could not be written: the records are committed, the next
 * checkpoint covers them). */
MT_NODISCARD enum mt_err mt_audit_append(struct mt_audit *a, uint64_t now_ms,
                                         const struct mt_audit_event *ev, uint64_t *seq);

/* Checkpoint now if any record is not yet covered (on demand; *done, may be
 * NULL, says whether one was written).  Errors as mt_audit_append(). */
MT_NODISCARD enum mt_err mt_audit_checkpoint(struct mt_audit *a, uint64_t now_ms, bool *done);

/* Checkpoint only when one is due by time (a daemon calls this every
 * minute so that a quiet log is still checkpointed hourly). */
MT_NODISCARD enum mt_err mt_audit_tick(struct mt_audit *a, uint64_t now_ms, bool *done);

/* The store of a writer (for reading and verifying through it). */
struct mt_audit_store *mt_audit_store_of(struct mt_audit *a);

/* What mt_audit_verify() found. */
struct mt_audit_verdict {
	enum mt_err err;      /* MT_OK or the reason for the first bad record */
	uint64_t seq;         /* that record's sequence number; 0 when OK */
	uint64_t records;     /* records read */
	uint64_t checkpoints; /* checkpoint records whose signature verified */
	uint64_t external;    /* outside checkpoints verified and matched */
	uint64_t last_seq;    /* highest seq read */
	char why[192];        /* a sentence for people */
};

/* Walk the whole chain of `store` and check, for each record in order:
 * sequence continuity (a gap is MT_ERR_AUDIT_MISSING naming the missing
 * seq; a seq not above the previous one MT_ERR_AUDIT_ORDER), well-formed
 * fields (MT_ERR_AUDIT_FORMAT), its hash (a record that does not hash to its
 * stored hash is MT_ERR_AUDIT_EDITED, or MT_ERR_AUDIT_ORDER when its
 * prev_hash does not fit either: a record moved here from elsewhere), its
 * link (prev_hash not the previous record's hash: MT_ERR_AUDIT_LINK), and
 * for a checkpoint its signature by `hub` (MT_ERR_AUDIT_CHECKPOINT_SIG) and
 * that it names the record before it with that record's hash and time
 * (MT_ERR_AUDIT_CHECKPOINT).  When `checkpoint_path` is not NULL, every
 * line of that file must be a checkpoint the hub signed
 * (MT_ERR_AUDIT_CHECKPOINT_SIG, seq 0: `why` names the line), the record
 * it names must have the hash it states and the record after that must be
 * that very checkpoint (MT_ERR_AUDIT_CHECKPOINT at the first that differs),
 * and the chain must reach the newest such checkpoint record (else
 * MT_ERR_AUDIT_TRUNCATED, naming the first missing seq).  A missing file
 * counts as empty.
 * Returns v->err; an operational failure (MT_ERR_AUDIT_STORE, MT_ERR_IO,
 * MT_ERR_NOMEM, MT_ERR_ARG) is returned with v->seq 0. */
MT_NODISCARD enum mt_err mt_audit_verify(struct mt_audit_store *store, const struct mt_pubkey *hub,
                                         const char *checkpoint_path, struct mt_audit_verdict *v);

/* One word per verdict code of mt_audit_verify(), as `medtrust audit verify`
 * prints it and the console shows it: "edited" "missing" "order" "link"
 * "checkpoint-signature" "checkpoint" "truncated" "malformed"; NULL for any
 * other code (MT_OK and operational failures).  A static string. */
const char *mt_audit_reason_word(enum mt_err e);

/* Records from..to (inclusive; to 0 = through the last), each as one JSON
 * line handed to `line` (NUL-terminated, ending in "\n", `len` bytes without
 * the NUL).  Errors: the store's, MT_ERR_NOMEM, whatever `line` returns. */
typedef enum mt_err (*mt_audit_line_cb)(const char *line, size_t len, void *arg);
MT_NODISCARD enum mt_err mt_audit_export(struct mt_audit_store *store, uint64_t from, uint64_t to,
                                         mt_audit_line_cb line, void *arg);
/* The last n records (fewer when the chain is shorter) as mt_audit_export(). */
MT_NODISCARD enum mt_err mt_audit_tail(struct mt_audit_store *store, uint64_t n,
                                       mt_audit_line_cb line, void *arg);

/* One record as a JSON line:
 *   {"seq":1,"time_ms":1764300000000,"time":"2025-11-28T03:20:00.000Z",
 *    "kind":"event","actor":"hub","action":"onboard.refused","subject":"icu-7",
 *    "outcome":"refused","detail":{...},"prev_hash":"00…","hash":"…"}
 * a checkpoint adds "checkpoint":"<hex COSE_Sign1>".  detail is embedded as
 * the JSON it is; a stored detail that is not a JSON object (a tampered
 * row) is written as the string "detail_invalid" instead, so every line
 * stays valid JSON.  Writes at most MT_AUDIT_JSON_MAX bytes.
 * Errors: MT_ERR_BUFFER, MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_audit_record_json(const struct mt_audit_record *r, char *buf,
                                              size_t cap, size_t *len);

/* The hashed encoding of `r` (every field but `hash`, see above) and its
 * SHA-256: what an independent verifier recomputes.
 * Errors: MT_ERR_AUDIT_FORMAT (a field out of bounds), MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_audit_record_encode(const struct mt_audit_record *r, uint8_t *out,
                                                size_t cap, size_t *len);
MT_NODISCARD enum mt_err mt_audit_record_hash(const struct mt_audit_record *r,
                                              uint8_t hash[MT_AUDIT_HASH_LEN]);

#endif
