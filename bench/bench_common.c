/*
 * bench_common.c — the deployment, devices, sender and hub plumbing that
 * bench/ingest.c and bench/alert.c share (bench_common.h explains it).
 */
#define _GNU_SOURCE

#include "bench_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <jansson.h>
#include <sqlite3.h>

#include "medtrust/mt_deploy.h"
#include "medtrust/mt_est.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_util.h"

const char *bench_name = "bench";

void bench_err(const char *f, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", bench_name);
	va_start(ap, f);
	vfprintf(stderr, f, ap);
	va_end(ap);
}

uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* snprintf that says whether everything fitted. */
bool fmt(char *out, size_t cap, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(out, cap, f, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < cap;
}

volatile sig_atomic_t g_interrupted;

void on_signal(int sig)
{
	(void)sig;
	g_interrupted = 1;
}

/* ---- child processes ----------------------------------------------------------
 * Started from the main thread only (PR_SET_PDEATHSIG follows the thread
 * that forked), output appended to a log, stopped with SIGTERM and, after
 * ten seconds, SIGKILL. */


pid_t spawn(char *const argv[], const char *log)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid;
	{
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* Nothing of ours leaks into the child: libmosquitto's sockets are not
		 * close-on-exec, and a hub that inherited the devices' 3,000
		 * descriptors would get an MQTT socket above select()'s 1,023. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent || fd < 0 ||
		    nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    close_range(3, ~0u, 0) != 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL); /* ignored here, not to be inherited */
		execv(argv[0], argv);
		_exit(127);
	}
}

static int wait_exit(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Run to completion; the exit status, or -1. */
int run_cmd(char *const argv[], const char *log)
{
	pid_t pid = spawn(argv, log);

	return pid < 0 ? -1 : wait_exit(pid);
}

bool child_alive(struct child *c)
{
	int status;

	if (c->pid <= 0)
		return false;
	if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
		c->pid = 0;
		return false;
	}
	return true;
}

void child_stop(struct child *c)
{
	if (c->pid <= 0)
		return;
	if (kill(c->pid, SIGTERM) == 0) {
		for (int i = 0; i < 1000; i++) {
			int status;

			if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
				c->pid = 0;
				return;
			}
			sleep_ms(10);
		}
		kill(c->pid, SIGKILL);
	}
	(void)wait_exit(c->pid);
	c->pid = 0;
}

void print_tail(const char *log, size_t bytes)
{
	FILE *f = fopen(log, "rb");
	char buf[4097];
	size_t n;

	if (f == NULL)
		return;
	if (fseek(f, 0, SEEK_END) == 0) {
		long sz = ftell(f);

		if (sz > (long)bytes && fseek(f, sz - (long)bytes, SEEK_SET) != 0)
			rewind(f);
		else if (sz <= (long)bytes)
			rewind(f);
	}
	n = fread(buf, 1, bytes < sizeof buf - 1 ? bytes : sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "---- %s (end) ----\n%s\n----\n", log, buf);
}

uint16_t free_port(void)
{
	struct sockaddr_in sa = {0};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool listening(uint16_t port)
{
	struct sockaddr_in sa = {0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

bool wait_listening(struct child *c, uint16_t port, unsigned timeout_ms)
{
	for (unsigned t = 0; t < timeout_ms && !g_interrupted; t += 50) {
		if (!child_alive(c))
			return false;
		if (listening(port))
			return true;
		sleep_ms(50);
	}
	return false;
}


/* ---- CPU time from /proc -------------------------------------------------------- */

/* utime + stime (clock ticks) of a /proc/.../stat file. */
static bool stat_ticks(const char *path, uint64_t *ticks)
{
	char buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL)
		return false;
	/* After ") " come fields 3 (state) .. 13; utime and stime are 14, 15. */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return false;
	*ticks = (uint64_t)(ut + st);
	return true;
}

bool machine_ticks(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (f == NULL)
		return false;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
	           &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n != 8)
		return false;
	*total = 0;
	for (int i = 0; i < 8; i++)
		*total += v[i];
	*busy = *total - v[3] - v[4]; /* less idle and iowait */
	return true;
}



static int cmp_thr(const void *a, const void *b)
{
	const struct thr *x = a, *y = b;

	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

void cpu_snap(struct cpu_snap *s, pid_t hub, pid_t broker)
{
	char path[128];
	DIR *dir;
	struct dirent *de;

	memset(s, 0, sizeof *s);
	s->t_ns = mono_ns();
	(void)snprintf(path, sizeof path, "/proc/%ld/stat", (long)hub);
	if (hub <= 0 || !stat_ticks(path, &s->hub))
		s->hub = 0;
	(void)snprintf(path, sizeof path, "/proc/%ld/stat", (long)broker);
	if (broker <= 0 || !stat_ticks(path, &s->broker))
		s->broker = 0;
	if (!stat_ticks("/proc/self/stat", &s->self))
		s->self = 0;
	if (!machine_ticks(&s->m_busy, &s->m_total))
		s->m_busy = s->m_total = 0;
	(void)snprintf(path, sizeof path, "/proc/%ld/task", (long)hub);
	dir = hub > 0 ? opendir(path) : NULL;
	while (dir != NULL && (de = readdir(dir)) != NULL && s->n_thr < HUB_THREADS_MAX) {
		char tp[192];
		char *end = NULL;
		long tid = strtol(de->d_name, &end, 10);

		if (end == de->d_name || *end != '\0')
			continue;
		(void)snprintf(tp, sizeof tp, "/proc/%ld/task/%ld/stat", (long)hub, tid);
		if (stat_ticks(tp, &s->thr[s->n_thr].ticks)) {
			s->thr[s->n_thr].tid = tid;
			s->n_thr++;
		}
	}
	if (dir != NULL)
		closedir(dir);
	qsort(s->thr, s->n_thr, sizeof *s->thr, cmp_thr);
}


/* ---- devices, packets and the sender -------------------------------------------- */




/* One sealed packet: device, counter, plan index (due at t0 + k × gap). */




struct bench B;

static uint64_t plan_ns(const struct job *j, uint32_t k)
{
	return j->t0_ns + (uint64_t)((double)k * j->gap_ns);
}

static void interest(struct sender *s, struct dev *d)
{
	uint32_t want;
	struct epoll_event ev = {0};

	if (d->fd < 0 || d->st == C_FAILED)
		return;
	want = EPOLLIN | (mosquitto_want_write(d->mq) ? EPOLLOUT : 0u);
	if (want == d->ev)
		return;
	ev.events = want;
	ev.data.ptr = d;
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, d->fd, &ev) == 0)
		d->ev = want;
}

