/* Private to certdb: the pure index parser and serializer (bytes in, entries
 * out; no I/O), shared by certdb.c, certdb_write.c, the unit test and the
 * fuzz target. */
#ifndef SP_CERTDB_INDEX_H
#define SP_CERTDB_INDEX_H

#include <stddef.h>
#include "certdb/certdb.h"

#define SP_CERTDB_MAX_LINE 4096        /* bytes per index line, without LF */
#define SP_CERTDB_MAX_INDEX (4u << 20) /* bytes per index file */
#define SP_CERTDB_MAX_NICKNAME 255

/* Parses an index held in buf (len bytes, need not be NUL-terminated).
 * Returns 0 with *entries_r (caller frees with sp_certdb_entries_free) and
 * *count_r; or -1 with *error_r = "index:LINE: message" (caller frees). */
int sp_certdb_index_parse(const char *buf, size_t len, struct sp_certdb_entry **entries_r,
			  size_t *count_r, char **error_r);
void sp_certdb_entries_free(struct sp_certdb_entry *entries, size_t count);

/* Checks one entry as the parser would; 0, or -1 with *error_r (caller frees). */
int sp_certdb_entry_check(const struct sp_certdb_entry *e, char **error_r);
/* Deep copy of e into *dst. */
void sp_certdb_entry_copy(struct sp_certdb_entry *dst, const struct sp_certdb_entry *e);

/* Writes the index text for entries; returns a malloc'd buffer (caller
 * frees), *len_r its length. */
char *sp_certdb_index_format(const struct sp_certdb_entry *entries, size_t count, size_t *len_r);

/* A relative path inside the db dir: not empty, not absolute, no ".."
 * segment, no control bytes. */
int sp_certdb_relpath_ok(const char *path);

#endif
