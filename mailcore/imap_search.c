/* IMAP SEARCH (RFC 3501 6.4.4): the search keys evaluated per message over
 * the parsed argument tree; a dry run checks the syntax first so that a
 * malformed key is a BAD before any message is read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/xalloc.h"
#include "mailcore/imap_int.h"

#define SEARCH_MAX_DEPTH 32

struct sctx {
	struct imap_session *s;
	const struct imap_cmd *cmd;
	size_t idx;           /* the message */
	bool dry;             /* syntax check only */
	bool bad;
	bool load_failed;
	bool reads;           /* a key reads the message file (the dry run says) */
};

bool imap_contains_ci(const uint8_t *hay, size_t hlen, const char *needle, size_t nlen)
{
	if (nlen == 0)
		return true;
	if (nlen > hlen)
		return false;
	for (size_t i = 0; i + nlen <= hlen; i++) {
		size_t k = 0;

		while (k < nlen) {
			unsigned char a = hay[i + k], b = (unsigned char)needle[k];

			if (a >= 'A' && a <= 'Z')
				a = (unsigned char)(a - 'A' + 'a');
			if (b >= 'A' && b <= 'Z')
				b = (unsigned char)(b - 'A' + 'a');
			if (a != b)
				break;
			k++;
		}
		if (k == nlen)
			return true;
	}
	return false;
}

static const struct imap_arg *take(struct sctx *c, const struct imap_arg **ap)
{
	const struct imap_arg *a = *ap;

	if (a == NULL) {
		c->bad = true;
		return NULL;
	}
	*ap = imap_arg_next(c->cmd, a);
	return a;
}

static const char *take_string(struct sctx *c, const struct imap_arg **ap, size_t *len)
{
	const struct imap_arg *a = take(c, ap);

	if (a == NULL || a->type == IMAP_ARG_LIST) {
		c->bad = true;
		return NULL;
	}
	*len = a->len;
	return a->s;
}

static bool load(struct sctx *c)
{
	c->reads = true;
	if (c->dry)
		return false;
	if (imap_load_msg(c->s, c->idx, true) < 0) {
		c->load_failed = true;
		return false;
	}
	return true;
}

static bool header_contains(struct sctx *c, const char *field, const char *needle, size_t nlen)
{
	char *v;
	int n;
	bool r;

	if (!load(c))
		return false;
	v = sp_xmalloc(MIME_FIELD_MAX);
	n = mime_header_get(c->s->cache.data, c->s->cache.mime->parts[0].hdr_len, field, v,
			    MIME_FIELD_MAX);
	r = n >= 0 && imap_contains_ci((const uint8_t *)v, (size_t)n, needle, nlen);
	free(v);
	return r;
}

/* The day of the Date: header (RFC 5322 3.3), at midnight UTC; -1 if none. */
static time_t sent_day(struct sctx *c)
{
	static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
					     "jul", "aug", "sep", "oct", "nov", "dec"};
	char v[256], mon[4];
	const char *p;
	int day, year;
	struct tm tm = {0};

	if (!load(c) ||
	    mime_header_get(c->s->cache.data, c->s->cache.mime->parts[0].hdr_len, "Date", v,
			    sizeof(v)) < 0)
		return -1;
	p = strchr(v, ',');
	p = p != NULL ? p + 1 : v;
	if (sscanf(p, " %d %3s %d", &day, mon, &year) != 3)
		return -1;
	tm.tm_mon = -1;
	for (int i = 0; i < 12; i++)
		if (strcasecmp(mon, months[i]) == 0)
			tm.tm_mon = i;
	if (tm.tm_mon < 0 || day < 1 || day > 31)
		return -1;
	if (year < 50)
		year += 2000;
	else if (year < 1000)
		year += 1900;
	tm.tm_mday = day;
	tm.tm_year = year - 1900;
	return timegm(&tm);
}

static bool eval_keys(struct sctx *c, const struct imap_arg *first, int depth);

