/*
 * mt_testpkt.c — the packet test fixture and workbench (see mt_testpkt.h).
 *
 * Why the workbench re-states protocol §4 instead of calling the codec: a
 * test that builds its forgeries with the code it attacks can only find the
 * bugs that code does not share with itself.  So the Sig_structure, the
 * Sign1, the Enc_structure and the outer header are written here from the
 * spec's byte strings with a ten-line CBOR head writer, and only the
 * primitives (signing with a key, AES-GCM, HKDF through
 * mt_packet_derive_keys, which the unit tests pin to the vectors) come from
 * the library.  The unit tests then check that the codec's own sealer
 * produces exactly these bytes.
 *
 * Invariants: the fixture never changes the hub's view behind a test's back
 * (a test sets known/status/epoch/window and they stay); every helper that
 * builds bytes asserts it had room, so a too-small test buffer is a test
 * failure and never a silent truncation.
 */
#include "mt_testpkt.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- the vector values ------------------------------------------------ */

const char mt_tp_hex_hub_kx_d[] =
        "08407d9a4f7cd61da29518e67ec1d25a7ec131531cd565172fa9f0f4e38da125";
const char mt_tp_hex_dev_kx_d[] =
        "199f5483ab0b9f3eee0c2fd6083ad0b5e678428cb75df23087c82d9849c1b948";
const char mt_tp_hex_ldev_p256_d[] =
        "9d8b60562b657c527ed152c8df12959d410ab9d3ac5c5fc610c5ab68c9811b9a";
const char mt_tp_hex_ldev_p256_kid[] = "4173b786ce938540";
const char mt_tp_hex_ldev_ed25519_seed[] =
        "41777f260c55b026d93597915b3b85e31c20ce4c80dfe71085566280e5d1d581";
const char mt_tp_hex_ldev_ed25519_kid[] = "46ab0dfade8c45e9";
const char mt_tp_hex_ecdh_x[] = "87f8785de7d7423269a1249d9677e0cf44e5933825cd7a1c9bdbcaaf461c752a";
const char mt_tp_hex_data_key[] =
        "75f59979834f882257073cd11e6617ef9a5e27ce41904bc767a9e2edfd079a3b";
const char mt_tp_hex_receipt_key[] =
        "8c71efc630491f1862b7ebecdfa2f51b2fee669c17f2a9bb5978143df824b5e3";
const char mt_tp_hex_message[] =
        "a501656465762d3102182a031b0000019ac8798b000401058384001a00024bb818611a0004"
        "0220843901f31a00024b5cfb40424ccccccccccd1a000417a0843901f31a00024b5cf95090"
        "1a000417a0";
const char mt_tp_hex_sealed_eddsa_packet[] =
        "d08343a10103a2044400000007054c000102030405060708090a0b58b43ef1c6ae5705575c"
        "14014cf3d88ec95b58bcdbde12bb1ad4b96a7b0feace1bd8e43945bec30282ef65eb30bc74"
        "fc18cf98e5230d7b9443356a94a588fcb347b3c389cfcd6c8c34662284f87a3a22ff56da10"
        "71b03765443403598ab92f7098bc0a87692916f10dbeab6e79a674bac3522d959bf3e17c21"
        "969d992886fb86a6211287998b220ab0d759d5066676e1145a19f4350a1a9e249a8f16d145"
        "1123850d54ac34f147c579872a5007ccb0057e94319a6edc";
const char mt_tp_hex_alert_message[] =
        "a601656465762d3102182b031b0000019ac8798b000402058184001a00024bb818541a0004"
        "022008a3011903e90203036853704f32206c6f77";
const char mt_tp_hex_fast_packet[] =
        "d08343a10103a2044400000007054c000102030405060708090a0b58494a74e06b3354db69"
        "5e5fccfd3950451f2b2cedf013da7cb44ec34a17f2e6537bfc6d5e240f7929e7c2eb2c3c19"
        "fe01ccf2fdeb5a28ae2f5e1fce939c0182347de4ec51921e1cd3edb0";
const char mt_tp_hex_receipt_packet[] =
        "d08343a10103a2044400000007054c000102030405060708090a0b582d39c332128b070ea6"
        "6e42574ec70b6ea57244d865d9115b72121eee7fa3f052d04570bdcd263b8a84364c84105f";
