/*
 * cose.c — generic COSE_Sign1 and COSE_Encrypt0 (RFC 9052 §4.2, §4.4, §5.2,
 * §5.3; algorithms RFC 9053 §2.1, §2.2, §4.1), see mt_cose.h.
 *
 * MTP/1's packet codec (protocol §4) does not use the generic decoders: its
 * headers are fixed bytes compared as bytes.  It uses the two structure
 * builders here (the Sig_structure prefix and the Enc_structure), which must
 * therefore be exact.  The generic half serves everything else that is COSE —
 * downlink commands (§6), firmware and device manifests (§1, §7) — and the
 * COSE working group's examples that prove it interoperates.
 *
 * Decoding is strict, in this order:
 *   1. an optional tag, which must be the structure's (18 for Sign1, 16 for
 *      Encrypt0; any other is MT_ERR_CBOR_TAG, a missing one
 *      MT_ERR_COSE_FORMAT when required), then one strict CBOR item with no
 *      tags in it (mt_cbor_validate: shortest heads, no indefinite lengths,
 *      keys ordered and unique, depth ≤ 8, maps ≤ 16 entries, no trailing
 *      bytes);
 *   2. an array of 4 (Sign1) or 3 (Encrypt0), else MT_ERR_COSE_FORMAT;
 *   3. protected = a bstr whose content is empty or one strict CBOR map with
 *      no tags; unprotected = a map;
 *   4. in each bucket alg (1) must be an int (a text alg is an algorithm we
 *      do not know: MT_ERR_COSE_ALG), kid (4) and IV (5) bstrs, x5chain (33)
 *      a bstr or a non-empty array of bstrs (RFC 9360); other labels are
 *      skipped; a label present in both buckets, or IV and Partial IV (6)
 *      together, is MT_ERR_COSE_FORMAT;
 *   5. crit (2) must sit in the protected bucket, be a non-empty array, and
 *      list only labels this file processes (alg, kid, IV, x5chain), else
 *      MT_ERR_COSE_CRIT (RFC 9052 §3.1: a recipient must refuse a message
 *      whose critical parameters it does not understand).
 * Because the encoding is deterministic, two labels are equal exactly when
 * their encoded bytes are, so the cross-bucket check compares bytes.
 * A protected bucket holding an empty map (h'a0') is reported as empty
 * (prot_len 0): RFC 9052 §3 makes recipients accept both forms and §4.4/§5.3
 * put a zero-length bstr into the Sig/Enc_structure when there are no
 * protected parameters (the examples sign-pass-01 and enc-pass-01 need it).
 *
 * Verification takes alg from the protected bucket, else the unprotected
 * one; ES256/384/512 need an EC key and pick the hash by the alg (the COSE
 * examples sign ES512 over P-256), EdDSA needs Ed25519/Ed448; the signature
 * length is the key's (mt_sig_verify_hash checks it).  The Sig_structure is
 * never joined with the payload: the prefix is built on the stack (or the
 * heap when headers and external AAD are large) and the crypto adapter
 * hashes prefix and payload in turn.
 *
 * Encoding (sign, encrypt) writes tagged objects in deterministic encoding:
 * protected {1: alg}, unprotected {4: kid} or {} for Sign1 and {5: iv} for
 * Encrypt0.  Decoded structures point into the caller's buffer.
 */
#include "medtrust/mt_cose.h"

#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"

#define MT_COSE_STACK_STRUCT 512 /* Sig/Enc_structure bytes kept on the stack */

static const char mt_sig1_ctx[] = "Signature1";
static const char mt_enc0_ctx[] = "Encrypt0";

/* ------------------------------------------------------------ builders */

