/* The certificate database (certdb/certdb.h): the index parser on good and
 * bad files (errors name the line), lookups by nickname and
 * "Token:nickname", atomic put/remove, certificate + chain loading, and the
 * password file's permission checks and secret handling. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certdb/certdb.h"
#include "certdb/certdb_index.h"

static char dir[64];

static void put_file(const char *rel, const char *text, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static int setup(void **state)
{
	char path[128];

	snprintf(dir, sizeof(dir), "/tmp/certdb-test-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/certs", dir);
	return mkdir(path, 0700);
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---------------- the pure parser ---------------- */

static void parse_ok(const char *text, size_t want)
{
	struct sp_certdb_entry *e = NULL;
	size_t n = 0;
	char *error = NULL;

	if (sp_certdb_index_parse(text, strlen(text), &e, &n, &error) != 0)
		fail_msg("refused a good index: %s", error);
	assert_int_equal(n, want);
	sp_certdb_entries_free(e, n);
}

static void parse_bad(const char *text, const char *want_prefix)
{
	struct sp_certdb_entry *e = NULL;
	size_t n = 0;
	char *error = NULL;

	if (sp_certdb_index_parse(text, strlen(text), &e, &n, &error) == 0)
		fail_msg("accepted a bad index: %s", text);
	assert_non_null(error);
	if (strncmp(error, want_prefix, strlen(want_prefix)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", error, want_prefix);
	free(error);
}

static void test_index_good(void **state)
{
	struct sp_certdb_entry *e = NULL;
	size_t n = 0;
	char *error = NULL;
	const char *text = "# comment\n"
			   "\n"
			   "cert\tServer-Cert\tcerts/a.pem\tfile:keys/a.p8\n"
			   "  # indented comment\n"
			   "cert\tHSM\tcerts/b.pem\tpkcs11:token=Sun%20Metaslot;object=k\r\n"
			   "ca\tRoot CA\tcas/root.pem\tserver,client\n"
			   "ca\tOther\tcas/o.pem\t-";  /* no final LF */

	assert_int_equal(sp_certdb_index_parse(text, strlen(text), &e, &n, &error), 0);
	assert_int_equal(n, 4);
	assert_int_equal(e[0].kind, SP_CERTDB_CERT);
	assert_string_equal(e[0].nickname, "Server-Cert");
	assert_string_equal(e[0].cert_file, "certs/a.pem");
	assert_string_equal(e[0].key_locator, "file:keys/a.p8");
	assert_string_equal(e[1].key_locator, "pkcs11:token=Sun%20Metaslot;object=k");
	assert_int_equal(e[2].kind, SP_CERTDB_CA);
	assert_string_equal(e[2].nickname, "Root CA");
	assert_int_equal(e[2].trust, SP_CERTDB_TRUST_SERVER | SP_CERTDB_TRUST_CLIENT);
	assert_null(e[2].key_locator);
	assert_int_equal(e[3].trust, 0);
	sp_certdb_entries_free(e, n);

	parse_ok("", 0);
	parse_ok("cert\tcaf\xc3\xa9\tc.pem\tfile:k.p8\n", 1);  /* UTF-8 nickname */
	parse_ok("ca\tx\tc.pem\tclient\n", 1);
}

static void test_index_bad(void **state)
{
	char longline[SP_CERTDB_MAX_LINE + 64];

	parse_bad("cert\ta\tc.pem\n", "index:1: 3 fields");
	parse_bad("# x\ncert\ta\tc.pem\tfile:k\textra\n", "index:2: too many fields");
	parse_bad("\n\nkey\ta\tc.pem\tfile:k\n", "index:3: record type");
	parse_bad("cert\t\tc.pem\tfile:k\n", "index:1: nickname");
	parse_bad("cert\ttok:nick\tc.pem\tfile:k\n", "index:1: nickname contains ':'");
	parse_bad("cert\tbad\x01name\tc.pem\tfile:k\n", "index:1: nickname is not printable");
	parse_bad("cert\tbad\xc3(\tc.pem\tfile:k\n", "index:1: nickname is not printable");
	parse_bad("cert\tbad\xc2\x85\tc.pem\tfile:k\n", "index:1: nickname is not printable");
	parse_bad("cert\ta\t/etc/passwd\tfile:k\n", "index:1: cert file");
	parse_bad("cert\ta\tcerts/../../x\tfile:k\n", "index:1: cert file");
	parse_bad("cert\ta\tc.pem\tfile:../k\n", "index:1: key locator file:");
	parse_bad("cert\ta\tc.pem\tfile:\n", "index:1: key locator file:");
	parse_bad("cert\ta\tc.pem\thttp://x\n", "index:1: key locator must start");
	parse_bad("cert\ta\tc.pem\tpkcs11:object=a b\n", "index:1: pkcs11: URI");
	parse_bad("ca\ta\tc.pem\tserver,\n", "index:1: trust list ends");
	parse_bad("ca\ta\tc.pem\teverything\n", "index:1: trust must be");
	parse_bad("ca\ta\tc.pem\t\n", "index:1: empty trust");
	parse_bad("ca\ta\tc.pem\ts\n"
		  "ca\tb\tc.pem\tserver\n", "index:1:");
	parse_bad("ca\ta\tc.pem\tserver\nca\ta\td.pem\tclient\n", "index:2: duplicate nickname");
	{
		static const char nul[] = "ca\ta\tc.pem\tserver\nca\tb\0\tc.pem\tserver\n";
		struct sp_certdb_entry *e;
		size_t n;
		char *error = NULL;

		assert_int_equal(sp_certdb_index_parse(nul, sizeof(nul) - 1, &e, &n, &error), -1);
		assert_string_equal(error, "index:2: NUL byte");
		free(error);
	}
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	parse_bad(longline, "index:1: line longer than");
}

static void test_index_entry_bound(void **state)
{
	size_t cap = (size_t)(SP_CERTDB_MAX_ENTRIES + 1) * 40;
	char *text = malloc(cap);
	size_t len = 0;

	assert_non_null(text);
	for (int i = 0; i <= SP_CERTDB_MAX_ENTRIES; i++)
		len += (size_t)snprintf(text + len, cap - len, "ca\tn%d\tc.pem\tserver\n", i);
	parse_bad(text, "index:4097: more than 4096 entries");
	/* exactly the bound is fine */
	text[len - strlen("ca\tn4096\tc.pem\tserver\n")] = '\0';
	parse_ok(text, SP_CERTDB_MAX_ENTRIES);
	free(text);
}

static void test_format_roundtrip(void **state)
{
	const char *text = "cert\tA\tcerts/a.pem\tfile:keys/a.p8\n"
			   "ca\tB\tcas/b.pem\tserver,client\n"
			   "ca\tC\tcas/c.pem\t-\n"
			   "ca\tD\tcas/d.pem\tclient\n";
	struct sp_certdb_entry *e, *e2;
	size_t n, n2, len;
	char *error = NULL, *out;

	assert_int_equal(sp_certdb_index_parse(text, strlen(text), &e, &n, &error), 0);
	out = sp_certdb_index_format(e, n, &len);
	assert_int_equal(sp_certdb_index_parse(out, len, &e2, &n2, &error), 0);
	assert_int_equal(n2, n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(e[i].nickname, e2[i].nickname);
		assert_int_equal(e[i].trust, e2[i].trust);
	}
	free(out);
	sp_certdb_entries_free(e, n);
	sp_certdb_entries_free(e2, n2);
}

/* ---------------- the db on disk ---------------- */

static void test_open_and_find(void **state)
{
	struct sp_certdb *db;
	char *error = NULL;

	put_file("index",
		 "cert\tServer-Cert\tcerts/a.pem\tfile:keys/a.p8\n"
		 "cert\tHSM-Cert\tcerts/b.pem\tpkcs11:token=Sun%20Metaslot;object=x\n", 0644);
	db = sp_certdb_open(dir, &error);
	assert_non_null(db);
	assert_string_equal(sp_certdb_dir(db), dir);
	assert_int_equal(sp_certdb_count(db), 2);
	assert_non_null(sp_certdb_at(db, 1));
	assert_null(sp_certdb_at(db, 2));
	assert_ptr_equal(sp_certdb_find(db, "Server-Cert"), sp_certdb_at(db, 0));
	assert_ptr_equal(sp_certdb_find(db, "Internal (Software) Token:Server-Cert"),
			 sp_certdb_at(db, 0));
	assert_null(sp_certdb_find(db, "Sun Metaslot:Server-Cert"));
	assert_ptr_equal(sp_certdb_find(db, "Sun Metaslot:HSM-Cert"), sp_certdb_at(db, 1));
	assert_null(sp_certdb_find(db, "Other:HSM-Cert"));
	assert_null(sp_certdb_find(db, "nope"));
	sp_certdb_free(&db);
	assert_null(db);
	sp_certdb_free(&db);  /* NULL is a no-op */

	put_file("index", "cert\tok\tc.pem\tfile:k\nbroken line\n", 0644);
	assert_null(sp_certdb_open(dir, &error));
	assert_non_null(strstr(error, "/index:2: "));
	free(error);
}

static void test_put_remove_atomic(void **state)
{
	struct sp_certdb_entry e = { SP_CERTDB_CA, "Root", "cas/root.pem", NULL,
				     SP_CERTDB_TRUST_CLIENT };
	struct sp_certdb *db, *again;
	char *error = NULL, path[256];
	struct stat st;

	put_file("index", "cert\tA\tcerts/a.pem\tfile:keys/a.p8\n", 0644);
	db = sp_certdb_open(dir, &error);
	assert_non_null(db);
	assert_int_equal(sp_certdb_put(db, &e, &error), 0);
	assert_int_equal(sp_certdb_count(db), 2);
	/* what is on disk is what a fresh open sees */
	again = sp_certdb_open(dir, &error);
	assert_non_null(again);
	assert_int_equal(sp_certdb_count(again), 2);
	assert_int_equal(sp_certdb_find(again, "Root")->trust, SP_CERTDB_TRUST_CLIENT);
	sp_certdb_free(&again);
	/* replace */
	e.trust = SP_CERTDB_TRUST_SERVER;
	assert_int_equal(sp_certdb_put(db, &e, &error), 0);
	assert_int_equal(sp_certdb_count(db), 2);
	assert_int_equal(sp_certdb_find(db, "Root")->trust, SP_CERTDB_TRUST_SERVER);
	/* an invalid entry changes nothing */
	e.nickname = "bad:name";
	assert_int_equal(sp_certdb_put(db, &e, &error), -1);
	free(error);
	error = NULL;
	assert_int_equal(sp_certdb_count(db), 2);
	/* remove */
	assert_int_equal(sp_certdb_remove(db, "A", &error), 0);
	assert_int_equal(sp_certdb_remove(db, "A", &error), -1);
	free(error);
	again = sp_certdb_open(dir, &error);
	assert_non_null(again);
	assert_int_equal(sp_certdb_count(again), 1);
	assert_non_null(sp_certdb_find(again, "Root"));
	sp_certdb_free(&again);
	/* write_file: mode set, directory created, no temp left behind */
	assert_int_equal(sp_certdb_write_file(db, "keys/x.p8", "secret", 6, 0600, &error), 0);
	snprintf(path, sizeof(path), "%s/keys/x.p8", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 6);
	assert_int_equal(sp_certdb_write_file(db, "../escape", "x", 1, 0600, &error), -1);
	free(error);
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "ls -a '%s' '%s/keys' | grep -q '^\\.tmp\\.'", dir, dir);
		assert_int_not_equal(system(cmd), 0);
	}
	sp_certdb_free(&db);
}

