/*
 * fuzz_common.h — the fixed little world the packet harnesses live in.
 *
 * One device, "dev-1", at epoch 7, with the keys of the MTP/1 worked
 * vectors (shared/vectors/mtp1/vectors.json): the hub's and the device's
 * key-agreement scalars, a P-256 and an Ed25519 operational key.  They are
 * imported once, in memory, with mt_key_import_raw(); the data key K of
 * epochs 6 and 7 and the receipt key are derived through the library
 * (ECDH, then HKDF) and K of epoch 7 is compared with the vector's, so a
 * harness that starts at all starts with the right keys.
 *
 * The helpers build the exact bytes of protocol §4 — packet header,
 * Enc_structure, Sig_structure and inner Sign1 — by hand, independently of
 * the library's sealer, so that fuzz_packet_inner can wrap arbitrary
 * plaintext (or an arbitrary message signed for real) in a valid AEAD layer
 * and reach the stages behind it.  make_seeds.c shares them.
 *
 * Everything is `static inline` so that each harness is a single
 * translation unit: the corpus test compiles a harness with a file-reading
 * main and nothing else.  A harness aborts (the fuzzer's crash) when the
 * world cannot be set up: that is a library bug, not an input.
 */
#ifndef MT_FUZZ_COMMON_H
#define MT_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <medtrust/mt_cbor.h>
#include <medtrust/mt_crypto.h>
#include <medtrust/mt_err.h>
#include <medtrust/mt_keystore.h>
#include <medtrust/mt_message.h>
#include <medtrust/mt_packet.h>
#include <medtrust/mt_replay.h>

#define FZ_DEV "dev-1"
#define FZ_EPOCH 7u
#define FZ_HUB_KX_D "08407d9a4f7cd61da29518e67ec1d25a7ec131531cd565172fa9f0f4e38da125"
#define FZ_DEV_KX_D "199f5483ab0b9f3eee0c2fd6083ad0b5e678428cb75df23087c82d9849c1b948"
#define FZ_LDEV_P256_D "9d8b60562b657c527ed152c8df12959d410ab9d3ac5c5fc610c5ab68c9811b9a"
#define FZ_LDEV_ED_SEED "41777f260c55b026d93597915b3b85e31c20ce4c80dfe71085566280e5d1d581"
#define FZ_DATA_KEY_7 "75f59979834f882257073cd11e6617ef9a5e27ce41904bc767a9e2edfd079a3b"
#define FZ_RECEIPT_KEY_7 "8c71efc630491f1862b7ebecdfa2f51b2fee669c17f2a9bb5978143df824b5e3"

/* Room for a packet of the largest size plus everything a harness adds. */
#define FZ_BUF (MT_PACKET_MAX + 4096)

enum { FZ_P256 = 0, FZ_ED25519 = 1 };

struct fz_world {
	struct mt_key *hub_kx;
	struct mt_key *dev_kx;
	struct mt_key *ldev[2]; /* FZ_P256, FZ_ED25519 */
	uint8_t key6[MT_KEY_LEN];
	uint8_t key7[MT_KEY_LEN];
	uint8_t rkey7[MT_KEY_LEN];
	struct mt_aead *aead;
	struct mt_opener *opener;
};

static inline void fz_die(const char *what, enum mt_err e)
{
	fprintf(stderr, "fuzz world: %s: %s\n", what, mt_err_str(e));
	abort();
}

static inline size_t fz_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;
	if (n > cap)
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;
		for (int j = 0; j < 2; j++) {
			char c = hex[2 * i + (size_t)j];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				abort();
		}
		out[i] = (uint8_t)v;
	}
	return n;
}

static inline struct mt_key *fz_import(enum mt_key_type t, enum mt_key_role r, const char *hex)
{
	uint8_t raw[32];
	struct mt_key *k = NULL;
	enum mt_err e = mt_key_import_raw(t, r, raw, fz_unhex(hex, raw, sizeof raw), &k);
	mt_wipe(raw, sizeof raw);
	if (e != MT_OK)
		fz_die("mt_key_import_raw", e);
	return k;
}

