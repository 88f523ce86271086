/*
 * keystore.c — the key store's front end: key URIs and backend dispatch
 * (mt_keystore.h; protocol §1 for the keys, §9 for the URI forms).
 *
 * What it does.  A key is named by a URI.  `pkcs11:` URIs follow RFC 7512:
 * path attributes separated by `;`, then optionally `?` and query attributes
 * separated by `&`, every value percent-decoded.  `file:PATH` (also the
 * RFC 8089 forms `file:///PATH` and `file://localhost/PATH`) names an
 * encrypted PKCS#8 file.  This file turns the text into a
 * `struct mt_keystore__uri`, hands it to the PKCS#11 or the software
 * backend, and checks, before any backend runs, that the request is allowed:
 * the key's role (a derive-only key never signs, a sign-only key never
 * derives — threat I03) and the key and peer types.
 *
 * Invariants.
 *  - A URI is parsed completely and strictly before anything is loaded or
 *    opened: unknown attributes, duplicated attributes, bad percent escapes,
 *    characters RFC 3986 never allows unescaped, an embedded NUL in a text
 *    value, a `#` fragment, both pin-value and pin-source, a `type` other
 *    than `private`, or a URI that names no token or no object are all
 *    MT_ERR_KS_URI.  The same URI therefore means the same key everywhere.
 *  - Leniency, on purpose: `pin-value`, `pin-source` and `module-path`
 *    belong in the query (RFC 7512 §2.3) but are also accepted in the path,
 *    because operators and other tools write them there.  Vendor (`x-`)
 *    attributes, `module-name` and the slot-* attributes of later drafts are
 *    refused rather than silently ignored: a URI whose constraint we cannot
 *    honour must not match a key it was not meant for.
 *  - The PIN from `pin-value` is a secret: it lives in one heap copy that
 *    mt_keystore__uri_clear() wipes (OPENSSL_cleanse) and that is never
 *    logged; the parser copies nothing else of it.
 *  - A `struct mt_key` owns its public half and its backend state;
 *    mt_key_free() releases both and wipes the struct.
 *  - A key signs one message or digest at a time: mt_key_sign() and
 *    mt_keystore__sign_digest() (the TLS path of keystore_evp.c) hold the
 *    key's own mutex around the backend call, so one key may serve several
 *    threads whatever its backend.  The mutex is taken before any lock of
 *    the backend and never while holding one.
 *
 * Why a vtable and not `if (pkcs11)` everywhere: the same calls drive a
 * hardware token, SoftHSM2 in tests and an encrypted file in the fleet
 * simulator (STYLE.md "backends behind one interface", like curl's vtls),
 * and the role checks live in one place instead of being re-implemented,
 * differently, by each backend.
 */
#define _POSIX_C_SOURCE 200809L

#include "medtrust/mt_keystore.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "keystore_int.h"

/* ---- keys ------------------------------------------------------------ */

enum mt_err mt_keystore__key_new(const struct mt_keystore__backend *be, enum mt_key_type type,
                                 unsigned roles, struct mt_key **out)
{
	struct mt_key *k = calloc(1, sizeof(*k));
	if (k == NULL)
		return MT_ERR_NOMEM;
	if (pthread_mutex_init(&k->lock, NULL) != 0) {
		free(k);
		return MT_ERR_NOMEM;
	}
	k->be = be;
	k->type = type;
	k->roles = roles;
	*out = k;
	return MT_OK;
}

