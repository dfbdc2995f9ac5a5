/* The LDAP directory backend (OpenLDAP libldap): users and domains, the
 * password check by binding as the user (or by compare), certmap searches,
 * a bounded connection pool with LDAPS / StartTLS verified against a CA,
 * a TTL cache of lookups, and reconnection with backoff.
 *
 * Threads, not the loop: every call here is libldap's synchronous API,
 * bounded by ldap.timeout, and runs on the directory's own thread pool
 * (dir.h: dir_*_async, or the SMTP session's jobs) whose completions reach
 * the event loop through the pool's eventfd. The async API would still
 * block the loop where it matters: connect, the TLS handshake and StartTLS
 * (ldap_start_tls_s) are synchronous inside libldap. A separate pool also
 * keeps a slow or dead LDAP server from holding the store's fsync threads.
 * While the server is down (after a failure, for ldap.retry_min doubling
 * up to ldap.retry_max) calls fail at once with DIR_TEMPFAIL. */
#include "mailcore/dir.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ldap.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/certmap.h"
#include "mailcore/dir_ldap_int.h"

#define LDAP_FILTER_MAX 4096

struct ldap_conn {
	LDAP *ld;    /* NULL = not connected */
	bool busy;
};

struct ldap_priv {
	char *uri;
	bool starttls;
	char *cafile, *binddn, *basedn;
	char *bindpw;
	size_t bindpw_len;
	char *userfilter, *addressfilter, *domainfilter, *defaultdomain;
	bool domainlookup, compare;
	long timeout_ms, retry_min_ms, retry_max_ms;

	pthread_mutex_t mu;           /* the pool and the down state */
	pthread_cond_t cv;
	struct ldap_conn *conns;
	size_t n_conns;
	long long down_until_ms;
	long backoff_ms;              /* 0 = up */

	struct dir_ldap_cache *cache;
};

static const char *const user_attrs[] = {
	"mail", "mailAlternateAddress", "mailHost", "mailQuota", "mailUserStatus",
	"inetUserStatus", "mailAllowedServiceAccess", "userCertificate;binary", NULL,
};

