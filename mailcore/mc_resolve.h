/* Client name lookups for the access filters and the Received: header
 * (mc_resolve.c, with the pure parts in mc_resolve_cache.c): the reverse
 * lookup of the client's address, then the forward lookup of that name,
 * which must give the address back for the name to count as verified.
 * Lookups run on a pool of their own (store_pool.h), so slow DNS never
 * holds the store's fsyncs up; each has a deadline after which the caller
 * goes on without a name. Private to mailcore. */
#ifndef MAILCORE_MC_RESOLVE_H
#define MAILCORE_MC_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/conf.h"

struct event_base;

#define MC_NAME_MAX 253   /* RFC 1035 2.3.4, as text without the root dot */

/* What a lookup found. name[0] == '\0': no name (the filters' UNKNOWN);
 * a name with verified false: its forward lookup does not give the client
 * back (DNSSPOOFER); verified: the filters' KNOWN. */
struct mc_name_result {
	char name[MC_NAME_MAX + 1];
	bool verified;
	const char *source;   /* for logs: "dns", "cache", "timeout", "busy", "no-address" */
};

/* mailcore.dns.reverse_lookups */
enum mc_dns_mode {
	MC_DNS_NO,          /* never: name rules match nobody, UNKNOWN everyone */
	MC_DNS_WHEN_NEEDED, /* IMAP/POP when their filter names clients; SMTP always */
	MC_DNS_YES,         /* every connection of every service */
};

struct mc_resolve_config {
	enum mc_dns_mode mode;
	long timeout_ms;        /* deadline per lookup */
	unsigned threads;       /* the lookup pool's threads */
	unsigned max_lookups;   /* lookups in flight (also those past their deadline) */
	unsigned cache_size;    /* entries; 0 = no cache */
	long cache_ttl_ms;
};

/* ---------------------------------------------------------------- pure parts
 * (mc_resolve_cache.c; no I/O, no globals) */

/* The lookup key of an IP address: 1 byte family (4 or 6) and 16 bytes;
 * an IPv4-mapped IPv6 address is its IPv4 address. Returns 0, or -1 for a
 * client with no IP address (AF_UNIX, AF_UNSPEC, NULL). */
#define MC_ADDR_KEY_LEN 17
int mc_addr_key(const struct sockaddr *sa, uint8_t key[MC_ADDR_KEY_LEN]);
/* Same IP address, ports ignored, IPv4-mapped IPv6 equal to IPv4. */
bool mc_addr_same(const struct sockaddr *a, const struct sockaddr *b);

/* SECURITY: a PTR name is whatever the owner of the address's reverse zone
 * wrote. Accepts a host name (letters, digits, '-', '_' between dots, labels
 * of 1..63, at most MC_NAME_MAX, last label not all digits so that a PTR
 * of "10.1.2.3" can never pose as an address), lowers its case and drops a
 * trailing dot, in place. Returns 0, or -1 (name unusable). */
int mc_name_clean(char *name);

struct mc_name_cache;

/* capacity entries (>= 1), each kept ttl_ms. Caller frees. */
struct mc_name_cache *mc_name_cache_new(unsigned capacity, long ttl_ms);
void mc_name_cache_free(struct mc_name_cache **cache);
/* True and *out filled (source "cache") when a live entry exists. */
bool mc_name_cache_get(const struct mc_name_cache *cache, const uint8_t key[MC_ADDR_KEY_LEN],
		       long long now_ms, struct mc_name_result *out);
/* Stores or replaces; when full, replaces an expired entry or else the
 * oldest one (so the cache never grows past its capacity). */
void mc_name_cache_put(struct mc_name_cache *cache, const uint8_t key[MC_ADDR_KEY_LEN],
		       const struct mc_name_result *res, long long now_ms);
unsigned mc_name_cache_count(const struct mc_name_cache *cache, long long now_ms);

/* ---------------------------------------------------------------- resolver */

/* The mailcore.dns.* keys (their schema is in filter_conf.c). */
void mc_resolve_config_from_conf(const struct sp_conf *conf, struct mc_resolve_config *cfg);

struct mc_resolver;
struct mc_resolve_req;

/* Starts the lookup pool. Returns NULL and *error_r (caller frees) on
 * failure. Caller frees with mc_resolver_free, after every request was
 * answered or cancelled (the servers' connections are gone). */
struct mc_resolver *mc_resolver_new(struct event_base *base, const struct mc_resolve_config *cfg,
				    char **error_r);
/* Waits for the lookups still on pool threads (their answers are dropped). */
void mc_resolver_free(struct mc_resolver **r);
/* NULL resolver: MC_DNS_NO. */
enum mc_dns_mode mc_resolver_mode(const struct mc_resolver *r);
/* Lookups on pool threads, also those past their deadline (tests, logs). */
unsigned mc_resolver_in_flight(const struct mc_resolver *r);

/* fn(arg, result) runs exactly once, later, on the loop (never from inside
 * mc_resolve_start): with the answer, or at the deadline with no name, or
 * at once with no name when the client has no IP address or too many
 * lookups are in flight. result is valid only during the call. The
 * request frees itself after fn; mc_resolve_cancel before that drops it
 * (fn is then never called). Never NULL. */
typedef void mc_resolve_fn(void *arg, const struct mc_name_result *result);
struct mc_resolve_req *mc_resolve_start(struct mc_resolver *r, const struct sockaddr *client,
					mc_resolve_fn *fn, void *arg);
/* Sets *req to NULL; NULL or *req == NULL is a no-op. Only for a request
 * whose fn has not run yet. */
void mc_resolve_cancel(struct mc_resolve_req **req);

#endif
