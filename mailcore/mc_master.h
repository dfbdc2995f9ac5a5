/* Private to mailcore: the master process (mc_master.c). It forks the
 * workers that share the listeners, supervises and respawns them, routes
 * the signals, and carries the workers' "mail queued" wake-ups to the queue
 * manager, which runs in the master. */
#ifndef MAILCORE_MC_MASTER_H
#define MAILCORE_MC_MASTER_H

#include <stdbool.h>
#include <event2/event.h>

#define MC_MAX_WORKERS 64

struct mc_master;

struct mc_master_hooks {
	/* In a new worker, right after fork() (signals reset, the master's fds
	 * closed but for the listeners, the log and the two given here): runs
	 * the worker to its end and returns its exit status. It writes one
	 * byte to ready_fd once it accepts, and calls mc_master_wake(wake_fd)
	 * when it has queued mail. */
	int (*worker_main)(void *arg, unsigned index, int ready_fd, int wake_fd);
	bool (*reload)(void *arg);   /* SIGHUP; true = forward it to the workers */
	void (*flush)(void *arg);    /* SIGUSR1 */
	void (*queued)(void *arg);   /* a worker queued mail (coalesced) */
	void (*ready)(void *arg);    /* every worker of the first start accepts */
	void (*stopping)(void *arg); /* SIGTERM/SIGINT, before the workers are told */
	void *arg;
};

/* Blocks the signals the master handles (read through a signalfd on base),
 * makes the ready and wake pipes, and forks n_workers workers. Call with no
 * thread started yet. Returns the master, or NULL with *error_r. */
struct mc_master *mc_master_start(struct event_base *base, unsigned n_workers,
				  const struct mc_master_hooks *hooks, char **error_r);

/* Workers alive now. */
unsigned mc_master_workers_alive(const struct mc_master *m);

/* True once a stop was asked (the loop breaks when every worker is gone). */
bool mc_master_stopping(const struct mc_master *m);

/* Kills the workers still alive (SIGKILL) and waits for them, then frees. */
void mc_master_free(struct mc_master **m);

/* In a worker: tells the master that mail was queued. Non-blocking; a full
 * pipe already holds a wake-up, so the byte is not needed. */
void mc_master_wake(int wake_fd);

/* The worker count for mailcore.workers = n: n, or one per online CPU for
 * 0, at most MC_MAX_WORKERS. */
unsigned mc_master_worker_count(long n);

#endif
