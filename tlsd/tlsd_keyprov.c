/* The "sealpost-keyd" OpenSSL 3 provider that tlsd workers load next to
 * "default": key management for RSA and EC keys that hold only the public
 * half plus a key id, and signature operations that send the digest to keyd
 * (tlsd_keyclient.c) instead of touching a private key. libssl uses it for
 * TLS 1.2 and 1.3 server signatures like any other provider key (the model
 * is pkcs11-provider and OpenSSL's test/tls-provider.c).
 *
 * Names: the keymgmts answer to "RSA"/"EC" (so EVP_PKEY_is_a and libssl's
 * certificate slots recognise the keys) but name their signature operation
 * "SEALPOST-RSA-SIG"/"SEALPOST-EC-SIG" (query_operation_name), which only
 * this provider implements: a handle key can never be routed to the default
 * provider's signer, and default keys never reach ours. Provider order is
 * by name, so plain fetches of "RSA"/"EC" still find "default" first. */
#include <pthread.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#include "common/xalloc.h"
#include "tlsd/tlsd_keyprov.h"

#define KP_RSA_SIG "SEALPOST-RSA-SIG"
#define KP_EC_SIG "SEALPOST-EC-SIG"

static void kp_error(const char *msg)
{
	ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL, "sealpost-keyd: %s", msg);
}

/* ---------------- keys ---------------- */

struct kp_key {
	enum accel_key_type type;
	EVP_PKEY *pub;          /* the public half, held by the default provider */
	bool handle;            /* key_id + kc set: sign operations go to keyd */
	uint8_t key_id[ACCEL_KEY_ID_LEN];
	struct tlsd_keyclient *kc;
};

static struct kp_key *key_new(enum accel_key_type type)
{
	struct kp_key *k = OPENSSL_zalloc(sizeof(*k));

	if (k != NULL)
		k->type = type;
	return k;
}

static void *rsa_new(void *provctx)
{
	return key_new(ACCEL_KEY_RSA);
}

static void *ec_new(void *provctx)
{
	return key_new(ACCEL_KEY_EC);
}

static void key_free(void *keydata)
{
	struct kp_key *k = keydata;

	if (k == NULL)
		return;
	EVP_PKEY_free(k->pub);
	if (k->kc != NULL)
		tlsd_keyclient_unref(k->kc);
	OPENSSL_free(k);
}

static void *key_dup(const void *keydata, int selection)
{
	const struct kp_key *src = keydata;
	struct kp_key *k = key_new(src->type);

	if (k == NULL)
		return NULL;
	if (src->pub != NULL && (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0) {
		EVP_PKEY_up_ref(src->pub);  /* read-only after import */
		k->pub = src->pub;
	}
	if (src->handle && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) {
		k->handle = true;
		memcpy(k->key_id, src->key_id, sizeof(k->key_id));
		k->kc = src->kc;
		tlsd_keyclient_ref(k->kc);
	}
	return k;
}

static int key_has(const void *keydata, int selection)
{
	const struct kp_key *k = keydata;

	if (k == NULL)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 && k->pub == NULL)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && !k->handle)
		return 0;
	/* RSA has no domain parameters; an EC key's group comes with pub */
	if ((selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) != 0 && k->type == ACCEL_KEY_EC &&
	    k->pub == NULL)
		return 0;
	return 1;
}

static int key_match(const void *a, const void *b, int selection)
{
	const struct kp_key *k1 = a, *k2 = b;

	if (k1->type != k2->type || k1->pub == NULL || k2->pub == NULL)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && k1->handle && k2->handle &&
	    memcmp(k1->key_id, k2->key_id, sizeof(k1->key_id)) != 0)
		return 0;
	return EVP_PKEY_eq(k1->pub, k2->pub) == 1;
}

