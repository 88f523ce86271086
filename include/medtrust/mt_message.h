/*
 * mt_message.h — the MTP/1 message (protocol §5): encode, decode, validate.
 *
 * A message is a CBOR map with integer keys 1..8; which keys a message must
 * and may have depends on its `typ`.  Decoding is strict: the bytes must be
 * strict CBOR (mt_cbor.h, no tags), every key known at every level, every
 * type and bound respected (device-id charset, text ≤ 256 bytes, 1..1024
 * observations, status entries, waveform sample encoding).  Whether values
 * are clinically plausible is a separate check, mt_message_plausible(),
 * because the protocol refuses those at a later stage (14) than the schema
 * (10).
 *
 * Memory: decoding allocates nothing.  Strings and waveform sample bytes
 * point into the input buffer; observations go into a caller array.  The
 * decoded message is valid as long as both live.
 *
 * Waveform samples travel as zigzag-LEB128 deltas (protocol §5);
 * mt_waveform_encode/decode convert between them and int32 samples.
 */
#ifndef MT_MESSAGE_H
#define MT_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"

#define MT_DEVICE_ID_MAX 64
#define MT_TEXT_MAX 256
#define MT_OBS_MAX 1024
#define MT_WAVE_MAX_SAMPLES 65536
#define MT_PACKET_MAX 65536

enum mt_typ {
	MT_TYP_VITALS = 1,
	MT_TYP_ALERT = 2,
	MT_TYP_STATUS = 3,
	MT_TYP_ACK = 4,
};

/* A CBOR number as carried: an unsigned int (u), a negative int (−1 − u), or
 * a finite float (f).  Kept exact so that integers round-trip whatever their
 * size: the protocol's `int` and `uint` are CBOR major types 0 and 1, so an
 * integer field holds anything from −2^64 to 2^64 − 1.  Fields the protocol
 * types `int` (observation t, st.rssi) use this struct restricted to the two
 * integer kinds; value and scale may be any kind. */
enum mt_num_kind { MT_NUM_UINT, MT_NUM_NEGINT, MT_NUM_FLOAT };
struct mt_num {
	enum mt_num_kind kind;
	uint64_t u; /* MT_NUM_UINT: the value; MT_NUM_NEGINT: −1 − value */
	double f;   /* MT_NUM_FLOAT: the value */
};
/* The value as a double (integers beyond 2^53 rounded). */
double mt_num_to_double(const struct mt_num *n);
/* Is `n` an integer (MT_NUM_UINT or MT_NUM_NEGINT)? */
bool mt_num_is_int(const struct mt_num *n);
/* The integer value when it fits int64: true and *v set; false for a float
 * or an integer outside int64 (*v untouched). */
bool mt_num_get_int64(const struct mt_num *n, int64_t *v);
/* Set from a signed integer, an unsigned integer, the CBOR argument of a
 * negative integer (value −1 − u, so UINT64_MAX is −2^64), or a double. */
void mt_num_set_int(struct mt_num *n, int64_t v);
void mt_num_set_uint(struct mt_num *n, uint64_t v);
void mt_num_set_negint(struct mt_num *n, uint64_t u);
void mt_num_set_float(struct mt_num *n, double v);

struct mt_obs {
	bool waveform;
	struct mt_num t; /* ms offset from the message ts, an integer ≤ 0:
	                    MT_NUM_UINT 0 or any MT_NUM_NEGINT (down to −2^64) */
	uint32_t code;  /* MDC code */
	uint32_t unit;  /* MDC unit code */
	/* scalar */
	struct mt_num value;
	bool has_places;
	uint8_t places; /* 0..6 */
	/* waveform */
	uint64_t period_us;       /* > 0 */
	struct mt_num scale;      /* finite, non-zero */
	const uint8_t *samples;   /* zigzag-LEB128 bytes */
	size_t samples_len;
	uint32_t n_samples;       /* 1..65536, filled by decode and by encode */
};

/* Presence bits for mt_message.has and mt_status.has */
#define MT_MSG_OBS (1u << 5)
#define MT_MSG_ST (1u << 6)
#define MT_MSG_ACK (1u << 7)
#define MT_MSG_ALRT (1u << 8)

