/* tokens sub-commands over certificates in the certdb: self-signed ones
 * (add-selfsign-cert, renew-selfsign-cert), CA-issued ones for an existing
 * key (add-cert, renew-cert), trusted CAs (add-cert -C), and list-certs,
 * show-cert, remove-cert. */
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

#define SELFSIGN_DAYS 90  /* the anchor: "A self-signed certificate is valid for three months" */

const struct sp_certdb_entry *tok_db_entry(const struct sp_certdb *db, const char *nickname)
{
	for (size_t i = 0; i < sp_certdb_count(db); i++)
		if (strcmp(sp_certdb_at(db, i)->nickname, nickname) == 0)
			return sp_certdb_at(db, i);
	return NULL;
}

int tok_check_new_nickname(const struct sp_certdb *db, const char *nick)
{
	char *loc;

	if (strchr(nick, ':') != NULL || strchr(nick, '\t') != NULL || *nick == '\0')
		return tok_fail(TOK_EUSAGE, "nickname \"%s\": no ':' or TAB, not empty", nick);
	if (tok_db_entry(db, nick) != NULL)
		return tok_fail(TOK_EREFUSED, "nickname \"%s\" is already in the certdb "
				"(remove-cert it first, or renew it)", nick);
	loc = tok_pending_get(db, nick);
	if (loc != NULL) {
		free(loc);
		return tok_fail(TOK_EREFUSED, "nickname \"%s\" has a key waiting for its "
				"certificate (add-cert it, or remove-cert it first)", nick);
	}
	return TOK_OK;
}

int tok_add_selfsign(struct sp_certdb *db, const struct tokens_args *a, const char *pass,
		     const char *nickname, X509_NAME *subject)
{
	X509_EXTENSION *san = NULL;
	EVP_PKEY *pkey = NULL;
	char *err = NULL, *keyrel = NULL, *pem = NULL, *loc = NULL, *cn;
	X509 *x = NULL;
	size_t len = 0;
	int rc = TOK_EFAIL;

	cn = tok_name_cn(subject);
	san = tok_san_ext(a, cn, &err);
	if (san == NULL && err != NULL) {
		rc = tok_fail_err(TOK_EUSAGE, err, NULL);
		goto out;
	}
	pkey = tok_keygen_soft(a->key, &err);
	if (pkey == NULL) {
		rc = tok_fail_err(a->key != NULL ? TOK_EUSAGE : TOK_EFAIL, err, NULL);
		goto out;
	}
	x = tok_selfsign(pkey, subject, san, a->days > 0 ? a->days : SELFSIGN_DAYS, &err);
	if (x == NULL) {
		rc = tok_fail_err(TOK_EFAIL, err, "self-signed certificate");
		goto out;
	}
	keyrel = tok_db_relpath(db, "keys", nickname, ".p8");
	if (tok_key_to_p8(pkey, pass, &pem, &len, &err) < 0 ||
	    sp_certdb_write_file(db, keyrel, pem, len, 0600, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, "key");
		goto out;
	}
	loc = sp_xasprintf("file:%s", keyrel);
	if (tok_store_cert(db, nickname, x, NULL, loc, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, "certdb");
		goto out;
	}
	rc = TOK_OK;
out:
	if (pem != NULL)
		sp_free_secret(pem, len);
	X509_EXTENSION_free(san);
	EVP_PKEY_free(pkey);
	X509_free(x);
	free(keyrel);
	free(loc);
	free(cn);
	return rc;
}

static int add_selfsign(struct tokens_args *a)
{
	const char *nick = a->pos[0];
	struct sp_pinfile *pins = NULL;
	struct sp_certdb *db;
	X509_NAME *subject = NULL;
	const char *pass;
	char *err = NULL;
	int rc;

	if (a->token != NULL)
		return tok_fail(TOK_EUSAGE, "add-selfsign-cert makes its key in the internal token; "
				"for a token key use request-cert --token");
	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	if ((rc = tok_check_new_nickname(db, nick)) != TOK_OK)
		goto out;
	subject = tok_subject(a, &err);
	if (subject == NULL) {
		rc = tok_fail_err(TOK_EUSAGE, err, NULL);
		goto out;
	}
	pins = tok_pins_load(a, true, &rc);
	if (pins == NULL || (pass = tok_internal_pass(pins, &rc)) == NULL)
		goto out;
	rc = tok_add_selfsign(db, a, pass, nick, subject);
	if (rc == TOK_OK)
		printf("Added the self-signed certificate %s\n", nick);
out:
	X509_NAME_free(subject);
	sp_pinfile_free(&pins);
	sp_certdb_free(&db);
	return rc;
}

