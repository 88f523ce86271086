/*
 * packet.c — sealing and opening MTP/1 packets (protocol §4, §4a, §5).
 *
 * The packet layout is fixed to the byte:
 *
 *   packet = d0 83 43 a10103 a2 04 44 <epoch BE32> 05 4c <iv 12> <bstr ct‖tag>
 *   Sign1  = d2 84 43 a10126|a10127 a1 04 48 <kid 8> <bstr message> 58 40 <sig 64>
 *
 * so the opener compares header bytes instead of interpreting header maps:
 * there is exactly one way to say each thing, and anything else is refused
 * at the stage that owns it.  The fourteen checks of §5 run in the
 * protocol's order; each returns its own MT_ERR_PKT_* code and a sentence.
 *
 * Sealing allocates nothing.  The message is encoded at a fixed offset in
 * the caller's buffer; the Sig_structure prefix ("Signature1", protected
 * bytes, empty AAD, payload head — 17 bytes plus the head) is written right
 * in front of it, so the bytes to be signed are contiguous (EdDSA in a token
 * needs that); after signing, the same 17 bytes are overwritten with the
 * Sign1 prefix, which happens to have exactly the same length, and the
 * signature is appended.  AES-GCM then encrypts the Sign1 in place and the
 * packet header is written in front of the ciphertext.
 *
 * Opening uses an mt_opener: the AEAD contexts (reused: a fresh context per
 * packet costs three times as much), the plaintext buffer and the
 * observation array.  Nothing else is allocated per packet.
 */
#include "medtrust/mt_packet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_cose.h"

#define OUTER_PREFIX 27 /* d0 83 43 a10103 a2 04 44 e4 05 4c iv12 */
#define SIGN1_PREFIX 17 /* d2 84 43 a1 01 xx a1 04 48 kid8 */
#define MSG_OFFSET (OUTER_PREFIX + 3 + SIGN1_PREFIX + 3)
#define SIG_TRAILER (2 + MT_SIG_LEN)

static const uint8_t outer_head[9] = {0xd0, 0x83, 0x43, 0xa1, 0x01, 0x03, 0xa2, 0x04, 0x44};
static const uint8_t prot_es256[3] = {0xa1, 0x01, 0x26};
static const uint8_t prot_eddsa[3] = {0xa1, 0x01, 0x27};
static const uint8_t rcpt_prefix[5] = {'r', 'c', 'p', 't', ':'};

struct mt_opener {
	struct mt_aead *aead;
	uint8_t pt[MT_PACKET_MAX];
	struct mt_obs obs[MT_OBS_MAX];
};

enum mt_err mt_opener_new(struct mt_opener **out)
{
	struct mt_opener *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return MT_ERR_NOMEM;
	enum mt_err e = mt_aead_new(&o->aead);
	if (e != MT_OK) {
		free(o);
		return e;
	}
	*out = o;
	return MT_OK;
}

