/* The certificate database's index file: a pure parser (buffer in, entries
 * or an error naming the line out) and the matching serializer. See
 * certdb/certdb.h for the format. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "certdb/certdb_index.h"
#include "common/xalloc.h"

/* printable UTF-8: no C0/C1 controls, DEL, TAB; well-formed sequences only */
static bool utf8_printable(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* overlong, surrogates, beyond U+10FFFF, C1 controls */
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			return false;
		i += n + 1;
	}
	return true;
}

int sp_certdb_relpath_ok(const char *path)
{
	const char *seg = path;

	if (path[0] == '\0' || path[0] == '/' || strlen(path) > 1024)
		return 0;
	for (const char *p = path; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	}
	for (;;) {
		const char *end = strchr(seg, '/');
		size_t n = end != NULL ? (size_t)(end - seg) : strlen(seg);

		if (n == 0 || (n == 2 && seg[0] == '.' && seg[1] == '.') ||
		    (n == 1 && seg[0] == '.'))
			return 0;
		if (end == NULL)
			return 1;
		seg = end + 1;
	}
}

static int nickname_check(const char *nick, char **error_r)
{
	size_t len = strlen(nick);

	if (len == 0 || len > SP_CERTDB_MAX_NICKNAME) {
		*error_r = sp_xasprintf("nickname must be 1..%d bytes", SP_CERTDB_MAX_NICKNAME);
		return -1;
	}
	if (!utf8_printable(nick, len)) {
		*error_r = sp_xstrdup("nickname is not printable UTF-8");
		return -1;
	}
	if (strchr(nick, ':') != NULL) {
		*error_r = sp_xstrdup("nickname contains ':' (reserved for \"Token:nickname\")");
		return -1;
	}
	return 0;
}

static int locator_check(const char *loc, char **error_r)
{
	if (strncmp(loc, "file:", 5) == 0) {
		if (!sp_certdb_relpath_ok(loc + 5)) {
			*error_r = sp_xstrdup("key locator file: needs a relative path inside the db "
					      "(no \"..\", not absolute)");
			return -1;
		}
		return 0;
	}
	if (strncmp(loc, "pkcs11:", 7) == 0) {
		/* RFC 7512: the URI itself is checked by pkcs11/ when used; here
		 * only that it is printable ASCII without blanks */
		for (const char *p = loc; *p != '\0'; p++) {
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
				*error_r = sp_xstrdup("pkcs11: URI with a blank or non-ASCII byte");
				return -1;
			}
		}
		return 0;
	}
	*error_r = sp_xstrdup("key locator must start with \"file:\" or \"pkcs11:\"");
	return -1;
}

static int trust_parse(const char *s, unsigned *trust_r, char **error_r)
{
	unsigned trust = 0;

	if (strcmp(s, "-") == 0) {
		*trust_r = 0;
		return 0;
	}
	while (*s != '\0') {
		const char *end = strchr(s, ',');
		size_t n = end != NULL ? (size_t)(end - s) : strlen(s);

		if (n == 6 && memcmp(s, "server", 6) == 0) {
			trust |= SP_CERTDB_TRUST_SERVER;
		} else if (n == 6 && memcmp(s, "client", 6) == 0) {
			trust |= SP_CERTDB_TRUST_CLIENT;
		} else {
			*error_r = sp_xstrdup("trust must be \"-\" or a comma list of server, client");
			return -1;
		}
		if (end == NULL)
			break;
		s = end + 1;
		if (*s == '\0') {
			*error_r = sp_xstrdup("trust list ends with ','");
			return -1;
		}
	}
	if (trust == 0) {
		*error_r = sp_xstrdup("empty trust");
		return -1;
	}
	*trust_r = trust;
	return 0;
}

int sp_certdb_entry_check(const struct sp_certdb_entry *e, char **error_r)
{
	if (e->nickname == NULL || e->cert_file == NULL) {
		*error_r = sp_xstrdup("entry without nickname or cert file");
		return -1;
	}
	if (nickname_check(e->nickname, error_r) < 0)
		return -1;
	if (!sp_certdb_relpath_ok(e->cert_file)) {
		*error_r = sp_xstrdup("cert file must be a relative path inside the db "
				      "(no \"..\", not absolute)");
		return -1;
	}
	switch (e->kind) {
	case SP_CERTDB_CERT:
		if (e->key_locator == NULL) {
			*error_r = sp_xstrdup("cert entry without key locator");
			return -1;
		}
		return locator_check(e->key_locator, error_r);
	case SP_CERTDB_CA:
		if ((e->trust & ~(unsigned)(SP_CERTDB_TRUST_SERVER | SP_CERTDB_TRUST_CLIENT)) != 0) {
			*error_r = sp_xstrdup("unknown trust bits");
			return -1;
		}
		return 0;
	}
	*error_r = sp_xstrdup("unknown entry kind");
	return -1;
}

void sp_certdb_entry_copy(struct sp_certdb_entry *dst, const struct sp_certdb_entry *e)
{
	dst->kind = e->kind;
	dst->nickname = sp_xstrdup(e->nickname);
	dst->cert_file = sp_xstrdup(e->cert_file);
	dst->key_locator = e->kind == SP_CERTDB_CERT ? sp_xstrdup(e->key_locator) : NULL;
	dst->trust = e->kind == SP_CERTDB_CA ? e->trust : 0;
}

