/* What a master needs to supervise the children it forks (tlsd's master,
 * mailcore's master): a monotonic clock, the restart backoff rule, a clean
 * signal state and fd table for a fresh child, and the "die with the
 * master" arrangement. */
#ifndef SP_SUPERVISE_H
#define SP_SUPERVISE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/log.h"

#define SP_RESTART_BACKOFF_MIN_MS 100
#define SP_RESTART_STABLE_MS 10000   /* a child that lived this long restarts at once */

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t sp_now_ms(void);

/* The delay before restarting a child that ran lived_ms with the previous
 * delay prev_ms (0 = none yet): the minimum after a stable run, else the
 * previous one doubled, capped at max_ms. */
long sp_restart_backoff(long prev_ms, uint64_t lived_ms, long max_ms);

/* In a child right after fork(): the default action for the signals a
 * master watches or ignores, SIG_IGN for ignore[0..n) (so that one pending
 * from the master's blocked set cannot kill the child before it sets up its
 * own handlers), then an empty signal mask. */
void sp_child_reset_signals(const int *ignore, size_t n);

/* In a child right after fork(): ask the kernel to send sig when the parent
 * dies, then check that parent_pid is still the parent (it may have died
 * before the request). Returns 0, or -1 when the parent is already gone. */
int sp_child_die_with_parent(pid_t parent_pid, int sig);

/* Closes every fd from 3 up except those in keep[0..n). For a child forked
 * from a master that holds other children's and peers' sockets. */
void sp_close_fds_except(const int *keep, size_t n);

/* Logs a reaped child's end as event=child_exit proc=NAME index=I pid=P and
 * status= or signal=; level is the caller's (expected or not). */
void sp_log_child_exit(enum sp_log_level level, const char *proc, int index, pid_t pid, int status);

#endif
