/* The SMTP server's event loop side: listeners (SMTP, submission, and the
 * PROXY v2 backend that tlsd relays implicit TLS to), connections, their
 * timeouts, and the STARTTLS handoff to tlsd. The protocol itself is
 * smtp_session.c; this file only moves bytes and file descriptors.
 * Ownership: a connection is freed by conn_close() on every path that ends
 * it; every other path leaves an event armed that will get back to it. */
#include "mailcore/mailcore.h"
#include "mailcore/mc_listen.h"

#include <errno.h>
#include <fcntl.h>
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
#include "mailcore/mc_resolve.h"

#define MAX_LISTENERS 32
#define READ_CHUNK 16384
#define READ_BUDGET (256 * 1024) /* per callback, so one client cannot starve the rest */

struct smtp_listener_slot {
	struct evconnlistener *lev;
	enum smtp_listener kind;
	struct smtp_server *srv;
	char *unix_path; /* removed on close */
};

struct smtp_conn {
	struct smtp_server *srv;
	enum smtp_listener kind;
	int fd;
	struct event *ev_read, *ev_write, *ev_timer, *ev_handoff;
	struct smtp_session *session;
	struct sockaddr_storage client, local;
	socklen_t client_len, local_len;
	/* backend listener: the PROXY v2 header comes first */
	bool want_proxy;
	uint8_t pbuf[SP_PP2_HDR_MAX];
	size_t plen;
	struct mc_resolve_req *lookup;  /* the client's name, for Received:; NULL = none pending */
	struct smtp_conn *prev, *next;
};