void mt_opener_free(struct mt_opener *o)
{
	if (o == NULL)
		return;
	mt_aead_free(o->aead);
	mt_wipe(o->pt, sizeof(o->pt));
	free(o);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Enc_structure ["Encrypt0", h'a10103', aad_prefix ‖ dev] into out. */
static enum mt_err enc_structure(const uint8_t *aad_prefix, size_t prefix_len,
                                 const char *dev, size_t dev_len, uint8_t *out,
                                 size_t cap, size_t *len)
{
	uint8_t aad[sizeof(rcpt_prefix) + MT_DEVICE_ID_MAX];
	if (dev_len > MT_DEVICE_ID_MAX)
		return MT_ERR_ARG;
	if (prefix_len > 0)
		memcpy(aad, aad_prefix, prefix_len);
	memcpy(aad + prefix_len, dev, dev_len);
	return mt_cose_enc0_structure(outer_head + 3, 3, aad, prefix_len + dev_len, out, cap,
	                              len);
}

/* Write the outer header in front of the ciphertext that starts at
 * out + ct_off, then move the whole packet to the start of `out`. */
static enum mt_err finish_packet(uint8_t *out, size_t ct_off, size_t ct_len, uint32_t epoch,
                                 const uint8_t iv[MT_AEAD_IV_LEN], size_t *len)
{
	size_t ch = mt_cbor_head_len(ct_len);
	/* Checked before writing: only packets within the limit are framed, and
	 * their ciphertext head (≤ 3 bytes) fits the space reserved in front. */
	if (OUTER_PREFIX + ch + ct_len > MT_PACKET_MAX || ct_off < ch + OUTER_PREFIX)
		return MT_ERR_PKT_SIZE;
	size_t start = ct_off - ch - OUTER_PREFIX;
	uint8_t *p = out + start;
	memcpy(p, outer_head, sizeof(outer_head));
	put_be32(p + 9, epoch);
	p[13] = 0x05;
	p[14] = 0x4c;
	memcpy(p + 15, iv, MT_AEAD_IV_LEN);
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, p + OUTER_PREFIX, ch);
	mt_cbor_put_bstr_head(&e, ct_len);
	if (e.err != MT_OK || e.len != ch)
		return MT_ERR_INTERNAL;
	size_t total = OUTER_PREFIX + ch + ct_len;
	memmove(out, p, total);
	*len = total;
	return MT_OK;
}

/* Encrypt pt_len bytes at out + pt_off in place and frame them. */
static enum mt_err encrypt_and_frame(struct mt_aead *aead, const uint8_t *key,
                                     const uint8_t *aad_prefix, size_t prefix_len,
                                     const char *dev, size_t dev_len, uint32_t epoch,
                                     const uint8_t *fixed_iv, uint8_t *out, size_t pt_off,
                                     size_t pt_len, size_t cap, size_t *len)
{
	uint8_t iv[MT_AEAD_IV_LEN], aad[96];
	size_t aad_len;
	enum mt_err e;
	if (pt_off + pt_len + MT_AEAD_TAG_LEN > cap)
		return MT_ERR_BUFFER;
	if (fixed_iv)
		memcpy(iv, fixed_iv, sizeof(iv));
	else if ((e = mt_random(iv, sizeof(iv))) != MT_OK)
		return e;
	e = enc_structure(aad_prefix, prefix_len, dev, dev_len, aad, sizeof(aad), &aad_len);
	if (e == MT_OK)
		e = mt_aead_seal(aead, key, MT_KEY_LEN, iv, aad, aad_len, out + pt_off, pt_len,
		                 out + pt_off);
	if (e != MT_OK)
		return e;
	return finish_packet(out, pt_off, pt_len + MT_AEAD_TAG_LEN, epoch, iv, len);
}

