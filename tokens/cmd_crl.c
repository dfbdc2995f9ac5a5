/* tokens crl add / crl list: CRLs in DIR/crls/, one file per issuing CA.
 * A CRL is taken only if a CA in the certdb signed it, and only if it is not
 * older than the one it replaces (RFC 5280 5.2.3: CRL numbers increase). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/xalloc.h"
#include "tokens/tokens.h"

#define MAX_CRL_FILES 4096

struct crl_file {
	char *name;     /* relative to DIR/crls */
	X509_CRL *crl;  /* the first CRL in the file */
};

static int crl_entries(X509_CRL *crl)
{
	STACK_OF(X509_REVOKED) *r = X509_CRL_get_REVOKED(crl);

	return r != NULL ? sk_X509_REVOKED_num(r) : 0;
}

static void crl_files_free(struct crl_file *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(f[i].name);
		X509_CRL_free(f[i].crl);
	}
	free(f);
}

static X509_CRL *read_crl(const char *path)
{
	BIO *bio = BIO_new_file(path, "rb");
	X509_CRL *crl;

	if (bio == NULL) {
		ERR_clear_error();
		return NULL;
	}
	crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	if (crl == NULL) {
		(void)BIO_reset(bio);
		crl = d2i_X509_CRL_bio(bio, NULL);
	}
	ERR_clear_error();
	BIO_free(bio);
	return crl;
}

static int crl_files(const struct sp_certdb *db, struct crl_file **f_r, size_t *n_r)
{
	char *dir = sp_xasprintf("%s/crls", sp_certdb_dir(db));
	struct crl_file *f = NULL;
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	*f_r = NULL;
	*n_r = 0;
	if (d == NULL) {
		free(dir);
		return errno == ENOENT ? 0 : -1;
	}
	while ((de = readdir(d)) != NULL && n < MAX_CRL_FILES) {
		size_t len = strlen(de->d_name);
		char *path;

		if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		path = sp_xasprintf("%s/%s", dir, de->d_name);
		f = sp_xrealloc(f, n + 1, sizeof(*f));
		f[n].name = sp_xstrdup(de->d_name);
		f[n].crl = read_crl(path);
		n++;
		free(path);
	}
	closedir(d);
	free(dir);
	*f_r = f;
	*n_r = n;
	return 0;
}

/* <0: a older than b, 0: same, >0: newer. By CRL number when both have one,
 * else by thisUpdate. */
static int crl_age_cmp(X509_CRL *a, X509_CRL *b)
{
	ASN1_INTEGER *na = X509_CRL_get_ext_d2i(a, NID_crl_number, NULL, NULL);
	ASN1_INTEGER *nb = X509_CRL_get_ext_d2i(b, NID_crl_number, NULL, NULL);
	int c;

	if (na != NULL && nb != NULL)
		c = ASN1_INTEGER_cmp(na, nb);
	else
		c = ASN1_TIME_compare(X509_CRL_get0_lastUpdate(a), X509_CRL_get0_lastUpdate(b));
	ASN1_INTEGER_free(na);
	ASN1_INTEGER_free(nb);
	return c;
}

