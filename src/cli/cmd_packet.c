/*
 * cmd_packet.c — `medtrust packet seal` and `medtrust packet open`
 * (protocol §9, the command-line contract; §4 packets, §5 checks).
 *
 * seal: JSON message on stdin (≤ 16 MiB) → mt_json_message_parse →
 *   K = HKDF(ECDH(device kx, hub kx public), epoch, device id)
 *   (mt_key_ecdh, mt_packet_derive_keys) → mt_packet_seal → raw packet on
 *   stdout.  A fast packet needs no ldev key, so --ldev is optional with
 *   --fast and then not even opened.  Whether the message fits one packet
 *   (65,536 bytes) is decided before any key is opened, from the message's
 *   encoded length and the fixed layout of §4 (packet_size), so an
 *   oversized message is an input error (65) and the sealer is only ever
 *   given messages that fit.
 *
 * open: packet on stdin (at most 65,537 bytes are read: one byte more than
 *   a packet may have, which the library then refuses at stage `size`) →
 *   mt_packet_open with no topic and a lookup that answers for the one
 *   device named by --device: no registry (stage 12 skipped), the ldev
 *   public key from --ldev-pub, the epoch check only with --epoch, and a
 *   data_key callback that derives K for whichever accepted epoch the
 *   packet names.  --epoch N is the hub's *current* epoch, so packets of N
 *   and N − 1 pass (protocol §4).  --state FILE (an extension for debugging
 *   and the demo) keeps a replay window across runs: loaded from its
 *   136-byte mt_replay_save form (a missing file is a fresh window) and
 *   written back atomically (temporary file, fsync, rename) whenever the
 *   library marked a counter — after an accepted packet, and after an
 *   implausible one, whose counter the hub also marks seen (§5).
 *
 * Outcomes map onto exit codes (cli.h): a refusal is exit 2 with
 * `refused: <stage>: <detail>`; a key that cannot be opened or a file that
 * cannot be read is exit 1 — the tool's failure, not the packet's.
 *
 * Secrets: the ECDH x-coordinate and data keys live on the stack only as
 * long as needed and are wiped with mt_wipe on every path; private keys
 * stay behind struct mt_key and are freed (and so wiped) before exit.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_json.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_packet.h"
#include "medtrust/mt_replay.h"

#define MT_CLI_JSON_MAX MT_JSON_TEXT_MAX /* 16 MiB */

static const char seal_usage[] =
	"medtrust packet seal --ldev URI --kx URI --hub-kx HUB_KX_PUB.pem --epoch N "
	"[--fast] [--device ID] < message.json > packet";
static const char open_usage[] =
	"medtrust packet open --hub-kx URI --ldev-pub LDEV_PUB.pem --kx-pub KX_PUB.pem "
	"--device ID [--epoch N] [--verbose] [--state FILE] < packet > message.json";

#define MT_JSON_FORM_HELP                                                                \
	"JSON form of a message (protocol section 9; names of section 5):\n"             \
	"  {\"dev\": \"icu-7\", \"ctr\": 42, \"ts\": 1733222400000, \"typ\": 1,\n"       \
	"   \"obs\": [[0, 150456, 97.0, 262688], [0, 150364, 36.5, 268192, 1],\n"         \
	"           [-500, 131330, 266418, 2000, 0.005, [1, 0, 64, -64]]]}\n"             \
	"  typ 1 vitals (obs), 2 alert (alrt, may have obs), 3 status (st), 4 ack (ack)\n" \
	"  st:   {\"battery\", \"fw\", \"queue\", \"uptime\", \"rssi\"}, at least one\n"  \
	"  ack:  {\"ctr\", \"result\" (both required), \"detail\"}\n"                       \
	"  alrt: {\"code\", \"prio\" (both required; prio 1 low, 2 medium, 3 high),"       \
	" \"text\"}\n"                                                                   \
	"  observation: [t, code, value, unit] or [t, code, value, unit, places];\n"     \
	"  waveform: [t, code, unit, period_us, scale, [int32 samples...]].\n"           \
	"  A number written with '.', 'e' or 'E' is a float (97.0), any other an\n"      \
	"  integer (97); integers are exact from -2^64 to 2^64-1.  Unknown or\n"       \
	"  duplicated names are refused.\n"