static int renew_selfsign(struct tokens_args *a)
{
	const char *nick = a->pos[0];
	const struct sp_certdb_entry *e;
	struct sp_pinfile *pins = NULL;
	struct sp_certdb *db;
	EVP_PKEY *pkey = NULL;
	X509 *old = NULL, *x = NULL;
	X509_EXTENSION *san = NULL;
	const char *pass;
	char *err = NULL;
	int rc, idx;

	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	e = tok_db_entry(db, nick);
	if (e == NULL || e->kind != SP_CERTDB_CERT) {
		rc = tok_fail(TOK_ENOTFOUND, "no certificate \"%s\" in the certdb", nick);
		goto out;
	}
	if (sp_certdb_load_cert(db, e, &old, NULL, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, nick);
		goto out;
	}
	if (!tok_self_signed(old)) {
		rc = tok_fail(TOK_EREFUSED, "%s is not self-signed: renew it with renew-cert", nick);
		goto out;
	}
	if (!tok_entry_internal(e)) {
		rc = tok_fail(TOK_EREFUSED, "%s: its key is on a PKCS#11 token; only keys of the "
			      "internal token can sign a self-signed certificate here", nick);
		goto out;
	}
	pins = tok_pins_load(a, true, &rc);
	if (pins == NULL || (pass = tok_internal_pass(pins, &rc)) == NULL)
		goto out;
	if ((rc = tok_key_load_file(db, e->key_locator, pass, &pkey)) != TOK_OK)
		goto out;
	idx = X509_get_ext_by_NID(old, NID_subject_alt_name, -1);
	if (idx >= 0)
		san = X509_EXTENSION_dup(X509_get_ext(old, idx));
	x = tok_selfsign(pkey, X509_get_subject_name(old), san,
			 a->days > 0 ? a->days : SELFSIGN_DAYS, &err);
	if (x == NULL) {
		rc = tok_fail_err(TOK_EFAIL, err, "self-signed certificate");
		goto out;
	}
	if (tok_store_cert(db, nick, x, NULL, e->key_locator, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, "certdb");
		goto out;
	}
	printf("Renewed the self-signed certificate %s (same key)\n", nick);
	rc = TOK_OK;
out:
	X509_EXTENSION_free(san);
	EVP_PKEY_free(pkey);
	X509_free(old);
	X509_free(x);
	sp_pinfile_free(&pins);
	sp_certdb_free(&db);
	return rc;
}

