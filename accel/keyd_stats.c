/* keyd's stats socket (keyd.stats_socket): a unix stream socket, mode 0600,
 * where keyd writes the engine's counters (accel_engine_stats) to whoever
 * connects and then closes. It parses nothing but an optional first line:
 * "stats" or "stats text" (the default) or "stats json"; a client that sends
 * nothing gets text after STATS_WAIT_MS. Bounded: STATS_MAX_CLIENTS at once,
 * STATS_LINE_MAX bytes read, STATS_MAX_OUT bytes written, STATS_IO_MS per
 * client. Ownership: a client is freed by client_end, which every path
 * reaches (done, error, timeout); keyd_stats_free ends those still open. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "accel/keyd_int.h"
#include "common/log.h"
#include "common/xalloc.h"

#define STATS_MAX_CLIENTS 8
#define STATS_LINE_MAX 64
#define STATS_MAX_OUT (4u << 20)
#define STATS_WAIT_MS 300
#define STATS_IO_MS 5000

struct stats_client {
	struct keyd_stats *st;
	int fd;
	struct event *ev;
	char line[STATS_LINE_MAX + 1];
	size_t line_len;
	bool writing;
	char *out;
	size_t out_len, out_off;
};

struct keyd_stats {
	struct keyd *kd;
	char *path;
	int fd;
	struct event *ev;
	struct stats_client *clients[STATS_MAX_CLIENTS];
};

static void client_end(struct stats_client *c)
{
	struct keyd_stats *st = c->st;

	for (size_t i = 0; i < STATS_MAX_CLIENTS; i++) {
		if (st->clients[i] == c)
			st->clients[i] = NULL;
	}
	if (c->ev != NULL)
		event_free(c->ev);
	close(c->fd);
	free(c->out);
	free(c);
}

static void client_cb(evutil_socket_t fd, short what, void *arg);

static void client_start_write(struct stats_client *c, bool json)
{
	struct timeval tv = { STATS_IO_MS / 1000, 0 };

	c->out = accel_engine_stats(c->st->kd->eng, json, STATS_MAX_OUT, &c->out_len);
	c->writing = true;
	event_free(c->ev);
	c->ev = event_new(c->st->kd->base, c->fd, EV_WRITE | EV_PERSIST | EV_TIMEOUT, client_cb, c);
	if (c->ev == NULL || event_add(c->ev, &tv) < 0)
		client_end(c);
}

/* The one thing parsed: an optional command line. */
static int command(const char *line, bool *json_r)
{
	*json_r = false;
	if (line[0] == '\0' || strcmp(line, "stats") == 0 || strcmp(line, "stats text") == 0)
		return 0;
	if (strcmp(line, "stats json") == 0) {
		*json_r = true;
		return 0;
	}
	return -1;
}

static void client_read(struct stats_client *c, short what)
{
	bool json = false;
	char *nl;
	ssize_t n = 0;

	if (what & EV_READ) {
		do {
			n = recv(c->fd, c->line + c->line_len, STATS_LINE_MAX - c->line_len, 0);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			client_end(c);
			return;
		}
		c->line_len += (size_t)n;
		c->line[c->line_len] = '\0';
	}
	nl = strchr(c->line, '\n');
	if (nl == NULL && n > 0 && c->line_len < STATS_LINE_MAX && !(what & EV_TIMEOUT))
		return;  /* more of the line may come */
	if (nl != NULL)
		*nl = '\0';
	if (nl == NULL && c->line_len >= STATS_LINE_MAX) {
		c->line[0] = '\1';  /* too long: not a command */
	}
	if (c->line_len > 0 && c->line[strlen(c->line) - 1] == '\r')
		c->line[strlen(c->line) - 1] = '\0';
	if (command(c->line, &json) < 0) {
		static const char msg[] = "error: unknown command (want: stats [text|json])\n";

		(void)send(c->fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		client_end(c);
		return;
	}
	client_start_write(c, json);
}

static void client_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stats_client *c = arg;

	if (!c->writing) {
		client_read(c, what);
		return;
	}
	if (what & EV_TIMEOUT) {
		client_end(c);
		return;
	}
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0)
			break;
		c->out_off += (size_t)n;
	}
	client_end(c);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct keyd_stats *st = arg;
	struct timeval tv = { 0, STATS_WAIT_MS * 1000 };
	struct stats_client *c;
	size_t slot = STATS_MAX_CLIENTS;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	for (size_t i = 0; i < STATS_MAX_CLIENTS; i++) {
		if (st->clients[i] == NULL) {
			slot = i;
			break;
		}
	}
	if (slot == STATS_MAX_CLIENTS) {
		sp_log(SP_LOG_NOTICE, "stats_refused", "reason=\"%d clients already\"",
		       STATS_MAX_CLIENTS);
		close(fd);
		return;
	}
	c = sp_xcalloc(1, sizeof(*c));
	c->st = st;
	c->fd = fd;
	c->ev = event_new(st->kd->base, fd, EV_READ | EV_PERSIST | EV_TIMEOUT, client_cb, c);
	if (c->ev == NULL || event_add(c->ev, &tv) < 0) {
		if (c->ev != NULL)
			event_free(c->ev);
		close(fd);
		free(c);
		return;
	}
	st->clients[slot] = c;
}

struct keyd_stats *keyd_stats_new(struct keyd *kd, const char *path, char **error_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct keyd_stats *st;
	struct stat sb;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		*error_r = sp_xasprintf("keyd.stats_socket %s: path too long", path);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* a stale socket from an earlier keyd; refuse to remove anything else */
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			*error_r = sp_xasprintf("keyd.stats_socket %s exists and is not a socket",
						path);
			return NULL;
		}
		if (unlink(path) < 0) {
			*error_r = sp_xasprintf("keyd.stats_socket %s: unlink: %s", path,
						strerror(errno));
			return NULL;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = sp_xasprintf("keyd.stats_socket: socket: %s", strerror(errno));
		return NULL;
	}
	old = umask(0177);  /* born 0600: no window where others may connect */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old);
		*error_r = sp_xasprintf("keyd.stats_socket %s: bind: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	umask(old);
	if (chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		*error_r = sp_xasprintf("keyd.stats_socket %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}
	st = sp_xcalloc(1, sizeof(*st));
	st->kd = kd;
	st->fd = fd;
	st->path = sp_xstrdup(path);
	st->ev = event_new(kd->base, fd, EV_READ | EV_PERSIST, accept_cb, st);
	if (st->ev == NULL || event_add(st->ev, NULL) < 0) {
		*error_r = sp_xstrdup("keyd.stats_socket: cannot create its event");
		keyd_stats_free(&st);
		return NULL;
	}
	sp_log(SP_LOG_INFO, "stats_socket", "path=\"%s\"", path);
	return st;
}

void keyd_stats_free(struct keyd_stats **stp)
{
	struct keyd_stats *st = *stp;

	if (st == NULL)
		return;
	for (size_t i = 0; i < STATS_MAX_CLIENTS; i++) {
		if (st->clients[i] != NULL)
			client_end(st->clients[i]);
	}
	if (st->ev != NULL)
		event_free(st->ev);
	close(st->fd);
	unlink(st->path);
	free(st->path);
	free(st);
	*stp = NULL;
}