enum mt_err mt_cose_sig1_prefix(const uint8_t *prot, size_t prot_len, const uint8_t *aad,
                                size_t aad_len, size_t payload_len, uint8_t *out,
                                size_t cap, size_t *len)
{
	struct mt_cbor_enc e;

	if (out == NULL || len == NULL || (prot == NULL && prot_len > 0) ||
	    (aad == NULL && aad_len > 0))
		return MT_ERR_ARG;
	mt_cbor_enc_init(&e, out, cap);
	mt_cbor_put_array(&e, 4);
	mt_cbor_put_tstr(&e, mt_sig1_ctx, sizeof mt_sig1_ctx - 1);
	mt_cbor_put_bstr(&e, prot, prot_len);
	mt_cbor_put_bstr(&e, aad, aad_len);
	mt_cbor_put_bstr_head(&e, payload_len);
	return mt_cbor_enc_finish(&e, len);
}

enum mt_err mt_cose_enc0_structure(const uint8_t *prot, size_t prot_len,
                                   const uint8_t *aad, size_t aad_len, uint8_t *out,
                                   size_t cap, size_t *len)
{
	struct mt_cbor_enc e;

	if (out == NULL || len == NULL || (prot == NULL && prot_len > 0) ||
	    (aad == NULL && aad_len > 0))
		return MT_ERR_ARG;
	mt_cbor_enc_init(&e, out, cap);
	mt_cbor_put_array(&e, 3);
	mt_cbor_put_tstr(&e, mt_enc0_ctx, sizeof mt_enc0_ctx - 1);
	mt_cbor_put_bstr(&e, prot, prot_len);
	mt_cbor_put_bstr(&e, aad, aad_len);
	return mt_cbor_enc_finish(&e, len);
}

/* Bytes a structure with these parts needs (a safe upper bound). */
static size_t struct_bound(size_t prot_len, size_t aad_len)
{
	return 1 + 1 + sizeof mt_sig1_ctx + 9 + prot_len + 9 + aad_len + 9;
}

/* ------------------------------------------------------------ decoding */

/* Labels seen in one bucket, as their encoded bytes. */
struct mt_cose_labels {
	size_t n;
	const uint8_t *p[MT_CBOR_MAX_MAP];
	size_t len[MT_CBOR_MAX_MAP];
	bool partial_iv;
};

static enum mt_err dec_err(const struct mt_cbor_dec *d)
{
	return d->err != MT_OK ? d->err : MT_ERR_COSE_FORMAT;
}

static bool label_processed(int64_t l)
{
	return l == MT_COSE_HDR_ALG || l == MT_COSE_HDR_KID || l == MT_COSE_HDR_IV ||
	       l == MT_COSE_HDR_X5CHAIN;
}

static bool item_int(const struct mt_cbor_item *it, int64_t *v)
{
	if ((it->type != MT_CBOR_UINT && it->type != MT_CBOR_NEGINT) ||
	    it->u > (uint64_t)INT64_MAX)
		return false;
	*v = it->type == MT_CBOR_UINT ? (int64_t)it->u : -1 - (int64_t)it->u;
	return true;
}

static enum mt_err parse_crit(struct mt_cbor_dec *d)
{
	struct mt_cbor_item it;

	if (!mt_cbor_next(d, &it))
		return dec_err(d);
	if (it.type != MT_CBOR_ARRAY || it.u == 0)
		return MT_ERR_COSE_CRIT;
	for (uint64_t i = 0; i < it.u; i++) {
		struct mt_cbor_item l;
		int64_t v;
		if (!mt_cbor_next(d, &l))
			return dec_err(d);
		if (!item_int(&l, &v) || !label_processed(v))
			return MT_ERR_COSE_CRIT;
	}
	return MT_OK;
}

static enum mt_err parse_x5chain(struct mt_cbor_dec *d, struct mt_cose_hdr *h)
{
	struct mt_cbor_item it;

	if (!mt_cbor_next(d, &it))
		return dec_err(d);
	h->x5chain = d->buf + it.start;
	if (it.type == MT_CBOR_BSTR) {
		h->x5chain_len = it.end - it.start;
		return MT_OK;
	}
	if (it.type != MT_CBOR_ARRAY || it.u == 0)
		return MT_ERR_COSE_FORMAT;
	for (uint64_t i = 0; i < it.u; i++) {
		struct mt_cbor_item c;
		if (!mt_cbor_next(d, &c))
			return dec_err(d);
		if (c.type != MT_CBOR_BSTR)
			return MT_ERR_COSE_FORMAT;
	}
	h->x5chain_len = d->pos - it.start;
	return MT_OK;
}

