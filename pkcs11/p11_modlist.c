/* The project's own PKCS#11 module list, <confdir>/pkcs11-modules.conf:
 * "NAME = /path/module.so" and "disable NAME SLOT-ID" lines (format in
 * pkcs11.h). A pure parser, editing functions for the tokens CLI, and an
 * atomic writer. p11-kit as root ignores per-user config, so we read ours. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/xalloc.h"
#include "pkcs11/pkcs11.h"

#define MODLIST_MAX_BYTES (64u << 10)

struct modlist_module {
	char *name;
	char *path;
};

struct modlist_disabled {
	char *name;
	CK_SLOT_ID slot;
};

struct p11_modlist {
	struct modlist_module mods[P11_MODLIST_MAX_MODULES];
	size_t nmods;
	struct modlist_disabled dis[P11_MODLIST_MAX_DISABLED];
	size_t ndis;
};

static bool name_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > P11_MODULE_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static const char *skip_blank(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static const char *trim_end(const char *start, const char *end)
{
	while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	return end;
}

static int find_module(const struct p11_modlist *ml, const char *name)
{
	size_t i;

	for (i = 0; i < ml->nmods; i++)
		if (strcmp(ml->mods[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int find_disabled(const struct p11_modlist *ml, const char *name, CK_SLOT_ID slot)
{
	size_t i;

	for (i = 0; i < ml->ndis; i++)
		if (ml->dis[i].slot == slot && strcmp(ml->dis[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int parse_slot(const char *s, CK_SLOT_ID *slot_r)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > (CK_ULONG)-1)
		return -1;
	*slot_r = (CK_SLOT_ID)v;
	return 0;
}

static int parse_line(struct p11_modlist *ml, const char *p, const char *end, char **why_r)
{
	const char *eq, *kend, *v;
	char *name, *rest;

	if (end - p > 8 && strncmp(p, "disable", 7) == 0 && (p[7] == ' ' || p[7] == '\t')) {
		const char *n = skip_blank(p + 8, end), *nend = n;
		CK_SLOT_ID slot;

		while (nend < end && *nend != ' ' && *nend != '\t')
			nend++;
		if (!name_valid(n, (size_t)(nend - n))) {
			*why_r = sp_xstrdup("bad module name after 'disable'");
			return -1;
		}
		v = skip_blank(nend, end);
		rest = sp_xstrndup(v, (size_t)(end - v));
		if (parse_slot(rest, &slot) < 0) {
			*why_r = sp_xasprintf("bad slot id '%s' (want a decimal number)", rest);
			free(rest);
			return -1;
		}
		free(rest);
		name = sp_xstrndup(n, (size_t)(nend - n));
		if (find_disabled(ml, name, slot) >= 0) {
			*why_r = sp_xasprintf("slot %lu of %s disabled twice", (unsigned long)slot,
					      name);
			free(name);
			return -1;
		}
		if (ml->ndis >= P11_MODLIST_MAX_DISABLED) {
			*why_r = sp_xasprintf("more than %d disable lines", P11_MODLIST_MAX_DISABLED);
			free(name);
			return -1;
		}
		ml->dis[ml->ndis].name = name;
		ml->dis[ml->ndis].slot = slot;
		ml->ndis++;
		return 0;
	}
	eq = memchr(p, '=', (size_t)(end - p));
	if (eq == NULL) {
		*why_r = sp_xstrdup("expected 'NAME = /path/module.so' or 'disable NAME SLOT'");
		return -1;
	}
	kend = trim_end(p, eq);
	if (!name_valid(p, (size_t)(kend - p))) {
		*why_r = sp_xasprintf("bad module name (letters, digits, '.', '_', '-'; at most %d)",
				      P11_MODULE_NAME_MAX);
		return -1;
	}
	v = skip_blank(eq + 1, end);
	if (v >= end || *v != '/') {
		*why_r = sp_xstrdup("module path must be absolute");
		return -1;
	}
	name = sp_xstrndup(p, (size_t)(kend - p));
	if (find_module(ml, name) >= 0) {
		*why_r = sp_xasprintf("module %s listed twice", name);
		free(name);
		return -1;
	}
	if (ml->nmods >= P11_MODLIST_MAX_MODULES) {
		*why_r = sp_xasprintf("more than %d modules", P11_MODLIST_MAX_MODULES);
		free(name);
		return -1;
	}
	ml->mods[ml->nmods].name = name;
	ml->mods[ml->nmods].path = sp_xstrndup(v, (size_t)(end - v));
	ml->nmods++;
	return 0;
}

struct p11_modlist *p11_modlist_parse(const char *name, const char *buf, size_t len,
				      char **error_r)
{
	struct p11_modlist *ml = sp_xcalloc(1, sizeof(*ml));
	const char *p = buf, *end = buf + len;
	unsigned lineno = 0;

	if (len > MODLIST_MAX_BYTES) {
		*error_r = sp_xasprintf("%s: larger than %u bytes", name, MODLIST_MAX_BYTES);
		p11_modlist_free(&ml);
		return NULL;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *lend = nl != NULL ? nl : end;
		const char *s = skip_blank(p, lend), *e = trim_end(s, lend);
		char *why = NULL;

		lineno++;
		if (memchr(p, '\0', (size_t)(lend - p)) != NULL) {
			*error_r = sp_xasprintf("%s:%u: NUL byte", name, lineno);
			p11_modlist_free(&ml);
			return NULL;
		}
		if (s < e && *s != '#' && parse_line(ml, s, e, &why) < 0) {
			*error_r = sp_xasprintf("%s:%u: %s", name, lineno, why);
			free(why);
			p11_modlist_free(&ml);
			return NULL;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return ml;
}

struct p11_modlist *p11_modlist_load(const char *path, char **error_r)
{
	char *buf = sp_xmalloc(MODLIST_MAX_BYTES + 1);
	struct p11_modlist *ml;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		free(buf);
		if (errno == ENOENT)
			return sp_xcalloc(1, sizeof(struct p11_modlist));
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, MODLIST_MAX_BYTES + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = sp_xasprintf("%s: read: %s", path, strerror(errno));
			close(fd);
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > MODLIST_MAX_BYTES)
			break;
	}
	close(fd);
	ml = p11_modlist_parse(path, buf, len, error_r);
	free(buf);
	return ml;
}

int p11_modlist_save(const struct p11_modlist *ml, const char *path, char **error_r)
{
	char *tmp = sp_xasprintf("%s.tmpXXXXXX", path), *dircopy, *text;
	size_t i, len = 0, cap = 256;
	int fd, dfd;

	text = sp_xmalloc(cap);
	text[0] = '\0';
#define APPEND(...) do { \
		int n_ = snprintf(NULL, 0, __VA_ARGS__); \
		if (len + (size_t)n_ + 1 > cap) { cap = (len + (size_t)n_ + 1) * 2; \
			text = sp_xrealloc(text, cap, 1); } \
		len += (size_t)snprintf(text + len, cap - len, __VA_ARGS__); \
	} while (0)
	APPEND("# PKCS#11 modules for Sealpost (written by the tokens CLI).\n"
	       "# NAME = /path/module.so | disable NAME SLOT-ID\n");
	for (i = 0; i < ml->nmods; i++)
		APPEND("%s = %s\n", ml->mods[i].name, ml->mods[i].path);
	for (i = 0; i < ml->ndis; i++)
		APPEND("disable %s %lu\n", ml->dis[i].name, (unsigned long)ml->dis[i].slot);
#undef APPEND
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		*error_r = sp_xasprintf("%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, 0644) < 0 || sp_write_all(fd, text, len) < 0 || fsync(fd) < 0) {
		*error_r = sp_xasprintf("%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto fail;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		unlink(tmp);
		goto fail;
	}
	dircopy = sp_xstrdup(path);
	dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dircopy);
	if (dfd < 0 || fsync(dfd) < 0) {
		*error_r = sp_xasprintf("%s: fsync of directory: %s", path, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		goto fail;
	}
	close(dfd);
	free(tmp);
	free(text);
	return 0;
fail:
	free(tmp);
	free(text);
	return -1;
}

void p11_modlist_free(struct p11_modlist **mlp)
{
	struct p11_modlist *ml = *mlp;
	size_t i;

	if (ml == NULL)
		return;
	for (i = 0; i < ml->nmods; i++) {
		free(ml->mods[i].name);
		free(ml->mods[i].path);
	}
	for (i = 0; i < ml->ndis; i++)
		free(ml->dis[i].name);
	free(ml);
	*mlp = NULL;
}

size_t p11_modlist_count(const struct p11_modlist *ml)
{
	return ml->nmods;
}

void p11_modlist_at(const struct p11_modlist *ml, size_t i, const char **name_r,
		    const char **path_r)
{
	*name_r = ml->mods[i].name;
	*path_r = ml->mods[i].path;
}

int p11_modlist_add(struct p11_modlist *ml, const char *name, const char *path, char **error_r)
{
	if (!name_valid(name, strlen(name))) {
		*error_r = sp_xasprintf("bad module name '%s' (letters, digits, '.', '_', '-')",
					name);
		return -1;
	}
	if (path[0] != '/' || strchr(path, '\n') != NULL) {
		*error_r = sp_xasprintf("module path must be absolute: %s", path);
		return -1;
	}
	if (find_module(ml, name) >= 0) {
		*error_r = sp_xasprintf("module %s is already in the list", name);
		return -1;
	}
	if (ml->nmods >= P11_MODLIST_MAX_MODULES) {
		*error_r = sp_xasprintf("module list full (%d modules)", P11_MODLIST_MAX_MODULES);
		return -1;
	}
	ml->mods[ml->nmods].name = sp_xstrdup(name);
	ml->mods[ml->nmods].path = sp_xstrdup(path);
	ml->nmods++;
	return 0;
}

int p11_modlist_remove(struct p11_modlist *ml, const char *name, char **error_r)
{
	int i = find_module(ml, name);
	size_t j;

	if (i < 0) {
		*error_r = sp_xasprintf("module %s is not in the list", name);
		return -1;
	}
	free(ml->mods[i].name);
	free(ml->mods[i].path);
	memmove(&ml->mods[i], &ml->mods[i + 1], (ml->nmods - (size_t)i - 1) * sizeof(ml->mods[0]));
	ml->nmods--;
	for (j = 0; j < ml->ndis;) {
		if (strcmp(ml->dis[j].name, name) == 0) {
			free(ml->dis[j].name);
			memmove(&ml->dis[j], &ml->dis[j + 1], (ml->ndis - j - 1) * sizeof(ml->dis[0]));
			ml->ndis--;
		} else {
			j++;
		}
	}
	return 0;
}

int p11_modlist_disable_slot(struct p11_modlist *ml, const char *name, CK_SLOT_ID slot,
			     char **error_r)
{
	if (!name_valid(name, strlen(name))) {
		*error_r = sp_xasprintf("bad module name '%s'", name);
		return -1;
	}
	if (find_disabled(ml, name, slot) >= 0)
		return 0;
	if (ml->ndis >= P11_MODLIST_MAX_DISABLED) {
		*error_r = sp_xasprintf("too many disabled slots (%d)", P11_MODLIST_MAX_DISABLED);
		return -1;
	}
	ml->dis[ml->ndis].name = sp_xstrdup(name);
	ml->dis[ml->ndis].slot = slot;
	ml->ndis++;
	return 0;
}

int p11_modlist_enable_slot(struct p11_modlist *ml, const char *name, CK_SLOT_ID slot,
			    char **error_r)
{
	int i = find_disabled(ml, name, slot);

	(void)error_r;
	if (i < 0)
		return 0;
	free(ml->dis[i].name);
	memmove(&ml->dis[i], &ml->dis[i + 1], (ml->ndis - (size_t)i - 1) * sizeof(ml->dis[0]));
	ml->ndis--;
	return 0;
}

bool p11_modlist_slot_disabled(const struct p11_modlist *ml, const char *name, CK_SLOT_ID slot)
{
	return ml != NULL && find_disabled(ml, name, slot) >= 0;
}
