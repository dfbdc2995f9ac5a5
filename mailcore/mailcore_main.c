/* mailcore: the mail daemon (SMTP on 25, submission on 587, and the PROXY
 * v2 backend that tlsd relays implicit TLS to; local delivery into Maildir;
 * users file, aliases and the access mapping tables, reloaded on SIGHUP).
 * A master binds the listeners, drops privileges and forks
 * mailcore.workers workers that share them (mc_master.c supervises them);
 * each worker has its own event loop, a small thread pool for the
 * store's fsyncs and crypt(3), and threads for client name lookups. The
 * outbound queue manager runs in the master alone (SIGUSR1 = flush);
 * workers wake it through a pipe.
 *
 * SECURITY
 *   Processes: the workers parse SMTP, IMAP and POP from the network; the
 *   master parses nothing but its configuration and files, and takes only
 *   single bytes from the workers (ready, mail queued). The master also
 *   talks SMTP out as the queue manager's client (below).
 *   Trust: mailcore parses SMTP from the network. It never sees a private
 *   key or a PIN: TLS is tlsd's, and TLS facts reach mailcore only from
 *   tlsd (the PROXY v2 header on the backend listener, or the STARTTLS
 *   handoff reply), never from a client on a plain listener.
 *   Touches: the store and spool directories (writes), the users, aliases
 *   and mappings files (reads), tlsd's handoff socket (connects), other
 *   mail servers or the smarthost (connects out, STARTTLS as a client with
 *   no key; their replies are parsed by smtpc_reply.c, which is fuzzed). Password
 *   hashes stay in memory; passwords are wiped after each check.
 *   Limits: every buffer is bounded (see mailcore.h and sealpost.conf keys). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/privs.h"
#include "common/xalloc.h"
#include "conf/conf.h"
#include "config.h"
#include "mailcore/certmap.h"
#include "mailcore/dir.h"
#include "mailcore/filter.h"
#include "mailcore/imap.h"
#include "mailcore/mailcore.h"
#include "mailcore/mc_file.h"
#include "mailcore/mc_listen.h"
#include "mailcore/mc_master.h"
#include "mailcore/mc_resolve.h"
#include "mailcore/pop.h"
#include "mailcore/queue.h"
#include "mailcore/store_pool.h"

struct mailcore {
	struct sp_conf *conf;
	struct smtp_env env;
	char hostname[256];
	char **domains;
	size_t n_domains;
	struct dir_tables *tables;  /* the current snapshot (SIGHUP swaps it) */
	struct event_base *base;
	struct smtp_server *srv;
	struct imap_server *imap;  /* NULL while service.imap.* is unset */
	struct pop_server *pop;
	struct store_pool *pool;   /* fsyncs, crypt, DNS, queue files: off the loop */
	struct queue_manager *qm;  /* outbound queue, in this loop; NULL = off */
	struct certmap *certmap;   /* mailcore.certmapfile; NULL = built-in */
	struct dir *dir;           /* LDAP, or the users file of tables */
	struct store_pool *dir_pool; /* LDAP calls: their own threads */
	struct mc_resolver *resolver; /* client names: their own threads */
	struct mc_master *master;  /* the master's: its workers; NULL in a worker */
	int wake_fd;               /* a worker's end of the queue manager's wake pipe */
	struct filter *auth_filter; /* service.smtp.domain(not)allowed */
};

static void usage(FILE *out)
{
	fprintf(out, "usage: mailcore -c sealpost.conf [-t]\n"
		     "  -c FILE  configuration (default " SP_SYSCONFDIR "/sealpost.conf)\n"
		     "  -t       check the configuration and the files it names, then exit\n");
}

/* The users-file directory over snapshot t; mailhost= compares with the
 * names this host answers to, as dir_ldap_new sets them for LDAP. */
static struct dir *users_dir(const struct mailcore *mc, struct dir_tables *t, struct store_pool *pool)
{
	struct dir *d = dir_users_new(t, NULL, mc->certmap, pool);

	dir_set_mailhost_names(d, mc->conf, mc->hostname);
	return d;
}

