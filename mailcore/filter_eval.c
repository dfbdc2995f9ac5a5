/* Client access filter evaluation: the parsed rules (filter_int.h) against
 * one connection's facts. Pure; the caller does the DNS work and says
 * whether the client's name was forward-confirmed. Decision rules: allow
 * rules first, first match wins; no match allows, unless the set has only
 * allow rules. */
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "mailcore/filter_int.h"

/* One end of the connection as the matcher sees it. */
struct endpoint {
	int family;            /* AF_INET / AF_INET6, 0 = unknown */
	uint8_t addr[16];
	const char *name;      /* a name that may be used for matching, or NULL */
	bool spoofed;          /* a name was given but not forward-confirmed */
};

static void endpoint_init(struct endpoint *ep, const struct sockaddr *sa, const char *name,
			  bool verified)
{
	memset(ep, 0, sizeof(*ep));
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		ep->family = AF_INET;
		memcpy(ep->addr, &sin->sin_addr, 4);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			/* ::ffff:a.b.c.d is the IPv4 client a.b.c.d */
			ep->family = AF_INET;
			memcpy(ep->addr, &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			ep->family = AF_INET6;
			memcpy(ep->addr, &sin6->sin6_addr, 16);
		}
	}
	if (name != NULL && name[0] != '\0') {
		if (verified)
			ep->name = name;
		else
			ep->spoofed = true;
	}
}

/* Compares ignoring case and one trailing dot on the name (an FQDN). */
static size_t name_len(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && name[n - 1] == '.' ? n - 1 : n;
}

static bool host_match(const struct filter_host *h, const struct endpoint *ep)
{
	size_t n, sl;

	switch (h->kind) {
	case FHOST_ANY:
		return true;
	case FHOST_LOCAL:
		return ep->name != NULL && memchr(ep->name, '.', name_len(ep->name)) == NULL;
	case FHOST_UNKNOWN:
		return ep->name == NULL || ep->family == 0;
	case FHOST_KNOWN:
		return ep->name != NULL && ep->family != 0;
	case FHOST_DNSSPOOFER:
		return ep->spoofed;
	case FHOST_NAME:
		return ep->name != NULL && name_len(ep->name) == strlen(h->text) &&
		       strncasecmp(ep->name, h->text, strlen(h->text)) == 0;
	case FHOST_SUFFIX:
		if (ep->name == NULL)
			return false;
		n = name_len(ep->name);
		sl = strlen(h->text);
		return n > sl && strncasecmp(ep->name + n - sl, h->text, sl) == 0;
	case FHOST_NET: {
		size_t bytes = h->family == AF_INET ? 4 : 16;

		if (ep->family != h->family)
			return false;
		for (size_t i = 0; i < bytes; i++)
			if ((ep->addr[i] & h->mask[i]) != h->net[i])
				return false;
		return true;
	}
	case FHOST_NETGROUP:
		return false;
	}
	return false;
}

static bool user_match(const struct filter_item *it, const char *user)
{
	const char *at;

	switch (it->name_kind) {
	case FNAME_ANY:
		return true;
	case FNAME_KNOWN:
		return user != NULL;
	case FNAME_UNKNOWN:
		return user == NULL;
	case FNAME_LITERAL:
		if (user == NULL)
			return false;
		if (strcasecmp(user, it->name) == 0)
			return true;
		/* "srashad@host" also names the user srashad@<any domain> */
		at = strrchr(user, '@');
		return strchr(it->name, '@') == NULL && at != NULL &&
		       (size_t)(at - user) == strlen(it->name) &&
		       strncasecmp(user, it->name, strlen(it->name)) == 0;
	}
	return false;
}

struct ctx {
	const struct filter_query *q;
	struct endpoint client, server;
};

static bool service_item_match(const struct filter_item *it, const struct ctx *c)
{
	if (it->name_kind == FNAME_LITERAL &&
	    (c->q->service == NULL || strcasecmp(it->name, c->q->service) != 0))
		return false;
	return host_match(&it->host, &c->server);
}

static bool client_item_match(const struct filter_item *it, const struct ctx *c)
{
	return user_match(it, c->q->user) && host_match(&it->host, &c->client);
}

/* lists[0] EXCEPT (lists[1] EXCEPT (...)): evaluated from the innermost */
static bool expr_match(const struct filter_expr *x, const struct ctx *c,
		       bool (*item_match)(const struct filter_item *, const struct ctx *))
{
	bool inner = false;

	for (size_t l = x->n_lists; l > 0; l--) {
		bool in = false;

		for (size_t i = 0; i < x->n_items[l - 1] && !in; i++)
			in = item_match(&x->lists[l - 1][i], c);
		inner = in && !inner;
	}
	return inner;
}

static bool rule_match(const struct filter_rule *r, const struct ctx *c)
{
	return expr_match(&r->services, c, service_item_match) &&
	       expr_match(&r->clients, c, client_item_match);
}

void filter_eval(const struct filter *f, const struct filter_query *q, struct filter_decision *d)
{
	struct ctx c = {.q = q};

	endpoint_init(&c.client, q->client, q->client_name, q->client_name_verified);
	/* the server's own name comes from our configuration: trusted */
	endpoint_init(&c.server, q->server, q->server_name, true);
	for (int pass = 0; pass < 2; pass++) {
		enum filter_action want = pass == 0 ? FILTER_ALLOW : FILTER_DENY;

		for (size_t i = 0; i < f->n_rules; i++) {
			if (f->rules[i].action != want || !rule_match(&f->rules[i], &c))
				continue;
			d->allowed = want == FILTER_ALLOW;
			d->rule = (int)i;
			return;
		}
	}
	d->rule = -1;
	d->allowed = !(f->n_allow > 0 && f->n_deny == 0);
}
