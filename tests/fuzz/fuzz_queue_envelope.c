/* libFuzzer target for the queue's spool envelope and state parsers
 * (mailcore/queue_spool.c): a spool file is our own writing, but a
 * damaged or planted one must be refused cleanly, and what parses must
 * hold the promised shapes (addresses without brackets, mailHost next
 * hops of host-name characters in lower case). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_envelope env;
	struct queue_state st;
	const char *why = NULL;
	int rc = queue_envelope_parse((const char *)data, size, &env, &why);

	if (rc < 0 && why == NULL)
		abort();
	if (rc == 0) {
		if (env.n_rcpts == 0 || env.n_rcpts > QUEUE_RCPTS_MAX || env.body_offset > size ||
		    env.sender == NULL)
			abort();
		for (size_t i = 0; i < env.n_rcpts; i++) {
			const char *h = env.mailhosts[i];

			if (env.rcpts[i][0] == '\0' || strpbrk(env.rcpts[i], "<> \r\n") != NULL)
				abort();
			if (h != NULL && (!queue_mailhost_valid(h, strlen(h)) ||
					  strpbrk(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != NULL))
				abort();
		}
		if (queue_state_parse((const char *)data + env.body_offset, size - env.body_offset,
				      env.n_rcpts, &st, &why) == 0)
			queue_state_clear(&st);
		queue_envelope_clear(&env);
	}
	return 0;
}