static void conn_lost(struct sender *s, struct dev *d, const char *why)
{
	if (d->st == C_FAILED)
		return;
	if (d->st == C_CONNECTING) {
		s->connecting--;
		atomic_fetch_add(&s->failed, 1);
	} else if (d->st == C_UP) {
		atomic_fetch_add(&s->lost, 1);
	}
	if (d->fd >= 0)
		(void)epoll_ctl(s->ep, EPOLL_CTL_DEL, d->fd, NULL);
	d->fd = -1;
	d->st = C_FAILED;
	if (!atomic_load(&B.stop_senders))
		bench_err("%s: connection lost: %s\n", d->ad.serial, why);
}

static void on_connect(struct mosquitto *m, void *arg, int rc, int flags,
                       const mosquitto_property *props)
{
	struct dev *d = arg;
	struct sender *s = d->s;

	(void)flags;
	(void)props;
	if (d->st != C_CONNECTING)
		return;
	if (rc != 0) {
		conn_lost(s, d, mosquitto_reason_string(rc));
		return;
	}
	/* As a device does (devrt.c): its own down/#, for the receipts. */
	if (mosquitto_subscribe_v5(m, NULL, d->down_filter, 1, 0, NULL) != MOSQ_ERR_SUCCESS) {
		conn_lost(s, d, "cannot subscribe to its down/#");
		return;
	}
	s->connecting--;
	d->st = C_UP;
	atomic_fetch_add(&s->up, 1);
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc, const mosquitto_property *p)
{
	struct dev *d = arg;

	(void)m;
	(void)p;
	if (d->st == C_UP || d->st == C_CONNECTING)
		conn_lost(d->s, d, mosquitto_reason_string(rc));
}

static void on_publish(struct mosquitto *m, void *arg, int mid, int rc, const mosquitto_property *p)
{
	struct dev *d = arg;

	(void)m;
	(void)mid;
	(void)p;
	if (rc == 0)
		atomic_fetch_add(&d->s->acked, 1);
	else
		atomic_fetch_add(&d->s->pub_failed, 1);
}

/* A receipt: opened with the device's receipt key; the counters it names
 * are marked (protocol §4a). */
static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct dev *d = arg;
	struct sender *s = d->s;
	struct mt_receipt r;
	uint32_t epoch = 0;

	(void)m;
	(void)props;
	if (strcmp(msg->topic, d->rcpt_topic) != 0 || msg->payloadlen <= 0 ||
	    msg->payloadlen > MT_PACKET_MAX)
		return;
	if (mt_packet_epoch(msg->payload, (size_t)msg->payloadlen, &epoch) != MT_OK ||
	    epoch != d->epoch ||
	    mt_receipt_open(s->aead, d->rk, d->ad.serial, strlen(d->ad.serial), msg->payload,
	                    (size_t)msg->payloadlen, s->scratch, SCRATCH_CAP, s->ranges,
	                    MT_RECEIPT_MAX_RANGES, &r) != MT_OK) {
		atomic_fetch_add(&s->bad_receipts, 1);
		return;
	}
	for (size_t i = 0; i < r.n_ranges; i++)
		for (uint64_t c = s->ranges[i][0]; c <= s->ranges[i][1] && c < B.n_ctr; c++)
			d->seen[c] = 1;
	atomic_fetch_add(&s->receipts, 1);
}

static void dev_connect(struct sender *s, struct dev *d)
{
	struct epoll_event ev = {0};
	int rc = mt_mqtt_connect(d->mq, &B.url, 60, MT_MQTT_SESSION_EXPIRY);

	if (rc != MOSQ_ERR_SUCCESS || (d->fd = mosquitto_socket(d->mq)) < 0) {
		bench_err("%s: cannot connect: %s\n", d->ad.serial,
		        mosquitto_strerror(rc));
		d->st = C_FAILED;
		d->fd = -1;
		atomic_fetch_add(&s->failed, 1);
		return;
	}
	d->st = C_CONNECTING;
	s->connecting++;
	d->ev = EPOLLIN | EPOLLOUT;
	ev.events = d->ev;
	ev.data.ptr = d;
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, d->fd, &ev) != 0)
		conn_lost(s, d, "epoll_ctl failed");
}

static void service(struct sender *s, struct dev *d, uint32_t events)
{
	int rc = MOSQ_ERR_SUCCESS;

	if (d->st == C_FAILED || d->st == C_IDLE)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		rc = mosquitto_loop_read(d->mq, 1);
	if (rc == MOSQ_ERR_SUCCESS && (events & EPOLLOUT))
		rc = mosquitto_loop_write(d->mq, 1);
	if (rc != MOSQ_ERR_SUCCESS) {
		conn_lost(s, d, mosquitto_strerror(rc));
		return;
	}
	interest(s, d);
}

static void publish(struct sender *s, struct pkt *p)
{
	struct dev *d = p->d;
	int rc;

	if (d->st != C_UP) {
		atomic_fetch_add(&s->pub_failed, 1);
		return;
	}
	/* libmosquitto writes the PUBLISH at once when it can (no loop thread,
	 * not in a callback): this is the moment the device sends it. */
	p->sent_ns = mono_ns();
	rc = mosquitto_publish_v5(d->mq, NULL, p->alert ? d->alert_topic : d->up_topic, (int)p->len,
	                          p->data, 1, false, NULL);
	if (rc == MOSQ_ERR_SUCCESS)
		atomic_fetch_add(&s->published, 1);
	else
		atomic_fetch_add(&s->pub_failed, 1);
	interest(s, d);
}

/* One sender thread: connects its devices (CONNECTING_MAX handshakes at a
 * time), then serves their sockets and publishes each job on its plan. */
