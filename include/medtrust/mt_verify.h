/*
 * mt_verify.h — re-verifying a stored reading long after it was stored
 * (`medtrust verify-record`; threat J05, DESIGN "evidence": stored
 * readings keep their device signatures).
 *
 * A reading is good when every one of these holds, checked in this order
 * (the verdict names the first that fails):
 *
 *   1. its row decrypts (mt_store_reading_get): nothing in the row was
 *      edited, moved or swapped                       MT_ERR_STORE_TAMPERED
 *   2. the registry holds the operational certificate the row names
 *      (cert_serial), issued to the row's device      MT_ERR_PKI_UNTRUSTED,
 *                                                      MT_ERR_PKT_DEV
 *   3. that certificate chains to the operator CA `ca` and was valid
 *      (and not yet revoked) when the hub received the reading — the hub's
 *      clock, not the device's: the device clock may be skewed, and a
 *      queued reading sent after a renewal is stored under the certificate
 *      current at ingest, which the same ldev key signed   MT_ERR_PKI_*
 *   4. its subject CN is the row's device             MT_ERR_PKT_DEV
 *   5. the Sign1 is strict, tagged and of the exact layout of protocol §4
 *                                                      MT_ERR_PKT_INNER
 *   6. its protected header names the algorithm of the certificate's key
 *      type (ES256 for P-256, EdDSA for Ed25519)      MT_ERR_PKT_ALG
 *   7. its kid is the certificate key's kid           MT_ERR_PKT_KID
 *   8. its signature verifies with that key           MT_ERR_PKT_SIGNATURE
 *   9. its payload is a valid message (protocol §5) whose dev, ctr, ts and
 *      typ are the row's columns                      MT_ERR_PKT_MESSAGE
 *
 * A reading that is not stored has the verdict MT_ERR_NOT_FOUND.
 *
 * Revocation: a certificate revoked after the reading was received does
 * not spoil the reading (devices are revoked and decommissioned every
 * day; what they signed before stays evidence); one revoked at or before
 * the reading's receipt does.
 */
#ifndef MT_VERIFY_H
#define MT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"
#include "mt_pki.h"
#include "mt_registry.h"
#include "mt_store.h"

/* Re-verify reading `id` of store `s` (opened with the KEK) against the
 * registry `reg` and the operator CA certificate `ca`.  Returns MT_OK when
 * a verdict was reached, and the verdict in *verdict: MT_OK for a good
 * reading, else the code of the first check that failed (above), with a
 * sentence in why[0..why_cap) (may be NULL).  Other returns mean that no
 * verdict could be reached: MT_ERR_ARG (NULL arguments, a store without a
 * KEK), MT_ERR_STORE_DB, MT_ERR_STORE_BUSY, MT_ERR_REG_DB, MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_verify_reading(struct mt_store *s, struct mt_registry *reg,
                                           const struct mt_cert *ca, int64_t id,
                                           enum mt_err *verdict, char *why, size_t why_cap);

#endif
