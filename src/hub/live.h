/*
 * live.h — the console's live stream: events fanned out to Server-Sent
 * Events subscribers (docs/alarms.md, "the live stream").
 *
 * The clinical engine publishes an event (an alarm raised, acknowledged,
 * escalated or resolved; a new score; new vitals) with the patient's row
 * id and ward; each subscriber is a signed-in console user's open
 * stream (https.h streamed answer) with the wards it may see, or all of
 * them.  An event goes only to subscribers allowed its ward (F13): the
 * filter is applied here, at publication, so nothing reaches a stream its
 * user may not see.  Publishing never blocks on a client: bytes are queued
 * on the stream, bounded, and a stream that falls behind is cut off.
 * Every 5 s each stream gets a `tick` event, so a broken connection is
 * noticed and the browser sees that its stream is alive; at the same
 * beat a stream whose console session has ended is cut (mt_live_set_guard).
 */
#ifndef MT_HUB_LIVE_H
#define MT_HUB_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "https.h"
#include "medtrust/mt_err.h"

#define MT_LIVE_WARDS_MAX 16
#define MT_LIVE_WARD_MAX 64

struct mt_live;

MT_NODISCARD enum mt_err mt_live_new(struct mt_live **out);
/* Ends every stream. */
void mt_live_free(struct mt_live *l);

/* Who may see what: all wards, or the given ones. */
struct mt_live_filter {
	bool all;
	size_t n_wards;
	char wards[MT_LIVE_WARDS_MAX][MT_LIVE_WARD_MAX + 1];
	char user[80]; /* for the record */
	/* The console session the stream belongs to (its cookie's SHA-256):
	 * with a guard set, a stream whose session has ended — sign-out,
	 * timeout, a password change — is cut at the next heartbeat. */
	bool has_session;
	uint8_t session[32];
};

/* The guard asked at each heartbeat whether a stream's session still
 * lives (called with mt_live's lock held: it must not call mt_live). */
typedef bool (*mt_live_guard)(void *arg, const uint8_t session[32]);
void mt_live_set_guard(struct mt_live *l, mt_live_guard fn, void *arg);

/* Take stream `st` (its handle: mt_live releases it) with filter *f; the
 * stream gets a first "hello" event.  false: too many streams (the stream
 * is released). */
bool mt_live_subscribe(struct mt_live *l, struct mt_https_stream *st,
                       const struct mt_live_filter *f);

/* Send event `type` with JSON `data` (one line) to every stream allowed
 * `ward` ("" or NULL: only to streams that see everything). */
void mt_live_publish(struct mt_live *l, const char *type, const char *ward, const char *data);

/* Heartbeats and clean-up of closed streams (call every second or so). */
void mt_live_tick(struct mt_live *l);

/* Streams open now. */
size_t mt_live_count(struct mt_live *l);

#endif
