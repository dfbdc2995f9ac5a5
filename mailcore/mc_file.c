/* Reading mailcore's small text files (users, aliases, mappings) and the
 * name checks they share. Every read is bounded. */
#include "mailcore/mc_file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"

int mc_file_read(const char *path, size_t max, char **buf_r, size_t *len_r, char **error_r)
{
	struct stat st;
	char *buf;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		*error_r = sp_xasprintf("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = sp_xasprintf("%s: cannot stat: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = sp_xasprintf("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > max) {
		*error_r = sp_xasprintf("%s: larger than %zu bytes", path, max);
		close(fd);
		return -1;
	}
	buf = sp_xmalloc((size_t)st.st_size + 1);
	/* Read to EOF but never past max: the file may grow under us. */
	for (;;) {
		ssize_t n;

		if (len == (size_t)st.st_size) {
			char extra;

			n = read(fd, &extra, 1);
			if (n == 0)
				break;
			if (n < 0 && errno == EINTR)
				continue;
			*error_r = n < 0 ? sp_xasprintf("%s: read: %s", path, strerror(errno))
					 : sp_xasprintf("%s: changed while being read", path);
			free(buf);
			close(fd);
			return -1;
		}
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = sp_xasprintf("%s: read: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	return 0;
}

void mc_lines_init(struct mc_lines *it, const char *buf, size_t len)
{
	it->buf = buf;
	it->len = len;
	it->pos = 0;
	it->lineno = 0;
}

bool mc_lines_next(struct mc_lines *it, const char **line_r, size_t *len_r)
{
	const char *start, *nl;
	size_t n;

	if (it->pos >= it->len)
		return false;
	start = it->buf + it->pos;
	nl = memchr(start, '\n', it->len - it->pos);
	n = nl != NULL ? (size_t)(nl - start) : it->len - it->pos;
	it->pos += n + (nl != NULL ? 1 : 0);
	if (n > 0 && start[n - 1] == '\r')
		n--;
	it->lineno++;
	*line_r = start;
	*len_r = n;
	return true;
}

bool mc_valid_hostname(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
			if (label == 0 && c == '-')
				return false;
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[n - 1] != '-';
}

bool mc_valid_local_part(const char *s, size_t n)
{
	if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.' && s[i + 1] == '.')
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '+' || c == '-'))
			return false;
	}
	return true;
}

int mc_normalize_address(const char *s, size_t n, char *buf, size_t cap)
{
	const char *at;
	size_t local;

	if (n + 1 > cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	buf[n] = '\0';
	at = memrchr(buf, '@', n);
	if (at == NULL)
		return -1;
	local = (size_t)(at - buf);
	if (!mc_valid_local_part(buf, local) || !mc_valid_hostname(at + 1, n - local - 1))
		return -1;
	return 0;
}