static const char *const domain_attrs[] = {
	"inetDomainStatus", "mailDomainStatus", "mailDomainAllowedServiceAccess", NULL,
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool cache_get(struct ldap_priv *p, const char *key, enum dir_status *st,
		      struct dir_record **rec_r)
{
	return dir_ldap_cache_get(p->cache, key, now_ms(), st, rec_r);
}

static void cache_put(struct ldap_priv *p, const char *key, enum dir_status st,
		      const struct dir_record *rec)
{
	dir_ldap_cache_put(p->cache, key, now_ms(), st, rec);
}

/* ---------------------------------------------------------------- connections */

static bool rc_is_down(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR ||
	       rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY || rc == LDAP_LOCAL_ERROR ||
	       rc == LDAP_ENCODING_ERROR || rc == LDAP_DECODING_ERROR || rc == LDAP_NO_MEMORY;
}

/* Called with p->mu held. */
static void mark_down_locked(struct ldap_priv *p, const char *why)
{
	bool was_up = p->backoff_ms == 0;

	p->backoff_ms = dir_ldap_next_backoff(p->backoff_ms, p->retry_min_ms, p->retry_max_ms);
	p->down_until_ms = now_ms() + p->backoff_ms;
	sp_log(was_up ? SP_LOG_ERR : SP_LOG_NOTICE, "ldap_down",
	       "uri=%s why=\"%s\" retry_in_ms=%ld", p->uri, why, p->backoff_ms);
}

static void log_ldap_error(struct ldap_priv *p, LDAP *ld, const char *what, int rc)
{
	char *diag = NULL;

	if (ld != NULL)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	sp_log(SP_LOG_ERR, "ldap_error", "uri=%s op=%s rc=%d error=\"%s\" diag=\"%s\"", p->uri, what,
	       rc, ldap_err2string(rc), diag != NULL ? diag : "");
	ldap_memfree(diag);
}

static int bind_service(struct ldap_priv *p, LDAP *ld)
{
	struct berval cred = {.bv_len = p->bindpw_len, .bv_val = p->bindpw};
	struct berval empty = {0, NULL};

	return ldap_sasl_bind_s(ld, p->binddn != NULL ? p->binddn : "", LDAP_SASL_SIMPLE,
				p->binddn != NULL ? &cred : &empty, NULL, NULL, NULL);
}

/* A new connection: TLS verified against ldap.cafile (hard), StartTLS
 * when asked, bound as ldap.binddn. NULL on failure (logged). */
static LDAP *dl_connect(struct ldap_priv *p)
{
	LDAP *ld = NULL;
	int rc, v3 = LDAP_VERSION3, hard = LDAP_OPT_X_TLS_HARD, zero = 0;
	int tls_min = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
	struct timeval tv = {.tv_sec = p->timeout_ms / 1000, .tv_usec = (p->timeout_ms % 1000) * 1000};

	rc = ldap_initialize(&ld, p->uri);
	if (rc != LDAP_SUCCESS) {
		log_ldap_error(p, NULL, "initialize", rc);
		return NULL;
	}
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &hard) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls_min) != LDAP_OPT_SUCCESS ||
	    (p->cafile != NULL &&
	     ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, p->cafile) != LDAP_OPT_SUCCESS) ||
	    /* a TLS context of this handle's own, with the options above */
	    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) != LDAP_OPT_SUCCESS) {
		sp_log(SP_LOG_ERR, "ldap_error", "uri=%s op=set_option", p->uri);
		ldap_unbind_ext_s(ld, NULL, NULL);
		return NULL;
	}
	if (p->starttls) {
		rc = ldap_start_tls_s(ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			log_ldap_error(p, ld, "starttls", rc);
			ldap_unbind_ext_s(ld, NULL, NULL);
			return NULL;
		}
	}
	rc = bind_service(p, ld);
	if (rc != LDAP_SUCCESS) {
		log_ldap_error(p, ld, "bind_service", rc);
		ldap_unbind_ext_s(ld, NULL, NULL);
		return NULL;
	}
	return ld;
}

/* A connection of the pool, connected and bound. NULL = temporary failure
 * (the server is down, or every connection stayed busy for ldap.timeout). */
static struct ldap_conn *conn_acquire(struct ldap_priv *p)
{
	struct ldap_conn *c = NULL;
	struct timespec deadline;
	LDAP *ld;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += p->timeout_ms / 1000;
	deadline.tv_nsec += (p->timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&p->mu);
	for (;;) {
		/* a connected idle one first, then any idle slot */
		for (size_t i = 0; i < p->n_conns && c == NULL; i++)
			if (!p->conns[i].busy && p->conns[i].ld != NULL)
				c = &p->conns[i];
		for (size_t i = 0; i < p->n_conns && c == NULL; i++)
			if (!p->conns[i].busy)
				c = &p->conns[i];
		if (c != NULL)
			break;
		if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
			pthread_mutex_unlock(&p->mu);
			sp_log(SP_LOG_NOTICE, "ldap_pool_busy", "uri=%s connections=%zu", p->uri, p->n_conns);
			return NULL;
		}
	}
	c->busy = true;
	if (c->ld != NULL) {
		pthread_mutex_unlock(&p->mu);
		return c;
	}
	if (p->backoff_ms > 0 && now_ms() < p->down_until_ms) {
		/* down: fail fast until the next attempt is due */
		c->busy = false;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		return NULL;
	}
	pthread_mutex_unlock(&p->mu);
	ld = dl_connect(p);
	pthread_mutex_lock(&p->mu);
	if (ld == NULL) {
		mark_down_locked(p, "connect or bind failed");
		c->busy = false;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		return NULL;
	}
	if (p->backoff_ms > 0)
		sp_log(SP_LOG_NOTICE, "ldap_up", "uri=%s", p->uri);
	p->backoff_ms = 0;
	c->ld = ld;
	pthread_mutex_unlock(&p->mu);
	return c;
}

/* broken: the connection failed (closed here; the server counts as down,
 * and the other idle connections are dropped too, they are as dead). */
