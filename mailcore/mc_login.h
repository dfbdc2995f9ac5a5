/* Private to mailcore: the directory side of a login that the IMAP and POP
 * sessions share (mc_login.c): asking the directory (password, client
 * certificate, a user by address), inline or on its pool, logging a
 * tempfail, the EXTERNAL rule (the certificate's own user, or another
 * user for a store administrator) and the per-user service checks. The replies stay the protocol's. */
#ifndef MAILCORE_MC_LOGIN_H
#define MAILCORE_MC_LOGIN_H

#include <stddef.h>

#include "mailcore/dir.h"

struct sp_proxy_info;

/* Asks dir for a password (pass != NULL), the certificate in tls (user
 * NULL) or a user by address. Without a pool (tests, the users file before
 * the pool exists) answer runs inline and NULL is returned; with one the
 * request is returned and done runs on the loop later; when its queue is
 * full answer gets DIR_TEMPFAIL inline and NULL is returned. answer and
 * done get arg; rec is valid during the call only. */
struct dir_req *mc_login_ask(struct dir *dir, const struct sp_proxy_info *tls, const char *user,
			     const char *pass, size_t pass_len, dir_done_fn *answer,
			     dir_done_fn *done, void *arg);

/* The directory was unavailable: one NOTICE line tagged what ("imap_login"),
 * user NULL for a certificate login. */
void mc_login_log_tempfail(const char *what, const char *client_ip, const char *user);

/* What the directory's answer for a certificate means (RFC 4422 appendix
 * A: EXTERNAL with an optional authorization identity authzid, "" = none). */
enum mc_external {
	MC_EXTERNAL_DENY,   /* no active user, or another user and not an admin */
	MC_EXTERNAL_SELF,   /* log in as rec, the certificate's own user */
	MC_EXTERNAL_PROXY,  /* rec is an administrator: look authzid up next */
};
enum mc_external mc_login_external(enum dir_status st, const struct dir_record *rec,
				   const char *authzid, const char *const *admins, size_t n_admins);

/* The per-user checks once the identity is settled: the user's own
 * service list (dir_service_allowed), then the service's access filter
 * (may be NULL) with the user in q. A refusal is logged under what
 * ("imap_login"); the caller answers. */
enum mc_user_check {
	MC_USER_ALLOWED,
	MC_USER_REFUSED,    /* the service is not the user's: refuse as a wrong password */
	MC_USER_FILTERED,   /* the access filter says no */
};
struct filter;
struct filter_query;
enum mc_user_check mc_login_check_user(const char *what, const struct dir_record *u,
				       const struct filter_query *q, const struct filter *filter,
				       const char *client_ip, const char *how);

#endif
