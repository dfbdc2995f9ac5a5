/* Unit tests for POP3 (mailcore/pop_parse.c, pop_session.c), driven with
 * byte strings: the parser's verbs and limits; then USER/PASS, AUTH PLAIN
 * and EXTERNAL (the reference's transcript, admin proxy), STLS, CAPA,
 * STAT/LIST/UIDL/RETR/TOP/DELE/RSET/QUIT with UPDATE, the maildrop lock,
 * dot-stuffing, and APOP refused. */
#include <crypt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mailcore/dir.h"
#include "mailcore/mailcore.h"
#include "mailcore/pop.h"

struct fx {
	char root[128];
	struct dir_users *users;
	struct pop_env env;
	struct pop_conn_info ci;
	struct sp_proxy_info tls;
	const char *admins[1];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct crypt_data cd = {0};
	char users[1024], *err = NULL;
	const char *hash = crypt_r("secret", "$6$testsalt$", &cd);

	snprintf(f->root, sizeof(f->root), "/tmp/test_pop_XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	snprintf(users, sizeof(users),
		 "alice@example.com:%s:\nadmin@example.com:%s:\n"
		 "dan@example.com:%s:allowed=+smtp,imap:ALL\n",
		 hash, hash, hash);
	f->users = dir_users_parse("users", users, strlen(users), &err);
	f->admins[0] = "admin@example.com";
	f->env = (struct pop_env){
		.hostname = "mail.example.com", .store_root = f->root, .users = f->users,
		.admins = f->admins, .n_admins = 1, .starttls = true, .max_errors = 10,
		.max_auth_failures = 3, .timeout_ms = 600000,
		/* the users-file directory, no pool: its calls run inline */
		.dir = f->users != NULL ? dir_users_new(NULL, f->users, NULL, NULL) : NULL,
	};
	f->ci.client.ss_family = AF_INET;
	f->tls = (struct sp_proxy_info){
		.tls = true, .tls_client = SP_PP2_CLIENT_SSL | SP_PP2_CLIENT_CERT_CONN,
		.tls_version = "TLSv1.3", .tls_cipher = "TLS_AES_256_GCM_SHA384",
		.cert_email = "alice@example.com",
	};
	*state = f;
	return f->users != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	dir_unref(&f->env.dir);
	dir_users_free(&f->users);
	free(f);
	return 0;
}

static char *io(struct pop_session *s, const char *text)
{
	size_t len = strlen(text), off = 0, total = 0;
	char *all = calloc(1, 1);

	for (int guard = 0; guard < 10000; guard++) {
		size_t olen;
		const uint8_t *o;

		if (off < len)
			off += pop_session_feed(s, text + off, len - off);
		pop_session_process(s);
		o = pop_session_output(s, &olen);
		if (olen == 0 && off == len)
			break;
		all = realloc(all, total + olen + 1);
		if (olen > 0)  /* o may be NULL when there is no output */
			memcpy(all + total, o, olen);
		total += olen;
		all[total] = '\0';
		pop_session_output_consumed(s, olen);
	}
	return all;
}

#define EXPECT(s, in, want)                                                        \
	do {                                                                       \
		char *got_ = io(s, in);                                            \
		if (strstr(got_, want) == NULL)                                    \
			fail_msg("sent %s\nwant %s\ngot  %s", in, want, got_);     \
		free(got_);                                                        \
	} while (0)

static void deliver(struct fx *f, const char *text)
{
	char md[512], *err = NULL;
	struct store_target t = {.maildir = md};
	struct iovec iov = {(void *)text, strlen(text)};

	store_maildir_path(f->root, "alice@example.com", md, sizeof(md));
	if (store_maildir_deliver(&t, 1, &iov, 1, "test", NULL, 0, &err) != STORE_OK)
		fail_msg("deliver: %s", err);
}

