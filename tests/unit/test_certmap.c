/* certmap.conf: the parser (sections, options, errors naming the line),
 * DN parsing and comparison, section choice by issuer, the search plan
 * (DNComps, FilterComps with RFC 4515 escaping, verifycert, CmapLdapAttr),
 * and the users-file subset through dir.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mailcore/certmap.h"
#include "mailcore/dir.h"

static struct certmap *parse(const char *text, char **error_r)
{
	*error_r = NULL;
	return certmap_parse("certmap.conf", text, strlen(text), error_r);
}

static void expect_error(const char *text, const char *needle)
{
	char *error = NULL;
	struct certmap *cm = parse(text, &error);

	assert_null(cm);
	assert_non_null(error);
	if (strstr(error, needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", error, needle);
	free(error);
}

static const char sample[] =
	"# comment\n"
	"certmap default default\n"
	"default:DNComps\n"
	"default:FilterComps e=mail\n"
	"\n"
	"certmap corp O=Example Corp, CN=Corp CA\n"
	"corp:DNComps ou, o\n"
	"corp:FilterComps e, uid\n"
	"corp:verifycert on\n"
	"certmap subj CN=Subject CA\n"
	"certmap byattr CN=Attr CA\n"
	"byattr:CmapLdapAttr certSubjectDN\n";

static void test_parse_ok(void **state)
{
	char *error;
	struct certmap *cm = parse(sample, &error);

	(void)state;
	assert_non_null(cm);
	assert_int_equal(certmap_section_count(cm), 4);
	certmap_free(&cm);
	assert_null(cm);
	certmap_free(NULL);
	cm = certmap_default();
	assert_non_null(cm);
	certmap_free(&cm);
}

static void test_parse_errors(void **state)
{
	(void)state;
	expect_error("certmap a CN=X\n", "mandatory");
	expect_error("certmap default default\nx:DNComps\n", ":2: option for a section not declared");
	expect_error("certmap default default\ndefault:verifycert maybe\n", ":2: verifycert takes on or off");
	expect_error("certmap default default\ndefault:library /lib/x.so\n", "plug-in");
	expect_error("certmap default default\ndefault:InitFn f\n", "plug-in");
	expect_error("certmap default default\ndefault:Bogus x\n", "unknown option");
	expect_error("certmap default default\ncertmap default default\n", "duplicate section");
	expect_error("certmap default other\n", "default default");
	expect_error("certmap default default\ncertmap a CN=X\ncertmap b cn=x\n", ":3: another section has the same issuer");
	expect_error("certmap default default\ncertmap a not a dn\n", "bad issuer DN");
	expect_error("certmap default default\ndefault:DNComps a=b\n", "DNComps takes attribute names");
	expect_error("certmap default default\ndefault:FilterComps (x)\n", "bad attribute name");
	expect_error("certmap default default\ndefault:DNComps\ndefault:DNComps\n", "twice");
	expect_error("certmap\n", "expected");
}

static void test_dn(void **state)
{
	struct certmap_ava avas[8];

	(void)state;
	assert_int_equal(certmap_dn_parse("CN=a\\,b,O=x+OU=y", avas, 8), 3);
	assert_string_equal(avas[0].value, "a,b");
	assert_string_equal(avas[2].type, "OU");
	/* an escaped trailing blank stays, an unescaped one goes (RFC 4514 2.4) */
	assert_int_equal(certmap_dn_parse("CN=\\41\\42\\  ,O=\" q,\"", avas, 8), 2);
	assert_string_equal(avas[0].value, "AB ");
	assert_string_equal(avas[1].value, " q,");
	assert_int_equal(certmap_dn_parse("CN=a,,", avas, 8), -1);
	assert_int_equal(certmap_dn_parse("=a", avas, 8), -1);
	assert_int_equal(certmap_dn_parse("CN=\\00", avas, 8), -1);
	assert_int_equal(certmap_dn_parse("A=1,B=2,C=3", avas, 2), -1);
	assert_true(certmap_dn_equal("CN=Corp CA,O=Example Corp", "O=Example Corp, CN=Corp CA"));
	assert_true(certmap_dn_equal("emailAddress=a@b,CN=x", "CN=X,E=A@B"));
	assert_false(certmap_dn_equal("CN=Corp CA,O=Example", "CN=Corp CA,O=Other"));
	assert_false(certmap_dn_equal("CN=a", "CN=a,O=b"));
}

static void test_escape(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(certmap_filter_escape("a*(b)\\", out, sizeof(out)), 0);
	assert_string_equal(out, "a\\2a\\28b\\29\\5c");
	assert_int_equal(certmap_filter_escape("abcdef", out, 4), -1);
	assert_int_equal(certmap_dn_escape("#a,b ", out, sizeof(out)), 0);
	assert_string_equal(out, "\\#a\\,b\\ ");
}

