/* The client name resolver behind mc_resolve.h: each lookup is a job on
 * the resolver's own pool (getnameinfo NI_NAMEREQD, then getaddrinfo of
 * the name, which must list the client's address), with a deadline timer
 * on the loop. The loop side answers the caller exactly once: with the
 * job's result, or at the deadline with no name.
 * SECURITY: names come from whoever runs the client's reverse zone; they
 * pass mc_name_clean and count for the filters only once the forward
 * lookup confirms them (the reference's reverse+forward check).
 * Ownership: a request belongs to its caller until it is answered or
 * cancelled; a job belongs to the pool until its done callback, which
 * frees it. A job whose request is gone (deadline, cancel) keeps
 * job->req == NULL, so a late answer only feeds the cache. */
#include "mailcore/mc_resolve.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/store_pool.h"

struct lookup_job {
	struct mc_resolver *r;
	struct sockaddr_storage client;
	socklen_t client_len;
	uint8_t key[MC_ADDR_KEY_LEN];
	struct mc_name_result res;
	bool definitive;              /* an answer worth caching (not a DNS failure) */
	bool bad_name;                /* the PTR name failed mc_name_clean */
	struct mc_resolve_req *req;   /* NULL once the caller was answered or cancelled */
};

struct mc_resolve_req {
	struct mc_resolver *r;
	struct event *ev;             /* the deadline, or a 0 timer for an answer known at start */
	struct lookup_job *job;       /* on a pool thread; NULL if none */
	struct mc_name_result res;    /* the answer known at start */
	mc_resolve_fn *fn;
	void *arg;
};

struct mc_resolver {
	struct event_base *base;
	struct mc_resolve_config cfg;
	struct store_pool *pool;
	struct mc_name_cache *cache;  /* NULL: cache_size 0 */
	unsigned in_flight;
	bool busy_logged;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mc_resolve_config_from_conf(const struct sp_conf *conf, struct mc_resolve_config *cfg)
{
	const char *mode = sp_conf_str(conf, "mailcore.dns.reverse_lookups");

	cfg->mode = MC_DNS_WHEN_NEEDED;
	if (mode != NULL && strcmp(mode, "yes") == 0)
		cfg->mode = MC_DNS_YES;
	else if (mode != NULL && strcmp(mode, "no") == 0)
		cfg->mode = MC_DNS_NO;
	cfg->timeout_ms = (long)sp_conf_int(conf, "mailcore.dns.timeout");
	cfg->threads = (unsigned)sp_conf_int(conf, "mailcore.dns.threads");
	cfg->max_lookups = (unsigned)sp_conf_int(conf, "mailcore.dns.max_lookups");
	cfg->cache_size = (unsigned)sp_conf_int(conf, "mailcore.dns.cache_size");
	cfg->cache_ttl_ms = (long)sp_conf_int(conf, "mailcore.dns.cache_ttl");
}

struct mc_resolver *mc_resolver_new(struct event_base *base, const struct mc_resolve_config *cfg,
				    char **error_r)
{
	struct mc_resolver *r = sp_xcalloc(1, sizeof(*r));

	r->base = base;
	r->cfg = *cfg;
	if (r->cfg.max_lookups == 0)
		r->cfg.max_lookups = 1;
	/* the pool never queues more than max_lookups: in_flight is checked first */
	r->pool = store_pool_new(base, cfg->threads, r->cfg.max_lookups, error_r);
	if (r->pool == NULL) {
		free(r);
		return NULL;
	}
	if (cfg->cache_size > 0 && cfg->cache_ttl_ms > 0)
		r->cache = mc_name_cache_new(cfg->cache_size, cfg->cache_ttl_ms);
	return r;
}

void mc_resolver_free(struct mc_resolver **rp)
{
	struct mc_resolver *r;

	if (rp == NULL || *rp == NULL)
		return;
	r = *rp;
	/* runs the remaining done callbacks, which still use the cache */
	store_pool_free(&r->pool);
	mc_name_cache_free(&r->cache);
	free(r);
	*rp = NULL;
}

enum mc_dns_mode mc_resolver_mode(const struct mc_resolver *r)
{
	return r != NULL ? r->cfg.mode : MC_DNS_NO;
}

unsigned mc_resolver_in_flight(const struct mc_resolver *r)
{
	return r != NULL ? r->in_flight : 0;
}

/* ---------------------------------------------------------------- pool side */

/* On a pool thread: touches only the job (and the system resolver). */
static void lookup_work(void *arg)
{
	struct lookup_job *j = arg;
	char host[NI_MAXHOST];
	struct addrinfo hints, *ai = NULL;
	int rc;

	j->res.source = "dns";
	rc = getnameinfo((const struct sockaddr *)&j->client, j->client_len, host, sizeof(host),
			 NULL, 0, NI_NAMEREQD);
	if (rc != 0) {
		/* no PTR record is an answer; a DNS failure is not */
		j->definitive = rc == EAI_NONAME;
		return;
	}
	host[sizeof(host) - 1] = '\0';
	if (mc_name_clean(host) < 0) {
		j->bad_name = true;
		j->definitive = true;
		return;
	}
	memcpy(j->res.name, host, strlen(host) + 1); /* mc_name_clean: at most MC_NAME_MAX */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, NULL, &hints, &ai);
	if (rc != 0) {
		j->definitive = rc == EAI_NONAME;
		return;
	}
	for (const struct addrinfo *p = ai; p != NULL && !j->res.verified; p = p->ai_next)
		j->res.verified = mc_addr_same(p->ai_addr, (const struct sockaddr *)&j->client);
	freeaddrinfo(ai);
	j->definitive = true;
}

