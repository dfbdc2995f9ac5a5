/* Unit tests for client access filters (mailcore/filter_parse.c,
 * filter_eval.c): every example of the reference's chapter on client access
 * filters as a table row (allow text, deny text, the connection, the verdict),
 * then the wildcard names and patterns one by one, the decision rules, and
 * the parser's errors and bounds. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/conf.h"
#include "mailcore/filter.h"

#define A true  /* allowed */
#define D false /* denied */

struct row {
	const char *allow, *deny;  /* filter texts; NULL = not set */
	const char *service;
	const char *ip;            /* client address; NULL = unknown */
	const char *name;          /* client reverse name; NULL = unknown */
	bool verified;             /* forward lookup confirms name */
	const char *user;          /* NULL = not authenticated yet */
	const char *server_name, *server_ip;
	bool allowed;
};

static void to_sockaddr(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
}

static struct filter *build(const char *allow, const char *deny)
{
	struct filter *f = filter_new();
	char *err = NULL;

	if (allow != NULL && filter_add(f, FILTER_ALLOW, allow, strlen(allow), &err) < 0)
		fail_msg("allow \"%s\": %s", allow, err);
	if (deny != NULL && filter_add(f, FILTER_DENY, deny, strlen(deny), &err) < 0)
		fail_msg("deny \"%s\": %s", deny, err);
	return f;
}

static void run_rows(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		struct filter *f = build(r->allow, r->deny);
		struct sockaddr_storage cli, srv;
		struct filter_query q = {
			.service = r->service,
			.client_name = r->name,
			.client_name_verified = r->verified,
			.user = r->user,
			.server_name = r->server_name,
		};
		struct filter_decision d;

		if (r->ip != NULL) {
			to_sockaddr(r->ip, &cli);
			q.client = (struct sockaddr *)&cli;
		}
		if (r->server_ip != NULL) {
			to_sockaddr(r->server_ip, &srv);
			q.server = (struct sockaddr *)&srv;
		}
		filter_eval(f, &q, &d);
		if (d.allowed != r->allowed)
			fail_msg("row %zu: allow=\"%s\" deny=\"%s\" %s from %s (%s%s) user %s: got %s "
				 "(rule %d)",
				 i, r->allow ? r->allow : "-", r->deny ? r->deny : "-", r->service,
				 r->ip ? r->ip : "?", r->name ? r->name : "?", r->verified ? "" : ", unverified",
				 r->user ? r->user : "-", d.allowed ? "allowed" : "denied", d.rule);
		filter_free(&f);
	}
}

#define ROWS(t) run_rows(t, sizeof(t) / sizeof(t[0]))

/* "Filter Syntax": service:hostSpec, as allow and as deny filters. */
static void test_reference_simple_forms(void **state)
{
	const struct row rows[] = {
		/* allow: roberts gets IMAP; with only allow rules, others are denied */
		{"imap: roberts.newyork.example.com", NULL, "imap", "192.0.2.10",
		 "roberts.newyork.example.com", true, NULL, NULL, NULL, A},
		{"imap: roberts.newyork.example.com", NULL, "imap", "192.0.2.11",
		 "smith.newyork.example.com", true, NULL, NULL, NULL, D},
		{"imap: roberts.newyork.example.com", NULL, "pop", "192.0.2.10",
		 "roberts.newyork.example.com", true, NULL, NULL, NULL, D},
		/* as a deny filter */
		{NULL, "imap: roberts.newyork.example.com", "imap", "192.0.2.10",
		 "roberts.newyork.example.com", true, NULL, NULL, NULL, D},
		{NULL, "imap: roberts.newyork.example.com", "imap", "192.0.2.11",
		 "smith.newyork.example.com", true, NULL, NULL, NULL, A},
		/* pop: ALL / http: ALL grant every client POP and HTTP */
		{"pop: ALL", NULL, "pop", "198.51.100.7", NULL, false, NULL, NULL, NULL, A},
		{"http: ALL", NULL, "http", "198.51.100.7", NULL, false, NULL, NULL, NULL, A},
		{"pop: ALL$http: ALL", NULL, "imap", "198.51.100.7", NULL, false, NULL, NULL, NULL, D},
		{NULL, "pop: ALL", "pop", "198.51.100.7", NULL, false, NULL, NULL, NULL, D},
		{NULL, "http: ALL", "http", "198.51.100.7", NULL, false, NULL, NULL, NULL, D},
		{NULL, "http: ALL", "imap", "198.51.100.7", NULL, false, NULL, NULL, NULL, A},
		/* service names are case-insensitive (the text writes SMTP, POP, IMAP, HTTP) */
		{"IMAP: roberts.newyork.example.com", NULL, "imap", "192.0.2.10",
		 "Roberts.NewYork.Example.com", true, NULL, NULL, NULL, A},
	};

	(void)state;
	ROWS(rows);
}

