/* The queue manager, inside the mailcore daemon's event loop: it scans the
 * spool (on start, when the SMTP side queued something, every
 * scan_interval, and on spqueue flush), delivers each due message with the
 * SMTP client (one connection per destination domain, or all to the
 * smarthost), records per-recipient results atomically, retries with
 * exponential backoff and bounces (RFC 3464 DSN) permanent failures and
 * messages older than max_age. Never bounces a bounce (null sender).
 * Nothing here blocks the loop: DNS, state files, DSN delivery and spool
 * removal run on the store pool; the message text is streamed by the
 * client straight from the spool file (never read whole into memory).
 * Ownership: a qmsg lives in qm->msgs until its finish job removed it from
 * the spool; a qconn lives from start_conn to conn_done. */
#include "mailcore/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "mailcore/mailcore.h"
#include "mailcore/mc_file.h"
#include "mailcore/smtpc.h"
#include "mailcore/store_pool.h"

#define ADDRS_MAX 20
#define DOMAINS_MAX 4096

struct queue_manager;

struct qmsg {
	struct queue_manager *qm;
	char *name;
	struct queue_envelope env;
	struct queue_state st;
	uint64_t size;
	int fd;              /* open while a round runs */
	bool busy;           /* a round or its finish job is running */
	bool seen;           /* found by the current scan */
	unsigned conns_left; /* connections of the round still running */
	struct qmsg *prev, *next;
};

/* One connection of a round: the recipients of one domain. */
struct qconn {
	struct queue_manager *qm;
	struct qmsg *msg;
	char domain[256];
	size_t *idx;         /* indices into msg->env.rcpts */
	const char **rcpts;
	size_t n;
	/* resolve job */
	struct smtpc_addr addrs[ADDRS_MAX];
	size_t n_addrs;
	bool perm;
	char error[QUEUE_ERROR_MAX];
	const char *smarthost;       /* host:port to use instead of MX, or NULL */
	char mailhost_hop[300];      /* host:port of a mailHost group (smarthost points here) */
	struct smtpc_session *client;
	struct qconn *prev, *next;   /* qm->conns */
};

struct dom_count {
	char domain[256];
	unsigned active;
};

struct queue_manager {
	struct event_base *base;
	struct store_pool *pool;
	const struct smtp_env *env;
	char *dir;
	char *smarthost;
	long mailhost_port;          /* mailHost next hops: this port unless routed */
	char **mailhost_routes;      /* "name=host:port" (mailcore.queue.mailhost_routes) */
	size_t n_mailhost_routes;
	struct smtpc_config cc;
	SSL_CTX *ssl_ctx;
	long retry_min_ms, retry_max_ms, max_age_ms, scan_interval_ms;
	unsigned max_deliveries, max_per_domain, max_messages;
	struct qmsg *msgs;
	struct qconn *conns;         /* every connection of a running round */
	unsigned n_msgs, active_conns;
	struct dom_count *doms;
	size_t n_doms;
	struct event *ev_scan, *ev_timer;
	bool flush_all, scan_pending, limit_logged;
	bool stopping;   /* shutting down: start nothing new */
	unsigned jobs; /* pool jobs in flight that point to us */
};

static void schedule(struct queue_manager *qm);

/* ---------------------------------------------------------------- helpers */

static const char *rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

static struct dom_count *dom_get(struct queue_manager *qm, const char *domain, bool create)
{
	for (size_t i = 0; i < qm->n_doms; i++)
		if (strcasecmp(qm->doms[i].domain, domain) == 0)
			return &qm->doms[i];
	if (!create || qm->n_doms >= DOMAINS_MAX)
		return NULL;
	qm->doms = sp_xrealloc(qm->doms, qm->n_doms + 1, sizeof(*qm->doms));
	memset(&qm->doms[qm->n_doms], 0, sizeof(qm->doms[0]));
	snprintf(qm->doms[qm->n_doms].domain, sizeof(qm->doms[0].domain), "%s", domain);
	return &qm->doms[qm->n_doms++];
}

static void dom_release(struct queue_manager *qm, const char *domain)
{
	struct dom_count *d = dom_get(qm, domain, false);

	if (d == NULL)
		return;
	if (d->active > 0)
		d->active--;
	if (d->active == 0) {
		*d = qm->doms[--qm->n_doms];
	}
}

static void msg_free(struct qmsg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	queue_envelope_clear(&m->env);
	queue_state_clear(&m->st);
	free(m->name);
	free(m);
}

static void msg_unlink(struct queue_manager *qm, struct qmsg *m)
{
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		qm->msgs = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	qm->n_msgs--;
}

static bool rcpt_open(enum queue_rcpt_status st)
{
	return st == QUEUE_RCPT_PENDING;
}

