/* IMAP FETCH (RFC 3501 6.4.5, 7.4.2): the data items, ENVELOPE,
 * BODY/BODYSTRUCTURE from the MIME tree (mime_parse.c), BODY[section]<partial>
 * with HEADER, HEADER.FIELDS[.NOT], TEXT, MIME and part numbers. A FETCH
 * runs as a job that yields when the output passes the high-water mark. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/imap_int.h"

enum fi_kind {
	FI_FLAGS, FI_UID, FI_INTERNALDATE, FI_SIZE, FI_ENVELOPE, FI_BODYSTRUCTURE, FI_BODY,
	FI_SECTION, /* BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT */
};

enum sec_spec { SEC_ALL, SEC_HEADER, SEC_FIELDS, SEC_FIELDS_NOT, SEC_TEXT, SEC_MIME };

#define FETCH_MAX_FIELDS 64
#define FETCH_MAX_ITEMS 64

struct fetch_item {
	enum fi_kind kind;
	bool peek;
	uint32_t part[MIME_MAX_DEPTH];
	size_t n_part;
	enum sec_spec spec;
	char *fields[FETCH_MAX_FIELDS];
	size_t n_fields;
	bool partial;
	uint32_t p_off, p_len;
	char *label;      /* what the response calls it: "BODY[HEADER]", "RFC822" */
};

void imap_cache_clear(struct msg_cache *c)
{
	free(c->data);
	free(c->mime);
	memset(c, 0, sizeof(*c));
	c->idx = -1;
}

static void ahead_clear(struct fetch_job *j)
{
	for (size_t i = 0; i < j->n_ahead; i++)
		imap_cache_clear(&j->ahead[i]);
	free(j->ahead);
	j->ahead = NULL;
	j->n_ahead = 0;
}

void imap_fetch_clear(struct fetch_job *j)
{
	for (size_t i = 0; i < j->n_items; i++) {
		for (size_t k = 0; k < j->items[i].n_fields; k++)
			free(j->items[i].fields[k]);
		free(j->items[i].label);
	}
	free(j->items);
	free(j->idx);
	ahead_clear(j);
	memset(j, 0, sizeof(*j));
}

/* Does c hold message idx as wanted? */
static bool cache_has(const struct msg_cache *c, size_t idx, uint32_t uid, bool mime,
		      bool header_only)
{
	return c->idx == (ssize_t)idx && c->uid == uid && (header_only || !c->header_only) &&
	       (!mime || c->mime != NULL);
}

/* Reads fd into c->data: all of it (size bytes), or with header_only
 * from IMAP_HEADER_CHUNK on in doubling steps until the header's end is in. */
static void read_msg(int fd, size_t size, bool header_only, struct msg_cache *c)
{
	size_t want = header_only && size > IMAP_HEADER_CHUNK ? IMAP_HEADER_CHUNK : size;
	size_t got = 0;
	bool stopped = false;

	c->data = sp_xmalloc(want + 1);
	for (;;) {
		while (got < want) {
			ssize_t r = read(fd, c->data + got, want - got);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got < want || want == size)
			break; /* the end of the file (or a read error): what we have */
		if (mime_header_end(c->data, got, &c->hdr_len)) {
			stopped = true;
			break;
		}
		want = want > size / 2 ? size : want * 2;
		c->data = sp_xrealloc(c->data, want + 1, 1);
	}
	c->len = got;
	c->header_only = stopped;
	if (!stopped)
		(void)mime_header_end(c->data, got, &c->hdr_len);
}

int imap_load_msg_into(struct imap_session *s, struct msg_cache *c, size_t idx, bool mime,
		       bool header_only)
{
	const struct store_msg *m = store_mailbox_msg(s->mb, idx);

	if (m == NULL)
		return -1;
	if (mime)
		header_only = false;
	if (!cache_has(c, idx, m->uid, false, header_only)) {
		struct stat st;
		int fd;

		imap_cache_clear(c);
		fd = store_mailbox_open_msg(s->mb, idx);
		if (fd < 0)
			return -1;
		if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > IMAP_MAX_FETCH_FILE) {
			close(fd);
			return -1;
		}
		read_msg(fd, (size_t)st.st_size, header_only, c);
		close(fd);
		c->idx = (ssize_t)idx;
		c->uid = m->uid;
	}
	if (mime && c->mime == NULL) {
		c->mime = sp_xmalloc(sizeof(*c->mime));
		mime_parse(c->data, c->len, c->mime);
	}
	return 0;
}

