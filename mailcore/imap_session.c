/* The IMAP4rev1 session (RFC 3501): states, the one transition function,
 * input framing, authentication (LOGIN, AUTHENTICATE PLAIN/EXTERNAL with
 * SASL-IR, PREAUTH for a mapped client certificate on IMAPS), STARTTLS,
 * SELECT/EXAMINE/CLOSE/UNSELECT/EXPUNGE/STORE/COPY/IDLE and the reporting
 * of other sessions' changes. Driven with bytes; no sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/filter.h"
#include "mailcore/imap_int.h"
#include "mailcore/dir.h"
#include "mailcore/mailcore.h"
#include "mailcore/mc_login.h"

#define CAPS_BASE "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS UNSELECT QUOTA CHILDREN"

static const char *const state_names[] = {"not-authenticated", "authenticated", "selected",
					  "logout"};

const char *imap_session_state_name(enum imap_state st)
{
	return (unsigned)st < 4 ? state_names[st] : "?";
}

/* ------------------------------------------------------------- output */

static void obuf_reserve(struct obuf *b, size_t more)
{
	if (b->off > 0 && b->off == b->len) {
		b->off = b->len = 0;
	}
	if (b->len + more <= b->cap)
		return;
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->len + more <= b->cap)
			return;
	}
	while (b->cap < b->len + more)
		b->cap = b->cap == 0 ? 4096 : b->cap * 2;
	b->data = sp_xrealloc(b->data, b->cap, 1);
}

void imap_out(struct imap_session *s, const void *data, size_t len)
{
	obuf_reserve(&s->out, len);
	memcpy(s->out.data + s->out.len, data, len);
	s->out.len += len;
}

void imap_outf(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* one formatting pass when it fits the room there is (most do) */
	obuf_reserve(&s->out, 256);
	va_start(ap, fmt);
	n = vsnprintf((char *)s->out.data + s->out.len, s->out.cap - s->out.len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= s->out.cap - s->out.len) {
		obuf_reserve(&s->out, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf((char *)s->out.data + s->out.len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	s->out.len += (size_t)n;
}

void imap_tagged(struct imap_session *s, const char *tag, const char *status, const char *fmt, ...)
{
	va_list ap;
	char text[512];

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	imap_outf(s, "%s %s %s\r\n", tag, status, text);
}

void imap_out_string(struct imap_session *s, const char *str, size_t len)
{
	bool quotable = len < 1024;

	for (size_t i = 0; i < len && quotable; i++) {
		unsigned char c = (unsigned char)str[i];

		if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
			quotable = false;
	}
	if (!quotable) {
		imap_outf(s, "{%zu}\r\n", len);
		imap_out(s, str, len);
		return;
	}
	/* at most two bytes out per byte in, and the quotes */
	obuf_reserve(&s->out, 2 * len + 2);
	{
		uint8_t *o = s->out.data + s->out.len;

		*o++ = '"';
		for (size_t i = 0; i < len; i++) {
			if (str[i] == '"' || str[i] == '\\')
				*o++ = '\\';
			*o++ = (uint8_t)str[i];
		}
		*o++ = '"';
		s->out.len = (size_t)(o - s->out.data);
	}
}

void imap_out_nstring(struct imap_session *s, const char *str)
{
	if (str == NULL)
		imap_out(s, "NIL", sizeof("NIL") - 1);
	else
		imap_out_string(s, str, strlen(str));
}

void imap_out_flags(struct imap_session *s, const struct store_msg *m)
{
	const struct store_keywords *kw = s->mb != NULL ? store_mailbox_keywords(s->mb) : NULL;
	unsigned flags = m->flags;
	bool recent = m->recent;
	static const struct {
		unsigned f;
		const char *name;
	} names[] = {{STORE_F_ANSWERED, "\\Answered"}, {STORE_F_FLAGGED, "\\Flagged"},
		     {STORE_F_DELETED, "\\Deleted"},   {STORE_F_SEEN, "\\Seen"},
		     {STORE_F_DRAFT, "\\Draft"}};
	bool first = true;

	imap_out(s, "(", sizeof("(") - 1);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(flags & names[i].f))
			continue;
		imap_outf(s, "%s%s", first ? "" : " ", names[i].name);
		first = false;
	}
	if (recent) {
		imap_outf(s, "%s\\Recent", first ? "" : " ");
		first = false;
	}
	for (int i = 0; kw != NULL && i < STORE_KEYWORDS_MAX; i++) {
		/* a letter without a name in dovecot-keywords is not shown */
		if (!(m->keywords & (1u << i)) || kw->name[i] == NULL)
			continue;
		imap_outf(s, "%s%s", first ? "" : " ", kw->name[i]);
		first = false;
	}
	imap_out(s, ")", sizeof(")") - 1);
}

static uint32_t keyword_mask(const struct store_keywords *kw)
{
	uint32_t mask = 0;

	for (int i = 0; i < STORE_KEYWORDS_MAX; i++)
		if (kw->name[i] != NULL)
			mask |= 1u << i;
	return mask;
}

void imap_out_flag_lists(struct imap_session *s, bool always)
{
	static const char sys[] = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
	const struct store_keywords *kw;
	uint32_t mask;

	if (s->mb == NULL)
		return;
	kw = store_mailbox_keywords(s->mb);
	mask = keyword_mask(kw);
	if (!always && mask == s->reported_kw)
		return;
	s->reported_kw = mask;
	/* RFC 3501 7.2.6: FLAGS lists what the mailbox knows; 7.1 PERMANENTFLAGS
	 * what can be kept, \* while a keyword slot is free */
	imap_outf(s, "* FLAGS (%s", sys);
	for (int i = 0; i < STORE_KEYWORDS_MAX; i++)
		if (kw->name[i] != NULL)
			imap_outf(s, " %s", kw->name[i]);
	imap_out(s, ")\r\n", 3);
	imap_out(s, "* OK [PERMANENTFLAGS (", sizeof("* OK [PERMANENTFLAGS (") - 1);
	if (!s->read_only) {
		imap_out(s, sys, sizeof(sys) - 1);
		for (int i = 0; i < STORE_KEYWORDS_MAX; i++)
			if (kw->name[i] != NULL)
				imap_outf(s, " %s", kw->name[i]);
		if (store_keywords_count(kw) < STORE_KEYWORDS_MAX)
			imap_out(s, " \\*", 3);
	}
	imap_out(s, ")] Flags permitted\r\n", sizeof(")] Flags permitted\r\n") - 1);
}

/* A keyword named once more (case-insensitive) is counted once. */
static int add_keyword(struct imap_keywords *kw, const char *name, size_t len)
{
	for (size_t i = 0; i < kw->n; i++)
		if (strlen(kw->name[i]) == len && strncasecmp(kw->name[i], name, len) == 0)
			return 0;
	if (kw->n == STORE_KEYWORDS_MAX)
		return -2;
	memcpy(kw->name[kw->n], name, len);
	kw->name[kw->n++][len] = '\0';
	return 0;
}

int imap_parse_flags(const struct imap_cmd *cmd, const struct imap_arg *a, unsigned *flags_r,
		     struct imap_keywords *kw)
{
	static const struct {
		const char *name;
		unsigned f;
	} names[] = {{"\\Answered", STORE_F_ANSWERED}, {"\\Flagged", STORE_F_FLAGGED},
		     {"\\Deleted", STORE_F_DELETED},   {"\\Seen", STORE_F_SEEN},
		     {"\\Draft", STORE_F_DRAFT}};
	const struct imap_arg *f;
	bool list = a != NULL && a->type == IMAP_ARG_LIST;

	if (a == NULL)
		return -1;
	for (f = list ? imap_arg_child(cmd, a) : a; f != NULL; f = list ? imap_arg_next(cmd, f) : NULL) {
		bool known = false;

		if (f->type != IMAP_ARG_ATOM)
			return -1;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (imap_arg_is(f, names[i].name)) {
				*flags_r |= names[i].f;
				known = true;
			}
		}
		/* \Recent cannot be stored; other \-flags are unknown system flags */
		if (!known && f->len > 0 && f->s[0] == '\\' && !imap_arg_is(f, "\\Recent"))
			return -1;
		if (!known && f->len > 0 && f->s[0] != '\\') {
			/* RFC 3501 9: flag-keyword = atom */
			if (!store_keyword_valid(f->s, f->len))
				return -1;
			if (add_keyword(kw, f->s, f->len) < 0)
				return -2;
		}
	}
	return 0;
}

/* ------------------------------------------------------------- state */

