/* Private to the IMAP session files (imap_session.c, imap_fetch.c,
 * imap_search.c, imap_mailbox.c): the session's state and the helpers they
 * share. */
#ifndef MAILCORE_IMAP_INT_H
#define MAILCORE_IMAP_INT_H

#include <stdarg.h>

#include "mailcore/imap.h"
#include "mailcore/mime.h"
#include "mailcore/store_mailbox.h"

#define IMAP_ADDR_CAP 336 /* DIR_ADDR_MAX and room */
#define IMAP_INBUF_CAP (IMAP_LINE_MAX + 4096)
#define IMAP_MAX_FETCH_FILE (256u * 1024 * 1024) /* a stored message we read into memory */
/* FETCH reads the next messages on the pool in one job: at most this many,
 * and no more than IMAP_READ_AHEAD_BYTES (at least one message) */
#define IMAP_READ_AHEAD 64
#define IMAP_READ_AHEAD_BYTES (2u * 1024 * 1024)
#define IMAP_HEADER_CHUNK 8192 /* first read when only the header is wanted */

struct obuf {
	uint8_t *data;
	size_t off, len, cap;  /* unsent: data[off .. len) */
};

/* What waits for the next input line instead of a command. */
enum imap_mode {
	IMAP_MODE_COMMAND,
	IMAP_MODE_AUTH,     /* AUTHENTICATE continuation */
	IMAP_MODE_IDLE,     /* RFC 2177: until DONE */
};

enum imap_mech { IMAP_MECH_PLAIN, IMAP_MECH_EXTERNAL };

/* A FETCH in progress: resumed when the output drains. */
struct fetch_item;
struct fetch_job {
	bool active;
	bool uid;
	char tag[IMAP_TAG_MAX + 1];
	struct fetch_item *items;
	size_t n_items;
	size_t *idx;           /* messages (view indices) */
	size_t n_idx, pos;
	bool failed;           /* some message could not be read */
	size_t read_end;       /* positions before it were read ahead (or tried) on the pool */
	struct msg_cache *ahead; /* read ahead on the pool: IMAP_READ_AHEAD entries */
	size_t n_ahead;
};

/* The message last read from disk, with its MIME tree. */
struct msg_cache {
	ssize_t idx;           /* view index, -1 = none */
	uint32_t uid;
	uint8_t *data;
	size_t len;
	size_t hdr_len;        /* the message header, incl. the empty line ending it */
	bool header_only;      /* data holds the header (and maybe some body), not all */
	struct mime_message *mime; /* parsed on demand; never with header_only */
};

struct dir;
struct dir_req;
struct imap_session;

/* A store operation off the event loop (imap_job.c): work() runs on the
 * store pool, then finish() on the loop writes the replies. Meanwhile the
 * session is suspended: it parses nothing, pipelined input stays buffered,
 * and nothing on the loop touches s->mb, s->cache, s->fetch, s->cmd, s->in
 * (the command's bytes stay unconsumed until the job ends). So work() may
 * read and change those and its arg, and nothing else of the session (not
 * the output, not env: copy what it needs from env into arg first). If
 * the connection closes meanwhile, the session's memory lives on until the
 * job ends; then finish() is skipped and only release() and the frees run. */
typedef void imap_job_fn(struct imap_session *s, void *arg);
struct imap_job {
	struct imap_session *s;
	imap_job_fn *work, *finish;
	void (*release)(void *arg);  /* frees arg; always called */
	void *arg;
	size_t consume;              /* input the command holds, let go at the end */
};

/* What a directory request in flight is for. */
enum imap_pending {
	IMAP_PEND_NONE,
	IMAP_PEND_GREETING,       /* certmap for PREAUTH (RFC 3501 7.1.4) */
	IMAP_PEND_LOGIN,          /* dir_verify for LOGIN */
	IMAP_PEND_PLAIN,          /* dir_verify for AUTHENTICATE PLAIN */
	IMAP_PEND_EXTERNAL,       /* certmap for AUTHENTICATE EXTERNAL */
	IMAP_PEND_EXTERNAL_PROXY, /* lookup of the user an administrator names */
};

struct imap_session {
	const struct imap_env *env;
	enum imap_state state;
	enum imap_mode mode;
	struct sockaddr_storage client, local;
	char client_ip[64];
	bool backend;
	const char *client_name;
	bool client_name_verified;

	bool tls;
	struct sp_proxy_info tls_info;
	struct dir *dir;               /* a ref: where logins and certificates are checked */

	char user[IMAP_ADDR_CAP];
	char maildir[4096];
	uint64_t quota;
	unsigned auth_failures, bad_commands;
	char auth_tag[IMAP_TAG_MAX + 1];
	enum imap_mech auth_mech;
	char idle_tag[IMAP_TAG_MAX + 1];

	struct store_mailbox *mb;      /* SELECTED */
	bool read_only;
	uint32_t reported_exists;      /* the EXISTS count the client knows */

	struct fetch_job fetch;
	struct msg_cache cache;

