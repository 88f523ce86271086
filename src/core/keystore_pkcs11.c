/*
 * keystore_pkcs11.c — the PKCS#11 key store backend (mt_keystore.h;
 * protocol §1 "where it lives", §9 key URIs; threats I01–I04, I08).
 *
 * What it does.  A `pkcs11:` key is a pair of object handles in a token: the
 * private key, which never leaves it, and the public key object whose
 * CKA_EC_POINT gives us the public half.  Keys are generated inside the
 * token (C_GenerateKeyPair), signatures are made inside it (ES256: SHA-256
 * computed here, CKM_ECDSA in the token — SoftHSM2 2.6.1 has no
 * CKM_ECDSA_SHA256; Ed25519: CKM_EDDSA over the whole message), and ECDH is
 * CKM_ECDH1_DERIVE with CKD_NULL into a short-lived session secret whose
 * CKA_VALUE (the x-coordinate) we read and then destroy.
 *
 * Modules are loaded with p11-kit (p11_kit_module_load + _initialize, flags
 * 0 = "managed") rather than dlopen + C_GetFunctionList.  Why: a managed
 * module may be initialised by several independent users in one process —
 * libp11/engine_pkcs11 for TLS, our own tests poking the token directly —
 * without the second C_Initialize failing with
 * CKR_CRYPTOKI_ALREADY_INITIALIZED or the first C_Finalize pulling the module
 * from under the others; p11-kit reference-counts the real initialisation
 * and keeps each user's sessions apart.  It also does the dlopen, symbol
 * lookup and version checks we would otherwise write ourselves.
 *
 * Invariants.
 *  - Registry.  Each module (by canonical path: `module-path`, else
 *    $MEDTRUST_PKCS11_MODULE, else /usr/lib/softhsm/libsofthsm2.so) is
 *    loaded and initialised once per process; each token (module, slot) has
 *    at most one open R/W session, logged in once and shared by all of its
 *    open keys, reference-counted; the last key closes it (and logs out if
 *    we logged in).  `reg_lock` guards the registry; each token's `op_lock`
 *    serialises operations on its shared session (PKCS#11 sessions hold one
 *    active operation).  Lock order: reg_lock, then op_lock, never reversed.
 *  - Threads.  p11-kit initialises every module with CKF_OS_LOCKING_OK (and
 *    its own mutex callbacks), so the module may be entered from several
 *    threads at once: slot, token and mechanism queries need no lock of
 *    ours beyond reg_lock for the registry.  A session is another matter:
 *    two URIs naming the same token share one session (FIELD-NOTES), and a
 *    session holds one active operation (C_SignInit…C_Sign,
 *    C_FindObjectsInit…Final), so two threads signing with two keys of one
 *    token — the hub's TLS threads, through mt_key_evp — would otherwise
 *    interleave on it: CKR_OPERATION_ACTIVE, or one thread's C_Sign
 *    finishing the other's operation.  Every call that takes a session
 *    handle therefore runs under the token's op_lock, with two exceptions
 *    that no other thread can see: C_OpenSession and C_Login on a session
 *    not yet in the registry, and C_Logout and C_CloseSession after its last
 *    key is gone (both under reg_lock).  A key's own lock (keystore.c:
 *    mt_key_sign, mt_keystore__sign_digest) is taken before op_lock.
 *    Everything is finalised at exit (atexit) when no key is left open, so
 *    leak checkers see a clean process; mt_keystore__p11_reset() does the
 *    same on demand for tests.
 *  - PINs.  From `pin-value` or `pin-source` (a file; one trailing newline
 *    stripped; a command `|…` is refused).  A PIN lives in one stack buffer
 *    that is wiped right after C_Login and is never logged or put in the
 *    environment.  CKR_USER_ALREADY_LOGGED_IN counts as logged in (FIELD-
 *    NOTES), but that answer proves nothing about the PIN: a second URI
 *    naming an already logged-in token with a wrong PIN would otherwise be
 *    let in.  So when we log in we keep a tag of the PIN — HKDF-SHA256 keyed
 *    with a per-process random salt, never the PIN — and a later URI for the
 *    same token must present a PIN with the same tag (CRYPTO_memcmp via
 *    mt_ct_equal) or is refused with MT_ERR_KS_PIN.  Whoever can read this
 *    process's memory already holds the logged-in session, so the tag adds
 *    no exposure.  If another user of the module logged the token in before
 *    us we cannot check the PIN at all; that is PKCS#11's model.
 *  - Generated keys (threats I01–I03): private key CKA_TOKEN, CKA_PRIVATE,
 *    CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_SIGN xor CKA_DERIVE by role,
 *    CKA_DECRYPT, CKA_UNWRAP and CKA_SIGN_RECOVER false, and beyond the brief
 *    CKA_MODIFIABLE and CKA_COPYABLE false: PKCS#11 lets a logged-in user
 *    flip CKA_SIGN/CKA_DERIVE on a modifiable key, or copy a key into a
 *    modifiable one, which would undo the role separation.  The public
 *    object carries the same label and id, CKA_VERIFY only for sign keys,
 *    CKA_ENCRYPT, CKA_WRAP and CKA_DERIVE false (CKA_WRAP is a public- and
 *    secret-key attribute in PKCS#11; a strict token refuses it in a
 *    private-key template, so "no wrap" is said on the public object).
 *    An existing private or public key with the label or id is
 *    MT_ERR_KS_EXISTS; without an `id` the pair gets a random 8-byte one.
 *  - Errors while opening: no module MT_ERR_KS_MODULE; no token, or several
 *    matching the URI, MT_ERR_KS_TOKEN; PIN missing, wrong or locked
 *    MT_ERR_KS_PIN; no private key MT_ERR_KS_KEY_NOT_FOUND; several private
 *    keys matching the URI MT_ERR_KS_URI (the URI is too vague: we never
 *    guess); a key of another type MT_ERR_KS_KEY_TYPE.
 *  - Public halves are normalised: CKA_EC_PARAMS is the prime256v1 OID, or
 *    for Ed25519 the RFC 8410 OID or PrintableString "edwards25519" (both
 *    accepted by SoftHSM2 2.6.1; we generate with the OID); CKA_EC_POINT may
 *    be a DER OCTET STRING around the point/key or the raw bytes.
 *  - Fail closed (I08): every token error during sign or derive is
 *    MT_ERR_KS_OPERATION; there is no software fallback here or above.
 *    A session that died (token removed) stays dead for its keys: the
 *    caller reopens the key by URI, because the PIN was not kept.
 *  - Not fork-safe: a child must open its keys afresh (PKCS#11 sessions do
 *    not survive fork()).
 */
