/* The certificate database, read side: opens DIR/index through the pure
 * parser, looks entries up by nickname or "Token:nickname", and loads
 * certificates, chains and CRLs for tlsd and keyd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "certdb/certdb_db.h"
#include "certdb/certdb_index.h"
#include "common/xalloc.h"

#define MAX_PEM_FILE (1u << 20)

int sp_certdb_read_file(const char *path, size_t max, char **buf_r, size_t *len_r,
			char **error_r)
{
	struct stat st;
	size_t len = 0;
	char *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = sp_xasprintf("%s: fstat: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = sp_xasprintf("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((unsigned long long)st.st_size > max) {
		*error_r = sp_xasprintf("%s: larger than %zu bytes", path, max);
		close(fd);
		return -1;
	}
	buf = sp_xmalloc(max + 1);
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = sp_xasprintf("%s: read: %s", path, strerror(errno));
			sp_free_secret(buf, max + 1);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			*error_r = sp_xasprintf("%s: larger than %zu bytes", path, max);
			sp_free_secret(buf, max + 1);
			close(fd);
			return -1;
		}
	}
	close(fd);
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	return 0;
}

struct sp_certdb *sp_certdb_open(const char *dir, char **error_r)
{
	struct sp_certdb *db;
	char *path, *buf, *why;
	size_t len;

	path = sp_xasprintf("%s/index", dir);
	if (sp_certdb_read_file(path, SP_CERTDB_MAX_INDEX, &buf, &len, error_r) < 0) {
		free(path);
		return NULL;
	}
	db = sp_xcalloc(1, sizeof(*db));
	db->dir = sp_xstrdup(dir);
	if (sp_certdb_index_parse(buf, len, &db->entries, &db->count, &why) < 0) {
		/* why is "index:LINE: ..."; name the full path */
		*error_r = sp_xasprintf("%s/%s", dir, why);
		free(why);
		free(buf);
		free(path);
		free(db->dir);
		free(db);
		return NULL;
	}
	db->cap = db->count;
	free(buf);
	free(path);
	return db;
}

void sp_certdb_free(struct sp_certdb **dbp)
{
	struct sp_certdb *db = *dbp;

	if (db == NULL)
		return;
	sp_certdb_entries_free(db->entries, db->count);
	free(db->dir);
	free(db);
	*dbp = NULL;
}

const char *sp_certdb_dir(const struct sp_certdb *db)
{
	return db->dir;
}

size_t sp_certdb_count(const struct sp_certdb *db)
{
	return db->count;
}

const struct sp_certdb_entry *sp_certdb_at(const struct sp_certdb *db, size_t i)
{
	return i < db->count ? &db->entries[i] : NULL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The percent-decoded token= attribute of a pkcs11: URI (RFC 7512 2.3) into
 * buf; 0, or -1 if absent or malformed. */
static int uri_token(const char *uri, char *buf, size_t cap)
{
	const char *p = uri + strlen("pkcs11:");
	size_t n = 0;

	for (;;) {
		size_t seg = strcspn(p, ";?");

		if (seg >= 6 && strncmp(p, "token=", 6) == 0) {
			for (size_t i = 6; i < seg; i++) {
				int c = (unsigned char)p[i];

				if (c == '%') {
					int h, l;

					if (i + 2 >= seg)
						return -1;
					h = hexval(p[i + 1]);
					l = hexval(p[i + 2]);
					if (h < 0 || l < 0)
						return -1;
					c = h * 16 + l;
					i += 2;
				}
				if (n + 1 >= cap || c == 0)
					return -1;
				buf[n++] = (char)c;
			}
			buf[n] = '\0';
			return 0;
		}
		if (p[seg] != ';')
			return -1;
		p += seg + 1;
	}
}

const struct sp_certdb_entry *sp_certdb_find(const struct sp_certdb *db, const char *name)
{
	const char *colon = strrchr(name, ':');
	const char *nick = colon != NULL ? colon + 1 : name;
	size_t label_len = colon != NULL ? (size_t)(colon - name) : 0;

	for (size_t i = 0; i < db->count; i++) {
		const struct sp_certdb_entry *e = &db->entries[i];
		char token[256];

		if (strcmp(e->nickname, nick) != 0)
			continue;
		if (colon == NULL)
			return e;
		if (e->kind != SP_CERTDB_CERT)
			continue;
		if (strncmp(e->key_locator, "file:", 5) == 0) {
			snprintf(token, sizeof(token), "%s", SP_CERTDB_INTERNAL_TOKEN);
		} else if (uri_token(e->key_locator, token, sizeof(token)) < 0) {
			continue;
		}
		if (strlen(token) == label_len && memcmp(token, name, label_len) == 0)
			return e;
	}
	return NULL;
}

static char *openssl_reason(void)
{
	unsigned long err = ERR_peek_last_error();
	char buf[256];

	if (err == 0)
		return sp_xstrdup("unknown OpenSSL error");
	ERR_error_string_n(err, buf, sizeof(buf));
	ERR_clear_error();
	return sp_xstrdup(buf);
}

int sp_certdb_load_cert(const struct sp_certdb *db, const struct sp_certdb_entry *e,
			X509 **leaf_r, STACK_OF(X509) **chain_r, char **error_r)
{
	STACK_OF(X509) *chain = NULL;
	X509 *leaf = NULL, *x;
	char *path, *buf, *why;
	size_t len;
	BIO *bio;

	path = sp_xasprintf("%s/%s", db->dir, e->cert_file);
	if (sp_certdb_read_file(path, MAX_PEM_FILE, &buf, &len, error_r) < 0) {
		free(path);
		return -1;
	}
	ERR_clear_error();
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio == NULL || (leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		why = openssl_reason();
		*error_r = sp_xasprintf("%s: no PEM certificate: %s", path, why);
		free(why);
		goto fail;
	}
	chain = sk_X509_new_null();
	if (chain == NULL)
		goto oom;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_num(chain) >= 16 || !sk_X509_push(chain, x)) {
			X509_free(x);
			*error_r = sp_xasprintf("%s: more than 16 chain certificates", path);
			goto fail;
		}
	}
	/* the loop ends on "no start line" at EOF; anything else is damage */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		why = openssl_reason();
		*error_r = sp_xasprintf("%s: bad chain certificate: %s", path, why);
		free(why);
		goto fail;
	}
	ERR_clear_error();
	BIO_free(bio);
	free(buf);
	free(path);
	*leaf_r = leaf;
	if (chain_r != NULL)
		*chain_r = chain;
	else
		sk_X509_pop_free(chain, X509_free);
	return 0;