/* ---------------------------------------------------------------- scan */

static struct qmsg *msg_find(struct queue_manager *qm, const char *name)
{
	for (struct qmsg *m = qm->msgs; m != NULL; m = m->next)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

/* Reads one spool file's envelope and state (small reads from the page
 * cache; the fsyncs are elsewhere). */
static void msg_load(struct queue_manager *qm, const char *name)
{
	char path[PATH_MAX], *error = NULL;
	struct qmsg *m;
	struct stat sb;
	int fd, rc;

	if (qm->n_msgs >= qm->max_messages) {
		if (!qm->limit_logged)
			sp_log(SP_LOG_WARN, "queue_limit", "messages=%u limit=%u (the rest waits on disk)",
			       qm->n_msgs, qm->max_messages);
		qm->limit_logged = true;
		return;
	}
	snprintf(path, sizeof(path), "%s/new/%s", qm->dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return; /* gone meanwhile */
	m = sp_xcalloc(1, sizeof(*m));
	m->qm = qm;
	m->fd = -1;
	m->name = sp_xstrdup(name);
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    queue_envelope_read(fd, &m->env, &error) < 0) {
		sp_log(SP_LOG_ERR, "queue_bad_file", "name=%s why=\"%s\"", name,
		       error != NULL ? error : "not a regular file");
		free(error);
		close(fd);
		msg_free(m);
		return;
	}
	close(fd);
	m->size = (uint64_t)sb.st_size - m->env.body_offset;
	rc = queue_state_load(qm->dir, name, m->env.n_rcpts, &m->st, &error);
	if (rc < 0) {
		/* a broken state file: start over (at-least-once: may resend) */
		sp_log(SP_LOG_ERR, "queue_bad_state", "name=%s why=\"%s\"", name, error);
		free(error);
		rc = 1;
	}
	if (rc == 1) {
		memset(&m->st, 0, sizeof(m->st));
		m->st.n_rcpts = m->env.n_rcpts;
		m->st.rcpts = sp_xcalloc(m->env.n_rcpts, sizeof(*m->st.rcpts));
		for (size_t i = 0; i < m->env.n_rcpts; i++)
			m->st.rcpts[i].status = QUEUE_RCPT_PENDING;
		m->st.first_seen = sb.st_mtime;
		m->st.next_attempt = 0;
	}
	m->seen = true;
	m->next = qm->msgs;
	if (qm->msgs != NULL)
		qm->msgs->prev = m;
	qm->msgs = m;
	qm->n_msgs++;
	sp_log(SP_LOG_DEBUG, "queue_loaded", "name=%s rcpts=%zu attempts=%u", name, m->env.n_rcpts,
	       m->st.attempts);
}

static void scan(struct queue_manager *qm)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "%s/new", qm->dir);
	d = opendir(path);
	if (d == NULL) {
		if (errno != ENOENT)
			sp_log(SP_LOG_ERR, "queue_scan", "dir=%s why=\"%s\"", path, strerror(errno));
		return;
	}
	for (struct qmsg *m = qm->msgs; m != NULL; m = m->next)
		m->seen = false;
	qm->limit_logged = false;
	while ((de = readdir(d)) != NULL) {
		struct qmsg *m;

		if (de->d_name[0] == '.')
			continue;
		m = msg_find(qm, de->d_name);
		if (m != NULL)
			m->seen = true;
		else
			msg_load(qm, de->d_name);
	}
	closedir(d);
	/* removed behind our back (by an operator): forget them */
	for (struct qmsg *m = qm->msgs, *next; m != NULL; m = next) {
		next = m->next;
		if (!m->seen && !m->busy) {
			msg_unlink(qm, m);
			msg_free(m);
		}
	}
}

/* ---------------------------------------------------------------- finish */

/* The finish job: DSN (if due) made durable, then the state saved or the
 * message removed. Runs on a pool thread with copies of what it needs. */
struct finish_job {
	struct queue_manager *qm;
	struct qmsg *msg;
	char *dir;
	char *name;
	char *hostname;
	char *sender;
	char **rcpts;
	size_t n_rcpts;
	struct queue_state st;   /* the state to record (copy) */
	uint64_t body_offset;
	time_t now;
	/* for a DSN to a local sender */
	char *dsn_maildir;       /* NULL: into the spool (remote sender) */
	/* results */
	bool removed, dsn_sent, kick;
	char *error;
};

/* The first header block of the spool file, for text/rfc822-headers */
static char *read_headers(int fd, uint64_t off, size_t *len_r)
{
	size_t cap = 64 * 1024, len = 0;
	char *buf = sp_xmalloc(cap + 1);

	while (len < cap) {
		ssize_t n = pread(fd, buf + len, cap - len, (off_t)(off + len));
		char *end;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		end = memmem(buf, len, "\r\n\r\n", 4);
		if (end != NULL) {
			len = (size_t)(end - buf) + 2;
			break;
		}
	}
	*len_r = len;
	return buf;
}

