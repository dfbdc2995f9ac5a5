/* Making objects on a token: key pairs generated inside it, private keys and
 * certificates imported into it. Private keys always end up CKA_PRIVATE,
 * CKA_SENSITIVE and not CKA_EXTRACTABLE; CKA_ID is the SHA-1 of the public
 * key's SubjectPublicKeyInfo so a key and its certificate pair up. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "pkcs11/p11_int.h"

static const unsigned char oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const unsigned char oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const unsigned char rsa_f4[] = { 0x01, 0x00, 0x01 };

static CK_BBOOL ck_true = CK_TRUE, ck_false = CK_FALSE;

#define ATTR(t, p, l) (CK_ATTRIBUTE){ (t), (void *)(p), (CK_ULONG)(l) }

static int label_free(struct p11_token *tok, CK_SESSION_HANDLE s, const char *nickname,
		      CK_OBJECT_CLASS cls, char **error_r)
{
	CK_OBJECT_HANDLE h;
	size_t count;

	if (p11_find_objects(tok, s, cls, nickname, NULL, 0, &h, 1, &count, error_r) < 0)
		return -1;
	if (count > 0) {
		*error_r = sp_xasprintf("token \"%s\" already has %zu %s labelled \"%s\"",
					tok->label, count,
					cls == CKO_CERTIFICATE ? "certificate(s)" : "private key(s)",
					nickname);
		return -1;
	}
	return 0;
}

static char *rv_error(struct p11_token *tok, CK_RV rv, const char *call)
{
	char *what = sp_xasprintf("token \"%s\": %s", tok->label, call);
	char *e = p11_error(rv, what);

	free(what);
	return e;
}

/* Sets CKA_ID to the public key hash on both halves; a token that refuses
 * keeps the random id it was generated with. */
static void set_hash_id(struct p11_token *tok, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
			CK_OBJECT_HANDLE priv, CK_KEY_TYPE kt)
{
	unsigned char id[20];
	char *err = NULL;
	EVP_PKEY *pk = p11_read_public(tok->fn, s, pub, kt, &err);
	CK_ATTRIBUTE a = ATTR(CKA_ID, id, sizeof(id));
	CK_RV rv;

	if (pk == NULL || p11_pubkey_id(pk, id, &err) < 0) {
		sp_log(SP_LOG_WARN, "p11_keygen_id", "token=\"%s\" error=\"%s\"", tok->label, err);
		free(err);
		EVP_PKEY_free(pk);
		return;
	}
	EVP_PKEY_free(pk);
	rv = tok->fn->C_SetAttributeValue(s, pub, &a, 1);
	if (rv == CKR_OK)
		rv = tok->fn->C_SetAttributeValue(s, priv, &a, 1);
	if (rv != CKR_OK)
		sp_log(SP_LOG_WARN, "p11_keygen_id", "token=\"%s\" error=\"%s\" id=random",
		       tok->label, p11_strerror(rv));
}

