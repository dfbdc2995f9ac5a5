/* POP3 (RFC 1939) for mailcore, with CAPA (RFC 2449), STLS (RFC 2595),
 * AUTH (RFC 5034: PLAIN, EXTERNAL) and no APOP: the pure command parser
 * (pop_parse.c), the session driven with bytes (pop_session.c) and the
 * libevent server (pop_server.c). */
#ifndef MAILCORE_POP_H
#define MAILCORE_POP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/conf.h"
#include "common/proxy2.h"

#define POP_LINE_MAX 512        /* RFC 2449 4: 255 octets; we allow some slack */
#define POP_AUTH_LINE_MAX 8192  /* a SASL response line */
#define POP_ARG_MAX 255

enum pop_verb {
	POP_USER, POP_PASS, POP_APOP, POP_AUTH, POP_STLS, POP_CAPA, POP_QUIT, POP_STAT, POP_LIST,
	POP_RETR, POP_DELE, POP_NOOP, POP_RSET, POP_TOP, POP_UIDL,
};

struct pop_cmd {
	enum pop_verb verb;
	size_t n_args;             /* words after the verb (at most 2 kept) */
	const char *arg[2];        /* point into the line; not NUL-terminated */
	size_t arg_len[2];
	const char *rest;          /* everything after "VERB " (PASS: the password may hold spaces) */
	size_t rest_len;
};

/* line[0..len) without CRLF. Returns 0, or -1 with *error_r (static text). */
int pop_parse_command(const char *line, size_t len, struct pop_cmd *cmd, const char **error_r);
/* A message number: 1..UINT32_MAX, digits only. */
int pop_parse_number(const char *s, size_t len, uint32_t *n_r);

/* ======================================================================
 * Session (pop_session.c)
 * ==================================================================== */
struct dir;
struct dir_tables;
struct dir_users;
struct filter;
struct store_pool;

struct pop_env {
	const char *hostname;
	const char *store_root;
	const struct dir_users *users;    /* with tables set: that snapshot's users */
	/* mailcore's current users/aliases/mappings snapshot (swapped on
	 * SIGHUP); each connection takes a ref at its start and keeps using it
	 * (tables below), as SMTP sessions do. NULL: users above, fixed. */
	struct dir_tables *const *tables_slot;
	struct dir_tables *tables;        /* this connection's ref, or NULL */
	/* As imap_env.dir_slot / dir: mailcore's current directory. */
	struct dir *const *dir_slot;
	struct dir *dir;                  /* this connection's ref, or NULL */
	const struct filter *filter;      /* pop access filter, checked again with the user; may be NULL */
	const char *const *admins;
	size_t n_admins;
	int plaintext_min_cipher;
	bool starttls;
	unsigned max_errors;
	unsigned max_auth_failures;
	long timeout_ms;                  /* RFC 1939 3: at least 10 minutes */
	struct store_pool *pool;          /* as imap_env.pool; NULL = inline */
};

struct pop_conn_info {
	bool backend;                     /* POPS via tlsd */
	struct sockaddr_storage client, local;
	const char *client_name;
	bool client_name_verified;
	const struct sp_proxy_info *tls;
};

enum pop_state {
	POP_ST_AUTHORIZATION, /* RFC 1939 3 */
	POP_ST_TRANSACTION,
	POP_ST_UPDATE,
};

struct pop_session;

struct pop_session *pop_session_new(const struct pop_env *env, const struct pop_conn_info *ci);
void pop_session_free(struct pop_session **s);

#define POP_OUT_HIGH_WATER (256 * 1024)

size_t pop_session_input_room(const struct pop_session *s);
size_t pop_session_feed(struct pop_session *s, const void *data, size_t len);
void pop_session_process(struct pop_session *s);
void pop_session_eof(struct pop_session *s);
const uint8_t *pop_session_output(const struct pop_session *s, size_t *len_r);
void pop_session_output_consumed(struct pop_session *s, size_t n);

#define POP_WANT_READ 0x1
#define POP_WANT_CLOSE 0x2
#define POP_WANT_STARTTLS 0x4
unsigned pop_session_wants(const struct pop_session *s);
void pop_session_tls_ready(struct pop_session *s, const struct sp_proxy_info *facts);
long pop_session_timeout_ms(const struct pop_session *s);
void pop_session_timeout(struct pop_session *s);
/* ======================================================================
 * The server (pop_server.c over imap_pop_server.c) and its keys
 * (pop_conf.c: service.pop.*).
 * ==================================================================== */
struct event_base;
struct sp_conf;
struct pop_server;

extern const struct sp_conf_key mailcore_pop_conf_keys[];

/* As imap_server_start, for service.pop.* (store.admins is read from
 * mailcore_imap_conf_keys' table, which must be registered too). */
int pop_server_start(struct event_base *base, const struct sp_conf *conf,
		     const struct dir_users *users, const char *hostname,
		     struct pop_server **srv_r, char **error_r);
void pop_server_set_pool(struct pop_server *srv, struct store_pool *pool);
/* Client name lookups (mc_resolve.h) for new connections; NULL = none. */
struct mc_resolver;
void pop_server_set_resolver(struct pop_server *srv, struct mc_resolver *resolver);
/* Where mailcore keeps its current users/aliases/mappings snapshot: each
 * connection takes a ref of *slot at its start (see pop_env.tables_slot). */
void pop_server_set_tables(struct pop_server *srv, struct dir_tables *const *slot);
/* As imap_server_set_dir. */
void pop_server_set_dir(struct pop_server *srv, struct dir *const *slot);
/* The env a session was made with (its connection's copy). */
const struct pop_env *pop_session_env(const struct pop_session *s);
void pop_server_stop_listening(struct pop_server *srv);
unsigned pop_server_connections(const struct pop_server *srv);
void pop_server_free(struct pop_server **srv);

/* As imap_session_set_resume. */
void pop_session_set_resume(struct pop_session *s, void (*resume)(void *arg), void *arg);

enum pop_state pop_session_state(const struct pop_session *s);
const char *pop_session_user(const struct pop_session *s);

#endif
