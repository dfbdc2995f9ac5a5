/* Private to pkcs11/: the structures behind the handles of pkcs11.h. */
#ifndef SP_P11_INT_H
#define SP_P11_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "pkcs11/pkcs11.h"

struct p11_module {
	char *name;
	char *path;               /* NULL for a module p11-kit's registry names */
	CK_FUNCTION_LIST *fn;
	bool from_p11kit;         /* one of the p11_kit_modules_load list */
};

struct p11_ctx {
	struct p11_module **mods;
	size_t nmods;
	CK_FUNCTION_LIST **p11kit_list;  /* what p11_kit_modules_load returned */
	struct p11_modlist *modlist;     /* may be NULL */
	unsigned sessions;
};

struct p11_token {
	struct p11_ctx *ctx;
	struct p11_module *mod;
	CK_FUNCTION_LIST *fn;
	CK_SLOT_ID slot;
	char label[33];
	bool logged_in;
	/* the pool: free stack of sessions; all guarded by lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	CK_SESSION_HANDLE *free_sess;
	unsigned nfree;
	unsigned size;            /* sessions owned by the pool */
	CK_SESSION_HANDLE *all;   /* every session the pool owns, for close */
};

struct p11_key {
	struct p11_token *tok;
	CK_OBJECT_HANDLE priv;
	enum p11_key_type type;
	unsigned bits;
	size_t sig_max;
	EVP_PKEY *pub;
	unsigned char *id;
	size_t id_len;
	char *label;
};

/* p11_keys.c */
int p11_find_objects(struct p11_token *tok, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
		     const char *label, const unsigned char *id, size_t id_len,
		     CK_OBJECT_HANDLE *out, size_t max, size_t *count_r, char **error_r);
/* Reads one variable-length attribute; *val_r malloc'd (caller frees). */
int p11_get_attr(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
		 CK_ATTRIBUTE_TYPE type, unsigned char **val_r, size_t *len_r, char **error_r);
EVP_PKEY *p11_read_public(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
			  CK_KEY_TYPE kt, char **error_r);
struct p11_key *p11_key_from_handle(struct p11_token *tok, CK_SESSION_HANDLE s,
				    CK_OBJECT_HANDLE priv, char **error_r);

/* "WHAT: <OpenSSL's first queued error>"; empties the queue. */
char *p11_ossl_error(const char *what);

/* Copies a blank-padded PKCS#11 string into a C string (trailing blanks off). */
void p11_padded_to_str(char *dst, size_t dstsize, const unsigned char *src, size_t srclen);



/* p11_session.c: the pool behind p11_session_get/put */
int p11_pool_open(struct p11_token *tok, unsigned want, CK_SESSION_HANDLE first,
		  char **error_r);
void p11_pool_close(struct p11_token *tok);
CK_FLAGS p11_session_flags(void);
#endif
