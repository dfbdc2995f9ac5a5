/* pkcs11/ against real SoftHSM2 tokens made in a temp dir: module list,
 * login (PIN file, wrong PIN, missing PIN), key generation and import, find
 * by label and id (ambiguity is an error), every sign mechanism verified
 * with OpenSSL, 8 threads x 50 signatures through the session pool. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "certdb/certdb.h"
#include "common/log.h"
#include "pkcs11/pkcs11.h"

#define SOFTHSM "/usr/lib/softhsm/libsofthsm2.so"
#define TOKEN "SP Test"
#define TOKEN2 "SP Other"
#define PIN "7654321"

static char dir[64];
static struct p11_ctx *ctx;
static struct p11_token *tok;
static struct sp_pinfile *pins;

static char *path_in(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(text, f);
	fclose(f);
	return chmod(path, mode);
}

static int group_setup(void **state)
{
	char cmd[512], conf[300], *err = NULL;
	struct p11_ctx_settings set = { NULL, false, 8 };

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sp-p11-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	mkdir(path_in("tokens"), 0700);
	snprintf(conf, sizeof(conf), "directories.tokendir = %s\nobjectstore.backend = file\n",
		 path_in("tokens"));
	write_file(path_in("softhsm2.conf"), conf, 0600);
	setenv("SOFTHSM2_CONF", path_in("softhsm2.conf"), 1);
	snprintf(cmd, sizeof(cmd),
		 "softhsm2-util --init-token --free --label '" TOKEN "' --so-pin 1234567 "
		 "--pin " PIN " >/dev/null && softhsm2-util --init-token --free --label '"
		 TOKEN2 "' --so-pin 1234567 --pin 1111111 >/dev/null");
	if (system(cmd) != 0)
		return -1;
	write_file(path_in("sslpassword.conf"), TOKEN ":" PIN "\n" TOKEN2 ":9999999\n", 0600);
	write_file(path_in("pkcs11-modules.conf"), "# test\nsofthsm = " SOFTHSM "\n", 0644);
	sp_log_open("test_p11_token", NULL, SP_LOG_WARN, &err);
	pins = sp_pinfile_load(path_in("sslpassword.conf"), &err);
	if (pins == NULL) {
		fprintf(stderr, "pinfile: %s\n", err);
		return -1;
	}
	set.modules_file = path_in("pkcs11-modules.conf");
	ctx = p11_ctx_new(&set, &err);
	if (ctx == NULL) {
		fprintf(stderr, "ctx: %s\n", err);
		return -1;
	}
	tok = p11_token_open(ctx, TOKEN, pins, &err);
	if (tok == NULL) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_module_list_loaded(void **state)
{
	(void)state;
	assert_int_equal(p11_ctx_module_count(ctx), 1);
	assert_string_equal(p11_module_name(p11_ctx_module_at(ctx, 0)), "softhsm");
	assert_string_equal(p11_token_label(tok), TOKEN);
	assert_int_equal(p11_token_pool_size(tok), 8);
}

static void test_slots_listed(void **state)
{
	struct p11_slot_info *slots;
	size_t n, i, labelled = 0;
	char *err = NULL;

	(void)state;
	assert_int_equal(p11_ctx_slots(ctx, &slots, &n, &err), 0);
	for (i = 0; i < n; i++)
		if (slots[i].token_present && (strcmp(slots[i].label, TOKEN) == 0 ||
					       strcmp(slots[i].label, TOKEN2) == 0))
			labelled++;
	assert_int_equal(labelled, 2);
	free(slots);
}

static void test_wrong_pin_is_clear_error(void **state)
{
	struct p11_token *t;
	char *err = NULL;

	(void)state;
	t = p11_token_open(ctx, TOKEN2, pins, &err);
	assert_null(t);
	assert_non_null(strstr(err, "CKR_PIN_INCORRECT"));
	assert_non_null(strstr(err, "not retried"));
	free(err);
}

static void test_missing_pin_and_unknown_token(void **state)
{
	struct sp_pinfile *other;
	struct p11_token *t;
	char *err = NULL;

	(void)state;
	write_file(path_in("nopin.conf"), "Some Token:123456\n", 0600);
	other = sp_pinfile_load(path_in("nopin.conf"), &err);
	assert_non_null(other);
	t = p11_token_open(ctx, TOKEN, other, &err);
	assert_null(t);
	assert_non_null(strstr(err, "no PIN"));
	free(err);
	sp_pinfile_free(&other);
	t = p11_token_open(ctx, "No Such Token", NULL, &err);
	assert_null(t);
	assert_non_null(strstr(err, "no token"));
	free(err);
}

static void test_pinfile_0644_refused(void **state)
{
	struct sp_pinfile *pf;
	char *err = NULL;

	(void)state;
	write_file(path_in("open.conf"), TOKEN ":" PIN "\n", 0644);
	pf = sp_pinfile_load(path_in("open.conf"), &err);
	assert_null(pf);
	assert_non_null(strstr(err, "refused"));
	free(err);
}

static void test_token_by_uri(void **state)
{
	struct p11_token *t;
	char *err = NULL;

	(void)state;
	t = p11_token_open(ctx, "pkcs11:token=SP%20Test;object=whatever", NULL, &err);
	assert_non_null(t);
	assert_string_equal(p11_token_label(t), TOKEN);
	p11_token_close(&t);
}

/* ---- verification with OpenSSL ---- */

