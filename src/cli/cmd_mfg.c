/*
 * cmd_mfg.c — `medtrust mfg init | make | verify-manifest`: the factory side
 * of the device identity lifecycle (protocol §1, issue part 2).
 *
 *   mfg init DIR --name NAME [--pin-source FILE]
 *   mfg make --mfg DIR --count N --class CLASS --out OUTDIR [--soft] [--prefix P]
 *   mfg verify-manifest FILE --root ROOT.pem
 *
 * `init` makes a manufacturer: a directory (0700) with its own SoftHSM2
 * token store (DIR/tokens, DIR/softhsm2.conf), a token "mfg-<slug>" holding
 * the root CA key, the manifest-signing key and the firmware-signing key
 * (P-256, sign only, generated inside it), the three certificates and
 * DIR/manufacturer.conf, which names the keys by pkcs11: URI with
 * pin-source=DIR/pin.  `make` makes a lot of devices: for each one its own
 * token (or, with --soft, an encrypted file: key) with the birth key `idev`
 * generated inside it, the birth certificate signed by the root, and then
 * one device manifest for the whole lot, signed by the manifest key.
 * `verify-manifest` is what a hospital runs on what it receives.
 *
 * Invariants:
 *  - No private key ever passes through this file: keys are generated in
 *    their store (mt_key_generate) and only public halves come back.  PINs
 *    are generated here, written once to a 0600 file with O_EXCL, wiped
 *    from memory, never printed and never put on a command line (tokens are
 *    initialised through PKCS#11 directly, not with softhsm2-util).
 *  - Serials never repeat: `make` takes a lock on DIR, reserves the whole
 *    range by writing next-serial back to manufacturer.conf (temporary
 *    file, fsync, rename) before it makes the first device.  A failed run
 *    leaves a gap, never a duplicate.
 *  - Directories are 0700, secrets (PINs, key files, configuration with key
 *    URIs) 0600, certificates 0644; nothing existing is overwritten.
 *
 * Why child processes: SoftHSM2 reads SOFTHSM2_CONF, and so sees one token
 * directory, only at C_Initialize, and the key store initialises a module
 * once per process.  Every device token has its own directory, so each one
 * is made in a forked child (which has never loaded a module), which sends
 * the birth key's SubjectPublicKeyInfo back through a pipe.  The parent
 * loads the manufacturer's token only afterwards, to issue the birth
 * certificates and sign the manifest, so no child ever inherits a module.
 *
 * Exit codes as everywhere (cli.h): 0; 1 key store, file or system failure;
 * 2 a manifest refused (verify-manifest); 64 usage.
 */
#define _GNU_SOURCE /* flock, O_NOFOLLOW, realpath */

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "cli.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_manifest.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_pki.h"
#include "medtrust/mt_util.h"

#define MFG_NAME_MAX 48       /* so that "<name> Manifest Signer" fits a CN */
#define MFG_SLUG_MAX 28       /* "mfg-" + slug fits a 32-byte token label */
#define MFG_PREFIX_MAX 26     /* prefix + 6 digits fits a token label */
#define MFG_SERIAL_LIMIT 999999u
#define MFG_COUNT_MAX 100000u
#define MFG_PIN_HEX 32        /* generated PINs: 16 random bytes in hex */
#define MFG_PATH_MAX 4096
#define MFG_URI_MAX (3 * MFG_PATH_MAX + 256)
#define MFG_CONF_MAX 65536
#define MFG_CERT_PEM_MAX 16384
#define MFG_ROOT_LIFETIME ((int64_t)(20 * 365 + 5) * 86400) /* 20 years */
#define MFG_SIGNER_LIFETIME ((int64_t)(10 * 365 + 3) * 86400) /* 10 years */
#define MFG_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

static const char init_usage[] = "medtrust mfg init DIR --name NAME [--pin-source FILE]";
static const char make_usage[] = "medtrust mfg make --mfg DIR --count N --class CLASS "
                                 "--out OUTDIR [--soft] [--prefix P]";
static const char verify_usage[] = "medtrust mfg verify-manifest FILE --root ROOT.pem";

static const char mfg_help[] =
	"usage: medtrust mfg init DIR --name NAME [--pin-source FILE]\n"
	"       medtrust mfg make --mfg DIR --count N --class CLASS --out OUTDIR\n"
	"                         [--soft] [--prefix P]\n"
	"       medtrust mfg verify-manifest FILE --root ROOT.pem\n"
	"\n"
	"The manufacturer's side of the device identities (protocol section 1):\n"
	"  init             create a manufacturer: token, root CA, signer certificates\n"
	"  make             make N devices (birth key, birth certificate) and one\n"
	"                   signed device manifest for the lot\n"
	"  verify-manifest  check a device manifest against a manufacturer root\n"
	"\n"
	"Run 'medtrust mfg <command> --help' for the options of each.\n"
	"\n"
	"Exit codes: 0 success, 1 key store, file or system failure, 2 manifest\n"
	"refused (verify-manifest), 64 usage error.\n";

static const char init_help[] =
	"usage: medtrust mfg init DIR --name NAME [--pin-source FILE]\n"
	"\n"
	"Create a manufacturer in DIR (new or empty; made mode 0700): a SoftHSM2\n"
	"token store (DIR/tokens, DIR/softhsm2.conf) with a token 'mfg-<slug>',\n"
	"inside it the root CA key, the manifest-signing and the firmware-signing\n"
	"keys (P-256); the root certificate (self-signed, 20 years) DIR/root.pem,\n"
	"DIR/manifest-signer.pem and DIR/firmware-signer.pem (10 years), and\n"
	"DIR/manufacturer.conf.  The user PIN is generated and written to DIR/pin\n"
	"(mode 0600), the SO PIN to DIR/so-pin (0600); neither is printed.\n"
	"An existing manufacturer is never overwritten.\n"
	"\n"
	"Options:\n"
	"  --name NAME        manufacturer name, 1-48 bytes: the O= of every\n"
	"                     certificate (required)\n"
	"  --pin-source FILE  use the user PIN in FILE (4-255 bytes) instead of\n"
	"                     generating DIR/pin\n"
	"  -h, --help         show this help\n"
	"\n"
	"Exit codes: 0 created, 1 key store, file or system failure (also: DIR\n"
	"not empty), 64 usage error.\n";

