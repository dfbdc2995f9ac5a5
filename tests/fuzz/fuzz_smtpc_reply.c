/* libFuzzer target for the queue's SMTP client reply parser
 * (mailcore/smtpc_reply.c): bytes from a remote server, fed in random
 * splits, then each complete reply's EHLO keywords; plus the spool
 * envelope parser (the same "lines from elsewhere" shape). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mailcore/queue.h"
#include "mailcore/smtpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpc_reply_parser p;
	size_t off = 0;
	unsigned split;

	if (size < 1)
		return 0;
	split = data[0] % 17 + 1; /* the first byte picks the chunk size */
	data++;
	size--;
	smtpc_reply_init(&p);
	while (off < size) {
		struct smtpc_reply r;
		bool complete = false;
		const char *why = NULL;
		size_t chunk = size - off < split ? size - off : split;
		ssize_t n = smtpc_reply_feed(&p, data + off, chunk, &r, &complete, &why);

		if (n < 0) {
			if (why == NULL)
				__builtin_trap();
			break;
		}
		if ((size_t)n > chunk || (n == 0 && chunk > 0 && !complete))
			__builtin_trap();
		off += (size_t)n;
		if (complete) {
			uint64_t sz;

			if (r.code < 200 || r.code > 559 || strlen(r.text) >= sizeof(r.text))
				__builtin_trap();
			(void)smtpc_ehlo_extensions(&r, &sz);
		}
	}
	{
		struct queue_envelope env;
		const char *why = NULL;

		if (queue_envelope_parse((const char *)data, size, &env, &why) == 0) {
			if (env.body_offset > size || env.n_rcpts == 0)
				__builtin_trap();
			queue_envelope_clear(&env);
		}
	}
	return 0;
}
