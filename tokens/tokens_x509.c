/* tokens CLI: keys of the internal software token (encrypted PKCS#8 files in
 * the certdb), subjects and SANs from the command line, self-signed
 * certificates, certificate files in and out, and the small formatting
 * helpers the listings share. OpenSSL 3 EVP APIs only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/xalloc.h"
#include "tokens/tokens.h"

EVP_PKEY *tok_keygen_soft(const char *kind, char **error_r)
{
	EVP_PKEY *pkey = NULL;

	if (kind == NULL || strcmp(kind, "rsa2048") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else if (strcmp(kind, "rsa3072") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	else if (strcmp(kind, "ecp256") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (strcmp(kind, "ecp384") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	else {
		*error_r = sp_xasprintf("--key %s: use rsa2048, rsa3072, ecp256 or ecp384", kind);
		return NULL;
	}
	if (pkey == NULL)
		*error_r = tok_ssl_error();
	return pkey;
}

int tok_keygen_p11_type(const char *kind, enum p11_keygen_type *t_r)
{
	if (kind == NULL || strcmp(kind, "rsa2048") == 0)
		*t_r = P11_KEYGEN_RSA2048;
	else if (strcmp(kind, "rsa3072") == 0)
		*t_r = P11_KEYGEN_RSA3072;
	else if (strcmp(kind, "ecp256") == 0)
		*t_r = P11_KEYGEN_EC_P256;
	else if (strcmp(kind, "ecp384") == 0)
		*t_r = P11_KEYGEN_EC_P384;
	else
		return -1;
	return 0;
}

static char *bio_text(BIO *bio, size_t *len_r)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	char *s = sp_xmalloc((size_t)n + 1);

	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	*len_r = (size_t)n;
	return s;
}

int tok_key_to_p8(EVP_PKEY *pkey, const char *pass, char **pem_r, size_t *len_r,
		  char **error_r)
{
	BIO *bio = BIO_new(BIO_s_secmem());

	if (bio == NULL)
		bio = BIO_new(BIO_s_mem());
	/* PKCS#5 v2: PBKDF2 + AES-256-CBC, as the daemons and openssl pkcs8 -v2 read it */
	if (bio == NULL || !PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(), NULL, 0,
							  NULL, (void *)pass)) {
		*error_r = tok_ssl_error();
		BIO_free(bio);
		return -1;
	}
	*pem_r = bio_text(bio, len_r);
	BIO_free(bio);
	return 0;
}

int tok_key_load_file(const struct sp_certdb *db, const char *locator, const char *pass,
		      EVP_PKEY **pkey_r)
{
	char *path = sp_xasprintf("%s/%s", sp_certdb_dir(db), locator + 5);
	BIO *bio = BIO_new_file(path, "r");
	EVP_PKEY *pkey;
	unsigned long e;

	if (bio == NULL) {
		tok_fail(TOK_ENOTFOUND, "key file %s: cannot open", path);
		ERR_clear_error();
		free(path);
		return TOK_ENOTFOUND;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)pass);
	BIO_free(bio);
	if (pkey == NULL) {
		e = ERR_peek_last_error();
		ERR_clear_error();
		(void)e;
		tok_fail(TOK_EPASSWORD, "key %s: cannot decrypt it: wrong passphrase for the "
			 "internal token (\"%s\" in the password file)?", path,
			 SP_CERTDB_INTERNAL_TOKEN);
		free(path);
		return TOK_EPASSWORD;
	}
	free(path);
	*pkey_r = pkey;
	return TOK_OK;
}

