/*
 * fleet.c — one event loop running devices (fleet.h says what and why).
 *
 * The loop: poll() over every connected device's socket (at most 50 ms),
 * then, for each device, mt_devrt_service (I/O, keep-alive, reconnect,
 * batch, status, resend) and whatever its patient has due (a sample every
 * sample_ms, an alarm at once).  Devices start staggered over the first
 * sample period so that batches and TLS handshakes do not all fall on the
 * same instant (FIELD-NOTES: a reconnect storm costs the broker ~2.5 ms
 * of CPU per device).
 *
 * The ledger (--ledger DIR), for the fault suite: every counter sealed and
 * queued is appended to DIR/<id>.sent before it is published, every
 * receipt range to DIR/<id>.rcpt; lines are flushed every second and at
 * exit.  A checker compares them with what the hub stored
 * (tests/fault/).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "agent.h"
#include "devrt.h"
#include "fleet.h"

#define ECG_SAMPLES 250u

struct fdev {
	struct mt_agent_device d;
	struct mt_devrt *rt;
	struct mt_physio_patient p;
	bool loaded;
	int64_t next_identity_s;  /* next mt_agent_step */
	int64_t identity_backoff_s;
	uint64_t next_sample_ms, next_ecg_ms;
	FILE *sent, *rcpt;
	int32_t ecg[ECG_SAMPLES];
	uint8_t ecg_bytes[ECG_SAMPLES * 5];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t rand_below(uint64_t n)
{
	uint32_t r = 0;

	if (n == 0 || RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		return 0;
	return r % n;
}

/* ---- the ledger ---------------------------------------------------------------- */

static void on_sent(void *ctx, const char *dev, uint64_t ctr, unsigned typ)
{
	struct fdev *f = ctx;

	(void)dev;
	if (f->sent != NULL)
		fprintf(f->sent, "%llu %u\n", (unsigned long long)ctr, typ);
}

static void on_receipt(void *ctx, const char *dev, uint64_t first, uint64_t last)
{
	struct fdev *f = ctx;

	(void)dev;
	if (f->rcpt != NULL)
		fprintf(f->rcpt, "%llu %llu\n", (unsigned long long)first, (unsigned long long)last);
}

static FILE *ledger_open(const char *dir, const char *id, const char *ext)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof path, "%s/%s.%s", dir, id, ext) >= sizeof path)
		return NULL;
	return fopen(path, "a");
}

/* ---- one device ------------------------------------------------------------------- */

/* Onboard or renew when due; open the runtime once onboarded. */
static void identity(const struct mt_fleet_opts *o, struct fdev *f, size_t index, int64_t now)
{
	struct mt_agent_opts ao = {o->hub_url, o->hub_ca, o->timeout_s};
	struct mt_est_result r;
	enum mt_agent_action did = MT_AGENT_NOTHING;
	int64_t next = 0;
	enum mt_err e;

	if (now < f->next_identity_s)
		return;
	e = mt_agent_step(&f->d, &ao, now, false, &did, &next, &r);
	if (e != MT_OK) {
		fprintf(stderr, "medtrust-device %s: %s: %s\n", f->d.serial,
		        e == MT_ERR_REFUSED ? "refused" : "failed", r.why[0] ? r.why : mt_err_str(e));
		f->next_identity_s = now + f->identity_backoff_s +
		                     (int64_t)rand_below((uint64_t)f->identity_backoff_s / 2 + 1);
		f->identity_backoff_s =
		        f->identity_backoff_s * 2 > 900 ? 900 : f->identity_backoff_s * 2;
		return;
	}
	f->identity_backoff_s = 5;
	f->next_identity_s = next > now + 3600 ? now + 3600 : next;
	if (did != MT_AGENT_NOTHING)
		fprintf(stderr, "medtrust-device %s: %s\n", f->d.serial,
		        did == MT_AGENT_ENROLLED ? "enrolled and onboarded" : "certificate renewed");
	if (f->rt == NULL) {
		struct mt_devrt_opts ro = {
		        .batch_ms = o->batch_ms, .broker = o->broker,
		        .status_ms = o->drain ? UINT32_MAX : o->status_ms,
		        .on_sent = on_sent, .on_receipt = on_receipt, .hook_ctx = f,
		};
		enum mt_physio_class c = MT_PHYSIO_WEARABLE;
		char why[MT_AGENT_WHY_MAX] = "";
		uint64_t t = now_ms();

		e = mt_devrt_open(&f->d, &ro, &f->rt, why, sizeof why);
		if (e != MT_OK) {
			fprintf(stderr, "medtrust-device %s: %s\n", f->d.serial,
			        why[0] ? why : mt_err_str(e));
			f->next_identity_s = now + 30;
			return;
		}
		if (!mt_physio_class_parse(f->d.device_class, &c))
			c = MT_PHYSIO_WEARABLE;
		mt_physio_init(&f->p, mt_physio_scenario_for(o->scenario, index), c, o->seed + index,
		               o->time_scale, t);
		f->next_sample_ms = t + rand_below(o->sample_ms ? o->sample_ms : 1000);
		f->next_ecg_ms = t + (o->batch_ms ? o->batch_ms : 5000);
	}
}

