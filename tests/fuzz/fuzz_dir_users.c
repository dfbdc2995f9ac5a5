/* libFuzzer target for the users file parser (dir_users.c): the input is
 * "file\0probe"; the file is parsed, every error must name the file, and
 * when it parses the probe is looked up and the user's fields checked
 * (address and mailhost lower-case and bounded). No password check: a
 * crypt_r per input would only slow the fuzzer down. */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailcore/mailcore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_lower(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		abort();
	for (size_t i = 0; i < n; i++)
		if (isupper((unsigned char)s[i]) || (unsigned char)s[i] <= 32 || (unsigned char)s[i] >= 127)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t flen = nul != NULL ? (size_t)(nul - data) : size;
	char *err = NULL;
	struct dir_users *users;

	if (size > 65536)
		return 0;
	users = dir_users_parse("fuzz", (const char *)data, flen, &err);
	if (users == NULL) {
		if (err == NULL || strncmp(err, "fuzz:", 5) != 0)
			abort(); /* every error names the file */
		free(err);
		return 0;
	}
	if (nul != NULL) {
		size_t plen = size - flen - 1;
		char *probe = malloc(plen + 1);
		const struct dir_user *u;

		memcpy(probe, nul + 1, plen);
		probe[plen] = '\0';
		u = dir_users_find(users, probe);
		if (u != NULL) {
			if (strcasecmp(u->address, probe) != 0 || u->status == DIR_USER_DELETED)
				abort();
			check_lower(u->address, SMTP_LOCAL_PART_MAX + 1 + SMTP_DOMAIN_MAX);
			if (u->mailhost != NULL)
				check_lower(u->mailhost, 253);
		}
		free(probe);
	}
	dir_users_free(&users);
	return 0;
}
