/* The directory side of IMAP and POP logins (mc_login.h): one way to ask
 * the directory, inline or on its pool, and the EXTERNAL rule. Parses
 * nothing: the sessions hand in what they decoded from the client. */
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "mailcore/filter.h"
#include "mailcore/mc_login.h"

struct dir_req *mc_login_ask(struct dir *dir, const struct sp_proxy_info *tls, const char *user,
			     const char *pass, size_t pass_len, dir_done_fn *answer,
			     dir_done_fn *done, void *arg)
{
	struct dir_req *req;

	if (dir_pool(dir) == NULL) {
		struct dir_record *rec = NULL;
		enum dir_status st = pass != NULL ? dir_verify(dir, user, pass, pass_len, &rec)
				     : user == NULL ? dir_certmap(dir, tls, &rec)
						    : dir_lookup(dir, user, &rec);

		answer(arg, st, st == DIR_FOUND ? rec : NULL);
		dir_record_free(&rec);
		return NULL;
	}
	req = pass != NULL ? dir_verify_async(dir, user, pass, pass_len, done, arg)
	      : user == NULL ? dir_certmap_async(dir, tls, done, arg)
			     : dir_lookup_async(dir, user, done, arg);
	if (req == NULL) /* the queue is full */
		answer(arg, DIR_TEMPFAIL, NULL);
	return req;
}

void mc_login_log_tempfail(const char *what, const char *client_ip, const char *user)
{
	char esc[128];

	sp_log(SP_LOG_NOTICE, what, "client=%s user=\"%s\" result=tempfail", client_ip,
	       user == NULL ? "-" : sp_log_escape(esc, sizeof(esc), user, strlen(user)));
}

enum mc_external mc_login_external(enum dir_status st, const struct dir_record *rec,
				   const char *authzid, const char *const *admins, size_t n_admins)
{
	if (st != DIR_FOUND || rec->status != DIR_USER_ACTIVE)
		return MC_EXTERNAL_DENY;
	if (authzid[0] == '\0' || strcasecmp(authzid, rec->address) == 0)
		return MC_EXTERNAL_SELF;
	/* another user: only for a store administrator */
	for (size_t i = 0; i < n_admins; i++)
		if (strcasecmp(admins[i], rec->address) == 0)
			return MC_EXTERNAL_PROXY;
	return MC_EXTERNAL_DENY;
}

enum mc_user_check mc_login_check_user(const char *what, const struct dir_record *u,
				       const struct filter_query *q, const struct filter *filter,
				       const char *client_ip, const char *how)
{
	struct filter_decision d;

	if (!dir_service_allowed(u, q)) {
		sp_log(SP_LOG_NOTICE, what,
		       "client=%s user=%s method=%s result=refused why=\"service not allowed for user\"",
		       client_ip, u->address, how);
		return MC_USER_REFUSED;
	}
	if (filter == NULL)
		return MC_USER_ALLOWED;
	filter_eval(filter, q, &d);
	if (d.allowed)
		return MC_USER_ALLOWED;
	sp_log(SP_LOG_NOTICE, what, "client=%s user=%s result=filtered rule=%d", client_ip,
	       u->address, d.rule);
	return MC_USER_FILTERED;
}