void mt_key_free(struct mt_key *k)
{
	if (k == NULL)
		return;
	if (k->be != NULL && k->be->release != NULL && k->state != NULL)
		k->be->release(k);
	mt_pubkey_free(k->pub);
	pthread_mutex_destroy(&k->lock);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

enum mt_key_type mt_key_type(const struct mt_key *k)
{
	return k != NULL ? k->type : MT_KEY_NONE;
}

const struct mt_pubkey *mt_key_public(const struct mt_key *k)
{
	return k != NULL ? k->pub : NULL;
}

enum mt_err mt_key_sign(struct mt_key *k, const uint8_t *msg, size_t len, uint8_t sig[MT_SIG_LEN])
{
	if (k == NULL || sig == NULL || (msg == NULL && len > 0) || k->be == NULL)
		return MT_ERR_ARG;
	if ((k->roles & MT_KEYSTORE__ROLE_SIGN) == 0)
		return MT_ERR_KS_KEY_TYPE;
	if (k->type != MT_KEY_P256 && k->type != MT_KEY_ED25519)
		return MT_ERR_KS_KEY_TYPE;
	static const uint8_t empty[1];
	pthread_mutex_lock(&k->lock);
	enum mt_err e = k->be->sign(k, msg != NULL ? msg : empty, len, sig);
	pthread_mutex_unlock(&k->lock);
	if (e != MT_OK)
		OPENSSL_cleanse(sig, MT_SIG_LEN);
	return e;
}

enum mt_err mt_keystore__sign_digest(struct mt_key *k, const uint8_t digest[32],
                                     uint8_t sig[MT_SIG_LEN])
{
	if (k == NULL || digest == NULL || sig == NULL || k->be == NULL)
		return MT_ERR_ARG;
	if ((k->roles & MT_KEYSTORE__ROLE_SIGN) == 0 || k->type != MT_KEY_P256 ||
	    k->be->sign_digest == NULL)
		return MT_ERR_KS_KEY_TYPE;
	pthread_mutex_lock(&k->lock);
	enum mt_err e = k->be->sign_digest(k, digest, sig);
	pthread_mutex_unlock(&k->lock);
	if (e != MT_OK)
		OPENSSL_cleanse(sig, MT_SIG_LEN);
	return e;
}

enum mt_err mt_key_ecdh(struct mt_key *k, const struct mt_pubkey *peer, uint8_t x[32])
{
	if (k == NULL || peer == NULL || x == NULL || k->be == NULL)
		return MT_ERR_ARG;
	if (k->type != MT_KEY_P256 || (k->roles & MT_KEYSTORE__ROLE_DERIVE) == 0)
		return MT_ERR_KS_KEY_TYPE;
	if (mt_pubkey_type(peer) != MT_KEY_P256)
		return MT_ERR_KS_KEY_TYPE;
	enum mt_err e = k->be->ecdh(k, peer, x);
	if (e != MT_OK)
		OPENSSL_cleanse(x, 32);
	return e;
}

/* ---- URI parsing ------------------------------------------------------ */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Characters RFC 3986 never allows unescaped in a URI, plus controls, space
 * and non-ASCII bytes.  The delimiters of each component are handled by the
 * caller, which splits before it decodes. */
static int bad_uri_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 1;
	return strchr("\"<>\\^`{}|#", c) != NULL;
}

/* Percent-decode s[0..n) into out (room for n bytes).  Text values refuse an
 * encoded NUL; binary values (CKA_ID) allow every byte. */
static enum mt_err pct_decode(const char *s, size_t n, int binary, uint8_t *out, size_t *outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			if (n - i < 3)
				return MT_ERR_KS_URI;
			int hi = hexval((unsigned char)s[i + 1]);
			int lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return MT_ERR_KS_URI;
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0 && !binary)
				return MT_ERR_KS_URI;
			i += 2;
		} else if (bad_uri_char(c)) {
			return MT_ERR_KS_URI;
		}
		out[o++] = c;
	}
	*outlen = o;
	return MT_OK;
}

/* A heap, NUL-terminated, percent-decoded copy of s[0..n). */
static enum mt_err pct_strdup(const char *s, size_t n, char **out, size_t *outlen)
{
	char *d = malloc(n + 1);
	size_t len = 0;
	if (d == NULL)
		return MT_ERR_NOMEM;
	enum mt_err e = pct_decode(s, n, 0, (uint8_t *)d, &len);
	if (e != MT_OK) {
		OPENSSL_cleanse(d, n + 1);
		free(d);
		return e;
	}
	d[len] = '\0';
	*out = d;
	if (outlen != NULL)
		*outlen = len;
	return MT_OK;
}

static void free_secret_str(char *s, size_t len)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, len + 1);
		free(s);
	}
}

void mt_keystore__uri_clear(struct mt_keystore__uri *u)
{
	if (u == NULL)
		return;
	free(u->token);
	free(u->manufacturer);
	free(u->serial);
	free(u->model);
	free(u->library_manufacturer);
	free(u->library_description);
	free(u->object);
	free_secret_str(u->pin, u->pin_len);
	free(u->pin_source);
	free(u->module_path);
	free(u->path);
	OPENSSL_cleanse(u, sizeof(*u));
}

