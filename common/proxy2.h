/* PROXY protocol version 2 (haproxy's proxy-protocol.txt, section 2.2):
 * encoding and decoding of the binary header tlsd writes in front of each
 * relayed connection, with the TLS TLVs and Sealpost's own TLVs for the client
 * certificate. Pure: bytes in, struct out. */
#ifndef SP_PROXY2_H
#define SP_PROXY2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Standard TLV types (proxy-protocol.txt 2.2.1 - 2.2.7) */
#define SP_PP2_TYPE_ALPN 0x01
#define SP_PP2_TYPE_AUTHORITY 0x02  /* SNI host name */
#define SP_PP2_TYPE_CRC32C 0x03
#define SP_PP2_TYPE_NOOP 0x04
#define SP_PP2_TYPE_UNIQUE_ID 0x05
#define SP_PP2_TYPE_SSL 0x20
#define SP_PP2_SUBTYPE_SSL_VERSION 0x21
#define SP_PP2_SUBTYPE_SSL_CN 0x22
#define SP_PP2_SUBTYPE_SSL_CIPHER 0x23
#define SP_PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define SP_PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define SP_PP2_TYPE_NETNS 0x30
/* Sealpost's TLVs, in the range reserved for custom use (0xE0-0xEF), as
 * sub-TLVs of PP2_TYPE_SSL so they travel with the other TLS facts. */
#define SP_PP2_SUBTYPE_SP_SUBJECT 0xE0  /* client cert subject DN, RFC 2253 */
#define SP_PP2_SUBTYPE_SP_ISSUER 0xE1   /* client cert issuer DN, RFC 2253 */
#define SP_PP2_SUBTYPE_SP_SERIAL 0xE2   /* serial, upper-case hex */
#define SP_PP2_SUBTYPE_SP_SHA256 0xE3   /* 32 bytes: SHA-256 of the DER cert */
#define SP_PP2_SUBTYPE_SP_EMAIL 0xE4    /* first e-mail address in the cert */

/* PP2_CLIENT_* bits of the SSL TLV */
#define SP_PP2_CLIENT_SSL 0x01
#define SP_PP2_CLIENT_CERT_CONN 0x02
#define SP_PP2_CLIENT_CERT_SESS 0x04

#define SP_PP2_HDR_MAX 4096  /* largest header we emit or accept */

struct sp_proxy_info {
	bool local;                   /* LOCAL command: no addresses (health check) */
	struct sockaddr_storage src;  /* ss_family AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC */
	struct sockaddr_storage dst;
	/* TLS facts; tls false = no SSL TLV */
	bool tls;
	uint8_t tls_client;           /* SP_PP2_CLIENT_* */
	uint32_t tls_verify;          /* 0 = client certificate verified */
	char tls_version[16];         /* "TLSv1.3" */
	char tls_cipher[64];          /* "TLS_AES_256_GCM_SHA384" */
	char tls_sig_alg[32];
	char tls_key_alg[32];
	char sni[256];                /* empty if none */
	char alpn[64];
	char cert_cn[256];
	char cert_subject[1024];
	char cert_issuer[1024];
	char cert_serial[128];
	char cert_email[256];
	bool has_cert_sha256;
	uint8_t cert_sha256[32];
};

/* Writes the header for info into buf. Returns its length, or -1 if it does
 * not fit in cap (cap >= SP_PP2_HDR_MAX always suffices) or info is invalid. */
int sp_proxy2_encode(const struct sp_proxy_info *info, uint8_t *buf, size_t cap);

/* Decodes a header at the start of buf.
 * Returns  n > 0: a complete header of n bytes was decoded into *info;
 *          0: not enough bytes yet (call again with more);
 *         -1: malformed (*error_r: static string naming the problem).
 * Unknown TLVs are skipped; a CRC32C TLV, if present, is verified; strings
 * longer than their field, or with NUL bytes, are malformed. */
int sp_proxy2_decode(const uint8_t *buf, size_t len, struct sp_proxy_info *info,
		     const char **error_r);

#endif
