/* The NCP model (DESIGN.md, keyd and accel): a software key (file: locator)
 * that keyd also copies into a crypto accelerator at start, as session
 * objects (CKA_TOKEN false: gone when keyd closes the session or exits;
 * private, sensitive, not extractable), so that the device does the math
 * while the key's home stays the software certdb. The copies live on one
 * session keyd opens for them and holds until it closes the token. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "accel/keyd_int.h"
#include "common/log.h"
#include "common/xalloc.h"

#define NCP_LABEL_PREFIX "sealpost-ncp:"
#define NCP_MAX_ATTRS 24

static CK_BBOOL ck_true = CK_TRUE, ck_false = CK_FALSE;

/* Attribute values we allocated; secret ones are wiped on release. */
struct attrs {
	CK_ATTRIBUTE a[NCP_MAX_ATTRS];
	size_t n;
	void *owned[NCP_MAX_ATTRS];
	size_t owned_len[NCP_MAX_ATTRS];
	size_t nowned;
};

static void add(struct attrs *t, CK_ATTRIBUTE_TYPE type, const void *v, size_t len)
{
	t->a[t->n].type = type;
	t->a[t->n].pValue = (void *)v;
	t->a[t->n].ulValueLen = (CK_ULONG)len;
	t->n++;
}

static void add_owned(struct attrs *t, CK_ATTRIBUTE_TYPE type, void *v, size_t len)
{
	add(t, type, v, len);
	t->owned[t->nowned] = v;
	t->owned_len[t->nowned++] = len;
}

static void attrs_release(struct attrs *t)
{
	for (size_t i = 0; i < t->nowned; i++) {
		OPENSSL_cleanse(t->owned[i], t->owned_len[i]);
		free(t->owned[i]);
	}
	t->nowned = 0;
}

/* A big-number parameter of pkey, big-endian, left-padded to pad bytes (0: none). */
static int add_bn(struct attrs *t, EVP_PKEY *pkey, const char *param, size_t pad,
		  CK_ATTRIBUTE_TYPE type, char **error_r)
{
	BIGNUM *bn = NULL;
	unsigned char *buf;
	size_t len;

	if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) {
		*error_r = sp_xasprintf("key parameter %s missing", param);
		return -1;
	}
	len = pad > 0 ? pad : (size_t)BN_num_bytes(bn);
	if (len == 0)
		len = 1;
	buf = sp_xmalloc(len);
	if (BN_bn2binpad(bn, buf, (int)len) < 0) {
		BN_clear_free(bn);
		free(buf);
		*error_r = sp_xasprintf("key parameter %s too large", param);
		return -1;
	}
	BN_clear_free(bn);
	add_owned(t, type, buf, len);
	return 0;
}

/* CKA_EC_PARAMS (DER OID of the named curve) and CKA_EC_POINT (DER OCTET
 * STRING around the uncompressed point), PKCS#11 v2.40 2.3.3. */
static int add_ec_public(struct attrs *priv, struct attrs *pub, EVP_PKEY *pkey, char **error_r)
{
	char group[64];
	unsigned char point[256], *der = NULL, *params;
	size_t plen, hdr;
	int nid, dlen;

	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					   NULL) != 1 ||
	    (nid = OBJ_txt2nid(group)) == NID_undef ||
	    (dlen = i2d_ASN1_OBJECT(OBJ_nid2obj(nid), &der)) <= 0) {
		*error_r = sp_xstrdup("EC key without a named curve");
		return -1;
	}
	params = sp_xmalloc((size_t)dlen);
	memcpy(params, der, (size_t)dlen);
	OPENSSL_free(der);
	add_owned(priv, CKA_EC_PARAMS, params, (size_t)dlen);
	params = sp_xmalloc((size_t)dlen);
	memcpy(params, priv->a[priv->n - 1].pValue, (size_t)dlen);
	add_owned(pub, CKA_EC_PARAMS, params, (size_t)dlen);
	if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
					    sizeof(point), &plen) != 1 || plen > 250) {
		*error_r = sp_xstrdup("EC key: cannot encode the public point");
		return -1;
	}
	der = sp_xmalloc(plen + 3);
	der[0] = 0x04;  /* OCTET STRING */
	if (plen < 128) {
		der[1] = (unsigned char)plen;
		hdr = 2;
	} else {
		der[1] = 0x81;
		der[2] = (unsigned char)plen;
		hdr = 3;
	}
	memcpy(der + hdr, point, plen);
	add_owned(pub, CKA_EC_POINT, der, plen + hdr);
	return 0;
}

/* Removes session objects left with this label by an earlier, failed load. */
static void destroy_old(struct keyd_token *kt, const char *label)
{
	CK_FUNCTION_LIST *fn = kt->ncp_fn;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_LABEL, (void *)label, (CK_ULONG)strlen(label) },
		{ CKA_TOKEN, &ck_false, 1 },
	};
	CK_OBJECT_HANDLE h[8];
	CK_ULONG n = 0;

	if (fn->C_FindObjectsInit(kt->ncp_session, tmpl, 2) != CKR_OK)
		return;
	(void)fn->C_FindObjects(kt->ncp_session, h, 8, &n);
	(void)fn->C_FindObjectsFinal(kt->ncp_session);
	for (CK_ULONG i = 0; i < n; i++)
		(void)fn->C_DestroyObject(kt->ncp_session, h[i]);
}

