/* Password checks for the IMAP and POP sessions off the event loop
 * (imap_pop_auth.c): crypt(3) runs on mailcore's store pool; the session
 * waits, and the result comes back on the loop. A session that goes away
 * meanwhile orphans its job, which then frees itself. Private to mailcore. */
#ifndef MAILCORE_IMAP_POP_AUTH_H
#define MAILCORE_IMAP_POP_AUTH_H

#include <stddef.h>

struct dir_tables;
struct dir_user;
struct dir_users;
struct store_pool;
struct ips_auth_job;

/* On the loop: rc 0 and u for a good password, else -1. user, tag and how
 * are the job's copies (valid during the call). */
typedef void ips_auth_done_fn(void *session, int rc, const struct dir_user *u, const char *user,
			      const char *tag, const char *how);

/* Submits the check. Returns the job, or NULL when the pool's queue is
 * full (answer with a temporary failure). The password is copied and
 * wiped once checked. tables (may be NULL) is the snapshot users belongs
 * to: the job holds a reference, since it may outlive its session. */
struct ips_auth_job *ips_auth_start(struct store_pool *pool, struct dir_tables *tables,
				    const struct dir_users *users,
				    const char *user, const char *pass, size_t pass_len,
				    const char *tag, const char *how, ips_auth_done_fn *done,
				    void *session);
/* The session is going away: the result will be dropped. */
void ips_auth_orphan(struct ips_auth_job *job);

#endif
