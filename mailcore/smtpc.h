/* Private to mailcore: the outbound SMTP client the queue manager drives.
 * smtpc_reply.c is the pure reply parser (bytes in, replies out; fuzzed);
 * smtpc_session.c is the non-blocking client on the libevent loop (EHLO,
 * STARTTLS as an OpenSSL client, PIPELINING, MAIL/RCPT/DATA, QUIT). */
#ifndef MAILCORE_SMTPC_H
#define MAILCORE_SMTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets incl. CRLF. Real
 * servers exceed that a little; we take up to 1000 and refuse more. */
#define SMTPC_LINE_MAX 1000
#define SMTPC_REPLY_LINES_MAX 64
#define SMTPC_TEXT_MAX 2048 /* text kept from one reply (the rest is dropped) */

struct smtpc_reply {
	int code;                   /* 200..599 */
	char status[16];            /* RFC 2034 enhanced code from the first line, or "" */
	char text[SMTPC_TEXT_MAX];  /* lines after "NNN-"/"NNN ", joined with '\n'; printable ASCII */
	unsigned n_lines;
};

struct smtpc_reply_parser {
	char line[SMTPC_LINE_MAX + 1];
	size_t line_len;
	int code;                   /* code of the reply being read; 0 = none yet */
	struct smtpc_reply cur;
};

void smtpc_reply_init(struct smtpc_reply_parser *p);
/* Feeds in[0..len). Returns the bytes consumed; when a whole reply was read
 * it stops right after it, sets *complete and fills *out. Returns -1 (and
 * *error_r, a static string) when the peer does not speak SMTP replies: a
 * bad code, a line too long, too many lines, codes differing in one reply.
 * RFC 5321 4.2: "NNN-text" continues, "NNN text" or "NNN" ends. Lines end in
 * CRLF; a bare LF is taken as an end of line too (be liberal in what a
 * server sends; nothing of it is ever relayed as a line ending). */
ssize_t smtpc_reply_feed(struct smtpc_reply_parser *p, const uint8_t *in, size_t len,
			 struct smtpc_reply *out, bool *complete, const char **error_r);

/* EHLO keywords we use (RFC 1869 4.3), from the lines after the first. */
#define SMTPC_EXT_PIPELINING 0x1
#define SMTPC_EXT_STARTTLS 0x2
#define SMTPC_EXT_SIZE 0x4
#define SMTPC_EXT_8BITMIME 0x8
#define SMTPC_EXT_ENHANCEDSTATUSCODES 0x10
unsigned smtpc_ehlo_extensions(const struct smtpc_reply *r, uint64_t *size_r);

/* ---------------------------------------------------------------- client */

struct event_base;
struct ssl_ctx_st;

enum smtpc_tls { SMTPC_TLS_NONE, SMTPC_TLS_MAY, SMTPC_TLS_MUST };

struct smtpc_config {
	const char *helo_name;
	enum smtpc_tls tls;
	bool tls_verify;             /* chain against the CA file and the host name */
	struct ssl_ctx_st *ssl_ctx;  /* client context (no key); NULL = TLS off */
	long connect_timeout_ms;
	long command_timeout_ms;     /* RFC 5321 4.5.3.2: 5 minutes for MAIL, RCPT */
	long data_timeout_ms;        /* RFC 5321 4.5.3.2.6: 10 minutes after "." */
};

/* One address to try, with the host name it came from (for SNI and the
 * certificate check). */
struct smtpc_addr {
	struct sockaddr_storage sa;
	socklen_t sa_len;
	char host[256];
};

/* The outcome for one recipient: the server's reply to RCPT (or DATA's "."
 * for those it accepted), or our own 4xx/5xx text when the session failed
 * before it got there. */
struct smtpc_rcpt_result {
	int code;
	char status[16];
	char text[512];              /* "host said: 550 5.1.1 ..." or our reason */
};

struct smtpc_txn {
	const char *sender;          /* "" = null reverse-path */
	const char *const *rcpts;
	size_t n_rcpts;
	int msg_fd;                  /* the spool file; the client only preads it */
	uint64_t body_offset;        /* the message starts here (after the envelope) */
	uint64_t body_size;
};

struct smtpc_session;
/* Called once when the session ends (results[i] for txn->rcpts[i]; array
 * owned by the session, valid during the call). The session is freed right
 * after the callback returns. */
typedef void smtpc_done_fn(void *arg, const struct smtpc_rcpt_result *results, size_t n,
			   const char *remote_host);

/* Starts the dialogue with the first address that answers. Never calls done
 * from inside smtpc_start. Returns NULL only when out of descriptors or
 * events (the caller defers). */
struct smtpc_session *smtpc_start(struct event_base *base, const struct smtpc_config *cfg,
				  const struct smtpc_addr *addrs, size_t n_addrs,
				  const struct smtpc_txn *txn, smtpc_done_fn *done, void *arg);
/* Aborts a running session without calling done (shutdown). */
void smtpc_abort(struct smtpc_session **s);

#endif