static const char make_help[] =
	"usage: medtrust mfg make --mfg DIR --count N --class CLASS --out OUTDIR\n"
	"                         [--soft] [--prefix P]\n"
	"\n"
	"Make N devices of the manufacturer in DIR.  Each gets a serial\n"
	"<prefix><6-digit number> (never repeated: the counter lives in\n"
	"DIR/manufacturer.conf) and a directory OUTDIR/<serial>/ (0700) with:\n"
	"  its own SoftHSM2 token (softhsm2.conf, tokens/, user PIN in 'pin',\n"
	"  0600) holding the birth key 'idev' -- or with --soft an encrypted\n"
	"  key file idev.key (passphrase MEDTRUST_KEY_PASSPHRASE, required);\n"
	"  birth.pem, the birth certificate (CN=serial, O=manufacturer,\n"
	"  serialNumber=serial, notAfter 99991231235959Z);\n"
	"  mfg-root.pem, the manufacturer root; device.conf.\n"
	"Then one signed device manifest OUTDIR/manifest.cose for the lot.\n"
	"Progress goes to stderr (a bar on a terminal for N >= 50).\n"
	"\n"
	"Options:\n"
	"  --mfg DIR       the manufacturer directory (from 'mfg init')\n"
	"  --count N       number of devices, 1-100000\n"
	"  --class CLASS   device class, 1-64 characters of [A-Za-z0-9._-]\n"
	"  --out OUTDIR    where the devices and the manifest go (made 0700)\n"
	"  --soft          file: keys instead of one token per device\n"
	"  --prefix P      serial prefix (default: the manufacturer's), up to 26\n"
	"                  of [A-Za-z0-9.-], starting with a letter or digit\n"
	"  -h, --help      show this help\n"
	"\n"
	"Exit codes: 0 made, 1 key store, file or system failure, 64 usage error.\n";

static const char verify_help[] =
	"usage: medtrust mfg verify-manifest FILE --root ROOT.pem\n"
	"\n"
	"Open the device manifest FILE (strict COSE_Sign1, signature by the\n"
	"certificate it carries, payload schema), verify that certificate up to\n"
	"the manufacturer root ROOT.pem, and print its entries as JSON lines:\n"
	"  {\"serial\": \"...\", \"class\": \"...\", \"kid\": \"<hex>\",\n"
	"   \"birth_cert_sha256\": \"<hex>\"}\n"
	"\n"
	"Options:\n"
	"  --root FILE   the manufacturer root certificate (PEM), required\n"
	"  -h, --help    show this help\n"
	"\n"
	"Exit codes: 0 valid, 1 a file could not be read, 2 manifest refused\n"
	"('refused: <reason>' on stderr), 64 usage error.\n";

/* ---- small helpers ------------------------------------------------------ */

/* "error: <path>: <strerror>" for a failed system call; exit 1. */
static int sys_error(const char *what, const char *path)
{
	fprintf(stderr, "error: %s %s: %s\n", what, path, strerror(errno));
	return MT_EXIT_ERROR;
}

/* snprintf into a fixed buffer; false when it does not fit. */
__attribute__((format(printf, 3, 4))) static bool fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, cap, f, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < cap;
}

/* Write a new file (O_EXCL, never through a symlink) with `mode`, fsync it. */
static enum mt_err write_new(const char *path, const void *data, size_t len, mode_t mode)
{
	const uint8_t *p = data;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);

	if (fd < 0)
		return MT_ERR_IO;
	if (fchmod(fd, mode) != 0)
		goto fail;
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	return close(fd) == 0 ? MT_OK : MT_ERR_IO;
fail:
	close(fd);
	(void)unlink(path);
	return MT_ERR_IO;
}

/* Replace `path` atomically: path.tmp, fsync, rename. */
static enum mt_err write_replace(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[MFG_PATH_MAX];

	if (!fmt(tmp, sizeof tmp, "%s.tmp", path))
		return MT_ERR_ARG;
	(void)unlink(tmp);
	if (write_new(tmp, data, len, mode) != MT_OK)
		return MT_ERR_IO;
	if (rename(tmp, path) != 0) {
		(void)unlink(tmp);
		return MT_ERR_IO;
	}
	return MT_OK;
}

static enum mt_err cert_write_pem(const struct mt_cert *c, const char *path)
{
	char pem[MFG_CERT_PEM_MAX];
	size_t len = 0;
	enum mt_err e = mt_cert_pem(c, pem, sizeof pem, &len);

	if (e != MT_OK)
		return e;
	return write_new(path, pem, len, 0644);
}

/* A fresh PIN: 16 random bytes in lowercase hex. */
static enum mt_err gen_pin(char out[MFG_PIN_HEX + 1])
{
	uint8_t raw[MFG_PIN_HEX / 2];
	enum mt_err e = mt_random(raw, sizeof raw);

	if (e == MT_OK)
		mt_cli__hex(raw, sizeof raw, out);
	OPENSSL_cleanse(raw, sizeof raw);
	return e;
}

/* Percent-encode a file path for a URI query value (RFC 3986: everything
 * but unreserved characters and '/'). */
static bool uri_escape(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		             (c >= '0' && c <= '9') || c == '/' || c == '.' || c == '_' ||
		             c == '-' || c == '~';

		if (o + (plain ? 1 : 3) >= cap)
			return false;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return true;
}

static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Serial prefix: [A-Za-z0-9][A-Za-z0-9.-]*, at most MFG_PREFIX_MAX bytes —
 * device-id characters that X.520 PrintableString (serialNumber) allows. */
static bool prefix_valid(const char *p)
{
	size_t n = strlen(p), i;

	if (n == 0 || n > MFG_PREFIX_MAX || !is_alnum(p[0]))
		return false;
	for (i = 1; i < n; i++)
		if (!is_alnum(p[i]) && p[i] != '.' && p[i] != '-')
			return false;
	return true;
}

static bool class_valid(const char *c)
{
	size_t n = strlen(c), i;

	if (n == 0 || n > MT_MANIFEST_CLASS_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!is_alnum(c[i]) && c[i] != '.' && c[i] != '-' && c[i] != '_')
			return false;
	return true;
}

/* ---- PKCS#11 token initialisation --------------------------------------- */

static const char *module_path(void)
{
	const char *m = getenv("MEDTRUST_PKCS11_MODULE");

	return m && *m ? m : MFG_SOFTHSM_MODULE;
}

/* Initialise a token `label` in the first free slot of the module (for
 * SoftHSM2: the free slot of the token directory SOFTHSM2_CONF names), with
 * SO PIN `so_pin`, and set its user PIN.  Uses a p11-kit instance of its
 * own, finalised before returning, so the key store initialises the module
 * afresh and sees the new token. */
static enum mt_err p11_init_token(const char *label, const char *so_pin, const char *user_pin)
{
	CK_FUNCTION_LIST *f;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, i;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_UTF8CHAR lab[32];
	size_t ll = strlen(label);
	enum mt_err e = MT_ERR_KS_TOKEN;
	bool found = false;
	CK_SLOT_ID slot = 0;

