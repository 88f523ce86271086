/*
 * message.c — the MTP/1 message of protocol §5: schema, encoding, decoding,
 * waveform samples, clinical plausibility.
 *
 * The schema is a closed world: keys 1..8 at the top, fixed keys inside
 * `st`, `ack` and `alrt`, positional observation arrays, and nothing else
 * ("MTP/1 has no extension point").  The same rules are applied in three
 * places that must agree — mt_message_check() before encoding, the decoder,
 * and the plausibility pass — so each rule is written once as a small
 * function used by the encoder-side check and the decoder alike.
 *
 * Decoding runs mt_cbor_validate() first (strictness, depth, key order) and
 * then walks the map with the typed getters; because validation already
 * proved keys unique and ascending, the walk only has to recognise them.
 * Nothing is allocated: strings and sample bytes stay in the input buffer.
 *
 * Integers are kept whole.  §5 types `t` and `rssi` as `int` and most
 * counts and codes as `uint` without a bound, which in CBOR means major type
 * 0 or 1: anything from −2^64 to 2^64 − 1.  Unbounded `uint` fields are
 * uint64_t; `int` fields and numbers that may also be floats are struct
 * mt_num, so that a valid message from another implementation with t =
 * −2^64 or rssi = 2^63 is accepted and re-encoded byte for byte rather than
 * refused for not fitting an int64_t.
 *
 * Plausibility (stage 14) is kept apart from the schema (stage 10): a
 * well-formed heart rate of 10,000 is signed data from a real device and
 * still marks its counter seen, while a malformed message is not the
 * device's statement at all.
 */
#include "medtrust/mt_message.h"

#include <math.h>
#include <string.h>

#include "medtrust/mt_cbor.h"

#define MAX_CTR (UINT64_C(1) << 63)
#define MAX_TS (UINT64_C(1) << 53)

/* Which top-level keys each typ must, may and must not have (bit k = key k). */
struct typ_rule {
	unsigned must, may;
};
#define K(k) (1u << (k))
static const struct typ_rule typ_rules[5] = {
	[MT_TYP_VITALS] = {K(1) | K(2) | K(3) | K(4) | K(5), 0},
	[MT_TYP_ALERT] = {K(1) | K(2) | K(3) | K(4) | K(8), K(5)},
	[MT_TYP_STATUS] = {K(1) | K(2) | K(3) | K(4) | K(6), 0},
	[MT_TYP_ACK] = {K(1) | K(2) | K(3) | K(4) | K(7), 0},
};

static enum mt_err bad(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return MT_ERR_PKT_MESSAGE;
}

double mt_num_to_double(const struct mt_num *n)
{
	switch (n->kind) {
	case MT_NUM_UINT: return (double)n->u;
	case MT_NUM_NEGINT: return -1.0 - (double)n->u;
	default: return n->f;
	}
}

bool mt_num_is_int(const struct mt_num *n)
{
	return n->kind == MT_NUM_UINT || n->kind == MT_NUM_NEGINT;
}

bool mt_num_get_int64(const struct mt_num *n, int64_t *v)
{
	if (n->kind == MT_NUM_UINT && n->u <= (uint64_t)INT64_MAX) {
		*v = (int64_t)n->u;
		return true;
	}
	if (n->kind == MT_NUM_NEGINT && n->u <= (uint64_t)INT64_MAX) {
		*v = -1 - (int64_t)n->u;
		return true;
	}
	return false;
}

bool mt_message_obs_time(const struct mt_message *m, const struct mt_obs *o, uint64_t *t)
{
	int64_t off = 0;
	uint64_t back;

	if (!mt_num_get_int64(&o->t, &off) || off > 0)
		return false;
	back = off == 0 ? 0 : (uint64_t)(-(off + 1)) + 1; /* |off|, INT64_MIN included */
	if (back > m->ts)
		return false;
	*t = m->ts - back;
	return true;
}

void mt_num_set_int(struct mt_num *n, int64_t v)
{
	if (v >= 0)
		mt_num_set_uint(n, (uint64_t)v);
	else
		mt_num_set_negint(n, (uint64_t)(-(v + 1)));
}

