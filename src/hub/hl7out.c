/*
 * hl7out.c — the HL7 v2 / MLLP sender of medtrustd (hl7out.h says what it
 * guarantees; docs/hl7.md how to run it).
 *
 * One thread per destination runs a small state machine: take the next
 * journal seq after the cursor, render it, (re)connect, send it, wait for
 * the answer on the same connection, and only then move the durable
 * cursor.  Each thread has a self-pipe; every wait (connect, send, answer,
 * back-off, idle poll) is a poll() on the socket and that pipe, so
 * mt_hl7out_kick() wakes an idle sender at once and mt_hl7out_stop()
 * interrupts any wait without a signal.
 *
 * The cursor database is one SQLite connection shared by the threads
 * under a mutex (writes are rare and tiny: one row per acknowledged
 * message), synchronous=FULL so that an acknowledged message is never sent
 * again after a power cut... except the one whose ACK arrived but whose
 * commit did not: that one is resent with the same MSH-10, which the
 * receiver de-duplicates (G10).  Nothing is ever marked done early.
 *
 * Audit records are written on state changes, not per message: a park, the
 * first bad answer of a streak, a destination going down and coming back.
 * A peer that answers garbage forever costs one record, not one a second.
 */
#define _POSIX_C_SOURCE 200809L

#include "hl7out.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "medtrust/mt_deploy.h"
#include "medtrust/mt_hl7.h"
#include "medtrust/mt_util.h"

#define DEF_TIMEOUT_MS 10000u
#define DEF_RETRY_MIN_MS 1000u
#define DEF_RETRY_MAX_MS 30000u
#define DEF_POLL_MS 1000u
#define CTRL_MAX 64

struct dest {
	struct mt_hl7out *o;
	struct mt_hl7_dest cfg;
	pthread_t th;
	bool started;
	int wake[2];
	int fd;
	struct mt_mllp_reader rd;
	unsigned backoff_ms;
	unsigned fails;       /* consecutive failed attempts */
	bool bad_streak;      /* an invalid answer was audited */
	bool down_reported;   /* "destination down" was audited */
	bool ever_up;
	struct mt_hl7out_stats st; /* under o->stmu */
};

struct mt_hl7out {
	struct mt_hl7out_opts o;
	char prefix[33];
	sqlite3 *db;
	pthread_mutex_t dbmu, stmu;
	atomic_bool stop;
	size_t n;
	struct dest d[];
};

enum answer { ANS_ACK, ANS_TIMEOUT, ANS_CLOSED, ANS_BAD, ANS_STOP };

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool stopping(const struct dest *d)
{
	return atomic_load(&d->o->stop);
}

__attribute__((format(printf, 2, 3))) static void set_error(struct dest *d, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&d->o->stmu);
	va_start(ap, fmt);
	vsnprintf(d->st.last_error, sizeof d->st.last_error, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&d->o->stmu);
}

static void bump(struct dest *d, uint64_t *field)
{
	pthread_mutex_lock(&d->o->stmu);
	(*field)++;
	pthread_mutex_unlock(&d->o->stmu);
}

static void audit(struct dest *d, const char *action, enum mt_audit_outcome outcome,
                  const char *detail)
{
	if (d->o->o.audit)
		d->o->o.audit(d->o->o.audit_ctx, "hub", action, d->cfg.name, outcome, detail);
}

static void drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof buf) > 0) {
	}
}

/* Wait up to ms for `events` on fd (fd < 0: just the wake pipe).  Returns
 * 1 ready, 0 timeout, -1 stop.  A kick does not end the wait unless
 * `kickable`. */
static int wait_fd(struct dest *d, int fd, short events, unsigned ms, bool kickable)
{
	uint64_t end = mono_ms() + ms;

	for (;;) {
		struct pollfd p[2] = {{d->wake[0], POLLIN, 0}, {fd, events, 0}};
		uint64_t now = mono_ms();
		int r;

		if (stopping(d))
			return -1;
		if (now >= end)
			return 0;
		r = poll(p, fd >= 0 ? 2 : 1, (int)(end - now));
		if (r < 0 && errno != EINTR)
			return -1;
		if (stopping(d))
			return -1;
		if (r > 0 && (p[0].revents & POLLIN)) {
			drain(d->wake[0]);
			if (kickable)
				return 0;
		}
		if (r > 0 && fd >= 0 && p[1].revents)
			return 1;
	}
}

