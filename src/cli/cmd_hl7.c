/*
 * cmd_hl7.c — HL7 v2 over MLLP from the command line (mt_hl7.h,
 * docs/hl7.md; clinical.md §4; threats G05, G10):
 *
 *   hl7 listen --port P [--bind ADDR] --out FILE [--answer CODE] [--delay-ms N]
 *              [--max-frame N]
 *   hl7 sample pcd01|pcd04 [--name N] [--mrn M] [--control-id C]   (tests only)
 *
 * `listen` is an MLLP receiver for tests and for sites that pull: it
 * accepts connections (127.0.0.1 by default), reads frames (capped at
 * --max-frame, 1 MiB by default: a bigger frame, bytes outside a frame or
 * an unparsable message drop that connection), appends each new message to
 * FILE and answers an ACK whose MSA-1 is --answer (AA by default; AE, AR,
 * CA, CE, CR; `none` never answers, for timeout tests) and MSA-2 the
 * received MSH-10; the ACK's MSH carries no MSH-21.  Messages are
 * de-duplicated on MSH-3 + MSH-10 as a receiver must (G10): a duplicate is
 * acknowledged again but not appended.  Two more --answer values exist for
 * the sender's tests only: `garbage` (a framed non-HL7 answer) and
 * `wrong-id` (an ACK for another control id).
 *
 * FILE format, so that any script can split it without parsing HL7: per
 * message, its byte length in decimal and "\n", the message bytes (CR
 * segment ends), then "\n".  The file is flushed after every message.
 * The first line on stdout is "listening on ADDR:PORT" (--port 0 picks a
 * free port); on SIGTERM or SIGINT the counts are printed as one line
 * "received=N duplicates=N answered=N dropped=N" and the exit code is 0.
 *
 * `sample` prints one message built by the real encoder with fixed data
 * (heart rate 72, SpO2 97, temperature 36.50, NIBP 120/80 episodic; or a
 * SpO2-low alert), for tests/clinical/test_hl7_parse.py; it is not listed
 * in `medtrust hl7 --help` because operators have no use for it.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "medtrust/mt_hl7.h"

static const char hl7_usage[] = "medtrust hl7 listen --port P --out FILE [options]";
static const char hl7_help[] =
	"usage: medtrust hl7 listen --port P [--bind ADDR] --out FILE [--answer CODE]\n"
	"                           [--delay-ms N] [--max-frame N]\n"
	"\n"
	"An HL7 v2 MLLP receiver (for tests and for sites that pull): every new\n"
	"message is appended to FILE (its length, a newline, the message, a\n"
	"newline) and answered with an ACK; duplicates (same MSH-3 and MSH-10)\n"
	"are acknowledged but not appended twice.  Runs until SIGTERM or SIGINT,\n"
	"then prints received=N duplicates=N answered=N dropped=N.\n"
	"\n"
	"Options:\n"
	"  --port P        TCP port (0: any free port; the first output line names it)\n"
	"  --bind ADDR     address to listen on (default 127.0.0.1)\n"
	"  --out FILE      where received messages are appended\n"
	"  --answer CODE   MSA-1 of the answers: AA (default), AE, AR, CA, CE, CR,\n"
	"                  or none (never answer)\n"
	"  --delay-ms N    wait N ms before answering\n"
	"  --max-frame N   frame size cap in bytes (default 1048576)\n";

static const char listen_usage[] =
	"medtrust hl7 listen --port P [--bind ADDR] --out FILE [--answer CODE] [--delay-ms N]";
static const char sample_usage[] =
	"medtrust hl7 sample pcd01|pcd04 [--name N] [--mrn M] [--control-id C]";
static const char sample_help[] =
	"usage: medtrust hl7 sample pcd01|pcd04 [--name N] [--mrn M] [--control-id C]\n"
	"\n"
	"Print a PCD-01 or PCD-04 message built with fixed data (tests only).\n";

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

#define MAX_CLIENTS 64
#define DEDUP_MAX 1000000
#define HL7_HOST_MAX 1025
#define HL7_SERV_MAX 32

struct client {
	int fd;
	struct mt_mllp_reader rd;
};

struct listener {
	FILE *out;
	const char *answer;
	unsigned delay_ms;
	char **seen; /* "app\x1fcontrol id", unsorted: a test tool, not a server */
	size_t n_seen, cap_seen;
	unsigned long long received, duplicates, answered, dropped, acks;
};

