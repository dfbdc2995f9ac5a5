/* tlsd's master: reads and validates the configuration, binds the listeners
 * and the handoff socket, drops privileges, then starts and supervises its
 * children (keyd and the TLS workers), restarting them with backoff; SIGHUP
 * reloads, SIGTERM/SIGINT stop gracefully. It parses nothing from the
 * network. Its loop is poll() over a signalfd and the control channels: a
 * handful of fds, and no event library state to untangle in forked workers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "accel/keyd_proto.h"
#include "common/fdpass.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/privs.h"
#include "common/supervise.h"
#include "common/unixsock.h"
#include "common/xalloc.h"
#include "tlsd/tlsd_int.h"

/* ---- the process table: who runs, how, with what rights, talking to whom ---- */
enum tlsd_proc { TLSD_PROC_MASTER, TLSD_PROC_KEYD, TLSD_PROC_WORKER };

static const struct tlsd_proc_def {
	enum tlsd_proc kind;
	const char *name;
	const char *started;     /* how the master starts it */
	const char *privileges;
	const char *channels;    /* who it talks to, over what */
} tlsd_procs[] = {
	{ TLSD_PROC_MASTER, "master", "tlsd -c CONF [-f]",
	  "starts as root if it must bind privileged ports, drops to user/group once bound",
	  "keyd: control socketpair (NEWCHAN + fd); workers: control socketpair (tlsd_ctl.c)" },
	{ TLSD_PROC_KEYD, "keyd", "fork + exec KEYD -c CONF -C FD, one instance",
	  "user/group; holds keys and PINs; parses nothing from the network",
	  "master: control; each worker: one key channel (accel/keyd_proto.h)" },
	{ TLSD_PROC_WORKER, "worker", "fork without exec, tlsd.workers of them",
	  "user/group + PR_SET_NO_NEW_PRIVS; parses TLS, holds no private key",
	  "master: control; keyd: key channel; clients; backends (PROXY v2); mailcore (handoff)" },
};

#define KEYD_STOP_GRACE_MS 2000
#define STOP_GRACE_MS 2000          /* after tlsd.shutdown_timeout, before SIGKILL */
#define MAX_RETIRING 8

struct child {
	enum tlsd_proc kind;
	int index;
	pid_t pid;                  /* 0: not running */
	int ctl_fd;                 /* master's end of the control socketpair, -1 if none */
	uint64_t started_ms;
	long backoff_ms;
	uint64_t restart_at_ms;     /* 0: no restart scheduled */
	struct sp_frame_reader *rd; /* worker -> master messages */
	bool reload_waiting;
};

struct master {
	char *conf_path;
	char *conf_text;            /* the configuration now in force, as validated */
	size_t conf_len;
	struct tlsd_ctxset *set;    /* its validation (owns the parsed config) */
	const struct tlsd_config *cfg;
	char *keyd_path;
	struct tlsd_listener *listeners;
	size_t n_listeners;
	int handoff_fd;
	int sigfd;
	struct child keyd;
	struct child *workers;
	size_t n_workers;
	pid_t retiring[MAX_RETIRING];  /* old keyds told to stop; reaped without restart */
	bool stopping;
	uint64_t stop_deadline_ms;
	bool keyd_stop_sent;
	uint64_t keyd_kill_at_ms;
	uint64_t generation;
	size_t reload_waiting, reload_ok, reload_failed;
};

static const char *proc_name(enum tlsd_proc kind)
{
	return tlsd_procs[kind].name;
}

/* ---- configuration ---- */

/* Reads, parses and fully validates path (certificates, CAs, CRLs, policy;
 * everything but the private keys, which only keyd may touch). */
static struct tlsd_ctxset *load_config(const char *path, char **text_r, size_t *len_r,
				       char **error_r)
{
	struct tlsd_config *cfg;
	struct tlsd_ctxset *set;
	char *text;
	size_t len;

	if (tlsd_config_read_file(path, &text, &len, error_r) < 0)
		return NULL;
	cfg = tlsd_config_parse(path, text, len, error_r);
	if (cfg == NULL) {
		free(text);
		return NULL;
	}
	set = tlsd_ctxset_new(cfg, NULL, error_r);
	if (set == NULL) {
		tlsd_config_free(&cfg);
		free(text);
		return NULL;
	}
	*text_r = text;
	*len_r = len;
	return set;
}