/* One search key from *ap (with its arguments). */
static bool eval_key(struct sctx *c, const struct imap_arg **ap, int depth)
{
	const struct imap_arg *k = take(c, ap);
	const struct store_msg *m = c->dry ? NULL : store_mailbox_msg(c->s->mb, c->idx);
	static const struct {
		const char *name;
		unsigned flag;
		bool set;
	} flag_keys[] = {
		{"ANSWERED", STORE_F_ANSWERED, true}, {"DELETED", STORE_F_DELETED, true},
		{"DRAFT", STORE_F_DRAFT, true},       {"FLAGGED", STORE_F_FLAGGED, true},
		{"SEEN", STORE_F_SEEN, true},         {"UNANSWERED", STORE_F_ANSWERED, false},
		{"UNDELETED", STORE_F_DELETED, false}, {"UNDRAFT", STORE_F_DRAFT, false},
		{"UNFLAGGED", STORE_F_FLAGGED, false}, {"UNSEEN", STORE_F_SEEN, false},
	};
	static const char *const hdr_keys[][2] = {
		{"FROM", "From"}, {"TO", "To"}, {"CC", "Cc"}, {"BCC", "Bcc"}, {"SUBJECT", "Subject"},
	};

	if (k == NULL || c->bad)
		return false;
	if (depth > SEARCH_MAX_DEPTH) {
		c->bad = true;
		return false;
	}
	if (k->type == IMAP_ARG_LIST)
		return eval_keys(c, imap_arg_child(c->cmd, k), depth + 1);
	if (k->type != IMAP_ARG_ATOM) {
		c->bad = true;
		return false;
	}
	if (imap_arg_is(k, "ALL"))
		return true;
	for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++)
		if (imap_arg_is(k, flag_keys[i].name))
			return m != NULL && ((m->flags & flag_keys[i].flag) != 0) == flag_keys[i].set;
	if (imap_arg_is(k, "RECENT"))
		return m != NULL && m->recent;
	if (imap_arg_is(k, "OLD"))
		return m != NULL && !m->recent;
	if (imap_arg_is(k, "NEW"))
		return m != NULL && m->recent && !(m->flags & STORE_F_SEEN);
	if (imap_arg_is(k, "KEYWORD") || imap_arg_is(k, "UNKEYWORD")) {
		bool un = imap_arg_is(k, "UNKEYWORD");
		const struct imap_arg *f = take(c, ap);
		char name[STORE_KEYWORD_LEN + 1];
		int slot;

		/* RFC 3501 6.4.4: KEYWORD flag-keyword (an atom) */
		if (f == NULL || f->type != IMAP_ARG_ATOM || !store_keyword_valid(f->s, f->len)) {
			c->bad = true;
			return false;
		}
		if (c->dry)
			return false;
		memcpy(name, f->s, f->len);
		name[f->len] = '\0';
		/* a keyword the mailbox does not know is set on no message */
		slot = store_keywords_find(store_mailbox_keywords(c->s->mb), name);
		return (slot >= 0 && (m->keywords & (1u << slot))) != un;
	}
	for (size_t i = 0; i < sizeof(hdr_keys) / sizeof(hdr_keys[0]); i++)
		if (imap_arg_is(k, hdr_keys[i][0])) {
			size_t len;
			const char *str = take_string(c, ap, &len);

			if (c->dry)
				c->reads = true;
			return str != NULL && !c->dry && header_contains(c, hdr_keys[i][1], str, len);
		}
	if (imap_arg_is(k, "HEADER")) {
		char field[128];
		size_t len;
		const struct imap_arg *f = take(c, ap);
		const char *str;

		if (imap_arg_string(f, field, sizeof(field)) < 0) {
			c->bad = true;
			return false;
		}
		str = take_string(c, ap, &len);
		if (c->dry)
			c->reads = true;
		return str != NULL && !c->dry && header_contains(c, field, str, len);
	}
	if (imap_arg_is(k, "BODY") || imap_arg_is(k, "TEXT")) {
		size_t len;
		const char *str = take_string(c, ap, &len);
		const struct mime_part *p;

		if (str == NULL || !load(c))
			return false;
		p = &c->s->cache.mime->parts[0];
		if (imap_arg_is(k, "TEXT"))
			return imap_contains_ci(c->s->cache.data, c->s->cache.len, str, len);
		return imap_contains_ci(c->s->cache.data + p->body_start, p->body_len, str, len);
	}
	if (imap_arg_is(k, "SINCE") || imap_arg_is(k, "BEFORE") || imap_arg_is(k, "ON") ||
	    imap_arg_is(k, "SENTSINCE") || imap_arg_is(k, "SENTBEFORE") || imap_arg_is(k, "SENTON")) {
		size_t len;
		const char *str = take_string(c, ap, &len);
		time_t d, t;
		bool sent = k->len > 4 && strncasecmp(k->s, "SENT", 4) == 0;
		const char *op = sent ? k->s + 4 : k->s;

		if (str == NULL || imap_parse_date(str, len, &d) < 0) {
			c->bad = true;
			return false;
		}
		if (c->dry) {
			c->reads |= sent;
			return false;
		}
		if (sent) {
			t = sent_day(c);
			if (t < 0)
				return false;
		} else {
			/* the internal date's day (UTC) */
			t = m->internaldate - m->internaldate % 86400;
		}
		if (strncasecmp(op, "SINCE", 5) == 0)
			return t >= d;
		if (strncasecmp(op, "BEFORE", 6) == 0)
			return t < d;
		return t == d;
	}
	if (imap_arg_is(k, "LARGER") || imap_arg_is(k, "SMALLER")) {
		uint32_t n;

		if (imap_arg_number(take(c, ap), &n) < 0) {
			c->bad = true;
			return false;
		}
		if (c->dry)
			return false;
		return imap_arg_is(k, "LARGER") ? m->size > n : m->size < n;
	}
	if (imap_arg_is(k, "NOT"))
		return !eval_key(c, ap, depth + 1) && !c->dry;
	if (imap_arg_is(k, "OR")) {
		bool a = eval_key(c, ap, depth + 1);
		bool b = eval_key(c, ap, depth + 1);

		return a || b;
	}
	if (imap_arg_is(k, "UID")) {
		const struct imap_arg *set = take(c, ap);
		struct imap_seqset *ss;
		bool r;
		size_t n;

		if (set == NULL || set->type != IMAP_ARG_ATOM) {
			c->bad = true;
			return false;
		}
		ss = sp_xmalloc(sizeof(*ss));
		if (imap_parse_seqset(set->s, set->len, ss) < 0) {
			free(ss);
			c->bad = true;
			return false;
		}
		n = store_mailbox_count(c->s->mb);
		r = !c->dry && imap_seqset_contains(ss, m->uid,
						    n > 0 ? store_mailbox_msg(c->s->mb, n - 1)->uid : 0);
		free(ss);
		return r;
	}
	/* a sequence set */
	{
		struct imap_seqset *ss = sp_xmalloc(sizeof(*ss));
		bool r;

		if (imap_parse_seqset(k->s, k->len, ss) < 0) {
			free(ss);
			c->bad = true;
			return false;
		}
		r = !c->dry && imap_seqset_contains(ss, (uint32_t)(c->idx + 1),
						    (uint32_t)store_mailbox_count(c->s->mb));
		free(ss);
		return r;
	}
}

