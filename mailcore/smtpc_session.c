/* The queue's SMTP client on the event loop: connect (next address on
 * failure), greeting, EHLO (HELO if refused), STARTTLS as an OpenSSL client
 * per mailcore.queue.tls, MAIL/RCPT/DATA pipelined when the server offers
 * PIPELINING (RFC 2920), the message streamed from the spool file with
 * dot-stuffing (RFC 5321 4.5.2), QUIT. An explicit state machine: replies
 * go through smtpc_transition(), which cites the rule each step follows.
 * Ownership: finish() calls done and marks the session dead; the event
 * callback that led there frees it on its way out. */
#include "mailcore/smtpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/xalloc.h"

#define OUT_LOW_WATER (32 * 1024)  /* refill the body below this */
#define BODY_CHUNK (16 * 1024)
#define READ_CHUNK 8192

enum smtpc_state {
	SC_CONNECTING,    /* non-blocking connect in progress */
	SC_GREETING,      /* RFC 5321 3.1: waiting for 220 */
	SC_EHLO,          /* RFC 5321 4.1.1.1 */
	SC_HELO,          /* EHLO refused: HELO (RFC 5321 3.2) */
	SC_STARTTLS,      /* RFC 3207 4: waiting for 220 */
	SC_HANDSHAKE,     /* TLS handshake as a client */
	SC_MAIL,          /* reply to MAIL (RFC 5321 4.1.1.2) */
	SC_RCPT,          /* reply to RCPT number rcpt_reply */
	SC_DATA,          /* reply to DATA: 354 expected (RFC 5321 4.1.1.4) */
	SC_BODY,          /* sending the text */
	SC_DOT,           /* reply to the final "." */
	SC_QUIT,          /* QUIT sent (RFC 5321 4.1.1.10) */
};

static const char *const state_names[] = {
	"connecting", "greeting", "ehlo", "helo", "starttls", "handshake",
	"mail", "rcpt", "data", "body", "dot", "quit",
};

struct smtpc_session {
	struct event_base *base;
	struct smtpc_config cfg;
	struct smtpc_addr *addrs;
	size_t n_addrs, addr_idx;
	struct smtpc_txn txn;
	smtpc_done_fn *done;
	void *arg;

	enum smtpc_state state;
	int fd;
	SSL *ssl;
	bool tls, tls_tried;
	struct event *ev_read, *ev_write, *ev_timer;
	bool want_write_for_read; /* TLS: SSL_read asked for a write event */
	bool finishing;           /* no address left: finish from the timer */
	bool dead;                /* done() was called: free on the way out */
	char host_text[320];      /* "host[ip]" */

	struct smtpc_reply_parser parser;
	unsigned ext;
	uint64_t peer_size;
	bool pipelining;

	char *out;
	size_t out_len, out_cap;

	size_t rcpt_sent, rcpt_reply; /* RCPTs sent / answered */
	size_t n_accepted;
	bool *accepted;
	struct smtpc_rcpt_result *results;
	bool mail_started;            /* MAIL sent: no next address any more */
	bool empty_data;              /* 354 with no recipient accepted */

	uint64_t body_pos;
	bool bol;                     /* at the beginning of a line of the text */
	char last_error[400];
};

static void pump(struct smtpc_session *s);
static void start_connect(struct smtpc_session *s);

/* ---------------------------------------------------------------- output */

