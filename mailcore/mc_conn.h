/* Private to mailcore: the connection core the SMTP server (smtp_server.c)
 * and the IMAP/POP server (imap_pop_server.c) share (mc_conn.c): a
 * connection's socket and events, the PROXY v2 header tlsd writes on the
 * backend listeners, the STARTTLS handoff to tlsd, the read loop with its
 * budget, the write loop with backpressure, and the listener table. Each
 * server keeps its own connection struct (with a struct mc_conn_io in it),
 * its ownership rule and its log lines; the session is reached through
 * struct mc_session_ops. */
#ifndef MAILCORE_MC_CONN_H
#define MAILCORE_MC_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/proxy2.h"

/* Wants bits: the same values in every protocol (SMTP_WANT_*, IMAP_WANT_*, POP_WANT_*) */
#define MC_WANT_READ 0x1
#define MC_WANT_CLOSE 0x2
#define MC_WANT_STARTTLS 0x4

/* The session calls the core makes for moving bytes. */
struct mc_session_ops {
	size_t (*input_room)(const void *s);
	size_t (*feed)(void *s, const void *data, size_t len);
	void (*process)(void *s);
	void (*eof)(void *s);
	const uint8_t *(*output)(const void *s, size_t *len_r);
	void (*consumed)(void *s, size_t n);
	unsigned (*wants)(const void *s);
	long (*timeout_ms)(const void *s);
};

struct mc_conn_io {
	struct event_base *base;
	int fd;                           /* -1 while tlsd holds the connection */
	struct event *ev_read, *ev_write, *ev_timer, *ev_handoff;
	event_callback_fn on_read, on_write;  /* for the fd events, with arg */
	void *arg;
	struct sockaddr_storage client, local;
	socklen_t client_len, local_len;
	/* backend listener: the PROXY v2 header comes first */
	bool want_proxy;
	uint8_t pbuf[SP_PP2_HDR_MAX];
	size_t plen;
};

/* Arms a timer event ms from now. */
void mc_conn_arm(struct event *ev, long ms);

/* A connection accepted on fd (the io owns it from now on, also on
 * failure): its addresses, a non-blocking socket, the timer (on_timer) and
 * the fd events (on_read, on_write), all with arg. 0, or -1: the caller
 * closes. */
int mc_conn_open(struct mc_conn_io *io, struct event_base *base, evutil_socket_t fd,
		 const struct sockaddr *sa, int salen, event_callback_fn on_read,
		 event_callback_fn on_write, event_callback_fn on_timer, void *arg);
/* A backend listener's connection: the PROXY v2 header is read before
 * anything else (only it may speak of TLS), within timeout_ms. */
void mc_conn_expect_proxy(struct mc_conn_io *io, long timeout_ms);
/* (Re)makes the read and write events for io->fd. 0, or -1. */
int mc_conn_set_fd_events(struct mc_conn_io *io);
/* Frees the events and closes the fds (also a pending handoff's). */
void mc_conn_release(struct mc_conn_io *io);

/* Reads more of the PROXY v2 header (the only source of TLS facts on a
 * backend listener). On MC_PROXY_DONE the addresses are the header's,
 * want_proxy is false, *info holds the facts and *used_r the header's
 * length in pbuf (the bytes after it are the client's). *why_r: for
 * CLOSED the reason, for MALFORMED the decoder's (may be NULL). */
enum mc_proxy {
	MC_PROXY_MORE,
	MC_PROXY_CLOSED,     /* eof or read error before the header ended */
	MC_PROXY_TOO_LONG,
	MC_PROXY_MALFORMED,
	MC_PROXY_LOCAL,      /* PROXY LOCAL: tlsd's health check */
	MC_PROXY_DONE,
};
enum mc_proxy mc_conn_proxy_read(struct mc_conn_io *io, struct sp_proxy_info *info,
				 size_t *used_r, const char **why_r);

/* STARTTLS (RFC 3207, RFC 2595): the reply is written; the client fd goes
 * to tlsd on socket for service, and on_handoff(arg) runs when tlsd
 * answers or timeout_ms passed. Whatever the client sent after the command
 * is still in the socket and becomes part of the TLS handshake (which then
 * fails): it is never read as a command. 0; -1 and *error_r (may be NULL,
 * caller frees) when tlsd could not be asked; -2 when its answer cannot
 * be watched. The caller closes on failure. */
int mc_conn_handoff_start(struct mc_conn_io *io, const char *socket, const char *service,
			  long timeout_ms, event_callback_fn on_handoff, void *arg, char **error_r);
/* tlsd's answer on hfd (what: the event). Only this reply can make a
 * session TLS: *facts has tls set. */
enum mc_handoff {
	MC_HANDOFF_OK,
	MC_HANDOFF_TIMEOUT,
	MC_HANDOFF_FAILED,    /* *error_r: why (may be NULL, caller frees) */
	MC_HANDOFF_NO_WATCH,  /* the plaintext socket cannot be watched */
};
enum mc_handoff mc_conn_handoff_finish(struct mc_conn_io *io, evutil_socket_t hfd, short what,
				       struct sp_proxy_info *facts, char **error_r);

/* Reads what the session has room for, up to a budget per callback (so
 * one client cannot starve the rest), feeding it and re-arming the
 * session's timer; eof goes to the session. */
void mc_conn_read(struct mc_conn_io *io, const struct mc_session_ops *ops, void *session);
/* Writes what the session has queued (one write for a pipelined batch)
 * and runs input held back by backpressure once the output drained. */
enum mc_flush {
	MC_FLUSH_WAIT,         /* re-arm with mc_conn_rearm */
	MC_FLUSH_WRITE_ERROR,
	MC_FLUSH_CLOSE,        /* the session wants the connection closed */
	MC_FLUSH_STARTTLS,     /* the session wants the handoff to tlsd */
};
enum mc_flush mc_conn_flush(struct mc_conn_io *io, const struct mc_session_ops *ops,
			    void *session);
/* Arms the write event while output waits, the read event while the
 * session wants input and has room. */
void mc_conn_rearm(struct mc_conn_io *io, const struct mc_session_ops *ops, const void *session);

/* Listening sockets: a slot's address is the arg its accept callback gets. */
#define MC_MAX_LISTENERS 32
struct mc_listener {
	struct evconnlistener *lev;
	int kind;             /* the server's: enum smtp_listener, or backend or not */
	void *srv;
};
/* Adds fd (always taken: closed on failure) to slots (n of MC_MAX_LISTENERS
 * used). 0, or -1 with *error_r. */
int mc_listener_add(struct mc_listener *slots, size_t *n, struct event_base *base,
		    evconnlistener_cb on_accept, int kind, void *srv, int fd, char **error_r);
void mc_listeners_stop(struct mc_listener *slots, size_t *n);

#endif
