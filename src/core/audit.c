/*
 * audit.c — the audit chain's logic: record validation, the hashed
 * encoding, checkpoints, verification and the JSON-lines export
 * (mt_audit.h; DESIGN.md "evidence"; threats J01–J03, J06; docs/audit.md).
 *
 * No I/O happens here.  Records come and go through the store interface
 * (struct mt_audit_store_ops, SQLite in audit_sqlite.c), checkpoints to the
 * outside file through audit_file.c, time from the caller, signatures
 * through the key store.  That keeps the rules testable on their own and
 * lets a second backend reuse them unchanged.
 *
 * Invariants kept by the writer, all inside one store transaction:
 *   - the new record's seq is the last seq + 1 (1 for the first) and its
 *     prev_hash the last record's hash (32 zero bytes for the first); the
 *     state is read from the store each time, never cached, because another
 *     process or hub may have appended since;
 *   - a checkpoint follows whenever checkpoint_every records are not yet
 *     covered, or the oldest of them is checkpoint_ms older than now, and it
 *     covers exactly the record before it.
 *
 * The verifier is a single forward pass with constant memory apart from the
 * outside checkpoints (one small entry per line of that file).  For each
 * record it decides in this order — gap, malformed, hash, link, checkpoint —
 * so the reason names the first rule the record breaks; mt_audit.h lists
 * the reasons and docs/audit.md what each tampering produces.
 */
#define _POSIX_C_SOURCE 200809L

#include "medtrust/mt_audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_int.h"
#include "json_int.h"
#include "medtrust/mt_cbor.h"
#include "medtrust/mt_cose.h"

#define CP_ACTOR "hub"
#define CP_ACTION "audit.checkpoint"
#define CP_PAYLOAD_MAX 64
#define SQL_INT_MAX ((uint64_t)INT64_MAX) /* seq and time fit a signed 64-bit column */

struct mt_audit {
	struct mt_audit_store *store;
	struct mt_key *hub;
	int64_t alg;
	uint64_t every, every_ms;
	char *cp_path;
	struct mt_audit_record rec;         /* scratch: the record being appended */
	struct mt_audit_record tmp;         /* scratch: reads inside the transaction */
	uint8_t cp_cose[MT_AUDIT_COSE_MAX]; /* the checkpoint to write outside */
	size_t cp_len;
};

/* ---- fields ---------------------------------------------------------- */

/* UTF-8, no C0 controls and no DEL, 1..max bytes (0..max when may_be_empty). */
static bool text_ok(const char *s, size_t max, bool may_be_empty)
{
	size_t n;
	if (s == NULL)
		return false;
	n = strnlen(s, max + 1);
	if (n > max || (n == 0 && !may_be_empty))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return mt_utf8_valid((const uint8_t *)s, n);
}

/* [a-z0-9_]+ joined by single dots. */
static bool action_ok(const char *s)
{
	size_t n;
	bool at_start = true;
	if (s == NULL)
		return false;
	n = strnlen(s, MT_AUDIT_ACTION_MAX + 1);
	if (n == 0 || n > MT_AUDIT_ACTION_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (at_start)
				return false;
			at_start = true;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
			at_start = false;
		} else {
			return false;
		}
	}
	return !at_start;
}

/* A JSON object of at most MT_AUDIT_DETAIL_MAX bytes (strict RFC 8259). */
static enum mt_err detail_check(const char *s, size_t n)
{
	struct mt_jdoc doc;
	enum mt_err e;
	if (n > MT_AUDIT_DETAIL_MAX || memchr(s, '\0', n) != NULL)
		return MT_ERR_AUDIT_DETAIL;
	e = mt_json__read(s, n, &doc, NULL, 0);
	if (e == MT_ERR_NOMEM)
		return e;
	if (e != MT_OK)
		return MT_ERR_AUDIT_DETAIL;
	e = doc.root->type == MT_JV_OBJECT ? MT_OK : MT_ERR_AUDIT_DETAIL;
	mt_json__free(&doc);
	return e;
}

static enum mt_err fill_event(struct mt_audit_record *r, const struct mt_audit_event *ev)
{
	const char *subject, *detail;
	size_t dn;
	enum mt_err e;

	if (ev == NULL)
		return MT_ERR_ARG;
	subject = ev->subject != NULL ? ev->subject : "";
	detail = ev->detail != NULL ? ev->detail : "{}";
	if (!text_ok(ev->actor, MT_AUDIT_ACTOR_MAX, false) || !action_ok(ev->action) ||
	    !text_ok(subject, MT_AUDIT_SUBJECT_MAX, true) ||
	    (ev->outcome != MT_AUDIT_OK && ev->outcome != MT_AUDIT_REFUSED &&
	     ev->outcome != MT_AUDIT_ERROR))
		return MT_ERR_AUDIT_FIELD;
	dn = strnlen(detail, MT_AUDIT_DETAIL_MAX + 1);
	e = detail_check(detail, dn);
	if (e != MT_OK)
		return e;
	memset(r, 0, sizeof *r);
	r->kind = MT_AUDIT_EVENT;
	r->outcome = ev->outcome;
	memcpy(r->actor, ev->actor, strlen(ev->actor) + 1);
	memcpy(r->action, ev->action, strlen(ev->action) + 1);
	memcpy(r->subject, subject, strlen(subject) + 1);
	memcpy(r->detail, detail, dn + 1);
	return MT_OK;
}

