/*
 * fhir.h — the FHIR R4 read API of medtrustd (clinical.md §1, §5;
 * docs/fhir.md; threats G01–G10).
 *
 *   GET /fhir/metadata                          CapabilityStatement (no auth)
 *   GET /fhir/Patient/{id}, /fhir/Patient?identifier=[system|]MRN
 *   GET /fhir/Observation/{id}, /fhir/Observation?patient=&code=&date=&_count=
 *   GET /fhir/Device/{id}, /fhir/Device?patient=ID
 *   GET /fhir/Provenance/{id}, /fhir/Provenance?target=Observation/ID
 *
 * Every resource request needs a bearer token from the token endpoint
 * (smart.h) whose scopes cover the type and the interaction (read by id:
 * 'r', search: 's').  Only JSON is spoken: an XML format asked for is 406,
 * and there is no XML parser in the process at all (G01).  Requests are
 * read strictly: GET (or HEAD) without a body, a bounded query of known
 * parameters (an unknown, repeated, chained or modified parameter is a 400
 * OperationOutcome, never ignored: G02, G03), values that are UTF-8
 * without control characters (G06), references only to this server (G08),
 * `_count` clamped to 100 (said in an outcome entry of the Bundle: G09).
 *
 * Resource ids are the store's and the registry's own keys, so they are
 * the same after a restart (G10): a patient's row id, a device's serial,
 * `r<reading id>-<observation index>` for an observation and
 * `r<reading id>` for the provenance of one signed reading.
 *
 * Threads: mt_fhir_handle is called from any HTTPS worker; the module's
 * store and registry connections are used under one lock.
 */
#ifndef MT_HUB_FHIR_H
#define MT_HUB_FHIR_H

#include <stddef.h>

#include "console.h"
#include "https.h"
#include "medtrust/mt_deploy.h"
#include "smart.h"

struct mt_fhir;

/* Open over deployment `d` (borrowed) with the authorization `smart`
 * (borrowed): a readings-store connection and a read-only registry
 * connection of its own.  A store that cannot be opened is not fatal:
 * resource requests then answer 503.  Errors: MT_ERR_ARG, MT_ERR_NOMEM,
 * mt_registry_open_readonly's.  `why` gets a sentence (also for the
 * non-fatal case). */
MT_NODISCARD enum mt_err mt_fhir_open(struct mt_deploy *d, struct mt_smart *smart,
                                      mt_console_audit_fn audit, void *audit_arg,
                                      struct mt_fhir **out, char *why, size_t why_cap);
void mt_fhir_close(struct mt_fhir *f);

/* Answer a request under /fhir (thread-safe). */
void mt_fhir_handle(struct mt_fhir *f, const struct mt_https_req *rq, struct mt_https_resp *rs);

#endif