static void conn_release(struct ldap_priv *p, struct ldap_conn *c, bool broken, const char *why)
{
	LDAP *close_me[64];
	size_t n_close = 0;

	pthread_mutex_lock(&p->mu);
	if (broken) {
		close_me[n_close++] = c->ld;
		c->ld = NULL;
		for (size_t i = 0; i < p->n_conns && n_close < 64; i++)
			if (!p->conns[i].busy && p->conns[i].ld != NULL) {
				close_me[n_close++] = p->conns[i].ld;
				p->conns[i].ld = NULL;
			}
		mark_down_locked(p, why);
	}
	c->busy = false;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < n_close; i++)
		if (close_me[i] != NULL)
			ldap_unbind_ext_s(close_me[i], NULL, NULL);
}

/* ---------------------------------------------------------------- records */

static void lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Fills rec from entry e, a user (domain false) or a domain entry. Every
 * value goes through dir_ldap_entry.c, by length (values are untrusted).
 * Returns 0, or -1 (a user entry without a usable mail attribute). */
static int record_from_entry(LDAP *ld, LDAPMessage *e, bool domain, struct dir_record *rec)
{
	BerElement *ber = NULL;
	char *dn, *a;

	memset(rec, 0, sizeof(*rec));
	dn = ldap_get_dn(ld, e);
	if (dn != NULL) {
		snprintf(rec->dn, sizeof(rec->dn), "%s", dn);
		ldap_memfree(dn);
	}
	for (a = ldap_first_attribute(ld, e, &ber); a != NULL; a = ldap_next_attribute(ld, e, ber)) {
		struct berval **vals = ldap_get_values_len(ld, e, a);

		for (size_t i = 0; vals != NULL && vals[i] != NULL; i++) {
			if (domain)
				dir_ldap_domain_value(rec, a, i, vals[i]->bv_val, vals[i]->bv_len);
			else
				dir_ldap_user_value(rec, a, i, vals[i]->bv_val, vals[i]->bv_len);
		}
		ldap_value_free_len(vals);
		ldap_memfree(a);
	}
	ber_free(ber, 0);
	return domain ? 0 : dir_ldap_user_check(rec);
}

static void record_clear(struct dir_record *rec)
{
	free(rec->allowed);
	free(rec->domain_allowed);
	rec->allowed = rec->domain_allowed = NULL;
}

/* One search that must find at most one entry. DIR_FOUND fills *rec_r;
 * domain: a domain entry (its DN, status and service filter). */
static enum dir_status search_one(struct ldap_priv *p, struct ldap_conn *c, const char *base,
				  int scope, const char *filter, bool domain,
				  struct dir_record **rec_r, bool *broken)
{
	struct timeval tv = {.tv_sec = p->timeout_ms / 1000, .tv_usec = (p->timeout_ms % 1000) * 1000};
	LDAPMessage *res = NULL, *e;
	int rc, n;
	struct dir_record rec;

	rc = ldap_search_ext_s(c->ld, base, scope, filter,
			       (char **)(domain ? domain_attrs : user_attrs), 0, NULL, NULL, &tv, 2, &res);
	if (rc == LDAP_NO_SUCH_OBJECT) {
		ldap_msgfree(res);
		return DIR_NOTFOUND;
	}
	if (rc == LDAP_SIZELIMIT_EXCEEDED) {
		sp_log(SP_LOG_NOTICE, "ldap_ambiguous", "base=\"%s\" filter=\"%s\"", base, filter);
		ldap_msgfree(res);
		return DIR_NOTFOUND;
	}
	if (rc != LDAP_SUCCESS) {
		log_ldap_error(p, c->ld, "search", rc);
		ldap_msgfree(res);
		*broken = rc_is_down(rc);
		return DIR_TEMPFAIL;
	}
	n = ldap_count_entries(c->ld, res);
	if (n != 1) {
		if (n > 1)
			sp_log(SP_LOG_NOTICE, "ldap_ambiguous", "base=\"%s\" filter=\"%s\"", base, filter);
		ldap_msgfree(res);
		return DIR_NOTFOUND;
	}
	e = ldap_first_entry(c->ld, res);
	if (record_from_entry(c->ld, e, domain, &rec) < 0) {
		sp_log(SP_LOG_NOTICE, "ldap_entry_without_mail", "dn=\"%s\"", rec.dn);
		record_clear(&rec);
		ldap_msgfree(res);
		return DIR_NOTFOUND;
	}
	*rec_r = dir_record_dup(&rec);
	record_clear(&rec);
	ldap_msgfree(res);
	return DIR_FOUND;
}

