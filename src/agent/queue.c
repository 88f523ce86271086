/*
 * queue.c — the device's store-and-forward queue and its message counter
 * (queue.h; protocol §4a and §5; threats FI07, FI12, FI19, A22;
 * docs/device-agent.md, "Store-and-forward queue and counter").
 *
 * The queue is a directory.  Each packet is one file named by its counter,
 * sixteen lower-case hex digits and ".pkt", so that a sorted listing is the
 * send order:
 *
 *   "MTQ1" | version 1 (u8) | counter (u64 BE) | topic (u8) | length (u32 BE)
 *   | the packet (length bytes) | SHA-256 of everything before it
 *
 * A put writes the whole file under the temporary name "tmp-put" (created
 * O_EXCL, 0600), fsyncs it, closes it, renames it to its final name and
 * fsyncs the directory; only then does it return MT_OK.  rename() is
 * atomic, so the final name holds either nothing or a whole, synced file:
 * a crash at any earlier step leaves at most a "tmp-*" file, which the next
 * open deletes.  Open checks every packet file again (header, length,
 * digest, name = counter inside): what fails — media damage, a hand-edited
 * or renamed file — is moved to bad/ (at most MT_DQ_BAD_KEEP kept) and
 * counted, and never sent.  The digest is an integrity check against
 * damage, not against an attacker who can write the device's disk.
 *
 * The full-queue policy (FI07) drops the oldest routine packet when the
 * queue holds max_packets; alerts are never dropped and may take the queue
 * up to 2 × max_packets.  The drop count must equal what the device
 * reports, across power cuts too, so a drop is a small transaction: the
 * file "dropped" (magic "MTD1", count u64 BE, victim counter u64 BE, the
 * first 8 bytes of SHA-256 over those) is replaced durably — temporary
 * file, fsync, rename, directory fsync — naming the new count and the
 * victim (none for a routine packet dropped before it was written, when
 * only alerts are queued), and only then is the victim's file unlinked.
 * The new packet is already synced under its temporary name by then and
 * is renamed into place last.  Open finishes an
 * interrupted drop by unlinking the victim named in the record if it is
 * still there.  A victim's counter never comes back (puts must be above
 * it), so the roll-forward can only ever remove the packet it was meant
 * for.  Before a new record replaces the old one, the previous victim's
 * unlink has been made durable (every unlink is followed by a directory
 * fsync before the next record is written), so no drop is ever lost.
 *
 * An acknowledgement unlinks the covered files and fsyncs the directory
 * once; a crash in between only brings packets back (they are sent again
 * and the hub's replay window absorbs the duplicate).
 *
 * In memory the queue keeps a sorted index (counter, topic, length) of at
 * most 2 × max_packets entries (more only when a reopen with a smaller
 * bound finds more alerts than that; never over 2 × MT_DQ_MAX_PACKETS)
 * and two buffers of one largest file each (one for reading, one for
 * writing, so a walk's callback may put); put, walk and ack allocate
 * nothing of their own.  The directory is flock()ed so that two processes
 * never share a queue.
 *
 * The counter file holds the exclusive end of the reserved block: "MTC1",
 * end (u64 BE), the first 8 bytes of SHA-256 over those — 20 bytes, written
 * with the same temporary-file protocol.  mt_ctr_next writes a new end
 * before it hands out the first counter below it, so every counter ever
 * handed out is below the end on disk; open continues at that end and
 * skips what was left of the block (receipts allow gaps, §4a).  A file
 * that does not check out is MT_ERR_QUEUE_CORRUPT: guessing would risk
 * reusing a counter, which the hub would refuse as a replay.
 *
 * Every system call that changes the disk reports itself to
 * mt_dq__step_hook (queue_int.h), which the power-cut sweep of the tests
 * uses to stop a child process after each of them in turn.
 */
#define _DEFAULT_SOURCE /* flock() */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "medtrust/mt_crypto.h"
#include "queue.h"
#include "queue_int.h"

