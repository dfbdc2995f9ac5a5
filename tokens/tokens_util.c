/* tokens CLI: how errors reach the administrator: one "tokens: ..." line on
 * stderr per failure, and the exit code that classifies it (tokens.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "common/xalloc.h"
#include "tokens/tokens.h"

int tok_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("tokens: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

void tok_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("tokens: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int tok_fail_err(int code, char *err, const char *what)
{
	if (what != NULL)
		tok_fail(code, "%s: %s", what, err != NULL ? err : "failed");
	else
		tok_fail(code, "%s", err != NULL ? err : "failed");
	free(err);
	return code;
}

char *tok_ssl_error(void)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256];

	if (e == 0)
		return sp_xstrdup("unknown OpenSSL error");
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return sp_xstrdup(buf);
}

int tok_p11_code(const char *err)
{
	if (err == NULL)
		return TOK_ETOKEN;
	if (strstr(err, "CKR_PIN_") != NULL || strstr(err, "PIN is locked") != NULL ||
	    strstr(err, "no PIN for it") != NULL)
		return TOK_EPASSWORD;
	if (strncmp(err, "no token ", 9) == 0 || strstr(err, "no private key") != NULL ||
	    strstr(err, "not found") != NULL)
		return TOK_ENOTFOUND;
	return TOK_ETOKEN;
}
