/* The certificate database: a directory of plain files naming certificates,
 * where their private keys live, trusted CAs with trust flags, and CRLs.
 * Read by tlsd workers (certificates, CAs, CRLs), keyd (key locators) and the
 * tokens CLI (which also writes it). Also the PIN file, sslpassword.conf.
 *
 * Layout of DIR (default <confdir>/certdb):
 *   index          one record per line, fields separated by TAB:
 *                    cert <nickname> <cert file> <key locator>
 *                    ca   <nickname> <cert file> <trust>
 *                  '#' lines are comments. nickname: printable UTF-8, no TAB,
 *                  no ':' (':' separates a token label from a nickname).
 *                  cert file: relative to DIR, PEM, leaf first then its chain.
 *                  key locator: "file:keys/<name>.p8" (encrypted PKCS#8 PEM,
 *                  internal software token, passphrase = sslpassword.conf entry
 *                  for SP_CERTDB_INTERNAL_TOKEN) or an RFC 7512 "pkcs11:" URI.
 *                  trust: comma list of "server" (trusted to issue server
 *                  certs), "client" (trusted to issue client certs), or "-".
 *   certs/ keys/ cas/   the files the index names
 *   crls/<name>.pem CRLs; each applies to the CA whose subject is its issuer
 * Every update is atomic: write a temp file in DIR, fsync, rename, fsync DIR.
 */
#ifndef SP_CERTDB_H
#define SP_CERTDB_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/x509.h>

#define SP_CERTDB_INTERNAL_TOKEN "Internal (Software) Token"
#define SP_CERTDB_MAX_ENTRIES 4096

enum sp_certdb_kind { SP_CERTDB_CERT, SP_CERTDB_CA };
#define SP_CERTDB_TRUST_SERVER 0x1
#define SP_CERTDB_TRUST_CLIENT 0x2

struct sp_certdb_entry {
	enum sp_certdb_kind kind;
	char *nickname;
	char *cert_file;    /* relative to the db dir */
	char *key_locator;  /* SP_CERTDB_CERT only: "file:..." or "pkcs11:..." */
	unsigned trust;     /* SP_CERTDB_CA only */
};

struct sp_certdb;

/* Reads DIR/index. A malformed line is an error naming the line. Caller frees. */
struct sp_certdb *sp_certdb_open(const char *dir, char **error_r);
void sp_certdb_free(struct sp_certdb **db);
const char *sp_certdb_dir(const struct sp_certdb *db);
size_t sp_certdb_count(const struct sp_certdb *db);
const struct sp_certdb_entry *sp_certdb_at(const struct sp_certdb *db, size_t i);
/* By nickname; also accepts "Token Label:nickname" where the label matches the
 * token of the entry's pkcs11 key locator (or SP_CERTDB_INTERNAL_TOKEN). */
const struct sp_certdb_entry *sp_certdb_find(const struct sp_certdb *db, const char *name);

/* The entry's certificate and chain: *leaf_r (caller frees with X509_free)
 * and *chain_r (intermediates, possibly empty; caller frees with
 * sk_X509_pop_free(.., X509_free)). chain_r may be NULL. */
int sp_certdb_load_cert(const struct sp_certdb *db, const struct sp_certdb_entry *e,
			X509 **leaf_r, STACK_OF(X509) **chain_r, char **error_r);
/* Every CRL in crls/ (caller frees with sk_X509_CRL_pop_free(.., X509_CRL_free)). */
int sp_certdb_load_crls(const struct sp_certdb *db, STACK_OF(X509_CRL) **crls_r, char **error_r);

/* Writers (the tokens CLI): add or replace an entry, remove one; atomic. */
int sp_certdb_put(struct sp_certdb *db, const struct sp_certdb_entry *e, char **error_r);
int sp_certdb_remove(struct sp_certdb *db, const char *nickname, char **error_r);
/* Writes data to DIR/relpath atomically (temp, fsync, rename, fsync dir) with mode. */
int sp_certdb_write_file(const struct sp_certdb *db, const char *relpath, const void *data,
			 size_t len, unsigned mode, char **error_r);

/* sslpassword.conf: "Token name:secret" per line ('#' comments). Refused if
 * group- or world-accessible, or not a regular file. Secrets are held in
 * wiped memory and registered with the logger's redaction list. */
struct sp_pinfile;
struct sp_pinfile *sp_pinfile_load(const char *path, char **error_r);
void sp_pinfile_free(struct sp_pinfile **pf);
/* The secret for token, or NULL. Valid until sp_pinfile_free. */
const char *sp_pinfile_get(const struct sp_pinfile *pf, const char *token);

#endif
