/* sealpost.conf key names: the syntax check ("[a-z0-9_-] segments joined by
 * '.'") and the '*' patterns a schema may use for one segment
 * (service.*.sslport). Every function here is linear in its inputs. */
#include <string.h>

#include "common/conf.h"
#include "common/conf_internal.h"

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool conf_name_valid(const char *s, size_t len, bool allow_star)
{
	size_t seg_len = 0;
	bool star = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (seg_len == 0)
				return false;
			seg_len = 0;
			star = false;
		} else if (c == '*') {
			/* '*' stands for a whole segment, never part of one */
			if (!allow_star || seg_len != 0)
				return false;
			star = true;
			seg_len++;
		} else if (star || !name_char(c)) {
			return false;
		} else {
			seg_len++;
		}
	}
	return seg_len > 0;
}

bool conf_name_has_star(const char *s)
{
	return strchr(s, '*') != NULL;
}

static bool is_star(const char *seg, size_t len)
{
	return len == 1 && seg[0] == '*';
}

/* Walks pattern and key segment by segment. When idx >= 0, the segment bound
 * to '*' number idx is returned through wild_r / wild_len_r. */
static bool match_segments(const char *pattern, const char *key, int idx,
			   const char **wild_r, size_t *wild_len_r)
{
	const char *p = pattern, *k = key;
	int star_no = 0;
	bool found = false;

	for (;;) {
		size_t pl = strcspn(p, "."), kl = strcspn(k, ".");

		if (kl == 0 || pl == 0)
			return false;
		if (is_star(p, pl)) {
			if (star_no++ == idx) {
				*wild_r = k;
				*wild_len_r = kl;
				found = true;
			}
		} else if (pl != kl || memcmp(p, k, pl) != 0) {
			return false;
		}
		p += pl;
		k += kl;
		if (*p == '\0' || *k == '\0')
			return *p == *k && (idx < 0 || found);
		p++;
		k++;
	}
}

bool conf_pattern_match(const char *pattern, const char *key)
{
	return match_segments(pattern, key, -1, NULL, NULL);
}

/* Two schema names overlap when some key would match both; the parser could
 * not tell which type applies, so sp_conf_add_schema refuses that. */
bool conf_patterns_overlap(const char *a, const char *b)
{
	for (;;) {
		size_t al = strcspn(a, "."), bl = strcspn(b, ".");

		if (!is_star(a, al) && !is_star(b, bl) &&
		    (al != bl || memcmp(a, b, al) != 0))
			return false;
		a += al;
		b += bl;
		if (*a == '\0' || *b == '\0')
			return *a == *b;
		a++;
		b++;
	}
}

int sp_conf_wild(const char *pattern, const char *key, int idx, char *buf, size_t cap)
{
	const char *wild;
	size_t wild_len;

	if (pattern == NULL || key == NULL || idx < 0 || buf == NULL || cap == 0)
		return -1;
	if (!match_segments(pattern, key, idx, &wild, &wild_len))
		return -1;
	/* a truncated segment would name the wrong service: refuse instead */
	if (wild_len >= cap)
		return -1;
	memcpy(buf, wild, wild_len);
	buf[wild_len] = '\0';
	return 0;
}
