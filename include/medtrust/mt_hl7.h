/*
 * mt_hl7.h — HL7 v2.6 messages of IHE PCD-01 (observations, ORU^R01) and
 * PCD-04 (alerts, ORU^R40), their acknowledgements, and MLLP framing
 * (clinical.md §4; docs/hl7.md; threats G05, G10).
 *
 * Everything here works on byte buffers and does no I/O: the hub's sender
 * (src/hub/hl7out.c) and the `medtrust hl7 listen` receiver own the
 * sockets.  That keeps the encoder and both parsers testable and fuzzable
 * (fuzz/fuzz_hl7_ack.c).
 *
 * Building.  The caller fills plain structs (nothing from the store) and
 * gets one malloc'ed, NUL-terminated message back: segments end with CR,
 * separators are `|^~\&`, at most MT_HL7_MSG_MAX bytes.  Every text the
 * caller gives (names, MRN, ids, REFIDs, alarm text) is escaped as §4 says:
 * `\` → `\E\` first, then `|` `^` `~` `&` → `\F\ \S\ \R\ \T\`, then CR, LF,
 * 0x0B, 0x1C → `\X0D\ \X0A\ \X0B\ \X1C\`.  Any other control character
 * (below 0x20, or 0x7F) and invalid UTF-8 are refused with
 * MT_ERR_HL7_TEXT, never dropped: a value can therefore never split a
 * field, a segment or an MLLP frame.  Numbers are printed with exactly
 * the metric's `places` decimals in the C locale (36.50 stays "36.50");
 * NaN and infinities are refused (MT_ERR_HL7_VALUE).  Times are UTC,
 * `YYYYMMDDHHMMSS+0000`.
 *
 * Decisions (docs/hl7.md explains them):
 *  - medtrust keeps one name string per patient; PID-5 is `family^given`
 *    split at the last space ("Ada King Lovelace" → `Lovelace^Ada King`),
 *    a name without a space is the family name alone.
 *  - The device OBX (`1.0.0.0`) is the MDS 69965
 *    MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS, OBX-11 `X`, OBX-18 `<device
 *    id>^<manufacturer>` (the manufacturer is the namespace of the serial;
 *    the model is not written).
 *  - PCD-04 facets are `1.0.0.1.k`; facet 2 (source) is left out when the
 *    alert has no source metric (a technical alert such as "device
 *    offline"); the others are always present.  Inactivation is `enabled`,
 *    or `alert-acknowledged` once a person acknowledged it.
 *
 * Parsing.  mt_hl7_parse_header() and mt_hl7_parse_ack() read a received
 * message: segments may end with CR, LF or CRLF; anything else is strict
 * (MSH first with `|` and `^~\&`, three-letter segment names, known
 * escapes only, at most MT_HL7_PARSE_MAX bytes, never a read past `len`).
 *
 * MLLP.  struct mt_mllp_reader takes bytes as they come and hands out whole
 * frames 0x0B … 0x1C 0x0D.  Between frames only CR, LF, space and tab are
 * skipped; any other byte there, a 0x0B inside a frame or a 0x1C not
 * followed by 0x0D is MT_ERR_HL7_FRAME, and a frame growing past its cap
 * is MT_ERR_HL7_TOO_LARGE; after either the connection must be dropped
 * (the reader stays in error).
 *
 * Thread safety: no globals; every function may run in parallel on
 * different objects.
 */
#ifndef MT_HL7_H
#define MT_HL7_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"

#define MT_HL7_MSG_MAX 65536         /* bytes of a message built here */
#define MT_HL7_PARSE_MAX 65536       /* bytes of a message parsed here */
#define MT_HL7_FRAME_MAX 1048576     /* default MLLP frame cap */
#define MT_HL7_ID_MAX 199            /* MSH-10 / MSA-2 (ST, v2.6) */
#define MT_HL7_TEXT_MAX 255          /* MSA-3 kept, cut at a character */
#define MT_HL7_METRICS_MAX 64        /* metrics in one PCD-01 message */
#define MT_HL7_PLACES_MAX 6

/* The MSH of a message. */
struct mt_hl7_msh {
	const char *app;           /* MSH-3, e.g. "MEDTRUST"; required */
	const char *facility;      /* MSH-4; may be NULL */
	const char *recv_app;      /* MSH-5; may be NULL */
	const char *recv_facility; /* MSH-6; may be NULL */
	uint64_t time_ms;          /* MSH-7, ms since the epoch */
	const char *control_id;    /* MSH-10, 1..MT_HL7_ID_MAX bytes; the caller keeps
	                            * it unique and the same on every resend */
};

/* PID and PV1.  Every field may be NULL except mrn and name. */
struct mt_hl7_patient {
	const char *mrn;        /* PID-3.1 */
	const char *authority;  /* PID-3.4, e.g. the hospital id */
	const char *name;       /* one string; PID-5 = family^given (last space) */
	const char *birth_date; /* "YYYY-MM-DD" → PID-7 YYYYMMDD */
	const char *sex;        /* "male" "female" "other" "unknown" → PID-8 M F O U */
	const char *ward, *room, *bed; /* PV1-3 ward^room^bed; PV1-2 is `I` */
};

