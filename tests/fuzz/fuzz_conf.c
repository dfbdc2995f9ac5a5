/* libFuzzer target for the sealpost.conf parser (common/conf*.c): arbitrary
 * bytes against a fixed schema with every type, '*' patterns, an ENUM and a
 * SECRET key. The parser must never crash, leak or hang; when a parse
 * succeeds every getter, sp_conf_match, sp_conf_wild and the reference run
 * over what it stored. Seeds: tests/fuzz/corpus/conf/. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const levels[] = { "debug", "info", "warn", NULL };

static const struct sp_conf_key fuzz_keys[] = {
	{ "port", SP_CONF_INT, "25", "int with bounds", 1, 65535, NULL, 0 },
	{ "count", SP_CONF_INT, NULL, "int without bounds", 0, 0, NULL, 0 },
	{ "buf", SP_CONF_SIZE, "64k", "size", 1024, 1LL << 40, NULL, 0 },
	{ "timeout", SP_CONF_DURATION, "30s", "duration", 0, 0, NULL, 0 },
	{ "flag", SP_CONF_BOOL, "no", "bool", 0, 0, NULL, 0 },
	{ "name", SP_CONF_STRING, NULL, "string", 0, 0, NULL, 0 },
	{ "level", SP_CONF_ENUM, "info", "enum", 0, 0, levels, 0 },
	{ "names", SP_CONF_LIST, "a, \"b, c\"", "list", 0, 0, NULL, 0 },
	{ "secret.pin", SP_CONF_STRING, NULL, "secret", 0, 0, NULL, SP_CONF_SECRET },
	{ "service.*.port", SP_CONF_INT, "7", "pattern int", 1, 65535, NULL, 0 },
	{ "service.*.names", SP_CONF_LIST, NULL, "pattern list", 0, 0, NULL, 0 },
	{ "service.*.level", SP_CONF_ENUM, NULL, "pattern enum", 0, 0, levels, 0 },
	{ "map.*.*.size", SP_CONF_SIZE, NULL, "two wildcards", 0, 0, NULL, 0 },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, 0 },
};

/* Reads key through the getter its type calls for; the results are folded
 * into sink so the calls cannot be optimised away. */
static size_t read_key(const struct sp_conf *conf, const struct sp_conf_key *key,
		       const char *name)
{
	const char *const *items;
	const char *s;
	size_t sink = sp_conf_isset(conf, name);

	switch (key->type) {
	case SP_CONF_INT:
	case SP_CONF_SIZE:
	case SP_CONF_DURATION:
		return sink + (size_t)sp_conf_int(conf, name);
	case SP_CONF_BOOL:
		return sink + sp_conf_bool(conf, name);
	case SP_CONF_STRING:
	case SP_CONF_ENUM:
		s = sp_conf_str(conf, name);
		return sink + (s != NULL ? strlen(s) : 0);
	case SP_CONF_LIST: {
		size_t n = sp_conf_list(conf, name, &items);

		for (size_t i = 0; i < n; i++)
			sink += strlen(items[i]);
		return sink + (items[n] == NULL);
	}
	}
	return sink;
}

static size_t read_pattern(struct sp_conf *conf, const struct sp_conf_key *key)
{
	const char *const *names;
	size_t n = sp_conf_match(conf, key->name, &names), sink = n;
	char wild[64];

	for (size_t i = 0; i < n; i++) {
		for (int idx = 0; idx < 3; idx++) {
			if (sp_conf_wild(key->name, names[i], idx, wild, sizeof(wild)) == 0)
				sink += strlen(wild);
		}
		sink += read_key(conf, key, names[i]);
	}
	return sink;
}

static size_t read_everything(struct sp_conf *conf)
{
	size_t sink = 0;

	for (const struct sp_conf_key *key = fuzz_keys; key->name != NULL; key++) {
		if (strchr(key->name, '*') != NULL)
			sink += read_pattern(conf, key);
		else
			sink += read_key(conf, key, key->name);
	}
	/* an instance of each pattern that the input may not have set: defaults */
	sink += (size_t)sp_conf_int(conf, "service.fuzz.port");
	sink += (size_t)sp_conf_int(conf, "map.a.b.size");
	return sink;
}

static void write_reference(const struct sp_conf *conf)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (out == NULL)
		abort();
	sp_conf_write_reference(conf, out);
	fclose(out);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_conf *conf = sp_conf_new();
	char *error = NULL;
	volatile size_t sink;

	if (sp_conf_add_schema(conf, "fuzz", fuzz_keys, &error) < 0)
		abort();  /* the schema above is fixed: this is a bug in the parser */
	if (sp_conf_parse(conf, "fuzz.conf", (const char *)data, size, &error) == 0) {
		sink = read_everything(conf);
		(void)sink;
		write_reference(conf);
		/* the same bytes again as a second file: duplicates across files */
		if (sp_conf_parse(conf, "again.conf", (const char *)data, size, &error) < 0)
			free(error);
	} else {
		/* every error names the file and a line */
		if (error == NULL || strncmp(error, "fuzz.conf:", 10) != 0)
			abort();
		free(error);
	}
	sp_conf_free(&conf);
	return 0;
}
