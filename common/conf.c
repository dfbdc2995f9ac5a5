/* sealpost.conf: the schema registry (sp_conf_add_schema), the getters the
 * daemons call after parsing, key enumeration for '*' patterns, and the
 * Markdown reference. The file syntax itself is in conf_parse.c, values in
 * conf_value.c, key names in conf_name.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/conf_internal.h"
#include "common/log.h"
#include "common/xalloc.h"

/* ---- string -> index map (open addressing, linear probing) ---- */

/* FNV-1a: keys come from the administrator's file, not the network, and are
 * at most CONF_MAX_KEYS, so worst-case probing stays bounded. */
static uint64_t hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

bool conf_index_get(const struct conf_index *index, const char *name, size_t *idx_r)
{
	if (index->cap == 0)
		return false;
	for (size_t i = hash_name(name) & (index->cap - 1);; i = (i + 1) & (index->cap - 1)) {
		const struct conf_slot *slot = &index->slots[i];

		if (slot->name == NULL)
			return false;
		if (strcmp(slot->name, name) == 0) {
			*idx_r = slot->idx;
			return true;
		}
	}
}

static void index_insert(struct conf_index *index, const char *name, size_t idx)
{
	size_t i = hash_name(name) & (index->cap - 1);

	while (index->slots[i].name != NULL)
		i = (i + 1) & (index->cap - 1);
	index->slots[i].name = name;
	index->slots[i].idx = idx;
	index->count++;
}

/* The caller has checked that name is not present yet. */
void conf_index_put(struct conf_index *index, const char *name, size_t idx)
{
	if ((index->count + 1) * 2 > index->cap) {
		struct conf_index grown = { NULL, index->cap ? index->cap * 2 : 64, 0 };

		grown.slots = sp_xcalloc(grown.cap, sizeof(*grown.slots));
		for (size_t i = 0; i < index->cap; i++) {
			if (index->slots[i].name != NULL)
				index_insert(&grown, index->slots[i].name, index->slots[i].idx);
		}
		free(index->slots);
		*index = grown;
	}
	index_insert(index, name, idx);
}

/* ---- life cycle ---- */

struct sp_conf *sp_conf_new(void)
{
	return sp_xcalloc(1, sizeof(struct sp_conf));
}

void sp_conf_free(struct sp_conf **confp)
{
	struct sp_conf *conf = confp != NULL ? *confp : NULL;

	if (conf == NULL)
		return;
	for (size_t i = 0; i < conf->n_sets; i++) {
		conf_value_clear(conf->entries[conf->sets[i].entry].key, &conf->sets[i].value);
		free(conf->sets[i].name);
	}
	for (size_t i = 0; i < conf->n_entries; i++)
		conf_value_clear(conf->entries[i].key, &conf->entries[i].def);
	for (size_t i = 0; i < conf->n_components; i++)
		free(conf->components[i]);
	for (size_t i = 0; i < conf->n_files; i++)
		free(conf->files[i]);
	free(conf->sets);
	free(conf->set_index.slots);
	free(conf->entries);
	free(conf->exact.slots);
	free(conf->patterns);
	free(conf->components);
	free(conf->files);
	free(conf->match_names);
	free(conf);
	*confp = NULL;
}

/* ---- schema ---- */

static const char *intern_component(struct sp_conf *conf, const char *component)
{
	for (size_t i = 0; i < conf->n_components; i++) {
		if (strcmp(conf->components[i], component) == 0)
			return conf->components[i];
	}
	conf->components = sp_xrealloc(conf->components, conf->n_components + 1,
				       sizeof(*conf->components));
	conf->components[conf->n_components] = sp_xstrdup(component);
	return conf->components[conf->n_components++];
}

/* Does name clash with a key already registered, or with one earlier in the
 * table being added? Exact names must be unique; patterns must not overlap
 * (an exact name inside a pattern is allowed: it is the more specific). */