/* The device behind the data (OBX-18). */
struct mt_hl7_device {
	const char *id;           /* required */
	const char *manufacturer; /* may be NULL */
	const char *model;        /* may be NULL; not written (see above) */
};

/* One numeric observation. */
struct mt_hl7_metric {
	uint32_t code;          /* MDC code (clinical §1) */
	const char *refid;      /* NULL: mt_hl7_mdc_refid(code), "" when unknown */
	double value;           /* finite, |value| < 1e15 */
	unsigned places;        /* decimals printed, 0..MT_HL7_PLACES_MAX */
	uint32_t unit_code;     /* MDC unit code */
	const char *unit_refid; /* NULL: mt_hl7_mdc_unit_refid(unit_code) */
	const char *flag;       /* NULL, "", "N", "L", "LL", "H" or "HH" (OBX-8) */
	bool episodic;          /* NIBP: OBX-14 = the observation time */
};

/* A PCD-01 observation set. */
struct mt_hl7_observation {
	uint64_t time_ms; /* OBR-7 */
	const struct mt_hl7_metric *metrics;
	size_t n_metrics; /* 1..MT_HL7_METRICS_MAX */
};

enum mt_hl7_phase { MT_HL7_PHASE_START, MT_HL7_PHASE_CONTINUE, MT_HL7_PHASE_END };
enum mt_hl7_state { MT_HL7_STATE_ACTIVE, MT_HL7_STATE_INACTIVE, MT_HL7_STATE_LATCHED };
enum mt_hl7_prio { MT_HL7_PRIO_HIGH, MT_HL7_PRIO_MEDIUM, MT_HL7_PRIO_LOW, MT_HL7_PRIO_NONE };
enum mt_hl7_alert_type {
	MT_HL7_TYPE_PHYSIO,   /* SP */
	MT_HL7_TYPE_TECH,     /* ST */
	MT_HL7_TYPE_ADVISORY, /* SA */
};

/* One alert transition (PCD-04). */
struct mt_hl7_alert {
	const char *alert_id;     /* OBR-29: constant across the alert's updates */
	uint64_t time_ms;         /* OBR-7 and OBX-14 of the facets */
	uint32_t event_code;      /* facet 1, OBX-5 code */
	const char *event_name;   /* its text, e.g. "MDC_EVT_LO" or a medtrust name */
	const char *event_system; /* NULL: "MDC"; a medtrust code: "MEDTRUST" */
	const char *text;         /* human text (CWE-9 of facet 1); may be NULL */
	bool has_source;          /* facet 2 written only when set */
	struct mt_hl7_metric source;
	bool has_limits;          /* OBX-7 "low-high" of facet 2 (source places) */
	double low, high;
	enum mt_hl7_phase phase;
	enum mt_hl7_state state;
	bool acknowledged;        /* inactivation: alert-acknowledged, else enabled */
	enum mt_hl7_prio prio;
	enum mt_hl7_alert_type type;
};

/* Build a PCD-01 ORU^R01 (patient and device required) or a PCD-04
 * ORU^R40 (patient and device may be NULL).  *out is malloc'ed and
 * NUL-terminated (the caller frees it), *len its length.  Errors:
 * MT_ERR_ARG (a NULL where one is required), MT_ERR_HL7_TEXT (a control
 * character or invalid UTF-8 in a text), MT_ERR_HL7_VALUE (a value not
 * finite or out of range, places over 6, a bad flag, birth date or sex,
 * an empty required field), MT_ERR_HL7_TOO_LARGE, MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_hl7_build_pcd01(const struct mt_hl7_msh *msh,
                                            const struct mt_hl7_patient *pat,
                                            const struct mt_hl7_device *dev,
                                            const struct mt_hl7_observation *obs, char **out,
                                            size_t *len);
MT_NODISCARD enum mt_err mt_hl7_build_pcd04(const struct mt_hl7_msh *msh,
                                            const struct mt_hl7_patient *pat,
                                            const struct mt_hl7_device *dev,
                                            const struct mt_hl7_alert *alert, char **out,
                                            size_t *len);

/* Escape text[0..n) as §4 into out[0..cap) (NUL-terminated; *olen without
 * the NUL).  Errors: MT_ERR_HL7_TEXT, MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_hl7_escape(const char *text, size_t n, char *out, size_t cap,
                                       size_t *olen);

/* Print `v` with `places` decimals ("-0" never: it prints as "0").
 * Errors: MT_ERR_HL7_VALUE, MT_ERR_BUFFER. */
MT_NODISCARD enum mt_err mt_hl7_format_value(double v, unsigned places, char *out, size_t cap);

/* UTC `YYYYMMDDHHMMSS+0000` of ms since the epoch (out: 20 bytes). */
MT_NODISCARD enum mt_err mt_hl7_format_time(uint64_t ms, char *out, size_t cap);

/* The MDC REFID of a code of clinical §1 (NULL when unknown); the REFID of
 * an MDC unit code (NULL when unknown); the unit a quantity is sent in (0
 * when unknown); its default display precision (0, 1 for temperature). */
