/* The mappings file parser: table names and "pattern template" entries, in
 * the anchor's format (docs/MAPPINGS.md has the subset and its meaning).
 * Pure: a buffer in, the compiled tables or "NAME:LINE: message" out. */
#include "mailcore/mailcore.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "mailcore/mappings_private.h"
#include "mailcore/mc_file.h"

void mappings_free(struct mappings **maps)
{
	if (maps == NULL || *maps == NULL)
		return;
	for (size_t t = 0; t < (*maps)->n; t++) {
		struct map_table *tab = &(*maps)->tables[t];

		for (size_t e = 0; e < tab->n; e++) {
			free(tab->entries[e].pat);
			free(tab->entries[e].tmpl);
		}
		free(tab->entries);
	}
	free((*maps)->tables);
	free(*maps);
	*maps = NULL;
}

const struct map_table *mappings_table(const struct mappings *maps, const char *name)
{
	if (maps == NULL)
		return NULL;
	for (size_t t = 0; t < maps->n; t++)
		if (strcasecmp(maps->tables[t].name, name) == 0)
			return &maps->tables[t];
	return NULL;
}

bool mappings_has_table(const struct mappings *maps, const char *table)
{
	return mappings_table(maps, table) != NULL;
}

/* Characters that "$c" turns into a literal, in patterns and templates. */
static bool is_quotable(char c)
{
	return c == ' ' || c == '$' || c == '|' || c == '*' || c == '%';
}

/* $(a.b.c.d/n) or $(a.b.c.d): s points after "$(". Returns the length
 * consumed through ')' or 0. */
static size_t parse_subnet(const char *s, size_t n, struct map_pat *p)
{
	char buf[64];
	const char *close = memchr(s, ')', n);
	const char *slash;
	size_t len, max_prefix;
	long prefix;

	if (close == NULL)
		return 0;
	len = (size_t)(close - s);
	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	slash = strchr(buf, '/');
	if (slash != NULL)
		buf[slash - buf] = '\0';
	memset(p, 0, sizeof(*p));
	p->kind = MAP_PAT_NET;
	if (inet_pton(AF_INET, buf, p->addr) == 1) {
		p->family = 4;
		max_prefix = 32;
	} else if (inet_pton(AF_INET6, buf, p->addr) == 1) {
		p->family = 6;
		max_prefix = 128;
	} else {
		return 0;
	}
	prefix = (long)max_prefix;
	if (slash != NULL) {
		char *end;
		const char *digits = slash + 1;

		if (*digits == '\0' || !isdigit((unsigned char)*digits))
			return 0;
		prefix = strtol(digits, &end, 10);
		if (*end != '\0' || prefix < 0 || prefix > (long)max_prefix)
			return 0;
	}
	p->prefix = (uint8_t)prefix;
	/* clear host bits so a match is a prefix compare */
	for (size_t bit = (size_t)prefix; bit < max_prefix; bit++)
		p->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	return len + 1;
}

static int compile_pattern(const char *s, size_t n, struct map_entry *e, const char **why)
{
	struct map_pat *pat = sp_xcalloc(n, sizeof(*pat));
	size_t np = 0;
	unsigned wild = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		struct map_pat *p = &pat[np];

		memset(p, 0, sizeof(*p));
		if (c == '*' || c == '%') {
			p->kind = c == '*' ? MAP_PAT_STAR : MAP_PAT_ONE;
			wild++;
		} else if (c == '$') {
			if (i + 1 >= n) {
				*why = "pattern ends with a lone '$'";
				goto fail;
			}
			if (s[i + 1] == '(') {
				size_t used = parse_subnet(s + i + 2, n - i - 2, p);

				if (used == 0) {
					*why = "bad subnet: expected $(a.b.c.d/n) or $(ipv6/n)";
					goto fail;
				}
				i += 1 + used;
				wild++;
			} else if (is_quotable(s[i + 1])) {
				p->kind = MAP_PAT_LIT;
				p->c = (uint8_t)s[++i];
			} else {
				*why = "unsupported '$' directive in pattern";
				goto fail;
			}
		} else {
			p->kind = MAP_PAT_LIT;
			p->c = (uint8_t)tolower((unsigned char)c);
		}
		np++;
	}
	if (wild > MAP_MAX_WILD) {
		*why = "too many wildcards in pattern";
		goto fail;
	}
	e->pat = pat;
	e->n_pat = np;
	e->n_wild = wild;
	return 0;
fail:
	free(pat);
	return -1;
}

/* Checks a template: $0-$9 substitutions, the flags we implement, quoted
 * characters; anything else is refused rather than silently ignored. */
static int check_template(const char *s, size_t n, unsigned n_wild, const char **why)
{
	for (size_t i = 0; i < n; i++) {
		char c;

		if (s[i] != '$')
			continue;
		if (i + 1 >= n) {
			*why = "template ends with a lone '$'";
			return -1;
		}
		c = s[++i];
		if (isdigit((unsigned char)c)) {
			if ((unsigned)(c - '0') >= n_wild) {
				*why = "template refers to a wildcard the pattern does not have";
				return -1;
			}
		} else if (strchr("YNFCEX", c) != NULL || is_quotable(c)) {
			continue;
		} else if (c == '[' || c == '{' || c == '}' || c == ']') {
			*why = "callouts and database substitutions ($[ ${) are not supported";
			return -1;
		} else {
			*why = "unsupported flag in template (supported: $Y $N $F $C $E $X)";
			return -1;
		}
	}
	return 0;
}