const uint8_t mt_tp_iv[MT_AEAD_IV_LEN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

/* Another device's operational key: any scalar below n will do. */
static const char other_p256_d[] =
        "0101010101010101010101010101010101010101010101010101010101010101";

/* ---- small things ------------------------------------------------------ */

size_t mt_tp_head(unsigned major, uint64_t arg, uint8_t *out)
{
	uint8_t mt = (uint8_t)(major << 5);
	if (arg < 24) {
		out[0] = (uint8_t)(mt | arg);
		return 1;
	}
	unsigned bytes = arg <= 0xff ? 1 : arg <= 0xffff ? 2 : arg <= 0xffffffffu ? 4 : 8;
	out[0] = (uint8_t)(mt | (bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27));
	for (unsigned i = 0; i < bytes; i++)
		out[1 + i] = (uint8_t)(arg >> (8 * (bytes - 1 - i)));
	return 1 + bytes;
}

/* Append helpers over (buf, cap, *len), asserting room. */
static void put(uint8_t *buf, size_t cap, size_t *len, const void *p, size_t n)
{
	assert_true(*len <= cap && n <= cap - *len);
	if (n)
		memcpy(buf + *len, p, n);
	*len += n;
}

static void put_head(uint8_t *buf, size_t cap, size_t *len, unsigned major, uint64_t arg)
{
	uint8_t h[9];
	size_t n = mt_tp_head(major, arg, h);
	put(buf, cap, len, h, n);
}

static void put_bstr(uint8_t *buf, size_t cap, size_t *len, const void *p, size_t n)
{
	put_head(buf, cap, len, 2, n);
	put(buf, cap, len, p, n);
}

const char *mt_tp_name(enum mt_err e)
{
	if (e == MT_OK)
		return "OK";
	const char *s = mt_err_stage(e);
	return s ? s : mt_err_str(e);
}

/* ---- the hub's view ---------------------------------------------------- */

static enum mt_err tp_data_key_cb(void *ctx, uint32_t epoch, uint8_t key[MT_KEY_LEN])
{
	struct mt_tp *fx = ctx;
	fx->data_key_calls++;
	return mt_packet_derive_keys(fx->ecdh_x, epoch, fx->dev, fx->dev_len, key, NULL);
}

static enum mt_err tp_lookup_cb(void *ctx, const char *dev, size_t dev_len,
                                struct mt_device_view *v)
{
	struct mt_tp *fx = ctx;
	fx->lookup_calls++;
	if (!fx->known || dev_len != fx->dev_len || memcmp(dev, fx->dev, dev_len) != 0)
		return MT_ERR_NOT_FOUND;
	memset(v, 0, sizeof(*v));
	v->status = fx->status;
	v->check_status = fx->check_status;
	v->ldev = fx->registered;
	v->check_epoch = fx->check_epoch;
	v->epoch = fx->epoch;
	v->data_key = tp_data_key_cb;
	v->data_key_ctx = fx;
	v->window = fx->use_window ? &fx->window : NULL;
	return MT_OK;
}

/* ---- life cycle ---------------------------------------------------------- */

static struct mt_key *import(enum mt_key_type t, enum mt_key_role role, const char *hex)
{
	uint8_t raw[32];
	struct mt_key *k = NULL;
	size_t n = mt_test_unhex(hex, raw, sizeof(raw));
	assert_int_equal(mt_key_import_raw(t, role, raw, n, &k), MT_OK);
	assert_non_null(k);
	return k;
}

struct mt_tp *mt_tp_new(enum mt_key_type t)
{
	struct mt_tp *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	memcpy(fx->dev, MT_TP_DEV, sizeof(MT_TP_DEV));
	fx->dev_len = strlen(MT_TP_DEV);
	fx->p256 = import(MT_KEY_P256, MT_KEY_ROLE_SIGN, mt_tp_hex_ldev_p256_d);
	fx->ed25519 = import(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, mt_tp_hex_ldev_ed25519_seed);
	fx->other = import(MT_KEY_P256, MT_KEY_ROLE_SIGN, other_p256_d);
	fx->kx = import(MT_KEY_P256, MT_KEY_ROLE_DERIVE, mt_tp_hex_dev_kx_d);
	fx->hub_kx = import(MT_KEY_P256, MT_KEY_ROLE_DERIVE, mt_tp_hex_hub_kx_d);
	assert_true(t == MT_KEY_P256 || t == MT_KEY_ED25519);
	fx->ldev = t == MT_KEY_P256 ? fx->p256 : fx->ed25519;
	assert_int_equal(mt_key_ecdh(fx->kx, mt_key_public(fx->hub_kx), fx->ecdh_x), MT_OK);

	fx->known = true;
	fx->status = MT_VIEW_ACTIVE;
	fx->check_status = true;
	fx->check_epoch = true;
	fx->epoch = MT_TP_EPOCH;
	fx->registered = mt_key_public(fx->ldev);
	fx->use_window = true;
	mt_replay_init(&fx->window);
	assert_int_equal(mt_aead_new(&fx->aead), MT_OK);
	assert_int_equal(mt_opener_new(&fx->opener), MT_OK);
	return fx;
}

void mt_tp_free(struct mt_tp *fx)
{
	if (fx == NULL)
		return;
	mt_opener_free(fx->opener);
	mt_aead_free(fx->aead);
	mt_key_free(fx->p256);
	mt_key_free(fx->ed25519);
	mt_key_free(fx->other);
	mt_key_free(fx->kx);
	mt_key_free(fx->hub_kx);
	mt_wipe(fx->ecdh_x, sizeof(fx->ecdh_x));
	free(fx);
}

int mt_tp_setup_p256(void **state)
{
	*state = mt_tp_new(MT_KEY_P256);
	return 0;
}

int mt_tp_setup_ed25519(void **state)
{
	*state = mt_tp_new(MT_KEY_ED25519);
	return 0;
}

int mt_tp_teardown(void **state)
{
	mt_tp_free(*state);
	*state = NULL;
	return 0;
}

/* ---- messages ------------------------------------------------------------ */

static void msg_base(const struct mt_tp *fx, struct mt_tp_msg *mm, uint64_t ctr, enum mt_typ typ)
{
	memset(mm, 0, sizeof(*mm));
	memcpy(mm->m.dev, fx->dev, fx->dev_len + 1);
	mm->m.dev_len = fx->dev_len;
	mm->m.ctr = ctr;
	mm->m.ts = MT_TP_TS;
	mm->m.typ = typ;
	mm->m.obs = mm->obs;
}

void mt_tp_vitals(const struct mt_tp *fx, struct mt_tp_msg *mm, uint64_t ctr)
{
	msg_base(fx, mm, ctr, MT_TYP_VITALS);
	mm->m.has = MT_MSG_OBS;
	mm->m.n_obs = 3;
	mt_num_set_int(&mm->obs[0].t, 0); /* heart rate 72 /min */
	mm->obs[0].code = 147842;
	mm->obs[0].unit = 264864;
	mt_num_set_int(&mm->obs[0].value, 72);
	mt_num_set_int(&mm->obs[1].t, -1000); /* SpO2 97.5 % */
	mm->obs[1].code = 150456;
	mm->obs[1].unit = 262688;
	mt_num_set_float(&mm->obs[1].value, 97.5);
	mt_num_set_int(&mm->obs[2].t, -2000); /* body temperature 36.6 °C, one decimal */
	mm->obs[2].code = 150364;
	mm->obs[2].unit = 268192;
	mt_num_set_float(&mm->obs[2].value, 36.6);
	mm->obs[2].has_places = true;
	mm->obs[2].places = 1;
}

void mt_tp_alert(const struct mt_tp *fx, struct mt_tp_msg *mm, uint64_t ctr)
{
	static const char text[] = "SpO2 low";
	msg_base(fx, mm, ctr, MT_TYP_ALERT);
	mm->m.has = MT_MSG_ALRT | MT_MSG_OBS;
	mm->m.alrt.code = 1001;
	mm->m.alrt.prio = 3;
	mm->m.alrt.text = text;
	mm->m.alrt.text_len = sizeof(text) - 1;
	mm->m.n_obs = 1;
	mt_num_set_int(&mm->obs[0].t, 0);
	mm->obs[0].code = 150456;
	mm->obs[0].unit = 262688;
	mt_num_set_int(&mm->obs[0].value, 84);
}

void mt_tp_status(const struct mt_tp *fx, struct mt_tp_msg *mm, uint64_t ctr)
{
	static const char fw[] = "1.4.2";
	msg_base(fx, mm, ctr, MT_TYP_STATUS);
	mm->m.has = MT_MSG_ST;
	mm->m.st.has = MT_ST_BATTERY | MT_ST_FW | MT_ST_QUEUE | MT_ST_UPTIME | MT_ST_RSSI;
	mm->m.st.battery = 87;
	mm->m.st.fw = fw;
	mm->m.st.fw_len = sizeof(fw) - 1;
	mm->m.st.queue = 3;
	mm->m.st.uptime = 86400;
	mt_num_set_int(&mm->m.st.rssi, -67);
}

void mt_tp_ack(const struct mt_tp *fx, struct mt_tp_msg *mm, uint64_t ctr)
{
	static const char detail[] = "config applied";
	msg_base(fx, mm, ctr, MT_TYP_ACK);
	mm->m.has = MT_MSG_ACK;
	mm->m.ack.ctr = 17;
	mm->m.ack.result = 0;
	mm->m.ack.detail = detail;
	mm->m.ack.detail_len = sizeof(detail) - 1;
}

size_t mt_tp_encode(const struct mt_message *m, uint8_t *out, size_t cap)
{
	size_t n = 0;
	assert_int_equal(mt_message_encode(m, out, cap, &n), MT_OK);
	return n;
}

/* ---- keys and sealing ------------------------------------------------------ */

void mt_tp_data_key(const struct mt_tp *fx, uint32_t epoch, uint8_t key[MT_KEY_LEN])
{
	assert_int_equal(mt_packet_derive_keys(fx->ecdh_x, epoch, fx->dev, fx->dev_len, key, NULL),
	                 MT_OK);
}

void mt_tp_receipt_key(const struct mt_tp *fx, uint32_t epoch, uint8_t key[MT_KEY_LEN])
{
	assert_int_equal(mt_packet_derive_keys(fx->ecdh_x, epoch, fx->dev, fx->dev_len, NULL, key),
	                 MT_OK);
}

enum mt_err mt_tp_seal_epoch(struct mt_tp *fx, const struct mt_message *m, bool fast,
                             uint32_t epoch, const uint8_t *iv, uint8_t *out, size_t cap,
                             size_t *len)
{
	uint8_t key[MT_KEY_LEN];
	mt_tp_data_key(fx, epoch, key);
	struct mt_seal_params sp = {
	        .dev = fx->dev,
	        .dev_len = fx->dev_len,
	        .epoch = epoch,
	        .data_key = key,
	        .ldev = fx->ldev,
	        .fast = fast,
	        .iv = iv,
	        .aead = fx->aead,
	};
	enum mt_err e = mt_packet_seal(&sp, m, out, cap, len);
	mt_wipe(key, sizeof(key));
	return e;
}

size_t mt_tp_seal(struct mt_tp *fx, const struct mt_message *m, bool fast, uint8_t *out, size_t cap)
{
	size_t n = 0;
	enum mt_err e = mt_tp_seal_epoch(fx, m, fast, fx->epoch, NULL, out, cap, &n);
	if (e != MT_OK)
		print_error("mt_packet_seal: %s\n", mt_err_str(e));
	assert_int_equal(e, MT_OK);
	return n;
}

size_t mt_tp_seal_vitals(struct mt_tp *fx, uint64_t ctr, uint8_t *out, size_t cap)
{
	struct mt_tp_msg mm;
	mt_tp_vitals(fx, &mm, ctr);
	return mt_tp_seal(fx, &mm.m, false, out, cap);
}

/* ---- the workbench ------------------------------------------------------- */

size_t mt_tp_prot(const struct mt_tp *fx, uint8_t out[3])
{
	out[0] = 0xa1;
	out[1] = 0x01;
	out[2] = mt_key_type(fx->ldev) == MT_KEY_P256 ? 0x26 : 0x27;
	return 3;
}

size_t mt_tp_unprot_kid(const uint8_t kid[MT_KID_LEN], uint8_t out[11])
{
	out[0] = 0xa1;
	out[1] = 0x04;
	out[2] = 0x48;
	memcpy(out + 3, kid, MT_KID_LEN);
	return 11;
}

size_t mt_tp_unprot(const struct mt_tp *fx, uint8_t out[11])
{
	return mt_tp_unprot_kid(mt_pubkey_kid(mt_key_public(fx->ldev)), out);
}

size_t mt_tp_sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                           size_t payload_len, uint8_t *out, size_t cap)
{
	static const char ctx[] = "Signature1";
	size_t len = 0;
	put_head(out, cap, &len, 4, 4);
	put_head(out, cap, &len, 3, sizeof(ctx) - 1);
	put(out, cap, &len, ctx, sizeof(ctx) - 1);
	put_bstr(out, cap, &len, prot, prot_len);
	put_bstr(out, cap, &len, NULL, 0);
	put_bstr(out, cap, &len, payload, payload_len);
	return len;
}