void mt_num_set_uint(struct mt_num *n, uint64_t v)
{
	n->kind = MT_NUM_UINT;
	n->u = v;
	n->f = 0;
}

void mt_num_set_negint(struct mt_num *n, uint64_t u)
{
	n->kind = MT_NUM_NEGINT;
	n->u = u;
	n->f = 0;
}

void mt_num_set_float(struct mt_num *n, double v)
{
	n->kind = MT_NUM_FLOAT;
	n->u = 0;
	n->f = v;
}

bool mt_device_id_valid(const char *id, size_t len)
{
	if (len < 1 || len > MT_DEVICE_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		             (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return false;
	}
	return true;
}

static bool text_ok(const char *p, size_t n)
{
	return n <= MT_TEXT_MAX && mt_utf8_valid((const uint8_t *)p, n);
}

/* ---- waveforms ---------------------------------------------------------- */

enum mt_err mt_waveform_encode(const int32_t *samples, size_t n, uint8_t *out, size_t cap,
                               size_t *len)
{
	if (n < 1 || n > MT_WAVE_MAX_SAMPLES)
		return MT_ERR_PKT_MESSAGE;
	size_t o = 0;
	int64_t prev = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t d = (int64_t)samples[i] - prev;
		prev = samples[i];
		uint64_t z = ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
		do {
			if (o >= cap)
				return MT_ERR_BUFFER;
			uint8_t b = z & 0x7f;
			z >>= 7;
			out[o++] = (uint8_t)(b | (z ? 0x80 : 0));
		} while (z);
	}
	*len = o;
	return MT_OK;
}

enum mt_err mt_waveform_decode(const uint8_t *in, size_t len, int32_t *out, size_t cap,
                               size_t *n)
{
	size_t i = 0, count = 0;
	int64_t prev = 0;
	if (len == 0)
		return MT_ERR_PKT_MESSAGE;
	while (i < len) {
		uint64_t z = 0;
		unsigned shift = 0;
		size_t start = i;
		for (;;) {
			if (i >= len || i - start >= 10)
				return MT_ERR_PKT_MESSAGE; /* truncated or over 10 bytes */
			uint8_t b = in[i++];
			if (shift == 63 && (b & 0x7e))
				return MT_ERR_PKT_MESSAGE; /* beyond 64 bits */
			z |= (uint64_t)(b & 0x7f) << shift;
			if (!(b & 0x80)) {
				/* shortest form: no trailing zero group */
				if (b == 0 && i - start > 1)
					return MT_ERR_PKT_MESSAGE;
				break;
			}
			shift += 7;
		}
		int64_t d = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
		/* prev is an int32, so overflow is only possible for |d| near 2^63. */
		if ((d > 0 && prev > INT32_MAX - d) || (d < 0 && prev < INT32_MIN - d))
			return MT_ERR_PKT_MESSAGE;
		int64_t s = prev + d;
		if (count >= MT_WAVE_MAX_SAMPLES)
			return MT_ERR_PKT_MESSAGE;
		if (out) {
			if (count >= cap)
				return MT_ERR_BUFFER;
			out[count] = (int32_t)s;
		}
		count++;
		prev = s;
	}
	*n = count;
	return MT_OK;
}

/* ---- schema ------------------------------------------------------------- */

/* A known kind, and finite when a float. */
static bool num_finite(const struct mt_num *v)
{
	return mt_num_is_int(v) || (v->kind == MT_NUM_FLOAT && isfinite(v->f));
}

static bool num_zero(const struct mt_num *v)
{
	return (v->kind == MT_NUM_UINT && v->u == 0) ||
	       (v->kind == MT_NUM_FLOAT && v->f == 0.0);
}

/* An observation's t: an integer ≤ 0, that is 0 or any negative integer. */
static bool t_ok(const struct mt_num *t)
{
	return (t->kind == MT_NUM_UINT && t->u == 0) || t->kind == MT_NUM_NEGINT;
}

