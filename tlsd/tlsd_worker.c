/* A TLS worker: one libevent base that accepts on the shared listening sockets
 * and the handoff socket, runs every connection (tlsd_conn.c), talks to keyd
 * through the key client, and obeys the master's control channel (new keyd
 * channel, reload). Forked from the master without exec; unprivileged. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "tlsd/tlsd_int.h"
#include "tlsd/tlsd_keyclient.h"

#define TLSD_ACCEPT_BATCH 16

struct listen_ev {
	struct tlsd_worker *w;
	struct tlsd_listener *l;
};

static struct tlsd_listener *g_listeners;
static size_t g_n_listeners;
static struct listen_ev *g_lev;
static int g_handoff_fd = -1;
static struct event *g_handoff_ev;
static int g_ctl_fd = -1;
static struct sp_frame_reader *g_ctl_rd;
static struct event *g_ctl_ev, *g_sigterm, *g_sigint, *g_deadline;
static time_t g_cap_logged_at;

static void maybe_exit(struct tlsd_worker *w)
{
	if (w->stopping && w->conns.count == 0 && w->handoff_pending == 0)
		event_base_loopexit(w->base, NULL);
}

void tlsd_worker_conn_gone(struct tlsd_worker *w)
{
	maybe_exit(w);
}

int tlsd_worker_admit(struct tlsd_worker *w, int fd, const char *service)
{
	long max = tlsd_ctxset_config(w->current)->max_connections;
	time_t now;

	if ((long)(w->conns.count + w->handoff_pending) < max)
		return 0;
	close(fd);
	w->cap_dropped++;
	now = time(NULL);
	if (now != g_cap_logged_at) {  /* at most one line a second */
		g_cap_logged_at = now;
		sp_log(SP_LOG_WARN, "conn_limit", "worker=%d service=%s max_connections=%ld dropped=%lu",
		       w->index, service, max, w->cap_dropped);
	}
	return -1;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct listen_ev *le = arg;
	struct tlsd_worker *w = le->w;

	for (int i = 0; i < TLSD_ACCEPT_BATCH && !w->stopping; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			/* EAGAIN: another worker took it */
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				sp_log(SP_LOG_ERR, "accept", "service=%s err=\"%s\"", le->l->service,
				       strerror(errno));
			return;
		}
		if (tlsd_worker_admit(w, fd, le->l->service) < 0)
			continue;
		tlsd_conn_start(w, le->l->service, fd, -1, NULL);
	}
}

static void on_handoff(evutil_socket_t fd, short what, void *arg)
{
	tlsd_handoff_accept(arg, fd);
}

static void stop_listening(void)
{
	for (size_t i = 0; i < g_n_listeners; i++) {
		if (g_lev[i].l == NULL)
			continue;
		event_free(g_listeners[i].ev);
		g_listeners[i].ev = NULL;
		close(g_listeners[i].fd);
		g_lev[i].l = NULL;
	}
	if (g_handoff_ev != NULL) {
		event_free(g_handoff_ev);
		g_handoff_ev = NULL;
		close(g_handoff_fd);
		g_handoff_fd = -1;
	}
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct tlsd_worker *w = arg;

	sp_log(SP_LOG_NOTICE, "shutdown_deadline", "worker=%d closing=%zu", w->index, w->conns.count);
	tlsd_conn_close_all(w);
	event_base_loopexit(w->base, NULL);
}

static void begin_stop(struct tlsd_worker *w, const char *why)
{
	struct timeval tv;
	long ms = tlsd_ctxset_config(w->current)->shutdown_timeout_ms;

	if (w->stopping)
		return;
	w->stopping = true;
	sp_log(SP_LOG_INFO, "worker_stopping", "worker=%d why=%s connections=%zu", w->index, why,
	       w->conns.count);
	stop_listening();
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	g_deadline = evtimer_new(w->base, on_deadline, w);
	if (g_deadline == NULL || evtimer_add(g_deadline, &tv) < 0)
		event_base_loopexit(w->base, NULL);
	maybe_exit(w);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	begin_stop(arg, "signal");
}