static void out_add(struct smtpc_session *s, const void *p, size_t n)
{
	if (s->out_len + n > s->out_cap) {
		size_t cap = s->out_cap == 0 ? 4096 : s->out_cap;

		while (cap < s->out_len + n)
			cap *= 2;
		s->out = sp_xrealloc(s->out, cap, 1);
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

static void cmd(struct smtpc_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cmd(struct smtpc_session *s, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n + 2 > sizeof(line))
		n = (int)sizeof(line) - 3;
	memcpy(line + n, "\r\n", 2);
	out_add(s, line, (size_t)n + 2);
}

static void arm_timer(struct smtpc_session *s, long ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	evtimer_add(s->ev_timer, &tv);
}

/* ---------------------------------------------------------------- ending */

static void set_result(struct smtpc_rcpt_result *r, int code, const char *status,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_result(struct smtpc_rcpt_result *r, int code, const char *status,
		       const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status != NULL ? status : "");
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* The reply, for a recipient's result: "host[ip] said: 550 5.1.1 text" */
static void set_from_reply(struct smtpc_session *s, struct smtpc_rcpt_result *r,
			   const struct smtpc_reply *rep, const char *after)
{
	char first[300];
	const char *nl = strchr(rep->text, '\n');
	size_t n = nl != NULL ? (size_t)(nl - rep->text) : strlen(rep->text);

	snprintf(first, sizeof(first), "%.*s", (int)n, rep->text);
	set_result(r, rep->code, rep->status[0] != '\0' ? rep->status : NULL,
		   "%s said: %d %s (in reply to %s)", s->host_text, rep->code, first, after);
	if (r->status[0] == '\0')
		snprintf(r->status, sizeof(r->status), "%d.0.0", rep->code / 100);
}

static void close_conn(struct smtpc_session *s)
{
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->ev_read != NULL)
		event_free(s->ev_read);
	if (s->ev_write != NULL)
		event_free(s->ev_write);
	s->ev_read = s->ev_write = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->tls = false;
	s->out_len = 0;
	smtpc_reply_init(&s->parser);
}

static void session_free(struct smtpc_session *s)
{
	close_conn(s);
	if (s->ev_timer != NULL)
		event_free(s->ev_timer);
	free(s->out);
	free(s->accepted);
	free(s->results);
	free(s->addrs);
	free(s);
}

/* Every recipient without a result gets code/status/why; done is called
 * and the session freed. */
static void finish(struct smtpc_session *s, int code, const char *status, const char *why)
{
	for (size_t i = 0; i < s->txn.n_rcpts; i++)
		if (s->results[i].code == 0)
			set_result(&s->results[i], code, status, "%s", why);
	sp_log(SP_LOG_DEBUG, "smtpc_done", "host=\"%s\" state=%s why=\"%s\"", s->host_text,
	       state_names[s->state], why);
	s->done(s->arg, s->results, s->txn.n_rcpts, s->host_text);
	s->dead = true; /* freed by the event callback that got us here */
	close_conn(s);
	evtimer_del(s->ev_timer);
}

/* Before MAIL: a failure of this host means the next address is tried. */
static void next_address(struct smtpc_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void next_address(struct smtpc_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
	va_end(ap);
	sp_log(SP_LOG_INFO, "smtpc_host_failed", "host=\"%s\" why=\"%s\"", s->host_text,
	       s->last_error);
	close_conn(s);
	if (s->mail_started || ++s->addr_idx >= s->n_addrs) {
		finish(s, 451, "4.4.1", s->last_error);
		return;
	}
	start_connect(s);
}

/* After MAIL: the connection broke or timed out; QUIT is not possible. */
static void lost(struct smtpc_session *s, const char *what)
{
	char why[400];

	if (!s->mail_started) {
		next_address(s, "%s: %s in state %s", s->host_text, what, state_names[s->state]);
		return;
	}
	snprintf(why, sizeof(why), "%s while talking to %s (state %s)", what, s->host_text,
		 state_names[s->state]);
	finish(s, 451, "4.4.2", why);
}

/* ---------------------------------------------------------------- TLS */

static void log_ssl_errors(const char *event, const struct smtpc_session *s)
{
	unsigned long e;
	char buf[256];

	/* nginx's habit: the queue is emptied at each boundary */
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		sp_log(SP_LOG_INFO, event, "host=\"%s\" ssl=\"%s\"", s->host_text, buf);
	}
}

static int tls_start(struct smtpc_session *s)
{
	const char *host = s->addrs[s->addr_idx].host;

	ERR_clear_error();
	s->ssl = SSL_new(s->cfg.ssl_ctx);
	if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
		return -1;
	/* SNI and the name check only for names, not for literal addresses */
	{
		struct in6_addr a6;
		bool literal = inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1;

		if (!literal && SSL_set_tlsext_host_name(s->ssl, host) != 1)
			return -1;
		if (s->cfg.tls_verify) {
			SSL_set_verify(s->ssl, SSL_VERIFY_PEER, NULL);
			if (literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), host) != 1
				    : SSL_set1_host(s->ssl, host) != 1)
				return -1;
		} else {
			SSL_set_verify(s->ssl, SSL_VERIFY_NONE, NULL);
		}
	}
	SSL_set_connect_state(s->ssl);
	s->tls_tried = true;
	return 0;
}

