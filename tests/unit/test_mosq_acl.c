/*
 * test_mosq_acl.c — the topic decision of the broker plugin
 * (plugins/mosquitto/acl.h; protocol §3; threats C01, C02, C08, C11).
 *
 * First the allowed topics, one by one, for a device and for the hub;
 * then the tricks an attacker tries on a topic-prefix ACL, each refused:
 * another device's id, an id that is a prefix of the client's or has it
 * as a prefix, wildcards inside levels and as levels, "..", empty levels,
 * leading and trailing slashes, case, $share and $SYS, retained messages,
 * one level too many or too few, bytes outside the id grammar (invalid
 * UTF-8 included), topics at and over the length bound, unknown access
 * values and NULLs.  A topic cannot hold a NUL (a C string ends there,
 * and Mosquitto refuses one on the wire), so what follows one is never
 * seen.
 *
 * Then a sweep: 200,000 seeded random topics built from the levels that
 * matter (the client's id and its neighbours, the literals of the tree,
 * wildcards, empty and dotted levels), checked against a reference that
 * knows nothing of parsing — the explicit list of the strings a device
 * may use for each access.  For a device the decision must be exactly
 * membership in that list; for the hub, exactly the shapes acl.h
 * documents, written out again here over the levels the topic was built
 * from (so the reference never parses a topic).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "acl.h"
#include "mt_testutil.h"

#define ID "acme-medical-000001"
#define OTHER "acme-medical-000002"
#define R MT_MOSQ_ACL_READ
#define W MT_MOSQ_ACL_WRITE
#define S MT_MOSQ_ACL_SUBSCRIBE
#define U MT_MOSQ_ACL_UNSUBSCRIBE
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void yes(const char *id, bool hub, int access, const char *topic, bool retain)
{
	if (!mt_mosq_acl_allows(id, hub, access, topic, retain))
		fail_msg("refused: %s%s access %d retain %d topic '%s'", id, hub ? " (hub)" : "",
		         access, retain, topic);
}

static void no(const char *id, bool hub, int access, const char *topic, bool retain)
{
	if (mt_mosq_acl_allows(id, hub, access, topic, retain))
		fail_msg("allowed: %s%s access %d retain %d topic '%s'", id, hub ? " (hub)" : "",
		         access, retain, topic);
}

/* ---- a device ---------------------------------------------------------- */

static void test_device_allowed(void **state)
{
	(void)state;
	yes(ID, false, W, "mt/v1/" ID "/up/vitals", false);
	yes(ID, false, W, "mt/v1/" ID "/up/alert", false);
	yes(ID, false, W, "mt/v1/" ID "/up/status", false);
	yes(ID, false, W, "mt/v1/" ID "/up/ack", false);
	yes(ID, false, R, "mt/v1/" ID "/down/cmd", false);
	yes(ID, false, R, "mt/v1/" ID "/down/rcpt", false);
	for (int a = S; a <= U; a *= 2) {
		yes(ID, false, a, "mt/v1/" ID "/down/#", false);
		yes(ID, false, a, "mt/v1/" ID "/down/+", false);
		yes(ID, false, a, "mt/v1/" ID "/down/cmd", false);
		yes(ID, false, a, "mt/v1/" ID "/down/rcpt", false);
	}
	/* One-byte and 64-byte ids. */
	yes("a", false, W, "mt/v1/a/up/vitals", false);
	yes("A123456789012345678901234567890123456789012345678901234567890._-", false, W,
	    "mt/v1/A123456789012345678901234567890123456789012345678901234567890._-/up/alert",
	    false);
}