static void do_reload(struct tlsd_worker *w, uint64_t gen)
{
	const struct tlsd_config *old = tlsd_ctxset_config(w->current);
	struct tlsd_ctl_msg reply = { .type = TLSD_CTL_RELOADED, .generation = gen };
	struct tlsd_config *cfg = NULL;
	struct tlsd_ctxset *set = NULL;
	char *text = NULL, *err = NULL;
	size_t len;

	if (tlsd_config_read_file(old->path, &text, &len, &err) == 0 &&
	    (cfg = tlsd_config_parse(old->path, text, len, &err)) != NULL &&
	    tlsd_config_same_listeners(old, cfg, &err) == 0 &&
	    (set = tlsd_ctxset_new(cfg, w->kc, &err)) != NULL) {
		/* live connections keep their own reference on the old set */
		tlsd_ctxset_unref(&w->current);
		w->current = set;
		reply.ok = 1;
		sp_log(SP_LOG_INFO, "worker_reloaded", "worker=%d generation=%llu", w->index,
		       (unsigned long long)gen);
	} else {
		if (set == NULL)
			tlsd_config_free(&cfg);
		snprintf(reply.error, sizeof(reply.error), "%s", err ? err : "?");
		sp_log(SP_LOG_ERR, "worker_reload_failed", "worker=%d generation=%llu err=\"%s\"",
		       w->index, (unsigned long long)gen, reply.error);
	}
	free(err);
	free(text);
	if (tlsd_ctl_send(g_ctl_fd, &reply, -1) < 0)
		sp_log(SP_LOG_ERR, "ctl_send", "worker=%d err=\"%s\"", w->index, strerror(errno));
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct tlsd_worker *w = arg;
	uint8_t buf[TLSD_CTL_MAX_BODY + SP_FRAME_HDR];
	struct tlsd_ctl_msg msg;
	const uint8_t *body;
	const char *err;
	size_t len;
	int got_fd = -1, r;
	ssize_t n = sp_fd_recv(fd, &got_fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		/* the master is gone (or the channel broke): finish and go */
		event_free(g_ctl_ev);
		g_ctl_ev = NULL;
		begin_stop(w, n == 0 ? "master_gone" : "control_error");
		return;
	}
	if (sp_frame_reader_feed(g_ctl_rd, buf, (size_t)n, &err) < 0 ||
	    (r = sp_frame_reader_next(g_ctl_rd, &body, &len, &err)) < 0) {
		sp_log(SP_LOG_ERR, "ctl_bad", "worker=%d err=\"%s\"", w->index, err);
		if (got_fd >= 0)
			close(got_fd);
		return;
	}
	if (r == 0) {
		if (got_fd >= 0)
			close(got_fd);  /* fds ride only with a whole message */
		return;
	}
	if (tlsd_ctl_parse(body, len, &msg, &err) < 0) {
		sp_log(SP_LOG_ERR, "ctl_bad", "worker=%d err=\"%s\"", w->index, err);
		if (got_fd >= 0)
			close(got_fd);
		return;
	}
	switch (msg.type) {
	case TLSD_CTL_KEYD_FD:
		if (got_fd < 0) {
			sp_log(SP_LOG_ERR, "ctl_bad", "worker=%d err=\"KEYD_FD without an fd\"", w->index);
			return;
		}
		if (tlsd_keyclient_set_fd(w->kc, got_fd) < 0)
			sp_log(SP_LOG_ERR, "keyd_channel", "worker=%d err=\"set_fd failed\"", w->index);
		else
			sp_log(SP_LOG_INFO, "keyd_channel", "worker=%d state=new", w->index);
		return;
	case TLSD_CTL_RELOAD:
		if (got_fd >= 0)
			close(got_fd);
		do_reload(w, msg.generation);
		return;
	default:
		if (got_fd >= 0)
			close(got_fd);
		sp_log(SP_LOG_ERR, "ctl_bad", "worker=%d err=\"unexpected type %u\"", w->index,
		       (unsigned)msg.type);
	}
}