/* ---------------------------------------------------------------- commands */

static void send_mail_and_rcpts(struct smtpc_session *s)
{
	char size_param[40] = "";

	if (s->ext & SMTPC_EXT_SIZE)
		snprintf(size_param, sizeof(size_param), " SIZE=%llu",
			 (unsigned long long)s->txn.body_size);
	s->mail_started = true;
	cmd(s, "MAIL FROM:<%s>%s", s->txn.sender, size_param);
	if (s->pipelining) {
		/* RFC 2920 3.1: MAIL, every RCPT and DATA in one group; DATA last */
		for (s->rcpt_sent = 0; s->rcpt_sent < s->txn.n_rcpts; s->rcpt_sent++)
			cmd(s, "RCPT TO:<%s>", s->txn.rcpts[s->rcpt_sent]);
		cmd(s, "DATA");
	}
}

/* After EHLO/HELO (and after TLS): STARTTLS if wanted and offered, else mail */
static enum smtpc_state after_hello(struct smtpc_session *s)
{
	bool offered = (s->ext & SMTPC_EXT_STARTTLS) != 0;

	if (!s->tls && s->cfg.tls != SMTPC_TLS_NONE && s->cfg.ssl_ctx != NULL && offered) {
		cmd(s, "STARTTLS");
		return SC_STARTTLS;
	}
	if (!s->tls && s->cfg.tls == SMTPC_TLS_MUST) {
		/* musttls: no plaintext; another MX may do better */
		next_address(s, "TLS is required, but was not offered by host %s", s->host_text);
		return (enum smtpc_state)-1;
	}
	if ((s->ext & SMTPC_EXT_SIZE) && s->peer_size > 0 && s->txn.body_size > s->peer_size) {
		char why[700];

		snprintf(why, sizeof(why), "message size %llu exceeds the limit %llu of %s",
			 (unsigned long long)s->txn.body_size, (unsigned long long)s->peer_size,
			 s->host_text);
		/* RFC 1870 6: permanent for this message */
		finish(s, 552, "5.3.4", why);
		return (enum smtpc_state)-1;
	}
	s->pipelining = (s->ext & SMTPC_EXT_PIPELINING) != 0;
	send_mail_and_rcpts(s);
	return SC_MAIL;
}

/* Queues the next part of the text, dot-stuffed; at the end, the dot. */
static int fill_body(struct smtpc_session *s)
{
	char in[BODY_CHUNK];
	char outb[BODY_CHUNK * 2 + 8];

	while (s->out_len < OUT_LOW_WATER && s->state == SC_BODY) {
		uint64_t left = s->txn.body_size - s->body_pos;
		size_t want = left < sizeof(in) ? (size_t)left : sizeof(in), o = 0;
		ssize_t n;

		if (want == 0) {
			/* RFC 5321 4.1.1.4: the text ends in CRLF, then ".", CRLF */
			if (!s->bol)
				out_add(s, "\r\n", 2);
			out_add(s, ".\r\n", 3);
			s->state = SC_DOT;
			arm_timer(s, s->cfg.data_timeout_ms);
			break;
		}
		n = pread(s->txn.msg_fd, in, want, (off_t)(s->txn.body_offset + s->body_pos));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1; /* the spool file shrank or broke: nothing half-sent counts */
		for (ssize_t i = 0; i < n; i++) {
			/* RFC 5321 4.5.2: a line starting with "." gets one more */
			if (s->bol && in[i] == '.')
				outb[o++] = '.';
			outb[o++] = in[i];
			s->bol = in[i] == '\n';
		}
		out_add(s, outb, o);
		s->body_pos += (uint64_t)n;
	}
	return 0;
}

