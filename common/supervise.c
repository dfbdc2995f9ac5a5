/* Supervision helpers shared by the masters that fork workers (tlsd, mailcore):
 * see supervise.h. */
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/supervise.h"

uint64_t sp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

long sp_restart_backoff(long prev_ms, uint64_t lived_ms, long max_ms)
{
	if (lived_ms >= SP_RESTART_STABLE_MS || prev_ms <= 0)
		return SP_RESTART_BACKOFF_MIN_MS;
	if (prev_ms >= max_ms)
		return max_ms;
	return prev_ms * 2 > max_ms ? max_ms : prev_ms * 2;
}

void sp_child_reset_signals(const int *ignore, size_t n)
{
	sigset_t none;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
	for (size_t i = 0; i < n; i++)
		signal(ignore[i], SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

int sp_child_die_with_parent(pid_t parent_pid, int sig)
{
	if (prctl(PR_SET_PDEATHSIG, sig) < 0)
		return -1;
	/* the parent may have died between fork() and prctl() */
	return getppid() == parent_pid ? 0 : -1;
}

static bool kept(int fd, const int *keep, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (keep[i] == fd)
			return true;
	return false;
}

void sp_close_fds_except(const int *keep, size_t n)
{
	DIR *d = opendir("/proc/self/fd");
	long max;

	if (d != NULL) {
		int dfd = dirfd(d), *fds = NULL;
		size_t nfds = 0, cap = 0;
		struct dirent *e;

		/* collect first: closing while reading the directory is unspecified */
		while ((e = readdir(d)) != NULL) {
			char *end;
			long fd = strtol(e->d_name, &end, 10);

			if (*end != '\0' || end == e->d_name || fd < 3 || fd == dfd ||
			    kept((int)fd, keep, n))
				continue;
			if (nfds == cap) {
				int *more = realloc(fds, (cap ? cap * 2 : 64) * sizeof(*fds));

				if (more == NULL)
					break;
				fds = more;
				cap = cap ? cap * 2 : 64;
			}
			fds[nfds++] = (int)fd;
		}
		closedir(d);
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		free(fds);
		if (e == NULL)
			return;
	}
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = 3; fd < (int)max; fd++)
		if (!kept(fd, keep, n))
			close(fd);
}

void sp_log_child_exit(enum sp_log_level level, const char *proc, int index, pid_t pid, int status)
{
	if (WIFSIGNALED(status))
		sp_log(level, "child_exit", "proc=%s index=%d pid=%d signal=%d",
		       proc, index, (int)pid, WTERMSIG(status));
	else
		sp_log(level, "child_exit", "proc=%s index=%d pid=%d status=%d",
		       proc, index, (int)pid, WEXITSTATUS(status));
}
