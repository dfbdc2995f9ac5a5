/* The `soft` backend: private-key operations with OpenSSL in keyd's own
 * memory, on a small pool of threads so that keyd's event loop never waits
 * for a signature. Finished operations are queued and an eventfd wakes the
 * loop, which runs their callbacks (accel.h: completions on the loop thread). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "accel/accel.h"
#include "common/log.h"
#include "common/xalloc.h"

#define SOFT_MAX_THREADS 256
#define MD_SLOTS 6  /* indexed by enum accel_md */
#define SOFT_STACK_SIZE (512u << 10)

struct soft_job {
	struct soft_job *next;
	EVP_PKEY *pkey;  /* own reference: the key may be freed while we run */
	struct accel_op op;
	accel_done_fn *done;
	void *arg;
	int status;
	uint8_t sig[ACCEL_MAX_SIG];
	size_t sig_len;
	char why[160];   /* OpenSSL's reason, logged on the loop thread */
};

struct soft {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct soft_job *todo_head, *todo_tail;  /* FIFO */
	struct soft_job *done;                   /* LIFO, reversed by poll */
	size_t queued;                           /* todo + running + done */
	size_t max_queue;
	bool stop;
	int efd;
	pthread_t *threads;
	unsigned nthreads;
	EVP_MD *mds[MD_SLOTS];
};

static void soft_caps(const struct accel_backend *be, struct accel_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->mechs = ACCEL_MECH_BIT(ACCEL_MECH_RSA_PKCS1) | ACCEL_MECH_BIT(ACCEL_MECH_RSA_PSS) |
		      ACCEL_MECH_BIT(ACCEL_MECH_ECDSA);
	caps->rsa_min_bits = 2048;
	caps->rsa_max_bits = 8192;
	caps->ec_p256 = caps->ec_p384 = caps->ec_p521 = true;
	caps->in_process = true;
}

static void job_fail(struct soft_job *job, const char *what)
{
	unsigned long err = ERR_peek_last_error();
	char reason[120] = "no OpenSSL reason";

	if (err != 0)
		ERR_error_string_n(err, reason, sizeof(reason));
	snprintf(job->why, sizeof(job->why), "%s: %s", what, reason);
	ERR_clear_error();
	job->status = ACCEL_ERR_FAILED;
}

/* Runs on a pool thread. */
static void soft_sign(struct soft *s, struct soft_job *job)
{
	const struct accel_op *op = &job->op;
	EVP_PKEY_CTX *ctx;
	const EVP_MD *md = op->md < MD_SLOTS ? s->mds[op->md] : NULL;
	const EVP_MD *mgf1 = op->mgf1_md < MD_SLOTS ? s->mds[op->mgf1_md] : NULL;
	size_t len = sizeof(job->sig);

	job->status = ACCEL_OK;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, job->pkey, NULL);
	if (ctx == NULL || md == NULL) {
		job_fail(job, "EVP_PKEY_CTX_new_from_pkey");
		EVP_PKEY_CTX_free(ctx);
		return;
	}
	if (EVP_PKEY_sign_init(ctx) <= 0) {
		job_fail(job, "EVP_PKEY_sign_init");
		goto out;
	}
	switch (op->mech) {
	case ACCEL_MECH_RSA_PKCS1:
		/* with the md set, OpenSSL builds the DigestInfo (RFC 8017 9.2) */
		if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0) {
			job_fail(job, "RSA PKCS#1 parameters");
			goto out;
		}
		break;
	case ACCEL_MECH_RSA_PSS:
		if (mgf1 == NULL || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf1) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)op->saltlen) <= 0) {
			job_fail(job, "RSA-PSS parameters");
			goto out;
		}
		break;
	case ACCEL_MECH_ECDSA:
		if (EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0) {
			job_fail(job, "ECDSA parameters");
			goto out;
		}
		break;
	default:
		snprintf(job->why, sizeof(job->why), "mechanism %u", op->mech);
		job->status = ACCEL_ERR_UNSUPPORTED;
		goto out;
	}
	if (EVP_PKEY_sign(ctx, job->sig, &len, op->digest, op->digest_len) <= 0) {
		job_fail(job, "EVP_PKEY_sign");
		goto out;
	}
	job->sig_len = len;
out:
	EVP_PKEY_CTX_free(ctx);
}

