/* hsbench's per-connection state machine: connect, the STARTTLS preamble,
 * the TLS handshake, an optional request/response, close_notify and the
 * wait for the peer's close. Non-blocking; the event loop in hsbench_main.c
 * calls hs_conn_event() when epoll reports the socket. Ownership: a slot is
 * either idle (on run->idle) or holds a socket registered with epoll and
 * waits for its next event or its deadline; every path out of a connection
 * goes through conn_end(), which frees the SSL, closes the socket and puts
 * the slot back on the idle stack. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "bench/bench.h"

#define RESTART_DELAY_NS 1000000ULL      /* after a start that failed at once */
#define SCRATCH_SIZE 16384

enum conn_state {
	CS_IDLE,
	CS_CONNECTING,      /* TCP connect in progress */
	CS_PRE_READ,        /* STARTTLS preamble: reading reply lines */
	CS_PRE_WRITE,       /* STARTTLS preamble: writing a command */
	CS_HANDSHAKE,
	CS_APP_WRITE,       /* --request */
	CS_APP_READ,        /* --expect-bytes; in resume mode also the session ticket */
	CS_SHUTDOWN,        /* sending our close_notify */
	CS_CLOSE_WAIT       /* reading until the peer's close_notify or EOF */
};

struct hs_conn {
	size_t index;
	enum conn_state st;
	int fd;
	uint32_t interest;
	SSL *ssl;
	SSL_SESSION *session;            /* newest session of this slot (resume mode) */
	int offered;                     /* this handshake offered c->session */
	int got_session;                 /* the new-session callback ran on this connection */
	int handshake_ok;
	uint64_t t_start, t_tls, deadline, close_deadline, not_before;
	struct hs_starttls pre;
	char rbuf[BENCH_LINE_MAX];
	size_t rlen;
	const char *out;
	size_t out_len, out_off;
	long got;
};

static unsigned char scratch[SCRATCH_SIZE];   /* read and discarded */

uint64_t hs_now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct hs_conn *hs_conns_new(size_t n)
{
	struct hs_conn *conns = calloc(n, sizeof(*conns));
	size_t i;

	if (conns == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		conns[i].index = i;
		conns[i].fd = -1;
		conns[i].st = CS_IDLE;
	}
	return conns;
}

void hs_conns_free(struct hs_conn **conns, size_t n)
{
	size_t i;

	if (*conns == NULL)
		return;
	for (i = 0; i < n; i++) {
		struct hs_conn *c = &(*conns)[i];

		SSL_free(c->ssl);
		SSL_SESSION_free(c->session);
		if (c->fd >= 0)
			(void)close(c->fd);
	}
	free(*conns);
	*conns = NULL;
}

struct hs_conn *hs_conn_at(struct hs_conn *conns, size_t i)
{
	return &conns[i];
}

int hs_conn_idle(const struct hs_conn *c)
{
	return c->st == CS_IDLE;
}

uint64_t hs_conn_not_before(const struct hs_conn *c)
{
	return c->not_before;
}

int hs_conn_new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct hs_conn *c = SSL_get_app_data(ssl);

	if (c == NULL)
		return 0;
	SSL_SESSION_free(c->session);
	c->session = sess;
	c->got_session = 1;
	return 1;   /* we keep the reference */
}

/* Every path out of a connection: the slot is idle afterwards. After a
 * clean end the slot keeps its SSL for the next connection (SSL_clear is
 * much cheaper than SSL_new with OpenSSL 3, and the generator's CPU is the
 * scarce side); after a failure it is freed, so no state can carry over. */
static void conn_end_keep(struct hs_run *run, struct hs_conn *c, int keep_ssl)
{
	if (c->ssl != NULL && !keep_ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		/* closing the only descriptor removes it from the epoll set; a
		 * close() error leaves nothing to retry on Linux (the fd is gone) */
		(void)close(c->fd);
		c->fd = -1;
	}
	c->st = CS_IDLE;
	c->interest = 0;
	run->active--;
	run->idle[run->n_idle++] = c->index;
}

static void conn_end(struct hs_run *run, struct hs_conn *c)
{
	conn_end_keep(run, c, 0);
}

/* A connection that ran its course (close_notify exchanged or the peer
 * closed after the handshake). */
static void conn_done(struct hs_run *run, struct hs_conn *c)
{
	ERR_clear_error();
	conn_end_keep(run, c, 1);
}

static void conn_fail(struct hs_run *run, struct hs_conn *c, const char *reason)
{
	hs_fail_count(&run->res->fail, reason);
	ERR_clear_error();
	conn_end(run, c);
}

