/* The `pkcs11` backend's constructors (accel_pkcs11.c). Kept in their own
 * header because accel.h belongs to accel/'s owner; they may move into
 * accel.h beside accel_soft_new. */
#ifndef ACCEL_PKCS11_H
#define ACCEL_PKCS11_H

#include <stddef.h>

#include "accel/accel.h"
#include "pkcs11/pkcs11.h"

/* A backend on one logged-in token: `threads` worker threads (0 = the
 * token's session pool size, so no worker waits for a session), at most
 * max_queue operations queued or running. The backend does not own tok:
 * free the backend (engine) before p11_token_close. NULL with *error_r. */
struct accel_backend *accel_pkcs11_new(struct p11_token *tok, unsigned threads,
				       size_t max_queue, char **error_r);
/* A backend key handle for key (found with p11_key_find on the same token);
 * takes ownership of key: the engine frees it through key_free. */
void *accel_pkcs11_key(struct p11_key *key);

#endif
