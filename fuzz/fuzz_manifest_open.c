/*
 * fuzz_manifest_open.c — libFuzzer harness for device manifests (protocol
 * §1), the file a hospital imports from a manufacturer: outside input that
 * decides which devices may join the fleet.
 *
 * mt_manifest_open() must never crash, leak or accept something malformed.
 * Whatever it accepts must hold only valid entries (device-id serials,
 * unique, 8-byte kids) and a chain whose first certificate exists; the
 * harness checks that and frees everything.  The seed corpus holds real
 * signed manifests, so mutations reach the Sign1 shape, header and
 * certificate parsing and the signature check.
 */
#include "fuzz_common.h"

#include "medtrust/mt_manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_manifest m;
	const char *why = NULL;
	if (mt_manifest_open(data, size, &m, &why) != MT_OK)
		return 0;
	if (m.n_entries == 0 || m.n_chain == 0 || m.chain_len[0] == 0)
		abort();
	for (size_t i = 0; i < m.n_entries; i++) {
		const char *s = m.entries[i].serial;
		if (!mt_device_id_valid(s, strlen(s)))
			abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(s, m.entries[j].serial) == 0)
				abort();
	}
	mt_manifest_free(&m);
	return 0;
}
