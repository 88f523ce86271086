/*
 * test_store_powerloss.c — threat FI09 (power loss of the hub host) as a
 * crash-VFS test of the real readings store, in the manner of SQLite's own
 * crash tests (threats.md FI09; docs/storage.md "Durability").
 *
 * Why another FI09 test.  test_store_at_rest.c kills a hub process: what
 * it wrote but never fsync'ed stays in the kernel's page cache and reaches
 * the disk anyway, so that test proves atomicity against a crash, not
 * durability against a power cut.  Here a power cut loses everything the
 * store did not sync, at 1,000 instants, and the store must still open
 * clean with every receipted reading in it: that is what synchronous=FULL
 * is for, and the negative control shows the test notices when it is off.
 *
 * The power-loss VFS.  A test-only SQLite VFS ("mt-powerloss") wraps the
 * real "unix" VFS and is registered as the default before any store
 * opens, so mt_store_open goes through it unchanged.  While armed it
 * tracks every file SQLite opens or deletes in the run directory (data.db,
 * data.db-wal, data.db-journal) and keeps, per file name:
 *
 *   - the current inode's last-synced state, as an undo log: before the
 *     first xWrite or xTruncate that touches a 512-byte sector since the
 *     last xSync, the sector's prior content is saved; xSync (whatever its
 *     flags: fdatasync too persists the size needed to read the data) drops
 *     the log and records the size — everything is durable then;
 *   - the directory as of its last sync: whether the name existed, and,
 *     when the inode it named has since been deleted, that inode's synced
 *     content (a "ghost").  The unix VFS syncs the directory at the first
 *     xSync of a handle opened with SQLITE_OPEN_CREATE as a WAL or journal
 *     (UNIXFILE_DIRSYNC), and at xDelete(dirSync=1); the model does the
 *     same, and nothing else makes a name durable.  So a -wal created since
 *     the last directory sync vanishes at a cut, and one deleted without a
 *     directory sync (sqlite3WalClose deletes with dirSync=0; a rollback
 *     journal is deleted so under FULL) comes back with its synced content:
 *     a file deleted and re-created is two inodes, the old one's ghost and
 *     the new one's undo log.  data.db itself is made by store.c's
 *     create_private with open(2), outside SQLite: the VFS sees it appear
 *     and treats it as a new inode whose name is durable only once some
 *     directory sync has happened (the journal's, on a fresh database).
 *
 * The -shm is never tracked: it is shared memory, never synced, and its
 * content is meaningless after a reboot.  On "reboot" the test deletes it,
 * zeroes it or leaves its stale bytes (one of the three per run); SQLite's
 * first opener must rebuild it from the WAL in each case.
 *
 * A power cut at operation N.  Every mutating operation on a tracked file
 * (xWrite, xTruncate, xSync, xDelete, a creating xOpen) is numbered; the
 * N-th and all after it fail — SQLITE_IOERR_*, SQLITE_CANTOPEN — and leave
 * the files untouched.  Failing rather than ignoring: the process must live
 * on to check the result, and an error makes SQLite stop and roll back at
 * once instead of believing a write it then reads back differently; either
 * way nothing after the cut reaches the files.  A commit is receipted only
 * when mt_store_commit returned MT_OK and the power was still on when it
 * returned (a commit whose WAL sync made it while a later step failed is
 * durable but was never receipted: allowed, and counted as "in flight").
 * The dying store is then closed (its close cannot write either), and the
 * loss is applied after the fact, as SQLite's crash test does: each file
 * goes back to its last synced content, each name to its state at the last
 * directory sync.  A real disk may have written some unsynced sectors
 * before the cut, in any order, so each run reverts in one of three modes:
 * strict (nothing unsynced survives), sectors (each unsynced 512-byte
 * sector, growth included, and each unsynced name change survives or not
 * by a coin of the run's seed; lost sectors inside a kept extension read
 * as zeros — never a torn sector, which SQLite's default powersafe-
 * overwrite assumption rules out), keep-all (everything at the cut
 * survives: a process crash, the control for the other two).  The VFS
 * never calls the real fsync: the real disk is never cut, so it buys
 * nothing but time.
 *
 * The workload goes through the public API with a real KEK in SoftHSM2:
 * mt_store_open, 36 groups of 1–50 readings over one or two of five
 * devices (per device: mt_store_window_load, mt_replay_check/mark,
 * mt_store_reading_put with a random-looking COSE_Sign1, the window saved
 * in the transaction, mt_store_commit), a patient added and assigned, a
 * passive checkpoint (what auto-checkpoint runs), and a close and reopen
 * (a hub restart: checkpoint, -wal deleted and created again).  DEKs are
 * limited to 250 rows so that new keys are made inside the sweep.  A run
 * starts either from a fresh database (create_private, journal_mode=WAL
 * through a rollback journal, schema) or from a copy of a base database
 * that already holds 60 readings.  The shape of the workload is fixed, so
 * its operation count W is measured once by a run that is never cut.
 *
 * The sweep: the first runs cut at every operation of a short prefix
 * (fresh database, then base), the rest at a uniformly random operation in
 * 1..W, or (one run in fifty) after the last one: power lost idle after
 * the last receipt; all from a fixed seed.  After each cut and reboot:
 * the store opens through mt_store_open with the same KEK, PRAGMA
 * integrity_check is "ok", every stored reading decrypts and is
 * byte-exact (its Sign1 and row fields), every receipted reading is there
 * under its id, each group is there whole or not at all and only the last
 * one attempted may be there unreceipted, the patient and assignment are
 * there when receipted, each device's window has exactly its stored
 * counters (every one MT_REPLAY_DUPLICATE, every other counter of the
 * window MT_REPLAY_NEW, its top the highest), and the store takes a new
 * reading.  Figures printed: runs, the cut distribution (by operation,
 * file, workload phase, position), corrupt, lost, partial.
 *
 * Negative control: the same sweep with PRAGMA synchronous=OFF set on the
 * store's connection right after each open (store_int.h) must lose
 * receipted readings in some runs; if it did not, the test would not be
 * measuring durability.  (Its losses are counted in the runs whose
 * database still opens clean; it corrupts the database in others.)
 *
 * Runs: MT_POWERLOSS_RUNS (default 1,000; 200 under AddressSanitizer) and
 * MT_POWERLOSS_NEG_RUNS (default the same).
 */
#define _XOPEN_SOURCE 700 /* POSIX 2008 and realpath */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "medtrust/mt_keystore.h"
#include "medtrust/mt_replay.h"
#include "medtrust/mt_store.h"
#include "mt_softhsm.h"
#include "mt_testutil.h"
#include "store_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define PL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PL_ASAN 1
#endif
#endif
#ifndef PL_ASAN
#define PL_ASAN 0
#endif

#define PL_SECTOR 512
#define PL_NODES 8
#define PL_PATH 512
#define PL_DEVS 5
#define PL_GROUPS 36
#define PL_GROUP_MAX 50
#define PL_CTR_MAX 1024 /* counters per device: all inside one replay window */
#define PL_SIGN1_MAX 400
#define PL_BASE_DEVS 3
#define PL_BASE_GROUP 10 /* base: two groups of this many per base device */
#define PL_DEK_ROWS 250
#define PL_PREFIX_MAX 60
#define PL_REPORT_MAX 5
#define PL_T0 UINT64_C(1764300000000)
#define PL_PLAN_SEED UINT64_C(0x4649303970776c73)
#define PL_BASE_SEED UINT64_C(0x62617365b00f1e55)
#define PL_SWEEP_SEED UINT64_C(0x0fa11ed0c0ffee09)
#define PL_NEG_SEED UINT64_C(0x5a5a0ff0123456ab)

/* ---- the power-loss VFS -------------------------------------------------- */

enum pl_op { OP_WRITE, OP_TRUNCATE, OP_SYNC, OP_DELETE, OP_CREATE, OP_NONE, OP__N };
static const char *const op_name[OP__N] = {"write",  "truncate", "sync",
                                           "delete", "create",   "after the last op"};
enum pl_kind { K_DB, K_WAL, K_JOURNAL, K_NONE, K__N };
static const char *const kind_name[K__N] = {"data.db", "-wal", "-journal", "none"};
enum pl_phase { PH_OPEN, PH_GROUP, PH_PATIENT, PH_CHECKPOINT, PH_RESTART, PH_IDLE, PH__N };
static const char *const phase_name[PH__N] = {"open",       "group",   "patient",
                                              "checkpoint", "restart", "idle"};