void mt_tp_sign(struct mt_key *k, const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                size_t payload_len, uint8_t sig[MT_SIG_LEN])
{
	size_t cap = payload_len + prot_len + 64;
	uint8_t *tbs = malloc(cap);
	assert_non_null(tbs);
	size_t len = mt_tp_sig_structure(prot, prot_len, payload, payload_len, tbs, cap);
	assert_int_equal(mt_key_sign(k, tbs, len, sig), MT_OK);
	free(tbs);
}

size_t mt_tp_sign1_raw(bool tagged, const uint8_t *prot, size_t prot_len, const uint8_t *unprot,
                       size_t unprot_len, const uint8_t *payload, size_t payload_len,
                       const uint8_t *sig, size_t sig_len, uint8_t *out, size_t cap)
{
	size_t len = 0;
	if (tagged)
		put_head(out, cap, &len, 6, 18);
	put_head(out, cap, &len, 4, 4);
	put_bstr(out, cap, &len, prot, prot_len);
	put(out, cap, &len, unprot, unprot_len);
	put_bstr(out, cap, &len, payload, payload_len);
	put_bstr(out, cap, &len, sig, sig_len);
	return len;
}

size_t mt_tp_sign1(struct mt_tp *fx, struct mt_key *k, const uint8_t *prot, size_t prot_len,
                   const uint8_t *unprot, size_t unprot_len, const uint8_t *payload,
                   size_t payload_len, uint8_t *out, size_t cap)
{
	uint8_t sig[MT_SIG_LEN];
	mt_tp_sign(k ? k : fx->ldev, prot, prot_len, payload, payload_len, sig);
	return mt_tp_sign1_raw(true, prot, prot_len, unprot, unprot_len, payload, payload_len, sig,
	                       sizeof(sig), out, cap);
}

