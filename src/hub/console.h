/*
 * console.h — the web console of medtrustd: sign-in, the live ward and
 * patient pages for clinicians, the fleet for biomedical engineers,
 * administration, the audit chain for auditors; HTML built in the hub
 * behind its HTTPS server (https.h), with sessions, CSRF tokens, lockout,
 * roles and a strict Content-Security-Policy (docs/console.md; threats
 * F01–F10, F12, F13, F16, F17).
 *
 *   GET  /                  303 to the home page of the user's role, or /login
 *   GET  /login, POST /login       sign in (user, password, code, csrf)
 *   GET  /password, POST /password change the password; forced after a
 *                                  one-time password
 *   GET  /reauth, POST /reauth     the password again before an
 *                                  administrative change
 *   POST /logout            sign out (csrf)
 *   /ward, /patient/<id>, /api/stream, /api/alarms[/ack], /api/patient/…
 *                           clinicians (the stream and alarms: biomed too)
 *   /fleet, /onboarding, /api/fleet        biomedical engineers
 *   /admin…                 administrators
 *   /audit…                 auditors and administrators
 *   GET  /static/<name>     the stylesheet, the pages' scripts, uPlot
 *
 * docs/console.md has every route.
 *
 * The hub routes here every request that is not EST (/.well-known/),
 * device API (/mt/) or /healthz (hub.c), after its per-source rate limit.
 *
 * Threads: mt_console_handle is called from any HTTPS worker.  Sessions,
 * the users database and the readings store each have their own lock;
 * logins are serialised (one argon2id computation, 64 MiB, at a time).
 */
#ifndef MT_HUB_CONSOLE_H
#define MT_HUB_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "https.h"
#include "medtrust/mt_audit.h"
#include "medtrust/mt_deploy.h"

struct mt_console;

/* How the console writes audit records (the hub's mt_hub_audit). */
typedef void (*mt_console_audit_fn)(void *arg, const char *actor, const char *action,
                                    const char *subject, enum mt_audit_outcome outcome,
                                    const char *detail);

/* Open the console of deployment `d` (borrowed: it must outlive the
 * console): its users (mt_users_open on db_path) and a readings-store
 * connection of its own (mt_deploy_open_store).  Call it on the thread
 * that opens the deployment's other stores (it may open the KEK).  A
 * store that cannot be opened is not fatal: the console then answers
 * /ward with 503 and says why on stderr; `why` gets the sentence.
 * Errors: MT_ERR_ARG, MT_ERR_NOMEM, MT_ERR_RANDOM, mt_users_open's. */
MT_NODISCARD enum mt_err mt_console_open(struct mt_deploy *d, mt_console_audit_fn audit,
                                         void *audit_arg, struct mt_console **out, char *why,
                                         size_t why_cap);
void mt_console_close(struct mt_console *c);

/* The live stream (GET /api/stream) and the alarm endpoints (GET
 * /api/alarms, POST /api/alarms/ack) need the clinical engine and its
 * live hub; without them they answer 503.  Set before serving. */
struct mt_live;
struct mt_clinical;
void mt_console_set_clinical(struct mt_console *c, struct mt_live *live,
                             struct mt_clinical *clin);

/* The fleet page's "Rotate epoch" action (docs/console-fleet.md) sends a
 * signed rotate-epoch command through this hook (the ingest's
 * mt_ingest_rotate_hook): it sets the epochs and the command counter, or
 * fails with a sentence in why.  NULL (no ingest): the action answers 503.
 * Set it, or clear it with NULL, at any time: the setter waits for a
 * rotation in progress, so after clearing it nothing calls fn again. */
typedef enum mt_err (*mt_console_rotate_fn)(void *arg, const char *dev, uint32_t *old_epoch,
                                            uint32_t *new_epoch, uint64_t *ctr, char *why,
                                            size_t why_cap);
void mt_console_set_rotate(struct mt_console *c, mt_console_rotate_fn fn, void *arg);

/* Answer one request (thread-safe).  Every answer carries the console's
 * security headers (CSP, HSTS, Referrer-Policy, X-Frame-Options, ...). */
void mt_console_handle(struct mt_console *c, const struct mt_https_req *rq,
                       struct mt_https_resp *rs);

#endif
