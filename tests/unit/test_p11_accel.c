/* accel/accel_pkcs11.c, the keyd backend on a SoftHSM2 token, driven
 * directly (no engine): operations complete through the eventfd and poll,
 * signatures verify, the queue bound answers -1, a PSS request with a
 * different MGF1 hash is ACCEL_ERR_UNSUPPORTED. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "accel/accel_pkcs11.h"
#include "certdb/certdb.h"
#include "common/log.h"

#define SOFTHSM "/usr/lib/softhsm/libsofthsm2.so"

static char dir[64];
static struct p11_ctx *ctx;
static struct p11_token *tok;
static struct sp_pinfile *pins;

struct result {
	int calls, status;
	uint8_t sig[ACCEL_MAX_SIG];
	size_t sig_len;
};

static void done_cb(void *arg, int status, const uint8_t *sig, size_t sig_len)
{
	struct result *r = arg;

	r->calls++;
	r->status = status;
	memcpy(r->sig, sig, sig_len);
	r->sig_len = sig_len;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
}

static int setup(void **state)
{
	struct p11_ctx_settings set = { NULL, false, 4 };
	char buf[300], conf[400], *err = NULL;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sp-p11a-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(buf, sizeof(buf), "%s/tokens", dir);
	mkdir(buf, 0700);
	snprintf(conf, sizeof(conf), "directories.tokendir = %s\n", buf);
	snprintf(buf, sizeof(buf), "%s/softhsm2.conf", dir);
	write_file(buf, conf);
	setenv("SOFTHSM2_CONF", buf, 1);
	if (system("softhsm2-util --init-token --free --label Accel --so-pin 1234567 --pin 123456 "
		   ">/dev/null") != 0)
		return -1;
	snprintf(buf, sizeof(buf), "%s/sslpassword.conf", dir);
	write_file(buf, "Accel:123456\n");
	sp_log_open("test_p11_accel", NULL, SP_LOG_WARN, &err);
	pins = sp_pinfile_load(buf, &err);
	ctx = p11_ctx_new(&set, &err);
	if (pins == NULL || ctx == NULL || p11_ctx_add_module(ctx, "softhsm", SOFTHSM, &err) < 0)
		return -1;
	tok = p11_token_open(ctx, "Accel", pins, &err);
	return tok != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void wait_all(struct accel_backend *be, struct result *r, int n)
{
	int i, pending = n, rounds = 0;
	struct pollfd pfd = { be->ops->completion_fd(be), POLLIN, 0 };

	while (pending > 0 && rounds++ < 1000) {
		assert_true(poll(&pfd, 1, 10000) > 0);
		be->ops->poll(be);
		for (i = 0, pending = 0; i < n; i++)
			pending += r[i].calls == 0;
	}
	for (i = 0; i < n; i++)
		assert_int_equal(r[i].calls, 1);
}

static int verify(EVP_PKEY *pub, int pss, const uint8_t *dg, const uint8_t *sig, size_t len)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(pub, NULL);
	int ok;

	EVP_PKEY_verify_init(pc);
	if (EVP_PKEY_is_a(pub, "RSA")) {
		EVP_PKEY_CTX_set_rsa_padding(pc, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING);
		if (pss)
			EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST);
	}
	EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256());
	ok = EVP_PKEY_verify(pc, sig, len, dg, 32);
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static void test_backend_signs(void **state)
{
	struct p11_key *ec = p11_keygen(tok, P11_KEYGEN_EC_P256, "acc-ec", NULL);
	struct p11_key *rsa = p11_keygen(tok, P11_KEYGEN_RSA2048, "acc-rsa", NULL);
	EVP_PKEY *ecpub, *rsapub;
	struct accel_backend *be;
	struct result r[30];
	struct accel_op op;
	void *kec, *krsa;
	char *err = NULL;
	int i;

	(void)state;
	assert_non_null(ec);
	assert_non_null(rsa);
	ecpub = p11_key_public(ec);
	rsapub = p11_key_public(rsa);
	EVP_PKEY_up_ref(ecpub);
	EVP_PKEY_up_ref(rsapub);
	be = accel_pkcs11_new(tok, 0, 64, &err);
	assert_non_null(be);
	assert_string_equal(be->ops->name, "pkcs11");
	kec = accel_pkcs11_key(ec);
	krsa = accel_pkcs11_key(rsa);
	memset(r, 0, sizeof(r));
	for (i = 0; i < 30; i++) {
		memset(&op, 0, sizeof(op));
		op.mech = i % 3 == 0 ? ACCEL_MECH_ECDSA : i % 3 == 1 ? ACCEL_MECH_RSA_PKCS1
								   : ACCEL_MECH_RSA_PSS;
		op.md = op.mgf1_md = ACCEL_MD_SHA256;
		op.saltlen = 32;
		op.digest_len = 32;
		memset(op.digest, i, 32);
		assert_int_equal(be->ops->submit(be, i % 3 == 0 ? kec : krsa, &op, done_cb, &r[i]), 0);
	}
	wait_all(be, r, 30);
	for (i = 0; i < 30; i++) {
		uint8_t dg[32];

		memset(dg, i, 32);
		assert_int_equal(r[i].status, ACCEL_OK);
		assert_int_equal(verify(i % 3 == 0 ? ecpub : rsapub, i % 3 == 2, dg, r[i].sig,
					r[i].sig_len), 1);
	}
	/* a PSS request whose MGF1 hash differs is refused, not mis-signed */
	memset(&r[0], 0, sizeof(r[0]));
	op.mech = ACCEL_MECH_RSA_PSS;
	op.mgf1_md = ACCEL_MD_SHA1;
	assert_int_equal(be->ops->submit(be, krsa, &op, done_cb, &r[0]), 0);
	wait_all(be, r, 1);
	assert_int_equal(r[0].status, ACCEL_ERR_UNSUPPORTED);
	assert_true(be->ops->healthy(be));
	/* the engine frees keys; here we do it, while the backend still runs */
	be->ops->key_free(be, kec);
	be->ops->key_free(be, krsa);
	be->ops->free(be);
	EVP_PKEY_free(ecpub);
	EVP_PKEY_free(rsapub);
}

static void test_queue_bound(void **state)
{
	struct p11_key *ec = p11_key_find(tok, "acc-ec", NULL, 0, NULL);
	struct accel_backend *be;
	struct result r[2];
	struct accel_op op;
	char *err = NULL;
	void *k;

	(void)state;
	assert_non_null(ec);
	be = accel_pkcs11_new(tok, 1, 1, &err);
	assert_non_null(be);
	k = accel_pkcs11_key(ec);
	memset(&op, 0, sizeof(op));
	memset(r, 0, sizeof(r));
	op.mech = ACCEL_MECH_ECDSA;
	op.md = ACCEL_MD_SHA256;
	op.digest_len = 32;
	assert_int_equal(be->ops->submit(be, k, &op, done_cb, &r[0]), 0);
	assert_int_equal(be->ops->submit(be, k, &op, done_cb, &r[1]), -1);
	wait_all(be, r, 1);
	assert_int_equal(r[0].status, ACCEL_OK);
	be->ops->key_free(be, k);
	be->ops->free(be);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_signs),
		cmocka_unit_test(test_queue_bound),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