/* The one place the state changes. */
static void set_state(struct imap_session *s, enum imap_state to, const char *why)
{
	/* a store job may be using the mailbox: it closes when the job ends */
	if (to != IMAP_ST_SELECTED && s->mb != NULL && s->job == NULL) {
		imap_fetch_clear(&s->fetch);
		imap_cache_clear(&s->cache);
		store_mailbox_close(&s->mb);
	}
	sp_log(SP_LOG_DEBUG, "imap_state", "client=%s from=%s to=%s why=\"%s\"", s->client_ip,
	       imap_session_state_name(s->state), imap_session_state_name(to), why);
	s->state = to;
	if (to == IMAP_ST_LOGOUT)
		s->want_close = true;
}

static bool plaintext_allowed(const struct imap_session *s)
{
	int need = s->env->plaintext_min_cipher;

	if (need <= 0)
		return true;
	return s->tls && smtp_cipher_bits(s->tls_info.tls_cipher) >= need;
}

/* tlsd verified a client certificate: EXTERNAL may be tried (certmap.conf
 * decides at AUTHENTICATE time who it is). */
static bool has_client_cert(const struct imap_session *s)
{
	const struct sp_proxy_info *t = &s->tls_info;

	return s->tls && t->tls_verify == 0 &&
	       (t->tls_client & (SP_PP2_CLIENT_CERT_CONN | SP_PP2_CLIENT_CERT_SESS)) != 0;
}

static void out_capabilities(struct imap_session *s)
{
	imap_out(s, CAPS_BASE, strlen(CAPS_BASE));
	if (s->state == IMAP_ST_NOT_AUTHENTICATED) {
		if (!s->tls && s->env->starttls)
			imap_out(s, " STARTTLS", sizeof(" STARTTLS") - 1);
		if (!plaintext_allowed(s))
			imap_out(s, " LOGINDISABLED", sizeof(" LOGINDISABLED") - 1);
		else
			imap_out(s, " AUTH=PLAIN", sizeof(" AUTH=PLAIN") - 1);
		if (has_client_cert(s))
			imap_out(s, " AUTH=EXTERNAL", sizeof(" AUTH=EXTERNAL") - 1);
		/* RFC 2221 3: logins may be referred to the user's mailHost
		 * (LDAP mailHost or users-file mailhost=) */
		imap_out(s, " LOGIN-REFERRALS", sizeof(" LOGIN-REFERRALS") - 1);
	}
}

/* The user's mailbox is on another store host (mailHost): RFC 2221 login
 * referral, we do not proxy. LOGIN / AUTHENTICATE (4.1): the tagged NO
 * with [REFERRAL imap://user;AUTH=*@host/] (RFC 2192 URL, the user
 * %-encoded); the client logs in there with the same credentials.
 * PREAUTH has no command to answer: RFC 2221 4.2, an untagged BYE with
 * the referral at connection start, and the connection closes. */
static void login_referral(struct imap_session *s, const char *tag, const struct dir_record *u,
			   const char *how)
{
	static const char ok_chars[] = "-._~!$&'()*+,=";
	const char *host = dir_remote_mailhost(s->dir, u);
	char user[3 * DIR_ADDR_MAX + 1];
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)u->address; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr(ok_chars, *p) != NULL)
			user[o++] = (char)*p;
		else
			o += (size_t)snprintf(user + o, sizeof(user) - o, "%%%02X", *p);
	}
	user[o] = '\0';
	sp_log(SP_LOG_INFO, "imap_login", "client=%s user=%s method=%s result=referral mailhost=%s",
	       s->client_ip, u->address, how, host);
	if (tag != NULL) {
		imap_tagged(s, tag, "NO", "[REFERRAL imap://%s;AUTH=*@%s/] Mailbox is on %s", user, host,
			    host);
		return;
	}
	imap_outf(s, "* BYE [REFERRAL imap://%s;AUTH=*@%s/] Mailbox is on %s\r\n", user, host, host);
	set_state(s, IMAP_ST_LOGOUT, "referral");
}

/* After the identity is settled: the per-user checks, then AUTHENTICATED
 * (or a referral to the user's mailHost). */
static bool login_as(struct imap_session *s, const char *tag, const struct dir_record *u,
		     const char *how)
{
	char path[4096];
	struct filter_query q = {
		.service = "imap",
		.client = (const struct sockaddr *)&s->client,
		.client_name = s->client_name,
		.client_name_verified = s->client_name_verified,
		.user = u->address,
		.server = (const struct sockaddr *)&s->local,
		.server_name = s->env->hostname,
	};

	switch (mc_login_check_user("imap_login", u, &q, s->env->filter, s->client_ip, how)) {
	case MC_USER_REFUSED:
		return false; /* refused like a wrong password: the client learns nothing more */
	case MC_USER_FILTERED:
		if (tag != NULL)
			imap_tagged(s, tag, "NO", "[AUTHORIZATIONFAILED] Access denied");
		return true; /* answered */
	case MC_USER_ALLOWED:
		break;
	}
	if (dir_remote_mailhost(s->dir, u) != NULL) {
		login_referral(s, tag, u, how);
		return true;
	}
	if (store_maildir_path(s->env->store_root, u->address, path, sizeof(path)) < 0) {
		if (tag != NULL)
			imap_tagged(s, tag, "NO", "[UNAVAILABLE] No mail store for this user");
		return true;
	}
	snprintf(s->user, sizeof(s->user), "%s", u->address);
	snprintf(s->maildir, sizeof(s->maildir), "%s", path);
	s->quota = u->quota;
	sp_log(SP_LOG_INFO, "imap_login", "client=%s user=%s method=%s tls=%s result=ok", s->client_ip,
	       u->address, how, s->tls ? "yes" : "no");
	set_state(s, IMAP_ST_AUTHENTICATED, how);
	if (tag != NULL) {
		imap_outf(s, "%s OK [CAPABILITY ", tag);
		out_capabilities(s);
		imap_out(s, "] User logged in\r\n", sizeof("] User logged in\r\n") - 1);
	}
	return true;
}

static void auth_failed(struct imap_session *s, const char *tag, const char *user, const char *how,
			const char *text)
{
	char esc[128];

	sp_log(SP_LOG_NOTICE, "imap_login", "client=%s user=\"%s\" method=%s result=failed",
	       s->client_ip, sp_log_escape(esc, sizeof(esc), user, strlen(user)), how);
	imap_tagged(s, tag, "NO", "%s", text);
	if (++s->auth_failures >= s->env->max_auth_failures) {
		imap_out(s, "* BYE Too many authentication failures\r\n", sizeof("* BYE Too many authentication failures\r\n") - 1);
		set_state(s, IMAP_ST_LOGOUT, "auth failures");
	}
}

static void greet(struct imap_session *s, const struct dir_record *u)
{
	if (u != NULL && login_as(s, NULL, u, "certificate") && s->state == IMAP_ST_AUTHENTICATED) {
		imap_out(s, "* PREAUTH [CAPABILITY ", sizeof("* PREAUTH [CAPABILITY ") - 1);
		out_capabilities(s);
		imap_outf(s, "] %s IMAP4rev1 server, logged in as %s\r\n", s->env->hostname, s->user);
		return;
	}
	if (s->state == IMAP_ST_LOGOUT)
		return; /* referred elsewhere (BYE [REFERRAL]) */
	imap_out(s, "* OK [CAPABILITY ", sizeof("* OK [CAPABILITY ") - 1);
	out_capabilities(s);
	imap_outf(s, "] %s IMAP4rev1 server ready\r\n", s->env->hostname);
}

static void dir_start_lookup(struct imap_session *s, enum imap_pending what, const char *user,
			     const char *pass, size_t pass_len);

/* The directory's answer for s->pending (on the loop, or inline without a
 * pool). rec is valid during the call only. */
