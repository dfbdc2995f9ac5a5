/* The IMAP and POP servers' event loop side (the shape of smtp_server.c):
 * listeners for the plain ports and for the PROXY v2 backend tlsd relays
 * IMAPS/POPS to, connections with their timeouts, the client access filter
 * before the greeting, the IDLE poll timer, and the STARTTLS handoff to
 * tlsd. Sessions are the protocol's (through struct ips_ops).
 * Client names: when the filter uses them, the reverse+forward lookup
 * (mc_resolve.h) runs first, with its deadline; nothing is read from the
 * client and nothing is said until it answered.
 * Trust: TLS facts come only from the PROXY v2 header on the backend
 * listener or from tlsd's handoff reply; a plain listener never claims TLS.
 * Ownership: a connection is freed by conn_close() on every path that ends
 * it; every other path leaves an event armed that will get back to it. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include "mailcore/mc_listen.h"
#include "mailcore/mc_resolve.h"

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
	size_t pfed;                 /* bytes of pbuf that were the PROXY header */
	bool refused;                /* filter said no: write the refusal, then close */
	/* the client name lookup before the session starts */
	struct mc_resolve_req *lookup;     /* pending; NULL = none */
	struct sp_proxy_info *tls_wait;    /* the TLS facts meanwhile; NULL = none */
	bool named;                        /* looked up: client_name is the answer */
	bool client_name_verified;
	char client_name[MC_NAME_MAX + 1];
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
	struct mc_resolver *resolver;     /* NULL = no name lookups */
	bool lookup_names;                /* before the filter, for every connection */
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
	mc_resolve_cancel(&c->lookup);
	free(c->tls_wait);
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
		.client_name = c->named && c->client_name[0] != '\0' ? c->client_name : NULL,
		.client_name_verified = c->client_name_verified,
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
	sp_log(SP_LOG_NOTICE, "access_filter",
	       "service=%s client=%s name=%s verified=%s result=denied rule=%d",
	       c->srv->ops->service, ip, q.client_name != NULL ? q.client_name : "-",
	       q.client_name_verified ? "yes" : "no", d.rule);
	return false;
}

/* A pool job of the session finished: its output goes out, reading resumes. */
static void conn_resume(void *arg)
{
	conn_update(arg);
}

/* The filter, then the session (and the bytes that came with the PROXY
 * header). The caller runs conn_update next. */
static void conn_open_session(struct ips_conn *c, const struct sp_proxy_info *tls)
{
	struct ips_facts f = {
		.backend = c->backend, .client = c->client, .local = c->local, .tls = tls,
		.client_name = c->named && c->client_name[0] != '\0' ? c->client_name : NULL,
		.client_name_verified = c->client_name_verified,
	};

	if (!filter_allows(c)) {
		const char *msg = c->srv->ops->refused;

		c->refused = true;
		(void)!send(c->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
		return;
	}
	c->session = c->srv->ops->session_new(c->srv->env, &f);
	c->srv->ops->set_resume(c->session, conn_resume, c);
	arm(c->ev_timer, c->srv->ops->timeout_ms(c->session));
	if (c->pfed < c->plen)
		c->srv->ops->feed(c->session, c->pbuf + c->pfed, c->plen - c->pfed);
}

/* The lookup answered (or its deadline passed: no name, the filters'
 * UNKNOWN). Only now the filter decides and the greeting goes out. */
static void on_client_name(void *arg, const struct mc_name_result *res)
{
	struct ips_conn *c = arg;
	struct sp_proxy_info *tls = c->tls_wait;
	char ip[64];
	unsigned port;

	c->lookup = NULL;
	c->tls_wait = NULL;
	c->named = true;
	snprintf(c->client_name, sizeof(c->client_name), "%s", res->name);
	c->client_name_verified = res->name[0] != '\0' && res->verified;
	smtp_sockaddr_text(&c->client, ip, sizeof(ip), &port);
	sp_log(SP_LOG_INFO, "client_name", "service=%s client=%s port=%u name=%s verified=%s source=%s",
	       c->srv->ops->service, ip, port, res->name[0] != '\0' ? res->name : "-",
	       c->client_name_verified ? "yes" : "no", res->source);
	conn_open_session(c, tls);
	free(tls);
	conn_update(c);
}

/* The client's address is final (accepted, or from the PROXY header). */
static void conn_start_session(struct ips_conn *c, const struct sp_proxy_info *tls)
{
	if (!c->srv->lookup_names) {
		conn_open_session(c, tls);
		return;
	}
	/* neither read nor time out while the lookup runs: it has a deadline */
	event_del(c->ev_read);
	evtimer_del(c->ev_timer);
	if (tls != NULL) {
		c->tls_wait = sp_xmalloc(sizeof(*c->tls_wait));
		*c->tls_wait = *tls;
	}
	c->lookup = mc_resolve_start(c->srv->resolver, (const struct sockaddr *)&c->client,
				     on_client_name, c);
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
	if (c->session == NULL)
		return; /* the client name lookup answers first */
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
	c->pfed = (size_t)rc;
	conn_start_session(c, info.tls ? &info : NULL);
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
	/* replies leave in batches the size of the output buffer already (a
	 * FETCH's many messages in one send): Nagle would only hold a batch's
	 * last partial segment back until the client's delayed ACK (40 ms) */
	if ((sa->sa_family == AF_INET || sa->sa_family == AF_INET6) &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) < 0)
		sp_log(SP_LOG_DEBUG, "tcp_nodelay", "service=%s why=\"%s\"", srv->ops->service,
		       strerror(errno));
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

/* The sockets come from the registry (mc_listen.c): bound once by the
 * master, the same socket in every worker. */
int ips_server_listen_tcp(struct ips_server *srv, const char *addr, unsigned port, char **error_r)
{
	int fd = mc_listen_tcp(addr, port, error_r);

	if (fd < 0 || add_listener(srv, false, fd, NULL, error_r) < 0)
		return -1;
	sp_log(SP_LOG_INFO, "listen", "service=%s addr=%s port=%u", srv->ops->service, addr, port);
	return 0;
}

int ips_server_listen_backend(struct ips_server *srv, const char *spec, char **error_r)
{
	int fd = mc_listen_backend(spec, error_r);

	/* a unix socket's path is the registry's: only the master removes it */
	if (fd < 0 || add_listener(srv, true, fd, NULL, error_r) < 0)
		return -1;
	sp_log(SP_LOG_INFO, "listen", "service=%s-backend %s=%s", srv->ops->service,
	       spec[0] == '/' ? "path" : "addr", spec);
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

void ips_server_set_resolver(struct ips_server *srv, struct mc_resolver *resolver)
{
	enum mc_dns_mode mode = mc_resolver_mode(resolver);

	srv->resolver = resolver;
	srv->lookup_names = mode == MC_DNS_YES ||
			    (mode == MC_DNS_WHEN_NEEDED && srv->cfg.filter != NULL &&
			     filter_needs_client_name(srv->cfg.filter));
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