/* C01: publishing anywhere but its own up/ leaves. */
static void test_C01_device_publish_tricks(void **state)
{
	static const char *const bad[] = {
	        "mt/v1/" OTHER "/up/vitals",
	        "mt/v1/acme-medical-00000/up/vitals",   /* a prefix of its id */
	        "mt/v1/acme-medical-0000011/up/vitals", /* its id as a prefix */
	        "mt/v1/" ID "x/up/vitals",
	        "mt/v1/+/up/vitals",
	        "mt/v1/#",
	        "mt/v1/" ID "/up/#",
	        "mt/v1/" ID "/up/+",
	        "mt/v1/" ID "/up/vitals/",
	        "mt/v1/" ID "/up/vitals/x",
	        "mt/v1/" ID "/up/",
	        "mt/v1/" ID "/up",
	        "mt/v1/" ID,
	        "mt/v1/" ID "/up//vitals",
	        "mt/v1/" ID "/up/../up/vitals",
	        "mt/v1/" ID "/up/./vitals",
	        "mt/v1/" ID "/up/../../" OTHER "/up/vitals",
	        "mt/v1/../v1/" ID "/up/vitals",
	        "/mt/v1/" ID "/up/vitals",
	        "mt//v1/" ID "/up/vitals",
	        "mt/v1//" ID "/up/vitals",
	        "mt/v2/" ID "/up/vitals",
	        "MT/v1/" ID "/up/vitals",
	        "mt/V1/" ID "/up/vitals",
	        "mt/v1/" ID "/UP/vitals",
	        "mt/v1/" ID "/up/Vitals",
	        "mt/v1/" ID "/up/vitals ",
	        "mt/v1/" ID "/up/firmware",
	        "mt/v1/" ID "/down/cmd",
	        "mt/v1/" ID "/down/rcpt",
	        "mt/v1/" ID "/up/cmd",
	        "$share/hub/mt/v1/" ID "/up/vitals",
	        "$SYS/broker/clients",
	        "mt/v1/acme-medical-000001\xff/up/vitals", /* invalid UTF-8 */
	        "mt/v1/acme-medical-000001\xc3\xa9/up/vitals",
	        "",
	        "/",
	        "#",
	        "+",
	};

	(void)state;
	for (size_t i = 0; i < N(bad); i++)
		no(ID, false, W, bad[i], false);
	/* Never retained, even on its own topics. */
	no(ID, false, W, "mt/v1/" ID "/up/vitals", true);
	no(ID, false, W, "mt/v1/" ID "/up/status", true);
}

/* C02: subscribing to anything but its own down/; reading likewise. */
static void test_C02_device_subscribe_and_read_tricks(void **state)
{
	static const char *const bad_sub[] = {
	        "#",
	        "+/#",
	        "mt/#",
	        "mt/v1/#",
	        "mt/v1/+/up/#",
	        "mt/v1/+/down/#",
	        "mt/v1/+/+/+",
	        "$SYS/#",
	        "$share/x/mt/v1/+/up/#",
	        "$share/hub/mt/v1/+/up/#",
	        "$share/x/mt/v1/" ID "/down/#",
	        "mt/v1/" OTHER "/down/#",
	        "mt/v1/acme-medical-00000/down/#",
	        "mt/v1/" ID "x/down/#",
	        "mt/v1/" ID "/up/#",
	        "mt/v1/" ID "/#",
	        "mt/v1/" ID "/+/cmd",
	        "mt/v1/" ID "/down",
	        "mt/v1/" ID "/down/",
	        "mt/v1/" ID "/down/#/x",
	        "mt/v1/" ID "/down/+/+",
	        "mt/v1/" ID "/down/cmd/#",
	        "mt/v1/" ID "/down/Cmd",
	        "mt/v1/" ID "/down/..",
	        "mt/v1/" ID "/down//#",
	};
	static const char *const bad_read[] = {
	        "mt/v1/" OTHER "/down/cmd", "mt/v1/" ID "/up/vitals", "mt/v1/" ID "/down/#",
	        "mt/v1/" ID "/down/+",      "mt/v1/" ID "/down/x",    "mt/v1/" ID "/down/cmd/x",
	        "$SYS/broker/uptime",       "mt/v1/" OTHER "/up/vitals",
	};

	(void)state;
	for (size_t i = 0; i < N(bad_sub); i++) {
		no(ID, false, S, bad_sub[i], false);
		no(ID, false, U, bad_sub[i], false);
	}
	for (size_t i = 0; i < N(bad_read); i++)
		no(ID, false, R, bad_read[i], false);
}

