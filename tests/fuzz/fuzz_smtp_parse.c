/* libFuzzer target for the SMTP input path: the command parser on each
 * line, the DATA decoder on the rest at a fuzzer-chosen split, and the
 * SASL helpers; checks the invariants the session relies on. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/mailcore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_cmd(const char *line, size_t len)
{
	struct smtp_cmd cmd;
	struct smtp_error err;

	if (smtp_parse_command(line, len, &cmd, &err) < 0) {
		if (err.code < 500 || err.code > 555 || err.status == NULL || err.text == NULL)
			abort();
		return;
	}
	if (memchr(cmd.addr, '\0', sizeof(cmd.addr)) == NULL)
		abort();
	if (strlen(cmd.addr) + 2 > SMTP_PATH_MAX)
		abort();
	for (const char *p = cmd.addr; *p != '\0'; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			abort(); /* nothing that could break a reply or a header */
	if (cmd.arg != NULL && (cmd.arg < line || cmd.arg + cmd.arg_len > line + len))
		abort();
	if (cmd.has_initial && (cmd.initial < line || cmd.initial + cmd.initial_len > line + len))
		abort();
	if (cmd.verb == SMTP_CMD_AUTH && cmd.has_initial) {
		uint8_t out[SMTP_AUTH_LINE_MAX];
		ssize_t n = smtp_base64_decode(cmd.initial, cmd.initial_len, out, sizeof(out));
		struct smtp_plain p;

		if (n > 0 && (size_t)n > cmd.initial_len)
			abort();
		if (n > 0)
			(void)smtp_sasl_plain_split(out, (size_t)n, &p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_data_decoder d;
	size_t pos = 0, split;
	uint8_t *out;

	if (size == 0)
		return 0;
	split = data[0] % (size + 1);
	data++;
	size--;
	if (split > size)
		split = size;
	/* command lines up to the split, each fed without its CRLF */
	while (pos < split) {
		const uint8_t *lf = memchr(data + pos, '\n', split - pos);
		size_t end = lf != NULL ? (size_t)(lf - data) : split;
		size_t len = end - pos;
		char *line = malloc(len + 1);

		memcpy(line, data + pos, len);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		check_cmd(line, len);
		free(line);
		pos = end + 1;
	}
	/* the rest as DATA text, in two pieces */
	smtp_data_init(&d);
	out = malloc(size - split + 2);
	for (size_t off = split, piece = 0; off < size && !d.done; piece++) {
		size_t chunk = (size - off) / 2 + 1, produced, used;

		if (piece > 0)
			chunk = size - off;
		used = smtp_data_decode(&d, data + off, chunk, out, chunk + 2, &produced);
		if (used > chunk || produced > chunk + 2)
			abort();
		if (used < chunk && !d.done)
			abort();
		off += used;
	}
	free(out);
	return 0;
}
