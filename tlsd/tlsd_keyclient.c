/* The worker's channel to keyd (tlsd/tlsd_keyclient.h): handle keys for the
 * provider in tlsd_keyprov.c, and the request/reply machinery behind them.
 * A sign runs inside the handshake's OpenSSL async job: it queues a request,
 * pauses the job, and is resumed by the application once the job's wait fd
 * (one eventfd per ASYNC_WAIT_CTX, i.e. per SSL) is signalled by the reply,
 * a timeout or the loss of keyd. Everything runs on the worker's one loop
 * thread; async jobs are coroutines on that thread, so nothing is locked.
 * Ownership: a request is held by the pending table (until it completes)
 * and by its job (until the job has read the result, or its wait ctx is
 * freed with the SSL); whichever lets go last frees it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>

#include "accel/keyd_proto.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "tlsd/tlsd_keyclient.h"
#include "tlsd/tlsd_keyprov.h"

#define KC_MAX_PENDING 16384
#define KC_BUCKETS 1024
#define KC_READ_MAX (SP_FRAME_HDR + KEYD_MAX_FRAME)

struct kc_wait;

struct kc_req {
	struct kc_req *next;          /* pending bucket chain */
	struct tlsd_keyclient *kc;
	uint32_t id;
	int refs;
	bool done;
	int status;                   /* accel_status, or -1: transport failure */
	const char *why;              /* static: set with a transport failure */
	struct kc_wait *wait;         /* NULL once the job is gone */
	struct event *timer;
	uint8_t sig[ACCEL_MAX_SIG];
	size_t sig_len;
};

/* Custom data of the wait fd in one ASYNC_WAIT_CTX. */
struct kc_wait {
	int efd;
	struct kc_req *req;           /* the request this SSL's job waits on */
};

struct tlsd_keyclient {
	int refs;                     /* the owner + every handle key */
	bool freed;                   /* tlsd_keyclient_free was called */
	struct event_base *base;
	long timeout_ms;
	int fd;
	struct event *rev, *wev;
	struct sp_frame_reader *rd;
	struct sp_msgbuf msg;
	uint8_t *out;
	size_t out_len, out_cap;
	struct kc_req *buckets[KC_BUCKETS];
	size_t pending;
	uint32_t next_id;
};

static const char kc_wait_key = 0;  /* its address keys our fd in wait ctxs */

static void kc_disconnect(struct tlsd_keyclient *kc, const char *why);

static void kc_raise(const char *msg)
{
	ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL, "keyd: %s", msg);
}

/* ---------------- requests ---------------- */

static void req_unref(struct kc_req *req)
{
	if (--req->refs > 0)
		return;
	if (req->timer != NULL)
		event_free(req->timer);
	free(req);
}

static struct kc_req **bucket(struct tlsd_keyclient *kc, uint32_t id)
{
	return &kc->buckets[id % KC_BUCKETS];
}

static struct kc_req *req_find(struct tlsd_keyclient *kc, uint32_t id)
{
	for (struct kc_req *r = *bucket(kc, id); r != NULL; r = r->next) {
		if (r->id == id)
			return r;
	}
	return NULL;
}

static void req_unlink(struct kc_req *req)
{
	for (struct kc_req **pp = bucket(req->kc, req->id); *pp != NULL; pp = &(*pp)->next) {
		if (*pp == req) {
			*pp = req->next;
			req->kc->pending--;
			return;
		}
	}
}

/* Ends a pending request (on the loop, outside any job) and wakes its job. */
static void req_complete(struct kc_req *req, int status, const char *why, const uint8_t *sig,
			 size_t sig_len)
{
	uint64_t one = 1;

	req_unlink(req);
	if (req->timer != NULL)
		event_del(req->timer);
	req->done = true;
	req->status = status;
	req->why = why;
	if (status == ACCEL_OK && sig_len <= sizeof(req->sig)) {
		memcpy(req->sig, sig, sig_len);
		req->sig_len = sig_len;
	}
	if (req->wait != NULL) {
		ssize_t n;

		do {
			n = write(req->wait->efd, &one, sizeof(one));
		} while (n < 0 && errno == EINTR);
		if (n < 0)  /* an eventfd only refuses on counter overflow */
			sp_log(SP_LOG_ERR, "keyd_wakeup", "error=\"%s\"", strerror(errno));
	}
	req_unref(req);  /* the table's reference */
}

static void fail_all(struct tlsd_keyclient *kc, const char *why)
{
	for (size_t b = 0; b < KC_BUCKETS; b++) {
		while (kc->buckets[b] != NULL)
			req_complete(kc->buckets[b], -1, why, NULL, 0);
	}
}

static void req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct kc_req *req = arg;

	sp_log(SP_LOG_WARN, "keyop_timeout", "id=%u timeout_ms=%ld", req->id, req->kc->timeout_ms);
	req_complete(req, -1, "keyd did not answer in time", NULL, 0);
}

