/* Where a queued message goes next: the configured smarthost, or the
 * domain's MX hosts by preference (RFC 5321 5.1), or its address records
 * when it has no MX; a null MX (RFC 7505) refuses mail. The DNS answer is
 * parsed here with dn_expand (glibc's libc; no -lresolv needed). The
 * lookups block, so the queue manager runs queue_resolve on a pool thread. */
#include "mailcore/queue.h"

#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/smtpc.h"

#define MX_MAX 10

struct mx {
	unsigned pref;
	char host[256];
};

static unsigned get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

int queue_mx_parse(const unsigned char *ans, size_t len, char hosts[][256], size_t max)
{
	struct mx mx[MX_MAX];
	size_t n_mx = 0;
	const unsigned char *p, *end = ans + len;
	unsigned qd, an;
	bool null_mx = false;

	if (len < HFIXEDSZ || len > 65535)
		return -1;
	qd = get16(ans + 4);
	an = get16(ans + 6);
	p = ans + HFIXEDSZ;
	for (unsigned i = 0; i < qd; i++) {
		int n = dn_skipname(p, end);

		if (n < 0 || p + n + QFIXEDSZ > end)
			return -1;
		p += n + QFIXEDSZ;
	}
	for (unsigned i = 0; i < an; i++) {
		char name[NS_MAXDNAME];
		int n = dn_skipname(p, end);
		unsigned type, rdlen;

		if (n < 0 || p + n + RRFIXEDSZ > end)
			return -1;
		p += n;
		type = get16(p);
		rdlen = get16(p + 8);
		p += RRFIXEDSZ;
		if (p + rdlen > end)
			return -1;
		if (type == ns_t_mx) {
			if (rdlen < 3)
				return -1;
			n = dn_expand(ans, end, p + 2, name, sizeof(name));
			if (n < 0 || n + 2 > (int)rdlen)
				return -1;
			if (name[0] == '\0' || strcmp(name, ".") == 0) {
				null_mx = true;
			} else if (n_mx < MX_MAX && strlen(name) < sizeof(mx[0].host)) {
				mx[n_mx].pref = get16(p);
				snprintf(mx[n_mx].host, sizeof(mx[n_mx].host), "%s", name);
				n_mx++;
			}
		}
		p += rdlen;
	}
	if (null_mx && n_mx == 0)
		return -2;
	/* insertion sort by preference; equal ones keep DNS order (RFC 5321 5.1
	 * asks for a random order among equals: good enough for a first cut) */
	for (size_t i = 1; i < n_mx; i++)
		for (size_t j = i; j > 0 && mx[j].pref < mx[j - 1].pref; j--) {
			struct mx t = mx[j];

			mx[j] = mx[j - 1];
			mx[j - 1] = t;
		}
	if (n_mx > max)
		n_mx = max;
	for (size_t i = 0; i < n_mx; i++)
		memcpy(hosts[i], mx[i].host, sizeof(hosts[i]));
	return (int)n_mx;
}

/* Appends host's addresses; returns the count added; *gai_r the last error */
static size_t add_host(const char *host, const char *port, struct smtpc_addr *out, size_t have,
		       size_t max, int *gai_r)
{
	struct addrinfo hints = {0}, *res = NULL;
	size_t added = 0;
	int rc;

	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	rc = getaddrinfo(host, port, &hints, &res);
	*gai_r = rc;
	if (rc != 0)
		return 0;
	for (struct addrinfo *ai = res; ai != NULL && have + added < max; ai = ai->ai_next) {
		struct smtpc_addr *a = &out[have + added];

		if (ai->ai_addrlen > sizeof(a->sa))
			continue;
		memset(a, 0, sizeof(*a));
		memcpy(&a->sa, ai->ai_addr, ai->ai_addrlen);
		a->sa_len = ai->ai_addrlen;
		snprintf(a->host, sizeof(a->host), "%s", host);
		added++;
	}
	freeaddrinfo(res);
	return added;
}

size_t queue_resolve(const char *domain, const char *smarthost, struct smtpc_addr *out,
		     size_t max, bool *perm, char *error, size_t error_cap)
{
	unsigned char ans[8192];
	char hosts[MX_MAX][256];
	int n, gai = 0;
	size_t have = 0;

	*perm = false;
	if (smarthost != NULL) {
		/* host:port or [host]:port (validated by the manager at startup) */
		char host[256];
		const char *colon = strrchr(smarthost, ':');
		size_t hl = colon != NULL ? (size_t)(colon - smarthost) : strlen(smarthost);
		const char *h = smarthost;

		if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
			h++;
			hl -= 2;
		}
		snprintf(host, sizeof(host), "%.*s", (int)hl, h);
		have = add_host(host, colon != NULL ? colon + 1 : "25", out, 0, max, &gai);
		if (have == 0)
			snprintf(error, error_cap, "smarthost %s: %s", smarthost, gai_strerror(gai));
		return have;
	}
	n = res_query(domain, ns_c_in, ns_t_mx, ans, sizeof(ans));
	if (n < 0) {
		if (h_errno == HOST_NOT_FOUND) {
			*perm = true;
			snprintf(error, error_cap, "Host or domain name not found: %s", domain);
			return 0;
		}
		if (h_errno != NO_DATA) {
			snprintf(error, error_cap, "MX lookup of %s failed (temporary)", domain);
			return 0;
		}
		n = 0; /* NODATA: no MX, use the domain itself */
	} else {
		n = queue_mx_parse(ans, (size_t)n, hosts, MX_MAX);
		if (n == -2) {
			*perm = true;
			snprintf(error, error_cap, "Domain %s does not accept mail (null MX)", domain);
			return 0;
		}
		if (n < 0) {
			snprintf(error, error_cap, "malformed MX answer for %s", domain);
			return 0;
		}
	}
	if (n == 0) {
		/* RFC 5321 5.1: no MX, the domain is the implicit MX */
		have = add_host(domain, "25", out, 0, max, &gai);
		if (have == 0) {
			*perm = gai == EAI_NONAME;
			snprintf(error, error_cap, "%s: %s", domain, gai_strerror(gai));
		}
		return have;
	}
	for (int i = 0; i < n && have < max; i++)
		have += add_host(hosts[i], "25", out, have, max, &gai);
	if (have == 0)
		snprintf(error, error_cap, "no address for the MX hosts of %s", domain);
	return have;
}
