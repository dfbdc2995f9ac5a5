/* Allocation wrappers that abort on out-of-memory or size overflow, so the
 * rest of the code never handles a NULL from malloc for internal state. */
#include "common/xalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "common/log.h"

static void sp_xalloc_die(size_t size)
{
	sp_log(SP_LOG_CRIT, "out_of_memory", "size=%zu", size);
	abort();
}

void *sp_xmalloc(size_t size)
{
	void *p = malloc(size == 0 ? 1 : size);

	if (p == NULL)
		sp_xalloc_die(size);
	return p;
}

void *sp_xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		sp_xalloc_die(SIZE_MAX);
	p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
	if (p == NULL)
		sp_xalloc_die(nmemb * size);
	return p;
}

void *sp_xrealloc(void *ptr, size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		sp_xalloc_die(SIZE_MAX);
	p = realloc(ptr, nmemb * size == 0 ? 1 : nmemb * size);
	if (p == NULL)
		sp_xalloc_die(nmemb * size);
	return p;
}

char *sp_xstrdup(const char *s)
{
	return sp_xstrndup(s, strlen(s));
}

char *sp_xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p;

	if (len == SIZE_MAX)
		sp_xalloc_die(SIZE_MAX);
	p = sp_xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *sp_xasprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		sp_xalloc_die(0);
	p = sp_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

void sp_free_secret(void *ptr, size_t len)
{
	if (ptr == NULL)
		return;
	OPENSSL_cleanse(ptr, len);
	free(ptr);
}
