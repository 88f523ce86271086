/*
 * mt_replay.h — the anti-replay window of protocol §5 (RFC 4303 §3.4.3 style).
 *
 * W = 1024 counters per device.  A fresh window accepts any first counter,
 * 0 included.  With top T: a counter above T is new and slides the window;
 * one in (T − 1024, T] not yet seen is new; one seen is a duplicate; one
 * ≤ T − 1024 is too old.  A counter more than 2^20 above T is a "counter
 * jump" and refused without moving the window (threat A15).
 *
 * The state is 8 bytes of top (2^64 − 1 = empty) and a 128-byte bitmap where
 * bit i stands for counter T − i; mt_replay_save/load give its 136-byte
 * serial form (top big-endian, then the bitmap, bit i in byte i / 8, bit
 * i % 8) so that it can be committed in the same transaction as the data.
 *
 * Checking and marking are separate: the hub checks, decides, and marks only
 * what it will commit.  No I/O, no allocation; not thread-safe per window.
 */
#ifndef MT_REPLAY_H
#define MT_REPLAY_H

#include <stdint.h>

#include "mt_err.h"

#define MT_REPLAY_WINDOW 1024
#define MT_REPLAY_MAX_JUMP (UINT64_C(1) << 20)
#define MT_REPLAY_STATE_LEN 136
#define MT_REPLAY_EMPTY UINT64_MAX

struct mt_replay {
	uint64_t top;
	uint8_t bitmap[MT_REPLAY_WINDOW / 8];
};

enum mt_replay_verdict {
	MT_REPLAY_NEW = 0,
	MT_REPLAY_DUPLICATE,
	MT_REPLAY_TOO_OLD,
	MT_REPLAY_JUMP,
};

void mt_replay_init(struct mt_replay *w);
enum mt_replay_verdict mt_replay_check(const struct mt_replay *w, uint64_t ctr);
/* Mark `ctr` seen; only valid after mt_replay_check() returned NEW. */
void mt_replay_mark(struct mt_replay *w, uint64_t ctr);
void mt_replay_save(const struct mt_replay *w, uint8_t out[MT_REPLAY_STATE_LEN]);
/* MT_ERR_ARG when the state is inconsistent (an empty top with bits set). */
MT_NODISCARD enum mt_err mt_replay_load(struct mt_replay *w,
                                        const uint8_t in[MT_REPLAY_STATE_LEN]);

#endif
