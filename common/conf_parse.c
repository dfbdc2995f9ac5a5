/* sealpost.conf file syntax: physical lines (LF or CRLF) joined at a trailing
 * '\' into logical lines, comments and blank lines skipped, each remaining
 * line split into "key = value" and checked against the schema. Pure: bytes
 * in, values or "NAME:LINE: message" out; sp_conf_load only adds the read.
 * One pass over the input, so the work is linear in its size. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/conf_internal.h"
#include "common/xalloc.h"

struct parse_state {
	struct sp_conf *conf;
	const char *file;          /* owned by conf */
	const char *buf;
	size_t len, pos;
	unsigned next_line;        /* physical line number of buf + pos */
	unsigned line_start;       /* first physical line of the logical line */
	char *line;                /* the logical line being assembled */
	size_t line_len, line_cap;
	char **error_r;
};

static int __attribute__((format(printf, 3, 4)))
fail(struct parse_state *st, unsigned line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();  /* out of memory, as sp_xasprintf would */
	va_end(ap);
	*st->error_r = sp_xasprintf("%s:%u: %s", st->file, line, msg);
	free(msg);
	return -1;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Control bytes have no business in a config file and would let one line
 * print as two in a log; a NUL usually means a binary file was named. */
static int check_bytes(struct parse_state *st, const char *p, size_t len, unsigned line)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\0')
			return fail(st, line, "NUL byte in file");
		if (c == '\r')
			return fail(st, line, "carriage return inside a line");
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(st, line, "control character 0x%02x", c);
	}
	return 0;
}

/* Assembles the next logical line into st->line. Returns 1 (a line), 0 (end
 * of input) or -1 (error). A comment line never continues: a '\' closing a
 * comment is text, so a commented-out line cannot swallow the next key. */
static int next_logical_line(struct parse_state *st)
{
	bool continued = false;

	st->line_len = 0;
	while (st->pos < st->len) {
		const char *p = st->buf + st->pos;
		const char *nl = memchr(p, '\n', st->len - st->pos);
		size_t plen = nl != NULL ? (size_t)(nl - p) : st->len - st->pos;
		unsigned line = st->next_line++;

		st->pos += plen + (nl != NULL);
		if (plen > 0 && p[plen - 1] == '\r' && nl != NULL)
			plen--;  /* CRLF */
		if (plen > CONF_MAX_LINE)  /* comments too: no line is that long */
			return fail(st, continued ? st->line_start : line,
				    "line too long (limit 64 KiB)");
		if (check_bytes(st, p, plen, line) < 0)
			return -1;
		while (plen > 0 && is_blank(*p)) {
			p++;
			plen--;
		}
		if (!continued) {
			st->line_start = line;
			if (plen == 0 || *p == '#')
				continue;
		}
		continued = plen > 0 && p[plen - 1] == '\\';
		if (continued)
			plen--;
		if (plen > CONF_MAX_LINE - st->line_len)
			return fail(st, st->line_start, "line too long (limit 64 KiB)");
		memcpy(st->line + st->line_len, p, plen);
		st->line_len += plen;
		if (!continued)
			return 1;
	}
	return continued ? 1 : 0;  /* a '\' on the last line just ends it */
}

static void add_set(struct parse_state *st, const char *key, size_t entry,
		    const struct conf_value *value)
{
	struct sp_conf *conf = st->conf;
	struct conf_set *set;

	if (conf->n_sets == conf->cap_sets) {
		conf->cap_sets = conf->cap_sets ? conf->cap_sets * 2 : 32;
		conf->sets = sp_xrealloc(conf->sets, conf->cap_sets, sizeof(*conf->sets));
	}
	set = &conf->sets[conf->n_sets];
	set->name = sp_xstrdup(key);
	set->entry = entry;
	set->value = *value;
	set->file = st->file;
	set->line = st->line_start;
	conf_index_put(&conf->set_index, set->name, conf->n_sets);
	conf->n_sets++;
}

static int duplicate(struct parse_state *st, const char *key, size_t idx)
{
	const struct conf_set *first = &st->conf->sets[idx];

	if (first->file == st->file)
		return fail(st, st->line_start, "duplicate key '%s' (first set on line %u)",
			    key, first->line);
	return fail(st, st->line_start, "duplicate key '%s' (first set at %s:%u)",
		    key, first->file, first->line);
}

