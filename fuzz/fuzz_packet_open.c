/*
 * fuzz_packet_open.c — libFuzzer harness: an arbitrary MQTT payload handed
 * to the hub's packet opener (protocol §4, the checks of §5).
 *
 * The input is a packet, byte for byte, as it would arrive on
 * mt/v1/dev-1/up/...; the harness never changes it.  It is opened for the
 * fixed device of fuzz_common.h (epoch 7, so 6 and 7 accepted) twice with
 * the P-256 operational key registered — the second time against the same
 * replay window, which turns a packet the first open accepted into a
 * duplicate — and once with the Ed25519 key and a fresh window.  The topic
 * of each open is taken from the input's length, so that one packet meets
 * several topics without a byte of it being spent on choosing.  The same
 * bytes are also read as a receipt (mt_receipt_open under the receipt key)
 * and through mt_packet_epoch(), the other two readers of the §4 layout.
 *
 * Random bytes rarely carry a valid AEAD tag, so this harness mostly
 * exercises stages 1–5 and the header parser; fuzz_packet_inner starts
 * behind the AEAD.  Seeds (fuzz/corpus/fuzz_packet_open/) are valid packets
 * of every kind, so mutations of their headers are explored too.
 *
 * Crashes: sanitizer reports, and abort() when the opener breaks a promise
 * of mt_packet.h (see fz_open) or asks for the key of a refused epoch.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mt_open_result r;
	static uint8_t scratch[FZ_BUF];
	static uint64_t ranges[MT_RECEIPT_MAX_RANGES][2];
	struct fz_world *w = fz_world();
	struct fz_lookup l = {.w = w, .ldev = FZ_P256};
	enum mt_err e;

	mt_replay_init(&l.window);
	e = fz_open(&l, (enum mt_topic)(size % 5), data, size, &r);
	e = fz_open(&l, (enum mt_topic)(size % 5), data, size, &r);
	(void)e;

	l.ldev = FZ_ED25519;
	mt_replay_init(&l.window);
	e = fz_open(&l, (enum mt_topic)((size / 5) % 5), data, size, &r);
	(void)e;

	uint32_t epoch = 0;
	if (mt_packet_epoch(data, size, &epoch) == MT_OK && epoch == FZ_EPOCH) {
		struct mt_receipt rc;
		if (size <= sizeof scratch &&
		    mt_receipt_open(w->aead, w->rkey7, FZ_DEV, strlen(FZ_DEV), data, size, scratch,
		                    sizeof scratch, ranges, MT_RECEIPT_MAX_RANGES, &rc) == MT_OK) {
			/* Ranges must come back sorted, disjoint and merged. */
			if (rc.n_ranges > MT_RECEIPT_MAX_RANGES)
				abort();
			for (size_t i = 0; i < rc.n_ranges; i++) {
				if (rc.ranges[i][0] > rc.ranges[i][1])
					abort();
				if (i > 0 && rc.ranges[i][0] <= rc.ranges[i - 1][1])
					abort();
			}
		}
	}
	return 0;
}
