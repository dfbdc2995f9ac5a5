/* A user's folders on Maildir++ (".Name" directories under the Maildir,
 * '.' as the hierarchy delimiter): listing, create, delete, rename, the
 * subscriptions file, and quota usage summed over every folder. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "mailcore/mailcore.h"
#include "mailcore/store_mailbox.h"

#define SUBSCRIPTIONS_MAX_FILE (1024 * 1024)

void store_names_free(char **names, size_t n)
{
	if (names == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_maildir(const char *dir)
{
	char cur[PATH_MAX];
	struct stat st;

	store_path(cur, sizeof(cur), "%s/cur", dir);
	return stat(cur, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The folder names (without INBOX), sorted. */
static enum store_mb_result list_folders(const char *maildir, char ***names_r, size_t *n_r,
					 char **error_r)
{
	DIR *dh = opendir(maildir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	*names_r = NULL;
	*n_r = 0;
	if (dh == NULL) {
		if (errno == ENOENT)
			return STORE_MB_OK;
		*error_r = sp_xasprintf("%s: %s", maildir, strerror(errno));
		return STORE_MB_IOERR;
	}
	while ((de = readdir(dh)) != NULL) {
		char dir[PATH_MAX];

		if (de->d_name[0] != '.' || !store_mailbox_name_valid(de->d_name + 1) ||
		    store_mailbox_is_inbox(de->d_name + 1))
			continue;
		store_path(dir, sizeof(dir), "%s/%s", maildir, de->d_name);
		if (!is_maildir(dir))
			continue;
		if (n == STORE_MAX_FOLDERS)
			break;
		names = sp_xrealloc(names, n + 1, sizeof(*names));
		names[n++] = sp_xstrdup(de->d_name + 1);
	}
	closedir(dh);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
	*names_r = names;
	*n_r = n;
	return STORE_MB_OK;
}

enum store_mb_result store_folder_list(const char *maildir, char ***names_r, size_t *n_r,
				       char **error_r)
{
	char **folders, **all;
	size_t n;
	enum store_mb_result rc = list_folders(maildir, &folders, &n, error_r);

	if (rc != STORE_MB_OK)
		return rc;
	all = sp_xcalloc(n + 1, sizeof(*all));
	all[0] = sp_xstrdup("INBOX");
	for (size_t i = 0; i < n; i++)
		all[i + 1] = folders[i];
	free(folders);
	*names_r = all;
	*n_r = n + 1;
	return STORE_MB_OK;
}

enum store_mb_result store_folder_create(const char *maildir, const char *name, char **error_r)
{
	char dir[PATH_MAX], marker[PATH_MAX];
	char **folders;
	size_t n;
	int fd;

	if (store_mailbox_is_inbox(name)) {
		*error_r = sp_xstrdup("INBOX always exists");
		return STORE_MB_EXISTS;
	}
	if (store_mailbox_dir(maildir, name, dir, sizeof(dir)) < 0) {
		*error_r = sp_xstrdup("bad mailbox name");
		return STORE_MB_BADNAME;
	}
	if (is_maildir(dir)) {
		*error_r = sp_xasprintf("mailbox %s exists", name);
		return STORE_MB_EXISTS;
	}
	if (list_folders(maildir, &folders, &n, error_r) != STORE_MB_OK)
		return STORE_MB_IOERR;
	store_names_free(folders, n);
	if (n >= STORE_MAX_FOLDERS) {
		*error_r = sp_xasprintf("too many mailboxes (%d)", STORE_MAX_FOLDERS);
		return STORE_MB_IOERR;
	}
	/* the user's Maildir itself may not exist yet */
	if (store_make_maildir(maildir, NULL) < 0 && errno != EEXIST) {
		char parent[PATH_MAX], *slash;

		snprintf(parent, sizeof(parent), "%s", maildir);
		for (char *p = parent + 1; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
			*slash = '\0';
			mkdir(parent, 0700);
			*slash = '/';
		}
		if (store_make_maildir(maildir, NULL) < 0) {
			*error_r = sp_xasprintf("%s: %s", maildir, strerror(errno));
			return STORE_MB_IOERR;
		}
	}
	if (store_make_maildir(dir, maildir) < 0) {
		*error_r = sp_xasprintf("%s: %s", dir, strerror(errno));
		return STORE_MB_IOERR;
	}
	/* Maildir++: the marker that says this is a folder, not a Maildir root */
	store_path(marker, sizeof(marker), "%s/maildirfolder", dir);
	fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0)
		close(fd);
	return STORE_MB_OK;
}

static bool has_inferiors(const char *maildir, const char *name)
{
	char **folders;
	size_t n, len = strlen(name);
	bool found = false;
	char *why = NULL;

	if (list_folders(maildir, &folders, &n, &why) != STORE_MB_OK) {
		free(why);
		return false;
	}
	for (size_t i = 0; i < n && !found; i++)
		found = strncmp(folders[i], name, len) == 0 && folders[i][len] == '.';
	store_names_free(folders, n);
	return found;
}

