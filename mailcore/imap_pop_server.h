/* The event-loop side shared by the IMAP and POP servers (imap_pop_server.c):
 * listeners (plain ports and the PROXY v2 backend tlsd relays IMAPS/POPS
 * to), connections, timeouts, the client access filter at connect, and the
 * STARTTLS handoff to tlsd. Each protocol plugs its session in through a
 * table of functions (imap_server.c, pop_server.c). Private to mailcore. */
#ifndef MAILCORE_IMAP_POP_SERVER_H
#define MAILCORE_IMAP_POP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/proxy2.h"

struct event_base;
struct filter;
struct mc_resolver;

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

/* Wants bits: the same values in both protocols */
#define IPS_WANT_READ 0x1
#define IPS_WANT_CLOSE 0x2
#define IPS_WANT_STARTTLS 0x4

struct ips_ops {
	const char *service;        /* "imap" / "pop": logs, handoff, filter */
	const char *refused;        /* sent when the access filter refuses, then close */
	const char *busy;           /* sent when max_connections is reached */
	void *(*session_new)(const void *env, const struct ips_facts *f);
	void (*session_free)(void *s);
	size_t (*input_room)(const void *s);
	size_t (*feed)(void *s, const void *data, size_t len);
	void (*process)(void *s);
	void (*eof)(void *s);
	const uint8_t *(*output)(const void *s, size_t *len_r);
	void (*consumed)(void *s, size_t n);
	unsigned (*wants)(const void *s);
	void (*tls_ready)(void *s, const struct sp_proxy_info *facts);
	long (*timeout_ms)(const void *s);
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

#endif
