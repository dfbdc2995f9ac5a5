/* Client access filters (the anchor's TCP-wrapper style service filters):
 * parsing (filter_parse.c, pure), evaluation (filter_eval.c, pure) and the
 * sealpost.conf keys that hold them (filter_conf.c). The IMAP, POP, HTTP
 * and authenticated-SMTP servers ask filter_eval before the greeting and
 * again once the user is known.
 *
 * Syntax (one filter text; rules joined by '$' or newlines)
 *   rule        = [ "+" | "-" ] serviceList ":" clientList
 *   serviceList = list of serviceSpec, clientList = list of clientSpec;
 *                 entries separated by blanks and/or commas;
 *                 "a EXCEPT b EXCEPT c" means a EXCEPT (b EXCEPT c)
 *   serviceSpec = service | service "@" hostSpec (hostSpec: the server)
 *   clientSpec  = hostSpec | user "@" hostSpec
 *   service     = a name (imap, pop, http, smtp; any case) or ALL / *
 *   hostSpec    = ALL | * | LOCAL | UNKNOWN | KNOWN | DNSSPOOFER
 *               | host.name | .domain.suffix | n.n.n.n | n.n.n.n/m.m.m.m
 *               | n.n.n.n/p | IPv6 address [ "/" p ] (optionally in [ ])
 *   user        = a name, or ALL / * / empty (any), KNOWN, UNKNOWN
 *   "@name" (a NIS netgroup in tcpd) is accepted and never matches.
 * Keywords are case-insensitive. A rule without a sign takes the sign of
 * the list it came from (domainallowed: allow, domainnotallowed: deny).
 *
 * Decision (first match wins, allow rules before deny rules):
 *   matches an allow rule -> allowed; else matches a deny rule -> denied;
 *   else allowed, unless the set has allow rules and no deny rules.
 *
 * Names: a client name counts only when its forward lookup gives the
 * client's address back (verified); an unverified name matches nothing but
 * DNSSPOOFER, so a PTR record alone can never buy access. The servers look
 * the name up (mc_resolve.h: reverse, then forward) before the greeting
 * when filter_needs_client_name says so and mailcore.dns.reverse_lookups
 * is not "no"; a lookup that fails or passes mailcore.dns.timeout leaves
 * the client with no name: UNKNOWN matches it, name rules and KNOWN do not.
 * With lookups off, every client is UNKNOWN. */
#ifndef MAILCORE_FILTER_H
#define MAILCORE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "common/conf.h"

#define FILTER_MAX_TEXT 16384   /* bytes of one filter text */
#define FILTER_MAX_RULES 256    /* rules in one filter set */
#define FILTER_MAX_ITEMS 64     /* entries in one list (between EXCEPTs) */
#define FILTER_MAX_EXCEPT 8     /* EXCEPT operators in one service or client list */
#define FILTER_MAX_TOKEN 255    /* one entry */

enum filter_action { FILTER_ALLOW, FILTER_DENY };

struct filter;

/* An empty set (allows everything). Caller frees with filter_free. */
struct filter *filter_new(void);
void filter_free(struct filter **f);
/* Parses text[0..len) and appends its rules to f; unsigned rules get
 * default_action. Returns 0, or -1 with *error_r ("rule N: ...", caller
 * frees); on error f is unchanged. */
int filter_add(struct filter *f, enum filter_action default_action, const char *text,
	       size_t len, char **error_r);
size_t filter_rule_count(const struct filter *f);
/* True if some rule needs the client's reverse name (name patterns, LOCAL,
 * KNOWN, UNKNOWN, DNSSPOOFER): the server does the DNS work only then. */
bool filter_needs_client_name(const struct filter *f);

struct filter_query {
	const char *service;              /* "imap", "pop", "http", "smtp" */
	/* the client */
	const struct sockaddr *client;    /* NULL, AF_UNIX, AF_UNSPEC: address unknown */
	const char *client_name;          /* reverse name; NULL = unknown */
	bool client_name_verified;        /* forward lookup of client_name gives client back */
	const char *user;                 /* authenticated user; NULL before authentication */
	/* the server end of the connection (for service@host) */
	const struct sockaddr *server;    /* may be NULL */
	const char *server_name;          /* may be NULL */
};

struct filter_decision {
	bool allowed;
	int rule;     /* index of the rule that decided (0-based), -1 = the default */
};

void filter_eval(const struct filter *f, const struct filter_query *q,
		 struct filter_decision *d);

/* ======================================================================
 * sealpost.conf (filter_conf.c): service.<svc>.domainallowed and
 * service.<svc>.domainnotallowed for imap, pop, http and smtp.
 * ==================================================================== */
extern const struct sp_conf_key mailcore_filter_conf_keys[];

/* Builds service's set from its two keys (either may be unset). Returns the
 * set (caller frees; empty when neither is set) or NULL with *error_r naming
 * the key. */
struct filter *filter_from_conf(const struct sp_conf *conf, const char *service, char **error_r);

#endif