/* Removes dir and what our store puts in it (two levels: tmp/new/cur files). */
static int remove_tree(const char *dir)
{
	DIR *dh = opendir(dir);
	struct dirent *de;

	if (dh == NULL)
		return -1;
	while ((de = readdir(dh)) != NULL) {
		char path[PATH_MAX];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		store_path(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			remove_tree(path);
		else
			unlink(path);
	}
	closedir(dh);
	return rmdir(dir);
}

enum store_mb_result store_folder_delete(const char *maildir, const char *name, char **error_r)
{
	char dir[PATH_MAX], trash[PATH_MAX];
	uint64_t rnd = (uint64_t)getpid() ^ (uint64_t)time(NULL);

	if (store_mailbox_is_inbox(name)) {
		*error_r = sp_xstrdup("cannot delete INBOX");
		return STORE_MB_INBOX;
	}
	if (store_mailbox_dir(maildir, name, dir, sizeof(dir)) < 0) {
		*error_r = sp_xstrdup("bad mailbox name");
		return STORE_MB_BADNAME;
	}
	if (!is_maildir(dir)) {
		*error_r = sp_xasprintf("no mailbox %s", name);
		return STORE_MB_NOTFOUND;
	}
	if (has_inferiors(maildir, name)) {
		*error_r = sp_xstrdup("mailbox has inferior hierarchical names");
		return STORE_MB_HASCHILDREN;
	}
	/* out of sight in one atomic step, then removed at leisure: a crash
	 * leaves a stray directory, never a half-deleted mailbox */
	store_path(trash, sizeof(trash), "%s/sealpost-deleted.%llx", maildir, (unsigned long long)rnd);
	if (rename(dir, trash) < 0) {
		*error_r = sp_xasprintf("%s: rename: %s", dir, strerror(errno));
		return STORE_MB_IOERR;
	}
	remove_tree(trash);
	return STORE_MB_OK;
}

static enum store_mb_result rename_inbox(const char *maildir, const char *to, const char *hostname,
					 char **error_r)
{
	struct store_mailbox *in;
	enum store_mb_result rc;
	size_t n, *idx;
	uint32_t validity, *uids;

	rc = store_folder_create(maildir, to, error_r);
	if (rc != STORE_MB_OK)
		return rc;
	rc = store_mailbox_open(maildir, "INBOX", false, &in, error_r);
	if (rc != STORE_MB_OK)
		return rc;
	n = store_mailbox_count(in);
	idx = sp_xcalloc(n + 1, sizeof(*idx));
	uids = sp_xcalloc(n + 1, sizeof(*uids));
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	rc = store_mailbox_copy(in, idx, n, maildir, to, hostname, 0, &validity, uids, error_r);
	if (rc == STORE_MB_OK) {
		for (size_t i = 0; i < n; i++) {
			const struct store_msg *m = store_mailbox_msg(in, i);

			if (store_mailbox_set_flags(in, i, m->flags | STORE_F_DELETED, error_r) != STORE_MB_OK)
				free(*error_r), *error_r = NULL;
		}
		rc = store_mailbox_expunge(in, NULL, NULL, NULL, error_r);
	}
	free(idx);
	free(uids);
	store_mailbox_close(&in);
	return rc;
}

enum store_mb_result store_folder_rename(const char *maildir, const char *from, const char *to,
					 const char *hostname, char **error_r)
{
	char src[PATH_MAX], dst[PATH_MAX];
	char **folders;
	size_t n, flen = strlen(from);
	enum store_mb_result rc;

	if (!store_mailbox_name_valid(from) || !store_mailbox_name_valid(to)) {
		*error_r = sp_xstrdup("bad mailbox name");
		return STORE_MB_BADNAME;
	}
	if (store_mailbox_is_inbox(to)) {
		*error_r = sp_xstrdup("INBOX always exists");
		return STORE_MB_EXISTS;
	}
	store_mailbox_dir(maildir, to, dst, sizeof(dst));
	if (is_maildir(dst)) {
		*error_r = sp_xasprintf("mailbox %s exists", to);
		return STORE_MB_EXISTS;
	}
	if (store_mailbox_is_inbox(from))
		return rename_inbox(maildir, to, hostname, error_r);
	store_mailbox_dir(maildir, from, src, sizeof(src));
	if (!is_maildir(src)) {
		*error_r = sp_xasprintf("no mailbox %s", from);
		return STORE_MB_NOTFOUND;
	}
	if (strncmp(to, from, flen) == 0 && to[flen] == '.') {
		*error_r = sp_xstrdup("cannot rename a mailbox into itself");
		return STORE_MB_BADNAME;
	}
	rc = list_folders(maildir, &folders, &n, error_r);
	if (rc != STORE_MB_OK)
		return rc;
	if (rename(src, dst) < 0) {
		*error_r = sp_xasprintf("%s: rename: %s", src, strerror(errno));
		store_names_free(folders, n);
		return STORE_MB_IOERR;
	}
	/* the inferiors follow (RFC 3501 6.3.5) */
	for (size_t i = 0; i < n; i++) {
		char newname[STORE_MAILBOX_NAME_MAX + 2], a[PATH_MAX], b[PATH_MAX];

		if (strncmp(folders[i], from, flen) != 0 || folders[i][flen] != '.')
			continue;
		if (snprintf(newname, sizeof(newname), "%s%s", to, folders[i] + flen) >=
			    (int)sizeof(newname) ||
		    store_mailbox_dir(maildir, folders[i], a, sizeof(a)) < 0 ||
		    store_mailbox_dir(maildir, newname, b, sizeof(b)) < 0)
			continue;
		rename(a, b);
	}
	store_names_free(folders, n);
	{
		int fd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	return STORE_MB_OK;
}

enum store_mb_result store_subscriptions_read(const char *maildir, char ***names_r, size_t *n_r,
					      char **error_r)
{
	char path[PATH_MAX], *buf;
	char **names = NULL;
	size_t n = 0, got = 0;
	int fd;

	*names_r = NULL;
	*n_r = 0;
	store_path(path, sizeof(path), "%s/%s", maildir, STORE_SUBSCRIPTIONS_NAME);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return STORE_MB_OK;
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return STORE_MB_IOERR;
	}
	buf = sp_xmalloc(SUBSCRIPTIONS_MAX_FILE + 1);
	for (;;) {
		ssize_t r = read(fd, buf + got, SUBSCRIPTIONS_MAX_FILE - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (got += (size_t)r) == SUBSCRIPTIONS_MAX_FILE)
			break;
	}
	close(fd);
	buf[got] = '\0';
	for (char *line = buf, *nl; *line != '\0' && n < STORE_MAX_FOLDERS; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl == NULL)
			break;
		*nl = '\0';
		if (store_mailbox_name_valid(line)) {
			names = sp_xrealloc(names, n + 1, sizeof(*names));
			names[n++] = sp_xstrdup(line);
		}
	}
	free(buf);
	*names_r = names;
	*n_r = n;
	return STORE_MB_OK;
}

