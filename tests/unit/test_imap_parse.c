/* Unit tests for the IMAP framer and parser (mailcore/imap_parse.c):
 * literals {n} and {n+} (RFC 7888), line and literal limits, tags, atoms,
 * quoted strings, lists, BODY[...] sections, sequence sets and dates; and
 * the MIME structure parser (mailcore/mime_parse.c, mime_header.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mailcore/imap.h"
#include "mailcore/mime.h"

static enum imap_frame_result frame(struct imap_framer *f, const char *buf, size_t *len,
				    size_t *consumed, uint64_t *lit, bool *nonsync)
{
	return imap_frame(f, (const uint8_t *)buf, strlen(buf), 1000000, len, consumed, lit, nonsync);
}

static void test_framer(void **state)
{
	struct imap_framer f;
	size_t len, consumed;
	uint64_t lit;
	bool ns;

	(void)state;
	imap_framer_reset(&f);
	assert_int_equal(frame(&f, "a NOOP", &len, &consumed, &lit, &ns), IMAP_FRAME_NEED_MORE);
	assert_int_equal(frame(&f, "a NOOP\r\nb NOOP\r\n", &len, &consumed, &lit, &ns),
			 IMAP_FRAME_COMMAND);
	assert_int_equal(len, 6);
	assert_int_equal(consumed, 8);

	/* synchronizing literal: "+" wanted, then the rest */
	imap_framer_reset(&f);
	assert_int_equal(frame(&f, "a LOGIN {5}\r\n", &len, &consumed, &lit, &ns),
			 IMAP_FRAME_LITERAL_SYNC);
	assert_int_equal(lit, 5);
	assert_int_equal(frame(&f, "a LOGIN {5}\r\nali", &len, &consumed, &lit, &ns),
			 IMAP_FRAME_NEED_MORE);
	/* a CRLF inside the literal is data, not the end */
	assert_int_equal(frame(&f, "a LOGIN {5}\r\na\r\nce pw\r\n", &len, &consumed, &lit, &ns),
			 IMAP_FRAME_COMMAND);
	assert_int_equal(len, strlen("a LOGIN {5}\r\na\r\nce pw"));

	/* LITERAL+: no continuation */
	imap_framer_reset(&f);
	assert_int_equal(frame(&f, "a LOGIN {5+}\r\nalice {2+}\r\npw\r\n", &len, &consumed, &lit, &ns),
			 IMAP_FRAME_COMMAND);
	assert_int_equal(consumed, strlen("a LOGIN {5+}\r\nalice {2+}\r\npw\r\n"));

	/* only APPEND may send a big literal */
	imap_framer_reset(&f);
	assert_int_equal(frame(&f, "a LOGIN {70000}\r\n", &len, &consumed, &lit, &ns),
			 IMAP_FRAME_LITERAL_TOO_BIG);
	assert_false(ns);
	imap_framer_reset(&f);
	assert_int_equal(frame(&f, "a append INBOX {70000}\r\n", &len, &consumed, &lit, &ns),
			 IMAP_FRAME_LITERAL_SYNC);
	imap_framer_reset(&f);
	assert_int_equal(frame(&f, "a APPEND INBOX {2000000+}\r\n", &len, &consumed, &lit, &ns),
			 IMAP_FRAME_LITERAL_TOO_BIG);
	assert_true(ns);

	/* line limit */
	{
		char *big = malloc(IMAP_LINE_MAX + 10);

		memset(big, 'a', IMAP_LINE_MAX + 5);
		big[IMAP_LINE_MAX + 5] = '\0';
		imap_framer_reset(&f);
		assert_int_equal(frame(&f, big, &len, &consumed, &lit, &ns), IMAP_FRAME_LINE_TOO_LONG);
		free(big);
	}
	/* "{" without a number is not a literal */
	imap_framer_reset(&f);
	assert_int_equal(frame(&f, "a X {}\r\n", &len, &consumed, &lit, &ns), IMAP_FRAME_COMMAND);
}

/* Many literals in one command: bounded as a whole (IMAP_COMMAND_MAX), so
 * a command that never ends cannot grow the input buffer without end. */
