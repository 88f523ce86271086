/*
 * ingest.c — MQTT in, verified readings stored, receipts out (ingest.h
 * draws the pipeline and states its invariants; docs/ingest.md is the
 * operator's view).
 *
 * Threads and what each owns:
 *
 *  - libmosquitto's network thread: on_message copies the payload into the
 *    sender's queue (struct devq) and nothing else.  The queues live in one
 *    hash table under `qlock`; a device with work waits in the `ready`
 *    list, so workers take devices round-robin, one packet per turn.
 *  - workers: mt_packet_open without a window (stages 1–12 and 14), with
 *    keys from the device cache (struct devkey: parsed ldev key, data keys
 *    of the current and previous epoch, receipt key; ECDH in the token
 *    once per device and epoch — FIELD-NOTES: parsing a key costs 2.4
 *    verifies, so nothing is parsed per packet).  Results go to `done`.
 *  - the committer: takes everything in `done` (fast packets at once;
 *    routine ones after a COMMIT_WINDOW_MS group-commit window), opens
 *    one transaction, runs stage 13 against each device's window read
 *    inside it, stores, saves the windows, commits — then raises the alerts and hands the
 *    resolved counters to the receipt lists (with a syncer: once its fsync
 *    has made the commit durable, syncer.h).
 *  - the ticker (every 100 ms): polls the registry's data_version (a
 *    revocation empties the device cache at once), sends the receipts that
 *    are due (one per device per second at most), flushes aggregated
 *    refusal audit records.
 *  - any thread (the console's HTTPS workers): mt_ingest_rotate_epoch,
 *    one downlink command at a time under `cmdlock` — the registry's
 *    epoch move under `reglock`, the device cache invalidated, the
 *    command signed with the command key and published on the shared
 *    connection like the receipts (docs/commands.md).
 *
 * Test fail points (threat FI03): MEDTRUST_FAILPOINT=<point>:<n> makes the
 * committer SIGKILL its own process the n-th time it reaches <point>:
 * before_begin, mid_txn, after_commit (before receipts), after_receipt.
 * Unset, they cost one branch per group.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest.h"
#include "medtrust/mt_command.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_packet.h"
#include "medtrust/mt_pki.h"
#include "medtrust/mt_registry.h"
#include "medtrust/mt_store.h"
#include "medtrust/mt_util.h"
#include "mt_mqtt.h"

#define HASH_BUCKETS 4096u
#define DEVQ_MAX 256u            /* packets waiting per device */
#define QUEUE_MAX 65536u         /* packets waiting in all */
#define QUEUE_BYTES_MAX (256u << 20)
#define GROUP_MAX 2048u          /* results per transaction */
#define SLOW_COMMIT_MS 100       /* a group commit this slow is logged */
#define COMMIT_WINDOW_MS 10      /* routine packets gather this long before a commit */
#define PEND_MAX 65536u          /* resolved counters awaiting a receipt, per device */
#define RCPT_INTERVAL_MS 1000u   /* §4a: at most one receipt per device per second */
#define TICK_MS 100u
#define REG_POLL_MS 200u
#define AUDIT_EVERY_MS 60000u    /* refusal audit aggregation window */
#define BUDGET_RATE 20.0         /* refusals per second a device may cost */
#define BUDGET_BURST 200.0
#define STORE_RETRY_MS 200u      /* pause after a failed commit */
#define LAT_MAX_MS 60000u        /* latency histogram: 1 ms buckets up to a minute */
#define IV_SEEN 256u             /* IVs remembered per device (threat A16) */

/* ---- counters ----------------------------------------------------------- */

static const char *const count_names[MT_IC_N] = {
        [MT_IC_RECEIVED] = "received",       [MT_IC_STORED] = "stored",
        [MT_IC_ALERTS] = "alerts",           [MT_IC_DUPLICATE] = "duplicate",
        [MT_IC_SIZE] = "size",               [MT_IC_CBOR] = "cbor",
        [MT_IC_HEADER] = "header",           [MT_IC_EPOCH] = "epoch",
        [MT_IC_AEAD] = "aead",               [MT_IC_INNER] = "inner",
        [MT_IC_ALG] = "alg",                 [MT_IC_KID] = "kid",
        [MT_IC_SIGNATURE] = "signature",     [MT_IC_MESSAGE] = "message",
        [MT_IC_DEV] = "dev",                 [MT_IC_INACTIVE] = "inactive",
        [MT_IC_REPLAY] = "replay",           [MT_IC_IMPLAUSIBLE] = "implausible",
        [MT_IC_COUNTER_JUMP] = "counter_jump",  [MT_IC_IV_REUSE] = "iv_reuse",
        [MT_IC_TOPIC] = "topic",             [MT_IC_THROTTLED] = "throttled",
        [MT_IC_OVERLOAD] = "overload",       [MT_IC_STORE_FAILED] = "store_failed",
        [MT_IC_RECEIPTS] = "receipts",       [MT_IC_SKEWED] = "skewed",
        [MT_IC_STALE] = "stale",
};

const char *mt_ingest_count_name(enum mt_ingest_count c)
{
	return c < MT_IC_N && count_names[c] ? count_names[c] : "?";
}

/* The counter of a refusal stage. */
static enum mt_ingest_count stage_count(enum mt_err e)
{
	switch (e) {
	case MT_ERR_PKT_SIZE: return MT_IC_SIZE;
	case MT_ERR_PKT_CBOR: return MT_IC_CBOR;
	case MT_ERR_PKT_HEADER: return MT_IC_HEADER;
	case MT_ERR_PKT_EPOCH: return MT_IC_EPOCH;
	case MT_ERR_PKT_AEAD: return MT_IC_AEAD;
	case MT_ERR_PKT_INNER: return MT_IC_INNER;
	case MT_ERR_PKT_ALG: return MT_IC_ALG;
	case MT_ERR_PKT_KID: return MT_IC_KID;
	case MT_ERR_PKT_SIGNATURE: return MT_IC_SIGNATURE;
	case MT_ERR_PKT_MESSAGE: return MT_IC_MESSAGE;
	case MT_ERR_PKT_DEV: return MT_IC_DEV;
	case MT_ERR_PKT_INACTIVE: return MT_IC_INACTIVE;
	case MT_ERR_PKT_REPLAY: return MT_IC_REPLAY;
	case MT_ERR_PKT_IMPLAUSIBLE: return MT_IC_IMPLAUSIBLE;
	default: return MT_IC_MESSAGE;
	}
}

/* ---- data structures ---------------------------------------------------- */

struct item {
	struct item *next;
	enum mt_topic topic;
	uint64_t received_ms;
	size_t len;
	uint8_t data[];
};

/* A device's key material, immutable once built; reference-counted so a
 * worker may use it while a revocation replaces it. */
struct devkey {
	char dev[MT_DEVICE_ID_MAX + 1];
	atomic_int refs;
	uint64_t gen;
	enum mt_view_status status;
	struct mt_pubkey *ldev;
	uint32_t epoch;
	bool has_prev;
	uint8_t k_cur[MT_KEY_LEN], k_prev[MT_KEY_LEN], rk_cur[MT_KEY_LEN];
	char cert_serial[MT_REG_CERT_SERIAL_MAX];
	uint8_t kx_hash[32]; /* SHA-256 of the device's kx SPKI: what the keys came from */
	struct devkey *hnext;
};

/* Everything per device that is not key material (under qlock). */
struct devq {
	char dev[MT_DEVICE_ID_MAX + 1];
	struct devq *hnext, *rnext;
	struct item *head, *tail;
	unsigned n;
	bool ready;
	double tokens;     /* refusal budget */
	uint64_t tokens_ms;
	uint64_t *pend;    /* resolved counters awaiting a receipt */
	size_t npend, cpend;
	uint64_t last_rcpt_ms;
	/* The last IV_SEEN authentic packets' (epoch, IV, digest prefix): the
	 * same IV under the same key with other contents is an alarm (A16). */
	struct {
		uint32_t epoch;
		uint8_t iv[MT_AEAD_IV_LEN];
		uint8_t digest[8];
	} ivs[IV_SEEN];
	unsigned n_ivs, iv_next;
	uint64_t throttle_told_ms;     /* the last "possible attack" told (on_security) */
	uint64_t throttled_since_told; /* packets throttled since */
	uint64_t audit_ms[MT_IC_N];    /* last refusal audit record per counter */
	uint32_t suppressed[MT_IC_N];  /* refusals since */
	char last_detail[MT_IC_N][96];
};

/* A worker's verdict, for the committer. */
enum done_kind { D_READING, D_ALERT, D_IMPLAUSIBLE };

struct done {
	struct done *next;
	enum done_kind kind;
	char dev[MT_DEVICE_ID_MAX + 1];
	uint64_t ctr, ts_ms, received_ms;
	uint32_t epoch;
	uint8_t typ;
	unsigned flags;
	char cert_serial[MT_REG_CERT_SERIAL_MAX];
	uint64_t alert_code, alert_prio;
	int64_t row_id; /* the stored reading's or alert's row (after the commit) */
	enum mt_ingest_count refusal; /* for V_REFUSED: replay or implausible */
	char alert_text[MT_TEXT_MAX + 1]; /* alert text, or why it was refused */
	size_t len;
	uint8_t data[]; /* the Sign1 (reading) or the message (alert) */
};