static int setup(struct mailcore *mc, const char *conf_path, char **error_r)
{
	const char *const *items;
	const char *s;
	size_t n;
	int level;

	mc->conf = sp_conf_new();
	if (sp_conf_add_all(mc->conf, error_r) < 0 || sp_conf_load(mc->conf, conf_path, error_r) < 0)
		return -1;

	level = sp_log_level_parse(sp_conf_str(mc->conf, "log.level"));
	if (sp_log_open("mailcore", sp_conf_str(mc->conf, "log.file"),
			level < 0 ? SP_LOG_INFO : (enum sp_log_level)level, error_r) < 0)
		return -1;

	s = sp_conf_str(mc->conf, "mailcore.hostname");
	if (s != NULL) {
		snprintf(mc->hostname, sizeof(mc->hostname), "%s", s);
	} else if (gethostname(mc->hostname, sizeof(mc->hostname)) < 0) {
		*error_r = sp_xasprintf("gethostname: %s", strerror(errno));
		return -1;
	}
	mc->hostname[sizeof(mc->hostname) - 1] = '\0';
	for (char *p = mc->hostname; *p != '\0'; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	if (!mc_valid_hostname(mc->hostname, strlen(mc->hostname))) {
		*error_r = sp_xasprintf("mailcore.hostname: \"%s\" is not a host name", mc->hostname);
		return -1;
	}

	n = sp_conf_list(mc->conf, "mailcore.domains", &items);
	mc->domains = sp_xcalloc(n + 1, sizeof(*mc->domains));
	for (size_t i = 0; i < n; i++) {
		char *d = sp_xstrdup(items[i]);

		for (char *p = d; *p != '\0'; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		mc->domains[mc->n_domains++] = d;
		if (!mc_valid_hostname(d, strlen(d))) {
			*error_r = sp_xasprintf("mailcore.domains: \"%s\" is not a domain", d);
			return -1;
		}
	}

	mc->tables = dir_tables_load(sp_conf_str(mc->conf, "mailcore.users"),
				     sp_conf_str(mc->conf, "mailcore.aliases"),
				     sp_conf_str(mc->conf, "mailcore.mappings"), error_r);
	if (mc->tables == NULL)
		return -1;
	if (sp_conf_str(mc->conf, "mailcore.certmapfile") != NULL) {
		mc->certmap = certmap_load(sp_conf_str(mc->conf, "mailcore.certmapfile"), error_r);
		if (mc->certmap == NULL)
			return -1;
	}
	mc->dir = dir_ldap_configured(mc->conf) ? dir_ldap_new(mc->conf, mc->certmap, error_r)
						: users_dir(mc, mc->tables, NULL);
	if (mc->dir == NULL)
		return -1;

	mc->env = (struct smtp_env){
		.hostname = mc->hostname,
		.domains = (const char *const *)mc->domains,
		.n_domains = mc->n_domains,
		.store_root = sp_conf_str(mc->conf, "mailcore.store"),
		.queue_dir = sp_conf_str(mc->conf, "mailcore.queue"),
		.hold_dir = sp_conf_str(mc->conf, "mailcore.hold"),
		.max_message_size = (uint64_t)sp_conf_int(mc->conf, "mailcore.smtp.max_message_size"),
		.max_recipients = (unsigned)sp_conf_int(mc->conf, "mailcore.smtp.max_recipients"),
		.holdlimit = (unsigned)sp_conf_int(mc->conf, "mailcore.smtp.holdlimit"),
		.max_errors = (unsigned)sp_conf_int(mc->conf, "mailcore.smtp.max_errors"),
		.max_auth_failures = (unsigned)sp_conf_int(mc->conf, "mailcore.smtp.max_auth_failures"),
		.plaintext_min_cipher = (int)sp_conf_int(mc->conf, "service.smtp.plaintextmincipher"),
		/* tlsd's keys: its handoff socket, and whether the service takes STARTTLS */
		.starttls = sp_conf_str(mc->conf, "tlsd.handoff_socket") != NULL &&
			    sp_conf_bool(mc->conf, "service.smtp.starttls"),
		.command_timeout_ms = (long)sp_conf_int(mc->conf, "mailcore.smtp.command_timeout"),
		.data_timeout_ms = (long)sp_conf_int(mc->conf, "mailcore.smtp.data_timeout"),
		.users = mc->tables->users,
		.aliases = mc->tables->aliases,
		.maps = mc->tables->maps,
		.tables = mc->tables,
		.dir = mc->dir,
	};
	if (mc->env.store_root == NULL || mc->env.store_root[0] != '/') {
		*error_r = sp_xasprintf("mailcore.store must be an absolute path");
		return -1;
	}
	mc->auth_filter = filter_from_conf(mc->conf, "smtp", error_r);
	if (mc->auth_filter == NULL)
		return -1;
	if (filter_rule_count(mc->auth_filter) > 0)
		mc->env.auth_filter = mc->auth_filter;
	return 0;
}

static int start_listeners(struct mailcore *mc, char **error_r)
{
	const char *const *addrs;
	size_t n = sp_conf_list(mc->conf, "mailcore.listenaddr", &addrs);
	unsigned smtp_port = (unsigned)sp_conf_int(mc->conf, "service.smtp.port");
	unsigned sub_port = (unsigned)sp_conf_int(mc->conf, "service.submission.port");
	const char *backend = sp_conf_str(mc->conf, "service.smtp.backend");
	struct smtp_server_config cfg = {
		.max_connections = (unsigned)sp_conf_int(mc->conf, "mailcore.smtp.max_connections"),
		.handoff_socket = mc->env.starttls ? sp_conf_str(mc->conf, "tlsd.handoff_socket") : NULL,
		.proxy_header_timeout_ms =
			(long)sp_conf_int(mc->conf, "mailcore.smtp.proxy_header_timeout"),
	};

	mc->srv = smtp_server_new(mc->base, &mc->env, &cfg);
	for (size_t i = 0; i < n; i++) {
		if (smtp_port != 0 &&
		    smtp_server_listen_tcp(mc->srv, SMTP_LISTEN_SMTP, addrs[i], smtp_port, error_r) < 0)
			return -1;
		if (sub_port != 0 && smtp_server_listen_tcp(mc->srv, SMTP_LISTEN_SUBMISSION, addrs[i],
							    sub_port, error_r) < 0)
			return -1;
	}
	if (backend != NULL && smtp_server_listen_backend(mc->srv, backend, error_r) < 0)
		return -1;
	if (imap_server_start(mc->base, mc->conf, mc->tables->users, mc->hostname, &mc->imap,
			      error_r) < 0 ||
	    pop_server_start(mc->base, mc->conf, mc->tables->users, mc->hostname, &mc->pop,
			     error_r) < 0)
		return -1;
	/* connections take a ref of the current snapshot: SIGHUP swaps it */
	imap_server_set_tables(mc->imap, &mc->tables);
	pop_server_set_tables(mc->pop, &mc->tables);
	imap_server_set_dir(mc->imap, &mc->dir);
	pop_server_set_dir(mc->pop, &mc->dir);
	return 0;
}

/* Listeners are bound (as root when started as root). The unix sockets tlsd
 * connects to go to the unprivileged user tlsd's workers run as, then
 * mailcore switches to that user for good. */
static int drop_privileges(struct mailcore *mc, char **error_r)
{
	const char *user = sp_conf_str(mc->conf, "user");
	const char *group = sp_conf_str(mc->conf, "group");
	const char *const *names;
	size_t n;
	uid_t uid;
	gid_t gid;

	if (sp_privs_resolve(user, group, &uid, &gid, error_r) < 0)
		return -1;
	n = sp_conf_match(mc->conf, "service.*.backend", &names);
	for (size_t i = 0; i < n; i++) {
		const char *path = sp_conf_str(mc->conf, names[i]);

		if (path != NULL && path[0] == '/' && sp_privs_chown(path, uid, gid, error_r) < 0)
			return -1;
	}
	return sp_privs_drop("mailcore", user, uid, gid, error_r);
}

/* SIGHUP: the users, aliases and mappings files again, as a new snapshot.
 * New sessions get it; running ones keep theirs (a ref) to their end. A
 * file that does not parse is refused and the old snapshot stays. */
static bool reload_tables(struct mailcore *mc)
{
	char *error = NULL;
	struct dir_tables *t = dir_tables_load(sp_conf_str(mc->conf, "mailcore.users"),
					       sp_conf_str(mc->conf, "mailcore.aliases"),
					       sp_conf_str(mc->conf, "mailcore.mappings"), &error);

	if (t == NULL) {
		sp_log(SP_LOG_ERR, "reload", "result=refused why=\"%s\" (the old tables stay)",
		       error != NULL ? error : "");
		free(error);
		return false;
	}
	dir_tables_unref(&mc->tables);
	mc->tables = t;
	mc->env.tables = t;
	if (strcmp(dir_backend_name(mc->dir), "users") == 0) {
		struct dir *d = users_dir(mc, t, dir_pool(mc->dir));

		dir_unref(&mc->dir);
		mc->dir = d;
		mc->env.dir = d;
	}
	mc->env.users = t->users;
	mc->env.aliases = t->aliases;
	mc->env.maps = t->maps;
	sp_log(SP_LOG_NOTICE, "reload", "result=ok users=%zu", dir_users_count(t->users));
	return true;
}

/* ------------------------------------------------------------ a worker */

/* A worker's signals: SIGHUP (forwarded by the master) reloads its own
 * tables; SIGTERM/SIGINT stop it as the single daemon stopped. */
static void worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct mailcore *mc = arg;

	(void)what;
	if (sig == SIGHUP) {
		(void)reload_tables(mc);
		return;
	}
	sp_log(SP_LOG_NOTICE, "shutdown", "signal=%d connections=%u", (int)sig,
	       smtp_server_connections(mc->srv));
	event_base_loopbreak(mc->base);
}

static void worker_on_queued(void *arg)
{
	mc_master_wake(((struct mailcore *)arg)->wake_fd);
}

/* A worker's store pool (and LDAP's, and the resolver's threads), made
 * after the fork: threads never cross a fork(). */
static int worker_start_pools(struct mailcore *mc, char **error_r)
{
	mc->pool = store_pool_new(mc->base, (unsigned)sp_conf_int(mc->conf, "mailcore.pool.threads"),
				  (unsigned)sp_conf_int(mc->conf, "mailcore.pool.max_queued"), error_r);
	if (mc->pool == NULL)
		return -1;
	mc->env.pool = mc->pool;
	if (strcmp(dir_backend_name(mc->dir), "ldap") == 0) {
		mc->dir_pool = store_pool_new(mc->base, (unsigned)sp_conf_int(mc->conf, "ldap.threads"),
					      (unsigned)sp_conf_int(mc->conf, "ldap.max_queued"), error_r);
		if (mc->dir_pool == NULL)
			return -1;
		dir_set_pool(mc->dir, mc->dir_pool);
	} else {
		dir_set_pool(mc->dir, mc->pool);
	}
	imap_server_set_pool(mc->imap, mc->pool);
	pop_server_set_pool(mc->pop, mc->pool);
	{
		struct mc_resolve_config rcfg;

		mc_resolve_config_from_conf(mc->conf, &rcfg);
		if (rcfg.mode != MC_DNS_NO) {
			mc->resolver = mc_resolver_new(mc->base, &rcfg, error_r);
			if (mc->resolver == NULL)
				return -1;
		}
		smtp_server_set_resolver(mc->srv, mc->resolver);
		imap_server_set_resolver(mc->imap, mc->resolver);
		pop_server_set_resolver(mc->pop, mc->resolver);
	}
	if (mc->env.queue_dir != NULL && sp_conf_bool(mc->conf, "mailcore.queue.delivery")) {
		/* the queue manager is the master's: a byte down the pipe wakes it */
		mc->env.queued = worker_on_queued;
		mc->env.queued_arg = mc;
	}
	return 0;
}

static void teardown(struct mailcore *mc);

/* The master's objects as they were at the fork: a worker never uses nor
 * frees them (their threads and fds are the master's), it only keeps them
 * reachable. */
static struct mailcore inherited;

/* mc_master's worker_main: the SMTP, IMAP and POP servers on the inherited
 * listeners, in a loop of the worker's own. */
static int worker_main(void *arg, unsigned index, int ready_fd, int wake_fd)
{
	struct mailcore *mc = arg;
	static const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
	struct event *sigs[3] = {NULL, NULL, NULL};
	unsigned char byte = (unsigned char)index;
	sigset_t stop_set;
	char *error = NULL;
	int rc = 1;

	inherited = *mc;
	mc->base = NULL;
	mc->pool = mc->dir_pool = NULL;
	mc->qm = NULL;
	mc->resolver = NULL;
	mc->master = NULL;
	mc->srv = NULL;
	mc->imap = NULL;
	mc->pop = NULL;
	mc->wake_fd = wake_fd;
	mc->env.pool = NULL;
	mc->env.queued = NULL;
	mc->env.queued_arg = NULL;
	/* a directory of its own: the master's may hold connections and a pool */
	mc->dir = dir_ldap_configured(mc->conf) ? dir_ldap_new(mc->conf, mc->certmap, &error)
						: users_dir(mc, mc->tables, NULL);
	mc->env.dir = mc->dir;
	mc->base = event_base_new();
	if (mc->dir == NULL || mc->base == NULL || start_listeners(mc, &error) < 0 ||
	    worker_start_pools(mc, &error) < 0) {
		sp_log(SP_LOG_ERR, "worker_start_failed", "worker=%u why=\"%s\"", index,
		       error != NULL ? error : "no event base");
		free(error);
		goto out;
	}
	for (size_t i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(mc->base, signums[i], worker_on_signal, mc);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) < 0) {
			sp_log(SP_LOG_ERR, "worker_start_failed", "worker=%u why=signals", index);
			goto out;
		}
	}
	sp_log(SP_LOG_INFO, "worker_ready", "worker=%u pid=%ld", index, (long)getpid());
	while (write(ready_fd, &byte, 1) < 0 && errno == EINTR)
		;
	if (event_base_dispatch(mc->base) < 0) {
		sp_log(SP_LOG_ERR, "event_loop_failed", "worker=%u why=dispatch", index);
		goto out;
	}
	rc = 0;
