/* The SMTP session: an explicit state machine driven by bytes. Input is cut
 * into CRLF lines (or decoded as DATA text), each becomes an event, and one
 * function, smtp_transition(), decides the reply and the next state, citing
 * the rule it follows. Replies accumulate in the output buffer, which the
 * server writes in one write once the input is drained (RFC 2920 3.1). No
 * sockets here; the store and the directory are called directly. */
#include "mailcore/mailcore.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/dir.h"
#include "mailcore/mc_file.h"
#include "mailcore/store_pool.h"

#define ADDR_CAP (SMTP_LOCAL_PART_MAX + 1 + SMTP_DOMAIN_MAX + 1)
#define MAX_TARGETS 1000   /* recipients after alias expansion, per transaction */
#define DATA_CHUNK 4096
#define SMTP_MAX_RECEIVED 100 /* RFC 5321 6.3: loop threshold, "at least 100" */

enum smtp_state {
	SMTP_S_NEW,       /* created; the greeting is the first transition */
	SMTP_S_INIT,      /* greeting sent; HELO/EHLO expected (RFC 5321 4.1.4) */
	SMTP_S_READY,     /* after HELO/EHLO, no mail transaction */
	SMTP_S_MAIL,      /* MAIL accepted; RCPT expected (RFC 5321 3.3) */
	SMTP_S_RCPT,      /* at least one RCPT accepted; more RCPT or DATA */
	SMTP_S_DATA,      /* reading the message text after 354 */
	SMTP_S_AUTH,      /* SASL exchange: a response line expected (RFC 4954 4) */
	SMTP_S_TLS_WAIT,  /* 220 to STARTTLS sent; input discarded (RFC 3207 4.2) */
	SMTP_S_REFUSED,   /* 554 greeting (PORT_ACCESS): only QUIT (RFC 5321 3.1) */
	SMTP_S_CLOSING,   /* 221 or 421 queued: close once written */
	SMTP_S_STORING,   /* end of DATA: the store's fsyncs run on the pool; the 250
			   * waits for them (RFC 5321 4.1.1.4, 6.1: accept = responsible) */
	SMTP_S_AUTH_CHECK, /* AUTH: crypt(3), LDAP bind or certmap runs on the pool */
	SMTP_S_RCPT_CHECK, /* RCPT: the directory lookups run on the pool (LDAP) */
};

static const char *const state_names[] = {
	"new", "init", "ready", "mail", "rcpt", "data", "auth", "tls_wait", "refused", "closing",
	"storing", "auth_check", "rcpt_check",
};

enum smtp_event_kind {
	SMTP_EV_CONNECT,    /* session created */
	SMTP_EV_COMMAND,    /* a command line that parsed */
	SMTP_EV_BAD_LINE,   /* a command line that did not: ev->err is the reply */
	SMTP_EV_SASL_LINE,  /* a line while in SMTP_S_AUTH */
	SMTP_EV_DATA_END,   /* CRLF.CRLF seen */
	SMTP_EV_TLS_READY,  /* tlsd finished the STARTTLS handshake */
	SMTP_EV_TIMEOUT,
	SMTP_EV_EOF,
	SMTP_EV_STORED,        /* the delivery job finished (ev->job) */
	SMTP_EV_AUTH_CHECKED,  /* the password job finished (ev->job) */
	SMTP_EV_RCPT_CHECKED,  /* the recipient lookup job finished (ev->job) */
};

struct smtp_event {
	enum smtp_event_kind kind;
	const struct smtp_cmd *cmd;
	struct smtp_error err;
	const char *line;
	size_t line_len;
	const struct sp_proxy_info *tls;
	struct smtp_job *job;
};

enum sasl_step { SASL_PLAIN, SASL_LOGIN_USER, SASL_LOGIN_PASS, SASL_EXTERNAL };

struct rcpt {
	char *addr;                  /* final address */
	bool local;
	uint64_t quota;              /* local only; 0 = unlimited */
	char *mailhost;              /* homed on another store host: queued to it; else NULL */
};

struct mbuf {
	uint8_t *data;
	size_t len, cap;
};

/* Work the session hands to the store pool: it owns copies of everything
 * it touches on the pool thread (never the session), so a session that
 * goes away meanwhile only orphans it (job->s = NULL). */
enum smtp_job_kind { SMTP_JOB_STORE, SMTP_JOB_AUTH, SMTP_JOB_RCPT };

/* One target of a RCPT after alias expansion, looked up on the pool. */
struct rcpt_target {
	char *addr;
	bool local;
	enum dir_status st;
	struct dir_record *rec;
	bool over_quota;
	bool homed_elsewhere;        /* rec's mailHost is another host (dir_remote_mailhost) */
};

struct smtp_job {
	enum smtp_job_kind kind;
	struct smtp_session *s;       /* NULL once the session is freed */
	/* SMTP_JOB_STORE */
	struct store_target *targets;
	char **prefixes;
	char (*paths)[4096];
	size_t n_targets;
	struct iovec parts[2];
	char hdr[2048];
	struct mbuf msg;              /* the message, moved out of the session */
	char id[17];
	bool held, any_remote;
	size_t n_rcpts;
	enum store_status st;
	char *error;
	const char *hostname;
	bool busy;                    /* the pool was full: nothing was run */
	/* SMTP_JOB_AUTH and SMTP_JOB_RCPT */
	struct dir *dir;              /* a ref: the directory outlives the job */
	char user[SMTP_LOCAL_PART_MAX + 1 + SMTP_DOMAIN_MAX + 1];
	char *pw;
	size_t pw_len;
	bool external;                /* certmap instead of a password */
	struct sp_proxy_info tls;
	enum dir_status dst;
	struct dir_record *rec;
	/* SMTP_JOB_RCPT */
	struct rcpt_target *rt;
	size_t n_rt;
	char rcpt_addr[SMTP_PATH_MAX + 16];
	enum smtp_state rcpt_prev;    /* MAIL or RCPT: where a refusal leaves us */
	const char *store_root;
	uint64_t declared_size;
};

struct smtp_session {
	const struct smtp_env *env;
	/* the tables this session started with (a ref when env->tables is set) */
	struct dir_tables *tables;
	const struct dir_users *users;
	const struct dir_aliases *aliases;
	const struct mappings *maps;
	struct dir *dir;                /* a ref: env->dir or the users file */
	enum smtp_state state;
	enum smtp_listener listener;
	enum smtp_channel base_channel; /* before AUTH */
	enum smtp_channel channel;
	struct sockaddr_storage client, local;
	char client_ip[INET6_ADDRSTRLEN];
	char client_name[256];          /* verified reverse name, for Received:; "" = none */
	/* for service.smtp.domainallowed: the lookup's answer as it came
	 * (an unverified name matches DNSSPOOFER), and whether it is due */
	char filter_name[256];
	bool filter_name_verified;
	bool name_pending;
	struct smtp_job *parked;        /* AUTH checked, waiting for the name */
	char port_probe[160];           /* TCP|server-ip|server-port|client-ip|client-port */

	bool tls;
	struct sp_proxy_info tls_info;
	bool cert_ok;                   /* tlsd verified a client certificate: EXTERNAL */
	char cert_user[ADDR_CAP];       /* EXTERNAL: the authzid the client asked for */

	bool have_helo, ehlo;
	char helo[SMTP_HELO_MAX + 1];

	bool authed;
	char auth_user[ADDR_CAP];
	unsigned auth_failures;
	enum sasl_step sasl;
	char login_user[256];

	/* the mail transaction */
	char from[SMTP_PATH_MAX];
	uint64_t declared_size;
	struct rcpt *rcpts;
	size_t n_rcpts, cap_rcpts;
	unsigned n_rcpt_cmds;           /* accepted RCPT commands */
	struct smtp_data_decoder dec;
	struct mbuf msg;
	bool msg_too_big;

	uint8_t in[SMTP_INBUF_CAP];
	size_t in_off, in_len;          /* unprocessed input: in[in_off .. in_len) */
	bool discard_line;              /* skipping the rest of an over-long line */
	struct mbuf out;

	unsigned errors;
	unsigned messages;

	struct smtp_job *job;           /* work on the pool; the session waits */
	bool job_running;
	void (*resume)(void *arg);      /* the server's: a job finished, do I/O */
	void *resume_arg;
};

/* ---------------------------------------------------------------- buffers */

