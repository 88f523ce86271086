/*
 * cmd_key.c — `medtrust key generate | public | kid`: the key commands that
 * tests, the demo and operators need around `packet seal` / `packet open`.
 *
 *   key generate URI --type p256|ed25519 [--role sign|derive] [--pub OUT.pem]
 *   key public URI [--out FILE.pem]
 *   key kid (URI | --pub FILE.pem)
 *
 * Keys live behind mt_keystore.h (pkcs11: or file: URIs, protocol §1); this
 * file never sees a private key, only the public half (mt_key_public).  The
 * kid is protocol §1's: the first 8 bytes of SHA-256 over the normalised DER
 * SubjectPublicKeyInfo, computed by the crypto adapter.  `key public`
 * without --out writes the PEM itself (base64 of the DER SPKI, 64 columns,
 * RFC 7468 "PUBLIC KEY" labels) so that the CLI needs no OpenSSL of its own.
 *
 * Exit codes as everywhere (cli.h): 0, 1 for a key store or file failure
 * (including "a key already exists under that name"), 64 for usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"

static const char generate_usage[] =
	"medtrust key generate URI --type p256|ed25519 [--role sign|derive] [--pub OUT.pem]";
static const char public_usage[] = "medtrust key public URI [--out FILE.pem]";
static const char kid_usage[] = "medtrust key kid (URI | --pub FILE.pem)";

static const char key_help[] =
	"usage: medtrust key generate URI --type p256|ed25519 [--role sign|derive]\n"
	"                             [--pub OUT.pem]\n"
	"       medtrust key public URI [--out FILE.pem]\n"
	"       medtrust key kid (URI | --pub FILE.pem)\n"
	"\n"
	"Manage the private keys MTP/1 uses, named by URI:\n"
	"  pkcs11:token=T;object=L?pin-value=PIN   a key in a PKCS#11 token\n"
	"  file:PATH                               an encrypted PKCS#8 PEM file\n"
	"                                          (passphrase: MEDTRUST_KEY_PASSPHRASE)\n"
	"\n"
	"Run 'medtrust key <command> --help' for the options of each.\n"
	"\n"
	"Exit codes: 0 success, 1 key store or file failure, 64 usage error.\n";

static const char generate_help[] =
	"usage: medtrust key generate URI --type p256|ed25519 [--role sign|derive]\n"
	"                             [--pub OUT.pem]\n"
	"\n"
	"Generate a new key pair at URI (inside the token for pkcs11:, a new\n"
	"encrypted file of mode 0600 for file:; an existing key is never\n"
	"overwritten).  Prints nothing; 'medtrust key kid' shows the kid.\n"
	"\n"
	"Options:\n"
	"  --type p256|ed25519   key type (required); ed25519 can only sign\n"
	"  --role sign|derive    sign: operational, command and CA keys (default);\n"
	"                        derive: key-agreement (kx) keys, P-256 only\n"
	"  --pub FILE            also write the public key as PEM to FILE\n"
	"  -h, --help            show this help\n"
	"\n"
	"Exit codes: 0 generated, 1 key store or file failure (error: <what>:\n"
	"<reason>; a key already at URI is one), 64 usage error.\n";

static const char public_help[] =
	"usage: medtrust key public URI [--out FILE.pem]\n"
	"\n"
	"Print the public key of the private key at URI as PEM (\"PUBLIC KEY\",\n"
	"DER SubjectPublicKeyInfo), or write it to FILE.\n"
	"\n"
	"Options:\n"
	"  --out FILE   write the PEM to FILE (mode 0644) instead of stdout\n"
	"  -h, --help   show this help\n"
	"\n"
	"Exit codes: 0 success, 1 key store or file failure, 64 usage error.\n";

static const char kid_help[] =
	"usage: medtrust key kid (URI | --pub FILE.pem)\n"
	"\n"
	"Print the kid (protocol section 1: the first 8 bytes of SHA-256 over the\n"
	"DER SubjectPublicKeyInfo, P-256 uncompressed) in lowercase hex, of the key\n"
	"at URI or of a PEM public key file.\n"
	"\n"
	"Options:\n"
	"  --pub FILE   read the public key from a PEM file instead of a key store\n"
	"  -h, --help   show this help\n"
	"\n"
	"Exit codes: 0 success, 1 key store or file failure, 64 usage error.\n";

static int print_kid(const struct mt_pubkey *pk)
{
	char hex[2 * MT_KID_LEN + 2];
	enum mt_err e;

	mt_cli__hex(mt_pubkey_kid(pk), MT_KID_LEN, hex);
	hex[2 * MT_KID_LEN] = '\n';
	hex[2 * MT_KID_LEN + 1] = '\0';
	e = mt_cli__write_stdout(hex, 2 * MT_KID_LEN + 1);
	if (e != MT_OK)
		return mt_cli__error("writing stdout", e);
	return MT_EXIT_OK;
}

static int key_generate(int argc, char **argv)
{
	const char *cmd = "key generate";
	const char *type_s = NULL, *role_s = NULL, *pub_path = NULL, *uri;
	const struct mt_cli_opt opts[] = {
		{"type", 0, MT_CLI_VALUE, &type_s, NULL},
		{"role", 0, MT_CLI_VALUE, &role_s, NULL},
		{"pub", 0, MT_CLI_VALUE, &pub_path, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	enum mt_key_type type;
	enum mt_key_role role = MT_KEY_ROLE_SIGN;
	struct mt_key *k = NULL;
	enum mt_err e;
	int pos, rc;

	rc = mt_cli__parse_opts(cmd, generate_usage, generate_help, argc, argv, opts, &pos);
	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (argc - pos != 1)
		return mt_cli__usage(cmd, generate_usage, "expected exactly one key URI");
	uri = argv[pos];
	if (!type_s)
		return mt_cli__usage(cmd, generate_usage, "missing --type");
	if (strcmp(type_s, "p256") == 0)
		type = MT_KEY_P256;
	else if (strcmp(type_s, "ed25519") == 0)
		type = MT_KEY_ED25519;
	else
		return mt_cli__usage(cmd, generate_usage,
		                     "--type: '%s' is neither p256 nor ed25519", type_s);
	if (role_s) {
		if (strcmp(role_s, "sign") == 0)
			role = MT_KEY_ROLE_SIGN;
		else if (strcmp(role_s, "derive") == 0)
			role = MT_KEY_ROLE_DERIVE;
		else
			return mt_cli__usage(cmd, generate_usage,
			                     "--role: '%s' is neither sign nor derive", role_s);
	}
	if (type == MT_KEY_ED25519 && role == MT_KEY_ROLE_DERIVE)
		return mt_cli__usage(cmd, generate_usage,
		                     "an ed25519 key can only sign (--role sign)");

	e = mt_key_generate(uri, type, role, &k);
	if (e != MT_OK)
		return mt_cli__error("generating the key", e);
	if (pub_path) {
		e = mt_pubkey_write_pem(mt_key_public(k), pub_path);
		if (e != MT_OK) {
			fprintf(stderr, "error: writing --pub %s: %s\n", pub_path, mt_err_str(e));
			mt_key_free(k);
			return MT_EXIT_ERROR;
		}
	}
	mt_key_free(k);
	return MT_EXIT_OK;
}

/* PEM "PUBLIC KEY" of `der` on stdout (RFC 7468: base64, 64 columns). */
static enum mt_err write_pem(const uint8_t *der, size_t len)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char out[1024];
	size_t o = 0, i, col = 0;

	/* MT_SPKI_MAX bytes give ≤ 216 base64 characters: out is ample. */
	if (len > MT_SPKI_MAX)
		return MT_ERR_INTERNAL;
	memcpy(out, "-----BEGIN PUBLIC KEY-----\n", 27);
	o = 27;
	for (i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)der[i] << 16;
		size_t rem = len - i;

		if (rem > 1)
			v |= (uint32_t)der[i + 1] << 8;
		if (rem > 2)
			v |= der[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = rem > 1 ? b64[(v >> 6) & 63] : '=';
		out[o++] = rem > 2 ? b64[v & 63] : '=';
		col += 4;
		if (col == 64) {
			out[o++] = '\n';
			col = 0;
		}
	}
	if (col)
		out[o++] = '\n';
	memcpy(out + o, "-----END PUBLIC KEY-----\n", 25);
	o += 25;
	return mt_cli__write_stdout(out, o);
}