	if (ll == 0 || ll > sizeof lab)
		return MT_ERR_ARG;
	memset(lab, ' ', sizeof lab);
	memcpy(lab, label, ll);
	f = p11_kit_module_load(module_path(), 0);
	if (!f)
		return MT_ERR_KS_MODULE;
	if (p11_kit_module_initialize(f) != CKR_OK) {
		p11_kit_module_release(f);
		return MT_ERR_KS_MODULE;
	}
	if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		goto out;
	for (i = 0; i < n && !found; i++) {
		CK_TOKEN_INFO ti;

		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
			slot = slots[i];
			found = true;
		}
	}
	if (!found)
		goto out;
	e = MT_ERR_KS_OPERATION;
	if (f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin), lab) != CKR_OK)
		goto out;
	if (f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) != CKR_OK)
		goto out;
	if (f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin)) != CKR_OK)
		goto out;
	if (f->C_InitPIN(s, (CK_UTF8CHAR_PTR)user_pin, strlen(user_pin)) == CKR_OK)
		e = MT_OK;
	(void)f->C_Logout(s);
out:
	if (s != CK_INVALID_HANDLE)
		(void)f->C_CloseSession(s);
	(void)p11_kit_module_finalize(f);
	p11_kit_module_release(f);
	return e;
}

/* A SoftHSM2 token store in `dir`: dir/tokens (0700) and dir/softhsm2.conf
 * (0600); the absolute path of the conf into conf. */
static enum mt_err softhsm_store(const char *dir, char *conf, size_t cap)
{
	char tokens[MFG_PATH_MAX], text[MFG_PATH_MAX + 256];

	if (!fmt(tokens, sizeof tokens, "%s/tokens", dir) ||
	    !fmt(conf, cap, "%s/softhsm2.conf", dir) ||
	    !fmt(text, sizeof text,
	         "# SoftHSM2 configuration written by medtrust mfg\n"
	         "directories.tokendir = %s\n"
	         "objectstore.backend = file\n"
	         "log.level = ERROR\n"
	         "slots.removable = false\n",
	         tokens))
		return MT_ERR_ARG;
	if (mkdir(tokens, 0700) != 0)
		return MT_ERR_IO;
	return write_new(conf, text, strlen(text), 0600);
}

/* ---- manufacturer.conf --------------------------------------------------- */

struct mfg_conf {
	char name[MFG_NAME_MAX + 1];
	char token[33];
	char softhsm2_conf[MFG_PATH_MAX];
	char root_key[MFG_URI_MAX];
	char manifest_key[MFG_URI_MAX];
	char firmware_key[MFG_URI_MAX];
	char root_cert[MFG_PATH_MAX];
	char manifest_cert[MFG_PATH_MAX];
	char firmware_cert[MFG_PATH_MAX];
	char prefix[MFG_PREFIX_MAX + 1];
	uint64_t next_serial;
};

static enum mt_err conf_format(const struct mfg_conf *c, char *out, size_t cap, size_t *len)
{
	int n = snprintf(
		out, cap,
		"# medtrust manufacturer, written by 'medtrust mfg init'.\n"
		"# 'medtrust mfg make' rewrites next-serial; keep the rest as it is.\n"
		"# Lines are '<key> <value>'.\n"
		"\n"
		"# The manufacturer's name: O= of its certificates.\n"
		"name %s\n"
		"\n"
		"# The PKCS#11 token holding the keys, and the SoftHSM2 configuration\n"
		"# that finds it (with a real HSM: drop softhsm2-conf and add\n"
		"# module-path=... to the key URIs).\n"
		"token %s\n"
		"%s%s%s"
		"\n"
		"# Keys, generated inside the token (RFC 7512 URIs; the user PIN is read\n"
		"# from the pin-source file).\n"
		"root-key %s\n"
		"manifest-key %s\n"
		"firmware-key %s\n"
		"\n"
		"# Certificates.\n"
		"root-cert %s\n"
		"manifest-cert %s\n"
		"firmware-cert %s\n"
		"\n"
		"# Device serials are <serial-prefix><6-digit number>; next-serial only\n"
		"# ever grows, so serials never repeat.\n"
		"serial-prefix %s\n"
		"next-serial %llu\n",
		c->name, c->token, c->softhsm2_conf[0] ? "softhsm2-conf " : "", c->softhsm2_conf,
		c->softhsm2_conf[0] ? "\n" : "", c->root_key, c->manifest_key, c->firmware_key,
		c->root_cert, c->manifest_cert, c->firmware_cert, c->prefix,
		(unsigned long long)c->next_serial);

	if (n < 0 || (size_t)n >= cap)
		return MT_ERR_BUFFER;
	*len = (size_t)n;
	return MT_OK;
}

static bool conf_set(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n >= cap)
		return false;
	memcpy(dst, v, n + 1);
	return true;
}

/* Parse manufacturer.conf; what is wrong is named in *why.  Every key must
 * appear (softhsm2-conf may be absent: a real HSM), none is unknown. */
static enum mt_err conf_parse(char *text, struct mfg_conf *c, const char **why)
{
	struct field {
		const char *key;
		char *dst;
		size_t cap;
	} fields[] = {
		{"name", c->name, sizeof c->name},
		{"token", c->token, sizeof c->token},
		{"softhsm2-conf", c->softhsm2_conf, sizeof c->softhsm2_conf},
		{"root-key", c->root_key, sizeof c->root_key},
		{"manifest-key", c->manifest_key, sizeof c->manifest_key},
		{"firmware-key", c->firmware_key, sizeof c->firmware_key},
		{"root-cert", c->root_cert, sizeof c->root_cert},
		{"manifest-cert", c->manifest_cert, sizeof c->manifest_cert},
		{"firmware-cert", c->firmware_cert, sizeof c->firmware_cert},
		{"serial-prefix", c->prefix, sizeof c->prefix},
	};
	const size_t n_fields = sizeof fields / sizeof fields[0];
	char *line = text, *nl;
	bool have_next = false;
	size_t i;

	for (i = 0; i < n_fields; i++)
		fields[i].dst[0] = '\0';
	c->next_serial = 0;
	for (; line && *line; line = nl) {
		char *v;

		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		v = strchr(line, ' ');
		if (!v) {
			*why = "a line without a value";
			return MT_ERR_ARG;
		}
		*v++ = '\0';
		if (strcmp(line, "next-serial") == 0) {
			if (!mt_cli__parse_u64(v, &c->next_serial) || c->next_serial < 1 ||
			    c->next_serial > MFG_SERIAL_LIMIT + 1) {
				*why = "next-serial out of range";
				return MT_ERR_ARG;
			}
			have_next = true;
			continue;
		}
		for (i = 0; i < n_fields; i++)
			if (strcmp(line, fields[i].key) == 0)
				break;
		if (i == n_fields) {
			*why = "an unknown key";
			return MT_ERR_ARG;
		}
		if (!conf_set(fields[i].dst, fields[i].cap, v) || !v[0]) {
			*why = "a value too long or empty";
			return MT_ERR_ARG;
		}
	}
	for (i = 0; i < n_fields; i++)
		if (!fields[i].dst[0] && strcmp(fields[i].key, "softhsm2-conf") != 0) {
			*why = "a key missing";
			return MT_ERR_ARG;
		}
	if (!have_next) {
		*why = "next-serial missing";
		return MT_ERR_ARG;
	}
	if (!prefix_valid(c->prefix)) {
		*why = "serial-prefix invalid";
		return MT_ERR_ARG;
	}
	return MT_OK;
}

