/* libFuzzer target for the POP3 command parser (mailcore/pop_parse.c):
 * each CRLF-separated line of the input is parsed; arguments must point
 * inside the line and respect the length limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/pop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		struct pop_cmd c;
		const char *err;
		uint32_t n;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (pop_parse_command(p, len, &c, &err) == 0) {
			for (size_t i = 0; i < c.n_args && i < 2; i++) {
				if (c.arg[i] < p || c.arg[i] + c.arg_len[i] > p + len ||
				    c.arg_len[i] > POP_ARG_MAX)
					abort();
				pop_parse_number(c.arg[i], c.arg_len[i], &n);
			}
			if (c.rest != NULL && (c.rest < p || c.rest + c.rest_len > p + len))
				abort();
		}
		p += len + (nl != NULL ? (size_t)(nl - p) - len + 1 : 0);
		if (nl == NULL)
			break;
	}
	return 0;
}