int tok_locator_pubkey(const struct tokens_args *a, const struct sp_certdb *db,
		       const char *locator, EVP_PKEY **pub_r)
{
	struct sp_pinfile *pins = NULL;
	struct p11_ctx *ctx = NULL;
	struct p11_token *tok = NULL;
	struct p11_key *key = NULL;
	unsigned char *id = NULL;
	char *label = NULL, *tlabel = NULL, *err = NULL;
	size_t id_len = 0;
	const char *pass;
	int rc;

	pins = tok_pins_load(a, strncmp(locator, "file:", 5) == 0, &rc);
	if (rc != TOK_OK)
		return rc;
	if (strncmp(locator, "file:", 5) == 0) {
		EVP_PKEY *priv = NULL;

		if ((pass = tok_internal_pass(pins, &rc)) == NULL)
			goto out;
		if ((rc = tok_key_load_file(db, locator, pass, &priv)) != TOK_OK)
			goto out;
		*pub_r = priv;  /* the private key serves for comparisons */
		rc = TOK_OK;
		goto out;
	}
	if (pins == NULL) {
		rc = tok_fail(TOK_EPASSWORD, "no password file for the token's PIN (-W FILE)");
		goto out;
	}
	tlabel = tok_locator_token(locator);
	if (tok_locator_object(locator, &label, &id, &id_len) < 0) {
		rc = TOK_EFAIL;
		goto out;
	}
	if ((ctx = tok_p11_ctx(a, &rc)) == NULL ||
	    (tok = tok_p11_open(ctx, tlabel != NULL ? tlabel : locator, pins, &rc)) == NULL)
		goto out;
	key = p11_key_find(tok, label, id, id_len, &err);
	if (key == NULL) {
		rc = tok_fail_err(TOK_ENOTFOUND, err, NULL);
		goto out;
	}
	*pub_r = EVP_PKEY_dup(p11_key_public(key));
	rc = *pub_r != NULL ? TOK_OK : tok_fail(TOK_EFAIL, "cannot copy the public key");
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

static void check_validity(X509 *x, const char *what)
{
	char end[32];

	tok_time(X509_get0_notAfter(x), end, sizeof(end));
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		tok_warn("%s has expired (not after %s UTC); added anyway, but peers will "
			 "refuse it", what, end);
	else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
		tok_warn("%s is not valid yet", what);
}

static int parse_trust(const char *s, unsigned *trust_r)
{
	char *copy, *tok, *save = NULL;
	unsigned t = 0;

	if (s == NULL) {
		*trust_r = SP_CERTDB_TRUST_SERVER | SP_CERTDB_TRUST_CLIENT;
		return 0;
	}
	copy = sp_xstrdup(s);
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "server") == 0)
			t |= SP_CERTDB_TRUST_SERVER;
		else if (strcmp(tok, "client") == 0)
			t |= SP_CERTDB_TRUST_CLIENT;
		else if (strcmp(tok, "-") != 0 && strcmp(tok, "none") != 0) {
			free(copy);
			return -1;
		}
	}
	free(copy);
	*trust_r = t;
	return 0;
}

static int add_ca(struct tokens_args *a, struct sp_certdb *db)
{
	const char *nick = a->pos[0];
	const struct sp_certdb_entry *old = tok_db_entry(db, nick);
	struct sp_certdb_entry e = {0};
	STACK_OF(X509) *chain = NULL;
	X509 *x = NULL;
	char *err = NULL, *rel = NULL, *pem = NULL;
	unsigned trust;
	size_t len;
	int rc = TOK_EFAIL;

	if (parse_trust(a->trust, &trust) < 0)
		return tok_fail(TOK_EUSAGE, "--trust takes a comma list of server, client (or -)");
	if (strchr(nick, ':') != NULL || strchr(nick, '\t') != NULL)
		return tok_fail(TOK_EUSAGE, "nickname \"%s\": no ':' or TAB", nick);
	if (old != NULL && (old->kind != SP_CERTDB_CA || !a->force))
		return tok_fail(TOK_EREFUSED, "nickname \"%s\" is already in the certdb%s", nick,
				old->kind == SP_CERTDB_CA ? " (--force replaces it)" : "");
	if (tok_read_certs(a->pos[1], &x, &chain, &err) < 0) {
		rc = tok_fail_err(TOK_ENOTFOUND, err, NULL);
		goto out;
	}
	if (X509_check_ca(x) == 0)
		tok_warn("%s is not a CA certificate (no basicConstraints CA:TRUE)", nick);
	check_validity(x, nick);
	rel = old != NULL ? sp_xstrdup(old->cert_file) : tok_db_relpath(db, "cas", nick, ".pem");
	pem = tok_certs_pem(x, NULL, &len);
	if (sp_certdb_write_file(db, rel, pem, len, 0644, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, NULL);
		goto out;
	}
	e.kind = SP_CERTDB_CA;
	e.nickname = (char *)nick;
	e.cert_file = rel;
	e.trust = trust;
	if (sp_certdb_put(db, &e, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, "certdb");
		goto out;
	}
	printf("Added the trusted CA %s (trust: %s)\n", nick,
	       trust == 0 ? "-" : trust == 3 ? "server,client" : trust == 1 ? "server" : "client");
	rc = TOK_OK;
out:
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	free(rel);
	free(pem);
	return rc;
}

