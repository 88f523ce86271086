/*
 * mt_softhsm.c — fresh SoftHSM2 tokens for tests (see mt_softhsm.h).
 *
 * Invariants: every token directory is created with mkdtemp (mode 0700)
 * under $TMPDIR or /tmp and removed by mt_softhsm_cleanup(), after the key
 * store has finalised its modules; SOFTHSM2_CONF is restored to what it was.
 * softhsm2-util runs through posix_spawn with an argument vector — no
 * shell, so labels and PINs are never re-parsed.
 *
 * LeakSanitizer: SoftHSM2 2.6.1 itself leaks 37 bytes (an ASN1_STRING
 * holding "edwards25519", decoded from the key's CKA_EC_PARAMS) on every
 * CKM_EDDSA C_SignInit.  That is not ours to fix, so every test that links
 * this helper suppresses leaks allocated under libsofthsm2.so — and only
 * those: a suppression matches a stack that runs through that library, which
 * never calls into medtrust.  The allocation happens inside libcrypto, which
 * has no frame pointers, so ASan's fast unwinder would stop there and never
 * see libsofthsm2.so; these tests therefore unwind the slow, complete way
 * (fast_unwind_on_malloc=0: about 6 s instead of 1 s for test_keystore).
 */
#define _XOPEN_SOURCE 700

#include "mt_softhsm.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <p11-kit/p11-kit.h>

/* The key store's own internal header: mt_keystore__p11_reset(). */
#include "../../src/core/keystore_int.h"

extern char **environ;

