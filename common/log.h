/* Logging: one line per event, "TIME PROG[PID] LEVEL event=NAME k=v ...".
 * Goes to stderr or a file. Control characters in the formatted text are
 * escaped (no log injection from network input). Registered secrets (PINs,
 * passwords) are replaced by "<redacted>" wherever they appear in a line, as a
 * last line of defence: callers still never pass secrets to the logger. */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stddef.h>

enum sp_log_level {
	SP_LOG_DEBUG = 0,
	SP_LOG_INFO,
	SP_LOG_NOTICE,
	SP_LOG_WARN,
	SP_LOG_ERR,
	SP_LOG_CRIT,
};

/* path NULL or "-" or "stderr" = stderr. Returns 0, or -1 with *error_r set
 * (caller frees). May be called again to reopen (SIGHUP, log rotation). */
int sp_log_open(const char *progname, const char *path, enum sp_log_level min_level,
		char **error_r);
void sp_log_close(void);
/* The fd lines go to (a forking master keeps it open in its children). */
int sp_log_fd(void);
void sp_log_set_level(enum sp_log_level min_level);
/* "debug", "info", "notice", "warn", "err", "crit" -> level; -1 if unknown. */
int sp_log_level_parse(const char *name);

/* fmt carries the key=value fields, e.g.
 *   sp_log(SP_LOG_INFO, "listen", "service=%s addr=%s", svc, addr);
 * A value that may contain spaces should be quoted by the caller: k="%s". */
void sp_log(enum sp_log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Secrets to scrub from every line (copied, wiped on sp_log_forget_secrets).
 * Secrets shorter than 4 bytes are not registered (they would scrub noise). */
void sp_log_add_secret(const char *secret, size_t len);
void sp_log_forget_secrets(void);

/* Escapes control and non-ASCII bytes of s into buf as \xNN; always
 * NUL-terminates; returns buf. For quoting network strings into fields. */
char *sp_log_escape(char *buf, size_t bufsize, const char *s, size_t len);

#endif
