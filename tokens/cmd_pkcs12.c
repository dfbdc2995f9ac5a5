/* tokens import-cert / export-cert: a certificate and its key in or out as
 * PKCS#12. Import goes into the internal token or onto a PKCS#11 token
 * (private key private, sensitive, not extractable). Export takes keys of
 * the internal token only: a token key that is not extractable is refused. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pkcs12.h>

#include "common/xalloc.h"
#include "tokens/tokens.h"

static char *p12_password(const struct tokens_args *a, bool confirm, int *code_r)
{
	char *err = NULL, *pass;

	if (a->p12pass_file != NULL)
		pass = tok_secret_file(a->p12pass_file, &err);
	else
		pass = tok_secret_prompt("PKCS#12 file password: ", confirm, &err);
	if (pass == NULL)
		*code_r = tok_fail_err(TOK_EPASSWORD, err, "PKCS#12 password");
	return pass;
}

static int import_cert(struct tokens_args *a)
{
	struct sp_pinfile *pins = NULL;
	struct sp_certdb *db;
	struct p11_ctx *ctx = NULL;
	struct p11_token *tok = NULL;
	struct p11_key *key = NULL;
	STACK_OF(X509) *chain = NULL;
	PKCS12 *p12 = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	BIO *in = NULL;
	char *pass = NULL, *err = NULL, *nick = NULL, *loc = NULL, *pem = NULL, *keyrel = NULL;
	size_t pemlen = 0;
	int rc;

	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	in = BIO_new_file(a->pos[0], "rb");
	if (in == NULL) {
		ERR_clear_error();
		rc = tok_fail(TOK_ENOTFOUND, "%s: cannot open", a->pos[0]);
		goto out;
	}
	p12 = d2i_PKCS12_bio(in, NULL);
	if (p12 == NULL) {
		rc = tok_fail_err(TOK_EFAIL, tok_ssl_error(), a->pos[0]);
		goto out;
	}
	if ((pass = p12_password(a, false, &rc)) == NULL)
		goto out;
	if (PKCS12_mac_present(p12) && !PKCS12_verify_mac(p12, pass, -1)) {
		ERR_clear_error();
		rc = tok_fail(TOK_EPASSWORD, "%s: wrong PKCS#12 password (the MAC does not verify)",
			      a->pos[0]);
		goto out;
	}
	if (!PKCS12_parse(p12, pass, &pkey, &cert, &chain) || pkey == NULL || cert == NULL) {
		char *why = tok_ssl_error();

		rc = tok_fail(pkey == NULL && cert == NULL ? TOK_EPASSWORD : TOK_EFAIL,
			      "%s: cannot read a key and certificate: %s", a->pos[0], why);
		free(why);
		goto out;
	}
	if (a->nick != NULL) {
		nick = sp_xstrdup(a->nick);
	} else {
		int len = 0;
		const unsigned char *alias = X509_alias_get0(cert, &len);

		if (alias == NULL || len <= 0) {
			rc = tok_fail(TOK_EUSAGE, "%s has no friendly name: give the nickname with -n",
				      a->pos[0]);
			goto out;
		}
		nick = sp_xstrndup((const char *)alias, (size_t)len);
	}
	if ((rc = tok_check_new_nickname(db, nick)) != TOK_OK)
		goto out;
	if (X509_check_private_key(cert, pkey) != 1) {
		ERR_clear_error();
		rc = tok_fail(TOK_EREFUSED, "%s: certificate/key mismatch inside the file", a->pos[0]);
		goto out;
	}
	pins = tok_pins_load(a, true, &rc);
	if (pins == NULL)
		goto out;
	if (a->token != NULL) {
		unsigned char id[20];

		if (p11_pubkey_id(pkey, id, &err) < 0) {
			rc = tok_fail_err(TOK_EFAIL, err, NULL);
			goto out;
		}
		if ((ctx = tok_p11_ctx(a, &rc)) == NULL ||
		    (tok = tok_p11_open(ctx, a->token, pins, &rc)) == NULL)
			goto out;
		key = p11_key_import(tok, pkey, nick, id, sizeof(id), &err);
		if (key == NULL) {
			rc = tok_fail_err(TOK_ETOKEN, err, "importing the key");
			goto out;
		}
		if (p11_cert_import(tok, cert, nick, id, sizeof(id), &err) < 0) {
			rc = tok_fail_err(TOK_ETOKEN, err, "importing the certificate");
			goto out;
		}
		loc = p11_uri_format(p11_token_label(tok), nick, id, sizeof(id), "private");
	} else {
		const char *ipass = tok_internal_pass(pins, &rc);

		if (ipass == NULL)
			goto out;
		keyrel = tok_db_relpath(db, "keys", nick, ".p8");
		if (tok_key_to_p8(pkey, ipass, &pem, &pemlen, &err) < 0 ||
		    sp_certdb_write_file(db, keyrel, pem, pemlen, 0600, &err) < 0) {
			rc = tok_fail_err(TOK_EFAIL, err, "key");
			goto out;
		}
		loc = sp_xasprintf("file:%s", keyrel);
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
		tok_warn("the certificate of %s has expired", nick);
	if (tok_store_cert(db, nick, cert, chain, loc, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, "certdb");
		goto out;
	}
	printf("Imported %s into %s%s%s\n", nick, a->token != NULL ? "token \"" : "the internal token",
	       a->token != NULL ? a->token : "", a->token != NULL ? "\"" : "");
	rc = TOK_OK;
out:
	if (pem != NULL)
		sp_free_secret(pem, pemlen);
	tok_secret_free(&pass);
	p11_key_free(&key);
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	EVP_PKEY_free(pkey);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	PKCS12_free(p12);
	BIO_free(in);
	free(nick);
	free(loc);
	free(keyrel);
	sp_certdb_free(&db);
	return rc;
}

/* Why a token key cannot be exported; exit code. */
static int refuse_token_key(const struct tokens_args *a, const struct sp_certdb_entry *e)
{
	struct sp_pinfile *pins = NULL;
	struct p11_ctx *ctx = NULL;
	struct p11_token *tok = NULL;
	struct p11_key *key = NULL;
	struct p11_key_attrs at;
	unsigned char *id = NULL;
	char *label = NULL, *tlabel = tok_locator_token(e->key_locator), *err = NULL;
	size_t id_len = 0;
	int rc;

	pins = tok_pins_load(a, false, &rc);
	if (rc != TOK_OK)
		goto out;
	if (pins == NULL || tlabel == NULL ||
	    tok_locator_object(e->key_locator, &label, &id, &id_len) < 0 ||
	    (ctx = tok_p11_ctx(a, &rc)) == NULL || (tok = tok_p11_open(ctx, tlabel, pins, &rc)) == NULL ||
	    (key = p11_key_find(tok, label, id, id_len, &err)) == NULL ||
	    p11_key_attributes(key, &at, &err) < 0) {
		free(err);
		rc = tok_fail(TOK_EREFUSED, "key not extractable: the key of \"%s\" lives on token "
			      "\"%s\" and cannot be exported", e->nickname, tlabel != NULL ? tlabel : "?");
		goto out;
	}
	if (!at.extractable || at.sensitive)
		rc = tok_fail(TOK_EREFUSED, "key not extractable: the key of \"%s\" on token \"%s\" "
			      "is %s%s%s; it cannot leave the token", e->nickname, tlabel,
			      at.sensitive ? "sensitive" : "", at.sensitive && !at.extractable ? " and " : "",
			      !at.extractable ? "not extractable" : "");
	else
		rc = tok_fail(TOK_EREFUSED, "the key of \"%s\" is on token \"%s\": export it with the "
			      "token's own tools", e->nickname, tlabel);
out:
	p11_key_free(&key);
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	free(label);
	free(tlabel);
	free(id);
	return rc;
}

