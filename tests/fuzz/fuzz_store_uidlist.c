/* libFuzzer target: the UID list parser (store_uid.c) on arbitrary bytes.
 * What it keeps must be a list the store may trust: UIDs ascending, each
 * below UIDNEXT, bases that name a Maildir file; the whole lines it read
 * parse alone to the same list, and its saved form reads back unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/store_mailbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const struct store_uidlist *a, const struct store_uidlist *b)
{
	if (a->uidvalidity != b->uidvalidity || a->uidnext != b->uidnext || a->n != b->n)
		abort();
	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].uid != b->e[i].uid || strcmp(a->e[i].base, b->e[i].base) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_uidlist ul = {0}, again = {0};
	char *err = NULL, *text;
	size_t cap = 64, len;

	if (store_uidlist_parse((const char *)data, size, &ul, &err) < 0) {
		if (err == NULL || ul.n != 0)
			abort();
		free(err);
		return 0;
	}
	if (ul.uidvalidity == 0 || ul.uidnext == 0 || ul.valid_len > size || ul.valid_len == 0 ||
	    data[ul.valid_len - 1] != '\n')
		abort();
	for (size_t i = 0; i < ul.n; i++) {
		const char *b = ul.e[i].base;

		if (ul.e[i].uid == 0 || ul.e[i].uid >= ul.uidnext ||
		    (i > 0 && ul.e[i].uid <= ul.e[i - 1].uid) || *b == '\0' ||
		    strpbrk(b, "/: \n") != NULL)
			abort();
		cap += 12 + strlen(b);
	}
	/* a torn tail changes nothing: the whole lines alone read the same */
	if (store_uidlist_parse((const char *)data, ul.valid_len, &again, &err) < 0)
		abort();
	same(&ul, &again);
	/* the form store_uidlist_save writes */
	text = malloc(cap);
	if (text == NULL)
		abort();
	len = (size_t)snprintf(text, cap, "sealpost-uidlist 1 %u %u\n", ul.uidvalidity, ul.uidnext);
	for (size_t i = 0; i < ul.n; i++)
		len += (size_t)snprintf(text + len, cap - len, "%u %s\n", ul.e[i].uid, ul.e[i].base);
	if (store_uidlist_parse(text, len, &again, &err) < 0 || again.valid_len != len)
		abort();
	same(&ul, &again);
	free(text);
	store_uidlist_clear(&ul);
	store_uidlist_clear(&again);
	return 0;
}
