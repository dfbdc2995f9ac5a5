/* Unit tests for common/proxy2.c: round trips for every family and TLV,
 * byte-exact wire checks against proxy-protocol.txt 2.2, every prefix of a
 * valid header being "need more", and one test per malformed header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "common/proxy2.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* ---- an independent CRC32C, so the decoder is not checked against itself ---- */
static uint32_t ref_crc32c(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

/* ---- raw header builder for hand-made (often broken) headers ---- */
struct hb {
	uint8_t b[8192];
	size_t n;
};

static void hb_put(struct hb *h, const void *p, size_t n)
{
	assert_true(h->n + n <= sizeof(h->b));
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void hb_u8(struct hb *h, uint8_t v)
{
	hb_put(h, &v, 1);
}

static void hb_fill(struct hb *h, uint8_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		hb_u8(h, v);
}

static void hb_start(struct hb *h, uint8_t ver_cmd, uint8_t fam)
{
	h->n = 0;
	hb_put(h, sig, sizeof(sig));
	hb_u8(h, ver_cmd);
	hb_u8(h, fam);
	hb_put(h, "\0\0", 2);
}

/* A PROXY TCP4 header 192.0.2.1:12345 -> 198.51.100.7:465 */
static void hb_start_v4(struct hb *h)
{
	static const uint8_t addrs[12] = { 192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x01, 0xD1 };

	hb_start(h, 0x21, 0x11);
	hb_put(h, addrs, sizeof(addrs));
}

static size_t hb_tlv_begin(struct hb *h, uint8_t type)
{
	size_t at;

	hb_u8(h, type);
	at = h->n;
	hb_put(h, "\0\0", 2);
	return at;
}

static void hb_tlv_end(struct hb *h, size_t at)
{
	size_t n = h->n - at - 2;

	h->b[at] = (uint8_t)(n >> 8);
	h->b[at + 1] = (uint8_t)n;
}

static void hb_tlv(struct hb *h, uint8_t type, const void *p, size_t n)
{
	size_t at = hb_tlv_begin(h, type);

	hb_put(h, p, n);
	hb_tlv_end(h, at);
}

static size_t hb_ssl_begin(struct hb *h)
{
	size_t at = hb_tlv_begin(h, SP_PP2_TYPE_SSL);

	hb_u8(h, SP_PP2_CLIENT_SSL);
	hb_put(h, "\0\0\0\0", 4);
	return at;
}

static void hb_finish(struct hb *h)
{
	h->b[14] = (uint8_t)((h->n - 16) >> 8);
	h->b[15] = (uint8_t)(h->n - 16);
}

/* Appends a CRC32C TLV and fills it in as 2.2.3 says (over the whole
 * header, checksum field zero). */
static void hb_add_crc(struct hb *h)
{
	size_t at = hb_tlv_begin(h, SP_PP2_TYPE_CRC32C);
	uint32_t crc;

	hb_put(h, "\0\0\0\0", 4);
	hb_tlv_end(h, at);
	hb_finish(h);
	crc = ref_crc32c(h->b, h->n);
	h->b[at + 2] = (uint8_t)(crc >> 24);
	h->b[at + 3] = (uint8_t)(crc >> 16);
	h->b[at + 4] = (uint8_t)(crc >> 8);
	h->b[at + 5] = (uint8_t)crc;
}

/* ---- sp_proxy_info helpers ---- */
static void set_v4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &sin, sizeof(sin));
}

static void set_v6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &sin6, sizeof(sin6));
}

static void set_unix(struct sockaddr_storage *ss, const char *path, size_t n)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_true(n <= sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, n);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &sun, sizeof(sun));
}

static void fill_max(char *dst, size_t cap, char c)
{
	memset(dst, c, cap - 1);
	dst[cap - 1] = '\0';
}

/* Every fact at its longest. */
static void fill_all_tlvs(struct sp_proxy_info *i)
{
	i->tls = true;
	i->tls_client = SP_PP2_CLIENT_SSL | SP_PP2_CLIENT_CERT_CONN | SP_PP2_CLIENT_CERT_SESS;
	i->tls_verify = 0xDEADBEEF;
	fill_max(i->tls_version, sizeof(i->tls_version), 'v');
	fill_max(i->tls_cipher, sizeof(i->tls_cipher), 'c');
	fill_max(i->tls_sig_alg, sizeof(i->tls_sig_alg), 's');
	fill_max(i->tls_key_alg, sizeof(i->tls_key_alg), 'k');
	fill_max(i->sni, sizeof(i->sni), 'n');
	fill_max(i->alpn, sizeof(i->alpn), 'a');
	fill_max(i->cert_cn, sizeof(i->cert_cn), 'C');
	fill_max(i->cert_subject, sizeof(i->cert_subject), 'S');
	fill_max(i->cert_issuer, sizeof(i->cert_issuer), 'I');
	fill_max(i->cert_serial, sizeof(i->cert_serial), 'F');
	fill_max(i->cert_email, sizeof(i->cert_email), 'e');
	i->has_cert_sha256 = true;
	for (size_t k = 0; k < sizeof(i->cert_sha256); k++)
		i->cert_sha256[k] = (uint8_t)(0xA0 + k);
}

