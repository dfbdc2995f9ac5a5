/* The aliases file: a local part (any local domain) or a full address mapped
 * to a list of addresses, expanded recursively with bounds on depth and
 * width. The format is described in mailcore.h. ORIG_SEND_ACCESS sees the
 * address before this expansion, SEND_ACCESS each address after it. */
#include "mailcore/mailcore.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "mailcore/mc_file.h"

#define ALIASES_MAX_FILE (4u * 1024 * 1024)
#define ALIASES_MAX_LINE 4096
#define ALIASES_MAX_COUNT 100000
#define ADDR_CAP (SMTP_LOCAL_PART_MAX + 1 + SMTP_DOMAIN_MAX + 1)

struct alias {
	char *key;        /* "local" or "local@domain", lower-case */
	char **targets;
	size_t n_targets;
	unsigned lineno;
};

struct dir_aliases {
	struct alias *list;
	size_t n, cap;
};

void dir_aliases_free(struct dir_aliases **aliases)
{
	if (aliases == NULL || *aliases == NULL)
		return;
	for (size_t i = 0; i < (*aliases)->n; i++) {
		struct alias *a = &(*aliases)->list[i];

		for (size_t t = 0; t < a->n_targets; t++)
			free(a->targets[t]);
		free(a->targets);
		free(a->key);
	}
	free((*aliases)->list);
	free(*aliases);
	*aliases = NULL;
}

static int alias_cmp(const void *a, const void *b)
{
	return strcmp(((const struct alias *)a)->key, ((const struct alias *)b)->key);
}

