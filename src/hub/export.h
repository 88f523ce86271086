/*
 * export.h — the HL7 senders' source: the store's export journal rendered
 * as IHE PCD-01 (a stored vitals reading) and PCD-04 (an alarm
 * transition) messages (docs/hl7.md, clinical.md §4).
 *
 * The journal (mt_store.h) is written in the same transaction as what it
 * points at, so it is the durable outbound queue: a hub that dies between
 * storing a reading and sending it sends it after its restart, with the
 * same control id (derived from the journal seq; G10).  Messages are
 * rendered when sent, from the encrypted rows, so no patient identity sits
 * in a queue of its own.
 */
#ifndef MT_HUB_EXPORT_H
#define MT_HUB_EXPORT_H

#include "hl7out.h"
#include "medtrust/mt_deploy.h"

struct mt_export;

/* A source over deployment d's store (its own connection, under a lock:
 * the senders call from several threads).  Errors: store errors. */
MT_NODISCARD enum mt_err mt_export_open(struct mt_deploy *d, struct mt_export **out);
void mt_export_close(struct mt_export *x);
/* The callbacks for mt_hl7out_opts.src. */
struct mt_hl7_source mt_export_source(struct mt_export *x);

/* Start the HL7 senders the deployment configures (hl7_dest), with their
 * cursors in hl7out.db beside the data store.  *out NULL and MT_OK when no
 * destination is configured.  `why` says what failed. */
MT_NODISCARD enum mt_err mt_export_start_senders(struct mt_deploy *d, struct mt_export *x,
                                                 void (*audit)(void *ctx, const char *actor,
                                                               const char *action,
                                                               const char *subject,
                                                               enum mt_audit_outcome outcome,
                                                               const char *detail),
                                                 void *audit_ctx,
                                                 void (*on_park)(void *ctx, const char *dest,
                                                                 uint64_t seq,
                                                                 const char *control_id,
                                                                 const char *text),
                                                 void *park_ctx, struct mt_hl7out **out,
                                                 char *why, size_t why_cap);

#endif
