/* libFuzzer target: the dovecot-keywords file parser (store_keywords.c) on
 * arbitrary bytes; every slot it keeps must hold a valid keyword atom,
 * unique by name, and survive the saved form's re-parse unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailcore/store_mailbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_keywords kw = {0}, again = {0};
	char text[STORE_KEYWORDS_MAX * (STORE_KEYWORD_LEN + 8) + 1];
	size_t bad = 0, len = 0;

	store_keywords_parse((const char *)data, size, &kw, &bad);
	for (size_t i = 0; i < STORE_KEYWORDS_MAX; i++) {
		if (kw.name[i] == NULL)
			continue;
		if (!store_keyword_valid(kw.name[i], strlen(kw.name[i])))
			abort();
		for (size_t k = 0; k < i; k++)
			if (kw.name[k] != NULL && strcasecmp(kw.name[k], kw.name[i]) == 0)
				abort();
		len += (size_t)sprintf(text + len, "%zu %s\n", i, kw.name[i]);
	}
	store_keywords_parse(text, len, &again, &bad);
	if (bad != 0)
		abort();
	for (size_t i = 0; i < STORE_KEYWORDS_MAX; i++)
		if ((kw.name[i] == NULL) != (again.name[i] == NULL) ||
		    (kw.name[i] != NULL && strcmp(kw.name[i], again.name[i]) != 0))
			abort();
	store_keywords_clear(&kw);
	store_keywords_clear(&again);
	return 0;
}
