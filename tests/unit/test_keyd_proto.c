/* keyd's wire protocol (accel/keyd_proto.h): round trips of every message,
 * and each way a request, reply or control message can be malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "accel/keyd_proto.h"

static struct sp_msgbuf b;

static int setup(void **state)
{
	sp_msgbuf_init(&b, KEYD_MAX_FRAME);
	return 0;
}

static int teardown(void **state)
{
	sp_msgbuf_release(&b);
	return 0;
}

static struct keyd_req sign_req(uint8_t mech)
{
	struct keyd_req r;

	memset(&r, 0, sizeof(r));
	r.type = KEYD_REQ_SIGN;
	r.id = 0xdeadbeef;
	for (size_t i = 0; i < ACCEL_KEY_ID_LEN; i++)
		r.key_id[i] = (uint8_t)i;
	r.op.mech = mech;
	r.op.md = ACCEL_MD_SHA384;
	r.op.digest_len = 48;
	memset(r.op.digest, 0xab, 48);
	if (mech == ACCEL_MECH_RSA_PSS) {
		r.op.mgf1_md = ACCEL_MD_SHA256;
		r.op.saltlen = 48;
	}
	return r;
}

/* body of the frame in b */
#define BODY (b.data + SP_FRAME_HDR)
#define BODYLEN (b.len - SP_FRAME_HDR)

static void test_sign_roundtrip(void **state)
{
	static const uint8_t mechs[] = { ACCEL_MECH_RSA_PKCS1, ACCEL_MECH_RSA_PSS, ACCEL_MECH_ECDSA };

	for (size_t m = 0; m < sizeof(mechs); m++) {
		struct keyd_req in = sign_req(mechs[m]), out;
		const char *why = NULL;

		assert_int_equal(keyd_req_encode(&b, &in), 0);
		assert_int_equal(keyd_req_decode(BODY, BODYLEN, &out, &why), 0);
		assert_int_equal(out.type, KEYD_REQ_SIGN);
		assert_int_equal(out.id, in.id);
		assert_memory_equal(out.key_id, in.key_id, ACCEL_KEY_ID_LEN);
		assert_int_equal(out.op.mech, in.op.mech);
		assert_int_equal(out.op.md, in.op.md);
		assert_int_equal(out.op.mgf1_md, in.op.mgf1_md);
		assert_int_equal(out.op.saltlen, in.op.saltlen);
		assert_int_equal(out.op.digest_len, 48);
		assert_memory_equal(out.op.digest, in.op.digest, 48);
	}
}

static void test_ping_roundtrip(void **state)
{
	struct keyd_req in = { .type = KEYD_REQ_PING, .id = 42 }, out;
	const char *why;

	assert_int_equal(keyd_req_encode(&b, &in), 0);
	assert_int_equal(BODYLEN, 6);
	assert_int_equal(keyd_req_decode(BODY, BODYLEN, &out, &why), 0);
	assert_int_equal(out.type, KEYD_REQ_PING);
	assert_int_equal(out.id, 42);
}

static void test_reply_roundtrip(void **state)
{
	struct keyd_reply in, out;
	const char *why;

	memset(&in, 0, sizeof(in));
	in.id = 7;
	in.status = ACCEL_OK;
	in.sig_len = ACCEL_MAX_SIG;
	memset(in.sig, 0x5a, in.sig_len);
	assert_int_equal(keyd_reply_encode(&b, &in), 0);
	assert_int_equal(keyd_reply_decode(BODY, BODYLEN, &out, &why), 0);
	assert_int_equal(out.id, 7);
	assert_int_equal(out.status, ACCEL_OK);
	assert_int_equal(out.sig_len, ACCEL_MAX_SIG);
	assert_memory_equal(out.sig, in.sig, ACCEL_MAX_SIG);

	in.status = ACCEL_ERR_UNKNOWN_KEY;
	in.sig_len = 0;
	assert_int_equal(keyd_reply_encode(&b, &in), 0);
	assert_int_equal(keyd_reply_decode(BODY, BODYLEN, &out, &why), 0);
	assert_int_equal(out.status, ACCEL_ERR_UNKNOWN_KEY);
	assert_int_equal(out.sig_len, 0);
}

static void test_ctl_roundtrip(void **state)
{
	const char *why;

	assert_int_equal(keyd_ctl_encode_newchan(&b), 0);
	assert_int_equal(keyd_ctl_decode(BODY, BODYLEN, &why), KEYD_CTL_NEWCHAN);
}

