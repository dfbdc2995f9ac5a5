/* Private to tlsd's keyd client: the seam between the OpenSSL provider
 * (tlsd_keyprov.c: keymgmt + signature for handle keys) and the channel to
 * keyd (tlsd_keyclient.c: requests, replies, async jobs). */
#ifndef TLSD_KEYPROV_H
#define TLSD_KEYPROV_H

#include <stddef.h>
#include <stdint.h>

#include "accel/accel.h"

struct tlsd_keyclient;

#define TLSD_KEYPROV_NAME "sealpost-keyd"
#define TLSD_KEYPROV_PROPQ "provider=sealpost-keyd"
/* Import parameters that turn a public key into a handle: the key id
 * (octet string, 32 bytes) and the client (octet pointer to the
 * struct tlsd_keyclient; the key takes a reference). */
#define TLSD_KEYPROV_PARAM_KEY_ID "sealpost-key-id"
#define TLSD_KEYPROV_PARAM_CLIENT "sealpost-keyclient"

/* Registers the provider as a builtin of the default library context and
 * loads it next to "default" (once per process). 0, or -1 with *error_r. */
int tlsd_keyprov_load(char **error_r);

/* Sends op to keyd and pauses the calling async job until the reply.
 * Returns 1 with the signature in sig (*sig_len bytes, at most sig_cap), or
 * 0 with an OpenSSL error raised (no async job, keyd gone, keyd refused,
 * timeout). */
int tlsd_keyclient_sign(struct tlsd_keyclient *kc, const uint8_t key_id[ACCEL_KEY_ID_LEN],
			const struct accel_op *op, uint8_t *sig, size_t *sig_len, size_t sig_cap);
void tlsd_keyclient_ref(struct tlsd_keyclient *kc);
void tlsd_keyclient_unref(struct tlsd_keyclient *kc);

#endif
