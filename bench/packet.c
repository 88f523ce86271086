/*
 * packet.c — how close the hub's packet path comes to the cost of one
 * signature verification (`make bench`, build/bench/packet).
 *
 * FIELD-NOTES puts the hub's floor at one ECDSA P-256 verification per
 * packet (~11,500/s on one core here).  Everything else `open` does —
 * header parse, epoch check, AES-256-GCM, strict CBOR, Sign1 parse, message
 * decode, anti-replay — must stay small beside it, and the ways to lose
 * that (parsing the device's public key per packet: 2.4× a verify; a fresh
 * cipher context per packet: 3× the AEAD) are exactly what a benchmark
 * catches and a unit test does not.  So this program measures, pinned to
 * CPU 0 and ~3 s each:
 *
 *   raw_verify     OpenSSL alone: a pre-parsed EVP_PKEY, SHA-256 + ECDSA
 *                  verify of a DER signature over a 200-byte message, a
 *                  fresh EVP_MD_CTX per operation (as `openssl speed` and a
 *                  naive caller would) — the yardstick;
 *   seal_es256     mt_packet_seal of a typical vitals message (six
 *                  observations) with an in-memory P-256 key, random IV;
 *   open_es256     mt_packet_open of such packets: decrypt, verify, decode,
 *                  replay, with the device's key parsed once (as the hub
 *                  caches it) and a new counter in every packet, so none is
 *                  a duplicate (the pool of pre-sealed packets is reused with
 *                  a fresh window each round);
 *   seal_eddsa, open_eddsa   the same with an Ed25519 key, and
 *   raw_verify_ed25519       its yardstick (pure Ed25519, fresh context),
 *                  reported as an informational ratio without a limit;
 *   open_fast      the critical channel: a typ-2 fast packet, AEAD only.
 *
 * raw_verify and open_es256 run in alternating slices so that a noisy
 * neighbour hits both alike; their ratio is the verdict:
 * open/raw_verify ≥ 0.80 passes, anything less fails (exit 1).
 *
 *   packet [--seconds N] [--json]
 *
 * --seconds sets the time per operation (default 3); --json prints one JSON
 * object instead of the table.  Not part of ctest: timings on a shared
 * 2-core machine are noise for a test, signal for a person.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <medtrust/mt_crypto.h>
#include <medtrust/mt_err.h>
#include <medtrust/mt_keystore.h>
#include <medtrust/mt_message.h>
#include <medtrust/mt_packet.h>
#include <medtrust/mt_replay.h>

#define RATIO_LIMIT 0.80
#define POOL 2048
#define DEV "bed-12-monitor"
#define EPOCH 3u

/* Keys of the MTP/1 worked vectors (shared/vectors/mtp1): any key would do. */
static const char P256_D[] = "9d8b60562b657c527ed152c8df12959d410ab9d3ac5c5fc610c5ab68c9811b9a";
static const char ED_SEED[] = "41777f260c55b026d93597915b3b85e31c20ce4c80dfe71085566280e5d1d581";

static void die(const char *what, enum mt_err e)
{
	fprintf(stderr, "bench: %s: %s\n", what, mt_err_str(e));
	exit(2);
}

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			die("bad hex constant", MT_ERR_INTERNAL);
		out[i] = (uint8_t)v;
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- operations ------------------------------------------------------------ */

struct raw_ctx {
	EVP_PKEY *pkey;
	bool pure; /* Ed25519: no separate digest */
	uint8_t msg[200];
	uint8_t sig[80];
	size_t sig_len;
};

static void op_raw_verify(void *p)
{
	struct raw_ctx *c = p;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md ||
	    EVP_DigestVerifyInit(md, NULL, c->pure ? NULL : EVP_sha256(), NULL, c->pkey) != 1 ||
	    EVP_DigestVerify(md, c->sig, c->sig_len, c->msg, sizeof c->msg) != 1)
		die("raw ECDSA verify failed", MT_ERR_CRYPTO);
	EVP_MD_CTX_free(md);
}

/* Sign rc->msg once with `signer` and keep only its public half, parsed
 * from DER up front (as a verifier holding a certificate would). */