static void test_framer_command_bound(void **state)
{
	const char seg[] = "x {60000+}\r\n";
	size_t each = strlen(seg) + 60000, n = IMAP_COMMAND_MAX / each + 2, off = 0;
	char *buf = malloc(n * each + 16);
	struct imap_framer f;
	enum imap_frame_result r = IMAP_FRAME_NEED_MORE;
	size_t len, consumed;
	uint64_t lit;
	bool ns;

	(void)state;
	off += (size_t)sprintf(buf, "a X ");
	for (size_t i = 0; i < n; i++) {
		memcpy(buf + off, seg, strlen(seg));
		off += strlen(seg);
		memset(buf + off, 'y', 60000);
		off += 60000;
	}
	imap_framer_reset(&f);
	r = imap_frame(&f, (const uint8_t *)buf, off, 1000000, &len, &consumed, &lit, &ns);
	assert_int_equal(r, IMAP_FRAME_LINE_TOO_LONG);
	/* one literal short of the bound: still framing */
	imap_framer_reset(&f);
	r = imap_frame(&f, (const uint8_t *)buf, each * 3, 1000000, &len, &consumed, &lit, &ns);
	assert_int_equal(r, IMAP_FRAME_NEED_MORE);
	free(buf);
}

static int parse(const char *text, struct imap_cmd *cmd, char *buf, const char **err)
{
	strcpy(buf, text);
	return imap_parse_command((uint8_t *)buf, strlen(buf), cmd, err);
}

static void test_parse(void **state)
{
	struct imap_cmd *cmd = malloc(sizeof(*cmd));
	char buf[512], s[128];
	const char *err;
	const struct imap_arg *a, *c;

	(void)state;
	assert_int_equal(parse("a001 login alice \"p\\\"w\"", cmd, buf, &err), 0);
	assert_int_equal(cmd->tag_len, 4);
	assert_string_equal(cmd->name, "LOGIN");
	assert_int_equal(cmd->n_args, 2);
	assert_int_equal(imap_arg_string(imap_cmd_arg(cmd, 1), s, sizeof(s)), 0);
	assert_string_equal(s, "p\"w");

	assert_int_equal(parse("t UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)",
			       cmd, buf, &err), 0);
	assert_true(cmd->uid);
	assert_string_equal(cmd->name, "FETCH");
	a = imap_cmd_arg(cmd, 1);
	assert_int_equal(a->type, IMAP_ARG_LIST);
	c = imap_arg_child(cmd, a);
	assert_true(imap_arg_is(c, "FLAGS"));
	c = imap_arg_next(cmd, c);
	assert_int_equal(c->len, strlen("BODY.PEEK[HEADER.FIELDS (From To)]<0.100>"));

	assert_int_equal(parse("x APPEND INBOX (\\Seen) {5}\r\nhello", cmd, buf, &err), 0);
	a = imap_cmd_arg(cmd, 2);
	assert_int_equal(a->type, IMAP_ARG_LITERAL);
	assert_int_equal(a->len, 5);
	assert_memory_equal(a->s, "hello", 5);

	assert_int_equal(parse("x LIST \"\" *", cmd, buf, &err), 0);
	assert_int_equal(parse("x LIST \"\" %", cmd, buf, &err), 0);
	assert_int_equal(parse("x STATUS INBOX ()", cmd, buf, &err), 0);
	assert_int_equal(imap_cmd_arg(cmd, 1)->len, 0);
	assert_int_equal(parse("x NOOP", cmd, buf, &err), 0);
	assert_int_equal(cmd->n_args, 0);

	/* errors */
	static const char *const bad[] = {
		"",             " NOOP",         "+tag NOOP",       "a",        "a  NOOP",
		"a NOOP ",      "a FETCH 1 (FLAGS", "a LOGIN \"x",  "a X \"a\rb\"", "a X {3}\r\nab",
		"a X {2}\nab",  "a UID",         "a X BODY[",       "a X \"\\q\"", "a X ((((((((((((((((((x))))))))))))))))))",
		"a X (a)b",     "a X {3}\r\na\0b",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t l = strlen(bad[i]);

		memcpy(buf, bad[i], l + 1);
		if (i == sizeof(bad) / sizeof(bad[0]) - 1)
			l = 13; /* with the NUL inside */
		if (imap_parse_command((uint8_t *)buf, l, cmd, &err) == 0)
			fail_msg("parsed: %s", bad[i]);
	}
	/* the tag survives for the BAD reply */
	assert_int_equal(parse("tag7 FETCH 1 (FLAGS", cmd, buf, &err), -1);
	assert_int_equal(cmd->tag_len, 4);
	free(cmd);
}

