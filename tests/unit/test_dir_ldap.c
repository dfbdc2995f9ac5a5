/* Unit tests for the LDAP backend's pure parts (mailcore/dir_ldap_int.h):
 * filter templates with RFC 4515 escaping (injection attempts), user and
 * domain attribute values into a record (statuses, quota units, multiple
 * values, mailHost case and syntax, service-access text, untrusted bytes),
 * the mailHost decision (dir.h dir_remote_mailhost), the TTL cache
 * (expiry, bound, negative entries, no temporary failures) and the
 * reconnect backoff. No LDAP server: dir_ldap.c feeds the same functions
 * what libldap returns (tests/integration/test_ldap_*.py cover that). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/conf.h"
#include "mailcore/dir.h"
#include "mailcore/dir_ldap_int.h"

#define S(x) x, strlen(x)

/* ---------------------------------------------------------------- filters */

static void test_expand_filter(void **state)
{
	char out[256];

	(void)state;
	assert_int_equal(dir_ldap_expand_filter("(&(uid=%U)(dom=%D)(m=%o)(p=100%%))", "carol",
						"example.com", "carol@example.com", out,
						sizeof(out)), 0);
	assert_string_equal(out, "(&(uid=carol)(dom=example.com)(m=carol@example.com)(p=100%))");
	/* an unknown escape is copied as it is; NULL values are empty */
	assert_int_equal(dir_ldap_expand_filter("(a=%x%U)", NULL, NULL, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "(a=%x)");
}

static void test_expand_filter_injection(void **state)
{
	char out[512];

	(void)state;
	/* RFC 4515 3: '*', '(', ')', '\' and controls become \XX */
	assert_int_equal(dir_ldap_expand_filter("(uid=%U)", "*)(uid=*", "", "", out, sizeof(out)),
			 0);
	assert_string_equal(out, "(uid=\\2a\\29\\28uid=\\2a)");
	assert_int_equal(dir_ldap_expand_filter("(uid=%U)", "a\\29b", "", "", out, sizeof(out)), 0);
	assert_string_equal(out, "(uid=a\\5c29b)");
	assert_int_equal(dir_ldap_expand_filter("(m=%o)", "x\r\n)(|(a=*", "", "x", out,
						sizeof(out)), 0);
	assert_string_equal(out, "(m=x)");
	assert_int_equal(dir_ldap_expand_filter("(m=%o)", "", "", "x\r\n)(|(a=*", out,
						sizeof(out)), 0);
	assert_string_equal(out, "(m=x\\0d\\0a\\29\\28|\\28a=\\2a)");
	/* UTF-8 stays as it is */
	assert_int_equal(dir_ldap_expand_filter("(cn=%U)", "j\xc3\xb6rg", "", "", out, sizeof(out)),
			 0);
	assert_string_equal(out, "(cn=j\xc3\xb6rg)");
}

static void test_expand_filter_bounds(void **state)
{
	char out[16], big[DIR_ADDR_MAX * 2];

	(void)state;
	assert_int_equal(dir_ldap_expand_filter("(uid=%U)", "abcdefghij", "", "", out, sizeof(out)),
			 -1);
	assert_int_equal(dir_ldap_expand_filter("(uid=%U)", "abcdefghi", "", "", out, sizeof(out)),
			 0);
	assert_string_equal(out, "(uid=abcdefghi)");
	/* every byte escaped triples: still refused, never cut */
	memset(big, '*', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	{
		char huge[4096];

		assert_int_equal(dir_ldap_expand_filter("(uid=%U)", big, "", "", huge, sizeof(huge)),
				 -1);
	}
	assert_int_equal(dir_ldap_expand_filter("x", "", "", "", out, 0), -1);
}

/* ---------------------------------------------------------------- values */

static void test_statuses(void **state)
{
	(void)state;
	assert_int_equal(dir_ldap_user_status(S("active")), DIR_USER_ACTIVE);
	assert_int_equal(dir_ldap_user_status(S("Active")), DIR_USER_ACTIVE);
	assert_int_equal(dir_ldap_user_status(S("inactive")), DIR_USER_INACTIVE);
	assert_int_equal(dir_ldap_user_status(S("hold")), DIR_USER_INACTIVE);
	assert_int_equal(dir_ldap_user_status(S("overquota")), DIR_USER_INACTIVE);
	assert_int_equal(dir_ldap_user_status(S("deleted")), DIR_USER_DELETED);
	assert_int_equal(dir_ldap_user_status(S("REMOVED")), DIR_USER_DELETED);
	/* "an illegal value is treated as inactive"; a prefix is not a match */
	assert_int_equal(dir_ldap_user_status(S("activex")), DIR_USER_INACTIVE);
	assert_int_equal(dir_ldap_user_status("active", 3), DIR_USER_INACTIVE);
	assert_int_equal(dir_ldap_user_status("", 0), DIR_USER_INACTIVE);
	assert_int_equal(dir_ldap_domain_status(S("active")), DIR_USER_ACTIVE);
	assert_int_equal(dir_ldap_domain_status(S("inactive")), DIR_USER_INACTIVE);
	assert_int_equal(dir_ldap_domain_status(S("hold")), DIR_USER_INACTIVE);
	assert_int_equal(dir_ldap_domain_status(S("overquota")), DIR_USER_INACTIVE);
	assert_int_equal(dir_ldap_domain_status(S("deleted")), DIR_USER_DELETED);
	assert_int_equal(dir_ldap_domain_status(S("disabled")), DIR_USER_DELETED);
	assert_int_equal(dir_ldap_domain_status(S("bogus")), DIR_USER_INACTIVE);
}

static void test_quota(void **state)
{
	uint64_t q = 99;

	(void)state;
	assert_int_equal(dir_ldap_parse_quota(S("1048576"), &q), 0);
	assert_true(q == 1048576);
	assert_int_equal(dir_ldap_parse_quota(S("10K"), &q), 0);
	assert_true(q == 10240);
	assert_int_equal(dir_ldap_parse_quota(S("5m"), &q), 0);
	assert_true(q == 5u * 1024 * 1024);
	assert_int_equal(dir_ldap_parse_quota(S("2G"), &q), 0);
	assert_true(q == 2ull * 1024 * 1024 * 1024);
	assert_int_equal(dir_ldap_parse_quota(S("-1"), &q), 0);
	assert_true(q == 0);
	assert_int_equal(dir_ldap_parse_quota(S("-2"), &q), 0);
	assert_true(q == 0);
	assert_int_equal(dir_ldap_parse_quota(S("0"), &q), 0);
	assert_true(q == 0);
	assert_int_equal(dir_ldap_parse_quota(S(""), &q), -1);
	assert_int_equal(dir_ldap_parse_quota(S("M"), &q), -1);
	assert_int_equal(dir_ldap_parse_quota(S("12x"), &q), -1);
	assert_int_equal(dir_ldap_parse_quota(S(" 12"), &q), -1);
	assert_int_equal(dir_ldap_parse_quota(S("-3"), &q), -1);
	assert_int_equal(dir_ldap_parse_quota(S("1e9"), &q), -1);
	assert_int_equal(dir_ldap_parse_quota(S("99999999999999999999"), &q), -1);
	assert_int_equal(dir_ldap_parse_quota(S("9999999999999999999G"), &q), -1);
	assert_int_equal(dir_ldap_parse_quota("12\0" "3", 4, &q), -1);
	assert_true(q == 0);
}

static void user_vals(struct dir_record *r, const char *attr, const char *const *vals)
{
	for (size_t i = 0; vals[i] != NULL; i++)
		dir_ldap_user_value(r, attr, i, vals[i], strlen(vals[i]));
}

static void record_clear(struct dir_record *r)
{
	free(r->allowed);
	free(r->domain_allowed);
	memset(r, 0, sizeof(*r));
}

static void test_user_entry(void **state)
{
	struct dir_record r;
	static const char *const mail[] = {"Carol@Example.COM", "second@example.com", NULL};
	static const char *const alt[] = {"c.smith@example.com", "carol.smith@example.com", NULL};
	static const char *const host[] = {"Store2.Example.COM", NULL};
	static const char *const quota[] = {"20M", NULL};
	static const char *const st[] = {"active", NULL};
	static const char *const inet[] = {"inactive", NULL};
	static const char *const svc[] = {"+imap:ALL", "-smtp:*.bad.example", NULL};

	(void)state;
	memset(&r, 0, sizeof(r));
	user_vals(&r, "mail", mail);
	user_vals(&r, "mailAlternateAddress", alt);
	user_vals(&r, "MAILHOST", host);
	user_vals(&r, "mailQuota", quota);
	user_vals(&r, "mailUserStatus", st);
	assert_int_equal(dir_ldap_user_check(&r), 0);
	/* the first mail value, lower case; alternates do not replace it */
	assert_string_equal(r.address, "carol@example.com");
	assert_string_equal(r.mailhost, "store2.example.com");
	assert_true(r.quota == 20u * 1024 * 1024);
	assert_int_equal(r.status, DIR_USER_ACTIVE);
	assert_null(r.allowed);
	/* several service values: one filter, rules joined with '$' */
	user_vals(&r, "mailAllowedServiceAccess", svc);
	assert_string_equal(r.allowed, "+imap:ALL$-smtp:*.bad.example");
	/* the worse of mailUserStatus and inetUserStatus, in any order */
	user_vals(&r, "inetUserStatus", inet);
	user_vals(&r, "mailUserStatus", st);
	assert_int_equal(r.status, DIR_USER_INACTIVE);
	/* a malformed quota keeps "unlimited" */
	dir_ldap_user_value(&r, "mailQuota", 0, S("lots"));
	assert_true(r.quota == 0);
	/* unknown attributes are ignored */
	dir_ldap_user_value(&r, "description", 0, S("(mail=x)"));
	assert_string_equal(r.address, "carol@example.com");
	record_clear(&r);
}

static void test_user_entry_untrusted(void **state)
{
	struct dir_record r;
	char big[DIR_LDAP_ALLOWED_MAX];

	(void)state;
	memset(&r, 0, sizeof(r));
	/* a mail value with a NUL, a space or a control byte is no address */
	dir_ldap_user_value(&r, "mail", 0, "a@b\0c", 5);
	assert_int_equal(dir_ldap_user_check(&r), -1);
	dir_ldap_user_value(&r, "mail", 0, S("a b@example.com"));
	assert_int_equal(dir_ldap_user_check(&r), -1);
	dir_ldap_user_value(&r, "mail", 0, S("nobody"));
	assert_int_equal(dir_ldap_user_check(&r), -1);
	dir_ldap_user_value(&r, "mail", 0, S("@example.com"));
	assert_int_equal(dir_ldap_user_check(&r), -1);
	dir_ldap_user_value(&r, "mail", 0, S("a@b@example.com"));
	assert_int_equal(dir_ldap_user_check(&r), -1);
	memset(big, 'a', sizeof(big));
	dir_ldap_user_value(&r, "mail", 0, big, sizeof(r.address));
	assert_int_equal(dir_ldap_user_check(&r), -1);
	dir_ldap_user_value(&r, "mail", 0, S("ok@example.com"));
	assert_int_equal(dir_ldap_user_check(&r), 0);
	/* a mailHost that is no host name holds the user, never "local" */
	dir_ldap_user_value(&r, "mailHost", 0, S("evil/host"));
	assert_string_equal(r.mailhost, "");
	assert_int_equal(r.status, DIR_USER_INACTIVE);
	r.status = DIR_USER_ACTIVE;
	dir_ldap_user_value(&r, "mailHost", 0, "h\0x", 3);
	assert_int_equal(r.status, DIR_USER_INACTIVE);
	r.status = DIR_USER_ACTIVE;
	dir_ldap_user_value(&r, "mailHost", 0, big, 300);
	assert_int_equal(r.status, DIR_USER_INACTIVE);
	/* service text: NUL values dropped, the total bounded */
	dir_ldap_user_value(&r, "mailAllowedServiceAccess", 0, "+imap\0:ALL", 10);
	assert_null(r.allowed);
	dir_ldap_user_value(&r, "mailAllowedServiceAccess", 0, big, DIR_LDAP_ALLOWED_MAX - 100);
	assert_non_null(r.allowed);
	dir_ldap_user_value(&r, "mailAllowedServiceAccess", 1, big, 200);
	assert_int_equal(strlen(r.allowed), DIR_LDAP_ALLOWED_MAX - 100);
	dir_ldap_user_value(&r, "mailAllowedServiceAccess", 2, S("+pop:ALL"));
	assert_int_equal(strlen(r.allowed), DIR_LDAP_ALLOWED_MAX - 100 + 9);
	/* certificates: at most DIR_MAX_CERTS hashed */
	for (size_t i = 0; i < DIR_MAX_CERTS + 3; i++)
		dir_ldap_user_value(&r, "userCertificate;binary", i, big, i + 1);
	assert_int_equal(r.n_certs, DIR_MAX_CERTS);
	assert_memory_not_equal(r.cert_sha256[0], r.cert_sha256[1], 32);
	record_clear(&r);
}

static void test_domain_entry(void **state)
{
	struct dir_record dom, user;

	(void)state;
	memset(&dom, 0, sizeof(dom));
	memset(&user, 0, sizeof(user));
	dir_ldap_domain_value(&dom, "inetDomainStatus", 0, S("active"));
	dir_ldap_domain_value(&dom, "mailDomainAllowedServiceAccess", 0, S("+imap:ALL"));
	dir_ldap_domain_value(&dom, "mailDomainAllowedServiceAccess", 1, S("+pop:192.0.2."));
	assert_int_equal(dom.status, DIR_USER_ACTIVE);
	assert_string_equal(dom.domain_allowed, "+imap:ALL$+pop:192.0.2.");
	dir_ldap_user_value(&user, "mail", 0, S("q@imaponly.example"));
	dir_ldap_merge_domain(&user, &dom);
	assert_int_equal(user.status, DIR_USER_ACTIVE);
	assert_string_equal(user.domain_allowed, "+imap:ALL$+pop:192.0.2.");
	/* a held domain makes an active user inactive (temporary) */
	dir_ldap_domain_value(&dom, "mailDomainStatus", 0, S("hold"));
	assert_int_equal(dom.status, DIR_USER_INACTIVE);
	dir_ldap_merge_domain(&user, &dom);
	assert_int_equal(user.status, DIR_USER_INACTIVE);
	dir_ldap_domain_value(&dom, "mailDomainStatus", 0, S("deleted"));
	assert_int_equal(dom.status, DIR_USER_DELETED);
	/* user attributes on a domain entry mean nothing */
	dir_ldap_domain_value(&dom, "mailHost", 0, S("x.example"));
	assert_string_equal(dom.mailhost, "");
	record_clear(&dom);
	record_clear(&user);
}

/* ---------------------------------------------------------------- mailHost */

static const struct dir_backend no_backend = {.name = "test"};

static void test_remote_mailhost(void **state)
{
	static const char text[] = "mailcore.mailhost_names = store1.example, mx.example.\n";
	struct dir *d = dir_new_backend(&no_backend, NULL, NULL);
	struct dir_record r;
	struct sp_conf *conf;
	char *err = NULL;

	(void)state;
	memset(&r, 0, sizeof(r));
	dir_set_mailhost_names(d, NULL, "Here.Example");
	assert_null(dir_remote_mailhost(d, &r)); /* no mailHost: here */
	snprintf(r.mailhost, sizeof(r.mailhost), "here.example.");
	assert_null(dir_remote_mailhost(d, &r));
	snprintf(r.mailhost, sizeof(r.mailhost), "there.example");
	assert_string_equal(dir_remote_mailhost(d, &r), "there.example");
	conf = sp_conf_new();
	assert_int_equal(sp_conf_add_schema(conf, "mailcore", mailcore_dir_conf_keys, &err), 0);
	assert_int_equal(sp_conf_parse(conf, "t.conf", text, strlen(text), &err), 0);
	dir_set_mailhost_names(d, conf, "here.example");
	/* the list replaces the host name */
	snprintf(r.mailhost, sizeof(r.mailhost), "here.example");
	assert_string_equal(dir_remote_mailhost(d, &r), "here.example");
	snprintf(r.mailhost, sizeof(r.mailhost), "mx.example");
	assert_null(dir_remote_mailhost(d, &r));
	snprintf(r.mailhost, sizeof(r.mailhost), "STORE1.example");
	assert_null(dir_remote_mailhost(d, &r));
	sp_conf_free(&conf);
	dir_unref(&d);
}

/* ---------------------------------------------------------------- cache */

static void test_cache_expiry_and_negative(void **state)
{
	struct dir_ldap_cache *c = dir_ldap_cache_new(64, 1000);
	struct dir_record r, *got = NULL;
	enum dir_status st;

	(void)state;
	memset(&r, 0, sizeof(r));
	snprintf(r.address, sizeof(r.address), "carol@example.com");
	r.allowed = strdup("+imap:ALL");
	r.domain_allowed = strdup("+pop:ALL");
	dir_ldap_cache_put(c, "a:carol@example.com", 5000, DIR_FOUND, &r);
	assert_true(dir_ldap_cache_get(c, "a:carol@example.com", 5999, &st, &got));
	assert_int_equal(st, DIR_FOUND);
	assert_string_equal(got->address, "carol@example.com");
	assert_string_equal(got->allowed, "+imap:ALL");
	assert_string_equal(got->domain_allowed, "+pop:ALL");
	assert_ptr_not_equal(got->allowed, r.allowed); /* a copy */
	dir_record_free(&got);
	/* expired at put time + ttl */
	assert_false(dir_ldap_cache_get(c, "a:carol@example.com", 6000, &st, &got));
	/* a negative answer is kept, a temporary failure never */
	dir_ldap_cache_put(c, "a:nobody@example.com", 5000, DIR_NOTFOUND, NULL);
	assert_true(dir_ldap_cache_get(c, "a:nobody@example.com", 5500, &st, &got));
	assert_int_equal(st, DIR_NOTFOUND);
	assert_null(got);
	dir_ldap_cache_put(c, "a:down@example.com", 5000, DIR_TEMPFAIL, NULL);
	assert_false(dir_ldap_cache_get(c, "a:down@example.com", 5001, &st, &got));
	/* a later answer replaces the earlier one */
	dir_ldap_cache_put(c, "a:nobody@example.com", 5100, DIR_FOUND, &r);
	assert_true(dir_ldap_cache_get(c, "a:nobody@example.com", 5200, &st, &got));
	assert_int_equal(st, DIR_FOUND);
	dir_record_free(&got);
	/* a key too long is not cached; a FOUND without a record neither */
	{
		char key[DIR_ADDR_MAX + 16];

		memset(key, 'k', sizeof(key) - 1);
		key[sizeof(key) - 1] = '\0';
		dir_ldap_cache_put(c, key, 5000, DIR_NOTFOUND, NULL);
		assert_false(dir_ldap_cache_get(c, key, 5001, &st, &got));
		dir_ldap_cache_put(c, "a:x", 5000, DIR_FOUND, NULL);
		assert_false(dir_ldap_cache_get(c, "a:x", 5001, &st, &got));
	}
	free(r.allowed);
	free(r.domain_allowed);
	dir_ldap_cache_free(&c);
	assert_null(c);
	dir_ldap_cache_free(&c); /* NULL-safe */
}

static void test_cache_bound_and_off(void **state)
{
	struct dir_ldap_cache *c = dir_ldap_cache_new(16, 60000);
	enum dir_status st;
	struct dir_record *got = NULL;
	size_t hits = 0;
	char key[64];

	(void)state;
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "a:user%d@example.com", i);
		dir_ldap_cache_put(c, key, 0, DIR_NOTFOUND, NULL);
		assert_true(dir_ldap_cache_count(c) <= 16);
	}
	assert_true(dir_ldap_cache_count(c) > 0);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "a:user%d@example.com", i);
		hits += dir_ldap_cache_get(c, key, 1, &st, &got);
	}
	assert_true(hits >= 1 && hits <= 16);
	dir_ldap_cache_free(&c);
	/* ttl 0: nothing is kept */
	c = dir_ldap_cache_new(16, 0);
	dir_ldap_cache_put(c, "a:x@example.com", 0, DIR_NOTFOUND, NULL);
	assert_int_equal(dir_ldap_cache_count(c), 0);
	assert_false(dir_ldap_cache_get(c, "a:x@example.com", 0, &st, &got));
	dir_ldap_cache_free(&c);
}

