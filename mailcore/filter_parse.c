/* Client access filter parser: filter text (the value of
 * service.<svc>.domainallowed / domainnotallowed) in, rules out (filter_int.h).
 * Pure: no I/O, no globals; every input size is bounded (filter.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xalloc.h"
#include "mailcore/filter_int.h"

struct perr {
	char msg[160];
};

static int fail(struct perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct perr *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool is_sep(char c)
{
	return is_blank(c) || c == ',';
}

static bool word_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.';
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static bool user_char(char c)
{
	return name_char(c) || c == '.' || c == '+' || c == '=' || c == '@';
}

static void lower_copy(char *dst, const char *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] - 'A' + 'a' : src[i]);
	dst[len] = '\0';
}

static void prefix_mask(uint8_t *mask, size_t bytes, unsigned prefix)
{
	memset(mask, 0, 16);
	for (size_t i = 0; i < bytes; i++) {
		unsigned bits = prefix > 8 ? 8 : prefix;

		mask[i] = (uint8_t)(bits == 0 ? 0 : (0xff00u >> bits) & 0xff);
		prefix -= bits;
	}
}

/* The address part of an address pattern (IPv6 may be in [ ]). */
static int parse_net(const char *s, size_t alen, struct filter_host *h, struct perr *e)
{
	char addr[FILTER_MAX_TOKEN + 1];

	if (alen >= 2 && s[0] == '[' && s[alen - 1] == ']') {
		s++;
		alen -= 2;
	}
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, h->net) == 1)
		h->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, h->net) == 1)
		h->family = AF_INET6;
	else
		return fail(e, "\"%s\" is not an address", addr);
	h->kind = FHOST_NET;
	return 0;
}

/* "n.n.n.n/m.m.m.m" (net must equal address AND mask, as the reference
 * states), "addr/p" (CIDR: both sides masked) or a plain address. */
static int parse_addr_spec(const char *s, size_t len, struct filter_host *h, struct perr *e)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	char maskbuf[FILTER_MAX_TOKEN + 1];
	size_t bytes, mlen;
	unsigned long p = 0;

	if (parse_net(s, alen, h, e) < 0)
		return -1;
	bytes = h->family == AF_INET ? 4 : 16;
	if (slash == NULL) {
		prefix_mask(h->mask, bytes, (unsigned)bytes * 8);
		return 0;
	}
	mlen = len - alen - 1;
	if (mlen == 0)
		return fail(e, "empty mask");
	memcpy(maskbuf, slash + 1, mlen);
	maskbuf[mlen] = '\0';
	if (h->family == AF_INET && strchr(maskbuf, '.') != NULL) {
		/* net/mask: kept as written; matches when net == address AND mask */
		if (inet_pton(AF_INET, maskbuf, h->mask) != 1)
			return fail(e, "\"%s\" is not a netmask", maskbuf);
		return 0;
	}
	for (size_t i = 0; i < mlen; i++) {
		if (maskbuf[i] < '0' || maskbuf[i] > '9' || i >= 3)
			return fail(e, "\"%s\" is not a prefix length", maskbuf);
		p = p * 10 + (unsigned long)(maskbuf[i] - '0');
	}
	if (p > bytes * 8)
		return fail(e, "prefix /%lu is too long", p);
	prefix_mask(h->mask, bytes, (unsigned)p);
	/* CIDR: the net is compared after masking, so 10.1.2.3/8 is 10.0.0.0/8 */
	for (size_t i = 0; i < bytes; i++)
		h->net[i] &= h->mask[i];
	return 0;
}

