/* Pure parts of pkcs11/: "Token:nickname" names, RFC 7512 URIs (through
 * p11-kit's parser), the module list file, DigestInfo, ECDSA r||s -> DER,
 * and the CKR_* messages. No token needed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/objects.h>

#include "pkcs11/pkcs11.h"

static void test_token_nickname(void **state)
{
	struct p11_name n;
	char *err = NULL;

	(void)state;
	assert_int_equal(p11_name_parse("Sun Metaslot:Server-Cert", &n, &err), 0);
	assert_int_equal(n.kind, P11_NAME_TOKEN);
	assert_string_equal(n.token, "Sun Metaslot");
	assert_string_equal(n.object, "Server-Cert");
	p11_name_clear(&n);
	/* a label may hold ':'; the nickname may not: split at the last one */
	assert_int_equal(p11_name_parse("HSM:A:mail", &n, &err), 0);
	assert_string_equal(n.token, "HSM:A");
	assert_string_equal(n.object, "mail");
	p11_name_clear(&n);
	assert_int_equal(p11_name_parse("Server-Cert", &n, &err), 0);
	assert_int_equal(n.kind, P11_NAME_INTERNAL);
	assert_null(n.token);
	p11_name_clear(&n);
	assert_int_equal(p11_name_parse("Token:", &n, &err), -1);
	free(err);
	assert_int_equal(p11_name_parse(":nick", &n, &err), -1);
	free(err);
	assert_int_equal(p11_name_parse("", &n, &err), -1);
	free(err);
	assert_int_equal(p11_name_parse("0123456789012345678901234567890123:n", &n, &err), -1);
	free(err);
}

static void test_uri(void **state)
{
	struct p11_name n;
	char *err = NULL, *s;

	(void)state;
	assert_int_equal(p11_name_parse("pkcs11:token=SP%20Test;object=mail;id=%01%a2;type=private",
					&n, &err), 0);
	assert_int_equal(n.kind, P11_NAME_URI);
	assert_string_equal(n.token, "SP Test");
	assert_string_equal(n.object, "mail");
	assert_int_equal(n.id_len, 2);
	assert_int_equal(n.id[0], 0x01);
	assert_int_equal(n.id[1], 0xa2);
	p11_name_clear(&n);
	assert_int_equal(p11_name_parse("pkcs11:token=T;object=k?pin-value=1234", &n, &err), -1);
	assert_non_null(strstr(err, "sslpassword.conf"));
	free(err);
	assert_int_equal(p11_name_parse("pkcs11:token=%zz", &n, &err), -1);
	free(err);
	s = p11_uri_format("SP Test", "mail key", (const unsigned char *)"\x01\xa2", 2, "private");
	assert_non_null(s);
	assert_int_equal(p11_name_parse(s, &n, &err), 0);
	assert_string_equal(n.token, "SP Test");
	assert_string_equal(n.object, "mail key");
	assert_int_equal(n.id_len, 2);
	p11_name_clear(&n);
	free(s);
}

static void test_modlist(void **state)
{
	const char *text = "# mine\n  hsm = /opt/hsm/lib.so  \nsofthsm=/usr/lib/softhsm/libsofthsm2.so\n"
			   "disable hsm 3\n\n";
	struct p11_modlist *ml;
	const char *name, *path;
	char file[] = "/tmp/sp-p11-modlist-XXXXXX", *err = NULL;
	int fd;

	(void)state;
	ml = p11_modlist_parse("m.conf", text, strlen(text), &err);
	assert_non_null(ml);
	assert_int_equal(p11_modlist_count(ml), 2);
	p11_modlist_at(ml, 0, &name, &path);
	assert_string_equal(name, "hsm");
	assert_string_equal(path, "/opt/hsm/lib.so");
	assert_true(p11_modlist_slot_disabled(ml, "hsm", 3));
	assert_false(p11_modlist_slot_disabled(ml, "hsm", 4));
	assert_int_equal(p11_modlist_add(ml, "hsm", "/x.so", &err), -1);
	free(err);
	assert_int_equal(p11_modlist_add(ml, "bad name", "/x.so", &err), -1);
	free(err);
	assert_int_equal(p11_modlist_add(ml, "acc", "relative.so", &err), -1);
	free(err);
	assert_int_equal(p11_modlist_add(ml, "acc", "/opt/acc.so", &err), 0);
	assert_int_equal(p11_modlist_disable_slot(ml, "acc", 7, &err), 0);
	assert_int_equal(p11_modlist_enable_slot(ml, "hsm", 3, &err), 0);
	assert_false(p11_modlist_slot_disabled(ml, "hsm", 3));
	assert_int_equal(p11_modlist_remove(ml, "softhsm", &err), 0);
	assert_int_equal(p11_modlist_remove(ml, "softhsm", &err), -1);
	free(err);
	fd = mkstemp(file);
	close(fd);
	assert_int_equal(p11_modlist_save(ml, file, &err), 0);
	p11_modlist_free(&ml);
	ml = p11_modlist_load(file, &err);
	assert_non_null(ml);
	assert_int_equal(p11_modlist_count(ml), 2);
	p11_modlist_at(ml, 1, &name, &path);
	assert_string_equal(name, "acc");
	assert_true(p11_modlist_slot_disabled(ml, "acc", 7));
	p11_modlist_free(&ml);
	unlink(file);
	/* a missing file is an empty list */
	ml = p11_modlist_load("/nonexistent/pkcs11-modules.conf", &err);
	assert_non_null(ml);
	assert_int_equal(p11_modlist_count(ml), 0);
	p11_modlist_free(&ml);
	/* errors name file and line */
	ml = p11_modlist_parse("m.conf", "a = /x.so\ndisable a x\n", 22, &err);
	assert_null(ml);
	assert_non_null(strstr(err, "m.conf:2:"));
	free(err);
	ml = p11_modlist_parse("m.conf", "a = /x.so\na = /y.so\n", 20, &err);
	assert_null(ml);
	assert_non_null(strstr(err, "twice"));
	free(err);
}

