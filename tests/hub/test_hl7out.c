/*
 * test_hl7out.c — the HL7 sender against a scripted MLLP receiver in a
 * thread of this test (hl7out.h; clinical.md §4; threats G05, G10).
 *
 * The source is an array of N journal entries rendered on demand; the
 * receiver records every frame it gets (control id, in order) and answers
 * as the scenario's script says for that control id and attempt: AA, AE,
 * AR, nothing, garbage, an ACK for another id, or a 1.5 MiB frame.  Each
 * scenario then checks, from the receiver's side, that everything was
 * delivered in seq order, that what was accepted was accepted once, that
 * nothing was marked sent without a valid ACK (a message answered badly is
 * seen again with the same MSH-10), and the sender's durable cursor.
 * Timeouts are short (300 ms) so the whole file runs in a few seconds.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "hl7out.h"
#include "medtrust/mt_hl7.h"

enum act { A_AA, A_AE, A_AR, A_NONE, A_GARBAGE, A_WRONGID, A_HUGE };

struct lis {
	int lfd;
	uint16_t port;
	pthread_t th;
	atomic_bool stop;
	pthread_mutex_t mu;
	char got[512][MT_HL7_ID_MAX + 1]; /* every frame, in order */
	size_t n_got;
	char accepted[512][MT_HL7_ID_MAX + 1]; /* answered AA */
	size_t n_accepted;
	unsigned connections;
	enum act (*script)(const char *ctrl, unsigned attempt);
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static unsigned attempts(struct lis *l, const char *ctrl)
{
	unsigned n = 0;

	for (size_t i = 0; i < l->n_got; i++)
		if (strcmp(l->got[i], ctrl) == 0)
			n++;
	return n;
}

static void answer(int fd, const struct mt_hl7_header *h, enum act a)
{
	struct mt_hl7_header hh = *h;
	char *ack = NULL;
	uint8_t *fr = NULL;
	size_t alen = 0, flen = 0;
	const char *code = a == A_AE ? "AE" : a == A_AR ? "AR" : "AA";

	if (a == A_NONE)
		return;
	if (a == A_GARBAGE) {
		(void)!send(fd, "\x0bgarbage\r\x1c\r", 12, MSG_NOSIGNAL);
		return;
	}
	if (a == A_HUGE) {
		size_t n = 1536 * 1024;
		uint8_t *big = malloc(n);

		memset(big, 'A', n);
		big[0] = 0x0b;
		for (size_t off = 0; off < n;) {
			ssize_t w = send(fd, big + off, n - off, MSG_NOSIGNAL);

			if (w <= 0)
				break;
			off += (size_t)w;
		}
		free(big);
		return;
	}
	if (a == A_WRONGID)
		snprintf(hh.control_id, sizeof hh.control_id, "MEDTRUST-999999");
	assert_int_equal(mt_hl7_build_ack(&hh, "EHR", "H", 1, "A1", code, "why", &ack, &alen), MT_OK);
	assert_int_equal(mt_mllp_wrap(ack, alen, &fr, &flen), MT_OK);
	(void)!send(fd, fr, flen, MSG_NOSIGNAL);
	free(ack);
	free(fr);
}

