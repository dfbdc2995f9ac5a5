/* The certmap.conf parser: pure (bytes in, a struct certmap or an error
 * naming file and line out). The anchor's format:
 *   certmap NAME ISSUER-DN        a section for certificates of that issuer
 *   certmap default default       the mandatory fallback section
 *   NAME:DNComps [attr, ...]      NAME:FilterComps [attr[=ldapattr], ...]
 *   NAME:verifycert on|off        NAME:CmapLdapAttr attr
 * library/InitFn (plug-in mappers) are refused: Sealpost loads no code
 * named in a configuration file. docs/CERTMAP.md has the semantics. */
#include "mailcore/certmap_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "mailcore/mc_file.h"

void certmap_free(struct certmap **cmp)
{
	if (cmp == NULL || *cmp == NULL)
		return;
	for (size_t i = 0; i < (*cmp)->n; i++)
		free((*cmp)->sections[i].issuer);
	free((*cmp)->sections);
	free(*cmp);
	*cmp = NULL;
}

size_t certmap_section_count(const struct certmap *cm)
{
	return cm == NULL ? 0 : cm->n;
}

static bool valid_name(const char *s, size_t n)
{
	if (n == 0 || n >= CERTMAP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.' &&
		    s[i] != ';')
			return false;
	return true;
}