static void dir_answer(struct imap_session *s, enum dir_status st, const struct dir_record *rec)
{
	enum imap_pending what = s->pending;
	const char *tag = s->pend_tag;

	s->pending = IMAP_PEND_NONE;
	if (what == IMAP_PEND_GREETING) {
		s->greeting_pending = false;
		if (st == DIR_TEMPFAIL)
			sp_log(SP_LOG_NOTICE, "imap_preauth", "client=%s result=tempfail why=\"directory unavailable\"",
			       s->client_ip);
		greet(s, st == DIR_FOUND && rec->status == DIR_USER_ACTIVE ? rec : NULL);
		return;
	}
	if (st == DIR_TEMPFAIL) {
		mc_login_log_tempfail("imap_login", s->client_ip,
				      what == IMAP_PEND_EXTERNAL ? NULL : s->pend_user);
		imap_tagged(s, tag, "NO", "[UNAVAILABLE] Directory unavailable, try again later");
		return;
	}
	switch (what) {
	case IMAP_PEND_LOGIN:
	case IMAP_PEND_PLAIN: {
		const char *how = what == IMAP_PEND_LOGIN ? "LOGIN" : "PLAIN";

		if (st != DIR_FOUND || !login_as(s, tag, rec, how))
			auth_failed(s, tag, s->pend_user, how, "[AUTHENTICATIONFAILED] Authentication failed");
		return;
	}
	case IMAP_PEND_EXTERNAL:
		switch (mc_login_external(st, rec, s->pend_user, s->env->admins, s->env->n_admins)) {
		case MC_EXTERNAL_SELF:
			if (!login_as(s, tag, rec, "EXTERNAL"))
				auth_failed(s, tag, rec->address, "EXTERNAL",
					    "Not authorized to login as specified user");
			return;
		case MC_EXTERNAL_PROXY:
			snprintf(s->pend_admin, sizeof(s->pend_admin), "%s", rec->address);
			dir_start_lookup(s, IMAP_PEND_EXTERNAL_PROXY, s->pend_user, NULL, 0);
			return;
		case MC_EXTERNAL_DENY:
			break;
		}
		auth_failed(s, tag, s->pend_user[0] != '\0' ? s->pend_user : "-", "EXTERNAL",
			    "Not authorized to login as specified user");
		return;
	case IMAP_PEND_EXTERNAL_PROXY:
		if (st == DIR_FOUND && rec->status == DIR_USER_ACTIVE) {
			sp_log(SP_LOG_NOTICE, "imap_proxy_login", "client=%s admin=%s user=%s",
			       s->client_ip, s->pend_admin, rec->address);
			if (login_as(s, tag, rec, "EXTERNAL-proxy"))
				return;
		}
		auth_failed(s, tag, s->pend_user, "EXTERNAL", "Not authorized to login as specified user");
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
	struct imap_session *s = arg;

	s->req = NULL;
	dir_answer(s, st, rec);
	if (s->req != NULL)
		return; /* a second request (EXTERNAL-proxy): wait again */
	imap_session_process(s); /* commands pipelined behind the login */
	if (s->resume != NULL)
		s->resume(s->resume_arg); /* may free s */
}

/* Asks the directory: a password (pass != NULL), the certificate (user
 * NULL) or a user by address. Off the loop on the directory's pool; with
 * none (tests, the users file before the pool exists) inline. */
static void dir_start_lookup(struct imap_session *s, enum imap_pending what, const char *user,
			     const char *pass, size_t pass_len)
{
	s->pending = what;
	s->req = mc_login_ask(s->dir, &s->tls_info, user, pass, pass_len, dir_answer_cb, dir_done, s);
}

static void password_login(struct imap_session *s, const char *tag, const char *user,
			   const char *pass, size_t pass_len, enum imap_pending what)
{
	snprintf(s->pend_tag, sizeof(s->pend_tag), "%s", tag);
	snprintf(s->pend_user, sizeof(s->pend_user), "%s", user);
	dir_start_lookup(s, what, user, pass, pass_len);
}

/* RFC 4616 PLAIN message (already base64-decoded). */
static void sasl_plain(struct imap_session *s, const char *tag, const uint8_t *msg, size_t len)
{
	struct smtp_plain p;
	char authz[IMAP_ADDR_CAP], authc[IMAP_ADDR_CAP], *pass;

	if (smtp_sasl_plain_split(msg, len, &p) < 0 || p.authcid_len >= sizeof(authc) ||
	    p.authzid_len >= sizeof(authz)) {
		imap_tagged(s, tag, "BAD", "Malformed PLAIN message");
		return;
	}
	memcpy(authc, p.authcid, p.authcid_len);
	authc[p.authcid_len] = '\0';
	memcpy(authz, p.authzid, p.authzid_len);
	authz[p.authzid_len] = '\0';
	/* PLAIN's authzid: only the user itself (no proxy login by password) */
	if (authz[0] != '\0' && strcasecmp(authz, authc) != 0) {
		auth_failed(s, tag, authc, "PLAIN", "Not authorized to login as specified user");
		return;
	}
	pass = sp_xstrndup(p.passwd, p.passwd_len);
	password_login(s, tag, authc, pass, p.passwd_len, IMAP_PEND_PLAIN);
	sp_free_secret(pass, p.passwd_len);
}

/* EXTERNAL: the user certmap.conf maps the certificate to, or (a store
 * administrator only) another user named as authzid. */
static void sasl_external(struct imap_session *s, const char *tag, const uint8_t *msg, size_t len)
{
	if (!has_client_cert(s)) {
		imap_tagged(s, tag, "NO", "Mechanism not available");
		return;
	}
	if (len >= sizeof(s->pend_user) || memchr(msg, '\0', len) != NULL) {
		imap_tagged(s, tag, "BAD", "Malformed authorization identity");
		return;
	}
	snprintf(s->pend_tag, sizeof(s->pend_tag), "%s", tag);
	memcpy(s->pend_user, msg, len);
	s->pend_user[len] = '\0';
	dir_start_lookup(s, IMAP_PEND_EXTERNAL, NULL, NULL, 0);
}

/* The client's SASL response (base64 text, "=" for empty, "*" to cancel). */
static void sasl_response(struct imap_session *s, const char *tag, const char *b64, size_t len)
{
	uint8_t *dec;
	ssize_t n;

	s->mode = IMAP_MODE_COMMAND;
	if (len == 1 && b64[0] == '*') {
		imap_tagged(s, tag, "BAD", "Authentication cancelled");
		return;
	}
	dec = sp_xmalloc(len + 1);
	n = (len == 1 && b64[0] == '=') ? 0 : smtp_base64_decode(b64, len, dec, len + 1);
	if (n < 0) {
		sp_free_secret(dec, len + 1);
		imap_tagged(s, tag, "BAD", "Invalid base64");
		return;
	}
	if (s->auth_mech == IMAP_MECH_PLAIN)
		sasl_plain(s, tag, dec, (size_t)n);
	else
		sasl_external(s, tag, dec, (size_t)n);
	sp_free_secret(dec, len + 1);
}

static void cmd_authenticate(struct imap_session *s, const struct imap_cmd *cmd, const char *tag)
{
	const struct imap_arg *mech = imap_cmd_arg(cmd, 0), *ir = imap_cmd_arg(cmd, 1);

	if (mech == NULL || mech->type != IMAP_ARG_ATOM || cmd->n_args > 2) {
		imap_tagged(s, tag, "BAD", "AUTHENTICATE mechanism [initial-response]");
		return;
	}
	if (imap_arg_is(mech, "PLAIN")) {
		if (!plaintext_allowed(s)) {
			imap_tagged(s, tag, "NO", "[PRIVACYREQUIRED] Plaintext authentication needs TLS");
			return;
		}
		s->auth_mech = IMAP_MECH_PLAIN;
	} else if (imap_arg_is(mech, "EXTERNAL")) {
		if (!has_client_cert(s)) {
			imap_tagged(s, tag, "NO", "Mechanism not available");
			return;
		}
		s->auth_mech = IMAP_MECH_EXTERNAL;
	} else {
		imap_tagged(s, tag, "NO", "Unsupported authentication mechanism");
		return;
	}
	if (ir != NULL) {
		/* RFC 4959 SASL-IR */
		if (ir->type != IMAP_ARG_ATOM) {
			imap_tagged(s, tag, "BAD", "Bad initial response");
			return;
		}
		sasl_response(s, tag, ir->s, ir->len);
		return;
	}
	snprintf(s->auth_tag, sizeof(s->auth_tag), "%s", tag);
	s->mode = IMAP_MODE_AUTH;
	imap_out(s, "+ \r\n", sizeof("+ \r\n") - 1);
}

static void cmd_login(struct imap_session *s, const struct imap_cmd *cmd, const char *tag)
{
	char user[IMAP_ADDR_CAP], *pass;
	const struct imap_arg *pa = imap_cmd_arg(cmd, 1);

	if (!plaintext_allowed(s)) {
		/* RFC 3501 6.2.3 with LOGINDISABLED */
		imap_tagged(s, tag, "NO", "[PRIVACYREQUIRED] LOGIN is disabled before TLS");
		return;
	}
	if (cmd->n_args != 2 || imap_arg_string(imap_cmd_arg(cmd, 0), user, sizeof(user)) < 0 ||
	    pa == NULL || pa->type == IMAP_ARG_LIST || memchr(pa->s, '\0', pa->len) != NULL) {
		imap_tagged(s, tag, "BAD", "LOGIN user password");
		return;
	}
	pass = sp_xstrndup(pa->s, pa->len);
	password_login(s, tag, user, pass, pa->len, IMAP_PEND_LOGIN);
	sp_free_secret(pass, pa->len);
}

/* ------------------------------------------------------- selected state */

void imap_report_store_changes(struct imap_session *s, const struct store_changes *ch)
{
	size_t n = store_mailbox_count(s->mb);

	imap_out_flag_lists(s, false); /* keywords another session named */
	for (size_t i = 0; i < ch->n_expunged; i++) {
		imap_outf(s, "* %u EXPUNGE\r\n", ch->expunged[i]);
		if (s->reported_exists > 0)
			s->reported_exists--;
	}
	if (n != s->reported_exists) {
		uint32_t recent = 0;

		for (size_t i = 0; i < n; i++)
			recent += store_mailbox_msg(s->mb, i)->recent;
		imap_outf(s, "* %zu EXISTS\r\n* %u RECENT\r\n", n, recent);
		s->reported_exists = (uint32_t)n;
	}
	for (size_t i = 0; i < ch->n_changed; i++) {
		const struct store_msg *m = store_mailbox_msg(s->mb, ch->changed[i] - 1);

		if (m == NULL)
			continue;
		imap_outf(s, "* %u FETCH (FLAGS ", ch->changed[i]);
		imap_out_flags(s, m);
		imap_outf(s, " UID %u)\r\n", m->uid);
	}
}

void imap_report_changes(struct imap_session *s)
{
	struct store_changes ch;
	char *err = NULL;

	if (s->state != IMAP_ST_SELECTED || s->mb == NULL)
		return;
	imap_cache_clear(&s->cache);
	if (store_mailbox_sync(s->mb, &ch, &err) != STORE_MB_OK) {
		sp_log(SP_LOG_ERR, "imap_sync", "user=%s why=\"%s\"", s->user, err);
		free(err);
		return;
	}
	if (ch.uidvalidity_changed) {
		/* the UID list was rebuilt under us: the client must start over */
		imap_out(s, "* BYE Mailbox UIDVALIDITY changed, please reconnect\r\n", sizeof("* BYE Mailbox UIDVALIDITY changed, please reconnect\r\n") - 1);
		set_state(s, IMAP_ST_LOGOUT, "uidvalidity changed");
		return;
	}
	imap_report_store_changes(s, &ch);
}

int imap_resolve_set(struct imap_session *s, const struct imap_arg *a, bool uid, size_t **idx_r,
		     size_t *n_r)
{
	struct imap_seqset *set;
	size_t n = store_mailbox_count(s->mb), k = 0;
	size_t *idx;
	uint32_t max;

	*idx_r = NULL;
	*n_r = 0;
	if (a == NULL || a->type != IMAP_ARG_ATOM)
		return -1;
	set = sp_xmalloc(sizeof(*set));
	if (imap_parse_seqset(a->s, a->len, set) < 0) {
		free(set);
		return -1;
	}
	idx = sp_xcalloc(n + 1, sizeof(*idx));
	if (uid) {
		max = n > 0 ? store_mailbox_msg(s->mb, n - 1)->uid : 0;
		for (size_t i = 0; i < n; i++)
			if (imap_seqset_contains(set, store_mailbox_msg(s->mb, i)->uid, max))
				idx[k++] = i;
	} else {
		/* RFC 3501 9: a sequence number beyond the mailbox is an error */
		for (size_t r = 0; r < set->n; r++)
			if ((set->r[r].lo != UINT32_MAX && set->r[r].lo > n) ||
			    (set->r[r].hi != UINT32_MAX && set->r[r].hi > n)) {
				free(set);
				free(idx);
				return -2;
			}
		for (size_t i = 0; i < n; i++)
			if (imap_seqset_contains(set, (uint32_t)(i + 1), (uint32_t)n))
				idx[k++] = i;
	}
	free(set);
	*idx_r = idx;
	*n_r = k;
	return 0;
}

void imap_store_error(struct imap_session *s, const char *tag, enum store_mb_result rc,
		      const char *what, char *error)
{
	switch (rc) {
	case STORE_MB_NOTFOUND:
		imap_tagged(s, tag, "NO", "[%s] %s: no such mailbox",
			    strcmp(what, "APPEND") == 0 || strcmp(what, "COPY") == 0 ? "TRYCREATE"
										    : "NONEXISTENT",
			    what);
		break;
	case STORE_MB_EXISTS:
		imap_tagged(s, tag, "NO", "[ALREADYEXISTS] %s: mailbox exists", what);
		break;
	case STORE_MB_OVERQUOTA:
		imap_tagged(s, tag, "NO", "[OVERQUOTA] %s: quota exceeded", what);
		break;
	case STORE_MB_BADNAME:
		imap_tagged(s, tag, "NO", "[CANNOT] %s: bad mailbox name", what);
		break;
	case STORE_MB_HASCHILDREN:
		imap_tagged(s, tag, "NO", "[INUSE] %s: mailbox has inferior hierarchical names", what);
		break;
	case STORE_MB_INBOX:
		imap_tagged(s, tag, "NO", "[CANNOT] %s: not allowed on INBOX", what);
		break;
	case STORE_MB_LIMIT:
		/* RFC 5530 3: a hard limit; Maildir names 26 keywords a mailbox */
		imap_tagged(s, tag, "NO", "[LIMIT] %s: too many keywords in this mailbox (at most %d)",
			    what, STORE_KEYWORDS_MAX);
		break;
	default:
		sp_log(SP_LOG_ERR, "imap_store", "user=%s op=%s why=\"%s\"", s->user, what,
		       error != NULL ? error : "?");
		imap_tagged(s, tag, "NO", "[SERVERBUG] %s failed", what);
		break;
	}
	free(error);
}

int imap_mailbox_arg(const struct imap_arg *a, char *buf, size_t cap)
{
	if (imap_arg_string(a, buf, cap) < 0)
		return -1;
	if (store_mailbox_is_inbox(buf))
		snprintf(buf, cap, "INBOX");
	return 0;
}

static void cmd_select(struct imap_session *s, const struct imap_cmd *cmd, const char *tag,
		       bool examine)
{
	char name[STORE_MAILBOX_NAME_MAX + 1], *err = NULL;
	struct store_mailbox *mb;
	enum store_mb_result rc;
	size_t n, first_unseen = 0;
	uint32_t recent = 0;

	/* RFC 3501 6.3.1: a SELECT while selected deselects first, even when it fails */
	if (s->state == IMAP_ST_SELECTED)
		set_state(s, IMAP_ST_AUTHENTICATED, "SELECT closes the mailbox");
	if (cmd->n_args != 1 || imap_mailbox_arg(imap_cmd_arg(cmd, 0), name, sizeof(name)) < 0) {
		imap_tagged(s, tag, "BAD", "%s mailbox", examine ? "EXAMINE" : "SELECT");
		return;
	}
	rc = store_mailbox_open(s->maildir, name, examine, &mb, &err);
	if (rc != STORE_MB_OK) {
		imap_store_error(s, tag, rc, examine ? "EXAMINE" : "SELECT", err);
		return;
	}
	s->mb = mb;
	s->read_only = examine;
	n = store_mailbox_count(mb);
	for (size_t i = 0; i < n; i++) {
		const struct store_msg *m = store_mailbox_msg(mb, i);

		recent += m->recent;
		if (first_unseen == 0 && !(m->flags & STORE_F_SEEN))
			first_unseen = i + 1;
	}
	imap_out_flag_lists(s, true);
	imap_outf(s, "* %zu EXISTS\r\n* %u RECENT\r\n", n, recent);
	if (first_unseen > 0)
		imap_outf(s, "* OK [UNSEEN %zu] First unseen\r\n", first_unseen);
	imap_outf(s, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n",
		  store_mailbox_uidvalidity(mb), store_mailbox_uidnext(mb));
	s->reported_exists = (uint32_t)n;
	set_state(s, IMAP_ST_SELECTED, examine ? "EXAMINE" : "SELECT");
	imap_tagged(s, tag, "OK", "[%s] %s completed", examine ? "READ-ONLY" : "READ-WRITE",
		    examine ? "EXAMINE" : "SELECT");
}

static bool want_in_set(uint32_t uid, void *arg)
{
	const struct imap_seqset *set = arg;

	return imap_seqset_contains(set, uid, UINT32_MAX - 1);
}

/* EXPUNGE, UID EXPUNGE (RFC 4315 2.1) and CLOSE's silent expunge (RFC
 * 3501 6.4.2): unlinks, the directory's fsync and the UID list on the pool. */
struct expunge_job {
	char tag[IMAP_TAG_MAX + 1];
	struct imap_seqset *set;  /* UID EXPUNGE's, or NULL */
	bool uid, close;
	enum store_mb_result rc;
	char *err;
	struct store_changes ch;
};

static void expunge_work(struct imap_session *s, void *arg)
{
	struct expunge_job *j = arg;

	imap_cache_clear(&s->cache);
	j->rc = store_mailbox_expunge(s->mb, j->set != NULL ? want_in_set : NULL, j->set, &j->ch,
				      &j->err);
}

static void expunge_finish(struct imap_session *s, void *arg)
{
	struct expunge_job *j = arg;

	if (j->close) {
		/* no EXPUNGE responses; the mailbox is closed whatever happened */
		if (j->rc != STORE_MB_OK)
			sp_log(SP_LOG_ERR, "imap_store", "user=%s op=CLOSE why=\"%s\"", s->user,
			       j->err != NULL ? j->err : "?");
		set_state(s, IMAP_ST_AUTHENTICATED, "CLOSE");
		imap_tagged(s, j->tag, "OK", "CLOSE completed");
		return;
	}
	/* what left the view is reported even when the UID list failed after */
	for (size_t i = 0; i < j->ch.n_expunged; i++)
		imap_outf(s, "* %u EXPUNGE\r\n", j->ch.expunged[i]);
	s->reported_exists -= (uint32_t)j->ch.n_expunged;
	if (j->rc != STORE_MB_OK) {
		imap_store_error(s, j->tag, j->rc, "EXPUNGE", j->err);
		j->err = NULL;
		return;
	}
	imap_report_changes(s);
	imap_tagged(s, j->tag, "OK", "%sEXPUNGE completed", j->uid ? "UID " : "");
}

static void expunge_release(void *arg)
{
	struct expunge_job *j = arg;

	free(j->set);
	free(j->err);
	free(j);
}

static void cmd_expunge(struct imap_session *s, const struct imap_cmd *cmd, const char *tag,
			bool close)
{
	struct expunge_job *j;

	if (s->read_only) {
		if (close) {
			set_state(s, IMAP_ST_AUTHENTICATED, "CLOSE");
			imap_tagged(s, tag, "OK", "CLOSE completed");
		} else {
			imap_tagged(s, tag, "NO", "[READ-ONLY] Mailbox is read-only");
		}
		return;
	}
	j = sp_xcalloc(1, sizeof(*j));
	snprintf(j->tag, sizeof(j->tag), "%s", tag);
	j->close = close;
	if (cmd != NULL && cmd->uid) {
		const struct imap_arg *a = imap_cmd_arg(cmd, 0);
		size_t n = store_mailbox_count(s->mb);
		uint32_t max = n > 0 ? store_mailbox_msg(s->mb, n - 1)->uid : 0;

		/* RFC 4315 2.1 UID EXPUNGE: '*' is the largest UID in use */
		j->uid = true;
		j->set = sp_xmalloc(sizeof(*j->set));
		if (cmd->n_args != 1 || a->type != IMAP_ARG_ATOM ||
		    imap_parse_seqset(a->s, a->len, j->set) < 0) {
			expunge_release(j);
			imap_tagged(s, tag, "BAD", "UID EXPUNGE uid-set");
			return;
		}
		for (size_t r = 0; r < j->set->n; r++) {
			if (j->set->r[r].lo == UINT32_MAX)
				j->set->r[r].lo = max;
			if (j->set->r[r].hi == UINT32_MAX)
				j->set->r[r].hi = max;
		}
	}
	imap_run_job(s, tag, expunge_work, expunge_finish, expunge_release, j);
}

/* STORE (RFC 3501 6.4.6): keyword slots and the renames on the pool. */
struct store_job {
	char tag[IMAP_TAG_MAX + 1];
	int mode;                  /* 0 replace, 1 add, -1 remove */
	bool silent, uid;
	unsigned flags;
	struct imap_keywords kw;
	size_t *idx, n;
	bool *done;                /* per message: its flags were set */
	enum store_mb_result rc;   /* of the keyword slots: nothing stored unless OK */
	char *err;
};

static void store_work(struct imap_session *s, void *arg)
{
	struct store_job *j = arg;
	uint32_t kwmask = 0;

	for (size_t i = 0; i < j->kw.n; i++) {
		int slot;
		enum store_mb_result rc = store_mailbox_keyword_slot(s->mb, j->kw.name[i], j->mode >= 0,
								     &slot, &j->err);

		if (rc == STORE_MB_NOTFOUND && j->mode < 0) {
			free(j->err); /* removing a keyword nobody has */
			j->err = NULL;
			continue;
		}
		if (rc != STORE_MB_OK) {
			j->rc = rc;
			return;
		}
		kwmask |= 1u << slot;
	}
	for (size_t i = 0; i < j->n; i++) {
		const struct store_msg *m = store_mailbox_msg(s->mb, j->idx[i]);
		unsigned nf = j->mode == 0 ? j->flags
			      : j->mode > 0 ? (m->flags | j->flags) : (m->flags & ~j->flags);
		uint32_t nk = j->mode == 0 ? kwmask
			      : j->mode > 0 ? (m->keywords | kwmask) : (m->keywords & ~kwmask);
		char *err = NULL;

		/* expunged elsewhere: reported at the next sync */
		j->done[i] = store_mailbox_set_flags_kw(s->mb, j->idx[i], nf, nk, &err) == STORE_MB_OK;
		free(err);
	}
	imap_cache_clear(&s->cache);
}

static void store_finish(struct imap_session *s, void *arg)
{
	struct store_job *j = arg;

	if (j->rc != STORE_MB_OK) {
		imap_store_error(s, j->tag, j->rc, "STORE", j->err);
		j->err = NULL;
		return;
	}
	imap_out_flag_lists(s, false); /* a keyword new to the mailbox */
	for (size_t i = 0; i < j->n; i++) {
		const struct store_msg *m = store_mailbox_msg(s->mb, j->idx[i]);

		if (!j->done[i] || (j->silent && !j->uid))
			continue;
		imap_outf(s, "* %zu FETCH (", j->idx[i] + 1);
		if (!j->silent) {
			imap_out(s, "FLAGS ", sizeof("FLAGS ") - 1);
			imap_out_flags(s, m);
		}
		if (j->uid)
			imap_outf(s, "%sUID %u", j->silent ? "" : " ", m->uid);
		imap_out(s, ")\r\n", sizeof(")\r\n") - 1);
	}
	imap_tagged(s, j->tag, "OK", "%sSTORE completed", j->uid ? "UID " : "");
}

static void store_release(void *arg)
{
	struct store_job *j = arg;

	free(j->idx);
	free(j->done);
	free(j->err);
	free(j);
}

static void cmd_store(struct imap_session *s, const struct imap_cmd *cmd, const char *tag)
{
	const struct imap_arg *item = imap_cmd_arg(cmd, 1);
	struct store_job *j;
	char word[32];
	int rc = 0;

	if (cmd->n_args < 3 || item == NULL || item->type != IMAP_ARG_ATOM || item->len >= sizeof(word)) {
		imap_tagged(s, tag, "BAD", "STORE set [+|-]FLAGS[.SILENT] (flags)");
		return;
	}
	j = sp_xcalloc(1, sizeof(*j));
	snprintf(j->tag, sizeof(j->tag), "%s", tag);
	j->uid = cmd->uid;
	memcpy(word, item->s, item->len);
	word[item->len] = '\0';
	j->mode = word[0] == '+' ? 1 : word[0] == '-' ? -1 : 0;
	if (strcasecmp(word + (j->mode != 0), "FLAGS") == 0) {
		j->silent = false;
	} else if (strcasecmp(word + (j->mode != 0), "FLAGS.SILENT") == 0) {
		j->silent = true;
	} else {
		store_release(j);
		imap_tagged(s, tag, "BAD", "Unknown STORE item");
		return;
	}
	/* "(\Seen $Junk)", or flags without parentheses: "STORE 1 +FLAGS \Seen \Deleted" */
	for (size_t i = 2; i < cmd->n_args && rc == 0; i++)
		rc = imap_parse_flags(cmd, imap_cmd_arg(cmd, i), &j->flags, &j->kw);
	if (rc < 0) {
		store_release(j);
		if (rc == -2)
			imap_tagged(s, tag, "NO", "[LIMIT] STORE: at most %d keywords", STORE_KEYWORDS_MAX);
		else
			imap_tagged(s, tag, "BAD", "Bad flag list");
		return;
	}
	if (s->read_only) {
		store_release(j);
		imap_tagged(s, tag, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	rc = imap_resolve_set(s, imap_cmd_arg(cmd, 0), cmd->uid, &j->idx, &j->n);
	if (rc < 0) {
		store_release(j);
		imap_tagged(s, tag, "BAD", rc == -2 ? "Invalid message sequence number" : "Bad message set");
		return;
	}
	j->done = sp_xcalloc(j->n + 1, sizeof(*j->done));
	imap_run_job(s, tag, store_work, store_finish, store_release, j);
}

/* UID list "1,3:5" in COPYUID form, compressed into ranges. */
static void out_uid_list(struct imap_session *s, const uint32_t *u, size_t n)
{
	size_t i = 0;
	bool first = true;

	while (i < n) {
		size_t j = i;

		if (u[i] == 0) {
			i++;
			continue;
		}
		while (j + 1 < n && u[j + 1] == u[j] + 1)
			j++;
		if (j > i)
			imap_outf(s, "%s%u:%u", first ? "" : ",", u[i], u[j]);
		else
			imap_outf(s, "%s%u", first ? "" : ",", u[i]);
		first = false;
		i = j + 1;
	}
}

/* COPY (RFC 3501 6.4.7, COPYUID RFC 4315 3): links or copies, fsyncs and
 * the destination's UID list on the pool. */
struct copy_job {
	char tag[IMAP_TAG_MAX + 1];
	char dest[STORE_MAILBOX_NAME_MAX + 1];
	char *hostname;            /* a copy: env may be gone when the job runs */
	bool uid;
	size_t *idx, n;
	uint32_t validity, *dst;
	enum store_mb_result rc;
	char *err;
};

static void copy_work(struct imap_session *s, void *arg)
{
	struct copy_job *j = arg;

	j->rc = j->n == 0 ? STORE_MB_OK
			  : store_mailbox_copy(s->mb, j->idx, j->n, s->maildir, j->dest, j->hostname,
					       s->quota, &j->validity, j->dst, &j->err);
}

static void copy_finish(struct imap_session *s, void *arg)
{
	struct copy_job *j = arg;
	uint32_t *src;
	size_t k = 0;

	if (j->rc != STORE_MB_OK) {
		imap_store_error(s, j->tag, j->rc, "COPY", j->err);
		j->err = NULL;
		return;
	}
	src = sp_xcalloc(j->n + 1, sizeof(*src));
	for (size_t i = 0; i < j->n; i++)
		if (j->dst[i] != 0) {
			src[k] = store_mailbox_msg(s->mb, j->idx[i])->uid;
			j->dst[k++] = j->dst[i];
		}
	if (k > 0) {
		/* RFC 4315 3: COPYUID */
		imap_outf(s, "%s OK [COPYUID %u ", j->tag, j->validity);
		out_uid_list(s, src, k);
		imap_out(s, " ", sizeof(" ") - 1);
		out_uid_list(s, j->dst, k);
		imap_outf(s, "] %sCOPY completed\r\n", j->uid ? "UID " : "");
	} else {
		imap_tagged(s, j->tag, "OK", "%sCOPY completed", j->uid ? "UID " : "");
	}
	free(src);
}

static void copy_release(void *arg)
{
	struct copy_job *j = arg;

	free(j->hostname);
	free(j->idx);
	free(j->dst);
	free(j->err);
	free(j);
}

static void cmd_copy(struct imap_session *s, const struct imap_cmd *cmd, const char *tag)
{
	struct copy_job *j = sp_xcalloc(1, sizeof(*j));
	int r;

	if (cmd->n_args != 2 || imap_mailbox_arg(imap_cmd_arg(cmd, 1), j->dest, sizeof(j->dest)) < 0) {
		copy_release(j);
		imap_tagged(s, tag, "BAD", "COPY set mailbox");
		return;
	}
	r = imap_resolve_set(s, imap_cmd_arg(cmd, 0), cmd->uid, &j->idx, &j->n);
	if (r < 0) {
		copy_release(j);
		imap_tagged(s, tag, "BAD", r == -2 ? "Invalid message sequence number" : "Bad message set");
		return;
	}
	snprintf(j->tag, sizeof(j->tag), "%s", tag);
	j->uid = cmd->uid;
	j->hostname = sp_xstrdup(s->env->hostname);
	j->dst = sp_xcalloc(j->n + 1, sizeof(*j->dst));
	imap_run_job(s, tag, copy_work, copy_finish, copy_release, j);
}

static void cmd_enable(struct imap_session *s, const struct imap_cmd *cmd, const char *tag)
{
	(void)cmd;
	/* RFC 5161: nothing we offer needs enabling */
	imap_out(s, "* ENABLED\r\n", sizeof("* ENABLED\r\n") - 1);
	imap_tagged(s, tag, "OK", "ENABLE completed");
}

static void cmd_id(struct imap_session *s, const struct imap_cmd *cmd, const char *tag)
{
	(void)cmd;
	/* RFC 2971: say little about ourselves */
	imap_out(s, "* ID (\"name\" \"Sealpost\")\r\n", sizeof("* ID (\"name\" \"Sealpost\")\r\n") - 1);
	imap_tagged(s, tag, "OK", "ID completed");
}

/* ----------------------------------------------------------- dispatch */

#define S_NA (1u << IMAP_ST_NOT_AUTHENTICATED)
#define S_AU (1u << IMAP_ST_AUTHENTICATED)
#define S_SE (1u << IMAP_ST_SELECTED)
#define S_ANY (S_NA | S_AU | S_SE)

enum cmd_id {
	C_CAPABILITY, C_NOOP, C_LOGOUT, C_ID, C_STARTTLS, C_AUTHENTICATE, C_LOGIN, C_SELECT,
	C_EXAMINE, C_CREATE, C_DELETE, C_RENAME, C_SUBSCRIBE, C_UNSUBSCRIBE, C_LIST, C_LSUB,
	C_STATUS, C_APPEND, C_NAMESPACE, C_GETQUOTAROOT, C_GETQUOTA, C_ENABLE, C_IDLE, C_CHECK,
	C_CLOSE, C_UNSELECT, C_EXPUNGE, C_SEARCH, C_FETCH, C_STORE, C_COPY,
};

/* Which command is allowed in which state: RFC 3501 6.1 (any state), 6.2
 * (not authenticated), 6.3 (authenticated, also valid when selected), 6.4
 * (selected); the extensions as their RFCs place them. */
static const struct {
	const char *name;
	enum cmd_id id;
	unsigned states;
	bool uid_ok;
} commands[] = {
	{"CAPABILITY", C_CAPABILITY, S_ANY, false},
	{"NOOP", C_NOOP, S_ANY, false},
	{"LOGOUT", C_LOGOUT, S_ANY, false},
	{"ID", C_ID, S_ANY, false},                     /* RFC 2971 */
	{"STARTTLS", C_STARTTLS, S_NA, false},
	{"AUTHENTICATE", C_AUTHENTICATE, S_NA, false},
	{"LOGIN", C_LOGIN, S_NA, false},
	{"SELECT", C_SELECT, S_AU | S_SE, false},
	{"EXAMINE", C_EXAMINE, S_AU | S_SE, false},
	{"CREATE", C_CREATE, S_AU | S_SE, false},
	{"DELETE", C_DELETE, S_AU | S_SE, false},
	{"RENAME", C_RENAME, S_AU | S_SE, false},
	{"SUBSCRIBE", C_SUBSCRIBE, S_AU | S_SE, false},
	{"UNSUBSCRIBE", C_UNSUBSCRIBE, S_AU | S_SE, false},
	{"LIST", C_LIST, S_AU | S_SE, false},
	{"LSUB", C_LSUB, S_AU | S_SE, false},
	{"STATUS", C_STATUS, S_AU | S_SE, false},
	{"APPEND", C_APPEND, S_AU | S_SE, false},
	{"NAMESPACE", C_NAMESPACE, S_AU | S_SE, false}, /* RFC 2342 */
	{"GETQUOTAROOT", C_GETQUOTAROOT, S_AU | S_SE, false}, /* RFC 2087 */
	{"GETQUOTA", C_GETQUOTA, S_AU | S_SE, false},
	{"ENABLE", C_ENABLE, S_AU | S_SE, false},       /* RFC 5161 */
	{"IDLE", C_IDLE, S_AU | S_SE, false},           /* RFC 2177 */
	{"CHECK", C_CHECK, S_SE, false},
	{"CLOSE", C_CLOSE, S_SE, false},
	{"UNSELECT", C_UNSELECT, S_SE, false},          /* RFC 3691 */
	{"EXPUNGE", C_EXPUNGE, S_SE, true},             /* UID EXPUNGE: RFC 4315 */
	{"SEARCH", C_SEARCH, S_SE, true},
	{"FETCH", C_FETCH, S_SE, true},
	{"STORE", C_STORE, S_SE, true},
	{"COPY", C_COPY, S_SE, true},
};

static void bad_command(struct imap_session *s, const char *tag, const char *text)
{
	imap_tagged(s, tag, "BAD", "%s", text);
	if (++s->bad_commands >= s->env->max_bad_commands) {
		imap_out(s, "* BYE Too many invalid commands\r\n", sizeof("* BYE Too many invalid commands\r\n") - 1);
		set_state(s, IMAP_ST_LOGOUT, "bad commands");
	}
}

static void run_command(struct imap_session *s, struct imap_cmd *cmd)
{
	char tag[IMAP_TAG_MAX + 1];
	size_t i;

	memcpy(tag, cmd->tag, cmd->tag_len);
	tag[cmd->tag_len] = '\0';
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, cmd->name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0]) || (cmd->uid && !commands[i].uid_ok)) {
		bad_command(s, tag, "Unknown command");
		return;
	}
	if (!(commands[i].states & (1u << s->state))) {
		bad_command(s, tag, s->state == IMAP_ST_NOT_AUTHENTICATED ? "Log in first"
				    : s->state == IMAP_ST_SELECTED || s->state == IMAP_ST_AUTHENTICATED
					    ? (commands[i].states == S_SE ? "No mailbox selected"
									 : "Already authenticated")
					    : "Wrong state");
		return;
	}
	switch (commands[i].id) {
	case C_CAPABILITY:
		imap_out(s, "* CAPABILITY ", sizeof("* CAPABILITY ") - 1);
		out_capabilities(s);
		imap_out(s, "\r\n", sizeof("\r\n") - 1);
		imap_tagged(s, tag, "OK", "CAPABILITY completed");
		break;
	case C_NOOP:
	case C_CHECK:
		imap_report_changes(s);
		imap_tagged(s, tag, "OK", "%s completed", cmd->name);
		break;
	case C_LOGOUT:
		imap_out(s, "* BYE Logging out\r\n", sizeof("* BYE Logging out\r\n") - 1);
		imap_tagged(s, tag, "OK", "LOGOUT completed");
		set_state(s, IMAP_ST_LOGOUT, "LOGOUT"); /* RFC 3501 3.4 */
		break;
	case C_ID:
		cmd_id(s, cmd, tag);
		break;
	case C_STARTTLS:
		if (s->tls || !s->env->starttls || s->backend) {
			imap_tagged(s, tag, "NO", "TLS is not available here");
			break;
		}
		imap_tagged(s, tag, "OK", "Begin TLS negotiation now");
		/* RFC 3501 6.2.1 / RFC 3207 4.2: anything sent after the command
		 * is thrown away once the handshake starts */
		s->want_starttls = true;
		break;
	case C_AUTHENTICATE:
		cmd_authenticate(s, cmd, tag);
		break;
	case C_LOGIN:
		cmd_login(s, cmd, tag);
		break;
	case C_SELECT:
	case C_EXAMINE:
		cmd_select(s, cmd, tag, commands[i].id == C_EXAMINE);
		break;
	case C_CREATE:
		imap_cmd_create(s, cmd);
		break;
	case C_DELETE:
		imap_cmd_delete(s, cmd);
		break;
	case C_RENAME:
		imap_cmd_rename(s, cmd);
		break;
	case C_SUBSCRIBE:
	case C_UNSUBSCRIBE:
		imap_cmd_subscribe(s, cmd, commands[i].id == C_SUBSCRIBE);
		break;
	case C_LIST:
	case C_LSUB:
		imap_cmd_list(s, cmd, commands[i].id == C_LSUB);
		break;
	case C_STATUS:
		imap_cmd_status(s, cmd);
		break;
	case C_APPEND:
		imap_cmd_append(s, cmd);
		break;
	case C_NAMESPACE:
		imap_out(s, "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n", sizeof("* NAMESPACE ((\"\" \".\")) NIL NIL\r\n") - 1);
		imap_tagged(s, tag, "OK", "NAMESPACE completed");
		break;
	case C_GETQUOTAROOT:
	case C_GETQUOTA:
		imap_cmd_quota(s, cmd, commands[i].id == C_GETQUOTAROOT);
		break;
	case C_ENABLE:
		cmd_enable(s, cmd, tag);
		break;
	case C_IDLE:
		snprintf(s->idle_tag, sizeof(s->idle_tag), "%s", tag);
		s->mode = IMAP_MODE_IDLE;
		imap_out(s, "+ idling\r\n", sizeof("+ idling\r\n") - 1);
		imap_report_changes(s);
		break;
	case C_CLOSE:
		/* RFC 3501 6.4.2: expunge silently (not when read-only), no EXPUNGE responses */
		cmd_expunge(s, NULL, tag, true);
		break;
	case C_UNSELECT:
		set_state(s, IMAP_ST_AUTHENTICATED, "UNSELECT");
		imap_tagged(s, tag, "OK", "UNSELECT completed");
		break;
	case C_EXPUNGE:
		cmd_expunge(s, cmd, tag, false);
		break;
	case C_SEARCH:
		/* RFC 3501 7.4.1: no EXPUNGE during FETCH, STORE, SEARCH */
		imap_cmd_search(s, cmd);
		break;
	case C_FETCH:
		imap_cmd_fetch(s, cmd);
		break;
	case C_STORE:
		cmd_store(s, cmd, tag);
		break;
	case C_COPY:
		cmd_copy(s, cmd, tag);
		break;
	}
}