static enum mt_err check_obs(const struct mt_obs *o, const char **why)
{
	if (!mt_num_is_int(&o->t))
		return bad(why, "observation time offset is not an integer");
	if (!t_ok(&o->t))
		return bad(why, "observation time offset is positive");
	if (o->waveform) {
		size_t n;
		if (o->period_us == 0)
			return bad(why, "waveform period is zero");
		if (!num_finite(&o->scale) || num_zero(&o->scale))
			return bad(why, "waveform scale is zero or not finite");
		if (o->samples == NULL ||
		    mt_waveform_decode(o->samples, o->samples_len, NULL, 0, &n) != MT_OK)
			return bad(why, "waveform samples malformed");
		if (n != o->n_samples)
			return bad(why, "waveform sample count inconsistent");
		return MT_OK;
	}
	if (!num_finite(&o->value))
		return bad(why, "observation value not finite");
	if (o->has_places && o->places > 6)
		return bad(why, "observation places above 6");
	return MT_OK;
}

static unsigned present_keys(const struct mt_message *m)
{
	unsigned k = K(1) | K(2) | K(3) | K(4);
	if (m->has & MT_MSG_OBS)
		k |= K(5);
	if (m->has & MT_MSG_ST)
		k |= K(6);
	if (m->has & MT_MSG_ACK)
		k |= K(7);
	if (m->has & MT_MSG_ALRT)
		k |= K(8);
	return k;
}

enum mt_err mt_message_check(const struct mt_message *m, const char **why)
{
	if (!mt_device_id_valid(m->dev, m->dev_len))
		return bad(why, "device id malformed");
	if (m->ctr >= MAX_CTR)
		return bad(why, "counter not below 2^63");
	if (m->ts >= MAX_TS)
		return bad(why, "timestamp not below 2^53");
	if (m->typ < MT_TYP_VITALS || m->typ > MT_TYP_ACK)
		return bad(why, "unknown typ");
	const struct typ_rule *r = &typ_rules[m->typ];
	unsigned keys = present_keys(m);
	if ((keys & r->must) != r->must)
		return bad(why, "a key required by this typ is missing");
	if (keys & ~(r->must | r->may))
		return bad(why, "a key not allowed for this typ is present");
	if (m->has & MT_MSG_OBS) {
		if (m->n_obs < 1 || m->n_obs > MT_OBS_MAX || m->obs == NULL)
			return bad(why, "observation count outside 1..1024");
		for (size_t i = 0; i < m->n_obs; i++) {
			enum mt_err e = check_obs(&m->obs[i], why);
			if (e != MT_OK)
				return e;
		}
	}
	if (m->has & MT_MSG_ST) {
		if ((m->st.has & (MT_ST_BATTERY | MT_ST_FW | MT_ST_QUEUE | MT_ST_UPTIME |
		                  MT_ST_RSSI)) == 0 ||
		    (m->st.has & ~(unsigned)(MT_ST_BATTERY | MT_ST_FW | MT_ST_QUEUE |
		                             MT_ST_UPTIME | MT_ST_RSSI)))
			return bad(why, "status needs at least one known entry");
		if ((m->st.has & MT_ST_BATTERY) && m->st.battery > 100)
			return bad(why, "battery above 100");
		if ((m->st.has & MT_ST_FW) && (m->st.fw == NULL || !text_ok(m->st.fw, m->st.fw_len)))
			return bad(why, "firmware text malformed or over 256 bytes");
		if ((m->st.has & MT_ST_RSSI) && !mt_num_is_int(&m->st.rssi))
			return bad(why, "rssi is not an integer");
	}
	if ((m->has & MT_MSG_ACK) && m->ack.detail &&
	    !text_ok(m->ack.detail, m->ack.detail_len))
		return bad(why, "ack detail malformed or over 256 bytes");
	if (m->has & MT_MSG_ALRT) {
		if (m->alrt.prio < 1 || m->alrt.prio > 3)
			return bad(why, "alert priority outside 1..3");
		if (m->alrt.text && !text_ok(m->alrt.text, m->alrt.text_len))
			return bad(why, "alert text malformed or over 256 bytes");
	}
	return MT_OK;
}

/* ---- encoding ----------------------------------------------------------- */

