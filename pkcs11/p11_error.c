/* Every CKR_* return code and the mechanisms we name, turned into words in
 * one place (CONVENTIONS: PKCS#11 return values are mapped here only). */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "common/xalloc.h"
#include "pkcs11/p11_int.h"

struct rv_name {
	CK_RV rv;
	const char *text;
};

#define RV(code, words) { code, #code " (" words ")" }

static const struct rv_name rv_names[] = {
	RV(CKR_OK, "no error"),
	RV(CKR_CANCEL, "cancelled"),
	RV(CKR_HOST_MEMORY, "the module ran out of host memory"),
	RV(CKR_SLOT_ID_INVALID, "no such slot"),
	RV(CKR_GENERAL_ERROR, "unrecoverable error in the module or token"),
	RV(CKR_FUNCTION_FAILED, "the function failed"),
	RV(CKR_ARGUMENTS_BAD, "bad arguments"),
	RV(CKR_NO_EVENT, "no slot event"),
	RV(CKR_NEED_TO_CREATE_THREADS, "the module needs to create threads"),
	RV(CKR_CANT_LOCK, "the module cannot do the locking asked for"),
	RV(CKR_ATTRIBUTE_READ_ONLY, "attribute is read-only"),
	RV(CKR_ATTRIBUTE_SENSITIVE, "attribute is sensitive and cannot be read"),
	RV(CKR_ATTRIBUTE_TYPE_INVALID, "attribute type not valid for this object"),
	RV(CKR_ATTRIBUTE_VALUE_INVALID, "attribute value not valid"),
	RV(CKR_ACTION_PROHIBITED, "action prohibited by the object's policy"),
	RV(CKR_DATA_INVALID, "input data not valid"),
	RV(CKR_DATA_LEN_RANGE, "input data length out of range"),
	RV(CKR_DEVICE_ERROR, "the token or device reported an error"),
	RV(CKR_DEVICE_MEMORY, "the token ran out of memory"),
	RV(CKR_DEVICE_REMOVED, "the token was removed during the call"),
	RV(CKR_ENCRYPTED_DATA_INVALID, "encrypted data not valid"),
	RV(CKR_ENCRYPTED_DATA_LEN_RANGE, "encrypted data length out of range"),
	RV(CKR_FUNCTION_CANCELED, "function cancelled"),
	RV(CKR_FUNCTION_NOT_PARALLEL, "function not running in parallel"),
	RV(CKR_FUNCTION_NOT_SUPPORTED, "the module does not support this function"),
	RV(CKR_KEY_HANDLE_INVALID, "key handle not valid"),
	RV(CKR_KEY_SIZE_RANGE, "key size out of the range the mechanism supports"),
	RV(CKR_KEY_TYPE_INCONSISTENT, "key type does not fit the mechanism"),
	RV(CKR_KEY_NOT_NEEDED, "key not needed"),
	RV(CKR_KEY_CHANGED, "key changed"),
	RV(CKR_KEY_NEEDED, "key needed"),
	RV(CKR_KEY_INDIGESTIBLE, "key cannot be digested"),
	RV(CKR_KEY_FUNCTION_NOT_PERMITTED, "key attributes do not allow this operation"),
	RV(CKR_KEY_NOT_WRAPPABLE, "key not wrappable"),
	RV(CKR_KEY_UNEXTRACTABLE, "key is not extractable"),
	RV(CKR_MECHANISM_INVALID, "the token does not support this mechanism"),
	RV(CKR_MECHANISM_PARAM_INVALID, "mechanism parameters not valid"),
	RV(CKR_OBJECT_HANDLE_INVALID, "object handle not valid"),
	RV(CKR_OPERATION_ACTIVE, "another operation is already active in this session"),
	RV(CKR_OPERATION_NOT_INITIALIZED, "operation not initialised"),
	RV(CKR_PIN_INCORRECT, "the PIN is wrong"),
	RV(CKR_PIN_INVALID, "the PIN has invalid characters"),
	RV(CKR_PIN_LEN_RANGE, "the PIN is too long or too short"),
	RV(CKR_PIN_EXPIRED, "the PIN has expired"),
	RV(CKR_PIN_LOCKED, "the PIN is locked: too many wrong attempts"),
	RV(CKR_SESSION_CLOSED, "the session was closed"),
	RV(CKR_SESSION_COUNT, "the token cannot open more sessions"),
	RV(CKR_SESSION_HANDLE_INVALID, "session handle not valid"),
	RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED, "parallel sessions not supported"),
	RV(CKR_SESSION_READ_ONLY, "the session is read-only"),
	RV(CKR_SESSION_EXISTS, "a session exists"),
	RV(CKR_SESSION_READ_ONLY_EXISTS, "a read-only session exists"),
	RV(CKR_SESSION_READ_WRITE_SO_EXISTS, "a read/write SO session exists"),
	RV(CKR_SIGNATURE_INVALID, "signature not valid"),
	RV(CKR_SIGNATURE_LEN_RANGE, "signature length out of range"),
	RV(CKR_TEMPLATE_INCOMPLETE, "the object template is incomplete"),
	RV(CKR_TEMPLATE_INCONSISTENT, "the object template is inconsistent"),
	RV(CKR_TOKEN_NOT_PRESENT, "no token in the slot"),
	RV(CKR_TOKEN_NOT_RECOGNIZED, "token not recognised"),
	RV(CKR_TOKEN_WRITE_PROTECTED, "the token is write-protected"),
	RV(CKR_UNWRAPPING_KEY_HANDLE_INVALID, "unwrapping key handle not valid"),
	RV(CKR_UNWRAPPING_KEY_SIZE_RANGE, "unwrapping key size out of range"),
	RV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, "unwrapping key type inconsistent"),
	RV(CKR_USER_ALREADY_LOGGED_IN, "the user is already logged in"),
	RV(CKR_USER_NOT_LOGGED_IN, "the user is not logged in"),
	RV(CKR_USER_PIN_NOT_INITIALIZED, "the user PIN is not initialised"),
	RV(CKR_USER_TYPE_INVALID, "user type not valid"),
	RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "another user is already logged in"),
	RV(CKR_USER_TOO_MANY_TYPES, "too many user types logged in"),
	RV(CKR_WRAPPED_KEY_INVALID, "wrapped key not valid"),
	RV(CKR_WRAPPED_KEY_LEN_RANGE, "wrapped key length out of range"),
	RV(CKR_WRAPPING_KEY_HANDLE_INVALID, "wrapping key handle not valid"),
	RV(CKR_WRAPPING_KEY_SIZE_RANGE, "wrapping key size out of range"),
	RV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT, "wrapping key type inconsistent"),
	RV(CKR_RANDOM_SEED_NOT_SUPPORTED, "random seeding not supported"),
	RV(CKR_RANDOM_NO_RNG, "the token has no random number generator"),
	RV(CKR_DOMAIN_PARAMS_INVALID, "domain parameters not valid"),
	RV(CKR_CURVE_NOT_SUPPORTED, "the token does not support this curve"),
	RV(CKR_BUFFER_TOO_SMALL, "output buffer too small"),
	RV(CKR_SAVED_STATE_INVALID, "saved state not valid"),
	RV(CKR_INFORMATION_SENSITIVE, "information is sensitive"),
	RV(CKR_STATE_UNSAVEABLE, "state cannot be saved"),
	RV(CKR_CRYPTOKI_NOT_INITIALIZED,
	   "module not initialised in this process (after fork, initialise again)"),
	RV(CKR_CRYPTOKI_ALREADY_INITIALIZED, "module already initialised"),
	RV(CKR_MUTEX_BAD, "bad mutex"),
	RV(CKR_MUTEX_NOT_LOCKED, "mutex not locked"),
	RV(CKR_FUNCTION_REJECTED, "function rejected"),
};