static void disconnect(struct dest *d)
{
	if (d->fd >= 0) {
		close(d->fd);
		d->fd = -1;
	}
	mt_mllp_reset(&d->rd);
	pthread_mutex_lock(&d->o->stmu);
	d->st.connected = false;
	pthread_mutex_unlock(&d->o->stmu);
}

static void backoff(struct dest *d)
{
	unsigned ms = d->backoff_ms;

	(void)wait_fd(d, -1, 0, ms, false);
	d->backoff_ms = ms >= d->cfg.retry_max_ms / 2 ? d->cfg.retry_max_ms : ms * 2;
}

static void went_down(struct dest *d, const char *why)
{
	char js[160], detail[256];

	set_error(d, "%s", why);
	if (d->down_reported)
		return;
	d->down_reported = true;
	snprintf(detail, sizeof detail, "{\"reason\":%s}", mt_deploy_json_str(why, js, sizeof js));
	audit(d, "hl7.dest_down", MT_AUDIT_ERROR, detail);
}

static bool do_connect(struct dest *d)
{
	struct addrinfo hints = {0}, *res = NULL, *ai;
	char port[8], why[128];
	int r;

	snprintf(port, sizeof port, "%u", (unsigned)d->cfg.port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	r = getaddrinfo(d->cfg.host, port, &hints, &res);
	if (r != 0) {
		mt_say(why, sizeof why, "cannot resolve %s: %s", d->cfg.host, gai_strerror(r));
		went_down(d, why);
		return false;
	}
	mt_say(why, sizeof why, "cannot connect to %s:%s", d->cfg.host, port);
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		                ai->ai_protocol);
		int err = 0, one = 1;
		socklen_t el = sizeof err;

		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			if (errno != EINPROGRESS) {
				mt_say(why, sizeof why, "connect %s:%s: %s", d->cfg.host, port,
				         strerror(errno));
				close(fd);
				continue;
			}
			r = wait_fd(d, fd, POLLOUT, d->cfg.timeout_ms, false);
			if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
				mt_say(why, sizeof why, "connect %s:%s: %s", d->cfg.host, port,
				         r == 0 ? "timed out" : strerror(err ? err : ETIMEDOUT));
				close(fd);
				if (r < 0)
					break;
				continue;
			}
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
		d->fd = fd;
		break;
	}
	freeaddrinfo(res);
	if (d->fd < 0) {
		went_down(d, why);
		return false;
	}
	mt_mllp_reset(&d->rd);
	pthread_mutex_lock(&d->o->stmu);
	d->st.connected = true;
	pthread_mutex_unlock(&d->o->stmu);
	if (d->down_reported || !d->ever_up)
		audit(d, "hl7.dest_up", MT_AUDIT_OK, NULL);
	d->down_reported = false;
	d->ever_up = true;
	return true;
}

/* Whether the idle connection is still usable: the receiver may have
 * closed it (normal), or sent something unasked (not normal). */
static bool still_open(struct dest *d)
{
	struct pollfd p = {d->fd, POLLIN, 0};
	char c;

	if (poll(&p, 1, 0) <= 0)
		return true;
	if (recv(d->fd, &c, 1, MSG_PEEK) > 0)
		set_error(d, "unsolicited data from the receiver");
	return false;
}

static bool send_all(struct dest *d, const uint8_t *p, size_t n)
{
	uint64_t end = mono_ms() + d->cfg.timeout_ms;

	while (n > 0) {
		ssize_t w = send(d->fd, p, n, MSG_NOSIGNAL);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			uint64_t now = mono_ms();

			if (now >= end || wait_fd(d, d->fd, POLLOUT, (unsigned)(end - now), false) <= 0)
				return false;
			continue;
		}
		set_error(d, "send: %s", w < 0 ? strerror(errno) : "closed");
		return false;
	}
	return true;
}

/* Read one answer frame and parse it. */
static enum answer read_answer(struct dest *d, struct mt_hl7_ack *ack)
{
	uint64_t end = mono_ms() + d->cfg.timeout_ms;
	uint8_t buf[4096];

