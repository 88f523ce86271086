/*
 * make_seeds.c — writes the seed corpora of the fuzz harnesses
 * (fuzz/corpus/<harness>/), `make seeds`.
 *
 *   make_seeds DIR        writes DIR/fuzz_packet_open/..., DIR/fuzz_packet_inner/...
 *
 * A fuzzer finds deep paths fastest from inputs that already reach them, so
 * most seeds are real objects made by the library from the fixed world of
 * fuzz_common.h: messages of every `typ` (vitals with six observations,
 * a waveform, an alert, a status, an acknowledgement, an implausible
 * reading), sealed ES256 and EdDSA packets of each, fast packets, packets
 * of the previous, a refused and a future epoch, and receipts; the worked
 * packets of shared/vectors/mtp1 are copied in as hex.  The rest are
 * hand-made edge cases of strict CBOR and of the schema — each one a rule of
 * protocol.md ("Strict CBOR", §4, §5) on its boundary: indefinite lengths,
 * non-shortest heads and floats, NaN, duplicate and unordered keys, nesting
 * of 8 and 9, maps of 16 and 17, lengths larger than the input, 1,024 and
 * 1,025 observations, texts of 256 and 257 bytes.
 *
 * ES256 signatures are randomised, so regenerating changes those files'
 * bytes (not their meaning); everything else is reproducible (fixed IVs).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <sys/stat.h>

#include <medtrust/mt_command.h>
#include <medtrust/mt_json.h>

#include "fuzz_common.h"

static const char *g_root;
static unsigned g_written;

static void mkdir_p(const char *path)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
}

static void put(const char *harness, const char *name, const uint8_t *data, size_t len)
{
	char path[1024];
	int n = snprintf(path, sizeof path, "%s/%s", g_root, harness);
	if (n < 0 || (size_t)n >= sizeof path)
		exit(1);
	mkdir_p(path);
	n = snprintf(path, sizeof path, "%s/%s/%s", g_root, harness, name);
	if (n < 0 || (size_t)n >= sizeof path)
		exit(1);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	g_written++;
}

static void put_hex(const char *harness, const char *name, const char *hex)
{
	static uint8_t buf[FZ_BUF];
	put(harness, name, buf, fz_unhex(hex, buf, sizeof buf));
}

static void check(enum mt_err e, const char *what)
{
	if (e != MT_OK)
		fz_die(what, e);
}

/* --- messages ----------------------------------------------------------- */

#define TS UINT64_C(1733222400000)

static struct mt_obs scalar(int64_t t, uint32_t code, uint32_t unit, double v, bool is_float,
                            int places)
{
	struct mt_obs o;
	memset(&o, 0, sizeof o);
	mt_num_set_int(&o.t, t);
	o.code = code;
	o.unit = unit;
	if (is_float)
		mt_num_set_float(&o.value, v);
	else
		mt_num_set_int(&o.value, (int64_t)v);
	if (places >= 0) {
		o.has_places = true;
		o.places = (uint8_t)places;
	}
	return o;
}

static void base(struct mt_message *m, uint64_t ctr, uint64_t typ)
{
	memset(m, 0, sizeof *m);
	memcpy(m->dev, FZ_DEV, strlen(FZ_DEV) + 1);
	m->dev_len = strlen(FZ_DEV);
	m->ctr = ctr;
	m->ts = TS;
	m->typ = typ;
}

struct msgset {
	const char *name;
	struct mt_message m;
	bool fast_ok; /* typ 2 */
};

static struct mt_obs g_vitals[6], g_wave[2], g_alert_obs[1], g_bad[1];
static uint8_t g_wave_bytes[256];

