/* Private to tlsd: the parsed configuration, the per-worker TLS contexts, the
 * control protocol between the master and its workers, and the worker's
 * connection machinery. Nothing outside tlsd/ includes this. */
#ifndef TLSD_INT_H
#define TLSD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "common/conf.h"
#include "common/proxy2.h"
#include "tlsd/tlsd.h"

struct tlsd_keyclient;

/* ---- tlsd_addr.c: "host:port", "[v6]:port", "/unix/path" or "unix:/path" ---- */
struct tlsd_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[128];  /* for logs */
};
int tlsd_addr_parse(const char *spec, struct tlsd_addr *addr, const char **error_r);
/* host (NULL or "" = all addresses) + port; numeric only, no DNS. */
int tlsd_addr_listen(const char *host, int port, struct tlsd_addr *addr, const char **error_r);
void tlsd_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap);

/* ---- tlsd_config.c: sealpost.conf -> what tlsd runs ---- */
enum tlsd_clientauth { TLSD_CLIENTAUTH_NONE, TLSD_CLIENTAUTH_REQUEST, TLSD_CLIENTAUTH_REQUIRE };

struct tlsd_policy {
	int min_version;         /* TLS1_2_VERSION or TLS1_3_VERSION */
	char *ciphers;           /* TLS 1.2 cipher list */
	char *suites;            /* TLS 1.3 suites */
	char *groups;
	long cache_size;         /* 0 = no server session cache */
	enum tlsd_clientauth clientauth;
};

struct tlsd_service {
	char name[TLSD_SERVICE_NAME_MAX];
	int sslport;             /* 0 = no implicit-TLS listener */
	char *listen_host;       /* NULL = all addresses */
	bool has_backend;
	struct tlsd_addr backend;
	char **nicknames;
	size_t n_nicknames;
	bool starttls;           /* accepts handoffs */
	struct tlsd_policy policy;
};

struct tlsd_config {
	char *path;                  /* the file it came from */
	char *certdb_dir;
	char *user, *group;          /* NULL = keep the starting identity */
	char *log_path;
	int log_level;
	int workers;
	char *keyd_path;
	char *pidfile;
	char *handoff_socket;
	long handshake_timeout_ms, idle_timeout_ms, shutdown_timeout_ms, keyop_timeout_ms;
	long ticket_rotation_ms, restart_backoff_max_ms;
	long max_connections;
	size_t relay_buffer;
	struct tlsd_service *services;
	size_t n_services;
};

/* Parses text (the whole file, already read) into a config. Caller frees. */
struct tlsd_config *tlsd_config_parse(const char *path, const char *text, size_t len,
				      char **error_r);
/* Reads path whole (bounded to 1 MiB). *text_r: caller frees. */
int tlsd_config_read_file(const char *path, char **text_r, size_t *len_r, char **error_r);
void tlsd_config_free(struct tlsd_config **cfg);
const struct tlsd_service *tlsd_config_service(const struct tlsd_config *cfg, const char *name);
/* 0 when both have the same listeners (service name, address, port). */
int tlsd_config_same_listeners(const struct tlsd_config *a, const struct tlsd_config *b,
			       char **error_r);

/* ---- tlsd_ctx.c: the SSL_CTXs of one configuration, per worker ---- */
/* One set per configuration generation. Refcounted: the worker holds one
 * reference for "current", each connection holds one for its lifetime, so a
 * reload never pulls a context from under a live connection. The set owns
 * its config. */
struct tlsd_ctxset;

/* kc NULL: validation only (the master): everything is loaded and checked
 * but no private key is attached. Takes ownership of cfg on success. */
struct tlsd_ctxset *tlsd_ctxset_new(struct tlsd_config *cfg, struct tlsd_keyclient *kc,
				    char **error_r);
void tlsd_ctxset_ref(struct tlsd_ctxset *set);
void tlsd_ctxset_unref(struct tlsd_ctxset **set);
const struct tlsd_config *tlsd_ctxset_config(const struct tlsd_ctxset *set);
/* The SSL_CTX for a service (SNI may switch to another of the service's
 * contexts during the handshake), or NULL if it has no certificates. */
SSL_CTX *tlsd_ctxset_ctx(const struct tlsd_ctxset *set, const char *service);
/* Connection verify result slot: the first certificate error the verify
 * callback saw (X509_V_OK if none). */
