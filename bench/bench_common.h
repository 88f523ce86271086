/*
 * bench_common.h — what the end-to-end benchmarks share (bench/ingest.c,
 * bench/alert.c): a real deployment on 127.0.0.1 with N onboarded
 * soft-key devices, each holding its own MQTT 5 connection over mutual
 * TLS, and packets sealed ahead and published on a plan.
 *
 *   bench_up()     medtrust init (its own mosquitto with the medtrust_mosq
 *                  plugin), mfg make --soft N devices, trust, manifest
 *                  import, the broker, medtrustd --no-ingest, every device
 *                  enrolled and onboarded over EST by the agent's own code
 *                  (mt_agent_step), its data key derived as
 *                  src/agent/devrt.c does, and its MQTT connection up;
 *   senders        T threads, each serving its devices' sockets on one
 *                  epoll loop and publishing a job (packets in plan
 *                  order: packet k due at t0 + k × gap) when due;
 *   the hub        medtrustd restarted with ingest (hub_start), its
 *                  counters read from the line SIGUSR1 makes it log.
 *
 * Invariants:
 *  - Child processes are started from the main thread only (their
 *    PR_SET_PDEATHSIG follows the thread that forked) and inherit none of
 *    this process's descriptors; bench_down() stops them on every path.
 *  - A device's packets are sealed by one thread at a time (seal_set splits
 *    by device), and a device's connection is served by one sender thread
 *    only: libmosquitto's client is not shared between threads.
 *  - A packet's sent_ns (CLOCK_MONOTONIC, taken just before its publish)
 *    is written by its sender thread and may be read once job_done() says
 *    the job is over (release/acquire on done_gen).
 *  - Device ids and counters of every planned packet are distinct; a
 *    device's counters rise in plan order, so the hub's replay window
 *    never refuses one for being late.
 * Messages on stderr are prefixed with bench_name.
 */
#ifndef MT_BENCH_COMMON_H
#define MT_BENCH_COMMON_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mosquitto.h>
#include <openssl/ssl.h>

#include "agent.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_packet.h"
#include "mt_mqtt.h"

#define PASSPHRASE "bench-ingest-passphrase"
#define HUB_CLIENT_ID "hub/bench"
#define CONNECTING_MAX 16   /* TLS handshakes in flight per sender thread */
#define SENDERS_MAX 16
#define ONBOARD_THREADS 4
#define OBS_N 4
#define HUB_THREADS_MAX 128
#define PKT_CAP 1024        /* a vitals packet of four observations is ~250 bytes */
#define SCRATCH_CAP (MT_PACKET_MAX + 64)

extern const char *bench_name; /* "ingest", "alert": the prefix of messages */

__attribute__((format(printf, 1, 2))) void bench_err(const char *f, ...);

uint64_t mono_ns(void);
uint64_t real_ms(void);
void sleep_ms(unsigned ms);
void sleep_until(uint64_t t_ns);
/* snprintf that says whether everything fitted. */
__attribute__((format(printf, 3, 4))) bool fmt(char *out, size_t cap, const char *f, ...);
bool parse_num(const char *s, unsigned long lo, unsigned long hi, unsigned long *out);

extern volatile sig_atomic_t g_interrupted;
void on_signal(int sig);

/* ---- child processes ---- */

struct child {
	pid_t pid;
	char log[PATH_MAX];
};

pid_t spawn(char *const argv[], const char *log);
/* Run to completion; the exit status, or -1. */
int run_cmd(char *const argv[], const char *log);
bool child_alive(struct child *c);
void child_stop(struct child *c);
void print_tail(const char *log, size_t bytes);
uint16_t free_port(void);
bool wait_listening(struct child *c, uint16_t port, unsigned timeout_ms);
/* How many lines of `path` hold `needle`. */
unsigned count_lines(const char *path, const char *needle);

/* ---- CPU time from /proc ---- */

struct thr {
	long tid;
	uint64_t ticks;
};

struct cpu_snap {
	uint64_t t_ns;
	uint64_t hub, broker, self, m_busy, m_total;
	size_t n_thr;
	struct thr thr[HUB_THREADS_MAX];
};

bool machine_ticks(uint64_t *busy, uint64_t *total);
void cpu_snap(struct cpu_snap *s, pid_t hub, pid_t broker);

/* ---- devices, packets and the sender ---- */

enum conn_state { C_IDLE, C_CONNECTING, C_UP, C_FAILED };

struct sender;

struct dev {
	struct mt_agent_device ad;
	char up_topic[MT_MQTT_TOPIC_MAX];
	char alert_topic[MT_MQTT_TOPIC_MAX];
	char down_filter[MT_MQTT_TOPIC_MAX];
	char rcpt_topic[MT_MQTT_TOPIC_MAX];
	struct mt_key *ldev;
	uint32_t epoch;
	uint8_t k[MT_KEY_LEN], rk[MT_KEY_LEN];
	SSL_CTX *ssl;
	struct mosquitto *mq;
	int fd;
	uint32_t ev; /* epoll interest now */
	enum conn_state st;
	uint8_t *seen; /* [n_ctr]: counters named by a receipt */
	struct sender *s;
};

/* One sealed packet: device, counter, plan index (due at t0 + k × gap).
 * A fast packet (alert) carries alert code `code` at high priority and
 * goes to up/alert; the others are vitals on up/vitals. */