const char *mt_hl7_mdc_refid(uint32_t code);
const char *mt_hl7_mdc_unit_refid(uint32_t unit_code);
uint32_t mt_hl7_mdc_unit(uint32_t code);
unsigned mt_hl7_mdc_places(uint32_t code);

/* What a parser keeps of a received MSH, unescaped, NUL-terminated (a
 * field longer than its buffer is MT_ERR_HL7_SYNTAX, except text). */
struct mt_hl7_header {
	char app[MT_HL7_ID_MAX + 1];           /* MSH-3.1 */
	char facility[MT_HL7_ID_MAX + 1];      /* MSH-4.1 */
	char type[16];                         /* MSH-9.1, e.g. "ORU" */
	char trigger[16];                      /* MSH-9.2, e.g. "R01" */
	char control_id[MT_HL7_ID_MAX + 1];    /* MSH-10 */
	char version[16];                      /* MSH-12 */
	char profile_oid[MT_HL7_ID_MAX + 1];   /* MSH-21.3 (first repetition) */
};

enum mt_hl7_ack_code { MT_HL7_ACK_ACCEPT, MT_HL7_ACK_ERROR, MT_HL7_ACK_REJECT };

struct mt_hl7_ack {
	enum mt_hl7_ack_code code;            /* AA/CA, AE/CE, AR/CR */
	char code_text[3];                    /* as received: "AA", "CE", ... */
	char control_id[MT_HL7_ID_MAX + 1];   /* MSA-2 */
	char text[MT_HL7_TEXT_MAX + 1];       /* MSA-3, valid UTF-8, no control chars */
	struct mt_hl7_header msh;
};

/* Parse the MSH of msg[0..len).  Errors: MT_ERR_HL7_SYNTAX,
 * MT_ERR_HL7_TOO_LARGE (len over MT_HL7_PARSE_MAX), MT_ERR_ARG. */
MT_NODISCARD enum mt_err mt_hl7_parse_header(const uint8_t *msg, size_t len,
                                             struct mt_hl7_header *h);

/* Parse an acknowledgement: MSH (MSH-9.1 `ACK`), then exactly one MSA with
 * a known MSA-1 and a non-empty MSA-2.  The caller still compares
 * control_id with what it sent.  Errors: those of mt_hl7_parse_header. */
MT_NODISCARD enum mt_err mt_hl7_parse_ack(const uint8_t *msg, size_t len, struct mt_hl7_ack *a);

/* Build the ACK answering `in`: MSH-3/4 = app/facility given, MSH-5/6 =
 * in's app/facility, MSH-9 `ACK^<in trigger>^ACK`, MSH-10 = ack_control_id,
 * MSH-11/12 `P`/`2.6`, no MSH-21; MSA = code ("AA", "AE", "AR", "CA", "CE"
 * or "CR"), in->control_id, text (may be NULL).  Errors: those of the
 * builders. */
MT_NODISCARD enum mt_err mt_hl7_build_ack(const struct mt_hl7_header *in, const char *app,
                                          const char *facility, uint64_t time_ms,
                                          const char *ack_control_id, const char *code,
                                          const char *text, char **out, size_t *len);

/* Whether an MSH-21 universal id names the PCD-04 (ACM) profile: the IHE
 * PCD root 1.3.6.1.4.1.19376.1 followed by exactly .6.1.4.1, .6.4.4 or
 * .6.4.4.1 (what §4 accepts on input). */
bool mt_hl7_profile_is_pcd04(const char *oid);

/* The incremental MLLP reader.  Owns a buffer that grows up to `max`. */
struct mt_mllp_reader {
	uint8_t *buf;
	size_t len, cap, max;
	bool in_frame, saw_end, failed;
};

/* max 0: MT_HL7_FRAME_MAX. */
void mt_mllp_init(struct mt_mllp_reader *r, size_t max);
void mt_mllp_free(struct mt_mllp_reader *r);
/* Drop any partial frame and the error state (a new connection). */
void mt_mllp_reset(struct mt_mllp_reader *r);

/* Take in[0..n): *used says how many bytes were consumed.  When a frame is
 * complete it stops there and sets *frame and *frame_len to its content
 * (without 0x0B and 0x1C 0x0D), valid until the next call; otherwise
 * *frame is NULL and all n bytes were used.  Call again with the rest.
 * Errors: MT_ERR_HL7_FRAME, MT_ERR_HL7_TOO_LARGE, MT_ERR_NOMEM (then the
 * reader refuses everything until mt_mllp_reset). */
MT_NODISCARD enum mt_err mt_mllp_feed(struct mt_mllp_reader *r, const uint8_t *in, size_t n,
                                      size_t *used, const uint8_t **frame, size_t *frame_len);

/* Wrap msg[0..len) in an MLLP frame: malloc'ed *out of len + 3 bytes.
 * Errors: MT_ERR_HL7_TOO_LARGE (len over MT_HL7_FRAME_MAX), MT_ERR_NOMEM. */
MT_NODISCARD enum mt_err mt_mllp_wrap(const char *msg, size_t len, uint8_t **out,
                                      size_t *out_len);

#endif