/* ---- the hashed encoding --------------------------------------------- */

static bool lens(const struct mt_audit_record *r, size_t *na, size_t *nc, size_t *ns, size_t *nd)
{
	*na = strnlen(r->actor, sizeof r->actor);
	*nc = strnlen(r->action, sizeof r->action);
	*ns = strnlen(r->subject, sizeof r->subject);
	*nd = strnlen(r->detail, sizeof r->detail);
	return *na < sizeof r->actor && *nc < sizeof r->action && *ns < sizeof r->subject &&
	       *nd < sizeof r->detail && r->cose_len <= sizeof r->cose &&
	       (r->kind == MT_AUDIT_EVENT || r->kind == MT_AUDIT_CHECKPOINT) &&
	       (unsigned)r->outcome <= MT_AUDIT_ERROR;
}

enum mt_err mt_audit_record_encode(const struct mt_audit_record *r, uint8_t *out, size_t cap,
                                   size_t *len)
{
	struct mt_cbor_enc e;
	size_t na, nc, ns, nd;

	if (r == NULL || out == NULL || len == NULL)
		return MT_ERR_ARG;
	if (!lens(r, &na, &nc, &ns, &nd))
		return MT_ERR_AUDIT_FORMAT;
	mt_cbor_enc_init(&e, out, cap);
	mt_cbor_put_map(&e, 11);
	mt_cbor_put_uint(&e, 0);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_uint(&e, r->seq);
	mt_cbor_put_uint(&e, 2);
	mt_cbor_put_uint(&e, r->time_ms);
	mt_cbor_put_uint(&e, 3);
	mt_cbor_put_uint(&e, (uint64_t)r->kind);
	mt_cbor_put_uint(&e, 4);
	mt_cbor_put_tstr(&e, r->actor, na);
	mt_cbor_put_uint(&e, 5);
	mt_cbor_put_tstr(&e, r->action, nc);
	mt_cbor_put_uint(&e, 6);
	mt_cbor_put_tstr(&e, r->subject, ns);
	mt_cbor_put_uint(&e, 7);
	mt_cbor_put_uint(&e, (uint64_t)r->outcome);
	mt_cbor_put_uint(&e, 8);
	mt_cbor_put_tstr(&e, r->detail, nd);
	mt_cbor_put_uint(&e, 9);
	mt_cbor_put_bstr(&e, r->prev_hash, MT_AUDIT_HASH_LEN);
	mt_cbor_put_uint(&e, 10);
	mt_cbor_put_bstr(&e, r->cose, r->cose_len);
	return mt_cbor_enc_finish(&e, len);
}

enum mt_err mt_audit_record_hash(const struct mt_audit_record *r, uint8_t hash[MT_AUDIT_HASH_LEN])
{
	uint8_t *buf;
	size_t n = 0;
	enum mt_err e;

	if (r == NULL || hash == NULL)
		return MT_ERR_ARG;
	buf = malloc(MT_AUDIT_ENCODING_MAX);
	if (buf == NULL)
		return MT_ERR_NOMEM;
	e = mt_audit_record_encode(r, buf, MT_AUDIT_ENCODING_MAX, &n);
	if (e == MT_OK)
		e = mt_sha256(buf, n, hash);
	free(buf);
	return e;
}

/* ---- checkpoints ----------------------------------------------------- */

static enum mt_err cp_payload(uint64_t seq, const uint8_t hash[MT_AUDIT_HASH_LEN], uint64_t time_ms,
                              uint8_t *out, size_t cap, size_t *len)
{
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, out, cap);
	mt_cbor_put_map(&e, 3);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_uint(&e, seq);
	mt_cbor_put_uint(&e, 2);
	mt_cbor_put_bstr(&e, hash, MT_AUDIT_HASH_LEN);
	mt_cbor_put_uint(&e, 3);
	mt_cbor_put_uint(&e, time_ms);
	return mt_cbor_enc_finish(&e, len);
}

struct cp_statement {
	uint64_t seq;
	uint8_t hash[MT_AUDIT_HASH_LEN];
	uint64_t time_ms;
};

/* Verify a checkpoint COSE_Sign1 with `hub` and read its statement.
 * MT_ERR_AUDIT_CHECKPOINT_SIG when it is not a Sign1 that the hub key
 * verifies; MT_ERR_AUDIT_CHECKPOINT when the signed payload is not a
 * statement (which the hub never signs). */
static enum mt_err cp_open(const uint8_t *cose, size_t len, const struct mt_pubkey *hub,
                           struct cp_statement *st)
{
	static const char aad[] = MT_AUDIT_CHECKPOINT_AAD;
	struct mt_cose_sign1 s;
	struct mt_cbor_dec d;
	uint64_t pairs = 0, k1 = 0, k2 = 0, k3 = 0;
	const uint8_t *h = NULL;
	size_t hn = 0;