static void test_load_cert_chain(void **state)
{
	EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *certs[2], *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	STACK_OF(X509_CRL) *crls = NULL;
	struct sp_certdb *db;
	char *error = NULL, path[256];
	BIO *b;

	assert_non_null(k1);
	for (int i = 0; i < 2; i++) {
		certs[i] = X509_new();
		ASN1_INTEGER_set(X509_get_serialNumber(certs[i]), i + 1);
		X509_gmtime_adj(X509_getm_notBefore(certs[i]), 0);
		X509_gmtime_adj(X509_getm_notAfter(certs[i]), 3600);
		X509_set_pubkey(certs[i], k1);
		assert_true(X509_sign(certs[i], k1, EVP_sha256()) > 0);
	}
	snprintf(path, sizeof(path), "%s/certs/chain.pem", dir);
	b = BIO_new_file(path, "w");
	PEM_write_bio_X509(b, certs[0]);
	PEM_write_bio_X509(b, certs[1]);
	BIO_free(b);
	put_file("certs/junk.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n", 0644);
	put_file("index", "cert\tA\tcerts/chain.pem\tfile:k.p8\n"
			  "cert\tB\tcerts/junk.pem\tfile:k.p8\n"
			  "cert\tC\tcerts/missing.pem\tfile:k.p8\n", 0644);
	db = sp_certdb_open(dir, &error);
	assert_non_null(db);
	assert_int_equal(sp_certdb_load_cert(db, sp_certdb_find(db, "A"), &leaf, &chain, &error), 0);
	assert_int_equal(X509_cmp(leaf, certs[0]), 0);
	assert_int_equal(sk_X509_num(chain), 1);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	assert_int_equal(sp_certdb_load_cert(db, sp_certdb_find(db, "B"), &leaf, NULL, &error), -1);
	free(error);
	assert_int_equal(sp_certdb_load_cert(db, sp_certdb_find(db, "C"), &leaf, NULL, &error), -1);
	assert_non_null(strstr(error, "missing.pem"));
	free(error);
	/* no crls/ directory: no CRLs, no error */
	assert_int_equal(sp_certdb_load_crls(db, &crls, &error), 0);
	assert_int_equal(sk_X509_CRL_num(crls), 0);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	/* an empty crls/ directory (as the tokens CLI makes it): the same.
	 * Regression: this passed qsort a NULL array, which UBSan reports. */
	snprintf(path, sizeof(path), "%s/crls", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	crls = NULL;
	assert_int_equal(sp_certdb_load_crls(db, &crls, &error), 0);
	assert_int_equal(sk_X509_CRL_num(crls), 0);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	sp_certdb_free(&db);
	X509_free(certs[0]);
	X509_free(certs[1]);
	EVP_PKEY_free(k1);
}

/* ---------------- the password file ---------------- */

static void test_pinfile(void **state)
{
	struct sp_pinfile *pf;
	char *error = NULL, path[256], link[256];

	snprintf(path, sizeof(path), "%s/sslpassword.conf", dir);
	put_file("sslpassword.conf",
		 "# pins\n"
		 "Internal (Software) Token:s3cret:with:colons\n"
		 "Sun Metaslot:1234abcd\r\n", 0600);
	pf = sp_pinfile_load(path, &error);
	assert_non_null(pf);
	assert_string_equal(sp_pinfile_get(pf, SP_CERTDB_INTERNAL_TOKEN), "s3cret:with:colons");
	assert_string_equal(sp_pinfile_get(pf, "Sun Metaslot"), "1234abcd");
	assert_null(sp_pinfile_get(pf, "Nope"));
	sp_pinfile_free(&pf);
	assert_null(pf);

	/* group- or world-accessible: refused, with the mode in the message */
	static const mode_t bad_modes[] = { 0640, 0604, 0660, 0644, 0610, 0601 };

	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		assert_int_equal(chmod(path, bad_modes[i]), 0);
		assert_null(sp_pinfile_load(path, &error));
		assert_non_null(strstr(error, "group- or world-accessible"));
		free(error);
	}
	assert_int_equal(chmod(path, 0400), 0);
	pf = sp_pinfile_load(path, &error);
	assert_non_null(pf);
	sp_pinfile_free(&pf);

	/* not a regular file; a symlink; missing */
	assert_null(sp_pinfile_load(dir, &error));
	free(error);
	snprintf(link, sizeof(link), "%s/pinlink", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_null(sp_pinfile_load(link, &error));
	assert_non_null(strstr(error, "symbolic link"));
	free(error);
	snprintf(link, sizeof(link), "%s/absent", dir);
	assert_null(sp_pinfile_load(link, &error));
	free(error);

	/* malformed lines never echo the secret */
	put_file("bad1.conf", "no colon here\n", 0600);
	snprintf(path, sizeof(path), "%s/bad1.conf", dir);
	assert_null(sp_pinfile_load(path, &error));
	assert_non_null(strstr(error, ":1: expected"));
	assert_null(strstr(error, "no colon here"));
	free(error);
	put_file("bad2.conf", "# c\nTok:\n", 0600);
	snprintf(path, sizeof(path), "%s/bad2.conf", dir);
	assert_null(sp_pinfile_load(path, &error));
	assert_non_null(strstr(error, ":2: empty secret"));
	free(error);
	put_file("bad3.conf", "Tok:a1234\nTok:b1234\n", 0600);
	snprintf(path, sizeof(path), "%s/bad3.conf", dir);
	assert_null(sp_pinfile_load(path, &error));
	assert_non_null(strstr(error, ":2: second entry"));
	assert_null(strstr(error, "1234"));
	free(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_good),
		cmocka_unit_test(test_index_bad),
		cmocka_unit_test(test_index_entry_bound),
		cmocka_unit_test(test_format_roundtrip),
		cmocka_unit_test_setup_teardown(test_open_and_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_remove_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_cert_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pinfile, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
