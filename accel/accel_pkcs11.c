/* The `pkcs11` backend: signatures on a PKCS#11 token through pkcs11/, on a
 * pool of worker threads as large as the token's session pool, so that
 * keyd's event loop never waits on the token. Finished operations are queued
 * and an eventfd wakes the loop, which runs their callbacks (accel.h). Health
 * is the engine's business (accel.c: down after keyd.down_after failures,
 * probed until a test signature succeeds); the backend only counts. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/objects.h>

#include "accel/accel_pkcs11.h"
#include "common/log.h"
#include "common/xalloc.h"

#define PK_MAX_THREADS P11_POOL_MAX
#define PK_SESSION_WAIT_MS 30000

/* Shared by the engine's placement and every running job, so key_free
 * during an operation does not pull the key out from under a worker. */
struct pk_key {
	struct p11_key *key;
	atomic_int refs;
};

struct pk_job {
	struct pk_job *next;
	struct pk_key *key;
	struct accel_op op;
	accel_done_fn *done;
	void *arg;
	int status;
	uint8_t sig[ACCEL_MAX_SIG];
	size_t sig_len;
	char *why;        /* pkcs11/'s message, logged on the loop thread */
};

struct pk {
	struct p11_token *tok;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pk_job *todo_head, *todo_tail;  /* FIFO */
	struct pk_job *done;                   /* LIFO, reversed by poll */
	size_t queued, max_queue;
	bool stop;
	int efd;
	pthread_t *threads;
	unsigned nthreads;
	atomic_int consecutive_failures;
};

static void key_unref(struct pk_key *k)
{
	if (k != NULL && atomic_fetch_sub(&k->refs, 1) == 1) {
		p11_key_free(&k->key);
		free(k);
	}
}

static void pk_caps(const struct accel_backend *be, struct accel_caps *caps)
{
	(void)be;
	memset(caps, 0, sizeof(*caps));
	caps->mechs = ACCEL_MECH_BIT(ACCEL_MECH_RSA_PKCS1) | ACCEL_MECH_BIT(ACCEL_MECH_RSA_PSS) |
		      ACCEL_MECH_BIT(ACCEL_MECH_ECDSA);
	caps->rsa_min_bits = 2048;
	caps->rsa_max_bits = 8192;  /* what the token accepts is checked when keys load */
	caps->ec_p256 = caps->ec_p384 = true;
}

static int md_nid(int md)
{
	switch (md) {
	case ACCEL_MD_SHA1: return NID_sha1;
	case ACCEL_MD_SHA224: return NID_sha224;
	case ACCEL_MD_SHA256: return NID_sha256;
	case ACCEL_MD_SHA384: return NID_sha384;
	case ACCEL_MD_SHA512: return NID_sha512;
	default: return NID_undef;
	}
}

/* Runs on a worker thread. */
static void pk_sign(struct pk *p, struct pk_job *job)
{
	const struct accel_op *op = &job->op;
	enum p11_sign_scheme scheme;
	int nid = md_nid(op->md), salt = -1;
	size_t len = sizeof(job->sig);

	job->status = ACCEL_ERR_UNSUPPORTED;
	switch (op->mech) {
	case ACCEL_MECH_RSA_PKCS1:
		scheme = P11_SIGN_RSA_PKCS1;
		break;
	case ACCEL_MECH_RSA_PSS:
		/* pkcs11/ signs PSS with MGF1 over the same hash, as TLS 1.3 does */
		if (op->mgf1_md != op->md) {
			job->why = sp_xstrdup("RSA-PSS with an MGF1 hash other than the digest's");
			return;
		}
		scheme = P11_SIGN_RSA_PSS;
		salt = (int)op->saltlen;
		break;
	case ACCEL_MECH_ECDSA:
		scheme = P11_SIGN_ECDSA;
		break;
	default:
		job->why = sp_xasprintf("mechanism %u", op->mech);
		return;
	}
	if (nid == NID_undef) {
		job->why = sp_xasprintf("digest %u", op->md);
		return;
	}
	if (p11_sign(job->key->key, scheme, nid, salt, op->digest, op->digest_len, job->sig, &len,
		     PK_SESSION_WAIT_MS, &job->why) < 0) {
		job->status = ACCEL_ERR_FAILED;
		atomic_fetch_add(&p->consecutive_failures, 1);
		return;
	}
	atomic_store(&p->consecutive_failures, 0);
	job->status = ACCEL_OK;
	job->sig_len = len;
}

