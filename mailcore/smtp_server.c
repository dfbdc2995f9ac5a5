/* The SMTP server's event loop side: listeners (SMTP, submission, and the
 * PROXY v2 backend that tlsd relays implicit TLS to), connections, their
 * timeouts, and the STARTTLS handoff to tlsd, on the connection core
 * (mc_conn.c) it shares with imap_pop_server.c. The protocol itself is
 * smtp_session.c; this file only moves bytes and file descriptors.
 * SECURITY: reads the PROXY v2 header (mc_conn.c) on the backend listener
 * only; TLS facts come from it or from tlsd's handoff reply, never from a
 * plain listener's client.
 * Ownership: a connection is freed by conn_close() on every path that ends
 * it; every other path leaves an event armed that will get back to it. */
#include "mailcore/mailcore.h"
#include "mailcore/mc_conn.h"
#include "mailcore/mc_listen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/mc_resolve.h"

struct smtp_conn {
	struct smtp_server *srv;
	enum smtp_listener kind;
	struct mc_conn_io io;
	struct smtp_session *session;
	struct mc_resolve_req *lookup;  /* the client's name, for Received:; NULL = none pending */
	struct smtp_conn *prev, *next;
};

struct smtp_server {
	struct event_base *base;
	const struct smtp_env *env;
	struct smtp_server_config cfg;
	struct mc_listener listeners[MC_MAX_LISTENERS];
	size_t n_listeners;
	struct smtp_conn *conns;
	unsigned n_conns;
	struct mc_resolver *resolver;   /* NULL = no client name lookups */
};

static void conn_update(struct smtp_conn *c);

static const char *listener_name(enum smtp_listener kind)
{
	switch (kind) {
	case SMTP_LISTEN_SUBMISSION: return "submission";
	case SMTP_LISTEN_BACKEND: return "smtp-backend";
	case SMTP_LISTEN_SMTP: break;
	}
	return "smtp";
}

static void conn_close(struct smtp_conn *c, const char *why)
{
	struct smtp_server *srv = c->srv;

	if (why != NULL)
		sp_log(SP_LOG_DEBUG, "smtp_close", "listener=%s why=\"%s\"", listener_name(c->kind), why);
	mc_conn_release(&c->io);
	mc_resolve_cancel(&c->lookup);
	smtp_session_free(&c->session);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->n_conns--;
	free(c);
}

/* The session as the connection core sees it */
static size_t s_room(const void *s) { return smtp_session_input_room(s); }
static size_t s_feed(void *s, const void *d, size_t n) { return smtp_session_feed(s, d, n); }
static void s_process(void *s) { smtp_session_process(s); }
static void s_eof(void *s) { smtp_session_eof(s); }
static const uint8_t *s_output(const void *s, size_t *n) { return smtp_session_output(s, n); }
static void s_consumed(void *s, size_t n) { smtp_session_output_consumed(s, n); }
static unsigned s_wants(const void *s) { return smtp_session_wants(s); }
static long s_timeout_ms(const void *s) { return smtp_session_timeout_ms(s); }

static const struct mc_session_ops smtp_io_ops = {
	.input_room = s_room,
	.feed = s_feed,
	.process = s_process,
	.eof = s_eof,
	.output = s_output,
	.consumed = s_consumed,
	.wants = s_wants,
	.timeout_ms = s_timeout_ms,
};

/* A pool job of the session finished (delivery fsynced, password
 * checked): the reply goes out and reading resumes. */
static void conn_resume(void *arg)
{
	struct smtp_conn *c = arg;

	mc_conn_arm(c->io.ev_timer, smtp_session_timeout_ms(c->session));
	conn_update(c);
}

/* The lookup answered (or its deadline passed); the session keeps a
 * verified name for the Received: header of the messages still to come,
 * and an AUTH that waited for the name is answered (last: that may end
 * the connection). */
