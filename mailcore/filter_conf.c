/* sealpost.conf keys for client access filters (the anchor's
 * service.<svc>.domainallowed / domainnotallowed) and the one place that
 * turns a service's two keys into a filter set. Exact keys, no "service.*."
 * pattern: tlsd owns patterns in that namespace. */
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
