/* tokens CLI: secrets come from files or a no-echo prompt on /dev/tty, never
 * from argv; they live in buffers that are wiped when released. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "tokens/tokens.h"

#define SECRET_MAX 1024

void tok_secret_free(char **s)
{
	if (*s == NULL)
		return;
	sp_free_secret(*s, strlen(*s));
	*s = NULL;
}

char *tok_secret_file(const char *path, char **error_r)
{
	char buf[SECRET_MAX + 2];
	size_t len = 0;
	char *s;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = sp_xasprintf("%s: read: %s", path, strerror(errno));
			close(fd);
			OPENSSL_cleanse(buf, sizeof(buf));
			return NULL;
		}
		if (n == 0 || (len += (size_t)n) >= sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[len] = '\0';
	len = strcspn(buf, "\r\n");
	if (len > SECRET_MAX) {
		*error_r = sp_xasprintf("%s: secret longer than %d bytes", path, SECRET_MAX);
		OPENSSL_cleanse(buf, sizeof(buf));
		return NULL;
	}
	s = sp_xstrndup(buf, len);
	OPENSSL_cleanse(buf, sizeof(buf));
	sp_log_add_secret(s, strlen(s));
	return s;
}

static char *prompt_once(int fd, const char *prompt, char **error_r)
{
	struct termios old, noecho;
	char buf[SECRET_MAX + 2];
	size_t len = 0;
	bool restore = false;
	char *s = NULL;

	if (tcgetattr(fd, &old) == 0) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		noecho.c_lflag |= ICANON;
		if (tcsetattr(fd, TCSAFLUSH, &noecho) == 0)
			restore = true;
	}
	if (!restore) {
		*error_r = sp_xstrdup("cannot turn off echo on /dev/tty");
		return NULL;
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		/* the prompt is a courtesy; reading still works */
	}
	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n' || c == '\r')
			break;
		if (len < SECRET_MAX)
			buf[len++] = c;
	}
	buf[len] = '\0';
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* cosmetic */
	}
	s = sp_xstrdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return s;
}

char *tok_secret_prompt(const char *prompt, bool confirm, char **error_r)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	char *s, *again;

	if (fd < 0) {
		*error_r = sp_xasprintf("no terminal to ask for the secret (/dev/tty: %s); "
					"give it in a file", strerror(errno));
		return NULL;
	}
	s = prompt_once(fd, prompt, error_r);
	if (s != NULL && confirm) {
		again = prompt_once(fd, "Again: ", error_r);
		if (again == NULL || strcmp(again, s) != 0) {
			if (again != NULL)
				*error_r = sp_xstrdup("the two entries differ");
			tok_secret_free(&s);
		}
		tok_secret_free(&again);
	}
	close(fd);
	if (s != NULL)
		sp_log_add_secret(s, strlen(s));
	return s;
}

char *tok_random_secret(size_t nbytes)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[64];
	char *s;

	if (nbytes > sizeof(raw))
		nbytes = sizeof(raw);
	if (RAND_bytes(raw, (int)nbytes) != 1)
		abort();  /* no randomness: nothing safe to do */
	s = sp_xmalloc(nbytes + 1);
	for (size_t i = 0; i < nbytes; i++)
		s[i] = alphabet[raw[i] & 63];
	s[nbytes] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return s;
}
