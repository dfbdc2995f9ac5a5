/* The POP3 session (RFC 1939): AUTHORIZATION -> TRANSACTION -> UPDATE in
 * one transition function; USER/PASS, AUTH PLAIN/EXTERNAL (RFC 5034, with
 * the admin proxy rule of IMAP), STLS (RFC 2595), CAPA (RFC 2449); the
 * maildrop (the INBOX) is locked for the whole transaction. Driven with
 * bytes; no sockets. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/dir.h"
#include "mailcore/filter.h"
#include "mailcore/mailcore.h"
#include "mailcore/mc_login.h"
#include "mailcore/pop.h"
#include "mailcore/store_mailbox.h"

#define POP_INBUF_CAP (POP_AUTH_LINE_MAX + 1024)
#define POP_ADDR_CAP 336 /* DIR_ADDR_MAX and room */
#define POP_LOCK_NAME "sealpost-pop.lock"
#define POP_CHUNK (64 * 1024)

enum pop_mode { MODE_COMMAND, MODE_AUTH };
enum pop_mech { MECH_PLAIN, MECH_EXTERNAL };
/* What a directory request in flight is for. */
enum pop_pending {
	POP_PEND_NONE,
	POP_PEND_USER,           /* dir_verify for USER/PASS */
	POP_PEND_PLAIN,          /* dir_verify for AUTH PLAIN */
	POP_PEND_EXTERNAL,       /* certmap for AUTH EXTERNAL */
	POP_PEND_EXTERNAL_PROXY, /* lookup of the user an administrator names */
};

struct pop_session {
	const struct pop_env *env;
	enum pop_state state;
	enum pop_mode mode;
	enum pop_mech mech;
	struct sockaddr_storage client, local;
	char client_ip[64];
	bool backend;
	const char *client_name;
	bool client_name_verified;
	bool tls;
	struct sp_proxy_info tls_info;
	struct dir *dir;               /* a ref: where logins and certificates are checked */
	char user_arg[POP_ADDR_CAP];   /* from USER */
	char user[POP_ADDR_CAP];
	char maildir[4096];
	unsigned errors, auth_failures;

	struct store_mailbox *mb;
	int lock_fd;
	bool *deleted;                 /* per message, until UPDATE */

	/* a RETR/TOP being written */
	uint8_t *send;
	size_t send_len, send_off;

	uint8_t in[POP_INBUF_CAP];
	size_t in_len;
	bool discard;                  /* the rest of an over-long line */
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	bool want_close, want_starttls;
	/* A directory request in flight: the session reads nothing until it
	 * answers. */
	struct dir_req *req;
	enum pop_pending pending;
	char pend_user[POP_ADDR_CAP];  /* the login name, or EXTERNAL's authzid */
	char pend_admin[POP_ADDR_CAP]; /* EXTERNAL-proxy: the certificate's user */
	void (*resume)(void *arg);
	void *resume_arg;
};

static void out(struct pop_session *s, const void *data, size_t len)
{
	if (s->out_off > 0 && s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_len + len > s->out_cap) {
		if (s->out_off > 0) {
			memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
			s->out_len -= s->out_off;
			s->out_off = 0;
		}
		while (s->out_len + len > s->out_cap)
			s->out_cap = s->out_cap == 0 ? 4096 : s->out_cap * 2;
		s->out = sp_xrealloc(s->out, s->out_cap, 1);
	}
	memcpy(s->out + s->out_len, data, len);
	s->out_len += len;
}