static void put_num(struct mt_cbor_enc *e, const struct mt_num *v)
{
	switch (v->kind) {
	case MT_NUM_UINT: mt_cbor_put_uint(e, v->u); break;
	case MT_NUM_NEGINT: mt_cbor_put_negint(e, v->u); break;
	default: mt_cbor_put_float(e, v->f); break;
	}
}

static void put_obs(struct mt_cbor_enc *e, const struct mt_obs *o)
{
	if (o->waveform) {
		mt_cbor_put_array(e, 6);
		put_num(e, &o->t);
		mt_cbor_put_uint(e, o->code);
		mt_cbor_put_uint(e, o->unit);
		mt_cbor_put_uint(e, o->period_us);
		put_num(e, &o->scale);
		mt_cbor_put_bstr(e, o->samples, o->samples_len);
		return;
	}
	mt_cbor_put_array(e, o->has_places ? 5 : 4);
	put_num(e, &o->t);
	mt_cbor_put_uint(e, o->code);
	put_num(e, &o->value);
	mt_cbor_put_uint(e, o->unit);
	if (o->has_places)
		mt_cbor_put_uint(e, o->places);
}

static unsigned popcount(unsigned v)
{
	unsigned n = 0;
	for (; v; v &= v - 1)
		n++;
	return n;
}

enum mt_err mt_message_encode(const struct mt_message *m, uint8_t *out, size_t cap,
                              size_t *len)
{
	enum mt_err err = mt_message_check(m, NULL);
	if (err != MT_OK)
		return err;
	struct mt_cbor_enc e;
	mt_cbor_enc_init(&e, out, cap);
	mt_cbor_put_map(&e, popcount(present_keys(m)));
	mt_cbor_put_uint(&e, 1);
	mt_cbor_put_tstr(&e, m->dev, m->dev_len);
	mt_cbor_put_uint(&e, 2);
	mt_cbor_put_uint(&e, m->ctr);
	mt_cbor_put_uint(&e, 3);
	mt_cbor_put_uint(&e, m->ts);
	mt_cbor_put_uint(&e, 4);
	mt_cbor_put_uint(&e, m->typ);
	if (m->has & MT_MSG_OBS) {
		mt_cbor_put_uint(&e, 5);
		mt_cbor_put_array(&e, m->n_obs);
		for (size_t i = 0; i < m->n_obs; i++)
			put_obs(&e, &m->obs[i]);
	}
	if (m->has & MT_MSG_ST) {
		mt_cbor_put_uint(&e, 6);
		mt_cbor_put_map(&e, popcount(m->st.has));
		if (m->st.has & MT_ST_BATTERY) {
			mt_cbor_put_uint(&e, 1);
			mt_cbor_put_uint(&e, m->st.battery);
		}
		if (m->st.has & MT_ST_FW) {
			mt_cbor_put_uint(&e, 2);
			mt_cbor_put_tstr(&e, m->st.fw, m->st.fw_len);
		}
		if (m->st.has & MT_ST_QUEUE) {
			mt_cbor_put_uint(&e, 3);
			mt_cbor_put_uint(&e, m->st.queue);
		}
		if (m->st.has & MT_ST_UPTIME) {
			mt_cbor_put_uint(&e, 4);
			mt_cbor_put_uint(&e, m->st.uptime);
		}
		if (m->st.has & MT_ST_RSSI) {
			mt_cbor_put_uint(&e, 5);
			put_num(&e, &m->st.rssi);
		}
	}
	if (m->has & MT_MSG_ACK) {
		mt_cbor_put_uint(&e, 7);
		mt_cbor_put_map(&e, m->ack.detail ? 3 : 2);
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_uint(&e, m->ack.ctr);
		mt_cbor_put_uint(&e, 2);
		mt_cbor_put_uint(&e, m->ack.result);
		if (m->ack.detail) {
			mt_cbor_put_uint(&e, 3);
			mt_cbor_put_tstr(&e, m->ack.detail, m->ack.detail_len);
		}
	}
	if (m->has & MT_MSG_ALRT) {
		mt_cbor_put_uint(&e, 8);
		mt_cbor_put_map(&e, m->alrt.text ? 3 : 2);
		mt_cbor_put_uint(&e, 1);
		mt_cbor_put_uint(&e, m->alrt.code);
		mt_cbor_put_uint(&e, 2);
		mt_cbor_put_uint(&e, m->alrt.prio);
		if (m->alrt.text) {
			mt_cbor_put_uint(&e, 3);
			mt_cbor_put_tstr(&e, m->alrt.text, m->alrt.text_len);
		}
	}
	return mt_cbor_enc_finish(&e, len);
}

