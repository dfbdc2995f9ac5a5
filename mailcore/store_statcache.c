/* What stat(2) said of each message file of a mailbox (size, mtime),
 * shared by the sessions of one process: a SELECT of a mailbox another
 * session (or an earlier SELECT) already saw needs no stat per message.
 * Maildir file names are unique and a message file never changes in place
 * (flag changes rename it), so a base and its UID name the same bytes.
 * A snapshot with a scan stamp is a whole view: a warm SELECT of a mailbox
 * whose cur/ and UID list still match the stamp takes it without a rescan. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "mailcore/store_mailbox.h"

struct stat_snap_entry {
	const char *base;      /* into names */
	const char *file;      /* into names; NULL unless stamped */
	uint32_t uid;
	unsigned flags;
	uint32_t keywords;
	uint64_t size;
	time_t mtime;
};

struct store_stat_snap {
	unsigned refs;         /* under snaps_lock */
	char *dir;
	uint32_t uidvalidity, uidnext;
	bool stamped;
	struct store_scan_stamp stamp;
	size_t n;
	struct stat_snap_entry *e; /* sorted by UID */
	char *names;
};

static pthread_mutex_t snaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct store_stat_snap *snaps[STORE_STAT_SNAPS]; /* [0] most recently published */

static void snap_free(struct store_stat_snap *s)
{
	free(s->dir);
	free(s->e);
	free(s->names);
	free(s);
}

static void snap_unref_locked(struct store_stat_snap *s)
{
	if (s != NULL && --s->refs == 0)
		snap_free(s);
}

struct store_stat_snap *store_stat_snap_get(const char *dir, uint32_t uidvalidity)
{
	struct store_stat_snap *s = NULL;

	pthread_mutex_lock(&snaps_lock);
	for (size_t i = 0; i < STORE_STAT_SNAPS && snaps[i] != NULL; i++) {
		if (strcmp(snaps[i]->dir, dir) == 0) {
			if (snaps[i]->uidvalidity == uidvalidity) {
				s = snaps[i];
				s->refs++;
			}
			break;
		}
	}
	pthread_mutex_unlock(&snaps_lock);
	return s;
}

void store_stat_snap_put(struct store_stat_snap **sp)
{
	if (*sp == NULL)
		return;
	pthread_mutex_lock(&snaps_lock);
	snap_unref_locked(*sp);
	pthread_mutex_unlock(&snaps_lock);
	*sp = NULL;
}

static int cmp_entry(const void *a, const void *b)
{
	uint32_t x = ((const struct stat_snap_entry *)a)->uid;
	uint32_t y = ((const struct stat_snap_entry *)b)->uid;

	return x < y ? -1 : x > y;
}

bool store_stat_snap_find(const struct store_stat_snap *s, const char *base, uint32_t uid,
			  uint64_t *size_r, time_t *mtime_r)
{
	struct stat_snap_entry key = {.uid = uid};
	const struct stat_snap_entry *hit;

	if (s == NULL || s->n == 0)
		return false;
	hit = bsearch(&key, s->e, s->n, sizeof(*s->e), cmp_entry);
	if (hit == NULL || strcmp(hit->base, base) != 0)
		return false;
	*size_r = hit->size;
	*mtime_r = hit->mtime;
	return true;
}

void store_stat_snap_publish(const char *dir, uint32_t uidvalidity, uint32_t uidnext,
			     const struct store_msg *msgs, size_t n,
			     const struct store_scan_stamp *stamp)
{
	struct store_stat_snap *s, *old = NULL;
	size_t bytes = 0, at = 0, i;

	if (n == 0 || n > STORE_STAT_SNAP_MAX_MESSAGES)
		return;
	s = sp_xcalloc(1, sizeof(*s));
	s->refs = 1;
	s->dir = sp_xstrdup(dir);
	s->uidvalidity = uidvalidity;
	s->uidnext = uidnext;
	if (stamp != NULL) {
		s->stamped = true;
		s->stamp = *stamp;
	}
	for (i = 0; i < n; i++)
		bytes += strlen(msgs[i].base) + 1 + (stamp != NULL ? strlen(msgs[i].file) + 1 : 0);
	s->names = sp_xmalloc(bytes);
	s->e = sp_xcalloc(n, sizeof(*s->e));
	for (i = 0; i < n; i++) {
		size_t l = strlen(msgs[i].base) + 1;

		memcpy(s->names + at, msgs[i].base, l);
		s->e[i] = (struct stat_snap_entry){.base = s->names + at, .uid = msgs[i].uid,
						   .flags = msgs[i].flags,
						   .keywords = msgs[i].keywords,
						   .size = msgs[i].size,
						   .mtime = msgs[i].internaldate};
		at += l;
		if (stamp != NULL) {
			l = strlen(msgs[i].file) + 1;
			memcpy(s->names + at, msgs[i].file, l);
			s->e[i].file = s->names + at;
			at += l;
		}
	}
	s->n = n;
	qsort(s->e, s->n, sizeof(*s->e), cmp_entry);

	pthread_mutex_lock(&snaps_lock);
	/* this dir's old one goes; else the least recently published */
	for (i = 0; i < STORE_STAT_SNAPS - 1 && snaps[i] != NULL; i++)
		if (strcmp(snaps[i]->dir, dir) == 0)
			break;
	old = snaps[i];
	memmove(&snaps[1], &snaps[0], i * sizeof(snaps[0]));
	snaps[0] = s;
	snap_unref_locked(old);
	pthread_mutex_unlock(&snaps_lock);
}