/* ---- sockets ---- */

static int bind_listener(const struct tlsd_service *s, int *fd_r, char **error_r)
{
	struct tlsd_addr a;
	const char *why;
	int fd, one = 1, zero = 0;

	if (tlsd_addr_listen(s->listen_host, s->sslport, &a, &why) < 0) {
		*error_r = sp_xasprintf("service.%s.listen: %s", s->name, why);
		return -1;
	}
	fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && a.ss.ss_family == AF_INET6 && s->listen_host == NULL &&
	    (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
		/* no IPv6 on this host: "all addresses" is IPv4's */
		if (tlsd_addr_listen("0.0.0.0", s->sslport, &a, &why) < 0) {
			*error_r = sp_xstrdup(why);
			return -1;
		}
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0) {
		*error_r = sp_xasprintf("service %s: socket: %s", s->name, strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (a.ss.ss_family == AF_INET6 && s->listen_host == NULL &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0) ||
	    bind(fd, (struct sockaddr *)&a.ss, a.len) < 0 || listen(fd, 511) < 0) {
		*error_r = sp_xasprintf("service %s: cannot listen on %s: %s", s->name, a.text,
					strerror(errno));
		close(fd);
		return -1;
	}
	sp_log(SP_LOG_INFO, "listen", "service=%s addr=%s", s->name, a.text);
	*fd_r = fd;
	return 0;
}

static int bind_handoff(const char *path, uid_t uid, gid_t gid, int *fd_r, char **error_r)
{
	char *why = NULL;
	int fd = sp_unix_bind(path, 0660, &why);

	if (fd < 0) {
		*error_r = sp_xasprintf("handoff socket %s", why);
		free(why);
		return -1;
	}
	if ((geteuid() == 0 && chown(path, uid, gid) < 0) || listen(fd, 128) < 0) {
		*error_r = sp_xasprintf("handoff socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	sp_log(SP_LOG_INFO, "listen", "service=handoff addr=unix:%s mode=0660", path);
	*fd_r = fd;
	return 0;
}

/* ---- children ---- */

static int send_keyd_channel(struct master *m, struct child *w)
{
	struct sp_msgbuf b;
	struct tlsd_ctl_msg msg = { .type = TLSD_CTL_KEYD_FD };
	int ch[2], ret = -1;

	if (m->keyd.pid == 0 || m->keyd.ctl_fd < 0 || w->pid == 0 || w->ctl_fd < 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch) < 0) {
		sp_log(SP_LOG_ERR, "keyd_channel", "err=\"socketpair: %s\"", strerror(errno));
		return -1;
	}
	sp_msgbuf_init(&b, KEYD_MAX_FRAME);
	if (keyd_ctl_encode_newchan(&b) < 0 || sp_fd_send(m->keyd.ctl_fd, ch[0], b.data, b.len) < 0)
		sp_log(SP_LOG_ERR, "keyd_channel", "worker=%d to=keyd err=\"%s\"", w->index,
		       strerror(errno));
	else if (tlsd_ctl_send(w->ctl_fd, &msg, ch[1]) < 0)
		sp_log(SP_LOG_ERR, "keyd_channel", "worker=%d to=worker err=\"%s\"", w->index,
		       strerror(errno));
	else
		ret = 0;
	sp_msgbuf_release(&b);
	close(ch[0]);
	close(ch[1]);
	return ret;
}

static void log_child_start(const struct child *c)
{
	if (c->kind == TLSD_PROC_WORKER)
		sp_log(SP_LOG_INFO, "child_start", "proc=%s index=%d pid=%d", proc_name(c->kind),
		       c->index, (int)c->pid);
	else
		sp_log(SP_LOG_INFO, "child_start", "proc=%s pid=%d", proc_name(c->kind), (int)c->pid);
}

static int keyd_spawn(struct master *m)
{
	int sp[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		sp_log(SP_LOG_ERR, "child_start", "proc=keyd err=\"socketpair: %s\"", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		sp_log(SP_LOG_ERR, "child_start", "proc=keyd err=\"fork: %s\"", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		char fdarg[16];

		sp_child_reset_signals(NULL, 0);
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* everything else the master holds is close-on-exec */
		if (fcntl(sp[1], F_SETFD, 0) < 0)
			_exit(126);
		snprintf(fdarg, sizeof(fdarg), "%d", sp[1]);
		execl(m->keyd_path, "keyd", "-c", m->conf_path, "-C", fdarg, (char *)NULL);
		fprintf(stderr, "tlsd: exec %s: %s\n", m->keyd_path, strerror(errno));
		_exit(127);
	}
	close(sp[1]);
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) < 0)
		sp_log(SP_LOG_WARN, "child_start", "proc=keyd err=\"fcntl: %s\"", strerror(errno));
	m->keyd.pid = pid;
	m->keyd.ctl_fd = sp[0];
	m->keyd.started_ms = sp_now_ms();
	m->keyd.restart_at_ms = 0;
	log_child_start(&m->keyd);
	for (size_t i = 0; i < m->n_workers; i++)
		(void)send_keyd_channel(m, &m->workers[i]);
	return 0;
}

static void worker_child(struct master *m, struct child *w, int ctl_fd, int keyd_fd)
{
	struct tlsd_listener *ls = sp_xcalloc(m->n_listeners ? m->n_listeners : 1, sizeof(*ls));
	struct tlsd_config *cfg;
	char *err = NULL;

	sp_child_reset_signals(NULL, 0);
	close(m->sigfd);
	if (m->keyd.ctl_fd >= 0)
		close(m->keyd.ctl_fd);
	for (size_t i = 0; i < m->n_workers; i++) {
		if (m->workers[i].ctl_fd >= 0)
			close(m->workers[i].ctl_fd);
	}
	if (fcntl(ctl_fd, F_SETFL, O_NONBLOCK) < 0)
		_exit(1);
	/* the worker's own copy of the configuration in force */
	cfg = tlsd_config_parse(m->conf_path, m->conf_text, m->conf_len, &err);
	if (cfg == NULL) {
		sp_log(SP_LOG_ERR, "worker_start", "worker=%d err=\"%s\"", w->index, err);
		_exit(1);
	}
	for (size_t i = 0; i < m->n_listeners; i++)
		ls[i] = m->listeners[i];
	_exit(tlsd_worker_run(w->index, cfg, ls, m->n_listeners, m->handoff_fd, ctl_fd, keyd_fd));
}

static int worker_spawn(struct master *m, struct child *w)
{
	struct sp_msgbuf b;
	int ctl[2], ch[2] = { -1, -1 };
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0) {
		sp_log(SP_LOG_ERR, "child_start", "proc=worker err=\"socketpair: %s\"", strerror(errno));
		return -1;
	}
	if (m->keyd.pid != 0 && m->keyd.ctl_fd >= 0 &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch) < 0) {
		sp_log(SP_LOG_ERR, "child_start", "proc=worker err=\"socketpair: %s\"", strerror(errno));
		ch[0] = ch[1] = -1;
	}
	pid = fork();
	if (pid < 0) {
		sp_log(SP_LOG_ERR, "child_start", "proc=worker err=\"fork: %s\"", strerror(errno));
		close(ctl[0]);
		close(ctl[1]);
		if (ch[0] >= 0) {
			close(ch[0]);
			close(ch[1]);
		}
		return -1;
	}
	if (pid == 0) {
		close(ctl[0]);
		if (ch[0] >= 0)
			close(ch[0]);
		worker_child(m, w, ctl[1], ch[1]);
	}
	close(ctl[1]);
	if (fcntl(ctl[0], F_SETFL, O_NONBLOCK) < 0)
		sp_log(SP_LOG_WARN, "child_start", "proc=worker err=\"fcntl: %s\"", strerror(errno));
	w->pid = pid;
	w->ctl_fd = ctl[0];
	w->started_ms = sp_now_ms();
	w->restart_at_ms = 0;
	w->reload_waiting = false;
	sp_frame_reader_free(&w->rd);
	w->rd = sp_frame_reader_new(TLSD_CTL_MAX_BODY);
	log_child_start(w);
	if (ch[0] >= 0) {
		sp_msgbuf_init(&b, KEYD_MAX_FRAME);
		if (keyd_ctl_encode_newchan(&b) < 0 ||
		    sp_fd_send(m->keyd.ctl_fd, ch[0], b.data, b.len) < 0)
			sp_log(SP_LOG_ERR, "keyd_channel", "worker=%d to=keyd err=\"%s\"", w->index,
			       strerror(errno));
		sp_msgbuf_release(&b);
		close(ch[0]);
		close(ch[1]);
	}
	return 0;
}

