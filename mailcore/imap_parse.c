/* IMAP command framing and parsing (RFC 3501 9 formal syntax, RFC 7888
 * literals): bytes in, a tree of values out. Pure: no I/O, no allocation,
 * no globals; every size is bounded (imap.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailcore/imap.h"

void imap_framer_reset(struct imap_framer *f)
{
	memset(f, 0, sizeof(*f));
}

/* Does the line end in "{n}" or "{n+}"? */
static bool literal_marker(const uint8_t *line, size_t len, uint64_t *n_r, bool *nonsync_r)
{
	size_t i;
	uint64_t n = 0, mul = 1;

	if (len < 3 || line[len - 1] != '}')
		return false;
	i = len - 1;
	*nonsync_r = false;
	if (line[i - 1] == '+') {
		*nonsync_r = true;
		i--;
	}
	if (i == 0 || line[i - 1] < '0' || line[i - 1] > '9')
		return false;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9') {
		if (mul > 1000000000000ULL)
			return false; /* absurd digit count: not ours to honour */
		n += (uint64_t)(line[i - 1] - '0') * mul;
		mul *= 10;
		i--;
	}
	if (i == 0 || line[i - 1] != '{')
		return false;
	*n_r = n;
	return true;
}

/* Is the first line "tag APPEND ..."? */
static bool is_append(const uint8_t *line, size_t len)
{
	size_t i = 0;

	while (i < len && line[i] != ' ')
		i++;
	i++;
	return len >= i + 7 && strncasecmp((const char *)line + i, "APPEND ", 7) == 0;
}

enum imap_frame_result imap_frame(struct imap_framer *f, const uint8_t *buf, size_t len,
				  uint64_t max_append, size_t *len_r, size_t *consumed_r,
				  uint64_t *literal_r, bool *nonsync_r)
{
	for (;;) {
		const uint8_t *crlf;
		size_t line_len;
		uint64_t n;
		bool nonsync;

		if (f->literal_left > 0) {
			size_t avail = len - f->pos;
			size_t take = avail < f->literal_left ? avail : (size_t)f->literal_left;

			f->pos += take;
			f->literal_left -= take;
			if (f->literal_left > 0)
				return IMAP_FRAME_NEED_MORE;
			f->line_start = f->pos;
			/* many literals in one command: bounded as a whole */
			if (f->line_start > IMAP_COMMAND_MAX + (f->append ? max_append : 0))
				return IMAP_FRAME_LINE_TOO_LONG;
		}
		crlf = NULL;
		/* a CRLF may straddle the previous scan's end */
		for (size_t i = f->pos > f->line_start ? f->pos - 1 : f->line_start; i + 1 < len; i++)
			if (buf[i] == '\r' && buf[i + 1] == '\n') {
				crlf = buf + i;
				break;
			}
		if (crlf == NULL) {
			f->pos = len;
			if (len - f->line_start > IMAP_LINE_MAX)
				return IMAP_FRAME_LINE_TOO_LONG;
			return IMAP_FRAME_NEED_MORE;
		}
		line_len = (size_t)(crlf - (buf + f->line_start));
		if (line_len > IMAP_LINE_MAX)
			return IMAP_FRAME_LINE_TOO_LONG;
		if (!f->first_line_done) {
			f->first_line_done = true;
			f->append = is_append(buf + f->line_start, line_len);
		}
		if (!literal_marker(buf + f->line_start, line_len, &n, &nonsync)) {
			*len_r = (size_t)(crlf - buf);
			*consumed_r = *len_r + 2;
			return IMAP_FRAME_COMMAND;
		}
		if (n > (f->append ? max_append : IMAP_LITERAL_MAX)) {
			*literal_r = n;
			*nonsync_r = nonsync;
			/* the line so far, for the tag of the reply */
			*len_r = (size_t)(crlf - buf);
			*consumed_r = *len_r + 2;
			return IMAP_FRAME_LITERAL_TOO_BIG;
		}
		f->pos = (size_t)(crlf - buf) + 2;
		f->line_start = f->pos;
		f->literal_left = n;
		if (!nonsync) {
			*literal_r = n;
			return IMAP_FRAME_LITERAL_SYNC;
		}
	}
}

/* ------------------------------------------------------------------ parse */

struct pstate {
	uint8_t *buf;
	size_t len, pos;
	struct imap_cmd *cmd;
	const char *err;
};