#define HDR_LEN 18
#define DIGEST_LEN 32
#define FILE_MAX (HDR_LEN + MT_DQ_MAX_LEN + DIGEST_LEN)
#define NAME_HEX 16
#define NAME_LEN (NAME_HEX + 4) /* + ".pkt" */
#define NAME_CAP 24
#define TMP_PREFIX "tmp-"
#define TMP_PUT "tmp-put"
#define TMP_DROPPED "tmp-dropped"
#define DROPPED_NAME "dropped"
#define BAD_DIR "bad"
#define REC_LEN 28     /* the dropped record */
#define CTR_REC_LEN 20 /* the counter file */
#define SUM_LEN 8      /* SHA-256 prefix in the two small records */
#define NO_VICTIM UINT64_MAX

void (*mt_dq__step_hook)(const char *what);

static void step(const char *what)
{
	if (mt_dq__step_hook != NULL)
		mt_dq__step_hook(what);
}

/* ---- bytes and names -------------------------------------------------------- */

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool topic_ok(unsigned t)
{
	return t >= MT_DQ_VITALS && t <= MT_DQ_ACK;
}

static void pkt_name(uint64_t ctr, char name[NAME_CAP])
{
	(void)snprintf(name, NAME_CAP, "%016" PRIx64 ".pkt", ctr);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The counter a packet file name stands for; false when the name is not
 * exactly sixteen lower-case hex digits and ".pkt". */
static bool parse_name(const char *name, uint64_t *ctr)
{
	uint64_t v = 0;

	if (strlen(name) != NAME_LEN || strcmp(name + NAME_HEX, ".pkt") != 0)
		return false;
	for (int i = 0; i < NAME_HEX; i++) {
		char c = name[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return false;
		v = v << 4 | d;
	}
	*ctr = v;
	return true;
}

/* A small record: body[0..n) then the first SUM_LEN bytes of its SHA-256. */
static enum mt_err seal_record(uint8_t *rec, size_t n)
{
	uint8_t d[32];

	if (mt_sha256(rec, n, d) != MT_OK)
		return MT_ERR_CRYPTO;
	memcpy(rec + n, d, SUM_LEN);
	return MT_OK;
}

static bool record_ok(const uint8_t *rec, size_t n)
{
	uint8_t d[32];

	return mt_sha256(rec, n, d) == MT_OK && memcmp(rec + n, d, SUM_LEN) == 0;
}

/* ---- durable writes ------------------------------------------------------------ */

struct part {
	const void *p;
	size_t n;
};

static int write_all(int fd, const void *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = write(fd, (const uint8_t *)p + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
		step("write");
	}
	return 0;
}

static void unlink_quietly(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) != 0) {
		/* nothing to undo: a leftover is removed at the next open */
	}
}

/* Write parts into dir/tmp (O_EXCL, 0600), fsync and close it.  A leftover
 * of that name is removed first; on failure nothing is left. */
static enum mt_err write_tmp(int dirfd, const char *tmp, const struct part *parts, size_t n)
{
	int fd;

	if (unlinkat(dirfd, tmp, 0) == 0)
		step("unlink");
	else if (errno != ENOENT)
		return MT_ERR_IO;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return MT_ERR_IO;
	step("open");
	for (size_t i = 0; i < n; i++) {
		if (write_all(fd, parts[i].p, parts[i].n) != 0)
			goto fail;
	}
	if (fsync(fd) != 0)
		goto fail;
	step("fsync");
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	step("close");
	return MT_OK;
fail:
	if (fd >= 0)
		close(fd);
	unlink_quietly(dirfd, tmp);
	return MT_ERR_IO;
}

static int fsync_dir(int dirfd)
{
	if (fsync(dirfd) != 0)
		return -1;
	step("dirfsync");
	return 0;
}

/* fsync the directory that holds `path` (a new directory's entry). */
static int fsync_parent(const char *path)
{
	char parent[PATH_MAX];
	size_t n = strlen(path);
	int fd, rc;

	while (n > 1 && path[n - 1] == '/')
		n--; /* "q/" is "q" */
	while (n > 0 && path[n - 1] != '/')
		n--;
	if (n >= sizeof parent)
		return -1;
	if (n == 0) {
		memcpy(parent, ".", 2);
	} else {
		memcpy(parent, path, n);
		parent[n] = '\0';
	}
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync_dir(fd);
	close(fd);
	return rc;
}

