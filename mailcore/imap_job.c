/* The one way an IMAP command's store work (fsyncs, renames, reading
 * message files) leaves the event loop: run it on the store pool with the
 * session suspended, then reply on the loop in command order. A slow disk
 * or a big mailbox stalls only the session that asked. */
#include <stdlib.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/imap_int.h"
#include "mailcore/store_pool.h"

static void job_work(void *arg)
{
	struct imap_job *j = arg;

	j->work(j->s, j->arg);
}

/* On the loop. Every path frees the job; the session is freed here when
 * its connection went away meanwhile, else it goes on reading. */
static void job_done(void *arg)
{
	struct imap_job *j = arg;
	struct imap_session *s = j->s;

	s->job = NULL;
	if (s->gone) {
		j->release(j->arg);
		free(j);
		imap_session_destroy(s);
		return;
	}
	if (imap_session_state(s) != IMAP_ST_LOGOUT)
		j->finish(s, j->arg);
	j->release(j->arg);
	imap_input_consume(s, j->consume);
	free(j);
	imap_close_deferred(s);
	/* commands pipelined behind this one (nothing while a next job runs:
	 * finish may have started one, a FETCH's next message) */
	imap_session_process(s);
	if (s->resume != NULL)
		s->resume(s->resume_arg); /* writes the output; may free s */
}

void imap_run_job(struct imap_session *s, const char *tag, imap_job_fn *work, imap_job_fn *finish,
		  void (*release)(void *arg), void *arg)
{
	struct imap_job *j;

	if (s->env->pool == NULL) {
		work(s, arg);
		finish(s, arg);
		release(arg);
		return;
	}
	j = sp_xcalloc(1, sizeof(*j));
	*j = (struct imap_job){.s = s, .work = work, .finish = finish, .release = release, .arg = arg};
	s->job = j;
	if (store_pool_submit(s->env->pool, job_work, job_done, j) == 0)
		return;
	s->job = NULL;
	free(j);
	if (tag == NULL) {
		/* no command to refuse (a FETCH's next message): do it here */
		work(s, arg);
		finish(s, arg);
		release(arg);
		return;
	}
	sp_log(SP_LOG_WARN, "imap_busy", "client=%s user=%s why=\"store pool queue full\"",
	       s->client_ip, s->user);
	imap_tagged(s, tag, "NO", "[UNAVAILABLE] Server busy, try again later");
	release(arg);
}