static void outf(struct pop_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct pop_session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		out(s, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static const char *const state_names[] = {"authorization", "transaction", "update"};

/* The one place the state changes (RFC 1939 3). */
static void set_state(struct pop_session *s, enum pop_state to, const char *why)
{
	sp_log(SP_LOG_DEBUG, "pop_state", "client=%s from=%s to=%s why=\"%s\"", s->client_ip,
	       state_names[s->state], state_names[to], why);
	s->state = to;
}

static bool plaintext_allowed(const struct pop_session *s)
{
	int need = s->env->plaintext_min_cipher;

	return need <= 0 || (s->tls && smtp_cipher_bits(s->tls_info.tls_cipher) >= need);
}

/* tlsd verified a client certificate: AUTH EXTERNAL may be tried
 * (certmap.conf decides at AUTH time who it is). */
static bool has_client_cert(const struct pop_session *s)
{
	const struct sp_proxy_info *t = &s->tls_info;

	return s->tls && t->tls_verify == 0 &&
	       (t->tls_client & (SP_PP2_CLIENT_CERT_CONN | SP_PP2_CLIENT_CERT_SESS)) != 0;
}

static void error_reply(struct pop_session *s, const char *text)
{
	outf(s, "-ERR %s\r\n", text);
	if (++s->errors >= s->env->max_errors) {
		out(s, "-ERR Too many errors\r\n", sizeof("-ERR Too many errors\r\n") - 1);
		s->want_close = true;
	}
}

/* Opens and locks the maildrop, then TRANSACTION. false: the user may not
 * use POP (the caller refuses as for a wrong password); else answered. */
static bool enter_transaction(struct pop_session *s, const struct dir_record *u, const char *how)
{
	char path[4096], *err = NULL;
	enum store_mb_result rc;
	struct filter_query q = {
		.service = "pop",
		.client = (const struct sockaddr *)&s->client,
		.client_name = s->client_name,
		.client_name_verified = s->client_name_verified,
		.user = u->address,
		.server = (const struct sockaddr *)&s->local,
		.server_name = s->env->hostname,
	};

	switch (mc_login_check_user("pop_login", u, &q, s->env->filter, s->client_ip, how)) {
	case MC_USER_REFUSED:
		return false;
	case MC_USER_FILTERED:
		out(s, "-ERR [AUTH] Access denied\r\n", sizeof("-ERR [AUTH] Access denied\r\n") - 1);
		return true;
	case MC_USER_ALLOWED:
		break;
	}
	if (dir_remote_mailhost(s->dir, u) != NULL) {
		/* the maildrop is on the user's mailHost; POP has no referral
		 * (RFC 2449 and 3206 define none): [SYS/PERM], RFC 3206 4, says
		 * "not your credentials, do not retry here", and the text names
		 * the host. We do not proxy. */
		sp_log(SP_LOG_INFO, "pop_login",
		       "client=%s user=%s method=%s result=other_host mailhost=%s", s->client_ip,
		       u->address, how, dir_remote_mailhost(s->dir, u));
		outf(s, "-ERR [SYS/PERM] Your mailbox is on another server: %s\r\n",
		     dir_remote_mailhost(s->dir, u));
		return true;
	}
	if (store_maildir_path(s->env->store_root, u->address, path, sizeof(path)) < 0) {
		out(s, "-ERR [SYS/PERM] No maildrop\r\n", sizeof("-ERR [SYS/PERM] No maildrop\r\n") - 1);
		return true;
	}
	rc = store_mailbox_open(path, "INBOX", false, &s->mb, &err);
	if (rc != STORE_MB_OK) {
		sp_log(SP_LOG_ERR, "pop_maildrop", "user=%s why=\"%s\"", u->address, err);
		free(err);
		out(s, "-ERR [SYS/TEMP] Cannot open maildrop\r\n", sizeof("-ERR [SYS/TEMP] Cannot open maildrop\r\n") - 1);
		return true;
	}
	/* RFC 1939 4: an exclusive lock on the maildrop for the session */
	{
		char lock[4200];

		snprintf(lock, sizeof(lock), "%s/%s", path, POP_LOCK_NAME);
		s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			if (s->lock_fd >= 0)
				close(s->lock_fd);
			s->lock_fd = -1;
			store_mailbox_close(&s->mb);
			out(s, "-ERR [IN-USE] Maildrop is locked by another session\r\n", sizeof("-ERR [IN-USE] Maildrop is locked by another session\r\n") - 1);
			return true;
		}
	}
	snprintf(s->user, sizeof(s->user), "%s", u->address);
	snprintf(s->maildir, sizeof(s->maildir), "%s", path);
	s->deleted = sp_xcalloc(store_mailbox_count(s->mb) + 1, sizeof(bool));
	sp_log(SP_LOG_INFO, "pop_login", "client=%s user=%s method=%s tls=%s result=ok", s->client_ip,
	       u->address, how, s->tls ? "yes" : "no");
	set_state(s, POP_ST_TRANSACTION, how);
	out(s, "+OK Maildrop ready\r\n", sizeof("+OK Maildrop ready\r\n") - 1);
	return true;
}

static void auth_failed(struct pop_session *s, const char *user, const char *how, const char *text)
{
	char esc[128];

	sp_log(SP_LOG_NOTICE, "pop_login", "client=%s user=\"%s\" method=%s result=failed",
	       s->client_ip, sp_log_escape(esc, sizeof(esc), user, strlen(user)), how);
	outf(s, "-ERR [AUTH] %s\r\n", text);
	if (++s->auth_failures >= s->env->max_auth_failures)
		s->want_close = true;
}

static void dir_start_lookup(struct pop_session *s, enum pop_pending what, const char *user,
			     const char *pass, size_t pass_len);

/* The directory's answer for s->pending (on the loop, or inline without a
 * pool). rec is valid during the call only. */
static void dir_answer(struct pop_session *s, enum dir_status st, const struct dir_record *rec)
{
	enum pop_pending what = s->pending;

	s->pending = POP_PEND_NONE;
	if (st == DIR_TEMPFAIL) {
		mc_login_log_tempfail("pop_login", s->client_ip,
				      what == POP_PEND_EXTERNAL ? NULL : s->pend_user);
		out(s, "-ERR [SYS/TEMP] Directory unavailable, try again later\r\n",
		    sizeof("-ERR [SYS/TEMP] Directory unavailable, try again later\r\n") - 1);
		return;
	}
	switch (what) {
	case POP_PEND_USER:
	case POP_PEND_PLAIN: {
		const char *how = what == POP_PEND_USER ? "USER" : "PLAIN";

		if (st != DIR_FOUND || !enter_transaction(s, rec, how))
			auth_failed(s, s->pend_user, how, "Authentication failed");
		return;
	}
	case POP_PEND_EXTERNAL:
		switch (mc_login_external(st, rec, s->pend_user, s->env->admins, s->env->n_admins)) {
		case MC_EXTERNAL_SELF:
			if (!enter_transaction(s, rec, "EXTERNAL"))
				auth_failed(s, rec->address, "EXTERNAL",
					    "Not authorized to login as specified user");
			return;
		case MC_EXTERNAL_PROXY:
			snprintf(s->pend_admin, sizeof(s->pend_admin), "%s", rec->address);
			dir_start_lookup(s, POP_PEND_EXTERNAL_PROXY, s->pend_user, NULL, 0);
			return;
		case MC_EXTERNAL_DENY:
			break;
		}
		auth_failed(s, s->pend_user[0] != '\0' ? s->pend_user : "-", "EXTERNAL",
			    "Not authorized to login as specified user");
		return;
	case POP_PEND_EXTERNAL_PROXY:
		if (st == DIR_FOUND && rec->status == DIR_USER_ACTIVE) {
			sp_log(SP_LOG_NOTICE, "pop_proxy_login", "client=%s admin=%s user=%s",
			       s->client_ip, s->pend_admin, rec->address);
			if (enter_transaction(s, rec, "EXTERNAL-proxy"))
				return;
		}
		auth_failed(s, s->pend_user, "EXTERNAL", "Not authorized to login as specified user");
		return;
	default:
		return;
	}
}

static void dir_answer_cb(void *arg, enum dir_status st, const struct dir_record *rec)
{
	dir_answer(arg, st, rec);
}

static void dir_done(void *arg, enum dir_status st, const struct dir_record *rec)
{
	struct pop_session *s = arg;

	s->req = NULL;
	dir_answer(s, st, rec);
	if (s->req != NULL)
		return; /* a second request (EXTERNAL-proxy): wait again */
	pop_session_process(s);
	if (s->resume != NULL)
		s->resume(s->resume_arg); /* may free s */
}

/* Asks the directory: a password (pass != NULL), the certificate (user
 * NULL) or a user by address. Off the loop on the directory's pool; with
 * none (tests) inline. */
static void dir_start_lookup(struct pop_session *s, enum pop_pending what, const char *user,
			     const char *pass, size_t pass_len)
{
	s->pending = what;
	s->req = mc_login_ask(s->dir, &s->tls_info, user, pass, pass_len, dir_answer_cb, dir_done, s);
}

static void password_login(struct pop_session *s, const char *user, const char *pass,
			   size_t pass_len, enum pop_pending what)
{
	snprintf(s->pend_user, sizeof(s->pend_user), "%s", user);
	dir_start_lookup(s, what, user, pass, pass_len);
}

static void sasl_finish(struct pop_session *s, const char *b64, size_t len)
{
	uint8_t *dec;
	ssize_t n;

	s->mode = MODE_COMMAND;
	if (len == 1 && b64[0] == '*') {
		out(s, "-ERR Authentication cancelled\r\n", sizeof("-ERR Authentication cancelled\r\n") - 1);
		return;
	}
	dec = sp_xmalloc(len + 1);
	n = (len == 1 && b64[0] == '=') ? 0 : smtp_base64_decode(b64, len, dec, len + 1);
	if (n < 0) {
		sp_free_secret(dec, len + 1);
		error_reply(s, "Invalid base64");
		return;
	}
	if (s->mech == MECH_PLAIN) {
		struct smtp_plain p;
		char authc[POP_ADDR_CAP], *pass;

		if (smtp_sasl_plain_split(dec, (size_t)n, &p) < 0 || p.authcid_len >= sizeof(authc)) {
			error_reply(s, "Malformed PLAIN message");
		} else {
			memcpy(authc, p.authcid, p.authcid_len);
			authc[p.authcid_len] = '\0';
			if (p.authzid_len > 0 &&
			    (p.authzid_len != p.authcid_len || strncasecmp(p.authzid, authc, p.authcid_len) != 0)) {
				auth_failed(s, authc, "PLAIN", "Not authorized to login as specified user");
			} else {
				pass = sp_xstrndup(p.passwd, p.passwd_len);
				password_login(s, authc, pass, p.passwd_len, POP_PEND_PLAIN);
				sp_free_secret(pass, p.passwd_len);
			}
		}
	} else if ((size_t)n >= sizeof(s->pend_user) || memchr(dec, '\0', (size_t)n) != NULL) {
		error_reply(s, "Malformed authorization identity");
	} else {
		/* the user certmap.conf maps the certificate to, or (a store
		 * administrator only) another user named as authzid */
		memcpy(s->pend_user, dec, (size_t)n);
		s->pend_user[n] = '\0';
		dir_start_lookup(s, POP_PEND_EXTERNAL, NULL, NULL, 0);
	}
	sp_free_secret(dec, len + 1);
}

static void cmd_capa(struct pop_session *s)
{
	out(s, "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n", sizeof("+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n") - 1);
	if (s->state == POP_ST_AUTHORIZATION) {
		bool plain = plaintext_allowed(s), ext = has_client_cert(s);

		if (plain)
			out(s, "USER\r\n", sizeof("USER\r\n") - 1);
		if (plain || ext)
			outf(s, "SASL%s%s\r\n", ext ? " EXTERNAL" : "", plain ? " PLAIN" : "");
		if (!s->tls && s->env->starttls && !s->backend)
			out(s, "STLS\r\n", sizeof("STLS\r\n") - 1);
	}
	out(s, "IMPLEMENTATION Sealpost\r\n.\r\n", sizeof("IMPLEMENTATION Sealpost\r\n.\r\n") - 1);
}

/* A message number argument that names a message not marked deleted. */
static int msg_arg(struct pop_session *s, const struct pop_cmd *c, size_t i, size_t *idx)
{
	uint32_t n;

	if (c->n_args <= i || pop_parse_number(c->arg[i], c->arg_len[i], &n) < 0) {
		error_reply(s, "Bad message number");
		return -1;
	}
	if (n > store_mailbox_count(s->mb) || s->deleted[n - 1]) {
		error_reply(s, "No such message");
		return -1;
	}
	*idx = n - 1;
	return 0;
}

/* The message, dot-stuffed with CRLF lines (RFC 1939 3), queued for sending;
 * lines < 0: all of it, else the header and that many body lines (TOP). */
static void queue_message(struct pop_session *s, size_t idx, long lines)
{
	int fd = store_mailbox_open_msg(s->mb, idx);
	struct stat st;
	uint8_t *data;
	size_t got = 0, o = 0;
	bool in_body = false, bol = true;
	long body_lines = 0;

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > 512 * 1024 * 1024) {
		if (fd >= 0)
			close(fd);
		out(s, "-ERR [SYS/TEMP] Message vanished\r\n", sizeof("-ERR [SYS/TEMP] Message vanished\r\n") - 1);
		return;
	}
	data = sp_xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	/* worst case: every byte a LF (-> CRLF) or a dot at a line start */
	s->send = sp_xmalloc(2 * got + 64);
	o = (size_t)snprintf((char *)s->send, 64, "+OK %llu octets\r\n",
			     (unsigned long long)store_mailbox_msg(s->mb, idx)->size);
	for (size_t i = 0; i < got; i++) {
		uint8_t c = data[i];

		if (lines >= 0 && in_body && bol && body_lines >= lines)
			break;
		if (bol && c == '.')
			s->send[o++] = '.';
		if (c == '\n') {
			if (o == 0 || s->send[o - 1] != '\r')
				s->send[o++] = '\r';
			s->send[o++] = '\n';
			if (bol && !in_body)
				in_body = true; /* the empty line */
			else if (in_body)
				body_lines++;
			bol = true;
			continue;
		}
		if (c == '\r' && i + 1 < got && data[i + 1] == '\n') {
			s->send[o++] = '\r';
			continue;
		}
		s->send[o++] = c;
		bol = false;
	}
	if (!bol) {
		s->send[o++] = '\r';
		s->send[o++] = '\n';
	}
	memcpy(s->send + o, ".\r\n", 3);
	s->send_len = o + 3;
	s->send_off = 0;
	free(data);
}