/* Read at most cap bytes of dir/name into buf.  Returns 0, or -1 with errno
 * set: ENOENT no such file, ELOOP a symbolic link, EINVAL not a regular
 * file, EFBIG more than cap bytes, anything else an I/O error. */
static int read_small(int dirfd, const char *name, uint8_t *buf, size_t cap, size_t *len)
{
	struct stat st;
	size_t off = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		uint8_t extra;
		ssize_t r;

		if (off == cap) {
			r = read(fd, &extra, 1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r != 0) {
				close(fd);
				errno = r > 0 ? EFBIG : EIO;
				return -1;
			}
			break;
		}
		r = read(fd, buf + off, cap - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int saved = errno;

			close(fd);
			errno = saved;
			return -1;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	*len = off;
	return 0;
}

/* ---- the queue ------------------------------------------------------------------ */

struct ent {
	uint64_t ctr;
	uint32_t len;
	uint8_t topic;
	uint8_t gone; /* marked by mt_dq_ack */
};

struct mt_dq {
	int dirfd, baddirfd;
	size_t max;           /* max_packets */
	struct ent *idx;      /* sorted by ctr */
	size_t n, cap;        /* cap ≥ 2 × max */
	uint64_t dropped;     /* as in the "dropped" record */
	uint64_t victim;      /* the last drop's victim (NO_VICTIM: none) */
	size_t bad;           /* damaged files met since open */
	size_t bad_kept;      /* entries in bad/ */
	bool dirty;           /* an unlink or rename not yet followed by a dir fsync */
	uint8_t *rbuf, *wbuf; /* FILE_MAX + 1 each */
};

/* A put's counter must be above every counter queued and the last victim
 * (whose file a reopen would otherwise delete). */
static bool ctr_fresh(const struct mt_dq *q, uint64_t ctr)
{
	if (q->n > 0 && ctr <= q->idx[q->n - 1].ctr)
		return false;
	return q->victim == NO_VICTIM || ctr > q->victim;
}

/* First index position whose counter is ≥ ctr. */
static size_t lower_bound(const struct mt_dq *q, uint64_t ctr)
{
	size_t lo = 0, hi = q->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (q->idx[mid].ctr < ctr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void index_remove_at(struct mt_dq *q, size_t pos)
{
	memmove(&q->idx[pos], &q->idx[pos + 1], (q->n - pos - 1) * sizeof q->idx[0]);
	q->n--;
}

static void index_remove(struct mt_dq *q, uint64_t ctr)
{
	size_t pos = lower_bound(q, ctr);

	if (pos < q->n && q->idx[pos].ctr == ctr)
		index_remove_at(q, pos);
}

/* Position of the oldest routine (non-alert) packet, or q->n. */
static size_t oldest_routine(const struct mt_dq *q)
{
	size_t i = 0;

	while (i < q->n && q->idx[i].topic == MT_DQ_ALERT)
		i++;
	return i;
}

/* Move a damaged entry out of the queue's namespace and count it. */
static enum mt_err move_bad(struct mt_dq *q, const char *name)
{
	if (q->bad_kept < MT_DQ_BAD_KEEP && renameat(q->dirfd, name, q->baddirfd, name) == 0) {
		step("rename");
		q->bad_kept++;
	} else if (unlinkat(q->dirfd, name, 0) == 0) {
		step("unlink");
	} else if (errno != ENOENT) {
		return MT_ERR_IO;
	}
	q->bad++;
	q->dirty = true;
	return MT_OK;
}

enum load_result { LOAD_OK, LOAD_BAD, LOAD_GONE, LOAD_IO };

/* Read and check the packet file `name`, which must hold counter `ctr`;
 * on LOAD_OK its bytes are in q->rbuf and *e describes it. */
static enum load_result load_file(struct mt_dq *q, const char *name, uint64_t ctr, struct ent *e)
{
	uint8_t d[32];
	size_t n;
	uint32_t len;

	if (read_small(q->dirfd, name, q->rbuf, FILE_MAX, &n) != 0) {
		if (errno == ENOENT)
			return LOAD_GONE;
		if (errno == ELOOP || errno == EINVAL || errno == EFBIG || errno == EISDIR)
			return LOAD_BAD;
		return LOAD_IO;
	}
	if (n < HDR_LEN + DIGEST_LEN || memcmp(q->rbuf, "MTQ1", 4) != 0 || q->rbuf[4] != 1)
		return LOAD_BAD;
	len = get_be32(q->rbuf + 14);
	if (get_be64(q->rbuf + 5) != ctr || ctr > MT_CTR_LIMIT || !topic_ok(q->rbuf[13]) ||
	    len == 0 || len > MT_DQ_MAX_LEN || n != HDR_LEN + (size_t)len + DIGEST_LEN)
		return LOAD_BAD;
	if (mt_sha256(q->rbuf, HDR_LEN + (size_t)len, d) != MT_OK ||
	    memcmp(d, q->rbuf + HDR_LEN + len, DIGEST_LEN) != 0)
		return LOAD_BAD;
	e->ctr = ctr;
	e->len = len;
	e->topic = q->rbuf[13];
	e->gone = 0;
	return LOAD_OK;
}

/* The drop transaction: the record (count + 1, victim) durably in place,
 * then the victim's file unlinked and its entry removed.  `victim` is
 * NO_VICTIM for a packet dropped before it was written.  On any error
 * after the record became visible the count has risen all the same and
 * the victim is gone from the index (the record is what open believes);
 * *counted says whether that happened. */
static enum mt_err commit_drop(struct mt_dq *q, uint64_t victim, bool *counted)
{
	uint8_t rec[REC_LEN];
	struct part p = {rec, sizeof rec};
	enum mt_err e, rc = MT_OK;

	*counted = false;
	if (q->dropped == UINT64_MAX)
		return MT_ERR_INTERNAL;
	/* The previous victim's unlink must be durable before its record goes. */
	if (q->dirty) {
		if (fsync_dir(q->dirfd) != 0)
			return MT_ERR_IO;
		q->dirty = false;
	}
	memcpy(rec, "MTD1", 4);
	put_be64(rec + 4, q->dropped + 1);
	put_be64(rec + 12, victim);
	e = seal_record(rec, 20);
	if (e != MT_OK)
		return e;
	e = write_tmp(q->dirfd, TMP_DROPPED, &p, 1);
	if (e != MT_OK)
		return e;
	if (renameat(q->dirfd, TMP_DROPPED, q->dirfd, DROPPED_NAME) != 0) {
		unlink_quietly(q->dirfd, TMP_DROPPED);
		return MT_ERR_IO;
	}
	step("rename");
	*counted = true;
	q->dropped++;
	if (victim != NO_VICTIM)
		q->victim = victim;
	if (fsync_dir(q->dirfd) != 0) {
		rc = MT_ERR_IO;
		q->dirty = true;
	}
	if (victim != NO_VICTIM) {
		char name[NAME_CAP];

		pkt_name(victim, name);
		if (unlinkat(q->dirfd, name, 0) == 0)
			step("unlink");
		else if (errno != ENOENT)
			rc = MT_ERR_IO; /* open will finish it */
		index_remove(q, victim);
		q->dirty = true;
	}
	return rc;
}

/* Read "dropped" and finish the drop it names. */
static enum mt_err load_dropped(struct mt_dq *q)
{
	uint8_t rec[REC_LEN];
	size_t n;
	uint64_t victim;

	if (read_small(q->dirfd, DROPPED_NAME, rec, sizeof rec, &n) != 0) {
		if (errno == ENOENT)
			return MT_OK;
		if (errno == ELOOP || errno == EINVAL || errno == EFBIG)
			return move_bad(q, DROPPED_NAME);
		return MT_ERR_IO;
	}
	victim = n == REC_LEN ? get_be64(rec + 12) : 0;
	if (n != REC_LEN || memcmp(rec, "MTD1", 4) != 0 || !record_ok(rec, 20) ||
	    (victim != NO_VICTIM && victim > MT_CTR_LIMIT))
		return move_bad(q, DROPPED_NAME);
	q->dropped = get_be64(rec + 4);
	if (victim != NO_VICTIM) {
		char name[NAME_CAP];

		q->victim = victim;
		pkt_name(victim, name);
		if (unlinkat(q->dirfd, name, 0) == 0) {
			step("unlink");
			q->dirty = true;
		} else if (errno != ENOENT) {
			return MT_ERR_IO;
		}
	}
	return MT_OK;
}

static enum mt_err index_add(struct mt_dq *q, const struct ent *e)
{
	if (q->n == q->cap) {
		size_t cap = q->cap * 2;
		struct ent *p;

		/* Only a reopen with a smaller bound gets here; files beyond any
		 * bound ever allowed are not a queue this code wrote. */
		if (cap > 2 * (size_t)MT_DQ_MAX_PACKETS || cap > SIZE_MAX / sizeof *p)
			return MT_ERR_NOMEM;
		p = realloc(q->idx, cap * sizeof *p);
		if (p == NULL)
			return MT_ERR_NOMEM;
		q->idx = p;
		q->cap = cap;
	}
	q->idx[q->n++] = *e;
	return MT_OK;
}

static int ent_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct ent *)a)->ctr, y = ((const struct ent *)b)->ctr;

	return x < y ? -1 : x > y;
}

