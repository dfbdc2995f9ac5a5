/* IMAP commands on mailboxes as a whole (RFC 3501 6.3): CREATE, DELETE,
 * RENAME, SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB (with RFC 3348 CHILDREN
 * attributes), STATUS, APPEND (RFC 4315 APPENDUID), and the RFC 2087 QUOTA
 * commands, on the store's Maildir++ folders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "common/xalloc.h"
#include "mailcore/imap_int.h"

static void tag_of(const struct imap_cmd *cmd, char *tag)
{
	memcpy(tag, cmd->tag, cmd->tag_len);
	tag[cmd->tag_len] = '\0';
}

/* CREATE, DELETE and RENAME make directories and fsync them: on the pool. */
enum folder_op { F_CREATE, F_DELETE, F_RENAME };

struct folder_job {
	char tag[IMAP_TAG_MAX + 1];
	enum folder_op op;
	char name[STORE_MAILBOX_NAME_MAX + 2], to[STORE_MAILBOX_NAME_MAX + 1];
	char *hostname;            /* a copy: env may be gone when the job runs */
	enum store_mb_result rc;
	char *err;
};

static const char *const folder_verbs[] = {"CREATE", "DELETE", "RENAME"};

static void folder_work(struct imap_session *s, void *arg)
{
	struct folder_job *j = arg;

	switch (j->op) {
	case F_CREATE:
		j->rc = store_folder_create(s->maildir, j->name, &j->err);
		break;
	case F_DELETE:
		j->rc = store_folder_delete(s->maildir, j->name, &j->err);
		if (j->rc == STORE_MB_OK) {
			char *err = NULL;

			store_subscriptions_set(s->maildir, j->name, false, &err);
			free(err);
		}
		break;
	case F_RENAME:
		j->rc = store_folder_rename(s->maildir, j->name, j->to, j->hostname, &j->err);
		break;
	}
}

static void folder_finish(struct imap_session *s, void *arg)
{
	struct folder_job *j = arg;

	if (j->rc != STORE_MB_OK) {
		imap_store_error(s, j->tag, j->rc, folder_verbs[j->op], j->err);
		j->err = NULL;
		return;
	}
	if (j->op == F_RENAME && s->state == IMAP_ST_SELECTED)
		imap_report_changes(s); /* RENAME INBOX empties it */
	imap_tagged(s, j->tag, "OK", "%s completed", folder_verbs[j->op]);
}

static void folder_release(void *arg)
{
	struct folder_job *j = arg;

	free(j->hostname);
	free(j->err);
	free(j);
}

static void folder_cmd(struct imap_session *s, const struct imap_cmd *cmd, enum folder_op op)
{
	struct folder_job *j = sp_xcalloc(1, sizeof(*j));
	size_t len;

	tag_of(cmd, j->tag);
	j->op = op;
	if (cmd->n_args != (op == F_RENAME ? 2u : 1u) ||
	    imap_mailbox_arg(imap_cmd_arg(cmd, 0), j->name, sizeof(j->name)) < 0 ||
	    (op == F_RENAME && imap_mailbox_arg(imap_cmd_arg(cmd, 1), j->to, sizeof(j->to)) < 0) ||
	    (op != F_CREATE && strlen(j->name) > STORE_MAILBOX_NAME_MAX)) {
		imap_tagged(s, j->tag, "BAD", "%s", op == F_RENAME ? "RENAME from to"
						    : op == F_CREATE ? "CREATE mailbox" : "DELETE mailbox");
		folder_release(j);
		return;
	}
	/* RFC 3501 6.3.3: a trailing delimiter says "a parent of names to come" */
	len = strlen(j->name);
	if (op == F_CREATE && len > 1 && j->name[len - 1] == '.')
		j->name[len - 1] = '\0';
	if (op != F_CREATE && s->mb != NULL && strcmp(store_mailbox_name(s->mb), j->name) == 0 &&
	    (op == F_DELETE || strcmp(j->name, "INBOX") != 0)) {
		imap_tagged(s, j->tag, "NO", "[INUSE] Mailbox is selected");
		folder_release(j);
		return;
	}
	j->hostname = sp_xstrdup(s->env->hostname);
	imap_run_job(s, j->tag, folder_work, folder_finish, folder_release, j);
}