/* ---------------------------------------------------------------- the machine */

/* One complete reply from the server moves the session on. */
static void smtpc_transition(struct smtpc_session *s, const struct smtpc_reply *r)
{
	enum smtpc_state next = s->state;
	int cls = r->code / 100;

	switch (s->state) {
	case SC_CONNECTING:
	case SC_HANDSHAKE:
	case SC_BODY:
		lost(s, "unexpected reply");
		return;
	case SC_GREETING:
		/* RFC 5321 4.3.2: 220 or 554; anything else is no SMTP service */
		if (r->code != 220) {
			next_address(s, "%s greeted with %d %.200s", s->host_text, r->code, r->text);
			return;
		}
		cmd(s, "EHLO %s", s->cfg.helo_name);
		next = SC_EHLO;
		break;
	case SC_EHLO:
		if (cls == 5 && !s->tls) {
			/* RFC 5321 3.2: an old server; HELO and no extensions */
			cmd(s, "HELO %s", s->cfg.helo_name);
			next = SC_HELO;
			break;
		}
		if (r->code != 250) {
			next_address(s, "%s refused EHLO: %d %.200s", s->host_text, r->code, r->text);
			return;
		}
		s->ext = smtpc_ehlo_extensions(r, &s->peer_size);
		next = after_hello(s);
		break;
	case SC_HELO:
		if (r->code != 250) {
			next_address(s, "%s refused HELO: %d %.200s", s->host_text, r->code, r->text);
			return;
		}
		s->ext = 0;
		next = after_hello(s);
		break;
	case SC_STARTTLS:
		if (r->code != 220) {
			if (s->cfg.tls == SMTPC_TLS_MUST) {
				next_address(s, "%s refused STARTTLS: %d %.200s", s->host_text, r->code,
					     r->text);
				return;
			}
			/* maytls: go on in plaintext (RFC 3207 4.1 allows the refusal) */
			s->ext &= ~(unsigned)SMTPC_EXT_STARTTLS;
			s->cfg.tls = SMTPC_TLS_NONE;
			next = after_hello(s);
			break;
		}
		/* RFC 3207 4.2: nothing may be pipelined after STARTTLS */
		if (s->parser.line_len != 0 || tls_start(s) < 0) {
			log_ssl_errors("smtpc_tls_failed", s);
			next_address(s, "%s: cannot start TLS", s->host_text);
			return;
		}
		next = SC_HANDSHAKE;
		break;
	case SC_MAIL:
		if (cls != 2) {
			/* RFC 5321 4.1.1.2: the sender refused: so is every recipient */
			for (size_t i = 0; i < s->txn.n_rcpts; i++)
				set_from_reply(s, &s->results[i], r, "MAIL FROM");
			if (!s->pipelining) {
				cmd(s, "QUIT");
				next = SC_QUIT;
				break;
			}
			/* pipelined: the RCPT and DATA replies still come */
		}
		if (!s->pipelining)
			cmd(s, "RCPT TO:<%s>", s->txn.rcpts[s->rcpt_sent++]);
		s->rcpt_reply = 0;
		next = SC_RCPT;
		break;
	case SC_RCPT: {
		size_t i = s->rcpt_reply++;

		if (cls == 2 && s->results[i].code == 0) {
			s->accepted[i] = true;
			s->n_accepted++;
		} else if (s->results[i].code == 0) {
			set_from_reply(s, &s->results[i], r, "RCPT TO");
		}
		if (s->rcpt_reply < s->txn.n_rcpts) {
			if (!s->pipelining)
				cmd(s, "RCPT TO:<%s>", s->txn.rcpts[s->rcpt_sent++]);
			break;
		}
		if (!s->pipelining) {
			if (s->n_accepted == 0) {
				cmd(s, "QUIT");
				next = SC_QUIT;
				break;
			}
			cmd(s, "DATA");
		}
		next = SC_DATA;
		break;
	}
	case SC_DATA:
		if (r->code == 354 && s->n_accepted == 0) {
			/* RFC 2920 3.1: DATA accepted with no recipient: end it empty */
			s->empty_data = true;
			out_add(s, ".\r\n", 3);
			next = SC_DOT;
			break;
		}
		if (r->code != 354) {
			for (size_t i = 0; i < s->txn.n_rcpts; i++)
				if (s->accepted[i])
					set_from_reply(s, &s->results[i], r, "DATA");
			cmd(s, "QUIT");
			next = SC_QUIT;
			break;
		}
		s->state = SC_BODY;
		s->bol = true;
		s->body_pos = 0;
		arm_timer(s, s->cfg.command_timeout_ms);
		if (fill_body(s) < 0) {
			finish(s, 451, "4.3.0", "cannot read the spool file");
			return;
		}
		return; /* fill_body moved the state */
	case SC_DOT:
		/* RFC 5321 4.1.1.4: the reply to "." is the outcome for every
		 * recipient RCPT accepted */
		if (!s->empty_data)
			for (size_t i = 0; i < s->txn.n_rcpts; i++)
				if (s->accepted[i])
					set_from_reply(s, &s->results[i], r, "end of DATA");
		cmd(s, "QUIT");
		next = SC_QUIT;
		break;
	case SC_QUIT:
		finish(s, 451, "4.4.2", "no result");
		return;
	}
	if (next == (enum smtpc_state)-1)
		return; /* the session moved to another address or ended */
	s->state = next;
	arm_timer(s, s->state == SC_DOT ? s->cfg.data_timeout_ms : s->cfg.command_timeout_ms);
}

