/* Dropping root: the daemons bind their ports as root, give the unix sockets
 * their unprivileged peers connect to to `user`/`group`, then switch to that
 * user for good (with a check that root cannot be regained). */
#ifndef SP_PRIVS_H
#define SP_PRIVS_H

#include <sys/types.h>

/* The uid/gid for user and group (group NULL = the user's primary group).
 * When not running as root, or user is NULL, they are the current ones: no
 * switch will happen. Returns 0, or -1 with *error_r (caller frees). */
int sp_privs_resolve(const char *user, const char *group, uid_t *uid_r, gid_t *gid_r,
		     char **error_r);

/* Gives path (a socket or file made while root) to uid/gid, when running as
 * root. Returns 0, or -1 with *error_r. */
int sp_privs_chown(const char *path, uid_t uid, gid_t gid, char **error_r);

/* Switches for good to uid/gid (supplementary groups = gid only) when running
 * as root; uid 0 only logs a warning (user = root, as tests use). Returns 0,
 * or -1 with *error_r; a process that cannot drop must not go on. */
int sp_privs_drop(const char *progname, const char *user, uid_t uid, gid_t gid, char **error_r);

#endif
