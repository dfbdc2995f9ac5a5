/* Private to certdb: the in-memory database shared by the read side
 * (certdb.c) and the writers (certdb_write.c). */
#ifndef SP_CERTDB_DB_H
#define SP_CERTDB_DB_H

#include <stddef.h>
#include "certdb/certdb.h"

struct sp_certdb {
	char *dir;
	struct sp_certdb_entry *entries;
	size_t count, cap;
};

/* Reads a whole regular file of at most max bytes; *buf_r is NUL-terminated
 * (caller frees). 0, or -1 with *error_r naming the path. */
int sp_certdb_read_file(const char *path, size_t max, char **buf_r, size_t *len_r,
			char **error_r);

#endif