/* "M" or "M.N", decimal, each part 0..255 (CK_VERSION bytes). */
static enum mt_err parse_version(const char *s, unsigned *major, unsigned *minor)
{
	unsigned v[2] = {0, 0};
	int part = 0, digits = 0;
	for (const char *p = s;; p++) {
		if (*p >= '0' && *p <= '9') {
			v[part] = v[part] * 10 + (unsigned)(*p - '0');
			if (v[part] > 255 || ++digits > 3)
				return MT_ERR_KS_URI;
		} else if (*p == '.' && part == 0 && digits > 0) {
			part = 1;
			digits = 0;
		} else if (*p == '\0' && digits > 0) {
			break;
		} else {
			return MT_ERR_KS_URI;
		}
	}
	*major = v[0];
	*minor = v[1];
	return MT_OK;
}

/* Where an attribute may appear. */
#define IN_PATH 1
#define IN_QUERY 2

static enum mt_err set_str(char **slot, const char *v, size_t n)
{
	if (*slot != NULL)
		return MT_ERR_KS_URI; /* duplicated attribute */
	if (n == 0)
		return MT_ERR_KS_URI; /* empty value: names nothing */
	size_t len = 0;
	enum mt_err e = pct_strdup(v, n, slot, &len);
	if (e == MT_OK && len == 0) {
		free(*slot);
		*slot = NULL;
		return MT_ERR_KS_URI;
	}
	return e;
}

/* One `name=value` attribute of a pkcs11: URI; `where` says which part of
 * the URI it came from. */
static enum mt_err pkcs11_attr(struct mt_keystore__uri *u, const char *a, size_t n, int where)
{
	const char *eq = memchr(a, '=', n);
	if (eq == NULL || eq == a)
		return MT_ERR_KS_URI;
	size_t nl = (size_t)(eq - a);
	const char *v = eq + 1;
	size_t vl = n - nl - 1;
	for (size_t i = 0; i < nl; i++) {
		char c = a[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return MT_ERR_KS_URI;
	}
#define NAME_IS(lit) (nl == sizeof(lit) - 1 && memcmp(a, lit, nl) == 0)
	/* Query attributes: accepted in the query and, leniently, the path. */
	if (NAME_IS("pin-value")) {
		if (u->pin != NULL)
			return MT_ERR_KS_URI;
		return pct_strdup(v, vl, &u->pin, &u->pin_len);
	}
	if (NAME_IS("pin-source"))
		return set_str(&u->pin_source, v, vl);
	if (NAME_IS("module-path"))
		return set_str(&u->module_path, v, vl);
	if (where != IN_PATH)
		return MT_ERR_KS_URI; /* module-name, vendor and unknown attributes */
	if (NAME_IS("token"))
		return set_str(&u->token, v, vl);
	if (NAME_IS("manufacturer"))
		return set_str(&u->manufacturer, v, vl);
	if (NAME_IS("serial"))
		return set_str(&u->serial, v, vl);
	if (NAME_IS("model"))
		return set_str(&u->model, v, vl);
	if (NAME_IS("object"))
		return set_str(&u->object, v, vl);
	if (NAME_IS("library-manufacturer"))
		return set_str(&u->library_manufacturer, v, vl);
	if (NAME_IS("library-description"))
		return set_str(&u->library_description, v, vl);
	if (NAME_IS("library-version")) {
		char *s = NULL;
		if (u->has_library_version)
			return MT_ERR_KS_URI;
		enum mt_err e = set_str(&s, v, vl);
		if (e == MT_OK)
			e = parse_version(s, &u->library_version_major, &u->library_version_minor);
		free(s);
		if (e == MT_OK)
			u->has_library_version = 1;
		return e;
	}
	if (NAME_IS("id")) {
		uint8_t tmp[MT_KEYSTORE__URI_MAX];
		size_t len = 0;
		if (u->has_id || vl == 0 || vl > sizeof(tmp))
			return MT_ERR_KS_URI;
		enum mt_err e = pct_decode(v, vl, 1, tmp, &len);
		if (e != MT_OK)
			return e;
		if (len == 0 || len > MT_KEYSTORE__ID_MAX)
			return MT_ERR_KS_URI;
		memcpy(u->id, tmp, len);
		u->id_len = len;
		u->has_id = 1;
		return MT_OK;
	}
	if (NAME_IS("type")) {
		char *s = NULL;
		enum mt_err e = set_str(&s, v, vl);
		if (e == MT_OK && strcmp(s, "private") != 0)
			e = MT_ERR_KS_URI; /* we only ever open private keys */
		free(s);
		return e;
	}
#undef NAME_IS
	return MT_ERR_KS_URI;
}

/* Split s[0..n) at `sep` and feed each piece to pkcs11_attr.  An empty piece
 * (`;;`, a trailing `;`) is malformed. */
static enum mt_err pkcs11_part(struct mt_keystore__uri *u, const char *s, size_t n, char sep,
                               int where)
{
	size_t start = 0;
	if (n == 0)
		return MT_OK;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == sep) {
			if (i == start)
				return MT_ERR_KS_URI;
			enum mt_err e = pkcs11_attr(u, s + start, i - start, where);
			if (e != MT_OK)
				return e;
			start = i + 1;
		}
	}
	return MT_OK;
}

