/*
 * audit_file.c — the checkpoint file kept outside the audit database
 * (threat J03; mt_audit.h, docs/audit.md).
 *
 * Each checkpoint is appended as one line with a single write() on a
 * descriptor opened with O_APPEND, so lines from several processes never
 * interleave, and fsync'd before the call returns: a checkpoint the caller
 * was told about survives a crash.  Reading hands the lines to audit.c,
 * which decodes and verifies them; this file knows nothing of COSE.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_int.h"

enum mt_err mt_audit__file_append(const char *path, const uint8_t *cose, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char line[MT_AUDIT__LINE_MAX];
	size_t n = 0;
	ssize_t w;
	int fd, rc;

	if (path == NULL || cose == NULL || len == 0 || 2 * len + 1 > sizeof line)
		return MT_ERR_ARG;
	for (size_t i = 0; i < len; i++) {
		line[n++] = hex[cose[i] >> 4];
		line[n++] = hex[cose[i] & 15];
	}
	line[n++] = '\n';

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return MT_ERR_IO;
	do {
		w = write(fd, line, n);
	} while (w < 0 && errno == EINTR);
	rc = (w == (ssize_t)n && fsync(fd) == 0) ? 0 : -1;
	if (close(fd) != 0)
		rc = -1;
	return rc == 0 ? MT_OK : MT_ERR_IO;
}

enum mt_err mt_audit__file_read(const char *path, mt_audit__line_cb cb, void *arg)
{
	char *buf = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t got;
	enum mt_err e = MT_OK;
	FILE *f;

	if (path == NULL || cb == NULL)
		return MT_ERR_ARG;
	f = fopen(path, "re");
	if (f == NULL)
		return errno == ENOENT ? MT_OK : MT_ERR_IO;
	while (e == MT_OK && (got = getline(&buf, &cap, f)) >= 0) {
		size_t n = (size_t)got;
		lineno++;
		if (n > 0 && buf[n - 1] == '\n')
			n--;
		if (n > MT_AUDIT__LINE_MAX)
			n = MT_AUDIT__LINE_MAX;
		e = cb(buf, n, lineno, arg);
	}
	if (e == MT_OK && ferror(f))
		e = MT_ERR_IO;
	free(buf);
	fclose(f);
	return e;
}