/* ------------------------------------------------------------- input */

static void consume_input(struct imap_session *s, size_t n);

void imap_input_consume(struct imap_session *s, size_t n)
{
	if (n > 0)
		consume_input(s, n);
}

static void consume_input(struct imap_session *s, size_t n)
{
	if (n >= s->in_len) {
		s->in_len = 0;
	} else {
		memmove(s->in, s->in + n, s->in_len - n);
		s->in_len -= n;
	}
	imap_framer_reset(&s->framer);
	/* give memory back after a large APPEND */
	if (s->in_cap > 4 * IMAP_INBUF_CAP && s->in_len < IMAP_INBUF_CAP) {
		s->in = sp_xrealloc(s->in, IMAP_INBUF_CAP, 1);
		s->in_cap = IMAP_INBUF_CAP;
	}
}

static uint8_t *find_crlf(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n')
			return buf + i;
	return NULL;
}

/* A line in AUTH or IDLE mode. */
static void line_mode(struct imap_session *s, uint8_t *line, size_t len)
{
	if (s->mode == IMAP_MODE_AUTH) {
		char tag[IMAP_TAG_MAX + 1];

		snprintf(tag, sizeof(tag), "%s", s->auth_tag);
		sasl_response(s, tag, (const char *)line, len);
		return;
	}
	/* IDLE: only DONE ends it (RFC 2177 3) */
	if (len == 4 && strncasecmp((const char *)line, "DONE", 4) == 0) {
		s->mode = IMAP_MODE_COMMAND;
		imap_tagged(s, s->idle_tag, "OK", "IDLE terminated");
		return;
	}
	s->mode = IMAP_MODE_COMMAND;
	imap_tagged(s, s->idle_tag, "BAD", "Expected DONE");
}