/* ---------------------------------------------------------------- I/O */

/* >0 bytes, 0 eof, -1 error, -2 would block */
static ssize_t io_read(struct smtpc_session *s, void *buf, size_t cap)
{
	if (s->tls) {
		int n, err;

		ERR_clear_error();
		n = SSL_read(s->ssl, buf, (int)cap);
		if (n > 0)
			return n;
		err = SSL_get_error(s->ssl, n);
		if (err == SSL_ERROR_WANT_READ)
			return -2;
		if (err == SSL_ERROR_WANT_WRITE) {
			s->want_write_for_read = true;
			return -2;
		}
		if (err == SSL_ERROR_ZERO_RETURN)
			return 0;
		log_ssl_errors("smtpc_tls_read", s);
		return -1;
	}
	for (;;) {
		ssize_t n = read(s->fd, buf, cap);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
	}
}

static ssize_t io_write(struct smtpc_session *s, const void *buf, size_t len)
{
	if (s->tls) {
		int n, err;

		ERR_clear_error();
		n = SSL_write(s->ssl, buf, (int)(len > 65536 ? 65536 : len));
		if (n > 0)
			return n;
		err = SSL_get_error(s->ssl, n);
		if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ)
			return -2;
		log_ssl_errors("smtpc_tls_write", s);
		return -1;
	}
	for (;;) {
		ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
	}
}

