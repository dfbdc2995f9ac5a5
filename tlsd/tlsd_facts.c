/* The TLS facts of an established connection, as tlsd states them to the
 * backend (PROXY v2 TLVs) or to mailcore (handoff reply): version, cipher,
 * SNI, ALPN, server key and signature algorithm, and the client certificate
 * with its verification result. Also: OpenSSL's error queue into one string,
 * emptied at each boundary so a stale error never misleads the next call. */
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tlsd/tlsd_int.h"

const char *tlsd_ssl_errors(char *buf, size_t cap)
{
	unsigned long e;
	size_t used = 0;

	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		char one[256];
		int n;

		if (used + 2 >= cap)
			continue;  /* keep emptying the queue */
		ERR_error_string_n(e, one, sizeof(one));
		n = snprintf(buf + used, cap - used, "%s%s", used ? "; " : "", one);
		if (n < 0)
			break;
		used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
	}
	if (used == 0)
		snprintf(buf, cap, "no OpenSSL error");
	return buf;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src != NULL ? src : "");
}

static void name_rfc2253(X509_NAME *name, char *dst, size_t cap)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	dst[0] = '\0';
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_get_mem_data(b, &p);
		if (n > 0 && (size_t)n < cap) {
			memcpy(dst, p, (size_t)n);
			dst[n] = '\0';
		}
	}
	BIO_free(b);
}

/* UTF-8 text of the first entry nid in name; truncation leaves it empty
 * (a cut-off name would be a different name). */
static void name_entry(X509_NAME *name, int nid, char *dst, size_t cap)
{
	int idx = X509_NAME_get_index_by_NID(name, nid, -1);
	unsigned char *utf8 = NULL;
	int n;

	dst[0] = '\0';
	if (idx < 0)
		return;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
	if (n > 0 && (size_t)n < cap && memchr(utf8, '\0', (size_t)n) == NULL) {
		memcpy(dst, utf8, (size_t)n);
		dst[n] = '\0';
	}
	OPENSSL_free(utf8);
}

static void cert_email(X509 *cert, char *dst, size_t cap)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

	dst[0] = '\0';
	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		int n;

		if (gn->type != GEN_EMAIL)
			continue;
		n = ASN1_STRING_length(gn->d.rfc822Name);
		if (n > 0 && (size_t)n < cap &&
		    memchr(ASN1_STRING_get0_data(gn->d.rfc822Name), '\0', (size_t)n) == NULL) {
			memcpy(dst, ASN1_STRING_get0_data(gn->d.rfc822Name), (size_t)n);
			dst[n] = '\0';
			break;
		}
	}
	GENERAL_NAMES_free(sans);
	if (dst[0] == '\0')
		name_entry(X509_get_subject_name(cert), NID_pkcs9_emailAddress, dst, cap);
}

static void cert_serial(X509 *cert, char *dst, size_t cap)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

	dst[0] = '\0';
	if (hex != NULL && strlen(hex) < cap)
		copy_str(dst, cap, hex);
	OPENSSL_free(hex);
	BN_free(bn);
}

void tlsd_facts_from_ssl(SSL *ssl, struct sp_proxy_info *info)
{
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	X509 *own = SSL_get_certificate(ssl);
	X509 *peer = SSL_get0_peer_certificate(ssl);

	info->tls = true;
	info->tls_client = SP_PP2_CLIENT_SSL;
	copy_str(info->tls_version, sizeof(info->tls_version), SSL_get_version(ssl));
	copy_str(info->tls_cipher, sizeof(info->tls_cipher),
		 SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
	copy_str(info->sni, sizeof(info->sni), SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
	SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
	if (alpn_len > 0 && alpn_len < sizeof(info->alpn)) {
		memcpy(info->alpn, alpn, alpn_len);
		info->alpn[alpn_len] = '\0';
	}
	if (own != NULL) {
		EVP_PKEY *pk = X509_get0_pubkey(own);

		/* haproxy's convention: key type and size, e.g. "RSA2048", "EC256" */
		if (pk != NULL)
			snprintf(info->tls_key_alg, sizeof(info->tls_key_alg), "%s%d",
				 EVP_PKEY_is_a(pk, "RSA") ? "RSA" : EVP_PKEY_is_a(pk, "EC") ? "EC"
				 : "KEY", EVP_PKEY_get_bits(pk));
		copy_str(info->tls_sig_alg, sizeof(info->tls_sig_alg),
			 OBJ_nid2sn(X509_get_signature_nid(own)));
	}
	if (peer != NULL) {
		unsigned int mdlen = 0;

		info->tls_client |= SP_PP2_CLIENT_CERT_CONN;
		if (SSL_session_reused(ssl))
			info->tls_client |= SP_PP2_CLIENT_CERT_SESS;
		/* a resumed session was verified when it was made: its stored result */
		info->tls_verify = (uint32_t)(SSL_session_reused(ssl) ? SSL_get_verify_result(ssl)
					      : tlsd_ctx_verify_result(ssl));
		name_entry(X509_get_subject_name(peer), NID_commonName, info->cert_cn,
			   sizeof(info->cert_cn));
		name_rfc2253(X509_get_subject_name(peer), info->cert_subject,
			     sizeof(info->cert_subject));
		name_rfc2253(X509_get_issuer_name(peer), info->cert_issuer, sizeof(info->cert_issuer));
		cert_serial(peer, info->cert_serial, sizeof(info->cert_serial));
		cert_email(peer, info->cert_email, sizeof(info->cert_email));
		info->has_cert_sha256 = X509_digest(peer, EVP_sha256(), info->cert_sha256, &mdlen) == 1 &&
					mdlen == sizeof(info->cert_sha256);
	} else {
		/* no certificate: nothing to verify; haproxy sends 0 too */
		info->tls_verify = 0;
	}
	ERR_clear_error();
}