/* serviceSpec = service@hostSpec, clientSpec = user@hostSpec */
static void test_reference_service_at_host_and_user(void **state)
{
	const struct row rows[] = {
		/* deny: nobody gets POP on mailServer1 ... */
		{NULL, "pop@mailServer1.example.com: ALL", "pop", "203.0.113.5", NULL, false, NULL,
		 "mailserver1.example.com", "192.0.2.1", D},
		/* ... but POP on another server name of the same host is untouched */
		{NULL, "pop@mailServer1.example.com: ALL", "pop", "203.0.113.5", NULL, false, NULL,
		 "mailserver2.example.com", "192.0.2.2", A},
		{NULL, "pop@mailServer1.example.com: ALL", "imap", "203.0.113.5", NULL, false, NULL,
		 "mailserver1.example.com", "192.0.2.1", A},
		/* the server by address */
		{NULL, "pop@192.0.2.1: ALL", "pop", "203.0.113.5", NULL, false, NULL, NULL,
		 "192.0.2.1", D},
		{NULL, "pop@192.0.2.1: ALL", "pop", "203.0.113.5", NULL, false, NULL, NULL,
		 "192.0.2.2", A},
		/* deny the user srashad at xyz.europe.example.com */
		{NULL, "imap: srashad@xyz.europe.example.com", "imap", "192.0.2.20",
		 "xyz.europe.example.com", true, "srashad", NULL, NULL, D},
		{NULL, "imap: srashad@xyz.europe.example.com", "imap", "192.0.2.20",
		 "xyz.europe.example.com", true, "srashad@example.com", NULL, NULL, D},
		{NULL, "imap: srashad@xyz.europe.example.com", "imap", "192.0.2.20",
		 "xyz.europe.example.com", true, "jdoe", NULL, NULL, A},
		{NULL, "imap: srashad@xyz.europe.example.com", "imap", "192.0.2.21",
		 "abc.europe.example.com", true, "srashad", NULL, NULL, A},
		/* before authentication the user is unknown: the rule cannot match yet */
		{NULL, "imap: srashad@xyz.europe.example.com", "imap", "192.0.2.20",
		 "xyz.europe.example.com", true, NULL, NULL, NULL, A},
	};

	(void)state;
	ROWS(rows);
}

/* serviceList:clientList with several entries, blanks and/or commas */
static void test_reference_lists(void **state)
{
	static const char *allow = "pop, imap, http: .europe.example.com .newyork.example.com";
	const struct row rows[] = {
		{allow, NULL, "pop", "192.0.2.1", "a.europe.example.com", true, NULL, NULL, NULL, A},
		{allow, NULL, "imap", "192.0.2.1", "b.c.newyork.example.com", true, NULL, NULL, NULL,
		 A},
		{allow, NULL, "http", "192.0.2.1", "a.europe.example.com", true, NULL, NULL, NULL, A},
		{allow, NULL, "smtp", "192.0.2.1", "a.europe.example.com", true, NULL, NULL, NULL, D},
		{allow, NULL, "imap", "192.0.2.1", "a.asia.example.com", true, NULL, NULL, NULL, D},
		/* the domain itself is not "in" the domain */
		{allow, NULL, "imap", "192.0.2.1", "europe.example.com", true, NULL, NULL, NULL, D},
		/* a suffix match on whole labels only */
		{allow, NULL, "imap", "192.0.2.1", "evileurope.example.com", true, NULL, NULL, NULL, D},
		/* a PTR record alone (not forward-confirmed) buys nothing */
		{allow, NULL, "imap", "192.0.2.1", "a.europe.example.com", false, NULL, NULL, NULL, D},
	};

	(void)state;
	ROWS(rows);
}