size_t mt_tp_encrypt_as(struct mt_tp *fx, const char *dev, uint32_t epoch, const uint8_t *pt,
                        size_t pt_len, uint8_t *out, size_t cap)
{
	static const uint8_t prot[3] = {0xa1, 0x01, 0x03};
	static const char ctx[] = "Encrypt0";
	uint8_t aad[128], key[MT_KEY_LEN];
	size_t aad_len = 0, len = 0;
	if (dev == NULL)
		dev = fx->dev;
	/* Enc_structure = ["Encrypt0", h'a10103', h'<device id>'] */
	put_head(aad, sizeof(aad), &aad_len, 4, 3);
	put_head(aad, sizeof(aad), &aad_len, 3, sizeof(ctx) - 1);
	put(aad, sizeof(aad), &aad_len, ctx, sizeof(ctx) - 1);
	put_bstr(aad, sizeof(aad), &aad_len, prot, sizeof(prot));
	put_bstr(aad, sizeof(aad), &aad_len, dev, strlen(dev));

	/* d0 83 43 a10103 a2 04 44 <epoch> 05 4c <iv> <bstr ct‖tag> */
	const uint8_t head[] = {0xd0,
	                        0x83,
	                        0x43,
	                        0xa1,
	                        0x01,
	                        0x03,
	                        0xa2,
	                        0x04,
	                        0x44,
	                        (uint8_t)(epoch >> 24),
	                        (uint8_t)(epoch >> 16),
	                        (uint8_t)(epoch >> 8),
	                        (uint8_t)epoch,
	                        0x05,
	                        0x4c};
	put(out, cap, &len, head, sizeof(head));
	put(out, cap, &len, mt_tp_iv, sizeof(mt_tp_iv));
	put_head(out, cap, &len, 2, pt_len + MT_AEAD_TAG_LEN);
	assert_true(pt_len + MT_AEAD_TAG_LEN <= cap - len);
	mt_tp_data_key(fx, epoch, key);
	assert_int_equal(mt_aead_seal(fx->aead, key, sizeof(key), mt_tp_iv, aad, aad_len, pt,
	                              pt_len, out + len),
	                 MT_OK);
	mt_wipe(key, sizeof(key));
	return len + pt_len + MT_AEAD_TAG_LEN;
}