static size_t build_messages(struct msgset *s)
{
	size_t n = 0;
	/* Six vital signs of one bedside reading (clinical.md §1). */
	g_vitals[0] = scalar(0, 147842, 264864, 72, false, -1);      /* heart rate */
	g_vitals[1] = scalar(0, 150456, 262688, 97.0, true, 0);      /* SpO2 */
	g_vitals[2] = scalar(-1500, 150021, 266016, 121, false, -1); /* NIBP sys */
	g_vitals[3] = scalar(-1500, 150022, 266016, 79, false, -1);  /* NIBP dia */
	g_vitals[4] = scalar(-2000, 150364, 268192, 36.65, true, 2); /* temperature */
	g_vitals[5] = scalar(0, 151562, 264928, 16, false, -1);      /* resp. rate */
	s[n].name = "vitals6";
	base(&s[n].m, 42, MT_TYP_VITALS);
	s[n].m.has = MT_MSG_OBS;
	s[n].m.obs = g_vitals;
	s[n].m.n_obs = 6;
	n++;

	/* ECG lead II, 2 ms period, 5 µV per unit. */
	static const int32_t ecg[] = {0, 12, 40, 180, 900, 260, -120,  -40,
	                              0, 5,  1,  0,   64,  -64, 100000};
	size_t wl = 0;
	check(mt_waveform_encode(ecg, sizeof ecg / sizeof ecg[0], g_wave_bytes, sizeof g_wave_bytes,
	                         &wl),
	      "mt_waveform_encode");
	memset(&g_wave[0], 0, sizeof g_wave[0]);
	g_wave[0].waveform = true;
	mt_num_set_int(&g_wave[0].t, -30);
	g_wave[0].code = 131330;
	g_wave[0].unit = 266418;
	g_wave[0].period_us = 2000;
	mt_num_set_float(&g_wave[0].scale, 0.005);
	g_wave[0].samples = g_wave_bytes;
	g_wave[0].samples_len = wl;
	g_wave[0].n_samples = (uint32_t)(sizeof ecg / sizeof ecg[0]);
	g_wave[1] = scalar(0, 147842, 264864, 71, false, -1);
	s[n].name = "waveform";
	base(&s[n].m, 43, MT_TYP_VITALS);
	s[n].m.has = MT_MSG_OBS;
	s[n].m.obs = g_wave;
	s[n].m.n_obs = 2;
	n++;

	g_alert_obs[0] = scalar(0, 150456, 262688, 84, false, -1);
	s[n].name = "alert";
	base(&s[n].m, 44, MT_TYP_ALERT);
	s[n].m.has = MT_MSG_OBS | MT_MSG_ALRT;
	s[n].m.obs = g_alert_obs;
	s[n].m.n_obs = 1;
	s[n].m.alrt.code = 1001;
	s[n].m.alrt.prio = 3;
	s[n].m.alrt.text = "SpO2 low";
	s[n].m.alrt.text_len = 8;
	s[n].fast_ok = true;
	n++;

	s[n].name = "alert-bare";
	base(&s[n].m, 45, MT_TYP_ALERT);
	s[n].m.has = MT_MSG_ALRT;
	s[n].m.alrt.code = 2;
	s[n].m.alrt.prio = 1;
	s[n].fast_ok = true;
	n++;

	s[n].name = "status";
	base(&s[n].m, 46, MT_TYP_STATUS);
	s[n].m.has = MT_MSG_ST;
	s[n].m.st.has = MT_ST_BATTERY | MT_ST_FW | MT_ST_QUEUE | MT_ST_UPTIME | MT_ST_RSSI;
	s[n].m.st.battery = 87;
	s[n].m.st.fw = "2.4.1";
	s[n].m.st.fw_len = 5;
	s[n].m.st.queue = 3;
	s[n].m.st.uptime = 86400;
	mt_num_set_int(&s[n].m.st.rssi, -67);
	n++;

	s[n].name = "ack";
	base(&s[n].m, 47, MT_TYP_ACK);
	s[n].m.has = MT_MSG_ACK;
	s[n].m.ack.ctr = 9;
	s[n].m.ack.result = 0;
	s[n].m.ack.detail = "applied";
	s[n].m.ack.detail_len = 7;
	n++;

	g_bad[0] = scalar(0, 147842, 264864, 400, false, -1); /* heart rate 400: implausible */
	s[n].name = "implausible";
	base(&s[n].m, 48, MT_TYP_VITALS);
	s[n].m.has = MT_MSG_OBS;
	s[n].m.obs = g_bad;
	s[n].m.n_obs = 1;
	n++;
	return n;
}

/* --- hand-made edge cases -------------------------------------------------- */