static void mbuf_append(struct mbuf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap == 0 ? 1024 : b->cap;

		while (cap < b->len + n)
			cap *= 2;
		b->data = sp_xrealloc(b->data, cap, 1);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void mbuf_free(struct mbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- replies */

/* One reply line; status NULL for the greeting and HELO/EHLO (RFC 2034 3).
 * Replies of class 4 and 5 count toward the error limit. */
static void reply(struct smtp_session *s, int code, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reply(struct smtp_session *s, int code, const char *status, const char *fmt, ...)
{
	char text[512];
	char line[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* nothing from the network may end a reply line early */
	for (char *p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			*p = '?';
	if (status != NULL)
		n = snprintf(line, sizeof(line), "%03d %s %s\r\n", code, status, text);
	else
		n = snprintf(line, sizeof(line), "%03d %s\r\n", code, text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	mbuf_append(&s->out, line, (size_t)n);
	if (code >= 400 && code != 421)
		s->errors++;
}

static void reply_err(struct smtp_session *s, const struct smtp_error *e)
{
	reply(s, e->code, e->status, "%s", e->text);
}

/* ---------------------------------------------------------------- helpers */

static bool domain_is_local(const char *domain, void *arg)
{
	const struct smtp_env *env = arg;

	for (size_t i = 0; i < env->n_domains; i++)
		if (strcasecmp(env->domains[i], domain) == 0)
			return true;
	return false;
}

static void transaction_reset(struct smtp_session *s)
{
	for (size_t i = 0; i < s->n_rcpts; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].mailhost);
	}
	s->n_rcpts = 0;
	s->n_rcpt_cmds = 0;
	s->from[0] = '\0';
	s->declared_size = 0;
	mbuf_free(&s->msg);
	s->msg_too_big = false;
}

static bool plaintext_auth_allowed(const struct smtp_session *s)
{
	int need = s->env->plaintext_min_cipher;

	if (need <= 0)
		return true;
	return s->tls && smtp_cipher_bits(s->tls_info.tls_cipher) >= need;
}

/* A client certificate that tlsd verified: EXTERNAL is offered, and
 * certmap.conf maps it to a user when the client asks (the directory may
 * be LDAP: the mapping is a pool job, not done here on the loop). */
static void map_client_cert(struct smtp_session *s)
{
	const struct sp_proxy_info *t = &s->tls_info;

	s->cert_user[0] = '\0';
	s->cert_ok = s->tls && t->tls_verify == 0 &&
		     (t->tls_client & (SP_PP2_CLIENT_CERT_CONN | SP_PP2_CLIENT_CERT_SESS)) != 0 &&
		     (t->cert_subject[0] != '\0' || t->cert_email[0] != '\0');
}

static const char *app_info(const struct smtp_session *s)
{
	return smtp_app_info(s->ehlo, s->tls, s->authed);
}

static const char *with_protocol(const struct smtp_session *s)
{
	return smtp_with_protocol(s->ehlo, s->tls, s->authed);
}

/* Runs a probe through an access table. On refusal queues the reply and
 * returns true. */
static bool access_refused(struct smtp_session *s, const char *table, const char *probe,
			   int def_code, const char *def_text)
{
	struct mapping_result r;

	mappings_lookup(s->maps, table, probe, &r);
	if (r.verdict != MAPPING_REJECT)
		return false;
	sp_log(SP_LOG_NOTICE, "smtp_access_refused", "client=%s table=%s", s->client_ip, table);
	reply(s, r.smtp_code != 0 ? r.smtp_code : def_code, r.status[0] != '\0' ? r.status : "5.7.1",
	      "%s", r.text[0] != '\0' ? r.text : def_text);
	return true;
}

/* src-channel|from|dst-channel|to (SEND_ACCESS, ORIG_SEND_ACCESS) and the
 * same behind port-access|app|MAIL (MAIL_ACCESS, ORIG_MAIL_ACCESS) */
static bool send_access_refused(struct smtp_session *s, bool orig, const char *dst_channel,
				const char *to)
{
	char probe[MAPPINGS_MAX_PROBE];
	size_t pos = 0;
	int n;

	n = snprintf(probe, sizeof(probe), "%s|", smtp_channel_name(s->channel));
	pos = (size_t)n;
	if (smtp_probe_field(probe, sizeof(probe), &pos, s->from) < 0)
		return false;
	n = snprintf(probe + pos, sizeof(probe) - pos, "|%s|", dst_channel);
	if (n < 0 || (size_t)n >= sizeof(probe) - pos)
		return false;
	pos += (size_t)n;
	if (smtp_probe_field(probe, sizeof(probe), &pos, to) < 0)
		return false;
	if (access_refused(s, orig ? "ORIG_SEND_ACCESS" : "SEND_ACCESS", probe, 550,
			   "Recipient access denied"))
		return true;
	{
		char mail_probe[MAPPINGS_MAX_PROBE];

		n = snprintf(mail_probe, sizeof(mail_probe), "%s|%s|MAIL|%s", s->port_probe,
			     app_info(s), probe);
		if (n < 0 || (size_t)n >= sizeof(mail_probe))
			return false;
		return access_refused(s, orig ? "ORIG_MAIL_ACCESS" : "MAIL_ACCESS", mail_probe, 550,
				      "Recipient access denied");
	}
}

static bool rcpt_add(struct smtp_session *s, const char *addr, bool local, uint64_t quota,
		     const char *mailhost)
{
	for (size_t i = 0; i < s->n_rcpts; i++)
		if (strcmp(s->rcpts[i].addr, addr) == 0)
			return true; /* already there: one copy per mailbox */
	if (s->n_rcpts >= MAX_TARGETS)
		return false;
	if (s->n_rcpts == s->cap_rcpts) {
		s->cap_rcpts = s->cap_rcpts == 0 ? 8 : s->cap_rcpts * 2;
		s->rcpts = sp_xrealloc(s->rcpts, s->cap_rcpts, sizeof(*s->rcpts));
	}
	s->rcpts[s->n_rcpts].addr = sp_xstrdup(addr);
	s->rcpts[s->n_rcpts].local = local;
	s->rcpts[s->n_rcpts].quota = quota;
	s->rcpts[s->n_rcpts].mailhost = mailhost != NULL ? sp_xstrdup(mailhost) : NULL;
	s->n_rcpts++;
	return true;
}

static void log_escape(char *buf, size_t cap, const char *s)
{
	sp_log_escape(buf, cap, s, strlen(s));
}

/* ---------------------------------------------------------------- commands */

/* RFC 5321 4.1.1.1 EHLO/HELO; 4.1.4: allowed again later, and then it
 * clears the transaction like RSET. RFC 1869 / 2920 / 1870 / 6152 / 2034 /
 * 3207 / 4954: the extensions we announce. */
static enum smtp_state cmd_helo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	char lines[1024];
	size_t pos = 0;
	const char *ext[8];
	char size_line[40], auth_line[64];
	size_t n_ext = 0;

	transaction_reset(s);
	s->have_helo = true;
	s->ehlo = cmd->verb == SMTP_CMD_EHLO;
	memcpy(s->helo, cmd->arg, cmd->arg_len);
	s->helo[cmd->arg_len] = '\0';
	if (!s->ehlo) {
		reply(s, 250, NULL, "%s", s->env->hostname);
		return SMTP_S_READY;
	}
	snprintf(size_line, sizeof(size_line), "SIZE %llu",
		 (unsigned long long)s->env->max_message_size);
	ext[n_ext++] = "PIPELINING";
	ext[n_ext++] = size_line;
	ext[n_ext++] = "8BITMIME";
	ext[n_ext++] = "ENHANCEDSTATUSCODES";
	if (s->env->starttls && !s->tls)
		ext[n_ext++] = "STARTTLS";
	if (!s->authed) {
		bool plain = plaintext_auth_allowed(s), ext_ok = s->cert_ok;

		if (plain || ext_ok) {
			snprintf(auth_line, sizeof(auth_line), "AUTH%s%s", plain ? " PLAIN LOGIN" : "",
				 ext_ok ? " EXTERNAL" : "");
			ext[n_ext++] = auth_line;
		}
	}
	ext[n_ext++] = "HELP";
	pos += (size_t)snprintf(lines + pos, sizeof(lines) - pos, "250-%s greets %s\r\n",
				s->env->hostname, s->helo);
	for (size_t i = 0; i < n_ext && pos < sizeof(lines); i++)
		pos += (size_t)snprintf(lines + pos, sizeof(lines) - pos, "250%c%s\r\n",
					i + 1 == n_ext ? ' ' : '-', ext[i]);
	if (pos >= sizeof(lines))
		pos = sizeof(lines) - 1;
	/* the whole multi-line reply is queued at once: one write (sslscan, RFC 2920) */
	mbuf_append(&s->out, lines, pos);
	return SMTP_S_READY;
}

/* RFC 5321 4.1.1.2 MAIL; 3.3 sequencing; RFC 1870 6.1 SIZE; RFC 4954 6
 * (530 on submission before AUTH); FROM_ACCESS at MAIL (the anchor). */
static enum smtp_state cmd_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	char probe[MAPPINGS_MAX_PROBE];
	size_t pos;
	int n;

	if (s->state == SMTP_S_INIT) {
		reply(s, 503, "5.5.1", "Send HELO/EHLO first");
		return s->state;
	}
	if (s->state != SMTP_S_READY) {
		reply(s, 503, "5.5.1", "Nested MAIL command");
		return s->state;
	}
	if (s->channel == SMTP_CH_TCP_SUBMIT) {
		reply(s, 530, "5.7.0", "Authentication required");
		return s->state;
	}
	if (cmd->n_params > 0 && !s->ehlo) {
		reply(s, 555, "5.5.4", "MAIL parameters need EHLO");
		return s->state;
	}
	if (cmd->has_size && cmd->size > s->env->max_message_size) {
		reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
		return s->state;
	}
	n = snprintf(probe, sizeof(probe), "%s|%s|MAIL|%s|", s->port_probe, app_info(s),
		     smtp_channel_name(s->channel));
	pos = (size_t)n;
	if (smtp_probe_field(probe, sizeof(probe), &pos, cmd->addr) == 0 && pos + 1 < sizeof(probe)) {
		probe[pos++] = '|';
		probe[pos] = '\0';
		if (smtp_probe_field(probe, sizeof(probe), &pos, s->authed ? s->auth_user : "") == 0 &&
		    access_refused(s, "FROM_ACCESS", probe, 550, "Sender access denied"))
			return s->state;
	}
	transaction_reset(s);
	snprintf(s->from, sizeof(s->from), "%s", cmd->addr);
	s->declared_size = cmd->has_size ? cmd->size : 0;
	reply(s, 250, "2.1.0", "Sender <%s> OK", s->from);
	return SMTP_S_MAIL;
}

/* On the pool: a local recipient after alias expansion looked up in the
 * directory (aliases there lead to the canonical address), and its quota
 * measured. Touches only the job. */
static void rcpt_lookup_work(struct smtp_job *j)
{
	for (size_t i = 0; i < j->n_rt; i++) {
		struct rcpt_target *t = &j->rt[i];
		char maildir[4096];
		uint64_t used;

		if (!t->local)
			continue;
		t->st = dir_lookup(j->dir, t->addr, &t->rec);
		if (t->st == DIR_FOUND)
			t->homed_elsewhere = dir_remote_mailhost(j->dir, t->rec) != NULL;
		/* the quota of a mailbox on another host is that host's business */
		if (t->st != DIR_FOUND || t->rec->status != DIR_USER_ACTIVE || t->rec->quota == 0 ||
		    t->homed_elsewhere)
			continue;
		if (store_maildir_path(j->store_root, t->rec->address, maildir, sizeof(maildir)) == 0 &&
		    store_maildir_usage(maildir, &used) == 0 && used + j->declared_size >= t->rec->quota)
			t->over_quota = true;
	}
}

/* On the loop: a local target's lookup answered. False (and the reply
 * queued) when it cannot receive. A directory that is down is a temporary
 * failure (RFC 3463 4.4.3), never "user unknown" and never "accept". */
static bool local_target_ok(struct smtp_session *s, const struct smtp_job *j,
			    const struct rcpt_target *t)
{
	if (j->busy) {
		reply(s, 451, "4.3.0", "<%s>: Temporary local problem; try again later", t->addr);
		return false;
	}
	if (t->st == DIR_TEMPFAIL) {
		sp_log(SP_LOG_NOTICE, "smtp_rcpt_dir_tempfail", "client=%s", s->client_ip);
		reply(s, 451, "4.4.3", "<%s>: Directory temporarily unavailable; try again later",
		      t->addr);
		return false;
	}
	if (t->st != DIR_FOUND) {
		reply(s, 550, "5.1.1", "<%s>: User unknown", t->addr);
		return false;
	}
	if (t->rec->status != DIR_USER_ACTIVE) {
		reply(s, 450, "4.2.1", "<%s>: Mailbox temporarily unavailable", t->addr);
		return false;
	}
	if (t->over_quota) {
		/* RFC 3463 4.2.2: a full mailbox is worth retrying later */
		reply(s, 452, "4.2.2", "<%s>: Mailbox full", t->addr);
		return false;
	}
	return true;
}

/* RFC 5321 4.1.1.3 RCPT; 4.5.3.1.8/10 recipient limit (452); anti-relay
 * (the anchor: only tcp_intranet and tcp_auth may relay, else 550 5.7.1);
 * ORIG_SEND_ACCESS before and SEND_ACCESS after alias expansion. */
static enum smtp_state cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	char addr[ADDR_CAP + 16];
	char *targets[DIR_ALIAS_MAX_TARGETS];
	const char *domain;
	size_t local_len;
	int n_targets;
	bool local;

	if (s->state != SMTP_S_MAIL && s->state != SMTP_S_RCPT) {
		reply(s, 503, "5.5.1", "Need MAIL before RCPT");
		return s->state;
	}
	if (s->n_rcpt_cmds >= s->env->max_recipients) {
		reply(s, 452, "4.5.3", "Too many recipients");
		return s->state;
	}
	if (cmd->postmaster) {
		if (s->env->n_domains == 0) {
			reply(s, 550, "5.1.1", "<postmaster>: User unknown");
			return s->state;
		}
		snprintf(addr, sizeof(addr), "postmaster@%s", s->env->domains[0]);
	} else {
		snprintf(addr, sizeof(addr), "%s", cmd->addr);
	}
	if (smtp_addr_split(addr, &local_len, &domain) < 0) {
		reply(s, 501, "5.1.3", "Bad recipient address syntax");
		return s->state;
	}
	local = domain_is_local(domain, (void *)s->env);
	if (!local && s->channel != SMTP_CH_TCP_INTRANET && s->channel != SMTP_CH_TCP_AUTH) {
		char esc[300];

		log_escape(esc, sizeof(esc), addr);
		sp_log(SP_LOG_NOTICE, "smtp_relay_denied", "client=%s channel=%s rcpt=\"%s\"",
		       s->client_ip, smtp_channel_name(s->channel), esc);
		reply(s, 550, "5.7.1", "<%s>: Relaying denied", addr);
		return s->state;
	}
	if (send_access_refused(s, true, local ? "ims-ms" : "tcp_local", addr))
		return s->state;
	if (!local) {
		if (s->env->queue_dir == NULL) {
			reply(s, 451, "4.3.0", "<%s>: No outbound queue configured", addr);
			return s->state;
		}
		if (send_access_refused(s, false, "tcp_local", addr))
			return s->state;
		if (!rcpt_add(s, addr, false, 0, NULL)) {
			reply(s, 452, "4.5.3", "Too many recipients");
			return s->state;
		}
		s->n_rcpt_cmds++;
		reply(s, 250, "2.1.5", "Recipient <%s> OK", addr);
		return SMTP_S_RCPT;
	}
	{
		char norm[ADDR_CAP];

		if (mc_normalize_address(addr, strlen(addr), norm, sizeof(norm)) < 0) {
			reply(s, 550, "5.1.1", "<%s>: User unknown", addr);
			return s->state;
		}
		n_targets = dir_aliases_expand(s->aliases, norm, domain_is_local,
					       (void *)s->env, targets, DIR_ALIAS_MAX_TARGETS);
		if (n_targets < 0) {
			reply(s, 550, "5.4.6", "<%s>: Alias expansion loops or is too wide", addr);
			return s->state;
		}
		if (n_targets == 0) {
			targets[0] = sp_xstrdup(norm);
			n_targets = 1;
		}
	}
	/* the lookups run on the pool (LDAP may take a while): SMTP_S_RCPT_CHECK
	 * waits for rcpt_checked() */
	{
		struct smtp_job *j = sp_xcalloc(1, sizeof(*j));

		j->kind = SMTP_JOB_RCPT;
		j->dir = dir_ref(s->dir);
		j->rt = sp_xcalloc((size_t)n_targets, sizeof(*j->rt));
		j->n_rt = (size_t)n_targets;
		for (int i = 0; i < n_targets; i++) {
			const char *at = strrchr(targets[i], '@');

			j->rt[i].addr = targets[i]; /* moves into the job */
			j->rt[i].local = at != NULL && domain_is_local(at + 1, (void *)s->env);
			j->rt[i].st = DIR_TEMPFAIL;
		}
		snprintf(j->rcpt_addr, sizeof(j->rcpt_addr), "%s", addr);
		j->rcpt_prev = s->state;
		j->store_root = s->env->store_root;
		j->declared_size = s->declared_size;
		s->job = j;
	}
	return SMTP_S_RCPT_CHECK;
}

/* The recipient's lookups answered (on the loop): each target must be able
 * to receive and pass SEND_ACCESS; then all of them are added, or none.
 * A local user homed on another store host (mailHost) passes the same
 * checks and is queued to that host: never stored here. */
static enum smtp_state rcpt_checked(struct smtp_session *s, const struct smtp_job *j)
{
	const char *addr = j->rcpt_addr;

	for (size_t i = 0; i < j->n_rt; i++) {
		const struct rcpt_target *t = &j->rt[i];

		if (t->local ? !local_target_ok(s, j, t) : s->env->queue_dir == NULL) {
			if (!t->local)
				reply(s, 451, "4.3.0", "<%s>: No outbound queue configured", addr);
			return j->rcpt_prev;
		}
		if (t->local && t->homed_elsewhere && s->env->queue_dir == NULL) {
			sp_log(SP_LOG_ERR, "smtp_rcpt_mailhost_no_queue", "client=%s mailhost=%s",
			       s->client_ip, t->rec->mailhost);
			reply(s, 451, "4.3.0", "<%s>: No outbound queue configured", addr);
			return j->rcpt_prev;
		}
		if (send_access_refused(s, false, t->local ? "ims-ms" : "tcp_local",
					t->local ? t->rec->address : t->addr))
			return j->rcpt_prev;
	}
	for (size_t i = 0; i < j->n_rt; i++) {
		const struct rcpt_target *t = &j->rt[i];

		bool here = t->local && !t->homed_elsewhere;

		if (!rcpt_add(s, t->local ? t->rec->address : t->addr, here, here ? t->rec->quota : 0,
			      t->local && t->homed_elsewhere ? t->rec->mailhost : NULL)) {
			reply(s, 452, "4.5.3", "Too many recipients");
			return j->rcpt_prev;
		}
	}
	s->n_rcpt_cmds++;
	reply(s, 250, "2.1.5", "Recipient <%s> OK", addr);
	return SMTP_S_RCPT;
}

/* RFC 5321 4.1.1.4 DATA; 3.3: no valid recipients -> 554 (or 503) */
static enum smtp_state cmd_data(struct smtp_session *s)
{
	if (s->state == SMTP_S_MAIL) {
		reply(s, 554, "5.5.1", "No valid recipients");
		return s->state;
	}
	if (s->state != SMTP_S_RCPT) {
		reply(s, 503, "5.5.1", "Need MAIL and RCPT before DATA");
		return s->state;
	}
	smtp_data_init(&s->dec);
	mbuf_free(&s->msg);
	s->msg_too_big = false;
	reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	return SMTP_S_DATA;
}

/* RFC 3207 4: STARTTLS after EHLO, outside a transaction; 4.2: everything
 * the client sent after the command is thrown away (the TLS_WAIT state
 * discards the rest of the input buffer). */
static enum smtp_state cmd_starttls(struct smtp_session *s)
{
	if (!s->env->starttls) {
		reply(s, 502, "5.5.1", "STARTTLS not available");
		return s->state;
	}
	if (s->tls) {
		reply(s, 503, "5.5.1", "TLS already active");
		return s->state;
	}
	if (s->state != SMTP_S_READY || !s->ehlo) {
		reply(s, 503, "5.5.1",
		      s->state == SMTP_S_INIT || !s->ehlo ? "Send EHLO first" : "Mail transaction in progress");
		return s->state;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	return SMTP_S_TLS_WAIT;
}

static enum smtp_state auth_success(struct smtp_session *s, const char *user)
{
	char esc[300];

	snprintf(s->auth_user, sizeof(s->auth_user), "%s", user);
	s->authed = true;
	s->channel = SMTP_CH_TCP_AUTH; /* the anchor's saslswitchchannel tcp_auth */
	log_escape(esc, sizeof(esc), user);
	sp_log(SP_LOG_INFO, "smtp_auth", "client=%s user=\"%s\" result=ok", s->client_ip, esc);
	reply(s, 235, "2.7.0", "Authentication successful");
	return SMTP_S_READY;
}

static enum smtp_state auth_failure(struct smtp_session *s, const char *user)
{
	char esc[300];

	log_escape(esc, sizeof(esc), user != NULL ? user : "");
	sp_log(SP_LOG_NOTICE, "smtp_auth", "client=%s user=\"%s\" result=failed", s->client_ip, esc);
	s->auth_failures++;
	if (s->auth_failures >= s->env->max_auth_failures) {
		reply(s, 421, "4.7.0", "%s Too many authentication failures", s->env->hostname);
		return SMTP_S_CLOSING;
	}
	/* RFC 4954 6 */
	reply(s, 535, "5.7.8", "Authentication credentials invalid");
	return SMTP_S_READY;
}

/* The password check (crypt_r) goes to the pool as a job; the session
 * waits in SMTP_S_AUTH_CHECK and auth_checked() answers. */
static enum smtp_state auth_check_password(struct smtp_session *s, const char *user,
					   size_t user_len, const char *pw, size_t pw_len)
{
	struct smtp_job *j;

	if (user_len >= sizeof(j->user))
		return auth_failure(s, NULL);
	j = sp_xcalloc(1, sizeof(*j));
	j->kind = SMTP_JOB_AUTH;
	j->dir = dir_ref(s->dir); /* the job may outlive the session */
	memcpy(j->user, user, user_len);
	j->user[user_len] = '\0';
	j->pw = sp_xmalloc(pw_len + 1);
	memcpy(j->pw, pw, pw_len);
	j->pw[pw_len] = '\0';
	j->pw_len = pw_len;
	s->job = j;
	return SMTP_S_AUTH_CHECK;
}

/* EXTERNAL (RFC 4422 A): the certificate is mapped through certmap.conf
 * on the pool; authzid (may be empty) is checked when it answers. */
static enum smtp_state auth_check_certificate(struct smtp_session *s, const uint8_t *authzid,
					      size_t n)
{
	struct smtp_job *j;

	if (n >= sizeof(s->cert_user) || memchr(authzid, '\0', n) != NULL)
		return auth_failure(s, NULL);
	memcpy(s->cert_user, authzid, n);
	s->cert_user[n] = '\0';
	j = sp_xcalloc(1, sizeof(*j));
	j->kind = SMTP_JOB_AUTH;
	j->external = true;
	j->dir = dir_ref(s->dir);
	j->tls = s->tls_info;
	s->job = j;
	return SMTP_S_AUTH_CHECK;
}

/* The directory answered. RFC 4954 6: 454 4.7.0 for a temporary failure
 * (pool full, LDAP down), 535 5.7.8 for refused credentials. Per-user
 * allowed services (mailAllowedServiceAccess / allowed=) are checked here,
 * after the credentials: a user barred from smtp gets the same 535 5.7.8
 * as a wrong password (the log says why), so the reply tells a guesser
 * nothing, and the session stays unauthenticated. */
static enum smtp_state auth_checked(struct smtp_session *s, const struct smtp_job *j)
{
	const char *who = j->external ? s->cert_user : j->user;

	if (j->busy || j->dst == DIR_TEMPFAIL) {
		sp_log(SP_LOG_NOTICE, "smtp_auth", "client=%s result=tempfail why=%s", s->client_ip,
		       j->busy ? "pool_full" : "directory");
		reply(s, 454, "4.7.0", "Temporary authentication failure");
		return SMTP_S_READY;
	}
	if (j->dst != DIR_FOUND)
		return auth_failure(s, who);
	/* RFC 4422 A.1: an empty authzid, or the identity the certificate maps to */
	if (j->external && s->cert_user[0] != '\0' && strcasecmp(s->cert_user, j->rec->address) != 0)
		return auth_failure(s, who);
	{
		struct filter_query q = {
			.service = "smtp",
			.client = (const struct sockaddr *)&s->client,
			.client_name = s->filter_name[0] != '\0' ? s->filter_name : NULL,
			.client_name_verified = s->filter_name_verified,
			.user = j->rec->address,
			.server = (const struct sockaddr *)&s->local,
			.server_name = s->env->hostname,
		};
		struct filter_decision d = {.allowed = true, .rule = -1};

		if (!dir_service_allowed(j->rec, &q)) {
			sp_log(SP_LOG_NOTICE, "smtp_auth_service_denied", "client=%s user=%s",
			       s->client_ip, j->rec->address);
			return auth_failure(s, j->rec->address);
		}
		if (s->env->auth_filter != NULL)
			filter_eval(s->env->auth_filter, &q, &d);
		if (!d.allowed) {
			/* service.smtp.domain(not)allowed: the same 535 as a
			 * wrong password; the log says which rule */
			sp_log(SP_LOG_NOTICE, "smtp_auth_filtered", "client=%s name=%s user=%s rule=%d",
			       s->client_ip, q.client_name != NULL ? q.client_name : "-",
			       j->rec->address, d.rule);
			return auth_failure(s, j->rec->address);
		}
	}
	return auth_success(s, j->rec->address);
}

/* One SASL response (initial or continuation), decoded. */
static enum smtp_state sasl_response(struct smtp_session *s, const uint8_t *r, size_t n)
{
	switch (s->sasl) {
	case SASL_PLAIN: {
		struct smtp_plain p;

		if (smtp_sasl_plain_split(r, n, &p) < 0)
			return auth_failure(s, NULL);
		/* no proxy authorization: authzid empty or the user itself */
		if (p.authzid_len > 0 && (p.authzid_len != p.authcid_len ||
					  strncasecmp(p.authzid, p.authcid, p.authcid_len) != 0))
			return auth_failure(s, NULL);
		return auth_check_password(s, p.authcid, p.authcid_len, p.passwd, p.passwd_len);
	}
	case SASL_LOGIN_USER:
		if (n == 0 || n >= sizeof(s->login_user) || memchr(r, '\0', n) != NULL)
			return auth_failure(s, NULL);
		memcpy(s->login_user, r, n);
		s->login_user[n] = '\0';
		s->sasl = SASL_LOGIN_PASS;
		reply(s, 334, NULL, "UGFzc3dvcmQ6"); /* "Password:" */
		return SMTP_S_AUTH;
	case SASL_LOGIN_PASS: {
		enum smtp_state next = auth_check_password(s, s->login_user, strlen(s->login_user),
							   (const char *)r, n);

		OPENSSL_cleanse(s->login_user, sizeof(s->login_user));
		return next;
	}
	case SASL_EXTERNAL:
		return auth_check_certificate(s, r, n);
	}
	return auth_failure(s, NULL);
}

/* Decodes base64 text (RFC 4954 4: "=" is an empty initial response) and
 * hands it on; the decoded secret is wiped. */
static enum smtp_state sasl_decode_and_respond(struct smtp_session *s, const char *text,
					       size_t len, bool initial)
{
	uint8_t buf[SMTP_AUTH_LINE_MAX];
	ssize_t n;
	enum smtp_state next;

	if ((initial && len == 1 && text[0] == '=') || len == 0)
		n = 0;
	else
		n = smtp_base64_decode(text, len, buf, sizeof(buf));
	if (n < 0) {
		reply(s, 501, "5.5.2", "Cannot decode base64 response");
		return SMTP_S_READY;
	}
	next = sasl_response(s, buf, (size_t)n);
	OPENSSL_cleanse(buf, (size_t)n);
	return next;
}

/* RFC 4954 4: AUTH needs EHLO, is refused during a transaction and once
 * authenticated (503); unknown mechanism 504; 538 when a plaintext mechanism
 * needs encryption first (plaintextmincipher). */
static enum smtp_state cmd_auth(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (!s->ehlo || s->state == SMTP_S_INIT) {
		reply(s, 503, "5.5.1", "Send EHLO first");
		return s->state;
	}
	if (s->authed) {
		reply(s, 503, "5.5.1", "Already authenticated");
		return s->state;
	}
	if (s->state != SMTP_S_READY) {
		reply(s, 503, "5.5.1", "AUTH not permitted during a mail transaction");
		return s->state;
	}
	if (strcmp(cmd->mech, "PLAIN") == 0 || strcmp(cmd->mech, "LOGIN") == 0) {
		if (!plaintext_auth_allowed(s)) {
			reply(s, 538, "5.7.11", "Encryption required for requested authentication mechanism");
			return s->state;
		}
		s->sasl = cmd->mech[0] == 'P' ? SASL_PLAIN : SASL_LOGIN_USER;
	} else if (strcmp(cmd->mech, "EXTERNAL") == 0) {
		if (!s->cert_ok) {
			reply(s, 504, "5.5.4", "EXTERNAL needs a verified client certificate of a user");
			return s->state;
		}
		s->sasl = SASL_EXTERNAL;
	} else {
		reply(s, 504, "5.5.4", "Unrecognized authentication mechanism");
		return s->state;
	}
	if (cmd->has_initial)
		return sasl_decode_and_respond(s, cmd->initial, cmd->initial_len, true);
	reply(s, 334, NULL, "%s", s->sasl == SASL_LOGIN_USER ? "VXNlcm5hbWU6" : ""); /* "Username:" */
	return SMTP_S_AUTH;
}

/* A line while in SMTP_S_AUTH: RFC 4954 4 ("*" cancels with 501). */
static enum smtp_state sasl_line(struct smtp_session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		OPENSSL_cleanse(s->login_user, sizeof(s->login_user));
		reply(s, 501, "5.7.0", "Authentication cancelled");
		return SMTP_S_READY;
	}
	return sasl_decode_and_respond(s, line, len, false);
}

/* ---------------------------------------------------------------- delivery */

static void hdr_printf(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void hdr_printf(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos + 1 >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos = *pos + (size_t)n < cap ? *pos + (size_t)n : cap - 1;
}

static size_t received_header(const struct smtp_session *s, const char *id, char *buf, size_t cap)
{
	char date[64], ip[INET6_ADDRSTRLEN + 8];
	time_t now = time(NULL);
	struct tm tm;
	size_t pos = 0;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (strchr(s->client_ip, ':') != NULL)
		snprintf(ip, sizeof(ip), "[IPv6:%s]", s->client_ip);
	else if (s->client_ip[0] != '\0' && strcmp(s->client_ip, "unix") != 0)
		snprintf(ip, sizeof(ip), "[%s]", s->client_ip);
	else
		snprintf(ip, sizeof(ip), "unknown");
	/* RFC 5321 4.4: from, by, with, id, for; TLS and AUTH facts as comments.
	 * TCP-info is "name [ip]" when the client's name is forward-confirmed. */
	hdr_printf(buf, cap, &pos, "Received: from %s (%s%s%s)\r\n\tby %s (Sealpost) with %s id %s",
		   s->helo, s->client_name, s->client_name[0] != '\0' ? " " : "", ip,
		   s->env->hostname, with_protocol(s), id);
	if (s->tls) {
		char v[sizeof(s->tls_info.tls_version)], c[sizeof(s->tls_info.tls_cipher)];

		sp_log_escape(v, sizeof(v), s->tls_info.tls_version, strlen(s->tls_info.tls_version));
		sp_log_escape(c, sizeof(c), s->tls_info.tls_cipher, strlen(s->tls_info.tls_cipher));
		hdr_printf(buf, cap, &pos, "\r\n\t(using %s with cipher %s)", v, c);
	}
	if (s->authed)
		hdr_printf(buf, cap, &pos, "\r\n\t(authenticated user %s)", s->auth_user);
	if (s->n_rcpts == 1)
		hdr_printf(buf, cap, &pos, "\r\n\tfor <%s>;\r\n\t%s\r\n", s->rcpts[0].addr, date);
	else
		hdr_printf(buf, cap, &pos, ";\r\n\t%s\r\n", date);
	return pos;
}

static char *envelope_prefix(const struct smtp_session *s, bool all, size_t *len_r)
{
	struct mbuf b = {0};
	char line[SMTP_PATH_MAX + 32 + sizeof(((struct dir_record *)0)->mailhost) + 16];
	int n;

	n = snprintf(line, sizeof(line), "X-Sealpost-Queue: 1\r\nX-Sealpost-From: <%s>\r\n", s->from);
	mbuf_append(&b, line, (size_t)n);
	for (size_t i = 0; i < s->n_rcpts; i++) {
		if (!all && s->rcpts[i].local)
			continue;
		/* queue.h: a recipient homed on another store host names it */
		n = snprintf(line, sizeof(line), "X-Sealpost-To: <%s>%s%s\r\n", s->rcpts[i].addr,
			     s->rcpts[i].mailhost != NULL ? " mailhost=" : "",
			     s->rcpts[i].mailhost != NULL ? s->rcpts[i].mailhost : "");
		mbuf_append(&b, line, (size_t)n);
	}
	mbuf_append(&b, "\r\n", 2);
	*len_r = b.len;
	return (char *)b.data;
}

/* Delivers the message: to each local mailbox, plus one queue file for the
 * remote recipients; or, past holdlimit, one file in the hold spool. All
 * or nothing (store_maildir_deliver). The writes and fsyncs run as a pool
 * job; the session waits in SMTP_S_STORING and stored() answers. */
static enum smtp_state deliver(struct smtp_session *s)
{
	struct smtp_job *j = sp_xcalloc(1, sizeof(*j));
	uint64_t rnd;

	j->kind = SMTP_JOB_STORE;
	j->targets = sp_xcalloc(s->n_rcpts + 1, sizeof(*j->targets));
	j->prefixes = sp_xcalloc(s->n_rcpts + 1, sizeof(*j->prefixes));
	j->paths = sp_xcalloc(s->n_rcpts + 1, sizeof(*j->paths));
	j->held = s->env->holdlimit > 0 && s->env->hold_dir != NULL &&
		  s->n_rcpt_cmds > s->env->holdlimit;
	j->n_rcpts = s->n_rcpts;
	j->st = STORE_TEMPFAIL;
	j->hostname = s->env->hostname;
	s->job = j;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		j->error = sp_xasprintf("getrandom failed");
		return SMTP_S_STORING;
	}
	snprintf(j->id, sizeof(j->id), "%016llX", (unsigned long long)rnd);
	j->parts[0].iov_base = j->hdr;
	j->parts[0].iov_len = received_header(s, j->id, j->hdr, sizeof(j->hdr));
	/* the message moves into the job: no copy */
	j->msg = s->msg;
	memset(&s->msg, 0, sizeof(s->msg));
	j->parts[1].iov_base = j->msg.data;
	j->parts[1].iov_len = j->msg.len;

	for (size_t i = 0; i < s->n_rcpts && !j->held; i++) {
		const struct rcpt *r = &s->rcpts[i];
		size_t nt = j->n_targets;

		if (!r->local) {
			j->any_remote = true;
			continue;
		}
		if (store_maildir_path(s->env->store_root, r->addr, j->paths[nt], sizeof(j->paths[nt])) < 0) {
			j->error = sp_xasprintf("no Maildir path for %s", r->addr);
			return SMTP_S_STORING;
		}
		j->prefixes[nt] = sp_xasprintf("Return-Path: <%s>\r\nDelivered-To: %s\r\n", s->from, r->addr);
		j->targets[nt].maildir = j->paths[nt];
		j->targets[nt].quota = r->quota;
		j->targets[nt].prefix = j->prefixes[nt];
		j->targets[nt].prefix_len = strlen(j->prefixes[nt]);
		j->n_targets++;
	}
	if (j->held || j->any_remote) {
		size_t plen, nt = j->n_targets;

		j->prefixes[nt] = envelope_prefix(s, j->held, &plen);
		j->targets[nt].maildir = j->held ? s->env->hold_dir : s->env->queue_dir;
		j->targets[nt].prefix = j->prefixes[nt];
		j->targets[nt].prefix_len = plen;
		j->n_targets++;
	}
	return SMTP_S_STORING;
}

/* The delivery job's outcome: RFC 5321 4.1.1.4 / 6.1, 250 only once the
 * message is safe; RFC 3463 4.3.1 for a full disk (nothing was kept). */
static enum smtp_state stored(struct smtp_session *s, const struct smtp_job *j)
{
	if (j->st == STORE_OK) {
		char from[300];

		log_escape(from, sizeof(from), s->from);
		sp_log(SP_LOG_INFO, "smtp_message", "client=%s id=%s from=\"%s\" rcpts=%zu size=%zu%s%s",
		       s->client_ip, j->id, from, j->n_rcpts, j->msg.len, j->held ? " held=yes" : "",
		       s->authed ? " auth=yes" : "");
		s->messages++;
		if (j->any_remote && !j->held && s->env->queued != NULL)
			s->env->queued(s->env->queued_arg);
		reply(s, 250, "2.0.0", "Ok: queued as %s", j->id);
	} else if (j->st == STORE_OVER_QUOTA) {
		sp_log(SP_LOG_NOTICE, "smtp_over_quota", "client=%s why=\"%s\"", s->client_ip,
		       j->error != NULL ? j->error : "");
		reply(s, 452, "4.2.2", "Mailbox full");
	} else if (j->st == STORE_NOSPACE) {
		sp_log(SP_LOG_ERR, "smtp_store_no_space", "client=%s why=\"%s\"", s->client_ip,
		       j->error != NULL ? j->error : "");
		reply(s, 452, "4.3.1", "Insufficient system storage; try again later");
	} else {
		sp_log(SP_LOG_ERR, "smtp_store_failed", "client=%s why=\"%s\"", s->client_ip,
		       j->error != NULL ? j->error : "");
		reply(s, 451, "4.3.0", "Temporary failure storing the message; try again later");
	}
	transaction_reset(s);
	return SMTP_S_READY;
}

/* RFC 5321 6.3: Received: fields in the header section (up to the first
 * empty line), counted up to limit. */
static unsigned count_received(const uint8_t *msg, size_t len, unsigned limit)
{
	unsigned n = 0;
	size_t pos = 0;

	while (pos < len && n < limit) {
		const uint8_t *nl = memchr(msg + pos, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - (msg + pos)) : len - pos;

		if (ll == 0 || (ll == 1 && msg[pos] == '\r'))
			break; /* the end of the header section */
		if (ll >= 9 && strncasecmp((const char *)msg + pos, "Received:", 9) == 0)
			n++;
		pos += ll + 1;
	}
	return n;
}

/* End of DATA: the bare CR/LF policy (mailcore.h), the size limit (RFC 1870
 * 6.1 / RFC 5321 4.5.3.1.10: 552), the hop count (RFC 5321 6.3: at least
 * 100 Received: fields is a loop, e.g. two hosts naming each other as a
 * user's mailHost; RFC 3463 5.4.6), then delivery. */
static enum smtp_state data_end(struct smtp_session *s)
{
	if (count_received(s->msg.data, s->msg.len, SMTP_MAX_RECEIVED) >= SMTP_MAX_RECEIVED) {
		sp_log(SP_LOG_NOTICE, "smtp_mail_loop", "client=%s received_fields=%u", s->client_ip,
		       SMTP_MAX_RECEIVED);
		transaction_reset(s);
		reply(s, 554, "5.4.6", "Too many hops (Received: fields): mail loop");
		return SMTP_S_READY;
	}
	if (s->dec.bare_cr || s->dec.bare_lf) {
		sp_log(SP_LOG_NOTICE, "smtp_bare_newline", "client=%s bare_cr=%d bare_lf=%d",
		       s->client_ip, s->dec.bare_cr, s->dec.bare_lf);
		transaction_reset(s);
		reply(s, 550, "5.6.0", "Message refused: bare CR or LF in the text; lines must end with CRLF");
		return SMTP_S_READY;
	}
	if (s->msg_too_big) {
		transaction_reset(s);
		reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
		return SMTP_S_READY;
	}
	return deliver(s);
}

/* RFC 3207 4.2: after the handshake the server discards all knowledge
 * obtained from the client (HELO name, AUTH, transaction) and waits for
 * EHLO; no new greeting. */
static enum smtp_state tls_ready(struct smtp_session *s, const struct sp_proxy_info *facts)
{
	transaction_reset(s);
	s->tls = true;
	s->tls_info = *facts;
	s->have_helo = s->ehlo = false;
	s->helo[0] = '\0';
	s->authed = false;
	s->auth_user[0] = '\0';
	s->channel = s->base_channel;
	map_client_cert(s);
	return SMTP_S_INIT;
}

/* The greeting, after PORT_ACCESS (the anchor: refused at connect) and
 * INTERNAL_IP (tcp_intranet). RFC 5321 3.1: a 554 greeting, then only QUIT. */
static enum smtp_state connect_event(struct smtp_session *s)
{
	struct mapping_result r;

	mappings_lookup(s->maps, "PORT_ACCESS", s->port_probe, &r);
	if (r.verdict == MAPPING_REJECT) {
		sp_log(SP_LOG_NOTICE, "smtp_port_access_refused", "probe=\"%s\"", s->port_probe);
		reply(s, r.smtp_code != 0 ? r.smtp_code : 554, NULL, "%s %s", s->env->hostname,
		      r.text[0] != '\0' ? r.text : "Access denied");
		s->errors = 0; /* the refusal itself is not the client's error */
		return SMTP_S_REFUSED;
	}
	reply(s, 220, NULL, "%s ESMTP Sealpost", s->env->hostname);
	return SMTP_S_INIT;
}

/* ---------------------------------------------------------------- the machine */

/* The transition function: every state change of the session happens here
 * (or in the command handlers it calls, which return the next state). */
static enum smtp_state smtp_transition(struct smtp_session *s, const struct smtp_event *ev)
{
	const struct smtp_cmd *cmd = ev->cmd;

	switch (ev->kind) {
	case SMTP_EV_CONNECT:
		return connect_event(s);
	case SMTP_EV_TIMEOUT:
		/* RFC 5321 4.5.3.2.7 server timeout; 3.8: 421 then close */
		reply(s, 421, "4.4.2", "%s Timeout, closing connection", s->env->hostname);
		return SMTP_S_CLOSING;
	case SMTP_EV_EOF:
		if (s->state == SMTP_S_DATA)
			sp_log(SP_LOG_NOTICE, "smtp_data_aborted", "client=%s", s->client_ip);
		return SMTP_S_CLOSING;
	case SMTP_EV_TLS_READY:
		return tls_ready(s, ev->tls);
	case SMTP_EV_DATA_END:
		return data_end(s);
	case SMTP_EV_STORED:
		return stored(s, ev->job);
	case SMTP_EV_AUTH_CHECKED:
		return auth_checked(s, ev->job);
	case SMTP_EV_RCPT_CHECKED:
		return rcpt_checked(s, ev->job);
	case SMTP_EV_SASL_LINE:
		return sasl_line(s, ev->line, ev->line_len);
	case SMTP_EV_BAD_LINE:
		reply_err(s, &ev->err);
		/* RFC 4954 4: a malformed response ends the exchange */
		return s->state == SMTP_S_AUTH ? SMTP_S_READY : s->state;
	case SMTP_EV_COMMAND:
		break;
	}

	if (s->state == SMTP_S_REFUSED) {
		if (cmd->verb == SMTP_CMD_QUIT) {
			reply(s, 221, "2.0.0", "%s closing connection", s->env->hostname);
			return SMTP_S_CLOSING;
		}
		reply(s, 503, "5.5.1", "Bad sequence of commands: access denied, send QUIT");
		return s->state;
	}
	switch (cmd->verb) {
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		return cmd_helo(s, cmd);
	case SMTP_CMD_MAIL:
		return cmd_mail(s, cmd);
	case SMTP_CMD_RCPT:
		return cmd_rcpt(s, cmd);
	case SMTP_CMD_DATA:
		return cmd_data(s);
	case SMTP_CMD_RSET:
		/* RFC 5321 4.1.1.5: abort the transaction, keep the HELO */
		transaction_reset(s);
		reply(s, 250, "2.0.0", "Ok");
		return s->have_helo ? SMTP_S_READY : SMTP_S_INIT;
	case SMTP_CMD_NOOP:
		/* RFC 5321 4.1.1.9: no effect */
		reply(s, 250, "2.0.0", "Ok");
		return s->state;
	case SMTP_CMD_QUIT:
		/* RFC 5321 4.1.1.10 */
		reply(s, 221, "2.0.0", "%s closing connection", s->env->hostname);
		return SMTP_S_CLOSING;
	case SMTP_CMD_VRFY:
		/* RFC 5321 3.5.3: 252 when we will not verify */
		reply(s, 252, "2.5.2", "Cannot VRFY user; try RCPT to attempt delivery");
		return s->state;
	case SMTP_CMD_EXPN:
		/* RFC 5321 3.5.2 / 7.3: EXPN may be disabled */
		reply(s, 502, "5.5.1", "EXPN not available");
		return s->state;
	case SMTP_CMD_HELP:
		/* RFC 5321 4.1.1.8 */
		reply(s, 214, "2.0.0",
		      "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY AUTH STARTTLS");
		return s->state;
	case SMTP_CMD_STARTTLS:
		return cmd_starttls(s);
	case SMTP_CMD_AUTH:
		return cmd_auth(s, cmd);
	case SMTP_CMD_NOT_IMPLEMENTED:
		break;
	}
	reply(s, 502, "5.5.1", "Command not implemented");
	return s->state;
}

/* ---------------------------------------------------------------- jobs */

static void process(struct smtp_session *s);
static void smtp_step(struct smtp_session *s, const struct smtp_event *ev);

static void job_free(struct smtp_job *j)
{
	if (j == NULL)
		return;
	if (j->prefixes != NULL)
		for (size_t i = 0; i < j->n_rcpts + 1; i++)
			free(j->prefixes[i]);
	free(j->prefixes);
	free(j->paths);
	free(j->targets);
	mbuf_free(&j->msg);
	free(j->error);
	if (j->pw != NULL)
		sp_free_secret(j->pw, j->pw_len + 1);
	OPENSSL_cleanse(j->user, sizeof(j->user));
	dir_record_free(&j->rec);
	for (size_t i = 0; i < j->n_rt; i++) {
		free(j->rt[i].addr);
		dir_record_free(&j->rt[i].rec);
	}
	free(j->rt);
	dir_unref(&j->dir);
	free(j);
}

/* On a pool thread (or inline without a pool): touches only the job. */
static void job_work(void *arg)
{
	struct smtp_job *j = arg;

	if (j->kind == SMTP_JOB_STORE) {
		if (j->error == NULL)
			j->st = store_maildir_deliver(j->targets, j->n_targets, j->parts, 2, j->hostname,
						      NULL, 0, &j->error);
		return;
	}
	if (j->kind == SMTP_JOB_RCPT) {
		rcpt_lookup_work(j);
		return;
	}
	if (j->external) {
		j->dst = dir_certmap(j->dir, &j->tls, &j->rec);
		return;
	}
	j->dst = dir_verify(j->dir, j->user, j->pw, j->pw_len, &j->rec);
	OPENSSL_cleanse(j->pw, j->pw_len);
}

/* The authenticated-session filter names hosts but the client's name has
 * not come back yet: the AUTH answer waits for it (bounded by the lookup's
 * deadline), so a name rule never depends on who was faster. */
static bool auth_waits_for_name(const struct smtp_session *s, const struct smtp_job *j)
{
	return j->kind == SMTP_JOB_AUTH && s->name_pending && s->env->auth_filter != NULL &&
	       filter_needs_client_name(s->env->auth_filter);
}

static void job_finish(struct smtp_session *s, struct smtp_job *j)
{
	if (auth_waits_for_name(s, j)) {
		s->parked = j;
		return;
	}
	struct smtp_event ev = {.kind = j->kind == SMTP_JOB_STORE  ? SMTP_EV_STORED
					: j->kind == SMTP_JOB_RCPT ? SMTP_EV_RCPT_CHECKED
								   : SMTP_EV_AUTH_CHECKED,
				.job = j};

	smtp_step(s, &ev);
	job_free(j);
}

/* On the loop, from the pool: the session goes on; the server's resume
 * callback comes last (it may end the connection and free the session). */
static void job_done(void *arg)
{
	struct smtp_job *j = arg;
	struct smtp_session *s = j->s;
	void (*resume)(void *);
	void *resume_arg;

	if (s == NULL) {
		job_free(j); /* the session went away meanwhile */
		return;
	}
	s->job = NULL;
	s->job_running = false;
	resume = s->resume;
	resume_arg = s->resume_arg;
	job_finish(s, j);
	process(s); /* pipelined commands that waited */
	if (resume != NULL)
		resume(resume_arg);
}

static void job_start(struct smtp_session *s)
{
	struct smtp_job *j = s->job;
	/* directory work goes to the directory's own pool where it has one
	 * (LDAP), so a slow server never holds the store's fsync threads */
	struct store_pool *pool = j->kind != SMTP_JOB_STORE && dir_pool(s->dir) != NULL
					  ? dir_pool(s->dir) : s->env->pool;

	j->s = s;
	/* recipients in the users file are a memory lookup: inline, so a
	 * pipelined batch is still answered in one write (RFC 2920 3.1) */
	if (j->kind == SMTP_JOB_RCPT && strcmp(dir_backend_name(s->dir), "users") == 0)
		pool = NULL;
	if (pool != NULL && s->resume != NULL) {
		if (store_pool_submit(pool, job_work, job_done, j) == 0) {
			s->job_running = true;
			return;
		}
		j->busy = true;
		if (j->kind == SMTP_JOB_STORE && j->error == NULL)
			j->error = sp_xasprintf("store pool full");
		s->job = NULL;
		job_finish(s, j);
		return;
	}
	/* no pool (unit tests, tools): the same work, inline */
	s->job = NULL;
	job_work(j);
	job_finish(s, j);
}

/* Runs one event through the machine, then applies the error limit
 * (Postfix's hard error limit: 421 and close); a state that waits for a
 * job starts it. */
static void smtp_step(struct smtp_session *s, const struct smtp_event *ev)
{
	enum smtp_state next = smtp_transition(s, ev);

	if (next != s->state)
		sp_log(SP_LOG_DEBUG, "smtp_state", "client=%s from=%s to=%s", s->client_ip,
		       state_names[s->state], state_names[next]);
	s->state = next;
	if (s->state != SMTP_S_CLOSING && s->errors >= s->env->max_errors) {
		sp_log(SP_LOG_NOTICE, "smtp_too_many_errors", "client=%s errors=%u", s->client_ip,
		       s->errors);
		reply(s, 421, "4.7.0", "%s Too many errors, closing connection", s->env->hostname);
		s->state = SMTP_S_CLOSING;
	}
	if (s->job != NULL && !s->job_running) {
		if (s->state == SMTP_S_STORING || s->state == SMTP_S_AUTH_CHECK ||
		    s->state == SMTP_S_RCPT_CHECK) {
			job_start(s);
		} else {
			job_free(s->job);
			s->job = NULL;
		}
	}
}

/* ---------------------------------------------------------------- input */

static void data_input(struct smtp_session *s)
{
	uint8_t out[DATA_CHUNK + 2];

	while (s->in_off < s->in_len && !s->dec.done) {
		size_t chunk = s->in_len - s->in_off, produced, used;

		if (chunk > DATA_CHUNK)
			chunk = DATA_CHUNK;
		used = smtp_data_decode(&s->dec, s->in + s->in_off, chunk, out, sizeof(out), &produced);
		s->in_off += used;
		if (!s->msg_too_big) {
			if (s->msg.len + produced > s->env->max_message_size) {
				s->msg_too_big = true; /* keep reading to the end, store no more */
				mbuf_free(&s->msg);
			} else {
				mbuf_append(&s->msg, out, produced);
			}
		}
	}
	if (s->dec.done) {
		struct smtp_event ev = {.kind = SMTP_EV_DATA_END};

		smtp_step(s, &ev);
	}
}

/* One line in command (or SASL) mode; returns false when more input is needed. */
static bool line_input(struct smtp_session *s)
{
	uint8_t *start = s->in + s->in_off;
	size_t avail = s->in_len - s->in_off;
	uint8_t *lf = memchr(start, '\n', avail);
	size_t len, used;
	bool secret = s->state == SMTP_S_AUTH;
	struct smtp_event ev = {0};
	struct smtp_cmd cmd;

	if (s->discard_line) {
		if (lf == NULL) {
			s->in_off = s->in_len;
			return false;
		}
		s->in_off += (size_t)(lf - start) + 1;
		s->discard_line = false;
		return true;
	}
	if (lf == NULL) {
		if (avail < SMTP_AUTH_LINE_MAX)
			return false;
		/* RFC 5321 4.5.3.1.4 / 4.2.4: 500 line too long; skip to its end */
		ev.kind = SMTP_EV_BAD_LINE;
		ev.err = (struct smtp_error){500, "5.5.6", "Line too long"};
		OPENSSL_cleanse(start, avail);
		s->in_off = s->in_len;
		s->discard_line = true;
		smtp_step(s, &ev);
		return true;
	}
	used = (size_t)(lf - start) + 1;
	if (lf == start || lf[-1] != '\r') {
		/* RFC 5321 2.3.8: only CRLF ends a line */
		ev.kind = SMTP_EV_BAD_LINE;
		ev.err = (struct smtp_error){500, "5.5.2", "Bare LF received; lines must end with CRLF"};
		if (secret)
			OPENSSL_cleanse(start, used);
		s->in_off += used;
		smtp_step(s, &ev);
		return true;
	}
	len = used - 2;
	if (s->state == SMTP_S_AUTH) {
		ev.kind = SMTP_EV_SASL_LINE;
		ev.line = (const char *)start;
		ev.line_len = len;
	} else if (smtp_parse_command((const char *)start, len, &cmd, &ev.err) < 0) {
		ev.kind = SMTP_EV_BAD_LINE;
	} else {
		ev.kind = SMTP_EV_COMMAND;
		ev.cmd = &cmd;
		secret = cmd.verb == SMTP_CMD_AUTH;
	}
	smtp_step(s, &ev);
	if (secret) /* credentials do not linger in the input buffer */
		OPENSSL_cleanse(start, used);
	s->in_off += used;
	return true;
}

static void process(struct smtp_session *s)
{
	while (s->in_off < s->in_len) {
		if (s->state == SMTP_S_CLOSING || s->state == SMTP_S_TLS_WAIT) {
			/* RFC 3207 4.2: input after STARTTLS is thrown away, never
			 * executed after the handshake */
			s->in_off = s->in_len;
			break;
		}
		if (s->out.len >= SMTP_OUT_HIGH_WATER)
			break; /* the client is not reading its replies: wait */
		if (s->state == SMTP_S_STORING || s->state == SMTP_S_AUTH_CHECK ||
		    s->state == SMTP_S_RCPT_CHECK)
			break; /* a job runs: the next command waits for its reply */
		if (s->state == SMTP_S_DATA) {
			data_input(s);
			continue;
		}
		if (!line_input(s))
			break;
	}
	if (s->in_off > 0) {
		memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
		s->in_len -= s->in_off;
		s->in_off = 0;
	}
}

/* ---------------------------------------------------------------- API */

struct smtp_session *smtp_session_new(const struct smtp_env *env, const struct smtp_conn_info *ci)
{
	struct smtp_session *s = sp_xcalloc(1, sizeof(*s));
	struct mapping_result r;
	struct smtp_event ev = {.kind = SMTP_EV_CONNECT};
	unsigned port;

	s->env = env;
	if (env->tables != NULL) {
		s->tables = dir_tables_ref(env->tables);
		s->users = s->tables->users;
		s->aliases = s->tables->aliases;
		s->maps = s->tables->maps;
	} else {
		s->users = env->users;
		s->aliases = env->aliases;
		s->maps = env->maps;
	}
	/* the directory: mailcore's (LDAP, or the users file of this snapshot),
	 * or, without one (unit tests, tools), the users file of these tables */
	s->dir = env->dir != NULL ? dir_ref(env->dir) : dir_users_new(s->tables, s->users, NULL, NULL);
	s->state = SMTP_S_NEW;
	s->listener = ci->listener;
	s->client = ci->client;
	s->local = ci->local;
	smtp_sockaddr_text(&s->client, s->client_ip, sizeof(s->client_ip), &port);
	if (smtp_probe_port_access(&s->local, &s->client, s->port_probe, sizeof(s->port_probe)) < 0)
		snprintf(s->port_probe, sizeof(s->port_probe), "TCP|||||");
	if (ci->tls != NULL) {
		s->tls = true;
		s->tls_info = *ci->tls;
		map_client_cert(s);
	}
	if (ci->listener == SMTP_LISTEN_SUBMISSION || ci->listener == SMTP_LISTEN_BACKEND) {
		/* RFC 6409 4.3 / RFC 8314: submission, AUTH before MAIL */
		s->base_channel = SMTP_CH_TCP_SUBMIT;
	} else {
		mappings_lookup(s->maps, "INTERNAL_IP", s->client_ip, &r);
		s->base_channel = r.verdict == MAPPING_ACCEPT ? SMTP_CH_TCP_INTRANET : SMTP_CH_TCP_LOCAL;
	}
	s->channel = s->base_channel;
	sp_log(SP_LOG_INFO, "smtp_connect", "client=%s channel=%s tls=%s", s->client_ip,
	       smtp_channel_name(s->channel), s->tls ? "yes" : "no");
	smtp_step(s, &ev);
	return s;
}

void smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	if (s->job != NULL) {
		if (s->job_running)
			s->job->s = NULL; /* job_done frees it */
		else
			job_free(s->job);
		s->job = NULL;
	}
	job_free(s->parked);
	transaction_reset(s);
	dir_tables_unref(&s->tables);
	dir_unref(&s->dir);
	free(s->rcpts);
	mbuf_free(&s->out);
	OPENSSL_cleanse(s->in, sizeof(s->in));
	OPENSSL_cleanse(s->login_user, sizeof(s->login_user));
	free(s);
	*sp = NULL;
}