static int key_import(void *keydata, int selection, const OSSL_PARAM params[])
{
	struct kp_key *k = keydata;
	const OSSL_PARAM *p;
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pub = NULL;

	if (k == NULL)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0) {
		/* parameters alone: RSA has none; EC needs a key to be useful */
		return k->type == ACCEL_KEY_RSA;
	}
	ctx = EVP_PKEY_CTX_new_from_name(NULL, k->type == ACCEL_KEY_RSA ? "RSA" : "EC",
					 "provider=default");
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) <= 0) {
		EVP_PKEY_CTX_free(ctx);
		kp_error("cannot import the public key");
		return 0;
	}
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(k->pub);
	k->pub = pub;

	p = OSSL_PARAM_locate_const(params, TLSD_KEYPROV_PARAM_KEY_ID);
	if (p != NULL) {
		const OSSL_PARAM *pc = OSSL_PARAM_locate_const(params, TLSD_KEYPROV_PARAM_CLIENT);
		const void *id = NULL, *kc = NULL;
		size_t id_len = 0, kc_len = 0;

		if (!OSSL_PARAM_get_octet_string_ptr(p, &id, &id_len) || id_len != ACCEL_KEY_ID_LEN ||
		    pc == NULL || !OSSL_PARAM_get_octet_ptr(pc, &kc, &kc_len) || kc == NULL) {
			kp_error("bad key id or client parameter");
			return 0;
		}
		memcpy(k->key_id, id, ACCEL_KEY_ID_LEN);
		if (k->kc != NULL)
			tlsd_keyclient_unref(k->kc);
		k->kc = (struct tlsd_keyclient *)kc;
		tlsd_keyclient_ref(k->kc);
		k->handle = true;
	}
	return 1;
}

static const OSSL_PARAM rsa_types[] = {
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
	OSSL_PARAM_octet_string(TLSD_KEYPROV_PARAM_KEY_ID, NULL, 0),
	OSSL_PARAM_octet_ptr(TLSD_KEYPROV_PARAM_CLIENT, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM ec_types[] = {
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
	OSSL_PARAM_octet_string(TLSD_KEYPROV_PARAM_KEY_ID, NULL, 0),
	OSSL_PARAM_octet_ptr(TLSD_KEYPROV_PARAM_CLIENT, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM *rsa_io_types(int selection)
{
	return rsa_types;
}

static const OSSL_PARAM *ec_io_types(int selection)
{
	return ec_types;
}

static int key_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
	struct kp_key *k = keydata;
	OSSL_PARAM *params = NULL;
	int ret;

	/* only the public half exists here */
	if (k == NULL || k->pub == NULL ||
	    (selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)) == 0)
		return 0;
	if (EVP_PKEY_todata(k->pub, EVP_PKEY_PUBLIC_KEY, &params) <= 0)
		return 0;
	ret = cb(params, cbarg);
	OSSL_PARAM_free(params);
	return ret;
}

static int key_get_params(void *keydata, OSSL_PARAM params[])
{
	struct kp_key *k = keydata;

	if (k == NULL || k->pub == NULL)
		return 0;
	/* bits, security-bits, max-size, default-digest, group-name,
	 * point-format, encoded-pub-key, n, e: the public key knows them */
	return EVP_PKEY_get_params(k->pub, params);
}

static const OSSL_PARAM gettable[] = {
	OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
	OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
	OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM *key_gettable_params(void *provctx)
{
	return gettable;
}

static const char *rsa_query_name(int operation_id)
{
	return operation_id == OSSL_OP_SIGNATURE ? KP_RSA_SIG : NULL;
}

static const char *ec_query_name(int operation_id)
{
	return operation_id == OSSL_OP_SIGNATURE ? KP_EC_SIG : NULL;
}

#define KEYMGMT_COMMON                                                                    \
	{ OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))key_free },                             \
	{ OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))key_dup },                               \
	{ OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))key_has },                               \
	{ OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))key_match },                           \
	{ OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))key_import },                         \
	{ OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))key_export },                         \
	{ OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))key_get_params },                 \
	{ OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))key_gettable_params }