static void schedule_restart(struct master *m, struct child *c)
{
	uint64_t now = sp_now_ms();

	c->backoff_ms = sp_restart_backoff(c->backoff_ms, now - c->started_ms,
					   m->cfg->restart_backoff_max_ms);
	c->restart_at_ms = now + (uint64_t)c->backoff_ms;
	sp_log(SP_LOG_NOTICE, "child_restart", "proc=%s index=%d in_ms=%ld", proc_name(c->kind),
	       c->index, c->backoff_ms);
}

static void child_gone(struct master *m, struct child *c, int status)
{
	if (WIFSIGNALED(status))
		sp_log(c->kind == TLSD_PROC_WORKER && m->stopping ? SP_LOG_INFO : SP_LOG_WARN,
		       "child_exit", "proc=%s index=%d pid=%d signal=%d", proc_name(c->kind), c->index,
		       (int)c->pid, WTERMSIG(status));
	else
		sp_log(m->stopping ? SP_LOG_INFO : SP_LOG_WARN, "child_exit",
		       "proc=%s index=%d pid=%d status=%d", proc_name(c->kind), c->index, (int)c->pid,
		       WEXITSTATUS(status));
	c->pid = 0;
	if (c->ctl_fd >= 0) {
		close(c->ctl_fd);
		c->ctl_fd = -1;
	}
	if (c->reload_waiting) {
		c->reload_waiting = false;
		m->reload_failed++;
		m->reload_waiting--;
	}
	if (c->kind == TLSD_PROC_KEYD && WIFEXITED(status) && WEXITSTATUS(status) == KEYD_EXIT_CONFIG) {
		/* a wrong PIN or a bad key: restarting would only retry the PIN */
		sp_log(SP_LOG_ERR, "keyd_config_error", "status=%d note=\"keyd is not restarted "
		       "until the next reload (SIGHUP); see its startup error\"", KEYD_EXIT_CONFIG);
		c->restart_at_ms = 0;
		return;
	}
	if (!m->stopping)
		schedule_restart(m, c);
}

