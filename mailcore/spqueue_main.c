/* spqueue: the operator's view of mailcore's outbound queue.
 *   spqueue -c sealpost.conf list    one line per spooled message: id, age,
 *                                    size, sender, recipients (with their
 *                                    state), last error, next attempt
 *   spqueue -c sealpost.conf flush   asks the running daemon to retry every
 *                                    message now (SIGUSR1 to the pid in
 *                                    <queue>/queue.pid, checked to be mailcore)
 *
 * SECURITY
 *   Trust: reads the spool and its state files (written by mailcore) and
 *   prints them escaped; parses no network input. Touches nothing but a
 *   signal to the daemon's pid after checking /proc/PID/comm. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"
#include "conf/conf.h"
#include "config.h"
#include "mailcore/queue.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: spqueue [-c sealpost.conf] list|flush\n");
}

static void print_escaped(const char *s)
{
	char buf[1024];

	fputs(sp_log_escape(buf, sizeof(buf), s, strlen(s)), stdout);
}

static void age_text(long secs, char *buf, size_t cap)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(buf, cap, "%lds", secs);
	else if (secs < 7200)
		snprintf(buf, cap, "%ldm", secs / 60);
	else if (secs < 172800)
		snprintf(buf, cap, "%ldh", secs / 3600);
	else
		snprintf(buf, cap, "%ldd", secs / 86400);
}

static int list(const char *dir)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;
	time_t now = time(NULL);
	unsigned n = 0;

	snprintf(path, sizeof(path), "%s/new", dir);
	d = opendir(path);
	if (d == NULL) {
		if (errno == ENOENT) {
			printf("queue is empty\n");
			return 0;
		}
		fprintf(stderr, "spqueue: %s: %s\n", path, strerror(errno));
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		struct queue_envelope env;
		struct queue_state st;
		struct stat sb;
		char *error = NULL, age[32], next[32];
		int fd, rc;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		rc = queue_envelope_read(fd, &env, &error);
		close(fd);
		if (rc < 0) {
			printf("%s  (unreadable: %s)\n", de->d_name, error);
			free(error);
			continue;
		}
		rc = queue_state_load(dir, de->d_name, env.n_rcpts, &st, &error);
		if (rc < 0) {
			free(error);
			rc = 1;
		}
		if (rc == 1) {
			memset(&st, 0, sizeof(st));
			st.first_seen = sb.st_mtime;
		}
		age_text((long)(now - st.first_seen), age, sizeof(age));
		if (st.attempts == 0 || st.next_attempt <= now)
			snprintf(next, sizeof(next), "now");
		else {
			char in[24];

			age_text((long)(st.next_attempt - now), in, sizeof(in));
			snprintf(next, sizeof(next), "in %s", in);
		}
		printf("%s\n  age=%s size=%llu attempts=%u next=%s\n  from=<", de->d_name, age,
		       (unsigned long long)(sb.st_size - (off_t)env.body_offset), st.attempts, next);
		print_escaped(env.sender);
		printf(">\n");
		for (size_t i = 0; i < env.n_rcpts; i++) {
			char status = st.rcpts != NULL ? (char)st.rcpts[i].status : 'P';
			const char *word = status == 'D' ? "delivered" : status == 'B' ? "bounced"
					 : status == 'F' ? "failed" : "pending";

			printf("  to=<");
			print_escaped(env.rcpts[i]);
			printf("> %s", word);
			if (st.rcpts != NULL && st.rcpts[i].error[0] != '\0' && status != 'D') {
				printf(" (");
				print_escaped(st.rcpts[i].error);
				printf(")");
			}
			printf("\n");
		}
		if (st.last_error[0] != '\0') {
			printf("  last_error=\"");
			print_escaped(st.last_error);
			printf("\"\n");
		}
		queue_state_clear(&st);
		queue_envelope_clear(&env);
		n++;
	}
	closedir(d);
	printf("%u message%s in the queue\n", n, n == 1 ? "" : "s");
	return 0;
}

static int flush(const char *dir)
{
	char path[PATH_MAX], buf[64], comm[64];
	FILE *f;
	long pid;

	snprintf(path, sizeof(path), "%s/queue.pid", dir);
	f = fopen(path, "r");
	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL || (pid = strtol(buf, NULL, 10)) <= 1) {
		fprintf(stderr, "spqueue: %s: no running queue manager (%s)\n", path,
			f == NULL ? strerror(errno) : "bad pid file");
		if (f != NULL)
			fclose(f);
		return 1;
	}
	fclose(f);
	/* a stale pid file must not make us signal some other process */
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	f = fopen(path, "r");
	if (f == NULL || fgets(comm, sizeof(comm), f) == NULL || strncmp(comm, "mailcore", 8) != 0) {
		fprintf(stderr, "spqueue: pid %ld is not a running mailcore\n", pid);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	fclose(f);
	if (kill((pid_t)pid, SIGUSR1) < 0) {
		fprintf(stderr, "spqueue: kill %ld: %s\n", pid, strerror(errno));
		return 1;
	}
	printf("flush requested (mailcore pid %ld)\n", pid);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf_path = SP_SYSCONFDIR "/sealpost.conf";
	struct sp_conf *conf;
	char *error = NULL;
	const char *dir;
	int opt, rc;

	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		switch (opt) {
		case 'c': conf_path = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc || (strcmp(argv[optind], "list") != 0 && strcmp(argv[optind], "flush") != 0)) {
		usage(stderr);
		return 2;
	}
	conf = sp_conf_new();
	if (sp_conf_add_all(conf, &error) < 0 || sp_conf_load(conf, conf_path, &error) < 0) {
		fprintf(stderr, "spqueue: %s\n", error);
		free(error);
		sp_conf_free(&conf);
		return 1;
	}
	dir = sp_conf_str(conf, "mailcore.queue");
	rc = strcmp(argv[optind], "list") == 0 ? list(dir) : flush(dir);
	sp_conf_free(&conf);
	return rc;
}
