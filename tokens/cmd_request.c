/* tokens request-cert: a key for a new certificate (on a PKCS#11 token,
 * where it is made non-extractable and signs the request itself; or in the
 * internal token) and its PKCS#10 request. The key is recorded as pending
 * until add-cert brings its certificate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/xalloc.h"
#include "tokens/tokens.h"

#define P11_SIGN_TIMEOUT_MS 30000

int tok_token_keygen(const struct tokens_args *a, struct sp_certdb *db, const char *nick,
		     struct p11_ctx **ctx_r, struct p11_token **tok_r, struct p11_key **key_r,
		     char **locator_r)
{
	struct sp_pinfile *pins = NULL;
	enum p11_keygen_type type;
	const unsigned char *id;
	char *err = NULL;
	size_t id_len;
	int rc;

	*ctx_r = NULL;
	*tok_r = NULL;
	*key_r = NULL;
	*locator_r = NULL;
	if (tok_keygen_p11_type(a->key, &type) < 0)
		return tok_fail(TOK_EUSAGE, "--key %s: use rsa2048, rsa3072, ecp256 or ecp384", a->key);
	pins = tok_pins_load(a, true, &rc);
	if (pins == NULL)
		return rc;
	if ((*ctx_r = tok_p11_ctx(a, &rc)) == NULL ||
	    (*tok_r = tok_p11_open(*ctx_r, a->token, pins, &rc)) == NULL)
		goto fail;
	*key_r = p11_keygen(*tok_r, type, nick, &err);
	if (*key_r == NULL) {
		rc = tok_fail_err(strstr(err, "already") != NULL ? TOK_EREFUSED : TOK_ETOKEN, err,
				  "key generation");
		goto fail;
	}
	id = p11_key_id(*key_r, &id_len);
	*locator_r = p11_uri_format(p11_token_label(*tok_r), nick, id, id_len, "private");
	if (tok_pending_set(db, nick, *locator_r, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, "certdb");
		goto fail;
	}
	sp_pinfile_free(&pins);
	return TOK_OK;
fail:
	free(*locator_r);
	*locator_r = NULL;
	p11_key_free(key_r);
	p11_token_close(tok_r);
	p11_ctx_free(ctx_r);
	sp_pinfile_free(&pins);
	return rc;
}

/* Signs req through the token: the TBS part is encoded here, hashed, and the
 * digest signed by the token's key (which never leaves it). */
