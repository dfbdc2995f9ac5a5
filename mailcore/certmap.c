/* certmap.conf evaluation: DN strings parsed and compared, the section
 * chosen by the certificate's issuer, and the subject turned into a search
 * plan (base, RFC 4515 filter, verifycert, CmapLdapAttr) that a directory
 * backend runs. Pure: no I/O. */
#include "mailcore/certmap_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

const char *certmap_type_canon(const char *type, char *buf, size_t cap)
{
	static const char *const aliases[][2] = {
		{"e", "emailaddress"}, {"email", "emailaddress"},
		{"pkcs9email", "emailaddress"}, {"1.2.840.113549.1.9.1", "emailaddress"},
		{"commonname", "cn"}, {"2.5.4.3", "cn"}, {"organizationname", "o"}, {"2.5.4.10", "o"},
		{"organizationalunitname", "ou"}, {"2.5.4.11", "ou"}, {"countryname", "c"},
		{"2.5.4.6", "c"}, {"localityname", "l"}, {"stateorprovincename", "st"},
		{"s", "st"}, {"userid", "uid"}, {"0.9.2342.19200300.100.1.1", "uid"},
		{"domaincomponent", "dc"}, {"0.9.2342.19200300.100.1.25", "dc"},
	};
	size_t i;

	for (i = 0; type[i] != '\0' && i + 1 < cap; i++)
		buf[i] = (char)tolower((unsigned char)type[i]);
	buf[i] = '\0';
	for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(buf, aliases[i][0]) == 0) {
			snprintf(buf, cap, "%s", aliases[i][1]);
			break;
		}
	return buf;
}

int certmap_dn_parse(const char *dn, struct certmap_ava *avas, size_t max)
{
	const char *p = dn;
	size_t n = 0;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 0;
	for (;;) {
		struct certmap_ava *a;
		size_t tl = 0, vl = 0, keep = 0; /* keep: length up to the last escaped char */

		if (n == max)
			return -1;
		a = &avas[n];
		while (*p == ' ')
			p++;
		while (*p != '\0' && *p != '=' && *p != ',' && *p != '+' && *p != ';') {
			if (tl + 1 >= sizeof(a->type))
				return -1;
			a->type[tl++] = *p++;
		}
		while (tl > 0 && a->type[tl - 1] == ' ')
			tl--;
		a->type[tl] = '\0';
		if (*p != '=' || tl == 0)
			return -1;
		for (size_t i = 0; i < tl; i++)
			if (!isalnum((unsigned char)a->type[i]) && a->type[i] != '-' && a->type[i] != '.')
				return -1;
		p++;
		while (*p == ' ')
			p++;
		if (*p == '"') { /* RFC 1779 quoted value */
			p++;
			while (*p != '"') {
				if (*p == '\0')
					return -1;
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (vl + 1 >= sizeof(a->value))
					return -1;
				a->value[vl++] = *p++;
			}
			p++;
			keep = vl;
			while (*p == ' ')
				p++;
		} else {
			while (*p != '\0' && *p != ',' && *p != '+' && *p != ';') {
				char c;

				if (*p == '\\') {
					int h1 = hexval((unsigned char)p[1]), h2 = h1 < 0 ? -1 : hexval((unsigned char)p[2]);

					if (h1 >= 0 && h2 >= 0) {
						c = (char)(h1 * 16 + h2);
						p += 3;
					} else if (p[1] != '\0') {
						c = p[1];
						p += 2;
					} else {
						return -1;
					}
					if (c == '\0')
						return -1;
					if (vl + 1 >= sizeof(a->value))
						return -1;
					a->value[vl++] = c;
					keep = vl;
					continue;
				}
				if (vl + 1 >= sizeof(a->value))
					return -1;
				a->value[vl++] = *p++;
			}
			while (vl > keep && a->value[vl - 1] == ' ')
				vl--;
		}
		a->value[vl] = '\0';
		n++;
		if (*p == '\0')
			return (int)n;
		if (*p != ',' && *p != '+' && *p != ';')
			return -1;
		p++;
	}
}

