/* The accel engine with its `soft` backend: each mechanism signs on the
 * thread pool, completes on the event loop, and the signature verifies with
 * plain EVP; the engine's checks (unknown key, wrong mechanism, bad digest
 * length, PSS salt bound) and the queue bound (busy). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "accel/accel.h"
#include "accel/keyd_proto.h"

static EVP_PKEY *rsa, *ec;
static uint8_t rsa_id[ACCEL_KEY_ID_LEN], ec_id[ACCEL_KEY_ID_LEN];

struct engine_fixture {
	struct event_base *base;
	struct accel_engine *eng;
};

struct result {
	int calls;
	int status;
	uint8_t sig[ACCEL_MAX_SIG];
	size_t sig_len;
	struct event_base *base;
	int want;  /* loopbreak after this many calls */
	int *counter;
};

static void done_cb(void *arg, int status, const uint8_t *sig, size_t sig_len)
{
	struct result *r = arg;

	r->calls++;
	r->status = status;
	r->sig_len = sig_len;
	if (sig_len > 0)
		memcpy(r->sig, sig, sig_len);
	if (r->counter != NULL && ++*r->counter >= r->want)
		event_base_loopbreak(r->base);
	else if (r->counter == NULL)
		event_base_loopbreak(r->base);
}

static int group_setup(void **state)
{
	rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	if (rsa == NULL || ec == NULL || keyd_key_id(rsa, rsa_id) < 0 || keyd_key_id(ec, ec_id) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	return 0;
}

static struct engine_fixture *fixture_new(unsigned threads, size_t max_queue)
{
	struct engine_fixture *f = calloc(1, sizeof(*f));
	struct accel_backend *soft;
	struct accel_key *k;
	char *error = NULL;

	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->eng = accel_engine_new(f->base);
	soft = accel_soft_new(threads, max_queue, &error);
	assert_non_null(soft);
	assert_int_equal(accel_engine_add_backend(f->eng, soft, &error), 0);
	k = accel_engine_add_key(f->eng, rsa_id, "rsa", ACCEL_KEY_RSA, 2048, &error);
	assert_non_null(k);
	assert_int_equal(accel_key_add_placement(k, soft, accel_soft_key(rsa), &error), 0);
	k = accel_engine_add_key(f->eng, ec_id, "ec", ACCEL_KEY_EC, 384, &error);
	assert_non_null(k);
	assert_int_equal(accel_key_add_placement(k, soft, accel_soft_key(ec), &error), 0);
	/* the same id twice is refused */
	assert_null(accel_engine_add_key(f->eng, ec_id, "again", ACCEL_KEY_EC, 384, &error));
	free(error);
	return f;
}

static void fixture_free(struct engine_fixture *f)
{
	accel_engine_free(&f->eng);
	assert_null(f->eng);
	event_base_free(f->base);
	free(f);
}

static struct accel_op make_op(uint8_t mech, int md, const char *msg, uint8_t *digest_out)
{
	struct accel_op op;
	unsigned int len = 0;
	EVP_MD *evp_md = EVP_MD_fetch(NULL, accel_md_name(md), NULL);

	memset(&op, 0, sizeof(op));
	op.mech = mech;
	op.md = (uint8_t)md;
	assert_non_null(evp_md);
	assert_int_equal(EVP_Digest(msg, strlen(msg), op.digest, &len, evp_md, NULL), 1);
	op.digest_len = len;
	if (digest_out != NULL)
		memcpy(digest_out, op.digest, len);
	EVP_MD_free(evp_md);
	return op;
}

static void run_one(struct engine_fixture *f, const uint8_t *id, const struct accel_op *op,
		    struct result *r)
{
	memset(r, 0, sizeof(*r));
	r->base = f->base;
	assert_int_equal(accel_engine_submit(f->eng, id, op, done_cb, r), ACCEL_OK);
	assert_int_equal(accel_engine_inflight(f->eng), 1);
	while (r->calls == 0)
		assert_true(event_base_loop(f->base, EVLOOP_ONCE) >= 0);
	assert_int_equal(r->calls, 1);
	assert_int_equal(accel_engine_inflight(f->eng), 0);
}

/* Verifies with the public half through plain EVP. */
static void verify(EVP_PKEY *pkey, const struct accel_op *op, const struct result *r)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	EVP_MD *md = EVP_MD_fetch(NULL, accel_md_name(op->md), NULL);

	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, md), 1);
	if (op->mech == ACCEL_MECH_RSA_PSS) {
		EVP_MD *mgf1 = EVP_MD_fetch(NULL, accel_md_name(op->mgf1_md), NULL);

		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf1), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)op->saltlen), 1);
		EVP_MD_free(mgf1);
	} else if (op->mech == ACCEL_MECH_RSA_PKCS1) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
	}
	assert_int_equal(EVP_PKEY_verify(ctx, r->sig, r->sig_len, op->digest, op->digest_len), 1);
	EVP_MD_free(md);
	EVP_PKEY_CTX_free(ctx);
}

static void test_rsa_pkcs1(void **state)
{
	struct engine_fixture *f = fixture_new(2, 16);
	static const int mds[] = { ACCEL_MD_SHA256, ACCEL_MD_SHA384, ACCEL_MD_SHA512, ACCEL_MD_SHA1 };

	for (size_t i = 0; i < sizeof(mds) / sizeof(mds[0]); i++) {
		struct accel_op op = make_op(ACCEL_MECH_RSA_PKCS1, mds[i], "hello", NULL);
		struct result r;

		run_one(f, rsa_id, &op, &r);
		assert_int_equal(r.status, ACCEL_OK);
		assert_int_equal(r.sig_len, 256);
		verify(rsa, &op, &r);
	}
	fixture_free(f);
}

