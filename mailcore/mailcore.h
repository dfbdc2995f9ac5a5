/* mailcore: the SMTP and submission server, the Maildir store, the users and
 * aliases files, and the anchor's access mapping tables. This header is the
 * component's face: mailcore_main.c, the tests and any other component
 * include only this. Parsers here are pure (bytes in, result out); the
 * event loop (smtp_server.c) owns every socket. */
#ifndef MAILCORE_H
#define MAILCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/conf.h"
#include "common/proxy2.h"

/* ======================================================================
 * Configuration schema (mailcore_conf.c), registered as component
 * "mailcore". Ends with a NULL name.
 * ==================================================================== */
extern const struct sp_conf_key mailcore_conf_keys[];

/* ======================================================================
 * SMTP command parser (smtp_parse.c): one command line in (without its
 * CRLF), a parsed command or an error reply out. No I/O, no globals.
 * ==================================================================== */

/* RFC 5321 4.5.3.1 size limits */
#define SMTP_CMD_LINE_MAX 512     /* 4.5.3.1.4: command line incl. CRLF */
#define SMTP_PATH_MAX 256         /* 4.5.3.1.3: path incl. "<" and ">" */
#define SMTP_LOCAL_PART_MAX 64    /* 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX 255       /* 4.5.3.1.2 */
#define SMTP_AUTH_LINE_MAX 12288  /* RFC 4954 4: AUTH command and SASL responses */
#define SMTP_HELO_MAX 255

enum smtp_verb {
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
	SMTP_CMD_NOT_IMPLEMENTED, /* known verbs we do not offer: BDAT, TURN, ETRN, ... */
};

enum smtp_body_type { SMTP_BODY_UNSPEC, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

/* A reply the parser or the session chose: code, RFC 3463 enhanced status
 * code, text. All three point to static strings or the session's buffers. */
struct smtp_error {
	int code;
	const char *status;
	const char *text;
};

struct smtp_cmd {
	enum smtp_verb verb;
	/* HELO/EHLO domain, VRFY/EXPN/HELP/NOOP text, AUTH "MECH [initial]":
	 * points into the line given to the parser, not NUL-terminated. */
	const char *arg;
	size_t arg_len;
	/* MAIL/RCPT: the mailbox without "<" ">" and without a source route,
	 * as the client wrote it; "" for the null reverse-path "<>". */
	char addr[SMTP_PATH_MAX];
	bool null_path;
	bool postmaster;            /* RCPT TO:<Postmaster> without a domain (RFC 5321 4.1.1.3) */
	unsigned n_params;          /* ESMTP parameters present (MAIL/RCPT) */
	bool has_size;              /* MAIL SIZE= (RFC 1870) */
	uint64_t size;
	enum smtp_body_type body;   /* MAIL BODY= (RFC 6152) */
	bool has_auth;              /* MAIL AUTH= (RFC 4954 5), xtext-decoded into auth */
	char auth[SMTP_PATH_MAX];
	/* AUTH: mechanism (upper-cased) and initial response (points into the line) */
	char mech[21];
	const char *initial;
	size_t initial_len;
	bool has_initial;
};

/* Parses line[0..len) (the CRLF already removed). Returns 0 and fills *cmd,
 * or -1 and fills *err with the reply to send (500/501/502/553/555). */
int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd, struct smtp_error *err);

/* Splits a mailbox "local@domain" at its last '@'. Returns 0, or -1 if there
 * is no '@'. *domain_r points into addr. */
int smtp_addr_split(const char *addr, size_t *local_len_r, const char **domain_r);

/* ======================================================================
 * DATA decoding (smtp_data.c): pure byte-stream decoder for the message
 * text: removes dot-stuffing (RFC 5321 4.5.2), finds the end marker
 * CRLF.CRLF, and notes bare CR / bare LF.
 *
 * Bare CR / bare LF policy (SMTP smuggling, CVE-2023-51764 and friends):
 * only CRLF ends a line (RFC 5321 2.3.8). A lone LF or CR inside the text
 * never ends a line and never forms part of an end marker, so "<LF>.<LF>"
 * or "<LF>.<CR><LF>" cannot end the data early. The decoder keeps reading to
 * the real CRLF.CRLF (staying in step with the client) and flags the
 * message; the session then refuses it with 550 5.6.0 and delivers nothing.
 * ==================================================================== */