static void handshake_step(struct smtpc_session *s)
{
	int rc, err;

	ERR_clear_error();
	rc = SSL_do_handshake(s->ssl);
	if (rc == 1) {
		long v = SSL_get_verify_result(s->ssl);

		if (s->cfg.tls_verify && v != X509_V_OK) {
			next_address(s, "%s: certificate verification failed: %s", s->host_text,
				     X509_verify_cert_error_string(v));
			return;
		}
		s->tls = true;
		sp_log(SP_LOG_INFO, "smtpc_tls", "host=\"%s\" version=%s cipher=%s verified=%s",
		       s->host_text, SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl),
		       s->cfg.tls_verify ? "yes" : "no");
		/* RFC 3207 4.2: forget what the server said; EHLO again */
		s->ext = 0;
		cmd(s, "EHLO %s", s->cfg.helo_name);
		s->state = SC_EHLO;
		arm_timer(s, s->cfg.command_timeout_ms);
		return;
	}
	err = SSL_get_error(s->ssl, rc);
	if (err == SSL_ERROR_WANT_READ) {
		event_add(s->ev_read, NULL);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		event_add(s->ev_write, NULL);
		return;
	}
	{
		long v = SSL_get_verify_result(s->ssl);

		log_ssl_errors("smtpc_tls_failed", s);
		next_address(s, "%s: TLS handshake failed%s%s", s->host_text,
			     v != X509_V_OK ? ": " : "", v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
	}
}

/* Writes what is queued, reads and handles what came, arms the events.
 * Every path either ends the session (s->dead; the entry point frees it),
 * moves to the next address (its connect armed the events), or leaves the
 * read event (and the write event when output waits) armed. */
static void pump(struct smtpc_session *s)
{
	for (int round = 0; round < 64 && !s->dead; round++) {
		bool progress = false;

		if (s->state == SC_CONNECTING)
			return;
		if (s->state == SC_HANDSHAKE) {
			handshake_step(s);
			if (s->dead || s->state != SC_EHLO)
				return; /* waiting for the peer, moved on, or ended */
		}
		while (s->out_len > 0) {
			ssize_t n = io_write(s, s->out, s->out_len);

			if (n == -2)
				break;
			if (n < 0) {
				lost(s, "write error");
				return;
			}
			memmove(s->out, s->out + n, s->out_len - (size_t)n);
			s->out_len -= (size_t)n;
			progress = true;
		}
		if (s->state == SC_BODY && s->out_len < OUT_LOW_WATER) {
			if (fill_body(s) < 0) {
				finish(s, 451, "4.3.0", "cannot read the spool file");
				return;
			}
			if (s->out_len > 0)
				progress = true;
		}
		for (;;) {
			uint8_t buf[READ_CHUNK];
			ssize_t n = io_read(s, buf, sizeof(buf));
			size_t off = 0;

			if (n == -2)
				break;
			if (n <= 0) {
				if (s->state == SC_QUIT)
					finish(s, 451, "4.4.2", "connection closed after QUIT");
				else
					lost(s, n == 0 ? "lost connection" : "read error");
				return;
			}
			progress = true;
			while (off < (size_t)n) {
				struct smtpc_reply rep;
				bool complete;
				const char *why = NULL;
				ssize_t used = smtpc_reply_feed(&s->parser, buf + off, (size_t)n - off, &rep,
								&complete, &why);

				if (used < 0) {
					char w[200];

					snprintf(w, sizeof(w), "bad reply (%s)", why);
					lost(s, w);
					return;
				}
				off += (size_t)used;
				if (!complete)
					continue;
				if (s->state == SC_BODY) {
					lost(s, "reply while sending the text");
					return;
				}
				if (s->state == SC_QUIT) {
					finish(s, 451, "4.4.2", "no result");
					return;
				}
				smtpc_transition(s, &rep);
				if (s->dead || s->state == SC_CONNECTING)
					return;
				if (s->state == SC_HANDSHAKE) {
					/* RFC 3207 4.2: what followed the 220 is not trusted */
					off = (size_t)n;
					break;
				}
			}
			if (s->state == SC_HANDSHAKE)
				break;
		}
		if (!progress && s->state != SC_HANDSHAKE)
			break;
	}
	if (s->dead || s->state == SC_CONNECTING)
		return;
	if (s->out_len > 0 || s->want_write_for_read)
		event_add(s->ev_write, NULL);
	s->want_write_for_read = false;
	event_add(s->ev_read, NULL);
}

