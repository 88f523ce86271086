/*
 * cmd_init.c — `medtrust init DIR`: create a hub deployment (protocol §1,
 * docs/operations.md "Creating a deployment").
 *
 *   init DIR [--hospital NAME] [--hub-host H[,H...]] [--broker-host H[,H...]]
 *            [--force]
 *
 * What it makes, in this order, so that a failure part-way leaves no
 * medtrust.conf (the file that says "a deployment lives here"):
 *
 *   DIR/                 0700
 *   DIR/softhsm2.conf    SoftHSM2's configuration, tokens in DIR/tokens/ (0700)
 *   DIR/secrets/         0700: hub.pin and hub.so-pin (0600), 32 hex digits
 *                        each from mt_random(), never printed
 *   token "medtrust-hub" with the P-256 keys ca, tls, broker-tls, cmd, audit
 *                        (sign) and kx (derive), and the AES-256 KEK `kek`
 *                        (mt_key_generate_kek: wrap/unwrap only)
 *   DIR/pki/             0755, public PEM files 0644: ca.pem (operator CA,
 *                        ten years), hub-tls.pem and broker-tls.pem (TLS
 *                        server), hub-client.pem (TLS client, CN=hub),
 *                        cmd.pem (command signer), hub-kx.pub.pem,
 *                        hub-audit.pub.pem, crl.pem (empty, 7 days)
 *   DIR/medtrust.db      0600, the audit table and its first record, and the
 *                        registry's tables (mt_registry.h), empty
 *   DIR/audit.checkpoints 0600, the first outside checkpoint
 *   DIR/mosquitto/       0700: mosquitto.conf (0600, holds the token PIN for
 *                        the broker's TLS key: libp11 reads no pin-source),
 *                        openssl.cnf (the PKCS#11 engine on SoftHSM2), data/
 *   DIR/medtrust.conf    0600, `key value` lines (mt_config.h), every key
 *                        commented; data_path names DIR/data.db, the
 *                        readings store (mt_store.h), which its first user
 *                        creates (mode 0600, encrypted under the KEK)
 *
 * Why a separate `audit` key rather than the command key for checkpoints:
 * the checkpoints are evidence that must stay verifiable for years, while
 * the command key is the most used key of the hub and the first to be
 * rotated or revoked; keeping them apart means rotating one never touches
 * the other, and a process that only writes audit records never needs the
 * key that commands devices.  The hub's TLS key serves both its server
 * certificate and its client certificate to the broker (two certificates,
 * two EKUs, one identity).
 *
 * The token is initialised here through PKCS#11 (C_InitToken, C_InitPIN)
 * rather than by running softhsm2-util, whose command line would show both
 * PINs to every user of the machine.  The process runs with umask 077, so
 * everything is private unless chmod'ed public afterwards (the pki/ files);
 * SQLite's journal files inherit that.
 *
 * Never destroy keys silently: a DIR that holds medtrust.conf, tokens/,
 * secrets/, pki/ or medtrust.db is refused, with or without --force;
 * --force only permits other files in DIR.  Exit codes: 0; 1 for any
 * failure (the message names DIR as incomplete when something was made);
 * 64 usage.
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "cli.h"
#include "medtrust/mt_audit.h"
#include "medtrust/mt_cbor.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_pki.h"
#include "medtrust/mt_registry.h"

#define INIT_TOKEN "medtrust-hub"
#define INIT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define INIT_HOSTS_MAX 8
#define INIT_CRL_DAYS 7
#define INIT_PIN_BYTES 16 /* 32 hex digits */
#define INIT_HOSPITAL_MAX 39 /* + " medtrust operator CA" = 64 */

static const char init_usage[] =
        "medtrust init DIR [--hospital NAME] [--hub-host H[,H...]] [--broker-host H[,H...]] "
        "[--broker-port N] [--broker-plugin PATH] [--force]";

static const char init_help[] =
        "usage: medtrust init DIR [--hospital NAME] [--hub-host H[,H...]]\n"
        "                         [--broker-host H[,H...]] [--broker-port N]\n"
        "                         [--broker-plugin PATH] [--force]\n"
        "\n"
        "Create a hub deployment in DIR: a SoftHSM2 token holding the operator CA,\n"
        "TLS, kx, command and audit keys and the key-encryption key; the operator\n"
        "CA, TLS and command-signing certificates and an empty CRL (DIR/pki/); the\n"
        "audit database with its first record and the registry's tables; the\n"
        "broker's configuration (DIR/mosquitto/); and DIR/medtrust.conf.  PINs are\n"
        "written to DIR/secrets/ (mode 0600) and never printed.\n"
        "\n"
        "Options:\n"
        "  --hospital NAME     the operator CA is 'CN=NAME medtrust operator CA'\n"
        "                      (default 'medtrust'; NAME at most 39 bytes)\n"
        "  --hub-host H,...    DNS names or IP addresses of the hub's TLS\n"
        "                      certificate (default localhost,127.0.0.1)\n"
        "  --broker-host H,... the same for the broker's certificate\n"
        "  --broker-port N     the broker's TLS port (default 8883)\n"
        "  --broker-plugin P   the medtrust_mosq.so mosquitto loads (default: beside\n"
        "                      this program)\n"
        "  --force             allow a non-empty DIR that holds no deployment\n"
        "                      (a deployment is never overwritten)\n"
        "  -h, --help          show this help\n";