struct p11_key *keyd_ncp_load(struct keyd_token *kt, EVP_PKEY *pkey,
			      const uint8_t id[ACCEL_KEY_ID_LEN], const char *nickname,
			      char **error_r)
{
	static const char *const rsa_names[] = {
		OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
		OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
		OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
		OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	};
	static const CK_ATTRIBUTE_TYPE rsa_types[] = {
		CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2,
		CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT,
	};
	CK_OBJECT_CLASS cpriv = CKO_PRIVATE_KEY, cpub = CKO_PUBLIC_KEY;
	CK_KEY_TYPE kt_type;
	CK_OBJECT_HANDLE hpriv, hpub;
	CK_FUNCTION_LIST *fn = kt->ncp_fn;
	struct attrs priv = { .n = 0 }, pub = { .n = 0 };
	struct p11_key *key = NULL;
	char *label = sp_xasprintf(NCP_LABEL_PREFIX "%s", nickname);
	CK_RV rv;

	if (!kt->ncp_session_open) {
		*error_r = sp_xstrdup("no NCP session on the accelerator");
		goto out;
	}
	kt_type = EVP_PKEY_is_a(pkey, "RSA") ? CKK_RSA : CKK_EC;
	add(&priv, CKA_CLASS, &cpriv, sizeof(cpriv));
	add(&priv, CKA_KEY_TYPE, &kt_type, sizeof(kt_type));
	add(&priv, CKA_TOKEN, &ck_false, 1);     /* a session object: never stored */
	add(&priv, CKA_PRIVATE, &ck_true, 1);
	add(&priv, CKA_SENSITIVE, &ck_true, 1);
	add(&priv, CKA_EXTRACTABLE, &ck_false, 1);
	add(&priv, CKA_SIGN, &ck_true, 1);
	add(&priv, CKA_LABEL, label, strlen(label));
	add(&priv, CKA_ID, id, ACCEL_KEY_ID_LEN);
	add(&pub, CKA_CLASS, &cpub, sizeof(cpub));
	add(&pub, CKA_KEY_TYPE, &kt_type, sizeof(kt_type));
	add(&pub, CKA_TOKEN, &ck_false, 1);
	add(&pub, CKA_VERIFY, &ck_true, 1);
	add(&pub, CKA_LABEL, label, strlen(label));
	add(&pub, CKA_ID, id, ACCEL_KEY_ID_LEN);
	if (kt_type == CKK_RSA) {
		for (size_t i = 0; i < sizeof(rsa_names) / sizeof(rsa_names[0]); i++) {
			if (add_bn(&priv, pkey, rsa_names[i], 0, rsa_types[i], error_r) < 0)
				goto out;
		}
		add(&pub, CKA_MODULUS, priv.a[9].pValue, priv.a[9].ulValueLen);
		add(&pub, CKA_PUBLIC_EXPONENT, priv.a[10].pValue, priv.a[10].ulValueLen);
	} else {
		if (add_ec_public(&priv, &pub, pkey, error_r) < 0 ||
		    add_bn(&priv, pkey, OSSL_PKEY_PARAM_PRIV_KEY,
			   ((size_t)EVP_PKEY_get_bits(pkey) + 7) / 8, CKA_VALUE, error_r) < 0)
			goto out;
	}
	destroy_old(kt, label);
	rv = fn->C_CreateObject(kt->ncp_session, priv.a, priv.n, &hpriv);
	if (rv != CKR_OK) {
		*error_r = p11_error(rv, "C_CreateObject(session private key)");
		goto out;
	}
	rv = fn->C_CreateObject(kt->ncp_session, pub.a, pub.n, &hpub);
	if (rv != CKR_OK) {
		*error_r = p11_error(rv, "C_CreateObject(session public key)");
		(void)fn->C_DestroyObject(kt->ncp_session, hpriv);
		goto out;
	}
	key = p11_key_find(kt->tok, label, id, ACCEL_KEY_ID_LEN, error_r);
	if (key == NULL) {
		(void)fn->C_DestroyObject(kt->ncp_session, hpriv);
		(void)fn->C_DestroyObject(kt->ncp_session, hpub);
	}
out:
	attrs_release(&priv);
	attrs_release(&pub);
	free(label);
	return key;
}

int keyd_ncp_session_open(struct keyd *kd, struct keyd_token *kt, char **error_r)
{
	CK_FUNCTION_LIST *fn = p11_token_functions(kt->tok);
	struct p11_slot_info *slots = NULL;
	size_t n = 0;
	CK_RV rv = CKR_SLOT_ID_INVALID;

	if (p11_ctx_slots(kd->p11, &slots, &n, error_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		/* the token's own slot: same module, same label, not disabled */
		if (slots[i].disabled || !slots[i].token_present ||
		    p11_module_functions(slots[i].module) != fn ||
		    strcmp(slots[i].label, p11_token_label(kt->tok)) != 0)
			continue;
		/* logged in already: login is per application (PKCS#11 v2.40 5.6) */
		rv = fn->C_OpenSession(slots[i].slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
				       NULL, &kt->ncp_session);
		break;
	}
	free(slots);
	if (rv != CKR_OK) {
		*error_r = sp_xasprintf("accelerator \"%s\": %s", p11_token_label(kt->tok),
					p11_strerror(rv));
		return -1;
	}
	kt->ncp_fn = fn;
	kt->ncp_session_open = true;
	return 0;
}

void keyd_ncp_session_close(struct keyd_token *kt)
{
	if (!kt->ncp_session_open)
		return;
	/* the session objects (key copies) go with it */
	(void)kt->ncp_fn->C_CloseSession(kt->ncp_session);
	kt->ncp_session_open = false;
}
