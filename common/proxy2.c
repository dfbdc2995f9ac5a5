/* PROXY protocol v2 encoder and decoder (haproxy proxy-protocol.txt 2.2).
 * tlsd writes one of these in front of every relayed connection and in the
 * STARTTLS handoff; mailcore decodes it. The decoder is total: any byte
 * string gives a header length, "need more" or a named error. */
#include <string.h>

#include <netinet/in.h>
#include <sys/un.h>

#include "common/proxy2.h"

/* 2.2: the 12-byte signature, then ver_cmd, fam, and a 16-bit length */
static const uint8_t pp2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};
#define PP2_FIXED 16
#define PP2_VERSION 0x2
#define PP2_CMD_LOCAL 0x0
#define PP2_CMD_PROXY 0x1
/* 2.2: the family/transport byte values we speak. DGRAM is valid in the spec
 * but sp_proxy_info cannot say "datagram", so we neither emit nor accept it. */
#define PP2_FAM_UNSPEC 0x00
#define PP2_FAM_TCP4 0x11
#define PP2_FAM_TCP6 0x21
#define PP2_FAM_UNIX 0x31
/* 2.2: address block sizes */
#define PP2_ADDR_INET 12
#define PP2_ADDR_INET6 36
#define PP2_ADDR_UNIX 216
#define PP2_UNIX_PATH 108
#define PP2_TLV_HDR 3
/* 2.2.5: client (u8) + verify (u32) before the sub-TLVs */
#define PP2_SSL_FIXED 5

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as 2.2.3 requires.
 * Bitwise: headers are at most SP_PP2_HDR_MAX bytes and rarely carry it. */
static uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return crc;
}

/* 2.2.3: the checksum covers the whole header with the checksum value
 * itself taken as four zero bytes. */
static uint32_t crc32c_header(const uint8_t *hdr, size_t total, size_t value_off)
{
	static const uint8_t zero[4] = { 0, 0, 0, 0 };
	uint32_t crc = 0xFFFFFFFFu;

	crc = crc32c_update(crc, hdr, value_off);
	crc = crc32c_update(crc, zero, sizeof(zero));
	crc = crc32c_update(crc, hdr + value_off + 4, total - value_off - 4);
	return crc ^ 0xFFFFFFFFu;
}

/* Size of the address block for a family byte, or -1 if we do not speak it. */
static int addr_block_len(uint8_t fam)
{
	switch (fam) {
	case PP2_FAM_UNSPEC:
		return 0;
	case PP2_FAM_TCP4:
		return PP2_ADDR_INET;
	case PP2_FAM_TCP6:
		return PP2_ADDR_INET6;
	case PP2_FAM_UNIX:
		return PP2_ADDR_UNIX;
	default:
		return -1;
	}
}

/* ---------------- decoding ---------------- */

/* Copies a TLV value into a C string field: it must fit with its NUL and
 * hold no NUL itself (a NUL would let "a\0b" pass checks made on "a"). */
static int copy_str(char *dst, size_t cap, const uint8_t *v, size_t n, const char **error_r)
{
	if (n >= cap) {
		*error_r = "TLV string too long";
		return -1;
	}
	if (memchr(v, 0, n) != NULL) {
		*error_r = "TLV string contains NUL";
		return -1;
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

/* A second copy of a TLV we interpret is refused rather than letting first
 * or last win: two readers of one header must never disagree. */
static int once(uint32_t *seen, unsigned bit, const char **error_r)
{
	if (*seen & (1u << bit)) {
		*error_r = "duplicate TLV";
		return -1;
	}
	*seen |= 1u << bit;
	return 0;
}

static void decode_unix_path(struct sockaddr_storage *ss, const uint8_t *p)
{
	struct sockaddr_un sun;

	/* 2.2: NUL-padded 108-byte path. Bytes after the first NUL are padding;
	 * dropping them keeps decode(encode(decode(x))) == decode(x) (abstract
	 * socket names, which start with NUL, therefore come out unnamed). */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, p, strnlen((const char *)p, PP2_UNIX_PATH));
	memcpy(ss, &sun, sizeof(sun));
}

static void decode_addrs(struct sp_proxy_info *info, uint8_t fam, const uint8_t *p)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	switch (fam) {
	case PP2_FAM_TCP4:
		/* 2.2: src_addr[4], dst_addr[4], src_port, dst_port, all network order */
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		memcpy(&sin.sin_addr, p, 4);
		memcpy(&sin.sin_port, p + 8, 2);
		memcpy(&info->src, &sin, sizeof(sin));
		memcpy(&sin.sin_addr, p + 4, 4);
		memcpy(&sin.sin_port, p + 10, 2);
		memcpy(&info->dst, &sin, sizeof(sin));
		break;
	case PP2_FAM_TCP6:
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, p, 16);
		memcpy(&sin6.sin6_port, p + 32, 2);
		memcpy(&info->src, &sin6, sizeof(sin6));
		memcpy(&sin6.sin6_addr, p + 16, 16);
		memcpy(&sin6.sin6_port, p + 34, 2);
		memcpy(&info->dst, &sin6, sizeof(sin6));
		break;
	case PP2_FAM_UNIX:
		decode_unix_path(&info->src, p);
		decode_unix_path(&info->dst, p + PP2_UNIX_PATH);
		break;
	default:
		/* UNSPEC: 2.2 says the receiver uses the real endpoints */
		info->src.ss_family = AF_UNSPEC;
		info->dst.ss_family = AF_UNSPEC;
		break;
	}
}

