/* The listener registry (mc_listen.h): the master binds every listener as
 * root before it drops privileges; the forked workers inherit the sockets
 * and register duplicates of them in their own event loops. The master keeps
 * its copies (to hand them to a respawned worker) but never accepts.
 * Input: addresses and paths from sealpost.conf only. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/unixsock.h"
#include "common/xalloc.h"
#include "mailcore/mc_listen.h"

#define MAX_BOUND MC_LISTEN_MAX
#define LISTEN_BACKLOG 128
/* kill -9 of a master and an immediate restart: its workers (killed by
 * PR_SET_PDEATHSIG) may hold the port a few milliseconds longer */
#define BIND_RETRY_MS 2000
#define BIND_RETRY_STEP_MS 20

struct bound {
	char *key;         /* "tcp ADDR PORT" or "unix PATH" */
	char *unix_path;   /* NULL for TCP */
	int fd;
};

static struct bound bound[MAX_BOUND];
static size_t n_bound;
static int bound_fds[MAX_BOUND];
static bool frozen;

static const struct bound *find(const char *key)
{
	for (size_t i = 0; i < n_bound; i++)
		if (strcmp(bound[i].key, key) == 0)
			return &bound[i];
	return NULL;
}

/* Hands out a duplicate of key's socket, or says why there is none. */
static int lookup(const char *key, char **error_r)
{
	const struct bound *b = find(key);
	int fd;

	if (b == NULL) {
		*error_r = sp_xasprintf("%s: not bound by the master", key);
		return -1;
	}
	fd = fcntl(b->fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		*error_r = sp_xasprintf("%s: dup: %s", key, strerror(errno));
	return fd;
}

/* Before the freeze every ask comes from the one configuration pass: the
 * same address twice is two services on one port, as bind() would say. */
static int twice(const char *key, char **error_r)
{
	*error_r = sp_xasprintf("%s: %s", key, strerror(EADDRINUSE));
	return -1;
}

static int record(char *key, const char *unix_path, int fd, char **error_r)
{
	if (n_bound >= MAX_BOUND) {
		*error_r = sp_xasprintf("%s: more than %d listeners", key, MAX_BOUND);
		free(key);
		close(fd);
		return -1;
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		*error_r = sp_xasprintf("%s: listen: %s", key, strerror(errno));
		free(key);
		close(fd);
		return -1;
	}
	bound[n_bound] = (struct bound){
		.key = key,
		.unix_path = unix_path != NULL ? sp_xstrdup(unix_path) : NULL,
		.fd = fd,
	};
	bound_fds[n_bound] = fd;
	n_bound++;
	return lookup(key, error_r);
}

static int bind_retrying(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct timespec step = {0, BIND_RETRY_STEP_MS * 1000000L};

	for (int waited = 0;; waited += BIND_RETRY_STEP_MS) {
		if (bind(fd, sa, len) == 0)
			return 0;
		if (errno != EADDRINUSE || waited >= BIND_RETRY_MS)
			return -1;
		nanosleep(&step, NULL);
	}
}

int mc_listen_tcp(const char *addr, unsigned port, char **error_r)
{
	struct addrinfo hints = {0}, *res = NULL;
	char portstr[16];
	char *key = sp_xasprintf("tcp %s %u", addr, port);
	int fd, one = 1, rc;

	if (frozen || find(key) != NULL) {
		fd = frozen ? lookup(key, error_r) : twice(key, error_r);
		free(key);
		return fd;
	}
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(addr, portstr, &hints, &res);
	if (rc != 0) {
		*error_r = sp_xasprintf("%s port %u: %s", addr, port, gai_strerror(rc));
		free(key);
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = sp_xasprintf("%s port %u: socket: %s", addr, port, strerror(errno));
		freeaddrinfo(res);
		free(key);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (res->ai_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind_retrying(fd, res->ai_addr, res->ai_addrlen) < 0) {
		*error_r = sp_xasprintf("%s port %u: %s", addr, port, strerror(errno));
		close(fd);
		freeaddrinfo(res);
		free(key);
		return -1;
	}
	freeaddrinfo(res);
	return record(key, NULL, fd, error_r);
}

static int listen_unix(const char *path, char **error_r)
{
	char *key = sp_xasprintf("unix %s", path), *why = NULL;
	int fd;

	if (frozen || find(key) != NULL) {
		fd = frozen ? lookup(key, error_r) : twice(key, error_r);
		free(key);
		return fd;
	}
	free(key);
	fd = sp_unix_bind(path, 0660, &why);
	if (fd < 0) {
		*error_r = sp_xasprintf("backend %s", why);
		free(why);
		return -1;
	}
	return record(sp_xasprintf("unix %s", path), path, fd, error_r);
}

int mc_listen_backend(const char *spec, char **error_r)
{
	char host[128];
	const char *colon, *h = spec;
	size_t hl;
	char *end;
	unsigned long port;

	if (spec[0] == '/')
		return listen_unix(spec, error_r);
	/* host:port or [v6]:port */
	colon = strrchr(spec, ':');
	if (colon == NULL) {
		*error_r = sp_xasprintf("backend %s: expected a /path or host:port", spec);
		return -1;
	}
	hl = (size_t)(colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	port = strtoul(colon + 1, &end, 10);
	if (hl == 0 || hl >= sizeof(host) || *end != '\0' || port == 0 || port > 65535) {
		*error_r = sp_xasprintf("backend %s: expected a /path or host:port", spec);
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	return mc_listen_tcp(host, (unsigned)port, error_r);
}

void mc_listen_freeze(void)
{
	frozen = true;
}

size_t mc_listen_fds(const int **fds_r)
{
	*fds_r = bound_fds;
	return n_bound;
}

void mc_listen_close_all(bool unlink_paths)
{
	for (size_t i = 0; i < n_bound; i++) {
		close(bound[i].fd);
		if (unlink_paths && bound[i].unix_path != NULL)
			unlink(bound[i].unix_path);
		free(bound[i].unix_path);
		free(bound[i].key);
	}
	n_bound = 0;
	frozen = false;
}
