/* The certificate database, write side (the tokens CLI): every change is a
 * whole new file written next to the old one, fsynced, renamed over it, and
 * the directory fsynced, so a crash leaves the old or the new file, never a
 * torn one. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certdb/certdb_db.h"
#include "certdb/certdb_index.h"
#include "common/fileio.h"
#include "common/xalloc.h"

int sp_certdb_write_file(const struct sp_certdb *db, const char *relpath, const void *data,
			 size_t len, unsigned mode, char **error_r)
{
	char *path, *tmp, *dircopy, *dir;
	int fd, saved;

	if (!sp_certdb_relpath_ok(relpath)) {
		*error_r = sp_xasprintf("%s: not a relative path inside the db", relpath);
		return -1;
	}
	path = sp_xasprintf("%s/%s", db->dir, relpath);
	dircopy = sp_xstrdup(path);
	dir = dirname(dircopy);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = sp_xasprintf("%s: mkdir: %s", dir, strerror(errno));
		goto fail_early;
	}
	tmp = sp_xasprintf("%s/.tmp.XXXXXX", dir);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		*error_r = sp_xasprintf("%s: mkstemp: %s", tmp, strerror(errno));
		free(tmp);
		goto fail_early;
	}
	if (fchmod(fd, (mode_t)mode & 07777) < 0 || sp_write_all(fd, data, len) < 0 ||
	    fsync(fd) < 0) {
		saved = errno;
		close(fd);
		goto fail_tmp;
	}
	if (close(fd) < 0) {
		saved = errno;
		goto fail_tmp;
	}
	if (rename(tmp, path) < 0) {
		saved = errno;
		goto fail_tmp;
	}
	if (sp_fsync_dir(dir) < 0) {
		*error_r = sp_xasprintf("%s: fsync: %s", dir, strerror(errno));
		free(tmp);
		free(path);
		free(dircopy);
		return -1;
	}
	free(tmp);
	free(path);
	free(dircopy);
	return 0;
fail_tmp:
	*error_r = sp_xasprintf("%s: %s", path, strerror(saved));
	if (unlink(tmp) < 0 && errno != ENOENT) {
		/* the temp name is unique and dot-prefixed: harmless if left */
	}
	free(tmp);
fail_early:
	free(path);
	free(dircopy);
	return -1;
}

static int write_index(struct sp_certdb *db, const struct sp_certdb_entry *entries, size_t count,
		       char **error_r)
{
	size_t len;
	char *text = sp_certdb_index_format(entries, count, &len);
	int ret = sp_certdb_write_file(db, "index", text, len, 0644, error_r);

	free(text);
	return ret;
}

int sp_certdb_put(struct sp_certdb *db, const struct sp_certdb_entry *e, char **error_r)
{
	struct sp_certdb_entry *next;
	size_t i, count = db->count;

	if (sp_certdb_entry_check(e, error_r) < 0)
		return -1;
	for (i = 0; i < db->count; i++) {
		if (strcmp(db->entries[i].nickname, e->nickname) == 0)
			break;
	}
	if (i == db->count) {
		if (db->count == SP_CERTDB_MAX_ENTRIES) {
			*error_r = sp_xasprintf("certdb full (%d entries)", SP_CERTDB_MAX_ENTRIES);
			return -1;
		}
		count++;
	}
	/* build the new table aside; the db changes only once the file is safe */
	next = sp_xcalloc(count, sizeof(*next));
	for (size_t k = 0; k < db->count; k++)
		sp_certdb_entry_copy(&next[k], k == i ? e : &db->entries[k]);
	if (i == db->count)
		sp_certdb_entry_copy(&next[i], e);
	if (write_index(db, next, count, error_r) < 0) {
		sp_certdb_entries_free(next, count);
		return -1;
	}
	sp_certdb_entries_free(db->entries, db->count);
	db->entries = next;
	db->count = db->cap = count;
	return 0;
}

int sp_certdb_remove(struct sp_certdb *db, const char *nickname, char **error_r)
{
	struct sp_certdb_entry *next;
	size_t i, n = 0;

	for (i = 0; i < db->count; i++) {
		if (strcmp(db->entries[i].nickname, nickname) == 0)
			break;
	}
	if (i == db->count) {
		*error_r = sp_xasprintf("no entry named \"%s\"", nickname);
		return -1;
	}
	next = sp_xcalloc(db->count, sizeof(*next));
	for (size_t k = 0; k < db->count; k++) {
		if (k != i)
			sp_certdb_entry_copy(&next[n++], &db->entries[k]);
	}
	if (write_index(db, next, n, error_r) < 0) {
		sp_certdb_entries_free(next, n);
		return -1;
	}
	sp_certdb_entries_free(db->entries, db->count);
	db->entries = next;
	db->count = db->cap = n;
	return 0;
}