struct pkt {
	struct dev *d;
	uint8_t *data;
	uint32_t len;
	uint32_t k;
	uint64_t ctr;
	bool alert;
	uint32_t code;
	uint64_t sent_ns; /* CLOCK_MONOTONIC just before its publish; 0: not sent */
};

struct job {
	struct pkt **list; /* in plan order */
	size_t n;
	uint64_t t0_ns;
	double gap_ns; /* 0: every packet due at t0 */
};

struct sender {
	unsigned id;
	pthread_t th;
	bool started;
	struct dev **devs;
	size_t ndev;
	int ep;
	struct mt_aead *aead;
	uint8_t *scratch;
	uint64_t (*ranges)[2];
	size_t connecting;
	/* The job: written by the main thread, published through gen. */
	struct job job;
	_Atomic unsigned gen, done_gen;
	_Atomic uint64_t published, acked, receipts, bad_receipts, pub_failed;
	_Atomic uint64_t up, failed, lost;
};

struct bench {
	size_t n_dev;
	unsigned readings;
	size_t n_ctr; /* counters per device (receipts are tracked below it) */
	bool steady_vitals; /* a device's vitals values do not change between its readings */
	struct dev *devs;
	struct sender snd[SENDERS_MAX];
	unsigned n_snd;
	struct mt_mqtt_url url;
	_Atomic bool stop_senders;
	_Atomic size_t next_dev, onboard_failed;
	struct mt_agent_opts ao;
	char conf[PATH_MAX], dir[PATH_MAX], lot[PATH_MAX];
};

extern struct bench B;

/* Hand each sender its share of `pkts` (plan order) and start them. */
bool start_job(struct pkt *pkts, size_t n, uint64_t t0_ns, double gap_ns, struct pkt ***lists);
bool job_done(void);
void free_lists(struct pkt ***lists);
uint64_t sum_snd(size_t off);
#define SND(field) sum_snd(offsetof(struct sender, field))

/* ---- sealing ahead ---- */

/* The plan of one set: readings [c0, c0 + r) of every device, packet
 * k = j × N + i for device i's reading j. */
struct pkt *plan_set(uint64_t c0, unsigned r, size_t *n);
void free_set(struct pkt *pkts, size_t n);
/* Seal `pkts` in two threads with ts = t0_ms + k × gap_ms. */
MT_NODISCARD enum mt_err seal_set(struct pkt *pkts, size_t n, uint64_t t0_ms, double gap_ms);
/* µs per sealed vitals packet of device d (measured for 0.3 s). */
double seal_cost_us(struct dev *d);
/* A ts plan for n packets sealed now: far enough ahead that sealing ends
 * before the first is due. */
void plan_start(size_t n, double seal_us, uint64_t *t0_ns, uint64_t *t0_ms);

/* ---- the hub: its log, its counters ---- */

struct hub {
	struct child c;
	off_t off;    /* what of the log has been read */
	unsigned gen; /* starts */
};

struct counts {
	uint64_t t_ns;
	uint64_t received, stored, duplicate, receipts, overload, other;
	uint64_t p50, p99;         /* device ts → commit */
	uint64_t hub_p50, hub_p99; /* arrival at the hub → commit: the hub's own share */
	char line[1024];
	/* medtrustd's clinical line (same SIGUSR1), when it has one */
	bool has_clin;
	uint64_t clin_readings, clin_alerts, clin_alarms, clin_queued, clin_dropped;
	char clin_line[512];
};

/* Hand every complete new line of the hub's log to `fn` (until it says stop). */
bool hub_lines(struct hub *h, bool (*fn)(const char *line, void *ctx), void *ctx);
/* SIGUSR1 and the ingest line it makes (within a second); the clinical
 * line that follows it is parsed when it is already there. */
bool hub_sample(struct hub *h, struct counts *c);
/* SIGUSR2 (latency figures afresh), then the base counters of a phase. */
bool hub_reset(struct hub *h, struct counts *base);
bool hub_start(struct hub *h, const char *medtrustd, bool ingest, const char *workers,
               uint16_t hub_port);

/* ---- the deployment ---- */

struct bench_env {
	char bin[PATH_MAX], medtrustd[PATH_MAX + 16], plugin[PATH_MAX + 32];
	char hub_dir[PATH_MAX + 8], mfg_dir[PATH_MAX + 8], setup_log[PATH_MAX + 16];
	char url[64], hub_ca[PATH_MAX + 16];
	uint16_t broker_port, hub_port;
	struct child broker;
	struct hub hub;
	double t_setup, t_onboard, t_load, t_conn, seal_us;
	unsigned timeout_s;
	bool keep;
};

/* Check the CLI, medtrustd and the plugin beside it, raise the open-file
 * limit for n_dev devices, set signals and the key passphrase.  0, or
 * the exit status of a usage error (64). */
int bench_prepare(struct bench_env *E, const char *medtrust, unsigned long n_dev);
/* Print how busy the machine is over half a second (other work). */
void bench_background(void);
/* The deployment in a temporary directory under `base`, `extra_conf`
 * (may be NULL) appended to medtrust.conf; the broker and medtrustd
 * --no-ingest running; every device onboarded, loaded and connected.
 * B.n_ctr and B.n_snd must be set. */
bool bench_up(struct bench_env *E, const char *base, unsigned long n_dev,
              const char *extra_conf);
/* Stop senders and children, free the devices, remove the directory
 * unless E->keep. */
void bench_down(struct bench_env *E, bool complete);
/* SELECT count(*) FROM `table` of the deployment's data.db. */
uint64_t db_count(const char *hub_dir, const char *table);

#endif