/* ---- mfg init ------------------------------------------------------------ */

/* RFC 4514 value: commas escaped (the only escape mt_pki reads). */
static bool rdn_escape(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	for (; *s; s++) {
		if (*s == ',' && o + 1 < cap)
			out[o++] = '\\';
		if (o + 1 >= cap)
			return false;
		out[o++] = *s;
	}
	out[o] = '\0';
	return true;
}

static bool name_valid(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0 || n > MFG_NAME_MAX)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f || c == '\\' || c == '+' || c == '=' || c == '"')
			return false;
	}
	return name[0] != ' ' && name[0] != '#' && name[n - 1] != ' ';
}

/* "Acme Medical, Inc." -> "acme-medical-inc" (at most MFG_SLUG_MAX). */
static void slugify(const char *name, char *out)
{
	size_t o = 0;
	bool dash = false;

	for (; *name && o < MFG_SLUG_MAX; name++) {
		char c = *name;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (dash && o > 0 && o + 1 < MFG_SLUG_MAX)
				out[o++] = '-';
			dash = false;
			out[o++] = c;
		} else {
			dash = true;
		}
	}
	out[o] = '\0';
}

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!d)
		return false;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = false;
	closedir(d);
	return empty;
}

static enum mt_err issue_signer(struct mt_key *root, const struct mt_cert *root_cert,
                                struct mt_key *k, const char *ename, const char *what,
                                int code_signing, const char *path)
{
	char subject[256];
	struct mt_pki_leaf leaf;
	struct mt_cert *c = NULL;
	enum mt_err e;

	if (!fmt(subject, sizeof subject, "CN=%s %s,O=%s", ename, what, ename))
		return MT_ERR_ARG;
	memset(&leaf, 0, sizeof leaf);
	leaf.profile = MT_PKI_SIGNER;
	leaf.subject = subject;
	leaf.lifetime_s = MFG_SIGNER_LIFETIME;
	leaf.path_len = -1;
	leaf.code_signing_eku = code_signing;
	e = mt_pki_issue(root, root_cert, mt_key_public(k), &leaf, &c);
	if (e == MT_OK)
		e = cert_write_pem(c, path);
	mt_cert_free(c);
	return e;
}

