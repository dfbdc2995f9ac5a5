/* pkcs11/: token access shared by keyd (accel's pkcs11 backend) and the
 * administrator's tokens CLI. Loads PKCS#11 modules through p11-kit, finds
 * tokens by label or RFC 7512 URI, logs in once per token with the PIN from
 * sslpassword.conf, keeps a session pool per token, finds, generates and
 * imports keys and certificates, and signs (RSA PKCS#1 v1.5, RSA-PSS, ECDSA).
 *
 * Raw PKCS#11, not libp11. Every call goes straight through the module's
 * CK_FUNCTION_LIST as p11-kit hands it to us. Debian 12's libp11 0.4.12
 * predates libp11's fixes for races in its session pool, and keyd signs from
 * many worker threads at once. libp11 also gives no control over how many
 * sessions it opens or how it retries a login. Raw calls let us give each
 * thread its own session (SoftHSM2 2.6.1 has crashed when threads share one),
 * size the pool to what the token allows, and never retry a wrong PIN.
 *
 * Fork. PKCS#11 state does not survive fork(): a child must not use a module
 * its parent initialised (PKCS#11 v2.40 section 6.7.7). Call p11_ctx_new only
 * in the process that will use the tokens, after it has forked: keyd calls it
 * after its own fork, and the CLI calls it in its only process. The tlsd
 * master forks its workers and must NEVER call into pkcs11/. Modules are
 * loaded in p11-kit's managed mode (flags 0, not P11_KIT_MODULE_UNMANAGED).
 * Managed mode counts C_Initialize calls, so another user in the same process
 * (the libp11 engine in a test tool, for example) can share a module. It also
 * notices a fork and answers the child with CKR_CRYPTOKI_NOT_INITIALIZED. Going
 * on with the parent's handles would corrupt the module's state.
 *
 * Threads: a struct p11_token and its keys may be used from many threads at
 * once once they are set up. Each p11_sign call borrows its own session from
 * the pool. Opening, closing and the module-list editing functions are not
 * thread-safe: call them from one thread.
 *
 * Errors follow the house style: -1 / NULL and *error_r (caller frees).
 * Every CKR_* code is turned into words in one place, p11_error.c.
 */
#ifndef SP_PKCS11_H
#define SP_PKCS11_H

#include <stdbool.h>
#include <stddef.h>
#include <p11-kit/pkcs11.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/conf.h"

struct sp_pinfile;

/* Config keys (pkcs11/p11_conf.c); the table ends with a NULL name. */
extern const struct sp_conf_key p11_conf_keys[];

/* ---------------------------------------------------------------------
 * Errors (p11_error.c)
 * ------------------------------------------------------------------ */

/* "CKR_PIN_INCORRECT (the PIN is wrong)". Static string; unknown codes read
 * "CKR_0x... (unknown PKCS#11 error)" from a thread-local buffer. */
const char *p11_strerror(CK_RV rv);
/* "WHAT: <p11_strerror(rv)>", freshly allocated (for *error_r). */
char *p11_error(CK_RV rv, const char *what);
/* Name of a mechanism ("CKM_RSA_PKCS_PSS") or NULL if unknown. */
const char *p11_mech_name(CK_MECHANISM_TYPE mech);

/* ---------------------------------------------------------------------
 * The project's module list (p11_modlist.c)
 *
 * File <confdir>/pkcs11-modules.conf (config key pkcs11.modules_file).
 * One entry per line; blanks around fields are ignored:
 *   # comment
 *   NAME = /absolute/path/to/module.so     a module to load
 *   disable NAME SLOT-ID                   do not use slot SLOT-ID of NAME
 * NAME: [A-Za-z0-9._-], at most 64 bytes, unique in the file. SLOT-ID is the
 * decimal CK_SLOT_ID. A "disable" line may only name a module that is in the
 * file or one that p11-kit loads. Bounds: 64 modules, 256 disable lines,
 * 64 KiB file. The tokens CLI edits the file with the functions below and
 * p11_modlist_save writes it atomically (temp file, fsync, rename, fsync
 * directory) with mode 0644. The file holds no secret.
 * ------------------------------------------------------------------ */

