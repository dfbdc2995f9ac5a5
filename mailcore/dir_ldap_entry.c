/* The LDAP backend's pure parts over entries (dir_ldap_int.h): filter
 * templates expanded with escaped values, and attribute values of user
 * and domain entries into a dir_record. dir_ldap.c feeds them what
 * libldap returns; the unit test and the fuzz target feed them bytes.
 * SECURITY: every attribute value is untrusted input from the directory
 * (any bytes, any length): values are read by length, never as C
 * strings; copies are bounded; nothing here trusts a value to be text. */
#include "mailcore/dir_ldap_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/certmap.h"

/* ---------------------------------------------------------------- filters */

int dir_ldap_expand_filter(const char *tmpl, const char *user, const char *domain,
			   const char *orig, char *out, size_t cap)
{
	size_t o = 0;

	if (cap == 0)
		return -1;
	for (const char *t = tmpl; *t != '\0'; t++) {
		const char *v;
		char esc[3 * DIR_ADDR_MAX + 1];
		size_t n;

		if (*t == '%' && (t[1] == 'U' || t[1] == 'D' || t[1] == 'o')) {
			v = t[1] == 'U' ? user : t[1] == 'D' ? domain : orig;
			t++;
			if (certmap_filter_escape(v != NULL ? v : "", esc, sizeof(esc)) < 0)
				return -1;
			n = strlen(esc);
			if (o + n >= cap)
				return -1;
			memcpy(out + o, esc, n);
			o += n;
			continue;
		}
		if (*t == '%' && t[1] == '%')
			t++;
		if (o + 1 >= cap)
			return -1;
		out[o++] = *t;
	}
	out[o] = '\0';
	return 0;
}

/* ---------------------------------------------------------------- values */

static bool value_is(const char *v, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(v, word, len) == 0;
}

enum dir_user_status dir_ldap_user_status(const char *v, size_t len)
{
	if (value_is(v, len, "active"))
		return DIR_USER_ACTIVE;
	if (value_is(v, len, "deleted") || value_is(v, len, "removed"))
		return DIR_USER_DELETED;
	return DIR_USER_INACTIVE;
}

enum dir_user_status dir_ldap_domain_status(const char *v, size_t len)
{
	if (value_is(v, len, "active"))
		return DIR_USER_ACTIVE;
	if (value_is(v, len, "deleted") || value_is(v, len, "removed") ||
	    value_is(v, len, "disabled"))
		return DIR_USER_DELETED;
	return DIR_USER_INACTIVE; /* inactive, hold, overquota, unknown */
}

int dir_ldap_parse_quota(const char *v, size_t len, uint64_t *bytes_r)
{
	uint64_t n = 0, mult = 1;
	size_t i = 0;

	*bytes_r = 0;
	if (value_is(v, len, "-1") || value_is(v, len, "-2"))
		return 0; /* no limit / the system default: unlimited */
	if (len > 0 && (v[len - 1] == 'K' || v[len - 1] == 'k'))
		mult = 1024;
	else if (len > 0 && (v[len - 1] == 'M' || v[len - 1] == 'm'))
		mult = 1024 * 1024;
	else if (len > 0 && (v[len - 1] == 'G' || v[len - 1] == 'g'))
		mult = 1024 * 1024 * 1024;
	if (mult > 1)
		len--;
	if (len == 0 || len > 19)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0'); /* <= 19 digits: no overflow */
	}
	if (n > UINT64_MAX / mult)
		return -1;
	*bytes_r = n * mult;
	return 0;
}

/* A name field (mail, mailHost): printable ASCII only, no space, fits. */
static bool copy_name(char *dst, size_t cap, const char *v, size_t len)
{
	if (len == 0 || len >= cap)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return false;
	for (size_t i = 0; i < len; i++)
		dst[i] = (char)tolower((unsigned char)v[i]);
	dst[len] = '\0';
	return true;
}

/* RFC 1123 2.1 host name characters (and '_', seen in the wild); it goes
 * into an IMAP URL (RFC 2221 referral) and a queue next hop as it is. */
static bool host_name_ok(const char *v, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)v[i]) && v[i] != '.' && v[i] != '-' && v[i] != '_')
			return false;
	return true;
}