int tlsd_worker_run(int index, struct tlsd_config *cfg, struct tlsd_listener *listeners,
		    size_t n_listeners, int handoff_fd, int ctl_fd, int keyd_fd)
{
	struct tlsd_worker w;
	char *err = NULL;
	int status = 0;

	memset(&w, 0, sizeof(w));
	w.index = index;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) {
		sp_log(SP_LOG_ERR, "worker_start", "worker=%d err=\"prctl: %s\"", index, strerror(errno));
		return 1;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return 1;
	w.base = event_base_new();
	if (w.base == NULL) {
		sp_log(SP_LOG_ERR, "worker_start", "worker=%d err=\"event_base_new\"", index);
		return 1;
	}
	w.kc = tlsd_keyclient_new(w.base, cfg->keyop_timeout_ms, &err);
	if (w.kc == NULL) {
		sp_log(SP_LOG_ERR, "worker_start", "worker=%d err=\"keyclient: %s\"", index, err ? err : "?");
		return 1;
	}
	if (keyd_fd >= 0 && tlsd_keyclient_set_fd(w.kc, keyd_fd) < 0)
		sp_log(SP_LOG_ERR, "keyd_channel", "worker=%d err=\"set_fd failed\"", index);
	w.current = tlsd_ctxset_new(cfg, w.kc, &err);
	if (w.current == NULL) {
		sp_log(SP_LOG_ERR, "worker_start", "worker=%d err=\"%s\"", index, err ? err : "?");
		return 1;
	}

	g_listeners = listeners;
	g_n_listeners = n_listeners;
	g_lev = sp_xcalloc(n_listeners ? n_listeners : 1, sizeof(*g_lev));
	for (size_t i = 0; i < n_listeners; i++) {
		g_lev[i].w = &w;
		g_lev[i].l = &listeners[i];
		listeners[i].ev = event_new(w.base, listeners[i].fd, EV_READ | EV_PERSIST, on_accept,
					    &g_lev[i]);
		if (listeners[i].ev == NULL || event_add(listeners[i].ev, NULL) < 0)
			return 1;
	}
	g_handoff_fd = handoff_fd;
	if (handoff_fd >= 0) {
		g_handoff_ev = event_new(w.base, handoff_fd, EV_READ | EV_PERSIST, on_handoff, &w);
		if (g_handoff_ev == NULL || event_add(g_handoff_ev, NULL) < 0)
			return 1;
	}
	g_ctl_fd = ctl_fd;
	g_ctl_rd = sp_frame_reader_new(TLSD_CTL_MAX_BODY);
	g_ctl_ev = event_new(w.base, ctl_fd, EV_READ | EV_PERSIST, on_ctl, &w);
	g_sigterm = evsignal_new(w.base, SIGTERM, on_signal, &w);
	g_sigint = evsignal_new(w.base, SIGINT, on_signal, &w);
	if (g_ctl_rd == NULL || g_ctl_ev == NULL || event_add(g_ctl_ev, NULL) < 0 ||
	    g_sigterm == NULL || event_add(g_sigterm, NULL) < 0 || g_sigint == NULL ||
	    event_add(g_sigint, NULL) < 0)
		return 1;

	sp_log(SP_LOG_INFO, "worker_start", "worker=%d pid=%d listeners=%zu handoff=%s", index,
	       (int)getpid(), n_listeners, handoff_fd >= 0 ? "yes" : "no");
	if (event_base_dispatch(w.base) < 0)
		status = 1;
	tlsd_conn_close_all(&w);
	sp_log(SP_LOG_INFO, "worker_stop", "worker=%d pid=%d", index, (int)getpid());

	stop_listening();
	if (g_ctl_ev != NULL)
		event_free(g_ctl_ev);
	event_free(g_sigterm);
	event_free(g_sigint);
	if (g_deadline != NULL)
		event_free(g_deadline);
	sp_frame_reader_free(&g_ctl_rd);
	free(g_lev);
	tlsd_ctxset_unref(&w.current);
	if (w.conns.count == 0) {
		tlsd_keyclient_free(&w.kc);
		event_base_free(w.base);
	}
	close(ctl_fd);
	return status;
}