	if (mt_cose_sign1_decode(cose, len, true, &s) != MT_OK || s.payload == NULL)
		return MT_ERR_AUDIT_CHECKPOINT_SIG;
	if (mt_cose_sign1_verify(&s, hub, (const uint8_t *)aad, sizeof aad - 1) != MT_OK)
		return MT_ERR_AUDIT_CHECKPOINT_SIG;
	if (mt_cbor_validate(s.payload, s.payload_len, NULL, 0) != MT_OK)
		return MT_ERR_AUDIT_CHECKPOINT;
	mt_cbor_dec_init(&d, s.payload, s.payload_len);
	mt_cbor_get_map(&d, &pairs);
	mt_cbor_get_uint(&d, &k1);
	mt_cbor_get_uint(&d, &st->seq);
	mt_cbor_get_uint(&d, &k2);
	mt_cbor_get_bstr(&d, &h, &hn);
	mt_cbor_get_uint(&d, &k3);
	mt_cbor_get_uint(&d, &st->time_ms);
	if (mt_cbor_dec_finish(&d) != MT_OK || pairs != 3 || k1 != 1 || k2 != 2 || k3 != 3 ||
	    hn != MT_AUDIT_HASH_LEN)
		return MT_ERR_AUDIT_CHECKPOINT;
	memcpy(st->hash, h, MT_AUDIT_HASH_LEN);
	return MT_OK;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---- writing --------------------------------------------------------- */

enum mt_err mt_audit_open(struct mt_audit_store *store, struct mt_key *hub,
                          const struct mt_audit_config *cfg, struct mt_audit **out)
{
	struct mt_audit *a;
	int64_t alg;

	if (out != NULL)
		*out = NULL;
	if (store == NULL || hub == NULL || out == NULL) {
		mt_audit_store_close(store);
		return MT_ERR_ARG;
	}
	if (mt_key_type(hub) == MT_KEY_P256) {
		alg = MT_COSE_ALG_ES256;
	} else if (mt_key_type(hub) == MT_KEY_ED25519) {
		alg = MT_COSE_ALG_EDDSA;
	} else {
		mt_audit_store_close(store);
		return MT_ERR_KEY_TYPE;
	}
	a = calloc(1, sizeof *a);
	if (a == NULL) {
		mt_audit_store_close(store);
		return MT_ERR_NOMEM;
	}
	a->store = store;
	a->hub = hub;
	a->alg = alg;
	a->every = MT_AUDIT_CHECKPOINT_EVERY;
	a->every_ms = MT_AUDIT_CHECKPOINT_MS;
	if (cfg != NULL) {
		if (cfg->checkpoint_every != 0)
			a->every = cfg->checkpoint_every;
		if (cfg->checkpoint_ms != 0)
			a->every_ms = cfg->checkpoint_ms;
		if (cfg->checkpoint_path != NULL) {
			size_t n = strlen(cfg->checkpoint_path) + 1;
			a->cp_path = malloc(n);
			if (a->cp_path == NULL) {
				mt_audit_close(a);
				return MT_ERR_NOMEM;
			}
			memcpy(a->cp_path, cfg->checkpoint_path, n);
		}
	}
	*out = a;
	return MT_OK;
}

void mt_audit_close(struct mt_audit *a)
{
	if (a == NULL)
		return;
	mt_audit_store_close(a->store);
	free(a->cp_path);
	free(a);
}

void mt_audit_store_close(struct mt_audit_store *s)
{
	if (s != NULL && s->ops != NULL && s->ops->close != NULL)
		s->ops->close(s->ctx);
}

struct mt_audit_store *mt_audit_store_of(struct mt_audit *a)
{
	return a != NULL ? a->store : NULL;
}

/* The chain's state as the store holds it now (inside the transaction). */
struct tail_state {
	uint64_t last_seq; /* 0 when empty */
	uint8_t last_hash[MT_AUDIT_HASH_LEN];
	uint64_t uncovered;        /* records after the newest checkpoint record */
	uint64_t oldest_uncovered; /* time_ms of the first of them */
};

static enum mt_err copy_one(const struct mt_audit_record *r, void *arg)
{
	memcpy(arg, r, sizeof *r);
	return MT_OK;
}

static enum mt_err load_tail(struct mt_audit *a, struct tail_state *t)
{
	const struct mt_audit_store_ops *ops = a->store->ops;
	void *ctx = a->store->ctx;
	uint64_t cp = 0;
	enum mt_err e;