static void test_rsa_pss(void **state)
{
	struct engine_fixture *f = fixture_new(2, 16);
	struct accel_op op = make_op(ACCEL_MECH_RSA_PSS, ACCEL_MD_SHA256, "tls13", NULL);
	struct result r;

	op.mgf1_md = ACCEL_MD_SHA256;
	op.saltlen = 32;  /* TLS 1.3: salt = digest length (RFC 8446 4.2.3) */
	run_one(f, rsa_id, &op, &r);
	assert_int_equal(r.status, ACCEL_OK);
	verify(rsa, &op, &r);

	op = make_op(ACCEL_MECH_RSA_PSS, ACCEL_MD_SHA384, "other", NULL);
	op.mgf1_md = ACCEL_MD_SHA256;
	op.saltlen = 256 - 48 - 2;  /* the largest salt for a 2048-bit key */
	run_one(f, rsa_id, &op, &r);
	assert_int_equal(r.status, ACCEL_OK);
	verify(rsa, &op, &r);

	op.saltlen = 256 - 48 - 1;  /* one too many */
	assert_int_equal(accel_engine_submit(f->eng, rsa_id, &op, done_cb, &r), ACCEL_ERR_UNSUPPORTED);
	fixture_free(f);
}

static void test_ecdsa(void **state)
{
	struct engine_fixture *f = fixture_new(1, 16);
	struct accel_op op = make_op(ACCEL_MECH_ECDSA, ACCEL_MD_SHA384, "ecdsa", NULL);
	struct result r;

	run_one(f, ec_id, &op, &r);
	assert_int_equal(r.status, ACCEL_OK);
	assert_true(r.sig_len > 8 && r.sig[0] == 0x30);  /* DER SEQUENCE */
	verify(ec, &op, &r);
	fixture_free(f);
}

static void test_engine_checks(void **state)
{
	struct engine_fixture *f = fixture_new(1, 16);
	struct accel_op op = make_op(ACCEL_MECH_ECDSA, ACCEL_MD_SHA256, "x", NULL);
	uint8_t unknown[ACCEL_KEY_ID_LEN] = { 0 };
	struct result r;

	memset(&r, 0, sizeof(r));
	assert_int_equal(accel_engine_submit(f->eng, unknown, &op, done_cb, &r), ACCEL_ERR_UNKNOWN_KEY);
	assert_int_equal(accel_engine_submit(f->eng, rsa_id, &op, done_cb, &r), ACCEL_ERR_UNSUPPORTED);
	op.mech = ACCEL_MECH_RSA_PKCS1;
	assert_int_equal(accel_engine_submit(f->eng, ec_id, &op, done_cb, &r), ACCEL_ERR_UNSUPPORTED);
	op.digest_len = 31;
	assert_int_equal(accel_engine_submit(f->eng, rsa_id, &op, done_cb, &r), ACCEL_ERR_UNSUPPORTED);
	op.digest_len = 32;
	op.md = 0;
	assert_int_equal(accel_engine_submit(f->eng, rsa_id, &op, done_cb, &r), ACCEL_ERR_UNSUPPORTED);
	assert_int_equal(r.calls, 0);
	assert_int_equal(accel_engine_inflight(f->eng), 0);
	fixture_free(f);
}

static void test_many_and_busy(void **state)
{
	enum { N = 8 };
	struct engine_fixture *f = fixture_new(2, N);
	struct accel_op op = make_op(ACCEL_MECH_ECDSA, ACCEL_MD_SHA256, "many", NULL);
	struct result r[N + 1];
	int completed = 0;

	for (int i = 0; i < N; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].base = f->base;
		r[i].counter = &completed;
		r[i].want = N;
		assert_int_equal(accel_engine_submit(f->eng, ec_id, &op, done_cb, &r[i]), ACCEL_OK);
	}
	/* the queue bound: completions are only reaped on this thread */
	assert_int_equal(accel_engine_submit(f->eng, ec_id, &op, done_cb, &r[N]), ACCEL_ERR_BUSY);
	while (completed < N)
		assert_true(event_base_loop(f->base, EVLOOP_ONCE) >= 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].status, ACCEL_OK);
		verify(ec, &op, &r[i]);
	}
	/* room again */
	assert_int_equal(accel_engine_inflight(f->eng), 0);
	fixture_free(f);
}

static void test_md_names(void **state)
{
	assert_int_equal(accel_md_from_name("SHA2-256"), ACCEL_MD_SHA256);
	assert_int_equal(accel_md_from_name("sha384"), ACCEL_MD_SHA384);
	assert_int_equal(accel_md_from_name("SHA1"), ACCEL_MD_SHA1);
	assert_int_equal(accel_md_from_name("MD5"), 0);
	assert_int_equal(accel_md_from_name("no-such-digest"), 0);
	assert_int_equal(accel_md_size(ACCEL_MD_SHA512), 64);
	assert_int_equal(accel_md_size(0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_md_names),
		cmocka_unit_test(test_rsa_pkcs1),
		cmocka_unit_test(test_rsa_pss),
		cmocka_unit_test(test_ecdsa),
		cmocka_unit_test(test_engine_checks),
		cmocka_unit_test(test_many_and_busy),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
