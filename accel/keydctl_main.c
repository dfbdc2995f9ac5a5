/* keydctl: asks a running keyd for its counters over the stats socket
 * (keyd.stats_socket) and prints them. It only reads: the socket takes one
 * optional command line and answers with text or JSON.
 *
 * Usage: keydctl -s SOCKET stats [--json] */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fileio.h"

#define KEYDCTL_TIMEOUT_MS 5000

static void usage(void)
{
	fprintf(stderr, "usage: keydctl -s SOCKET stats [--json]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = NULL, *cmd;
	char buf[65536];
	int opt, fd, json = 0;

	while ((opt = getopt_long(argc, argv, "s:j", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		default:
			usage();
			return 2;
		}
	}
	/* "stats --json" as well as "--json stats" */
	while (optind < argc && strcmp(argv[argc - 1], "--json") == 0) {
		json = 1;
		argc--;
	}
	if (path == NULL || optind != argc - 1 || strcmp(argv[optind], "stats") != 0) {
		usage();
		return 2;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "keydctl: %s: path too long\n", path);
		return 1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "keydctl: %s: %s\n", path, strerror(errno));
		return 1;
	}
	cmd = json ? "stats json\n" : "stats\n";
	if (sp_write_all(fd, cmd, strlen(cmd)) < 0) {
		fprintf(stderr, "keydctl: %s: %s\n", path, strerror(errno));
		close(fd);
		return 1;
	}
	(void)shutdown(fd, SHUT_WR);
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int r = poll(&pfd, 1, KEYDCTL_TIMEOUT_MS);
		ssize_t n;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "keydctl: %s: %s\n", path, r == 0 ? "no answer" : strerror(errno));
			close(fd);
			return 1;
		}
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "keydctl: %s: %s\n", path, strerror(errno));
			close(fd);
			return 1;
		}
		if (n == 0)
			break;
		if (sp_write_all(STDOUT_FILENO, buf, (size_t)n) < 0) {
			close(fd);
			return 1;
		}
	}
	close(fd);
	return 0;
}