static const char *clash(const struct sp_conf *conf, const struct sp_conf_key *keys, size_t n)
{
	const char *name = keys[n].name;
	bool star = conf_name_has_star(name);
	size_t idx;

	if (!star && conf_index_get(&conf->exact, name, &idx))
		return conf->entries[idx].key->name;
	for (size_t i = 0; star && i < conf->n_patterns; i++) {
		const char *other = conf->entries[conf->patterns[i]].key->name;

		if (conf_patterns_overlap(name, other))
			return other;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].name, name) == 0 ||
		    (star && conf_name_has_star(keys[i].name) &&
		     conf_patterns_overlap(name, keys[i].name)))
			return keys[i].name;
	}
	return NULL;
}

static const char *check_shape(const struct sp_conf_key *key)
{
	bool numeric = key->type == SP_CONF_INT || key->type == SP_CONF_SIZE ||
		       key->type == SP_CONF_DURATION;

	if (!conf_name_valid(key->name, strlen(key->name), true))
		return "bad name (segments of a-z 0-9 _ - or '*', joined by '.')";
	if (key->type < SP_CONF_INT || key->type > SP_CONF_LIST)
		return "unknown type";
	if (key->desc == NULL || key->desc[0] == '\0' || strchr(key->desc, '\n') != NULL)
		return "needs a one-line description";
	if ((key->flags & ~(unsigned)SP_CONF_SECRET) != 0)
		return "unknown flags";
	if ((key->type == SP_CONF_ENUM) != (key->choices != NULL))
		return "choices are for ENUM keys, and ENUM keys need them";
	if (key->type == SP_CONF_ENUM && key->choices[0] == NULL)
		return "ENUM without choices";
	if (!numeric && (key->min != 0 || key->max != 0))
		return "bounds are for INT, SIZE and DURATION keys";
	if (key->min > key->max)
		return "min > max";
	if (key->type != SP_CONF_INT && key->min < 0)
		return "negative bound for a SIZE or DURATION";
	return NULL;
}

static int check_key(const struct sp_conf *conf, const char *component,
		     const struct sp_conf_key *keys, size_t n, struct conf_value *def,
		     char **error_r)
{
	const struct sp_conf_key *key = &keys[n];
	const char *problem = check_shape(key), *other;
	char *why;

	if (problem != NULL) {
		*error_r = sp_xasprintf("schema %s: key '%s': %s", component, key->name, problem);
		return -1;
	}
	other = clash(conf, keys, n);
	if (other != NULL) {
		*error_r = sp_xasprintf("schema %s: key '%s' clashes with '%s' registered before",
					component, key->name, other);
		return -1;
	}
	if (key->def != NULL &&
	    conf_value_parse(key, key->name, key->def, strlen(key->def), def, &why) < 0) {
		*error_r = sp_xasprintf("schema %s: bad default: %s", component, why);
		free(why);
		return -1;
	}
	return 0;
}

static void add_entry(struct sp_conf *conf, const char *component,
		      const struct sp_conf_key *key, const struct conf_value *def)
{
	struct conf_entry *entry;
	size_t idx = conf->n_entries;

	if (conf->n_entries == conf->cap_entries) {
		conf->cap_entries = conf->cap_entries ? conf->cap_entries * 2 : 32;
		conf->entries = sp_xrealloc(conf->entries, conf->cap_entries, sizeof(*conf->entries));
	}
	entry = &conf->entries[conf->n_entries++];
	entry->key = key;
	entry->component = component;
	entry->def = *def;
	entry->has_def = key->def != NULL;
	if (!conf_name_has_star(key->name)) {
		conf_index_put(&conf->exact, key->name, idx);
		return;
	}
	if (conf->n_patterns == conf->cap_patterns) {
		conf->cap_patterns = conf->cap_patterns ? conf->cap_patterns * 2 : 8;
		conf->patterns = sp_xrealloc(conf->patterns, conf->cap_patterns,
					     sizeof(*conf->patterns));
	}
	conf->patterns[conf->n_patterns++] = idx;
}