static bool output_full(const struct imap_session *s)
{
	return s->out.len - s->out.off >= IMAP_OUT_HIGH_WATER;
}

void imap_session_process(struct imap_session *s)
{
	while (s->req == NULL && s->job == NULL && !s->greeting_pending && !s->want_close &&
	       !s->want_starttls && !output_full(s)) {
		enum imap_frame_result fr;
		size_t len, consumed;
		uint64_t lit;
		bool nonsync;

		if (s->fetch.active) {
			imap_fetch_continue(s);
			continue;
		}
		if (s->in_len == 0)
			break;
		if (s->mode != IMAP_MODE_COMMAND) {
			uint8_t *crlf = find_crlf(s->in, s->in_len);

			if (crlf == NULL) {
				if (s->in_len > IMAP_LINE_MAX) {
					imap_out(s, "* BYE Line too long\r\n", sizeof("* BYE Line too long\r\n") - 1);
					set_state(s, IMAP_ST_LOGOUT, "line too long");
				}
				break;
			}
			len = (size_t)(crlf - s->in);
			line_mode(s, s->in, len);
			consume_input(s, len + 2);
			continue;
		}
		fr = imap_frame(&s->framer, s->in, s->in_len, s->env->max_message_size, &len, &consumed,
				&lit, &nonsync);
		if (fr == IMAP_FRAME_NEED_MORE)
			break;
		if (fr == IMAP_FRAME_LITERAL_SYNC) {
			imap_out(s, "+ Ready for literal data\r\n", sizeof("+ Ready for literal data\r\n") - 1);
			continue;
		}
		if (fr == IMAP_FRAME_LINE_TOO_LONG) {
			imap_out(s, "* BAD Line too long\r\n* BYE Line too long\r\n", sizeof("* BAD Line too long\r\n* BYE Line too long\r\n") - 1);
			set_state(s, IMAP_ST_LOGOUT, "line too long");
			break;
		}
		if (fr == IMAP_FRAME_LITERAL_TOO_BIG) {
			size_t t = 0;

			if (nonsync) {
				/* RFC 7888 4: the octets are on their way; we cannot resync */
				imap_out(s, "* BYE [TOOBIG] Literal too big\r\n", sizeof("* BYE [TOOBIG] Literal too big\r\n") - 1);
				set_state(s, IMAP_ST_LOGOUT, "literal too big");
				break;
			}
			/* the tag, if it is one (never echo other bytes) */
			while (t < len && t < IMAP_TAG_MAX && s->in[t] > ' ' && s->in[t] < 0x7f &&
			       s->in[t] != '+' && s->in[t] != '"' && s->in[t] != '(' && s->in[t] != ')' &&
			       s->in[t] != '{')
				t++;
			if (t == 0 || t >= len || s->in[t] != ' ')
				imap_outf(s, "* NO [TOOBIG] Literal of %llu octets is too big\r\n",
					  (unsigned long long)lit);
			else
				imap_outf(s, "%.*s NO [TOOBIG] Literal of %llu octets is too big\r\n",
					  (int)t, (const char *)s->in, (unsigned long long)lit);
			consume_input(s, consumed);
			continue;
		}
		/* a whole command */
		{
			const char *why;

			if (imap_parse_command(s->in, len, s->cmd, &why) < 0) {
				if (s->cmd->tag_len > 0) {
					char tag[IMAP_TAG_MAX + 1];

					memcpy(tag, s->cmd->tag, s->cmd->tag_len);
					tag[s->cmd->tag_len] = '\0';
					bad_command(s, tag, why);
				} else {
					bad_command(s, "*", why);
				}
			} else {
				run_command(s, s->cmd);
			}
			if (s->job != NULL) {
				/* the job reads the command's bytes: let go of them when it ends */
				s->job->consume = consumed;
				break;
			}
			consume_input(s, consumed);
			if (s->want_starttls)
				s->in_len = 0;
		}
	}
}

