/* Private to the LDAP directory backend (dir_ldap.c): its pure parts, kept
 * apart so the unit test (tests/unit/test_dir_ldap.c) and the fuzz target
 * (tests/fuzz/fuzz_dir_ldap_entry.c) drive them without a server:
 * search-filter expansion (dir_ldap_entry.c), attribute values into a
 * record (dir_ldap_entry.c), the TTL cache and the reconnect backoff
 * (dir_ldap_cache.c). No libldap types here. */
#ifndef MAILCORE_DIR_LDAP_INT_H
#define MAILCORE_DIR_LDAP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailcore/dir.h"

/* Service-access text kept per record (mailAllowedServiceAccess, and as
 * much again for mailDomainAllowedServiceAccess); longer is cut at a
 * value boundary (the values past it are dropped and logged). */
#define DIR_LDAP_ALLOWED_MAX 16384

/* ---------------------------------------------------------------- filters */

/* Expands a filter template: %U (local part), %D (domain), %o (the name
 * as given), %% (a '%'); any other '%' is copied. Values are escaped per
 * RFC 4515 3 ('*', '(', ')', '\\' and control bytes as \XX; UTF-8 is
 * kept), so a crafted address cannot change the filter. NULL values expand to "".
 * Returns 0, or -1 when the result does not fit in cap bytes. */
int dir_ldap_expand_filter(const char *tmpl, const char *user, const char *domain,
			   const char *orig, char *out, size_t cap);

/* ---------------------------------------------------------------- values */

/* mailUserStatus / inetUserStatus: active; deleted or removed (not
 * found); anything else (inactive, hold, overquota, disabled, unknown:
 * "an illegal value is treated as inactive") is inactive. */
enum dir_user_status dir_ldap_user_status(const char *v, size_t len);
/* inetDomainStatus / mailDomainStatus: active; deleted, removed and
 * disabled are permanent (the domain's users are not found); inactive,
 * hold, overquota and unknown values are temporary (inactive). */
enum dir_user_status dir_ldap_domain_status(const char *v, size_t len);
/* mailQuota: bytes, with an optional K, M or G suffix (1024-based);
 * -1 (no limit) and -2 (the system default, which we do not have) are
 * unlimited (0). Returns 0 and *bytes_r, or -1 when malformed or too
 * large (the caller keeps "unlimited" and logs). */
int dir_ldap_parse_quota(const char *v, size_t len, uint64_t *bytes_r);

/* One value (index idx of attribute attr) of a user entry into rec.
 * SECURITY: v[0..len) is untrusted (any bytes, from the directory);
 * nothing here reads past len or relies on a NUL. Single-valued
 * attributes use their first value; mailAllowedServiceAccess values are
 * joined with '$' (filter.h), bounded by DIR_LDAP_ALLOWED_MAX; the first
 * 8 certificates are hashed. Values with NUL or control bytes in a name
 * field (mail, mailHost) are ignored. */
void dir_ldap_user_value(struct dir_record *rec, const char *attr, size_t idx, const char *v,
			 size_t len);
/* After the last value: 0 when rec is a usable user (a mail attribute
 * with one '@'), else -1. */
int dir_ldap_user_check(const struct dir_record *rec);
/* One value of a domain entry (inetDomainStatus, mailDomainStatus,
 * mailDomainAllowedServiceAccess): the status goes to rec->status, the
 * filter to rec->domain_allowed. Same rules for untrusted input. */
void dir_ldap_domain_value(struct dir_record *rec, const char *attr, size_t idx, const char *v,
			   size_t len);
/* A user found under a domain takes the domain's part: the worse status
 * of the two, and the domain's service filter. */
void dir_ldap_merge_domain(struct dir_record *user, const struct dir_record *domain);

/* ---------------------------------------------------------------- cache */

/* A direct-mapped table of lookup results (found and not found; never a
 * temporary failure), each kept ttl_ms. It never grows: a collision
 * replaces the older entry. Thread safe. ttl_ms <= 0: nothing is kept. */
struct dir_ldap_cache;
struct dir_ldap_cache *dir_ldap_cache_new(size_t slots, long ttl_ms);
void dir_ldap_cache_free(struct dir_ldap_cache **c);
/* key: at most DIR_ADDR_MAX + 3 bytes (longer keys are never cached).
 * On a hit *st is set and, for DIR_FOUND, *rec_r a copy (caller frees). */
bool dir_ldap_cache_get(struct dir_ldap_cache *c, const char *key, long long now_ms,
			enum dir_status *st, struct dir_record **rec_r);
void dir_ldap_cache_put(struct dir_ldap_cache *c, const char *key, long long now_ms,
			enum dir_status st, const struct dir_record *rec);
/* Entries held now (expired ones included until replaced). */
size_t dir_ldap_cache_count(struct dir_ldap_cache *c);

/* ---------------------------------------------------------------- backoff */

/* The wait after a failure: min after the first (cur == 0: was up), then
 * doubling, capped at max. */
long dir_ldap_next_backoff(long cur_ms, long min_ms, long max_ms);

#endif
