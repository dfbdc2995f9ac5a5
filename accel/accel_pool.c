/* Worker-thread pool shared by the soft and pkcs11 backends: the threads
 * take jobs from a FIFO, run them, put them on a done list and bump an
 * eventfd; keyd's loop drains the list (accel_pool.h). */
#include "accel/accel.h"
#include "accel/accel_pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/log.h"
#include "common/xalloc.h"

struct accel_pool {
	char what[32];                            /* for log lines */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct accel_pool_job *pending_head, *pending_tail;  /* FIFO */
	struct accel_pool_job *done;                   /* LIFO, reversed by poll */
	size_t queued;                                 /* pending + running + done */
	size_t max_queue;
	bool stop;
	int efd;
	pthread_t *threads;
	unsigned nthreads;
	accel_pool_run_fn *run;
	accel_pool_done_fn *deliver;
	accel_pool_discard_fn *discard;
	void *ctx;
};

static void *pool_thread(void *arg)
{
	struct accel_pool *p = arg;

	for (;;) {
		struct accel_pool_job *job;
		uint64_t one = 1;

		pthread_mutex_lock(&p->lock);
		while (!p->stop && p->pending_head == NULL)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		job = p->pending_head;
		p->pending_head = job->next;
		if (p->pending_head == NULL)
			p->pending_tail = NULL;
		pthread_mutex_unlock(&p->lock);

		p->run(p->ctx, job);

		pthread_mutex_lock(&p->lock);
		job->next = p->done;
		p->done = job;
		pthread_mutex_unlock(&p->lock);
		/* an eventfd write only fails when the counter would overflow:
		 * then the loop has a wakeup pending anyway */
		while (write(p->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	ERR_clear_error();
	return NULL;
}

int accel_pool_submit(struct accel_pool *p, struct accel_pool_job *job)
{
	pthread_mutex_lock(&p->lock);
	if (p->queued >= p->max_queue) {
		pthread_mutex_unlock(&p->lock);
		return -1;
	}
	p->queued++;
	job->next = NULL;
	if (p->pending_tail != NULL)
		p->pending_tail->next = job;
	else
		p->pending_head = job;
	p->pending_tail = job;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int accel_pool_fd(const struct accel_pool *p)
{
	return p->efd;
}

void accel_pool_poll(struct accel_pool *p)
{
	struct accel_pool_job *list, *fifo = NULL, *next;
	uint64_t count;
	size_t n = 0;

	if (read(p->efd, &count, sizeof(count)) < 0 && errno != EAGAIN && errno != EINTR)
		sp_log(SP_LOG_ERR, "accel_pool_eventfd", "pool=%s error=\"%s\"", p->what,
		       strerror(errno));
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
	/* room first: a callback may submit again (fallback, probes) */
	pthread_mutex_lock(&p->lock);
	p->queued -= n;
	pthread_mutex_unlock(&p->lock);
	for (; fifo != NULL; fifo = next) {
		next = fifo->next;
		p->deliver(p->ctx, fifo);
	}
}

void accel_pool_free(struct accel_pool **pool_r)
{
	struct accel_pool *p = *pool_r;
	struct accel_pool_job *job, *next;

	if (p == NULL)
		return;
	*pool_r = NULL;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	/* a thread inside a job (a C_Sign) finishes it first: not cancellable */
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	for (job = p->pending_head; job != NULL; job = next) {
		next = job->next;
		p->discard(p->ctx, job);
	}
	for (job = p->done; job != NULL; job = next) {
		next = job->next;
		p->discard(p->ctx, job);
	}
	close(p->efd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

struct accel_pool *accel_pool_new(const char *what, unsigned threads, size_t max_queue,
				  size_t stack_size, accel_pool_run_fn *run, accel_pool_done_fn *done,
				  accel_pool_discard_fn *discard, void *ctx, char **error_r)
{
	struct accel_pool *p;
	pthread_attr_t attr;
	sigset_t all, old;
	int err;

	if (threads == 0 || max_queue == 0) {
		*error_r = sp_xasprintf("%s: a pool needs at least one thread and one slot", what);
		return NULL;
	}
	p = sp_xcalloc(1, sizeof(*p));
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->max_queue = max_queue;
	p->run = run;
	p->deliver = done;
	p->discard = discard;
	p->ctx = ctx;
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0) {
		*error_r = sp_xasprintf("%s: eventfd: %s", what, strerror(errno));
		free(p);
		return NULL;
	}
	if ((err = pthread_mutex_init(&p->lock, NULL)) != 0 ||
	    (err = pthread_cond_init(&p->cond, NULL)) != 0) {
		*error_r = sp_xasprintf("%s: pthread init: %s", what, strerror(err));
		close(p->efd);
		free(p);
		return NULL;
	}
	p->threads = sp_xcalloc(threads, sizeof(*p->threads));
	if ((err = pthread_attr_init(&attr)) != 0 ||
	    (stack_size != 0 && (err = pthread_attr_setstacksize(&attr, stack_size)) != 0)) {
		*error_r = sp_xasprintf("%s: pthread attr: %s", what, strerror(err));
		accel_pool_free(&p);
		return NULL;
	}
	/* signals belong to the loop thread (libevent's signal events) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < threads; i++) {
		err = pthread_create(&p->threads[i], &attr, pool_thread, p);
		if (err != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			pthread_attr_destroy(&attr);
			*error_r = sp_xasprintf("%s: pthread_create: %s", what, strerror(err));
			accel_pool_free(&p);
			return NULL;
		}
		p->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return p;
}

/* accel.h */
long accel_usable_cpus(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? n : 1;
}