static const OSSL_DISPATCH rsa_keymgmt[] = {
	{ OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))rsa_new },
	{ OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))rsa_io_types },
	{ OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))rsa_io_types },
	{ OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))rsa_query_name },
	KEYMGMT_COMMON,
	{ 0, NULL },
};

static const OSSL_DISPATCH ec_keymgmt[] = {
	{ OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))ec_new },
	{ OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))ec_io_types },
	{ OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))ec_io_types },
	{ OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))ec_query_name },
	KEYMGMT_COMMON,
	{ 0, NULL },
};

/* ---------------- signatures ---------------- */

struct kp_sig {
	struct kp_key *key;     /* not owned: EVP keeps the EVP_PKEY alive */
	EVP_MD_CTX *mdctx;      /* digest_sign_* only */
	int md;                 /* accel_md; 0 = not set */
	int mgf1_md;            /* 0 = same as md */
	int pad;                /* RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
	int saltlen;            /* >= 0, or RSA_PSS_SALTLEN_* */
};

static void *sig_newctx(void *provctx, const char *propq)
{
	struct kp_sig *s = OPENSSL_zalloc(sizeof(*s));

	if (s != NULL) {
		s->pad = RSA_PKCS1_PADDING;
		s->saltlen = RSA_PSS_SALTLEN_AUTO;
	}
	return s;
}

static void sig_freectx(void *ctx)
{
	struct kp_sig *s = ctx;

	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->mdctx);
	OPENSSL_free(s);
}

static void *sig_dupctx(void *ctx)
{
	struct kp_sig *src = ctx, *s = OPENSSL_memdup(src, sizeof(*src));

	if (s == NULL)
		return NULL;
	s->mdctx = NULL;
	if (src->mdctx != NULL) {
		s->mdctx = EVP_MD_CTX_new();
		if (s->mdctx == NULL || !EVP_MD_CTX_copy_ex(s->mdctx, src->mdctx)) {
			sig_freectx(s);
			return NULL;
		}
	}
	return s;
}

static int set_md_name(struct kp_sig *s, int *slot, const char *name)
{
	int md = accel_md_from_name(name);

	if (md == 0) {
		kp_error("digest not supported for keyd keys");
		return 0;
	}
	*slot = md;
	return 1;
}

static int sig_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
	struct kp_sig *s = ctx;
	const OSSL_PARAM *p;

	if (params == NULL)
		return 1;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
	if (p != NULL) {
		const char *name;

		if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !set_md_name(s, &s->md, name))
			return 0;
	}
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
	if (p != NULL) {
		int pad;
		const char *name;

		if (p->data_type == OSSL_PARAM_UTF8_STRING) {
			if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
				return 0;
			if (strcmp(name, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0)
				pad = RSA_PKCS1_PADDING;
			else if (strcmp(name, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0)
				pad = RSA_PKCS1_PSS_PADDING;
			else
				pad = -1;
		} else if (!OSSL_PARAM_get_int(p, &pad)) {
			return 0;
		}
		if (s->key == NULL || s->key->type != ACCEL_KEY_RSA ||
		    (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_PSS_PADDING)) {
			kp_error("padding not supported for keyd keys (PKCS#1 v1.5 or PSS)");
			return 0;
		}
		s->pad = pad;
	}
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
	if (p != NULL) {
		int saltlen;
		const char *name;

		if (p->data_type == OSSL_PARAM_UTF8_STRING) {
			if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
				return 0;
			if (strcmp(name, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0)
				saltlen = RSA_PSS_SALTLEN_DIGEST;
			else if (strcmp(name, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) == 0)
				saltlen = RSA_PSS_SALTLEN_MAX;
			else if (strcmp(name, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) == 0)
				saltlen = RSA_PSS_SALTLEN_AUTO;
			else {
				char *end;
				long v = strtol(name, &end, 10);

				if (*name == '\0' || *end != '\0' || v < 0 || v > ACCEL_MAX_SIG)
					return 0;
				saltlen = (int)v;
			}
		} else if (!OSSL_PARAM_get_int(p, &saltlen)) {
			return 0;
		}
		if (saltlen < RSA_PSS_SALTLEN_MAX || saltlen > ACCEL_MAX_SIG)
			return 0;
		s->saltlen = saltlen;
	}
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
	if (p != NULL) {
		const char *name;

		if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !set_md_name(s, &s->mgf1_md, name))
			return 0;
	}
	return 1;
}

static const OSSL_PARAM settable_rsa[] = {
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM settable_ec[] = {
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM *sig_settable_rsa(void *ctx, void *provctx)
{
	return settable_rsa;
}

static const OSSL_PARAM *sig_settable_ec(void *ctx, void *provctx)
{
	return settable_ec;
}

static int sig_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
	struct kp_sig *s = ctx;
	OSSL_PARAM *p;

	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
	if (p != NULL && s->md != 0 && !OSSL_PARAM_set_utf8_string(p, accel_md_name(s->md)))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
	if (p != NULL && !OSSL_PARAM_set_int(p, s->pad))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
	if (p != NULL && !OSSL_PARAM_set_int(p, s->saltlen))
		return 0;
	return 1;
}

static const OSSL_PARAM gettable_sig[] = {
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL),
	OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL),
	OSSL_PARAM_END,
};

