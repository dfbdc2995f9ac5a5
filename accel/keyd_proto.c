/* keyd's wire protocol (keyd_proto.h): typed encoders and strict decoders,
 * field by field through frame.h's marshalling; no raw structs on the wire. */
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <openssl/x509.h>

#include "accel/keyd_proto.h"

static int op_valid(const struct accel_op *op, const char **error_r)
{
	size_t hlen = accel_md_size(op->md);

	if (hlen == 0) {
		*error_r = "unknown digest";
		return -1;
	}
	if (op->digest_len != hlen) {
		*error_r = "digest length does not match the digest algorithm";
		return -1;
	}
	switch (op->mech) {
	case ACCEL_MECH_RSA_PKCS1:
	case ACCEL_MECH_ECDSA:
		if (op->mgf1_md != 0 || op->saltlen != 0) {
			*error_r = "PSS parameters on a non-PSS mechanism";
			return -1;
		}
		return 0;
	case ACCEL_MECH_RSA_PSS:
		if (accel_md_size(op->mgf1_md) == 0) {
			*error_r = "unknown MGF1 digest";
			return -1;
		}
		/* RFC 8017 9.1.1: sLen <= emLen - hLen - 2; emLen <= ACCEL_MAX_SIG */
		if (op->saltlen > ACCEL_MAX_SIG) {
			*error_r = "PSS salt length too large";
			return -1;
		}
		return 0;
	}
	*error_r = "unknown mechanism";
	return -1;
}

int keyd_req_encode(struct sp_msgbuf *b, const struct keyd_req *req)
{
	const char *why;

	sp_msgbuf_reset(b);
	sp_msg_put_u8(b, KEYD_PROTO_VERSION);
	sp_msg_put_u8(b, req->type);
	sp_msg_put_u32(b, req->id);
	switch (req->type) {
	case KEYD_REQ_SIGN:
		if (op_valid(&req->op, &why) < 0)
			return -1;
		sp_msg_put_bytes(b, req->key_id, ACCEL_KEY_ID_LEN);
		sp_msg_put_u8(b, req->op.mech);
		sp_msg_put_u8(b, req->op.md);
		sp_msg_put_u8(b, req->op.mgf1_md);
		sp_msg_put_u32(b, req->op.saltlen);
		sp_msg_put_bytes(b, req->op.digest, req->op.digest_len);
		break;
	case KEYD_REQ_PING:
		break;
	default:
		return -1;
	}
	return sp_msgbuf_finish(b);
}

int keyd_req_decode(const uint8_t *body, size_t len, struct keyd_req *req, const char **error_r)
{
	struct sp_msgrd r;
	const uint8_t *p;
	size_t n;

	memset(req, 0, sizeof(*req));
	sp_msgrd_init(&r, body, len);
	if (sp_msg_get_u8(&r) != KEYD_PROTO_VERSION || r.error) {
		*error_r = "unknown protocol version";
		return -1;
	}
	req->type = sp_msg_get_u8(&r);
	req->id = sp_msg_get_u32(&r);
	if (r.error) {
		*error_r = "truncated header";
		return -1;
	}
	switch (req->type) {
	case KEYD_REQ_SIGN:
		p = sp_msg_get_bytes(&r, ACCEL_KEY_ID_LEN, &n);
		if (p == NULL || n != ACCEL_KEY_ID_LEN) {
			*error_r = "key id is not 32 bytes";
			return -1;
		}
		memcpy(req->key_id, p, ACCEL_KEY_ID_LEN);
		req->op.mech = sp_msg_get_u8(&r);
		req->op.md = sp_msg_get_u8(&r);
		req->op.mgf1_md = sp_msg_get_u8(&r);
		req->op.saltlen = sp_msg_get_u32(&r);
		p = sp_msg_get_bytes(&r, ACCEL_MAX_DIGEST, &n);
		if (p == NULL) {
			*error_r = "bad digest field";
			return -1;
		}
		memcpy(req->op.digest, p, n);
		req->op.digest_len = n;
		if (op_valid(&req->op, error_r) < 0)
			return -1;
		break;
	case KEYD_REQ_PING:
		break;
	default:
		*error_r = "unknown request type";
		return -1;
	}
	if (!sp_msgrd_done(&r)) {
		*error_r = r.error ? "truncated request" : "trailing bytes after request";
		return -1;
	}
	return 0;
}

