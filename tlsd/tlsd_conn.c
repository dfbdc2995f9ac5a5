/* One client connection in a TLS worker: the state machine (handshake, backend
 * connect, relay), its events and timers, and its end. The relay itself is in
 * tlsd_relay.c. Every callback ends in conn_run(), which either frees the
 * connection or arms exactly the events its state waits for. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/err.h>

#include "common/frame.h"
#include "common/fdpass.h"
#include "common/handoff.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "tlsd/tlsd_conn.h"

#define TLSD_JOB_RETRY_MS 20

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The relay forwards each read as soon as it has it: with Nagle on, a small
 * record or command written while an earlier segment is unacknowledged waits
 * for the peer's (possibly delayed, up to 40 ms) ACK. Both relay sockets turn
 * it off, as nginx and haproxy do on proxied connections. A handed-off fd or
 * a backend that is not TCP (a unix socket) refuses the option: nothing to do. */
static void set_nodelay(int fd, const char *side)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOPROTOOPT)
		sp_log(SP_LOG_DEBUG, "tcp_nodelay", "side=%s err=\"%s\"", side, strerror(errno));
}

static void ms_to_tv(long ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

static void conn_run(struct tlsd_conn *c);

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	conn_run(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tlsd_conn *c = arg;

	if (c->state == TLSD_CONN_HANDSHAKE) {
		sp_log(SP_LOG_INFO, "handshake_timeout", "service=%s client=%s worker=%d",
		       c->svc->name, c->peer, c->w->index);
		c->reason = "handshake_timeout";
	} else if (c->state == TLSD_CONN_CONNECTING) {
		sp_log(SP_LOG_WARN, "backend_down", "service=%s client=%s backend=%s err=\"connect timed out\"",
		       c->svc->name, c->peer, c->svc->backend.text);
		c->reason = "backend_down";
	} else if (c->state == TLSD_CONN_DRAIN_ASYNC) {
		c->reason = "keyop_stuck";
	} else {
		c->reason = "idle_timeout";
	}
	/* conn_run sees reason set and ends the connection */
	conn_run(c);
}

/* ---- async fds (SSL_MODE_ASYNC: a key operation is with keyd) ---- */

int tlsd_conn_async_fds(struct tlsd_conn *c)
{
	OSSL_ASYNC_FD add[TLSD_MAX_ASYNC_FDS], del[TLSD_MAX_ASYNC_FDS];
	size_t n_add = 0, n_del = 0;

	if (SSL_get_changed_async_fds(c->ssl, NULL, &n_add, NULL, &n_del) != 1 ||
	    n_add > TLSD_MAX_ASYNC_FDS || n_del > TLSD_MAX_ASYNC_FDS ||
	    SSL_get_changed_async_fds(c->ssl, add, &n_add, del, &n_del) != 1) {
		c->reason = "async_fds";
		return -1;
	}
	for (size_t i = 0; i < n_del; i++) {
		for (size_t j = 0; j < TLSD_MAX_ASYNC_FDS; j++) {
			if (c->ev_async[j] != NULL && c->async_fd[j] == del[i]) {
				event_free(c->ev_async[j]);
				c->ev_async[j] = NULL;
				c->async_fd[j] = -1;
			}
		}
	}
	for (size_t i = 0; i < n_add; i++) {
		size_t j;

		for (j = 0; j < TLSD_MAX_ASYNC_FDS && c->ev_async[j] != NULL; j++)
			;
		if (j == TLSD_MAX_ASYNC_FDS) {
			c->reason = "async_fds";
			return -1;
		}
		c->ev_async[j] = event_new(c->w->base, add[i], EV_READ | EV_PERSIST, on_event, c);
		if (c->ev_async[j] == NULL || event_add(c->ev_async[j], NULL) < 0) {
			c->reason = "async_fds";
			return -1;
		}
		c->async_fd[j] = add[i];
	}
	return 0;
}

enum tlsd_want tlsd_conn_want(struct tlsd_conn *c, int ssl_err)
{
	switch (ssl_err) {
	case SSL_ERROR_WANT_READ:
		return WANT_CREAD;
	case SSL_ERROR_WANT_WRITE:
		return WANT_CWRITE;
	case SSL_ERROR_WANT_ASYNC:
		return tlsd_conn_async_fds(c) < 0 ? WANT_NOTHING : WANT_ASYNC;
	case SSL_ERROR_WANT_ASYNC_JOB:
		return WANT_JOB;  /* the async job pool is empty: retry shortly */
	default:
		return WANT_NOTHING;
	}
}

/* ---- the end ---- */

static void send_handoff_error(struct tlsd_conn *c)
{
	struct sp_msgbuf b;

	sp_msgbuf_init(&b, SP_HANDOFF_MAX_MSG);
	sp_msg_put_u8(&b, SP_HANDOFF_VERSION);
	sp_msg_put_u8(&b, SP_HANDOFF_ERROR);
	sp_msg_put_str(&b, c->reason ? c->reason : "failed");
	if (sp_msgbuf_finish(&b) == 0 && sp_fd_send(c->hoff_fd, -1, b.data, b.len) < 0)
		sp_log(SP_LOG_INFO, "handoff_reply_failed", "service=%s client=%s err=\"%s\"",
		       c->svc->name, c->peer, strerror(errno));
	sp_msgbuf_release(&b);
}

static void conn_free(struct tlsd_conn *c)
{
	struct tlsd_worker *w = c->w;

	sp_log(c->reason != NULL && strcmp(c->reason, "closed_before_hello") == 0 ? SP_LOG_DEBUG
									       : SP_LOG_INFO,
	       "conn_close", "service=%s client=%s worker=%d reason=%s in=%llu out=%llu ms=%llu",
	       c->svc->name, c->peer, w->index, c->reason ? c->reason : "done",
	       (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
	       (unsigned long long)(now_ms() - c->start_ms));
	if (c->hoff_fd >= 0) {
		send_handoff_error(c);
		close(c->hoff_fd);
	}
	event_free(c->ev_cread);
	event_free(c->ev_cwrite);
	if (c->ev_bread != NULL)
		event_free(c->ev_bread);
	if (c->ev_bwrite != NULL)
		event_free(c->ev_bwrite);
	event_free(c->ev_timer);
	event_free(c->ev_retry);
	for (size_t j = 0; j < TLSD_MAX_ASYNC_FDS; j++) {
		if (c->ev_async[j] != NULL)
			event_free(c->ev_async[j]);
	}
	SSL_free(c->ssl);
	ERR_clear_error();
	close(c->cfd);
	if (c->bfd >= 0)
		close(c->bfd);
	tlsd_buf_free(&c->c2b);
	tlsd_buf_free(&c->b2c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns.head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->conns.count--;
	tlsd_ctxset_unref(&c->set);
	free(c);
	tlsd_worker_conn_gone(w);
}

/* Ends the connection: a paused key operation is let finish first (its job
 * holds the SSL), else close_notify when TLS is up, then free. Returns true
 * if c was freed. */
static bool conn_end(struct tlsd_conn *c)
{
	if (c->ssl != NULL && SSL_waiting_for_async(c->ssl)) {
		struct timeval tv;

		if (c->state != TLSD_CONN_DRAIN_ASYNC) {
			/* The client gets nothing more; the fd stays open (not reused)
			 * until the job is done with it. */
			shutdown(c->cfd, SHUT_RDWR);
			c->state = TLSD_CONN_DRAIN_ASYNC;
			c->drain_reason = c->reason;
			c->reason = NULL;
			ms_to_tv(tlsd_ctxset_config(c->set)->keyop_timeout_ms + 1000, &tv);
			event_add(c->ev_timer, &tv);
			event_del(c->ev_cread);
			event_del(c->ev_cwrite);
			return false;
		}
		/* keyd never answered within its own timeout: leak the SSL (the
		 * paused job points into it) rather than free it under the job. */
		sp_log(SP_LOG_ERR, "keyop_stuck", "service=%s client=%s: SSL leaked", c->svc->name,
		       c->peer);
		c->ssl = NULL;
	}
	if (c->state == TLSD_CONN_DRAIN_ASYNC && c->drain_reason != NULL && c->reason == NULL)
		c->reason = c->drain_reason;
	if (c->ssl != NULL && c->tls_up && !c->close_notify_sent) {
		/* one try, non-blocking: the clean close the client deserves */
		ERR_clear_error();
		if (SSL_shutdown(c->ssl) >= 0)
			c->close_notify_sent = true;
		ERR_clear_error();
	}
	conn_free(c);
	return true;
}

/* ---- steps ---- */

enum step { STEP_AGAIN, STEP_WAIT, STEP_END };

static void proxy_addrs(struct tlsd_conn *c)
{
	socklen_t len = sizeof(c->info.src);

	if (getpeername(c->cfd, (struct sockaddr *)&c->info.src, &len) < 0)
		c->info.src.ss_family = AF_UNSPEC;
	len = sizeof(c->info.dst);
	if (getsockname(c->cfd, (struct sockaddr *)&c->info.dst, &len) < 0)
		c->info.dst.ss_family = AF_UNSPEC;
	if (c->info.src.ss_family != c->info.dst.ss_family) {
		c->info.src.ss_family = AF_UNSPEC;
		c->info.dst.ss_family = AF_UNSPEC;
	}
}

static void log_tls(struct tlsd_conn *c)
{
	char sni[300], cn[300];

	sp_log(SP_LOG_INFO, "tls_ok",
	       "service=%s client=%s worker=%d version=%s cipher=%s key=%s sni=\"%s\" resumed=%d cert=%s cn=\"%s\" verify=%u",
	       c->svc->name, c->peer, c->w->index, c->info.tls_version, c->info.tls_cipher,
	       c->info.tls_key_alg, sp_log_escape(sni, sizeof(sni), c->info.sni, strlen(c->info.sni)),
	       SSL_session_reused(c->ssl), (c->info.tls_client & SP_PP2_CLIENT_CERT_CONN) ? "yes" : "no",
	       sp_log_escape(cn, sizeof(cn), c->info.cert_cn, strlen(c->info.cert_cn)),
	       (unsigned)c->info.tls_verify);
}

static void relay_buffers(struct tlsd_conn *c)
{
	size_t cap = tlsd_ctxset_config(c->set)->relay_buffer;

	tlsd_buf_init(&c->c2b, cap);
	tlsd_buf_init(&c->b2c, cap);
}

static int backend_events(struct tlsd_conn *c)
{
	c->ev_bread = event_new(c->w->base, c->bfd, EV_READ | EV_PERSIST, on_event, c);
	c->ev_bwrite = event_new(c->w->base, c->bfd, EV_WRITE | EV_PERSIST, on_event, c);
	if (c->ev_bread == NULL || c->ev_bwrite == NULL) {
		c->reason = "no_memory";
		return -1;
	}
	return 0;
}

/* STARTTLS: the plaintext end of a socketpair and the facts go back to the
 * requester (common/handoff.h "reply OK"); our end is the "backend". */
static enum step handoff_reply(struct tlsd_conn *c)
{
	struct sp_msgbuf b;
	uint8_t hdr[SP_PP2_HDR_MAX];
	int sp[2], hlen;

	hlen = sp_proxy2_encode(&c->info, hdr, sizeof(hdr));
	if (hlen < 0) {
		c->reason = "facts_encode";
		return STEP_END;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0) {
		sp_log(SP_LOG_ERR, "socketpair", "err=\"%s\"", strerror(errno));
		c->reason = "socketpair";
		return STEP_END;
	}
	sp_msgbuf_init(&b, SP_HANDOFF_MAX_MSG);
	sp_msg_put_u8(&b, SP_HANDOFF_VERSION);
	sp_msg_put_u8(&b, SP_HANDOFF_OK);
	sp_msg_put_bytes(&b, hdr, (size_t)hlen);
	if (sp_msgbuf_finish(&b) < 0 || sp_fd_send(c->hoff_fd, sp[1], b.data, b.len) < 0) {
		sp_log(SP_LOG_INFO, "handoff_reply_failed", "service=%s client=%s err=\"%s\"",
		       c->svc->name, c->peer, strerror(errno));
		sp_msgbuf_release(&b);
		close(sp[0]);
		close(sp[1]);
		close(c->hoff_fd);
		c->hoff_fd = -1;  /* the requester is gone: no error reply either */
		c->reason = "handoff_reply_failed";
		return STEP_END;
	}
	sp_msgbuf_release(&b);
	close(sp[1]);
	close(c->hoff_fd);
	c->hoff_fd = -1;
	c->bfd = sp[0];
	if (backend_events(c) < 0)
		return STEP_END;
	relay_buffers(c);
	c->state = TLSD_CONN_RELAY;
	return STEP_AGAIN;
}

/* Implicit TLS: connect to the service's backend; the PROXY v2 header is the
 * first thing queued for it. */
static enum step backend_connect(struct tlsd_conn *c)
{
	const struct tlsd_addr *a = &c->svc->backend;
	int hlen, r;

	c->bfd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->bfd < 0) {
		sp_log(SP_LOG_ERR, "backend_socket", "err=\"%s\"", strerror(errno));
		c->reason = "backend_down";
		return STEP_END;
	}
	if (a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6)
		set_nodelay(c->bfd, "backend");
	if (backend_events(c) < 0)
		return STEP_END;
	relay_buffers(c);
	hlen = sp_proxy2_encode(&c->info, c->c2b.data + c->c2b.end, tlsd_buf_space(&c->c2b));
	if (hlen < 0) {
		c->reason = "facts_encode";
		return STEP_END;
	}
	c->c2b.end = (size_t)hlen;
	do
		r = connect(c->bfd, (const struct sockaddr *)&a->ss, a->len);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		c->state = TLSD_CONN_RELAY;
		return STEP_AGAIN;
	}
	if (errno == EINPROGRESS) {
		struct timeval tv;

		/* the handshake timeout also bounds the connect */
		ms_to_tv(tlsd_ctxset_config(c->set)->handshake_timeout_ms, &tv);
		event_add(c->ev_timer, &tv);
		c->state = TLSD_CONN_CONNECTING;
		return STEP_WAIT;
	}
	sp_log(SP_LOG_WARN, "backend_down", "service=%s client=%s backend=%s err=\"%s\"",
	       c->svc->name, c->peer, a->text, strerror(errno));
	c->reason = "backend_down";
	return STEP_END;
}

static enum step step_handshake(struct tlsd_conn *c)
{
	int n, err;

	ERR_clear_error();
	n = SSL_do_handshake(c->ssl);
	if (n == 1) {
		c->tls_up = true;
		c->hs_want = WANT_NOTHING;
		tlsd_facts_from_ssl(c->ssl, &c->info);
		log_tls(c);
		return c->hoff_fd >= 0 ? handoff_reply(c) : backend_connect(c);
	}
	err = SSL_get_error(c->ssl, n);
	c->hs_want = tlsd_conn_want(c, err);
	if (c->hs_want != WANT_NOTHING)
		return STEP_WAIT;
	if (c->reason == NULL) {
		char why[256];

		tlsd_ssl_errors(why, sizeof(why));
		if (BIO_number_read(SSL_get_rbio(c->ssl)) == 0) {
			/* closed before sending a byte: a port check (load
			 * balancers, monitoring, readiness probes), not a failed
			 * handshake worth an operator's attention */
			c->reason = "closed_before_hello";
		} else {
			sp_log(SP_LOG_INFO, "handshake_failed",
			       "service=%s client=%s worker=%d err=%d reason=\"%s\"", c->svc->name,
			       c->peer, c->w->index, err, why);
			c->reason = "handshake_failed";
		}
	}
	return STEP_END;
}

static enum step step_connecting(struct tlsd_conn *c)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0) {
		/* still in progress if not writable yet: the write event decides */
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getpeername(c->bfd, (struct sockaddr *)&ss, &sl) < 0) {
			if (errno == ENOTCONN)
				return STEP_WAIT;
			soerr = errno;
		}
	}
	if (soerr != 0) {
		sp_log(SP_LOG_WARN, "backend_down", "service=%s client=%s backend=%s err=\"%s\"",
		       c->svc->name, c->peer, c->svc->backend.text, strerror(soerr));
		c->reason = "backend_down";
		return STEP_END;
	}
	c->state = TLSD_CONN_RELAY;
	return STEP_AGAIN;
}

