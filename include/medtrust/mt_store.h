/*
 * mt_store.h — the readings store: what the hub keeps of every accepted
 * packet, encrypted at rest (protocol §4a, §5; threats A13, J04, J05, FI03,
 * FI05, FI09).
 *
 * One SQLite database (`data_path` in medtrust.conf, default
 * DIR/data.db), separate from the registry so that the broker's plugin,
 * which reads the registry, never waits on ingest.  WAL mode with
 * `synchronous=FULL`: once mt_store_commit returns MT_OK the rows survive a
 * power cut, and only then may the hub send a receipt.
 *
 * At rest: every reading's signed Sign1 (which holds the message, and so
 * the observations) and every patient's identity are AES-256-GCM
 * ciphertext under a data-encryption key (DEK).  DEKs are random, wrapped
 * by the key-encryption key in the hub's token (mt_kek_wrap) and stored
 * wrapped; unwrapped DEKs live only in this process's memory and are wiped
 * at close.  A ciphertext's AAD binds it to its row (the table and every
 * other column: device, counter, DEK id, times, flags, certificate,
 * patient; a patient's id, ward and bed), so rows cannot be edited,
 * swapped or moved without failing to decrypt (docs/storage.md gives the
 * exact layout).  Nothing in a plain column repeats a reading's value or a
 * patient's name: a stolen database file reveals neither (J04).
 *
 * Each stored reading keeps the device-signed Sign1 exactly as received,
 * with the serial of the operational certificate current at ingest, so
 * `medtrust verify-record` can re-verify it to the device's key, that
 * certificate and the operator CA long after (J05).
 *
 * The anti-replay window (mt_replay.h) of each device lives here too and
 * is written in the same transaction as the readings it protects (§5).
 *
 * Writes are grouped: mt_store_begin, any number of puts, mt_store_commit.
 * A store is used by one thread at a time (the hub's committer); open
 * another for readers.  Passing failures — a full disk (MT_ERR_STORE_FULL),
 * a lock held past the busy timeout (MT_ERR_STORE_BUSY) — roll the whole
 * transaction back and leave the store usable: the caller sends no receipt
 * and the device sends the packets again.
 */
#ifndef MT_STORE_H
#define MT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"
#include "mt_keystore.h"
#include "mt_message.h"
#include "mt_replay.h"

#define MT_STORE_SKEWED 1u    /* ts more than 5 min ahead of the hub's clock */
#define MT_STORE_STALE 2u     /* ts more than 24 h old */
#define MT_STORE_CERT_MAX 41  /* certificate serial, lowercase hex, and a NUL */
#define MT_STORE_TEXT_MAX 256 /* patient fields */
/* A data key encrypts at most this many rows, for at most this long. */
#define MT_STORE_DEK_MAX_ROWS UINT64_C(1000000)
#define MT_STORE_DEK_MAX_AGE_MS UINT64_C(86400000)

struct mt_store;

/* Open (creating when absent) the store at `path` with the KEK `kek`,
 * which the store borrows (it must outlive the store).  `kek` may be NULL
 * for a store that only counts and lists (no decryption, no new DEK).
 * Errors: MT_ERR_STORE_DB, MT_ERR_NOMEM, MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_store_open(const char *path, struct mt_kek *kek,
                                       struct mt_store **out);
/* Close; wipes every unwrapped DEK.  An open transaction is rolled back.
 * NULL is allowed. */
void mt_store_close(struct mt_store *s);

/* Bound each data key to `max_rows` rows and `max_age_ms` of life (0:
 * the defaults MT_STORE_DEK_MAX_ROWS, MT_STORE_DEK_MAX_AGE_MS); the next
 * write past either bound makes a new DEK.  For tests and operators who
 * want shorter key lives. */
void mt_store_set_dek_limits(struct mt_store *s, uint64_t max_rows, uint64_t max_age_ms);

