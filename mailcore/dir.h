/* The directory: one interface over the users file (embedded default) and
 * LDAP (dir_ldap.c). Users are looked up by address (with aliases), by
 * login name with a password, or by a client certificate (certmap.conf,
 * certmap.h); every answer says found / not found / TEMPORARY failure, so a
 * directory that is down is answered 4xx, never "accept all" and never
 * "user unknown". Private to mailcore; the protocol sessions include it. */
#ifndef MAILCORE_DIR_H
#define MAILCORE_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/conf.h"
#include "common/proxy2.h"
#include "mailcore/filter.h"
#include "mailcore/mailcore.h"

struct certmap;
struct store_pool;

/* Found / not found / temporary failure. For dir_verify and dir_certmap
 * DIR_NOTFOUND means "refused" (unknown user, wrong password, inactive,
 * no mapping): the caller cannot and must not tell which. */
enum dir_status {
	DIR_FOUND = 0,
	DIR_NOTFOUND = 1,
	DIR_TEMPFAIL = 2, /* LDAP down, timed out, pool full: answer 4xx */
};

#define DIR_ADDR_MAX (SMTP_LOCAL_PART_MAX + 1 + SMTP_DOMAIN_MAX + 1)
#define DIR_MAX_CERTS 8 /* userCertificate values kept per user (verifycert) */

/* One user. Owned by whoever got it; dir_record_free releases it. */
struct dir_record {
	char address[DIR_ADDR_MAX];   /* canonical lower-case local@domain (LDAP: mail) */
	char mailhost[256];           /* LDAP mailHost, users-file mailhost=; "" = this host */
	uint64_t quota;               /* bytes; 0 = unlimited (LDAP mailQuota; -1 there = 0) */
	enum dir_user_status status;  /* LDAP mailUserStatus / inetUserStatus, and the domain's
				       * inetDomainStatus / mailDomainStatus: the worst of them */
	char *allowed;                /* per-user service filter text (filter.h syntax); NULL = any */
	char *domain_allowed;         /* the domain's (LDAP mailDomainAllowedServiceAccess); NULL = any */
	size_t n_certs;               /* SHA-256 of the user's certificates (verifycert) */
	uint8_t cert_sha256[DIR_MAX_CERTS][32];
	char dn[512];                 /* LDAP entry DN; "" for the users file */
};

struct dir_record *dir_record_dup(const struct dir_record *r);
void dir_record_free(struct dir_record **r);

struct dir;

/* The users-file backend over one snapshot (holds a ref of tables when not
 * NULL; else uses users, which must outlive the dir). certmap may be NULL
 * (the built-in default: the certificate's e-mail address is the user).
 * pool: where dir_*_async runs its work (NULL = inline, for tests). */
struct dir *dir_users_new(struct dir_tables *tables, const struct dir_users *users,
			  const struct certmap *certmap, struct store_pool *pool);
/* The LDAP backend from the ldap.* keys (dir_ldap.c). NULL and *error_r
 * (caller frees) on a bad configuration; the server being down is not an
 * error here (lookups then answer DIR_TEMPFAIL until it is back). */
struct dir *dir_ldap_new(const struct sp_conf *conf, const struct certmap *certmap,
			 char **error_r);
/* True when ldap.host is set. */
bool dir_ldap_configured(const struct sp_conf *conf);

/* Reference counted: sessions and jobs hold a ref while they use it. */
struct dir *dir_ref(struct dir *d);     /* NULL-safe */
void dir_unref(struct dir **d);         /* frees on the last */
void dir_set_pool(struct dir *d, struct store_pool *pool);
struct store_pool *dir_pool(const struct dir *d);
const char *dir_backend_name(const struct dir *d); /* "users" or "ldap" */

/* ---- blocking calls: run them on a pool thread (LDAP may take up to
 * ldap.timeout), or on the loop only with the users-file backend. Thread
 * safe. On DIR_FOUND *rec_r is the caller's (dir_record_free). */

/* A recipient or a user by address: aliases (LDAP mailAlternateAddress)
 * lead to the canonical record. Deleted users are not found; inactive ones
 * are found with status DIR_USER_INACTIVE (the caller refuses). */