static bool value_equal(const char *a, const char *b)
{
	/* case-insensitive, runs of blanks count as one (caseIgnoreMatch) */
	for (;;) {
		while (*a == ' ' && a[1] == ' ')
			a++;
		while (*b == ' ' && b[1] == ' ')
			b++;
		if (*a == '\0' || *b == '\0')
			return *a == *b;
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return false;
		a++;
		b++;
	}
}

static bool ava_equal(const struct certmap_ava *x, const struct certmap_ava *y)
{
	char tx[CERTMAP_NAME_MAX], ty[CERTMAP_NAME_MAX];

	return strcmp(certmap_type_canon(x->type, tx, sizeof(tx)),
		      certmap_type_canon(y->type, ty, sizeof(ty))) == 0 &&
	       value_equal(x->value, y->value);
}

bool certmap_dn_equal(const char *a, const char *b)
{
	struct certmap_ava xa[CERTMAP_MAX_AVAS], xb[CERTMAP_MAX_AVAS];
	int na = certmap_dn_parse(a, xa, CERTMAP_MAX_AVAS);
	int nb = certmap_dn_parse(b, xb, CERTMAP_MAX_AVAS);
	bool fwd = true, rev = true;

	if (na <= 0 || na != nb)
		return false;
	for (int i = 0; i < na; i++) {
		fwd = fwd && ava_equal(&xa[i], &xb[i]);
		rev = rev && ava_equal(&xa[i], &xb[na - 1 - i]);
	}
	return fwd || rev;
}

int certmap_filter_escape(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
		bool esc = *p == '*' || *p == '(' || *p == ')' || *p == '\\' || *p < 0x20 || *p == 0x7f;

		if (o + (esc ? 3 : 1) >= cap)
			return -1;
		if (esc) {
			snprintf(out + o, cap - o, "\\%02x", *p);
			o += 3;
		} else {
			out[o++] = (char)*p;
		}
	}
	if (o >= cap)
		return -1;
	out[o] = '\0';
	return 0;
}

int certmap_dn_escape(const char *in, char *out, size_t cap)
{
	size_t o = 0, n = strlen(in);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		bool special = strchr(",+\"\\<>;=", c) != NULL || (i == 0 && (c == '#' || c == ' ')) ||
			       (i + 1 == n && c == ' ');
		bool hex = c < 0x20 || c == 0x7f;

		if (o + (hex ? 3 : special ? 2 : 1) >= cap)
			return -1;
		if (hex) {
			snprintf(out + o, cap - o, "\\%02x", c);
			o += 3;
		} else {
			if (special)
				out[o++] = '\\';
			out[o++] = (char)c;
		}
	}
	if (o >= cap)
		return -1;
	out[o] = '\0';
	return 0;
}

/* The subject's value for a certificate attribute, or NULL. */
static const char *subject_value(const struct certmap_ava *avas, int n, const char *cert_attr,
				 const char *cert_email)
{
	char want[CERTMAP_NAME_MAX], t[CERTMAP_NAME_MAX];

	certmap_type_canon(cert_attr, want, sizeof(want));
	for (int i = 0; i < n; i++)
		if (strcmp(certmap_type_canon(avas[i].type, t, sizeof(t)), want) == 0)
			return avas[i].value;
	if (strcmp(want, "emailaddress") == 0 && cert_email != NULL && cert_email[0] != '\0')
		return cert_email;
	return NULL;
}

static const struct certmap_section *pick_section(const struct certmap *cm, const char *issuer)
{
	const struct certmap_section *def = NULL;

	for (size_t i = 0; i < cm->n; i++) {
		if (cm->sections[i].is_default)
			def = &cm->sections[i];
		else if (issuer != NULL && certmap_dn_equal(cm->sections[i].issuer, issuer))
			return &cm->sections[i];
	}
	return def;
}

