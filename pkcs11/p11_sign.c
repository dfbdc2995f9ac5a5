/* Private-key signatures on a token, for keyd's worker threads: CKM_RSA_PKCS
 * over a DigestInfo built here, CKM_RSA_PKCS_PSS on the digest, and
 * CKM_ECDSA on the digest with the raw r||s turned into the DER
 * ECDSA-Sig-Value that TLS carries (RFC 8446 4.2.3, RFC 4492 5.4). */
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/objects.h>

#include "common/xalloc.h"
#include "pkcs11/p11_int.h"

struct digest_alg {
	int nid;
	size_t len;
	CK_MECHANISM_TYPE hash;
	CK_RSA_PKCS_MGF_TYPE mgf;
	const unsigned char *prefix;  /* RFC 8017 9.2 note 1 */
	size_t prefix_len;
};

static const unsigned char prefix_sha1[] = {
	0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
};
static const unsigned char prefix_sha224[] = {
	0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04,
	0x05, 0x00, 0x04, 0x1c,
};
static const unsigned char prefix_sha256[] = {
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
	0x05, 0x00, 0x04, 0x20,
};
static const unsigned char prefix_sha384[] = {
	0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
	0x05, 0x00, 0x04, 0x30,
};
static const unsigned char prefix_sha512[] = {
	0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
	0x05, 0x00, 0x04, 0x40,
};

static const struct digest_alg digest_algs[] = {
	{ NID_sha1, 20, CKM_SHA_1, CKG_MGF1_SHA1, prefix_sha1, sizeof(prefix_sha1) },
	{ NID_sha224, 28, CKM_SHA224, CKG_MGF1_SHA224, prefix_sha224, sizeof(prefix_sha224) },
	{ NID_sha256, 32, CKM_SHA256, CKG_MGF1_SHA256, prefix_sha256, sizeof(prefix_sha256) },
	{ NID_sha384, 48, CKM_SHA384, CKG_MGF1_SHA384, prefix_sha384, sizeof(prefix_sha384) },
	{ NID_sha512, 64, CKM_SHA512, CKG_MGF1_SHA512, prefix_sha512, sizeof(prefix_sha512) },
	/* TLS 1.0/1.1 RSA: 36 bytes signed as they are, no DigestInfo */
	{ NID_md5_sha1, 36, 0, 0, NULL, 0 },
};

static const struct digest_alg *digest_alg(int nid, size_t len, char **error_r)
{
	size_t i;

	for (i = 0; i < sizeof(digest_algs) / sizeof(digest_algs[0]); i++) {
		if (digest_algs[i].nid != nid)
			continue;
		if (digest_algs[i].len != len) {
			*error_r = sp_xasprintf("digest is %zu bytes; %s makes %zu", len,
						OBJ_nid2sn(nid), digest_algs[i].len);
			return NULL;
		}
		return &digest_algs[i];
	}
	*error_r = sp_xasprintf("digest %s not supported for signing", OBJ_nid2sn(nid));
	return NULL;
}

int p11_digest_info(int md_nid, const unsigned char *digest, size_t digest_len,
		    unsigned char **out_r, size_t *out_len_r, char **error_r)
{
	const struct digest_alg *d = digest_alg(md_nid, digest_len, error_r);

	if (d == NULL)
		return -1;
	*out_len_r = d->prefix_len + digest_len;
	*out_r = sp_xmalloc(*out_len_r);
	if (d->prefix_len > 0)
		memcpy(*out_r, d->prefix, d->prefix_len);
	memcpy(*out_r + d->prefix_len, digest, digest_len);
	return 0;
}

int p11_ecdsa_raw_to_der(const unsigned char *raw, size_t raw_len, unsigned char *out,
			 size_t *out_len, char **error_r)
{
	ECDSA_SIG *sig;
	BIGNUM *r, *s;
	unsigned char *p = out;
	int len;

	if (raw_len == 0 || raw_len % 2 != 0 || raw_len > 2 * 66) {
		*error_r = sp_xasprintf("ECDSA signature from the token is %zu bytes; want r||s",
					raw_len);
		return -1;
	}
	/* BN_bin2bn drops leading zero bytes; i2d adds the 0x00 that keeps a
	 * high bit from reading as negative: both are right by construction */
	r = BN_bin2bn(raw, (int)(raw_len / 2), NULL);
	s = BN_bin2bn(raw + raw_len / 2, (int)(raw_len / 2), NULL);
	sig = ECDSA_SIG_new();
	if (r == NULL || s == NULL || sig == NULL || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		*error_r = p11_ossl_error("ECDSA_SIG");
		return -1;
	}
	len = i2d_ECDSA_SIG(sig, NULL);
	if (len <= 0 || (size_t)len > *out_len) {
		ECDSA_SIG_free(sig);
		*error_r = sp_xasprintf("ECDSA signature needs %d bytes, buffer has %zu", len,
					*out_len);
		return -1;
	}
	len = i2d_ECDSA_SIG(sig, &p);
	ECDSA_SIG_free(sig);
	*out_len = (size_t)len;
	return 0;
}