/* Everything one run makes and must free. */
struct init_ctx {
	char dir[PATH_MAX];
	char pin[2 * INIT_PIN_BYTES + 1];
	char so_pin[2 * INIT_PIN_BYTES + 1];
	char pin_path[PATH_MAX];
	char uri_tail[PATH_MAX * 3 + 64]; /* "?pin-source=<percent-encoded path>" */
	const char *hospital;
	char *hub_hosts;    /* the option text, split in place */
	char *broker_hosts;
	unsigned broker_port;
	const char *hub_dns[INIT_HOSTS_MAX], *hub_ip[INIT_HOSTS_MAX];
	const char *broker_dns[INIT_HOSTS_MAX], *broker_ip[INIT_HOSTS_MAX];
	size_t n_hub_dns, n_hub_ip, n_broker_dns, n_broker_ip;
	struct mt_key *ca, *tls, *broker, *kx, *cmd, *audit;
	struct mt_cert *ca_cert;
	char ca_fp[2 * MT_PKI_FINGERPRINT_LEN + 1];
	bool made; /* something exists in DIR that a retry must remove */
};

static void ctx_free(struct init_ctx *c)
{
	struct mt_key *keys[] = {c->ca, c->tls, c->broker, c->kx, c->cmd, c->audit};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		mt_key_free(keys[i]);
	mt_cert_free(c->ca_cert);
	free(c->hub_hosts);
	free(c->broker_hosts);
	OPENSSL_cleanse(c->pin, sizeof(c->pin));
	OPENSSL_cleanse(c->so_pin, sizeof(c->so_pin));
}

static void incomplete(const struct init_ctx *c)
{
	fprintf(stderr,
	        "error: the deployment in %s is incomplete and not in use: remove what 'medtrust "
	        "init' made there (softhsm2.conf, tokens/, secrets/, pki/, medtrust.db*, "
	        "audit.checkpoints) and run it again\n",
	        c->dir[0] ? c->dir : "DIR");
}

static int fail(struct init_ctx *c, const char *what, enum mt_err e)
{
	fprintf(stderr, "error: %s: %s\n", what, mt_err_str(e));
	if (c->made)
		incomplete(c);
	return MT_EXIT_ERROR;
}

static int fail_errno(struct init_ctx *c, const char *what, const char *path)
{
	fprintf(stderr, "error: %s %s: %s\n", what, path, strerror(errno));
	if (c->made)
		incomplete(c);
	return MT_EXIT_ERROR;
}

/* DIR/name into out; false when it does not fit. */
static bool path_of(const struct init_ctx *c, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", c->dir, name);
	return n > 0 && (size_t)n < cap;
}

/* Write data[0..len) to a new file (O_EXCL) with `mode`, fsync'd. */
static int write_new(struct init_ctx *c, const char *name, const void *data, size_t len,
                     mode_t mode)
{
	char path[PATH_MAX];
	const char *p = data;
	int fd;

	if (!path_of(c, name, path, sizeof(path))) {
		errno = ENAMETOOLONG;
		return fail_errno(c, "writing", name);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fail_errno(c, "creating", path);
	c->made = true;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return fail_errno(c, "writing", path);
		}
		p += w;
		len -= (size_t)w;
	}
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
		close(fd);
		return fail_errno(c, "writing", path);
	}
	if (close(fd) != 0)
		return fail_errno(c, "writing", path);
	return MT_EXIT_OK;
}

static int make_dir(struct init_ctx *c, const char *name, mode_t mode)
{
	char path[PATH_MAX];

	if (!path_of(c, name, path, sizeof(path))) {
		errno = ENAMETOOLONG;
		return fail_errno(c, "creating", name);
	}
	if (mkdir(path, 0700) != 0)
		return fail_errno(c, "creating", path);
	c->made = true;
	if (chmod(path, mode) != 0)
		return fail_errno(c, "setting the mode of", path);
	return MT_EXIT_OK;
}

/* ---- DIR ---------------------------------------------------------------- */

/* Names whose presence means a deployment (or part of one) is here. */
static const char *const deployment_names[] = {"medtrust.conf", "tokens", "secrets", "pki",
                                               "medtrust.db", "audit.checkpoints",
                                               "softhsm2.conf", "mosquitto", "data.db"};

/* Create DIR or accept an existing one (see the essay); resolve it to an
 * absolute path in c->dir. */
static int prepare_dir(struct init_ctx *c, const char *dir, bool force)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0) {
		DIR *d;
		struct dirent *de;
		bool empty = true;

		if (errno != EEXIST)
			return fail_errno(c, "creating", dir);
		if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "error: %s exists and is not a directory\n", dir);
			return MT_EXIT_ERROR;
		}
		for (size_t i = 0; i < sizeof(deployment_names) / sizeof(deployment_names[0]); i++) {
			char p[PATH_MAX];
			int n = snprintf(p, sizeof(p), "%s/%s", dir, deployment_names[i]);
			if (n > 0 && (size_t)n < sizeof(p) && lstat(p, &st) == 0) {
				fprintf(stderr,
				        "error: %s already holds a deployment (%s exists); refusing to "
				        "touch it, with or without --force\n",
				        dir, deployment_names[i]);
				return MT_EXIT_ERROR;
			}
		}
		d = opendir(dir);
		if (d == NULL)
			return fail_errno(c, "reading", dir);
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				empty = false;
		closedir(d);
		if (!empty && !force) {
			fprintf(stderr,
			        "error: %s is not empty (use --force to create a deployment among "
			        "other files)\n",
			        dir);
			return MT_EXIT_ERROR;
		}
		if (chmod(dir, 0700) != 0)
			return fail_errno(c, "setting the mode of", dir);
	}
	if (realpath(dir, c->dir) == NULL)
		return fail_errno(c, "resolving", dir);
	return MT_EXIT_OK;
}

/* ---- PINs and the token -------------------------------------------------- */