#define _XOPEN_SOURCE 700 /* POSIX.1-2008 with XSI: realpath() */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "keystore_int.h"

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define MODULE_ENV "MEDTRUST_PKCS11_MODULE"
#define MAX_SLOTS 1024
#define PIN_TAG_LEN 32

struct p11_module {
	struct p11_module *next;
	char *path; /* canonical */
	CK_FUNCTION_LIST *fl;
	struct p11_token *tokens;
};

struct p11_token {
	struct p11_token *next;
	struct p11_module *mod;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE session;
	unsigned refs; /* open keys using this session */
	int logged_in_by_us;
	int pin_tagged; /* pin_tag holds the tag of the PIN we logged in with */
	uint8_t pin_tag[PIN_TAG_LEN];
	pthread_mutex_t op_lock;
};

struct p11_key {
	struct p11_token *tok;
	CK_OBJECT_HANDLE priv;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct p11_module *modules;
static int atexit_registered;
static int pin_salt_ready;
static uint8_t pin_salt[32];

/* DER encodings of the curves we know (CKA_EC_PARAMS). */
static const uint8_t OID_P256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t OID_ED25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const uint8_t PS_ED25519[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                                     'd',  's',  '2', '5', '5', '1', '9'};
/* DER SPKI prefix of a P-256 key with an uncompressed point. */
static const uint8_t SPKI_P256_PREFIX[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};

/* ---- registry ----------------------------------------------------------- */

static void finalize_all_locked(void)
{
	while (modules != NULL) {
		struct p11_module *m = modules;
		modules = m->next;
		(void)p11_kit_module_finalize(m->fl);
		p11_kit_module_release(m->fl);
		free(m->path);
		free(m);
	}
}

static int any_token_locked(void)
{
	for (struct p11_module *m = modules; m != NULL; m = m->next)
		if (m->tokens != NULL)
			return 1;
	return 0;
}

static void at_exit(void)
{
	pthread_mutex_lock(&reg_lock);
	if (!any_token_locked())
		finalize_all_locked();
	OPENSSL_cleanse(pin_salt, sizeof(pin_salt));
	pin_salt_ready = 0;
	pthread_mutex_unlock(&reg_lock);
}

enum mt_err mt_keystore__p11_reset(void)
{
	pthread_mutex_lock(&reg_lock);
	if (any_token_locked()) {
		pthread_mutex_unlock(&reg_lock);
		return MT_ERR_INTERNAL;
	}
	finalize_all_locked();
	pthread_mutex_unlock(&reg_lock);
	return MT_OK;
}

static enum mt_err get_module_locked(const char *path_in, struct p11_module **out)
{
	const char *path = path_in;
	if (path == NULL) {
		path = getenv(MODULE_ENV);
		if (path == NULL || path[0] == '\0')
			path = DEFAULT_MODULE;
	}
	char *canon = realpath(path, NULL);
	if (canon == NULL)
		return errno == ENOMEM ? MT_ERR_NOMEM : MT_ERR_KS_MODULE;
	for (struct p11_module *m = modules; m != NULL; m = m->next) {
		if (strcmp(m->path, canon) == 0) {
			free(canon);
			*out = m;
			return MT_OK;
		}
	}
	struct p11_module *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		free(canon);
		return MT_ERR_NOMEM;
	}
	m->path = canon;
	m->fl = p11_kit_module_load(canon, 0);
	if (m->fl == NULL) {
		free(canon);
		free(m);
		return MT_ERR_KS_MODULE;
	}
	if (p11_kit_module_initialize(m->fl) != CKR_OK) {
		p11_kit_module_release(m->fl);
		free(canon);
		free(m);
		return MT_ERR_KS_MODULE;
	}
	if (!atexit_registered && atexit(at_exit) == 0)
		atexit_registered = 1;
	m->next = modules;
	modules = m;
	*out = m;
	return MT_OK;
}

/* ---- token selection ---------------------------------------------------- */

/* A blank-padded CK_TOKEN_INFO field equals `want` (RFC 7512 §2.3: the
 * attribute is the field without its padding). */
static int field_eq(const unsigned char *field, size_t flen, const char *want)
{
	size_t wl = strlen(want);
	if (wl > flen || memcmp(field, want, wl) != 0)
		return 0;
	for (size_t i = wl; i < flen; i++)
		if (field[i] != ' ' && field[i] != '\0')
			return 0;
	return 1;
}

static enum mt_err find_slot(struct p11_module *m, const struct mt_keystore__uri *u,
                             CK_SLOT_ID *slot)
{
	CK_FUNCTION_LIST *f = m->fl;
	if (u->library_manufacturer != NULL || u->library_description != NULL ||
	    u->has_library_version) {
		CK_INFO info;
		if (f->C_GetInfo(&info) != CKR_OK)
			return MT_ERR_KS_MODULE;
		if ((u->library_manufacturer != NULL &&
		     !field_eq(info.manufacturerID, sizeof(info.manufacturerID),
		               u->library_manufacturer)) ||
		    (u->library_description != NULL &&
		     !field_eq(info.libraryDescription, sizeof(info.libraryDescription),
		               u->library_description)) ||
		    (u->has_library_version &&
		     (info.libraryVersion.major != u->library_version_major ||
		      info.libraryVersion.minor != u->library_version_minor)))
			return MT_ERR_KS_TOKEN;
	}
	CK_ULONG n = 0;
	if (f->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK)
		return MT_ERR_KS_TOKEN;
	if (n == 0)
		return MT_ERR_KS_TOKEN;
	if (n > MAX_SLOTS)
		n = MAX_SLOTS;
	CK_SLOT_ID *list = calloc(n, sizeof(*list));
	if (list == NULL)
		return MT_ERR_NOMEM;
	CK_RV rv = f->C_GetSlotList(CK_TRUE, list, &n);
	if (rv != CKR_OK) {
		free(list);
		return MT_ERR_KS_TOKEN;
	}
	unsigned matches = 0;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		if (f->C_GetTokenInfo(list[i], &ti) != CKR_OK)
			continue;
		if ((ti.flags & CKF_TOKEN_INITIALIZED) == 0)
			continue;
		if (u->token != NULL && !field_eq(ti.label, sizeof(ti.label), u->token))
			continue;
		if (u->manufacturer != NULL &&
		    !field_eq(ti.manufacturerID, sizeof(ti.manufacturerID), u->manufacturer))
			continue;
		if (u->model != NULL && !field_eq(ti.model, sizeof(ti.model), u->model))
			continue;
		if (u->serial != NULL &&
		    !field_eq(ti.serialNumber, sizeof(ti.serialNumber), u->serial))
			continue;
		if (matches++ == 0)
			*slot = list[i];
	}
	free(list);
	/* None, or several: a URI must name exactly one token. */
	return matches == 1 ? MT_OK : MT_ERR_KS_TOKEN;
}

