/* The POP3 server: its settings from sealpost.conf, the POP session
 * plugged into the shared listener/connection code (imap_pop_server.c).
 * Plain port service.pop.port (STLS via tlsd), backend
 * service.pop.backend for POPS relayed by tlsd with PROXY v2. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/dir.h"
#include "mailcore/filter.h"
#include "mailcore/pop.h"
#include "mailcore/imap_pop_server.h"
#include "mailcore/mailcore.h"

struct pop_server {
	struct pop_env env;
	struct filter *filter;
	char *store_root, *hostname;
	struct ips_server *ips;
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
	ce->env.tables = NULL;
	ce->env.dir = ce->env.dir_slot != NULL ? dir_ref(*ce->env.dir_slot) : NULL;
	if (ce->env.tables_slot != NULL && *ce->env.tables_slot != NULL) {
		ce->env.tables = dir_tables_ref(*ce->env.tables_slot);
		ce->env.users = ce->env.tables->users;
	}
	s = pop_session_new(&ce->env, &ci);
	if (s == NULL) {
		dir_tables_unref(&ce->env.tables);
		dir_unref(&ce->env.dir);
		free(ce);
	}
	return s;
}

static void s_free(void *s)
{
	struct pop_session *is = s;
	struct conn_env *ce = (struct conn_env *)pop_session_env(is);

	pop_session_free(&is);
	dir_tables_unref(&ce->env.tables);
	dir_unref(&ce->env.dir);
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
	.input_room = s_room,
	.feed = s_feed,
	.process = s_process,
	.eof = s_eof,
	.output = s_output,
	.consumed = s_consumed,
	.wants = s_wants,
	.tls_ready = s_tls,
	.timeout_ms = s_timeout_ms,
	.timeout = s_timeout,
	.set_resume = s_set_resume,
};

int pop_server_start(struct event_base *base, const struct sp_conf *conf,
		      const struct dir_users *users, const char *hostname,
		      struct pop_server **srv_r, char **error_r)
{
	struct pop_server *srv = sp_xcalloc(1, sizeof(*srv));
	const char *const *addrs, *const *admins;
	size_t n_addrs = sp_conf_list(conf, "mailcore.listenaddr", &addrs);
	unsigned port = (unsigned)sp_conf_int(conf, "service.pop.port");
	const char *backend = sp_conf_str(conf, "service.pop.backend");
	const char *store = sp_conf_str(conf, "mailcore.store");
	/* tlsd's keys: its handoff socket, and whether the service takes STARTTLS */
	const char *handoff = sp_conf_str(conf, "tlsd.handoff_socket");
	bool starttls = handoff != NULL && sp_conf_bool(conf, "service.pop.starttls");
	struct ips_config cfg;

	*srv_r = NULL;
	if (store == NULL || store[0] != '/') {
		*error_r = sp_xstrdup("mailcore.store must be an absolute path");
		free(srv);
		return -1;
	}
	srv->filter = filter_from_conf(conf, "pop", error_r);
	if (srv->filter == NULL) {
		free(srv);
		return -1;
	}
	if (filter_needs_client_name(srv->filter) &&
	    strcmp(sp_conf_str(conf, "mailcore.dns.reverse_lookups"), "no") == 0)
		sp_log(SP_LOG_WARN, "access_filter",
		       "service=pop note=\"mailcore.dns.reverse_lookups is no: name patterns match "
		       "no client, UNKNOWN matches every client\"");
	srv->store_root = sp_xstrdup(store);
	srv->hostname = sp_xstrdup(hostname);
	srv->env = (struct pop_env){
		.hostname = srv->hostname,
		.store_root = srv->store_root,
		.users = users,
		.filter = filter_rule_count(srv->filter) > 0 ? srv->filter : NULL,
		.n_admins = sp_conf_list(conf, "store.admins", &admins),
		.plaintext_min_cipher = (int)sp_conf_int(conf, "service.pop.plaintextmincipher"),
		.starttls = starttls,
		.max_errors = 20,
		.max_auth_failures = (unsigned)sp_conf_int(conf, "mailcore.smtp.max_auth_failures"),
		.timeout_ms = (long)sp_conf_int(conf, "service.pop.idletimeout"),
	};
	srv->env.admins = admins;
	cfg = (struct ips_config){
		.max_connections = (unsigned)sp_conf_int(conf, "service.pop.maxsessions"),
		.handoff_socket = starttls ? handoff : NULL,
		.proxy_header_timeout_ms = (long)sp_conf_int(conf, "mailcore.smtp.proxy_header_timeout"),
		.handoff_timeout_ms = 60000,
		.filter = srv->env.filter,
		.hostname = srv->hostname,
	};
	srv->ips = ips_server_new(base, &pop_ops, &srv->env, &cfg);
	for (size_t i = 0; i < n_addrs && port != 0; i++)
		if (ips_server_listen_tcp(srv->ips, addrs[i], port, error_r) < 0)
			goto fail;
	if (backend != NULL && ips_server_listen_backend(srv->ips, backend, error_r) < 0)
		goto fail;
	*srv_r = srv;
	return 0;
fail:
	pop_server_free(&srv);
	return -1;
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
		ips_server_set_resolver(srv->ips, resolver);
}

void pop_server_set_tables(struct pop_server *srv, struct dir_tables *const *slot)
{
	if (srv != NULL)
		srv->env.tables_slot = slot;
}

void pop_server_stop_listening(struct pop_server *srv)
{
	ips_server_stop_listening(srv->ips);
}

unsigned pop_server_connections(const struct pop_server *srv)
{
	return ips_server_connections(srv->ips);
}

void pop_server_free(struct pop_server **srvp)
{
	struct pop_server *srv = *srvp;

	if (srv == NULL)
		return;
	ips_server_free(&srv->ips);
	filter_free(&srv->filter);
	free(srv->store_root);
	free(srv->hostname);
	free(srv);
	*srvp = NULL;
}

void pop_server_set_dir(struct pop_server *srv, struct dir *const *slot)
{
	if (srv != NULL)
		srv->env.dir_slot = slot;
}
