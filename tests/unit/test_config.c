/*
 * test_config.c — the `key value` reader of medtrust.conf (mt_config.h).
 *
 * A valid file with every permitted shape (comments, indented comments,
 * blank and blank-with-spaces lines, tabs between key and value, trailing
 * blanks, a `#` inside a value, a UTF-8 value, CRLF ends, no final
 * newline) reads back exactly; then each refusal is provoked once and must
 * name its own error and the number of the offending line — the operator
 * fixes the line the message points at, so a wrong number is a bug.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "medtrust/mt_config.h"

static const char *const known[] = {"db_path", "ca_key", "hospital", "listen_port"};
#define N_KNOWN (sizeof(known) / sizeof(known[0]))

static void test_valid(void **state)
{
	(void)state;
	static const char text[] = "# medtrust.conf\n"
	                           "\n"
	                           "   \t\n"
	                           "  # indented comment\n"
	                           "db_path /var/lib/medtrust/medtrust.db\n"
	                           "ca_key\t\tpkcs11:token=hub;object=ca?pin-source=/x#y  \n"
	                           "hospital   St. Mary’s Hospital\r\n"
	                           "listen_port 8883";
	struct mt_config *c = NULL;
	unsigned line = 99;
	const char *k, *v;

	assert_int_equal(mt_config_parse(text, strlen(text), known, N_KNOWN, &c, &line), MT_OK);
	assert_int_equal(line, 0);
	assert_int_equal(mt_config_count(c), 4);
	assert_string_equal(mt_config_get(c, "db_path"), "/var/lib/medtrust/medtrust.db");
	assert_string_equal(mt_config_get(c, "ca_key"), "pkcs11:token=hub;object=ca?pin-source=/x#y");
	assert_string_equal(mt_config_get(c, "hospital"), "St. Mary’s Hospital");
	assert_string_equal(mt_config_get(c, "listen_port"), "8883");
	assert_null(mt_config_get(c, "nope"));
	assert_int_equal(mt_config_entry(c, 2, &k, &v, &line), MT_OK);
	assert_string_equal(k, "hospital");
	assert_int_equal(line, 7);
	assert_int_equal(mt_config_entry(c, 4, &k, &v, &line), MT_ERR_ARG);
	mt_config_free(c);

	/* An empty file is a valid, empty configuration. */
	assert_int_equal(mt_config_parse("", 0, known, N_KNOWN, &c, &line), MT_OK);
	assert_int_equal(mt_config_count(c), 0);
	mt_config_free(c);
}

static void refuse(const char *text, size_t len, enum mt_err want, unsigned want_line)
{
	struct mt_config *c = (struct mt_config *)1;
	unsigned line = 12345;
	enum mt_err e = mt_config_parse(text, len, known, N_KNOWN, &c, &line);

	if (e != want || line != want_line)
		fprintf(stderr, "text %.40s: got %d at line %u, want %d at line %u\n", text, e, line,
		        want, want_line);
	assert_int_equal(e, want);
	assert_int_equal(line, want_line);
	assert_null(c);
}

#define REFUSE(t, e, l) refuse((t), sizeof(t) - 1, (e), (l))

static void test_refusals(void **state)
{
	(void)state;
	REFUSE("db_path a\nnot_a_key b\n", MT_ERR_CONFIG_UNKNOWN, 2);
	REFUSE("db_path a\n# x\ndb_path b\n", MT_ERR_CONFIG_DUPLICATE, 3);
	REFUSE("\n\nhospital\n", MT_ERR_CONFIG_SYNTAX, 3);
	REFUSE("hospital   \t \n", MT_ERR_CONFIG_SYNTAX, 1);
	REFUSE("db_path x\nDB_PATH y\n", MT_ERR_CONFIG_SYNTAX, 2);
	REFUSE("db-path x\n", MT_ERR_CONFIG_UNKNOWN, 1); /* '-' is a key character */
	REFUSE("db.path x\n", MT_ERR_CONFIG_SYNTAX, 1);
	REFUSE("db_path=x\n", MT_ERR_CONFIG_SYNTAX, 1);
	REFUSE("db_path a\nhospital \xff\xfe\n", MT_ERR_CONFIG_UTF8, 2);
	REFUSE("hospital \xc0\xaf\n", MT_ERR_CONFIG_UTF8, 1); /* overlong '/' */
	REFUSE("db_path a\x00" "b\n", MT_ERR_CONFIG_UTF8, 1);
	REFUSE("db_path a\rb\n", MT_ERR_CONFIG_UTF8, 1);
	REFUSE("db_path a\n\x1b[31m x\n", MT_ERR_CONFIG_UTF8, 2);

	/* Line length: exactly the bound passes, one more is refused. */
	size_t n = MT_CONFIG_LINE_MAX;
	char *buf = malloc(n + 32);
	assert_non_null(buf);
	memcpy(buf, "# ok\nhospital ", 14);
	memset(buf + 14, 'a', n - 8);
	struct mt_config *c = NULL;
	unsigned line = 0;
	assert_int_equal(mt_config_parse(buf, 5 + n, known, N_KNOWN, &c, &line), MT_OK);
	mt_config_free(c);
	assert_int_equal(mt_config_parse(buf, 5 + n + 1, known, N_KNOWN, &c, &line),
	                 MT_ERR_CONFIG_TOO_LONG);
	assert_int_equal(line, 2);
	assert_null(c);
	free(buf);

	/* Keys longer than MT_CONFIG_KEY_MAX. */
	char key[MT_CONFIG_KEY_MAX + 8];
	memset(key, 'a', MT_CONFIG_KEY_MAX + 1);
	memcpy(key + MT_CONFIG_KEY_MAX + 1, " v", 3);
	refuse(key, strlen(key), MT_ERR_CONFIG_SYNTAX, 1);

	/* The file bound. */
	assert_int_equal(mt_config_parse("", MT_CONFIG_FILE_MAX + 1, known, N_KNOWN, &c, &line),
	                 MT_ERR_CONFIG_TOO_LONG);
	assert_int_equal(line, 0);
}

static void test_load(void **state)
{
	(void)state;
	char path[] = "/tmp/mt_test_config_XXXXXX";
	int fd = mkstemp(path);
	static const char text[] = "listen_port 8883\nhospital  x y  \n";
	struct mt_config *c = NULL;
	unsigned line = 0;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	assert_int_equal(mt_config_load(path, known, N_KNOWN, &c, &line), MT_OK);
	assert_string_equal(mt_config_get(c, "hospital"), "x y");
	mt_config_free(c);
	unlink(path);
	assert_int_equal(mt_config_load(path, known, N_KNOWN, &c, &line), MT_ERR_IO);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