static void *soft_thread(void *arg)
{
	struct soft *s = arg;

	for (;;) {
		struct soft_job *job;
		uint64_t one = 1;

		pthread_mutex_lock(&s->lock);
		while (!s->stop && s->todo_head == NULL)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->stop) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		job = s->todo_head;
		s->todo_head = job->next;
		if (s->todo_head == NULL)
			s->todo_tail = NULL;
		pthread_mutex_unlock(&s->lock);

		soft_sign(s, job);

		pthread_mutex_lock(&s->lock);
		job->next = s->done;
		s->done = job;
		pthread_mutex_unlock(&s->lock);
		/* an eventfd counter only fails to take a write when it would
		 * overflow: then the loop has a wakeup pending anyway */
		while (write(s->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	ERR_clear_error();
	return NULL;
}

static int soft_submit(struct accel_backend *be, void *bkey, const struct accel_op *op,
		       accel_done_fn *done, void *arg)
{
	struct soft *s = be->priv;
	struct soft_job *job;

	pthread_mutex_lock(&s->lock);
	if (s->queued >= s->max_queue) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	s->queued++;
	pthread_mutex_unlock(&s->lock);

	job = sp_xcalloc(1, sizeof(*job));
	job->pkey = bkey;
	EVP_PKEY_up_ref(job->pkey);
	job->op = *op;
	job->done = done;
	job->arg = arg;

	pthread_mutex_lock(&s->lock);
	if (s->todo_tail != NULL)
		s->todo_tail->next = job;
	else
		s->todo_head = job;
	s->todo_tail = job;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int soft_completion_fd(const struct accel_backend *be)
{
	const struct soft *s = be->priv;

	return s->efd;
}

static void job_free(struct soft_job *job)
{
	EVP_PKEY_free(job->pkey);
	sp_free_secret(job, sizeof(*job));  /* the digest and signature are not secret, but cheap */
}

static void soft_poll(struct accel_backend *be)
{
	struct soft *s = be->priv;
	struct soft_job *list, *fifo = NULL, *next;
	uint64_t count;
	size_t n = 0;

	if (read(s->efd, &count, sizeof(count)) < 0 && errno != EAGAIN && errno != EINTR)
		sp_log(SP_LOG_ERR, "soft_eventfd", "error=\"%s\"", strerror(errno));
	pthread_mutex_lock(&s->lock);
	list = s->done;
	s->done = NULL;
	pthread_mutex_unlock(&s->lock);
	for (; list != NULL; list = next) {  /* back to submission order */
		next = list->next;
		list->next = fifo;
		fifo = list;
		n++;
	}
	for (; fifo != NULL; fifo = next) {
		next = fifo->next;
		if (fifo->status != ACCEL_OK)
			sp_log(SP_LOG_WARN, "soft_sign_failed", "mech=%u error=\"%s\"", fifo->op.mech,
			       fifo->why);
		fifo->done(fifo->arg, fifo->status, fifo->sig, fifo->sig_len);
		job_free(fifo);
	}
	pthread_mutex_lock(&s->lock);
	s->queued -= n;
	pthread_mutex_unlock(&s->lock);
}

static bool soft_healthy(const struct accel_backend *be)
{
	return true;
}

static void soft_key_free(struct accel_backend *be, void *bkey)
{
	EVP_PKEY_free(bkey);
}

static void soft_free(struct accel_backend *be)
{
	struct soft *s;
	struct soft_job *job, *next;

	if (be == NULL)
		return;
	s = be->priv;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	for (job = s->todo_head; job != NULL; job = next) {
		next = job->next;
		job_free(job);
	}
	for (job = s->done; job != NULL; job = next) {
		next = job->next;
		job_free(job);
	}
	for (size_t i = 0; i < MD_SLOTS; i++)
		EVP_MD_free(s->mds[i]);
	close(s->efd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->threads);
	free(s);
	free(be);
}

static const struct accel_backend_ops soft_ops = {
	.name = "soft",
	.caps = soft_caps,
	.submit = soft_submit,
	.completion_fd = soft_completion_fd,
	.poll = soft_poll,
	.healthy = soft_healthy,
	.key_free = soft_key_free,
	.free = soft_free,
};

void *accel_soft_key(EVP_PKEY *pkey)
{
	if (EVP_PKEY_up_ref(pkey) != 1)
		return NULL;
	return pkey;
}

struct accel_backend *accel_soft_new(unsigned threads, size_t max_queue, char **error_r)
{
	struct accel_backend *be;
	struct soft *s;
	pthread_attr_t attr;
	sigset_t all, old;
	int err;

	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned)n : 1;
	}
	if (threads > SOFT_MAX_THREADS) {
		*error_r = sp_xasprintf("soft backend: %u threads, at most %d", threads,
					SOFT_MAX_THREADS);
		return NULL;
	}
	if (max_queue == 0)
		max_queue = 1;
	s = sp_xcalloc(1, sizeof(*s));
	s->max_queue = max_queue;
	for (int md = ACCEL_MD_SHA1; md <= ACCEL_MD_SHA512; md++) {
		s->mds[md] = EVP_MD_fetch(NULL, accel_md_name(md), NULL);
		if (s->mds[md] == NULL) {
			*error_r = sp_xasprintf("soft backend: OpenSSL has no %s", accel_md_name(md));
			goto fail_md;
		}
	}
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		*error_r = sp_xasprintf("soft backend: eventfd: %s", strerror(errno));
		goto fail_md;
	}
	if ((err = pthread_mutex_init(&s->lock, NULL)) != 0 ||
	    (err = pthread_cond_init(&s->cond, NULL)) != 0) {
		*error_r = sp_xasprintf("soft backend: pthread init: %s", strerror(err));
		close(s->efd);
		goto fail_md;
	}
	be = sp_xcalloc(1, sizeof(*be));
	be->ops = &soft_ops;
	be->priv = s;
	s->threads = sp_xcalloc(threads, sizeof(*s->threads));
	/* small stacks: a signature needs little, and keyd locks its memory */
	if ((err = pthread_attr_init(&attr)) != 0 ||
	    (err = pthread_attr_setstacksize(&attr, SOFT_STACK_SIZE)) != 0) {
		*error_r = sp_xasprintf("soft backend: pthread attr: %s", strerror(err));
		soft_free(be);
		return NULL;
	}
	/* signals belong to the loop thread (libevent's signal events) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < threads; i++) {
		err = pthread_create(&s->threads[i], &attr, soft_thread, s);
		if (err != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			pthread_attr_destroy(&attr);
			*error_r = sp_xasprintf("soft backend: pthread_create: %s", strerror(err));
			soft_free(be);
			return NULL;
		}
		s->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return be;
fail_md:
	for (size_t i = 0; i < MD_SLOTS; i++)
		EVP_MD_free(s->mds[i]);
	free(s);
	return NULL;
}
