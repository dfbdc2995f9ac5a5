/* IMAP keywords kept the Maildir way, as Dovecot does: the lowercase
 * letters a..z of a file's ":2," info are keyword slots 0..25, named by the
 * mailbox's "dovecot-keywords" file ("<index> <name>" per line).
 *
 * SECURITY: the keywords file is input (another program, a restored backup
 * may have written it): bounded in size, every line checked (index 0..25,
 * the name a valid IMAP atom of at most STORE_KEYWORD_LEN bytes, first
 * line for an index wins); bad lines are skipped and counted. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/store_mailbox.h"

bool store_keyword_valid(const char *name, size_t len)
{
	if (len == 0 || len > STORE_KEYWORD_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		/* RFC 3501 9: flag-keyword = atom; ATOM-CHAR is any CHAR but
		 * atom-specials: ( ) { SP CTL % * " \ ] */
		if (c <= ' ' || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

void store_keywords_clear(struct store_keywords *kw)
{
	for (size_t i = 0; i < STORE_KEYWORDS_MAX; i++) {
		free(kw->name[i]);
		kw->name[i] = NULL;
	}
}

int store_keywords_find(const struct store_keywords *kw, const char *name)
{
	/* keywords compare case-insensitively (atoms, RFC 3501 2.3.2 / RFC 9051 2.3.2) */
	for (int i = 0; i < STORE_KEYWORDS_MAX; i++)
		if (kw->name[i] != NULL && strcasecmp(kw->name[i], name) == 0)
			return i;
	return -1;
}

size_t store_keywords_count(const struct store_keywords *kw)
{
	size_t n = 0;

	for (size_t i = 0; i < STORE_KEYWORDS_MAX; i++)
		n += kw->name[i] != NULL;
	return n;
}

void store_keywords_parse(const char *buf, size_t len, struct store_keywords *kw, size_t *bad_r)
{
	size_t pos = 0, bad = 0;

	store_keywords_clear(kw);
	if (len > STORE_KEYWORDS_FILE_MAX) {
		len = STORE_KEYWORDS_FILE_MAX;
		bad++;
	}
	while (pos < len) {
		const char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos;
		size_t i = 0;
		unsigned idx = 0;

		pos += ll + (nl != NULL);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			continue;
		while (i < ll && i < 3 && line[i] >= '0' && line[i] <= '9')
			idx = idx * 10 + (unsigned)(line[i++] - '0');
		if (i == 0 || i >= ll || line[i] != ' ' || idx >= STORE_KEYWORDS_MAX ||
		    !store_keyword_valid(line + i + 1, ll - i - 1) || kw->name[idx] != NULL) {
			bad++;
			continue;
		}
		kw->name[idx] = sp_xstrndup(line + i + 1, ll - i - 1);
		/* the same name under two indices: the first line names it */
		for (unsigned k = 0; k < STORE_KEYWORDS_MAX; k++)
			if (k != idx && kw->name[k] != NULL &&
			    strcasecmp(kw->name[k], kw->name[idx]) == 0) {
				free(kw->name[idx]);
				kw->name[idx] = NULL;
				bad++;
				break;
			}
	}
	if (bad_r != NULL)
		*bad_r = bad;
}

int store_keywords_load(const char *dir, struct store_keywords *kw, char **error_r)
{
	char path[PATH_MAX], *buf;
	struct stat st;
	size_t got = 0, bad = 0;
	int fd;

	store_keywords_clear(kw);
	if (store_path(path, sizeof(path), "%s/%s", dir, STORE_KEYWORDS_NAME) < 0) {
		*error_r = sp_xstrdup("path too long");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = sp_xasprintf("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	/* read one byte past the bound so that an oversized file is noticed */
	buf = sp_xmalloc(STORE_KEYWORDS_FILE_MAX + 1);
	while (got < STORE_KEYWORDS_FILE_MAX + 1) {
		ssize_t r = read(fd, buf + got, STORE_KEYWORDS_FILE_MAX + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*error_r = sp_xasprintf("%s: read: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	store_keywords_parse(buf, got, kw, &bad);
	free(buf);
	if (bad > 0)
		sp_log(SP_LOG_WARN, "keywords_file", "dir=\"%s\" bad_lines=%zu max_bytes=%u", dir, bad,
		       STORE_KEYWORDS_FILE_MAX);
	return 0;
}

int store_keywords_save(const char *dir, const struct store_keywords *kw, char **error_r)
{
	char *buf = sp_xmalloc(STORE_KEYWORDS_MAX * (STORE_KEYWORD_LEN + 8) + 1);
	size_t len = 0;
	int rc;

	for (size_t i = 0; i < STORE_KEYWORDS_MAX; i++)
		if (kw->name[i] != NULL)
			len += (size_t)sprintf(buf + len, "%zu %s\n", i, kw->name[i]);
	rc = store_file_replace(dir, STORE_KEYWORDS_NAME, buf, len, error_r);
	free(buf);
	return rc;
}

uint32_t store_keywords_from_info(const char *info)
{
	uint32_t mask = 0;

	if (info == NULL || strncmp(info, "2,", 2) != 0)
		return 0;
	for (const char *p = info + 2; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'z')
			mask |= 1u << (*p - 'a');
	return mask;
}