static void *lis_run(void *arg)
{
	struct lis *l = arg;

	while (!atomic_load(&l->stop)) {
		struct pollfd p = {l->lfd, POLLIN, 0};
		struct mt_mllp_reader rd;
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(l->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&l->mu);
		l->connections++;
		pthread_mutex_unlock(&l->mu);
		mt_mllp_init(&rd, 0);
		while (!atomic_load(&l->stop)) {
			struct pollfd q = {fd, POLLIN, 0};
			uint8_t buf[8192];
			ssize_t n;
			size_t off = 0;
			bool done = false;

			if (poll(&q, 1, 50) <= 0)
				continue;
			n = recv(fd, buf, sizeof buf, 0);
			if (n <= 0)
				break;
			while (off < (size_t)n && !done) {
				const uint8_t *fr;
				size_t used, flen;
				struct mt_hl7_header h;
				enum act a;

				if (mt_mllp_feed(&rd, buf + off, (size_t)n - off, &used, &fr, &flen) != MT_OK) {
					done = true;
					break;
				}
				off += used;
				if (!fr)
					continue;
				assert_int_equal(mt_hl7_parse_header(fr, flen, &h), MT_OK);
				pthread_mutex_lock(&l->mu);
				a = l->script ? l->script(h.control_id, attempts(l, h.control_id)) : A_AA;
				if (l->n_got < 512)
					snprintf(l->got[l->n_got++], sizeof l->got[0], "%s", h.control_id);
				if (a == A_AA && l->n_accepted < 512)
					snprintf(l->accepted[l->n_accepted++], sizeof l->accepted[0], "%s", h.control_id);
				pthread_mutex_unlock(&l->mu);
				answer(fd, &h, a);
			}
			if (done)
				break;
		}
		mt_mllp_free(&rd);
		close(fd);
	}
	return NULL;
}

