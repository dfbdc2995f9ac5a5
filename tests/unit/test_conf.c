/* Unit tests of the sealpost.conf parser (common/conf*.c) against a test
 * schema with every type: values and units, every error message with its
 * "file:line", continuation, quoting, line endings, defaults, '*' patterns,
 * secrets, schema checks and the reference; plus conf/'s registered tables. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/conf.h"
#include "conf/conf.h"

static const char *const levels[] = { "debug", "info", "warn", NULL };
static const char *const modes[] = { "ro", "rw", NULL };

static const struct sp_conf_key test_keys[] = {
	{ "port", SP_CONF_INT, "25", "a port", 1, 65535, NULL, 0 },
	{ "count", SP_CONF_INT, NULL, "any integer", 0, 0, NULL, 0 },
	{ "neg", SP_CONF_INT, NULL, "small integer", -10, 10, NULL, 0 },
	{ "buf", SP_CONF_SIZE, "64k", "a size", 0, 0, NULL, 0 },
	{ "limit.size", SP_CONF_SIZE, NULL, "a bounded size", 1024, 16 * 1024 * 1024, NULL, 0 },
	{ "timeout", SP_CONF_DURATION, "30s", "a duration", 0, 0, NULL, 0 },
	{ "delay", SP_CONF_DURATION, NULL, "a bounded duration", 100, 3600 * 1000, NULL, 0 },
	{ "flag", SP_CONF_BOOL, "no", "a bool", 0, 0, NULL, 0 },
	{ "other-flag", SP_CONF_BOOL, NULL, "a bool without default", 0, 0, NULL, 0 },
	{ "name", SP_CONF_STRING, NULL, "a string", 0, 0, NULL, 0 },
	{ "greeting", SP_CONF_STRING, "\"hello  world \"", "a quoted default", 0, 0, NULL, 0 },
	{ "level", SP_CONF_ENUM, "info", "an enum", 0, 0, levels, 0 },
	{ "names", SP_CONF_LIST, NULL, "a list", 0, 0, NULL, 0 },
	{ "deflist", SP_CONF_LIST, "a, \"b, c\"", "a list with a default", 0, 0, NULL, 0 },
	{ "secret.pin", SP_CONF_STRING, "hunter22", "a secret", 0, 0, NULL, SP_CONF_SECRET },
	{ "secret.count", SP_CONF_INT, NULL, "a secret number", 1, 9, NULL, SP_CONF_SECRET },
	{ "secret.level", SP_CONF_ENUM, NULL, "a secret enum", 0, 0, levels, SP_CONF_SECRET },
	{ "service.*.port", SP_CONF_INT, "7", "per-service port", 1, 65535, NULL, 0 },
	{ "service.*.names", SP_CONF_LIST, NULL, "per-service list", 0, 0, NULL, 0 },
	{ "service.default.port", SP_CONF_INT, "1", "exact key inside a pattern", 1, 65535, NULL, 0 },
	{ "map.*.*.mode", SP_CONF_ENUM, "ro", "two wildcards", 0, 0, modes, 0 },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, 0 },
};

static int setup(void **state)
{
	struct sp_conf *conf = sp_conf_new();
	char *error = NULL;

	if (sp_conf_add_schema(conf, "test", test_keys, &error) < 0) {
		fprintf(stderr, "setup: %s\n", error);
		free(error);
		sp_conf_free(&conf);
		return -1;
	}
	*state = conf;
	return 0;
}

static int teardown(void **state)
{
	struct sp_conf *conf = *state;

	sp_conf_free(&conf);
	assert_null(conf);
	return 0;
}

static int parse(struct sp_conf *conf, const char *text, char **error_r)
{
	*error_r = NULL;
	return sp_conf_parse(conf, "t.conf", text, strlen(text), error_r);
}

static void parse_ok(struct sp_conf *conf, const char *text)
{
	char *error = NULL;

	if (parse(conf, text, &error) < 0)
		fail_msg("unexpected error: %s", error);
	assert_null(error);
}

/* Parses text into a fresh conf with the test schema and expects exactly
 * message as the error. */
static void expect_error_len(const char *text, size_t len, const char *message)
{
	struct sp_conf *conf = NULL;
	char *error = NULL;

	assert_int_equal(setup((void **)&conf), 0);
	assert_int_equal(sp_conf_parse(conf, "t.conf", text, len, &error), -1);
	assert_non_null(error);
	assert_string_equal(error, message);
	free(error);
	sp_conf_free(&conf);
}

static void expect_error(const char *text, const char *message)
{
	expect_error_len(text, strlen(text), message);
}

/* ---- values by type ---- */

static void test_int_values(void **state)
{
	struct sp_conf *conf = *state;

	parse_ok(conf, "port = 993\nneg = -10\ncount = -9223372036854775808\n");
	assert_int_equal(sp_conf_int(conf, "port"), 993);
	assert_int_equal(sp_conf_int(conf, "neg"), -10);
	assert_true(sp_conf_int(conf, "count") == INT64_MIN);
	sp_conf_free(&conf);
	assert_int_equal(setup((void **)&conf), 0);
	*state = conf;
	parse_ok(conf, "count = 9223372036854775807\nneg=007\nport=1\n");
	assert_true(sp_conf_int(conf, "count") == INT64_MAX);
	assert_int_equal(sp_conf_int(conf, "neg"), 7);
	assert_int_equal(sp_conf_int(conf, "port"), 1);
}

