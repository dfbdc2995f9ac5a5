/* Private to mailcore: a small thread pool for the work that must not stall
 * the event loop (the store's fsyncs, crypt(3) password checks, DNS
 * lookups, the queue's state files). work() runs on a pool thread and may
 * touch only its argument; done() runs later on the loop thread (woken by
 * an eventfd), in submission order per thread, and owns the argument. */
#ifndef MAILCORE_STORE_POOL_H
#define MAILCORE_STORE_POOL_H

struct event_base;
struct store_pool;

typedef void store_pool_fn(void *arg);

/* threads: 1..64; max_queued: jobs waiting for a thread before submit
 * refuses. Returns NULL and *error_r (caller frees) on failure. */
struct store_pool *store_pool_new(struct event_base *base, unsigned threads,
				  unsigned max_queued, char **error_r);
/* Returns 0, or -1 when the queue is full (logged once per burst): the
 * caller answers with a temporary failure. */
int store_pool_submit(struct store_pool *pool, store_pool_fn *work, store_pool_fn *done,
		      void *arg);
/* Jobs submitted and not yet completed (for tests and logs). */
unsigned store_pool_pending(const struct store_pool *pool);
/* Waits for the running and queued jobs to finish, runs their done
 * callbacks, stops the threads. free(NULL) is a no-op. */
void store_pool_free(struct store_pool **pool);

#endif
