/* libFuzzer target: the certdb index parser (certdb/certdb_index.h) on
 * arbitrary bytes; what it accepts must format and re-parse to the same
 * entries. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "certdb/certdb_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_certdb_entry *e = NULL, *e2 = NULL;
	size_t n = 0, n2 = 0, len;
	char *error = NULL, *text;

	if (sp_certdb_index_parse((const char *)data, size, &e, &n, &error) < 0) {
		if (error == NULL || strncmp(error, "index:", 6) != 0)
			abort();
		free(error);
		return 0;
	}
	text = sp_certdb_index_format(e, n, &len);
	if (sp_certdb_index_parse(text, len, &e2, &n2, &error) < 0 || n2 != n)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (e[i].kind != e2[i].kind || strcmp(e[i].nickname, e2[i].nickname) != 0 ||
		    strcmp(e[i].cert_file, e2[i].cert_file) != 0 || e[i].trust != e2[i].trust)
			abort();
	}
	free(text);
	sp_certdb_entries_free(e, n);
	sp_certdb_entries_free(e2, n2);
	return 0;
}