/* ---------------- the socket ---------------- */

static void kc_flush(struct tlsd_keyclient *kc)
{
	while (kc->out_len > 0) {
		ssize_t n = send(kc->fd, kc->out, kc->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			sp_log(SP_LOG_ERR, "keyd_send", "error=\"%s\"", strerror(errno));
			kc_disconnect(kc, "keyd connection lost");
			return;
		}
		memmove(kc->out, kc->out + n, kc->out_len - (size_t)n);
		kc->out_len -= (size_t)n;
	}
	if (kc->out_len > 0 ? event_add(kc->wev, NULL) : event_del(kc->wev))
		kc_disconnect(kc, "event_add failed");
}

static void kc_reply(struct tlsd_keyclient *kc, const uint8_t *body, size_t len)
{
	struct keyd_reply *reply = sp_xmalloc(sizeof(*reply));
	struct kc_req *req;
	const char *why;

	if (keyd_reply_decode(body, len, reply, &why) < 0) {
		sp_log(SP_LOG_ERR, "keyd_malformed_reply", "error=\"%s\"", why);
		free(reply);
		kc_disconnect(kc, "malformed reply from keyd");
		return;
	}
	req = req_find(kc, reply->id);
	if (req == NULL) {
		/* answered after its timeout: the handshake already failed */
		sp_log(SP_LOG_INFO, "keyd_late_reply", "id=%u", reply->id);
	} else {
		if (reply->status != ACCEL_OK)
			sp_log(SP_LOG_WARN, "keyop_refused", "id=%u status=\"%s\"", reply->id,
			       accel_status_str(reply->status));
		req_complete(req, reply->status, NULL, reply->sig, reply->sig_len);
	}
	free(reply);
}

static void kc_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tlsd_keyclient *kc = arg;
	uint8_t buf[KC_READ_MAX];
	size_t room = KC_READ_MAX - sp_frame_reader_pending(kc->rd);
	const uint8_t *body;
	const char *why;
	size_t len;
	ssize_t n;
	int rc;

	do {
		n = recv(kc->fd, buf, room, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		sp_log(SP_LOG_ERR, "keyd_lost", "error=\"%s\"", n == 0 ? "eof" : strerror(errno));
		kc_disconnect(kc, "keyd connection lost");
		return;
	}
	if (sp_frame_reader_feed(kc->rd, buf, (size_t)n, &why) < 0) {
		sp_log(SP_LOG_ERR, "keyd_malformed_reply", "error=\"%s\"", why);
		kc_disconnect(kc, "malformed reply from keyd");
		return;
	}
	while (kc->fd >= 0 && (rc = sp_frame_reader_next(kc->rd, &body, &len, &why)) == 1)
		kc_reply(kc, body, len);
	if (kc->fd >= 0 && rc < 0) {
		sp_log(SP_LOG_ERR, "keyd_malformed_reply", "error=\"%s\"", why);
		kc_disconnect(kc, "malformed reply from keyd");
	}
}

static void kc_write_cb(evutil_socket_t fd, short what, void *arg)
{
	kc_flush(arg);
}

static void kc_disconnect(struct tlsd_keyclient *kc, const char *why)
{
	if (kc->fd >= 0) {
		event_free(kc->rev);
		event_free(kc->wev);
		kc->rev = kc->wev = NULL;
		if (close(kc->fd) < 0)
			sp_log(SP_LOG_WARN, "keyd_close", "error=\"%s\"", strerror(errno));
		kc->fd = -1;
	}
	kc->out_len = 0;
	sp_frame_reader_free(&kc->rd);
	fail_all(kc, why);
}

/* ---------------- the public face ---------------- */

struct tlsd_keyclient *tlsd_keyclient_new(struct event_base *base, long keyop_timeout_ms,
					  char **error_r)
{
	struct tlsd_keyclient *kc;

	if (keyop_timeout_ms <= 0) {
		*error_r = sp_xstrdup("keyop timeout must be positive");
		return NULL;
	}
	if (tlsd_keyprov_load(error_r) < 0)
		return NULL;
	kc = sp_xcalloc(1, sizeof(*kc));
	kc->refs = 1;
	kc->base = base;
	kc->timeout_ms = keyop_timeout_ms;
	kc->fd = -1;
	kc->next_id = 1;
	sp_msgbuf_init(&kc->msg, KEYD_MAX_FRAME);
	return kc;
}

void tlsd_keyclient_ref(struct tlsd_keyclient *kc)
{
	kc->refs++;
}

void tlsd_keyclient_unref(struct tlsd_keyclient *kc)
{
	if (--kc->refs > 0)
		return;
	sp_msgbuf_release(&kc->msg);
	free(kc->out);
	free(kc);
}