/* C11 and the edges: bounds, NULLs, bad ids, unknown access values. */
static void test_C11_bounds_and_bad_arguments(void **state)
{
	char topic[2 * MT_MOSQ_TOPIC_MAX];
	char id64[65], id65[66];
	int n;

	(void)state;
	/* A 64-byte id makes the longest allowed topic; longer ids are not ids. */
	memset(id64, 'a', 64);
	id64[64] = '\0';
	memset(id65, 'a', 65);
	id65[65] = '\0';
	n = snprintf(topic, sizeof topic, "mt/v1/%s/down/rcpt", id64);
	assert_true(n > 0 && n <= MT_MOSQ_TOPIC_MAX);
	yes(id64, false, R, topic, false);
	(void)snprintf(topic, sizeof topic, "mt/v1/%s/up/vitals", id65);
	no(id65, false, W, topic, false);
	/* The hub may not name a 65-byte id either. */
	(void)snprintf(topic, sizeof topic, "mt/v1/%s/down/cmd", id65);
	no("hub", true, W, topic, false);
	/* Over the bound: refused unread, whatever follows. */
	memset(topic, 'x', sizeof topic - 1);
	topic[sizeof topic - 1] = '\0';
	memcpy(topic, "mt/v1/" ID "/up/vitals/", strlen("mt/v1/" ID "/up/vitals/"));
	no(ID, false, W, topic, false);
	/* Many levels. */
	(void)snprintf(topic, sizeof topic, "mt/v1/" ID "/up/vitals%s",
	               "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z");
	no(ID, false, W, topic, false);
	/* NULLs and ids that are not ids. */
	assert_false(mt_mosq_acl_allows(ID, false, W, NULL, false));
	assert_false(mt_mosq_acl_allows(NULL, false, W, "mt/v1/" ID "/up/vitals", false));
	assert_false(mt_mosq_acl_allows(NULL, true, R, "mt/v1/" ID "/up/vitals", false));
	no("", false, W, "mt/v1//up/vitals", false);
	no("+", false, W, "mt/v1/+/up/vitals", false);
	no("#", false, S, "mt/v1/#/down/#", false);
	no("a/b", false, W, "mt/v1/a/b/up/vitals", false);
	no(".x", false, W, "mt/v1/.x/up/vitals", false);
	no("-x", false, W, "mt/v1/-x/up/vitals", false);
	no("x y", false, W, "mt/v1/x y/up/vitals", false);
	/* Access values that are not one MOSQ_ACL_* value. */
	for (int a = -1; a <= 64; a++) {
		if (a == R || a == W || a == S || a == U)
			continue;
		no(ID, false, a, "mt/v1/" ID "/up/vitals", false);
		no(ID, false, a, "mt/v1/" ID "/down/#", false);
		no("hub", true, a, MT_MOSQ_HUB_FILTER, false);
		no("hub", true, a, "mt/v1/" ID "/down/cmd", false);
	}
}

/* ---- the hub ----------------------------------------------------------- */