static void trim(const char **s, size_t *n)
{
	while (*n > 0 && isblank((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && isblank((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

static struct certmap_section *find_section(struct certmap *cm, const char *name, size_t n)
{
	for (size_t i = 0; i < cm->n; i++)
		if (strlen(cm->sections[i].name) == n && strncasecmp(cm->sections[i].name, name, n) == 0)
			return &cm->sections[i];
	return NULL;
}

/* The ldap attribute a bare certificate attribute is matched against. */
static void default_ldap_attr(const char *cert, char *out, size_t cap)
{
	char canon[CERTMAP_NAME_MAX];

	certmap_type_canon(cert, canon, sizeof(canon));
	snprintf(out, cap, "%s", strcmp(canon, "emailaddress") == 0 ? "mail" : canon);
}

/* "a, b=c, d": entries separated by commas and/or blanks. */
static int parse_comps(const char *v, size_t n, struct certmap_comp *out, size_t *n_out,
		       bool allow_map, const char **why)
{
	size_t i = 0;

	*n_out = 0;
	while (i < n) {
		size_t s, e, eq;

		while (i < n && (isblank((unsigned char)v[i]) || v[i] == ','))
			i++;
		if (i == n)
			break;
		s = i;
		while (i < n && !isblank((unsigned char)v[i]) && v[i] != ',')
			i++;
		e = i;
		if (*n_out == CERTMAP_MAX_COMPS) {
			*why = "too many components (at most 16)";
			return -1;
		}
		for (eq = s; eq < e && v[eq] != '='; eq++)
			;
		if (eq < e && !allow_map) {
			*why = "DNComps takes attribute names only";
			return -1;
		}
		if (!valid_name(v + s, eq - s) || (eq < e && !valid_name(v + eq + 1, e - eq - 1))) {
			*why = "bad attribute name in component list";
			return -1;
		}
		snprintf(out[*n_out].cert, sizeof(out[*n_out].cert), "%.*s", (int)(eq - s), v + s);
		if (eq < e)
			snprintf(out[*n_out].ldap, sizeof(out[*n_out].ldap), "%.*s", (int)(e - eq - 1),
				 v + eq + 1);
		else
			default_ldap_attr(out[*n_out].cert, out[*n_out].ldap, sizeof(out[*n_out].ldap));
		(*n_out)++;
	}
	return 0;
}

static int parse_certmap_line(struct certmap *cm, const char *v, size_t n, unsigned lineno,
			      const char **why)
{
	size_t i = 0, name_len;
	const char *name;
	struct certmap_section *sec;
	struct certmap_ava avas[CERTMAP_MAX_AVAS];
	char *issuer;

	trim(&v, &n);
	while (i < n && !isblank((unsigned char)v[i]))
		i++;
	name = v;
	name_len = i;
	if (!valid_name(name, name_len) || strchr(".;", name[0]) != NULL) {
		*why = "bad section name (letters, digits, - and _)";
		return -1;
	}
	v += i;
	n -= i;
	trim(&v, &n);
	if (n == 0) {
		*why = "certmap needs a name and an issuer DN (or \"default default\")";
		return -1;
	}
	if (find_section(cm, name, name_len) != NULL) {
		*why = "duplicate section name";
		return -1;
	}
	if (cm->n == CERTMAP_MAX_SECTIONS) {
		*why = "too many sections";
		return -1;
	}
	issuer = sp_xstrndup(v, n);
	if (name_len == 7 && strncasecmp(name, "default", 7) == 0) {
		if (strcasecmp(issuer, "default") != 0) {
			free(issuer);
			*why = "the default section is written \"certmap default default\"";
			return -1;
		}
	} else if (strlen(issuer) != n || certmap_dn_parse(issuer, avas, CERTMAP_MAX_AVAS) <= 0) {
		free(issuer);
		*why = "bad issuer DN";
		return -1;
	} else {
		for (size_t k = 0; k < cm->n; k++) {
			if (!cm->sections[k].is_default && certmap_dn_equal(cm->sections[k].issuer, issuer)) {
				free(issuer);
				*why = "another section has the same issuer DN";
				return -1;
			}
		}
	}
	cm->sections = sp_xrealloc(cm->sections, cm->n + 1, sizeof(*cm->sections));
	sec = &cm->sections[cm->n++];
	memset(sec, 0, sizeof(*sec));
	snprintf(sec->name, sizeof(sec->name), "%.*s", (int)name_len, name);
	sec->issuer = issuer;
	sec->is_default = strcasecmp(sec->name, "default") == 0;
	sec->lineno = lineno;
	return 0;
}

static int parse_option(struct certmap *cm, const char *line, size_t n, const char **why)
{
	const char *colon = memchr(line, ':', n), *opt, *v;
	size_t opt_len, v_len, i;
	struct certmap_section *sec;

	if (colon == NULL) {
		*why = "expected \"certmap NAME ISSUER\" or \"NAME:option value\"";
		return -1;
	}
	sec = find_section(cm, line, (size_t)(colon - line));
	if (sec == NULL) {
		*why = "option for a section not declared above (certmap NAME ISSUER first)";
		return -1;
	}
	opt = colon + 1;
	for (i = 0; opt + i < line + n && !isblank((unsigned char)opt[i]); i++)
		;
	opt_len = i;
	v = opt + i;
	v_len = (size_t)(line + n - v);
	trim(&v, &v_len);
#define OPT_IS(s) (opt_len == sizeof(s) - 1 && strncasecmp(opt, s, opt_len) == 0)
	if (OPT_IS("DNComps")) {
		if (sec->dn_set)
			goto dup;
		sec->dn_set = true;
		return parse_comps(v, v_len, sec->dn, &sec->n_dn, false, why);
	}
	if (OPT_IS("FilterComps")) {
		if (sec->fc_set)
			goto dup;
		sec->fc_set = true;
		return parse_comps(v, v_len, sec->fc, &sec->n_fc, true, why);
	}
	if (OPT_IS("verifycert")) {
		if (sec->vc_set)
			goto dup;
		sec->vc_set = true;
		if (v_len == 2 && strncasecmp(v, "on", 2) == 0)
			sec->verifycert = true;
		else if (v_len == 3 && strncasecmp(v, "off", 3) == 0)
			sec->verifycert = false;
		else {
			*why = "verifycert takes on or off";
			return -1;
		}
		return 0;
	}
	if (OPT_IS("CmapLdapAttr")) {
		if (sec->cmap_set)
			goto dup;
		sec->cmap_set = true;
		if (v_len == 0)
			return 0; /* empty: not used */
		if (!valid_name(v, v_len)) {
			*why = "bad CmapLdapAttr attribute name";
			return -1;
		}
		snprintf(sec->cmap_attr, sizeof(sec->cmap_attr), "%.*s", (int)v_len, v);
		return 0;
	}
	if (OPT_IS("library") || OPT_IS("InitFn")) {
		*why = "library/InitFn plug-in mappers are not supported";
		return -1;
	}
	*why = "unknown option (known: DNComps, FilterComps, verifycert, CmapLdapAttr)";
	return -1;
dup:
	*why = "option given twice for this section";
	return -1;
#undef OPT_IS
}

struct certmap *certmap_parse(const char *name, const char *buf, size_t len, char **error_r)
{
	struct certmap *cm = sp_xcalloc(1, sizeof(*cm));
	struct mc_lines it;
	const char *line;
	size_t n;
	bool have_default = false;

	if (len > CERTMAP_MAX_FILE) {
		*error_r = sp_xasprintf("%s: larger than %u bytes", name, CERTMAP_MAX_FILE);
		goto fail;
	}
	mc_lines_init(&it, buf, len);
	while (mc_lines_next(&it, &line, &n)) {
		const char *why = NULL;
		int rc;

		if (n > CERTMAP_MAX_LINE) {
			*error_r = sp_xasprintf("%s:%u: line too long", name, it.lineno);
			goto fail;
		}
		if (memchr(line, '\0', n) != NULL) {
			*error_r = sp_xasprintf("%s:%u: NUL byte", name, it.lineno);
			goto fail;
		}
		trim(&line, &n);
		if (n == 0 || line[0] == '#')
			continue;
		if (n > 8 && strncasecmp(line, "certmap", 7) == 0 && isblank((unsigned char)line[7]))
			rc = parse_certmap_line(cm, line + 8, n - 8, it.lineno, &why);
		else
			rc = parse_option(cm, line, n, &why);
		if (rc < 0) {
			*error_r = sp_xasprintf("%s:%u: %s", name, it.lineno, why);
			goto fail;
		}
	}
	for (size_t i = 0; i < cm->n; i++)
		have_default |= cm->sections[i].is_default;
	if (!have_default) {
		*error_r = sp_xasprintf("%s: the mandatory \"certmap default default\" section is missing",
					name);
		goto fail;
	}
	return cm;
fail:
	certmap_free(&cm);
	return NULL;
}

struct certmap *certmap_load(const char *path, char **error_r)
{
	struct stat st;
	char *buf;
	size_t len;
	struct certmap *cm;

	if (stat(path, &st) < 0) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	/* the anchor: "a valid certmap.conf with correct permissions" */
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		*error_r = sp_xasprintf("%s: writable by group or others (mode %03o); refused", path,
					(unsigned)(st.st_mode & 0777));
		return NULL;
	}
	if (mc_file_read(path, CERTMAP_MAX_FILE, &buf, &len, error_r) < 0)
		return NULL;
	cm = certmap_parse(path, buf, len, error_r);
	free(buf);
	return cm;
}

struct certmap *certmap_default(void)
{
	static const char text[] = "certmap default default\n"
				   "default:DNComps\n"
				   "default:FilterComps e=mail\n";
	char *error = NULL;
	struct certmap *cm = certmap_parse("(built-in certmap)", text, sizeof(text) - 1, &error);

	free(error);
	return cm;
}
