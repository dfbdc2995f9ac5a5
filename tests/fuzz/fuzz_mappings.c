/* libFuzzer target for the mappings file parser and matcher: the input is
 * "file\0probe"; the file is parsed, and when it parses, the probe runs
 * through every table named in it and through the access tables. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/mailcore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const tables[] = {
		"PORT_ACCESS", "INTERNAL_IP", "FROM_ACCESS", "SEND_ACCESS", "ORIG_SEND_ACCESS",
		"MAIL_ACCESS", "ORIG_MAIL_ACCESS", "T", "A",
	};
	const uint8_t *nul = memchr(data, '\0', size);
	size_t flen = nul != NULL ? (size_t)(nul - data) : size;
	char *probe, *err = NULL;
	struct mappings *m;

	if (size > 65536)
		return 0;
	m = mappings_parse("fuzz", (const char *)data, flen, &err);
	if (m == NULL) {
		if (err == NULL || strncmp(err, "fuzz:", 5) != 0)
			abort(); /* every error names the file */
		free(err);
		return 0;
	}
	if (nul != NULL) {
		size_t plen = size - flen - 1;

		probe = malloc(plen + 1);
		memcpy(probe, nul + 1, plen);
		probe[plen] = '\0';
		for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
			struct mapping_result r;

			mappings_lookup(m, tables[i], probe, &r);
			if (r.verdict != MAPPING_NO_MATCH && !mappings_has_table(m, tables[i]))
				abort();
			if (memchr(r.text, '\0', sizeof(r.text)) == NULL)
				abort();
			for (const char *p = r.text; *p != '\0'; p++)
				if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
					abort(); /* reply text stays printable */
		}
		free(probe);
	}
	mappings_free(&m);
	return 0;
}