static void test_digest_info(void **state)
{
	static const unsigned char sha256_prefix[] = {
		0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
		0x01, 0x05, 0x00, 0x04, 0x20,
	};
	unsigned char dg[64] = { 0 }, *out;
	size_t len;
	char *err = NULL;

	(void)state;
	assert_int_equal(p11_digest_info(NID_sha256, dg, 32, &out, &len, &err), 0);
	assert_int_equal(len, 19 + 32);
	assert_memory_equal(out, sha256_prefix, 19);
	free(out);
	assert_int_equal(p11_digest_info(NID_sha512, dg, 64, &out, &len, &err), 0);
	assert_int_equal(len, 19 + 64);
	free(out);
	assert_int_equal(p11_digest_info(NID_sha1, dg, 20, &out, &len, &err), 0);
	assert_int_equal(len, 15 + 20);
	free(out);
	assert_int_equal(p11_digest_info(NID_sha256, dg, 20, &out, &len, &err), -1);
	free(err);
	assert_int_equal(p11_digest_info(NID_md5, dg, 16, &out, &len, &err), -1);
	free(err);
}

static void test_ecdsa_der_leading_zeros(void **state)
{
	unsigned char raw[64], der[80];
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	size_t len = sizeof(der);
	ECDSA_SIG *sig;
	char *err = NULL;

	(void)state;
	/* r = 00 00 01 ..: leading zeros dropped; s = ff ..: gains a 0x00 */
	memset(raw, 0, 32);
	raw[2] = 0x01;
	raw[31] = 0x7f;
	memset(raw + 32, 0xff, 32);
	assert_int_equal(p11_ecdsa_raw_to_der(raw, 64, der, &len, &err), 0);
	assert_int_equal(der[0], 0x30);
	assert_int_equal(der[2], 0x02);
	assert_int_equal(der[3], 30);       /* r: 30 bytes, no leading zero */
	assert_int_equal(der[4], 0x01);
	assert_int_equal(der[4 + 30], 0x02);
	assert_int_equal(der[5 + 30], 33);  /* s: 0x00 + 32 bytes */
	assert_int_equal(der[6 + 30], 0x00);
	sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	assert_non_null(sig);
	ECDSA_SIG_get0(sig, &r, &s);
	assert_int_equal(BN_num_bytes(r), 30);
	assert_int_equal(BN_num_bytes(s), 32);
	ECDSA_SIG_free(sig);
	len = 10;
	assert_int_equal(p11_ecdsa_raw_to_der(raw, 64, der, &len, &err), -1);
	free(err);
	len = sizeof(der);
	assert_int_equal(p11_ecdsa_raw_to_der(raw, 63, der, &len, &err), -1);
	free(err);
}

static void test_error_messages(void **state)
{
	char *e;

	(void)state;
	assert_non_null(strstr(p11_strerror(CKR_PIN_INCORRECT), "PIN is wrong"));
	assert_non_null(strstr(p11_strerror(CKR_SESSION_COUNT), "CKR_SESSION_COUNT"));
	assert_non_null(strstr(p11_strerror(0x80000123UL), "vendor"));
	assert_non_null(strstr(p11_strerror(0x7777UL), "unknown"));
	e = p11_error(CKR_DEVICE_ERROR, "C_Sign");
	assert_string_equal(e, "C_Sign: CKR_DEVICE_ERROR (the token or device reported an error)");
	free(e);
	assert_string_equal(p11_mech_name(CKM_RSA_PKCS_PSS), "CKM_RSA_PKCS_PSS");
	assert_null(p11_mech_name(0x7fffffffUL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_nickname),
		cmocka_unit_test(test_uri),
		cmocka_unit_test(test_modlist),
		cmocka_unit_test(test_digest_info),
		cmocka_unit_test(test_ecdsa_der_leading_zeros),
		cmocka_unit_test(test_error_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
