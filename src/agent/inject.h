/*
 * inject.h — `medtrust-device inject`, the attacker's-side test tool
 * (inject.c says what it does and why it exists).
 */
#ifndef MT_AGENT_INJECT_H
#define MT_AGENT_INJECT_H

#include <stddef.h>

struct mt_inject_opts {
	const char *dir, *hub_url, *hub_ca, *broker; /* broker NULL: the bundle's */
	const char *leaf;                            /* "vitals", "alert", ... */
	unsigned wait_s, repeat;
	const char *const *files;
	size_t n_files;
};

/* A process exit status: 0 all published, 1 otherwise. */
int mt_inject_run(const struct mt_inject_opts *o);

#endif
