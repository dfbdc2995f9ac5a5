/* Private to mailcore: the outbound queue. The SMTP side writes relayed and
 * forwarded mail into the spool (mailcore.queue, a Maildir; the envelope
 * format is in mailcore.h); the queue manager (queue_manager.c) runs in the
 * mailcore daemon's event loop, delivers with the SMTP client (smtpc.h),
 * retries with backoff and bounces with an RFC 3464 DSN (queue_dsn.c).
 *
 * Spool layout, inside the queue Maildir:
 *   new/<name>     the message: envelope lines, blank line, message
 *   state/<name>   its delivery state (queue_state.c), replaced atomically
 *                  (tmp file, fsync, rename, fsync dir); absent = never tried
 *   queue.pid      the daemon's pid, for spqueue flush (SIGUSR1)
 * A message leaves new/ only once every recipient got 250 from the next hop
 * or was bounced (the DSN made durable first). A crash re-sends at most the
 * transactions whose results were not yet recorded (at-least-once). */
#ifndef MAILCORE_QUEUE_H
#define MAILCORE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define QUEUE_ENVELOPE_MAX (512u * 1024)  /* envelope lines of one spool file */
#define QUEUE_RCPTS_MAX 1000              /* recipients in one spool file */
#define QUEUE_ERROR_MAX 512

/* ---------------------------------------------------------------- envelope */

struct queue_envelope {
	char *sender;           /* "" = null reverse-path */
	char **rcpts;
	char **mailhosts;       /* parallel to rcpts: the recipient's mailHost when it
				 * is homed on another store host (routed there, not
				 * by MX or smarthost); NULL = the usual next hop */
	size_t n_rcpts;
	uint64_t body_offset;   /* first byte of the message after the blank line */
};

/* Parses the envelope at the start of buf[0..len) (pure). A recipient
 * line may name the recipient's mailHost: "X-Sealpost-To: <a@b> mailhost=H"
 * (H: 1..255 of [A-Za-z0-9.-_], stored lower case). Returns 0, 1 when
 * more bytes are needed (no blank line yet), -1 with *error_r (static) when
 * it is not a spool file. Caller frees with queue_envelope_clear. */
int queue_envelope_parse(const char *buf, size_t len, struct queue_envelope *env,
			 const char **error_r);
void queue_envelope_clear(struct queue_envelope *env);
/* Reads and parses the envelope of a spool file (bounded by
 * QUEUE_ENVELOPE_MAX). 0 or -1 with *error_r (caller frees). */
int queue_envelope_read(int fd, struct queue_envelope *env, char **error_r);

/* ---------------------------------------------------------------- state */

enum queue_rcpt_status {
	QUEUE_RCPT_PENDING = 'P', /* not delivered yet (never tried or deferred) */
	QUEUE_RCPT_DONE = 'D',    /* the next hop said 250 */
	QUEUE_RCPT_FAILED = 'F',  /* permanent failure or too old; DSN not yet made durable */
	QUEUE_RCPT_BOUNCED = 'B', /* failed and its DSN is durable (or the sender is <>) */
};

struct queue_rcpt_state {
	enum queue_rcpt_status status;
	int code;                 /* last reply code (0 = none) */
	char error[QUEUE_ERROR_MAX];
};

struct queue_state {
	time_t first_seen;
	time_t next_attempt;
	unsigned attempts;
	char last_error[QUEUE_ERROR_MAX];
	struct queue_rcpt_state *rcpts; /* n entries, parallel to the envelope */
	size_t n_rcpts;
};

/* Text form, one record per line (pure):
 *   sealpost-queue-state 1
 *   first <unix> / next <unix> / attempts <n> / error <text>
 *   rcpt <index> <P|D|F|B> <code> <text>
 * Parse returns 0 or -1 with *error_r (static); rcpts is sized n_rcpts. */
int queue_state_parse(const char *buf, size_t len, size_t n_rcpts, struct queue_state *st,
		      const char **error_r);