struct mt_ingest {
	struct mt_ingest_opts o;
	struct mt_store *store;
	struct mt_registry *reg; /* under reglock */
	struct mt_key *kx;       /* the hub's kx key (token) */
	/* Downlink commands (mt_ingest_rotate_epoch): the command key (token;
	 * NULL: none could be opened, cmd_why says why), one command at a
	 * time under cmdlock. */
	struct mt_key *cmd;
	char cmd_why[192];
	pthread_mutex_t cmdlock;
	struct mosquitto *mq;
	struct mt_mqtt_url url;
	char client_id[80];
	_Atomic bool connected, stopping;
	_Atomic uint64_t counts[MT_IC_N];
	_Atomic uint32_t *lat;       /* [LAT_MAX_MS + 1] ts→commit, committer writes */
	_Atomic uint32_t *lat_hub;   /* [LAT_MAX_MS + 1] received→commit: the hub's own share */
	char disk_full_flag[256];    /* test fail point: commits fail while it exists */

	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct devq *qhash[HASH_BUCKETS];
	struct devq *ready_head, *ready_tail;
	size_t q_items, q_bytes;

	pthread_mutex_t klock, reglock;
	struct devkey *khash[HASH_BUCKETS];
	uint64_t kgen;
	int64_t reg_version;

	uint64_t slow_told_ms; /* committer: the last slow commit logged */
	struct mt_store *ckpt; /* the checkpointer's connection */
	pthread_t ckpt_thread;
	bool ckpt_started;

	pthread_mutex_t dlock;
	pthread_cond_t dcond;
	/* Verdicts for the committer: fast packets (alerts) in a lane of
	 * their own, committed ahead of routine packets in groups of their
	 * own, so a device's alert waits at most for the group being
	 * committed, never behind a backlog of vitals. */
	struct done *done_head, *done_tail, *fast_head, *fast_tail;
	size_t n_done;
	struct timespec done_due; /* CLOCK_MONOTONIC: commit the routine list by then */

	pthread_t *workers;
	unsigned n_workers, n_started;
	pthread_t committer, ticker, net;
	bool committer_started, ticker_started, net_started;

	/* fail point (tests) */
	int fp_point; /* 0 none, 1 before_begin, 2 mid_txn, 3 after_commit, 4 after_receipt */
	long fp_left;
};

static uint64_t now_ms(void)
{
	return mt_deploy_now_ms();
}

static uint32_t hash_dev(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % HASH_BUCKETS;
}

static void count(struct mt_ingest *g, enum mt_ingest_count c, uint64_t n)
{
	atomic_fetch_add(&g->counts[c], n);
}

static void fail_point(struct mt_ingest *g, int point)
{
	if (g->fp_point == point && --g->fp_left == 0) {
		fprintf(stderr, "medtrustd: fail point %d reached: killing the process\n", point);
		raise(SIGKILL);
	}
}

/* ---- the device cache ---------------------------------------------------- */

static void devkey_put(struct devkey *k)
{
	if (k != NULL && atomic_fetch_sub(&k->refs, 1) == 1) {
		mt_pubkey_free(k->ldev);
		mt_wipe(k, sizeof *k);
		free(k);
	}
}

/* Build a device's keys from the registry (reglock held), as of registry
 * generation `gen`.  MT_ERR_NOT_FOUND: unknown, or not onboarded (no keys
 * to open anything with). */
static enum mt_err devkey_build(struct mt_ingest *g, const char *dev, uint64_t gen,
                                const struct devkey *old, struct devkey **out)
{
	struct mt_device_rec rec;
	struct mt_pubkey *kxpub = NULL;
	struct devkey *k;
	uint8_t x[32];
	enum mt_err e = mt_registry_device(g->reg, dev, &rec);

	if (e == MT_ERR_REG_UNKNOWN || e == MT_ERR_NOT_FOUND)
		return MT_ERR_NOT_FOUND;
	if (e != MT_OK)
		return e;
	if (rec.ldev_spki_len == 0 || rec.kx_spki_len == 0 || rec.status == MT_DEV_MANIFESTED)
		return MT_ERR_NOT_FOUND;
	k = calloc(1, sizeof *k);
	if (k == NULL)
		return MT_ERR_NOMEM;
	atomic_init(&k->refs, 1);
	(void)snprintf(k->dev, sizeof k->dev, "%s", dev);
	k->gen = gen;
	k->status = rec.status == MT_DEV_ACTIVE    ? MT_VIEW_ACTIVE
	            : rec.status == MT_DEV_REVOKED ? MT_VIEW_REVOKED
	                                           : MT_VIEW_DECOMMISSIONED;
	k->epoch = rec.epoch;
	memcpy(k->cert_serial, rec.cert_serial, sizeof k->cert_serial);
	e = mt_pubkey_from_spki(rec.ldev_spki, rec.ldev_spki_len, &k->ldev);
	if (e == MT_OK)
		e = mt_sha256(rec.kx_spki, rec.kx_spki_len, k->kx_hash);
	/* The registry changed (an audit record, another device's revocation:
	 * its version counts every write), but this device's kx key and
	 * epoch did not: its data keys stand, no ECDH in the token again. */
	if (e == MT_OK && old != NULL && old->epoch == k->epoch &&
	    CRYPTO_memcmp(old->kx_hash, k->kx_hash, sizeof k->kx_hash) == 0) {
		memcpy(k->k_cur, old->k_cur, sizeof k->k_cur);
		memcpy(k->rk_cur, old->rk_cur, sizeof k->rk_cur);
		memcpy(k->k_prev, old->k_prev, sizeof k->k_prev);
		k->has_prev = old->has_prev;
		*out = k;
		return MT_OK;
	}
	if (e == MT_OK)
		e = mt_pubkey_from_spki(rec.kx_spki, rec.kx_spki_len, &kxpub);
	if (e == MT_OK)
		e = mt_key_ecdh(g->kx, kxpub, x);
	if (e == MT_OK)
		e = mt_packet_derive_keys(x, k->epoch, dev, strlen(dev), k->k_cur, k->rk_cur);
	if (e == MT_OK && k->epoch > 0) {
		k->has_prev = true;
		e = mt_packet_derive_keys(x, k->epoch - 1, dev, strlen(dev), k->k_prev, NULL);
	}
	mt_wipe(x, sizeof x);
	mt_pubkey_free(kxpub);
	if (e != MT_OK) {
		devkey_put(k);
		return e;
	}
	*out = k;
	return MT_OK;
}

/* The device's keys with a reference the caller puts back.  A missing or
 * outdated entry is built outside `klock` (registry read and ECDH in the
 * token take a millisecond or more, and every worker would wait behind
 * it), under `reglock`, and inserted unless another worker was faster. */
static enum mt_err devkey_get(struct mt_ingest *g, const char *dev, struct devkey **out)
{
	uint32_t h = hash_dev(dev);
	struct devkey **pp, *k, *fresh = NULL;
	uint64_t gen;
	enum mt_err e;

	*out = NULL;
	pthread_mutex_lock(&g->klock);
	for (k = g->khash[h]; k; k = k->hnext)
		if (strcmp(k->dev, dev) == 0 && k->gen == g->kgen) {
			atomic_fetch_add(&k->refs, 1);
			pthread_mutex_unlock(&g->klock);
			*out = k;
			return MT_OK;
		}
	gen = g->kgen;
	/* an outdated entry of the device, held while its keys may be reused */
	for (k = g->khash[h]; k; k = k->hnext)
		if (strcmp(k->dev, dev) == 0) {
			atomic_fetch_add(&k->refs, 1);
			break;
		}
	pthread_mutex_unlock(&g->klock);

	pthread_mutex_lock(&g->reglock);
	e = devkey_build(g, dev, gen, k, &fresh);
	pthread_mutex_unlock(&g->reglock);
	if (k != NULL)
		devkey_put(k);
	if (e != MT_OK)
		return e;

	pthread_mutex_lock(&g->klock);
	for (pp = &g->khash[h]; *pp; pp = &(*pp)->hnext)
		if (strcmp((*pp)->dev, dev) == 0)
			break;
	k = *pp;
	if (k != NULL && k->gen >= fresh->gen) { /* another worker was faster */
		devkey_put(fresh);
	} else {
		if (k != NULL) { /* outdated: replace (users keep their reference) */
			*pp = k->hnext;
			devkey_put(k);
		}
		fresh->hnext = g->khash[h];
		g->khash[h] = fresh;
		k = fresh;
	}
	atomic_fetch_add(&k->refs, 1);
	pthread_mutex_unlock(&g->klock);
	*out = k;
	return MT_OK;
}

struct lookup_ctx {
	struct mt_ingest *g;
	struct devkey *held;
};

static enum mt_err data_key(void *ctx, uint32_t epoch, uint8_t key[MT_KEY_LEN])
{
	const struct devkey *k = ctx;

	if (epoch == k->epoch)
		memcpy(key, k->k_cur, MT_KEY_LEN);
	else if (k->has_prev && epoch == k->epoch - 1)
		memcpy(key, k->k_prev, MT_KEY_LEN);
	else
		return MT_ERR_PKT_EPOCH;
	return MT_OK;
}

static enum mt_err lookup(void *ctx, const char *dev, size_t dev_len, struct mt_device_view *v)
{
	struct lookup_ctx *lc = ctx;
	char id[MT_DEVICE_ID_MAX + 1];
	enum mt_err e;

	if (dev_len >= sizeof id)
		return MT_ERR_NOT_FOUND;
	memcpy(id, dev, dev_len);
	id[dev_len] = '\0';
	e = devkey_get(lc->g, id, &lc->held);
	if (e != MT_OK)
		return e;
	memset(v, 0, sizeof *v);
	v->status = lc->held->status;
	v->check_status = true;
	v->ldev = lc->held->ldev;
	v->check_epoch = true;
	v->epoch = lc->held->epoch;
	v->data_key = data_key;
	v->data_key_ctx = lc->held;
	v->window = NULL; /* stage 13 is the committer's */
	return MT_OK;
}

