/* IMAP4rev1 (RFC 3501) for mailcore: the pure command framer and parser
 * (imap_parse.c), the session state machine driven with bytes
 * (imap_session.c), and the libevent server (imap_server.c). Parsers are
 * pure; the server owns every socket. */
#ifndef MAILCORE_IMAP_H
#define MAILCORE_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "common/conf.h"
#include "common/proxy2.h"

/* ======================================================================
 * Framing (imap_parse.c): finds where a command ends in the input,
 * literal by literal. A command is lines joined by literals:
 *   tag SP name ... {n}CRLF <n octets> ... CRLF
 * {n} is synchronizing (the server answers "+ " before the client sends
 * the octets); {n+} is non-synchronizing (RFC 7888 LITERAL+).
 * ==================================================================== */
#define IMAP_LINE_MAX 8192             /* one line between literals, CRLF excluded */
#define IMAP_LITERAL_MAX (64 * 1024)   /* any literal but APPEND's message */
#define IMAP_COMMAND_MAX (256 * 1024)  /* one command, literals included (APPEND: plus its message) */
#define IMAP_MAX_NODES 1024            /* values in one command */
#define IMAP_MAX_DEPTH 16              /* nested parentheses */
#define IMAP_TAG_MAX 64
#define IMAP_SEQSET_MAX 1024           /* ranges in one sequence set */

enum imap_frame_result {
	IMAP_FRAME_NEED_MORE,      /* read more input */
	IMAP_FRAME_COMMAND,        /* a command of *len_r bytes (CRLF excluded; *consumed_r with it) */
	IMAP_FRAME_LITERAL_SYNC,   /* send "+ ..." now, then go on framing */
	IMAP_FRAME_LINE_TOO_LONG,  /* a line over IMAP_LINE_MAX: answer BAD and close */
	IMAP_FRAME_LITERAL_TOO_BIG,/* *literal_r too big; *nonsync_r says which kind */
};

struct imap_framer {
	size_t pos;          /* scanned so far */
	size_t line_start;   /* where the current line segment begins */
	uint64_t literal_left;
	bool append;         /* the command is APPEND: its literal may be large */
	bool first_line_done;
};

void imap_framer_reset(struct imap_framer *f);
/* buf[0..len) is the input buffered so far, the command starting at 0.
 * max_append bounds APPEND's literal (the message size limit). */
enum imap_frame_result imap_frame(struct imap_framer *f, const uint8_t *buf, size_t len,
				  uint64_t max_append, size_t *len_r, size_t *consumed_r,
				  uint64_t *literal_r, bool *nonsync_r);

/* ======================================================================
 * Parsing (imap_parse.c): a framed command into a tree of values.
 * ==================================================================== */
enum imap_arg_type {
	IMAP_ARG_ATOM,     /* also NIL, numbers, sequence sets, BODY[...]<..> */
	IMAP_ARG_STRING,   /* quoted, unescaped */
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,     /* ( ... ) */
};

struct imap_arg {
	enum imap_arg_type type;
	const char *s;     /* ATOM/STRING/LITERAL: the bytes (not NUL-terminated) */
	size_t len;
	int child;         /* LIST: index of the first element, -1 if empty */
	int next;          /* index of the next sibling, -1 at the end */
};

struct imap_cmd {
	const char *tag;
	size_t tag_len;
	char name[16];     /* upper-case: "FETCH"; for "UID FETCH" name is FETCH and uid set */
	bool uid;
	int first;         /* index of the first argument, -1 if none */
	size_t n_args;     /* top-level arguments */
	struct imap_arg nodes[IMAP_MAX_NODES];
	size_t n_nodes;
};

/* Parses buf[0..len) (a framed command, CRLF excluded). buf is modified:
 * quoted strings are unescaped in place. Returns 0, or -1 with *error_r (a
 * static string for the BAD reply); cmd->tag is set whenever a tag was read
 * (else tag_len 0: answer "* BAD"). */
int imap_parse_command(uint8_t *buf, size_t len, struct imap_cmd *cmd, const char **error_r);

