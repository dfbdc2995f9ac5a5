/* Private to mailcore's mapping tables: the compiled form that
 * mappings_parse.c builds from the file and mappings_match.c runs probes
 * through. */
#ifndef MAILCORE_MAPPINGS_PRIVATE_H
#define MAILCORE_MAPPINGS_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

enum map_pat_kind {
	MAP_PAT_LIT,   /* one character, compared case-insensitively (stored lower-case) */
	MAP_PAT_STAR,  /* '*': any run of characters, '|' included */
	MAP_PAT_ONE,   /* '%': exactly one character */
	MAP_PAT_NET,   /* $(a.b.c.d/n) or $(v6/n): an IP address in that subnet */
};

struct map_pat {
	uint8_t kind;
	uint8_t c;          /* MAP_PAT_LIT */
	uint8_t family;     /* MAP_PAT_NET: 4 or 6 */
	uint8_t prefix;     /* MAP_PAT_NET: prefix length */
	uint8_t addr[16];   /* MAP_PAT_NET: network, host bits cleared */
};

struct map_entry {
	struct map_pat *pat;
	size_t n_pat;
	unsigned n_wild;    /* wildcards in the pattern: $0 .. $(n_wild-1) */
	char *tmpl;         /* template as written, validated */
	unsigned lineno;
};

struct map_table {
	char name[64];      /* upper-case */
	struct map_entry *entries;
	size_t n, cap;
};

struct mappings {
	struct map_table *tables;
	size_t n, cap;
	size_t n_entries;   /* over all tables */
};

#define MAP_MAX_WILD 32

/* Case-insensitive table lookup (NULL if absent). */
const struct map_table *mappings_table(const struct mappings *maps, const char *name);

#endif
