/*
 * devrt.c — a device's telemetry runtime (devrt.h says what it does;
 * protocol §3, §4, §4a).
 *
 * The order of every send is: take a counter (durably reserved first,
 * queue.h), seal in the key store, write the packet to the on-disk queue
 * (fsync'ed), and only then publish.  So a packet the broker has seen is
 * always in the queue, a crash at any point loses at most the readings of
 * the batch not yet sealed, and a counter is never used twice.  Packets
 * leave the queue only through an authenticated receipt (mt_receipt_open
 * with the receipt key), never through an MQTT acknowledgement.
 *
 * One TLS context per device for its life, a renewed certificate loaded
 * into it before the next connection (mt_mqtt_tls_reload).
 *
 * Keys: ldev signs (in the token, or the encrypted file store of a
 * --soft device) and authenticates TLS through mt_key_evp; kx meets the
 * hub's kx key at open, and again at each rotation, to derive the epoch's
 * data key K and receipt key; the ECDH secret is wiped at once, K and the
 * receipt keys at close.
 *
 * Commands (protocol §6; docs/commands.md): what arrives on down/cmd is
 * opened with mt_command_open against the key of the command certificate
 * pinned in bundle.json at onboarding, the last accepted counter and the
 * device's clock.  Anything that does not verify is logged and dropped —
 * no answer, no change.  A verified rotate-epoch derives the new epoch's
 * keys, writes the new epoch and the counter into bundle.json (replaced
 * atomically) and only then switches: the next packet is sealed under the
 * new epoch, receipts of the new and the previous epoch open, and packets
 * already queued go out again as they were sealed (the hub accepts the
 * previous epoch until the next rotation).  Every verified command is
 * answered on up/ack with a sealed typ 4 message naming its counter and
 * the result (queued and resent like any packet until receipted).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "devrt.h"
#include "medtrust/mt_command.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_est.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_packet.h"
#include "medtrust/mt_pki.h"
#include "medtrust/mt_util.h"
#include "mt_mqtt.h"
#include "queue.h"

#define BATCH_BYTES_MAX (48u << 10) /* waveform bytes per batch before an early seal */
#define PKT_BUF (MT_PACKET_MAX + 64)
#define RESEND_PER_SERVICE 256u     /* packets re-sent per call, oldest first */
#define CTR_BLOCK 1000u
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 60000u

struct mt_devrt {
	struct mt_devrt_opts o;
	char id[MT_DEVICE_ID_MAX + 1];
	char dir[PATH_MAX];
	char op_pem[PATH_MAX], ca_pem[PATH_MAX];
	struct mt_mqtt_url url;
	struct mt_key *ldev;
	struct mt_key *kx;          /* kept for the next rotation's ECDH */
	struct mt_pubkey *hub_kx;
	struct mt_pubkey *cmd_key;  /* pinned command certificate's key; NULL: none */
	bool has_cmd_last;          /* a command was accepted (bundle.json command_counter) */
	uint64_t cmd_last;
	uint32_t epoch;
	bool has_prev;
	uint8_t k[MT_KEY_LEN], rk[MT_KEY_LEN], rk_prev[MT_KEY_LEN];
	struct mt_aead *aead;
	struct mt_dq *q;
	struct mt_ctr *ctr;
	struct mosquitto *mq;
	SSL_CTX *ssl;
	bool connecting, connected;
	uint64_t next_connect_ms, backoff_ms;
	uint64_t started_ms, last_rx_rcpt_ms, last_resend_ms, next_status_ms;
	bool resend_all;       /* after a (re)connect */
	uint64_t resend_from;  /* next counter to resend in the current pass */
	bool resending;
	/* the batch */
	struct mt_obs obs[MT_OBS_MAX];
	uint64_t obs_at[MT_OBS_MAX];
	uint8_t *wave;         /* copied waveform samples */
	size_t wave_len;
	size_t n_obs;
	uint64_t batch_start_ms;
	unsigned battery;
	uint8_t *pkt;          /* seal buffer */
	uint8_t *scratch;      /* receipt plaintext */
	uint64_t (*ranges)[2];
	struct mt_devrt_stats st;
	uint64_t now_ms; /* of the current mt_devrt_service call */
	int64_t op_mtime; /* of the op.pem loaded into `ssl` */
};

const char *mt_devrt_id(const struct mt_devrt *rt)
{
	return rt->id;
}

static uint64_t jitter(uint64_t ms)
{
	uint16_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		r = 32768;
	return ms / 2 + (ms * r) / 131072u; /* 50–100 % of ms */
}

/* ---- opening ----------------------------------------------------------------- */

