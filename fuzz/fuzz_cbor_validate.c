/*
 * fuzz_cbor_validate.c — libFuzzer harness for strict CBOR validation
 * (protocol "Strict CBOR", mt_cbor.h), with the tags MTP/1 packets use:
 * 16 (COSE_Encrypt0) and 18 (COSE_Sign1).
 *
 * mt_cbor_validate() is the gate every MTP/1 object passes before a schema
 * decoder walks it, so it must neither crash nor accept what the rules
 * forbid.  Beyond surviving, the harness checks one consistency property
 * with the pull parser: an item the validator accepts must also be
 * skippable in one piece by mt_cbor_skip() with nothing left over
 * (mt_cbor_dec_finish() == MT_OK) — the two walk the same bytes with the
 * same head rules.  The validator is also run with no tags allowed, and
 * must then refuse any input it refused with tags (allowing tags can only
 * widen what is accepted).
 */
#include <stdio.h>
#include <stdlib.h>

#include <medtrust/mt_cbor.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t tags[] = {16, 18};
	enum mt_err with = mt_cbor_validate(data, size, tags, 2);
	enum mt_err without = mt_cbor_validate(data, size, NULL, 0);

	if (with != MT_OK && without == MT_OK) {
		fprintf(stderr, "accepted without tags, refused with tags {16, 18}\n");
		abort();
	}
	if (with == MT_OK) {
		struct mt_cbor_dec d;
		mt_cbor_dec_init(&d, data, size);
		bool ok = mt_cbor_skip(&d);
		enum mt_err fin = mt_cbor_dec_finish(&d);
		if (!ok || fin != MT_OK) {
			fprintf(stderr, "validated item not skippable: %s\n", mt_err_str(fin));
			abort();
		}
	}
	return 0;
}
