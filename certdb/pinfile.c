/* sslpassword.conf: "Token name:secret" per line. The file must be a regular
 * file that only its owner can read; secrets live in one buffer that is
 * wiped on free, and each is registered with the logger's redaction list. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "certdb/certdb.h"
#include "common/log.h"
#include "common/xalloc.h"

#define PINFILE_MAX (64u << 10)
#define PINFILE_MAX_ENTRIES 256

struct pin_entry {
	const char *token;   /* into buf */
	const char *secret;  /* into buf */
};

struct sp_pinfile {
	char *buf;      /* the file's bytes, split in place; wiped on free */
	size_t bufsize;
	struct pin_entry *entries;
	size_t count;
};

static int read_locked_down(const char *path, char **buf_r, size_t *len_r, char **error_r)
{
	struct stat st;
	size_t len = 0;
	char *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			*error_r = sp_xasprintf("%s: is a symbolic link; refused", path);
		else
			*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = sp_xasprintf("%s: fstat: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = sp_xasprintf("%s: not a regular file; refused", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		*error_r = sp_xasprintf("%s: mode %04o is group- or world-accessible; refused "
					"(chmod 600 %s)",
					path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	buf = sp_xmalloc(PINFILE_MAX + 1);
	for (;;) {
		ssize_t n = read(fd, buf + len, PINFILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || len + (size_t)n > PINFILE_MAX) {
			*error_r = n < 0 ? sp_xasprintf("%s: read: %s", path, strerror(errno))
					 : sp_xasprintf("%s: larger than %u bytes", path, PINFILE_MAX);
			sp_free_secret(buf, PINFILE_MAX + 1);
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

struct sp_pinfile *sp_pinfile_load(const char *path, char **error_r)
{
	struct sp_pinfile *pf;
	size_t len, lineno = 0;
	char *buf, *p, *end;

	if (read_locked_down(path, &buf, &len, error_r) < 0)
		return NULL;
	pf = sp_xcalloc(1, sizeof(*pf));
	pf->buf = buf;
	pf->bufsize = PINFILE_MAX + 1;
	p = buf;
	end = buf + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *line = p, *colon, *lineend;

		lineno++;
		lineend = nl != NULL ? nl : end;
		*lineend = '\0';
		p = lineend + 1;
		if (lineend > line && lineend[-1] == '\r')
			*--lineend = '\0';
		if (memchr(line, '\0', (size_t)(lineend - line)) != NULL) {
			*error_r = sp_xasprintf("%s:%zu: NUL byte", path, lineno);
			goto fail;
		}
		if (line[strspn(line, " \t")] == '\0' || line[strspn(line, " \t")] == '#')
			continue;
		colon = strchr(line, ':');
		/* never quote the line: it holds a secret */
		if (colon == NULL || colon == line) {
			*error_r = sp_xasprintf("%s:%zu: expected \"Token name:secret\"", path, lineno);
			goto fail;
		}
		*colon = '\0';
		if (colon[1] == '\0') {
			*error_r = sp_xasprintf("%s:%zu: empty secret", path, lineno);
			goto fail;
		}
		for (size_t i = 0; i < pf->count; i++) {
			if (strcmp(pf->entries[i].token, line) == 0) {
				*error_r = sp_xasprintf("%s:%zu: second entry for the same token",
							path, lineno);
				goto fail;
			}
		}
		if (pf->count == PINFILE_MAX_ENTRIES) {
			*error_r = sp_xasprintf("%s:%zu: more than %d entries", path, lineno,
						PINFILE_MAX_ENTRIES);
			goto fail;
		}
		pf->entries = sp_xrealloc(pf->entries, pf->count + 1, sizeof(*pf->entries));
		pf->entries[pf->count].token = line;
		pf->entries[pf->count].secret = colon + 1;
		pf->count++;
		sp_log_add_secret(colon + 1, strlen(colon + 1));
	}
	return pf;
fail:
	sp_pinfile_free(&pf);
	return NULL;
}

void sp_pinfile_free(struct sp_pinfile **pfp)
{
	struct sp_pinfile *pf = *pfp;

	if (pf == NULL)
		return;
	OPENSSL_cleanse(pf->buf, pf->bufsize);
	free(pf->buf);
	free(pf->entries);
	free(pf);
	*pfp = NULL;
}

const char *sp_pinfile_get(const struct sp_pinfile *pf, const char *token)
{
	for (size_t i = 0; i < pf->count; i++) {
		if (strcmp(pf->entries[i].token, token) == 0)
			return pf->entries[i].secret;
	}
	return NULL;
}