static void test_parse(void **state)
{
	struct pop_cmd c;
	const char *err;
	char big[600];

	(void)state;
	assert_int_equal(pop_parse_command("user alice", 10, &c, &err), 0);
	assert_int_equal(c.verb, POP_USER);
	assert_int_equal(c.n_args, 1);
	assert_int_equal(pop_parse_command("PASS a b c", 10, &c, &err), 0);
	assert_int_equal(c.rest_len, 5);
	assert_int_equal(pop_parse_command("TOP 1 10", 8, &c, &err), 0);
	assert_int_equal(c.n_args, 2);
	assert_int_equal(pop_parse_command("XTND", 4, &c, &err), -1);
	assert_int_equal(pop_parse_command("LIST  1", 7, &c, &err), -1);
	assert_int_equal(pop_parse_command("STAT\0x", 6, &c, &err), -1);
	memset(big, 'a', sizeof(big));
	memcpy(big, "USER ", 5);
	assert_int_equal(pop_parse_command(big, sizeof(big), &c, &err), -1);
	{
		uint32_t n;

		assert_int_equal(pop_parse_number("12", 2, &n), 0);
		assert_int_equal(n, 12);
		assert_int_equal(pop_parse_number("0", 1, &n), -1);
		assert_int_equal(pop_parse_number("-1", 2, &n), -1);
		assert_int_equal(pop_parse_number("99999999999", 11, &n), -1);
	}
}

static void test_user_pass_and_transaction(void **state)
{
	struct fx *f = *state;
	struct pop_session *s, *t;
	char *o;

	deliver(f, "Subject: one\r\n\r\nline 1\r\n.dotted\r\nline 3\r\n");
	deliver(f, "Subject: two\r\n\r\nbody\r\n");
	s = pop_session_new(&f->env, &f->ci);
	EXPECT(s, "", "+OK mail.example.com POP3 server ready");
	EXPECT(s, "CAPA\r\n", "USER\r\nSASL PLAIN\r\nSTLS\r\nIMPLEMENTATION Sealpost\r\n.\r\n");
	EXPECT(s, "APOP alice 0123456789abcdef0123456789abcdef\r\n", "-ERR APOP");
	EXPECT(s, "STAT\r\n", "-ERR Not in TRANSACTION state");
	EXPECT(s, "PASS x\r\n", "-ERR USER first");
	EXPECT(s, "USER alice@example.com\r\nPASS wrong\r\n", "-ERR [AUTH] Authentication failed");
	EXPECT(s, "USER alice@example.com\r\nPASS secret\r\n", "+OK Maildrop ready");
	assert_int_equal(pop_session_state(s), POP_ST_TRANSACTION);

	/* a second session cannot get the maildrop */
	t = pop_session_new(&f->env, &f->ci);
	EXPECT(t, "USER alice@example.com\r\nPASS secret\r\n", "-ERR [IN-USE]");
	pop_session_free(&t);

	EXPECT(s, "STAT\r\n", "+OK 2 63\r\n");
	EXPECT(s, "LIST\r\n", "+OK\r\n1 41\r\n2 22\r\n.\r\n");
	EXPECT(s, "LIST 2\r\n", "+OK 2 22\r\n");
	EXPECT(s, "LIST 3\r\n", "-ERR No such message");
	o = io(s, "UIDL\r\n");
	assert_non_null(strstr(o, "+OK\r\n1 "));
	assert_non_null(strstr(o, ".1\r\n2 "));
	free(o);
	/* dot-stuffing (RFC 1939 3) */
	EXPECT(s, "RETR 1\r\n",
	       "+OK 41 octets\r\nSubject: one\r\n\r\nline 1\r\n..dotted\r\nline 3\r\n.\r\n");
	EXPECT(s, "TOP 1 1\r\n", "+OK 41 octets\r\nSubject: one\r\n\r\nline 1\r\n.\r\n");
	EXPECT(s, "TOP 2 0\r\n", "Subject: two\r\n\r\n.\r\n");
	EXPECT(s, "DELE 1\r\n", "+OK Message 1 deleted");
	EXPECT(s, "RETR 1\r\n", "-ERR No such message");
	EXPECT(s, "STAT\r\n", "+OK 1 22\r\n");
	EXPECT(s, "RSET\r\n", "+OK");
	EXPECT(s, "STAT\r\n", "+OK 2 63\r\n");
	EXPECT(s, "DELE 2\r\nNOOP\r\n", "+OK Message 2 deleted\r\n+OK\r\n");
	EXPECT(s, "QUIT\r\n", "(1 messages deleted)");
	assert_int_equal(pop_session_wants(s), POP_WANT_CLOSE);
	pop_session_free(&s);

	/* UPDATE happened; the lock is free again */
	s = pop_session_new(&f->env, &f->ci);
	EXPECT(s, "USER alice@example.com\r\nPASS secret\r\nSTAT\r\n", "+OK 1 41\r\n");
	/* without QUIT nothing is deleted */
	EXPECT(s, "DELE 1\r\n", "+OK");
	pop_session_eof(s);
	pop_session_free(&s);
	s = pop_session_new(&f->env, &f->ci);
	EXPECT(s, "USER alice@example.com\r\nPASS secret\r\nSTAT\r\n", "+OK 1 41\r\n");
	pop_session_free(&s);
}