/* The locator of the key that nick's certificate goes with. */
static int key_for(struct tokens_args *a, struct sp_certdb *db, const char *nick, char **loc_r)
{
	const struct sp_certdb_entry *e = tok_db_entry(db, nick);
	struct sp_pinfile *pins = NULL;
	struct p11_ctx *ctx = NULL;
	struct p11_token *tok = NULL;
	struct p11_key *key = NULL;
	char *err = NULL;
	int rc;

	if (e != NULL) {
		*loc_r = sp_xstrdup(e->key_locator);
		return TOK_OK;
	}
	if ((*loc_r = tok_pending_get(db, nick)) != NULL)
		return TOK_OK;
	if (a->token == NULL)
		return tok_fail(TOK_ENOTFOUND, "no key named \"%s\": make one with request-cert "
				"(or name the token that holds it with --token)", nick);
	/* a key made on the token by other means (token generate-key, pkcs11-tool) */
	pins = tok_pins_load(a, true, &rc);
	if (pins == NULL)
		return rc;
	if ((ctx = tok_p11_ctx(a, &rc)) == NULL || (tok = tok_p11_open(ctx, a->token, pins, &rc)) == NULL)
		goto out;
	key = p11_key_find(tok, nick, NULL, 0, &err);
	if (key == NULL) {
		rc = tok_fail_err(TOK_ENOTFOUND, err, NULL);
		goto out;
	}
	{
		size_t id_len;
		const unsigned char *id = p11_key_id(key, &id_len);

		*loc_r = p11_uri_format(p11_token_label(tok), nick, id, id_len, "private");
	}
	rc = TOK_OK;
out:
	p11_key_free(&key);
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	return rc;
}

static int add_cert(struct tokens_args *a)
{
	const char *nick = a->pos[0];
	bool renew = strcmp(a->cmd, "renew-cert") == 0;
	const struct sp_certdb_entry *e;
	STACK_OF(X509) *chain = NULL;
	struct sp_certdb *db;
	EVP_PKEY *keypub = NULL;
	X509 *x = NULL;
	char *err = NULL, *loc = NULL;
	int rc;

	if (a->npos != 2)
		return tok_fail(TOK_EUSAGE, "usage: tokens %s [-C] NICKNAME FILE", a->cmd);
	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	if (a->ca) {
		rc = add_ca(a, db);
		goto out;
	}
	e = tok_db_entry(db, nick);
	if (e != NULL && e->kind == SP_CERTDB_CA) {
		rc = tok_fail(TOK_EREFUSED, "\"%s\" is a trusted CA; use add-cert -C", nick);
		goto out;
	}
	if (renew && e == NULL) {
		rc = tok_fail(TOK_ENOTFOUND, "no certificate \"%s\" in the certdb", nick);
		goto out;
	}
	if (!renew && e != NULL && !a->force) {
		rc = tok_fail(TOK_EREFUSED, "\"%s\" already has a certificate: use renew-cert", nick);
		goto out;
	}
	if (tok_read_certs(a->pos[1], &x, &chain, &err) < 0) {
		rc = tok_fail_err(TOK_ENOTFOUND, err, NULL);
		goto out;
	}
	if ((rc = key_for(a, db, nick, &loc)) != TOK_OK)
		goto out;
	if ((rc = tok_locator_pubkey(a, db, loc, &keypub)) != TOK_OK)
		goto out;
	if (EVP_PKEY_eq(X509_get0_pubkey(x), keypub) != 1) {
		rc = tok_fail(TOK_EREFUSED, "certificate/key mismatch: the certificate in %s is not "
			      "for the key of \"%s\"", a->pos[1], nick);
		ERR_clear_error();
		goto out;
	}
	check_validity(x, a->pos[1]);
	if (tok_store_cert(db, nick, x, chain, loc, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, "certdb");
		goto out;
	}
	if (tok_pending_set(db, nick, NULL, &err) < 0) {
		tok_warn("%s", err);
		free(err);
	}
	printf("%s the certificate %s\n", renew ? "Renewed" : "Added", nick);
	rc = TOK_OK;
out:
	EVP_PKEY_free(keypub);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	free(loc);
	sp_certdb_free(&db);
	return rc;
}

static char *location(const char *locator)
{
	char *label;

	if (locator == NULL)
		return sp_xstrdup("-");
	if (strncmp(locator, "file:", 5) == 0)
		return sp_xstrdup("internal");
	label = tok_locator_token(locator);
	return label != NULL ? label : sp_xstrdup("token");
}