/* "+"/"-" rules joined by "$" */
static void test_reference_signed_rules(void **state)
{
	const struct row rows[] = {
		/* +imap,pop,http:*  enables the services for all clients */
		{"+imap,pop,http:*", NULL, "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
		{"+imap,pop,http:*", NULL, "http", "2001:db8::1", NULL, false, NULL, NULL, NULL, A},
		{"+imap,pop,http:*", NULL, "smtp", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
		/* +imap:ALL$+pop:ALL$+http:ALL */
		{"+imap:ALL$+pop:ALL$+http:ALL", NULL, "pop", "192.0.2.1", NULL, false, NULL, NULL,
		 NULL, A},
		{"+imap:ALL$+pop:ALL$+http:ALL", NULL, "http", "192.0.2.1", NULL, false, NULL, NULL,
		 NULL, A},
		{"+imap:ALL$+pop:ALL$+http:ALL", NULL, "smtp", "192.0.2.1", NULL, false, NULL, NULL,
		 NULL, D},
		/* -imap:*$-pop:*$-http:*  disallows all three */
		{"-imap:*$-pop:*$-http:*", NULL, "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
		{"-imap:*$-pop:*$-http:*", NULL, "pop", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
		{"-imap:*$-pop:*$-http:*", NULL, "http", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
		{"-imap:*$-pop:*$-http:*", NULL, "smtp", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
		/* the sign wins over the list the rule came from */
		{NULL, "+imap:ALL", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
		{NULL, "+imap:ALL", "pop", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
	};

	(void)state;
	ROWS(rows);
}

/* EXCEPT, and its right-associative nesting */
static void test_reference_except(void **state)
{
	static const char *deny = "ALL: ALL EXCEPT isserver.example.com";
	static const char *nested = "imap: .example.com EXCEPT .sales.example.com EXCEPT "
				    "boss.sales.example.com";
	const struct row rows[] = {
		{NULL, deny, "imap", "192.0.2.1", "pc.example.com", true, NULL, NULL, NULL, D},
		{NULL, deny, "pop", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
		{NULL, deny, "imap", "192.0.2.2", "isserver.example.com", true, NULL, NULL, NULL, A},
		{NULL, deny, "http", "192.0.2.2", "isserver.example.com", true, NULL, NULL, NULL, A},
		/* list1 EXCEPT (list2 EXCEPT list3), as an allow filter */
		{nested, NULL, "imap", "192.0.2.3", "pc.example.com", true, NULL, NULL, NULL, A},
		{nested, NULL, "imap", "192.0.2.3", "pc.sales.example.com", true, NULL, NULL, NULL, D},
		{nested, NULL, "imap", "192.0.2.3", "boss.sales.example.com", true, NULL, NULL, NULL,
		 A},
		{nested, NULL, "imap", "192.0.2.3", "pc.other.org", true, NULL, NULL, NULL, D},
	};

	(void)state;
	ROWS(rows);
}

/* "Mostly Denying": deny ALL: ALL; allow LOCAL, @netgroup1, .example.com
 * EXCEPT externalserver.example.com */
static void test_reference_mostly_denying(void **state)
{
	static const char *deny = "ALL: ALL";
	static const char *allow = "ALL: LOCAL @netgroup1\n"
				   "ALL: .example.com EXCEPT externalserver.example.com";
	const struct row rows[] = {
		{NULL, deny, "imap", "192.0.2.1", "pc.example.com", true, NULL, NULL, NULL, D},
		{allow, deny, "imap", "192.0.2.1", "pc.example.com", true, NULL, NULL, NULL, A},
		{allow, deny, "pop", "192.0.2.1", "deep.pc.example.com", true, NULL, NULL, NULL, A},
		{allow, deny, "imap", "192.0.2.2", "externalserver.example.com", true, NULL, NULL,
		 NULL, D},
		{allow, deny, "imap", "192.0.2.3", "mailhost", true, NULL, NULL, NULL, A},  /* LOCAL */
		{allow, deny, "imap", "192.0.2.4", "pc.example.org", true, NULL, NULL, NULL, D},
		{allow, deny, "imap", "192.0.2.5", NULL, false, NULL, NULL, NULL, D},
		/* no NIS: the netgroup never matches */
		{"ALL: @netgroup1", deny, "imap", "192.0.2.6", "netgroup1", true, NULL, NULL, NULL, D},
	};

	(void)state;
	ROWS(rows);
}

/* "Mostly Allowing": deny rules only */
static void test_reference_mostly_allowing(void **state)
{
	static const char *deny = "ALL: externalserver.example1.com, .example.asia.com\n"
				  "ALL EXCEPT pop: contractor.example1.com, .example.com";
	const struct row rows[] = {
		{NULL, deny, "imap", "192.0.2.1", "pc.example1.com", true, NULL, NULL, NULL, A},
		{NULL, deny, "imap", "192.0.2.2", "externalserver.example1.com", true, NULL, NULL,
		 NULL, D},
		{NULL, deny, "pop", "192.0.2.2", "externalserver.example1.com", true, NULL, NULL, NULL,
		 D},
		{NULL, deny, "http", "192.0.2.3", "x.example.asia.com", true, NULL, NULL, NULL, D},
		/* nothing but POP from contractor.example1.com and from .example.com */
		{NULL, deny, "pop", "192.0.2.4", "contractor.example1.com", true, NULL, NULL, NULL, A},
		{NULL, deny, "imap", "192.0.2.4", "contractor.example1.com", true, NULL, NULL, NULL, D},
		{NULL, deny, "http", "192.0.2.5", "pc.example.com", true, NULL, NULL, NULL, D},
		{NULL, deny, "pop", "192.0.2.5", "pc.example.com", true, NULL, NULL, NULL, A},
		{NULL, deny, "imap", "192.0.2.6", NULL, false, NULL, NULL, NULL, A},
	};

	(void)state;
	ROWS(rows);
}

/* "Denying Access to Spoofed Domains": deny ALL: DNSSPOOFER */
static void test_reference_dnsspoofer(void **state)
{
	const struct row rows[] = {
		{NULL, "ALL: DNSSPOOFER", "imap", "192.0.2.1", "pc.example.com", false, NULL, NULL,
		 NULL, D},
		{NULL, "ALL: DNSSPOOFER", "imap", "192.0.2.1", "pc.example.com", true, NULL, NULL,
		 NULL, A},
		/* no name at all is not a spoofed name */
		{NULL, "ALL: DNSSPOOFER", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
	};

	(void)state;
	ROWS(rows);
}

/* "Controlling Access to Virtual Domains" */
static void test_reference_virtual_domains(void **state)
{
	static const char *allow = "ALL@msgServer.example1.com: @.example1.com\n"
				   "ALL@msgServer.example2.com: @.example2.com";
	const struct row rows[] = {
		{allow, "ALL: ALL", "imap", "192.0.2.1", "pc.example1.com", true, NULL,
		 "msgserver.example1.com", "198.51.100.1", A},
		{allow, "ALL: ALL", "imap", "192.0.2.2", "pc.example2.com", true, NULL,
		 "msgserver.example1.com", "198.51.100.1", D},
		{allow, "ALL: ALL", "pop", "192.0.2.2", "pc.example2.com", true, NULL,
		 "msgServer.example2.com", "198.51.100.2", A},
		{allow, "ALL: ALL", "imap", "192.0.2.3", "pc.example3.com", true, NULL,
		 "msgserver.example1.com", "198.51.100.1", D},
	};

	(void)state;
	ROWS(rows);
}

/* "Controlling IMAP Access While Permitting Access to Webmail" */
static void test_reference_imap_only_from_access_servers(void **state)
{
	static const char *allow = "+imap:access_server_host,access_server_host";
	const struct row rows[] = {
		{allow, NULL, "imap", "192.0.2.1", "access_server_host", true, NULL, NULL, NULL, A},
		{allow, NULL, "imap", "192.0.2.2", "pc.example.com", true, NULL, NULL, NULL, D},
		/* the webmail front end itself reaches IMAP from an access server host */
		{allow, NULL, "imap", "192.0.2.1", "ACCESS_SERVER_HOST", true, NULL, NULL, NULL, A},
	};

	(void)state;
	ROWS(rows);
}

/* Table 7-2: ALL, *, LOCAL, UNKNOWN, KNOWN, DNSSPOOFER */
static void test_wildcard_names(void **state)
{
	const struct row rows[] = {
		{NULL, "imap: ALL", "imap", NULL, NULL, false, NULL, NULL, NULL, D},
		{NULL, "imap: *", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
		{NULL, "*: ALL", "anything", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
		{NULL, "imap: LOCAL", "imap", "192.0.2.1", "mailhost", true, NULL, NULL, NULL, D},
		{NULL, "imap: LOCAL", "imap", "192.0.2.1", "mailhost.example.com", true, NULL, NULL,
		 NULL, A},
		{NULL, "imap: LOCAL", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
		{NULL, "imap: UNKNOWN", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
		{NULL, "imap: UNKNOWN", "imap", NULL, "a.example.com", true, NULL, NULL, NULL, D},
		{NULL, "imap: UNKNOWN", "imap", "192.0.2.1", "a.example.com", true, NULL, NULL, NULL,
		 A},
		{NULL, "imap: UNKNOWN", "imap", "192.0.2.1", "a.example.com", false, NULL, NULL, NULL,
		 D},
		{NULL, "imap: KNOWN", "imap", "192.0.2.1", "a.example.com", true, NULL, NULL, NULL, D},
		{NULL, "imap: KNOWN", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
		{NULL, "imap: KNOWN", "imap", NULL, "a.example.com", true, NULL, NULL, NULL, A},
		{NULL, "imap: known", "imap", "192.0.2.1", "a.example.com", true, NULL, NULL, NULL, D},
		/* user wildcards */
		{NULL, "imap: KNOWN@ALL", "imap", "192.0.2.1", NULL, false, "alice", NULL, NULL, D},
		{NULL, "imap: KNOWN@ALL", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
		{NULL, "imap: UNKNOWN@ALL", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, D},
		{NULL, "imap: ALL@ALL", "imap", "192.0.2.1", NULL, false, "bob", NULL, NULL, D},
	};

	(void)state;
	ROWS(rows);
}

/* Wildcard patterns: leading dot, net/mask, CIDR (and IPv6) */
static void test_wildcard_patterns(void **state)
{
	const struct row nets[] = {
		/* 123.45.67.0/255.255.255.128: 123.45.67.0 through 123.45.67.127 */
		{"imap: 123.45.67.0/255.255.255.128", NULL, "imap", "123.45.67.0", NULL, false, NULL,
		 NULL, NULL, A},
		{"imap: 123.45.67.0/255.255.255.128", NULL, "imap", "123.45.67.127", NULL, false, NULL,
		 NULL, NULL, A},
		{"imap: 123.45.67.0/255.255.255.128", NULL, "imap", "123.45.67.128", NULL, false, NULL,
		 NULL, NULL, D},
		{"imap: 123.45.67.0/255.255.255.128", NULL, "imap", "123.45.66.5", NULL, false, NULL,
		 NULL, NULL, D},
		/* net/mask: net must equal address AND mask, so a net with host bits matches nothing */
		{"imap: 123.45.67.1/255.255.255.0", NULL, "imap", "123.45.67.1", NULL, false, NULL,
		 NULL, NULL, D},
		/* 123.45.67.0/25: the same range */
		{"imap: 123.45.67.0/25", NULL, "imap", "123.45.67.0", NULL, false, NULL, NULL, NULL, A},
		{"imap: 123.45.67.0/25", NULL, "imap", "123.45.67.127", NULL, false, NULL, NULL, NULL,
		 A},
		{"imap: 123.45.67.0/25", NULL, "imap", "123.45.67.128", NULL, false, NULL, NULL, NULL,
		 D},
		/* CIDR masks both sides */
		{"imap: 123.45.67.99/25", NULL, "imap", "123.45.67.1", NULL, false, NULL, NULL, NULL, A},
		{"imap: 10.0.0.0/8", NULL, "imap", "10.200.1.1", NULL, false, NULL, NULL, NULL, A},
		{"imap: 0.0.0.0/0", NULL, "imap", "203.0.113.9", NULL, false, NULL, NULL, NULL, A},
		{"imap: 0.0.0.0/0", NULL, "imap", NULL, NULL, false, NULL, NULL, NULL, D},
		/* a plain address */
		{"imap: 192.0.2.7", NULL, "imap", "192.0.2.7", NULL, false, NULL, NULL, NULL, A},
		{"imap: 192.0.2.7", NULL, "imap", "192.0.2.8", NULL, false, NULL, NULL, NULL, D},
		/* IPv4-mapped IPv6 clients are IPv4 clients */
		{"imap: 192.0.2.0/24", NULL, "imap", "::ffff:192.0.2.9", NULL, false, NULL, NULL, NULL,
		 A},
		/* IPv6 */
		{"imap: 2001:db8::/32", NULL, "imap", "2001:db8:1::5", NULL, false, NULL, NULL, NULL,
		 A},
		{"imap: [2001:db8::]/32", NULL, "imap", "2001:db9::5", NULL, false, NULL, NULL, NULL, D},
		{"imap: [::1]", NULL, "imap", "::1", NULL, false, NULL, NULL, NULL, A},
		{"imap: ::1, 127.0.0.1", NULL, "imap", "127.0.0.1", NULL, false, NULL, NULL, NULL, A},
		{"imap: 192.0.2.0/24", NULL, "imap", "2001:db8::1", NULL, false, NULL, NULL, NULL, D},
		/* leading dot */
		{"imap: .example.com", NULL, "imap", "192.0.2.1", "a.b.example.com", true, NULL, NULL,
		 NULL, A},
		{"imap: .example.com", NULL, "imap", "192.0.2.1", "a.b.example.com.", true, NULL, NULL,
		 NULL, A},
		{"imap: .example.com", NULL, "imap", "192.0.2.1", "example.com", true, NULL, NULL, NULL,
		 D},
		/* names never match addresses, addresses never match names */
		{"imap: 192.0.2.1", NULL, "imap", "192.0.2.2", "192.0.2.1", true, NULL, NULL, NULL, D},
	};

	(void)state;
	ROWS(nets);
}

/* "If no match ... access is granted, except ... Allow filters but no Deny filters" */
static void test_decision_rules(void **state)
{
	const struct row rows[] = {
		{NULL, NULL, "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
		{"", "", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
		{"imap: 192.0.2.1", NULL, "imap", "192.0.2.2", NULL, false, NULL, NULL, NULL, D},
		{"imap: 192.0.2.1", "imap: 198.51.100.1", "imap", "192.0.2.2", NULL, false, NULL, NULL,
		 NULL, A},
		/* allow rules are processed before deny rules */
		{"imap: 192.0.2.1", "imap: ALL", "imap", "192.0.2.1", NULL, false, NULL, NULL, NULL, A},
		{NULL, "+imap: 192.0.2.1$-imap: ALL", "imap", "192.0.2.1", NULL, false, NULL, NULL,
		 NULL, A},
		{NULL, "-imap: ALL$+imap: 192.0.2.1", "imap", "192.0.2.1", NULL, false, NULL, NULL,
		 NULL, A},
	};
	struct filter *f = build("imap: 192.0.2.1$pop: ALL", "ALL: ALL");
	struct sockaddr_storage ss;
	struct filter_decision d;
	struct filter_query q = {.service = "pop"};

	(void)state;
	ROWS(rows);
	to_sockaddr("198.51.100.1", &ss);
	q.client = (struct sockaddr *)&ss;
	filter_eval(f, &q, &d);
	assert_true(d.allowed);
	assert_int_equal(d.rule, 1);
	q.service = "http";
	filter_eval(f, &q, &d);
	assert_false(d.allowed);
	assert_int_equal(d.rule, 2);
	assert_int_equal(filter_rule_count(f), 3);
	assert_false(filter_needs_client_name(f));
	filter_free(&f);
	assert_null(f);
	filter_free(&f);
	f = build("imap: .example.com", NULL);
	assert_true(filter_needs_client_name(f));
	filter_free(&f);
}

static void expect_parse_error(const char *text, const char *why)
{
	struct filter *f = filter_new();
	char *err = NULL;

	if (filter_add(f, FILTER_ALLOW, text, strlen(text), &err) == 0)
		fail_msg("parsed: \"%s\"", text);
	if (why != NULL && strstr(err, why) == NULL)
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", text, err, why);
	assert_int_equal(filter_rule_count(f), 0);
	free(err);
	filter_free(&f);
}

static void test_parse_errors(void **state)
{
	(void)state;
	expect_parse_error(".example.com", "no ':'");
	expect_parse_error("imap:", "empty client list");
	expect_parse_error(": ALL", "empty service list");
	expect_parse_error("imap: ALL EXCEPT", "empty client list");
	expect_parse_error("imap: EXCEPT ALL", "EXCEPT without");
	expect_parse_error("imap: a EXCEPT EXCEPT b", "EXCEPT without");
	expect_parse_error("imap: 1.2.3.4/33", "too long");
	expect_parse_error("imap: 1.2.3.4/255.255.0.x", "netmask");
	expect_parse_error("imap: 1.2.3.4/", "empty mask");
	expect_parse_error("imap: 1.2.3.4/1234", "prefix");
	expect_parse_error("imap: 300.1.1.1/8", "not an address");
	expect_parse_error("imap: 2001:db8::/129", "too long");
	expect_parse_error("imap: 2001:zz8::", "not an address");
	expect_parse_error("imap: bad!host", "bad character");
	expect_parse_error("imap: host.", "ends with a dot");
	expect_parse_error("imap: a..b", "empty label");
	expect_parse_error("imap: .", "dot");
	expect_parse_error("imap: ..a", "empty label");
	expect_parse_error("LOCAL: ALL", "not a service");
	expect_parse_error("im/ap: ALL", "bad service");
	expect_parse_error("imap@DNSSPOOFER: ALL", "clients only");
	expect_parse_error("imap: us!er@host", "bad user");
	expect_parse_error("imap: ALL$pop", "rule 2");
	/* a failed add leaves the set as it was */
	{
		struct filter *f = filter_new();
		char *err = NULL;

		assert_int_equal(filter_add(f, FILTER_DENY, "imap: ALL", 9, &err), 0);
		assert_int_equal(filter_add(f, FILTER_DENY, "pop: ALL$http", 13, &err), -1);
		free(err);
		assert_int_equal(filter_rule_count(f), 1);
		filter_free(&f);
	}
	{
		struct filter *f = filter_new();
		char *err = NULL;

		assert_int_equal(filter_add(f, FILTER_DENY, "imap: A\0LL", 10, &err), -1);
		free(err);
		filter_free(&f);
	}
}

static void test_bounds(void **state)
{
	struct filter *f;
	char *buf, *err = NULL;
	size_t n;

	(void)state;
	/* text length */
	buf = malloc(FILTER_MAX_TEXT + 2);
	memset(buf, ' ', FILTER_MAX_TEXT + 1);
	memcpy(buf, "imap: ALL", 9);
	f = filter_new();
	assert_int_equal(filter_add(f, FILTER_DENY, buf, FILTER_MAX_TEXT, &err), 0);
	assert_int_equal(filter_add(f, FILTER_DENY, buf, FILTER_MAX_TEXT + 1, &err), -1);
	free(err);
	filter_free(&f);

	/* rules: FILTER_MAX_RULES fit, one more does not */
	n = 0;
	for (int i = 0; i < FILTER_MAX_RULES; i++)
		n += (size_t)sprintf(buf + n, "a:b$");
	f = filter_new();
	assert_int_equal(filter_add(f, FILTER_DENY, buf, n, &err), 0);
	assert_int_equal(filter_add(f, FILTER_DENY, "x:y", 3, &err), -1);
	assert_non_null(strstr(err, "rules"));
	free(err);
	filter_free(&f);

	/* EXCEPT depth */
	n = (size_t)sprintf(buf, "imap: a");
	for (int i = 0; i < FILTER_MAX_EXCEPT; i++)
		n += (size_t)sprintf(buf + n, " EXCEPT h%d", i);
	f = filter_new();
	assert_int_equal(filter_add(f, FILTER_DENY, buf, n, &err), 0);
	n += (size_t)sprintf(buf + n, " EXCEPT z");
	assert_int_equal(filter_add(f, FILTER_DENY, buf, n, &err), -1);
	assert_non_null(strstr(err, "EXCEPT"));
	free(err);
	filter_free(&f);

	/* entries per list */
	n = (size_t)sprintf(buf, "imap:");
	for (int i = 0; i < FILTER_MAX_ITEMS; i++)
		n += (size_t)sprintf(buf + n, " h%d", i);
	f = filter_new();
	assert_int_equal(filter_add(f, FILTER_DENY, buf, n, &err), 0);
	n += (size_t)sprintf(buf + n, " one-more");
	assert_int_equal(filter_add(f, FILTER_DENY, buf, n, &err), -1);
	free(err);

	/* entry length */
	n = (size_t)sprintf(buf, "imap: ");
	memset(buf + n, 'a', FILTER_MAX_TOKEN + 1);
	assert_int_equal(filter_add(f, FILTER_DENY, buf, n + FILTER_MAX_TOKEN, &err), 0);
	assert_int_equal(filter_add(f, FILTER_DENY, buf, n + FILTER_MAX_TOKEN + 1, &err), -1);
	free(err);
	filter_free(&f);
	free(buf);
}

static void test_conf_keys(void **state)
{
	static const char text[] =
		"service.imap.domainallowed = imap: 192.0.2.0/24\n"
		"service.imap.domainnotallowed = ALL: ALL\n"
		"service.pop.domainnotallowed = -pop: 198.51.100.1$+pop: ALL\n"
		"service.smtp.domainallowed = smtp: 10.0.0.0/8\n";
	struct sp_conf *conf = sp_conf_new();
	struct filter *f;
	char *err = NULL;

	(void)state;
	if (sp_conf_add_schema(conf, "mailcore", mailcore_filter_conf_keys, &err) < 0 ||
	    sp_conf_parse(conf, "t.conf", text, sizeof(text) - 1, &err) < 0)
		fail_msg("%s", err);
	f = filter_from_conf(conf, "imap", &err);
	assert_non_null(f);
	assert_int_equal(filter_rule_count(f), 2);
	filter_free(&f);
	f = filter_from_conf(conf, "pop", &err);
	assert_int_equal(filter_rule_count(f), 2);
	filter_free(&f);
	f = filter_from_conf(conf, "http", &err);
	assert_int_equal(filter_rule_count(f), 0);
	filter_free(&f);
	sp_conf_free(&conf);

	conf = sp_conf_new();
	assert_int_equal(sp_conf_add_schema(conf, "mailcore", mailcore_filter_conf_keys, &err), 0);
	{
		static const char bad[] = "service.http.domainallowed = http ALL\n";

		if (sp_conf_parse(conf, "t.conf", bad, sizeof(bad) - 1, &err) < 0)
			fail_msg("%s", err);
	}
	assert_null(filter_from_conf(conf, "http", &err));
	assert_non_null(strstr(err, "service.http.domainallowed"));
	free(err);
	sp_conf_free(&conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_simple_forms),
		cmocka_unit_test(test_reference_service_at_host_and_user),
		cmocka_unit_test(test_reference_lists),
		cmocka_unit_test(test_reference_signed_rules),
		cmocka_unit_test(test_reference_except),
		cmocka_unit_test(test_reference_mostly_denying),
		cmocka_unit_test(test_reference_mostly_allowing),
		cmocka_unit_test(test_reference_dnsspoofer),
		cmocka_unit_test(test_reference_virtual_domains),
		cmocka_unit_test(test_reference_imap_only_from_access_servers),
		cmocka_unit_test(test_wildcard_names),
		cmocka_unit_test(test_wildcard_patterns),
		cmocka_unit_test(test_decision_rules),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_conf_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