struct uid_set {
	uint32_t *uids;
	size_t n;
};

static bool deleted_here(uint32_t uid, void *arg)
{
	const struct uid_set *set = arg;

	for (size_t i = 0; i < set->n; i++)
		if (set->uids[i] == uid)
			return true;
	return false;
}

/* The maildrop is let go before the reply to QUIT goes out, so a client
 * that logs in again as soon as it reads +OK is not told [IN-USE]. */
static void release_maildrop(struct pop_session *s)
{
	store_mailbox_close(&s->mb);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
}

static void update_and_quit(struct pop_session *s)
{
	size_t n = store_mailbox_count(s->mb);
	struct uid_set set = {sp_xcalloc(n + 1, sizeof(uint32_t)), 0};
	char *err = NULL;

	/* RFC 1939 6: UPDATE removes the messages marked deleted, and only
	 * those (a \Deleted flag set over IMAP is left alone) */
	set_state(s, POP_ST_UPDATE, "QUIT");
	for (size_t i = 0; i < n; i++) {
		const struct store_msg *m = store_mailbox_msg(s->mb, i);

		if (!s->deleted[i])
			continue;
		if (store_mailbox_set_flags(s->mb, i, m->flags | STORE_F_DELETED, &err) != STORE_MB_OK) {
			free(err);
			err = NULL;
			continue;
		}
		set.uids[set.n++] = m->uid;
	}
	if (set.n > 0) {
		struct store_changes ch;

		if (store_mailbox_expunge(s->mb, deleted_here, &set, &ch, &err) != STORE_MB_OK) {
			sp_log(SP_LOG_ERR, "pop_update", "user=%s why=\"%s\"", s->user, err);
			free(err);
			free(set.uids);
			release_maildrop(s);
			out(s, "-ERR [SYS/TEMP] Some deleted messages not removed\r\n",
			    sizeof("-ERR [SYS/TEMP] Some deleted messages not removed\r\n") - 1);
			s->want_close = true;
			return;
		}
	}
	release_maildrop(s);
	outf(s, "+OK %s POP3 server signing off (%zu messages deleted)\r\n", s->env->hostname, set.n);
	free(set.uids);
	s->want_close = true;
}