void imap_cmd_create(struct imap_session *s, const struct imap_cmd *cmd)
{
	folder_cmd(s, cmd, F_CREATE);
}

void imap_cmd_delete(struct imap_session *s, const struct imap_cmd *cmd)
{
	folder_cmd(s, cmd, F_DELETE);
}

void imap_cmd_rename(struct imap_session *s, const struct imap_cmd *cmd)
{
	folder_cmd(s, cmd, F_RENAME);
}

void imap_cmd_subscribe(struct imap_session *s, const struct imap_cmd *cmd, bool subscribe)
{
	char tag[IMAP_TAG_MAX + 1], name[STORE_MAILBOX_NAME_MAX + 1], *err = NULL;
	enum store_mb_result rc;

	tag_of(cmd, tag);
	if (cmd->n_args != 1 || imap_mailbox_arg(imap_cmd_arg(cmd, 0), name, sizeof(name)) < 0) {
		imap_tagged(s, tag, "BAD", "%s mailbox", subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
		return;
	}
	rc = store_subscriptions_set(s->maildir, name, subscribe, &err);
	if (rc != STORE_MB_OK) {
		imap_store_error(s, tag, rc, subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", err);
		return;
	}
	imap_tagged(s, tag, "OK", "%s completed", subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
}

/* RFC 3501 6.3.8: '*' matches anything, '%' anything but the delimiter.
 * Dynamic programming: linear in |name| * |pattern|, no backtracking blowup. */
static bool list_match(const char *pat, const char *name)
{
	size_t pl = strlen(pat), nl = strlen(name);
	bool *prev = sp_xcalloc(nl + 1, sizeof(bool)), *cur = sp_xcalloc(nl + 1, sizeof(bool));
	bool ok;

	prev[0] = true;
	for (size_t i = 1; i <= pl; i++) {
		char c = pat[i - 1];

		cur[0] = prev[0] && (c == '*' || c == '%');
		for (size_t j = 1; j <= nl; j++) {
			if (c == '*')
				cur[j] = prev[j] || cur[j - 1];
			else if (c == '%')
				cur[j] = prev[j] || (cur[j - 1] && name[j - 1] != '.');
			else
				cur[j] = prev[j - 1] && c == name[j - 1];
		}
		{
			bool *t = prev;

			prev = cur;
			cur = t;
		}
	}
	ok = prev[nl];
	free(prev);
	free(cur);
	return ok;
}

/* "inbox" / "Inbox.x" patterns: INBOX is case-insensitive (RFC 3501 5.1) */
static void canon_inbox(char *s)
{
	if (strncasecmp(s, "INBOX", 5) == 0 && (s[5] == '\0' || s[5] == '.' || s[5] == '*' ||
						s[5] == '%'))
		memcpy(s, "INBOX", 5);
}

struct lentry {
	char *name;
	bool noselect, children;
};

static int cmp_lentry(const void *a, const void *b)
{
	return strcmp(((const struct lentry *)a)->name, ((const struct lentry *)b)->name);
}

void imap_cmd_list(struct imap_session *s, const struct imap_cmd *cmd, bool lsub)
{
	char tag[IMAP_TAG_MAX + 1], ref[STORE_MAILBOX_NAME_MAX + 1], mpat[STORE_MAILBOX_NAME_MAX + 1];
	char pat[2 * STORE_MAILBOX_NAME_MAX + 2], *err = NULL;
	const char *verb = lsub ? "LSUB" : "LIST";
	char **names, **subs = NULL;
	size_t n, n_subs = 0, n_ent = 0;
	struct lentry *ent;
	enum store_mb_result rc;

	tag_of(cmd, tag);
	if (cmd->n_args != 2 || imap_arg_string(imap_cmd_arg(cmd, 0), ref, sizeof(ref)) < 0 ||
	    imap_arg_string(imap_cmd_arg(cmd, 1), mpat, sizeof(mpat)) < 0) {
		imap_tagged(s, tag, "BAD", "%s reference mailbox", verb);
		return;
	}
	if (mpat[0] == '\0') {
		/* RFC 3501 6.3.8: the delimiter and the root */
		if (!lsub)
			imap_out(s, "* LIST (\\Noselect) \".\" \"\"\r\n", sizeof("* LIST (\\Noselect) \".\" \"\"\r\n") - 1);
		imap_tagged(s, tag, "OK", "%s completed", verb);
		return;
	}
	snprintf(pat, sizeof(pat), "%s%s", ref, mpat);
	canon_inbox(pat);
	rc = store_folder_list(s->maildir, &names, &n, &err);
	if (rc != STORE_MB_OK) {
		imap_store_error(s, tag, rc, verb, err);
		return;
	}
	if (lsub && store_subscriptions_read(s->maildir, &subs, &n_subs, &err) != STORE_MB_OK) {
		store_names_free(names, n);
		imap_store_error(s, tag, STORE_MB_IOERR, verb, err);
		return;
	}
	/* the mailboxes plus their implied parents (\Noselect) */
	ent = sp_xcalloc(n * 8 + 1, sizeof(*ent));
	for (size_t i = 0; i < n; i++) {
		char *copy = sp_xstrdup(names[i]), *dot;

		ent[n_ent++] = (struct lentry){sp_xstrdup(names[i]), false, false};
		while ((dot = strrchr(copy, '.')) != NULL && n_ent < n * 8) {
			bool have = false;

			*dot = '\0';
			for (size_t k = 0; k < n_ent && !have; k++)
				have = strcmp(ent[k].name, copy) == 0;
			for (size_t k = 0; k < n && !have; k++)
				have = strcmp(names[k], copy) == 0;
			if (!have)
				ent[n_ent++] = (struct lentry){sp_xstrdup(copy), true, false};
		}
		free(copy);
	}
	qsort(ent + 1, n_ent > 0 ? n_ent - 1 : 0, sizeof(*ent), cmp_lentry);
	for (size_t i = 0; i < n_ent; i++) {
		size_t len = strlen(ent[i].name);

		for (size_t k = 0; k < n_ent && !ent[i].children; k++)
			ent[i].children = strncmp(ent[k].name, ent[i].name, len) == 0 &&
					  ent[k].name[len] == '.';
	}
	for (size_t i = 0; i < n_ent; i++) {
		bool subscribed = false;

		if (!list_match(pat, ent[i].name))
			continue;
		if (lsub) {
			for (size_t k = 0; k < n_subs && !subscribed; k++)
				subscribed = strcmp(subs[k], ent[i].name) == 0;
			if (!subscribed)
				continue;
		}
		imap_outf(s, "* %s (%s%s) \".\" ", verb, ent[i].noselect ? "\\Noselect " : "",
			  ent[i].children ? "\\HasChildren" : "\\HasNoChildren");
		imap_out_string(s, ent[i].name, strlen(ent[i].name));
		imap_out(s, "\r\n", sizeof("\r\n") - 1);
	}
	for (size_t i = 0; i < n_ent; i++)
		free(ent[i].name);
	free(ent);
	store_names_free(names, n);
	store_names_free(subs, n_subs);
	imap_tagged(s, tag, "OK", "%s completed", verb);
}

void imap_cmd_status(struct imap_session *s, const struct imap_cmd *cmd)
{
	char tag[IMAP_TAG_MAX + 1], name[STORE_MAILBOX_NAME_MAX + 1], *err = NULL;
	const struct imap_arg *items = imap_cmd_arg(cmd, 1), *it;
	struct store_status_info st;
	enum store_mb_result rc;
	bool first = true;

	tag_of(cmd, tag);
	if (cmd->n_args != 2 || imap_mailbox_arg(imap_cmd_arg(cmd, 0), name, sizeof(name)) < 0 ||
	    items->type != IMAP_ARG_LIST || imap_arg_child(cmd, items) == NULL) {
		imap_tagged(s, tag, "BAD", "STATUS mailbox (items)");
		return;
	}
	for (it = imap_arg_child(cmd, items); it != NULL; it = imap_arg_next(cmd, it))
		if (!imap_arg_is(it, "MESSAGES") && !imap_arg_is(it, "RECENT") &&
		    !imap_arg_is(it, "UIDNEXT") && !imap_arg_is(it, "UIDVALIDITY") &&
		    !imap_arg_is(it, "UNSEEN")) {
			imap_tagged(s, tag, "BAD", "Unknown STATUS item");
			return;
		}
	rc = store_mailbox_status(s->maildir, name, &st, &err);
	if (rc != STORE_MB_OK) {
		imap_store_error(s, tag, rc, "STATUS", err);
		return;
	}
	imap_out(s, "* STATUS ", sizeof("* STATUS ") - 1);
	imap_out_string(s, name, strlen(name));
	imap_out(s, " (", sizeof(" (") - 1);
	for (it = imap_arg_child(cmd, items); it != NULL; it = imap_arg_next(cmd, it)) {
		uint32_t v = imap_arg_is(it, "MESSAGES")      ? st.messages
			     : imap_arg_is(it, "RECENT")      ? st.recent
			     : imap_arg_is(it, "UIDNEXT")     ? st.uidnext
			     : imap_arg_is(it, "UIDVALIDITY") ? st.uidvalidity
							      : st.unseen;

		imap_outf(s, "%s%.*s %u", first ? "" : " ", (int)it->len, it->s, v);
		first = false;
	}
	imap_out(s, ")\r\n", sizeof(")\r\n") - 1);
	imap_tagged(s, tag, "OK", "STATUS completed");
}

/* APPEND (RFC 3501 6.3.11): the message is written, fsynced and renamed
 * on the pool, straight from the input buffer (kept until the job ends). */
struct append_job {
	char tag[IMAP_TAG_MAX + 1];
	char name[STORE_MAILBOX_NAME_MAX + 1];
	char *hostname;            /* a copy: env may be gone when the job runs */
	unsigned flags;
	struct imap_keywords kw;
	time_t date;
	struct iovec iov;          /* in s->in */
	uint32_t validity, uid;
	enum store_mb_result rc;
	char *err;
};

static void append_work(struct imap_session *s, void *arg)
{
	struct append_job *j = arg;
	const char *names[STORE_KEYWORDS_MAX];

	for (size_t i = 0; i < j->kw.n; i++)
		names[i] = j->kw.name[i];
	j->rc = store_mailbox_append_kw(s->maildir, j->name, &j->iov, 1, j->flags, names, j->kw.n,
					j->date, j->hostname, s->quota, &j->validity, &j->uid,
					&j->err);
}

static void append_finish(struct imap_session *s, void *arg)
{
	struct append_job *j = arg;

	if (j->rc != STORE_MB_OK) {
		imap_store_error(s, j->tag, j->rc, "APPEND", j->err);
		j->err = NULL;
		return;
	}
	if (s->state == IMAP_ST_SELECTED && strcmp(store_mailbox_name(s->mb), j->name) == 0)
		imap_report_changes(s);
	/* RFC 4315 3: APPENDUID */
	imap_tagged(s, j->tag, "OK", "[APPENDUID %u %u] APPEND completed", j->validity, j->uid);
}

static void append_release(void *arg)
{
	struct append_job *j = arg;

	free(j->hostname);
	free(j->err);
	free(j);
}

void imap_cmd_append(struct imap_session *s, const struct imap_cmd *cmd)
{
	char tag[IMAP_TAG_MAX + 1];
	const struct imap_arg *a, *msg;
	struct append_job *j;
	int rc;

	tag_of(cmd, tag);
	j = sp_xcalloc(1, sizeof(*j));
	snprintf(j->tag, sizeof(j->tag), "%s", tag);
	if (cmd->n_args < 2 || cmd->n_args > 4 ||
	    imap_mailbox_arg(imap_cmd_arg(cmd, 0), j->name, sizeof(j->name)) < 0) {
		append_release(j);
		imap_tagged(s, tag, "BAD", "APPEND mailbox [(flags)] [date-time] message");
		return;
	}
	a = imap_cmd_arg(cmd, 1);
	if (a->type == IMAP_ARG_LIST) {
		rc = imap_parse_flags(cmd, a, &j->flags, &j->kw);
		if (rc < 0) {
			append_release(j);
			if (rc == -2)
				imap_tagged(s, tag, "NO", "[LIMIT] APPEND: at most %d keywords",
					    STORE_KEYWORDS_MAX);
			else
				imap_tagged(s, tag, "BAD", "Bad flag list");
			return;
		}
		a = imap_arg_next(cmd, a);
	}
	if (a != NULL && a->type == IMAP_ARG_STRING && imap_arg_next(cmd, a) != NULL) {
		if (imap_parse_datetime(a->s, a->len, &j->date) < 0) {
			append_release(j);
			imap_tagged(s, tag, "BAD", "Bad date-time");
			return;
		}
		a = imap_arg_next(cmd, a);
	}
	msg = a;
	if (msg == NULL || imap_arg_next(cmd, msg) != NULL ||
	    (msg->type != IMAP_ARG_LITERAL && msg->type != IMAP_ARG_STRING)) {
		append_release(j);
		imap_tagged(s, tag, "BAD", "APPEND mailbox [(flags)] [date-time] message");
		return;
	}
	if (msg->len == 0 || msg->len > s->env->max_message_size) {
		append_release(j);
		if (msg->len == 0)
			imap_tagged(s, tag, "NO", "Empty message");
		else
			imap_tagged(s, tag, "NO", "[TOOBIG] Message too big");
		return;
	}
	j->iov.iov_base = (void *)msg->s;
	j->iov.iov_len = msg->len;
	j->hostname = sp_xstrdup(s->env->hostname);
	imap_run_job(s, tag, append_work, append_finish, append_release, j);
}

void imap_cmd_quota(struct imap_session *s, const struct imap_cmd *cmd, bool root)
{
	char tag[IMAP_TAG_MAX + 1], name[STORE_MAILBOX_NAME_MAX + 1], *err = NULL;
	uint64_t used = 0;

	tag_of(cmd, tag);
	if (cmd->n_args != 1 || imap_mailbox_arg(imap_cmd_arg(cmd, 0), name, sizeof(name)) < 0) {
		imap_tagged(s, tag, "BAD", "%s argument", root ? "GETQUOTAROOT mailbox" : "GETQUOTA root");
		return;
	}
	if (!root && (name[0] != '\0' || s->quota == 0)) {
		imap_tagged(s, tag, "NO", "No such quota root");
		return;
	}
	if (store_usage_total(s->maildir, &used, &err) < 0) {
		imap_store_error(s, tag, STORE_MB_IOERR, "GETQUOTA", err);
		return;
	}
	if (root) {
		/* one root for all of the user's mailboxes: "" (RFC 2087 4.3) */
		imap_out(s, "* QUOTAROOT ", sizeof("* QUOTAROOT ") - 1);
		imap_out_string(s, name, strlen(name));
		imap_out(s, s->quota > 0 ? " \"\"\r\n" : "\r\n", s->quota > 0 ? 5 : 2);
	}
	if (s->quota > 0)
		imap_outf(s, "* QUOTA \"\" (STORAGE %llu %llu)\r\n",
			  (unsigned long long)((used + 1023) / 1024),
			  (unsigned long long)(s->quota / 1024));
	imap_tagged(s, tag, "OK", "%s completed", root ? "GETQUOTAROOT" : "GETQUOTA");
}
