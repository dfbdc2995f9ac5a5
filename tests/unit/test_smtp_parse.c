/* Unit tests for the SMTP command parser (mailcore/smtp_parse.c): verbs,
 * paths, ESMTP parameters, and the RFC 5321 4.5.3.1 limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mailcore/mailcore.h"

static int parse(const char *line, struct smtp_cmd *cmd, struct smtp_error *err)
{
	return smtp_parse_command(line, strlen(line), cmd, err);
}

static void expect_error(const char *line, int code, const char *status)
{
	struct smtp_cmd cmd;
	struct smtp_error err;

	if (parse(line, &cmd, &err) != -1)
		fail_msg("parsed, expected %d %s: %s", code, status, line);
	if (err.code != code || strcmp(err.status, status) != 0)
		fail_msg("%s: got %d %s (%s), expected %d %s", line, err.code, err.status, err.text,
			 code, status);
}

static void test_verbs(void **state)
{
	struct smtp_cmd cmd;
	struct smtp_error err;
	static const struct {
		const char *line;
		enum smtp_verb verb;
	} ok[] = {
		{"HELO a.example", SMTP_CMD_HELO}, {"ehlo a.example", SMTP_CMD_EHLO},
		{"DATA", SMTP_CMD_DATA}, {"rset", SMTP_CMD_RSET}, {"NOOP", SMTP_CMD_NOOP},
		{"NOOP anything at all", SMTP_CMD_NOOP}, {"QUIT", SMTP_CMD_QUIT},
		{"VRFY alice", SMTP_CMD_VRFY}, {"EXPN staff", SMTP_CMD_EXPN}, {"HELP", SMTP_CMD_HELP},
		{"HELP MAIL", SMTP_CMD_HELP}, {"STARTTLS", SMTP_CMD_STARTTLS},
		{"AUTH PLAIN", SMTP_CMD_AUTH}, {"EHLO [192.0.2.1]", SMTP_CMD_EHLO},
		{"EHLO my_host", SMTP_CMD_EHLO}, {"QUIT ", SMTP_CMD_QUIT},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (parse(ok[i].line, &cmd, &err) != 0)
			fail_msg("%s: %d %s", ok[i].line, err.code, err.text);
		assert_int_equal(cmd.verb, ok[i].verb);
	}
	parse("EHLO client.example", &cmd, &err);
	assert_int_equal(cmd.arg_len, strlen("client.example"));
	assert_memory_equal(cmd.arg, "client.example", cmd.arg_len);
}

static void test_verb_errors(void **state)
{
	(void)state;
	expect_error("", 500, "5.5.2");
	expect_error("FOO bar", 500, "5.5.1");
	expect_error("GET / HTTP/1.1", 500, "5.5.1");
	expect_error("BDAT 100 LAST", 502, "5.5.1");
	expect_error("TURN", 502, "5.5.1");
	expect_error("DATA now", 501, "5.5.4");
	expect_error("RSET x", 501, "5.5.4");
	expect_error("STARTTLS x", 501, "5.5.4");
	expect_error("QUIT please", 501, "5.5.4");
	expect_error("HELO", 501, "5.5.4");
	expect_error("EHLO bad(host)", 501, "5.5.4");
	expect_error("EHLO a\tb", 500, "5.5.2");
	expect_error("NOOP \x01", 500, "5.5.2");
	expect_error("NOOP caf\xc3\xa9", 500, "5.5.2");
	expect_error("VRFY", 501, "5.5.4");
	expect_error("AUTH", 501, "5.5.4");
	expect_error("AUTH PLAIN a b", 501, "5.5.4");
	expect_error("AUTH PL@IN", 501, "5.5.4");
}

static void test_mail(void **state)
{
	struct smtp_cmd cmd;
	struct smtp_error err;

	(void)state;
	assert_int_equal(parse("MAIL FROM:<alice@example.com>", &cmd, &err), 0);
	assert_int_equal(cmd.verb, SMTP_CMD_MAIL);
	assert_string_equal(cmd.addr, "alice@example.com");
	assert_false(cmd.null_path);

	assert_int_equal(parse("mail from:<>", &cmd, &err), 0);
	assert_true(cmd.null_path);
	assert_string_equal(cmd.addr, "");

	/* a space after the colon: not RFC 5321, but common; accepted */
	assert_int_equal(parse("MAIL FROM: <a@b.example>", &cmd, &err), 0);
	assert_string_equal(cmd.addr, "a@b.example");

	/* source route ignored (RFC 5321 4.1.1.3, C) */
	assert_int_equal(parse("MAIL FROM:<@relay.example,@r2.example:a@b.example>", &cmd, &err), 0);
	assert_string_equal(cmd.addr, "a@b.example");

	assert_int_equal(parse("MAIL FROM:<\"john doe\"@example.com>", &cmd, &err), 0);
	assert_string_equal(cmd.addr, "\"john doe\"@example.com");
	assert_int_equal(parse("MAIL FROM:<\"a>b\"@example.com>", &cmd, &err), 0);
	assert_string_equal(cmd.addr, "\"a>b\"@example.com");

	assert_int_equal(parse("MAIL FROM:<a@[192.0.2.1]>", &cmd, &err), 0);
	assert_int_equal(parse("MAIL FROM:<a@[IPv6:2001:db8::1]>", &cmd, &err), 0);

	assert_int_equal(parse("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME AUTH=<>", &cmd, &err), 0);
	assert_true(cmd.has_size);
	assert_int_equal(cmd.size, 1000);
	assert_int_equal(cmd.body, SMTP_BODY_8BITMIME);
	assert_true(cmd.has_auth);
	assert_string_equal(cmd.auth, "");
	assert_int_equal(cmd.n_params, 3);

	assert_int_equal(parse("MAIL FROM:<a@b.example> AUTH=e+3Dmc2@example.com body=7bit", &cmd, &err), 0);
	assert_string_equal(cmd.auth, "e=mc2@example.com");
	assert_int_equal(cmd.body, SMTP_BODY_7BIT);

	/* saturates rather than wraps: refused as too large by the session */
	assert_int_equal(parse("MAIL FROM:<a@b.example> SIZE=99999999999999999999", &cmd, &err), 0);
	assert_true(cmd.size == UINT64_MAX);
}