/* The command certificate pinned at onboarding (`command_cert`) and the
 * last accepted command counter (`command_counter`, written here after a
 * command).  Without a usable certificate every command is refused. */
static void load_command_state(struct mt_devrt *rt, json_t *b, const char *path)
{
	json_t *pem = json_object_get(b, "command_cert"), *ctr = json_object_get(b, "command_counter");
	struct mt_cert *cert = NULL;
	enum mt_err e = json_is_string(pem) ? mt_cert_from_pem(json_string_value(pem),
	                                                       json_string_length(pem), &cert)
	                                    : MT_ERR_NOT_FOUND;

	if (e == MT_OK)
		e = mt_cert_pubkey(cert, &rt->cmd_key);
	if (e == MT_OK && mt_pubkey_type(rt->cmd_key) != MT_KEY_P256)
		e = MT_ERR_KEY_TYPE;
	if (e != MT_OK) {
		mt_pubkey_free(rt->cmd_key);
		rt->cmd_key = NULL;
		fprintf(stderr, "medtrust-device %s: %s: no usable command_cert (%s): commands "
		        "will be refused\n", rt->id, path, mt_err_str(e));
	}
	mt_cert_free(cert);
	if (json_is_integer(ctr) && json_integer_value(ctr) >= 0) {
		rt->has_cmd_last = true;
		rt->cmd_last = (uint64_t)json_integer_value(ctr);
	}
}

static enum mt_err load_bundle(struct mt_devrt *rt, const struct mt_agent_device *d,
                               struct mt_pubkey **hub_kx, char *why, size_t cap)
{
	char path[PATH_MAX + 16];
	json_t *b = NULL;
	json_error_t jerr;
	const char *id, *broker, *ca, *kx;
	json_int_t epoch;
	uint8_t spki[MT_SPKI_MAX];
	size_t spki_len = 0;
	enum mt_err e;

	if ((size_t)snprintf(path, sizeof path, "%s/bundle.json", d->dir) >= sizeof path)
		return MT_ERR_ARG;
	b = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (b == NULL) {
		mt_say(why, cap, "%s: not onboarded yet (run medtrust-device run --once first)", path);
		return MT_ERR_NOT_FOUND;
	}
	if (json_unpack(b, "{s:s, s:s, s:s, s:s, s:I}", "device_id", &id, "broker", &broker,
	                "broker_ca", &ca, "hub_kx", &kx, "epoch", &epoch) != 0 ||
	    strcmp(id, d->serial) != 0 || epoch < 0 || epoch > (json_int_t)UINT32_MAX) {
		mt_say(why, cap, "%s: malformed onboarding bundle", path);
		json_decref(b);
		return MT_ERR_ARG;
	}
	rt->epoch = (uint32_t)epoch;
	load_command_state(rt, b, path);
	e = mt_mqtt_parse_url(rt->o.broker ? rt->o.broker : broker, &rt->url);
	if (e != MT_OK) {
		mt_say(why, cap, "broker URL '%s' is not mqtts://host:port",
		       rt->o.broker ? rt->o.broker : broker);
		goto out;
	}
	if ((size_t)snprintf(rt->ca_pem, sizeof rt->ca_pem, "%s/broker-ca.pem", d->dir) >=
	    sizeof rt->ca_pem) {
		e = MT_ERR_ARG;
		goto out;
	}
	e = mt_file_replace(rt->ca_pem, ca, strlen(ca), 0644);
	if (e != MT_OK) {
		mt_say(why, cap, "cannot write %s", rt->ca_pem);
		goto out;
	}
	e = mt_est_b64_decode((const uint8_t *)kx, strlen(kx), spki, sizeof spki, &spki_len);
	if (e == MT_OK)
		e = mt_pubkey_from_spki(spki, spki_len, hub_kx);
	if (e != MT_OK)
		mt_say(why, cap, "%s: hub_kx is not a base64 P-256 key", path);
out:
	json_decref(b);
	return e;
}

enum mt_err mt_devrt_open(const struct mt_agent_device *d, const struct mt_devrt_opts *o,
                          struct mt_devrt **out, char *why, size_t why_cap)
{
	struct mt_devrt *rt = calloc(1, sizeof *rt);
	struct mt_pubkey *hub_kx = NULL;
	struct mt_key *kx = NULL;
	char path[PATH_MAX + 16];
	uint8_t x[32];
	enum mt_err e;