#define P11_MODLIST_MAX_MODULES 64
#define P11_MODLIST_MAX_DISABLED 256
#define P11_MODULE_NAME_MAX 64

struct p11_modlist;

/* A missing file is an empty list. Caller frees with p11_modlist_free. */
struct p11_modlist *p11_modlist_load(const char *path, char **error_r);
/* Pure parser behind p11_modlist_load; name is used in "NAME:LINE: ..." errors. */
struct p11_modlist *p11_modlist_parse(const char *name, const char *buf, size_t len,
				      char **error_r);
int p11_modlist_save(const struct p11_modlist *ml, const char *path, char **error_r);
void p11_modlist_free(struct p11_modlist **ml);

size_t p11_modlist_count(const struct p11_modlist *ml);
/* The i-th module; strings are owned by ml. */
void p11_modlist_at(const struct p11_modlist *ml, size_t i, const char **name_r,
		    const char **path_r);
int p11_modlist_add(struct p11_modlist *ml, const char *name, const char *path, char **error_r);
/* Removes the module and its disable lines. */
int p11_modlist_remove(struct p11_modlist *ml, const char *name, char **error_r);
int p11_modlist_disable_slot(struct p11_modlist *ml, const char *name, CK_SLOT_ID slot,
			     char **error_r);
int p11_modlist_enable_slot(struct p11_modlist *ml, const char *name, CK_SLOT_ID slot,
			    char **error_r);
bool p11_modlist_slot_disabled(const struct p11_modlist *ml, const char *name, CK_SLOT_ID slot);

/* ---------------------------------------------------------------------
 * Modules (p11_load.c)
 * ------------------------------------------------------------------ */

struct p11_ctx;
struct p11_module;

struct p11_ctx_settings {
	const char *modules_file;   /* NULL: none */
	bool p11kit_modules;        /* also load the modules p11-kit's registry names */
	unsigned sessions;          /* pool size per token; 0 = from CK_TOKEN_INFO */
};
/* Hard cap on a pool, whatever the token or the config says. */
#define P11_POOL_MAX 64
/* Pool size when the token says "effectively infinite" and none is configured. */
#define P11_POOL_DEFAULT 16

/* Loads and initialises the modules: p11-kit's (if asked) and those in the
 * module list. A module that fails to initialise is logged and left out; a
 * module list that does not parse is an error. A module already loaded
 * through p11-kit is not loaded a second time by path. Call after fork. */
struct p11_ctx *p11_ctx_new(const struct p11_ctx_settings *set, char **error_r);
/* Finalises the modules. The tokens of ctx must be closed first. */
void p11_ctx_free(struct p11_ctx **ctx);
/* Loads one more module by path (for the CLI and tests). */
int p11_ctx_add_module(struct p11_ctx *ctx, const char *name, const char *path, char **error_r);

size_t p11_ctx_module_count(const struct p11_ctx *ctx);
struct p11_module *p11_ctx_module_at(const struct p11_ctx *ctx, size_t i);
const char *p11_module_name(const struct p11_module *mod);
CK_FUNCTION_LIST *p11_module_functions(const struct p11_module *mod);

/* ---------------------------------------------------------------------
 * Names (p11_uri.c)
 * ------------------------------------------------------------------ */

enum p11_name_kind {
	P11_NAME_INTERNAL,   /* "nickname": the internal software token */
	P11_NAME_TOKEN,      /* "Token Label:nickname" */
	P11_NAME_URI,        /* "pkcs11:..." (RFC 7512) */
};

struct p11_name {
	enum p11_name_kind kind;
	char *token;         /* token label; NULL if not given */
	char *object;        /* CKA_LABEL; NULL if not given */
	unsigned char *id;   /* CKA_ID; NULL if not given */
	size_t id_len;
	void *uri;           /* P11_NAME_URI: the parsed P11KitUri */
};

/* Parses a key or certificate name. A "Token:nick" name splits at the last
 * ':' (a nickname holds no ':'; a token label may). A pkcs11: URI is
 * parsed by p11-kit; a URI's pin-value is refused (PINs live in
 * sslpassword.conf only). Free with p11_name_clear. */