static void test_mail_errors(void **state)
{
	(void)state;
	expect_error("MAIL alice@example.com", 501, "5.5.4");
	expect_error("MAIL FROM:alice@example.com", 501, "5.5.4");
	expect_error("MAIL FROM:<alice@example.com", 501, "5.5.4");
	expect_error("MAIL FROM:<alice>", 501, "5.1.7");
	expect_error("MAIL FROM:<alice@>", 501, "5.1.7");
	expect_error("MAIL FROM:<.alice@example.com>", 501, "5.1.7");
	expect_error("MAIL FROM:<al..ice@example.com>", 501, "5.1.7");
	expect_error("MAIL FROM:<alice@-example.com>", 501, "5.1.7");
	expect_error("MAIL FROM:<alice@example..com>", 501, "5.1.7");
	expect_error("MAIL FROM:<alice@[300.1.1.1]>", 501, "5.1.7");
	expect_error("MAIL FROM:<alice@[tag:stuff]>", 501, "5.1.7");
	expect_error("MAIL FROM:<\"unterminated@example.com>", 501, "5.1.7");
	expect_error("MAIL FROM:<a@b.example>x", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SIZE=", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SIZE=12x", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> BODY=BINARYMIME", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SMTPUTF8", 555, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> RET=HDRS", 555, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> AUTH=a+zz", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> -X=1", 501, "5.5.4");
}

static void test_rcpt(void **state)
{
	struct smtp_cmd cmd;
	struct smtp_error err;

	(void)state;
	assert_int_equal(parse("RCPT TO:<bob@example.com>", &cmd, &err), 0);
	assert_int_equal(cmd.verb, SMTP_CMD_RCPT);
	assert_string_equal(cmd.addr, "bob@example.com");
	assert_int_equal(parse("RCPT TO:<Postmaster>", &cmd, &err), 0);
	assert_true(cmd.postmaster);
	expect_error("RCPT TO:<>", 501, "5.1.3");
	expect_error("RCPT TO:<bob>", 501, "5.1.3");
	expect_error("RCPT TO:<bob@example.com> NOTIFY=NEVER", 555, "5.5.4");
	expect_error("RCPT FROM:<bob@example.com>", 501, "5.5.4");
}

static void test_limits(void **state)
{
	char line[1024], local[80], dom[300];
	struct smtp_cmd cmd;
	struct smtp_error err;

	(void)state;
	/* 4.5.3.1.1: local part 64 octets */
	memset(local, 'a', 64);
	local[64] = '\0';
	snprintf(line, sizeof(line), "MAIL FROM:<%s@example.com>", local);
	assert_int_equal(parse(line, &cmd, &err), 0);
	local[64] = 'a';
	local[65] = '\0';
	snprintf(line, sizeof(line), "MAIL FROM:<%s@example.com>", local);
	expect_error(line, 501, "5.1.7");

	/* 4.5.3.1.3: path 256 octets including < > */
	memset(dom, 0, sizeof(dom));
	for (size_t i = 0; i < 4; i++) {
		memset(dom + i * 50, 'd', 49);
		dom[i * 50 + 49] = '.';
	}
	memcpy(dom + 200, "example.com", 11); /* 211 octets */
	snprintf(line, sizeof(line), "RCPT TO:<%.40s@%s>", local, dom); /* 2+40+1+211 = 254 */
	assert_int_equal(parse(line, &cmd, &err), 0);
	snprintf(line, sizeof(line), "RCPT TO:<%.43s@%s>", local, dom); /* 257 */
	expect_error(line, 501, "5.1.3");

	/* 4.5.3.1.4: 512 octets with CRLF, so 510 without */
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	line[510] = '\0';
	assert_int_equal(parse(line, &cmd, &err), 0);
	line[510] = 'x';
	line[511] = '\0';
	expect_error(line, 500, "5.5.6");

	/* RFC 4954 4: AUTH lines may be longer */
	memset(line, 'A', sizeof(line));
	memcpy(line, "AUTH PLAIN ", 11);
	line[800] = '\0';
	assert_int_equal(parse(line, &cmd, &err), 0);
	assert_string_equal(cmd.mech, "PLAIN");
	assert_int_equal(cmd.initial_len, 800 - 11);
}

static void test_auth(void **state)
{
	struct smtp_cmd cmd;
	struct smtp_error err;

	(void)state;
	assert_int_equal(parse("auth plain AGFsaWNlAHNlY3JldA==", &cmd, &err), 0);
	assert_string_equal(cmd.mech, "PLAIN");
	assert_true(cmd.has_initial);
	assert_int_equal(cmd.initial_len, 20);
	assert_int_equal(parse("AUTH EXTERNAL =", &cmd, &err), 0);
	assert_string_equal(cmd.mech, "EXTERNAL");
	assert_int_equal(cmd.initial_len, 1);
	assert_int_equal(parse("AUTH LOGIN", &cmd, &err), 0);
	assert_false(cmd.has_initial);
}

static void test_base64_and_plain(void **state)
{
	uint8_t out[64];
	char enc[64];
	struct smtp_plain p;

	(void)state;
	assert_int_equal(smtp_base64_decode("AGFsaWNlAHNlY3JldA==", 20, out, sizeof(out)), 13);
	assert_memory_equal(out, "\0alice\0secret", 13);
	assert_int_equal(smtp_base64_decode("", 0, out, sizeof(out)), 0);
	assert_int_equal(smtp_base64_decode("YQ=", 3, out, sizeof(out)), -1);
	assert_int_equal(smtp_base64_decode("Y===", 4, out, sizeof(out)), -1);
	assert_int_equal(smtp_base64_decode("YR==", 4, out, sizeof(out)), -1); /* pad bits */
	assert_int_equal(smtp_base64_decode("YQ==YQ==", 8, out, sizeof(out)), -1);
	assert_int_equal(smtp_base64_decode("Y!Q=", 4, out, sizeof(out)), -1);
	assert_int_equal(smtp_base64_decode("YWJj", 4, out, 2), -1);
	assert_int_equal(smtp_base64_encode((const uint8_t *)"Username:", 9, enc, sizeof(enc)), 12);
	assert_string_equal(enc, "VXNlcm5hbWU6");

	assert_int_equal(smtp_sasl_plain_split(out, 0, &p), -1);
	assert_int_equal(smtp_sasl_plain_split((const uint8_t *)"\0alice\0secret", 13, &p), 0);
	assert_int_equal(p.authzid_len, 0);
	assert_int_equal(p.authcid_len, 5);
	assert_int_equal(p.passwd_len, 6);
	assert_int_equal(smtp_sasl_plain_split((const uint8_t *)"\0alice\0", 7, &p), -1);
	assert_int_equal(smtp_sasl_plain_split((const uint8_t *)"\0\0pw", 4, &p), -1);
	assert_int_equal(smtp_sasl_plain_split((const uint8_t *)"\0a\0p\0w", 6, &p), -1);
}

static void decode_all(const char *in, size_t step, char *out, size_t *out_len,
		       struct smtp_data_decoder *d, size_t *consumed)
{
	uint8_t buf[256];
	size_t len = strlen(in), pos = 0;

	smtp_data_init(d);
	*out_len = 0;
	while (pos < len && !d->done) {
		size_t n = len - pos < step ? len - pos : step, produced;
		size_t used = smtp_data_decode(d, (const uint8_t *)in + pos, n, buf, n + 2, &produced);

		memcpy(out + *out_len, buf, produced);
		*out_len += produced;
		pos += used;
	}
	out[*out_len] = '\0';
	*consumed = pos;
}

static void test_data_decoder(void **state)
{
	static const char *in = "Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
	char out[256];
	size_t out_len, consumed;
	struct smtp_data_decoder d;

	(void)state;
	/* byte by byte and all at once give the same result */
	for (size_t step = 1; step <= 64; step += 63) {
		decode_all(in, step, out, &out_len, &d, &consumed);
		assert_true(d.done);
		assert_false(d.bare_cr || d.bare_lf);
		assert_string_equal(out, "Subject: x\r\n\r\n.leading dot\r\n");
		assert_int_equal(consumed, strlen(in) - strlen("QUIT\r\n"));
	}
	/* smuggling: <LF>.<CR><LF> and <LF>.<LF> do not end the data */
	decode_all("a\n.\r\nMAIL FROM:<x@y.z>\r\n.\r\n", 1, out, &out_len, &d, &consumed);
	assert_true(d.done);
	assert_true(d.bare_lf);
	decode_all("a\r\n.\nb\r\n.\r\n", 5, out, &out_len, &d, &consumed);
	assert_true(d.done);
	assert_true(d.bare_lf);
	decode_all("a\r.\r\nb\r\n.\r\n", 3, out, &out_len, &d, &consumed);
	assert_true(d.bare_cr);
	assert_true(d.done);
	decode_all("x\r\n.\rz\r\n.\r\n", 2, out, &out_len, &d, &consumed);
	assert_true(d.bare_cr);
	/* empty message */
	decode_all(".\r\n", 1, out, &out_len, &d, &consumed);
	assert_true(d.done);
	assert_int_equal(out_len, 0);
	/* not the end yet */
	decode_all("abc\r\n.\r", 1, out, &out_len, &d, &consumed);
	assert_false(d.done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verbs),
		cmocka_unit_test(test_verb_errors),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_mail_errors),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_base64_and_plain),
		cmocka_unit_test(test_data_decoder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
