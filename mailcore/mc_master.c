/* mailcore's master process: it forks the workers that share the listeners
 * (each with its own event loop and thread pools, made after the fork),
 * logs and respawns one that dies (with backoff), forwards SIGHUP and
 * SIGTERM/SIGINT to them, and hands their "mail queued" wake-ups to the queue
 * manager, which runs in the master alone. It parses nothing from the
 * network; a worker's only channel to it is two pipes of single bytes.
 *
 * The processes:
 *   master   mailcore -c CONF; binds as root, drops to user/group, then forks;
 *            runs the queue manager (queue.pid, SIGUSR1 = flush) and its pool;
 *            talks to: workers (ready pipe, wake pipe, signals)
 *   worker   fork without exec, mailcore.workers of them; user/group; SMTP,
 *            IMAP, POP sessions on the inherited listeners; dies with the
 *            master (PR_SET_PDEATHSIG SIGKILL) */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/supervise.h"
#include "common/xalloc.h"
#include "mailcore/mc_listen.h"
#include "mailcore/mc_master.h"

#define RESTART_BACKOFF_MAX_MS 10000
#define STOP_GRACE_MS 5000      /* after SIGTERM to the workers, before SIGKILL */

struct mc_worker {
	struct mc_master *m;
	unsigned index;
	pid_t pid;                  /* 0: not running */
	uint64_t started_ms;
	long backoff_ms;
	bool ready;
	struct event *ev_restart;
};

struct mc_master {
	struct event_base *base;
	struct mc_master_hooks hooks;
	pid_t self;
	unsigned n_workers;
	struct mc_worker workers[MC_MAX_WORKERS];
	int sigfd, ready_r, ready_w, wake_r, wake_w;
	struct event *ev_sig, *ev_ready, *ev_wake, *ev_deadline;
	bool stopping, announced;
};

static const int master_signals[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1};

unsigned mc_master_worker_count(long n)
{
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	return n > MC_MAX_WORKERS ? MC_MAX_WORKERS : (unsigned)n;
}

unsigned mc_master_workers_alive(const struct mc_master *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < m->n_workers; i++)
		if (m->workers[i].pid != 0)
			n++;
	return n;
}

bool mc_master_stopping(const struct mc_master *m)
{
	return m->stopping;
}

void mc_master_wake(int wake_fd)
{
	static const char byte = 'q';

	/* EAGAIN: the pipe is full of wake-ups the master has not read yet */
	while (write(wake_fd, &byte, 1) < 0 && errno == EINTR)
		;
}

/* In the child: a clean slate, then the worker itself. Never returns. */
static void worker_child(struct mc_master *m, struct mc_worker *w)
{
	/* pending master signals must not kill it before its own handlers are in */
	static const int ignore[] = {SIGHUP, SIGUSR1, SIGPIPE, SIGXFSZ};
	int keep[MC_LISTEN_MAX + 3];
	const int *lfds;
	size_t n_keep = 0, n_l = mc_listen_fds(&lfds);

	sp_child_reset_signals(ignore, sizeof(ignore) / sizeof(ignore[0]));
	if (sp_child_die_with_parent(m->self, SIGKILL) < 0)
		_exit(1);
	for (size_t i = 0; i < n_l && n_keep < MC_LISTEN_MAX; i++)
		keep[n_keep++] = lfds[i];
	keep[n_keep++] = m->ready_w;
	keep[n_keep++] = m->wake_w;
	keep[n_keep++] = sp_log_fd();
	/* the master's loop, its pool, the queue manager's connections: not ours */
	sp_close_fds_except(keep, n_keep);
	_exit(m->hooks.worker_main(m->hooks.arg, w->index, m->ready_w, m->wake_w));
}

static int spawn(struct mc_master *m, struct mc_worker *w)
{
	pid_t pid = fork();

	if (pid < 0) {
		sp_log(SP_LOG_ERR, "child_start", "proc=worker index=%u err=\"fork: %s\"", w->index,
		       strerror(errno));
		return -1;
	}
	if (pid == 0)
		worker_child(m, w);
	w->pid = pid;
	w->started_ms = sp_now_ms();
	w->ready = false;
	sp_log(SP_LOG_INFO, "child_start", "proc=worker index=%u pid=%d", w->index, (int)pid);
	return 0;
}