enum mt_err mt_packet_seal(const struct mt_seal_params *p, const struct mt_message *m,
                           uint8_t *out, size_t cap, size_t *len)
{
	enum mt_err e;
	size_t mlen;
	if (p == NULL || m == NULL || out == NULL || p->data_key == NULL || p->aead == NULL ||
	    !mt_device_id_valid(p->dev, p->dev_len))
		return MT_ERR_ARG;
	if (cap < MSG_OFFSET + SIG_TRAILER + MT_AEAD_TAG_LEN)
		return MT_ERR_BUFFER;
	if (p->fast) {
		/* Fast packet: the message is the whole plaintext. */
		if (m->typ != MT_TYP_ALERT)
			return MT_ERR_PKT_MESSAGE;
		const size_t off = OUTER_PREFIX + 3;
		e = mt_message_encode(m, out + off, cap - off - MT_AEAD_TAG_LEN, &mlen);
		if (e != MT_OK)
			return e;
		return encrypt_and_frame(p->aead, p->data_key, NULL, 0, p->dev, p->dev_len,
		                         p->epoch, p->iv, out, off, mlen, cap, len);
	}

	if (p->ldev == NULL)
		return MT_ERR_ARG;
	const uint8_t *prot;
	switch (mt_key_type(p->ldev)) {
	case MT_KEY_P256: prot = prot_es256; break;
	case MT_KEY_ED25519: prot = prot_eddsa; break;
	default: return MT_ERR_KEY_TYPE;
	}
	e = mt_message_encode(m, out + MSG_OFFSET,
	                      cap - MSG_OFFSET - SIG_TRAILER - MT_AEAD_TAG_LEN, &mlen);
	if (e != MT_OK)
		return e;

	/* Sig_structure prefix right in front of the message, then sign. */
	size_t mh = mt_cbor_head_len(mlen), plen;
	size_t s1 = MSG_OFFSET - mh - SIGN1_PREFIX;
	e = mt_cose_sig1_prefix(prot, 3, NULL, 0, mlen, out + s1, SIGN1_PREFIX + mh, &plen);
	if (e != MT_OK || plen != SIGN1_PREFIX + mh)
		return e != MT_OK ? e : MT_ERR_INTERNAL;
	uint8_t sig[MT_SIG_LEN];
	e = mt_key_sign(p->ldev, out + s1, plen + mlen, sig);
	if (e != MT_OK)
		return e;

	/* Same-length Sign1 prefix over it, signature after the message. */
	uint8_t *q = out + s1;
	q[0] = 0xd2;
	q[1] = 0x84;
	q[2] = 0x43;
	memcpy(q + 3, prot, 3);
	q[6] = 0xa1;
	q[7] = 0x04;
	q[8] = 0x48;
	memcpy(q + 9, mt_pubkey_kid(mt_key_public(p->ldev)), MT_KID_LEN);
	uint8_t *t = out + MSG_OFFSET + mlen;
	t[0] = 0x58;
	t[1] = 0x40;
	memcpy(t + 2, sig, MT_SIG_LEN);
	size_t sign1_len = SIGN1_PREFIX + mh + mlen + SIG_TRAILER;
	return encrypt_and_frame(p->aead, p->data_key, NULL, 0, p->dev, p->dev_len, p->epoch,
	                         p->iv, out, s1, sign1_len, cap, len);
}

enum mt_err mt_packet_derive_keys(const uint8_t ecdh_x[32], uint32_t epoch, const char *dev,
                                  size_t dev_len, uint8_t data_key[MT_KEY_LEN],
                                  uint8_t receipt_key[MT_KEY_LEN])
{
	static const char data_info[] = "MTP/1 A256GCM ";
	static const char rcpt_info[] = "MTP/1 receipt ";
	uint8_t salt[4], info[sizeof(data_info) - 1 + MT_DEVICE_ID_MAX];
	if (!mt_device_id_valid(dev, dev_len))
		return MT_ERR_ARG;
	put_be32(salt, epoch);
	enum mt_err e = MT_OK;
	if (data_key) {
		memcpy(info, data_info, sizeof(data_info) - 1);
		memcpy(info + sizeof(data_info) - 1, dev, dev_len);
		e = mt_hkdf_sha256(ecdh_x, 32, salt, 4, info, sizeof(data_info) - 1 + dev_len,
		                   data_key, MT_KEY_LEN);
	}
	if (e == MT_OK && receipt_key) {
		memcpy(info, rcpt_info, sizeof(rcpt_info) - 1);
		memcpy(info + sizeof(rcpt_info) - 1, dev, dev_len);
		e = mt_hkdf_sha256(ecdh_x, 32, salt, 4, info, sizeof(rcpt_info) - 1 + dev_len,
		                   receipt_key, MT_KEY_LEN);
	}
	return e;
}

/* ---- opening ------------------------------------------------------------ */

/* Record a refusal: detail = what ‖ arg (arg may be NULL). */
static enum mt_err refuse(struct mt_open_result *r, enum mt_err e, const char *what,
                          const char *arg)
{
	r->err = e;
	snprintf(r->detail, sizeof(r->detail), "%s%s", what, arg ? arg : "");
	return e;
}

/* Stages 1–3 shared by packets and receipts: size, strict CBOR, header.
 * On success (*ct, *ct_len) is the ciphertext ‖ tag. */
