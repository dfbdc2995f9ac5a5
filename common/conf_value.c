/* sealpost.conf values: quoting, lists, and the typed forms (INT, SIZE with
 * k/m/g, DURATION with ms/s/m/h/d, BOOL, ENUM), checked against the key's
 * bounds. Used for file values and for schema defaults alike. No locale:
 * only ASCII digits and letters are recognised. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/conf_internal.h"
#include "common/xalloc.h"

struct unit {
	const char *suffix;
	long long factor;
};

/* A suffix must match the rest of the value whole, so "ms" never reads as "m". */
static const struct unit size_units[] = {
	{ "k", 1024LL }, { "K", 1024LL },
	{ "m", 1024LL * 1024 }, { "M", 1024LL * 1024 },
	{ "g", 1024LL * 1024 * 1024 }, { "G", 1024LL * 1024 * 1024 },
	{ "", 1 },
	{ NULL, 0 },
};
static const struct unit duration_units[] = {
	{ "ms", 1 }, { "s", 1000LL }, { "m", 60LL * 1000 },
	{ "h", 3600LL * 1000 }, { "d", 86400LL * 1000 },
	{ "", 1000LL },  /* a bare number is seconds */
	{ NULL, 0 },
};

const char *conf_type_name(enum sp_conf_type type)
{
	switch (type) {
	case SP_CONF_INT: return "int";
	case SP_CONF_SIZE: return "size";
	case SP_CONF_DURATION: return "duration";
	case SP_CONF_BOOL: return "bool";
	case SP_CONF_STRING: return "string";
	case SP_CONF_ENUM: return "enum";
	case SP_CONF_LIST: return "list";
	}
	return "?";
}

void conf_quote(char *buf, size_t cap, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, shown = len > 60 ? 60 : len;

	if (cap == 0)
		return;
	for (size_t i = 0; i < shown && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 0xf];
		}
	}
	if (shown < len && o + 4 <= cap) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
}

/* "bad value for 'KEY' ('VALUE'): REASON"; the value is left out for secrets. */
static char *bad_value(const struct sp_conf_key *key, const char *keyname,
		       const char *text, size_t len, const char *reason)
{
	char qkey[CONF_QUOTE_MAX], qval[CONF_QUOTE_MAX];

	conf_quote(qkey, sizeof(qkey), keyname, strlen(keyname));
	if (key->flags & SP_CONF_SECRET)
		return sp_xasprintf("bad value for '%s': %s", qkey, reason);
	conf_quote(qval, sizeof(qval), text, len);
	return sp_xasprintf("bad value for '%s' ('%s'): %s", qkey, qval, reason);
}

