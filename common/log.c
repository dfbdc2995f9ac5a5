/* The logger: formats one event per line, escapes what could forge a line,
 * scrubs registered secrets, and writes the line with a single write(2) so
 * lines from several processes sharing a file do not interleave. */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#define LOG_LINE_MAX 4096
#define LOG_MAX_SECRETS 64

struct log_secret {
	char *data;
	size_t len;
};

/* One logger per process: the handful of globals this module needs. */
static int log_fd = STDERR_FILENO;
static enum sp_log_level log_min = SP_LOG_INFO;
static char log_prog[32] = "sealpost";
static struct log_secret log_secrets[LOG_MAX_SECRETS];
static size_t log_nsecrets;

static const char *const level_names[] = {
	"debug", "info", "notice", "warn", "err", "crit",
};

int sp_log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

int sp_log_open(const char *progname, const char *path, enum sp_log_level min_level,
		char **error_r)
{
	int fd = STDERR_FILENO;

	if (path != NULL && strcmp(path, "-") != 0 && strcmp(path, "stderr") != 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (fd < 0) {
			if (error_r != NULL) {
				size_t n = strlen(path) + 64 + strlen(strerror(errno));
				*error_r = malloc(n);
				if (*error_r != NULL)
					snprintf(*error_r, n, "cannot open log file %s: %s", path,
						 strerror(errno));
			}
			return -1;
		}
	}
	if (log_fd != STDERR_FILENO && log_fd != fd)
		close(log_fd);
	log_fd = fd;
	log_min = min_level;
	if (progname != NULL)
		snprintf(log_prog, sizeof(log_prog), "%s", progname);
	return 0;
}

int sp_log_fd(void)
{
	return log_fd;
}

void sp_log_close(void)
{
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = STDERR_FILENO;
}

void sp_log_set_level(enum sp_log_level min_level)
{
	log_min = min_level;
}

char *sp_log_escape(char *buf, size_t bufsize, const char *s, size_t len)
{
	size_t o = 0;

	if (bufsize == 0)
		return buf;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= bufsize)
				break;
			buf[o++] = (char)c;
		} else {
			if (o + 4 >= bufsize)
				break;
			snprintf(buf + o, 5, "\\x%02x", c);
			o += 4;
		}
	}
	buf[o] = '\0';
	return buf;
}

void sp_log_add_secret(const char *secret, size_t len)
{
	/* Short secrets would scrub unrelated text and reveal little anyway. */
	if (secret == NULL || len < 4 || log_nsecrets >= LOG_MAX_SECRETS)
		return;
	for (size_t i = 0; i < log_nsecrets; i++)
		if (log_secrets[i].len == len && memcmp(log_secrets[i].data, secret, len) == 0)
			return;
	log_secrets[log_nsecrets].data = malloc(len);
	if (log_secrets[log_nsecrets].data == NULL)
		return;
	memcpy(log_secrets[log_nsecrets].data, secret, len);
	log_secrets[log_nsecrets].len = len;
	log_nsecrets++;
}

void sp_log_forget_secrets(void)
{
	for (size_t i = 0; i < log_nsecrets; i++) {
		OPENSSL_cleanse(log_secrets[i].data, log_secrets[i].len);
		free(log_secrets[i].data);
		log_secrets[i].data = NULL;
		log_secrets[i].len = 0;
	}
	log_nsecrets = 0;
}

/* Replaces every occurrence of a registered secret in line (len bytes, room
 * for cap) by "<redacted>"; returns the new length. */
static size_t log_scrub(char *line, size_t len, size_t cap)
{
	static const char mark[] = "<redacted>";
	const size_t mlen = sizeof(mark) - 1;

	for (size_t s = 0; s < log_nsecrets; s++) {
		const struct log_secret *sec = &log_secrets[s];
		char *p = line;

		while ((p = memmem(p, len - (size_t)(p - line), sec->data, sec->len)) != NULL) {
			size_t off = (size_t)(p - line);
			size_t tail = len - off - sec->len;

			if (len - sec->len + mlen >= cap) {
				/* No room to expand: blank the secret in place. */
				memset(p, '*', sec->len);
				p += sec->len;
				continue;
			}
			memmove(p + mlen, p + sec->len, tail);
			memcpy(p, mark, mlen);
			len = len - sec->len + mlen;
			p += mlen;
		}
	}
	return len;
}

void sp_log(enum sp_log_level level, const char *event, const char *fmt, ...)
{
	char raw[LOG_LINE_MAX];
	char line[LOG_LINE_MAX + 256];
	char esc[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;
	int saved_errno = errno;
	int r;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	r = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (r < 0)
		raw[0] = '\0';
	/* Scrub before escaping so a secret cannot hide behind an escape. */
	n = strnlen(raw, sizeof(raw) - 1);
	n = log_scrub(raw, n, sizeof(raw));
	sp_log_escape(esc, sizeof(esc), raw, n);

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	r = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s event=%s%s%s\n",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, log_prog, (long)getpid(),
		     level_names[level], event, esc[0] != '\0' ? " " : "", esc);
	if (r < 0)
		return;
	n = (size_t)r < sizeof(line) ? (size_t)r : sizeof(line) - 1;
	if (n > 0 && line[n - 1] != '\n')
		line[n - 1] = '\n';
	n = log_scrub(line, n, sizeof(line));
	/* One write per line; a short write to a log is not worth a retry loop
	 * that could stall the event loop, but EINTR is. */
	while (write(log_fd, line, n) < 0 && errno == EINTR)
		;
	errno = saved_errno;
}