static enum mt_err outer(const uint8_t *pkt, size_t len, struct mt_open_result *r,
                         const uint8_t **ct, size_t *ct_len)
{
	static const uint64_t cose_tags[] = {MT_COSE_TAG_ENCRYPT0, MT_COSE_TAG_SIGN1};
	if (len > MT_PACKET_MAX)
		return refuse(r, MT_ERR_PKT_SIZE, "packet of more than 65,536 bytes", NULL);
	enum mt_err e = mt_cbor_validate(pkt, len, cose_tags, 2);
	if (e != MT_OK)
		return refuse(r, MT_ERR_PKT_CBOR, "", mt_err_str(e));
	if (len < OUTER_PREFIX + 1 || memcmp(pkt, outer_head, sizeof(outer_head)) != 0)
		return refuse(r, MT_ERR_PKT_HEADER,
		              "not a tagged Encrypt0 with protected a10103 and an epoch", NULL);
	if (pkt[13] != 0x05 || pkt[14] != 0x4c)
		return refuse(r, MT_ERR_PKT_HEADER, "unprotected header lacks a 12-byte IV",
		              NULL);
	struct mt_cbor_dec d;
	mt_cbor_dec_init(&d, pkt, len);
	d.pos = OUTER_PREFIX;
	if (!mt_cbor_get_bstr(&d, ct, ct_len) || mt_cbor_dec_finish(&d) != MT_OK)
		return refuse(r, MT_ERR_PKT_HEADER, "ciphertext is not a byte string", NULL);
	r->epoch = (uint32_t)pkt[9] << 24 | (uint32_t)pkt[10] << 16 | (uint32_t)pkt[11] << 8 |
	           pkt[12];
	memcpy(r->iv, pkt + 15, MT_AEAD_IV_LEN);
	return MT_OK;
}

enum mt_err mt_packet_epoch(const uint8_t *pkt, size_t len, uint32_t *epoch)
{
	struct mt_open_result r;
	const uint8_t *ct;
	size_t ct_len;
	enum mt_err e = outer(pkt, len, &r, &ct, &ct_len);
	if (e == MT_OK)
		*epoch = r.epoch;
	return e;
}

static bool topic_fits_typ(enum mt_topic t, uint64_t typ)
{
	switch (t) {
	case MT_TOPIC_NONE: return true;
	case MT_TOPIC_VITALS: return typ == MT_TYP_VITALS;
	case MT_TOPIC_STATUS: return typ == MT_TYP_STATUS;
	case MT_TOPIC_ACK: return typ == MT_TYP_ACK;
	default: return false;
	}
}

