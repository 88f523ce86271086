/*
 * test_hl7.c — the HL7 v2 encoder, the ACK parser and the MLLP reader
 * (mt_hl7.h; clinical.md §4; threats G05, G10).
 *
 * Escaping: every delimiter, CR/LF/0x0B/0x1C, backslash first; control
 * characters and invalid UTF-8 refused.  Field positions are checked by
 * splitting the built message, never by comparing whole strings, so that a
 * misplaced `|` shows as the field it moved.  ACKs: good, garbage,
 * truncated, unknown code, two MSAs.  MLLP: split feeds, two frames in one
 * feed, no end block, oversize, garbage between frames.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "medtrust/mt_hl7.h"

/* Field n (HL7 numbering) of the first segment named seg, into out. */
static void field(const char *msg, const char *seg, unsigned occurrence, unsigned n, char *out,
                  size_t cap)
{
	const char *p = msg;
	unsigned k = 0;

	for (;;) {
		const char *end = strchr(p, '\r');

		assert_non_null(end);
		if (strncmp(p, seg, 3) == 0 && p[3] == '|' && k++ == occurrence) {
			unsigned idx = strcmp(seg, "MSH") == 0 ? n - 1 : n;
			const char *f = p;

			for (unsigned i = 0; i < idx && f < end; i++) {
				f = memchr(f, '|', (size_t)(end - f));
				if (!f) {
					out[0] = '\0';
					return;
				}
				f++;
			}
			const char *fe = memchr(f, '|', (size_t)(end - f));
			size_t len = (size_t)((fe ? fe : end) - f);

			assert_true(len < cap);
			memcpy(out, f, len);
			out[len] = '\0';
			return;
		}
		p = end + 1;
		if (!*p)
			break;
	}
	fail_msg("segment %s #%u not found", seg, occurrence);
}

static const struct mt_hl7_msh msh = {"MEDTRUST", "HOSP1", "EHR", "HOSP1", 1733222400123ull,
                                      "MEDTRUST-42"};
static struct mt_hl7_patient pat = {"MRN1", "HOSP1", "Ada King Lovelace", "1980-02-29",
                                    "female", "ICU", "12", "B"};
static const struct mt_hl7_device dev = {"mon-1", NULL, NULL};

static char *pcd01(const struct mt_hl7_metric *m, size_t n, enum mt_err want)
{
	struct mt_hl7_observation obs = {1733222399000ull, m, n};
	char *msg = NULL;
	size_t len = 0;

	assert_int_equal(mt_hl7_build_pcd01(&msh, &pat, &dev, &obs, &msg, &len), want);
	if (want == MT_OK) {
		assert_int_equal(strlen(msg), len);
		assert_int_equal(msg[len - 1], '\r');
		assert_null(strchr(msg, '\n'));
	}
	return msg;
}

static void test_escape(void **state)
{
	char out[256];
	size_t n;
	const char in[] = "a\\b|c^d~e&f\rg\nh\x0bi\x1cj";

	(void)state;
	assert_int_equal(mt_hl7_escape(in, strlen(in), out, sizeof out, &n), MT_OK);
	assert_string_equal(out, "a\\E\\b\\F\\c\\S\\d\\R\\e\\T\\f\\X0D\\g\\X0A\\h\\X0B\\i\\X1C\\j");
	assert_int_equal(n, strlen(out));
	/* backslash first: an escape sequence in the input is not kept as one */
	assert_int_equal(mt_hl7_escape("\\F\\", 3, out, sizeof out, &n), MT_OK);
	assert_string_equal(out, "\\E\\F\\E\\");
	/* UTF-8 passes */
	assert_int_equal(mt_hl7_escape("Zoë 😀", strlen("Zoë 😀"), out, sizeof out, &n), MT_OK);
	assert_string_equal(out, "Zoë 😀");
	/* other control characters and invalid UTF-8 are refused */
	static const char *const bad[] = {"a\tb", "\x01", "a\x7f", "\x1b[31m", "\xc3",
	                                  "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(mt_hl7_escape(bad[i], strlen(bad[i]), out, sizeof out, &n),
		                 MT_ERR_HL7_TEXT);
	assert_int_equal(mt_hl7_escape("a\0b", 3, out, sizeof out, &n), MT_ERR_HL7_TEXT);
	assert_int_equal(mt_hl7_escape("||||", 4, out, 8, &n), MT_ERR_BUFFER);
}