oom:
	*error_r = sp_xasprintf("%s: out of memory", path);
fail:
	ERR_clear_error();
	BIO_free(bio);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	free(buf);
	free(path);
	return -1;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int sp_certdb_load_crls(const struct sp_certdb *db, STACK_OF(X509_CRL) **crls_r, char **error_r)
{
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	char *dirpath = sp_xasprintf("%s/crls", db->dir);
	char **names = NULL;
	size_t count = 0;
	struct dirent *de;
	DIR *d;
	int ret = -1;

	if (crls == NULL) {
		*error_r = sp_xstrdup("out of memory");
		free(dirpath);
		return -1;
	}
	d = opendir(dirpath);
	if (d == NULL) {
		if (errno == ENOENT) {  /* no CRLs yet */
			*crls_r = crls;
			free(dirpath);
			return 0;
		}
		*error_r = sp_xasprintf("%s: %s", dirpath, strerror(errno));
		sk_X509_CRL_free(crls);
		free(dirpath);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n < 5 || strcmp(de->d_name + n - 4, ".pem") != 0 || de->d_name[0] == '.')
			continue;
		if (count == SP_CERTDB_MAX_ENTRIES) {
			*error_r = sp_xasprintf("%s: more than %d CRL files", dirpath,
						SP_CERTDB_MAX_ENTRIES);
			goto out;
		}
		names = sp_xrealloc(names, count + 1, sizeof(*names));
		names[count++] = sp_xstrdup(de->d_name);
	}
	if (errno != 0) {
		*error_r = sp_xasprintf("%s: readdir: %s", dirpath, strerror(errno));
		goto out;
	}
	if (count > 1)  /* qsort(NULL, 0, ..) is undefined */
		qsort(names, count, sizeof(*names), name_cmp);  /* deterministic order */
	for (size_t i = 0; i < count; i++) {
		char *path = sp_xasprintf("%s/%s", dirpath, names[i]), *buf, *why;
		X509_CRL *crl;
		size_t len;
		int n = 0;
		BIO *bio;

		if (sp_certdb_read_file(path, 64u << 20, &buf, &len, error_r) < 0) {
			free(path);
			goto out;
		}
		ERR_clear_error();
		bio = BIO_new_mem_buf(buf, (int)len);
		while (bio != NULL && (crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
			if (!sk_X509_CRL_push(crls, crl)) {
				X509_CRL_free(crl);
				break;
			}
			n++;
		}
		if (n == 0 || ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
			why = openssl_reason();
			*error_r = sp_xasprintf("%s: bad CRL: %s", path, why);
			free(why);
			BIO_free(bio);
			free(buf);
			free(path);
			goto out;
		}
		ERR_clear_error();
		BIO_free(bio);
		free(buf);
		free(path);
	}
	*crls_r = crls;
	crls = NULL;
	ret = 0;
out:
	closedir(d);
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	free(dirpath);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	return ret;
}
