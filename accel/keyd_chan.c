/* keyd's worker channels: one per tlsd worker, a unix stream socket
 * carrying keyd_proto.h requests and replies. Requests are checked, handed
 * to the accel engine, and answered when the engine completes them, in any
 * order. Output is bounded: while a channel has too many operations in
 * flight or too many reply bytes unsent, keyd stops reading it
 * (backpressure), so a slow or hostile worker costs bounded memory.
 * Ownership: a channel is freed when it is closed and no operation of it is
 * still in the engine; every code path either frees it or arms an event. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accel/keyd_int.h"
#include "accel/keyd_proto.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/xalloc.h"

#define CHAN_READ_MAX (SP_FRAME_HDR + KEYD_MAX_FRAME)

struct keyd_chan {
	struct keyd_chan *prev, *next;
	struct keyd *kd;
	unsigned id;
	int fd;
	struct event *rev, *wev;
	bool reading;
	bool closed;                 /* fd gone; waits for inflight to reach 0 */
	bool busy;                   /* in chan_read_cb: that frees it, not chan_close */
	struct sp_frame_reader *rd;
	struct sp_msgbuf msg;        /* scratch for encoding one reply */
	uint8_t *out;
	size_t out_len, out_cap;
	size_t inflight;
	unsigned long long requests;
};

struct chan_op {
	struct keyd_chan *ch;
	uint32_t req_id;
};

static void chan_free(struct keyd_chan *ch)
{
	sp_frame_reader_free(&ch->rd);
	sp_msgbuf_release(&ch->msg);
	free(ch->out);
	free(ch);
}

static void chan_close(struct keyd_chan *ch, const char *reason)
{
	struct keyd *kd = ch->kd;

	if (ch->closed)
		return;
	sp_log(strcmp(reason, "eof") == 0 || strcmp(reason, "shutdown") == 0 ? SP_LOG_INFO
									      : SP_LOG_WARN,
	       "channel_closed", "chan=%u requests=%llu inflight=%zu reason=\"%s\"", ch->id,
	       ch->requests, ch->inflight, reason);
	ch->closed = true;
	event_free(ch->rev);
	event_free(ch->wev);
	ch->rev = ch->wev = NULL;
	if (close(ch->fd) < 0)
		sp_log(SP_LOG_WARN, "channel_close", "chan=%u error=\"%s\"", ch->id, strerror(errno));
	ch->fd = -1;
	if (ch->prev != NULL)
		ch->prev->next = ch->next;
	else
		kd->chans = ch->next;
	if (ch->next != NULL)
		ch->next->prev = ch->prev;
	kd->nchans--;
	if (ch->inflight == 0 && !ch->busy)
		chan_free(ch);
	/* else the last chan_op_done frees it */
}

/* Reading goes on only while the channel is under both bounds. */
static void chan_update_read(struct keyd_chan *ch)
{
	bool want = ch->inflight < ch->kd->max_inflight && ch->out_len < ch->kd->out_max;

	if (ch->closed || want == ch->reading)
		return;
	if (want ? event_add(ch->rev, NULL) : event_del(ch->rev)) {
		chan_close(ch, "event_add/del failed");
		return;
	}
	ch->reading = want;
}

static void chan_flush(struct keyd_chan *ch)
{
	while (ch->out_len > 0) {
		ssize_t n = send(ch->fd, ch->out, ch->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			char reason[128];

			snprintf(reason, sizeof(reason), "send: %s", strerror(errno));
			chan_close(ch, reason);
			return;
		}
		memmove(ch->out, ch->out + n, ch->out_len - (size_t)n);
		ch->out_len -= (size_t)n;
	}
	if (ch->out_len > 0 ? event_add(ch->wev, NULL) : event_del(ch->wev)) {
		chan_close(ch, "event_add/del failed");
		return;
	}
	chan_update_read(ch);
}

/* Queues one reply. The buffer may pass out_max by at most max_inflight
 * replies: reading stops at out_max, so nothing new arrives. */
static void chan_reply(struct keyd_chan *ch, uint32_t req_id, int status, const uint8_t *sig,
		       size_t sig_len)
{
	struct keyd_reply *reply = sp_xmalloc(sizeof(*reply));

	reply->id = req_id;
	reply->status = (uint8_t)status;
	reply->sig_len = status == ACCEL_OK ? sig_len : 0;
	if (reply->sig_len > 0)
		memcpy(reply->sig, sig, reply->sig_len);
	if (keyd_reply_encode(&ch->msg, reply) < 0) {
		free(reply);
		chan_close(ch, "cannot encode a reply");
		return;
	}
	free(reply);
	if (ch->out_len + ch->msg.len > ch->out_cap) {
		size_t cap = ch->out_cap == 0 ? 4096 : ch->out_cap;

		while (cap < ch->out_len + ch->msg.len)
			cap *= 2;
		ch->out = sp_xrealloc(ch->out, cap, 1);
		ch->out_cap = cap;
	}
	memcpy(ch->out + ch->out_len, ch->msg.data, ch->msg.len);
	ch->out_len += ch->msg.len;
	chan_flush(ch);
}

