/*
 * inject.c — `medtrust-device inject`: the attacker's side of the threat
 * tests (threats.md groups A and H).  A device whose key was stolen can
 * put any bytes on its own topics; this tool does exactly that with a real
 * device's identity — its operational certificate and key, over the real
 * broker — so the tests prove the hub's refusals from where an attacker
 * stands, not by calling the verifier directly.
 *
 *   medtrust-device inject --device DIR --hub URL --hub-ca FILE
 *                          [--broker URL] [--leaf LEAF] [--wait S]
 *                          [--repeat N] FILE...
 *
 * Each FILE's bytes (a packet, well-formed or not) are published as they
 * are on mt/v1/<id>/up/<LEAF> (default vitals), N times each; then the tool
 * waits S seconds (default 3) for receipts and prints one line per range
 * a receipt named ("rcpt FIRST LAST"), then a summary line.  Receipts go
 * through the device's own receipt check (a forged one is counted as
 * refused).  Exit 0 when everything was published, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devrt.h"
#include "inject.h"
#include "medtrust/mt_util.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_receipt(void *ctx, const char *dev, uint64_t first, uint64_t last)
{
	(void)ctx;
	(void)dev;
	printf("rcpt %llu %llu\n", (unsigned long long)first, (unsigned long long)last);
	fflush(stdout);
}

/* Run the client until `until_ms` or `done` says so. */
static void pump(struct mt_devrt *rt, uint64_t until_ms, bool (*done)(const struct mt_devrt *))
{
	uint64_t t;

	while ((t = now_ms()) < until_ms && !(done && done(rt))) {
		struct pollfd p = {.fd = mt_devrt_socket(rt), .events = POLLIN};

		if (p.fd >= 0 && mt_devrt_want_write(rt))
			p.events |= POLLOUT;
		if (p.fd >= 0 && poll(&p, 1, 20) < 0)
			break;
		if (p.fd < 0) {
			struct timespec ts = {0, 20000000L};

			nanosleep(&ts, NULL);
		}
		mt_devrt_service(rt, (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0,
		                 (p.revents & POLLOUT) != 0, now_ms());
	}
}

int mt_inject_run(const struct mt_inject_opts *o)
{
	struct mt_agent_device d;
	struct mt_agent_opts ao = {o->hub_url, o->hub_ca, 30};
	struct mt_devrt_opts ro = {.broker = o->broker, .status_ms = UINT32_MAX,
	                           .resend_ms = UINT32_MAX, .on_receipt = on_receipt};
	struct mt_devrt *rt = NULL;
	struct mt_devrt_stats st;
	struct mt_est_result r;
	enum mt_agent_action did;
	char why[MT_AGENT_WHY_MAX] = "";
	int64_t next = 0;
	size_t published = 0, want = 0;
	enum mt_err e = mt_agent_device_load(o->dir, &d, why, sizeof why);

	if (e == MT_OK)
		e = mt_agent_step(&d, &ao, (int64_t)time(NULL), false, &did, &next, &r);
	if (e == MT_OK)
		e = mt_devrt_open(&d, &ro, &rt, why, sizeof why);
	if (e != MT_OK) {
		fprintf(stderr, "medtrust-device inject: %s\n", why[0] ? why : mt_err_str(e));
		return 1;
	}
	pump(rt, now_ms() + 15000, mt_devrt_connected);
	if (!mt_devrt_connected(rt)) {
		fprintf(stderr, "medtrust-device inject: %s: not connected to the broker\n", d.serial);
		mt_devrt_close(rt);
		return 1;
	}
	for (size_t i = 0; i < o->n_files; i++) {
		uint8_t *buf = NULL;
		size_t len = 0;

		if (mt_file_read(o->files[i], 1u << 20, &buf, &len) != MT_OK) {
			fprintf(stderr, "medtrust-device inject: cannot read %s\n", o->files[i]);
			continue;
		}
		for (unsigned k = 0; k < o->repeat; k++) {
			want++;
			if (mt_devrt_publish_raw(rt, o->leaf, buf, len) == MT_OK)
				published++;
			/* keep the link moving between publishes */
			mt_devrt_service(rt, false, true, now_ms());
		}
		free(buf);
	}
	pump(rt, now_ms() + (uint64_t)o->wait_s * 1000u, NULL);
	mt_devrt_stats(rt, &st);
	printf("published %zu of %zu, receipts %llu, refused receipts %llu\n", published, want,
	       (unsigned long long)st.receipts, (unsigned long long)st.refused_receipts);
	mt_devrt_close(rt);
	return published == want ? 0 : 1;
}