static void test_plan(void **state)
{
	char *error;
	struct certmap *cm = parse(sample, &error);
	struct certmap_plan p;
	const char *why = NULL;

	(void)state;
	assert_non_null(cm);
	/* the default section: whole tree, mail from the subject's e-mail */
	assert_int_equal(certmap_plan(cm, "emailAddress=al*ce@example.com,CN=alice,O=Other",
				      "CN=Unknown CA", NULL, &p, &why), 0);
	assert_string_equal(p.section, "default");
	assert_int_equal(p.base_kind, CERTMAP_BASE_SUFFIX);
	assert_string_equal(p.filter, "(mail=al\\2ace@example.com)");
	assert_false(p.verifycert);
	assert_int_equal(p.n_terms, 1);
	assert_string_equal(p.terms[0].value, "al*ce@example.com");
	/* the e-mail of subjectAltName stands in when the subject has none */
	assert_int_equal(certmap_plan(cm, "CN=bob", "CN=X", "bob@example.com", &p, &why), 0);
	assert_string_equal(p.filter, "(mail=bob@example.com)");
	assert_int_equal(certmap_plan(cm, "CN=bob", "CN=X", "", &p, &why), -1);
	/* the corp section, chosen by issuer in either order */
	assert_int_equal(certmap_plan(cm, "UID=carol,emailAddress=c@corp,OU=Sales,O=Corp", "CN=Corp CA,O=Example Corp",
				      NULL, &p, &why), 0);
	assert_string_equal(p.section, "corp");
	assert_int_equal(p.base_kind, CERTMAP_BASE_DN);
	assert_string_equal(p.base, "OU=Sales,O=Corp");
	assert_string_equal(p.filter, "(&(mail=c@corp)(uid=carol))");
	assert_true(p.verifycert);
	/* a listed component missing: no plan */
	assert_int_equal(certmap_plan(cm, "emailAddress=c@corp,OU=Sales", "CN=Corp CA,O=Example Corp",
				      NULL, &p, &why), -1);
	/* DNComps absent: the subject is the DN; FilterComps absent: objectclass=* */
	assert_int_equal(certmap_plan(cm, "CN=s,O=x", "CN=Subject CA", NULL, &p, &why), 0);
	assert_int_equal(p.base_kind, CERTMAP_BASE_SUBJECT);
	assert_string_equal(p.base, "CN=s,O=x");
	assert_string_equal(p.filter, "(objectclass=*)");
	assert_int_equal(certmap_plan(cm, "CN=s,O=x", "CN=Attr CA", NULL, &p, &why), 0);
	assert_string_equal(p.cmap_attr, "certSubjectDN");
	assert_int_equal(certmap_plan(cm, "CN=,,", "CN=Attr CA", NULL, &p, &why), -1);
	certmap_free(&cm);
}

/* What tlsd passes for a connection with a client certificate it verified. */
static void verified_cert(struct sp_proxy_info *tls, const char *subject, const char *issuer)
{
	memset(tls, 0, sizeof(*tls));
	tls->tls = true;
	tls->tls_client = SP_PP2_CLIENT_SSL | SP_PP2_CLIENT_CERT_CONN;
	snprintf(tls->cert_subject, sizeof(tls->cert_subject), "%s", subject);
	snprintf(tls->cert_issuer, sizeof(tls->cert_issuer), "%s", issuer);
}

/* The users file through dir.h: FilterComps e=mail, verifycert against
 * certsha256=, inactive users refused. */