static void run_command(struct pop_session *s, const struct pop_cmd *c)
{
	size_t idx, n;

	if (c->verb == POP_CAPA) {
		cmd_capa(s);
		return;
	}
	if (c->verb == POP_QUIT) {
		if (s->state == POP_ST_TRANSACTION) {
			update_and_quit(s);
		} else {
			outf(s, "+OK %s POP3 server signing off\r\n", s->env->hostname);
			s->want_close = true;
		}
		return;
	}
	if (s->state == POP_ST_AUTHORIZATION) {
		switch (c->verb) {
		case POP_USER:
			if (!plaintext_allowed(s)) {
				out(s, "-ERR [AUTH] Plaintext authentication needs TLS\r\n", sizeof("-ERR [AUTH] Plaintext authentication needs TLS\r\n") - 1);
				return;
			}
			if (c->n_args != 1 || c->arg_len[0] >= sizeof(s->user_arg)) {
				error_reply(s, "USER name");
				return;
			}
			snprintf(s->user_arg, sizeof(s->user_arg), "%.*s", (int)c->arg_len[0], c->arg[0]);
			out(s, "+OK Send PASS\r\n", sizeof("+OK Send PASS\r\n") - 1);
			return;
		case POP_PASS: {
			char *pass;

			if (s->user_arg[0] == '\0') {
				error_reply(s, "USER first");
				return;
			}
			if (c->rest == NULL) {
				error_reply(s, "PASS password");
				return;
			}
			pass = sp_xstrndup(c->rest, c->rest_len);
			password_login(s, s->user_arg, pass, c->rest_len, POP_PEND_USER);
			sp_free_secret(pass, c->rest_len);
			s->user_arg[0] = '\0';
			return;
		}
		case POP_APOP:
			error_reply(s, "APOP is not offered");
			return;
		case POP_STLS:
			if (s->tls || !s->env->starttls || s->backend) {
				error_reply(s, "TLS is not available here");
				return;
			}
			out(s, "+OK Begin TLS negotiation\r\n", sizeof("+OK Begin TLS negotiation\r\n") - 1);
			s->want_starttls = true; /* RFC 2595 4: what follows is discarded */
			return;
		case POP_AUTH:
			if (c->n_args == 0) {
				error_reply(s, "AUTH mechanism");
				return;
			}
			if (c->arg_len[0] == 5 && strncasecmp(c->arg[0], "PLAIN", 5) == 0) {
				if (!plaintext_allowed(s)) {
					out(s, "-ERR [AUTH] Plaintext authentication needs TLS\r\n", sizeof("-ERR [AUTH] Plaintext authentication needs TLS\r\n") - 1);
					return;
				}
				s->mech = MECH_PLAIN;
			} else if (c->arg_len[0] == 8 && strncasecmp(c->arg[0], "EXTERNAL", 8) == 0) {
				if (!has_client_cert(s)) {
					error_reply(s, "Mechanism not available");
					return;
				}
				s->mech = MECH_EXTERNAL;
			} else {
				error_reply(s, "Unsupported mechanism");
				return;
			}
			if (c->n_args >= 2) {
				sasl_finish(s, c->arg[1], c->arg_len[1]); /* RFC 5034 initial response */
				return;
			}
			s->mode = MODE_AUTH;
			out(s, "+ \r\n", sizeof("+ \r\n") - 1);
			return;
		default:
			error_reply(s, "Not in TRANSACTION state");
			return;
		}
	}
	/* TRANSACTION (RFC 1939 5) */
	n = store_mailbox_count(s->mb);
	switch (c->verb) {
	case POP_STAT: {
		size_t count = 0;
		uint64_t bytes = 0;

		for (size_t i = 0; i < n; i++)
			if (!s->deleted[i]) {
				count++;
				bytes += store_mailbox_msg(s->mb, i)->size;
			}
		outf(s, "+OK %zu %llu\r\n", count, (unsigned long long)bytes);
		return;
	}
	case POP_LIST:
	case POP_UIDL: {
		bool uidl = c->verb == POP_UIDL;

		if (c->n_args > 0) {
			if (msg_arg(s, c, 0, &idx) < 0)
				return;
			if (uidl)
				outf(s, "+OK %zu %u.%u\r\n", idx + 1, store_mailbox_uidvalidity(s->mb),
				     store_mailbox_msg(s->mb, idx)->uid);
			else
				outf(s, "+OK %zu %llu\r\n", idx + 1,
				     (unsigned long long)store_mailbox_msg(s->mb, idx)->size);
			return;
		}
		out(s, "+OK\r\n", sizeof("+OK\r\n") - 1);
		for (size_t i = 0; i < n; i++) {
			if (s->deleted[i])
				continue;
			if (uidl)
				outf(s, "%zu %u.%u\r\n", i + 1, store_mailbox_uidvalidity(s->mb),
				     store_mailbox_msg(s->mb, i)->uid);
			else
				outf(s, "%zu %llu\r\n", i + 1,
				     (unsigned long long)store_mailbox_msg(s->mb, i)->size);
		}
		out(s, ".\r\n", sizeof(".\r\n") - 1);
		return;
	}
	case POP_RETR:
		if (msg_arg(s, c, 0, &idx) == 0)
			queue_message(s, idx, -1);
		return;
	case POP_TOP: {
		uint32_t lines;

		if (c->n_args != 2 || pop_parse_number(c->arg[1], c->arg_len[1], &lines) < 0) {
			/* RFC 1939 7: TOP msg n, n may be 0 */
			if (!(c->n_args == 2 && c->arg_len[1] == 1 && c->arg[1][0] == '0')) {
				error_reply(s, "TOP msg lines");
				return;
			}
			lines = 0;
		}
		if (msg_arg(s, c, 0, &idx) == 0)
			queue_message(s, idx, (long)lines);
		return;
	}
	case POP_DELE:
		if (msg_arg(s, c, 0, &idx) == 0) {
			s->deleted[idx] = true;
			outf(s, "+OK Message %zu deleted\r\n", idx + 1);
		}
		return;
	case POP_NOOP:
		out(s, "+OK\r\n", sizeof("+OK\r\n") - 1);
		return;
	case POP_RSET:
		memset(s->deleted, 0, n * sizeof(bool));
		out(s, "+OK\r\n", sizeof("+OK\r\n") - 1);
		return;
	default:
		error_reply(s, "Not in AUTHORIZATION state");
		return;
	}
}

