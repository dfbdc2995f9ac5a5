/* keyd: Sealpost's key daemon. It holds the private keys and the PINs and
 * does nothing but private-key operations for tlsd's workers.
 *
 * What it does: reads sealpost.conf, the certificate database and the
 * password file; decrypts every software key (file: locator), opens and logs
 * in to the PKCS#11 tokens of pkcs11: keys (once each; a wrong PIN is fatal
 * and never retried), copies software keys into keyd.accelerator if set, and
 * checks every key against its certificate; then serves signature requests
 * (accel/keyd_proto.h) on worker channels that the tlsd master hands it over
 * the control socket (-C FD), through the accel engine (accel/accel.h) whose
 * backends do the work off the event loop. RELOAD on the control socket
 * re-reads everything and changes the key set only if all of it loads; the
 * operations in flight go on meanwhile. A startup failure of the
 * configuration (bad file, wrong PIN, key mismatch) exits KEYD_EXIT_CONFIG,
 * which tells the master not to restart keyd until the next reload.
 *
 * Trust: keyd trusts its configuration files and the tlsd master (its
 * parent, on the control socket). It trusts no worker: every request is
 * checked field by field, a malformed one closes that worker's channel, and
 * a worker can only ask for signatures of digests with keys keyd holds; it
 * never gets a key, a PIN or a decryption. keyd parses nothing from the
 * network.
 *
 * What it touches: reads the certdb (key `certdb`, default <confdir>/certdb:
 * index, certs, keys) and the password file (refused unless mode 0600 or
 * stricter), the PKCS#11 modules (p11-kit's and pkcs11.modules_file) and
 * their tokens; writes log lines and the stats socket (keyd.stats_socket,
 * mode 0600, counters only). Secrets stay in its own memory, which it makes non-dumpable
 * (PR_SET_DUMPABLE 0) and locks (mlockall) where permitted. It exits when
 * the control socket reaches EOF (the master is gone) or on SIGTERM/SIGINT.
 *
 * Usage: keyd -c /path/sealpost.conf -C CONTROL_FD */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "config.h"

#include "accel/keyd.h"
#include "accel/keyd_int.h"
#include "accel/keyd_proto.h"
#include "common/conf.h"
#include "common/fdpass.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "conf/conf.h"

#define CTL_MAX_FDS 8

struct keyd_ctl {
	struct keyd *kd;
	const char *conf_path;
	int fd;
	struct event *ev;
	struct sp_frame_reader *rd;
	int fds[CTL_MAX_FDS];   /* received, not yet claimed by a NEWCHAN frame */
	size_t nfds;
	int exit_code;
};

static void usage(void)
{
	fprintf(stderr, "usage: keyd -c sealpost.conf -C control_fd\n");
}

static void ctl_fail(struct keyd_ctl *ctl, const char *why)
{
	sp_log(SP_LOG_ERR, "control_error", "error=\"%s\"", why);
	ctl->exit_code = 1;
	event_base_loopbreak(ctl->kd->base);
}

static void ctl_frame(struct keyd_ctl *ctl, const uint8_t *body, size_t len)
{
	struct stat st;
	const char *why;
	int fd;

	switch (keyd_ctl_decode(body, len, &why)) {
	case KEYD_CTL_NEWCHAN:
		break;
	case KEYD_CTL_RELOAD:
		keyd_reload(ctl->kd, ctl->conf_path);
		return;
	default:
		ctl_fail(ctl, why);
		return;
	}
	if (ctl->nfds == 0) {
		ctl_fail(ctl, "NEWCHAN without a socket");
		return;
	}
	fd = ctl->fds[0];
	memmove(ctl->fds, ctl->fds + 1, (ctl->nfds - 1) * sizeof(int));
	ctl->nfds--;
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		sp_log(SP_LOG_ERR, "channel_refused", "reason=\"NEWCHAN fd is not a socket\"");
		close(fd);
		return;
	}
	keyd_chan_add(ctl->kd, fd);
}

static void ctl_read_cb(evutil_socket_t sock, short what, void *arg)
{
	struct keyd_ctl *ctl = arg;
	uint8_t buf[SP_FRAME_HDR + 64];
	size_t room = sizeof(buf) - sp_frame_reader_pending(ctl->rd);
	const uint8_t *body;
	const char *why;
	size_t len;
	ssize_t n;
	int fd = -1, rc;

	n = sp_fd_recv(ctl->fd, &fd, buf, room);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n < 0) {
		ctl_fail(ctl, strerror(errno));
		return;
	}
	if (fd >= 0) {
		if (ctl->nfds == CTL_MAX_FDS) {
			close(fd);
			ctl_fail(ctl, "too many sockets without NEWCHAN");
			return;
		}
		ctl->fds[ctl->nfds++] = fd;
	}
	if (n == 0) {
		sp_log(SP_LOG_INFO, "control_eof", "reason=\"tlsd master gone\"");
		event_base_loopbreak(ctl->kd->base);
		return;
	}
	if (sp_frame_reader_feed(ctl->rd, buf, (size_t)n, &why) < 0) {
		ctl_fail(ctl, why);
		return;
	}
	while ((rc = sp_frame_reader_next(ctl->rd, &body, &len, &why)) == 1) {
		ctl_frame(ctl, body, len);
		if (ctl->exit_code != 0)
			return;
	}
	if (rc < 0)
		ctl_fail(ctl, why);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct keyd *kd = arg;

	sp_log(SP_LOG_NOTICE, "shutdown", "signal=%d", (int)sig);
	event_base_loopbreak(kd->base);
}

