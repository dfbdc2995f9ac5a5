/* Finding private keys and certificates on a token by CKA_LABEL and/or
 * CKA_ID (two or more matches is an error, never a silent pick), reading
 * public keys back as EVP_PKEY, and reading key attributes. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include "common/xalloc.h"
#include "pkcs11/p11_int.h"

#define FIND_BATCH 16
#define FIND_COUNT_MAX 100000
#define ATTR_MAX (64u << 10)

int p11_find_objects(struct p11_token *tok, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
		     const char *label, const unsigned char *id, size_t id_len,
		     CK_OBJECT_HANDLE *out, size_t max, size_t *count_r, char **error_r)
{
	CK_CERTIFICATE_TYPE ctype = CKC_X_509;
	CK_ATTRIBUTE tmpl[4];
	CK_OBJECT_HANDLE batch[FIND_BATCH];
	CK_ULONG n = 0, got, i;
	size_t count = 0;
	CK_RV rv;

	tmpl[n].type = CKA_CLASS;
	tmpl[n].pValue = &cls;
	tmpl[n++].ulValueLen = sizeof(cls);
	if (cls == CKO_CERTIFICATE) {
		tmpl[n].type = CKA_CERTIFICATE_TYPE;
		tmpl[n].pValue = &ctype;
		tmpl[n++].ulValueLen = sizeof(ctype);
	}
	if (label != NULL) {
		tmpl[n].type = CKA_LABEL;
		tmpl[n].pValue = (void *)label;
		tmpl[n++].ulValueLen = strlen(label);
	}
	if (id != NULL) {
		tmpl[n].type = CKA_ID;
		tmpl[n].pValue = (void *)id;
		tmpl[n++].ulValueLen = id_len;
	}
	rv = tok->fn->C_FindObjectsInit(s, tmpl, n);
	if (rv != CKR_OK) {
		*error_r = p11_error(rv, "C_FindObjectsInit");
		return -1;
	}
	/* count them all (bounded), so an ambiguity can say how many */
	do {
		rv = tok->fn->C_FindObjects(s, batch, FIND_BATCH, &got);
		if (rv != CKR_OK)
			break;
		for (i = 0; i < got; i++, count++)
			if (count < max)
				out[count] = batch[i];
	} while (got > 0 && count < FIND_COUNT_MAX);
	(void)tok->fn->C_FindObjectsFinal(s);
	if (rv != CKR_OK) {
		*error_r = p11_error(rv, "C_FindObjects");
		return -1;
	}
	*count_r = count;
	return 0;
}

int p11_get_attr(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
		 CK_ATTRIBUTE_TYPE type, unsigned char **val_r, size_t *len_r, char **error_r)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv;

	rv = fn->C_GetAttributeValue(s, o, &a, 1);
	if (rv == CKR_OK && (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > ATTR_MAX))
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
	if (rv == CKR_OK) {
		a.pValue = sp_xmalloc(a.ulValueLen + 1);
		rv = fn->C_GetAttributeValue(s, o, &a, 1);
		if (rv != CKR_OK)
			free(a.pValue);
	}
	if (rv != CKR_OK) {
		char *what = sp_xasprintf("C_GetAttributeValue(0x%lx)", (unsigned long)type);
		*error_r = p11_error(rv, what);
		free(what);
		return -1;
	}
	*val_r = a.pValue;
	*len_r = a.ulValueLen;
	return 0;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, char **error_r)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (params == NULL || pctx == NULL || EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		*error_r = p11_ossl_error("building the public key");
		pkey = NULL;
	}
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(pctx);
	return pkey;
}

/* CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 v2.40
 * 2.3.3); some modules give the raw point. Accept both. */
static void unwrap_ec_point(const unsigned char *v, size_t len, const unsigned char **pt_r,
			    size_t *ptlen_r)
{
	const unsigned char *p = v;
	ASN1_OCTET_STRING *os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)len);

	*pt_r = v;
	*ptlen_r = len;
	if (os != NULL && p == v + len) {
		/* the content starts inside v, after the tag and length */
		size_t clen = (size_t)ASN1_STRING_length(os);
		*pt_r = v + (len - clen);
		*ptlen_r = clen;
	}
	ASN1_OCTET_STRING_free(os);
	ERR_clear_error();
}