static enum mt_err parse_bstr(struct mt_cbor_dec *d, const uint8_t **p, size_t *n)
{
	struct mt_cbor_item it;

	if (!mt_cbor_next(d, &it))
		return dec_err(d);
	if (it.type != MT_CBOR_BSTR)
		return MT_ERR_COSE_FORMAT;
	*p = it.ptr;
	*n = (size_t)it.u;
	return MT_OK;
}

/* One header map, read from `d` (already validated as strict CBOR). */
static enum mt_err parse_bucket(struct mt_cbor_dec *d, bool is_protected,
                                struct mt_cose_hdr *h, struct mt_cose_labels *ls)
{
	struct mt_cbor_item m;
	enum mt_err e;

	if (!mt_cbor_next(d, &m))
		return dec_err(d);
	if (m.type != MT_CBOR_MAP || m.u > MT_CBOR_MAX_MAP)
		return MT_ERR_COSE_FORMAT;
	for (uint64_t i = 0; i < m.u; i++) {
		struct mt_cbor_item k, v;
		int64_t label;

		if (!mt_cbor_next(d, &k))
			return dec_err(d);
		ls->p[ls->n] = d->buf + k.start;
		ls->len[ls->n] = k.end - k.start;
		ls->n++;
		if (k.type == MT_CBOR_TSTR) {
			if (!mt_cbor_skip(d))
				return dec_err(d);
			continue;
		}
		if (!item_int(&k, &label))
			return MT_ERR_COSE_FORMAT;
		switch (label) {
		case MT_COSE_HDR_ALG:
			if (!mt_cbor_next(d, &v))
				return dec_err(d);
			if (v.type == MT_CBOR_TSTR)
				return MT_ERR_COSE_ALG; /* a named alg: none we know */
			if (!item_int(&v, &h->alg))
				return v.type == MT_CBOR_UINT || v.type == MT_CBOR_NEGINT
				               ? MT_ERR_COSE_ALG
				               : MT_ERR_COSE_FORMAT;
			h->has_alg = true;
			break;
		case MT_COSE_HDR_CRIT:
			if (!is_protected)
				return MT_ERR_COSE_CRIT;
			if ((e = parse_crit(d)) != MT_OK)
				return e;
			break;
		case MT_COSE_HDR_KID:
			if ((e = parse_bstr(d, &h->kid, &h->kid_len)) != MT_OK)
				return e;
			break;
		case MT_COSE_HDR_IV:
			if ((e = parse_bstr(d, &h->iv, &h->iv_len)) != MT_OK)
				return e;
			break;
		case MT_COSE_HDR_X5CHAIN:
			if ((e = parse_x5chain(d, h)) != MT_OK)
				return e;
			break;
		default:
			if (label == 6)
				ls->partial_iv = true;
			if (!mt_cbor_skip(d))
				return dec_err(d);
			break;
		}
	}
	return MT_OK;
}

/* The protected bucket: empty, or a bstr holding one strict map. */
static enum mt_err parse_protected(const uint8_t *prot, size_t len, struct mt_cose_hdr *h,
                                   struct mt_cose_labels *ls)
{
	struct mt_cbor_dec d;
	enum mt_err e;

	if (len == 0)
		return MT_OK;
	if ((e = mt_cbor_validate(prot, len, NULL, 0)) != MT_OK)
		return e;
	mt_cbor_dec_init(&d, prot, len);
	if ((e = parse_bucket(&d, true, h, ls)) != MT_OK)
		return e;
	return mt_cbor_dec_finish(&d);
}

static enum mt_err check_buckets(const struct mt_cose_labels *pl,
                                 const struct mt_cose_labels *ul,
                                 const struct mt_cose_hdr *ph, const struct mt_cose_hdr *uh)
{
	for (size_t i = 0; i < ul->n; i++)
		for (size_t j = 0; j < pl->n; j++)
			if (ul->len[i] == pl->len[j] && memcmp(ul->p[i], pl->p[j], ul->len[i]) == 0)
				return MT_ERR_COSE_FORMAT;
	if ((ph->iv != NULL || uh->iv != NULL) && (pl->partial_iv || ul->partial_iv))
		return MT_ERR_COSE_FORMAT; /* RFC 9052 §3.1: not both */
	return MT_OK;
}