static void conn_fail_errno(struct hs_run *run, struct hs_conn *c, const char *what, int err)
{
	char reason[BENCH_REASON_LEN];

	snprintf(reason, sizeof(reason), "%s: %s", what, strerror(err));
	conn_fail(run, c, reason);
}

/* A failure reason from OpenSSL's view of the last call. */
static void conn_fail_ssl(struct hs_run *run, struct hs_conn *c, const char *what, int ssl_err,
			  int saved_errno)
{
	char reason[BENCH_REASON_LEN];
	unsigned long e = ERR_peek_error();

	if (ssl_err == SSL_ERROR_SSL && e != 0) {
		const char *rs = ERR_reason_error_string(e);
		char code[24];

		if (rs == NULL) {
			snprintf(code, sizeof(code), "error:%08lX", e);
			rs = code;
		}
		if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
			snprintf(reason, sizeof(reason), "%s_error: %s (%s)", what, rs,
				 X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
		else
			snprintf(reason, sizeof(reason), "%s_error: %s", what, rs);
	} else if (ssl_err == SSL_ERROR_ZERO_RETURN) {
		snprintf(reason, sizeof(reason), "%s_error: peer sent close_notify", what);
	} else if (ssl_err == SSL_ERROR_SYSCALL && saved_errno != 0) {
		snprintf(reason, sizeof(reason), "%s_error: %s", what, strerror(saved_errno));
	} else {
		snprintf(reason, sizeof(reason), "%s_error: peer closed the connection", what);
	}
	conn_fail(run, c, reason);
}

/* 0, or -1 after failing the connection. */
static int set_interest(struct hs_run *run, struct hs_conn *c, uint32_t ev)
{
	struct epoll_event ee;

	if (c->interest == ev)
		return 0;
	memset(&ee, 0, sizeof(ee));
	ee.events = ev;
	ee.data.ptr = c;
	if (epoll_ctl(run->epfd, EPOLL_CTL_MOD, c->fd, &ee) < 0) {
		conn_fail_errno(run, c, "internal: epoll_ctl", errno);
		return -1;
	}
	c->interest = ev;
	return 0;
}

int hs_conn_start(struct hs_run *run, struct hs_conn *c, uint64_t now_ns)
{
	const struct bench_opts *o = run->opts;
	struct epoll_event ee;
	int one = 1, r;

	c->t_start = now_ns;
	c->deadline = now_ns + (uint64_t)o->timeout_ms * 1000000ULL;
	c->not_before = 0;
	c->rlen = 0;
	c->got = 0;
	c->offered = 0;
	c->got_session = 0;
	c->handshake_ok = 0;
	c->interest = 0;
	c->close_deadline = 0;
	hs_starttls_init(&c->pre, o->starttls);
	run->started++;
	run->res->attempts++;
	run->active++;
	c->st = CS_CONNECTING;

	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_fail_errno(run, c, "socket", errno);
		goto failed_at_once;
	}
	/* the handshake is a few small flights: don't let Nagle hold them */
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		conn_fail_errno(run, c, "setsockopt TCP_NODELAY", errno);
		goto failed_at_once;
	}
	do {
		r = connect(c->fd, (const struct sockaddr *)&o->addr, o->addrlen);
	} while (r < 0 && errno == EINTR);
	if (r < 0 && errno != EINPROGRESS) {
		if (errno == ECONNREFUSED)
			conn_fail(run, c, "connect_refused");
		else
			conn_fail_errno(run, c, "connect_error", errno);
		goto failed_at_once;
	}
	memset(&ee, 0, sizeof(ee));
	ee.events = EPOLLOUT;
	ee.data.ptr = c;
	if (epoll_ctl(run->epfd, EPOLL_CTL_ADD, c->fd, &ee) < 0) {
		conn_fail_errno(run, c, "internal: epoll_ctl", errno);
		goto failed_at_once;
	}
	c->interest = EPOLLOUT;
	/* even when connect() said 0, the EPOLLOUT event moves us on */
	return 0;

failed_at_once:
	c->not_before = now_ns + RESTART_DELAY_NS;
	return -1;
}

static int is_tls13(const struct hs_conn *c)
{
	return SSL_version(c->ssl) >= TLS1_3_VERSION;
}

static int need_read(const struct hs_run *run, const struct hs_conn *c)
{
	const struct bench_opts *o = run->opts;

	if (c->got < o->expect_bytes)
		return 1;
	/* resume mode: wait for the session to resume next time. TLS 1.2
	 * gives it in the handshake (or keeps the resumed one); TLS 1.3
	 * sends tickets after it (RFC 8446 4.6.1). */
	if (o->resume != BENCH_RESUME_NONE && !c->got_session && (is_tls13(c) || !c->offered))
		return 1;
	return 0;
}

