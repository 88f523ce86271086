/*
 * main.c — medtrust-device: the device agent and the fleet simulator.
 *
 *   medtrust-device run --device DIR --hub URL --hub-ca FILE
 *                       [--once] [--renew-now] [--timeout S]
 *                       [options of the patient and the link]
 *   medtrust-device sim --fleet DIR --hub URL --hub-ca FILE [--devices N]
 *                       [options of the patient and the link]
 *
 * `run` is one device: DIR is a device directory made by `medtrust mfg
 * make`.  On first start it onboards by itself (agent.h: ldev and kx
 * generated in the device's store, EST enrolment with the birth
 * certificate, the bundle), then sends readings (devrt.h) until stopped,
 * renewing its certificate at 2/3 of its lifetime.  --once does the
 * identity pass alone and exits: 0 done, 2 the hub refused (its reason on
 * stderr), 1 anything else; --renew-now forces a simplereenroll in it.
 *
 * `sim` runs every device directory under --fleet (which may be given up
 * to 8 times; the first N devices, each fleet sorted by name)
 * in one process and one event loop (fleet.h), each device its own key
 * store (--soft devices), mTLS session, queue and counter, and each fed by
 * a simulated patient (physio.h; docs/simulator.md).
 *
 * Readings come from the patient model in both: a Linux-class device
 * without sensors is a simulator, and the same path carries a real
 * sensor's readings through mt_devrt_observe.  SIGINT/SIGTERM seal what
 * was taken and stop (exit 0).  One line per action on stderr, never a
 * secret.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/rand.h>

#include "agent.h"
#include "fleet.h"
#include "inject.h"

static const char usage[] =
        "usage: medtrust-device run --device DIR --hub URL --hub-ca FILE [--once] "
        "[--renew-now] [--timeout S] [OPTIONS]\n"
        "       medtrust-device sim --fleet DIR --hub URL --hub-ca FILE [--devices N] "
        "[OPTIONS]\n"
        "       medtrust-device inject --device DIR --hub URL --hub-ca FILE [--broker URL] "
        "[--leaf LEAF] [--wait S] [--repeat N] FILE...\n"
        "options: --scenario NAME (stable sepsis hypoxia dropout low-battery mixed)\n"
        "         --rate PER_MIN (samples per device per minute, default 60)\n"
        "         --batch-ms MS (default 5000)  --status-ms MS (default 60000)\n"
        "         --time-scale X (simulated seconds per second, default 1)\n"
        "         --seed N  --ecg  --broker mqtts://HOST:PORT  --duration S  --stats-s S\n"
        "         --drain (no new readings: send what is queued, exit when all is receipted)\n"
        "         --ledger DIR (the fault suite's record of counters sent and receipted)\n";

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Append the device directories under `fleet` (those holding
 * device.conf), sorted by name, to (*out)[0..*n). */