/* ---- the per-device queues ------------------------------------------------ */

static struct devq *devq_find(struct mt_ingest *g, const char *dev, bool create)
{
	uint32_t h = hash_dev(dev);
	struct devq *q;

	for (q = g->qhash[h]; q; q = q->hnext)
		if (strcmp(q->dev, dev) == 0)
			return q;
	if (!create)
		return NULL;
	q = calloc(1, sizeof *q);
	if (q == NULL)
		return NULL;
	(void)snprintf(q->dev, sizeof q->dev, "%s", dev);
	q->tokens = BUDGET_BURST;
	q->hnext = g->qhash[h];
	g->qhash[h] = q;
	return q;
}

static void ready_push(struct mt_ingest *g, struct devq *q)
{
	q->ready = true;
	q->rnext = NULL;
	if (g->ready_tail)
		g->ready_tail->rnext = q;
	else
		g->ready_head = q;
	g->ready_tail = q;
}

static enum mt_topic topic_of(const char *leaf)
{
	if (strcmp(leaf, "vitals") == 0)
		return MT_TOPIC_VITALS;
	if (strcmp(leaf, "alert") == 0)
		return MT_TOPIC_ALERT;
	if (strcmp(leaf, "status") == 0)
		return MT_TOPIC_STATUS;
	if (strcmp(leaf, "ack") == 0)
		return MT_TOPIC_ACK;
	return MT_TOPIC_NONE;
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct mt_ingest *g = arg;
	char dev[MT_DEVICE_ID_MAX + 1];
	const char *leaf;
	enum mt_topic t;
	struct devq *q;
	struct item *it;
	size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;

	(void)m;
	(void)props;
	count(g, MT_IC_RECEIVED, 1);
	if (!mt_mqtt_topic_up(msg->topic, dev, &leaf) ||
	    (t = topic_of(leaf)) == MT_TOPIC_NONE) {
		count(g, MT_IC_TOPIC, 1);
		return;
	}
	/* An oversized payload is kept at its first 65,537 bytes: enough for
	 * stage 1 to refuse it by size, never a large copy. */
	if (len > MT_PACKET_MAX + 1)
		len = MT_PACKET_MAX + 1;
	it = malloc(sizeof *it + len);
	if (it == NULL) {
		count(g, MT_IC_OVERLOAD, 1);
		return;
	}
	it->next = NULL;
	it->topic = t;
	it->received_ms = now_ms();
	it->len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0; /* the real size, for stage 1 */
	memcpy(it->data, msg->payload, len);
	if (it->len > len)
		it->len = len; /* stage 1 sees 65,537 > 65,536 and refuses */

	pthread_mutex_lock(&g->qlock);
	q = devq_find(g, dev, true);
	if (q == NULL || q->n >= DEVQ_MAX || g->q_items >= QUEUE_MAX ||
	    g->q_bytes + len > QUEUE_BYTES_MAX) {
		pthread_mutex_unlock(&g->qlock);
		free(it);
		count(g, MT_IC_OVERLOAD, 1);
		return;
	}
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->n++;
	g->q_items++;
	g->q_bytes += len;
	if (!q->ready)
		ready_push(g, q);
	pthread_cond_signal(&g->qcond);
	pthread_mutex_unlock(&g->qlock);
}

/* ---- refusals: counted, audited (aggregated) ------------------------------ */

static void audit_refusal(struct mt_ingest *g, const char *dev, enum mt_ingest_count c,
                          uint32_t n, const char *detail)
{
	char actor[MT_DEVICE_ID_MAX + 8], js[2][256], text[700];

	if (g->o.audit == NULL)
		return;
	(void)snprintf(actor, sizeof actor, "device:%s", dev);
	(void)snprintf(text, sizeof text, "{\"stage\":%s,\"count\":%u,\"detail\":%s}",
	               mt_deploy_json_str(mt_ingest_count_name(c), js[0], sizeof js[0]), n,
	               mt_deploy_json_str(detail, js[1], sizeof js[1]));
	g->o.audit(g->o.audit_ctx, actor, "packet.refused", dev, MT_AUDIT_REFUSED, text);
}

/* Count a refusal and decide whether to audit it now (qlock not held). */
static void refused(struct mt_ingest *g, const char *dev, enum mt_ingest_count c,
                    const char *detail)
{
	struct devq *q;
	uint64_t t = now_ms();
	uint32_t n = 0;

	count(g, c, 1);
	pthread_mutex_lock(&g->qlock);
	q = devq_find(g, dev, true);
	if (q != NULL) {
		q->tokens -= 1.0; /* the refusal budget (H04) */
		if (q->audit_ms[c] == 0 || t - q->audit_ms[c] >= AUDIT_EVERY_MS) {
			n = q->suppressed[c] + 1;
			q->suppressed[c] = 0;
			q->audit_ms[c] = t;
		} else {
			q->suppressed[c]++;
			(void)snprintf(q->last_detail[c], sizeof q->last_detail[c], "%s", detail);
		}
	}
	pthread_mutex_unlock(&g->qlock);
	if (n > 0)
		audit_refusal(g, dev, c, n, detail);
}

/* ---- workers -------------------------------------------------------------- */

static void done_push(struct mt_ingest *g, struct done *d)
{
	struct done **head = d->kind == D_ALERT ? &g->fast_head : &g->done_head;
	struct done **tail = d->kind == D_ALERT ? &g->fast_tail : &g->done_tail;

	bool wake;

	pthread_mutex_lock(&g->dlock);
	wake = d->kind == D_ALERT || g->done_head == NULL || g->n_done + 1 >= GROUP_MAX;
	if (d->kind != D_ALERT && g->done_head == NULL) {
		clock_gettime(CLOCK_MONOTONIC, &g->done_due);
		g->done_due.tv_nsec += COMMIT_WINDOW_MS * 1000000L;
		if (g->done_due.tv_nsec >= 1000000000L) {
			g->done_due.tv_sec++;
			g->done_due.tv_nsec -= 1000000000L;
		}
	}
	if (*tail)
		(*tail)->next = d;
	else
		*head = d;
	*tail = d;
	g->n_done++;
	if (wake)
		pthread_cond_signal(&g->dcond);
	pthread_mutex_unlock(&g->dlock);
}

static struct done *done_new(enum done_kind kind, const char *dev,
                             const struct mt_open_result *r, const uint8_t *data, size_t len,
                             uint64_t received_ms)
{
	struct done *d = calloc(1, sizeof *d + len);

	if (d == NULL)
		return NULL;
	d->kind = kind;
	(void)snprintf(d->dev, sizeof d->dev, "%s", dev);
	d->ctr = r->msg.ctr;
	d->ts_ms = r->msg.ts;
	d->typ = (uint8_t)r->msg.typ;
	d->epoch = r->epoch;
	d->received_ms = received_ms;
	d->flags = (r->clock_skewed ? MT_STORE_SKEWED : 0u) | (r->stale ? MT_STORE_STALE : 0u);
	d->len = len;
	if (len)
		memcpy(d->data, data, len);
	return d;
}

/* Threat A16: remember the IV of a packet that passed the AEAD; the same
 * epoch and IV with different bytes means the device's key encrypted two
 * messages under one nonce — GCM's confidentiality and integrity are gone
 * for that key.  Raised as its own alarm (counted, audited); the packet
 * itself goes on to the remaining checks. */
static void iv_monitor(struct mt_ingest *g, const char *dev, const struct mt_open_result *r,
                       const uint8_t *pkt, size_t len)
{
	uint8_t digest[32];
	struct devq *q;
	bool reused = false;

	if (mt_sha256(pkt, len, digest) != MT_OK)
		return;
	pthread_mutex_lock(&g->qlock);
	q = devq_find(g, dev, true);
	for (unsigned i = 0; q != NULL && i < q->n_ivs; i++)
		if (q->ivs[i].epoch == r->epoch &&
		    memcmp(q->ivs[i].iv, r->iv, MT_AEAD_IV_LEN) == 0) {
			reused = memcmp(q->ivs[i].digest, digest, sizeof q->ivs[i].digest) != 0;
			q = NULL; /* seen: a replay of the very packet is not news */
			break;
		}
	if (q != NULL) {
		q->ivs[q->iv_next].epoch = r->epoch;
		memcpy(q->ivs[q->iv_next].iv, r->iv, MT_AEAD_IV_LEN);
		memcpy(q->ivs[q->iv_next].digest, digest, sizeof q->ivs[q->iv_next].digest);
		q->iv_next = (q->iv_next + 1) % IV_SEEN;
		if (q->n_ivs < IV_SEEN)
			q->n_ivs++;
	}
	pthread_mutex_unlock(&g->qlock);
	if (reused) {
		char detail[160];

		(void)snprintf(detail, sizeof detail,
		               "IV reuse: two different packets under epoch %u with one IV "
		               "(security alarm: rotate the device's key epoch)",
		               (unsigned)r->epoch);
		fprintf(stderr, "medtrustd: SECURITY ALARM: %s: %s\n", dev, detail);
		/* counted and audited like a refusal: at once, then at most one
		 * record a minute per device carrying the count */
		refused(g, dev, MT_IC_IV_REUSE, detail);
	}
}