long tlsd_ctx_verify_result(SSL *ssl);
/* The master creates the ticket key seed once, before forking workers, so
 * tickets issued by one worker decrypt in every other. */
int tlsd_tickets_init(char **error_r);

/* ---- tlsd_facts.c ---- */
/* Fills the TLS facts of an established connection (addresses untouched). */
void tlsd_facts_from_ssl(SSL *ssl, struct sp_proxy_info *info);
/* Logs and empties OpenSSL's error queue; returns a short reason for logs. */
const char *tlsd_ssl_errors(char *buf, size_t cap);

/* ---- tlsd_ctl.c: master <-> worker control channel (frames of frame.h) ----
 * body: u8 version, u8 type, then per type:
 *   KEYD_FD    (master->worker) : nothing; the keyd channel fd rides along
 *   RELOAD     (master->worker) : u64 generation; the master has validated
 *                                 the config file, the worker reads it again
 *   RELOADED   (worker->master) : u64 generation, u8 ok, str error */
#define TLSD_CTL_VERSION 1
#define TLSD_CTL_KEYD_FD 1
#define TLSD_CTL_RELOAD 2
#define TLSD_CTL_RELOADED 3
#define TLSD_CTL_MAX_BODY 1024

struct tlsd_ctl_msg {
	uint8_t type;
	uint64_t generation;
	uint8_t ok;
	char error[512];
};
/* Sends one control message in one sendmsg (it is small): returns 0 or -1
 * with errno. fd -1 = none. */
int tlsd_ctl_send(int sock, const struct tlsd_ctl_msg *msg, int fd);
/* Parses a body. Returns 0 or -1 (*error_r static). */
int tlsd_ctl_parse(const uint8_t *body, size_t len, struct tlsd_ctl_msg *msg, const char **error_r);

/* ---- tlsd_master.c ---- */
/* Runs the daemon; returns the exit status. */
int tlsd_master_run(const char *conf_path, bool foreground);

/* ---- tlsd_worker.c ---- */
struct tlsd_listener {
	int fd;
	char service[TLSD_SERVICE_NAME_MAX];
	struct event *ev;
};

/* Runs a worker until it stops; returns the exit status. Called in the
 * forked child: fds are the master's listeners (shared), ctl_fd the control
 * channel, keyd_fd the first keyd channel (-1 if keyd is not up). */
int tlsd_worker_run(int index, struct tlsd_config *cfg,
		    struct tlsd_listener *listeners, size_t n_listeners, int handoff_fd,
		    int ctl_fd, int keyd_fd);

/* ---- tlsd_conn.c / tlsd_relay.c: one client connection ---- */
struct tlsd_worker;
struct tlsd_conn;

/* Starts TLS on client_fd (accepted or handed off). hoff_fd >= 0: a STARTTLS
 * handoff; the reply goes there and the plaintext goes to a socketpair end
 * instead of a backend. Takes ownership of both fds in every case. */
void tlsd_conn_start(struct tlsd_worker *w, const char *service, int client_fd, int hoff_fd,
		     const struct sp_proxy_info *addrs);
/* Graceful stop: close every connection now (the shutdown deadline). */
void tlsd_conn_close_all(struct tlsd_worker *w);

/* Worker state the connection code needs. */
struct tlsd_conn_list {
	struct tlsd_conn *head;
	size_t count;
};

struct tlsd_worker {
	int index;
	struct event_base *base;
	struct tlsd_keyclient *kc;
	struct tlsd_ctxset *current;  /* one reference */
	struct tlsd_conn_list conns;
	bool stopping;
	/* connection cap accounting, for the log line */
	unsigned long cap_dropped;
	size_t handoff_pending;  /* handoff requests being read */
	struct event *ev_stop_check;
};

/* Called by the connection code when a connection is freed. */
void tlsd_worker_conn_gone(struct tlsd_worker *w);
/* Accounting before tlsd_conn_start: 0 = go, -1 = over the cap (fd closed). */
int tlsd_worker_admit(struct tlsd_worker *w, int fd, const char *service);

/* ---- tlsd_handoff.c: the handoff socket's server side ---- */
void tlsd_handoff_accept(struct tlsd_worker *w, int listen_fd);

#endif