/* All keys are checked before any is added, so a bad table leaves conf as it was. */
int sp_conf_add_schema(struct sp_conf *conf, const char *component,
		       const struct sp_conf_key *keys, char **error_r)
{
	struct conf_value *defs;
	size_t n = 0;
	int ret = 0;

	if (component == NULL || component[0] == '\0' || keys == NULL) {
		*error_r = sp_xstrdup("schema: component name and key table required");
		return -1;
	}
	while (keys[n].name != NULL)
		n++;
	defs = sp_xcalloc(n + 1, sizeof(*defs));
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = check_key(conf, component, keys, i, &defs[i], error_r);
	if (ret == 0) {
		const char *section = intern_component(conf, component);

		for (size_t i = 0; i < n; i++)
			add_entry(conf, section, &keys[i], &defs[i]);
	} else {
		for (size_t i = 0; i < n; i++)
			conf_value_clear(&keys[i], &defs[i]);
	}
	free(defs);
	return ret;
}

/* ---- lookups ---- */

const struct conf_entry *conf_find_entry(const struct sp_conf *conf, const char *key, size_t *idx_r)
{
	size_t idx;

	if (!conf_name_valid(key, strlen(key), false))
		return NULL;
	if (!conf_index_get(&conf->exact, key, &idx)) {
		size_t i;

		for (i = 0; i < conf->n_patterns; i++) {
			if (conf_pattern_match(conf->entries[conf->patterns[i]].key->name, key))
				break;
		}
		if (i == conf->n_patterns)
			return NULL;
		idx = conf->patterns[i];
	}
	if (idx_r != NULL)
		*idx_r = idx;
	return &conf->entries[idx];
}

/* A getter called with a key outside the schema, or of another type, is a
 * bug in the caller: fail loudly at the first run rather than read a zero. */
static void __attribute__((noreturn)) misuse(const char *event, const char *key)
{
	sp_log(SP_LOG_CRIT, event, "key=%s", key != NULL ? key : "(null)");
	abort();
}

/* The value a getter reads: the file's, else the default, else NULL (unset). */
static const struct conf_value *lookup(const struct sp_conf *conf, const char *key,
				       unsigned type_mask)
{
	const struct conf_entry *entry;
	const struct conf_value *value;
	size_t idx;

	if (conf == NULL || key == NULL)
		misuse("conf_unknown_key", key);
	if (conf_index_get(&conf->set_index, key, &idx)) {
		entry = &conf->entries[conf->sets[idx].entry];
		value = &conf->sets[idx].value;
	} else {
		entry = conf_find_entry(conf, key, NULL);
		if (entry == NULL)
			misuse("conf_unknown_key", key);
		value = entry->has_def ? &entry->def : NULL;
	}
	if ((type_mask & (1u << entry->key->type)) == 0)
		misuse("conf_type_mismatch", key);
	return value;
}

#define TYPE_BIT(t) (1u << (t))

bool sp_conf_isset(const struct sp_conf *conf, const char *key)
{
	size_t idx;

	(void)lookup(conf, key, ~0u);
	return conf_index_get(&conf->set_index, key, &idx);
}

long long sp_conf_int(const struct sp_conf *conf, const char *key)
{
	const struct conf_value *value = lookup(conf, key, TYPE_BIT(SP_CONF_INT) |
						TYPE_BIT(SP_CONF_SIZE) |
						TYPE_BIT(SP_CONF_DURATION));

	return value != NULL ? value->num : 0;
}

bool sp_conf_bool(const struct sp_conf *conf, const char *key)
{
	const struct conf_value *value = lookup(conf, key, TYPE_BIT(SP_CONF_BOOL));

	return value != NULL && value->num != 0;
}