static const char packet_help[] =
	"usage: medtrust packet seal [options] < message.json > packet\n"
	"       medtrust packet open [options] < packet > message.json\n"
	"\n"
	"Seal a JSON message into an MTP/1 packet (sealed = COSE_Encrypt0 of a\n"
	"COSE_Sign1, or fast = COSE_Encrypt0 of an alert), or check and open one.\n"
	"Run 'medtrust packet seal --help' or 'medtrust packet open --help' for\n"
	"their options.\n"
	"\n" MT_JSON_FORM_HELP
	"\n"
	"Exit codes: 0 success, 1 key store or I/O failure, 2 packet refused,\n"
	"64 usage error, 65 invalid JSON input.\n";

static const char seal_help[] =
	"usage: medtrust packet seal --ldev URI --kx URI --hub-kx HUB_KX_PUB.pem\n"
	"                            --epoch N [--fast] [--device ID]\n"
	"                            < message.json > packet\n"
	"\n"
	"Read one message as JSON on stdin (at most 16 MiB), seal it and write the\n"
	"raw packet bytes on stdout.  The data key is HKDF over ECDH(--kx,\n"
	"--hub-kx) for the epoch and device id (protocol section 4).\n"
	"\n"
	"Options:\n"
	"  --ldev URI        the device's operational (signing) key; P-256 gives\n"
	"                    ES256, Ed25519 gives EdDSA.  Required unless --fast\n"
	"                    (ignored with --fast)\n"
	"  --kx URI          the device's key-agreement key (P-256, derive)\n"
	"  --hub-kx FILE     the hub's key-agreement public key, PEM\n"
	"  --epoch N         key epoch, 0 to 4294967295\n"
	"  --fast            make a fast packet (no signature); typ must be 2\n"
	"  --device ID       device id bound into the packet (default: the\n"
	"                    message's \"dev\")\n"
	"  -h, --help        show this help\n"
	"\n" MT_JSON_FORM_HELP
	"\n"
	"Exit codes:\n"
	"  0   packet written\n"
	"  1   a key could not be opened or used, or stdin/stdout failed\n"
	"      (error: <what>: <reason>)\n"
	"  64  usage error (unknown or missing option, bad number or device id)\n"
	"  65  invalid JSON input: syntax, schema, --fast with typ other than 2, or a\n"
	"      message too large for one 65,536-byte packet (invalid JSON: <reason>)\n";

static const char open_help[] =
	"usage: medtrust packet open --hub-kx URI --ldev-pub LDEV_PUB.pem\n"
	"                            --kx-pub KX_PUB.pem --device ID [--epoch N]\n"
	"                            [--verbose] [--state FILE] < packet > message.json\n"
	"\n"
	"Read one packet on stdin, run the checks of protocol section 5 in order\n"
	"(size, cbor, header, epoch, aead, inner, alg, kid, signature, message,\n"
	"replay with --state, implausible; no topic and no device registry) and\n"
	"print its message as one line of JSON.\n"
	"\n"
	"Options:\n"
	"  --hub-kx URI      the hub's key-agreement private key\n"
	"  --ldev-pub FILE   the device's registered operational public key, PEM\n"
	"                    (fixes the signature algorithm and the kid)\n"
	"  --kx-pub FILE     the device's key-agreement public key, PEM\n"
	"  --device ID       the device id the transport would vouch for\n"
	"  --epoch N         the hub's CURRENT epoch: packets of N and N-1 are\n"
	"                    accepted, any other is refused at stage epoch.\n"
	"                    Without it the epoch check is skipped (a note says so\n"
	"                    on stderr)\n"
	"  --verbose         print {\"kind\": \"sealed\"|\"fast\", \"epoch\": N,\n"
	"                    \"message\": {...}} instead of the message alone\n"
	"  --state FILE      keep an anti-replay window in FILE (136 bytes; a\n"
	"                    missing file is a fresh window); a counter seen before\n"
	"                    is refused as duplicate.  The file is rewritten\n"
	"                    atomically when a counter is marked.  Not locked: one\n"
	"                    open per FILE at a time\n"
	"  -h, --help        show this help\n"
	"\n"
	"Output: the message JSON (see 'medtrust packet --help'); integers are\n"
	"exact (any uint64), floats print so that they read back as the same double\n"
	"and keep a '.' or an exponent (97.0 stays 97.0).\n"
	"\n"
	"Exit codes:\n"
	"  0   packet accepted, message on stdout\n"
	"  1   a key or file could not be read, or stdin/stdout failed\n"
	"      (error: <what>: <reason>)\n"
	"  2   packet refused: refused: <stage>: <detail> on stderr, stage one of\n"
	"      size cbor header epoch aead inner alg kid signature message replay\n"
	"      implausible duplicate\n"
	"  64  usage error (unknown or missing option, bad number or device id)\n";