static void file_stamp(const char *path, struct store_file_stamp *fs)
{
	struct stat st;

	memset(fs, 0, sizeof(*fs));
	if (stat(path, &st) < 0)
		return;
	fs->exists = true;
	fs->dev = (uint64_t)st.st_dev;
	fs->ino = (uint64_t)st.st_ino;
	fs->size = (uint64_t)st.st_size;
	fs->mtime_sec = (int64_t)st.st_mtim.tv_sec;
	fs->mtime_nsec = st.st_mtim.tv_nsec;
}

void store_scan_stamp_take(const char *dir, struct store_scan_stamp *st)
{
	char path[PATH_MAX];
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	st->taken_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
	if (store_path(path, sizeof(path), "%s/cur", dir) < 0)
		memset(&st->cur, 0, sizeof(st->cur));
	else
		file_stamp(path, &st->cur);
	if (store_path(path, sizeof(path), "%s/%s", dir, STORE_UIDLIST_NAME) < 0)
		memset(&st->list, 0, sizeof(st->list));
	else
		file_stamp(path, &st->list);
}

static bool file_stamp_equal(const struct store_file_stamp *a, const struct store_file_stamp *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec;
}

bool store_scan_stamp_equal(const struct store_scan_stamp *a, const struct store_scan_stamp *b)
{
	return file_stamp_equal(&a->cur, &b->cur) && file_stamp_equal(&a->list, &b->list);
}

static bool file_settled(const struct store_file_stamp *fs, int64_t taken_ns)
{
	int64_t m = fs->mtime_sec * 1000000000LL + fs->mtime_nsec;

	return fs->exists && m + STORE_SCAN_SETTLE_NS < taken_ns;
}

bool store_scan_stamp_settled(const struct store_scan_stamp *st)
{
	return file_settled(&st->cur, st->taken_ns) && file_settled(&st->list, st->taken_ns);
}

struct store_stat_snap *store_stat_snap_get_stamped(const char *dir,
						    const struct store_scan_stamp *st)
{
	struct store_stat_snap *s = NULL;

	pthread_mutex_lock(&snaps_lock);
	for (size_t i = 0; i < STORE_STAT_SNAPS && snaps[i] != NULL; i++) {
		if (strcmp(snaps[i]->dir, dir) == 0) {
			if (store_stat_snap_has_stamp(snaps[i], st)) {
				s = snaps[i];
				s->refs++;
			}
			break;
		}
	}
	pthread_mutex_unlock(&snaps_lock);
	return s;
}

bool store_stat_snap_has_stamp(const struct store_stat_snap *s, const struct store_scan_stamp *st)
{
	return s != NULL && s->stamped && store_scan_stamp_equal(&s->stamp, st);
}

size_t store_stat_snap_view(const struct store_stat_snap *s, struct store_msg **msgs_r,
			    uint32_t *uidvalidity_r, uint32_t *uidnext_r)
{
	struct store_msg *v = sp_xcalloc(s->n + 1, sizeof(*v));

	for (size_t i = 0; i < s->n; i++) {
		const struct stat_snap_entry *e = &s->e[i];

		v[i] = (struct store_msg){.uid = e->uid, .flags = e->flags, .keywords = e->keywords,
					  .size = e->size, .internaldate = e->mtime,
					  .file = sp_xstrdup(e->file), .base = sp_xstrdup(e->base)};
	}
	*msgs_r = v;
	*uidvalidity_r = s->uidvalidity;
	*uidnext_r = s->uidnext;
	return s->n;
}

void store_stat_snap_flush(void)
{
	pthread_mutex_lock(&snaps_lock);
	for (size_t i = 0; i < STORE_STAT_SNAPS; i++) {
		snap_unref_locked(snaps[i]);
		snaps[i] = NULL;
	}
	pthread_mutex_unlock(&snaps_lock);
}