int p11_name_parse(const char *text, struct p11_name *name, char **error_r);
void p11_name_clear(struct p11_name *name);
/* RFC 7512 URI for an object: "pkcs11:token=..;object=..;id=..;type=private". */
char *p11_uri_format(const char *token, const char *object, const unsigned char *id,
		     size_t id_len, const char *type);

/* ---------------------------------------------------------------------
 * Tokens, login and the session pool (p11_token.c, p11_session.c)
 * ------------------------------------------------------------------ */

struct p11_token;

struct p11_slot_info {
	struct p11_module *module;
	CK_SLOT_ID slot;
	bool token_present;
	bool disabled;          /* by the module list */
	char label[33];         /* trailing blanks removed */
	char manufacturer[33];
	char model[17];
	char serial[17];
	CK_ULONG max_sessions;  /* CK_TOKEN_INFO.ulMaxSessionCount */
	CK_FLAGS flags;         /* CK_TOKEN_INFO.flags */
};

/* Every slot of every module (disabled ones included, flagged). Caller frees
 * *slots_r with free(). */
int p11_ctx_slots(struct p11_ctx *ctx, struct p11_slot_info **slots_r, size_t *count_r,
		  char **error_r);

/* Opens a token. spec is its label, or a pkcs11: URI whose token
 * attributes (token, manufacturer, model, serial, library-*) pick it; object
 * attributes are ignored here, so a key locator URI may be passed as is.
 * Disabled slots are skipped. No match, or two tokens that match, is an
 * error. If pins is non-NULL the token is logged in as CKU_USER with the
 * PIN sslpassword.conf gives for the label: once, and never retried
 * (CKR_PIN_INCORRECT is an error; a retry loop would lock the token).
 * pins NULL: no login (listing public objects). Caller frees with
 * p11_token_close before p11_ctx_free. */
struct p11_token *p11_token_open(struct p11_ctx *ctx, const char *spec,
				 const struct sp_pinfile *pins, char **error_r);
void p11_token_close(struct p11_token **tok);
const char *p11_token_label(const struct p11_token *tok);
/* Sessions in the pool (after any CKR_SESSION_COUNT shrinking). */
unsigned p11_token_pool_size(const struct p11_token *tok);
CK_FUNCTION_LIST *p11_token_functions(const struct p11_token *tok);

/* Borrows a session for the calling thread; waits up to timeout_ms (-1:
 * forever) for one. Return it with p11_session_put. bad = true drops it and
 * opens a fresh one in its place (after CKR_SESSION_HANDLE_INVALID etc.). */
int p11_session_get(struct p11_token *tok, int timeout_ms, CK_SESSION_HANDLE *sess_r,
		    char **error_r);
void p11_session_put(struct p11_token *tok, CK_SESSION_HANDLE sess, bool bad);

struct p11_mech_info {
	CK_MECHANISM_TYPE type;
	const char *name;       /* NULL if unknown to p11_mech_name */
	CK_ULONG min_key, max_key;
	CK_FLAGS flags;         /* CKF_SIGN, CKF_GENERATE_KEY_PAIR, CKF_HW, ... */
};
/* C_GetMechanismList + C_GetMechanismInfo; caller frees *mechs_r with free(). */
int p11_token_mechanisms(struct p11_token *tok, struct p11_mech_info **mechs_r,
			 size_t *count_r, char **error_r);

/* ---------------------------------------------------------------------
 * Keys and certificates (p11_keys.c, p11_gen.c)
 * ------------------------------------------------------------------ */

enum p11_key_type { P11_KEY_RSA, P11_KEY_EC };

struct p11_key;

/* Finds the private key with CKA_LABEL label and/or CKA_ID id (at least one
 * given). None is an error; two or more is an error naming the count. The
 * public key comes from the private key object (RSA), else the public key
 * object or certificate with the same CKA_ID. Free with p11_key_free (the
 * token must outlive the key). */
struct p11_key *p11_key_find(struct p11_token *tok, const char *label, const unsigned char *id,
			     size_t id_len, char **error_r);
void p11_key_free(struct p11_key **key);
enum p11_key_type p11_key_type(const struct p11_key *key);
unsigned p11_key_bits(const struct p11_key *key);
/* Borrowed; valid while key lives. */
EVP_PKEY *p11_key_public(const struct p11_key *key);
const unsigned char *p11_key_id(const struct p11_key *key, size_t *len_r);
CK_OBJECT_HANDLE p11_key_handle(const struct p11_key *key);