enum pl_mode { MODE_STRICT, MODE_SECTORS, MODE_KEEP_ALL, MODE__N };
static const char *const mode_name[MODE__N] = {"strict", "sectors", "keep-all"};
enum pl_shm { SHM_DELETE, SHM_ZERO, SHM_STALE, SHM__N };
static const char *const shm_name[SHM__N] = {"deleted", "zeroed", "stale"};

/* The name as of the last directory sync. */
enum pl_dirent { D_NONE, D_CUR, D_GHOST };

struct pl_sector {
	int64_t idx;
	uint8_t b[PL_SECTOR];
};

/* One file name in the run directory. */
struct pl_node {
	bool used;
	char path[PL_PATH];
	enum pl_kind kind;
	enum pl_dirent d;
	uint8_t *ghost; /* D_GHOST: the deleted inode's synced content */
	size_t ghost_len;
	bool cur;               /* the name exists now */
	int64_t synced;         /* the current inode's size at its last xSync */
	struct pl_sector *undo; /* first-touched sectors' synced content */
	size_t n_undo, cap_undo;
	uint8_t *seen; /* bitmap: sector already in undo */
	size_t seen_len;
	int handles;
};

struct pl_file {
	sqlite3_file base;
	sqlite3_file *real;   /* the unix VFS's file, right after this struct */
	struct pl_node *node; /* NULL: not tracked */
	bool in_dir;          /* under the test's directory: no real fsync */
	bool dirsync;         /* the unix VFS would sync the directory at the first xSync */
};

static struct {
	sqlite3_vfs vfs;
	sqlite3_vfs *real;
	char dir[PL_PATH]; /* everything under it: no real fsync */
	size_t dir_len;
	bool armed;
	char prefix[PL_PATH]; /* the run directory, tracked while armed */
	size_t prefix_len;
	struct pl_node node[PL_NODES];
	uint64_t ops, cut_at; /* cut_at 0: never */
	bool cut, fault;
	enum pl_op cut_op;
	enum pl_kind cut_kind;
	enum pl_phase phase, cut_phase;
} pl;

static uint64_t mix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static enum pl_kind kind_of(const char *path)
{
	size_t n = strlen(path);

	if (n >= 4 && strcmp(path + n - 4, "-wal") == 0)
		return K_WAL;
	if (n >= 8 && strcmp(path + n - 8, "-journal") == 0)
		return K_JOURNAL;
	return K_DB;
}

/* Everything is durable: no sector saved, a bitmap sized to the file. */
static void node_undo_reset(struct pl_node *n)
{
	size_t need = (size_t)((n->synced + PL_SECTOR - 1) / PL_SECTOR) / 8 + 1;

	n->n_undo = 0;
	if (need > n->seen_len) {
		uint8_t *p = realloc(n->seen, need);

		if (p == NULL) {
			pl.fault = true;
			return;
		}
		n->seen = p;
		n->seen_len = need;
	}
	memset(n->seen, 0, n->seen_len);
}

static void node_free(struct pl_node *n)
{
	free(n->ghost);
	free(n->undo);
	free(n->seen);
	memset(n, 0, sizeof *n);
}

/* The node of `path` when it is tracked (armed, in the run directory);
 * made on first sight from what is on disk then — nothing but the VFS
 * changes the run directory while armed, so a file found is durable. */
static struct pl_node *node_get(const char *path)
{
	struct pl_node *slot = NULL;
	struct stat st;

	if (!pl.armed || strncmp(path, pl.prefix, pl.prefix_len) != 0)
		return NULL;
	for (size_t i = 0; i < PL_NODES; i++) {
		if (pl.node[i].used && strcmp(pl.node[i].path, path) == 0)
			return &pl.node[i];
		if (!pl.node[i].used && slot == NULL)
			slot = &pl.node[i];
	}
	if (slot == NULL || strlen(path) >= PL_PATH) {
		pl.fault = true;
		return NULL;
	}
	memset(slot, 0, sizeof *slot);
	slot->used = true;
	memcpy(slot->path, path, strlen(path) + 1);
	slot->kind = kind_of(path);
	if (stat(path, &st) == 0) {
		slot->d = D_CUR;
		slot->cur = true;
		slot->synced = st.st_size;
	}
	node_undo_reset(slot);
	return slot;
}

/* One mutating operation on a tracked file: false once the power is off
 * (this operation is the first one lost when it is number cut_at). */
static bool pl_step(enum pl_op op, const struct pl_node *n)
{
	if (pl.cut)
		return false;
	pl.ops++;
	if (pl.ops == pl.cut_at) {
		pl.cut = true;
		pl.cut_op = op;
		pl.cut_kind = n->kind;
		pl.cut_phase = pl.phase;
		return false;
	}
	return true;
}

/* fsync of the run directory: every name's current state is durable. */
static void pl_dirsync(void)
{
	for (size_t i = 0; i < PL_NODES; i++) {
		struct pl_node *n = &pl.node[i];

		if (!n->used)
			continue;
		free(n->ghost);
		n->ghost = NULL;
		n->ghost_len = 0;
		n->d = n->cur ? D_CUR : D_NONE;
	}
}

static bool pread_all(int fd, uint8_t *p, size_t n, int64_t off, size_t *got)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, p + done, n - done, (off_t)off + (off_t)done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return false;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*got = done;
	return true;
}

static bool pwrite_all(int fd, const uint8_t *p, size_t n, int64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pwrite(fd, p + done, n - done, (off_t)off + (off_t)done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		done += (size_t)r;
	}
	return true;
}

/* The current inode's content as of its last xSync (for a ghost). */
static uint8_t *synced_image(const struct pl_node *n, size_t *len)
{
	size_t sz = (size_t)n->synced, got = 0;
	uint8_t *img = calloc(1, sz + 1);
	int fd;

	if (img == NULL)
		return NULL;
	fd = open(n->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !pread_all(fd, img, sz, 0, &got)) {
		if (fd >= 0)
			close(fd);
		free(img);
		return NULL;
	}
	close(fd);
	for (size_t i = 0; i < n->n_undo; i++) {
		int64_t off = n->undo[i].idx * PL_SECTOR;

		if (off < n->synced) {
			int64_t m = n->synced - off < PL_SECTOR ? n->synced - off : PL_SECTOR;

			memcpy(img + off, n->undo[i].b, (size_t)m);
		}
	}
	*len = sz;
	return img;
}

/* Save the synced content of every sector of [from, to) that holds
 * synced bytes and was not saved since the last xSync. */
static int pl_undo(struct pl_file *f, int64_t from, int64_t to)
{
	struct pl_node *n = f->node;

	if (to > n->synced)
		to = n->synced;
	for (int64_t idx = from / PL_SECTOR; idx * PL_SECTOR < to; idx++) {
		size_t byte = (size_t)idx / 8;
		uint8_t bit = (uint8_t)(1u << (idx % 8));
		struct pl_sector *sec;
		int rc;

		if (byte >= n->seen_len) {
			pl.fault = true;
			return SQLITE_IOERR;
		}
		if (n->seen[byte] & bit)
			continue;
		if (n->n_undo == n->cap_undo) {
			size_t cap = n->cap_undo ? 2 * n->cap_undo : 64;
			struct pl_sector *p = realloc(n->undo, cap * sizeof *p);

			if (p == NULL) {
				pl.fault = true;
				return SQLITE_NOMEM;
			}
			n->undo = p;
			n->cap_undo = cap;
		}
		sec = &n->undo[n->n_undo];
		memset(sec->b, 0, sizeof sec->b);
		rc = f->real->pMethods->xRead(f->real, sec->b, PL_SECTOR, idx * PL_SECTOR);
		if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) {
			pl.fault = true;
			return rc;
		}
		sec->idx = idx;
		n->n_undo++;
		n->seen[byte] |= bit;
	}
	return SQLITE_OK;
}

static int pl_close(sqlite3_file *file)
{
	struct pl_file *f = (struct pl_file *)file;
	int rc = f->real->pMethods->xClose(f->real);

	if (f->node != NULL)
		f->node->handles--;
	return rc;
}

static int pl_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xRead(f->real, buf, amt, off);
}