enum dir_status dir_lookup(struct dir *d, const char *address, struct dir_record **rec_r);
/* A login: name (address, or a bare uid for LDAP) and password. DIR_FOUND
 * only for an active user whose password matches. */
enum dir_status dir_verify(struct dir *d, const char *user, const char *password,
			   size_t password_len, struct dir_record **rec_r);
/* A verified client certificate (tls->tls_verify == 0, a cert present)
 * mapped to an active user through certmap.conf (docs/CERTMAP.md). */
enum dir_status dir_certmap(struct dir *d, const struct sp_proxy_info *tls,
			    struct dir_record **rec_r);

/* ---- the same off the loop: the work runs on the dir's pool and done()
 * runs later on the loop, never from inside the call. rec is valid during
 * done() only (dup it to keep it). NULL return: the pool's queue is full,
 * answer with a temporary failure. */
typedef void dir_done_fn(void *arg, enum dir_status st, const struct dir_record *rec);
struct dir_req;
struct dir_req *dir_lookup_async(struct dir *d, const char *address, dir_done_fn *done, void *arg);
struct dir_req *dir_verify_async(struct dir *d, const char *user, const char *password,
				 size_t password_len, dir_done_fn *done, void *arg);
struct dir_req *dir_certmap_async(struct dir *d, const struct sp_proxy_info *tls,
				  dir_done_fn *done, void *arg);
/* The session is going away: done() will not be called; the request frees
 * itself when its work finishes. */
void dir_req_cancel(struct dir_req *req);

/* Per-user allowed services (LDAP mailAllowedServiceAccess, users-file
 * allowed=) and the domain's (LDAP mailDomainAllowedServiceAccess), each
 * evaluated after authentication with the client access filter evaluator
 * (filter.h) for where->service ("smtp", "imap", "pop" or "http"), the
 * client (address and looked-up name) and server in where; where->user is
 * ignored (rec->address is the user); both must allow. A record without such a filter allows everything; a filter that
 * does not parse denies (and is logged). */
bool dir_service_allowed(const struct dir_record *rec, const struct filter_query *where);

/* The user's mailbox lives on another host (the Messaging Server mailHost
 * model): rec->mailhost when it is set and not one of the names this host
 * answers to (mailcore.mailhost_names, default mailcore.hostname); NULL
 * when the mailbox is here. SMTP queues such a recipient to that host,
 * IMAP answers a login with an RFC 2221 referral, POP refuses it. */
const char *dir_remote_mailhost(const struct dir *d, const struct dir_record *rec);
/* Sets the names this host answers to as a mailHost from
 * mailcore.mailhost_names (empty list: hostname, which may be NULL =
 * gethostname()). Names compare case-insensitively, a trailing dot
 * ignored. */
void dir_set_mailhost_names(struct dir *d, const struct sp_conf *conf, const char *hostname);

/* ======================================================================
 * Backends (dir.c calls them through this table). Private.
 * ==================================================================== */
struct dir_backend {
	const char *name;
	enum dir_status (*lookup)(struct dir *d, const char *address, struct dir_record **rec_r);
	enum dir_status (*verify)(struct dir *d, const char *user, const char *pw, size_t pw_len,
				  struct dir_record **rec_r);
	enum dir_status (*certmap)(struct dir *d, const struct sp_proxy_info *tls,
				   struct dir_record **rec_r);
	void (*free)(struct dir *d);
};

struct dir {
	const struct dir_backend *be;
	void *priv;                    /* the backend's state */
	const struct certmap *certmap; /* NULL = built-in default */
	struct store_pool *pool;
	char **mailhost_names;         /* lower case, no trailing dot */
	size_t n_mailhost_names;
	_Atomic unsigned refs;
};

struct dir *dir_new_backend(const struct dir_backend *be, void *priv,
			    const struct certmap *certmap);

/* sealpost.conf keys of the directory (dir_conf.c): ldap.* and the
 * certmap file. */
extern const struct sp_conf_key mailcore_dir_conf_keys[];

#endif