	if (rt == NULL)
		return MT_ERR_NOMEM;
	rt->o = *o;
	if (rt->o.batch_ms == 0)
		rt->o.batch_ms = 5000;
	if (rt->o.status_ms == 0)
		rt->o.status_ms = 60000;
	if (rt->o.resend_ms == 0)
		rt->o.resend_ms = 30000;
	if (rt->o.queue_max == 0)
		rt->o.queue_max = 100000;
	if (rt->o.fw == NULL)
		rt->o.fw = "medtrust-device";
	rt->battery = 100;
	rt->backoff_ms = BACKOFF_MIN_MS;
	(void)snprintf(rt->id, sizeof rt->id, "%s", d->serial);
	(void)snprintf(rt->dir, sizeof rt->dir, "%s", d->dir);
	rt->pkt = malloc(PKT_BUF);
	rt->scratch = malloc(PKT_BUF);
	rt->ranges = calloc(MT_RECEIPT_MAX_RANGES, sizeof *rt->ranges);
	rt->wave = malloc(BATCH_BYTES_MAX + MT_WAVE_MAX_SAMPLES * 10);
	if (rt->pkt == NULL || rt->scratch == NULL || rt->ranges == NULL || rt->wave == NULL) {
		e = MT_ERR_NOMEM;
		goto fail;
	}
	if ((size_t)snprintf(rt->op_pem, sizeof rt->op_pem, "%s/op.pem", d->dir) >=
	    sizeof rt->op_pem) {
		e = MT_ERR_ARG;
		goto fail;
	}
	e = load_bundle(rt, d, &hub_kx, why, why_cap);
	if (e != MT_OK)
		goto fail;
	e = mt_key_open(d->ldev_uri, &rt->ldev);
	if (e == MT_OK)
		e = mt_key_open(d->kx_uri, &kx);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot open the device's keys: %s", mt_err_str(e));
		goto fail;
	}
	e = mt_key_ecdh(kx, hub_kx, x);
	if (e == MT_OK)
		e = mt_packet_derive_keys(x, rt->epoch, rt->id, strlen(rt->id), rt->k, rt->rk);
	if (e == MT_OK && rt->epoch > 0) {
		rt->has_prev = true;
		e = mt_packet_derive_keys(x, rt->epoch - 1, rt->id, strlen(rt->id), NULL,
		                          rt->rk_prev);
	}
	mt_wipe(x, sizeof x);
	if (e != MT_OK) {
		mt_say(why, why_cap, "key agreement with the hub failed: %s", mt_err_str(e));
		goto fail;
	}
	e = mt_aead_new(&rt->aead);
	if (e != MT_OK)
		goto fail;
	if ((size_t)snprintf(path, sizeof path, "%s/queue", d->dir) >= sizeof path) {
		e = MT_ERR_ARG;
		goto fail;
	}
	e = mt_dq_open(path, rt->o.queue_max, &rt->q);
	if (e == MT_OK && (size_t)snprintf(path, sizeof path, "%s/counter", d->dir) < sizeof path)
		e = mt_ctr_open(path, CTR_BLOCK, &rt->ctr);
	if (e != MT_OK) {
		mt_say(why, why_cap, "cannot open the queue or the counter in %s: %s", d->dir,
		       mt_err_str(e));
		goto fail;
	}
	rt->kx = kx;
	rt->hub_kx = hub_kx;
	*out = rt;
	return MT_OK;
fail:
	mt_key_free(kx);
	mt_pubkey_free(hub_kx);
	mt_devrt_close(rt);
	return e;
}

void mt_devrt_close(struct mt_devrt *rt)
{
	if (rt == NULL)
		return;
	if (rt->mq != NULL) {
		if (rt->connected)
			mosquitto_disconnect_v5(rt->mq, 0, NULL);
		mosquitto_destroy(rt->mq);
	}
	SSL_CTX_free(rt->ssl);
	mt_dq_close(rt->q);
	mt_ctr_close(rt->ctr);
	mt_aead_free(rt->aead);
	mt_key_free(rt->ldev);
	mt_key_free(rt->kx);
	mt_pubkey_free(rt->hub_kx);
	mt_pubkey_free(rt->cmd_key);
	free(rt->pkt);
	free(rt->scratch);
	free(rt->ranges);
	free(rt->wave);
	mt_wipe(rt, sizeof *rt);
	free(rt);
}

/* ---- the MQTT link -------------------------------------------------------- */

static void publish(struct mt_devrt *rt, enum mt_dq_topic t, const uint8_t *pkt, size_t len)
{
	static const char *const leaf[] = {"", "vitals", "alert", "status", "ack"};
	char topic[MT_MQTT_TOPIC_MAX];

	if (!rt->connected || (unsigned)t > 4 ||
	    (size_t)snprintf(topic, sizeof topic, "mt/v1/%s/up/%s", rt->id, leaf[t]) >=
	            sizeof topic)
		return;
	if (mosquitto_publish_v5(rt->mq, NULL, topic, (int)len, pkt, 1, false, NULL) ==
	    MOSQ_ERR_SUCCESS)
		rt->st.published++;
}

