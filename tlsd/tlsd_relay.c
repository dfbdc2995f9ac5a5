/* The relay of an established connection: bounded buffers each way, plain
 * read/write on the backend, SSL_read/SSL_write on the client, both
 * non-blocking. A full buffer stops reading from its source (backpressure).
 * Half-close is passed on: the client's close_notify or EOF becomes
 * shutdown(SHUT_WR) on the backend; the backend's EOF becomes close_notify. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "tlsd/tlsd_conn.h"

/* Buffer memory is taken when a read needs room and given back when the
 * buffer is empty again (tlsd_buf_release_if_empty), so an idle connection
 * holds none: with thousands of idle connections that is most of a worker's
 * memory (bench/idle_memory.py measures it). */
void tlsd_buf_init(struct tlsd_buf *b, size_t cap)
{
	b->data = NULL;
	b->cap = cap;
	b->start = b->end = 0;
}

void tlsd_buf_free(struct tlsd_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->cap = b->start = b->end = 0;
}

void tlsd_buf_release_if_empty(struct tlsd_buf *b)
{
	if (b->data != NULL && b->start == b->end) {
		free(b->data);
		b->data = NULL;
		b->start = b->end = 0;
	}
}

size_t tlsd_buf_len(const struct tlsd_buf *b)
{
	return b->end - b->start;
}

bool tlsd_buf_full(const struct tlsd_buf *b)
{
	return tlsd_buf_len(b) >= b->cap;
}

size_t tlsd_buf_space(struct tlsd_buf *b)
{
	if (b->data == NULL)
		b->data = sp_xmalloc(b->cap);
	if (b->start == b->end) {
		b->start = b->end = 0;
	} else if (b->end == b->cap && b->start > 0) {
		/* SSL_write may be retried with the data moved:
		 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER is set */
		memmove(b->data, b->data + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
	}
	return b->cap - b->end;
}

static int clamp_int(size_t n)
{
	return n > INT_MAX ? INT_MAX : (int)n;
}

/* OpenSSL 3 reports a TCP EOF without close_notify as an SSL error
 * (unexpected EOF); older paths report SSL_ERROR_SYSCALL with no errno. For
 * the relay both mean: the client has stopped sending. */
static bool is_plain_eof(int err, int ret)
{
	unsigned long e = ERR_peek_error();

	if (err == SSL_ERROR_SYSCALL && e == 0 && (ret == 0 || errno == 0))
		return true;
	return err == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	       ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

/* client -> c2b. Returns 1 progress, 0 none, -1 error. */
static int client_to_buf(struct tlsd_conn *c)
{
	size_t space;
	int n, err;

	c->rd_want = WANT_NOTHING;
	if (c->client_eof || (space = tlsd_buf_space(&c->c2b)) == 0)
		return 0;
	ERR_clear_error();
	n = SSL_read(c->ssl, c->c2b.data + c->c2b.end, clamp_int(space));
	if (n > 0) {
		c->c2b.end += (size_t)n;
		c->bytes_in += (uint64_t)n;
		return 1;
	}
	err = SSL_get_error(c->ssl, n);
	if (err == SSL_ERROR_ZERO_RETURN || is_plain_eof(err, n)) {
		c->client_eof = true;
		ERR_clear_error();
		return 1;
	}
	c->rd_want = tlsd_conn_want(c, err);
	if (c->rd_want == WANT_NOTHING) {
		char why[256];

		sp_log(SP_LOG_INFO, "relay_error", "service=%s client=%s side=client err=%d reason=\"%s\"",
		       c->svc->name, c->peer, err, tlsd_ssl_errors(why, sizeof(why)));
		c->reason = "client_error";
		return -1;
	}
	return 0;
}

/* c2b -> backend; then the client's EOF as SHUT_WR. */
static int buf_to_backend(struct tlsd_conn *c)
{
	size_t len = tlsd_buf_len(&c->c2b);
	ssize_t n;

	if (len == 0) {
		if (c->client_eof && !c->backend_shut_wr) {
			c->backend_shut_wr = true;
			if (shutdown(c->bfd, SHUT_WR) < 0 && errno != ENOTCONN) {
				c->reason = "backend_error";
				return -1;
			}
			return 1;
		}
		return 0;
	}
	do
		n = write(c->bfd, c->c2b.data + c->c2b.start, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		sp_log(SP_LOG_INFO, "relay_error", "service=%s client=%s side=backend op=write err=\"%s\"",
		       c->svc->name, c->peer, strerror(errno));
		c->reason = "backend_error";
		return -1;
	}
	c->c2b.start += (size_t)n;
	return 1;
}

/* backend -> b2c */
static int backend_to_buf(struct tlsd_conn *c)
{
	size_t space;
	ssize_t n;

	if (c->backend_eof || (space = tlsd_buf_space(&c->b2c)) == 0)
		return 0;
	do
		n = read(c->bfd, c->b2c.data + c->b2c.end, space);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == ECONNRESET) {
			/* the backend is gone; what it sent is still delivered */
			c->backend_eof = true;
			return 1;
		}
		sp_log(SP_LOG_INFO, "relay_error", "service=%s client=%s side=backend op=read err=\"%s\"",
		       c->svc->name, c->peer, strerror(errno));
		c->reason = "backend_error";
		return -1;
	}
	if (n == 0)
		c->backend_eof = true;
	c->b2c.end += (size_t)n;
	return 1;
}

/* b2c -> client; then the backend's EOF as close_notify. */
static int buf_to_client(struct tlsd_conn *c)
{
	size_t len = tlsd_buf_len(&c->b2c);
	int n, err;

	c->wr_want = WANT_NOTHING;
	if (len == 0 && (!c->backend_eof || c->close_notify_sent))
		return 0;
	ERR_clear_error();
	if (len > 0) {
		n = SSL_write(c->ssl, c->b2c.data + c->b2c.start, clamp_int(len));
		if (n > 0) {
			c->b2c.start += (size_t)n;
			c->bytes_out += (uint64_t)n;
			return 1;
		}
	} else {
		n = SSL_shutdown(c->ssl);
		if (n >= 0) {
			c->close_notify_sent = true;
			return 1;
		}
	}
	err = SSL_get_error(c->ssl, n);
	c->wr_want = tlsd_conn_want(c, err);
	if (c->wr_want == WANT_NOTHING) {
		char why[256];

		sp_log(SP_LOG_INFO, "relay_error", "service=%s client=%s side=client op=%s err=%d reason=\"%s\"",
		       c->svc->name, c->peer, len > 0 ? "write" : "shutdown", err,
		       tlsd_ssl_errors(why, sizeof(why)));
		c->reason = "client_error";
		return -1;
	}
	return 0;
}

int tlsd_relay_step(struct tlsd_conn *c)
{
	int progress;

	do {
		int r[4];

		r[0] = client_to_buf(c);
		if (r[0] < 0)
			return -1;
		r[1] = buf_to_backend(c);
		if (r[1] < 0)
			return -1;
		r[2] = backend_to_buf(c);
		if (r[2] < 0)
			return -1;
		r[3] = buf_to_client(c);
		if (r[3] < 0)
			return -1;
		progress = r[0] | r[1] | r[2] | r[3];
		if (progress)
			c->activity = true;
	} while (progress);

	if (c->client_eof && c->backend_shut_wr && c->backend_eof && c->close_notify_sent &&
	    tlsd_buf_len(&c->b2c) == 0 && tlsd_buf_len(&c->c2b) == 0) {
		c->reason = "done";
		return 1;
	}
	return 0;
}