/* Count bad/'s entries, up to MT_DQ_BAD_KEEP. */
static enum mt_err count_bad(struct mt_dq *q)
{
	int fd = dup(q->baddirfd);
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		return MT_ERR_IO;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return MT_ERR_IO;
	}
	while (q->bad_kept < MT_DQ_BAD_KEEP && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			q->bad_kept++;
	}
	closedir(d);
	return MT_OK;
}

/* One pass over the directory: temporary leftovers removed, packet files
 * checked into the index or moved to bad/, anything else left alone. */
static enum mt_err scan(struct mt_dq *q)
{
	int fd = dup(q->dirfd);
	DIR *d;
	struct dirent *de;
	enum mt_err e = MT_OK;

	if (fd < 0)
		return MT_ERR_IO;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return MT_ERR_IO;
	}
	for (;;) {
		const char *name;
		uint64_t ctr;
		struct ent ent;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				e = MT_ERR_IO;
			break;
		}
		name = de->d_name;
		if (strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
			if (unlinkat(q->dirfd, name, 0) == 0) {
				step("unlink");
				q->dirty = true;
			} else if (errno != ENOENT) {
				e = MT_ERR_IO;
				break;
			}
			continue;
		}
		if (!ends_with(name, ".pkt"))
			continue; /* ".", "..", bad/, "dropped", anything not ours */
		if (!parse_name(name, &ctr)) {
			e = move_bad(q, name);
			if (e != MT_OK)
				break;
			continue;
		}
		switch (load_file(q, name, ctr, &ent)) {
		case LOAD_OK:
			e = index_add(q, &ent);
			break;
		case LOAD_BAD:
			e = move_bad(q, name);
			break;
		case LOAD_GONE:
			break;
		case LOAD_IO:
			e = MT_ERR_IO;
			break;
		}
		if (e != MT_OK)
			break;
	}
	closedir(d);
	return e;
}