static int pl_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
	struct pl_file *f = (struct pl_file *)file;

	if (f->node != NULL) {
		int rc;

		if (!pl_step(OP_WRITE, f->node))
			return SQLITE_IOERR_WRITE;
		rc = pl_undo(f, off, off + amt);
		if (rc != SQLITE_OK)
			return rc;
	}
	return f->real->pMethods->xWrite(f->real, buf, amt, off);
}

static int pl_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct pl_file *f = (struct pl_file *)file;

	if (f->node != NULL) {
		sqlite3_int64 now = 0;
		int rc;

		if (!pl_step(OP_TRUNCATE, f->node))
			return SQLITE_IOERR_TRUNCATE;
		rc = f->real->pMethods->xFileSize(f->real, &now);
		if (rc == SQLITE_OK)
			rc = pl_undo(f, size, now);
		if (rc != SQLITE_OK)
			return rc;
	}
	return f->real->pMethods->xTruncate(f->real, size);
}

static int pl_sync(sqlite3_file *file, int flags)
{
	struct pl_file *f = (struct pl_file *)file;
	sqlite3_int64 size = 0;
	int rc;

	if (f->node == NULL)
		return f->in_dir ? SQLITE_OK : f->real->pMethods->xSync(f->real, flags);
	if (!pl_step(OP_SYNC, f->node))
		return SQLITE_IOERR_FSYNC;
	rc = f->real->pMethods->xFileSize(f->real, &size);
	if (rc != SQLITE_OK)
		return rc;
	f->node->synced = size;
	node_undo_reset(f->node);
	if (f->dirsync) {
		pl_dirsync();
		f->dirsync = false;
	}
	return SQLITE_OK;
}

static int pl_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xFileSize(f->real, size);
}

static int pl_lock(sqlite3_file *file, int lock)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xLock(f->real, lock);
}

static int pl_unlock(sqlite3_file *file, int lock)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xUnlock(f->real, lock);
}

static int pl_check_reserved(sqlite3_file *file, int *out)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int pl_file_control(sqlite3_file *file, int op, void *arg)
{
	struct pl_file *f = (struct pl_file *)file;

	/* A size hint may extend the file: not once the power is off. */
	if (f->node != NULL && pl.cut && op == SQLITE_FCNTL_SIZE_HINT)
		return SQLITE_IOERR_TRUNCATE;
	return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int pl_sector_size(sqlite3_file *file)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int pl_device_characteristics(sqlite3_file *file)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int pl_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int pl_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void pl_shm_barrier(sqlite3_file *file)
{
	struct pl_file *f = (struct pl_file *)file;

	f->real->pMethods->xShmBarrier(f->real);
}

static int pl_shm_unmap(sqlite3_file *file, int delete_flag)
{
	struct pl_file *f = (struct pl_file *)file;

	return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

/* Version 2: the -shm methods, no memory-mapped reads (xFetch), so every
 * read goes through xRead; durability does not depend on how SQLite reads. */
static const sqlite3_io_methods pl_io = {
        2,
        pl_close,
        pl_read,
        pl_write,
        pl_truncate,
        pl_sync,
        pl_file_size,
        pl_lock,
        pl_unlock,
        pl_check_reserved,
        pl_file_control,
        pl_sector_size,
        pl_device_characteristics,
        pl_shm_map,
        pl_shm_lock,
        pl_shm_barrier,
        pl_shm_unmap,
        NULL,
        NULL,
};

static int pl_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                   int *out_flags)
{
	struct pl_file *f = (struct pl_file *)file;
	struct pl_node *n = NULL;
	bool creating = false;
	int rc;

	(void)vfs;
	memset(f, 0, sizeof *f);
	f->real = (sqlite3_file *)&f[1];
	if (name != NULL) {
		f->in_dir = strncmp(name, pl.dir, pl.dir_len) == 0;
		n = node_get(name);
		if (pl.armed && pl.fault)
			return SQLITE_CANTOPEN;
	}
	if (n != NULL) {
		bool exists = access(name, F_OK) == 0;

		if (!exists && (flags & SQLITE_OPEN_CREATE)) {
			if (n->cur) { /* removed behind the VFS's back */
				pl.fault = true;
				return SQLITE_CANTOPEN;
			}
			if (!pl_step(OP_CREATE, n))
				return SQLITE_CANTOPEN;
			creating = true;
		} else if (exists && !n->cur) {
			/* Made since arming outside SQLite (store.c's
			 * create_private): a new inode, its name not durable. */
			n->cur = true;
			n->synced = 0;
			node_undo_reset(n);
		}
	}
	rc = pl.real->xOpen(pl.real, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		if (f->real->pMethods != NULL)
			f->real->pMethods->xClose(f->real);
		return rc;
	}
	if (n != NULL) {
		if (creating) {
			n->cur = true;
			n->synced = 0;
			node_undo_reset(n);
		}
		n->handles++;
		f->dirsync = (flags & SQLITE_OPEN_CREATE) &&
		             (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL |
		                       SQLITE_OPEN_SUPER_JOURNAL));
	}
	f->node = n;
	file->pMethods = &pl_io;
	return SQLITE_OK;
}

static int pl_delete(sqlite3_vfs *vfs, const char *name, int dir_sync)
{
	struct pl_node *n = node_get(name);
	int rc;

	(void)vfs;
	if (pl.armed && pl.fault)
		return SQLITE_IOERR_DELETE;
	if (n != NULL) {
		if (!pl_step(OP_DELETE, n))
			return SQLITE_IOERR_DELETE;
		if (n->cur && n->d == D_CUR) {
			/* The durable directory still names this inode: keep
			 * its synced content, it comes back if the power fails
			 * before the next directory sync. */
			n->ghost = synced_image(n, &n->ghost_len);
			if (n->ghost == NULL) {
				pl.fault = true;
				return SQLITE_IOERR_DELETE;
			}
			n->d = D_GHOST;
		}
	}
	rc = pl.real->xDelete(pl.real, name, strncmp(name, pl.dir, pl.dir_len) == 0 ? 0 : dir_sync);
	if (n != NULL && (rc == SQLITE_OK || rc == SQLITE_IOERR_DELETE_NOENT)) {
		n->cur = false;
		n->synced = 0;
		node_undo_reset(n);
		if (dir_sync)
			pl_dirsync();
	}
	return rc;
}

static int pl_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return pl.real->xAccess(pl.real, name, flags, out);
}

static int pl_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return pl.real->xFullPathname(pl.real, name, n, out);
}

static void *pl_dlopen(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return pl.real->xDlOpen(pl.real, name);
}

static void pl_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	pl.real->xDlError(pl.real, n, msg);
}

static void (*pl_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return pl.real->xDlSym(pl.real, h, sym);
}

static void pl_dlclose(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	pl.real->xDlClose(pl.real, h);
}

static int pl_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return pl.real->xRandomness(pl.real, n, out);
}

static int pl_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return pl.real->xSleep(pl.real, us);
}

static int pl_current_time(sqlite3_vfs *vfs, double *t)
{
	(void)vfs;
	return pl.real->xCurrentTime(pl.real, t);
}

static int pl_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	return pl.real->xGetLastError(pl.real, n, msg);
}

static int pl_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	(void)vfs;
	return pl.real->xCurrentTimeInt64(pl.real, t);
}

/* Register the VFS as the default, over the default it finds ("unix"). */
static int pl_register(const char *dir)
{
	pl.real = sqlite3_vfs_find(NULL);
	if (pl.real == NULL || pl.real->iVersion < 2 || strlen(dir) + 2 >= PL_PATH)
		return -1;
	snprintf(pl.dir, sizeof pl.dir, "%s/", dir);
	pl.dir_len = strlen(pl.dir);
	pl.vfs.iVersion = 2;
	pl.vfs.szOsFile = (int)sizeof(struct pl_file) + pl.real->szOsFile;
	pl.vfs.mxPathname = pl.real->mxPathname;
	pl.vfs.zName = "mt-powerloss";
	pl.vfs.xOpen = pl_open;
	pl.vfs.xDelete = pl_delete;
	pl.vfs.xAccess = pl_access;
	pl.vfs.xFullPathname = pl_full_pathname;
	pl.vfs.xDlOpen = pl_dlopen;
	pl.vfs.xDlError = pl_dlerror;
	pl.vfs.xDlSym = pl_dlsym;
	pl.vfs.xDlClose = pl_dlclose;
	pl.vfs.xRandomness = pl_randomness;
	pl.vfs.xSleep = pl_sleep;
	pl.vfs.xCurrentTime = pl_current_time;
	pl.vfs.xGetLastError = pl_last_error;
	pl.vfs.xCurrentTimeInt64 = pl_current_time64;
	return sqlite3_vfs_register(&pl.vfs, 1) == SQLITE_OK ? 0 : -1;
}