/*
 * The tag in front of a COSE object.  COSE allows exactly one tag, at the
 * top; reading it here lets the rest be validated with no tag allowed
 * anywhere inside (a tag 18 nested in a header is refused, not skipped).  A
 * tag of any other value is MT_ERR_CBOR_TAG; the head must be in its
 * shortest form like every other.
 */
static enum mt_err tag_head(const uint8_t *buf, size_t len, uint64_t *tag, size_t *hlen)
{
	uint8_t ai = buf[0] & 31;
	size_t w;
	uint64_t v = 0;

	if (ai < 24) {
		*tag = ai;
		*hlen = 1;
		return MT_OK;
	}
	if (ai > 27)
		return MT_ERR_CBOR_MALFORMED;
	w = (size_t)1 << (ai - 24);
	if (len < 1 + w)
		return MT_ERR_CBOR_TRUNCATED;
	for (size_t i = 0; i < w; i++)
		v = (v << 8) | buf[1 + i];
	if ((ai == 24 && v < 24) || (ai == 25 && v <= 0xff) || (ai == 26 && v <= 0xffff) ||
	    (ai == 27 && v <= 0xffffffffu))
		return MT_ERR_CBOR_NOT_SHORTEST;
	*tag = v;
	*hlen = 1 + w;
	return MT_OK;
}

/*
 * The common head: optional tag, then one strict item with no tags that is
 * an array of `count`, protected bstr and its map, unprotected map.  Leaves
 * `d` at the first field after the unprotected bucket.
 */
static enum mt_err decode_head(const uint8_t *buf, size_t len, bool require_tag,
                               uint64_t tag, uint64_t count, struct mt_cbor_dec *d,
                               bool *tagged, const uint8_t **prot, size_t *prot_len,
                               struct mt_cose_hdr *ph, struct mt_cose_hdr *uh)
{
	struct mt_cose_labels pl = {0}, ul = {0};
	struct mt_cbor_item it;
	size_t off = 0;
	enum mt_err e;

	if (buf == NULL || len == 0)
		return len == 0 ? MT_ERR_CBOR_TRUNCATED : MT_ERR_ARG;
	*tagged = (buf[0] >> 5) == 6;
	if (*tagged) {
		uint64_t t;
		if ((e = tag_head(buf, len, &t, &off)) != MT_OK)
			return e;
		if (t != tag)
			return MT_ERR_CBOR_TAG;
	} else if (require_tag) {
		return MT_ERR_COSE_FORMAT;
	}
	if ((e = mt_cbor_validate(buf + off, len - off, NULL, 0)) != MT_OK)
		return e;
	mt_cbor_dec_init(d, buf + off, len - off);
	if (!mt_cbor_next(d, &it))
		return dec_err(d);
	if (it.type != MT_CBOR_ARRAY || it.u != count)
		return MT_ERR_COSE_FORMAT;
	if ((e = parse_bstr(d, prot, prot_len)) != MT_OK)
		return e;
	if ((e = parse_protected(*prot, *prot_len, ph, &pl)) != MT_OK)
		return e;
	if (*prot_len == 1) /* h'a0', the only one-byte map: empty */
		*prot_len = 0;
	if ((e = parse_bucket(d, false, uh, &ul)) != MT_OK)
		return e;
	return check_buckets(&pl, &ul, ph, uh);
}