size_t mt_tp_encrypt(struct mt_tp *fx, const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap)
{
	return mt_tp_encrypt_as(fx, NULL, fx->epoch, pt, pt_len, out, cap);
}

size_t mt_tp_seal_payload(struct mt_tp *fx, const uint8_t *msg, size_t msg_len, uint8_t *out,
                          size_t cap)
{
	uint8_t prot[3], unprot[11];
	size_t s1cap = msg_len + 128;
	uint8_t *s1 = malloc(s1cap);
	assert_non_null(s1);
	size_t pl = mt_tp_prot(fx, prot), ul = mt_tp_unprot(fx, unprot);
	size_t n = mt_tp_sign1(fx, NULL, prot, pl, unprot, ul, msg, msg_len, s1, s1cap);
	size_t len = mt_tp_encrypt(fx, s1, n, out, cap);
	free(s1);
	return len;
}

size_t mt_tp_ct_offset(const uint8_t *pkt, size_t len, size_t *ct_len)
{
	assert_true(len > 28);
	size_t off = 27, n;
	uint8_t h = pkt[off];
	assert_int_equal(h >> 5, 2);
	switch (h & 0x1f) {
	case 24:
		n = pkt[off + 1];
		off += 2;
		break;
	case 25:
		n = (size_t)pkt[off + 1] << 8 | pkt[off + 2];
		off += 3;
		break;
	case 26:
		n = (size_t)pkt[off + 1] << 24 | (size_t)pkt[off + 2] << 16 |
		    (size_t)pkt[off + 3] << 8 | pkt[off + 4];
		off += 5;
		break;
	default:
		assert_true((h & 0x1f) < 24);
		n = h & 0x1f;
		off += 1;
	}
	assert_true(off + n <= len);
	*ct_len = n;
	return off;
}