/* ---------------------------------------------------------------- events */

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc_session *s = arg;

	(void)fd;
	(void)what;
	pump(s);
	if (s->dead)
		session_free(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc_session *s = arg;

	(void)fd;
	(void)what;
	if (s->finishing) {
		finish(s, 451, "4.4.1", s->last_error);
	} else if (s->state == SC_CONNECTING) {
		next_address(s, "connect to %s: timed out", s->host_text);
	} else {
		lost(s, "timeout");
	}
	if (s->dead)
		session_free(s);
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc_session *s = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		next_address(s, "connect to %s: %s", s->host_text, strerror(err));
	} else {
		/* the write event was the connect's; from now on both are I/O */
		event_free(s->ev_write);
		s->ev_write = event_new(s->base, s->fd, EV_WRITE, on_io, s);
		s->state = SC_GREETING;
		arm_timer(s, s->cfg.command_timeout_ms);
		pump(s);
	}
	if (s->dead)
		session_free(s);
}

static void host_text(struct smtpc_session *s)
{
	const struct smtpc_addr *a = &s->addrs[s->addr_idx];
	char ip[64] = "?";

	if (a->sa.ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, ip, sizeof(ip));
	else if (a->sa.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, ip, sizeof(ip));
	snprintf(s->host_text, sizeof(s->host_text), "%s[%s]", a->host, ip);
}

/* Connects to addrs[addr_idx], skipping those that fail at once. When none
 * is left, the end is deferred to the timer (never done() from inside a
 * caller's call). */
static void start_connect(struct smtpc_session *s)
{
	for (; s->addr_idx < s->n_addrs; s->addr_idx++) {
		const struct smtpc_addr *a = &s->addrs[s->addr_idx];
		int fd;

		host_text(s);
		s->state = SC_CONNECTING;
		fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(s->last_error, sizeof(s->last_error), "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, (const struct sockaddr *)&a->sa, a->sa_len) < 0 && errno != EINPROGRESS) {
			snprintf(s->last_error, sizeof(s->last_error), "connect to %s: %s", s->host_text,
				 strerror(errno));
			close(fd);
			continue;
		}
		s->fd = fd;
		s->ev_read = event_new(s->base, fd, EV_READ, on_io, s);
		s->ev_write = event_new(s->base, fd, EV_WRITE, on_connected, s);
		if (s->ev_read == NULL || s->ev_write == NULL) {
			snprintf(s->last_error, sizeof(s->last_error), "out of events");
			close_conn(s);
			continue;
		}
		event_add(s->ev_write, NULL);
		arm_timer(s, s->cfg.connect_timeout_ms);
		return;
	}
	s->finishing = true;
	arm_timer(s, 0);
}

/* ---------------------------------------------------------------- API */

struct smtpc_session *smtpc_start(struct event_base *base, const struct smtpc_config *cfg,
				  const struct smtpc_addr *addrs, size_t n_addrs,
				  const struct smtpc_txn *txn, smtpc_done_fn *done, void *arg)
{
	struct smtpc_session *s = sp_xcalloc(1, sizeof(*s));

	s->base = base;
	s->cfg = *cfg;
	s->addrs = sp_xcalloc(n_addrs == 0 ? 1 : n_addrs, sizeof(*addrs));
	memcpy(s->addrs, addrs, n_addrs * sizeof(*addrs));
	s->n_addrs = n_addrs;
	s->txn = *txn;
	s->done = done;
	s->arg = arg;
	s->fd = -1;
	s->accepted = sp_xcalloc(txn->n_rcpts, sizeof(*s->accepted));
	s->results = sp_xcalloc(txn->n_rcpts, sizeof(*s->results));
	snprintf(s->last_error, sizeof(s->last_error), "no address to connect to");
	smtpc_reply_init(&s->parser);
	s->ev_timer = evtimer_new(base, on_timer, s);
	if (s->ev_timer == NULL) {
		session_free(s);
		return NULL;
	}
	start_connect(s);
	return s;
}

void smtpc_abort(struct smtpc_session **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	session_free(*sp);
	*sp = NULL;
}