/* All keys of a list must match (AND); every key is consumed so that a
 * dry run sees them all. */
static bool eval_keys(struct sctx *c, const struct imap_arg *first, int depth)
{
	const struct imap_arg *a = first;
	bool all = true;

	if (first == NULL) {
		c->bad = true;
		return false;
	}
	while (a != NULL && !c->bad)
		all = eval_key(c, &a, depth) && all;
	return all;
}

/* The evaluation over every message: on the pool when a key reads message
 * files (the dry run said so), else right here. */
struct search_job {
	char tag[IMAP_TAG_MAX + 1];
	bool uid;
	const struct imap_arg *first; /* in s->cmd: kept until the job ends */
	uint32_t *hits;
	size_t n_hits;
};

static void search_work(struct imap_session *s, void *arg)
{
	struct search_job *j = arg;
	struct sctx c = {.s = s, .cmd = s->cmd};
	size_t n = store_mailbox_count(s->mb);

	j->hits = sp_xcalloc(n + 1, sizeof(*j->hits));
	for (size_t i = 0; i < n; i++) {
		c.idx = i;
		if (eval_keys(&c, j->first, 0))
			j->hits[j->n_hits++] = j->uid ? store_mailbox_msg(s->mb, i)->uid : (uint32_t)(i + 1);
	}
	imap_cache_clear(&s->cache);
}

static void search_finish(struct imap_session *s, void *arg)
{
	struct search_job *j = arg;

	imap_out(s, "* SEARCH", sizeof("* SEARCH") - 1);
	for (size_t i = 0; i < j->n_hits; i++)
		imap_outf(s, " %u", j->hits[i]);
	imap_out(s, "\r\n", sizeof("\r\n") - 1);
	imap_tagged(s, j->tag, "OK", "%sSEARCH completed", j->uid ? "UID " : "");
}

static void search_release(void *arg)
{
	struct search_job *j = arg;

	free(j->hits);
	free(j);
}

void imap_cmd_search(struct imap_session *s, const struct imap_cmd *cmd)
{
	char tag[IMAP_TAG_MAX + 1];
	const struct imap_arg *first = imap_cmd_arg(cmd, 0);
	struct sctx c = {.s = s, .cmd = cmd, .dry = true};
	struct search_job *j;

	memcpy(tag, cmd->tag, cmd->tag_len);
	tag[cmd->tag_len] = '\0';
	if (imap_arg_is(first, "CHARSET")) {
		const struct imap_arg *cs = imap_arg_next(cmd, first);
		char name[32];

		if (imap_arg_string(cs, name, sizeof(name)) < 0) {
			imap_tagged(s, tag, "BAD", "CHARSET name");
			return;
		}
		if (strcasecmp(name, "US-ASCII") != 0 && strcasecmp(name, "UTF-8") != 0) {
			imap_tagged(s, tag, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
			return;
		}
		first = imap_arg_next(cmd, cs);
	}
	eval_keys(&c, first, 0);
	if (c.bad) {
		imap_tagged(s, tag, "BAD", "Bad search key");
		return;
	}
	j = sp_xcalloc(1, sizeof(*j));
	snprintf(j->tag, sizeof(j->tag), "%s", tag);
	j->uid = cmd->uid;
	j->first = first;
	if (!c.reads) {
		/* flags, dates, sizes, UIDs: all in the view, no I/O */
		search_work(s, j);
		search_finish(s, j);
		search_release(j);
		return;
	}
	imap_run_job(s, tag, search_work, search_finish, search_release, j);
}