static void test_node_limit(void **state)
{
	struct imap_cmd *cmd = malloc(sizeof(*cmd));
	size_t cap = 8 + 2 * (IMAP_MAX_NODES + 1), n;
	char *buf = malloc(cap);
	const char *err;

	(void)state;
	n = (size_t)sprintf(buf, "a X");
	for (int i = 0; i < IMAP_MAX_NODES + 1; i++)
		n += (size_t)sprintf(buf + n, " x");
	assert_int_equal(imap_parse_command((uint8_t *)buf, n, cmd, &err), -1);
	free(buf);
	free(cmd);
}

static void test_seqset_and_dates(void **state)
{
	struct imap_seqset *set = malloc(sizeof(*set));
	time_t t;
	char buf[64];

	(void)state;
	assert_int_equal(imap_parse_seqset("1:3,5,7:*", 9, set), 0);
	assert_true(imap_seqset_contains(set, 2, 10));
	assert_false(imap_seqset_contains(set, 4, 10));
	assert_true(imap_seqset_contains(set, 10, 10));
	assert_int_equal(imap_parse_seqset("*:4", 3, set), 0);
	assert_true(imap_seqset_contains(set, 5, 6));
	assert_false(imap_seqset_contains(set, 3, 6));
	assert_int_equal(imap_parse_seqset("0", 1, set), -1);
	assert_int_equal(imap_parse_seqset("1,", 2, set), -1);
	assert_int_equal(imap_parse_seqset("1:2:3", 5, set), -1);
	assert_int_equal(imap_parse_seqset("a", 1, set), -1);
	assert_int_equal(imap_parse_seqset("4294967296", 10, set), -1);
	free(set);

	assert_int_equal(imap_parse_date("1-Feb-1994", 10, &t), 0);
	assert_int_equal(t, 760060800);
	assert_int_equal(imap_parse_date("01-feb-1994", 11, &t), 0);
	assert_int_equal(imap_parse_date("1-Foo-1994", 10, &t), -1);
	assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 -0700", 26, &t), 0);
	assert_int_equal(t, 837596665);
	assert_int_equal(imap_parse_datetime(" 7-Jul-1996 02:44:25 +0000", 26, &t), 0);
	imap_format_datetime(837596665, buf, sizeof(buf));
	assert_string_equal(buf, "17-Jul-1996 09:44:25 +0000");
	assert_int_equal(imap_parse_datetime("17-Jul-1996 25:44:25 -0700", 26, &t), -1);
}

static const char mime_msg[] =
	"From: \"Alice A.\" <alice@example.com>\r\n"
	"To: bob@example.org, Team: carol@example.net, dave@example.net;\r\n"
	"Subject: multi\r\n"
	" part\r\n"
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--XX\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"\r\n"
	"hello\r\n"
	"world\r\n"
	"--XX\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"Subject: inner\r\n"
	"Content-Type: multipart/alternative; boundary=YY\r\n"
	"\r\n"
	"--YY\r\n"
	"\r\n"
	"plain\r\n"
	"--YY\r\n"
	"Content-Type: text/html\r\n"
	"\r\n"
	"<p>html</p>\r\n"
	"--YY--\r\n"
	"--XX--\r\n"
	"epilogue\r\n";

