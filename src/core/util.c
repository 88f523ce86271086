/*
 * util.c — mt_util.h: refusal sentences and atomic file replacement.
 *
 * The temporary file sits beside the target (same directory, so rename is
 * atomic on one file system) and a stale one from a crash is removed
 * first; it is created with O_EXCL|O_NOFOLLOW, so a link planted under its
 * name is never followed.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "medtrust/mt_util.h"

int64_t mt_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void mt_say(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

enum mt_err mt_file_replace(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX];
	size_t off = 0;
	int fd, n = snprintf(tmp, sizeof tmp, "%s.tmp", path);

	if (n < 0 || (size_t)n >= sizeof tmp)
		return MT_ERR_ARG;
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
	if (fd < 0)
		return MT_ERR_IO;
	while (off < len) {
		ssize_t w = write(fd, (const char *)data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (off != len || fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) {
		close(fd);
		(void)unlink(tmp);
		return MT_ERR_IO;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		(void)unlink(tmp);
		return MT_ERR_IO;
	}
	return MT_OK;
}

enum mt_err mt_file_read(const char *path, size_t max, uint8_t **buf, size_t *len)
{
	FILE *f;
	uint8_t *b;
	size_t n;

	if (path == NULL || buf == NULL || len == NULL || max == SIZE_MAX)
		return MT_ERR_ARG;
	*buf = NULL;
	*len = 0;
	f = fopen(path, "rb");
	if (f == NULL)
		return errno == ENOENT ? MT_ERR_NOT_FOUND : MT_ERR_IO;
	b = malloc(max + 1);
	if (b == NULL) {
		fclose(f);
		return MT_ERR_NOMEM;
	}
	n = fread(b, 1, max + 1, f);
	if (ferror(f) || n > max) {
		bool too_big = !ferror(f);

		fclose(f);
		free(b);
		return too_big ? MT_ERR_BUFFER : MT_ERR_IO;
	}
	fclose(f);
	b[n] = 0;
	*buf = b;
	*len = n;
	return MT_OK;
}
