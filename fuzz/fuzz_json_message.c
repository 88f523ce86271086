/*
 * fuzz_json_message.c — libFuzzer harness for the JSON form of a message
 * (protocol §9, mt_json.h): what `medtrust packet seal` reads from an
 * operator or another implementation.
 *
 * Any text must be parsed or refused without a crash or a leak.  What is
 * accepted must survive the round trip the CLI makes of it: format the
 * parsed message, parse that text again, and format once more — the two
 * texts must be identical, and both parses must encode to the same CBOR
 * bytes (mt_message_encode), so that `open | seal` never changes a
 * message.  The formatter must accept every message the parser accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <medtrust/mt_json.h>
#include <medtrust/mt_message.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_fail(const char *what, enum mt_err e)
{
	fprintf(stderr, "json round trip: %s: %s\n", what, mt_err_str(e));
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t cbor1[2 * MT_PACKET_MAX], cbor2[2 * MT_PACKET_MAX];
	struct mt_json_message a, b;
	char why[MT_JSON_WHY_MAX];
	char *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0, c1 = 0, c2 = 0;
	enum mt_err e;

	if (size > MT_PACKET_MAX)
		return 0;
	if (mt_json_message_parse((const char *)data, size, &a, why, sizeof why) != MT_OK)
		return 0;
	if ((e = mt_json_message_format(&a.msg, &t1, &l1)) != MT_OK)
		fz_fail("format of a parsed message", e);
	if ((e = mt_json_message_parse(t1, l1, &b, why, sizeof why)) != MT_OK) {
		fprintf(stderr, "%s\n%s\n", t1, why);
		fz_fail("parse of formatted text", e);
	}
	if ((e = mt_json_message_format(&b.msg, &t2, &l2)) != MT_OK)
		fz_fail("second format", e);
	if (l1 != l2 || memcmp(t1, t2, l1) != 0) {
		fprintf(stderr, "%s\n%s\n", t1, t2);
		fz_fail("format(parse(format(m))) != format(m)", MT_ERR_INTERNAL);
	}
	if ((e = mt_message_encode(&a.msg, cbor1, sizeof cbor1, &c1)) != MT_OK)
		fz_fail("encode of a parsed message", e);
	if ((e = mt_message_encode(&b.msg, cbor2, sizeof cbor2, &c2)) != MT_OK)
		fz_fail("encode of the re-parsed message", e);
	if (c1 != c2 || memcmp(cbor1, cbor2, c1) != 0)
		fz_fail("CBOR of the two parses differs", MT_ERR_INTERNAL);
	free(t1);
	free(t2);
	mt_json_message_free(&a);
	mt_json_message_free(&b);
	return 0;
}
