/*
 * medtrust_mosq.c — the Eclipse Mosquitto plugin (plugin API version 5,
 * mosquitto 2.0) that makes the broker enforce medtrust's device identity:
 * who may connect, which topics each identity may use, and the end of a
 * revoked or decommissioned device's live session within one poll period
 * (protocol §3; threats B03, B13, C01, C02, C06–C10; docs/broker.md).
 *
 * Identity.  The broker's listener requires a client certificate chaining
 * to the operator CA (require_certificate, cafile); the plugin then takes
 * MOSQ_EVT_BASIC_AUTH and accepts a client only when
 *
 *   - it presented a certificate and its MQTT username is that
 *     certificate's CN, byte for byte;
 *   - for a device: the client id is the username too (threat C09), the
 *     registry knows the device and it is active, and the certificate is
 *     one the registry issued to it (same serial, same DER), unrevoked and
 *     unexpired;
 *   - for the hub identity (option hub_identity, default "hub"): the
 *     client id is the identity or "<identity>/<suffix>" (several hub
 *     instances share one subscription), no device bears that name, and
 *     the certificate is not one the registry issued to a device.
 *
 * Why not `use_identity_as_username`: mosquitto 2.0.11 skips the plugins'
 * BASIC_AUTH event altogether when it is set ("authentication assumed to
 * be cleared"), which would leave the registry check — the only place a
 * revocation is seen before Mosquitto's next restart — with nowhere to
 * run.  So the listener leaves it off, clients send their CN as username,
 * and the plugin checks that it is the CN.  The effect is the same
 * identity, checked here.
 *
 * Topics.  MOSQ_EVT_ACL_CHECK asks acl.c, a pure function, for each
 * publish, delivery, subscribe and unsubscribe.
 *
 * Revocation.  Mosquitto reads its CRL only at start (FIELD-NOTES), so the
 * plugin watches the registry instead: on MOSQ_EVT_TICK (about every
 * 100 ms) it polls, at most every poll_ms, SQLite's data_version, and when
 * the database changed it reads the withdrawals recorded in the last
 * LOOKBACK_S seconds — devices revoked, decommissioned or released,
 * certificates revoked — and kicks each such device's sessions by
 * username (mosquitto_kick_client_by_username, never NULL: NULL would kick
 * every client without a username).  Each withdrawal is
 * handled once (a small hash set keyed by device, serial and time, pruned
 * as the window moves), so a device whose superseded certificate was
 * revoked is dropped once and may come back with its new one.  The window
 * rather than a cursor on the newest time seen: two writers may commit in
 * another order than their clocks say.  A device that reconnects is
 * refused by BASIC_AUTH, which reads the registry every time.
 *
 * Failing closed.  Without a readable registry the plugin refuses to load
 * (threats B13, C10): no `db_path` option, a path that is not a medtrust
 * database, an unknown option or a bad value all make
 * mosquitto_plugin_init fail, and Mosquitto does not start.  A registry
 * read that fails at connect time refuses the connection.
 *
 * The broker is single-threaded: every callback runs on its event loop,
 * so nothing here locks, and every registry call is short (indexed reads;
 * busy timeout 250 ms).  Refusals are logged with the client's address,
 * username and client id (made printable), never a key or a PIN; ACL
 * refusals at most 20 a second, then a count of those left out.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "acl.h"
#include "medtrust/mt_pki.h"
#include "medtrust/mt_registry.h"

_Static_assert(MT_MOSQ_ACL_READ == MOSQ_ACL_READ, "MOSQ_ACL_READ");
_Static_assert(MT_MOSQ_ACL_WRITE == MOSQ_ACL_WRITE, "MOSQ_ACL_WRITE");
_Static_assert(MT_MOSQ_ACL_SUBSCRIBE == MOSQ_ACL_SUBSCRIBE, "MOSQ_ACL_SUBSCRIBE");
_Static_assert(MT_MOSQ_ACL_UNSUBSCRIBE == MOSQ_ACL_UNSUBSCRIBE, "MOSQ_ACL_UNSUBSCRIBE");

#define LOG_PREFIX "medtrust_mosq: "
#define POLL_MS_DEFAULT 200
#define POLL_MS_MIN 10
#define POLL_MS_MAX 60000
#define LOOKBACK_S 60           /* how far back each poll reads withdrawals */
#define SEEN_MAX (1u << 20)     /* withdrawals remembered at most */
#define ACL_LOG_PER_S 20        /* ACL refusals logged per second */
#define SHOW_MAX 65             /* client-given strings shown in logs, bytes */

