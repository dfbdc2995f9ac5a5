/* The outbound spool on disk: the envelope at the head of each spool file
 * (written by smtp_session.c, format in mailcore.h), the per-message state
 * file beside it (state/<name>, replaced atomically and durably), removal
 * once a message is done, and the retry backoff. Parsers here are pure. */
#include "common/fileio.h"
#include "mailcore/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"

#define STATE_FILE_MAX (QUEUE_RCPTS_MAX * (QUEUE_ERROR_MAX + 64) + 4096)

/* ---------------------------------------------------------------- envelope */

void queue_envelope_clear(struct queue_envelope *env)
{
	for (size_t i = 0; i < env->n_rcpts; i++) {
		free(env->rcpts[i]);
		free(env->mailhosts != NULL ? env->mailhosts[i] : NULL);
	}
	free(env->rcpts);
	free(env->mailhosts);
	free(env->sender);
	memset(env, 0, sizeof(*env));
}

/* "<addr>" with nothing odd inside: returns a copy without the brackets */
static char *angle_addr(const char *v, size_t n)
{
	if (n < 2 || v[0] != '<' || v[n - 1] != '>' || n - 2 > 256)
		return NULL;
	for (size_t i = 1; i + 1 < n; i++)
		if ((unsigned char)v[i] <= 32 || (unsigned char)v[i] >= 127 || v[i] == '<' ||
		    v[i] == '>')
			return NULL;
	return sp_xstrndup(v + 1, n - 2);
}

