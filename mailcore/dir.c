/* The directory interface (dir.h): reference counting, the async wrappers
 * that run a backend's blocking call on a pool thread and answer on the
 * loop, per-user allowed services, and the users-file backend (a thin
 * wrapper over dir_users.c with the certmap subset that makes sense
 * without LDAP: docs/CERTMAP.md). */
#include "mailcore/dir.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/certmap.h"
#include "mailcore/filter.h"
#include "mailcore/store_pool.h"

/* ---------------------------------------------------------------- records */

struct dir_record *dir_record_dup(const struct dir_record *r)
{
	struct dir_record *c;

	if (r == NULL)
		return NULL;
	c = sp_xmalloc(sizeof(*c));
	*c = *r;
	c->allowed = r->allowed != NULL ? sp_xstrdup(r->allowed) : NULL;
	c->domain_allowed = r->domain_allowed != NULL ? sp_xstrdup(r->domain_allowed) : NULL;
	return c;
}

void dir_record_free(struct dir_record **r)
{
	if (r == NULL || *r == NULL)
		return;
	free((*r)->allowed);
	free((*r)->domain_allowed);
	free(*r);
	*r = NULL;
}

/* ---------------------------------------------------------------- the handle */

struct dir *dir_new_backend(const struct dir_backend *be, void *priv, const struct certmap *certmap)
{
	struct dir *d = sp_xcalloc(1, sizeof(*d));

	d->be = be;
	d->priv = priv;
	d->certmap = certmap;
	d->refs = 1;
	return d;
}

struct dir *dir_ref(struct dir *d)
{
	if (d != NULL)
		d->refs++;
	return d;
}

void dir_unref(struct dir **dp)
{
	struct dir *d;

	if (dp == NULL || *dp == NULL)
		return;
	d = *dp;
	*dp = NULL;
	if (--d->refs > 0)
		return;
	if (d->be->free != NULL)
		d->be->free(d);
	for (size_t i = 0; i < d->n_mailhost_names; i++)
		free(d->mailhost_names[i]);
	free(d->mailhost_names);
	free(d);
}

void dir_set_pool(struct dir *d, struct store_pool *pool)
{
	if (d != NULL)
		d->pool = pool;
}

struct store_pool *dir_pool(const struct dir *d)
{
	return d != NULL ? d->pool : NULL;
}

const char *dir_backend_name(const struct dir *d)
{
	return d->be->name;
}

static struct certmap *builtin_certmap;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_init(void)
{
	builtin_certmap = certmap_default();
}

static const struct certmap *effective_certmap(const struct dir *d)
{
	if (d->certmap != NULL)
		return d->certmap;
	pthread_once(&builtin_once, builtin_init);
	return builtin_certmap;
}

/* ---------------------------------------------------------------- blocking calls */

enum dir_status dir_lookup(struct dir *d, const char *address, struct dir_record **rec_r)
{
	*rec_r = NULL;
	if (address == NULL || address[0] == '\0' || strlen(address) >= DIR_ADDR_MAX)
		return DIR_NOTFOUND;
	return d->be->lookup(d, address, rec_r);
}

enum dir_status dir_verify(struct dir *d, const char *user, const char *password,
			   size_t password_len, struct dir_record **rec_r)
{
	enum dir_status st;

	*rec_r = NULL;
	if (user == NULL || user[0] == '\0' || strlen(user) >= DIR_ADDR_MAX || password_len == 0 ||
	    memchr(password, '\0', password_len) != NULL)
		return DIR_NOTFOUND;
	st = d->be->verify(d, user, password, password_len, rec_r);
	if (st == DIR_FOUND && (*rec_r)->status != DIR_USER_ACTIVE) {
		dir_record_free(rec_r);
		st = DIR_NOTFOUND; /* inactive: no login */
	}
	return st;
}

enum dir_status dir_certmap(struct dir *d, const struct sp_proxy_info *tls,
			    struct dir_record **rec_r)
{
	enum dir_status st;

