/*
 * mt_registry.h — the hub's device registry: trusted manufacturers, the
 * device manifests imported from them (the whitelist), every device's
 * status and keys, and every operational certificate issued (protocol §1,
 * §2; docs/registry.md; threats D01–D06).
 *
 * The registry is a set of tables in the deployment's SQLite database
 * (medtrust.db, beside the audit chain): WAL journal, synchronous=FULL,
 * a busy timeout, so the CLI and medtrustd may use it at once.  One handle
 * is used by one thread at a time (the hub serialises its calls).
 *
 * A device's life, as statuses:
 *
 *   manifested ──enrol──▶ active ──revoke──▶ revoked ──decommission──▶ decommissioned
 *        │                  └──────────────decommission──────────────────▶ │
 *        └──────────────────────────decommission──────────────────────────▶ │
 *                                                  release ◀───────────────┘
 *                                                     ▼
 *                                                  released ──(another manifest claims it)──▶ manifested
 *
 * Only `manifested` and `active` devices may enrol; `revoked` needs
 * nothing more than a new manifest claim after release to come back, which
 * takes an explicit biomedical-engineer action (threat D06).  Nothing is
 * ever deleted: certificates and status changes stay for the audit.
 *
 * Times are Unix seconds, given by the caller (the library reads no
 * clock).  Serials of certificates are lowercase hex of their magnitude.
 */
#ifndef MT_REGISTRY_H
#define MT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_crypto.h"
#include "mt_err.h"
#include "mt_manifest.h"
#include "mt_message.h"
#include "mt_pki.h"

#define MT_REG_NAME_MAX 128     /* manufacturer name (the root's subject CN) */
#define MT_REG_REASON_MAX 64
#define MT_REG_CERT_SERIAL_MAX 41 /* 20 bytes in hex and a NUL */
#define MT_REG_ROOTS_MAX 64     /* trusted manufacturer roots */

enum mt_dev_status {
	MT_DEV_MANIFESTED = 1,
	MT_DEV_ACTIVE = 2,
	MT_DEV_REVOKED = 3,
	MT_DEV_DECOMMISSIONED = 4,
	MT_DEV_RELEASED = 5,
};

/* "manifested", "active", ...; "?" for anything else. */
const char *mt_dev_status_name(enum mt_dev_status s);

struct mt_device_rec {
	char serial[MT_DEVICE_ID_MAX + 1];
	char device_class[MT_MANIFEST_CLASS_MAX + 1];
	int64_t manufacturer_id;
	int64_t manifest_id;
	uint8_t birth_kid[MT_KID_LEN];
	uint8_t birth_cert_sha256[32];
	enum mt_dev_status status;
	char status_reason[MT_REG_REASON_MAX + 1];
	uint8_t ldev_spki[MT_SPKI_MAX]; /* ldev_spki_len 0: not enrolled yet */
	size_t ldev_spki_len;
	uint8_t kx_spki[MT_SPKI_MAX];   /* kx_spki_len 0: not onboarded yet */
	size_t kx_spki_len;
	uint32_t epoch;                 /* key epoch: 0 until onboarded */
	char cert_serial[MT_REG_CERT_SERIAL_MAX]; /* the newest operational cert */
	int64_t cert_not_after;
	int64_t enrolled_at;            /* 0: never */
	int64_t updated_at;
};

struct mt_registry;

/* Open the registry in the SQLite database `path` (created when absent),
 * creating its tables when missing.  Errors: MT_ERR_ARG, MT_ERR_REG_DB,
 * MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_registry_open(const char *path, struct mt_registry **out);
void mt_registry_close(struct mt_registry *r);

/* ---- manufacturers ---------------------------------------------------- */

