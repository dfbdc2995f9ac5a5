/* The users, aliases and mapping tables as one reference-counted snapshot.
 * SIGHUP loads a new one beside the old; sessions (and their pool jobs)
 * keep the snapshot they started with until they end, so a reload never
 * changes the rules in the middle of a transaction, and a file that does
 * not parse is refused while the old snapshot stays in force. */
#include "mailcore/mailcore.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "common/xalloc.h"

struct dir_tables *dir_tables_load(const char *users_path, const char *aliases_path,
				   const char *mappings_path, char **error_r)
{
	struct dir_tables *t = sp_xcalloc(1, sizeof(*t));

	atomic_init(&t->refs, 1);
	t->users = dir_users_load(users_path, error_r);
	if (t->users == NULL)
		goto fail;
	if (aliases_path != NULL && (t->aliases = dir_aliases_load(aliases_path, error_r)) == NULL)
		goto fail;
	if (mappings_path != NULL && (t->maps = mappings_load(mappings_path, error_r)) == NULL)
		goto fail;
	return t;
fail:
	dir_tables_unref(&t);
	return NULL;
}

struct dir_tables *dir_tables_ref(struct dir_tables *t)
{
	if (t != NULL)
		atomic_fetch_add(&t->refs, 1);
	return t;
}

void dir_tables_unref(struct dir_tables **tp)
{
	struct dir_tables *t;

	if (tp == NULL || *tp == NULL)
		return;
	t = *tp;
	*tp = NULL;
	if (atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	dir_users_free(&t->users);
	dir_aliases_free(&t->aliases);
	mappings_free(&t->maps);
	free(t);
}