static enum mt_err parse_pkcs11(const char *rest, struct mt_keystore__uri *u)
{
	size_t n = strlen(rest);
	const char *q = memchr(rest, '?', n);
	size_t pl = q != NULL ? (size_t)(q - rest) : n;
	if (memchr(rest, '#', n) != NULL)
		return MT_ERR_KS_URI;
	enum mt_err e = pkcs11_part(u, rest, pl, ';', IN_PATH);
	if (e == MT_OK && q != NULL) {
		if (pl + 1 == n)
			return MT_ERR_KS_URI; /* `?` with nothing after it */
		e = pkcs11_part(u, q + 1, n - pl - 1, '&', IN_QUERY);
	}
	if (e != MT_OK)
		return e;
	if (u->pin != NULL && u->pin_source != NULL)
		return MT_ERR_KS_URI;
	if (u->token == NULL && u->serial == NULL && u->manufacturer == NULL && u->model == NULL)
		return MT_ERR_KS_URI; /* no token named */
	if (u->object == NULL && !u->has_id)
		return MT_ERR_KS_URI; /* no key named */
	return MT_OK;
}

static int ascii_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (char)(y - 'A' + 'a');
		if (x != y)
			return 0;
	}
	return 1;
}

static enum mt_err parse_file(const char *rest, struct mt_keystore__uri *u)
{
	size_t n = strlen(rest);
	if (n >= 2 && rest[0] == '/' && rest[1] == '/') {
		/* file://[localhost]/path */
		const char *auth = rest + 2;
		const char *slash = strchr(auth, '/');
		if (slash == NULL)
			return MT_ERR_KS_URI;
		size_t al = (size_t)(slash - auth);
		if (al != 0 && !(al == 9 && ascii_ieq(auth, "localhost", 9)))
			return MT_ERR_KS_URI; /* a remote host */
		rest = slash;
		n = strlen(rest);
	}
	if (n == 0 || memchr(rest, '?', n) != NULL || memchr(rest, '#', n) != NULL)
		return MT_ERR_KS_URI;
	/* Paths are typed by people: only controls are refused raw, `%` must
	 * be a valid escape. */
	char *d = malloc(n + 1);
	size_t o = 0;
	if (d == NULL)
		return MT_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)rest[i];
		if (c < 0x20 || c == 0x7f)
			goto bad;
		if (c == '%') {
			if (n - i < 3)
				goto bad;
			int hi = hexval((unsigned char)rest[i + 1]);
			int lo = hexval((unsigned char)rest[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0)
				goto bad;
			i += 2;
		}
		d[o++] = (char)c;
	}
	d[o] = '\0';
	u->path = d;
	return MT_OK;
bad:
	free(d);
	return MT_ERR_KS_URI;
}