/* ---- handled withdrawals: an open-addressing hash set ------------------ */

struct seen_key {
	char device[MT_DEVICE_ID_MAX + 1]; /* "" marks an empty slot */
	char serial[MT_REG_CERT_SERIAL_MAX];
	int status; /* 0 for a certificate's revocation */
	int64_t at;
};

struct seen {
	struct seen_key *slot;
	size_t cap; /* a power of two, or 0 */
	size_t n;
};

static uint64_t seen_hash(const struct seen_key *k)
{
	const unsigned char *b = (const unsigned char *)k;
	uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */

	for (size_t i = 0; i < sizeof *k; i++) {
		h ^= b[i];
		h *= 0x100000001b3u;
	}
	return h;
}

/* The slot holding k, or the empty slot where it would go. */
static struct seen_key *seen_find(const struct seen *s, const struct seen_key *k)
{
	size_t i = (size_t)seen_hash(k) & (s->cap - 1);

	for (;;) {
		struct seen_key *e = &s->slot[i];

		if (e->device[0] == '\0' || memcmp(e, k, sizeof *k) == 0)
			return e;
		i = (i + 1) & (s->cap - 1);
	}
}

/* Rebuild with capacity `cap`, keeping entries with at >= keep_from. */
static bool seen_rebuild(struct seen *s, size_t cap, int64_t keep_from)
{
	struct seen_key *old = s->slot;
	size_t old_cap = s->cap;
	struct seen_key *slot = calloc(cap, sizeof *slot);

	if (slot == NULL)
		return false;
	s->slot = slot;
	s->cap = cap;
	s->n = 0;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].device[0] == '\0' || old[i].at < keep_from)
			continue;
		*seen_find(s, &old[i]) = old[i];
		s->n++;
	}
	free(old);
	return true;
}

/* Add k; false when it was there already.  When memory runs out or the
 * set is full, k is not remembered and true is returned: handling a
 * withdrawal twice (a second kick) is harmless, missing one is not. */
static bool seen_add(struct seen *s, const struct seen_key *k)
{
	struct seen_key *e;

	if ((s->n + 1) * 2 > s->cap) {
		if (s->cap >= SEEN_MAX || !seen_rebuild(s, s->cap ? s->cap * 2 : 64, INT64_MIN))
			return true;
	}
	e = seen_find(s, k);
	if (e->device[0] != '\0')
		return false;
	*e = *k;
	s->n++;
	return true;
}

static void seen_prune(struct seen *s, int64_t keep_from)
{
	if (s->n > 0)
		(void)seen_rebuild(s, s->cap, keep_from);
}

/* ---- the plugin's state ------------------------------------------------- */

struct plugin {
	mosquitto_plugin_id_t *pid;
	struct mt_registry *reg;
	char hub[MT_DEVICE_ID_MAX + 1];
	long poll_ms;
	struct timespec last_poll;
	int64_t version;
	bool have_version;
	bool poll_failing;
	struct seen seen;
	time_t acl_log_second;
	unsigned acl_logged, acl_suppressed;
};

static struct timespec mono_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

