/* Unit tests for the IMAP session (mailcore/imap_session.c and friends),
 * driven with byte strings against a temp Maildir store and a users file:
 * greeting and capabilities, LOGIN/LOGINDISABLED, AUTHENTICATE PLAIN (with
 * SASL-IR and continuation) and EXTERNAL (own, admin proxy, refused proxy),
 * STARTTLS and PREAUTH, then the mailbox commands, other sessions' changes,
 * IDLE, literals, quotas, and the error limits. */
#include <crypt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mailcore/dir.h"
#include "mailcore/filter.h"
#include "mailcore/imap.h"
#include "mailcore/mailcore.h"
#include "mailcore/store_pool.h"
#include <event2/event.h>

struct fx {
	char root[128];
	struct dir_users *users;
	struct imap_env env;
	struct imap_conn_info ci;
	struct sp_proxy_info tls;
	const char *admins[1];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct crypt_data cd = {0};
	char users[1024], *err = NULL;
	const char *hash = crypt_r("secret", "$6$testsalt$", &cd);

	snprintf(f->root, sizeof(f->root), "/tmp/test_imap_XXXXXX");
	if (mkdtemp(f->root) == NULL || hash == NULL)
		return -1;
	snprintf(users, sizeof(users),
		 "alice@example.com:%s:quota=1m\n"
		 "bob@example.com:%s:\n"
		 "admin@example.com:%s:\n"
		 "carol@example.com:%s:status=inactive\n"
		 "dan@example.com:%s:allowed=+smtp,pop:ALL\n",
		 hash, hash, hash, hash, hash);
	f->users = dir_users_parse("users", users, strlen(users), &err);
	if (f->users == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	f->admins[0] = "admin@example.com";
	f->env = (struct imap_env){
		.hostname = "mail.example.com",
		.store_root = f->root,
		.users = f->users,
		/* the users-file directory, no pool: its calls run inline */
		.dir = dir_users_new(NULL, f->users, NULL, NULL),
		.admins = f->admins,
		.n_admins = 1,
		.starttls = true,
		.max_message_size = 1024 * 1024,
		.max_bad_commands = 5,
		.max_auth_failures = 3,
		.login_timeout_ms = 60000,
		.idle_timeout_ms = 1800000,
	};
	f->ci.client.ss_family = AF_INET;
	f->ci.local.ss_family = AF_INET;
	f->tls = (struct sp_proxy_info){
		.tls = true,
		.tls_client = SP_PP2_CLIENT_SSL | SP_PP2_CLIENT_CERT_CONN,
		.tls_verify = 0,
		.tls_version = "TLSv1.3",
		.tls_cipher = "TLS_AES_256_GCM_SHA384",
		.cert_email = "admin@example.com",
	};
	*state = f;
	return 0;
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

/* The output so far, as a string (caller frees), consumed. */
static char *out(struct imap_session *s)
{
	size_t len;
	const uint8_t *o = imap_session_output(s, &len);
	char *r = malloc(len + 1);

	if (len > 0)  /* o may be NULL when there is no output */
		memcpy(r, o, len);
	r[len] = '\0';
	imap_session_output_consumed(s, len);
	return r;
}

/* Feeds text; drains the output as it goes (large FETCHes); returns all of it. */
static char *io(struct imap_session *s, const char *text)
{
	size_t len = strlen(text), off = 0, total = 0;
	char *all = calloc(1, 1);

	for (int guard = 0; guard < 100000; guard++) {
		char *o;

		if (off < len)
			off += imap_session_feed(s, text + off, len - off);
		imap_session_process(s);
		o = out(s);
		all = realloc(all, total + strlen(o) + 1);
		strcpy(all + total, o);
		total += strlen(o);
		free(o);
		if (off == len && imap_session_output(s, &(size_t){0}) != NULL) {
			size_t l;

			imap_session_output(s, &l);
			if (l == 0)
				break;
		}
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

#define REFUSE(s, in, unwanted)                                                    \
	do {                                                                       \
		char *got_ = io(s, in);                                            \
		if (strstr(got_, unwanted) != NULL)                                \
			fail_msg("sent %s\ndid not want %s\ngot %s", in, unwanted, got_); \
		free(got_);                                                        \
	} while (0)

static struct imap_session *start(struct fx *f, const char *want_greeting)
{
	struct imap_session *s = imap_session_new(&f->env, &f->ci);
	char *g = out(s);

	if (strstr(g, want_greeting) == NULL)
		fail_msg("greeting: %s", g);
	free(g);
	return s;
}

static void deliver(struct fx *f, const char *user, const char *text)
{
	char md[512], *err = NULL;
	struct store_target t = {.maildir = md};
	struct iovec iov = {(void *)text, strlen(text)};

	store_maildir_path(f->root, user, md, sizeof(md));
	if (store_maildir_deliver(&t, 1, &iov, 1, "test", NULL, 0, &err) != STORE_OK)
		fail_msg("deliver: %s", err);
}

static void test_greeting_capability_logout(void **state)
{
	struct fx *f = *state;
	struct imap_session *s = start(f, "* OK [CAPABILITY IMAP4rev1");

	EXPECT(s, "a CAPABILITY\r\n", "STARTTLS AUTH=PLAIN LOGIN-REFERRALS\r\na OK");
	REFUSE(s, "a CAPABILITY\r\n", "AUTH=EXTERNAL");
	EXPECT(s, "b NOOP\r\n", "b OK NOOP completed");
	EXPECT(s, "c SELECT INBOX\r\n", "c BAD Log in first");
	EXPECT(s, "d FOO\r\n", "d BAD Unknown command");
	EXPECT(s, "e LOGOUT\r\n", "* BYE Logging out\r\ne OK LOGOUT completed");
	assert_int_equal(imap_session_wants(s), IMAP_WANT_CLOSE);
	assert_int_equal(imap_session_state(s), IMAP_ST_LOGOUT);
	imap_session_free(&s);
	assert_null(s);
}

static void test_login(void **state)
{
	struct fx *f = *state;
	struct imap_session *s = start(f, "* OK");

	EXPECT(s, "a LOGIN alice@example.com wrong\r\n", "a NO [AUTHENTICATIONFAILED]");
	EXPECT(s, "b LOGIN carol@example.com secret\r\n", "b NO");  /* inactive */
	EXPECT(s, "c LOGIN alice@example.com secret\r\n", "c OK [CAPABILITY IMAP4rev1");
	assert_string_equal(imap_session_user(s), "alice@example.com");
	assert_int_equal(imap_session_state(s), IMAP_ST_AUTHENTICATED);
	EXPECT(s, "d LOGIN alice@example.com secret\r\n", "d BAD Already authenticated");
	REFUSE(s, "e CAPABILITY\r\n", "AUTH=");
	imap_session_free(&s);

	/* a literal password (synchronizing) */
	s = start(f, "* OK");
	EXPECT(s, "a LOGIN {17}\r\n", "+ Ready");
	EXPECT(s, "alice@example.com {6+}\r\nsecret\r\n", "a OK");
	imap_session_free(&s);

	/* three failures end the session */
	s = start(f, "* OK");
	free(io(s, "a LOGIN x y\r\n"));
	free(io(s, "b LOGIN x y\r\n"));
	EXPECT(s, "c LOGIN x y\r\n", "* BYE Too many authentication failures");
	assert_int_equal(imap_session_wants(s), IMAP_WANT_CLOSE);
	imap_session_free(&s);
}

static void test_logindisabled_and_starttls(void **state)
{
	struct fx *f = *state;
	struct imap_session *s;
	char *o;

	f->env.plaintext_min_cipher = 128;
	s = start(f, "LOGINDISABLED");
	EXPECT(s, "a LOGIN alice@example.com secret\r\n", "a NO [PRIVACYREQUIRED]");
	EXPECT(s, "b AUTHENTICATE PLAIN\r\n", "b NO [PRIVACYREQUIRED]");
	/* STARTTLS: what follows the command is thrown away (command injection) */
	o = io(s, "c STARTTLS\r\nd LOGIN alice@example.com secret\r\n");
	assert_non_null(strstr(o, "c OK Begin TLS"));
	assert_null(strstr(o, "d "));
	free(o);
	assert_int_equal(imap_session_wants(s), IMAP_WANT_STARTTLS);
	f->tls.cert_email[0] = '\0';
	imap_session_tls_ready(s, &f->tls);
	assert_int_equal(imap_session_wants(s) & IMAP_WANT_READ, IMAP_WANT_READ);
	o = io(s, "e CAPABILITY\r\n");
	assert_null(strstr(o, "STARTTLS"));
	assert_null(strstr(o, "LOGINDISABLED"));
	assert_non_null(strstr(o, "AUTH=PLAIN"));
	/* a verified certificate: EXTERNAL is offered, certmap decides at
	 * AUTHENTICATE time (here: no e-mail, so no user) */
	assert_non_null(strstr(o, "AUTH=EXTERNAL"));
	free(o);
	EXPECT(s, "f STARTTLS\r\n", "f NO");
	EXPECT(s, "g LOGIN alice@example.com secret\r\n", "g OK");
	imap_session_free(&s);
}

static void test_authenticate_plain(void **state)
{
	struct fx *f = *state;
	struct imap_session *s = start(f, "* OK");
	char b64[128];
	static const char plain[] = "\0alice@example.com\0secret";

	smtp_base64_encode((const uint8_t *)plain, sizeof(plain) - 1, b64, sizeof(b64));
	EXPECT(s, "a AUTHENTICATE PLAIN\r\n", "+ \r\n");
	EXPECT(s, "*\r\n", "a BAD Authentication cancelled");
	EXPECT(s, "b AUTHENTICATE PLAIN\r\n", "+ \r\n");
	EXPECT(s, "!!!\r\n", "b BAD Invalid base64");
	EXPECT(s, "c AUTHENTICATE X-UNKNOWN\r\n", "c NO");
	{
		char line[256];

		/* RFC 4959 SASL-IR */
		snprintf(line, sizeof(line), "d AUTHENTICATE PLAIN %s\r\n", b64);
		EXPECT(s, line, "d OK");
	}
	imap_session_free(&s);

	s = start(f, "* OK");
	{
		char line[256];

		EXPECT(s, "a AUTHENTICATE PLAIN\r\n", "+ \r\n");
		snprintf(line, sizeof(line), "%s\r\n", b64);
		EXPECT(s, line, "a OK [CAPABILITY");
	}
	imap_session_free(&s);
}

static void test_external_and_preauth(void **state)
{
	struct fx *f = *state;
	struct imap_session *s;
	char *o;

	/* IMAPS (via tlsd) with a certificate that maps to a user: PREAUTH */
	f->ci.backend = true;
	f->ci.tls = &f->tls;
	snprintf(f->tls.cert_email, sizeof(f->tls.cert_email), "bob@example.com");
	s = start(f, "* PREAUTH [CAPABILITY IMAP4rev1");
	assert_int_equal(imap_session_state(s), IMAP_ST_AUTHENTICATED);
	assert_string_equal(imap_session_user(s), "bob@example.com");
	EXPECT(s, "a SELECT INBOX\r\n", "a OK [READ-WRITE]");
	imap_session_free(&s);

	/* an unverified certificate: plain * OK, no EXTERNAL */
	f->tls.tls_verify = 20;
	s = start(f, "* OK");
	REFUSE(s, "a CAPABILITY\r\n", "AUTH=EXTERNAL");
	EXPECT(s, "b AUTHENTICATE EXTERNAL =\r\n", "b NO Mechanism not available");
	imap_session_free(&s);
	f->tls.tls_verify = 0;

	/* a certificate for no user: plain * OK */
	snprintf(f->tls.cert_email, sizeof(f->tls.cert_email), "nobody@example.com");
	s = start(f, "* OK");
	imap_session_free(&s);

	/* STARTTLS on 143 with a certificate: AUTH=EXTERNAL, then the
	 * reference's transcript */
	f->ci.backend = false;
	f->ci.tls = NULL;
	s = start(f, "* OK");
	free(io(s, "a STARTTLS\r\n"));
	snprintf(f->tls.cert_email, sizeof(f->tls.cert_email), "bob@example.com");
	imap_session_tls_ready(s, &f->tls);
	EXPECT(s, "b CAPABILITY\r\n", "AUTH=EXTERNAL");
	/* bob is no store administrator: "admin" is someone else */
	EXPECT(s, "c AUTHENTICATE EXTERNAL YWRtaW5AZXhhbXBsZS5jb20=\r\n",
	       "c NO Not authorized to login as specified user");
	EXPECT(s, "c AUTHENTICATE EXTERNAL =\r\n", "c OK");
	assert_string_equal(imap_session_user(s), "bob@example.com");
	imap_session_free(&s);

	/* a self authzid is fine (curl sends it) */
	s = start(f, "* OK");
	free(io(s, "a STARTTLS\r\n"));
	imap_session_tls_ready(s, &f->tls);
	EXPECT(s, "b AUTHENTICATE EXTERNAL Ym9iQGV4YW1wbGUuY29t\r\n", "b OK");
	imap_session_free(&s);

	/* a store administrator may become another user */
	snprintf(f->tls.cert_email, sizeof(f->tls.cert_email), "admin@example.com");
	s = start(f, "* OK");
	free(io(s, "a STARTTLS\r\n"));
	imap_session_tls_ready(s, &f->tls);
	o = io(s, "b AUTHENTICATE EXTERNAL\r\n");
	assert_non_null(strstr(o, "+ "));
	free(o);
	/* base64("alice@example.com") */
	EXPECT(s, "YWxpY2VAZXhhbXBsZS5jb20=\r\n", "b OK");
	assert_string_equal(imap_session_user(s), "alice@example.com");
	imap_session_free(&s);
}

static struct imap_session *login(struct fx *f, const char *user)
{
	struct imap_session *s = start(f, "* OK");
	char line[128];

	snprintf(line, sizeof(line), "L LOGIN %s secret\r\n", user);
	EXPECT(s, line, "L OK");
	return s;
}

static const char msg1[] = "From: Alice <alice@example.com>\r\n"
			   "To: bob@example.com\r\n"
			   "Subject: first message\r\n"
			   "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
			   "Message-ID: <1@example.com>\r\n"
			   "\r\n"
			   "Hello world\r\n";
static const char msg2[] = "From: bob@example.com\r\n"
			   "Subject: second\r\n"
			   "Content-Type: multipart/mixed; boundary=b\r\n"
			   "\r\n"
			   "--b\r\n"
			   "Content-Type: text/plain\r\n"
			   "\r\n"
			   "part one\r\n"
			   "--b\r\n"
			   "Content-Type: application/octet-stream\r\n"
			   "Content-Disposition: attachment; filename=a.bin\r\n"
			   "Content-Transfer-Encoding: base64\r\n"
			   "\r\n"
			   "AAAA\r\n"
			   "--b--\r\n";

static void test_select_fetch_store_search_expunge(void **state)
{
	struct fx *f = *state;
	struct imap_session *s;
	char line[256];

	deliver(f, "alice@example.com", msg1);
	deliver(f, "alice@example.com", msg2);
	s = login(f, "alice@example.com");
	EXPECT(s, "a EXAMINE INBOX\r\n", "a OK [READ-ONLY]");
	{
		char *o = io(s, "b SELECT INBOX\r\n");

		assert_non_null(strstr(o, "* 2 EXISTS\r\n* 2 RECENT"));
		assert_non_null(strstr(o, "* OK [UIDVALIDITY "));
		assert_non_null(strstr(o, "* OK [UIDNEXT 3]"));
		assert_non_null(strstr(o, "* OK [UNSEEN 1]"));
		assert_non_null(strstr(o, "b OK [READ-WRITE]"));
		free(o);
	}
	EXPECT(s, "c FETCH 1:* (FLAGS UID)\r\n", "* 1 FETCH (FLAGS (\\Recent) UID 1)\r\n* 2 FETCH (FLAGS (\\Recent) UID 2)");
	snprintf(line, sizeof(line), "* 1 FETCH (RFC822.SIZE %zu)", sizeof(msg1) - 1);
	EXPECT(s, "d FETCH 1 RFC822.SIZE\r\n", line);
	EXPECT(s, "e FETCH 1 ENVELOPE\r\n",
	       "ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"first message\" ((\"Alice\" NIL "
	       "\"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL "
	       "\"alice\" \"example.com\")) ((NIL NIL \"bob\" \"example.com\")) NIL NIL NIL "
	       "\"<1@example.com>\")");
	EXPECT(s, "f FETCH 1 BODYSTRUCTURE\r\n",
	       "BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 13 1 NIL NIL NIL NIL)");
	EXPECT(s, "g FETCH 2 BODYSTRUCTURE\r\n",
	       "BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 8 1 NIL NIL NIL NIL)"
	       "(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 4 NIL (\"ATTACHMENT\" "
	       "(\"filename\" \"a.bin\")) NIL NIL) \"MIXED\" (\"boundary\" \"b\") NIL NIL NIL)");
	EXPECT(s, "h FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject)]\r\n",
	       "BODY[HEADER.FIELDS (Subject)] {26}\r\nSubject: first message\r\n\r\n)");
	EXPECT(s, "i FETCH 1 BODY.PEEK[TEXT]<0.5>\r\n", "BODY[TEXT]<0> {5}\r\nHello)");
	EXPECT(s, "j FETCH 2 BODY.PEEK[2]\r\n", "BODY[2] {4}\r\nAAAA)");
	EXPECT(s, "j FETCH 2 BODY.PEEK[2.MIME]\r\n", "Content-Disposition: attachment");
	EXPECT(s, "k FETCH 1 FLAGS\r\n", "FLAGS (\\Recent)");
	/* BODY[] without PEEK sets \Seen and says so */
	EXPECT(s, "l FETCH 1 BODY[]\r\n", "FLAGS (\\Seen \\Recent))");
	EXPECT(s, "m UID FETCH 2 (FLAGS)\r\n", "* 2 FETCH (FLAGS (\\Recent) UID 2)");
	EXPECT(s, "n FETCH 3 FLAGS\r\n", "n BAD Invalid message sequence number");
	EXPECT(s, "n FETCH 1 (FLAGS BOGUS)\r\n", "n BAD Bad FETCH items");
	EXPECT(s, "o STORE 2 +FLAGS (\\Flagged \\Deleted)\r\n",
	       "* 2 FETCH (FLAGS (\\Flagged \\Deleted \\Recent))");
	REFUSE(s, "p STORE 1 -FLAGS.SILENT (\\Seen)\r\n", "FETCH");
	EXPECT(s, "q SEARCH DELETED\r\n", "* SEARCH 2\r\nq OK");
	EXPECT(s, "q SEARCH UNSEEN\r\n", "* SEARCH 1 2\r\n");
	EXPECT(s, "q SEARCH SUBJECT \"FIRST\"\r\n", "* SEARCH 1\r\n");
	EXPECT(s, "q SEARCH FROM bob\r\n", "* SEARCH 2\r\n");
	EXPECT(s, "q SEARCH OR FROM bob SUBJECT first\r\n", "* SEARCH 1 2\r\n");
	EXPECT(s, "q SEARCH NOT DELETED\r\n", "* SEARCH 1\r\n");
	EXPECT(s, "q SEARCH BODY \"part one\"\r\n", "* SEARCH 2\r\n");
	EXPECT(s, "q SEARCH TEXT hello\r\n", "* SEARCH 1\r\n");
	EXPECT(s, "q SEARCH HEADER Message-ID <1@\r\n", "* SEARCH 1\r\n");
	EXPECT(s, "q SEARCH SENTON 7-Feb-1994\r\n", "* SEARCH 1\r\n");
	EXPECT(s, "q SEARCH SENTBEFORE 1-Jan-1990\r\n", "* SEARCH\r\n");
	EXPECT(s, "q SEARCH SINCE 1-Jan-2000 LARGER 100\r\n", "* SEARCH 1 2\r\n");
	EXPECT(s, "q SEARCH SMALLER 10\r\n", "* SEARCH\r\n");
	EXPECT(s, "q UID SEARCH 2:*\r\n", "* SEARCH 2\r\n");
	EXPECT(s, "q SEARCH (UID 1 ALL)\r\n", "* SEARCH 1\r\n");
	EXPECT(s, "q SEARCH CHARSET UTF-8 ALL\r\n", "* SEARCH 1 2\r\n");
	EXPECT(s, "q SEARCH CHARSET KOI8-R ALL\r\n", "q NO [BADCHARSET");
	EXPECT(s, "q SEARCH FROM\r\n", "q BAD");
	EXPECT(s, "q SEARCH BOGUS\r\n", "q BAD");
	EXPECT(s, "r EXPUNGE\r\n", "* 2 EXPUNGE\r\nr OK");
	EXPECT(s, "s FETCH 1:* UID\r\n", "* 1 FETCH (UID 1)\r\ns OK");
	EXPECT(s, "t CLOSE\r\n", "t OK");
	assert_int_equal(imap_session_state(s), IMAP_ST_AUTHENTICATED);
	EXPECT(s, "u FETCH 1 UID\r\n", "u BAD No mailbox selected");
	imap_session_free(&s);
}

/* FETCH ENVELOPE and BODY[HEADER...] read a message only to its header's
 * end: a header longer than the first reads (IMAP_HEADER_CHUNK, 8 kB, then
 * doubling) is read on to its end, and items wanting more than the header
 * still get it all. */
static void test_fetch_long_header(void **state)
{
	struct fx *f = *state;
	struct imap_session *s;
	size_t cap = 32768, len = 0;
	char *msg = malloc(cap), want[64];

	assert_non_null(msg);
	len += (size_t)snprintf(msg + len, cap - len, "From: Alice <alice@example.com>\r\n");
	while (len < 20000)
		len += (size_t)snprintf(msg + len, cap - len,
					"X-Pad: %zu aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", len);
	len += (size_t)snprintf(msg + len, cap - len, "Subject: late subject\r\n\r\nthe body\r\n");
	deliver(f, "alice@example.com", msg);
	s = login(f, "alice@example.com");
	EXPECT(s, "a SELECT INBOX\r\n", "a OK");
	EXPECT(s, "b FETCH 1 ENVELOPE\r\n", "NIL \"late subject\" ((\"Alice\"");
	EXPECT(s, "c FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject)]\r\n",
	       "{25}\r\nSubject: late subject\r\n\r\n)");
	snprintf(want, sizeof(want), "BODY[HEADER] {%zu}\r\n", len - strlen("the body\r\n"));
	EXPECT(s, "d FETCH 1 BODY.PEEK[HEADER]\r\n", want);
	EXPECT(s, "e FETCH 1 (ENVELOPE BODY.PEEK[TEXT])\r\n", "BODY[TEXT] {10}\r\nthe body\r\n)");
	snprintf(want, sizeof(want), "BODY[] {%zu}\r\n", len);
	EXPECT(s, "f FETCH 1 (ENVELOPE BODY.PEEK[])\r\n", want);
	imap_session_free(&s);
	free(msg);
}

static void test_mailboxes_append_copy(void **state)
{
	struct fx *f = *state;
	struct imap_session *s = login(f, "alice@example.com");

	EXPECT(s, "a CREATE Work\r\n", "a OK");
	EXPECT(s, "a CREATE Work.Projects\r\n", "a OK");
	EXPECT(s, "a CREATE Work\r\n", "a NO [ALREADYEXISTS]");
	EXPECT(s, "a CREATE ../x\r\n", "a NO [CANNOT]");
	EXPECT(s, "b LIST \"\" *\r\n",
	       "* LIST (\\HasNoChildren) \".\" \"INBOX\"\r\n* LIST (\\HasChildren) \".\" \"Work\"\r\n"
	       "* LIST (\\HasNoChildren) \".\" \"Work.Projects\"\r\nb OK");
	EXPECT(s, "b LIST \"\" %\r\n", "\"Work\"\r\nb OK");
	REFUSE(s, "b LIST \"\" %\r\n", "Projects");
	EXPECT(s, "b LIST Work. %\r\n", "\"Work.Projects\"");
	EXPECT(s, "b LIST \"\" \"\"\r\n", "* LIST (\\Noselect) \".\" \"\"");
	EXPECT(s, "b LIST \"\" inbox\r\n", "\"INBOX\"");
	EXPECT(s, "c SUBSCRIBE Work\r\n", "c OK");
	EXPECT(s, "c LSUB \"\" *\r\n", "* LSUB (\\HasChildren) \".\" \"Work\"\r\nc OK");
	EXPECT(s, "c UNSUBSCRIBE Work\r\n", "c OK");
	REFUSE(s, "c LSUB \"\" *\r\n", "Work");
	EXPECT(s, "d DELETE Work\r\n", "d NO [INUSE]");
	EXPECT(s, "d RENAME Work Jobs\r\n", "d OK");
	EXPECT(s, "d LIST \"\" Jobs*\r\n", "\"Jobs.Projects\"");
	EXPECT(s, "d DELETE Jobs.Projects\r\n", "d OK");
	EXPECT(s, "d DELETE Nope\r\n", "d NO [NONEXISTENT]");

	/* APPEND: sync literal, LITERAL+, flags and date; APPENDUID */
	EXPECT(s, "e APPEND Jobs (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {19}\r\n", "+ Ready");
	EXPECT(s, "Subject: hi\r\n\r\nbody\r\n", "e OK [APPENDUID ");
	EXPECT(s, "e APPEND Jobs {19+}\r\nSubject: yo\r\n\r\nbody\r\n", " 2] APPEND completed");
	EXPECT(s, "e APPEND Nope {1+}\r\nx\r\n", "e NO [TRYCREATE]");
	EXPECT(s, "f STATUS Jobs (MESSAGES UNSEEN UIDNEXT)\r\n",
	       "* STATUS \"Jobs\" (MESSAGES 2 UNSEEN 1 UIDNEXT 3)");
	EXPECT(s, "f STATUS Nope (MESSAGES)\r\n", "f NO [NONEXISTENT]");
	EXPECT(s, "g SELECT Jobs\r\n", "* 2 EXISTS");
	EXPECT(s, "g FETCH 1 (FLAGS INTERNALDATE)\r\n",
	       "FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 09:44:25 +0000\"");
	EXPECT(s, "h COPY 1:2 INBOX\r\n", "h OK [COPYUID ");
	EXPECT(s, "h UID COPY 2 Jobs\r\n", " 2 3] UID COPY completed");
	EXPECT(s, "h COPY 1 Nope\r\n", "h NO [TRYCREATE]");
	/* appending to the selected mailbox is reported before the OK */
	EXPECT(s, "i APPEND Jobs {19+}\r\nSubject: zz\r\n\r\nbody\r\n", "* 4 EXISTS");
	EXPECT(s, "j STATUS INBOX (MESSAGES)\r\n", "(MESSAGES 2)");
	EXPECT(s, "k GETQUOTAROOT INBOX\r\n", "* QUOTAROOT \"INBOX\" \"\"\r\n* QUOTA \"\" (STORAGE 1 1024)");
	EXPECT(s, "k GETQUOTA \"\"\r\n", "* QUOTA \"\" (STORAGE 1 1024)");
	EXPECT(s, "l NAMESPACE\r\n", "* NAMESPACE ((\"\" \".\")) NIL NIL");
	EXPECT(s, "l ID NIL\r\n", "* ID (\"name\" \"Sealpost\")");
	EXPECT(s, "l ENABLE CONDSTORE\r\n", "* ENABLED\r\nl OK");
	EXPECT(s, "m UNSELECT\r\n", "m OK");
	/* RENAME INBOX moves the messages */
	EXPECT(s, "n RENAME INBOX Old\r\n", "n OK");
	EXPECT(s, "n STATUS INBOX (MESSAGES)\r\n", "(MESSAGES 0)");
	EXPECT(s, "n STATUS Old (MESSAGES)\r\n", "(MESSAGES 2)");
	imap_session_free(&s);
}

static void test_quota_refuses_append(void **state)
{
	struct fx *f = *state;
	struct imap_session *s = login(f, "alice@example.com");
	size_t n = 700 * 1024;
	char *cmd = malloc(n + 64), *o;
	int k = snprintf(cmd, 64, "a APPEND INBOX {%zu+}\r\n", n);

	memset(cmd + k, 'x', n);
	memcpy(cmd + k + n, "\r\n", 3);
	o = io(s, cmd);
	assert_non_null(strstr(o, "a OK [APPENDUID"));
	free(o);
	cmd[0] = 'b';
	o = io(s, cmd);
	assert_non_null(strstr(o, "b NO [OVERQUOTA]"));
	free(o);
	free(cmd);
	/* a literal over the message size limit */
	EXPECT(s, "c APPEND INBOX {2000000}\r\n", "c NO [TOOBIG]");
	EXPECT(s, "d NOOP\r\n", "d OK");
	EXPECT(s, "e APPEND INBOX {2000000+}\r\n", "* BYE [TOOBIG]");
	imap_session_free(&s);
}

static void test_other_sessions_and_idle(void **state)
{
	struct fx *f = *state;
	struct imap_session *a, *b;

	deliver(f, "bob@example.com", msg1);
	deliver(f, "bob@example.com", msg1);
	deliver(f, "bob@example.com", msg1);
	a = login(f, "bob@example.com");
	b = login(f, "bob@example.com");
	EXPECT(a, "a SELECT INBOX\r\n", "* 3 EXISTS");
	EXPECT(b, "b SELECT INBOX\r\n", "* 3 EXISTS");
	/* b changes flags and expunges; a new message arrives */
	EXPECT(b, "b STORE 1 +FLAGS (\\Flagged)\r\n", "b OK");
	EXPECT(b, "b STORE 2 +FLAGS (\\Deleted)\r\n", "b OK");
	EXPECT(b, "b EXPUNGE\r\n", "* 2 EXPUNGE");
	deliver(f, "bob@example.com", msg1);
	/* a hears of it all at its next NOOP, EXPUNGE first */
	EXPECT(a, "a NOOP\r\n", "* 2 EXPUNGE\r\n* 3 EXISTS\r\n* 3 RECENT\r\n* 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)\r\na OK");
	/* FETCH/STORE/SEARCH never report expunges (RFC 3501 7.4.1) */
	EXPECT(b, "b STORE 1 +FLAGS (\\Deleted)\r\n", "b OK");
	EXPECT(b, "b EXPUNGE\r\n", "* 1 EXPUNGE");
	REFUSE(a, "a FETCH 2 FLAGS\r\n", "EXPUNGE");
	/* IDLE (RFC 2177): changes arrive while idling; DONE ends it */
	EXPECT(a, "i IDLE\r\n", "+ idling\r\n* 1 EXPUNGE");
	assert_true(imap_session_poll_ms(a) > 0);
	deliver(f, "bob@example.com", msg1);
	imap_session_poll(a);
	EXPECT(a, "", "* 3 EXISTS");
	EXPECT(a, "DONE\r\n", "i OK IDLE terminated");
	assert_int_equal(imap_session_poll_ms(a), 0);
	EXPECT(a, "j IDLE\r\n", "+ idling");
	EXPECT(a, "nonsense\r\n", "j BAD Expected DONE");
	imap_session_free(&a);
	imap_session_free(&b);
}

static void test_errors_and_limits(void **state)
{
	struct fx *f = *state;
	struct imap_session *s = start(f, "* OK");
	char *big = malloc(IMAP_LINE_MAX + 100), *o;

	EXPECT(s, "bad\r\n", "BAD");
	EXPECT(s, "a LOGIN {70000}\r\n", "a NO [TOOBIG]");
	EXPECT(s, "b NOOP\r\n", "b OK");
	EXPECT(s, "c FETCH (\r\n", "c BAD");
	EXPECT(s, "d X\r\n", "d BAD");
	EXPECT(s, "e X\r\n", "e BAD");
	EXPECT(s, "f X\r\n", "* BYE Too many invalid commands");
	assert_int_equal(imap_session_wants(s), IMAP_WANT_CLOSE);
	assert_int_equal(imap_session_input_room(s), 0);
	imap_session_free(&s);

	s = start(f, "* OK");
	memset(big, 'a', IMAP_LINE_MAX + 50);
	big[IMAP_LINE_MAX + 50] = '\0';
	o = io(s, big);
	assert_non_null(strstr(o, "* BYE Line too long"));
	free(o);
	imap_session_free(&s);

	s = start(f, "* OK");
	imap_session_timeout(s);
	o = out(s);
	assert_non_null(strstr(o, "* BYE Autologout"));
	free(o);
	assert_int_equal(imap_session_wants(s), IMAP_WANT_CLOSE);
	imap_session_free(&s);
	free(big);
}

static void test_filter_after_login(void **state)
{
	struct fx *f = *state;
	struct filter *flt = filter_new();
	struct imap_session *s;
	char *err = NULL;
	static const char deny[] = "imap: bob@ALL";

	assert_int_equal(filter_add(flt, FILTER_DENY, deny, strlen(deny), &err), 0);
	f->env.filter = flt;
	s = start(f, "* OK");
	EXPECT(s, "a LOGIN bob@example.com secret\r\n", "a NO [AUTHORIZATIONFAILED]");
	EXPECT(s, "b LOGIN alice@example.com secret\r\n", "b OK");
	imap_session_free(&s);
	filter_free(&flt);
	f->env.filter = NULL;
}

static void resumed(void *arg)
{
	(*(int *)arg)++;
}

/* With a pool, crypt(3) runs off the loop: the session waits (reads
 * nothing), then answers the login and the commands pipelined behind it. */
static void test_login_on_pool(void **state)
{
	struct fx *f = *state;
	struct event_base *base = event_base_new();
	char *err = NULL, *o;
	struct store_pool *pool = store_pool_new(base, 1, 8, &err);
	struct imap_session *s;
	int done = 0;

	assert_non_null(pool);
	dir_set_pool(f->env.dir, pool);
	s = start(f, "* OK");
	imap_session_set_resume(s, resumed, &done);
	o = io(s, "a LOGIN alice@example.com secret\r\nb NOOP\r\n");
	assert_string_equal(o, "");
	free(o);
	assert_int_equal(imap_session_input_room(s), 0);
	assert_int_equal(imap_session_wants(s), 0);
	while (done == 0)
		event_base_loop(base, EVLOOP_ONCE);
	o = out(s);
	assert_non_null(strstr(o, "a OK [CAPABILITY"));
	assert_non_null(strstr(o, "b OK NOOP completed"));
	free(o);
	EXPECT(s, "c LOGOUT\r\n", "c OK");
	imap_session_free(&s);

	/* a session that goes away while its check runs orphans the job */
	s = start(f, "* OK");
	imap_session_set_resume(s, resumed, &done);
	free(io(s, "a LOGIN alice@example.com wrong\r\n"));
	imap_session_free(&s);
	store_pool_free(&pool); /* runs the cancelled request's completion */
	assert_int_equal(done, 1);
	dir_set_pool(f->env.dir, NULL);
	event_base_free(base);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* IMAPS with a certificate: the greeting waits for certmap's answer on the
 * pool, then says PREAUTH. A user whose allowed= excludes imap is refused
 * like a wrong password. */
static void test_preauth_on_pool_and_service_denied(void **state)
{
	struct fx *f = *state;
	struct event_base *base = event_base_new();
	char *err = NULL, *o;
	struct store_pool *pool = store_pool_new(base, 1, 8, &err);
	struct imap_session *s;
	int done = 0;

	assert_non_null(pool);
	dir_set_pool(f->env.dir, pool);
	f->ci.backend = true;
	f->ci.tls = &f->tls;
	snprintf(f->tls.cert_email, sizeof(f->tls.cert_email), "bob@example.com");
	s = imap_session_new(&f->env, &f->ci);
	imap_session_set_resume(s, resumed, &done);
	o = out(s);
	assert_string_equal(o, ""); /* no greeting yet */
	free(o);
	assert_int_equal(imap_session_wants(s), 0);
	while (done == 0)
		event_base_loop(base, EVLOOP_ONCE);
	o = out(s);
	assert_non_null(strstr(o, "* PREAUTH [CAPABILITY"));
	free(o);
	assert_string_equal(imap_session_user(s), "bob@example.com");
	imap_session_free(&s);
	f->ci.backend = false;
	f->ci.tls = NULL;

	done = 0;
	s = imap_session_new(&f->env, &f->ci);
	imap_session_set_resume(s, resumed, &done);
	free(out(s));
	free(io(s, "a LOGIN dan@example.com secret\r\n"));
	while (done == 0)
		event_base_loop(base, EVLOOP_ONCE);
	o = out(s);
	assert_non_null(strstr(o, "a NO [AUTHENTICATIONFAILED]"));
	free(o);
	assert_null(imap_session_user(s));
	imap_session_free(&s);
	store_pool_free(&pool);
	dir_set_pool(f->env.dir, NULL);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_greeting_capability_logout),
		T(test_login),
		T(test_logindisabled_and_starttls),
		T(test_authenticate_plain),
		T(test_external_and_preauth),
		T(test_select_fetch_store_search_expunge),
		T(test_fetch_long_header),
		T(test_mailboxes_append_copy),
		T(test_quota_refuses_append),
		T(test_other_sessions_and_idle),
		T(test_errors_and_limits),
		T(test_filter_after_login),
		T(test_login_on_pool),
		T(test_preauth_on_pool_and_service_denied),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
