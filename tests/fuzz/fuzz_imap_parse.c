/* libFuzzer target for the IMAP framer and parser (mailcore/imap_parse.c):
 * arbitrary input is framed as the session frames it (literals and all),
 * each framed command is parsed, its argument tree walked, and sequence
 * sets and dates parsed from its atoms. Nothing may crash or read out of
 * bounds; every node index must stay inside the command. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/imap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct imap_cmd *cmd, const struct imap_arg *a, int depth)
{
	struct imap_seqset set;
	time_t t;
	uint32_t v;
	char buf[64];

	for (; a != NULL; a = imap_arg_next(cmd, a)) {
		if (depth > IMAP_MAX_DEPTH + 1)
			abort();
		if (a->type == IMAP_ARG_LIST) {
			walk(cmd, imap_arg_child(cmd, a), depth + 1);
			continue;
		}
		imap_parse_seqset(a->s, a->len, &set);
		imap_parse_date(a->s, a->len, &t);
		imap_parse_datetime(a->s, a->len, &t);
		imap_arg_number(a, &v);
		imap_arg_string(a, buf, sizeof(buf));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct imap_cmd cmd;
	struct imap_framer f;
	uint8_t *buf = malloc(size + 1);
	size_t off = 0;

	memcpy(buf, data, size);
	while (off < size) {
		size_t len, consumed;
		uint64_t lit;
		bool nonsync;
		enum imap_frame_result r;
		const char *err;

		imap_framer_reset(&f);
		do
			r = imap_frame(&f, buf + off, size - off, 4096, &len, &consumed, &lit, &nonsync);
		while (r == IMAP_FRAME_LITERAL_SYNC);
		if (r == IMAP_FRAME_NEED_MORE || r == IMAP_FRAME_LINE_TOO_LONG)
			break;
		if (consumed == 0 || consumed > size - off || len > consumed)
			abort();
		if (r == IMAP_FRAME_COMMAND && imap_parse_command(buf + off, len, &cmd, &err) == 0) {
			if (cmd.n_nodes > IMAP_MAX_NODES)
				abort();
			walk(&cmd, imap_cmd_arg(&cmd, 0), 0);
		}
		off += consumed;
	}
	free(buf);
	return 0;
}