static const char *trust_text(unsigned t)
{
	switch (t & 3) {
	case 1: return "server";
	case 2: return "client";
	case 3: return "server,client";
	default: return "-";
	}
}

static int list_certs(struct tokens_args *a)
{
	struct tok_pending *p = NULL;
	struct sp_certdb *db;
	size_t np = 0, n = 0;
	char *err = NULL;
	int rc;

	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	printf("%-20s %-16s  %-16s  %-5s %-28s %-28s %s\n", "Alias", "Valid from", "Expires on",
	       "Self-", "Issued by", "Issued to", a->ca ? "Trust" : "Location");
	printf("%-20s %-16s  %-16s  %-5s %-28s %-28s %s\n", "--------------------",
	       "----------------", "----------------", "signed", "----------------------------",
	       "----------------------------", "--------");
	for (size_t i = 0; i < sp_certdb_count(db); i++) {
		const struct sp_certdb_entry *e = sp_certdb_at(db, i);
		char from[32], to[32], *by, *who, *loc;
		X509 *x = NULL;

		if ((e->kind == SP_CERTDB_CA) != a->ca)
			continue;
		if (sp_certdb_load_cert(db, e, &x, NULL, &err) < 0) {
			printf("%-20s (unreadable: %s)\n", e->nickname, err);
			free(err);
			err = NULL;
			continue;
		}
		tok_time(X509_get0_notBefore(x), from, sizeof(from));
		tok_time(X509_get0_notAfter(x), to, sizeof(to));
		by = tok_name(X509_get_issuer_name(x));
		who = tok_self_signed(x) ? sp_xstrdup("Same as issuer") : tok_name(X509_get_subject_name(x));
		loc = a->ca ? sp_xstrdup(trust_text(e->trust)) : location(e->key_locator);
		printf("%-20s %-16s  %-16s  %-5s %-28s %-28s %s\n", e->nickname, from, to,
		       tok_self_signed(x) ? "y" : "n", by, who, loc);
		free(by);
		free(who);
		free(loc);
		X509_free(x);
		n++;
	}
	if (!a->ca && tok_pending_load(db, &p, &np, &err) == 0) {
		for (size_t i = 0; i < np; i++) {
			char *loc = location(p[i].locator);

			printf("%-20s %-16s  %-16s  %-5s %-28s %-28s %s\n", p[i].nickname, "-", "-",
			       "-", "(request pending)", "-", loc);
			free(loc);
		}
		tok_pending_free(p, np);
	} else if (err != NULL) {
		tok_warn("%s", err);
		free(err);
	}
	printf("%zu certificate%s found\n", n, n == 1 ? "" : "s");
	if (np > 0)
		printf("%zu key%s waiting for a certificate\n", np, np == 1 ? "" : "s");
	sp_certdb_free(&db);
	return TOK_OK;
}

static void print_key(BIO *out, EVP_PKEY *pk)
{
	char group[64] = "";
	size_t glen = 0;

	if (EVP_PKEY_is_a(pk, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof(group), &glen))
		BIO_printf(out, "Public Key:          EC %s (%d bits)\n", group, EVP_PKEY_get_bits(pk));
	else
		BIO_printf(out, "Public Key:          %s %d bits\n", EVP_PKEY_get0_type_name(pk),
			   EVP_PKEY_get_bits(pk));
}