static char *syntax_error(const char *keyname, const char *what)
{
	char qkey[CONF_QUOTE_MAX];

	conf_quote(qkey, sizeof(qkey), keyname, strlen(keyname));
	return sp_xasprintf("%s in value of '%s'", what, qkey);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Finds the closing quote of the string opening at s[start] == '"'. Returns
 * its index and the unquoted length, or -1 with *what_r set. */
static int find_closing_quote(const char *s, size_t len, size_t start, size_t *close_r,
			      size_t *out_len_r, const char **what_r)
{
	size_t out_len = 0;

	for (size_t i = start + 1; i < len; i++, out_len++) {
		if (s[i] == '"') {
			*close_r = i;
			*out_len_r = out_len;
			return 0;
		}
		if (s[i] == '\\') {
			if (i + 1 >= len || (s[i + 1] != '"' && s[i + 1] != '\\')) {
				*what_r = "bad escape in quotes (only \\\" and \\\\ are allowed)";
				return -1;
			}
			i++;
		}
	}
	*what_r = "unterminated quote";
	return -1;
}

/* Unquotes the string opening at s[*pos] into a fresh allocation of its own
 * size (never the rest of the line: a list of many quoted items must stay
 * linear); *pos ends just after the closing quote. */
static char *unquote(const char *s, size_t len, size_t *pos, const char **what_r)
{
	size_t close, out_len, o = 0;
	char *out;

	if (find_closing_quote(s, len, *pos, &close, &out_len, what_r) < 0)
		return NULL;
	out = sp_xmalloc(out_len + 1);
	for (size_t i = *pos + 1; i < close; i++) {
		if (s[i] == '\\')
			i++;  /* validated above: \" or \\ */
		out[o++] = s[i];
	}
	out[o] = '\0';
	*pos = close + 1;
	return out;
}

/* One scalar value: quoted (blanks kept, nothing after the closing quote) or
 * taken as written. Returns a fresh NUL-terminated copy. */
static char *scalar_text(const char *keyname, const char *text, size_t len,
			 size_t *out_len, char **why_r)
{
	const char *what;
	size_t pos = 0;
	char *out;

	if (len == 0 || text[0] != '"') {
		*out_len = len;
		return sp_xstrndup(text, len);
	}
	out = unquote(text, len, &pos, &what);
	if (out == NULL) {
		*why_r = syntax_error(keyname, what);
		return NULL;
	}
	*out_len = strlen(out);
	if (pos != len) {
		*why_r = syntax_error(keyname, "text after closing quote");
		sp_free_secret(out, *out_len);
		return NULL;
	}
	return out;
}

/* One list item starting at *pos (blanks skipped): quoted, or up to the next
 * comma with trailing blanks trimmed. *pos ends on the comma or at len. */
static char *list_item(const char *keyname, const char *text, size_t len,
		       size_t *pos, char **why_r)
{
	size_t start, end;
	const char *what;
	char *item;

	while (*pos < len && is_blank(text[*pos]))
		(*pos)++;
	if (*pos < len && text[*pos] == '"') {
		item = unquote(text, len, pos, &what);
		if (item == NULL) {
			*why_r = syntax_error(keyname, what);
			return NULL;
		}
		while (*pos < len && is_blank(text[*pos]))
			(*pos)++;
		if (*pos < len && text[*pos] != ',') {
			*why_r = syntax_error(keyname, "text after closing quote");
			sp_free_secret(item, strlen(item));
			return NULL;
		}
		return item;
	}
	start = *pos;
	while (*pos < len && text[*pos] != ',')
		(*pos)++;
	end = *pos;
	while (end > start && is_blank(text[end - 1]))
		end--;
	if (end == start) {
		*why_r = syntax_error(keyname, "empty list item (write \"\" for an empty string)");
		return NULL;
	}
	return sp_xstrndup(text + start, end - start);
}

static int parse_list(const char *keyname, const char *text, size_t len,
		      struct conf_value *value, char **why_r)
{
	size_t pos = 0, cap = 4;

	value->items = sp_xcalloc(cap, sizeof(*value->items));
	if (len == 0)
		return 0;  /* "key =" is the empty list */
	for (;;) {
		char *item = list_item(keyname, text, len, &pos, why_r);

		if (item == NULL)
			return -1;
		if (value->n_items + 1 >= cap) {
			cap *= 2;
			value->items = sp_xrealloc(value->items, cap, sizeof(*value->items));
		}
		value->items[value->n_items++] = item;
		value->items[value->n_items] = NULL;
		if (pos >= len)
			return 0;
		pos++;  /* the comma; an item must follow it */
	}
}

/* Decimal digits then a unit suffix from units. Magnitude only; the caller
 * handles a sign. Returns 0, -1 (syntax) or -2 (does not fit in long long). */
static int parse_scaled(const char *s, size_t len, const struct unit *units,
			unsigned long long limit, unsigned long long *out)
{
	unsigned long long mag = 0;
	size_t i = 0;

	while (i < len && s[i] >= '0' && s[i] <= '9') {
		unsigned digit = (unsigned)(s[i] - '0');

		if (mag > (limit - digit) / 10)
			return -2;  /* reading on would only confirm the overflow */
		mag = mag * 10 + digit;
		i++;
	}
	if (i == 0)
		return -1;
	for (const struct unit *u = units; u->suffix != NULL; u++) {
		unsigned long long scaled;

		if (strlen(u->suffix) != len - i || memcmp(s + i, u->suffix, len - i) != 0)
			continue;
		if (__builtin_mul_overflow(mag, (unsigned long long)u->factor, &scaled) ||
		    scaled > limit)
			return -2;
		*out = scaled;
		return 0;
	}
	return -1;
}

static const struct unit int_units[] = { { "", 1 }, { NULL, 0 } };

static int parse_number(const struct sp_conf_key *key, const char *s, size_t len,
			long long *out)
{
	unsigned long long mag;
	int ret;

	switch (key->type) {
	case SP_CONF_INT:
		if (len > 0 && s[0] == '-') {
			/* LLONG_MIN's magnitude is one more than LLONG_MAX's */
			ret = parse_scaled(s + 1, len - 1, int_units,
					   (unsigned long long)LLONG_MAX + 1, &mag);
			if (ret == 0)
				*out = mag == 0 ? 0 : -(long long)(mag - 1) - 1;
			return ret;
		}
		ret = parse_scaled(s, len, int_units, LLONG_MAX, &mag);
		break;
	case SP_CONF_SIZE:
		ret = parse_scaled(s, len, size_units, LLONG_MAX, &mag);
		break;
	default:
		ret = parse_scaled(s, len, duration_units, LLONG_MAX, &mag);
		break;
	}
	if (ret == 0)
		*out = (long long)mag;
	return ret;
}

static const char *expected_number(enum sp_conf_type type)
{
	switch (type) {
	case SP_CONF_INT:
		return "expected an integer like 42 or -1";
	case SP_CONF_SIZE:
		return "expected a size like 64k (bytes, or suffix k, m, g)";
	default:
		return "expected a duration like 30s (suffix ms, s, m, h, d; bare number = seconds)";
	}
}

static bool has_bounds(const struct sp_conf_key *key)
{
	return key->min != 0 || key->max != 0;
}

static char *range_reason(const struct sp_conf_key *key)
{
	char lo[64], hi[64];

	if (!has_bounds(key))
		return sp_xstrdup("number too large");
	conf_format_number(key->type, key->min, lo, sizeof(lo));
	conf_format_number(key->type, key->max, hi, sizeof(hi));
	return sp_xasprintf("value out of range [%s, %s]", lo, hi);
}

static int check_number(const struct sp_conf_key *key, const char *keyname, const char *s,
			size_t len, struct conf_value *value, char **why_r)
{
	int ret = parse_number(key, s, len, &value->num);
	char *reason;

	if (ret == -1) {
		*why_r = bad_value(key, keyname, s, len, expected_number(key->type));
		return -1;
	}
	if (ret == 0 && (!has_bounds(key) || (value->num >= key->min && value->num <= key->max)))
		return 0;
	reason = range_reason(key);
	*why_r = bad_value(key, keyname, s, len, reason);
	free(reason);
	return -1;
}

static bool ascii_ieq(const char *s, size_t len, const char *word)
{
	size_t i;

	for (i = 0; i < len && word[i] != '\0'; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != word[i])
			return false;
	}
	return i == len && word[i] == '\0';
}