static const OSSL_PARAM *sig_gettable(void *ctx, void *provctx)
{
	return gettable_sig;
}

static int sig_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
	struct kp_sig *s = ctx;
	struct kp_key *k = provkey;

	if (k == NULL || !k->handle) {
		kp_error("not a keyd key handle");
		return 0;
	}
	s->key = k;
	s->md = 0;
	s->mgf1_md = 0;
	s->pad = RSA_PKCS1_PADDING;
	s->saltlen = RSA_PSS_SALTLEN_AUTO;
	return sig_set_ctx_params(s, params);
}

/* Largest signature: the modulus for RSA; a DER Ecdsa-Sig-Value of two
 * INTEGERs of the order's size plus a sign byte for EC (SEC 1 C.5). */
static size_t sig_max(const struct kp_key *k)
{
	int size = EVP_PKEY_get_size(k->pub);

	return size > 0 ? (size_t)size : 0;
}

/* The digest of tbs is in; the mechanism comes from the ctx. */
static int sig_do(struct kp_sig *s, unsigned char *sig, size_t *siglen, size_t sigsize,
		  const unsigned char *dig, size_t diglen)
{
	struct kp_key *k = s->key;
	size_t max = sig_max(k);
	struct accel_op op;
	int md = s->md;

	if (max == 0 || max > ACCEL_MAX_SIG) {
		kp_error("key size not supported");
		return 0;
	}
	if (sig == NULL) {
		*siglen = max;
		return 1;
	}
	if (md == 0) {  /* EVP_PKEY_sign without a digest set: infer from length */
		static const int by_len[] = { ACCEL_MD_SHA1, ACCEL_MD_SHA224, ACCEL_MD_SHA256,
					      ACCEL_MD_SHA384, ACCEL_MD_SHA512 };

		for (size_t i = 0; i < sizeof(by_len) / sizeof(by_len[0]); i++) {
			if (accel_md_size(by_len[i]) == diglen)
				md = by_len[i];
		}
	}
	if (md == 0 || diglen != accel_md_size(md)) {
		kp_error("digest length does not match the digest");
		return 0;
	}
	memset(&op, 0, sizeof(op));
	op.md = (uint8_t)md;
	memcpy(op.digest, dig, diglen);
	op.digest_len = diglen;
	if (k->type == ACCEL_KEY_EC) {
		op.mech = ACCEL_MECH_ECDSA;
	} else if (s->pad == RSA_PKCS1_PSS_PADDING) {
		/* RFC 8017 9.1.1: emLen = ceil((modBits - 1) / 8) */
		size_t em_len = (size_t)(EVP_PKEY_get_bits(k->pub) - 1 + 7) / 8;
		size_t max_salt = em_len >= diglen + 2 ? em_len - diglen - 2 : 0;

		op.mech = ACCEL_MECH_RSA_PSS;
		op.mgf1_md = (uint8_t)(s->mgf1_md != 0 ? s->mgf1_md : md);
		if (s->saltlen == RSA_PSS_SALTLEN_DIGEST)
			op.saltlen = (uint32_t)diglen;
		else if (s->saltlen == RSA_PSS_SALTLEN_MAX || s->saltlen == RSA_PSS_SALTLEN_AUTO)
			op.saltlen = (uint32_t)max_salt;
		else
			op.saltlen = (uint32_t)s->saltlen;
		if (op.saltlen > max_salt) {
			kp_error("PSS salt too long for the key");
			return 0;
		}
	} else {
		op.mech = ACCEL_MECH_RSA_PKCS1;
	}
	return tlsd_keyclient_sign(k->kc, k->key_id, &op, sig, siglen, sigsize);
}