static void test_mime(void **state)
{
	struct mime_message *m = malloc(sizeof(*m));
	const uint8_t *msg = (const uint8_t *)mime_msg;
	char v[256];
	struct mime_ctype ct;
	struct mime_addr addrs[8];
	uint32_t p1[] = {1}, p2[] = {2}, p21[] = {2, 1}, p22[] = {2, 2}, p3[] = {3}, p11[] = {1, 1};
	int i;

	(void)state;
	mime_parse(msg, strlen(mime_msg), m);
	assert_true(m->parts[0].multipart);
	i = mime_find_part(m, p1, 1);
	assert_true(i > 0);
	assert_int_equal(m->parts[i].body_len, strlen("hello\r\nworld"));
	assert_memory_equal(msg + m->parts[i].body_start, "hello\r\nworld", m->parts[i].body_len);
	assert_int_equal(m->parts[i].body_lines, 2);
	i = mime_find_part(m, p2, 1);
	assert_true(m->parts[i].rfc822);
	i = mime_find_part(m, p21, 2);
	assert_true(i > 0);
	assert_memory_equal(msg + m->parts[i].body_start, "plain", 5);
	i = mime_find_part(m, p22, 2);
	assert_memory_equal(msg + m->parts[i].body_start, "<p>html</p>", 11);
	assert_int_equal(mime_find_part(m, p3, 1), -1);
	assert_int_equal(mime_find_part(m, p11, 2), -1);

	assert_int_equal(mime_header_get(msg, m->parts[0].hdr_len, "subject", v, sizeof(v)), 10);
	assert_string_equal(v, "multi part");
	assert_int_equal(mime_header_get(msg, m->parts[0].hdr_len, "Cc", v, sizeof(v)), -1);
	mime_header_get(msg, m->parts[0].hdr_len, "Content-Type", v, sizeof(v));
	assert_int_equal(mime_parse_ctype(v, &ct), 0);
	assert_string_equal(ct.type, "multipart");
	assert_string_equal(mime_param_get(ct.params, ct.n_params, "BOUNDARY"), "XX");
	assert_int_equal(mime_parse_ctype("garbage", &ct), -1);
	assert_string_equal(ct.subtype, "plain");

	mime_header_get(msg, m->parts[0].hdr_len, "From", v, sizeof(v));
	assert_int_equal(mime_parse_addresses(v, addrs, 8), 1);
	assert_string_equal(addrs[0].name, "Alice A.");
	assert_string_equal(addrs[0].mailbox, "alice");
	assert_string_equal(addrs[0].host, "example.com");
	mime_header_get(msg, m->parts[0].hdr_len, "To", v, sizeof(v));
	assert_int_equal(mime_parse_addresses(v, addrs, 8), 5);
	assert_string_equal(addrs[0].host, "example.org");
	assert_true(addrs[1].group_start);
	assert_string_equal(addrs[1].mailbox, "Team");
	assert_string_equal(addrs[3].mailbox, "dave");
	assert_true(addrs[4].group_end);

	/* a single part message: part 1 is its body */
	mime_parse((const uint8_t *)"Subject: x\r\n\r\nbody\r\n", 20, m);
	assert_int_equal(m->n, 1);
	assert_int_equal(mime_find_part(m, p1, 1), 0);
	assert_int_equal(m->parts[0].body_len, 6);
	/* no header/body separator: all header */
	mime_parse((const uint8_t *)"Subject: x\r\n", 12, m);
	assert_int_equal(m->parts[0].body_len, 0);
	free(m);
}

static void test_mime_depth_bound(void **state)
{
	struct mime_message *m = malloc(sizeof(*m));
	char *buf = malloc(64 * 100 + 1);
	size_t n = 0;

	(void)state;
	for (int i = 0; i < 60; i++)
		n += (size_t)sprintf(buf + n, "Content-Type: message/rfc822\r\n\r\n");
	n += (size_t)sprintf(buf + n, "Subject: deep\r\n\r\nx\r\n");
	mime_parse((const uint8_t *)buf, n, m);
	assert_true(m->truncated);
	assert_true(m->n <= MIME_MAX_DEPTH + 1);
	free(buf);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_framer),
		cmocka_unit_test(test_framer_command_bound),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_node_limit),
		cmocka_unit_test(test_seqset_and_dates),
		cmocka_unit_test(test_mime),
		cmocka_unit_test(test_mime_depth_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