/* Argument access: the i-th top-level argument (NULL past the end). */
const struct imap_arg *imap_cmd_arg(const struct imap_cmd *cmd, size_t i);
const struct imap_arg *imap_arg_child(const struct imap_cmd *cmd, const struct imap_arg *list);
const struct imap_arg *imap_arg_next(const struct imap_cmd *cmd, const struct imap_arg *a);
/* Case-insensitive comparison of an atom with a word. */
bool imap_arg_is(const struct imap_arg *a, const char *word);
/* astring (atom, quoted or literal) copied NUL-terminated into buf; -1 if
 * it is a list, contains NUL or does not fit. */
int imap_arg_string(const struct imap_arg *a, char *buf, size_t cap);
/* nz-number / number. */
int imap_arg_number(const struct imap_arg *a, uint32_t *v);

/* Sequence sets (RFC 3501 9: sequence-set); '*' is stored as UINT32_MAX. */
struct imap_range {
	uint32_t lo, hi;
};
struct imap_seqset {
	struct imap_range r[IMAP_SEQSET_MAX];
	size_t n;
};
int imap_parse_seqset(const char *s, size_t len, struct imap_seqset *set);
/* Does set contain n, where '*' means max (the largest number in use)? */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t max);

/* "1-Feb-1994" (SEARCH date) -> midnight UTC of that day. */
int imap_parse_date(const char *s, size_t len, time_t *t_r);
/* "17-Jul-1996 02:44:25 -0700" (APPEND date-time). */
int imap_parse_datetime(const char *s, size_t len, time_t *t_r);
/* Writes "17-Jul-1996 02:44:25 +0000" (UTC). */
void imap_format_datetime(time_t t, char *buf, size_t cap);

/* ======================================================================
 * Session (imap_session.c, imap_fetch.c, imap_search.c, imap_mailbox.c):
 * the RFC 3501 state machine driven with bytes; no sockets. Same shape as
 * the SMTP session: feed input, write the output, act on the wants.
 * ==================================================================== */
struct dir;
struct dir_tables;
struct dir_users;
struct filter;
struct store_pool;

struct imap_env {
	const char *hostname;
	const char *store_root;           /* <root>/<domain>/<local>/Maildir */
	const struct dir_users *users;    /* with tables set: that snapshot's users */
	/* mailcore's current users/aliases/mappings snapshot (swapped on
	 * SIGHUP); each connection takes a ref at its start and keeps using it
	 * (tables below), as SMTP sessions do. NULL: users above, fixed. */
	struct dir_tables *const *tables_slot;
	struct dir_tables *tables;        /* this connection's ref, or NULL */
	/* mailcore's current directory (users file or LDAP; swapped on
	 * SIGHUP): logins and certificates are checked there. Each connection
	 * takes a ref at its start (dir below). NULL: a users-file directory
	 * over users above, with pool below (tests). */
	struct dir *const *dir_slot;
	struct dir *dir;                  /* this connection's ref, or NULL */
	const struct filter *filter;      /* imap access filter, checked again with the user; may be NULL */
	const char *const *admins;        /* store administrators (may log in as others via EXTERNAL) */
	size_t n_admins;
	int plaintext_min_cipher;         /* 0: LOGIN/PLAIN always; > 0: need TLS of that strength */
	bool starttls;                    /* a handoff socket is configured */
	uint64_t max_message_size;        /* APPEND */
	unsigned max_bad_commands;        /* BAD replies before BYE */
	unsigned max_auth_failures;
	long login_timeout_ms;            /* not authenticated */
	long idle_timeout_ms;             /* RFC 3501 5.4: at least 30 minutes */
	/* the pool of the users-file directory made when dir is NULL; NULL =
	 * inline (unit tests). With a pool the server sets a resume callback. */
	struct store_pool *pool;
};

struct imap_conn_info {
	bool backend;                     /* relayed by tlsd (IMAPS) with a PROXY v2 header */
	struct sockaddr_storage client, local;
	const char *client_name;          /* reverse name or NULL (for the filter) */
	bool client_name_verified;
	const struct sp_proxy_info *tls;  /* TLS facts; NULL = plaintext */
};

enum imap_state {
	IMAP_ST_NOT_AUTHENTICATED, /* RFC 3501 3.1 */
	IMAP_ST_AUTHENTICATED,     /* 3.2 */
	IMAP_ST_SELECTED,          /* 3.3 */
	IMAP_ST_LOGOUT,            /* 3.4 */
};

struct imap_session;