/* ---- PINs ---------------------------------------------------------------- */

/* The PIN named by the URI into pin[MT_KEYSTORE__PIN_MAX + 2]; *have = 0
 * when the URI names none. */
static enum mt_err get_pin(const struct mt_keystore__uri *u, char *pin, size_t *len, int *have)
{
	*have = 0;
	*len = 0;
	if (u->pin != NULL) {
		if (u->pin_len > MT_KEYSTORE__PIN_MAX)
			return MT_ERR_KS_PIN;
		memcpy(pin, u->pin, u->pin_len);
		*len = u->pin_len;
		*have = 1;
		return MT_OK;
	}
	if (u->pin_source == NULL)
		return MT_OK;
	const char *path = u->pin_source;
	if (path[0] == '|')
		return MT_ERR_KS_URI; /* RFC 7512 allows a command; we never run one */
	if (strncmp(path, "file:", 5) == 0) {
		path += 5;
		if (strncmp(path, "//", 2) == 0) {
			path += 2;
			if (strncmp(path, "localhost/", 10) == 0)
				path += 9;
			if (path[0] != '/')
				return MT_ERR_KS_URI;
		}
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return MT_ERR_KS_PIN; /* the PIN is missing */
	size_t n = 0;
	const size_t cap = MT_KEYSTORE__PIN_MAX + 2; /* PIN, "\r\n" */
	enum mt_err e = MT_OK;
	for (;;) {
		ssize_t r = read(fd, pin + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = MT_ERR_IO;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			char extra;
			if (read(fd, &extra, 1) != 0)
				e = MT_ERR_KS_PIN; /* longer than any PIN */
			break;
		}
	}
	close(fd);
	if (e == MT_OK) {
		if (n > 0 && pin[n - 1] == '\n') {
			n--;
			if (n > 0 && pin[n - 1] == '\r')
				n--;
		}
		if (n > MT_KEYSTORE__PIN_MAX || memchr(pin, '\0', n) != NULL)
			e = MT_ERR_KS_PIN;
	}
	if (e != MT_OK) {
		OPENSSL_cleanse(pin, cap);
		return e;
	}
	*len = n;
	*have = 1;
	return MT_OK;
}

static enum mt_err pin_tag(const char *pin, size_t len, uint8_t tag[PIN_TAG_LEN])
{
	static const char info[] = "medtrust keystore pin tag v1";
	if (!pin_salt_ready) {
		enum mt_err e = mt_random(pin_salt, sizeof(pin_salt));
		if (e != MT_OK)
			return e;
		pin_salt_ready = 1;
	}
	return mt_hkdf_sha256((const uint8_t *)pin, len, pin_salt, sizeof(pin_salt),
	                      (const uint8_t *)info, sizeof(info) - 1, tag, PIN_TAG_LEN);
}

static enum mt_err map_login_rv(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
	case CKR_USER_ALREADY_LOGGED_IN:
		return MT_OK;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
	case CKR_PIN_LOCKED:
	case CKR_PIN_EXPIRED:
	case CKR_USER_PIN_NOT_INITIALIZED:
		return MT_ERR_KS_PIN;
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_RECOGNIZED:
		return MT_ERR_KS_TOKEN;
	case CKR_HOST_MEMORY:
		return MT_ERR_NOMEM;
	default:
		return MT_ERR_KS_OPERATION;
	}
}

/* Log the new session of `t` in.  Called with reg_lock held. */
static enum mt_err login_locked(struct p11_token *t, const char *pin, size_t pin_len, int have)
{
	CK_FUNCTION_LIST *f = t->mod->fl;
	CK_TOKEN_INFO ti;
	CK_RV rv = f->C_GetTokenInfo(t->slot, &ti);
	if (rv != CKR_OK)
		return MT_ERR_KS_TOKEN;
	if (have) {
		rv = f->C_Login(t->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)pin_len);
		enum mt_err e = map_login_rv(rv);
		if (e != MT_OK)
			return e;
		if (rv == CKR_OK) {
			t->logged_in_by_us = 1;
			e = pin_tag(pin, pin_len, t->pin_tag);
			if (e != MT_OK)
				return e;
			t->pin_tagged = 1;
		}
		return MT_OK;
	}
	if (ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH) {
		rv = f->C_Login(t->session, CKU_USER, NULL, 0);
		if (rv == CKR_OK)
			t->logged_in_by_us = 1;
		return map_login_rv(rv);
	}
	if (ti.flags & CKF_LOGIN_REQUIRED)
		return MT_ERR_KS_PIN; /* no PIN given */
	return MT_OK;
}

/* A later URI for a token we already hold a session on: its PIN must be the
 * one we logged in with. */
static enum mt_err check_pin_locked(struct p11_token *t, const char *pin, size_t pin_len, int have)
{
	if (!t->pin_tagged)
		return MT_OK; /* logged in without a PIN we know: nothing to compare */
	if (!have)
		return MT_ERR_KS_PIN;
	uint8_t tag[PIN_TAG_LEN];
	enum mt_err e = pin_tag(pin, pin_len, tag);
	if (e == MT_OK && !mt_ct_equal(tag, t->pin_tag, PIN_TAG_LEN))
		e = MT_ERR_KS_PIN;
	OPENSSL_cleanse(tag, sizeof(tag));
	return e;
}

static void release_token_locked(struct p11_token *t)
{
	if (--t->refs > 0)
		return;
	CK_FUNCTION_LIST *f = t->mod->fl;
	if (t->logged_in_by_us)
		(void)f->C_Logout(t->session);
	(void)f->C_CloseSession(t->session);
	struct p11_token **pp = &t->mod->tokens;
	while (*pp != t)
		pp = &(*pp)->next;
	*pp = t->next;
	pthread_mutex_destroy(&t->op_lock);
	OPENSSL_cleanse(t, sizeof(*t));
	free(t);
}

