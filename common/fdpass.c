/* Passing one descriptor plus a small message over a unix socket with
 * SCM_RIGHTS (unix(7), cmsg(3)): the STARTTLS handoff and the master giving
 * listeners to its children. A receiver never keeps a descriptor it did not
 * expect: surplus ones are closed before the error is reported. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include "common/fdpass.h"

/* How long sp_fd_send waits to finish a message the kernel took only part
 * of (stream sockets only): the peer is our own process, so this is a
 * bound against a wedged peer, not a tuning knob. */
#define SP_FDPASS_TAIL_TIMEOUT_MS 10000
/* Room for this many descriptors in the receive control buffer, so that a
 * peer sending a few too many yields EBADMSG with all of them closed rather
 * than a truncation the kernel resolves silently. */
#define SP_FDPASS_RECV_FDS 8

static ssize_t sendmsg_retry(int sock, const struct msghdr *msg)
{
	ssize_t n;

	do {
		/* MSG_NOSIGNAL: a vanished peer is EPIPE here, not a SIGPIPE */
		n = sendmsg(sock, msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n;
}

/* Sends the rest of a message whose first part (and the descriptor) already
 * went: the message must stay whole on the stream, so wait for room. */
static int send_tail(int sock, const uint8_t *p, size_t len)
{
	while (len > 0) {
		struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = sendmsg_retry(sock, &msg);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { .fd = sock, .events = POLLOUT };
			int rc;

			do {
				rc = poll(&pfd, 1, SP_FDPASS_TAIL_TIMEOUT_MS);
			} while (rc < 0 && errno == EINTR);
			if (rc < 0)
				return -1;
			if (rc == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			continue;
		}
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sp_fd_send(int sock, int fd, const void *data, size_t len)
{
	union {
		struct cmsghdr align;  /* cmsg(3): the buffer must be aligned for it */
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (len < 1 || len > SP_FDPASS_MAX_DATA) {
		errno = EMSGSIZE;
		return -1;
	}
	if (data == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (fd >= 0) {
		struct cmsghdr *cmsg;

		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	n = sendmsg_retry(sock, &msg);
	if (n < 0)
		return -1;
	if (n == 0) {
		errno = EIO;
		return -1;
	}
	/* The descriptor rode on the first byte; the rest goes without it. */
	return send_tail(sock, (const uint8_t *)data + n, len - (size_t)n);
}

/* Closes every descriptor carried by SCM_RIGHTS messages in msg; returns
 * how many there were and the first one in *first_r. */
static size_t collect_fds(struct msghdr *msg, int *first_r, bool close_all)
{
	size_t count = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		size_t nfds;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfds; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (count == 0)
				*first_r = fd;
			if (close_all)
				(void)close(fd);
			count++;
		}
	}
	return count;
}

ssize_t sp_fd_recv(int sock, int *fd_r, void *buf, size_t cap)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SP_FDPASS_RECV_FDS)];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	size_t nfds;
	int fd = -1;

	*fd_r = -1;
	if (buf == NULL || cap == 0) {
		errno = EINVAL;
		return -1;
	}
	memset(&control, 0, sizeof(control));
	msg.msg_control = control.buf;
	msg.msg_controllen = sizeof(control.buf);
	do {
		/* MSG_CMSG_CLOEXEC: no window in which a fork+exec elsewhere in
		 * the process could inherit the descriptor */
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;

	nfds = collect_fds(&msg, &fd, false);
	/* More than one descriptor, or control data cut short (the kernel has
	 * then dropped some descriptors we will never see): refuse them all. */
	if (nfds > 1 || (msg.msg_flags & MSG_CTRUNC)) {
		collect_fds(&msg, &fd, true);
		errno = EBADMSG;
		return -1;
	}
	/* A datagram/seqpacket message longer than cap lost its tail. */
	if (msg.msg_flags & MSG_TRUNC) {
		if (fd >= 0)
			(void)close(fd);
		errno = EMSGSIZE;
		return -1;
	}
	/* Our sender never sends a descriptor without data; 0 bytes is EOF. */
	if (n == 0 && fd >= 0) {
		(void)close(fd);
		fd = -1;
	}
	*fd_r = fd;
	return n;
}
