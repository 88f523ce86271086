/*
 * fuzz_hl7_ack.c — libFuzzer harness for what the HL7 sender and the MLLP
 * listener parse from the network (mt_hl7.h; clinical.md §4; threat G05):
 * the MLLP byte stream and the acknowledgement inside it.
 *
 * The input is fed to an MLLP reader with a 4 KiB cap in pieces whose
 * sizes come from the input itself (first byte), so split frames, several
 * frames per read, garbage and oversize frames are all reached; every
 * frame is parsed as a header and as an ACK.  What the sender relies on is
 * checked: a frame never exceeds the cap; a parsed ACK has a known MSA-1
 * and a non-empty MSA-2 with no control characters; its text is valid
 * for the audit log (no control characters); and building an ACK from a
 * parsed header and parsing it back gives the same control id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_hl7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const uint8_t *fr, size_t n)
{
	struct mt_hl7_header h;
	struct mt_hl7_ack a;
	char *ack = NULL;
	size_t alen = 0;

	if (mt_hl7_parse_ack(fr, n, &a) == MT_OK) {
		if (a.control_id[0] == '\0' || a.code > MT_HL7_ACK_REJECT)
			abort();
		for (const char *c = a.control_id; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				abort();
		for (const char *c = a.text; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				abort();
	}
	if (mt_hl7_parse_header(fr, n, &h) != MT_OK)
		return;
	if (mt_hl7_build_ack(&h, "MEDTRUST", NULL, 0, "A1", "AA", NULL, &ack, &alen) == MT_OK) {
		if (mt_hl7_parse_ack((const uint8_t *)ack, alen, &a) != MT_OK ||
		    strcmp(a.control_id, h.control_id) != 0)
			abort();
		free(ack);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_mllp_reader r;
	size_t off, step;

	if (size == 0)
		return 0;
	step = (size_t)data[0] + 1;
	off = 1;
	mt_mllp_init(&r, 4096);
	/* the whole input as one message, too */
	check_frame(data + 1, size - 1);
	while (off < size) {
		size_t n = size - off < step ? size - off : step, used = 0, flen = 0;
		const uint8_t *fr = NULL;

		if (mt_mllp_feed(&r, data + off, n, &used, &fr, &flen) != MT_OK)
			break;
		if (used == 0 || used > n)
			abort();
		off += used;
		if (fr) {
			if (flen > 4096)
				abort();
			check_frame(fr, flen);
		}
	}
	mt_mllp_free(&r);
	return 0;
}