static void test_C08_hub(void **state)
{
	static const char *const bad_sub[] = {
	        "#",
	        "mt/v1/+/up/#",
	        "mt/v1/+/down/#",
	        "$share/hub/mt/v1/+/up/#/",
	        "$share/hub/mt/v1/+/up/+",
	        "$share/hub/mt/v1/+/up",
	        "$share/hub/mt/v1/#",
	        "$share/HUB/mt/v1/+/up/#",
	        "$share/other/mt/v1/+/up/#",
	        "$share/hub/mt/v1/+/down/#",
	        "$share/hub/mt/v1/" ID "/up/#",
	        "$share/hub//mt/v1/+/up/#",
	        "$SYS/#",
	};

	(void)state;
	yes("hub", true, S, MT_MOSQ_HUB_FILTER, false);
	yes("hub", true, U, MT_MOSQ_HUB_FILTER, false);
	for (size_t i = 0; i < N(bad_sub); i++) {
		no("hub", true, S, bad_sub[i], false);
		no("hub", true, U, bad_sub[i], false);
	}
	/* Reads every device's up/ leaves, nothing else. */
	yes("hub", true, R, "mt/v1/" ID "/up/vitals", false);
	yes("hub", true, R, "mt/v1/" OTHER "/up/ack", false);
	no("hub", true, R, "mt/v1/+/up/vitals", false);
	no("hub", true, R, "mt/v1//up/vitals", false);
	no("hub", true, R, "mt/v1/" ID "/up/vitals/x", false);
	no("hub", true, R, "mt/v1/" ID "/up/other", false);
	no("hub", true, R, "mt/v1/" ID "/down/cmd", false);
	no("hub", true, R, "$SYS/broker/uptime", false);
	/* Writes every device's down/ leaves, never up/, never retained. */
	yes("hub", true, W, "mt/v1/" ID "/down/cmd", false);
	yes("hub", true, W, "mt/v1/" OTHER "/down/rcpt", false);
	no("hub", true, W, "mt/v1/" ID "/down/cmd", true);
	no("hub", true, W, "mt/v1/" ID "/up/vitals", false);
	no("hub", true, W, "mt/v1/+/down/cmd", false);
	no("hub", true, W, "mt/v1/#", false);
	no("hub", true, W, "mt/v1/" ID "/down/other", false);
	no("hub", true, W, "mt/v1/" ID "/down/cmd/x", false);
	no("hub", true, W, "mt/v1/../down/cmd", false);
	no("hub", true, W, "mt/v1/" ID "\xff/down/cmd", false);
	/* A device whose id is "hub" is a device (is_hub is the plugin's to
	 * decide, from the certificate and the registry, not the name). */
	no("hub", false, S, MT_MOSQ_HUB_FILTER, false);
	no("hub", false, R, "mt/v1/" ID "/up/vitals", false);
	yes("hub", false, W, "mt/v1/hub/up/vitals", false);
}