/* Bytes of a CBOR head for a length n (RFC 8949 §3). */
static size_t head_len(size_t n)
{
	return n < 24 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : n <= UINT32_MAX ? 5 : 9;
}

/* The exact size of the packet that seals a message of mlen bytes (§4):
 * header and IV (27 bytes), the ciphertext's bstr head, the plaintext
 * (the message, or the Sign1 around it: 17 bytes of prefix, the payload
 * head, 66 bytes of signature) and the 16-byte tag. */
static size_t packet_size(size_t mlen, bool fast)
{
	size_t pt = fast ? mlen : 17 + head_len(mlen) + mlen + 2 + MT_SIG_LEN;
	size_t ct = pt + MT_AEAD_TAG_LEN;

	return 27 + head_len(ct) + ct;
}

/* ------------------------------------------------------------------ */
/* seal                                                                 */
/* ------------------------------------------------------------------ */

static int packet_seal(int argc, char **argv)
{
	const char *cmd = "packet seal";
	const char *ldev_uri = NULL, *kx_uri = NULL, *hub_path = NULL, *epoch_s = NULL;
	const char *device = NULL;
	bool fast = false, more = false;
	uint32_t epoch = 0;
	uint8_t *in = NULL, *pkt = NULL;
	size_t in_len = 0, pkt_len = 0, pkt_cap = 2 * MT_PACKET_MAX + MT_PACKET_OVERHEAD;
	char why[MT_JSON_WHY_MAX];
	struct mt_json_message jm;
	struct mt_pubkey *hub_pub = NULL;
	struct mt_key *kx = NULL, *ldev = NULL;
	struct mt_aead *aead = NULL;
	struct mt_seal_params sp;
	uint8_t x[32], key[MT_KEY_LEN];
	enum mt_err e;
	int pos, u, rc = MT_EXIT_ERROR;
	const struct mt_cli_opt opts[] = {
		{"ldev", 0, MT_CLI_VALUE, &ldev_uri, NULL},
		{"kx", 0, MT_CLI_VALUE, &kx_uri, NULL},
		{"hub-kx", 0, MT_CLI_VALUE, &hub_path, NULL},
		{"epoch", 0, MT_CLI_VALUE, &epoch_s, NULL},
		{"fast", 0, MT_CLI_FLAG, NULL, &fast},
		{"device", 0, MT_CLI_VALUE, &device, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};

	memset(&jm, 0, sizeof jm);
	u = mt_cli__parse_opts(cmd, seal_usage, seal_help, argc, argv, opts, &pos);
	if (u != MT_CLI_CONTINUE)
		return u;
	if (pos < argc)
		return mt_cli__usage(cmd, seal_usage, "unexpected argument '%s'", argv[pos]);
	if (!ldev_uri && !fast)
		return mt_cli__usage(cmd, seal_usage, "missing --ldev (required unless --fast)");
	if (!kx_uri)
		return mt_cli__usage(cmd, seal_usage, "missing --kx");
	if (!hub_path)
		return mt_cli__usage(cmd, seal_usage, "missing --hub-kx");
	if (!epoch_s)
		return mt_cli__usage(cmd, seal_usage, "missing --epoch");
	if (!mt_cli__parse_u32(epoch_s, &epoch))
		return mt_cli__usage(cmd, seal_usage,
		                     "--epoch: '%s' is not a number from 0 to 4294967295",
		                     epoch_s);
	if (device && !mt_device_id_valid(device, strlen(device)))
		return mt_cli__usage(cmd, seal_usage,
		                     "--device: '%s' is not a device id "
		                     "([A-Za-z0-9][A-Za-z0-9._-]{0,63})",
		                     device);

	/* The message. */
	e = mt_cli__read_all(stdin, MT_CLI_JSON_MAX, &in, &in_len, &more);
	if (e != MT_OK)
		return mt_cli__error("reading stdin", e);
	if (more) {
		fprintf(stderr, "invalid JSON: input larger than 16 MiB\n");
		rc = MT_EXIT_DATAERR;
		goto out;
	}
	e = mt_json_message_parse((const char *)in, in_len, &jm, why, sizeof why);
	if (e == MT_ERR_JSON_SYNTAX || e == MT_ERR_JSON_SCHEMA) {
		fprintf(stderr, "invalid JSON: %s\n", why[0] ? why : mt_err_str(e));
		rc = MT_EXIT_DATAERR;
		goto out;
	}
	if (e != MT_OK) {
		rc = mt_cli__error("parsing the message", e);
		goto out;
	}
	if (fast && jm.msg.typ != MT_TYP_ALERT) {
		fprintf(stderr, "invalid JSON: a fast packet carries only an alert (typ 2), "
		                "not typ %llu\n",
		        (unsigned long long)jm.msg.typ);
		rc = MT_EXIT_DATAERR;
		goto out;
	}
	if (!device)
		device = jm.msg.dev;

	/* Will it fit one packet?  Decided here, before any key is touched, so
	 * that an oversized message is the input's fault (65) whatever the
	 * sealer would make of it. */
	pkt = malloc(pkt_cap);
	if (!pkt) {
		rc = mt_cli__error("sealing", MT_ERR_NOMEM);
		goto out;
	}
	e = mt_message_encode(&jm.msg, pkt, MT_PACKET_MAX, &pkt_len);
	if (e == MT_ERR_BUFFER || (e == MT_OK && packet_size(pkt_len, fast) > MT_PACKET_MAX)) {
		fprintf(stderr, "invalid JSON: message too large: the packet would exceed "
		                "65,536 bytes\n");
		rc = MT_EXIT_DATAERR;
		goto out;
	}
	if (e != MT_OK) {
		fprintf(stderr, "invalid JSON: %s\n", mt_err_str(e));
		rc = MT_EXIT_DATAERR;
		goto out;
	}
	pkt_len = 0;

	/* The keys. */
	e = mt_pubkey_from_pem_file(hub_path, &hub_pub);
	if (e != MT_OK) {
		fprintf(stderr, "error: reading --hub-kx %s: %s\n", hub_path, mt_err_str(e));
		goto out;
	}
	e = mt_key_open(kx_uri, &kx);
	if (e != MT_OK) {
		rc = mt_cli__error("opening --kx key", e);
		goto out;
	}
	if (!fast) {
		e = mt_key_open(ldev_uri, &ldev);
		if (e != MT_OK) {
			rc = mt_cli__error("opening --ldev key", e);
			goto out;
		}
	}
	e = mt_key_ecdh(kx, hub_pub, x);
	if (e != MT_OK) {
		mt_wipe(x, sizeof x);
		rc = mt_cli__error("ECDH with --kx and --hub-kx", e);
		goto out;
	}
	e = mt_packet_derive_keys(x, epoch, device, strlen(device), key, NULL);
	mt_wipe(x, sizeof x);
	if (e != MT_OK) {
		mt_wipe(key, sizeof key);
		rc = mt_cli__error("deriving the data key", e);
		goto out;
	}

	/* Seal. */
	e = mt_aead_new(&aead);
	if (e != MT_OK) {
		mt_wipe(key, sizeof key);
		rc = mt_cli__error("setting up AES-GCM", e);
		goto out;
	}
	memset(&sp, 0, sizeof sp);
	sp.dev = device;
	sp.dev_len = strlen(device);
	sp.epoch = epoch;
	sp.data_key = key;
	sp.ldev = ldev;
	sp.fast = fast;
	sp.iv = NULL;
	sp.aead = aead;
	e = mt_packet_seal(&sp, &jm.msg, pkt, pkt_cap, &pkt_len);
	mt_wipe(key, sizeof key);
	if (e == MT_ERR_PKT_SIZE || e == MT_ERR_BUFFER) {
		fprintf(stderr, "invalid JSON: message too large: the packet would exceed "
		                "65,536 bytes\n");
		rc = MT_EXIT_DATAERR;
		goto out;
	}
	if (e == MT_ERR_PKT_MESSAGE) {
		fprintf(stderr, "invalid JSON: %s\n", mt_err_str(e));
		rc = MT_EXIT_DATAERR;
		goto out;
	}
	if (e != MT_OK) {
		rc = mt_cli__error(fast ? "sealing" : "signing with --ldev key", e);
		goto out;
	}
	e = mt_cli__write_stdout(pkt, pkt_len);
	if (e != MT_OK) {
		rc = mt_cli__error("writing stdout", e);
		goto out;
	}
	rc = MT_EXIT_OK;
out:
	if (pkt) {
		mt_wipe(pkt, pkt_cap); /* held the plaintext while sealing in place */
		free(pkt);
	}
	mt_aead_free(aead);
	mt_key_free(ldev);
	mt_key_free(kx);
	mt_pubkey_free(hub_pub);
	mt_json_message_free(&jm);
	free(in);
	return rc;
}

/* ------------------------------------------------------------------ */
/* open                                                                 */
/* ------------------------------------------------------------------ */

/* Everything the lookup and data_key callbacks answer with. */
struct mt_cli_device {
	const char *dev;
	size_t dev_len;
	uint8_t x[32]; /* ECDH x-coordinate: secret, wiped at the end */
	struct mt_device_view view;
};

static enum mt_err cli_data_key(void *ctx, uint32_t epoch, uint8_t key[MT_KEY_LEN])
{
	struct mt_cli_device *d = ctx;

	return mt_packet_derive_keys(d->x, epoch, d->dev, d->dev_len, key, NULL);
}

static enum mt_err cli_lookup(void *ctx, const char *dev, size_t dev_len,
                              struct mt_device_view *view)
{
	struct mt_cli_device *d = ctx;

	if (dev_len != d->dev_len || memcmp(dev, d->dev, dev_len) != 0)
		return MT_ERR_NOT_FOUND;
	*view = d->view;
	return MT_OK;
}

/* Load a replay window; a missing file is a fresh one. */
static enum mt_err state_load(const char *path, struct mt_replay *w, const char **why)
{
	uint8_t buf[MT_REPLAY_STATE_LEN + 1];
	size_t n = 0;
	int fd;

	*why = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			mt_replay_init(w);
			return MT_OK;
		}
		return MT_ERR_IO;
	}
	while (n < sizeof buf) {
		ssize_t r = read(fd, buf + n, sizeof buf - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return MT_ERR_IO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n != MT_REPLAY_STATE_LEN) {
		*why = "not a replay state (136 bytes)";
		return MT_ERR_ARG;
	}
	if (mt_replay_load(w, buf) != MT_OK) {
		*why = "inconsistent replay state";
		return MT_ERR_ARG;
	}
	return MT_OK;
}