	for (;;) {
		uint64_t now = mono_ms();
		size_t off = 0;
		ssize_t r;
		int w;

		if (now >= end)
			return ANS_TIMEOUT;
		w = wait_fd(d, d->fd, POLLIN, (unsigned)(end - now), false);
		if (w < 0)
			return ANS_STOP;
		if (w == 0)
			return ANS_TIMEOUT;
		r = recv(d->fd, buf, sizeof buf, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			set_error(d, "receiver closed the connection before answering");
			return ANS_CLOSED;
		}
		while (off < (size_t)r) {
			const uint8_t *frame;
			size_t used, flen;
			enum mt_err e = mt_mllp_feed(&d->rd, buf + off, (size_t)r - off, &used, &frame,
			                             &flen);

			off += used;
			if (e != MT_OK) {
				set_error(d, "answer: %s", mt_err_str(e));
				return ANS_BAD;
			}
			if (frame) {
				e = mt_hl7_parse_ack(frame, flen, ack);
				if (e != MT_OK) {
					set_error(d, "answer is not an HL7 ACK: %s", mt_err_str(e));
					return ANS_BAD;
				}
				if (off < (size_t)r) {
					set_error(d, "bytes after the answer");
					return ANS_BAD;
				}
				return ANS_ACK;
			}
		}
	}
}

/* ---- the cursor database ---- */

static bool db_exec(struct mt_hl7out *o, const char *sql)
{
	return sqlite3_exec(o->db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

static enum mt_err db_open(struct mt_hl7out *o, const char *path, char *why, size_t cap)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0) {
		mt_say(why, cap, "%s: %s", path, strerror(errno));
		return MT_ERR_IO;
	}
	close(fd);
	if (sqlite3_open_v2(path, &o->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
	            SQLITE_OK ||
	    sqlite3_busy_timeout(o->db, 5000) != SQLITE_OK ||
	    !db_exec(o, "PRAGMA synchronous=FULL") ||
	    !db_exec(o, "CREATE TABLE IF NOT EXISTS hl7_cursor(dest TEXT PRIMARY KEY, "
	                "seq INTEGER NOT NULL)") ||
	    !db_exec(o, "CREATE TABLE IF NOT EXISTS hl7_parked(dest TEXT NOT NULL, "
	                "seq INTEGER NOT NULL, control_id TEXT NOT NULL, text TEXT NOT NULL, "
	                "at_ms INTEGER NOT NULL, PRIMARY KEY(dest, seq))")) {
		mt_say(why, cap, "%s: %s", path, o->db ? sqlite3_errmsg(o->db) : "cannot open");
		return MT_ERR_IO;
	}
	return MT_OK;
}

static enum mt_err db_cursor(struct mt_hl7out *o, const char *dest, uint64_t *seq)
{
	sqlite3_stmt *st = NULL;
	enum mt_err e = MT_ERR_IO;
	int r;

	*seq = 0;
	if (sqlite3_prepare_v2(o->db, "SELECT seq FROM hl7_cursor WHERE dest = ?1", -1, &st,
	                       NULL) != SQLITE_OK)
		return MT_ERR_IO;
	sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
		e = MT_OK;
	} else if (r == SQLITE_DONE) {
		e = MT_OK;
	}
	sqlite3_finalize(st);
	return e;
}

/* Move the cursor to seq and, when park_text is given, park seq: one
 * transaction. */
static enum mt_err db_done(struct dest *d, uint64_t seq, const char *ctrl, const char *park_text)
{
	struct mt_hl7out *o = d->o;
	sqlite3_stmt *st = NULL;
	bool ok;