/* Creates the session and queues the greeting (* OK, or * PREAUTH for a
 * client certificate that certmap maps to a user on IMAPS; that greeting
 * waits for the directory's answer). Caller frees with imap_session_free. */
struct imap_session *imap_session_new(const struct imap_env *env, const struct imap_conn_info *ci);
void imap_session_free(struct imap_session **s);

#define IMAP_OUT_HIGH_WATER (256 * 1024)

size_t imap_session_input_room(const struct imap_session *s);
size_t imap_session_feed(struct imap_session *s, const void *data, size_t len);
/* Goes on with work held back by output backpressure (a large FETCH) or
 * input not yet processed. Call after the output drained. */
void imap_session_process(struct imap_session *s);
void imap_session_eof(struct imap_session *s);

const uint8_t *imap_session_output(const struct imap_session *s, size_t *len_r);
void imap_session_output_consumed(struct imap_session *s, size_t n);

#define IMAP_WANT_READ 0x1
#define IMAP_WANT_CLOSE 0x2      /* close once the output is written */
#define IMAP_WANT_STARTTLS 0x4   /* once the output is written, hand the fd to tlsd */
unsigned imap_session_wants(const struct imap_session *s);
/* STARTTLS done: facts from tlsd. Input received before it was dropped. */
void imap_session_tls_ready(struct imap_session *s, const struct sp_proxy_info *facts);

/* Timeout for the current state; on expiry call imap_session_timeout
 * (BYE, close). While in IDLE the server calls imap_session_poll every
 * imap_session_poll_ms (0 = not idling) to report other sessions' changes. */
long imap_session_timeout_ms(const struct imap_session *s);
void imap_session_timeout(struct imap_session *s);
long imap_session_poll_ms(const struct imap_session *s);
void imap_session_poll(struct imap_session *s);

/* ======================================================================
 * The server (imap_server.c over imap_pop_server.c) and its sealpost.conf
 * keys (imap_conf.c: service.imap.*, store.admins).
 * ==================================================================== */
struct event_base;
struct sp_conf;
struct imap_server;

extern const struct sp_conf_key mailcore_imap_conf_keys[];

/* Reads the service.imap.* keys (and mailcore.listenaddr, mailcore.store,
 * tlsd.handoff_socket, service.imap.starttls, mailcore.smtp.max_message_size,
 * mailcore.smtp.proxy_header_timeout, store.admins, the imap access
 * filter), binds the plain port and the backend, and serves on base.
 * users must outlive the server. Returns 0 and *srv_r (free with
 * imap_server_free), or -1 with *error_r (caller frees). */
int imap_server_start(struct event_base *base, const struct sp_conf *conf,
		      const struct dir_users *users, const char *hostname,
		      struct imap_server **srv_r, char **error_r);
/* The pool for password checks, once mailcore has made it (after dropping
 * privileges); sessions started before it check inline. NULL = inline. */
void imap_server_set_pool(struct imap_server *srv, struct store_pool *pool);
/* Client name lookups (mc_resolve.h) for new connections; NULL = none. */
struct mc_resolver;
void imap_server_set_resolver(struct imap_server *srv, struct mc_resolver *resolver);
/* Where mailcore keeps its current users/aliases/mappings snapshot: each
 * connection takes a ref of *slot at its start (see imap_env.tables_slot). */
void imap_server_set_tables(struct imap_server *srv, struct dir_tables *const *slot);
/* Where mailcore keeps its current directory: each connection takes a ref
 * of *slot at its start (see imap_env.dir_slot). */
void imap_server_set_dir(struct imap_server *srv, struct dir *const *slot);
/* The env a session was made with (its connection's copy). */
const struct imap_env *imap_session_env(const struct imap_session *s);
void imap_server_stop_listening(struct imap_server *srv);
unsigned imap_server_connections(const struct imap_server *srv);
void imap_server_free(struct imap_server **srv);

/* With a directory pool: a directory answer (password, certificate) came and the session moved on; the
 * server writes the output and reads again. Called on the loop; the
 * callback may free the session. */
void imap_session_set_resume(struct imap_session *s, void (*resume)(void *arg), void *arg);

enum imap_state imap_session_state(const struct imap_session *s);
const char *imap_session_state_name(enum imap_state st);
const char *imap_session_user(const struct imap_session *s); /* NULL if none */

#endif