/* Stages 6–9 for a sealed plaintext; on success the message bytes. */
static enum mt_err open_sign1(const uint8_t *pt, size_t pt_len,
                              const struct mt_open_params *p,
                              const struct mt_device_view *v, struct mt_open_result *r,
                              const uint8_t **msg, size_t *msg_len)
{
	static const uint64_t sign1_tag[] = {MT_COSE_TAG_SIGN1};
	struct mt_cbor_dec d;
	struct mt_cbor_item it;
	const uint8_t *prot, *kid, *sig;
	size_t prot_len, kid_len, sig_len;
	uint64_t n, label;

	if (p->topic == MT_TOPIC_ALERT)
		return refuse(r, MT_ERR_PKT_INNER, "a sealed packet on up/alert", NULL);
	enum mt_err e = mt_cbor_validate(pt, pt_len, sign1_tag, 1);
	if (e != MT_OK)
		return refuse(r, MT_ERR_PKT_INNER, "inner Sign1 not strict CBOR: ",
		              mt_err_str(e));
	mt_cbor_dec_init(&d, pt, pt_len);
	mt_cbor_get_tag(&d, &n); /* validated: tag 18 is the first byte */
	if (!mt_cbor_get_array(&d, &n) || n != 4 || !mt_cbor_get_bstr(&d, &prot, &prot_len) ||
	    !mt_cbor_next(&d, &it) || it.type != MT_CBOR_MAP)
		return refuse(r, MT_ERR_PKT_INNER, "inner object is not a COSE_Sign1", NULL);
	/* The unprotected bucket must be exactly {4: kid}; read it now, judge
	 * it at stage 8 after the algorithm. */
	bool kid_ok = it.u == 1 && mt_cbor_get_uint(&d, &label) && label == MT_COSE_HDR_KID &&
	              mt_cbor_get_bstr(&d, &kid, &kid_len) && kid_len == MT_KID_LEN;
	if (!kid_ok) {
		/* Rewind to the bucket's head and skip it whole to reach the
		 * payload (the input was validated, so the skip succeeds). */
		d.err = MT_OK;
		d.pos = it.start;
		if (!mt_cbor_skip(&d))
			return refuse(r, MT_ERR_PKT_INNER, "inner object is not a COSE_Sign1",
			              NULL);
	}
	if (!mt_cbor_get_bstr(&d, msg, msg_len) || !mt_cbor_get_bstr(&d, &sig, &sig_len) ||
	    mt_cbor_dec_finish(&d) != MT_OK)
		return refuse(r, MT_ERR_PKT_INNER, "Sign1 payload or signature not a byte string",
		              NULL);

	/* 7 alg: fixed by the registered key type, compared as bytes. */
	const uint8_t *want = mt_pubkey_type(v->ldev) == MT_KEY_P256      ? prot_es256
	                      : mt_pubkey_type(v->ldev) == MT_KEY_ED25519 ? prot_eddsa
	                                                                  : NULL;
	if (want == NULL)
		return refuse(r, MT_ERR_PKT_ALG, "registered key type has no MTP/1 algorithm",
		              NULL);
	if (prot_len != 3 || memcmp(prot, want, 3) != 0)
		return refuse(r, MT_ERR_PKT_ALG, "protected header is not ",
		              want == prot_es256 ? "{1: -7} (ES256)" : "{1: -8} (EdDSA)");
	/* 8 kid */
	if (!kid_ok)
		return refuse(r, MT_ERR_PKT_KID, "unprotected header is not exactly {4: 8-byte kid}",
		              NULL);
	if (memcmp(kid, mt_pubkey_kid(v->ldev), MT_KID_LEN) != 0)
		return refuse(r, MT_ERR_PKT_KID, "kid is not the registered key's", NULL);
	/* 9 signature */
	if (sig_len != MT_SIG_LEN)
		return refuse(r, MT_ERR_PKT_SIGNATURE, "signature is not 64 bytes", NULL);
	uint8_t pre[SIGN1_PREFIX + 3];
	size_t pre_len;
	e = mt_cose_sig1_prefix(prot, 3, NULL, 0, *msg_len, pre, sizeof(pre), &pre_len);
	if (e != MT_OK)
		return refuse(r, MT_ERR_INTERNAL, "Sig_structure: ", mt_err_str(e));
	e = mt_sig_verify(v->ldev, pre, pre_len, *msg, *msg_len, sig, sig_len);
	if (e == MT_ERR_SIG_FORMAT)
		return refuse(r, MT_ERR_PKT_SIGNATURE, "signature r or s out of range", NULL);
	if (e != MT_OK)
		return refuse(r, MT_ERR_PKT_SIGNATURE, "signature does not verify", NULL);
	r->sign1 = pt;
	r->sign1_len = pt_len;
	return MT_OK;
}