	*rec_r = NULL;
	/* only a certificate tlsd verified against the trusted CAs and CRLs */
	if (tls == NULL || !tls->tls || tls->tls_verify != 0 ||
	    (tls->tls_client & (SP_PP2_CLIENT_CERT_CONN | SP_PP2_CLIENT_CERT_SESS)) == 0 ||
	    (tls->cert_subject[0] == '\0' && tls->cert_email[0] == '\0'))
		return DIR_NOTFOUND;
	st = d->be->certmap(d, tls, rec_r);
	if (st == DIR_FOUND && (*rec_r)->status != DIR_USER_ACTIVE) {
		dir_record_free(rec_r);
		st = DIR_NOTFOUND;
	}
	return st;
}

/* ---------------------------------------------------------------- async */

enum dir_req_kind { REQ_LOOKUP, REQ_VERIFY, REQ_CERTMAP };

struct dir_req {
	enum dir_req_kind kind;
	struct dir *d;                /* a ref */
	char user[DIR_ADDR_MAX];
	char *pw;
	size_t pw_len;
	struct sp_proxy_info tls;
	enum dir_status st;
	struct dir_record *rec;
	dir_done_fn *done;
	void *arg;
	bool cancelled;               /* loop-only: set and read on the loop */
};

static void req_work(void *arg)
{
	struct dir_req *r = arg;

	switch (r->kind) {
	case REQ_LOOKUP:
		r->st = dir_lookup(r->d, r->user, &r->rec);
		break;
	case REQ_VERIFY:
		r->st = dir_verify(r->d, r->user, r->pw, r->pw_len, &r->rec);
		OPENSSL_cleanse(r->pw, r->pw_len);
		break;
	case REQ_CERTMAP:
		r->st = dir_certmap(r->d, &r->tls, &r->rec);
		break;
	}
}

static void req_free(struct dir_req *r)
{
	if (r->pw != NULL)
		sp_free_secret(r->pw, r->pw_len + 1);
	OPENSSL_cleanse(r->user, sizeof(r->user));
	dir_record_free(&r->rec);
	dir_unref(&r->d);
	free(r);
}

static void req_done(void *arg)
{
	struct dir_req *r = arg;

	if (!r->cancelled)
		r->done(r->arg, r->st, r->st == DIR_FOUND ? r->rec : NULL);
	req_free(r);
}

static struct dir_req *req_submit(struct dir_req *r)
{
	if (r->d->pool == NULL) {
		/* no pool (tools, tests): done() must still not run inside the
		 * caller's call, so there is nothing honest to do but refuse */
		req_free(r);
		return NULL;
	}
	if (store_pool_submit(r->d->pool, req_work, req_done, r) < 0) {
		req_free(r);
		return NULL;
	}
	return r;
}

static struct dir_req *req_new(struct dir *d, enum dir_req_kind kind, dir_done_fn *done, void *arg)
{
	struct dir_req *r = sp_xcalloc(1, sizeof(*r));

	r->kind = kind;
	r->d = dir_ref(d);
	r->done = done;
	r->arg = arg;
	r->st = DIR_TEMPFAIL;
	return r;
}

struct dir_req *dir_lookup_async(struct dir *d, const char *address, dir_done_fn *done, void *arg)
{
	struct dir_req *r = req_new(d, REQ_LOOKUP, done, arg);

	snprintf(r->user, sizeof(r->user), "%s", address);
	return req_submit(r);
}

struct dir_req *dir_verify_async(struct dir *d, const char *user, const char *password,
				 size_t password_len, dir_done_fn *done, void *arg)
{
	struct dir_req *r = req_new(d, REQ_VERIFY, done, arg);

	snprintf(r->user, sizeof(r->user), "%s", user);
	r->pw = sp_xmalloc(password_len + 1);
	memcpy(r->pw, password, password_len);
	r->pw[password_len] = '\0';
	r->pw_len = password_len;
	return req_submit(r);
}

struct dir_req *dir_certmap_async(struct dir *d, const struct sp_proxy_info *tls,
				  dir_done_fn *done, void *arg)
{
	struct dir_req *r = req_new(d, REQ_CERTMAP, done, arg);

	r->tls = *tls;
	return req_submit(r);
}

void dir_req_cancel(struct dir_req *req)
{
	if (req != NULL)
		req->cancelled = true;
}

/* ---------------------------------------------------------------- services */