EVP_PKEY *p11_read_public(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
			  CK_KEY_TYPE kt, char **error_r)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	unsigned char *a = NULL, *b = NULL;
	size_t alen, blen;
	EVP_PKEY *pkey = NULL;
	BIGNUM *n = NULL, *e = NULL;

	if (kt == CKK_RSA) {
		if (p11_get_attr(fn, s, o, CKA_MODULUS, &a, &alen, error_r) < 0 ||
		    p11_get_attr(fn, s, o, CKA_PUBLIC_EXPONENT, &b, &blen, error_r) < 0)
			goto out;
		n = BN_bin2bn(a, (int)alen, NULL);
		e = BN_bin2bn(b, (int)blen, NULL);
		if (n == NULL || e == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
			*error_r = p11_ossl_error("RSA public key");
			goto out;
		}
		pkey = pkey_from_params("RSA", bld, error_r);
	} else if (kt == CKK_EC) {
		const unsigned char *p, *pt;
		ASN1_OBJECT *oid;
		size_t ptlen;
		int nid;

		if (p11_get_attr(fn, s, o, CKA_EC_PARAMS, &a, &alen, error_r) < 0 ||
		    p11_get_attr(fn, s, o, CKA_EC_POINT, &b, &blen, error_r) < 0)
			goto out;
		p = a;
		oid = d2i_ASN1_OBJECT(NULL, &p, (long)alen);
		nid = oid != NULL ? OBJ_obj2nid(oid) : NID_undef;
		ASN1_OBJECT_free(oid);
		ERR_clear_error();
		if (nid == NID_undef) {
			*error_r = sp_xstrdup("CKA_EC_PARAMS is not a named curve we know");
			goto out;
		}
		unwrap_ec_point(b, blen, &pt, &ptlen);
		if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
						     OBJ_nid2sn(nid), 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, ptlen)) {
			*error_r = p11_ossl_error("EC public key");
			goto out;
		}
		pkey = pkey_from_params("EC", bld, error_r);
	} else {
		*error_r = sp_xasprintf("key type 0x%lx is neither RSA nor EC", (unsigned long)kt);
	}
out:
	BN_free(n);
	BN_free(e);
	free(a);
	free(b);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

int p11_pubkey_id(EVP_PKEY *pkey, unsigned char id[20], char **error_r)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(pkey, &der);

	if (len <= 0) {
		*error_r = p11_ossl_error("encoding the public key");
		return -1;
	}
	SHA1(der, (size_t)len, id);
	OPENSSL_free(der);
	return 0;
}

static CK_KEY_TYPE get_key_type(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o)
{
	CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
	CK_ATTRIBUTE a = { CKA_KEY_TYPE, &kt, sizeof(kt) };

	if (fn->C_GetAttributeValue(s, o, &a, 1) != CKR_OK)
		return (CK_KEY_TYPE)-1;
	return kt;
}

/* EC private keys carry no point: take the public key from the public key
 * object with the same CKA_ID, else from the certificate with that id. */
static EVP_PKEY *public_by_id(struct p11_token *tok, CK_SESSION_HANDLE s, CK_KEY_TYPE kt,
			      const unsigned char *id, size_t id_len, char **error_r)
{
	CK_OBJECT_HANDLE h;
	size_t count;

	if (p11_find_objects(tok, s, CKO_PUBLIC_KEY, NULL, id, id_len, &h, 1, &count,
			     error_r) < 0)
		return NULL;
	if (count > 0)
		return p11_read_public(tok->fn, s, h, kt, error_r);
	if (p11_find_objects(tok, s, CKO_CERTIFICATE, NULL, id, id_len, &h, 1, &count,
			     error_r) < 0)
		return NULL;
	if (count > 0) {
		unsigned char *der;
		const unsigned char *p;
		size_t len;
		X509 *x;
		EVP_PKEY *pk;

		if (p11_get_attr(tok->fn, s, h, CKA_VALUE, &der, &len, error_r) < 0)
			return NULL;
		p = der;
		x = d2i_X509(NULL, &p, (long)len);
		free(der);
		pk = x != NULL ? X509_get_pubkey(x) : NULL;
		X509_free(x);
		if (pk == NULL)
			*error_r = p11_ossl_error("certificate with the key's CKA_ID");
		return pk;
	}
	*error_r = sp_xstrdup("no public key object or certificate with the key's CKA_ID");
	return NULL;
}

