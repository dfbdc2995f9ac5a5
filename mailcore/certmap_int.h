/* certmap.conf in memory: shared by the parser (certmap_parse.c) and the
 * evaluation (certmap.c) only. */
#ifndef MAILCORE_CERTMAP_INT_H
#define MAILCORE_CERTMAP_INT_H

#include "mailcore/certmap.h"

struct certmap_comp {
	char cert[CERTMAP_NAME_MAX];  /* a certificate subject attribute (e, cn, uid, ...) */
	char ldap[CERTMAP_NAME_MAX];  /* the directory attribute it is matched against */
};

struct certmap_section {
	char name[CERTMAP_NAME_MAX];
	char *issuer;                 /* issuer DN as written; "default" for the default */
	bool is_default;
	unsigned lineno;
	bool dn_set;                  /* DNComps line present (absent: subject DN as is) */
	struct certmap_comp dn[CERTMAP_MAX_COMPS];
	size_t n_dn;
	bool fc_set;                  /* FilterComps line present */
	struct certmap_comp fc[CERTMAP_MAX_COMPS];
	size_t n_fc;
	bool vc_set, verifycert;
	bool cmap_set;
	char cmap_attr[CERTMAP_NAME_MAX];
};

struct certmap {
	struct certmap_section *sections;
	size_t n;
};

/* Canonical lower-case name of a DN attribute type (e, email -> emailaddress). */
const char *certmap_type_canon(const char *type, char *buf, size_t cap);

#endif
