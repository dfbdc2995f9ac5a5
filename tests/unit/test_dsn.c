/* Unit tests for the queue's pure parts (mailcore/queue_dsn.c,
 * queue_spool.c): the RFC 3464 DSN builder, the spool envelope and state
 * parsers, the backoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/queue.h"

static void test_dsn_structure(void **state)
{
	static const char headers[] = "Received: from x\r\nSubject: hello\r\n--evil-boundary\r\n\r\n";
	struct queue_dsn_rcpt rcpts[2] = {
		{"bob@remote.example", "5.1.1", "550 5.1.1 No such user\r\nInjected: yes", "mx.remote.example"},
		{"carol@remote.example", "bogus", "", ""},
	};
	struct queue_dsn dsn = {
		.reporting_mta = "mx.example.com",
		.sender = "alice@example.com",
		.envelope_id = "1700000000.M1P2Q3R4.mx.example.com,S=10",
		.arrival = 1700000000,
		.now = 1700000100,
		.rcpts = rcpts,
		.n_rcpts = 2,
		.orig_headers = headers,
		.orig_headers_len = sizeof(headers) - 1,
		.boundary = "B",
	};
	size_t len;
	char *m = queue_dsn_build(&dsn, &len);

	(void)state;
	assert_int_equal(strlen(m), len);
	assert_non_null(strstr(m, "To: <alice@example.com>\r\n"));
	assert_non_null(strstr(m, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
				  "\tboundary=\"B\"\r\n"));
	assert_non_null(strstr(m, "--B\r\nContent-Description: Delivery report\r\n"
				  "Content-Type: message/delivery-status\r\n\r\n"
				  "Reporting-MTA: dns; mx.example.com\r\n"));
	assert_non_null(strstr(m, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
	assert_non_null(strstr(m, "\r\n\r\nFinal-Recipient: rfc822; bob@remote.example\r\n"
				  "Original-Recipient: rfc822; bob@remote.example\r\n"
				  "Action: failed\r\nStatus: 5.1.1\r\n"
				  "Remote-MTA: dns; mx.remote.example\r\n"));
	/* a CR/LF from the remote reply cannot start a field of its own */
	assert_non_null(strstr(m, "Diagnostic-Code: smtp; 550 5.1.1 No such user  Injected: yes\r\n"));
	assert_null(strstr(m, "\r\nInjected: yes"));
	/* a status that is not class.subject.detail becomes 5.0.0 */
	assert_non_null(strstr(m, "Final-Recipient: rfc822; carol@remote.example\r\n"
				  "Original-Recipient: rfc822; carol@remote.example\r\n"
				  "Action: failed\r\nStatus: 5.0.0\r\n"));
	/* returned headers, with a boundary-like line defused */
	assert_non_null(strstr(m, "Content-Type: text/rfc822-headers\r\n\r\nReceived: from x\r\n"
				  "Subject: hello\r\n --evil-boundary\r\n"));
	assert_true(len > 8 && strcmp(m + len - 7, "--B--\r\n") == 0);
	assert_non_null(strstr(m, "Auto-Submitted: auto-replied\r\n"));
	free(m);
}

static void test_dsn_default_boundary_and_no_headers(void **state)
{
	struct queue_dsn_rcpt r = {"x@y.example", "4.4.7", "4.4.7 delivery time expired", ""};
	struct queue_dsn dsn = {
		.reporting_mta = "mx.example.com", .sender = "a@example.com",
		.envelope_id = "id\"<x>", .rcpts = &r, .n_rcpts = 1,
	};
	size_t len;
	char *m = queue_dsn_build(&dsn, &len);

	(void)state;
	assert_non_null(strstr(m, "boundary=\"id__x_/mx.example.com\""));
	assert_non_null(strstr(m, "Status: 4.4.7\r\n"));
	assert_null(strstr(m, "Remote-MTA"));
	free(m);
}