/* 2.2.5: PP2_TYPE_SSL = client u8, verify u32, then sub-TLVs. */
static int decode_ssl(struct sp_proxy_info *info, const uint8_t *v, size_t n, const char **error_r)
{
	uint32_t seen = 0;
	size_t off = PP2_SSL_FIXED;

	if (n < PP2_SSL_FIXED) {
		*error_r = "SSL TLV too short";
		return -1;
	}
	info->tls = true;
	info->tls_client = v[0];
	info->tls_verify = get_be32(v + 1);

	while (off < n) {
		uint8_t type;
		size_t len;
		const uint8_t *val;
		int rc = 0;

		if (n - off < PP2_TLV_HDR) {
			*error_r = "truncated SSL sub-TLV";
			return -1;
		}
		type = v[off];
		len = get_be16(v + off + 1);
		off += PP2_TLV_HDR;
		if (len > n - off) {
			*error_r = "SSL sub-TLV overruns SSL TLV";
			return -1;
		}
		val = v + off;
		off += len;

		switch (type) {
		case SP_PP2_SUBTYPE_SSL_VERSION:
			rc = once(&seen, 0, error_r) ||
			     copy_str(info->tls_version, sizeof(info->tls_version), val, len, error_r);
			break;
		case SP_PP2_SUBTYPE_SSL_CN:
			rc = once(&seen, 1, error_r) ||
			     copy_str(info->cert_cn, sizeof(info->cert_cn), val, len, error_r);
			break;
		case SP_PP2_SUBTYPE_SSL_CIPHER:
			rc = once(&seen, 2, error_r) ||
			     copy_str(info->tls_cipher, sizeof(info->tls_cipher), val, len, error_r);
			break;
		case SP_PP2_SUBTYPE_SSL_SIG_ALG:
			rc = once(&seen, 3, error_r) ||
			     copy_str(info->tls_sig_alg, sizeof(info->tls_sig_alg), val, len, error_r);
			break;
		case SP_PP2_SUBTYPE_SSL_KEY_ALG:
			rc = once(&seen, 4, error_r) ||
			     copy_str(info->tls_key_alg, sizeof(info->tls_key_alg), val, len, error_r);
			break;
		case SP_PP2_SUBTYPE_SP_SUBJECT:
			rc = once(&seen, 5, error_r) ||
			     copy_str(info->cert_subject, sizeof(info->cert_subject), val, len, error_r);
			break;
		case SP_PP2_SUBTYPE_SP_ISSUER:
			rc = once(&seen, 6, error_r) ||
			     copy_str(info->cert_issuer, sizeof(info->cert_issuer), val, len, error_r);
			break;
		case SP_PP2_SUBTYPE_SP_SERIAL:
			rc = once(&seen, 7, error_r) ||
			     copy_str(info->cert_serial, sizeof(info->cert_serial), val, len, error_r);
			break;
		case SP_PP2_SUBTYPE_SP_SHA256:
			if (once(&seen, 8, error_r) != 0)
				return -1;
			if (len != sizeof(info->cert_sha256)) {
				*error_r = "SHA-256 TLV not 32 bytes";
				return -1;
			}
			memcpy(info->cert_sha256, val, len);
			info->has_cert_sha256 = true;
			break;
		case SP_PP2_SUBTYPE_SP_EMAIL:
			rc = once(&seen, 9, error_r) ||
			     copy_str(info->cert_email, sizeof(info->cert_email), val, len, error_r);
			break;
		default:
			break;  /* 2.2.7: unknown sub-TLVs are ignored */
		}
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* Walks the TLVs in hdr[off..total) (2.2.1 ... 2.2.7). */
static int decode_tlvs(struct sp_proxy_info *info, const uint8_t *hdr, size_t off, size_t total,
		       const char **error_r)
{
	uint32_t seen = 0;

	while (off < total) {
		uint8_t type;
		size_t len;
		const uint8_t *val;
		int rc = 0;

		if (total - off < PP2_TLV_HDR) {
			*error_r = "truncated TLV";
			return -1;
		}
		type = hdr[off];
		len = get_be16(hdr + off + 1);
		off += PP2_TLV_HDR;
		if (len > total - off) {
			*error_r = "TLV overruns header";
			return -1;
		}
		val = hdr + off;

		switch (type) {
		case SP_PP2_TYPE_ALPN:
			rc = once(&seen, 0, error_r) ||
			     copy_str(info->alpn, sizeof(info->alpn), val, len, error_r);
			break;
		case SP_PP2_TYPE_AUTHORITY:
			rc = once(&seen, 1, error_r) ||
			     copy_str(info->sni, sizeof(info->sni), val, len, error_r);
			break;
		case SP_PP2_TYPE_CRC32C:
			if (once(&seen, 2, error_r) != 0)
				return -1;
			if (len != 4) {
				*error_r = "CRC32C TLV not 4 bytes";
				return -1;
			}
			if (crc32c_header(hdr, total, off) != get_be32(val)) {
				*error_r = "CRC32C mismatch";
				return -1;
			}
			break;
		case SP_PP2_TYPE_SSL:
			rc = once(&seen, 3, error_r) || decode_ssl(info, val, len, error_r);
			break;
		default:
			break;  /* 2.2: unknown TLVs (NOOP, UNIQUE_ID, NETNS, ...) are skipped */
		}
		if (rc != 0)
			return -1;
		off += len;
	}
	return 0;
}

int sp_proxy2_decode(const uint8_t *buf, size_t len, struct sp_proxy_info *info,
		     const char **error_r)
{
	const char *dummy;
	uint8_t cmd, fam;
	size_t total;
	int addr_len;

	if (error_r == NULL)
		error_r = &dummy;
	if (info == NULL || (buf == NULL && len > 0)) {
		*error_r = "invalid argument";
		return -1;
	}
	memset(info, 0, sizeof(*info));
	if (len == 0)
		return 0;

	/* Decide on the signature as soon as its first byte is seen, so that a
	 * peer speaking something else is refused without waiting for more. */
	if (memcmp(buf, pp2_sig, len < sizeof(pp2_sig) ? len : sizeof(pp2_sig)) != 0) {
		*error_r = "bad PROXY v2 signature";
		return -1;
	}
	if (len < 13)
		return 0;
	/* 2.2: high nibble version (must be 2), low nibble command (LOCAL/PROXY) */
	if ((buf[12] >> 4) != PP2_VERSION) {
		*error_r = "unsupported PROXY version";
		return -1;
	}
	cmd = buf[12] & 0x0F;
	if (cmd != PP2_CMD_LOCAL && cmd != PP2_CMD_PROXY) {
		*error_r = "unknown PROXY command";
		return -1;
	}
	if (len < 14)
		return 0;
	fam = buf[13];
	addr_len = addr_block_len(fam);
	/* 2.2: with LOCAL "the family ... is ignored", so only PROXY checks it */
	if (cmd == PP2_CMD_PROXY && addr_len < 0) {
		*error_r = "unsupported address family or protocol";
		return -1;
	}
	if (len < PP2_FIXED)
		return 0;
	total = PP2_FIXED + (size_t)get_be16(buf + 14);
	if (total > SP_PP2_HDR_MAX) {
		*error_r = "PROXY header too long";
		return -1;
	}
	if (len < total)
		return 0;

	if (cmd == PP2_CMD_LOCAL) {
		/* 2.2: LOCAL (health checks): the receiver uses the real endpoints
		 * and discards the address block. TLVs after a block of a family we
		 * know are still read; after anything else the rest is skipped. */
		info->local = true;
		info->src.ss_family = AF_UNSPEC;
		info->dst.ss_family = AF_UNSPEC;
		if (addr_len < 0 || (size_t)addr_len > total - PP2_FIXED)
			return (int)total;
	} else {
		if ((size_t)addr_len > total - PP2_FIXED) {
			*error_r = "address block too short for family";
			return -1;
		}
		decode_addrs(info, fam, buf + PP2_FIXED);
	}
	if (decode_tlvs(info, buf, PP2_FIXED + (size_t)addr_len, total, error_r) != 0) {
		/* leave nothing half-decoded for a careless caller to trust */
		memset(info, 0, sizeof(*info));
		return -1;
	}
	return (int)total;
}

/* ---------------- encoding ---------------- */

struct pp2_writer {
	uint8_t *buf;
	size_t cap;
	size_t len;
	bool fail;  /* sticky: something did not fit */
};

static void w_put(struct pp2_writer *w, const void *p, size_t n)
{
	if (w->fail || n > w->cap - w->len) {
		w->fail = true;
		return;
	}
	if (n > 0)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void w_u8(struct pp2_writer *w, uint8_t v)
{
	w_put(w, &v, 1);
}

static void w_be16_at(struct pp2_writer *w, size_t at, size_t v)
{
	w->buf[at] = (uint8_t)(v >> 8);
	w->buf[at + 1] = (uint8_t)v;
}

/* Starts a TLV; returns where its length goes (patched by tlv_end). */
static size_t w_tlv_begin(struct pp2_writer *w, uint8_t type)
{
	size_t at;

	w_u8(w, type);
	at = w->len;
	w_put(w, "\0\0", 2);
	return at;
}

static void w_tlv_end(struct pp2_writer *w, size_t at)
{
	size_t n;

	if (w->fail)
		return;
	n = w->len - at - 2;
	if (n > UINT16_MAX) {
		w->fail = true;
		return;
	}
	w_be16_at(w, at, n);
}

/* Emits a string TLV if the string is non-empty (an empty field means
 * "no such fact"). */
static void w_str_tlv(struct pp2_writer *w, uint8_t type, const char *s)
{
	size_t at;

	if (s[0] == '\0')
		return;
	at = w_tlv_begin(w, type);
	w_put(w, s, strlen(s));
	w_tlv_end(w, at);
}

static void encode_unix_path(struct pp2_writer *w, const struct sockaddr_storage *ss)
{
	struct sockaddr_un sun;
	uint8_t field[PP2_UNIX_PATH];

	memcpy(&sun, ss, sizeof(sun));
	memset(field, 0, sizeof(field));
	memcpy(field, sun.sun_path, strnlen(sun.sun_path, sizeof(field)));
	w_put(w, field, sizeof(field));
}

static int encode_addrs(struct pp2_writer *w, const struct sp_proxy_info *info, uint8_t *fam_r)
{
	struct sockaddr_in s4, d4;
	struct sockaddr_in6 s6, d6;

	if (info->src.ss_family != info->dst.ss_family)
		return -1;
	switch (info->src.ss_family) {
	case AF_UNSPEC:
		*fam_r = PP2_FAM_UNSPEC;
		return 0;
	case AF_INET:
		*fam_r = PP2_FAM_TCP4;
		memcpy(&s4, &info->src, sizeof(s4));
		memcpy(&d4, &info->dst, sizeof(d4));
		w_put(w, &s4.sin_addr, 4);
		w_put(w, &d4.sin_addr, 4);
		w_put(w, &s4.sin_port, 2);  /* already network order, as 2.2 wants */
		w_put(w, &d4.sin_port, 2);
		return 0;
	case AF_INET6:
		*fam_r = PP2_FAM_TCP6;
		memcpy(&s6, &info->src, sizeof(s6));
		memcpy(&d6, &info->dst, sizeof(d6));
		w_put(w, &s6.sin6_addr, 16);
		w_put(w, &d6.sin6_addr, 16);
		w_put(w, &s6.sin6_port, 2);
		w_put(w, &d6.sin6_port, 2);
		return 0;
	case AF_UNIX:
		*fam_r = PP2_FAM_UNIX;
		encode_unix_path(w, &info->src);
		encode_unix_path(w, &info->dst);
		return 0;
	default:
		return -1;
	}
}

#define FIELD_OK(f) (strnlen((f), sizeof(f)) < sizeof(f))

/* Every string must be NUL-terminated inside its field, and certificate
 * facts need tls set (they travel inside the SSL TLV and would be lost). */
static bool info_valid(const struct sp_proxy_info *i)
{
	if (!(FIELD_OK(i->tls_version) && FIELD_OK(i->tls_cipher) && FIELD_OK(i->tls_sig_alg) &&
	      FIELD_OK(i->tls_key_alg) && FIELD_OK(i->sni) && FIELD_OK(i->alpn) &&
	      FIELD_OK(i->cert_cn) && FIELD_OK(i->cert_subject) && FIELD_OK(i->cert_issuer) &&
	      FIELD_OK(i->cert_serial) && FIELD_OK(i->cert_email)))
		return false;
	if (!i->tls &&
	    (i->tls_client != 0 || i->tls_verify != 0 || i->tls_version[0] || i->tls_cipher[0] ||
	     i->tls_sig_alg[0] || i->tls_key_alg[0] || i->cert_cn[0] || i->cert_subject[0] ||
	     i->cert_issuer[0] || i->cert_serial[0] || i->cert_email[0] || i->has_cert_sha256))
		return false;
	return true;
}

int sp_proxy2_encode(const struct sp_proxy_info *info, uint8_t *buf, size_t cap)
{
	struct pp2_writer w = { .buf = buf, .cap = cap, .len = 0, .fail = false };
	uint8_t fam = PP2_FAM_UNSPEC;

	if (info == NULL || buf == NULL || !info_valid(info))
		return -1;
	if (w.cap > SP_PP2_HDR_MAX)
		w.cap = SP_PP2_HDR_MAX;  /* never emit what our own decoder refuses */

	w_put(&w, pp2_sig, sizeof(pp2_sig));
	w_u8(&w, (uint8_t)(PP2_VERSION << 4 | (info->local ? PP2_CMD_LOCAL : PP2_CMD_PROXY)));
	w_u8(&w, 0);        /* family, patched below */
	w_put(&w, "\0\0", 2);  /* length, patched below */
	if (w.fail)
		return -1;
	/* LOCAL carries no addresses (2.2); its family is UNSPEC */
	if (!info->local && encode_addrs(&w, info, &fam) != 0)
		return -1;

	w_str_tlv(&w, SP_PP2_TYPE_ALPN, info->alpn);
	w_str_tlv(&w, SP_PP2_TYPE_AUTHORITY, info->sni);
	if (info->tls) {
		size_t at = w_tlv_begin(&w, SP_PP2_TYPE_SSL);
		uint8_t verify[4] = {
			(uint8_t)(info->tls_verify >> 24), (uint8_t)(info->tls_verify >> 16),
			(uint8_t)(info->tls_verify >> 8), (uint8_t)info->tls_verify,
		};

		w_u8(&w, info->tls_client);
		w_put(&w, verify, sizeof(verify));
		w_str_tlv(&w, SP_PP2_SUBTYPE_SSL_VERSION, info->tls_version);
		w_str_tlv(&w, SP_PP2_SUBTYPE_SSL_CIPHER, info->tls_cipher);
		w_str_tlv(&w, SP_PP2_SUBTYPE_SSL_SIG_ALG, info->tls_sig_alg);
		w_str_tlv(&w, SP_PP2_SUBTYPE_SSL_KEY_ALG, info->tls_key_alg);
		w_str_tlv(&w, SP_PP2_SUBTYPE_SSL_CN, info->cert_cn);
		w_str_tlv(&w, SP_PP2_SUBTYPE_SP_SUBJECT, info->cert_subject);
		w_str_tlv(&w, SP_PP2_SUBTYPE_SP_ISSUER, info->cert_issuer);
		w_str_tlv(&w, SP_PP2_SUBTYPE_SP_SERIAL, info->cert_serial);
		if (info->has_cert_sha256) {
			size_t sat = w_tlv_begin(&w, SP_PP2_SUBTYPE_SP_SHA256);

			w_put(&w, info->cert_sha256, sizeof(info->cert_sha256));
			w_tlv_end(&w, sat);
		}
		w_str_tlv(&w, SP_PP2_SUBTYPE_SP_EMAIL, info->cert_email);
		w_tlv_end(&w, at);
	}
	if (w.fail)
		return -1;
	buf[13] = fam;
	w_be16_at(&w, 14, w.len - PP2_FIXED);
	return (int)w.len;
}
