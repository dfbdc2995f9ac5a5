/* Private to mailcore: the listening sockets, bound once by the master and
 * shared by every worker it forks. The servers (smtp_server.c,
 * imap_pop_server.c) ask for a listener by address. Before
 * mc_listen_freeze() (the master's one configuration pass) an ask binds and
 * listens, and the same address twice is refused as bind() would; after it
 * (in a worker, after fork()) an ask gets a duplicate of the socket bound. */
#ifndef MAILCORE_MC_LISTEN_H
#define MAILCORE_MC_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#define MC_LISTEN_MAX 64   /* listening sockets in all */

/* A listening TCP socket on addr (numeric) and port. Returns an fd the
 * caller owns (non-blocking, close-on-exec), or -1 with *error_r. */
int mc_listen_tcp(const char *addr, unsigned port, char **error_r);

/* A listening socket for a backend spec: a unix socket path (an old socket
 * there is replaced, anything else refused; mode 0660) or host:port /
 * [v6]:port. Returns an fd the caller owns, or -1 with *error_r. */
int mc_listen_backend(const char *spec, char **error_r);

/* From now on an address that is not bound yet is an error: a worker only
 * registers what the master bound before it dropped privileges. */
void mc_listen_freeze(void);

/* The registry's own fds (a forked worker keeps them open); returns the count. */
size_t mc_listen_fds(const int **fds_r);

/* Closes the registry's fds; with unlink_paths, removes the unix sockets
 * too (the master, at its exit; never a worker). */
void mc_listen_close_all(bool unlink_paths);

#endif