static int crl_add(struct tokens_args *a)
{
	const struct sp_certdb_entry *issuer = NULL;
	struct crl_file *files = NULL;
	struct sp_certdb *db;
	X509_CRL *crl;
	BIO *mem = NULL;
	char *err = NULL, *rel = NULL, *pem;
	size_t nfiles = 0;
	long len;
	int rc;

	crl = read_crl(a->pos[0]);
	if (crl == NULL)
		return tok_fail(access(a->pos[0], R_OK) == 0 ? TOK_EFAIL : TOK_ENOTFOUND,
				"%s: no CRL in it (PEM or DER)", a->pos[0]);
	db = tok_db_open(a, &rc);
	if (db == NULL) {
		X509_CRL_free(crl);
		return rc;
	}
	/* the CA whose subject is the CRL's issuer, and whose key signed it */
	rc = TOK_ENOTFOUND;
	for (size_t i = 0; i < sp_certdb_count(db) && issuer == NULL; i++) {
		const struct sp_certdb_entry *e = sp_certdb_at(db, i);
		X509 *ca = NULL;

		if (e->kind != SP_CERTDB_CA || sp_certdb_load_cert(db, e, &ca, NULL, &err) < 0) {
			free(err);
			err = NULL;
			continue;
		}
		if (X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl)) == 0) {
			if (X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1)
				issuer = e;
			else
				rc = TOK_EREFUSED;
		}
		ERR_clear_error();
		X509_free(ca);
	}
	if (issuer == NULL) {
		char *name = tok_name(X509_CRL_get_issuer(crl));

		tok_fail(rc, rc == TOK_EREFUSED ? "CRL of %s: its signature does not verify with that "
			 "CA's key; refused" : "CRL of %s: no trusted CA with that subject in the certdb "
			 "(add it with add-cert -C first)", name);
		free(name);
		goto out;
	}
	if (X509_CRL_get0_nextUpdate(crl) != NULL &&
	    X509_cmp_current_time(X509_CRL_get0_nextUpdate(crl)) < 0)
		tok_warn("the CRL's next update is past: it is stale; get a fresh one soon");
	if (crl_files(db, &files, &nfiles) < 0) {
		rc = tok_fail(TOK_EFAIL, "%s/crls: %s", sp_certdb_dir(db), strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < nfiles; i++) {
		if (files[i].crl == NULL ||
		    X509_NAME_cmp(X509_CRL_get_issuer(files[i].crl), X509_CRL_get_issuer(crl)) != 0)
			continue;
		if (crl_age_cmp(crl, files[i].crl) < 0) {
			rc = tok_fail(TOK_EREFUSED, "this CRL is older than crls/%s (same issuer); "
				      "refused", files[i].name);
			goto out;
		}
		free(rel);
		rel = sp_xasprintf("crls/%s", files[i].name);
	}
	if (rel == NULL)
		rel = tok_db_relpath(db, "crls", issuer->nickname, ".pem");
	mem = BIO_new(BIO_s_mem());
	if (mem == NULL || !PEM_write_bio_X509_CRL(mem, crl)) {
		rc = tok_fail_err(TOK_EFAIL, tok_ssl_error(), NULL);
		goto out;
	}
	len = BIO_get_mem_data(mem, &pem);
	if (sp_certdb_write_file(db, rel, pem, (size_t)len, 0644, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, NULL);
		goto out;
	}
	printf("Added the CRL of %s as %s (%d revoked); running daemons take it on SIGHUP\n",
	       issuer->nickname, rel, crl_entries(crl));
	rc = TOK_OK;
out:
	BIO_free(mem);
	crl_files_free(files, nfiles);
	free(rel);
	X509_CRL_free(crl);
	sp_certdb_free(&db);
	return rc;
}

static int crl_list(struct tokens_args *a)
{
	struct crl_file *files = NULL;
	struct sp_certdb *db;
	size_t nfiles = 0;
	int rc;

	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	if (crl_files(db, &files, &nfiles) < 0) {
		sp_certdb_free(&db);
		return tok_fail(TOK_EFAIL, "crls: %s", strerror(errno));
	}
	printf("%-24s %-40s %-16s  %-16s  %-7s %s\n", "File", "Issuer", "This update",
	       "Next update", "Entries", "Number");
	for (size_t i = 0; i < nfiles; i++) {
		char this[32], next[32], *issuer;
		ASN1_INTEGER *num;
		char *numtext = NULL;

		if (files[i].crl == NULL) {
			printf("%-24s (unreadable)\n", files[i].name);
			continue;
		}
		issuer = tok_name(X509_CRL_get_issuer(files[i].crl));
		tok_time(X509_CRL_get0_lastUpdate(files[i].crl), this, sizeof(this));
		tok_time(X509_CRL_get0_nextUpdate(files[i].crl), next, sizeof(next));
		num = X509_CRL_get_ext_d2i(files[i].crl, NID_crl_number, NULL, NULL);
		if (num != NULL) {
			BIGNUM *bn = ASN1_INTEGER_to_BN(num, NULL);
			char *dec = bn != NULL ? BN_bn2dec(bn) : NULL;

			numtext = sp_xstrdup(dec != NULL ? dec : "?");
			OPENSSL_free(dec);
			BN_free(bn);
			ASN1_INTEGER_free(num);
		}
		printf("%-24s %-40s %-16s  %-16s  %-7d %s\n", files[i].name, issuer, this, next,
		       crl_entries(files[i].crl),
		       numtext != NULL ? numtext : "-");
		free(numtext);
		free(issuer);
	}
	printf("%zu CRL%s found\n", nfiles, nfiles == 1 ? "" : "s");
	crl_files_free(files, nfiles);
	sp_certdb_free(&db);
	return TOK_OK;
}

const struct tokens_cmd tokens_cmds_crl[] = {
	{"crl add", TO_COMMON, 1, 1,
	 "crl add FILE\n"
	 "Adds the CRL in FILE (PEM or DER). It must be signed by a trusted CA of the\n"
	 "certdb (add-cert -C); it replaces the CRL of the same issuer unless it is older\n"
	 "(lower CRL number, else earlier thisUpdate), which is refused (exit 5).\n",
	 crl_add},
	{"crl list", TO_COMMON, 0, 0,
	 "crl list\n"
	 "The CRLs of the certdb: file, issuer, this update, next update, entries, number.\n",
	 crl_list},
	{NULL, 0, 0, 0, NULL, NULL},
};