struct smtp_data_decoder {
	int state;
	bool bare_cr;
	bool bare_lf;
	bool done;
	uint64_t octets; /* message octets produced so far */
};

void smtp_data_init(struct smtp_data_decoder *d);
/* Decodes in[0..len). Writes message bytes to out (out_cap must be at least
 * len + 2) and sets *out_len. Returns the input bytes consumed: all of them,
 * or fewer when the end marker was found (d->done; the rest belongs to the
 * next command). */
size_t smtp_data_decode(struct smtp_data_decoder *d, const uint8_t *in, size_t len,
			uint8_t *out, size_t out_cap, size_t *out_len);

/* ======================================================================
 * SASL helpers (smtp_auth.c): pure.
 * ==================================================================== */
/* Strict RFC 4648 base64 with padding. Returns decoded length or -1. */
ssize_t smtp_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);
/* Writes NUL-terminated base64 of in; returns its length or -1 if cap is short. */
ssize_t smtp_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap);
/* RFC 4616 PLAIN message: [authzid] NUL authcid NUL passwd. Points into msg.
 * Returns 0 or -1 (malformed, or a part too long). */
struct smtp_plain {
	const char *authzid, *authcid, *passwd;
	size_t authzid_len, authcid_len, passwd_len;
};
int smtp_sasl_plain_split(const uint8_t *msg, size_t len, struct smtp_plain *out);

/* ======================================================================
 * Users file (dir_users.c).
 *
 * One user per line:  address:crypt-hash:attributes
 *   address     local@domain; stored lower-case; local part [a-z0-9._+-]
 *               (no leading, trailing or doubled dot), domain a host name
 *   crypt-hash  a crypt(3) hash ($y$, $2b$, $6$, ...); empty, "*" or "!..."
 *               = no password login (the user still receives mail)
 *   attributes  comma-separated key=value, may be empty:
 *                 quota=SIZE            bytes, suffix k/m/g (binary); 0 = none
 *                 status=active|inactive|deleted
 *                   inactive: no login; mail refused with 450 4.2.1
 *                   deleted : as if the line were absent (550 5.1.1)
 *                 certsha256=HEX        SHA-256 of the user's client certificate
 *                                       (64 hex digits; certmap verifycert,
 *                                       docs/CERTMAP.md)
 *                 mailhost=HOST         the host that stores the mailbox, as
 *                                       LDAP mailHost (docs/DIRECTORY.md): a
 *                                       host name ([a-z0-9._-], at most 253),
 *                                       stored lower-case; absent = this host
 *                 allowed=FILTER        per-user services, client access filter
 *                                       syntax (filter.h); must be the LAST
 *                                       attribute: it runs to the end of the line
 *                                       and may hold ',' and ':'
 * '#' lines and blank lines are ignored. A malformed line, an unknown
 * attribute or a duplicate address is an error naming file and line.
 * Limits: 16 MiB file, 4096-byte lines, 1,000,000 users.
 * ==================================================================== */
enum dir_user_status { DIR_USER_ACTIVE, DIR_USER_INACTIVE, DIR_USER_DELETED };

struct dir_user {
	char *address;   /* lower-case local@domain */
	char *hash;      /* crypt(3) hash or "" */
	uint64_t quota;  /* bytes; 0 = unlimited */
	enum dir_user_status status;
	char *allowed;   /* allowed= service filter text (filter.h syntax); NULL = any */
	char *mailhost;  /* mailhost=, lower-case; NULL = this host (dir_remote_mailhost) */
	bool has_certsha256;        /* certsha256= (certmap verifycert, dir.h) */
	uint8_t certsha256[32];
};

struct dir_users;

/* Parses buf as file `name`. Caller frees with dir_users_free. NULL and
 * *error_r ("NAME:LINE: message", caller frees) on error. */
struct dir_users *dir_users_parse(const char *name, const char *buf, size_t len, char **error_r);
struct dir_users *dir_users_load(const char *path, char **error_r);
void dir_users_free(struct dir_users **users);
size_t dir_users_count(const struct dir_users *users);
/* Case-insensitive lookup; deleted users are not found. */
const struct dir_user *dir_users_find(const struct dir_users *users, const char *address);
/* Checks a password with crypt_r. Returns 0 and *user_r for an active user
 * whose hash matches; -1 otherwise (unknown, inactive, no hash, mismatch):
 * the caller cannot tell which, and an unknown user costs one crypt_r too. */
