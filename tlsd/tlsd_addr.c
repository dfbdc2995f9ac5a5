/* Socket addresses as sealpost.conf writes them: "host:port", "[v6]:port",
 * "/path" or "unix:/path". Numeric only: tlsd resolves no names (a listener or
 * backend that depends on DNS at start is a failure waiting to happen). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "tlsd/tlsd_int.h"

static int parse_port(const char *s, int *port_r)
{
	char *end;
	long v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*port_r = (int)v;
	return 0;
}

static int set_ip(const char *host, int port, struct tlsd_addr *addr)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&addr->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&addr->ss;

	memset(&addr->ss, 0, sizeof(addr->ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		addr->len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		addr->len = sizeof(*sin6);
	} else {
		return -1;
	}
	tlsd_addr_format((struct sockaddr *)&addr->ss, addr->len, addr->text, sizeof(addr->text));
	return 0;
}

int tlsd_addr_parse(const char *spec, struct tlsd_addr *addr, const char **error_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hs;
	size_t hlen;
	int port;

	if (strncmp(spec, "unix:", 5) == 0)
		spec += 5;
	if (spec[0] == '/') {
		struct sockaddr_un *sun = (struct sockaddr_un *)&addr->ss;
		size_t n = strlen(spec);

		if (n >= sizeof(sun->sun_path)) {
			*error_r = "unix socket path too long";
			return -1;
		}
		memset(&addr->ss, 0, sizeof(addr->ss));
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, spec, n + 1);
		addr->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		snprintf(addr->text, sizeof(addr->text), "unix:%.120s", spec);
		return 0;
	}
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (close == NULL || close[1] != ':') {
			*error_r = "expected [v6-address]:port";
			return -1;
		}
		hs = spec + 1;
		hlen = (size_t)(close - hs);
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL) {
			*error_r = "expected host:port or a unix socket path";
			return -1;
		}
		hs = spec;
		hlen = (size_t)(colon - spec);
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*error_r = "bad host";
		return -1;
	}
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	if (parse_port(colon + 1, &port) < 0) {
		*error_r = "bad port";
		return -1;
	}
	if (set_ip(host, port, addr) < 0) {
		*error_r = "host is not a numeric IPv4 or IPv6 address";
		return -1;
	}
	return 0;
}

int tlsd_addr_listen(const char *host, int port, struct tlsd_addr *addr, const char **error_r)
{
	if (host == NULL || *host == '\0' || strcmp(host, "*") == 0)
		host = "::";
	if (host[0] == '[') {
		char buf[INET6_ADDRSTRLEN + 1];
		size_t n = strlen(host);

		if (n < 3 || host[n - 1] != ']' || n - 2 >= sizeof(buf)) {
			*error_r = "bad listen address";
			return -1;
		}
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = '\0';
		if (set_ip(buf, port, addr) < 0) {
			*error_r = "listen address is not a numeric IP address";
			return -1;
		}
		return 0;
	}
	if (set_ip(host, port, addr) < 0) {
		*error_r = "listen address is not a numeric IP address";
		return -1;
	}
	return 0;
}

void tlsd_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa == NULL || len < sizeof(sa_family_t)) {
		snprintf(buf, cap, "-");
		return;
	}
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)) == NULL)
			snprintf(ip, sizeof(ip), "?");
		snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)) == NULL)
			snprintf(ip, sizeof(ip), "?");
		snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
		size_t max = len > offsetof(struct sockaddr_un, sun_path)
			? len - offsetof(struct sockaddr_un, sun_path) : 0;

		snprintf(buf, cap, "unix:%.*s", (int)strnlen(sun->sun_path, max), sun->sun_path);
		break;
	}
	default:
		snprintf(buf, cap, "af%d", (int)sa->sa_family);
	}
}
