/*
 * fuzz_packet_inner.c — libFuzzer harness for everything behind the AEAD:
 * the inner Sign1 (stages 6–9), the message (10), the registry and replay
 * stages (11–13) and plausibility (14).
 *
 * An attacker without the device's key cannot get past stage 5, but a
 * device — or someone who stole its keys — can put any plaintext there, so
 * these stages must be as robust as the outer ones.  The harness therefore
 * takes the input as the plaintext and encrypts it itself with K (the
 * header built byte for byte as protocol §4 writes it, independently of
 * the library's sealer), then opens the packet:
 *
 *   first byte 0xff   the rest is a message: wrap it in a Sign1 signed for
 *                     real by the P-256 ldev key, so that mutated messages
 *                     reach stage 10 of a sealed packet;
 *   first byte 0xfe   the same with the Ed25519 key;
 *   anything else     the input is the plaintext as it is (a Sign1 that
 *                     must fail its signature, or a fast packet's message).
 *
 * 0xff and 0xfe are never the first byte of strict CBOR (a break code and a
 * reserved simple value), so no interesting plaintext is shadowed.  Every
 * packet is opened on two topics (none, and one chosen from the length)
 * with fresh replay windows, then once more on the second window to reach
 * the duplicate path.  Packets larger than 65,536 bytes are still built:
 * stage 1 must refuse them.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pt[FZ_BUF], pkt[FZ_BUF + 64], scratch[FZ_BUF];
	static struct mt_open_result r;
	static const uint8_t iv[MT_AEAD_IV_LEN] = {0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a,
	                                           0x09, 0x08, 0x07, 0x06, 0x05, 0x04};
	struct fz_world *w = fz_world();
	struct fz_lookup l = {.w = w};
	const uint8_t *plain = data;
	size_t plain_len = size;
	enum mt_err e;

	if (size > MT_PACKET_MAX)
		return 0;
	if (size > 0 && (data[0] == 0xff || data[0] == 0xfe)) {
		l.ldev = data[0] == 0xff ? FZ_P256 : FZ_ED25519;
		plain_len = fz_sign1(w, l.ldev, data + 1, size - 1, pt, sizeof pt, scratch,
		                     sizeof scratch);
		if (plain_len == 0)
			return 0;
		plain = pt;
	} else {
		l.ldev = (size & 1) ? FZ_ED25519 : FZ_P256;
	}

	/* Epoch 7 or 6 (both accepted), from the length. */
	uint32_t epoch = (size & 2) ? FZ_EPOCH - 1 : FZ_EPOCH;
	const uint8_t *key = epoch == FZ_EPOCH ? w->key7 : w->key6;
	size_t n = fz_seal_raw(w, key, epoch, iv, "", plain, plain_len, pkt, sizeof pkt);
	if (n == 0)
		return 0;

	mt_replay_init(&l.window);
	e = fz_open(&l, MT_TOPIC_NONE, pkt, n, &r);
	mt_replay_init(&l.window);
	e = fz_open(&l, (enum mt_topic)(1 + size % 4), pkt, n, &r);
	e = fz_open(&l, (enum mt_topic)(1 + size % 4), pkt, n, &r);
	(void)e;
	return 0;
}