enum mt_err mt_keystore__uri_parse(const char *uri, struct mt_keystore__uri *u)
{
	memset(u, 0, sizeof(*u));
	if (uri == NULL)
		return MT_ERR_ARG;
	size_t n = strnlen(uri, MT_KEYSTORE__URI_MAX + 1);
	if (n == 0 || n > MT_KEYSTORE__URI_MAX)
		return MT_ERR_KS_URI;
	enum mt_err e;
	if (n > 7 && ascii_ieq(uri, "pkcs11:", 7)) {
		u->scheme = MT_KEYSTORE__SCHEME_PKCS11;
		e = parse_pkcs11(uri + 7, u);
	} else if (n > 5 && ascii_ieq(uri, "file:", 5)) {
		u->scheme = MT_KEYSTORE__SCHEME_FILE;
		e = parse_file(uri + 5, u);
	} else {
		e = MT_ERR_KS_URI;
	}
	if (e != MT_OK)
		mt_keystore__uri_clear(u);
	return e;
}

/* ---- dispatch -------------------------------------------------------- */

enum mt_err mt_key_open(const char *uri, struct mt_key **out)
{
	struct mt_keystore__uri u;
	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	enum mt_err e = mt_keystore__uri_parse(uri, &u);
	if (e != MT_OK)
		return e;
	if (u.scheme == MT_KEYSTORE__SCHEME_PKCS11)
		e = mt_keystore__p11_open(&u, out);
	else
		e = mt_keystore__file_open(u.path, out);
	mt_keystore__uri_clear(&u);
	return e;
}

/* Which (type, role) pairs exist at all: Ed25519 only signs (X25519 is not
 * part of MTP/1). */
static enum mt_err check_type_role(enum mt_key_type type, enum mt_key_role role)
{
	if (role != MT_KEY_ROLE_SIGN && role != MT_KEY_ROLE_DERIVE)
		return MT_ERR_ARG;
	if (type == MT_KEY_P256)
		return MT_OK;
	if (type == MT_KEY_ED25519)
		return role == MT_KEY_ROLE_SIGN ? MT_OK : MT_ERR_KS_KEY_TYPE;
	return MT_ERR_UNSUPPORTED;
}

enum mt_err mt_key_generate(const char *uri, enum mt_key_type type, enum mt_key_role role,
                            struct mt_key **out)
{
	struct mt_keystore__uri u;
	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	enum mt_err e = check_type_role(type, role);
	if (e != MT_OK)
		return e;
	e = mt_keystore__uri_parse(uri, &u);
	if (e != MT_OK)
		return e;
	if (u.scheme == MT_KEYSTORE__SCHEME_PKCS11)
		e = mt_keystore__p11_generate(&u, type, role, out);
	else
		e = mt_keystore__file_generate(u.path, type, role, out);
	mt_keystore__uri_clear(&u);
	return e;
}

enum mt_err mt_key_generate_kek(const char *uri)
{
	struct mt_keystore__uri u;
	enum mt_err e = mt_keystore__uri_parse(uri, &u);
	if (e != MT_OK)
		return e;
	if (u.scheme == MT_KEYSTORE__SCHEME_PKCS11)
		e = mt_keystore__p11_generate_kek(&u);
	else
		e = MT_ERR_UNSUPPORTED;
	mt_keystore__uri_clear(&u);
	return e;
}

enum mt_err mt_kek_open(const char *uri, struct mt_kek **out)
{
	struct mt_keystore__uri u;
	enum mt_err e;

	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	e = mt_keystore__uri_parse(uri, &u);
	if (e != MT_OK)
		return e;
	if (u.scheme == MT_KEYSTORE__SCHEME_PKCS11)
		e = mt_keystore__p11_kek_open(&u, out);
	else
		e = MT_ERR_UNSUPPORTED;
	mt_keystore__uri_clear(&u);
	return e;
}

enum mt_err mt_key_import_raw(enum mt_key_type type, enum mt_key_role role, const uint8_t *priv,
                              size_t len, struct mt_key **out)
{
	if (out == NULL)
		return MT_ERR_ARG;
	*out = NULL;
	if (priv == NULL)
		return MT_ERR_ARG;
	enum mt_err e = check_type_role(type, role);
	if (e != MT_OK)
		return e;
	return mt_keystore__soft_import_raw(type, (unsigned)role, priv, len, out);
}