/* Handle one packet of device `dev`. */
static void work_one(struct mt_ingest *g, struct mt_opener *op, uint8_t *scratch,
                     const char *dev, struct item *it)
{
	struct lookup_ctx lc = {g, NULL};
	struct mt_open_params p = {
	        .dev = dev, .dev_len = strlen(dev), .topic = it->topic,
	        .lookup = lookup, .lookup_ctx = &lc, .now_ms = it->received_ms,
	};
	struct mt_open_result r;
	struct done *d = NULL;
	enum mt_err e = mt_packet_open(op, &p, it->data, it->len, &r);

	/* Past stage 5 the packet is authentic under the device's key. */
	if (e == MT_OK || e == MT_ERR_PKT_IMPLAUSIBLE || e == MT_ERR_PKT_INNER ||
	    e == MT_ERR_PKT_ALG || e == MT_ERR_PKT_KID || e == MT_ERR_PKT_SIGNATURE ||
	    e == MT_ERR_PKT_MESSAGE || e == MT_ERR_PKT_DEV)
		iv_monitor(g, dev, &r, it->data, it->len);
	if (e == MT_OK || e == MT_ERR_PKT_IMPLAUSIBLE) {
		if (r.kind == MT_PACKET_SEALED) {
			d = done_new(e == MT_OK ? D_READING : D_IMPLAUSIBLE, dev, &r, r.sign1,
			             r.sign1_len, it->received_ms);
		} else {
			size_t n = 0;

			/* A fast packet: keep the message itself (re-encoded
			 * exactly: strict CBOR has one encoding per value). */
			if (mt_message_encode(&r.msg, scratch, MT_PACKET_MAX, &n) != MT_OK)
				n = 0;
			d = done_new(e == MT_OK ? D_ALERT : D_IMPLAUSIBLE, dev, &r, scratch, n,
			             it->received_ms);
			if (d != NULL && e == MT_OK) {
				d->alert_code = r.msg.alrt.code;
				d->alert_prio = r.msg.alrt.prio;
				if (r.msg.alrt.text != NULL)
					(void)snprintf(d->alert_text, sizeof d->alert_text, "%.*s",
					               (int)r.msg.alrt.text_len, r.msg.alrt.text);
			}
		}
		if (d != NULL) {
			if (lc.held)
				memcpy(d->cert_serial, lc.held->cert_serial, sizeof d->cert_serial);
			if (e == MT_ERR_PKT_IMPLAUSIBLE)
				(void)snprintf(d->alert_text, sizeof d->alert_text, "%s", r.detail);
			done_push(g, d);
		} else {
			count(g, MT_IC_OVERLOAD, 1);
		}
	} else if (e == MT_ERR_NOMEM || e == MT_ERR_CRYPTO || e == MT_ERR_REG_DB ||
	           e == MT_ERR_KS_OPERATION || e == MT_ERR_INTERNAL) {
		/* A passing failure of ours, not the packet's: nothing is
		 * resolved, the device sends it again. */
		fprintf(stderr, "medtrustd: ingest: %s: %s\n", dev, mt_err_str(e));
		count(g, MT_IC_OVERLOAD, 1);
	} else {
		refused(g, dev, stage_count(e), r.detail[0] ? r.detail : mt_err_str(e));
	}
	devkey_put(lc.held);
}

static void *worker_main(void *arg)
{
	struct mt_ingest *g = arg;
	struct mt_opener *op = NULL;
	uint8_t *scratch = malloc(MT_PACKET_MAX);

	if (scratch == NULL || mt_opener_new(&op) != MT_OK) {
		fprintf(stderr, "medtrustd: ingest worker: out of memory\n");
		free(scratch);
		return NULL;
	}
	pthread_mutex_lock(&g->qlock);
	for (;;) {
		struct devq *q;
		struct item *it;
		char dev[MT_DEVICE_ID_MAX + 1];
		bool throttled;
		uint64_t t, tell;

		while (g->ready_head == NULL && !atomic_load(&g->stopping))
			pthread_cond_wait(&g->qcond, &g->qlock);
		if (atomic_load(&g->stopping))
			break;
		q = g->ready_head;
		g->ready_head = q->rnext;
		if (g->ready_head == NULL)
			g->ready_tail = NULL;
		q->ready = false;
		it = q->head;
		q->head = it->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->n--;
		g->q_items--;
		g->q_bytes -= it->len;
		if (q->n > 0)
			ready_push(g, q); /* round-robin: back of the line */
		/* Refill the refusal budget; an exhausted budget drops the
		 * packet before any crypto (H04). */
		t = now_ms();
		q->tokens += (double)(t - q->tokens_ms) / 1000.0 * BUDGET_RATE;
		if (q->tokens > BUDGET_BURST)
			q->tokens = BUDGET_BURST;
		q->tokens_ms = t;
		throttled = q->tokens < 1.0;
		tell = 0;
		if (throttled) {
			q->throttled_since_told++;
			if (q->throttle_told_ms == 0 || t - q->throttle_told_ms >= AUDIT_EVERY_MS) {
				tell = q->throttled_since_told;
				q->throttled_since_told = 0;
				q->throttle_told_ms = t;
			}
		}
		memcpy(dev, q->dev, sizeof dev);
		pthread_mutex_unlock(&g->qlock);

		if (tell > 0 && g->o.on_security != NULL)
			g->o.on_security(g->o.alert_ctx, dev, "refusal burst", tell);
		if (throttled)
			count(g, MT_IC_THROTTLED, 1);
		else
			work_one(g, op, scratch, dev, it);
		free(it);
		pthread_mutex_lock(&g->qlock);
	}
	pthread_mutex_unlock(&g->qlock);
	mt_opener_free(op);
	free(scratch);
	return NULL;
}

/* ---- the committer --------------------------------------------------------- */

/* Windows of the devices in one group. */
struct gwin {
	char dev[MT_DEVICE_ID_MAX + 1];
	struct mt_replay w;
	bool dirty;
};

static struct gwin *gwin_find(struct gwin *ws, size_t *n, const char *dev)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(ws[i].dev, dev) == 0)
			return &ws[i];
	return NULL;
}

/* Outcome of one result inside a transaction. */
enum verdict { V_NONE, V_STORED, V_ALERT, V_DUP, V_REFUSED };

static enum mt_err commit_group(struct mt_ingest *g, struct done **ds, size_t n,
                                enum verdict *v, struct gwin *ws)
{
	size_t nw = 0;
	enum mt_err e;
	uint64_t t0 = now_ms(), t1, t2, t3;

	fail_point(g, 1);
	if (g->disk_full_flag[0] != '\0' && access(g->disk_full_flag, F_OK) == 0)
		return MT_ERR_STORE_FULL; /* test fail point: the disk is "full" */
	e = mt_store_begin(g->store);
	t1 = now_ms();
	if (e != MT_OK)
		return e;
	for (size_t i = 0; i < n && e == MT_OK; i++) {
		struct done *d = ds[i];
		struct gwin *w = gwin_find(ws, &nw, d->dev);
		enum mt_replay_verdict rv;

		if (w == NULL) {
			w = &ws[nw++];
			memset(w, 0, sizeof *w);
			(void)snprintf(w->dev, sizeof w->dev, "%s", d->dev);
			e = mt_store_window_load(g->store, d->dev, &w->w);
			if (e != MT_OK)
				break;
		}
		rv = mt_replay_check(&w->w, d->ctr);
		if (rv == MT_REPLAY_DUPLICATE) {
			v[i] = V_DUP;
			continue;
		}
		if (rv != MT_REPLAY_NEW) {
			v[i] = V_REFUSED;
			/* A jump is its own count, so its audit record (an alarm) is
			 * never folded into the ordinary replays'. */
			d->refusal = rv == MT_REPLAY_JUMP ? MT_IC_COUNTER_JUMP : MT_IC_REPLAY;
			(void)snprintf(d->alert_text, sizeof d->alert_text, "%s",
			               rv == MT_REPLAY_JUMP ? "counter jump: more than 2^20 above the "
			                                      "window's top (alarm)"
			                                    : "counter below the window");
			continue;
		}
		if (d->kind == D_READING) {
			struct mt_store_reading r = {
			        .dev = d->dev, .ctr = d->ctr, .epoch = d->epoch, .typ = d->typ,
			        .ts_ms = d->ts_ms, .received_ms = d->received_ms, .flags = d->flags,
			        .cert_serial = d->cert_serial, .sign1 = d->data, .sign1_len = d->len,
			};

			e = mt_store_reading_put(g->store, &r, &d->row_id);
			v[i] = V_STORED;
		} else if (d->kind == D_ALERT) {
			e = mt_store_alert_put(g->store, d->dev, d->ctr, d->ts_ms, d->received_ms,
			                       d->data, d->len, &d->row_id);
			v[i] = V_ALERT;
		} else {
			v[i] = V_REFUSED;
			d->refusal = MT_IC_IMPLAUSIBLE;
		}
		if (e == MT_ERR_PKT_DUPLICATE) { /* the backstop: UNIQUE(dev, ctr) */
			v[i] = V_DUP;
			e = MT_OK;
		} else if (e == MT_ERR_ARG) {
			/* A row the store will not take (a bug of ours, not the
			 * packet's): leave it unresolved and its counter unmarked,
			 * so the device's resend gets another chance; the rest of
			 * the group goes on. */
			fprintf(stderr, "medtrustd: ingest: the store refused %s ctr %llu\n", d->dev,
			        (unsigned long long)d->ctr);
			count(g, MT_IC_STORE_FAILED, 1);
			v[i] = V_NONE;
			e = MT_OK;
			continue;
		}
		if (e != MT_OK)
			break;
		/* Marked only once the row is in: implausible too (§5). */
		mt_replay_mark(&w->w, d->ctr);
		w->dirty = true;
		if (i == n / 2)
			fail_point(g, 2);
	}
	for (size_t i = 0; i < nw && e == MT_OK; i++)
		if (ws[i].dirty)
			e = mt_store_window_save(g->store, ws[i].dev, &ws[i].w);
	if (e != MT_OK) {
		mt_store_rollback(g->store);
		return e;
	}
	t2 = now_ms();
	e = mt_store_commit(g->store);
	t3 = now_ms();
	/* An operator's clue when commits stall (every alarm waits on them):
	 * where the time went, at most once a second. */
	if (t3 - t0 >= SLOW_COMMIT_MS && t3 - g->slow_told_ms >= 1000) {
		g->slow_told_ms = t3;
		fprintf(stderr,
		        "medtrustd: ingest: slow commit of %zu packets: %llu ms (write lock %llu, "
		        "rows %llu, commit %llu)\n",
		        n, (unsigned long long)(t3 - t0), (unsigned long long)(t1 - t0),
		        (unsigned long long)(t2 - t1), (unsigned long long)(t3 - t2));
	}
	return e;
}