static void test_stls_and_external(void **state)
{
	struct fx *f = *state;
	struct pop_session *s;
	char *o;

	f->env.plaintext_min_cipher = 128;
	s = pop_session_new(&f->env, &f->ci);
	o = io(s, "CAPA\r\n");
	assert_null(strstr(o, "USER\r\n"));
	assert_null(strstr(o, "SASL"));
	free(o);
	EXPECT(s, "USER alice@example.com\r\n", "-ERR [AUTH] Plaintext authentication needs TLS");
	EXPECT(s, "AUTH EXTERNAL =\r\n", "-ERR Mechanism not available");
	/* STLS; what follows in the same packet is discarded */
	o = io(s, "STLS\r\nUSER x\r\n");
	assert_non_null(strstr(o, "+OK Begin TLS negotiation"));
	assert_null(strstr(o, "Send PASS"));
	free(o);
	assert_int_equal(pop_session_wants(s), POP_WANT_STARTTLS);
	pop_session_tls_ready(s, &f->tls);
	/* the reference's transcript: CAPA lists SASL EXTERNAL PLAIN, then AUTH EXTERNAL = */
	EXPECT(s, "CAPA\r\n", "SASL EXTERNAL PLAIN\r\n");
	EXPECT(s, "STLS\r\n", "-ERR");
	EXPECT(s, "AUTH EXTERNAL YWRtaW5AZXhhbXBsZS5jb20=\r\n",
	       "-ERR [AUTH] Not authorized to login as specified user");
	EXPECT(s, "AUTH EXTERNAL =\r\n", "+OK Maildrop ready");
	assert_string_equal(pop_session_user(s), "alice@example.com");
	pop_session_free(&s);

	/* POPS (via tlsd): no PREAUTH in POP; an admin's certificate may proxy */
	f->ci.backend = true;
	f->ci.tls = &f->tls;
	snprintf(f->tls.cert_email, sizeof(f->tls.cert_email), "admin@example.com");
	s = pop_session_new(&f->env, &f->ci);
	EXPECT(s, "", "+OK mail.example.com POP3 server ready");
	o = io(s, "CAPA\r\n");
	assert_null(strstr(o, "STLS"));
	free(o);
	EXPECT(s, "AUTH EXTERNAL\r\n", "+ \r\n");
	EXPECT(s, "YWxpY2VAZXhhbXBsZS5jb20=\r\n", "+OK Maildrop ready");
	assert_string_equal(pop_session_user(s), "alice@example.com");
	pop_session_free(&s);

	/* AUTH PLAIN with an initial response over TLS */
	s = pop_session_new(&f->env, &f->ci);
	EXPECT(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\r\n", "+OK Maildrop ready");
	pop_session_free(&s);

	/* dan's allowed= excludes pop: refused like a wrong password */
	s = pop_session_new(&f->env, &f->ci);
	EXPECT(s, "USER dan@example.com\r\nPASS secret\r\n", "-ERR [AUTH] Authentication failed");
	assert_null(pop_session_user(s));
	pop_session_free(&s);
}

static void test_limits(void **state)
{
	struct fx *f = *state;
	struct pop_session *s = pop_session_new(&f->env, &f->ci);
	char big[2000];

	memset(big, 'a', sizeof(big) - 3);
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	EXPECT(s, big, "too long");
	EXPECT(s, "NOOP\r\n", "-ERR Not in TRANSACTION");
	for (int i = 0; i < 7; i++)
		free(io(s, "BOGUS\r\n"));
	EXPECT(s, "BOGUS\r\n", "-ERR Too many errors");
	assert_int_equal(pop_session_wants(s), POP_WANT_CLOSE);
	pop_session_free(&s);
	s = pop_session_new(&f->env, &f->ci);
	pop_session_timeout(s);
	EXPECT(s, "", "-ERR Autologout");
	pop_session_free(&s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		T(test_user_pass_and_transaction),
		T(test_stls_and_external),
		T(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