static void test_envelope_parse(void **state)
{
	static const char ok[] = "X-Sealpost-Queue: 1\r\nX-Sealpost-From: <>\r\n"
				 "X-Sealpost-To: <a@b.example>\r\nX-Sealpost-To: <c@d.example>\r\n\r\nBody";
	struct queue_envelope env;
	const char *why = NULL;

	(void)state;
	assert_int_equal(queue_envelope_parse(ok, sizeof(ok) - 1, &env, &why), 0);
	assert_string_equal(env.sender, "");
	assert_int_equal(env.n_rcpts, 2);
	assert_string_equal(env.rcpts[1], "c@d.example");
	assert_int_equal(env.body_offset, sizeof(ok) - 1 - 4);
	queue_envelope_clear(&env);
	/* incomplete: more bytes wanted */
	assert_int_equal(queue_envelope_parse(ok, 30, &env, &why), 1);
	/* not ours, bare LF, no recipient, odd address */
	assert_int_equal(queue_envelope_parse("Subject: x\r\n\r\n", 14, &env, &why), -1);
	assert_int_equal(queue_envelope_parse("X-Sealpost-Queue: 1\n\r\n", 22, &env, &why), -1);
	{
		static const char none[] = "X-Sealpost-Queue: 1\r\nX-Sealpost-From: <a@b>\r\n\r\n";
		static const char odd[] = "X-Sealpost-Queue: 1\r\nX-Sealpost-From: <a@b>\r\n"
					  "X-Sealpost-To: <a b@c>\r\n\r\n";

		assert_int_equal(queue_envelope_parse(none, sizeof(none) - 1, &env, &why), -1);
		assert_int_equal(queue_envelope_parse(odd, sizeof(odd) - 1, &env, &why), -1);
	}
}

static void test_state_roundtrip(void **state)
{
	struct queue_rcpt_state r[3] = {
		{QUEUE_RCPT_DONE, 250, ""},
		{QUEUE_RCPT_PENDING, 450, "4.3.0 try later"},
		{QUEUE_RCPT_BOUNCED, 550, "5.1.1 no such user"},
	};
	struct queue_state st = {.first_seen = 1700000000, .next_attempt = 1700000300,
				 .attempts = 2, .rcpts = r, .n_rcpts = 3};
	struct queue_state back;
	const char *why = NULL;
	size_t len;
	char *text;

	(void)state;
	snprintf(st.last_error, sizeof(st.last_error), "4.3.0 try later");
	text = queue_state_format(&st, &len);
	assert_int_equal(queue_state_parse(text, len, 3, &back, &why), 0);
	assert_int_equal(back.first_seen, 1700000000);
	assert_int_equal(back.next_attempt, 1700000300);
	assert_int_equal(back.attempts, 2);
	assert_string_equal(back.last_error, "4.3.0 try later");
	assert_int_equal(back.rcpts[0].status, QUEUE_RCPT_DONE);
	assert_int_equal(back.rcpts[1].code, 450);
	assert_string_equal(back.rcpts[2].error, "5.1.1 no such user");
	queue_state_clear(&back);
	/* an index beyond the envelope, an unknown status, garbage */
	assert_int_equal(queue_state_parse(text, len, 2, &back, &why), -1);
	assert_int_equal(queue_state_parse("sealpost-queue-state 1\nrcpt 0 X 1 x\n", 36, 1, &back, &why), -1);
	assert_int_equal(queue_state_parse("hello\n", 6, 1, &back, &why), -1);
	free(text);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(queue_backoff_ms(1, 300000, 14400000), 300000);
	assert_int_equal(queue_backoff_ms(2, 300000, 14400000), 600000);
	assert_int_equal(queue_backoff_ms(4, 300000, 14400000), 2400000);
	assert_int_equal(queue_backoff_ms(50, 300000, 14400000), 14400000);
	assert_int_equal(queue_backoff_ms(1000000, 1000, 2000), 2000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dsn_structure),
		cmocka_unit_test(test_dsn_default_boundary_and_no_headers),
		cmocka_unit_test(test_envelope_parse),
		cmocka_unit_test(test_state_roundtrip),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