static uint32_t lat_bucket(uint64_t t, uint64_t from)
{
	return t <= from ? 0 : t - from > LAT_MAX_MS ? LAT_MAX_MS : (uint32_t)(t - from);
}

/* Append a resolved counter to q's receipt list (qlock held); false when
 * the list is full or memory ran out. */
static bool pend_push(struct devq *q, uint64_t ctr)
{
	if (q->npend >= PEND_MAX)
		return false;
	if (q->npend == q->cpend) {
		size_t c = q->cpend ? q->cpend * 2 : 64;
		uint64_t *p = realloc(q->pend, c * sizeof *p);

		if (p == NULL)
			return false;
		q->pend = p;
		q->cpend = c;
	}
	q->pend[q->npend++] = ctr;
	return true;
}

/* Add resolved counters to the devices' receipt lists (after a commit). */
/* One resolved counter to its device's receipt list (qlock held). */
static void pend_add(struct mt_ingest *g, const char *dev, uint64_t ctr)
{
	struct devq *q = devq_find(g, dev, true);

	/* not added: unreceipted, the device resends, a duplicate then */
	if (q != NULL)
		(void)pend_push(q, ctr);
}

static void resolve(struct mt_ingest *g, struct done **ds, size_t n, const enum verdict *v)
{
	pthread_mutex_lock(&g->qlock);
	for (size_t i = 0; i < n; i++)
		if (v[i] != V_NONE)
			pend_add(g, ds[i]->dev, ds[i]->ctr);
	pthread_mutex_unlock(&g->qlock);
}

/* The counters of one committed group, waiting for the syncer's fsync
 * before they reach the receipt lists (mt_ingest_opts.syncer). */
struct resolution {
	struct mt_ingest *g;
	size_t n;
	struct {
		char dev[MT_DEVICE_ID_MAX + 1];
		uint64_t ctr;
	} it[];
};

static void resolved_durable(void *arg, bool durable)
{
	struct resolution *r = arg;
	struct mt_ingest *g = r->g;

	/* Not durable: no receipt, so the devices send the packets again
	 * (duplicates then, receipted once an fsync has covered them). */
	if (durable) {
		pthread_mutex_lock(&g->qlock);
		for (size_t i = 0; i < r->n; i++)
			pend_add(g, r->it[i].dev, r->it[i].ctr);
		pthread_mutex_unlock(&g->qlock);
	}
	free(r);
}

/* After a commit: the resolved counters go to the receipt lists — at once
 * when every commit is durable, else once the syncer's fsync covers it. */
static void resolve_after_commit(struct mt_ingest *g, struct done **ds, size_t n,
                                 const enum verdict *v)
{
	struct resolution *r;
	size_t k = 0;

	if (g->o.syncer == NULL) {
		resolve(g, ds, n, v);
		return;
	}
	r = malloc(sizeof *r + n * sizeof r->it[0]);
	if (r == NULL) { /* short of memory: wait for the disk here instead */
		if (mt_syncer_wait(g->o.syncer) == MT_OK)
			resolve(g, ds, n, v);
		return;
	}
	r->g = g;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == V_NONE)
			continue;
		(void)snprintf(r->it[k].dev, sizeof r->it[k].dev, "%s", ds[i]->dev);
		r->it[k++].ctr = ds[i]->ctr;
	}
	r->n = k;
	if (mt_syncer_after(g->o.syncer, resolved_durable, r) != MT_OK) {
		free(r);
		if (mt_syncer_wait(g->o.syncer) == MT_OK)
			resolve(g, ds, n, v);
	}
}

static void *committer_main(void *arg)
{
	struct mt_ingest *g = arg;
	struct done **ds = calloc(GROUP_MAX, sizeof *ds);
	enum verdict *v = calloc(GROUP_MAX, sizeof *v);
	struct gwin *ws = calloc(GROUP_MAX, sizeof *ws);

	if (ds == NULL || v == NULL || ws == NULL) {
		fprintf(stderr, "medtrustd: ingest committer: out of memory\n");
		goto out;
	}
	for (;;) {
		size_t n = 0;
		enum mt_err e;
		uint64_t t;

		struct done **head, **tail;

		pthread_mutex_lock(&g->dlock);
		while (g->done_head == NULL && g->fast_head == NULL && !atomic_load(&g->stopping))
			pthread_cond_wait(&g->dcond, &g->dlock);
		/* Group commit: routine packets wait out the window so that one
		 * fsync covers many (fewer, larger commits: less write-back in
		 * the way of the next one); a fast packet is committed at once. */
		while (g->fast_head == NULL && g->done_head != NULL && g->n_done < GROUP_MAX &&
		       !atomic_load(&g->stopping) &&
		       pthread_cond_timedwait(&g->dcond, &g->dlock, &g->done_due) != ETIMEDOUT)
			;
		if (g->done_head == NULL && g->fast_head == NULL) { /* stopping, nothing left */
			pthread_mutex_unlock(&g->dlock);
			break;
		}
		head = g->fast_head != NULL ? &g->fast_head : &g->done_head; /* the fast lane first */
		tail = g->fast_head != NULL ? &g->fast_tail : &g->done_tail;
		while (*head != NULL && n < GROUP_MAX) {
			ds[n] = *head;
			*head = ds[n]->next;
			n++;
		}
		if (*head == NULL)
			*tail = NULL;
		g->n_done -= n;
		pthread_mutex_unlock(&g->dlock);

		memset(v, 0, n * sizeof *v);
		e = commit_group(g, ds, n, v, ws);
		t = now_ms();
		if (e != MT_OK) {
			/* A passing failure: nothing of the group is resolved; the
			 * devices send it again after 30 s without a receipt. */
			count(g, MT_IC_STORE_FAILED, n);
			fprintf(stderr, "medtrustd: ALARM: storing %zu packets failed (%s); no receipts "
			                "sent, devices will resend\n", n, mt_err_str(e));
			if (g->o.audit != NULL)
				g->o.audit(g->o.audit_ctx, "hub", "store.failed", NULL, MT_AUDIT_ERROR,
				           e == MT_ERR_STORE_FULL ? "{\"reason\":\"disk full\"}"
				                                  : "{\"reason\":\"database error\"}");
			{
				struct timespec ts = {0, STORE_RETRY_MS * 1000000L};

				nanosleep(&ts, NULL);
			}
		} else {
			fail_point(g, 3);
			resolve_after_commit(g, ds, n, v);
			for (size_t i = 0; i < n; i++) {
				struct done *d = ds[i];

				switch (v[i]) {
				case V_STORED:
					count(g, MT_IC_STORED, 1);
					atomic_fetch_add(&g->lat[lat_bucket(t, d->ts_ms)], 1);
					atomic_fetch_add(&g->lat_hub[lat_bucket(t, d->received_ms)], 1);
					if (d->flags & MT_STORE_SKEWED) {
						count(g, MT_IC_SKEWED, 1);
						fprintf(stderr, "medtrustd: TECHNICAL ALARM: %s clock ahead "
						                "of the hub by more than 5 min (ctr %llu)\n",
						        d->dev, (unsigned long long)d->ctr);
					}
					if (d->flags & MT_STORE_STALE)
						count(g, MT_IC_STALE, 1);
					if (g->o.on_reading != NULL) {
						struct mt_ingest_reading rd = {
						        .dev = d->dev, .id = d->row_id, .ctr = d->ctr,
						        .ts_ms = d->ts_ms, .received_ms = d->received_ms,
						        .committed_ms = t, .typ = d->typ, .flags = d->flags,
						        .sign1 = d->data, .sign1_len = d->len,
						};
						g->o.on_reading(g->o.alert_ctx, &rd);
					}
					break;
				case V_ALERT:
					count(g, MT_IC_ALERTS, 1);
					if (g->o.on_alert != NULL) {
						struct mt_ingest_alert a = {
						        .dev = d->dev, .ctr = d->ctr, .ts_ms = d->ts_ms,
						        .received_ms = d->received_ms, .committed_ms = t,
						        .code = d->alert_code, .prio = (unsigned)d->alert_prio,
						        .text = d->alert_text, .id = d->row_id,
						};
						g->o.on_alert(g->o.alert_ctx, &a);
					}
					break;
				case V_DUP: count(g, MT_IC_DUPLICATE, 1); break;
				case V_REFUSED:
					refused(g, d->dev, d->refusal, d->alert_text);
					break;
				case V_NONE: break;
				}
			}
		}
		for (size_t i = 0; i < n; i++) {
			mt_wipe(ds[i]->data, ds[i]->len);
			free(ds[i]);
		}
	}
out:
	free(ds);
	free(v);
	free(ws);
	return NULL;
}