enum store_mb_result store_subscriptions_set(const char *maildir, const char *name,
					     bool subscribe, char **error_r)
{
	char **names;
	size_t n, len = 0, cap = 1;
	char *buf;
	bool found = false;
	enum store_mb_result rc;
	const char *canon = store_mailbox_is_inbox(name) ? "INBOX" : name;

	if (!store_mailbox_name_valid(name)) {
		*error_r = sp_xstrdup("bad mailbox name");
		return STORE_MB_BADNAME;
	}
	rc = store_subscriptions_read(maildir, &names, &n, error_r);
	if (rc != STORE_MB_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		found |= strcmp(names[i], canon) == 0;
		cap += strlen(names[i]) + 1;
	}
	if (found == subscribe) {
		store_names_free(names, n);
		return STORE_MB_OK;
	}
	if (subscribe && n >= STORE_MAX_FOLDERS) {
		store_names_free(names, n);
		*error_r = sp_xstrdup("too many subscriptions");
		return STORE_MB_IOERR;
	}
	cap += strlen(canon) + 1;
	buf = sp_xmalloc(cap);
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], canon) != 0)
			len += (size_t)snprintf(buf + len, cap - len, "%s\n", names[i]);
	if (subscribe)
		len += (size_t)snprintf(buf + len, cap - len, "%s\n", canon);
	store_names_free(names, n);
	if (store_make_maildir(maildir, NULL) < 0) {
		/* the Maildir's parents may be missing for a user without mail */
		struct store_mailbox *mb = NULL;

		if (store_mailbox_open(maildir, "INBOX", true, &mb, error_r) != STORE_MB_OK) {
			free(buf);
			return STORE_MB_IOERR;
		}
		store_mailbox_close(&mb);
	}
	rc = store_file_replace(maildir, STORE_SUBSCRIPTIONS_NAME, buf, len, error_r) < 0
		     ? STORE_MB_IOERR
		     : STORE_MB_OK;
	free(buf);
	return rc;
}

int store_usage_total(const char *maildir, uint64_t *bytes_r, char **error_r)
{
	char **folders;
	size_t n;
	uint64_t total = 0, one;

	if (store_maildir_usage(maildir, &total) < 0) {
		*error_r = sp_xasprintf("%s: %s", maildir, strerror(errno));
		return -1;
	}
	if (list_folders(maildir, &folders, &n, error_r) != STORE_MB_OK)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char dir[PATH_MAX];

		if (store_mailbox_dir(maildir, folders[i], dir, sizeof(dir)) == 0 &&
		    store_maildir_usage(dir, &one) == 0)
			total += one;
	}
	store_names_free(folders, n);
	*bytes_r = total;
	return 0;
}