static int mfg_init(int argc, char **argv)
{
	const char *cmd = "mfg init";
	const char *name = NULL, *pin_src = NULL;
	char dir[PATH_MAX], path[MFG_PATH_MAX], conf_path[MFG_PATH_MAX], pin_path[PATH_MAX];
	char esc_pin[3 * PATH_MAX + 1], ename[3 * MFG_NAME_MAX], slug[MFG_SLUG_MAX + 1];
	char so_pin[MFG_PIN_HEX + 1], user_pin[256], subject[256];
	char text[MFG_CONF_MAX];
	struct mfg_conf *c = NULL;
	struct mt_key *k_root = NULL, *k_man = NULL, *k_fw = NULL;
	struct mt_cert *root = NULL;
	struct mt_pki_ca_opts ca;
	size_t len = 0;
	enum mt_err e;
	int pos, u, rc = MT_EXIT_ERROR;
	const struct mt_cli_opt opts[] = {
		{"name", 0, MT_CLI_VALUE, &name, NULL},
		{"pin-source", 0, MT_CLI_VALUE, &pin_src, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};

	u = mt_cli__parse_opts(cmd, init_usage, init_help, argc, argv, opts, &pos);
	if (u != MT_CLI_CONTINUE)
		return u;
	if (argc - pos != 1)
		return mt_cli__usage(cmd, init_usage, "expected exactly one directory");
	if (!name)
		return mt_cli__usage(cmd, init_usage, "missing --name");
	if (!name_valid(name))
		return mt_cli__usage(cmd, init_usage,
		                     "--name: 1-48 bytes without control characters, '\\', '+', "
		                     "'=', '\"' or surrounding spaces");
	slugify(name, slug);
	if (!slug[0])
		return mt_cli__usage(cmd, init_usage, "--name needs at least one letter or digit");
	if (!rdn_escape(name, ename, sizeof ename))
		return mt_cli__usage(cmd, init_usage, "--name too long");

	/* The PIN first: a bad --pin-source should leave nothing behind. */
	if (pin_src) {
		uint8_t *buf = NULL;
		size_t pl = 0;

		if (!realpath(pin_src, pin_path))
			return sys_error("reading --pin-source", pin_src);
		if (mt_file_read(pin_path, 256, &buf, &pl) != MT_OK)
			return sys_error("reading --pin-source", pin_src);
		if (pl > 0 && buf[pl - 1] == '\n')
			pl--;
		if (pl < 4 || pl > 255 || memchr(buf, 0, pl) || memchr(buf, '\n', pl)) {
			OPENSSL_cleanse(buf, pl);
			free(buf);
			fprintf(stderr, "error: --pin-source %s: the PIN must be 4-255 bytes on one "
			                "line\n",
			        pin_src);
			return MT_EXIT_ERROR;
		}
		memcpy(user_pin, buf, pl);
		user_pin[pl] = '\0';
		OPENSSL_cleanse(buf, pl);
		free(buf);
	} else if (gen_pin(user_pin) != MT_OK) {
		return mt_cli__error("generating the PIN", MT_ERR_CRYPTO);
	}
	if (gen_pin(so_pin) != MT_OK) {
		OPENSSL_cleanse(user_pin, sizeof user_pin);
		return mt_cli__error("generating the SO PIN", MT_ERR_CRYPTO);
	}

	if (mkdir(argv[pos], 0700) != 0 && errno != EEXIST) {
		rc = sys_error("creating", argv[pos]);
		goto out;
	}
	if (!realpath(argv[pos], dir)) {
		rc = sys_error("resolving", argv[pos]);
		goto out;
	}
	if (!dir_is_empty(dir)) {
		fprintf(stderr, "error: %s: not an empty directory (a manufacturer is never "
		                "overwritten)\n",
		        dir);
		goto out;
	}
	if (chmod(dir, 0700) != 0) {
		rc = sys_error("chmod", dir);
		goto out;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		rc = mt_cli__error("init", MT_ERR_NOMEM);
		goto out;
	}

	if (softhsm_store(dir, c->softhsm2_conf, sizeof c->softhsm2_conf) != MT_OK) {
		rc = sys_error("creating the token store in", dir);
		goto out;
	}
	if (!pin_src) {
		if (!fmt(pin_path, sizeof pin_path, "%s/pin", dir) ||
		    write_new(pin_path, user_pin, strlen(user_pin), 0600) != MT_OK) {
			rc = sys_error("writing", pin_path);
			goto out;
		}
	}
	if (!fmt(path, sizeof path, "%s/so-pin", dir) ||
	    write_new(path, so_pin, strlen(so_pin), 0600) != MT_OK) {
		rc = sys_error("writing", path);
		goto out;
	}
	if (setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1) != 0) {
		rc = sys_error("setting SOFTHSM2_CONF to", c->softhsm2_conf);
		goto out;
	}
	if (!fmt(c->token, sizeof c->token, "mfg-%s", slug)) {
		rc = mt_cli__error("token label", MT_ERR_ARG);
		goto out;
	}
	e = p11_init_token(c->token, so_pin, user_pin);
	if (e != MT_OK) {
		rc = mt_cli__error("initialising the manufacturer token", e);
		goto out;
	}

	if (!uri_escape(pin_path, esc_pin, sizeof esc_pin) ||
	    !fmt(c->root_key, sizeof c->root_key, "pkcs11:token=%s;object=root-ca?pin-source=%s",
	         c->token, esc_pin) ||
	    !fmt(c->manifest_key, sizeof c->manifest_key,
	         "pkcs11:token=%s;object=manifest-signer?pin-source=%s", c->token, esc_pin) ||
	    !fmt(c->firmware_key, sizeof c->firmware_key,
	         "pkcs11:token=%s;object=firmware-signer?pin-source=%s", c->token, esc_pin) ||
	    !fmt(c->root_cert, sizeof c->root_cert, "%s/root.pem", dir) ||
	    !fmt(c->manifest_cert, sizeof c->manifest_cert, "%s/manifest-signer.pem", dir) ||
	    !fmt(c->firmware_cert, sizeof c->firmware_cert, "%s/firmware-signer.pem", dir) ||
	    !fmt(c->prefix, sizeof c->prefix, "%.*s-", MFG_PREFIX_MAX - 1, slug)) {
		fprintf(stderr, "error: %s: path too long\n", dir);
		goto out;
	}
	memcpy(c->name, name, strlen(name) + 1);
	c->next_serial = 1;

	if ((e = mt_key_generate(c->root_key, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k_root)) != MT_OK ||
	    (e = mt_key_generate(c->manifest_key, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k_man)) !=
	            MT_OK ||
	    (e = mt_key_generate(c->firmware_key, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k_fw)) != MT_OK) {
		rc = mt_cli__error("generating the manufacturer keys", e);
		goto out;
	}
	if (!fmt(subject, sizeof subject, "CN=%s Root CA,O=%s", ename, ename)) {
		rc = mt_cli__error("root subject", MT_ERR_ARG);
		goto out;
	}
	memset(&ca, 0, sizeof ca);
	ca.subject = subject;
	ca.lifetime_s = MFG_ROOT_LIFETIME;
	ca.path_len = 0; /* the root signs leaves only */
	if ((e = mt_pki_ca_create(k_root, &ca, &root)) != MT_OK) {
		rc = mt_cli__error("issuing the root certificate", e);
		goto out;
	}
	if ((e = cert_write_pem(root, c->root_cert)) != MT_OK) {
		rc = sys_error("writing", c->root_cert);
		goto out;
	}
	if ((e = issue_signer(k_root, root, k_man, ename, "Manifest Signer", 0,
	                      c->manifest_cert)) != MT_OK) {
		rc = mt_cli__error("issuing the manifest-signing certificate", e);
		goto out;
	}
	if ((e = issue_signer(k_root, root, k_fw, ename, "Firmware Signer", 1,
	                      c->firmware_cert)) != MT_OK) {
		rc = mt_cli__error("issuing the firmware-signing certificate", e);
		goto out;
	}
	if (conf_format(c, text, sizeof text, &len) != MT_OK ||
	    !fmt(conf_path, sizeof conf_path, "%s/manufacturer.conf", dir) ||
	    write_new(conf_path, text, len, 0600) != MT_OK) {
		rc = sys_error("writing", conf_path);
		goto out;
	}
	printf("manufacturer '%s' created in %s: token %s, root %s\n", name, dir, c->token,
	       c->root_cert);
	rc = fflush(stdout) == 0 ? MT_EXIT_OK : MT_EXIT_ERROR;
out:
	OPENSSL_cleanse(user_pin, sizeof user_pin);
	OPENSSL_cleanse(so_pin, sizeof so_pin);
	mt_cert_free(root);
	mt_key_free(k_root);
	mt_key_free(k_man);
	mt_key_free(k_fw);
	free(c);
	return rc;
}

/* ---- mfg make ------------------------------------------------------------ */

struct progress {
	bool bar;       /* a terminal and N >= 50 */
	unsigned n;
	unsigned last;  /* last 10% step printed */
	const char *what;
};

static void progress_start(struct progress *p, unsigned n, const char *what)
{
	p->bar = isatty(STDERR_FILENO) && n >= 50;
	p->n = n;
	p->last = 0;
	p->what = what;
}

