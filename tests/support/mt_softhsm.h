/*
 * mt_softhsm.h — test helper: a fresh SoftHSM2 token in a private temporary
 * directory, and direct PKCS#11 access to it for tests that must look at
 * the token the way an attacker with the PIN would (threats I01–I04).
 *
 * Each token lives in its own directory with its own softhsm2.conf, named
 * by SOFTHSM2_CONF while the helper is active, because SoftHSM2 misbehaves
 * when many processes share one token directory (FIELD-NOTES) and because
 * SoftHSM2 reads the configuration, and the token list, only at
 * C_Initialize.  A test therefore makes its token(s) first, uses them, and
 * calls mt_softhsm_cleanup(), which unloads the key store's modules
 * (mt_keystore__p11_reset) before deleting the directory, so the next test
 * starts from a freshly initialised module.
 *
 * The PINs given here are test PINs: they appear on softhsm2-util's command
 * line, which is acceptable for a throw-away token and nothing else.
 */
#ifndef MT_SOFTHSM_H
#define MT_SOFTHSM_H

#include <stddef.h>

#include <p11-kit/pkcs11.h>

#define MT_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

struct mt_softhsm {
	char dir[256];    /* the temporary directory */
	char conf[300];   /* its softhsm2.conf */
	char label[33];   /* the first token's label */
	char pin[64];     /* its user PIN */
	char so_pin[64];  /* its security officer PIN */
	char *saved_conf; /* SOFTHSM2_CONF before init, restored by cleanup */
	int had_conf;
	int active;
};

/* 1 when SoftHSM2 (module and softhsm2-util) is installed. */
int mt_softhsm_available(void);

/* Make a temporary directory with a softhsm2.conf, point SOFTHSM2_CONF at
 * it and initialise a token `label` there (`softhsm2-util --init-token
 * --free`).  Returns 0, or -1 with a message on stderr. */
int mt_softhsm_init(struct mt_softhsm *h, const char *label, const char *pin, const char *so_pin);

/* Initialise one more token in the same directory.  Only before the module
 * is initialised in this process (SoftHSM2 does not rescan).  0 or -1. */
int mt_softhsm_add_token(struct mt_softhsm *h, const char *label, const char *pin,
                         const char *so_pin);

/* Unload the key store's PKCS#11 modules, delete the directory and restore
 * SOFTHSM2_CONF.  Returns 0, or -1 when keys were still open (a leak in the
 * test) or the directory could not be removed. */
int mt_softhsm_cleanup(struct mt_softhsm *h);

/* "pkcs11:token=<label>;object=<object>?pin-value=<pin>&module-path=…"
 * into buf; `extra` (may be NULL) is appended verbatim to the query.
 * Returns 0, or -1 when it does not fit. */
int mt_softhsm_uri(const struct mt_softhsm *h, const char *object, const char *extra, char *buf,
                   size_t cap);

/* Direct PKCS#11: load the module through p11-kit (a managed instance of
 * its own, independent of the key store's), open a R/W session on token
 * `label` and, if pin != NULL, log in as user (CKR_USER_ALREADY_LOGGED_IN
 * counts as success).  Returns the function list or NULL. */
struct mt_softhsm_raw {
	CK_FUNCTION_LIST *f;
	CK_SESSION_HANDLE s;
	CK_SLOT_ID slot;
};
int mt_softhsm_raw_open(struct mt_softhsm_raw *r, const char *label, const char *pin);
void mt_softhsm_raw_close(struct mt_softhsm_raw *r);
/* The single object of `cls` with CKA_LABEL `label`, or CK_INVALID_HANDLE. */
CK_OBJECT_HANDLE mt_softhsm_raw_find(struct mt_softhsm_raw *r, CK_OBJECT_CLASS cls,
                                     const char *label);

/* Run argv (argv[0] looked up in PATH) with stdin from /dev/null, stdout to
 * `out_path` (or /dev/null when NULL) and stderr to /dev/null; returns the
 * exit status, or -1 when it could not run. */
int mt_softhsm_spawn(const char *const argv[], const char *out_path);

#endif
