/*
 * ratelimit.c — token buckets in a bounded table (ratelimit.h).
 *
 * The hash is SipHash-like mixing of 64-bit words with a random key (from
 * OpenSSL's RAND_bytes at init); it need not be cryptographic, only not
 * predictable from outside.  Buckets refill continuously: tokens =
 * min(burst, tokens + rate × elapsed).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "ratelimit.h"

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

static uint64_t hash(const struct mt_rl *rl, const char *key)
{
	uint64_t h = rl->hash_key[0];
	size_t n = strlen(key);

	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = 0;
		size_t k = n - i < 8 ? n - i : 8;

		memcpy(&w, key + i, k);
		h = mix(h, w);
	}
	return mix(h, rl->hash_key[1] ^ n);
}

bool mt_rl_init(struct mt_rl *rl, double rate, double burst)
{
	memset(rl, 0, sizeof *rl);
	if (!(rate > 0) || !(burst >= 1))
		return false;
	rl->rate = rate;
	rl->burst = burst;
	if (RAND_bytes((unsigned char *)rl->hash_key, sizeof rl->hash_key) != 1)
		return false;
	rl->slots = calloc(MT_RL_SLOTS, sizeof *rl->slots);
	return rl->slots != NULL;
}

void mt_rl_free(struct mt_rl *rl)
{
	free(rl->slots);
	rl->slots = NULL;
}

bool mt_rl_take(struct mt_rl *rl, const char *key, uint64_t now_ms, uint64_t *refused)
{
	uint64_t h = hash(rl, key);
	struct mt_rl_slot *s = NULL, *oldest = NULL;
	size_t klen = strlen(key);

	if (klen >= MT_RL_KEY_MAX)
		klen = MT_RL_KEY_MAX - 1;
	for (size_t i = 0; i < MT_RL_PROBE; i++) {
		struct mt_rl_slot *c = &rl->slots[(h + i) % MT_RL_SLOTS];

		if (c->key[0] == '\0' ||
		    (strncmp(c->key, key, klen) == 0 && c->key[klen] == '\0')) {
			s = c;
			break;
		}
		if (oldest == NULL || c->last_ms < oldest->last_ms)
			oldest = c;
	}
	if (s == NULL)
		s = oldest;
	if (s->key[0] == '\0' || strncmp(s->key, key, klen) != 0 || s->key[klen] != '\0') {
		memcpy(s->key, key, klen);
		s->key[klen] = '\0';
		s->tokens = rl->burst;
		s->last_ms = now_ms;
		s->refused = 0;
	}
	if (now_ms > s->last_ms) {
		s->tokens += rl->rate * (double)(now_ms - s->last_ms) / 1000.0;
		if (s->tokens > rl->burst)
			s->tokens = rl->burst;
		s->last_ms = now_ms;
	}
	if (s->tokens >= 1.0) {
		s->tokens -= 1.0;
		s->refused = 0;
		return true;
	}
	s->refused++;
	if (refused)
		*refused = s->refused;
	return false;
}