static void test_size_units(void **state)
{
	static const struct {
		const char *text;
		long long bytes;
	} cases[] = {
		{ "0", 0 }, { "1000", 1000 }, { "64k", 65536 }, { "64K", 65536 },
		{ "3m", 3LL << 20 }, { "3M", 3LL << 20 }, { "2g", 2LL << 30 }, { "2G", 2LL << 30 },
		{ "8589934591g", 8589934591LL << 30 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_conf *conf = NULL;
		char text[64];

		assert_int_equal(setup((void **)&conf), 0);
		snprintf(text, sizeof(text), "buf = %s\n", cases[i].text);
		parse_ok(conf, text);
		assert_true(sp_conf_int(conf, "buf") == cases[i].bytes);
		sp_conf_free(&conf);
	}
	(void)state;
}

static void test_duration_units(void **state)
{
	static const struct {
		const char *text;
		long long ms;
	} cases[] = {
		{ "250ms", 250 }, { "45s", 45000 }, { "45", 45000 }, { "2m", 120000 },
		{ "3h", 3LL * 3600 * 1000 }, { "2d", 2LL * 86400 * 1000 }, { "0", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_conf *conf = NULL;
		char text[64];

		assert_int_equal(setup((void **)&conf), 0);
		snprintf(text, sizeof(text), "timeout = %s\n", cases[i].text);
		parse_ok(conf, text);
		assert_true(sp_conf_int(conf, "timeout") == cases[i].ms);
		sp_conf_free(&conf);
	}
	(void)state;
}

static void test_bool_values(void **state)
{
	static const struct {
		const char *text;
		bool value;
	} cases[] = {
		{ "yes", true }, { "no", false }, { "true", true }, { "false", false },
		{ "on", true }, { "off", false }, { "1", true }, { "0", false },
		{ "YES", true }, { "Off", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_conf *conf = NULL;
		char text[64];

		assert_int_equal(setup((void **)&conf), 0);
		snprintf(text, sizeof(text), "flag = %s\nother-flag = %s\n",
			 cases[i].text, cases[i].text);
		parse_ok(conf, text);
		assert_int_equal(sp_conf_bool(conf, "flag"), cases[i].value);
		assert_int_equal(sp_conf_bool(conf, "other-flag"), cases[i].value);
		sp_conf_free(&conf);
	}
	(void)state;
}

static void test_strings_quotes_escapes(void **state)
{
	struct sp_conf *conf = *state;

	parse_ok(conf,
		 "name =   plain text  # not a comment  \n"
		 "greeting = \"  keep \\\"blanks\\\" and \\\\ \"\n"
		 "secret.pin = \"\"\n");
	assert_string_equal(sp_conf_str(conf, "name"), "plain text  # not a comment");
	assert_string_equal(sp_conf_str(conf, "greeting"), "  keep \"blanks\" and \\ ");
	assert_string_equal(sp_conf_str(conf, "secret.pin"), "");
}

static void test_unquoted_specials_kept(void **state)
{
	struct sp_conf *conf = *state;

	/* quotes only mean something at the start; a backslash mid-line is text */
	parse_ok(conf, "name = C:\\dir\\a\"b\" c\ngreeting =\n");
	assert_string_equal(sp_conf_str(conf, "name"), "C:\\dir\\a\"b\" c");
	assert_string_equal(sp_conf_str(conf, "greeting"), "");
}

static void test_enum(void **state)
{
	struct sp_conf *conf = *state;

	parse_ok(conf, "level = warn\n");
	assert_string_equal(sp_conf_str(conf, "level"), "warn");
	expect_error("level = Warn\n",
		     "t.conf:1: bad value for 'level' ('Warn'): not one of: debug, info, warn");
	expect_error("\nlevel =\n",
		     "t.conf:2: bad value for 'level' (''): not one of: debug, info, warn");
}

static void test_list(void **state)
{
	struct sp_conf *conf = *state;
	const char *const *items;

	parse_ok(conf, "names = a,b ,  \"c, d\" , \" e \",\"q\\\"x\"\nservice.x.names =\n");
	assert_int_equal(sp_conf_list(conf, "names", &items), 5);
	assert_string_equal(items[0], "a");
	assert_string_equal(items[1], "b");
	assert_string_equal(items[2], "c, d");
	assert_string_equal(items[3], " e ");
	assert_string_equal(items[4], "q\"x");
	assert_null(items[5]);
	assert_int_equal(sp_conf_list(conf, "service.x.names", &items), 0);
	assert_non_null(items);
	assert_null(items[0]);
}

static void test_list_single_and_empty_item(void **state)
{
	struct sp_conf *conf = *state;
	const char *const *items;

	parse_ok(conf, "names = \"\"\nservice.a.names = only one\n");
	assert_int_equal(sp_conf_list(conf, "names", &items), 1);
	assert_string_equal(items[0], "");
	assert_int_equal(sp_conf_list(conf, "service.a.names", &items), 1);
	assert_string_equal(items[0], "only one");
}

/* Each quoted item once took a copy the size of the rest of the line: a
 * 64 KiB line of "" items needed gigabytes. */
static void test_list_many_quoted_items(void **state)
{
	struct sp_conf *conf = *state;
	size_t n = 21000, len = 0, cap = n * 4 + 64;
	const char *const *items;
	char *text = malloc(cap), *error = NULL;

	len += (size_t)snprintf(text, cap, "names = ");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, i ? ",\"\"" : "\"x\"");
	text[len++] = '\n';
	assert_int_equal(sp_conf_parse(conf, "t.conf", text, len, &error), 0);
	assert_int_equal(sp_conf_list(conf, "names", &items), n);
	assert_string_equal(items[0], "x");
	assert_string_equal(items[n - 1], "");
	free(text);
}

static void test_list_errors(void **state)
{
	expect_error("names = a,,b\n",
		     "t.conf:1: empty list item (write \"\" for an empty string) in value of 'names'");
	expect_error("names = a, b,\n",
		     "t.conf:1: empty list item (write \"\" for an empty string) in value of 'names'");
	expect_error("names = \"a\" b, c\n",
		     "t.conf:1: text after closing quote in value of 'names'");
	expect_error("names = a, \"b\n", "t.conf:1: unterminated quote in value of 'names'");
	(void)state;
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	struct sp_conf *conf = *state;
	const char *const *items;

	parse_ok(conf, "");
	assert_int_equal(sp_conf_int(conf, "port"), 25);
	assert_int_equal(sp_conf_int(conf, "buf"), 65536);
	assert_int_equal(sp_conf_int(conf, "timeout"), 30000);
	assert_false(sp_conf_bool(conf, "flag"));
	assert_string_equal(sp_conf_str(conf, "greeting"), "hello  world ");
	assert_string_equal(sp_conf_str(conf, "level"), "info");
	assert_string_equal(sp_conf_str(conf, "secret.pin"), "hunter22");
	assert_int_equal(sp_conf_list(conf, "deflist", &items), 2);
	assert_string_equal(items[0], "a");
	assert_string_equal(items[1], "b, c");
	assert_int_equal(sp_conf_int(conf, "service.imap.port"), 7);
	assert_string_equal(sp_conf_str(conf, "map.a.b.mode"), "ro");
	/* unset without default: 0 / false / NULL / empty list */
	assert_int_equal(sp_conf_int(conf, "count"), 0);
	assert_int_equal(sp_conf_int(conf, "delay"), 0);
	assert_false(sp_conf_bool(conf, "other-flag"));
	assert_null(sp_conf_str(conf, "name"));
	assert_null(sp_conf_str(conf, "secret.level"));
	assert_int_equal(sp_conf_list(conf, "names", &items), 0);
	assert_non_null(items);
	assert_false(sp_conf_isset(conf, "port"));
	assert_false(sp_conf_isset(conf, "service.imap.port"));
}

static void test_isset(void **state)
{
	struct sp_conf *conf = *state;

	parse_ok(conf, "port = 25\nservice.imap.port = 993\n");
	assert_true(sp_conf_isset(conf, "port"));
	assert_true(sp_conf_isset(conf, "service.imap.port"));
	assert_false(sp_conf_isset(conf, "service.pop.port"));
	assert_false(sp_conf_isset(conf, "buf"));
}

/* ---- bad values and bounds ---- */

static void test_bad_int(void **state)
{
	expect_error("count = 12a\n",
		     "t.conf:1: bad value for 'count' ('12a'): expected an integer like 42 or -1");
	expect_error("count = +5\n",
		     "t.conf:1: bad value for 'count' ('+5'): expected an integer like 42 or -1");
	expect_error("count =\n",
		     "t.conf:1: bad value for 'count' (''): expected an integer like 42 or -1");
	expect_error("count = -\n",
		     "t.conf:1: bad value for 'count' ('-'): expected an integer like 42 or -1");
	expect_error("count = 1k\n",
		     "t.conf:1: bad value for 'count' ('1k'): expected an integer like 42 or -1");
	expect_error("count = 9223372036854775808\n",
		     "t.conf:1: bad value for 'count' ('9223372036854775808'): number too large");
	expect_error("count = -9223372036854775809\n",
		     "t.conf:1: bad value for 'count' ('-9223372036854775809'): number too large");
	expect_error("count = 99999999999999999999999999999\n",
		     "t.conf:1: bad value for 'count' ('99999999999999999999999999999'): number too large");
	(void)state;
}

static void test_bad_size(void **state)
{
	static const char msg[] = "expected a size like 64k (bytes, or suffix k, m, g)";
	static const char *const bad[] = { "64 k", "1.5k", "-1", "64kb", "k", "64t", "0x10" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[64], want[256];

		snprintf(text, sizeof(text), "\n\nbuf = %s\n", bad[i]);
		snprintf(want, sizeof(want), "t.conf:3: bad value for 'buf' ('%s'): %s", bad[i], msg);
		expect_error(text, want);
	}
	(void)state;
}

static void test_size_overflow(void **state)
{
	/* 2^53 * 1024 = 2^63: one past LLONG_MAX, must not wrap */
	expect_error("buf = 9007199254740992k\n",
		     "t.conf:1: bad value for 'buf' ('9007199254740992k'): number too large");
	expect_error("buf = 8589934592g\n",
		     "t.conf:1: bad value for 'buf' ('8589934592g'): number too large");
	expect_error("buf = 18446744073709551616\n",
		     "t.conf:1: bad value for 'buf' ('18446744073709551616'): number too large");
	expect_error("timeout = 106751991167301d\n",
		     "t.conf:1: bad value for 'timeout' ('106751991167301d'): number too large");
	(void)state;
}

static void test_bad_duration(void **state)
{
	static const char msg[] =
		"expected a duration like 30s (suffix ms, s, m, h, d; bare number = seconds)";
	static const char *const bad[] = { "5 s", "1.5s", "-1s", "10sec", "s", "2w", "1h30m" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[64], want[256];

		snprintf(text, sizeof(text), "timeout = %s\n", bad[i]);
		snprintf(want, sizeof(want), "t.conf:1: bad value for 'timeout' ('%s'): %s", bad[i], msg);
		expect_error(text, want);
	}
	(void)state;
}

static void test_bad_bool(void **state)
{
	expect_error("flag = maybe\n",
		     "t.conf:1: bad value for 'flag' ('maybe'): expected yes/no, true/false, on/off or 1/0");
	expect_error("flag = yess\n",
		     "t.conf:1: bad value for 'flag' ('yess'): expected yes/no, true/false, on/off or 1/0");
	(void)state;
}

static void test_bounds(void **state)
{
	struct sp_conf *conf = *state;

	parse_ok(conf, "port = 65535\nneg = -10\nlimit.size = 16m\ndelay = 100ms\n");
	assert_int_equal(sp_conf_int(conf, "limit.size"), 16 * 1024 * 1024);
	assert_int_equal(sp_conf_int(conf, "delay"), 100);
	expect_error("port = 0\n", "t.conf:1: bad value for 'port' ('0'): value out of range [1, 65535]");
	expect_error("port = 65536\n",
		     "t.conf:1: bad value for 'port' ('65536'): value out of range [1, 65535]");
	expect_error("neg = -11\n", "t.conf:1: bad value for 'neg' ('-11'): value out of range [-10, 10]");
	expect_error("limit.size = 1023\n",
		     "t.conf:1: bad value for 'limit.size' ('1023'): value out of range [1k, 16m]");
	expect_error("limit.size = 16385k\n",
		     "t.conf:1: bad value for 'limit.size' ('16385k'): value out of range [1k, 16m]");
	expect_error("delay = 99ms\n",
		     "t.conf:1: bad value for 'delay' ('99ms'): value out of range [100ms, 1h]");
	expect_error("delay = 61m\n",
		     "t.conf:1: bad value for 'delay' ('61m'): value out of range [100ms, 1h]");
	expect_error("port = 99999999999999999999\n",
		     "t.conf:1: bad value for 'port' ('99999999999999999999'): value out of range [1, 65535]");
	expect_error("service.imap.port = 0\n",
		     "t.conf:1: bad value for 'service.imap.port' ('0'): value out of range [1, 65535]");
}

/* ---- file syntax ---- */

static void test_syntax_errors(void **state)
{
	expect_error("# c\nport 25\n", "t.conf:2: missing '=' (expected key = value)");
	expect_error("Port = 25\n",
		     "t.conf:1: key syntax: 'Port' (segments of a-z 0-9 _ - joined by '.')");
	expect_error("a..b = 1\n",
		     "t.conf:1: key syntax: 'a..b' (segments of a-z 0-9 _ - joined by '.')");
	expect_error(".port = 1\n",
		     "t.conf:1: key syntax: '.port' (segments of a-z 0-9 _ - joined by '.')");
	expect_error("service.*.port = 1\n",
		     "t.conf:1: key syntax: 'service.*.port' (segments of a-z 0-9 _ - joined by '.')");
	expect_error("po rt = 1\n",
		     "t.conf:1: key syntax: 'po rt' (segments of a-z 0-9 _ - joined by '.')");
	expect_error("= 1\n", "t.conf:1: key syntax: no key before '='");
	expect_error("name = \"abc\n", "t.conf:1: unterminated quote in value of 'name'");
	expect_error("name = \"a\\nb\"\n",
		     "t.conf:1: bad escape in quotes (only \\\" and \\\\ are allowed) in value of 'name'");
	expect_error("name = \"abc\" def\n", "t.conf:1: text after closing quote in value of 'name'");
	(void)state;
}

static void test_unknown_key(void **state)
{
	expect_error("port = 1\nnope = 1\n", "t.conf:2: unknown key 'nope'");
	expect_error("service.imap.nope = 1\n", "t.conf:1: unknown key 'service.imap.nope'");
	expect_error("service.port = 1\n", "t.conf:1: unknown key 'service.port'");
	expect_error("service.a.b.port = 1\n", "t.conf:1: unknown key 'service.a.b.port'");
	expect_error("map.a.mode = rw\n", "t.conf:1: unknown key 'map.a.mode'");
	(void)state;
}

static void test_duplicates(void **state)
{
	struct sp_conf *conf = *state;
	char *error = NULL;

	expect_error("# x\nport = 1\n\nport = 2\n",
		     "t.conf:4: duplicate key 'port' (first set on line 2)");
	expect_error("service.imap.port = 1\nservice.imap.port = 1\n",
		     "t.conf:2: duplicate key 'service.imap.port' (first set on line 1)");
	/* across two files parsed into one conf */
	assert_int_equal(sp_conf_parse(conf, "a.conf", "port = 1\n", 9, &error), 0);
	assert_int_equal(sp_conf_parse(conf, "b.conf", "\nport = 2\n", 10, &error), -1);
	assert_string_equal(error, "b.conf:2: duplicate key 'port' (first set at a.conf:1)");
	free(error);
}

static void test_continuation_values(void **state)
{
	struct sp_conf *conf = *state;
	const char *const *items;

	parse_ok(conf,
		 "names = a, \\\n"
		 "        b, \\\n"
		 "\t\"c d\"\n"
		 "name = one \\\n"
		 "   two\n"
		 "port = 9\\\n"
		 "9\n");
	assert_int_equal(sp_conf_list(conf, "names", &items), 3);
	assert_string_equal(items[1], "b");
	assert_string_equal(items[2], "c d");
	assert_string_equal(sp_conf_str(conf, "name"), "one two");
	assert_int_equal(sp_conf_int(conf, "port"), 99);
}

static void test_continuation_lines_and_errors(void **state)
{
	struct sp_conf *conf = *state;

	/* a comment ending in '\' does not swallow the next line */
	parse_ok(conf, "# see C:\\\nport = 5\\\r\n6\r\n# x\nneg = 1\\");
	assert_int_equal(sp_conf_int(conf, "port"), 56);
	assert_int_equal(sp_conf_int(conf, "neg"), 1);
	/* an error names the line where the logical line starts */
	expect_error("\nport = \\\n  \\\n  abc\n",
		     "t.conf:2: bad value for 'port' ('abc'): expected an integer like 42 or -1");
	expect_error("port = 1\nnope = \\\n1\nneg = 1\n", "t.conf:2: unknown key 'nope'");
	/* line numbers keep counting through continuations */
	expect_error("port = \\\n1\nnope = 2\n", "t.conf:3: unknown key 'nope'");
}

static void test_comments_and_blanks(void **state)
{
	struct sp_conf *conf = *state;

	parse_ok(conf, "# comment\n   # indented comment\n\n \t \n#port = x\nport=3 \n");
	assert_int_equal(sp_conf_int(conf, "port"), 3);
}

static void test_crlf(void **state)
{
	struct sp_conf *conf = *state;

	parse_ok(conf, "# c\r\nport = 4\r\n\r\nname = \"x y\"\r\n");
	assert_int_equal(sp_conf_int(conf, "port"), 4);
	assert_string_equal(sp_conf_str(conf, "name"), "x y");
	expect_error("port = 4\rneg = 1\n", "t.conf:1: carriage return inside a line");
}

static void test_empty_file(void **state)
{
	struct sp_conf *conf = *state;
	char *error = NULL;

	assert_int_equal(sp_conf_parse(conf, "t.conf", NULL, 0, &error), 0);
	assert_int_equal(sp_conf_parse(conf, "u.conf", "\n\n# only comments\n", 18, &error), 0);
	assert_null(error);
	assert_int_equal(sp_conf_int(conf, "port"), 25);
}

static void test_missing_final_newline(void **state)
{
	struct sp_conf *conf = *state;

	parse_ok(conf, "port = 1\nname = last");
	assert_string_equal(sp_conf_str(conf, "name"), "last");
}

static void test_nul_and_control_bytes(void **state)
{
	static const char nul1[] = "port = 1\0";
	static const char nul2[] = "port = 1\nname = a\0b\n";

	expect_error_len(nul1, sizeof(nul1) - 1, "t.conf:1: NUL byte in file");
	expect_error_len(nul2, sizeof(nul2) - 1, "t.conf:2: NUL byte in file");
	expect_error("# ok\n#\x01 even in a comment\n", "t.conf:2: control character 0x01");
	expect_error("name = a\x1b[31m\n", "t.conf:1: control character 0x1b");
	expect_error("name = a\x7f\n", "t.conf:1: control character 0x7f");
	(void)state;
}

static void test_no_buffer_overread(void **state)
{
	struct sp_conf *conf = *state;
	/* not NUL-terminated: the parser must stop at len */
	char *buf = malloc(8);

	memcpy(buf, "port = 8", 8);
	parse_ok(conf, "");
	{
		char *error = NULL;

		assert_int_equal(sp_conf_parse(conf, "n.conf", buf, 8, &error), 0);
	}
	assert_int_equal(sp_conf_int(conf, "port"), 8);
	free(buf);
}

/* ---- limits ---- */

static void test_line_limit(void **state)
{
	size_t max = 64 * 1024, prefix = strlen("name = ");
	char *text = malloc(max + 64);

	/* exactly 64 KiB: accepted */
	memcpy(text, "name = ", prefix);
	memset(text + prefix, 'a', max - prefix);
	text[max] = '\n';
	{
		struct sp_conf *conf = NULL;
		char *error = NULL;

		assert_int_equal(setup((void **)&conf), 0);
		assert_int_equal(sp_conf_parse(conf, "t.conf", text, max + 1, &error), 0);
		assert_int_equal(strlen(sp_conf_str(conf, "name")), max - prefix);
		sp_conf_free(&conf);
	}
	/* one byte more: refused */
	memcpy(text, "\nname = ", prefix + 1);
	memset(text + prefix + 1, 'a', max - prefix + 1);
	text[max + 2] = '\n';
	expect_error_len(text, max + 3, "t.conf:2: line too long (limit 64 KiB)");
	/* the limit applies to the joined logical line */
	memcpy(text, "name = ", prefix);
	memset(text + prefix, 'a', max - prefix);
	memcpy(text + max - 10, "\\\nbbbbbbbbbbbb\n", 15);
	expect_error_len(text, max + 5, "t.conf:1: line too long (limit 64 KiB)");
	/* and to comment lines */
	memset(text, '#', max + 1);
	text[max + 1] = '\n';
	expect_error_len(text, max + 2, "t.conf:1: line too long (limit 64 KiB)");
	free(text);
	(void)state;
}

static void test_file_limit(void **state)
{
	size_t max = 1024 * 1024;
	char *text = malloc(max + 1);

	/* 1 MiB of 64-byte comment lines: accepted */
	for (size_t i = 0; i < max; i += 64) {
		memset(text + i, 'c', 64);
		text[i] = '#';
		text[i + 63] = '\n';
	}
	{
		struct sp_conf *conf = NULL;
		char *error = NULL;

		assert_int_equal(setup((void **)&conf), 0);
		assert_int_equal(sp_conf_parse(conf, "t.conf", text, max, &error), 0);
		sp_conf_free(&conf);
	}
	text[max] = '#';
	expect_error_len(text, max + 1, "t.conf:16385: file too large (limit 1 MiB)");
	free(text);
	(void)state;
}

static void test_key_limit(void **state)
{
	size_t cap = 10001 * 40, len = 0;
	char *text = malloc(cap);
	char want[128];

	for (int i = 0; i < 10000; i++)
		len += (size_t)snprintf(text + len, cap - len, "service.s%d.port = 1\n", i);
	{
		struct sp_conf *conf = NULL;
		char *error = NULL;
		const char *const *names;

		assert_int_equal(setup((void **)&conf), 0);
		assert_int_equal(sp_conf_parse(conf, "t.conf", text, len, &error), 0);
		assert_int_equal(sp_conf_match(conf, "service.*.port", &names), 10000);
		assert_string_equal(names[9999], "service.s9999.port");
		sp_conf_free(&conf);
	}
	len += (size_t)snprintf(text + len, cap - len, "port = 1\n");
	snprintf(want, sizeof(want), "t.conf:10001: too many keys (limit 10000)");
	expect_error_len(text, len, want);
	free(text);
	(void)state;
}

/* ---- wildcards ---- */

static void test_match_in_file_order(void **state)
{
	struct sp_conf *conf = *state;
	const char *const *names;
	const char *const *items;
	char svc[32];

	parse_ok(conf,
		 "service.pop.port = 995\n"
		 "service.smtp.names = mx, \"backup mx\"\n"
		 "service.imap.port = 993\n"
		 "service.default.port = 2\n"
		 "map.users.home.mode = rw\n");
	assert_int_equal(sp_conf_match(conf, "service.*.port", &names), 3);
	assert_string_equal(names[0], "service.pop.port");
	assert_string_equal(names[1], "service.imap.port");
	assert_string_equal(names[2], "service.default.port");
	assert_null(names[3]);
	assert_int_equal(sp_conf_wild("service.*.port", names[1], 0, svc, sizeof(svc)), 0);
	assert_string_equal(svc, "imap");
	assert_int_equal(sp_conf_int(conf, "service.imap.port"), 993);
	assert_int_equal(sp_conf_int(conf, "service.default.port"), 2);
	assert_int_equal(sp_conf_list(conf, "service.smtp.names", &items), 2);
	assert_string_equal(items[1], "backup mx");
	assert_int_equal(sp_conf_match(conf, "service.*.*", &names), 4);
	assert_int_equal(sp_conf_match(conf, "map.*.*.mode", &names), 1);
	assert_string_equal(sp_conf_str(conf, "map.users.home.mode"), "rw");
	assert_int_equal(sp_conf_match(conf, "nothing.*", &names), 0);
	assert_non_null(names);
	assert_int_equal(sp_conf_match(conf, "service.imap.port", &names), 1);
}

static void test_exact_key_inside_pattern(void **state)
{
	struct sp_conf *conf = *state;

	parse_ok(conf, "");
	/* service.default.port has its own default; other services the pattern's */
	assert_int_equal(sp_conf_int(conf, "service.default.port"), 1);
	assert_int_equal(sp_conf_int(conf, "service.other.port"), 7);
}

static void test_wild(void **state)
{
	char buf[16];

	assert_int_equal(sp_conf_wild("service.*.sslport", "service.imap.sslport", 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "imap");
	assert_int_equal(sp_conf_wild("map.*.*.mode", "map.users.home.mode", 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "home");
	assert_int_equal(sp_conf_wild("map.*.*.mode", "map.users.home.mode", 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "users");
	assert_int_equal(sp_conf_wild("*", "x", 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "x");
	/* not a match, no such '*', too small a buffer */
	assert_int_equal(sp_conf_wild("map.*.*.mode", "map.users.home.mode", 2, buf, sizeof(buf)), -1);
	assert_int_equal(sp_conf_wild("service.*.sslport", "service.imap.port", 0, buf, sizeof(buf)), -1);
	assert_int_equal(sp_conf_wild("service.*.sslport", "service.imap", 0, buf, sizeof(buf)), -1);
	assert_int_equal(sp_conf_wild("service.*.sslport", "service.a.b.sslport", 0, buf, sizeof(buf)), -1);
	assert_int_equal(sp_conf_wild("service.*", "service..x", 0, buf, sizeof(buf)), -1);
	assert_int_equal(sp_conf_wild("service.*", "service.", 0, buf, sizeof(buf)), -1);
	assert_int_equal(sp_conf_wild("service.*.p", "service.imap.p", 0, buf, 4), -1);
	assert_int_equal(sp_conf_wild("service.*.p", "service.imap.p", 0, buf, 5), 0);
	assert_int_equal(sp_conf_wild("service.*.p", "service.imap.p", -1, buf, sizeof(buf)), -1);
	assert_int_equal(sp_conf_wild("port", "port", 0, buf, sizeof(buf)), -1);
	(void)state;
}

/* ---- secrets ---- */

static void expect_error_hides(const char *text, const char *message, const char *secret)
{
	expect_error(text, message);
	assert_null(strstr(message, secret));
}

static void test_secret_not_echoed(void **state)
{
	struct sp_conf *conf = *state;

	expect_error_hides("secret.count = 12345\n",
			   "t.conf:1: bad value for 'secret.count': value out of range [1, 9]", "12345");
	expect_error_hides("secret.count = s3cr3t\n",
			   "t.conf:1: bad value for 'secret.count': expected an integer like 42 or -1",
			   "s3cr3t");
	expect_error_hides("secret.level = s3cr3t\n",
			   "t.conf:1: bad value for 'secret.level': not one of: debug, info, warn", "s3cr3t");
	expect_error_hides("secret.pin = \"s3cr3t\n",
			   "t.conf:1: unterminated quote in value of 'secret.pin'", "s3cr3t");
	expect_error_hides("secret.pin = \"s3\\cr3t\"\n",
			   "t.conf:1: bad escape in quotes (only \\\" and \\\\ are allowed) in value of 'secret.pin'",
			   "s3");
	expect_error_hides("secret.pin = 1\nsecret.pin = s3cr3t\n",
			   "t.conf:2: duplicate key 'secret.pin' (first set on line 1)", "s3cr3t");
	parse_ok(conf, "secret.pin = \"a b\\\"c\"\n");
	assert_string_equal(sp_conf_str(conf, "secret.pin"), "a b\"c");
}

static void test_reference(void **state)
{
	struct sp_conf *conf = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	sp_conf_write_reference(conf, out);
	assert_int_equal(fclose(out), 0);
	for (const struct sp_conf_key *k = test_keys; k->name != NULL; k++) {
		char want[128];

		snprintf(want, sizeof(want), "| `%s` | ", k->name);
		if (strstr(text, want) == NULL)
			fail_msg("reference lacks %s:\n%s", k->name, text);
	}
	assert_non_null(strstr(text, "## test\n"));
	assert_non_null(strstr(text, "| `limit.size` | size | (none) | 1k .. 16m | a bounded size |"));
	assert_non_null(strstr(text, "| `delay` | duration | (none) | 100ms .. 1h |"));
	assert_non_null(strstr(text, "| `level` | enum | `info` | `debug`, `info`, `warn` | an enum |"));
	assert_non_null(strstr(text, "| `secret.pin` | string, secret | (hidden) |"));
	assert_null(strstr(text, "hunter22"));
	free(text);
}

/* ---- the schema itself ---- */

static void expect_schema_error(const struct sp_conf_key *keys, const char *message)
{
	struct sp_conf *conf = NULL;
	char *error = NULL;

	assert_int_equal(setup((void **)&conf), 0);
	assert_int_equal(sp_conf_add_schema(conf, "bad", keys, &error), -1);
	assert_non_null(error);
	assert_string_equal(error, message);
	free(error);
	/* the bad table left nothing behind: its first key is still unknown */
	if (keys[0].name != NULL && strchr(keys[0].name, '*') == NULL &&
	    strcmp(keys[0].name, "port") != 0) {
		char text[128];

		snprintf(text, sizeof(text), "%s = 1\n", keys[0].name);
		assert_int_equal(sp_conf_parse(conf, "t.conf", text, strlen(text), &error), -1);
		assert_true(strstr(error, "unknown key") != NULL || strstr(error, "key syntax") != NULL);
		free(error);
	}
	sp_conf_free(&conf);
}

#define KEY(name, type, def, min, max, choices, flags) \
	{ name, type, def, "d", min, max, choices, flags }
#define END { NULL, 0, NULL, NULL, 0, 0, NULL, 0 }

static void test_schema_checks(void **state)
{
	static const char *const no_choices[] = { NULL };
	const struct sp_conf_key bad_int_def[] = { KEY("x.a", SP_CONF_INT, "abc", 0, 0, NULL, 0), END };
	const struct sp_conf_key def_out_of_range[] = {
		KEY("x.a", SP_CONF_INT, "0", 1, 2, NULL, 0), END };
	const struct sp_conf_key enum_def[] = { KEY("x.a", SP_CONF_ENUM, "trace", 0, 0, levels, 0), END };
	const struct sp_conf_key secret_def[] = {
		KEY("x.a", SP_CONF_INT, "hunter22", 0, 0, NULL, SP_CONF_SECRET), END };
	const struct sp_conf_key dup_in_table[] = {
		KEY("x.a", SP_CONF_INT, NULL, 0, 0, NULL, 0), KEY("x.a", SP_CONF_BOOL, NULL, 0, 0, NULL, 0), END };
	const struct sp_conf_key dup_across[] = { KEY("x.a", SP_CONF_INT, NULL, 0, 0, NULL, 0),
						  KEY("port", SP_CONF_INT, NULL, 0, 0, NULL, 0), END };
	const struct sp_conf_key overlap[] = { KEY("x.a", SP_CONF_INT, NULL, 0, 0, NULL, 0),
					       KEY("*.imap.port", SP_CONF_INT, NULL, 0, 0, NULL, 0), END };
	const struct sp_conf_key bad_name[] = { KEY("x.A", SP_CONF_INT, NULL, 0, 0, NULL, 0), END };
	const struct sp_conf_key star_part[] = { KEY("x.a*", SP_CONF_INT, NULL, 0, 0, NULL, 0), END };
	const struct sp_conf_key no_desc[] = { { "x.a", SP_CONF_INT, NULL, NULL, 0, 0, NULL, 0 }, END };
	const struct sp_conf_key min_max[] = { KEY("x.a", SP_CONF_INT, NULL, 5, 1, NULL, 0), END };
	const struct sp_conf_key choices_on_int[] = { KEY("x.a", SP_CONF_INT, NULL, 0, 0, levels, 0), END };
	const struct sp_conf_key enum_no_choices[] = {
		KEY("x.a", SP_CONF_ENUM, NULL, 0, 0, no_choices, 0), END };
	const struct sp_conf_key bounds_on_string[] = {
		KEY("x.a", SP_CONF_STRING, NULL, 1, 2, NULL, 0), END };
	const struct sp_conf_key bad_flags[] = { KEY("x.a", SP_CONF_INT, NULL, 0, 0, NULL, 0x80), END };
	const struct sp_conf_key bad_list_def[] = { KEY("x.a", SP_CONF_LIST, "a,,b", 0, 0, NULL, 0), END };
	struct sp_conf *conf = *state;
	char *error = NULL;

	expect_schema_error(bad_int_def, "schema bad: bad default: bad value for 'x.a' ('abc'): "
			    "expected an integer like 42 or -1");
	expect_schema_error(def_out_of_range, "schema bad: bad default: bad value for 'x.a' ('0'): "
			    "value out of range [1, 2]");
	expect_schema_error(enum_def, "schema bad: bad default: bad value for 'x.a' ('trace'): "
			    "not one of: debug, info, warn");
	expect_schema_error(secret_def, "schema bad: bad default: bad value for 'x.a': "
			    "expected an integer like 42 or -1");
	expect_schema_error(dup_in_table, "schema bad: key 'x.a' clashes with 'x.a' registered before");
	expect_schema_error(dup_across, "schema bad: key 'port' clashes with 'port' registered before");
	expect_schema_error(overlap,
			    "schema bad: key '*.imap.port' clashes with 'service.*.port' registered before");
	expect_schema_error(bad_name, "schema bad: key 'x.A': bad name (segments of a-z 0-9 _ - or '*', "
			    "joined by '.')");
	expect_schema_error(star_part, "schema bad: key 'x.a*': bad name (segments of a-z 0-9 _ - or '*', "
			    "joined by '.')");
	expect_schema_error(no_desc, "schema bad: key 'x.a': needs a one-line description");
	expect_schema_error(min_max, "schema bad: key 'x.a': min > max");
	expect_schema_error(choices_on_int,
			    "schema bad: key 'x.a': choices are for ENUM keys, and ENUM keys need them");
	expect_schema_error(enum_no_choices, "schema bad: key 'x.a': ENUM without choices");
	expect_schema_error(bounds_on_string,
			    "schema bad: key 'x.a': bounds are for INT, SIZE and DURATION keys");
	expect_schema_error(bad_flags, "schema bad: key 'x.a': unknown flags");
	expect_schema_error(bad_list_def, "schema bad: bad default: empty list item (write \"\" for an "
			    "empty string) in value of 'x.a'");
	assert_int_equal(sp_conf_add_schema(conf, NULL, test_keys, &error), -1);
	free(error);
	/* the whole test table again: every name clashes */
	assert_int_equal(sp_conf_add_schema(conf, "again", test_keys, &error), -1);
	free(error);
}

static void test_getter_misuse_aborts(void **state)
{
	static const char *const calls[] = { "unknown", "type", "star", "bad-name" };
	struct sp_conf *conf = *state;

	parse_ok(conf, "");
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			/* the CRIT log line is expected; keep test output clean */
			if (freopen("/dev/null", "w", stderr) == NULL)
				_exit(3);
			if (i == 0)
				(void)sp_conf_int(conf, "nope");
			else if (i == 1)
				(void)sp_conf_bool(conf, "port");
			else if (i == 2)
				(void)sp_conf_int(conf, "service.*.port");
			else
				(void)sp_conf_int(conf, "Port");
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGABRT);
	}
}

/* ---- sp_conf_load and conf/'s tables ---- */

static void test_load(void **state)
{
	struct sp_conf *conf = *state;
	char path[] = "/tmp/test_conf_XXXXXX";
	char *error = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "port = 42\nbad\n", 14), 14);
	close(fd);
	assert_int_equal(sp_conf_load(conf, path, &error), -1);
	{
		char want[128];

		snprintf(want, sizeof(want), "%s:2: missing '=' (expected key = value)", path);
		assert_string_equal(error, want);
	}
	free(error);
	unlink(path);
	assert_int_equal(sp_conf_load(conf, path, &error), -1);
	assert_non_null(strstr(error, "cannot open"));
	assert_non_null(strstr(error, path));
	free(error);
}

static void test_common_keys(void **state)
{
	struct sp_conf *conf = sp_conf_new();
	char *error = NULL;

	assert_int_equal(sp_conf_add_all(conf, &error), 0);
	assert_int_equal(sp_conf_parse(conf, "s.conf", "log.level = debug\n", 18, &error), 0);
	assert_string_equal(sp_conf_str(conf, "log.level"), "debug");
	assert_string_equal(sp_conf_str(conf, "log.file"), "-");
	assert_string_equal(sp_conf_str(conf, "user"), "nobody");
	assert_string_equal(sp_conf_str(conf, "group"), "nogroup");
	assert_string_equal(sp_conf_str(conf, "confdir"), "");
	assert_non_null(sp_conf_str(conf, "rundir"));
	sp_conf_free(&conf);
	(void)state;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_int_values), T(test_size_units), T(test_duration_units), T(test_bool_values),
		T(test_strings_quotes_escapes), T(test_unquoted_specials_kept), T(test_enum),
		T(test_list), T(test_list_single_and_empty_item), T(test_list_many_quoted_items),
		T(test_list_errors),
		T(test_defaults), T(test_isset),
		T(test_bad_int), T(test_bad_size), T(test_size_overflow), T(test_bad_duration),
		T(test_bad_bool), T(test_bounds),
		T(test_syntax_errors), T(test_unknown_key), T(test_duplicates),
		T(test_continuation_values), T(test_continuation_lines_and_errors),
		T(test_comments_and_blanks), T(test_crlf), T(test_empty_file),
		T(test_missing_final_newline), T(test_nul_and_control_bytes), T(test_no_buffer_overread),
		T(test_line_limit), T(test_file_limit), T(test_key_limit),
		T(test_match_in_file_order), T(test_exact_key_inside_pattern), T(test_wild),
		T(test_secret_not_echoed), T(test_reference), T(test_schema_checks),
		T(test_getter_misuse_aborts), T(test_load), T(test_common_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