/* ---------------------------------------------------------------- backoff */

static void test_backoff(void **state)
{
	long b = 0;

	(void)state;
	b = dir_ldap_next_backoff(b, 1000, 60000);
	assert_int_equal(b, 1000);
	b = dir_ldap_next_backoff(b, 1000, 60000);
	assert_int_equal(b, 2000);
	for (int i = 0; i < 10; i++)
		b = dir_ldap_next_backoff(b, 1000, 60000);
	assert_int_equal(b, 60000);
	assert_int_equal(dir_ldap_next_backoff(60000, 1000, 60000), 60000);
	assert_int_equal(dir_ldap_next_backoff(40000, 1000, 60000), 60000);
	/* max below min: min */
	assert_int_equal(dir_ldap_next_backoff(0, 500, 100), 500);
	assert_int_equal(dir_ldap_next_backoff(500, 500, 100), 500);
	/* no overflow near the top */
	assert_int_equal(dir_ldap_next_backoff(3600000, 10, 3600000), 3600000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand_filter),
		cmocka_unit_test(test_expand_filter_injection),
		cmocka_unit_test(test_expand_filter_bounds),
		cmocka_unit_test(test_statuses),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_user_entry),
		cmocka_unit_test(test_user_entry_untrusted),
		cmocka_unit_test(test_domain_entry),
		cmocka_unit_test(test_remote_mailhost),
		cmocka_unit_test(test_cache_expiry_and_negative),
		cmocka_unit_test(test_cache_bound_and_off),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