int dir_users_verify(const struct dir_users *users, const char *address, const char *password,
		     size_t password_len, const struct dir_user **user_r);

/* ======================================================================
 * Aliases file (dir_aliases.c): local part (or full address) -> addresses.
 *
 *   alias: target, target, ...
 * alias is "local" (applies to every local domain) or "local@domain"
 * (that domain only; wins over the bare form). Targets are addresses,
 * local or remote; a target may itself be an alias (up to 8 levels).
 * '#' lines and blank lines are ignored.
 * Limits: 4 MiB file, 4096-byte lines, 256 targets per expansion.
 * ==================================================================== */
#define DIR_ALIAS_MAX_DEPTH 8
#define DIR_ALIAS_MAX_TARGETS 256

struct dir_aliases;

struct dir_aliases *dir_aliases_parse(const char *name, const char *buf, size_t len,
				      char **error_r);
struct dir_aliases *dir_aliases_load(const char *path, char **error_r);
void dir_aliases_free(struct dir_aliases **aliases);
/* Expands address (local@domain, domain already known to be local) into its
 * final targets. Returns the number of targets written to targets[] (each
 * an owned copy the caller frees), 0 if address is not an alias, -1 if the
 * expansion is too deep or too wide. is_local(domain) says which targets
 * may be expanded further. */
int dir_aliases_expand(const struct dir_aliases *aliases, const char *address,
		       bool (*is_local)(const char *domain, void *arg), void *arg,
		       char **targets, size_t max_targets);

/* ======================================================================
 * Mapping tables (mappings_parse.c: the file; mappings_match.c: lookups).
 * The format and its semantics are written down in docs/MAPPINGS.md.
 * ==================================================================== */
#define MAPPINGS_MAX_FILE (4u * 1024 * 1024)
#define MAPPINGS_MAX_LINE 4096
#define MAPPINGS_MAX_TABLES 256
#define MAPPINGS_MAX_ENTRIES 100000
#define MAPPINGS_MAX_PROBE 4096
#define MAPPINGS_MAX_TEXT 256

struct mappings;

struct mappings *mappings_parse(const char *name, const char *buf, size_t len, char **error_r);
struct mappings *mappings_load(const char *path, char **error_r);
void mappings_free(struct mappings **maps);
bool mappings_has_table(const struct mappings *maps, const char *table);

enum mapping_verdict {
	MAPPING_NO_MATCH, /* no table, or no entry matched */
	MAPPING_ACCEPT,   /* matched; no $N / $F */
	MAPPING_REJECT,   /* matched with $N or $F */
};

struct mapping_result {
	enum mapping_verdict verdict;
	int smtp_code;                    /* 0 = the caller's default */
	char status[16];                  /* from $X; "" = the caller's default */
	char text[MAPPINGS_MAX_TEXT];     /* output string, flags removed, printable */
};

/* Runs probe through table. maps may be NULL (= no tables). */
void mappings_lookup(const struct mappings *maps, const char *table, const char *probe,
		     struct mapping_result *res);

/* ======================================================================
 * The tables as one snapshot (dir_tables.c): reference-counted, so that
 * SIGHUP can load new files while sessions keep the snapshot they started
 * with. Whoever holds a pointer for longer than one event holds a ref.
 * ==================================================================== */
struct dir_tables {
	struct dir_users *users;
	struct dir_aliases *aliases;  /* may be NULL */
	struct mappings *maps;        /* may be NULL */
	_Atomic unsigned refs;
};

/* Loads all three (aliases_path / mappings_path may be NULL). One ref for
 * the caller; NULL and *error_r (caller frees) if any file is refused. */
struct dir_tables *dir_tables_load(const char *users_path, const char *aliases_path,
				   const char *mappings_path, char **error_r);
struct dir_tables *dir_tables_ref(struct dir_tables *t);   /* NULL-safe */
void dir_tables_unref(struct dir_tables **t);              /* frees on the last */

/* ======================================================================
 * Maildir store (store_maildir.c).
 * ==================================================================== */