static void worse_status(enum dir_user_status *st, enum dir_user_status v)
{
	if (v > *st)
		*st = v;
}

/* Appends one filter value to *text ('$' between rules, filter.h). A
 * value with a NUL byte, or one past the bound, is dropped. */
static void append_rules(char **text, const char *attr, const char *v, size_t len)
{
	size_t have = *text != NULL ? strlen(*text) : 0;

	if (len == 0)
		return;
	if (memchr(v, '\0', len) != NULL || have + len + 2 > DIR_LDAP_ALLOWED_MAX) {
		sp_log(SP_LOG_NOTICE, "ldap_value_dropped", "attr=%s len=%zu why=\"%s\"", attr, len,
		       memchr(v, '\0', len) != NULL ? "NUL byte" : "too long");
		return;
	}
	*text = sp_xrealloc(*text, have + len + 2, 1);
	if (have > 0)
		(*text)[have++] = '$';
	memcpy(*text + have, v, len);
	(*text)[have + len] = '\0';
}

void dir_ldap_user_value(struct dir_record *rec, const char *attr, size_t idx, const char *v,
			 size_t len)
{
	if (strcasecmp(attr, "mail") == 0) {
		if (idx == 0 && !copy_name(rec->address, sizeof(rec->address), v, len))
			rec->address[0] = '\0';
	} else if (strcasecmp(attr, "mailHost") == 0) {
		/* a host name, or the mailbox cannot be found: a mailHost that
		 * is not one holds the user (inactive: 4xx, no login) rather
		 * than storing the mail on the wrong host */
		if (idx == 0 && !host_name_ok(v, len)) {
			sp_log(SP_LOG_NOTICE, "ldap_value_dropped",
			       "attr=mailHost len=%zu why=\"not a host name\" (user held inactive)", len);
			rec->mailhost[0] = '\0';
			worse_status(&rec->status, DIR_USER_INACTIVE);
		} else if (idx == 0) {
			copy_name(rec->mailhost, sizeof(rec->mailhost), v, len);
		}
	} else if (strcasecmp(attr, "mailQuota") == 0) {
		if (idx == 0 && dir_ldap_parse_quota(v, len, &rec->quota) < 0)
			sp_log(SP_LOG_NOTICE, "ldap_value_dropped",
			       "attr=mailQuota len=%zu why=\"not a number of bytes\"", len);
	} else if (strcasecmp(attr, "mailUserStatus") == 0 ||
		   strcasecmp(attr, "inetUserStatus") == 0) {
		worse_status(&rec->status, dir_ldap_user_status(v, len));
	} else if (strcasecmp(attr, "mailAllowedServiceAccess") == 0) {
		append_rules(&rec->allowed, attr, v, len);
	} else if (strncasecmp(attr, "userCertificate", 15) == 0 && rec->n_certs < DIR_MAX_CERTS) {
		unsigned int md_len = 0;

		if (EVP_Digest(v, len, rec->cert_sha256[rec->n_certs], &md_len, EVP_sha256(),
			       NULL) == 1 && md_len == 32)
			rec->n_certs++;
	}
}

int dir_ldap_user_check(const struct dir_record *rec)
{
	const char *at = strchr(rec->address, '@');

	return at != NULL && at != rec->address && at[1] != '\0' && strchr(at + 1, '@') == NULL
		       ? 0
		       : -1;
}

void dir_ldap_domain_value(struct dir_record *rec, const char *attr, size_t idx, const char *v,
			   size_t len)
{
	(void)idx;
	if (strcasecmp(attr, "inetDomainStatus") == 0 || strcasecmp(attr, "mailDomainStatus") == 0)
		worse_status(&rec->status, dir_ldap_domain_status(v, len));
	else if (strcasecmp(attr, "mailDomainAllowedServiceAccess") == 0)
		append_rules(&rec->domain_allowed, attr, v, len);
}

void dir_ldap_merge_domain(struct dir_record *user, const struct dir_record *domain)
{
	worse_status(&user->status, domain->status);
	free(user->domain_allowed);
	user->domain_allowed = domain->domain_allowed != NULL ? sp_xstrdup(domain->domain_allowed)
							       : NULL;
}