enum mt_err mt_dq_open(const char *dir, size_t max_packets, struct mt_dq **out)
{
	struct mt_dq *q;
	enum mt_err e;

	if (out != NULL)
		*out = NULL;
	if (dir == NULL || out == NULL || dir[0] == '\0' || strlen(dir) >= PATH_MAX ||
	    max_packets == 0 || max_packets > MT_DQ_MAX_PACKETS)
		return MT_ERR_ARG;
	q = calloc(1, sizeof *q);
	if (q == NULL)
		return MT_ERR_NOMEM;
	q->dirfd = q->baddirfd = -1;
	q->max = max_packets;
	q->victim = NO_VICTIM;
	q->cap = 2 * max_packets;
	q->idx = calloc(q->cap, sizeof q->idx[0]);
	q->rbuf = malloc(FILE_MAX + 1);
	q->wbuf = malloc(FILE_MAX + 1);
	if (q->idx == NULL || q->rbuf == NULL || q->wbuf == NULL) {
		e = MT_ERR_NOMEM;
		goto fail;
	}
	e = MT_ERR_IO;
	if (mkdir(dir, 0700) == 0) {
		step("mkdir");
		if (fsync_parent(dir) != 0)
			goto fail;
	} else if (errno != EEXIST) {
		goto fail;
	}
	q->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->dirfd < 0 || flock(q->dirfd, LOCK_EX | LOCK_NB) != 0)
		goto fail;
	if (mkdirat(q->dirfd, BAD_DIR, 0700) == 0) {
		step("mkdir");
		q->dirty = true;
	} else if (errno != EEXIST) {
		goto fail;
	}
	q->baddirfd = openat(q->dirfd, BAD_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (q->baddirfd < 0)
		goto fail;
	if ((e = count_bad(q)) != MT_OK || (e = load_dropped(q)) != MT_OK || (e = scan(q)) != MT_OK)
		goto fail;
	qsort(q->idx, q->n, sizeof q->idx[0], ent_cmp);
	/* A smaller bound than last time: apply the policy now. */
	while (q->n > q->max) {
		size_t r = oldest_routine(q);
		bool counted;

		if (r == q->n)
			break;
		e = commit_drop(q, q->idx[r].ctr, &counted);
		if (e != MT_OK)
			goto fail;
	}
	e = MT_ERR_IO;
	if (q->dirty) {
		if (fsync_dir(q->dirfd) != 0)
			goto fail;
		q->dirty = false;
	}
	*out = q;
	return MT_OK;
fail:
	mt_dq_close(q);
	return e;
}

