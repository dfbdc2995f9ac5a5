/* The connection core of the SMTP and the IMAP/POP servers (mc_conn.h):
 * sockets, events, the PROXY v2 header, the STARTTLS handoff, the read and
 * write loops, the listener table. The servers decide what each outcome
 * means (log, close, hand off); nothing here frees a connection.
 * SECURITY: parses one thing from the network, the PROXY v2 header, and
 * only on the backend listeners tlsd connects to (sp_proxy2_decode, bounded
 * by SP_PP2_HDR_MAX); TLS facts come only from that header or from tlsd's
 * handoff reply. Client bytes go to the session unparsed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/handoff.h"
#include "common/xalloc.h"
#include "mailcore/mc_conn.h"

#define READ_CHUNK 16384
#define READ_BUDGET (256 * 1024) /* per callback, so one client cannot starve the rest */

void mc_conn_arm(struct event *ev, long ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	evtimer_add(ev, &tv);
}

int mc_conn_open(struct mc_conn_io *io, struct event_base *base, evutil_socket_t fd,
		 const struct sockaddr *sa, int salen, event_callback_fn on_read,
		 event_callback_fn on_write, event_callback_fn on_timer, void *arg)
{
	io->base = base;
	io->fd = fd;
	io->on_read = on_read;
	io->on_write = on_write;
	io->arg = arg;
	if (salen > 0 && (size_t)salen <= sizeof(io->client))
		memcpy(&io->client, sa, (size_t)salen);
	io->client_len = (socklen_t)salen;
	io->local_len = sizeof(io->local);
	if (getsockname(fd, (struct sockaddr *)&io->local, &io->local_len) < 0)
		io->local_len = 0;
	io->ev_timer = evtimer_new(base, on_timer, arg);
	if (io->ev_timer == NULL || evutil_make_socket_nonblocking(fd) < 0)
		return -1;
	return mc_conn_set_fd_events(io);
}

void mc_conn_expect_proxy(struct mc_conn_io *io, long timeout_ms)
{
	io->want_proxy = true;
	mc_conn_arm(io->ev_timer, timeout_ms);
	event_add(io->ev_read, NULL);
}

int mc_conn_set_fd_events(struct mc_conn_io *io)
{
	if (io->ev_read != NULL)
		event_free(io->ev_read);
	if (io->ev_write != NULL)
		event_free(io->ev_write);
	io->ev_read = event_new(io->base, io->fd, EV_READ | EV_PERSIST, io->on_read, io->arg);
	io->ev_write = event_new(io->base, io->fd, EV_WRITE, io->on_write, io->arg);
	return io->ev_read != NULL && io->ev_write != NULL ? 0 : -1;
}

void mc_conn_release(struct mc_conn_io *io)
{
	if (io->ev_read != NULL)
		event_free(io->ev_read);
	if (io->ev_write != NULL)
		event_free(io->ev_write);
	if (io->ev_timer != NULL)
		event_free(io->ev_timer);
	if (io->ev_handoff != NULL) {
		int hfd = event_get_fd(io->ev_handoff);

		event_free(io->ev_handoff);
		close(hfd);
	}
	io->ev_read = io->ev_write = io->ev_timer = io->ev_handoff = NULL;
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
}

enum mc_proxy mc_conn_proxy_read(struct mc_conn_io *io, struct sp_proxy_info *info,
				 size_t *used_r, const char **why_r)
{
	ssize_t n;
	int rc;

	*why_r = NULL;
	n = read(io->fd, io->pbuf + io->plen, sizeof(io->pbuf) - io->plen);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return MC_PROXY_MORE;
	if (n <= 0) {
		*why_r = n == 0 ? "eof before PROXY header" : "read error";
		return MC_PROXY_CLOSED;
	}
	io->plen += (size_t)n;
	memset(info, 0, sizeof(*info));
	rc = sp_proxy2_decode(io->pbuf, io->plen, info, why_r);
	if (rc == 0)
		return io->plen == sizeof(io->pbuf) ? MC_PROXY_TOO_LONG : MC_PROXY_MORE;
	if (rc < 0)
		return MC_PROXY_MALFORMED;
	if (info->local)
		return MC_PROXY_LOCAL;
	io->want_proxy = false;
	io->client = info->src;
	io->local = info->dst;
	io->client_len = io->local_len = sizeof(struct sockaddr_storage);
	*used_r = (size_t)rc;
	return MC_PROXY_DONE;
}