static void assert_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct sockaddr_in a4, b4;
	struct sockaddr_in6 a6, b6;
	struct sockaddr_un au, bu;

	assert_int_equal(a->ss_family, b->ss_family);
	switch (a->ss_family) {
	case AF_INET:
		memcpy(&a4, a, sizeof(a4));
		memcpy(&b4, b, sizeof(b4));
		assert_memory_equal(&a4.sin_addr, &b4.sin_addr, 4);
		assert_int_equal(a4.sin_port, b4.sin_port);
		break;
	case AF_INET6:
		memcpy(&a6, a, sizeof(a6));
		memcpy(&b6, b, sizeof(b6));
		assert_memory_equal(&a6.sin6_addr, &b6.sin6_addr, 16);
		assert_int_equal(a6.sin6_port, b6.sin6_port);
		break;
	case AF_UNIX:
		memcpy(&au, a, sizeof(au));
		memcpy(&bu, b, sizeof(bu));
		assert_int_equal(strncmp(au.sun_path, bu.sun_path, sizeof(au.sun_path)), 0);
		break;
	default:
		break;
	}
}

static void assert_info_equal(const struct sp_proxy_info *in, const struct sp_proxy_info *out)
{
	assert_int_equal(in->local, out->local);
	if (in->local) {
		assert_int_equal(out->src.ss_family, AF_UNSPEC);
		assert_int_equal(out->dst.ss_family, AF_UNSPEC);
	} else {
		assert_addr_equal(&in->src, &out->src);
		assert_addr_equal(&in->dst, &out->dst);
	}
	assert_int_equal(in->tls, out->tls);
	assert_int_equal(in->tls_client, out->tls_client);
	assert_int_equal(in->tls_verify, out->tls_verify);
	assert_string_equal(in->tls_version, out->tls_version);
	assert_string_equal(in->tls_cipher, out->tls_cipher);
	assert_string_equal(in->tls_sig_alg, out->tls_sig_alg);
	assert_string_equal(in->tls_key_alg, out->tls_key_alg);
	assert_string_equal(in->sni, out->sni);
	assert_string_equal(in->alpn, out->alpn);
	assert_string_equal(in->cert_cn, out->cert_cn);
	assert_string_equal(in->cert_subject, out->cert_subject);
	assert_string_equal(in->cert_issuer, out->cert_issuer);
	assert_string_equal(in->cert_serial, out->cert_serial);
	assert_string_equal(in->cert_email, out->cert_email);
	assert_int_equal(in->has_cert_sha256, out->has_cert_sha256);
	assert_memory_equal(in->cert_sha256, out->cert_sha256, sizeof(in->cert_sha256));
}

/* Encode, decode, compare; every proper prefix is "need more"; the exact
 * capacity suffices and one byte less does not. Returns the length. */
static int roundtrip(const struct sp_proxy_info *in)
{
	static uint8_t buf[SP_PP2_HDR_MAX + 16];
	struct sp_proxy_info out;
	const char *err = NULL;
	int n = sp_proxy2_encode(in, buf, SP_PP2_HDR_MAX);

	assert_true(n >= 16 && n <= SP_PP2_HDR_MAX);
	assert_int_equal(sp_proxy2_decode(buf, (size_t)n, &out, &err), n);
	assert_info_equal(in, &out);
	for (size_t k = 0; k < (size_t)n; k++)
		assert_int_equal(sp_proxy2_decode(buf, k, &out, &err), 0);
	assert_int_equal(sp_proxy2_encode(in, buf, (size_t)n), n);
	assert_int_equal(sp_proxy2_encode(in, buf, (size_t)n - 1), -1);
	return n;
}

/* ---- round trips ---- */
static void test_roundtrip_v4(void **state)
{
	(void)state;
	struct sp_proxy_info i;

	memset(&i, 0, sizeof(i));
	set_v4(&i.src, "192.0.2.1", 12345);
	set_v4(&i.dst, "198.51.100.7", 465);
	assert_int_equal(roundtrip(&i), 16 + 12);
	fill_all_tlvs(&i);
	roundtrip(&i);
}

static void test_roundtrip_v6(void **state)
{
	(void)state;
	struct sp_proxy_info i;

	memset(&i, 0, sizeof(i));
	set_v6(&i.src, "2001:db8::1", 65535);
	set_v6(&i.dst, "2001:db8:ffff::abcd", 993);
	assert_int_equal(roundtrip(&i), 16 + 36);
	fill_all_tlvs(&i);
	roundtrip(&i);
}

static void test_roundtrip_unix(void **state)
{
	(void)state;
	struct sp_proxy_info i;
	char longpath[108];

	memset(&i, 0, sizeof(i));
	set_unix(&i.src, "/run/sealpost/client", strlen("/run/sealpost/client"));
	set_unix(&i.dst, "/run/sealpost/imap.sock", strlen("/run/sealpost/imap.sock"));
	assert_int_equal(roundtrip(&i), 16 + 216);
	/* a path filling all 108 bytes, no NUL (allowed by unix(7)) */
	memset(longpath, 'p', sizeof(longpath));
	set_unix(&i.src, longpath, sizeof(longpath));
	set_unix(&i.dst, "", 0);
	roundtrip(&i);
	fill_all_tlvs(&i);
	roundtrip(&i);
}

static void test_roundtrip_local(void **state)
{
	(void)state;
	struct sp_proxy_info i;
	uint8_t buf[SP_PP2_HDR_MAX];

	memset(&i, 0, sizeof(i));
	i.local = true;
	assert_int_equal(roundtrip(&i), 16);
	/* LOCAL ignores addresses even when the caller set some */
	set_v4(&i.src, "192.0.2.1", 1);
	set_v4(&i.dst, "192.0.2.2", 2);
	assert_int_equal(sp_proxy2_encode(&i, buf, sizeof(buf)), 16);
	assert_int_equal(buf[12], 0x20);
	assert_int_equal(buf[13], 0x00);
	fill_all_tlvs(&i);
	roundtrip(&i);
}