static int check_bool(const struct sp_conf_key *key, const char *keyname, const char *s,
		      size_t len, struct conf_value *value, char **why_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1", NULL };
	static const char *const no[] = { "no", "false", "off", "0", NULL };

	for (size_t i = 0; yes[i] != NULL; i++) {
		if (ascii_ieq(s, len, yes[i])) {
			value->num = 1;
			return 0;
		}
		if (ascii_ieq(s, len, no[i])) {
			value->num = 0;
			return 0;
		}
	}
	*why_r = bad_value(key, keyname, s, len, "expected yes/no, true/false, on/off or 1/0");
	return -1;
}

static int check_enum(const struct sp_conf_key *key, const char *keyname, const char *s,
		      size_t len, struct conf_value *value, char **why_r)
{
	size_t need = sizeof("not one of: ");
	char *reason;

	for (const char *const *c = key->choices; *c != NULL; c++) {
		if (strlen(*c) == len && memcmp(*c, s, len) == 0) {
			value->choice = *c;
			return 0;
		}
	}
	for (const char *const *c = key->choices; *c != NULL; c++)
		need += strlen(*c) + 2;
	reason = sp_xmalloc(need);
	strcpy(reason, "not one of: ");
	for (const char *const *c = key->choices; *c != NULL; c++) {
		if (c != key->choices)
			strcat(reason, ", ");
		strcat(reason, *c);
	}
	*why_r = bad_value(key, keyname, s, len, reason);
	free(reason);
	return -1;
}