static bool output_full(const struct pop_session *s)
{
	return s->out_len - s->out_off >= POP_OUT_HIGH_WATER;
}

void pop_session_process(struct pop_session *s)
{
	while (s->req == NULL && !s->want_close && !s->want_starttls && !output_full(s)) {
		uint8_t *crlf = NULL;
		size_t len;

		if (s->send != NULL) {
			size_t k = s->send_len - s->send_off;

			if (k > POP_CHUNK)
				k = POP_CHUNK;
			out(s, s->send + s->send_off, k);
			s->send_off += k;
			if (s->send_off == s->send_len) {
				free(s->send);
				s->send = NULL;
			}
			continue;
		}
		for (size_t i = 0; i + 1 < s->in_len; i++)
			if (s->in[i] == '\r' && s->in[i + 1] == '\n') {
				crlf = s->in + i;
				break;
			}
		if (crlf == NULL) {
			size_t max = s->mode == MODE_AUTH ? POP_AUTH_LINE_MAX : POP_LINE_MAX;

			if (s->in_len > max) {
				if (!s->discard)
					error_reply(s, "Line too long");
				s->discard = true;
				s->in[0] = s->in[s->in_len - 1];
				s->in_len = 1;
			}
			break;
		}
		len = (size_t)(crlf - s->in);
		if (s->discard) {
			s->discard = false;
		} else if (s->mode == MODE_AUTH) {
			sasl_finish(s, (const char *)s->in, len);
		} else {
			struct pop_cmd c;
			const char *why;

			if (pop_parse_command((const char *)s->in, len, &c, &why) < 0)
				error_reply(s, why);
			else
				run_command(s, &c);
		}
		memmove(s->in, crlf + 2, s->in_len - len - 2);
		s->in_len -= len + 2;
		if (s->want_starttls)
			s->in_len = 0;
	}
}

