/* Private to mailcore: reading the small text files the directory and the
 * mapping tables are made of (whole file, bounded), and walking their lines. */
#ifndef MAILCORE_MC_FILE_H
#define MAILCORE_MC_FILE_H

#include <stdbool.h>
#include <stddef.h>

/* Reads path whole into a fresh NUL-terminated buffer (caller frees).
 * Returns 0, or -1 with *error_r ("PATH: reason", caller frees) if it cannot
 * be read or is larger than max bytes. */
int mc_file_read(const char *path, size_t max, char **buf_r, size_t *len_r, char **error_r);

/* Line iterator over buf[0..len): yields each line without its LF (and
 * without a CR before the LF); lineno counts from 1. */
struct mc_lines {
	const char *buf;
	size_t len, pos;
	unsigned lineno;
};
void mc_lines_init(struct mc_lines *it, const char *buf, size_t len);
bool mc_lines_next(struct mc_lines *it, const char **line_r, size_t *len_r);

/* Lower-case ASCII host name: labels of [a-z0-9-], no empty label, no
 * leading/trailing '-', at most 255 octets. */
bool mc_valid_hostname(const char *s, size_t n);
/* A local part we accept in our own files (it becomes a directory name):
 * [a-z0-9._+-]+, no leading, trailing or doubled '.', at most 64 octets. */
bool mc_valid_local_part(const char *s, size_t n);
/* Writes the lower-cased address into buf; -1 if it does not fit or is not
 * local@domain with both parts valid as above. */
int mc_normalize_address(const char *s, size_t n, char *buf, size_t cap);

#endif