int mc_conn_handoff_start(struct mc_conn_io *io, const char *socket, const char *service,
			  long timeout_ms, event_callback_fn on_handoff, void *arg, char **error_r)
{
	struct timeval tv;
	int hfd;

	*error_r = NULL;
	event_del(io->ev_read);
	event_del(io->ev_write);
	evtimer_del(io->ev_timer);
	hfd = sp_handoff_start(socket, service, io->fd, (const struct sockaddr *)&io->client,
			       io->client_len, (const struct sockaddr *)&io->local, io->local_len,
			       error_r);
	if (hfd < 0)
		return -1;
	/* tlsd holds its own copy now */
	event_free(io->ev_read);
	event_free(io->ev_write);
	io->ev_read = io->ev_write = NULL;
	close(io->fd);
	io->fd = -1;
	io->ev_handoff = event_new(io->base, hfd, EV_READ, on_handoff, arg);
	if (io->ev_handoff == NULL) {
		close(hfd);
		return -2;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	event_add(io->ev_handoff, &tv);
	return 0;
}

enum mc_handoff mc_conn_handoff_finish(struct mc_conn_io *io, evutil_socket_t hfd, short what,
				       struct sp_proxy_info *facts, char **error_r)
{
	int plain = -1;

	*error_r = NULL;
	event_free(io->ev_handoff);
	io->ev_handoff = NULL;
	if (what & EV_TIMEOUT) {
		close(hfd);
		return MC_HANDOFF_TIMEOUT;
	}
	memset(facts, 0, sizeof(*facts));
	if (sp_handoff_finish(hfd, &plain, facts, error_r) < 0)
		return MC_HANDOFF_FAILED;
	io->fd = plain;
	if (evutil_make_socket_nonblocking(io->fd) < 0 || mc_conn_set_fd_events(io) < 0)
		return MC_HANDOFF_NO_WATCH;
	facts->tls = true; /* only tlsd's reply makes a session TLS, never the client */
	return MC_HANDOFF_OK;
}

void mc_conn_read(struct mc_conn_io *io, const struct mc_session_ops *ops, void *session)
{
	uint8_t buf[READ_CHUNK];
	size_t budget = READ_BUDGET;

	while (budget > 0) {
		size_t room = ops->input_room(session);
		ssize_t n;

		if (room == 0 || !(ops->wants(session) & MC_WANT_READ))
			break;
		if (room > sizeof(buf))
			room = sizeof(buf);
		n = read(io->fd, buf, room);
		if (n > 0) {
			ops->feed(session, buf, (size_t)n);
			budget -= (size_t)n > budget ? budget : (size_t)n;
			mc_conn_arm(io->ev_timer, ops->timeout_ms(session));
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break; /* input drained: now the batch of replies goes out */
		ops->eof(session);
		break;
	}
}

enum mc_flush mc_conn_flush(struct mc_conn_io *io, const struct mc_session_ops *ops,
			    void *session)
{
	for (int round = 0; round < 64; round++) {
		size_t len;
		const uint8_t *out = ops->output(session, &len);
		unsigned wants;

		if (len > 0) {
			ssize_t n = send(io->fd, out, len, MSG_NOSIGNAL);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				return MC_FLUSH_WRITE_ERROR;
			}
			ops->consumed(session, (size_t)n);
			if ((size_t)n < len)
				break;
		}
		wants = ops->wants(session);
		if (wants & MC_WANT_CLOSE)
			return MC_FLUSH_CLOSE;
		if (wants & MC_WANT_STARTTLS)
			return MC_FLUSH_STARTTLS;
		/* output drained: run input held back by backpressure */
		ops->process(session);
		ops->output(session, &len);
		if (len == 0)
			break;
	}
	return MC_FLUSH_WAIT;
}

void mc_conn_rearm(struct mc_conn_io *io, const struct mc_session_ops *ops, const void *session)
{
	size_t len;

	ops->output(session, &len);
	if (len > 0)
		event_add(io->ev_write, NULL);
	if (ops->input_room(session) > 0 && (ops->wants(session) & MC_WANT_READ))
		event_add(io->ev_read, NULL);
	else
		event_del(io->ev_read);
}

int mc_listener_add(struct mc_listener *slots, size_t *n, struct event_base *base,
		    evconnlistener_cb on_accept, int kind, void *srv, int fd, char **error_r)
{
	struct mc_listener *slot;

	if (*n >= MC_MAX_LISTENERS) {
		*error_r = sp_xasprintf("too many listeners");
		close(fd);
		return -1;
	}
	slot = &slots[*n];
	slot->srv = srv;
	slot->kind = kind;
	slot->lev = evconnlistener_new(base, on_accept, slot,
				       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd);
	if (slot->lev == NULL) {
		*error_r = sp_xasprintf("cannot listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	(*n)++;
	return 0;
}

/* A unix socket's path is the listener registry's (mc_listen.c): only the
 * master removes it. */
void mc_listeners_stop(struct mc_listener *slots, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		evconnlistener_free(slots[i].lev);
	*n = 0;
}
