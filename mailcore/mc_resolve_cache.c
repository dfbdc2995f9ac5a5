/* The pure parts of the client name lookups (mc_resolve.h): address keys
 * and comparison, the check of a PTR name, and the bounded cache of
 * answers with its TTL. No I/O, no globals: unit-tested in test_resolve.c.
 * SECURITY: mc_name_clean is the gate every name from DNS passes. */
#include "mailcore/mc_resolve.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

int mc_addr_key(const struct sockaddr *sa, uint8_t key[MC_ADDR_KEY_LEN])
{
	memset(key, 0, MC_ADDR_KEY_LEN);
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		key[0] = 4;
		memcpy(key + 1, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			key[0] = 4;
			memcpy(key + 1, &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, &sin6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

bool mc_addr_same(const struct sockaddr *a, const struct sockaddr *b)
{
	uint8_t ka[MC_ADDR_KEY_LEN], kb[MC_ADDR_KEY_LEN];

	return mc_addr_key(a, ka) == 0 && mc_addr_key(b, kb) == 0 &&
	       memcmp(ka, kb, MC_ADDR_KEY_LEN) == 0;
}

int mc_name_clean(char *name)
{
	size_t len = strlen(name), label = 0, last_start = 0;
	bool last_digits = true;

	if (len > 0 && name[len - 1] == '.')
		name[--len] = '\0';
	if (len == 0 || len > MC_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];

		if (ch == '.') {
			if (label == 0)
				return -1;
			label = 0;
			last_start = i + 1;
			continue;
		}
		if (ch >= 'A' && ch <= 'Z')
			name[i] = ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return -1;
		if (++label > 63)
			return -1;
	}
	if (label == 0)
		return -1;
	for (size_t i = last_start; i < len; i++)
		if (name[i] < '0' || name[i] > '9')
			last_digits = false;
	return last_digits ? -1 : 0;
}

/* ---------------------------------------------------------------- cache */

struct cache_entry {
	bool used;
	uint8_t key[MC_ADDR_KEY_LEN];
	long long stored_ms;
	bool verified;
	char name[MC_NAME_MAX + 1];
};

struct mc_name_cache {
	unsigned capacity;
	long ttl_ms;
	struct cache_entry *entries;
};

struct mc_name_cache *mc_name_cache_new(unsigned capacity, long ttl_ms)
{
	struct mc_name_cache *c = sp_xcalloc(1, sizeof(*c));

	c->capacity = capacity > 0 ? capacity : 1;
	c->ttl_ms = ttl_ms;
	c->entries = sp_xcalloc(c->capacity, sizeof(*c->entries));
	return c;
}

void mc_name_cache_free(struct mc_name_cache **cp)
{
	if (cp == NULL || *cp == NULL)
		return;
	free((*cp)->entries);
	free(*cp);
	*cp = NULL;
}

static bool entry_live(const struct mc_name_cache *c, const struct cache_entry *e, long long now_ms)
{
	/* a clock that went back also ends an entry */
	return e->used && now_ms >= e->stored_ms && now_ms - e->stored_ms < c->ttl_ms;
}

bool mc_name_cache_get(const struct mc_name_cache *c, const uint8_t key[MC_ADDR_KEY_LEN],
		       long long now_ms, struct mc_name_result *out)
{
	for (unsigned i = 0; i < c->capacity; i++) {
		const struct cache_entry *e = &c->entries[i];

		if (entry_live(c, e, now_ms) && memcmp(e->key, key, MC_ADDR_KEY_LEN) == 0) {
			memcpy(out->name, e->name, sizeof(out->name));
			out->verified = e->verified;
			out->source = "cache";
			return true;
		}
	}
	return false;
}

void mc_name_cache_put(struct mc_name_cache *c, const uint8_t key[MC_ADDR_KEY_LEN],
		       const struct mc_name_result *res, long long now_ms)
{
	struct cache_entry *slot = NULL;

	for (unsigned i = 0; i < c->capacity && slot == NULL; i++)
		if (c->entries[i].used && memcmp(c->entries[i].key, key, MC_ADDR_KEY_LEN) == 0)
			slot = &c->entries[i];
	for (unsigned i = 0; i < c->capacity && slot == NULL; i++)
		if (!entry_live(c, &c->entries[i], now_ms))
			slot = &c->entries[i];
	if (slot == NULL) {
		slot = &c->entries[0];
		for (unsigned i = 1; i < c->capacity; i++)
			if (c->entries[i].stored_ms < slot->stored_ms)
				slot = &c->entries[i];
	}
	slot->used = true;
	memcpy(slot->key, key, MC_ADDR_KEY_LEN);
	slot->stored_ms = now_ms;
	slot->verified = res->name[0] != '\0' && res->verified;
	memcpy(slot->name, res->name, sizeof(slot->name));
	slot->name[MC_NAME_MAX] = '\0';
}

unsigned mc_name_cache_count(const struct mc_name_cache *c, long long now_ms)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->capacity; i++)
		n += entry_live(c, &c->entries[i], now_ms) ? 1 : 0;
	return n;
}
