/* SASL pieces for SMTP AUTH (RFC 4954): strict base64 (RFC 4648 4) and the
 * PLAIN message layout (RFC 4616 2). Pure; the session drives the exchange
 * and the users file checks the password. */
#include "mailcore/mailcore.h"

#include <string.h>

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

ssize_t smtp_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
	size_t o = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;

		for (size_t k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];

			if (c == '=') {
				/* padding only in the last quantum, only at its end */
				if (i + 4 != len || k < 2)
					return -1;
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad > 0)
				return -1;
			v[k] = b64_value(c);
			if (v[k] < 0)
				return -1;
		}
		if (o + 3 - pad > cap)
			return -1;
		out[o++] = (uint8_t)((v[0] << 2) | (v[1] >> 4));
		if (pad < 2)
			out[o++] = (uint8_t)(((v[1] & 0xf) << 4) | (v[2] >> 2));
		if (pad < 1)
			out[o++] = (uint8_t)(((v[2] & 0x3) << 6) | v[3]);
		/* RFC 4648 3.5: non-zero pad bits make the encoding non-canonical */
		if ((pad == 2 && (v[1] & 0xf) != 0) || (pad == 1 && (v[2] & 0x3) != 0))
			return -1;
	}
	return (ssize_t)o;
}

ssize_t smtp_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	size_t need = (len + 2) / 3 * 4 + 1, o = 0;

	if (cap < need)
		return -1;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return (ssize_t)o;
}

/* RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd; each part
 * at most 255 octets, authcid and passwd non-empty, no further NUL. */
int smtp_sasl_plain_split(const uint8_t *msg, size_t len, struct smtp_plain *out)
{
	const uint8_t *nul1, *nul2;

	nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL)
		return -1;
	nul2 = memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg));
	if (nul2 == NULL)
		return -1;
	out->authzid = (const char *)msg;
	out->authzid_len = (size_t)(nul1 - msg);
	out->authcid = (const char *)nul1 + 1;
	out->authcid_len = (size_t)(nul2 - nul1 - 1);
	out->passwd = (const char *)nul2 + 1;
	out->passwd_len = len - (size_t)(nul2 + 1 - msg);
	if (memchr(out->passwd, '\0', out->passwd_len) != NULL)
		return -1;
	if (out->authcid_len == 0 || out->passwd_len == 0 || out->authzid_len > 255 ||
	    out->authcid_len > 255 || out->passwd_len > 255)
		return -1;
	return 0;
}