enum mt_err mt_cose_sign1_decode(const uint8_t *buf, size_t len, bool require_tag,
                                 struct mt_cose_sign1 *out)
{
	struct mt_cbor_dec d;
	struct mt_cbor_item it;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	memset(out, 0, sizeof *out);
	e = decode_head(buf, len, require_tag, MT_COSE_TAG_SIGN1, 4, &d, &out->tagged,
	                &out->prot, &out->prot_len, &out->ph, &out->uh);
	if (e != MT_OK)
		goto fail;
	if (!mt_cbor_next(&d, &it)) {
		e = dec_err(&d);
		goto fail;
	}
	if (it.type == MT_CBOR_BSTR) {
		out->payload = it.ptr;
		out->payload_len = (size_t)it.u;
	} else if (it.type != MT_CBOR_NULL) {
		e = MT_ERR_COSE_FORMAT;
		goto fail;
	}
	if ((e = parse_bstr(&d, &out->sig, &out->sig_len)) != MT_OK)
		goto fail;
	if ((e = mt_cbor_dec_finish(&d)) != MT_OK)
		goto fail;
	return MT_OK;
fail:
	memset(out, 0, sizeof *out);
	return e;
}

enum mt_err mt_cose_encrypt0_decode(const uint8_t *buf, size_t len, bool require_tag,
                                    struct mt_cose_encrypt0 *out)
{
	struct mt_cbor_dec d;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	memset(out, 0, sizeof *out);
	e = decode_head(buf, len, require_tag, MT_COSE_TAG_ENCRYPT0, 3, &d, &out->tagged,
	                &out->prot, &out->prot_len, &out->ph, &out->uh);
	if (e == MT_OK)
		e = parse_bstr(&d, &out->ct, &out->ct_len); /* a detached ciphertext: no */
	if (e == MT_OK)
		e = mt_cbor_dec_finish(&d);
	if (e != MT_OK)
		memset(out, 0, sizeof *out);
	return e;
}

/* ------------------------------------------------------ verify, decrypt */

static bool hdr_alg(const struct mt_cose_hdr *ph, const struct mt_cose_hdr *uh,
                    int64_t *alg)
{
	if (ph->has_alg) {
		*alg = ph->alg;
		return true;
	}
	if (uh->has_alg) {
		*alg = uh->alg;
		return true;
	}
	return false;
}

enum mt_err mt_cose_sign1_verify(const struct mt_cose_sign1 *s, const struct mt_pubkey *pk,
                                 const uint8_t *aad, size_t aad_len)
{
	uint8_t stack[MT_COSE_STACK_STRUCT];
	uint8_t *pre = stack;
	size_t cap = sizeof stack, pre_len = 0;
	int64_t alg;
	int hash_bits;
	enum mt_err e;

	if (s == NULL || pk == NULL || (aad == NULL && aad_len > 0))
		return MT_ERR_ARG;
	if (!hdr_alg(&s->ph, &s->uh, &alg))
		return MT_ERR_COSE_ALG;
	enum mt_key_type kt = mt_pubkey_type(pk);
	bool ec = kt == MT_KEY_P256 || kt == MT_KEY_P384 || kt == MT_KEY_P521;
	bool ed = kt == MT_KEY_ED25519 || kt == MT_KEY_ED448;
	switch (alg) {
	case MT_COSE_ALG_ES256: hash_bits = 256; break;
	case MT_COSE_ALG_ES384: hash_bits = 384; break;
	case MT_COSE_ALG_ES512: hash_bits = 512; break;
	case MT_COSE_ALG_EDDSA: hash_bits = 0; break;
	default: return MT_ERR_COSE_ALG;
	}
	if ((hash_bits != 0 && !ec) || (hash_bits == 0 && !ed))
		return MT_ERR_COSE_ALG;
	if (s->payload == NULL)
		return MT_ERR_COSE_FORMAT; /* detached payloads are not supported */

	if (struct_bound(s->prot_len, aad_len) > cap) {
		cap = struct_bound(s->prot_len, aad_len);
		if ((pre = malloc(cap)) == NULL)
			return MT_ERR_NOMEM;
	}
	e = mt_cose_sig1_prefix(s->prot, s->prot_len, aad, aad_len, s->payload_len, pre, cap,
	                        &pre_len);
	if (e == MT_OK)
		e = mt_sig_verify_hash(pk, hash_bits, pre, pre_len, s->payload, s->payload_len,
		                       s->sig, s->sig_len);
	if (pre != stack)
		free(pre);
	return e;
}

