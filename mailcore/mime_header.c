/* Header fields (RFC 5322 2.2: unfolding), Content-Type and
 * Content-Disposition parameters (RFC 2045 5.1, RFC 2183) and address lists
 * (RFC 5322 3.4) for ENVELOPE. Pure; output sizes bounded by the caller's
 * buffers. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailcore/mime.h"

int mime_header_get(const uint8_t *hdr, size_t len, const char *name, char *buf, size_t cap)
{
	size_t nlen = strlen(name), i = 0;

	while (i < len) {
		size_t line = i;

		/* a field starts at a line that does not begin with WSP */
		if (len - i > nlen && strncasecmp((const char *)hdr + i, name, nlen) == 0) {
			size_t j = i + nlen, out = 0;

			while (j < len && (hdr[j] == ' ' || hdr[j] == '\t'))
				j++;
			if (j < len && hdr[j] == ':') {
				j++;
				while (j < len && (hdr[j] == ' ' || hdr[j] == '\t'))
					j++;
				for (; j < len; j++) {
					if (hdr[j] == '\r')
						continue;
					if (hdr[j] == '\n') {
						if (j + 1 < len && (hdr[j + 1] == ' ' || hdr[j + 1] == '\t'))
							continue; /* folded */
						break;
					}
					if (out + 1 < cap)
						buf[out++] = (char)(hdr[j] == '\0' ? ' ' : hdr[j]);
				}
				while (out > 0 && (buf[out - 1] == ' ' || buf[out - 1] == '\t'))
					out--;
				if (cap > 0)
					buf[out] = '\0';
				return (int)out;
			}
		}
		(void)line;
		while (i < len && hdr[i] != '\n')
			i++;
		i++;
	}
	return -1;
}

static const char *skip_cfws(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			return p;
		/* comment, nested, with quoted-pairs */
		{
			int depth = 0;

			do {
				if (*p == '\\' && p[1] != '\0')
					p++;
				else if (*p == '(')
					depth++;
				else if (*p == ')')
					depth--;
				p++;
			} while (*p != '\0' && depth > 0);
		}
	}
}

static bool token_char(char c)
{
	/* RFC 2045 token: no SPACE, CTLs or tspecials */
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static const char *read_token(const char *p, char *buf, size_t cap, bool lower)
{
	size_t n = 0;

	while (token_char(*p)) {
		if (n + 1 < cap)
			buf[n++] = lower ? (char)tolower((unsigned char)*p) : *p;
		p++;
	}
	if (cap > 0)
		buf[n] = '\0';
	return p;
}

static const char *read_quoted(const char *p, char *buf, size_t cap)
{
	size_t n = 0;

	p++; /* the opening quote */
	while (*p != '\0' && *p != '"') {
		if (*p == '\\' && p[1] != '\0')
			p++;
		if (n + 1 < cap)
			buf[n++] = *p;
		p++;
	}
	if (*p == '"')
		p++;
	if (cap > 0)
		buf[n] = '\0';
	return p;
}

/* ; name=value ... */
static void read_params(const char *p, struct mime_param *params, size_t *n_params)
{
	*n_params = 0;
	for (;;) {
		struct mime_param *pm;

		p = skip_cfws(p);
		if (*p != ';')
			return;
		p = skip_cfws(p + 1);
		if (*n_params == MIME_MAX_PARAMS)
			return;
		pm = &params[*n_params];
		p = read_token(p, pm->name, sizeof(pm->name), true);
		if (pm->name[0] == '\0')
			return;
		p = skip_cfws(p);
		if (*p != '=')
			return;
		p = skip_cfws(p + 1);
		if (*p == '"')
			p = read_quoted(p, pm->value, sizeof(pm->value));
		else
			p = read_token(p, pm->value, sizeof(pm->value), false);
		(*n_params)++;
	}
}

const char *mime_param_get(const struct mime_param *params, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(params[i].name, name) == 0)
			return params[i].value;
	return NULL;
}

int mime_parse_ctype(const char *value, struct mime_ctype *ct)
{
	const char *p = skip_cfws(value);

	memset(ct, 0, sizeof(*ct));
	p = read_token(p, ct->type, sizeof(ct->type), true);
	p = skip_cfws(p);
	if (ct->type[0] == '\0' || *p != '/')
		goto dflt;
	p = skip_cfws(p + 1);
	p = read_token(p, ct->subtype, sizeof(ct->subtype), true);
	if (ct->subtype[0] == '\0')
		goto dflt;
	read_params(p, ct->params, &ct->n_params);
	return 0;
dflt:
	/* RFC 2045 5.2: a broken Content-Type is text/plain; charset=us-ascii */
	memset(ct, 0, sizeof(*ct));
	strcpy(ct->type, "text");
	strcpy(ct->subtype, "plain");
	strcpy(ct->params[0].name, "charset");
	strcpy(ct->params[0].value, "us-ascii");
	ct->n_params = 1;
	return -1;
}