static int add_rdn(X509_NAME *n, const char *field, const char *value, char **error_r)
{
	if (value == NULL)
		return 0;
	if (!X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, (const unsigned char *)value,
					-1, -1, 0)) {
		*error_r = sp_xasprintf("subject %s=\"%s\": %s", field, value, "not accepted");
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* "CN=a,O=b\,c,C=us" (RFC 4514 order, most specific first) or "/C=us/O=b/CN=a". */
static X509_NAME *parse_dn(const char *dn, char **error_r)
{
	X509_NAME *n = X509_NAME_new();
	char *copy = sp_xstrdup(dn), *rdns[64];
	size_t count = 0;
	char sep = dn[0] == '/' ? '/' : ',';
	char *p = copy + (sep == '/'), *start = p, *w = p;

	for (;; p++) {
		if (*p == '\\' && p[1] != '\0') {
			*w++ = *++p;
			continue;
		}
		if (*p == sep || *p == '\0') {
			bool end = *p == '\0';

			*w = '\0';
			if (count == 64) {
				*error_r = sp_xstrdup("-S: more than 64 name parts");
				goto fail;
			}
			while (*start == ' ')
				start++;
			if (*start != '\0')
				rdns[count++] = start;
			if (end)
				break;
			start = w = p + 1;
			continue;
		}
		*w++ = *p;
	}
	for (size_t i = 0; i < count; i++) {
		/* DER order is least specific first: reverse RFC 4514's order */
		char *r = rdns[sep == ',' ? count - 1 - i : i];
		char *eq = strchr(r, '=');

		if (eq == NULL || eq == r) {
			*error_r = sp_xasprintf("-S: \"%s\" is not TYPE=value", r);
			goto fail;
		}
		*eq = '\0';
		while (eq > r && eq[-1] == ' ')
			*--eq = '\0';
		if (add_rdn(n, r, eq + 1 + strspn(eq + 1, " "), error_r) < 0)
			goto fail;
	}
	free(copy);
	if (X509_NAME_entry_count(n) == 0) {
		*error_r = sp_xstrdup("-S: empty name");
		X509_NAME_free(n);
		return NULL;
	}
	return n;
fail:
	free(copy);
	X509_NAME_free(n);
	return NULL;
}

X509_NAME *tok_subject(const struct tokens_args *a, char **error_r)
{
	X509_NAME *n;

	if (a->dn != NULL)
		return parse_dn(a->dn, error_r);
	if (a->cn == NULL) {
		*error_r = sp_xstrdup("give the subject: --name CN [--org ..] or -S DN");
		return NULL;
	}
	if (a->country != NULL && strlen(a->country) != 2) {
		*error_r = sp_xstrdup("--country takes a two-letter code (ISO 3166)");
		return NULL;
	}
	n = X509_NAME_new();
	if (add_rdn(n, "C", a->country, error_r) < 0 || add_rdn(n, "ST", a->state, error_r) < 0 ||
	    add_rdn(n, "L", a->city, error_r) < 0 || add_rdn(n, "O", a->org, error_r) < 0 ||
	    add_rdn(n, "OU", a->ou, error_r) < 0 || add_rdn(n, "CN", a->cn, error_r) < 0) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

static bool looks_like_host(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 253)
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '*'))
			return false;
	return true;
}

X509_EXTENSION *tok_san_ext(const struct tokens_args *a, const char *default_dns,
			    char **error_r)
{
	X509_EXTENSION *ext;
	char *list = NULL;

	for (size_t i = 0; i < a->nsans; i++) {
		char *tmp = list == NULL ? sp_xstrdup(a->sans[i])
					 : sp_xasprintf("%s,%s", list, a->sans[i]);
		free(list);
		list = tmp;
	}
	if (list == NULL) {
		if (!looks_like_host(default_dns))
			return NULL;
		list = sp_xasprintf("DNS:%s", default_dns);
	}
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, list);
	if (ext == NULL) {
		char *why = tok_ssl_error();
		*error_r = sp_xasprintf("--san %s: %s (write DNS:name,IP:addr,email:x)", list, why);
		free(why);
	}
	free(list);
	return ext;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = ext != NULL && X509_add_ext(x, ext, -1);

	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int random_serial(ASN1_INTEGER *serial)
{
	unsigned char raw[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	raw[0] &= 0x7f;  /* RFC 5280 4.1.2.2: positive, at most 20 octets */
	raw[0] |= 0x40;
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	ok = bn != NULL && BN_to_ASN1_INTEGER(bn, serial) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

X509 *tok_selfsign(EVP_PKEY *pkey, X509_NAME *subject, X509_EXTENSION *san, int days,
		   char **error_r)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	bool rsa = EVP_PKEY_is_a(pkey, "RSA");

	if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    random_serial(X509_get_serialNumber(x)) < 0 || !X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, subject) || !X509_set_pubkey(x, pkey) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL)
		goto fail;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, &ctx, NID_key_usage,
		    rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature") < 0 ||
	    add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0)
		goto fail;
	if (san != NULL && !X509_add_ext(x, san, -1))
		goto fail;
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto fail;
	return x;