size_t imap_session_input_room(const struct imap_session *s)
{
	size_t limit = IMAP_INBUF_CAP;

	if (s->want_close || s->want_starttls || output_full(s) || s->fetch.active || s->req != NULL ||
	    s->job != NULL || s->greeting_pending)
		return 0;
	/* room for the literal being read plus a line; after a literal, a
	 * line counted from where it starts (the command's earlier literals
	 * are bounded by the framer: IMAP_COMMAND_MAX) */
	if (s->framer.literal_left > 0)
		limit = s->framer.pos + (size_t)s->framer.literal_left + IMAP_INBUF_CAP;
	else
		limit = s->framer.line_start + IMAP_INBUF_CAP;
	return s->in_len < limit ? limit - s->in_len : 0;
}

size_t imap_session_feed(struct imap_session *s, const void *data, size_t len)
{
	size_t room = imap_session_input_room(s);

	if (len > room)
		len = room;
	if (s->in_len + len > s->in_cap) {
		size_t cap = s->in_cap;

		while (cap < s->in_len + len)
			cap *= 2;
		s->in = sp_xrealloc(s->in, cap, 1);
		s->in_cap = cap;
	}
	memcpy(s->in + s->in_len, data, len);
	s->in_len += len;
	imap_session_process(s);
	return len;
}