size_t smtp_session_input_room(const struct smtp_session *s)
{
	if (s->state == SMTP_S_CLOSING || s->out.len >= SMTP_OUT_HIGH_WATER || s->job_running)
		return 0;
	return sizeof(s->in) - s->in_len;
}

size_t smtp_session_feed(struct smtp_session *s, const void *data, size_t len)
{
	size_t room = sizeof(s->in) - s->in_len;

	if (s->state == SMTP_S_CLOSING || s->state == SMTP_S_TLS_WAIT)
		return len; /* discarded: RFC 3207 4.2, or we are closing */
	if (len > room)
		len = room;
	memcpy(s->in + s->in_len, data, len);
	s->in_len += len;
	process(s);
	return len;
}

void smtp_session_process(struct smtp_session *s)
{
	process(s);
}

void smtp_session_eof(struct smtp_session *s)
{
	struct smtp_event ev = {.kind = SMTP_EV_EOF};

	if (s->state != SMTP_S_CLOSING)
		smtp_step(s, &ev);
}

const uint8_t *smtp_session_output(const struct smtp_session *s, size_t *len_r)
{
	*len_r = s->out.len;
	return s->out.data;
}

void smtp_session_output_consumed(struct smtp_session *s, size_t n)
{
	if (n >= s->out.len) {
		s->out.len = 0;
		return;
	}
	memmove(s->out.data, s->out.data + n, s->out.len - n);
	s->out.len -= n;
}

