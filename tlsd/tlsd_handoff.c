/* STARTTLS handoff, tlsd's side (common/handoff.h): a worker accepts on the
 * handoff socket, reads exactly one request frame with exactly one fd,
 * validates both, and starts a TLS connection on the fd whose plaintext end
 * goes back in the reply (tlsd_conn.c). A malformed request gets an ERROR
 * reply when possible, is logged, and closed; nothing the peer sends can
 * crash or wedge the worker. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "common/frame.h"
#include "common/handoff.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "tlsd/tlsd_int.h"

#define TLSD_HANDOFF_READ_TIMEOUT_S 5
#define TLSD_HANDOFF_ACCEPT_BATCH 16

/* One connection on the handoff socket until its request is read. */
struct hoff_req {
	struct tlsd_worker *w;
	int fd;
	int client_fd;
	struct event *ev;
	struct sp_frame_reader *rd;
};

static void req_free(struct hoff_req *h, bool close_fds)
{
	if (close_fds) {
		close(h->fd);
		if (h->client_fd >= 0)
			close(h->client_fd);
	}
	event_free(h->ev);
	sp_frame_reader_free(&h->rd);
	h->w->handoff_pending--;
	tlsd_worker_conn_gone(h->w);
	free(h);
}

static void req_fail(struct hoff_req *h, const char *why)
{
	struct sp_msgbuf b;

	sp_log(SP_LOG_WARN, "handoff_refused", "worker=%d reason=\"%s\"", h->w->index, why);
	sp_msgbuf_init(&b, SP_HANDOFF_MAX_MSG);
	sp_msg_put_u8(&b, SP_HANDOFF_VERSION);
	sp_msg_put_u8(&b, SP_HANDOFF_ERROR);
	sp_msg_put_str(&b, why);
	if (sp_msgbuf_finish(&b) == 0)
		(void)sp_fd_send(h->fd, -1, b.data, b.len);  /* best effort: it may be gone */
	sp_msgbuf_release(&b);
	req_free(h, true);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port &&
		       memcmp(&x->sin_addr, &y->sin_addr, sizeof(x->sin_addr)) == 0;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

/* The fd must be a connected TCP stream socket whose addresses are the ones
 * the request states. Returns NULL or the reason. */
static const char *check_client_fd(int fd, const struct tlsd_handoff_req *req)
{
	struct stat st;
	struct sockaddr_storage peer, local;
	socklen_t len;
	int type = 0;
	int flags;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return "the fd is not a socket";
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
		return "the fd is not a stream socket";
	memset(&peer, 0, sizeof(peer));
	memset(&local, 0, sizeof(local));
	len = sizeof(peer);
	if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
		return "the fd is not a connected socket";
	len = sizeof(local);
	if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
		return "the fd has no local address";
	if (!same_addr(&peer, &req->addrs.src) || !same_addr(&local, &req->addrs.dst))
		return "the addresses do not match the socket";
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return "cannot make the fd non-blocking";
	return NULL;
}

static void req_process(struct hoff_req *h, const uint8_t *body, size_t len)
{
	struct tlsd_worker *w = h->w;
	const struct tlsd_config *cfg = tlsd_ctxset_config(w->current);
	const struct tlsd_service *svc;
	struct tlsd_handoff_req req;
	const char *why;
	int hfd, cfd;

	if (tlsd_handoff_parse(body, len, &req, &why) < 0) {
		req_fail(h, why);
		return;
	}
	if (h->client_fd < 0) {
		req_fail(h, "no fd came with the request");
		return;
	}
	svc = tlsd_config_service(cfg, req.service);
	if (svc == NULL || svc->n_nicknames == 0 || !svc->starttls) {
		req_fail(h, "unknown service or no STARTTLS for it");
		return;
	}
	if ((why = check_client_fd(h->client_fd, &req)) != NULL) {
		req_fail(h, why);
		return;
	}
	sp_log(SP_LOG_DEBUG, "handoff", "worker=%d service=%s", h->w->index, req.service);
	hfd = h->fd;
	cfd = h->client_fd;
	req_free(h, false);
	/* the TLS connection takes both fds (and counts itself) */
	tlsd_conn_start(w, req.service, cfd, hfd, &req.addrs);
}

static void on_req(evutil_socket_t fd, short what, void *arg)
{
	struct hoff_req *h = arg;
	uint8_t buf[SP_HANDOFF_MAX_MSG + SP_FRAME_HDR];
	const uint8_t *body;
	const char *err;
	size_t len;
	int got_fd = -1, r;
	ssize_t n;

	if (what & EV_TIMEOUT) {
		req_fail(h, "request not received in time");
		return;
	}
	n = sp_fd_recv(h->fd, &got_fd, buf, sizeof(buf));
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		req_fail(h, errno == EBADMSG ? "more than one fd, or bad control data"
					       : "receive failed");
		return;
	}
	if (got_fd >= 0) {
		if (h->client_fd >= 0) {
			close(got_fd);
			req_fail(h, "more than one fd");
			return;
		}
		h->client_fd = got_fd;
	}
	if (n == 0) {
		sp_log(SP_LOG_INFO, "handoff_eof", "worker=%d: peer closed before a whole request",
		       h->w->index);
		req_free(h, true);
		return;
	}
	if (sp_frame_reader_feed(h->rd, buf, (size_t)n, &err) < 0) {
		req_fail(h, err);
		return;
	}
	r = sp_frame_reader_next(h->rd, &body, &len, &err);
	if (r < 0) {
		req_fail(h, err);
		return;
	}
	if (r == 0)
		return;  /* more to come; the timeout bounds the wait */
	if (sp_frame_reader_pending(h->rd) != 0) {
		req_fail(h, "bytes after the request");
		return;
	}
	req_process(h, body, len);
}

void tlsd_handoff_accept(struct tlsd_worker *w, int listen_fd)
{
	for (int i = 0; i < TLSD_HANDOFF_ACCEPT_BATCH && !w->stopping; i++) {
		struct hoff_req *h;
		struct timeval tv = { TLSD_HANDOFF_READ_TIMEOUT_S, 0 };
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				sp_log(SP_LOG_ERR, "accept", "socket=handoff err=\"%s\"", strerror(errno));
			return;
		}
		if (tlsd_worker_admit(w, fd, "handoff") < 0)
			continue;
		/* Ownership: h owns fd (and later the client fd) until it either
		 * fails (req_fail/req_free close both) or hands both to
		 * tlsd_conn_start. */
		h = sp_xcalloc(1, sizeof(*h));
		h->w = w;
		h->fd = fd;
		h->client_fd = -1;
		h->rd = sp_frame_reader_new(SP_HANDOFF_MAX_MSG);
		h->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_req, h);
		if (h->rd == NULL || h->ev == NULL)
			abort();  /* out of memory, as sp_xmalloc would */
		w->handoff_pending++;
		event_add(h->ev, &tv);
	}
}