struct p11_key *p11_keygen(struct p11_token *tok, enum p11_keygen_type type,
			   const char *nickname, char **error_r)
{
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_ULONG bits = 2048;
	CK_ATTRIBUTE pubt[8], privt[12];
	CK_ULONG npub = 0, npriv = 0;
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s;
	unsigned char id[20];
	struct p11_key *key = NULL;
	size_t nlen = strlen(nickname);
	CK_KEY_TYPE kt = CKK_RSA;
	CK_RV rv;

	if (RAND_bytes(id, sizeof(id)) != 1) {
		*error_r = p11_ossl_error("RAND_bytes");
		return NULL;
	}
	pubt[npub++] = ATTR(CKA_TOKEN, &ck_true, 1);
	pubt[npub++] = ATTR(CKA_PRIVATE, &ck_false, 1);
	pubt[npub++] = ATTR(CKA_VERIFY, &ck_true, 1);
	pubt[npub++] = ATTR(CKA_LABEL, nickname, nlen);
	pubt[npub++] = ATTR(CKA_ID, id, sizeof(id));
	switch (type) {
	case P11_KEYGEN_RSA3072:
		bits = 3072;
		/* fall through */
	case P11_KEYGEN_RSA2048:
		pubt[npub++] = ATTR(CKA_MODULUS_BITS, &bits, sizeof(bits));
		pubt[npub++] = ATTR(CKA_PUBLIC_EXPONENT, rsa_f4, sizeof(rsa_f4));
		break;
	case P11_KEYGEN_EC_P256:
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		kt = CKK_EC;
		pubt[npub++] = ATTR(CKA_EC_PARAMS, oid_p256, sizeof(oid_p256));
		break;
	case P11_KEYGEN_EC_P384:
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		kt = CKK_EC;
		pubt[npub++] = ATTR(CKA_EC_PARAMS, oid_p384, sizeof(oid_p384));
		break;
	default:
		*error_r = sp_xasprintf("unknown key type %d", (int)type);
		return NULL;
	}
	privt[npriv++] = ATTR(CKA_TOKEN, &ck_true, 1);
	privt[npriv++] = ATTR(CKA_PRIVATE, &ck_true, 1);
	privt[npriv++] = ATTR(CKA_SENSITIVE, &ck_true, 1);
	privt[npriv++] = ATTR(CKA_EXTRACTABLE, &ck_false, 1);
	privt[npriv++] = ATTR(CKA_SIGN, &ck_true, 1);
	/* a TLS server key only signs (RSA key exchange is off): nothing else */
	privt[npriv++] = ATTR(CKA_DECRYPT, &ck_false, 1);
	privt[npriv++] = ATTR(CKA_UNWRAP, &ck_false, 1);
	privt[npriv++] = ATTR(CKA_DERIVE, &ck_false, 1);
	privt[npriv++] = ATTR(CKA_LABEL, nickname, nlen);
	privt[npriv++] = ATTR(CKA_ID, id, sizeof(id));

	if (p11_session_get(tok, -1, &s, error_r) < 0)
		return NULL;
	if (label_free(tok, s, nickname, CKO_PRIVATE_KEY, error_r) < 0)
		goto out;
	rv = tok->fn->C_GenerateKeyPair(s, &mech, pubt, npub, privt, npriv, &pub, &priv);
	if (rv != CKR_OK) {
		*error_r = rv_error(tok, rv, mech.mechanism == CKM_EC_KEY_PAIR_GEN
					     ? "C_GenerateKeyPair(CKM_EC_KEY_PAIR_GEN)"
					     : "C_GenerateKeyPair(CKM_RSA_PKCS_KEY_PAIR_GEN)");
		goto out;
	}
	set_hash_id(tok, s, pub, priv, kt);
	key = p11_key_from_handle(tok, s, priv, error_r);
	if (key != NULL)
		sp_log(SP_LOG_INFO, "p11_keygen", "token=\"%s\" label=\"%s\" type=%s bits=%u",
		       tok->label, nickname, kt == CKK_RSA ? "rsa" : "ec", key->bits);
out:
	p11_session_put(tok, s, false);
	return key;
}

/* Big-endian bytes of a BIGNUM parameter, padded to pad bytes if pad > 0.
 * Caller frees with sp_free_secret (some are secret). */
static int bn_param(EVP_PKEY *pkey, const char *name, size_t pad, CK_ATTRIBUTE_TYPE type,
		    CK_ATTRIBUTE *a, char **error_r)
{
	BIGNUM *bn = NULL;
	size_t len;
	unsigned char *buf;

	if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) {
		*error_r = p11_ossl_error(name);
		return -1;
	}
	len = pad > 0 ? pad : (size_t)BN_num_bytes(bn);
	if (len == 0)
		len = 1;
	buf = sp_xmalloc(len);
	if (BN_bn2binpad(bn, buf, (int)len) < 0) {
		BN_clear_free(bn);
		sp_free_secret(buf, len);
		*error_r = sp_xasprintf("%s does not fit in %zu bytes", name, len);
		return -1;
	}
	BN_clear_free(bn);
	*a = ATTR(type, buf, len);
	return 0;
}

static void free_attrs(CK_ATTRIBUTE *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		sp_free_secret(a[i].pValue, a[i].ulValueLen);
}

static int ec_params(EVP_PKEY *pkey, CK_ATTRIBUTE *params, CK_ATTRIBUTE *point, char **error_r)
{
	char group[64];
	unsigned char pt[256], *der = NULL, *p;
	size_t ptlen = 0;
	ASN1_OCTET_STRING *os;
	int nid, len;

	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					   NULL) != 1 ||
	    (nid = OBJ_sn2nid(group)) == NID_undef) {
		*error_r = sp_xstrdup("EC key without a named curve");
		return -1;
	}
	len = i2d_ASN1_OBJECT(OBJ_nid2obj(nid), NULL);
	if (len <= 0) {
		*error_r = p11_ossl_error("curve OID");
		return -1;
	}
	p = der = sp_xmalloc((size_t)len);
	i2d_ASN1_OBJECT(OBJ_nid2obj(nid), &p);
	*params = ATTR(CKA_EC_PARAMS, der, len);
	if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt),
					    &ptlen) != 1) {
		*error_r = p11_ossl_error("EC public point");
		return -1;
	}
	/* CKA_EC_POINT: the point inside a DER OCTET STRING */
	os = ASN1_OCTET_STRING_new();
	if (os == NULL || !ASN1_OCTET_STRING_set(os, pt, (int)ptlen) ||
	    (len = i2d_ASN1_OCTET_STRING(os, NULL)) <= 0) {
		ASN1_OCTET_STRING_free(os);
		*error_r = p11_ossl_error("EC point");
		return -1;
	}
	p = der = sp_xmalloc((size_t)len);
	i2d_ASN1_OCTET_STRING(os, &p);
	ASN1_OCTET_STRING_free(os);
	*point = ATTR(CKA_EC_POINT, der, len);
	return 0;
}

