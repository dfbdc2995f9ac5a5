/* The `soft` backend: private-key operations with OpenSSL in keyd's own
 * memory, on a small pool of threads (accel_pool.c) so that keyd's event
 * loop never waits for a signature; completions run on the loop thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "accel/accel.h"
#include "accel/accel_pool.h"
#include "common/log.h"
#include "common/xalloc.h"

#define SOFT_MAX_THREADS 256
#define MD_SLOTS 6  /* indexed by enum accel_md */
#define SOFT_STACK_SIZE (512u << 10)

struct soft_job {
	struct accel_pool_job link;  /* first: the pool's view of the job */
	EVP_PKEY *pkey;  /* own reference: the key may be freed while we run */
	struct accel_op op;
	accel_done_fn *done;
	void *arg;
	int status;
	uint8_t sig[ACCEL_MAX_SIG];
	size_t sig_len;
	char why[160];   /* OpenSSL's reason, logged on the loop thread */
};

struct soft {
	struct accel_pool *pool;
	EVP_MD *mds[MD_SLOTS];
};

static void soft_caps(const struct accel_backend *be, struct accel_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->mechs = ACCEL_MECH_BIT(ACCEL_MECH_RSA_PKCS1) | ACCEL_MECH_BIT(ACCEL_MECH_RSA_PSS) |
		      ACCEL_MECH_BIT(ACCEL_MECH_ECDSA);
	caps->rsa_min_bits = 2048;
	caps->rsa_max_bits = 8192;
	caps->ec_p256 = caps->ec_p384 = caps->ec_p521 = true;
	caps->in_process = true;
}

static void job_fail(struct soft_job *job, const char *what)
{
	unsigned long err = ERR_peek_last_error();
	char reason[120] = "no OpenSSL reason";

	if (err != 0)
		ERR_error_string_n(err, reason, sizeof(reason));
	snprintf(job->why, sizeof(job->why), "%s: %s", what, reason);
	ERR_clear_error();
	job->status = ACCEL_ERR_FAILED;
}

/* Runs on a pool thread. */
static void soft_sign(struct soft *s, struct soft_job *job)
{
	const struct accel_op *op = &job->op;
	EVP_PKEY_CTX *ctx;
	const EVP_MD *md = op->md < MD_SLOTS ? s->mds[op->md] : NULL;
	const EVP_MD *mgf1 = op->mgf1_md < MD_SLOTS ? s->mds[op->mgf1_md] : NULL;
	size_t len = sizeof(job->sig);

	job->status = ACCEL_OK;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, job->pkey, NULL);
	if (ctx == NULL || md == NULL) {
		job_fail(job, "EVP_PKEY_CTX_new_from_pkey");
		EVP_PKEY_CTX_free(ctx);
		return;
	}
	if (EVP_PKEY_sign_init(ctx) <= 0) {
		job_fail(job, "EVP_PKEY_sign_init");
		goto out;
	}
	switch (op->mech) {
	case ACCEL_MECH_RSA_PKCS1:
		/* with the md set, OpenSSL builds the DigestInfo (RFC 8017 9.2) */
		if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0) {
			job_fail(job, "RSA PKCS#1 parameters");
			goto out;
		}
		break;
	case ACCEL_MECH_RSA_PSS:
		if (mgf1 == NULL || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf1) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)op->saltlen) <= 0) {
			job_fail(job, "RSA-PSS parameters");
			goto out;
		}
		break;
	case ACCEL_MECH_ECDSA:
		if (EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0) {
			job_fail(job, "ECDSA parameters");
			goto out;
		}
		break;
	default:
		snprintf(job->why, sizeof(job->why), "mechanism %u", op->mech);
		job->status = ACCEL_ERR_UNSUPPORTED;
		goto out;
	}
	if (EVP_PKEY_sign(ctx, job->sig, &len, op->digest, op->digest_len) <= 0) {
		job_fail(job, "EVP_PKEY_sign");
		goto out;
	}
	job->sig_len = len;
out:
	EVP_PKEY_CTX_free(ctx);
}