/* Start tracking the run directory (`db` is its database, which gets
 * its node now, before store.c may create it behind the VFS). */
static void pl_arm(const char *prefix, const char *db, uint64_t cut_at)
{
	for (size_t i = 0; i < PL_NODES; i++)
		node_free(&pl.node[i]);
	snprintf(pl.prefix, sizeof pl.prefix, "%s", prefix);
	pl.prefix_len = strlen(pl.prefix);
	pl.ops = 0;
	pl.cut_at = cut_at;
	pl.cut = false;
	pl.fault = false;
	pl.cut_op = OP_NONE;
	pl.cut_kind = K_NONE;
	pl.phase = pl.cut_phase = PH_OPEN;
	pl.armed = true;
	(void)node_get(db);
}

/* The power goes now, between operations (after the workload's last). */
static void pl_cut_now(void)
{
	if (pl.cut)
		return;
	pl.cut = true;
	pl.cut_op = OP_NONE;
	pl.cut_kind = K_NONE;
	pl.cut_phase = pl.phase;
}

/* Did the disk write unsynced sector `idx` of node `ni` before the cut?
 * (idx -1: the node's unsynced name change.) */
static bool kept(enum pl_mode mode, uint64_t seed, size_t ni, int64_t idx)
{
	if (mode == MODE_KEEP_ALL)
		return true;
	if (mode == MODE_STRICT)
		return false;
	return (mix64(seed ^ ((uint64_t)(ni + 1) << 56) ^ (uint64_t)idx) & 1) != 0;
}

static bool write_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok;

	if (fd < 0)
		return false;
	ok = pwrite_all(fd, p, n, 0);
	return close(fd) == 0 && ok;
}

static bool unlink_quiet(const char *path)
{
	return unlink(path) == 0 || errno == ENOENT;
}

/* The current inode of `n` as the disk holds it after the cut. */
static bool revert_inode(const struct pl_node *n, size_t ni, enum pl_mode mode, uint64_t seed)
{
	static const uint8_t zero[PL_SECTOR];
	int64_t cur, size = n->synced;
	struct stat st;
	bool ok = true;
	int fd;

	if (mode == MODE_KEEP_ALL)
		return true;
	fd = open(n->path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return false;
	}
	cur = st.st_size;
	/* Synced sectors written since: back, unless the disk got them
	 * (a sector truncated away is always back: the size was not synced). */
	for (size_t i = 0; i < n->n_undo && ok; i++) {
		int64_t off = n->undo[i].idx * PL_SECTOR;
		int64_t m = n->synced - off < PL_SECTOR ? n->synced - off : PL_SECTOR;

		if (off < cur && kept(mode, seed, ni, n->undo[i].idx))
			continue;
		ok = pwrite_all(fd, n->undo[i].b, (size_t)m, off);
	}
	/* Growth: a kept sector makes the file reach it; the lost ones
	 * below read as zeros. */
	for (int64_t idx = n->synced / PL_SECTOR; idx * PL_SECTOR < cur; idx++) {
		int64_t end = (idx + 1) * PL_SECTOR < cur ? (idx + 1) * PL_SECTOR : cur;

		if (kept(mode, seed, ni, idx) && end > size)
			size = end;
	}
	for (int64_t idx = n->synced / PL_SECTOR; idx * PL_SECTOR < size && ok; idx++) {
		int64_t lo = idx * PL_SECTOR > n->synced ? idx * PL_SECTOR : n->synced;
		int64_t hi = (idx + 1) * PL_SECTOR < size ? (idx + 1) * PL_SECTOR : size;

		if (!kept(mode, seed, ni, idx) && lo < hi)
			ok = pwrite_all(fd, zero, (size_t)(hi - lo), lo);
	}
	if (ok)
		ok = ftruncate(fd, (off_t)size) == 0;
	return close(fd) == 0 && ok;
}

/* Reboot: every tracked name and file as the disk holds them after the
 * cut, the -shm deleted, zeroed or stale; then stop tracking. */
static bool pl_reboot(enum pl_mode mode, uint64_t seed, enum pl_shm shm)
{
	bool ok = !pl.fault;

	for (size_t i = 0; i < PL_NODES && ok; i++) {
		struct pl_node *n = &pl.node[i];
		bool same = (n->d == D_CUR && n->cur) || (n->d == D_NONE && !n->cur);

		if (!n->used)
			continue;
		if (n->handles != 0) {
			ok = false;
			break;
		}
		if (!same && !kept(mode, seed, i, -1)) {
			if (n->d == D_GHOST)
				ok = write_file(n->path, n->ghost, n->ghost_len);
			else if (n->d == D_NONE)
				ok = unlink_quiet(n->path);
			else
				ok = false; /* D_CUR without the name: cannot be */
		} else if (n->cur) {
			ok = revert_inode(n, i, mode, seed);
		} else {
			ok = unlink_quiet(n->path);
		}
		if (ok && n->kind == K_DB) {
			char shm_path[PL_PATH + 8];
			struct stat st;

			snprintf(shm_path, sizeof shm_path, "%s-shm", n->path);
			if (shm == SHM_DELETE) {
				ok = unlink_quiet(shm_path);
			} else if (shm == SHM_ZERO && stat(shm_path, &st) == 0) {
				uint8_t *z = calloc(1, (size_t)st.st_size + 1);

				ok = z != NULL && write_file(shm_path, z, (size_t)st.st_size);
				free(z);
			}
		}
	}
	for (size_t i = 0; i < PL_NODES; i++)
		node_free(&pl.node[i]);
	pl.armed = false;
	return ok;
}

/* ---- the store, the KEK, the workload ------------------------------------ */

static const char *const dev_name[PL_DEVS] = {"pl-mon-01", "pl-mon-02", "pl-pump-03", "pl-spo2-04",
                                              "pl-ecg-05"};
static const char *const dev_cert[PL_DEVS] = {
        "5e0d1a2b3c4d5e6f70819201", "5e0d1a2b3c4d5e6f70819202", "5e0d1a2b3c4d5e6f70819203",
        "5e0d1a2b3c4d5e6f70819204", "5e0d1a2b3c4d5e6f70819205"};
#define PL_ASSIGNED_DEV 3

static struct mt_softhsm hsm;
static struct mt_kek *kek;
static char tmpdir[PATH_MAX], rundir[PL_PATH], run_db[PL_PATH], base_db[PL_PATH];
static uint8_t *base_img;
static size_t base_len;

/* The planned shape of a group: one or two devices, 1..50 readings. */
struct pl_plan {
	int nparts;
	int dev[2];
	int n[2];
};
static struct pl_plan plan[PL_GROUPS];

struct pl_group {
	struct pl_plan p;
	uint64_t ctr0[2];
	int total;
	bool begun, receipted;
};

#define OWNER_NONE (-1)
#define OWNER_BASE (-2)

/* What one run did, and so what must be found after it. */
struct pl_world {
	bool fresh, sync_off;
	uint64_t seed; /* this run's Sign1 bytes */
	struct pl_group g[PL_GROUPS];
	int n_begun;                        /* groups whose transaction began */
	int32_t owner[PL_DEVS][PL_CTR_MAX]; /* group of (dev, ctr), OWNER_BASE, OWNER_NONE */
	int64_t id[PL_DEVS][PL_CTR_MAX];    /* row id the put returned */
	uint64_t next[PL_DEVS];
	bool patient_ok, assign_ok;
	int64_t patient_id;
	uint64_t receipted; /* readings receipted, the base's included */
};

static struct pl_world world, base_world;

/* The fixed shape of every run's workload; -1 when a device would
 * outgrow one replay window (the checks assume it does not). */
