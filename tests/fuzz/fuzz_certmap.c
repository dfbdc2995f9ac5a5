/* libFuzzer target for certmap.conf: the input is "file\0subject\0issuer";
 * the file is parsed, and when it parses, the subject and issuer (RFC 2253
 * strings as tlsd sends them) are turned into a search plan, whose filter
 * must stay balanced whatever the certificate held (RFC 4515 escaping). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/certmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void take(const uint8_t **p, size_t *n, char *out, size_t cap)
{
	const uint8_t *nul = memchr(*p, '\0', *n);
	size_t len = nul != NULL ? (size_t)(nul - *p) : *n;

	if (len >= cap)
		len = cap - 1;
	memcpy(out, *p, len);
	out[len] = '\0';
	len = nul != NULL ? (size_t)(nul - *p) + 1 : *n;
	*p += len;
	*n -= len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t flen = nul != NULL ? (size_t)(nul - data) : size;
	const uint8_t *rest = data + flen + (nul != NULL ? 1 : 0);
	size_t rn = size - flen - (nul != NULL ? 1 : 0);
	char subject[1200], issuer[1200], *err = NULL;
	struct certmap *cm;
	struct certmap_plan plan;
	const char *why = NULL;
	int depth = 0;

	if (size > 65536)
		return 0;
	cm = certmap_parse("fuzz", (const char *)data, flen, &err);
	if (cm == NULL) {
		if (err == NULL || strncmp(err, "fuzz", 4) != 0)
			abort(); /* every error names the file */
		free(err);
		return 0;
	}
	take(&rest, &rn, subject, sizeof(subject));
	take(&rest, &rn, issuer, sizeof(issuer));
	(void)certmap_dn_equal(subject, issuer);
	if (certmap_plan(cm, subject, issuer, "x@example.com", &plan, &why) == 0) {
		for (const char *f = plan.filter; *f != '\0'; f++) {
			depth += *f == '(' ? 1 : *f == ')' ? -1 : 0;
			if (depth < 0)
				abort(); /* a value closed the filter */
		}
		if (depth != 0)
			abort();
	} else if (why == NULL) {
		abort();
	}
	certmap_free(&cm);
	return 0;
}