/* Strict-CBOR rules on their boundaries (protocol "Strict CBOR"). */
static const struct {
	const char *name, *hex;
} cbor_edges[] = {
        {"empty", ""},
        {"uint0", "00"},
        {"uint-max", "1bffffffffffffffff"},
        {"negint-min", "3bffffffffffffffff"},
        {"head-not-shortest", "1817"},
        {"head-not-shortest-64", "1b0000000000000001"},
        {"reserved-ai", "1c"},
        {"lone-break", "ff"},
        {"indef-array", "9f0102ff"},
        {"indef-bstr", "5f4101ff"},
        {"indef-map", "bf0101ff"},
        {"trailing", "0000"},
        {"bstr-len-huge", "5bffffffffffffffff00"},
        {"array-count-huge", "9bffffffffffffffff"},
        {"map-count-huge", "bb7fffffffffffffff"},
        {"tstr-truncated", "6461"},
        {"utf8-invalid", "62c328"},
        {"utf8-overlong", "62c0af"},
        {"utf8-surrogate", "63eda080"},
        {"utf8-ok", "63e282ac"},
        {"f16-one", "f93c00"},
        {"f32-one-not-shortest", "fa3f800000"},
        {"f64-one-not-shortest", "fb3ff0000000000000"},
        {"f16-nan", "f97e00"},
        {"f16-inf", "f97c00"},
        {"f64-nan", "fb7ff8000000000000"},
        {"f16-65504", "f97bff"},
        {"f32-65504-not-shortest", "fa477fe000"},
        {"f16-subnormal", "f90001"},
        {"f64-0.1", "fb3fb999999999999a"},
        {"simple-false", "f4"},
        {"simple-true", "f5"},
        {"simple-null", "f6"},
        {"simple-undefined", "f7"},
        {"simple-16", "f0"},
        {"simple-1byte", "f820"},
        {"map-dup-key", "a201010101"},
        {"map-unordered", "a202010101"},
        {"map-int-then-tstr", "a20101616102"},
        {"map-tstr-len-order", "a261620162616102"},
        {"map-key-array", "a18000"},
        {"map-key-float", "a1f93c0000"},
        {"depth-8", "8181818181818180"},
        {"depth-9", "818181818181818180"},
        /* Found by fuzz_cbor_validate: validate and skip once disagreed on
	 * whether an item inside 8 containers (arrays or tags) is too deep. */
        {"regress-depth-8-arrays-item", "818181818181818100"},
        {"regress-depth-8-tags-item", "d0d0d0d0d0d0d2d001"},
        {"map-16", "b000000101020203030404050506060707080809090a0a0b0b0c0c0d0d0e0e0f0f"},
        {"map-17", "b100000101020203030404050506060707080809090a0a0b0b0c0c0d0d0e0e0f0f1010"},
        {"tag-16", "d08340a040"},
        {"tag-18", "d28440a04040"},
        {"tag-1", "c11a5f5e1000"},
        {"tag-55799", "d9d9f700"},
        {"tag-truncated", "d0"},
        {"tag-tag", "d0d280"},
        {"bignum", "c249010000000000000000"},
};

/* Schema edges of protocol §5 (each otherwise valid). */
static const struct {
	const char *name, *hex;
} msg_edges[] = {
        /* {1: "dev-1", 2: 0, 3: 0, 4: 1, 5: [[0, 147842, 72, 264864]]}: the smallest vitals */
        {"min-vitals", "a501656465762d31020003000401058184001a0002418218481a00040aa0"},
        /* each of the following breaks one rule of §5 in it */
        {"unknown-key", "a601656465762d31020003000401058184001a0002418218481a00040aa00900"},
        {"obs-empty", "a501656465762d310200030004010580"},
        {"typ3-with-obs", "a501656465762d31020003000403058184001a0002418218481a00040aa0"},
        {"dev-bad-char", "a501652d64657631020003000401058184001a0002418218481a00040aa0"},
        {"ctr-2-63",
         "a501656465762d31021b800000000000000003000401058184001a0002418218481a00040aa0"},
        {"ts-2-53", "a501656465762d310200031b00200000000000000401058184001a0002418218481a00040aa0"},
        {"t-positive", "a501656465762d31020003000401058184011a0002418218481a00040aa0"},
        {"places-7", "a501656465762d31020003000401058185001a0002418218481a00040aa007"},
        {"float-not-shortest",
         "a501656465762d31020003000401058184001a00024182fa429000001a00040aa0"},
        /* `int` fields over the whole CBOR range (valid), and t above 0 (not) */
        {"t-neg-2-64",
         "a501656465762d310200030004010581843bffffffffffffffff1a0002418218481a00040aa0"},
        {"t-neg-2-63-minus-1",
         "a501656465762d310200030004010581843b80000000000000001a0002418218481a00040aa0"},
        {"t-2-64-minus-1",
         "a501656465762d310200030004010581841bffffffffffffffff1a0002418218481a00040aa0"},
        {"t-float", "a501656465762d31020003000401058184f9bc001a0002418218481a00040aa0"},
        {"rssi-2-63", "a501656465762d3102000300040306a1051b8000000000000000"},
        {"rssi-neg-2-64", "a501656465762d3102000300040306a1053bffffffffffffffff"},
        {"rssi-float", "a501656465762d3102000300040306a105f9d380"},
        /* the vectors' messages */
        {"vector-message",
         "a501656465762d3102182a031b0000019ac8798b000401058384001a00024bb818611a00"
         "040220843901f31a00024b5cfb40424ccccccccccd1a000417a0843901f31a00024b5c"
         "f950901a000417a0"},
        {"vector-alert", "a601656465762d3102182b031b0000019ac8798b000402058184001a00024bb818541a00"
                         "04022008a3011903e90203036853704f32206c6f77"},
};

