/*
 * ratelimit.h — token buckets keyed by a short string (a source address,
 * a device id), for the hub's onboarding endpoints (threat D10).
 *
 * A fixed table of MT_RL_SLOTS buckets, open addressing over a keyed hash
 * (a per-process random key, so an attacker cannot aim collisions); when a
 * probe finds no free slot the least recently used one in the probe window
 * is taken over, so memory stays bounded whatever the number of sources —
 * at worst an evicted source starts again with a full bucket.  Not
 * thread-safe: the caller serialises.
 */
#ifndef MT_HUB_RATELIMIT_H
#define MT_HUB_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define MT_RL_SLOTS 8192
#define MT_RL_PROBE 16
#define MT_RL_KEY_MAX 72

struct mt_rl_slot {
	char key[MT_RL_KEY_MAX];
	double tokens;
	uint64_t last_ms;
	uint64_t refused; /* refusals since the bucket last had a token */
};

struct mt_rl {
	double rate;  /* tokens per second */
	double burst; /* bucket size */
	uint64_t hash_key[2];
	struct mt_rl_slot *slots;
};

/* rate > 0, burst ≥ 1.  false when out of memory. */
bool mt_rl_init(struct mt_rl *rl, double rate, double burst);
void mt_rl_free(struct mt_rl *rl);

/* Take one token for `key` at now_ms: true when allowed.  When refused,
 * *refused (may be NULL) is the number of refusals in a row for this key,
 * 1 for the first (so a caller can record the first and every Nth). */
bool mt_rl_take(struct mt_rl *rl, const char *key, uint64_t now_ms, uint64_t *refused);

#endif