static enum mt_err open_checked(struct mt_opener *o, const struct mt_open_params *p,
                                const uint8_t *pkt, size_t len, struct mt_open_result *r)
{
	const uint8_t *ct, *msg;
	size_t ct_len, msg_len, aad_len;
	uint8_t aad[96], key[MT_KEY_LEN];
	const char *why = NULL;
	enum mt_err e;

	/* 1–3 */
	if ((e = outer(pkt, len, r, &ct, &ct_len)) != MT_OK)
		return e;

	struct mt_device_view v;
	memset(&v, 0, sizeof(v));
	if (!mt_device_id_valid(p->dev, p->dev_len))
		return refuse(r, MT_ERR_PKT_INACTIVE, "sender id is not a valid device id", NULL);
	e = p->lookup(p->lookup_ctx, p->dev, p->dev_len, &v);
	if (e == MT_ERR_NOT_FOUND)
		return refuse(r, MT_ERR_PKT_INACTIVE, "unknown device ", p->dev);
	if (e != MT_OK)
		return refuse(r, e, "device lookup failed: ", mt_err_str(e));
	if (v.ldev == NULL || v.data_key == NULL)
		return refuse(r, MT_ERR_PKT_INACTIVE, "no registered keys for device ", p->dev);

	/* 4 epoch: the current one and the one before; nothing else, before
	 * any key derivation or decryption. */
	if (v.check_epoch && !(r->epoch == v.epoch || (v.epoch > 0 && r->epoch == v.epoch - 1))) {
		char ep[64];
		snprintf(ep, sizeof(ep), "%u (current %u)", r->epoch, v.epoch);
		return refuse(r, MT_ERR_PKT_EPOCH, "epoch not accepted: ", ep);
	}

	/* 5 aead */
	if (ct_len < MT_AEAD_TAG_LEN || ct_len - MT_AEAD_TAG_LEN > sizeof(o->pt))
		return refuse(r, MT_ERR_PKT_AEAD, "ciphertext shorter than its 16-byte tag", NULL);
	e = v.data_key(v.data_key_ctx, r->epoch, key);
	if (e != MT_OK) {
		mt_wipe(key, sizeof(key));
		return refuse(r, e, "data key unavailable: ", mt_err_str(e));
	}
	e = enc_structure(NULL, 0, p->dev, p->dev_len, aad, sizeof(aad), &aad_len);
	if (e == MT_OK)
		e = mt_aead_open(o->aead, key, MT_KEY_LEN, r->iv, aad, aad_len, ct, ct_len, o->pt);
	mt_wipe(key, sizeof(key));
	if (e == MT_ERR_AEAD_TAG)
		return refuse(r, MT_ERR_PKT_AEAD, "authentication tag does not verify", NULL);
	if (e != MT_OK)
		return refuse(r, e, "decryption failed: ", mt_err_str(e));
	size_t pt_len = ct_len - MT_AEAD_TAG_LEN;

	/* 6–10 */
	if (pt_len >= 1 && o->pt[0] == 0xd2) {
		r->kind = MT_PACKET_SEALED;
		if ((e = open_sign1(o->pt, pt_len, p, &v, r, &msg, &msg_len)) != MT_OK)
			return e;
		e = mt_message_decode(msg, msg_len, &r->msg, o->obs, MT_OBS_MAX, &why);
		if (e != MT_OK)
			return refuse(r, MT_ERR_PKT_MESSAGE, "", why);
		if (r->msg.typ == MT_TYP_ALERT && p->topic != MT_TOPIC_NONE)
			return refuse(r, MT_ERR_PKT_MESSAGE,
			              "typ 2 travels only in fast packets on up/alert", NULL);
		if (!topic_fits_typ(p->topic, r->msg.typ))
			return refuse(r, MT_ERR_PKT_MESSAGE, "typ does not match the topic", NULL);
	} else {
		r->kind = MT_PACKET_FAST;
		if (p->topic != MT_TOPIC_NONE && p->topic != MT_TOPIC_ALERT)
			return refuse(r, MT_ERR_PKT_INNER, "a fast packet outside up/alert", NULL);
		e = mt_message_decode(o->pt, pt_len, &r->msg, o->obs, MT_OBS_MAX, &why);
		if (e != MT_OK)
			return refuse(r, MT_ERR_PKT_INNER, "fast packet message: ", why);
		if (r->msg.typ != MT_TYP_ALERT)
			return refuse(r, MT_ERR_PKT_INNER, "a fast packet must carry typ 2", NULL);
	}

	/* 11 dev */
	if (r->msg.dev_len != p->dev_len || memcmp(r->msg.dev, p->dev, p->dev_len) != 0)
		return refuse(r, MT_ERR_PKT_DEV, "message dev is not the sender: ", r->msg.dev);
	/* 12 inactive */
	if (v.check_status && v.status != MT_VIEW_ACTIVE)
		return refuse(r, MT_ERR_PKT_INACTIVE, "device is ",
		              v.status == MT_VIEW_REVOKED ? "revoked" : "decommissioned");
	/* 13 replay */
	if (v.window) {
		char c[32];
		snprintf(c, sizeof(c), "%llu", (unsigned long long)r->msg.ctr);
		switch (mt_replay_check(v.window, r->msg.ctr)) {
		case MT_REPLAY_TOO_OLD:
			return refuse(r, MT_ERR_PKT_REPLAY, "counter below the window: ", c);
		case MT_REPLAY_JUMP:
			return refuse(r, MT_ERR_PKT_REPLAY,
			              "counter jump, more than 2^20 above the window: ", c);
		case MT_REPLAY_DUPLICATE:
			return refuse(r, MT_ERR_PKT_DUPLICATE, "counter already seen: ", c);
		case MT_REPLAY_NEW:
			mt_replay_mark(v.window, r->msg.ctr);
			break;
		}
	}
	/* 14 implausible (the counter stays marked: the device did say it) */
	if ((e = mt_message_plausible(&r->msg, &why)) != MT_OK)
		return refuse(r, MT_ERR_PKT_IMPLAUSIBLE, "", why);

	if (p->now_ms) {
		r->clock_skewed = r->msg.ts > p->now_ms + 5 * 60 * 1000;
		r->stale = r->msg.ts + 24ull * 3600 * 1000 < p->now_ms;
	}
	return MT_OK;
}

