/*
 * main.c — medtrust-device, the device agent (this part: identity; the
 * MQTT transport and readings come with the next part).
 *
 *   medtrust-device run --device DIR --hub URL --hub-ca FILE
 *                       [--once] [--renew-now] [--timeout S]
 *
 * DIR is a device directory made by `medtrust mfg make`.  On first start
 * the agent onboards by itself (agent.h): ldev and kx generated in the
 * device's store, EST enrolment with the birth certificate, the bundle.
 * Then it sleeps until 2/3 of its certificate's lifetime and renews; a
 * certificate that expired while the device was off is replaced by a fresh
 * enrolment with the birth certificate.  Failures back off exponentially
 * with jitter (5 s doubling to 15 min), so a fleet coming back after an
 * outage does not storm the hub.
 *
 * --once does one pass and exits: 0 done, 2 the hub refused (its reason
 * on stderr), 1 anything else.  --renew-now forces a simplereenroll in
 * that pass.  One line per action on stderr, never a secret.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "agent.h"

static const char usage[] = "usage: medtrust-device run --device DIR --hub URL --hub-ca FILE "
                            "[--once] [--renew-now] [--timeout S]\n";

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Sleep up to `s` seconds, waking early on a stop signal. */
static void nap(int64_t s)
{
	while (s > 0 && !stopping) {
		struct timespec ts = {1, 0};

		nanosleep(&ts, NULL);
		s--;
	}
}

static const char *action_name(enum mt_agent_action a)
{
	switch (a) {
	case MT_AGENT_ENROLLED: return "enrolled with the birth certificate and onboarded";
	case MT_AGENT_RENEWED: return "renewed the operational certificate";
	case MT_AGENT_NOTHING: break;
	}
	return "certificate current";
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"device", required_argument, NULL, 'd'}, {"hub", required_argument, NULL, 'u'},
	        {"hub-ca", required_argument, NULL, 'c'}, {"once", no_argument, NULL, '1'},
	        {"renew-now", no_argument, NULL, 'r'},   {"timeout", required_argument, NULL, 't'},
	        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	struct mt_agent_opts o = {0};
	struct mt_agent_device d;
	bool once = false, renew = false;
	char why[MT_AGENT_WHY_MAX] = "";
	int64_t backoff = 5;
	struct sigaction sa;
	enum mt_err e;
	int c;

	if (argc < 2 || strcmp(argv[1], "run") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
			fputs(usage, stdout);
			return 0;
		}
		fputs(usage, stderr);
		return 64;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'u': o.hub_url = optarg; break;
		case 'c': o.hub_ca = optarg; break;
		case '1': once = true; break;
		case 'r': renew = true; break;
		case 't': o.timeout_s = strtol(optarg, NULL, 10); break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 64;
		}
	}
	if (optind != argc || dir == NULL || o.hub_url == NULL || o.hub_ca == NULL ||
	    strncmp(o.hub_url, "https://", 8) != 0 || o.timeout_s < 0 || o.timeout_s > 600) {
		fputs(usage, stderr);
		return 64;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	e = mt_agent_device_load(dir, &d, why, sizeof why);
	if (e != MT_OK) {
		fprintf(stderr, "medtrust-device: %s\n", why[0] ? why : mt_err_str(e));
		return 1;
	}
	while (!stopping) {
		struct mt_est_result r;
		enum mt_agent_action did = MT_AGENT_NOTHING;
		int64_t now = (int64_t)time(NULL), next = 0;

		e = mt_agent_step(&d, &o, now, renew, &did, &next, &r);
		renew = false;
		if (e == MT_OK) {
			fprintf(stderr, "medtrust-device %s: %s; next renewal check in %lld s\n",
			        d.serial, action_name(did), (long long)(next - now));
			if (once)
				return 0;
			backoff = 5;
			nap(next - now > 3600 ? 3600 : next - now < 1 ? 1 : next - now);
			continue;
		}
		fprintf(stderr, "medtrust-device %s: %s: %s\n", d.serial,
		        e == MT_ERR_REFUSED ? "refused" : "failed", r.why[0] ? r.why : mt_err_str(e));
		if (once)
			return e == MT_ERR_REFUSED ? 2 : 1;
		{
			uint8_t j = 0;

			if (RAND_bytes(&j, 1) != 1)
				j = 0;
			nap(backoff + (backoff * j) / 512); /* up to +50 % jitter */
		}
		backoff = backoff * 2 > 900 ? 900 : backoff * 2;
	}
	return 0;
}