size_t mt_tp_rewrap(const uint8_t *pkt, const uint8_t *ct, size_t ct_len, uint8_t *out, size_t cap)
{
	size_t len = 0;
	put(out, cap, &len, pkt, 27);
	put_bstr(out, cap, &len, ct, ct_len);
	return len;
}

size_t mt_tp_decrypt(struct mt_tp *fx, const uint8_t *pkt, size_t len, uint8_t *pt, size_t cap)
{
	static const uint8_t enc0[] = {0x83, 0x68, 'E', 'n',  'c',  'r',  'y',
	                               'p',  't',  '0', 0x43, 0xa1, 0x01, 0x03};
	uint8_t aad[128], key[MT_KEY_LEN];
	size_t aad_len = 0, ct_len;
	size_t off = mt_tp_ct_offset(pkt, len, &ct_len);
	uint32_t epoch =
	        (uint32_t)pkt[9] << 24 | (uint32_t)pkt[10] << 16 | (uint32_t)pkt[11] << 8 | pkt[12];
	put(aad, sizeof(aad), &aad_len, enc0, sizeof(enc0));
	put_bstr(aad, sizeof(aad), &aad_len, fx->dev, fx->dev_len);
	assert_true(ct_len >= MT_AEAD_TAG_LEN && ct_len - MT_AEAD_TAG_LEN <= cap);
	mt_tp_data_key(fx, epoch, key);
	assert_int_equal(mt_aead_open(fx->aead, key, sizeof(key), pkt + 15, aad, aad_len, pkt + off,
	                              ct_len, pt),
	                 MT_OK);
	mt_wipe(key, sizeof(key));
	return ct_len - MT_AEAD_TAG_LEN;
}