struct smtp_server {
	struct event_base *base;
	const struct smtp_env *env;
	struct smtp_server_config cfg;
	struct smtp_listener_slot listeners[MAX_LISTENERS];
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
	if (c->ev_read != NULL)
		event_free(c->ev_read);
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	if (c->ev_timer != NULL)
		event_free(c->ev_timer);
	if (c->ev_handoff != NULL) {
		int hfd = event_get_fd(c->ev_handoff);

		event_free(c->ev_handoff);
		close(hfd);
	}
	if (c->fd >= 0)
		close(c->fd);
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

static void arm_timer(struct smtp_conn *c, long ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	evtimer_add(c->ev_timer, &tv);
}

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

static int conn_set_fd_events(struct smtp_conn *c)
{
	if (c->ev_read != NULL)
		event_free(c->ev_read);
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	c->ev_read = event_new(c->srv->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	c->ev_write = event_new(c->srv->base, c->fd, EV_WRITE, on_write, c);
	return c->ev_read != NULL && c->ev_write != NULL ? 0 : -1;
}

/* A pool job of the session finished (delivery fsynced, password
 * checked): the reply goes out and reading resumes. */
static void conn_resume(void *arg)
{
	struct smtp_conn *c = arg;

	arm_timer(c, smtp_session_timeout_ms(c->session));
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
	smtp_sockaddr_text(&c->client, ip, sizeof(ip), &port);
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
		.client = c->client,
		.local = c->local,
		.tls = tls,
	};

	c->session = smtp_session_new(c->srv->env, &ci);
	smtp_session_set_resume(c->session, conn_resume, c);
	arm_timer(c, smtp_session_timeout_ms(c->session));
	/* the name is for the Received: header: the greeting does not wait */
	if (mc_resolver_mode(c->srv->resolver) != MC_DNS_NO)
		c->lookup = mc_resolve_start(c->srv->resolver, (const struct sockaddr *)&c->client,
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
	int plain = -1;

	event_free(c->ev_handoff);
	c->ev_handoff = NULL;
	if (what & EV_TIMEOUT) {
		close(hfd);
		sp_log(SP_LOG_NOTICE, "smtp_starttls_failed", "why=timeout");
		conn_close(c, "handoff timeout");
		return;
	}
	memset(&facts, 0, sizeof(facts));
	if (sp_handoff_finish(hfd, &plain, &facts, &error) < 0) {
		sp_log(SP_LOG_NOTICE, "smtp_starttls_failed", "why=\"%s\"", error != NULL ? error : "");
		free(error);
		conn_close(c, "handoff failed");
		return;
	}
	c->fd = plain;
	if (evutil_make_socket_nonblocking(c->fd) < 0 || conn_set_fd_events(c) < 0) {
		conn_close(c, "cannot watch the plaintext socket");
		return;
	}
	/* Only tlsd's reply can make a session TLS (never the client). */
	facts.tls = true;
	smtp_session_tls_ready(c->session, &facts);
	arm_timer(c, smtp_session_timeout_ms(c->session));
	conn_update(c);
}

/* RFC 3207: the 220 is written; the client fd goes to tlsd. Whatever the
 * client sent after STARTTLS is still in the socket and becomes part of
 * the TLS handshake (which then fails): it is never read as SMTP. */
static void conn_handoff(struct smtp_conn *c)
{
	/* tlsd's policy for both listeners is service.smtp.* (certificates,
	 * versions); the listener shows in the addresses */
	const char *service = "smtp";
	char *error = NULL;
	int hfd;
	struct timeval tv;
	long ms = c->srv->env->command_timeout_ms;

	event_del(c->ev_read);
	event_del(c->ev_write);
	evtimer_del(c->ev_timer);
	hfd = sp_handoff_start(c->srv->cfg.handoff_socket, service, c->fd,
			       (const struct sockaddr *)&c->client, c->client_len,
			       (const struct sockaddr *)&c->local, c->local_len, &error);
	if (hfd < 0) {
		sp_log(SP_LOG_ERR, "smtp_starttls_failed", "why=\"%s\"", error != NULL ? error : "");
		free(error);
		conn_close(c, "handoff start failed");
		return;
	}
	/* tlsd holds its own copy now */
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

/* Writes what the session has queued (one write for a pipelined batch),
 * acts on its wants, and arms the events that bring us back. */
static void conn_update(struct smtp_conn *c)
{
	for (int round = 0; round < 64; round++) {
		size_t len;
		const uint8_t *out = smtp_session_output(c->session, &len);
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
			smtp_session_output_consumed(c->session, (size_t)n);
			if ((size_t)n < len)
				break;
		}
		wants = smtp_session_wants(c->session);
		if (wants & SMTP_WANT_CLOSE) {
			conn_close(c, "session closed");
			return;
		}
		if (wants & SMTP_WANT_STARTTLS) {
			conn_handoff(c);
			return;
		}
		/* output drained: run input held back by backpressure */
		smtp_session_process(c->session);
		smtp_session_output(c->session, &len);
		if (len == 0)
			break;
	}
	{
		size_t len;

		smtp_session_output(c->session, &len);
		if (len > 0)
			event_add(c->ev_write, NULL);
		if (smtp_session_input_room(c->session) > 0 &&
		    (smtp_session_wants(c->session) & SMTP_WANT_READ))
			event_add(c->ev_read, NULL);
		else
			event_del(c->ev_read);
	}
}

static void proxy_read(struct smtp_conn *c)
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
			sp_log(SP_LOG_WARN, "smtp_proxy_header", "result=too_long");
			conn_close(c, NULL);
		}
		return;
	}
	if (rc < 0) {
		sp_log(SP_LOG_WARN, "smtp_proxy_header", "result=malformed why=\"%s\"",
		       why != NULL ? why : "");
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
	/* bytes after the header are the client's first SMTP input */
	if ((size_t)rc < c->plen)
		smtp_session_feed(c->session, c->pbuf + rc, c->plen - (size_t)rc);
	conn_update(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *c = arg;
	uint8_t buf[READ_CHUNK];
	size_t budget = READ_BUDGET;

	(void)what;
	if (c->want_proxy) {
		proxy_read(c);
		return;
	}
	while (budget > 0) {
		size_t room = smtp_session_input_room(c->session);
		ssize_t n;

		if (room == 0 || !(smtp_session_wants(c->session) & SMTP_WANT_READ))
			break;
		if (room > sizeof(buf))
			room = sizeof(buf);
		n = read(fd, buf, room);
		if (n > 0) {
			smtp_session_feed(c->session, buf, (size_t)n);
			budget -= (size_t)n > budget ? budget : (size_t)n;
			arm_timer(c, smtp_session_timeout_ms(c->session));
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break; /* input drained: now the batch of replies goes out */
		smtp_session_eof(c->session);
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
	struct smtp_listener_slot *slot = arg;
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
	c->kind = slot->kind;
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
	if (c->ev_timer == NULL || evutil_make_socket_nonblocking(fd) < 0 ||
	    conn_set_fd_events(c) < 0) {
		conn_close(c, "cannot set up the connection");
		return;
	}
	if (slot->kind == SMTP_LISTEN_BACKEND) {
		/* The header is read before anything else; only it may speak of TLS */
		c->want_proxy = true;
		arm_timer(c, srv->cfg.proxy_header_timeout_ms);
		event_add(c->ev_read, NULL);
		return;
	}
	conn_start_session(c, NULL);
	conn_update(c);
}

/* ------------------------------------------------------------ listeners */

static int add_listener(struct smtp_server *srv, enum smtp_listener kind, int fd,
			const char *unix_path, char **error_r)
{
	struct smtp_listener_slot *slot;

	if (srv->n_listeners >= MAX_LISTENERS) {
		*error_r = sp_xasprintf("too many listeners");
		close(fd);
		return -1;
	}
	slot = &srv->listeners[srv->n_listeners];
	slot->srv = srv;
	slot->kind = kind;
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
int smtp_server_listen_tcp(struct smtp_server *srv, enum smtp_listener kind, const char *addr,
			   unsigned port, char **error_r)
{
	int fd = mc_listen_tcp(addr, port, error_r);

	if (fd < 0)
		return -1;
	if (add_listener(srv, kind, fd, NULL, error_r) < 0)
		return -1;
	sp_log(SP_LOG_INFO, "listen", "service=%s addr=%s port=%u", listener_name(kind), addr, port);
	return 0;
}

int smtp_server_listen_backend(struct smtp_server *srv, const char *spec, char **error_r)
{
	int fd = mc_listen_backend(spec, error_r);

	/* a unix socket's path is the registry's: only the master removes it */
	if (fd < 0 || add_listener(srv, SMTP_LISTEN_BACKEND, fd, NULL, error_r) < 0)
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
	for (size_t i = 0; i < srv->n_listeners; i++) {
		struct smtp_listener_slot *slot = &srv->listeners[i];

		evconnlistener_free(slot->lev);
		if (slot->unix_path != NULL) {
			unlink(slot->unix_path);
			free(slot->unix_path);
		}
	}
	srv->n_listeners = 0;
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
