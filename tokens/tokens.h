/* tokens/: the administrator's CLI (bin/tokens) over the certificate
 * database (certdb/), PKCS#11 tokens and modules (pkcs11/) and CRLs. This
 * header is the face the sub-command files share: the parsed command line,
 * the exit codes, and the helpers every sub-command leans on (opening the
 * certdb, the PIN file, tokens; keys of the internal software token;
 * certificate I/O; pending key records). Runs as one short-lived process. */
#ifndef SP_TOKENS_H
#define SP_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certdb/certdb.h"
#include "pkcs11/pkcs11.h"

/* Exit codes (also in `tokens --help` and docs/TOKENS.md). */
enum tokens_exit {
	TOK_OK = 0,
	TOK_EUSAGE = 1,     /* bad command line */
	TOK_ENOTFOUND = 2,  /* unknown nickname, token, module, file */
	TOK_EPASSWORD = 3,  /* wrong passphrase, PIN or PKCS#12 password; missing secret */
	TOK_ETOKEN = 4,     /* PKCS#11 module or token error */
	TOK_EREFUSED = 5,   /* refused: key mismatch, not extractable, exists, older CRL, bad signature */
	TOK_EFAIL = 6,      /* anything else: I/O, certdb, OpenSSL */
};

/* Options; which a sub-command accepts is its mask of these bits. */
enum tokens_opt {
	TO_DB = 1u << 0,        /* -d */
	TO_PWFILE = 1u << 1,    /* -W */
	TO_TOKEN = 1u << 2,     /* --token */
	TO_P12PASS = 1u << 3,   /* -O */
	TO_MODULE = 1u << 4,    /* --module */
	TO_MODFILE = 1u << 5,   /* --modules-file */
	TO_SUBJECT = 1u << 6,   /* --name --org --org-unit --city --state --country -S --san */
	TO_DAYS = 1u << 7,      /* --days */
	TO_KEY = 1u << 8,       /* --key */
	TO_OUT = 1u << 9,       /* -o */
	TO_FORMAT = 1u << 10,   /* -F */
	TO_CA = 1u << 11,       /* -C */
	TO_TRUST = 1u << 12,    /* --trust */
	TO_NICK = 1u << 13,     /* -n */
	TO_LABEL = 1u << 14,    /* --label */
	TO_NEWPIN = 1u << 15,   /* --new-pin-file */
	TO_NOP11KIT = 1u << 16, /* --no-p11kit */
	TO_FORCE = 1u << 17,    /* --force */
	TO_COMMON = TO_DB | TO_PWFILE | TO_MODULE | TO_MODFILE | TO_NOP11KIT,
};

#define TOKENS_MAX_SANS 32

struct tokens_args {
	const char *cmd;            /* "list-certs", "crl add", ... */
	unsigned given;             /* enum tokens_opt bits seen */
	const char *db;             /* -d; default SP_SYSCONFDIR/certdb */
	const char *pwfile;         /* -W; default <db>/../sslpassword.conf */
	const char *token;          /* --token */
	const char *p12pass_file;   /* -O */
	const char *module;         /* --module */
	const char *modules_file;   /* --modules-file */
	const char *cn, *org, *ou, *city, *state, *country, *dn;
	const char *sans[TOKENS_MAX_SANS];
	size_t nsans;
	int days;                   /* 0: default */
	const char *key;            /* rsa2048 | rsa3072 | ecp256 | ecp384 */
	const char *out;            /* -o */
	bool ascii;                 /* -F ascii */
	bool ca;                    /* -C */
	const char *trust;          /* --trust */
	const char *nick;           /* -n */
	const char *label;          /* --label */
	const char *newpin_file;    /* --new-pin-file */
	bool no_p11kit;
	bool force;
	char **pos;                 /* positional arguments */
	int npos;
};

/* A sub-command: name, the options it takes, its usage text, its handler.
 * Handlers return an enum tokens_exit and print their own errors. */
struct tokens_cmd {
	const char *name;
	unsigned opts;
	int min_pos, max_pos;
	const char *usage;
	int (*run)(struct tokens_args *a);
};