int imap_load_msg(struct imap_session *s, size_t idx, bool mime)
{
	return imap_load_msg_into(s, &s->cache, idx, mime, false);
}

/* ------------------------------------------------------------ parsing */

static int parse_section(struct fetch_item *it, const char *sec, size_t len)
{
	size_t i = 0;

	it->spec = SEC_ALL;
	/* part numbers */
	while (i < len && sec[i] >= '0' && sec[i] <= '9') {
		uint32_t v = 0;

		while (i < len && sec[i] >= '0' && sec[i] <= '9') {
			v = v * 10 + (uint32_t)(sec[i++] - '0');
			if (v > 100000)
				return -1;
		}
		if (v == 0 || it->n_part == MIME_MAX_DEPTH)
			return -1;
		it->part[it->n_part++] = v;
		if (i < len) {
			if (sec[i] != '.')
				return -1;
			i++;
			if (i == len)
				return -1;
		}
	}
	if (i == len)
		return 0;
	if (len - i == 6 && strncasecmp(sec + i, "HEADER", 6) == 0) {
		it->spec = SEC_HEADER;
	} else if (len - i == 4 && strncasecmp(sec + i, "TEXT", 4) == 0) {
		it->spec = SEC_TEXT;
	} else if (len - i == 4 && strncasecmp(sec + i, "MIME", 4) == 0) {
		if (it->n_part == 0)
			return -1; /* RFC 3501 6.4.5: MIME needs a part number */
		it->spec = SEC_MIME;
	} else {
		const char *p = sec + i, *end = sec + len;
		bool not;

		if ((size_t)(end - p) > 18 && strncasecmp(p, "HEADER.FIELDS.NOT ", 18) == 0) {
			not = true;
			p += 18;
		} else if ((size_t)(end - p) > 14 && strncasecmp(p, "HEADER.FIELDS ", 14) == 0) {
			not = false;
			p += 14;
		} else {
			return -1;
		}
		it->spec = not ? SEC_FIELDS_NOT : SEC_FIELDS;
		if (*p != '(' || end[-1] != ')')
			return -1;
		p++;
		end--;
		while (p < end) {
			const char *start;

			while (p < end && *p == ' ')
				p++;
			start = p;
			while (p < end && *p != ' ')
				p++;
			if (p == start)
				break;
			if (*start == '"' && p - start >= 2 && p[-1] == '"') {
				start++;
				if (it->n_fields < FETCH_MAX_FIELDS)
					it->fields[it->n_fields++] = sp_xstrndup(start, (size_t)(p - 1 - start));
				continue;
			}
			if (it->n_fields == FETCH_MAX_FIELDS)
				return -1;
			it->fields[it->n_fields++] = sp_xstrndup(start, (size_t)(p - start));
		}
		if (it->n_fields == 0)
			return -1;
	}
	return 0;
}

