/* The IMAP and POP servers' event loop side (the shape of smtp_server.c):
 * listeners for the plain ports and for the PROXY v2 backend tlsd relays
 * IMAPS/POPS to, connections with their timeouts, the client access filter
 * before the greeting, the IDLE poll timer, and the STARTTLS handoff to
 * tlsd. Sessions are the protocol's (through struct ips_ops).
 * Trust: TLS facts come only from the PROXY v2 header on the backend
 * listener or from tlsd's handoff reply; a plain listener never claims TLS.
 * Ownership: a connection is freed by conn_close() on every path that ends
 * it; every other path leaves an event armed that will get back to it. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/handoff.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/filter.h"
#include "mailcore/imap_pop_server.h"
#include "mailcore/mailcore.h"

#define MAX_LISTENERS 32
#define READ_CHUNK 16384
#define READ_BUDGET (256 * 1024)

struct ips_slot {
	struct evconnlistener *lev;
	bool backend;
	struct ips_server *srv;
	char *unix_path;
};

struct ips_conn {
	struct ips_server *srv;
	bool backend;
	int fd;
	struct event *ev_read, *ev_write, *ev_timer, *ev_poll, *ev_handoff;
	void *session;
	struct sockaddr_storage client, local;
	socklen_t client_len, local_len;
	bool want_proxy;
	uint8_t pbuf[SP_PP2_HDR_MAX];
	size_t plen;
	bool refused;                /* filter said no: write the refusal, then close */
	struct ips_conn *prev, *next;
};

struct ips_server {
	struct event_base *base;
	const struct ips_ops *ops;
	const void *env;
	struct ips_config cfg;
	struct ips_slot listeners[MAX_LISTENERS];
	size_t n_listeners;
	struct ips_conn *conns;
	unsigned n_conns;
};

static void conn_update(struct ips_conn *c);

static void conn_close(struct ips_conn *c, const char *why)
{
	struct ips_server *srv = c->srv;

	if (why != NULL)
		sp_log(SP_LOG_DEBUG, "close", "service=%s why=\"%s\"", srv->ops->service, why);
	if (c->ev_read != NULL)
		event_free(c->ev_read);
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	if (c->ev_timer != NULL)
		event_free(c->ev_timer);
	if (c->ev_poll != NULL)
		event_free(c->ev_poll);
	if (c->ev_handoff != NULL) {
		int hfd = event_get_fd(c->ev_handoff);

		event_free(c->ev_handoff);
		close(hfd);
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->session != NULL)
		srv->ops->session_free(c->session);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->n_conns--;
	free(c);
}

static void arm(struct event *ev, long ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	evtimer_add(ev, &tv);
}

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