unsigned smtp_session_wants(const struct smtp_session *s)
{
	switch (s->state) {
	case SMTP_S_CLOSING:
		return SMTP_WANT_CLOSE;
	case SMTP_S_TLS_WAIT:
		return SMTP_WANT_STARTTLS;
	case SMTP_S_STORING:
	case SMTP_S_AUTH_CHECK:
	case SMTP_S_RCPT_CHECK:
		return 0; /* waiting for the pool; the resume callback comes back */
	default:
		return s->out.len >= SMTP_OUT_HIGH_WATER ? 0 : SMTP_WANT_READ;
	}
}

void smtp_session_tls_ready(struct smtp_session *s, const struct sp_proxy_info *facts)
{
	struct smtp_event ev = {.kind = SMTP_EV_TLS_READY, .tls = facts};

	s->in_off = s->in_len = 0;
	smtp_step(s, &ev);
}

long smtp_session_timeout_ms(const struct smtp_session *s)
{
	return s->state == SMTP_S_DATA ? s->env->data_timeout_ms : s->env->command_timeout_ms;
}

void smtp_session_timeout(struct smtp_session *s)
{
	struct smtp_event ev = {.kind = SMTP_EV_TIMEOUT};

	/* a job in flight is ours, not the client's delay: the timer is armed
	 * again when it finishes */
	if (s->state != SMTP_S_CLOSING && !s->job_running)
		smtp_step(s, &ev);
}