static int make_pins(struct init_ctx *c)
{
	uint8_t r[INIT_PIN_BYTES];
	char line[2 * INIT_PIN_BYTES + 2];
	enum mt_err e;
	int rc;

	e = mt_random(r, sizeof(r));
	if (e != MT_OK)
		return fail(c, "making the user PIN", e);
	mt_cli__hex(r, sizeof(r), c->pin);
	e = mt_random(r, sizeof(r));
	OPENSSL_cleanse(r, sizeof(r));
	if (e != MT_OK)
		return fail(c, "making the SO PIN", e);
	mt_cli__hex(r, sizeof(r), c->so_pin);
	OPENSSL_cleanse(r, sizeof(r));

	rc = make_dir(c, "secrets", 0700);
	if (rc == MT_EXIT_OK) {
		(void)snprintf(line, sizeof(line), "%s\n", c->pin);
		rc = write_new(c, "secrets/hub.pin", line, strlen(line), 0600);
	}
	if (rc == MT_EXIT_OK) {
		(void)snprintf(line, sizeof(line), "%s\n", c->so_pin);
		rc = write_new(c, "secrets/hub.so-pin", line, strlen(line), 0600);
	}
	OPENSSL_cleanse(line, sizeof(line));
	return rc;
}

/* softhsm2.conf and tokens/, and SOFTHSM2_CONF for this process. */
static int make_softhsm_conf(struct init_ctx *c)
{
	char text[PATH_MAX + 256], conf[PATH_MAX];
	int rc, n;

	rc = make_dir(c, "tokens", 0700);
	if (rc != MT_EXIT_OK)
		return rc;
	n = snprintf(text, sizeof(text),
	             "# SoftHSM2 configuration of this deployment (written by medtrust init).\n"
	             "# The hub's token lives in the directory below: back it up together\n"
	             "# with secrets/ (docs/operations.md).\n"
	             "directories.tokendir = %s/tokens\n"
	             "objectstore.backend = file\n"
	             "log.level = ERROR\n"
	             "slots.removable = false\n",
	             c->dir);
	if (n < 0 || (size_t)n >= sizeof(text) || !path_of(c, "softhsm2.conf", conf, sizeof(conf))) {
		errno = ENAMETOOLONG;
		return fail_errno(c, "writing", "softhsm2.conf");
	}
	rc = write_new(c, "softhsm2.conf", text, (size_t)n, 0600);
	if (rc != MT_EXIT_OK)
		return rc;
	if (setenv("SOFTHSM2_CONF", conf, 1) != 0)
		return fail_errno(c, "setting SOFTHSM2_CONF to", conf);
	return MT_EXIT_OK;
}

/* The slot holding the token labelled `label` (padded), or the first slot
 * with an uninitialised token when label == NULL. */
static CK_RV find_slot(CK_FUNCTION_LIST *f, const char *label, CK_SLOT_ID *out)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = sizeof(slots) / sizeof(slots[0]);
	CK_RV rv = f->C_GetSlotList(CK_TRUE, slots, &n);

	if (rv != CKR_OK)
		return rv;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;

		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (label == NULL ? !(ti.flags & CKF_TOKEN_INITIALIZED)
		                  : (ti.flags & CKF_TOKEN_INITIALIZED) &&
		                            memcmp(ti.label, label, sizeof(ti.label)) == 0) {
			*out = slots[i];
			return CKR_OK;
		}
	}
	return CKR_TOKEN_NOT_PRESENT;
}

/* C_InitToken with the SO PIN, then C_InitPIN with the user PIN, through a
 * managed p11-kit instance of its own that is finalised before the key
 * store loads the module (SoftHSM2 reads its token list at C_Initialize). */
static int init_token(struct init_ctx *c)
{
	CK_FUNCTION_LIST *f;
	CK_SLOT_ID slot = 0;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	unsigned char label[32];
	CK_RV rv;
	const char *step = "loading " INIT_MODULE;

	f = p11_kit_module_load(INIT_MODULE, 0);
	if (f == NULL)
		return fail(c, step, MT_ERR_KS_MODULE);
	rv = p11_kit_module_initialize(f);
	if (rv == CKR_OK) {
		step = "finding a free SoftHSM2 slot";
		rv = find_slot(f, NULL, &slot);
	}
	memset(label, ' ', sizeof(label));
	memcpy(label, INIT_TOKEN, strlen(INIT_TOKEN));
	if (rv == CKR_OK) {
		step = "initialising token " INIT_TOKEN;
		rv = f->C_InitToken(slot, (CK_UTF8CHAR_PTR)c->so_pin, strlen(c->so_pin), label);
	}
	if (rv == CKR_OK) /* SoftHSM2 moves an initialised token to a new slot */
		rv = find_slot(f, (const char *)label, &slot);
	if (rv == CKR_OK)
		rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK) {
		step = "setting the user PIN of " INIT_TOKEN;
		rv = f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)c->so_pin, strlen(c->so_pin));
	}
	if (rv == CKR_OK) {
		rv = f->C_InitPIN(s, (CK_UTF8CHAR_PTR)c->pin, strlen(c->pin));
		(void)f->C_Logout(s);
	}
	if (s != CK_INVALID_HANDLE)
		(void)f->C_CloseSession(s);
	(void)p11_kit_module_finalize(f);
	p11_kit_module_release(f);
	if (rv != CKR_OK) {
		fprintf(stderr, "error: %s: PKCS#11 error 0x%lx\n", step, (unsigned long)rv);
		return fail(c, "creating the hub token", MT_ERR_KS_TOKEN);
	}
	return MT_EXIT_OK;
}

/* "?pin-source=<path>" with the path percent-encoded (RFC 3986) beyond the
 * unreserved characters and '/'. */
static void make_uri_tail(struct init_ctx *c)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	const char *prefix = "?pin-source=";

	memcpy(c->uri_tail, prefix, strlen(prefix));
	o = strlen(prefix);
	for (const unsigned char *p = (const unsigned char *)c->pin_path; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '/' || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			c->uri_tail[o++] = (char)*p;
		} else {
			c->uri_tail[o++] = '%';
			c->uri_tail[o++] = hex[*p >> 4];
			c->uri_tail[o++] = hex[*p & 15];
		}
	}
	c->uri_tail[o] = '\0';
}

