/* sealpost.conf -> struct tlsd_config: the daemon's settings, the TLS policy
 * with its per-service overrides, and the services (implicit-TLS listeners and
 * STARTTLS handoff targets). Everything is checked here that can be checked
 * without touching certificates; tlsd_ctx.c checks the rest. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "accel/accel.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "conf/conf.h"
#include "tlsd/tlsd_int.h"

#define TLSD_CONF_MAX_FILE (1024 * 1024)
#define TLSD_MAX_SERVICES 64

int tlsd_config_read_file(const char *path, char **text_r, size_t *len_r, char **error_r)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TLSD_CONF_MAX_FILE) {
		*error_r = sp_xasprintf("%s: not a regular file of at most 1 MiB", path);
		close(fd);
		return -1;
	}
	buf = sp_xmalloc((size_t)st.st_size + 1);
	for (;;) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = sp_xasprintf("%s: read: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)st.st_size) {
			*error_r = sp_xasprintf("%s: file grew while being read", path);
			free(buf);
			close(fd);
			return -1;
		}
	}
	close(fd);
	buf[got] = '\0';
	*text_r = buf;
	*len_r = got;
	return 0;
}

/* The schema: every component's keys (sealpost.conf is shared). */
static struct sp_conf *conf_with_schema(char **error_r)
{
	struct sp_conf *conf = sp_conf_new();

	if (sp_conf_add_all(conf, error_r) < 0) {
		sp_conf_free(&conf);
		return NULL;
	}
	return conf;
}

static char *svc_key(char *buf, size_t cap, const char *svc, const char *key)
{
	snprintf(buf, cap, "service.%s.%s", svc, key);
	return buf;
}

/* A service's policy value: its own key if set, else the tlsd.* default. */
static const char *policy_str(const struct sp_conf *conf, const char *svc, const char *key)
{
	char k[160];

	if (sp_conf_isset(conf, svc_key(k, sizeof(k), svc, key)))
		return sp_conf_str(conf, k);
	snprintf(k, sizeof(k), "tlsd.%s", key);
	return sp_conf_str(conf, k);
}

static long long policy_int(const struct sp_conf *conf, const char *svc, const char *key)
{
	char k[160];

	if (sp_conf_isset(conf, svc_key(k, sizeof(k), svc, key)))
		return sp_conf_int(conf, k);
	snprintf(k, sizeof(k), "tlsd.%s", key);
	return sp_conf_int(conf, k);
}

static int add_service_name(char names[][TLSD_SERVICE_NAME_MAX], size_t *n, const char *pattern,
			    const char *key, char **error_r)
{
	char name[TLSD_SERVICE_NAME_MAX];

	if (sp_conf_wild(pattern, key, 0, name, sizeof(name)) < 0) {
		*error_r = sp_xasprintf("service name in '%s' too long", key);
		return -1;
	}
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(names[i], name) == 0)
			return 0;
	}
	if (*n == TLSD_MAX_SERVICES) {
		*error_r = sp_xasprintf("more than %d TLS services", TLSD_MAX_SERVICES);
		return -1;
	}
	memcpy(names[(*n)++], name, sizeof(name));
	return 0;
}