/* The world, built on first use and kept for the life of the process. */
static inline struct fz_world *fz_world(void)
{
	static struct fz_world w;
	static bool ready;
	if (ready)
		return &w;

	w.hub_kx = fz_import(MT_KEY_P256, MT_KEY_ROLE_DERIVE, FZ_HUB_KX_D);
	w.dev_kx = fz_import(MT_KEY_P256, MT_KEY_ROLE_DERIVE, FZ_DEV_KX_D);
	w.ldev[FZ_P256] = fz_import(MT_KEY_P256, MT_KEY_ROLE_SIGN, FZ_LDEV_P256_D);
	w.ldev[FZ_ED25519] = fz_import(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, FZ_LDEV_ED_SEED);

	/* The hub's side of the agreement: its kx with the device's public kx. */
	uint8_t x[32], want[MT_KEY_LEN];
	enum mt_err e = mt_key_ecdh(w.hub_kx, mt_key_public(w.dev_kx), x);
	if (e != MT_OK)
		fz_die("mt_key_ecdh", e);
	e = mt_packet_derive_keys(x, FZ_EPOCH, FZ_DEV, strlen(FZ_DEV), w.key7, w.rkey7);
	if (e == MT_OK)
		e = mt_packet_derive_keys(x, FZ_EPOCH - 1, FZ_DEV, strlen(FZ_DEV), w.key6, NULL);
	mt_wipe(x, sizeof x);
	if (e != MT_OK)
		fz_die("mt_packet_derive_keys", e);
	fz_unhex(FZ_DATA_KEY_7, want, sizeof want);
	if (memcmp(want, w.key7, sizeof want) != 0)
		fz_die("data key of epoch 7 differs from the vector", MT_ERR_INTERNAL);
	fz_unhex(FZ_RECEIPT_KEY_7, want, sizeof want);
	if (memcmp(want, w.rkey7, sizeof want) != 0)
		fz_die("receipt key of epoch 7 differs from the vector", MT_ERR_INTERNAL);

	if ((e = mt_aead_new(&w.aead)) != MT_OK)
		fz_die("mt_aead_new", e);
	if ((e = mt_opener_new(&w.opener)) != MT_OK)
		fz_die("mt_opener_new", e);
	ready = true;
	return &w;
}

/* --- the opener's view of the device ------------------------------------ */

struct fz_lookup {
	struct fz_world *w;
	int ldev; /* FZ_P256 or FZ_ED25519: the registered key type */
	struct mt_replay window;
};

static inline enum mt_err fz_data_key(void *ctx, uint32_t epoch, uint8_t key[MT_KEY_LEN])
{
	struct fz_world *w = ctx;
	if (epoch == FZ_EPOCH)
		memcpy(key, w->key7, MT_KEY_LEN);
	else if (epoch == FZ_EPOCH - 1)
		memcpy(key, w->key6, MT_KEY_LEN);
	else
		abort(); /* the opener must refuse other epochs before asking */
	return MT_OK;
}

static inline enum mt_err fz_lookup_fn(void *ctx, const char *dev, size_t dev_len,
                                       struct mt_device_view *v)
{
	struct fz_lookup *l = ctx;
	if (dev_len != strlen(FZ_DEV) || memcmp(dev, FZ_DEV, dev_len) != 0)
		return MT_ERR_NOT_FOUND;
	memset(v, 0, sizeof *v);
	v->status = MT_VIEW_ACTIVE;
	v->check_status = true;
	v->ldev = mt_key_public(l->w->ldev[l->ldev]);
	v->check_epoch = true;
	v->epoch = FZ_EPOCH;
	v->data_key = fz_data_key;
	v->data_key_ctx = l->w;
	v->window = &l->window;
	return MT_OK;
}

/* Open `pkt` as the hub would; abort on a broken promise of mt_packet.h. */
static inline enum mt_err fz_open(struct fz_lookup *l, enum mt_topic topic, const uint8_t *pkt,
                                  size_t len, struct mt_open_result *r)
{
	struct mt_open_params p = {
	        .dev = FZ_DEV,
	        .dev_len = strlen(FZ_DEV),
	        .topic = topic,
	        .lookup = fz_lookup_fn,
	        .lookup_ctx = l,
	        .now_ms = UINT64_C(1733222400000),
	};
	enum mt_err e = mt_packet_open(l->w->opener, &p, pkt, len, r);
	if (e != r->err)
		abort(); /* the verdict is both returned and stored */
	if (e != MT_OK && e >= MT_ERR_PKT_SIZE && e <= MT_ERR_PKT_DUPLICATE && !mt_err_stage(e))
		abort(); /* every refusal names its stage */
	if (e == MT_OK) {
		const char *why = NULL;
		if (mt_message_check(&r->msg, &why) != MT_OK) {
			fprintf(stderr, "accepted a message that fails the schema: %s\n",
			        why ? why : "?");
			abort();
		}
		if (r->msg.dev_len != strlen(FZ_DEV) || memcmp(r->msg.dev, FZ_DEV, r->msg.dev_len))
			abort(); /* stage 11 */
	}
	return e;
}

/* --- exact bytes of protocol §4 ------------------------------------------ */

/* A CBOR head of major type `major` (0..7) for `n`, shortest form. */
static inline size_t fz_head(uint8_t *out, unsigned major, uint64_t n)
{
	uint8_t m = (uint8_t)(major << 5);
	if (n < 24) {
		out[0] = (uint8_t)(m | n);
		return 1;
	}
	size_t bytes = n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffffu ? 4 : 8;
	out[0] = (uint8_t)(m | (bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27));
	for (size_t i = 0; i < bytes; i++)
		out[1 + i] = (uint8_t)(n >> (8 * (bytes - 1 - i)));
	return 1 + bytes;
}