/* Trust `root` (a self-signed CA certificate with keyCertSign) as a
 * manufacturer root; its name is its subject CN.  *id is the
 * manufacturer's id; *existed says it was trusted already (nothing
 * changed).  Errors: MT_ERR_PKI_ISSUER (not a self-signed CA that verifies
 * itself), MT_ERR_PKI_EXPIRED / MT_ERR_PKI_NOT_YET_VALID (at `now`),
 * MT_ERR_BUFFER (more than MT_REG_ROOTS_MAX roots), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_add_manufacturer(struct mt_registry *r,
                                                      const struct mt_cert *root, int64_t now,
                                                      int64_t *id, bool *existed);

/* The trusted roots, loaded: roots[i] (owned by the registry, valid until
 * the next add or close) with ids[i].  Errors: MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_roots(struct mt_registry *r,
                                           const struct mt_cert *const **roots,
                                           const int64_t **ids, size_t *n);

/* Which trusted root `leaf` (with `intermediates`) chains to for
 * `purpose`, verified at `now` with mt_pki_verify: *mfg_id.  Errors:
 * mt_pki_verify's verdict for the first root tried when none accepts it
 * (MT_ERR_PKI_UNTRUSTED when there are no roots), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_chain_to_root(struct mt_registry *r,
                                                   const struct mt_cert *leaf,
                                                   const struct mt_cert *const *intermediates,
                                                   size_t n_intermediates,
                                                   enum mt_pki_purpose purpose, int64_t now,
                                                   int64_t *mfg_id);

/* ---- manifests -------------------------------------------------------- */

struct mt_registry_import {
	int64_t manifest_id;
	int64_t manufacturer_id;
	size_t added;     /* new serials */
	size_t claimed;   /* released serials taken over by this manifest */
	size_t unchanged; /* already there with the same birth identity */
	char conflict_serial[MT_DEVICE_ID_MAX + 1]; /* the first conflict, if any */
};

/* Import a device manifest (protocol §1) as a whole or not at all: its
 * COSE signature must verify with the certificate in its x5chain, that
 * certificate must chain (as a signer) to a trusted manufacturer root at
 * `now`, and no entry may conflict with a device already registered under
 * another manufacturer or birth key unless that device was released
 * (threat D05).  Importing the same manifest again changes nothing.
 * `why` (cap ≥ 1) receives a sentence on refusal.  Errors: the
 * mt_manifest_open errors (bad shape or signature), MT_ERR_REG_UNTRUSTED,
 * MT_ERR_REG_CONFLICT (res->conflict_serial names it), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_import_manifest(struct mt_registry *r, const uint8_t *buf,
                                                     size_t len, int64_t now,
                                                     struct mt_registry_import *res, char *why,
                                                     size_t why_cap);

/* ---- devices ---------------------------------------------------------- */

/* The device `serial`.  Errors: MT_ERR_REG_UNKNOWN, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_device(struct mt_registry *r, const char *serial,
                                            struct mt_device_rec *out);

/* Call cb for every device in serial order (cb returning non-MT_OK stops
 * and is returned).  status 0 = all. */
typedef enum mt_err (*mt_registry_device_cb)(const struct mt_device_rec *d, void *arg);
MT_NODISCARD enum mt_err mt_registry_devices(struct mt_registry *r, enum mt_dev_status status,
                                             mt_registry_device_cb cb, void *arg);

/* Record an enrolment: the operational certificate `cert` issued for the
 * device's `ldev` key, whose DER SPKI (the key the certificate carries,
 * which the caller already holds) is ldev_spki[0..ldev_len); the device
 * becomes active.  When `supersede` is set (a fresh enrolment with the
 * birth certificate), every earlier unexpired, unrevoked certificate of the
 * device is revoked with reason superseded and *n_superseded says how many
 * (it may be NULL).  Errors: MT_ERR_REG_UNKNOWN, MT_ERR_REG_STATE (not
 * manifested or active), MT_ERR_ARG, MT_ERR_REG_DB, certificate parsing
 * errors. */
MT_NODISCARD enum mt_err mt_registry_enrolled(struct mt_registry *r, const char *serial,
                                              const struct mt_cert *cert,
                                              const uint8_t *ldev_spki, size_t ldev_len,
                                              bool supersede, int64_t now,
                                              size_t *n_superseded);