/* The tables of the sub-command files (each ends with a NULL name). */
extern const struct tokens_cmd tokens_cmds_certdb[];
extern const struct tokens_cmd tokens_cmds_cert[];
extern const struct tokens_cmd tokens_cmds_request[];
extern const struct tokens_cmd tokens_cmds_pkcs12[];
extern const struct tokens_cmd tokens_cmds_crl[];
extern const struct tokens_cmd tokens_cmds_module[];
extern const struct tokens_cmd tokens_cmds_token[];

/* ---- messages (tokens_util.c) ---- */
/* "tokens: <message>" on stderr; returns code. */
int tok_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tok_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* As tok_fail, and frees err (the "error_r" of a library call). */
int tok_fail_err(int code, char *err, const char *what);
/* The deepest OpenSSL error as text (fresh string), queue emptied. */
char *tok_ssl_error(void);
/* Exit code for a pkcs11/ error text: PIN -> 3, no token -> 2, else 4. */
int tok_p11_code(const char *err);

/* ---- the certdb and the PIN file (tokens_db.c) ---- */
/* The certdb directory of a (the default if -d is absent). */
const char *tok_db_dir(const struct tokens_args *a);
/* -W, else <db>/../sslpassword.conf; fresh string. */
char *tok_pwfile_path(const struct tokens_args *a);
/* Opens the certdb; prints the error and returns NULL if it cannot. */
struct sp_certdb *tok_db_open(const struct tokens_args *a, int *code_r);
/* Loads the PIN file (prints errors). required=false: a missing default
 * file yields NULL with *code_r = TOK_OK. */
struct sp_pinfile *tok_pins_load(const struct tokens_args *a, bool required, int *code_r);
/* Internal token passphrase from pins; prints an error if absent. */
const char *tok_internal_pass(const struct sp_pinfile *pins, int *code_r);
/* A file-system-safe name for nickname: [A-Za-z0-9._-], others '_'; fresh. */
char *tok_safe_name(const char *nickname);
/* "certs/<safe>.pem", "keys/<safe>.p8", "cas/<safe>.pem", "crls/<safe>.pem" that
 * no other entry than nickname uses; fresh string. */
char *tok_db_relpath(const struct sp_certdb *db, const char *sub, const char *nickname,
		     const char *ext);
/* Whether the entry's key is in the internal token. */
bool tok_entry_internal(const struct sp_certdb_entry *e);

/* ---- pending keys: a key generated for a request, no certificate yet ----
 * DIR/pending, owned by this CLI (daemons never read it): lines
 * "<nickname> TAB <key locator>". Written atomically with sp_certdb_write_file. */
struct tok_pending {
	char *nickname, *locator;
};
int tok_pending_load(const struct sp_certdb *db, struct tok_pending **p_r, size_t *n_r,
		     char **error_r);
void tok_pending_free(struct tok_pending *p, size_t n);
/* The locator pending for nickname (fresh string) or NULL. */
char *tok_pending_get(const struct sp_certdb *db, const char *nickname);
/* locator NULL removes nickname's record. */
int tok_pending_set(struct sp_certdb *db, const char *nickname, const char *locator,
		    char **error_r);

/* ---- PKCS#11 (tokens_p11.c) ---- */
/* A context with the module list (--modules-file or <db>/../pkcs11-modules.conf),
 * p11-kit's modules unless --no-p11kit, and --module. Prints errors. */
struct p11_ctx *tok_p11_ctx(const struct tokens_args *a, int *code_r);
/* Opens the token by label or URI; logs in with pins when non-NULL. Prints errors. */
struct p11_token *tok_p11_open(struct p11_ctx *ctx, const char *spec,
			       const struct sp_pinfile *pins, int *code_r);
/* The token label in a pkcs11: key locator (fresh), or NULL. */
char *tok_locator_token(const char *locator);
/* CKA_LABEL / CKA_ID of a pkcs11: locator (fresh), for p11_key_find. */
int tok_locator_object(const char *locator, char **label_r, unsigned char **id_r,
		       size_t *id_len_r);