/* Enc_structure = ["Encrypt0", h'a10103', h'<dev>'] (external_aad prefix
 * `aad_prefix`, "" for packets, "rcpt:" for receipts). */
static inline size_t fz_enc_structure(uint8_t *out, const char *aad_prefix)
{
	static const uint8_t head[] = {0x83, 0x68, 'E', 'n',  'c',  'r',  'y',
	                               'p',  't',  '0', 0x43, 0xa1, 0x01, 0x03};
	size_t n = sizeof head, pl = strlen(aad_prefix), dl = strlen(FZ_DEV);
	memcpy(out, head, n);
	n += fz_head(out + n, 2, pl + dl);
	memcpy(out + n, aad_prefix, pl);
	memcpy(out + n + pl, FZ_DEV, dl);
	return n + pl + dl;
}

/* Encrypt pt[0..pt_len) under `key` into a packet of the §4 layout.
 * Returns the packet length, 0 when it would not fit in `cap`. */
static inline size_t fz_seal_raw(struct fz_world *w, const uint8_t key[MT_KEY_LEN], uint32_t epoch,
                                 const uint8_t iv[MT_AEAD_IV_LEN], const char *aad_prefix,
                                 const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap)
{
	uint8_t aad[96];
	size_t aad_len = fz_enc_structure(aad, aad_prefix);
	static const uint8_t h0[] = {0xd0, 0x83, 0x43, 0xa1, 0x01, 0x03, 0xa2, 0x04, 0x44};
	size_t n = 0;
	if (cap < sizeof h0 + 4 + 2 + MT_AEAD_IV_LEN + 9 + pt_len + MT_AEAD_TAG_LEN)
		return 0;
	memcpy(out, h0, sizeof h0);
	n = sizeof h0;
	for (int i = 3; i >= 0; i--)
		out[n++] = (uint8_t)(epoch >> (8 * i));
	out[n++] = 0x05;
	out[n++] = 0x4c;
	memcpy(out + n, iv, MT_AEAD_IV_LEN);
	n += MT_AEAD_IV_LEN;
	n += fz_head(out + n, 2, pt_len + MT_AEAD_TAG_LEN);
	enum mt_err e =
	        mt_aead_seal(w->aead, key, MT_KEY_LEN, iv, aad, aad_len, pt, pt_len, out + n);
	if (e != MT_OK)
		fz_die("mt_aead_seal", e);
	return n + pt_len + MT_AEAD_TAG_LEN;
}

/* Inner Sign1 over msg[0..len) signed by the world's ldev of type `which`.
 * Returns its length, 0 when it does not fit. */
static inline size_t fz_sign1(struct fz_world *w, int which, const uint8_t *msg, size_t len,
                              uint8_t *out, size_t cap, uint8_t *scratch, size_t scratch_cap)
{
	uint8_t alg = which == FZ_P256 ? 0x26 : 0x27;
	static const uint8_t sig_head[] = {0x84, 0x6a, 'S', 'i', 'g',  'n',  'a', 't',
	                                   'u',  'r',  'e', '1', 0x43, 0xa1, 0x01};
	size_t n = 0;
	if (scratch_cap < sizeof sig_head + 2 + 9 + len || cap < 16 + 9 + len + 2 + MT_SIG_LEN)
		return 0;
	memcpy(scratch, sig_head, sizeof sig_head);
	n = sizeof sig_head;
	scratch[n++] = alg;
	scratch[n++] = 0x40;
	n += fz_head(scratch + n, 2, len);
	memcpy(scratch + n, msg, len);
	n += len;
	uint8_t sig[MT_SIG_LEN];
	enum mt_err e = mt_key_sign(w->ldev[which], scratch, n, sig);
	if (e != MT_OK)
		fz_die("mt_key_sign", e);

	const uint8_t *kid = mt_pubkey_kid(mt_key_public(w->ldev[which]));
	n = 0;
	out[n++] = 0xd2;
	out[n++] = 0x84;
	out[n++] = 0x43;
	out[n++] = 0xa1;
	out[n++] = 0x01;
	out[n++] = alg;
	out[n++] = 0xa1;
	out[n++] = 0x04;
	out[n++] = 0x48;
	memcpy(out + n, kid, MT_KID_LEN);
	n += MT_KID_LEN;
	n += fz_head(out + n, 2, len);
	memcpy(out + n, msg, len);
	n += len;
	out[n++] = 0x58;
	out[n++] = 0x40;
	memcpy(out + n, sig, MT_SIG_LEN);
	return n + MT_SIG_LEN;
}

/* A text field a parser hands back: 1–64 bytes of valid UTF-8 (the
 * library's own strict check, unit-tested in tests/unit/test_cbor.c) with
 * no C0 control character and no DEL. */
static inline bool fuzz_text_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || !mt_utf8_valid((const uint8_t *)s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

#endif