static void on_connect(struct mosquitto *m, void *arg, int rc, int flags,
                       const mosquitto_property *props)
{
	struct mt_devrt *rt = arg;
	char topic[MT_MQTT_TOPIC_MAX];

	(void)flags;
	(void)props;
	rt->connecting = false;
	if (rc != 0) {
		fprintf(stderr, "medtrust-device %s: broker refused the connection: %s\n", rt->id,
		        mosquitto_reason_string(rc));
		return;
	}
	(void)snprintf(topic, sizeof topic, "mt/v1/%s/down/#", rt->id);
	if (mosquitto_subscribe_v5(m, NULL, topic, 1, 0, NULL) != MOSQ_ERR_SUCCESS)
		return;
	rt->connected = true;
	rt->backoff_ms = BACKOFF_MIN_MS;
	/* §4a: unconfirmed packets go again, oldest first, after a reconnect. */
	rt->resending = true;
	rt->resend_from = 0;
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc, const mosquitto_property *p)
{
	struct mt_devrt *rt = arg;

	(void)m;
	(void)p;
	if (rt->connected)
		fprintf(stderr, "medtrust-device %s: lost the broker (%s)\n", rt->id,
		        mosquitto_reason_string(rc));
	rt->connected = false;
	rt->connecting = false;
}

static void on_receipt(struct mt_devrt *rt, const uint8_t *pkt, size_t len)
{
	struct mt_receipt r;
	uint32_t epoch = 0;
	const uint8_t *key = NULL;
	size_t removed = 0;

	if (mt_packet_epoch(pkt, len, &epoch) == MT_OK) {
		if (epoch == rt->epoch)
			key = rt->rk;
		else if (rt->has_prev && epoch == rt->epoch - 1)
			key = rt->rk_prev;
	}
	if (key == NULL ||
	    mt_receipt_open(rt->aead, key, rt->id, strlen(rt->id), pkt, len, rt->scratch, PKT_BUF,
	                    rt->ranges, MT_RECEIPT_MAX_RANGES, &r) != MT_OK) {
		/* A forged, stale-epoch or damaged receipt releases nothing (A22). */
		rt->st.refused_receipts++;
		return;
	}
	if (mt_dq_ack(rt->q, (const uint64_t(*)[2])rt->ranges, r.n_ranges, &removed) != MT_OK)
		return;
	rt->st.receipts++;
	rt->st.released += removed;
	rt->last_rx_rcpt_ms = rt->now_ms;
	if (rt->o.on_receipt != NULL)
		for (size_t i = 0; i < r.n_ranges; i++)
			rt->o.on_receipt(rt->o.hook_ctx, rt->id, rt->ranges[i][0], rt->ranges[i][1]);
}

static enum mt_err send_message(struct mt_devrt *rt, struct mt_message *m, enum mt_dq_topic t);
static void message_base(struct mt_devrt *rt, struct mt_message *m, uint64_t typ, uint64_t now);

/* Write the new epoch and the command counter into bundle.json (replaced
 * atomically, so a power cut leaves the old or the new state). */
static enum mt_err save_command_state(struct mt_devrt *rt, uint32_t epoch, uint64_t ctr)
{
	char path[PATH_MAX + 16];
	json_error_t jerr;
	json_t *b;
	char *text = NULL;
	enum mt_err e = MT_ERR_IO;

	if ((size_t)snprintf(path, sizeof path, "%s/bundle.json", rt->dir) >= sizeof path ||
	    ctr > (uint64_t)INT64_MAX)
		return MT_ERR_ARG;
	b = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (b != NULL && json_object_set_new(b, "epoch", json_integer((json_int_t)epoch)) == 0 &&
	    json_object_set_new(b, "command_counter", json_integer((json_int_t)ctr)) == 0)
		text = json_dumps(b, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text != NULL)
		e = mt_file_replace(path, text, strlen(text), 0600);
	free(text);
	json_decref(b);
	return e;
}

/* Keys of `epoch` (K, receipt key) and the previous epoch's receipt key. */
static enum mt_err epoch_keys(struct mt_devrt *rt, uint32_t epoch, uint8_t k[MT_KEY_LEN],
                              uint8_t rk[MT_KEY_LEN], uint8_t rk_prev[MT_KEY_LEN])
{
	uint8_t x[32];
	enum mt_err e = mt_key_ecdh(rt->kx, rt->hub_kx, x);

	if (e == MT_OK)
		e = mt_packet_derive_keys(x, epoch, rt->id, strlen(rt->id), k, rk);
	if (e == MT_OK && epoch > 0)
		e = mt_packet_derive_keys(x, epoch - 1, rt->id, strlen(rt->id), NULL, rk_prev);
	mt_wipe(x, sizeof x);
	return e;
}

