/* Unit tests for the SMTP session state machine (mailcore/smtp_session.c),
 * driven with byte strings: replies, pipelining, DATA and dot-stuffing, the
 * bare CR/LF policy, limits, AUTH, channels and relaying, mapping tables,
 * STARTTLS reset, and delivery into a Maildir under a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <crypt.h>
#include <dirent.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "mailcore/mailcore.h"

struct fixture {
	char dir[64];
	char store[128], queue[128], hold[128];
	const char *domains[2];
	struct smtp_env env;
	struct dir_users *users;
	struct dir_aliases *aliases;
	struct mappings *maps;
};

static char out_text[65536];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct crypt_data cd;
	char users[1024];
	const char *hash;
	char *err = NULL;

	memset(&cd, 0, sizeof(cd));
	hash = crypt_r("secret", "$6$saltsalt$", &cd);
	assert_non_null(hash);
	snprintf(users, sizeof(users),
		 "alice@example.com:%s:quota=1m\n"
		 "bob@example.com:%s:\n"
		 "carol@example.com:%s:status=inactive\n"
		 "tiny@example.com:%s:quota=100\n"
		 "postmaster@example.com:*:\n",
		 hash, hash, hash, hash);
	f->users = dir_users_parse("users", users, strlen(users), &err);
	assert_non_null(f->users);
	strcpy(f->dir, "/tmp/test_smtp_session.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	snprintf(f->queue, sizeof(f->queue), "%s/queue", f->dir);
	snprintf(f->hold, sizeof(f->hold), "%s/hold", f->dir);
	f->domains[0] = "example.com";
	f->env = (struct smtp_env){
		.hostname = "mx.example.com",
		.domains = f->domains,
		.n_domains = 1,
		.store_root = f->store,
		.queue_dir = f->queue,
		.hold_dir = f->hold,
		.max_message_size = 1000,
		.max_recipients = 3,
		.holdlimit = 0,
		.max_errors = 10,
		.max_auth_failures = 2,
		.plaintext_min_cipher = 0,
		.starttls = true,
		.command_timeout_ms = 300000,
		.data_timeout_ms = 300000,
		.users = f->users,
	};
	sp_log_set_level(SP_LOG_CRIT); /* keep the test output readable */
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	dir_users_free(&f->users);
	dir_aliases_free(&f->aliases);
	mappings_free(&f->maps);
	free(f);
	return 0;
}

static void use_maps(struct fixture *f, const char *text)
{
	char *err = NULL;

	f->maps = mappings_parse("mappings", text, strlen(text), &err);
	if (f->maps == NULL)
		fail_msg("mappings: %s", err);
	f->env.maps = f->maps;
}