static void schedule_restart(struct mc_worker *w)
{
	struct timeval tv;

	w->backoff_ms = sp_restart_backoff(w->backoff_ms, sp_now_ms() - w->started_ms,
					   RESTART_BACKOFF_MAX_MS);
	tv.tv_sec = w->backoff_ms / 1000;
	tv.tv_usec = (w->backoff_ms % 1000) * 1000;
	evtimer_add(w->ev_restart, &tv);
	sp_log(SP_LOG_NOTICE, "child_restart", "proc=worker index=%u in_ms=%ld", w->index,
	       w->backoff_ms);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct mc_worker *w = arg;

	(void)fd;
	(void)what;
	if (w->m->stopping || w->pid != 0)
		return;
	if (spawn(w->m, w) < 0)
		schedule_restart(w);
}

static void reap(struct mc_master *m)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		struct mc_worker *w = NULL;

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			break;
		for (unsigned i = 0; i < m->n_workers; i++)
			if (m->workers[i].pid == pid)
				w = &m->workers[i];
		if (w == NULL)
			continue;
		sp_log_child_exit(m->stopping ? SP_LOG_INFO : SP_LOG_WARN, "worker", (int)w->index,
				  pid, status);
		w->pid = 0;
		w->ready = false;
		if (!m->stopping)
			schedule_restart(w);
	}
	if (m->stopping && mc_master_workers_alive(m) == 0)
		event_base_loopbreak(m->base);
}

static void signal_workers(struct mc_master *m, int sig)
{
	for (unsigned i = 0; i < m->n_workers; i++)
		if (m->workers[i].pid != 0 && kill(m->workers[i].pid, sig) < 0 && errno != ESRCH)
			sp_log(SP_LOG_WARN, "signal_worker", "index=%u pid=%d signal=%d err=\"%s\"", i,
			       (int)m->workers[i].pid, sig, strerror(errno));
}

static void begin_stop(struct mc_master *m, int sig)
{
	struct timeval grace = {STOP_GRACE_MS / 1000, (STOP_GRACE_MS % 1000) * 1000};

	if (m->stopping)
		return;
	m->stopping = true;
	sp_log(SP_LOG_NOTICE, "shutdown", "signal=%d workers=%u", sig, mc_master_workers_alive(m));
	if (m->hooks.stopping != NULL)
		m->hooks.stopping(m->hooks.arg);
	for (unsigned i = 0; i < m->n_workers; i++)
		evtimer_del(m->workers[i].ev_restart);
	/* each worker stops accepting and closes its sessions, as one daemon did */
	signal_workers(m, SIGTERM);
	if (mc_master_workers_alive(m) == 0)
		event_base_loopbreak(m->base);
	else
		evtimer_add(m->ev_deadline, &grace);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct mc_master *m = arg;

	(void)fd;
	(void)what;
	sp_log(SP_LOG_WARN, "shutdown_timeout", "workers=%u grace_ms=%d action=kill",
	       mc_master_workers_alive(m), STOP_GRACE_MS);
	signal_workers(m, SIGKILL);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	struct mc_master *m = arg;
	struct signalfd_siginfo si;

	(void)what;
	for (;;) {
		ssize_t n = read(fd, &si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			return; /* EAGAIN: all read; a signalfd gives whole records */
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(m);
			break;
		case SIGHUP:
			if (!m->stopping && m->hooks.reload(m->hooks.arg))
				signal_workers(m, SIGHUP);
			break;
		case SIGUSR1:
			m->hooks.flush(m->hooks.arg);
			break;
		case SIGTERM:
		case SIGINT:
			begin_stop(m, (int)si.ssi_signo);
			break;
		default:
			break;
		}
	}
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct mc_master *m = arg;
	unsigned char buf[MC_MAX_WORKERS];
	ssize_t n;
	bool all = true;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] < m->n_workers && m->workers[buf[i]].pid != 0)
				m->workers[buf[i]].ready = true;
	if (m->announced)
		return;
	for (unsigned i = 0; i < m->n_workers; i++)
		all = all && m->workers[i].ready;
	if (all) {
		m->announced = true;
		m->hooks.ready(m->hooks.arg);
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct mc_master *m = arg;
	char buf[256];
	bool any = false;

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		any = true;
	if (any && !m->stopping)
		m->hooks.queued(m->hooks.arg);
}

