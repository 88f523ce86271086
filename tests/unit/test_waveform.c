/*
 * test_waveform.c — waveform samples as zigzag-LEB128 deltas (protocol.md §5,
 * mt_waveform_encode / mt_waveform_decode in mt_message.h).
 *
 * A waveform's `samples` bstr holds 1..65,536 int32 samples as deltas
 * (d0 = s0, di = si − si−1), each zigzag-encoded as 64 bits and written as an
 * unsigned LEB128 varint: low 7 bits first, high bit = more follows, in its
 * shortest form and at most 10 bytes.  Like every other MTP/1 encoding it
 * must be unique, so the decoder refuses a varint with a redundant trailing
 * zero group (`80 00` for 0), one longer than 10 bytes, one cut off at the
 * end, and any delta that carries a sample outside int32.
 *
 * The protocol's own example pins the bytes; extremes pin the arithmetic
 * (INT32_MIN → INT32_MAX is the largest delta, 2^32 − 1, which zigzags to
 * 2^33 − 2 and takes 5 bytes); a seeded random sweep checks that whatever
 * the encoder writes the decoder takes back exactly.  The sample-count bound
 * is tested at 65,536 and 65,537 in both directions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_message.h"
#include "mt_testutil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* samples ⇄ hex, both directions exactly */
static void both_ways(const int32_t *s, size_t n, const char *want_hex)
{
	uint8_t want[128], got[128];
	int32_t back[32];
	size_t wn = mt_test_unhex(want_hex, want, sizeof(want)), gn = 0, bn = 0;
	assert_int_equal(mt_waveform_encode(s, n, got, sizeof(got), &gn), MT_OK);
	assert_int_equal(gn, wn);
	assert_memory_equal(got, want, wn);
	assert_int_equal(mt_waveform_decode(want, wn, back, N(back), &bn), MT_OK);
	assert_int_equal(bn, n);
	assert_memory_equal(back, s, n * sizeof(int32_t));
	/* counting only (out == NULL) gives the same count */
	bn = 0;
	assert_int_equal(mt_waveform_decode(want, wn, NULL, 0, &bn), MT_OK);
	assert_int_equal(bn, n);
}

static enum mt_err decode_hex(const char *h, size_t *count)
{
	uint8_t in[64];
	int32_t out[16];
	size_t n = mt_test_unhex(h, in, sizeof(in));
	return mt_waveform_decode(in, n, out, N(out), count);
}

static void test_protocol_example(void **state)
{
	(void)state;
	static const int32_t s[] = {1, 0, 64, -64, 100000};
	both_ways(s, N(s), "02 01 80 01 ff 01 c0 9b 0c");
}

static void test_small_values(void **state)
{
	(void)state;
	static const int32_t zero[] = {0};
	static const int32_t m1[] = {-1};
	static const int32_t p1[] = {1};
	static const int32_t b63[] = {63, -64};   /* zigzag 126, then delta -127 → 253 */
	static const int32_t b64[] = {64};        /* zigzag 128: first 2-byte value */
	static const int32_t flat[] = {7, 7, 7, 7};
	both_ways(zero, 1, "00");
	both_ways(m1, 1, "01");
	both_ways(p1, 1, "02");
	both_ways(b63, 2, "7e fd01");
	both_ways(b64, 1, "8001");
	both_ways(flat, 4, "0e 00 00 00");
}

static void test_extremes(void **state)
{
	(void)state;
	static const int32_t max[] = {INT32_MAX};          /* zigzag 2^32 − 2 */
	static const int32_t min[] = {INT32_MIN};          /* zigzag 2^32 − 1 */
	static const int32_t up[] = {INT32_MIN, INT32_MAX}; /* delta 2^32 − 1 */
	static const int32_t down[] = {INT32_MAX, INT32_MIN}; /* delta −(2^32 − 1) */
	static const int32_t swing[] = {INT32_MIN, INT32_MAX, INT32_MIN, INT32_MAX, 0,
	                                INT32_MIN, 0, INT32_MAX};
	both_ways(max, 1, "feffffff0f");
	both_ways(min, 1, "ffffffff0f");
	both_ways(up, 2, "ffffffff0f feffffff1f");
	both_ways(down, 2, "feffffff0f fdffffff1f");

	uint8_t b[64];
	int32_t back[N(swing)];
	size_t len, n;
	assert_int_equal(mt_waveform_encode(swing, N(swing), b, sizeof(b), &len), MT_OK);
	assert_true(len <= 5 * N(swing)); /* a delta of int32s takes at most 5 bytes */
	assert_int_equal(mt_waveform_decode(b, len, back, N(back), &n), MT_OK);
	assert_int_equal(n, N(swing));
	assert_memory_equal(back, swing, sizeof(swing));
}