fail:
	*error_r = tok_ssl_error();
	X509_free(x);
	return NULL;
}

int tok_read_certs(const char *path, X509 **leaf_r, STACK_OF(X509) **chain_r, char **error_r)
{
	BIO *bio = BIO_new_file(path, "rb");
	STACK_OF(X509) *chain;
	X509 *leaf, *x;

	if (bio == NULL) {
		*error_r = sp_xasprintf("%s: cannot open", path);
		ERR_clear_error();
		return -1;
	}
	leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (leaf == NULL) {
		ERR_clear_error();
		(void)BIO_reset(bio);
		leaf = d2i_X509_bio(bio, NULL);
		BIO_free(bio);
		if (leaf == NULL) {
			*error_r = sp_xasprintf("%s: no certificate in it (PEM or DER)", path);
			ERR_clear_error();
			return -1;
		}
		*leaf_r = leaf;
		if (chain_r != NULL)
			*chain_r = sk_X509_new_null();
		return 0;
	}
	chain = sk_X509_new_null();
	while (sk_X509_num(chain) < 16 && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		sk_X509_push(chain, x);
	ERR_clear_error();
	BIO_free(bio);
	*leaf_r = leaf;
	if (chain_r != NULL)
		*chain_r = chain;
	else
		sk_X509_pop_free(chain, X509_free);
	return 0;
}

char *tok_certs_pem(X509 *leaf, STACK_OF(X509) *chain, size_t *len_r)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s;

	PEM_write_bio_X509(bio, leaf);
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++)
		PEM_write_bio_X509(bio, sk_X509_value(chain, i));
	s = bio_text(bio, len_r);
	BIO_free(bio);
	return s;
}

void tok_time(const ASN1_TIME *t, char *buf, size_t cap)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) {
		snprintf(buf, cap, "-");
		return;
	}
	strftime(buf, cap, "%Y/%m/%d %H:%M", &tm);
}

char *tok_name(const X509_NAME *n)
{
	BIO *bio = BIO_new(BIO_s_mem());
	size_t len;
	char *s;

	X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	s = bio_text(bio, &len);
	BIO_free(bio);
	return s;
}

char *tok_name_cn(const X509_NAME *n)
{
	int i = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	char *s;

	if (i < 0)
		return tok_name(n);
	if (ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i))) < 0)
		return tok_name(n);
	s = sp_xstrdup((char *)utf8);
	OPENSSL_free(utf8);
	return s;
}

char *tok_fingerprint(X509 *x, const EVP_MD *md)
{
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char *s;

	if (!X509_digest(x, md, buf, &n))
		return sp_xstrdup("?");
	s = sp_xmalloc(n * 3 + 1);
	for (unsigned i = 0; i < n; i++)
		snprintf(s + i * 3, 4, "%02X%s", buf[i], i + 1 < n ? ":" : "");
	return s;
}

bool tok_self_signed(X509 *x)
{
	return X509_self_signed(x, 0) == 1;
}

int tok_store_cert(struct sp_certdb *db, const char *nickname, X509 *leaf,
		   STACK_OF(X509) *chain, const char *locator, char **error_r)
{
	const struct sp_certdb_entry *old = sp_certdb_find(db, nickname);
	struct sp_certdb_entry e = {0};
	char *rel, *pem;
	size_t len;
	int ret;

	/* a renewal writes over the same file name */
	rel = old != NULL && old->kind == SP_CERTDB_CERT ? sp_xstrdup(old->cert_file)
							 : tok_db_relpath(db, "certs", nickname, ".pem");
	pem = tok_certs_pem(leaf, chain, &len);
	ret = sp_certdb_write_file(db, rel, pem, len, 0644, error_r);
	free(pem);
	if (ret == 0) {
		e.kind = SP_CERTDB_CERT;
		e.nickname = (char *)nickname;
		e.cert_file = rel;
		e.key_locator = (char *)locator;
		ret = sp_certdb_put(db, &e, error_r);
	}
	free(rel);
	return ret;
}