enum mt_err mt_packet_open(struct mt_opener *o, const struct mt_open_params *p,
                           const uint8_t *pkt, size_t len, struct mt_open_result *r)
{
	memset(r, 0, sizeof(*r));
	if (o == NULL || p == NULL || p->lookup == NULL || (pkt == NULL && len > 0))
		return refuse(r, MT_ERR_ARG, "invalid arguments", NULL);
	enum mt_err e = open_checked(o, p, pkt, len, r);
	r->err = e;
	if (e != MT_OK && e != MT_ERR_PKT_IMPLAUSIBLE && e != MT_ERR_PKT_DUPLICATE) {
		/* A refused packet yields nothing to act on: no message, no
		 * observations, no inner object. */
		memset(&r->msg, 0, sizeof(r->msg));
		r->sign1 = NULL;
		r->sign1_len = 0;
	}
	return e;
}

/* ---- receipts (§4a) ----------------------------------------------------- */

/* Does range b start after range a with a gap (sorted, disjoint, merged)? */
static bool range_follows(const uint64_t a[2], const uint64_t b[2])
{
	return b[0] > a[1] && b[0] - a[1] >= 2;
}

enum mt_err mt_receipt_seal(struct mt_aead *aead, const uint8_t receipt_key[MT_KEY_LEN],
                            uint32_t epoch, const uint8_t *iv, const struct mt_receipt *r,
                            uint8_t *out, size_t cap, size_t *len)
{
	if (!mt_device_id_valid(r->dev, r->dev_len) || r->n_ranges > MT_RECEIPT_MAX_RANGES ||
	    cap < OUTER_PREFIX + 3 + MT_AEAD_TAG_LEN)
		return MT_ERR_ARG;
	for (size_t i = 0; i < r->n_ranges; i++)
		if (r->ranges[i][0] > r->ranges[i][1] ||
		    (i > 0 && !range_follows(r->ranges[i - 1], r->ranges[i])))
			return MT_ERR_ARG;
	const size_t off = OUTER_PREFIX + 3;
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, out + off, cap - off - MT_AEAD_TAG_LEN);
	mt_cbor_put_map(&e, 3);
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_tstr(&e, r->dev, r->dev_len);
	mt_cbor_put_uint(&e, 2);
	mt_cbor_put_array(&e, r->n_ranges);
	for (size_t i = 0; i < r->n_ranges; i++) {
		mt_cbor_put_array(&e, 2);
		mt_cbor_put_uint(&e, r->ranges[i][0]);
		mt_cbor_put_uint(&e, r->ranges[i][1]);
	}
	mt_cbor_put_uint(&e, 3);
	mt_cbor_put_uint(&e, r->ts);
	size_t pt_len;
	enum mt_err err = mt_cbor_enc_finish(&e, &pt_len);
	if (err != MT_OK)
		return err;
	return encrypt_and_frame(aead, receipt_key, rcpt_prefix, sizeof(rcpt_prefix), r->dev,
	                         r->dev_len, epoch, iv, out, off, pt_len, cap, len);
}