static enum step step_relay(struct tlsd_conn *c)
{
	int r = tlsd_relay_step(c);

	return r == 0 ? STEP_WAIT : STEP_END;
}

static enum step step_drain(struct tlsd_conn *c)
{
	/* resume the paused job so it can finish (its result is thrown away) */
	ERR_clear_error();
	if (SSL_do_handshake(c->ssl) < 0 && SSL_get_error(c->ssl, -1) == SSL_ERROR_WANT_ASYNC) {
		if (tlsd_conn_async_fds(c) == 0)
			return STEP_WAIT;
	}
	ERR_clear_error();
	return STEP_END;
}

/* ---- arming ---- */

static void set_event(struct event *ev, bool on)
{
	if (ev == NULL)
		return;
	if (on && !event_pending(ev, EV_READ | EV_WRITE, NULL))
		event_add(ev, NULL);
	else if (!on && event_pending(ev, EV_READ | EV_WRITE, NULL))
		event_del(ev);
}

static void conn_arm(struct tlsd_conn *c)
{
	bool cread = false, cwrite = false, bread = false, bwrite = false, job = false;
	enum tlsd_want wants[3] = { c->hs_want, c->rd_want, c->wr_want };

	switch (c->state) {
	case TLSD_CONN_HANDSHAKE:
		wants[1] = wants[2] = WANT_NOTHING;
		break;
	case TLSD_CONN_CONNECTING:
		wants[0] = wants[1] = wants[2] = WANT_NOTHING;
		bwrite = true;
		break;
	case TLSD_CONN_RELAY:
		wants[0] = WANT_NOTHING;
		tlsd_buf_release_if_empty(&c->c2b);
		tlsd_buf_release_if_empty(&c->b2c);
		bread = !c->backend_eof && !tlsd_buf_full(&c->b2c);
		bwrite = tlsd_buf_len(&c->c2b) > 0;
		break;
	case TLSD_CONN_DRAIN_ASYNC:
		wants[0] = wants[1] = wants[2] = WANT_NOTHING;
		break;
	}
	for (int i = 0; i < 3; i++) {
		cread |= wants[i] == WANT_CREAD;
		cwrite |= wants[i] == WANT_CWRITE;
		job |= wants[i] == WANT_JOB;
	}
	set_event(c->ev_cread, cread);
	set_event(c->ev_cwrite, cwrite);
	set_event(c->ev_bread, bread);
	set_event(c->ev_bwrite, bwrite);
	if (job) {
		struct timeval tv;

		ms_to_tv(TLSD_JOB_RETRY_MS, &tv);
		event_add(c->ev_retry, &tv);
	}
	if (c->state == TLSD_CONN_RELAY && c->activity) {
		struct timeval tv;

		c->activity = false;
		ms_to_tv(tlsd_ctxset_config(c->set)->idle_timeout_ms, &tv);
		event_add(c->ev_timer, &tv);
	}
}