/* WAL checkpoints.  By default SQLite copies the WAL back into the
 * database inside a commit once it holds 1,000 pages: that commit then
 * takes as long as the copy and its fsync.  A writer whose commits must
 * stay short (the hub's committer) turns that off and lets another
 * connection run mt_store_checkpoint (PASSIVE: it never blocks writers)
 * every second or so.  Errors: MT_ERR_ARG, MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_autocheckpoint(struct mt_store *s, bool on);
MT_NODISCARD enum mt_err mt_store_checkpoint(struct mt_store *s);

/* Deferred durability.  By default (synchronous=FULL) COMMIT returns once
 * the WAL is fsync'ed — and holds the database's write lock through that
 * fsync, so every other writer (an alarm among them) waits for the disk.
 * mt_store_defer_sync(s) switches this connection to synchronous=NORMAL:
 * COMMIT writes the WAL and returns (the rows survive a crash of the
 * process, not yet a power cut), and mt_store_sync — on any connection to
 * the same file, from its own thread — fsyncs the WAL, making every commit
 * made before it durable.  Whatever promises durability to the outside (a
 * receipt, an HL7 message, an audit record naming a row) must wait for an
 * mt_store_sync that began after the commit.  Errors: MT_ERR_ARG,
 * MT_ERR_STORE_DB, MT_ERR_STORE_FULL (the fsync failed). */
MT_NODISCARD enum mt_err mt_store_defer_sync(struct mt_store *s);
MT_NODISCARD enum mt_err mt_store_sync(struct mt_store *s);

/* ---- the write transaction (one thread) -------------------------------- */

/* BEGIN IMMEDIATE.  Errors: MT_ERR_STORE_BUSY, MT_ERR_STORE_DB,
 * MT_ERR_ARG (a transaction is already open). */
MT_NODISCARD enum mt_err mt_store_begin(struct mt_store *s);
/* COMMIT.  On any error the transaction has been rolled back.  Errors:
 * MT_ERR_STORE_FULL, MT_ERR_STORE_BUSY, MT_ERR_STORE_DB (also: no
 * transaction open).  When a call inside the transaction already failed
 * for a passing reason, the transaction is gone and commit returns that
 * error again. */
MT_NODISCARD enum mt_err mt_store_commit(struct mt_store *s);
/* ROLLBACK (harmless without a transaction). */
void mt_store_rollback(struct mt_store *s);

/* The device's window (inside the transaction, so that two hubs on one
 * database never both accept a counter); an empty window (mt_replay_init)
 * when the device has none yet.  The window is not encrypted (counters
 * only).  Errors: MT_ERR_STORE_DB (also: a stored state that does not
 * load), the passing failures.  Saving needs an open transaction
 * (MT_ERR_ARG otherwise). */
MT_NODISCARD enum mt_err mt_store_window_load(struct mt_store *s, const char *dev,
                                              struct mt_replay *w);
MT_NODISCARD enum mt_err mt_store_window_save(struct mt_store *s, const char *dev,
                                              const struct mt_replay *w);

/* One accepted sealed packet. */
struct mt_store_reading {
	const char *dev;
	uint64_t ctr;
	uint32_t epoch;
	uint8_t typ;            /* 1 vitals, 3 status, 4 ack (2: a sealed alert, outside MQTT) */
	uint64_t ts_ms;         /* the message's ts (device clock) */
	uint64_t received_ms;   /* hub clock at receipt */
	unsigned flags;         /* MT_STORE_SKEWED | MT_STORE_STALE */
	const char *cert_serial;/* operational certificate current at ingest */
	const uint8_t *sign1;   /* the inner COSE_Sign1, exactly as received */
	size_t sign1_len;
};

/* Store one reading (inside the transaction).  The reading is tied to the
 * patient the device is assigned to at ts_ms (0 when none).  A (dev, ctr)
 * already stored is MT_ERR_PKT_DUPLICATE and changes nothing (the window
 * should have caught it; this is the backstop); the transaction goes on.
 * *id (may be NULL) gets the row id.  Errors: MT_ERR_PKT_DUPLICATE,
 * MT_ERR_STORE_FULL, MT_ERR_STORE_BUSY (both roll the transaction back),
 * MT_ERR_STORE_DB, MT_ERR_CRYPTO, key store errors (wrapping a new DEK),
 * MT_ERR_ARG (no transaction open, a store without a KEK, or a field out
 * of range: dev not a device id, ctr ≥ 2^63, typ not 1..4, cert_serial
 * not 1–40 lowercase hex digits, sign1 empty or over MT_PACKET_MAX). */
MT_NODISCARD enum mt_err mt_store_reading_put(struct mt_store *s,
                                              const struct mt_store_reading *r, int64_t *id);