static long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (long)(b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

/* A client-given string made printable for a log line. */
static const char *show(const char *s, char out[SHOW_MAX + 4])
{
	size_t i;

	if (s == NULL)
		return "(none)";
	for (i = 0; s[i] != '\0' && i < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
	}
	if (s[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* ---- authentication ----------------------------------------------------- */

/* Is `cid` an acceptable client id for the hub identity `hub`: the
 * identity itself, or "<hub>/<suffix>" with a suffix of the device-id
 * grammar (no device's client id can have a '/'). */
static bool hub_client_id(const char *hub, const char *cid)
{
	size_t n = strlen(hub);

	if (strcmp(cid, hub) == 0)
		return true;
	return strncmp(cid, hub, n) == 0 && cid[n] == '/' && mt_mosq_id_valid(cid + n + 1);
}

/* The decision for one connection: NULL to accept, else the reason. */
static const char *auth_decide(struct plugin *p, struct mosquitto *client, const char *user,
                               X509 *x)
{
	char cn[MT_DEVICE_ID_MAX + 2];
	char serial[MT_REG_CERT_SERIAL_MAX];
	const char *cid = mosquitto_client_id(client);
	struct mt_device_rec d;
	struct mt_cert_rec rec;
	struct mt_cert *c = NULL;
	const char *why = NULL;
	enum mt_err e;

	if (x == NULL)
		return "no client certificate";
	if (user == NULL)
		return "no username (it must be the certificate's CN)";
	if (!mt_mosq_id_valid(user))
		return "username is not a valid identity";
	if (mt_cert_from_x509(x, &c) != MT_OK)
		return "client certificate unreadable";
	e = mt_cert_subject_cn(c, cn, sizeof cn);
	if (e != MT_OK)
		why = "client certificate has no single, printable CN";
	else if (strcmp(cn, user) != 0)
		why = "username is not the certificate's CN";
	else if (cid == NULL)
		why = "no client id";
	else if (strcmp(user, p->hub) == 0) {
		if (!hub_client_id(p->hub, cid))
			why = "client id of the hub identity is not <hub> or <hub>/<suffix>";
		else if ((e = mt_registry_device(p->reg, user, &d)) != MT_ERR_REG_UNKNOWN)
			why = e == MT_OK ? "a device in the registry bears the hub identity's name"
			                 : "registry unreadable";
		else if ((e = mt_registry_cert_serial_hex(c, serial)) != MT_OK)
			why = "certificate serial unreadable";
		else if ((e = mt_registry_cert(p->reg, serial, &rec)) != MT_ERR_NOT_FOUND)
			why = e == MT_OK ? "certificate of the hub identity was issued to a device"
			                 : "registry unreadable";
	} else if (strcmp(cid, user) != 0) {
		why = "client id is not the certificate's CN";
	} else if ((e = mt_registry_device(p->reg, user, &d)) != MT_OK) {
		why = e == MT_ERR_REG_UNKNOWN ? "unknown device" : "registry unreadable";
	} else if (d.status != MT_DEV_ACTIVE) {
		why = d.status == MT_DEV_REVOKED          ? "device revoked"
		      : d.status == MT_DEV_DECOMMISSIONED ? "device decommissioned"
		                                          : "device not active";
	} else if ((e = mt_registry_cert_issued(p->reg, c, &rec)) != MT_OK) {
		why = e == MT_ERR_REG_DB ? "registry unreadable"
		                         : "certificate not issued by this registry";
	} else if (strcmp(rec.device, user) != 0) {
		why = "certificate issued to another device";
	} else if (rec.revoked_at != 0) {
		why = "certificate revoked";
	} else if (rec.not_after <= (int64_t)time(NULL)) {
		why = "certificate expired";
	}
	mt_cert_free(c);
	return why;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct plugin *p = userdata;
	char u[SHOW_MAX + 4], i[SHOW_MAX + 4];
	X509 *x = mosquitto_client_certificate(ed->client);
	const char *why = auth_decide(p, ed->client, ed->username, x);

	(void)event;
	X509_free(x);
	if (why == NULL)
		return MOSQ_ERR_SUCCESS;
	mosquitto_log_printf(MOSQ_LOG_WARNING,
	                     LOG_PREFIX "refused %s (username '%s', client id '%s'): %s",
	                     mosquitto_client_address(ed->client)
	                             ? mosquitto_client_address(ed->client)
	                             : "?",
	                     show(ed->username, u), show(mosquitto_client_id(ed->client), i), why);
	return MOSQ_ERR_AUTH;
}

/* ---- topics ------------------------------------------------------------- */

static const char *access_name(int access)
{
	switch (access) {
	case MOSQ_ACL_READ: return "read";
	case MOSQ_ACL_WRITE: return "publish";
	case MOSQ_ACL_SUBSCRIBE: return "subscribe";
	case MOSQ_ACL_UNSUBSCRIBE: return "unsubscribe";
	}
	return "?";
}

static void acl_log(struct plugin *p, const char *user, int access, const char *topic,
                    bool retain)
{
	char u[SHOW_MAX + 4], t[SHOW_MAX + 4];
	time_t now = time(NULL);

	if (now != p->acl_log_second) {
		if (p->acl_suppressed > 0)
			mosquitto_log_printf(MOSQ_LOG_WARNING,
			                     LOG_PREFIX "%u more topic refusals not logged",
			                     p->acl_suppressed);
		p->acl_log_second = now;
		p->acl_logged = 0;
		p->acl_suppressed = 0;
	}
	if (p->acl_logged >= ACL_LOG_PER_S) {
		p->acl_suppressed++;
		return;
	}
	p->acl_logged++;
	mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "denied %s: %s '%s'%s", show(user, u),
	                     access_name(access), show(topic, t), retain ? " (retained)" : "");
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	struct plugin *p = userdata;
	const char *user = mosquitto_client_username(ed->client);
	bool is_hub = user != NULL && strcmp(user, p->hub) == 0;

	(void)event;
	if (user != NULL && mt_mosq_acl_allows(user, is_hub, ed->access, ed->topic, ed->retain))
		return MOSQ_ERR_SUCCESS;
	acl_log(p, user, ed->access, ed->topic, ed->retain);
	return MOSQ_ERR_ACL_DENIED;
}

/* ---- revocation: the registry poll ------------------------------------- */

static enum mt_err on_withdrawal(const struct mt_registry_withdrawal *w, void *arg)
{
	struct plugin *p = arg;
	struct seen_key k;

	memset(&k, 0, sizeof k); /* padding too: the key is hashed as bytes */
	(void)snprintf(k.device, sizeof k.device, "%s", w->device);
	(void)snprintf(k.serial, sizeof k.serial, "%s", w->cert_serial);
	k.status = w->cert_serial[0] == '\0' ? (int)w->status : 0;
	k.at = w->at;
	if (k.device[0] == '\0' || !seen_add(&p->seen, &k))
		return MT_OK;
	if (strcmp(w->device, p->hub) == 0) {
		/* Never drop the hub because a device row bears its name. */
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     LOG_PREFIX "a device named like the hub identity (%s) was "
		                                "withdrawn; the hub's sessions are left alone",
		                     w->device);
		return MT_OK;
	}
	mosquitto_kick_client_by_username(w->device, false);
	if (w->cert_serial[0] != '\0')
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
		                     LOG_PREFIX "certificate %s of %s revoked: sessions of %s dropped",
		                     w->cert_serial, w->device, w->device);
	else
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
		                     LOG_PREFIX "device %s is %s: sessions of %s dropped", w->device,
		                     mt_dev_status_name(w->status), w->device);
	return MT_OK;
}