/* ---- receipts and the ticker ---------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sort and merge ctrs[0..n) into ranges (at most `cap`); returns how many
 * counters the ranges cover (the rest stay for the next receipt). */
static size_t merge_ranges(uint64_t *ctrs, size_t n, uint64_t (*r)[2], size_t cap,
                           size_t *nr)
{
	size_t used = 0;

	qsort(ctrs, n, sizeof *ctrs, cmp_u64);
	*nr = 0;
	for (size_t i = 0; i < n; i++) {
		if (*nr > 0 && ctrs[i] <= r[*nr - 1][1] + 1) {
			if (ctrs[i] > r[*nr - 1][1])
				r[*nr - 1][1] = ctrs[i];
		} else {
			if (*nr == cap)
				break;
			r[*nr][0] = r[*nr][1] = ctrs[i];
			(*nr)++;
		}
		used = i + 1;
	}
	return used;
}

/* Send one device's receipt; on failure the counters go back. */
static void send_receipt(struct mt_ingest *g, struct mt_aead *aead, const char *dev,
                         uint64_t *ctrs, size_t n, uint64_t (*ranges)[2], uint8_t *buf)
{
	struct devkey *k = NULL;
	size_t nr = 0, used = merge_ranges(ctrs, n, ranges, MT_RECEIPT_MAX_RANGES, &nr), len = 0;
	struct mt_receipt rc = {.dev = dev, .dev_len = strlen(dev), .ranges = ranges,
	                        .n_ranges = nr, .ts = now_ms()};
	char topic[MT_MQTT_TOPIC_MAX];
	bool sent = false;

	if (devkey_get(g, dev, &k) == MT_OK &&
	    mt_receipt_seal(aead, k->rk_cur, k->epoch, NULL, &rc, buf, MT_PACKET_MAX, &len) ==
	            MT_OK &&
	    (size_t)snprintf(topic, sizeof topic, "mt/v1/%s/down/rcpt", dev) < sizeof topic &&
	    mosquitto_publish_v5(g->mq, NULL, topic, (int)len, buf, 1, false, NULL) ==
	            MOSQ_ERR_SUCCESS) {
		sent = true;
		count(g, MT_IC_RECEIPTS, 1);
		fail_point(g, 4);
	}
	devkey_put(k);
	/* What was not covered (or not sent) waits for the next turn. */
	pthread_mutex_lock(&g->qlock);
	{
		struct devq *q = devq_find(g, dev, false);
		size_t from = sent ? used : 0;

		for (size_t i = from; q != NULL && i < n; i++)
			if (!pend_push(q, ctrs[i]))
				break;
	}
	pthread_mutex_unlock(&g->qlock);
}

/* One due device's pending counters (taken out under qlock). */
struct due {
	char dev[MT_DEVICE_ID_MAX + 1];
	uint64_t *ctrs;
	size_t n;
};

static void tick_receipts(struct mt_ingest *g, struct mt_aead *aead, uint64_t (*ranges)[2],
                          uint8_t *buf)
{
	uint64_t t = now_ms();

	if (!atomic_load(&g->connected))
		return;
	for (uint32_t b = 0; b < HASH_BUCKETS; b++) {
		struct due due[16];
		size_t nd = 0;

		pthread_mutex_lock(&g->qlock);
		for (struct devq *q = g->qhash[b]; q && nd < 16; q = q->hnext) {
			if (q->npend == 0 || t - q->last_rcpt_ms < RCPT_INTERVAL_MS)
				continue;
			(void)snprintf(due[nd].dev, sizeof due[nd].dev, "%s", q->dev);
			due[nd].ctrs = q->pend;
			due[nd].n = q->npend;
			q->pend = NULL;
			q->npend = q->cpend = 0;
			q->last_rcpt_ms = t;
			nd++;
		}
		pthread_mutex_unlock(&g->qlock);
		for (size_t i = 0; i < nd; i++) {
			send_receipt(g, aead, due[i].dev, due[i].ctrs, due[i].n, ranges, buf);
			free(due[i].ctrs);
		}
	}
}

/* Audit summaries of refusals suppressed for a whole window. */
static void tick_audit(struct mt_ingest *g, bool all)
{
	uint64_t t = now_ms();

	for (uint32_t b = 0; b < HASH_BUCKETS; b++) {
		struct {
			char dev[MT_DEVICE_ID_MAX + 1];
			enum mt_ingest_count c;
			uint32_t n;
			char detail[96];
		} out[8];
		size_t no = 0;

		pthread_mutex_lock(&g->qlock);
		for (struct devq *q = g->qhash[b]; q && no < 8; q = q->hnext)
			for (int c = 0; c < MT_IC_N && no < 8; c++)
				if (q->suppressed[c] > 0 && (all || t - q->audit_ms[c] >= AUDIT_EVERY_MS)) {
					(void)snprintf(out[no].dev, sizeof out[no].dev, "%s", q->dev);
					out[no].c = (enum mt_ingest_count)c;
					out[no].n = q->suppressed[c];
					memcpy(out[no].detail, q->last_detail[c], sizeof out[no].detail);
					q->suppressed[c] = 0;
					q->audit_ms[c] = t;
					no++;
				}
		pthread_mutex_unlock(&g->qlock);
		for (size_t i = 0; i < no; i++)
			audit_refusal(g, out[i].dev, out[i].c, out[i].n, out[i].detail);
	}
}

static void tick_registry(struct mt_ingest *g)
{
	int64_t v = 0;

	bool changed;

	pthread_mutex_lock(&g->reglock);
	changed = mt_registry_data_version(g->reg, &v) == MT_OK && v != g->reg_version;
	if (changed)
		g->reg_version = v;
	pthread_mutex_unlock(&g->reglock);
	if (changed) {
		pthread_mutex_lock(&g->klock);
		g->kgen++; /* every cached device is rebuilt on its next packet */
		pthread_mutex_unlock(&g->klock);
	}
}

/* WAL checkpoints off the committer's path (mt_store_autocheckpoint): a
 * connection of its own copies the WAL back every 200 ms (small copies,
 * short write-back bursts), so no commit (and no fast packet waiting on
 * one) pays for the copy. */
static void *checkpointer_main(void *arg)
{
	struct mt_ingest *g = arg;
	unsigned n = 0;

	while (!atomic_load(&g->stopping)) {
		struct timespec ts = {0, 100 * 1000000L};

		nanosleep(&ts, NULL);
		if (++n % 2 == 0 && mt_store_checkpoint(g->ckpt) != MT_OK)
			fprintf(stderr, "medtrustd: ingest: WAL checkpoint failed\n");
	}
	return NULL;
}

static void *ticker_main(void *arg)
{
	struct mt_ingest *g = arg;
	struct mt_aead *aead = NULL;
	uint64_t(*ranges)[2] = calloc(MT_RECEIPT_MAX_RANGES, sizeof *ranges);
	uint8_t *buf = malloc(MT_PACKET_MAX);
	uint64_t last_reg = 0, last_audit = 0;

	if (ranges == NULL || buf == NULL || mt_aead_new(&aead) != MT_OK) {
		fprintf(stderr, "medtrustd: ingest ticker: out of memory\n");
		goto out;
	}
	while (!atomic_load(&g->stopping)) {
		struct timespec ts = {0, TICK_MS * 1000000L};
		uint64_t t;

		nanosleep(&ts, NULL);
		t = now_ms();
		if (t - last_reg >= REG_POLL_MS) {
			tick_registry(g);
			last_reg = t;
		}
		tick_receipts(g, aead, ranges, buf);
		if (t - last_audit >= 10000) {
			tick_audit(g, false);
			last_audit = t;
		}
	}
	tick_audit(g, true);
out:
	mt_aead_free(aead);
	free(ranges);
	free(buf);
	return NULL;
}

/* ---- the broker link -------------------------------------------------------- */

static void on_connect(struct mosquitto *m, void *arg, int rc, int flags,
                       const mosquitto_property *props)
{
	struct mt_ingest *g = arg;
	int mid;

	(void)flags;
	(void)props;
	if (rc != 0) {
		fprintf(stderr, "medtrustd: broker refused the hub's connection: %s\n",
		        mosquitto_reason_string(rc));
		return;
	}
	rc = mosquitto_subscribe_v5(m, &mid, "$share/hub/mt/v1/+/up/#", 1, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "medtrustd: cannot subscribe: %s\n", mosquitto_strerror(rc));
		return;
	}
	atomic_store(&g->connected, true);
	fprintf(stderr, "medtrustd: connected to the broker mqtts://%s:%u as %s\n", g->url.host,
	        (unsigned)g->url.port, g->client_id);
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc, const mosquitto_property *p)
{
	struct mt_ingest *g = arg;

	(void)m;
	(void)p;
	if (atomic_exchange(&g->connected, false) && !atomic_load(&g->stopping))
		fprintf(stderr, "medtrustd: lost the broker (%s); reconnecting\n",
		        mosquitto_reason_string(rc));
}

/* Run the client's I/O until the link drops or the hub stops: poll()
 * rather than mosquitto_loop()'s select(), which cannot watch a socket
 * numbered 1024 or above (a busy hub has that many descriptors).  The
 * 20 ms timeout bounds how long a receipt published by the ticker waits
 * for this thread to write it. */