static void req_answer(struct mc_resolve_req *req, const struct mc_name_result *res)
{
	mc_resolve_fn *fn = req->fn;
	void *arg = req->arg;
	struct mc_name_result copy = *res;

	/* the request is gone before fn runs: fn may close its connection */
	event_free(req->ev);
	free(req);
	fn(arg, &copy);
}

/* On the loop: the job finished (maybe long after its deadline). */
static void lookup_done(void *arg)
{
	struct lookup_job *j = arg;
	struct mc_resolver *r = j->r;

	r->in_flight--;
	if (r->in_flight < r->cfg.max_lookups)
		r->busy_logged = false;
	if (j->bad_name) {
		char ip[NI_MAXHOST];

		if (getnameinfo((const struct sockaddr *)&j->client, j->client_len, ip, sizeof(ip),
				NULL, 0, NI_NUMERICHOST) != 0)
			snprintf(ip, sizeof(ip), "?");
		sp_log(SP_LOG_NOTICE, "dns_bad_name", "client=%s why=\"PTR is not a host name\"", ip);
	}
	if (j->definitive && r->cache != NULL)
		mc_name_cache_put(r->cache, j->key, &j->res, now_ms());
	if (j->req != NULL) {
		j->req->job = NULL;
		req_answer(j->req, &j->res);
	}
	free(j);
}

/* On the loop: the deadline, or the answer known at start. */
static void on_req_timer(evutil_socket_t fd, short what, void *arg)
{
	struct mc_resolve_req *req = arg;
	struct mc_name_result res = {.source = "timeout"};

	(void)fd;
	(void)what;
	if (req->job == NULL) {
		req_answer(req, &req->res);
		return;
	}
	/* the job goes on; its answer will only feed the cache */
	req->job->req = NULL;
	req->job = NULL;
	sp_log(SP_LOG_NOTICE, "dns_timeout", "timeout_ms=%ld in_flight=%u", req->r->cfg.timeout_ms,
	       req->r->in_flight);
	req_answer(req, &res);
}

static socklen_t sockaddr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* A v4-mapped client is looked up as the IPv4 address it is. */
static void lookup_address(const uint8_t key[MC_ADDR_KEY_LEN], struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (key[0] == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, key + 1, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, key + 1, 16);
	}
}

struct mc_resolve_req *mc_resolve_start(struct mc_resolver *r, const struct sockaddr *client,
					mc_resolve_fn *fn, void *arg)
{
	struct mc_resolve_req *req = sp_xcalloc(1, sizeof(*req));
	uint8_t key[MC_ADDR_KEY_LEN];
	struct timeval tv = {0, 0};

	req->r = r;
	req->fn = fn;
	req->arg = arg;
	req->ev = evtimer_new(r->base, on_req_timer, req);
	if (req->ev == NULL) {
		sp_log(SP_LOG_CRIT, "dns_lookup", "why=\"evtimer_new failed (out of memory)\"");
		abort();
	}
	req->res.source = "no-address";
	if (mc_addr_key(client, key) == 0 &&
	    (r->cache == NULL || !mc_name_cache_get(r->cache, key, now_ms(), &req->res))) {
		req->res.source = "busy";
		if (r->in_flight < r->cfg.max_lookups) {
			struct lookup_job *j = sp_xcalloc(1, sizeof(*j));

			j->r = r;
			memcpy(j->key, key, sizeof(key));
			lookup_address(key, &j->client);
			j->client_len = sockaddr_len(&j->client);
			j->req = req;
			if (store_pool_submit(r->pool, lookup_work, lookup_done, j) == 0) {
				r->in_flight++;
				req->job = j;
				tv.tv_sec = r->cfg.timeout_ms / 1000;
				tv.tv_usec = (r->cfg.timeout_ms % 1000) * 1000;
			} else {
				free(j);
			}
		}
		if (req->job == NULL && !r->busy_logged) {
			r->busy_logged = true;
			sp_log(SP_LOG_WARN, "dns_busy", "in_flight=%u limit=%u (clients go on unnamed)",
			       r->in_flight, r->cfg.max_lookups);
		}
	}
	evtimer_add(req->ev, &tv);
	return req;
}

void mc_resolve_cancel(struct mc_resolve_req **reqp)
{
	struct mc_resolve_req *req;

	if (reqp == NULL || *reqp == NULL)
		return;
	req = *reqp;
	if (req->job != NULL)
		req->job->req = NULL;
	event_free(req->ev);
	free(req);
	*reqp = NULL;
}