/* "BODY[...]<a.b>" or "BODY.PEEK[...]<a.b>" */
static int parse_body_item(struct fetch_item *it, const char *s, size_t len)
{
	const char *lb = memchr(s, '[', len), *rb;
	size_t head = (size_t)(lb - s);

	if (head == 9 && strncasecmp(s, "BODY.PEEK", 9) == 0)
		it->peek = true;
	else if (!(head == 4 && strncasecmp(s, "BODY", 4) == 0))
		return -1;
	rb = memchr(lb, ']', len - head);
	if (rb == NULL || parse_section(it, lb + 1, (size_t)(rb - lb - 1)) < 0)
		return -1;
	it->kind = FI_SECTION;
	it->label = sp_xasprintf("BODY[%.*s]", (int)(rb - lb - 1), lb + 1);
	if ((size_t)(rb - s) + 1 < len) {
		/* <origin.count> */
		const char *p = rb + 1, *end = s + len;
		uint64_t a = 0, b = 0;

		if (*p++ != '<' || end[-1] != '>')
			return -1;
		if (p >= end - 1 || *p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9' && (a = a * 10 + (uint64_t)(*p++ - '0')) <= UINT32_MAX)
			;
		if (*p++ != '.' || *p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9' && (b = b * 10 + (uint64_t)(*p++ - '0')) <= UINT32_MAX)
			;
		if (p != end - 1 || a > UINT32_MAX || b > UINT32_MAX || b == 0)
			return -1;
		it->partial = true;
		it->p_off = (uint32_t)a;
		it->p_len = (uint32_t)b;
	}
	return 0;
}

static int add_item(struct fetch_job *j, const struct imap_arg *a)
{
	struct fetch_item *it;
	static const struct {
		const char *name;
		enum fi_kind kind;
	} simple[] = {
		{"FLAGS", FI_FLAGS},         {"UID", FI_UID},
		{"INTERNALDATE", FI_INTERNALDATE}, {"RFC822.SIZE", FI_SIZE},
		{"ENVELOPE", FI_ENVELOPE},   {"BODYSTRUCTURE", FI_BODYSTRUCTURE},
		{"BODY", FI_BODY},
	};

	if (a->type != IMAP_ARG_ATOM || j->n_items == FETCH_MAX_ITEMS)
		return -1;
	it = &j->items[j->n_items];
	memset(it, 0, sizeof(*it));
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
		if (imap_arg_is(a, simple[i].name)) {
			it->kind = simple[i].kind;
			j->n_items++;
			return 0;
		}
	if (imap_arg_is(a, "RFC822")) {
		it->kind = FI_SECTION;
		it->label = sp_xstrdup("RFC822");
	} else if (imap_arg_is(a, "RFC822.HEADER")) {
		it->kind = FI_SECTION;
		it->peek = true;
		it->spec = SEC_HEADER;
		it->label = sp_xstrdup("RFC822.HEADER");
	} else if (imap_arg_is(a, "RFC822.TEXT")) {
		it->kind = FI_SECTION;
		it->spec = SEC_TEXT;
		it->label = sp_xstrdup("RFC822.TEXT");
	} else if (memchr(a->s, '[', a->len) != NULL) {
		if (parse_body_item(it, a->s, a->len) < 0) {
			for (size_t k = 0; k < it->n_fields; k++)
				free(it->fields[k]);
			free(it->label);
			return -1;
		}
	} else {
		return -1;
	}
	j->n_items++;
	return 0;
}

static int add_macro(struct fetch_job *j, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct imap_arg a = {.type = IMAP_ARG_ATOM, .s = names[i], .len = strlen(names[i])};

		if (add_item(j, &a) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ output */

/* Each header field of hdr[0..len) whose name is (or, not, is not) in names. */
static void out_header_fields(struct imap_session *s, struct obuf *ob, const uint8_t *hdr,
			      size_t len, char *const *names, size_t n, bool not)
{
	size_t i = 0;

	(void)s;
	while (i < len) {
		size_t start = i, colon, end;
		bool match = false;

		/* the empty line ends the header */
		if (hdr[i] == '\r' || hdr[i] == '\n')
			break;
		colon = i;
		while (colon < len && hdr[colon] != ':' && hdr[colon] != '\n')
			colon++;
		end = i;
		do {
			while (end < len && hdr[end] != '\n')
				end++;
			if (end < len)
				end++;
		} while (end < len && (hdr[end] == ' ' || hdr[end] == '\t'));
		if (colon < len && hdr[colon] == ':') {
			size_t nl = colon - start;

			while (nl > 0 && (hdr[start + nl - 1] == ' ' || hdr[start + nl - 1] == '\t'))
				nl--;
			for (size_t k = 0; k < n && !match; k++)
				match = strlen(names[k]) == nl &&
					strncasecmp((const char *)hdr + start, names[k], nl) == 0;
		}
		if (match != not) {
			size_t l = end - start;

			if (ob->len + l + 2 > ob->cap) {
				ob->cap = (ob->len + l + 2) * 2;
				ob->data = sp_xrealloc(ob->data, ob->cap, 1);
			}
			memcpy(ob->data + ob->len, hdr + start, l);
			ob->len += l;
		}
		i = end;
	}
	if (ob->len + 2 > ob->cap) {
		ob->cap = ob->len + 64;
		ob->data = sp_xrealloc(ob->data, ob->cap, 1);
	}
	memcpy(ob->data + ob->len, "\r\n", 2);
	ob->len += 2;
}

static void out_literal(struct imap_session *s, const uint8_t *data, size_t len)
{
	imap_outf(s, "{%zu}\r\n", len);
	imap_out(s, data, len);
}

/* The header of part p: for part 0 or an embedded message, the message header. */
static void part_header(const struct msg_cache *c, int p, const uint8_t **h, size_t *len)
{
	const struct mime_part *mp = &c->mime->parts[p];

	*h = c->data + mp->start;
	*len = mp->hdr_len;
}

static void out_field_nstring(struct imap_session *s, const uint8_t *hdr, size_t len,
			      const char *name)
{
	char v[MIME_FIELD_MAX];

	if (mime_header_get(hdr, len, name, v, sizeof(v)) < 0)
		imap_out(s, "NIL", sizeof("NIL") - 1);
	else
		imap_out_string(s, v, strlen(v));
}

static void out_addresses(struct imap_session *s, const char *value)
{
	/* not zeroed: mime_parse_addresses sets each entry it returns (49 kB) */
	struct mime_addr *a = sp_xmalloc(MIME_MAX_ADDRS * sizeof(*a));
	size_t n = mime_parse_addresses(value, a, MIME_MAX_ADDRS);

	if (n == 0) {
		imap_out(s, "NIL", sizeof("NIL") - 1);
		free(a);
		return;
	}
	imap_out(s, "(", sizeof("(") - 1);
	for (size_t i = 0; i < n; i++) {
		if (a[i].group_end) {
			imap_out(s, "(NIL NIL NIL NIL)", sizeof("(NIL NIL NIL NIL)") - 1);
		} else if (a[i].group_start) {
			imap_out(s, "(NIL NIL ", sizeof("(NIL NIL ") - 1);
			imap_out_string(s, a[i].mailbox, strlen(a[i].mailbox));
			imap_out(s, " NIL)", sizeof(" NIL)") - 1);
		} else {
			imap_out(s, "(", sizeof("(") - 1);
			imap_out_nstring(s, a[i].name[0] != '\0' ? a[i].name : NULL);
			imap_out(s, " NIL ", sizeof(" NIL ") - 1);
			imap_out_nstring(s, a[i].mailbox);
			imap_out(s, " ", sizeof(" ") - 1);
			imap_out_nstring(s, a[i].host[0] != '\0' ? a[i].host : NULL);
			imap_out(s, ")", sizeof(")") - 1);
		}
	}
	imap_out(s, ")", sizeof(")") - 1);
	free(a);
}

static void out_envelope(struct imap_session *s, const uint8_t *hdr, size_t len)
{
	static const char *const addr_fields[] = {"From", "Sender", "Reply-To", "To", "Cc", "Bcc"};
	char *v = sp_xmalloc(MIME_FIELD_MAX), *from = sp_xmalloc(MIME_FIELD_MAX);
	bool have_from = mime_header_get(hdr, len, "From", from, MIME_FIELD_MAX) >= 0;

	imap_out(s, "(", sizeof("(") - 1);
	out_field_nstring(s, hdr, len, "Date");
	imap_out(s, " ", sizeof(" ") - 1);
	out_field_nstring(s, hdr, len, "Subject");
	for (size_t i = 0; i < 6; i++) {
		imap_out(s, " ", sizeof(" ") - 1);
		if (mime_header_get(hdr, len, addr_fields[i], v, MIME_FIELD_MAX) >= 0)
			out_addresses(s, v);
		else if ((i == 1 || i == 2) && have_from)
			out_addresses(s, from); /* RFC 3501 7.4.2: sender, reply-to default to from */
		else
			imap_out(s, "NIL", sizeof("NIL") - 1);
	}
	imap_out(s, " ", sizeof(" ") - 1);
	out_field_nstring(s, hdr, len, "In-Reply-To");
	imap_out(s, " ", sizeof(" ") - 1);
	out_field_nstring(s, hdr, len, "Message-ID");
	imap_out(s, ")", sizeof(")") - 1);
	free(v);
	free(from);
}

static void out_params(struct imap_session *s, const struct mime_param *p, size_t n)
{
	if (n == 0) {
		imap_out(s, "NIL", sizeof("NIL") - 1);
		return;
	}
	imap_out(s, "(", sizeof("(") - 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			imap_out(s, " ", sizeof(" ") - 1);
		imap_out_string(s, p[i].name, strlen(p[i].name));
		imap_out(s, " ", sizeof(" ") - 1);
		imap_out_string(s, p[i].value, strlen(p[i].value));
	}
	imap_out(s, ")", sizeof(")") - 1);
}

static void upper(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
}

static void out_structure(struct imap_session *s, const struct msg_cache *c, int p, bool ext,
			  bool parent_digest, int depth)
{
	const struct mime_part *mp = &c->mime->parts[p];
	const uint8_t *h;
	size_t hl;
	char *v = sp_xmalloc(MIME_FIELD_MAX);
	struct mime_ctype *ct = sp_xmalloc(sizeof(*ct));

	part_header(c, p, &h, &hl);
	if (mime_header_get(h, hl, "Content-Type", v, MIME_FIELD_MAX) >= 0)
		mime_parse_ctype(v, ct);
	else
		mime_parse_ctype(parent_digest ? "message/rfc822" : "text/plain; charset=us-ascii", ct);
	upper(ct->type);
	upper(ct->subtype);
	imap_out(s, "(", sizeof("(") - 1);
	if (mp->multipart && mp->first_child >= 0 && depth < MIME_MAX_DEPTH) {
		for (int k = mp->first_child; k >= 0; k = c->mime->parts[k].next)
			out_structure(s, c, k, ext, mp->digest, depth + 1);
		imap_out(s, " ", sizeof(" ") - 1);
		imap_out_string(s, ct->subtype, strlen(ct->subtype));
		if (ext) {
			struct mime_param dp[MIME_MAX_PARAMS];
			size_t ndp = 0;
			char disp[64];

			imap_out(s, " ", sizeof(" ") - 1);
			out_params(s, ct->params, ct->n_params);
			imap_out(s, " ", sizeof(" ") - 1);
			if (mime_header_get(h, hl, "Content-Disposition", v, MIME_FIELD_MAX) >= 0 &&
			    mime_parse_disposition(v, disp, sizeof(disp), dp, &ndp) == 0) {
				upper(disp);
				imap_out(s, "(", sizeof("(") - 1);
				imap_out_string(s, disp, strlen(disp));
				imap_out(s, " ", sizeof(" ") - 1);
				out_params(s, dp, ndp);
				imap_out(s, ")", sizeof(")") - 1);
			} else {
				imap_out(s, "NIL", sizeof("NIL") - 1);
			}
			imap_out(s, " NIL NIL", sizeof(" NIL NIL") - 1);
		}
	} else {
		char enc[64];

		if (mp->multipart) {
			/* a multipart without parts we could find: describe it as text */
			mime_parse_ctype("text/plain; charset=us-ascii", ct);
			upper(ct->type);
			upper(ct->subtype);
		}
		imap_out_string(s, ct->type, strlen(ct->type));
		imap_out(s, " ", sizeof(" ") - 1);
		imap_out_string(s, ct->subtype, strlen(ct->subtype));
		imap_out(s, " ", sizeof(" ") - 1);
		out_params(s, ct->params, ct->n_params);
		imap_out(s, " ", sizeof(" ") - 1);
		out_field_nstring(s, h, hl, "Content-ID");
		imap_out(s, " ", sizeof(" ") - 1);
		out_field_nstring(s, h, hl, "Content-Description");
		if (mime_header_get(h, hl, "Content-Transfer-Encoding", enc, sizeof(enc)) < 0)
			snprintf(enc, sizeof(enc), "7BIT");
		upper(enc);
		imap_out(s, " ", sizeof(" ") - 1);
		imap_out_string(s, enc, strlen(enc));
		imap_outf(s, " %zu", mp->body_len);
		if (strcmp(ct->type, "TEXT") == 0)
			imap_outf(s, " %u", mp->body_lines);
		if (mp->rfc822 && mp->first_child >= 0 && depth < MIME_MAX_DEPTH) {
			const struct mime_part *e = &c->mime->parts[mp->first_child];

			imap_out(s, " ", sizeof(" ") - 1);
			out_envelope(s, c->data + e->start, e->hdr_len);
			imap_out(s, " ", sizeof(" ") - 1);
			out_structure(s, c, mp->first_child, ext, false, depth + 1);
			imap_outf(s, " %u", mp->body_lines);
		}
		if (ext) {
			struct mime_param dp[MIME_MAX_PARAMS];
			size_t ndp = 0;
			char disp[64];

			imap_out(s, " ", sizeof(" ") - 1);
			out_field_nstring(s, h, hl, "Content-MD5");
			imap_out(s, " ", sizeof(" ") - 1);
			if (mime_header_get(h, hl, "Content-Disposition", v, MIME_FIELD_MAX) >= 0 &&
			    mime_parse_disposition(v, disp, sizeof(disp), dp, &ndp) == 0) {
				upper(disp);
				imap_out(s, "(", sizeof("(") - 1);
				imap_out_string(s, disp, strlen(disp));
				imap_out(s, " ", sizeof(" ") - 1);
				out_params(s, dp, ndp);
				imap_out(s, ")", sizeof(")") - 1);
			} else {
				imap_out(s, "NIL", sizeof("NIL") - 1);
			}
			imap_out(s, " NIL NIL", sizeof(" NIL NIL") - 1);
		}
	}
	imap_out(s, ")", sizeof(")") - 1);
	free(v);
	free(ct);
}

/* The bytes of a section; out-of-range part -> empty (RFC 3501 leaves it
 * to the server; an empty string keeps clients going). */
static void section_bytes(struct imap_session *s, const struct fetch_item *it, struct obuf *ob,
			  const uint8_t **data, size_t *len)
{
	const struct msg_cache *c = &s->cache;
	const struct mime_message *m = c->mime;
	int p = 0;

	*data = (const uint8_t *)"";
	*len = 0;
	if (it->n_part == 0 && it->spec == SEC_ALL) {
		*data = c->data;
		*len = c->len;
		return;
	}
	if (it->n_part == 0 && it->spec == SEC_TEXT) {
		*data = c->data + c->hdr_len;
		*len = c->len - c->hdr_len;
		return;
	}
	if (it->n_part == 0 && it->spec == SEC_HEADER) {
		*data = c->data;
		*len = c->hdr_len;
		return;
	}
	if (it->n_part == 0 && (it->spec == SEC_FIELDS || it->spec == SEC_FIELDS_NOT)) {
		ob->len = 0;
		out_header_fields(s, ob, c->data, c->hdr_len, it->fields, it->n_fields,
				  it->spec == SEC_FIELDS_NOT);
		*data = ob->data;
		*len = ob->len;
		return;
	}
	if (it->n_part > 0) {
		p = mime_find_part(m, it->part, it->n_part);
		if (p < 0)
			return;
	}
	if (it->n_part > 0 && it->spec != SEC_ALL && it->spec != SEC_MIME) {
		/* HEADER/TEXT of a part: only for message/rfc822 parts */
		if (!m->parts[p].rfc822 || m->parts[p].first_child < 0)
			return;
		p = m->parts[p].first_child;
	}
	switch (it->spec) {
	case SEC_ALL:
		*data = c->data + m->parts[p].body_start;
		*len = m->parts[p].body_len;
		break;
	case SEC_HEADER:
	case SEC_MIME:
		*data = c->data + m->parts[p].start;
		*len = m->parts[p].hdr_len;
		break;
	case SEC_TEXT:
		*data = c->data + m->parts[p].body_start;
		*len = m->parts[p].body_len;
		break;
	case SEC_FIELDS:
	case SEC_FIELDS_NOT:
		ob->len = 0;
		out_header_fields(s, ob, c->data + m->parts[p].start, m->parts[p].hdr_len, it->fields,
				  it->n_fields, it->spec == SEC_FIELDS_NOT);
		*data = ob->data;
		*len = ob->len;
		break;
	}
}

/* The message header alone serves the item (read only that far). */
static bool header_item(const struct fetch_item *it)
{
	return it->kind == FI_ENVELOPE ||
	       (it->kind == FI_SECTION && it->n_part == 0 &&
		(it->spec == SEC_HEADER || it->spec == SEC_FIELDS || it->spec == SEC_FIELDS_NOT));
}

/* What the items need of the message: its bytes (all of them, or only the
 * header), its MIME tree, \Seen set. */
struct fetch_need {
	bool data, header_only, mime, seen;
};

static struct fetch_need fetch_needs(const struct fetch_job *j)
{
	struct fetch_need n = {.header_only = true};

	for (size_t i = 0; i < j->n_items; i++) {
		const struct fetch_item *it = &j->items[i];
		enum fi_kind k = it->kind;

		if (k == FI_ENVELOPE || k == FI_BODYSTRUCTURE || k == FI_BODY || k == FI_SECTION) {
			n.data = true;
			if (!header_item(it))
				n.header_only = false;
		}
		if (k == FI_BODYSTRUCTURE || k == FI_BODY ||
		    (k == FI_SECTION && it->n_part > 0))
			n.mime = true;
		if (k == FI_SECTION && !it->peek)
			n.seen = true;
	}
	if (n.mime)
		n.header_only = false;
	return n;
}

/* Message idx into s->cache: from the read-ahead entries when it is there,
 * else from disk here. */
static int fetch_load(struct imap_session *s, size_t idx, const struct fetch_need *need)
{
	struct fetch_job *j = &s->fetch;
	const struct store_msg *m = store_mailbox_msg(s->mb, idx);

	if (m == NULL)
		return -1;
	if (cache_has(&s->cache, idx, m->uid, need->mime, need->header_only))
		return 0;
	for (size_t i = 0; i < j->n_ahead; i++) {
		if (cache_has(&j->ahead[i], idx, m->uid, need->mime, need->header_only)) {
			imap_cache_clear(&s->cache);
			s->cache = j->ahead[i];
			memset(&j->ahead[i], 0, sizeof(j->ahead[i]));
			j->ahead[i].idx = -1;
			return 0;
		}
	}
	return imap_load_msg_into(s, &s->cache, idx, need->mime, need->header_only);
}

static bool fetch_one(struct imap_session *s, size_t idx)
{
	struct fetch_job *j = &s->fetch;
	const struct store_msg *m = store_mailbox_msg(s->mb, idx);
	struct fetch_need need = fetch_needs(j);
	bool set_seen = need.seen, first = true, have_uid = false;
	struct obuf scratch = {0};
	char date[64];

	if (need.data && fetch_load(s, idx, &need) < 0)
		return false;
	/* RFC 3501 6.4.5: BODY[] without .PEEK sets \Seen */
	if (set_seen && !s->read_only && !(m->flags & STORE_F_SEEN)) {
		char *err = NULL;

		if (store_mailbox_set_flags(s->mb, idx, m->flags | STORE_F_SEEN, &err) == STORE_MB_OK)
			m = store_mailbox_msg(s->mb, idx);
		else
			free(err);
	} else {
		set_seen = false;
	}
	imap_outf(s, "* %zu FETCH (", idx + 1);
	for (size_t i = 0; i < j->n_items; i++) {
		const struct fetch_item *it = &j->items[i];

		if (!first)
			imap_out(s, " ", sizeof(" ") - 1);
		first = false;
		switch (it->kind) {
		case FI_FLAGS:
			imap_out(s, "FLAGS ", sizeof("FLAGS ") - 1);
			imap_out_flags(s, m);
			set_seen = false;
			break;
		case FI_UID:
			imap_outf(s, "UID %u", m->uid);
			have_uid = true;
			break;
		case FI_INTERNALDATE:
			imap_format_datetime(m->internaldate, date, sizeof(date));
			imap_outf(s, "INTERNALDATE \"%s\"", date);
			break;
		case FI_SIZE:
			imap_outf(s, "RFC822.SIZE %llu", (unsigned long long)m->size);
			break;
		case FI_ENVELOPE:
			imap_out(s, "ENVELOPE ", sizeof("ENVELOPE ") - 1);
			out_envelope(s, s->cache.data, s->cache.hdr_len);
			break;
		case FI_BODYSTRUCTURE:
		case FI_BODY:
			imap_out(s, it->kind == FI_BODY ? "BODY " : "BODYSTRUCTURE ",
				 it->kind == FI_BODY ? 5 : 14);
			out_structure(s, &s->cache, 0, it->kind == FI_BODYSTRUCTURE, false, 0);
			break;
		case FI_SECTION: {
			const uint8_t *data;
			size_t len;

			section_bytes(s, it, &scratch, &data, &len);
			if (it->partial) {
				imap_outf(s, "%s<%u> ", it->label, it->p_off);
				if (it->p_off >= len) {
					len = 0;
				} else {
					data += it->p_off;
					len -= it->p_off;
					if (len > it->p_len)
						len = it->p_len;
				}
			} else {
				imap_outf(s, "%s ", it->label);
			}
			out_literal(s, data, len);
			break;
		}
		}
	}
	if (set_seen) {
		imap_out(s, " FLAGS ", sizeof(" FLAGS ") - 1);
		imap_out_flags(s, m);
	}
	/* RFC 3501 6.4.8: UID FETCH always includes UID */
	if (j->uid && !have_uid)
		imap_outf(s, " UID %u", m->uid);
	imap_out(s, ")\r\n", sizeof(")\r\n") - 1);
	free(scratch.data);
	return true;
}

/* The next message files are read (and parsed) on the pool in one job, as
 * many as IMAP_READ_AHEAD and IMAP_READ_AHEAD_BYTES allow: one round trip
 * to the pool per batch, not per message. fetch_one takes them from
 * j->ahead; one whose read failed there is tried once more by fetch_one,
 * which then answers for it. */
struct read_job {
	size_t from, to;       /* positions in s->fetch.idx */
	struct fetch_need need;
};

static void read_work(struct imap_session *s, void *arg)
{
	struct read_job *r = arg;
	struct fetch_job *j = &s->fetch;
	size_t bytes = 0, pos;

	ahead_clear(j);
	j->ahead = sp_xcalloc(r->to - r->from, sizeof(*j->ahead));
	for (pos = r->from; pos < r->to && bytes < IMAP_READ_AHEAD_BYTES; pos++) {
		struct msg_cache *c = &j->ahead[j->n_ahead++];

		c->idx = -1;
		if (imap_load_msg_into(s, c, j->idx[pos], r->need.mime, r->need.header_only) == 0)
			bytes += c->len;
	}
	r->to = pos;
}

static void read_finish(struct imap_session *s, void *arg)
{
	const struct read_job *r = arg;

	s->fetch.read_end = r->to;
}

void imap_fetch_continue(struct imap_session *s)
{
	struct fetch_job *j = &s->fetch;
	struct fetch_need need = fetch_needs(j);

	while (j->pos < j->n_idx) {
		size_t idx = j->idx[j->pos];
		const struct store_msg *m = store_mailbox_msg(s->mb, idx);

		if (need.data && m != NULL && s->env->pool != NULL && j->pos >= j->read_end &&
		    !cache_has(&s->cache, idx, m->uid, need.mime, need.header_only)) {
			struct read_job *r = sp_xmalloc(sizeof(*r));
			size_t to = j->n_idx - j->pos > IMAP_READ_AHEAD ? j->pos + IMAP_READ_AHEAD
									: j->n_idx;

			*r = (struct read_job){.from = j->pos, .to = to, .need = need};
			imap_run_job(s, NULL, read_work, read_finish, free, r);
			if (s->job != NULL)
				return;
		}
		if (!fetch_one(s, idx))
			j->failed = true;
		j->pos++;
		if (s->out.len - s->out.off >= IMAP_OUT_HIGH_WATER)
			return;
	}
	if (j->failed)
		imap_tagged(s, j->tag, "NO", "Some messages could not be fetched (expunged?)");
	else
		imap_tagged(s, j->tag, "OK", "%sFETCH completed", j->uid ? "UID " : "");
	imap_fetch_clear(j);
	imap_cache_clear(&s->cache);
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_cmd *cmd)
{
	static const char *const m_all[] = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"};
	static const char *const m_fast[] = {"FLAGS", "INTERNALDATE", "RFC822.SIZE"};
	static const char *const m_full[] = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
					     "BODY"};
	struct fetch_job *j = &s->fetch;
	const struct imap_arg *items = imap_cmd_arg(cmd, 1);
	char tag[IMAP_TAG_MAX + 1];
	int rc = 0;

	memcpy(tag, cmd->tag, cmd->tag_len);
	tag[cmd->tag_len] = '\0';
	imap_fetch_clear(j);
	snprintf(j->tag, sizeof(j->tag), "%s", tag);
	j->uid = cmd->uid;
	j->items = sp_xcalloc(FETCH_MAX_ITEMS, sizeof(*j->items));
	if (cmd->n_args != 2) {
		rc = -1;
	} else if (items->type == IMAP_ARG_LIST) {
		const struct imap_arg *a;

		for (a = imap_arg_child(cmd, items); a != NULL && rc == 0; a = imap_arg_next(cmd, a))
			rc = add_item(j, a);
		if (j->n_items == 0)
			rc = -1;
	} else if (imap_arg_is(items, "ALL")) {
		rc = add_macro(j, m_all, 4);
	} else if (imap_arg_is(items, "FAST")) {
		rc = add_macro(j, m_fast, 3);
	} else if (imap_arg_is(items, "FULL")) {
		rc = add_macro(j, m_full, 5);
	} else {
		rc = add_item(j, items);
	}
	if (rc < 0) {
		imap_fetch_clear(j);
		imap_tagged(s, tag, "BAD", "Bad FETCH items");
		return;
	}
	rc = imap_resolve_set(s, imap_cmd_arg(cmd, 0), cmd->uid, &j->idx, &j->n_idx);
	if (rc < 0) {
		imap_fetch_clear(j);
		imap_tagged(s, tag, "BAD",
			    rc == -2 ? "Invalid message sequence number" : "Bad message set");
		return;
	}
	j->active = true;
	imap_fetch_continue(s);
}
