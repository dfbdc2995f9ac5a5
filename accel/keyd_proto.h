/* keyd's wire protocol, over frame.h frames on unix stream sockets.
 * Pure: encoders fill an sp_msgbuf, decoders check one frame body.
 *
 * Worker channel (tlsd worker <-> keyd), many requests in flight, replies in
 * any order, matched by id:
 *   request : u8 version(1), u8 type, u32 id, then
 *     SIGN(1): bytes key_id (exactly 32), u8 mech (accel_mech), u8 md,
 *              u8 mgf1_md (0 unless PSS), u32 saltlen (0 unless PSS),
 *              bytes digest (exactly accel_md_size(md))
 *     PING(2): nothing
 *   reply   : u8 version(1), u8 type REPLY(0x81), u32 id, u8 status
 *              (accel_status), bytes sig (empty unless status == OK;
 *              at most ACCEL_MAX_SIG)
 * Control channel (tlsd master -> keyd):
 *   u8 version(1), u8 type NEWCHAN(1); the worker channel's socket rides on
 *   the same sendmsg (SCM_RIGHTS).
 *   u8 version(1), u8 type RELOAD(2): re-read sealpost.conf, the certdb and
 *   the password file; load new keys, drop removed ones, keep serving
 *   meanwhile; a reload that fails leaves the running key set as it was.
 * Every field is checked: a known version and type, exact sizes, a known
 * mechanism and digest, no trailing bytes. A malformed frame closes the
 * channel it came on. */
#ifndef KEYD_PROTO_H
#define KEYD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "accel/accel.h"
#include "common/frame.h"

#define KEYD_PROTO_VERSION 1
#define KEYD_MAX_FRAME 2048   /* largest body on any keyd channel */

#define KEYD_REQ_SIGN 1
#define KEYD_REQ_PING 2
#define KEYD_REPLY 0x81
#define KEYD_CTL_NEWCHAN 1
#define KEYD_CTL_RELOAD 2

/* keyd's exit status when its configuration cannot be used at start (a wrong
 * PIN, a key that does not match its certificate): the master does not
 * restart it until the next reload, so a wrong PIN is never retried. */
#define KEYD_EXIT_CONFIG 78   /* sysexits.h EX_CONFIG */

struct keyd_req {
	uint8_t type;                    /* KEYD_REQ_* */
	uint32_t id;
	/* SIGN */
	uint8_t key_id[ACCEL_KEY_ID_LEN];
	struct accel_op op;
};

struct keyd_reply {
	uint32_t id;
	uint8_t status;                  /* accel_status */
	uint8_t sig[ACCEL_MAX_SIG];
	size_t sig_len;
};

/* Encoders: reset b (initialised with max_body >= KEYD_MAX_FRAME) and leave
 * a whole frame in b->data/b->len. 0, or -1 if req/reply is not valid as
 * the decoder would judge it. */
int keyd_req_encode(struct sp_msgbuf *b, const struct keyd_req *req);
int keyd_reply_encode(struct sp_msgbuf *b, const struct keyd_reply *reply);
int keyd_ctl_encode_newchan(struct sp_msgbuf *b);
int keyd_ctl_encode_reload(struct sp_msgbuf *b);

/* Decoders over one frame body. 0, or -1 with *error_r (static string). */
int keyd_req_decode(const uint8_t *body, size_t len, struct keyd_req *req, const char **error_r);
int keyd_reply_decode(const uint8_t *body, size_t len, struct keyd_reply *reply,
		      const char **error_r);
/* Returns the control message type (KEYD_CTL_NEWCHAN, KEYD_CTL_RELOAD) or -1. */
int keyd_ctl_decode(const uint8_t *body, size_t len, const char **error_r);

/* The key id both ends use: SHA-256 of the DER SubjectPublicKeyInfo of
 * pkey (public half is enough). 0, or -1 if pkey cannot be encoded. */
int keyd_key_id(const EVP_PKEY *pkey, uint8_t id[ACCEL_KEY_ID_LEN]);

#endif