static void *pk_thread(void *arg)
{
	struct pk *p = arg;

	for (;;) {
		struct pk_job *job;
		uint64_t one = 1;

		pthread_mutex_lock(&p->lock);
		while (!p->stop && p->todo_head == NULL)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		job = p->todo_head;
		p->todo_head = job->next;
		if (p->todo_head == NULL)
			p->todo_tail = NULL;
		pthread_mutex_unlock(&p->lock);

		pk_sign(p, job);

		pthread_mutex_lock(&p->lock);
		job->next = p->done;
		p->done = job;
		pthread_mutex_unlock(&p->lock);
		/* an eventfd write only fails when the counter would overflow:
		 * then a wakeup is pending anyway */
		while (write(p->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

static int pk_submit(struct accel_backend *be, void *bkey, const struct accel_op *op,
		     accel_done_fn *done, void *arg)
{
	struct pk *p = be->priv;
	struct pk_key *k = bkey;
	struct pk_job *job;

	pthread_mutex_lock(&p->lock);
	if (p->queued >= p->max_queue) {
		pthread_mutex_unlock(&p->lock);
		return -1;
	}
	p->queued++;
	pthread_mutex_unlock(&p->lock);

	job = sp_xcalloc(1, sizeof(*job));
	atomic_fetch_add(&k->refs, 1);
	job->key = k;
	job->op = *op;
	job->done = done;
	job->arg = arg;

	pthread_mutex_lock(&p->lock);
	if (p->todo_tail != NULL)
		p->todo_tail->next = job;
	else
		p->todo_head = job;
	p->todo_tail = job;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int pk_completion_fd(const struct accel_backend *be)
{
	const struct pk *p = be->priv;

	return p->efd;
}

static void job_free(struct pk_job *job)
{
	key_unref(job->key);
	free(job->why);
	free(job);
}

static void pk_poll(struct accel_backend *be)
{
	struct pk *p = be->priv;
	struct pk_job *list, *fifo = NULL, *next;
	uint64_t count;
	size_t n = 0;

	if (read(p->efd, &count, sizeof(count)) < 0 && errno != EAGAIN && errno != EINTR)
		sp_log(SP_LOG_ERR, "pkcs11_eventfd", "error=\"%s\"", strerror(errno));
	pthread_mutex_lock(&p->lock);
	list = p->done;
	p->done = NULL;
	pthread_mutex_unlock(&p->lock);
	for (; list != NULL; list = next) {  /* back to submission order */
		next = list->next;
		list->next = fifo;
		fifo = list;
		n++;
	}
	for (; fifo != NULL; fifo = next) {
		next = fifo->next;
		if (fifo->status != ACCEL_OK)
			sp_log(SP_LOG_WARN, "pkcs11_sign_failed", "token=\"%s\" mech=%u error=\"%s\"",
			       p11_token_label(p->tok), fifo->op.mech,
			       fifo->why != NULL ? fifo->why : "?");
		fifo->done(fifo->arg, fifo->status, fifo->sig, fifo->sig_len);
		job_free(fifo);
	}
	pthread_mutex_lock(&p->lock);
	p->queued -= n;
	pthread_mutex_unlock(&p->lock);
}

/* One judge of health: the engine, which sees errors and deadlines alike.
 * A second threshold here would take the backend out of service without the
 * engine knowing, and nothing would probe it back. */
static bool pk_healthy(const struct accel_backend *be)
{
	(void)be;
	return true;
}

static void pk_key_free(struct accel_backend *be, void *bkey)
{
	(void)be;
	key_unref(bkey);
}

static void pk_free(struct accel_backend *be)
{
	struct pk *p;
	struct pk_job *job, *next;
	unsigned i;

	if (be == NULL)
		return;
	p = be->priv;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	/* a worker inside C_Sign finishes it first (p11_sign is not cancellable) */
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	for (job = p->todo_head; job != NULL; job = next) {
		next = job->next;
		job_free(job);
	}
	for (job = p->done; job != NULL; job = next) {
		next = job->next;
		job_free(job);
	}
	close(p->efd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
	free(be);
}

static const struct accel_backend_ops pk_ops = {
	.name = "pkcs11",
	.caps = pk_caps,
	.submit = pk_submit,
	.completion_fd = pk_completion_fd,
	.poll = pk_poll,
	.healthy = pk_healthy,
	.key_free = pk_key_free,
	.free = pk_free,
};

void *accel_pkcs11_key(struct p11_key *key)
{
	struct pk_key *k = sp_xcalloc(1, sizeof(*k));

	k->key = key;
	atomic_init(&k->refs, 1);
	return k;
}

struct accel_backend *accel_pkcs11_new(struct p11_token *tok, unsigned threads,
				       size_t max_queue, char **error_r)
{
	struct accel_backend *be;
	struct pk *p;
	sigset_t all, old;
	unsigned i;
	int err;

	if (threads == 0)
		threads = p11_token_pool_size(tok);
	if (threads == 0 || threads > PK_MAX_THREADS) {
		*error_r = sp_xasprintf("pkcs11 backend: %u threads, want 1..%d", threads,
					PK_MAX_THREADS);
		return NULL;
	}
	if (threads > p11_token_pool_size(tok))
		sp_log(SP_LOG_WARN, "pkcs11_threads", "token=\"%s\" threads=%u sessions=%u "
		       "note=\"extra threads wait for a session\"", p11_token_label(tok), threads,
		       p11_token_pool_size(tok));
	if (max_queue == 0)
		max_queue = 1;
	p = sp_xcalloc(1, sizeof(*p));
	p->tok = tok;
	p->max_queue = max_queue;
	atomic_init(&p->consecutive_failures, 0);
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0) {
		*error_r = sp_xasprintf("pkcs11 backend: eventfd: %s", strerror(errno));
		free(p);
		return NULL;
	}
	if ((err = pthread_mutex_init(&p->lock, NULL)) != 0 ||
	    (err = pthread_cond_init(&p->cond, NULL)) != 0) {
		*error_r = sp_xasprintf("pkcs11 backend: pthread init: %s", strerror(err));
		close(p->efd);
		free(p);
		return NULL;
	}
	be = sp_xcalloc(1, sizeof(*be));
	be->ops = &pk_ops;
	be->priv = p;
	snprintf(be->label, sizeof(be->label), "pkcs11:%s", p11_token_label(tok));
	p->threads = sp_xcalloc(threads, sizeof(*p->threads));
	/* signals belong to the loop thread (libevent's signal events) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < threads; i++) {
		err = pthread_create(&p->threads[i], NULL, pk_thread, p);
		if (err != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			*error_r = sp_xasprintf("pkcs11 backend: pthread_create: %s", strerror(err));
			pk_free(be);
			return NULL;
		}
		p->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sp_log(SP_LOG_INFO, "pkcs11_backend", "token=\"%s\" threads=%u max_queue=%zu",
	       p11_token_label(tok), threads, max_queue);
	return be;
}
