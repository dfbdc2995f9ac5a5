/* The Maildir store: crash-safe delivery (tmp/<unique>, fsync, rename into
 * new/, fsync new/, and only then success), unique names per the Maildir
 * spec, quota usage from the names' ",S=" sizes. A message is either whole
 * in new/ or absent: a crash leaves at most a stray file in tmp/. */
#include "common/fileio.h"
#include "mailcore/mailcore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "mailcore/mc_file.h"

#define STORE_MAX_TARGETS 1024
#define STORE_MAX_IOV 16

/* Deliveries by this process, the Q part of the unique name (atomic: the
 * store pool's threads deliver in parallel). */
static atomic_ulong store_deliveries;

int store_maildir_path(const char *root, const char *address, char *buf, size_t cap)
{
	const char *at = strrchr(address, '@');
	size_t local;
	int n;

	if (at == NULL)
		return -1;
	local = (size_t)(at - address);
	/* the address becomes directory names: no '/', no "..", nothing odd */
	if (!mc_valid_local_part(address, local) || !mc_valid_hostname(at + 1, strlen(at + 1)))
		return -1;
	n = snprintf(buf, cap, "%s/%s/%.*s/Maildir", root, at + 1, (int)local, address);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int store_maildir_unique(const char *hostname, uint64_t size, char *buf, size_t cap)
{
	struct timeval tv;
	uint64_t rnd;
	char host[256];
	size_t h = 0;
	int n;

	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -1;
	gettimeofday(&tv, NULL);
	/* Maildir spec: '/' and ':' in the host name are written \057 and \072;
	 * ',' too, since ",S=" follows. */
	for (const char *p = hostname; *p != '\0' && h + 5 < sizeof(host); p++) {
		const char *esc = *p == '/' ? "\\057" : *p == ':' ? "\\072" : *p == ',' ? "\\054" : NULL;

		if (esc != NULL) {
			memcpy(host + h, esc, 4);
			h += 4;
		} else if ((unsigned char)*p > 32 && (unsigned char)*p < 127) {
			host[h++] = *p;
		}
	}
	host[h] = '\0';
	n = snprintf(buf, cap, "%lld.M%06ldP%ldQ%luR%016llx.%s,S=%llu", (long long)tv.tv_sec,
		     (long)tv.tv_usec, (long)getpid(), (unsigned long)++store_deliveries,
		     (unsigned long long)rnd,
		     host, (unsigned long long)size);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* mkdir -p with 0700; each directory created is made durable in its parent. */
static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) == 0) {
			char *slash = strrchr(buf, '/');

			if (slash != NULL && slash != buf) {
				*slash = '\0';
				if (sp_fsync_dir(buf) < 0)
					return -1;
				*slash = '/';
			}
		} else if (errno != EEXIST) {
			return -1;
		}
		if (i < len)
			buf[i] = '/';
	}
	return 0;
}

static int ensure_maildir(const char *maildir)
{
	static const char *const subs[] = {"tmp", "new", "cur"};
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/new", maildir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", maildir, subs[i]);
		if (mkdir_p(path) < 0)
			return -1;
	}
	return 0;
}

static int write_all(int fd, const struct iovec *iov_in, size_t n_iov)
{
	struct iovec iov[STORE_MAX_IOV + 1];
	size_t first = 0;

	if (n_iov > STORE_MAX_IOV + 1) {
		errno = EINVAL;
		return -1;
	}
	memcpy(iov, iov_in, n_iov * sizeof(*iov));
	while (first < n_iov) {
		ssize_t w;

		if (iov[first].iov_len == 0) {
			first++;
			continue;
		}
		w = writev(fd, iov + first, (int)(n_iov - first));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (w > 0 && first < n_iov) {
			if ((size_t)w >= iov[first].iov_len) {
				w -= (ssize_t)iov[first].iov_len;
				iov[first].iov_len = 0;
				first++;
			} else {
				iov[first].iov_base = (char *)iov[first].iov_base + w;
				iov[first].iov_len -= (size_t)w;
				w = 0;
			}
		}
	}
	return 0;
}

static uint64_t size_from_name(const char *name, bool *found)
{
	const char *p = strstr(name, ",S=");
	uint64_t v = 0;

	*found = false;
	if (p == NULL)
		return 0;
	p += 3;
	if (*p < '0' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9') {
		if (v > UINT64_MAX / 10)
			return 0;
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	if (*p != '\0' && *p != ',' && *p != ':')
		return 0;
	*found = true;
	return v;
}

int store_maildir_usage(const char *maildir, uint64_t *bytes_r)
{
	static const char *const subs[] = {"new", "cur"};
	uint64_t total = 0;

	for (size_t i = 0; i < 2; i++) {
		char path[PATH_MAX];
		DIR *d;
		struct dirent *de;

		if (snprintf(path, sizeof(path), "%s/%s", maildir, subs[i]) >= (int)sizeof(path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		d = opendir(path);
		if (d == NULL) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		errno = 0;
		while ((de = readdir(d)) != NULL) {
			bool found;
			uint64_t sz;

			if (de->d_name[0] == '.')
				continue;
			sz = size_from_name(de->d_name, &found);
			if (!found) {
				struct stat st;

				if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
					continue; /* expunged meanwhile */
				sz = (uint64_t)st.st_size;
			}
			total += sz;
		}
		closedir(d);
	}
	*bytes_r = total;
	return 0;
}

struct pending {
	char tmp[PATH_MAX];
	char new_path[PATH_MAX];
	bool in_tmp, in_new;
};

static void undo(struct pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i].in_new && unlink(p[i].new_path) == 0)
			p[i].in_new = false;
		if (p[i].in_tmp && unlink(p[i].tmp) == 0)
			p[i].in_tmp = false;
	}
}

