/* certmap.conf: how a verified client certificate becomes a mail user
 * (the anchor's format; docs/CERTMAP.md). certmap_parse.c is the pure
 * parser; certmap.c picks the section for a certificate's issuer and turns
 * the certificate's subject into a search plan that a directory backend
 * (dir_ldap.c, dir.c for the users file) runs. Private to mailcore. */
#ifndef MAILCORE_CERTMAP_H
#define MAILCORE_CERTMAP_H

#include <stdbool.h>
#include <stddef.h>

#define CERTMAP_MAX_FILE (1024u * 1024)
#define CERTMAP_MAX_LINE 4096
#define CERTMAP_MAX_SECTIONS 256
#define CERTMAP_MAX_COMPS 16      /* DNComps / FilterComps entries */
#define CERTMAP_MAX_AVAS 32       /* attribute=value pairs in one DN */
#define CERTMAP_NAME_MAX 64       /* section and attribute names */
#define CERTMAP_DN_MAX 1024

struct certmap;

/* Parses buf as file `name`. NULL and *error_r ("NAME:LINE: ...", caller
 * frees) on error; the mandatory "certmap default default" section missing
 * is an error. Caller frees with certmap_free. */
struct certmap *certmap_parse(const char *name, const char *buf, size_t len, char **error_r);
/* Reads and parses path; refuses a file that group or others may write. */
struct certmap *certmap_load(const char *path, char **error_r);
/* The built-in map used when no file is configured:
 *   certmap default default / default:DNComps / default:FilterComps e=mail */
struct certmap *certmap_default(void);
void certmap_free(struct certmap **cm);
size_t certmap_section_count(const struct certmap *cm);

/* One attribute=value of a DN, unescaped. */
struct certmap_ava {
	char type[CERTMAP_NAME_MAX];
	char value[256];
};
/* Parses an RFC 4514 / RFC 2253 string ("CN=a,O=b", '+' for multi-valued
 * RDNs, backslash escapes, "\xx" hex). Returns the number of AVAs, -1 if
 * malformed or more than max. */
int certmap_dn_parse(const char *dn, struct certmap_ava *avas, size_t max);
/* Same DN: the same AVAs in the same or the reverse order (RFC 2253 strings
 * list the last RDN first; certmap.conf authors write either), types by
 * alias (E = emailAddress, ...) and values case-insensitively. */
bool certmap_dn_equal(const char *a, const char *b);

/* Where the user entry is looked for. */
enum certmap_base {
	CERTMAP_BASE_SUBJECT, /* DNComps absent: the subject DN is the entry's DN */
	CERTMAP_BASE_SUFFIX,  /* DNComps empty: the whole tree (ldap.basedn) */
	CERTMAP_BASE_DN,      /* DNComps listed: base built from the subject */
};

struct certmap_plan {
	char section[CERTMAP_NAME_MAX];
	enum certmap_base base_kind;
	char base[CERTMAP_DN_MAX];       /* CERTMAP_BASE_SUBJECT/_DN: RFC 4514 string */
	char filter[2048];               /* RFC 4515 filter, values escaped */
	/* the filter's terms (directory attribute = certificate value), for the
	 * users file, which has no filters */
	struct certmap_ava terms[CERTMAP_MAX_COMPS];
	size_t n_terms;
	bool verifycert;
	char cmap_attr[CERTMAP_NAME_MAX]; /* CmapLdapAttr; "" = none */
	char subject[CERTMAP_DN_MAX];    /* the certificate subject as given */
};

/* Picks the section whose issuer DN equals issuer (else "default") and
 * builds the plan from subject. cert_email (may be NULL/"") stands in for
 * an "e" component the subject lacks (an e-mail in subjectAltName).
 * Returns 0, or -1 with *why (static) when nothing can be built (a listed
 * component missing from the subject, a malformed subject, too long). */
int certmap_plan(const struct certmap *cm, const char *subject, const char *issuer,
		 const char *cert_email, struct certmap_plan *plan, const char **why);

/* RFC 4515 3: escapes a filter assertion value (*, (, ), \, NUL and
 * non-printables as \xx). Returns 0, or -1 if it does not fit. */
int certmap_filter_escape(const char *in, char *out, size_t cap);
/* RFC 4514 2.4: escapes an attribute value for a DN string. */
int certmap_dn_escape(const char *in, char *out, size_t cap);

#endif
