/* One mailbox of a user's Maildir as IMAP and POP see it: a view of its
 * messages in UID order, kept in step with the directories by syncs (under
 * the mailbox's flock), flags in the info suffix, expunge, append through
 * the crash-safe store_maildir_deliver, and copy by hard link. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/mailcore.h"
#include "mailcore/store_mailbox.h"

struct store_mailbox {
	char *name;
	char dir[PATH_MAX];
	char root[PATH_MAX];  /* the user's Maildir */
	bool read_only;
	int lock_fd;
	uint32_t uidvalidity, uidnext;
	struct store_keywords kw;  /* dovecot-keywords as last read */
	struct store_msg *msgs;
	size_t n;
	/* the last sync's or expunge's report */
	uint32_t *expunged, *changed;
	size_t n_expunged, n_changed;
};

/* ---------------------------------------------------------------- names */

bool store_mailbox_is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

bool store_mailbox_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > STORE_MAILBOX_NAME_MAX)
		return false;
	if (name[0] == '.' || name[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c >= 0x7f || c == '/' || c == '\\' || c == '*' || c == '%' ||
		    c == '"')
			return false;
		if (c == '.' && name[i + 1] == '.')
			return false;
	}
	/* "INBOX.x" is a folder named INBOX.x, fine; but not "INBOX" spelled
	 * as a folder directory */
	return true;
}

int store_mailbox_dir(const char *maildir, const char *name, char *buf, size_t cap)
{
	int n;

	if (!store_mailbox_name_valid(name))
		return -1;
	if (store_mailbox_is_inbox(name))
		n = snprintf(buf, cap, "%s", maildir);
	else
		n = snprintf(buf, cap, "%s/.%s", maildir, name);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static const struct {
	char letter;
	unsigned flag;
} flag_letters[] = {
	{'D', STORE_F_DRAFT}, {'F', STORE_F_FLAGGED}, {'R', STORE_F_ANSWERED},
	{'S', STORE_F_SEEN},  {'T', STORE_F_DELETED},
};

unsigned store_flags_from_info(const char *info)
{
	unsigned flags = 0;

	if (info == NULL || strncmp(info, "2,", 2) != 0)
		return 0;
	for (const char *p = info + 2; *p != '\0'; p++)
		for (size_t i = 0; i < sizeof(flag_letters) / sizeof(flag_letters[0]); i++)
			if (*p == flag_letters[i].letter)
				flags |= flag_letters[i].flag;
	return flags;
}

/* ":2," + our letters + the keyword letters a..z + the letters we do not
 * own (P) kept from old_info, all in ASCII order as the Maildir spec asks. */
static void info_build(unsigned flags, uint32_t keywords, const char *old_info, char *buf,
		       size_t cap)
{
	char letters[64];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(flag_letters) / sizeof(flag_letters[0]); i++)
		if (flags & flag_letters[i].flag)
			letters[n++] = flag_letters[i].letter;
	for (int i = 0; i < STORE_KEYWORDS_MAX; i++)
		if (keywords & (1u << i))
			letters[n++] = (char)('a' + i);
	if (old_info != NULL && strncmp(old_info, "2,", 2) == 0) {
		for (const char *p = old_info + 2; *p != '\0' && n + 1 < sizeof(letters); p++) {
			bool ours = *p >= 'a' && *p <= 'z';

			for (size_t i = 0; i < sizeof(flag_letters) / sizeof(flag_letters[0]); i++)
				ours |= *p == flag_letters[i].letter;
			if (!ours && *p > ' ' && *p < 127 && *p != '/' && memchr(letters, *p, n) == NULL)
				letters[n++] = *p;
		}
	}
	/* insertion sort: at most a few dozen letters */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && letters[j - 1] > letters[j]; j--) {
			char t = letters[j];

			letters[j] = letters[j - 1];
			letters[j - 1] = t;
		}
	snprintf(buf, cap, ":2,%.*s", (int)n, letters);
}

void store_flags_to_info(unsigned flags, char *buf, size_t cap)
{
	info_build(flags, 0, NULL, buf, cap);
}

/* --------------------------------------------------------------- locking */