static size_t gcm_key_len(int64_t alg)
{
	switch (alg) {
	case MT_COSE_ALG_A128GCM: return 16;
	case MT_COSE_ALG_A192GCM: return 24;
	case MT_COSE_ALG_A256GCM: return 32;
	default: return 0;
	}
}

enum mt_err mt_cose_encrypt0_decrypt(const struct mt_cose_encrypt0 *e, struct mt_aead *aead,
                                     const uint8_t *key, size_t key_len, const uint8_t *aad,
                                     size_t aad_len, uint8_t *out, size_t cap,
                                     size_t *out_len)
{
	uint8_t stack[MT_COSE_STACK_STRUCT];
	uint8_t *st = stack;
	size_t st_cap = sizeof stack, st_len = 0;
	const uint8_t *iv;
	size_t iv_len;
	int64_t alg;
	enum mt_err r;

	if (e == NULL || aead == NULL || key == NULL || out_len == NULL ||
	    (aad == NULL && aad_len > 0) || (out == NULL && cap > 0))
		return MT_ERR_ARG;
	if (!hdr_alg(&e->ph, &e->uh, &alg) || gcm_key_len(alg) == 0 ||
	    gcm_key_len(alg) != key_len)
		return MT_ERR_COSE_ALG;
	iv = e->uh.iv != NULL ? e->uh.iv : e->ph.iv;
	iv_len = e->uh.iv != NULL ? e->uh.iv_len : e->ph.iv_len;
	if (iv == NULL || iv_len != MT_AEAD_IV_LEN || e->ct == NULL ||
	    e->ct_len < MT_AEAD_TAG_LEN)
		return MT_ERR_COSE_FORMAT;
	if (cap < e->ct_len - MT_AEAD_TAG_LEN)
		return MT_ERR_BUFFER;

	if (struct_bound(e->prot_len, aad_len) > st_cap) {
		st_cap = struct_bound(e->prot_len, aad_len);
		if ((st = malloc(st_cap)) == NULL)
			return MT_ERR_NOMEM;
	}
	r = mt_cose_enc0_structure(e->prot, e->prot_len, aad, aad_len, st, st_cap, &st_len);
	if (r == MT_OK) {
		uint8_t dummy[1];
		r = mt_aead_open(aead, key, key_len, iv, st, st_len, e->ct, e->ct_len,
		                 out != NULL ? out : dummy);
	}
	if (st != stack)
		free(st);
	if (r != MT_OK)
		return r;
	*out_len = e->ct_len - MT_AEAD_TAG_LEN;
	return MT_OK;
}

/* ------------------------------------------------------ sign, encrypt */

enum mt_err mt_cose_sign1_sign(struct mt_key *key, int64_t alg, const uint8_t *kid,
                               size_t kid_len, const uint8_t *payload, size_t payload_len,
                               const uint8_t *aad, size_t aad_len, uint8_t *out, size_t cap,
                               size_t *len)
{
	uint8_t prot[3] = {0xa1, 0x01, 0x00};
	uint8_t sig[MT_SIG_LEN];
	uint8_t *tbs;
	size_t pre_len = 0, tbs_len;
	struct mt_cbor_enc enc;
	enum mt_err e;

	if (key == NULL || out == NULL || len == NULL || (kid == NULL && kid_len > 0) ||
	    (payload == NULL && payload_len > 0) || (aad == NULL && aad_len > 0))
		return MT_ERR_ARG;
	if (alg == MT_COSE_ALG_ES256 && mt_key_type(key) == MT_KEY_P256)
		prot[2] = 0x26;
	else if (alg == MT_COSE_ALG_EDDSA && mt_key_type(key) == MT_KEY_ED25519)
		prot[2] = 0x27;
	else
		return MT_ERR_COSE_ALG;

	/* mt_key_sign takes one buffer: the Sig_structure is joined here. */
	tbs_len = struct_bound(sizeof prot, aad_len);
	if (payload_len > SIZE_MAX - tbs_len)
		return MT_ERR_ARG;
	tbs = malloc(tbs_len + payload_len);
	if (tbs == NULL)
		return MT_ERR_NOMEM;
	e = mt_cose_sig1_prefix(prot, sizeof prot, aad, aad_len, payload_len, tbs, tbs_len,
	                        &pre_len);
	if (e == MT_OK) {
		if (payload_len > 0)
			memcpy(tbs + pre_len, payload, payload_len);
		e = mt_key_sign(key, tbs, pre_len + payload_len, sig);
	}
	free(tbs);
	if (e != MT_OK)
		return e;

	mt_cbor_enc_init(&enc, out, cap);
	mt_cbor_put_tag(&enc, MT_COSE_TAG_SIGN1);
	mt_cbor_put_array(&enc, 4);
	mt_cbor_put_bstr(&enc, prot, sizeof prot);
	if (kid != NULL) {
		mt_cbor_put_map(&enc, 1);
		mt_cbor_put_uint(&enc, MT_COSE_HDR_KID);
		mt_cbor_put_bstr(&enc, kid, kid_len);
	} else {
		mt_cbor_put_map(&enc, 0);
	}
	mt_cbor_put_bstr(&enc, payload, payload_len);
	mt_cbor_put_bstr(&enc, sig, sizeof sig);
	return mt_cbor_enc_finish(&enc, len);
}

