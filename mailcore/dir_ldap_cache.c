/* The LDAP backend's TTL cache of lookup results and its reconnect
 * backoff (dir_ldap_int.h): pure apart from a mutex; the caller passes
 * the clock, so the unit test decides when entries expire. */
#include "mailcore/dir_ldap_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define CACHE_KEY_MAX (DIR_ADDR_MAX + 4)

struct cache_entry {
	char key[CACHE_KEY_MAX];
	enum dir_status st;
	struct dir_record *rec; /* DIR_FOUND only */
	long long expires_ms;
};

struct dir_ldap_cache {
	pthread_mutex_t mu;
	struct cache_entry **slots;
	size_t n_slots;
	long ttl_ms;
};

struct dir_ldap_cache *dir_ldap_cache_new(size_t slots, long ttl_ms)
{
	struct dir_ldap_cache *c = sp_xcalloc(1, sizeof(*c));

	pthread_mutex_init(&c->mu, NULL);
	c->n_slots = slots > 0 ? slots : 1;
	c->slots = sp_xcalloc(c->n_slots, sizeof(*c->slots));
	c->ttl_ms = ttl_ms;
	return c;
}

static void entry_free(struct cache_entry *e)
{
	if (e == NULL)
		return;
	dir_record_free(&e->rec);
	free(e);
}

void dir_ldap_cache_free(struct dir_ldap_cache **cp)
{
	struct dir_ldap_cache *c;

	if (cp == NULL || *cp == NULL)
		return;
	c = *cp;
	for (size_t i = 0; i < c->n_slots; i++)
		entry_free(c->slots[i]);
	free(c->slots);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*cp = NULL;
}

static size_t slot_of(const struct dir_ldap_cache *c, const char *key)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *k = (const unsigned char *)key; *k != '\0'; k++)
		h = (h ^ *k) * 1099511628211ULL;
	return (size_t)(h % c->n_slots);
}

bool dir_ldap_cache_get(struct dir_ldap_cache *c, const char *key, long long now_ms,
			enum dir_status *st, struct dir_record **rec_r)
{
	struct cache_entry *e;
	bool hit = false;

	if (c == NULL || c->ttl_ms <= 0)
		return false;
	pthread_mutex_lock(&c->mu);
	e = c->slots[slot_of(c, key)];
	if (e != NULL && strcmp(e->key, key) == 0 && e->expires_ms > now_ms) {
		*st = e->st;
		*rec_r = e->st == DIR_FOUND ? dir_record_dup(e->rec) : NULL;
		hit = true;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void dir_ldap_cache_put(struct dir_ldap_cache *c, const char *key, long long now_ms,
			enum dir_status st, const struct dir_record *rec)
{
	struct cache_entry *e, *old;
	size_t slot;

	/* a temporary failure is never remembered */
	if (c == NULL || c->ttl_ms <= 0 || st == DIR_TEMPFAIL || strlen(key) >= CACHE_KEY_MAX ||
	    (st == DIR_FOUND && rec == NULL))
		return;
	e = sp_xcalloc(1, sizeof(*e));
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->st = st;
	e->rec = st == DIR_FOUND ? dir_record_dup(rec) : NULL;
	e->expires_ms = now_ms + c->ttl_ms;
	slot = slot_of(c, key);
	pthread_mutex_lock(&c->mu);
	old = c->slots[slot];
	c->slots[slot] = e; /* a collision replaces: the table never grows */
	pthread_mutex_unlock(&c->mu);
	entry_free(old);
}

size_t dir_ldap_cache_count(struct dir_ldap_cache *c)
{
	size_t n = 0;

	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n_slots; i++)
		n += c->slots[i] != NULL;
	pthread_mutex_unlock(&c->mu);
	return n;
}

long dir_ldap_next_backoff(long cur_ms, long min_ms, long max_ms)
{
	if (max_ms < min_ms)
		max_ms = min_ms;
	if (cur_ms <= 0)
		return min_ms;
	return cur_ms > max_ms / 2 ? max_ms : cur_ms * 2;
}