/* One place a message goes. */
struct store_target {
	const char *maildir;   /* the Maildir directory (contains tmp/ new/ cur/) */
	uint64_t quota;        /* bytes; 0 = unlimited */
	const char *prefix;    /* bytes written before the message (Return-Path, ...) */
	size_t prefix_len;
};

enum store_status {
	STORE_OK = 0,
	STORE_TEMPFAIL = -1, /* I/O error: nothing was left in any new/ */
	STORE_OVER_QUOTA = -2,
	STORE_NOSPACE = -3,  /* ENOSPC, EDQUOT or EFBIG: nothing was kept */
};

/* Delivers the message (the concatenation of parts) to every target,
 * all or nothing: for each target write tmp/<unique>, fsync it; then rename
 * each into new/ and fsync each new/ directory. Only when this returns
 * STORE_OK is the message safely on disk. Creates missing Maildirs (0700).
 * On failure *error_r says why (caller frees). hostname goes into the
 * unique names. names_r, if not NULL, receives the new/ file name of the
 * first target (cap bytes). */
enum store_status store_maildir_deliver(const struct store_target *targets, size_t n_targets,
					const struct iovec *parts, size_t n_parts,
					const char *hostname, char *name_r, size_t name_cap,
					char **error_r);

/* Bytes used by the messages in maildir's new/ and cur/ (",S=" from the
 * name when present, else stat). Returns 0, or -1 with errno. A Maildir that
 * does not exist yet uses 0. */
int store_maildir_usage(const char *maildir, uint64_t *bytes_r);

/* A Maildir unique name: time.M<usec>P<pid>Q<n>R<random>.<host>,S=<size>
 * (the Maildir spec's time.M..P..R...host, with host's '/' and ':' escaped
 * as \057 and \072). Returns 0 or -1 (no randomness, or cap too small). */
int store_maildir_unique(const char *hostname, uint64_t size, char *buf, size_t cap);

/* <root>/<domain>/<local>/Maildir for a lower-case local@domain address.
 * Returns 0, or -1 if the address cannot be a path (caller validated it). */
int store_maildir_path(const char *root, const char *address, char *buf, size_t cap);

/* The spool format for messages that leave through the queue (relayed,
 * forwarded by an alias, or held by holdlimit): a Maildir message whose
 * first lines are the envelope, then a blank line, then the message:
 *   X-Sealpost-Queue: 1\r\n
 *   X-Sealpost-From: <sender>\r\n
 *   X-Sealpost-To: <recipient>[ mailhost=H]\r\n  (one per recipient; H: the
 *                                       recipient's mailHost, queue.h)
 *   \r\n
 * The queue manager (queue.h, queue_manager.c) consumes it. */

/* ======================================================================
 * SMTP session (smtp_session.c): the protocol state machine, driven with
 * bytes; no sockets. The server feeds input, writes the output it gives
 * back, and acts on the session's wants (close, hand over for STARTTLS).
 * ==================================================================== */

/* Which listener the connection came in on. */
enum smtp_listener {
	SMTP_LISTEN_SMTP,        /* port 25 */
	SMTP_LISTEN_SUBMISSION,  /* port 587: AUTH before MAIL (RFC 6409 4.3) */
	SMTP_LISTEN_BACKEND,     /* relayed by tlsd with PROXY v2 (implicit TLS, 465) */
};

/* The anchor's source channels. */
enum smtp_channel {
	SMTP_CH_TCP_LOCAL,    /* anyone else: local delivery only */
	SMTP_CH_TCP_INTRANET, /* client matches INTERNAL_IP: may relay */
	SMTP_CH_TCP_AUTH,     /* authenticated with SMTP AUTH: may relay */
	SMTP_CH_TCP_SUBMIT,   /* submission before AUTH: nothing but AUTH */
};
const char *smtp_channel_name(enum smtp_channel ch);