static void test_encoders_refuse_invalid(void **state)
{
	struct keyd_req r = sign_req(ACCEL_MECH_ECDSA);
	struct keyd_reply rep;

	r.op.digest_len = 32;  /* SHA-384 is 48 */
	assert_int_equal(keyd_req_encode(&b, &r), -1);
	r = sign_req(9);
	assert_int_equal(keyd_req_encode(&b, &r), -1);
	r = sign_req(ACCEL_MECH_ECDSA);
	r.type = 77;
	assert_int_equal(keyd_req_encode(&b, &r), -1);
	memset(&rep, 0, sizeof(rep));
	rep.status = ACCEL_ERR_FAILED;
	rep.sig_len = 4;  /* a signature on a failure */
	assert_int_equal(keyd_reply_encode(&b, &rep), -1);
	rep.status = 200;
	rep.sig_len = 0;
	assert_int_equal(keyd_reply_encode(&b, &rep), -1);
}

/* Builds a SIGN body field by field so each field can be wrong. */
struct sign_fields {
	uint8_t version, type;
	size_t key_id_len;
	uint8_t mech, md, mgf1_md;
	uint32_t saltlen;
	size_t digest_len;
	size_t trailing;
};

static const struct sign_fields good = {
	KEYD_PROTO_VERSION, KEYD_REQ_SIGN, 32, ACCEL_MECH_ECDSA, ACCEL_MD_SHA256, 0, 0, 32, 0
};

static void build(const struct sign_fields *f)
{
	uint8_t zero[128] = { 0 };

	sp_msgbuf_reset(&b);
	sp_msg_put_u8(&b, f->version);
	sp_msg_put_u8(&b, f->type);
	sp_msg_put_u32(&b, 1);
	sp_msg_put_bytes(&b, zero, f->key_id_len);
	sp_msg_put_u8(&b, f->mech);
	sp_msg_put_u8(&b, f->md);
	sp_msg_put_u8(&b, f->mgf1_md);
	sp_msg_put_u32(&b, f->saltlen);
	sp_msg_put_bytes(&b, zero, f->digest_len);
	for (size_t i = 0; i < f->trailing; i++)
		sp_msg_put_u8(&b, 0);
	assert_int_equal(sp_msgbuf_finish(&b), 0);
}

static void expect_bad(const struct sign_fields *f, const char *what)
{
	struct keyd_req out;
	const char *why = NULL;

	build(f);
	if (keyd_req_decode(BODY, BODYLEN, &out, &why) != -1)
		fail_msg("accepted a request with %s", what);
	assert_non_null(why);
}

static void test_malformed_requests(void **state)
{
	struct sign_fields f = good;
	struct keyd_req out;
	const char *why;

	build(&f);
	assert_int_equal(keyd_req_decode(BODY, BODYLEN, &out, &why), 0);

	f = good; f.version = 2; expect_bad(&f, "version 2");
	f = good; f.version = 0; expect_bad(&f, "version 0");
	f = good; f.type = 3; expect_bad(&f, "an unknown type");
	f = good; f.type = KEYD_REPLY; expect_bad(&f, "a reply type");
	f = good; f.key_id_len = 31; expect_bad(&f, "a 31-byte key id");
	f = good; f.key_id_len = 33; expect_bad(&f, "a 33-byte key id");
	f = good; f.key_id_len = 0; expect_bad(&f, "an empty key id");
	f = good; f.mech = 0; expect_bad(&f, "mechanism 0");
	f = good; f.mech = 4; expect_bad(&f, "mechanism 4");
	f = good; f.md = 0; expect_bad(&f, "digest 0");
	f = good; f.md = 6; expect_bad(&f, "digest 6");
	f = good; f.digest_len = 31; expect_bad(&f, "a short digest");
	f = good; f.digest_len = 48; expect_bad(&f, "a SHA-384-sized SHA-256 digest");
	f = good; f.digest_len = 65; expect_bad(&f, "a digest over 64 bytes");
	f = good; f.mgf1_md = ACCEL_MD_SHA256; expect_bad(&f, "MGF1 on ECDSA");
	f = good; f.saltlen = 32; expect_bad(&f, "a salt on ECDSA");
	f = good; f.mech = ACCEL_MECH_RSA_PSS; expect_bad(&f, "PSS without MGF1 digest");
	f = good; f.mech = ACCEL_MECH_RSA_PSS; f.mgf1_md = 9; expect_bad(&f, "PSS with MGF1 digest 9");
	f = good; f.mech = ACCEL_MECH_RSA_PSS; f.mgf1_md = ACCEL_MD_SHA256; f.saltlen = 1u << 20;
	expect_bad(&f, "a huge salt");
	f = good; f.trailing = 1; expect_bad(&f, "a trailing byte");

	/* truncated at every length */
	f = good;
	build(&f);
	for (size_t len = 0; len < BODYLEN; len++) {
		if (keyd_req_decode(BODY, len, &out, &why) != -1)
			fail_msg("accepted a request truncated to %zu bytes", len);
	}
	/* a ping with a payload */
	{
		static const uint8_t ping_extra[] = { 1, KEYD_REQ_PING, 0, 0, 0, 1, 0 };

		assert_int_equal(keyd_req_decode(ping_extra, sizeof(ping_extra), &out, &why), -1);
	}
}