static int req_sign_p11(X509_REQ *req, struct p11_key *key, char **error_r)
{
	bool ec = p11_key_type(key) == P11_KEY_EC;
	unsigned char md[EVP_MAX_MD_SIZE], *tbs = NULL, *sig = NULL;
	unsigned int mdlen = 0;
	ASN1_BIT_STRING *bits = NULL;
	X509_ALGOR *alg = X509_ALGOR_new();
	size_t siglen = p11_sign_max_len(key);
	int n, ret = -1;

	if (alg == NULL ||
	    !X509_ALGOR_set0(alg, OBJ_nid2obj(ec ? NID_ecdsa_with_SHA256 : NID_sha256WithRSAEncryption),
			     ec ? V_ASN1_UNDEF : V_ASN1_NULL, NULL) ||
	    !X509_REQ_set1_signature_algo(req, alg))
		goto ssl_fail;
	n = i2d_re_X509_REQ_tbs(req, &tbs);
	if (n <= 0 || !EVP_Digest(tbs, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
		goto ssl_fail;
	sig = sp_xmalloc(siglen);
	if (p11_sign(key, ec ? P11_SIGN_ECDSA : P11_SIGN_RSA_PKCS1, NID_sha256, -1, md, mdlen, sig,
		     &siglen, P11_SIGN_TIMEOUT_MS, error_r) < 0)
		goto out;
	bits = ASN1_BIT_STRING_new();
	if (bits == NULL || !ASN1_BIT_STRING_set(bits, sig, (int)siglen))
		goto ssl_fail;
	/* a signature is whole octets: no unused bits */
	bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	X509_REQ_set0_signature(req, bits);
	bits = NULL;
	if (X509_REQ_verify(req, p11_key_public(key)) != 1) {
		char *why = tok_ssl_error();
		*error_r = sp_xasprintf("the token's signature does not verify: %s", why);
		free(why);
		goto out;
	}
	ret = 0;
	goto out;
ssl_fail:
	*error_r = tok_ssl_error();
out:
	ASN1_BIT_STRING_free(bits);
	X509_ALGOR_free(alg);
	OPENSSL_free(tbs);
	free(sig);
	return ret;
}

static int write_req(const struct tokens_args *a, X509_REQ *req)
{
	BIO *out = a->out != NULL ? BIO_new_file(a->out, "wb") : BIO_new_fp(stdout, BIO_NOCLOSE);
	int ok;

	if (out == NULL)
		return tok_fail(TOK_EFAIL, "%s: cannot create", a->out);
	ok = a->ascii ? PEM_write_bio_X509_REQ(out, req) : i2d_X509_REQ_bio(out, req);
	if (BIO_flush(out) != 1)
		ok = 0;
	BIO_free(out);
	if (!ok) {
		ERR_clear_error();
		return tok_fail(TOK_EFAIL, "%s: write failed", a->out != NULL ? a->out : "stdout");
	}
	return TOK_OK;
}

static int request_cert(struct tokens_args *a)
{
	const char *nick = a->pos[0];
	struct sp_pinfile *pins = NULL;
	struct sp_certdb *db;
	struct p11_ctx *ctx = NULL;
	struct p11_token *tok = NULL;
	struct p11_key *key = NULL;
	X509_EXTENSION *san = NULL;
	X509_NAME *subject = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *pkey = NULL;
	char *err = NULL, *loc = NULL, *cn = NULL, *pem = NULL, *keyrel = NULL;
	size_t pemlen = 0;
	int rc;

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
	cn = tok_name_cn(subject);
	san = tok_san_ext(a, cn, &err);
	if (san == NULL && err != NULL) {
		rc = tok_fail_err(TOK_EUSAGE, err, NULL);
		goto out;
	}
	req = X509_REQ_new();
	if (req == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, subject)) {
		rc = tok_fail_err(TOK_EFAIL, tok_ssl_error(), NULL);
		goto out;
	}
	if (san != NULL) {
		STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();

		sk_X509_EXTENSION_push(exts, san);
		if (!X509_REQ_add_extensions(req, exts)) {
			sk_X509_EXTENSION_free(exts);
			rc = tok_fail_err(TOK_EFAIL, tok_ssl_error(), NULL);
			goto out;
		}
		sk_X509_EXTENSION_free(exts);
	}
	if (a->token != NULL) {
		if ((rc = tok_token_keygen(a, db, nick, &ctx, &tok, &key, &loc)) != TOK_OK)
			goto out;
		if (!X509_REQ_set_pubkey(req, p11_key_public(key))) {
			rc = tok_fail_err(TOK_EFAIL, tok_ssl_error(), NULL);
			goto out;
		}
		if (req_sign_p11(req, key, &err) < 0) {
			rc = tok_fail_err(TOK_ETOKEN, err, "signing the request on the token");
			goto out;
		}
	} else {
		const char *pass;

		pins = tok_pins_load(a, true, &rc);
		if (pins == NULL || (pass = tok_internal_pass(pins, &rc)) == NULL)
			goto out;
		pkey = tok_keygen_soft(a->key, &err);
		if (pkey == NULL) {
			rc = tok_fail_err(TOK_EUSAGE, err, NULL);
			goto out;
		}
		keyrel = tok_db_relpath(db, "keys", nick, ".p8");
		if (tok_key_to_p8(pkey, pass, &pem, &pemlen, &err) < 0 ||
		    sp_certdb_write_file(db, keyrel, pem, pemlen, 0600, &err) < 0) {
			rc = tok_fail_err(TOK_EFAIL, err, "key");
			goto out;
		}
		loc = sp_xasprintf("file:%s", keyrel);
		if (tok_pending_set(db, nick, loc, &err) < 0) {
			rc = tok_fail_err(TOK_EFAIL, err, "certdb");
			goto out;
		}
		if (!X509_REQ_set_pubkey(req, pkey) || !X509_REQ_sign(req, pkey, EVP_sha256())) {
			rc = tok_fail_err(TOK_EFAIL, tok_ssl_error(), "signing the request");
			goto out;
		}
	}
	if ((rc = write_req(a, req)) != TOK_OK)
		goto out;
	fprintf(stderr, "tokens: key \"%s\" made in %s%s%s; it waits for its certificate "
		"(tokens add-cert %s FILE)\n", nick, a->token != NULL ? "token \"" : "the internal token",
		a->token != NULL ? a->token : "", a->token != NULL ? "\"" : "", nick);
	rc = TOK_OK;
out:
	if (pem != NULL)
		sp_free_secret(pem, pemlen);
	EVP_PKEY_free(pkey);
	X509_REQ_free(req);
	X509_NAME_free(subject);
	X509_EXTENSION_free(san);
	p11_key_free(&key);
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	sp_certdb_free(&db);
	free(loc);
	free(cn);
	free(keyrel);
	return rc;
}

const struct tokens_cmd tokens_cmds_request[] = {
	{"request-cert", TO_COMMON | TO_SUBJECT | TO_KEY | TO_OUT | TO_FORMAT | TO_TOKEN, 1, 1,
	 "request-cert {--name CN [--org O] [--org-unit OU] [--city L] [--state ST]\n"
	 "       [--country C] | -S DN} [--san DNS:x,IP:y] [--key rsa2048|rsa3072|ecp256|ecp384]\n"
	 "       [--token LABEL] [-F ascii] [-o FILE] NICKNAME\n"
	 "Makes the key NICKNAME and a PKCS#10 request for it (DER, or PEM with -F ascii;\n"
	 "to FILE or stdout). With --token the key is generated on that PKCS#11 token\n"
	 "(private, sensitive, not extractable) and the token signs the request; its PIN\n"
	 "is the token's line in the -W file. Otherwise the key goes in the internal\n"
	 "token. The key waits in the certdb for its certificate: tokens add-cert\n"
	 "NICKNAME FILE.\n",
	 request_cert},
	{NULL, 0, 0, 0, NULL, NULL},
};