static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct epoll_event evs[256];
	struct job job = {0};
	size_t next_connect = 0, next = 0;
	unsigned seen = 0;
	bool active = false;
	uint64_t last_misc = mono_ns();

	while (!atomic_load(&B.stop_senders)) {
		uint64_t now = mono_ns();
		unsigned g = atomic_load_explicit(&s->gen, memory_order_acquire);
		int timeout = 20, n;

		while (next_connect < s->ndev && s->connecting < CONNECTING_MAX)
			dev_connect(s, s->devs[next_connect++]);
		if (g != seen) {
			seen = g;
			job = s->job;
			next = 0;
			active = true;
		}
		if (active) {
			while (next < job.n && plan_ns(&job, job.list[next]->k) <= now)
				publish(s, job.list[next++]);
			if (next == job.n) {
				active = false;
				atomic_store_explicit(&s->done_gen, seen, memory_order_release);
			} else {
				/* Wake when the next packet is due (rounded up: never spin). */
				uint64_t due = plan_ns(&job, job.list[next]->k);

				now = mono_ns();
				timeout = due <= now ? 0 : (int)((due - now + 999999u) / 1000000u);
				if (timeout > 20)
					timeout = 20;
			}
		}
		n = epoll_wait(s->ep, evs, (int)(sizeof evs / sizeof evs[0]), timeout);
		for (int i = 0; i < n; i++)
			service(s, evs[i].data.ptr, evs[i].events);
		now = mono_ns();
		if (now - last_misc >= 100000000u) { /* keep-alive and retries, 10 times a second */
			for (size_t i = 0; i < s->ndev; i++) {
				struct dev *d = s->devs[i];

				if (d->st == C_UP || d->st == C_CONNECTING) {
					if (mosquitto_loop_misc(d->mq) != MOSQ_ERR_SUCCESS)
						conn_lost(s, d, "keep-alive failed");
					else
						interest(s, d);
				}
			}
			last_misc = now;
		}
	}
	/* Goodbye, as a device that shuts down cleanly. */
	for (size_t i = 0; i < s->ndev; i++) {
		struct dev *d = s->devs[i];

		if (d->st == C_UP && mosquitto_disconnect_v5(d->mq, 0, NULL) == MOSQ_ERR_SUCCESS)
			(void)mosquitto_loop_write(d->mq, 1);
	}
	return NULL;
}

/* Hand each sender its share of `pkts` (plan order) and start them. */
bool start_job(struct pkt *pkts, size_t n, uint64_t t0_ns, double gap_ns,
                      struct pkt ***lists)
{
	size_t fill[SENDERS_MAX] = {0};

	for (unsigned i = 0; i < B.n_snd; i++) {
		lists[i] = calloc(n ? n : 1, sizeof *lists[i]);
		if (lists[i] == NULL)
			return false;
	}
	for (size_t k = 0; k < n; k++) {
		unsigned t = pkts[k].d->s->id;

		lists[t][fill[t]++] = &pkts[k];
	}
	for (unsigned i = 0; i < B.n_snd; i++) {
		struct sender *s = &B.snd[i];

		s->job.list = lists[i];
		s->job.n = fill[i];
		s->job.t0_ns = t0_ns;
		s->job.gap_ns = gap_ns;
		atomic_store_explicit(&s->gen, atomic_load(&s->gen) + 1, memory_order_release);
	}
	return true;
}

bool job_done(void)
{
	for (unsigned i = 0; i < B.n_snd; i++)
		if (atomic_load_explicit(&B.snd[i].done_gen, memory_order_acquire) !=
		    atomic_load(&B.snd[i].gen))
			return false;
	return true;
}

void free_lists(struct pkt ***lists)
{
	for (unsigned i = 0; i < B.n_snd; i++) {
		free(lists[i]);
		lists[i] = NULL;
	}
}

uint64_t sum_snd(size_t off)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < B.n_snd; i++)
		v += atomic_load((_Atomic uint64_t *)((char *)&B.snd[i] + off));
	return v;
}


/* ---- sealing ahead ----------------------------------------------------------------- */

static void vitals(struct mt_message *m, struct mt_obs obs[OBS_N], const struct dev *d,
                   uint64_t ctr, uint64_t ts)
{
	/* A wearable's handful (clinical.md §1): pulse, SpO2, respiration, temperature. */
	/* Steady: a patient's values stay in their NEWS2 bands from one second
	 * to the next (a wearable at 1/s); else they move with every reading. */
	unsigned v = (unsigned)((B.steady_vitals ? 0 : ctr * 7u) + (uint64_t)(d - B.devs) * 13u);

	memset(m, 0, sizeof *m);
	memset(obs, 0, OBS_N * sizeof *obs);
	(void)snprintf(m->dev, sizeof m->dev, "%s", d->ad.serial);
	m->dev_len = strlen(m->dev);
	m->ctr = ctr;
	m->ts = ts;
	m->typ = MT_TYP_VITALS;
	m->has = MT_MSG_OBS;
	m->obs = obs;
	m->n_obs = OBS_N;
	mt_num_set_int(&obs[0].t, 0);
	obs[0].code = 149530; /* pulse rate (oximeter), /min */
	obs[0].unit = 264864;
	mt_num_set_int(&obs[0].value, 60 + (int64_t)(v % 40));
	mt_num_set_int(&obs[1].t, 0);
	obs[1].code = 150456; /* SpO2, % */
	obs[1].unit = 262688;
	mt_num_set_int(&obs[1].value, 94 + (int64_t)(v % 6));
	mt_num_set_int(&obs[2].t, -500);
	obs[2].code = 151562; /* respiratory rate, /min */
	obs[2].unit = 264928;
	mt_num_set_int(&obs[2].value, 12 + (int64_t)(v % 9));
	mt_num_set_int(&obs[3].t, -1000);
	obs[3].code = 150364; /* body temperature, °C, one decimal */
	obs[3].unit = 268192;
	mt_num_set_float(&obs[3].value, 36.0 + (double)(v % 20) / 10.0);
	obs[3].has_places = true;
	obs[3].places = 1;
}

struct seal_task {
	struct pkt *pkts;
	size_t n;
	unsigned part, parts;
	uint64_t t0_ms;
	double gap_ms;
	enum mt_err e;
};

/* A device's own alarm (fast packet, protocol §5): code, high priority. */
static void alert(struct mt_message *m, const struct dev *d, uint64_t ctr, uint64_t ts,
                  uint32_t code)
{
	static const char text[] = "bench alert";

	memset(m, 0, sizeof *m);
	(void)snprintf(m->dev, sizeof m->dev, "%s", d->ad.serial);
	m->dev_len = strlen(m->dev);
	m->ctr = ctr;
	m->ts = ts;
	m->typ = MT_TYP_ALERT;
	m->has = MT_MSG_ALRT;
	m->alrt.code = code;
	m->alrt.prio = 3;
	m->alrt.text = text;
	m->alrt.text_len = sizeof text - 1;
}