static void test_non_shortest_refused(void **state)
{
	(void)state;
	size_t n;
	static const char *bad[] = {
		"8000",         /* 0 with a trailing zero group */
		"808000",
		"8100",         /* 1 (zigzag −1) padded */
		"ff00",
		"02 8000",      /* after a good sample */
		"80808080808080808000", /* 10 bytes, value 0 */
	};
	for (size_t i = 0; i < N(bad); i++)
		if (decode_hex(bad[i], &n) != MT_ERR_PKT_MESSAGE)
			fail_msg("non-shortest varint %s accepted", bad[i]);
	/* the shortest forms of the same values */
	assert_int_equal(decode_hex("00", &n), MT_OK);
	assert_int_equal(decode_hex("01", &n), MT_OK);
	assert_int_equal(decode_hex("02 00", &n), MT_OK);
	assert_int_equal(n, 2);
}

static void test_too_long_refused(void **state)
{
	(void)state;
	size_t n;
	/* 11 bytes */
	assert_int_equal(decode_hex("8080808080808080808001", &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(decode_hex("ffffffffffffffffffff01", &n), MT_ERR_PKT_MESSAGE);
	/* 10 bytes with bits beyond 64 */
	assert_int_equal(decode_hex("ffffffffffffffffff02", &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(decode_hex("ffffffffffffffffff7f", &n), MT_ERR_PKT_MESSAGE);
	/* 10 bytes, a 64-bit value: well formed, but no int32 delta is that big */
	assert_int_equal(decode_hex("ffffffffffffffffff01", &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(decode_hex("feffffffffffffffff01", &n), MT_ERR_PKT_MESSAGE);
}

static void test_truncated_refused(void **state)
{
	(void)state;
	size_t n;
	assert_int_equal(decode_hex("80", &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(decode_hex("ff", &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(decode_hex("02 80", &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(decode_hex("02 ffffffff", &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(decode_hex("ffffffffffffffffff", &n), MT_ERR_PKT_MESSAGE);
}

static void test_outside_int32_refused(void **state)
{
	(void)state;
	size_t n;
	/* first sample 2^31 (zigzag 2^32) and −2^31 − 1 (zigzag 2^32 + 1) */
	assert_int_equal(decode_hex("8080808010", &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(decode_hex("8180808010", &n), MT_ERR_PKT_MESSAGE);
	/* their neighbours inside int32 */
	assert_int_equal(decode_hex("feffffff0f", &n), MT_OK);
	assert_int_equal(decode_hex("ffffffff0f", &n), MT_OK);
	/* INT32_MAX then +1; INT32_MIN then −1 */
	assert_int_equal(decode_hex("feffffff0f 02", &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(decode_hex("ffffffff0f 01", &n), MT_ERR_PKT_MESSAGE);
	/* INT32_MIN then +2^32 (zigzag 2^33) */
	assert_int_equal(decode_hex("ffffffff0f 8080808020", &n), MT_ERR_PKT_MESSAGE);
	/* INT32_MAX then −2^32 (zigzag 2^33 − 1) */
	assert_int_equal(decode_hex("feffffff0f ffffffff1f", &n), MT_ERR_PKT_MESSAGE);
	/* deltas that return inside int32 from far outside are no excuse:
	 * 2^31 then −1 */
	assert_int_equal(decode_hex("8080808010 01", &n), MT_ERR_PKT_MESSAGE);
}

static void test_sample_count(void **state)
{
	(void)state;
	static uint8_t zeros[MT_WAVE_MAX_SAMPLES + 1];
	static int32_t out[MT_WAVE_MAX_SAMPLES + 1];
	static int32_t in[MT_WAVE_MAX_SAMPLES + 1];
	size_t n = 0, len;
	memset(zeros, 0, sizeof(zeros));

	assert_int_equal(mt_waveform_decode(zeros, MT_WAVE_MAX_SAMPLES, out, N(out), &n), MT_OK);
	assert_int_equal(n, 65536);
	assert_int_equal(mt_waveform_decode(zeros, MT_WAVE_MAX_SAMPLES, NULL, 0, &n), MT_OK);
	assert_int_equal(n, 65536);
	assert_int_equal(mt_waveform_decode(zeros, MT_WAVE_MAX_SAMPLES + 1, out, N(out), &n),
	                 MT_ERR_PKT_MESSAGE);
	assert_int_equal(mt_waveform_decode(zeros, MT_WAVE_MAX_SAMPLES + 1, NULL, 0, &n),
	                 MT_ERR_PKT_MESSAGE);
	/* empty */
	assert_int_equal(mt_waveform_decode(zeros, 0, out, N(out), &n), MT_ERR_PKT_MESSAGE);
	assert_int_equal(mt_waveform_decode(zeros, 0, NULL, 0, &n), MT_ERR_PKT_MESSAGE);

	/* the encoder: 65,536 ok, 65,537 and 0 refused */
	memset(in, 0, sizeof(in));
	static uint8_t enc[5 * (MT_WAVE_MAX_SAMPLES + 1)];
	assert_int_equal(mt_waveform_encode(in, MT_WAVE_MAX_SAMPLES, enc, sizeof(enc), &len), MT_OK);
	assert_int_equal(len, 65536);
	assert_int_equal(mt_waveform_encode(in, MT_WAVE_MAX_SAMPLES + 1, enc, sizeof(enc), &len),
	                 MT_ERR_PKT_MESSAGE);
	assert_int_equal(mt_waveform_encode(in, 0, enc, sizeof(enc), &len), MT_ERR_PKT_MESSAGE);
}

static void test_buffers(void **state)
{
	(void)state;
	static const int32_t s[] = {1, 0, 64, -64, 100000};
	uint8_t b[16];
	int32_t out[5];
	size_t len, n;
	/* exact output room is enough, one byte less is not */
	assert_int_equal(mt_waveform_encode(s, N(s), b, 9, &len), MT_OK);
	assert_int_equal(len, 9);
	assert_int_equal(mt_waveform_encode(s, N(s), b, 8, &len), MT_ERR_BUFFER);
	assert_int_equal(mt_waveform_encode(s, N(s), b, 0, &len), MT_ERR_BUFFER);
	/* decode into too few samples */
	assert_int_equal(mt_waveform_encode(s, N(s), b, sizeof(b), &len), MT_OK);
	assert_int_equal(mt_waveform_decode(b, len, out, 5, &n), MT_OK);
	assert_int_equal(mt_waveform_decode(b, len, out, 4, &n), MT_ERR_BUFFER);
}

static void test_random_round_trip(void **state)
{
	(void)state;
	static int32_t s[4096], back[4096];
	static uint8_t b[5 * 4096];
	uint64_t rng = UINT64_C(0x5eed5eed12345678); /* xorshift64, fixed seed */
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + (size_t)(mt_test_xorshift64(&rng) % N(s)), len, m;
		int shape = round % 4;
		int32_t v = 0;
		for (size_t i = 0; i < n; i++) {
			uint32_t r = (uint32_t)mt_test_xorshift64(&rng);
			switch (shape) {
			case 0: s[i] = (int32_t)r; break;               /* anything */
			case 1: v += (int32_t)(r % 201) - 100;          /* an ECG-like walk */
				s[i] = v; break;
			case 2: s[i] = (r & 1) ? INT32_MAX : INT32_MIN; break;
			default: s[i] = (int32_t)(r % 3) - 1; break;
			}
		}
		assert_int_equal(mt_waveform_encode(s, n, b, sizeof(b), &len), MT_OK);
		assert_int_equal(mt_waveform_decode(b, len, back, N(back), &m), MT_OK);
		assert_int_equal(m, n);
		assert_memory_equal(back, s, n * sizeof(int32_t));
		/* every varint ends in a non-zero byte or is the single byte 00 */
		for (size_t i = 0; i < len; i++)
			if (!(b[i] & 0x80) && b[i] == 0 && i > 0 && (b[i - 1] & 0x80))
				fail_msg("non-shortest varint written at byte %zu", i);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protocol_example),
		cmocka_unit_test(test_small_values),
		cmocka_unit_test(test_extremes),
		cmocka_unit_test(test_non_shortest_refused),
		cmocka_unit_test(test_too_long_refused),
		cmocka_unit_test(test_truncated_refused),
		cmocka_unit_test(test_outside_int32_refused),
		cmocka_unit_test(test_sample_count),
		cmocka_unit_test(test_buffers),
		cmocka_unit_test(test_random_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
