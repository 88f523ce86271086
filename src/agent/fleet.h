/*
 * fleet.h — running devices: one (`medtrust-device run`) or many virtual
 * ones in one process and one event loop (`medtrust-device sim`), each
 * with its own identity, key store, mTLS session, queue and counter, fed
 * by a simulated patient (physio.h).  docs/simulator.md, docs/device-agent.md.
 *
 * Per device, in this order: load DIR/device.conf; onboard or renew
 * (agent.h: EST over HTTPS to the hub); open the telemetry runtime
 * (devrt.h); then sample the patient every sample_ms, send device alarms
 * at once as fast packets, batch the rest.  Identity checks come back at
 * 2/3 of the certificate's life; a device whose hub refuses or cannot be
 * reached retries with jittered back-off and does not hold up the others.
 *
 * Several devices in one process need key stores that can live side by
 * side: --soft devices (encrypted key files, one set per device), or a
 * single token device (SoftHSM2's configuration is per process).
 */
#ifndef MT_AGENT_FLEET_H
#define MT_AGENT_FLEET_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "physio.h"

struct mt_fleet_opts {
	const char *const *dirs; /* device directories (from medtrust mfg make) */
	size_t n;
	const char *hub_url, *hub_ca;
	long timeout_s;          /* EST calls; 0 = 30 */
	const char *broker;      /* NULL: each bundle's broker URL */
	enum mt_physio_scenario scenario;
	uint64_t seed;
	double time_scale;       /* simulated seconds per second (≥ 1) */
	uint32_t sample_ms;      /* 0 = 1000 */
	uint32_t batch_ms;       /* 0 = 5000 */
	uint32_t status_ms;      /* 0 = 60000 */
	bool ecg;                /* bedside monitors add a 1 s ECG strip per batch */
	const char *ledger_dir;  /* NULL: none; else <id>.sent and <id>.rcpt lines */
	uint32_t duration_s;     /* 0: until *stop */
	uint32_t stats_s;        /* a summary line every stats_s (0 = 10) */
	bool drain;              /* no new readings: send what is queued, stop when
	                          * every queue is empty (or duration_s passes) */
	volatile sig_atomic_t *stop;
};

/* Run until *stop (or duration_s); returns a process exit status: 0, 1
 * (nothing could run: every device failed to load or open), 64 (usage). */
int mt_fleet_run(const struct mt_fleet_opts *o);

#endif