static void raw_setup(struct raw_ctx *c, EVP_PKEY *signer, bool pure)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	c->pure = pure;
	for (size_t i = 0; i < sizeof c->msg; i++)
		c->msg[i] = (uint8_t)(i * 7 + 1);
	c->sig_len = sizeof c->sig;
	if (!signer || !md ||
	    EVP_DigestSignInit(md, NULL, pure ? NULL : EVP_sha256(), NULL, signer) != 1 ||
	    EVP_DigestSign(md, c->sig, &c->sig_len, c->msg, sizeof c->msg) != 1)
		die("raw sign", MT_ERR_CRYPTO);
	EVP_MD_CTX_free(md);
	unsigned char *der = NULL;
	int dl = i2d_PUBKEY(signer, &der);
	const unsigned char *q = der;
	c->pkey = dl > 0 ? d2i_PUBKEY(NULL, &q, dl) : NULL;
	OPENSSL_free(der);
	EVP_PKEY_free(signer);
	if (!c->pkey)
		die("raw public key", MT_ERR_CRYPTO);
}

static struct mt_obs g_obs[6];

static void vitals(struct mt_message *m, uint64_t ctr, uint64_t typ)
{
	memset(m, 0, sizeof *m);
	memcpy(m->dev, DEV, sizeof DEV);
	m->dev_len = strlen(DEV);
	m->ctr = ctr;
	m->ts = UINT64_C(1733222400000) + ctr * 1000;
	m->typ = typ;
	if (typ == MT_TYP_ALERT) {
		m->has = MT_MSG_OBS | MT_MSG_ALRT;
		m->obs = g_obs + 1;
		m->n_obs = 1;
		m->alrt.code = 1001;
		m->alrt.prio = 3;
		m->alrt.text = "SpO2 low";
		m->alrt.text_len = 8;
	} else {
		m->has = MT_MSG_OBS;
		m->obs = g_obs;
		m->n_obs = 6;
	}
}

static void init_obs(void)
{
	static const struct {
		int64_t t;
		uint32_t code, unit;
		double v;
		bool f;
		int places;
	} o[6] = {
	        {0, 147842, 264864, 72, false, -1},      /* heart rate */
	        {0, 150456, 262688, 97, false, -1},      /* SpO2 */
	        {-1500, 150021, 266016, 121, false, -1}, /* NIBP systolic */
	        {-1500, 150022, 266016, 79, false, -1},  /* NIBP diastolic */
	        {-2000, 150364, 268192, 36.6, true, 1},  /* temperature */
	        {0, 151562, 264928, 16, false, -1},      /* respiratory rate */
	};
	for (int i = 0; i < 6; i++) {
		memset(&g_obs[i], 0, sizeof g_obs[i]);
		mt_num_set_int(&g_obs[i].t, o[i].t);
		g_obs[i].code = o[i].code;
		g_obs[i].unit = o[i].unit;
		if (o[i].f)
			mt_num_set_float(&g_obs[i].value, o[i].v);
		else
			mt_num_set_int(&g_obs[i].value, (int64_t)o[i].v);
		if (o[i].places >= 0) {
			g_obs[i].has_places = true;
			g_obs[i].places = (uint8_t)o[i].places;
		}
	}
}

struct seal_ctx {
	struct mt_seal_params sp;
	struct mt_message m;
	uint64_t ctr;
	uint8_t out[1024];
	size_t len;
};

static void op_seal(void *p)
{
	struct seal_ctx *c = p;
	c->m.ctr = c->ctr++;
	enum mt_err e = mt_packet_seal(&c->sp, &c->m, c->out, sizeof c->out, &c->len);
	if (e != MT_OK)
		die("mt_packet_seal", e);
}

struct open_ctx {
	struct mt_opener *opener;
	const struct mt_pubkey *ldev; /* parsed once, as the hub caches it */
	uint8_t key[MT_KEY_LEN];
	struct mt_replay window;
	enum mt_topic topic;
	uint8_t *pkt[POOL];
	size_t len[POOL];
	size_t next;
	struct mt_open_result r;
};