static void test_id_valid(void **state)
{
	(void)state;
	assert_true(mt_mosq_id_valid("hub"));
	assert_true(mt_mosq_id_valid(ID));
	assert_true(mt_mosq_id_valid("A._-z"));
	assert_false(mt_mosq_id_valid(NULL));
	assert_false(mt_mosq_id_valid(""));
	assert_false(mt_mosq_id_valid("_a"));
	assert_false(mt_mosq_id_valid("hub/2"));
	assert_false(mt_mosq_id_valid("hub+"));
	assert_false(mt_mosq_id_valid("hub#"));
	assert_false(mt_mosq_id_valid("h\xc3\xa9"));
	assert_false(mt_mosq_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

/* ---- the sweep --------------------------------------------------------- */

static const char *const pieces[] = {
        "mt",   "v1",     ID,      OTHER,    "acme-medical-00000", ID "x", "up",  "down",
        "vitals", "alert", "status", "ack",   "cmd",                "rcpt", "#",   "+",
        "",     "..",     ".",     "MT",     "$share",             "hub",  "$SYS", "x",
};

/* The device reference: membership in explicit lists. */
static bool device_ref(int access, const char *topic, bool retain)
{
	static const char *const w[] = {"mt/v1/" ID "/up/vitals", "mt/v1/" ID "/up/alert",
	                                "mt/v1/" ID "/up/status", "mt/v1/" ID "/up/ack"};
	static const char *const r[] = {"mt/v1/" ID "/down/cmd", "mt/v1/" ID "/down/rcpt"};
	static const char *const s[] = {"mt/v1/" ID "/down/#", "mt/v1/" ID "/down/+",
	                                "mt/v1/" ID "/down/cmd", "mt/v1/" ID "/down/rcpt"};
	const char *const *list = NULL;
	size_t n = 0;

	if (access == W && !retain) {
		list = w;
		n = N(w);
	} else if (access == R) {
		list = r;
		n = N(r);
	} else if (access == S || access == U) {
		list = s;
		n = N(s);
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(topic, list[i]) == 0)
			return true;
	return false;
}

/* Which of `pieces` match the device-id grammar: the hub may name any of
 * them as the device level ("mt", "up", "x" are ids as good as any). */
static bool piece_is_id(const char *p)
{
	static const char *const ids[] = {ID,    OTHER,  "acme-medical-00000", ID "x", "mt",
	                                  "v1",  "up",   "down",               "vitals", "alert",
	                                  "status", "ack", "cmd",             "rcpt", "MT",
	                                  "hub", "x"};

	for (size_t i = 0; i < N(ids); i++)
		if (strcmp(p, ids[i]) == 0)
			return true;
	return false;
}

static bool in(const char *p, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(p, names[i]) == 0)
			return true;
	return false;
}

static bool hub_ref(int access, const char *const *lv, int count, const char *topic,
                    bool retain)
{
	static const char *const up[] = {"vitals", "alert", "status", "ack"};
	static const char *const down[] = {"cmd", "rcpt"};
	bool five = count == 5 && strcmp(lv[0], "mt") == 0 && strcmp(lv[1], "v1") == 0 &&
	            piece_is_id(lv[2]);

	if (access == R)
		return five && strcmp(lv[3], "up") == 0 && in(lv[4], up, N(up));
	if (access == W)
		return !retain && five && strcmp(lv[3], "down") == 0 && in(lv[4], down, N(down));
	if (access == S || access == U)
		return strcmp(topic, MT_MOSQ_HUB_FILTER) == 0;
	return false;
}

static void test_sweep_against_reference(void **state)
{
	static const int accesses[] = {R, W, S, U};
	uint64_t rng = 0x6d6f73717569746fu;
	size_t allowed_dev = 0, allowed_hub = 0;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		const char *lv[7];
		char topic[512];
		size_t len = 0;
		uint64_t c = mt_test_xorshift64(&rng);
		int count = c % 2 ? 5 : 1 + (int)((c >> 1) % 7);
		uint64_t x = mt_test_xorshift64(&rng);
		int access = accesses[x % 4];
		bool retain = (x >> 8) % 5 == 0;
		bool dev, hub;

		/* Bias towards the real shape so that allowed topics do occur. */
		for (int k = 0; k < count; k++) {
			uint64_t y = mt_test_xorshift64(&rng);
			static const char *const shape[] = {"mt", "v1", ID, "up", "vitals"};

			lv[k] = (y % 3 != 0 && k < 5) ? shape[k] : pieces[(y >> 8) % N(pieces)];
			if (k == 3 && y % 2 == 0)
				lv[k] = (y >> 20) % 2 ? "up" : "down";
			if (k == 4 && y % 2 == 0)
				lv[k] = pieces[6 + (y >> 24) % 10];
		}
		for (int k = 0; k < count; k++) {
			int m = snprintf(topic + len, sizeof topic - len, "%s%s", k ? "/" : "", lv[k]);

			assert_true(m >= 0 && (size_t)m < sizeof topic - len);
			len += (size_t)m;
		}
		dev = mt_mosq_acl_allows(ID, false, access, topic, retain);
		if (dev != device_ref(access, topic, retain))
			fail_msg("device: access %d retain %d '%s': acl says %d", access, retain, topic,
			         dev);
		hub = mt_mosq_acl_allows("hub", true, access, topic, retain);
		if (hub != hub_ref(access, lv, count, topic, retain))
			fail_msg("hub: access %d retain %d '%s': acl says %d", access, retain, topic, hub);
		allowed_dev += dev;
		allowed_hub += hub;
	}
	/* The sweep must have reached the allowed shapes, not only refusals. */
	print_message("sweep: %zu of 200000 allowed for the device, %zu for the hub\n",
	              allowed_dev, allowed_hub);
	assert_true(allowed_dev > 1000);
	assert_true(allowed_hub > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_device_allowed),
	        cmocka_unit_test(test_C01_device_publish_tricks),
	        cmocka_unit_test(test_C02_device_subscribe_and_read_tricks),
	        cmocka_unit_test(test_C11_bounds_and_bad_arguments),
	        cmocka_unit_test(test_C08_hub),
	        cmocka_unit_test(test_id_valid),
	        cmocka_unit_test(test_sweep_against_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