/* ---- decoding ----------------------------------------------------------- */

static bool get_num(struct mt_cbor_dec *d, struct mt_num *v)
{
	struct mt_cbor_item it;
	if (!mt_cbor_next(d, &it))
		return false;
	switch (it.type) {
	case MT_CBOR_UINT: v->kind = MT_NUM_UINT; v->u = it.u; v->f = 0; return true;
	case MT_CBOR_NEGINT: v->kind = MT_NUM_NEGINT; v->u = it.u; v->f = 0; return true;
	case MT_CBOR_FLOAT: v->kind = MT_NUM_FLOAT; v->u = 0; v->f = it.f; return true;
	default: return mt_cbor_fail(d, MT_ERR_CBOR_TYPE);
	}
}

/* A CBOR integer of either sign, kept exact (the protocol's `int`). */
static bool get_int(struct mt_cbor_dec *d, struct mt_num *v)
{
	struct mt_cbor_item it;
	if (!mt_cbor_next(d, &it))
		return false;
	switch (it.type) {
	case MT_CBOR_UINT: mt_num_set_uint(v, it.u); return true;
	case MT_CBOR_NEGINT: mt_num_set_negint(v, it.u); return true;
	default: return mt_cbor_fail(d, MT_ERR_CBOR_TYPE);
	}
}

static bool get_u32(struct mt_cbor_dec *d, uint32_t *v)
{
	uint64_t u;
	if (!mt_cbor_get_uint(d, &u))
		return false;
	if (u > UINT32_MAX)
		return mt_cbor_fail(d, MT_ERR_CBOR_RANGE);
	*v = (uint32_t)u;
	return true;
}

static enum mt_err dec_obs(struct mt_cbor_dec *d, struct mt_obs *o, const char **why)
{
	uint64_t n, places;
	memset(o, 0, sizeof(*o));
	if (!mt_cbor_get_array(d, &n))
		return bad(why, "observation is not an array");
	if (n != 4 && n != 5 && n != 6)
		return bad(why, "observation array of the wrong length");
	if (!get_int(d, &o->t) || !get_u32(d, &o->code))
		return bad(why, "observation time or code malformed");
	if (n == 6) {
		uint64_t sn;
		o->waveform = true;
		if (!get_u32(d, &o->unit) || !mt_cbor_get_uint(d, &o->period_us) ||
		    !get_num(d, &o->scale) || !mt_cbor_get_bstr(d, &o->samples, &o->samples_len))
			return bad(why, "waveform fields malformed");
		size_t count;
		if (mt_waveform_decode(o->samples, o->samples_len, NULL, 0, &count) != MT_OK)
			return bad(why, "waveform samples malformed");
		sn = count;
		o->n_samples = (uint32_t)sn;
	} else {
		if (!get_num(d, &o->value) || !get_u32(d, &o->unit))
			return bad(why, "observation value or unit malformed");
		if (n == 5) {
			if (!mt_cbor_get_uint(d, &places) || places > 6)
				return bad(why, "observation places malformed or above 6");
			o->has_places = true;
			o->places = (uint8_t)places;
		}
	}
	return check_obs(o, why);
}