/* The domain's entry (the multi-domain tree): *dom_r gets its DN (the
 * base to search its users under), its status and its service filter;
 * a deleted, removed or disabled domain is not found (its users are
 * refused for good). Without ldap.domainlookup: ldap.basedn, active. */
static enum dir_status domain_entry(struct ldap_priv *p, struct ldap_conn *c, const char *domain,
				    struct dir_record **dom_r, bool *broken)
{
	char key[DIR_ADDR_MAX + 4], filter[LDAP_FILTER_MAX];
	struct dir_record *rec = NULL;
	enum dir_status st;

	if (!p->domainlookup) {
		struct dir_record r;

		memset(&r, 0, sizeof(r));
		snprintf(r.dn, sizeof(r.dn), "%s", p->basedn);
		*dom_r = dir_record_dup(&r);
		return DIR_FOUND;
	}
	snprintf(key, sizeof(key), "d:%s", domain);
	lower(key);
	if (!cache_get(p, key, &st, &rec)) {
		if (dir_ldap_expand_filter(p->domainfilter, "", domain, domain, filter,
					   sizeof(filter)) < 0)
			return DIR_NOTFOUND;
		st = search_one(p, c, p->basedn, LDAP_SCOPE_SUBTREE, filter, true, &rec, broken);
		cache_put(p, key, st, rec);
	}
	if (st == DIR_FOUND && rec->status == DIR_USER_DELETED) {
		sp_log(SP_LOG_INFO, "ldap_domain_deleted", "dn=\"%s\"", rec->dn);
		dir_record_free(&rec);
		return DIR_NOTFOUND;
	}
	*dom_r = rec;
	return st;
}

/* A user by filter template under its domain. */
static enum dir_status find_user(struct ldap_priv *p, struct ldap_conn *c, const char *tmpl,
				 const char *name, struct dir_record **rec_r, bool *broken)
{
	char local[DIR_ADDR_MAX], domain[DIR_ADDR_MAX], filter[LDAP_FILTER_MAX];
	const char *at = strrchr(name, '@');
	struct dir_record *dom = NULL;
	enum dir_status st;

	if (at != NULL) {
		snprintf(local, sizeof(local), "%.*s", (int)(at - name), name);
		snprintf(domain, sizeof(domain), "%s", at + 1);
	} else {
		if (p->defaultdomain == NULL)
			return DIR_NOTFOUND;
		snprintf(local, sizeof(local), "%s", name);
		snprintf(domain, sizeof(domain), "%s", p->defaultdomain);
	}
	if (local[0] == '\0' || domain[0] == '\0')
		return DIR_NOTFOUND;
	st = domain_entry(p, c, domain, &dom, broken);
	if (st != DIR_FOUND)
		return st;
	if (dir_ldap_expand_filter(tmpl, local, domain, name, filter, sizeof(filter)) < 0) {
		dir_record_free(&dom);
		return DIR_NOTFOUND;
	}
	st = search_one(p, c, dom->dn, LDAP_SCOPE_SUBTREE, filter, false, rec_r, broken);
	if (st == DIR_FOUND)
		dir_ldap_merge_domain(*rec_r, dom);
	dir_record_free(&dom);
	return st;
}

/* ---------------------------------------------------------------- backend */

static enum dir_status dl_lookup(struct dir *d, const char *address, struct dir_record **rec_r)
{
	struct ldap_priv *p = d->priv;
	char key[DIR_ADDR_MAX + 4];
	enum dir_status st;
	struct ldap_conn *c;
	bool broken = false;

