/* STARTTLS handoff, client side (common/handoff.h): mailcore gives tlsd a
 * connected client socket and gets back the plaintext end of a socketpair
 * plus the TLS facts. Two calls so the caller's event loop never blocks:
 * start (connect + send, both immediate on a local unix socket) and finish
 * (read the reply once the fd is readable). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "common/frame.h"
#include "common/handoff.h"
#include "common/xalloc.h"

#define HANDOFF_FINISH_TIMEOUT_S 5

static int copy_addr(struct sockaddr_storage *dst, const struct sockaddr *sa, socklen_t len)
{
	if (sa == NULL || len > sizeof(*dst) || len < sizeof(sa_family_t))
		return -1;
	if (sa->sa_family == AF_INET && len < sizeof(struct sockaddr_in))
		return -1;
	if (sa->sa_family == AF_INET6 && len < sizeof(struct sockaddr_in6))
		return -1;
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return -1;
	memset(dst, 0, sizeof(*dst));
	memcpy(dst, sa, len);
	return 0;
}

int sp_handoff_start(const char *socket_path, const char *service, int client_fd,
		     const struct sockaddr *client, socklen_t client_len,
		     const struct sockaddr *local, socklen_t local_len, char **error_r)
{
	struct sp_proxy_info info;
	struct sockaddr_un sun;
	struct sp_msgbuf b;
	uint8_t hdr[SP_PP2_HDR_MAX];
	int hlen, fd, r;

	memset(&info, 0, sizeof(info));
	if (copy_addr(&info.src, client, client_len) < 0 || copy_addr(&info.dst, local, local_len) < 0 ||
	    info.src.ss_family != info.dst.ss_family) {
		*error_r = sp_xstrdup("handoff: client and local must be IPv4 or IPv6 addresses of one family");
		return -1;
	}
	if (service == NULL || service[0] == '\0' || client_fd < 0) {
		*error_r = sp_xstrdup("handoff: service and client fd required");
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (socket_path == NULL || strlen(socket_path) >= sizeof(sun.sun_path)) {
		*error_r = sp_xstrdup("handoff: bad socket path");
		return -1;
	}
	memcpy(sun.sun_path, socket_path, strlen(socket_path) + 1);
	hlen = sp_proxy2_encode(&info, hdr, sizeof(hdr));
	if (hlen < 0) {
		*error_r = sp_xstrdup("handoff: cannot encode the addresses");
		return -1;
	}
	sp_msgbuf_init(&b, SP_HANDOFF_MAX_MSG);
	sp_msg_put_u8(&b, SP_HANDOFF_VERSION);
	sp_msg_put_u8(&b, SP_HANDOFF_REQ);
	sp_msg_put_str(&b, service);
	sp_msg_put_bytes(&b, hdr, (size_t)hlen);
	if (sp_msgbuf_finish(&b) < 0) {
		sp_msgbuf_release(&b);
		*error_r = sp_xstrdup("handoff: request too large");
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sp_msgbuf_release(&b);
		*error_r = sp_xasprintf("handoff: socket: %s", strerror(errno));
		return -1;
	}
	do
		r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		/* EAGAIN on a unix socket: tlsd's backlog is full */
		*error_r = sp_xasprintf("handoff: connect %s: %s", socket_path, strerror(errno));
		sp_msgbuf_release(&b);
		close(fd);
		return -1;
	}
	if (sp_fd_send(fd, client_fd, b.data, b.len) < 0) {
		*error_r = sp_xasprintf("handoff: send: %s", strerror(errno));
		sp_msgbuf_release(&b);
		close(fd);
		return -1;
	}
	sp_msgbuf_release(&b);
	return fd;
}