static void chan_op_done(void *arg, int status, const uint8_t *sig, size_t sig_len)
{
	struct chan_op *op = arg;
	struct keyd_chan *ch = op->ch;
	uint32_t req_id = op->req_id;

	free(op);
	ch->inflight--;
	if (ch->closed) {
		if (ch->inflight == 0 && !ch->busy)
			chan_free(ch);
		return;
	}
	if (status != ACCEL_OK)
		sp_log(SP_LOG_WARN, "keyop_failed", "chan=%u id=%u status=\"%s\"", ch->id, req_id,
		       accel_status_str(status));
	chan_reply(ch, req_id, status, sig, sig_len);
}

/* One request frame; may close the channel (ch stays allocated: busy). */
static void chan_request(struct keyd_chan *ch, const uint8_t *body, size_t len)
{
	struct keyd_req req;
	struct chan_op *op;
	const char *why;
	int st;

	if (keyd_req_decode(body, len, &req, &why) < 0) {
		char reason[160];

		snprintf(reason, sizeof(reason), "malformed request: %s", why);
		chan_close(ch, reason);
		return;
	}
	ch->requests++;
	if (req.type == KEYD_REQ_PING) {
		chan_reply(ch, req.id, ACCEL_OK, NULL, 0);
		return;
	}
	op = sp_xmalloc(sizeof(*op));
	op->ch = ch;
	op->req_id = req.id;
	ch->inflight++;
	st = accel_engine_submit(ch->kd->eng, req.key_id, &req.op, chan_op_done, op);
	if (st != ACCEL_OK) {
		free(op);
		ch->inflight--;
		sp_log(st == ACCEL_ERR_UNKNOWN_KEY || st == ACCEL_ERR_BUSY ? SP_LOG_NOTICE : SP_LOG_WARN,
		       "keyop_refused", "chan=%u id=%u status=\"%s\"", ch->id, req.id,
		       accel_status_str(st));
		chan_reply(ch, req.id, st, NULL, 0);
	}
}

static void chan_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct keyd_chan *ch = arg;
	uint8_t buf[CHAN_READ_MAX];
	size_t room = CHAN_READ_MAX - sp_frame_reader_pending(ch->rd);
	const uint8_t *body;
	const char *why;
	size_t len;
	ssize_t n;
	int rc = 0;

	do {
		n = recv(ch->fd, buf, room, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		char reason[128];

		snprintf(reason, sizeof(reason), "%s", n == 0 ? "eof" : strerror(errno));
		chan_close(ch, reason);
		return;
	}
	if (sp_frame_reader_feed(ch->rd, buf, (size_t)n, &why) < 0) {
		chan_close(ch, why);
		return;
	}
	/* every whole frame now; the reader never holds more than one frame's
	 * worth, so a later read can always make progress. A reply written
	 * meanwhile may close the channel: busy keeps it allocated. */
	ch->busy = true;
	while (!ch->closed && (rc = sp_frame_reader_next(ch->rd, &body, &len, &why)) == 1)
		chan_request(ch, body, len);
	if (!ch->closed && rc < 0)
		chan_close(ch, why);
	ch->busy = false;
	if (ch->closed) {
		if (ch->inflight == 0)
			chan_free(ch);
		return;
	}
	chan_update_read(ch);
}

static void chan_write_cb(evutil_socket_t fd, short what, void *arg)
{
	chan_flush(arg);
}

int keyd_chan_add(struct keyd *kd, int sock)
{
	struct keyd_chan *ch;

	if (kd->nchans >= kd->max_chans) {
		sp_log(SP_LOG_ERR, "channel_refused", "reason=\"keyd.max_channels (%zu) reached\"",
		       kd->max_chans);
		close(sock);
		return -1;
	}
	if (evutil_make_socket_nonblocking(sock) < 0) {
		sp_log(SP_LOG_ERR, "channel_refused", "reason=\"cannot make the socket non-blocking\"");
		close(sock);
		return -1;
	}
	ch = sp_xcalloc(1, sizeof(*ch));
	ch->kd = kd;
	ch->id = ++kd->next_chan_id;
	ch->fd = sock;
	ch->rd = sp_frame_reader_new(KEYD_MAX_FRAME);
	sp_msgbuf_init(&ch->msg, KEYD_MAX_FRAME);
	ch->rev = event_new(kd->base, sock, EV_READ | EV_PERSIST, chan_read_cb, ch);
	ch->wev = event_new(kd->base, sock, EV_WRITE | EV_PERSIST, chan_write_cb, ch);
	if (ch->rev == NULL || ch->wev == NULL || event_add(ch->rev, NULL) < 0) {
		sp_log(SP_LOG_ERR, "channel_refused", "reason=\"cannot create events\"");
		if (ch->rev != NULL)
			event_free(ch->rev);
		if (ch->wev != NULL)
			event_free(ch->wev);
		close(sock);
		chan_free(ch);
		return -1;
	}
	ch->reading = true;
	ch->next = kd->chans;
	if (kd->chans != NULL)
		kd->chans->prev = ch;
	kd->chans = ch;
	kd->nchans++;
	sp_log(SP_LOG_INFO, "channel_open", "chan=%u", ch->id);
	return 0;
}

void keyd_chan_close_all(struct keyd *kd)
{
	while (kd->chans != NULL) {
		struct keyd_chan *ch = kd->chans;
		size_t inflight = ch->inflight;

		/* the engine is freed next and drops undelivered callbacks:
		 * a channel still waiting for them is freed here */
		chan_close(ch, "shutdown");
		if (inflight > 0)
			chan_free(ch);
	}
}