	memset(t, 0, sizeof *t);
	e = ops->last(ctx, &a->tmp);
	if (e == MT_ERR_NOT_FOUND)
		return MT_OK;
	if (e != MT_OK)
		return e;
	if (a->tmp.malformed || a->tmp.seq == 0 || a->tmp.seq >= SQL_INT_MAX)
		return MT_ERR_AUDIT_FORMAT;
	t->last_seq = a->tmp.seq;
	memcpy(t->last_hash, a->tmp.hash, MT_AUDIT_HASH_LEN);
	e = ops->last_checkpoint(ctx, &cp);
	if (e != MT_OK)
		return e;
	if (cp > t->last_seq)
		return MT_ERR_AUDIT_FORMAT;
	t->uncovered = t->last_seq - cp;
	if (t->uncovered > 0) {
		a->tmp.seq = 0;
		e = ops->read(ctx, cp + 1, cp + 1, copy_one, &a->tmp);
		if (e != MT_OK)
			return e;
		if (a->tmp.seq != cp + 1) /* a gap right after the checkpoint */
			return MT_ERR_AUDIT_FORMAT;
		t->oldest_uncovered = a->tmp.time_ms;
	}
	return MT_OK;
}

static bool due_by_time(const struct mt_audit *a, const struct tail_state *t, uint64_t now)
{
	return t->uncovered > 0 && now >= t->oldest_uncovered &&
	       now - t->oldest_uncovered >= a->every_ms;
}

/* Append a checkpoint record covering the last record; keep its COSE for
 * the outside file. */
static enum mt_err write_checkpoint(struct mt_audit *a, struct tail_state *t, uint64_t now,
                                    bool *sign_failed)
{
	struct mt_audit_record *r = &a->rec;
	uint8_t payload[CP_PAYLOAD_MAX];
	char hx[2 * MT_AUDIT_HASH_LEN + 1];
	const uint8_t *kid = mt_pubkey_kid(mt_key_public(a->hub));
	size_t pn = 0;
	int n;
	enum mt_err e;

	if (t->last_seq + 1 >= SQL_INT_MAX)
		return MT_ERR_AUDIT_FORMAT;
	e = cp_payload(t->last_seq, t->last_hash, now, payload, sizeof payload, &pn);
	if (e != MT_OK)
		return e;
	memset(r, 0, sizeof *r);
	e = mt_cose_sign1_sign(a->hub, a->alg, kid, MT_KID_LEN, payload, pn,
	                       (const uint8_t *)MT_AUDIT_CHECKPOINT_AAD,
	                       sizeof MT_AUDIT_CHECKPOINT_AAD - 1, r->cose, sizeof r->cose,
	                       &r->cose_len);
	if (e != MT_OK) {
		*sign_failed = true;
		return e;
	}
	r->seq = t->last_seq + 1;
	r->time_ms = now;
	r->kind = MT_AUDIT_CHECKPOINT;
	r->outcome = MT_AUDIT_OK;
	memcpy(r->actor, CP_ACTOR, sizeof CP_ACTOR);
	memcpy(r->action, CP_ACTION, sizeof CP_ACTION);
	hex(t->last_hash, MT_AUDIT_HASH_LEN, hx);
	n = snprintf(r->detail, sizeof r->detail, "{\"seq\":%llu,\"hash\":\"%s\"}",
	             (unsigned long long)t->last_seq, hx);
	if (n < 0 || (size_t)n >= sizeof r->detail)
		return MT_ERR_INTERNAL;
	memcpy(r->prev_hash, t->last_hash, MT_AUDIT_HASH_LEN);
	e = mt_audit_record_hash(r, r->hash);
	if (e == MT_OK)
		e = a->store->ops->append(a->store->ctx, r);
	if (e != MT_OK)
		return e;
	memcpy(a->cp_cose, r->cose, r->cose_len);
	a->cp_len = r->cose_len;
	t->last_seq = r->seq;
	memcpy(t->last_hash, r->hash, MT_AUDIT_HASH_LEN);
	t->uncovered = 0;
	return MT_OK;
}

enum cp_when { CP_IF_DUE, CP_IF_DUE_BY_TIME, CP_ALWAYS };

/* One transaction: maybe an event (ev != NULL, already in a->rec), then a
 * checkpoint according to `when`. */
static enum mt_err transact(struct mt_audit *a, uint64_t now, bool event, enum cp_when when,
                            uint64_t *seq, bool *done)
{
	const struct mt_audit_store_ops *ops = a->store->ops;
	struct tail_state t;
	bool cp = false, sign_failed = false;
	uint64_t ev_seq = 0;
	enum mt_err e, cp_err = MT_OK;

	if (done != NULL)
		*done = false;
	if (now > SQL_INT_MAX)
		return MT_ERR_ARG;
	a->cp_len = 0;
	e = ops->begin(a->store->ctx);
	if (e != MT_OK)
		return e;
	e = load_tail(a, &t);
	if (e == MT_OK && event) {
		struct mt_audit_record *r = &a->rec;
		if (t.last_seq + 1 >= SQL_INT_MAX) {
			e = MT_ERR_AUDIT_FORMAT;
		} else {
			r->seq = t.last_seq + 1;
			r->time_ms = now;
			memcpy(r->prev_hash, t.last_hash, MT_AUDIT_HASH_LEN);
			e = mt_audit_record_hash(r, r->hash);
		}
		if (e == MT_OK)
			e = ops->append(a->store->ctx, r);
		if (e == MT_OK) {
			ev_seq = r->seq;
			if (t.uncovered == 0)
				t.oldest_uncovered = now;
			t.uncovered++;
			t.last_seq = r->seq;
			memcpy(t.last_hash, r->hash, MT_AUDIT_HASH_LEN);
		}
	}
	if (e == MT_OK) {
		switch (when) {
		case CP_ALWAYS:
			cp = t.uncovered > 0;
			break;
		case CP_IF_DUE:
			cp = t.uncovered >= a->every || due_by_time(a, &t, now);
			break;
		case CP_IF_DUE_BY_TIME:
			cp = due_by_time(a, &t, now);
			break;
		}
		if (cp)
			e = write_checkpoint(a, &t, now, &sign_failed);
		/* A key that cannot sign must not stop the recording of events:
		 * keep the event, report the failure; the checkpoint is still
		 * due and is retried by the next append or tick. */
		if (e != MT_OK && sign_failed && event) {
			cp_err = e;
			cp = false;
			e = MT_OK;
		}
	}
	if (e == MT_OK)
		e = ops->commit(a->store->ctx);
	if (e != MT_OK) {
		ops->rollback(a->store->ctx);
		return e;
	}
	if (seq != NULL)
		*seq = ev_seq;
	if (done != NULL)
		*done = cp;
	if (cp_err != MT_OK)
		return cp_err;
	/* After the commit: the outside file never names a checkpoint the
	 * database does not hold (docs/audit.md, "Order of writes"). */
	if (cp && a->cp_path != NULL)
		return mt_audit__file_append(a->cp_path, a->cp_cose, a->cp_len);
	return MT_OK;
}

enum mt_err mt_audit_append(struct mt_audit *a, uint64_t now_ms, const struct mt_audit_event *ev,
                            uint64_t *seq)
{
	enum mt_err e;
	if (seq != NULL)
		*seq = 0;
	if (a == NULL || ev == NULL)
		return MT_ERR_ARG;
	e = fill_event(&a->rec, ev);
	if (e != MT_OK)
		return e;
	return transact(a, now_ms, true, CP_IF_DUE, seq, NULL);
}

enum mt_err mt_audit_checkpoint(struct mt_audit *a, uint64_t now_ms, bool *done)
{
	if (a == NULL)
		return MT_ERR_ARG;
	return transact(a, now_ms, false, CP_ALWAYS, NULL, done);
}

enum mt_err mt_audit_tick(struct mt_audit *a, uint64_t now_ms, bool *done)
{
	if (a == NULL)
		return MT_ERR_ARG;
	return transact(a, now_ms, false, CP_IF_DUE_BY_TIME, NULL, done);
}

/* ---- verification ---------------------------------------------------- */

/* One checkpoint from the outside file: the statement, and the COSE bytes
 * that the checkpoint record right after the named record must carry. */
struct ext_cp {
	uint64_t seq;
	uint8_t hash[MT_AUDIT_HASH_LEN];
	uint8_t cose[MT_AUDIT_COSE_MAX];
	size_t cose_len;
};

struct walk {
	const struct mt_pubkey *hub;
	struct mt_audit_verdict *v;
	uint64_t expect;
	uint8_t prev[MT_AUDIT_HASH_LEN];
	uint64_t prev_time;
	struct ext_cp *ext;
	size_t n_ext, cap_ext, next_ext;
	size_t next_cose;    /* first ext entry whose checkpoint record is still ahead */
	enum mt_err ext_err; /* first bad line of the outside file */
	size_t ext_err_line;
	struct mt_audit_record alt; /* scratch: a record with prev_hash replaced */
};

static enum mt_err bad(struct mt_audit_verdict *v, enum mt_err why, uint64_t seq, const char *what)
{
	v->err = why;
	v->seq = seq;
	snprintf(v->why, sizeof v->why, "record %llu: %s", (unsigned long long)seq, what);
	return why;
}

static int unhex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static enum mt_err ext_line(const char *line, size_t len, size_t lineno, void *arg)
{
	struct walk *w = arg;
	uint8_t cose[MT_AUDIT_COSE_MAX];
	struct cp_statement st;
	size_t n = len / 2;
	enum mt_err e = MT_OK;

	if (w->ext_err != MT_OK)
		return MT_OK;
	if (len == 0 || len % 2 != 0 || n > sizeof cose) {
		e = MT_ERR_AUDIT_CHECKPOINT_SIG;
	} else {
		for (size_t i = 0; i < n; i++) {
			int hi = unhex_digit(line[2 * i]), lo = unhex_digit(line[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				e = MT_ERR_AUDIT_CHECKPOINT_SIG;
				break;
			}
			cose[i] = (uint8_t)(hi << 4 | lo);
		}
	}
	if (e == MT_OK)
		e = cp_open(cose, n, w->hub, &st);
	if (e != MT_OK) {
		w->ext_err = e;
		w->ext_err_line = lineno;
		return MT_OK;
	}
	if (w->n_ext == w->cap_ext) {
		size_t cap = w->cap_ext != 0 ? 2 * w->cap_ext : 64;
		struct ext_cp *p = realloc(w->ext, cap * sizeof *p);
		if (p == NULL)
			return MT_ERR_NOMEM;
		w->ext = p;
		w->cap_ext = cap;
	}
	w->ext[w->n_ext].seq = st.seq;
	memcpy(w->ext[w->n_ext].hash, st.hash, MT_AUDIT_HASH_LEN);
	memcpy(w->ext[w->n_ext].cose, cose, n);
	w->ext[w->n_ext].cose_len = n;
	w->n_ext++;
	return MT_OK;
}

static int cmp_ext(const void *a, const void *b)
{
	const struct ext_cp *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static enum mt_err walk_one(const struct mt_audit_record *r, void *arg)
{
	struct walk *w = arg;
	struct mt_audit_verdict *v = w->v;
	uint8_t h[MT_AUDIT_HASH_LEN];
	bool self_ok, link_ok;
	enum mt_err e;

	v->records++;
	if (r->seq > w->expect)
		return bad(v, MT_ERR_AUDIT_MISSING, w->expect, "missing (sequence gap)");
	if (r->seq < w->expect)
		return bad(v, MT_ERR_AUDIT_ORDER, r->seq,
		           "sequence number repeated or out of order");
	if (r->malformed)
		return bad(v, MT_ERR_AUDIT_FORMAT, r->seq, "malformed field");
	e = mt_audit_record_hash(r, h);
	if (e == MT_ERR_AUDIT_FORMAT)
		return bad(v, e, r->seq, "malformed field");
	if (e != MT_OK)
		return e;
	self_ok = memcmp(h, r->hash, sizeof h) == 0;
	link_ok = memcmp(r->prev_hash, w->prev, sizeof w->prev) == 0;
	if (!self_ok && !link_ok) {
		/* Only prev_hash edited, or a record from elsewhere? */
		memcpy(&w->alt, r, sizeof *r);
		memcpy(w->alt.prev_hash, w->prev, sizeof w->prev);
		e = mt_audit_record_hash(&w->alt, h);
		if (e != MT_OK)
			return e;
		if (memcmp(h, r->hash, sizeof h) == 0)
			return bad(v, MT_ERR_AUDIT_EDITED, r->seq, "prev_hash edited");
		return bad(v, MT_ERR_AUDIT_ORDER, r->seq,
		           "neither hashes to its stored hash nor chains here (moved or swapped)");
	}
	if (!self_ok)
		return bad(v, MT_ERR_AUDIT_EDITED, r->seq,
		           "does not hash to its stored hash (edited)");
	if (!link_ok)
		return bad(
		        v, MT_ERR_AUDIT_LINK, r->seq,
		        "prev_hash is not the hash of the record before (inserted or rewritten)");
	if (r->kind == MT_AUDIT_CHECKPOINT) {
		struct cp_statement st;
		e = cp_open(r->cose, r->cose_len, w->hub, &st);
		if (e == MT_ERR_AUDIT_CHECKPOINT_SIG)
			return bad(v, e, r->seq, "checkpoint signature is not the hub key's");
		if (e != MT_OK)
			return bad(v, e, r->seq, "checkpoint statement malformed");
		if (st.seq + 1 != r->seq || memcmp(st.hash, w->prev, sizeof st.hash) != 0 ||
		    st.time_ms != r->time_ms)
			return bad(v, MT_ERR_AUDIT_CHECKPOINT, r->seq,
			           "checkpoint does not name the record before it");
		v->checkpoints++;
	}
	while (w->next_ext < w->n_ext && w->ext[w->next_ext].seq <= r->seq) {
		const struct ext_cp *x = &w->ext[w->next_ext++];
		if (x->seq == r->seq && memcmp(x->hash, r->hash, sizeof x->hash) != 0)
			return bad(v, MT_ERR_AUDIT_CHECKPOINT, r->seq,
			           "hash differs from the outside checkpoint (chain rewritten)");
	}
	/* The record after the one an outside checkpoint names is that very
	 * checkpoint, so deleting the last checkpoint record is truncation. */
	while (w->next_cose < w->n_ext && w->ext[w->next_cose].seq + 1 <= r->seq) {
		const struct ext_cp *x = &w->ext[w->next_cose++];
		if (x->seq + 1 < r->seq)
			continue; /* checked when that record went by */
		if (r->kind != MT_AUDIT_CHECKPOINT || r->cose_len != x->cose_len ||
		    memcmp(r->cose, x->cose, x->cose_len) != 0)
			return bad(v, MT_ERR_AUDIT_CHECKPOINT, r->seq,
			           "not the checkpoint the outside file holds for this place");
		v->external++;
	}
	memcpy(w->prev, r->hash, sizeof w->prev);
	w->prev_time = r->time_ms;
	v->last_seq = r->seq;
	w->expect = r->seq + 1;
	return MT_OK;
}

const char *mt_audit_reason_word(enum mt_err e)
{
	switch (e) {
	case MT_ERR_AUDIT_EDITED:
		return "edited";
	case MT_ERR_AUDIT_MISSING:
		return "missing";
	case MT_ERR_AUDIT_ORDER:
		return "order";
	case MT_ERR_AUDIT_LINK:
		return "link";
	case MT_ERR_AUDIT_CHECKPOINT_SIG:
		return "checkpoint-signature";
	case MT_ERR_AUDIT_CHECKPOINT:
		return "checkpoint";
	case MT_ERR_AUDIT_TRUNCATED:
		return "truncated";
	case MT_ERR_AUDIT_FORMAT:
		return "malformed";
	default:
		return NULL;
	}
}

enum mt_err mt_audit_verify(struct mt_audit_store *store, const struct mt_pubkey *hub,
                            const char *checkpoint_path, struct mt_audit_verdict *v)
{
	struct walk *w;
	enum mt_err e = MT_OK;

	if (v == NULL)
		return MT_ERR_ARG;
	memset(v, 0, sizeof *v);
	if (store == NULL || store->ops == NULL || hub == NULL) {
		v->err = MT_ERR_ARG;
		return MT_ERR_ARG;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		v->err = MT_ERR_NOMEM;
		return MT_ERR_NOMEM;
	}
	w->hub = hub;
	w->v = v;
	w->expect = 1;
	if (checkpoint_path != NULL)
		e = mt_audit__file_read(checkpoint_path, ext_line, w);
	if (e == MT_OK) {
		if (w->n_ext > 1)
			qsort(w->ext, w->n_ext, sizeof *w->ext, cmp_ext);
		e = store->ops->read(store->ctx, 1, SQL_INT_MAX, walk_one, w);
	}
	if (e != MT_OK && v->err == MT_OK) { /* an operational failure */
		v->err = e;
		v->seq = 0;
		snprintf(v->why, sizeof v->why, "could not read the chain: %s", mt_err_str(e));
	} else if (e == MT_OK && w->ext_err != MT_OK) {
		v->err = w->ext_err;
		v->seq = 0;
		snprintf(v->why, sizeof v->why, "outside checkpoint file, line %zu: %s",
		         w->ext_err_line, mt_err_str(w->ext_err));
	} else if (e == MT_OK && w->n_ext > 0 && w->ext[w->n_ext - 1].seq + 1 > v->last_seq) {
		v->err = MT_ERR_AUDIT_TRUNCATED;
		v->seq = v->last_seq + 1;
		snprintf(v->why, sizeof v->why,
		         "record %llu: missing; the chain ends at %llu but the outside "
		         "checkpoint file holds checkpoint record %llu (truncated)",
		         (unsigned long long)v->seq, (unsigned long long)v->last_seq,
		         (unsigned long long)(w->ext[w->n_ext - 1].seq + 1));
	} else if (e == MT_OK) {
		snprintf(v->why, sizeof v->why,
		         "%llu records, %llu checkpoints, %llu outside checkpoints: intact",
		         (unsigned long long)v->records, (unsigned long long)v->checkpoints,
		         (unsigned long long)v->external);
	}
	free(w->ext);
	free(w);
	return v->err;
}

/* ---- JSON lines ------------------------------------------------------ */

struct jbuf {
	char *p;
	size_t cap, len;
	bool full;
};

static void jraw(struct jbuf *b, const char *s, size_t n)
{
	if (b->full || n >= b->cap - b->len) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void jlit(struct jbuf *b, const char *s)
{
	jraw(b, s, strlen(s));
}

/* A JSON string: '"' and '\' escaped, control characters as \u00XX, all
 * else copied (the text is UTF-8). */
static void jstr(struct jbuf *b, const char *s, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	jraw(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			jraw(b, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			char esc[6] = {'\\', 'u', '0', '0', digits[c >> 4], digits[c & 15]};
			jraw(b, esc, 6);
		} else {
			jraw(b, (const char *)&s[i], 1);
		}
	}
	jraw(b, "\"", 1);
}

static void jhex(struct jbuf *b, const uint8_t *p, size_t n)
{
	char tmp[2 * MT_AUDIT_COSE_MAX + 1];
	if (n > MT_AUDIT_COSE_MAX) {
		b->full = true;
		return;
	}
	hex(p, n, tmp);
	jraw(b, "\"", 1);
	jraw(b, tmp, 2 * n);
	jraw(b, "\"", 1);
}

static void juint(struct jbuf *b, uint64_t u)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)u);
	jraw(b, tmp, (size_t)n);
}

enum mt_err mt_audit_record_json(const struct mt_audit_record *r, char *buf, size_t cap,
                                 size_t *len)
{
	static const char *const outcomes[] = {"ok", "refused", "error"};
	struct jbuf b = {buf, cap, 0, false};
	size_t na, nc, ns, nd;
	bool sane;
	enum mt_err e;

	if (r == NULL || buf == NULL || cap == 0 || len == NULL)
		return MT_ERR_ARG;
	sane = lens(r, &na, &nc, &ns, &nd);
	if (!sane) { /* a malformed row: print what is safely printable */
		na = strnlen(r->actor, sizeof r->actor - 1);
		nc = strnlen(r->action, sizeof r->action - 1);
		ns = strnlen(r->subject, sizeof r->subject - 1);
		nd = strnlen(r->detail, sizeof r->detail - 1);
	}
	jlit(&b, "{\"seq\":");
	juint(&b, r->seq);
	jlit(&b, ",\"time_ms\":");
	juint(&b, r->time_ms);
	if (r->time_ms / 1000 <= (uint64_t)INT32_MAX * 64) { /* far inside time_t */
		time_t t = (time_t)(r->time_ms / 1000);
		struct tm tm;
		char ts[48];
		if (gmtime_r(&t, &tm) != NULL &&
		    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm) > 0) {
			char ms[8];
			snprintf(ms, sizeof ms, ".%03uZ", (unsigned)(r->time_ms % 1000));
			jlit(&b, ",\"time\":\"");
			jlit(&b, ts);
			jlit(&b, ms);
			jlit(&b, "\"");
		}
	}
	jlit(&b, ",\"kind\":");
	jlit(&b, r->kind == MT_AUDIT_CHECKPOINT ? "\"checkpoint\"" : "\"event\"");
	jlit(&b, ",\"actor\":");
	jstr(&b, r->actor, na);
	jlit(&b, ",\"action\":");
	jstr(&b, r->action, nc);
	jlit(&b, ",\"subject\":");
	jstr(&b, r->subject, ns);
	jlit(&b, ",\"outcome\":");
	if ((unsigned)r->outcome <= MT_AUDIT_ERROR) {
		jlit(&b, "\"");
		jlit(&b, outcomes[r->outcome]);
		jlit(&b, "\"");
	} else {
		juint(&b, (unsigned)r->outcome);
	}
	e = sane && !r->malformed ? detail_check(r->detail, nd) : MT_ERR_AUDIT_DETAIL;
	if (e == MT_ERR_NOMEM)
		return e;
	if (e == MT_OK) {
		jlit(&b, ",\"detail\":");
		jraw(&b, r->detail, nd);
	} else {
		jlit(&b, ",\"detail_invalid\":");
		jstr(&b, r->detail, nd);
	}
	jlit(&b, ",\"prev_hash\":");
	jhex(&b, r->prev_hash, MT_AUDIT_HASH_LEN);
	jlit(&b, ",\"hash\":");
	jhex(&b, r->hash, MT_AUDIT_HASH_LEN);
	if (r->kind == MT_AUDIT_CHECKPOINT || r->cose_len > 0) {
		jlit(&b, ",\"checkpoint\":");
		jhex(&b, r->cose, r->cose_len);
	}
	if (r->malformed)
		jlit(&b, ",\"malformed\":true");
	jlit(&b, "}\n");
	if (b.full)
		return MT_ERR_BUFFER;
	buf[b.len] = '\0';
	*len = b.len;
	return MT_OK;
}

