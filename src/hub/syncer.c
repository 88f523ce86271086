/*
 * syncer.c — one thread that makes the store's WAL durable and then runs
 * what waited for it (syncer.h).
 *
 * Jobs wait in a FIFO.  The thread takes every job queued so far, fsyncs
 * the WAL once (mt_store_sync on its own connection: the fsync covers
 * every connection's frames), then runs the jobs in order.  A job queued
 * while an fsync is under way waits for the next one, so a job never runs
 * on an fsync that began before its commit.  Under load one fsync covers
 * many commits; idle, the thread sleeps.
 *
 * A failed fsync is logged; its jobs run with durable = false (the ingest
 * then sends no receipt, and devices resend).
 */
#define _POSIX_C_SOURCE 200809L

#include "syncer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "medtrust/mt_store.h"

struct job {
	struct job *next;
	mt_syncer_fn fn;
	void *arg;
};

struct mt_syncer {
	struct mt_store *store;
	pthread_t thread;
	bool started, stopping;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	unsigned long long syncs, failed;
};

static void *syncer_main(void *arg)
{
	struct mt_syncer *s = arg;

	for (;;) {
		struct job *j;
		bool ok;

		pthread_mutex_lock(&s->lock);
		while (s->head == NULL && !s->stopping)
			pthread_cond_wait(&s->cond, &s->lock);
		j = s->head;
		s->head = s->tail = NULL;
		if (j == NULL) { /* stopping, nothing left */
			pthread_mutex_unlock(&s->lock);
			break;
		}
		pthread_mutex_unlock(&s->lock);

		ok = mt_store_sync(s->store) == MT_OK;
		pthread_mutex_lock(&s->lock);
		s->syncs++;
		if (!ok)
			s->failed++;
		pthread_mutex_unlock(&s->lock);
		if (!ok)
			fprintf(stderr, "medtrustd: ALARM: the store's WAL could not be synced to "
			                "disk; nothing it holds is promised (no receipts: devices "
			                "resend)\n");
		while (j != NULL) {
			struct job *next = j->next;

			j->fn(j->arg, ok);
			free(j);
			j = next;
		}
	}
	return NULL;
}

enum mt_err mt_syncer_start(struct mt_deploy *d, struct mt_syncer **out)
{
	struct mt_syncer *s;
	enum mt_err e;

	if (d == NULL || out == NULL)
		return MT_ERR_ARG;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return MT_ERR_NOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	e = mt_deploy_open_store(d, &s->store);
	if (e == MT_OK) {
		s->started = pthread_create(&s->thread, NULL, syncer_main, s) == 0;
		if (!s->started)
			e = MT_ERR_NOMEM;
	}
	if (e != MT_OK) {
		mt_syncer_stop(s);
		return e;
	}
	*out = s;
	return MT_OK;
}

void mt_syncer_stop(struct mt_syncer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->started)
		pthread_join(s->thread, NULL);
	mt_store_close(s->store);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

enum mt_err mt_syncer_after(struct mt_syncer *s, mt_syncer_fn fn, void *arg)
{
	struct job *j;

	if (s == NULL || fn == NULL)
		return MT_ERR_ARG;
	j = calloc(1, sizeof *j);
	if (j == NULL)
		return MT_ERR_NOMEM;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&s->lock);
	if (s->tail != NULL)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return MT_OK;
}

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, durable;
};

static void wake(void *arg, bool durable)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->lock);
	w->done = true;
	w->durable = durable;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

enum mt_err mt_syncer_wait(struct mt_syncer *s)
{
	struct waiter w = {.done = false};
	enum mt_err e;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	e = mt_syncer_after(s, wake, &w);
	if (e == MT_OK) {
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
		e = w.durable ? MT_OK : MT_ERR_STORE_FULL;
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return e;
}

void mt_syncer_counts(struct mt_syncer *s, unsigned long long *syncs, unsigned long long *failed)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	if (syncs != NULL)
		*syncs = s->syncs;
	if (failed != NULL)
		*failed = s->failed;
	pthread_mutex_unlock(&s->lock);
}