static int md_of(int nid, const EVP_MD **md)
{
	*md = EVP_get_digestbynid(nid);
	return *md != NULL ? 0 : -1;
}

static void digest(int nid, const char *msg, unsigned char *out, size_t *len)
{
	const EVP_MD *md;
	unsigned int n = 0;

	assert_int_equal(md_of(nid, &md), 0);
	assert_int_equal(EVP_Digest(msg, strlen(msg), out, &n, md, NULL), 1);
	*len = n;
}

static int verify(EVP_PKEY *pub, enum p11_sign_scheme scheme, int nid, const unsigned char *dg,
		  size_t dlen, const unsigned char *sig, size_t siglen)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(pub, NULL);
	const EVP_MD *md;
	int ok;

	md_of(nid, &md);
	assert_int_equal(EVP_PKEY_verify_init(pc), 1);
	if (scheme == P11_SIGN_RSA_PKCS1)
		EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING);
	if (scheme == P11_SIGN_RSA_PSS) {
		EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST);
	}
	EVP_PKEY_CTX_set_signature_md(pc, md);
	ok = EVP_PKEY_verify(pc, sig, siglen, dg, dlen);
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static void sign_and_verify(struct p11_key *key, EVP_PKEY *pub, enum p11_sign_scheme scheme,
			    int nid)
{
	unsigned char dg[64], sig[1024];
	size_t dlen, siglen = sizeof(sig);
	char *err = NULL;

	digest(nid, "Sealpost signs this", dg, &dlen);
	if (p11_sign(key, scheme, nid, -1, dg, dlen, sig, &siglen, 5000, &err) != 0)
		fail_msg("sign scheme %d %s: %s", (int)scheme, OBJ_nid2sn(nid), err);
	assert_true(siglen <= p11_sign_max_len(key));
	assert_int_equal(verify(pub, scheme, nid, dg, dlen, sig, siglen), 1);
	/* a different digest must not verify */
	dg[0] ^= 1;
	assert_int_not_equal(verify(pub, scheme, nid, dg, dlen, sig, siglen), 1);
}

static struct p11_key *gen(enum p11_keygen_type type, const char *label)
{
	char *err = NULL;
	struct p11_key *key = p11_keygen(tok, type, label, &err);

	if (key == NULL)
		fail_msg("keygen %s: %s", label, err);
	return key;
}

static void check_protected(struct p11_key *key)
{
	struct p11_key_attrs a;
	char *err = NULL;

	assert_int_equal(p11_key_attributes(key, &a, &err), 0);
	assert_true(a.token);
	assert_true(a.private_);
	assert_true(a.sensitive);
	assert_false(a.extractable);
	assert_true(a.sign);
}

static void test_rsa_generate_find_sign(void **state)
{
	struct p11_key *key = gen(P11_KEYGEN_RSA2048, "rsa-key"), *byid, *bylabel;
	const unsigned char *id;
	size_t idlen;
	char *err = NULL;

	(void)state;
	assert_int_equal(p11_key_type(key), P11_KEY_RSA);
	assert_int_equal(p11_key_bits(key), 2048);
	check_protected(key);
	id = p11_key_id(key, &idlen);
	assert_int_equal(idlen, 20);
	bylabel = p11_key_find(tok, "rsa-key", NULL, 0, &err);
	assert_non_null(bylabel);
	byid = p11_key_find(tok, NULL, id, idlen, &err);
	assert_non_null(byid);
	assert_int_equal(p11_key_handle(byid), p11_key_handle(key));
	assert_int_equal(EVP_PKEY_eq(p11_key_public(bylabel), p11_key_public(key)), 1);
	sign_and_verify(bylabel, p11_key_public(key), P11_SIGN_RSA_PKCS1, NID_sha1);
	sign_and_verify(bylabel, p11_key_public(key), P11_SIGN_RSA_PKCS1, NID_sha224);
	sign_and_verify(bylabel, p11_key_public(key), P11_SIGN_RSA_PKCS1, NID_sha256);
	sign_and_verify(bylabel, p11_key_public(key), P11_SIGN_RSA_PKCS1, NID_sha384);
	sign_and_verify(bylabel, p11_key_public(key), P11_SIGN_RSA_PKCS1, NID_sha512);
	sign_and_verify(byid, p11_key_public(key), P11_SIGN_RSA_PSS, NID_sha256);
	sign_and_verify(byid, p11_key_public(key), P11_SIGN_RSA_PSS, NID_sha384);
	/* an existing label is refused */
	assert_null(p11_keygen(tok, P11_KEYGEN_RSA2048, "rsa-key", &err));
	assert_non_null(strstr(err, "already has"));
	free(err);
	p11_key_free(&bylabel);
	p11_key_free(&byid);
	p11_key_free(&key);
}

