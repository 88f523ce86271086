/*
 * main.c — medtrustd, the hub daemon: onboarding and the web console over
 * HTTPS (hub.h, console.h) and telemetry ingest from the broker (ingest.h).
 *
 *   medtrustd [-c CONF] [--listen ADDR] [--port N] [--threads N]
 *             [--port-file FILE] [--mqtt-client-id ID]
 *             [--ingest-workers N] [--no-ingest]
 *
 * Ingest connects to the deployment's broker (broker_url) as "hub" with
 * the hub's client certificate and keeps retrying until it stands; a
 * line of its counters goes to stderr every minute.  --no-ingest serves
 * onboarding alone.
 *
 * It runs in the foreground (a service manager supervises it), logs one
 * line per start, stop and failure on stderr, and never logs a secret.
 * Start-up fails closed: a configuration it cannot read, a CA, TLS key or
 * certificate it cannot open, or an address it cannot bind is exit 1 with
 * the reason — the daemon never serves with half its trust material
 * (threat B13).  --port 0 binds any free port; --port-file then receives
 * the port (for tests and scripts), written only once the server listens.
 *
 * Signals: SIGUSR1 prints the ingest counters and the ts->commit latency
 * percentiles at once; SIGUSR2 starts the latency figures afresh.  SIGTERM and SIGINT stop it cleanly (exit 0, after a signed
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

#include "clinical.h"
#include "console.h"
#include "export.h"
#include "hub.h"
#include "https.h"
#include "ingest.h"
#include "live.h"
#include "mt_mqtt.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_message.h"

#define TICK_SECONDS 5
#define COUNTS_EVERY 12 /* ticks between two ingest count lines (one minute) */

static const char usage[] =
        "usage: medtrustd [-c CONF] [--listen ADDR] [--port N] [--threads N] "
        "[--port-file FILE]\n"
        "                 [--mqtt-client-id ID] [--ingest-workers N] [--no-ingest]\n";

/* A device's critical alert (fast packet), committed: to the clinical
 * engine (ctx), and one line for the operator's log. */
static void on_alert(void *ctx, const struct mt_ingest_alert *a)
{
	static const char *const prio[] = {"?", "low", "medium", "high"};
	char text[MT_TEXT_MAX + 1];
	size_t i = 0;

	mt_clinical_on_alert(ctx, a);
	/* The text is the device's: no control character reaches the log. */
	for (; a->text[i] != '\0' && i < MT_TEXT_MAX; i++)
		text[i] = (unsigned char)a->text[i] < 0x20 || a->text[i] == 0x7f ? '?' : a->text[i];
	text[i] = '\0';
	fprintf(stderr,
	        "medtrustd: DEVICE ALERT %s code %llu priority %s \"%s\" (ctr %llu; raised %llu ms "
	        "after the device's timestamp)\n",
	        a->dev, (unsigned long long)a->code, prio[a->prio <= 3 ? a->prio : 0], text,
	        (unsigned long long)a->ctr,
	        (unsigned long long)(a->committed_ms > a->ts_ms ? a->committed_ms - a->ts_ms : 0));
}

/* One line of the ingest counters that are not zero. */
static void log_counts(struct mt_ingest *g)
{
	uint64_t c[MT_IC_N];
	char line[1024];
	size_t n = 0;
	bool up = false;

	mt_ingest_counts(g, c, &up);
	for (int i = 0; i < MT_IC_N && n < sizeof line; i++) {
		int k;

		if (c[i] == 0)
			continue;
		k = snprintf(line + n, sizeof line - n, " %s=%llu",
		             mt_ingest_count_name((enum mt_ingest_count)i), (unsigned long long)c[i]);
		if (k < 0)
			break;
		n += (size_t)k;
	}
	fprintf(stderr,
	        "medtrustd: ingest (%s):%s; latency ts->commit p50=%llu ms p99=%llu ms, "
	        "arrival->commit hub_p50=%llu ms hub_p99=%llu ms\n",
	        up ? "broker up" : "broker down", n ? line : " nothing yet",
	        (unsigned long long)mt_ingest_latency_ms(g, 0.50, false),
	        (unsigned long long)mt_ingest_latency_ms(g, 0.99, false),
	        (unsigned long long)mt_ingest_latency_ms(g, 0.50, true),
	        (unsigned long long)mt_ingest_latency_ms(g, 0.99, true));
}

/* The engine's new journal entries wake the HL7 senders (ctx: where
 * main keeps them). */
