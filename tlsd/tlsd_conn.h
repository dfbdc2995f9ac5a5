/* Private to tlsd_conn.c and tlsd_relay.c: one client connection of a worker,
 * from the first ClientHello byte to the last relayed byte. */
#ifndef TLSD_CONN_H
#define TLSD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlsd/tlsd_int.h"

#define TLSD_MAX_ASYNC_FDS 4

/* The connection's states; tlsd_conn.c: conn_run() is the only place that
 * moves between them.
 *   HANDSHAKE   TLS handshake with the client; may wait for keyd (async fds)
 *   CONNECTING  implicit TLS: non-blocking connect to the backend
 *   RELAY       both directions, with half-close
 *   DRAIN_ASYNC closing, but a key operation is paused inside the handshake:
 *               the SSL cannot be freed under it, so the connection waits
 *               for keyd's answer (or the keyop timeout) before it is freed */
enum tlsd_conn_state {
	TLSD_CONN_HANDSHAKE,
	TLSD_CONN_CONNECTING,
	TLSD_CONN_RELAY,
	TLSD_CONN_DRAIN_ASYNC,
};

/* A bounded byte queue: [start, end) of data[cap]. */
struct tlsd_buf {
	uint8_t *data;
	size_t cap, start, end;
};

/* What an SSL call is waiting for (SSL_ERROR_WANT_*), or nothing. */
enum tlsd_want { WANT_NOTHING, WANT_CREAD, WANT_CWRITE, WANT_ASYNC, WANT_JOB };

struct tlsd_conn {
	struct tlsd_conn *next, *prev;  /* the worker's list */
	struct tlsd_worker *w;
	struct tlsd_ctxset *set;        /* one reference, for the SSL_CTX and the service */
	const struct tlsd_service *svc; /* in set's config */
	enum tlsd_conn_state state;

	int cfd;            /* client (ciphertext) */
	SSL *ssl;
	int bfd;            /* backend or plaintext socketpair end; -1 until there is one */
	int hoff_fd;        /* STARTTLS handoff: where the reply goes; -1 otherwise */

	struct event *ev_cread, *ev_cwrite, *ev_bread, *ev_bwrite;
	struct event *ev_timer;   /* handshake or idle timeout */
	struct event *ev_retry;   /* SSL_ERROR_WANT_ASYNC_JOB: the async job pool was empty */
	struct event *ev_async[TLSD_MAX_ASYNC_FDS];
	int async_fd[TLSD_MAX_ASYNC_FDS];

	enum tlsd_want hs_want, rd_want, wr_want;
	bool tls_up;              /* handshake done */
	bool client_eof;          /* close_notify or TCP EOF from the client */
	bool backend_eof;
	bool backend_shut_wr;     /* client's EOF passed on to the backend */
	bool close_notify_sent;
	bool activity;            /* bytes moved since the timer was last armed */

	struct tlsd_buf c2b, b2c;
	uint64_t bytes_in, bytes_out;
	uint64_t start_ms;
	const char *reason;       /* why it closes, for the log line */
	const char *drain_reason; /* the reason while DRAIN_ASYNC waits */
	struct sp_proxy_info info;
	char peer[72];
};

/* tlsd_relay.c */
void tlsd_buf_init(struct tlsd_buf *b, size_t cap);
void tlsd_buf_free(struct tlsd_buf *b);
size_t tlsd_buf_len(const struct tlsd_buf *b);
size_t tlsd_buf_space(struct tlsd_buf *b);  /* allocates if needed; compacts when useful */
bool tlsd_buf_full(const struct tlsd_buf *b);
void tlsd_buf_release_if_empty(struct tlsd_buf *b);  /* an empty buffer holds no memory */

/* One pass of the relay (RELAY state). Returns 0 = wait for events, 1 = both
 * directions are finished, -1 = error (c->reason set). */
int tlsd_relay_step(struct tlsd_conn *c);
/* What an SSL_get_error() value asks to wait for; WANT_NOTHING = a failure. */
enum tlsd_want tlsd_conn_want(struct tlsd_conn *c, int ssl_err);
/* Refreshes the async fds OpenSSL wants watched. -1 if there are too many. */
int tlsd_conn_async_fds(struct tlsd_conn *c);

#endif
