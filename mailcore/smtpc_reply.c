/* The outbound SMTP client's reply parser: pure, bytes in and whole
 * (possibly multi-line) replies out, per RFC 5321 4.2, with the RFC 2034
 * enhanced status code of the first line and the EHLO keywords (RFC 1869
 * 4.3). The client session (smtpc_session.c) and the fuzzer drive it. */
#include "mailcore/smtpc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void smtpc_reply_init(struct smtpc_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

/* RFC 3463 2: class "." subject "." detail, class 2/4/5, 1-3 digits each */
static size_t enhanced_status(const char *s, size_t len, int code, char *out, size_t cap)
{
	size_t i = 0, parts = 0;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[0] - '0' != code / 100)
		return 0;
	while (parts < 3) {
		size_t digits = 0;

		if (parts > 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
		while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > (parts == 0 ? 1u : 3u))
			return 0;
		parts++;
	}
	if (i < len && s[i] != ' ')
		return 0;
	if (i + 1 > cap)
		return 0;
	memcpy(out, s, i);
	out[i] = '\0';
	return i;
}

/* One complete line (without its line ending). Returns 1 if it ended the
 * reply, 0 if more lines follow, -1 on error. */
static int take_line(struct smtpc_reply_parser *p, const char *line, size_t len,
		     const char **error_r)
{
	struct smtpc_reply *r = &p->cur;
	int code;
	bool last;
	const char *text;
	size_t tlen;

	if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2])) {
		*error_r = "reply line does not start with a 3-digit code";
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	/* RFC 5321 4.2.1: first digit 2..5, second 0..5 */
	if (line[0] < '2' || line[0] > '5' || line[1] > '5') {
		*error_r = "reply code out of range";
		return -1;
	}
	if (len == 3) {
		last = true;
	} else if (line[3] == ' ') {
		last = true;
	} else if (line[3] == '-') {
		last = false;
	} else {
		*error_r = "reply code not followed by space or hyphen";
		return -1;
	}
	if (p->code == 0) {
		p->code = code;
		memset(r, 0, sizeof(*r));
		r->code = code;
	} else if (code != p->code) {
		/* RFC 5321 4.2.1: every line of a multi-line reply has the same code */
		*error_r = "multi-line reply with differing codes";
		return -1;
	}
	if (++r->n_lines > SMTPC_REPLY_LINES_MAX) {
		*error_r = "too many lines in one reply";
		return -1;
	}
	text = len > 4 ? line + 4 : "";
	tlen = len > 4 ? len - 4 : 0;
	if (r->n_lines == 1)
		enhanced_status(text, tlen, code, r->status, sizeof(r->status));
	{
		size_t have = strlen(r->text);

		if (r->n_lines > 1 && have + 1 < sizeof(r->text))
			r->text[have++] = '\n';
		for (size_t i = 0; i < tlen && have + 1 < sizeof(r->text); i++) {
			unsigned char c = (unsigned char)text[i];

			r->text[have++] = (char)(c >= 32 && c < 127 ? c : '?');
		}
		r->text[have] = '\0';
	}
	return last ? 1 : 0;
}

ssize_t smtpc_reply_feed(struct smtpc_reply_parser *p, const uint8_t *in, size_t len,
			 struct smtpc_reply *out, bool *complete, const char **error_r)
{
	size_t used = 0;

	*complete = false;
	while (used < len) {
		uint8_t c = in[used++];
		int rc;
		size_t l;

		if (c != '\n') {
			if (p->line_len >= SMTPC_LINE_MAX) {
				*error_r = "reply line too long";
				return -1;
			}
			p->line[p->line_len++] = (char)c;
			continue;
		}
		l = p->line_len;
		if (l > 0 && p->line[l - 1] == '\r')
			l--;
		p->line_len = 0;
		rc = take_line(p, p->line, l, error_r);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			*out = p->cur;
			*complete = true;
			p->code = 0;
			return (ssize_t)used;
		}
	}
	return (ssize_t)used;
}

unsigned smtpc_ehlo_extensions(const struct smtpc_reply *r, uint64_t *size_r)
{
	unsigned ext = 0;
	const char *p = strchr(r->text, '\n');

	if (size_r != NULL)
		*size_r = 0;
	while (p != NULL) {
		const char *line = p + 1, *end = strchr(line, '\n');
		size_t n = end != NULL ? (size_t)(end - line) : strlen(line);
		size_t kw = 0;

		while (kw < n && line[kw] != ' ' && line[kw] != '=')
			kw++;
#define KW(s) (kw == sizeof(s) - 1 && strncasecmp(line, s, kw) == 0)
		if (KW("PIPELINING"))
			ext |= SMTPC_EXT_PIPELINING;
		else if (KW("STARTTLS"))
			ext |= SMTPC_EXT_STARTTLS;
		else if (KW("8BITMIME"))
			ext |= SMTPC_EXT_8BITMIME;
		else if (KW("ENHANCEDSTATUSCODES"))
			ext |= SMTPC_EXT_ENHANCEDSTATUSCODES;
		else if (KW("SIZE")) {
			ext |= SMTPC_EXT_SIZE;
			if (size_r != NULL && kw < n) {
				uint64_t v = 0;

				for (size_t i = kw + 1; i < n && line[i] >= '0' && line[i] <= '9'; i++)
					v = v > UINT64_MAX / 10 ? UINT64_MAX : v * 10 + (uint64_t)(line[i] - '0');
				*size_r = v;
			}
		}
#undef KW
		p = end;
	}
	return ext;
}