static int list_fleet(const char *fleet, char ***out, size_t *n, size_t *c)
{
	DIR *dp = opendir(fleet);
	struct dirent *de;
	char **v = *out;
	size_t first = *n;

	if (dp == NULL) {
		fprintf(stderr, "medtrust-device: cannot open --fleet %s: %s\n", fleet,
		        strerror(errno));
		return 1;
	}
	while ((de = readdir(dp)) != NULL) {
		char path[PATH_MAX];
		struct stat st;

		if (de->d_name[0] == '.' ||
		    (size_t)snprintf(path, sizeof path, "%s/%s/device.conf", fleet, de->d_name) >=
		            sizeof path ||
		    stat(path, &st) != 0)
			continue;
		if (*n == *c) {
			size_t nc = *c ? *c * 2 : 64;
			char **nv = realloc(v, nc * sizeof *nv);

			if (nv == NULL)
				break;
			v = nv;
			*c = nc;
		}
		path[strlen(path) - strlen("/device.conf")] = '\0';
		v[*n] = strdup(path);
		if (v[*n] == NULL)
			break;
		(*n)++;
	}
	closedir(dp);
	if (*n - first > 1)
		qsort(v + first, *n - first, sizeof *v, cmp_str);
	*out = v;
	return 0;
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

/* run --once: one identity pass. */
static int identity_once(const char *dir, const struct mt_agent_opts *o, bool renew)
{
	struct mt_agent_device d;
	struct mt_est_result r;
	enum mt_agent_action did = MT_AGENT_NOTHING;
	char why[MT_AGENT_WHY_MAX] = "";
	int64_t now = (int64_t)time(NULL), next = 0;
	enum mt_err e = mt_agent_device_load(dir, &d, why, sizeof why);

	if (e != MT_OK) {
		fprintf(stderr, "medtrust-device: %s\n", why[0] ? why : mt_err_str(e));
		return 1;
	}
	e = mt_agent_step(&d, o, now, renew, &did, &next, &r);
	if (e == MT_OK) {
		fprintf(stderr, "medtrust-device %s: %s; next renewal check in %lld s\n", d.serial,
		        action_name(did), (long long)(next - now));
		return 0;
	}
	fprintf(stderr, "medtrust-device %s: %s: %s\n", d.serial,
	        e == MT_ERR_REFUSED ? "refused" : "failed", r.why[0] ? r.why : mt_err_str(e));
	return e == MT_ERR_REFUSED ? 2 : 1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"device", required_argument, NULL, 'd'},  {"fleet", required_argument, NULL, 'F'},
	        {"devices", required_argument, NULL, 'N'}, {"hub", required_argument, NULL, 'u'},
	        {"hub-ca", required_argument, NULL, 'c'},  {"once", no_argument, NULL, '1'},
	        {"renew-now", no_argument, NULL, 'r'},     {"timeout", required_argument, NULL, 't'},
	        {"scenario", required_argument, NULL, 's'}, {"rate", required_argument, NULL, 'R'},
	        {"batch-ms", required_argument, NULL, 'b'}, {"status-ms", required_argument, NULL, 'S'},
	        {"time-scale", required_argument, NULL, 'x'}, {"seed", required_argument, NULL, 'e'},
	        {"ecg", no_argument, NULL, 'E'},           {"broker", required_argument, NULL, 'B'},
	        {"duration", required_argument, NULL, 'D'}, {"ledger", required_argument, NULL, 'L'},
	        {"stats-s", required_argument, NULL, 'T'}, {"drain", no_argument, NULL, 'Z'},
	        {"leaf", required_argument, NULL, 'l'},    {"wait", required_argument, NULL, 'w'},
	        {"repeat", required_argument, NULL, 'P'},
	        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *fleet[8];
	size_t n_fleet = 0, cap = 0;
	struct mt_agent_opts ao = {0};
	struct mt_fleet_opts fo = {0};
	uint64_t v, n_devices = 0, rate = 60;
	bool once = false, renew = false, sim, inject;
	struct mt_inject_opts io = {.leaf = "vitals", .wait_s = 3, .repeat = 1};
	char **dirs = NULL;
	size_t n = 0;
	struct sigaction sa;
	int c, rc;

	if (argc < 2 || (strcmp(argv[1], "run") != 0 && strcmp(argv[1], "sim") != 0 &&
	                 strcmp(argv[1], "inject") != 0)) {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
			fputs(usage, stdout);
			return 0;
		}
		fputs(usage, stderr);
		return 64;
	}
	sim = strcmp(argv[1], "sim") == 0;
	inject = strcmp(argv[1], "inject") == 0;
	fo.scenario = sim ? MT_PHYSIO_MIXED : MT_PHYSIO_STABLE;
	fo.time_scale = 1.0;
	if (RAND_bytes((unsigned char *)&fo.seed, sizeof fo.seed) != 1)
		fo.seed = (uint64_t)time(NULL);
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		bool ok = true;

		switch (c) {
		case 'd': dir = optarg; break;
		case 'F':
			ok = n_fleet < 8;
			if (ok)
				fleet[n_fleet++] = optarg;
			break;
		case 'N': ok = parse_u64(optarg, 1000000, &n_devices) && n_devices > 0; break;
		case 'u': ao.hub_url = optarg; break;
		case 'c': ao.hub_ca = optarg; break;
		case '1': once = true; break;
		case 'r': renew = true; break;
		case 't': ok = parse_u64(optarg, 600, &v); ao.timeout_s = (long)v; break;
		case 's': ok = mt_physio_scenario_parse(optarg, &fo.scenario); break;
		case 'R': ok = parse_u64(optarg, 60000, &rate) && rate > 0; break;
		case 'b': ok = parse_u64(optarg, 3600000, &v) && v >= 100; fo.batch_ms = (uint32_t)v; break;
		case 'S': ok = parse_u64(optarg, 86400000, &v) && v >= 1000; fo.status_ms = (uint32_t)v; break;
		case 'x': ok = parse_u64(optarg, 3600, &v) && v > 0; fo.time_scale = (double)v; break;
		case 'e': ok = parse_u64(optarg, UINT64_MAX, &fo.seed); break;
		case 'E': fo.ecg = true; break;
		case 'B': fo.broker = optarg; break;
		case 'D': ok = parse_u64(optarg, 365u * 86400u, &v); fo.duration_s = (uint32_t)v; break;
		case 'L': fo.ledger_dir = optarg; break;
		case 'Z': fo.drain = true; break;
		case 'l': io.leaf = optarg; break;
		case 'w': ok = parse_u64(optarg, 600, &v); io.wait_s = (unsigned)v; break;
		case 'P': ok = parse_u64(optarg, 1000000, &v) && v > 0; io.repeat = (unsigned)v; break;
		case 'T': ok = parse_u64(optarg, 86400, &v) && v > 0; fo.stats_s = (uint32_t)v; break;
		case 'h': fputs(usage, stdout); return 0;
		default: ok = false; break;
		}
		if (!ok) {
			fprintf(stderr, "medtrust-device: bad option value '%s'\n%s", optarg ? optarg : "",
			        usage);
			return 64;
		}
	}
	if (inject) {
		if (dir == NULL || ao.hub_url == NULL || ao.hub_ca == NULL || optind == argc) {
			fputs(usage, stderr);
			return 64;
		}
		signal(SIGPIPE, SIG_IGN);
		io.dir = dir;
		io.hub_url = ao.hub_url;
		io.hub_ca = ao.hub_ca;
		io.broker = fo.broker;
		io.files = (const char *const *)&argv[optind];
		io.n_files = (size_t)(argc - optind);
		return mt_inject_run(&io);
	}
	if (optind != argc || ao.hub_url == NULL || ao.hub_ca == NULL ||
	    strncmp(ao.hub_url, "https://", 8) != 0 || (sim ? n_fleet == 0 : dir == NULL) ||
	    (sim && (once || renew))) {
		fputs(usage, stderr);
		return 64;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (once)
		return identity_once(dir, &ao, renew);

	if (sim) {
		for (size_t i = 0; i < n_fleet; i++)
			if (list_fleet(fleet[i], &dirs, &n, &cap) != 0)
				return 1;
		if (n_devices > 0 && n > n_devices) {
			for (size_t i = (size_t)n_devices; i < n; i++)
				free(dirs[i]);
			n = (size_t)n_devices;
		}
		if (n == 0) {
			fprintf(stderr, "medtrust-device: no device directories under --fleet\n");
			return 1;
		}
		fo.dirs = (const char *const *)dirs;
		fo.n = n;
	} else {
		fo.dirs = &dir;
		fo.n = 1;
	}
	fo.hub_url = ao.hub_url;
	fo.hub_ca = ao.hub_ca;
	fo.timeout_s = ao.timeout_s;
	fo.sample_ms = (uint32_t)(60000 / rate);
	fo.stop = &stopping;
	fprintf(stderr, "medtrust-device: %zu device%s, scenario %s, seed %llu\n", fo.n,
	        fo.n == 1 ? "" : "s", mt_physio_scenario_name(fo.scenario),
	        (unsigned long long)fo.seed);
	rc = mt_fleet_run(&fo);
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
	return rc;
}