static void uri_of(const struct init_ctx *c, const char *object, char *out, size_t cap)
{
	(void)snprintf(out, cap, "pkcs11:token=" INIT_TOKEN ";object=%s%s", object, c->uri_tail);
}

static int make_keys(struct init_ctx *c)
{
	static const struct {
		const char *name;
		enum mt_key_role role;
		size_t slot; /* index into the keys array below */
	} list[] = {
	        {"ca", MT_KEY_ROLE_SIGN, 0},     {"tls", MT_KEY_ROLE_SIGN, 1},
	        {"broker-tls", MT_KEY_ROLE_SIGN, 2}, {"kx", MT_KEY_ROLE_DERIVE, 3},
	        {"cmd", MT_KEY_ROLE_SIGN, 4},    {"audit", MT_KEY_ROLE_SIGN, 5},
	};
	struct mt_key **keys[] = {&c->ca, &c->tls, &c->broker, &c->kx, &c->cmd, &c->audit};
	char uri[sizeof(c->uri_tail) + 64], what[64];
	enum mt_err e;

	for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
		uri_of(c, list[i].name, uri, sizeof(uri));
		e = mt_key_generate(uri, MT_KEY_P256, list[i].role, keys[list[i].slot]);
		if (e != MT_OK) {
			(void)snprintf(what, sizeof(what), "generating key %s", list[i].name);
			return fail(c, what, e);
		}
	}
	uri_of(c, "kek", uri, sizeof(uri));
	e = mt_key_generate_kek(uri);
	if (e != MT_OK)
		return fail(c, "generating the key-encryption key kek", e);
	return MT_EXIT_OK;
}

/* ---- certificates ------------------------------------------------------- */

static int write_cert(struct init_ctx *c, const char *name, const struct mt_cert *cert)
{
	char pem[8192];
	size_t len = 0;
	enum mt_err e = mt_cert_pem(cert, pem, sizeof(pem), &len);

	if (e != MT_OK)
		return fail(c, name, e);
	return write_new(c, name, pem, len, 0644);
}

static int write_pub(struct init_ctx *c, const char *name, const struct mt_key *k)
{
	char path[PATH_MAX];
	enum mt_err e;

	if (!path_of(c, name, path, sizeof(path)))
		return fail(c, name, MT_ERR_ARG);
	e = mt_pubkey_write_pem(mt_key_public(k), path);
	if (e != MT_OK)
		return fail(c, path, e);
	if (chmod(path, 0644) != 0)
		return fail_errno(c, "setting the mode of", path);
	return MT_EXIT_OK;
}

/* Split "a,b,c" in place into DNS names and IP addresses. */
static int split_hosts(char *list, const char **dns, size_t *n_dns, const char **ip,
                       size_t *n_ip, const char *opt)
{
	char *p = list;

	*n_dns = *n_ip = 0;
	while (p != NULL) {
		char *comma = strchr(p, ',');
		unsigned char buf[16];

		if (comma != NULL)
			*comma = '\0';
		if (*p == '\0' || *n_dns + *n_ip == INIT_HOSTS_MAX)
			return mt_cli__usage("init", init_usage,
			                     "%s: empty name or more than %d names", opt, INIT_HOSTS_MAX);
		if (inet_pton(AF_INET, p, buf) == 1 || inet_pton(AF_INET6, p, buf) == 1) {
			ip[(*n_ip)++] = p;
		} else {
			/* mt_pki's host-name rule, checked before anything is made. */
			if (strlen(p) > 253 || strspn(p, "abcdefghijklmnopqrstuvwxyz"
			                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") !=
			                               strlen(p))
				return mt_cli__usage("init", init_usage,
				                     "%s: '%s' is neither an IP address nor a host name",
				                     opt, p);
			dns[(*n_dns)++] = p;
		}
		p = comma != NULL ? comma + 1 : NULL;
	}
	return MT_EXIT_OK;
}

static int issue_tls_server(struct init_ctx *c, struct mt_key *key, const char *subject,
                            const char *const *dns, size_t n_dns, const char *const *ip,
                            size_t n_ip, const char *file)
{
	struct mt_pki_leaf leaf = {0};
	struct mt_cert *cert = NULL;
	enum mt_err e;
	int rc;

	leaf.n_dns = n_dns;
	leaf.n_ip = n_ip;
	leaf.profile = MT_PKI_TLS_SERVER;
	leaf.subject = subject;
	leaf.dns = dns;
	leaf.ip = ip;
	e = mt_pki_issue(c->ca, c->ca_cert, mt_key_public(key), &leaf, &cert);
	if (e != MT_OK)
		return fail(c, file, e);
	rc = write_cert(c, file, cert);
	mt_cert_free(cert);
	return rc;
}

static int issue_leaf(struct init_ctx *c, struct mt_key *key, enum mt_pki_profile profile,
                      const char *subject, const char *file)
{
	struct mt_pki_leaf leaf = {0};
	struct mt_cert *cert = NULL;
	enum mt_err e;
	int rc;

	leaf.profile = profile;
	leaf.subject = subject;
	e = mt_pki_issue(c->ca, c->ca_cert, mt_key_public(key), &leaf, &cert);
	if (e != MT_OK)
		return fail(c, file, e);
	rc = write_cert(c, file, cert);
	mt_cert_free(cert);
	return rc;
}

/* RFC 7468 text of `der` under `label`, base64 in 64 columns. */
static int write_pem_der(struct init_ctx *c, const char *name, const char *label,
                         const uint8_t *der, size_t len)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t cap = len / 3 * 4 + len / 48 + 128, o = 0, col = 0;
	char *out = malloc(cap);
	int rc, n;

	if (out == NULL)
		return fail(c, name, MT_ERR_NOMEM);
	n = snprintf(out, cap, "-----BEGIN %s-----\n", label);
	o = (size_t)n;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)der[i] << 16;
		size_t k = len - i < 3 ? len - i : 3;

		if (k > 1)
			v |= (uint32_t)der[i + 1] << 8;
		if (k > 2)
			v |= der[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = k > 1 ? b64[(v >> 6) & 63] : '=';
		out[o++] = k > 2 ? b64[v & 63] : '=';
		col += 4;
		if (col == 64) {
			out[o++] = '\n';
			col = 0;
		}
	}
	if (col != 0)
		out[o++] = '\n';
	n = snprintf(out + o, cap - o, "-----END %s-----\n", label);
	o += (size_t)n;
	rc = write_new(c, name, out, o, 0644);
	free(out);
	return rc;
}

