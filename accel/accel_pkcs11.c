/* The `pkcs11` backend: signatures on a PKCS#11 token through pkcs11/, on a
 * pool of worker threads (accel_pool.c) as large as the token's session
 * pool, so that keyd's event loop never waits on the token; completions run
 * on the loop thread (accel.h). Health
 * is the engine's business (accel.c: down after keyd.down_after failures,
 * probed until a test signature succeeds); the backend only counts. */
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/objects.h>

#include "accel/accel_pkcs11.h"
#include "accel/accel_pool.h"
#include "common/log.h"
#include "common/xalloc.h"

#define PK_MAX_THREADS P11_POOL_MAX
#define PK_SESSION_WAIT_MS 30000

/* Shared by the engine's placement and every running job, so key_free
 * during an operation does not pull the key out from under a worker. */
struct pk_key {
	struct p11_key *key;
	atomic_int refs;
};

struct pk_job {
	struct accel_pool_job link;  /* first: the pool's view of the job */
	struct pk_key *key;
	struct accel_op op;
	accel_done_fn *done;
	void *arg;
	int status;
	uint8_t sig[ACCEL_MAX_SIG];
	size_t sig_len;
	char *why;        /* pkcs11/'s message, logged on the loop thread */
};

struct pk {
	struct p11_token *tok;
	struct accel_pool *pool;
};

static void key_unref(struct pk_key *k)
{
	if (k != NULL && atomic_fetch_sub(&k->refs, 1) == 1) {
		p11_key_free(&k->key);
		free(k);
	}
}

static void pk_caps(const struct accel_backend *be, struct accel_caps *caps)
{
	(void)be;
	memset(caps, 0, sizeof(*caps));
	caps->mechs = ACCEL_MECH_BIT(ACCEL_MECH_RSA_PKCS1) | ACCEL_MECH_BIT(ACCEL_MECH_RSA_PSS) |
		      ACCEL_MECH_BIT(ACCEL_MECH_ECDSA);
	caps->rsa_min_bits = 2048;
	caps->rsa_max_bits = 8192;  /* what the token accepts is checked when keys load */
	caps->ec_p256 = caps->ec_p384 = true;
}

static int md_nid(int md)
{
	switch (md) {
	case ACCEL_MD_SHA1: return NID_sha1;
	case ACCEL_MD_SHA224: return NID_sha224;
	case ACCEL_MD_SHA256: return NID_sha256;
	case ACCEL_MD_SHA384: return NID_sha384;
	case ACCEL_MD_SHA512: return NID_sha512;
	default: return NID_undef;
	}
}

/* Runs on a worker thread. */
static void pk_sign(struct pk_job *job)
{
	const struct accel_op *op = &job->op;
	enum p11_sign_scheme scheme;
	int nid = md_nid(op->md), salt = -1;
	size_t len = sizeof(job->sig);

	job->status = ACCEL_ERR_UNSUPPORTED;
	switch (op->mech) {
	case ACCEL_MECH_RSA_PKCS1:
		scheme = P11_SIGN_RSA_PKCS1;
		break;
	case ACCEL_MECH_RSA_PSS:
		/* pkcs11/ signs PSS with MGF1 over the same hash, as TLS 1.3 does */
		if (op->mgf1_md != op->md) {
			job->why = sp_xstrdup("RSA-PSS with an MGF1 hash other than the digest's");
			return;
		}
		scheme = P11_SIGN_RSA_PSS;
		salt = (int)op->saltlen;
		break;
	case ACCEL_MECH_ECDSA:
		scheme = P11_SIGN_ECDSA;
		break;
	default:
		job->why = sp_xasprintf("mechanism %u", op->mech);
		return;
	}
	if (nid == NID_undef) {
		job->why = sp_xasprintf("digest %u", op->md);
		return;
	}
	if (p11_sign(job->key->key, scheme, nid, salt, op->digest, op->digest_len, job->sig, &len,
		     PK_SESSION_WAIT_MS, &job->why) < 0) {
		job->status = ACCEL_ERR_FAILED;
		return;
	}
	job->status = ACCEL_OK;
	job->sig_len = len;
}

static void pk_run(void *ctx, struct accel_pool_job *pj)
{
	pk_sign((struct pk_job *)pj);
}

static void job_free(struct pk_job *job)
{
	key_unref(job->key);
	free(job->why);
	free(job);
}