char *queue_state_format(const struct queue_state *st, size_t *len_r); /* caller frees */
void queue_state_clear(struct queue_state *st);
/* state/<name>: read (ENOENT -> 1), write atomically and durably. */
int queue_state_load(const char *queue_dir, const char *name, size_t n_rcpts,
		     struct queue_state *st, char **error_r);
int queue_state_save(const char *queue_dir, const char *name, const struct queue_state *st,
		     char **error_r);
/* Removes new/<name> then state/<name>, each made durable (fsync dir). */
int queue_spool_remove(const char *queue_dir, const char *name, char **error_r);

/* Backoff (pure): retry_min * 2^(attempts-1), capped at retry_max. */
long queue_backoff_ms(unsigned attempts, long retry_min_ms, long retry_max_ms);

/* ---------------------------------------------------------------- DSN */

struct queue_dsn_rcpt {
	const char *addr;
	const char *status;      /* "5.1.1" */
	const char *diagnostic;  /* the remote reply, "" if none */
	const char *remote_mta;  /* host that said it, "" if none */
};

struct queue_dsn {
	const char *reporting_mta;    /* our host name */
	const char *sender;           /* the DSN's recipient: the original sender */
	const char *envelope_id;      /* the spool name, for Original-Envelope-Id-like tracing */
	time_t arrival;
	time_t now;
	const struct queue_dsn_rcpt *rcpts;
	size_t n_rcpts;
	const char *orig_headers;     /* the original message's header block */
	size_t orig_headers_len;
	const char *boundary;         /* NULL = made from envelope_id */
};

/* RFC 3464 delivery status notification in an RFC 6522 multipart/report
 * (pure): human-readable part, message/delivery-status (Reporting-MTA,
 * Arrival-Date; per recipient Final-Recipient, Action: failed, Status,
 * Remote-MTA, Diagnostic-Code), text/rfc822-headers. Lines end in CRLF.
 * Returns the message (caller frees) and its length. */
char *queue_dsn_build(const struct queue_dsn *dsn, size_t *len_r);

/* ---------------------------------------------------------------- MX */

struct smtpc_addr;
/* Pure: parses a DNS answer to an MX query into host names sorted by
 * preference (RFC 5321 5.1). Returns the count (0: no MX records), -2 for
 * a null MX (RFC 7505), -1 if malformed. */
int queue_mx_parse(const unsigned char *answer, size_t len, char hosts[][256], size_t max);
/* Blocking (runs on a pool thread): the addresses to try for domain (MX,
 * else its A/AAAA records), or for host:port when a smarthost is set.
 * Returns the count; 0 with *perm set and *error_r when none (permanent
 * for an unknown domain or a null MX, else temporary). */
size_t queue_resolve(const char *domain, const char *smarthost, struct smtpc_addr *out,
		     size_t max, bool *perm, char *error, size_t error_cap);
/* Valid as a mailHost next hop (pure): 1..255 of [A-Za-z0-9.-_]. */
bool queue_mailhost_valid(const char *host, size_t len);

/* ---------------------------------------------------------------- manager */

struct event_base;
struct store_pool;
struct smtp_env;
struct sp_conf;
struct queue_manager;

/* Reads mailcore.queue.* from conf. env gives the hostname, local domains
 * and the current tables (for DSNs to local senders). Returns NULL and
 * *error_r on a bad setting (smarthost syntax, CA file). */
struct queue_manager *queue_manager_new(struct event_base *base, struct store_pool *pool,
					const struct smtp_env *env, const struct sp_conf *conf,
					char **error_r);
/* Looks at the spool now (new mail, or spqueue flush: all == retry every
 * message now). */
void queue_manager_kick(struct queue_manager *qm, bool all);
/* Shutdown: stop starting deliveries (before the pool is freed, so its
 * last completions start nothing), then free. */
void queue_manager_stop(struct queue_manager *qm);
void queue_manager_free(struct queue_manager **qm);

#endif
