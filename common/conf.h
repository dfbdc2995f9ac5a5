/* sealpost.conf: "key = value" lines with dotted keys, checked against a
 * schema that each component declares (type, default, one-line description).
 * An unknown key, a bad value or a duplicate key is an error naming file and
 * line. The configuration reference (docs/CONFIG.md) is generated from the
 * same schema. The parser is pure (sp_conf_parse takes a buffer).
 *
 * Syntax
 *   # comment (a line whose first non-blank character is '#')
 *   key = value            value: the rest of the line, blanks trimmed
 *   key = "value"          quotes keep blanks; \" and \\ escape inside them
 *   key = a, b, "c d"      lists are comma-separated
 *   a line ending in '\' continues on the next line
 * Keys: [a-z0-9_-] segments joined by '.'; a schema name may use '*' for one
 * segment (service.*.sslport matches service.imap.sslport).
 * Values by type
 *   INT       decimal, optional leading '-'
 *   SIZE      bytes; suffix k, m, g (binary: 64k = 65536)
 *   DURATION  stored in milliseconds; suffix ms, s, m, h, d; bare number = seconds
 *   BOOL      yes/no, true/false, on/off, 1/0
 *   STRING    any text
 *   ENUM      one of the key's choices
 *   LIST      comma-separated strings (may be empty)
 */
#ifndef SP_CONF_H
#define SP_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum sp_conf_type {
	SP_CONF_INT,
	SP_CONF_SIZE,
	SP_CONF_DURATION,
	SP_CONF_BOOL,
	SP_CONF_STRING,
	SP_CONF_ENUM,
	SP_CONF_LIST,
};

#define SP_CONF_SECRET 0x1  /* value is never echoed in errors or the reference */

struct sp_conf_key {
	const char *name;            /* dotted, may contain "*" segments */
	enum sp_conf_type type;
	const char *def;             /* default, written as in the file; NULL = unset */
	const char *desc;            /* one line for the reference */
	long long min, max;          /* INT/SIZE/DURATION bounds (in stored units); min == max == 0: none */
	const char *const *choices;  /* ENUM: NULL-terminated */
	unsigned flags;
};
/* A component's table ends with an entry whose name is NULL. */

struct sp_conf;

/* A config that knows no keys yet. Caller frees with sp_conf_free. */
struct sp_conf *sp_conf_new(void);
void sp_conf_free(struct sp_conf **conf);

/* Adds a component's keys. The same name twice (also across components) is a
 * programming error: returns -1 with *error_r set. component names the
 * section of the reference ("tlsd", "mailcore", ...). */
int sp_conf_add_schema(struct sp_conf *conf, const char *component,
		       const struct sp_conf_key *keys, char **error_r);

/* Parses buf (len bytes; need not be NUL-terminated) as file `name` and
 * stores the values. On the first error returns -1 and *error_r =
 * "NAME:LINE: message" (caller frees); the values stored so far are
 * unspecified: throw the sp_conf away. Input limits: 1 MiB per file, 64 KiB
 * per logical line, 10000 keys. */
int sp_conf_parse(struct sp_conf *conf, const char *name, const char *buf, size_t len,
		  char **error_r);
/* Reads path and parses it. */
int sp_conf_load(struct sp_conf *conf, const char *path, char **error_r);

/* Lookups by full key name (no '*'). A key that is not in the schema is a
 * programming error: it aborts with a log line. Unset keys without a default
 * read as 0 / false / NULL / empty list. */
bool sp_conf_isset(const struct sp_conf *conf, const char *key);   /* set in the file */
long long sp_conf_int(const struct sp_conf *conf, const char *key); /* INT, SIZE, DURATION */
bool sp_conf_bool(const struct sp_conf *conf, const char *key);
const char *sp_conf_str(const struct sp_conf *conf, const char *key); /* STRING, ENUM */
/* LIST: returns the count; *items_r points to conf-owned strings. */
size_t sp_conf_list(const struct sp_conf *conf, const char *key, const char *const **items_r);

/* Keys set in the file that match pattern (a schema name with '*'), in file
 * order; for enumerating services. Returns the count; *names_r is owned by
 * conf and valid until the next call or sp_conf_free. */
size_t sp_conf_match(struct sp_conf *conf, const char *pattern, const char *const **names_r);
/* The value bound to '*' number idx (0-based) of a full key matched against a
 * pattern: sp_conf_wild("service.*.sslport", "service.imap.sslport", 0, buf, n)
 * writes "imap". Returns 0 or -1 if it does not match. */
int sp_conf_wild(const char *pattern, const char *key, int idx, char *buf, size_t cap);

/* Writes the Markdown reference of every registered key, grouped by component
 * in registration order: name, type, default, bounds/choices, description. */
void sp_conf_write_reference(const struct sp_conf *conf, FILE *out);

#endif