static void reap(struct master *m)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			return;
		if (pid == m->keyd.pid) {
			child_gone(m, &m->keyd, status);
			continue;
		}
		for (size_t i = 0; i < m->n_workers; i++) {
			if (m->workers[i].pid == pid) {
				child_gone(m, &m->workers[i], status);
				pid = 0;
				break;
			}
		}
		for (size_t i = 0; pid != 0 && i < MAX_RETIRING; i++) {
			if (m->retiring[i] == pid) {
				m->retiring[i] = 0;
				sp_log(SP_LOG_INFO, "child_exit", "proc=keyd pid=%d retired=yes", (int)pid);
				pid = 0;
			}
		}
	}
}

/* ---- reload ---- */

static void reload_finish_check(struct master *m)
{
	if (m->reload_waiting == 0 && (m->reload_ok || m->reload_failed)) {
		sp_log(m->reload_failed ? SP_LOG_WARN : SP_LOG_INFO, "reload_done",
		       "generation=%llu workers_ok=%zu workers_failed=%zu",
		       (unsigned long long)m->generation, m->reload_ok, m->reload_failed);
		m->reload_ok = m->reload_failed = 0;
	}
}

static void reload(struct master *m)
{
	struct tlsd_ctxset *set;
	char *text = NULL, *err = NULL;
	size_t len;
	struct tlsd_ctl_msg msg = { .type = TLSD_CTL_RELOAD };

	set = load_config(m->conf_path, &text, &len, &err);
	if (set != NULL && tlsd_config_same_listeners(m->cfg, tlsd_ctxset_config(set), &err) < 0) {
		tlsd_ctxset_unref(&set);
		free(text);
	}
	if (set == NULL) {
		sp_log(SP_LOG_ERR, "reload_refused", "config=%s err=\"%s\" (the running configuration stays)",
		       m->conf_path, err ? err : "?");
		free(err);
		return;
	}
	tlsd_ctxset_unref(&m->set);
	free(m->conf_text);
	m->set = set;
	m->cfg = tlsd_ctxset_config(set);
	m->conf_text = text;
	m->conf_len = len;
	m->generation++;
	if ((int)m->n_workers != m->cfg->workers)
		sp_log(SP_LOG_NOTICE, "reload", "note=\"tlsd.workers changes at the next start\"");
	if (sp_log_open("tlsd", m->cfg->log_path, (enum sp_log_level)m->cfg->log_level, &err) < 0) {
		sp_log(SP_LOG_ERR, "reload", "log=\"%s\"", err);
		free(err);
	}
	sp_log(SP_LOG_INFO, "reload", "generation=%llu config=%s", (unsigned long long)m->generation,
	       m->conf_path);

	/* keyd reloads in place (KEYD_CTL_RELOAD): it loads the new keys
	 * while it goes on serving, so no key operation in flight is lost. A
	 * keyd that is not running (stopped on a configuration error) starts. */
	if (m->keyd.pid != 0 && m->keyd.ctl_fd >= 0) {
		struct sp_msgbuf b;

		sp_msgbuf_init(&b, KEYD_MAX_FRAME);
		if (keyd_ctl_encode_reload(&b) < 0 || sp_fd_send(m->keyd.ctl_fd, -1, b.data, b.len) < 0)
			sp_log(SP_LOG_ERR, "reload", "keyd=%d err=\"%s\"", (int)m->keyd.pid,
			       strerror(errno));
		sp_msgbuf_release(&b);
	} else if (m->keyd.pid == 0) {
		m->keyd.backoff_ms = 0;
		if (keyd_spawn(m) < 0)
			schedule_restart(m, &m->keyd);
	}

	m->reload_ok = m->reload_failed = 0;
	m->reload_waiting = 0;
	msg.generation = m->generation;
	for (size_t i = 0; i < m->n_workers; i++) {
		struct child *w = &m->workers[i];

		if (w->pid == 0)
			continue;  /* a restarting worker starts with the new configuration */
		if (tlsd_ctl_send(w->ctl_fd, &msg, -1) < 0) {
			sp_log(SP_LOG_ERR, "reload", "worker=%d err=\"%s\"", w->index, strerror(errno));
			continue;
		}
		w->reload_waiting = true;
		m->reload_waiting++;
	}
	if (m->reload_waiting == 0)
		m->reload_ok = 1, reload_finish_check(m);
}

