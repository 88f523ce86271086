/*
 * replay.c — the anti-replay window (protocol §5, RFC 4303 §3.4.3).
 *
 * The window remembers the highest counter seen (top T) and which of the
 * 1024 counters T, T−1, …, T−1023 were seen: bit i of the bitmap is counter
 * T − i.  Sliding up by s shifts the bitmap by s bits towards older counters
 * and forgets those that fall out; a slide of 1024 or more clears it.
 *
 * The window never wraps: counters are < 2^63 by the message schema, and a
 * jump of more than 2^20 above T is refused as a "counter jump" (threat A15)
 * so that one forged or buggy counter cannot push the window beyond the
 * device's real counters and lock it out.  A fresh window (top = 2^64 − 1)
 * accepts any first counter.
 */
#include "medtrust/mt_replay.h"

#include <stdbool.h>
#include <string.h>

void mt_replay_init(struct mt_replay *w)
{
	w->top = MT_REPLAY_EMPTY;
	memset(w->bitmap, 0, sizeof(w->bitmap));
}

static bool bit_get(const struct mt_replay *w, uint64_t i)
{
	return (w->bitmap[i / 8] >> (i % 8)) & 1;
}

static void bit_set(struct mt_replay *w, uint64_t i)
{
	w->bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
}

enum mt_replay_verdict mt_replay_check(const struct mt_replay *w, uint64_t ctr)
{
	if (w->top == MT_REPLAY_EMPTY)
		return MT_REPLAY_NEW;
	if (ctr > w->top)
		return ctr - w->top > MT_REPLAY_MAX_JUMP ? MT_REPLAY_JUMP : MT_REPLAY_NEW;
	uint64_t back = w->top - ctr;
	if (back >= MT_REPLAY_WINDOW)
		return MT_REPLAY_TOO_OLD;
	return bit_get(w, back) ? MT_REPLAY_DUPLICATE : MT_REPLAY_NEW;
}

/* Shift the bitmap so that bit i becomes bit i + s (older), 0 < s < 1024:
 * a left shift of a little-endian bit string, a byte at a time. */
static void slide(struct mt_replay *w, uint64_t s)
{
	const size_t n = sizeof(w->bitmap), B = (size_t)(s / 8);
	const unsigned b = (unsigned)(s % 8);
	for (size_t j = n; j-- > 0;) {
		unsigned v = 0;
		if (j >= B) {
			v = (unsigned)w->bitmap[j - B] << b;
			if (b != 0 && j - B >= 1)
				v |= (unsigned)w->bitmap[j - B - 1] >> (8 - b);
		}
		w->bitmap[j] = (uint8_t)v;
	}
}

void mt_replay_mark(struct mt_replay *w, uint64_t ctr)
{
	if (w->top == MT_REPLAY_EMPTY) {
		memset(w->bitmap, 0, sizeof(w->bitmap));
		w->top = ctr;
		bit_set(w, 0);
		return;
	}
	if (ctr > w->top) {
		uint64_t s = ctr - w->top;
		if (s >= MT_REPLAY_WINDOW)
			memset(w->bitmap, 0, sizeof(w->bitmap));
		else
			slide(w, s);
		w->top = ctr;
		bit_set(w, 0);
		return;
	}
	uint64_t back = w->top - ctr;
	if (back < MT_REPLAY_WINDOW)
		bit_set(w, back);
}

void mt_replay_save(const struct mt_replay *w, uint8_t out[MT_REPLAY_STATE_LEN])
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(w->top >> (56 - 8 * i));
	memcpy(out + 8, w->bitmap, sizeof(w->bitmap));
}

enum mt_err mt_replay_load(struct mt_replay *w, const uint8_t in[MT_REPLAY_STATE_LEN])
{
	uint64_t top = 0;
	for (int i = 0; i < 8; i++)
		top = (top << 8) | in[i];
	const uint8_t *bm = in + 8;
	bool any = false, newest = (bm[0] & 1) != 0;
	for (size_t i = 0; i < sizeof(w->bitmap); i++)
		any = any || bm[i] != 0;
	/* An empty window has no bits; a non-empty one has seen its top. */
	if ((top == MT_REPLAY_EMPTY && any) || (top != MT_REPLAY_EMPTY && !newest))
		return MT_ERR_ARG;
	w->top = top;
	memcpy(w->bitmap, bm, sizeof(w->bitmap));
	return MT_OK;
}
