/* Passing one file descriptor plus a small message over a unix socket
 * (SCM_RIGHTS), used by the STARTTLS handoff and by the master to hand
 * sockets to its children. */
#ifndef SP_FDPASS_H
#define SP_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* Sends len bytes of data (1..SP_FDPASS_MAX_DATA) and fd (or -1 for none) in
 * one sendmsg. Retries on EINTR. Returns 0, or -1 with errno set (EMSGSIZE for
 * a bad len, EAGAIN on a non-blocking socket that is full). */
#define SP_FDPASS_MAX_DATA 65536
int sp_fd_send(int sock, int fd, const void *data, size_t len);

/* Receives up to cap bytes and at most one fd (*fd_r = -1 if none came).
 * The fd arrives close-on-exec. Extra fds, or truncated control data, are
 * closed and treated as an error (EBADMSG). Returns bytes read (0 = EOF) or
 * -1 with errno set. Retries on EINTR. */
ssize_t sp_fd_recv(int sock, int *fd_r, void *buf, size_t cap);

#endif
