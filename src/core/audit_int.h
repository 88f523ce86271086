/*
 * audit_int.h — what the audit chain's logic (audit.c) needs from the
 * outside checkpoint file (audit_file.c).  Never installed, never included
 * outside src/core and the audit tests.
 *
 * The file is append-only text: one line per checkpoint, the lowercase hex
 * of its COSE_Sign1, then "\n".  Text so that an operator can copy it to a
 * WORM store, a ticket or paper, and read it with nothing but a hex decoder.
 */
#ifndef MT_AUDIT_INT_H
#define MT_AUDIT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "medtrust/mt_err.h"

/* Longest line accepted when reading the file (a longer one is handed to
 * the callback cut to this length, which then fails to decode). */
#define MT_AUDIT__LINE_MAX 1024

/* Append one line (hex of cose[0..len) and "\n") to `path` with one write()
 * on a descriptor opened O_APPEND|O_CREAT (mode 0644), then fsync it.
 * Errors: MT_ERR_IO, MT_ERR_ARG. */
enum mt_err mt_audit__file_append(const char *path, const uint8_t *cose, size_t len);

/* Hand every line of `path` (without its "\n") to `cb` with its 1-based
 * number; a missing file has no lines.  Stops at the first non-OK return of
 * cb and returns it.  Errors: MT_ERR_IO, MT_ERR_NOMEM. */
typedef enum mt_err (*mt_audit__line_cb)(const char *line, size_t len, size_t lineno, void *arg);
enum mt_err mt_audit__file_read(const char *path, mt_audit__line_cb cb, void *arg);

/* The columns every SELECT of the audit table starts with, "seq, time_ms,
 * kind, actor, action, subject, outcome, detail", into a zeroed *r (r->
 * malformed set when one is not of its type, range or size); the caller
 * reads the columns after them.  audit_sqlite.c and audit_search.c. */
struct sqlite3_stmt;
struct mt_audit_record;
void mt_audit__row_fields(struct sqlite3_stmt *st, struct mt_audit_record *r);

#endif