/* The logged-in token the URI names, with one more reference. */
static enum mt_err acquire_token(const struct mt_keystore__uri *u, struct p11_token **out)
{
	char pin[MT_KEYSTORE__PIN_MAX + 2];
	size_t pin_len = 0;
	int have = 0;
	struct p11_module *m = NULL;
	struct p11_token *t = NULL;
	CK_SLOT_ID slot = 0;
	enum mt_err e = get_pin(u, pin, &pin_len, &have);
	if (e != MT_OK)
		return e;

	pthread_mutex_lock(&reg_lock);
	e = get_module_locked(u->module_path, &m);
	if (e == MT_OK)
		e = find_slot(m, u, &slot);
	if (e != MT_OK)
		goto done;
	for (t = m->tokens; t != NULL; t = t->next)
		if (t->slot == slot)
			break;
	if (t != NULL) {
		e = check_pin_locked(t, pin, pin_len, have);
		if (e == MT_OK)
			t->refs++;
		goto done;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		e = MT_ERR_NOMEM;
		goto done;
	}
	t->mod = m;
	t->slot = slot;
	CK_RV rv = m->fl->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
	                                &t->session);
	if (rv != CKR_OK) {
		free(t);
		t = NULL;
		e = rv == CKR_HOST_MEMORY ? MT_ERR_NOMEM : MT_ERR_KS_TOKEN;
		goto done;
	}
	e = login_locked(t, pin, pin_len, have);
	if (e != MT_OK) {
		(void)m->fl->C_CloseSession(t->session);
		OPENSSL_cleanse(t, sizeof(*t));
		free(t);
		t = NULL;
		goto done;
	}
	pthread_mutex_init(&t->op_lock, NULL);
	t->refs = 1;
	t->next = m->tokens;
	m->tokens = t;
done:
	pthread_mutex_unlock(&reg_lock);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (e == MT_OK)
		*out = t;
	return e;
}

static void release_token(struct p11_token *t)
{
	pthread_mutex_lock(&reg_lock);
	release_token_locked(t);
	pthread_mutex_unlock(&reg_lock);
}

/* ---- objects ------------------------------------------------------------- */

/* Up to `max` objects of class `cls` with the given label and/or id.
 * Called with op_lock held. */
static enum mt_err find_objects(struct p11_token *t, CK_OBJECT_CLASS cls, const char *label,
                                const uint8_t *id, size_t id_len, CK_OBJECT_HANDLE *found,
                                CK_ULONG max, CK_ULONG *count)
{
	CK_FUNCTION_LIST *f = t->mod->fl;
	CK_ATTRIBUTE tmpl[3];
	CK_ULONG n = 0;
	tmpl[n++] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
	if (label != NULL)
		tmpl[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)};
	if (id != NULL)
		tmpl[n++] = (CK_ATTRIBUTE){CKA_ID, (void *)id, (CK_ULONG)id_len};
	*count = 0;
	if (f->C_FindObjectsInit(t->session, tmpl, n) != CKR_OK)
		return MT_ERR_KS_OPERATION;
	CK_RV rv = f->C_FindObjects(t->session, found, max, count);
	CK_RV rv2 = f->C_FindObjectsFinal(t->session);
	return rv == CKR_OK && rv2 == CKR_OK ? MT_OK : MT_ERR_KS_OPERATION;
}

/* One attribute into buf[cap]; *len its length. */
static enum mt_err get_attr(struct p11_token *t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                            void *buf, size_t cap, size_t *len)
{
	CK_ATTRIBUTE a = {type, buf, (CK_ULONG)cap};
	CK_RV rv = t->mod->fl->C_GetAttributeValue(t->session, h, &a, 1);
	if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > cap)
		return MT_ERR_KS_OPERATION;
	*len = a.ulValueLen;
	return MT_OK;
}

static CK_BBOOL get_bool(struct p11_token *t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	size_t len = 0;
	if (get_attr(t, h, type, &v, sizeof(v), &len) != MT_OK || len != sizeof(v))
		return CK_FALSE;
	return v;
}

static int bytes_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return al == bl && memcmp(a, b, al) == 0;
}

/* The curve named by a key type and its CKA_EC_PARAMS. */
static enum mt_key_type curve_of(CK_KEY_TYPE kt, const uint8_t *p, size_t n)
{
	if (kt == CKK_EC && bytes_eq(p, n, OID_P256, sizeof(OID_P256)))
		return MT_KEY_P256;
	if (kt == CKK_EC_EDWARDS && (bytes_eq(p, n, OID_ED25519, sizeof(OID_ED25519)) ||
	                             bytes_eq(p, n, PS_ED25519, sizeof(PS_ED25519))))
		return MT_KEY_ED25519;
	return MT_KEY_NONE;
}

/* The raw public bytes inside a CKA_EC_POINT: a DER OCTET STRING around
 * them, or the bare bytes (both are met in the field). */
static enum mt_err point_raw(enum mt_key_type type, const uint8_t *p, size_t n, const uint8_t **raw,
                             size_t *rl)
{
	const size_t a = type == MT_KEY_P256 ? 65 : 32;
	const size_t b = type == MT_KEY_P256 ? 33 : 32;
	if (n >= 2 && p[0] == 0x04 && p[1] < 0x80 && (size_t)p[1] == n - 2 &&
	    (n - 2 == a || n - 2 == b)) {
		*raw = p + 2;
		*rl = n - 2;
		return MT_OK;
	}
	if (n == a || n == b) {
		*raw = p;
		*rl = n;
		return MT_OK;
	}
	return MT_ERR_KEY_FORMAT;
}

/* Build the mt_pubkey of a public key object.  op_lock held. */
static enum mt_err read_public(struct p11_token *t, CK_OBJECT_HANDLE pubh, enum mt_key_type type,
                               struct mt_pubkey **out)
{
	uint8_t point[160];
	size_t len = 0;
	const uint8_t *raw = NULL;
	size_t rl = 0;
	enum mt_err e = get_attr(t, pubh, CKA_EC_POINT, point, sizeof(point), &len);
	if (e == MT_OK)
		e = point_raw(type, point, len, &raw, &rl);
	if (e == MT_OK)
		e = mt_pubkey_from_raw(type, raw, rl, out);
	return e;
}

/* ---- operations -------------------------------------------------------- */

/* One C_SignInit + C_Sign of data[0..len) with `mech`, under the token's
 * op_lock: the session is shared by every key of the token, and a session
 * holds one active operation, so the pair must not interleave with another
 * thread's.  Anything but a 64-byte result is MT_ERR_KS_OPERATION. */