static int parse_host(const char *s, size_t len, bool client, struct filter_host *h,
		      struct perr *e)
{
	memset(h, 0, sizeof(*h));
	if (len == 0)
		return fail(e, "empty host");
	if (word_is(s, len, "ALL") || word_is(s, len, "*")) {
		h->kind = FHOST_ANY;
		return 0;
	}
	if (word_is(s, len, "LOCAL")) {
		h->kind = FHOST_LOCAL;
		return 0;
	}
	if (word_is(s, len, "UNKNOWN")) {
		h->kind = FHOST_UNKNOWN;
		return 0;
	}
	if (word_is(s, len, "KNOWN")) {
		h->kind = FHOST_KNOWN;
		return 0;
	}
	if (word_is(s, len, "DNSSPOOFER")) {
		if (!client)
			return fail(e, "DNSSPOOFER applies to clients only");
		h->kind = FHOST_DNSSPOOFER;
		return 0;
	}
	if (memchr(s, '/', len) != NULL || memchr(s, ':', len) != NULL || s[0] == '[')
		return parse_addr_spec(s, len, h, e);
	/* a dotted quad is an address, anything else with letters a name */
	{
		char tmp[FILTER_MAX_TOKEN + 1];
		uint8_t a4[4];

		memcpy(tmp, s, len);
		tmp[len] = '\0';
		if (inet_pton(AF_INET, tmp, a4) == 1)
			return parse_addr_spec(s, len, h, e);
	}
	for (size_t i = 0; i < len; i++)
		if (!host_char(s[i]))
			return fail(e, "bad character in host \"%.*s\"", (int)len, s);
	if (s[len - 1] == '.')
		return fail(e, "host \"%.*s\" ends with a dot", (int)len, s);
	for (size_t i = 1; i < len; i++)
		if (s[i] == '.' && s[i - 1] == '.')
			return fail(e, "empty label in \"%.*s\"", (int)len, s);
	if (s[0] == '.') {
		if (len < 2)
			return fail(e, "empty domain pattern");
		h->kind = FHOST_SUFFIX;
	} else {
		h->kind = FHOST_NAME;
	}
	lower_copy(h->text, s, len);
	return 0;
}

static int parse_service_item(const char *s, size_t len, struct filter_item *it, struct perr *e)
{
	const char *at = memchr(s, '@', len);
	size_t nlen = at != NULL ? (size_t)(at - s) : len;

	memset(it, 0, sizeof(*it));
	if (nlen == 0)
		return fail(e, "empty service name");
	if (word_is(s, nlen, "ALL") || word_is(s, nlen, "*")) {
		it->name_kind = FNAME_ANY;
	} else if (word_is(s, nlen, "LOCAL") || word_is(s, nlen, "KNOWN") ||
		   word_is(s, nlen, "UNKNOWN") || word_is(s, nlen, "DNSSPOOFER")) {
		return fail(e, "\"%.*s\" is not a service", (int)nlen, s);
	} else {
		for (size_t i = 0; i < nlen; i++)
			if (!name_char(s[i]))
				return fail(e, "bad service name \"%.*s\"", (int)nlen, s);
		it->name_kind = FNAME_LITERAL;
		lower_copy(it->name, s, nlen);
	}
	if (at == NULL) {
		it->host.kind = FHOST_ANY;
		return 0;
	}
	return parse_host(at + 1, len - nlen - 1, false, &it->host, e);
}