	pthread_mutex_lock(&o->dbmu);
	ok = db_exec(o, "BEGIN IMMEDIATE");
	if (ok && park_text) {
		ok = sqlite3_prepare_v2(o->db,
		                        "INSERT OR REPLACE INTO hl7_parked(dest, seq, control_id, "
		                        "text, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
		                        -1, &st, NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_text(st, 1, d->cfg.name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
			sqlite3_bind_text(st, 3, ctrl, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, park_text, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 5, (sqlite3_int64)now_ms());
			ok = sqlite3_step(st) == SQLITE_DONE;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (ok) {
		ok = sqlite3_prepare_v2(o->db,
		                        "INSERT INTO hl7_cursor(dest, seq) VALUES (?1, ?2) "
		                        "ON CONFLICT(dest) DO UPDATE SET seq = excluded.seq",
		                        -1, &st, NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_text(st, 1, d->cfg.name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
			ok = sqlite3_step(st) == SQLITE_DONE;
		}
		sqlite3_finalize(st);
	}
	if (ok)
		ok = db_exec(o, "COMMIT");
	else
		(void)db_exec(o, "ROLLBACK");
	pthread_mutex_unlock(&o->dbmu);
	if (!ok)
		return MT_ERR_IO;
	pthread_mutex_lock(&o->stmu);
	d->st.cursor = seq;
	pthread_mutex_unlock(&o->stmu);
	return MT_OK;
}

/* ---- the sender ---- */

/* Record seq as done (and parked with `text` when given); retried until it
 * sticks or the sender stops.  false: stopping. */
static bool mark_done(struct dest *d, uint64_t seq, const char *ctrl, const char *park_text)
{
	while (db_done(d, seq, ctrl, park_text) != MT_OK) {
		set_error(d, "cannot write the cursor database");
		backoff(d);
		if (stopping(d))
			return false;
	}
	return true;
}

static void park(struct dest *d, uint64_t seq, const char *ctrl, const char *text)
{
	char js[2][300], detail[700];

	if (!mark_done(d, seq, ctrl, text))
		return;
	bump(d, &d->st.parked);
	snprintf(detail, sizeof detail, "{\"seq\":%" PRIu64 ",\"control_id\":%s,\"text\":%s}", seq,
	         mt_deploy_json_str(ctrl, js[0], sizeof js[0]),
	         mt_deploy_json_str(text, js[1], sizeof js[1]));
	audit(d, "hl7.parked", MT_AUDIT_REFUSED, detail);
	if (d->o->o.on_park)
		d->o->o.on_park(d->o->o.park_ctx, d->cfg.name, seq, ctrl, text);
}

static void bad_answer(struct dest *d, uint64_t seq, const char *ctrl)
{
	char js[2][200], detail[500];

	if (!d->bad_streak) {
		d->bad_streak = true;
		snprintf(detail, sizeof detail,
		         "{\"seq\":%" PRIu64 ",\"control_id\":%s,\"reason\":%s}", seq,
		         mt_deploy_json_str(ctrl, js[0], sizeof js[0]),
		         mt_deploy_json_str(d->st.last_error, js[1], sizeof js[1]));
		audit(d, "hl7.bad_answer", MT_AUDIT_REFUSED, detail);
	}
	disconnect(d);
}

static bool permanent(enum mt_err e)
{
	return e == MT_ERR_ARG || (e >= MT_ERR_HL7_TEXT && e <= MT_ERR_HL7_FRAME);
}

/* Deliver one rendered message until it is done (acked or parked) or the
 * sender stops. */
static void deliver(struct dest *d, uint64_t seq, const char *ctrl, const uint8_t *frame,
                    size_t flen)
{
	bool sent_before = false;

	while (!stopping(d)) {
		struct mt_hl7_ack ack;
		enum answer a;

		if (d->fd >= 0 && !still_open(d))
			disconnect(d);
		if (d->fd < 0) {
			if (d->fails > 0)
				backoff(d);
			if (stopping(d))
				return;
			if (!do_connect(d)) {
				d->fails++;
				continue;
			}
		}
		if (sent_before)
			bump(d, &d->st.resends);
		sent_before = true;
		bump(d, &d->st.sent);
		if (!send_all(d, frame, flen)) {
			disconnect(d);
			d->fails++;
			continue;
		}
		a = read_answer(d, &ack);
		if (a == ANS_STOP)
			return;
		if (a == ANS_TIMEOUT) {
			set_error(d, "no answer within %u ms", d->cfg.timeout_ms);
			disconnect(d);
			d->fails++;
			continue;
		}
		if (a == ANS_CLOSED) {
			disconnect(d);
			d->fails++;
			continue;
		}
		if (a == ANS_ACK && strcmp(ack.control_id, ctrl) != 0) {
			set_error(d, "answer acknowledges another message");
			a = ANS_BAD;
		}
		if (a == ANS_BAD) {
			bad_answer(d, seq, ctrl);
			d->fails++;
			continue;
		}
		d->bad_streak = false;
		if (ack.code == MT_HL7_ACK_REJECT) {
			set_error(d, "rejected (%s): %s", ack.code_text, ack.text);
			d->fails++;
			backoff(d);
			continue;
		}
		d->fails = 0;
		d->backoff_ms = d->cfg.retry_min_ms;
		if (ack.code == MT_HL7_ACK_ERROR) {
			char text[MT_HL7_TEXT_MAX + 8];

			snprintf(text, sizeof text, "%s %s", ack.code_text, ack.text);
			park(d, seq, ctrl, text);
			return;
		}
		if (!mark_done(d, seq, ctrl, NULL))
			return;
		bump(d, &d->st.acked);
		return;
	}
}

static void *sender(void *arg)
{
	struct dest *d = arg;
	struct mt_hl7out *o = d->o;

	while (!stopping(d)) {
		uint64_t cursor, seq = 0;
		char ctrl[CTRL_MAX], *msg = NULL;
		uint8_t *frame = NULL;
		size_t len = 0, flen = 0;
		enum mt_err e;

		pthread_mutex_lock(&o->stmu);
		cursor = d->st.cursor;
		pthread_mutex_unlock(&o->stmu);
		e = o->o.src.next(o->o.src.ctx, cursor, &seq);
		if (e == MT_ERR_NOT_FOUND || (e == MT_OK && seq <= cursor)) {
			/* idle: an idle connection may stay open; the receiver may close it */
			(void)wait_fd(d, -1, 0, o->o.poll_ms, true);
			continue;
		}
		if (e != MT_OK) {
			set_error(d, "journal: %s", mt_err_str(e));
			backoff(d);
			continue;
		}
		snprintf(ctrl, sizeof ctrl, "%s%" PRIu64, o->prefix, seq);
		e = o->o.src.render(o->o.src.ctx, seq, ctrl, &msg, &len);
		if (e == MT_ERR_NOT_FOUND) {
			(void)mark_done(d, seq, ctrl, NULL);
			continue;
		}
		if (e == MT_OK)
			e = mt_mllp_wrap(msg, len, &frame, &flen);
		free(msg);
		if (e != MT_OK) {
			if (permanent(e)) {
				char text[160];

				snprintf(text, sizeof text, "cannot render: %s", mt_err_str(e));
				park(d, seq, ctrl, text);
			} else {
				set_error(d, "render seq %" PRIu64 ": %s", seq, mt_err_str(e));
				backoff(d);
			}
			continue;
		}
		deliver(d, seq, ctrl, frame, flen);
		free(frame);
	}
	disconnect(d);
	return NULL;
}

/* ---- configuration ---- */

static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '.' || *s == '-'))
			return false;
	return true;
}

enum mt_err mt_hl7out_parse_dest(const char *text, struct mt_hl7_dest *d)
{
	const char *eq, *hs, *he, *colon;
	uint64_t port = 0;