static void poll_registry(struct plugin *p)
{
	int64_t v, since;
	enum mt_err e = mt_registry_data_version(p->reg, &v);

	if (e == MT_OK && p->have_version && v == p->version)
		return;
	since = (int64_t)time(NULL) - LOOKBACK_S;
	if (e == MT_OK) {
		seen_prune(&p->seen, since);
		e = mt_registry_withdrawals_since(p->reg, since, on_withdrawal, p);
	}
	if (e != MT_OK) {
		/* Try again at the next poll; say so once per outage. */
		if (!p->poll_failing)
			mosquitto_log_printf(MOSQ_LOG_ERR,
			                     LOG_PREFIX "cannot read the registry (%s): revoked "
			                                "devices are not dropped until it can",
			                     mt_err_str(e));
		p->poll_failing = true;
		return;
	}
	if (p->poll_failing)
		mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "registry readable again");
	p->poll_failing = false;
	p->version = v;
	p->have_version = true;
}

static int on_tick(int event, void *event_data, void *userdata)
{
	struct plugin *p = userdata;
	struct timespec now = mono_now();

	(void)event;
	(void)event_data;
	if (ms_between(&p->last_poll, &now) < p->poll_ms)
		return MOSQ_ERR_SUCCESS;
	p->last_poll = now;
	poll_registry(p);
	return MOSQ_ERR_SUCCESS;
}