/* Record the device's kx key (DER SPKI): a new key starts a new key epoch
 * (*epoch), the same key keeps the current one.  Errors: MT_ERR_REG_UNKNOWN,
 * MT_ERR_REG_STATE (not active), MT_ERR_ARG, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_set_kx(struct mt_registry *r, const char *serial,
                                            const uint8_t *spki, size_t len, int64_t now,
                                            uint32_t *epoch);

/* A rotate-epoch command is about to be sent (protocol §4, §6): in one
 * transaction take the device's next command counter (*ctr: strictly
 * increasing per device, 1 for the first command, persistent) and move
 * its key epoch N → N+1 (*old_epoch, *new_epoch).  From the commit on,
 * the hub accepts packets of N+1 and N (the one before), and N only until
 * the next rotation.  A counter taken for a command that then could not
 * be sent is simply skipped (the device needs strictly increasing, not
 * consecutive).  Errors: MT_ERR_ARG, MT_ERR_REG_UNKNOWN, MT_ERR_REG_STATE
 * (not active, not onboarded, or the epoch is at 2^32 − 1: re-onboard),
 * MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_rotate_epoch(struct mt_registry *r, const char *serial,
                                                  int64_t now, uint32_t *old_epoch,
                                                  uint32_t *new_epoch, uint64_t *ctr);

/* The last command counter taken for the device (0: none yet).  Errors:
 * MT_ERR_ARG, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_command_counter(struct mt_registry *r, const char *serial,
                                                     uint64_t *ctr);

/* Revoke the device: status revoked (from manifested or active; a revoked
 * device stays revoked), every unrevoked certificate revoked with
 * `reason`, *n_certs of them (may be NULL).  Errors: MT_ERR_REG_UNKNOWN,
 * MT_ERR_REG_STATE (decommissioned or released), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_revoke(struct mt_registry *r, const char *serial,
                                            enum mt_pki_reason reason, int64_t now,
                                            size_t *n_certs);

/* Decommission: revoke (reason cessationOfOperation) and mark
 * decommissioned; records stay.  Errors: MT_ERR_REG_UNKNOWN,
 * MT_ERR_REG_STATE (already decommissioned or released), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_decommission(struct mt_registry *r, const char *serial,
                                                  int64_t now, size_t *n_certs);

/* Release a decommissioned device so that another owner's manifest may
 * claim it.  Errors: MT_ERR_REG_UNKNOWN, MT_ERR_REG_STATE (not
 * decommissioned), MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_release(struct mt_registry *r, const char *serial,
                                             int64_t now);

/* ---- certificates and the CRL ----------------------------------------- */

struct mt_cert_rec {
	char serial[MT_REG_CERT_SERIAL_MAX];
	char device[MT_DEVICE_ID_MAX + 1];
	int64_t not_before, not_after, issued_at;
	int64_t revoked_at; /* 0: not revoked */
	enum mt_pki_reason reason;
};

/* The certificate with serial (lowercase hex) `serial`.  Errors:
 * MT_ERR_NOT_FOUND, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_cert(struct mt_registry *r, const char *serial,
                                          struct mt_cert_rec *out);

/* The same, and the certificate itself, parsed from the DER stored when
 * it was issued (*cert is new: the caller frees it with mt_cert_free);
 * `out` may be NULL.  For re-verifying what a certificate signed long
 * after it was issued (medtrust verify-record, threat J05).  Errors:
 * MT_ERR_NOT_FOUND, MT_ERR_PKI_FORMAT (the stored DER does not parse),
 * MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_cert_load(struct mt_registry *r, const char *serial,
                                               struct mt_cert_rec *out, struct mt_cert **cert);

/* Revoked certificates still unexpired at `now` (what a CRL must list),
 * as a malloc'ed array the caller frees with mt_registry_revoked_free.
 * Errors: MT_ERR_REG_DB, MT_ERR_NOMEM. */