static enum mt_err data_key(void *ctx, uint32_t epoch, uint8_t key[MT_KEY_LEN])
{
	struct open_ctx *c = ctx;
	(void)epoch;
	memcpy(key, c->key, MT_KEY_LEN);
	return MT_OK;
}

static enum mt_err lookup(void *ctx, const char *dev, size_t dev_len, struct mt_device_view *v)
{
	struct open_ctx *c = ctx;
	(void)dev;
	(void)dev_len;
	memset(v, 0, sizeof *v);
	v->status = MT_VIEW_ACTIVE;
	v->check_status = true;
	v->ldev = c->ldev;
	v->check_epoch = true;
	v->epoch = EPOCH;
	v->data_key = data_key;
	v->data_key_ctx = c;
	v->window = &c->window;
	return MT_OK;
}

static void op_open(void *p)
{
	struct open_ctx *c = p;
	if (c->next == POOL) {
		c->next = 0;
		mt_replay_init(&c->window); /* a new round of the pool: nothing is a duplicate */
	}
	struct mt_open_params op = {
	        .dev = DEV,
	        .dev_len = strlen(DEV),
	        .topic = c->topic,
	        .lookup = lookup,
	        .lookup_ctx = c,
	        .now_ms = 0,
	};
	enum mt_err e = mt_packet_open(c->opener, &op, c->pkt[c->next], c->len[c->next], &c->r);
	if (e != MT_OK) {
		fprintf(stderr, "bench: open refused: %s: %s\n",
		        mt_err_stage(e) ? mt_err_stage(e) : "?", c->r.detail);
		exit(2);
	}
	c->next++;
}

/* Fill the pool with packets of counters 0..POOL-1 sealed with `sp`. */
static void fill_pool(struct open_ctx *c, struct mt_seal_params *sp, uint64_t typ)
{
	struct mt_message m;
	for (size_t i = 0; i < POOL; i++) {
		uint8_t buf[1024];
		size_t len = 0;
		vitals(&m, i, typ);
		enum mt_err e = mt_packet_seal(sp, &m, buf, sizeof buf, &len);
		if (e != MT_OK)
			die("mt_packet_seal (pool)", e);
		c->pkt[i] = malloc(len);
		if (!c->pkt[i])
			die("malloc", MT_ERR_NOMEM);
		memcpy(c->pkt[i], buf, len);
		c->len[i] = len;
	}
	c->next = 0;
	mt_replay_init(&c->window);
}

static void free_pool(struct open_ctx *c)
{
	for (size_t i = 0; i < POOL; i++)
		free(c->pkt[i]);
	mt_opener_free(c->opener);
}

/* --- timing ------------------------------------------------------------------ */

struct result {
	const char *name;
	const char *what;
	uint64_t ops;
	double secs;
};

/* Run `op` for about `secs`, adding to r. */
static void run_for(void (*op)(void *), void *ctx, double secs, struct result *r)
{
	double t0 = now_s(), t;
	uint64_t n = 0;
	do {
		for (int i = 0; i < 16; i++)
			op(ctx);
		n += 16;
		t = now_s();
	} while (t - t0 < secs);
	r->ops += n;
	r->secs += t - t0;
}

static void warm(void (*op)(void *), void *ctx, double secs)
{
	struct result scrap = {0};
	run_for(op, ctx, secs, &scrap);
}

static double rate(const struct result *r)
{
	return r->secs > 0 ? (double)r->ops / r->secs : 0;
}