static void harden_memory(void)
{
	struct rlimit rl;
	int flags = MCL_CURRENT;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		sp_log(SP_LOG_WARN, "harden", "step=PR_SET_DUMPABLE error=\"%s\"", strerror(errno));
	/* Locking future mappings too is safe only where the lock limit cannot
	 * make a later malloc fail (root, or an infinite limit). */
	if (SP_SANITIZERS) {
		/* ASan reserves terabytes of shadow memory: locking is not an option */
		sp_log(SP_LOG_NOTICE, "harden", "step=mlockall skipped=sanitizers");
		return;
	}
	if (geteuid() == 0 || (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur == RLIM_INFINITY))
		flags |= MCL_FUTURE;
	if (mlockall(flags) < 0)
		sp_log(SP_LOG_NOTICE, "harden", "step=mlockall error=\"%s\" "
		       "note=\"key memory may be swapped\"", strerror(errno));
	else
		sp_log(SP_LOG_INFO, "harden", "step=mlockall flags=%s",
		       (flags & MCL_FUTURE) ? "current,future" : "current");
}

static int parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

static struct sp_conf *load_conf(const char *path, char **error_r)
{
	struct sp_conf *conf = sp_conf_new();

	/* sealpost.conf is shared: every component's keys are known. */
	if (sp_conf_add_all(conf, error_r) < 0) {
		sp_conf_free(&conf);
		return NULL;
	}
	if (sp_conf_load(conf, path, error_r) < 0) {
		sp_conf_free(&conf);
		return NULL;
	}
	return conf;
}

static void apply_settings(struct keyd *kd, const struct keyd_settings *set)
{
	kd->max_inflight = set->max_inflight;
	kd->out_max = set->out_max;
	kd->max_chans = set->max_chans;
	accel_engine_set_params(kd->eng, &set->params);
}

/* Reads the configuration, starts the engine and loads the keys. 0, or -1
 * with *error_r (caller frees); kd->eng may be set either way. */
static int keyd_setup(struct keyd *kd, const char *conf_path, char **error_r)
{
	struct keyd_settings set;
	struct sp_conf *conf;
	int level, ret = -1;

	conf = load_conf(conf_path, error_r);
	if (conf == NULL)
		return -1;
	level = sp_log_level_parse(sp_conf_str(conf, "log.level"));
	if (sp_log_open("keyd", sp_conf_str(conf, "log.file"), level < 0 ? SP_LOG_INFO : level,
			error_r) < 0) {
		sp_conf_free(&conf);
		return -1;
	}
	if (keyd_settings_load(conf, conf_path, &set, error_r) < 0) {
		sp_conf_free(&conf);
		return -1;
	}
	sp_conf_free(&conf);
	kd->eng = accel_engine_new(kd->base);
	apply_settings(kd, &set);
	kd->soft = accel_soft_new(set.soft_threads, set.soft_max_queue, error_r);
	if (kd->soft == NULL)
		goto out;
	if (accel_engine_add_backend(kd->eng, kd->soft, error_r) < 0) {
		kd->soft->ops->free(kd->soft);
		kd->soft = NULL;
		goto out;
	}
	if (keyd_keys_sync(kd, &set, false, error_r) < 0)
		goto out;
	if (set.stats_socket != NULL) {
		kd->stats = keyd_stats_new(kd, set.stats_socket, error_r);
		if (kd->stats == NULL)
			goto out;
	}
	sp_log(SP_LOG_INFO, "ready", "keys=%zu certdb=\"%s\" op_deadline_ms=%u down_after=%u "
	       "probe_interval_ms=%u spill_queue=%zu", accel_engine_key_count(kd->eng),
	       set.certdb_dir, set.params.op_deadline_ms, set.params.down_after,
	       set.params.probe_interval_ms, set.params.spill_queue);
	ret = 0;
out:
	keyd_settings_clear(&set);
	return ret;
}

/* RELOAD: everything is read and loaded before anything changes; a failure
 * leaves the running key set, settings and log as they were. Runs on the
 * loop: operations in flight are completed by the backends meanwhile and
 * delivered right after. */