static void on_client_name(void *arg, const struct mc_name_result *res)
{
	struct smtp_conn *c = arg;
	char ip[64];
	unsigned port;

	c->lookup = NULL;
	smtp_sockaddr_text(&c->io.client, ip, sizeof(ip), &port);
	sp_log(SP_LOG_INFO, "client_name",
	       "service=smtp client=%s port=%u name=%s verified=%s source=%s", ip, port,
	       res->name[0] != '\0' ? res->name : "-",
	       res->name[0] != '\0' && res->verified ? "yes" : "no", res->source);
	smtp_session_set_client_name(c->session, res->name, res->verified);
}

static void conn_start_session(struct smtp_conn *c, const struct sp_proxy_info *tls)
{
	struct smtp_conn_info ci = {
		.listener = c->kind,
		.client = c->io.client,
		.local = c->io.local,
		.tls = tls,
	};

	c->session = smtp_session_new(c->srv->env, &ci);
	smtp_session_set_resume(c->session, conn_resume, c);
	mc_conn_arm(c->io.ev_timer, smtp_session_timeout_ms(c->session));
	/* the name is for the Received: header: the greeting does not wait */
	if (mc_resolver_mode(c->srv->resolver) != MC_DNS_NO)
		c->lookup = mc_resolve_start(c->srv->resolver, (const struct sockaddr *)&c->io.client,
					     on_client_name, c);
	if (c->lookup != NULL)
		smtp_session_expect_client_name(c->session);
}

/* ------------------------------------------------------------ STARTTLS */

static void on_handoff(evutil_socket_t hfd, short what, void *arg)
{
	struct smtp_conn *c = arg;
	struct sp_proxy_info facts;
	char *error = NULL;

	switch (mc_conn_handoff_finish(&c->io, hfd, what, &facts, &error)) {
	case MC_HANDOFF_TIMEOUT:
		sp_log(SP_LOG_NOTICE, "smtp_starttls_failed", "why=timeout");
		conn_close(c, "handoff timeout");
		return;
	case MC_HANDOFF_FAILED:
		sp_log(SP_LOG_NOTICE, "smtp_starttls_failed", "why=\"%s\"", error != NULL ? error : "");
		free(error);
		conn_close(c, "handoff failed");
		return;
	case MC_HANDOFF_NO_WATCH:
		conn_close(c, "cannot watch the plaintext socket");
		return;
	case MC_HANDOFF_OK:
		break;
	}
	smtp_session_tls_ready(c->session, &facts);
	mc_conn_arm(c->io.ev_timer, smtp_session_timeout_ms(c->session));
	conn_update(c);
}

/* RFC 3207: the 220 is written; the client fd goes to tlsd (mc_conn.c). */
static void conn_handoff(struct smtp_conn *c)
{
	/* tlsd's policy for both listeners is service.smtp.* (certificates,
	 * versions); the listener shows in the addresses */
	char *error = NULL;
	int rc = mc_conn_handoff_start(&c->io, c->srv->cfg.handoff_socket, "smtp",
				       c->srv->env->command_timeout_ms, on_handoff, c, &error);

	if (rc == -1) {
		sp_log(SP_LOG_ERR, "smtp_starttls_failed", "why=\"%s\"", error != NULL ? error : "");
		free(error);
	}
	if (rc < 0)
		conn_close(c, rc == -1 ? "handoff start failed" : "cannot watch the handoff socket");
}

/* ------------------------------------------------------------ I/O */

/* Writes what the session has queued, acts on its wants, and arms the
 * events that bring us back. */