/* Rotate to `epoch` for command `ctr`: MT_CMD_RESULT_* and a detail. */
static uint64_t rotate_epoch(struct mt_devrt *rt, uint32_t epoch, uint64_t ctr,
                             const char **detail)
{
	uint8_t k[MT_KEY_LEN], rk[MT_KEY_LEN], rk_prev[MT_KEY_LEN];
	uint32_t old = rt->epoch;
	enum mt_err e;

	if (epoch <= rt->epoch) {
		*detail = "the new epoch is not above the current one";
		return MT_CMD_RESULT_ARGS;
	}
	e = epoch_keys(rt, epoch, k, rk, rk_prev);
	if (e == MT_OK)
		e = save_command_state(rt, epoch, ctr);
	if (e != MT_OK) {
		mt_wipe(k, sizeof k);
		mt_wipe(rk, sizeof rk);
		mt_wipe(rk_prev, sizeof rk_prev);
		fprintf(stderr, "medtrust-device %s: rotate-epoch to %u failed: %s\n", rt->id,
		        (unsigned)epoch, mt_err_str(e));
		*detail = "the new epoch could not be derived or saved";
		return MT_CMD_RESULT_FAILED;
	}
	memcpy(rt->k, k, sizeof k);
	memcpy(rt->rk, rk, sizeof rk);
	memcpy(rt->rk_prev, rk_prev, sizeof rk_prev);
	mt_wipe(k, sizeof k);
	mt_wipe(rk, sizeof rk);
	mt_wipe(rk_prev, sizeof rk_prev);
	rt->epoch = epoch;
	rt->has_prev = true;
	fprintf(stderr, "medtrust-device %s: key epoch %u -> %u (command %llu)\n", rt->id,
	        (unsigned)old, (unsigned)epoch, (unsigned long long)ctr);
	return MT_CMD_RESULT_OK;
}

static void on_command(struct mt_devrt *rt, const uint8_t *buf, size_t len)
{
	struct mt_command_check chk = {
	        .key = rt->cmd_key, .dev = rt->id, .dev_len = strlen(rt->id),
	        .has_last = rt->has_cmd_last, .last_ctr = rt->cmd_last, .now_ms = rt->now_ms,
	};
	struct mt_command c;
	struct mt_message m;
	const char *detail = NULL;
	uint64_t result;
	enum mt_err e;

	if (rt->cmd_key == NULL) {
		fprintf(stderr, "medtrust-device %s: command refused: no pinned command "
		        "certificate\n", rt->id);
		rt->st.refused_commands++;
		return;
	}
	e = mt_command_open(&chk, buf, len, &c);
	if (e != MT_OK) { /* A forged, replayed or stale command changes nothing. */
		fprintf(stderr, "medtrust-device %s: command refused: %s\n", rt->id,
		        mt_err_str(e));
		rt->st.refused_commands++;
		return;
	}
	if (c.cmd == MT_CMD_ROTATE_EPOCH) {
		result = rotate_epoch(rt, c.new_epoch, c.ctr, &detail);
	} else {
		result = MT_CMD_RESULT_UNSUPPORTED;
		detail = "command not supported by this device";
		if (save_command_state(rt, rt->epoch, c.ctr) != MT_OK)
			fprintf(stderr, "medtrust-device %s: command counter not saved\n", rt->id);
	}
	/* Accepted or not, a verified counter is used up (this run at least,
	 * and on disk unless saving failed). */
	rt->has_cmd_last = true;
	rt->cmd_last = c.ctr;
	rt->st.commands++;
	message_base(rt, &m, MT_TYP_ACK, rt->now_ms);
	m.has = MT_MSG_ACK;
	m.ack.ctr = c.ctr;
	m.ack.result = result;
	if (detail != NULL) {
		m.ack.detail = detail;
		m.ack.detail_len = strlen(detail);
	}
	if (send_message(rt, &m, MT_DQ_ACK) != MT_OK)
		fprintf(stderr, "medtrust-device %s: acknowledgement of command %llu not sent\n",
		        rt->id, (unsigned long long)c.ctr);
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct mt_devrt *rt = arg;
	char rcpt[MT_MQTT_TOPIC_MAX], cmd[MT_MQTT_TOPIC_MAX];

	(void)m;
	(void)props;
	if (msg->payloadlen <= 0 || msg->payloadlen > MT_PACKET_MAX)
		return;
	(void)snprintf(rcpt, sizeof rcpt, "mt/v1/%s/down/rcpt", rt->id);
	(void)snprintf(cmd, sizeof cmd, "mt/v1/%s/down/cmd", rt->id);
	if (strcmp(msg->topic, rcpt) == 0)
		on_receipt(rt, msg->payload, (size_t)msg->payloadlen);
	else if (strcmp(msg->topic, cmd) == 0)
		on_command(rt, msg->payload, (size_t)msg->payloadlen);
}

