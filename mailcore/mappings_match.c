/* Running a probe string through a mapping table: wildcard matching with
 * captures ('*', '%', $(subnet)), then the template: substitutions, flags
 * ($Y $N $F $C $E $X) and the output string. docs/MAPPINGS.md is the
 * reference for what is implemented here. Pure. */
#include "mailcore/mailcore.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "mailcore/mappings_private.h"

struct capture {
	size_t start, len;
};

static bool is_ip_char(unsigned char c)
{
	return isxdigit(c) || c == '.' || c == ':';
}

/* Length of the IP address token at s[j] if it lies in the element's
 * subnet; 0 if not. The token must start at a token boundary, so that a
 * preceding '*' cannot cut an address in half. */
static size_t match_net(const struct map_pat *p, const char *s, size_t n, size_t j)
{
	char buf[64];
	uint8_t addr[16];
	const uint8_t *cmp = addr;
	size_t len = 0;
	int family;

	if (j > 0 && is_ip_char((unsigned char)s[j - 1]))
		return 0;
	while (j + len < n && is_ip_char((unsigned char)s[j + len]))
		len++;
	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s + j, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1) {
		family = 4;
	} else if (inet_pton(AF_INET6, buf, addr) == 1) {
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		family = 6;
		if (p->family == 4 && memcmp(addr, mapped, 12) == 0) {
			family = 4; /* ::ffff:a.b.c.d against an IPv4 subnet */
			cmp = addr + 12;
		}
	} else {
		return 0;
	}
	if (family != p->family)
		return 0;
	for (size_t bit = 0; bit < p->prefix; bit++) {
		unsigned mask = 0x80u >> (bit % 8);

		if ((cmp[bit / 8] & mask) != (p->addr[bit / 8] & mask))
			return 0;
	}
	return len;
}

/* Glob match with one backtrack point (the last '*'), O(len * pattern).
 * Fixed elements match leftmost, which is complete for globbing since the
 * '*' that follows can take up any slack. caps[k] is the k-th wildcard. */
static bool pattern_match(const struct map_entry *e, const char *s, size_t n, struct capture *caps)
{
	size_t i = 0, j = 0, star_i = 0, star_j = 0;
	unsigned w = 0, star_w = 0;
	bool have_star = false;

	for (;;) {
		if (i < e->n_pat) {
			const struct map_pat *p = &e->pat[i];

			if (p->kind == MAP_PAT_STAR) {
				have_star = true;
				star_i = i;
				star_j = j;
				star_w = w;
				caps[w].start = j;
				caps[w].len = 0;
				w++;
				i++;
				continue;
			}
			if (j < n) {
				if (p->kind == MAP_PAT_LIT && (unsigned char)tolower((unsigned char)s[j]) == p->c) {
					i++;
					j++;
					continue;
				}
				if (p->kind == MAP_PAT_ONE) {
					caps[w].start = j;
					caps[w].len = 1;
					w++;
					i++;
					j++;
					continue;
				}
				if (p->kind == MAP_PAT_NET) {
					size_t len = match_net(p, s, n, j);

					if (len > 0) {
						caps[w].start = j;
						caps[w].len = len;
						w++;
						i++;
						j += len;
						continue;
					}
				}
			}
		} else if (j == n) {
			return true;
		}
		/* mismatch: let the last '*' take one more character */
		if (!have_star || star_j >= n)
			return false;
		star_j++;
		i = star_i + 1;
		j = star_j;
		w = star_w;
		caps[w].len = star_j - caps[w].start;
		w++;
	}
}

struct tmpl_out {
	char buf[MAPPINGS_MAX_PROBE + 1];
	size_t len;
	bool y, n, c, e, x;
};

