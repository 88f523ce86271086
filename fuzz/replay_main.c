/*
 * replay_main.c — a main() that feeds files to a libFuzzer harness, so that
 * every harness doubles as a plain test program (tests/fuzz/
 * test_fuzz_corpus.sh builds each harness with this file, in the release
 * and the sanitizer build alike).
 *
 *   replay FILE|DIR...
 *
 * Each argument is a file, or a directory whose regular files are replayed
 * (not recursively).  Every file goes once through LLVMFuzzerTestOneInput;
 * a crash is the harness's abort() or a sanitizer report, exactly as under
 * libFuzzer.  Prints how many files ran; exits 1 if an argument could not
 * be read and 0 otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		fclose(f);
		return -1;
	}
	for (;;) {
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(buf);
		fprintf(stderr, "%s: read error\n", path);
		return -1;
	}
	/* An exact-size copy, so that ASan sees reads past the input's end. */
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long ran = 0;
	int bad = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			bad = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(argv[i]) == 0)
				ran++;
			else
				bad = 1;
			continue;
		}
		DIR *d = opendir(argv[i]);
		if (!d) {
			perror(argv[i]);
			bad = 1;
			continue;
		}
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			char path[4096];
			struct stat fst;
			int n = snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
			if (n < 0 || (size_t)n >= sizeof path)
				continue;
			if (stat(path, &fst) != 0 || !S_ISREG(fst.st_mode))
				continue;
			if (replay_file(path) == 0)
				ran++;
			else
				bad = 1;
		}
		closedir(d);
	}
	printf("replayed %lu file(s)\n", ran);
	return bad;
}
