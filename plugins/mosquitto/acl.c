/*
 * acl.c — the topic decision of medtrust_mosq (acl.h; protocol §3).
 *
 * The topic tree of MTP/1 is small and fixed, so the decision is written
 * as exact shapes rather than as patterns: a topic is split on '/' into at
 * most MAX_LEVELS levels, and each allowed shape names its number of
 * levels and, level by level, the bytes it must hold — a literal, the
 * client's own id, any valid device id, or one of a short list of leaf
 * names.  Nothing is "under" a prefix: mt/v1/<id>/up/vitals/x,
 * mt/v1/<id>/up/ and mt/v1/<id>/up/../vitals all have the wrong number of
 * levels or a leaf that is not in the list, and a level is never compared
 * by prefix, so an id that begins another id matches only itself.
 *
 * MQTT wildcards need no special case: a publish topic holding '+' or '#'
 * matches no shape (they are not device-id characters nor leaf names),
 * and the only wildcard filters allowed are spelt out whole (a device's
 * own down/# and down/+, and the hub's shared subscription).
 *
 * Invariants: nothing is read past MT_MOSQ_TOPIC_MAX bytes of a topic;
 * no allocation; refusing is the default of every branch.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "acl.h"
#include "medtrust/mt_message.h"

#define MAX_LEVELS 8

/* One level: p[0..len). */
struct level {
	const char *p;
	size_t len;
};

static const char *const up_kinds[] = {"vitals", "alert", "status", "ack"};
static const char *const down_kinds[] = {"cmd", "rcpt"};
static const char *const down_filters[] = {"#", "+", "cmd", "rcpt"};

bool mt_mosq_id_valid(const char *id)
{
	size_t n;

	if (id == NULL)
		return false;
	n = strnlen(id, MT_DEVICE_ID_MAX + 1);
	return n >= 1 && n <= MT_DEVICE_ID_MAX && mt_device_id_valid(id, n);
}

/* Split topic into levels; -1 when it has more than MAX_LEVELS levels or
 * more than MT_MOSQ_TOPIC_MAX bytes. */
static int split(const char *topic, struct level lv[MAX_LEVELS])
{
	size_t n = strnlen(topic, MT_MOSQ_TOPIC_MAX + 1);
	size_t start = 0;
	int count = 0;

	if (n > MT_MOSQ_TOPIC_MAX)
		return -1;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && topic[i] != '/')
			continue;
		if (count == MAX_LEVELS)
			return -1;
		lv[count].p = topic + start;
		lv[count].len = i - start;
		count++;
		start = i + 1;
	}
	return count;
}

static bool is(const struct level *l, const char *s)
{
	size_t n = strlen(s);

	return l->len == n && memcmp(l->p, s, n) == 0;
}

static bool one_of(const struct level *l, const char *const *names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (is(l, names[i]))
			return true;
	return false;
}

/* A level holding a valid device id. */
static bool any_id(const struct level *l)
{
	return l->len >= 1 && l->len <= MT_DEVICE_ID_MAX && mt_device_id_valid(l->p, l->len);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Five levels mt/v1/<id>/<dir>/<leaf>; the caller checks <id> and <leaf>. */
static bool shape(const struct level *lv, int count, const char *dir)
{
	return count == 5 && is(&lv[0], "mt") && is(&lv[1], "v1") && is(&lv[3], dir);
}

static bool device_allows(const char *id, int access, const struct level *lv, int count,
                          bool retain)
{
	switch (access) {
	case MT_MOSQ_ACL_WRITE:
		return !retain && shape(lv, count, "up") && is(&lv[2], id) &&
		       one_of(&lv[4], up_kinds, COUNT(up_kinds));
	case MT_MOSQ_ACL_READ:
		return shape(lv, count, "down") && is(&lv[2], id) &&
		       one_of(&lv[4], down_kinds, COUNT(down_kinds));
	case MT_MOSQ_ACL_SUBSCRIBE:
	case MT_MOSQ_ACL_UNSUBSCRIBE:
		return shape(lv, count, "down") && is(&lv[2], id) &&
		       one_of(&lv[4], down_filters, COUNT(down_filters));
	default:
		return false;
	}
}

static bool hub_allows(int access, const char *topic, const struct level *lv, int count,
                       bool retain)
{
	switch (access) {
	case MT_MOSQ_ACL_READ:
		return shape(lv, count, "up") && any_id(&lv[2]) &&
		       one_of(&lv[4], up_kinds, COUNT(up_kinds));
	case MT_MOSQ_ACL_WRITE:
		return !retain && shape(lv, count, "down") && any_id(&lv[2]) &&
		       one_of(&lv[4], down_kinds, COUNT(down_kinds));
	case MT_MOSQ_ACL_SUBSCRIBE:
	case MT_MOSQ_ACL_UNSUBSCRIBE:
		return strcmp(topic, MT_MOSQ_HUB_FILTER) == 0;
	default:
		return false;
	}
}

bool mt_mosq_acl_allows(const char *id, bool is_hub, int access, const char *topic, bool retain)
{
	struct level lv[MAX_LEVELS];
	int count;

	if (id == NULL || topic == NULL || !mt_mosq_id_valid(id))
		return false;
	count = split(topic, lv);
	if (count < 0)
		return false;
	if (is_hub)
		return hub_allows(access, topic, lv, count, retain);
	return device_allows(id, access, lv, count, retain);
}