struct p11_key *p11_key_from_handle(struct p11_token *tok, CK_SESSION_HANDLE s,
				    CK_OBJECT_HANDLE priv, char **error_r)
{
	struct p11_key *key = sp_xcalloc(1, sizeof(*key));
	CK_KEY_TYPE kt = get_key_type(tok->fn, s, priv);
	unsigned char *v;
	size_t len;

	key->tok = tok;
	key->priv = priv;
	if (kt != CKK_RSA && kt != CKK_EC) {
		*error_r = sp_xasprintf("key type 0x%lx is neither RSA nor EC", (unsigned long)kt);
		goto fail;
	}
	key->type = kt == CKK_RSA ? P11_KEY_RSA : P11_KEY_EC;
	if (p11_get_attr(tok->fn, s, priv, CKA_ID, &v, &len, error_r) == 0) {
		key->id = v;
		key->id_len = len;
	} else {
		free(*error_r);
		*error_r = NULL;
	}
	if (p11_get_attr(tok->fn, s, priv, CKA_LABEL, &v, &len, error_r) == 0) {
		v[len] = '\0';
		key->label = (char *)v;
	} else {
		free(*error_r);
		*error_r = NULL;
	}
	if (kt == CKK_RSA)
		key->pub = p11_read_public(tok->fn, s, priv, kt, error_r);
	else if (key->id_len > 0)
		key->pub = public_by_id(tok, s, kt, key->id, key->id_len, error_r);
	else
		*error_r = sp_xstrdup("EC key without CKA_ID: cannot find its public half");
	if (key->pub == NULL)
		goto fail;
	key->bits = (unsigned)EVP_PKEY_get_bits(key->pub);
	key->sig_max = (size_t)EVP_PKEY_get_size(key->pub);
	return key;
fail:
	p11_key_free(&key);
	return NULL;
}