/* key: st->line up to '=' (the line is ours, so it is cut in place). */
static int store(struct parse_state *st, char *key, size_t key_len,
		 const char *value, size_t value_len)
{
	const struct conf_entry *entry;
	char quoted[CONF_QUOTE_MAX], *why;
	struct conf_value parsed;
	size_t idx;

	conf_quote(quoted, sizeof(quoted), key, key_len);
	if (key_len == 0)
		return fail(st, st->line_start, "key syntax: no key before '='");
	if (!conf_name_valid(key, key_len, false))
		return fail(st, st->line_start,
			    "key syntax: '%s' (segments of a-z 0-9 _ - joined by '.')", quoted);
	key[key_len] = '\0';
	if (st->conf->n_sets >= CONF_MAX_KEYS)
		return fail(st, st->line_start, "too many keys (limit %d)", CONF_MAX_KEYS);
	entry = conf_find_entry(st->conf, key, &idx);
	if (entry == NULL)
		return fail(st, st->line_start, "unknown key '%s'", quoted);
	if (conf_index_get(&st->conf->set_index, key, &idx))
		return duplicate(st, quoted, idx);
	if (conf_value_parse(entry->key, key, value, value_len, &parsed, &why) < 0) {
		fail(st, st->line_start, "%s", why);
		free(why);
		return -1;
	}
	add_set(st, key, (size_t)(entry - st->conf->entries), &parsed);
	return 0;
}

static int parse_line(struct parse_state *st)
{
	char *line = st->line, *eq = memchr(line, '=', st->line_len);
	size_t key_len, value_start, value_end = st->line_len;

	if (eq == NULL)
		return fail(st, st->line_start, "missing '=' (expected key = value)");
	key_len = (size_t)(eq - line);
	while (key_len > 0 && is_blank(line[key_len - 1]))
		key_len--;
	value_start = (size_t)(eq - line) + 1;
	while (value_start < value_end && is_blank(line[value_start]))
		value_start++;
	while (value_end > value_start && is_blank(line[value_end - 1]))
		value_end--;
	return store(st, line, key_len, line + value_start, value_end - value_start);
}

/* 1-based line on which offset lies, for the "file too large" message. */
static unsigned line_at(const char *buf, size_t offset)
{
	unsigned line = 1;

	for (const char *p = buf; (p = memchr(p, '\n', offset - (size_t)(p - buf))) != NULL; p++)
		line++;
	return line;
}

static const char *intern_file(struct sp_conf *conf, const char *name)
{
	conf->files = sp_xrealloc(conf->files, conf->n_files + 1, sizeof(*conf->files));
	conf->files[conf->n_files] = sp_xstrdup(name != NULL ? name : "(buffer)");
	return conf->files[conf->n_files++];
}

int sp_conf_parse(struct sp_conf *conf, const char *name, const char *buf, size_t len,
		  char **error_r)
{
	struct parse_state st = {
		.conf = conf, .buf = buf, .len = len, .next_line = 1, .line_start = 1,
		.error_r = error_r,
	};
	int ret;

	st.file = intern_file(conf, name);
	if (len > CONF_MAX_FILE)
		return fail(&st, line_at(buf, CONF_MAX_FILE), "file too large (limit 1 MiB)");
	/* a logical line is never longer than the input, nor than the limit */
	st.line_cap = (len < CONF_MAX_LINE ? len : CONF_MAX_LINE) + 1;
	st.line = sp_xmalloc(st.line_cap);
	while ((ret = next_logical_line(&st)) > 0) {
		st.line[st.line_len] = '\0';
		ret = parse_line(&st);
		if (ret < 0)
			break;
	}
	/* the line buffer may have held a PIN or password */
	sp_free_secret(st.line, st.line_cap);
	return ret < 0 ? -1 : 0;
}

/* Reads at most one byte past the limit: enough for parse to refuse. */
static int read_bounded(int fd, char *buf, size_t cap, size_t *len_r)
{
	size_t len = 0;

	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*len_r = len;
	return 0;
}

int sp_conf_load(struct sp_conf *conf, const char *path, char **error_r)
{
	size_t cap = CONF_MAX_FILE + 1, len = 0;
	char *buf;
	int fd, ret, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		*error_r = sp_xasprintf("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	buf = sp_xmalloc(cap);
	ret = read_bounded(fd, buf, cap, &len);
	saved = errno;
	close(fd);
	if (ret < 0)
		*error_r = sp_xasprintf("%s: cannot read: %s", path, strerror(saved));
	else
		ret = sp_conf_parse(conf, path, buf, len, error_r);
	sp_free_secret(buf, cap);
	return ret;
}