static void test_msh_fields(void **state)
{
	struct mt_hl7_metric m = {150456, NULL, 97, 0, 262688, NULL, NULL, false};
	char *msg = pcd01(&m, 1, MT_OK);
	char f[256];

	(void)state;
	assert_memory_equal(msg, "MSH|^~\\&|", 9);
	field(msg, "MSH", 0, 3, f, sizeof f);
	assert_string_equal(f, "MEDTRUST");
	field(msg, "MSH", 0, 4, f, sizeof f);
	assert_string_equal(f, "HOSP1");
	field(msg, "MSH", 0, 7, f, sizeof f);
	assert_string_equal(f, "20241203104000+0000");
	field(msg, "MSH", 0, 9, f, sizeof f);
	assert_string_equal(f, "ORU^R01^ORU_R01");
	field(msg, "MSH", 0, 10, f, sizeof f);
	assert_string_equal(f, "MEDTRUST-42");
	field(msg, "MSH", 0, 11, f, sizeof f);
	assert_string_equal(f, "P");
	field(msg, "MSH", 0, 12, f, sizeof f);
	assert_string_equal(f, "2.6");
	field(msg, "MSH", 0, 15, f, sizeof f);
	assert_string_equal(f, "AL");
	field(msg, "MSH", 0, 16, f, sizeof f);
	assert_string_equal(f, "NE");
	field(msg, "MSH", 0, 21, f, sizeof f);
	assert_string_equal(f, "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO");
	field(msg, "MSH", 0, 22, f, sizeof f);
	assert_string_equal(f, "");
	/* PID, PV1, OBR */
	field(msg, "PID", 0, 3, f, sizeof f);
	assert_string_equal(f, "MRN1^^^HOSP1^MR");
	field(msg, "PID", 0, 5, f, sizeof f);
	assert_string_equal(f, "Lovelace^Ada King");
	field(msg, "PID", 0, 7, f, sizeof f);
	assert_string_equal(f, "19800229");
	field(msg, "PID", 0, 8, f, sizeof f);
	assert_string_equal(f, "F");
	field(msg, "PV1", 0, 2, f, sizeof f);
	assert_string_equal(f, "I");
	field(msg, "PV1", 0, 3, f, sizeof f);
	assert_string_equal(f, "ICU^12^B");
	field(msg, "OBR", 0, 3, f, sizeof f);
	assert_string_equal(f, "MEDTRUST-42^MEDTRUST");
	field(msg, "OBR", 0, 4, f, sizeof f);
	assert_string_equal(f, "182777000^monitoring of patient^SCT");
	field(msg, "OBR", 0, 7, f, sizeof f);
	assert_string_equal(f, "20241203103959+0000");
	free(msg);
}

static void test_patient_variants(void **state)
{
	struct mt_hl7_metric m = {150456, NULL, 97, 0, 262688, NULL, NULL, false};
	struct mt_hl7_patient saved = pat;
	char *msg, f[256];

	(void)state;
	pat.name = "Cher";
	pat.sex = "other";
	msg = pcd01(&m, 1, MT_OK);
	field(msg, "PID", 0, 5, f, sizeof f);
	assert_string_equal(f, "Cher");
	field(msg, "PID", 0, 8, f, sizeof f);
	assert_string_equal(f, "O");
	free(msg);
	pat.name = "O'Brien|^~\\&\rX Smith";
	msg = pcd01(&m, 1, MT_OK);
	field(msg, "PID", 0, 5, f, sizeof f);
	assert_string_equal(f, "Smith^O'Brien\\F\\\\S\\\\R\\\\E\\\\T\\\\X0D\\X");
	free(msg);
	pat.name = "Bad\x01Name";
	assert_null(pcd01(&m, 1, MT_ERR_HL7_TEXT));
	pat = saved;
	pat.birth_date = "1981-02-29"; /* not a leap year */
	assert_null(pcd01(&m, 1, MT_ERR_HL7_VALUE));
	pat = saved;
	pat.sex = "F";
	assert_null(pcd01(&m, 1, MT_ERR_HL7_VALUE));
	pat = saved;
	pat.mrn = "";
	assert_null(pcd01(&m, 1, MT_ERR_HL7_VALUE));
	pat = saved;
}