static int make_pki(struct init_ctx *c)
{
	char subject[256];
	struct mt_pki_ca_opts ca = {0};
	uint8_t fp[MT_PKI_FINGERPRINT_LEN], crl[4096];
	size_t crl_len = 0, o = 0;
	enum mt_err e;
	int rc;

	/* The hospital's name with RFC 4514 commas escaped. */
	for (const char *p = c->hospital; *p && o + 2 < sizeof(subject); p++) {
		if (*p == ',')
			subject[o++] = '\\';
		subject[o++] = *p;
	}
	subject[o] = '\0';
	{
		char tmp[300];
		int n = snprintf(tmp, sizeof(tmp), "CN=%s medtrust operator CA", subject);
		if (n < 0 || (size_t)n >= sizeof(subject))
			return fail(c, "naming the operator CA", MT_ERR_PKI_SUBJECT);
		memcpy(subject, tmp, (size_t)n + 1);
	}
	ca.subject = subject;
	ca.path_len = -1;
	e = mt_pki_ca_create(c->ca, &ca, &c->ca_cert);
	if (e != MT_OK)
		return fail(c, "issuing the operator CA certificate", e);
	e = mt_cert_fingerprint(c->ca_cert, fp);
	if (e != MT_OK)
		return fail(c, "fingerprinting the operator CA", e);
	mt_cli__hex(fp, sizeof(fp), c->ca_fp);

	rc = make_dir(c, "pki", 0755);
	if (rc == MT_EXIT_OK)
		rc = write_cert(c, "pki/ca.pem", c->ca_cert);
	if (rc == MT_EXIT_OK)
		rc = issue_tls_server(c, c->tls, "CN=medtrust hub", c->hub_dns, c->n_hub_dns,
		                      c->hub_ip, c->n_hub_ip, "pki/hub-tls.pem");
	if (rc == MT_EXIT_OK)
		rc = issue_tls_server(c, c->broker, "CN=medtrust broker", c->broker_dns,
		                      c->n_broker_dns, c->broker_ip, c->n_broker_ip,
		                      "pki/broker-tls.pem");
	if (rc == MT_EXIT_OK)
		rc = issue_leaf(c, c->tls, MT_PKI_TLS_CLIENT, "CN=hub", "pki/hub-client.pem");
	if (rc == MT_EXIT_OK)
		rc = issue_leaf(c, c->cmd, MT_PKI_SIGNER, "CN=medtrust command signer", "pki/cmd.pem");
	if (rc == MT_EXIT_OK)
		rc = write_pub(c, "pki/hub-kx.pub.pem", c->kx);
	if (rc == MT_EXIT_OK)
		rc = write_pub(c, "pki/hub-audit.pub.pem", c->audit);
	if (rc != MT_EXIT_OK)
		return rc;

	struct mt_pki_crl_opts co = {0};
	co.this_update = (int64_t)time(NULL);
	co.next_update = co.this_update + INIT_CRL_DAYS * 86400;
	co.crl_number = 1;
	e = mt_pki_crl_create(c->ca, c->ca_cert, &co, crl, sizeof(crl), &crl_len);
	if (e != MT_OK)
		return fail(c, "signing the first CRL", e);
	return write_pem_der(c, "pki/crl.pem", "X509 CRL", crl, crl_len);
}

/* ---- audit chain ---------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int make_audit(struct init_ctx *c)
{
	char db[PATH_MAX], cp[PATH_MAX], detail[256];
	struct mt_audit_store *store = NULL;
	struct mt_audit *a = NULL;
	struct mt_audit_event ev = {0};
	enum mt_err e;
	bool done = false;

	if (!path_of(c, "medtrust.db", db, sizeof(db)) ||
	    !path_of(c, "audit.checkpoints", cp, sizeof(cp)))
		return fail(c, "naming the audit files", MT_ERR_ARG);
	struct mt_audit_config cfg = {0, 0, cp};
	e = mt_audit_sqlite_open(db, &store);
	if (e != MT_OK)
		return fail(c, db, e);
	c->made = true;
	e = mt_audit_open(store, c->audit, &cfg, &a); /* takes the store */
	if (e != MT_OK)
		return fail(c, "opening the audit chain", e);
	(void)snprintf(detail, sizeof(detail),
	               "{\"ca_sha256\":\"%s\",\"token\":\"" INIT_TOKEN "\"}", c->ca_fp);
	ev.actor = "medtrust init";
	ev.action = "deployment.init";
	ev.subject = strlen(c->dir) <= MT_AUDIT_SUBJECT_MAX ? c->dir : NULL;
	ev.outcome = MT_AUDIT_OK;
	ev.detail = detail;
	e = mt_audit_append(a, now_ms(), &ev, NULL);
	if (e == MT_OK)
		e = mt_audit_checkpoint(a, now_ms(), &done);
	mt_audit_close(a);
	if (e != MT_OK)
		return fail(c, "writing the first audit record", e);
	/* The registry's tables too, so that every reader (the broker plugin
	 * opens the database read-only) finds the schema from the start. */
	{
		struct mt_registry *reg = NULL;

		e = mt_registry_open(db, &reg);
		mt_registry_close(reg);
		if (e != MT_OK)
			return fail(c, "creating the registry tables", e);
	}
	if (chmod(db, 0600) != 0)
		return fail_errno(c, "setting the mode of", db);
	return MT_EXIT_OK;
}