static void worker_ctl_read(struct master *m, struct child *w)
{
	uint8_t buf[TLSD_CTL_MAX_BODY + SP_FRAME_HDR];
	const uint8_t *body;
	const char *err;
	struct tlsd_ctl_msg msg;
	size_t len;
	int fd = -1, r;
	ssize_t n = sp_fd_recv(w->ctl_fd, &fd, buf, sizeof(buf));

	if (fd >= 0)
		close(fd);  /* workers send no fds */
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		/* the worker is going; SIGCHLD will tell how */
		close(w->ctl_fd);
		w->ctl_fd = -1;
		return;
	}
	if (sp_frame_reader_feed(w->rd, buf, (size_t)n, &err) < 0) {
		sp_log(SP_LOG_ERR, "ctl_bad", "worker=%d err=\"%s\"", w->index, err);
		return;
	}
	while ((r = sp_frame_reader_next(w->rd, &body, &len, &err)) == 1) {
		if (tlsd_ctl_parse(body, len, &msg, &err) < 0 || msg.type != TLSD_CTL_RELOADED) {
			sp_log(SP_LOG_ERR, "ctl_bad", "worker=%d err=\"%s\"", w->index,
			       err ? err : "unexpected message");
			continue;
		}
		if (!w->reload_waiting || msg.generation != m->generation)
			continue;  /* an answer to an older reload */
		w->reload_waiting = false;
		m->reload_waiting--;
		if (msg.ok)
			m->reload_ok++;
		else
			m->reload_failed++;
		reload_finish_check(m);
	}
	if (r < 0)
		sp_log(SP_LOG_ERR, "ctl_bad", "worker=%d err=\"%s\"", w->index, err);
}

/* ---- stop ---- */