/* One alert raised from a fast packet (typ 2, not signed: kept as an
 * event, never as observations).  The message bytes are encrypted like a
 * reading, and tied to the device's patient at ts_ms.  Errors as
 * mt_store_reading_put. */
MT_NODISCARD enum mt_err mt_store_alert_put(struct mt_store *s, const char *dev, uint64_t ctr,
                                            uint64_t ts_ms, uint64_t received_ms,
                                            const uint8_t *msg, size_t msg_len, int64_t *id);

/* A stored alert, decrypted (mt_store_alert_get). */
struct mt_store_alert_row {
	int64_t id;
	char dev[MT_DEVICE_ID_MAX + 1];
	uint64_t ctr;
	uint64_t ts_ms, received_ms;
	int64_t patient_id;     /* 0: none */
	uint8_t *msg;           /* the fast packet's message (malloc'ed); cleared by
	                           mt_store_alert_row_clear */
	size_t msg_len;
};

/* Alert `id`, decrypted.  Errors as mt_store_reading_get. */
MT_NODISCARD enum mt_err mt_store_alert_get(struct mt_store *s, int64_t id,
                                            struct mt_store_alert_row *row);
void mt_store_alert_row_clear(struct mt_store_alert_row *row);

/* ---- reading back --------------------------------------------------------- */

struct mt_store_row {
	int64_t id;
	char dev[MT_DEVICE_ID_MAX + 1];
	uint64_t ctr;
	uint32_t epoch;
	uint8_t typ;
	uint64_t ts_ms, received_ms;
	unsigned flags;
	char cert_serial[MT_STORE_CERT_MAX];
	int64_t patient_id;     /* 0: none */
	uint8_t *sign1;         /* decrypted (malloc'ed); mt_store_row_clear wipes and frees */
	size_t sign1_len;
};

/* Reading `id`, decrypted.  Errors: MT_ERR_NOT_FOUND, MT_ERR_STORE_TAMPERED
 * (the ciphertext or its row does not authenticate: edited, moved, or its
 * DEK does not unwrap), MT_ERR_STORE_DB, MT_ERR_NOMEM, MT_ERR_ARG (store
 * opened without a KEK). */
MT_NODISCARD enum mt_err mt_store_reading_get(struct mt_store *s, int64_t id,
                                              struct mt_store_row *row);
void mt_store_row_clear(struct mt_store_row *row);

/* Ids of stored readings with first ≤ id ≤ last (0 and INT64_MAX for
 * all), ascending, `cb` called for each; a non-MT_OK return from `cb`
 * stops the walk and is returned.  `cb` may read the store (it runs on a
 * statement of its own).  Errors: MT_ERR_STORE_DB, cb's. */
MT_NODISCARD enum mt_err mt_store_reading_ids(struct mt_store *s, int64_t first, int64_t last,
                                              enum mt_err (*cb)(void *ctx, int64_t id),
                                              void *ctx);

/* Readings stored for `dev` (NULL: all devices), and their counters in
 * ascending order into ctrs[0..cap) when ctrs is not NULL (for the
 * no-loss reconciliation); *n is the number stored, which may be more
 * than cap.  Both work on a store without a KEK.  Errors: MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_count(struct mt_store *s, const char *dev, uint64_t *n);
MT_NODISCARD enum mt_err mt_store_counters(struct mt_store *s, const char *dev,
                                           uint64_t *ctrs, size_t cap, size_t *n);

/* ---- patients (identity encrypted at rest) -------------------------------- */

struct mt_patient {
	int64_t id;
	char name[MT_STORE_TEXT_MAX + 1];       /* encrypted at rest */
	char mrn[MT_STORE_TEXT_MAX + 1];        /* medical record number, encrypted */
	char birth_date[MT_STORE_TEXT_MAX + 1]; /* YYYY-MM-DD or "", encrypted */
	char ward[65];                          /* plain: what the console filters on */
	char bed[33];                           /* plain */
	char room[33];                          /* plain */
	char sex[16];                           /* "male" "female" "other" "unknown" (FHIR
	                                           gender codes) or ""; encrypted */
	/* NEWS2 settings (clinical.md §2), set by a clinician; plain (no identity). */
	bool spo2_scale2;  /* SpO2 scale 2 (hypercapnic respiratory failure, target 88–92 %) */
	char oxygen;       /* 'A' air, 'O' supplemental oxygen, 0 unknown (scored as air,
	                      and the assumption shown) */
	char acvpu;        /* 'A' alert, 'C' new confusion, 'V' voice, 'P' pain,
	                      'U' unresponsive, 0 unknown (scored as alert, shown) */
	bool news2_na;     /* NEWS2 not applicable (under 16, pregnant): not computed */
};