static int sig_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
		    const unsigned char *tbs, size_t tbslen)
{
	return sig_do(ctx, sig, siglen, sigsize, tbs, tbslen);
}

static int sig_digest_init(void *ctx, const char *mdname, void *provkey, const OSSL_PARAM params[])
{
	struct kp_sig *s = ctx;
	EVP_MD *md;

	if (!sig_init(ctx, provkey, params))
		return 0;
	if (mdname == NULL || mdname[0] == '\0')
		mdname = "SHA256";
	if (!set_md_name(s, &s->md, mdname))
		return 0;
	if (s->mdctx == NULL && (s->mdctx = EVP_MD_CTX_new()) == NULL)
		return 0;
	md = EVP_MD_fetch(NULL, accel_md_name(s->md), NULL);
	if (md == NULL || !EVP_DigestInit_ex2(s->mdctx, md, NULL)) {
		EVP_MD_free(md);
		return 0;
	}
	EVP_MD_free(md);
	return 1;
}

static int sig_digest_update(void *ctx, const unsigned char *data, size_t len)
{
	struct kp_sig *s = ctx;

	return s->mdctx != NULL && EVP_DigestUpdate(s->mdctx, data, len);
}

static int sig_digest_final(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
	struct kp_sig *s = ctx;
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int diglen = 0;

	if (s->mdctx == NULL)
		return 0;
	if (sig == NULL)
		return sig_do(s, NULL, siglen, sigsize, NULL, 0);
	if (!EVP_DigestFinal_ex(s->mdctx, dig, &diglen))
		return 0;
	return sig_do(s, sig, siglen, sigsize, dig, diglen);
}

static int sig_digest_oneshot(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
			      const unsigned char *tbs, size_t tbslen)
{
	struct kp_sig *s = ctx;

	if (sig == NULL)
		return sig_do(s, NULL, siglen, sigsize, NULL, 0);
	return sig_digest_update(s, tbs, tbslen) && sig_digest_final(s, sig, siglen, sigsize);
}

#define SIGNATURE_COMMON                                                                      \
	{ OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))sig_newctx },                           \
	{ OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx },                         \
	{ OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx },                           \
	{ OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sig_init },                          \
	{ OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign },                               \
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))sig_digest_init },            \
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))sig_digest_update },        \
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))sig_digest_final },          \
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))sig_digest_oneshot },              \
	{ OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))sig_set_ctx_params },           \
	{ OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))sig_get_ctx_params },           \
	{ OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))sig_gettable }

static const OSSL_DISPATCH rsa_signature[] = {
	SIGNATURE_COMMON,
	{ OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))sig_settable_rsa },
	{ 0, NULL },
};