struct mc_master *mc_master_start(struct event_base *base, unsigned n_workers,
				  const struct mc_master_hooks *hooks, char **error_r)
{
	struct mc_master *m = sp_xcalloc(1, sizeof(*m));
	int ready[2] = {-1, -1}, wake[2] = {-1, -1};
	sigset_t set;

	m->base = base;
	m->hooks = *hooks;
	m->self = getpid();
	m->n_workers = n_workers > MC_MAX_WORKERS ? MC_MAX_WORKERS : n_workers;
	m->sigfd = m->ready_r = m->ready_w = m->wake_r = m->wake_w = -1;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(master_signals) / sizeof(master_signals[0]); i++)
		sigaddset(&set, master_signals[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
	    (m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    pipe2(ready, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(wake, O_NONBLOCK | O_CLOEXEC) < 0) {
		*error_r = sp_xasprintf("master: %s", strerror(errno));
		goto fail;
	}
	m->ready_r = ready[0];
	m->ready_w = ready[1];
	m->wake_r = wake[0];
	m->wake_w = wake[1];
	ready[0] = ready[1] = wake[0] = wake[1] = -1;
	m->ev_sig = event_new(base, m->sigfd, EV_READ | EV_PERSIST, on_signal, m);
	m->ev_ready = event_new(base, m->ready_r, EV_READ | EV_PERSIST, on_ready, m);
	m->ev_wake = event_new(base, m->wake_r, EV_READ | EV_PERSIST, on_wake, m);
	m->ev_deadline = evtimer_new(base, on_deadline, m);
	if (m->ev_sig == NULL || m->ev_ready == NULL || m->ev_wake == NULL ||
	    m->ev_deadline == NULL || event_add(m->ev_sig, NULL) < 0 ||
	    event_add(m->ev_ready, NULL) < 0 || event_add(m->ev_wake, NULL) < 0) {
		*error_r = sp_xasprintf("master: cannot watch its signals and pipes");
		goto fail;
	}
	for (unsigned i = 0; i < m->n_workers; i++) {
		struct mc_worker *w = &m->workers[i];

		w->m = m;
		w->index = i;
		w->ev_restart = evtimer_new(base, on_restart, w);
		if (w->ev_restart == NULL) {
			*error_r = sp_xasprintf("master: cannot make a timer");
			goto fail;
		}
	}
	for (unsigned i = 0; i < m->n_workers; i++) {
		if (spawn(m, &m->workers[i]) < 0) {
			*error_r = sp_xasprintf("cannot start worker %u: %s", i, strerror(errno));
			goto fail;
		}
	}
	return m;
fail:
	for (size_t i = 0; i < 2; i++) {
		if (ready[i] >= 0)
			close(ready[i]);
		if (wake[i] >= 0)
			close(wake[i]);
	}
	mc_master_free(&m);
	return NULL;
}

void mc_master_free(struct mc_master **mp)
{
	struct mc_master *m = *mp;

	if (m == NULL)
		return;
	signal_workers(m, SIGKILL);
	for (unsigned i = 0; i < m->n_workers; i++) {
		struct mc_worker *w = &m->workers[i];

		while (w->pid != 0 && waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
			;
		w->pid = 0;
		if (w->ev_restart != NULL)
			event_free(w->ev_restart);
	}
	if (m->ev_sig != NULL)
		event_free(m->ev_sig);
	if (m->ev_ready != NULL)
		event_free(m->ev_ready);
	if (m->ev_wake != NULL)
		event_free(m->ev_wake);
	if (m->ev_deadline != NULL)
		event_free(m->ev_deadline);
	if (m->sigfd >= 0)
		close(m->sigfd);
	if (m->ready_r >= 0)
		close(m->ready_r);
	if (m->ready_w >= 0)
		close(m->ready_w);
	if (m->wake_r >= 0)
		close(m->wake_r);
	if (m->wake_w >= 0)
		close(m->wake_w);
	free(m);
	*mp = NULL;
}