	if (!text || !d)
		return MT_ERR_ARG;
	memset(d, 0, sizeof *d);
	while (*text == ' ' || *text == '\t')
		text++;
	eq = strchr(text, '=');
	if (!eq || (size_t)(eq - text) > MT_HL7OUT_NAME_MAX || eq == text)
		return MT_ERR_ARG;
	memcpy(d->name, text, (size_t)(eq - text));
	if (!name_ok(d->name, MT_HL7OUT_NAME_MAX))
		return MT_ERR_ARG;
	hs = eq + 1;
	if (*hs == '[') {
		he = strchr(hs, ']');
		if (!he || he[1] != ':')
			return MT_ERR_ARG;
		hs++;
		colon = he + 1;
	} else {
		colon = strrchr(hs, ':');
		if (!colon)
			return MT_ERR_ARG;
		he = colon;
		if (memchr(hs, ':', (size_t)(he - hs)))
			return MT_ERR_ARG; /* an IPv6 address needs brackets */
	}
	if (he == hs || (size_t)(he - hs) > MT_HL7OUT_HOST_MAX)
		return MT_ERR_ARG;
	memcpy(d->host, hs, (size_t)(he - hs));
	for (const char *c = d->host; *c; c++)
		if (*c <= ' ' || *c == 0x7f || *c == ',' || *c == '=')
			return MT_ERR_ARG;
	colon++;
	{
		const char *c = colon;
		size_t nd = 0;

		for (; *c >= '0' && *c <= '9' && nd < 6; c++, nd++)
			port = port * 10 + (uint64_t)(*c - '0');
		while (*c == ' ' || *c == '\t')
			c++;
		if (nd == 0 || *c != '\0' || port == 0 || port > 65535)
			return MT_ERR_ARG;
	}
	d->port = (uint16_t)port;
	return MT_OK;
}

enum mt_err mt_hl7out_parse_dests(const char *text, struct mt_hl7_dest *d, size_t cap,
                                  size_t *n)
{
	const char *p = text;

	if (!text || !d || !n)
		return MT_ERR_ARG;
	*n = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char one[MT_HL7OUT_NAME_MAX + MT_HL7OUT_HOST_MAX + 16];
		enum mt_err e;

		if (*n == cap || len >= sizeof one)
			return MT_ERR_ARG;
		memcpy(one, p, len);
		one[len] = '\0';
		e = mt_hl7out_parse_dest(one, &d[*n]);
		if (e != MT_OK)
			return e;
		for (size_t i = 0; i < *n; i++)
			if (strcmp(d[i].name, d[*n].name) == 0)
				return MT_ERR_ARG;
		(*n)++;
		if (!comma)
			return MT_OK;
		p = comma + 1;
	}
}

