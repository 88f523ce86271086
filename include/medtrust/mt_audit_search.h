/*
 * mt_audit_search.h — the audit chain searched, newest first, for people
 * who read it: the console's auditor view (docs/console-admin.md; threats
 * F08, F17, J01).
 *
 * mt_audit.h reads the chain in ascending order, whole or by range, which
 * is what verifying and exporting need.  An auditor asks other questions:
 * "the last hundred refusals", "what did user:alice do last Tuesday",
 * "every user.* change": filters, newest first, a page at a time.  This
 * module answers them with one SELECT on the SQLite backend's `audit`
 * table (audit_sqlite.c), on a read-only connection of its own opened for
 * the call, so it neither writes nor locks what it reads and can run
 * beside the hub's writer (WAL readers never block it).
 *
 * F08: the SQL text is chosen from fixed fragments by which filters are
 * set; every value is bound, none is ever pasted into SQL.  A prefix is
 * matched with substr(), not LIKE, so '%' and '_' in a filter are plain
 * characters.
 *
 * Nothing here verifies: a record is handed over as stored (`malformed`
 * set when a row does not fit struct mt_audit_record).  Whether the chain
 * is intact is mt_audit_verify's answer, which the caller shows beside.
 */
#ifndef MT_AUDIT_SEARCH_H
#define MT_AUDIT_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_audit.h"
#include "mt_err.h"

#define MT_AUDIT_SEARCH_MAX 1000       /* records one search hands over, at most */
#define MT_AUDIT_SEARCH_NOTABLE_MAX 32 /* prefixes of notable actions */

/* What to look for; zero (with outcome -1) is "everything". */
struct mt_audit_search {
	const char *actor;  /* exactly this actor; NULL: any */
	const char *action; /* actions that start with these bytes; NULL: any */
	int outcome;        /* an enum mt_audit_outcome; -1: any */
	uint64_t from_ms;   /* time_ms >= from_ms */
	uint64_t to_ms;     /* time_ms < to_ms; 0: no bound */
	uint64_t before;    /* seq < before; 0: no bound */
	/* With n_notable > 0: only records whose outcome is not ok, or whose
	 * action starts with one of notable[0..n_notable) (at most
	 * MT_AUDIT_SEARCH_NOTABLE_MAX). */
	const char *const *notable;
	size_t n_notable;
	bool events_only; /* leave checkpoint records out */
	size_t limit;     /* at most this many (1..MT_AUDIT_SEARCH_MAX); 0: the maximum */
};

/* Hand the records of the audit database `db_path` that match `q` to
 * `cb`, newest first (seq descending).  The record lives until cb
 * returns; a return other than MT_OK stops the search and is returned.
 * Errors: MT_ERR_ARG (NULL, a bound out of range, too many notable
 * prefixes), MT_ERR_AUDIT_STORE (the database cannot be opened or read),
 * MT_ERR_NOMEM, cb's. */
MT_NODISCARD enum mt_err mt_audit_search(const char *db_path, const struct mt_audit_search *q,
                                         mt_audit_record_cb cb, void *arg);

#endif