static void finish_work(void *arg)
{
	struct finish_job *j = arg;
	struct queue_dsn_rcpt *dr = sp_xcalloc(j->n_rcpts + 1, sizeof(*dr));
	size_t n_failed = 0;
	bool all_closed = true;

	for (size_t i = 0; i < j->n_rcpts; i++) {
		struct queue_rcpt_state *r = &j->st.rcpts[i];

		if (r->status == QUEUE_RCPT_FAILED) {
			char *status = sp_xmalloc(16);
			const char *e = r->error;

			/* the error text starts with the status "5.1.1 " when known */
			snprintf(status, 16, "%.*s", (int)strcspn(e, " "), e);
			dr[n_failed].addr = j->rcpts[i];
			dr[n_failed].status = status;
			dr[n_failed].diagnostic = strchr(e, ' ') != NULL ? strchr(e, ' ') + 1 : e;
			dr[n_failed].remote_mta = "";
			n_failed++;
		}
	}
	if (n_failed > 0 && j->sender[0] != '\0') {
		char path[PATH_MAX];
		size_t hlen = 0, dlen = 0;
		char *headers = NULL, *dsn_text;
		int fd;
		struct queue_dsn dsn = {
			.reporting_mta = j->hostname,
			.sender = j->sender,
			.envelope_id = j->name,
			.arrival = j->st.first_seen,
			.now = j->now,
			.rcpts = dr,
			.n_rcpts = n_failed,
		};

		snprintf(path, sizeof(path), "%s/new/%s", j->dir, j->name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			headers = read_headers(fd, j->body_offset, &hlen);
			close(fd);
		}
		dsn.orig_headers = headers;
		dsn.orig_headers_len = hlen;
		dsn_text = queue_dsn_build(&dsn, &dlen);
		{
			struct iovec part = {.iov_base = dsn_text, .iov_len = dlen};
			char prefix[600];
			struct store_target t = {0};
			enum store_status ss;

			if (j->dsn_maildir != NULL) {
				snprintf(prefix, sizeof(prefix), "Return-Path: <>\r\nDelivered-To: %s\r\n",
					 j->sender);
				t.maildir = j->dsn_maildir;
			} else {
				snprintf(prefix, sizeof(prefix),
					 "X-Sealpost-Queue: 1\r\nX-Sealpost-From: <>\r\nX-Sealpost-To: <%s>\r\n\r\n",
					 j->sender);
				t.maildir = j->dir;
				j->kick = true;
			}
			t.prefix = prefix;
			t.prefix_len = strlen(prefix);
			ss = store_maildir_deliver(&t, 1, &part, 1, j->hostname, NULL, 0, &j->error);
			j->dsn_sent = ss == STORE_OK;
		}
		free(dsn_text);
		free(headers);
	} else if (n_failed > 0) {
		j->dsn_sent = true; /* RFC 5321 6.1 / 3464: never bounce a bounce */
	}
	for (size_t i = 0; i < n_failed; i++)
		free((char *)dr[i].status);
	free(dr);
	for (size_t i = 0; i < j->n_rcpts; i++) {
		struct queue_rcpt_state *r = &j->st.rcpts[i];

		if (r->status == QUEUE_RCPT_FAILED && j->dsn_sent)
			r->status = QUEUE_RCPT_BOUNCED;
		if (r->status == QUEUE_RCPT_PENDING || r->status == QUEUE_RCPT_FAILED)
			all_closed = false;
	}
	if (j->error != NULL)
		return; /* keep FAILED; the DSN is tried again on the next round */
	if (all_closed)
		j->removed = queue_spool_remove(j->dir, j->name, &j->error) == 0;
	else
		queue_state_save(j->dir, j->name, &j->st, &j->error);
}

static void finish_done(void *arg)
{
	struct finish_job *j = arg;
	struct queue_manager *qm = j->qm;
	struct qmsg *m = j->msg;

	qm->jobs--;
	if (j->error != NULL)
		sp_log(SP_LOG_ERR, "queue_finish", "name=%s why=\"%s\"", j->name, j->error);
	if (j->dsn_sent && j->sender[0] != '\0')
		sp_log(SP_LOG_INFO, "queue_bounced", "name=%s to=\"%s\"", j->name, j->sender);
	if (j->removed) {
		sp_log(SP_LOG_INFO, "queue_removed", "name=%s", j->name);
		msg_unlink(qm, m);
		msg_free(m);
	} else {
		/* what we recorded is now the truth (statuses moved to BOUNCED) */
		for (size_t i = 0; i < m->st.n_rcpts; i++)
			if (j->dsn_sent && m->st.rcpts[i].status == QUEUE_RCPT_FAILED)
				m->st.rcpts[i].status = QUEUE_RCPT_BOUNCED;
		if (j->error != NULL) {
			/* could not record: try again after the backoff */
			m->st.next_attempt = time(NULL) + queue_backoff_ms(m->st.attempts,
									  qm->retry_min_ms, qm->retry_max_ms) / 1000;
		}
		m->busy = false;
	}
	if (j->kick)
		queue_manager_kick(qm, false);
	queue_state_clear(&j->st);
	free(j->rcpts);
	free(j->dir);
	free(j->name);
	free(j->hostname);
	free(j->sender);
	free(j->dsn_maildir);
	free(j->error);
	free(j);
	schedule(qm);
}