static enum mt_err token_sign(struct mt_key *k, CK_MECHANISM_TYPE mechanism, const uint8_t *data,
                              size_t len, uint8_t sig[MT_SIG_LEN])
{
	struct p11_key *pk = k->state;
	struct p11_token *t = pk->tok;
	CK_FUNCTION_LIST *f = t->mod->fl;
	uint8_t out[132]; /* room for any EC signature: no CKR_BUFFER_TOO_SMALL */
	CK_ULONG out_len = sizeof(out);
	CK_MECHANISM mech = {mechanism, NULL, 0};

	pthread_mutex_lock(&t->op_lock);
	CK_RV rv = f->C_SignInit(t->session, &mech, pk->priv);
	if (rv == CKR_OK)
		rv = f->C_Sign(t->session, (CK_BYTE_PTR)data, (CK_ULONG)len, out, &out_len);
	pthread_mutex_unlock(&t->op_lock);
	if (rv != CKR_OK || out_len != MT_SIG_LEN)
		return MT_ERR_KS_OPERATION;
	memcpy(sig, out, MT_SIG_LEN);
	return MT_OK;
}

static enum mt_err p11_sign(struct mt_key *k, const uint8_t *msg, size_t len,
                            uint8_t sig[MT_SIG_LEN])
{
	if (k->type != MT_KEY_P256)
		return token_sign(k, CKM_EDDSA, msg, len, sig);
	uint8_t digest[32];
	enum mt_err e = mt_sha256(msg, len, digest);
	if (e == MT_OK)
		e = token_sign(k, CKM_ECDSA, digest, sizeof(digest), sig);
	OPENSSL_cleanse(digest, sizeof(digest));
	return e;
}

/* ES256 over a digest OpenSSL computed (mt_key_evp's TLS path): the same
 * CKM_ECDSA as p11_sign, without hashing again. */
static enum mt_err p11_sign_digest(struct mt_key *k, const uint8_t digest[32],
                                   uint8_t sig[MT_SIG_LEN])
{
	if (k->type != MT_KEY_P256)
		return MT_ERR_KS_KEY_TYPE;
	return token_sign(k, CKM_ECDSA, digest, 32, sig);
}

static enum mt_err p11_ecdh(struct mt_key *k, const struct mt_pubkey *peer, uint8_t x[32])
{
	struct p11_key *pk = k->state;
	struct p11_token *t = pk->tok;
	CK_FUNCTION_LIST *f = t->mod->fl;
	uint8_t spki[MT_SPKI_MAX];
	size_t spki_len = 0;
	enum mt_err e = mt_pubkey_spki(peer, spki, sizeof(spki), &spki_len);
	if (e != MT_OK)
		return e;
	if (spki_len != sizeof(SPKI_P256_PREFIX) + 65 ||
	    memcmp(spki, SPKI_P256_PREFIX, sizeof(SPKI_P256_PREFIX)) != 0 ||
	    spki[sizeof(SPKI_P256_PREFIX)] != 0x04)
		return MT_ERR_KS_KEY_TYPE;

	CK_ECDH1_DERIVE_PARAMS params;
	memset(&params, 0, sizeof(params));
	params.kdf = CKD_NULL;
	params.public_data = spki + sizeof(SPKI_P256_PREFIX);
	params.public_data_len = 65;
	CK_MECHANISM mech = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ULONG vlen = 32;
	CK_ATTRIBUTE tmpl[] = {
	        {CKA_CLASS, &cls, sizeof(cls)},       {CKA_KEY_TYPE, &kt, sizeof(kt)},
	        {CKA_TOKEN, &no, sizeof(no)},         {CKA_SENSITIVE, &no, sizeof(no)},
	        {CKA_EXTRACTABLE, &yes, sizeof(yes)}, {CKA_VALUE_LEN, &vlen, sizeof(vlen)},
	};
	CK_OBJECT_HANDLE secret = CK_INVALID_HANDLE;
	uint8_t value[32];
	size_t value_len = 0;

	pthread_mutex_lock(&t->op_lock);
	CK_RV rv = f->C_DeriveKey(t->session, &mech, pk->priv, tmpl,
	                          (CK_ULONG)(sizeof(tmpl) / sizeof(tmpl[0])), &secret);
	if (rv != CKR_OK) {
		e = MT_ERR_KS_OPERATION;
	} else {
		e = get_attr(t, secret, CKA_VALUE, value, sizeof(value), &value_len);
		if (e == MT_OK && value_len != sizeof(value))
			e = MT_ERR_KS_OPERATION;
		if (f->C_DestroyObject(t->session, secret) != CKR_OK)
			e = MT_ERR_KS_OPERATION; /* a secret left behind is a failure */
	}
	pthread_mutex_unlock(&t->op_lock);
	if (e == MT_OK)
		memcpy(x, value, 32);
	OPENSSL_cleanse(value, sizeof(value));
	return e;
}

static void p11_release(struct mt_key *k)
{
	struct p11_key *pk = k->state;
	release_token(pk->tok);
	OPENSSL_cleanse(pk, sizeof(*pk));
	free(pk);
	k->state = NULL;
}

static const struct mt_keystore__backend p11_backend = {
        .name = "pkcs11",
        .sign = p11_sign,
        .sign_digest = p11_sign_digest,
        .ecdh = p11_ecdh,
        .release = p11_release,
};

/* Wrap the handles as a key; takes over the token reference (released on
 * failure too). */
static enum mt_err make_key(struct p11_token *t, CK_OBJECT_HANDLE priv, enum mt_key_type type,
                            unsigned roles, struct mt_pubkey *pub, struct mt_key **out)
{
	struct mt_key *k = NULL;
	struct p11_key *pk = calloc(1, sizeof(*pk));
	enum mt_err e =
	        pk != NULL ? mt_keystore__key_new(&p11_backend, type, roles, &k) : MT_ERR_NOMEM;
	if (e != MT_OK) {
		free(pk);
		mt_pubkey_free(pub);
		release_token(t);
		return e;
	}
	pk->tok = t;
	pk->priv = priv;
	k->state = pk;
	k->pub = pub;
	*out = k;
	return MT_OK;
}

/* ---- open --------------------------------------------------------------- */

/* Find the private key and its public half.  op_lock held. */
static enum mt_err open_locked(struct p11_token *t, const struct mt_keystore__uri *u,
                               CK_OBJECT_HANDLE *priv, enum mt_key_type *type, unsigned *roles,
                               struct mt_pubkey **pub)
{
	CK_OBJECT_HANDLE found[2];
	CK_ULONG count = 0;
	enum mt_err e = find_objects(t, CKO_PRIVATE_KEY, u->object, u->has_id ? u->id : NULL,
	                             u->id_len, found, 2, &count);
	if (e != MT_OK)
		return e;
	if (count == 0)
		return MT_ERR_KS_KEY_NOT_FOUND;
	if (count > 1)
		return MT_ERR_KS_URI; /* names several keys: refuse to guess */
	*priv = found[0];

