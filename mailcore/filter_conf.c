/* sealpost.conf keys for client access filters (the anchor's
 * service.<svc>.domainallowed / domainnotallowed), the client name lookups
 * they and the SMTP Received: header use (mailcore.dns.*, read by
 * mc_resolve.c), and the one place that turns a service's two keys into a
 * filter set. Exact keys, no "service.*." pattern: tlsd owns patterns in
 * that namespace. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "mailcore/filter.h"

#define ALLOWED_DESC(svc) \
	"Client access filter: " svc " allow rules ([+|-]services: clients, rules joined by $); " \
	"unset = none"
#define NOTALLOWED_DESC(svc) \
	"Client access filter: " svc " deny rules (same syntax; allow rules are tried first); " \
	"unset = none"

static const char *const dns_modes[] = {"yes", "no", "when-needed", NULL};

const struct sp_conf_key mailcore_filter_conf_keys[] = {
	{"service.imap.domainallowed", SP_CONF_STRING, NULL, ALLOWED_DESC("IMAP"), 0, 0, NULL, 0},
	{"service.imap.domainnotallowed", SP_CONF_STRING, NULL, NOTALLOWED_DESC("IMAP"), 0, 0, NULL, 0},
	{"service.pop.domainallowed", SP_CONF_STRING, NULL, ALLOWED_DESC("POP"), 0, 0, NULL, 0},
	{"service.pop.domainnotallowed", SP_CONF_STRING, NULL, NOTALLOWED_DESC("POP"), 0, 0, NULL, 0},
	{"service.http.domainallowed", SP_CONF_STRING, NULL, ALLOWED_DESC("HTTP (webmail)"), 0, 0,
	 NULL, 0},
	{"service.http.domainnotallowed", SP_CONF_STRING, NULL, NOTALLOWED_DESC("HTTP (webmail)"), 0,
	 0, NULL, 0},
	{"service.smtp.domainallowed", SP_CONF_STRING, NULL,
	 ALLOWED_DESC("authenticated SMTP"), 0, 0, NULL, 0},
	{"service.smtp.domainnotallowed", SP_CONF_STRING, NULL,
	 NOTALLOWED_DESC("authenticated SMTP"), 0, 0, NULL, 0},
	{"mailcore.dns.reverse_lookups", SP_CONF_ENUM, "when-needed",
	 "Client name lookups (reverse, then forward to confirm): yes (every connection); "
	 "when-needed (IMAP/POP only when their access filter uses names or LOCAL, KNOWN, UNKNOWN, "
	 "DNSSPOOFER; SMTP always, for the Received: header); no (name rules then match no "
	 "client and UNKNOWN every client)", 0, 0, dns_modes, 0},
	{"mailcore.dns.timeout", SP_CONF_DURATION, "5s",
	 "Deadline of one client name lookup; a client not named by then counts as UNKNOWN "
	 "(IMAP/POP wait for it before the greeting, SMTP never waits)", 100, 60000, NULL, 0},
	{"mailcore.dns.threads", SP_CONF_INT, "4",
	 "Threads for client name lookups (their own pool: slow DNS never delays the store)", 1,
	 64, NULL, 0},
	{"mailcore.dns.max_lookups", SP_CONF_INT, "64",
	 "Client name lookups in flight (also those past their deadline); more clients go on "
	 "unnamed", 1, 10000, NULL, 0},
	{"mailcore.dns.cache_size", SP_CONF_INT, "1024",
	 "Client name lookup answers kept (names and no-names); 0 = no cache", 0, 100000, NULL, 0},
	{"mailcore.dns.cache_ttl", SP_CONF_DURATION, "5m",
	 "How long a cached client name lookup answer is used", 1000, 86400000, NULL, 0},
	{NULL, 0, NULL, NULL, 0, 0, NULL, 0},
};

struct filter *filter_from_conf(const struct sp_conf *conf, const char *service, char **error_r)
{
	static const struct {
		const char *suffix;
		enum filter_action action;
	} keys[] = {{"domainallowed", FILTER_ALLOW}, {"domainnotallowed", FILTER_DENY}};
	struct filter *f = filter_new();

	for (size_t i = 0; i < 2; i++) {
		char key[96], *why = NULL;
		const char *text;

		snprintf(key, sizeof(key), "service.%s.%s", service, keys[i].suffix);
		text = sp_conf_str(conf, key);
		if (text == NULL)
			continue;
		if (filter_add(f, keys[i].action, text, strlen(text), &why) < 0) {
			*error_r = sp_xasprintf("%s: %s", key, why);
			free(why);
			filter_free(&f);
			return NULL;
		}
	}
	return f;
}