static int check_scalar(const struct sp_conf_key *key, const char *keyname, char *s,
			size_t len, struct conf_value *value, char **why_r)
{
	switch (key->type) {
	case SP_CONF_INT:
	case SP_CONF_SIZE:
	case SP_CONF_DURATION:
		return check_number(key, keyname, s, len, value, why_r);
	case SP_CONF_BOOL:
		return check_bool(key, keyname, s, len, value, why_r);
	case SP_CONF_ENUM:
		return check_enum(key, keyname, s, len, value, why_r);
	default:
		value->str = s;  /* the caller keeps s */
		return 0;
	}
}

int conf_value_parse(const struct sp_conf_key *key, const char *keyname, const char *text,
		     size_t len, struct conf_value *value, char **why_r)
{
	size_t scalar_len;
	char *scalar;
	int ret;

	memset(value, 0, sizeof(*value));
	if (key->type == SP_CONF_LIST) {
		ret = parse_list(keyname, text, len, value, why_r);
		if (ret < 0)
			conf_value_clear(key, value);
		return ret;
	}
	scalar = scalar_text(keyname, text, len, &scalar_len, why_r);
	if (scalar == NULL)
		return -1;
	ret = check_scalar(key, keyname, scalar, scalar_len, value, why_r);
	if (value->str != scalar)
		sp_free_secret(scalar, scalar_len);
	return ret;
}

static void free_text(char *s, bool secret)
{
	if (secret)
		sp_free_secret(s, strlen(s));
	else
		free(s);
}

void conf_value_clear(const struct sp_conf_key *key, struct conf_value *value)
{
	bool secret = (key->flags & SP_CONF_SECRET) != 0;

	if (value->str != NULL)
		free_text(value->str, secret);
	for (size_t i = 0; i < value->n_items; i++)
		free_text(value->items[i], secret);
	free(value->items);
	memset(value, 0, sizeof(*value));
}

/* Largest unit that divides num exactly, so bounds read as the schema meant. */
void conf_format_number(enum sp_conf_type type, long long num, char *buf, size_t cap)
{
	static const struct unit size_show[] = {
		{ "g", 1024LL * 1024 * 1024 }, { "m", 1024LL * 1024 }, { "k", 1024LL }, { NULL, 0 },
	};
	static const struct unit duration_show[] = {
		{ "d", 86400LL * 1000 }, { "h", 3600LL * 1000 }, { "m", 60LL * 1000 },
		{ "s", 1000LL }, { NULL, 0 },
	};
	const struct unit *u = type == SP_CONF_SIZE ? size_show
			     : type == SP_CONF_DURATION ? duration_show : NULL;

	for (; u != NULL && u->suffix != NULL && num != 0; u++) {
		if (num % u->factor == 0) {
			snprintf(buf, cap, "%lld%s", num / u->factor, u->suffix);
			return;
		}
	}
	snprintf(buf, cap, "%lld%s", num, type == SP_CONF_DURATION && num != 0 ? "ms" : "");
}