static void note_negotiated(struct hs_negotiated *n, SSL *ssl)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	int nid;

	n->seen = 1;
	snprintf(n->version, sizeof(n->version), "%s", SSL_get_version(ssl));
	snprintf(n->cipher, sizeof(n->cipher), "%s", SSL_get_cipher_name(ssl));
	nid = SSL_get_negotiated_group(ssl);
	if (nid != 0 && nid != NID_undef) {
		const char *g = SSL_group_to_name(ssl, nid);

		snprintf(n->group, sizeof(n->group), "%s", g ? g : "?");
	}
	if (peer != NULL) {
		EVP_PKEY *pk = X509_get0_pubkey(peer);

		if (pk != NULL) {
			int id = EVP_PKEY_get_base_id(pk);

			snprintf(n->peer_key, sizeof(n->peer_key), "%s-%d",
				 id == EVP_PKEY_RSA ? "RSA" : id == EVP_PKEY_EC ? "EC" : OBJ_nid2sn(id),
				 EVP_PKEY_get_bits(pk));
		}
	}
	if (SSL_get_peer_signature_type_nid(ssl, &nid) == 1)
		snprintf(n->sig, sizeof(n->sig), "%s",
			 nid == EVP_PKEY_RSA_PSS ? "RSA-PSS" : nid == EVP_PKEY_EC ? "ECDSA"
			 : nid == EVP_PKEY_RSA ? "RSA-PKCS1" : OBJ_nid2sn(nid));
}

/* The handshake finished: count it and check reuse. A handshake that
 * reused when it must not, or did not when it should, is a failure, but
 * the connection goes on to its clean close so that the slot gets a fresh
 * session (and the server sees an ordinary client). */
static void handshake_done(struct hs_run *run, struct hs_conn *c, uint64_t now)
{
	const struct bench_opts *o = run->opts;
	struct hs_results *res = run->res;
	int reused = SSL_session_reused(c->ssl);
	int measured;

	c->handshake_ok = 1;
	if (o->resume == BENCH_RESUME_NONE) {
		if (reused) {
			hs_fail_count(&res->fail, "unexpected_reuse");
			return;
		}
		res->full++;
		measured = 1;
	} else if (c->offered) {
		if (!reused) {
			hs_fail_count(&res->fail, "not_resumed: server did a full handshake");
			return;
		}
		res->resumed++;
		measured = 1;
	} else {
		res->full++;       /* the slot's first handshake: warm-up */
		measured = 0;
	}
	res->handshakes++;
	if (measured) {
		hs_hist_record(&res->lat_total, (now - c->t_start) / 1000);
		hs_hist_record(&res->lat_tls, (now - c->t_tls) / 1000);
		if (!res->neg.seen)
			note_negotiated(&res->neg, c->ssl);
	}
}

static int begin_tls(struct hs_run *run, struct hs_conn *c, uint64_t now)
{
	const struct bench_opts *o = run->opts;

	if (c->ssl != NULL && SSL_clear(c->ssl) != 1) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->ssl == NULL)
		c->ssl = SSL_new(run->ctx);
	if (c->ssl == NULL) {
		conn_fail(run, c, "internal: SSL_new failed");
		return -1;
	}
	/* SSL_clear keeps a resumable session: offer one only when we mean to */
	if (SSL_set_session(c->ssl, NULL) != 1) {
		conn_fail(run, c, "internal: SSL_set_session failed");
		return -1;
	}
	if (SSL_set_fd(c->ssl, c->fd) != 1) {
		conn_fail(run, c, "internal: SSL_set_fd failed");
		return -1;
	}
	SSL_set_app_data(c->ssl, c);
	SSL_set_connect_state(c->ssl);
	if (o->sni != NULL) {
		if (SSL_set_tlsext_host_name(c->ssl, o->sni) != 1 ||
		    (!o->no_verify && SSL_set1_host(c->ssl, o->sni) != 1)) {
			conn_fail(run, c, "internal: setting the server name failed");
			return -1;
		}
	}
	if (o->resume != BENCH_RESUME_NONE && c->session != NULL) {
		if (SSL_set_session(c->ssl, c->session) != 1) {
			conn_fail(run, c, "internal: SSL_set_session failed");
			return -1;
		}
		c->offered = 1;
	}
	c->t_tls = now;
	c->st = CS_HANDSHAKE;
	return 0;
}

