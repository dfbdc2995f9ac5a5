/* The IMAP and POP servers' event loop side, on the connection core it
 * shares with smtp_server.c (mc_conn.c): listeners for the plain ports and
 * for the PROXY v2 backend tlsd relays IMAPS/POPS to, connections with
 * their timeouts, the client access filter before the greeting, the IDLE
 * poll timer, and the STARTTLS handoff to tlsd. Sessions are the
 * protocol's (through struct ips_ops).
 * Client names: when the filter uses them, the reverse+forward lookup
 * (mc_resolve.h) runs first, with its deadline; nothing is read from the
 * client and nothing is said until it answered.
 * SECURITY: reads the PROXY v2 header (mc_conn.c) on the backend listener
 * only; TLS facts come only from it or from tlsd's handoff reply; a plain
 * listener never claims TLS. Client bytes go to the session unparsed.
 * Ownership: a connection is freed by conn_close() on every path that ends
 * it; every other path leaves an event armed that will get back to it. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/filter.h"
#include "mailcore/imap_pop_server.h"
#include "mailcore/mailcore.h"
#include "mailcore/mc_conn.h"
#include "mailcore/mc_listen.h"
#include "mailcore/mc_resolve.h"

struct ips_conn {
	struct ips_server *srv;
	bool backend;
	struct mc_conn_io io;
	struct event *ev_poll;
	void *session;
	size_t pfed;                 /* bytes of io.pbuf that were the PROXY header */
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
	struct mc_listener listeners[MC_MAX_LISTENERS];
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
	if (c->ev_poll != NULL)
		event_free(c->ev_poll);
	mc_conn_release(&c->io);
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

/* The access filter, before anything is said (the reference: filters are
 * checked when the client connects). */