static void progress_tick(struct progress *p, unsigned done)
{
	if (p->bar) {
		char bar[31];
		unsigned fill = (unsigned)((uint64_t)done * 30 / p->n), i;

		for (i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : ' ';
		bar[30] = '\0';
		fprintf(stderr, "\r[%s] %u/%u %s", bar, done, p->n, p->what);
		if (done == p->n)
			fputc('\n', stderr);
		return;
	}
	{
		unsigned step = (unsigned)((uint64_t)done * 10 / p->n);

		if (step > p->last) {
			p->last = step;
			fprintf(stderr, "mfg make: %s %u/%u (%u%%)\n", p->what, done, p->n, step * 10);
		}
	}
}

struct device {
	char serial[MT_DEVICE_ID_MAX + 1];
	char dir[MFG_PATH_MAX];
	char key_uri[MFG_URI_MAX];
	char softhsm2_conf[MFG_PATH_MAX];
	uint8_t spki[MT_SPKI_MAX];
	size_t spki_len;
};

/* Child side: the device's token store, PIN, token and birth key; the SPKI
 * goes to `fd`.  Runs in a fresh child that has loaded no module. */
static int device_token_child(struct device *d, int fd)
{
	char pin[MFG_PIN_HEX + 1], so_pin[MFG_PIN_HEX + 1], pin_path[MFG_PATH_MAX];
	char esc[3 * MFG_PATH_MAX + 1];
	struct mt_key *k = NULL;
	const uint8_t *p;
	size_t left;
	enum mt_err e;

	if (softhsm_store(d->dir, d->softhsm2_conf, sizeof d->softhsm2_conf) != MT_OK)
		return sys_error("creating the token store in", d->dir);
	if (gen_pin(pin) != MT_OK || gen_pin(so_pin) != MT_OK)
		return mt_cli__error("generating a PIN", MT_ERR_CRYPTO);
	if (!fmt(pin_path, sizeof pin_path, "%s/pin", d->dir) ||
	    write_new(pin_path, pin, strlen(pin), 0600) != MT_OK)
		return sys_error("writing", pin_path);
	if (setenv("SOFTHSM2_CONF", d->softhsm2_conf, 1) != 0)
		return sys_error("setting SOFTHSM2_CONF to", d->softhsm2_conf);
	/* The device token's SO PIN is thrown away: nobody re-initialises the
	 * user PIN of a shipped device. */
	e = p11_init_token(d->serial, so_pin, pin);
	OPENSSL_cleanse(so_pin, sizeof so_pin);
	OPENSSL_cleanse(pin, sizeof pin);
	if (e != MT_OK)
		return mt_cli__error("initialising the device token", e);
	if (!uri_escape(pin_path, esc, sizeof esc) ||
	    !fmt(d->key_uri, sizeof d->key_uri, "pkcs11:token=%s;object=idev?pin-source=%s",
	         d->serial, esc))
		return mt_cli__error("key URI", MT_ERR_ARG);
	e = mt_key_generate(d->key_uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k);
	if (e == MT_OK)
		e = mt_pubkey_spki(mt_key_public(k), d->spki, sizeof d->spki, &d->spki_len);
	mt_key_free(k);
	if (e != MT_OK)
		return mt_cli__error("generating the birth key", e);
	p = d->spki;
	left = d->spki_len;
	while (left > 0) {
		ssize_t w = write(fd, p, left);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return MT_EXIT_ERROR;
		}
		p += w;
		left -= (size_t)w;
	}
	return MT_EXIT_OK;
}

/* Parent side: fork the child, read the SPKI back. */
static int device_token(struct device *d)
{
	int fds[2], status = 0;
	pid_t pid;
	size_t got = 0;

	if (pipe(fds) != 0)
		return sys_error("pipe for", d->serial);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return sys_error("fork for", d->serial);
	}
	if (pid == 0) {
		int rc;

		close(fds[0]);
		rc = device_token_child(d, fds[1]);
		close(fds[1]);
		fflush(stderr);
		_exit(rc);
	}
	close(fds[1]);
	for (;;) {
		ssize_t r = read(fds[0], d->spki + got, sizeof d->spki - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == sizeof d->spki)
			break;
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return sys_error("waiting for the child of", d->serial);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got == 0) {
		fprintf(stderr, "error: making the token of %s failed\n", d->serial);
		return MT_EXIT_ERROR;
	}
	d->spki_len = got;
	/* The child filled these in its own memory: compute them again here. */
	{
		char pin_path[MFG_PATH_MAX], esc[3 * MFG_PATH_MAX + 1];

		if (!fmt(d->softhsm2_conf, sizeof d->softhsm2_conf, "%s/softhsm2.conf", d->dir) ||
		    !fmt(pin_path, sizeof pin_path, "%s/pin", d->dir) ||
		    !uri_escape(pin_path, esc, sizeof esc) ||
		    !fmt(d->key_uri, sizeof d->key_uri, "pkcs11:token=%s;object=idev?pin-source=%s",
		         d->serial, esc))
			return mt_cli__error("key URI", MT_ERR_ARG);
	}
	return MT_EXIT_OK;
}

static int device_soft(struct device *d)
{
	char path[MFG_PATH_MAX];
	struct mt_key *k = NULL;
	enum mt_err e;

	if (!fmt(path, sizeof path, "%s/idev.key", d->dir) ||
	    !fmt(d->key_uri, sizeof d->key_uri, "file:%s", path))
		return mt_cli__error("key path", MT_ERR_ARG);
	e = mt_key_generate(d->key_uri, MT_KEY_P256, MT_KEY_ROLE_SIGN, &k);
	if (e == MT_OK)
		e = mt_pubkey_spki(mt_key_public(k), d->spki, sizeof d->spki, &d->spki_len);
	mt_key_free(k);
	if (e != MT_OK)
		return mt_cli__error("generating the birth key", e);
	return MT_EXIT_OK;
}

/* Birth certificate, root copy and device.conf of one device; its manifest
 * entry into `ent`. */
static int device_finish(const struct device *d, const char *cls, const struct mfg_conf *c,
                         struct mt_key *root_key, const struct mt_cert *root,
                         struct mt_manifest_entry *ent)
{
	char path[MFG_PATH_MAX], text[3 * MFG_PATH_MAX + MFG_URI_MAX + 512];
	struct mt_pubkey *pk = NULL;
	struct mt_cert *birth = NULL;
	struct mt_pki_leaf leaf;
	enum mt_err e;
	int rc = MT_EXIT_ERROR;

	if ((e = mt_pubkey_from_spki(d->spki, d->spki_len, &pk)) != MT_OK)
		return mt_cli__error("reading the birth key", e);
	memset(&leaf, 0, sizeof leaf);
	leaf.profile = MT_PKI_BIRTH;
	leaf.id = d->serial;
	leaf.manufacturer = c->name;
	leaf.path_len = -1;
	e = mt_pki_issue(root_key, root, pk, &leaf, &birth);
	mt_pubkey_free(pk);
	if (e != MT_OK)
		return mt_cli__error("issuing the birth certificate", e);
	memset(ent, 0, sizeof *ent);
	memcpy(ent->serial, d->serial, strlen(d->serial) + 1);
	memcpy(ent->device_class, cls, strlen(cls) + 1);
	if ((e = mt_cert_kid(birth, ent->birth_kid)) != MT_OK ||
	    (e = mt_cert_fingerprint(birth, ent->birth_cert_sha256)) != MT_OK) {
		rc = mt_cli__error("the birth certificate's kid", e);
		goto out;
	}
	if (!fmt(path, sizeof path, "%s/birth.pem", d->dir) || cert_write_pem(birth, path) != MT_OK) {
		rc = sys_error("writing", path);
		goto out;
	}
	if (!fmt(path, sizeof path, "%s/mfg-root.pem", d->dir) ||
	    cert_write_pem(root, path) != MT_OK) {
		rc = sys_error("writing", path);
		goto out;
	}
	if (!fmt(text, sizeof text,
	         "# medtrust device, written by 'medtrust mfg make'.\n"
	         "serial %s\n"
	         "class %s\n"
	         "manufacturer %s\n"
	         "# The birth key idev (never leaves its store).\n"
	         "key %s\n"
	         "%s%s%s"
	         "birth-cert %s/birth.pem\n"
	         "mfg-root %s/mfg-root.pem\n",
	         d->serial, cls, c->name, d->key_uri, d->softhsm2_conf[0] ? "softhsm2-conf " : "",
	         d->softhsm2_conf, d->softhsm2_conf[0] ? "\n" : "", d->dir, d->dir) ||
	    !fmt(path, sizeof path, "%s/device.conf", d->dir) ||
	    write_new(path, text, strlen(text), 0600) != MT_OK) {
		rc = sys_error("writing", path);
		goto out;
	}
	rc = MT_EXIT_OK;
out:
	mt_cert_free(birth);
	return rc;
}