static int fill_service(const struct sp_conf *conf, const char *name, struct tlsd_service *s,
			char **error_r)
{
	char k[160];
	const char *v, *why;
	const char *const *items;
	size_t n;

	snprintf(s->name, sizeof(s->name), "%s", name);
	if (sp_conf_isset(conf, svc_key(k, sizeof(k), name, "sslport")))
		s->sslport = (int)sp_conf_int(conf, k);
	if (sp_conf_isset(conf, svc_key(k, sizeof(k), name, "listen")))
		s->listen_host = sp_xstrdup(sp_conf_str(conf, k));
	if (sp_conf_isset(conf, svc_key(k, sizeof(k), name, "backend"))) {
		v = sp_conf_str(conf, k);
		if (tlsd_addr_parse(v, &s->backend, &why) < 0) {
			*error_r = sp_xasprintf("%s: %s", k, why);
			return -1;
		}
		s->has_backend = true;
	}
	n = sp_conf_list(conf, svc_key(k, sizeof(k), name, "sslnicknames"), &items);
	s->nicknames = sp_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		s->nicknames[i] = sp_xstrdup(items[i]);
	s->n_nicknames = n;
	s->starttls = sp_conf_bool(conf, svc_key(k, sizeof(k), name, "starttls"));

	if (s->sslport != 0 && !s->has_backend) {
		*error_r = sp_xasprintf("service.%s.sslport is set but service.%s.backend is not",
					name, name);
		return -1;
	}
	if (s->sslport != 0 && s->n_nicknames == 0) {
		*error_r = sp_xasprintf("service.%s.sslport is set but service.%s.sslnicknames is empty",
					name, name);
		return -1;
	}

	v = policy_str(conf, name, "tlsminversion");
	s->policy.min_version = strcmp(v, "TLSv1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
	s->policy.ciphers = sp_xstrdup(policy_str(conf, name, "ssladjustciphersuites"));
	s->policy.suites = sp_xstrdup(policy_str(conf, name, "tls13ciphersuites"));
	s->policy.groups = sp_xstrdup(policy_str(conf, name, "groups"));
	s->policy.cache_size = (long)policy_int(conf, name, "sslcachesize");
	v = policy_str(conf, name, "sslclientauth");
	s->policy.clientauth = strcmp(v, "require") == 0 ? TLSD_CLIENTAUTH_REQUIRE
			     : strcmp(v, "request") == 0 ? TLSD_CLIENTAUTH_REQUEST
			     : TLSD_CLIENTAUTH_NONE;
	return 0;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return sp_xstrdup(".");
	if (slash == path)
		return sp_xstrdup("/");
	return sp_xstrndup(path, (size_t)(slash - path));
}

static char *opt_str(const struct sp_conf *conf, const char *key)
{
	const char *v = sp_conf_str(conf, key);

	return v != NULL && v[0] != '\0' ? sp_xstrdup(v) : NULL;
}

static int fill_config(struct sp_conf *conf, struct tlsd_config *cfg, char **error_r)
{
	static const char *const svc_patterns[] = {
		"service.*.sslport", "service.*.sslnicknames", "service.*.backend", NULL,
	};
	char (*names)[TLSD_SERVICE_NAME_MAX] = sp_xcalloc(TLSD_MAX_SERVICES, sizeof(*names));
	size_t n_names = 0;
	const char *confdir = sp_conf_str(conf, "confdir");
	const char *certdb = sp_conf_str(conf, "certdb");
	int ret = -1;

	if (certdb != NULL && certdb[0] != '\0') {
		cfg->certdb_dir = sp_xstrdup(certdb);
	} else if (confdir == NULL || confdir[0] == '\0') {
		char *d = dir_of(cfg->path);

		cfg->certdb_dir = sp_xasprintf("%s/certdb", d);
		free(d);
	} else {
		cfg->certdb_dir = sp_xasprintf("%s/certdb", confdir);
	}
	cfg->user = opt_str(conf, "user");
	cfg->group = opt_str(conf, "group");
	cfg->log_path = opt_str(conf, "log.file");
	cfg->log_level = sp_log_level_parse(sp_conf_str(conf, "log.level"));
	if (cfg->log_level < 0)
		cfg->log_level = SP_LOG_INFO;
	cfg->workers = (int)sp_conf_int(conf, "tlsd.workers");
	if (cfg->workers == 0) {
		/* the CPUs we may run on (taskset, a cpuset), not all online:
		 * more workers than those only take turns on them */
		long n = accel_usable_cpus();

		cfg->workers = (int)(n > 256 ? 256 : n);
	}
	cfg->keyd_path = opt_str(conf, "tlsd.keyd_path");
	cfg->pidfile = opt_str(conf, "tlsd.pidfile");
	cfg->handoff_socket = opt_str(conf, "tlsd.handoff_socket");
	cfg->handshake_timeout_ms = (long)sp_conf_int(conf, "tlsd.handshake_timeout");
	cfg->idle_timeout_ms = (long)sp_conf_int(conf, "tlsd.idle_timeout");
	cfg->shutdown_timeout_ms = (long)sp_conf_int(conf, "tlsd.shutdown_timeout");
	cfg->keyop_timeout_ms = (long)sp_conf_int(conf, "tlsd.keyop_timeout");
	cfg->ticket_rotation_ms = (long)sp_conf_int(conf, "tlsd.ticket_rotation");
	cfg->restart_backoff_max_ms = (long)sp_conf_int(conf, "tlsd.restart_backoff_max");
	cfg->max_connections = (long)sp_conf_int(conf, "tlsd.max_connections");
	cfg->relay_buffer = (size_t)sp_conf_int(conf, "tlsd.relay_buffer");
	if (cfg->handoff_socket != NULL &&
	    strlen(cfg->handoff_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		*error_r = sp_xstrdup("tlsd.handoff_socket: path too long");
		goto out;
	}

	for (size_t p = 0; svc_patterns[p] != NULL; p++) {
		const char *const *keys;
		size_t n = sp_conf_match(conf, svc_patterns[p], &keys);

		for (size_t i = 0; i < n; i++) {
			if (add_service_name(names, &n_names, svc_patterns[p], keys[i], error_r) < 0)
				goto out;
		}
	}
	cfg->services = sp_xcalloc(n_names ? n_names : 1, sizeof(*cfg->services));
	for (size_t i = 0; i < n_names; i++) {
		cfg->n_services++;
		if (fill_service(conf, names[i], &cfg->services[i], error_r) < 0)
			goto out;
	}
	for (size_t i = 0; i < cfg->n_services; i++) {
		for (size_t j = 0; j < i; j++) {
			const struct tlsd_service *a = &cfg->services[i], *b = &cfg->services[j];

			if (a->sslport != 0 && a->sslport == b->sslport &&
			    strcmp(a->listen_host ? a->listen_host : "",
				   b->listen_host ? b->listen_host : "") == 0) {
				*error_r = sp_xasprintf("services %s and %s both use sslport %d",
							b->name, a->name, a->sslport);
				goto out;
			}
		}
	}
	if (cfg->keyop_timeout_ms >= cfg->handshake_timeout_ms) {
		/* A timed-out handshake waits for its paused key operation to end
		 * (tlsd_conn.c); keyd must give up first. */
		*error_r = sp_xstrdup("tlsd.keyop_timeout must be shorter than tlsd.handshake_timeout");
		goto out;
	}
	ret = 0;
out:
	free(names);
	return ret;
}

struct tlsd_config *tlsd_config_parse(const char *path, const char *text, size_t len,
				      char **error_r)
{
	struct sp_conf *conf = conf_with_schema(error_r);
	struct tlsd_config *cfg;

	if (conf == NULL)
		return NULL;
	if (sp_conf_parse(conf, path, text, len, error_r) < 0) {
		sp_conf_free(&conf);
		return NULL;
	}
	cfg = sp_xcalloc(1, sizeof(*cfg));
	cfg->path = sp_xstrdup(path);
	if (fill_config(conf, cfg, error_r) < 0) {
		sp_conf_free(&conf);
		tlsd_config_free(&cfg);
		return NULL;
	}
	sp_conf_free(&conf);
	return cfg;
}

void tlsd_config_free(struct tlsd_config **cfgp)
{
	struct tlsd_config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->n_services; i++) {
		struct tlsd_service *s = &cfg->services[i];

		free(s->listen_host);
		for (size_t j = 0; j < s->n_nicknames; j++)
			free(s->nicknames[j]);
		free(s->nicknames);
		free(s->policy.ciphers);
		free(s->policy.suites);
		free(s->policy.groups);
	}
	free(cfg->services);
	free(cfg->path);
	free(cfg->certdb_dir);
	free(cfg->user);
	free(cfg->group);
	free(cfg->log_path);
	free(cfg->keyd_path);
	free(cfg->pidfile);
	free(cfg->handoff_socket);
	free(cfg);
	*cfgp = NULL;
}

const struct tlsd_service *tlsd_config_service(const struct tlsd_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_services; i++) {
		if (strcmp(cfg->services[i].name, name) == 0)
			return &cfg->services[i];
	}
	return NULL;
}

int tlsd_config_same_listeners(const struct tlsd_config *a, const struct tlsd_config *b,
			       char **error_r)
{
	for (int pass = 0; pass < 2; pass++) {
		const struct tlsd_config *x = pass ? b : a, *y = pass ? a : b;

		for (size_t i = 0; i < x->n_services; i++) {
			const struct tlsd_service *s = &x->services[i], *t;

			if (s->sslport == 0)
				continue;
			t = tlsd_config_service(y, s->name);
			if (t == NULL || t->sslport != s->sslport ||
			    strcmp(s->listen_host ? s->listen_host : "",
				   t->listen_host ? t->listen_host : "") != 0) {
				*error_r = sp_xasprintf("listener of service %s changed: "
							"listeners change only on restart", s->name);
				return -1;
			}
		}
	}
	if (strcmp(a->handoff_socket ? a->handoff_socket : "",
		   b->handoff_socket ? b->handoff_socket : "") != 0) {
		*error_r = sp_xstrdup("tlsd.handoff_socket changed: it changes only on restart");
		return -1;
	}
	return 0;
}