struct export_ctx {
	mt_audit_line_cb line;
	void *arg;
	char *buf;
};

static enum mt_err export_one(const struct mt_audit_record *r, void *arg)
{
	struct export_ctx *x = arg;
	size_t n = 0;
	enum mt_err e = mt_audit_record_json(r, x->buf, MT_AUDIT_JSON_MAX, &n);
	if (e != MT_OK)
		return e;
	return x->line(x->buf, n, x->arg);
}

enum mt_err mt_audit_export(struct mt_audit_store *store, uint64_t from, uint64_t to,
                            mt_audit_line_cb line, void *arg)
{
	struct export_ctx x = {line, arg, NULL};
	enum mt_err e;

	if (store == NULL || store->ops == NULL || line == NULL)
		return MT_ERR_ARG;
	if (to == 0 || to > SQL_INT_MAX)
		to = SQL_INT_MAX;
	if (from == 0)
		from = 1;
	if (from > to)
		return MT_OK;
	x.buf = malloc(MT_AUDIT_JSON_MAX);
	if (x.buf == NULL)
		return MT_ERR_NOMEM;
	e = store->ops->read(store->ctx, from, to, export_one, &x);
	free(x.buf);
	return e;
}

enum mt_err mt_audit_tail(struct mt_audit_store *store, uint64_t n, mt_audit_line_cb line,
                          void *arg)
{
	struct mt_audit_record *last;
	uint64_t to;
	enum mt_err e;

	if (store == NULL || store->ops == NULL || line == NULL)
		return MT_ERR_ARG;
	if (n == 0)
		return MT_OK;
	last = malloc(sizeof *last);
	if (last == NULL)
		return MT_ERR_NOMEM;
	e = store->ops->last(store->ctx, last);
	to = e == MT_OK ? last->seq : 0;
	free(last);
	if (e == MT_ERR_NOT_FOUND)
		return MT_OK;
	if (e != MT_OK)
		return e;
	return mt_audit_export(store, to >= n ? to - n + 1 : 1, to, line, arg);
}