static enum mt_err seal_one(struct mt_aead *aead, struct pkt *p, uint64_t ts)
{
	struct mt_obs obs[OBS_N];
	struct mt_message m;
	struct mt_seal_params sp = {
	        .dev = p->d->ad.serial, .dev_len = strlen(p->d->ad.serial), .epoch = p->d->epoch,
	        .data_key = p->d->k, .ldev = p->d->ldev, .aead = aead, .fast = p->alert,
	};
	uint8_t buf[PKT_CAP];
	size_t len = 0;
	enum mt_err e;

	if (p->alert)
		alert(&m, p->d, p->ctr, ts, p->code);
	else
		vitals(&m, obs, p->d, p->ctr, ts);
	e = mt_packet_seal(&sp, &m, buf, sizeof buf, &len);
	if (e != MT_OK)
		return e;
	free(p->data);
	p->data = malloc(len);
	if (p->data == NULL)
		return MT_ERR_NOMEM;
	memcpy(p->data, buf, len);
	p->len = (uint32_t)len;
	return MT_OK;
}

/* Seal the packets of the devices of this part (device i → part i mod parts,
 * so no two threads sign with one key at once). */
static void *seal_main(void *arg)
{
	struct seal_task *t = arg;
	struct mt_aead *aead = NULL;

	t->e = mt_aead_new(&aead);
	for (size_t k = 0; k < t->n && t->e == MT_OK; k++) {
		struct pkt *p = &t->pkts[k];

		if ((size_t)(p->d - B.devs) % t->parts != t->part)
			continue;
		t->e = seal_one(aead, p, t->t0_ms + (uint64_t)((double)p->k * t->gap_ms));
	}
	mt_aead_free(aead);
	return NULL;
}

/* The plan of one set: readings [c0, c0 + r) of every device, packet
 * k = j × N + i for device i's reading j. */
struct pkt *plan_set(uint64_t c0, unsigned r, size_t *n)
{
	struct pkt *pkts = calloc(B.n_dev * r, sizeof *pkts);

	if (pkts == NULL)
		return NULL;
	for (unsigned j = 0; j < r; j++)
		for (size_t i = 0; i < B.n_dev; i++) {
			struct pkt *p = &pkts[(size_t)j * B.n_dev + i];

			p->d = &B.devs[i];
			p->ctr = c0 + j;
			p->k = (uint32_t)((size_t)j * B.n_dev + i);
		}
	*n = B.n_dev * r;
	return pkts;
}

void free_set(struct pkt *pkts, size_t n)
{
	for (size_t i = 0; pkts != NULL && i < n; i++)
		free(pkts[i].data);
	free(pkts);
}

/* Seal `pkts` in two threads with ts = t0_ms + k × gap_ms. */
enum mt_err seal_set(struct pkt *pkts, size_t n, uint64_t t0_ms, double gap_ms)
{
	struct seal_task t[2];
	pthread_t th[2];
	enum mt_err e = MT_OK;

	for (unsigned i = 0; i < 2; i++) {
		t[i] = (struct seal_task){pkts, n, i, 2, t0_ms, gap_ms, MT_OK};
		if (pthread_create(&th[i], NULL, seal_main, &t[i]) != 0)
			return MT_ERR_NOMEM;
	}
	for (unsigned i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		if (t[i].e != MT_OK)
			e = t[i].e;
	}
	return e;
}

/* ---- the hub: its log, its counters ----------------------------------------------- */



/* Hand every complete new line of the hub's log to `fn` (until it says stop). */
bool hub_lines(struct hub *h, bool (*fn)(const char *line, void *ctx), void *ctx)
{
	char buf[65536];
	int fd = open(h->c.log, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	bool hit = false;

	if (fd < 0)
		return false;
	n = pread(fd, buf, sizeof buf - 1, h->off);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (char *p = buf, *nl; !hit && (nl = memchr(p, '\n', (size_t)(buf + n - p))) != NULL;
	     p = nl + 1) {
		*nl = '\0';
		h->off += nl + 1 - p;
		hit = fn(p, ctx);
	}
	return hit;
}

static bool has_connected(const char *line, void *ctx)
{
	(void)ctx;
	return strstr(line, "connected to the broker") != NULL;
}

/* "medtrustd: clinical: readings=.. alerts=.. scored=.. alarms=.. ... queued=.. dropped=.." */
static bool parse_clinical(const char *line, void *ctx)
{
	struct counts *c = ctx;
	const char *p = strstr(line, "medtrustd: clinical: "), *q;

	if (p == NULL)
		return false;
	c->has_clin = true;
	q = strstr(p, " readings=");
	c->clin_readings = q ? strtoull(q + 10, NULL, 10) : 0;
	q = strstr(p, " alerts=");
	c->clin_alerts = q ? strtoull(q + 8, NULL, 10) : 0;
	q = strstr(p, " alarms=");
	c->clin_alarms = q ? strtoull(q + 8, NULL, 10) : 0;
	q = strstr(p, " queued=");
	c->clin_queued = q ? strtoull(q + 8, NULL, 10) : 0;
	q = strstr(p, " dropped=");
	c->clin_dropped = q ? strtoull(q + 9, NULL, 10) : 0;
	(void)snprintf(c->clin_line, sizeof c->clin_line, "%s", p + 11);
	return true;
}

static bool parse_counts(const char *line, void *ctx)
{
	struct counts *c = ctx;
	const char *p = strstr(line, "medtrustd: ingest ("), *end, *q;

	if (p == NULL && parse_clinical(line, ctx))
		return false;
	if (p == NULL || (p = strstr(p, "):")) == NULL || (end = strstr(p, "; latency")) == NULL)
		return false;
	c->received = c->stored = c->duplicate = c->receipts = c->overload = c->other = 0;
	for (p += 2; p < end;) {
		const char *eq;
		char *vend = NULL;
		unsigned long long v;
		size_t nl;

		while (p < end && *p == ' ')
			p++;
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq == NULL)
			break;
		nl = (size_t)(eq - p);
		v = strtoull(eq + 1, &vend, 10);
		if (nl == 8 && strncmp(p, "received", nl) == 0)
			c->received = v;
		else if (nl == 6 && strncmp(p, "stored", nl) == 0)
			c->stored = v;
		else if (nl == 9 && strncmp(p, "duplicate", nl) == 0)
			c->duplicate = v;
		else if (nl == 8 && strncmp(p, "receipts", nl) == 0)
			c->receipts = v;
		else if (nl == 8 && strncmp(p, "overload", nl) == 0)
			c->overload = v;
		else
			c->other += v;
		p = vend != NULL && vend > eq ? vend : end;
	}
	q = strstr(end, "p50=");
	c->p50 = q ? strtoull(q + 4, NULL, 10) : 0;
	q = strstr(end, "p99=");
	c->p99 = q ? strtoull(q + 4, NULL, 10) : 0;
	q = strstr(end, "hub_p50=");
	c->hub_p50 = q ? strtoull(q + 8, NULL, 10) : 0;
	q = strstr(end, "hub_p99=");
	c->hub_p99 = q ? strtoull(q + 8, NULL, 10) : 0;
	(void)snprintf(c->line, sizeof c->line, "%s", line);
	return true;
}