static char *describe(const char *label, const unsigned char *id, size_t id_len)
{
	char hex[2 * 64 + 4];
	size_t i, n = id_len > 64 ? 64 : id_len;

	for (i = 0; id != NULL && i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	hex[id != NULL ? 2 * n : 0] = '\0';
	if (label != NULL && id != NULL)
		return sp_xasprintf("label \"%s\" id %s", label, hex);
	if (label != NULL)
		return sp_xasprintf("label \"%s\"", label);
	return sp_xasprintf("id %s", hex);
}

struct p11_key *p11_key_find(struct p11_token *tok, const char *label, const unsigned char *id,
			     size_t id_len, char **error_r)
{
	CK_OBJECT_HANDLE h;
	CK_SESSION_HANDLE s;
	struct p11_key *key = NULL;
	size_t count;
	char *what;

	if (label == NULL && id == NULL) {
		*error_r = sp_xstrdup("a key is found by label or id; neither given");
		return NULL;
	}
	if (p11_session_get(tok, -1, &s, error_r) < 0)
		return NULL;
	what = describe(label, id, id_len);
	if (p11_find_objects(tok, s, CKO_PRIVATE_KEY, label, id, id_len, &h, 1, &count,
			     error_r) < 0)
		goto out;
	if (count == 0) {
		*error_r = sp_xasprintf("token \"%s\": no private key with %s%s", tok->label, what,
					tok->logged_in ? "" : " (not logged in: private "
					"objects are hidden)");
		goto out;
	}
	if (count > 1) {
		*error_r = sp_xasprintf("token \"%s\": %zu private keys match %s; name one by "
					"CKA_ID (a pkcs11: URI with id=)", tok->label, count, what);
		goto out;
	}
	key = p11_key_from_handle(tok, s, h, error_r);
	if (key == NULL) {
		char *e = *error_r;
		*error_r = sp_xasprintf("token \"%s\": key with %s: %s", tok->label, what, e);
		free(e);
	}
out:
	free(what);
	p11_session_put(tok, s, false);
	return key;
}

void p11_key_free(struct p11_key **keyp)
{
	struct p11_key *key = *keyp;

	if (key == NULL)
		return;
	EVP_PKEY_free(key->pub);
	free(key->id);
	free(key->label);
	free(key);
	*keyp = NULL;
}

enum p11_key_type p11_key_type(const struct p11_key *key)
{
	return key->type;
}

unsigned p11_key_bits(const struct p11_key *key)
{
	return key->bits;
}

EVP_PKEY *p11_key_public(const struct p11_key *key)
{
	return key->pub;
}

const unsigned char *p11_key_id(const struct p11_key *key, size_t *len_r)
{
	*len_r = key->id_len;
	return key->id;
}

CK_OBJECT_HANDLE p11_key_handle(const struct p11_key *key)
{
	return key->priv;
}

int p11_key_attributes(struct p11_key *key, struct p11_key_attrs *attrs, char **error_r)
{
	CK_BBOOL v[7] = { 0 };
	CK_ATTRIBUTE a[7] = {
		{ CKA_TOKEN, &v[0], 1 }, { CKA_PRIVATE, &v[1], 1 }, { CKA_SENSITIVE, &v[2], 1 },
		{ CKA_EXTRACTABLE, &v[3], 1 }, { CKA_ALWAYS_SENSITIVE, &v[4], 1 },
		{ CKA_NEVER_EXTRACTABLE, &v[5], 1 }, { CKA_SIGN, &v[6], 1 },
	};
	CK_SESSION_HANDLE s;
	CK_RV rv;

	if (p11_session_get(key->tok, -1, &s, error_r) < 0)
		return -1;
	rv = key->tok->fn->C_GetAttributeValue(s, key->priv, a, 7);
	p11_session_put(key->tok, s, false);
	/* CKR_ATTRIBUTE_TYPE_INVALID etc. still fill in the others; those left
	 * unreadable read as false */
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE) {
		*error_r = p11_error(rv, "C_GetAttributeValue");
		return -1;
	}
#define B(i) (a[i].ulValueLen == 1 && v[i] == CK_TRUE)
	attrs->token = B(0);
	attrs->private_ = B(1);
	attrs->sensitive = B(2);
	attrs->extractable = B(3);
	attrs->always_sensitive = B(4);
	attrs->never_extractable = B(5);
	attrs->sign = B(6);
#undef B
	return 0;
}

int p11_cert_find(struct p11_token *tok, const char *label, const unsigned char *id,
		  size_t id_len, X509 **cert_r, char **error_r)
{
	CK_OBJECT_HANDLE h;
	CK_SESSION_HANDLE s;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t count, len;
	char *what;
	int ret = -1;

	if (label == NULL && id == NULL) {
		*error_r = sp_xstrdup("a certificate is found by label or id; neither given");
		return -1;
	}
	if (p11_session_get(tok, -1, &s, error_r) < 0)
		return -1;
	what = describe(label, id, id_len);
	if (p11_find_objects(tok, s, CKO_CERTIFICATE, label, id, id_len, &h, 1, &count,
			     error_r) < 0)
		goto out;
	if (count != 1) {
		*error_r = count == 0
			? sp_xasprintf("token \"%s\": no certificate with %s", tok->label, what)
			: sp_xasprintf("token \"%s\": %zu certificates match %s", tok->label,
				       count, what);
		goto out;
	}
	if (p11_get_attr(tok->fn, s, h, CKA_VALUE, &der, &len, error_r) < 0)
		goto out;
	p = der;
	*cert_r = d2i_X509(NULL, &p, (long)len);
	if (*cert_r == NULL) {
		*error_r = p11_ossl_error("certificate CKA_VALUE");
		goto out;
	}
	ret = 0;
out:
	free(der);
	free(what);
	p11_session_put(tok, s, false);
	return ret;
}
