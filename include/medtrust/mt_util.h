/*
 * mt_util.h — small helpers every layer needs: a refusal sentence into a
 * caller's buffer, a file replaced atomically or read whole, and a day
 * number of a calendar date.
 */
#ifndef MT_UTIL_H
#define MT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"

/* vsnprintf into why[0..cap); nothing when why is NULL or cap 0. */
__attribute__((format(printf, 3, 4))) void mt_say(char *why, size_t cap, const char *fmt, ...);

/* Replace `path` with data[0..len) so that a reader (or a power cut) sees
 * the old file or the new one, never a mix: write PATH.tmp (O_EXCL,
 * O_NOFOLLOW, `mode`), fsync, rename over PATH.  Errors: MT_ERR_ARG (path
 * too long), MT_ERR_IO. */
MT_NODISCARD enum mt_err mt_file_replace(const char *path, const void *data, size_t len,
                                         unsigned mode);

/* Read the whole file at `path` (at most `max` bytes) into a new buffer
 * with a NUL after the data (*buf, the caller frees it).  Errors:
 * MT_ERR_NOT_FOUND (no such file), MT_ERR_BUFFER (over max), MT_ERR_IO,
 * MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_file_read(const char *path, size_t max, uint8_t **buf, size_t *len);

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1..12,
 * d 1..31; the caller checks the day exists): H. Hinnant's days_from_civil. */
int64_t mt_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
