/* libFuzzer target for the PROXY v2 decoder (common/proxy2.c): arbitrary
 * bytes must never crash it, and whatever it accepts must survive
 * encode -> decode unchanged, with a stable encoding (round-trip property). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/proxy2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SAME_STR(f) (strcmp(a->f, b->f) == 0)

static int info_equal(const struct sp_proxy_info *a, const struct sp_proxy_info *b)
{
	/* the decoder zeroes the struct first, so addresses compare bytewise */
	return a->local == b->local && memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
	       memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0 && a->tls == b->tls &&
	       a->tls_client == b->tls_client && a->tls_verify == b->tls_verify &&
	       SAME_STR(tls_version) && SAME_STR(tls_cipher) && SAME_STR(tls_sig_alg) &&
	       SAME_STR(tls_key_alg) && SAME_STR(sni) && SAME_STR(alpn) && SAME_STR(cert_cn) &&
	       SAME_STR(cert_subject) && SAME_STR(cert_issuer) && SAME_STR(cert_serial) &&
	       SAME_STR(cert_email) && a->has_cert_sha256 == b->has_cert_sha256 &&
	       memcmp(a->cert_sha256, b->cert_sha256, sizeof(a->cert_sha256)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sp_proxy_info first, second;
	static uint8_t enc1[SP_PP2_HDR_MAX], enc2[SP_PP2_HDR_MAX];
	const char *err = NULL;
	int n, m1, m2;

	n = sp_proxy2_decode(data, size, &first, &err);
	if (n < 0) {
		if (err == NULL)
			abort();  /* every refusal names its reason */
		return 0;
	}
	if (n == 0)
		return 0;
	if ((size_t)n > size || n > SP_PP2_HDR_MAX)
		abort();
	/* one byte short of an accepted header is "need more", never an error */
	if (sp_proxy2_decode(data, (size_t)n - 1, &second, &err) != 0)
		abort();

	m1 = sp_proxy2_encode(&first, enc1, sizeof(enc1));
	if (m1 <= 0)
		abort();  /* whatever we accept we can re-emit */
	if (sp_proxy2_decode(enc1, (size_t)m1, &second, &err) != m1)
		abort();
	if (!info_equal(&first, &second))
		abort();
	m2 = sp_proxy2_encode(&second, enc2, sizeof(enc2));
	if (m2 != m1 || memcmp(enc1, enc2, (size_t)m1) != 0)
		abort();  /* encoding is a fixed point */
	return 0;
}
