/* crypt(3) password checks for IMAP and POP on mailcore's store pool, so a
 * slow hash (yescrypt, bcrypt) or a burst of login attempts never stalls
 * the event loop. work() touches only the job; done() runs on the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "mailcore/imap_pop_auth.h"
#include "mailcore/mailcore.h"
#include "mailcore/store_pool.h"

struct ips_auth_job {
	struct dir_tables *tables;  /* a ref: users stays valid while the job runs */
	const struct dir_users *users;
	char user[320], tag[80], how[32];
	char *pass;
	size_t pass_len;
	int rc;
	const struct dir_user *u;
	ips_auth_done_fn *done;
	void *session;  /* NULL once orphaned */
};

static void auth_work(void *arg)
{
	struct ips_auth_job *j = arg;

	j->rc = dir_users_verify(j->users, j->user, j->pass, j->pass_len, &j->u);
	sp_free_secret(j->pass, j->pass_len + 1);
	j->pass = NULL;
}

static void auth_done(void *arg)
{
	struct ips_auth_job *j = arg;

	if (j->session != NULL)
		j->done(j->session, j->rc == 0 && j->u != NULL ? 0 : -1, j->u, j->user, j->tag, j->how);
	sp_free_secret(j->pass, j->pass_len + 1);
	dir_tables_unref(&j->tables);
	free(j);
}

struct ips_auth_job *ips_auth_start(struct store_pool *pool, struct dir_tables *tables,
				    const struct dir_users *users,
				    const char *user, const char *pass, size_t pass_len,
				    const char *tag, const char *how, ips_auth_done_fn *done,
				    void *session)
{
	struct ips_auth_job *j = sp_xcalloc(1, sizeof(*j));

	j->tables = dir_tables_ref(tables);
	j->users = users;
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->tag, sizeof(j->tag), "%s", tag);
	snprintf(j->how, sizeof(j->how), "%s", how);
	j->pass = sp_xmalloc(pass_len + 1);
	memcpy(j->pass, pass, pass_len);
	j->pass[pass_len] = '\0';
	j->pass_len = pass_len;
	j->done = done;
	j->session = session;
	if (store_pool_submit(pool, auth_work, auth_done, j) < 0) {
		sp_free_secret(j->pass, pass_len + 1);
		dir_tables_unref(&j->tables);
		free(j);
		return NULL;
	}
	return j;
}

void ips_auth_orphan(struct ips_auth_job *j)
{
	if (j != NULL)
		j->session = NULL;
}