	CK_KEY_TYPE kt = 0;
	size_t len = 0;
	uint8_t params[64];
	size_t params_len = 0;
	uint8_t id[MT_KEYSTORE__ID_MAX];
	size_t id_len = 0;
	char label[256];
	size_t label_len = 0;
	e = get_attr(t, *priv, CKA_KEY_TYPE, &kt, sizeof(kt), &len);
	if (e != MT_OK)
		return e;
	if (kt != CKK_EC && kt != CKK_EC_EDWARDS)
		return MT_ERR_KS_KEY_TYPE;
	if (get_attr(t, *priv, CKA_ID, id, sizeof(id), &id_len) != MT_OK)
		id_len = 0;
	if (get_attr(t, *priv, CKA_LABEL, label, sizeof(label) - 1, &label_len) != MT_OK)
		label_len = 0;
	label[label_len] = '\0';
	if (id_len == 0 && (label_len == 0 || memchr(label, '\0', label_len) != NULL))
		return MT_ERR_KS_KEY_NOT_FOUND; /* nothing to find its public half by */

	*roles = 0;
	if (get_bool(t, *priv, CKA_SIGN))
		*roles |= MT_KEYSTORE__ROLE_SIGN;
	if (get_bool(t, *priv, CKA_DERIVE))
		*roles |= MT_KEYSTORE__ROLE_DERIVE;

	/* The curve: from the private key when it says, else the public. */
	*type = MT_KEY_NONE;
	if (get_attr(t, *priv, CKA_EC_PARAMS, params, sizeof(params), &params_len) == MT_OK)
		*type = curve_of(kt, params, params_len);

	CK_OBJECT_HANDLE pubs[8];
	e = find_objects(t, CKO_PUBLIC_KEY, id_len == 0 ? label : NULL, id_len ? id : NULL, id_len,
	                 pubs, 8, &count);
	if (e != MT_OK)
		return e;
	for (CK_ULONG i = 0; i < count; i++) {
		CK_KEY_TYPE pkt = 0;
		if (get_attr(t, pubs[i], CKA_KEY_TYPE, &pkt, sizeof(pkt), &len) != MT_OK ||
		    pkt != kt)
			continue;
		if (get_attr(t, pubs[i], CKA_EC_PARAMS, params, sizeof(params), &params_len) !=
		    MT_OK)
			continue;
		enum mt_key_type pt = curve_of(kt, params, params_len);
		if (pt == MT_KEY_NONE || (*type != MT_KEY_NONE && pt != *type))
			continue;
		*type = pt;
		return read_public(t, pubs[i], pt, pub);
	}
	return *type == MT_KEY_NONE && count > 0 ? MT_ERR_KS_KEY_TYPE : MT_ERR_KS_KEY_NOT_FOUND;
}

enum mt_err mt_keystore__p11_open(const struct mt_keystore__uri *u, struct mt_key **out)
{
	struct p11_token *t = NULL;
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE;
	enum mt_key_type type = MT_KEY_NONE;
	unsigned roles = 0;
	struct mt_pubkey *pub = NULL;
	enum mt_err e = acquire_token(u, &t);
	if (e != MT_OK)
		return e;
	pthread_mutex_lock(&t->op_lock);
	e = open_locked(t, u, &priv, &type, &roles, &pub);
	pthread_mutex_unlock(&t->op_lock);
	if (e != MT_OK) {
		mt_pubkey_free(pub);
		release_token(t);
		return e;
	}
	return make_key(t, priv, type, roles, pub, out);
}

/* ---- generate ------------------------------------------------------------ */

static enum mt_err exists_locked(struct p11_token *t, const char *label, const uint8_t *id,
                                 size_t id_len)
{
	/* Secret keys too: a key pair must not take the KEK's label or id. */
	static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY};
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		CK_OBJECT_HANDLE h;
		CK_ULONG count = 0;
		enum mt_err e;
		if (label != NULL) {
			e = find_objects(t, classes[i], label, NULL, 0, &h, 1, &count);
			if (e != MT_OK)
				return e;
			if (count > 0)
				return MT_ERR_KS_EXISTS;
		}
		if (id != NULL) {
			e = find_objects(t, classes[i], NULL, id, id_len, &h, 1, &count);
			if (e != MT_OK)
				return e;
			if (count > 0)
				return MT_ERR_KS_EXISTS;
		}
	}
	return MT_OK;
}

static int has_mechanism(struct p11_token *t, CK_MECHANISM_TYPE mech, CK_FLAGS need)
{
	CK_MECHANISM_INFO info;
	if (t->mod->fl->C_GetMechanismInfo(t->slot, mech, &info) != CKR_OK)
		return 0;
	return (info.flags & need) == need;
}

/* The CKA_ID of a key about to be generated at `u`: refuses a label or id
 * already in use, then takes the URI's id or a fresh random 8-byte one that
 * no key in the token uses yet. */
static enum mt_err new_key_id(struct p11_token *t, const struct mt_keystore__uri *u,
                              uint8_t id[MT_KEYSTORE__ID_MAX], size_t *id_len)
{
	enum mt_err e = exists_locked(t, u->object, u->has_id ? u->id : NULL, u->id_len);
	if (e != MT_OK)
		return e;
	if (u->has_id) {
		memcpy(id, u->id, u->id_len);
		*id_len = u->id_len;
		return MT_OK;
	}
	for (int tries = 0;; tries++) {
		*id_len = 8;
		e = mt_random(id, *id_len);
		if (e == MT_OK)
			e = exists_locked(t, NULL, id, *id_len);
		if (e != MT_ERR_KS_EXISTS || tries == 3)
			break;
	}
	return e == MT_ERR_KS_EXISTS ? MT_ERR_KS_OPERATION : e;
}