enum mt_err mt_cose_encrypt0_encrypt(struct mt_aead *aead, int64_t alg, const uint8_t *key,
                                     size_t key_len, const uint8_t iv[MT_AEAD_IV_LEN],
                                     const uint8_t *pt, size_t pt_len, const uint8_t *aad,
                                     size_t aad_len, uint8_t *out, size_t cap, size_t *len)
{
	uint8_t prot[3] = {0xa1, 0x01, 0x00};
	uint8_t stack[MT_COSE_STACK_STRUCT];
	uint8_t *st = stack;
	size_t st_cap = sizeof stack, st_len = 0, hdr_len = 0;
	struct mt_cbor_enc enc;
	enum mt_err e;

	if (aead == NULL || key == NULL || iv == NULL || out == NULL || len == NULL ||
	    (pt == NULL && pt_len > 0) || (aad == NULL && aad_len > 0))
		return MT_ERR_ARG;
	if (gcm_key_len(alg) == 0 || gcm_key_len(alg) != key_len)
		return MT_ERR_COSE_ALG;
	if (pt_len > SIZE_MAX - MT_AEAD_TAG_LEN)
		return MT_ERR_ARG;
	prot[2] = (uint8_t)alg;

	mt_cbor_enc_init(&enc, out, cap);
	mt_cbor_put_tag(&enc, MT_COSE_TAG_ENCRYPT0);
	mt_cbor_put_array(&enc, 3);
	mt_cbor_put_bstr(&enc, prot, sizeof prot);
	mt_cbor_put_map(&enc, 1);
	mt_cbor_put_uint(&enc, MT_COSE_HDR_IV);
	mt_cbor_put_bstr(&enc, iv, MT_AEAD_IV_LEN);
	mt_cbor_put_bstr_head(&enc, pt_len + MT_AEAD_TAG_LEN);
	if ((e = mt_cbor_enc_finish(&enc, &hdr_len)) != MT_OK)
		return e;
	if (cap - hdr_len < pt_len + MT_AEAD_TAG_LEN)
		return MT_ERR_BUFFER;

	if (struct_bound(sizeof prot, aad_len) > st_cap) {
		st_cap = struct_bound(sizeof prot, aad_len);
		if ((st = malloc(st_cap)) == NULL)
			return MT_ERR_NOMEM;
	}
	e = mt_cose_enc0_structure(prot, sizeof prot, aad, aad_len, st, st_cap, &st_len);
	if (e == MT_OK)
		e = mt_aead_seal(aead, key, key_len, iv, st, st_len, pt, pt_len, out + hdr_len);
	if (st != stack)
		free(st);
	if (e != MT_OK)
		return e;
	*len = hdr_len + pt_len + MT_AEAD_TAG_LEN;
	return MT_OK;
}