struct p11_key *p11_key_import(struct p11_token *tok, EVP_PKEY *pkey, const char *nickname,
			       const unsigned char *id, size_t id_len, char **error_r)
{
	static const char *const rsa_priv_names[] = {
		OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
		OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
		OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
		OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	};
	static const CK_ATTRIBUTE_TYPE rsa_priv_types[] = {
		CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2,
		CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT,
	};
	CK_OBJECT_CLASS cpriv = CKO_PRIVATE_KEY, cpub = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE owned[10], privt[20], pubt[12];
	size_t nowned = 0, npriv = 0, npub = 0, i;
	unsigned char hid[20];
	CK_KEY_TYPE kt;
	CK_OBJECT_HANDLE hpriv, hpub;
	CK_SESSION_HANDLE s;
	struct p11_key *key = NULL;
	CK_RV rv;

	memset(owned, 0, sizeof(owned));
	if (EVP_PKEY_is_a(pkey, "RSA"))
		kt = CKK_RSA;
	else if (EVP_PKEY_is_a(pkey, "EC"))
		kt = CKK_EC;
	else {
		*error_r = sp_xstrdup("only RSA and EC keys can be imported");
		return NULL;
	}
	if (id == NULL) {
		if (p11_pubkey_id(pkey, hid, error_r) < 0)
			return NULL;
		id = hid;
		id_len = sizeof(hid);
	}
	privt[npriv++] = ATTR(CKA_CLASS, &cpriv, sizeof(cpriv));
	privt[npriv++] = ATTR(CKA_KEY_TYPE, &kt, sizeof(kt));
	privt[npriv++] = ATTR(CKA_TOKEN, &ck_true, 1);
	privt[npriv++] = ATTR(CKA_PRIVATE, &ck_true, 1);
	privt[npriv++] = ATTR(CKA_SENSITIVE, &ck_true, 1);
	privt[npriv++] = ATTR(CKA_EXTRACTABLE, &ck_false, 1);
	privt[npriv++] = ATTR(CKA_SIGN, &ck_true, 1);
	privt[npriv++] = ATTR(CKA_DECRYPT, &ck_false, 1);
	privt[npriv++] = ATTR(CKA_UNWRAP, &ck_false, 1);
	privt[npriv++] = ATTR(CKA_DERIVE, &ck_false, 1);
	privt[npriv++] = ATTR(CKA_LABEL, nickname, strlen(nickname));
	privt[npriv++] = ATTR(CKA_ID, id, id_len);
	pubt[npub++] = ATTR(CKA_CLASS, &cpub, sizeof(cpub));
	pubt[npub++] = ATTR(CKA_KEY_TYPE, &kt, sizeof(kt));
	pubt[npub++] = ATTR(CKA_TOKEN, &ck_true, 1);
	pubt[npub++] = ATTR(CKA_PRIVATE, &ck_false, 1);
	pubt[npub++] = ATTR(CKA_VERIFY, &ck_true, 1);
	pubt[npub++] = ATTR(CKA_LABEL, nickname, strlen(nickname));
	pubt[npub++] = ATTR(CKA_ID, id, id_len);
	if (kt == CKK_RSA) {
		for (i = 0; i < sizeof(rsa_priv_names) / sizeof(rsa_priv_names[0]); i++) {
			if (bn_param(pkey, rsa_priv_names[i], 0, rsa_priv_types[i], &owned[nowned],
				     error_r) < 0)
				goto out;
			privt[npriv++] = owned[nowned++];
		}
		pubt[npub++] = owned[0];
		pubt[npub++] = owned[1];
	} else {
		size_t field = ((size_t)EVP_PKEY_get_bits(pkey) + 7) / 8;

		nowned = 2;  /* free_attrs skips what ec_params left NULL */
		if (ec_params(pkey, &owned[0], &owned[1], error_r) < 0)
			goto out;
		if (bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, field, CKA_VALUE, &owned[2],
			     error_r) < 0)
			goto out;
		nowned = 3;
		privt[npriv++] = owned[0];
		privt[npriv++] = owned[2];
		pubt[npub++] = owned[0];
		pubt[npub++] = owned[1];
	}
	if (p11_session_get(tok, -1, &s, error_r) < 0)
		goto out;
	if (label_free(tok, s, nickname, CKO_PRIVATE_KEY, error_r) < 0) {
		p11_session_put(tok, s, false);
		goto out;
	}
	rv = tok->fn->C_CreateObject(s, privt, npriv, &hpriv);
	if (rv != CKR_OK) {
		*error_r = rv_error(tok, rv, "C_CreateObject(private key)");
		p11_session_put(tok, s, false);
		goto out;
	}
	rv = tok->fn->C_CreateObject(s, pubt, npub, &hpub);
	if (rv != CKR_OK) {
		*error_r = rv_error(tok, rv, "C_CreateObject(public key)");
		(void)tok->fn->C_DestroyObject(s, hpriv);
		p11_session_put(tok, s, false);
		goto out;
	}
	key = p11_key_from_handle(tok, s, hpriv, error_r);
	p11_session_put(tok, s, false);
	if (key != NULL)
		sp_log(SP_LOG_INFO, "p11_key_import", "token=\"%s\" label=\"%s\" bits=%u",
		       tok->label, nickname, key->bits);