static int key_public(int argc, char **argv)
{
	const char *cmd = "key public";
	const char *out_path = NULL;
	const struct mt_cli_opt opts[] = {
		{"out", 0, MT_CLI_VALUE, &out_path, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	struct mt_key *k = NULL;
	uint8_t der[MT_SPKI_MAX];
	size_t der_len = 0;
	enum mt_err e;
	int pos, u, rc = MT_EXIT_OK;

	u = mt_cli__parse_opts(cmd, public_usage, public_help, argc, argv, opts, &pos);
	if (u != MT_CLI_CONTINUE)
		return u;
	if (argc - pos != 1)
		return mt_cli__usage(cmd, public_usage, "expected exactly one key URI");

	e = mt_key_open(argv[pos], &k);
	if (e != MT_OK)
		return mt_cli__error("opening the key", e);
	if (out_path) {
		e = mt_pubkey_write_pem(mt_key_public(k), out_path);
		if (e != MT_OK) {
			fprintf(stderr, "error: writing --out %s: %s\n", out_path, mt_err_str(e));
			rc = MT_EXIT_ERROR;
		}
	} else {
		e = mt_pubkey_spki(mt_key_public(k), der, sizeof der, &der_len);
		if (e == MT_OK)
			e = write_pem(der, der_len);
		if (e != MT_OK)
			rc = mt_cli__error("writing the public key", e);
	}
	mt_key_free(k);
	return rc;
}

static int key_kid(int argc, char **argv)
{
	const char *cmd = "key kid";
	const char *pub_path = NULL;
	const struct mt_cli_opt opts[] = {
		{"pub", 0, MT_CLI_VALUE, &pub_path, NULL},
		{NULL, 0, MT_CLI_VALUE, NULL, NULL},
	};
	struct mt_key *k = NULL;
	struct mt_pubkey *pk = NULL;
	enum mt_err e;
	int pos, rc;

	rc = mt_cli__parse_opts(cmd, kid_usage, kid_help, argc, argv, opts, &pos);
	if (rc != MT_CLI_CONTINUE)
		return rc;
	if (pub_path) {
		if (argc != pos)
			return mt_cli__usage(cmd, kid_usage, "give either a URI or --pub, not both");
		e = mt_pubkey_from_pem_file(pub_path, &pk);
		if (e != MT_OK) {
			fprintf(stderr, "error: reading --pub %s: %s\n", pub_path, mt_err_str(e));
			return MT_EXIT_ERROR;
		}
		rc = print_kid(pk);
		mt_pubkey_free(pk);
		return rc;
	}
	if (argc - pos != 1)
		return mt_cli__usage(cmd, kid_usage, "expected one key URI or --pub FILE");
	e = mt_key_open(argv[pos], &k);
	if (e != MT_OK)
		return mt_cli__error("opening the key", e);
	rc = print_kid(mt_key_public(k));
	mt_key_free(k);
	return rc;
}

int mt_cli_key(int argc, char **argv)
{
	static const struct mt_cli_sub subs[] = {
		{"generate", key_generate},
		{"public", key_public},
		{"kid", key_kid},
		{NULL, NULL},
	};

	return mt_cli__dispatch("key", "medtrust key generate|public|kid ...", key_help, subs, argc,
	                        argv);
}
