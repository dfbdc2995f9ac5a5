/* sp_test_smtpd: a minimal SMTP server for tlsd's integration tests.
 *
 *   -p PORT   plain SMTP with STARTTLS: the client fd goes to tlsd through
 *             the handoff socket (-H PATH, service -s NAME, default smtp);
 *             what the client sent after STARTTLS is thrown away (RFC 3207
 *             4.2) and the session restarts on the plaintext end
 *   -P PORT   backend of an implicit-TLS service: a PROXY v2 header comes
 *   -U PATH   first (TCP port or unix socket), then SMTP
 *
 * SMTP: EHLO (first line carries the TLS facts, the reply is one write),
 * HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, STARTTLS; test commands: FACTS
 * (every fact, one per line), ECHO text, BIG n (n bytes of 'x' then CRLF).
 * At the client's EOF it writes "221 eof" and closes (half-close check).
 * One forked child per connection; logs go to stderr. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/handoff.h"
#include "common/proxy2.h"

#define LINE_MAX_LEN 1000  /* RFC 5321 4.5.3.1.6: text line incl. CRLF */

struct session {
	int fd;
	char buf[8192];
	size_t len;
	bool tls;
	struct sp_proxy_info facts;
	const char *handoff_path;
	const char *service;
	struct sockaddr_storage peer, local;
	socklen_t peer_len, local_len;
};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sp_test_smtpd[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int reply(struct session *s, const char *fmt, ...)
{
	char out[16384];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, sizeof(out), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(out))
		return -1;
	return write_all(s->fd, out, (size_t)n);
}

/* 1 = a line in line (CRLF stripped), 0 = EOF, -1 = error/too long */
static int read_line(struct session *s, char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(s->buf, '\n', s->len);
		ssize_t n;

		if (nl != NULL) {
			size_t l = (size_t)(nl - s->buf);

			if (l >= cap)
				return -1;
			memcpy(line, s->buf, l);
			line[l] = '\0';
			if (l > 0 && line[l - 1] == '\r')
				line[l - 1] = '\0';
			memmove(s->buf, nl + 1, s->len - l - 1);
			s->len -= l + 1;
			return 1;
		}
		if (s->len >= LINE_MAX_LEN)
			return -1;
		n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		s->len += (size_t)n;
	}
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "-";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
	}
	snprintf(buf, cap, "%s:%u", ip, port);
}

static int send_facts(struct session *s)
{
	const struct sp_proxy_info *f = &s->facts;
	char sha[65] = "", src[80], dst[80];

	if (f->has_cert_sha256)
		hex(f->cert_sha256, sizeof(f->cert_sha256), sha);
	addr_text(&f->src, src, sizeof(src));
	addr_text(&f->dst, dst, sizeof(dst));
	return reply(s,
		     "250-tls=%s\r\n250-version=%s\r\n250-cipher=%s\r\n250-sni=%s\r\n250-alpn=%s\r\n"
		     "250-key=%s\r\n250-sigalg=%s\r\n250-client=%u\r\n250-verify=%u\r\n250-cn=%s\r\n"
		     "250-subject=%s\r\n250-issuer=%s\r\n250-serial=%s\r\n250-email=%s\r\n"
		     "250-sha256=%s\r\n250-src=%s\r\n250-dst=%s\r\n250 end\r\n",
		     f->tls ? "yes" : "no", f->tls_version, f->tls_cipher, f->sni, f->alpn,
		     f->tls_key_alg, f->tls_sig_alg, (unsigned)f->tls_client, (unsigned)f->tls_verify,
		     f->cert_cn, f->cert_subject, f->cert_issuer, f->cert_serial, f->cert_email, sha,
		     src, dst);
}

