/* What stat(2) said of each message file of a mailbox (size, mtime),
 * shared by the sessions of one process: a SELECT of a mailbox another
 * session (or an earlier SELECT) already saw needs no stat per message.
 * Maildir file names are unique and a message file never changes in place
 * (flag changes rename it), so a base and its UID name the same bytes. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "mailcore/store_mailbox.h"

struct stat_snap_entry {
	const char *base;      /* into names */
	uint32_t uid;
	uint64_t size;
	time_t mtime;
};

struct store_stat_snap {
	unsigned refs;         /* under snaps_lock */
	char *dir;
	uint32_t uidvalidity;
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

void store_stat_snap_publish(const char *dir, uint32_t uidvalidity, const struct store_msg *msgs,
			     size_t n)
{
	struct store_stat_snap *s, *old = NULL;
	size_t bytes = 0, at = 0, i;

	if (n == 0 || n > STORE_STAT_SNAP_MAX_MESSAGES)
		return;
	s = sp_xcalloc(1, sizeof(*s));
	s->refs = 1;
	s->dir = sp_xstrdup(dir);
	s->uidvalidity = uidvalidity;
	for (i = 0; i < n; i++)
		bytes += strlen(msgs[i].base) + 1;
	s->names = sp_xmalloc(bytes);
	s->e = sp_xcalloc(n, sizeof(*s->e));
	for (i = 0; i < n; i++) {
		size_t l = strlen(msgs[i].base) + 1;

		memcpy(s->names + at, msgs[i].base, l);
		s->e[i] = (struct stat_snap_entry){.base = s->names + at, .uid = msgs[i].uid,
						   .size = msgs[i].size,
						   .mtime = msgs[i].internaldate};
		at += l;
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

void store_stat_snap_flush(void)
{
	pthread_mutex_lock(&snaps_lock);
	for (size_t i = 0; i < STORE_STAT_SNAPS; i++) {
		snap_unref_locked(snaps[i]);
		snaps[i] = NULL;
	}
	pthread_mutex_unlock(&snaps_lock);
}