size_t pop_session_input_room(const struct pop_session *s)
{
	if (s->want_close || s->want_starttls || output_full(s) || s->send != NULL || s->req != NULL)
		return 0;
	return sizeof(s->in) - s->in_len;
}

size_t pop_session_feed(struct pop_session *s, const void *data, size_t len)
{
	size_t room = pop_session_input_room(s);

	if (len > room)
		len = room;
	memcpy(s->in + s->in_len, data, len);
	s->in_len += len;
	pop_session_process(s);
	return len;
}

void pop_session_eof(struct pop_session *s)
{
	/* RFC 1939 6: without QUIT nothing is deleted */
	s->want_close = true;
}

const uint8_t *pop_session_output(const struct pop_session *s, size_t *len_r)
{
	*len_r = s->out_len - s->out_off;
	return s->out + s->out_off;
}

void pop_session_output_consumed(struct pop_session *s, size_t n)
{
	s->out_off += n;
	if (s->out_off >= s->out_len)
		s->out_off = s->out_len = 0;
}

unsigned pop_session_wants(const struct pop_session *s)
{
	if (s->want_close)
		return POP_WANT_CLOSE;
	if (s->want_starttls)
		return POP_WANT_STARTTLS;
	return pop_session_input_room(s) > 0 ? POP_WANT_READ : 0;
}