static int show_cert(struct tokens_args *a)
{
	const char *nick = a->pos[0];
	const struct sp_certdb_entry *e;
	STACK_OF(X509) *chain = NULL;
	GENERAL_NAMES *sans;
	struct sp_certdb *db;
	BIO *out;
	X509 *x = NULL;
	char from[32], to[32], *s, *err = NULL;
	int rc;

	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	e = tok_db_entry(db, nick);
	if (e == NULL)
		e = sp_certdb_find(db, nick);  /* "Token Label:nickname" */
	if (e == NULL) {
		char *loc = tok_pending_get(db, nick);

		if (loc != NULL) {
			printf("Nickname:            %s\nStatus:              key waiting for its "
			       "certificate (request pending)\nKey location:        %s\n", nick, loc);
			free(loc);
			sp_certdb_free(&db);
			return TOK_OK;
		}
		sp_certdb_free(&db);
		return tok_fail(TOK_ENOTFOUND, "unknown nickname \"%s\" (see tokens list-certs%s)",
				nick, "");
	}
	if (sp_certdb_load_cert(db, e, &x, &chain, &err) < 0) {
		sp_certdb_free(&db);
		return tok_fail_err(TOK_EFAIL, err, nick);
	}
	out = BIO_new_fp(stdout, BIO_NOCLOSE);
	BIO_printf(out, "Nickname:            %s%s\n", e->nickname,
		   e->kind == SP_CERTDB_CA ? " (trusted CA)" : "");
	s = tok_name(X509_get_subject_name(x));
	BIO_printf(out, "Subject:             %s\n", s);
	free(s);
	s = tok_name(X509_get_issuer_name(x));
	BIO_printf(out, "Issuer:              %s\n", s);
	free(s);
	BIO_printf(out, "Serial Number:       ");
	i2a_ASN1_INTEGER(out, X509_get0_serialNumber(x));
	BIO_printf(out, "\n");
	tok_time(X509_get0_notBefore(x), from, sizeof(from));
	tok_time(X509_get0_notAfter(x), to, sizeof(to));
	BIO_printf(out, "Not Before:          %s UTC\nNot After:           %s UTC\n", from, to);
	BIO_printf(out, "Status:              %s\n",
		   X509_cmp_current_time(X509_get0_notAfter(x)) < 0 ? "EXPIRED"
		   : X509_cmp_current_time(X509_get0_notBefore(x)) > 0 ? "not yet valid" : "valid");
	BIO_printf(out, "Self-signed:         %s\n", tok_self_signed(x) ? "yes" : "no");
	sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (sans != NULL) {
		BIO_printf(out, "Subject Alt Names:   ");
		for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
			if (i > 0)
				BIO_printf(out, ", ");
			GENERAL_NAME_print(out, sk_GENERAL_NAME_value(sans, i));
		}
		BIO_printf(out, "\n");
		GENERAL_NAMES_free(sans);
	}
	print_key(out, X509_get0_pubkey(x));
	BIO_printf(out, "Signature Algorithm: %s\n",
		   OBJ_nid2ln(X509_get_signature_nid(x)));
	s = tok_fingerprint(x, EVP_sha1());
	BIO_printf(out, "Fingerprint (SHA-1): %s\n", s);
	free(s);
	s = tok_fingerprint(x, EVP_sha256());
	BIO_printf(out, "Fingerprint (SHA-256): %s\n", s);
	free(s);
	if (sk_X509_num(chain) > 0)
		BIO_printf(out, "Chain:               %d more certificate(s) in %s\n",
			   sk_X509_num(chain), e->cert_file);
	if (e->kind == SP_CERTDB_CERT) {
		if (tok_entry_internal(e)) {
			BIO_printf(out, "Key location:        internal (%s) [%s]\n",
				   SP_CERTDB_INTERNAL_TOKEN, e->key_locator);
		} else {
			char *label = tok_locator_token(e->key_locator);

			BIO_printf(out, "Key location:        token \"%s\" [%s]\n",
				   label != NULL ? label : "?", e->key_locator);
			free(label);
		}
		BIO_printf(out, "Trust flags:         - (server certificate)\n");
	} else {
		BIO_printf(out, "Trust flags:         %s\n", trust_text(e->trust));
	}
	BIO_printf(out, "Certificate file:    %s\n", e->cert_file);
	BIO_free(out);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	sp_certdb_free(&db);
	return TOK_OK;
}

static void unlink_in_db(const struct sp_certdb *db, const char *rel)
{
	char *path = sp_xasprintf("%s/%s", sp_certdb_dir(db), rel);

	if (unlink(path) < 0 && errno != ENOENT)
		tok_warn("%s: %s", path, strerror(errno));
	free(path);
}