/* ---- keys and certificates (tokens_x509.c) ---- */
/* "rsa2048" etc. -> a fresh key. */
EVP_PKEY *tok_keygen_soft(const char *kind, char **error_r);
int tok_keygen_p11_type(const char *kind, enum p11_keygen_type *t_r);
/* Encrypted PKCS#8 PEM (AES-256-CBC, PBKDF2) with pass; caller frees *pem_r. */
int tok_key_to_p8(EVP_PKEY *pkey, const char *pass, char **pem_r, size_t *len_r,
		  char **error_r);
/* Reads an internal key file: TOK_OK, TOK_EPASSWORD (wrong passphrase), other codes. */
int tok_key_load_file(const struct sp_certdb *db, const char *locator, const char *pass,
		      EVP_PKEY **pkey_r);
/* Builds an X509_NAME from -S or the subject options; NULL + message. */
X509_NAME *tok_subject(const struct tokens_args *a, char **error_r);
/* SANs ("DNS:x,IP:y" lists) as a GENERAL_NAMES extension, or NULL if none given. */
X509_EXTENSION *tok_san_ext(const struct tokens_args *a, const char *default_dns,
			    char **error_r);
/* A self-signed server certificate for pkey. */
X509 *tok_selfsign(EVP_PKEY *pkey, X509_NAME *subject, X509_EXTENSION *san, int days,
		   char **error_r);
/* Reads certificates from a PEM (leaf first, chain after) or DER file. */
int tok_read_certs(const char *path, X509 **leaf_r, STACK_OF(X509) **chain_r, char **error_r);
/* Leaf and chain as PEM text; caller frees. */
char *tok_certs_pem(X509 *leaf, STACK_OF(X509) *chain, size_t *len_r);
/* "2024/05/01 12:00" into buf (UTC). */
void tok_time(const ASN1_TIME *t, char *buf, size_t cap);
/* One-line RFC 2253 name into a fresh string. */
char *tok_name(const X509_NAME *n);
/* The CN of a name (or the full name if none), fresh. */
char *tok_name_cn(const X509_NAME *n);
/* "AB:CD:..." fingerprint with md; fresh. */
char *tok_fingerprint(X509 *x, const EVP_MD *md);
bool tok_self_signed(X509 *x);
/* Writes cert PEM + puts the entry. */
int tok_store_cert(struct sp_certdb *db, const char *nickname, X509 *leaf,
		   STACK_OF(X509) *chain, const char *locator, char **error_r);

/* ---- shared steps of the sub-commands (cmd_cert.c) ---- */
/* Makes a key in the internal token and a self-signed certificate for it,
 * stored as nickname. pass: the internal token's passphrase. */
int tok_add_selfsign(struct sp_certdb *db, const struct tokens_args *a, const char *pass,
		     const char *nickname, X509_NAME *subject);
/* The public key of the key a locator names (decrypting an internal key,
 * logging in to a token with the -W file). *pub_r: caller frees. */
int tok_locator_pubkey(const struct tokens_args *a, const struct sp_certdb *db,
		       const char *locator, EVP_PKEY **pub_r);
/* The certdb entry named exactly nickname, or NULL. */
const struct sp_certdb_entry *tok_db_entry(const struct sp_certdb *db, const char *nickname);

/* Refuses a nickname already in the certdb or pending (prints why). */
int tok_check_new_nickname(const struct sp_certdb *db, const char *nick);

/* ---- keys on PKCS#11 tokens (cmd_request.c) ---- */
/* Generates the key pair nick (a->key) on token a->token, logging in with the
 * -W file, and records it as pending in db. On TOK_OK the caller closes
 * *key_r, *tok_r, *ctx_r (in that order) and frees *locator_r. */
int tok_token_keygen(const struct tokens_args *a, struct sp_certdb *db, const char *nick,
		     struct p11_ctx **ctx_r, struct p11_token **tok_r, struct p11_key **key_r,
		     char **locator_r);

/* ---- secrets (tokens_secret.c) ---- */
/* First line of a file (no newline), freshly allocated; wipe with sp_free_secret. */
char *tok_secret_file(const char *path, char **error_r);
/* No-echo prompt on /dev/tty; confirm: asks twice. */
char *tok_secret_prompt(const char *prompt, bool confirm, char **error_r);
/* n random bytes as printable text (base64url), fresh. */
char *tok_random_secret(size_t nbytes);
void tok_secret_free(char **s);

#endif