static int status_known(unsigned status)
{
	return status <= ACCEL_ERR_SHUTDOWN;
}

int keyd_reply_encode(struct sp_msgbuf *b, const struct keyd_reply *reply)
{
	if (!status_known(reply->status) || reply->sig_len > ACCEL_MAX_SIG ||
	    (reply->status != ACCEL_OK && reply->sig_len != 0))
		return -1;
	sp_msgbuf_reset(b);
	sp_msg_put_u8(b, KEYD_PROTO_VERSION);
	sp_msg_put_u8(b, KEYD_REPLY);
	sp_msg_put_u32(b, reply->id);
	sp_msg_put_u8(b, reply->status);
	sp_msg_put_bytes(b, reply->sig, reply->sig_len);
	return sp_msgbuf_finish(b);
}

int keyd_reply_decode(const uint8_t *body, size_t len, struct keyd_reply *reply,
		      const char **error_r)
{
	struct sp_msgrd r;
	const uint8_t *p;
	size_t n;

	reply->id = 0;
	reply->status = 0;
	reply->sig_len = 0;  /* sig[] is written only on success */
	sp_msgrd_init(&r, body, len);
	if (sp_msg_get_u8(&r) != KEYD_PROTO_VERSION || r.error) {
		*error_r = "unknown protocol version";
		return -1;
	}
	if (sp_msg_get_u8(&r) != KEYD_REPLY || r.error) {
		*error_r = "unknown reply type";
		return -1;
	}
	reply->id = sp_msg_get_u32(&r);
	reply->status = sp_msg_get_u8(&r);  /* a PING's OK carries no signature */
	p = sp_msg_get_bytes(&r, ACCEL_MAX_SIG, &n);
	if (r.error || p == NULL) {
		*error_r = "truncated reply or signature too long";
		return -1;
	}
	if (!status_known(reply->status)) {
		*error_r = "unknown status";
		return -1;
	}
	if (reply->status != ACCEL_OK && n != 0) {
		*error_r = "signature on a failed reply";
		return -1;
	}
	if (!sp_msgrd_done(&r)) {
		*error_r = "trailing bytes after reply";
		return -1;
	}
	memcpy(reply->sig, p, n);
	reply->sig_len = n;
	return 0;
}

int keyd_ctl_encode_newchan(struct sp_msgbuf *b)
{
	sp_msgbuf_reset(b);
	sp_msg_put_u8(b, KEYD_PROTO_VERSION);
	sp_msg_put_u8(b, KEYD_CTL_NEWCHAN);
	return sp_msgbuf_finish(b);
}

int keyd_ctl_encode_reload(struct sp_msgbuf *b)
{
	sp_msgbuf_reset(b);
	sp_msg_put_u8(b, KEYD_PROTO_VERSION);
	sp_msg_put_u8(b, KEYD_CTL_RELOAD);
	return sp_msgbuf_finish(b);
}

int keyd_ctl_decode(const uint8_t *body, size_t len, const char **error_r)
{
	struct sp_msgrd r;
	uint8_t type;

	sp_msgrd_init(&r, body, len);
	if (sp_msg_get_u8(&r) != KEYD_PROTO_VERSION || r.error) {
		*error_r = "unknown protocol version";
		return -1;
	}
	type = sp_msg_get_u8(&r);
	if (r.error || (type != KEYD_CTL_NEWCHAN && type != KEYD_CTL_RELOAD)) {
		*error_r = "unknown control message";
		return -1;
	}
	if (!sp_msgrd_done(&r)) {
		*error_r = "trailing bytes after control message";
		return -1;
	}
	return type;
}

int keyd_key_id(const EVP_PKEY *pkey, uint8_t id[ACCEL_KEY_ID_LEN])
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(pkey, &der);

	if (len <= 0)
		return -1;
	SHA256(der, (size_t)len, id);
	OPENSSL_free(der);
	return 0;
}