/* STARTTLS preamble: process the buffered reply lines. 1: TLS may start;
 * 0: a command to write, or more to read (c->st says which); -1: failed. */
static int pre_lines(struct hs_run *run, struct hs_conn *c)
{
	for (;;) {
		char *nl = memchr(c->rbuf, '\n', c->rlen);
		size_t len, used;
		const char *cmd;
		enum hs_st_action a;

		if (nl == NULL) {
			if (c->rlen == sizeof(c->rbuf)) {
				conn_fail(run, c, "starttls_error: reply line too long");
				return -1;
			}
			c->st = CS_PRE_READ;
			return 0;
		}
		used = (size_t)(nl - c->rbuf) + 1;
		len = used - 1;
		if (len > 0 && c->rbuf[len - 1] == '\r')
			len--;
		a = hs_starttls_line(&c->pre, c->rbuf, len, &cmd);
		if (a == HS_ST_REFUSED) {
			char reason[BENCH_REASON_LEN];
			size_t i, n = len < 3 ? len : 3;

			memcpy(reason, "starttls_refused: ", 18);
			for (i = 0; i < n; i++)   /* the reply code only: bounded distinct reasons */
				reason[18 + i] = (c->rbuf[i] >= 0x21 && c->rbuf[i] < 0x7f) ? c->rbuf[i] : '?';
			reason[18 + n] = '\0';
			conn_fail(run, c, reason);
			return -1;
		}
		memmove(c->rbuf, c->rbuf + used, c->rlen - used);
		c->rlen -= used;
		if (a == HS_ST_TLS) {
			/* RFC 3207 4.2 seen from the client: nothing may come
			 * between the go-ahead and the TLS negotiation */
			if (c->rlen != 0) {
				conn_fail(run, c, "starttls_error: data after the go-ahead");
				return -1;
			}
			return 1;
		}
		if (a == HS_ST_SEND) {
			c->out = cmd;
			c->out_len = strlen(cmd);
			c->out_off = 0;
			c->st = CS_PRE_WRITE;
			return 0;
		}
	}
}

