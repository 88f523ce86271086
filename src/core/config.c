/*
 * config.c — the reader of mosquitto-style `key value` files (mt_config.h).
 *
 * One pass over the text, line by line.  Each line is checked in the order
 * the header lists the refusals — length, then encoding, then shape, then
 * the key against the caller's list, then duplicates — so the error a user
 * sees is the most basic thing wrong with the line.  Entries are copied
 * into one allocation each (key NUL value NUL) so that the parsed object
 * owns everything and the caller's text may be freed at once.  Nothing is
 * interpreted here: numbers, paths and URIs are the caller's to check,
 * because only the caller knows what a value means.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_config.h"

struct mt_config_item {
	char *key; /* one allocation: key NUL value NUL */
	const char *value;
	unsigned line;
};

struct mt_config {
	struct mt_config_item items[MT_CONFIG_ENTRIES_MAX];
	size_t n;
};

void mt_config_free(struct mt_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->items[i].key);
	free(c);
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool is_key_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* Check one line s[0..n) (no line end) and add its entry, if any. */
static enum mt_err parse_line(struct mt_config *c, const char *s, size_t n,
                              const char *const *known, size_t n_known, unsigned line)
{
	size_t i = 0, k0, kn, v0, vn;

	if (n > MT_CONFIG_LINE_MAX)
		return MT_ERR_CONFIG_TOO_LONG;
	if (!mt_utf8_valid((const uint8_t *)s, n))
		return MT_ERR_CONFIG_UTF8;
	for (size_t j = 0; j < n; j++)
		if (((unsigned char)s[j] < 0x20 && s[j] != '\t') || s[j] == 0x7f)
			return MT_ERR_CONFIG_UTF8;
	while (i < n && is_blank(s[i]))
		i++;
	if (i == n || s[i] == '#')
		return MT_OK; /* blank or comment */
	k0 = i;
	while (i < n && !is_blank(s[i])) {
		if (!is_key_char(s[i]))
			return MT_ERR_CONFIG_SYNTAX;
		i++;
	}
	kn = i - k0;
	if (kn > MT_CONFIG_KEY_MAX)
		return MT_ERR_CONFIG_SYNTAX;
	while (i < n && is_blank(s[i]))
		i++;
	v0 = i;
	vn = n - v0;
	while (vn > 0 && is_blank(s[v0 + vn - 1]))
		vn--;
	if (vn == 0)
		return MT_ERR_CONFIG_SYNTAX; /* a key without a value */

	bool found = false;
	for (size_t j = 0; j < n_known && !found; j++)
		found = strlen(known[j]) == kn && memcmp(known[j], s + k0, kn) == 0;
	if (!found)
		return MT_ERR_CONFIG_UNKNOWN;
	for (size_t j = 0; j < c->n; j++)
		if (strlen(c->items[j].key) == kn && memcmp(c->items[j].key, s + k0, kn) == 0)
			return MT_ERR_CONFIG_DUPLICATE;
	if (c->n == MT_CONFIG_ENTRIES_MAX)
		return MT_ERR_CONFIG_TOO_LONG;

	char *p = malloc(kn + 1 + vn + 1);
	if (p == NULL)
		return MT_ERR_NOMEM;
	memcpy(p, s + k0, kn);
	p[kn] = '\0';
	memcpy(p + kn + 1, s + v0, vn);
	p[kn + 1 + vn] = '\0';
	c->items[c->n].key = p;
	c->items[c->n].value = p + kn + 1;
	c->items[c->n].line = line;
	c->n++;
	return MT_OK;
}

enum mt_err mt_config_parse(const char *text, size_t len, const char *const *known,
                            size_t n_known, struct mt_config **out, unsigned *line)
{
	struct mt_config *c;
	size_t pos = 0;
	unsigned no = 0;
	enum mt_err e = MT_OK;

	if (line != NULL)
		*line = 0;
	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if ((text == NULL && len > 0) || (known == NULL && n_known > 0))
		return MT_ERR_ARG;
	if (len > MT_CONFIG_FILE_MAX)
		return MT_ERR_CONFIG_TOO_LONG;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return MT_ERR_NOMEM;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;

		no++;
		if (n > 0 && text[pos + n - 1] == '\r')
			n--; /* CRLF */
		e = parse_line(c, text + pos, n, known, n_known, no);
		if (e != MT_OK)
			break;
		pos += nl != NULL ? (size_t)(nl - (text + pos)) + 1 : len - pos;
	}
	if (e != MT_OK) {
		if (line != NULL)
			*line = no;
		mt_config_free(c);
		return e;
	}
	*out = c;
	return MT_OK;
}

enum mt_err mt_config_load(const char *path, const char *const *known, size_t n_known,
                           struct mt_config **out, unsigned *line)
{
	FILE *f;
	char *buf;
	size_t n;
	enum mt_err e;

	if (line != NULL)
		*line = 0;
	if (out == NULL || path == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	f = fopen(path, "rb");
	if (f == NULL)
		return MT_ERR_IO;
	buf = malloc(MT_CONFIG_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return MT_ERR_NOMEM;
	}
	n = fread(buf, 1, MT_CONFIG_FILE_MAX + 1, f);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return MT_ERR_IO;
	}
	fclose(f);
	e = n > MT_CONFIG_FILE_MAX ? MT_ERR_CONFIG_TOO_LONG
	                           : mt_config_parse(buf, n, known, n_known, out, line);
	free(buf);
	return e;
}

const char *mt_config_get(const struct mt_config *c, const char *key)
{
	if (c == NULL || key == NULL)
		return NULL;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->items[i].key, key) == 0)
			return c->items[i].value;
	return NULL;
}

size_t mt_config_count(const struct mt_config *c)
{
	return c != NULL ? c->n : 0;
}

enum mt_err mt_config_entry(const struct mt_config *c, size_t i, const char **key,
                            const char **value, unsigned *line)
{
	if (c == NULL || i >= c->n || key == NULL || value == NULL)
		return MT_ERR_ARG;
	*key = c->items[i].key;
	*value = c->items[i].value;
	if (line != NULL)
		*line = c->items[i].line;
	return MT_OK;
}