void smtp_session_set_resume(struct smtp_session *s, void (*resume)(void *arg), void *arg)
{
	s->resume = resume;
	s->resume_arg = arg;
}

void smtp_session_expect_client_name(struct smtp_session *s)
{
	s->name_pending = true;
}

void smtp_session_set_client_name(struct smtp_session *s, const char *name, bool verified)
{
	size_t len = name != NULL ? strlen(name) : 0;
	struct smtp_job *j = s->parked;
	void (*resume)(void *) = s->resume;
	void *resume_arg = s->resume_arg;

	/* SECURITY: from DNS; a header carries only a checked host name */
	s->client_name[0] = s->filter_name[0] = '\0';
	s->filter_name_verified = false;
	if (len > 0 && len < sizeof(s->client_name) && mc_valid_hostname(name, len)) {
		memcpy(s->filter_name, name, len + 1);
		s->filter_name_verified = verified;
		if (verified)
			memcpy(s->client_name, name, len + 1);
	}
	s->name_pending = false;
	if (j == NULL)
		return;
	/* an AUTH waited for this: answer it, run what was pipelined behind
	 * it, and let the server write (the callback may free the session) */
	s->parked = NULL;
	job_finish(s, j);
	process(s);
	if (resume != NULL)
		resume(resume_arg);
}

const char *smtp_session_state_name(const struct smtp_session *s)
{
	return state_names[s->state];
}

enum smtp_channel smtp_session_channel(const struct smtp_session *s)
{
	return s->channel;
}

const char *smtp_session_auth_user(const struct smtp_session *s)
{
	return s->authed ? s->auth_user : NULL;
}

unsigned smtp_session_messages(const struct smtp_session *s)
{
	return s->messages;
}