/* Reads one whole reply frame; the fd must come with its first bytes. */
static int read_reply(int hfd, struct sp_frame_reader *rd, const uint8_t **body_r, size_t *len_r,
		      int *fd_r, char **error_r)
{
	uint8_t buf[SP_HANDOFF_MAX_MSG + SP_FRAME_HDR];
	const char *err;
	bool first = true;

	for (;;) {
		int got = -1, r;
		ssize_t n = sp_fd_recv(hfd, &got, buf, sizeof(buf));

		if (n < 0) {
			*error_r = sp_xasprintf("handoff: receive: %s",
						errno == EAGAIN ? "timed out" : strerror(errno));
			return -1;
		}
		if (got >= 0) {
			if (!first || *fd_r >= 0) {
				close(got);
				*error_r = sp_xstrdup("handoff: malformed reply (fd out of place)");
				return -1;
			}
			*fd_r = got;
		}
		first = false;
		if (n == 0) {
			*error_r = sp_xstrdup("handoff: tlsd closed without a reply");
			return -1;
		}
		if (sp_frame_reader_feed(rd, buf, (size_t)n, &err) < 0 ||
		    (r = sp_frame_reader_next(rd, body_r, len_r, &err)) < 0) {
			*error_r = sp_xasprintf("handoff: malformed reply (%s)", err);
			return -1;
		}
		if (r == 1) {
			if (sp_frame_reader_pending(rd) != 0) {
				*error_r = sp_xstrdup("handoff: malformed reply (trailing bytes)");
				return -1;
			}
			return 0;
		}
	}
}

int sp_handoff_finish(int hfd, int *plain_fd_r, struct sp_proxy_info *facts, char **error_r)
{
	struct sp_frame_reader *rd = sp_frame_reader_new(SP_HANDOFF_MAX_MSG);
	struct timeval tv = { HANDOFF_FINISH_TIMEOUT_S, 0 };
	const uint8_t *body, *hdr;
	struct sp_msgrd r;
	size_t len, hlen = 0;
	int fd = -1, flags, n, ret = -1;
	const char *why;
	uint8_t version, type;

	*plain_fd_r = -1;
	/* The caller saw hfd readable, so the reply is there; a bounded
	 * blocking read covers a reply split across segments. */
	flags = fcntl(hfd, F_GETFL);
	if (rd == NULL || flags < 0 || fcntl(hfd, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
	    setsockopt(hfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		*error_r = sp_xasprintf("handoff: %s", strerror(errno));
		goto out;
	}
	if (read_reply(hfd, rd, &body, &len, &fd, error_r) < 0)
		goto out;
	sp_msgrd_init(&r, body, len);
	version = sp_msg_get_u8(&r);
	type = sp_msg_get_u8(&r);
	if (r.error || version != SP_HANDOFF_VERSION) {
		*error_r = sp_xstrdup("handoff: malformed reply (version)");
		goto out;
	}
	if (type == SP_HANDOFF_ERROR) {
		char reason[256];

		sp_msg_get_str(&r, reason, sizeof(reason));
		if (!sp_msgrd_done(&r) || fd >= 0)
			*error_r = sp_xstrdup("handoff: malformed error reply");
		else
			*error_r = sp_xasprintf("handoff refused by tlsd: %s", reason);
		goto out;
	}
	if (type != SP_HANDOFF_OK) {
		*error_r = sp_xstrdup("handoff: malformed reply (type)");
		goto out;
	}
	hdr = sp_msg_get_bytes(&r, SP_PP2_HDR_MAX, &hlen);
	if (!sp_msgrd_done(&r)) {
		*error_r = sp_xstrdup("handoff: malformed reply (lengths)");
		goto out;
	}
	n = sp_proxy2_decode(hdr, hlen, facts, &why);
	if (n <= 0 || (size_t)n != hlen || !facts->tls) {
		*error_r = sp_xasprintf("handoff: bad facts in the reply (%s)",
					n < 0 ? why : "incomplete or without TLS");
		goto out;
	}
	if (fd < 0) {
		*error_r = sp_xstrdup("handoff: reply without the plaintext socket");
		goto out;
	} else {
		struct stat st;

		if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			*error_r = sp_xstrdup("handoff: the reply's fd is not a socket");
			goto out;
		}
	}
	*plain_fd_r = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	sp_frame_reader_free(&rd);
	close(hfd);
	return ret;
}