static bool atom_char(uint8_t c)
{
	/* RFC 3501 ATOM-CHAR, plus list-wildcards and ']' (list-mailbox,
	 * sequence sets, flags with '\') that the generic reader accepts */
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

static int new_node(struct pstate *p, enum imap_arg_type type)
{
	struct imap_arg *a;

	if (p->cmd->n_nodes >= IMAP_MAX_NODES) {
		p->err = "Too many arguments";
		return -1;
	}
	a = &p->cmd->nodes[p->cmd->n_nodes];
	memset(a, 0, sizeof(*a));
	a->type = type;
	a->child = -1;
	a->next = -1;
	return (int)p->cmd->n_nodes++;
}

static int parse_value(struct pstate *p, int depth);

static int parse_atom(struct pstate *p)
{
	size_t start = p->pos;
	int idx;

	while (p->pos < p->len) {
		uint8_t c = p->buf[p->pos];

		if (c == '[') {
			/* section: "BODY[HEADER.FIELDS (A B)]": up to the matching ']' */
			p->pos++;
			while (p->pos < p->len && p->buf[p->pos] != ']') {
				uint8_t d = p->buf[p->pos];

				if (d < 0x20 || d >= 0x7f) {
					p->err = "Bad character in section";
					return -1;
				}
				p->pos++;
			}
			if (p->pos == p->len) {
				p->err = "Missing ]";
				return -1;
			}
			p->pos++;
			continue;
		}
		if (!atom_char(c))
			break;
		p->pos++;
	}
	if (p->pos == start) {
		p->err = "Expected an atom";
		return -1;
	}
	if (p->pos < p->len && p->buf[p->pos] >= 0x80) {
		p->err = "8-bit character in atom";
		return -1;
	}
	idx = new_node(p, IMAP_ARG_ATOM);
	if (idx < 0)
		return -1;
	p->cmd->nodes[idx].s = (const char *)p->buf + start;
	p->cmd->nodes[idx].len = p->pos - start;
	return idx;
}

static int parse_quoted(struct pstate *p)
{
	size_t out = ++p->pos, start = out;
	int idx;

	for (;;) {
		uint8_t c;

		if (p->pos >= p->len) {
			p->err = "Unterminated quoted string";
			return -1;
		}
		c = p->buf[p->pos++];
		if (c == '"')
			break;
		if (c == '\\') {
			if (p->pos >= p->len || (p->buf[p->pos] != '"' && p->buf[p->pos] != '\\')) {
				p->err = "Bad escape in quoted string";
				return -1;
			}
			c = p->buf[p->pos++];
		} else if (c == '\r' || c == '\n' || c == '\0') {
			p->err = "CR, LF or NUL in quoted string";
			return -1;
		}
		p->buf[out++] = c; /* in place: the output never overtakes the input */
	}
	idx = new_node(p, IMAP_ARG_STRING);
	if (idx < 0)
		return -1;
	p->cmd->nodes[idx].s = (const char *)p->buf + start;
	p->cmd->nodes[idx].len = out - start;
	return idx;
}

static int parse_literal(struct pstate *p)
{
	uint64_t n = 0;
	int idx;

	p->pos++;
	if (p->pos >= p->len || p->buf[p->pos] < '0' || p->buf[p->pos] > '9') {
		p->err = "Bad literal";
		return -1;
	}
	while (p->pos < p->len && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9') {
		n = n * 10 + (uint64_t)(p->buf[p->pos++] - '0');
		if (n > p->len) {
			p->err = "Literal longer than the command";
			return -1;
		}
	}
	if (p->pos < p->len && p->buf[p->pos] == '+')
		p->pos++;
	if (p->len - p->pos < 3 || p->buf[p->pos] != '}' || p->buf[p->pos + 1] != '\r' ||
	    p->buf[p->pos + 2] != '\n') {
		p->err = "Bad literal";
		return -1;
	}
	p->pos += 3;
	if (p->len - p->pos < n) {
		p->err = "Literal longer than the command";
		return -1;
	}
	if (memchr(p->buf + p->pos, '\0', (size_t)n) != NULL) {
		p->err = "NUL in literal";
		return -1;
	}
	idx = new_node(p, IMAP_ARG_LITERAL);
	if (idx < 0)
		return -1;
	p->cmd->nodes[idx].s = (const char *)p->buf + p->pos;
	p->cmd->nodes[idx].len = (size_t)n;
	p->pos += (size_t)n;
	return idx;
}

/* Values separated by single spaces until end (or ')' inside a list).
 * Returns the first index (-1 if none) through *first_r. */
static int parse_values(struct pstate *p, int depth, bool in_list, int *first_r, size_t *n_r)
{
	int prev = -1;

	*first_r = -1;
	*n_r = 0;
	for (;;) {
		int idx;

		if (p->pos >= p->len) {
			if (in_list) {
				p->err = "Missing )";
				return -1;
			}
			return 0;
		}
		if (in_list && p->buf[p->pos] == ')') {
			p->pos++;
			return 0;
		}
		if (*n_r > 0 || !in_list) {
			if (p->buf[p->pos] != ' ') {
				p->err = "Expected a space";
				return -1;
			}
			p->pos++;
		}
		idx = parse_value(p, depth);
		if (idx < 0)
			return -1;
		if (prev < 0)
			*first_r = idx;
		else
			p->cmd->nodes[prev].next = idx;
		prev = idx;
		(*n_r)++;
	}
}

static int parse_value(struct pstate *p, int depth)
{
	uint8_t c;

	if (p->pos >= p->len) {
		p->err = "Missing argument";
		return -1;
	}
	c = p->buf[p->pos];
	if (c == '(') {
		int idx, first;
		size_t n;

		if (depth >= IMAP_MAX_DEPTH) {
			p->err = "Too deeply nested";
			return -1;
		}
		idx = new_node(p, IMAP_ARG_LIST);
		if (idx < 0)
			return -1;
		p->pos++;
		if (parse_values(p, depth + 1, true, &first, &n) < 0)
			return -1;
		p->cmd->nodes[idx].child = first;
		p->cmd->nodes[idx].len = n;
		return idx;
	}
	if (c == '"')
		return parse_quoted(p);
	if (c == '{')
		return parse_literal(p);
	return parse_atom(p);
}

int imap_parse_command(uint8_t *buf, size_t len, struct imap_cmd *cmd, const char **error_r)
{
	struct pstate p = {.buf = buf, .len = len, .cmd = cmd};
	size_t start, n;

	cmd->tag = NULL;
	cmd->tag_len = 0;
	cmd->name[0] = '\0';
	cmd->uid = false;
	cmd->first = -1;
	cmd->n_args = 0;
	cmd->n_nodes = 0;

	/* tag: 1*<ASTRING-CHAR except "+"> */
	while (p.pos < len && atom_char(buf[p.pos]) && buf[p.pos] != '+' && buf[p.pos] != '*' &&
	       buf[p.pos] != '%')
		p.pos++;
	if (p.pos == 0 || p.pos > IMAP_TAG_MAX || (p.pos < len && buf[p.pos] != ' ')) {
		*error_r = "Bad or missing tag";
		return -1;
	}
	cmd->tag = (const char *)buf;
	cmd->tag_len = p.pos;
	if (p.pos >= len) {
		*error_r = "Missing command";
		return -1;
	}
	for (int word = 0; word < 2; word++) {
		p.pos++;
		start = p.pos;
		while (p.pos < len && ((buf[p.pos] >= 'A' && buf[p.pos] <= 'Z') ||
				       (buf[p.pos] >= 'a' && buf[p.pos] <= 'z') ||
				       (buf[p.pos] >= '0' && buf[p.pos] <= '9')))
			p.pos++;
		n = p.pos - start;
		if (n == 0 || n >= sizeof(cmd->name) || (p.pos < len && buf[p.pos] != ' ')) {
			*error_r = "Bad command name";
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			cmd->name[i] = (char)(buf[start + i] >= 'a' && buf[start + i] <= 'z'
						      ? buf[start + i] - 'a' + 'A'
						      : buf[start + i]);
		cmd->name[n] = '\0';
		if (word == 0 && strcmp(cmd->name, "UID") == 0) {
			cmd->uid = true;
			if (p.pos >= len) {
				*error_r = "UID without a command";
				return -1;
			}
			continue;
		}
		break;
	}
	if (parse_values(&p, 0, false, &cmd->first, &cmd->n_args) < 0) {
		*error_r = p.err;
		return -1;
	}
	return 0;
}

const struct imap_arg *imap_cmd_arg(const struct imap_cmd *cmd, size_t i)
{
	int idx = cmd->first;

	while (idx >= 0 && i > 0) {
		idx = cmd->nodes[idx].next;
		i--;
	}
	return idx >= 0 ? &cmd->nodes[idx] : NULL;
}

const struct imap_arg *imap_arg_child(const struct imap_cmd *cmd, const struct imap_arg *list)
{
	return list != NULL && list->type == IMAP_ARG_LIST && list->child >= 0
		       ? &cmd->nodes[list->child]
		       : NULL;
}

const struct imap_arg *imap_arg_next(const struct imap_cmd *cmd, const struct imap_arg *a)
{
	return a != NULL && a->next >= 0 ? &cmd->nodes[a->next] : NULL;
}

bool imap_arg_is(const struct imap_arg *a, const char *word)
{
	return a != NULL && a->type == IMAP_ARG_ATOM && strlen(word) == a->len &&
	       strncasecmp(a->s, word, a->len) == 0;
}

int imap_arg_string(const struct imap_arg *a, char *buf, size_t cap)
{
	if (a == NULL || a->type == IMAP_ARG_LIST || a->len >= cap || memchr(a->s, '\0', a->len))
		return -1;
	memcpy(buf, a->s, a->len);
	buf[a->len] = '\0';
	return 0;
}

static int parse_number(const char *s, size_t len, uint32_t *v)
{
	uint64_t x = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	if (x > UINT32_MAX)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

int imap_arg_number(const struct imap_arg *a, uint32_t *v)
{
	if (a == NULL || a->type != IMAP_ARG_ATOM)
		return -1;
	return parse_number(a->s, a->len, v);
}

static int seq_number(const char *s, size_t len, uint32_t *v)
{
	if (len == 1 && s[0] == '*') {
		*v = UINT32_MAX;
		return 0;
	}
	if (parse_number(s, len, v) < 0 || *v == 0)
		return -1;
	return 0;
}

int imap_parse_seqset(const char *s, size_t len, struct imap_seqset *set)
{
	size_t i = 0;

	set->n = 0;
	while (i < len) {
		size_t start = i, colon = 0;
		struct imap_range r;

		while (i < len && s[i] != ',') {
			if (s[i] == ':') {
				if (colon != 0)
					return -1;
				colon = i;
			}
			i++;
		}
		if (set->n == IMAP_SEQSET_MAX)
			return -1;
		if (colon == 0) {
			if (seq_number(s + start, i - start, &r.lo) < 0)
				return -1;
			r.hi = r.lo;
		} else if (seq_number(s + start, colon - start, &r.lo) < 0 ||
			   seq_number(s + colon + 1, i - colon - 1, &r.hi) < 0) {
			return -1;
		}
		set->r[set->n++] = r;
		if (i < len) {
			i++;
			if (i == len)
				return -1; /* trailing comma */
		}
	}
	return set->n > 0 ? 0 : -1;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t max)
{
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == UINT32_MAX ? max : set->r[i].lo;
		uint32_t hi = set->r[i].hi == UINT32_MAX ? max : set->r[i].hi;

		if (lo > hi) {
			uint32_t t = lo;

			lo = hi;
			hi = t;
		}
		if (n >= lo && n <= hi)
			return true;
	}
	return false;
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int digits(const char *s, size_t n, int *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/* "d-Mon-yyyy" or "dd-Mon-yyyy" (leading space allowed for date-time);
 * returns the bytes used. */
static int parse_dmy(const char *s, size_t len, struct tm *tm)
{
	size_t i = 0, dlen;
	int day, year, mon = -1;

	if (len > 0 && s[0] == ' ')
		i = 1;
	dlen = 0;
	while (i + dlen < len && s[i + dlen] >= '0' && s[i + dlen] <= '9')
		dlen++;
	if (dlen < 1 || dlen > 2 || digits(s + i, dlen, &day) < 0)
		return -1;
	i += dlen;
	if (len < i + 9 || s[i] != '-' || s[i + 4] != '-')
		return -1;
	for (int m = 0; m < 12; m++)
		if (strncasecmp(s + i + 1, months[m], 3) == 0)
			mon = m;
	if (mon < 0 || digits(s + i + 5, 4, &year) < 0 || day < 1 || day > 31 || year < 1900)
		return -1;
	memset(tm, 0, sizeof(*tm));
	tm->tm_mday = day;
	tm->tm_mon = mon;
	tm->tm_year = year - 1900;
	return (int)(i + 9);
}

int imap_parse_date(const char *s, size_t len, time_t *t_r)
{
	struct tm tm;
	int n = parse_dmy(s, len, &tm);

	if (n < 0 || (size_t)n != len)
		return -1;
	*t_r = timegm(&tm);
	return 0;
}

int imap_parse_datetime(const char *s, size_t len, time_t *t_r)
{
	struct tm tm;
	int n = parse_dmy(s, len, &tm), h, m, sec, zh, zm;
	const char *p;

	if (n < 0 || len != (size_t)n + 15)
		return -1;
	p = s + n;
	if (p[0] != ' ' || p[3] != ':' || p[6] != ':' || p[9] != ' ' ||
	    (p[10] != '+' && p[10] != '-') || digits(p + 1, 2, &h) < 0 ||
	    digits(p + 4, 2, &m) < 0 || digits(p + 7, 2, &sec) < 0 || digits(p + 11, 2, &zh) < 0 ||
	    digits(p + 13, 2, &zm) < 0 || h > 23 || m > 59 || sec > 60 || zm > 59)
		return -1;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	*t_r = timegm(&tm) - (p[10] == '-' ? -1 : 1) * (zh * 3600 + zm * 60);
	return 0;
}

void imap_format_datetime(time_t t, char *buf, size_t cap)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, cap, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