static void test_ec_generate_find_sign(void **state)
{
	struct p11_key *k256 = gen(P11_KEYGEN_EC_P256, "ec-key");
	struct p11_key *k384 = gen(P11_KEYGEN_EC_P384, "ec384-key"), *found;
	unsigned char dg[32], sig[16];
	size_t siglen = sizeof(sig);
	char *err = NULL;

	(void)state;
	assert_int_equal(p11_key_type(k256), P11_KEY_EC);
	assert_int_equal(p11_key_bits(k256), 256);
	assert_int_equal(p11_key_bits(k384), 384);
	check_protected(k256);
	found = p11_key_find(tok, "ec-key", NULL, 0, &err);
	assert_non_null(found);
	sign_and_verify(found, p11_key_public(k256), P11_SIGN_ECDSA, NID_sha256);
	sign_and_verify(k384, p11_key_public(k384), P11_SIGN_ECDSA, NID_sha384);
	/* wrong scheme for the key type, short buffer: errors, not crashes */
	memset(dg, 0, sizeof(dg));
	assert_int_equal(p11_sign(found, P11_SIGN_RSA_PKCS1, NID_sha256, -1, dg, 32, sig,
				  &siglen, 1000, &err), -1);
	free(err);
	assert_int_equal(p11_sign(found, P11_SIGN_ECDSA, NID_sha256, -1, dg, 32, sig, &siglen,
				  1000, &err), -1);
	free(err);
	p11_key_free(&found);
	p11_key_free(&k256);
	p11_key_free(&k384);
}

static void test_ambiguous_label_is_error(void **state)
{
	struct p11_key *key = gen(P11_KEYGEN_EC_P256, "twice"), *again;
	CK_FUNCTION_LIST *fn = p11_token_functions(tok);
	CK_OBJECT_HANDLE copy;
	CK_SESSION_HANDLE s;
	CK_ATTRIBUTE same_label = { CKA_LABEL, (void *)"twice", 5 };
	char *err = NULL;

	(void)state;
	assert_int_equal(p11_session_get(tok, 1000, &s, &err), 0);
	assert_int_equal(fn->C_CopyObject(s, p11_key_handle(key), &same_label, 1, &copy), CKR_OK);
	p11_session_put(tok, s, false);
	again = p11_key_find(tok, "twice", NULL, 0, &err);
	assert_null(again);
	assert_non_null(strstr(err, "2 private keys match"));
	free(err);
	assert_null(p11_key_find(tok, "nobody", NULL, 0, &err));
	assert_non_null(strstr(err, "no private key"));
	free(err);
	p11_key_free(&key);
}

static X509 *self_signed(EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"mail.test", -1,
				   -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pkey);
	X509_sign(x, pkey, EVP_sha256());
	X509_NAME_free(n);
	return x;
}