static int mfg_make(int argc, char **argv)
{
	const char *cmd = "mfg make";
	const char *mfg_s = NULL, *count_s = NULL, *cls = NULL, *out_s = NULL, *prefix = NULL;
	const char *why = "";
	char dir[PATH_MAX], out[PATH_MAX], path[MFG_PATH_MAX], text[MFG_CONF_MAX];
	struct mfg_conf *c = NULL;
	struct device *devs = NULL;
	struct mt_manifest_entry *ents = NULL;
	struct mt_key *root_key = NULL, *man_key = NULL;
	struct mt_cert *root = NULL, *man_cert = NULL;
	struct progress prog;
	bool soft = false;
	uint8_t *buf = NULL, *manifest = NULL;
	size_t len = 0, manifest_len = 0;
	uint32_t count = 0, i;
	uint64_t first;
	enum mt_err e;
	int pos, u, rc = MT_EXIT_ERROR, lock_fd = -1;
	const struct mt_cli_opt opts[] = {
		{"mfg", 0, MT_CLI_VALUE, &mfg_s, NULL},
		{"count", 0, MT_CLI_VALUE, &count_s, NULL},
		{"class", 0, MT_CLI_VALUE, &cls, NULL},
		{"out", 0, MT_CLI_VALUE, &out_s, NULL},
		{"soft", 0, MT_CLI_FLAG_ONCE, NULL, &soft},
		{"prefix", 0, MT_CLI_VALUE, &prefix, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};

	u = mt_cli__parse_opts(cmd, make_usage, make_help, argc, argv, opts, &pos);
	if (u != MT_CLI_CONTINUE)
		return u;
	if (argc != pos)
		return mt_cli__usage(cmd, make_usage, "unexpected argument '%s'", argv[pos]);
	if (!mfg_s || !count_s || !cls || !out_s)
		return mt_cli__usage(cmd, make_usage, "missing %s",
		                     !mfg_s ? "--mfg" : !count_s ? "--count" : !cls ? "--class" : "--out");
	if (!mt_cli__parse_u32(count_s, &count) || count == 0 || count > MFG_COUNT_MAX)
		return mt_cli__usage(cmd, make_usage, "--count: '%s' is not a number 1-100000",
		                     count_s);
	if (!class_valid(cls))
		return mt_cli__usage(cmd, make_usage,
		                     "--class: 1-64 characters of [A-Za-z0-9._-]");
	if (prefix && !prefix_valid(prefix))
		return mt_cli__usage(cmd, make_usage,
		                     "--prefix: up to 26 of [A-Za-z0-9.-], starting with a letter "
		                     "or digit");
	if (soft && !getenv("MEDTRUST_KEY_PASSPHRASE")) {
		fputs("error: --soft: MEDTRUST_KEY_PASSPHRASE is not set (the key files are "
		      "encrypted with it)\n",
		      stderr);
		return MT_EXIT_ERROR;
	}

	if (!realpath(mfg_s, dir))
		return sys_error("opening --mfg", mfg_s);
	/* One make at a time per manufacturer: the serial counter is ours. */
	lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd < 0)
		return sys_error("opening --mfg", dir);
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = sys_error("locking (is another 'mfg make' running?)", dir);
		goto out;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		rc = mt_cli__error("make", MT_ERR_NOMEM);
		goto out;
	}
	if (!fmt(path, sizeof path, "%s/manufacturer.conf", dir) ||
	    mt_file_read(path, MFG_CONF_MAX - 1, &buf, &len) != MT_OK) {
		rc = sys_error("reading", path);
		goto out;
	}
	e = conf_parse((char *)buf, c, &why);
	free(buf);
	buf = NULL;
	if (e != MT_OK) {
		fprintf(stderr, "error: %s: %s\n", path, why);
		goto out;
	}
	if (!prefix)
		prefix = c->prefix;
	if (c->next_serial + count - 1 > MFG_SERIAL_LIMIT) {
		fprintf(stderr, "error: %s: only %llu serials left\n", path,
		        (unsigned long long)(MFG_SERIAL_LIMIT + 1 - c->next_serial));
		goto out;
	}
	if ((e = mt_cert_from_pem_file(c->root_cert, &root)) != MT_OK ||
	    (e = mt_cert_from_pem_file(c->manifest_cert, &man_cert)) != MT_OK) {
		rc = mt_cli__error("reading the manufacturer certificates", e);
		goto out;
	}
	if (mkdir(out_s, 0700) != 0 && errno != EEXIST) {
		rc = sys_error("creating", out_s);
		goto out;
	}
	if (!realpath(out_s, out)) {
		rc = sys_error("resolving", out_s);
		goto out;
	}
	if (!fmt(path, sizeof path, "%s/manifest.cose", out) || access(path, F_OK) == 0) {
		fprintf(stderr, "error: %s/manifest.cose exists: use another --out\n", out);
		goto out;
	}
	devs = calloc(count, sizeof *devs);
	ents = calloc(count, sizeof *ents);
	if (!devs || !ents) {
		rc = mt_cli__error("make", MT_ERR_NOMEM);
		goto out;
	}

	/* Reserve the serials before making anything. */
	first = c->next_serial;
	c->next_serial += count;
	if (!fmt(path, sizeof path, "%s/manufacturer.conf", dir) ||
	    conf_format(c, text, sizeof text, &len) != MT_OK ||
	    write_replace(path, text, len, 0600) != MT_OK) {
		rc = sys_error("updating", path);
		goto out;
	}

	/* Phase 1: the birth keys, each in its own store. */
	progress_start(&prog, count, soft ? "keys (files)" : "keys (tokens)");
	for (i = 0; i < count; i++) {
		struct device *d = &devs[i];

		if (!fmt(d->serial, sizeof d->serial, "%s%06llu", prefix,
		         (unsigned long long)(first + i)) ||
		    !mt_device_id_valid(d->serial, strlen(d->serial)) ||
		    !fmt(d->dir, sizeof d->dir, "%s/%s", out, d->serial)) {
			rc = mt_cli__error("serial", MT_ERR_ARG);
			goto out;
		}
		if (mkdir(d->dir, 0700) != 0) {
			rc = sys_error("creating", d->dir);
			goto out;
		}
		rc = soft ? device_soft(d) : device_token(d);
		if (rc != MT_EXIT_OK)
			goto out;
		rc = MT_EXIT_ERROR;
		progress_tick(&prog, i + 1);
	}

	/* Phase 2: the manufacturer's token signs. */
	if (c->softhsm2_conf[0] && setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1) != 0) {
		rc = sys_error("setting SOFTHSM2_CONF to", c->softhsm2_conf);
		goto out;
	}
	if ((e = mt_key_open(c->root_key, &root_key)) != MT_OK ||
	    (e = mt_key_open(c->manifest_key, &man_key)) != MT_OK) {
		rc = mt_cli__error("opening the manufacturer keys", e);
		goto out;
	}
	progress_start(&prog, count, "certificates");
	for (i = 0; i < count; i++) {
		rc = device_finish(&devs[i], cls, c, root_key, root, &ents[i]);
		if (rc != MT_EXIT_OK)
			goto out;
		rc = MT_EXIT_ERROR;
		progress_tick(&prog, i + 1);
	}
	{
		const uint8_t *chain[1];
		size_t chain_len[1];

		chain[0] = mt_cert_der(man_cert, &chain_len[0]);
		e = mt_manifest_sign(man_key, chain, chain_len, 1, ents, count, &manifest,
		                     &manifest_len);
		if (e != MT_OK) {
			rc = mt_cli__error("signing the manifest", e);
			goto out;
		}
	}
	if (!fmt(path, sizeof path, "%s/manifest.cose", out) ||
	    write_new(path, manifest, manifest_len, 0644) != MT_OK) {
		rc = sys_error("writing", path);
		goto out;
	}
	printf("made %u devices (%s .. %s) in %s; manifest %s\n", count, devs[0].serial,
	       devs[count - 1].serial, out, path);
	rc = fflush(stdout) == 0 ? MT_EXIT_OK : MT_EXIT_ERROR;
