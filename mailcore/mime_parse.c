/* MIME part tree of a message (RFC 2046 5.1 multipart boundaries, 5.2.1
 * message/rfc822), for IMAP's BODYSTRUCTURE and BODY[section]. Pure;
 * depth and part count are bounded (mime.h): beyond them a part is a leaf. */
#include <string.h>
#include <strings.h>

#include "mailcore/mime.h"

/* Bytes before the next LF in p[0..len), or len. */
static size_t strcspn_lf(const uint8_t *p, size_t len)
{
	const uint8_t *lf = memchr(p, '\n', len);

	return lf != NULL ? (size_t)(lf - p) : len;
}

struct mctx {
	const uint8_t *msg;
	struct mime_message *m;
};

/* End of the header: the offset after the empty line, or end if there is
 * none in [start, end) (*found_r false). */
static size_t header_scan(const uint8_t *msg, size_t start, size_t end, bool *found_r)
{
	size_t i = start;

	*found_r = true;
	/* an empty header: the part starts with the empty line */
	if (end - start >= 2 && msg[start] == '\r' && msg[start + 1] == '\n')
		return start + 2;
	if (end - start >= 1 && msg[start] == '\n')
		return start + 1;
	for (; i < end; i++) {
		i += strcspn_lf(msg + i, end - i);
		if (i >= end)
			break;
		if (i + 1 < end && msg[i + 1] == '\n')
			return i + 2;
		if (i + 2 < end && msg[i + 1] == '\r' && msg[i + 2] == '\n')
			return i + 3;
	}
	*found_r = false;
	return end;
}

static size_t header_end(const uint8_t *msg, size_t start, size_t end)
{
	bool found;

	return header_scan(msg, start, end, &found);
}

bool mime_header_end(const uint8_t *msg, size_t len, size_t *end_r)
{
	bool found;

	*end_r = header_scan(msg, 0, len, &found);
	return found;
}

static uint32_t count_lines(const uint8_t *p, size_t len)
{
	uint32_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += p[i] == '\n';
	/* a last line without its line end still counts */
	if (len > 0 && p[len - 1] != '\n')
		n++;
	return n;
}

/* Is there a boundary delimiter line at off ("--b" then "--"? then
 * blanks to the line end)? Sets *close and *line_end (after the LF). */
static bool delimiter_at(const uint8_t *msg, size_t off, size_t end, const char *b, size_t blen,
			 bool *close, size_t *line_end)
{
	size_t i = off + 2 + blen;

	if (end - off < 2 + blen || msg[off] != '-' || msg[off + 1] != '-' ||
	    memcmp(msg + off + 2, b, blen) != 0)
		return false;
	*close = false;
	if (end - i >= 2 && msg[i] == '-' && msg[i + 1] == '-') {
		*close = true;
		i += 2;
	}
	while (i < end && (msg[i] == ' ' || msg[i] == '\t'))
		i++;
	if (i < end && msg[i] == '\r')
		i++;
	if (i < end && msg[i] != '\n')
		return false;
	*line_end = i < end ? i + 1 : end;
	return true;
}

static int add_part(struct mctx *c, size_t start, size_t end, int depth, bool default_rfc822);