static void test_obx(void **state)
{
	struct mt_hl7_metric m[] = {
		{147842, NULL, 72, 0, 264864, NULL, "N", false},
		{150364, NULL, 36.5, 2, 268192, NULL, NULL, false},
		{150021, NULL, 98, 0, 266016, NULL, "HH", true},
		{150364, NULL, -0.001, 2, 268192, NULL, NULL, false},
		{99999, "MDC_X", 1.26, 1, 262656, NULL, NULL, false},
	};
	char *msg = pcd01(m, 5, MT_OK), f[256];

	(void)state;
	/* device OBX first */
	field(msg, "OBX", 0, 1, f, sizeof f);
	assert_string_equal(f, "1");
	field(msg, "OBX", 0, 4, f, sizeof f);
	assert_string_equal(f, "1.0.0.0");
	field(msg, "OBX", 0, 11, f, sizeof f);
	assert_string_equal(f, "X");
	field(msg, "OBX", 0, 18, f, sizeof f);
	assert_string_equal(f, "mon-1");
	for (unsigned i = 1; i <= 5; i++) {
		char want[32];

		snprintf(want, sizeof want, "1.0.0.%u", i);
		field(msg, "OBX", i, 4, f, sizeof f);
		assert_string_equal(f, want);
		field(msg, "OBX", i, 2, f, sizeof f);
		assert_string_equal(f, "NM");
		field(msg, "OBX", i, 11, f, sizeof f);
		assert_string_equal(f, "R");
	}
	field(msg, "OBX", 1, 3, f, sizeof f);
	assert_string_equal(f, "147842^MDC_ECG_HEART_RATE^MDC");
	field(msg, "OBX", 1, 5, f, sizeof f);
	assert_string_equal(f, "72");
	field(msg, "OBX", 1, 6, f, sizeof f);
	assert_string_equal(f, "264864^MDC_DIM_BEAT_PER_MIN^MDC");
	field(msg, "OBX", 1, 8, f, sizeof f);
	assert_string_equal(f, "N");
	field(msg, "OBX", 1, 14, f, sizeof f);
	assert_string_equal(f, "");
	field(msg, "OBX", 2, 5, f, sizeof f);
	assert_string_equal(f, "36.50");
	field(msg, "OBX", 3, 5, f, sizeof f);
	assert_string_equal(f, "98");
	field(msg, "OBX", 3, 8, f, sizeof f);
	assert_string_equal(f, "HH");
	field(msg, "OBX", 3, 14, f, sizeof f);
	assert_string_equal(f, "20241203103959+0000");
	field(msg, "OBX", 4, 5, f, sizeof f);
	assert_string_equal(f, "0.00");
	field(msg, "OBX", 5, 3, f, sizeof f);
	assert_string_equal(f, "99999^MDC_X^MDC");
	field(msg, "OBX", 5, 5, f, sizeof f);
	assert_string_equal(f, "1.3"); /* rounded to places */
	free(msg);
}

