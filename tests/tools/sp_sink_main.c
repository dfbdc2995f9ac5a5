/* sp_sink: a backend that costs next to nothing, for the handshake benchmark
 * (bench/run_bench.py): tlsd relays each client to a backend, and nginx,
 * which it is compared with, has none; sp_test_smtpd forks a process per
 * connection, which made the benchmark measure that fork on the
 * generator's core. This one accepts on 127.0.0.1:PORT in one epoll loop,
 * reads and discards (the PROXY v2 header included) until the peer closes,
 * then closes. Test tool, not part of the product.
 *
 * usage: sp_sink -P PORT
 * SECURITY: listens on loopback only; keeps no state beyond one fd per
 * connection; bounded by the process's fd limit (accept failures with
 * EMFILE drop the connection attempt, they do not spin). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr, "usage: sp_sink -P PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct epoll_event ev = {.events = EPOLLIN}, evs[256];
	long port = 0;
	int one = 1, opt, lfd, ep;
	char buf[16384];

	while ((opt = getopt(argc, argv, "P:")) != -1) {
		if (opt != 'P')
			usage();
		port = strtol(optarg, NULL, 10);
	}
	if (port < 1 || port > 65535 || optind != argc)
		usage();
	signal(SIGPIPE, SIG_IGN);
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (lfd < 0 || ep < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1024) < 0) {
		perror("sp_sink: listen");
		return 1;
	}
	ev.data.fd = lfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("sp_sink: epoll_ctl");
		return 1;
	}
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("sp_sink: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			ssize_t r;

			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					ev.data.fd = c;
					if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
						close(c);
				}
				continue;
			}
			while ((r = read(fd, buf, sizeof(buf))) > 0)
				;
			if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
				close(fd); /* also leaves the epoll set */
		}
	}
}