static void test_import_key_and_cert(void **state)
{
	EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
	struct p11_key *krsa, *kec;
	const unsigned char *id;
	X509 *cert, *back = NULL;
	size_t idlen;
	char *err = NULL;

	(void)state;
	krsa = p11_key_import(tok, rsa, "imported-rsa", NULL, 0, &err);
	if (krsa == NULL)
		fail_msg("import rsa: %s", err);
	kec = p11_key_import(tok, ec, "imported-ec", NULL, 0, &err);
	if (kec == NULL)
		fail_msg("import ec: %s", err);
	check_protected(krsa);
	check_protected(kec);
	assert_int_equal(EVP_PKEY_eq(p11_key_public(krsa), rsa), 1);
	assert_int_equal(EVP_PKEY_eq(p11_key_public(kec), ec), 1);
	sign_and_verify(krsa, rsa, P11_SIGN_RSA_PKCS1, NID_sha256);
	sign_and_verify(krsa, rsa, P11_SIGN_RSA_PSS, NID_sha256);
	sign_and_verify(kec, ec, P11_SIGN_ECDSA, NID_sha256);

	cert = self_signed(ec);
	if (p11_cert_import(tok, cert, "imported-ec", NULL, 0, &err) != 0)
		fail_msg("cert import: %s", err);
	assert_int_equal(p11_cert_find(tok, "imported-ec", NULL, 0, &back, &err), 0);
	assert_int_equal(X509_cmp(cert, back), 0);
	X509_free(back);
	/* the cert's default id is its key's id, so the pair is found together */
	id = p11_key_id(kec, &idlen);
	assert_int_equal(p11_cert_find(tok, NULL, id, idlen, &back, &err), 0);
	X509_free(back);
	X509_free(cert);
	p11_key_free(&krsa);
	p11_key_free(&kec);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
}

static void test_mechanisms(void **state)
{
	struct p11_mech_info *m;
	size_t n, i;
	bool rsa = false, pss = false, ecdsa = false;
	char *err = NULL;

	(void)state;
	assert_int_equal(p11_token_mechanisms(tok, &m, &n, &err), 0);
	for (i = 0; i < n; i++) {
		rsa |= m[i].type == CKM_RSA_PKCS && (m[i].flags & CKF_SIGN);
		pss |= m[i].type == CKM_RSA_PKCS_PSS;
		ecdsa |= m[i].type == CKM_ECDSA && m[i].name != NULL &&
			 strcmp(m[i].name, "CKM_ECDSA") == 0;
	}
	assert_true(rsa && pss && ecdsa);
	free(m);
}

static void test_labels_seen_by_pkcs11_tool(void **state)
{
	int rc;

	(void)state;
	if (system("command -v pkcs11-tool >/dev/null 2>&1") != 0)
		skip();
	rc = system("pkcs11-tool --module " SOFTHSM " --token-label '" TOKEN "' --list-objects "
		    "2>/dev/null | grep -q 'label: *rsa-key'");
	assert_int_equal(rc, 0);
}

struct worker {
	struct p11_key *key;
	EVP_PKEY *pub;
	enum p11_sign_scheme scheme;
	int failures;
};

static void *sign_loop(void *arg)
{
	struct worker *w = arg;
	unsigned char dg[32], sig[512];
	int i;

	for (i = 0; i < 50; i++) {
		size_t siglen = sizeof(sig);
		char *err = NULL;

		memset(dg, i, sizeof(dg));
		if (p11_sign(w->key, w->scheme, NID_sha256, -1, dg, sizeof(dg), sig, &siglen,
			     10000, &err) != 0) {
			fprintf(stderr, "sign: %s\n", err);
			free(err);
			w->failures++;
		} else if (i % 10 == 0 && verify(w->pub, w->scheme, NID_sha256, dg, sizeof(dg),
						  sig, siglen) != 1) {
			w->failures++;
		}
	}
	return NULL;
}

static void test_eight_threads_through_pool(void **state)
{
	struct p11_key *ec = p11_key_find(tok, "ec-key", NULL, 0, NULL);
	struct p11_key *rsa = p11_key_find(tok, "rsa-key", NULL, 0, NULL);
	struct worker w[8];
	pthread_t th[8];
	int i;

	(void)state;
	assert_non_null(ec);
	assert_non_null(rsa);
	for (i = 0; i < 8; i++) {
		w[i].key = i % 2 ? ec : rsa;
		w[i].pub = p11_key_public(w[i].key);
		w[i].scheme = i % 2 ? P11_SIGN_ECDSA : (i % 4 ? P11_SIGN_RSA_PSS : P11_SIGN_RSA_PKCS1);
		w[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, sign_loop, &w[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	p11_key_free(&ec);
	p11_key_free(&rsa);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_module_list_loaded),
		cmocka_unit_test(test_slots_listed),
		cmocka_unit_test(test_wrong_pin_is_clear_error),
		cmocka_unit_test(test_missing_pin_and_unknown_token),
		cmocka_unit_test(test_pinfile_0644_refused),
		cmocka_unit_test(test_token_by_uri),
		cmocka_unit_test(test_rsa_generate_find_sign),
		cmocka_unit_test(test_ec_generate_find_sign),
		cmocka_unit_test(test_ambiguous_label_is_error),
		cmocka_unit_test(test_import_key_and_cert),
		cmocka_unit_test(test_mechanisms),
		cmocka_unit_test(test_labels_seen_by_pkcs11_tool),
		cmocka_unit_test(test_eight_threads_through_pool),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