size_t p11_sign_max_len(const struct p11_key *key)
{
	return key->sig_max;
}

/* A session in one of these states is replaced rather than given back. */
static bool session_broken(CK_RV rv)
{
	return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_OPERATION_ACTIVE || rv == CKR_DEVICE_REMOVED;
}

int p11_sign(struct p11_key *key, enum p11_sign_scheme scheme, int md_nid, int pss_salt_len,
	     const unsigned char *digest, size_t digest_len, unsigned char *sig,
	     size_t *sig_len, int timeout_ms, char **error_r)
{
	const struct digest_alg *d = digest_alg(md_nid, digest_len, error_r);
	struct p11_token *tok = key->tok;
	CK_RSA_PKCS_PSS_PARAMS pss;
	CK_MECHANISM mech = { 0, NULL, 0 };
	unsigned char *input = NULL, raw[2 * 66];
	size_t input_len;
	CK_ULONG out_len;
	CK_SESSION_HANDLE s;
	CK_RV rv;
	const char *call = "C_SignInit";

	if (d == NULL)
		return -1;
	switch (scheme) {
	case P11_SIGN_RSA_PKCS1:
		if (key->type != P11_KEY_RSA)
			goto wrong_type;
		mech.mechanism = CKM_RSA_PKCS;
		if (p11_digest_info(md_nid, digest, digest_len, &input, &input_len, error_r) < 0)
			return -1;
		break;
	case P11_SIGN_RSA_PSS:
		if (key->type != P11_KEY_RSA)
			goto wrong_type;
		if (d->hash == 0) {
			*error_r = sp_xstrdup("RSA-PSS needs a single hash, not MD5+SHA1");
			return -1;
		}
		pss.hashAlg = d->hash;
		pss.mgf = d->mgf;
		pss.sLen = pss_salt_len < 0 ? d->len : (CK_ULONG)pss_salt_len;
		mech.mechanism = CKM_RSA_PKCS_PSS;
		mech.pParameter = &pss;
		mech.ulParameterLen = sizeof(pss);
		break;
	case P11_SIGN_ECDSA:
		if (key->type != P11_KEY_EC)
			goto wrong_type;
		mech.mechanism = CKM_ECDSA;
		break;
	default:
		*error_r = sp_xasprintf("unknown signature scheme %d", (int)scheme);
		return -1;
	}
	if (*sig_len < key->sig_max) {
		*error_r = sp_xasprintf("signature buffer %zu bytes, need %zu", *sig_len,
					key->sig_max);
		free(input);
		return -1;
	}
	if (p11_session_get(tok, timeout_ms, &s, error_r) < 0) {
		free(input);
		return -1;
	}
	rv = tok->fn->C_SignInit(s, &mech, key->priv);
	if (rv == CKR_OK) {
		call = "C_Sign";
		if (scheme == P11_SIGN_ECDSA) {
			out_len = 2 * (((CK_ULONG)key->bits + 7) / 8);
			rv = tok->fn->C_Sign(s, (CK_BYTE *)digest, digest_len, raw, &out_len);
		} else {
			out_len = *sig_len;
			rv = tok->fn->C_Sign(s, input != NULL ? input : (CK_BYTE *)digest,
					     input != NULL ? input_len : digest_len, sig, &out_len);
		}
	}
	p11_session_put(tok, s, session_broken(rv));
	free(input);
	if (rv != CKR_OK) {
		char *what = sp_xasprintf("token \"%s\": %s(%s)", tok->label, call,
					  p11_mech_name(mech.mechanism));
		*error_r = p11_error(rv, what);
		free(what);
		return -1;
	}
	if (scheme == P11_SIGN_ECDSA)
		return p11_ecdsa_raw_to_der(raw, out_len, sig, sig_len, error_r);
	*sig_len = out_len;
	return 0;
wrong_type:
	*error_r = sp_xasprintf("scheme %d does not fit a %s key", (int)scheme,
				key->type == P11_KEY_RSA ? "RSA" : "EC");
	return -1;
}
