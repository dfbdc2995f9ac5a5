/* The SMTP command parser: one command line (CRLF removed) in, a parsed
 * command or the error reply out. Pure: no I/O, no globals, no allocation.
 * Grammar from RFC 5321 4.1 (commands, paths), 4.5.3.1 (limits), RFC 1870
 * (SIZE), RFC 6152 (BODY), RFC 4954 (AUTH, AUTH=). */
#include "mailcore/mailcore.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#define SMTP_MAX_PARAMS 16

static int fail(struct smtp_error *err, int code, const char *status, const char *text)
{
	err->code = code;
	err->status = status;
	err->text = text;
	return -1;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
			return false;
	return true;
}

static bool istarts(const char *a, size_t alen, const char *prefix)
{
	size_t plen = strlen(prefix);

	return alen >= plen && ieq(a, plen, prefix);
}

/* RFC 5321 4.1.2 atext (RFC 5322 3.2.3) */
static bool is_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Dot-string = Atom *("." Atom) */
static bool valid_dot_string(const char *s, size_t n)
{
	bool prev_dot = true;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (prev_dot)
				return false;
			prev_dot = true;
		} else if (is_atext(c)) {
			prev_dot = false;
		} else {
			return false;
		}
	}
	return !prev_dot;
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE; qtextSMTP = %d32-33 / %d35-91 /
 * %d93-126; quoted-pairSMTP = "\" %d32-126. s[0] is the opening quote.
 * Returns the length including both quotes, or 0. */
static size_t quoted_string_len(const char *s, size_t n)
{
	size_t i = 1;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (i + 1 >= n || (unsigned char)s[i + 1] < 32 || (unsigned char)s[i + 1] > 126)
				return 0;
			i += 2;
			continue;
		}
		if (c < 32 || c > 126)
			return 0;
		i++;
	}
	return 0;
}

/* Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] */
static bool valid_domain(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > SMTP_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (isalnum(c) || c == '-') {
			if (label == 0 && c == '-')
				return false;
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[n - 1] != '-';
}

/* address-literal = "[" ( IPv4-address-literal / IPv6-address-literal ) "]";
 * General-address-literal is refused: nothing we could deliver to. */
static bool valid_address_literal(const char *s, size_t n)
{
	char buf[64];
	unsigned char addr[16];

	if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n - 2 >= sizeof(buf))
		return false;
	memcpy(buf, s + 1, n - 2);
	buf[n - 2] = '\0';
	if (istarts(buf, n - 2, "IPv6:"))
		return inet_pton(AF_INET6, buf + 5, addr) == 1;
	return inet_pton(AF_INET, buf, addr) == 1;
}

/* Parses "<...>" at p. On success *path_len is the length through '>' and
 * cmd->addr holds the mailbox. */