static const char *json_seeds[][2] = {
        {"vitals",
         "{\"dev\": \"dev-1\", \"ctr\": 42, \"ts\": 1733222400000, \"typ\": 1, \"obs\": "
         "[[0, 147842, 72, 264864], [0, 150456, 97.0, 262688, 0], [-1500, 150021, 121, 266016], "
         "[-1500, 150022, 79, 266016], [-2000, 150364, 36.65, 268192, 2], [0, 151562, 16, "
         "264928]]}"},
        {"waveform",
         "{\"dev\": \"dev-1\", \"ctr\": 43, \"ts\": 1733222400000, \"typ\": 1, \"obs\": "
         "[[-30, 131330, 266418, 2000, 0.005, [0, 12, 40, 180, 900, 260, -120, -40, 0, 1, 0, 64, "
         "-64, 100000, -2147483648, 2147483647]]]}"},
        {"alert",
         "{\"dev\": \"dev-1\", \"ctr\": 44, \"ts\": 1733222400000, \"typ\": 2, \"obs\": "
         "[[0, 150456, 84, 262688]], \"alrt\": {\"code\": 1001, \"prio\": 3, \"text\": \"SpO2 "
         "low\"}}"},
        {"status",
         "{\"dev\": \"dev-1\", \"ctr\": 46, \"ts\": 1733222400000, \"typ\": 3, \"st\": "
         "{\"battery\": 87, \"fw\": \"2.4.1\", \"queue\": 3, \"uptime\": 86400, \"rssi\": -67}}"},
        {"ack",
         "{\"dev\": \"dev-1\", \"ctr\": 47, \"ts\": 1733222400000, \"typ\": 4, \"ack\": {\"ctr\": "
         "9, \"result\": 0, \"detail\": \"applied\"}}"},
        {"floats",
         "{\"dev\": \"dev-1\", \"ctr\": 9223372036854775807, \"ts\": 9007199254740991, \"typ\": "
         "1, \"obs\": [[-9223372036854775808, 150364, 1e1, 268192], [0, 150364, -0.0, 268192], "
         "[0, 150364, 2.2250738585072014e-308, 268192], [0, 150364, 65504.0, 268192], [0, "
         "150364, 1.5E-7, 268192, 6]]}"},
        {"unicode", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 2, \"alrt\": {\"code\": "
                    "1, \"prio\": 2, \"text\": \"\\u00e9\\ud83d\\ude00 \\\"q\\\" \\\\ \\/\"}}"},
        {"dup-name", "{\"dev\": \"dev-1\", \"dev\": \"dev-2\", \"ctr\": 1, \"ts\": 1, \"typ\": 2, "
                     "\"alrt\": {\"code\": 1, \"prio\": 2}}"},
        {"unknown-name", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, \"st\": "
                         "{\"battery\": 5, \"colour\": 1}}"},
        {"int-too-big",
         "{\"dev\": \"dev-1\", \"ctr\": 18446744073709551615, \"ts\": 1, \"typ\": 3, "
         "\"st\": {\"queue\": 0}}"},
        {"not-json", "{\"dev\": \"dev-1\", "},
        {"empty", ""},
        {"array", "[]"},
        {"nul-inside", "{\"dev\": \"dev\\u0000-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, \"st\": "
                       "{\"queue\": 0}}"},
        /* integers over the whole CBOR range, −2^64 .. 2^64 − 1, and just outside */
        {"u64-status", "{\"dev\": \"dev-1\", \"ctr\": 80, \"ts\": 1733222400000, \"typ\": 3, "
                       "\"st\": {\"queue\": 18446744073709551615, \"uptime\": "
                       "9223372036854775808, \"rssi\": -18446744073709551616}}"},
        {"u64-ack", "{\"dev\": \"dev-1\", \"ctr\": 92, \"ts\": 1733222400000, \"typ\": 4, "
                    "\"ack\": {\"ctr\": 18446744073709551615, \"result\": 9223372036854775808}}"},
        {"u64-alert", "{\"dev\": \"dev-1\", \"ctr\": 94, \"ts\": 1, \"typ\": 2, \"obs\": "
                      "[[-18446744073709551616, 150456, -18446744073709551616, 262688]], "
                      "\"alrt\": {\"code\": 18446744073709551615, \"prio\": 3}}"},
        {"u64-waveform", "{\"dev\": \"dev-1\", \"ctr\": 93, \"ts\": 1, \"typ\": 1, \"obs\": "
                         "[[-9223372036854775809, 131330, 266418, 18446744073709551615, "
                         "18446744073709551615, [1, 2]]]}"},
        {"int-2-64", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, \"st\": "
                     "{\"queue\": 18446744073709551616}}"},
        {"int-neg-2-64-minus-1", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, "
                                 "\"st\": {\"rssi\": -18446744073709551617}}"},
        {"numbers", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 1, \"obs\": "
                    "[[-0, 150456, -0, 262688], [0, 150456, 1E+2, 262688], [0, 150456, "
                    "0.5e-3, 262688], [0, 150456, 5e-324, 262688], [0, 150456, 1e300, 262688]]}"},
        {"float-overflow", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 1, \"obs\": "
                           "[[0, 150456, 1e400, 262688]]}"},
        {"leading-zero", "{\"dev\": \"dev-1\", \"ctr\": 01, \"ts\": 1, \"typ\": 3, \"st\": "
                         "{\"queue\": 0}}"},
        /* strings: every escape, surrogate pairs, lone surrogates, bad UTF-8 */
        {"escapes", "{\"d\\u0065v\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 2, \"alrt\": "
                    "{\"code\": 1, \"prio\": 2, \"text\": \"\\\" \\\\ \\/ \\b\\f\\n\\r\\t "
                    "\\u0000\\u001F\\u007f\\u00E9\\u20ac\\uD83D\\uDE00\\udbff\\udfff \xc3\xa9\"}}"},
        {"lone-surrogate", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 2, \"alrt\": "
                           "{\"code\": 1, \"prio\": 2, \"text\": \"\\ud83d\\u0041\"}}"},
        {"bad-utf8", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 2, \"alrt\": "
                     "{\"code\": 1, \"prio\": 2, \"text\": \"\xed\xa0\x80\"}}"},
        {"dup-escaped-name", "{\"dev\": \"dev-1\", \"d\\u0065v\": \"dev-2\", \"ctr\": 1, "
                             "\"ts\": 1, \"typ\": 3, \"st\": {\"queue\": 0}}"},
        {"deep", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 1, \"obs\": "
                 "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"},
        {"trailing", "{\"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1, \"typ\": 3, \"st\": "
                     "{\"queue\": 0}} {}"},
};