static void out_put(struct tmpl_out *o, const char *s, size_t n)
{
	size_t room = MAPPINGS_MAX_PROBE - o->len;

	if (n > room)
		n = room;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void run_template(const char *t, const char *probe, const struct capture *caps,
			 unsigned n_wild, struct tmpl_out *o)
{
	memset(o, 0, sizeof(*o));
	for (size_t i = 0; t[i] != '\0'; i++) {
		char c = t[i];

		if (c != '$') {
			out_put(o, &c, 1);
			continue;
		}
		c = t[++i]; /* the parser guarantees a character after '$' */
		if (isdigit((unsigned char)c)) {
			unsigned k = (unsigned)(c - '0');

			if (k < n_wild)
				out_put(o, probe + caps[k].start, caps[k].len);
			continue;
		}
		switch (c) {
		case 'Y': o->y = true; break;
		case 'N':
		case 'F': o->n = true; break;
		case 'C': o->c = true; break;
		case 'E': o->e = true; break;
		case 'X': o->x = true; break;
		default: out_put(o, &c, 1); break; /* a quoted character */
		}
	}
}

/* RFC 3463: class "." subject "." detail, class 2, 4 or 5, 1-3 digits each */
static bool valid_status(const char *s, size_t n)
{
	size_t i = 0, part = 0, digits = 0;

	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5'))
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (digits == 0 || ++part > 2)
				return false;
			digits = 0;
		} else if (isdigit((unsigned char)s[i])) {
			if (++digits > 3)
				return false;
		} else {
			return false;
		}
	}
	return part == 2 && digits > 0;
}

static void finish_result(const struct tmpl_out *o, struct mapping_result *res)
{
	const char *text = o->buf;
	size_t tl = o->len, k = 0;

	res->verdict = o->n ? MAPPING_REJECT : MAPPING_ACCEPT;
	res->smtp_code = 0;
	res->status[0] = '\0';
	if (o->x) {
		/* $X takes the output up to the first '|' as the enhanced status */
		const char *bar = memchr(text, '|', tl);
		size_t sl = bar != NULL ? (size_t)(bar - text) : tl;

		if (valid_status(text, sl) && sl < sizeof(res->status)) {
			memcpy(res->status, text, sl);
			res->status[sl] = '\0';
		}
		text += bar != NULL ? sl + 1 : sl;
		tl -= bar != NULL ? sl + 1 : sl;
	}
	/* "550 text" / "452 text": the reply code (our extension) */
	if (tl >= 4 && (text[0] == '4' || text[0] == '5') && isdigit((unsigned char)text[1]) &&
	    isdigit((unsigned char)text[2]) && text[3] == ' ') {
		res->smtp_code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
		text += 4;
		tl -= 4;
	}
	for (size_t i = 0; i < tl && k + 1 < sizeof(res->text); i++) {
		unsigned char c = (unsigned char)text[i];

		res->text[k++] = (c < 32 || c > 126) ? '?' : (char)c;
	}
	res->text[k] = '\0';
}

void mappings_lookup(const struct mappings *maps, const char *table, const char *probe,
		     struct mapping_result *res)
{
	const struct map_table *t = mappings_table(maps, table);
	char cur[MAPPINGS_MAX_PROBE + 1];
	size_t n = strnlen(probe, MAPPINGS_MAX_PROBE);
	struct tmpl_out out;
	bool matched = false;

	memset(res, 0, sizeof(*res));
	res->verdict = MAPPING_NO_MATCH;
	if (t == NULL)
		return;
	memcpy(cur, probe, n);
	cur[n] = '\0';
	for (size_t i = 0; i < t->n; i++) {
		struct capture caps[MAP_MAX_WILD + 1];
		const struct map_entry *e = &t->entries[i];

		if (!pattern_match(e, cur, n, caps))
			continue;
		run_template(e->tmpl, cur, caps, e->n_wild, &out);
		finish_result(&out, res);
		matched = true;
		if (!out.c || out.e)
			return;
		/* $C: go on with the next entry, this output as the new probe */
		memcpy(cur, out.buf, out.len + 1);
		n = out.len;
	}
	if (!matched)
		res->verdict = MAPPING_NO_MATCH;
}