static void test_malformed_replies(void **state)
{
	struct keyd_reply in, out;
	const char *why;
	uint8_t body[64];

	memset(&in, 0, sizeof(in));
	in.id = 1;
	in.status = ACCEL_OK;
	in.sig_len = 8;
	assert_int_equal(keyd_reply_encode(&b, &in), 0);
	for (size_t len = 0; len < BODYLEN; len++)
		assert_int_equal(keyd_reply_decode(BODY, len, &out, &why), -1);
	/* trailing byte */
	memcpy(body, BODY, BODYLEN);
	body[BODYLEN] = 0;
	assert_int_equal(keyd_reply_decode(body, BODYLEN + 1, &out, &why), -1);
	/* wrong version, wrong type, unknown status, sig on failure */
	memcpy(body, BODY, BODYLEN);
	body[0] = 9;
	assert_int_equal(keyd_reply_decode(body, BODYLEN, &out, &why), -1);
	memcpy(body, BODY, BODYLEN);
	body[1] = KEYD_REQ_SIGN;
	assert_int_equal(keyd_reply_decode(body, BODYLEN, &out, &why), -1);
	memcpy(body, BODY, BODYLEN);
	body[6] = 99;
	assert_int_equal(keyd_reply_decode(body, BODYLEN, &out, &why), -1);
	memcpy(body, BODY, BODYLEN);
	body[6] = ACCEL_ERR_FAILED;
	assert_int_equal(keyd_reply_decode(body, BODYLEN, &out, &why), -1);
	/* a signature longer than ACCEL_MAX_SIG */
	sp_msgbuf_reset(&b);
	sp_msg_put_u8(&b, KEYD_PROTO_VERSION);
	sp_msg_put_u8(&b, KEYD_REPLY);
	sp_msg_put_u32(&b, 1);
	sp_msg_put_u8(&b, ACCEL_OK);
	{
		static uint8_t big[ACCEL_MAX_SIG + 1];

		sp_msg_put_bytes(&b, big, sizeof(big));
	}
	assert_int_equal(sp_msgbuf_finish(&b), 0);
	assert_int_equal(keyd_reply_decode(BODY, BODYLEN, &out, &why), -1);
}

static void test_malformed_ctl(void **state)
{
	static const uint8_t v2[] = { 2, KEYD_CTL_NEWCHAN };
	static const uint8_t type0[] = { 1, 0 };
	static const uint8_t extra[] = { 1, KEYD_CTL_NEWCHAN, 0 };
	const char *why;

	assert_int_equal(keyd_ctl_decode(v2, sizeof(v2), &why), -1);
	assert_int_equal(keyd_ctl_decode(type0, sizeof(type0), &why), -1);
	assert_int_equal(keyd_ctl_decode(extra, sizeof(extra), &why), -1);
	assert_int_equal(keyd_ctl_decode(v2, 1, &why), -1);
	assert_int_equal(keyd_ctl_decode(v2, 0, &why), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_roundtrip),
		cmocka_unit_test(test_ping_roundtrip),
		cmocka_unit_test(test_reply_roundtrip),
		cmocka_unit_test(test_ctl_roundtrip),
		cmocka_unit_test(test_encoders_refuse_invalid),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_malformed_replies),
		cmocka_unit_test(test_malformed_ctl),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