static int make_plan(void)
{
	uint64_t st = PL_PLAN_SEED, per_dev[PL_DEVS];

	for (int d = 0; d < PL_DEVS; d++)
		per_dev[d] = d < PL_BASE_DEVS ? 2 * PL_BASE_GROUP : 0;

	for (int g = 0; g < PL_GROUPS; g++) {
		int total = 1 + (int)(mt_test_xorshift64(&st) % PL_GROUP_MAX);
		struct pl_plan *p = &plan[g];

		p->dev[0] = (int)(mt_test_xorshift64(&st) % PL_DEVS);
		p->dev[1] =
		        (p->dev[0] + 1 + (int)(mt_test_xorshift64(&st) % (PL_DEVS - 1))) % PL_DEVS;
		p->nparts = total >= 2 && mt_test_xorshift64(&st) % 3 == 0 ? 2 : 1;
		p->n[0] = p->nparts == 2
		                  ? 1 + (int)(mt_test_xorshift64(&st) % (uint64_t)(total - 1))
		                  : total;
		p->n[1] = total - p->n[0];
		for (int k = 0; k < p->nparts; k++)
			per_dev[p->dev[k]] += (uint64_t)p->n[k];
	}
	for (int d = 0; d < PL_DEVS; d++)
		if (per_dev[d] + 8 > PL_CTR_MAX)
			return -1;
	return 0;
}

/* A COSE_Sign1-shaped byte string for (dev, ctr): tag 18, protected
 * {1: -7}, empty unprotected, a payload of 60–259 bytes, a 64-byte
 * signature.  Its length depends on (dev, ctr) only, so every run has the
 * same page layout and operation count; its bytes on the run's seed. */
static size_t sign1_make(uint64_t seed, int dev, uint64_t ctr, uint8_t *out)
{
	uint64_t key = ((uint64_t)dev << 40) ^ ctr;
	size_t plen = 60 + (size_t)(mix64(PL_PLAN_SEED ^ key) % 200);
	uint64_t st = mix64(seed ^ key) | 1, r = 0;
	size_t n = 0;

	out[n++] = 0xd2;
	out[n++] = 0x84;
	out[n++] = 0x43;
	out[n++] = 0xa1;
	out[n++] = 0x01;
	out[n++] = 0x26;
	out[n++] = 0xa0;
	out[n++] = 0x59;
	out[n++] = (uint8_t)(plen >> 8);
	out[n++] = (uint8_t)plen;
	for (size_t i = 0; i < plen + 64; i++) {
		if (i == plen) {
			out[n++] = 0x58;
			out[n++] = 0x40;
		}
		if (i % 8 == 0)
			r = mt_test_xorshift64(&st);
		out[n++] = (uint8_t)(r >> (8 * (i % 8)));
	}
	return n;
}

static void reading_fill(struct mt_store_reading *r, int dev, uint64_t ctr, const uint8_t *sign1,
                         size_t len)
{
	memset(r, 0, sizeof *r);
	r->dev = dev_name[dev];
	r->ctr = ctr;
	r->epoch = 2;
	r->typ = ctr % 8 == 7 ? 3 : 1;
	r->ts_ms = PL_T0 + ctr * 1000 + (uint64_t)dev;
	r->received_ms = r->ts_ms + 180;
	r->flags = 0;
	r->cert_serial = dev_cert[dev];
	r->sign1 = sign1;
	r->sign1_len = len;
}

/* A new world: the base's readings when the run starts from the base. */
static void world_init(struct pl_world *w, bool fresh, bool sync_off, uint64_t seed)
{
	if (fresh) {
		memset(w, 0, sizeof *w);
		for (int d = 0; d < PL_DEVS; d++)
			for (int c = 0; c < PL_CTR_MAX; c++)
				w->owner[d][c] = OWNER_NONE;
	} else {
		memcpy(w, &base_world, sizeof *w);
	}
	w->fresh = fresh;
	w->sync_off = sync_off;
	w->seed = seed;
	w->n_begun = 0;
	w->patient_ok = w->assign_ok = false;
	w->patient_id = 0;
	for (int g = 0; g < PL_GROUPS; g++) {
		struct pl_group *gr = &w->g[g];

		memset(gr, 0, sizeof *gr);
		gr->p = plan[g];
		for (int k = 0; k < gr->p.nparts; k++) {
			int dev = gr->p.dev[k];

			gr->ctr0[k] = w->next[dev];
			for (int i = 0; i < gr->p.n[k]; i++)
				w->owner[dev][w->next[dev]++] = g;
			gr->total += gr->p.n[k];
		}
	}
	/* next[] is back at the start of the workload for the puts */
	for (int g = PL_GROUPS - 1; g >= 0; g--)
		for (int k = 0; k < w->g[g].p.nparts; k++)
			w->next[w->g[g].p.dev[k]] = w->g[g].ctr0[k];
}

/* Readings of `dev` from ctr0, n of them, in the open transaction, with
 * the device's window loaded, checked, marked and saved. */
static enum mt_err put_part(struct mt_store *s, struct pl_world *w, int dev, uint64_t ctr0, int n)
{
	struct mt_replay win;
	enum mt_err e = mt_store_window_load(s, dev_name[dev], &win);

	for (int i = 0; i < n && e == MT_OK; i++) {
		uint8_t sign1[PL_SIGN1_MAX];
		struct mt_store_reading r;
		uint64_t ctr = ctr0 + (uint64_t)i;
		size_t len = sign1_make(w->seed, dev, ctr, sign1);
		int64_t id = 0;

		if (mt_replay_check(&win, ctr) != MT_REPLAY_NEW)
			return MT_ERR_ARG; /* the harness's counters are wrong */
		reading_fill(&r, dev, ctr, sign1, len);
		e = mt_store_reading_put(s, &r, &id);
		if (e == MT_OK) {
			w->id[dev][ctr] = id;
			mt_replay_mark(&win, ctr);
		}
	}
	if (e == MT_OK)
		e = mt_store_window_save(s, dev_name[dev], &win);
	return e;
}

/* A step of the workload failed: fine once the power is off (the
 * workload stops), a test failure before. */
static bool stopped(enum mt_err e, const char *what)
{
	if (!pl.cut)
		fail_msg("%s failed with the power on: %s", what, mt_err_str(e));
	return false;
}

static bool run_group(struct mt_store *s, struct pl_world *w, int gi)
{
	struct pl_group *g = &w->g[gi];
	enum mt_err e = mt_store_begin(s);

	if (e != MT_OK)
		return stopped(e, "mt_store_begin");
	g->begun = true;
	w->n_begun = gi + 1;
	for (int k = 0; k < g->p.nparts && e == MT_OK; k++)
		e = put_part(s, w, g->p.dev[k], g->ctr0[k], g->p.n[k]);
	if (e != MT_OK) {
		mt_store_rollback(s);
		return stopped(e, "a put");
	}
	e = mt_store_commit(s);
	if (e != MT_OK)
		return stopped(e, "mt_store_commit");
	if (pl.cut) /* the process would not have lived to send the receipt */
		return false;
	g->receipted = true;
	w->receipted += (uint64_t)g->total;
	return true;
}

static bool store_open(struct pl_world *w, const char *path, struct mt_store **s)
{
	enum mt_err e = mt_store_open(path, kek, s);

	if (e != MT_OK) {
		*s = NULL;
		return stopped(e, "mt_store_open");
	}
	mt_store_set_dek_limits(*s, PL_DEK_ROWS, 0);
	if (w->sync_off) {
		int rc = sqlite3_exec(mt_store__sqlite(*s), "PRAGMA synchronous=OFF", NULL, NULL,
		                      NULL);

		if (rc != SQLITE_OK && !pl.cut)
			fail_msg("PRAGMA synchronous=OFF refused: %d", rc);
	}
	return true;
}

static bool patient_step(struct mt_store *s, struct pl_world *w)
{
	struct mt_patient p;
	int64_t pid = 0;
	enum mt_err e;

	memset(&p, 0, sizeof p);
	snprintf(p.name, sizeof p.name, "%s", "Ottilie Stromausfall");
	snprintf(p.mrn, sizeof p.mrn, "%s", "MRN-PL-000909");
	snprintf(p.birth_date, sizeof p.birth_date, "%s", "1952-06-14");
	snprintf(p.ward, sizeof p.ward, "%s", "ICU-2");
	snprintf(p.bed, sizeof p.bed, "%s", "4");
	e = mt_store_patient_add(s, &p, &pid);
	if (e != MT_OK)
		return stopped(e, "mt_store_patient_add");
	if (pl.cut)
		return false;
	w->patient_ok = true;
	w->patient_id = pid;
	e = mt_store_assign(s, dev_name[PL_ASSIGNED_DEV], pid, PL_T0);
	if (e != MT_OK)
		return stopped(e, "mt_store_assign");
	if (pl.cut)
		return false;
	w->assign_ok = true;
	return true;
}