static int do_starttls(struct session *s)
{
	struct pollfd p;
	char *err = NULL;
	int hfd, plain = -1;

	if (s->len > 0) {
		/* RFC 3207 4.2: nothing the client sent after STARTTLS is acted on */
		logf_("discarded %zu bytes after STARTTLS", s->len);
		s->len = 0;
	}
	hfd = sp_handoff_start(s->handoff_path, s->service, s->fd, (struct sockaddr *)&s->peer,
			       s->peer_len, (struct sockaddr *)&s->local, s->local_len, &err);
	if (hfd < 0) {
		logf_("handoff start failed: %s", err);
		free(err);
		return -1;
	}
	p.fd = hfd;
	p.events = POLLIN;
	while (poll(&p, 1, 30000) < 0 && errno == EINTR)
		;
	if (sp_handoff_finish(hfd, &plain, &s->facts, &err) < 0) {
		logf_("handoff failed: %s", err);
		free(err);
		return -1;
	}
	close(s->fd);  /* tlsd has its own copy */
	/* the plaintext end comes non-blocking (for event loops); this server blocks */
	if (fcntl(plain, F_SETFL, fcntl(plain, F_GETFL) & ~O_NONBLOCK) < 0) {
		logf_("fcntl: %s", strerror(errno));
		close(plain);
		return -1;
	}
	s->fd = plain;
	s->tls = true;
	logf_("handoff ok version=%s cipher=%s", s->facts.tls_version, s->facts.tls_cipher);
	return 0;
}

static void smtp_session(struct session *s)
{
	char line[LINE_MAX_LEN + 1];
	bool greeted = false;
	int r;

	if (reply(s, "220 sp-test-smtpd ESMTP\r\n") < 0)
		return;
	while ((r = read_line(s, line, sizeof(line))) == 1) {
		char verb[16] = "";

		sscanf(line, "%15s", verb);
		for (char *v = verb; *v; v++)
			*v = (char)(*v >= 'a' && *v <= 'z' ? *v - 32 : *v);
		if (strcmp(verb, "EHLO") == 0) {
			greeted = true;
			if (s->tls || s->facts.tls)
				r = reply(s, "250-sp-test-smtpd tls=%s cipher=%s key=%s sni=%s cn=%s verify=%u\r\n"
					  "250-PIPELINING\r\n250 8BITMIME\r\n",
					  s->facts.tls_version, s->facts.tls_cipher, s->facts.tls_key_alg,
					  s->facts.sni[0] ? s->facts.sni : "-",
					  s->facts.cert_cn[0] ? s->facts.cert_cn : "-",
					  (unsigned)s->facts.tls_verify);
			else
				r = reply(s, "250-sp-test-smtpd plain\r\n250-PIPELINING\r\n%s250 8BITMIME\r\n",
					  s->handoff_path ? "250-STARTTLS\r\n" : "");
		} else if (strcmp(verb, "HELO") == 0) {
			greeted = true;
			r = reply(s, "250 sp-test-smtpd\r\n");
		} else if (strcmp(verb, "STARTTLS") == 0) {
			if (s->tls || s->handoff_path == NULL) {
				r = reply(s, "503 5.5.1 TLS not available\r\n");
			} else {
				if (reply(s, "220 2.0.0 Ready to start TLS\r\n") < 0 || do_starttls(s) < 0)
					return;
				greeted = false;  /* RFC 3207 4.2: the session starts over */
				continue;
			}
		} else if (strcmp(verb, "MAIL") == 0 || strcmp(verb, "RCPT") == 0) {
			r = greeted ? reply(s, "250 2.1.0 OK\r\n") : reply(s, "503 5.5.1 EHLO first\r\n");
		} else if (strcmp(verb, "DATA") == 0) {
			size_t bytes = 0;

			if (reply(s, "354 go ahead\r\n") < 0)
				return;
			while ((r = read_line(s, line, sizeof(line))) == 1 && strcmp(line, ".") != 0)
				bytes += strlen(line) + 2;
			if (r != 1)
				return;
			r = reply(s, "250 2.0.0 queued %zu bytes\r\n", bytes);
		} else if (strcmp(verb, "RSET") == 0 || strcmp(verb, "NOOP") == 0) {
			r = reply(s, "250 2.0.0 OK\r\n");
		} else if (strcmp(verb, "FACTS") == 0) {
			r = send_facts(s);
		} else if (strcmp(verb, "ECHO") == 0) {
			r = reply(s, "250 %s\r\n", line + (strlen(line) > 5 ? 5 : strlen(line)));
		} else if (strcmp(verb, "BIG") == 0) {
			long n = strtol(line + 3, NULL, 10);
			char chunk[4096];

			memset(chunk, 'x', sizeof(chunk));
			for (r = 0; r == 0 && n > 0; n -= (long)sizeof(chunk))
				r = write_all(s->fd, chunk, n < (long)sizeof(chunk) ? (size_t)n : sizeof(chunk));
			if (r == 0)
				r = reply(s, "\r\n");
		} else if (strcmp(verb, "QUIT") == 0) {
			reply(s, "221 2.0.0 bye\r\n");
			return;
		} else {
			r = reply(s, "500 5.5.2 unknown command\r\n");
		}
		if (r < 0)
			return;
	}
	if (r == 0) {
		logf_("client EOF");
		reply(s, "221 eof\r\n");
	}
}