/* ---- the broker's configuration ----------------------------------------- */

/* The AEAD-only ECDHE suites for TLS 1.2 (TLS 1.3's are AEAD by design). */
#define INIT_BROKER_CIPHERS                                                                 \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:"                     \
	"ECDHE-ECDSA-CHACHA20-POLY1305"

/* DIR/mosquitto/: mosquitto.conf for the deployment's own mosquitto (run it
 * with `medtrust broker run`), openssl.cnf pointing OpenSSL's PKCS#11
 * engine straight at SoftHSM2 (so the broker's TLS key is used inside the
 * hub's token), and data/ for persistence (docs/broker.md).  The engine
 * (libp11) ignores pin-source, so the PIN is in mosquitto.conf itself as
 * pin-value: the file is 0600 in a 0700 directory, as secrets/hub.pin is. */
static int make_broker(struct init_ctx *c, unsigned port, const char *plugin)
{
	char pin[128] = "", path[PATH_MAX], login[64] = "root";
	size_t cap = 8192;
	char *t = NULL;
	struct passwd *pw = getpwuid(getuid());
	FILE *f;
	int n, rc;

	if (pw != NULL && pw->pw_name != NULL)
		(void)snprintf(login, sizeof login, "%s", pw->pw_name);
	if (!path_of(c, "secrets/hub.pin", path, sizeof path) || (f = fopen(path, "r")) == NULL)
		return fail(c, "reading secrets/hub.pin", MT_ERR_IO);
	if (fgets(pin, sizeof pin, f) == NULL)
		pin[0] = '\0';
	fclose(f);
	pin[strcspn(pin, "\r\n")] = '\0';
	rc = make_dir(c, "mosquitto", 0700);
	if (rc == MT_EXIT_OK)
		rc = make_dir(c, "mosquitto/data", 0700);
	if (rc != MT_EXIT_OK)
		goto out;
	t = malloc(cap);
	if (t == NULL) {
		rc = fail(c, "mosquitto.conf", MT_ERR_NOMEM);
		goto out;
	}
	n = snprintf(t, cap,
	             "# openssl.cnf for mosquitto's PKCS#11 engine (written by medtrust init):\n"
	             "# the engine loads SoftHSM2 directly, not through p11-kit's proxy.\n"
	             "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
	             "[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\n"
	             "engine_id = pkcs11\nMODULE_PATH = " INIT_MODULE "\n");
	rc = n > 0 && (size_t)n < cap ? write_new(c, "mosquitto/openssl.cnf", t, (size_t)n, 0600)
	                              : fail(c, "openssl.cnf", MT_ERR_BUFFER);
	if (rc != MT_EXIT_OK)
		goto out;
	n = snprintf(
	        t, cap,
	        "# mosquitto.conf — the deployment's own broker (written by medtrust init).\n"
	        "# Start it with: medtrust broker run -c %s/medtrust.conf\n"
	        "# (which sets SOFTHSM2_CONF and OPENSSL_CONF for the PKCS#11 engine).\n"
	        "# docs/broker.md explains every line.  This file holds the token PIN: 0600.\n"
	        "per_listener_settings false\n"
	        "allow_anonymous false\n"
	        "persistence true\n"
	        "persistence_location %s/mosquitto/data/\n"
	        "user %s\n"
	        "log_dest stderr\n"
	        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
	        "connection_messages true\n"
	        "set_tcp_nodelay true\n"
	        "max_inflight_messages 0\n"
	        "# What waits for a persistent session that is away (the hub restarting:\n"
	        "# threats FI03, FI04); past these the broker drops, and devices resend.\n"
	        "max_queued_messages 100000\n"
	        "max_queued_bytes 268435456\n"
	        "# No packet larger than 128 KiB (H05); up to that the hub sees an\n"
	        "# oversized packet itself and counts its refusal (stage size, H03).\n"
	        "max_packet_size 131072\n"
	        "autosave_interval 60\n"
	        "\n# The medtrust plugin: identities, topics, revocation (docs/broker.md).\n"
	        "plugin %s\n"
	        "plugin_opt_db_path %s/medtrust.db\n"
	        "\n# Mutual TLS only: the operator CA, the broker's key in the hub's token.\n"
	        "listener %u\n"
	        "cafile %s/pki/ca.pem\n"
	        "certfile %s/pki/broker-tls.pem\n"
	        "keyfile pkcs11:token=" INIT_TOKEN ";object=broker-tls;type=private?pin-value=%s\n"
	        "tls_engine pkcs11\n"
	        "tls_keyform engine\n"
	        "require_certificate true\n"
	        "use_identity_as_username false\n"
	        "tls_version tlsv1.2\n"
	        "ciphers " INIT_BROKER_CIPHERS "\n",
	        c->dir, c->dir, login, plugin, c->dir, port, c->dir, c->dir, pin);
	rc = n > 0 && (size_t)n < cap ? write_new(c, "mosquitto/mosquitto.conf", t, (size_t)n, 0600)
	                              : fail(c, "mosquitto.conf", MT_ERR_BUFFER);
out:
	if (t != NULL) {
		OPENSSL_cleanse(t, cap);
		free(t);
	}
	OPENSSL_cleanse(pin, sizeof pin);
	return rc;
}

/* ---- medtrust.conf -------------------------------------------------------- */