/* Write the window to `path` atomically: temporary file, fsync, rename. */
static enum mt_err state_save(const char *path, const struct mt_replay *w)
{
	uint8_t buf[MT_REPLAY_STATE_LEN];
	size_t plen = strlen(path), off = 0;
	char *tmp;
	int fd;

	mt_replay_save(w, buf);
	tmp = malloc(plen + sizeof ".tmp.XXXXXX");
	if (!tmp)
		return MT_ERR_NOMEM;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
	fd = mkstemp(tmp);
	if (fd < 0) {
		free(tmp);
		return MT_ERR_IO;
	}
	while (off < sizeof buf) {
		ssize_t r = write(fd, buf + off, sizeof buf - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto fail;
		off += (size_t)r;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	free(tmp);
	return MT_OK;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return MT_ERR_IO;
}

static int packet_open(int argc, char **argv)
{
	const char *cmd = "packet open";
	const char *hub_uri = NULL, *ldev_path = NULL, *kx_path = NULL, *device = NULL;
	const char *epoch_s = NULL, *state_path = NULL, *why = NULL;
	bool verbose = false, more = false;
	uint32_t epoch = 0;
	uint8_t *pkt = NULL;
	size_t pkt_len = 0, json_len = 0;
	char *json = NULL;
	struct mt_pubkey *ldev_pub = NULL, *kx_pub = NULL;
	struct mt_key *hub = NULL;
	struct mt_opener *opener = NULL;
	struct mt_cli_device d;
	struct mt_replay window;
	uint8_t before[MT_REPLAY_STATE_LEN], after[MT_REPLAY_STATE_LEN];
	struct mt_open_params op;
	struct mt_open_result *res = NULL;
	enum mt_err e;
	int pos, u, rc = MT_EXIT_ERROR;
	const struct mt_cli_opt opts[] = {
		{"hub-kx", 0, MT_CLI_VALUE, &hub_uri, NULL},
		{"ldev-pub", 0, MT_CLI_VALUE, &ldev_path, NULL},
		{"kx-pub", 0, MT_CLI_VALUE, &kx_path, NULL},
		{"device", 0, MT_CLI_VALUE, &device, NULL},
		{"epoch", 0, MT_CLI_VALUE, &epoch_s, NULL},
		{"verbose", 0, MT_CLI_FLAG, NULL, &verbose},
		{"state", 0, MT_CLI_VALUE, &state_path, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};

	memset(&d, 0, sizeof d);
	u = mt_cli__parse_opts(cmd, open_usage, open_help, argc, argv, opts, &pos);
	if (u != MT_CLI_CONTINUE)
		return u;
	if (pos < argc)
		return mt_cli__usage(cmd, open_usage, "unexpected argument '%s'", argv[pos]);
	if (!hub_uri)
		return mt_cli__usage(cmd, open_usage, "missing --hub-kx");
	if (!ldev_path)
		return mt_cli__usage(cmd, open_usage, "missing --ldev-pub");
	if (!kx_path)
		return mt_cli__usage(cmd, open_usage, "missing --kx-pub");
	if (!device)
		return mt_cli__usage(cmd, open_usage, "missing --device");
	if (!mt_device_id_valid(device, strlen(device)))
		return mt_cli__usage(cmd, open_usage,
		                     "--device: '%s' is not a device id "
		                     "([A-Za-z0-9][A-Za-z0-9._-]{0,63})",
		                     device);
	if (epoch_s && !mt_cli__parse_u32(epoch_s, &epoch))
		return mt_cli__usage(cmd, open_usage,
		                     "--epoch: '%s' is not a number from 0 to 4294967295",
		                     epoch_s);

	/* Keys and state first: a key that cannot be read is the tool's failure. */
	e = mt_pubkey_from_pem_file(ldev_path, &ldev_pub);
	if (e != MT_OK) {
		fprintf(stderr, "error: reading --ldev-pub %s: %s\n", ldev_path, mt_err_str(e));
		goto out;
	}
	e = mt_pubkey_from_pem_file(kx_path, &kx_pub);
	if (e != MT_OK) {
		fprintf(stderr, "error: reading --kx-pub %s: %s\n", kx_path, mt_err_str(e));
		goto out;
	}
	e = mt_key_open(hub_uri, &hub);
	if (e != MT_OK) {
		rc = mt_cli__error("opening --hub-kx key", e);
		goto out;
	}
	e = mt_key_ecdh(hub, kx_pub, d.x);
	if (e != MT_OK) {
		rc = mt_cli__error("ECDH with --hub-kx and --kx-pub", e);
		goto out;
	}
	if (state_path) {
		e = state_load(state_path, &window, &why);
		if (e != MT_OK) {
			fprintf(stderr, "error: reading --state %s: %s\n", state_path,
			        why ? why : mt_err_str(e));
			goto out;
		}
		mt_replay_save(&window, before);
	}

	/* The packet: one byte more than the maximum shows it is too long. */
	e = mt_cli__read_all(stdin, MT_PACKET_MAX, &pkt, &pkt_len, &more);
	if (e != MT_OK) {
		rc = mt_cli__error("reading stdin", e);
		goto out;
	}
	if (!epoch_s)
		fputs("note: no --epoch given: epoch check skipped\n", stderr);

	d.dev = device;
	d.dev_len = strlen(device);
	d.view.status = MT_VIEW_ACTIVE;
	d.view.check_status = false;
	d.view.ldev = ldev_pub;
	d.view.check_epoch = epoch_s != NULL;
	d.view.epoch = epoch;
	d.view.data_key = cli_data_key;
	d.view.data_key_ctx = &d;
	d.view.window = state_path ? &window : NULL;

	e = mt_opener_new(&opener);
	if (e != MT_OK) {
		rc = mt_cli__error("setting up the opener", e);
		goto out;
	}
	res = calloc(1, sizeof *res);
	if (!res) {
		rc = mt_cli__error("opening the packet", MT_ERR_NOMEM);
		goto out;
	}
	memset(&op, 0, sizeof op);
	op.dev = device;
	op.dev_len = d.dev_len;
	op.topic = MT_TOPIC_NONE;
	op.lookup = cli_lookup;
	op.lookup_ctx = &d;
	op.now_ms = 0;
	e = mt_packet_open(opener, &op, pkt, pkt_len, res);

	/* The library marks the window for an accepted packet and for one it
	 * refuses only as implausible: keep whatever it marked. */
	if (state_path) {
		mt_replay_save(&window, after);
		if (memcmp(before, after, sizeof after) != 0) {
			enum mt_err se = state_save(state_path, &window);

			if (se != MT_OK) {
				fprintf(stderr, "error: writing --state %s: %s\n", state_path,
				        mt_err_str(se));
				goto out;
			}
		}
	}

	if (e != MT_OK) {
		const char *stage = mt_err_stage(e);

		if (!stage) {
			if (res->detail[0])
				fprintf(stderr, "error: opening the packet: %s: %s\n",
				        mt_err_str(e), res->detail);
			else
				rc = mt_cli__error("opening the packet", e);
			goto out;
		}
		fprintf(stderr, "refused: %s: %s\n", stage,
		        res->detail[0] ? res->detail : mt_err_str(e));
		rc = MT_EXIT_REFUSED;
		goto out;
	}

	e = mt_json_message_format(&res->msg, &json, &json_len);
	if (e != MT_OK) {
		rc = mt_cli__error("formatting the message as JSON", e);
		goto out;
	}
	if (verbose) {
		if (printf("{\"kind\": \"%s\", \"epoch\": %lu, \"message\": ",
		           res->kind == MT_PACKET_FAST ? "fast" : "sealed",
		           (unsigned long)res->epoch) < 0) {
			rc = mt_cli__error("writing stdout", MT_ERR_IO);
			goto out;
		}
	}
	if (fwrite(json, 1, json_len, stdout) != json_len ||
	    fputs(verbose ? "}\n" : "\n", stdout) == EOF) {
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
		goto out;
	}
	e = mt_cli__write_stdout(NULL, 0);
	if (e != MT_OK) {
		rc = mt_cli__error("writing stdout", e);
		goto out;
	}
	rc = MT_EXIT_OK;
out:
	mt_wipe(d.x, sizeof d.x);
	free(json);
	free(res);
	mt_opener_free(opener);
	mt_key_free(hub);
	mt_pubkey_free(kx_pub);
	mt_pubkey_free(ldev_pub);
	free(pkt);
	return rc;
}

int mt_cli_packet(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
		{"seal", packet_seal},
		{"open", packet_open},
		{NULL, NULL},
	};

	return mt_cli__dispatch("packet", "medtrust packet seal|open [options]", packet_help, subs,
	                        argc, argv);
}