void mt_dq_close(struct mt_dq *q)
{
	if (q == NULL)
		return;
	if (q->dirty && q->dirfd >= 0 && fsync_dir(q->dirfd) != 0) {
		/* nothing more to do: every state on disk is one open accepts */
	}
	if (q->baddirfd >= 0)
		close(q->baddirfd);
	if (q->dirfd >= 0)
		close(q->dirfd); /* releases the flock */
	free(q->idx);
	free(q->rbuf);
	free(q->wbuf);
	free(q);
}

enum mt_err mt_dq_put(struct mt_dq *q, uint64_t ctr, enum mt_dq_topic topic, const uint8_t *pkt,
                      size_t len)
{
	size_t victim = SIZE_MAX, total;
	char name[NAME_CAP];
	struct part parts[3];
	bool counted;
	enum mt_err e;

	if (q == NULL || pkt == NULL || len == 0 || len > MT_DQ_MAX_LEN || ctr > MT_CTR_LIMIT ||
	    !topic_ok((unsigned)topic) || !ctr_fresh(q, ctr))
		return MT_ERR_ARG;
	if (q->n >= q->max) {
		size_t r = oldest_routine(q);

		if (r < q->n) {
			victim = r;
		} else if (topic != MT_DQ_ALERT) {
			/* Only alerts queued: the new packet is the oldest routine one. */
			e = commit_drop(q, NO_VICTIM, &counted);
			return counted ? MT_OK : e;
		} else if (q->n >= 2 * q->max) {
			return MT_ERR_QUEUE_FULL;
		}
	}
	if (victim == SIZE_MAX && q->n >= q->cap)
		return MT_ERR_INTERNAL; /* cannot happen: n > max only when all are alerts */

	memcpy(q->wbuf, "MTQ1", 4);
	q->wbuf[4] = 1;
	put_be64(q->wbuf + 5, ctr);
	q->wbuf[13] = (uint8_t)topic;
	put_be32(q->wbuf + 14, (uint32_t)len);
	memcpy(q->wbuf + HDR_LEN, pkt, len);
	total = HDR_LEN + len;
	if (mt_sha256(q->wbuf, total, q->wbuf + total) != MT_OK)
		return MT_ERR_CRYPTO;
	/* Three writes, so that the power-cut sweep also stops between them. */
	parts[0] = (struct part){q->wbuf, HDR_LEN};
	parts[1] = (struct part){q->wbuf + HDR_LEN, len};
	parts[2] = (struct part){q->wbuf + total, DIGEST_LEN};
	e = write_tmp(q->dirfd, TMP_PUT, parts, 3);
	if (e != MT_OK)
		return e;
	if (victim != SIZE_MAX) {
		e = commit_drop(q, q->idx[victim].ctr, &counted);
		if (e != MT_OK) {
			unlink_quietly(q->dirfd, TMP_PUT);
			return e;
		}
	}
	pkt_name(ctr, name);
	if (renameat(q->dirfd, TMP_PUT, q->dirfd, name) != 0) {
		unlink_quietly(q->dirfd, TMP_PUT);
		return MT_ERR_IO;
	}
	step("rename");
	if (fsync_dir(q->dirfd) != 0) {
		/* Not durable: take it back, so a retry with ctr is accepted. */
		unlink_quietly(q->dirfd, name);
		q->dirty = true;
		return MT_ERR_IO;
	}
	q->dirty = false;
	q->idx[q->n++] = (struct ent){.ctr = ctr, .len = (uint32_t)len, .topic = (uint8_t)topic};
	return MT_OK;
}