static const OSSL_DISPATCH ec_signature[] = {
	SIGNATURE_COMMON,
	{ OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))sig_settable_ec },
	{ 0, NULL },
};

/* ---------------- the provider ---------------- */

static const OSSL_ALGORITHM keymgmt_algs[] = {
	{ "RSA:rsaEncryption:1.2.840.113549.1.1.1", TLSD_KEYPROV_PROPQ, rsa_keymgmt,
	  "RSA key handle served by keyd" },
	{ "EC:id-ecPublicKey:1.2.840.10045.2.1", TLSD_KEYPROV_PROPQ, ec_keymgmt,
	  "EC key handle served by keyd" },
	{ NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM signature_algs[] = {
	{ KP_RSA_SIG, TLSD_KEYPROV_PROPQ, rsa_signature, "RSA signatures by keyd" },
	{ KP_EC_SIG, TLSD_KEYPROV_PROPQ, ec_signature, "ECDSA signatures by keyd" },
	{ NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM *prov_query(void *provctx, int operation_id, int *no_cache)
{
	*no_cache = 0;
	switch (operation_id) {
	case OSSL_OP_KEYMGMT:
		return keymgmt_algs;
	case OSSL_OP_SIGNATURE:
		return signature_algs;
	}
	return NULL;
}

static const OSSL_PARAM prov_param_types[] = {
	OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, NULL, 0),
	OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, NULL),
	OSSL_PARAM_END,
};

static const OSSL_PARAM *prov_gettable(void *provctx)
{
	return prov_param_types;
}

static int prov_get_params(void *provctx, OSSL_PARAM params[])
{
	OSSL_PARAM *p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);

	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "Sealpost keyd client"))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
	if (p != NULL && !OSSL_PARAM_set_int(p, 1))
		return 0;
	return 1;
}

static const OSSL_DISPATCH prov_dispatch[] = {
	{ OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))prov_query },
	{ OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))prov_gettable },
	{ OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))prov_get_params },
	{ 0, NULL },
};

static int prov_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
		     const OSSL_DISPATCH **out, void **provctx)
{
	*out = prov_dispatch;
	*provctx = (void *)handle;
	return 1;
}

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_result = -1;
static char load_error[256];
/* held for the life of the process: handle keys may be freed at any time */
static OSSL_PROVIDER *prov_default, *prov_keyd;

/* At exit, before OpenSSL's own cleanup (atexit runs in reverse order):
 * give the providers back so leak checkers see a clean exit. */
static void unload_providers(void)
{
	if (prov_keyd != NULL)
		OSSL_PROVIDER_unload(prov_keyd);
	if (prov_default != NULL)
		OSSL_PROVIDER_unload(prov_default);
	prov_keyd = prov_default = NULL;
}

static void load_providers(void)
{
	/* Loading any provider turns off the implicit "default": load it too. */
	if ((prov_default = OSSL_PROVIDER_load(NULL, "default")) == NULL) {
		snprintf(load_error, sizeof(load_error), "cannot load OpenSSL's default provider");
		return;
	}
	if (OSSL_PROVIDER_add_builtin(NULL, TLSD_KEYPROV_NAME, prov_init) != 1 ||
	    (prov_keyd = OSSL_PROVIDER_load(NULL, TLSD_KEYPROV_NAME)) == NULL) {
		snprintf(load_error, sizeof(load_error), "cannot load the %s provider",
			 TLSD_KEYPROV_NAME);
		return;
	}
	if (atexit(unload_providers) != 0) {
		snprintf(load_error, sizeof(load_error), "atexit failed");
		return;
	}
	load_result = 0;
}

int tlsd_keyprov_load(char **error_r)
{
	pthread_once(&load_once, load_providers);
	if (load_result < 0) {
		*error_r = sp_xstrdup(load_error);
		ERR_clear_error();
		return -1;
	}
	return 0;
}