static enum mt_err generate_locked(struct p11_token *t, const struct mt_keystore__uri *u,
                                   enum mt_key_type type, enum mt_key_role role,
                                   CK_OBJECT_HANDLE *priv, struct mt_pubkey **pub)
{
	CK_FUNCTION_LIST *f = t->mod->fl;
	uint8_t id[MT_KEYSTORE__ID_MAX];
	size_t id_len = 0;
	enum mt_err e;

	if (u->object == NULL && !u->has_id)
		return MT_ERR_KS_URI;
	/* What the token can do, before touching anything. */
	if (type == MT_KEY_ED25519) {
		if (!has_mechanism(t, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR) ||
		    !has_mechanism(t, CKM_EDDSA, CKF_SIGN))
			return MT_ERR_UNSUPPORTED;
	} else if (!has_mechanism(t, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR) ||
	           !has_mechanism(t, role == MT_KEY_ROLE_SIGN ? CKM_ECDSA : CKM_ECDH1_DERIVE,
	                          role == MT_KEY_ROLE_SIGN ? CKF_SIGN : CKF_DERIVE)) {
		return MT_ERR_UNSUPPORTED;
	}
	e = new_key_id(t, u, id, &id_len);
	if (e != MT_OK)
		return e;

	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_BBOOL sign = role == MT_KEY_ROLE_SIGN ? CK_TRUE : CK_FALSE;
	CK_BBOOL derive = role == MT_KEY_ROLE_DERIVE ? CK_TRUE : CK_FALSE;
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	uint8_t params[sizeof(OID_P256)];
	size_t params_len = sizeof(OID_P256);
	memcpy(params, OID_P256, sizeof(OID_P256));
	if (type == MT_KEY_ED25519) {
		mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		memcpy(params, OID_ED25519, sizeof(OID_ED25519));
		params_len = sizeof(OID_ED25519);
	}
	CK_ULONG label_len = u->object != NULL ? (CK_ULONG)strlen(u->object) : 0;
	CK_ATTRIBUTE pub_tmpl[12];
	CK_ATTRIBUTE priv_tmpl[16];
	CK_ULONG np = 0, nk = 0;
	pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
	pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_PRIVATE, &no, sizeof(no)};
	pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, params, (CK_ULONG)params_len};
	pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_ID, id, (CK_ULONG)id_len};
	pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_VERIFY, &sign, sizeof(sign)};
	pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_ENCRYPT, &no, sizeof(no)};
	pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_WRAP, &no, sizeof(no)};
	pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_DERIVE, &no, sizeof(no)};
	pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_MODIFIABLE, &no, sizeof(no)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_PRIVATE, &yes, sizeof(yes)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_SENSITIVE, &yes, sizeof(yes)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &no, sizeof(no)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_ID, id, (CK_ULONG)id_len};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_SIGN, &sign, sizeof(sign)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_DERIVE, &derive, sizeof(derive)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_DECRYPT, &no, sizeof(no)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_UNWRAP, &no, sizeof(no)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_SIGN_RECOVER, &no, sizeof(no)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_MODIFIABLE, &no, sizeof(no)};
	priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_COPYABLE, &no, sizeof(no)};
	if (u->object != NULL) {
		pub_tmpl[np++] = (CK_ATTRIBUTE){CKA_LABEL, u->object, label_len};
		priv_tmpl[nk++] = (CK_ATTRIBUTE){CKA_LABEL, u->object, label_len};
	}

	CK_OBJECT_HANDLE pubh = CK_INVALID_HANDLE;
	CK_RV rv =
	        f->C_GenerateKeyPair(t->session, &mech, pub_tmpl, np, priv_tmpl, nk, &pubh, priv);
	if (rv != CKR_OK)
		return rv == CKR_MECHANISM_INVALID || rv == CKR_DOMAIN_PARAMS_INVALID ||
		                       rv == CKR_CURVE_NOT_SUPPORTED
		               ? MT_ERR_UNSUPPORTED
		               : MT_ERR_KS_OPERATION;
	e = read_public(t, pubh, type, pub);
	if (e != MT_OK) {
		/* Leave nothing half-made behind. */
		(void)f->C_DestroyObject(t->session, *priv);
		(void)f->C_DestroyObject(t->session, pubh);
		return MT_ERR_KS_OPERATION;
	}
	return MT_OK;
}

enum mt_err mt_keystore__p11_generate(const struct mt_keystore__uri *u, enum mt_key_type type,
                                      enum mt_key_role role, struct mt_key **out)
{
	struct p11_token *t = NULL;
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE;
	struct mt_pubkey *pub = NULL;
	enum mt_err e = acquire_token(u, &t);
	if (e != MT_OK)
		return e;
	pthread_mutex_lock(&t->op_lock);
	e = generate_locked(t, u, type, role, &priv, &pub);
	pthread_mutex_unlock(&t->op_lock);
	if (e != MT_OK) {
		release_token(t);
		return e;
	}
	return make_key(t, priv, type, (unsigned)role, pub, out);
}

/* ---- the key-encryption key ---------------------------------------------- */

static enum mt_err generate_kek_locked(struct p11_token *t, const struct mt_keystore__uri *u)
{
	CK_FUNCTION_LIST *f = t->mod->fl;
	uint8_t id[MT_KEYSTORE__ID_MAX];
	size_t id_len = 0;
	enum mt_err e;

	if (u->object == NULL && !u->has_id)
		return MT_ERR_KS_URI;
	if (!has_mechanism(t, CKM_AES_KEY_GEN, CKF_GENERATE))
		return MT_ERR_UNSUPPORTED;
	e = new_key_id(t, u, id, &id_len);
	if (e != MT_OK)
		return e;

	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_ULONG vlen = 32;
	CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
	CK_ATTRIBUTE tmpl[20];
	CK_ULONG n = 0;
	tmpl[n++] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &kt, sizeof(kt)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_VALUE_LEN, &vlen, sizeof(vlen)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_PRIVATE, &yes, sizeof(yes)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_SENSITIVE, &yes, sizeof(yes)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &no, sizeof(no)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_WRAP, &yes, sizeof(yes)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_UNWRAP, &yes, sizeof(yes)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_ENCRYPT, &no, sizeof(no)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_DECRYPT, &no, sizeof(no)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_SIGN, &no, sizeof(no)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_VERIFY, &no, sizeof(no)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_DERIVE, &no, sizeof(no)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_MODIFIABLE, &no, sizeof(no)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_COPYABLE, &no, sizeof(no)};
	tmpl[n++] = (CK_ATTRIBUTE){CKA_ID, id, (CK_ULONG)id_len};
	if (u->object != NULL)
		tmpl[n++] = (CK_ATTRIBUTE){CKA_LABEL, u->object, (CK_ULONG)strlen(u->object)};

	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_RV rv = f->C_GenerateKey(t->session, &mech, tmpl, n, &h);
	if (rv != CKR_OK)
		return rv == CKR_MECHANISM_INVALID ? MT_ERR_UNSUPPORTED : MT_ERR_KS_OPERATION;
	return MT_OK;
}

