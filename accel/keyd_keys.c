/* keyd's key loading: every certdb "cert" entry whose key lives in the
 * internal software token (file: locator, encrypted PKCS#8 PEM) is decrypted
 * with the sslpassword.conf passphrase, checked against its certificate and
 * handed to the engine under its key id. pkcs11: keys come with the pkcs11
 * backend. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "accel/keyd_int.h"
#include "accel/keyd_proto.h"
#include "certdb/certdb.h"
#include "common/log.h"
#include "common/xalloc.h"

#define KEY_FILE_MAX (256u << 10)

struct pass_state {
	const char *pass;
	bool asked;
};

/* pem_password_cb: hands OpenSSL the passphrase and notes that the file
 * was encrypted. */
static int pass_cb(char *buf, int size, int rwflag, void *u)
{
	struct pass_state *ps = u;
	size_t len = strlen(ps->pass);

	ps->asked = true;
	if (len > (size_t)size)
		return -1;
	memcpy(buf, ps->pass, len);
	return (int)len;
}

static char *ssl_reason(void)
{
	unsigned long err = ERR_peek_last_error();
	char buf[200];

	if (err == 0)
		return sp_xstrdup("no OpenSSL reason");
	ERR_error_string_n(err, buf, sizeof(buf));
	ERR_clear_error();
	return sp_xstrdup(buf);
}

static EVP_PKEY *read_key(const char *path, const char *pass, char **error_r)
{
	struct pass_state ps = { pass, false };
	EVP_PKEY *pkey;
	BIO *bio;

	ERR_clear_error();
	bio = BIO_new_file(path, "r");
	if (bio == NULL) {
		char *why = ssl_reason();

		*error_r = sp_xasprintf("%s: cannot open: %s", path, why);
		free(why);
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, pass_cb, &ps, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL) {
		char *why = ssl_reason();

		*error_r = ps.asked ? sp_xasprintf("%s: cannot decrypt the key (wrong passphrase for "
						   "\"%s\" in the password file?): %s",
						   path, SP_CERTDB_INTERNAL_TOKEN, why)
				    : sp_xasprintf("%s: no PEM private key: %s", path, why);
		free(why);
		return NULL;
	}
	if (!ps.asked)
		sp_log(SP_LOG_WARN, "key_not_encrypted", "file=\"%s\"", path);
	return pkey;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int load_one(struct accel_engine *eng, struct accel_backend *soft,
		    const struct sp_certdb *db, const struct sp_certdb_entry *e, const char *pass,
		    char **error_r)
{
	uint8_t id[ACCEL_KEY_ID_LEN];
	char idhex[2 * ACCEL_KEY_ID_LEN + 1];
	enum accel_key_type type;
	struct accel_key *key;
	EVP_PKEY *pkey = NULL;
	X509 *leaf = NULL;
	char *path, *why = NULL;
	void *bkey;
	int ret = -1;

	if (sp_certdb_load_cert(db, e, &leaf, NULL, &why) < 0) {
		*error_r = sp_xasprintf("%s: %s", e->nickname, why);
		free(why);
		return -1;
	}
	path = sp_xasprintf("%s/%s", sp_certdb_dir(db), e->key_locator + strlen("file:"));
	pkey = read_key(path, pass, &why);
	if (pkey == NULL) {
		*error_r = sp_xasprintf("%s: %s", e->nickname, why);
		goto out;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), pkey) != 1) {
		ERR_clear_error();
		*error_r = sp_xasprintf("%s: the certificate %s does not match the key %s",
					e->nickname, e->cert_file, path);
		goto out;
	}
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		type = ACCEL_KEY_RSA;
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		type = ACCEL_KEY_EC;
	} else {
		*error_r = sp_xasprintf("%s: key type %s is not supported (RSA or EC)", e->nickname,
					EVP_PKEY_get0_type_name(pkey));
		goto out;
	}
	if (keyd_key_id(X509_get0_pubkey(leaf), id) < 0) {
		*error_r = sp_xasprintf("%s: cannot encode the public key", e->nickname);
		goto out;
	}
	hex(id, sizeof(id), idhex);
	if (accel_engine_find_key(eng, id) != NULL) {
		/* one key behind two certificates (a renewal): served once */
		sp_log(SP_LOG_INFO, "key_shared", "nickname=\"%s\" key_id=%s", e->nickname, idhex);
		ret = 0;
		goto out;
	}
	key = accel_engine_add_key(eng, id, e->nickname, type, (unsigned)EVP_PKEY_get_bits(pkey),
				   &why);
	if (key == NULL) {
		*error_r = why;
		why = NULL;
		goto out;
	}
	bkey = accel_soft_key(pkey);
	if (bkey == NULL || accel_key_add_placement(key, soft, bkey, &why) < 0) {
		*error_r = why != NULL ? why : sp_xstrdup("cannot reference the key");
		why = NULL;
		EVP_PKEY_free(bkey);
		goto out;
	}
	sp_log(SP_LOG_INFO, "key_loaded", "nickname=\"%s\" type=%s bits=%d key_id=%s placement=soft",
	       e->nickname, type == ACCEL_KEY_RSA ? "RSA" : "EC", EVP_PKEY_get_bits(pkey), idhex);
	ret = 0;
out:
	ERR_clear_error();
	free(why);
	free(path);
	EVP_PKEY_free(pkey);
	X509_free(leaf);
	return ret;
}

int keyd_load_keys(struct accel_engine *eng, struct accel_backend *soft, const char *certdb_dir,
		   const char *pinfile_path, char **error_r)
{
	struct sp_pinfile *pf = NULL;
	struct sp_certdb *db;
	const char *pass = NULL;
	size_t nfile = 0;
	int ret = -1;

	db = sp_certdb_open(certdb_dir, error_r);
	if (db == NULL)
		return -1;
	for (size_t i = 0; i < sp_certdb_count(db); i++) {
		const struct sp_certdb_entry *e = sp_certdb_at(db, i);

		if (e->kind == SP_CERTDB_CERT && strncmp(e->key_locator, "file:", 5) == 0)
			nfile++;
		else if (e->kind == SP_CERTDB_CERT)
			sp_log(SP_LOG_WARN, "key_skipped",
			       "nickname=\"%s\" reason=\"pkcs11 keys need the pkcs11 backend\"",
			       e->nickname);
	}
	if (nfile > 0) {
		pf = sp_pinfile_load(pinfile_path, error_r);
		if (pf == NULL)
			goto out;
		pass = sp_pinfile_get(pf, SP_CERTDB_INTERNAL_TOKEN);
		if (pass == NULL) {
			*error_r = sp_xasprintf("%s: no entry for \"%s\", needed for the software keys",
						pinfile_path, SP_CERTDB_INTERNAL_TOKEN);
			goto out;
		}
	}
	for (size_t i = 0; i < sp_certdb_count(db); i++) {
		const struct sp_certdb_entry *e = sp_certdb_at(db, i);

		if (e->kind != SP_CERTDB_CERT || strncmp(e->key_locator, "file:", 5) != 0)
			continue;
		if (load_one(eng, soft, db, e, pass, error_r) < 0)
			goto out;
	}
	ret = 0;
out:
	sp_pinfile_free(&pf);
	sp_certdb_free(&db);
	return ret;
}