out:
	/* the master forwards the stop that a process-group kill already
	 * brought: a second one must not cut the teardown short */
	sigemptyset(&stop_set);
	for (size_t i = 0; i < 3; i++)
		sigaddset(&stop_set, signums[i]);
	sigprocmask(SIG_BLOCK, &stop_set, NULL);
	for (size_t i = 0; i < 3; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	teardown(mc);
	mc_listen_close_all(false);
	return rc;
}

/* ------------------------------------------------------------ the master */

static bool master_reload(void *arg)
{
	return reload_tables(arg);
}

static void master_flush(void *arg)
{
	/* spqueue flush */
	queue_manager_kick(((struct mailcore *)arg)->qm, true);
}

static void master_queued(void *arg)
{
	queue_manager_kick(((struct mailcore *)arg)->qm, false);
}

static void master_ready(void *arg)
{
	struct mailcore *mc = arg;

	sp_log(SP_LOG_INFO, "ready", "pid=%ld users=%zu domains=%zu workers=%u", (long)getpid(),
	       dir_users_count(mc->tables->users), mc->n_domains,
	       mc_master_workers_alive(mc->master));
}

static void master_stopping(void *arg)
{
	/* in-flight deliveries finish; nothing new starts */
	queue_manager_stop(((struct mailcore *)arg)->qm);
}

