/* The session pool of a token: each operation borrows a session of its own
 * (SoftHSM2 2.6.1 has crashed when threads shared one), waits when all are
 * busy, and gives it back. A token that refuses more sessions
 * (CKR_SESSION_COUNT) gets a smaller pool, said in the log. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "pkcs11/p11_int.h"

CK_FLAGS p11_session_flags(void)
{
	/* read/write: keygen and import go through the same pool */
	return CKF_SERIAL_SESSION | CKF_RW_SESSION;
}

int p11_pool_open(struct p11_token *tok, unsigned want, CK_SESSION_HANDLE first,
		  char **error_r)
{
	unsigned i;

	if (want == 0)
		want = 1;
	tok->all = sp_xcalloc(want, sizeof(CK_SESSION_HANDLE));
	tok->free_sess = sp_xcalloc(want, sizeof(CK_SESSION_HANDLE));
	tok->all[0] = first;
	tok->size = 1;
	for (i = 1; i < want; i++) {
		CK_SESSION_HANDLE s;
		CK_RV rv = tok->fn->C_OpenSession(tok->slot, p11_session_flags(), NULL, NULL, &s);

		if (rv == CKR_SESSION_COUNT || rv == CKR_SESSION_PARALLEL_NOT_SUPPORTED) {
			sp_log(SP_LOG_WARN, "p11_pool_shrunk",
			       "token=\"%s\" wanted=%u sessions=%u reason=\"%s\"", tok->label,
			       want, tok->size, p11_strerror(rv));
			break;
		}
		if (rv != CKR_OK) {
			char *what = sp_xasprintf("token \"%s\": C_OpenSession (session %u of %u)",
						  tok->label, i + 1, want);
			*error_r = p11_error(rv, what);
			free(what);
			p11_pool_close(tok);
			return -1;
		}
		tok->all[tok->size++] = s;
	}
	for (i = 0; i < tok->size; i++)
		tok->free_sess[i] = tok->all[i];
	tok->nfree = tok->size;
	sp_log(SP_LOG_INFO, "p11_pool", "token=\"%s\" sessions=%u", tok->label, tok->size);
	return 0;
}

void p11_pool_close(struct p11_token *tok)
{
	unsigned i;

	for (i = 0; i < tok->size; i++)
		(void)tok->fn->C_CloseSession(tok->all[i]);
	free(tok->all);
	free(tok->free_sess);
	tok->all = tok->free_sess = NULL;
	tok->size = tok->nfree = 0;
}

int p11_session_get(struct p11_token *tok, int timeout_ms, CK_SESSION_HANDLE *sess_r,
		    char **error_r)
{
	struct timespec deadline;
	int rc = 0;

	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&tok->lock);
	while (tok->nfree == 0 && tok->size > 0 && rc == 0) {
		if (timeout_ms < 0)
			rc = pthread_cond_wait(&tok->cond, &tok->lock);
		else
			rc = pthread_cond_timedwait(&tok->cond, &tok->lock, &deadline);
	}
	if (tok->nfree == 0) {
		unsigned size = tok->size;
		pthread_mutex_unlock(&tok->lock);
		if (size == 0)
			*error_r = sp_xasprintf("token \"%s\": no session left in its pool",
						tok->label);
		else
			*error_r = sp_xasprintf("token \"%s\": all %u sessions busy for %d ms",
						tok->label, size, timeout_ms);
		return -1;
	}
	*sess_r = tok->free_sess[--tok->nfree];
	pthread_mutex_unlock(&tok->lock);
	return 0;
}

static void pool_forget(struct p11_token *tok, CK_SESSION_HANDLE s)
{
	unsigned i;

	for (i = 0; i < tok->size; i++) {
		if (tok->all[i] == s) {
			tok->all[i] = tok->all[--tok->size];
			return;
		}
	}
}

void p11_session_put(struct p11_token *tok, CK_SESSION_HANDLE sess, bool bad)
{
	CK_SESSION_HANDLE fresh = CK_INVALID_HANDLE;
	CK_RV rv = CKR_OK;

	if (bad) {
		/* Open the replacement before closing the old one: closing the
		 * application's last session would log the token out. */
		rv = tok->fn->C_OpenSession(tok->slot, p11_session_flags(), NULL, NULL, &fresh);
		(void)tok->fn->C_CloseSession(sess);
	}
	pthread_mutex_lock(&tok->lock);
	if (bad) {
		pool_forget(tok, sess);
		if (rv == CKR_OK) {
			tok->all[tok->size++] = fresh;
			sess = fresh;
		} else {
			sp_log(SP_LOG_ERR, "p11_session_lost", "token=\"%s\" sessions=%u error=\"%s\"",
			       tok->label, tok->size, p11_strerror(rv));
			pthread_cond_broadcast(&tok->cond);
			pthread_mutex_unlock(&tok->lock);
			return;
		}
	}
	tok->free_sess[tok->nfree++] = sess;
	pthread_cond_signal(&tok->cond);
	pthread_mutex_unlock(&tok->lock);
}