/* Where a DSN to a local sender goes: the user's Maildir (aliases not
 * followed: a DSN goes to the mailbox named, or nowhere). NULL = remote. */
static char *local_dsn_maildir(struct queue_manager *qm, const char *sender, bool *drop)
{
	const struct smtp_env *env = qm->env;
	const char *dom = rcpt_domain(sender);
	char norm[320], path[PATH_MAX];
	const struct dir_user *u;
	bool local = false;

	*drop = false;
	for (size_t i = 0; i < env->n_domains; i++)
		if (strcasecmp(env->domains[i], dom) == 0)
			local = true;
	if (!local)
		return NULL;
	if (mc_normalize_address(sender, strlen(sender), norm, sizeof(norm)) < 0 ||
	    (u = dir_users_find(env->tables != NULL ? env->tables->users : env->users, norm)) == NULL ||
	    store_maildir_path(env->store_root, u->address, path, sizeof(path)) < 0) {
		*drop = true;
		return NULL;
	}
	return sp_xstrdup(path);
}

static void start_finish(struct queue_manager *qm, struct qmsg *m)
{
	struct finish_job *j = sp_xcalloc(1, sizeof(*j));
	bool drop = false;

	j->qm = qm;
	j->msg = m;
	j->dir = sp_xstrdup(qm->dir);
	j->name = sp_xstrdup(m->name);
	j->hostname = sp_xstrdup(qm->env->hostname);
	j->sender = sp_xstrdup(m->env.sender);
	j->rcpts = sp_xcalloc(m->env.n_rcpts, sizeof(*j->rcpts));
	for (size_t i = 0; i < m->env.n_rcpts; i++)
		j->rcpts[i] = m->env.rcpts[i]; /* m outlives the job */
	j->n_rcpts = m->env.n_rcpts;
	j->st = m->st;
	j->st.rcpts = sp_xcalloc(m->st.n_rcpts, sizeof(*j->st.rcpts));
	memcpy(j->st.rcpts, m->st.rcpts, m->st.n_rcpts * sizeof(*j->st.rcpts));
	j->body_offset = m->env.body_offset;
	j->now = time(NULL);
	if (m->env.sender[0] != '\0') {
		j->dsn_maildir = local_dsn_maildir(qm, m->env.sender, &drop);
		if (drop) {
			sp_log(SP_LOG_NOTICE, "queue_dsn_dropped", "name=%s why=\"sender is no local user\"",
			       m->name);
			free(j->sender);
			j->sender = sp_xstrdup("");
		}
	}
	qm->jobs++;
	if (store_pool_submit(qm->pool, finish_work, finish_done, j) < 0) {
		/* the pool is full: as if the job failed; the round is retried */
		j->error = sp_xasprintf("pool full");
		j->dsn_sent = false;
		finish_done(j);
	}
}

/* ---------------------------------------------------------------- rounds */

static void round_end(struct queue_manager *qm, struct qmsg *m)
{
	time_t now = time(NULL);
	bool pending = false;

	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	m->st.attempts++;
	for (size_t i = 0; i < m->st.n_rcpts; i++)
		if (rcpt_open(m->st.rcpts[i].status))
			pending = true;
	if (pending && (now - m->st.first_seen) * 1000 >= qm->max_age_ms) {
		/* RFC 5321 4.5.4.1: give up after the retry period; a bounce */
		for (size_t i = 0; i < m->st.n_rcpts; i++) {
			struct queue_rcpt_state *r = &m->st.rcpts[i];
			char e[QUEUE_ERROR_MAX];

			if (!rcpt_open(r->status))
				continue;
			snprintf(e, sizeof(e), "%s", r->error);
			snprintf(r->error, sizeof(r->error), "4.4.7 delivery time expired; last error: %.400s",
				 e[0] != '\0' ? (strchr(e, ' ') ? strchr(e, ' ') + 1 : e) : "none");
			r->status = QUEUE_RCPT_FAILED;
		}
		sp_log(SP_LOG_NOTICE, "queue_expired", "name=%s", m->name);
	}
	m->st.next_attempt = now + queue_backoff_ms(m->st.attempts, qm->retry_min_ms,
						    qm->retry_max_ms) / 1000;
	if (queue_backoff_ms(m->st.attempts, qm->retry_min_ms, qm->retry_max_ms) < 1000)
		m->st.next_attempt = now; /* sub-second retries (tests): the timer below */
	start_finish(qm, m);
}

