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
};

/* The message last read from disk, with its MIME tree. */
struct msg_cache {
	ssize_t idx;           /* view index, -1 = none */
	uint32_t uid;
	uint8_t *data;
	size_t len;
	struct mime_message *mime; /* parsed on demand */
};

struct dir;
struct dir_req;

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
};

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
void imap_cache_clear(struct msg_cache *c);
/* Flags as "(\Seen \Deleted)". */
void imap_out_flags(struct imap_session *s, unsigned flags, bool recent);
/* "(\Seen \Flagged)" or a single flag -> STORE_F_*; -1 if malformed. Keywords are ignored. */
int imap_parse_flags(const struct imap_cmd *cmd, const struct imap_arg *a, unsigned *flags_r);

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