enum mt_err mt_dq_ack(struct mt_dq *q, const uint64_t (*ranges)[2], size_t n, size_t *removed)
{
	enum mt_err rc = MT_OK;
	size_t kept = 0, gone = 0;

	if (removed != NULL)
		*removed = 0;
	if (q == NULL || (n > 0 && ranges == NULL))
		return MT_ERR_ARG;
	for (size_t r = 0; r < n; r++) {
		uint64_t first = ranges[r][0], last = ranges[r][1];

		for (size_t i = lower_bound(q, first);
		     i < q->n && first <= last && q->idx[i].ctr <= last; i++)
			q->idx[i].gone = 1;
	}
	for (size_t i = 0; i < q->n; i++) {
		struct ent *e = &q->idx[i];

		if (e->gone) {
			char name[NAME_CAP];

			pkt_name(e->ctr, name);
			if (unlinkat(q->dirfd, name, 0) == 0) {
				step("unlink");
			} else if (errno != ENOENT) {
				rc = MT_ERR_IO; /* it stays queued */
				e->gone = 0;
			}
		}
		if (e->gone) {
			gone++;
			q->dirty = true;
		} else {
			q->idx[kept++] = *e;
		}
	}
	q->n = kept;
	if (q->dirty) {
		if (fsync_dir(q->dirfd) != 0)
			rc = MT_ERR_IO;
		else
			q->dirty = false;
	}
	if (removed != NULL)
		*removed = gone;
	return rc;
}

size_t mt_dq_count(const struct mt_dq *q)
{
	return q == NULL ? 0 : q->n;
}

uint64_t mt_dq_oldest(const struct mt_dq *q)
{
	return q == NULL || q->n == 0 ? UINT64_MAX : q->idx[0].ctr;
}

uint64_t mt_dq_dropped(const struct mt_dq *q)
{
	return q == NULL ? 0 : q->dropped;
}

size_t mt_dq_bad(const struct mt_dq *q)
{
	return q == NULL ? 0 : q->bad;
}

enum mt_err mt_dq_walk(struct mt_dq *q, uint64_t from,
                       enum mt_err (*cb)(void *ctx, uint64_t ctr, enum mt_dq_topic topic,
                                         const uint8_t *pkt, size_t len),
                       void *ctx)
{
	size_t pos;

	if (q == NULL || cb == NULL)
		return MT_ERR_ARG;
	pos = lower_bound(q, from);
	while (pos < q->n) {
		struct ent want = q->idx[pos], got;
		char name[NAME_CAP];
		enum mt_err e;

		pkt_name(want.ctr, name);
		enum load_result lr = load_file(q, name, want.ctr, &got);

		if (lr == LOAD_IO)
			return MT_ERR_IO;
		if (lr == LOAD_GONE) { /* removed behind our back: lost, so counted */
			q->bad++;
			index_remove_at(q, pos);
			continue;
		}
		if (lr == LOAD_BAD || got.topic != want.topic || got.len != want.len) {
			e = move_bad(q, name);
			if (e != MT_OK)
				return e;
			index_remove_at(q, pos);
			continue;
		}
		e = cb(ctx, want.ctr, (enum mt_dq_topic)want.topic, q->rbuf + HDR_LEN, want.len);
		if (e != MT_OK)
			return e;
		/* cb may have put or acked: go on by counter, not by position. */
		pos = lower_bound(q, want.ctr + 1);
	}
	return MT_OK;
}

/* ---- the counter ------------------------------------------------------------------ */

struct mt_ctr {
	int dirfd;
	char base[NAME_MAX + 1];
	char tmp[NAME_MAX + 1];
	uint64_t next;  /* the next counter to hand out */
	uint64_t end;   /* the end of the reserved block on disk (exclusive) */
	uint64_t block; /* reservation size */
};

#define CTR_END_MAX (MT_CTR_LIMIT + 1) /* 2^63: every counter handed out */