/* One service filter text (whose: "user" or "domain", for the log). */
static bool services_allow(const struct dir_record *rec, const char *text, const char *whose,
			   const struct filter_query *where)
{
	struct filter *f;
	struct filter_query q = *where;
	struct filter_decision dec;
	char *error = NULL;

	if (text == NULL || text[0] == '\0')
		return true;
	f = filter_new();
	if (filter_add(f, FILTER_ALLOW, text, strlen(text), &error) < 0) {
		sp_log(SP_LOG_ERR, "dir_allowed_services_bad",
		       "user=%s whose=%s why=\"%s\" (access denied)", rec->address, whose,
		       error != NULL ? error : "");
		free(error);
		filter_free(&f);
		return false;
	}
	q.user = rec->address;
	filter_eval(f, &q, &dec);
	filter_free(&f);
	if (!dec.allowed)
		sp_log(SP_LOG_INFO, "dir_service_denied", "user=%s service=%s whose=%s", rec->address,
		       q.service, whose);
	return dec.allowed;
}

bool dir_service_allowed(const struct dir_record *rec, const struct filter_query *where)
{
	if (rec == NULL)
		return true;
	return services_allow(rec, rec->domain_allowed, "domain", where) &&
	       services_allow(rec, rec->allowed, "user", where);
}

/* ---------------------------------------------------------------- mailHost */

static char *host_name_key(const char *name)
{
	size_t n = strlen(name);
	char *k;

	while (n > 0 && name[n - 1] == '.')
		n--;
	k = sp_xstrndup(name, n);
	for (char *p = k; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return k;
}

void dir_set_mailhost_names(struct dir *d, const struct sp_conf *conf, const char *hostname)
{
	const char *const *names = NULL;
	size_t n = conf != NULL ? sp_conf_list(conf, "mailcore.mailhost_names", &names) : 0;
	char host[256];

	for (size_t i = 0; i < d->n_mailhost_names; i++)
		free(d->mailhost_names[i]);
	free(d->mailhost_names);
	d->mailhost_names = NULL;
	d->n_mailhost_names = 0;
	if (n == 0) {
		if (hostname == NULL) {
			if (gethostname(host, sizeof(host)) < 0)
				return;
			host[sizeof(host) - 1] = '\0';
			hostname = host;
		}
		names = &hostname;
		n = 1;
	}
	d->mailhost_names = sp_xcalloc(n, sizeof(*d->mailhost_names));
	for (size_t i = 0; i < n; i++)
		d->mailhost_names[d->n_mailhost_names++] = host_name_key(names[i]);
}

const char *dir_remote_mailhost(const struct dir *d, const struct dir_record *rec)
{
	char *key;
	bool here = false;

	if (d == NULL || rec == NULL || rec->mailhost[0] == '\0')
		return NULL;
	key = host_name_key(rec->mailhost);
	for (size_t i = 0; i < d->n_mailhost_names && !here; i++)
		here = strcmp(d->mailhost_names[i], key) == 0;
	free(key);
	return here || d->n_mailhost_names == 0 ? NULL : rec->mailhost;
}

/* ---------------------------------------------------------------- users file */

struct users_priv {
	struct dir_tables *tables;    /* a ref, or NULL */
	const struct dir_users *users;
};

static void record_from_user(const struct dir_user *u, struct dir_record *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->address, sizeof(r->address), "%s", u->address);
	if (u->mailhost != NULL) /* at most 253 (dir_users.c): fits */
		snprintf(r->mailhost, sizeof(r->mailhost), "%s", u->mailhost);
	r->quota = u->quota;
	r->status = u->status;
	r->allowed = u->allowed != NULL ? sp_xstrdup(u->allowed) : NULL;
	if (u->has_certsha256) {
		memcpy(r->cert_sha256[0], u->certsha256, 32);
		r->n_certs = 1;
	}
}

static enum dir_status users_lookup(struct dir *d, const char *address, struct dir_record **rec_r)
{
	const struct users_priv *p = d->priv;
	const struct dir_user *u = dir_users_find(p->users, address);

	if (u == NULL)
		return DIR_NOTFOUND;
	*rec_r = sp_xmalloc(sizeof(**rec_r));
	record_from_user(u, *rec_r);
	return DIR_FOUND;
}