int main(int argc, char **argv)
{
	double seconds = 3.0;
	bool json = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			char *end = NULL;
			errno = 0;
			seconds = strtod(argv[++i], &end);
			if (errno || !end || *end || !(seconds > 0 && seconds <= 600)) {
				fprintf(stderr, "bench: --seconds wants a number in (0, 600]\n");
				return 64;
			}
		} else {
			fprintf(stderr, "usage: %s [--seconds N] [--json]\n", argv[0]);
			return strcmp(argv[i], "--help") == 0 ? 0 : 64;
		}
	}

	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	bool pinned = sched_setaffinity(0, sizeof set, &set) == 0;
	if (!pinned)
		fprintf(stderr, "bench: could not pin to CPU 0 (%s); running unpinned\n",
		        strerror(errno));

	init_obs();
	enum mt_err e;
	uint8_t raw[32];
	struct mt_key *p256 = NULL, *ed = NULL;
	unhex(P256_D, raw, 32);
	if ((e = mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, raw, 32, &p256)) != MT_OK)
		die("import P-256", e);
	unhex(ED_SEED, raw, 32);
	if ((e = mt_key_import_raw(MT_KEY_ED25519, MT_KEY_ROLE_SIGN, raw, 32, &ed)) != MT_OK)
		die("import Ed25519", e);
	mt_wipe(raw, sizeof raw);

	/* The hub's cached copies of the device keys: parsed from their SPKI once. */
	uint8_t spki[MT_SPKI_MAX];
	size_t spki_len = 0;
	struct mt_pubkey *p256_pub = NULL, *ed_pub = NULL;
	if ((e = mt_pubkey_spki(mt_key_public(p256), spki, sizeof spki, &spki_len)) != MT_OK ||
	    (e = mt_pubkey_from_spki(spki, spki_len, &p256_pub)) != MT_OK)
		die("P-256 public key", e);
	if ((e = mt_pubkey_spki(mt_key_public(ed), spki, sizeof spki, &spki_len)) != MT_OK ||
	    (e = mt_pubkey_from_spki(spki, spki_len, &ed_pub)) != MT_OK)
		die("Ed25519 public key", e);

	/* raw_verify: OpenSSL keys of their own and signatures made once. */
	static struct raw_ctx rc, rc_ed;
	raw_setup(&rc, EVP_EC_gen("P-256"), false);
	raw_setup(&rc_ed, EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), true);

	uint8_t key[MT_KEY_LEN];
	if ((e = mt_random(key, sizeof key)) != MT_OK)
		die("mt_random", e);
	struct mt_aead *aead = NULL;
	if ((e = mt_aead_new(&aead)) != MT_OK)
		die("mt_aead_new", e);

	static struct seal_ctx seal_es, seal_ed;
	struct mt_seal_params base_sp = {
	        .dev = DEV,
	        .dev_len = strlen(DEV),
	        .epoch = EPOCH,
	        .data_key = key,
	        .iv = NULL, /* random, as on a device */
	        .aead = aead,
	};
	seal_es.sp = base_sp;
	seal_es.sp.ldev = p256;
	vitals(&seal_es.m, 0, MT_TYP_VITALS);
	seal_ed.sp = base_sp;
	seal_ed.sp.ldev = ed;
	vitals(&seal_ed.m, 0, MT_TYP_VITALS);

	static struct open_ctx open_es, open_ed, open_fast;
	struct open_ctx *opens[3] = {&open_es, &open_ed, &open_fast};
	for (int i = 0; i < 3; i++) {
		if ((e = mt_opener_new(&opens[i]->opener)) != MT_OK)
			die("mt_opener_new", e);
		memcpy(opens[i]->key, key, sizeof key);
	}
	open_es.ldev = p256_pub;
	open_es.topic = MT_TOPIC_VITALS;
	fill_pool(&open_es, &seal_es.sp, MT_TYP_VITALS);
	open_ed.ldev = ed_pub;
	open_ed.topic = MT_TOPIC_VITALS;
	fill_pool(&open_ed, &seal_ed.sp, MT_TYP_VITALS);
	struct mt_seal_params fast_sp = base_sp;
	fast_sp.fast = true;
	open_fast.ldev = p256_pub;
	open_fast.topic = MT_TOPIC_ALERT;
	fill_pool(&open_fast, &fast_sp, MT_TYP_ALERT);
	size_t pkt_len = open_es.len[0];

	struct result r_raw = {"raw_verify", "OpenSSL ECDSA P-256 verify, 200 B, fresh EVP_MD_CTX",
	                       0, 0};
	struct result r_open = {"open_es256", "decrypt + verify + decode + replay", 0, 0};
	struct result r_seal = {"seal_es256", "encode + sign + encrypt (6 observations)", 0, 0};
	struct result r_seal_ed = {"seal_eddsa", "the same with Ed25519", 0, 0};
	struct result r_raw_ed = {"raw_verify_ed25519",
	                          "OpenSSL Ed25519 verify, 200 B, fresh EVP_MD_CTX", 0, 0};
	struct result r_open_ed = {"open_eddsa", "the same with Ed25519", 0, 0};
	struct result r_fast = {"open_fast", "fast packet (typ 2): decrypt + decode + replay", 0,
	                        0};

	double w = seconds / 10 < 0.3 ? seconds / 10 : 0.3;
	warm(op_raw_verify, &rc, w);
	warm(op_open, &open_es, w);
	/* The verdict pair, interleaved in six slices each. */
	for (int s = 0; s < 6; s++) {
		run_for(op_raw_verify, &rc, seconds / 6, &r_raw);
		run_for(op_open, &open_es, seconds / 6, &r_open);
	}
	warm(op_seal, &seal_es, w);
	run_for(op_seal, &seal_es, seconds, &r_seal);
	warm(op_seal, &seal_ed, w);
	run_for(op_seal, &seal_ed, seconds, &r_seal_ed);
	warm(op_open, &open_ed, w);
	for (int sl = 0; sl < 6; sl++) {
		run_for(op_raw_verify, &rc_ed, seconds / 6, &r_raw_ed);
		run_for(op_open, &open_ed, seconds / 6, &r_open_ed);
	}
	warm(op_open, &open_fast, w);
	run_for(op_open, &open_fast, seconds, &r_fast);

	double ratio = rate(&r_open) / rate(&r_raw);
	bool pass = ratio >= RATIO_LIMIT;
	double ratio_ed = rate(&r_open_ed) / rate(&r_raw_ed);
	const struct result *all[] = {&r_raw,     &r_open,    &r_seal, &r_raw_ed,
	                              &r_seal_ed, &r_open_ed, &r_fast};
	size_t n_all = sizeof all / sizeof all[0];

	if (json) {
		printf("{\"pinned_cpu\": %s, \"seconds\": %g, \"packet_bytes\": %zu, \"results\": "
		       "[",
		       pinned ? "0" : "null", seconds, pkt_len);
		for (size_t i = 0; i < n_all; i++)
			printf("%s{\"op\": \"%s\", \"ops\": %llu, \"ops_per_s\": %.1f, "
			       "\"us_per_op\": %.3f}",
			       i ? ", " : "", all[i]->name, (unsigned long long)all[i]->ops,
			       rate(all[i]), 1e6 / rate(all[i]));
		printf("], \"open_raw_verify_ratio\": %.4f, \"limit\": %.2f, \"pass\": %s, "
		       "\"eddsa_open_raw_verify_ratio\": %.4f}\n",
		       ratio, RATIO_LIMIT, pass ? "true" : "false", ratio_ed);
	} else {
		printf("medtrust packet benchmark — %s, %g s per operation, sealed vitals packet "
		       "%zu bytes\n\n",
		       pinned ? "pinned to CPU 0" : "unpinned", seconds, pkt_len);
		printf("%-18s %10s %10s   %s\n", "operation", "ops/s", "µs/op", "what");
		for (size_t i = 0; i < n_all; i++)
			printf("%-18s %10.0f %10.2f   %s\n", all[i]->name, rate(all[i]),
			       1e6 / rate(all[i]), all[i]->what);
		printf("\neddsa open/raw_verify_ed25519 = %.2f (informational)\n", ratio_ed);
		printf("open/raw_verify ratio = %.2f (limit ≥ %.2f: %s)\n", ratio, RATIO_LIMIT,
		       pass ? "PASS" : "FAIL");
	}

	free_pool(&open_es);
	free_pool(&open_ed);
	free_pool(&open_fast);
	mt_pubkey_free(p256_pub);
	mt_pubkey_free(ed_pub);
	mt_key_free(p256);
	mt_key_free(ed);
	mt_aead_free(aead);
	EVP_PKEY_free(rc.pkey);
	EVP_PKEY_free(rc_ed.pkey);
	mt_wipe(key, sizeof key);
	return pass ? 0 : 1;
}