size_t mt_tp_patch(uint8_t *buf, size_t len, size_t cap, const uint8_t *from, size_t from_len,
                   const uint8_t *to, size_t to_len)
{
	for (size_t i = 0; i + from_len <= len; i++) {
		if (memcmp(buf + i, from, from_len) != 0)
			continue;
		assert_true(len - from_len + to_len <= cap);
		memmove(buf + i + to_len, buf + i + from_len, len - i - from_len);
		memcpy(buf + i, to, to_len);
		return len - from_len + to_len;
	}
	fail_msg("mt_tp_patch: pattern not found");
	return 0;
}

/* ---- opening ------------------------------------------------------------ */

enum mt_err mt_tp_open(struct mt_tp *fx, enum mt_topic topic, const uint8_t *pkt, size_t len)
{
	struct mt_open_params p = {
	        .dev = fx->dev,
	        .dev_len = fx->dev_len,
	        .topic = topic,
	        .lookup = tp_lookup_cb,
	        .lookup_ctx = fx,
	        .now_ms = fx->now_ms,
	};
	return mt_packet_open(fx->opener, &p, pkt, len, &fx->res);
}

void mt_tp_window_save(const struct mt_tp *fx, uint8_t out[MT_REPLAY_STATE_LEN])
{
	mt_replay_save(&fx->window, out);
}

void mt_tp_window_prime(struct mt_tp *fx, uint64_t top)
{
	mt_replay_init(&fx->window);
	mt_replay_mark(&fx->window, top - 5);
	mt_replay_mark(&fx->window, top - 2);
	mt_replay_mark(&fx->window, top);
}

bool mt_tp_expect(struct mt_tp *fx, enum mt_topic topic, const uint8_t *pkt, size_t len,
                  enum mt_err want, const char *what)
{
	uint8_t before[MT_REPLAY_STATE_LEN], after[MT_REPLAY_STATE_LEN];
	bool ok = true;
	mt_tp_window_save(fx, before);
	enum mt_err got = mt_tp_open(fx, topic, pkt, len);
	mt_tp_window_save(fx, after);
	if (got != want) {
		print_error("%s: expected %s, got %s (%s)\n", what, mt_tp_name(want),
		            mt_tp_name(got), fx->res.detail);
		ok = false;
	}
	if (got != fx->res.err) {
		print_error("%s: returned %s but r->err is %s\n", what, mt_tp_name(got),
		            mt_tp_name(fx->res.err));
		ok = false;
	}
	if (got != MT_OK && (mt_err_stage(got) == NULL || fx->res.detail[0] == '\0')) {
		print_error("%s: refusal %s names no stage or gives no detail\n", what,
		            mt_tp_name(got));
		ok = false;
	}
	if (want != MT_OK && want != MT_ERR_PKT_IMPLAUSIBLE &&
	    memcmp(before, after, sizeof(before)) != 0) {
		print_error("%s: expected a refusal (%s) but the replay window changed\n", what,
		            mt_tp_name(want));
		ok = false;
	}
	return ok;
}

bool mt_tp_expect_epoch(struct mt_tp *fx, uint32_t epoch, uint64_t ctr, enum mt_err want)
{
	static uint8_t pkt[MT_TP_BUF];
	struct mt_tp_msg mm;
	size_t n;
	char what[64];
	mt_tp_vitals(fx, &mm, ctr);
	assert_int_equal(mt_tp_seal_epoch(fx, &mm.m, false, epoch, NULL, pkt, sizeof(pkt), &n),
	                 MT_OK);
	unsigned calls = fx->data_key_calls;
	snprintf(what, sizeof(what), "epoch %u with current %u", epoch, fx->epoch);
	if (!mt_tp_expect(fx, MT_TOPIC_VITALS, pkt, n, want, what))
		return false;
	unsigned derived = fx->data_key_calls - calls;
	if (want == MT_ERR_PKT_EPOCH && derived != 0) {
		print_error("%s: %u key derivations before the refusal\n", what, derived);
		return false;
	}
	if (want == MT_OK && (fx->res.epoch != epoch || derived != 1)) {
		print_error("%s: opened as epoch %u after %u key derivations, want %u after 1\n",
		            what, fx->res.epoch, derived, epoch);
		return false;
	}
	return true;
}