/* The one place that moves a connection between states. */
static void conn_run(struct tlsd_conn *c)
{
	enum step s = STEP_AGAIN;

	while (s == STEP_AGAIN) {
		enum tlsd_conn_state before = c->state;

		if (c->reason != NULL) {
			s = STEP_END;
			break;
		}
		switch (c->state) {
		case TLSD_CONN_HANDSHAKE:
			s = step_handshake(c);
			break;
		case TLSD_CONN_CONNECTING:
			s = step_connecting(c);
			break;
		case TLSD_CONN_RELAY:
			s = step_relay(c);
			break;
		case TLSD_CONN_DRAIN_ASYNC:
			s = step_drain(c);
			break;
		}
		if (s == STEP_AGAIN && c->state == TLSD_CONN_RELAY && before != TLSD_CONN_RELAY)
			c->activity = true;  /* start the idle timer */
	}
	if (s == STEP_END) {
		if (c->reason == NULL)
			c->reason = "done";
		if (conn_end(c))
			return;
	}
	conn_arm(c);
}

/* ---- creation ---- */

void tlsd_conn_start(struct tlsd_worker *w, const char *service, int client_fd, int hoff_fd,
		     const struct sp_proxy_info *addrs)
{
	const struct tlsd_config *cfg = tlsd_ctxset_config(w->current);
	SSL_CTX *ctx = tlsd_ctxset_ctx(w->current, service);
	struct tlsd_conn *c;
	struct timeval tv;

	if (ctx == NULL) {
		sp_log(SP_LOG_WARN, "conn_refused", "service=%s reason=\"no certificate for the service\"",
		       service);
		close(client_fd);
		if (hoff_fd >= 0)
			close(hoff_fd);
		tlsd_worker_conn_gone(w);
		return;
	}
	/* Ownership: from here the connection owns client_fd, hoff_fd and its
	 * reference on the ctxset. Every path below and every callback either
	 * frees it (conn_free, which closes and releases all of them) or arms
	 * the next event it waits for (conn_arm); nothing else keeps a pointer. */
	c = sp_xcalloc(1, sizeof(*c));
	c->w = w;
	c->set = w->current;
	tlsd_ctxset_ref(c->set);
	c->svc = tlsd_config_service(cfg, service);
	c->state = TLSD_CONN_HANDSHAKE;
	c->cfd = client_fd;
	set_nodelay(client_fd, "client");
	c->bfd = -1;
	c->hoff_fd = hoff_fd;
	c->start_ms = now_ms();
	for (size_t j = 0; j < TLSD_MAX_ASYNC_FDS; j++)
		c->async_fd[j] = -1;
	if (addrs != NULL) {
		c->info = *addrs;
		c->info.tls = false;
	} else {
		proxy_addrs(c);
	}
	tlsd_addr_format((struct sockaddr *)&c->info.src, sizeof(c->info.src), c->peer, sizeof(c->peer));
	c->next = w->conns.head;
	if (c->next != NULL)
		c->next->prev = c;
	w->conns.head = c;
	w->conns.count++;

	c->ev_cread = event_new(w->base, client_fd, EV_READ | EV_PERSIST, on_event, c);
	c->ev_cwrite = event_new(w->base, client_fd, EV_WRITE | EV_PERSIST, on_event, c);
	c->ev_timer = evtimer_new(w->base, on_timer, c);
	c->ev_retry = evtimer_new(w->base, on_event, c);
	c->ssl = SSL_new(ctx);
	if (c->ev_cread == NULL || c->ev_cwrite == NULL || c->ev_timer == NULL ||
	    c->ev_retry == NULL || c->ssl == NULL || SSL_set_fd(c->ssl, client_fd) != 1) {
		char why[256];

		sp_log(SP_LOG_ERR, "conn_setup", "service=%s reason=\"%s\"", service,
		       tlsd_ssl_errors(why, sizeof(why)));
		c->reason = "setup_failed";
		if (c->ev_cread == NULL || c->ev_cwrite == NULL || c->ev_timer == NULL ||
		    c->ev_retry == NULL)
			abort();  /* libevent out of memory: like sp_xmalloc */
		conn_free(c);
		return;
	}
	SSL_set_accept_state(c->ssl);
	ms_to_tv(cfg->handshake_timeout_ms, &tv);
	event_add(c->ev_timer, &tv);
	c->hs_want = WANT_CREAD;
	conn_arm(c);
}

void tlsd_conn_close_all(struct tlsd_worker *w)
{
	struct tlsd_conn *c = w->conns.head, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		if (c->state == TLSD_CONN_DRAIN_ASYNC)
			continue;
		c->reason = "shutdown";
		conn_run(c);
	}
}