bool queue_mailhost_valid(const char *host, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = host[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* "<addr>" or "<addr> mailhost=HOST" (queue.h): the address, and the
 * host (lower case) or NULL. -1 when malformed. */
static int rcpt_value(const char *v, size_t vl, char **addr_r, char **host_r)
{
	static const char key[] = " mailhost=";
	const char *end = memchr(v, '>', vl);
	size_t al = end != NULL ? (size_t)(end - v) + 1 : vl;

	*host_r = NULL;
	if (al < vl) {
		const char *h = v + al + sizeof(key) - 1;
		size_t hl = vl - al - (sizeof(key) - 1);

		if (vl - al < sizeof(key) || memcmp(v + al, key, sizeof(key) - 1) != 0 ||
		    !queue_mailhost_valid(h, hl))
			return -1;
		*host_r = sp_xstrndup(h, hl);
		for (char *p = *host_r; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	*addr_r = angle_addr(v, al);
	if (*addr_r == NULL || (*addr_r)[0] == '\0') {
		free(*addr_r);
		free(*host_r);
		*host_r = NULL;
		return -1;
	}
	return 0;
}

int queue_envelope_parse(const char *buf, size_t len, struct queue_envelope *env,
			 const char **error_r)
{
	size_t pos = 0;
	bool magic = false, have_from = false;

	memset(env, 0, sizeof(*env));
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n;
		const char *line = buf + pos, *colon;

		if (nl == NULL) {
			queue_envelope_clear(env);
			if (len >= QUEUE_ENVELOPE_MAX) {
				*error_r = "envelope too long";
				return -1;
			}
			return 1;
		}
		n = (size_t)(nl - line);
		pos += n + 1;
		if (n == 0 || line[n - 1] != '\r') {
			*error_r = "envelope line does not end in CRLF";
			goto bad;
		}
		n--;
		if (n == 0)
			break; /* the blank line */
		colon = memchr(line, ':', n);
		if (colon == NULL || colon + 1 >= line + n || colon[1] != ' ') {
			*error_r = "malformed envelope line";
			goto bad;
		}
		{
			size_t kl = (size_t)(colon - line);
			const char *v = colon + 2;
			size_t vl = n - kl - 2;

			if (kl == 16 && memcmp(line, "X-Sealpost-Queue", 16) == 0) {
				if (vl != 1 || v[0] != '1' || magic) {
					*error_r = "unknown spool version";
					goto bad;
				}
				magic = true;
			} else if (!magic) {
				*error_r = "not a spool file";
				goto bad;
			} else if (kl == 15 && memcmp(line, "X-Sealpost-From", 15) == 0 && !have_from) {
				if ((env->sender = angle_addr(v, vl)) == NULL) {
					*error_r = "bad sender";
					goto bad;
				}
				have_from = true;
			} else if (kl == 13 && memcmp(line, "X-Sealpost-To", 13) == 0) {
				char *a = NULL, *host = NULL;

				if (env->n_rcpts >= QUEUE_RCPTS_MAX || rcpt_value(v, vl, &a, &host) < 0) {
					*error_r = "bad or too many recipients";
					goto bad;
				}
				env->rcpts = sp_xrealloc(env->rcpts, env->n_rcpts + 1, sizeof(*env->rcpts));
				env->mailhosts = sp_xrealloc(env->mailhosts, env->n_rcpts + 1,
							     sizeof(*env->mailhosts));
				env->rcpts[env->n_rcpts] = a;
				env->mailhosts[env->n_rcpts++] = host;
			} else {
				*error_r = "unknown envelope line";
				goto bad;
			}
		}
	}
	if (!magic || !have_from || env->n_rcpts == 0) {
		*error_r = "incomplete envelope";
		goto bad;
	}
	env->body_offset = pos;
	return 0;
bad:
	queue_envelope_clear(env);
	return -1;
}

int queue_envelope_read(int fd, struct queue_envelope *env, char **error_r)
{
	size_t cap = 8192, len = 0;
	char *buf = sp_xmalloc(cap);
	const char *why = NULL;
	int rc = -1;

	for (;;) {
		ssize_t n;
		int prc;

		if (len == cap) {
			if (cap >= QUEUE_ENVELOPE_MAX) {
				*error_r = sp_xasprintf("envelope too long");
				break;
			}
			cap *= 2;
			buf = sp_xrealloc(buf, cap, 1);
		}
		n = pread(fd, buf + len, cap - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = sp_xasprintf("read: %s", strerror(errno));
			break;
		}
		len += (size_t)n;
		prc = queue_envelope_parse(buf, len, env, &why);
		if (prc == 0) {
			rc = 0;
			break;
		}
		if (prc < 0 || n == 0) {
			*error_r = sp_xasprintf("%s", prc < 0 ? why : "truncated envelope");
			break;
		}
	}
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- state */

void queue_state_clear(struct queue_state *st)
{
	free(st->rcpts);
	memset(st, 0, sizeof(*st));
}

static void copy_text(char *dst, size_t cap, const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[o++] = (char)(c >= 32 && c < 127 ? c : ' ');
	}
	dst[o] = '\0';
}

int queue_state_parse(const char *buf, size_t len, size_t n_rcpts, struct queue_state *st,
		      const char **error_r)
{
	size_t pos = 0;
	bool header = false;

	memset(st, 0, sizeof(*st));
	st->n_rcpts = n_rcpts;
	st->rcpts = sp_xcalloc(n_rcpts == 0 ? 1 : n_rcpts, sizeof(*st->rcpts));
	for (size_t i = 0; i < n_rcpts; i++)
		st->rcpts[i].status = QUEUE_RCPT_PENDING;
	while (pos < len) {
		const char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;
		char word[32];
		size_t wl = 0;
		const char *rest;
		size_t rl;

		pos += n + (nl != NULL ? 1 : 0);
		while (wl < n && wl + 1 < sizeof(word) && line[wl] != ' ') {
			word[wl] = line[wl];
			wl++;
		}
		word[wl] = '\0';
		rest = wl < n ? line + wl + 1 : line + n;
		rl = wl < n ? n - wl - 1 : 0;
		if (!header) {
			if (strcmp(word, "sealpost-queue-state") != 0 || rl != 1 || rest[0] != '1') {
				*error_r = "not a state file";
				goto bad;
			}
			header = true;
			continue;
		}
		if (strcmp(word, "first") == 0 || strcmp(word, "next") == 0 ||
		    strcmp(word, "attempts") == 0) {
			char num[24];
			char *end;
			long long v;

			if (rl == 0 || rl >= sizeof(num)) {
				*error_r = "bad number";
				goto bad;
			}
			memcpy(num, rest, rl);
			num[rl] = '\0';
			v = strtoll(num, &end, 10);
			if (*end != '\0' || v < 0) {
				*error_r = "bad number";
				goto bad;
			}
			if (word[0] == 'f')
				st->first_seen = (time_t)v;
			else if (word[0] == 'n')
				st->next_attempt = (time_t)v;
			else
				st->attempts = v > 1000000 ? 1000000 : (unsigned)v;
		} else if (strcmp(word, "error") == 0) {
			copy_text(st->last_error, sizeof(st->last_error), rest, rl);
		} else if (strcmp(word, "rcpt") == 0) {
			/* rcpt <index> <P|D|F|B> <code> <text> */
			char head[64];
			unsigned long idx;
			int code, off = 0;
			char status;

			copy_text(head, sizeof(head), rest, rl < sizeof(head) - 1 ? rl : sizeof(head) - 1);
			if (sscanf(head, "%lu %c %d %n", &idx, &status, &code, &off) < 3 ||
			    idx >= n_rcpts || (status != 'P' && status != 'D' && status != 'F' &&
					       status != 'B') || code < 0 || code > 999) {
				*error_r = "bad rcpt record";
				goto bad;
			}
			st->rcpts[idx].status = (enum queue_rcpt_status)status;
			st->rcpts[idx].code = code;
			if ((size_t)off < rl)
				copy_text(st->rcpts[idx].error, sizeof(st->rcpts[idx].error), rest + off,
					  rl - (size_t)off);
		} else {
			*error_r = "unknown state record";
			goto bad;
		}
	}
	if (!header) {
		*error_r = "empty state file";
		goto bad;
	}
	return 0;
bad:
	queue_state_clear(st);
	return -1;
}

char *queue_state_format(const struct queue_state *st, size_t *len_r)
{
	size_t cap = 256 + QUEUE_ERROR_MAX + st->n_rcpts * (QUEUE_ERROR_MAX + 48);
	char *buf = sp_xmalloc(cap);
	size_t pos = 0;

	pos += (size_t)snprintf(buf + pos, cap - pos,
				"sealpost-queue-state 1\nfirst %lld\nnext %lld\nattempts %u\nerror %s\n",
				(long long)st->first_seen, (long long)st->next_attempt, st->attempts,
				st->last_error);
	for (size_t i = 0; i < st->n_rcpts && pos < cap; i++)
		pos += (size_t)snprintf(buf + pos, cap - pos, "rcpt %zu %c %d %s\n", i,
					(char)st->rcpts[i].status, st->rcpts[i].code,
					st->rcpts[i].error);
	if (pos >= cap)
		pos = cap - 1;
	*len_r = pos;
	return buf;
}

int queue_state_load(const char *queue_dir, const char *name, size_t n_rcpts,
		     struct queue_state *st, char **error_r)
{
	char path[PATH_MAX];
	char *buf;
	ssize_t n;
	size_t len = 0;
	const char *why = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/state/%s", queue_dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	buf = sp_xmalloc(STATE_FILE_MAX);
	while (len < STATE_FILE_MAX && (n = read(fd, buf + len, STATE_FILE_MAX - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
			close(fd);
			free(buf);
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	if (queue_state_parse(buf, len, n_rcpts, st, &why) < 0) {
		*error_r = sp_xasprintf("%s: %s", path, why);
		free(buf);
		return -1;
	}
	free(buf);
	return 0;
}

int queue_state_save(const char *queue_dir, const char *name, const struct queue_state *st,
		     char **error_r)
{
	char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
	size_t len, off = 0;
	char *text;
	int fd;

	snprintf(dir, sizeof(dir), "%s/state", queue_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = sp_xasprintf("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp) ||
	    snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
		*error_r = sp_xasprintf("%s/%s: name too long", dir, name);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = sp_xasprintf("%s: %s", tmp, strerror(errno));
		return -1;
	}
	text = queue_state_format(st, &len);
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		off += (size_t)w;
	}
	free(text);
	if (off < len || fsync(fd) < 0) {
		*error_r = sp_xasprintf("%s: write: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0 || sp_fsync_dir(dir) < 0) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int queue_spool_remove(const char *queue_dir, const char *name, char **error_r)
{
	char path[PATH_MAX], dir[PATH_MAX];

	snprintf(path, sizeof(path), "%s/new/%s", queue_dir, name);
	snprintf(dir, sizeof(dir), "%s/new", queue_dir);
	if ((unlink(path) < 0 && errno != ENOENT) || sp_fsync_dir(dir) < 0) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	/* a state file without its message is only clutter: removed, and swept
	 * on the next start if this one is lost */
	snprintf(path, sizeof(path), "%s/state/%s", queue_dir, name);
	if (unlink(path) < 0 && errno != ENOENT) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

long queue_backoff_ms(unsigned attempts, long retry_min_ms, long retry_max_ms)
{
	long v = retry_min_ms;

	for (unsigned i = 1; i < attempts && v < retry_max_ms; i++)
		v = v > LONG_MAX / 2 ? LONG_MAX : v * 2;
	return v > retry_max_ms ? retry_max_ms : v;
}