/* Read by the sanitizer runtime at start-up (weak defaults overridden);
 * ASAN_OPTIONS / LSAN_OPTIONS from the environment still take precedence. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libsofthsm2.so\n";
}

int mt_softhsm_spawn(const char *const argv[], const char *out_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = 0;
	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path != NULL ? out_path : "/dev/null",
	                                 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	if (!WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int mt_softhsm_available(void)
{
	return access(MT_SOFTHSM_MODULE, R_OK) == 0 && access("/usr/bin/softhsm2-util", X_OK) == 0;
}

int mt_softhsm_add_token(struct mt_softhsm *h, const char *label, const char *pin,
                         const char *so_pin)
{
	const char *argv[] = {
	        "softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
	        "--so-pin",      so_pin,         NULL};
	int rc = mt_softhsm_spawn(argv, NULL);
	if (rc != 0) {
		fprintf(stderr, "mt_softhsm: softhsm2-util --init-token failed (%d) in %s\n", rc,
		        h->dir);
		return -1;
	}
	return 0;
}

int mt_softhsm_init(struct mt_softhsm *h, const char *label, const char *pin, const char *so_pin)
{
	memset(h, 0, sizeof(*h));
	const char *tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if (strlen(label) >= sizeof(h->label) || strlen(pin) >= sizeof(h->pin) ||
	    strlen(so_pin) >= sizeof(h->so_pin))
		return -1;
	if ((size_t)snprintf(h->dir, sizeof(h->dir), "%s/mt-softhsm-XXXXXX", tmp) >= sizeof(h->dir))
		return -1;
	if (mkdtemp(h->dir) == NULL) {
		perror("mt_softhsm: mkdtemp");
		return -1;
	}
	char tokens[300];
	snprintf(tokens, sizeof(tokens), "%s/tokens", h->dir);
	snprintf(h->conf, sizeof(h->conf), "%s/softhsm2.conf", h->dir);
	if (mkdir(tokens, 0700) != 0) {
		perror("mt_softhsm: mkdir");
		rmdir(h->dir);
		return -1;
	}
	FILE *fp = fopen(h->conf, "w");
	if (fp == NULL) {
		perror("mt_softhsm: conf");
		rmdir(tokens);
		rmdir(h->dir);
		return -1;
	}
	fprintf(fp,
	        "directories.tokendir = %s\n"
	        "objectstore.backend = file\n"
	        "log.level = ERROR\n"
	        "slots.removable = false\n"
	        "slots.mechanisms = ALL\n"
	        "library.reset_on_fork = false\n",
	        tokens);
	fclose(fp);

	const char *old = getenv("SOFTHSM2_CONF");
	h->had_conf = old != NULL;
	h->saved_conf = old != NULL ? strdup(old) : NULL;
	setenv("SOFTHSM2_CONF", h->conf, 1);
	h->active = 1;
	memcpy(h->label, label, strlen(label) + 1);
	memcpy(h->pin, pin, strlen(pin) + 1);
	memcpy(h->so_pin, so_pin, strlen(so_pin) + 1);
	if (mt_softhsm_add_token(h, label, pin, so_pin) != 0) {
		(void)mt_softhsm_cleanup(h);
		return -1;
	}
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int mt_softhsm_cleanup(struct mt_softhsm *h)
{
	int rc = 0;
	if (!h->active)
		return 0;
	if (mt_keystore__p11_reset() != MT_OK) {
		fprintf(stderr, "mt_softhsm: PKCS#11 keys still open at cleanup\n");
		rc = -1;
	}
	if (nftw(h->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
		fprintf(stderr, "mt_softhsm: could not remove %s\n", h->dir);
		rc = -1;
	}
	if (h->had_conf)
		setenv("SOFTHSM2_CONF", h->saved_conf, 1);
	else
		unsetenv("SOFTHSM2_CONF");
	free(h->saved_conf);
	memset(h, 0, sizeof(*h));
	return rc;
}

int mt_softhsm_uri(const struct mt_softhsm *h, const char *object, const char *extra, char *buf,
                   size_t cap)
{
	int n = snprintf(buf, cap, "pkcs11:token=%s;object=%s?pin-value=%s&module-path=%s%s%s",
	                 h->label, object, h->pin, MT_SOFTHSM_MODULE, extra != NULL ? "&" : "",
	                 extra != NULL ? extra : "");
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int mt_softhsm_raw_open(struct mt_softhsm_raw *r, const char *label, const char *pin)
{
	memset(r, 0, sizeof(*r));
	r->f = p11_kit_module_load(MT_SOFTHSM_MODULE, 0);
	if (r->f == NULL)
		return -1;
	if (p11_kit_module_initialize(r->f) != CKR_OK) {
		p11_kit_module_release(r->f);
		r->f = NULL;
		return -1;
	}
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	int found = 0;
	if (r->f->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK) {
		for (CK_ULONG i = 0; i < n && !found; i++) {
			CK_TOKEN_INFO ti;
			size_t ll = strlen(label);
			if (r->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || ll > 32 ||
			    memcmp(ti.label, label, ll) != 0)
				continue;
			int pad = 1;
			for (size_t j = ll; j < 32; j++)
				pad &= ti.label[j] == ' ';
			if (pad) {
				r->slot = slots[i];
				found = 1;
			}
		}
	}
	if (!found || r->f->C_OpenSession(r->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
	                                  &r->s) != CKR_OK) {
		mt_softhsm_raw_close(r);
		return -1;
	}
	if (pin != NULL) {
		CK_RV rv =
		        r->f->C_Login(r->s, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
		if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
			mt_softhsm_raw_close(r);
			return -1;
		}
	}
	return 0;
}

void mt_softhsm_raw_close(struct mt_softhsm_raw *r)
{
	if (r->f == NULL)
		return;
	if (r->s != CK_INVALID_HANDLE)
		(void)r->f->C_CloseSession(r->s);
	(void)p11_kit_module_finalize(r->f);
	p11_kit_module_release(r->f);
	memset(r, 0, sizeof(*r));
}

CK_OBJECT_HANDLE mt_softhsm_raw_find(struct mt_softhsm_raw *r, CK_OBJECT_CLASS cls,
                                     const char *label)
{
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
	                    {CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)}};
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	if (r->f->C_FindObjectsInit(r->s, t, 2) != CKR_OK)
		return CK_INVALID_HANDLE;
	CK_RV rv = r->f->C_FindObjects(r->s, h, 2, &n);
	(void)r->f->C_FindObjectsFinal(r->s);
	return rv == CKR_OK && n == 1 ? h[0] : CK_INVALID_HANDLE;
}
