/* Unit tests for the queue's SMTP client reply parser
 * (mailcore/smtpc_reply.c): single and multi-line replies, split input,
 * enhanced status codes, EHLO keywords, and what must be refused; and the
 * DNS MX answer parser (mailcore/queue_mx.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mailcore/queue.h"
#include "mailcore/smtpc.h"

static int feed_all(const char *text, struct smtpc_reply *out, size_t *used_r)
{
	struct smtpc_reply_parser p;
	bool complete = false;
	const char *why = NULL;
	ssize_t n;

	smtpc_reply_init(&p);
	n = smtpc_reply_feed(&p, (const uint8_t *)text, strlen(text), out, &complete, &why);
	if (used_r != NULL)
		*used_r = n < 0 ? 0 : (size_t)n;
	if (n < 0)
		return -1;
	return complete ? 1 : 0;
}

static void test_single_line(void **state)
{
	struct smtpc_reply r;
	size_t used;

	(void)state;
	assert_int_equal(feed_all("250 2.1.5 Ok\r\n354 next", &r, &used), 1);
	assert_int_equal(used, 14); /* stops after the reply */
	assert_int_equal(r.code, 250);
	assert_string_equal(r.status, "2.1.5");
	assert_string_equal(r.text, "2.1.5 Ok");
	assert_int_equal(feed_all("220\r\n", &r, NULL), 1);
	assert_int_equal(r.code, 220);
	assert_string_equal(r.status, "");
	/* a status of the wrong class is not taken */
	assert_int_equal(feed_all("550 2.0.0 odd\r\n", &r, NULL), 1);
	assert_string_equal(r.status, "");
	assert_int_equal(feed_all("451 4.7.650 greylisted\n", &r, NULL), 1);
	assert_string_equal(r.status, "4.7.650");
}

static void test_multi_line_split(void **state)
{
	static const char ehlo[] = "250-mx.example.net hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
				   "250-starttls\r\n250 ENHANCEDSTATUSCODES\r\n";
	struct smtpc_reply_parser p;
	struct smtpc_reply r;
	bool complete = false;
	const char *why;
	uint64_t size;
	unsigned ext;

	(void)state;
	smtpc_reply_init(&p);
	/* byte by byte: nothing complete until the last line ends */
	for (size_t i = 0; i < sizeof(ehlo) - 1; i++) {
		assert_int_equal(smtpc_reply_feed(&p, (const uint8_t *)ehlo + i, 1, &r, &complete, &why), 1);
		assert_int_equal(complete, i == sizeof(ehlo) - 2);
	}
	assert_int_equal(r.n_lines, 5);
	ext = smtpc_ehlo_extensions(&r, &size);
	assert_true(ext & SMTPC_EXT_PIPELINING);
	assert_true(ext & SMTPC_EXT_STARTTLS);
	assert_true(ext & SMTPC_EXT_SIZE);
	assert_true(ext & SMTPC_EXT_ENHANCEDSTATUSCODES);
	assert_false(ext & SMTPC_EXT_8BITMIME);
	assert_int_equal(size, 1000);
	/* the greeting line is not a keyword */
	assert_int_equal(feed_all("250-PIPELINING\r\n250 HELP\r\n", &r, NULL), 1);
	assert_false(smtpc_ehlo_extensions(&r, NULL) & SMTPC_EXT_PIPELINING);
}

static void test_refused(void **state)
{
	struct smtpc_reply r;
	char longline[1200];

	(void)state;
	assert_int_equal(feed_all("25O ok\r\n", &r, NULL), -1);
	assert_int_equal(feed_all("650 ok\r\n", &r, NULL), -1);
	assert_int_equal(feed_all("260 ok\r\n", &r, NULL), -1);
	assert_int_equal(feed_all("250_ok\r\n", &r, NULL), -1);
	assert_int_equal(feed_all("250-a\r\n251 b\r\n", &r, NULL), -1);
	assert_int_equal(feed_all("HTTP/1.1 400\r\n", &r, NULL), -1);
	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "250 ", 4);
	longline[sizeof(longline) - 1] = '\0';
	assert_int_equal(feed_all(longline, &r, NULL), -1);
	/* too many lines */
	{
		char many[SMTPC_REPLY_LINES_MAX * 8 + 64];
		size_t o = 0;

		for (int i = 0; i <= SMTPC_REPLY_LINES_MAX; i++)
			o += (size_t)snprintf(many + o, sizeof(many) - o, "250-x\r\n");
		snprintf(many + o, sizeof(many) - o, "250 x\r\n");
		assert_int_equal(feed_all(many, &r, NULL), -1);
	}
	/* control bytes in the text are replaced */
	assert_int_equal(feed_all("250 a\x01\x7f b\r\n", &r, NULL), 1);
	assert_string_equal(r.text, "a?? b");
}

/* A DNS answer for example.com MX: 20 mx2.example.com, 10 mx1.example.com */
static void test_mx_parse(void **state)
{
	static const unsigned char ans[] = {
		0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0,
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 15, 0, 1,
		0xc0, 12, 0, 15, 0, 1, 0, 0, 1, 0, 0, 8, 0, 20, 3, 'm', 'x', '2', 0xc0, 12,
		0xc0, 12, 0, 15, 0, 1, 0, 0, 1, 0, 0, 8, 0, 10, 3, 'm', 'x', '1', 0xc0, 12,
	};
	static const unsigned char null_mx[] = {
		0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 15, 0, 1,
		0xc0, 12, 0, 15, 0, 1, 0, 0, 1, 0, 0, 3, 0, 0, 0,
	};
	char hosts[4][256];

	(void)state;
	assert_int_equal(queue_mx_parse(ans, sizeof(ans), hosts, 4), 2);
	assert_string_equal(hosts[0], "mx1.example.com");
	assert_string_equal(hosts[1], "mx2.example.com");
	assert_int_equal(queue_mx_parse(null_mx, sizeof(null_mx), hosts, 4), -2);
	assert_int_equal(queue_mx_parse(ans, sizeof(ans) - 3, hosts, 4), -1);
	assert_int_equal(queue_mx_parse(ans, 5, hosts, 4), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_line),
		cmocka_unit_test(test_multi_line_split),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_mx_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
