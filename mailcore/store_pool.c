/* The thread pool behind store_pool.h: a bounded FIFO of jobs, N threads
 * that run work(), and a completion list the loop drains when the eventfd
 * becomes readable. So a slow disk or a slow hash costs one pool thread,
 * never the sessions on the loop. */
#include "mailcore/store_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/xalloc.h"

struct pool_job {
	store_pool_fn *work, *done;
	void *arg;
	struct pool_job *next;
};

struct store_pool {
	struct event_base *base;
	int efd;
	struct event *ev;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pool_job *head, *tail;      /* waiting for a thread */
	struct pool_job *done_head, *done_tail;
	unsigned queued, max_queued, pending;
	bool stopping, full_logged;
	pthread_t *threads;
	unsigned n_threads;
};

static void *pool_thread(void *arg)
{
	struct store_pool *p = arg;

	for (;;) {
		struct pool_job *j;
		uint64_t one = 1;

		pthread_mutex_lock(&p->lock);
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->head == NULL) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		j = p->head;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->queued--;
		pthread_mutex_unlock(&p->lock);

		j->work(j->arg);

		pthread_mutex_lock(&p->lock);
		j->next = NULL;
		if (p->done_tail != NULL)
			p->done_tail->next = j;
		else
			p->done_head = j;
		p->done_tail = j;
		pthread_mutex_unlock(&p->lock);
		/* an eventfd counter only fails to add on overflow: it is read often */
		while (write(p->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
}

static void run_completions(struct store_pool *p)
{
	struct pool_job *list;

	pthread_mutex_lock(&p->lock);
	list = p->done_head;
	p->done_head = p->done_tail = NULL;
	pthread_mutex_unlock(&p->lock);
	while (list != NULL) {
		struct pool_job *j = list;

		list = j->next;
		p->pending--;
		j->done(j->arg);
		free(j);
	}
}

static void on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN && errno != EINTR)
		sp_log(SP_LOG_ERR, "pool_eventfd", "why=\"%s\"", strerror(errno));
	run_completions(arg);
}

struct store_pool *store_pool_new(struct event_base *base, unsigned threads,
				  unsigned max_queued, char **error_r)
{
	struct store_pool *p = sp_xcalloc(1, sizeof(*p));

	if (threads < 1 || threads > 64) {
		*error_r = sp_xasprintf("pool: %u threads (1..64)", threads);
		free(p);
		return NULL;
	}
	p->base = base;
	p->max_queued = max_queued;
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0) {
		*error_r = sp_xasprintf("pool: eventfd: %s", strerror(errno));
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_eventfd, p);
	if (p->ev == NULL || event_add(p->ev, NULL) < 0) {
		*error_r = sp_xasprintf("pool: cannot watch the eventfd");
		store_pool_free(&p);
		return NULL;
	}
	p->threads = sp_xcalloc(threads, sizeof(*p->threads));
	for (unsigned i = 0; i < threads; i++) {
		int rc = pthread_create(&p->threads[i], NULL, pool_thread, p);

		if (rc != 0) {
			*error_r = sp_xasprintf("pool: pthread_create: %s", strerror(rc));
			store_pool_free(&p);
			return NULL;
		}
		p->n_threads++;
	}
	return p;
}

int store_pool_submit(struct store_pool *p, store_pool_fn *work, store_pool_fn *done, void *arg)
{
	struct pool_job *j;

	pthread_mutex_lock(&p->lock);
	if (p->queued >= p->max_queued || p->stopping) {
		bool log = !p->full_logged;

		p->full_logged = true;
		pthread_mutex_unlock(&p->lock);
		if (log)
			sp_log(SP_LOG_WARN, "pool_full", "queued=%u limit=%u", p->max_queued,
			       p->max_queued);
		return -1;
	}
	p->full_logged = false;
	j = sp_xcalloc(1, sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	if (p->tail != NULL)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	p->pending++;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

unsigned store_pool_pending(const struct store_pool *p)
{
	return p->pending;
}

void store_pool_free(struct store_pool **pp)
{
	struct store_pool *p;

	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	run_completions(p);
	if (p->ev != NULL)
		event_free(p->ev);
	close(p->efd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p);
	*pp = NULL;
}