static int export_cert(struct tokens_args *a)
{
	const char *nick = a->pos[0];
	const struct sp_certdb_entry *e;
	struct sp_pinfile *pins = NULL;
	struct sp_certdb *db;
	STACK_OF(X509) *chain = NULL;
	PKCS12 *p12 = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	BIO *out = NULL;
	const char *ipass;
	char *pass = NULL, *err = NULL;
	int rc;

	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	e = tok_db_entry(db, nick);
	if (e == NULL || e->kind != SP_CERTDB_CERT) {
		rc = tok_fail(TOK_ENOTFOUND, "unknown nickname \"%s\"%s", nick,
			      e != NULL ? " (a trusted CA has no key to export)" : "");
		goto out;
	}
	if (!tok_entry_internal(e)) {
		rc = refuse_token_key(a, e);
		goto out;
	}
	if (sp_certdb_load_cert(db, e, &cert, &chain, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, NULL);
		goto out;
	}
	pins = tok_pins_load(a, true, &rc);
	if (pins == NULL || (ipass = tok_internal_pass(pins, &rc)) == NULL)
		goto out;
	if ((rc = tok_key_load_file(db, e->key_locator, ipass, &pkey)) != TOK_OK)
		goto out;
	if ((pass = p12_password(a, true, &rc)) == NULL)
		goto out;
	/* as `openssl pkcs12 -export` does by default in 3.0: PBES2 (PBKDF2) with
	 * AES-256-CBC for key and certificates, HMAC-SHA256 MAC, 2048 iterations */
	p12 = PKCS12_create(pass, nick, pkey, cert, chain, NID_aes_256_cbc, NID_aes_256_cbc,
			    PKCS12_DEFAULT_ITER, -1, 0);
	if (p12 == NULL ||
	    !PKCS12_set_mac(p12, pass, -1, NULL, 0, PKCS12_DEFAULT_ITER, EVP_sha256())) {
		rc = tok_fail_err(TOK_EFAIL, tok_ssl_error(), "PKCS#12");
		goto out;
	}
	if (a->out != NULL) {
		int fd = open(a->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		out = fd >= 0 ? BIO_new_fd(fd, BIO_CLOSE) : NULL;
		if (out == NULL) {
			if (fd >= 0)
				close(fd);
			rc = tok_fail(TOK_EFAIL, "%s: cannot create", a->out);
			goto out;
		}
	} else {
		out = BIO_new_fp(stdout, BIO_NOCLOSE);
	}
	if (!i2d_PKCS12_bio(out, p12) || BIO_flush(out) != 1) {
		rc = tok_fail_err(TOK_EFAIL, tok_ssl_error(), a->out != NULL ? a->out : "stdout");
		goto out;
	}
	if (a->out != NULL)
		printf("Exported %s to %s\n", nick, a->out);
	rc = TOK_OK;
out:
	tok_secret_free(&pass);
	BIO_free(out);
	PKCS12_free(p12);
	EVP_PKEY_free(pkey);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	sp_pinfile_free(&pins);
	sp_certdb_free(&db);
	return rc;
}

const struct tokens_cmd tokens_cmds_pkcs12[] = {
	{"import-cert", TO_COMMON | TO_TOKEN | TO_P12PASS | TO_NICK, 1, 1,
	 "import-cert [-O PASSWORD-FILE] [--token LABEL] [-n NICKNAME] FILE.p12\n"
	 "Adds the key and certificate (and chain) of a PKCS#12 file. Its password is the\n"
	 "first line of -O FILE, else asked on the terminal. NICKNAME defaults to the\n"
	 "certificate's friendly name. With --token the key becomes a private, sensitive,\n"
	 "non-extractable object of that token and the certificate a certificate object,\n"
	 "both labelled NICKNAME with the same CKA_ID; otherwise both go in the internal\n"
	 "token.\n",
	 import_cert},
	{"export-cert", TO_COMMON | TO_P12PASS | TO_OUT, 1, 1,
	 "export-cert [-O PASSWORD-FILE] [-o FILE] NICKNAME\n"
	 "Writes NICKNAME's key, certificate and chain as PKCS#12 (AES-256-CBC, PBKDF2,\n"
	 "HMAC-SHA256) to FILE (mode 0600) or stdout. The password is the first line of\n"
	 "-O FILE, else asked twice on the terminal. A key on a PKCS#11 token is refused\n"
	 "(exit 5): it is not extractable.\n",
	 export_cert},
	{NULL, 0, 0, 0, NULL, NULL},
};