/* The patient's due samples and alarms. */
static void patient(const struct mt_fleet_opts *o, struct fdev *f, uint64_t t)
{
	struct mt_obs obs[MT_PHYSIO_OBS_MAX];
	struct mt_physio_alarm a;
	size_t n = 0;

	if (t < f->next_sample_ms)
		return;
	f->next_sample_ms += o->sample_ms ? o->sample_ms : 1000;
	if (f->next_sample_ms < t) /* a stall: do not replay missed ticks */
		f->next_sample_ms = t + (o->sample_ms ? o->sample_ms : 1000);
	if (mt_physio_sample(&f->p, t, t, obs, MT_PHYSIO_OBS_MAX, &n) != MT_OK)
		return;
	if (n > 0 && mt_devrt_observe(f->rt, obs, n, t) != MT_OK)
		fprintf(stderr, "medtrust-device %s: reading not queued\n", f->d.serial);
	if (o->ecg && t >= f->next_ecg_ms) {
		struct mt_obs w;

		f->next_ecg_ms = t + (o->batch_ms ? o->batch_ms : 5000);
		if (mt_physio_ecg(&f->p, t, f->ecg, ECG_SAMPLES, f->ecg_bytes, sizeof f->ecg_bytes,
		                  &w) == MT_OK &&
		    mt_devrt_observe(f->rt, &w, 1, t) != MT_OK)
			fprintf(stderr, "medtrust-device %s: ECG strip not queued\n", f->d.serial);
	}
	while (mt_physio_alarm(&f->p, t, &a)) {
		enum mt_err e = mt_devrt_alert(f->rt, a.code, a.prio, a.text, a.obs, a.n_obs, t);

		if (e != MT_OK)
			fprintf(stderr, "medtrust-device %s: ALARM %u not sent: %s\n", f->d.serial,
			        (unsigned)a.code, mt_err_str(e));
	}
	mt_devrt_set_battery(f->rt, mt_physio_battery(&f->p));
}

/* Every loaded device running with an empty queue. */
static bool drained(struct fdev *fs, size_t n)
{
	struct mt_devrt_stats s;

	for (size_t i = 0; i < n; i++) {
		if (!fs[i].loaded)
			continue;
		if (fs[i].rt == NULL)
			return false;
		mt_devrt_stats(fs[i].rt, &s);
		if (s.queued > 0)
			return false;
	}
	return true;
}

static void stats_line(struct fdev *fs, size_t n)
{
	struct mt_devrt_stats s, sum = {0};
	size_t up = 0, open = 0;

	for (size_t i = 0; i < n; i++) {
		if (fs[i].rt == NULL)
			continue;
		open++;
		mt_devrt_stats(fs[i].rt, &s);
		up += s.connected;
		sum.sealed += s.sealed;
		sum.receipts += s.receipts;
		sum.released += s.released;
		sum.queued += s.queued;
		sum.resent += s.resent;
		sum.alerts += s.alerts;
		sum.refused_receipts += s.refused_receipts;
	}
	fprintf(stderr,
	        "medtrust-device: %zu/%zu devices connected, %zu running; sealed %llu, alerts %llu, "
	        "receipts %llu releasing %llu, queued %zu, resent %llu\n",
	        up, n, open, (unsigned long long)sum.sealed, (unsigned long long)sum.alerts,
	        (unsigned long long)sum.receipts, (unsigned long long)sum.released, sum.queued,
	        (unsigned long long)sum.resent);
}