static void test_roundtrip_unspec(void **state)
{
	(void)state;
	struct sp_proxy_info i;

	memset(&i, 0, sizeof(i));
	assert_int_equal(roundtrip(&i), 16);
	i.tls = true;
	strcpy(i.tls_version, "TLSv1.2");
	roundtrip(&i);
}

/* Each fact alone, so a TLV that only works next to others is caught. */
static void test_roundtrip_each_tlv(void **state)
{
	(void)state;
	for (int k = 0; k < 14; k++) {
		struct sp_proxy_info i;

		memset(&i, 0, sizeof(i));
		set_v4(&i.src, "10.0.0.1", 2525);
		set_v4(&i.dst, "10.0.0.2", 25);
		if (k >= 2)
			i.tls = true;
		switch (k) {
		case 0: strcpy(i.alpn, "smtp"); break;
		case 1: strcpy(i.sni, "mail.example.org"); break;
		case 2: break;  /* bare SSL TLV, 5 bytes */
		case 3: i.tls_client = SP_PP2_CLIENT_SSL; i.tls_verify = 20; break;
		case 4: strcpy(i.tls_version, "TLSv1.3"); break;
		case 5: strcpy(i.tls_cipher, "TLS_AES_256_GCM_SHA384"); break;
		case 6: strcpy(i.tls_sig_alg, "ecdsa_secp256r1_sha256"); break;
		case 7: strcpy(i.tls_key_alg, "EC256"); break;
		case 8: strcpy(i.cert_cn, "Alice"); break;
		case 9: strcpy(i.cert_subject, "CN=Alice,O=Example"); break;
		case 10: strcpy(i.cert_issuer, "CN=Example CA,O=Example"); break;
		case 11: strcpy(i.cert_serial, "0A1B2C"); break;
		case 12: i.has_cert_sha256 = true; memset(i.cert_sha256, 0x5A, 32); break;
		case 13: strcpy(i.cert_email, "alice@example.org"); break;
		default: break;
		}
		roundtrip(&i);
	}
}

/* All strings at their longest with the biggest address block: the header
 * says cap >= SP_PP2_HDR_MAX always suffices. */
static void test_max_everything_fits(void **state)
{
	(void)state;
	struct sp_proxy_info i;
	char path[108];

	memset(&i, 0, sizeof(i));
	memset(path, 'x', sizeof(path));
	set_unix(&i.src, path, sizeof(path));
	set_unix(&i.dst, path, sizeof(path));
	fill_all_tlvs(&i);
	assert_true(roundtrip(&i) <= SP_PP2_HDR_MAX);
}