static int parse_path(const char *p, size_t n, bool is_mail, struct smtp_cmd *cmd,
		      size_t *path_len, struct smtp_error *err)
{
	const char *bad = is_mail ? "5.1.7" : "5.1.3";
	size_t i = 1, start, local_len, end;
	const char *dom;
	size_t dom_len;

	if (n == 0 || p[0] != '<')
		return fail(err, 501, "5.5.4", "Syntax error: address must be in <>");
	/* Find the closing '>' outside a quoted string. */
	end = 0;
	for (size_t j = 1; j < n; j++) {
		if (p[j] == '"') {
			size_t q = quoted_string_len(p + j, n - j);

			if (q == 0)
				return fail(err, 501, bad, "Syntax error in mailbox address");
			j += q - 1;
			continue;
		}
		if (p[j] == '>') {
			end = j;
			break;
		}
	}
	if (end == 0)
		return fail(err, 501, "5.5.4", "Syntax error: missing >");
	if (end + 1 > SMTP_PATH_MAX)
		return fail(err, 501, bad, "Path too long"); /* RFC 5321 4.5.3.1.10 */
	*path_len = end + 1;
	if (end == 1) { /* "<>" */
		if (!is_mail)
			return fail(err, 501, bad, "Null recipient not allowed");
		cmd->null_path = true;
		cmd->addr[0] = '\0';
		return 0;
	}
	/* A-d-l ":" (source route): accepted and ignored, RFC 5321 4.1.1.3 / C */
	if (p[1] == '@') {
		while (i < end && p[i] != ':')
			i++;
		if (i >= end)
			return fail(err, 501, bad, "Syntax error in source route");
		i++;
	}
	start = i;
	if (!is_mail && end - start == 10 && ieq(p + start, 10, "postmaster")) {
		/* RFC 5321 4.1.1.3: "<Postmaster>" without a domain must be accepted */
		cmd->postmaster = true;
		memcpy(cmd->addr, "postmaster", 11);
		return 0;
	}
	if (p[start] == '"') {
		local_len = quoted_string_len(p + start, end - start);
		if (local_len == 0)
			return fail(err, 501, bad, "Syntax error in local part");
	} else {
		local_len = 0;
		while (start + local_len < end && p[start + local_len] != '@')
			local_len++;
		if (!valid_dot_string(p + start, local_len))
			return fail(err, 501, bad, "Syntax error in local part");
	}
	if (local_len > SMTP_LOCAL_PART_MAX)
		return fail(err, 501, bad, "Local part too long"); /* 4.5.3.1.1 */
	if (start + local_len >= end || p[start + local_len] != '@')
		return fail(err, 501, bad, "Syntax error: address needs @domain");
	dom = p + start + local_len + 1;
	dom_len = end - (start + local_len + 1);
	if (dom_len > SMTP_DOMAIN_MAX)
		return fail(err, 501, bad, "Domain too long"); /* 4.5.3.1.2 */
	if (dom_len > 0 && dom[0] == '[') {
		if (!valid_address_literal(dom, dom_len))
			return fail(err, 501, bad, "Syntax error in address literal");
	} else if (!valid_domain(dom, dom_len)) {
		return fail(err, 501, bad, "Syntax error in domain");
	}
	memcpy(cmd->addr, p + start, end - start);
	cmd->addr[end - start] = '\0';
	return 0;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 3461 4 xtext, used by AUTH= (RFC 4954 5). Decoded text must be printable. */
static int xtext_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '+') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		}
		if (c < 32 || c > 126 || o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
 * esmtp-value = 1*(%d33-60 / %d62-126) */
static int parse_params(const char *p, size_t n, bool is_mail, struct smtp_cmd *cmd,
			struct smtp_error *err)
{
	size_t i = 0;

	while (i < n) {
		size_t kstart, klen = 0, vstart = 0, vlen = 0;
		bool has_value = false;

		while (i < n && p[i] == ' ')
			i++;
		if (i >= n)
			break;
		kstart = i;
		while (i < n && p[i] != ' ' && p[i] != '=')
			i++;
		klen = i - kstart;
		if (i < n && p[i] == '=') {
			has_value = true;
			vstart = ++i;
			while (i < n && p[i] != ' ')
				i++;
			vlen = i - vstart;
		}
		if (klen == 0 || !isalnum((unsigned char)p[kstart]))
			return fail(err, 501, "5.5.4", "Syntax error in parameters");
		for (size_t k = kstart; k < kstart + klen; k++)
			if (!isalnum((unsigned char)p[k]) && p[k] != '-')
				return fail(err, 501, "5.5.4", "Syntax error in parameters");
		for (size_t k = vstart; k < vstart + vlen; k++)
			if (p[k] == '=' || (unsigned char)p[k] < 33 || (unsigned char)p[k] > 126)
				return fail(err, 501, "5.5.4", "Syntax error in parameter value");
		if (has_value && vlen == 0)
			return fail(err, 501, "5.5.4", "Syntax error: empty parameter value");
		if (++cmd->n_params > SMTP_MAX_PARAMS)
			return fail(err, 501, "5.5.4", "Too many parameters");
		if (!is_mail)
			return fail(err, 555, "5.5.4", "Unsupported RCPT TO parameter");
		if (ieq(p + kstart, klen, "SIZE")) {
			uint64_t v = 0;

			if (cmd->has_size)
				return fail(err, 501, "5.5.4", "Duplicate SIZE parameter");
			if (!has_value || vlen > 20)
				return fail(err, 501, "5.5.4", "Syntax error in SIZE parameter");
			for (size_t k = vstart; k < vstart + vlen; k++) {
				unsigned d;

				if (!isdigit((unsigned char)p[k]))
					return fail(err, 501, "5.5.4", "Syntax error in SIZE parameter");
				d = (unsigned)(p[k] - '0');
				/* saturate: a size this large is refused anyway */
				v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
			}
			cmd->has_size = true;
			cmd->size = v;
		} else if (ieq(p + kstart, klen, "BODY")) {
			if (cmd->body != SMTP_BODY_UNSPEC)
				return fail(err, 501, "5.5.4", "Duplicate BODY parameter");
			if (has_value && ieq(p + vstart, vlen, "7BIT"))
				cmd->body = SMTP_BODY_7BIT;
			else if (has_value && ieq(p + vstart, vlen, "8BITMIME"))
				cmd->body = SMTP_BODY_8BITMIME;
			else
				return fail(err, 501, "5.5.4", "Unsupported BODY type");
		} else if (ieq(p + kstart, klen, "AUTH")) {
			if (cmd->has_auth)
				return fail(err, 501, "5.5.4", "Duplicate AUTH parameter");
			if (!has_value)
				return fail(err, 501, "5.5.4", "Syntax error in AUTH parameter");
			if (vlen == 2 && p[vstart] == '<' && p[vstart + 1] == '>')
				cmd->auth[0] = '\0';
			else if (xtext_decode(p + vstart, vlen, cmd->auth, sizeof(cmd->auth)) < 0)
				return fail(err, 501, "5.5.4", "Syntax error in AUTH parameter");
			cmd->has_auth = true;
		} else {
			return fail(err, 555, "5.5.4", "Unsupported MAIL FROM parameter");
		}
	}
	return 0;
}

/* MAIL FROM:<path> [params] / RCPT TO:<path> [params] */
static int parse_mail_rcpt(const char *a, size_t n, bool is_mail, struct smtp_cmd *cmd,
			   struct smtp_error *err)
{
	const char *kw = is_mail ? "FROM:" : "TO:";
	size_t kwlen = strlen(kw), i, path_len;

	if (!istarts(a, n, kw))
		return fail(err, 501, "5.5.4",
			    is_mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>");
	i = kwlen;
	/* RFC 5321 has no space after the colon; many clients send one. */
	while (i < n && a[i] == ' ')
		i++;
	if (parse_path(a + i, n - i, is_mail, cmd, &path_len, err) < 0)
		return -1;
	i += path_len;
	if (i < n && a[i] != ' ')
		return fail(err, 501, "5.5.4", "Syntax error after address");
	return parse_params(a + i, n - i, is_mail, cmd, err);
}

/* HELO/EHLO argument: a domain or address literal. Kept lenient about the
 * characters real clients use (underscores), strict about anything that could
 * break the Received: header. */
static int parse_helo(const char *a, size_t n, bool ehlo, struct smtp_cmd *cmd,
		      struct smtp_error *err)
{
	if (n == 0)
		return fail(err, 501, "5.5.4", ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
	if (n > SMTP_HELO_MAX)
		return fail(err, 501, "5.5.4", "Hostname too long");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];

		if (!isalnum(c) && strchr(".-_:[]", c) == NULL)
			return fail(err, 501, "5.5.4", "Syntax error in hostname");
	}
	cmd->arg = a;
	cmd->arg_len = n;
	return 0;
}

/* AUTH mechanism [initial-response] (RFC 4954 4) */
static int parse_auth(const char *a, size_t n, struct smtp_cmd *cmd, struct smtp_error *err)
{
	size_t i = 0;

	while (i < n && a[i] != ' ')
		i++;
	if (i == 0 || i >= sizeof(cmd->mech))
		return fail(err, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
	for (size_t k = 0; k < i; k++) {
		unsigned char c = (unsigned char)a[k];

		if (!isalnum(c) && c != '-' && c != '_')
			return fail(err, 501, "5.5.4", "Syntax error in mechanism name");
		cmd->mech[k] = (char)toupper(c);
	}
	cmd->mech[i] = '\0';
	if (i < n) {
		size_t start = i + 1;

		if (start >= n)
			return fail(err, 501, "5.5.4", "Syntax error: empty initial response");
		for (size_t k = start; k < n; k++)
			if (a[k] == ' ')
				return fail(err, 501, "5.5.4", "Syntax error in initial response");
		cmd->initial = a + start;
		cmd->initial_len = n - start;
		cmd->has_initial = true;
	}
	return 0;
}

struct verb_entry {
	const char *name;
	enum smtp_verb verb;
};

static const struct verb_entry verbs[] = {
	{"HELO", SMTP_CMD_HELO}, {"EHLO", SMTP_CMD_EHLO}, {"MAIL", SMTP_CMD_MAIL},
	{"RCPT", SMTP_CMD_RCPT}, {"DATA", SMTP_CMD_DATA}, {"RSET", SMTP_CMD_RSET},
	{"NOOP", SMTP_CMD_NOOP}, {"QUIT", SMTP_CMD_QUIT}, {"VRFY", SMTP_CMD_VRFY},
	{"EXPN", SMTP_CMD_EXPN}, {"HELP", SMTP_CMD_HELP}, {"STARTTLS", SMTP_CMD_STARTTLS},
	{"AUTH", SMTP_CMD_AUTH},
	/* Known, deliberately not offered (RFC 5321 4.2.4: 502) */
	{"BDAT", SMTP_CMD_NOT_IMPLEMENTED}, {"TURN", SMTP_CMD_NOT_IMPLEMENTED},
	{"ETRN", SMTP_CMD_NOT_IMPLEMENTED}, {"ATRN", SMTP_CMD_NOT_IMPLEMENTED},
	{"SEND", SMTP_CMD_NOT_IMPLEMENTED}, {"SOML", SMTP_CMD_NOT_IMPLEMENTED},
	{"SAML", SMTP_CMD_NOT_IMPLEMENTED}, {"BURL", SMTP_CMD_NOT_IMPLEMENTED},
	{"XCLIENT", SMTP_CMD_NOT_IMPLEMENTED}, {"XFORWARD", SMTP_CMD_NOT_IMPLEMENTED},
};

int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd, struct smtp_error *err)
{
	size_t vlen = 0, i;
	const char *a;
	size_t n;
	bool found = false;

	memset(cmd, 0, sizeof(*cmd));
	if (len > SMTP_AUTH_LINE_MAX - 2)
		return fail(err, 500, "5.5.6", "Line too long");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 32 || c == 127)
			return fail(err, 500, "5.5.2", "Syntax error: control character in command");
		if (c > 127)
			return fail(err, 500, "5.5.2", "Syntax error: 8-bit octet in command (no SMTPUTF8)");
	}
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	if (vlen == 0)
		return fail(err, 500, "5.5.2", "Syntax error: empty command");
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (ieq(line, vlen, verbs[i].name)) {
			cmd->verb = verbs[i].verb;
			found = true;
			break;
		}
	}
	if (!found)
		return fail(err, 500, "5.5.1", "Command unrecognized");
	/* RFC 5321 4.5.3.1.4: 512 octets incl. CRLF; RFC 4954 4 lifts it for AUTH */
	if (cmd->verb != SMTP_CMD_AUTH && len + 2 > SMTP_CMD_LINE_MAX)
		return fail(err, 500, "5.5.6", "Line too long");
	if (cmd->verb == SMTP_CMD_NOT_IMPLEMENTED)
		return fail(err, 502, "5.5.1", "Command not implemented");
	a = line + vlen;
	n = len - vlen;
	while (n > 0 && a[0] == ' ') {
		a++;
		n--;
	}
	while (n > 0 && a[n - 1] == ' ') /* trailing blanks: harmless, common */
		n--;

	switch (cmd->verb) {
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		return parse_helo(a, n, cmd->verb == SMTP_CMD_EHLO, cmd, err);
	case SMTP_CMD_MAIL:
		return parse_mail_rcpt(a, n, true, cmd, err);
	case SMTP_CMD_RCPT:
		return parse_mail_rcpt(a, n, false, cmd, err);
	case SMTP_CMD_DATA:
	case SMTP_CMD_RSET:
	case SMTP_CMD_QUIT:
	case SMTP_CMD_STARTTLS:
		/* RFC 5321 4.1.1.4/4.1.1.5/4.1.1.10, RFC 3207 4: no parameters */
		if (n > 0)
			return fail(err, 501, "5.5.4", "Syntax error: no parameters allowed");
		return 0;
	case SMTP_CMD_VRFY:
	case SMTP_CMD_EXPN:
		if (n == 0)
			return fail(err, 501, "5.5.4", "Syntax error: argument required");
		cmd->arg = a;
		cmd->arg_len = n;
		return 0;
	case SMTP_CMD_NOOP:
	case SMTP_CMD_HELP:
		cmd->arg = a;
		cmd->arg_len = n;
		return 0;
	case SMTP_CMD_AUTH:
		return parse_auth(a, n, cmd, err);
	case SMTP_CMD_NOT_IMPLEMENTED:
		break;
	}
	return fail(err, 500, "5.5.1", "Command unrecognized");
}

int smtp_addr_split(const char *addr, size_t *local_len_r, const char **domain_r)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL)
		return -1;
	*local_len_r = (size_t)(at - addr);
	*domain_r = at + 1;
	return 0;
}
