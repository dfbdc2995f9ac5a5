/* The server setup IMAP and POP share: the settings both read alike from
 * sealpost.conf (store, access filter, listeners, tlsd's handoff, login
 * limits) and each connection's refs of mailcore's current tables and
 * directory. imap_server.c and pop_server.c add their own keys and session.
 * Trust: reads only the operator's configuration, nothing from the network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/dir.h"
#include "mailcore/filter.h"
#include "mailcore/imap_pop_server.h"
#include "mailcore/mailcore.h"

int ips_service_init(struct ips_service *svc, const struct sp_conf *conf, const char *service,
		     const char *hostname, char **error_r)
{
	const char *store = sp_conf_str(conf, "mailcore.store");
	/* tlsd's keys: its handoff socket, and whether the service takes STARTTLS */
	const char *handoff = sp_conf_str(conf, "tlsd.handoff_socket");
	char key[64];

	memset(svc, 0, sizeof(*svc));
	if (store == NULL || store[0] != '/') {
		*error_r = sp_xstrdup("mailcore.store must be an absolute path");
		return -1;
	}
	svc->filter = filter_from_conf(conf, service, error_r);
	if (svc->filter == NULL)
		return -1;
	if (filter_needs_client_name(svc->filter) &&
	    strcmp(sp_conf_str(conf, "mailcore.dns.reverse_lookups"), "no") == 0)
		sp_log(SP_LOG_WARN, "access_filter",
		       "service=%s note=\"mailcore.dns.reverse_lookups is no: name patterns match "
		       "no client, UNKNOWN matches every client\"", service);
	svc->store_root = sp_xstrdup(store);
	svc->hostname = sp_xstrdup(hostname);
	svc->env_filter = filter_rule_count(svc->filter) > 0 ? svc->filter : NULL;
	svc->n_admins = sp_conf_list(conf, "store.admins", &svc->admins);
	snprintf(key, sizeof(key), "service.%s.plaintextmincipher", service);
	svc->plaintext_min_cipher = (int)sp_conf_int(conf, key);
	snprintf(key, sizeof(key), "service.%s.starttls", service);
	svc->starttls = handoff != NULL && sp_conf_bool(conf, key);
	svc->max_auth_failures = (unsigned)sp_conf_int(conf, "mailcore.smtp.max_auth_failures");
	return 0;
}

int ips_service_listen(struct ips_service *svc, struct event_base *base,
		       const struct sp_conf *conf, const char *service, const struct ips_ops *ops,
		       const void *env, char **error_r)
{
	const char *const *addrs;
	size_t n_addrs = sp_conf_list(conf, "mailcore.listenaddr", &addrs);
	char key[64];
	unsigned port;
	const char *backend;
	struct ips_config cfg = {
		.handoff_socket = svc->starttls ? sp_conf_str(conf, "tlsd.handoff_socket") : NULL,
		.proxy_header_timeout_ms = (long)sp_conf_int(conf, "mailcore.smtp.proxy_header_timeout"),
		.handoff_timeout_ms = 60000,
		.filter = svc->env_filter,
		.hostname = svc->hostname,
	};

	snprintf(key, sizeof(key), "service.%s.maxsessions", service);
	cfg.max_connections = (unsigned)sp_conf_int(conf, key);
	snprintf(key, sizeof(key), "service.%s.port", service);
	port = (unsigned)sp_conf_int(conf, key);
	snprintf(key, sizeof(key), "service.%s.backend", service);
	backend = sp_conf_str(conf, key);
	svc->ips = ips_server_new(base, ops, env, &cfg);
	for (size_t i = 0; i < n_addrs && port != 0; i++)
		if (ips_server_listen_tcp(svc->ips, addrs[i], port, error_r) < 0)
			return -1;
	if (backend != NULL && ips_server_listen_backend(svc->ips, backend, error_r) < 0)
		return -1;
	return 0;
}

void ips_service_fini(struct ips_service *svc)
{
	ips_server_free(&svc->ips);
	filter_free(&svc->filter);
	free(svc->store_root);
	free(svc->hostname);
	svc->store_root = svc->hostname = NULL;
	svc->env_filter = NULL;
}

/* Each connection holds its own refs, so a SIGHUP never frees users or a
 * directory a session uses. */
void ips_snapshot_take(struct dir_tables *const *tables_slot, struct dir *const *dir_slot,
		       struct dir_tables **tables_r, struct dir **dir_r,
		       const struct dir_users **users_r)
{
	*tables_r = NULL;
	*dir_r = dir_slot != NULL ? dir_ref(*dir_slot) : NULL;
	if (tables_slot != NULL && *tables_slot != NULL) {
		*tables_r = dir_tables_ref(*tables_slot);
		*users_r = (*tables_r)->users;
	}
}

void ips_snapshot_drop(struct dir_tables **tables, struct dir **dir)
{
	dir_tables_unref(tables);
	dir_unref(dir);
}
