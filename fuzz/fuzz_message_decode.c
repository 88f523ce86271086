/*
 * fuzz_message_decode.c — libFuzzer harness for the MTP/1 message decoder
 * (protocol §5) and its encoder.
 *
 * The decoder is strict and the encoder deterministic, so between them they
 * must be a bijection on valid messages: whatever mt_message_decode()
 * accepts, mt_message_encode() must write back byte for byte.  A difference
 * means the decoder accepted a non-canonical form (a second encoding of the
 * same message — the kind of ambiguity signatures and duplicate detection
 * rely on never existing) or the encoder lost something; either aborts.
 * An accepted message must also pass mt_message_check(), and every waveform
 * in it must decode to the sample count the decoder reported.  Plausibility
 * (stage 14) is exercised on each accepted message.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mt_obs obs[MT_OBS_MAX];
	static uint8_t out[2 * MT_PACKET_MAX];
	struct mt_message m;
	const char *why = NULL;
	size_t n = 0;

	if (mt_message_decode(data, size, &m, obs, MT_OBS_MAX, &why) != MT_OK)
		return 0;
	if (mt_message_check(&m, &why) != MT_OK) {
		fprintf(stderr, "decoded message fails the check: %s\n", why ? why : "?");
		abort();
	}
	for (size_t i = 0; i < m.n_obs; i++) {
		size_t count = 0;
		if (!m.obs[i].waveform)
			continue;
		if (mt_waveform_decode(m.obs[i].samples, m.obs[i].samples_len, NULL, 0, &count) !=
		            MT_OK ||
		    count != m.obs[i].n_samples)
			abort();
	}
	enum mt_err e = mt_message_encode(&m, out, sizeof out, &n);
	if (e != MT_OK) {
		fprintf(stderr, "re-encoding a decoded message failed: %s\n", mt_err_str(e));
		abort();
	}
	if (n != size || memcmp(out, data, size) != 0) {
		fprintf(stderr, "round trip differs: %zu bytes in, %zu out\n", size, n);
		abort();
	}
	e = mt_message_plausible(&m, &why);
	(void)e;
	return 0;
}