/* Shared by every session; read-only while sessions run. */
struct smtp_env {
	const char *hostname;
	const char *const *domains;   /* local domains, lower-case */
	size_t n_domains;
	const char *store_root;       /* <root>/<domain>/<local>/Maildir */
	const char *queue_dir;        /* Maildir for outbound (relayed/forwarded) mail */
	const char *hold_dir;         /* Maildir for messages held by holdlimit */
	uint64_t max_message_size;    /* SIZE, RFC 1870 */
	unsigned max_recipients;      /* per transaction; RFC 5321 4.5.3.1.8 asks >= 100 */
	unsigned holdlimit;           /* more recipients than this: held; 0 = off */
	unsigned max_errors;          /* error replies before 421 and close */
	unsigned max_auth_failures;
	int plaintext_min_cipher;     /* 0: PLAIN/LOGIN always; > 0: need TLS of that strength */
	bool starttls;                /* a handoff socket is configured */
	long command_timeout_ms;      /* RFC 5321 4.5.3.2.7: at least 5 minutes */
	long data_timeout_ms;
	const struct dir_users *users;
	const struct dir_aliases *aliases; /* may be NULL */
	const struct mappings *maps;       /* may be NULL */
	/* The directory (dir.h) for recipients, passwords and certmap: each
	 * session takes a ref at its start. NULL = the users file above (or of
	 * tables) with the built-in certmap. */
	struct dir *dir;
	/* When set, each session takes a ref at its start and uses these
	 * tables instead of the three above (mailcore swaps it on SIGHUP). */
	struct dir_tables *tables;
	/* Called (on the loop) after a message was written to queue_dir, so
	 * the queue manager looks at once; NULL = nobody to tell. */
	void (*queued)(void *arg);
	void *queued_arg;
	/* Runs the store's writes and fsyncs and the crypt(3) checks off the
	 * loop (store_pool.h); NULL = inline (unit tests). With a pool the
	 * server must set a resume callback on each session. */
	struct store_pool *pool;
	/* service.smtp.domainallowed / domainnotallowed: applied after AUTH
	 * (with the user), like the per-user allowed services; NULL or an
	 * empty set = everyone. */
	const struct filter *auth_filter;
};

struct dir;
struct filter;

/* What the server knows about the connection. */
struct smtp_conn_info {
	enum smtp_listener listener;
	struct sockaddr_storage client;  /* AF_INET/AF_INET6/AF_UNIX/AF_UNSPEC */
	struct sockaddr_storage local;
	/* TLS facts: only from a PROXY v2 header read on the backend listener or
	 * from tlsd's STARTTLS handoff reply. NULL = plaintext. */
	const struct sp_proxy_info *tls;
};

struct smtp_session;

/* Creates the session and queues the greeting (or the PORT_ACCESS refusal).
 * Caller frees with smtp_session_free. */
struct smtp_session *smtp_session_new(const struct smtp_env *env, const struct smtp_conn_info *ci);
void smtp_session_free(struct smtp_session **s);

#define SMTP_INBUF_CAP (SMTP_AUTH_LINE_MAX + 4096)
#define SMTP_OUT_HIGH_WATER (64 * 1024)

/* Input. _room says how many bytes _feed will take now (0: stop reading
 * until the output drains). _feed appends and processes as far as it can;
 * it takes at most _room bytes and returns how many it took. */
size_t smtp_session_input_room(const struct smtp_session *s);
size_t smtp_session_feed(struct smtp_session *s, const void *data, size_t len);
/* Processes input held back by output backpressure (call after a write). */
void smtp_session_process(struct smtp_session *s);
/* The client closed its side (or the connection broke). */
void smtp_session_eof(struct smtp_session *s);

/* Output: replies queued so far, in order, to be written in one write. */
const uint8_t *smtp_session_output(const struct smtp_session *s, size_t *len_r);
void smtp_session_output_consumed(struct smtp_session *s, size_t n);

#define SMTP_WANT_READ 0x1      /* more input is welcome */
#define SMTP_WANT_CLOSE 0x2     /* close once the output is written */
#define SMTP_WANT_STARTTLS 0x4  /* once the output (220) is written, hand the fd to tlsd */
unsigned smtp_session_wants(const struct smtp_session *s);

/* STARTTLS finished: facts from tlsd. The session starts over as RFC 3207
 * 4.2 requires (no greeting; the client must EHLO again). */
void smtp_session_tls_ready(struct smtp_session *s, const struct sp_proxy_info *facts);

/* The timeout that applies in the current state (ms); on expiry call
 * smtp_session_timeout, which queues 421 4.4.2 and wants close. */