	snprintf(key, sizeof(key), "a:%s", address);
	lower(key);
	if (cache_get(p, key, &st, rec_r))
		return st;
	c = conn_acquire(p);
	if (c == NULL)
		return DIR_TEMPFAIL;
	st = find_user(p, c, p->addressfilter, address, rec_r, &broken);
	conn_release(p, c, broken, "search failed");
	if (st == DIR_FOUND && (*rec_r)->status == DIR_USER_DELETED) {
		dir_record_free(rec_r);
		st = DIR_NOTFOUND;
	}
	cache_put(p, key, st, *rec_r);
	return st;
}

static enum dir_status dl_verify(struct dir *d, const char *user, const char *pw, size_t pw_len,
				   struct dir_record **rec_r)
{
	struct ldap_priv *p = d->priv;
	struct ldap_conn *c;
	struct dir_record *rec = NULL;
	bool broken = false;
	enum dir_status st;
	struct berval cred = {.bv_len = pw_len, .bv_val = (char *)pw};
	int rc;

	/* pw_len > 0 is checked by dir_verify: an empty password would be an
	 * unauthenticated bind (RFC 4513 5.1.2), which "succeeds" */
	if (pw_len == 0)
		return DIR_NOTFOUND;
	c = conn_acquire(p);
	if (c == NULL)
		return DIR_TEMPFAIL;
	st = find_user(p, c, p->userfilter, user, &rec, &broken);
	if (st != DIR_FOUND || rec->status != DIR_USER_ACTIVE)
		goto out;
	if (p->compare) {
		rc = ldap_compare_ext_s(c->ld, rec->dn, "userPassword", &cred, NULL, NULL);
		if (rc == LDAP_COMPARE_TRUE)
			st = DIR_FOUND;
		else if (rc == LDAP_COMPARE_FALSE || rc == LDAP_NO_SUCH_ATTRIBUTE ||
			 rc == LDAP_INAPPROPRIATE_MATCHING || rc == LDAP_NO_SUCH_OBJECT)
			st = DIR_NOTFOUND;
		else {
			log_ldap_error(p, c->ld, "compare", rc);
			broken = rc_is_down(rc);
			st = DIR_TEMPFAIL;
		}
		goto out;
	}
	rc = ldap_sasl_bind_s(c->ld, rec->dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (rc == LDAP_SUCCESS) {
		st = DIR_FOUND;
	} else if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INAPPROPRIATE_AUTH ||
		   rc == LDAP_UNWILLING_TO_PERFORM || rc == LDAP_CONSTRAINT_VIOLATION) {
		st = DIR_NOTFOUND;
	} else {
		log_ldap_error(p, c->ld, "bind_user", rc);
		broken = rc_is_down(rc);
		st = DIR_TEMPFAIL;
	}
	/* the connection goes back to the pool as the service identity */
	if (!broken && bind_service(p, c->ld) != LDAP_SUCCESS) {
		ldap_unbind_ext_s(c->ld, NULL, NULL);
		pthread_mutex_lock(&p->mu);
		c->ld = NULL;
		pthread_mutex_unlock(&p->mu);
	}
out:
	conn_release(p, c, broken, "password check failed");
	if (st == DIR_FOUND && rec->status == DIR_USER_ACTIVE) {
		*rec_r = rec;
		return DIR_FOUND;
	}
	dir_record_free(&rec);
	return st == DIR_TEMPFAIL ? DIR_TEMPFAIL : DIR_NOTFOUND;
}

static enum dir_status dl_certmap(struct dir *d, const struct sp_proxy_info *tls,
				    struct dir_record **rec_r)
{
	static const struct certmap *none;
	struct ldap_priv *p = d->priv;
	struct certmap_plan plan;
	const char *why = NULL, *base;
	char filter[LDAP_FILTER_MAX];
	struct certmap *builtin = NULL;
	const struct certmap *cm = d->certmap != NULL ? d->certmap : none;
	struct ldap_conn *c;
	bool broken = false;
	enum dir_status st;
	int scope = LDAP_SCOPE_SUBTREE;