/* When op.pem last changed (0: unknown). */
static int64_t op_mtime(const struct mt_devrt *rt)
{
	struct stat st;

	return stat(rt->op_pem, &st) == 0 ? (int64_t)st.st_mtim.tv_sec * 1000000000 +
	                                             st.st_mtim.tv_nsec
	                                   : 0;
}

static void try_connect(struct mt_devrt *rt, uint64_t now)
{
	EVP_PKEY *pkey = NULL;
	char why[256] = "";
	int64_t mtime = op_mtime(rt);
	enum mt_err e;
	int rc;

	rt->next_connect_ms = now + jitter(rt->backoff_ms);
	rt->backoff_ms = rt->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rt->backoff_ms * 2;
	e = mt_key_evp(rt->ldev, &pkey);
	if (e == MT_OK && rt->ssl == NULL)
		e = mt_mqtt_tls_ctx(rt->ca_pem, rt->op_pem, pkey, rt->url.host, &rt->ssl, why,
		                    sizeof why);
	else if (e == MT_OK && mtime != rt->op_mtime) /* renewed since: the new one */
		e = mt_mqtt_tls_reload(rt->ssl, rt->op_pem, pkey);
	EVP_PKEY_free(pkey);
	if (e != MT_OK) {
		fprintf(stderr, "medtrust-device %s: TLS set-up failed: %s\n", rt->id,
		        why[0] ? why : mt_err_str(e));
		return;
	}
	rt->op_mtime = mtime;
	if (rt->mq == NULL) {
		mt_mqtt_lib_init();
		/* Persistent session (§3): clean start false, a day's expiry. */
		e = mt_mqtt_client(rt->id, rt->id, false, rt->ssl, rt, &rt->mq);
		if (e != MT_OK)
			return;
		mosquitto_connect_v5_callback_set(rt->mq, on_connect);
		mosquitto_disconnect_v5_callback_set(rt->mq, on_disconnect);
		mosquitto_message_v5_callback_set(rt->mq, on_message);
	}
	rc = mt_mqtt_connect(rt->mq, &rt->url, 60, MT_MQTT_SESSION_EXPIRY);
	if (rc == MOSQ_ERR_SUCCESS) {
		rt->connecting = true;
		rt->st.reconnects++;
	}
}

int mt_devrt_socket(struct mt_devrt *rt)
{
	return rt->mq != NULL && (rt->connecting || rt->connected) ? mosquitto_socket(rt->mq) : -1;
}

bool mt_devrt_want_write(struct mt_devrt *rt)
{
	return rt->mq != NULL && mosquitto_want_write(rt->mq);
}

/* ---- sealing ------------------------------------------------------------------ */

static void message_base(struct mt_devrt *rt, struct mt_message *m, uint64_t typ, uint64_t now)
{
	memset(m, 0, sizeof *m);
	(void)snprintf(m->dev, sizeof m->dev, "%s", rt->id);
	m->dev_len = strlen(rt->id);
	m->ts = now;
	m->typ = typ;
}

/* Counter, seal, queue, publish. */
static enum mt_err send_message(struct mt_devrt *rt, struct mt_message *m, enum mt_dq_topic t)
{
	struct mt_seal_params p = {
	        .dev = rt->id, .dev_len = strlen(rt->id), .epoch = rt->epoch, .data_key = rt->k,
	        .ldev = rt->ldev, .fast = t == MT_DQ_ALERT, .aead = rt->aead,
	};
	size_t len = 0;
	enum mt_err e = mt_ctr_next(rt->ctr, &m->ctr);

	if (e == MT_OK)
		e = mt_packet_seal(&p, m, rt->pkt, PKT_BUF, &len);
	if (e != MT_OK)
		return e;
	if (rt->o.on_sent != NULL)
		rt->o.on_sent(rt->o.hook_ctx, rt->id, m->ctr, (unsigned)m->typ);
	/* An alert goes out before it is written down: the critical channel
	 * does not wait for a disk.  Its durable copy follows at once and
	 * covers every resend; a crash between the two loses no observation
	 * (the next sealed packet repeats them). */
	if (t == MT_DQ_ALERT)
		publish(rt, t, rt->pkt, len);
	e = mt_dq_put(rt->q, m->ctr, t, rt->pkt, len);
	if (e != MT_OK)
		return e;
	rt->st.sealed++;
	if (t != MT_DQ_ALERT)
		publish(rt, t, rt->pkt, len);
	return MT_OK;
}