void pop_session_tls_ready(struct pop_session *s, const struct sp_proxy_info *facts)
{
	s->want_starttls = false;
	s->tls = true;
	s->tls_info = *facts;
	s->in_len = 0;
}

long pop_session_timeout_ms(const struct pop_session *s)
{
	return s->env->timeout_ms;
}

void pop_session_timeout(struct pop_session *s)
{
	/* RFC 1939 3: an autologout timer; no UPDATE */
	out(s, "-ERR Autologout; idle for too long\r\n", sizeof("-ERR Autologout; idle for too long\r\n") - 1);
	s->want_close = true;
}

enum pop_state pop_session_state(const struct pop_session *s)
{
	return s->state;
}

const char *pop_session_user(const struct pop_session *s)
{
	return s->user[0] != '\0' ? s->user : NULL;
}

struct pop_session *pop_session_new(const struct pop_env *env, const struct pop_conn_info *ci)
{
	struct pop_session *s = sp_xcalloc(1, sizeof(*s));
	unsigned port;

	s->env = env;
	s->lock_fd = -1;
	s->dir = env->dir != NULL ? dir_ref(env->dir) : dir_users_new(NULL, env->users, NULL, env->pool);
	s->client = ci->client;
	s->local = ci->local;
	s->backend = ci->backend;
	s->client_name = ci->client_name;
	s->client_name_verified = ci->client_name_verified;
	smtp_sockaddr_text(&s->client, s->client_ip, sizeof(s->client_ip), &port);
	if (ci->tls != NULL) {
		s->tls = true;
		s->tls_info = *ci->tls;
	}
	/* POP has no PREAUTH: even with a certificate the session starts in
	 * AUTHORIZATION (RFC 1939 4); the client uses AUTH EXTERNAL */
	outf(s, "+OK %s POP3 server ready\r\n", env->hostname);
	return s;
}

void pop_session_set_resume(struct pop_session *s, void (*resume)(void *arg), void *arg)
{
	s->resume = resume;
	s->resume_arg = arg;
}

void pop_session_free(struct pop_session **sp)
{
	struct pop_session *s = *sp;

	if (s == NULL)
		return;
	dir_req_cancel(s->req);
	dir_unref(&s->dir);
	store_mailbox_close(&s->mb);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->deleted);
	free(s->send);
	explicit_bzero(s->in, sizeof(s->in)); /* may hold a password */
	free(s->out);
	free(s);
	*sp = NULL;
}

const struct pop_env *pop_session_env(const struct pop_session *s)
{
	return s->env;
}