/* SIGUSR1 and the line it makes (within a second). */
bool hub_sample(struct hub *h, struct counts *c)
{
	c->t_ns = mono_ns();
	if (h->c.pid <= 0 || kill(h->c.pid, SIGUSR1) != 0)
		return false;
	for (int i = 0; i < 500; i++) {
		if (hub_lines(h, parse_counts, c)) {
			(void)hub_lines(h, parse_clinical, c); /* written right after it */
			return true;
		}
		sleep_ms(2);
	}
	return false;
}

/* SIGUSR2: medtrustd starts its latency figures afresh; then the base
 * counters of the next phase, once a sample shows the histogram empty
 * (SIGUSR1 may be taken before SIGUSR2). */
bool hub_reset(struct hub *h, struct counts *base)
{
	if (h->c.pid <= 0 || kill(h->c.pid, SIGUSR2) != 0)
		return false;
	for (int i = 0; i < 50; i++) {
		sleep_ms(20);
		if (hub_sample(h, base) && base->p50 == 0 && base->p99 == 0)
			return true;
	}
	bench_err("medtrustd did not reset its latency figures (SIGUSR2)\n");
	return false;
}

bool hub_start(struct hub *h, const char *medtrustd, bool ingest, const char *workers,
                      uint16_t hub_port)
{
	char *argv[12];
	int a = 0;

	h->gen++;
	h->off = 0;
	if (!fmt(h->c.log, sizeof h->c.log, "%s/medtrustd-%u.log", B.dir, h->gen))
		return false;
	argv[a++] = (char *)medtrustd;
	argv[a++] = "-c";
	argv[a++] = B.conf;
	if (!ingest) {
		argv[a++] = "--no-ingest";
	} else {
		argv[a++] = "--mqtt-client-id";
		argv[a++] = HUB_CLIENT_ID;
		if (workers != NULL) {
			argv[a++] = "--ingest-workers";
			argv[a++] = (char *)workers;
		}
	}
	argv[a] = NULL;
	h->c.pid = spawn(argv, h->c.log);
	if (h->c.pid < 0 || !wait_listening(&h->c, hub_port, 30000)) {
		bench_err("medtrustd did not start\n");
		print_tail(h->c.log, 2000);
		return false;
	}
	for (int i = 0; ingest && i < 600; i++) {
		if (hub_lines(h, has_connected, NULL))
			return true;
		if (!child_alive(&h->c) || g_interrupted)
			break;
		sleep_ms(50);
	}
	if (ingest) {
		bench_err("medtrustd did not connect to the broker\n");
		print_tail(h->c.log, 2000);
	}
	return !ingest;
}


/* How many lines of `path` hold `needle`. */
unsigned count_lines(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	unsigned n = 0;

	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		n += strstr(line, needle) != NULL;
	if (f != NULL)
		fclose(f);
	return n;
}

/* ---- set-up: onboarding and the devices' keys ------------------------------------- */

static void *onboard_main(void *arg)
{
	(void)arg;
	for (;;) {
		size_t i = atomic_fetch_add(&B.next_dev, 1);
		struct mt_est_result r;
		enum mt_agent_action did = MT_AGENT_NOTHING;
		int64_t next = 0;
		enum mt_err e;

		if (i >= B.n_dev || g_interrupted)
			return NULL;
		e = mt_agent_step(&B.devs[i].ad, &B.ao, (int64_t)time(NULL), false, &did, &next, &r);
		if (e != MT_OK && atomic_fetch_add(&B.onboard_failed, 1) < 5)
			bench_err("onboarding %s: %s\n", B.devs[i].ad.serial,
			        r.why[0] ? r.why : mt_err_str(e));
	}
}

/* The device's keys as devrt.c derives them, its TLS context, its client. */
static enum mt_err dev_load(struct dev *d, char *why, size_t cap)
{
	char path[PATH_MAX + 32], ca[PATH_MAX + 32];
	struct mt_key *kx = NULL;
	struct mt_pubkey *hub_kx = NULL;
	EVP_PKEY *pk = NULL;
	json_t *b = NULL;
	json_error_t jerr;
	const char *kx_b64 = NULL;
	json_int_t epoch = -1;
	uint8_t spki[MT_SPKI_MAX], x[32];
	size_t spki_len = 0;
	enum mt_err e;