/* Write the end `end` durably (temporary file, fsync, rename, dir fsync). */
static enum mt_err ctr_store(struct mt_ctr *c, uint64_t end)
{
	uint8_t rec[CTR_REC_LEN];
	struct part p = {rec, sizeof rec};
	enum mt_err e;

	memcpy(rec, "MTC1", 4);
	put_be64(rec + 4, end);
	e = seal_record(rec, 12);
	if (e != MT_OK)
		return e;
	e = write_tmp(c->dirfd, c->tmp, &p, 1);
	if (e != MT_OK)
		return e;
	if (renameat(c->dirfd, c->tmp, c->dirfd, c->base) != 0) {
		unlink_quietly(c->dirfd, c->tmp);
		return MT_ERR_IO;
	}
	step("rename");
	return fsync_dir(c->dirfd) == 0 ? MT_OK : MT_ERR_IO;
}

enum mt_err mt_ctr_open(const char *path, uint64_t block, struct mt_ctr **out)
{
	char dir[PATH_MAX];
	const char *slash, *base;
	uint8_t rec[CTR_REC_LEN];
	size_t n, dlen;
	struct mt_ctr *c;
	enum mt_err e = MT_ERR_IO;
	int w;

	if (out != NULL)
		*out = NULL;
	if (path == NULL || out == NULL || block == 0 || block > MT_CTR_MAX_BLOCK)
		return MT_ERR_ARG;
	slash = strrchr(path, '/');
	base = slash == NULL ? path : slash + 1;
	dlen = slash == NULL ? 0 : (size_t)(slash - path);
	if (base[0] == '\0' || strlen(base) + 4 > NAME_MAX || dlen >= sizeof dir)
		return MT_ERR_ARG;
	if (slash == NULL)
		memcpy(dir, ".", 2);
	else if (dlen == 0)
		memcpy(dir, "/", 2);
	else {
		memcpy(dir, path, dlen);
		dir[dlen] = '\0';
	}
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return MT_ERR_NOMEM;
	c->block = block;
	w = snprintf(c->base, sizeof c->base, "%s", base);
	if (w < 0 || (size_t)w >= sizeof c->base ||
	    (w = snprintf(c->tmp, sizeof c->tmp, "%s.tmp", base)) < 0 ||
	    (size_t)w >= sizeof c->tmp) {
		free(c);
		return MT_ERR_ARG;
	}
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		goto fail;
	if (unlinkat(c->dirfd, c->tmp, 0) == 0)
		step("unlink");
	else if (errno != ENOENT)
		goto fail;
	if (read_small(c->dirfd, c->base, rec, sizeof rec, &n) != 0) {
		if (errno == EINVAL || errno == EFBIG || errno == ELOOP) {
			e = MT_ERR_QUEUE_CORRUPT;
			goto fail;
		}
		if (errno != ENOENT)
			goto fail;
		e = ctr_store(c, 0); /* absent: created at 0 */
		if (e != MT_OK)
			goto fail;
		c->end = 0;
	} else {
		if (n != CTR_REC_LEN || memcmp(rec, "MTC1", 4) != 0 || !record_ok(rec, 12) ||
		    get_be64(rec + 4) > CTR_END_MAX) {
			e = MT_ERR_QUEUE_CORRUPT;
			goto fail;
		}
		c->end = get_be64(rec + 4);
	}
	c->next = c->end; /* the rest of the last block is skipped */
	*out = c;
	return MT_OK;
fail:
	mt_ctr_close(c);
	return e;
}

void mt_ctr_close(struct mt_ctr *c)
{
	if (c == NULL)
		return;
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c);
}

enum mt_err mt_ctr_next(struct mt_ctr *c, uint64_t *ctr)
{
	if (c == NULL || ctr == NULL)
		return MT_ERR_ARG;
	if (c->next > MT_CTR_LIMIT)
		return MT_ERR_QUEUE_FULL;
	if (c->next == c->end) {
		uint64_t room = CTR_END_MAX - c->end;
		uint64_t end = c->end + (c->block < room ? c->block : room);
		enum mt_err e = ctr_store(c, end);

		if (e != MT_OK)
			return e;
		c->end = end;
	}
	*ctr = c->next++;
	return MT_OK;
}