/* Decode a small map of uint keys 1..max_key, calling `field` for each. */
static enum mt_err dec_st(struct mt_cbor_dec *d, struct mt_message *m, const char **why)
{
	uint64_t pairs, k;
	if (!mt_cbor_get_map(d, &pairs) || pairs < 1)
		return bad(why, "status is not a non-empty map");
	for (uint64_t i = 0; i < pairs; i++) {
		if (!mt_cbor_get_uint(d, &k))
			return bad(why, "status key unknown");
		bool ok;
		switch (k) {
		case 1: ok = mt_cbor_get_uint(d, &m->st.battery); m->st.has |= MT_ST_BATTERY; break;
		case 2: ok = mt_cbor_get_tstr(d, &m->st.fw, &m->st.fw_len); m->st.has |= MT_ST_FW; break;
		case 3: ok = mt_cbor_get_uint(d, &m->st.queue); m->st.has |= MT_ST_QUEUE; break;
		case 4: ok = mt_cbor_get_uint(d, &m->st.uptime); m->st.has |= MT_ST_UPTIME; break;
		case 5: ok = get_int(d, &m->st.rssi); m->st.has |= MT_ST_RSSI; break;
		default: return bad(why, "status key unknown");
		}
		if (!ok)
			return bad(why, "status entry of the wrong type");
	}
	return MT_OK;
}

/* `ack` and `alrt` share one shape: {1: uint (required), 2: uint
 * (required), 3: tstr (optional)}; `words` names them in refusals. */
struct triple_words {
	const char *not_map, *unknown, *wrong_type, *lacks;
};

static enum mt_err dec_triple(struct mt_cbor_dec *d, uint64_t *one, uint64_t *two,
                              const char **text, size_t *text_len,
                              const struct triple_words *w, const char **why)
{
	uint64_t pairs, k;
	unsigned seen = 0;
	if (!mt_cbor_get_map(d, &pairs))
		return bad(why, w->not_map);
	for (uint64_t i = 0; i < pairs; i++) {
		if (!mt_cbor_get_uint(d, &k))
			return bad(why, w->unknown);
		bool ok;
		switch (k) {
		case 1: ok = mt_cbor_get_uint(d, one); break;
		case 2: ok = mt_cbor_get_uint(d, two); break;
		case 3: ok = mt_cbor_get_tstr(d, text, text_len); break;
		default: return bad(why, w->unknown);
		}
		if (!ok)
			return bad(why, w->wrong_type);
		seen |= K(k);
	}
	if ((seen & (K(1) | K(2))) != (K(1) | K(2)))
		return bad(why, w->lacks);
	return MT_OK;
}

static const struct triple_words ack_words = {
	"ack is not a map", "ack key unknown", "ack entry of the wrong type",
	"ack lacks ctr or result"};
static const struct triple_words alrt_words = {
	"alert is not a map", "alert key unknown", "alert entry of the wrong type",
	"alert lacks code or prio"};

enum mt_err mt_message_decode(const uint8_t *buf, size_t len, struct mt_message *m,
                              struct mt_obs *obs, size_t obs_cap, const char **why)
{
	memset(m, 0, sizeof(*m));
	enum mt_err err = mt_cbor_validate(buf, len, NULL, 0);
	if (err != MT_OK)
		return bad(why, mt_err_str(err));

