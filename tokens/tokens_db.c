/* tokens CLI: opening the certificate database and the PIN file, file names
 * inside the db, and the CLI's own record of pending keys (a key made for a
 * certificate request, waiting for its certificate). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "config.h"
#include "common/xalloc.h"
#include "tokens/tokens.h"

#define PENDING_FILE "pending"
#define PENDING_MAX (1u << 20)
#define PENDING_MAX_LINES 4096

const char *tok_db_dir(const struct tokens_args *a)
{
	return a->db != NULL ? a->db : SP_SYSCONFDIR "/certdb";
}

char *tok_pwfile_path(const struct tokens_args *a)
{
	if (a->pwfile != NULL)
		return sp_xstrdup(a->pwfile);
	return sp_xasprintf("%s/../sslpassword.conf", tok_db_dir(a));
}

struct sp_certdb *tok_db_open(const struct tokens_args *a, int *code_r)
{
	char *err = NULL;
	struct sp_certdb *db = sp_certdb_open(tok_db_dir(a), &err);

	if (db == NULL) {
		*code_r = access(tok_db_dir(a), F_OK) == 0 ? TOK_EFAIL : TOK_ENOTFOUND;
		tok_fail(*code_r, "certificate database: %s%s", err,
			 *code_r == TOK_ENOTFOUND ? " (create one with tokens generate-certdb)" : "");
		free(err);
	}
	return db;
}

struct sp_pinfile *tok_pins_load(const struct tokens_args *a, bool required, int *code_r)
{
	char *path = tok_pwfile_path(a), *err = NULL;
	struct sp_pinfile *pf;

	*code_r = TOK_OK;
	if (!required && a->pwfile == NULL && access(path, F_OK) < 0 && errno == ENOENT) {
		free(path);
		return NULL;
	}
	pf = sp_pinfile_load(path, &err);
	if (pf == NULL) {
		*code_r = TOK_EPASSWORD;
		tok_fail(*code_r, "password file: %s", err);
		free(err);
	}
	free(path);
	return pf;
}

const char *tok_internal_pass(const struct sp_pinfile *pins, int *code_r)
{
	const char *p = pins != NULL ? sp_pinfile_get(pins, SP_CERTDB_INTERNAL_TOKEN) : NULL;

	if (p == NULL) {
		*code_r = TOK_EPASSWORD;
		tok_fail(*code_r, "no passphrase for the internal token: the password file needs "
			 "a line \"%s:PASSPHRASE\" (-W FILE)", SP_CERTDB_INTERNAL_TOKEN);
	}
	return p;
}

char *tok_safe_name(const char *nickname)
{
	char *s = sp_xstrdup(nickname);

	for (char *p = s; *p != '\0'; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || (c == '.' && p != s)))
			*p = '_';
	}
	return s;
}

static bool path_used_by_other(const struct sp_certdb *db, const char *rel, const char *nickname)
{
	char *loc = sp_xasprintf("file:%s", rel);
	bool used = false;

	for (size_t i = 0; i < sp_certdb_count(db) && !used; i++) {
		const struct sp_certdb_entry *e = sp_certdb_at(db, i);

		if (strcmp(e->nickname, nickname) == 0)
			continue;
		if (strcmp(e->cert_file, rel) == 0 ||
		    (e->key_locator != NULL && strcmp(e->key_locator, loc) == 0))
			used = true;
	}
	free(loc);
	return used;
}

char *tok_db_relpath(const struct sp_certdb *db, const char *sub, const char *nickname,
		     const char *ext)
{
	char *safe = tok_safe_name(nickname);
	char *rel = sp_xasprintf("%s/%s%s", sub, safe, ext);

	/* two nicknames may map to one safe name ("a b", "a_b"): add a hash */
	if (path_used_by_other(db, rel, nickname)) {
		unsigned char md[32];
		unsigned int mdlen = 0;

		free(rel);
		EVP_Digest(nickname, strlen(nickname), md, &mdlen, EVP_sha256(), NULL);
		rel = sp_xasprintf("%s/%s-%02x%02x%02x%02x%s", sub, safe, md[0], md[1], md[2],
				   md[3], ext);
	}
	free(safe);
	return rel;
}