/* ---- loading and unloading --------------------------------------------- */

static const struct {
	int event;
	MOSQ_FUNC_generic_callback cb;
} callbacks[] = {
        {MOSQ_EVT_BASIC_AUTH, on_basic_auth},
        {MOSQ_EVT_ACL_CHECK, on_acl_check},
        {MOSQ_EVT_TICK, on_tick},
};
#define N_CALLBACKS (sizeof callbacks / sizeof callbacks[0])

static void plugin_free(struct plugin *p, size_t registered)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < registered; i++)
		(void)mosquitto_callback_unregister(p->pid, callbacks[i].event, callbacks[i].cb, NULL);
	mt_registry_close(p->reg);
	free(p->seen.slot);
	free(p);
}

__attribute__((format(printf, 2, 3))) static int refuse_load(struct plugin *p, const char *fmt,
                                                              ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "%s: not loading (fail closed)", msg);
	plugin_free(p, 0);
	return MOSQ_ERR_INVAL;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == MOSQ_PLUGIN_VERSION)
			return MOSQ_PLUGIN_VERSION;
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count)
{
	struct plugin *p = calloc(1, sizeof *p);
	const char *db = NULL;
	enum mt_err e;

	if (p == NULL)
		return MOSQ_ERR_NOMEM;
	p->pid = identifier;
	p->poll_ms = POLL_MS_DEFAULT;
	(void)snprintf(p->hub, sizeof p->hub, "hub");
	for (int i = 0; i < option_count; i++) {
		const char *k = options[i].key, *v = options[i].value;

		if (k == NULL || v == NULL)
			return refuse_load(p, "an option without a value");
		if (strcmp(k, "db_path") == 0) {
			db = v;
		} else if (strcmp(k, "hub_identity") == 0) {
			if (!mt_mosq_id_valid(v))
				return refuse_load(p, "plugin_opt_hub_identity '%s' is not a valid "
				                      "identity ([A-Za-z0-9][A-Za-z0-9._-]{0,63})",
				                   v);
			(void)snprintf(p->hub, sizeof p->hub, "%s", v);
		} else if (strcmp(k, "poll_ms") == 0) {
			char *end;
			long n;

			errno = 0;
			n = strtol(v, &end, 10);
			if (errno != 0 || end == v || *end != '\0' || n < POLL_MS_MIN || n > POLL_MS_MAX)
				return refuse_load(p, "plugin_opt_poll_ms '%s' is not a number of "
				                      "milliseconds from 10 to 60000",
				                   v);
			p->poll_ms = n;
		} else {
			return refuse_load(p, "unknown option plugin_opt_%s", k);
		}
	}
	if (db == NULL || db[0] == '\0')
		return refuse_load(p, "plugin_opt_db_path (the deployment's medtrust.db) is not set");
	e = mt_registry_open_readonly(db, &p->reg);
	if (e != MT_OK)
		return refuse_load(p, "cannot open the registry in %s (missing, unreadable or not "
		                      "a medtrust database)",
		                   db);
	p->last_poll = mono_now();
	for (size_t i = 0; i < N_CALLBACKS; i++) {
		if (mosquitto_callback_register(identifier, callbacks[i].event, callbacks[i].cb, NULL,
		                                p) != MOSQ_ERR_SUCCESS) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
			                     LOG_PREFIX "cannot register a callback: not loading");
			plugin_free(p, i);
			return MOSQ_ERR_UNKNOWN;
		}
	}
	*userdata = p;
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     LOG_PREFIX "registry %s, hub identity '%s', revocations polled every "
	                                "%ld ms",
	                     db, p->hub, p->poll_ms);
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	plugin_free(userdata, N_CALLBACKS);
	return MOSQ_ERR_SUCCESS;
}