void imap_session_eof(struct imap_session *s)
{
	if (s->state != IMAP_ST_LOGOUT)
		set_state(s, IMAP_ST_LOGOUT, "client closed");
}

const uint8_t *imap_session_output(const struct imap_session *s, size_t *len_r)
{
	*len_r = s->out.len - s->out.off;
	return s->out.data + s->out.off;
}

void imap_session_output_consumed(struct imap_session *s, size_t n)
{
	s->out.off += n;
	if (s->out.off >= s->out.len)
		s->out.off = s->out.len = 0;
}

unsigned imap_session_wants(const struct imap_session *s)
{
	unsigned w = 0;

	if (s->want_close)
		return IMAP_WANT_CLOSE;
	if (s->want_starttls)
		return IMAP_WANT_STARTTLS;
	if (imap_session_input_room(s) > 0)
		w |= IMAP_WANT_READ;
	return w;
}

void imap_session_tls_ready(struct imap_session *s, const struct sp_proxy_info *facts)
{
	s->want_starttls = false;
	s->tls = true;
	s->tls_info = *facts;
	s->in_len = 0;
	imap_framer_reset(&s->framer);
	sp_log(SP_LOG_INFO, "imap_starttls", "client=%s version=%s cipher=%s client_cert=%s",
	       s->client_ip, facts->tls_version, facts->tls_cipher, has_client_cert(s) ? "yes" : "no");
}