/* The workload, until it ends or the power goes; returns the store (NULL
 * when none is open), which the caller closes. */
static struct mt_store *workload(struct pl_world *w)
{
	struct mt_store *s = NULL;

	pl.phase = PH_OPEN;
	if (!store_open(w, run_db, &s))
		return NULL;
	for (int gi = 0; gi < PL_GROUPS; gi++) {
		if (gi == PL_GROUPS / 3) {
			pl.phase = PH_PATIENT;
			if (!patient_step(s, w))
				return s;
		}
		if (gi == PL_GROUPS / 2) {
			int log = 0, done = 0;
			int rc;

			pl.phase = PH_CHECKPOINT;
			rc = sqlite3_wal_checkpoint_v2(mt_store__sqlite(s), NULL,
			                               SQLITE_CHECKPOINT_PASSIVE, &log, &done);
			if (rc != SQLITE_OK && !pl.cut)
				fail_msg("checkpoint failed with the power on: %d", rc);
			if (pl.cut)
				return s;
		}
		if (gi == 2 * PL_GROUPS / 3) {
			pl.phase = PH_RESTART;
			mt_store_close(s);
			s = NULL;
			if (pl.cut || !store_open(w, run_db, &s))
				return s;
		}
		pl.phase = PH_GROUP;
		if (!run_group(s, w, gi))
			return s;
	}
	pl.phase = PH_IDLE;
	return s;
}

/* ---- after the reboot ---------------------------------------------------- */

struct pl_result {
	uint64_t ops; /* operations before the cut */
	enum pl_op op;
	enum pl_kind kind;
	enum pl_phase phase;
	bool opened, integrity;
	unsigned undecryptable; /* a stored row that does not read */
	unsigned stray;         /* a stored row nobody put */
	unsigned mismatched;    /* a row whose bytes or id are not what was put */
	uint64_t lost;          /* receipted readings missing */
	unsigned partial;       /* groups neither absent nor whole */
	unsigned phantom;       /* whole groups that were never committed */
	unsigned inflight;      /* the group in flight at the cut, found whole */
	unsigned window_bad;
	unsigned patient_lost;
	bool post_ok;
	uint64_t receipted, rows;
};

static bool corrupt(const struct pl_result *r)
{
	return !r->opened || !r->integrity || r->undecryptable || r->stray || r->mismatched ||
	       r->window_bad;
}

static bool bad(const struct pl_result *r)
{
	return corrupt(r) || r->lost || r->partial || r->phantom || r->patient_lost || !r->post_ok;
}

struct pl_check {
	struct mt_store *s;
	const struct pl_world *w;
	struct pl_result *res;
	bool found[PL_DEVS][PL_CTR_MAX];
	int64_t found_id[PL_DEVS][PL_CTR_MAX];
};

static struct pl_check check;

static int dev_index(const char *dev)
{
	for (int d = 0; d < PL_DEVS; d++)
		if (strcmp(dev, dev_name[d]) == 0)
			return d;
	return -1;
}

/* Each stored reading: it decrypts, it is one that was put, byte-exact. */
static enum mt_err check_row(void *ctx, int64_t id)
{
	struct pl_check *c = ctx;
	uint8_t want[PL_SIGN1_MAX];
	struct mt_store_reading r;
	struct mt_store_row row;
	int dev;
	int32_t owner;
	size_t len;

	if (mt_store_reading_get(c->s, id, &row) != MT_OK) {
		c->res->undecryptable++;
		return MT_OK;
	}
	c->res->rows++;
	dev = dev_index(row.dev);
	owner = dev >= 0 && row.ctr < PL_CTR_MAX ? c->w->owner[dev][row.ctr] : OWNER_NONE;
	if (owner == OWNER_NONE || c->found[dev][row.ctr]) {
		c->res->stray++;
		mt_store_row_clear(&row);
		return MT_OK;
	}
	c->found[dev][row.ctr] = true;
	c->found_id[dev][row.ctr] = id;
	len = sign1_make(owner == OWNER_BASE ? PL_BASE_SEED : c->w->seed, dev, row.ctr, want);
	reading_fill(&r, dev, row.ctr, want, len);
	if (row.sign1_len != len || memcmp(row.sign1, want, len) != 0 || row.epoch != r.epoch ||
	    row.typ != r.typ || row.ts_ms != r.ts_ms || row.received_ms != r.received_ms ||
	    row.flags != r.flags || strcmp(row.cert_serial, r.cert_serial) != 0)
		c->res->mismatched++;
	mt_store_row_clear(&row);
	return MT_OK;
}

/* The device's window holds exactly its stored counters. */
static bool window_consistent(struct mt_store *s, int dev)
{
	static uint64_t ctrs[PL_CTR_MAX];
	bool stored[PL_CTR_MAX];
	struct mt_replay w;
	size_t k = 0;

	if (mt_store_window_load(s, dev_name[dev], &w) != MT_OK ||
	    mt_store_counters(s, dev_name[dev], ctrs, PL_CTR_MAX, &k) != MT_OK || k > PL_CTR_MAX)
		return false;
	if (k == 0)
		return w.top == MT_REPLAY_EMPTY;
	memset(stored, 0, sizeof stored);
	for (size_t i = 0; i < k; i++) {
		if (ctrs[i] >= PL_CTR_MAX)
			return false;
		stored[ctrs[i]] = true;
	}
	if (w.top != ctrs[k - 1])
		return false;
	for (uint64_t c = 0; c <= w.top; c++) {
		enum mt_replay_verdict v = mt_replay_check(&w, c);

		if (stored[c] ? v != MT_REPLAY_DUPLICATE : v != MT_REPLAY_NEW)
			return false;
	}
	return mt_replay_check(&w, w.top + 1) == MT_REPLAY_NEW;
}

/* After the reboot: open the store the normal way and check it all. */
static void verify(const struct pl_world *w, struct pl_result *res)
{
	struct mt_store *s = NULL;
	sqlite3_stmt *st = NULL;
	enum mt_err e;

	res->receipted = w->receipted;
	if (mt_store_open(run_db, kek, &s) != MT_OK)
		return;
	res->opened = true;
	if (sqlite3_prepare_v2(mt_store__sqlite(s), "PRAGMA integrity_check", -1, &st, NULL) ==
	            SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0 &&
	    sqlite3_step(st) == SQLITE_DONE)
		res->integrity = true;
	sqlite3_finalize(st);
	if (!res->integrity) {
		mt_store_close(s);
		return;
	}

	memset(&check, 0, sizeof check);
	check.s = s;
	check.w = w;
	check.res = res;
	e = mt_store_reading_ids(s, 0, INT64_MAX, check_row, &check);
	if (e != MT_OK)
		res->undecryptable++;

	/* The base (receipted before the run) and each group. */
	for (int d = 0; d < PL_DEVS; d++)
		for (int c = 0; c < PL_CTR_MAX; c++)
			if (w->owner[d][c] == OWNER_BASE) {
				if (!check.found[d][c])
					res->lost++;
				else if (check.found_id[d][c] != w->id[d][c])
					res->mismatched++;
			}
	for (int gi = 0; gi < PL_GROUPS; gi++) {
		const struct pl_group *g = &w->g[gi];
		int present = 0;

		for (int k = 0; k < g->p.nparts; k++)
			for (int i = 0; i < g->p.n[k]; i++) {
				int dev = g->p.dev[k];
				uint64_t ctr = g->ctr0[k] + (uint64_t)i;

				if (!check.found[dev][ctr])
					continue;
				present++;
				if (g->receipted && check.found_id[dev][ctr] != w->id[dev][ctr])
					res->mismatched++;
			}
		if (present != 0 && present != g->total)
			res->partial++;
		if (g->receipted)
			res->lost += (uint64_t)(g->total - present);
		else if (present == g->total && gi == w->n_begun - 1)
			res->inflight++;
		else if (present == g->total)
			res->phantom++;
	}

	if (w->patient_ok) {
		struct mt_patient p;

		if (mt_store_patient_get(s, w->patient_id, &p) != MT_OK ||
		    strcmp(p.name, "Ottilie Stromausfall") != 0 ||
		    strcmp(p.mrn, "MRN-PL-000909") != 0)
			res->patient_lost++;
	}
	if (w->assign_ok) {
		int64_t pid = 0;

		if (mt_store_assigned(s, dev_name[PL_ASSIGNED_DEV], PL_T0 + 1, &pid) != MT_OK ||
		    pid != w->patient_id)
			res->patient_lost++;
	}
	for (int d = 0; d < PL_DEVS; d++)
		if (!window_consistent(s, d))
			res->window_bad++;

	/* The store takes the next reading of a device. */
	{
		uint8_t sign1[PL_SIGN1_MAX];
		struct mt_store_reading r;
		struct mt_store_row row;
		struct mt_replay win;
		uint64_t ctr;
		int64_t id = 0;
		size_t len;

		if (mt_store_begin(s) == MT_OK &&
		    mt_store_window_load(s, dev_name[0], &win) == MT_OK) {
			ctr = win.top == MT_REPLAY_EMPTY ? 0 : win.top + 1;
			len = sign1_make(w->seed ^ 0xa5, 0, ctr, sign1);
			reading_fill(&r, 0, ctr, sign1, len);
			if (ctr < PL_CTR_MAX && mt_replay_check(&win, ctr) == MT_REPLAY_NEW &&
			    mt_store_reading_put(s, &r, &id) == MT_OK) {
				mt_replay_mark(&win, ctr);
				if (mt_store_window_save(s, dev_name[0], &win) == MT_OK &&
				    mt_store_commit(s) == MT_OK &&
				    mt_store_reading_get(s, id, &row) == MT_OK) {
					res->post_ok = row.sign1_len == len &&
					               memcmp(row.sign1, sign1, len) == 0;
					mt_store_row_clear(&row);
				}
			}
		}
		mt_store_rollback(s);
	}
	mt_store_close(s);
}

