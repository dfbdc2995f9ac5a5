/* The per-mailbox UID list (RFC 3501 2.3.1.1: UIDs strictly ascending,
 * never reused while UIDVALIDITY stays): parsing, loading, appending new
 * UIDs (write + fsync), the durable replace (temp, fsync, rename, fsync dir)
 * it and the subscriptions use, and the sweep of replaces cut short. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/store_mailbox.h"

#define UIDLIST_MAGIC "sealpost-uidlist 1 "
#define UIDLIST_MAX_FILE (256u * 1024 * 1024)
#define UIDLIST_MAX_BASE 255
#define UIDLIST_NEXT_WIDTH 10 /* digits of the header's UIDNEXT: any u32 */

int store_path(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void store_uidlist_clear(struct store_uidlist *ul)
{
	for (size_t i = 0; i < ul->n; i++)
		free(ul->e[i].base);
	free(ul->e);
	memset(ul, 0, sizeof(*ul));
}

int store_uidlist_add(struct store_uidlist *ul, uint32_t uid, const char *base)
{
	if (uid == 0 || (ul->n > 0 && uid <= ul->e[ul->n - 1].uid) ||
	    ul->n >= STORE_MAILBOX_MAX_MESSAGES)
		return -1;
	if (ul->n == ul->cap) {
		ul->cap = ul->cap == 0 ? 64 : ul->cap * 2;
		ul->e = sp_xrealloc(ul->e, ul->cap, sizeof(*ul->e));
	}
	ul->e[ul->n].uid = uid;
	ul->e[ul->n].base = sp_xstrdup(base);
	ul->n++;
	return 0;
}

/* A decimal u32 ending at a blank or line end. */
static int parse_u32(const char **p, const char *end, uint32_t *v)
{
	uint64_t x = 0;
	const char *s = *p;

	if (s >= end || *s < '0' || *s > '9')
		return -1;
	while (s < end && *s >= '0' && *s <= '9') {
		x = x * 10 + (uint64_t)(*s++ - '0');
		if (x > UINT32_MAX)
			return -1;
	}
	*v = (uint32_t)x;
	*p = s;
	return 0;
}

static bool base_char(char c)
{
	/* what a Maildir unique name may hold: printable, no '/', no ':' */
	return c > ' ' && c < 127 && c != '/' && c != ':';
}

int store_uidlist_parse(const char *buf, size_t len, struct store_uidlist *ul, char **error_r)
{
	const char *p = buf, *end = buf + len;
	size_t line = 1;
	uint32_t header_next;

	store_uidlist_clear(ul);
	if (len < sizeof(UIDLIST_MAGIC) - 1 || memcmp(buf, UIDLIST_MAGIC, sizeof(UIDLIST_MAGIC) - 1) != 0) {
		*error_r = sp_xstrdup("not a UID list (bad first line)");
		return -1;
	}
	p += sizeof(UIDLIST_MAGIC) - 1;
	if (parse_u32(&p, end, &ul->uidvalidity) < 0 || p >= end || *p++ != ' ' ||
	    (ul->next_off = (size_t)(p - buf), parse_u32(&p, end, &header_next)) < 0 ||
	    (ul->next_len = (size_t)(p - buf) - ul->next_off, p >= end) || *p++ != '\n' ||
	    ul->uidvalidity == 0 || header_next == 0) {
		*error_r = sp_xstrdup("line 1: bad header");
		goto fail;
	}
	ul->uidnext = header_next;
	while (p < end) {
		uint32_t uid;
		const char *b;
		char base[UIDLIST_MAX_BASE + 1];

		line++;
		/* a last line without its newline is an append cut short by a
		 * crash: never acknowledged, so never seen; it is left out */
		if (memchr(p, '\n', (size_t)(end - p)) == NULL)
			break;
		if (parse_u32(&p, end, &uid) < 0 || p >= end || *p++ != ' ')
			goto bad;
		b = p;
		while (p < end && base_char(*p))
			p++;
		if (p == b || (size_t)(p - b) > UIDLIST_MAX_BASE || p >= end || *p != '\n')
			goto bad;
		memcpy(base, b, (size_t)(p - b));
		base[p - b] = '\0';
		p++;
		/* appended lines may pass the header's UIDNEXT (a lower bound);
		 * UINT32_MAX never: there would be no UIDNEXT after it */
		if (uid == UINT32_MAX || store_uidlist_add(ul, uid, base) < 0)
			goto bad;
		if (uid >= ul->uidnext)
			ul->uidnext = uid + 1;
	}
	ul->valid_len = (size_t)(p - buf);
	return 0;
bad:
	*error_r = sp_xasprintf("line %zu: bad entry (or UIDs not ascending)", line);
fail:
	store_uidlist_clear(ul);
	return -1;
}

int store_uidlist_load(const char *dir, struct store_uidlist *ul, char **error_r)
{
	char path[PATH_MAX], *buf;
	struct stat st;
	size_t got = 0;
	int fd, rc;

	store_uidlist_clear(ul);
	if (snprintf(path, sizeof(path), "%s/%s", dir, STORE_UIDLIST_NAME) >= (int)sizeof(path)) {
		*error_r = sp_xstrdup("path too long");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > UIDLIST_MAX_FILE) {
		*error_r = sp_xasprintf("%s: not a regular file or too large", path);
		close(fd);
		return -1;
	}
	buf = sp_xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	rc = store_uidlist_parse(buf, got, ul, error_r);
	ul->file_size = got;
	free(buf);
	if (rc < 0) {
		char *why = *error_r;

		*error_r = sp_xasprintf("%s: %s", path, why);
		free(why);
	}
	return rc;
}

/* All of buf at offset at; short writes and EINTR retried. */
static int pwrite_all(int fd, const char *buf, size_t len, off_t at)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = pwrite(fd, buf + off, len - off, at + (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int store_file_replace(const char *dir, const char *name, const char *buf, size_t len,
		       char **error_r)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
	    /* pid and thread: two pool threads may replace files in the
	     * same directory at once (two mailboxes opened for the first
	     * time both write the root's UIDVALIDITY file) */
	    snprintf(tmp, sizeof(tmp), "%s/%s.tmp.%ld.%ld", dir, name, (long)getpid(),
		     (long)gettid()) >= (int)sizeof(tmp)) {
		*error_r = sp_xstrdup("path too long");
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = sp_xasprintf("%s: %s", tmp, strerror(errno));
		return -1;
	}
	if (pwrite_all(fd, buf, len, 0) < 0) {
		*error_r = sp_xasprintf("%s: write: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fsync(fd) < 0) {
		*error_r = sp_xasprintf("%s: fsync: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		*error_r = sp_xasprintf("%s: close: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		*error_r = sp_xasprintf("%s: rename: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fsync_path(dir) < 0) {
		*error_r = sp_xasprintf("%s: fsync: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

int store_uidlist_save(const char *dir, const struct store_uidlist *ul, char **error_r)
{
	size_t cap = 64, len;
	char *buf;
	int rc;

	for (size_t i = 0; i < ul->n; i++)
		cap += 12 + strlen(ul->e[i].base);
	buf = sp_xmalloc(cap);
	/* UIDNEXT fixed-width, so that an append can update it in place */
	len = (size_t)snprintf(buf, cap, UIDLIST_MAGIC "%u %0*u\n", ul->uidvalidity,
			       UIDLIST_NEXT_WIDTH, ul->uidnext);
	for (size_t i = 0; i < ul->n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%u %s\n", ul->e[i].uid, ul->e[i].base);
	rc = store_file_replace(dir, STORE_UIDLIST_NAME, buf, len, error_r);
	free(buf);
	return rc;
}

int store_uidlist_append(const char *dir, const struct store_uidlist *ul,
			 const struct store_uid_entry *e, size_t n, char **error_r)
{
	char path[PATH_MAX], *buf, next[UIDLIST_NEXT_WIDTH + 1];
	size_t cap = 1, len = 0, expect_size = ul->file_size;
	struct stat st;
	int fd, rc = -1;

	/* a header of the older writer (UIDNEXT not fixed-width), or a torn
	 * last line (the new lines would join it): written whole instead */
	if (n == 0 || ul->next_len != UIDLIST_NEXT_WIDTH || ul->valid_len != ul->file_size ||
	    e[n - 1].uid == UINT32_MAX)
		return 1;

	if (store_path(path, sizeof(path), "%s/%s", dir, STORE_UIDLIST_NAME) < 0) {
		*error_r = sp_xstrdup("path too long");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	/* a torn last line (or a file that is not the one read) would join
	 * the new lines to it: the caller writes the list whole instead */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != expect_size) {
		close(fd);
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		cap += 12 + strlen(e[i].base);
	buf = sp_xmalloc(cap);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%u %s\n", e[i].uid, e[i].base);
	/* the header's UIDNEXT first: a kill between the two leaves it ahead
	 * of the lines (UIDs skipped, never reused); readers take the larger
	 * of it and the last line's UID + 1 whatever order reached the disk */
	snprintf(next, sizeof(next), "%0*u", UIDLIST_NEXT_WIDTH, e[n - 1].uid + 1);
	if (pwrite_all(fd, next, UIDLIST_NEXT_WIDTH, (off_t)ul->next_off) < 0 ||
	    pwrite_all(fd, buf, len, (off_t)expect_size) < 0) {
		*error_r = sp_xasprintf("%s: write: %s", path, strerror(errno));
		goto undo;
	}
	if (fsync(fd) < 0) {
		*error_r = sp_xasprintf("%s: fsync: %s", path, strerror(errno));
		goto undo;
	}
	rc = 0;
	goto out;
undo:
	/* nothing of this append was acknowledged: cut it off again (the
	 * reader would drop a torn line anyway) */
	if (ftruncate(fd, (off_t)expect_size) < 0)
		sp_log(SP_LOG_WARN, "uidlist_truncate", "path=\"%s\" error=\"%s\"", path,
		       strerror(errno));
out:
	free(buf);
	close(fd);
	return rc;
}

/* "<name>.tmp.<pid>.<tid>" of a store_file_replace for one of our files:
 * the pid, or 0 when the name is anything else. */
static long replace_tmp_pid(const char *entry)
{
	static const char *const names[] = {STORE_UIDLIST_NAME, STORE_KEYWORDS_NAME,
					    STORE_SUBSCRIPTIONS_NAME, STORE_UIDVALIDITY_NAME};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t l = strlen(names[i]);
		const char *p = entry + l + 5;
		long pid = 0;
		int digits;

		if (strncmp(entry, names[i], l) != 0 || strncmp(entry + l, ".tmp.", 5) != 0)
			continue;
		for (digits = 0; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
			pid = pid * 10 + (*p - '0');
		if (digits == 0 || *p++ != '.' || pid <= 0)
			return 0;
		for (digits = 0; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
			;
		return digits > 0 && *p == '\0' ? pid : 0;
	}
	return 0;
}

size_t store_replace_tmp_sweep(const char *dir)
{
	DIR *dh = opendir(dir);
	struct dirent *de;
	time_t now = time(NULL);
	size_t removed = 0;

	if (dh == NULL)
		return 0;
	while ((de = readdir(dh)) != NULL) {
		long pid = replace_tmp_pid(de->d_name);
		struct stat st;
		bool dead;

		if (pid == 0 || fstatat(dirfd(dh), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		/* a live writer's file stays; one older than an hour is stale
		 * even so (its pid was reused) */
		dead = pid != (long)getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
		if (!dead && st.st_mtime + STORE_REPLACE_TMP_MAX_AGE > now)
			continue;
		if (unlinkat(dirfd(dh), de->d_name, 0) == 0) {
			removed++;
			sp_log(SP_LOG_INFO, "store_tmp_removed", "dir=\"%s\" file=\"%s\"", dir,
			       de->d_name);
		}
	}
	closedir(dh);
	return removed;
}