void tlsd_keyclient_free(struct tlsd_keyclient **kcp)
{
	struct tlsd_keyclient *kc = *kcp;

	if (kc == NULL)
		return;
	/* handle keys may outlive us (SSL_CTXs freed later): they keep the
	 * struct, and their signs fail */
	kc_disconnect(kc, "keyd client freed");
	kc->freed = true;
	*kcp = NULL;
	tlsd_keyclient_unref(kc);
}

int tlsd_keyclient_set_fd(struct tlsd_keyclient *kc, int fd)
{
	kc_disconnect(kc, "keyd channel replaced");
	if (evutil_make_socket_nonblocking(fd) < 0 || evutil_make_socket_closeonexec(fd) < 0) {
		sp_log(SP_LOG_ERR, "keyd_channel", "error=\"fcntl failed\"");
		close(fd);
		return -1;
	}
	kc->fd = fd;
	kc->rd = sp_frame_reader_new(KEYD_MAX_FRAME);
	kc->rev = event_new(kc->base, fd, EV_READ | EV_PERSIST, kc_read_cb, kc);
	kc->wev = event_new(kc->base, fd, EV_WRITE | EV_PERSIST, kc_write_cb, kc);
	if (kc->rev == NULL || kc->wev == NULL || event_add(kc->rev, NULL) < 0) {
		if (kc->rev == NULL || kc->wev == NULL) {
			if (kc->rev != NULL)
				event_free(kc->rev);
			if (kc->wev != NULL)
				event_free(kc->wev);
			kc->rev = kc->wev = NULL;
			close(fd);
			kc->fd = -1;
			sp_frame_reader_free(&kc->rd);
		} else {
			kc_disconnect(kc, "event_add failed");
		}
		sp_log(SP_LOG_ERR, "keyd_channel", "error=\"cannot create events\"");
		return -1;
	}
	return 0;
}

int tlsd_keyclient_connected(const struct tlsd_keyclient *kc)
{
	return kc->fd >= 0;
}

size_t tlsd_keyclient_pending(const struct tlsd_keyclient *kc)
{
	return kc->pending;
}

EVP_PKEY *tlsd_keyclient_pkey(struct tlsd_keyclient *kc, X509 *cert, char **error_r)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert), *pkey = NULL;
	uint8_t id[ACCEL_KEY_ID_LEN];
	OSSL_PARAM *pubparams = NULL, *all = NULL;
	OSSL_PARAM extra[3];
	EVP_PKEY_CTX *ctx = NULL;
	const char *type;
	void *kcp = kc;

	if (pub == NULL) {
		*error_r = sp_xstrdup("certificate without a usable public key");
		goto out;
	}
	if (EVP_PKEY_is_a(pub, "RSA"))
		type = "RSA";
	else if (EVP_PKEY_is_a(pub, "EC"))
		type = "EC";
	else {
		*error_r = sp_xasprintf("key type %s not supported (RSA or EC)",
					EVP_PKEY_get0_type_name(pub));
		goto out;
	}
	if (keyd_key_id(pub, id) < 0 || EVP_PKEY_todata(pub, EVP_PKEY_PUBLIC_KEY, &pubparams) <= 0) {
		*error_r = sp_xstrdup("cannot encode the certificate's public key");
		goto out;
	}
	extra[0] = OSSL_PARAM_construct_octet_string(TLSD_KEYPROV_PARAM_KEY_ID, id, sizeof(id));
	extra[1] = OSSL_PARAM_construct_octet_ptr(TLSD_KEYPROV_PARAM_CLIENT, &kcp, sizeof(kc));
	extra[2] = OSSL_PARAM_construct_end();
	all = OSSL_PARAM_merge(pubparams, extra);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, type, TLSD_KEYPROV_PROPQ);
	if (all == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, all) <= 0) {
		unsigned long err = ERR_peek_last_error();
		char buf[200] = "no OpenSSL reason";

		if (err != 0)
			ERR_error_string_n(err, buf, sizeof(buf));
		*error_r = sp_xasprintf("cannot make a keyd key handle: %s", buf);
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(all);
	OSSL_PARAM_free(pubparams);
	return pkey;
}

/* ---------------- the async side ---------------- */

static void wait_cleanup(ASYNC_WAIT_CTX *wctx, const void *key, OSSL_ASYNC_FD fd, void *custom)
{
	struct kc_wait *w = custom;

	/* The SSL (and its paused job, if any) is gone: the request may still
	 * be pending; it must not wake a closed fd. */
	if (w->req != NULL) {
		w->req->wait = NULL;
		req_unref(w->req);  /* the job's reference */
	}
	close(w->efd);
	free(w);
}

static struct kc_wait *wait_get(ASYNC_WAIT_CTX *wctx)
{
	OSSL_ASYNC_FD fd;
	void *custom = NULL;
	struct kc_wait *w;