static void conn_update(struct smtp_conn *c)
{
	switch (mc_conn_flush(&c->io, &smtp_io_ops, c->session)) {
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
	mc_conn_rearm(&c->io, &smtp_io_ops, c->session);
}

static void proxy_read(struct smtp_conn *c)
{
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
		sp_log(SP_LOG_WARN, "smtp_proxy_header", "result=too_long");
		conn_close(c, NULL);
		return;
	case MC_PROXY_MALFORMED:
		sp_log(SP_LOG_WARN, "smtp_proxy_header", "result=malformed why=\"%s\"",
		       why != NULL ? why : "");
		conn_close(c, NULL);
		return;
	case MC_PROXY_LOCAL:
		conn_close(c, "PROXY LOCAL (health check)");
		return;
	case MC_PROXY_DONE:
		break;
	}
	conn_start_session(c, info.tls ? &info : NULL);
	/* bytes after the header are the client's first SMTP input */
	if (used < c->io.plen)
		smtp_session_feed(c->session, c->io.pbuf + used, c->io.plen - used);
	conn_update(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->io.want_proxy) {
		proxy_read(c);
		return;
	}
	mc_conn_read(&c->io, &smtp_io_ops, c->session);
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
	struct smtp_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->session == NULL) {
		sp_log(SP_LOG_NOTICE, "smtp_proxy_header", "result=timeout");
		conn_close(c, NULL);
		return;
	}
	smtp_session_timeout(c->session);
	conn_update(c);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct mc_listener *slot = arg;
	struct smtp_server *srv = slot->srv;
	struct smtp_conn *c;

	(void)lev;
	if (srv->n_conns >= srv->cfg.max_connections) {
		static const char busy[] = "421 4.3.2 Too many connections, try again later\r\n";

		sp_log(SP_LOG_WARN, "smtp_connection_limit", "limit=%u", srv->cfg.max_connections);
		if (slot->kind != SMTP_LISTEN_BACKEND) /* best effort; the socket is fresh */
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	c = sp_xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->kind = (enum smtp_listener)slot->kind;
	c->io.fd = fd; /* conn_close closes it */
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;
	if (mc_conn_open(&c->io, srv->base, fd, sa, salen, on_read, on_write, on_timer, c) < 0) {
		conn_close(c, "cannot set up the connection");
		return;
	}
	if (slot->kind == SMTP_LISTEN_BACKEND) {
		mc_conn_expect_proxy(&c->io, srv->cfg.proxy_header_timeout_ms);
		return;
	}
	conn_start_session(c, NULL);
	conn_update(c);
}

/* ------------------------------------------------------------ listeners */

/* The sockets come from the registry (mc_listen.c): bound once by the
 * master, the same socket in every worker. */
int smtp_server_listen_tcp(struct smtp_server *srv, enum smtp_listener kind, const char *addr,
			   unsigned port, char **error_r)
{
	int fd = mc_listen_tcp(addr, port, error_r);

	if (fd < 0)
		return -1;
	if (mc_listener_add(srv->listeners, &srv->n_listeners, srv->base, on_accept, (int)kind, srv,
			    fd, error_r) < 0)
		return -1;
	sp_log(SP_LOG_INFO, "listen", "service=%s addr=%s port=%u", listener_name(kind), addr, port);
	return 0;
}

int smtp_server_listen_backend(struct smtp_server *srv, const char *spec, char **error_r)
{
	int fd = mc_listen_backend(spec, error_r);

	if (fd < 0 || mc_listener_add(srv->listeners, &srv->n_listeners, srv->base, on_accept,
				      SMTP_LISTEN_BACKEND, srv, fd, error_r) < 0)
		return -1;
	sp_log(SP_LOG_INFO, "listen", "service=smtp-backend %s=%s", spec[0] == '/' ? "path" : "addr",
	       spec);
	return 0;
}

struct smtp_server *smtp_server_new(struct event_base *base, const struct smtp_env *env,
				    const struct smtp_server_config *cfg)
{
	struct smtp_server *srv = sp_xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->env = env;
	srv->cfg = *cfg;
	return srv;
}

void smtp_server_set_resolver(struct smtp_server *srv, struct mc_resolver *resolver)
{
	srv->resolver = resolver;
}

void smtp_server_stop_listening(struct smtp_server *srv)
{
	mc_listeners_stop(srv->listeners, &srv->n_listeners);
}

unsigned smtp_server_connections(const struct smtp_server *srv)
{
	return srv->n_conns;
}

void smtp_server_free(struct smtp_server **srvp)
{
	struct smtp_server *srv;

	if (srvp == NULL || *srvp == NULL)
		return;
	srv = *srvp;
	smtp_server_stop_listening(srv);
	while (srv->conns != NULL)
		conn_close(srv->conns, "server shutting down");
	free(srv);
	*srvp = NULL;
}