static void test_values_refused(void **state)
{
	struct mt_hl7_metric m = {150456, NULL, NAN, 0, 262688, NULL, NULL, false};
	char out[64];

	(void)state;
	assert_null(pcd01(&m, 1, MT_ERR_HL7_VALUE));
	m.value = INFINITY;
	assert_null(pcd01(&m, 1, MT_ERR_HL7_VALUE));
	m.value = -INFINITY;
	assert_null(pcd01(&m, 1, MT_ERR_HL7_VALUE));
	m.value = 1e308;
	assert_null(pcd01(&m, 1, MT_ERR_HL7_VALUE));
	m.value = 97;
	m.places = 7;
	assert_null(pcd01(&m, 1, MT_ERR_HL7_VALUE));
	m.places = 0;
	m.flag = "X";
	assert_null(pcd01(&m, 1, MT_ERR_HL7_VALUE));
	assert_null(pcd01(&m, 0, MT_ERR_HL7_VALUE));
	assert_int_equal(mt_hl7_format_value(-0.0, 1, out, sizeof out), MT_OK);
	assert_string_equal(out, "0.0");
	assert_int_equal(mt_hl7_format_value(123.456789, 6, out, sizeof out), MT_OK);
	assert_string_equal(out, "123.456789");
	assert_int_equal(mt_hl7_format_value(-5.5, 0, out, sizeof out), MT_OK);
	assert_string_equal(out, "-6");
}

static void test_pcd04(void **state)
{
	struct mt_hl7_alert a = {0};
	char *msg = NULL, f[256];
	size_t len = 0;

	(void)state;
	a.alert_id = "alert|7";
	a.time_ms = 1733222401000ull;
	a.event_code = 1001;
	a.event_name = "SPO2_LOW";
	a.event_system = "MEDTRUST";
	a.text = "SpO2 < 90";
	a.has_source = true;
	a.source = (struct mt_hl7_metric){150456, NULL, 85, 0, 262688, NULL, "L", false};
	a.has_limits = true;
	a.low = 90;
	a.high = 100;
	a.phase = MT_HL7_PHASE_CONTINUE;
	a.state = MT_HL7_STATE_LATCHED;
	a.acknowledged = true;
	a.prio = MT_HL7_PRIO_MEDIUM;
	a.type = MT_HL7_TYPE_TECH;
	assert_int_equal(mt_hl7_build_pcd04(&msh, NULL, &dev, &a, &msg, &len), MT_OK);
	assert_null(strstr(msg, "\rPID|"));
	field(msg, "MSH", 0, 9, f, sizeof f);
	assert_string_equal(f, "ORU^R40^ORU_R40");
	field(msg, "MSH", 0, 21, f, sizeof f);
	assert_string_equal(f, "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.4.1^ISO");
	field(msg, "OBR", 0, 4, f, sizeof f);
	assert_string_equal(f, "196616^MDC_EVT_ALARM^MDC");
	field(msg, "OBR", 0, 29, f, sizeof f);
	assert_string_equal(f, "alert\\F\\7");
	static const char *const want[7][3] = {
		{"196616^MDC_EVT_ALARM^MDC", "1.0.0.1.1", "1001^SPO2_LOW^MEDTRUST^^^^^^SpO2 < 90"},
		{"150456^MDC_PULS_OXIM_SAT_O2^MDC", "1.0.0.1.2", "85"},
		{"68481^MDC_ATTR_EVENT_PHASE^MDC", "1.0.0.1.3", "continue"},
		{"68482^MDC_ATTR_ALARM_STATE^MDC", "1.0.0.1.4", "latched"},
		{"68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC", "1.0.0.1.5", "alert-acknowledged"},
		{"68484^MDC_ATTR_ALARM_PRIORITY^MDC", "1.0.0.1.6", "PM"},
		{"68485^MDC_ATTR_ALERT_TYPE^MDC", "1.0.0.1.7", "ST"},
	};
	for (unsigned i = 0; i < 7; i++) {
		field(msg, "OBX", i, 3, f, sizeof f);
		assert_string_equal(f, want[i][0]);
		field(msg, "OBX", i, 4, f, sizeof f);
		assert_string_equal(f, want[i][1]);
		field(msg, "OBX", i, 5, f, sizeof f);
		assert_string_equal(f, want[i][2]);
		field(msg, "OBX", i, 11, f, sizeof f);
		assert_string_equal(f, "F");
	}
	field(msg, "OBX", 1, 7, f, sizeof f);
	assert_string_equal(f, "90-100");
	field(msg, "OBX", 1, 6, f, sizeof f);
	assert_string_equal(f, "262688^MDC_DIM_PERCENT^MDC");
	free(msg);
	/* without a source: facet 2 is left out, the others keep their numbers */
	a.has_source = false;
	assert_int_equal(mt_hl7_build_pcd04(&msh, &pat, NULL, &a, &msg, &len), MT_OK);
	field(msg, "OBX", 1, 4, f, sizeof f);
	assert_string_equal(f, "1.0.0.1.3");
	field(msg, "PID", 0, 3, f, sizeof f);
	assert_string_equal(f, "MRN1^^^HOSP1^MR");
	free(msg);
	a.alert_id = "";
	assert_int_equal(mt_hl7_build_pcd04(&msh, NULL, NULL, &a, &msg, &len), MT_ERR_HL7_VALUE);
}