/* Runs the state machine until it has to wait or the connection ends. */
static void conn_run(struct hs_run *run, struct hs_conn *c)
{
	const struct bench_opts *o = run->opts;
	int r, e, saved;
	ssize_t n;

	for (;;) {
		switch (c->st) {
		case CS_IDLE:
			return;

		case CS_CONNECTING: {
			int err = 0;
			socklen_t el = sizeof(err);

			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
				err = errno;
			if (err == ECONNREFUSED) {
				conn_fail(run, c, "connect_refused");
				return;
			}
			if (err != 0) {
				conn_fail_errno(run, c, "connect_error", err);
				return;
			}
			if (o->starttls != BENCH_ST_NONE)
				c->st = CS_PRE_READ;
			else if (begin_tls(run, c, hs_now_ns()) < 0)
				return;
			continue;
		}

		case CS_PRE_READ:
			r = pre_lines(run, c);
			if (r < 0)
				return;
			if (r == 1) {
				if (begin_tls(run, c, hs_now_ns()) < 0)
					return;
				continue;
			}
			if (c->st == CS_PRE_WRITE)
				continue;
			n = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				(void)set_interest(run, c, EPOLLIN);
				return;
			}
			if (n < 0) {
				conn_fail_errno(run, c, "starttls_error", errno);
				return;
			}
			if (n == 0) {
				conn_fail(run, c, "starttls_error: server closed the connection");
				return;
			}
			c->rlen += (size_t)n;
			continue;

		case CS_PRE_WRITE:
			n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				(void)set_interest(run, c, EPOLLOUT);
				return;
			}
			if (n < 0) {
				conn_fail_errno(run, c, "starttls_error", errno);
				return;
			}
			c->out_off += (size_t)n;
			if (c->out_off == c->out_len)
				c->st = CS_PRE_READ;
			continue;

		case CS_HANDSHAKE:
			ERR_clear_error();
			errno = 0;
			r = SSL_do_handshake(c->ssl);
			if (r == 1) {
				handshake_done(run, c, hs_now_ns());
				if (o->request_len > 0)
					c->st = CS_APP_WRITE;
				else if (need_read(run, c))
					c->st = CS_APP_READ;
				else
					c->st = CS_SHUTDOWN;
				c->out_off = 0;
				continue;
			}
			saved = errno;
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ) {
				(void)set_interest(run, c, EPOLLIN);
				return;
			}
			if (e == SSL_ERROR_WANT_WRITE) {
				(void)set_interest(run, c, EPOLLOUT);
				return;
			}
			conn_fail_ssl(run, c, "handshake", e, saved);
			return;

		case CS_APP_WRITE:
			ERR_clear_error();
			errno = 0;
			r = SSL_write(c->ssl, o->request + c->out_off, (int)(o->request_len - c->out_off));
			if (r > 0) {
				c->out_off += (size_t)r;
				if (c->out_off == o->request_len)
					c->st = need_read(run, c) ? CS_APP_READ : CS_SHUTDOWN;
				continue;
			}
			saved = errno;
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				(void)set_interest(run, c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
				return;
			}
			conn_fail_ssl(run, c, "request", e, saved);
			return;

		case CS_APP_READ:
			ERR_clear_error();
			errno = 0;
			r = SSL_read(c->ssl, scratch, (int)sizeof(scratch));
			if (r > 0) {
				c->got += r;
				if (!need_read(run, c))
					c->st = CS_SHUTDOWN;
				continue;
			}
			saved = errno;
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				/* a ticket may have been processed without app data */
				if (!need_read(run, c)) {
					c->st = CS_SHUTDOWN;
					continue;
				}
				(void)set_interest(run, c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
				return;
			}
			if (!need_read(run, c)) {
				/* all we wanted came, then the peer closed */
				ERR_clear_error();
				conn_done(run, c);
			} else if (c->got < o->expect_bytes) {
				if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && saved == 0) ||
				    e == SSL_ERROR_SSL)
					conn_fail(run, c, "short_response: peer closed before --expect-bytes");
				else
					conn_fail_ssl(run, c, "response", e, saved);
			} else {
				conn_fail(run, c, "no_session_ticket: peer closed before sending one");
			}
			return;

		case CS_SHUTDOWN:
			if (c->close_deadline == 0) {
				/* the peer gets a bounded time to answer our close */
				uint64_t wait_ms = (uint64_t)(o->timeout_ms < BENCH_CLOSE_WAIT_MAX_MS
							      ? o->timeout_ms : BENCH_CLOSE_WAIT_MAX_MS);

				c->close_deadline = hs_now_ns() + wait_ms * 1000000ULL;
			}
			ERR_clear_error();
			r = SSL_shutdown(c->ssl);
			if (r == 1) {
				conn_done(run, c);
				return;
			}
			if (r == 0) {
				c->st = CS_CLOSE_WAIT;
				continue;
			}
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				(void)set_interest(run, c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
				return;
			}
			/* the peer went first (reset, EOF): the handshake is counted */
			ERR_clear_error();
			conn_end(run, c);
			return;

		case CS_CLOSE_WAIT:
			/* Our close_notify is out; what still comes (TLS 1.3 session
			 * tickets, the peer's close_notify) is read raw and dropped,
			 * not decrypted: nothing in it matters any more, and the
			 * generator's CPU is what limits the measurable rate. */
			n = read(c->fd, scratch, sizeof(scratch));
			if (n > 0 || (n < 0 && errno == EINTR))
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				(void)set_interest(run, c, EPOLLIN);
				return;
			}
			/* EOF or a reset: done either way */
			conn_done(run, c);
			return;
		}
	}
}

void hs_conn_event(struct hs_run *run, struct hs_conn *c, uint32_t events)
{
	/* the state machine asks the socket itself (SO_ERROR, read, SSL_*),
	 * so an error or hang-up event needs no case of its own; timestamps
	 * are taken where they are recorded, not at the wakeup */
	(void)events;
	if (c->st == CS_IDLE)
		return;
	conn_run(run, c);
}

static const char *timeout_reason(enum conn_state st)
{
	switch (st) {
	case CS_CONNECTING: return "timeout: connect";
	case CS_PRE_READ:
	case CS_PRE_WRITE: return "timeout: starttls";
	case CS_HANDSHAKE: return "timeout: handshake";
	case CS_APP_WRITE:
	case CS_APP_READ: return "timeout: response or session ticket";
	default: break;
	}
	return "timeout";
}

void hs_conn_check_timeout(struct hs_run *run, struct hs_conn *c, uint64_t now_ns)
{
	if (c->st == CS_IDLE)
		return;
	if (c->st == CS_SHUTDOWN || c->st == CS_CLOSE_WAIT) {
		if (now_ns >= c->close_deadline) {
			run->res->close_timeouts++;
			conn_end(run, c);
		}
		return;
	}
	if (now_ns >= c->deadline)
		conn_fail(run, c, timeout_reason(c->st));
}

void hs_conn_abort(struct hs_run *run, struct hs_conn *c)
{
	if (c->st == CS_IDLE)
		return;
	if (!c->handshake_ok)
		run->res->aborted_at_end++;
	conn_end(run, c);
}