static bool seen_before(struct listener *l, const struct mt_hl7_header *h)
{
	size_t n = strlen(h->app) + strlen(h->control_id) + 2;
	char *key = malloc(n);

	if (!key)
		return false;
	snprintf(key, n, "%s\x1f%s", h->app, h->control_id);
	for (size_t i = 0; i < l->n_seen; i++)
		if (strcmp(l->seen[i], key) == 0) {
			free(key);
			return true;
		}
	if (l->n_seen == l->cap_seen && l->n_seen < DEDUP_MAX) {
		size_t nc = l->cap_seen ? l->cap_seen * 2 : 256;
		char **ns = realloc(l->seen, nc * sizeof *ns);

		if (ns) {
			l->seen = ns;
			l->cap_seen = nc;
		}
	}
	if (l->n_seen < l->cap_seen)
		l->seen[l->n_seen++] = key;
	else
		free(key);
	return false;
}

static bool send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_flag) {
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One frame from a client: false drops the connection. */
static bool on_frame(struct listener *l, int fd, const uint8_t *msg, size_t len)
{
	struct mt_hl7_header h;
	char ackid[32], *ack = NULL;
	uint8_t *frame = NULL;
	size_t alen = 0, flen = 0;
	bool ok;

	if (mt_hl7_parse_header(msg, len, &h) != MT_OK)
		return false;
	if (seen_before(l, &h)) {
		l->duplicates++;
	} else {
		l->received++;
		if (fprintf(l->out, "%zu\n", len) < 0 || fwrite(msg, 1, len, l->out) != len ||
		    fputc('\n', l->out) == EOF || fflush(l->out) != 0) {
			fprintf(stderr, "error: cannot write the output file\n");
			stop_flag = 1;
			return false;
		}
	}
	if (strcmp(l->answer, "none") == 0)
		return true;
	if (l->delay_ms)
		sleep_ms(l->delay_ms);
	l->acks++;
	snprintf(ackid, sizeof ackid, "ACK-%llu", l->acks);
	if (strcmp(l->answer, "garbage") == 0) {
		static const char junk[] = "this is not an acknowledgement\r";

		ok = mt_mllp_wrap(junk, sizeof junk - 1, &frame, &flen) == MT_OK;
	} else {
		const char *code = strcmp(l->answer, "wrong-id") == 0 ? "AA" : l->answer;

		if (strcmp(l->answer, "wrong-id") == 0)
			snprintf(h.control_id, sizeof h.control_id, "not-%s", "yours");
		ok = mt_hl7_build_ack(&h, "MEDTRUST", "LISTENER", now_ms(), ackid, code, NULL, &ack,
		                      &alen) == MT_OK &&
		     mt_mllp_wrap(ack, alen, &frame, &flen) == MT_OK;
	}
	free(ack);
	if (ok)
		ok = send_all(fd, frame, flen);
	free(frame);
	if (ok)
		l->answered++;
	return ok;
}

static int open_listener(const char *bind_addr, const char *port, char *name, size_t cap)
{
	struct addrinfo hints = {0}, *res = NULL;
	int fd = -1, one = 1;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(bind_addr, port, &hints, &res) != 0)
		return -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		char host[HL7_HOST_MAX], serv[HL7_SERV_MAX];

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0 &&
		    getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
		    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
		                NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
			snprintf(name, cap, "%s:%s", host, serv);
			break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int hl7_listen(int argc, char **argv)
{
	const char *port = NULL, *bind_addr = NULL, *out = NULL, *answer = NULL, *delay = NULL,
		   *maxf = NULL;
	const struct mt_cli_opt opts[] = {
		{"port", 0, MT_CLI_VALUE, &port, NULL},
		{"bind", 0, MT_CLI_VALUE, &bind_addr, NULL},
		{"out", 0, MT_CLI_VALUE, &out, NULL},
		{"answer", 0, MT_CLI_VALUE, &answer, NULL},
		{"delay-ms", 0, MT_CLI_VALUE, &delay, NULL},
		{"max-frame", 0, MT_CLI_VALUE, &maxf, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	static const char *const answers[] = {"AA", "AE", "AR", "CA", "CE",
	                                      "CR", "none", "garbage", "wrong-id"};
	struct listener l = {0};
	struct client cl[MAX_CLIENTS];
	size_t ncl = 0;
	uint32_t p32 = 0, d32 = 0, m32 = MT_HL7_FRAME_MAX;
	char name[HL7_HOST_MAX + HL7_SERV_MAX + 2];
	struct sigaction sa;
	int lfd, first, rc;
	bool known = false;

	rc = mt_cli__parse_opts("hl7 listen", listen_usage, hl7_help, argc, argv, opts, &first);
	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (first != argc)
		return mt_cli__usage("hl7 listen", listen_usage, "unexpected operand '%s'",
		                     argv[first]);
	if (!port || !out)
		return mt_cli__usage("hl7 listen", listen_usage, "--port and --out are required");
	if (!mt_cli__parse_u32(port, &p32) || p32 > 65535)
		return mt_cli__usage("hl7 listen", listen_usage, "bad port '%s'", port);
	if (delay && (!mt_cli__parse_u32(delay, &d32) || d32 > 600000))
		return mt_cli__usage("hl7 listen", listen_usage, "bad --delay-ms '%s'", delay);
	if (maxf && (!mt_cli__parse_u32(maxf, &m32) || m32 < 64 || m32 > 64u * 1048576u))
		return mt_cli__usage("hl7 listen", listen_usage, "bad --max-frame '%s'", maxf);
	l.answer = answer ? answer : "AA";
	for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
		if (strcmp(l.answer, answers[i]) == 0)
			known = true;
	if (!known)
		return mt_cli__usage("hl7 listen", listen_usage, "bad --answer '%s'", l.answer);
	l.delay_ms = d32;
	l.out = fopen(out, "ab");
	if (!l.out) {
		fprintf(stderr, "error: %s: %s\n", out, strerror(errno));
		return MT_EXIT_ERROR;
	}
	lfd = open_listener(bind_addr ? bind_addr : "127.0.0.1", port, name, sizeof name);
	if (lfd < 0) {
		fprintf(stderr, "error: cannot listen on %s port %s: %s\n",
		        bind_addr ? bind_addr : "127.0.0.1", port, strerror(errno));
		fclose(l.out);
		return MT_EXIT_ERROR;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("listening on %s\n", name);
	fflush(stdout);

	while (!stop_flag) {
		struct pollfd pf[MAX_CLIENTS + 1];
		int r;

		pf[0] = (struct pollfd){lfd, POLLIN, 0};
		for (size_t i = 0; i < ncl; i++)
			pf[i + 1] = (struct pollfd){cl[i].fd, POLLIN, 0};
		r = poll(pf, ncl + 1, 200);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		for (size_t i = ncl; i-- > 0;) {
			uint8_t buf[65536];
			ssize_t n;
			size_t off = 0;
			bool keep = true;

			if (!pf[i + 1].revents)
				continue;
			n = recv(cl[i].fd, buf, sizeof buf, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				keep = false;
			while (keep && off < (size_t)n) {
				const uint8_t *fr;
				size_t used, flen;

				if (mt_mllp_feed(&cl[i].rd, buf + off, (size_t)n - off, &used, &fr,
				                 &flen) != MT_OK) {
					keep = false;
					l.dropped++;
					break;
				}
				off += used;
				if (fr && !on_frame(&l, cl[i].fd, fr, flen)) {
					keep = false;
					l.dropped++;
				}
			}
			if (!keep) {
				close(cl[i].fd);
				mt_mllp_free(&cl[i].rd);
				cl[i] = cl[--ncl];
			}
		}
		if (pf[0].revents & POLLIN) {
			int fd = accept(lfd, NULL, NULL);

			if (fd >= 0 && ncl == MAX_CLIENTS) {
				close(fd);
			} else if (fd >= 0) {
				cl[ncl].fd = fd;
				mt_mllp_init(&cl[ncl].rd, m32);
				ncl++;
			}
		}
	}
	for (size_t i = 0; i < ncl; i++) {
		close(cl[i].fd);
		mt_mllp_free(&cl[i].rd);
	}
	close(lfd);
	for (size_t i = 0; i < l.n_seen; i++)
		free(l.seen[i]);
	free(l.seen);
	rc = fclose(l.out) == 0 ? MT_EXIT_OK : MT_EXIT_ERROR;
	printf("received=%llu duplicates=%llu answered=%llu dropped=%llu\n", l.received,
	       l.duplicates, l.answered, l.dropped);
	if (fflush(stdout) != 0)
		rc = MT_EXIT_ERROR;
	return rc;
}

static int hl7_sample(int argc, char **argv)
{
	const char *name = NULL, *mrn = NULL, *ctrl = NULL, *kind[1];
	const struct mt_cli_opt opts[] = {
		{"name", 0, MT_CLI_VALUE, &name, NULL},
		{"mrn", 0, MT_CLI_VALUE, &mrn, NULL},
		{"control-id", 0, MT_CLI_VALUE, &ctrl, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	struct mt_hl7_msh msh = {"MEDTRUST", "HOSP1", "EHR", "HOSP1", 1733222400000ull, NULL};
	struct mt_hl7_patient pat = {NULL, "HOSP1", NULL, "1980-02-29", "female",
	                             "ICU", "12", "B"};
	struct mt_hl7_device dev = {"mon-0042", "Acme", "M3"};
	struct mt_hl7_metric m[] = {
		{147842, NULL, 72, 0, 264864, NULL, "N", false},
		{150456, NULL, 97, 0, 262688, NULL, NULL, false},
		{150364, NULL, 36.5, 2, 268192, NULL, NULL, false},
		{150021, NULL, 120, 0, 266016, NULL, "H", true},
		{150022, NULL, 80, 0, 266016, NULL, NULL, true},
	};
	struct mt_hl7_observation obs = {1733222399000ull, m, sizeof m / sizeof m[0]};
	struct mt_hl7_alert a = {0};
	char *msg = NULL;
	size_t len = 0;
	enum mt_err e;
	int rc = mt_cli__parse_operands("hl7 sample", sample_usage, sample_help, argc, argv, opts,
	                                kind, 1);

	if (rc != MT_CLI_CONTINUE)
		return rc;
	msh.control_id = ctrl ? ctrl : "MEDTRUST-1";
	pat.mrn = mrn ? mrn : "MRN-0001";
	pat.name = name ? name : "Ada King Lovelace";
	if (strcmp(kind[0], "pcd01") == 0) {
		e = mt_hl7_build_pcd01(&msh, &pat, &dev, &obs, &msg, &len);
	} else if (strcmp(kind[0], "pcd04") == 0) {
		a.alert_id = "alert-7";
		a.time_ms = 1733222401000ull;
		a.event_code = 1001; /* a medtrust-defined alert code */
		a.event_name = "SPO2_LOW";
		a.event_system = "MEDTRUST";
		a.text = "SpO2 low 85 < 90";
		a.has_source = true;
		a.source = (struct mt_hl7_metric){150456, NULL, 85, 0, 262688, NULL, "L", false};
		a.has_limits = true;
		a.low = 90;
		a.high = 100;
		a.phase = MT_HL7_PHASE_START;
		a.state = MT_HL7_STATE_ACTIVE;
		a.prio = MT_HL7_PRIO_HIGH;
		a.type = MT_HL7_TYPE_PHYSIO;
		e = mt_hl7_build_pcd04(&msh, &pat, &dev, &a, &msg, &len);
	} else {
		return mt_cli__usage("hl7 sample", sample_usage, "unknown kind '%s'", kind[0]);
	}
	if (e != MT_OK) {
		fprintf(stderr, "refused: %s\n", mt_err_str(e));
		return MT_EXIT_REFUSED;
	}
	e = mt_cli__write_stdout(msg, len);
	free(msg);
	if (e != MT_OK)
		return mt_cli__error("stdout", e);
	return MT_EXIT_OK;
}

int mt_cli_hl7(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
		{"listen", hl7_listen},
		{"sample", hl7_sample},
		{NULL, NULL},
	};

	return mt_cli__dispatch("hl7", hl7_usage, hl7_help, subs, argc, argv);
}