static int parse_client_item(const char *s, size_t len, struct filter_item *it, struct perr *e)
{
	const char *at = NULL;

	memset(it, 0, sizeof(*it));
	for (size_t i = len; i > 0; i--) {
		if (s[i - 1] == '@') {
			at = s + i - 1;
			break;
		}
	}
	it->name_kind = FNAME_ANY;
	if (at == NULL)
		return parse_host(s, len, true, &it->host, e);

	size_t ulen = (size_t)(at - s), hlen = len - ulen - 1;
	const char *host = at + 1;

	if (ulen == 0 && hlen > 0 && memchr(host, '.', hlen) == NULL && memchr(host, ':', hlen) == NULL &&
	    !word_is(host, hlen, "ALL") && !word_is(host, hlen, "*") &&
	    !word_is(host, hlen, "LOCAL") && !word_is(host, hlen, "KNOWN") &&
	    !word_is(host, hlen, "UNKNOWN") && !word_is(host, hlen, "DNSSPOOFER")) {
		/* tcpd's "@netgroup": accepted, but there is no NIS to ask */
		for (size_t i = 0; i < hlen; i++)
			if (!name_char(host[i]))
				return fail(e, "bad netgroup \"%.*s\"", (int)hlen, host);
		it->host.kind = FHOST_NETGROUP;
		lower_copy(it->host.text, host, hlen);
		return 0;
	}
	if (ulen == 0 || word_is(s, ulen, "ALL") || word_is(s, ulen, "*")) {
		it->name_kind = FNAME_ANY;
	} else if (word_is(s, ulen, "KNOWN")) {
		it->name_kind = FNAME_KNOWN;
	} else if (word_is(s, ulen, "UNKNOWN")) {
		it->name_kind = FNAME_UNKNOWN;
	} else {
		for (size_t i = 0; i < ulen; i++)
			if (!user_char(s[i]))
				return fail(e, "bad user name \"%.*s\"", (int)ulen, s);
		it->name_kind = FNAME_LITERAL;
		lower_copy(it->name, s, ulen);
	}
	return parse_host(host, hlen, true, &it->host, e);
}

static void expr_clear(struct filter_expr *x)
{
	for (size_t i = 0; i < x->n_lists; i++)
		free(x->lists[i]);
	memset(x, 0, sizeof(*x));
}

/* A list of entries separated by blanks/commas, split by EXCEPT. */
static int parse_expr(const char *s, size_t len, bool client, struct filter_expr *x,
		      struct perr *e)
{
	struct filter_item items[FILTER_MAX_ITEMS];
	size_t n = 0, i = 0;

	memset(x, 0, sizeof(*x));
	for (;;) {
		size_t start, tlen;

		while (i < len && is_sep(s[i]))
			i++;
		start = i;
		while (i < len && !is_sep(s[i]))
			i++;
		tlen = i - start;
		if (tlen == 0 || word_is(s + start, tlen, "EXCEPT")) {
			if (n == 0) {
				expr_clear(x);
				return fail(e, tlen == 0 ? "empty %s list" : "EXCEPT without a %s list before it",
					    client ? "client" : "service");
			}
			if (x->n_lists > FILTER_MAX_EXCEPT) {
				expr_clear(x);
				return fail(e, "more than %d EXCEPT", FILTER_MAX_EXCEPT);
			}
			x->lists[x->n_lists] = sp_xcalloc(n, sizeof(items[0]));
			memcpy(x->lists[x->n_lists], items, n * sizeof(items[0]));
			x->n_items[x->n_lists++] = n;
			n = 0;
			if (tlen == 0)
				return 0;
			if (x->n_lists > FILTER_MAX_EXCEPT) {
				expr_clear(x);
				return fail(e, "more than %d EXCEPT", FILTER_MAX_EXCEPT);
			}
			continue;
		}
		if (tlen > FILTER_MAX_TOKEN) {
			expr_clear(x);
			return fail(e, "entry longer than %d bytes", FILTER_MAX_TOKEN);
		}
		if (n == FILTER_MAX_ITEMS) {
			expr_clear(x);
			return fail(e, "more than %d entries in a list", FILTER_MAX_ITEMS);
		}
		if ((client ? parse_client_item(s + start, tlen, &items[n], e)
			    : parse_service_item(s + start, tlen, &items[n], e)) < 0) {
			expr_clear(x);
			return -1;
		}
		n++;
	}
}

static void rule_clear(struct filter_rule *r)
{
	expr_clear(&r->services);
	expr_clear(&r->clients);
}

static bool host_needs_name(const struct filter_host *h)
{
	switch (h->kind) {
	case FHOST_LOCAL:
	case FHOST_UNKNOWN:
	case FHOST_KNOWN:
	case FHOST_DNSSPOOFER:
	case FHOST_NAME:
	case FHOST_SUFFIX:
		return true;
	default:
		return false;
	}
}