static void test_too_large(void **state)
{
	struct mt_hl7_metric m = {150456, NULL, 97, 0, 262688, NULL, NULL, false};
	struct mt_hl7_patient saved = pat;
	char *big = malloc(70000);

	(void)state;
	memset(big, 'a', 69999);
	big[69999] = '\0';
	pat.name = big;
	assert_null(pcd01(&m, 1, MT_ERR_HL7_TOO_LARGE));
	pat = saved;
	free(big);
}

#define ACK(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

static void test_ack(void **state)
{
	struct mt_hl7_ack a;

	(void)state;
	assert_int_equal(mt_hl7_parse_ack(ACK("MSH|^~\\&|EHR|H|MEDTRUST|H|20241203||ACK^R01^ACK|"
	                                      "A1|P|2.6\rMSA|AA|MEDTRUST-42\r"), &a),
	                 MT_OK);
	assert_int_equal(a.code, MT_HL7_ACK_ACCEPT);
	assert_string_equal(a.control_id, "MEDTRUST-42");
	assert_string_equal(a.msh.app, "EHR");
	/* LF and CRLF ends, CE with text, escaped control id */
	assert_int_equal(mt_hl7_parse_ack(ACK("MSH|^~\\&|EHR||||||ACK|A1|P|2.6\r\nMSA|CE|X\\F\\1|"
	                                      "bad \\T\\ worse\x01\nERR|1\n"), &a),
	                 MT_OK);
	assert_int_equal(a.code, MT_HL7_ACK_ERROR);
	assert_string_equal(a.code_text, "CE");
	assert_string_equal(a.control_id, "X|1");
	assert_string_equal(a.text, "bad & worse?");
	assert_int_equal(mt_hl7_parse_ack(ACK("MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AR|c\r"), &a), MT_OK);
	assert_int_equal(a.code, MT_HL7_ACK_REJECT);
	/* refused */
	static const char *const bad[] = {
		"",
		"garbage",
		"MSH|^~\\&|E||||||ACK|1|P|2.6\r",                       /* no MSA */
		"MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA\r",                /* no MSA-2 */
		"MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|OK|c\r",              /* unknown code */
		"MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|c\rMSA|AA|d\r",    /* two MSAs */
		"MSH|^~\\&|E||||||ORU|1|P|2.6\rMSA|AA|c\r",              /* not an ACK */
		"MSH|#~\\&|E||||||ACK|1|P|2.6\rMSA|AA|c\r",              /* other delimiters */
		"MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|c\\Q\\\r",          /* unknown escape */
		"MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|c\\X0D\\\r",        /* CR in the id */
		"MSH|^~\\&|E||||||ACK|1|P|2.6\rmsa|AA|c\r",              /* bad segment name */
		"MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|c\rMSH|^~\\&|\r",   /* second MSH */
		"MSH|^~\\&|E||||||ACK||P|2.6\rMSA|AA|c\r",               /* no MSH-10 */
		"MSH|^~\\&|E||||||ACK|1|P|2.6\rMS",                     /* truncated */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(mt_hl7_parse_ack((const uint8_t *)bad[i], strlen(bad[i]), &a),
		                 MT_ERR_HL7_SYNTAX);
	assert_int_equal(mt_hl7_parse_ack(ACK("MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|c\0\r"), &a),
	                 MT_ERR_HL7_SYNTAX);
	/* every prefix of a good ACK is refused or parsed, never read past */
	{
		const char good[] = "MSH|^~\\&|EHR||||||ACK|A1|P|2.6\rMSA|AA|MEDTRUST-42|fine\r";

		for (size_t n = 0; n < sizeof good - 1; n++) {
			uint8_t *p = malloc(n ? n : 1);

			memcpy(p, good, n);
			enum mt_err e = mt_hl7_parse_ack(p, n, &a);

			assert_true(e == MT_OK || e == MT_ERR_HL7_SYNTAX);
			free(p);
		}
	}
}

static void test_ack_roundtrip(void **state)
{
	struct mt_hl7_header h;
	struct mt_hl7_ack a;
	char *msg = NULL, *ack = NULL;
	size_t len = 0, alen = 0;
	struct mt_hl7_msh m = msh;

	(void)state;
	m.control_id = "ctl|^&~\\1";
	struct mt_hl7_metric x = {150456, NULL, 97, 0, 262688, NULL, NULL, false};
	struct mt_hl7_observation obs = {1, &x, 1};
	assert_int_equal(mt_hl7_build_pcd01(&m, &pat, &dev, &obs, &msg, &len), MT_OK);
	assert_int_equal(mt_hl7_parse_header((const uint8_t *)msg, len, &h), MT_OK);
	assert_string_equal(h.control_id, "ctl|^&~\\1");
	assert_string_equal(h.type, "ORU");
	assert_string_equal(h.trigger, "R01");
	assert_string_equal(h.profile_oid, "1.3.6.1.4.1.19376.1.6.1.1.1");
	assert_false(mt_hl7_profile_is_pcd04(h.profile_oid));
	assert_int_equal(mt_hl7_build_ack(&h, "EHR", "H", 1, "A-1", "CA", "ok", &ack, &alen),
	                 MT_OK);
	assert_null(strstr(ack, "IHE"));
	assert_int_equal(mt_hl7_parse_ack((const uint8_t *)ack, alen, &a), MT_OK);
	assert_string_equal(a.control_id, "ctl|^&~\\1");
	assert_int_equal(a.code, MT_HL7_ACK_ACCEPT);
	assert_string_equal(a.msh.trigger, "R01");
	free(ack);
	assert_int_equal(mt_hl7_build_ack(&h, "EHR", "H", 1, "A-1", "XX", NULL, &ack, &alen),
	                 MT_ERR_HL7_VALUE);
	free(msg);
}

static void test_profile(void **state)
{
	(void)state;
	assert_true(mt_hl7_profile_is_pcd04("1.3.6.1.4.1.19376.1.6.1.4.1"));
	assert_true(mt_hl7_profile_is_pcd04("1.3.6.1.4.1.19376.1.6.4.4"));
	assert_true(mt_hl7_profile_is_pcd04("1.3.6.1.4.1.19376.1.6.4.4.1"));
	assert_false(mt_hl7_profile_is_pcd04("1.3.6.1.4.1.19376.1.6.1.1.1"));
	assert_false(mt_hl7_profile_is_pcd04("1.3.6.1.4.1")); /* ends with .6.1.4.1 too */
	assert_false(mt_hl7_profile_is_pcd04("9.9.6.1.4.1"));
	assert_false(mt_hl7_profile_is_pcd04("1.3.6.1.4.1.19376.1.6.4.4.1.2"));
	assert_false(mt_hl7_profile_is_pcd04(""));
	assert_false(mt_hl7_profile_is_pcd04(NULL));
}

static void test_mllp(void **state)
{
	struct mt_mllp_reader r;
	const uint8_t *fr;
	size_t used, flen;
	const uint8_t two[] = "\x0b" "AB\r" "\x1c\r" "\r\n" "\x0b" "CD\r" "\x1c\r";

	(void)state;
	mt_mllp_init(&r, 16);
	/* two frames in one feed */
	assert_int_equal(mt_mllp_feed(&r, two, sizeof two - 1, &used, &fr, &flen), MT_OK);
	assert_non_null(fr);
	assert_int_equal(flen, 3);
	assert_memory_equal(fr, "AB\r", 3);
	assert_int_equal(used, 6);
	size_t off = used;
	assert_int_equal(mt_mllp_feed(&r, two + off, sizeof two - 1 - off, &used, &fr, &flen), MT_OK);
	assert_non_null(fr);
	assert_memory_equal(fr, "CD\r", 3);
	assert_int_equal(off + used, sizeof two - 1);
	/* split feeds, one byte at a time */
	int frames = 0;
	for (size_t i = 0; i < sizeof two - 1; i++) {
		assert_int_equal(mt_mllp_feed(&r, two + i, 1, &used, &fr, &flen), MT_OK);
		assert_int_equal(used, 1);
		if (fr) {
			frames++;
			assert_int_equal(flen, 3);
		}
	}
	assert_int_equal(frames, 2);
	/* no end block: nothing comes out */
	assert_int_equal(mt_mllp_feed(&r, (const uint8_t *)"\x0bMSH|", 5, &used, &fr, &flen),
	                 MT_OK);
	assert_null(fr);
	assert_int_equal(used, 5);
	/* oversize */
	assert_int_equal(mt_mllp_feed(&r, (const uint8_t *)"0123456789abcdef", 16, &used, &fr,
	                              &flen),
	                 MT_ERR_HL7_TOO_LARGE);
	assert_int_equal(mt_mllp_feed(&r, two, 6, &used, &fr, &flen), MT_ERR_HL7_FRAME);
	mt_mllp_reset(&r);
	/* garbage outside a frame, 0x1C without CR, 0x0B inside a frame */
	assert_int_equal(mt_mllp_feed(&r, (const uint8_t *)"x\x0b", 2, &used, &fr, &flen),
	                 MT_ERR_HL7_FRAME);
	mt_mllp_reset(&r);
	assert_int_equal(mt_mllp_feed(&r, (const uint8_t *)"\x0b" "a\x1cx", 4, &used, &fr, &flen),
	                 MT_ERR_HL7_FRAME);
	mt_mllp_reset(&r);
	assert_int_equal(mt_mllp_feed(&r, (const uint8_t *)"\x0b" "a\x0b", 3, &used, &fr, &flen),
	                 MT_ERR_HL7_FRAME);
	mt_mllp_free(&r);
	/* wrap */
	uint8_t *w;
	size_t wl;
	assert_int_equal(mt_mllp_wrap("M\r", 2, &w, &wl), MT_OK);
	assert_int_equal(wl, 5);
	assert_memory_equal(w, "\x0bM\r\x1c\r", 5);
	free(w);
}

static void test_tables(void **state)
{
	(void)state;
	assert_string_equal(mt_hl7_mdc_refid(150456), "MDC_PULS_OXIM_SAT_O2");
	assert_string_equal(mt_hl7_mdc_refid(160184), "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD");
	assert_int_equal(mt_hl7_mdc_unit(150364), 268192);
	assert_string_equal(mt_hl7_mdc_unit_refid(264928), "MDC_DIM_RESP_PER_MIN");
	assert_int_equal(mt_hl7_mdc_places(150364), 1);
	assert_int_equal(mt_hl7_mdc_places(147842), 0);
	assert_null(mt_hl7_mdc_refid(1));
	assert_null(mt_hl7_mdc_unit_refid(1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),        cmocka_unit_test(test_msh_fields),
		cmocka_unit_test(test_patient_variants), cmocka_unit_test(test_obx),
		cmocka_unit_test(test_values_refused), cmocka_unit_test(test_pcd04),
		cmocka_unit_test(test_too_large),     cmocka_unit_test(test_ack),
		cmocka_unit_test(test_ack_roundtrip), cmocka_unit_test(test_profile),
		cmocka_unit_test(test_mllp),          cmocka_unit_test(test_tables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