const char *p11_strerror(CK_RV rv)
{
	static __thread char unknown[64];
	size_t i;

	for (i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++)
		if (rv_names[i].rv == rv)
			return rv_names[i].text;
	if (rv >= CKR_VENDOR_DEFINED)
		snprintf(unknown, sizeof(unknown), "CKR_0x%lx (vendor-defined error)",
			 (unsigned long)rv);
	else
		snprintf(unknown, sizeof(unknown), "CKR_0x%lx (unknown PKCS#11 error)",
			 (unsigned long)rv);
	return unknown;
}

char *p11_error(CK_RV rv, const char *what)
{
	return sp_xasprintf("%s: %s", what, p11_strerror(rv));
}

struct mech_name {
	CK_MECHANISM_TYPE mech;
	const char *name;
};

#define MN(m) { m, #m }

static const struct mech_name mech_names[] = {
	MN(CKM_RSA_PKCS_KEY_PAIR_GEN), MN(CKM_RSA_PKCS), MN(CKM_RSA_9796), MN(CKM_RSA_X_509),
	MN(CKM_MD5_RSA_PKCS), MN(CKM_SHA1_RSA_PKCS), MN(CKM_RSA_PKCS_OAEP),
	MN(CKM_RSA_PKCS_PSS), MN(CKM_SHA1_RSA_PKCS_PSS), MN(CKM_SHA224_RSA_PKCS),
	MN(CKM_SHA256_RSA_PKCS), MN(CKM_SHA384_RSA_PKCS), MN(CKM_SHA512_RSA_PKCS),
	MN(CKM_SHA224_RSA_PKCS_PSS), MN(CKM_SHA256_RSA_PKCS_PSS), MN(CKM_SHA384_RSA_PKCS_PSS),
	MN(CKM_SHA512_RSA_PKCS_PSS), MN(CKM_DSA_KEY_PAIR_GEN), MN(CKM_DSA), MN(CKM_DSA_SHA1),
	MN(CKM_DH_PKCS_KEY_PAIR_GEN), MN(CKM_DH_PKCS_DERIVE), MN(CKM_GENERIC_SECRET_KEY_GEN),
	MN(CKM_DES_KEY_GEN), MN(CKM_DES_ECB), MN(CKM_DES_CBC), MN(CKM_DES3_KEY_GEN),
	MN(CKM_DES3_ECB), MN(CKM_DES3_CBC), MN(CKM_DES3_CBC_PAD), MN(CKM_DES3_CMAC),
	MN(CKM_MD5), MN(CKM_MD5_HMAC), MN(CKM_SHA_1), MN(CKM_SHA_1_HMAC), MN(CKM_SHA224),
	MN(CKM_SHA224_HMAC), MN(CKM_SHA256), MN(CKM_SHA256_HMAC), MN(CKM_SHA384),
	MN(CKM_SHA384_HMAC), MN(CKM_SHA512), MN(CKM_SHA512_HMAC), MN(CKM_EC_KEY_PAIR_GEN),
	MN(CKM_ECDSA), MN(CKM_ECDSA_SHA1), MN(CKM_ECDSA_SHA224), MN(CKM_ECDSA_SHA256),
	MN(CKM_ECDSA_SHA384), MN(CKM_ECDSA_SHA512), MN(CKM_ECDH1_DERIVE),
	MN(CKM_AES_KEY_GEN), MN(CKM_AES_ECB), MN(CKM_AES_CBC), MN(CKM_AES_CBC_PAD),
	MN(CKM_AES_CTR), MN(CKM_AES_GCM), MN(CKM_AES_CMAC), MN(CKM_AES_KEY_WRAP),
	MN(CKM_AES_KEY_WRAP_PAD), MN(CKM_AES_ECB_ENCRYPT_DATA), MN(CKM_AES_CBC_ENCRYPT_DATA),
	MN(CKM_DES_ECB_ENCRYPT_DATA), MN(CKM_DES_CBC_ENCRYPT_DATA),
	MN(CKM_DES3_ECB_ENCRYPT_DATA), MN(CKM_DES3_CBC_ENCRYPT_DATA), MN(CKM_EC_EDWARDS_KEY_PAIR_GEN),
	MN(CKM_EDDSA),
};

const char *p11_mech_name(CK_MECHANISM_TYPE mech)
{
	size_t i;

	for (i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++)
		if (mech_names[i].mech == mech)
			return mech_names[i].name;
	return NULL;
}

char *p11_ossl_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return sp_xasprintf("%s: %s", what, e != 0 ? buf : "OpenSSL error");
}