int mime_parse_disposition(const char *value, char *disp, size_t cap, struct mime_param *params,
			   size_t *n_params)
{
	const char *p = skip_cfws(value);

	p = read_token(p, disp, cap, true);
	*n_params = 0;
	if (disp[0] == '\0')
		return -1;
	read_params(p, params, n_params);
	return 0;
}

/* A word (atom or quoted string) or a run of them, for display names. */
static const char *read_phrase_until(const char *p, const char *stops, char *buf, size_t cap)
{
	size_t n = 0;
	bool space = false;

	for (;;) {
		p = skip_cfws(p);
		if (*p == '\0' || strchr(stops, *p) != NULL)
			break;
		if (space && n + 1 < cap)
			buf[n++] = ' ';
		if (*p == '"') {
			char tmp[256];

			p = read_quoted(p, tmp, sizeof(tmp));
			for (const char *t = tmp; *t != '\0'; t++)
				if (n + 1 < cap)
					buf[n++] = *t;
		} else {
			while (*p != '\0' && *p != '"' && *p != '(' && *p != ' ' && *p != '\t' &&
			       strchr(stops, *p) == NULL) {
				if (n + 1 < cap)
					buf[n++] = *p;
				p++;
			}
		}
		space = true;
	}
	if (cap > 0)
		buf[n] = '\0';
	return p;
}

static void split_addr_spec(const char *spec, struct mime_addr *a)
{
	const char *at = strrchr(spec, '@');

	if (at == NULL) {
		snprintf(a->mailbox, sizeof(a->mailbox), "%s", spec);
		a->host[0] = '\0';
		return;
	}
	snprintf(a->mailbox, sizeof(a->mailbox), "%.*s", (int)(at - spec), spec);
	snprintf(a->host, sizeof(a->host), "%s", at + 1);
}

size_t mime_parse_addresses(const char *value, struct mime_addr *out, size_t max)
{
	const char *p = value;
	size_t n = 0;
	bool in_group = false;

	while (n < max) {
		char phrase[256];
		struct mime_addr *a;

		p = skip_cfws(p);
		while (*p == ',')
			p = skip_cfws(p + 1);
		if (*p == '\0')
			break;
		if (in_group && *p == ';') {
			a = &out[n++];
			memset(a, 0, sizeof(*a));
			a->group_end = true;
			in_group = false;
			p++;
			continue;
		}
		p = read_phrase_until(p, "<,:;", phrase, sizeof(phrase));
		a = &out[n];
		memset(a, 0, sizeof(*a));
		if (*p == ':' && !in_group) {
			/* group: "name: a, b;" */
			a->group_start = true;
			snprintf(a->mailbox, sizeof(a->mailbox), "%s", phrase);
			n++;
			in_group = true;
			p++;
			continue;
		}
		if (*p == '<') {
			char spec[512];
			size_t k = 0;

			p++;
			while (*p != '\0' && *p != '>') {
				if (*p == '"') {
					char tmp[256];

					p = read_quoted(p, tmp, sizeof(tmp));
					k += (size_t)snprintf(spec + k, sizeof(spec) - k > 0 ? sizeof(spec) - k : 0,
							      "%s", tmp);
					if (k >= sizeof(spec))
						k = sizeof(spec) - 1;
					continue;
				}
				if (*p != ' ' && *p != '\t' && k + 1 < sizeof(spec))
					spec[k++] = *p;
				p++;
			}
			spec[k] = '\0';
			if (*p == '>')
				p++;
			/* a source route "@a,@b:x@y": drop it */
			{
				const char *colon = spec[0] == '@' ? strchr(spec, ':') : NULL;

				split_addr_spec(colon != NULL ? colon + 1 : spec, a);
			}
			snprintf(a->name, sizeof(a->name), "%s", phrase);
		} else {
			/* a bare addr-spec: the phrase we read is it */
			char *sp;

			while ((sp = strchr(phrase, ' ')) != NULL)
				memmove(sp, sp + 1, strlen(sp));
			if (phrase[0] == '\0') {
				if (*p != '\0')
					p++;
				continue;
			}
			split_addr_spec(phrase, a);
		}
		n++;
		p = skip_cfws(p);
		/* anything up to the next separator is junk */
		while (*p != '\0' && *p != ',' && !(in_group && *p == ';'))
			p++;
	}
	return n;
}