static int net_run(struct mt_ingest *g)
{
	int rc = MOSQ_ERR_SUCCESS;

	while (rc == MOSQ_ERR_SUCCESS && !atomic_load(&g->stopping)) {
		struct pollfd p = {.fd = mosquitto_socket(g->mq), .events = POLLIN};

		if (p.fd < 0)
			return MOSQ_ERR_NO_CONN;
		if (mosquitto_want_write(g->mq))
			p.events |= POLLOUT;
		if (poll(&p, 1, 20) < 0 && errno != EINTR)
			return MOSQ_ERR_ERRNO;
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			rc = mosquitto_loop_read(g->mq, 1);
		if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(g->mq))
			rc = mosquitto_loop_write(g->mq, 1);
		if (rc == MOSQ_ERR_SUCCESS)
			rc = mosquitto_loop_misc(g->mq);
	}
	return rc;
}

/* The network thread: connect, run the client, reconnect with jittered
 * exponential back-off (1 s doubling to 30 s) when the link drops. */
static void *net_main(void *arg)
{
	struct mt_ingest *g = arg;
	unsigned backoff = 1, failures = 0;

	while (!atomic_load(&g->stopping)) {
		int rc = mt_mqtt_connect(g->mq, &g->url, 30, MT_MQTT_SESSION_EXPIRY);

		if (rc == MOSQ_ERR_SUCCESS)
			rc = net_run(g);
		if (atomic_exchange(&g->connected, false)) {
			if (!atomic_load(&g->stopping))
				fprintf(stderr, "medtrustd: lost the broker (%s); reconnecting\n",
				        mosquitto_strerror(rc));
			backoff = 1;
			failures = 0;
		} else if (!atomic_load(&g->stopping) && (failures++ == 0 || backoff == 30)) {
			/* Never connected: say why, once and then at the slowest pace. */
			fprintf(stderr, "medtrustd: cannot reach the broker mqtts://%s:%u (%s)\n",
			        g->url.host, (unsigned)g->url.port, mosquitto_strerror(rc));
		}
		for (unsigned i = 0; i < backoff * 10 && !atomic_load(&g->stopping); i++) {
			struct timespec ts = {0, 100000000L};

			nanosleep(&ts, NULL);
		}
		backoff = backoff >= 16 ? 30 : backoff * 2;
	}
	return NULL;
}

/* ---- start and stop ----------------------------------------------------------- */

static void parse_fail_point(struct mt_ingest *g)
{
	static const char *const names[] = {"before_begin", "mid_txn", "after_commit",
	                                    "after_receipt"};
	const char *fp = getenv("MEDTRUST_FAILPOINT"), *colon;

	if (fp == NULL || (colon = strchr(fp, ':')) == NULL)
		return;
	if (strncmp(fp, "disk_full:", 10) == 0) {
		(void)snprintf(g->disk_full_flag, sizeof g->disk_full_flag, "%s", fp + 10);
		fprintf(stderr, "medtrustd: TEST FAIL POINT ARMED: commits fail as disk full while "
		                "%s exists\n", g->disk_full_flag);
		return;
	}
	for (int i = 0; i < 4; i++)
		if (strlen(names[i]) == (size_t)(colon - fp) &&
		    strncmp(fp, names[i], (size_t)(colon - fp)) == 0) {
			char *end = NULL;
			long n = strtol(colon + 1, &end, 10);

			if (end != NULL && *end == '\0' && n > 0) {
				g->fp_point = i + 1;
				g->fp_left = n;
				fprintf(stderr, "medtrustd: TEST FAIL POINT ARMED: %s after %ld\n",
				        names[i], n);
			}
		}
}

/* ---- downlink commands (protocol §6; docs/commands.md) ------------------------- */

/* The command key (cmd_key), checked against the certificate devices pin
 * (cmd_cert): a key that is not the certificate's would sign commands
 * every device refuses.  Not fatal: without it the hub ingests as before
 * and mt_ingest_rotate_epoch says why it cannot. */
static void open_command_key(struct mt_ingest *g)
{
	const char *uri = mt_deploy_get(g->o.d, "cmd_key"), *pem = mt_deploy_get(g->o.d, "cmd_cert");
	struct mt_cert *cert = NULL;
	uint8_t kid[MT_KID_LEN];
	enum mt_err e;

	if (uri == NULL || pem == NULL) {
		mt_say(g->cmd_why, sizeof g->cmd_why,
		       "the deployment names no command key and certificate (cmd_key, cmd_cert)");
		return;
	}
	e = mt_key_open(uri, &g->cmd);
	if (e == MT_OK && mt_key_type(g->cmd) != MT_KEY_P256)
		e = MT_ERR_KS_KEY_TYPE;
	if (e == MT_OK)
		e = mt_cert_from_pem_file(pem, &cert);
	if (e == MT_OK)
		e = mt_cert_kid(cert, kid);
	mt_cert_free(cert);
	if (e == MT_OK && memcmp(kid, mt_pubkey_kid(mt_key_public(g->cmd)), MT_KID_LEN) != 0)
		mt_say(g->cmd_why, sizeof g->cmd_why,
		       "cmd_cert is not the certificate of cmd_key: devices would refuse its commands");
	else if (e != MT_OK)
		mt_say(g->cmd_why, sizeof g->cmd_why,
		       "the command key (cmd_key) or its certificate (cmd_cert) is unusable: %s",
		       mt_err_str(e));
	if (g->cmd_why[0] != '\0') {
		mt_key_free(g->cmd);
		g->cmd = NULL;
		fprintf(stderr, "medtrustd: ingest: no downlink commands: %s\n", g->cmd_why);
	}
}

enum mt_err mt_ingest_rotate_epoch(struct mt_ingest *g, const char *dev, uint32_t *old_epoch,
                                   uint32_t *new_epoch, uint64_t *ctr, char *why,
                                   size_t why_cap)
{
	struct mt_command c;
	uint8_t buf[512];
	char topic[MT_MQTT_TOPIC_MAX];
	size_t len = 0, n;
	enum mt_err e;
	int rc;

	if (g == NULL || dev == NULL || old_epoch == NULL || new_epoch == NULL || ctr == NULL)
		return MT_ERR_ARG;
	n = strnlen(dev, MT_DEVICE_ID_MAX + 1);
	if (n == 0 || n > MT_DEVICE_ID_MAX || !mt_device_id_valid(dev, n)) {
		mt_say(why, why_cap, "not a device id");
		return MT_ERR_ARG;
	}
	if (g->cmd == NULL) {
		mt_say(why, why_cap, "%s", g->cmd_why);
		return MT_ERR_UNSUPPORTED;
	}
	if (!atomic_load(&g->connected)) {
		mt_say(why, why_cap, "the hub is not connected to the broker");
		return MT_ERR_IO;
	}
	pthread_mutex_lock(&g->cmdlock);
	/* §4: the hub's epoch moves to N+1 when it sends the command — first,
	 * so that the device's first packet of N+1 is never refused. */
	pthread_mutex_lock(&g->reglock);
	e = mt_registry_rotate_epoch(g->reg, dev, mt_deploy_now(), old_epoch, new_epoch, ctr);
	pthread_mutex_unlock(&g->reglock);
	if (e != MT_OK) {
		mt_say(why, why_cap, "%s",
		       e == MT_ERR_REG_STATE ? "the device is not active and onboarded, or its "
		                               "epoch is at its end (re-onboard it)"
		                             : mt_err_str(e));
		pthread_mutex_unlock(&g->cmdlock);
		return e;
	}
	pthread_mutex_lock(&g->klock);
	g->kgen++; /* its cached keys are of N and N−1: rebuilt on its next packet */
	pthread_mutex_unlock(&g->klock);

	memset(&c, 0, sizeof c);
	memcpy(c.dev, dev, n);
	c.dev_len = n;
	c.ctr = *ctr;
	c.ts = now_ms();
	c.cmd = MT_CMD_ROTATE_EPOCH;
	c.new_epoch = *new_epoch;
	e = mt_command_sign(g->cmd, &c, buf, sizeof buf, &len);
	if (e != MT_OK) {
		mt_say(why, why_cap, "signing the command failed: %s", mt_err_str(e));
	} else if ((size_t)snprintf(topic, sizeof topic, "mt/v1/%s/down/cmd", dev) >= sizeof topic) {
		e = MT_ERR_ARG;
	} else {
		rc = mosquitto_publish_v5(g->mq, NULL, topic, (int)len, buf, 1, false, NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			mt_say(why, why_cap, "publishing the command failed: %s",
			       mosquitto_strerror(rc));
			e = MT_ERR_IO;
		}
	}
	pthread_mutex_unlock(&g->cmdlock);
	return e;
}

enum mt_err mt_ingest_rotate_hook(void *g, const char *dev, uint32_t *old_epoch,
                                  uint32_t *new_epoch, uint64_t *ctr, char *why, size_t why_cap)
{
	return mt_ingest_rotate_epoch(g, dev, old_epoch, new_epoch, ctr, why, why_cap);
}

enum mt_err mt_ingest_broker_url(const struct mt_deploy *d, struct mt_mqtt_url *u)
{
	const char *url = mt_deploy_get(d, "broker_url");
	uint64_t port = 8883;

	if (url != NULL)
		return mt_mqtt_parse_url(url, u);
	if (mt_deploy_uint(d, "broker_port", 8883, 65535, &port) != MT_OK)
		return MT_ERR_ARG;
	(void)snprintf(u->host, sizeof u->host, "localhost");
	u->port = (uint16_t)port;
	return MT_OK;
}