/* Observations of the batch with offsets from `ts`. */
static void batch_offsets(struct mt_devrt *rt, uint64_t ts)
{
	for (size_t i = 0; i < rt->n_obs; i++) {
		uint64_t at = rt->obs_at[i] > ts ? ts : rt->obs_at[i];

		if (at == ts)
			mt_num_set_uint(&rt->obs[i].t, 0);
		else
			mt_num_set_negint(&rt->obs[i].t, ts - at - 1);
	}
}

enum mt_err mt_devrt_flush(struct mt_devrt *rt, uint64_t now)
{
	struct mt_message m;
	enum mt_err e;

	if (rt->n_obs == 0)
		return MT_OK;
	message_base(rt, &m, MT_TYP_VITALS, now);
	batch_offsets(rt, now);
	m.has = MT_MSG_OBS;
	m.obs = rt->obs;
	m.n_obs = rt->n_obs;
	e = send_message(rt, &m, MT_DQ_VITALS);
	if (e == MT_OK) { /* a failed seal (token trouble) keeps the batch: retried */
		rt->n_obs = 0;
		rt->wave_len = 0;
	}
	return e;
}

static enum mt_err add_obs(struct mt_devrt *rt, const struct mt_obs *obs, size_t n, uint64_t at,
                           uint64_t now)
{
	for (size_t i = 0; i < n; i++) {
		struct mt_obs *o;

		if (rt->n_obs == MT_OBS_MAX ||
		    (obs[i].waveform && rt->wave_len + obs[i].samples_len > BATCH_BYTES_MAX)) {
			enum mt_err e = mt_devrt_flush(rt, now);

			if (e != MT_OK)
				return e;
		}
		if (obs[i].waveform && obs[i].samples_len > BATCH_BYTES_MAX)
			return MT_ERR_ARG;
		if (rt->n_obs == 0)
			rt->batch_start_ms = now;
		o = &rt->obs[rt->n_obs];
		*o = obs[i];
		if (o->waveform) {
			memcpy(rt->wave + rt->wave_len, obs[i].samples, obs[i].samples_len);
			o->samples = rt->wave + rt->wave_len;
			rt->wave_len += obs[i].samples_len;
		}
		rt->obs_at[rt->n_obs++] = at;
	}
	return MT_OK;
}

enum mt_err mt_devrt_observe(struct mt_devrt *rt, const struct mt_obs *obs, size_t n,
                             uint64_t at_ms)
{
	if (obs == NULL && n > 0)
		return MT_ERR_ARG;
	return add_obs(rt, obs, n, at_ms, at_ms);
}

enum mt_err mt_devrt_alert(struct mt_devrt *rt, uint64_t code, unsigned prio, const char *text,
                           const struct mt_obs *obs, size_t n, uint64_t now)
{
	struct mt_message m;
	struct mt_obs copy[16];
	enum mt_err e;

	if (prio < 1 || prio > 3 || n > 16 || (n > 0 && obs == NULL))
		return MT_ERR_ARG;
	message_base(rt, &m, MT_TYP_ALERT, now);
	m.has = MT_MSG_ALRT;
	m.alrt.code = code;
	m.alrt.prio = prio;
	if (text != NULL && text[0] != '\0') {
		m.alrt.text = text;
		m.alrt.text_len = strnlen(text, MT_TEXT_MAX);
	}
	if (n > 0) {
		memcpy(copy, obs, n * sizeof *obs);
		for (size_t i = 0; i < n; i++)
			mt_num_set_uint(&copy[i].t, 0);
		m.has |= MT_MSG_OBS;
		m.obs = copy;
		m.n_obs = n;
	}
	e = send_message(rt, &m, MT_DQ_ALERT);
	if (e == MT_OK) {
		rt->st.alerts++;
		/* The stored record of these observations is the signed one. */
		e = add_obs(rt, obs, n, now, now);
	}
	return e;
}

static void send_status(struct mt_devrt *rt, uint64_t now)
{
	struct mt_message m;

	message_base(rt, &m, MT_TYP_STATUS, now);
	m.has = MT_MSG_ST;
	m.st.has = MT_ST_BATTERY | MT_ST_FW | MT_ST_QUEUE | MT_ST_UPTIME;
	m.st.battery = rt->battery;
	m.st.fw = rt->o.fw;
	m.st.fw_len = strnlen(rt->o.fw, MT_TEXT_MAX);
	m.st.queue = mt_dq_count(rt->q);
	m.st.uptime = (now - rt->started_ms) / 1000;
	if (send_message(rt, &m, MT_DQ_STATUS) != MT_OK)
		fprintf(stderr, "medtrust-device %s: status not sent\n", rt->id);
}