/* ---- runs and sweeps ----------------------------------------------------- */

struct pl_cut {
	bool fresh;
	uint64_t cut_at; /* 0: never (the power goes after the workload) */
	enum pl_mode mode;
	enum pl_shm shm;
	uint64_t seed;
};

static void clean_rundir(void)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	char p[PL_PATH + 16];

	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		snprintf(p, sizeof p, "%s%s", run_db, sfx[i]);
		if (!unlink_quiet(p))
			fail_msg("cannot remove %s", p);
	}
}

static void run_one(const struct pl_cut *c, bool sync_off, struct pl_result *res)
{
	struct mt_store *s;

	memset(res, 0, sizeof *res);
	clean_rundir();
	if (!c->fresh && !write_file(run_db, base_img, base_len))
		fail_msg("cannot copy the base database");
	world_init(&world, c->fresh, sync_off, c->seed);
	pl_arm(rundir, run_db, c->cut_at);
	s = workload(&world);
	pl_cut_now();      /* when the sweep's instant was past the workload */
	mt_store_close(s); /* the dying process: nothing it does reaches the files */
	res->ops = pl.cut_op == OP_NONE ? pl.ops : pl.ops - 1;
	res->op = pl.cut_op;
	res->kind = pl.cut_kind;
	res->phase = pl.cut_phase;
	if (pl.fault)
		fail_msg("the power-loss VFS failed (run cut at %llu)",
		         (unsigned long long)c->cut_at);
	if (!pl_reboot(c->mode, c->seed, c->shm))
		fail_msg("cannot apply the power loss (run cut at %llu)",
		         (unsigned long long)c->cut_at);
	verify(&world, res);
	clean_rundir();
}

struct pl_tally {
	size_t runs, fresh, in_workload, bad_runs;
	size_t by_op[OP__N], by_kind[K__N], by_phase[PH__N], by_mode[MODE__N], by_shm[SHM__N];
	size_t decile[11]; /* [10]: after the workload */
	uint64_t receipted, rows, lost, w_fresh, w_base;
	size_t corrupt, lost_runs, partial, phantom, inflight, window_bad, patient_lost, post_fail;
	size_t unopened, integrity_bad;
	double seconds;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void plan_cut(size_t i, size_t runs, uint64_t *rng, const struct pl_tally *t,
                     struct pl_cut *c)
{
	size_t prefix = runs / 10 < PL_PREFIX_MAX ? runs / 10 : PL_PREFIX_MAX;

	memset(c, 0, sizeof *c);
	c->seed = mt_test_xorshift64(rng);
	c->mode = i % 5 < 2 ? MODE_STRICT : i % 5 < 4 ? MODE_SECTORS : MODE_KEEP_ALL;
	c->shm = (enum pl_shm)(mt_test_xorshift64(rng) % SHM__N);
	if (i < prefix) {
		c->fresh = true;
		c->cut_at = i + 1;
	} else if (i < 2 * prefix) {
		c->cut_at = i - prefix + 1;
	} else {
		uint64_t w;

		c->fresh = mt_test_xorshift64(rng) % 10 == 0;
		w = c->fresh ? t->w_fresh : t->w_base;
		/* one in fifty after the last operation: power lost idle */
		c->cut_at =
		        mt_test_xorshift64(rng) % 50 == 0 ? w + 1 : 1 + mt_test_xorshift64(rng) % w;
	}
}

static void report_run(size_t i, const struct pl_cut *c, const struct pl_result *r)
{
	printf("  run %zu: %s, cut at op %llu (%s on %s, phase %s), %s, shm %s: opened %d, "
	       "integrity %d, undecryptable %u, stray %u, mismatched %u, lost %llu of %llu, "
	       "partial %u, phantom %u, windows %u, patient %u, post-write %d\n",
	       i, c->fresh ? "fresh" : "base", (unsigned long long)c->cut_at, op_name[r->op],
	       kind_name[r->kind], phase_name[r->phase], mode_name[c->mode], shm_name[c->shm],
	       r->opened, r->integrity, r->undecryptable, r->stray, r->mismatched,
	       (unsigned long long)r->lost, (unsigned long long)r->receipted, r->partial,
	       r->phantom, r->window_bad, r->patient_lost, r->post_ok);
}

static void sweep(bool sync_off, size_t runs, struct pl_tally *t)
{
	uint64_t rng = sync_off ? PL_NEG_SEED : PL_SWEEP_SEED;
	struct pl_result r;
	struct pl_cut c;
	double t0 = now_s();
	size_t reported = 0;

	memset(t, 0, sizeof *t);
	/* The workload's length, from runs the power outlives (power lost
	 * idle after the last receipt: with FULL, nothing may be missing). */
	for (int fresh = 1; fresh >= 0; fresh--) {
		memset(&c, 0, sizeof c);
		c.fresh = fresh != 0;
		c.seed = PL_SWEEP_SEED ^ (uint64_t)fresh;
		run_one(&c, sync_off, &r);
		if (!sync_off && bad(&r)) {
			report_run(0, &c, &r);
			fail_msg(
			        "the workload without a cut did not survive a power loss after it");
		}
		*(fresh ? &t->w_fresh : &t->w_base) = r.ops;
	}
	for (size_t i = 0; i < runs; i++) {
		plan_cut(i, runs, &rng, t, &c);
		run_one(&c, sync_off, &r);
		t->runs++;
		t->fresh += c.fresh;
		t->by_op[r.op]++;
		t->by_kind[r.kind]++;
		t->by_phase[r.phase]++;
		t->by_mode[c.mode]++;
		t->by_shm[c.shm]++;
		if (r.op == OP_NONE) {
			t->decile[10]++;
		} else {
			uint64_t w = c.fresh ? t->w_fresh : t->w_base;
			uint64_t d = w ? (c.cut_at - 1) * 10 / w : 0;

			t->in_workload++;
			t->decile[d > 9 ? 9 : d]++;
		}
		t->receipted += r.receipted;
		t->rows += r.rows;
		t->lost += r.lost;
		t->corrupt += corrupt(&r);
		t->unopened += !r.opened;
		t->integrity_bad += r.opened && !r.integrity;
		t->lost_runs += r.lost != 0;
		t->partial += r.partial;
		t->phantom += r.phantom;
		t->inflight += r.inflight;
		t->window_bad += r.window_bad != 0;
		t->patient_lost += r.patient_lost != 0;
		t->post_fail += !r.post_ok;
		if (bad(&r)) {
			t->bad_runs++;
			if (!sync_off && reported++ < PL_REPORT_MAX)
				report_run(i, &c, &r);
		}
	}
	t->seconds = now_s() - t0;
}

static void print_tally(const char *title, const struct pl_tally *t)
{
	printf("%s: %zu runs (%zu from a fresh database, %zu from the base) in %.1f s; "
	       "workload %llu operations (fresh), %llu (base)\n",
	       title, t->runs, t->fresh, t->runs - t->fresh, t->seconds,
	       (unsigned long long)t->w_fresh, (unsigned long long)t->w_base);
	printf("  cut on:");
	for (int i = 0; i < OP__N; i++)
		printf(" %s %zu%s", op_name[i], t->by_op[i], i + 1 < OP__N ? "," : "\n");
	printf("  file:");
	for (int i = 0; i < K__N; i++)
		printf(" %s %zu%s", kind_name[i], t->by_kind[i], i + 1 < K__N ? "," : "\n");
	printf("  phase:");
	for (int i = 0; i < PH__N; i++)
		printf(" %s %zu%s", phase_name[i], t->by_phase[i], i + 1 < PH__N ? "," : "\n");
	printf("  position (tenths of the workload):");
	for (int i = 0; i < 10; i++)
		printf(" %zu", t->decile[i]);
	printf(", after it %zu\n", t->decile[10]);
	printf("  disk:");
	for (int i = 0; i < MODE__N; i++)
		printf(" %s %zu,", mode_name[i], t->by_mode[i]);
	printf(" -shm");
	for (int i = 0; i < SHM__N; i++)
		printf(" %s %zu%s", shm_name[i], t->by_shm[i], i + 1 < SHM__N ? "," : "\n");
	printf("  receipted readings checked %llu, rows read back %llu, in-flight groups found "
	       "whole %zu\n",
	       (unsigned long long)t->receipted, (unsigned long long)t->rows, t->inflight);
	printf("  corrupt %zu (unopenable %zu, integrity_check failed %zu), lost %llu (in %zu "
	       "runs), partial %zu, phantom %zu, window %zu, patient %zu, post-reboot write "
	       "failed %zu\n",
	       t->corrupt, t->unopened, t->integrity_bad, (unsigned long long)t->lost, t->lost_runs,
	       t->partial, t->phantom, t->window_bad, t->patient_lost, t->post_fail);
	fflush(stdout);
}

static size_t env_runs(const char *name, size_t dflt)
{
	const char *v = getenv(name);
	char *end = NULL;
	unsigned long n;

	if (v == NULL || v[0] == '\0')
		return dflt;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n == 0 || n > 1000000)
		fail_msg("%s is not a run count: %s", name, v);
	return (size_t)n;
}

