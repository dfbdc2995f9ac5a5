/* POP3 command parser (RFC 1939 3: a keyword of 3-4 characters, arguments
 * separated by single spaces, each at most 40 characters; RFC 2449 4:
 * 255 octets per command). Pure: a line in, a command or an error out. */
#include <string.h>
#include <strings.h>

#include "mailcore/pop.h"

static const struct {
	const char *name;
	enum pop_verb verb;
} verbs[] = {
	{"USER", POP_USER}, {"PASS", POP_PASS}, {"APOP", POP_APOP}, {"AUTH", POP_AUTH},
	{"STLS", POP_STLS}, {"CAPA", POP_CAPA}, {"QUIT", POP_QUIT}, {"STAT", POP_STAT},
	{"LIST", POP_LIST}, {"RETR", POP_RETR}, {"DELE", POP_DELE}, {"NOOP", POP_NOOP},
	{"RSET", POP_RSET}, {"TOP", POP_TOP},   {"UIDL", POP_UIDL},
};

int pop_parse_command(const char *line, size_t len, struct pop_cmd *cmd, const char **error_r)
{
	size_t vlen = 0, i;
	bool found = false;

	memset(cmd, 0, sizeof(*cmd));
	if (len > POP_LINE_MAX) {
		*error_r = "Command line too long";
		return -1;
	}
	for (i = 0; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n') {
			*error_r = "Control character in command";
			return -1;
		}
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strlen(verbs[i].name) == vlen && strncasecmp(line, verbs[i].name, vlen) == 0) {
			cmd->verb = verbs[i].verb;
			found = true;
			break;
		}
	if (!found) {
		*error_r = "Unknown command";
		return -1;
	}
	if (vlen == len)
		return 0;
	cmd->rest = line + vlen + 1;
	cmd->rest_len = len - vlen - 1;
	/* the words, for the commands that take them */
	i = vlen + 1;
	while (i < len) {
		size_t start = i;

		while (i < len && line[i] != ' ')
			i++;
		if (i == start) {
			*error_r = "Empty argument";
			return -1;
		}
		if (i - start > POP_ARG_MAX) {
			*error_r = "Argument too long";
			return -1;
		}
		if (cmd->n_args < 2) {
			cmd->arg[cmd->n_args] = line + start;
			cmd->arg_len[cmd->n_args] = i - start;
		}
		cmd->n_args++;
		if (i < len)
			i++;
		else
			break;
		if (i == len) {
			*error_r = "Trailing space";
			return cmd->verb == POP_PASS ? 0 : -1;
		}
	}
	return 0;
}

int pop_parse_number(const char *s, size_t len, uint32_t *n_r)
{
	uint64_t v = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v == 0 || v > UINT32_MAX)
		return -1;
	*n_r = (uint32_t)v;
	return 0;
}