struct mt_registry_revoked {
	uint8_t serial[20];
	size_t serial_len;
	int64_t when;
	enum mt_pki_reason reason;
};
MT_NODISCARD enum mt_err mt_registry_revoked_list(struct mt_registry *r, int64_t now,
                                                  struct mt_registry_revoked **out, size_t *n);
void mt_registry_revoked_free(struct mt_registry_revoked *list);

/* Take the next CRL number (persistent, strictly increasing; the first is
 * 2, as medtrust init signs CRL number 1) and record
 * the CRL's nextUpdate.  Errors: MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_crl_next(struct mt_registry *r, int64_t next_update,
                                              uint64_t *number);

/* nextUpdate of the newest CRL made, 0 when none. */
MT_NODISCARD enum mt_err mt_registry_crl_next_update(struct mt_registry *r, int64_t *next_update);

/* Lowercase hex of a certificate's serial (MT_ERR_BUFFER if over 20 bytes). */
MT_NODISCARD enum mt_err mt_registry_cert_serial_hex(const struct mt_cert *c,
                                                     char out[MT_REG_CERT_SERIAL_MAX]);

/* ---- read-only access (the broker plugin, plugins/mosquitto/) --------- */

/* Open the registry in the existing SQLite database `path` for reading
 * only: nothing is created or written — no schema, no journal-mode
 * change, `PRAGMA query_only` — and the registry's tables must already be
 * there.  For a process that only decides (the mosquitto plugin) while the
 * CLI and medtrustd write: in WAL mode a reader never waits for a writer.
 * Its busy timeout is short (250 ms), as its caller (a broker's event loop)
 * must not stall.  Every writing function refuses on such a handle
 * (MT_ERR_REG_DB).  Errors: MT_ERR_ARG, MT_ERR_REG_DB (no such file, not
 * an SQLite database, no registry tables in it), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_registry_open_readonly(const char *path, struct mt_registry **out);

/* A number that differs from the one the previous call gave whenever
 * another connection committed a change to the database in between
 * (SQLite's PRAGMA data_version): poll it, read only when it moved.
 * Errors: MT_ERR_ARG, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_data_version(struct mt_registry *r, int64_t *version);

/* The registry's record of the certificate `c` exactly as it was issued:
 * the row of c's serial, provided the DER stored with it is byte for byte
 * c's DER (so a certificate of another issuer that happens to share a
 * serial is not mistaken for it).  Errors: MT_ERR_ARG, MT_ERR_NOT_FOUND
 * (no such serial, or another certificate under it), MT_ERR_BUFFER (a
 * serial over 20 bytes), MT_ERR_PKI_FORMAT, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_cert_issued(struct mt_registry *r, const struct mt_cert *c,
                                                 struct mt_cert_rec *out);

/* A withdrawal of a device's access, as recorded: either it is revoked,
 * decommissioned or released (cert_serial "", `at` its updated_at) or one
 * of its certificates was revoked (cert_serial that certificate, `at` its
 * revoked_at).  `status` is the device's status now.  (A manifested device
 * never had access: imports are not withdrawals.) */
struct mt_registry_withdrawal {
	char device[MT_DEVICE_ID_MAX + 1];
	char cert_serial[MT_REG_CERT_SERIAL_MAX];
	enum mt_dev_status status;
	int64_t at;
};
typedef enum mt_err (*mt_registry_withdrawal_cb)(const struct mt_registry_withdrawal *w,
                                                 void *arg);

/* Call cb for every withdrawal recorded at or after `since` (Unix
 * seconds): every revoked, decommissioned or released device whose
 * updated_at >= since, every certificate whose revoked_at >= since; in
 * order of `at`.  The same
 * withdrawal is reported again by a later call with an earlier or equal
 * `since`: a caller that polls keeps what it handled (the plugin keys it
 * by device, serial and time).  cb returning non-MT_OK stops and is
 * returned.  Errors: MT_ERR_ARG, MT_ERR_REG_DB. */
MT_NODISCARD enum mt_err mt_registry_withdrawals_since(struct mt_registry *r, int64_t since,
                                                       mt_registry_withdrawal_cb cb,
                                                       void *arg);

#endif
