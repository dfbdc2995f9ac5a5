/* The POP3 server: its settings from sealpost.conf, the POP session
 * plugged into the shared listener/connection code (imap_pop_server.c);
 * the settings it shares with the other protocol are read in
 * imap_pop_service.c.
 * Plain port service.pop.port (STLS via tlsd), backend
 * service.pop.backend for POPS relayed by tlsd with PROXY v2. */
#include <stdlib.h>

#include "common/xalloc.h"
#include "mailcore/pop.h"
#include "mailcore/imap_pop_server.h"
#include "mailcore/mailcore.h"

struct pop_server {
	struct pop_env env;
	struct ips_service svc;
};

/* Each connection gets its own copy of the env holding a ref of mailcore's
 * current table snapshot and directory, so a SIGHUP never frees users or a
 * directory a session uses. */
struct conn_env {
	struct pop_env env;  /* first: the session's env pointer is this struct */
};

static void *s_new(const void *env, const struct ips_facts *f)
{
	struct pop_conn_info ci = {
		.backend = f->backend, .client = f->client, .local = f->local, .tls = f->tls,
		.client_name = f->client_name, .client_name_verified = f->client_name_verified,
	};

	struct conn_env *ce = sp_xmalloc(sizeof(*ce));
	struct pop_session *s;

	ce->env = *(const struct pop_env *)env;
	ips_snapshot_take(ce->env.tables_slot, ce->env.dir_slot, &ce->env.tables, &ce->env.dir,
			  &ce->env.users);
	s = pop_session_new(&ce->env, &ci);
	if (s == NULL) {
		ips_snapshot_drop(&ce->env.tables, &ce->env.dir);
		free(ce);
	}
	return s;
}

static void s_free(void *s)
{
	struct pop_session *is = s;
	struct conn_env *ce = (struct conn_env *)pop_session_env(is);

	pop_session_free(&is);
	ips_snapshot_drop(&ce->env.tables, &ce->env.dir);
	free(ce);
}

static size_t s_room(const void *s) { return pop_session_input_room(s); }
static size_t s_feed(void *s, const void *d, size_t n) { return pop_session_feed(s, d, n); }
static void s_process(void *s) { pop_session_process(s); }
static void s_eof(void *s) { pop_session_eof(s); }
static const uint8_t *s_output(const void *s, size_t *n) { return pop_session_output(s, n); }
static void s_consumed(void *s, size_t n) { pop_session_output_consumed(s, n); }
static unsigned s_wants(const void *s) { return pop_session_wants(s); }
static void s_tls(void *s, const struct sp_proxy_info *f) { pop_session_tls_ready(s, f); }
static long s_timeout_ms(const void *s) { return pop_session_timeout_ms(s); }
static void s_timeout(void *s) { pop_session_timeout(s); }

static void s_set_resume(void *s, void (*fn)(void *), void *arg)
{
	pop_session_set_resume(s, fn, arg);
}

static const struct ips_ops pop_ops = {
	.service = "pop",
	.refused = "-ERR [SYS/PERM] Access denied\r\n",
	.busy = "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
	.session_new = s_new,
	.session_free = s_free,
	.io = {
		.input_room = s_room,
		.feed = s_feed,
		.process = s_process,
		.eof = s_eof,
		.output = s_output,
		.consumed = s_consumed,
		.wants = s_wants,
		.timeout_ms = s_timeout_ms,
	},
	.tls_ready = s_tls,
	.timeout = s_timeout,
	.set_resume = s_set_resume,
};

int pop_server_start(struct event_base *base, const struct sp_conf *conf,
		     const struct dir_users *users, const char *hostname,
		     struct pop_server **srv_r, char **error_r)
{
	struct pop_server *srv = sp_xcalloc(1, sizeof(*srv));

	*srv_r = NULL;
	if (ips_service_init(&srv->svc, conf, "pop", hostname, error_r) < 0) {
		free(srv);
		return -1;
	}
	srv->env = (struct pop_env){
		.hostname = srv->svc.hostname,
		.store_root = srv->svc.store_root,
		.users = users,
		.filter = srv->svc.env_filter,
		.admins = srv->svc.admins,
		.n_admins = srv->svc.n_admins,
		.plaintext_min_cipher = srv->svc.plaintext_min_cipher,
		.starttls = srv->svc.starttls,
		.max_errors = 20,
		.max_auth_failures = srv->svc.max_auth_failures,
		.timeout_ms = (long)sp_conf_int(conf, "service.pop.idletimeout"),
	};
	if (ips_service_listen(&srv->svc, base, conf, "pop", &pop_ops, &srv->env, error_r) < 0) {
		pop_server_free(&srv);
		return -1;
	}
	*srv_r = srv;
	return 0;
}

void pop_server_set_pool(struct pop_server *srv, struct store_pool *pool)
{
	/* sessions read env as they go: from now on they use the pool */
	if (srv != NULL)
		srv->env.pool = pool;
}

void pop_server_set_resolver(struct pop_server *srv, struct mc_resolver *resolver)
{
	if (srv != NULL)
		ips_server_set_resolver(srv->svc.ips, resolver);
}

void pop_server_set_tables(struct pop_server *srv, struct dir_tables *const *slot)
{
	if (srv != NULL)
		srv->env.tables_slot = slot;
}

void pop_server_stop_listening(struct pop_server *srv)
{
	ips_server_stop_listening(srv->svc.ips);
}

unsigned pop_server_connections(const struct pop_server *srv)
{
	return ips_server_connections(srv->svc.ips);
}

void pop_server_free(struct pop_server **srvp)
{
	struct pop_server *srv = *srvp;

	if (srv == NULL)
		return;
	ips_service_fini(&srv->svc);
	free(srv);
	*srvp = NULL;
}

void pop_server_set_dir(struct pop_server *srv, struct dir *const *slot)
{
	if (srv != NULL)
		srv->env.dir_slot = slot;
}