/* Patients are stored with an AAD version (docs/patients.md): rows written
 * by this version are MT_STORE_PATIENT_AAD_V, sealed over every plain
 * column (ward, bed, room, the NEWS2 settings) with [name, MRN, birth date,
 * sex] inside; rows written before room, sex and the NEWS2 settings
 * existed are version 1 and still read (sex "", settings at their
 * defaults; a version-1 row whose new columns are not at their defaults
 * reads as tampered).  mt_store_patient_update rewrites a row as the
 * current version. */
#define MT_STORE_PATIENT_AAD_V 2
#define MT_STORE_RULE_MAX 256 /* bytes of a per-patient rule's text */

/* Whether `p` is a patient record the store accepts (what
 * mt_store_patient_add and _update check, short of the clock): name and
 * MRN 1..MT_STORE_TEXT_MAX bytes, ward, bed and room within their arrays,
 * every text NUL-terminated UTF-8 without control characters, birth_date
 * "" or a real YYYY-MM-DD date (leap years counted), sex "" or one of the
 * four FHIR codes, oxygen 0/'A'/'O', acvpu 0/'A'/'C'/'V'/'P'/'U'. */
bool mt_store_patient_valid(const struct mt_patient *p);

/* Add a patient (own transaction: not inside mt_store_begin/commit); *id
 * gets the new id.  Ward, bed and room may be empty; birth_date is "" or
 * YYYY-MM-DD.  p->id is ignored.  Errors: MT_ERR_ARG (what
 * mt_store_patient_valid refuses, a transaction open, a store without a
 * KEK), MT_ERR_STORE_DB, MT_ERR_STORE_BUSY, MT_ERR_STORE_FULL, key store
 * errors. */
MT_NODISCARD enum mt_err mt_store_patient_add(struct mt_store *s, const struct mt_patient *p,
                                              int64_t *id);
/* Replace patient p->id's record with *p (own transaction), re-encrypted
 * under the current data key with a fresh IV and the current AAD
 * version.  The caller reads, changes and writes back (the CLI's `patient
 * edit` changes only the fields given).  Errors: MT_ERR_NOT_FOUND,
 * MT_ERR_ARG (as mt_store_patient_add; p->id < 1), MT_ERR_STORE_DB,
 * MT_ERR_STORE_BUSY, MT_ERR_STORE_FULL, key store errors. */
MT_NODISCARD enum mt_err mt_store_patient_update(struct mt_store *s, const struct mt_patient *p);
/* Patient `id`, decrypted.  Errors: MT_ERR_NOT_FOUND, MT_ERR_STORE_TAMPERED,
 * MT_ERR_STORE_DB, MT_ERR_ARG (a store without a KEK). */
MT_NODISCARD enum mt_err mt_store_patient_get(struct mt_store *s, int64_t id,
                                              struct mt_patient *p);
/* The id of the patient whose MRN is exactly `mrn` (byte for byte): the
 * lowest such id when several share it.  There is no index on the MRN
 * (it is ciphertext): this decrypts every patient row, one AES-GCM open
 * each (microseconds; a DEK unwraps once, then is cached), so it costs
 * O(patients) — about a millisecond per thousand patients.  Errors:
 * MT_ERR_NOT_FOUND, MT_ERR_STORE_TAMPERED (a row on the way does not
 * authenticate: the scan stops rather than skip it), MT_ERR_STORE_DB,
 * MT_ERR_ARG (NULL, a store without a KEK). */
MT_NODISCARD enum mt_err mt_store_patient_find_mrn(struct mt_store *s, const char *mrn,
                                                   int64_t *id);
/* All patients' ids, ascending, into ids[0..cap); *n the total. */
MT_NODISCARD enum mt_err mt_store_patient_ids(struct mt_store *s, int64_t *ids, size_t cap,
                                              size_t *n);

/* ---- per-patient threshold rules ---------------------------------------- */

/* One rule line of a patient (plain text: thresholds, no identity).  The
 * store keeps the text as given; its grammar (mt_rules.h) is checked by
 * the caller before mt_store_rule_add. */