enum store_status store_maildir_deliver(const struct store_target *targets, size_t n_targets,
					const struct iovec *parts, size_t n_parts,
					const char *hostname, char *name_r, size_t name_cap,
					char **error_r)
{
	struct pending *p;
	uint64_t body = 0;
	enum store_status st = STORE_TEMPFAIL;
	size_t i;

	if (n_targets == 0 || n_targets > STORE_MAX_TARGETS || n_parts > STORE_MAX_IOV) {
		*error_r = sp_xasprintf("bad delivery request (%zu targets, %zu parts)", n_targets,
					n_parts);
		return STORE_TEMPFAIL;
	}
	for (i = 0; i < n_parts; i++)
		body += parts[i].iov_len;
	p = sp_xcalloc(n_targets, sizeof(*p));
	/* 1: every copy written and fsynced in tmp/ */
	for (i = 0; i < n_targets; i++) {
		const struct store_target *t = &targets[i];
		uint64_t size = body + t->prefix_len;
		struct iovec iov[STORE_MAX_IOV + 1];
		char name[512];
		int fd;

		if (ensure_maildir(t->maildir) < 0) {
			*error_r = sp_xasprintf("%s: cannot create Maildir: %s", t->maildir,
						strerror(errno));
			goto fail;
		}
		if (t->quota > 0) {
			uint64_t used;

			if (store_maildir_usage(t->maildir, &used) < 0) {
				*error_r = sp_xasprintf("%s: cannot read usage: %s", t->maildir,
							strerror(errno));
				goto fail;
			}
			if (used + size > t->quota) {
				*error_r = sp_xasprintf("%s: over quota (%llu + %llu > %llu)", t->maildir,
							(unsigned long long)used, (unsigned long long)size,
							(unsigned long long)t->quota);
				st = STORE_OVER_QUOTA;
				goto fail;
			}
		}
		if (store_maildir_unique(hostname, size, name, sizeof(name)) < 0 ||
		    snprintf(p[i].tmp, sizeof(p[i].tmp), "%s/tmp/%s", t->maildir, name) >=
			    (int)sizeof(p[i].tmp) ||
		    snprintf(p[i].new_path, sizeof(p[i].new_path), "%s/new/%s", t->maildir, name) >=
			    (int)sizeof(p[i].new_path)) {
			*error_r = sp_xasprintf("%s: cannot make a unique name", t->maildir);
			goto fail;
		}
		if (i == 0 && name_r != NULL && name_cap > 0)
			snprintf(name_r, name_cap, "%s", name);
		fd = open(p[i].tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			*error_r = sp_xasprintf("%s: %s", p[i].tmp, strerror(errno));
			goto fail;
		}
		p[i].in_tmp = true;
		iov[0].iov_base = (void *)t->prefix;
		iov[0].iov_len = t->prefix_len;
		memcpy(iov + 1, parts, n_parts * sizeof(*parts));
		if (write_all(fd, iov, n_parts + 1) < 0 || fsync(fd) < 0) {
			*error_r = sp_xasprintf("%s: write: %s", p[i].tmp, strerror(errno));
			close(fd);
			goto fail;
		}
		if (close(fd) < 0) {
			*error_r = sp_xasprintf("%s: close: %s", p[i].tmp, strerror(errno));
			goto fail;
		}
	}
	/* 2: into new/ (rename is atomic: a reader sees all of it or nothing) */
	for (i = 0; i < n_targets; i++) {
		if (rename(p[i].tmp, p[i].new_path) < 0) {
			*error_r = sp_xasprintf("%s: rename: %s", p[i].tmp, strerror(errno));
			goto fail;
		}
		p[i].in_tmp = false;
		p[i].in_new = true;
	}
	/* 3: the renames made durable */
	for (i = 0; i < n_targets; i++) {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s/new", targets[i].maildir);
		if (sp_fsync_dir(dir) < 0) {
			*error_r = sp_xasprintf("%s: fsync: %s", dir, strerror(errno));
			goto fail;
		}
	}
	free(p);
	return STORE_OK;
fail:
	/* a full disk (or quota, or RLIMIT_FSIZE) is its own temporary failure:
	 * RFC 3463 4.3.1 */
	if (st == STORE_TEMPFAIL && (errno == ENOSPC || errno == EDQUOT || errno == EFBIG))
		st = STORE_NOSPACE;
	undo(p, n_targets);
	free(p);
	return st;
}