static size_t pos_runs(void)
{
	return env_runs("MT_POWERLOSS_RUNS", PL_ASAN ? 200 : 1000);
}

/* ---- the tests ----------------------------------------------------------- */

static void FI09_power_loss_sweep(void **state)
{
	struct mt_store *s = NULL;
	sqlite3_stmt *st = NULL;
	static struct pl_tally t;
	size_t runs = pos_runs();

	(void)state;
	/* What the sweep proves rests on the store's own settings. */
	assert_int_equal(mt_store_open(base_db, kek, &s), MT_OK);
	assert_int_equal(
	        sqlite3_prepare_v2(mt_store__sqlite(s), "PRAGMA synchronous", -1, &st, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2); /* FULL */
	sqlite3_finalize(st);
	assert_int_equal(
	        sqlite3_prepare_v2(mt_store__sqlite(s), "PRAGMA journal_mode", -1, &st, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	mt_store_close(s);

	sweep(false, runs, &t);
	print_tally("FI09 power loss, synchronous=FULL", &t);
	assert_int_equal(t.runs, runs);
	assert_true(t.in_workload >= runs / 2); /* the cuts fell inside the work */
	assert_true(t.receipted > 0);
	assert_int_equal(t.corrupt, 0);
	assert_int_equal(t.lost, 0);
	assert_int_equal(t.partial, 0);
	assert_int_equal(t.phantom, 0);
	assert_int_equal(t.window_bad, 0);
	assert_int_equal(t.patient_lost, 0);
	assert_int_equal(t.post_fail, 0);
}

static void FI09_negative_control_synchronous_off(void **state)
{
	static struct pl_tally t;
	size_t runs = env_runs("MT_POWERLOSS_NEG_RUNS", pos_runs());

	(void)state;
	sweep(true, runs, &t);
	print_tally("FI09 negative control, synchronous=OFF", &t);
	printf("  negative control: receipted readings lost in %zu of %zu runs\n", t.lost_runs,
	       t.runs);
	fflush(stdout);
	/* Without fsync the same sweep must find losses: the test measures
	 * durability, not just a clean reopen. */
	assert_true(t.lost_runs > 0);
	assert_true(t.lost > 0);
}

/* ---- setup --------------------------------------------------------------- */

/* The base database: 20 readings for each of three devices in two
 * groups each, closed cleanly (one file), kept in memory. */
static int build_base(void)
{
	struct mt_store *s = NULL;
	struct stat st;
	char wal[PL_PATH + 8];
	size_t got = 0;
	int fd;

	world_init(&base_world, true, false, PL_BASE_SEED);
	memset(base_world.next, 0, sizeof base_world.next);
	for (int d = 0; d < PL_DEVS; d++)
		for (int c = 0; c < PL_CTR_MAX; c++)
			base_world.owner[d][c] = OWNER_NONE;
	if (mt_store_open(base_db, kek, &s) != MT_OK)
		return -1;
	for (int d = 0; d < PL_BASE_DEVS; d++)
		for (int g = 0; g < 2; g++) {
			uint64_t ctr0 = (uint64_t)g * PL_BASE_GROUP;

			if (mt_store_begin(s) != MT_OK ||
			    put_part(s, &base_world, d, ctr0, PL_BASE_GROUP) != MT_OK ||
			    mt_store_commit(s) != MT_OK) {
				mt_store_close(s);
				return -1;
			}
			for (uint64_t c = ctr0; c < ctr0 + PL_BASE_GROUP; c++)
				base_world.owner[d][c] = OWNER_BASE;
			base_world.next[d] = ctr0 + PL_BASE_GROUP;
			base_world.receipted += PL_BASE_GROUP;
		}
	mt_store_close(s);
	snprintf(wal, sizeof wal, "%s-wal", base_db);
	if (access(wal, F_OK) == 0 || stat(base_db, &st) != 0 || st.st_size <= 0)
		return -1;
	base_len = (size_t)st.st_size;
	base_img = malloc(base_len);
	fd = open(base_db, O_RDONLY | O_CLOEXEC);
	if (base_img == NULL || fd < 0 || !pread_all(fd, base_img, base_len, 0, &got) ||
	    got != base_len) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int group_setup(void **state)
{
	char uri[512], made[64];

	(void)state;
	if (mt_softhsm_init(&hsm, "powerloss", "1234", "5678") != 0)
		return -1;
	if (mt_softhsm_uri(&hsm, "kek", NULL, uri, sizeof uri) != 0 ||
	    mt_key_generate_kek(uri) != MT_OK || mt_kek_open(uri, &kek) != MT_OK)
		return -1;
	snprintf(made, sizeof made, "/tmp/mt-powerloss-XXXXXX");
	if (mkdtemp(made) == NULL || realpath(made, tmpdir) == NULL)
		return -1;
	if (strlen(tmpdir) + 16 >= PL_PATH)
		return -1;
	if (snprintf(rundir, sizeof rundir, "%s/run/", tmpdir) >= (int)sizeof rundir ||
	    snprintf(run_db, sizeof run_db, "%s/run/data.db", tmpdir) >= (int)sizeof run_db ||
	    snprintf(base_db, sizeof base_db, "%s/base.db", tmpdir) >= (int)sizeof base_db)
		return -1;
	if (mkdir(rundir, 0700) != 0 || pl_register(tmpdir) != 0)
		return -1;
	if (make_plan() != 0)
		return -1;
	return build_base();
}

static int group_teardown(void **state)
{
	char cmd[PATH_MAX + 16];
	int rc = 0;

	(void)state;
	if (pl.real != NULL) {
		sqlite3_vfs_register(pl.real, 1);
		sqlite3_vfs_unregister(&pl.vfs);
	}
	free(base_img);
	base_img = NULL;
	mt_kek_free(kek);
	kek = NULL;
	if (tmpdir[0] != '\0') {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			rc = -1;
	}
	if (mt_softhsm_cleanup(&hsm) != 0)
		rc = -1;
	return rc;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(FI09_power_loss_sweep),
	        cmocka_unit_test(FI09_negative_control_synchronous_off),
	};

	if (!mt_softhsm_available())
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