long imap_session_timeout_ms(const struct imap_session *s)
{
	return s->state == IMAP_ST_NOT_AUTHENTICATED ? s->env->login_timeout_ms
						     : s->env->idle_timeout_ms;
}

void imap_session_timeout(struct imap_session *s)
{
	imap_out(s, "* BYE Autologout; idle for too long\r\n", sizeof("* BYE Autologout; idle for too long\r\n") - 1);
	set_state(s, IMAP_ST_LOGOUT, "timeout");
}

long imap_session_poll_ms(const struct imap_session *s)
{
	return s->mode == IMAP_MODE_IDLE && s->state == IMAP_ST_SELECTED ? 2000 : 0;
}

void imap_session_poll(struct imap_session *s)
{
	if (s->mode == IMAP_MODE_IDLE)
		imap_report_changes(s);
}

enum imap_state imap_session_state(const struct imap_session *s)
{
	return s->state;
}

const char *imap_session_user(const struct imap_session *s)
{
	return s->user[0] != '\0' ? s->user : NULL;
}

struct imap_session *imap_session_new(const struct imap_env *env, const struct imap_conn_info *ci)
{
	struct imap_session *s = sp_xcalloc(1, sizeof(*s));
	unsigned port;

	s->env = env;
	s->state = IMAP_ST_NOT_AUTHENTICATED;
	s->client = ci->client;
	s->local = ci->local;
	s->backend = ci->backend;
	s->client_name = ci->client_name;
	s->client_name_verified = ci->client_name_verified;
	smtp_sockaddr_text(&s->client, s->client_ip, sizeof(s->client_ip), &port);
	s->in_cap = IMAP_INBUF_CAP;
	s->in = sp_xmalloc(s->in_cap);
	s->cmd = sp_xmalloc(sizeof(*s->cmd));
	s->cache.idx = -1;
	s->dir = env->dir != NULL ? dir_ref(env->dir) : dir_users_new(NULL, env->users, NULL, env->pool);
	if (ci->tls != NULL) {
		s->tls = true;
		s->tls_info = *ci->tls;
	}
	/* IMAPS with a certificate that certmap maps to a user: PREAUTH (RFC
	 * 3501 7.1.4). The greeting waits for the directory's answer. */
	if (s->tls && s->backend && has_client_cert(s)) {
		s->greeting_pending = true;
		dir_start_lookup(s, IMAP_PEND_GREETING, NULL, NULL, 0);
		return s;
	}
	greet(s, NULL);
	return s;
}

void imap_session_set_resume(struct imap_session *s, void (*resume)(void *arg), void *arg)
{
	s->resume = resume;
	s->resume_arg = arg;
}

void imap_session_free(struct imap_session **sp)
{
	struct imap_session *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	dir_req_cancel(s->req);
	s->req = NULL;
	dir_unref(&s->dir);
	if (s->job != NULL) {
		/* a store job still uses the mailbox, the input, the cache: they
		 * go when it ends (imap_job.c); the connection and env go now */
		s->gone = true;
		s->resume = NULL;
		s->env = NULL;
		return;
	}
	imap_session_destroy(s);
}

void imap_close_deferred(struct imap_session *s)
{
	if (s->state != IMAP_ST_SELECTED && s->mb != NULL && s->job == NULL) {
		imap_fetch_clear(&s->fetch);
		imap_cache_clear(&s->cache);
		store_mailbox_close(&s->mb);
	}
}

void imap_session_destroy(struct imap_session *s)
{
	imap_fetch_clear(&s->fetch);
	imap_cache_clear(&s->cache);
	store_mailbox_close(&s->mb);
	if (s->in != NULL)
		sp_free_secret(s->in, s->in_cap); /* may hold a password */
	free(s->cmd);
	free(s->out.data);
	free(s);
}

const struct imap_env *imap_session_env(const struct imap_session *s)
{
	return s->env;
}