enum mt_err mt_receipt_open(struct mt_aead *aead, const uint8_t receipt_key[MT_KEY_LEN],
                            const char *dev, size_t dev_len, const uint8_t *pkt, size_t len,
                            uint8_t *scratch, size_t scratch_cap, uint64_t (*ranges)[2],
                            size_t cap, struct mt_receipt *r)
{
	struct mt_open_result res;
	const uint8_t *ct;
	size_t ct_len, aad_len;
	uint8_t aad[96];
	memset(&res, 0, sizeof(res));
	enum mt_err e = outer(pkt, len, &res, &ct, &ct_len);
	if (e != MT_OK)
		return e;
	if (ct_len < MT_AEAD_TAG_LEN)
		return MT_ERR_PKT_AEAD;
	if (ct_len - MT_AEAD_TAG_LEN > scratch_cap)
		return MT_ERR_BUFFER;
	e = enc_structure(rcpt_prefix, sizeof(rcpt_prefix), dev, dev_len, aad, sizeof(aad),
	                  &aad_len);
	if (e != MT_OK)
		return e;
	e = mt_aead_open(aead, receipt_key, MT_KEY_LEN, res.iv, aad, aad_len, ct, ct_len, scratch);
	if (e != MT_OK)
		return e == MT_ERR_AEAD_TAG ? MT_ERR_PKT_AEAD : e;
	size_t pt_len = ct_len - MT_AEAD_TAG_LEN;
	if (mt_cbor_validate(scratch, pt_len, NULL, 0) != MT_OK)
		return MT_ERR_PKT_MESSAGE;

	struct mt_cbor_dec d;
	uint64_t k1, k2, k3, n, pairs;
	const char *rdev;
	size_t rdev_len;
	mt_cbor_dec_init(&d, scratch, pt_len);
	if (!mt_cbor_get_map(&d, &pairs) || pairs != 3 || !mt_cbor_get_uint(&d, &k1) || k1 != 1 ||
	    !mt_cbor_get_tstr(&d, &rdev, &rdev_len) || !mt_cbor_get_uint(&d, &k2) || k2 != 2 ||
	    !mt_cbor_get_array(&d, &n) || n > MT_RECEIPT_MAX_RANGES || n > cap)
		return MT_ERR_PKT_MESSAGE;
	if (rdev_len != dev_len || memcmp(rdev, dev, dev_len) != 0)
		return MT_ERR_PKT_DEV;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t two;
		if (!mt_cbor_get_array(&d, &two) || two != 2 || !mt_cbor_get_uint(&d, &ranges[i][0]) ||
		    !mt_cbor_get_uint(&d, &ranges[i][1]) || ranges[i][0] > ranges[i][1] ||
		    (i > 0 && !range_follows(ranges[i - 1], ranges[i])))
			return MT_ERR_PKT_MESSAGE;
	}
	if (!mt_cbor_get_uint(&d, &k3) || k3 != 3 || !mt_cbor_get_uint(&d, &r->ts) ||
	    mt_cbor_dec_finish(&d) != MT_OK)
		return MT_ERR_PKT_MESSAGE;
	r->dev = rdev;
	r->dev_len = rdev_len;
	r->ranges = ranges;
	r->n_ranges = (size_t)n;
	return MT_OK;
}