static void pk_deliver(void *ctx, struct accel_pool_job *pj)
{
	struct pk *p = ctx;
	struct pk_job *job = (struct pk_job *)pj;

	if (job->status != ACCEL_OK)
		sp_log(SP_LOG_WARN, "pkcs11_sign_failed", "token=\"%s\" mech=%u error=\"%s\"",
		       p11_token_label(p->tok), job->op.mech, job->why != NULL ? job->why : "?");
	job->done(job->arg, job->status, job->sig, job->sig_len);
	job_free(job);
}

static void pk_discard(void *ctx, struct accel_pool_job *pj)
{
	job_free((struct pk_job *)pj);
}

static int pk_submit(struct accel_backend *be, void *bkey, const struct accel_op *op,
		     accel_done_fn *done, void *arg)
{
	struct pk *p = be->priv;
	struct pk_key *k = bkey;
	struct pk_job *job = sp_xcalloc(1, sizeof(*job));

	atomic_fetch_add(&k->refs, 1);
	job->key = k;
	job->op = *op;
	job->done = done;
	job->arg = arg;
	if (accel_pool_submit(p->pool, &job->link) < 0) {
		job_free(job);
		return -1;
	}
	return 0;
}

static int pk_completion_fd(const struct accel_backend *be)
{
	const struct pk *p = be->priv;

	return accel_pool_fd(p->pool);
}

static void pk_poll(struct accel_backend *be)
{
	struct pk *p = be->priv;

	accel_pool_poll(p->pool);
}

/* One judge of health: the engine, which sees errors and deadlines alike.
 * A second threshold here would take the backend out of service without the
 * engine knowing, and nothing would probe it back. */
static bool pk_healthy(const struct accel_backend *be)
{
	(void)be;
	return true;
}

static void pk_key_free(struct accel_backend *be, void *bkey)
{
	(void)be;
	key_unref(bkey);
}

static void pk_free(struct accel_backend *be)
{
	struct pk *p;

	if (be == NULL)
		return;
	p = be->priv;
	/* a worker inside C_Sign finishes it first (p11_sign is not cancellable) */
	accel_pool_free(&p->pool);
	free(p);
	free(be);
}

static const struct accel_backend_ops pk_ops = {
	.name = "pkcs11",
	.caps = pk_caps,
	.submit = pk_submit,
	.completion_fd = pk_completion_fd,
	.poll = pk_poll,
	.healthy = pk_healthy,
	.key_free = pk_key_free,
	.free = pk_free,
};

void *accel_pkcs11_key(struct p11_key *key)
{
	struct pk_key *k = sp_xcalloc(1, sizeof(*k));

	k->key = key;
	atomic_init(&k->refs, 1);
	return k;
}

struct accel_backend *accel_pkcs11_new(struct p11_token *tok, unsigned threads,
				       size_t max_queue, char **error_r)
{
	struct accel_backend *be;
	struct pk *p;

	if (threads == 0)
		threads = p11_token_pool_size(tok);
	if (threads == 0 || threads > PK_MAX_THREADS) {
		*error_r = sp_xasprintf("pkcs11 backend: %u threads, want 1..%d", threads,
					PK_MAX_THREADS);
		return NULL;
	}
	if (threads > p11_token_pool_size(tok))
		sp_log(SP_LOG_WARN, "pkcs11_threads", "token=\"%s\" threads=%u sessions=%u "
		       "note=\"extra threads wait for a session\"", p11_token_label(tok), threads,
		       p11_token_pool_size(tok));
	if (max_queue == 0)
		max_queue = 1;
	p = sp_xcalloc(1, sizeof(*p));
	p->tok = tok;
	p->pool = accel_pool_new("pkcs11 backend", threads, max_queue, 0, pk_run, pk_deliver,
				 pk_discard, p, error_r);
	if (p->pool == NULL) {
		free(p);
		return NULL;
	}
	be = sp_xcalloc(1, sizeof(*be));
	be->ops = &pk_ops;
	be->priv = p;
	snprintf(be->label, sizeof(be->label), "pkcs11:%s", p11_token_label(tok));
	sp_log(SP_LOG_INFO, "pkcs11_backend", "token=\"%s\" threads=%u max_queue=%zu",
	       p11_token_label(tok), threads, max_queue);
	return be;
}
