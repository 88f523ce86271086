/*
 * fuzz_receipt_open.c — libFuzzer harness for what a device parses from
 * the network: receipts on mt/v1/<id>/down/rcpt (protocol §4a; threat
 * A22).
 *
 * A device opens a receipt with its receipt key; a forged receipt stops at
 * the AEAD tag, but the hub — or whoever holds the receipt key — can put
 * any plaintext behind it, and the device must survive that too.  So:
 *
 *   first byte 0xff   the rest is a receipt plaintext: sealed here under
 *                     the receipt key with the receipt's AAD ("rcpt:" ‖
 *                     id), the header built byte for byte as §4 writes it,
 *                     so mutated ranges, ids and timestamps reach the
 *                     decoder;
 *   anything else     the input is the packet as received.
 *
 * Whatever opens must satisfy the contract the device relies on before it
 * releases anything from its queue: the device id is its own, at most 512
 * ranges, each first ≤ last, sorted, disjoint and merged.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pkt[FZ_BUF + 64], scratch[FZ_BUF + 64];
	static uint64_t ranges[MT_RECEIPT_MAX_RANGES][2];
	static const uint8_t iv[MT_AEAD_IV_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	struct fz_world *w = fz_world();
	struct mt_receipt r;
	const uint8_t *in = data;
	size_t n = size;

	if (size > MT_PACKET_MAX)
		return 0;
	if (size > 0 && data[0] == 0xff) {
		n = fz_seal_raw(w, w->rkey7, FZ_EPOCH, iv, "rcpt:", data + 1, size - 1, pkt,
		                sizeof pkt);
		if (n == 0)
			return 0;
		in = pkt;
	}
	if (mt_receipt_open(w->aead, w->rkey7, FZ_DEV, strlen(FZ_DEV), in, n, scratch,
	                    sizeof scratch, ranges, MT_RECEIPT_MAX_RANGES, &r) != MT_OK)
		return 0;
	if (r.dev_len != strlen(FZ_DEV) || memcmp(r.dev, FZ_DEV, r.dev_len) != 0 ||
	    r.n_ranges > MT_RECEIPT_MAX_RANGES)
		abort();
	for (size_t i = 0; i < r.n_ranges; i++) {
		if (ranges[i][0] > ranges[i][1])
			abort();
		if (i > 0 && ranges[i][0] <= ranges[i - 1][1] + 1)
			abort(); /* overlapping, unsorted or not merged */
	}
	return 0;
}