	struct mt_cbor_dec d;
	uint64_t pairs, key;
	unsigned seen = 0;
	mt_cbor_dec_init(&d, buf, len);
	if (!mt_cbor_get_map(&d, &pairs))
		return bad(why, "message is not a map");
	for (uint64_t i = 0; i < pairs; i++) {
		if (!mt_cbor_get_uint(&d, &key) || key < 1 || key > 8)
			return bad(why, "unknown key in message");
		seen |= K(key);
		switch (key) {
		case 1: {
			const char *p;
			size_t n;
			if (!mt_cbor_get_tstr(&d, &p, &n) || !mt_device_id_valid(p, n))
				return bad(why, "device id malformed");
			memcpy(m->dev, p, n);
			m->dev[n] = '\0';
			m->dev_len = n;
			break;
		}
		case 2:
			if (!mt_cbor_get_uint(&d, &m->ctr) || m->ctr >= MAX_CTR)
				return bad(why, "counter malformed or not below 2^63");
			break;
		case 3:
			if (!mt_cbor_get_uint(&d, &m->ts) || m->ts >= MAX_TS)
				return bad(why, "timestamp malformed or not below 2^53");
			break;
		case 4:
			if (!mt_cbor_get_uint(&d, &m->typ) || m->typ < 1 || m->typ > 4)
				return bad(why, "typ malformed or unknown");
			break;
		case 5: {
			uint64_t n;
			if (!mt_cbor_get_array(&d, &n) || n < 1 || n > MT_OBS_MAX)
				return bad(why, "observations not an array of 1..1024");
			if (n > obs_cap)
				return bad(why, "more observations than the caller can hold");
			for (uint64_t j = 0; j < n; j++) {
				err = dec_obs(&d, &obs[j], why);
				if (err != MT_OK)
					return err;
			}
			m->obs = obs;
			m->n_obs = (size_t)n;
			m->has |= MT_MSG_OBS;
			break;
		}
		case 6:
			err = dec_st(&d, m, why);
			m->has |= MT_MSG_ST;
			break;
		case 7:
			err = dec_triple(&d, &m->ack.ctr, &m->ack.result, &m->ack.detail,
			                 &m->ack.detail_len, &ack_words, why);
			m->has |= MT_MSG_ACK;
			break;
		case 8:
			err = dec_triple(&d, &m->alrt.code, &m->alrt.prio, &m->alrt.text,
			                 &m->alrt.text_len, &alrt_words, why);
			m->has |= MT_MSG_ALRT;
			break;
		}
		if (err != MT_OK)
			return err;
	}
	if (mt_cbor_dec_finish(&d) != MT_OK)
		return bad(why, mt_err_str(mt_cbor_dec_finish(&d)));
	if ((seen & (K(1) | K(2) | K(3) | K(4))) != (K(1) | K(2) | K(3) | K(4)))
		return bad(why, "dev, ctr, ts or typ missing");
	return mt_message_check(m, why);
}

/* ---- plausibility (clinical.md §1) -------------------------------------- */

struct quantity {
	uint32_t code, unit;
	bool waveform;
	double min, max;
};

static const struct quantity quantities[] = {
	{147842, 264864, false, 0, 350},      /* MDC_ECG_HEART_RATE, /min */
	{149530, 264864, false, 0, 350},      /* MDC_PULS_OXIM_PULS_RATE, /min */
	{150456, 262688, false, 0, 100},      /* MDC_PULS_OXIM_SAT_O2, % */
	{150021, 266016, false, 0, 400},      /* NIBP systolic, mmHg */
	{150022, 266016, false, 0, 400},      /* NIBP diastolic, mmHg */
	{150023, 266016, false, 0, 400},      /* NIBP mean, mmHg */
	{150364, 268192, false, 20.0, 45.0},  /* MDC_TEMP_BODY, °C */
	{151562, 264928, false, 0, 150},      /* MDC_RESP_RATE, /min */
	{160184, 264274, false, 0, 2000},     /* capillary glucose, mg/dL */
	{8532992, 262656, false, 0, 100},     /* inhaler doses dispensed (project bound) */
	{131330, 266418, true, 0, 0},         /* ECG lead II waveform, mV */
};

enum mt_err mt_message_plausible(const struct mt_message *m, const char **why)
{
	for (size_t i = 0; i < m->n_obs; i++) {
		const struct mt_obs *o = &m->obs[i];
		const struct quantity *q = NULL;
		for (size_t k = 0; k < sizeof(quantities) / sizeof(quantities[0]); k++)
			if (quantities[k].code == o->code)
				q = &quantities[k];
		if (q == NULL) {
			if (why)
				*why = "unknown MDC code";
			return MT_ERR_PKT_IMPLAUSIBLE;
		}
		if (q->unit != o->unit || q->waveform != o->waveform) {
			if (why)
				*why = q->unit != o->unit ? "unit does not belong to the code"
				                          : "scalar/waveform form does not fit the code";
			return MT_ERR_PKT_IMPLAUSIBLE;
		}
		if (!o->waveform) {
			double v = mt_num_to_double(&o->value);
			if (!(v >= q->min && v <= q->max)) {
				if (why)
					*why = "value outside the plausible range";
				return MT_ERR_PKT_IMPLAUSIBLE;
			}
		}
	}
	return MT_OK;
}