int certmap_plan(const struct certmap *cm, const char *subject, const char *issuer,
		 const char *cert_email, struct certmap_plan *plan, const char **why)
{
	struct certmap_ava avas[CERTMAP_MAX_AVAS];
	const struct certmap_section *sec;
	int n;
	size_t pos = 0;

	memset(plan, 0, sizeof(*plan));
	sec = cm != NULL ? pick_section(cm, issuer) : NULL;
	if (sec == NULL) {
		*why = "no certmap section";
		return -1;
	}
	n = subject != NULL ? certmap_dn_parse(subject, avas, CERTMAP_MAX_AVAS) : -1;
	if (n < 0) {
		*why = "malformed subject DN";
		return -1;
	}
	if (strlen(subject) >= sizeof(plan->subject)) {
		*why = "subject DN too long";
		return -1;
	}
	snprintf(plan->section, sizeof(plan->section), "%s", sec->name);
	snprintf(plan->subject, sizeof(plan->subject), "%s", subject);
	plan->verifycert = sec->verifycert;
	snprintf(plan->cmap_attr, sizeof(plan->cmap_attr), "%s", sec->cmap_attr);

	/* DNComps: absent = the subject is the entry's DN; empty = the whole
	 * tree; listed = those subject components, in the subject's order */
	if (!sec->dn_set) {
		plan->base_kind = CERTMAP_BASE_SUBJECT;
		snprintf(plan->base, sizeof(plan->base), "%s", subject);
	} else if (sec->n_dn == 0) {
		plan->base_kind = CERTMAP_BASE_SUFFIX;
	} else {
		size_t bpos = 0;

		plan->base_kind = CERTMAP_BASE_DN;
		for (int i = 0; i < n; i++) {
			char t[CERTMAP_NAME_MAX], c[CERTMAP_NAME_MAX], esc[3 * 256 + 1];
			bool listed = false;

			certmap_type_canon(avas[i].type, t, sizeof(t));
			for (size_t k = 0; k < sec->n_dn && !listed; k++)
				listed = strcmp(certmap_type_canon(sec->dn[k].cert, c, sizeof(c)), t) == 0;
			if (!listed)
				continue;
			if (certmap_dn_escape(avas[i].value, esc, sizeof(esc)) < 0)
				goto too_long;
			int w = snprintf(plan->base + bpos, sizeof(plan->base) - bpos, "%s%s=%s",
					 bpos > 0 ? "," : "", avas[i].type, esc);
			if (w < 0 || (size_t)w >= sizeof(plan->base) - bpos)
				goto too_long;
			bpos += (size_t)w;
		}
		if (bpos == 0) {
			*why = "the subject has none of the DNComps components";
			return -1;
		}
	}

	/* FilterComps: absent or empty = (objectclass=*); else every listed
	 * component must be in the subject (AND of them) */
	if (sec->n_fc == 0) {
		snprintf(plan->filter, sizeof(plan->filter), "(objectclass=*)");
		return 0;
	}
	pos = (size_t)snprintf(plan->filter, sizeof(plan->filter), "%s", sec->n_fc > 1 ? "(&" : "");
	for (size_t k = 0; k < sec->n_fc; k++) {
		const char *v = subject_value(avas, n, sec->fc[k].cert, cert_email);
		char esc[3 * 256 + 1];
		int w;

		if (v == NULL) {
			*why = "a FilterComps component is not in the certificate";
			return -1;
		}
		if (certmap_filter_escape(v, esc, sizeof(esc)) < 0)
			goto too_long;
		w = snprintf(plan->filter + pos, sizeof(plan->filter) - pos, "(%s=%s)", sec->fc[k].ldap,
			     esc);
		if (w < 0 || (size_t)w >= sizeof(plan->filter) - pos)
			goto too_long;
		pos += (size_t)w;
		snprintf(plan->terms[plan->n_terms].type, sizeof(plan->terms[0].type), "%s",
			 sec->fc[k].ldap);
		snprintf(plan->terms[plan->n_terms].value, sizeof(plan->terms[0].value), "%s", v);
		plan->n_terms++;
	}
	if (sec->n_fc > 1) {
		if (pos + 2 > sizeof(plan->filter))
			goto too_long;
		plan->filter[pos++] = ')';
		plan->filter[pos] = '\0';
	}
	return 0;
too_long:
	*why = "mapped DN or filter too long";
	return -1;
}