out:
	free_attrs(owned, nowned);
	return key;
}

static int der_ok(int len, char **error_r)
{
	if (len <= 0) {
		*error_r = p11_ossl_error("DER encoding of the certificate");
		return -1;
	}
	return 0;
}

int p11_cert_import(struct p11_token *tok, X509 *cert, const char *nickname,
		    const unsigned char *id, size_t id_len, char **error_r)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE ctype = CKC_X_509;
	unsigned char *value = NULL, *subject = NULL, *issuer = NULL, *serial = NULL, hid[20];
	int vlen, slen, ilen, snlen;
	CK_ATTRIBUTE t[11];
	CK_ULONG n = 0;
	CK_OBJECT_HANDLE h;
	CK_SESSION_HANDLE s;
	EVP_PKEY *pk;
	CK_RV rv;
	int ret = -1;

	if (id == NULL) {
		pk = X509_get0_pubkey(cert);
		if (pk == NULL || p11_pubkey_id(pk, hid, error_r) < 0) {
			if (pk == NULL)
				*error_r = sp_xstrdup("certificate without a usable public key");
			return -1;
		}
		id = hid;
		id_len = sizeof(hid);
	}
	vlen = i2d_X509(cert, &value);
	slen = i2d_X509_NAME(X509_get_subject_name(cert), &subject);
	ilen = i2d_X509_NAME(X509_get_issuer_name(cert), &issuer);
	snlen = i2d_ASN1_INTEGER(X509_get_serialNumber(cert), &serial);
	if (der_ok(vlen, error_r) < 0 || der_ok(slen, error_r) < 0 || der_ok(ilen, error_r) < 0 ||
	    der_ok(snlen, error_r) < 0)
		goto out;
	t[n++] = ATTR(CKA_CLASS, &cls, sizeof(cls));
	t[n++] = ATTR(CKA_CERTIFICATE_TYPE, &ctype, sizeof(ctype));
	t[n++] = ATTR(CKA_TOKEN, &ck_true, 1);
	t[n++] = ATTR(CKA_PRIVATE, &ck_false, 1);
	t[n++] = ATTR(CKA_LABEL, nickname, strlen(nickname));
	t[n++] = ATTR(CKA_ID, id, id_len);
	t[n++] = ATTR(CKA_SUBJECT, subject, slen);
	t[n++] = ATTR(CKA_ISSUER, issuer, ilen);
	t[n++] = ATTR(CKA_SERIAL_NUMBER, serial, snlen);
	t[n++] = ATTR(CKA_VALUE, value, vlen);
	if (p11_session_get(tok, -1, &s, error_r) < 0)
		goto out;
	if (label_free(tok, s, nickname, CKO_CERTIFICATE, error_r) == 0) {
		rv = tok->fn->C_CreateObject(s, t, n, &h);
		if (rv != CKR_OK)
			*error_r = rv_error(tok, rv, "C_CreateObject(certificate)");
		else
			ret = 0;
	}
	p11_session_put(tok, s, false);
out:
	OPENSSL_free(value);
	OPENSSL_free(subject);
	OPENSSL_free(issuer);
	OPENSSL_free(serial);
	return ret;
}