static void begin_stop(struct master *m, int sig)
{
	if (m->stopping)
		return;
	m->stopping = true;
	sp_log(SP_LOG_INFO, "stopping", "signal=%d shutdown_timeout_ms=%ld", sig,
	       m->cfg->shutdown_timeout_ms);
	/* no new connections: the workers close their copies too */
	for (size_t i = 0; i < m->n_listeners; i++)
		close(m->listeners[i].fd);
	m->n_listeners = 0;
	if (m->handoff_fd >= 0) {
		close(m->handoff_fd);
		m->handoff_fd = -1;
	}
	for (size_t i = 0; i < m->n_workers; i++) {
		m->workers[i].restart_at_ms = 0;
		if (m->workers[i].pid != 0 && kill(m->workers[i].pid, SIGTERM) < 0)
			sp_log(SP_LOG_WARN, "stopping", "worker=%d err=\"kill: %s\"", (int)i, strerror(errno));
	}
	m->keyd.restart_at_ms = 0;
	m->stop_deadline_ms = sp_now_ms() + (uint64_t)m->cfg->shutdown_timeout_ms + STOP_GRACE_MS;
}

static size_t workers_alive(const struct master *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n_workers; i++)
		n += m->workers[i].pid != 0;
	return n;
}

static bool retiring_alive(const struct master *m)
{
	for (size_t i = 0; i < MAX_RETIRING; i++) {
		if (m->retiring[i] != 0)
			return true;
	}
	return false;
}

/* Advances the stop; true when everything is gone. */
static bool stop_progress(struct master *m)
{
	uint64_t now = sp_now_ms();

	if (workers_alive(m) > 0) {
		if (now < m->stop_deadline_ms)
			return false;
		for (size_t i = 0; i < m->n_workers; i++) {
			if (m->workers[i].pid != 0) {
				sp_log(SP_LOG_WARN, "stopping", "worker=%zu pid=%d action=SIGKILL", i,
				       (int)m->workers[i].pid);
				kill(m->workers[i].pid, SIGKILL);
			}
		}
		m->stop_deadline_ms = now + KEYD_STOP_GRACE_MS;
		return false;
	}
	/* keyd last: the workers' last handshakes may have needed it */
	if (m->keyd.pid != 0 || retiring_alive(m)) {
		if (!m->keyd_stop_sent) {
			m->keyd_stop_sent = true;
			m->keyd_kill_at_ms = now + KEYD_STOP_GRACE_MS;
			if (m->keyd.pid != 0)
				kill(m->keyd.pid, SIGTERM);
			for (size_t i = 0; i < MAX_RETIRING; i++) {
				if (m->retiring[i] != 0)
					kill(m->retiring[i], SIGTERM);
			}
		} else if (now >= m->keyd_kill_at_ms) {
			if (m->keyd.pid != 0)
				kill(m->keyd.pid, SIGKILL);
			for (size_t i = 0; i < MAX_RETIRING; i++) {
				if (m->retiring[i] != 0)
					kill(m->retiring[i], SIGKILL);
			}
			m->keyd_kill_at_ms = now + KEYD_STOP_GRACE_MS;
		}
		return false;
	}
	return true;
}

/* ---- the loop ---- */

static int next_timeout_ms(const struct master *m)
{
	uint64_t now = sp_now_ms(), next = UINT64_MAX;

	if (m->stopping) {
		next = m->keyd_stop_sent ? m->keyd_kill_at_ms : m->stop_deadline_ms;
	} else {
		if (m->keyd.restart_at_ms)
			next = m->keyd.restart_at_ms;
		for (size_t i = 0; i < m->n_workers; i++) {
			if (m->workers[i].restart_at_ms && m->workers[i].restart_at_ms < next)
				next = m->workers[i].restart_at_ms;
		}
	}
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)(next - now > INT_MAX ? INT_MAX : next - now);
}

static void run_restarts(struct master *m)
{
	uint64_t now = sp_now_ms();

	if (m->stopping)
		return;
	if (m->keyd.restart_at_ms && m->keyd.restart_at_ms <= now) {
		m->keyd.restart_at_ms = 0;
		if (keyd_spawn(m) < 0)
			schedule_restart(m, &m->keyd);
	}
	for (size_t i = 0; i < m->n_workers; i++) {
		struct child *w = &m->workers[i];

		if (w->restart_at_ms && w->restart_at_ms <= now) {
			w->restart_at_ms = 0;
			if (worker_spawn(m, w) < 0)
				schedule_restart(m, w);
		}
	}
}