int mt_fleet_run(const struct mt_fleet_opts *o)
{
	struct fdev *fs = calloc(o->n ? o->n : 1, sizeof *fs);
	struct pollfd *pfd = calloc(o->n ? o->n : 1, sizeof *pfd);
	size_t *pix = calloc(o->n ? o->n : 1, sizeof *pix);
	size_t loaded = 0, tokens = 0;
	uint64_t start = now_ms(), last_stats = start, last_flush = start;
	int rc = 1;

	if (fs == NULL || pfd == NULL || pix == NULL)
		goto out;
	for (size_t i = 0; i < o->n; i++) {
		char why[MT_AGENT_WHY_MAX] = "";
		enum mt_err e = mt_agent_device_load(o->dirs[i], &fs[i].d, why, sizeof why);

		if (e != MT_OK) {
			fprintf(stderr, "medtrust-device: %s: %s\n", o->dirs[i],
			        why[0] ? why : mt_err_str(e));
			continue;
		}
		fs[i].loaded = true;
		fs[i].identity_backoff_s = 5;
		tokens += fs[i].d.softhsm2_conf[0] != '\0';
		loaded++;
		if (o->ledger_dir != NULL) {
			fs[i].sent = ledger_open(o->ledger_dir, fs[i].d.serial, "sent");
			fs[i].rcpt = ledger_open(o->ledger_dir, fs[i].d.serial, "rcpt");
			if (fs[i].sent == NULL || fs[i].rcpt == NULL) {
				fprintf(stderr, "medtrust-device: cannot write the ledger in %s\n",
				        o->ledger_dir);
				goto out;
			}
		}
	}
	if (loaded == 0)
		goto out;
	if (tokens > 0 && loaded > 1) {
		fprintf(stderr, "medtrust-device: %zu of the devices keep their keys in a token; "
		                "several devices in one process need --soft devices (one "
		                "SoftHSM2 configuration per process)\n", tokens);
		rc = 64;
		goto out;
	}
	while (!*o->stop) {
		uint64_t t = now_ms();
		int64_t now_s = (int64_t)(t / 1000);
		size_t np = 0;

		if (o->duration_s > 0 && t - start >= (uint64_t)o->duration_s * 1000u)
			break;
		for (size_t i = 0; i < o->n; i++) {
			int fd;

			if (!fs[i].loaded)
				continue;
			identity(o, &fs[i], i, now_s);
			if (fs[i].rt == NULL || (fd = mt_devrt_socket(fs[i].rt)) < 0)
				continue;
			pfd[np].fd = fd;
			pfd[np].events = POLLIN | (mt_devrt_want_write(fs[i].rt) ? POLLOUT : 0);
			pfd[np].revents = 0;
			pix[np++] = i;
		}
		if (poll(pfd, np, 50) < 0 && errno != EINTR)
			break;
		t = now_ms();
		{
			size_t k = 0;

			for (size_t i = 0; i < o->n; i++) {
				bool rd = false, wr = false;

				if (fs[i].rt == NULL)
					continue;
				if (k < np && pix[k] == i) {
					rd = (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
					wr = (pfd[k].revents & POLLOUT) != 0;
					k++;
				}
				mt_devrt_service(fs[i].rt, rd, wr, t);
				if (!o->drain)
					patient(o, &fs[i], t);
			}
		}
		if (o->drain && drained(fs, o->n)) {
			fprintf(stderr, "medtrust-device: every queue is empty (drained)\n");
			break;
		}
		if (t - last_flush >= 1000) {
			for (size_t i = 0; i < o->n; i++) {
				if (fs[i].sent)
					fflush(fs[i].sent);
				if (fs[i].rcpt)
					fflush(fs[i].rcpt);
			}
			last_flush = t;
		}
		if (t - last_stats >= (uint64_t)(o->stats_s ? o->stats_s : 10) * 1000u) {
			stats_line(fs, o->n);
			last_stats = t;
		}
	}
	/* Seal what was taken, and give the link a moment to carry it. */
	{
		uint64_t t = now_ms(), until = t + 500;

		for (size_t i = 0; i < o->n; i++)
			if (fs[i].rt != NULL && mt_devrt_flush(fs[i].rt, t) != MT_OK)
				fprintf(stderr, "medtrust-device %s: last batch kept unsealed\n",
				        fs[i].d.serial);
		while ((t = now_ms()) < until)
			for (size_t i = 0; i < o->n; i++)
				if (fs[i].rt != NULL)
					mt_devrt_service(fs[i].rt, true, true, t);
	}
	stats_line(fs, o->n);
	rc = 0;
out:
	for (size_t i = 0; fs != NULL && i < o->n; i++) {
		mt_devrt_close(fs[i].rt);
		if (fs[i].sent)
			fclose(fs[i].sent);
		if (fs[i].rcpt)
			fclose(fs[i].rcpt);
	}
	free(fs);
	free(pfd);
	free(pix);
	return rc;
}