static void soft_run(void *ctx, struct accel_pool_job *pj)
{
	soft_sign(ctx, (struct soft_job *)pj);
}

static void job_free(struct soft_job *job)
{
	EVP_PKEY_free(job->pkey);
	sp_free_secret(job, sizeof(*job));  /* the digest and signature are not secret, but cheap */
}

static void soft_deliver(void *ctx, struct accel_pool_job *pj)
{
	struct soft_job *job = (struct soft_job *)pj;

	if (job->status != ACCEL_OK)
		sp_log(SP_LOG_WARN, "soft_sign_failed", "mech=%u error=\"%s\"", job->op.mech, job->why);
	job->done(job->arg, job->status, job->sig, job->sig_len);
	job_free(job);
}

static void soft_discard(void *ctx, struct accel_pool_job *pj)
{
	job_free((struct soft_job *)pj);
}

static int soft_submit(struct accel_backend *be, void *bkey, const struct accel_op *op,
		       accel_done_fn *done, void *arg)
{
	struct soft *s = be->priv;
	struct soft_job *job = sp_xcalloc(1, sizeof(*job));

	job->pkey = bkey;
	EVP_PKEY_up_ref(job->pkey);
	job->op = *op;
	job->done = done;
	job->arg = arg;
	if (accel_pool_submit(s->pool, &job->link) < 0) {
		job_free(job);
		return -1;
	}
	return 0;
}

static int soft_completion_fd(const struct accel_backend *be)
{
	const struct soft *s = be->priv;

	return accel_pool_fd(s->pool);
}

static void soft_poll(struct accel_backend *be)
{
	struct soft *s = be->priv;

	accel_pool_poll(s->pool);
}

static bool soft_healthy(const struct accel_backend *be)
{
	return true;
}

static void soft_key_free(struct accel_backend *be, void *bkey)
{
	EVP_PKEY_free(bkey);
}

static void soft_state_free(struct soft *s)
{
	accel_pool_free(&s->pool);
	for (size_t i = 0; i < MD_SLOTS; i++)
		EVP_MD_free(s->mds[i]);
	free(s);
}

static void soft_free(struct accel_backend *be)
{
	if (be == NULL)
		return;
	soft_state_free(be->priv);
	free(be);
}

static const struct accel_backend_ops soft_ops = {
	.name = "soft",
	.caps = soft_caps,
	.submit = soft_submit,
	.completion_fd = soft_completion_fd,
	.poll = soft_poll,
	.healthy = soft_healthy,
	.key_free = soft_key_free,
	.free = soft_free,
};

void *accel_soft_key(EVP_PKEY *pkey)
{
	if (EVP_PKEY_up_ref(pkey) != 1)
		return NULL;
	return pkey;
}

struct accel_backend *accel_soft_new(unsigned threads, size_t max_queue, char **error_r)
{
	struct accel_backend *be;
	struct soft *s;

	if (threads == 0) {
		long n = accel_usable_cpus();

		threads = (unsigned)n;
	}
	if (threads > SOFT_MAX_THREADS) {
		*error_r = sp_xasprintf("soft backend: %u threads, at most %d", threads,
					SOFT_MAX_THREADS);
		return NULL;
	}
	if (max_queue == 0)
		max_queue = 1;
	s = sp_xcalloc(1, sizeof(*s));
	for (int md = ACCEL_MD_SHA1; md <= ACCEL_MD_SHA512; md++) {
		s->mds[md] = EVP_MD_fetch(NULL, accel_md_name(md), NULL);
		if (s->mds[md] == NULL) {
			*error_r = sp_xasprintf("soft backend: OpenSSL has no %s", accel_md_name(md));
			soft_state_free(s);
			return NULL;
		}
	}
	/* small stacks: a signature needs little, and keyd locks its memory */
	s->pool = accel_pool_new("soft backend", threads, max_queue, SOFT_STACK_SIZE, soft_run,
				 soft_deliver, soft_discard, s, error_r);
	if (s->pool == NULL) {
		soft_state_free(s);
		return NULL;
	}
	be = sp_xcalloc(1, sizeof(*be));
	be->ops = &soft_ops;
	be->priv = s;
	return be;
}