	if (ASYNC_WAIT_CTX_get_fd(wctx, &kc_wait_key, &fd, &custom) == 1 && custom != NULL)
		return custom;
	w = sp_xcalloc(1, sizeof(*w));
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0) {
		sp_log(SP_LOG_ERR, "keyd_eventfd", "error=\"%s\"", strerror(errno));
		free(w);
		return NULL;
	}
	if (ASYNC_WAIT_CTX_set_wait_fd(wctx, &kc_wait_key, w->efd, w, wait_cleanup) != 1) {
		close(w->efd);
		free(w);
		return NULL;
	}
	return w;
}

static int queue_request(struct tlsd_keyclient *kc, struct kc_req *req,
			 const uint8_t key_id[ACCEL_KEY_ID_LEN], const struct accel_op *op)
{
	struct keyd_req wire;
	struct timeval tv;

	memset(&wire, 0, sizeof(wire));
	wire.type = KEYD_REQ_SIGN;
	wire.id = req->id;
	memcpy(wire.key_id, key_id, ACCEL_KEY_ID_LEN);
	wire.op = *op;
	if (keyd_req_encode(&kc->msg, &wire) < 0) {
		kc_raise("invalid key operation");
		return -1;
	}
	if (kc->out_len + kc->msg.len > kc->out_cap) {
		size_t cap = kc->out_cap == 0 ? 4096 : kc->out_cap;

		while (cap < kc->out_len + kc->msg.len)
			cap *= 2;
		kc->out = sp_xrealloc(kc->out, cap, 1);
		kc->out_cap = cap;
	}
	req->timer = evtimer_new(kc->base, req_timeout_cb, req);
	tv.tv_sec = kc->timeout_ms / 1000;
	tv.tv_usec = (kc->timeout_ms % 1000) * 1000;
	if (req->timer == NULL || evtimer_add(req->timer, &tv) < 0) {
		kc_raise("cannot arm the key operation timer");
		return -1;
	}
	memcpy(kc->out + kc->out_len, kc->msg.data, kc->msg.len);
	kc->out_len += kc->msg.len;
	req->next = *bucket(kc, req->id);
	*bucket(kc, req->id) = req;
	kc->pending++;
	return 0;
}

int tlsd_keyclient_sign(struct tlsd_keyclient *kc, const uint8_t key_id[ACCEL_KEY_ID_LEN],
			const struct accel_op *op, uint8_t *sig, size_t *sig_len, size_t sig_cap)
{
	ASYNC_JOB *job = ASYNC_get_current_job();
	struct kc_wait *w;
	struct kc_req *req;
	uint64_t count;
	int ok = 0;

	if (job == NULL) {
		/* blocking the worker's loop on keyd is never allowed */
		kc_raise("private-key operations need an async job (SSL_MODE_ASYNC)");
		return 0;
	}
	if (kc->freed || kc->fd < 0) {
		kc_raise("no keyd connection");
		return 0;
	}
	if (kc->pending >= KC_MAX_PENDING) {
		sp_log(SP_LOG_WARN, "keyd_overload", "pending=%zu", kc->pending);
		kc_raise("too many key operations in flight");
		return 0;
	}
	w = wait_get(ASYNC_get_wait_ctx(job));
	if (w == NULL) {
		kc_raise("cannot create the async wait fd");
		return 0;
	}
	req = sp_xcalloc(1, sizeof(*req));
	req->kc = kc;
	do {
		req->id = kc->next_id++;
	} while (req->id == 0 || req_find(kc, req->id) != NULL);
	if (queue_request(kc, req, key_id, op) < 0) {
		if (req->timer != NULL)
			event_free(req->timer);
		free(req);
		return 0;
	}
	req->refs = 2;  /* the pending table and this job */
	req->wait = w;
	w->req = req;
	kc_flush(kc);   /* may fail everything pending, this request included */

	while (!req->done) {
		if (ASYNC_pause_job() != 1) {
			/* cannot wait: leave the request to the table */
			w->req = NULL;
			req->wait = NULL;
			req_unref(req);
			kc_raise("ASYNC_pause_job failed");
			return 0;
		}
	}
	/* consume our wakeup so the fd is quiet for this SSL's next wait */
	while (read(w->efd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	w->req = NULL;
	req->wait = NULL;
	if (req->status == ACCEL_OK && req->sig_len > 0 && req->sig_len <= sig_cap) {
		memcpy(sig, req->sig, req->sig_len);
		*sig_len = req->sig_len;
		ok = 1;
	} else if (req->status == ACCEL_OK) {
		kc_raise("keyd's signature does not fit");
	} else if (req->status < 0) {
		kc_raise(req->why != NULL ? req->why : "keyd failed");
	} else {
		kc_raise(accel_status_str(req->status));
	}
	req_unref(req);
	return ok;
}
