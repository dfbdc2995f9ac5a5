/* tokens generate-certdb: a new certificate database with its
 * sslpassword.conf (the internal token's passphrase) and a self-signed
 * Server-Cert, as the anchor's msgcert generate-certDB makes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "tokens/tokens.h"

static int mkdir_p(const char *path, mode_t mode)
{
	char *copy = sp_xstrdup(path);
	int ret = 0;

	for (char *p = copy + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(copy, mode) < 0 && errno != EEXIST) {
				ret = -1;
				break;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	free(copy);
	return ret;
}

static int write_new_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	size_t len = strlen(text), off = 0;

	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			unlink(path);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	return close(fd);
}

static char *host_name(void)
{
	char host[HOST_NAME_MAX + 1] = "localhost";
	struct addrinfo hints = {0}, *res = NULL;
	char *name;

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(host, NULL, &hints, &res) == 0 && res != NULL && res->ai_canonname != NULL)
		name = sp_xstrdup(res->ai_canonname);
	else
		name = sp_xstrdup(host);
	if (res != NULL)
		freeaddrinfo(res);
	return name;
}

static int generate_certdb(struct tokens_args *a)
{
	const char *dir = tok_db_dir(a);
	char *index = sp_xasprintf("%s/index", dir), *pwpath = tok_pwfile_path(a);
	char *pass = NULL, *err = NULL, *host = NULL;
	struct sp_pinfile *pins = NULL;
	struct sp_certdb *db = NULL;
	X509_NAME *subject = NULL;
	int rc = TOK_EFAIL;

	if (access(index, F_OK) == 0) {
		rc = tok_fail(TOK_EREFUSED, "%s already exists: a certificate database is there", index);
		goto out;
	}
	if (mkdir_p(dir, 0755) < 0) {
		rc = tok_fail(TOK_EFAIL, "%s: %s", dir, strerror(errno));
		goto out;
	}
	if (a->pwfile != NULL || access(pwpath, F_OK) == 0) {
		/* an existing password file (given or at the default place) is used as is */
		pins = tok_pins_load(a, true, &rc);
		if (pins == NULL || tok_internal_pass(pins, &rc) == NULL)
			goto out;
		pass = sp_xstrdup(sp_pinfile_get(pins, SP_CERTDB_INTERNAL_TOKEN));
	} else {
		char *line;

		pass = tok_random_secret(32);
		line = sp_xasprintf("# Sealpost PINs and passphrases: \"Token name:secret\"\n"
				    "%s:%s\n", SP_CERTDB_INTERNAL_TOKEN, pass);
		if (write_new_file(pwpath, line, 0600) < 0) {
			rc = tok_fail(TOK_EFAIL, "%s: %s", pwpath, strerror(errno));
			sp_free_secret(line, strlen(line));
			goto out;
		}
		sp_free_secret(line, strlen(line));
		printf("Wrote the internal token's passphrase to %s (mode 0600)\n", pwpath);
	}
	{
		char *tmp = sp_xasprintf("%s/.index.new", dir);

		unlink(tmp);
		if (write_new_file(tmp, "# Sealpost certificate database (see certdb/certdb.h)\n",
				   0644) < 0 || rename(tmp, index) < 0) {
			rc = tok_fail(TOK_EFAIL, "%s: %s", index, strerror(errno));
			free(tmp);
			goto out;
		}
		free(tmp);
	}
	{
		static const char *const subdirs[] = {"certs", "cas", "crls", "keys"};

		for (size_t i = 0; i < 4; i++) {
			char *sub = sp_xasprintf("%s/%s", dir, subdirs[i]);

			/* keys/ is the owner's alone; the rest the daemons read after dropping root */
			if (mkdir(sub, i == 3 ? 0700 : 0755) < 0 && errno != EEXIST) {
				rc = tok_fail(TOK_EFAIL, "%s: %s", sub, strerror(errno));
				free(sub);
				goto out;
			}
			free(sub);
		}
	}
	db = tok_db_open(a, &rc);
	if (db == NULL)
		goto out;
	if (a->given & TO_SUBJECT) {
		subject = tok_subject(a, &err);
		if (subject == NULL) {
			rc = tok_fail_err(TOK_EUSAGE, err, NULL);
			goto out;
		}
	} else {
		host = host_name();
		subject = X509_NAME_new();
		X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (unsigned char *)host,
					   -1, -1, 0);
	}
	rc = tok_add_selfsign(db, a, pass, "Server-Cert", subject);
	if (rc == TOK_OK)
		printf("Created the certificate database %s with the self-signed Server-Cert\n", dir);
out:
	X509_NAME_free(subject);
	sp_certdb_free(&db);
	sp_pinfile_free(&pins);
	tok_secret_free(&pass);
	free(host);
	free(index);
	free(pwpath);
	return rc;
}

const struct tokens_cmd tokens_cmds_certdb[] = {
	{"generate-certdb", TO_COMMON | TO_SUBJECT | TO_KEY | TO_DAYS, 0, 0,
	 "generate-certdb [-d CERTDB] [-W PASSWORD-FILE] [--key rsa2048|rsa3072|ecp256|ecp384]\n"
	 "       [--days N] [--name CN --org .. | -S DN] [--san DNS:x,IP:y]\n"
	 "Creates the certificate database CERTDB and a self-signed certificate Server-Cert\n"
	 "(CN = this host's name unless given; valid 90 days unless --days) whose key is in\n"
	 "the internal token. The internal token's passphrase is the \"Internal (Software)\n"
	 "Token\" line of -W FILE; without -W, of CERTDB/../sslpassword.conf, which is\n"
	 "created (mode 0600) with a random passphrase if it does not exist.\n",
	 generate_certdb},
	{NULL, 0, 0, 0, NULL, NULL},
};