	uint8_t *in;                   /* unprocessed input; grows only for APPEND's literal */
	size_t in_len, in_cap;
	struct imap_framer framer;
	struct imap_cmd *cmd;          /* parse scratch (large) */
	struct obuf out;
	bool want_close, want_starttls;
	/* A directory request in flight (password, certificate, the user an
	 * administrator names): the session reads nothing until it answers. */
	struct dir_req *req;
	enum imap_pending pending;
	bool greeting_pending;         /* IMAPS: * PREAUTH or * OK waits for certmap */
	char pend_tag[IMAP_TAG_MAX + 1];
	char pend_user[IMAP_ADDR_CAP]; /* the login name, or EXTERNAL's authzid */
	char pend_admin[IMAP_ADDR_CAP];/* EXTERNAL-proxy: the certificate's user */
	void (*resume)(void *arg);     /* the server's: the check finished, do I/O */
	void *resume_arg;
	/* A store job in flight (imap_job.c): the session reads nothing until it ends. */
	struct imap_job *job;
	bool gone;                     /* freed by the connection while the job ran */
	uint32_t reported_kw;          /* keyword slots the client was told of (FLAGS) */
};

/* Runs work then finish (see struct imap_job) on env->pool; inline without
 * one. tag: the command's, for "NO [UNAVAILABLE]" when the pool's queue is
 * full (NULL: run inline then). */
void imap_run_job(struct imap_session *s, const char *tag, imap_job_fn *work, imap_job_fn *finish,
		  void (*release)(void *arg), void *arg);
/* imap_session.c: input no longer needed; the rest of imap_session_free. */
void imap_input_consume(struct imap_session *s, size_t n);
void imap_session_destroy(struct imap_session *s);
/* After a job: the mailbox the state change left behind is closed now. */
void imap_close_deferred(struct imap_session *s);

/* Output */
void imap_out(struct imap_session *s, const void *data, size_t len);
void imap_outf(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A string as IMAP astring/nstring: quoted if it can be, else a literal. */
void imap_out_string(struct imap_session *s, const char *str, size_t len);
void imap_out_nstring(struct imap_session *s, const char *str); /* NULL -> NIL */
void imap_tagged(struct imap_session *s, const char *tag, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The selected mailbox: resync and report (EXPUNGE, EXISTS, RECENT, FETCH FLAGS). */
void imap_report_changes(struct imap_session *s);
void imap_report_store_changes(struct imap_session *s, const struct store_changes *ch);
/* A message set (sequence or UID) -> view indices (caller frees). -1 if the set is malformed. */
int imap_resolve_set(struct imap_session *s, const struct imap_arg *a, bool uid, size_t **idx_r,
		     size_t *n_r);
/* Reads message idx into the cache (and its MIME tree when mime). */
int imap_load_msg(struct imap_session *s, size_t idx, bool mime);
/* The same into c; header_only: only as far as the end of the header
 * (c->header_only says whether it stopped there). */
int imap_load_msg_into(struct imap_session *s, struct msg_cache *c, size_t idx, bool mime,
		       bool header_only);
void imap_cache_clear(struct msg_cache *c);
/* A message's flags as "(\Seen \Deleted $Forwarded)" (keywords named by s->mb). */
void imap_out_flags(struct imap_session *s, const struct store_msg *m);
/* "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]" with the mailbox's
 * keywords (RFC 3501 7.2.6, 7.1), when they changed since last told (or always). */
void imap_out_flag_lists(struct imap_session *s, bool always);

/* Keywords named in a flag list, deduplicated (case-insensitive). */
struct imap_keywords {
	size_t n;
	char name[STORE_KEYWORDS_MAX][STORE_KEYWORD_LEN + 1];
};
/* "(\Seen \Flagged $Junk)" or a single flag -> STORE_F_* added to *flags_r
 * and keywords added to kw (both as the caller initialised them). -1 if
 * malformed, -2 if more than STORE_KEYWORDS_MAX keywords. */
int imap_parse_flags(const struct imap_cmd *cmd, const struct imap_arg *a, unsigned *flags_r,
		     struct imap_keywords *kw);

/* Handlers in the other files; each writes its replies. */
void imap_cmd_fetch(struct imap_session *s, const struct imap_cmd *cmd);
void imap_fetch_continue(struct imap_session *s);
void imap_fetch_clear(struct fetch_job *j);
void imap_cmd_search(struct imap_session *s, const struct imap_cmd *cmd);
void imap_cmd_list(struct imap_session *s, const struct imap_cmd *cmd, bool lsub);
void imap_cmd_status(struct imap_session *s, const struct imap_cmd *cmd);
void imap_cmd_create(struct imap_session *s, const struct imap_cmd *cmd);
void imap_cmd_delete(struct imap_session *s, const struct imap_cmd *cmd);
void imap_cmd_rename(struct imap_session *s, const struct imap_cmd *cmd);
void imap_cmd_subscribe(struct imap_session *s, const struct imap_cmd *cmd, bool subscribe);
void imap_cmd_append(struct imap_session *s, const struct imap_cmd *cmd);
void imap_cmd_quota(struct imap_session *s, const struct imap_cmd *cmd, bool root);
/* store result -> NO text with a response code */
void imap_store_error(struct imap_session *s, const char *tag, enum store_mb_result rc,
		      const char *what, char *error);
/* Mailbox name argument -> canonical name ("INBOX" for any case); -1 if bad. */
int imap_mailbox_arg(const struct imap_arg *a, char *buf, size_t cap);

/* Substring search, ASCII case-insensitive. */
bool imap_contains_ci(const uint8_t *hay, size_t hlen, const char *needle, size_t nlen);

#endif
