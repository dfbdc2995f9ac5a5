/* The worker-thread pool the soft and pkcs11 backends run on (private to
 * accel/): a bounded FIFO of jobs, threads that run a backend's work
 * function, and an eventfd that wakes keyd's loop when finished jobs wait;
 * the loop then delivers them in submission order. */
#ifndef ACCEL_POOL_H
#define ACCEL_POOL_H

#include <stddef.h>

/* Backends embed this as the first member of their job. */
struct accel_pool_job {
	struct accel_pool_job *next;
};

/* Runs one job on a pool thread (the work: a signature). */
typedef void accel_pool_run_fn(void *ctx, struct accel_pool_job *job);
/* Hands a finished job back on the loop thread; it owns the job now. */
typedef void accel_pool_done_fn(void *ctx, struct accel_pool_job *job);
/* Frees a job that will never be delivered (the pool is going away). */
typedef void accel_pool_discard_fn(void *ctx, struct accel_pool_job *job);

struct accel_pool;

/* threads >= 1; max_queue >= 1 bounds queued + running + undelivered jobs;
 * stack_size 0 = the system default. Threads block every signal (signals
 * belong to the loop thread). NULL with *error_r (caller frees). */
struct accel_pool *accel_pool_new(const char *what, unsigned threads, size_t max_queue,
				  size_t stack_size, accel_pool_run_fn *run, accel_pool_done_fn *done,
				  accel_pool_discard_fn *discard, void *ctx, char **error_r);
/* Queues job; 0, or -1 when the queue is full (the caller keeps the job). */
int accel_pool_submit(struct accel_pool *pool, struct accel_pool_job *job);
/* Readable while finished jobs wait. */
int accel_pool_fd(const struct accel_pool *pool);
/* On the loop thread: delivers every finished job to done, oldest first. */
void accel_pool_poll(struct accel_pool *pool);
/* Lets running jobs finish, joins the threads, discards the rest. */
void accel_pool_free(struct accel_pool **pool);

#endif