static int remove_cert(struct tokens_args *a)
{
	const char *nick = a->pos[0];
	const struct sp_certdb_entry *e;
	struct sp_certdb *db;
	char *err = NULL, *certfile = NULL, *loc = NULL;
	int rc;

	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	e = tok_db_entry(db, nick);
	if (e == NULL) {
		loc = tok_pending_get(db, nick);
		if (loc == NULL) {
			sp_certdb_free(&db);
			return tok_fail(TOK_ENOTFOUND, "unknown nickname \"%s\"", nick);
		}
		if (tok_pending_set(db, nick, NULL, &err) < 0) {
			free(loc);
			sp_certdb_free(&db);
			return tok_fail_err(TOK_EFAIL, err, NULL);
		}
	} else {
		certfile = sp_xstrdup(e->cert_file);
		loc = e->key_locator != NULL ? sp_xstrdup(e->key_locator) : NULL;
		if (sp_certdb_remove(db, nick, &err) < 0) {
			free(certfile);
			free(loc);
			sp_certdb_free(&db);
			return tok_fail_err(TOK_EFAIL, err, NULL);
		}
		/* the index no longer names them: now the files can go */
		unlink_in_db(db, certfile);
	}
	if (loc != NULL && strncmp(loc, "file:", 5) == 0)
		unlink_in_db(db, loc + 5);
	else if (loc != NULL)
		printf("The key stays on its token (%s); delete it there if it is no longer "
		       "needed\n", loc);
	printf("Removed %s\n", nick);
	free(certfile);
	free(loc);
	sp_certdb_free(&db);
	return TOK_OK;
}

const struct tokens_cmd tokens_cmds_cert[] = {
	{"add-selfsign-cert", TO_COMMON | TO_SUBJECT | TO_KEY | TO_DAYS | TO_TOKEN, 1, 1,
	 "add-selfsign-cert --name CN [--org O] [--org-unit OU] [--city L] [--state ST]\n"
	 "       [--country C] [-S DN] [--san DNS:x,IP:y] [--days N] [--key rsa2048|rsa3072|ecp256]\n"
	 "       NICKNAME\n"
	 "Makes a key in the internal token and a self-signed certificate (90 days unless\n"
	 "--days) and adds them as NICKNAME. Without --san the CN is the DNS name.\n",
	 add_selfsign},
	{"renew-selfsign-cert", TO_COMMON | TO_DAYS, 1, 1,
	 "renew-selfsign-cert [--days N] NICKNAME\n"
	 "A new self-signed certificate for the same key, subject and names.\n",
	 renew_selfsign},
	{"add-cert", TO_COMMON | TO_CA | TO_TRUST | TO_TOKEN | TO_FORCE, 2, 2,
	 "add-cert NICKNAME FILE | add-cert -C [--trust server,client] NICKNAME FILE\n"
	 "Adds the certificate in FILE (PEM, leaf then chain; or DER) for the key NICKNAME\n"
	 "(made by request-cert, or on --token LABEL with that label). A certificate whose\n"
	 "public key is not the key's is refused (exit 5). An expired one is added with a\n"
	 "warning. -C adds a trusted CA; --trust says what it may issue (default\n"
	 "server,client; - for none).\n",
	 add_cert},
	{"renew-cert", TO_COMMON | TO_FORCE, 2, 2,
	 "renew-cert NICKNAME FILE\n"
	 "Replaces NICKNAME's certificate by the one in FILE (same key).\n",
	 add_cert},
	{"list-certs", TO_COMMON | TO_CA, 0, 0,
	 "list-certs [-C]\n"
	 "Server certificates (alias, validity, self-signed, issuer, subject, key location:\n"
	 "internal or the token label) and keys waiting for a certificate; -C: trusted CAs.\n",
	 list_certs},
	{"show-cert", TO_COMMON, 1, 1,
	 "show-cert NICKNAME\n"
	 "Details of a certificate: names, validity, key, SHA-1 and SHA-256 fingerprints,\n"
	 "key location, trust flags.\n",
	 show_cert},
	{"remove-cert", TO_COMMON, 1, 1,
	 "remove-cert NICKNAME\n"
	 "Removes NICKNAME from the certdb with its certificate file and, for the internal\n"
	 "token, its key file. Keys on PKCS#11 tokens are left on the token.\n",
	 remove_cert},
	{NULL, 0, 0, 0, NULL, NULL},
};