/* Results of one connection into the message's state. */
static void conn_results(struct qconn *c, const struct smtpc_rcpt_result *res, size_t n,
			 const char *host)
{
	struct qmsg *m = c->msg;

	for (size_t i = 0; i < n && i < c->n; i++) {
		struct queue_rcpt_state *r = &m->st.rcpts[c->idx[i]];
		const char *status = res[i].status[0] != '\0' ? res[i].status
				   : res[i].code / 100 == 5 ? "5.0.0" : "4.0.0";
		char esc[300];

		sp_log_escape(esc, sizeof(esc), c->rcpts[i], strlen(c->rcpts[i]));
		r->code = res[i].code;
		snprintf(r->error, sizeof(r->error), "%s %s", status, res[i].text);
		if (res[i].code / 100 == 2) {
			r->status = QUEUE_RCPT_DONE;
			sp_log(SP_LOG_INFO, "queue_delivered", "name=%s rcpt=\"%s\" relay=\"%s\"", m->name,
			       esc, host);
		} else if (res[i].code / 100 == 5) {
			r->status = QUEUE_RCPT_FAILED;
			sp_log(SP_LOG_NOTICE, "queue_failed", "name=%s rcpt=\"%s\" why=\"%s\"", m->name, esc,
			       res[i].text);
		} else {
			sp_log(SP_LOG_INFO, "queue_deferred", "name=%s rcpt=\"%s\" why=\"%s\"", m->name, esc,
			       res[i].text);
		}
		snprintf(m->st.last_error, sizeof(m->st.last_error), "%s", r->status == QUEUE_RCPT_DONE
			 ? m->st.last_error : res[i].text);
	}
}

static void conn_free(struct qconn *c)
{
	if (c->qm != NULL && (c->prev != NULL || c->qm->conns == c)) {
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			c->qm->conns = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
	}
	free(c->idx);
	free(c->rcpts);
	free(c);
}

static void conn_finished(struct qconn *c)
{
	struct queue_manager *qm = c->qm;
	struct qmsg *m = c->msg;

	qm->active_conns--;
	dom_release(qm, c->domain);
	conn_free(c);
	if (--m->conns_left == 0)
		round_end(qm, m);
	schedule(qm);
}

static void on_client_done(void *arg, const struct smtpc_rcpt_result *res, size_t n,
			   const char *host)
{
	struct qconn *c = arg;

	c->client = NULL;
	conn_results(c, res, n, host);
	conn_finished(c);
}

static void resolve_work(void *arg)
{
	struct qconn *c = arg;

	c->n_addrs = queue_resolve(c->domain, c->smarthost, c->addrs, ADDRS_MAX, &c->perm,
				   c->error, sizeof(c->error));
}

static void resolve_done(void *arg)
{
	struct qconn *c = arg;
	struct queue_manager *qm = c->qm;
	struct smtpc_txn txn = {
		.sender = c->msg->env.sender,
		.rcpts = c->rcpts,
		.n_rcpts = c->n,
		.msg_fd = c->msg->fd,
		.body_offset = c->msg->env.body_offset,
		.body_size = c->msg->size,
	};

	qm->jobs--;
	if (qm->stopping) {
		/* shutting down: the message stays in the spool as it is */
		qm->active_conns--;
		conn_free(c);
		return;
	}
	if (c->n_addrs == 0) {
		struct smtpc_rcpt_result *res = sp_xcalloc(c->n, sizeof(*res));

		for (size_t i = 0; i < c->n; i++) {
			res[i].code = c->perm ? 550 : 451;
			snprintf(res[i].status, sizeof(res[i].status), "%s", c->perm ? "5.1.2" : "4.4.3");
			snprintf(res[i].text, sizeof(res[i].text), "%s", c->error);
		}
		conn_results(c, res, c->n, "");
		free(res);
		conn_finished(c);
		return;
	}
	c->client = smtpc_start(qm->base, &qm->cc, c->addrs, c->n_addrs, &txn, on_client_done, c);
	if (c->client == NULL) {
		struct smtpc_rcpt_result *res = sp_xcalloc(c->n, sizeof(*res));

		for (size_t i = 0; i < c->n; i++) {
			res[i].code = 451;
			snprintf(res[i].status, sizeof(res[i].status), "4.3.0");
			snprintf(res[i].text, sizeof(res[i].text), "cannot start the SMTP client");
		}
		conn_results(c, res, c->n, "");
		free(res);
		conn_finished(c);
	}
}