static int parse_key(const char *s, size_t n, char *buf, size_t cap)
{
	if (memchr(s, '@', n) != NULL)
		return mc_normalize_address(s, n, buf, cap);
	if (n + 1 > cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	buf[n] = '\0';
	return mc_valid_local_part(buf, n) ? 0 : -1;
}

static int parse_line(struct dir_aliases *al, const char *line, size_t len, const char **why)
{
	const char *colon = memchr(line, ':', len);
	char key[ADDR_CAP];
	struct alias a = {0};
	size_t i;

	if (colon == NULL) {
		*why = "expected alias: address, address, ...";
		return -1;
	}
	if (parse_key(line, (size_t)(colon - line), key, sizeof(key)) < 0) {
		*why = "bad alias name (a local part or local@domain)";
		return -1;
	}
	i = (size_t)(colon + 1 - line);
	while (i < len) {
		size_t start, end;
		char target[ADDR_CAP];

		while (i < len && (isblank((unsigned char)line[i]) || line[i] == ','))
			i++;
		if (i >= len)
			break;
		start = i;
		while (i < len && line[i] != ',' && !isblank((unsigned char)line[i]))
			i++;
		end = i;
		if (mc_normalize_address(line + start, end - start, target, sizeof(target)) < 0) {
			*why = "bad target address";
			goto fail;
		}
		if (a.n_targets >= DIR_ALIAS_MAX_TARGETS) {
			*why = "too many targets";
			goto fail;
		}
		a.targets = sp_xrealloc(a.targets, a.n_targets + 1, sizeof(*a.targets));
		a.targets[a.n_targets++] = sp_xstrdup(target);
	}
	if (a.n_targets == 0) {
		*why = "alias without targets";
		goto fail;
	}
	if (al->n == al->cap) {
		if (al->n >= ALIASES_MAX_COUNT) {
			*why = "too many aliases";
			goto fail;
		}
		al->cap = al->cap == 0 ? 32 : al->cap * 2;
		al->list = sp_xrealloc(al->list, al->cap, sizeof(*al->list));
	}
	a.key = sp_xstrdup(key);
	al->list[al->n++] = a;
	return 0;
fail:
	for (size_t t = 0; t < a.n_targets; t++)
		free(a.targets[t]);
	free(a.targets);
	return -1;
}

struct dir_aliases *dir_aliases_parse(const char *name, const char *buf, size_t len,
				      char **error_r)
{
	struct dir_aliases *al = sp_xcalloc(1, sizeof(*al));
	struct mc_lines it;
	const char *line;
	size_t n;

	if (len > ALIASES_MAX_FILE) {
		*error_r = sp_xasprintf("%s: larger than %u bytes", name, ALIASES_MAX_FILE);
		free(al);
		return NULL;
	}
	mc_lines_init(&it, buf, len);
	while (mc_lines_next(&it, &line, &n)) {
		const char *why = NULL;
		size_t s = 0;

		if (n > ALIASES_MAX_LINE) {
			*error_r = sp_xasprintf("%s:%u: line too long", name, it.lineno);
			goto fail;
		}
		while (s < n && isblank((unsigned char)line[s]))
			s++;
		if (s == n || line[s] == '#')
			continue;
		if (parse_line(al, line + s, n - s, &why) < 0) {
			*error_r = sp_xasprintf("%s:%u: %s", name, it.lineno, why);
			goto fail;
		}
		al->list[al->n - 1].lineno = it.lineno;
	}
	qsort(al->list, al->n, sizeof(*al->list), alias_cmp);
	for (size_t i = 1; i < al->n; i++) {
		if (strcmp(al->list[i].key, al->list[i - 1].key) == 0) {
			unsigned a = al->list[i].lineno, b = al->list[i - 1].lineno;

			*error_r = sp_xasprintf("%s:%u: duplicate alias %s", name, a > b ? a : b,
						al->list[i].key);
			goto fail;
		}
	}
	return al;
fail:
	dir_aliases_free(&al);
	return NULL;
}

struct dir_aliases *dir_aliases_load(const char *path, char **error_r)
{
	char *buf;
	size_t len;
	struct dir_aliases *al;

	if (mc_file_read(path, ALIASES_MAX_FILE, &buf, &len, error_r) < 0)
		return NULL;
	al = dir_aliases_parse(path, buf, len, error_r);
	free(buf);
	return al;
}

static const struct alias *alias_find(const struct dir_aliases *al, const char *key)
{
	size_t lo = 0, hi = al->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, al->list[mid].key);

		if (c == 0)
			return &al->list[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* The alias for a lower-case local@domain: the full form first, then the
 * bare local part. */
static const struct alias *alias_for(const struct dir_aliases *al, const char *address)
{
	const struct alias *a = alias_find(al, address);
	const char *at;
	char local[SMTP_LOCAL_PART_MAX + 1];

	if (a != NULL)
		return a;
	at = strrchr(address, '@');
	if (at == NULL || (size_t)(at - address) >= sizeof(local))
		return NULL;
	memcpy(local, address, (size_t)(at - address));
	local[at - address] = '\0';
	return alias_find(al, local);
}

static int expand(const struct dir_aliases *al, const struct alias *a, unsigned depth,
		  bool (*is_local)(const char *, void *), void *arg, char **targets, size_t max,
		  size_t *n)
{
	if (depth > DIR_ALIAS_MAX_DEPTH)
		return -1;
	for (size_t t = 0; t < a->n_targets; t++) {
		const char *target = a->targets[t];
		const char *at = strrchr(target, '@');
		const struct alias *sub = NULL;
		bool dup = false;

		if (at != NULL && is_local(at + 1, arg))
			sub = alias_for(al, target);
		if (sub != NULL && sub != a) {
			if (expand(al, sub, depth + 1, is_local, arg, targets, max, n) < 0)
				return -1;
			continue;
		}
		/* sub == a: "alice: alice@..., bob@..." keeps a copy for alice */
		for (size_t k = 0; k < *n; k++)
			if (strcmp(targets[k], target) == 0)
				dup = true;
		if (dup)
			continue;
		if (*n >= max)
			return -1;
		targets[(*n)++] = sp_xstrdup(target);
	}
	return 0;
}

int dir_aliases_expand(const struct dir_aliases *aliases, const char *address,
		       bool (*is_local)(const char *domain, void *arg), void *arg,
		       char **targets, size_t max_targets)
{
	char key[ADDR_CAP];
	const struct alias *a;
	size_t n = 0, len = strlen(address);

	if (aliases == NULL || len + 1 > sizeof(key))
		return 0;
	for (size_t i = 0; i <= len; i++)
		key[i] = (char)tolower((unsigned char)address[i]);
	a = alias_for(aliases, key);
	if (a == NULL)
		return 0;
	if (expand(aliases, a, 1, is_local, arg, targets, max_targets, &n) < 0) {
		for (size_t i = 0; i < n; i++)
			free(targets[i]);
		return -1;
	}
	return (int)n;
}