out:
	free(manifest);
	free(devs);
	free(ents);
	mt_key_free(root_key);
	mt_key_free(man_key);
	mt_cert_free(root);
	mt_cert_free(man_cert);
	free(c);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}

/* ---- mfg verify-manifest -------------------------------------------------- */

/* A JSON string body: '"', '\' and control characters escaped. */
static void json_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
}

static int mfg_verify(int argc, char **argv)
{
	const char *cmd = "mfg verify-manifest";
	const char *root_s = NULL, *why = NULL;
	struct mt_manifest m;
	struct mt_cert *root = NULL, *leaf = NULL, *inter[MT_MANIFEST_CHAIN_MAX];
	struct mt_pki_verify_opts vo;
	bool opened = false;
	uint8_t *buf = NULL;
	size_t len = 0, n_inter = 0, i;
	enum mt_err e;
	int pos, u, rc = MT_EXIT_ERROR;
	const struct mt_cli_opt opts[] = {
		{"root", 0, MT_CLI_VALUE, &root_s, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};

	u = mt_cli__parse_opts(cmd, verify_usage, verify_help, argc, argv, opts, &pos);
	if (u != MT_CLI_CONTINUE)
		return u;
	if (argc - pos != 1)
		return mt_cli__usage(cmd, verify_usage, "expected exactly one manifest file");
	if (!root_s)
		return mt_cli__usage(cmd, verify_usage, "missing --root");

	memset(&m, 0, sizeof m);
	if ((e = mt_cert_from_pem_file(root_s, &root)) != MT_OK) {
		fprintf(stderr, "error: reading --root %s: %s\n", root_s, mt_err_str(e));
		return MT_EXIT_ERROR;
	}
	e = mt_file_read(argv[pos], MT_MANIFEST_MAX, &buf, &len);
	if (e == MT_ERR_BUFFER) {
		fputs("refused: manifest larger than 16 MiB\n", stderr);
		rc = MT_EXIT_REFUSED;
		goto out;
	}
	if (e != MT_OK) {
		rc = sys_error("reading", argv[pos]);
		goto out;
	}
	e = mt_manifest_open(buf, len, &m, &why);
	if (e != MT_OK) {
		fprintf(stderr, "refused: manifest: %s%s%s\n", mt_err_str(e), why ? ": " : "",
		        why ? why : "");
		rc = MT_EXIT_REFUSED;
		goto out;
	}
	opened = true;
	if ((e = mt_cert_from_der(m.chain[0], m.chain_len[0], &leaf)) != MT_OK) {
		fprintf(stderr, "refused: signer certificate: %s\n", mt_err_str(e));
		rc = MT_EXIT_REFUSED;
		goto out;
	}
	for (i = 1; i < m.n_chain; i++) {
		if ((e = mt_cert_from_der(m.chain[i], m.chain_len[i], &inter[n_inter])) != MT_OK) {
			fprintf(stderr, "refused: chain certificate %zu: %s\n", i, mt_err_str(e));
			rc = MT_EXIT_REFUSED;
			goto out;
		}
		n_inter++;
	}
	memset(&vo, 0, sizeof vo);
	vo.purpose = MT_PKI_PURPOSE_SIGNER;
	vo.intermediates = (const struct mt_cert *const *)inter;
	vo.n_intermediates = n_inter;
	{
		const struct mt_cert *roots[1] = {root};

		e = mt_pki_verify(leaf, roots, 1, &vo);
	}
	if (e != MT_OK) {
		fprintf(stderr, "refused: chain: %s\n", mt_err_str(e));
		rc = MT_EXIT_REFUSED;
		goto out;
	}
	for (i = 0; i < m.n_entries; i++) {
		const struct mt_manifest_entry *en = &m.entries[i];
		char kid[2 * MT_KID_LEN + 1], dig[65];

		mt_cli__hex(en->birth_kid, MT_KID_LEN, kid);
		mt_cli__hex(en->birth_cert_sha256, 32, dig);
		fputs("{\"serial\": \"", stdout);
		json_str(stdout, en->serial);
		fputs("\", \"class\": \"", stdout);
		json_str(stdout, en->device_class);
		printf("\", \"kid\": \"%s\", \"birth_cert_sha256\": \"%s\"}\n", kid, dig);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
		goto out;
	}
	rc = MT_EXIT_OK;
out:
	for (i = 0; i < n_inter; i++)
		mt_cert_free(inter[i]);
	mt_cert_free(leaf);
	mt_cert_free(root);
	if (opened)
		mt_manifest_free(&m);
	free(buf);
	return rc;
}

int mt_cli_mfg(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
		{"init", mfg_init},
		{"make", mfg_make},
		{"verify-manifest", mfg_verify},
		{NULL, NULL},
	};

	return mt_cli__dispatch("mfg", "medtrust mfg init|make|verify-manifest ...", mfg_help, subs,
	                        argc, argv);
}