/* The next hop of a recipient homed on another store host: its entry in
 * mailcore.queue.mailhost_routes, else host:mailcore.queue.mailhost_port
 * (the mailHost's own A/AAAA records; never its domain's MX). */
static void mailhost_hop(const struct queue_manager *qm, const char *host, char *buf, size_t cap)
{
	size_t hl = strlen(host);

	for (size_t i = 0; i < qm->n_mailhost_routes; i++) {
		const char *r = qm->mailhost_routes[i];

		if (strncasecmp(r, host, hl) == 0 && r[hl] == '=') {
			snprintf(buf, cap, "%s", r + hl + 1);
			return;
		}
	}
	snprintf(buf, cap, "%s:%ld", host, qm->mailhost_port);
}

/* Groups the open recipients by domain (one group with a smarthost);
 * recipients homed on another store host (env.mailhosts) go to that host
 * whatever the smarthost, one group per mailHost ("mailhost:" keys keep
 * them apart from a domain of the same name). Returns false when a
 * domain has no free connection slot now. */
static bool start_round(struct queue_manager *qm, struct qmsg *m)
{
	struct qconn **conns = NULL;
	size_t n_conns = 0;
	char path[PATH_MAX];
	bool ok = true;

	for (size_t i = 0; i < m->env.n_rcpts; i++) {
		const char *mh = m->env.mailhosts != NULL ? m->env.mailhosts[i] : NULL;
		const char *dom = qm->smarthost != NULL ? qm->smarthost : rcpt_domain(m->env.rcpts[i]);
		char key[256];
		struct qconn *c = NULL;

		if (!rcpt_open(m->st.rcpts[i].status))
			continue;
		if (mh != NULL) {
			snprintf(key, sizeof(key), "mailhost:%s", mh);
			dom = key;
		}
		for (size_t k = 0; k < n_conns; k++)
			if (strcasecmp(conns[k]->domain, dom) == 0)
				c = conns[k];
		if (c == NULL) {
			c = sp_xcalloc(1, sizeof(*c));
			c->qm = qm;
			c->msg = m;
			c->smarthost = qm->smarthost;
			if (mh != NULL) {
				mailhost_hop(qm, mh, c->mailhost_hop, sizeof(c->mailhost_hop));
				c->smarthost = c->mailhost_hop;
			}
			snprintf(c->domain, sizeof(c->domain), "%s", dom);
			c->idx = sp_xcalloc(m->env.n_rcpts, sizeof(*c->idx));
			c->rcpts = sp_xcalloc(m->env.n_rcpts, sizeof(*c->rcpts));
			conns = sp_xrealloc(conns, n_conns + 1, sizeof(*conns));
			conns[n_conns++] = c;
		}
		c->idx[c->n] = i;
		c->rcpts[c->n] = m->env.rcpts[i];
		c->n++;
	}
	/* capacity: all the message's connections, or none now */
	if (qm->active_conns + n_conns > qm->max_deliveries && qm->active_conns > 0)
		ok = false;
	for (size_t k = 0; k < n_conns && ok; k++) {
		struct dom_count *d = dom_get(qm, conns[k]->domain, false);

		if (d != NULL && d->active >= qm->max_per_domain)
			ok = false;
	}
	if (!ok) {
		for (size_t k = 0; k < n_conns; k++)
			conn_free(conns[k]);
		free(conns);
		return false;
	}
	m->busy = true;
	if (n_conns == 0) {
		/* nothing to send: only a DSN or the removal is left */
		free(conns);
		start_finish(qm, m);
		return true;
	}
	snprintf(path, sizeof(path), "%s/new/%s", qm->dir, m->name);
	m->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	m->conns_left = (unsigned)n_conns;
	for (size_t k = 0; k < n_conns; k++) {
		struct qconn *c = conns[k];
		struct dom_count *d = dom_get(qm, c->domain, true);

		if (d != NULL)
			d->active++; /* (table full: counted globally only) */
		qm->active_conns++;
		c->next = qm->conns;
		if (qm->conns != NULL)
			qm->conns->prev = c;
		qm->conns = c;
		if (m->fd < 0) {
			snprintf(c->error, sizeof(c->error), "cannot open the spool file: %s",
				 strerror(errno));
			c->n_addrs = 0;
			qm->jobs++;
			resolve_done(c);
			continue;
		}
		qm->jobs++;
		if (store_pool_submit(qm->pool, resolve_work, resolve_done, c) < 0) {
			snprintf(c->error, sizeof(c->error), "resolver queue full");
			c->n_addrs = 0;
			resolve_done(c);
		}
	}
	free(conns);
	return true;
}