	if (cm == NULL)
		cm = builtin = certmap_default();
	if (certmap_plan(cm, tls->cert_subject, tls->cert_issuer, tls->cert_email, &plan, &why) < 0) {
		certmap_free(&builtin);
		sp_log(SP_LOG_NOTICE, "certmap_no_plan", "backend=ldap why=\"%s\"", why);
		return DIR_NOTFOUND;
	}
	certmap_free(&builtin);
	if (plan.cmap_attr[0] != '\0') {
		/* CmapLdapAttr: the entry that names this subject, anywhere */
		char esc[3 * CERTMAP_DN_MAX + 1];

		if (certmap_filter_escape(plan.subject, esc, sizeof(esc)) < 0 ||
		    snprintf(filter, sizeof(filter), "(%s=%s)", plan.cmap_attr, esc) >= (int)sizeof(filter))
			return DIR_NOTFOUND;
		base = p->basedn;
	} else {
		snprintf(filter, sizeof(filter), "%s", plan.filter);
		if (plan.base_kind == CERTMAP_BASE_SUFFIX) {
			base = p->basedn;
		} else {
			base = plan.base;
			if (plan.base_kind == CERTMAP_BASE_SUBJECT)
				scope = LDAP_SCOPE_BASE;
		}
	}
	c = conn_acquire(p);
	if (c == NULL)
		return DIR_TEMPFAIL;
	st = search_one(p, c, base, scope, filter, false, rec_r, &broken);
	if (st == DIR_FOUND) {
		/* the user's domain entry counts as for a password login */
		struct dir_record *dom = NULL;
		enum dir_status dst = domain_entry(p, c, strrchr((*rec_r)->address, '@') + 1, &dom,
						   &broken);

		if (dst == DIR_FOUND)
			dir_ldap_merge_domain(*rec_r, dom);
		else
			dir_record_free(rec_r);
		dir_record_free(&dom);
		st = dst;
	}
	conn_release(p, c, broken, "certmap search failed");
	if (st != DIR_FOUND)
		return st;
	if (plan.verifycert) {
		bool match = false;

		for (size_t i = 0; i < (*rec_r)->n_certs && tls->has_cert_sha256; i++)
			match |= CRYPTO_memcmp((*rec_r)->cert_sha256[i], tls->cert_sha256, 32) == 0;
		if (!match) {
			sp_log(SP_LOG_NOTICE, "certmap_verifycert_failed", "backend=ldap dn=\"%s\"",
			       (*rec_r)->dn);
			dir_record_free(rec_r);
			return DIR_NOTFOUND;
		}
	}
	if ((*rec_r)->status == DIR_USER_DELETED) {
		dir_record_free(rec_r);
		return DIR_NOTFOUND;
	}
	return DIR_FOUND;
}

static void ldap_priv_free(struct ldap_priv *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_conns; i++)
		if (p->conns[i].ld != NULL)
			ldap_unbind_ext_s(p->conns[i].ld, NULL, NULL);
	free(p->conns);
	dir_ldap_cache_free(&p->cache);
	if (p->bindpw != NULL)
		sp_free_secret(p->bindpw, p->bindpw_len + 1);
	free(p->uri);
	free(p->cafile);
	free(p->binddn);
	free(p->basedn);
	free(p->userfilter);
	free(p->addressfilter);
	free(p->domainfilter);
	free(p->defaultdomain);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

static void dl_free(struct dir *d)
{
	ldap_priv_free(d->priv);
}

static const struct dir_backend ldap_backend = {
	.name = "ldap",
	.lookup = dl_lookup,
	.verify = dl_verify,
	.certmap = dl_certmap,
	.free = dl_free,
};

/* ---------------------------------------------------------------- setup */

