/*
 * test_random_fork.c — threat I07: IVs drawn in forked processes never
 * collide.
 *
 * A device agent or simulator that forks after seeding a userspace random
 * generator would hand parent and child the same stream, and two packets
 * under one data key with one IV break AES-GCM (threat A16 is the hub-side
 * monitor for that).  medtrust draws IVs from OpenSSL's RAND_bytes, which
 * reseeds on fork; this test holds it to that: a parent draws, forks eight
 * children that each seal packets and draw raw IVs, and every IV — raw or
 * read back from a packet header — must be unique across all processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "medtrust/mt_crypto.h"
#include "medtrust/mt_keystore.h"
#include "medtrust/mt_packet.h"

#define CHILDREN 8
#define PER_PROCESS 400 /* IVs per process: half raw, half from sealed packets */
#define IV_OFFSET 15    /* where the IV sits in a packet header (protocol §4) */

static int cmp_iv(const void *a, const void *b) { return memcmp(a, b, MT_AEAD_IV_LEN); }

/* Draw PER_PROCESS IVs into out: raw mt_random and through mt_packet_seal. */
static void draw(uint8_t (*out)[MT_AEAD_IV_LEN], struct mt_key *ldev, struct mt_aead *aead)
{
	static const uint8_t key[MT_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
	struct mt_obs obs = {.code = 147842, .unit = 264864};
	struct mt_message m = {.dev = "dev-1", .dev_len = 5, .ts = 1764300000000ull,
	                       .typ = MT_TYP_VITALS, .has = MT_MSG_OBS, .obs = &obs, .n_obs = 1};
	struct mt_seal_params sp = {.dev = "dev-1", .dev_len = 5, .epoch = 1, .data_key = key,
	                            .ldev = ldev, .aead = aead};
	uint8_t pkt[512];
	size_t n;
	mt_num_set_int(&obs.value, 72);
	for (size_t i = 0; i < PER_PROCESS / 2; i++)
		assert_int_equal(mt_random(out[i], MT_AEAD_IV_LEN), MT_OK);
	for (size_t i = PER_PROCESS / 2; i < PER_PROCESS; i++) {
		m.ctr = i;
		assert_int_equal(mt_packet_seal(&sp, &m, pkt, sizeof(pkt), &n), MT_OK);
		memcpy(out[i], pkt + IV_OFFSET, MT_AEAD_IV_LEN);
	}
}

static void I07_forked_processes_draw_distinct_ivs(void **state)
{
	(void)state;
	static const uint8_t scalar[32] = {0x9d, 0x8b, 0x60, 0x56, 0x2b, 0x65, 0x7c, 0x52,
	                                   0x7e, 0xd1, 0x52, 0xc8, 0xdf, 0x12, 0x95, 0x9d,
	                                   0x41, 0x0a, 0xb9, 0xd3, 0xac, 0x5c, 0x5f, 0xc6,
	                                   0x10, 0xc5, 0xab, 0x68, 0xc9, 0x81, 0x1b, 0x9a};
	static uint8_t all[(CHILDREN + 1) * PER_PROCESS][MT_AEAD_IV_LEN];
	struct mt_key *ldev;
	struct mt_aead *aead;
	int fds[CHILDREN][2];
	pid_t pids[CHILDREN];

	assert_int_equal(mt_key_import_raw(MT_KEY_P256, MT_KEY_ROLE_SIGN, scalar, 32, &ldev),
	                 MT_OK);
	assert_int_equal(mt_aead_new(&aead), MT_OK);
	/* The parent draws first, so its generator is seeded before the forks. */
	draw(all, ldev, aead);

	for (int c = 0; c < CHILDREN; c++) {
		assert_int_equal(pipe(fds[c]), 0);
		pids[c] = fork();
		assert_true(pids[c] >= 0);
		if (pids[c] == 0) {
			static uint8_t mine[PER_PROCESS][MT_AEAD_IV_LEN];
			close(fds[c][0]);
			draw(mine, ldev, aead);
			size_t off = 0;
			while (off < sizeof(mine)) {
				ssize_t w = write(fds[c][1], (uint8_t *)mine + off, sizeof(mine) - off);
				if (w <= 0)
					_exit(1);
				off += (size_t)w;
			}
			_exit(0);
		}
		close(fds[c][1]);
	}
	for (int c = 0; c < CHILDREN; c++) {
		uint8_t *dst = (uint8_t *)all[(size_t)(c + 1) * PER_PROCESS];
		size_t want = (size_t)PER_PROCESS * MT_AEAD_IV_LEN, got = 0;
		while (got < want) {
			ssize_t r = read(fds[c][0], dst + got, want - got);
			assert_true(r > 0);
			got += (size_t)r;
		}
		close(fds[c][0]);
		int status;
		assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}

	size_t total = (CHILDREN + 1) * PER_PROCESS, dups = 0;
	qsort(all, total, MT_AEAD_IV_LEN, cmp_iv);
	for (size_t i = 1; i < total; i++)
		dups += memcmp(all[i - 1], all[i], MT_AEAD_IV_LEN) == 0;
	printf("I07: %zu IVs from %d processes, %zu collisions\n", total, CHILDREN + 1, dups);
	assert_int_equal(dups, 0);
	mt_aead_free(aead);
	mt_key_free(ldev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(I07_forked_processes_draw_distinct_ivs),
	};
	return cmocka_run_group_tests_name("random_fork", tests, NULL, NULL);
}