	(void)snprintf(path, sizeof path, "%s/bundle.json", d->ad.dir);
	b = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (b == NULL || json_unpack(b, "{s:s, s:I}", "hub_kx", &kx_b64, "epoch", &epoch) != 0 ||
	    epoch < 0 || epoch > (json_int_t)UINT32_MAX) {
		mt_say(why, cap, "%s: no usable bundle", path);
		json_decref(b);
		return MT_ERR_ARG;
	}
	d->epoch = (uint32_t)epoch;
	e = mt_est_b64_decode((const uint8_t *)kx_b64, strlen(kx_b64), spki, sizeof spki,
	                      &spki_len);
	json_decref(b);
	if (e == MT_OK)
		e = mt_pubkey_from_spki(spki, spki_len, &hub_kx);
	if (e == MT_OK)
		e = mt_key_open(d->ad.ldev_uri, &d->ldev);
	if (e == MT_OK)
		e = mt_key_open(d->ad.kx_uri, &kx);
	if (e == MT_OK)
		e = mt_key_ecdh(kx, hub_kx, x);
	if (e == MT_OK) {
		e = mt_packet_derive_keys(x, d->epoch, d->ad.serial, strlen(d->ad.serial), d->k,
		                          d->rk);
		mt_wipe(x, sizeof x);
	}
	mt_key_free(kx);
	mt_pubkey_free(hub_kx);
	if (e != MT_OK) {
		mt_say(why, cap, "%s: keys: %s", d->ad.serial, mt_err_str(e));
		return e;
	}
	(void)snprintf(path, sizeof path, "%s/op.pem", d->ad.dir);
	(void)snprintf(ca, sizeof ca, "%s/hub-ca.pem", d->ad.dir);
	e = mt_key_evp(d->ldev, &pk);
	if (e == MT_OK)
		e = mt_mqtt_tls_ctx(ca, path, pk, B.url.host, &d->ssl, why, cap);
	EVP_PKEY_free(pk);
	/* A device's session: clean start false, a day's expiry (§3). */
	if (e == MT_OK)
		e = mt_mqtt_client(d->ad.serial, d->ad.serial, false, d->ssl, d, &d->mq);
	if (e != MT_OK) {
		if (why[0] == '\0')
			mt_say(why, cap, "%s: TLS or MQTT client: %s", d->ad.serial, mt_err_str(e));
		return e;
	}
	mosquitto_connect_v5_callback_set(d->mq, on_connect);
	mosquitto_disconnect_v5_callback_set(d->mq, on_disconnect);
	mosquitto_publish_v5_callback_set(d->mq, on_publish);
	mosquitto_message_v5_callback_set(d->mq, on_message);
	(void)snprintf(d->up_topic, sizeof d->up_topic, "mt/v1/%s/up/vitals", d->ad.serial);
	(void)snprintf(d->alert_topic, sizeof d->alert_topic, "mt/v1/%s/up/alert", d->ad.serial);
	(void)snprintf(d->down_filter, sizeof d->down_filter, "mt/v1/%s/down/#", d->ad.serial);
	(void)snprintf(d->rcpt_topic, sizeof d->rcpt_topic, "mt/v1/%s/down/rcpt", d->ad.serial);
	d->seen = calloc(B.n_ctr, 1);
	d->fd = -1;
	return d->seen ? MT_OK : MT_ERR_NOMEM;
}

static void *load_main(void *arg)
{
	(void)arg;
	for (;;) {
		size_t i = atomic_fetch_add(&B.next_dev, 1);
		char why[512] = "";

		if (i >= B.n_dev || g_interrupted)
			return NULL;
		if (dev_load(&B.devs[i], why, sizeof why) != MT_OK &&
		    atomic_fetch_add(&B.onboard_failed, 1) < 5)
			bench_err("%s\n", why);
	}
}

/* Run fn on n threads over the devices from `first` on. */
static bool run_threads(void *(*fn)(void *), unsigned n, size_t first)
{
	pthread_t th[ONBOARD_THREADS];
	unsigned started = 0;

	atomic_store(&B.next_dev, first);
	for (; started < n && started < ONBOARD_THREADS; started++)
		if (pthread_create(&th[started], NULL, fn, NULL) != 0)
			break;
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return started > 0;
}

static int load_lot(const char *lot)
{
	struct dirent **names = NULL;
	int n = scandir(lot, &names, NULL, alphasort);

	if (n < 0)
		return -1;
	B.devs = calloc((size_t)n + 1, sizeof *B.devs);
	for (int i = 0; i < n; i++) {
		char dir[PATH_MAX], why[256];

		if (B.devs != NULL && names[i]->d_name[0] != '.' &&
		    strcmp(names[i]->d_name, "manifest.cose") != 0 &&
		    (size_t)snprintf(dir, sizeof dir, "%s/%s", lot, names[i]->d_name) < sizeof dir &&
		    mt_agent_device_load(dir, &B.devs[B.n_dev].ad, why, sizeof why) == MT_OK)
			B.n_dev++;
		free(names[i]);
	}
	free(names);
	return B.devs != NULL ? 0 : -1;
}


/* Seal one device's packets for a short while: µs per sealed packet. */
double seal_cost_us(struct dev *d)
{
	struct mt_aead *aead = NULL;
	struct pkt p = {.d = d, .ctr = 1000000};
	uint64_t t0;
	int n = 0;

	if (mt_aead_new(&aead) != MT_OK)
		return 0;
	t0 = mono_ns();
	while (mono_ns() - t0 < 300000000u) {
		if (seal_one(aead, &p, real_ms()) != MT_OK)
			break;
		n++;
	}
	t0 = mono_ns() - t0;
	free(p.data);
	mt_aead_free(aead);
	return n > 0 ? (double)t0 / 1e3 / n : 0;
}