/* ---------------------------------------------------------------- scheduling */

static void schedule(struct queue_manager *qm)
{
	time_t now = time(NULL), earliest = 0;
	bool any = false;

	if (qm->stopping)
		return;

	for (struct qmsg *m = qm->msgs; m != NULL; m = m->next) {
		if (m->busy)
			continue;
		if (qm->flush_all)
			m->st.next_attempt = 0;
		if (m->st.next_attempt <= now) {
			if (qm->active_conns >= qm->max_deliveries)
				continue;
			if (start_round(qm, m))
				continue;
		}
		if (!m->busy && (!any || m->st.next_attempt < earliest)) {
			earliest = m->st.next_attempt;
			any = true;
		}
	}
	qm->flush_all = false;
	evtimer_del(qm->ev_timer);
	{
		long ms = qm->scan_interval_ms;

		if (any) {
			long due = earliest > now ? (long)(earliest - now) * 1000 : 0;

			if (due <= 0) /* due but no slot: look again soon */
				due = qm->retry_min_ms < 1000 ? qm->retry_min_ms : 1000;
			if (due < ms)
				ms = due;
		}
		{
			struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

			evtimer_add(qm->ev_timer, &tv);
		}
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct queue_manager *qm = arg;

	(void)fd;
	(void)what;
	scan(qm);
	schedule(qm);
}

static void on_scan(evutil_socket_t fd, short what, void *arg)
{
	struct queue_manager *qm = arg;

	(void)fd;
	(void)what;
	qm->scan_pending = false;
	scan(qm);
	schedule(qm);
}

void queue_manager_stop(struct queue_manager *qm)
{
	if (qm != NULL)
		qm->stopping = true;
}

void queue_manager_kick(struct queue_manager *qm, bool all)
{
	if (qm == NULL || qm->stopping)
		return;
	if (all) {
		qm->flush_all = true;
		sp_log(SP_LOG_INFO, "queue_flush", "messages=%u", qm->n_msgs);
	}
	if (!qm->scan_pending) {
		struct timeval zero = {0, 0};

		qm->scan_pending = true;
		evtimer_add(qm->ev_scan, &zero); /* coalesces a burst of kicks */
	}
}

/* ---------------------------------------------------------------- setup */

static int write_pidfile(const char *dir, char **error_r)
{
	char path[PATH_MAX], tmp[PATH_MAX], text[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/queue.pid", dir);
	snprintf(tmp, sizeof(tmp), "%s/.queue.pid.tmp", dir);
	n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) < 0 || rename(tmp, path) < 0) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		if (fd >= 0)
			unlink(tmp);
		return -1;
	}
	return 0;
}

static int make_dirs(const char *dir, char **error_r)
{
	static const char *const subs[] = {"", "/tmp", "/new", "/cur", "/state"};

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s%s", dir, subs[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static SSL_CTX *client_ctx(const char *cafile, char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		*error_r = sp_xasprintf("cannot make the queue's TLS client context");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (cafile != NULL ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1
			   : SSL_CTX_set_default_verify_paths(ctx) != 1) {
		*error_r = sp_xasprintf("mailcore.queue.tls_cafile %s: cannot load",
					cafile != NULL ? cafile : "(system)");
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	return ctx;
}