/* ---- lifecycle ---- */

enum mt_err mt_hl7out_start(const struct mt_hl7out_opts *opts, struct mt_hl7out **out,
                            char *why, size_t why_cap)
{
	struct mt_hl7out *o;
	enum mt_err e;

	if (!opts || !out || !opts->dests || opts->n_dests == 0 ||
	    opts->n_dests > MT_HL7OUT_DESTS_MAX || !opts->src.next || !opts->src.render ||
	    !opts->cursor_path) {
		mt_say(why, why_cap, "hl7: destinations, source and cursor_path are required");
		return MT_ERR_ARG;
	}
	if (opts->control_prefix && opts->control_prefix[0] &&
	    !name_ok(opts->control_prefix, 32)) {
		mt_say(why, why_cap, "hl7: control id prefix must be [A-Za-z0-9_.-], at most 32");
		return MT_ERR_ARG;
	}
	for (size_t i = 0; i < opts->n_dests; i++) {
		if (!name_ok(opts->dests[i].name, MT_HL7OUT_NAME_MAX) || !opts->dests[i].host[0] ||
		    opts->dests[i].port == 0) {
			mt_say(why, why_cap, "hl7: destination %zu: bad name, host or port", i + 1);
			return MT_ERR_ARG;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(opts->dests[i].name, opts->dests[j].name) == 0) {
				mt_say(why, why_cap, "hl7: destination %s given twice",
				       opts->dests[i].name);
				return MT_ERR_ARG;
			}
	}
	*out = NULL;
	o = calloc(1, sizeof *o + opts->n_dests * sizeof o->d[0]);
	if (!o)
		return MT_ERR_NOMEM;
	o->o = *opts;
	o->o.dests = NULL;
	if (!o->o.poll_ms)
		o->o.poll_ms = DEF_POLL_MS;
	snprintf(o->prefix, sizeof o->prefix, "%s",
	         opts->control_prefix ? opts->control_prefix : "MEDTRUST-");
	pthread_mutex_init(&o->dbmu, NULL);
	pthread_mutex_init(&o->stmu, NULL);
	atomic_init(&o->stop, false);
	o->n = opts->n_dests;
	for (size_t i = 0; i < o->n; i++) {
		struct dest *d = &o->d[i];

		d->o = o;
		d->cfg = opts->dests[i];
		d->fd = -1;
		d->wake[0] = d->wake[1] = -1;
		if (!d->cfg.timeout_ms)
			d->cfg.timeout_ms = DEF_TIMEOUT_MS;
		if (!d->cfg.retry_min_ms)
			d->cfg.retry_min_ms = DEF_RETRY_MIN_MS;
		if (!d->cfg.retry_max_ms)
			d->cfg.retry_max_ms = DEF_RETRY_MAX_MS;
		if (d->cfg.retry_max_ms < d->cfg.retry_min_ms)
			d->cfg.retry_max_ms = d->cfg.retry_min_ms;
		d->backoff_ms = d->cfg.retry_min_ms;
		mt_mllp_init(&d->rd, opts->frame_max);
		snprintf(d->st.name, sizeof d->st.name, "%s", d->cfg.name);
	}
	e = db_open(o, opts->cursor_path, why, why_cap);
	for (size_t i = 0; e == MT_OK && i < o->n; i++) {
		e = db_cursor(o, o->d[i].cfg.name, &o->d[i].st.cursor);
		if (e != MT_OK)
			mt_say(why, why_cap, "%s: cannot read the cursor", opts->cursor_path);
	}
	for (size_t i = 0; e == MT_OK && i < o->n; i++) {
		struct dest *d = &o->d[i];

		if (pipe(d->wake) != 0 || fcntl(d->wake[0], F_SETFL, O_NONBLOCK) != 0 ||
		    fcntl(d->wake[1], F_SETFL, O_NONBLOCK) != 0 ||
		    fcntl(d->wake[0], F_SETFD, FD_CLOEXEC) != 0 ||
		    fcntl(d->wake[1], F_SETFD, FD_CLOEXEC) != 0) {
			mt_say(why, why_cap, "hl7: pipe: %s", strerror(errno));
			e = MT_ERR_IO;
		}
	}
	for (size_t i = 0; e == MT_OK && i < o->n; i++) {
		if (pthread_create(&o->d[i].th, NULL, sender, &o->d[i]) != 0) {
			mt_say(why, why_cap, "hl7: cannot start a thread");
			e = MT_ERR_NOMEM;
			break;
		}
		o->d[i].started = true;
	}
	if (e != MT_OK) {
		mt_hl7out_stop(o);
		return e;
	}
	*out = o;
	return MT_OK;
}