/* Every listener bound once, here, before privileges go: the servers made
 * on a scratch loop fill the registry (mc_listen.c), then go; the workers
 * register the same sockets in their own loops. */
static int bind_listeners(struct mailcore *mc, char **error_r)
{
	int rc;

	mc->base = event_base_new();
	if (mc->base == NULL) {
		*error_r = sp_xstrdup("event_base_new failed");
		return -1;
	}
	rc = start_listeners(mc, error_r);
	smtp_server_free(&mc->srv);
	imap_server_free(&mc->imap);
	pop_server_free(&mc->pop);
	event_base_free(mc->base);
	mc->base = NULL;
	mc_listen_freeze();
	return rc;
}

/* The master's pool and the queue manager, once privileges are dropped
 * (their files belong to the unprivileged user) and the workers forked. */
static int master_start_queue(struct mailcore *mc, char **error_r)
{
	if (mc->env.queue_dir == NULL || !sp_conf_bool(mc->conf, "mailcore.queue.delivery"))
		return 0;
	mc->pool = store_pool_new(mc->base, (unsigned)sp_conf_int(mc->conf, "mailcore.pool.threads"),
				  (unsigned)sp_conf_int(mc->conf, "mailcore.pool.max_queued"), error_r);
	if (mc->pool == NULL)
		return -1;
	mc->env.pool = mc->pool;
	dir_set_pool(mc->dir, mc->pool);
	mc->qm = queue_manager_new(mc->base, mc->pool, &mc->env, mc->conf, error_r);
	return mc->qm == NULL ? -1 : 0;
}