static void test_users_backend(void **state)
{
	static const char users_text[] =
		"alice@example.com:*:certsha256=0101010101010101010101010101010101010101010101010101010101010101\n"
		"bob@example.com:*:\n"
		"carol@example.com:*:status=inactive\n"
		"gina@example.com:*:quota=1m, allowed=+imap,pop:ALL\n";
	char *error = NULL;
	struct dir_users *users = dir_users_parse("users", users_text, sizeof(users_text) - 1, &error);
	struct certmap *cm = parse("certmap default default\ndefault:FilterComps e\n"
				   "certmap v CN=V CA\nv:FilterComps e\nv:verifycert on\n", &error);
	struct dir *d;
	struct dir_record *rec = NULL;
	struct sp_proxy_info tls;

	(void)state;
	assert_non_null(users);
	assert_non_null(cm);
	d = dir_users_new(NULL, users, cm, NULL);
	verified_cert(&tls, "emailAddress=Bob@Example.com,CN=bob", "CN=Other CA");
	assert_int_equal(dir_certmap(d, &tls, &rec), DIR_FOUND);
	assert_string_equal(rec->address, "bob@example.com");
	dir_record_free(&rec);
	tls.tls_verify = 20; /* not verified by tlsd: nobody */
	assert_int_equal(dir_certmap(d, &tls, &rec), DIR_NOTFOUND);
	tls.tls_verify = 0;
	strcpy(tls.cert_subject, "emailAddress=carol@example.com,CN=c");
	assert_int_equal(dir_certmap(d, &tls, &rec), DIR_NOTFOUND); /* inactive */
	/* verifycert */
	strcpy(tls.cert_issuer, "CN=V CA");
	strcpy(tls.cert_subject, "emailAddress=alice@example.com,CN=a");
	assert_int_equal(dir_certmap(d, &tls, &rec), DIR_NOTFOUND); /* no hash presented */
	tls.has_cert_sha256 = true;
	memset(tls.cert_sha256, 1, 32);
	assert_int_equal(dir_certmap(d, &tls, &rec), DIR_FOUND);
	dir_record_free(&rec);
	tls.cert_sha256[31] = 2;
	assert_int_equal(dir_certmap(d, &tls, &rec), DIR_NOTFOUND);
	strcpy(tls.cert_subject, "emailAddress=bob@example.com,CN=b");
	assert_int_equal(dir_certmap(d, &tls, &rec), DIR_NOTFOUND); /* bob has no certsha256 */
	/* lookups and allowed services */
	const struct filter_query smtp_where = {.service = "smtp"}, imap_where = {.service = "imap"};

	assert_int_equal(dir_lookup(d, "GINA@example.com", &rec), DIR_FOUND);
	assert_string_equal(rec->allowed, "+imap,pop:ALL");
	assert_int_equal(rec->quota, 1024 * 1024);
	assert_false(dir_service_allowed(rec, &smtp_where));
	assert_true(dir_service_allowed(rec, &imap_where));
	dir_record_free(&rec);
	assert_int_equal(dir_lookup(d, "nobody@example.com", &rec), DIR_NOTFOUND);
	assert_int_equal(dir_lookup(d, "carol@example.com", &rec), DIR_FOUND);
	assert_int_equal(rec->status, DIR_USER_INACTIVE);
	assert_true(dir_service_allowed(rec, &smtp_where));
	dir_record_free(&rec);
	/* no pool: the async calls refuse rather than answer inside the call */
	assert_null(dir_lookup_async(d, "bob@example.com", NULL, NULL));
	dir_unref(&d);
	assert_null(d);
	certmap_free(&cm);
	dir_users_free(&users);
}

/* The users file's mailhost= through dir.h: lookups and certmap carry it
 * into the record, and dir_remote_mailhost tells another host from this
 * one (what the IMAPS PREAUTH referral and SMTP routing rely on). */
static void test_users_mailhost(void **state)
{
	static const char users_text[] = "olga@example.com:*:mailhost=Other.Example\n"
					 "hal@example.com:*:mailhost=mx.example.com.\n"
					 "bob@example.com:*:\n";
	char *error = NULL;
	struct dir_users *users = dir_users_parse("users", users_text, sizeof(users_text) - 1, &error);
	struct certmap *cm = parse("certmap default default\ndefault:FilterComps e\n", &error);
	struct dir *d;
	struct dir_record *rec = NULL;
	struct sp_proxy_info tls;

	(void)state;
	assert_non_null(users);
	assert_non_null(cm);
	d = dir_users_new(NULL, users, cm, NULL);
	dir_set_mailhost_names(d, NULL, "mx.example.com");
	assert_int_equal(dir_lookup(d, "olga@example.com", &rec), DIR_FOUND);
	assert_string_equal(rec->mailhost, "other.example");
	assert_string_equal(dir_remote_mailhost(d, rec), "other.example");
	dir_record_free(&rec);
	assert_int_equal(dir_lookup(d, "hal@example.com", &rec), DIR_FOUND);
	assert_null(dir_remote_mailhost(d, rec)); /* names this host */
	dir_record_free(&rec);
	assert_int_equal(dir_lookup(d, "bob@example.com", &rec), DIR_FOUND);
	assert_string_equal(rec->mailhost, "");
	assert_null(dir_remote_mailhost(d, rec));
	dir_record_free(&rec);
	verified_cert(&tls, "emailAddress=olga@example.com,CN=olga", "CN=Some CA");
	assert_int_equal(dir_certmap(d, &tls, &rec), DIR_FOUND);
	assert_string_equal(dir_remote_mailhost(d, rec), "other.example");
	dir_record_free(&rec);
	dir_unref(&d);
	certmap_free(&cm);
	dir_users_free(&users);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_dn),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_users_backend),
		cmocka_unit_test(test_users_mailhost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