static int handle_signals(struct master *m)
{
	struct signalfd_siginfo si;

	for (;;) {
		ssize_t n = read(m->sigfd, &si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n != (ssize_t)sizeof(si)) {
			sp_log(SP_LOG_CRIT, "signalfd", "err=\"%s\"", n < 0 ? strerror(errno) : "short read");
			return -1;
		}
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(m);
			break;
		case SIGHUP:
			if (!m->stopping)
				reload(m);
			break;
		case SIGTERM:
		case SIGINT:
			begin_stop(m, (int)si.ssi_signo);
			break;
		default:
			break;
		}
	}
}

static int master_loop(struct master *m)
{
	struct pollfd *pfd = sp_xcalloc(m->n_workers + 1, sizeof(*pfd));

	for (;;) {
		size_t n = 0;
		int r;

		reap(m);  /* a child may have gone between two signals */
		if (m->stopping && stop_progress(m))
			break;
		run_restarts(m);
		pfd[n].fd = m->sigfd;
		pfd[n++].events = POLLIN;
		for (size_t i = 0; i < m->n_workers; i++) {
			pfd[n].fd = m->workers[i].ctl_fd;  /* -1 is ignored by poll */
			pfd[n++].events = POLLIN;
		}
		r = poll(pfd, n, next_timeout_ms(m));
		if (r < 0 && errno != EINTR) {
			sp_log(SP_LOG_CRIT, "poll", "err=\"%s\"", strerror(errno));
			free(pfd);
			return -1;
		}
		if (r <= 0)
			continue;
		if ((pfd[0].revents & POLLIN) && handle_signals(m) < 0) {
			free(pfd);
			return -1;
		}
		for (size_t i = 0; i < m->n_workers; i++) {
			if (pfd[i + 1].revents && m->workers[i].ctl_fd >= 0 &&
			    pfd[i + 1].fd == m->workers[i].ctl_fd)
				worker_ctl_read(m, &m->workers[i]);
		}
	}
	free(pfd);
	return 0;
}

/* ---- start ---- */

static char *default_keyd_path(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		return sp_xstrdup("keyd");
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash == NULL)
		return sp_xstrdup("keyd");
	*slash = '\0';
	return sp_xasprintf("%s/keyd", self);
}

static int write_pidfile(const char *path, char **error_r)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	ssize_t w;

	if (fd < 0) {
		*error_r = sp_xasprintf("pidfile %s: %s", path, strerror(errno));
		return -1;
	}
	do
		w = write(fd, buf, (size_t)len);
	while (w < 0 && errno == EINTR);
	if (w != len || close(fd) < 0) {
		*error_r = sp_xasprintf("pidfile %s: write failed", path);
		return -1;
	}
	return 0;
}