bool parse_num(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end = NULL;
	unsigned long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == NULL || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* ---- the run ------------------------------------------------------------------------ */

static bool senders_start(void)
{
	for (unsigned i = 0; i < B.n_snd; i++) {
		struct sender *s = &B.snd[i];

		s->id = i;
		s->ep = epoll_create1(EPOLL_CLOEXEC);
		s->devs = calloc(B.n_dev / B.n_snd + 1, sizeof *s->devs);
		s->scratch = malloc(SCRATCH_CAP);
		s->ranges = calloc(MT_RECEIPT_MAX_RANGES, sizeof *s->ranges);
		if (s->ep < 0 || s->devs == NULL || s->scratch == NULL || s->ranges == NULL ||
		    mt_aead_new(&s->aead) != MT_OK)
			return false;
	}
	for (size_t i = 0; i < B.n_dev; i++) {
		struct sender *s = &B.snd[i % B.n_snd];

		B.devs[i].s = s;
		s->devs[s->ndev++] = &B.devs[i];
	}
	for (unsigned i = 0; i < B.n_snd; i++) {
		B.snd[i].started = pthread_create(&B.snd[i].th, NULL, sender_main, &B.snd[i]) == 0;
		if (!B.snd[i].started)
			return false;
	}
	return true;
}

static void senders_stop(void)
{
	atomic_store(&B.stop_senders, true);
	for (unsigned i = 0; i < B.n_snd; i++) {
		struct sender *s = &B.snd[i];

		if (s->started)
			pthread_join(s->th, NULL);
		s->started = false;
		if (s->ep >= 0)
			close(s->ep);
		s->ep = -1;
		mt_aead_free(s->aead);
		s->aead = NULL;
		free(s->devs);
		s->devs = NULL;
		free(s->scratch);
		s->scratch = NULL;
		free(s->ranges);
		s->ranges = NULL;
	}
}

static void devs_free(void)
{
	for (size_t i = 0; B.devs != NULL && i < B.n_dev; i++) {
		struct dev *d = &B.devs[i];

		if (d->mq != NULL)
			mosquitto_destroy(d->mq);
		SSL_CTX_free(d->ssl);
		mt_key_free(d->ldev);
		free(d->seen);
		mt_wipe(d->k, sizeof d->k);
		mt_wipe(d->rk, sizeof d->rk);
	}
	free(B.devs);
	B.devs = NULL;
}

/* Onboard every device: the first in this thread (libcurl's global set-up
 * must come before any other thread's), the rest on ONBOARD_THREADS. */
static bool onboard_all(void)
{
	struct mt_est_result r;
	enum mt_agent_action did = MT_AGENT_NOTHING;
	int64_t next = 0;
	enum mt_err e = mt_agent_step(&B.devs[0].ad, &B.ao, (int64_t)time(NULL), false, &did,
	                              &next, &r);

	if (e != MT_OK) {
		bench_err("onboarding %s: %s\n", B.devs[0].ad.serial,
		        r.why[0] ? r.why : mt_err_str(e));
		return false;
	}
	return run_threads(onboard_main, ONBOARD_THREADS, 1) &&
	       atomic_load(&B.onboard_failed) == 0 && !g_interrupted;
}

/* A ts plan for n packets sealed now: far enough ahead that sealing ends
 * before the first is due (the measured cost, two threads, and a margin). */
void plan_start(size_t n, double seal_us, uint64_t *t0_ns, uint64_t *t0_ms)
{
	uint64_t ahead = (uint64_t)((double)n * seal_us * 1000.0 / 2.0 * 1.5) + 200000000u;

	*t0_ns = mono_ns() + ahead;
	*t0_ms = real_ms() + ahead / 1000000u;
}

void sleep_until(uint64_t t_ns)
{
	uint64_t now = mono_ns();

	if (t_ns > now)
		sleep_ms((unsigned)((t_ns - now) / 1000000u));
	while (mono_ns() < t_ns)
		;
}


static bool wait_all_up(unsigned timeout_s)
{
	uint64_t deadline = mono_ns() + (uint64_t)timeout_s * 1000000000u;

	while (!g_interrupted && mono_ns() < deadline) {
		if (SND(up) + SND(failed) >= B.n_dev)
			return SND(failed) == 0;
		sleep_ms(50);
	}
	return false;
}

uint64_t db_count(const char *hub_dir, const char *table)
{
	char uri[PATH_MAX + 32], sql[128];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	uint64_t n = 0;

	(void)snprintf(uri, sizeof uri, "file:%s/data.db?mode=ro", hub_dir);
	(void)snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
	if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* ---- the deployment ------------------------------------------------------------------ */

int bench_prepare(struct bench_env *E, const char *medtrust, unsigned long n_dev)
{
	struct rlimit rl;
	char *slash;
	int dl;

	if (realpath(medtrust, E->bin) == NULL || access(E->bin, X_OK) != 0) {
		bench_err("%s not found (build it, or give --medtrust)\n", medtrust);
		return 64;
	}
	slash = strrchr(E->bin, '/');
	dl = slash ? (int)(slash - E->bin) : 0;
	(void)snprintf(E->medtrustd, sizeof E->medtrustd, "%.*s/medtrustd", dl, E->bin);
	(void)snprintf(E->plugin, sizeof E->plugin, "%.*s/medtrust_mosq.so", dl, E->bin);
	if (access(E->medtrustd, X_OK) != 0 || access(E->plugin, R_OK) != 0) {
		bench_err("%s or %s missing\n", E->medtrustd, E->plugin);
		return 64;
	}
	/* Three descriptors per device (its socket, libmosquitto's socket pair);
	 * the broker and the hub inherit the limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 3 * n_dev + 256) {
			bench_err("the open-file limit is too low for %lu devices\n", n_dev);
			return 64;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	unsetenv("SOFTHSM2_CONF");
	unsetenv("MEDTRUST_CONFIG");
	setenv("MEDTRUST_KEY_PASSPHRASE", PASSPHRASE, 1);
	for (unsigned i = 0; i < SENDERS_MAX; i++)
		B.snd[i].ep = -1;
	mt_mqtt_lib_init();
	return 0;
}

void bench_background(void)
{
	uint64_t b0 = 0, t0m = 0, b1 = 0, t1m = 0;
	long np = sysconf(_SC_NPROCESSORS_ONLN);

	if (machine_ticks(&b0, &t0m)) {
		sleep_ms(500);
		if (machine_ticks(&b1, &t1m) && t1m > t0m)
			printf("background: machine busy %.0f %% of %ld00 %% before the run "
			       "(other work)\n",
			       (double)(b1 - b0) / (double)(t1m - t0m) * 100.0 * (double)np, np);
	}
}

bool bench_up(struct bench_env *E, const char *base, unsigned long n_dev, const char *extra_conf)
{
	char bport[8], hport[8], count[24];
	uint64_t t0;

	E->timeout_s = (unsigned)(60 + n_dev / 50);
	(void)snprintf(B.dir, sizeof B.dir, "%s/mt-%s-XXXXXX", base, bench_name);
	if (mkdtemp(B.dir) == NULL) {
		bench_err("cannot make a directory in %s: %s\n", base, strerror(errno));
		B.dir[0] = '\0';
		return false;
	}
	E->broker_port = free_port();
	E->hub_port = free_port();
	if (!fmt(E->hub_dir, sizeof E->hub_dir, "%s/hub", B.dir) ||
	    !fmt(E->mfg_dir, sizeof E->mfg_dir, "%s/mfg", B.dir) ||
	    !fmt(B.lot, sizeof B.lot, "%s/lot", B.dir) ||
	    !fmt(B.conf, sizeof B.conf, "%s/medtrust.conf", E->hub_dir) ||
	    !fmt(E->setup_log, sizeof E->setup_log, "%s/setup.log", B.dir) ||
	    !fmt(E->broker.log, sizeof E->broker.log, "%s/mosquitto.log", B.dir) ||
	    !fmt(E->url, sizeof E->url, "https://127.0.0.1:%u", (unsigned)E->hub_port) ||
	    !fmt(E->hub_ca, sizeof E->hub_ca, "%s/pki/ca.pem", E->hub_dir) ||
	    E->broker_port == 0 || E->hub_port == 0 || E->broker_port == E->hub_port)
		return false;
	(void)snprintf(bport, sizeof bport, "%u", (unsigned)E->broker_port);
	(void)snprintf(hport, sizeof hport, "%u", (unsigned)E->hub_port);
	(void)snprintf(count, sizeof count, "%lu", n_dev);
	(void)snprintf(B.url.host, sizeof B.url.host, "127.0.0.1");
	B.url.port = E->broker_port;
	t0 = mono_ns();
	{
		char root[PATH_MAX + 16], man[PATH_MAX + 16];
		char *init[] = {E->bin, "init", E->hub_dir, "--hub-host", "localhost,127.0.0.1",
		                "--broker-host", "localhost,127.0.0.1", "--broker-port", bport,
		                "--broker-plugin", E->plugin, NULL};
		char *mfg[] = {E->bin, "mfg", "init", E->mfg_dir, "--name", "Bench Medical", NULL};
		char *make[] = {E->bin, "mfg", "make", "--mfg", E->mfg_dir, "--count", count,
		                "--class", "wearable", "--out", B.lot, "--soft", NULL};
		char *trust[] = {E->bin, "trust", "add-manufacturer", root, "-c", B.conf, NULL};
		char *import[] = {E->bin, "manifest", "import", man, "-c", B.conf, NULL};
		FILE *f;

		if (!fmt(root, sizeof root, "%s/root.pem", E->mfg_dir) ||
		    !fmt(man, sizeof man, "%s/manifest.cose", B.lot) ||
		    run_cmd(init, E->setup_log) != 0 || run_cmd(mfg, E->setup_log) != 0 ||
		    run_cmd(make, E->setup_log) != 0) {
			bench_err("set-up failed\n");
			print_tail(E->setup_log, 2000);
			return false;
		}
		/* 127.0.0.1 only; one client address enrols every device. */
		f = fopen(B.conf, "a");
		if (f == NULL) {
			bench_err("cannot append to %s\n", B.conf);
			return false;
		}
		if (fprintf(f, "\n# bench/%s\nhub_listen 127.0.0.1\nhub_port %s\n"
		               "broker_url mqtts://127.0.0.1:%s\nest_rate 1000000\n"
		               "est_burst 1000000\n%s",
		            bench_name, hport, bport, extra_conf ? extra_conf : "") < 0) {
			fclose(f);
			return false;
		}
		if (fclose(f) != 0)
			return false;
		if (run_cmd(trust, E->setup_log) != 0 || run_cmd(import, E->setup_log) != 0) {
			bench_err("trust or manifest import failed\n");
			print_tail(E->setup_log, 2000);
			return false;
		}
	}
	if (load_lot(B.lot) != 0 || B.n_dev != n_dev) {
		bench_err("found %zu of %lu devices in %s\n", B.n_dev, n_dev, B.lot);
		return false;
	}
	E->t_setup = (double)(mono_ns() - t0) / 1e9;

	/* The broker, and the hub serving onboarding only for now. */
	{
		char *argv_b[] = {E->bin, "broker", "run", "-c", B.conf, NULL};

		E->broker.pid = spawn(argv_b, E->broker.log);
		if (E->broker.pid < 0 || !wait_listening(&E->broker, E->broker_port, 30000)) {
			bench_err("the broker did not start\n");
			print_tail(E->broker.log, 2000);
			return false;
		}
	}
	if (!hub_start(&E->hub, E->medtrustd, false, NULL, E->hub_port))
		return false;

	/* Onboarding, then each device's keys, TLS context and client. */
	B.ao.hub_url = E->url;
	B.ao.hub_ca = E->hub_ca;
	B.ao.timeout_s = 60;
	t0 = mono_ns();
	if (!onboard_all()) {
		bench_err("%zu devices failed to onboard\n", atomic_load(&B.onboard_failed));
		print_tail(E->hub.c.log, 2000);
		return false;
	}
	E->t_onboard = (double)(mono_ns() - t0) / 1e9;
	t0 = mono_ns();
	if (!run_threads(load_main, 2, 0) || atomic_load(&B.onboard_failed) > 0 || g_interrupted)
		return false;
	E->t_load = (double)(mono_ns() - t0) / 1e9;
	E->seal_us = seal_cost_us(&B.devs[0]);
	if (E->seal_us <= 0) {
		bench_err("sealing failed\n");
		return false;
	}

	/* Every device connects (mTLS) and subscribes to its down/#. */
	t0 = mono_ns();
	if (!senders_start() || !wait_all_up(E->timeout_s)) {
		bench_err("%llu of %zu devices connected (%llu failed)\n",
		          (unsigned long long)SND(up), B.n_dev, (unsigned long long)SND(failed));
		print_tail(E->broker.log, 2000);
		return false;
	}
	E->t_conn = (double)(mono_ns() - t0) / 1e9;
	printf("set-up: deployment and %zu soft devices %.1f s; EST onboarding %.1f s; keys and "
	       "TLS contexts %.1f s; %zu mTLS connections %.1f s\n",
	       B.n_dev, E->t_setup, E->t_onboard, E->t_load, B.n_dev, E->t_conn);
	fflush(stdout);
	return true;
}

void bench_down(struct bench_env *E, bool complete)
{
	senders_stop();
	child_stop(&E->hub.c);
	child_stop(&E->broker);
	devs_free();
	if (!complete && B.dir[0] != '\0')
		bench_err("failed; deployment %s %s\n", B.dir,
		          E->keep ? "kept" : "removed (--keep keeps it)");
	if (B.dir[0] != '\0') {
		if (E->keep) {
			printf("deployment and logs kept in %s\n", B.dir);
		} else {
			char *rm[] = {"/bin/rm", "-rf", B.dir, NULL};

			(void)run_cmd(rm, "/dev/null");
		}
	}
}