const char *sp_conf_str(const struct sp_conf *conf, const char *key)
{
	const struct conf_value *value = lookup(conf, key, TYPE_BIT(SP_CONF_STRING) |
						TYPE_BIT(SP_CONF_ENUM));

	if (value == NULL)
		return NULL;
	return value->choice != NULL ? value->choice : value->str;
}

size_t sp_conf_list(const struct sp_conf *conf, const char *key, const char *const **items_r)
{
	static const char *const no_items[] = { NULL };
	const struct conf_value *value = lookup(conf, key, TYPE_BIT(SP_CONF_LIST));

	if (value == NULL) {
		*items_r = no_items;
		return 0;
	}
	*items_r = (const char *const *)value->items;
	return value->n_items;
}

size_t sp_conf_match(struct sp_conf *conf, const char *pattern, const char *const **names_r)
{
	size_t n = 0;

	free(conf->match_names);
	conf->match_names = sp_xcalloc(conf->n_sets + 1, sizeof(*conf->match_names));
	for (size_t i = 0; pattern != NULL && i < conf->n_sets; i++) {
		if (conf_pattern_match(pattern, conf->sets[i].name))
			conf->match_names[n++] = conf->sets[i].name;
	}
	*names_r = conf->match_names;
	return n;
}

/* ---- reference ---- */

/* Markdown table cell: '|' would end the cell; outside code spans '<' could
 * open an HTML tag and hide the text. */
static void md_cell(FILE *out, const char *s, bool code)
{
	for (; *s != '\0'; s++) {
		if (*s == '|')
			fputc('\\', out);
		if (*s == '<' && !code)
			fputs("&lt;", out);
		else
			fputc(*s, out);
	}
}

static void md_code(FILE *out, const char *s)
{
	const char *fence = strchr(s, '`') != NULL ? "`` " : "`";

	fputs(fence, out);
	md_cell(out, s[0] == '\0' ? "\"\"" : s, true);
	fputs(strchr(s, '`') != NULL ? " ``" : "`", out);
}

static void write_values(FILE *out, const struct sp_conf_key *key)
{
	char lo[64], hi[64];

	switch (key->type) {
	case SP_CONF_BOOL:
		fputs("yes, no", out);
		break;
	case SP_CONF_ENUM:
		for (const char *const *c = key->choices; *c != NULL; c++) {
			if (c != key->choices)
				fputs(", ", out);
			md_code(out, *c);
		}
		break;
	case SP_CONF_LIST:
		fputs("comma-separated", out);
		break;
	case SP_CONF_STRING:
		break;
	default:
		if (key->min == 0 && key->max == 0)
			break;
		conf_format_number(key->type, key->min, lo, sizeof(lo));
		conf_format_number(key->type, key->max, hi, sizeof(hi));
		fprintf(out, "%s .. %s", lo, hi);
		break;
	}
}

static void write_row(FILE *out, const struct sp_conf_key *key)
{
	fputs("| ", out);
	md_code(out, key->name);
	fprintf(out, " | %s%s | ", conf_type_name(key->type),
		(key->flags & SP_CONF_SECRET) ? ", secret" : "");
	if (key->def == NULL)
		fputs("(none)", out);
	else if (key->flags & SP_CONF_SECRET)
		fputs("(hidden)", out);
	else
		md_code(out, key->def);
	fputs(" | ", out);
	write_values(out, key);
	fputs(" | ", out);
	md_cell(out, key->desc, false);
	fputs(" |\n", out);
}

void sp_conf_write_reference(const struct sp_conf *conf, FILE *out)
{
	for (size_t c = 0; c < conf->n_components; c++) {
		fprintf(out, "\n## %s\n\n", conf->components[c]);
		fputs("| Key | Type | Default | Values | Description |\n", out);
		fputs("|---|---|---|---|---|\n", out);
		for (size_t i = 0; i < conf->n_entries; i++) {
			if (conf->entries[i].component == conf->components[c])
				write_row(out, conf->entries[i].key);
		}
	}
}