static uint16_t free_port(void)
{
	struct sockaddr_in a = {0};
	socklen_t al = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void lis_start(struct lis *l, uint16_t port, enum act (*script)(const char *, unsigned))
{
	struct sockaddr_in a = {0};
	int one = 1;

	memset(l, 0, sizeof *l);
	pthread_mutex_init(&l->mu, NULL);
	l->script = script;
	l->lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	assert_int_equal(bind(l->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(l->lfd, 8), 0);
	l->port = port;
	atomic_init(&l->stop, false);
	assert_int_equal(pthread_create(&l->th, NULL, lis_run, l), 0);
}

static void lis_stop(struct lis *l)
{
	atomic_store(&l->stop, true);
	pthread_join(l->th, NULL);
	close(l->lfd);
	pthread_mutex_destroy(&l->mu);
}

/* ---- the fake journal ---- */

struct journal {
	uint64_t n;
	uint64_t not_found; /* a seq with nothing to send, or 0 */
	uint64_t unrenderable;
};

static enum mt_err j_next(void *ctx, uint64_t after, uint64_t *seq)
{
	struct journal *j = ctx;

	if (after >= j->n)
		return MT_ERR_NOT_FOUND;
	*seq = after + 1;
	return MT_OK;
}

static enum mt_err j_last(void *ctx, uint64_t *seq)
{
	*seq = ((struct journal *)ctx)->n;
	return MT_OK;
}

static enum mt_err j_render(void *ctx, uint64_t seq, const char *ctrl, char **msg, size_t *len)
{
	struct journal *j = ctx;
	char buf[256];
	int k;

	if (seq == j->not_found)
		return MT_ERR_NOT_FOUND;
	if (seq == j->unrenderable)
		return MT_ERR_HL7_TEXT;
	k = snprintf(buf, sizeof buf,
	             "MSH|^~\\&|MEDTRUST|H|||20241203||ORU^R01^ORU_R01|%s|P|2.6\rOBX|1|NM|x||%" PRIu64
	             "\r",
	             ctrl, seq);
	*msg = strdup(buf);
	*len = (size_t)k;
	return *msg ? MT_OK : MT_ERR_NOMEM;
}

/* ---- the sender under test ---- */

struct world {
	struct journal j;
	struct lis l;
	struct mt_hl7out *o;
	char db[256];
	uint16_t port;
	unsigned parks, bad_answers;
	uint64_t parked_seq;
	char parked_text[128];
};

static void on_park(void *ctx, const char *dest, uint64_t seq, const char *ctrl, const char *text)
{
	struct world *w = ctx;

	assert_string_equal(dest, "ehr");
	assert_int_equal(strncmp(ctrl, "MEDTRUST-", 9), 0);
	w->parks++;
	w->parked_seq = seq;
	snprintf(w->parked_text, sizeof w->parked_text, "%s", text);
}

static void on_audit(void *ctx, const char *actor, const char *action, const char *subject,
                     enum mt_audit_outcome outcome, const char *detail)
{
	struct world *w = ctx;

	(void)outcome;
	(void)detail;
	assert_string_equal(actor, "hub");
	assert_string_equal(subject, "ehr");
	if (strcmp(action, "hl7.bad_answer") == 0)
		w->bad_answers++;
}

static void sender_start(struct world *w)
{
	struct mt_hl7_dest d = {0};
	struct mt_hl7out_opts o = {0};
	char why[256] = "";

	snprintf(d.name, sizeof d.name, "ehr");
	snprintf(d.host, sizeof d.host, "127.0.0.1");
	d.port = w->port;
	d.timeout_ms = 300;
	d.retry_min_ms = 30;
	d.retry_max_ms = 150;
	o.dests = &d;
	o.n_dests = 1;
	o.src = (struct mt_hl7_source){j_next, j_render, &w->j, j_last};
	o.cursor_path = w->db;
	o.poll_ms = 50;
	o.audit = on_audit;
	o.audit_ctx = w;
	o.on_park = on_park;
	o.park_ctx = w;
	assert_int_equal(mt_hl7out_start(&o, &w->o, why, sizeof why), MT_OK);
}

static struct mt_hl7out_stats stats(struct world *w)
{
	struct mt_hl7out_stats s;

	assert_int_equal(mt_hl7out_stats(w->o, &s, 1), 1);
	return s;
}

/* Wait until the cursor reaches `seq` (at most 20 s). */
static void wait_cursor(struct world *w, uint64_t seq)
{
	for (int i = 0; i < 2000; i++) {
		if (stats(w).cursor >= seq)
			return;
		sleep_ms(10);
	}
	struct mt_hl7out_stats s = stats(w);
	char line[512];

	mt_hl7out_stats_line(&s, line, sizeof line);
	fail_msg("cursor did not reach %" PRIu64 ": %s", seq, line);
}

static void world_init(struct world *w, uint64_t n, enum act (*script)(const char *, unsigned))
{
	static unsigned k;

	memset(w, 0, sizeof *w);
	w->j.n = n;
	snprintf(w->db, sizeof w->db, "/tmp/mt_test_hl7out_%d_%u.db", (int)getpid(), k++);
	unlink(w->db);
	w->port = free_port();
	if (script)
		lis_start(&w->l, w->port, script);
}

static void world_end(struct world *w)
{
	mt_hl7out_stop(w->o);
	lis_stop(&w->l);
	unlink(w->db);
}

/* The receiver accepted exactly MEDTRUST-1..n (less `skip`), in order, once each. */
static void check_in_order(struct world *w, uint64_t n, uint64_t skip1, uint64_t skip2)
{
	size_t k = 0;

	pthread_mutex_lock(&w->l.mu);
	for (uint64_t s = 1; s <= n; s++) {
		char want[32];

		if (s == skip1 || s == skip2)
			continue;
		snprintf(want, sizeof want, "MEDTRUST-%" PRIu64, s);
		assert_true(k < w->l.n_accepted);
		assert_string_equal(w->l.accepted[k], want);
		k++;
	}
	assert_int_equal(k, w->l.n_accepted);
	pthread_mutex_unlock(&w->l.mu);
}

static uint64_t db_cursor(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	uint64_t v = 0;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq FROM hl7_cursor WHERE dest='ehr'", -1, &st,
	                                    NULL),
	                 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static enum act all_aa(const char *c, unsigned a)
{
	(void)c;
	(void)a;
	return A_AA;
}

/* All N delivered in order; the control id is MEDTRUST-<seq>. */
static void test_all_in_order(void **state)
{
	struct world w;

	(void)state;
	world_init(&w, 50, all_aa);
	sender_start(&w);
	wait_cursor(&w, 50);
	struct mt_hl7out_stats s = stats(&w);
	assert_int_equal(s.acked, 50);
	assert_int_equal(s.sent, 50);
	assert_int_equal(s.resends, 0);
	assert_int_equal(s.backlog, 0);
	check_in_order(&w, 50, 0, 0);
	/* new entries and a kick: delivered at once */
	w.j.n = 60;
	mt_hl7out_kick(w.o);
	wait_cursor(&w, 60);
	check_in_order(&w, 60, 0, 0);
	assert_int_equal(db_cursor(w.db), 60);
	printf("hl7out: 60 messages delivered in order over %u connection(s)\n", w.l.connections);
	world_end(&w);
}

/* The receiver is down, then comes back: everything afterwards, in order,
 * none missing, none twice. */
static void test_receiver_down(void **state)
{
	struct world w;

	(void)state;
	world_init(&w, 20, NULL);
	sender_start(&w);
	sleep_ms(600);
	struct mt_hl7out_stats s = stats(&w);
	assert_false(s.connected);
	assert_int_equal(s.cursor, 0);
	assert_int_equal(s.backlog, 20);
	assert_true(s.last_error[0] != '\0');
	lis_start(&w.l, w.port, all_aa);
	wait_cursor(&w, 20);
	check_in_order(&w, 20, 0, 0);
	assert_int_equal(w.l.n_got, 20); /* nothing was sent twice */
	world_end(&w);
}

static enum act ae_on_3(const char *c, unsigned a)
{
	(void)a;
	return strcmp(c, "MEDTRUST-3") == 0 ? A_AE : A_AA;
}

/* AE: parked, on_park called, audited, the cursor moves on. */
static void test_ae_parks(void **state)
{
	struct world w;

	(void)state;
	world_init(&w, 6, ae_on_3);
	w.j.not_found = 5; /* nothing to send for seq 5: skipped */
	sender_start(&w);
	wait_cursor(&w, 6);
	assert_int_equal(w.parks, 1);
	assert_int_equal(w.parked_seq, 3);
	assert_string_equal(w.parked_text, "AE why");
	assert_int_equal(stats(&w).parked, 1);
	check_in_order(&w, 6, 3, 5);
	mt_hl7out_stop(w.o);
	w.o = NULL;
	{
		sqlite3 *db;
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_open(w.db, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db,
		                                    "SELECT seq, control_id, text FROM hl7_parked "
		                                    "WHERE dest='ehr'",
		                                    -1, &st, NULL),
		                 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int64(st, 0), 3);
		assert_string_equal((const char *)sqlite3_column_text(st, 1), "MEDTRUST-3");
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	world_end(&w);
}

static enum act ar_then_none(const char *c, unsigned a)
{
	if (strcmp(c, "MEDTRUST-2") == 0 && a == 0)
		return A_AR;
	if (strcmp(c, "MEDTRUST-4") == 0 && a == 0)
		return A_NONE;
	return A_AA;
}

/* AR: resent unchanged; no answer: timeout, reconnect, same MSH-10. */
static void test_G05_ar_and_no_answer(void **state)
{
	struct world w;

	(void)state;
	world_init(&w, 5, ar_then_none);
	sender_start(&w);
	wait_cursor(&w, 5);
	check_in_order(&w, 5, 0, 0);
	assert_int_equal(attempts(&w.l, "MEDTRUST-2"), 2);
	assert_int_equal(attempts(&w.l, "MEDTRUST-4"), 2);
	assert_true(w.l.connections >= 2); /* the timeout dropped the connection */
	assert_int_equal(stats(&w).resends, 2);
	assert_int_equal(w.parks, 0);
	world_end(&w);
}

static enum act bad_answers(const char *c, unsigned a)
{
	if (strcmp(c, "MEDTRUST-2") == 0 && a == 0)
		return A_GARBAGE;
	if (strcmp(c, "MEDTRUST-3") == 0 && a == 0)
		return A_WRONGID;
	if (strcmp(c, "MEDTRUST-4") == 0 && a == 0)
		return A_HUGE;
	return A_AA;
}

/* G05: garbage, an ACK of another id, a 1.5 MiB frame: never marked sent. */
static void test_G05_bad_answers(void **state)
{
	struct world w;

	(void)state;
	world_init(&w, 5, bad_answers);
	sender_start(&w);
	wait_cursor(&w, 5);
	check_in_order(&w, 5, 0, 0);
	assert_int_equal(attempts(&w.l, "MEDTRUST-2"), 2);
	assert_int_equal(attempts(&w.l, "MEDTRUST-3"), 2);
	assert_int_equal(attempts(&w.l, "MEDTRUST-4"), 2);
	assert_true(w.bad_answers >= 1);
	assert_int_equal(stats(&w).acked, 5);
	world_end(&w);
}

static atomic_bool hold3;

static enum act hold_3(const char *c, unsigned a)
{
	(void)a;
	return strcmp(c, "MEDTRUST-3") == 0 && atomic_load(&hold3) ? A_NONE : A_AA;
}

/* Restart: stop while seq 3 is unanswered, start again on the same cursor
 * database: 3 is resent with the same control id, then 4.. follow. */
static void test_G10_restart_same_control_ids(void **state)
{
	struct world w;

	(void)state;
	atomic_store(&hold3, true);
	world_init(&w, 8, hold_3);
	sender_start(&w);
	wait_cursor(&w, 2);
	sleep_ms(400);
	assert_int_equal(stats(&w).cursor, 2);
	mt_hl7out_stop(w.o);
	w.o = NULL;
	assert_int_equal(db_cursor(w.db), 2);
	atomic_store(&hold3, false);
	sender_start(&w);
	assert_int_equal(stats(&w).cursor, 2);
	wait_cursor(&w, 8);
	check_in_order(&w, 8, 0, 0);
	assert_true(attempts(&w.l, "MEDTRUST-3") >= 2);
	assert_int_equal(attempts(&w.l, "MEDTRUST-1"), 1); /* nothing before the cursor again */
	assert_int_equal(attempts(&w.l, "MEDTRUST-2"), 1);
	world_end(&w);
}

static void test_unrenderable(void **state)
{
	struct world w;

	(void)state;
	world_init(&w, 3, all_aa);
	w.j.unrenderable = 2;
	sender_start(&w);
	wait_cursor(&w, 3);
	assert_int_equal(w.parks, 1);
	assert_int_equal(w.parked_seq, 2);
	assert_non_null(strstr(w.parked_text, "cannot render"));
	check_in_order(&w, 3, 2, 0);
	world_end(&w);
}

static void test_parse_dests(void **state)
{
	struct mt_hl7_dest d[4];
	size_t n = 0;

	(void)state;
	assert_int_equal(mt_hl7out_parse_dests("epic=10.0.0.5:2575,backup=[::1]:6661", d, 4, &n),
	                 MT_OK);
	assert_int_equal(n, 2);
	assert_string_equal(d[0].name, "epic");
	assert_string_equal(d[0].host, "10.0.0.5");
	assert_int_equal(d[0].port, 2575);
	assert_string_equal(d[1].host, "::1");
	assert_int_equal(d[1].port, 6661);
	static const char *const bad[] = {"", "epic", "epic=host", "epic=host:0", "epic=host:65536",
	                                  "=host:1", "e pic=host:1", "a=h:1,a=h:2", "a=::1:5",
	                                  "a=h:1x", "a=h o:1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(mt_hl7out_parse_dests(bad[i], d, 4, &n), MT_ERR_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_dests),   cmocka_unit_test(test_all_in_order),
		cmocka_unit_test(test_receiver_down), cmocka_unit_test(test_ae_parks),
		cmocka_unit_test(test_G05_ar_and_no_answer), cmocka_unit_test(test_G05_bad_answers),
		cmocka_unit_test(test_G10_restart_same_control_ids),       cmocka_unit_test(test_unrenderable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