static bool valid_table_name(const char *s, size_t n)
{
	if (n == 0 || n >= sizeof(((struct map_table *)0)->name))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* Splits a line into blank-separated fields (at most 3 reported); a '$'
 * quotes the character after it, blanks included. */
static size_t split_fields(const char *s, size_t n, const char **f, size_t *fl)
{
	size_t count = 0, i = 0;

	while (i < n) {
		size_t start;

		while (i < n && isblank((unsigned char)s[i]))
			i++;
		if (i >= n)
			break;
		start = i;
		while (i < n && !isblank((unsigned char)s[i])) {
			/* "$ " is a quoted blank inside the field, "$$" a quoted '$' */
			if (s[i] == '$' && i + 1 < n)
				i++;
			i++;
		}
		if (count < 3) {
			f[count] = s + start;
			fl[count] = i - start;
		}
		count++;
	}
	return count;
}

static int add_table(struct mappings *m, const char *name, size_t n, const char **why)
{
	struct map_table *t;

	for (size_t i = 0; i < m->n; i++) {
		if (strlen(m->tables[i].name) == n && strncasecmp(m->tables[i].name, name, n) == 0) {
			*why = "table defined twice";
			return -1;
		}
	}
	if (m->n >= MAPPINGS_MAX_TABLES) {
		*why = "too many tables";
		return -1;
	}
	if (m->n == m->cap) {
		m->cap = m->cap == 0 ? 8 : m->cap * 2;
		m->tables = sp_xrealloc(m->tables, m->cap, sizeof(*m->tables));
	}
	t = &m->tables[m->n++];
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n; i++)
		t->name[i] = (char)toupper((unsigned char)name[i]);
	return 0;
}

static int add_entry(struct mappings *m, const char *pat, size_t pl, const char *tmpl, size_t tl,
		     unsigned lineno, const char **why)
{
	struct map_table *t;
	struct map_entry e = {0};

	if (m->n == 0) {
		*why = "entry before any table name";
		return -1;
	}
	if (m->n_entries >= MAPPINGS_MAX_ENTRIES) {
		*why = "too many entries";
		return -1;
	}
	if (compile_pattern(pat, pl, &e, why) < 0)
		return -1;
	if (check_template(tmpl, tl, e.n_wild, why) < 0) {
		free(e.pat);
		return -1;
	}
	e.tmpl = sp_xstrndup(tmpl, tl);
	e.lineno = lineno;
	t = &m->tables[m->n - 1];
	if (t->n == t->cap) {
		t->cap = t->cap == 0 ? 8 : t->cap * 2;
		t->entries = sp_xrealloc(t->entries, t->cap, sizeof(*t->entries));
	}
	t->entries[t->n++] = e;
	m->n_entries++;
	return 0;
}

struct mappings *mappings_parse(const char *name, const char *buf, size_t len, char **error_r)
{
	struct mappings *m = sp_xcalloc(1, sizeof(*m));
	struct mc_lines it;
	const char *line;
	size_t n;

	if (len > MAPPINGS_MAX_FILE) {
		*error_r = sp_xasprintf("%s: larger than %u bytes", name, MAPPINGS_MAX_FILE);
		free(m);
		return NULL;
	}
	mc_lines_init(&it, buf, len);
	while (mc_lines_next(&it, &line, &n)) {
		const char *f[3], *why = NULL;
		size_t fl[3], nf, s = 0;
		bool indented;

		if (n > MAPPINGS_MAX_LINE) {
			why = "line too long";
			goto bad;
		}
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)line[i] < 32 && line[i] != '\t') {
				why = "control character";
				goto bad;
			}
		}
		while (s < n && isblank((unsigned char)line[s]))
			s++;
		if (s == n || line[s] == '!')
			continue;
		indented = s > 0;
		nf = split_fields(line, n, f, fl);
		if (nf > 2) {
			why = "more than two fields (write a blank inside a pattern or template as '$ ')";
			goto bad;
		}
		if (nf == 1) {
			if (indented) {
				why = "entry without a template";
				goto bad;
			}
			if (!valid_table_name(f[0], fl[0])) {
				why = "bad table name (letters, digits, '_', '-')";
				goto bad;
			}
			if (add_table(m, f[0], fl[0], &why) < 0)
				goto bad;
			continue;
		}
		if (add_entry(m, f[0], fl[0], f[1], fl[1], it.lineno, &why) < 0)
			goto bad;
		continue;
bad:
		*error_r = sp_xasprintf("%s:%u: %s", name, it.lineno, why);
		mappings_free(&m);
		return NULL;
	}
	return m;
}

struct mappings *mappings_load(const char *path, char **error_r)
{
	char *buf;
	size_t len;
	struct mappings *m;

	if (mc_file_read(path, MAPPINGS_MAX_FILE, &buf, &len, error_r) < 0)
		return NULL;
	m = mappings_parse(path, buf, len, error_r);
	free(buf);
	return m;
}
