/* Privilege drop shared by tlsd's master and mailcore: resolve the configured
 * user and group, hand sockets over, then setgroups/setresgid/setresuid and
 * verify that setuid(0) fails. */
#include "common/privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"

int sp_privs_resolve(const char *user, const char *group, uid_t *uid_r, gid_t *gid_r,
		     char **error_r)
{
	struct passwd *pw;
	struct group *gr;

	*uid_r = geteuid();
	*gid_r = getegid();
	if (geteuid() != 0 || user == NULL)
		return 0;
	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		*error_r = sp_xasprintf("user %s: %s", user, errno ? strerror(errno) : "unknown user");
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	if (group != NULL) {
		errno = 0;
		gr = getgrnam(group);
		if (gr == NULL) {
			*error_r = sp_xasprintf("group %s: %s", group,
						errno ? strerror(errno) : "unknown group");
			return -1;
		}
		*gid_r = gr->gr_gid;
	}
	return 0;
}

int sp_privs_chown(const char *path, uid_t uid, gid_t gid, char **error_r)
{
	if (geteuid() != 0)
		return 0;
	if (chown(path, uid, gid) < 0) {
		*error_r = sp_xasprintf("chown %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int sp_privs_drop(const char *progname, const char *user, uid_t uid, gid_t gid, char **error_r)
{
	if (geteuid() != 0)
		return 0;
	if (uid == 0) {
		sp_log(SP_LOG_WARN, "privileges", "user=%s is root: %s keeps root",
		       user ? user : "-", progname);
		return 0;
	}
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
		*error_r = sp_xasprintf("dropping privileges: %s", strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		*error_r = sp_xstrdup("dropping privileges: root could be regained");
		return -1;
	}
	sp_log(SP_LOG_INFO, "privileges", "user=%s uid=%d gid=%d", user ? user : "-", (int)uid,
	       (int)gid);
	return 0;
}
