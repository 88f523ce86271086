/*
 * mt_config.h — the configuration file of a deployment (medtrust.conf,
 * written by `medtrust init`, docs/operations.md "Creating a deployment").
 *
 * The format is mosquitto's: one `key value` per line, the key a word of
 * [a-z0-9_-] (1..64 bytes), then spaces or tabs, then the value up to the
 * end of the line with surrounding spaces and tabs trimmed; no quotes and no
 * escapes, so a value is exactly the bytes an operator sees.  A line whose
 * first non-blank character is `#` is a comment; blank lines are ignored;
 * `#` inside a value is part of the value (key URIs and paths may hold
 * one).  CRLF line ends are accepted.  Chosen over INI/TOML/JSON because
 * mosquitto is already in every deployment and its operators read this
 * form; and because a grammar this small has no corner for two readers to
 * disagree on.
 *
 * Refusals, each with the 1-based number of the offending line:
 *   MT_ERR_CONFIG_TOO_LONG   a line over MT_CONFIG_LINE_MAX bytes, the file
 *                            over MT_CONFIG_FILE_MAX, more than
 *                            MT_CONFIG_ENTRIES_MAX entries
 *   MT_ERR_CONFIG_UTF8       invalid UTF-8, or a control character other
 *                            than tab (a NUL, a lone CR)
 *   MT_ERR_CONFIG_SYNTAX     a key with other characters, or no value
 *   MT_ERR_CONFIG_UNKNOWN    a key not in the caller's list
 *   MT_ERR_CONFIG_DUPLICATE  a key given twice (the second line is named)
 * A file that silently ignored a misspelt `kx_key` would run the hub with a
 * default nobody chose; so nothing unknown is skipped and nothing repeated
 * is "last one wins".
 *
 * A `struct mt_config` is immutable after parsing and owns its strings.
 */
#ifndef MT_CONFIG_H
#define MT_CONFIG_H

#include <stddef.h>

#include "mt_err.h"

#define MT_CONFIG_LINE_MAX 4096    /* bytes per line, without the line end */
#define MT_CONFIG_FILE_MAX 1048576 /* bytes per file */
#define MT_CONFIG_KEY_MAX 64       /* bytes per key */
#define MT_CONFIG_ENTRIES_MAX 256

struct mt_config;

/* Parse text[0..len) against the keys known[0..n_known).  On success *out
 * is new (free with mt_config_free).  On failure *out is NULL and *line
 * (may be NULL) names the offending line (0 when no line is at fault).
 * Errors: those above, MT_ERR_ARG, MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_config_parse(const char *text, size_t len,
                                         const char *const *known, size_t n_known,
                                         struct mt_config **out, unsigned *line);

/* The same for the file at `path`.  Errors: those of mt_config_parse,
 * MT_ERR_IO (cannot open or read). */
MT_NODISCARD enum mt_err mt_config_load(const char *path, const char *const *known,
                                        size_t n_known, struct mt_config **out,
                                        unsigned *line);

void mt_config_free(struct mt_config *c);

/* The value of `key`, owned by `c`, or NULL when the file does not set it. */
const char *mt_config_get(const struct mt_config *c, const char *key);

/* The number of entries and the i-th in file order (key and value owned by
 * `c`; *line may be NULL).  Returns MT_ERR_ARG when i is out of range. */
size_t mt_config_count(const struct mt_config *c);
MT_NODISCARD enum mt_err mt_config_entry(const struct mt_config *c, size_t i, const char **key,
                                         const char **value, unsigned *line);

#endif