#define MT_ST_BATTERY (1u << 1)
#define MT_ST_FW (1u << 2)
#define MT_ST_QUEUE (1u << 3)
#define MT_ST_UPTIME (1u << 4)
#define MT_ST_RSSI (1u << 5)

struct mt_message {
	char dev[MT_DEVICE_ID_MAX + 1]; /* NUL-terminated copy */
	size_t dev_len;
	uint64_t ctr; /* < 2^63 */
	uint64_t ts;  /* < 2^53, ms */
	uint64_t typ; /* enum mt_typ */
	unsigned has; /* MT_MSG_* for the optional groups */
	struct mt_obs *obs;
	size_t n_obs;
	struct {
		unsigned has; /* MT_ST_* */
		uint64_t battery; /* ≤ 100 */
		const char *fw;
		size_t fw_len;
		uint64_t queue;
		uint64_t uptime;
		struct mt_num rssi; /* dBm, any integer: MT_NUM_UINT or MT_NUM_NEGINT */
	} st;
	struct {
		uint64_t ctr;
		uint64_t result;
		const char *detail; /* NULL when absent */
		size_t detail_len;
	} ack;
	struct {
		uint64_t code;
		uint64_t prio; /* 1 low, 2 medium, 3 high */
		const char *text; /* NULL when absent */
		size_t text_len;
	} alrt;
};

/* Is `id` a valid device id: [A-Za-z0-9][A-Za-z0-9._-]{0,63}? */
bool mt_device_id_valid(const char *id, size_t len);

/* Check `m` against the schema of §5 (what the encoder would refuse).
 * MT_OK or MT_ERR_PKT_MESSAGE; `why` (may be NULL) gets a static reason. */
MT_NODISCARD enum mt_err mt_message_check(const struct mt_message *m, const char **why);

/* Encode `m` as deterministic CBOR into out[0..cap).  Validates first (as
 * mt_message_check); waveform observations must have samples/samples_len
 * already encoded (mt_waveform_encode).  Errors: MT_ERR_PKT_MESSAGE,
 * MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_message_encode(const struct mt_message *m, uint8_t *out,
                                           size_t cap, size_t *len);

/* Decode and validate.  `obs` is an array of obs_cap entries that receives
 * the observations (MT_OBS_MAX needed to accept every valid message).
 * Errors: MT_ERR_PKT_MESSAGE (with a static reason in *why when non-NULL). */
MT_NODISCARD enum mt_err mt_message_decode(const uint8_t *buf, size_t len,
                                           struct mt_message *m, struct mt_obs *obs,
                                           size_t obs_cap, const char **why);

/* When observation `o` of `m` was taken: m->ts + o->t (t ≤ 0, ms) into *t.
 * false when it cannot be placed: an offset that is not an integer ≤ 0
 * within int64, or one that reaches before the epoch. */
bool mt_message_obs_time(const struct mt_message *m, const struct mt_obs *o, uint64_t *t);

/* Clinical plausibility of every observation (clinical.md §1): known code,
 * the unit that belongs to it, value inside its range.  MT_OK or
 * MT_ERR_PKT_IMPLAUSIBLE with a reason. */
MT_NODISCARD enum mt_err mt_message_plausible(const struct mt_message *m, const char **why);

/* Encode int32 samples as zigzag-LEB128 deltas.  Needs at most 5 bytes a
 * sample... deltas of int32 fit 33 bits, so ≤ 5 bytes each. */
MT_NODISCARD enum mt_err mt_waveform_encode(const int32_t *samples, size_t n, uint8_t *out,
                                            size_t cap, size_t *len);
/* Decode into out[0..cap); *n receives the count.  With out == NULL only
 * validates and counts.  Refuses non-shortest varints, varints over 10
 * bytes, samples outside int32, more than 65,536 samples, empty input.
 * Errors: MT_ERR_PKT_MESSAGE, MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_waveform_decode(const uint8_t *in, size_t len, int32_t *out,
                                            size_t cap, size_t *n);

#endif
