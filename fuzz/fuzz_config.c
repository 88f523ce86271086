/*
 * fuzz_config.c — libFuzzer harness for the deployment configuration reader
 * (mt_config.h), the file an operator edits by hand and every medtrust
 * process reads at start.
 *
 * The reader must never crash or accept something outside its small
 * grammar.  For an accepted file the harness checks what the reader
 * promises: every key is known, 1–64 bytes of [a-z0-9_-], unique; every
 * value non-empty, without surrounding blanks, line ends or NULs; entries
 * come in file order with increasing line numbers; and mt_config_get finds
 * each value under its key.
 */
#include "fuzz_common.h"

#include "medtrust/mt_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const known[] = {
	"hospital", "db", "pkcs11_module", "softhsm2_conf", "ca_key", "tls_key",
	"kx_key", "cmd_key", "audit_key", "kek", "crl", "cert-lifetime-days",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_config *c = NULL;
	unsigned line = 0, prev = 0;
	if (mt_config_parse((const char *)data, size, known, sizeof(known) / sizeof(known[0]), &c,
	                    &line) != MT_OK) {
		if (c != NULL)
			abort();
		return 0;
	}
	for (size_t i = 0; i < mt_config_count(c); i++) {
		const char *k, *v;
		unsigned l;
		if (mt_config_entry(c, i, &k, &v, &l) != MT_OK || l <= prev)
			abort();
		prev = l;
		size_t kn = strlen(k), vn = strlen(v);
		bool is_known = false;
		for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++)
			is_known = is_known || strcmp(k, known[j]) == 0;
		if (!is_known || kn < 1 || kn > MT_CONFIG_KEY_MAX || vn == 0 || v[0] == ' ' ||
		    v[0] == '\t' || v[vn - 1] == ' ' || v[vn - 1] == '\t' || strchr(v, '\n') ||
		    strchr(v, '\r') || mt_config_get(c, k) != v)
			abort();
		for (size_t j = 0; j < i; j++) {
			const char *k2, *v2;
			if (mt_config_entry(c, j, &k2, &v2, NULL) != MT_OK || strcmp(k, k2) == 0)
				abort();
		}
	}
	mt_config_free(c);
	return 0;
}