static enum dir_status users_verify(struct dir *d, const char *user, const char *pw, size_t pw_len,
				    struct dir_record **rec_r)
{
	const struct users_priv *p = d->priv;
	const struct dir_user *u;

	if (dir_users_verify(p->users, user, pw, pw_len, &u) < 0)
		return DIR_NOTFOUND;
	*rec_r = sp_xmalloc(sizeof(**rec_r));
	record_from_user(u, *rec_r);
	return DIR_FOUND;
}

/* The subset of certmap.conf the users file can honour: FilterComps terms
 * on mail (the address) and uid (its local part); verifycert against the
 * user's certsha256=; DNComps is ignored (no tree); CmapLdapAttr and any
 * other filter attribute cannot match. */
static enum dir_status users_certmap(struct dir *d, const struct sp_proxy_info *tls,
				     struct dir_record **rec_r)
{
	const struct users_priv *p = d->priv;
	struct certmap_plan plan;
	const char *why = NULL, *mail = NULL, *uid = NULL;
	const struct dir_user *u;

	if (certmap_plan(effective_certmap(d), tls->cert_subject, tls->cert_issuer, tls->cert_email,
			 &plan, &why) < 0) {
		sp_log(SP_LOG_NOTICE, "certmap_no_plan", "backend=users why=\"%s\"", why);
		return DIR_NOTFOUND;
	}
	if (plan.cmap_attr[0] != '\0') {
		sp_log(SP_LOG_NOTICE, "certmap_unsupported", "backend=users section=%s why=\"CmapLdapAttr needs LDAP\"",
		       plan.section);
		return DIR_NOTFOUND;
	}
	for (size_t i = 0; i < plan.n_terms; i++) {
		if (strcasecmp(plan.terms[i].type, "mail") == 0)
			mail = plan.terms[i].value;
		else if (strcasecmp(plan.terms[i].type, "uid") == 0)
			uid = plan.terms[i].value;
		else {
			sp_log(SP_LOG_NOTICE, "certmap_unsupported",
			       "backend=users section=%s why=\"filter on %s needs LDAP\"", plan.section,
			       plan.terms[i].type);
			return DIR_NOTFOUND;
		}
	}
	if (mail == NULL) {
		sp_log(SP_LOG_NOTICE, "certmap_unsupported",
		       "backend=users section=%s why=\"the users file needs a mail term\"", plan.section);
		return DIR_NOTFOUND;
	}
	u = dir_users_find(p->users, mail);
	if (u == NULL)
		return DIR_NOTFOUND;
	if (uid != NULL) {
		const char *at = strrchr(u->address, '@');

		if (at == NULL || strlen(uid) != (size_t)(at - u->address) ||
		    strncasecmp(uid, u->address, strlen(uid)) != 0)
			return DIR_NOTFOUND;
	}
	if (plan.verifycert &&
	    (!u->has_certsha256 || !tls->has_cert_sha256 ||
	     CRYPTO_memcmp(u->certsha256, tls->cert_sha256, 32) != 0)) {
		sp_log(SP_LOG_NOTICE, "certmap_verifycert_failed", "backend=users user=%s", u->address);
		return DIR_NOTFOUND;
	}
	*rec_r = sp_xmalloc(sizeof(**rec_r));
	record_from_user(u, *rec_r);
	return DIR_FOUND;
}

static void users_free(struct dir *d)
{
	struct users_priv *p = d->priv;

	dir_tables_unref(&p->tables);
	free(p);
}

static const struct dir_backend users_backend = {
	.name = "users",
	.lookup = users_lookup,
	.verify = users_verify,
	.certmap = users_certmap,
	.free = users_free,
};

struct dir *dir_users_new(struct dir_tables *tables, const struct dir_users *users,
			  const struct certmap *certmap, struct store_pool *pool)
{
	struct users_priv *p = sp_xcalloc(1, sizeof(*p));
	struct dir *d;

	p->tables = dir_tables_ref(tables);
	p->users = tables != NULL ? tables->users : users;
	d = dir_new_backend(&users_backend, p, certmap);
	d->pool = pool;
	return d;
}
