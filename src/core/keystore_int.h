/*
 * keystore_int.h — what the key store's front end (keystore.c) and its two
 * backends (keystore_pkcs11.c, keystore_soft.c) share.  Never installed,
 * never included outside src/core and the key store's own tests.
 *
 * The front end parses the key URI (protocol §9, RFC 7512 for pkcs11:,
 * `file:PATH` for encrypted PKCS#8 files) into a `struct mt_keystore__uri`,
 * picks the backend by scheme and enforces what does not depend on it: the
 * key's role (a derive-only key never signs, a sign-only key never derives,
 * threat I03) and the key and peer types.  A backend therefore only sees
 * requests that are already allowed; it still answers for its own secrets:
 * the software backend holds the private EVP_PKEY, the PKCS#11 backend only
 * object handles into a token (the private value never enters our memory).
 *
 * Every `struct mt_key` carries its public half as a parsed mt_pubkey, built
 * from the raw public bytes (SEC1 point or Ed25519 key) through
 * mt_pubkey_from_raw(), so the public object never references private
 * material, whichever backend made it.
 *
 * Threads: a key signs one thing at a time (its `lock`), so the EVP_PKEY of
 * mt_key_evp (keystore_evp.c) may be used by several TLS threads at once;
 * a backend guards whatever its keys share (keystore_pkcs11.c: one session
 * per token).
 */
#ifndef MT_KEYSTORE_INT_H
#define MT_KEYSTORE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "medtrust/mt_crypto.h"
#include "medtrust/mt_err.h"
#include "medtrust/mt_keystore.h"

/* Bit set of enum mt_key_role values (1 and 2 are distinct bits). */
#define MT_KEYSTORE__ROLE_SIGN ((unsigned)MT_KEY_ROLE_SIGN)
#define MT_KEYSTORE__ROLE_DERIVE ((unsigned)MT_KEY_ROLE_DERIVE)

/* Bounds on URI parts: a URI longer than this is refused (MT_ERR_KS_URI). */
#define MT_KEYSTORE__URI_MAX 4096
#define MT_KEYSTORE__ID_MAX 64   /* CKA_ID bytes */
#define MT_KEYSTORE__PIN_MAX 256 /* PIN bytes, from pin-value or pin-source */

struct mt_key;

/* The `name` of the software backend (keystore_soft.c), whose key `state`
 * is the private EVP_PKEY; mt_key_evp() hands that out for software keys. */
#define MT_KEYSTORE__SOFT_NAME "software"

/* One backend: how a key of that kind signs, derives and dies.  sign,
 * sign_digest and ecdh are called only after the front end checked role
 * and types, and sign and sign_digest with the key's `lock` held. */
struct mt_keystore__backend {
	const char *name;
	enum mt_err (*sign)(struct mt_key *k, const uint8_t *msg, size_t len,
	                    uint8_t sig[MT_SIG_LEN]);
	/* ECDSA P-256 over a digest someone else computed (mt_key_evp: OpenSSL
	 * hashed the TLS transcript), already cut or padded to the 32 bytes
	 * ECDSA uses for a 256-bit order; writes r ‖ s.  NULL for the software
	 * backend, whose `state` is the private EVP_PKEY itself and is handed
	 * out as such (MT_KEYSTORE__SOFT_NAME). */
	enum mt_err (*sign_digest)(struct mt_key *k, const uint8_t digest[32],
	                           uint8_t sig[MT_SIG_LEN]);
	enum mt_err (*ecdh)(struct mt_key *k, const struct mt_pubkey *peer, uint8_t x[32]);
	/* Release the backend state (wiping secrets); not the key itself. */
	void (*release)(struct mt_key *k);
};

struct mt_key {
	const struct mt_keystore__backend *be;
	enum mt_key_type type;
	unsigned roles;        /* MT_KEYSTORE__ROLE_* allowed for this key */
	struct mt_pubkey *pub; /* owned */
	void *state;           /* owned by the backend */
	/* Serialises signing with this key (mt_key_sign and the EVP_PKEY of
	 * mt_key_evp), so one key may serve several threads.  Taken before a
	 * backend's own locks (keystore_pkcs11.c's op_lock), never after. */
	pthread_mutex_t lock;
};

/* A parsed key URI.  Strings are NUL-terminated heap copies (percent-decoded),
 * NULL when absent.  `pin` is a secret: mt_keystore__uri_clear() wipes it. */
struct mt_keystore__uri {
	int scheme; /* MT_KEYSTORE__SCHEME_* */
	/* pkcs11: path attributes */
	char *token;
	char *manufacturer;
	char *serial;
	char *model;
	char *library_manufacturer;
	char *library_description;
	int has_library_version;
	unsigned library_version_major;
	unsigned library_version_minor;
	char *object;
	uint8_t id[MT_KEYSTORE__ID_MAX];
	size_t id_len;
	int has_id;
	/* pkcs11: query (or, leniently, path) attributes */
	char *pin; /* pin-value, secret */
	size_t pin_len;
	char *pin_source;
	char *module_path;
	/* file: */
	char *path;
};

#define MT_KEYSTORE__SCHEME_PKCS11 1
#define MT_KEYSTORE__SCHEME_FILE 2

/* keystore.c */
enum mt_err mt_keystore__uri_parse(const char *uri, struct mt_keystore__uri *out);
void mt_keystore__uri_clear(struct mt_keystore__uri *u);
/* A new, zeroed key bound to `be`; the backend then sets `pub` and `state`,
 * both of which mt_key_free() releases (state through be->release). */
enum mt_err mt_keystore__key_new(const struct mt_keystore__backend *be, enum mt_key_type type,
                                 unsigned roles, struct mt_key **out);
/* Sign a 32-byte digest with P-256 key `k` (r ‖ s), for mt_key_evp's
 * EVP_PKEY: the front end's role and type checks, then be->sign_digest
 * under k->lock.  Errors: MT_ERR_KS_KEY_TYPE (not a P-256 sign key, or a
 * backend without sign_digest), MT_ERR_KS_OPERATION. */
enum mt_err mt_keystore__sign_digest(struct mt_key *k, const uint8_t digest[32],
                                     uint8_t sig[MT_SIG_LEN]);

/* keystore_pkcs11.c */
enum mt_err mt_keystore__p11_open(const struct mt_keystore__uri *u, struct mt_key **out);
enum mt_err mt_keystore__p11_generate(const struct mt_keystore__uri *u, enum mt_key_type type,
                                      enum mt_key_role role, struct mt_key **out);
enum mt_err mt_keystore__p11_generate_kek(const struct mt_keystore__uri *u);
/* The KEK (mt_kek_open / wrap / unwrap): keystore_pkcs11.c. */
enum mt_err mt_keystore__p11_kek_open(const struct mt_keystore__uri *u, struct mt_kek **out);
/* Finalise and unload every module loaded so far (they are reloaded on the
 * next use).  Refused with MT_ERR_INTERNAL while any PKCS#11 key is open.
 * Tests call it between tokens that live in different SOFTHSM2_CONF
 * directories, since SoftHSM2 reads its configuration at C_Initialize. */
enum mt_err mt_keystore__p11_reset(void);

/* keystore_soft.c */
enum mt_err mt_keystore__soft_import_raw(enum mt_key_type type, unsigned roles, const uint8_t *priv,
                                         size_t len, struct mt_key **out);
enum mt_err mt_keystore__file_open(const char *path, struct mt_key **out);
enum mt_err mt_keystore__file_generate(const char *path, enum mt_key_type type,
                                       enum mt_key_role role, struct mt_key **out);

#endif