static int daemonize(char **error_r)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0) {
		*error_r = sp_xasprintf("fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		_exit(0);
	if (setsid() < 0) {
		*error_r = sp_xasprintf("setsid: %s", strerror(errno));
		return -1;
	}
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0) {
		*error_r = sp_xasprintf("/dev/null: %s", strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

int tlsd_master_run(const char *conf_arg, bool foreground)
{
	struct master m;
	char *err = NULL, *real;
	sigset_t mask;
	uid_t uid;
	gid_t gid;
	int status = 1;

	memset(&m, 0, sizeof(m));
	m.handoff_fd = -1;
	m.sigfd = -1;
	m.keyd.kind = TLSD_PROC_KEYD;
	m.keyd.ctl_fd = -1;

	real = realpath(conf_arg, NULL);
	if (real == NULL) {
		fprintf(stderr, "tlsd: %s: %s\n", conf_arg, strerror(errno));
		return 1;
	}
	m.conf_path = sp_xstrdup(real);
	free(real);
	m.set = load_config(m.conf_path, &m.conf_text, &m.conf_len, &err);
	if (m.set == NULL) {
		sp_log(SP_LOG_ERR, "config", "err=\"%s\"", err);
		fprintf(stderr, "tlsd: %s\n", err);
		free(err);
		return 1;
	}
	m.cfg = tlsd_ctxset_config(m.set);
	if (sp_log_open("tlsd", m.cfg->log_path, (enum sp_log_level)m.cfg->log_level, &err) < 0) {
		fprintf(stderr, "tlsd: log: %s\n", err);
		free(err);
		return 1;
	}
	m.keyd_path = m.cfg->keyd_path ? sp_xstrdup(m.cfg->keyd_path) : default_keyd_path();
	if (access(m.keyd_path, X_OK) < 0) {
		sp_log(SP_LOG_ERR, "config", "err=\"keyd %s: %s\"", m.keyd_path, strerror(errno));
		return 1;
	}
	if (!foreground && daemonize(&err) < 0)
		goto fail;
	if (tlsd_tickets_init(&err) < 0 || sp_privs_resolve(m.cfg->user, m.cfg->group, &uid, &gid, &err) < 0)
		goto fail;

	/* bind everything while still privileged */
	m.listeners = sp_xcalloc(m.cfg->n_services ? m.cfg->n_services : 1, sizeof(*m.listeners));
	for (size_t i = 0; i < m.cfg->n_services; i++) {
		const struct tlsd_service *s = &m.cfg->services[i];
		struct tlsd_listener *l = &m.listeners[m.n_listeners];

		if (s->sslport == 0)
			continue;
		if (bind_listener(s, &l->fd, &err) < 0)
			goto fail;
		snprintf(l->service, sizeof(l->service), "%s", s->name);
		m.n_listeners++;
	}
	if (m.cfg->handoff_socket != NULL &&
	    bind_handoff(m.cfg->handoff_socket, uid, gid, &m.handoff_fd, &err) < 0)
		goto fail;
	if (m.cfg->pidfile != NULL && write_pidfile(m.cfg->pidfile, &err) < 0)
		goto fail;
	if (sp_privs_drop("tlsd", m.cfg->user, uid, gid, &err) < 0)
		goto fail;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (m.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		err = sp_xasprintf("signalfd: %s", strerror(errno));
		goto fail;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		err = sp_xstrdup("signal(SIGPIPE)");
		goto fail;
	}

	sp_log(SP_LOG_INFO, "start", "pid=%d config=%s workers=%d listeners=%zu handoff=%s keyd=%s",
	       (int)getpid(), m.conf_path, m.cfg->workers, m.n_listeners,
	       m.cfg->handoff_socket ? m.cfg->handoff_socket : "-", m.keyd_path);
	if (keyd_spawn(&m) < 0)
		schedule_restart(&m, &m.keyd);
	m.n_workers = (size_t)m.cfg->workers;
	m.workers = sp_xcalloc(m.n_workers, sizeof(*m.workers));
	for (size_t i = 0; i < m.n_workers; i++) {
		m.workers[i].kind = TLSD_PROC_WORKER;
		m.workers[i].index = (int)i;
		m.workers[i].ctl_fd = -1;
	}
	for (size_t i = 0; i < m.n_workers; i++) {
		if (worker_spawn(&m, &m.workers[i]) < 0)
			schedule_restart(&m, &m.workers[i]);
	}
	status = master_loop(&m) < 0 ? 1 : 0;
	if (m.cfg->handoff_socket != NULL && unlink(m.cfg->handoff_socket) < 0 && errno != ENOENT)
		sp_log(SP_LOG_WARN, "stop", "unlink=%s err=\"%s\"", m.cfg->handoff_socket, strerror(errno));
	if (m.cfg->pidfile != NULL && unlink(m.cfg->pidfile) < 0 && errno != ENOENT)
		sp_log(SP_LOG_WARN, "stop", "unlink=%s err=\"%s\"", m.cfg->pidfile, strerror(errno));
	sp_log(SP_LOG_INFO, "stop", "pid=%d status=%d", (int)getpid(), status);
	goto out;
fail:
	sp_log(SP_LOG_ERR, "start_failed", "err=\"%s\"", err ? err : "?");
	if (foreground)
		fprintf(stderr, "tlsd: %s\n", err ? err : "start failed");
	free(err);
	status = 1;
out:
	for (size_t i = 0; i < m.n_workers; i++)
		sp_frame_reader_free(&m.workers[i].rd);
	free(m.workers);
	for (size_t i = 0; i < m.n_listeners; i++)
		close(m.listeners[i].fd);
	free(m.listeners);
	if (m.handoff_fd >= 0)
		close(m.handoff_fd);
	if (m.sigfd >= 0)
		close(m.sigfd);
	if (m.keyd.ctl_fd >= 0)
		close(m.keyd.ctl_fd);
	tlsd_ctxset_unref(&m.set);
	free(m.conf_text);
	free(m.conf_path);
	free(m.keyd_path);
	return status;
}