static void kick_hl7(void *ctx)
{
	struct mt_hl7out **h = ctx;

	if (*h != NULL)
		mt_hl7out_kick(*h);
}

/* An HL7 message its receiver refused (AE/CE): a technical alarm. */
static void hl7_parked(void *ctx, const char *dest, uint64_t seq, const char *control_id,
                       const char *text)
{
	struct mt_clinical **c = ctx;
	char cond[64], t[320];

	(void)snprintf(cond, sizeof cond, "hl7:%.50s", dest);
	(void)snprintf(t, sizeof t, "HL7 message %.60s (journal %llu) parked by %.32s: %.80s",
	               control_id, (unsigned long long)seq, dest, text);
	fprintf(stderr, "medtrustd: TECHNICAL ALARM: %s\n", t);
	mt_clinical_hub_alarm(*c, cond, t);
}

/* One line per HL7 destination. */
static void log_hl7(struct mt_hl7out *h)
{
	struct mt_hl7out_stats st[MT_HL7OUT_DESTS_MAX];
	size_t n = h != NULL ? mt_hl7out_stats(h, st, MT_HL7OUT_DESTS_MAX) : 0;
	char line[512];

	for (size_t i = 0; i < n && i < MT_HL7OUT_DESTS_MAX; i++) {
		(void)mt_hl7out_stats_line(&st[i], line, sizeof line);
		fprintf(stderr, "medtrustd: %s\n", line);
	}
}

/* One line of the clinical engine's counters. */
static void log_clinical(struct mt_clinical *c)
{
	struct mt_clinical_stats st;

	if (c == NULL)
		return;
	mt_clinical_stats(c, &st);
	fprintf(stderr,
	        "medtrustd: clinical: readings=%llu alerts=%llu scored=%llu alarms=%llu "
	        "transitions=%llu not_scored=%llu queued=%llu dropped=%llu\n",
	        (unsigned long long)st.readings, (unsigned long long)st.alerts,
	        (unsigned long long)st.news2_scored, (unsigned long long)st.alarms_raised,
	        (unsigned long long)st.transitions, (unsigned long long)st.ignored,
	        (unsigned long long)st.queued, (unsigned long long)st.dropped);
}

