/* The IMAP server: its settings from sealpost.conf, the IMAP session
 * plugged into the shared listener/connection code (imap_pop_server.c);
 * the settings it shares with the other protocol are read in
 * imap_pop_service.c.
 * Plain port service.imap.port (STARTTLS via tlsd), backend
 * service.imap.backend for IMAPS relayed by tlsd with PROXY v2. */
#include <stdlib.h>

#include "common/xalloc.h"
#include "mailcore/imap.h"
#include "mailcore/imap_pop_server.h"
#include "mailcore/mailcore.h"

struct imap_server {
	struct imap_env env;
	struct ips_service svc;
};

/* Each connection gets its own copy of the env holding a ref of mailcore's
 * current table snapshot and directory, so a SIGHUP never frees users or a
 * directory a session uses. */
struct conn_env {
	struct imap_env env;  /* first: the session's env pointer is this struct */
};

static void *s_new(const void *env, const struct ips_facts *f)
{
	struct imap_conn_info ci = {
		.backend = f->backend, .client = f->client, .local = f->local, .tls = f->tls,
		.client_name = f->client_name, .client_name_verified = f->client_name_verified,
	};

	struct conn_env *ce = sp_xmalloc(sizeof(*ce));
	struct imap_session *s;

	ce->env = *(const struct imap_env *)env;
	ips_snapshot_take(ce->env.tables_slot, ce->env.dir_slot, &ce->env.tables, &ce->env.dir,
			  &ce->env.users);
	s = imap_session_new(&ce->env, &ci);
	if (s == NULL) {
		ips_snapshot_drop(&ce->env.tables, &ce->env.dir);
		free(ce);
	}
	return s;
}

static void s_free(void *s)
{
	struct imap_session *is = s;
	struct conn_env *ce = (struct conn_env *)imap_session_env(is);

	imap_session_free(&is);
	ips_snapshot_drop(&ce->env.tables, &ce->env.dir);
	free(ce);
}

static size_t s_room(const void *s) { return imap_session_input_room(s); }
static size_t s_feed(void *s, const void *d, size_t n) { return imap_session_feed(s, d, n); }
static void s_process(void *s) { imap_session_process(s); }
static void s_eof(void *s) { imap_session_eof(s); }
static const uint8_t *s_output(const void *s, size_t *n) { return imap_session_output(s, n); }
static void s_consumed(void *s, size_t n) { imap_session_output_consumed(s, n); }
static unsigned s_wants(const void *s) { return imap_session_wants(s); }
static void s_tls(void *s, const struct sp_proxy_info *f) { imap_session_tls_ready(s, f); }
static long s_timeout_ms(const void *s) { return imap_session_timeout_ms(s); }
static void s_timeout(void *s) { imap_session_timeout(s); }
static long s_poll_ms(const void *s) { return imap_session_poll_ms(s); }
static void s_poll(void *s) { imap_session_poll(s); }

static void s_set_resume(void *s, void (*fn)(void *), void *arg)
{
	imap_session_set_resume(s, fn, arg);
}

static const struct ips_ops imap_ops = {
	.service = "imap",
	.refused = "* BYE Access denied\r\n",
	.busy = "* BYE Too many connections, try again later\r\n",
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
	.poll_ms = s_poll_ms,
	.poll = s_poll,
};

int imap_server_start(struct event_base *base, const struct sp_conf *conf,
		      const struct dir_users *users, const char *hostname,
		      struct imap_server **srv_r, char **error_r)
{
	struct imap_server *srv = sp_xcalloc(1, sizeof(*srv));

	*srv_r = NULL;
	if (ips_service_init(&srv->svc, conf, "imap", hostname, error_r) < 0) {
		free(srv);
		return -1;
	}
	srv->env = (struct imap_env){
		.hostname = srv->svc.hostname,
		.store_root = srv->svc.store_root,
		.users = users,
		.filter = srv->svc.env_filter,
		.admins = srv->svc.admins,
		.n_admins = srv->svc.n_admins,
		.plaintext_min_cipher = srv->svc.plaintext_min_cipher,
		.starttls = srv->svc.starttls,
		.max_message_size = (uint64_t)sp_conf_int(conf, "mailcore.smtp.max_message_size"),
		.max_bad_commands = (unsigned)sp_conf_int(conf, "service.imap.maxbadcommands"),
		.max_auth_failures = srv->svc.max_auth_failures,
		.login_timeout_ms = (long)sp_conf_int(conf, "service.imap.logintimeout"),
		.idle_timeout_ms = (long)sp_conf_int(conf, "service.imap.idletimeout"),
	};
	if (ips_service_listen(&srv->svc, base, conf, "imap", &imap_ops, &srv->env, error_r) < 0) {
		imap_server_free(&srv);
		return -1;
	}
	*srv_r = srv;
	return 0;
}

void imap_server_set_pool(struct imap_server *srv, struct store_pool *pool)
{
	/* sessions read env as they go: from now on they use the pool */
	if (srv != NULL)
		srv->env.pool = pool;
}

void imap_server_set_resolver(struct imap_server *srv, struct mc_resolver *resolver)
{
	if (srv != NULL)
		ips_server_set_resolver(srv->svc.ips, resolver);
}

void imap_server_set_tables(struct imap_server *srv, struct dir_tables *const *slot)
{
	if (srv != NULL)
		srv->env.tables_slot = slot;
}

void imap_server_stop_listening(struct imap_server *srv)
{
	ips_server_stop_listening(srv->svc.ips);
}

unsigned imap_server_connections(const struct imap_server *srv)
{
	return ips_server_connections(srv->svc.ips);
}

void imap_server_free(struct imap_server **srvp)
{
	struct imap_server *srv = *srvp;

	if (srv == NULL)
		return;
	ips_service_fini(&srv->svc);
	free(srv);
	*srvp = NULL;
}

void imap_server_set_dir(struct imap_server *srv, struct dir *const *slot)
{
	if (srv != NULL)
		srv->env.dir_slot = slot;
}