void sp_certdb_entries_free(struct sp_certdb_entry *entries, size_t count)
{
	if (entries == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free(entries[i].nickname);
		free(entries[i].cert_file);
		free(entries[i].key_locator);
	}
	free(entries);
}

#define MAX_FIELDS 4

/* Parses one line (no LF, NUL-free) into e. */
static int parse_line(char *line, struct sp_certdb_entry *e, char **error_r)
{
	char *field[MAX_FIELDS + 1];
	size_t nf = 0;
	char *p = line;

	for (;;) {
		char *tab = strchr(p, '\t');

		if (nf == MAX_FIELDS) {
			*error_r = sp_xstrdup("too many fields (expected 4, TAB-separated)");
			return -1;
		}
		field[nf++] = p;
		if (tab == NULL)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	if (nf != MAX_FIELDS) {
		*error_r = sp_xasprintf("%zu field%s, expected 4 (TAB-separated)", nf,
					nf == 1 ? "" : "s");
		return -1;
	}
	memset(e, 0, sizeof(*e));
	if (strcmp(field[0], "cert") == 0) {
		e->kind = SP_CERTDB_CERT;
		e->key_locator = field[3];
	} else if (strcmp(field[0], "ca") == 0) {
		e->kind = SP_CERTDB_CA;
		if (trust_parse(field[3], &e->trust, error_r) < 0)
			return -1;
	} else {
		*error_r = sp_xstrdup("record type must be \"cert\" or \"ca\"");
		return -1;
	}
	e->nickname = field[1];
	e->cert_file = field[2];
	if (sp_certdb_entry_check(e, error_r) < 0)
		return -1;
	e->nickname = sp_xstrdup(field[1]);
	e->cert_file = sp_xstrdup(field[2]);
	e->key_locator = e->kind == SP_CERTDB_CERT ? sp_xstrdup(field[3]) : NULL;
	return 0;
}

int sp_certdb_index_parse(const char *buf, size_t len, struct sp_certdb_entry **entries_r,
			  size_t *count_r, char **error_r)
{
	struct sp_certdb_entry *entries = NULL;
	size_t count = 0, cap = 0, lineno = 0, pos = 0;
	char line[SP_CERTDB_MAX_LINE + 1];
	char *why = NULL;

	if (len > SP_CERTDB_MAX_INDEX) {
		*error_r = sp_xasprintf("index: larger than %u bytes", SP_CERTDB_MAX_INDEX);
		return -1;
	}
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (buf + pos)) : len - pos;
		struct sp_certdb_entry e;

		lineno++;
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--;  /* tolerate CRLF from editors */
		if (n > SP_CERTDB_MAX_LINE) {
			why = sp_xasprintf("line longer than %d bytes", SP_CERTDB_MAX_LINE);
			goto fail;
		}
		if (memchr(buf + pos, '\0', n) != NULL) {
			why = sp_xstrdup("NUL byte");
			goto fail;
		}
		memcpy(line, buf + pos, n);
		line[n] = '\0';
		pos += (nl != NULL ? (size_t)(nl - (buf + pos)) + 1 : len - pos);

		if (line[strspn(line, " \t")] == '\0' || line[strspn(line, " \t")] == '#')
			continue;
		if (count == SP_CERTDB_MAX_ENTRIES) {
			why = sp_xasprintf("more than %d entries", SP_CERTDB_MAX_ENTRIES);
			goto fail;
		}
		if (parse_line(line, &e, &why) < 0)
			goto fail;
		for (size_t i = 0; i < count; i++) {
			if (strcmp(entries[i].nickname, e.nickname) == 0) {
				why = sp_xstrdup("duplicate nickname");
				free(e.nickname);
				free(e.cert_file);
				free(e.key_locator);
				goto fail;
			}
		}
		if (count == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			entries = sp_xrealloc(entries, cap, sizeof(*entries));
		}
		entries[count++] = e;
	}
	*entries_r = entries;
	*count_r = count;
	return 0;
fail:
	*error_r = sp_xasprintf("index:%zu: %s", lineno, why);
	free(why);
	sp_certdb_entries_free(entries, count);
	return -1;
}

char *sp_certdb_index_format(const struct sp_certdb_entry *entries, size_t count, size_t *len_r)
{
	size_t cap = 128, len = 0;
	char *out;

	for (size_t i = 0; i < count; i++)
		cap += strlen(entries[i].nickname) + strlen(entries[i].cert_file) +
		       (entries[i].key_locator != NULL ? strlen(entries[i].key_locator) : 0) + 32;
	out = sp_xmalloc(cap);
	len = (size_t)snprintf(out, cap, "# Sealpost certificate database index (TAB-separated)\n");
	for (size_t i = 0; i < count; i++) {
		const struct sp_certdb_entry *e = &entries[i];
		const char *last;
		char trust[32];

		if (e->kind == SP_CERTDB_CERT) {
			last = e->key_locator;
		} else {
			trust[0] = '\0';
			if (e->trust == 0)
				strcpy(trust, "-");
			if (e->trust & SP_CERTDB_TRUST_SERVER)
				strcat(trust, "server");
			if (e->trust & SP_CERTDB_TRUST_CLIENT)
				strcat(trust, (e->trust & SP_CERTDB_TRUST_SERVER) ? ",client" : "client");
			last = trust;
		}
		len += (size_t)snprintf(out + len, cap - len, "%s\t%s\t%s\t%s\n",
					e->kind == SP_CERTDB_CERT ? "cert" : "ca", e->nickname,
					e->cert_file, last);
	}
	*len_r = len;
	return out;
}
