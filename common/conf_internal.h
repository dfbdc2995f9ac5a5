/* Private to the sealpost.conf parser (common/conf*.c): the in-memory shape of
 * a configuration and the helpers its files share. Other code includes only
 * common/conf.h. */
#ifndef SP_CONF_INTERNAL_H
#define SP_CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/conf.h"

/* Input limits promised by conf.h. */
#define CONF_MAX_FILE (1024 * 1024)
#define CONF_MAX_LINE (64 * 1024)
#define CONF_MAX_KEYS 10000

/* A parsed value; which fields mean something depends on the key's type. */
struct conf_value {
	long long num;       /* INT, SIZE (bytes), DURATION (ms), BOOL (0/1) */
	char *str;           /* STRING: owned */
	const char *choice;  /* ENUM: points into the key's choices */
	char **items;        /* LIST: owned, NULL-terminated, never NULL once parsed */
	size_t n_items;
};

/* One schema key, registered by sp_conf_add_schema. */
struct conf_entry {
	const struct sp_conf_key *key;  /* the component's static table */
	const char *component;          /* owned by sp_conf (conf->components) */
	struct conf_value def;
	bool has_def;
};

/* One key set in a file, in file order. */
struct conf_set {
	char *name;             /* full key as written (no '*') */
	size_t entry;           /* index into conf->entries */
	struct conf_value value;
	const char *file;       /* owned by sp_conf (conf->files) */
	unsigned line;          /* first physical line of the logical line */
};

/* Open-addressing string -> index map; names are borrowed, not copied. */
struct conf_slot {
	const char *name;
	size_t idx;
};
struct conf_index {
	struct conf_slot *slots;
	size_t cap, count;
};

struct sp_conf {
	struct conf_entry *entries;
	size_t n_entries, cap_entries;
	struct conf_index exact;      /* schema names without '*' -> entry */
	size_t *patterns;             /* entries whose name has a '*' */
	size_t n_patterns, cap_patterns;
	char **components;            /* section names, registration order */
	size_t n_components;

	struct conf_set *sets;
	size_t n_sets, cap_sets;
	struct conf_index set_index;  /* full key -> set */
	char **files;                 /* names given to sp_conf_parse */
	size_t n_files;

	const char **match_names;     /* last sp_conf_match result */
};

/* conf.c: lookups the parser shares with the getters. */
const struct conf_entry *conf_find_entry(const struct sp_conf *conf, const char *key, size_t *idx_r);
bool conf_index_get(const struct conf_index *index, const char *name, size_t *idx_r);
void conf_index_put(struct conf_index *index, const char *name, size_t idx);

/* conf_value.c: values. text is the value as written after '=' with blanks
 * trimmed (possibly quoted). keyname is the key as the operator wrote it.
 * Returns 0, or -1 with *why_r = a message without file and line (caller
 * frees) that never contains the value of a secret key. */
int conf_value_parse(const struct sp_conf_key *key, const char *keyname, const char *text,
		     size_t len, struct conf_value *value, char **why_r);
/* Frees what value owns, wiping it first for secret keys. */
void conf_value_clear(const struct sp_conf_key *key, struct conf_value *value);
/* A bound or number in the key's unit, as an operator writes it: 64k, 30s. */
void conf_format_number(enum sp_conf_type type, long long num, char *buf, size_t cap);
/* For echoing operator text in messages: printable ASCII kept, other bytes as
 * \xNN, truncated with "..." past about 60 bytes. Always NUL-terminates. */
void conf_quote(char *buf, size_t cap, const char *s, size_t len);
#define CONF_QUOTE_MAX 256
const char *conf_type_name(enum sp_conf_type type);

/* conf_name.c: key names and '*' patterns. */
bool conf_name_valid(const char *s, size_t len, bool allow_star);
bool conf_name_has_star(const char *s);
bool conf_pattern_match(const char *pattern, const char *key);
bool conf_patterns_overlap(const char *a, const char *b);

#endif