static void teardown(struct mailcore *mc)
{
	mc_master_free(&mc->master);
	smtp_server_free(&mc->srv);
	imap_server_free(&mc->imap);
	pop_server_free(&mc->pop);
	/* the pool's last completions run with the queue manager still there,
	 * which starts nothing new once stopped */
	queue_manager_stop(mc->qm);
	store_pool_free(&mc->dir_pool);
	store_pool_free(&mc->pool);
	/* after the servers: their connections cancelled their lookups */
	mc_resolver_free(&mc->resolver);
	queue_manager_free(&mc->qm);
	dir_unref(&mc->dir);
	certmap_free(&mc->certmap);
	filter_free(&mc->auth_filter);
	if (mc->base != NULL)
		event_base_free(mc->base);
	dir_tables_unref(&mc->tables);
	for (size_t i = 0; i < mc->n_domains; i++)
		free(mc->domains[i]);
	free(mc->domains);
	sp_conf_free(&mc->conf);
}

int main(int argc, char **argv)
{
	struct mailcore mc = {.wake_fd = -1};
	const char *conf_path = SP_SYSCONFDIR "/sealpost.conf";
	bool check_only = false;
	char *error = NULL;
	struct mc_master_hooks hooks = {
		.worker_main = worker_main,
		.reload = master_reload,
		.flush = master_flush,
		.queued = master_queued,
		.ready = master_ready,
		.stopping = master_stopping,
		.arg = &mc,
	};
	int opt, rc = 1;

	while ((opt = getopt(argc, argv, "c:th")) != -1) {
		switch (opt) {
		case 'c': conf_path = optarg; break;
		case 't': check_only = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (sp_log_open("mailcore", NULL, SP_LOG_INFO, &error) < 0 || setup(&mc, conf_path, &error) < 0) {
		fprintf(stderr, "mailcore: %s\n", error != NULL ? error : "setup failed");
		free(error);
		teardown(&mc);
		return 1;
	}
	if (check_only) {
		printf("mailcore: configuration ok (%zu users, %zu domains)\n",
		       dir_users_count(mc.tables->users), mc.n_domains);
		teardown(&mc);
		return 0;
	}
	/* SIGXFSZ: a write past RLIMIT_FSIZE fails with EFBIG (a temporary
	 * store failure) instead of killing the daemon */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || signal(SIGXFSZ, SIG_IGN) == SIG_ERR) {
		fprintf(stderr, "mailcore: cannot ignore SIGPIPE\n");
		teardown(&mc);
		return 1;
	}
	/* Bind (as root when started as root), drop, fork the workers while no
	 * thread exists, then start the master's own pool and queue manager. */
	if (bind_listeners(&mc, &error) < 0 || drop_privileges(&mc, &error) < 0 ||
	    (mc.base = event_base_new()) == NULL ||
	    (mc.master = mc_master_start(mc.base,
					 mc_master_worker_count(sp_conf_int(mc.conf, "mailcore.workers")),
					 &hooks, &error)) == NULL ||
	    master_start_queue(&mc, &error) < 0) {
		if (error == NULL)
			error = sp_xstrdup("event_base_new failed");
		sp_log(SP_LOG_ERR, "startup_failed", "why=\"%s\"", error);
		fprintf(stderr, "mailcore: %s\n", error);
		free(error);
		teardown(&mc);
		mc_listen_close_all(true);
		return 1;
	}
	if (event_base_dispatch(mc.base) < 0)
		sp_log(SP_LOG_ERR, "event_loop_failed", "why=dispatch");
	else if (mc_master_stopping(mc.master))
		rc = 0;
	teardown(&mc);
	mc_listen_close_all(true);
	return rc;
}
