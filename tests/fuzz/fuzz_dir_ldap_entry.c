/* libFuzzer target for the LDAP backend's parsers of directory data
 * (mailcore/dir_ldap_entry.c): attribute values of user and domain entries
 * are untrusted bytes. Input: records of [attribute byte][length byte]
 * [value]; the attribute byte picks a name (bit 7: a domain entry's). The
 * record must stay within its bounds, NUL-terminated, and its texts must
 * be what the checks promise; the last value also goes through the
 * filter expansion, which must escape it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/dir_ldap_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const user_names[] = {
	"mail", "mailAlternateAddress", "mailHost", "mailQuota", "mailUserStatus",
	"inetUserStatus", "mailAllowedServiceAccess", "userCertificate;binary", "other",
};
static const char *const domain_names[] = {
	"inetDomainStatus", "mailDomainStatus", "mailDomainAllowedServiceAccess", "mail",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dir_record user, dom;
	size_t pos = 0, idx[16] = {0};
	const char *last = "";
	size_t last_len = 0;

	memset(&user, 0, sizeof(user));
	memset(&dom, 0, sizeof(dom));
	while (pos + 2 <= size) {
		uint8_t a = data[pos], n = data[pos + 1];
		const char *v = (const char *)data + pos + 2;

		if (pos + 2 + n > size)
			n = (uint8_t)(size - pos - 2);
		if (a & 0x80) {
			size_t k = (a & 0x7f) % (sizeof(domain_names) / sizeof(domain_names[0]));

			dir_ldap_domain_value(&dom, domain_names[k], idx[8 + k]++, v, n);
		} else {
			size_t k = a % (sizeof(user_names) / sizeof(user_names[0]));

			dir_ldap_user_value(&user, user_names[k], idx[k % 8]++, v, n);
		}
		last = v;
		last_len = n;
		pos += 2 + (size_t)n;
	}
	if (dir_ldap_user_check(&user) == 0 && strchr(user.address, '@') == NULL)
		abort();
	if (memchr(user.address, '\0', sizeof(user.address)) == NULL ||
	    memchr(user.mailhost, '\0', sizeof(user.mailhost)) == NULL)
		abort();
	for (const char *p = user.mailhost; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort(); /* stored lower case */
	if ((user.allowed != NULL && strlen(user.allowed) >= DIR_LDAP_ALLOWED_MAX) ||
	    (dom.domain_allowed != NULL && strlen(dom.domain_allowed) >= DIR_LDAP_ALLOWED_MAX) ||
	    user.n_certs > DIR_MAX_CERTS || user.status > DIR_USER_DELETED)
		abort();
	dir_ldap_merge_domain(&user, &dom);
	{
		char val[256], out[1024];

		memcpy(val, last, last_len < sizeof(val) - 1 ? last_len : sizeof(val) - 1);
		val[last_len < sizeof(val) - 1 ? last_len : sizeof(val) - 1] = '\0';
		if (dir_ldap_expand_filter("(&(uid=%U)(d=%D)(m=%o))", val, val, val, out,
					   sizeof(out)) == 0) {
			/* the value cannot open or close a filter component */
			size_t opens = 0, closes = 0;

			for (const char *p = out; *p != '\0'; p++) {
				opens += *p == '(';
				closes += *p == ')';
			}
			if (opens != 4 || closes != 4)
				abort();
		}
	}
	free(user.allowed);
	free(user.domain_allowed);
	free(dom.allowed);
	free(dom.domain_allowed);
	return 0;
}