/* ---- byte-exact wire format ---- */
static void test_wire_v4_exact(void **state)
{
	(void)state;
	static const uint8_t want[] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
		0x21, 0x11, 0x00, 0x0C,
		192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x01, 0xD1,
	};
	struct sp_proxy_info i;
	uint8_t buf[SP_PP2_HDR_MAX];

	memset(&i, 0, sizeof(i));
	set_v4(&i.src, "192.0.2.1", 12345);
	set_v4(&i.dst, "198.51.100.7", 465);
	assert_int_equal(sp_proxy2_encode(&i, buf, sizeof(buf)), sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_wire_tlvs_exact(void **state)
{
	(void)state;
	static const uint8_t want[] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
		0x21, 0x11, 0x00, 0x2B,
		192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x01, 0xD1,
		0x02, 0x00, 0x0A, 'm', 'x', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e',
		0x20, 0x00, 0x0F, 0x07, 0x00, 0x00, 0x00, 0x01,
		0x21, 0x00, 0x07, 'T', 'L', 'S', 'v', '1', '.', '3',
	};
	struct sp_proxy_info i;
	uint8_t buf[SP_PP2_HDR_MAX];

	memset(&i, 0, sizeof(i));
	set_v4(&i.src, "192.0.2.1", 12345);
	set_v4(&i.dst, "198.51.100.7", 465);
	strcpy(i.sni, "mx.example");
	i.tls = true;
	i.tls_client = 0x07;
	i.tls_verify = 1;
	strcpy(i.tls_version, "TLSv1.3");
	assert_int_equal(sp_proxy2_encode(&i, buf, sizeof(buf)), sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_ref_crc32c_vector(void **state)
{
	(void)state;
	/* RFC 3720 B.4 / the usual check value for CRC-32C */
	assert_int_equal(ref_crc32c((const uint8_t *)"123456789", 9), 0xE3069283u);
}

/* ---- accepted unusual input ---- */
static void decode_ok(const struct hb *h, struct sp_proxy_info *out)
{
	const char *err = NULL;
	int n = sp_proxy2_decode(h->b, h->n, out, &err);

	if (n < 0)
		fail_msg("decode failed: %s", err);
	assert_int_equal(n, (int)h->n);
}

static void test_accept_crc32c(void **state)
{
	(void)state;
	struct hb h;
	struct sp_proxy_info out;

	hb_start_v4(&h);
	hb_tlv(&h, SP_PP2_TYPE_AUTHORITY, "a.example", 9);
	hb_add_crc(&h);
	decode_ok(&h, &out);
	assert_string_equal(out.sni, "a.example");
	/* CRC first, TLVs after it are covered too */
	hb_start_v4(&h);
	hb_add_crc(&h);
	decode_ok(&h, &out);
}

static void test_skip_unknown_tlvs(void **state)
{
	(void)state;
	struct hb h;
	struct sp_proxy_info out;
	size_t ssl;

	hb_start_v4(&h);
	hb_tlv(&h, SP_PP2_TYPE_NOOP, "\0\0\0", 3);
	hb_tlv(&h, SP_PP2_TYPE_UNIQUE_ID, "id\0\xff", 4);
	hb_tlv(&h, SP_PP2_TYPE_NETNS, "ns", 2);
	hb_tlv(&h, 0xEE, "", 0);
	hb_tlv(&h, 0xEE, "again", 5);  /* unknown duplicates are fine */
	ssl = hb_ssl_begin(&h);
	hb_tlv(&h, 0x26, "x\0y", 3);
	hb_tlv(&h, 0xE9, "", 0);
	hb_tlv(&h, SP_PP2_SUBTYPE_SSL_VERSION, "TLSv1.2", 7);
	hb_tlv_end(&h, ssl);
	hb_tlv(&h, SP_PP2_TYPE_ALPN, "imap", 4);
	hb_finish(&h);
	decode_ok(&h, &out);
	assert_true(out.tls);
	assert_string_equal(out.tls_version, "TLSv1.2");
	assert_string_equal(out.alpn, "imap");
}

static void test_empty_string_tlvs(void **state)
{
	(void)state;
	struct hb h;
	struct sp_proxy_info out;
	size_t ssl;

	hb_start_v4(&h);
	hb_tlv(&h, SP_PP2_TYPE_ALPN, "", 0);
	ssl = hb_ssl_begin(&h);
	hb_tlv(&h, SP_PP2_SUBTYPE_SSL_CN, "", 0);
	hb_tlv_end(&h, ssl);
	hb_finish(&h);
	decode_ok(&h, &out);
	assert_string_equal(out.alpn, "");
	assert_string_equal(out.cert_cn, "");
	assert_true(out.tls);
}

/* 2.2: with LOCAL the family is ignored, whatever it says */
static void test_local_ignores_family(void **state)
{
	(void)state;
	struct hb h;
	struct sp_proxy_info out;

	hb_start(&h, 0x20, 0x77);
	hb_fill(&h, 0xFF, 5);
	hb_finish(&h);
	decode_ok(&h, &out);
	assert_true(out.local);
	assert_int_equal(out.src.ss_family, AF_UNSPEC);
	/* a known family: its block is skipped and the TLVs after it read */
	hb_start(&h, 0x20, 0x11);
	hb_fill(&h, 0xFF, 12);
	hb_tlv(&h, SP_PP2_TYPE_AUTHORITY, "h", 1);
	hb_finish(&h);
	decode_ok(&h, &out);
	assert_true(out.local);
	assert_int_equal(out.src.ss_family, AF_UNSPEC);
	assert_string_equal(out.sni, "h");
	/* a known family whose block is cut short: nothing more is read */
	hb_start(&h, 0x20, 0x21);
	hb_fill(&h, 0, 10);
	hb_finish(&h);
	decode_ok(&h, &out);
	assert_true(out.local);
}

static void test_unix_padding_normalised(void **state)
{
	(void)state;
	struct hb h;
	struct sp_proxy_info out;
	struct sockaddr_un sun;

	hb_start(&h, 0x21, 0x31);
	hb_put(&h, "/a\0junk", 7);
	hb_fill(&h, 0, 101);
	hb_put(&h, "/b", 2);
	hb_fill(&h, 0, 106);
	hb_finish(&h);
	decode_ok(&h, &out);
	memcpy(&sun, &out.src, sizeof(sun));
	assert_int_equal(sun.sun_family, AF_UNIX);
	assert_string_equal(sun.sun_path, "/a");
	assert_int_equal(sun.sun_path[3], 0);
	memcpy(&sun, &out.dst, sizeof(sun));
	assert_string_equal(sun.sun_path, "/b");
}

static void test_trailing_data_not_consumed(void **state)
{
	(void)state;
	struct hb h;
	struct sp_proxy_info out;
	const char *err;
	size_t hdr;

	hb_start_v4(&h);
	hb_finish(&h);
	hdr = h.n;
	hb_put(&h, "EHLO x\r\n", 8);
	assert_int_equal(sp_proxy2_decode(h.b, h.n, &out, &err), (int)hdr);
}

static void test_header_at_max_length(void **state)
{
	(void)state;
	struct hb h;
	struct sp_proxy_info out;

	hb_start_v4(&h);
	hb_tlv(&h, SP_PP2_TYPE_NOOP, "", 0);
	hb_fill(&h, 0, SP_PP2_HDR_MAX - h.n);
	hb_tlv_end(&h, 16 + 12 + 1);
	hb_finish(&h);
	assert_int_equal(h.n, SP_PP2_HDR_MAX);
	decode_ok(&h, &out);
}

/* ---- encoder refusals ---- */
static void test_encode_invalid(void **state)
{
	(void)state;
	struct sp_proxy_info i;
	uint8_t buf[SP_PP2_HDR_MAX];

	memset(&i, 0, sizeof(i));
	set_v4(&i.src, "192.0.2.1", 1);
	set_v6(&i.dst, "::1", 2);
	assert_int_equal(sp_proxy2_encode(&i, buf, sizeof(buf)), -1);  /* mixed families */
	set_unix(&i.dst, "/x", 2);
	assert_int_equal(sp_proxy2_encode(&i, buf, sizeof(buf)), -1);
	memset(&i, 0, sizeof(i));
	i.src.ss_family = AF_PACKET;
	i.dst.ss_family = AF_PACKET;
	assert_int_equal(sp_proxy2_encode(&i, buf, sizeof(buf)), -1);
	memset(&i, 0, sizeof(i));
	memset(i.sni, 'a', sizeof(i.sni));  /* unterminated field */
	assert_int_equal(sp_proxy2_encode(&i, buf, sizeof(buf)), -1);
	memset(&i, 0, sizeof(i));
	strcpy(i.cert_subject, "CN=x");  /* cert facts without tls would be lost */
	assert_int_equal(sp_proxy2_encode(&i, buf, sizeof(buf)), -1);
	i.tls = true;
	assert_true(sp_proxy2_encode(&i, buf, sizeof(buf)) > 0);
	assert_int_equal(sp_proxy2_encode(NULL, buf, sizeof(buf)), -1);
	assert_int_equal(sp_proxy2_encode(&i, NULL, sizeof(buf)), -1);
}

/* Too small a buffer fails without writing past cap. */
static void test_encode_small_cap(void **state)
{
	(void)state;
	struct sp_proxy_info i;
	uint8_t buf[SP_PP2_HDR_MAX + 1];
	int n;

	memset(&i, 0, sizeof(i));
	set_v6(&i.src, "2001:db8::1", 1);
	set_v6(&i.dst, "2001:db8::2", 2);
	fill_all_tlvs(&i);
	n = sp_proxy2_encode(&i, buf, sizeof(buf));
	assert_true(n > 0);
	for (size_t cap = 0; cap < (size_t)n; cap++) {
		memset(buf, 0xCC, sizeof(buf));
		assert_int_equal(sp_proxy2_encode(&i, buf, cap), -1);
		for (size_t k = cap; k < sizeof(buf); k++)
			assert_int_equal(buf[k], 0xCC);
	}
}

static void test_decode_args(void **state)
{
	(void)state;
	struct sp_proxy_info out;
	const char *err = NULL;

	assert_int_equal(sp_proxy2_decode(sig, sizeof(sig), NULL, &err), -1);
	assert_int_equal(sp_proxy2_decode(NULL, 5, &out, &err), -1);
	assert_int_equal(sp_proxy2_decode(NULL, 0, &out, &err), 0);
	assert_int_equal(sp_proxy2_decode(sig, 12, &out, NULL), 0);
	assert_int_equal(sp_proxy2_decode((const uint8_t *)"GET /", 5, &out, NULL), -1);
}

/* ---- malformed headers, one test each ---- */
struct bad_case {
	const char *name;
	void (*build)(struct hb *h, const struct bad_case *c);
	const char *error;
	uint8_t type;  /* builder parameter: a byte value or TLV type */
	size_t n;      /* builder parameter: a length */
};

static void bad_signature(struct hb *h, const struct bad_case *c)
{
	hb_start_v4(h);
	hb_finish(h);
	h->b[c->n] ^= 0x40;
}

static void bad_partial_signature(struct hb *h, const struct bad_case *c)
{
	(void)c;
	h->n = 0;
	hb_put(h, "\r\nX", 3);
}

static void bad_proxy_v1(struct hb *h, const struct bad_case *c)
{
	(void)c;
	h->n = 0;
	hb_put(h, "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n", 36);
}

static void bad_ver_cmd(struct hb *h, const struct bad_case *c)
{
	hb_start_v4(h);
	hb_finish(h);
	h->b[12] = c->type;
}

/* A family byte with an address block of n bytes. */
static void bad_family(struct hb *h, const struct bad_case *c)
{
	hb_start(h, 0x21, c->type);
	hb_fill(h, 0, c->n);
	hb_finish(h);
}

static void bad_length(struct hb *h, const struct bad_case *c)
{
	hb_start_v4(h);
	h->n = 16;  /* the header says more; decide without the rest */
	h->b[14] = (uint8_t)(c->n >> 8);
	h->b[15] = (uint8_t)c->n;
}

static void bad_trailing(struct hb *h, const struct bad_case *c)
{
	hb_start_v4(h);
	hb_tlv(h, SP_PP2_TYPE_NOOP, "", 0);
	hb_fill(h, SP_PP2_TYPE_NOOP, c->n);
	hb_finish(h);
}

static void bad_tlv_overrun(struct hb *h, const struct bad_case *c)
{
	hb_start_v4(h);
	hb_tlv(h, c->type, "abcd", 4);
	hb_finish(h);
	h->b[h->n - 5] = (uint8_t)c->n;  /* claim n bytes instead of 4 */
}

static void bad_tlv_str(struct hb *h, const struct bad_case *c)
{
	size_t at;

	hb_start_v4(h);
	at = hb_tlv_begin(h, c->type);
	hb_fill(h, 'a', c->n);
	hb_tlv_end(h, at);
	hb_finish(h);
}

static void bad_tlv_nul(struct hb *h, const struct bad_case *c)
{
	hb_start_v4(h);
	hb_tlv(h, c->type, "ab\0c", 4);
	hb_finish(h);
}

static void bad_ssl_short(struct hb *h, const struct bad_case *c)
{
	hb_start_v4(h);
	hb_tlv(h, SP_PP2_TYPE_SSL, "\x01\0\0\0\0", c->n);
	hb_finish(h);
}

static void bad_sub_str(struct hb *h, const struct bad_case *c)
{
	size_t ssl, at;

	hb_start_v4(h);
	ssl = hb_ssl_begin(h);
	at = hb_tlv_begin(h, c->type);
	hb_fill(h, 'b', c->n);
	hb_tlv_end(h, at);
	hb_tlv_end(h, ssl);
	hb_finish(h);
}

static void bad_sub_nul(struct hb *h, const struct bad_case *c)
{
	size_t ssl;

	hb_start_v4(h);
	ssl = hb_ssl_begin(h);
	hb_tlv(h, c->type, "CN=a\0CN=admin", 13);
	hb_tlv_end(h, ssl);
	hb_finish(h);
}

static void bad_sub_overrun(struct hb *h, const struct bad_case *c)
{
	(void)c;
	size_t ssl;

	hb_start_v4(h);
	ssl = hb_ssl_begin(h);
	hb_tlv(h, SP_PP2_SUBTYPE_SSL_VERSION, "TLSv1.3", 7);
	hb_tlv_end(h, ssl);
	h->b[h->n - 8] = 8;  /* sub-TLV claims one byte past the SSL TLV */
	hb_tlv(h, SP_PP2_TYPE_NOOP, "zzzz", 4);  /* bytes that exist, outside SSL */
	hb_finish(h);
}

static void bad_sub_truncated(struct hb *h, const struct bad_case *c)
{
	size_t ssl;

	hb_start_v4(h);
	ssl = hb_ssl_begin(h);
	hb_fill(h, SP_PP2_SUBTYPE_SSL_VERSION, c->n);
	hb_tlv_end(h, ssl);
	hb_finish(h);
}

static void bad_crc_mismatch(struct hb *h, const struct bad_case *c)
{
	(void)c;
	hb_start_v4(h);
	hb_tlv(h, SP_PP2_TYPE_AUTHORITY, "a.example", 9);
	hb_add_crc(h);
	h->b[h->n - 12] ^= 0x01;  /* flip a bit of the SNI */
}

static void bad_crc_value(struct hb *h, const struct bad_case *c)
{
	(void)c;
	hb_start_v4(h);
	hb_add_crc(h);
	h->b[h->n - 1] ^= 0x80;
}

static void bad_crc_addr(struct hb *h, const struct bad_case *c)
{
	(void)c;
	hb_start_v4(h);
	hb_add_crc(h);
	h->b[16] ^= 0x01;  /* address bytes are covered too */
}

static void bad_crc_len(struct hb *h, const struct bad_case *c)
{
	hb_start_v4(h);
	hb_tlv(h, SP_PP2_TYPE_CRC32C, "\0\0\0\0\0", c->n);
	hb_finish(h);
}

/* Two CRC32C TLVs, the first one correct (computed with both zero). */
static void bad_crc_dup(struct hb *h, const struct bad_case *c)
{
	(void)c;
	uint32_t crc;

	hb_start_v4(h);
	hb_tlv(h, SP_PP2_TYPE_CRC32C, "\0\0\0\0", 4);
	hb_tlv(h, SP_PP2_TYPE_CRC32C, "\0\0\0\0", 4);
	hb_finish(h);
	crc = ref_crc32c(h->b, h->n);
	h->b[31] = (uint8_t)(crc >> 24);
	h->b[32] = (uint8_t)(crc >> 16);
	h->b[33] = (uint8_t)(crc >> 8);
	h->b[34] = (uint8_t)crc;
}

static void bad_dup_tlv(struct hb *h, const struct bad_case *c)
{
	hb_start_v4(h);
	if (c->type == SP_PP2_TYPE_SSL) {
		hb_tlv_end(h, hb_ssl_begin(h));
		hb_tlv_end(h, hb_ssl_begin(h));
	} else {
		hb_tlv(h, c->type, "one", 3);
		hb_tlv(h, c->type, "two", 3);
	}
	hb_finish(h);
}

static void bad_dup_sub(struct hb *h, const struct bad_case *c)
{
	size_t ssl;

	hb_start_v4(h);
	ssl = hb_ssl_begin(h);
	if (c->type == SP_PP2_SUBTYPE_SP_SHA256) {
		hb_tlv(h, c->type, "0123456789abcdef0123456789abcdef", 32);
		hb_tlv(h, c->type, "0123456789abcdef0123456789abcdef", 32);
	} else {
		hb_tlv(h, c->type, "one", 3);
		hb_tlv(h, c->type, "two", 3);
	}
	hb_tlv_end(h, ssl);
	hb_finish(h);
}

#define E_SIG "bad PROXY v2 signature"
#define E_VER "unsupported PROXY version"
#define E_CMD "unknown PROXY command"
#define E_FAM "unsupported address family or protocol"
#define E_LONG "PROXY header too long"
#define E_ADDR "address block too short for family"
#define E_TRUNC "truncated TLV"
#define E_OVER "TLV overruns header"
#define E_STRLONG "TLV string too long"
#define E_STRNUL "TLV string contains NUL"
#define E_SSL "SSL TLV too short"
#define E_SUBOVER "SSL sub-TLV overruns SSL TLV"
#define E_SUBTRUNC "truncated SSL sub-TLV"
#define E_SHA "SHA-256 TLV not 32 bytes"
#define E_CRC "CRC32C mismatch"
#define E_CRCLEN "CRC32C TLV not 4 bytes"
#define E_DUP "duplicate TLV"

static const struct bad_case bad_cases[] = {
	{ "bad_sig_first_byte", bad_signature, E_SIG, 0, 0 },
	{ "bad_sig_nul_byte", bad_signature, E_SIG, 0, 4 },
	{ "bad_sig_last_byte", bad_signature, E_SIG, 0, 11 },
	{ "bad_sig_partial_prefix", bad_partial_signature, E_SIG, 0, 0 },
	{ "bad_sig_proxy_v1_text", bad_proxy_v1, E_SIG, 0, 0 },
	{ "version_0", bad_ver_cmd, E_VER, 0x01, 0 },
	{ "version_1", bad_ver_cmd, E_VER, 0x11, 0 },
	{ "version_3", bad_ver_cmd, E_VER, 0x31, 0 },
	{ "version_15", bad_ver_cmd, E_VER, 0xF1, 0 },
	{ "command_2", bad_ver_cmd, E_CMD, 0x22, 0 },
	{ "command_15", bad_ver_cmd, E_CMD, 0x2F, 0 },
	{ "family_udp4", bad_family, E_FAM, 0x12, 12 },
	{ "family_udp6", bad_family, E_FAM, 0x22, 36 },
	{ "family_unix_dgram", bad_family, E_FAM, 0x32, 216 },
	{ "family_unspec_stream", bad_family, E_FAM, 0x01, 0 },
	{ "family_inet_unspec_proto", bad_family, E_FAM, 0x10, 12 },
	{ "family_inet_proto_3", bad_family, E_FAM, 0x13, 12 },
	{ "family_4", bad_family, E_FAM, 0x41, 12 },
	{ "family_ff", bad_family, E_FAM, 0xFF, 0 },
	{ "length_over_max_by_1", bad_length, E_LONG, 0, SP_PP2_HDR_MAX - 16 + 1 },
	{ "length_ffff", bad_length, E_LONG, 0, 0xFFFF },
	{ "tcp4_block_0", bad_family, E_ADDR, 0x11, 0 },
	{ "tcp4_block_11", bad_family, E_ADDR, 0x11, 11 },
	{ "tcp6_block_12", bad_family, E_ADDR, 0x21, 12 },
	{ "tcp6_block_35", bad_family, E_ADDR, 0x21, 35 },
	{ "unix_block_36", bad_family, E_ADDR, 0x31, 36 },
	{ "unix_block_215", bad_family, E_ADDR, 0x31, 215 },
	{ "tlv_header_1_byte", bad_trailing, E_TRUNC, 0, 1 },
	{ "tlv_header_2_bytes", bad_trailing, E_TRUNC, 0, 2 },
	{ "tlv_overrun_by_1", bad_tlv_overrun, E_OVER, SP_PP2_TYPE_NOOP, 5 },
	{ "tlv_overrun_unknown", bad_tlv_overrun, E_OVER, 0xEE, 200 },
	{ "tlv_overrun_ssl", bad_tlv_overrun, E_OVER, SP_PP2_TYPE_SSL, 5 },
	{ "alpn_too_long", bad_tlv_str, E_STRLONG, SP_PP2_TYPE_ALPN, 64 },
	{ "authority_too_long", bad_tlv_str, E_STRLONG, SP_PP2_TYPE_AUTHORITY, 256 },
	{ "alpn_nul", bad_tlv_nul, E_STRNUL, SP_PP2_TYPE_ALPN, 0 },
	{ "authority_nul", bad_tlv_nul, E_STRNUL, SP_PP2_TYPE_AUTHORITY, 0 },
	{ "ssl_len_0", bad_ssl_short, E_SSL, 0, 0 },
	{ "ssl_len_1", bad_ssl_short, E_SSL, 0, 1 },
	{ "ssl_len_4", bad_ssl_short, E_SSL, 0, 4 },
	{ "ssl_sub_overrun", bad_sub_overrun, E_SUBOVER, 0, 0 },
	{ "ssl_sub_header_1_byte", bad_sub_truncated, E_SUBTRUNC, 0, 1 },
	{ "ssl_sub_header_2_bytes", bad_sub_truncated, E_SUBTRUNC, 0, 2 },
	{ "version_too_long", bad_sub_str, E_STRLONG, SP_PP2_SUBTYPE_SSL_VERSION, 16 },
	{ "cn_too_long", bad_sub_str, E_STRLONG, SP_PP2_SUBTYPE_SSL_CN, 256 },
	{ "cipher_too_long", bad_sub_str, E_STRLONG, SP_PP2_SUBTYPE_SSL_CIPHER, 64 },
	{ "sig_alg_too_long", bad_sub_str, E_STRLONG, SP_PP2_SUBTYPE_SSL_SIG_ALG, 32 },
	{ "key_alg_too_long", bad_sub_str, E_STRLONG, SP_PP2_SUBTYPE_SSL_KEY_ALG, 32 },
	{ "subject_too_long", bad_sub_str, E_STRLONG, SP_PP2_SUBTYPE_SP_SUBJECT, 1024 },
	{ "issuer_too_long", bad_sub_str, E_STRLONG, SP_PP2_SUBTYPE_SP_ISSUER, 1024 },
	{ "serial_too_long", bad_sub_str, E_STRLONG, SP_PP2_SUBTYPE_SP_SERIAL, 128 },
	{ "email_too_long", bad_sub_str, E_STRLONG, SP_PP2_SUBTYPE_SP_EMAIL, 256 },
	{ "version_nul", bad_sub_nul, E_STRNUL, SP_PP2_SUBTYPE_SSL_VERSION, 0 },
	{ "cn_nul", bad_sub_nul, E_STRNUL, SP_PP2_SUBTYPE_SSL_CN, 0 },
	{ "cipher_nul", bad_sub_nul, E_STRNUL, SP_PP2_SUBTYPE_SSL_CIPHER, 0 },
	{ "sig_alg_nul", bad_sub_nul, E_STRNUL, SP_PP2_SUBTYPE_SSL_SIG_ALG, 0 },
	{ "key_alg_nul", bad_sub_nul, E_STRNUL, SP_PP2_SUBTYPE_SSL_KEY_ALG, 0 },
	{ "subject_nul", bad_sub_nul, E_STRNUL, SP_PP2_SUBTYPE_SP_SUBJECT, 0 },
	{ "issuer_nul", bad_sub_nul, E_STRNUL, SP_PP2_SUBTYPE_SP_ISSUER, 0 },
	{ "serial_nul", bad_sub_nul, E_STRNUL, SP_PP2_SUBTYPE_SP_SERIAL, 0 },
	{ "email_nul", bad_sub_nul, E_STRNUL, SP_PP2_SUBTYPE_SP_EMAIL, 0 },
	{ "sha256_0", bad_sub_str, E_SHA, SP_PP2_SUBTYPE_SP_SHA256, 0 },
	{ "sha256_31", bad_sub_str, E_SHA, SP_PP2_SUBTYPE_SP_SHA256, 31 },
	{ "sha256_33", bad_sub_str, E_SHA, SP_PP2_SUBTYPE_SP_SHA256, 33 },
	{ "sha256_64", bad_sub_str, E_SHA, SP_PP2_SUBTYPE_SP_SHA256, 64 },
	{ "crc_mismatch_tlv", bad_crc_mismatch, E_CRC, 0, 0 },
	{ "crc_mismatch_value", bad_crc_value, E_CRC, 0, 0 },
	{ "crc_mismatch_addr", bad_crc_addr, E_CRC, 0, 0 },
	{ "crc_len_0", bad_crc_len, E_CRCLEN, 0, 0 },
	{ "crc_len_3", bad_crc_len, E_CRCLEN, 0, 3 },
	{ "crc_len_5", bad_crc_len, E_CRCLEN, 0, 5 },
	{ "crc_twice", bad_crc_dup, E_DUP, 0, 0 },
	{ "dup_alpn", bad_dup_tlv, E_DUP, SP_PP2_TYPE_ALPN, 0 },
	{ "dup_authority", bad_dup_tlv, E_DUP, SP_PP2_TYPE_AUTHORITY, 0 },
	{ "dup_ssl", bad_dup_tlv, E_DUP, SP_PP2_TYPE_SSL, 0 },
	{ "dup_sub_version", bad_dup_sub, E_DUP, SP_PP2_SUBTYPE_SSL_VERSION, 0 },
	{ "dup_sub_subject", bad_dup_sub, E_DUP, SP_PP2_SUBTYPE_SP_SUBJECT, 0 },
	{ "dup_sub_sha256", bad_dup_sub, E_DUP, SP_PP2_SUBTYPE_SP_SHA256, 0 },
};

/* The named error for the whole input, and no prefix of it ever decodes. */
static void run_bad_case(void **state)
{
	const struct bad_case *c = *state;
	struct hb h;
	struct sp_proxy_info out;
	const char *err = NULL;

	memset(&h, 0, sizeof(h));
	c->build(&h, c);
	assert_int_equal(sp_proxy2_decode(h.b, h.n, &out, &err), -1);
	assert_non_null(err);
	assert_string_equal(err, c->error);
	for (size_t k = 0; k < h.n; k++)
		assert_true(sp_proxy2_decode(h.b, k, &out, &err) <= 0);
}

/* Every prefix of a valid header is "need more", never an error. */
static void test_partial_every_prefix(void **state)
{
	(void)state;
	struct hb h;
	struct sp_proxy_info out;
	const char *err;
	size_t ssl;

	hb_start_v4(&h);
	hb_tlv(&h, SP_PP2_TYPE_ALPN, "h2", 2);
	ssl = hb_ssl_begin(&h);
	hb_tlv(&h, SP_PP2_SUBTYPE_SP_SHA256, "0123456789abcdef0123456789abcdef", 32);
	hb_tlv_end(&h, ssl);
	hb_add_crc(&h);
	for (size_t k = 0; k < h.n; k++)
		assert_int_equal(sp_proxy2_decode(h.b, k, &out, &err), 0);
	assert_int_equal(sp_proxy2_decode(h.b, h.n, &out, &err), (int)h.n);
}

static const struct CMUnitTest fixed_tests[] = {
	cmocka_unit_test(test_roundtrip_v4),
	cmocka_unit_test(test_roundtrip_v6),
	cmocka_unit_test(test_roundtrip_unix),
	cmocka_unit_test(test_roundtrip_local),
	cmocka_unit_test(test_roundtrip_unspec),
	cmocka_unit_test(test_roundtrip_each_tlv),
	cmocka_unit_test(test_max_everything_fits),
	cmocka_unit_test(test_wire_v4_exact),
	cmocka_unit_test(test_wire_tlvs_exact),
	cmocka_unit_test(test_ref_crc32c_vector),
	cmocka_unit_test(test_accept_crc32c),
	cmocka_unit_test(test_skip_unknown_tlvs),
	cmocka_unit_test(test_empty_string_tlvs),
	cmocka_unit_test(test_local_ignores_family),
	cmocka_unit_test(test_unix_padding_normalised),
	cmocka_unit_test(test_trailing_data_not_consumed),
	cmocka_unit_test(test_header_at_max_length),
	cmocka_unit_test(test_encode_invalid),
	cmocka_unit_test(test_encode_small_cap),
	cmocka_unit_test(test_decode_args),
	cmocka_unit_test(test_partial_every_prefix),
};

int main(void)
{
	struct CMUnitTest tests[ARRAY_LEN(fixed_tests) + ARRAY_LEN(bad_cases)];

	memcpy(tests, fixed_tests, sizeof(fixed_tests));
	for (size_t k = 0; k < ARRAY_LEN(bad_cases); k++) {
		tests[ARRAY_LEN(fixed_tests) + k] = (struct CMUnitTest){
			.name = bad_cases[k].name,
			.test_func = run_bad_case,
			.initial_state = (void *)&bad_cases[k],
		};
	}
	return cmocka_run_group_tests_name("proxy2", tests, NULL, NULL);
}