enum mt_err mt_keystore__p11_generate_kek(const struct mt_keystore__uri *u)
{
	struct p11_token *t = NULL;
	enum mt_err e = acquire_token(u, &t);
	if (e != MT_OK)
		return e;
	pthread_mutex_lock(&t->op_lock);
	e = generate_kek_locked(t, u);
	pthread_mutex_unlock(&t->op_lock);
	release_token(t);
	return e;
}

/* ---- wrapping data keys under the KEK ------------------------------------ */

struct mt_kek {
	struct p11_token *tok;
	CK_OBJECT_HANDLE h;
};

enum mt_err mt_keystore__p11_kek_open(const struct mt_keystore__uri *u, struct mt_kek **out)
{
	struct p11_token *t = NULL;
	CK_OBJECT_HANDLE found[2];
	CK_ULONG count = 0;
	CK_KEY_TYPE kt = 0;
	size_t len = 0;
	struct mt_kek *k;
	enum mt_err e;

	if (u->object == NULL && !u->has_id)
		return MT_ERR_KS_URI;
	e = acquire_token(u, &t);
	if (e != MT_OK)
		return e;
	pthread_mutex_lock(&t->op_lock);
	e = find_objects(t, CKO_SECRET_KEY, u->object, u->has_id ? u->id : NULL, u->id_len, found,
	                 2, &count);
	if (e == MT_OK && count == 0)
		e = MT_ERR_KS_KEY_NOT_FOUND;
	else if (e == MT_OK && count > 1)
		e = MT_ERR_KS_URI; /* ambiguous */
	if (e == MT_OK && (get_attr(t, found[0], CKA_KEY_TYPE, &kt, sizeof kt, &len) != MT_OK ||
	                   kt != CKK_AES || get_bool(t, found[0], CKA_WRAP) != CK_TRUE ||
	                   get_bool(t, found[0], CKA_UNWRAP) != CK_TRUE))
		e = MT_ERR_KS_KEY_TYPE;
	if (e == MT_OK && !has_mechanism(t, CKM_AES_KEY_WRAP, CKF_WRAP | CKF_UNWRAP))
		e = MT_ERR_UNSUPPORTED;
	pthread_mutex_unlock(&t->op_lock);
	if (e != MT_OK) {
		release_token(t);
		return e;
	}
	k = calloc(1, sizeof *k);
	if (k == NULL) {
		release_token(t);
		return MT_ERR_NOMEM;
	}
	k->tok = t;
	k->h = found[0];
	*out = k;
	return MT_OK;
}

void mt_kek_free(struct mt_kek *k)
{
	if (k == NULL)
		return;
	release_token(k->tok);
	free(k);
}

/* The template of a data key as a session object: AES, extractable (it
 * must be, to be wrapped, and to come back out after unwrapping), usable
 * for nothing inside the token.  Returns the number of attributes. */
static CK_ULONG dek_template(CK_ATTRIBUTE *t)
{
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	static CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	static CK_KEY_TYPE kt = CKK_AES;
	CK_ULONG n = 0;

	t[n++] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
	t[n++] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &kt, sizeof(kt)};
	t[n++] = (CK_ATTRIBUTE){CKA_TOKEN, &no, sizeof(no)};
	t[n++] = (CK_ATTRIBUTE){CKA_SENSITIVE, &no, sizeof(no)};
	t[n++] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &yes, sizeof(yes)};
	t[n++] = (CK_ATTRIBUTE){CKA_ENCRYPT, &no, sizeof(no)};
	t[n++] = (CK_ATTRIBUTE){CKA_DECRYPT, &no, sizeof(no)};
	return n;
}

enum mt_err mt_kek_wrap(struct mt_kek *k, const uint8_t dek[MT_DEK_LEN],
                        uint8_t wrapped[MT_DEK_WRAPPED_LEN])
{
	CK_MECHANISM mech = {CKM_AES_KEY_WRAP, NULL, 0};
	CK_ATTRIBUTE tmpl[10];
	CK_ULONG n, out_len = MT_DEK_WRAPPED_LEN;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_FUNCTION_LIST *f;
	CK_RV rv;

	if (k == NULL || dek == NULL || wrapped == NULL)
		return MT_ERR_ARG;
	f = k->tok->mod->fl;
	n = dek_template(tmpl);
	tmpl[n++] = (CK_ATTRIBUTE){CKA_VALUE, (void *)dek, MT_DEK_LEN};
	pthread_mutex_lock(&k->tok->op_lock);
	rv = f->C_CreateObject(k->tok->session, tmpl, n, &h);
	if (rv == CKR_OK)
		rv = f->C_WrapKey(k->tok->session, &mech, k->h, h, wrapped, &out_len);
	if (h != CK_INVALID_HANDLE)
		(void)f->C_DestroyObject(k->tok->session, h);
	pthread_mutex_unlock(&k->tok->op_lock);
	return rv == CKR_OK && out_len == MT_DEK_WRAPPED_LEN ? MT_OK : MT_ERR_KS_OPERATION;
}

enum mt_err mt_kek_unwrap(struct mt_kek *k, const uint8_t wrapped[MT_DEK_WRAPPED_LEN],
                          uint8_t dek[MT_DEK_LEN])
{
	CK_MECHANISM mech = {CKM_AES_KEY_WRAP, NULL, 0};
	CK_ATTRIBUTE tmpl[10];
	CK_ULONG n;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_FUNCTION_LIST *f;
	size_t len = 0;
	enum mt_err e = MT_ERR_KS_OPERATION;

	if (k == NULL || dek == NULL || wrapped == NULL)
		return MT_ERR_ARG;
	f = k->tok->mod->fl;
	n = dek_template(tmpl);
	pthread_mutex_lock(&k->tok->op_lock);
	if (f->C_UnwrapKey(k->tok->session, &mech, k->h, (CK_BYTE_PTR)wrapped, MT_DEK_WRAPPED_LEN,
	                   tmpl, n, &h) == CKR_OK &&
	    get_attr(k->tok, h, CKA_VALUE, dek, MT_DEK_LEN, &len) == MT_OK && len == MT_DEK_LEN)
		e = MT_OK;
	if (h != CK_INVALID_HANDLE)
		(void)f->C_DestroyObject(k->tok->session, h);
	pthread_mutex_unlock(&k->tok->op_lock);
	if (e != MT_OK)
		mt_wipe(dek, MT_DEK_LEN);
	return e;
}
