/* The event-loop side shared by the IMAP and POP servers (imap_pop_server.c):
 * listeners (plain ports and the PROXY v2 backend tlsd relays IMAPS/POPS
 * to), connections, timeouts, the client access filter at connect, and the
 * STARTTLS handoff to tlsd, on the connection core shared with SMTP
 * (mc_conn.c). Each protocol plugs its session in through a table of
 * functions (imap_server.c, pop_server.c). Private to mailcore. */
#ifndef MAILCORE_IMAP_POP_SERVER_H
#define MAILCORE_IMAP_POP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/proxy2.h"
#include "mailcore/mc_conn.h"

struct dir;
struct dir_tables;
struct dir_users;
struct event_base;
struct filter;
struct mc_resolver;
struct sp_conf;

/* What the server knows when a session starts. */
struct ips_facts {
	bool backend;
	struct sockaddr_storage client, local;
	const struct sp_proxy_info *tls;
	/* the client's reverse name (mc_resolve.h), valid for the session's
	 * life; NULL = not looked up or none */
	const char *client_name;
	bool client_name_verified;
};

struct ips_ops {
	const char *service;        /* "imap" / "pop": logs, handoff, filter */
	const char *refused;        /* sent when the access filter refuses, then close */
	const char *busy;           /* sent when max_connections is reached */
	void *(*session_new)(const void *env, const struct ips_facts *f);
	void (*session_free)(void *s);
	struct mc_session_ops io;   /* bytes in and out (mc_conn.h; wants: MC_WANT_*) */
	void (*tls_ready)(void *s, const struct sp_proxy_info *facts);
	void (*timeout)(void *s);
	long (*poll_ms)(const void *s);   /* may be NULL */
	void (*poll)(void *s);
	/* the session calls resume(arg) on the loop when a pool job finished */
	void (*set_resume)(void *s, void (*resume)(void *arg), void *arg);
};

struct ips_config {
	unsigned max_connections;
	const char *handoff_socket;       /* NULL: no STARTTLS */
	long proxy_header_timeout_ms;
	long handoff_timeout_ms;
	const struct filter *filter;      /* at connect, before the greeting; may be NULL */
	const char *hostname;
};

struct ips_server;

struct ips_server *ips_server_new(struct event_base *base, const struct ips_ops *ops,
				  const void *env, const struct ips_config *cfg);
/* addr numeric; backend: /unix/path or host:port ([v6]:port). 0 or -1 with *error_r. */
int ips_server_listen_tcp(struct ips_server *srv, const char *addr, unsigned port, char **error_r);
int ips_server_listen_backend(struct ips_server *srv, const char *spec, char **error_r);
/* Client names (mc_resolve.h) for the connections accepted from now on:
 * looked up before the filter and the greeting when the resolver's mode is
 * yes, or when-needed and the filter uses names. NULL = no lookups. */
void ips_server_set_resolver(struct ips_server *srv, struct mc_resolver *resolver);
void ips_server_stop_listening(struct ips_server *srv);
unsigned ips_server_connections(const struct ips_server *srv);
void ips_server_free(struct ips_server **srv);

/* ----------------------------------------------------------------------
 * The setup IMAP and POP share (imap_pop_service.c): what both read alike
 * from sealpost.conf, and each connection's refs of mailcore's current
 * tables snapshot and directory. Only the operator's configuration is read
 * here; nothing from the network.
 * -------------------------------------------------------------------- */

struct ips_service {
	struct filter *filter;            /* the service's access filter (owned) */
	const struct filter *env_filter;  /* filter, or NULL when it has no rules */
	char *store_root, *hostname;      /* owned */
	const char *const *admins;        /* store.admins (the conf's) */
	size_t n_admins;
	int plaintext_min_cipher;         /* service.<name>.plaintextmincipher */
	bool starttls;                    /* a handoff socket and service.<name>.starttls */
	unsigned max_auth_failures;
	struct ips_server *ips;           /* owned; made by ips_service_listen */
};

/* Reads mailcore.store (absolute), the access filter of service
 * ("imap"/"pop") and the shared login settings into *svc. 0, or -1 with
 * *error_r (caller frees) and nothing left to free. */
int ips_service_init(struct ips_service *svc, const struct sp_conf *conf, const char *service,
		     const char *hostname, char **error_r);
/* Makes svc->ips for ops/env (env must outlive it) and listens on
 * mailcore.listenaddr x service.<name>.port and service.<name>.backend.
 * 0, or -1 with *error_r; either way ips_service_fini frees what was made. */
int ips_service_listen(struct ips_service *svc, struct event_base *base,
		       const struct sp_conf *conf, const char *service, const struct ips_ops *ops,
		       const void *env, char **error_r);
void ips_service_fini(struct ips_service *svc);

/* One connection's refs of *tables_slot and *dir_slot (NULL slots or
 * values: none); with tables, *users_r becomes that snapshot's users.
 * ips_snapshot_drop releases both. */
void ips_snapshot_take(struct dir_tables *const *tables_slot, struct dir *const *dir_slot,
		       struct dir_tables **tables_r, struct dir **dir_r,
		       const struct dir_users **users_r);
void ips_snapshot_drop(struct dir_tables **tables, struct dir **dir);

#endif