static int mb_lock(struct store_mailbox *mb, char **error_r)
{
	while (flock(mb->lock_fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			*error_r = sp_xasprintf("%s: flock: %s", mb->dir, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void mb_unlock(struct store_mailbox *mb)
{
	flock(mb->lock_fd, LOCK_UN);
}

static int open_lock(const char *dir, char **error_r)
{
	char path[PATH_MAX];
	int fd;

	store_path(path, sizeof(path), "%s/%s", dir, STORE_LOCK_NAME);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
	return fd;
}

static int mkdir_durable(const char *path, const char *parent)
{
	if (mkdir(path, 0700) < 0)
		return errno == EEXIST ? 0 : -1;
	return parent != NULL ? sp_fsync_dir(parent) : 0;
}

int store_make_maildir(const char *dir, const char *parent)
{
	static const char *const subs[] = {"tmp", "new", "cur"};
	char path[PATH_MAX];

	if (mkdir_durable(dir, parent) < 0)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		store_path(path, sizeof(path), "%s/%s", dir, subs[i]);
		if (mkdir_durable(path, dir) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- scanning */

struct disk_entry {
	char *file;  /* "cur/name" */
	char *base;
	unsigned flags;
	uint32_t keywords;
	bool recent;
};

struct disk {
	struct disk_entry *e;
	size_t n, cap;
};

static void disk_clear(struct disk *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->e[i].file);
		free(d->e[i].base);
	}
	free(d->e);
	memset(d, 0, sizeof(*d));
}

/* Reads sub ("cur" or "new") of dir. In new/ and not read-only, each file
 * is moved to cur/ with an empty info ("new -> cur": the client has seen
 * it arrive; it is \Recent for this session). */
static int scan_sub(const char *dir, const char *sub, bool move_new, struct disk *d,
		    bool *moved_r, char **error_r)
{
	char path[PATH_MAX];
	DIR *dh;
	struct dirent *de;

	store_path(path, sizeof(path), "%s/%s", dir, sub);
	dh = opendir(path);
	if (dh == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(dh)) != NULL) {
		const char *name = de->d_name, *colon;
		char file[PATH_MAX];
		bool recent = false;

		if (name[0] == '.')
			continue;
		if (d->n >= STORE_MAILBOX_MAX_MESSAGES) {
			sp_log(SP_LOG_WARN, "store_limit", "dir=\"%s\" max_messages=%d", dir,
			       STORE_MAILBOX_MAX_MESSAGES);
			break;
		}
		colon = strchr(name, ':');
		store_path(file, sizeof(file), "%s/%s", sub, name);
		if (move_new && strcmp(sub, "new") == 0) {
			char from[PATH_MAX], to[PATH_MAX];

			if (store_path(from, sizeof(from), "%s/new/%s", dir, name) >= (int)sizeof(from) ||
			    store_path(to, sizeof(to), "%s/cur/%s%s", dir, name, colon ? "" : ":2,") >=
				    (int)sizeof(to))
				continue;
			if (rename(from, to) < 0)
				continue; /* gone meanwhile */
			snprintf(file, sizeof(file), "cur/%s%s", name, colon ? "" : ":2,");
			*moved_r = true;
			recent = true;
		}
		if (d->n == d->cap) {
			d->cap = d->cap == 0 ? 64 : d->cap * 2;
			d->e = sp_xrealloc(d->e, d->cap, sizeof(*d->e));
		}
		d->e[d->n].file = sp_xstrdup(file);
		d->e[d->n].base = colon ? sp_xstrndup(name, (size_t)(colon - name)) : sp_xstrdup(name);
		d->e[d->n].flags = colon ? store_flags_from_info(colon + 1) : 0;
		d->e[d->n].keywords = colon ? store_keywords_from_info(colon + 1) : 0;
		d->e[d->n].recent = recent || (!move_new && strcmp(sub, "new") == 0);
		d->n++;
	}
	closedir(dh);
	return 0;
}

static void msg_free(struct store_msg *m)
{
	free(m->file);
	free(m->base);
}

static void report_reset(struct store_mailbox *mb)
{
	free(mb->expunged);
	free(mb->changed);
	mb->expunged = mb->changed = NULL;
	mb->n_expunged = mb->n_changed = 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_msg_uid(const void *a, const void *b)
{
	uint32_t x = ((const struct store_msg *)a)->uid, y = ((const struct store_msg *)b)->uid;

	return x < y ? -1 : x > y;
}

/* The previous sync's view, found by UID (it is in UID order): reuses
 * sizes and dates of the same file. */
static const struct store_msg *old_by_uid(const struct store_mailbox *mb, uint32_t uid,
					  const char *base)
{
	ssize_t k = store_mailbox_find_uid(mb, uid);

	return k >= 0 && strcmp(mb->msgs[k].base, base) == 0 ? &mb->msgs[k] : NULL;
}

/* base -> index in a UID list, open addressing; the list's first entry for
 * a base wins (a later one is a duplicate the list loses when rewritten). */
struct base_map {
	size_t cap;     /* a power of two, at least twice the entries */
	size_t *slot;   /* index + 1; 0: empty */
};

static uint64_t base_hash(const char *p)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */

	for (; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h;
}

static void base_map_build(struct base_map *h, const struct store_uidlist *ul)
{
	h->cap = 16;
	while (h->cap < 2 * ul->n)
		h->cap *= 2;
	h->slot = sp_xcalloc(h->cap, sizeof(*h->slot));
	for (size_t i = 0; i < ul->n; i++) {
		size_t pos = (size_t)base_hash(ul->e[i].base) & (h->cap - 1);
		bool dup = false;

		while (h->slot[pos] != 0 && !dup) {
			dup = strcmp(ul->e[h->slot[pos] - 1].base, ul->e[i].base) == 0;
			pos = (pos + 1) & (h->cap - 1);
		}
		if (!dup)
			h->slot[pos] = i + 1;
	}
}

static ssize_t base_map_find(const struct base_map *h, const struct store_uidlist *ul,
			     const char *base)
{
	size_t pos = (size_t)base_hash(base) & (h->cap - 1);

	while (h->slot[pos] != 0) {
		if (strcmp(ul->e[h->slot[pos] - 1].base, base) == 0)
			return (ssize_t)(h->slot[pos] - 1);
		pos = (pos + 1) & (h->cap - 1);
	}
	return -1;
}

static int cmp_fresh(const void *a, const void *b, void *arg)
{
	const struct disk *d = arg;

	return strcmp(d->e[*(const size_t *)a].base, d->e[*(const size_t *)b].base);
}

/* A UIDVALIDITY never given before in this user's Maildir: the current
 * time, or one more than the last one given (kept in the Maildir root), so
 * a mailbox deleted and re-created, or a damaged UID list replaced, within
 * the same second still gets a new one (RFC 3501 2.3.1.1). */
static int next_uidvalidity(const char *root, uint32_t *v_r, char **error_r)
{
	char path[PATH_MAX], buf[32];
	uint32_t last = 0, now = (uint32_t)time(NULL), v;
	int fd, len, lock_fd, rc;
	ssize_t r;

	/* the caller holds one mailbox's lock; the counter is the whole
	 * Maildir's: two mailboxes opened for the first time at once (two
	 * workers, or two pool threads) take their turns here */
	store_path(path, sizeof(path), "%s/%s", root, STORE_ROOT_LOCK_NAME);
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		if (lock_fd >= 0)
			close(lock_fd);
		return -1;
	}
	store_path(path, sizeof(path), "%s/%s", root, STORE_UIDVALIDITY_NAME);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r > 0) {
			buf[r] = '\0';
			last = (uint32_t)strtoul(buf, NULL, 10);
		}
	}
	v = now > last ? now : last + 1;
	if (v == 0)
		v = 1;
	len = snprintf(buf, sizeof(buf), "%u\n", v);
	rc = store_file_replace(root, STORE_UIDVALIDITY_NAME, buf, (size_t)len, error_r);
	close(lock_fd); /* the lock goes with it */
	if (rc < 0)
		return -1;
	*v_r = v;
	return 0;
}

/* Whether dir's new/ holds no message (or is missing): read, not judged
 * by its mtime, since deliveries come without the mailbox lock. */
static bool new_empty(const char *dir)
{
	char path[PATH_MAX];
	DIR *dh;
	struct dirent *de;
	bool empty = true;

	store_path(path, sizeof(path), "%s/new", dir);
	dh = opendir(path);
	if (dh == NULL)
		return errno == ENOENT;
	while (empty && (de = readdir(dh)) != NULL)
		empty = de->d_name[0] == '.';
	closedir(dh);
	return empty;
}

/* The UID list after a sync that gave UIDs to view's messages from
 * first_new on: appended when the file on disk is whole and lost nothing
 * (else, and for a new list, written whole). The caller holds the lock. */
static int uidlist_store(const char *dir, const struct store_uidlist *ul, bool rewrite,
			 const struct store_msg *view, size_t n_view, size_t first_new,
			 char **error_r)
{
	struct store_uidlist nl = {.uidvalidity = ul->uidvalidity, .uidnext = ul->uidnext};
	int rc;

	if (!rewrite) {
		struct store_uid_entry *add = sp_xcalloc(n_view - first_new + 1, sizeof(*add));

		for (size_t i = first_new; i < n_view; i++)
			add[i - first_new] = (struct store_uid_entry){.uid = view[i].uid,
								      .base = view[i].base};
		rc = store_uidlist_append(dir, ul, add, n_view - first_new, error_r);
		free(add);
		if (rc <= 0)
			return rc;
	}
	for (size_t i = 0; i < n_view; i++)
		store_uidlist_add(&nl, view[i].uid, view[i].base);
	rc = store_uidlist_save(dir, &nl, error_r);
	store_uidlist_clear(&nl);
	return rc;
}

/* The sync itself; the caller holds the lock. */
static enum store_mb_result sync_locked(struct store_mailbox *mb, char **error_r)
{
	struct disk d = {0};
	struct store_uidlist ul = {0};
	struct base_map map = {0};
	bool *matched = NULL;
	size_t *fresh = NULL, n_fresh = 0, n_matched = 0;
	struct store_msg *view = NULL;
	struct store_stat_snap *snap = NULL;
	size_t n_view = 0, n_new = 0, n_stat = 0;
	bool moved = false, list_rewrite = false, shortcut = false;
	uint32_t *disk_uid = NULL, first_new_uid;
	struct store_scan_stamp stamp;
	enum store_mb_result rc = STORE_MB_IOERR;
	int lr;

	report_reset(mb);
	/* another session may have named new keywords: the table first, so
	 * that no letter seen below lacks its name */
	if (store_keywords_load(mb->dir, &mb->kw, error_r) < 0)
		goto out;
	/* nothing changed since a scan this process trusts: its view, no
	 * rescan (cur/ and the list by their stamps, new/ read) */
	store_scan_stamp_take(mb->dir, &stamp);
	if (new_empty(mb->dir) && (snap = store_stat_snap_get_stamped(mb->dir, &stamp)) != NULL) {
		n_view = store_stat_snap_view(snap, &view, &ul.uidvalidity, &ul.uidnext);
		for (size_t i = 0; i < n_view; i++) {
			const struct store_msg *old = old_by_uid(mb, view[i].uid, view[i].base);

			view[i].recent = old != NULL && old->recent;
		}
		shortcut = true;
		goto report;
	}
	if (scan_sub(mb->dir, "cur", false, &d, &moved, error_r) < 0 ||
	    scan_sub(mb->dir, "new", !mb->read_only, &d, &moved, error_r) < 0)
		goto out;
	if (moved) {
		char cur[PATH_MAX];

		store_path(cur, sizeof(cur), "%s/cur", mb->dir);
		if (sp_fsync_dir(cur) < 0) {
			*error_r = sp_xasprintf("%s: fsync: %s", cur, strerror(errno));
			goto out;
		}
	}

	lr = store_uidlist_load(mb->dir, &ul, error_r);
	if (lr < 0) {
		/* a damaged list: start over with a new UIDVALIDITY (RFC 3501
		 * 2.3.1.1 allows that; clients resynchronise) */
		sp_log(SP_LOG_WARN, "uidlist_damaged", "dir=\"%s\" why=\"%s\"", mb->dir, *error_r);
		free(*error_r);
		*error_r = NULL;
		store_uidlist_clear(&ul);
		lr = 1;
	}
	if (lr == 1) {
		if (next_uidvalidity(mb->root, &ul.uidvalidity, error_r) < 0)
			goto out;
		ul.uidnext = 1;
		list_rewrite = true;
	}
	first_new_uid = ul.uidnext;

	/* sizes and dates of files another sync in this process saw */
	snap = store_stat_snap_get(mb->dir, ul.uidvalidity);

	/* match disk entries to UIDs by base: a hash of the list's bases, one
	 * probe per file (no sort of either side) */
	base_map_build(&map, &ul);
	disk_uid = sp_xcalloc(d.n + 1, sizeof(*disk_uid));
	matched = sp_xcalloc(ul.n + 1, sizeof(*matched));
	fresh = sp_xcalloc(d.n + 1, sizeof(*fresh));
	for (size_t i = 0; i < d.n; i++) {
		ssize_t k = base_map_find(&map, &ul, d.e[i].base);

		if (k < 0) {
			fresh[n_fresh++] = i;
		} else if (matched[k]) {
			disk_uid[i] = UINT32_MAX; /* the same base twice on disk (new/ and cur/): keep one */
		} else {
			matched[k] = true;
			n_matched++;
			disk_uid[i] = ul.e[k].uid;
		}
	}
	if (n_matched < ul.n)
		list_rewrite = true; /* a listed message is gone: compact */
	/* new messages get UIDs in base order */
	if (n_fresh > 1)
		qsort_r(fresh, n_fresh, sizeof(*fresh), cmp_fresh, &d);
	for (size_t f = 0; f < n_fresh; f++) {
		size_t i = fresh[f];

		if (f > 0 && strcmp(d.e[i].base, d.e[fresh[f - 1]].base) == 0) {
			disk_uid[i] = UINT32_MAX; /* the same base twice on disk: keep one */
			continue;
		}
		if (ul.uidnext == UINT32_MAX) {
			*error_r = sp_xasprintf("%s: UIDs exhausted", mb->dir);
			goto out;
		}
		disk_uid[i] = ul.uidnext++;
		n_new++;
	}

	/* the new view: known messages and new ones, sorted by UID below */
	view = sp_xcalloc(d.n + 1, sizeof(*view));
	for (size_t i = 0; i < d.n; i++) {
		struct store_msg *m;
		const struct store_msg *old;

		if (disk_uid[i] == UINT32_MAX)
			continue;
		m = &view[n_view++];
		m->uid = disk_uid[i];
		m->flags = d.e[i].flags;
		m->keywords = d.e[i].keywords;
		m->recent = d.e[i].recent;
		m->file = d.e[i].file;
		m->base = d.e[i].base;
		d.e[i].file = d.e[i].base = NULL;
		old = old_by_uid(mb, m->uid, m->base);
		if (old != NULL) {
			m->size = old->size;
			m->internaldate = old->internaldate;
			m->recent |= old->recent;
		} else if (!store_stat_snap_find(snap, m->base, m->uid, &m->size, &m->internaldate)) {
			char path[PATH_MAX];
			struct stat st;

			/* the file's own size: what FETCH sends and RFC822.SIZE says */
			store_path(path, sizeof(path), "%s/%s", mb->dir, m->file);
			if (stat(path, &st) == 0) {
				m->internaldate = st.st_mtime;
				m->size = (uint64_t)st.st_size;
				n_stat++;
			}
		}
	}
	/* sort by UID: the known part is a permutation, the new part ascends */
	qsort(view, n_view, sizeof(*view), cmp_msg_uid);

	if (list_rewrite || n_new > 0) {
		size_t first_new = n_view;

		while (first_new > 0 && view[first_new - 1].uid >= first_new_uid)
			first_new--;
		if (uidlist_store(mb->dir, &ul, list_rewrite, view, n_view, first_new, error_r) < 0)
			goto out;
	}

report:
	/* the report: compare with the previous view by UID */
	if (mb->uidvalidity != 0 && mb->uidvalidity != ul.uidvalidity) {
		mb->expunged = sp_xcalloc(mb->n + 1, sizeof(uint32_t));
		for (size_t i = 0; i < mb->n; i++)
			mb->expunged[mb->n_expunged++] = 1;
		mb->n_changed = 0;
	} else {
		size_t i = 0, j = 0, removed = 0;

		mb->expunged = sp_xcalloc(mb->n + 1, sizeof(uint32_t));
		mb->changed = sp_xcalloc(mb->n + 1, sizeof(uint32_t));
		while (i < mb->n) {
			if (j < n_view && view[j].uid == mb->msgs[i].uid) {
				if (view[j].flags != mb->msgs[i].flags ||
				    view[j].keywords != mb->msgs[i].keywords)
					mb->changed[mb->n_changed++] = (uint32_t)(j + 1);
				i++;
				j++;
			} else if (j < n_view && view[j].uid < mb->msgs[i].uid) {
				j++; /* cannot happen: UIDs only grow */
			} else {
				mb->expunged[mb->n_expunged++] = (uint32_t)(i + 1 - removed);
				removed++;
				i++;
			}
		}
	}
	for (size_t i = 0; i < mb->n; i++)
		msg_free(&mb->msgs[i]);
	free(mb->msgs);
	mb->msgs = view;
	mb->n = n_view;
	view = NULL;
	mb->uidvalidity = ul.uidvalidity;
	mb->uidnext = ul.uidnext;
	if (!shortcut) {
		struct store_scan_stamp after;
		bool trusted = store_scan_stamp_settled(&stamp);

		/* the view stands for the disk only if nothing moved while it
		 * was read (our own moves and writes included) and no file of
		 * it is in new/ (those a read-write sync moves) */
		if (trusted) {
			store_scan_stamp_take(mb->dir, &after);
			trusted = store_scan_stamp_equal(&stamp, &after);
		}
		for (size_t i = 0; trusted && i < mb->n; i++)
			trusted = strncmp(mb->msgs[i].file, "cur/", 4) == 0;
		if (n_stat > 0 || (trusted && !store_stat_snap_has_stamp(snap, &stamp)))
			store_stat_snap_publish(mb->dir, mb->uidvalidity, mb->uidnext, mb->msgs, mb->n,
						trusted ? &stamp : NULL);
	}
	rc = STORE_MB_OK;
out:
	store_stat_snap_put(&snap);
	if (view != NULL) {
		for (size_t i = 0; i < n_view; i++)
			msg_free(&view[i]);
		free(view);
	}
	free(map.slot);
	free(matched);
	free(fresh);
	free(disk_uid);
	store_uidlist_clear(&ul);
	disk_clear(&d);
	return rc;
}

static void fill_changes(const struct store_mailbox *mb, size_t old_n, struct store_changes *ch)
{
	if (ch == NULL)
		return;
	memset(ch, 0, sizeof(*ch));
	ch->expunged = mb->expunged;
	ch->n_expunged = mb->n_expunged;
	ch->changed = mb->changed;
	ch->n_changed = mb->n_changed;
	ch->n_new = mb->n + mb->n_expunged > old_n ? mb->n + mb->n_expunged - old_n : 0;
}

enum store_mb_result store_mailbox_sync(struct store_mailbox *mb, struct store_changes *ch,
					char **error_r)
{
	size_t old_n = mb->n;
	uint32_t old_validity = mb->uidvalidity;
	enum store_mb_result rc;

	if (mb_lock(mb, error_r) < 0)
		return STORE_MB_IOERR;
	rc = sync_locked(mb, error_r);
	mb_unlock(mb);
	if (rc == STORE_MB_OK) {
		fill_changes(mb, old_n, ch);
		if (ch != NULL)
			ch->uidvalidity_changed = old_validity != 0 && old_validity != mb->uidvalidity;
	}
	return rc;
}

/* The mailbox's directory (INBOX made when missing) and its lock file;
 * no view yet. */
static enum store_mb_result mailbox_attach(const char *maildir, const char *name, bool read_only,
					   struct store_mailbox **mb_r, char **error_r)
{
	struct store_mailbox *mb;
	char cur[PATH_MAX];
	struct stat st;

	*mb_r = NULL;
	mb = sp_xcalloc(1, sizeof(*mb));
	mb->lock_fd = -1;
	if (store_mailbox_dir(maildir, name, mb->dir, sizeof(mb->dir)) < 0) {
		*error_r = sp_xasprintf("bad mailbox name");
		free(mb);
		return STORE_MB_BADNAME;
	}
	mb->name = sp_xstrdup(store_mailbox_is_inbox(name) ? "INBOX" : name);
	store_path(mb->root, sizeof(mb->root), "%s", maildir);
	mb->read_only = read_only;
	store_path(cur, sizeof(cur), "%s/cur", mb->dir);
	if (stat(cur, &st) < 0 || !S_ISDIR(st.st_mode)) {
		if (!store_mailbox_is_inbox(name)) {
			*error_r = sp_xasprintf("no mailbox %s", name);
			store_mailbox_close(&mb);
			return STORE_MB_NOTFOUND;
		}
		/* a user who never received mail: make the INBOX now */
		{
			char parent[PATH_MAX], *slash;

			snprintf(parent, sizeof(parent), "%s", mb->dir);
			slash = strrchr(parent, '/');
			if (slash != NULL && slash != parent)
				*slash = '\0';
			/* the user's parent directories (domain/local) */
			for (char *p = parent + 1; *p != '\0'; p++) {
				if (*p != '/')
					continue;
				*p = '\0';
				mkdir(parent, 0700);
				*p = '/';
			}
			mkdir(parent, 0700);
			if (store_make_maildir(mb->dir, parent) < 0) {
				*error_r = sp_xasprintf("%s: cannot create: %s", mb->dir, strerror(errno));
				store_mailbox_close(&mb);
				return STORE_MB_IOERR;
			}
		}
	}
	mb->lock_fd = open_lock(mb->dir, error_r);
	if (mb->lock_fd < 0) {
		store_mailbox_close(&mb);
		return STORE_MB_IOERR;
	}
	*mb_r = mb;
	return STORE_MB_OK;
}

enum store_mb_result store_mailbox_open(const char *maildir, const char *name, bool read_only,
					struct store_mailbox **mb_r, char **error_r)
{
	struct store_mailbox *mb;
	enum store_mb_result rc = mailbox_attach(maildir, name, read_only, &mb, error_r);

	*mb_r = NULL;
	if (rc != STORE_MB_OK)
		return rc;
	if (mb_lock(mb, error_r) < 0) {
		store_mailbox_close(&mb);
		return STORE_MB_IOERR;
	}
	/* replaces of the UID list or keywords cut short by a kill: the
	 * lock keeps this mailbox's writers out meanwhile */
	store_replace_tmp_sweep(mb->dir);
	rc = sync_locked(mb, error_r);
	mb_unlock(mb);
	if (rc != STORE_MB_OK) {
		store_mailbox_close(&mb);
		return rc;
	}
	report_reset(mb);
	*mb_r = mb;
	return STORE_MB_OK;
}

void store_mailbox_close(struct store_mailbox **mbp)
{
	struct store_mailbox *mb = *mbp;

	if (mb == NULL)
		return;
	for (size_t i = 0; i < mb->n; i++)
		msg_free(&mb->msgs[i]);
	free(mb->msgs);
	report_reset(mb);
	store_keywords_clear(&mb->kw);
	if (mb->lock_fd >= 0)
		close(mb->lock_fd);
	free(mb->name);
	free(mb);
	*mbp = NULL;
}

const char *store_mailbox_name(const struct store_mailbox *mb) { return mb->name; }
bool store_mailbox_read_only(const struct store_mailbox *mb) { return mb->read_only; }
uint32_t store_mailbox_uidvalidity(const struct store_mailbox *mb) { return mb->uidvalidity; }
uint32_t store_mailbox_uidnext(const struct store_mailbox *mb) { return mb->uidnext; }
size_t store_mailbox_count(const struct store_mailbox *mb) { return mb->n; }

const struct store_msg *store_mailbox_msg(const struct store_mailbox *mb, size_t idx)
{
	return idx < mb->n ? &mb->msgs[idx] : NULL;
}

ssize_t store_mailbox_find_uid(const struct store_mailbox *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mb->msgs[mid].uid == uid)
			return (ssize_t)mid;
		if (mb->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* The message's file was renamed by another session (flags): find it in
 * cur/ by its base. Returns 0 and updates m->file, or -1 (expunged). */
static int refind(struct store_mailbox *mb, struct store_msg *m)
{
	char path[PATH_MAX];
	size_t blen = strlen(m->base);
	DIR *dh;
	struct dirent *de;
	int rc = -1;

	for (int s = 0; s < 2 && rc < 0; s++) {
		const char *sub = s == 0 ? "cur" : "new";

		store_path(path, sizeof(path), "%s/%s", mb->dir, sub);
		dh = opendir(path);
		if (dh == NULL)
			continue;
		while ((de = readdir(dh)) != NULL) {
			if (strncmp(de->d_name, m->base, blen) == 0 &&
			    (de->d_name[blen] == ':' || de->d_name[blen] == '\0')) {
				free(m->file);
				m->file = sp_xasprintf("%s/%s", sub, de->d_name);
				rc = 0;
				break;
			}
		}
		closedir(dh);
	}
	return rc;
}

int store_mailbox_open_msg(struct store_mailbox *mb, size_t idx)
{
	char path[PATH_MAX];
	struct store_msg *m;
	int fd;

	if (idx >= mb->n) {
		errno = EINVAL;
		return -1;
	}
	m = &mb->msgs[idx];
	for (int attempt = 0; attempt < 2; attempt++) {
		store_path(path, sizeof(path), "%s/%s", mb->dir, m->file);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 || errno != ENOENT)
			return fd;
		if (refind(mb, m) < 0)
			break;
	}
	errno = ENOENT;
	return -1;
}

enum store_mb_result store_mailbox_set_flags(struct store_mailbox *mb, size_t idx, unsigned flags,
					     char **error_r)
{
	if (idx >= mb->n) {
		*error_r = sp_xstrdup("no such message");
		return STORE_MB_IOERR;
	}
	return store_mailbox_set_flags_kw(mb, idx, flags, mb->msgs[idx].keywords, error_r);
}

enum store_mb_result store_mailbox_set_flags_kw(struct store_mailbox *mb, size_t idx,
						unsigned flags, uint32_t keywords, char **error_r)
{
	struct store_msg *m;
	enum store_mb_result rc = STORE_MB_OK;

	if (idx >= mb->n || mb->read_only) {
		*error_r = sp_xstrdup(mb->read_only ? "mailbox is read-only" : "no such message");
		return STORE_MB_IOERR;
	}
	m = &mb->msgs[idx];
	flags &= STORE_F_ALL;
	keywords &= (1u << STORE_KEYWORDS_MAX) - 1;
	if (m->flags == flags && m->keywords == keywords)
		return STORE_MB_OK;
	if (mb_lock(mb, error_r) < 0)
		return STORE_MB_IOERR;
	for (int attempt = 0; attempt < 2; attempt++) {
		char from[PATH_MAX], to[PATH_MAX], info[80];
		const char *slash = strchr(m->file, '/');
		const char *colon = strchr(slash + 1, ':');

		info_build(flags, keywords, colon != NULL ? colon + 1 : NULL, info, sizeof(info));
		store_path(from, sizeof(from), "%s/%s", mb->dir, m->file);
		if (store_path(to, sizeof(to), "%s/cur/%s%s", mb->dir, m->base, info) >= (int)sizeof(to)) {
			*error_r = sp_xstrdup("name too long");
			rc = STORE_MB_IOERR;
			break;
		}
		if (rename(from, to) == 0) {
			free(m->file);
			m->file = sp_xasprintf("cur/%s%s", m->base, info);
			m->flags = flags;
			m->keywords = keywords;
			break;
		}
		if (errno != ENOENT) {
			*error_r = sp_xasprintf("%s: rename: %s", from, strerror(errno));
			rc = STORE_MB_IOERR;
			break;
		}
		if (attempt == 1 || refind(mb, m) < 0) {
			*error_r = sp_xstrdup("message expunged");
			rc = STORE_MB_NOTFOUND;
			break;
		}
	}
	mb_unlock(mb);
	return rc;
}

const struct store_keywords *store_mailbox_keywords(const struct store_mailbox *mb)
{
	return &mb->kw;
}

/* The caller holds mb's lock: the file is read again first, so that a slot
 * another session (or process) took meanwhile is seen, never reused. */
static enum store_mb_result keyword_slot_locked(struct store_mailbox *mb, const char *name,
						int *slot_r, char **error_r)
{
	int slot;

	if (store_keywords_load(mb->dir, &mb->kw, error_r) < 0)
		return STORE_MB_IOERR;
	slot = store_keywords_find(&mb->kw, name);
	if (slot < 0) {
		for (slot = 0; slot < STORE_KEYWORDS_MAX && mb->kw.name[slot] != NULL; slot++)
			;
		if (slot == STORE_KEYWORDS_MAX) {
			*error_r = sp_xasprintf("%s: all %d keyword slots are taken", mb->dir,
						STORE_KEYWORDS_MAX);
			return STORE_MB_LIMIT;
		}
		mb->kw.name[slot] = sp_xstrdup(name);
		if (store_keywords_save(mb->dir, &mb->kw, error_r) < 0) {
			free(mb->kw.name[slot]);
			mb->kw.name[slot] = NULL;
			return STORE_MB_IOERR;
		}
	}
	*slot_r = slot;
	return STORE_MB_OK;
}

enum store_mb_result store_mailbox_keyword_slot(struct store_mailbox *mb, const char *name,
						bool create, int *slot_r, char **error_r)
{
	enum store_mb_result rc;

	if (!store_keyword_valid(name, strlen(name))) {
		*error_r = sp_xstrdup("invalid keyword");
		return STORE_MB_BADNAME;
	}
	/* a lookup needs no I/O: the view's letters match the table read with them */
	*slot_r = store_keywords_find(&mb->kw, name);
	if (*slot_r >= 0)
		return STORE_MB_OK;
	if (!create) {
		*error_r = sp_xstrdup("no such keyword");
		return STORE_MB_NOTFOUND;
	}
	if (mb_lock(mb, error_r) < 0)
		return STORE_MB_IOERR;
	rc = keyword_slot_locked(mb, name, slot_r, error_r);
	mb_unlock(mb);
	return rc;
}

enum store_mb_result store_mailbox_expunge(struct store_mailbox *mb,
					   bool (*want)(uint32_t uid, void *arg), void *arg,
					   struct store_changes *ch, char **error_r)
{
	size_t keep = 0, removed = 0, n_gone = 0;
	uint32_t *gone;
	bool any = false;
	struct store_uidlist nl = {0};
	enum store_mb_result rc = STORE_MB_OK;

	if (mb->read_only) {
		*error_r = sp_xstrdup("mailbox is read-only");
		return STORE_MB_IOERR;
	}
	report_reset(mb);
	mb->expunged = sp_xcalloc(mb->n + 1, sizeof(uint32_t));
	gone = sp_xcalloc(mb->n + 1, sizeof(*gone));
	if (mb_lock(mb, error_r) < 0) {
		free(gone);
		return STORE_MB_IOERR;
	}
	for (size_t i = 0; i < mb->n; i++) {
		struct store_msg *m = &mb->msgs[i];
		char path[PATH_MAX];

		if ((m->flags & STORE_F_DELETED) && (want == NULL || want(m->uid, arg))) {
			store_path(path, sizeof(path), "%s/%s", mb->dir, m->file);
			if (unlink(path) < 0 && errno == ENOENT && refind(mb, m) == 0) {
				store_path(path, sizeof(path), "%s/%s", mb->dir, m->file);
				unlink(path);
			}
			mb->expunged[mb->n_expunged++] = (uint32_t)(i + 1 - removed);
			gone[n_gone++] = m->uid;
			removed++;
			msg_free(m);
			any = true;
			continue;
		}
		mb->msgs[keep++] = *m;
	}
	mb->n = keep;
	if (any) {
		char cur[PATH_MAX];

		store_path(cur, sizeof(cur), "%s/cur", mb->dir);
		sp_fsync_dir(cur);
		/* the UID list as on disk, minus what we removed */
		if (store_uidlist_load(mb->dir, &nl, error_r) < 0) {
			rc = STORE_MB_IOERR;
		} else if (nl.uidvalidity != 0) {
			struct store_uidlist out = {.uidvalidity = nl.uidvalidity, .uidnext = nl.uidnext};

			for (size_t i = 0; i < nl.n; i++)
				if (bsearch(&nl.e[i].uid, gone, n_gone, sizeof(*gone), cmp_u32) == NULL)
					store_uidlist_add(&out, nl.e[i].uid, nl.e[i].base);
			if (store_uidlist_save(mb->dir, &out, error_r) < 0)
				rc = STORE_MB_IOERR;
			store_uidlist_clear(&out);
		}
		store_uidlist_clear(&nl);
	}
	mb_unlock(mb);
	free(gone);
	if (ch != NULL) {
		memset(ch, 0, sizeof(*ch));
		ch->expunged = mb->expunged;
		ch->n_expunged = mb->n_expunged;
	}
	return rc;
}

/* ------------------------------------------------------- append and copy */

static enum store_mb_result check_quota(const char *maildir, uint64_t quota, uint64_t adding,
					char **error_r)
{
	uint64_t used;

	if (quota == 0)
		return STORE_MB_OK;
	if (store_usage_total(maildir, &used, error_r) < 0)
		return STORE_MB_IOERR;
	if (used + adding > quota) {
		*error_r = sp_xasprintf("over quota (%llu + %llu > %llu bytes)",
					(unsigned long long)used, (unsigned long long)adding,
					(unsigned long long)quota);
		return STORE_MB_OVERQUOTA;
	}
	return STORE_MB_OK;
}

/* Opens dest for writing; for INBOX creates it. No view: the sync under
 * the lock after the new files are in makes it (one scan, not two). */
static enum store_mb_result open_dest(const char *maildir, const char *dest,
				      struct store_mailbox **mb_r, char **error_r)
{
	return mailbox_attach(maildir, dest, true, mb_r, error_r);
}

enum store_mb_result store_mailbox_append(const char *maildir, const char *name,
					  const struct iovec *parts, size_t n_parts, unsigned flags,
					  time_t internaldate, const char *hostname, uint64_t quota,
					  uint32_t *uidvalidity_r, uint32_t *uid_r, char **error_r)
{
	return store_mailbox_append_kw(maildir, name, parts, n_parts, flags, NULL, 0, internaldate,
				       hostname, quota, uidvalidity_r, uid_r, error_r);
}

enum store_mb_result store_mailbox_append_kw(const char *maildir, const char *name,
					     const struct iovec *parts, size_t n_parts,
					     unsigned flags, const char *const *keywords,
					     size_t n_keywords, time_t internaldate,
					     const char *hostname, uint64_t quota,
					     uint32_t *uidvalidity_r, uint32_t *uid_r, char **error_r)
{
	struct store_mailbox *mb;
	uint32_t kwmask = 0;
	struct store_target t = {0};
	uint64_t size = 0;
	char name_new[512], from[PATH_MAX], to[PATH_MAX], info[80], cur[PATH_MAX];
	enum store_mb_result rc;
	ssize_t idx;

	for (size_t i = 0; i < n_parts; i++)
		size += parts[i].iov_len;
	rc = open_dest(maildir, name, &mb, error_r);
	if (rc != STORE_MB_OK)
		return rc;
	rc = check_quota(maildir, quota, size, error_r);
	if (rc != STORE_MB_OK)
		goto out;
	if (mb_lock(mb, error_r) < 0) {
		rc = STORE_MB_IOERR;
		goto out;
	}
	for (size_t i = 0; i < n_keywords; i++) {
		int slot;

		if (!store_keyword_valid(keywords[i], strlen(keywords[i]))) {
			*error_r = sp_xstrdup("invalid keyword");
			rc = STORE_MB_BADNAME;
		} else {
			rc = keyword_slot_locked(mb, keywords[i], &slot, error_r);
		}
		if (rc != STORE_MB_OK) {
			mb_unlock(mb);
			goto out;
		}
		kwmask |= 1u << slot;
	}
	t.maildir = mb->dir;
	switch (store_maildir_deliver(&t, 1, parts, n_parts, hostname, name_new, sizeof(name_new),
				      error_r)) {
	case STORE_OK:
		break;
	case STORE_OVER_QUOTA:
		rc = STORE_MB_OVERQUOTA;
		mb_unlock(mb);
		goto out;
	default:
		rc = STORE_MB_IOERR;
		mb_unlock(mb);
		goto out;
	}
	/* into cur/ with its flags: the client gave them (RFC 3501 6.3.11) */
	info_build(flags & STORE_F_ALL, kwmask, NULL, info, sizeof(info));
	store_path(from, sizeof(from), "%s/new/%s", mb->dir, name_new);
	store_path(to, sizeof(to), "%s/cur/%s%s", mb->dir, name_new, info);
	if (internaldate != 0) {
		struct timespec ts[2] = {{internaldate, 0}, {internaldate, 0}};

		utimensat(AT_FDCWD, from, ts, 0);
	}
	if (rename(from, to) == 0) {
		store_path(cur, sizeof(cur), "%s/cur", mb->dir);
		sp_fsync_dir(cur);
	}
	/* the sync under the same lock gives it its UID */
	rc = sync_locked(mb, error_r);
	mb_unlock(mb);
	if (rc != STORE_MB_OK)
		goto out;
	idx = -1;
	for (size_t i = mb->n; i > 0; i--)
		if (strcmp(mb->msgs[i - 1].base, name_new) == 0) {
			idx = (ssize_t)(i - 1);
			break;
		}
	*uidvalidity_r = mb->uidvalidity;
	*uid_r = idx >= 0 ? mb->msgs[idx].uid : 0;
out:
	store_mailbox_close(&mb);
	return rc;
}

static int copy_bytes(int in, int out)
{
	char buf[65536];

	for (;;) {
		ssize_t r = read(in, buf, sizeof(buf)), off = 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		while (off < r) {
			ssize_t w = write(out, buf + off, (size_t)(r - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -1;
			off += w;
		}
	}
}

enum store_mb_result store_mailbox_copy(struct store_mailbox *mb, const size_t *idx, size_t n,
					const char *maildir, const char *dest,
					const char *hostname, uint64_t quota,
					uint32_t *uidvalidity_r, uint32_t *dest_uids_r,
					char **error_r)
{
	struct store_mailbox *dst;
	uint64_t total = 0;
	char **bases;
	enum store_mb_result rc;
	size_t done = 0;
	int map[STORE_KEYWORDS_MAX]; /* source slot -> dest slot; -1 none, -2 not asked yet */

	for (int i = 0; i < STORE_KEYWORDS_MAX; i++)
		map[i] = -2;
	for (size_t i = 0; i < n; i++)
		if (idx[i] < mb->n)
			total += mb->msgs[idx[i]].size;
	rc = open_dest(maildir, dest, &dst, error_r);
	if (rc != STORE_MB_OK)
		return rc;
	rc = check_quota(maildir, quota, total, error_r);
	if (rc != STORE_MB_OK) {
		store_mailbox_close(&dst);
		return rc;
	}
	bases = sp_xcalloc(n + 1, sizeof(*bases));
	if (mb_lock(dst, error_r) < 0) {
		rc = STORE_MB_IOERR;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_msg *m;
		char uniq[512], tmp[PATH_MAX], to[PATH_MAX], src[PATH_MAX], info[80];
		uint32_t dkw = 0;
		int in;

		if (idx[i] >= mb->n)
			continue;
		m = &mb->msgs[idx[i]];
		for (int b = 0; b < STORE_KEYWORDS_MAX; b++) {
			if (!(m->keywords & (1u << b)))
				continue;
			if (map[b] == -2) {
				char *kerr = NULL;

				map[b] = -1;
				if (mb->kw.name[b] != NULL &&
				    keyword_slot_locked(dst, mb->kw.name[b], &map[b], &kerr) != STORE_MB_OK) {
					/* the copy itself matters more than one keyword */
					sp_log(SP_LOG_WARN, "keyword_dropped", "dir=\"%s\" keyword=%s why=\"%s\"",
					       dst->dir, mb->kw.name[b], kerr != NULL ? kerr : "?");
					free(kerr);
					map[b] = -1;
				}
			}
			if (map[b] >= 0)
				dkw |= 1u << map[b];
		}
		in = store_mailbox_open_msg(mb, idx[i]);
		if (in < 0)
			continue; /* expunged elsewhere: nothing to copy */
		if (store_maildir_unique(hostname, m->size, uniq, sizeof(uniq)) < 0) {
			close(in);
			*error_r = sp_xstrdup("cannot make a unique name");
			rc = STORE_MB_IOERR;
			break;
		}
		info_build(m->flags, dkw, NULL, info, sizeof(info));
		store_path(src, sizeof(src), "%s/%s", mb->dir, m->file);
		store_path(tmp, sizeof(tmp), "%s/tmp/%s", dst->dir, uniq);
		store_path(to, sizeof(to), "%s/cur/%s%s", dst->dir, uniq, info);
		/* a hard link shares the already durable data; else copy + fsync */
		if (link(src, tmp) < 0) {
			int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
			struct stat st;

			if (out < 0 || copy_bytes(in, out) < 0 || fsync(out) < 0) {
				*error_r = sp_xasprintf("%s: %s", tmp, strerror(errno));
				if (out >= 0)
					close(out);
				close(in);
				unlink(tmp);
				rc = STORE_MB_IOERR;
				break;
			}
			if (fstat(in, &st) == 0) {
				struct timespec ts[2] = {st.st_mtim, st.st_mtim};

				futimens(out, ts);
			}
			close(out);
		}
		close(in);
		if (rename(tmp, to) < 0) {
			*error_r = sp_xasprintf("%s: rename: %s", tmp, strerror(errno));
			unlink(tmp);
			rc = STORE_MB_IOERR;
			break;
		}
		bases[i] = sp_xstrdup(uniq);
		done++;
	}
	{
		char cur[PATH_MAX], *sync_err = NULL;
		enum store_mb_result src;

		store_path(cur, sizeof(cur), "%s/cur", dst->dir);
		if (done > 0 && sp_fsync_dir(cur) < 0 && rc == STORE_MB_OK) {
			*error_r = sp_xasprintf("%s: fsync: %s", cur, strerror(errno));
			rc = STORE_MB_IOERR;
		}
		/* dst's view (and its UIDVALIDITY for COPYUID), also when
		 * nothing was copied: open_dest made none */
		src = sync_locked(dst, rc == STORE_MB_OK ? error_r : &sync_err);
		free(sync_err);
		if (rc == STORE_MB_OK)
			rc = src;
	}
	mb_unlock(dst);
	*uidvalidity_r = dst->uidvalidity;
	for (size_t i = 0; i < n; i++) {
		dest_uids_r[i] = 0;
		if (bases[i] == NULL)
			continue;
		for (size_t k = dst->n; k > 0; k--)
			if (strcmp(dst->msgs[k - 1].base, bases[i]) == 0) {
				dest_uids_r[i] = dst->msgs[k - 1].uid;
				break;
			}
	}
out:
	for (size_t i = 0; i < n; i++)
		free(bases[i]);
	free(bases);
	store_mailbox_close(&dst);
	return rc;
}

enum store_mb_result store_mailbox_status(const char *maildir, const char *name,
					  struct store_status_info *st, char **error_r)
{
	struct store_mailbox *mb;
	enum store_mb_result rc = store_mailbox_open(maildir, name, true, &mb, error_r);

	if (rc != STORE_MB_OK)
		return rc;
	memset(st, 0, sizeof(*st));
	st->messages = (uint32_t)mb->n;
	st->uidnext = mb->uidnext;
	st->uidvalidity = mb->uidvalidity;
	for (size_t i = 0; i < mb->n; i++) {
		if (mb->msgs[i].recent)
			st->recent++;
		if (!(mb->msgs[i].flags & STORE_F_SEEN))
			st->unseen++;
	}
	store_mailbox_close(&mb);
	return STORE_MB_OK;
}