struct p11_key_attrs {
	bool token, private_, sensitive, extractable, always_sensitive, never_extractable,
	     sign;
};
int p11_key_attributes(struct p11_key *key, struct p11_key_attrs *attrs, char **error_r);

/* Finds a certificate (CKO_CERTIFICATE, CKC_X_509) by label and/or id;
 * ambiguity as for keys. *cert_r: caller frees with X509_free. */
int p11_cert_find(struct p11_token *tok, const char *label, const unsigned char *id,
		  size_t id_len, X509 **cert_r, char **error_r);

enum p11_keygen_type {
	P11_KEYGEN_RSA2048,
	P11_KEYGEN_RSA3072,
	P11_KEYGEN_EC_P256,
	P11_KEYGEN_EC_P384,
};
/* Generates a key pair on the token: the private half CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_SIGN; both halves labelled
 * nickname, with CKA_ID = SHA-1 of the public key's SubjectPublicKeyInfo
 * DER (see p11_pubkey_id). A key that already has the nickname as its label
 * is an error. Needs a logged-in token. */
struct p11_key *p11_keygen(struct p11_token *tok, enum p11_keygen_type type,
			   const char *nickname, char **error_r);
/* Imports pkey's private key (RSA or EC) as a private, sensitive,
 * non-extractable token object, plus its public key object, both labelled
 * nickname, CKA_ID id (NULL: p11_pubkey_id of pkey). */
struct p11_key *p11_key_import(struct p11_token *tok, EVP_PKEY *pkey, const char *nickname,
			       const unsigned char *id, size_t id_len, char **error_r);
/* Imports a certificate object (CKO_CERTIFICATE, CKC_X_509, CKA_VALUE DER,
 * CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER, CKA_ID, CKA_LABEL), id NULL:
 * p11_pubkey_id of the certificate's key, so it matches its key's id. */
int p11_cert_import(struct p11_token *tok, X509 *cert, const char *nickname,
		    const unsigned char *id, size_t id_len, char **error_r);
/* SHA-1 of the SubjectPublicKeyInfo DER into id[20]. */
int p11_pubkey_id(EVP_PKEY *pkey, unsigned char id[20], char **error_r);

/* ---------------------------------------------------------------------
 * Signing (p11_sign.c); called from keyd's worker threads
 * ------------------------------------------------------------------ */

enum p11_sign_scheme {
	P11_SIGN_RSA_PKCS1,  /* CKM_RSA_PKCS over a DigestInfo built here */
	P11_SIGN_RSA_PSS,    /* CKM_RSA_PKCS_PSS on the digest, MGF1 with the same hash */
	P11_SIGN_ECDSA,      /* CKM_ECDSA on the digest; result DER ECDSA-Sig-Value */
};

/* Signs a digest made with md_nid (NID_sha1, NID_sha224, NID_sha256,
 * NID_sha384, NID_sha512). pss_salt_len: PSS only, in bytes (-1 = digest
 * length, as TLS 1.3 uses). On entry *sig_len is sig's size; on return it is
 * the signature's length. The size needed is p11_sign_max_len(key). Uses a
 * session from the pool (waits up to timeout_ms for one). */
int p11_sign(struct p11_key *key, enum p11_sign_scheme scheme, int md_nid, int pss_salt_len,
	     const unsigned char *digest, size_t digest_len, unsigned char *sig,
	     size_t *sig_len, int timeout_ms, char **error_r);
size_t p11_sign_max_len(const struct p11_key *key);

/* Helpers, exposed for tests and keyd. */
/* DigestInfo (RFC 8017 9.2 note 1) for md_nid around digest; caller frees. */
int p11_digest_info(int md_nid, const unsigned char *digest, size_t digest_len,
		    unsigned char **out_r, size_t *out_len_r, char **error_r);
/* Raw r||s (2*n bytes) -> DER ECDSA-Sig-Value into out (at most *out_len). */
int p11_ecdsa_raw_to_der(const unsigned char *raw, size_t raw_len, unsigned char *out,
			 size_t *out_len, char **error_r);

#endif