void mt_devrt_set_battery(struct mt_devrt *rt, unsigned battery)
{
	rt->battery = battery > 100 ? 100 : battery;
}

/* ---- resending ---------------------------------------------------------------- */

struct resend_ctx {
	struct mt_devrt *rt;
	unsigned n;
	uint64_t last;
};

static enum mt_err resend_one(void *ctx, uint64_t ctr, enum mt_dq_topic t, const uint8_t *pkt,
                              size_t len)
{
	struct resend_ctx *c = ctx;

	if (c->n == RESEND_PER_SERVICE)
		return MT_ERR_BUFFER; /* enough for this turn */
	publish(c->rt, t, pkt, len);
	c->rt->st.resent++;
	c->last = ctr;
	c->n++;
	return MT_OK;
}

static void resend_step(struct mt_devrt *rt, uint64_t now)
{
	struct resend_ctx c = {rt, 0, 0};
	enum mt_err e;

	if (!rt->resending) {
		/* 30 s without a receipt while packets wait: send them again. */
		uint64_t quiet = rt->last_rx_rcpt_ms > rt->last_resend_ms ? rt->last_rx_rcpt_ms
		                                                          : rt->last_resend_ms;

		if (mt_dq_count(rt->q) == 0 || now - quiet < rt->o.resend_ms)
			return;
		rt->resending = true;
		rt->resend_from = 0;
	}
	e = mt_dq_walk(rt->q, rt->resend_from, resend_one, &c);
	if (e == MT_ERR_BUFFER) {
		rt->resend_from = c.last + 1;
		return;
	}
	rt->resending = false;
	rt->last_resend_ms = now;
}

/* ---- service ---------------------------------------------------------------------- */

void mt_devrt_service(struct mt_devrt *rt, bool readable, bool writable, uint64_t now)
{
	rt->now_ms = now;
	if (rt->started_ms == 0) {
		rt->started_ms = now;
		rt->next_status_ms = now + rt->o.status_ms;
		rt->last_resend_ms = now;
	}
	if (rt->mq != NULL && (rt->connecting || rt->connected)) {
		int rc = MOSQ_ERR_SUCCESS;

		if (readable)
			rc = mosquitto_loop_read(rt->mq, 1);
		if (rc == MOSQ_ERR_SUCCESS && (writable || mosquitto_want_write(rt->mq)))
			rc = mosquitto_loop_write(rt->mq, 1);
		if (rc == MOSQ_ERR_SUCCESS)
			rc = mosquitto_loop_misc(rt->mq);
		if (rc != MOSQ_ERR_SUCCESS) {
			if (rt->connected)
				fprintf(stderr, "medtrust-device %s: lost the broker (%s)\n", rt->id,
				        mosquitto_strerror(rc));
			rt->connected = rt->connecting = false; /* the socket is closed */
		}
	}
	if (!rt->connected && !rt->connecting && now >= rt->next_connect_ms)
		try_connect(rt, now);
	if (rt->n_obs > 0 && now - rt->batch_start_ms >= rt->o.batch_ms &&
	    mt_devrt_flush(rt, now) != MT_OK)
		fprintf(stderr, "medtrust-device %s: sealing the batch failed; kept\n", rt->id);
	if (now >= rt->next_status_ms) {
		send_status(rt, now);
		rt->next_status_ms = now + rt->o.status_ms;
	}
	if (rt->connected)
		resend_step(rt, now);
}

enum mt_err mt_devrt_publish_raw(struct mt_devrt *rt, const char *leaf, const uint8_t *pkt,
                                 size_t len)
{
	char topic[MT_MQTT_TOPIC_MAX + 64];

	if (!rt->connected || len > INT32_MAX ||
	    (size_t)snprintf(topic, sizeof topic, "mt/v1/%s/up/%s", rt->id, leaf) >= sizeof topic)
		return MT_ERR_IO;
	if (mosquitto_publish_v5(rt->mq, NULL, topic, (int)len, pkt, 1, false, NULL) !=
	    MOSQ_ERR_SUCCESS)
		return MT_ERR_IO;
	rt->st.published++;
	return MT_OK;
}

bool mt_devrt_connected(const struct mt_devrt *rt)
{
	return rt->connected;
}

void mt_devrt_stats(const struct mt_devrt *rt, struct mt_devrt_stats *s)
{
	*s = rt->st;
	s->queued = mt_dq_count(rt->q);
	s->connected = rt->connected;
}