static bool rule_needs_name(const struct filter_rule *r)
{
	for (size_t l = 0; l < r->clients.n_lists; l++)
		for (size_t i = 0; i < r->clients.n_items[l]; i++)
			if (host_needs_name(&r->clients.lists[l][i].host))
				return true;
	return false;
}

/* One rule: [+|-] services ':' clients */
static int parse_rule(const char *s, size_t len, enum filter_action def, struct filter_rule *r,
		      struct perr *e)
{
	size_t colon;
	int depth = 0;

	memset(r, 0, sizeof(*r));
	r->action = def;
	if (len > 0 && (s[0] == '+' || s[0] == '-')) {
		r->action = s[0] == '+' ? FILTER_ALLOW : FILTER_DENY;
		s++;
		len--;
	}
	/* the first ':' outside [ ] separates the lists (IPv6 in a service host) */
	for (colon = 0; colon < len; colon++) {
		if (s[colon] == '[')
			depth++;
		else if (s[colon] == ']')
			depth--;
		else if (s[colon] == ':' && depth == 0)
			break;
	}
	if (colon == len)
		return fail(e, "no ':' between services and clients");
	if (parse_expr(s, colon, false, &r->services, e) < 0)
		return -1;
	if (parse_expr(s + colon + 1, len - colon - 1, true, &r->clients, e) < 0) {
		expr_clear(&r->services);
		return -1;
	}
	return 0;
}

struct filter *filter_new(void)
{
	return sp_xcalloc(1, sizeof(struct filter));
}

void filter_free(struct filter **fp)
{
	struct filter *f = *fp;

	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n_rules; i++)
		rule_clear(&f->rules[i]);
	free(f->rules);
	free(f);
	*fp = NULL;
}

size_t filter_rule_count(const struct filter *f)
{
	return f->n_rules;
}

bool filter_needs_client_name(const struct filter *f)
{
	return f->needs_name;
}

int filter_add(struct filter *f, enum filter_action def, const char *text, size_t len,
	       char **error_r)
{
	struct filter_rule *rules = NULL;
	size_t n = 0, i = 0, rule_no = 0;
	struct perr e = {{0}};

	if (len > FILTER_MAX_TEXT) {
		*error_r = sp_xasprintf("filter longer than %d bytes", FILTER_MAX_TEXT);
		return -1;
	}
	if (memchr(text, '\0', len) != NULL) {
		*error_r = sp_xstrdup("NUL byte in filter");
		return -1;
	}
	while (i <= len) {
		size_t start = i, end;

		while (i < len && text[i] != '$' && text[i] != '\n')
			i++;
		end = i++;
		rule_no++;
		while (start < end && is_blank(text[start]))
			start++;
		while (end > start && is_blank(text[end - 1]))
			end--;
		if (start == end)
			continue; /* empty rule: "a$$b", a trailing '$' */
		if (f->n_rules + n == FILTER_MAX_RULES) {
			fail(&e, "more than %d rules", FILTER_MAX_RULES);
			goto error;
		}
		rules = sp_xrealloc(rules, n + 1, sizeof(*rules));
		if (parse_rule(text + start, end - start, def, &rules[n], &e) < 0)
			goto error;
		n++;
	}
	f->rules = sp_xrealloc(f->rules, f->n_rules + n + 1, sizeof(*f->rules));
	for (size_t k = 0; k < n; k++) {
		if (rules[k].action == FILTER_ALLOW)
			f->n_allow++;
		else
			f->n_deny++;
		if (rule_needs_name(&rules[k]))
			f->needs_name = true;
		f->rules[f->n_rules++] = rules[k];
	}
	free(rules);
	return 0;
error:
	for (size_t k = 0; k < n; k++)
		rule_clear(&rules[k]);
	free(rules);
	*error_r = sp_xasprintf("rule %zu: %s", rule_no, e.msg);
	return -1;
}