static int read_proxy_header(struct session *s)
{
	for (;;) {
		const char *err;
		int n = sp_proxy2_decode((const uint8_t *)s->buf, s->len, &s->facts, &err);
		ssize_t r;

		if (n > 0) {
			memmove(s->buf, s->buf + n, s->len - (size_t)n);
			s->len -= (size_t)n;
			return 0;
		}
		if (n < 0) {
			logf_("bad PROXY header: %s", err);
			return -1;
		}
		if (s->len == sizeof(s->buf))
			return -1;
		r = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			logf_("EOF before the PROXY header");
			return -1;
		}
		s->len += (size_t)r;
	}
}

static int listen_tcp(int port)
{
	struct sockaddr_in a;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		logf_("listen on port %d: %s", port, strerror(errno));
		exit(1);
	}
	return fd;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un a;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a.sun_path)) {
		logf_("unix path too long");
		exit(1);
	}
	strcpy(a.sun_path, path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		logf_("listen on %s: %s", path, strerror(errno));
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	const char *handoff = NULL, *service = "smtp", *unix_path = NULL;
	int port = 0, proxy_port = 0, opt;
	struct pollfd pfd[3];
	int kinds[3];
	size_t n = 0;

	while ((opt = getopt(argc, argv, "p:P:U:H:s:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'P': proxy_port = atoi(optarg); break;
		case 'U': unix_path = optarg; break;
		case 'H': handoff = optarg; break;
		case 's': service = optarg; break;
		default:
			fprintf(stderr, "usage: sp_test_smtpd [-p port -H handoff_socket [-s service]] "
					"[-P proxy_port] [-U proxy_unix_path]\n");
			return 2;
		}
	}
	signal(SIGCHLD, SIG_IGN);  /* children are reaped by the kernel */
	signal(SIGPIPE, SIG_IGN);
	if (port) {
		pfd[n].fd = listen_tcp(port);
		kinds[n++] = 0;
	}
	if (proxy_port) {
		pfd[n].fd = listen_tcp(proxy_port);
		kinds[n++] = 1;
	}
	if (unix_path) {
		pfd[n].fd = listen_unix(unix_path);
		kinds[n++] = 1;
	}
	if (n == 0) {
		fprintf(stderr, "sp_test_smtpd: nothing to listen on\n");
		return 2;
	}
	logf_("ready");
	for (;;) {
		for (size_t i = 0; i < n; i++)
			pfd[i].events = POLLIN;
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			logf_("poll: %s", strerror(errno));
			return 1;
		}
		for (size_t i = 0; i < n; i++) {
			struct session s;
			pid_t pid;
			int fd;

			if (!(pfd[i].revents & POLLIN))
				continue;
			memset(&s, 0, sizeof(s));
			s.peer_len = sizeof(s.peer);
			fd = accept4(pfd[i].fd, (struct sockaddr *)&s.peer, &s.peer_len, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			pid = fork();
			if (pid < 0) {
				close(fd);
				continue;
			}
			if (pid > 0) {
				close(fd);
				continue;
			}
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			for (size_t j = 0; j < n; j++)
				close(pfd[j].fd);
			s.fd = fd;
			s.local_len = sizeof(s.local);
			getsockname(fd, (struct sockaddr *)&s.local, &s.local_len);
			s.service = service;
			if (kinds[i] == 0) {
				s.handoff_path = handoff;
			} else if (read_proxy_header(&s) < 0) {
				_exit(1);
			} else {
				char src[80];

				addr_text(&s.facts.src, src, sizeof(src));
				logf_("proxied connection from %s tls=%s", src, s.facts.tls ? "yes" : "no");
			}
			smtp_session(&s);
			close(s.fd);
			_exit(0);
		}
	}
}
