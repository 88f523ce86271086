/*
 * live.c — fan-out of the console's live events to its streams (live.h).
 *
 * A fixed table of subscribers under one mutex.  Publication formats the
 * event once ("event: T\ndata: JSON\n\n") and queues it on every allowed
 * stream; mt_https_stream_send only appends to a bounded buffer and wakes
 * the stream's worker, so the publisher (the clinical engine) is never
 * held up by a slow browser.  A stream whose send fails (client gone, or
 * too far behind) is released at once.
 */
#define _POSIX_C_SOURCE 200809L

#include "live.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBS_MAX 1024
#define HEARTBEAT_MS 5000

struct sub {
	struct mt_https_stream *st; /* NULL: free slot */
	struct mt_live_filter f;
};

struct mt_live {
	pthread_mutex_t lock;
	struct sub subs[SUBS_MAX];
	size_t n;
	uint64_t last_beat_ms;
	mt_live_guard guard;
	void *guard_arg;
};

void mt_live_set_guard(struct mt_live *l, mt_live_guard fn, void *arg)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	l->guard = fn;
	l->guard_arg = arg;
	pthread_mutex_unlock(&l->lock);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

enum mt_err mt_live_new(struct mt_live **out)
{
	struct mt_live *l;

	if (out == NULL)
		return MT_ERR_ARG;
	l = calloc(1, sizeof *l);
	if (l == NULL)
		return MT_ERR_NOMEM;
	pthread_mutex_init(&l->lock, NULL);
	l->last_beat_ms = mono_ms();
	*out = l;
	return MT_OK;
}

void mt_live_free(struct mt_live *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < SUBS_MAX; i++)
		if (l->subs[i].st != NULL)
			mt_https_stream_release(l->subs[i].st);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static void drop(struct mt_live *l, struct sub *s)
{
	mt_https_stream_release(s->st);
	s->st = NULL;
	l->n--;
}

bool mt_live_subscribe(struct mt_live *l, struct mt_https_stream *st,
                       const struct mt_live_filter *f)
{
	static const char hello[] = "retry: 1000\nevent: hello\ndata: {}\n\n";
	bool ok = false;

	if (l == NULL || st == NULL || f == NULL) {
		mt_https_stream_release(st);
		return false;
	}
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < SUBS_MAX; i++) {
		struct sub *s = &l->subs[i];

		if (s->st != NULL)
			continue;
		s->st = st;
		s->f = *f;
		l->n++;
		ok = true;
		if (!mt_https_stream_send(st, hello, sizeof hello - 1))
			drop(l, s);
		break;
	}
	pthread_mutex_unlock(&l->lock);
	if (!ok)
		mt_https_stream_release(st);
	return ok;
}

static bool allowed(const struct mt_live_filter *f, const char *ward)
{
	if (f->all)
		return true;
	if (ward == NULL || ward[0] == '\0')
		return false;
	for (size_t i = 0; i < f->n_wards; i++)
		if (strcmp(f->wards[i], ward) == 0)
			return true;
	return false;
}

void mt_live_publish(struct mt_live *l, const char *type, const char *ward, const char *data)
{
	char *msg;
	size_t len;

	if (l == NULL || type == NULL || data == NULL || strchr(data, '\n') != NULL ||
	    strchr(type, '\n') != NULL)
		return;
	len = strlen(type) + strlen(data) + 32;
	msg = malloc(len);
	if (msg == NULL)
		return;
	len = (size_t)snprintf(msg, len, "event: %s\ndata: %s\n\n", type, data);
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < SUBS_MAX && l->n > 0; i++) {
		struct sub *s = &l->subs[i];

		if (s->st != NULL && allowed(&s->f, ward) && !mt_https_stream_send(s->st, msg, len))
			drop(l, s);
	}
	pthread_mutex_unlock(&l->lock);
	free(msg);
}

void mt_live_tick(struct mt_live *l)
{
	static const char beat[] = "event: tick\ndata: {}\n\n";
	uint64_t now = mono_ms();
	bool beat_now;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	beat_now = now - l->last_beat_ms >= HEARTBEAT_MS;
	if (beat_now)
		l->last_beat_ms = now;
	for (size_t i = 0; i < SUBS_MAX && l->n > 0; i++) {
		struct sub *s = &l->subs[i];

		if (s->st == NULL)
			continue;
		if (!mt_https_stream_open(s->st) ||
		    (beat_now && s->f.has_session && l->guard != NULL &&
		     !l->guard(l->guard_arg, s->f.session)) ||
		    (beat_now && !mt_https_stream_send(s->st, beat, sizeof beat - 1)))
			drop(l, s);
	}
	pthread_mutex_unlock(&l->lock);
}

size_t mt_live_count(struct mt_live *l)
{
	size_t n;

	if (l == NULL)
		return 0;
	pthread_mutex_lock(&l->lock);
	n = l->n;
	pthread_mutex_unlock(&l->lock);
	return n;
}
