/*
 * mt_testjson.c — see mt_testjson.h.  Test-only code: it aborts on
 * malformed vector files, since a vector that cannot be read must never
 * turn into a silently passing test.
 */
#define _POSIX_C_SOURCE 200809L

#include "mt_testjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *mt_test_vectors_dir(void)
{
	const char *d = getenv("MT_VECTORS_DIR");
	struct stat st;

	if (d == NULL || d[0] == '\0' || stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return d;
}

bool mt_test_vector_path(const char *rel, char *buf, size_t cap)
{
	const char *d = mt_test_vectors_dir();
	int n;

	if (d == NULL)
		return false;
	n = snprintf(buf, cap, "%s/%s", d, rel);
	return n > 0 && (size_t)n < cap;
}

bool mt_test_vector_exists(const char *rel)
{
	char path[4096];
	struct stat st;

	return mt_test_vector_path(rel, path, sizeof path) && stat(path, &st) == 0 &&
	       S_ISREG(st.st_mode);
}

json_t *mt_test_load_json(const char *rel)
{
	char path[4096];
	json_error_t err;
	json_t *j;

	if (!mt_test_vector_exists(rel) || !mt_test_vector_path(rel, path, sizeof path))
		return NULL;
	j = json_load_file(path, 0, &err);
	if (j == NULL) {
		fprintf(stderr, "%s:%d: %s\n", path, err.line, err.text);
		abort();
	}
	return j;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

int mt_test_b64url(const char *s, uint8_t **out, size_t *len)
{
	size_t n = strlen(s);
	uint8_t *b;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	b = malloc(n * 3 / 4 + 1);
	if (b == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)s[i]);
		if (v < 0) {
			free(b);
			return -1;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			b[o++] = (uint8_t)(acc >> bits);
		}
	}
	*out = b;
	*len = o;
	return 0;
}

const char *mt_test_json_str(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

uint8_t *mt_test_json_hex(const json_t *obj, const char *key, size_t *len)
{
	const char *s = mt_test_json_str(obj, key);
	uint8_t *b = NULL;

	if (s == NULL || mt_test_hex(s, &b, len) != 0) {
		fprintf(stderr, "vector field \"%s\" missing or not hex\n", key);
		abort();
	}
	return b;
}

json_t *mt_test_mtp1;

int mt_test_mtp1_setup(void **state)
{
	(void)state;
	mt_test_mtp1 = mt_test_load_json("mtp1/vectors.json");
	return 0;
}

int mt_test_mtp1_teardown(void **state)
{
	(void)state;
	json_decref(mt_test_mtp1);
	mt_test_mtp1 = NULL;
	return 0;
}

uint8_t *mt_test_mtp1_hex(const char *name, size_t *len)
{
	return mt_test_json_hex(mt_test_mtp1, name, len);
}