long smtp_session_timeout_ms(const struct smtp_session *s);
void smtp_session_timeout(struct smtp_session *s);

/* With env->pool: a delivery or password job finished and the session
 * moved on; the server writes its output and reads again. Called on the
 * loop; the callback may free the session. */
void smtp_session_set_resume(struct smtp_session *s, void (*resume)(void *arg), void *arg);
/* The client's reverse name once its lookup answered (mc_resolve.h): a
 * verified name goes into the Received: header (RFC 5321 4.4 TCP-info
 * "name [ip]"); both kinds go to the authenticated-session filter (an
 * unverified name matches DNSSPOOFER only). May answer an AUTH that
 * waited for it, and then calls the resume callback (which may free the
 * session). */
void smtp_session_set_client_name(struct smtp_session *s, const char *name, bool verified);
/* A lookup for the client's name has started: an AUTH whose answer
 * depends on the name (service.smtp.domainallowed with name rules) waits
 * for smtp_session_set_client_name. */
void smtp_session_expect_client_name(struct smtp_session *s);

/* For logs and tests. */
const char *smtp_session_state_name(const struct smtp_session *s);
enum smtp_channel smtp_session_channel(const struct smtp_session *s);
const char *smtp_session_auth_user(const struct smtp_session *s); /* NULL if none */
unsigned smtp_session_messages(const struct smtp_session *s);     /* accepted so far */

/* ======================================================================
 * Access decisions (smtp_access.c): channels, relaying, mapping probes.
 * ==================================================================== */
/* "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" (RFC 3848). */
const char *smtp_with_protocol(bool ehlo, bool tls, bool auth);
/* The application field of FROM_ACCESS / MAIL_ACCESS probes: "SMTP" after
 * HELO, else "SMTP/" + the RFC 3848 name ("SMTP/ESMTPSA"), so that the
 * anchor's "SMTP*" patterns match every SMTP session. */
const char *smtp_app_info(bool ehlo, bool tls, bool auth);
/* Numeric address text of ss ("" for AF_UNSPEC, "unix" for AF_UNIX) and port. */
void smtp_sockaddr_text(const struct sockaddr_storage *ss, char *ip, size_t ip_cap,
			unsigned *port_r);
/* PORT_ACCESS probe: TCP|server-ip|server-port|client-ip|client-port */
int smtp_probe_port_access(const struct sockaddr_storage *local,
			   const struct sockaddr_storage *client, char *buf, size_t cap);
/* Copies an address into a probe field: '|' becomes "%7C" so that a
 * crafted address cannot forge field boundaries. */
int smtp_probe_field(char *buf, size_t cap, size_t *pos, const char *s);
/* Strength in bits of a negotiated cipher suite, judged from its name (0 if
 * unknown): used for plaintextmincipher. */
int smtp_cipher_bits(const char *cipher);

/* ======================================================================
 * The server (smtp_server.c): libevent listeners and connections.
 * ==================================================================== */
struct event_base;
struct smtp_server;

struct smtp_server_config {
	unsigned max_connections;
	const char *handoff_socket;  /* tlsd's STARTTLS socket; NULL = no STARTTLS */
	long proxy_header_timeout_ms;
};

struct smtp_server *smtp_server_new(struct event_base *base, const struct smtp_env *env,
				    const struct smtp_server_config *cfg);
/* Binds and listens. addr: numeric IPv4/IPv6; the backend spec is a unix
 * path (starts with '/') or host:port ([v6]:port). Return 0 or -1 with
 * *error_r (caller frees). */
int smtp_server_listen_tcp(struct smtp_server *srv, enum smtp_listener kind, const char *addr,
			   unsigned port, char **error_r);
int smtp_server_listen_backend(struct smtp_server *srv, const char *spec, char **error_r);
/* Closes the listeners; connections finish on their own. */
void smtp_server_stop_listening(struct smtp_server *srv);
unsigned smtp_server_connections(const struct smtp_server *srv);
/* Client name lookups (mc_resolve.h) for new connections, started at
 * connect without delaying the greeting; NULL or mode no = none. */
struct mc_resolver;
void smtp_server_set_resolver(struct smtp_server *srv, struct mc_resolver *resolver);
void smtp_server_free(struct smtp_server **srv);

#endif