struct queue_manager *queue_manager_new(struct event_base *base, struct store_pool *pool,
					const struct smtp_env *env, const struct sp_conf *conf,
					char **error_r)
{
	struct queue_manager *qm = sp_xcalloc(1, sizeof(*qm));
	const char *tls = sp_conf_str(conf, "mailcore.queue.tls");
	const char *smarthost = sp_conf_str(conf, "mailcore.queue.smarthost");

	qm->base = base;
	qm->pool = pool;
	qm->env = env;
	qm->dir = sp_xstrdup(env->queue_dir);
	if (smarthost != NULL) {
		const char *colon = strrchr(smarthost, ':');
		char *end = NULL;
		long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;

		if (colon == NULL || colon == smarthost || *end != '\0' || port < 1 || port > 65535) {
			*error_r = sp_xasprintf("mailcore.queue.smarthost: \"%s\" is not host:port",
						smarthost);
			goto fail;
		}
		qm->smarthost = sp_xstrdup(smarthost);
	}
	qm->mailhost_port = (long)sp_conf_int(conf, "mailcore.queue.mailhost_port");
	{
		const char *const *routes = NULL;
		size_t n = sp_conf_list(conf, "mailcore.queue.mailhost_routes", &routes);

		qm->mailhost_routes = sp_xcalloc(n + 1, sizeof(*qm->mailhost_routes));
		for (size_t i = 0; i < n; i++) {
			const char *eq = strchr(routes[i], '=');
			const char *colon = eq != NULL ? strrchr(eq, ':') : NULL;
			char *end = NULL;
			long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;

			if (eq == NULL || !queue_mailhost_valid(routes[i], (size_t)(eq - routes[i])) ||
			    colon == NULL || colon == eq + 1 || *end != '\0' || port < 1 || port > 65535) {
				*error_r = sp_xasprintf("mailcore.queue.mailhost_routes: \"%s\" is not "
							"mailhost=host:port", routes[i]);
				goto fail;
			}
			qm->mailhost_routes[qm->n_mailhost_routes++] = sp_xstrdup(routes[i]);
		}
	}
	qm->cc.helo_name = env->hostname;
	qm->cc.tls = strcmp(tls, "must") == 0 ? SMTPC_TLS_MUST
		   : strcmp(tls, "may") == 0  ? SMTPC_TLS_MAY
					      : SMTPC_TLS_NONE;
	qm->cc.tls_verify = sp_conf_bool(conf, "mailcore.queue.tls_verify");
	qm->cc.connect_timeout_ms = (long)sp_conf_int(conf, "mailcore.queue.connect_timeout");
	qm->cc.command_timeout_ms = (long)sp_conf_int(conf, "mailcore.queue.command_timeout");
	qm->cc.data_timeout_ms = (long)sp_conf_int(conf, "mailcore.queue.data_timeout");
	if (qm->cc.tls != SMTPC_TLS_NONE) {
		qm->ssl_ctx = client_ctx(sp_conf_str(conf, "mailcore.queue.tls_cafile"), error_r);
		if (qm->ssl_ctx == NULL)
			goto fail;
		qm->cc.ssl_ctx = qm->ssl_ctx;
	}
	qm->retry_min_ms = (long)sp_conf_int(conf, "mailcore.queue.retry_min");
	qm->retry_max_ms = (long)sp_conf_int(conf, "mailcore.queue.retry_max");
	qm->max_age_ms = (long)sp_conf_int(conf, "mailcore.queue.max_age");
	qm->scan_interval_ms = (long)sp_conf_int(conf, "mailcore.queue.scan_interval");
	qm->max_deliveries = (unsigned)sp_conf_int(conf, "mailcore.queue.max_deliveries");
	qm->max_per_domain = (unsigned)sp_conf_int(conf, "mailcore.queue.max_per_domain");
	qm->max_messages = (unsigned)sp_conf_int(conf, "mailcore.queue.max_messages");
	if (qm->retry_max_ms < qm->retry_min_ms)
		qm->retry_max_ms = qm->retry_min_ms;
	if (make_dirs(qm->dir, error_r) < 0 || write_pidfile(qm->dir, error_r) < 0)
		goto fail;
	qm->ev_timer = evtimer_new(base, on_timer, qm);
	qm->ev_scan = evtimer_new(base, on_scan, qm);
	if (qm->ev_timer == NULL || qm->ev_scan == NULL) {
		*error_r = sp_xasprintf("queue: cannot make timers");
		goto fail;
	}
	sp_log(SP_LOG_INFO, "queue_ready", "dir=%s relay=%s tls=%s verify=%s", qm->dir,
	       qm->smarthost != NULL ? qm->smarthost : "mx", tls, qm->cc.tls_verify ? "yes" : "no");
	queue_manager_kick(qm, false);
	return qm;
fail:
	queue_manager_free(&qm);
	return NULL;
}

void queue_manager_free(struct queue_manager **qmp)
{
	struct queue_manager *qm;
	char path[PATH_MAX];

	if (qmp == NULL || *qmp == NULL)
		return;
	qm = *qmp;
	/* The caller frees the pool first (its done callbacks still run with
	 * us alive); clients still running are aborted: their messages stay
	 * in the spool and are sent again (at-least-once). */
	while (qm->conns != NULL) {
		struct qconn *c = qm->conns;

		smtpc_abort(&c->client);
		conn_free(c);
	}
	while (qm->msgs != NULL) {
		struct qmsg *m = qm->msgs;

		msg_unlink(qm, m);
		msg_free(m);
	}
	if (qm->ev_timer != NULL)
		event_free(qm->ev_timer);
	if (qm->ev_scan != NULL)
		event_free(qm->ev_scan);
	if (qm->dir != NULL) {
		snprintf(path, sizeof(path), "%s/queue.pid", qm->dir);
		if (qm->ev_timer != NULL)
			unlink(path);
	}
	SSL_CTX_free(qm->ssl_ctx);
	free(qm->doms);
	for (size_t i = 0; i < qm->n_mailhost_routes; i++)
		free(qm->mailhost_routes[i]);
	free(qm->mailhost_routes);
	free(qm->smarthost);
	free(qm->dir);
	free(qm);
	*qmp = NULL;
}