/* One line of the store's durability: fsyncs the syncer made, and failed. */
static void log_syncer(struct mt_syncer *s)
{
	unsigned long long syncs = 0, failed = 0;

	if (s == NULL)
		return;
	mt_syncer_counts(s, &syncs, &failed);
	fprintf(stderr, "medtrustd: store: wal_fsyncs=%llu failed=%llu\n", syncs, failed);
}

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
	        {"mqtt-client-id", required_argument, NULL, 'm'},
	        {"ingest-workers", required_argument, NULL, 'w'},
	        {"no-ingest", no_argument, NULL, 'n'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *conf = NULL, *listen_addr = NULL, *port_s = NULL, *threads_s = NULL,
	           *port_file = NULL, *client_id = NULL, *workers_s = NULL;
	bool ingest_on = true;
	struct mt_ingest *ingest = NULL;
	struct mt_clinical *clin = NULL;
	struct mt_live *live = NULL;
	struct mt_syncer *syncer = NULL;
	struct mt_export *exp = NULL;
	struct mt_hl7out *hl7 = NULL;
	SSL_CTX *mqtt_ctx = NULL;
	unsigned ticks = 0;
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
		case 'm': client_id = optarg; break;
		case 'w': workers_s = optarg; break;
		case 'n': ingest_on = false; break;
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
	sigaddset(&sigs, SIGUSR1); /* print the ingest counters now */
	sigaddset(&sigs, SIGUSR2); /* start the latency figures afresh */
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
	/* The clinical engine and the console's live stream, before the
	 * console serves and before readings flow. */
	/* The engine and the ingest commit without waiting for the disk; the
	 * syncer makes their commits durable before anything is promised on
	 * them (syncer.h). */
	e = mt_syncer_start(d, &syncer);
	if (e != MT_OK) {
		fprintf(stderr, "medtrustd: cannot open the data store: %s\n", mt_err_str(e));
		goto out;
	}
	e = mt_live_new(&live);
	if (e == MT_OK) {
		struct mt_clinical_opts co = {
		        .d = d, .live = live, .audit = mt_hub_audit, .audit_ctx = hub,
		        .journal_kick = kick_hl7, .kick_ctx = &hl7, .syncer = syncer,
		};

		e = mt_clinical_start(&co, &clin, why, sizeof why);
	}
	if (e != MT_OK) {
		fprintf(stderr, "medtrustd: cannot start the clinical engine: %s\n",
		        why[0] ? why : mt_err_str(e));
		goto out;
	}
	/* HL7 v2 out (docs/hl7.md): the senders the conf names, fed by the
	 * store's export journal. */
	e = mt_export_open(d, &exp);
	if (e == MT_OK)
		e = mt_export_start_senders(d, exp, mt_hub_audit, hub, hl7_parked, &clin, &hl7, why,
		                            sizeof why);
	if (e != MT_OK) {
		fprintf(stderr, "medtrustd: cannot start HL7 export: %s\n",
		        why[0] ? why : mt_err_str(e));
		goto out;
	}
	if (hl7 != NULL)
		fprintf(stderr, "medtrustd: HL7 export to %s\n", mt_deploy_get(d, "hl7_dest"));
	mt_console_set_clinical(mt_hub_console(hub), live, clin);
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
	fprintf(stderr, "medtrustd: listening on https://%s:%u (EST, onboarding, console)\n", o.addr,
	        (unsigned)mt_https_port(srv));
	if (ingest_on) {
		struct mt_ingest_opts io = {
		        .d = d, .client_id = client_id, .audit = mt_hub_audit, .audit_ctx = hub,
		        .on_alert = on_alert, .alert_ctx = clin,
		        .on_reading = mt_clinical_on_reading, .on_security = mt_clinical_on_security,
		        .syncer = syncer,
		};
		struct mt_mqtt_url u;

		if (workers_s != NULL) {
			if (!parse_uint(workers_s, 64, &v) || v == 0) {
				fprintf(stderr, "medtrustd: --ingest-workers '%s' is not from 1 to 64\n",
				        workers_s);
				goto out;
			}
			io.workers = (unsigned)v;
		}
		e = mt_ingest_broker_url(d, &u);
		if (e == MT_OK)
			e = mt_hub_mqtt_ssl_ctx(hub, u.host, &mqtt_ctx, why, sizeof why);
		else
			(void)snprintf(why, sizeof why, "broker_url is not mqtts://host:port");
		if (e == MT_OK) {
			io.ssl_ctx = mqtt_ctx;
			e = mt_ingest_start(&io, &ingest, why, sizeof why);
		}
		if (e != MT_OK) {
			fprintf(stderr, "medtrustd: cannot start ingest: %s\n",
			        why[0] ? why : mt_err_str(e));
			goto out;
		}
		fprintf(stderr, "medtrustd: ingest from mqtts://%s:%u\n", u.host, (unsigned)u.port);
		mt_console_set_rotate(mt_hub_console(hub), mt_ingest_rotate_hook, ingest);
	}
	for (;;) {
		struct timespec ts = {TICK_SECONDS, 0};
		int sig = sigtimedwait(&sigs, NULL, &ts);

		if (sig == SIGTERM || sig == SIGINT) {
			fprintf(stderr, "medtrustd: signal %d, stopping\n", sig);
			break;
		}
		if (sig == SIGUSR2) {
			if (ingest != NULL)
				mt_ingest_latency_reset(ingest);
			continue;
		}
		if (sig == SIGUSR1) {
			if (ingest != NULL)
				log_counts(ingest);
			log_clinical(clin);
			log_syncer(syncer);
			log_hl7(hl7);
			continue;
		}
		if (sig < 0 && errno != EAGAIN && errno != EINTR)
			break;
		e = mt_hub_tick(hub, mt_deploy_now(), NULL);
		if (e != MT_OK)
			fprintf(stderr, "medtrustd: periodic work failed: %s\n", mt_err_str(e));
		if (ingest != NULL && ++ticks % COUNTS_EVERY == 0) {
			log_counts(ingest);
			log_clinical(clin);
			log_syncer(syncer);
		}
	}
	rc = 0;
out:
	if (ingest != NULL) {
		log_counts(ingest);
		mt_console_set_rotate(mt_hub_console(hub), NULL, NULL); /* before ingest goes */
		mt_ingest_stop(ingest);
	}
	SSL_CTX_free(mqtt_ctx);
	mt_https_stop(srv); /* no console call into the engine after this */
	srv = NULL;
	mt_hl7out_stop(hl7);
	hl7 = NULL;
	mt_export_close(exp);
	mt_clinical_stop(clin);
	mt_syncer_stop(syncer); /* after its users: their last jobs run first */
	mt_live_free(live);
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
