/* Unit tests of the logger (common/log.c): line format, levels, escaping of
 * control characters, and scrubbing of planted secrets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static char log_path[64];

static int setup(void **state)
{
	char *err = NULL;
	int fd;

	snprintf(log_path, sizeof(log_path), "/tmp/sp-test-log-XXXXXX");
	fd = mkstemp(log_path);
	if (fd < 0)
		return -1;
	close(fd);
	if (sp_log_open("testprog", log_path, SP_LOG_DEBUG, &err) != 0) {
		free(err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	sp_log_forget_secrets();
	sp_log_close();
	unlink(log_path);
	return 0;
}

static char *slurp(void)
{
	FILE *f = fopen(log_path, "r");
	static char buf[65536];
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_format(void **state)
{
	char *s;

	sp_log(SP_LOG_INFO, "listen", "service=%s port=%d", "imaps", 993);
	s = slurp();
	assert_non_null(strstr(s, " testprog["));
	assert_non_null(strstr(s, "] info event=listen service=imaps port=993\n"));
	assert_int_equal(s[4], '-');
	assert_int_equal(s[10], 'T');
}

static void test_levels(void **state)
{
	sp_log_set_level(SP_LOG_WARN);
	sp_log(SP_LOG_INFO, "hidden", "x=1");
	sp_log(SP_LOG_ERR, "shown", "x=2");
	sp_log_set_level(SP_LOG_DEBUG);
	assert_null(strstr(slurp(), "event=hidden"));
	assert_non_null(strstr(slurp(), "err event=shown x=2"));
	assert_int_equal(sp_log_level_parse("warn"), SP_LOG_WARN);
	assert_int_equal(sp_log_level_parse("loud"), -1);
}

static void test_escaping(void **state)
{
	char *s;
	char buf[32];

	/* A network string must never start a forged log line. */
	sp_log(SP_LOG_INFO, "cmd", "line=\"%s\"", "HELO x\r\n2026-01-01 fake[1] crit event=pwned");
	s = slurp();
	assert_null(strstr(s, "\n2026-01-01 fake"));
	assert_non_null(strstr(s, "HELO x\\x0d\\x0a2026"));
	assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));

	assert_string_equal(sp_log_escape(buf, sizeof(buf), "a\tb\\", 4), "a\\x09b\\x5c");
	/* Truncation never splits an escape and always terminates. */
	assert_string_equal(sp_log_escape(buf, 6, "ab\x01", 3), "ab");
}

static void test_planted_secrets(void **state)
{
	const char *pin = "s3cr3t-PIN-4711";
	const char *pass = "hunter2-passphrase";
	char *s;

	sp_log_add_secret(pin, strlen(pin));
	sp_log_add_secret(pass, strlen(pass));
	sp_log_add_secret("abc", 3); /* too short to register: must not scrub "abc" */
	sp_log(SP_LOG_ERR, "login_failed", "pin=%s again=%s%s pass=\"%s\" word=abc", pin, pin, pin, pass);
	s = slurp();
	assert_null(strstr(s, pin));
	assert_null(strstr(s, pass));
	assert_null(strstr(s, "s3cr3t"));
	assert_non_null(strstr(s, "pin=<redacted> again=<redacted><redacted>"));
	assert_non_null(strstr(s, "word=abc"));

	sp_log_forget_secrets();
	sp_log(SP_LOG_INFO, "after", "pin=%s", pin);
	assert_non_null(strstr(slurp(), "event=after pin=s3cr3t-PIN-4711"));
}

static void test_long_line_with_secret(void **state)
{
	char big[8000];
	const char *secret = "planted-secret-XYZ";
	char *s;

	memset(big, 'a', sizeof(big));
	memcpy(big + 4000 - 30, secret, strlen(secret));
	big[sizeof(big) - 1] = '\0';
	sp_log_add_secret(secret, strlen(secret));
	sp_log(SP_LOG_INFO, "big", "v=%s", big);
	s = slurp();
	assert_null(strstr(s, secret));
	assert_int_equal(s[strlen(s) - 1], '\n');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_planted_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_with_secret, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