/* The bind password: the first line of a file only its owner may read. */
static int read_password_file(const char *path, char **pw_r, size_t *len_r, char **error_r)
{
	struct stat st;
	char buf[1024];
	ssize_t n;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		*error_r = sp_xasprintf("ldap.bindpasswordfile %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		close(fd);
		*error_r = sp_xasprintf("ldap.bindpasswordfile %s: not a regular file of mode 0600 or "
					"0400 (refused)", path);
		return -1;
	}
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	len = strcspn(buf, "\r\n");
	if (len == 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		*error_r = sp_xasprintf("ldap.bindpasswordfile %s: empty", path);
		return -1;
	}
	*pw_r = sp_xstrndup(buf, len);
	*len_r = len;
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

bool dir_ldap_configured(const struct sp_conf *conf)
{
	return sp_conf_str(conf, "ldap.host") != NULL;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? sp_xstrdup(s) : NULL;
}

struct dir *dir_ldap_new(const struct sp_conf *conf, const struct certmap *certmap,
			 char **error_r)
{
	struct ldap_priv *p = sp_xcalloc(1, sizeof(*p));
	const char *host = sp_conf_str(conf, "ldap.host");
	const char *pwfile = sp_conf_str(conf, "ldap.bindpasswordfile");
	bool usessl = sp_conf_bool(conf, "ldap.usessl");
	long port = (long)sp_conf_int(conf, "ldap.port");
	const char *const *domains;

	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (host == NULL || host[0] == '\0' || strpbrk(host, "/ ") != NULL) {
		*error_r = sp_xasprintf("ldap.host: a host name or address is needed");
		goto fail;
	}
	if (port == 0)
		port = usessl ? 636 : 389;
	p->uri = sp_xasprintf("%s://%s%s%s:%ld", usessl ? "ldaps" : "ldap",
			      strchr(host, ':') != NULL ? "[" : "", host,
			      strchr(host, ':') != NULL ? "]" : "", port);
	p->starttls = sp_conf_bool(conf, "ldap.starttls");
	if (usessl && p->starttls) {
		*error_r = sp_xasprintf("ldap.usessl and ldap.starttls: choose one");
		goto fail;
	}
	p->cafile = dup_or_null(sp_conf_str(conf, "ldap.cafile"));
	p->binddn = dup_or_null(sp_conf_str(conf, "ldap.binddn"));
	p->basedn = dup_or_null(sp_conf_str(conf, "ldap.basedn"));
	if (p->basedn == NULL) {
		*error_r = sp_xasprintf("ldap.basedn must be set with ldap.host");
		goto fail;
	}
	if ((p->binddn != NULL) != (pwfile != NULL)) {
		*error_r = sp_xasprintf("ldap.binddn and ldap.bindpasswordfile go together");
		goto fail;
	}
	if (pwfile != NULL && read_password_file(pwfile, &p->bindpw, &p->bindpw_len, error_r) < 0)
		goto fail;
	p->userfilter = sp_xstrdup(sp_conf_str(conf, "ldap.userfilter"));
	p->addressfilter = sp_xstrdup(sp_conf_str(conf, "ldap.addressfilter"));
	p->domainfilter = sp_xstrdup(sp_conf_str(conf, "ldap.domainfilter"));
	p->defaultdomain = dup_or_null(sp_conf_str(conf, "ldap.defaultdomain"));
	if (p->defaultdomain == NULL && sp_conf_list(conf, "mailcore.domains", &domains) > 0)
		p->defaultdomain = sp_xstrdup(domains[0]);
	p->domainlookup = sp_conf_bool(conf, "ldap.domainlookup");
	p->compare = strcmp(sp_conf_str(conf, "ldap.authmethod"), "compare") == 0;
	p->timeout_ms = (long)sp_conf_int(conf, "ldap.timeout");
	p->retry_min_ms = (long)sp_conf_int(conf, "ldap.retry_min");
	p->retry_max_ms = (long)sp_conf_int(conf, "ldap.retry_max");
	if (p->retry_max_ms < p->retry_min_ms)
		p->retry_max_ms = p->retry_min_ms;
	p->n_conns = (size_t)sp_conf_int(conf, "ldap.connections");
	p->conns = sp_xcalloc(p->n_conns, sizeof(*p->conns));
	p->cache = dir_ldap_cache_new((size_t)sp_conf_int(conf, "ldap.cache_size"),
				      (long)sp_conf_int(conf, "ldap.cache_ttl"));
	{
		struct dir *d = dir_new_backend(&ldap_backend, p, certmap);

		dir_set_mailhost_names(d, conf, sp_conf_str(conf, "mailcore.hostname"));
		return d;
	}
fail:
	ldap_priv_free(p);
	return NULL;
}