void mt_hl7out_kick(struct mt_hl7out *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n; i++)
		if (o->d[i].wake[1] >= 0) {
			ssize_t w = write(o->d[i].wake[1], "k", 1);

			(void)w; /* full pipe: a wake-up is already pending */
		}
}

void mt_hl7out_stop(struct mt_hl7out *o)
{
	if (!o)
		return;
	atomic_store(&o->stop, true);
	mt_hl7out_kick(o);
	for (size_t i = 0; i < o->n; i++) {
		struct dest *d = &o->d[i];

		if (d->started)
			pthread_join(d->th, NULL);
		if (d->fd >= 0)
			close(d->fd);
		if (d->wake[0] >= 0)
			close(d->wake[0]);
		if (d->wake[1] >= 0)
			close(d->wake[1]);
		mt_mllp_free(&d->rd);
	}
	if (o->db)
		sqlite3_close(o->db);
	pthread_mutex_destroy(&o->dbmu);
	pthread_mutex_destroy(&o->stmu);
	free(o);
}

size_t mt_hl7out_stats(struct mt_hl7out *o, struct mt_hl7out_stats *out, size_t cap)
{
	uint64_t last = 0;
	bool have_last = false;

	if (!o)
		return 0;
	if (o->o.src.last && o->o.src.last(o->o.src.ctx, &last) == MT_OK)
		have_last = true;
	pthread_mutex_lock(&o->stmu);
	for (size_t i = 0; i < o->n && i < cap; i++) {
		out[i] = o->d[i].st;
		out[i].backlog = have_last && last > out[i].cursor ? last - out[i].cursor : 0;
	}
	pthread_mutex_unlock(&o->stmu);
	return o->n;
}

int mt_hl7out_stats_line(const struct mt_hl7out_stats *s, char *buf, size_t cap)
{
	return snprintf(buf, cap,
	                "hl7 %s: %s cursor=%" PRIu64 " backlog=%" PRIu64 " sent=%" PRIu64
	                " acked=%" PRIu64 " parked=%" PRIu64 " resends=%" PRIu64 "%s%s",
	                s->name, s->connected ? "connected" : "down", s->cursor, s->backlog,
	                s->sent, s->acked, s->parked, s->resends, s->last_error[0] ? " error=" : "",
	                s->last_error);
}