static int make_conf(struct init_ctx *c, const char *hub_hosts, const char *broker_hosts)
{
	char uri[7][sizeof(c->uri_tail) + 64];
	static const char *const objects[] = {"ca", "tls", "broker-tls", "kx", "cmd", "audit", "kek"};
	size_t cap = 16384;
	char *t = malloc(cap);
	int n, rc;

	if (t == NULL)
		return fail(c, "medtrust.conf", MT_ERR_NOMEM);
	for (size_t i = 0; i < 7; i++)
		uri_of(c, objects[i], uri[i], sizeof(uri[i]));
	n = snprintf(
	        t, cap,
	        "# medtrust.conf — the hub deployment made by 'medtrust init'.\n"
	        "#\n"
	        "# One 'key value' per line; the value runs to the end of the line, no quotes.\n"
	        "# Lines starting with '#' are comments.  Unknown or repeated keys are errors.\n"
	        "# Check this file with: medtrust config check %s/medtrust.conf\n"
	        "# Every key is described in docs/operations.md.\n"
	        "\n"
	        "# The hospital named in the operator CA's subject.\n"
	        "hospital %s\n"
	        "\n"
	        "# ---- key store ----\n"
	        "# SoftHSM2's configuration file: set SOFTHSM2_CONF to it before any tool\n"
	        "# opens the keys below.  With a real HSM, this line goes and the key URIs\n"
	        "# name its token (and module-path=, the vendor's PKCS#11 module).\n"
	        "softhsm2_conf %s/softhsm2.conf\n"
	        "\n"
	        "# Keys in the hub's token (RFC 7512 URIs; the PIN is read from pin-source).\n"
	        "# Operator CA key: signs certificates and the CRL.\n"
	        "ca_key %s\n"
	        "# The hub's TLS key: its server certificate and its client certificate.\n"
	        "hub_tls_key %s\n"
	        "# The broker's TLS key (mosquitto reads it through its PKCS#11 engine).\n"
	        "broker_tls_key %s\n"
	        "# The hub's kx key: ECDH with devices' kx keys (protocol section 4).\n"
	        "kx_key %s\n"
	        "# The command key: signs downlink commands.\n"
	        "cmd_key %s\n"
	        "# The audit key: signs the audit chain's checkpoints.\n"
	        "audit_key %s\n"
	        "# The key-encryption key (AES-256, wrap/unwrap only) for stored secrets.\n"
	        "kek_key %s\n"
	        "\n"
	        "# ---- certificates (public, PEM) ----\n"
	        "ca_cert %s/pki/ca.pem\n"
	        "hub_tls_cert %s/pki/hub-tls.pem\n"
	        "broker_tls_cert %s/pki/broker-tls.pem\n"
	        "hub_client_cert %s/pki/hub-client.pem\n"
	        "cmd_cert %s/pki/cmd.pem\n"
	        "# Public keys: the hub's kx key (given to devices) and the audit key\n"
	        "# (medtrust audit verify --hub-pub).\n"
	        "hub_kx_pub %s/pki/hub-kx.pub.pem\n"
	        "audit_pub %s/pki/hub-audit.pub.pem\n"
	        "# The operator CA's CRL (first one empty, valid %d days).\n"
	        "crl %s/pki/crl.pem\n"
	        "\n"
	        "# ---- names ----\n"
	        "# The names in the hub's and the broker's TLS certificates.\n"
	        "hub_hosts %s\n"
	        "broker_hosts %s\n"
	        "\n"
	        "# ---- storage ----\n"
	        "# The SQLite database (audit chain).\n"
	        "db_path %s/medtrust.db\n"
	        "# The audit checkpoints kept outside the database.\n"
	        "audit_checkpoints %s/audit.checkpoints\n"
	        "# The readings store: readings, alerts and patients, encrypted under\n"
	        "# data keys wrapped by kek_key (docs/storage.md); created at first use.\n"
	        "data_path %s/data.db\n"
	        "\n"
	        "# ---- broker ----\n"
	        "# The deployment's mosquitto (medtrust broker run) and its TLS port.\n"
	        "mosquitto_conf %s/mosquitto/mosquitto.conf\n"
	        "broker_port %u\n",
	        c->dir, c->hospital, c->dir, uri[0], uri[1], uri[2], uri[3], uri[4], uri[5],
	        uri[6], c->dir, c->dir, c->dir, c->dir, c->dir, c->dir, c->dir, INIT_CRL_DAYS,
	        c->dir, hub_hosts, broker_hosts, c->dir, c->dir, c->dir, c->dir, c->broker_port);
	if (n < 0 || (size_t)n >= cap) {
		free(t);
		return fail(c, "medtrust.conf", MT_ERR_BUFFER);
	}
	rc = write_new(c, "medtrust.conf", t, (size_t)n, 0600);
	free(t);
	return rc;
}

/* ---- the command ---------------------------------------------------------- */

/* The CN "<hospital> medtrust operator CA" must fit mt_pki's 64 bytes, and
 * the name must read back from medtrust.conf unchanged (no outer blanks). */
static bool hospital_ok(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > INIT_HOSPITAL_MAX || !mt_utf8_valid((const uint8_t *)h, n))
		return false;
	if (h[0] == ' ' || h[0] == '\t' || h[n - 1] == ' ' || h[n - 1] == '\t')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)h[i] < 0x20 || h[i] == 0x7f || strchr("\\+=\"", h[i]) != NULL)
			return false;
	return true;
}

