/* The parsed form of client access filters, shared by filter_parse.c (which
 * builds it) and filter_eval.c (which reads it). Private to mailcore's
 * filter files. */
#ifndef MAILCORE_FILTER_INT_H
#define MAILCORE_FILTER_INT_H

#include <stdint.h>

#include "mailcore/filter.h"

enum filter_host_kind {
	FHOST_ANY,        /* ALL, *, or no host part at all */
	FHOST_LOCAL,      /* a verified name without a dot */
	FHOST_UNKNOWN,    /* name or address unknown */
	FHOST_KNOWN,      /* name and address known */
	FHOST_DNSSPOOFER, /* a name whose forward lookup does not give the address back */
	FHOST_NAME,       /* exact host name (lower-case) */
	FHOST_SUFFIX,     /* ".example.com": the name ends with it */
	FHOST_NET,        /* address / mask (a plain address is a /32 or /128) */
	FHOST_NETGROUP,   /* "@group": no NIS here, never matches */
};

struct filter_host {
	enum filter_host_kind kind;
	char text[FILTER_MAX_TOKEN + 1]; /* NAME, SUFFIX (with its dot) */
	int family;                      /* NET: AF_INET or AF_INET6 */
	uint8_t net[16], mask[16];
};

enum filter_name_kind { FNAME_ANY, FNAME_KNOWN, FNAME_UNKNOWN, FNAME_LITERAL };

/* One entry: a service or a client. */
struct filter_item {
	enum filter_name_kind name_kind;  /* service name, or the user of user@host */
	char name[FILTER_MAX_TOKEN + 1];  /* LITERAL, lower-case */
	struct filter_host host;          /* the server (service@host) or the client */
};

/* lists[0] EXCEPT (lists[1] EXCEPT (lists[2] ...)) */
struct filter_expr {
	size_t n_lists;
	struct filter_item *lists[FILTER_MAX_EXCEPT + 1];
	size_t n_items[FILTER_MAX_EXCEPT + 1];
};

struct filter_rule {
	enum filter_action action;
	struct filter_expr services;
	struct filter_expr clients;
};

struct filter {
	struct filter_rule *rules;
	size_t n_rules;
	size_t n_allow, n_deny;
	bool needs_name;
};

#endif