bool tok_entry_internal(const struct sp_certdb_entry *e)
{
	return e->key_locator != NULL && strncmp(e->key_locator, "file:", 5) == 0;
}

/* ---- pending keys ---- */

void tok_pending_free(struct tok_pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].nickname);
		free(p[i].locator);
	}
	free(p);
}

int tok_pending_load(const struct sp_certdb *db, struct tok_pending **p_r, size_t *n_r,
		     char **error_r)
{
	char *path = sp_xasprintf("%s/%s", sp_certdb_dir(db), PENDING_FILE);
	struct tok_pending *p = NULL;
	size_t n = 0, lineno = 0;
	char *text = NULL, *line, *save = NULL;
	FILE *f;

	*p_r = NULL;
	*n_r = 0;
	f = fopen(path, "re");
	if (f == NULL) {
		if (errno == ENOENT) {
			free(path);
			return 0;
		}
		*error_r = sp_xasprintf("%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	text = sp_xcalloc(1, PENDING_MAX + 1);
	if (fread(text, 1, PENDING_MAX, f) == PENDING_MAX && !feof(f)) {
		*error_r = sp_xasprintf("%s: larger than %u bytes", path, PENDING_MAX);
		goto fail;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t');

		lineno++;
		if (line[0] == '#')
			continue;
		if (tab == NULL || tab == line || tab[1] == '\0' || n == PENDING_MAX_LINES) {
			*error_r = sp_xasprintf("%s:%zu: expected \"nickname<TAB>key locator\"",
						path, lineno);
			goto fail;
		}
		*tab = '\0';
		p = sp_xrealloc(p, n + 1, sizeof(*p));
		p[n].nickname = sp_xstrdup(line);
		p[n].locator = sp_xstrdup(tab + 1);
		n++;
	}
	fclose(f);
	free(text);
	free(path);
	*p_r = p;
	*n_r = n;
	return 0;
fail:
	fclose(f);
	free(text);
	free(path);
	tok_pending_free(p, n);
	return -1;
}

char *tok_pending_get(const struct sp_certdb *db, const char *nickname)
{
	struct tok_pending *p;
	char *err = NULL, *loc = NULL;
	size_t n;

	if (tok_pending_load(db, &p, &n, &err) < 0) {
		tok_warn("%s", err);
		free(err);
		return NULL;
	}
	for (size_t i = 0; i < n && loc == NULL; i++)
		if (strcmp(p[i].nickname, nickname) == 0)
			loc = sp_xstrdup(p[i].locator);
	tok_pending_free(p, n);
	return loc;
}

int tok_pending_set(struct sp_certdb *db, const char *nickname, const char *locator,
		    char **error_r)
{
	struct tok_pending *p;
	size_t n, len = 0;
	char *text, *tmp;
	bool changed = false;
	int ret;

	if (tok_pending_load(db, &p, &n, error_r) < 0)
		return -1;
	text = sp_xstrdup("# keys waiting for their certificate (tokens request-cert); "
			  "nickname<TAB>key locator\n");
	for (size_t i = 0; i < n; i++) {
		if (strcmp(p[i].nickname, nickname) == 0) {
			changed = true;
			continue;
		}
		tmp = sp_xasprintf("%s%s\t%s\n", text, p[i].nickname, p[i].locator);
		free(text);
		text = tmp;
	}
	if (locator != NULL) {
		tmp = sp_xasprintf("%s%s\t%s\n", text, nickname, locator);
		free(text);
		text = tmp;
		changed = true;
	}
	tok_pending_free(p, n);
	if (!changed) {
		free(text);
		return 0;
	}
	len = strlen(text);
	ret = sp_certdb_write_file(db, PENDING_FILE, text, len, 0644, error_r);
	free(text);
	return ret;
}
