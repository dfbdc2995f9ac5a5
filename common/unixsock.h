/* A unix stream socket bound at a path, for the daemons' own sockets
 * (tlsd's handoff socket, mailcore's PROXY v2 backend): an earlier run's
 * socket there is replaced, anything else at the path is refused. */
#ifndef SP_UNIXSOCK_H
#define SP_UNIXSOCK_H

#include <sys/types.h>

/* A bound (not yet listening) socket, non-blocking and close-on-exec, its
 * path chmod'ed to mode. Returns the fd, or -1 with *error_r ("PATH: why",
 * caller frees). */
int sp_unix_bind(const char *path, mode_t mode, char **error_r);

#endif