void keyd_reload(struct keyd *kd, const char *conf_path)
{
	struct keyd_settings set;
	struct sp_conf *conf;
	char *error = NULL;

	sp_log(SP_LOG_INFO, "keys_reload", "config=%s inflight=%zu", conf_path,
	       accel_engine_inflight(kd->eng));
	conf = load_conf(conf_path, &error);
	if (conf == NULL || keyd_settings_load(conf, conf_path, &set, &error) < 0) {
		sp_log(SP_LOG_ERR, "keys_reload_refused", "error=\"%s\" note=\"the running key set stays\"",
		       error);
		free(error);
		sp_conf_free(&conf);
		return;
	}
	sp_conf_free(&conf);
	if (keyd_keys_sync(kd, &set, true, &error) < 0) {
		sp_log(SP_LOG_ERR, "keys_reload_refused", "error=\"%s\" note=\"the running key set stays\"",
		       error);
		free(error);
		keyd_settings_clear(&set);
		return;
	}
	apply_settings(kd, &set);
	sp_log(SP_LOG_INFO, "keys_reload_done", "keys=%zu", accel_engine_key_count(kd->eng));
	keyd_settings_clear(&set);
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL;
	struct keyd kd = { 0 };
	struct keyd_ctl ctl = { 0 };
	struct event *sigterm = NULL, *sigint = NULL;
	char *error = NULL;
	int opt;

	ctl.fd = -1;
	while ((opt = getopt(argc, argv, "c:C:")) != -1) {
		switch (opt) {
		case 'c':
			conf_path = optarg;
			break;
		case 'C':
			ctl.fd = parse_fd(optarg);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (conf_path == NULL || ctl.fd < 0 || optind != argc) {
		usage();
		return 2;
	}
	if (sp_log_open("keyd", NULL, SP_LOG_INFO, &error) < 0) {
		fprintf(stderr, "keyd: %s\n", error);
		free(error);
		return 1;
	}
	ctl.exit_code = 1;
	ctl.conf_path = conf_path;
	if (fcntl(ctl.fd, F_GETFD) < 0) {
		sp_log(SP_LOG_ERR, "startup", "error=\"control fd %d: %s\"", ctl.fd, strerror(errno));
		ctl.fd = -1;
		goto out;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		sp_log(SP_LOG_ERR, "startup", "error=\"signal(SIGPIPE): %s\"", strerror(errno));
		goto out;
	}
	kd.base = event_base_new();
	if (kd.base == NULL) {
		sp_log(SP_LOG_ERR, "startup", "error=\"event_base_new failed\"");
		goto out;
	}
	if (keyd_setup(&kd, conf_path, &error) < 0) {
		sp_log(SP_LOG_ERR, "startup", "error=\"%s\" exit=%d note=\"not restarted until "
		       "tlsd reloads (SIGHUP)\"", error, KEYD_EXIT_CONFIG);
		ctl.exit_code = KEYD_EXIT_CONFIG;
		goto out;
	}
	harden_memory();

	if (evutil_make_socket_nonblocking(ctl.fd) < 0 ||
	    evutil_make_socket_closeonexec(ctl.fd) < 0) {
		sp_log(SP_LOG_ERR, "startup", "error=\"control fd: fcntl failed\"");
		goto out;
	}
	ctl.kd = &kd;
	ctl.rd = sp_frame_reader_new(64);
	ctl.ev = event_new(kd.base, ctl.fd, EV_READ | EV_PERSIST, ctl_read_cb, &ctl);
	sigterm = evsignal_new(kd.base, SIGTERM, signal_cb, &kd);
	sigint = evsignal_new(kd.base, SIGINT, signal_cb, &kd);
	if (ctl.ev == NULL || sigterm == NULL || sigint == NULL || event_add(ctl.ev, NULL) < 0 ||
	    event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0) {
		sp_log(SP_LOG_ERR, "startup", "error=\"cannot create events\"");
		goto out;
	}

	ctl.exit_code = 0;
	if (event_base_dispatch(kd.base) < 0) {
		sp_log(SP_LOG_ERR, "loop", "error=\"event_base_dispatch failed\"");
		ctl.exit_code = 1;
	}
out:
	keyd_chan_close_all(&kd);
	keyd_stats_free(&kd.stats);
	accel_engine_free(&kd.eng);
	keyd_tokens_close(&kd);
	if (ctl.ev != NULL)
		event_free(ctl.ev);
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	for (size_t i = 0; i < ctl.nfds; i++)
		close(ctl.fds[i]);
	if (ctl.fd >= 0)
		close(ctl.fd);
	sp_frame_reader_free(&ctl.rd);
	if (kd.base != NULL)
		event_base_free(kd.base);
	free(error);
	sp_log(SP_LOG_INFO, "exit", "code=%d", ctl.exit_code);
	sp_log_forget_secrets();
	sp_log_close();
	return ctl.exit_code;
}
