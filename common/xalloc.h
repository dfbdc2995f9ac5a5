/* Allocation that never returns NULL: out of memory or a size overflow aborts
 * the process with a log line (Postfix's mymalloc habit). Used for internal
 * state; sizes that come from the network are bounded before they get here. */
#ifndef SP_XALLOC_H
#define SP_XALLOC_H

#include <stddef.h>

void *sp_xmalloc(size_t size);
void *sp_xcalloc(size_t nmemb, size_t size);
void *sp_xrealloc(void *ptr, size_t nmemb, size_t size);
char *sp_xstrdup(const char *s);
char *sp_xstrndup(const char *s, size_t n);
/* printf into a fresh string; caller frees. */
char *sp_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wipes then frees; for buffers that held secrets. sp_free_secret(NULL, n) is a no-op. */
void sp_free_secret(void *ptr, size_t len);

#endif