static void set_addr(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static struct smtp_session *start_full(struct fixture *f, enum smtp_listener l, const char *ip,
				       const struct sp_proxy_info *tls)
{
	struct smtp_conn_info ci = {.listener = l, .tls = tls};

	set_addr(&ci.client, ip, 40000);
	set_addr(&ci.local, "192.0.2.25", l == SMTP_LISTEN_SUBMISSION ? 587 : 25);
	return smtp_session_new(&f->env, &ci);
}

/* Takes whatever the session has queued, as a string. */
static const char *take(struct smtp_session *s)
{
	size_t len;
	const uint8_t *p = smtp_session_output(s, &len);

	assert_true(len < sizeof(out_text));
	memcpy(out_text, p, len);
	out_text[len] = '\0';
	smtp_session_output_consumed(s, len);
	return out_text;
}

static const char *io(struct smtp_session *s, const char *in)
{
	size_t len = strlen(in), pos = 0;

	while (pos < len) {
		size_t n = smtp_session_feed(s, in + pos, len - pos);

		assert_true(n > 0);
		pos += n;
	}
	return take(s);
}

static struct smtp_session *start(struct fixture *f)
{
	struct smtp_session *s = start_full(f, SMTP_LISTEN_SMTP, "198.51.100.7", NULL);

	assert_string_equal(take(s), "220 mx.example.com ESMTP Sealpost\r\n");
	return s;
}

static struct smtp_session *start_ehlo(struct fixture *f)
{
	struct smtp_session *s = start(f);

	assert_non_null(strstr(io(s, "EHLO client.example\r\n"), "250 HELP\r\n"));
	return s;
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The content of the only file in dir. */
static char *only_file(const char *dir)
{
	static char buf[8192];
	char path[512];
	DIR *d = opendir(dir);
	struct dirent *de;
	FILE *fp;
	size_t n;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL && de->d_name[0] == '.')
		;
	assert_non_null(de);
	snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
	closedir(d);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return buf;
}

static void mailbox_new(const struct fixture *f, const char *local, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/example.com/%s/Maildir/new", f->store, local);
}

/* ------------------------------------------------------------------ tests */

static void test_greeting_and_ehlo(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start(f);

	/* the whole EHLO reply in one piece, last line with a space (RFC 5321 4.2.1) */
	assert_string_equal(io(s, "EHLO client.example\r\n"),
			    "250-mx.example.com greets client.example\r\n"
			    "250-PIPELINING\r\n"
			    "250-SIZE 1000\r\n"
			    "250-8BITMIME\r\n"
			    "250-ENHANCEDSTATUSCODES\r\n"
			    "250-STARTTLS\r\n"
			    "250-AUTH PLAIN LOGIN\r\n"
			    "250 HELP\r\n");
	assert_string_equal(io(s, "HELO client.example\r\n"), "250 mx.example.com\r\n");
	assert_string_equal(io(s, "NOOP\r\n"), "250 2.0.0 Ok\r\n");
	assert_string_equal(io(s, "VRFY alice\r\n"),
			    "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery\r\n");
	assert_string_equal(io(s, "EXPN staff\r\n"), "502 5.5.1 EXPN not available\r\n");
	assert_non_null(strstr(io(s, "HELP\r\n"), "214 2.0.0 Commands:"));
	assert_string_equal(io(s, "BDAT 10 LAST\r\n"), "502 5.5.1 Command not implemented\r\n");
	assert_string_equal(io(s, "QUIT\r\n"), "221 2.0.0 mx.example.com closing connection\r\n");
	assert_int_equal(smtp_session_wants(s), SMTP_WANT_CLOSE);
	smtp_session_free(&s);
}

static void test_delivery_and_dot_stuffing(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);
	char dir[512];
	const char *msg;

	assert_string_equal(io(s, "MAIL FROM:<sender@remote.example>\r\n"),
			    "250 2.1.0 Sender <sender@remote.example> OK\r\n");
	assert_string_equal(io(s, "RCPT TO:<Alice@EXAMPLE.com>\r\n"),
			    "250 2.1.5 Recipient <Alice@EXAMPLE.com> OK\r\n");
	assert_string_equal(io(s, "DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
	/* split in odd places: the decoder is a byte stream */
	assert_string_equal(io(s, "Subject: t\r\n\r\n..dotted\r"), "");
	assert_string_equal(io(s, "\n.\r"), "");
	assert_string_equal(strncmp(io(s, "\n"), "250 2.0.0 Ok: queued as ", 24) == 0 ? "ok" : out_text,
			    "ok");
	mailbox_new(f, "alice", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 1);
	msg = only_file(dir);
	assert_non_null(strstr(msg, "Return-Path: <sender@remote.example>\r\n"));
	assert_non_null(strstr(msg, "Delivered-To: alice@example.com\r\n"));
	assert_non_null(strstr(msg, "Received: from client.example ([198.51.100.7])\r\n"
				    "\tby mx.example.com (Sealpost) with ESMTP id "));
	assert_non_null(strstr(msg, "\tfor <alice@example.com>;"));
	assert_non_null(strstr(msg, "\r\nSubject: t\r\n\r\n.dotted\r\n"));
	assert_int_equal(smtp_session_messages(s), 1);
	/* tmp/ is empty after a delivery */
	snprintf(dir, sizeof(dir), "%s/example.com/alice/Maildir/tmp", f->store);
	assert_int_equal(count_files(dir), 0);
	smtp_session_free(&s);
}

static void test_pipelining_one_batch(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start(f);
	char dir[512];

	/* RFC 2920: a whole batch in, every reply out in order, in one buffer */
	assert_string_equal(io(s, "EHLO c.example\r\nMAIL FROM:<a@remote.example>\r\n"
				  "RCPT TO:<bob@example.com>\r\nRCPT TO:<nobody@example.com>\r\n"
				  "RCPT TO:<alice@example.com>\r\nDATA\r\n") +
				    strlen("250-mx.example.com greets c.example\r\n250-PIPELINING\r\n"
					   "250-SIZE 1000\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
					   "250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n"),
			    "250 2.1.0 Sender <a@remote.example> OK\r\n"
			    "250 2.1.5 Recipient <bob@example.com> OK\r\n"
			    "550 5.1.1 <nobody@example.com>: User unknown\r\n"
			    "250 2.1.5 Recipient <alice@example.com> OK\r\n"
			    "354 End data with <CR><LF>.<CR><LF>\r\n");
	/* message, end, and the next commands in one packet */
	io(s, "hi\r\n.\r\nRSET\r\nQUIT\r\n");
	assert_non_null(strstr(out_text, "250 2.0.0 Ok: queued as "));
	assert_non_null(strstr(out_text, "\r\n250 2.0.0 Ok\r\n221 2.0.0 "));
	mailbox_new(f, "bob", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 1);
	mailbox_new(f, "alice", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 1);
	smtp_session_free(&s);
}

static void test_sequence_errors(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s;

	f->env.max_errors = 50;
	s = start(f);
	assert_string_equal(io(s, "MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Send HELO/EHLO first\r\n");
	assert_string_equal(io(s, "RCPT TO:<alice@example.com>\r\n"),
			    "503 5.5.1 Need MAIL before RCPT\r\n");
	assert_string_equal(io(s, "DATA\r\n"), "503 5.5.1 Need MAIL and RCPT before DATA\r\n");
	assert_string_equal(io(s, "AUTH PLAIN\r\n"), "503 5.5.1 Send EHLO first\r\n");
	assert_string_equal(io(s, "STARTTLS\r\n"), "503 5.5.1 Send EHLO first\r\n");
	io(s, "EHLO c.example\r\n");
	assert_string_equal(io(s, "RCPT TO:<alice@example.com>\r\n"),
			    "503 5.5.1 Need MAIL before RCPT\r\n");
	io(s, "MAIL FROM:<a@b.example>\r\n");
	assert_string_equal(io(s, "MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Nested MAIL command\r\n");
	/* RFC 5321 3.3: DATA with no valid recipient */
	assert_string_equal(io(s, "DATA\r\n"), "554 5.5.1 No valid recipients\r\n");
	assert_string_equal(io(s, "STARTTLS\r\n"), "503 5.5.1 Mail transaction in progress\r\n");
	assert_string_equal(io(s, "AUTH PLAIN\r\n"),
			    "503 5.5.1 AUTH not permitted during a mail transaction\r\n");
	/* EHLO again ends the transaction (RFC 5321 4.1.4) */
	io(s, "EHLO c.example\r\n");
	assert_string_equal(io(s, "RCPT TO:<alice@example.com>\r\n"),
			    "503 5.5.1 Need MAIL before RCPT\r\n");
	/* HELO mode: no ESMTP parameters */
	io(s, "HELO c.example\r\n");
	assert_string_equal(io(s, "MAIL FROM:<a@b.example> SIZE=10\r\n"),
			    "555 5.5.4 MAIL parameters need EHLO\r\n");
	smtp_session_free(&s);
}

static void test_syntax_and_line_errors(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);
	char *big = malloc(20001);

	assert_string_equal(io(s, "WHAT\r\n"), "500 5.5.1 Command unrecognized\r\n");
	/* RFC 5321 2.3.8: bare LF does not end a command line */
	assert_string_equal(io(s, "NOOP\n"), "500 5.5.2 Bare LF received; lines must end with CRLF\r\n");
	assert_string_equal(io(s, "MAIL FROM:<a\rb@c.example>\r\n"),
			    "500 5.5.2 Syntax error: control character in command\r\n");
	/* an over-long line: one 500, the rest of it skipped, then back in step */
	memset(big, 'x', 20000);
	big[20000] = '\0';
	memcpy(big, "NOOP ", 5);
	assert_string_equal(io(s, big), "500 5.5.6 Line too long\r\n");
	assert_string_equal(io(s, "yyy\r\nNOOP\r\n"), "250 2.0.0 Ok\r\n");
	memset(big, 'x', 600);
	big[600] = '\0';
	memcpy(big, "NOOP ", 5);
	strcat(big, "\r\n");
	assert_string_equal(io(s, big), "500 5.5.6 Line too long\r\n");
	free(big);
	smtp_session_free(&s);
}

static void test_size_and_recipient_limits(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);
	char body[1500];
	char dir[512];

	/* RFC 1870 6.1: refused early at MAIL */
	assert_string_equal(io(s, "MAIL FROM:<a@b.example> SIZE=1001\r\n"),
			    "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
	assert_string_equal(io(s, "MAIL FROM:<a@b.example> SIZE=1000\r\n"),
			    "250 2.1.0 Sender <a@b.example> OK\r\n");
	/* RFC 5321 4.5.3.1.10: 452 past the limit (3 here) */
	io(s, "RCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
	      "RCPT TO:<postmaster@example.com>\r\n");
	assert_string_equal(io(s, "RCPT TO:<alice@example.com>\r\n"), "452 4.5.3 Too many recipients\r\n");
	io(s, "DATA\r\n");
	/* more than 1000 octets of text: read to the end, then 552 */
	memset(body, 'a', sizeof(body));
	for (size_t i = 70; i < sizeof(body); i += 72) {
		body[i] = '\r';
		body[i + 1] = '\n';
	}
	body[sizeof(body) - 6] = '\r';
	memcpy(body + sizeof(body) - 5, "\n.\r\n", 5);
	assert_string_equal(io(s, body), "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
	mailbox_new(f, "alice", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 0);
	/* the session goes on */
	assert_string_equal(io(s, "MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Sender <a@b.example> OK\r\n");
	smtp_session_free(&s);
}

static void test_bare_lf_in_data_refused(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);
	char dir[512];

	io(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n");
	/* the smuggling shape: <LF>.<CR><LF> then commands; all of it is text */
	assert_string_equal(io(s, "one\n.\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<bob@example.com>\r\n"
				  "DATA\r\nsmuggled\r\n.\r\n"),
			    "550 5.6.0 Message refused: bare CR or LF in the text; lines must end with CRLF\r\n");
	mailbox_new(f, "alice", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 0);
	mailbox_new(f, "bob", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 0);
	/* bare CR likewise */
	io(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n");
	assert_string_equal(io(s, "x\ry\r\n.\r\n"),
			    "550 5.6.0 Message refused: bare CR or LF in the text; lines must end with CRLF\r\n");
	assert_string_equal(io(s, "NOOP\r\n"), "250 2.0.0 Ok\r\n");
	smtp_session_free(&s);
}

static void test_recipients(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);

	io(s, "MAIL FROM:<>\r\n");
	assert_string_equal(io(s, "RCPT TO:<nobody@example.com>\r\n"),
			    "550 5.1.1 <nobody@example.com>: User unknown\r\n");
	assert_string_equal(io(s, "RCPT TO:<carol@example.com>\r\n"),
			    "450 4.2.1 <carol@example.com>: Mailbox temporarily unavailable\r\n");
	assert_string_equal(io(s, "RCPT TO:<Postmaster>\r\n"), "250 2.1.5 Recipient <postmaster@example.com> OK\r\n");
	/* anti-relay: tcp_local may not send to other domains */
	assert_string_equal(io(s, "RCPT TO:<someone@elsewhere.example>\r\n"),
			    "550 5.7.1 <someone@elsewhere.example>: Relaying denied\r\n");
	assert_string_equal(io(s, "RCPT TO:<x@[192.0.2.1]>\r\n"),
			    "550 5.7.1 <x@[192.0.2.1]>: Relaying denied\r\n");
	assert_int_equal(smtp_session_channel(s), SMTP_CH_TCP_LOCAL);
	smtp_session_free(&s);
}

static void test_quota(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);
	char dir[512];

	/* the declared size already does not fit: refused at RCPT */
	io(s, "MAIL FROM:<a@b.example> SIZE=200\r\n");
	assert_string_equal(io(s, "RCPT TO:<tiny@example.com>\r\n"),
			    "452 4.2.2 <tiny@example.com>: Mailbox full\r\n");
	io(s, "RSET\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<tiny@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n");
	/* at the end of DATA: all or nothing, bob gets nothing either */
	assert_string_equal(io(s, "Subject: a message too big for a 100-byte quota\r\n\r\nbody\r\n.\r\n"),
			    "452 4.2.2 Mailbox full\r\n");
	mailbox_new(f, "bob", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 0);
	smtp_session_free(&s);
}

static void test_intranet_relay_to_queue(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s;
	const char *q;
	char dir[256];

	use_maps(f, "INTERNAL_IP\n"
		    "  $(198.51.100.0/24)  $Y\n"
		    "  *                   $N\n");
	s = start_ehlo(f);
	assert_int_equal(smtp_session_channel(s), SMTP_CH_TCP_INTRANET);
	io(s, "MAIL FROM:<alice@example.com>\r\n");
	assert_string_equal(io(s, "RCPT TO:<friend@elsewhere.example>\r\n"),
			    "250 2.1.5 Recipient <friend@elsewhere.example> OK\r\n");
	io(s, "RCPT TO:<bob@example.com>\r\nDATA\r\n");
	assert_non_null(strstr(io(s, "Subject: out\r\n\r\nhi\r\n.\r\n"), "250 2.0.0 Ok: queued as"));
	snprintf(dir, sizeof(dir), "%s/new", f->queue);
	q = only_file(dir);
	{
		static const char head[] = "X-Sealpost-Queue: 1\r\nX-Sealpost-From: <alice@example.com>\r\n"
					   "X-Sealpost-To: <friend@elsewhere.example>\r\n\r\nReceived: ";

		assert_memory_equal(q, head, sizeof(head) - 1);
	}
	mailbox_new(f, "bob", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 1);
	smtp_session_free(&s);
	/* another client address: tcp_local */
	s = start_full(f, SMTP_LISTEN_SMTP, "203.0.113.9", NULL);
	assert_int_equal(smtp_session_channel(s), SMTP_CH_TCP_LOCAL);
	smtp_session_free(&s);
}

static void test_holdlimit(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s;
	char dir[512];

	f->env.holdlimit = 1;
	s = start_ehlo(f);
	io(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n");
	assert_non_null(strstr(io(s, "x\r\n.\r\n"), "250 2.0.0 Ok"));
	snprintf(dir, sizeof(dir), "%s/new", f->hold);
	assert_int_equal(count_files(dir), 1);
	assert_non_null(strstr(only_file(dir), "X-Sealpost-To: <alice@example.com>\r\n"
					       "X-Sealpost-To: <bob@example.com>\r\n"));
	mailbox_new(f, "alice", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 0);
	smtp_session_free(&s);
}

static void test_auth_plain_login(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);
	char dir[512];

	/* \0alice@example.com\0secret */
	assert_string_equal(io(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\r\n"),
			    "235 2.7.0 Authentication successful\r\n");
	assert_string_equal(smtp_session_auth_user(s), "alice@example.com");
	assert_int_equal(smtp_session_channel(s), SMTP_CH_TCP_AUTH);
	assert_string_equal(io(s, "AUTH PLAIN\r\n"), "503 5.5.1 Already authenticated\r\n");
	/* an authenticated client may relay */
	io(s, "MAIL FROM:<alice@example.com>\r\n");
	assert_string_equal(io(s, "RCPT TO:<x@elsewhere.example>\r\n"),
			    "250 2.1.5 Recipient <x@elsewhere.example> OK\r\n");
	io(s, "RCPT TO:<bob@example.com>\r\nDATA\r\nhi\r\n.\r\n");
	mailbox_new(f, "bob", dir, sizeof(dir));
	assert_non_null(strstr(only_file(dir), "with ESMTPA id "));
	assert_non_null(strstr(only_file(dir), "(authenticated user alice@example.com)"));
	smtp_session_free(&s);

	/* continuation form, and LOGIN */
	s = start_ehlo(f);
	assert_string_equal(io(s, "AUTH PLAIN\r\n"), "334 \r\n");
	assert_string_equal(io(s, "AGJvYkBleGFtcGxlLmNvbQBzZWNyZXQ=\r\n"),
			    "235 2.7.0 Authentication successful\r\n");
	assert_string_equal(smtp_session_auth_user(s), "bob@example.com");
	smtp_session_free(&s);
	s = start_ehlo(f);
	assert_string_equal(io(s, "AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
	assert_string_equal(io(s, "YWxpY2VAZXhhbXBsZS5jb20=\r\n"), "334 UGFzc3dvcmQ6\r\n");
	assert_string_equal(io(s, "c2VjcmV0\r\n"), "235 2.7.0 Authentication successful\r\n");
	smtp_session_free(&s);
}

static void test_auth_failures(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);

	assert_string_equal(io(s, "AUTH CRAM-MD5\r\n"), "504 5.5.4 Unrecognized authentication mechanism\r\n");
	assert_string_equal(io(s, "AUTH EXTERNAL =\r\n"),
			    "504 5.5.4 EXTERNAL needs a verified client certificate of a user\r\n");
	assert_string_equal(io(s, "AUTH PLAIN\r\n*\r\n"), "334 \r\n501 5.7.0 Authentication cancelled\r\n");
	assert_string_equal(io(s, "AUTH PLAIN !!!!\r\n"), "501 5.5.2 Cannot decode base64 response\r\n");
	/* wrong password; then inactive carol with the right one: same answer */
	assert_string_equal(io(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n\r\n"),
			    "535 5.7.8 Authentication credentials invalid\r\n");
	assert_null(smtp_session_auth_user(s));
	/* the second failure reaches max_auth_failures (2): 421 and close */
	assert_string_equal(io(s, "AUTH PLAIN AGNhcm9sQGV4YW1wbGUuY29tAHNlY3JldA==\r\n"),
			    "421 4.7.0 mx.example.com Too many authentication failures\r\n");
	assert_int_equal(smtp_session_wants(s), SMTP_WANT_CLOSE);
	smtp_session_free(&s);
}

static void test_plaintextmincipher(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s;
	struct sp_proxy_info tls;

	f->env.plaintext_min_cipher = 128;
	s = start(f);
	assert_null(strstr(io(s, "EHLO c.example\r\n"), "AUTH"));
	assert_string_equal(io(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\r\n"),
			    "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
	/* after STARTTLS with a 256-bit cipher PLAIN is offered */
	assert_string_equal(io(s, "STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
	memset(&tls, 0, sizeof(tls));
	tls.tls = true;
	strcpy(tls.tls_version, "TLSv1.3");
	strcpy(tls.tls_cipher, "TLS_AES_256_GCM_SHA384");
	smtp_session_tls_ready(s, &tls);
	assert_non_null(strstr(io(s, "EHLO c.example\r\n"), "250-AUTH PLAIN LOGIN\r\n"));
	assert_string_equal(io(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\r\n"),
			    "235 2.7.0 Authentication successful\r\n");
	smtp_session_free(&s);
}

static void test_submission_needs_auth(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_full(f, SMTP_LISTEN_SUBMISSION, "198.51.100.7", NULL);

	take(s);
	io(s, "EHLO c.example\r\n");
	assert_int_equal(smtp_session_channel(s), SMTP_CH_TCP_SUBMIT);
	/* RFC 4954 6 */
	assert_string_equal(io(s, "MAIL FROM:<alice@example.com>\r\n"), "530 5.7.0 Authentication required\r\n");
	io(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\r\n");
	assert_int_equal(smtp_session_channel(s), SMTP_CH_TCP_AUTH);
	assert_string_equal(io(s, "MAIL FROM:<alice@example.com>\r\n"),
			    "250 2.1.0 Sender <alice@example.com> OK\r\n");
	smtp_session_free(&s);
}

static void test_starttls_discards_and_resets(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);
	struct sp_proxy_info tls;
	char dir[512];

	io(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\r\n");
	/* RFC 3207 4.2: commands pipelined after STARTTLS are thrown away */
	assert_string_equal(io(s, "STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n"),
			    "220 2.0.0 Ready to start TLS\r\n");
	assert_int_equal(smtp_session_wants(s), SMTP_WANT_STARTTLS);
	assert_string_equal(io(s, "RCPT TO:<bob@example.com>\r\n"), "");
	memset(&tls, 0, sizeof(tls));
	tls.tls = true;
	strcpy(tls.tls_version, "TLSv1.3");
	strcpy(tls.tls_cipher, "TLS_AES_128_GCM_SHA256");
	smtp_session_tls_ready(s, &tls);
	assert_string_equal(take(s), ""); /* no new greeting */
	/* knowledge from before TLS is gone: EHLO again, AUTH again */
	assert_null(smtp_session_auth_user(s));
	assert_string_equal(io(s, "MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Send HELO/EHLO first\r\n");
	assert_null(strstr(io(s, "EHLO c.example\r\n"), "STARTTLS"));
	assert_string_equal(io(s, "STARTTLS\r\n"), "503 5.5.1 TLS already active\r\n");
	io(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nx\r\n.\r\n");
	mailbox_new(f, "bob", dir, sizeof(dir));
	assert_non_null(strstr(only_file(dir), "with ESMTPS id "));
	assert_non_null(strstr(only_file(dir), "(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)"));
	smtp_session_free(&s);

	f->env.starttls = false;
	s = start_ehlo(f);
	assert_string_equal(io(s, "STARTTLS\r\n"), "502 5.5.1 STARTTLS not available\r\n");
	smtp_session_free(&s);
}

static void test_auth_external(void **state)
{
	struct fixture *f = *state;
	struct sp_proxy_info tls;
	struct smtp_session *s;

	memset(&tls, 0, sizeof(tls));
	tls.tls = true;
	tls.tls_client = SP_PP2_CLIENT_SSL | SP_PP2_CLIENT_CERT_CONN;
	tls.tls_verify = 0;
	strcpy(tls.tls_version, "TLSv1.3");
	strcpy(tls.tls_cipher, "TLS_AES_256_GCM_SHA384");
	strcpy(tls.cert_email, "Alice@Example.com");
	s = start_full(f, SMTP_LISTEN_BACKEND, "198.51.100.7", &tls);
	take(s);
	assert_non_null(strstr(io(s, "EHLO c.example\r\n"), "250-AUTH PLAIN LOGIN EXTERNAL\r\n"));
	assert_string_equal(io(s, "AUTH EXTERNAL =\r\n"), "235 2.7.0 Authentication successful\r\n");
	assert_string_equal(smtp_session_auth_user(s), "alice@example.com");
	smtp_session_free(&s);

	/* self-authzid (curl sends one) is fine; someone else's is not */
	s = start_full(f, SMTP_LISTEN_BACKEND, "198.51.100.7", &tls);
	take(s);
	io(s, "EHLO c.example\r\n");
	assert_string_equal(io(s, "AUTH EXTERNAL Ym9iQGV4YW1wbGUuY29t\r\n"),
			    "535 5.7.8 Authentication credentials invalid\r\n");
	assert_string_equal(io(s, "AUTH EXTERNAL YWxpY2VAZXhhbXBsZS5jb20=\r\n"),
			    "235 2.7.0 Authentication successful\r\n");
	smtp_session_free(&s);

	/* an unverified certificate maps to nobody */
	tls.tls_verify = 1;
	s = start_full(f, SMTP_LISTEN_BACKEND, "198.51.100.7", &tls);
	take(s);
	assert_null(strstr(io(s, "EHLO c.example\r\n"), "EXTERNAL"));
	smtp_session_free(&s);
}

static void test_error_limit_and_timeout(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start(f);
	const char *out;

	for (int i = 0; i < 9; i++)
		assert_string_equal(io(s, "BOGUS\r\n"), "500 5.5.1 Command unrecognized\r\n");
	out = io(s, "BOGUS\r\nNOOP\r\n");
	assert_string_equal(out, "500 5.5.1 Command unrecognized\r\n"
				 "421 4.7.0 mx.example.com Too many errors, closing connection\r\n");
	assert_int_equal(smtp_session_wants(s), SMTP_WANT_CLOSE);
	smtp_session_free(&s);

	s = start(f);
	assert_int_equal(smtp_session_timeout_ms(s), 300000);
	smtp_session_timeout(s);
	assert_string_equal(take(s), "421 4.4.2 mx.example.com Timeout, closing connection\r\n");
	assert_int_equal(smtp_session_wants(s), SMTP_WANT_CLOSE);
	smtp_session_free(&s);

	/* EOF in the middle of DATA: nothing delivered, close */
	s = start_ehlo(f);
	io(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\npartial");
	smtp_session_eof(s);
	assert_int_equal(smtp_session_wants(s), SMTP_WANT_CLOSE);
	smtp_session_free(&s);
}

static void test_port_access_refusal(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s;

	use_maps(f, "PORT_ACCESS\n"
		    "  TCP|*|25|198.51.100.*|*   $NGo$ away\n"
		    "  *                          $Y\n");
	s = start_full(f, SMTP_LISTEN_SMTP, "198.51.100.7", NULL);
	/* RFC 5321 3.1: 554 greeting, then only QUIT */
	assert_string_equal(take(s), "554 mx.example.com Go away\r\n");
	assert_string_equal(io(s, "EHLO c.example\r\n"),
			    "503 5.5.1 Bad sequence of commands: access denied, send QUIT\r\n");
	assert_string_equal(io(s, "QUIT\r\n"), "221 2.0.0 mx.example.com closing connection\r\n");
	smtp_session_free(&s);
	s = start_full(f, SMTP_LISTEN_SMTP, "203.0.113.1", NULL);
	assert_string_equal(take(s), "220 mx.example.com ESMTP Sealpost\r\n");
	smtp_session_free(&s);
}

static void test_from_and_send_access(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s;
	char *err = NULL;
	static const char aliases[] = "staff: alice@example.com, bob@example.com\n"
				      "team: bob@example.com\n";

	f->aliases = dir_aliases_parse("aliases", aliases, strlen(aliases), &err);
	assert_non_null(f->aliases);
	f->env.aliases = f->aliases;
	use_maps(f, "FROM_ACCESS\n"
		    "  *|*@spam.example|*   $X5.7.26|$NNo$ spam$ please\n"
		    "ORIG_SEND_ACCESS\n"
		    "  tcp_local|*|ims-ms|staff@example.com  $NStaff$ is$ internal\n"
		    "SEND_ACCESS\n"
		    "  tcp_local|*|ims-ms|bob@example.com   $N452$ Bob$ is$ away\n"
		    "MAIL_ACCESS\n"
		    "  TCP|*|25|*|*|SMTP/ESMTP|MAIL|tcp_local|*|ims-ms|alice@example.com  $Y\n");
	s = start_ehlo(f);
	/* FROM_ACCESS probe: port-access|app|MAIL|channel|from|auth-user */
	assert_string_equal(io(s, "MAIL FROM:<x@spam.example>\r\n"), "550 5.7.26 No spam please\r\n");
	io(s, "MAIL FROM:<x@ok.example>\r\n");
	/* before expansion: staff is refused by ORIG_SEND_ACCESS */
	assert_string_equal(io(s, "RCPT TO:<staff@example.com>\r\n"), "550 5.7.1 Staff is internal\r\n");
	/* after expansion: team -> bob is refused by SEND_ACCESS, with its own code */
	assert_string_equal(io(s, "RCPT TO:<team@example.com>\r\n"), "452 5.7.1 Bob is away\r\n");
	assert_string_equal(io(s, "RCPT TO:<alice@example.com>\r\n"),
			    "250 2.1.5 Recipient <alice@example.com> OK\r\n");
	smtp_session_free(&s);
}

static void test_alias_delivery(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s;
	char *err = NULL;
	char dir[512];
	static const char aliases[] = "staff: alice@example.com, bob@example.com, out@remote.example\n";

	f->aliases = dir_aliases_parse("aliases", aliases, strlen(aliases), &err);
	assert_non_null(f->aliases);
	f->env.aliases = f->aliases;
	s = start_ehlo(f);
	io(s, "MAIL FROM:<x@ok.example>\r\nRCPT TO:<STAFF@example.com>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n");
	assert_non_null(strstr(io(s, "hi\r\n.\r\n"), "250 2.0.0 Ok"));
	mailbox_new(f, "alice", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 1); /* once, though named twice */
	mailbox_new(f, "bob", dir, sizeof(dir));
	assert_int_equal(count_files(dir), 1);
	snprintf(dir, sizeof(dir), "%s/new", f->queue);
	assert_non_null(strstr(only_file(dir), "X-Sealpost-To: <out@remote.example>\r\n\r\n"));
	smtp_session_free(&s);
}

static void test_backpressure(void **state)
{
	struct fixture *f = *state;
	struct smtp_session *s = start_ehlo(f);
	size_t fed = 0, len;
	static const char noop[] = "NOOP\r\n";

	/* a client that sends and never reads: the session stops taking input */
	while (smtp_session_input_room(s) > 0 && fed < 10 * 1024 * 1024) {
		size_t n = smtp_session_feed(s, noop, sizeof(noop) - 1);

		fed += n;
		if (n < sizeof(noop) - 1)
			break;
	}
	smtp_session_output(s, &len);
	assert_true(len >= SMTP_OUT_HIGH_WATER);
	assert_true(len < SMTP_OUT_HIGH_WATER + 1024);
	assert_int_equal(smtp_session_input_room(s), 0);
	smtp_session_output_consumed(s, len);
	smtp_session_process(s);
	assert_true(smtp_session_input_room(s) > 0 || smtp_session_output(s, &len) != NULL);
	smtp_session_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_greeting_and_ehlo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_and_dot_stuffing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining_one_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_and_line_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_and_recipient_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bare_lf_in_data_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recipients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intranet_relay_to_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holdlimit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_plain_login, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plaintextmincipher, setup, teardown),
		cmocka_unit_test_setup_teardown(test_submission_needs_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_starttls_discards_and_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_external, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_limit_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_access_refusal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_from_and_send_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