enum mt_err mt_ingest_start(const struct mt_ingest_opts *o, struct mt_ingest **out, char *why,
                            size_t why_cap)
{
	struct mt_ingest *g;
	const char *kx_uri = mt_deploy_get(o->d, "kx_key"), *db = mt_deploy_get(o->d, "db_path");
	enum mt_err e;

	g = calloc(1, sizeof *g);
	if (g == NULL)
		return MT_ERR_NOMEM;
	g->o = *o;
	g->lat = calloc(LAT_MAX_MS + 1, sizeof *g->lat);
	g->lat_hub = calloc(LAT_MAX_MS + 1, sizeof *g->lat_hub);
	if (g->lat == NULL || g->lat_hub == NULL) {
		free((void *)g->lat);
		free((void *)g->lat_hub);
		free(g);
		return MT_ERR_NOMEM;
	}
	pthread_mutex_init(&g->qlock, NULL);
	pthread_cond_init(&g->qcond, NULL);
	pthread_mutex_init(&g->klock, NULL);
	pthread_mutex_init(&g->reglock, NULL);
	pthread_mutex_init(&g->cmdlock, NULL);
	pthread_mutex_init(&g->dlock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&g->dcond, &ca);
		pthread_condattr_destroy(&ca);
	}
	parse_fail_point(g);
	if (o->client_id != NULL) {
		(void)snprintf(g->client_id, sizeof g->client_id, "%s", o->client_id);
	} else {
		char host[64] = "";
		size_t j = 0;

		if (gethostname(host, sizeof host - 1) != 0)
			host[0] = '\0';
		(void)snprintf(g->client_id, sizeof g->client_id, "hub/");
		j = strlen(g->client_id);
		for (size_t i = 0; host[i] && j < 40; i++) /* the device-id grammar */
			if ((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z') ||
			    (host[i] >= '0' && host[i] <= '9') || host[i] == '-' || host[i] == '.')
				g->client_id[j++] = host[i];
		if (j == 4)
			g->client_id[j++] = '1';
		g->client_id[j] = '\0';
	}

	e = mt_ingest_broker_url(o->d, &g->url);
	if (e != MT_OK) {
		mt_say(why, why_cap, "broker_url is not mqtts://host:port");
		goto fail;
	}
	e = kx_uri ? mt_key_open(kx_uri, &g->kx) : MT_ERR_ARG;
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot open the hub's kx key (kx_key): %s", mt_err_str(e));
		goto fail;
	}
	open_command_key(g);
	e = db ? mt_registry_open(db, &g->reg) : MT_ERR_ARG;
	if (e == MT_OK)
		e = mt_registry_data_version(g->reg, &g->reg_version);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot open the registry: %s", mt_err_str(e));
		goto fail;
	}
	e = mt_deploy_open_store(o->d, &g->store);
	if (e == MT_OK)
		e = mt_deploy_open_store(o->d, &g->ckpt);
	if (e == MT_OK)
		e = mt_store_autocheckpoint(g->store, false);
	if (e == MT_OK && o->syncer != NULL)
		e = mt_store_defer_sync(g->store);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot open the readings store (data_path): %s", mt_err_str(e));
		goto fail;
	}

	g->n_workers = o->workers;
	if (g->n_workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		g->n_workers = n > 0 && n < 64 ? (unsigned)n : 2;
	}
	g->workers = calloc(g->n_workers, sizeof *g->workers);
	if (g->workers == NULL) {
		e = MT_ERR_NOMEM;
		goto fail;
	}
	for (; g->n_started < g->n_workers; g->n_started++)
		if (pthread_create(&g->workers[g->n_started], NULL, worker_main, g) != 0)
			break;
	g->committer_started = pthread_create(&g->committer, NULL, committer_main, g) == 0;
	g->ticker_started = pthread_create(&g->ticker, NULL, ticker_main, g) == 0;
	g->ckpt_started = pthread_create(&g->ckpt_thread, NULL, checkpointer_main, g) == 0;
	if (g->n_started < g->n_workers || !g->committer_started || !g->ticker_started) {
		mt_say(why, why_cap, "cannot start the ingest threads");
		e = MT_ERR_NOMEM;
		goto fail;
	}

	mt_mqtt_lib_init();
	e = mt_mqtt_client(g->client_id, "hub", false, o->ssl_ctx, g, &g->mq);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot make the MQTT client: %s", mt_err_str(e));
		goto fail;
	}
	/* Let the broker have as many messages in flight to the hub as it
	 * likes: with libmosquitto's default of 20 and several publishers,
	 * Mosquitto 2.0 dropped QoS 1 messages it had acknowledged
	 * (FIELD-NOTES); bench/ingest saw the same. */
	if (mosquitto_int_option(g->mq, MOSQ_OPT_RECEIVE_MAXIMUM, 65535) != MOSQ_ERR_SUCCESS) {
		mt_say(why, why_cap, "cannot set the MQTT receive maximum");
		e = MT_ERR_ARG;
		goto fail;
	}
	mosquitto_connect_v5_callback_set(g->mq, on_connect);
	mosquitto_disconnect_v5_callback_set(g->mq, on_disconnect);
	mosquitto_message_v5_callback_set(g->mq, on_message);
	/* Receipts are published from the ticker while net_main runs the
	 * client's loop: tell libmosquitto it is shared. */
	mosquitto_threaded_set(g->mq, true);
	/* The hub keeps a persistent session too (clean start false, a day's
	 * expiry): what arrives while it restarts waits at the broker — and
	 * receipts cover it anyway. */
	g->net_started = pthread_create(&g->net, NULL, net_main, g) == 0;
	if (!g->net_started) {
		mt_say(why, why_cap, "cannot start the MQTT thread");
		e = MT_ERR_NOMEM;
		goto fail;
	}
	*out = g;
	return MT_OK;
fail:
	mt_ingest_stop(g);
	return e;
}

void mt_ingest_stop(struct mt_ingest *g)
{
	if (g == NULL)
		return;
	atomic_store(&g->stopping, true);
	if (g->mq != NULL)
		mosquitto_disconnect_v5(g->mq, 0, NULL);
	if (g->net_started)
		pthread_join(g->net, NULL);
	if (g->mq != NULL)
		mosquitto_destroy(g->mq);
	pthread_mutex_lock(&g->qlock);
	pthread_cond_broadcast(&g->qcond);
	pthread_mutex_unlock(&g->qlock);
	for (unsigned i = 0; i < g->n_started; i++)
		pthread_join(g->workers[i], NULL);
	pthread_mutex_lock(&g->dlock);
	pthread_cond_broadcast(&g->dcond);
	pthread_mutex_unlock(&g->dlock);
	if (g->committer_started)
		pthread_join(g->committer, NULL);
	/* The syncer's jobs of ours name g: let them run before g goes. */
	if (g->o.syncer != NULL)
		if (mt_syncer_wait(g->o.syncer) != MT_OK) { /* logged by the syncer */
		}
	if (g->ticker_started)
		pthread_join(g->ticker, NULL);
	if (g->ckpt_started)
		pthread_join(g->ckpt_thread, NULL);
	free(g->workers);
	for (uint32_t b = 0; b < HASH_BUCKETS; b++) {
		while (g->qhash[b]) {
			struct devq *q = g->qhash[b];

			g->qhash[b] = q->hnext;
			while (q->head) {
				struct item *it = q->head;

				q->head = it->next;
				free(it);
			}
			free(q->pend);
			free(q);
		}
		while (g->khash[b]) {
			struct devkey *k = g->khash[b];

			g->khash[b] = k->hnext;
			devkey_put(k);
		}
	}
	mt_store_close(g->store);
	mt_store_close(g->ckpt);
	mt_registry_close(g->reg);
	mt_key_free(g->kx);
	mt_key_free(g->cmd);
	pthread_mutex_destroy(&g->cmdlock);
	pthread_mutex_destroy(&g->qlock);
	pthread_cond_destroy(&g->qcond);
	pthread_mutex_destroy(&g->klock);
	pthread_mutex_destroy(&g->reglock);
	pthread_mutex_destroy(&g->dlock);
	pthread_cond_destroy(&g->dcond);
	free((void *)g->lat);
	free((void *)g->lat_hub);
	free(g);
}

void mt_ingest_latency_reset(struct mt_ingest *g)
{
	for (uint32_t i = 0; i <= LAT_MAX_MS; i++) {
		atomic_store(&g->lat[i], 0);
		atomic_store(&g->lat_hub[i], 0);
	}
}

uint64_t mt_ingest_latency_ms(struct mt_ingest *g, double q, bool hub_only)
{
	_Atomic uint32_t *lat = hub_only ? g->lat_hub : g->lat;
	uint64_t total = 0, want, run = 0;

	for (uint32_t i = 0; i <= LAT_MAX_MS; i++)
		total += atomic_load(&lat[i]);
	if (total == 0)
		return 0;
	want = (uint64_t)(q * (double)total + 0.999999);
	if (want == 0)
		want = 1;
	for (uint32_t i = 0; i <= LAT_MAX_MS; i++) {
		run += atomic_load(&lat[i]);
		if (run >= want)
			return i;
	}
	return LAT_MAX_MS;
}

void mt_ingest_counts(struct mt_ingest *g, uint64_t out[MT_IC_N], bool *connected)
{
	for (int i = 0; i < MT_IC_N; i++)
		out[i] = atomic_load(&g->counts[i]);
	if (connected)
		*connected = atomic_load(&g->connected);
}
