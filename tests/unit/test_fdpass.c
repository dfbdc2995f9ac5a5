/* Unit tests for common/fdpass.c over real socketpairs: a passed pipe end
 * really works on the other side, no-fd and EOF cases, and surplus or
 * truncated descriptors being closed (checked by the pipe's writer getting
 * EPIPE once no read end is left anywhere). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include <cmocka.h>

#include "common/fdpass.h"

static void make_pair(int type, int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
}

static void make_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
}

/* True when every read end of the pipe is closed: the write fails with
 * EPIPE (SIGPIPE ignored for the duration). */
static int pipe_has_no_reader(int wfd)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	ssize_t n;
	int saved;

	assert_int_equal(sigaction(SIGPIPE, &ign, &old), 0);
	n = write(wfd, "x", 1);
	saved = errno;
	assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
	return n < 0 && saved == EPIPE;
}

/* Sends one byte with nfds copies of fd in one SCM_RIGHTS message, as a
 * misbehaving peer would. */
static void raw_send_fds(int sock, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} control;
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cmsg;

	assert_true(nfds <= 16);
	memset(&control, 0, sizeof(control));
	msg.msg_control = control.buf;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	assert_int_equal(sendmsg(sock, &msg, 0), 1);
}

static void test_pass_pipe(void **state)
{
	int sv[2], p[2], fd = -2;
	char buf[16];

	(void)state;
	make_pair(SOCK_STREAM, sv);
	make_pipe(p);
	assert_int_equal(sp_fd_send(sv[0], p[0], "hello", 5), 0);
	assert_int_equal(close(p[0]), 0);  /* only the passed copy is left */
	assert_int_equal(sp_fd_recv(sv[1], &fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(write(p[1], "ping", 4), 4);
	assert_int_equal(read(fd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	close(fd);
	assert_true(pipe_has_no_reader(p[1]));
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_no_fd(void **state)
{
	int sv[2], fd = -2;
	char buf[16];

	(void)state;
	make_pair(SOCK_STREAM, sv);
	assert_int_equal(sp_fd_send(sv[0], -1, "abc", 3), 0);
	assert_int_equal(sp_fd_recv(sv[1], &fd, buf, sizeof(buf)), 3);
	assert_int_equal(fd, -1);
	assert_memory_equal(buf, "abc", 3);
	close(sv[0]);
	close(sv[1]);
}

static void test_eof(void **state)
{
	int sv[2], fd = -2;
	char buf[16];

	(void)state;
	make_pair(SOCK_STREAM, sv);
	close(sv[0]);
	assert_int_equal(sp_fd_recv(sv[1], &fd, buf, sizeof(buf)), 0);
	assert_int_equal(fd, -1);
	close(sv[1]);
}

static void test_two_fds_rejected(void **state)
{
	int sv[2], a[2], b[2], fd = -2;
	int fds[2];
	char buf[16];

	(void)state;
	make_pair(SOCK_STREAM, sv);
	make_pipe(a);
	make_pipe(b);
	fds[0] = a[0];
	fds[1] = b[0];
	raw_send_fds(sv[0], fds, 2);
	close(a[0]);
	close(b[0]);
	errno = 0;
	assert_int_equal(sp_fd_recv(sv[1], &fd, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(fd, -1);
	/* both received copies were closed by sp_fd_recv */
	assert_true(pipe_has_no_reader(a[1]));
	assert_true(pipe_has_no_reader(b[1]));
	close(a[1]);
	close(b[1]);
	close(sv[0]);
	close(sv[1]);
}

/* More descriptors than the control buffer holds: MSG_CTRUNC; the ones that
 * arrived are closed too. */
static void test_truncated_control_rejected(void **state)
{
	int sv[2], p[2], fd = -2;
	int fds[16];
	char buf[16];

	(void)state;
	make_pair(SOCK_STREAM, sv);
	make_pipe(p);
	for (int k = 0; k < 16; k++)
		fds[k] = p[0];
	raw_send_fds(sv[0], fds, 16);
	close(p[0]);
	errno = 0;
	assert_int_equal(sp_fd_recv(sv[1], &fd, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(fd, -1);
	assert_true(pipe_has_no_reader(p[1]));
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

/* A seqpacket message longer than the buffer lost its tail: refused, and
 * the descriptor that came with it closed. */
static void test_seqpacket_truncated(void **state)
{
	int sv[2], p[2], fd = -2;
	char buf[4];

	(void)state;
	make_pair(SOCK_SEQPACKET, sv);
	make_pipe(p);
	assert_int_equal(sp_fd_send(sv[0], p[0], "0123456789", 10), 0);
	close(p[0]);
	errno = 0;
	assert_int_equal(sp_fd_recv(sv[1], &fd, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(fd, -1);
	assert_true(pipe_has_no_reader(p[1]));
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_bad_len(void **state)
{
	static char big[SP_FDPASS_MAX_DATA + 1];
	int sv[2];

	(void)state;
	make_pair(SOCK_STREAM, sv);
	errno = 0;
	assert_int_equal(sp_fd_send(sv[0], -1, big, 0), -1);
	assert_int_equal(errno, EMSGSIZE);
	errno = 0;
	assert_int_equal(sp_fd_send(sv[0], -1, big, sizeof(big)), -1);
	assert_int_equal(errno, EMSGSIZE);
	errno = 0;
	assert_int_equal(sp_fd_send(sv[0], -1, NULL, 1), -1);
	assert_int_equal(errno, EINVAL);
	close(sv[0]);
	close(sv[1]);
}

/* The largest message, with a descriptor, arrives whole. */
static void test_max_len(void **state)
{
	static char out[SP_FDPASS_MAX_DATA], in[SP_FDPASS_MAX_DATA];
	int sv[2], p[2], fd = -2, extra = -2;
	int size = 4 * SP_FDPASS_MAX_DATA;
	size_t got = 0;
	ssize_t n;

	(void)state;
	make_pair(SOCK_STREAM, sv);
	make_pipe(p);
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	for (size_t k = 0; k < sizeof(out); k++)
		out[k] = (char)(k * 7);
	assert_int_equal(sp_fd_send(sv[0], p[0], out, sizeof(out)), 0);
	n = sp_fd_recv(sv[1], &fd, in, sizeof(in));
	assert_true(n > 0);
	assert_true(fd >= 0);
	got = (size_t)n;
	while (got < sizeof(in)) {  /* a stream may deliver it in pieces */
		n = sp_fd_recv(sv[1], &extra, in + got, sizeof(in) - got);
		assert_true(n > 0);
		assert_int_equal(extra, -1);
		got += (size_t)n;
	}
	assert_memory_equal(in, out, sizeof(out));
	close(fd);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_nonblocking_full(void **state)
{
	int sv[2];
	int rc = 0;

	(void)state;
	make_pair(SOCK_STREAM | SOCK_NONBLOCK, sv);
	for (int k = 0; k < 1000000 && rc == 0; k++)
		rc = sp_fd_send(sv[0], -1, "x", 1);
	assert_int_equal(rc, -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	close(sv[0]);
	close(sv[1]);
}

/* MSG_NOSIGNAL: a gone peer is EPIPE, not a dead process. */
static void test_peer_gone_no_sigpipe(void **state)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL }, old;
	int sv[2];

	(void)state;
	assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
	make_pair(SOCK_STREAM, sv);
	close(sv[1]);
	errno = 0;
	assert_int_equal(sp_fd_send(sv[0], -1, "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(sv[0]);
	assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
}

static void test_bad_descriptors(void **state)
{
	int sv[2], fd = -2, nfd;
	char buf[4];

	(void)state;
	make_pair(SOCK_STREAM, sv);
	nfd = dup(sv[0]);
	assert_true(nfd >= 0);
	close(nfd);  /* now certainly not open */
	errno = 0;
	assert_int_equal(sp_fd_send(sv[0], nfd, "x", 1), -1);
	assert_int_equal(errno, EBADF);
	errno = 0;
	assert_int_equal(sp_fd_recv(sv[1], &fd, buf, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(fd, -1);
	errno = 0;
	assert_int_equal(sp_fd_recv(nfd, &fd, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EBADF);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pass_pipe),
		cmocka_unit_test(test_no_fd),
		cmocka_unit_test(test_eof),
		cmocka_unit_test(test_two_fds_rejected),
		cmocka_unit_test(test_truncated_control_rejected),
		cmocka_unit_test(test_seqpacket_truncated),
		cmocka_unit_test(test_bad_len),
		cmocka_unit_test(test_max_len),
		cmocka_unit_test(test_nonblocking_full),
		cmocka_unit_test(test_peer_gone_no_sigpipe),
		cmocka_unit_test(test_bad_descriptors),
	};

	return cmocka_run_group_tests_name("fdpass", tests, NULL, NULL);
}
