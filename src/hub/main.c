/*
 * main.c — medtrustd, the hub daemon (this issue: onboarding over HTTPS;
 * ingest, storage and the console come with later parts).
 *
 *   medtrustd [-c CONF] [--listen ADDR] [--port N] [--threads N]
 *             [--port-file FILE]
 *
 * It runs in the foreground (a service manager supervises it), logs one
 * line per start, stop and failure on stderr, and never logs a secret.
 * Start-up fails closed: a configuration it cannot read, a CA, TLS key or
 * certificate it cannot open, or an address it cannot bind is exit 1 with
 * the reason — the daemon never serves with half its trust material
 * (threat B13).  --port 0 binds any free port; --port-file then receives
 * the port (for tests and scripts), written only once the server listens.
 *
 * Signals: SIGTERM and SIGINT stop it cleanly (exit 0, after a signed
 * audit checkpoint over what this run recorded); they are blocked
 * in every thread and taken by the main thread, which otherwise wakes every
 * few seconds for the periodic work (mt_hub_tick: CRL renewal, audit
 * checkpoints).  SIGPIPE is ignored (a peer closing mid-write is an
 * ordinary event for a server).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hub.h"
#include "https.h"
#include "medtrust/mt_keystore.h"

#define TICK_SECONDS 5

static const char usage[] =
        "usage: medtrustd [-c CONF] [--listen ADDR] [--port N] [--threads N] "
        "[--port-file FILE]\n";

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (unsigned long)(*s - '0')) / 10)
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*out = v;
	return true;
}

static int write_port(const char *path, uint16_t port)
{
	char tmp[4096], text[16];
	int n = snprintf(tmp, sizeof tmp, "%s.tmp", path), fd;
	int tl = snprintf(text, sizeof text, "%u\n", (unsigned)port);

	if (n < 0 || (size_t)n >= sizeof tmp)
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, text, (size_t)tl) != tl || close(fd) != 0)
		return -1;
	return rename(tmp, path);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"listen", required_argument, NULL, 'l'},
	        {"port", required_argument, NULL, 'p'},
	        {"threads", required_argument, NULL, 't'},
	        {"port-file", required_argument, NULL, 'f'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *conf = NULL, *listen_addr = NULL, *port_s = NULL, *threads_s = NULL,
	           *port_file = NULL;
	struct mt_https_opts o = {0};
	struct mt_https *srv = NULL;
	struct mt_hub *hub = NULL;
	SSL_CTX *ctx = NULL;
	char why[512] = "";
	sigset_t sigs;
	unsigned long v;
	uint64_t cfg;
	enum mt_err e;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'l': listen_addr = optarg; break;
		case 'p': port_s = optarg; break;
		case 't': threads_s = optarg; break;
		case 'f': port_file = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 64;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every worker */

	e = mt_hub_open(conf, &hub, why, sizeof why);
	if (e != MT_OK) {
		fprintf(stderr, "medtrustd: cannot start: %s\n", why[0] ? why : mt_err_str(e));
		return 1;
	}
	struct mt_deploy *d = mt_hub_deploy(hub);

	o.addr = listen_addr ? listen_addr : mt_deploy_get(d, "hub_listen");
	if (o.addr == NULL)
		o.addr = "127.0.0.1";
	if (port_s == NULL && mt_deploy_get(d, "hub_port") != NULL)
		port_s = mt_deploy_get(d, "hub_port");
	if (port_s == NULL)
		o.port = MT_DEPLOY_HUB_PORT;
	else if (parse_uint(port_s, 65535, &v))
		o.port = (uint16_t)v;
	else {
		fprintf(stderr, "medtrustd: port '%s' is not a number from 0 to 65535\n", port_s);
		goto out;
	}
	if (threads_s != NULL) {
		if (!parse_uint(threads_s, 64, &v) || v == 0) {
			fprintf(stderr, "medtrustd: --threads '%s' is not from 1 to 64\n", threads_s);
			goto out;
		}
		o.threads = (unsigned)v;
	} else if (mt_deploy_uint(d, "hub_threads", 2, 64, &cfg) == MT_OK) {
		o.threads = (unsigned)cfg;
	}
	e = mt_hub_ssl_ctx(hub, &ctx, why, sizeof why);
	if (e != MT_OK) {
		fprintf(stderr, "medtrustd: %s\n", why);
		goto out;
	}
	o.ssl_ctx = ctx;
	o.on_refuse = mt_hub_refused;
	{
		bool signed_crl = false;

		e = mt_hub_tick(hub, mt_deploy_now(), &signed_crl);
		if (e != MT_OK)
			fprintf(stderr, "medtrustd: periodic work failed: %s\n", mt_err_str(e));
	}
	e = mt_https_start(&o, mt_hub_handle, hub, &srv);
	if (e != MT_OK) {
		fprintf(stderr, "medtrustd: cannot listen on %s port %u: %s\n", o.addr,
		        (unsigned)o.port, mt_err_str(e));
		goto out;
	}
	if (port_file != NULL && write_port(port_file, mt_https_port(srv)) != 0) {
		fprintf(stderr, "medtrustd: cannot write --port-file %s\n", port_file);
		goto out;
	}
	fprintf(stderr, "medtrustd: listening on https://%s:%u (EST and onboarding)\n", o.addr,
	        (unsigned)mt_https_port(srv));
	for (;;) {
		struct timespec ts = {TICK_SECONDS, 0};
		int sig = sigtimedwait(&sigs, NULL, &ts);

		if (sig == SIGTERM || sig == SIGINT) {
			fprintf(stderr, "medtrustd: signal %d, stopping\n", sig);
			break;
		}
		if (sig < 0 && errno != EAGAIN && errno != EINTR)
			break;
		e = mt_hub_tick(hub, mt_deploy_now(), NULL);
		if (e != MT_OK)
			fprintf(stderr, "medtrustd: periodic work failed: %s\n", mt_err_str(e));
	}
	rc = 0;
out:
	mt_https_stop(srv);
	srv = NULL;
	if (hub != NULL && mt_hub_deploy(hub)->audit != NULL) {
		/* Cover what this run recorded with a signed checkpoint, so that a
		 * later truncation of the chain is detected (threat J03). */
		bool done = false;

		e = mt_audit_checkpoint(mt_hub_deploy(hub)->audit, mt_deploy_now_ms(), &done);
		if (e != MT_OK)
			fprintf(stderr, "medtrustd: final audit checkpoint failed: %s\n", mt_err_str(e));
	}
	SSL_CTX_free(ctx);
	mt_hub_close(hub);
	return rc;
}