static int conn_set_fd_events(struct ips_conn *c)
{
	if (c->ev_read != NULL)
		event_free(c->ev_read);
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	c->ev_read = event_new(c->srv->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	c->ev_write = event_new(c->srv->base, c->fd, EV_WRITE, on_write, c);
	return c->ev_read != NULL && c->ev_write != NULL ? 0 : -1;
}

/* The access filter, before anything is said (the reference: filters are
 * checked when the client connects). */
static bool filter_allows(struct ips_conn *c)
{
	struct filter_query q = {
		.service = c->srv->ops->service,
		.client = (const struct sockaddr *)&c->client,
		.server = (const struct sockaddr *)&c->local,
		.server_name = c->srv->cfg.hostname,
	};
	struct filter_decision d;
	char ip[64];
	unsigned port;

	if (c->srv->cfg.filter == NULL)
		return true;
	filter_eval(c->srv->cfg.filter, &q, &d);
	if (d.allowed)
		return true;
	smtp_sockaddr_text(&c->client, ip, sizeof(ip), &port);
	sp_log(SP_LOG_NOTICE, "access_filter", "service=%s client=%s result=denied rule=%d",
	       c->srv->ops->service, ip, d.rule);
	return false;
}

/* A pool job of the session finished: its output goes out, reading resumes. */
static void conn_resume(void *arg)
{
	conn_update(arg);
}

static void conn_start_session(struct ips_conn *c, const struct sp_proxy_info *tls)
{
	struct ips_facts f = {.backend = c->backend, .client = c->client, .local = c->local, .tls = tls};

	if (!filter_allows(c)) {
		const char *msg = c->srv->ops->refused;

		c->refused = true;
		(void)!send(c->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
		return;
	}
	c->session = c->srv->ops->session_new(c->srv->env, &f);
	c->srv->ops->set_resume(c->session, conn_resume, c);
	arm(c->ev_timer, c->srv->ops->timeout_ms(c->session));
}

/* ------------------------------------------------------------ STARTTLS */

static void on_handoff(evutil_socket_t hfd, short what, void *arg)
{
	struct ips_conn *c = arg;
	struct sp_proxy_info facts;
	char *error = NULL;
	int plain = -1;

	event_free(c->ev_handoff);
	c->ev_handoff = NULL;
	if (what & EV_TIMEOUT) {
		close(hfd);
		sp_log(SP_LOG_NOTICE, "starttls_failed", "service=%s why=timeout", c->srv->ops->service);
		conn_close(c, "handoff timeout");
		return;
	}
	memset(&facts, 0, sizeof(facts));
	if (sp_handoff_finish(hfd, &plain, &facts, &error) < 0) {
		sp_log(SP_LOG_NOTICE, "starttls_failed", "service=%s why=\"%s\"", c->srv->ops->service,
		       error != NULL ? error : "");
		free(error);
		conn_close(c, "handoff failed");
		return;
	}
	c->fd = plain;
	if (evutil_make_socket_nonblocking(c->fd) < 0 || conn_set_fd_events(c) < 0) {
		conn_close(c, "cannot watch the plaintext socket");
		return;
	}
	facts.tls = true; /* only tlsd's reply makes a session TLS */
	c->srv->ops->tls_ready(c->session, &facts);
	arm(c->ev_timer, c->srv->ops->timeout_ms(c->session));
	conn_update(c);
}

/* The OK is written; the client fd goes to tlsd. Whatever the client sent
 * after the command is still in the socket and becomes part of the TLS
 * handshake (which then fails): it is never read as a command. */
static void conn_handoff(struct ips_conn *c)
{
	char *error = NULL;
	int hfd;
	struct timeval tv;
	long ms = c->srv->cfg.handoff_timeout_ms;

	event_del(c->ev_read);
	event_del(c->ev_write);
	evtimer_del(c->ev_timer);
	evtimer_del(c->ev_poll);
	hfd = sp_handoff_start(c->srv->cfg.handoff_socket, c->srv->ops->service, c->fd,
			       (const struct sockaddr *)&c->client, c->client_len,
			       (const struct sockaddr *)&c->local, c->local_len, &error);
	if (hfd < 0) {
		sp_log(SP_LOG_ERR, "starttls_failed", "service=%s why=\"%s\"", c->srv->ops->service,
		       error != NULL ? error : "");
		free(error);
		conn_close(c, "handoff start failed");
		return;
	}
	event_free(c->ev_read);
	event_free(c->ev_write);
	c->ev_read = c->ev_write = NULL;
	close(c->fd);
	c->fd = -1;
	c->ev_handoff = event_new(c->srv->base, hfd, EV_READ, on_handoff, c);
	if (c->ev_handoff == NULL) {
		close(hfd);
		conn_close(c, "cannot watch the handoff socket");
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(c->ev_handoff, &tv);
}

/* ------------------------------------------------------------ I/O */

static void conn_update(struct ips_conn *c)
{
	const struct ips_ops *ops = c->srv->ops;

	if (c->refused) {
		conn_close(c, "refused by the access filter");
		return;
	}
	for (int round = 0; round < 64; round++) {
		size_t len;
		const uint8_t *out = ops->output(c->session, &len);
		unsigned wants;

		if (len > 0) {
			ssize_t n = send(c->fd, out, len, MSG_NOSIGNAL);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				conn_close(c, "write error");
				return;
			}
			ops->consumed(c->session, (size_t)n);
			if ((size_t)n < len)
				break;
		}
		wants = ops->wants(c->session);
		if (wants & IPS_WANT_CLOSE) {
			conn_close(c, "session closed");
			return;
		}
		if (wants & IPS_WANT_STARTTLS) {
			conn_handoff(c);
			return;
		}
		ops->process(c->session);
		ops->output(c->session, &len);
		if (len == 0)
			break;
	}
	{
		size_t len;
		long poll_ms = ops->poll_ms != NULL ? ops->poll_ms(c->session) : 0;

		ops->output(c->session, &len);
		if (len > 0)
			event_add(c->ev_write, NULL);
		if (ops->input_room(c->session) > 0 && (ops->wants(c->session) & IPS_WANT_READ))
			event_add(c->ev_read, NULL);
		else
			event_del(c->ev_read);
		if (poll_ms > 0 && !evtimer_pending(c->ev_poll, NULL))
			arm(c->ev_poll, poll_ms);
		else if (poll_ms == 0)
			evtimer_del(c->ev_poll);
	}
}

static void proxy_read(struct ips_conn *c)
{
	struct sp_proxy_info info;
	const char *why = NULL;
	ssize_t n;
	int rc;

	n = read(c->fd, c->pbuf + c->plen, sizeof(c->pbuf) - c->plen);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c, n == 0 ? "eof before PROXY header" : "read error");
		return;
	}
	c->plen += (size_t)n;
	memset(&info, 0, sizeof(info));
	rc = sp_proxy2_decode(c->pbuf, c->plen, &info, &why);
	if (rc == 0) {
		if (c->plen == sizeof(c->pbuf)) {
			sp_log(SP_LOG_WARN, "proxy_header", "service=%s result=too_long",
			       c->srv->ops->service);
			conn_close(c, NULL);
		}
		return;
	}
	if (rc < 0) {
		sp_log(SP_LOG_WARN, "proxy_header", "service=%s result=malformed why=\"%s\"",
		       c->srv->ops->service, why != NULL ? why : "");
		conn_close(c, NULL);
		return;
	}
	if (info.local) {
		conn_close(c, "PROXY LOCAL (health check)");
		return;
	}
	c->want_proxy = false;
	c->client = info.src;
	c->local = info.dst;
	c->client_len = c->local_len = sizeof(struct sockaddr_storage);
	conn_start_session(c, info.tls ? &info : NULL);
	if (c->refused) {
		conn_close(c, "refused by the access filter");
		return;
	}
	if ((size_t)rc < c->plen)
		c->srv->ops->feed(c->session, c->pbuf + rc, c->plen - (size_t)rc);
	conn_update(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ips_conn *c = arg;
	const struct ips_ops *ops = c->srv->ops;
	uint8_t buf[READ_CHUNK];
	size_t budget = READ_BUDGET;

	(void)what;
	if (c->want_proxy) {
		proxy_read(c);
		return;
	}
	while (budget > 0) {
		size_t room = ops->input_room(c->session);
		ssize_t n;

		if (room == 0 || !(ops->wants(c->session) & IPS_WANT_READ))
			break;
		if (room > sizeof(buf))
			room = sizeof(buf);
		n = read(fd, buf, room);
		if (n > 0) {
			ops->feed(c->session, buf, (size_t)n);
			budget -= (size_t)n > budget ? budget : (size_t)n;
			arm(c->ev_timer, ops->timeout_ms(c->session));
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		ops->eof(c->session);
		break;
	}
	conn_update(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_update(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ips_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->session == NULL) {
		sp_log(SP_LOG_NOTICE, "proxy_header", "service=%s result=timeout", c->srv->ops->service);
		conn_close(c, NULL);
		return;
	}
	c->srv->ops->timeout(c->session);
	conn_update(c);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct ips_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->session != NULL && c->srv->ops->poll != NULL)
		c->srv->ops->poll(c->session);
	conn_update(c);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct ips_slot *slot = arg;
	struct ips_server *srv = slot->srv;
	struct ips_conn *c;

	(void)lev;
	if (srv->n_conns >= srv->cfg.max_connections) {
		sp_log(SP_LOG_WARN, "connection_limit", "service=%s limit=%u", srv->ops->service,
		       srv->cfg.max_connections);
		if (!slot->backend)
			(void)!send(fd, srv->ops->busy, strlen(srv->ops->busy), MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	c = sp_xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->backend = slot->backend;
	c->fd = fd;
	if (salen > 0 && (size_t)salen <= sizeof(c->client))
		memcpy(&c->client, sa, (size_t)salen);
	c->client_len = (socklen_t)salen;
	c->local_len = sizeof(c->local);
	if (getsockname(fd, (struct sockaddr *)&c->local, &c->local_len) < 0)
		c->local_len = 0;
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;
	c->ev_timer = evtimer_new(srv->base, on_timer, c);
	c->ev_poll = evtimer_new(srv->base, on_poll, c);
	if (c->ev_timer == NULL || c->ev_poll == NULL || evutil_make_socket_nonblocking(fd) < 0 ||
	    conn_set_fd_events(c) < 0) {
		conn_close(c, "cannot set up the connection");
		return;
	}
	if (slot->backend) {
		/* the PROXY v2 header first; only it may speak of TLS */
		c->want_proxy = true;
		arm(c->ev_timer, srv->cfg.proxy_header_timeout_ms);
		event_add(c->ev_read, NULL);
		return;
	}
	conn_start_session(c, NULL);
	conn_update(c);
}

/* ------------------------------------------------------------ listeners */

static int add_listener(struct ips_server *srv, bool backend, int fd, const char *unix_path,
			char **error_r)
{
	struct ips_slot *slot;

	if (srv->n_listeners >= MAX_LISTENERS) {
		*error_r = sp_xasprintf("too many listeners");
		close(fd);
		return -1;
	}
	slot = &srv->listeners[srv->n_listeners];
	slot->srv = srv;
	slot->backend = backend;
	slot->lev = evconnlistener_new(srv->base, on_accept, slot,
				       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd);
	if (slot->lev == NULL) {
		*error_r = sp_xasprintf("cannot listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	slot->unix_path = unix_path != NULL ? sp_xstrdup(unix_path) : NULL;
	srv->n_listeners++;
	return 0;
}

static int tcp_socket(const char *addr, unsigned port, char **error_r)
{
	struct addrinfo hints = {0}, *res = NULL;
	char portstr[16];
	int fd, one = 1, rc;

	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(addr, portstr, &hints, &res);
	if (rc != 0) {
		*error_r = sp_xasprintf("%s port %u: %s", addr, port, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = sp_xasprintf("%s port %u: socket: %s", addr, port, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (res->ai_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
		*error_r = sp_xasprintf("%s port %u: %s", addr, port, strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

int ips_server_listen_tcp(struct ips_server *srv, const char *addr, unsigned port, char **error_r)
{
	int fd = tcp_socket(addr, port, error_r);

	if (fd < 0 || add_listener(srv, false, fd, NULL, error_r) < 0)
		return -1;
	sp_log(SP_LOG_INFO, "listen", "service=%s addr=%s port=%u", srv->ops->service, addr, port);
	return 0;
}

int ips_server_listen_backend(struct ips_server *srv, const char *spec, char **error_r)
{
	struct sockaddr_un sa_un = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (spec[0] != '/') {
		char host[128];
		const char *colon = strrchr(spec, ':'), *h = spec;
		size_t hl;
		char *end;
		unsigned long port;

		if (colon == NULL) {
			*error_r = sp_xasprintf("backend %s: expected a /path or host:port", spec);
			return -1;
		}
		hl = (size_t)(colon - spec);
		if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
			h++;
			hl -= 2;
		}
		port = strtoul(colon + 1, &end, 10);
		if (hl == 0 || hl >= sizeof(host) || *end != '\0' || port == 0 || port > 65535) {
			*error_r = sp_xasprintf("backend %s: expected a /path or host:port", spec);
			return -1;
		}
		memcpy(host, h, hl);
		host[hl] = '\0';
		fd = tcp_socket(host, (unsigned)port, error_r);
		if (fd < 0 || add_listener(srv, true, fd, NULL, error_r) < 0)
			return -1;
		sp_log(SP_LOG_INFO, "listen", "service=%s-backend addr=%s port=%lu", srv->ops->service,
		       host, port);
		return 0;
	}
	if (strlen(spec) >= sizeof(sa_un.sun_path)) {
		*error_r = sp_xasprintf("backend %s: path too long", spec);
		return -1;
	}
	memcpy(sa_un.sun_path, spec, strlen(spec) + 1);
	if (lstat(spec, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*error_r = sp_xasprintf("backend %s: exists and is not a socket", spec);
			return -1;
		}
		if (unlink(spec) < 0) {
			*error_r = sp_xasprintf("backend %s: unlink: %s", spec, strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = sp_xasprintf("backend %s: socket: %s", spec, strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sa_un, sizeof(sa_un)) < 0 || chmod(spec, 0660) < 0) {
		*error_r = sp_xasprintf("backend %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	if (add_listener(srv, true, fd, spec, error_r) < 0)
		return -1;
	sp_log(SP_LOG_INFO, "listen", "service=%s-backend path=%s", srv->ops->service, spec);
	return 0;
}

struct ips_server *ips_server_new(struct event_base *base, const struct ips_ops *ops,
				  const void *env, const struct ips_config *cfg)
{
	struct ips_server *srv = sp_xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->ops = ops;
	srv->env = env;
	srv->cfg = *cfg;
	return srv;
}

void ips_server_stop_listening(struct ips_server *srv)
{
	for (size_t i = 0; i < srv->n_listeners; i++) {
		evconnlistener_free(srv->listeners[i].lev);
		if (srv->listeners[i].unix_path != NULL) {
			unlink(srv->listeners[i].unix_path);
			free(srv->listeners[i].unix_path);
		}
	}
	srv->n_listeners = 0;
}

unsigned ips_server_connections(const struct ips_server *srv)
{
	return srv->n_conns;
}

void ips_server_free(struct ips_server **srvp)
{
	struct ips_server *srv;

	if (srvp == NULL || *srvp == NULL)
		return;
	srv = *srvp;
	ips_server_stop_listening(srv);
	while (srv->conns != NULL)
		conn_close(srv->conns, "server shutting down");
	free(srv);
	*srvp = NULL;
}