static bool filter_allows(struct ips_conn *c)
{
	struct filter_query q = {
		.service = c->srv->ops->service,
		.client = (const struct sockaddr *)&c->io.client,
		.client_name = c->named && c->client_name[0] != '\0' ? c->client_name : NULL,
		.client_name_verified = c->client_name_verified,
		.server = (const struct sockaddr *)&c->io.local,
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
	smtp_sockaddr_text(&c->io.client, ip, sizeof(ip), &port);
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
		.backend = c->backend, .client = c->io.client, .local = c->io.local, .tls = tls,
		.client_name = c->named && c->client_name[0] != '\0' ? c->client_name : NULL,
		.client_name_verified = c->client_name_verified,
	};

	if (!filter_allows(c)) {
		const char *msg = c->srv->ops->refused;

		c->refused = true;
		(void)!send(c->io.fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
		return;
	}
	c->session = c->srv->ops->session_new(c->srv->env, &f);
	c->srv->ops->set_resume(c->session, conn_resume, c);
	mc_conn_arm(c->io.ev_timer, c->srv->ops->io.timeout_ms(c->session));
	if (c->pfed < c->io.plen)
		c->srv->ops->io.feed(c->session, c->io.pbuf + c->pfed, c->io.plen - c->pfed);
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
	smtp_sockaddr_text(&c->io.client, ip, sizeof(ip), &port);
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
	event_del(c->io.ev_read);
	evtimer_del(c->io.ev_timer);
	if (tls != NULL) {
		c->tls_wait = sp_xmalloc(sizeof(*c->tls_wait));
		*c->tls_wait = *tls;
	}
	c->lookup = mc_resolve_start(c->srv->resolver, (const struct sockaddr *)&c->io.client,
				     on_client_name, c);
}

/* ------------------------------------------------------------ STARTTLS */

static void on_handoff(evutil_socket_t hfd, short what, void *arg)
{
	struct ips_conn *c = arg;
	struct sp_proxy_info facts;
	char *error = NULL;

	switch (mc_conn_handoff_finish(&c->io, hfd, what, &facts, &error)) {
	case MC_HANDOFF_TIMEOUT:
		sp_log(SP_LOG_NOTICE, "starttls_failed", "service=%s why=timeout", c->srv->ops->service);
		conn_close(c, "handoff timeout");
		return;
	case MC_HANDOFF_FAILED:
		sp_log(SP_LOG_NOTICE, "starttls_failed", "service=%s why=\"%s\"", c->srv->ops->service,
		       error != NULL ? error : "");
		free(error);
		conn_close(c, "handoff failed");
		return;
	case MC_HANDOFF_NO_WATCH:
		conn_close(c, "cannot watch the plaintext socket");
		return;
	case MC_HANDOFF_OK:
		break;
	}
	c->srv->ops->tls_ready(c->session, &facts);
	mc_conn_arm(c->io.ev_timer, c->srv->ops->io.timeout_ms(c->session));
	conn_update(c);
}

/* The OK is written; the client fd goes to tlsd (mc_conn.c). */
static void conn_handoff(struct ips_conn *c)
{
	char *error = NULL;
	int rc;

	evtimer_del(c->ev_poll);
	rc = mc_conn_handoff_start(&c->io, c->srv->cfg.handoff_socket, c->srv->ops->service,
				   c->srv->cfg.handoff_timeout_ms, on_handoff, c, &error);
	if (rc == -1) {
		sp_log(SP_LOG_ERR, "starttls_failed", "service=%s why=\"%s\"", c->srv->ops->service,
		       error != NULL ? error : "");
		free(error);
	}
	if (rc < 0)
		conn_close(c, rc == -1 ? "handoff start failed" : "cannot watch the handoff socket");
}

/* ------------------------------------------------------------ I/O */

static void conn_update(struct ips_conn *c)
{
	const struct ips_ops *ops = c->srv->ops;
	long poll_ms;

	if (c->refused) {
		conn_close(c, "refused by the access filter");
		return;
	}
	if (c->session == NULL)
		return; /* the client name lookup answers first */
	switch (mc_conn_flush(&c->io, &ops->io, c->session)) {
	case MC_FLUSH_WRITE_ERROR:
		conn_close(c, "write error");
		return;
	case MC_FLUSH_CLOSE:
		conn_close(c, "session closed");
		return;
	case MC_FLUSH_STARTTLS:
		conn_handoff(c);
		return;
	case MC_FLUSH_WAIT:
		break;
	}
	poll_ms = ops->poll_ms != NULL ? ops->poll_ms(c->session) : 0;
	mc_conn_rearm(&c->io, &ops->io, c->session);
	if (poll_ms > 0 && !evtimer_pending(c->ev_poll, NULL))
		mc_conn_arm(c->ev_poll, poll_ms);
	else if (poll_ms == 0)
		evtimer_del(c->ev_poll);
}

static void proxy_read(struct ips_conn *c)
{
	const char *service = c->srv->ops->service;
	struct sp_proxy_info info;
	const char *why = NULL;
	size_t used = 0;

	switch (mc_conn_proxy_read(&c->io, &info, &used, &why)) {
	case MC_PROXY_MORE:
		return;
	case MC_PROXY_CLOSED:
		conn_close(c, why);
		return;
	case MC_PROXY_TOO_LONG:
		sp_log(SP_LOG_WARN, "proxy_header", "service=%s result=too_long", service);
		conn_close(c, NULL);
		return;
	case MC_PROXY_MALFORMED:
		sp_log(SP_LOG_WARN, "proxy_header", "service=%s result=malformed why=\"%s\"", service,
		       why != NULL ? why : "");
		conn_close(c, NULL);
		return;
	case MC_PROXY_LOCAL:
		conn_close(c, "PROXY LOCAL (health check)");
		return;
	case MC_PROXY_DONE:
		break;
	}
	c->pfed = used;
	conn_start_session(c, info.tls ? &info : NULL);
	conn_update(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ips_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->io.want_proxy) {
		proxy_read(c);
		return;
	}
	mc_conn_read(&c->io, &c->srv->ops->io, c->session);
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
	struct mc_listener *slot = arg;
	struct ips_server *srv = slot->srv;
	bool backend = slot->kind != 0;
	struct ips_conn *c;

	(void)lev;
	if (srv->n_conns >= srv->cfg.max_connections) {
		sp_log(SP_LOG_WARN, "connection_limit", "service=%s limit=%u", srv->ops->service,
		       srv->cfg.max_connections);
		if (!backend)
			(void)!send(fd, srv->ops->busy, strlen(srv->ops->busy), MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	c = sp_xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->backend = backend;
	c->io.fd = fd; /* conn_close closes it */
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
	c->ev_poll = evtimer_new(srv->base, on_poll, c);
	if (c->ev_poll == NULL ||
	    mc_conn_open(&c->io, srv->base, fd, sa, salen, on_read, on_write, on_timer, c) < 0) {
		conn_close(c, "cannot set up the connection");
		return;
	}
	if (backend) {
		mc_conn_expect_proxy(&c->io, srv->cfg.proxy_header_timeout_ms);
		return;
	}
	conn_start_session(c, NULL);
	conn_update(c);
}

/* ------------------------------------------------------------ listeners */

/* The sockets come from the registry (mc_listen.c): bound once by the
 * master, the same socket in every worker. */
int ips_server_listen_tcp(struct ips_server *srv, const char *addr, unsigned port, char **error_r)
{
	int fd = mc_listen_tcp(addr, port, error_r);

	if (fd < 0 || mc_listener_add(srv->listeners, &srv->n_listeners, srv->base, on_accept, 0, srv,
				      fd, error_r) < 0)
		return -1;
	sp_log(SP_LOG_INFO, "listen", "service=%s addr=%s port=%u", srv->ops->service, addr, port);
	return 0;
}

int ips_server_listen_backend(struct ips_server *srv, const char *spec, char **error_r)
{
	int fd = mc_listen_backend(spec, error_r);

	if (fd < 0 || mc_listener_add(srv->listeners, &srv->n_listeners, srv->base, on_accept, 1, srv,
				      fd, error_r) < 0)
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
	mc_listeners_stop(srv->listeners, &srv->n_listeners);
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