/* --- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	static uint8_t msgbuf[FZ_BUF], pkt[FZ_BUF], buf[FZ_BUF], scratch[FZ_BUF];
	static struct msgset set[16];
	static struct mt_obs many[MT_OBS_MAX + 1];
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 64;
	}
	g_root = argv[1];
	mkdir_p(g_root);

	struct fz_world *w = fz_world();
	size_t nset = build_messages(set);
	uint8_t iv[MT_AEAD_IV_LEN] = {0};
	char name[128];

	for (size_t i = 0; i < nset; i++) {
		size_t ml = 0, pl = 0;
		check(mt_message_encode(&set[i].m, msgbuf, sizeof msgbuf, &ml), set[i].name);
		snprintf(name, sizeof name, "msg-%s", set[i].name);
		put("fuzz_message_decode", name, msgbuf, ml);
		put("fuzz_cbor_validate", name, msgbuf, ml);

		/* Plaintexts behind the AEAD: the message as a fast packet would carry
		 * it, and asked to be signed by either key (fuzz_packet_inner modes). */
		put("fuzz_packet_inner", name, msgbuf, ml);
		buf[0] = 0xff;
		memcpy(buf + 1, msgbuf, ml);
		snprintf(name, sizeof name, "sign-es256-%s", set[i].name);
		put("fuzz_packet_inner", name, buf, ml + 1);
		buf[0] = 0xfe;
		snprintf(name, sizeof name, "sign-eddsa-%s", set[i].name);
		put("fuzz_packet_inner", name, buf, ml + 1);
		for (int k = FZ_P256; k <= FZ_ED25519; k++) {
			size_t sl = fz_sign1(w, k, msgbuf, ml, buf, sizeof buf, scratch,
			                     sizeof scratch);
			snprintf(name, sizeof name, "sign1-%s-%s", k == FZ_P256 ? "es256" : "eddsa",
			         set[i].name);
			put("fuzz_packet_inner", name, buf, sl);
			put("fuzz_cbor_validate", name, buf, sl);
		}

		/* Whole packets, sealed by the library. */
		for (int k = FZ_P256; k <= FZ_ED25519; k++) {
			iv[0] = (uint8_t)(i * 4 + (size_t)k);
			struct mt_seal_params sp = {
			        .dev = FZ_DEV,
			        .dev_len = strlen(FZ_DEV),
			        .epoch = FZ_EPOCH,
			        .data_key = w->key7,
			        .ldev = w->ldev[k],
			        .iv = iv,
			        .aead = w->aead,
			};
			check(mt_packet_seal(&sp, &set[i].m, pkt, sizeof pkt, &pl),
			      "mt_packet_seal");
			snprintf(name, sizeof name, "sealed-%s-%s",
			         k == FZ_P256 ? "es256" : "eddsa", set[i].name);
			put("fuzz_packet_open", name, pkt, pl);
			put("fuzz_cbor_validate", name, pkt, pl);
		}
		if (set[i].fast_ok) {
			iv[0] = (uint8_t)(i * 4 + 2);
			struct mt_seal_params sp = {
			        .dev = FZ_DEV,
			        .dev_len = strlen(FZ_DEV),
			        .epoch = FZ_EPOCH,
			        .data_key = w->key7,
			        .fast = true,
			        .iv = iv,
			        .aead = w->aead,
			};
			check(mt_packet_seal(&sp, &set[i].m, pkt, sizeof pkt, &pl),
			      "mt_packet_seal fast");
			snprintf(name, sizeof name, "fast-%s", set[i].name);
			put("fuzz_packet_open", name, pkt, pl);
		}
	}

	/* Epochs: the previous one (accepted), older and future ones (refused). */
	{
		size_t ml = 0, pl = 0;
		check(mt_message_encode(&set[0].m, msgbuf, sizeof msgbuf, &ml), "encode");
		size_t sl =
		        fz_sign1(w, FZ_P256, msgbuf, ml, buf, sizeof buf, scratch, sizeof scratch);
		iv[0] = 0xe6;
		pl = fz_seal_raw(w, w->key6, FZ_EPOCH - 1, iv, "", buf, sl, pkt, sizeof pkt);
		put("fuzz_packet_open", "epoch-previous", pkt, pl);
		pl = fz_seal_raw(w, w->key7, FZ_EPOCH - 2, iv, "", buf, sl, pkt, sizeof pkt);
		put("fuzz_packet_open", "epoch-too-old", pkt, pl);
		pl = fz_seal_raw(w, w->key7, FZ_EPOCH + 1, iv, "", buf, sl, pkt, sizeof pkt);
		put("fuzz_packet_open", "epoch-future", pkt, pl);
		/* A sealed packet with one ciphertext byte flipped: stage 5. */
		pl = fz_seal_raw(w, w->key7, FZ_EPOCH, iv, "", buf, sl, pkt, sizeof pkt);
		pkt[pl / 2] ^= 0x01;
		put("fuzz_packet_open", "aead-flipped", pkt, pl);
	}

	/* Receipts under the receipt key. */
	{
		static uint64_t ranges[3][2] = {{0, 41}, {43, 43}, {100, 1123}};
		struct mt_receipt rc = {
		        .dev = FZ_DEV,
		        .dev_len = strlen(FZ_DEV),
		        .ranges = ranges,
		        .n_ranges = 3,
		        .ts = TS,
		};
		size_t pl = 0;
		iv[0] = 0x77;
		check(mt_receipt_seal(w->aead, w->rkey7, FZ_EPOCH, iv, &rc, pkt, sizeof pkt, &pl),
		      "mt_receipt_seal");
		put("fuzz_packet_open", "receipt", pkt, pl);
		put("fuzz_cbor_validate", "receipt", pkt, pl);
		put("fuzz_receipt_open", "receipt", pkt, pl);
		/* The receipt's plaintext, for the harness to seal (first byte
		 * 0xff): mutations then reach the receipt decoder. */
		{
			static const uint8_t plain[] = {
			        0xff, 0xa3, 0x01, 0x65, 'd', 'e', 'v', '-', '1', 0x02, 0x83, 0x82,
			        0x00, 0x18, 0x29, 0x82, 0x18, 0x2b, 0x18, 0x2b, 0x82, 0x18, 0x64,
			        0x19, 0x04, 0x63, 0x03, 0x1b, 0x00, 0x00, 0x01, 0x93, 0x8a, 0x1c,
			        0xe4, 0x00};
			put("fuzz_receipt_open", "receipt-plain", plain, sizeof plain);
		}
		pkt[pl / 2] ^= 0x20;
		put("fuzz_receipt_open", "receipt-flipped", pkt, pl);
	}

	/* The worked vectors (shared/vectors/mtp1/vectors.json). */
	put_hex("fuzz_packet_open", "vector-sealed-eddsa",
	        "d08343a10103a2044400000007054c000102030405060708090a0b58b43ef1c6ae5705575c14014cf3"
	        "d88ec95b58bcdbde12bb1ad4b96a7b0feace1bd8e43945bec30282ef65eb30bc74fc18cf98e5230d7"
	        "b9443356a94a588fcb347b3c389cfcd6c8c34662284f87a3a22ff56da1071b03765443403598ab92f"
	        "7098bc0a87692916f10dbeab6e79a674bac3522d959bf3e17c21969d992886fb86a6211287998b220"
	        "ab0d759d5066676e1145a19f4350a1a9e249a8f16d1451123850d54ac34f147c579872a5007ccb005"
	        "7e94319a6edc");
	put_hex("fuzz_packet_open", "vector-fast",
	        "d08343a10103a2044400000007054c000102030405060708090a0b58494a74e06b3354db695e5fccfd"
	        "3950451f2b2cedf013da7cb44ec34a17f2e6537bfc6d5e240f7929e7c2eb2c3c19fe01ccf2fdeb5a28"
	        "ae2f5e1fce939c0182347de4ec51921e1cd3edb0");
	/* Commands (protocol §6): a rotate-epoch and a reboot signed with the
	 * world's P-256 key (the harness's command key), one for another
	 * device, and payloads for the harness to sign (first byte 0xff). */
	{
		struct mt_command cmd;
		uint8_t cbuf[512];
		size_t cl = 0;

		memset(&cmd, 0, sizeof cmd);
		memcpy(cmd.dev, FZ_DEV, strlen(FZ_DEV));
		cmd.dev_len = strlen(FZ_DEV);
		cmd.ctr = 6;
		cmd.ts = UINT64_C(1733222400000);
		cmd.cmd = MT_CMD_ROTATE_EPOCH;
		cmd.new_epoch = FZ_EPOCH + 1;
		check(mt_command_sign(w->ldev[FZ_P256], &cmd, cbuf, sizeof cbuf, &cl),
		      "mt_command_sign");
		put("fuzz_command", "rotate", cbuf, cl);
		cmd.cmd = MT_CMD_REBOOT;
		check(mt_command_sign(w->ldev[FZ_P256], &cmd, cbuf, sizeof cbuf, &cl),
		      "mt_command_sign");
		put("fuzz_command", "reboot", cbuf, cl);
		memcpy(cmd.dev, "dev-2", 5);
		cmd.cmd = MT_CMD_ROTATE_EPOCH;
		check(mt_command_sign(w->ldev[FZ_P256], &cmd, cbuf, sizeof cbuf, &cl),
		      "mt_command_sign");
		put("fuzz_command", "other-device", cbuf, cl);
		cbuf[0] = 0xff;
		memcpy(cmd.dev, FZ_DEV, strlen(FZ_DEV));
		check(mt_command_encode(&cmd, cbuf + 1, sizeof cbuf - 1, &cl), "mt_command_encode");
		put("fuzz_command", "rotate-payload", cbuf, cl + 1);
	}
	/* {1: "dev-1", 2: 7, 3: ts, 4: 1 set-config, 5: {1: {"a": 1}}} */
	put_hex("fuzz_command", "set-config-payload",
	        "ffa501656465762d310207031b000001938c1b0000040105a101a1616101");
	put_hex("fuzz_receipt_open", "vector-receipt",
	        "d08343a10103a2044400000007054c000102030405060708090a0b582d39c332128b070ea66e42574e"
	        "c70b6ea57244d865d9115b72121eee7fa3f052d04570bdcd263b8a84364c84105f");
	put_hex("fuzz_packet_open", "vector-receipt",
	        "d08343a10103a2044400000007054c000102030405060708090a0b582d39c332128b070ea66e42574e"
	        "c70b6ea57244d865d9115b72121eee7fa3f052d04570bdcd263b8a84364c84105f");
	/* Header edges: wrong outer tag, untagged, short IV, extra label. */
	put_hex("fuzz_packet_open", "edge-tag-17",
	        "d18343a10103a2044400000007054c000102030405060708090a0b50000102030405060708090a0b0c"
	        "0d0e0f");
	put_hex("fuzz_packet_open", "edge-untagged",
	        "8343a10103a2044400000007054c000102030405060708090a0b50000102030405060708090a0b0c0d"
	        "0e0f");
	put_hex("fuzz_packet_open", "edge-iv-11",
	        "d08343a10103a2044400000007054b000102030405060708091050505152535455565758595a5b5c5d"
	        "5e5f");
	put_hex("fuzz_packet_open", "edge-extra-label",
	        "d08343a10103a3044400000007054c000102030405060708090a0b0600500001020304050607080910"
	        "1112131415");
	put_hex("fuzz_packet_open", "edge-empty", "");

	for (size_t i = 0; i < sizeof cbor_edges / sizeof cbor_edges[0]; i++) {
		snprintf(name, sizeof name, "edge-%s", cbor_edges[i].name);
		put_hex("fuzz_cbor_validate", name, cbor_edges[i].hex);
	}
	for (size_t i = 0; i < sizeof msg_edges / sizeof msg_edges[0]; i++) {
		snprintf(name, sizeof name, "edge-%s", msg_edges[i].name);
		put_hex("fuzz_message_decode", name, msg_edges[i].hex);
		put_hex("fuzz_packet_inner", name, msg_edges[i].hex);
	}

	/* Bounds that need bulk: 1,024 and 1,025 observations, texts of 256/257. */
	for (size_t i = 0; i <= MT_OBS_MAX; i++)
		many[i] = scalar(-(int64_t)i, 151562, 264928, (double)(12 + i % 20), false, -1);
	{
		struct mt_message m;
		size_t ml = 0, n = 0;
		base(&m, 7, MT_TYP_VITALS);
		m.has = MT_MSG_OBS;
		m.obs = many;
		m.n_obs = MT_OBS_MAX;
		check(mt_message_encode(&m, msgbuf, sizeof msgbuf, &ml), "encode 1024 obs");
		put("fuzz_message_decode", "edge-obs-1024", msgbuf, ml);
		/* 1,025: patch the array head 0x99 0x0400 → 0x0401 and append one more. */
		for (n = 0; n + 2 < ml; n++)
			if (msgbuf[n] == 0x05 && msgbuf[n + 1] == 0x99 && msgbuf[n + 2] == 0x04 &&
			    msgbuf[n + 3] == 0x00)
				break;
		if (n + 2 < ml) {
			msgbuf[n + 3] = 0x01;
			static const uint8_t extra[] = {0x84, 0x00, 0x1a, 0x00, 0x02, 0x50, 0x0a,
			                                0x10, 0x1a, 0x00, 0x04, 0x0b, 0x20};
			memcpy(msgbuf + ml, extra, sizeof extra);
			put("fuzz_message_decode", "edge-obs-1025", msgbuf, ml + sizeof extra);
		}

		static char text[MT_TEXT_MAX + 1];
		memset(text, 'x', sizeof text);
		base(&m, 8, MT_TYP_ALERT);
		m.has = MT_MSG_ALRT;
		m.alrt.code = 1;
		m.alrt.prio = 2;
		m.alrt.text = text;
		m.alrt.text_len = MT_TEXT_MAX;
		check(mt_message_encode(&m, msgbuf, sizeof msgbuf, &ml), "encode text 256");
		put("fuzz_message_decode", "edge-text-256", msgbuf, ml);
		/* 257: the text head 0x79 0x0100 becomes 0x0101, one more byte at the end. */
		for (n = 0; n + 3 < ml; n++)
			if (msgbuf[n] == 0x79 && msgbuf[n + 1] == 0x01 && msgbuf[n + 2] == 0x00)
				break;
		if (n + 3 < ml && n + 3 + MT_TEXT_MAX == ml) {
			msgbuf[n + 2] = 0x01;
			msgbuf[ml] = 'x';
			put("fuzz_message_decode", "edge-text-257", msgbuf, ml + 1);
		}
	}

	for (size_t i = 0; i < sizeof json_seeds / sizeof json_seeds[0]; i++)
		put("fuzz_json_message", json_seeds[i][0], (const uint8_t *)json_seeds[i][1],
		    strlen(json_seeds[i][1]));

	printf("make_seeds: %u files under %s\n", g_written, g_root);
	return 0;
}