/* The children of a multipart body[bstart, bend). */
static void split_multipart(struct mctx *c, int idx, size_t bstart, size_t bend, const char *b,
			    int depth)
{
	size_t blen = strlen(b), i = bstart, part_start = 0, line_end;
	bool in_part = false, close;
	int prev = -1;
	bool digest = c->m->parts[idx].digest;

	while (i < bend) {
		/* delimiters begin at a line start */
		if ((i == bstart || c->msg[i - 1] == '\n') &&
		    delimiter_at(c->msg, i, bend, b, blen, &close, &line_end)) {
			if (in_part) {
				/* the CRLF before the delimiter belongs to it */
				size_t pend = i;
				int child;

				if (pend > part_start && c->msg[pend - 1] == '\n')
					pend--;
				if (pend > part_start && c->msg[pend - 1] == '\r')
					pend--;
				child = add_part(c, part_start, pend, depth + 1, digest);
				if (child < 0)
					return;
				if (prev < 0)
					c->m->parts[idx].first_child = child;
				else
					c->m->parts[prev].next = child;
				prev = child;
			}
			if (close)
				return;
			in_part = true;
			part_start = line_end;
			i = line_end;
			continue;
		}
		while (i < bend && c->msg[i] != '\n')
			i++;
		i++;
	}
	/* no close delimiter: the last part runs to the end */
	if (in_part && part_start <= bend) {
		int child = add_part(c, part_start, bend, depth + 1, digest);

		if (child >= 0) {
			if (prev < 0)
				c->m->parts[idx].first_child = child;
			else
				c->m->parts[prev].next = child;
		}
	}
}

static int add_part(struct mctx *c, size_t start, size_t end, int depth, bool default_rfc822)
{
	struct mime_part *p;
	struct mime_ctype ct;
	char value[MIME_FIELD_MAX];
	int idx, got;

	if (c->m->n >= MIME_MAX_PARTS) {
		c->m->truncated = true;
		return -1;
	}
	idx = (int)c->m->n++;
	p = &c->m->parts[idx];
	memset(p, 0, sizeof(*p));
	p->first_child = -1;
	p->next = -1;
	p->depth = depth;
	p->start = start;
	p->body_start = header_end(c->msg, start, end);
	p->hdr_len = p->body_start - start;
	p->body_len = end - p->body_start;
	p->body_lines = count_lines(c->msg + p->body_start, p->body_len);

	got = mime_header_get(c->msg + start, p->hdr_len, "Content-Type", value, sizeof(value));
	if (got < 0) {
		if (!default_rfc822)
			return idx;
		strcpy(value, "message/rfc822");
	}
	mime_parse_ctype(value, &ct);
	if (depth >= MIME_MAX_DEPTH) {
		c->m->truncated = true;
		return idx;
	}
	if (strcmp(ct.type, "multipart") == 0) {
		const char *b = mime_param_get(ct.params, ct.n_params, "boundary");

		/* RFC 2046 5.1.1: 1 to 70 characters */
		if (b == NULL || b[0] == '\0' || strlen(b) > 70)
			return idx;
		p->multipart = true;
		p->digest = strcmp(ct.subtype, "digest") == 0;
		split_multipart(c, idx, p->body_start, end, b, depth);
	} else if (strcmp(ct.type, "message") == 0 && strcmp(ct.subtype, "rfc822") == 0) {
		int child;

		p->rfc822 = true;
		child = add_part(c, p->body_start, end, depth + 1, false);
		c->m->parts[idx].first_child = child;
	}
	return idx;
}

void mime_parse(const uint8_t *msg, size_t len, struct mime_message *m)
{
	struct mctx c = {.msg = msg, .m = m};

	m->n = 0;
	m->truncated = false;
	add_part(&c, 0, len, 0, false);
}

static int nth_child(const struct mime_message *m, int p, uint32_t k)
{
	int c = m->parts[p].first_child;

	while (c >= 0 && k > 1) {
		c = m->parts[c].next;
		k--;
	}
	return k == 1 ? c : -1;
}

int mime_find_part(const struct mime_message *m, const uint32_t *nums, size_t n)
{
	int p = 0;

	if (m->n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		uint32_t k = nums[i];
		const struct mime_part *cur = &m->parts[p];

		if (k == 0)
			return -1;
		if (cur->multipart) {
			p = nth_child(m, p, k);
		} else if (cur->rfc822 && cur->first_child >= 0) {
			int e = cur->first_child;

			if (m->parts[e].multipart)
				p = nth_child(m, e, k);
			else
				p = k == 1 ? e : -1;
		} else {
			/* a single-part message: its part 1 is its body */
			p = (p == 0 && k == 1) ? 0 : -1;
		}
		if (p < 0)
			return -1;
	}
	return p;
}