struct mt_patient_rule {
	int64_t id;
	int64_t patient_id;
	char text[MT_STORE_RULE_MAX + 1];
	uint64_t created_ms;
};

/* Add rule `text` (1..MT_STORE_RULE_MAX bytes of UTF-8 without control
 * characters) to patient `patient_id` (own transaction); *id (may be
 * NULL) gets its id.  Errors: MT_ERR_NOT_FOUND (no such patient),
 * MT_ERR_ARG (text, a transaction open), MT_ERR_STORE_DB,
 * MT_ERR_STORE_BUSY, MT_ERR_STORE_FULL. */
MT_NODISCARD enum mt_err mt_store_rule_add(struct mt_store *s, int64_t patient_id,
                                           const char *text, int64_t *id);
/* Delete rule `id` (own transaction); *patient_id (may be NULL) gets the
 * patient it belonged to.  Errors: MT_ERR_NOT_FOUND, MT_ERR_ARG,
 * MT_ERR_STORE_DB, MT_ERR_STORE_BUSY. */
MT_NODISCARD enum mt_err mt_store_rule_del(struct mt_store *s, int64_t id, int64_t *patient_id);
/* Patient `patient_id`'s rules (0: every patient's), by id; cb as for
 * mt_store_reading_ids (it may read the store).  A row that is not a
 * rule the store could have written is MT_ERR_STORE_DB.  Errors:
 * MT_ERR_STORE_DB, MT_ERR_ARG, cb's. */
MT_NODISCARD enum mt_err mt_store_rules(struct mt_store *s, int64_t patient_id,
                                        enum mt_err (*cb)(void *ctx,
                                                          const struct mt_patient_rule *r),
                                        void *ctx);

/* ---- device assignments ----------------------------------------------------- */

/* Assign device `dev` to patient `patient_id` from `since_ms` on (own
 * transaction), ending its previous assignment at since_ms; patient_id 0
 * unassigns.  An assignment covers [since_ms, the next one's since_ms).
 * Errors: MT_ERR_NOT_FOUND (no such patient), MT_ERR_ARG (dev not a
 * device id; since_ms before the start of the device's open assignment;
 * a transaction open), MT_ERR_STORE_DB, MT_ERR_STORE_BUSY. */
MT_NODISCARD enum mt_err mt_store_assign(struct mt_store *s, const char *dev,
                                         int64_t patient_id, uint64_t since_ms);
/* The patient `dev` is assigned to at `at_ms` (0: none).  Errors:
 * MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_assigned(struct mt_store *s, const char *dev, uint64_t at_ms,
                                           int64_t *patient_id);

/* One assignment: `dev` measured `patient_id` over [since_ms, until_ms),
 * or from since_ms on when `open`. */
struct mt_assignment {
	int64_t id;
	char dev[MT_DEVICE_ID_MAX + 1];
	int64_t patient_id;
	uint64_t since_ms;
	uint64_t until_ms; /* 0 when open */
	bool open;
};

/* Assignments of device `dev` (NULL: any) and patient `patient_id` (0:
 * any), ordered by device then since_ms; cb as for mt_store_reading_ids.
 * Works on a store without a KEK (nothing is decrypted).  Errors:
 * MT_ERR_ARG, MT_ERR_STORE_DB, cb's. */
MT_NODISCARD enum mt_err mt_store_assignments(struct mt_store *s, const char *dev,
                                              int64_t patient_id,
                                              enum mt_err (*cb)(void *ctx,
                                                                const struct mt_assignment *a),
                                              void *ctx);

/* ---- the export journal --------------------------------------------------- */

/* What the journal's entries refer to: a stored vitals reading (exported
 * as HL7 PCD-01) or an alarm transition (alarm_events row, PCD-04). */
#define MT_JOURNAL_READING 1
#define MT_JOURNAL_ALARM 2

/* Append an entry (inside the transaction; mt_store_reading_put does it
 * for every vitals reading).  Its seq is the next of an AUTOINCREMENT
 * key: increasing and never reused, so an HL7 control id derived from it
 * survives restarts (G10).  Errors: MT_ERR_ARG, MT_ERR_STORE_DB. */
MT_NODISCARD enum mt_err mt_store_journal_add(struct mt_store *s, int kind, int64_t ref);

#endif