int mt_cli_init(int argc, char **argv)
{
	enum { OPT_HOSPITAL = 256, OPT_HUB_HOST, OPT_BROKER_HOST, OPT_FORCE, OPT_BROKER_PORT,
	       OPT_BROKER_PLUGIN };
	static const struct option opts[] = {
	        {"hospital", required_argument, NULL, OPT_HOSPITAL},
	        {"hub-host", required_argument, NULL, OPT_HUB_HOST},
	        {"broker-host", required_argument, NULL, OPT_BROKER_HOST},
	        {"force", no_argument, NULL, OPT_FORCE},
	        {"broker-port", required_argument, NULL, OPT_BROKER_PORT},
	        {"broker-plugin", required_argument, NULL, OPT_BROKER_PLUGIN},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct init_ctx *c;
	const char *hub = "localhost,127.0.0.1", *broker = "localhost,127.0.0.1";
	const char *hospital = "medtrust", *port_s = NULL, *plugin_opt = NULL;
	char plugin[PATH_MAX];
	uint32_t port = 8883;
	bool force = false;
	int ch, rc;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_HOSPITAL: hospital = optarg; break;
		case OPT_HUB_HOST: hub = optarg; break;
		case OPT_BROKER_HOST: broker = optarg; break;
		case OPT_FORCE: force = true; break;
		case OPT_BROKER_PORT: port_s = optarg; break;
		case OPT_BROKER_PLUGIN: plugin_opt = optarg; break;
		case 'h':
			if (fputs(init_help, stdout) == EOF || fflush(stdout) != 0)
				return MT_EXIT_ERROR;
			return MT_EXIT_OK;
		case ':':
			return mt_cli__usage("init", init_usage, "option '%s' needs a value",
			                     argv[optind - 1]);
		default:
			return mt_cli__usage("init", init_usage, "unknown option '%s'",
			                     argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return mt_cli__usage("init", init_usage, "give exactly one DIR");
	if (port_s != NULL && (!mt_cli__parse_u32(port_s, &port) || port == 0 || port > 65535))
		return mt_cli__usage("init", init_usage, "--broker-port: '%s' is not a port", port_s);
	/* The plugin: as given, or medtrust_mosq.so beside this program. */
	if (plugin_opt != NULL) {
		if (plugin_opt[0] != '/' || strlen(plugin_opt) >= sizeof plugin)
			return mt_cli__usage("init", init_usage,
			                     "--broker-plugin: give an absolute path");
		(void)snprintf(plugin, sizeof plugin, "%s", plugin_opt);
	} else {
		char self[PATH_MAX];
		ssize_t sn = readlink("/proc/self/exe", self, sizeof self - 1);
		char *slash;

		if (sn <= 0)
			return mt_cli__error("finding this program's directory", MT_ERR_IO);
		self[sn] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL)
			*slash = '\0';
		if ((size_t)snprintf(plugin, sizeof plugin, "%s/medtrust_mosq.so", self) >=
		    sizeof plugin)
			return mt_cli__error("naming the broker plugin", MT_ERR_ARG);
	}
	if (!hospital_ok(hospital))
		return mt_cli__usage("init", init_usage,
		                     "--hospital: 1-%d bytes of UTF-8, no control characters, no "
		                     "\\ + = \" and no leading or trailing blank",
		                     INIT_HOSPITAL_MAX);

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return mt_cli__error("init", MT_ERR_NOMEM);
	c->hospital = hospital;
	c->broker_port = (unsigned)port;
	c->hub_hosts = strdup(hub);
	c->broker_hosts = strdup(broker);
	if (c->hub_hosts == NULL || c->broker_hosts == NULL) {
		ctx_free(c);
		free(c);
		return mt_cli__error("init", MT_ERR_NOMEM);
	}
	rc = split_hosts(c->hub_hosts, c->hub_dns, &c->n_hub_dns, c->hub_ip, &c->n_hub_ip,
	                 "--hub-host");
	if (rc == MT_EXIT_OK)
		rc = split_hosts(c->broker_hosts, c->broker_dns, &c->n_broker_dns, c->broker_ip,
		                 &c->n_broker_ip, "--broker-host");
	if (rc != MT_EXIT_OK) {
		ctx_free(c);
		free(c);
		return rc;
	}
	umask(077);
	rc = prepare_dir(c, argv[optind], force);
	if (rc == MT_EXIT_OK) {
		c->made = true;
		rc = make_softhsm_conf(c);
	}
	if (rc == MT_EXIT_OK)
		rc = make_pins(c);
	if (rc == MT_EXIT_OK)
		rc = init_token(c);
	if (rc == MT_EXIT_OK) {
		if (!path_of(c, "secrets/hub.pin", c->pin_path, sizeof(c->pin_path)))
			rc = fail(c, "naming the PIN file", MT_ERR_ARG);
		else
			make_uri_tail(c);
	}
	if (rc == MT_EXIT_OK)
		rc = make_keys(c);
	if (rc == MT_EXIT_OK)
		rc = make_pki(c);
	if (rc == MT_EXIT_OK)
		rc = make_audit(c);
	if (rc == MT_EXIT_OK)
		rc = make_broker(c, c->broker_port, plugin);
	if (rc == MT_EXIT_OK)
		rc = make_conf(c, hub, broker);
	if (rc == MT_EXIT_OK &&
	    (printf("created a medtrust deployment in %s\n"
	            "  token       %s/tokens/ (token \"" INIT_TOKEN "\": keys ca, tls, broker-tls, "
	            "kx, cmd, audit, kek)\n"
	            "  PINs        %s/secrets/hub.pin, hub.so-pin (mode 0600)\n"
	            "  operator CA %s/pki/ca.pem (SHA-256 %s)\n"
	            "  certs       pki/hub-tls.pem pki/broker-tls.pem pki/hub-client.pem "
	            "pki/cmd.pem pki/crl.pem\n"
	            "  public keys pki/hub-kx.pub.pem pki/hub-audit.pub.pem\n"
	            "  database    %s/medtrust.db (audit chain started)\n"
	            "  broker      %s/mosquitto/mosquitto.conf (medtrust broker run)\n"
	            "  config      %s/medtrust.conf\n"
	            "Back up %s/tokens and %s/secrets together (docs/operations.md).\n",
	            c->dir, c->dir, c->dir, c->dir, c->ca_fp, c->dir, c->dir, c->dir, c->dir,
	            c->dir) < 0 ||
	     fflush(stdout) != 0))
		rc = mt_cli__error("writing stdout", MT_ERR_IO);
	ctx_free(c);
	free(c);
	return rc;
}
