/* Access-control plumbing for the SMTP session: channel names, the probe
 * strings the mapping tables see (formats in docs/MAPPINGS.md), the RFC 3848
 * protocol names, and the cipher strength behind plaintextmincipher. */
#include "mailcore/mailcore.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

const char *smtp_channel_name(enum smtp_channel ch)
{
	switch (ch) {
	case SMTP_CH_TCP_INTRANET: return "tcp_intranet";
	case SMTP_CH_TCP_AUTH: return "tcp_auth";
	case SMTP_CH_TCP_SUBMIT: return "tcp_submit";
	case SMTP_CH_TCP_LOCAL: break;
	}
	return "tcp_local";
}

const char *smtp_with_protocol(bool ehlo, bool tls, bool auth)
{
	if (!ehlo)
		return "SMTP";
	if (tls)
		return auth ? "ESMTPSA" : "ESMTPS";
	return auth ? "ESMTPA" : "ESMTP";
}

const char *smtp_app_info(bool ehlo, bool tls, bool auth)
{
	if (!ehlo)
		return "SMTP";
	if (tls)
		return auth ? "SMTP/ESMTPSA" : "SMTP/ESMTPS";
	return auth ? "SMTP/ESMTPA" : "SMTP/ESMTP";
}

void smtp_sockaddr_text(const struct sockaddr_storage *ss, char *ip, size_t ip_cap,
			unsigned *port_r)
{
	*port_r = 0;
	if (ip_cap == 0)
		return;
	ip[0] = '\0';
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, (socklen_t)ip_cap);
		*port_r = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		/* an IPv4 client on a dual-stack socket is shown as IPv4 */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ip, (socklen_t)ip_cap);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, ip, (socklen_t)ip_cap);
		*port_r = ntohs(sin6->sin6_port);
	} else if (ss->ss_family == AF_UNIX) {
		snprintf(ip, ip_cap, "unix");
	}
}

int smtp_probe_field(char *buf, size_t cap, size_t *pos, const char *s)
{
	for (; *s != '\0'; s++) {
		const char *put = *s == '|' ? "%7C" : NULL;
		size_t n = put != NULL ? 3 : 1;

		if (*pos + n >= cap)
			return -1;
		memcpy(buf + *pos, put != NULL ? put : s, n);
		*pos += n;
	}
	buf[*pos] = '\0';
	return 0;
}

int smtp_probe_port_access(const struct sockaddr_storage *local,
			   const struct sockaddr_storage *client, char *buf, size_t cap)
{
	char lip[INET6_ADDRSTRLEN], cip[INET6_ADDRSTRLEN];
	unsigned lport, cport;
	int n;

	smtp_sockaddr_text(local, lip, sizeof(lip), &lport);
	smtp_sockaddr_text(client, cip, sizeof(cip), &cport);
	n = snprintf(buf, cap, "TCP|%s|%u|%s|%u", lip, lport, cip, cport);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int smtp_cipher_bits(const char *cipher)
{
	if (cipher == NULL || cipher[0] == '\0')
		return 0;
	/* TLS 1.3 suites and OpenSSL names: AES256 / AES_256 / CHACHA20 = 256 */
	if (strstr(cipher, "256") != NULL || strstr(cipher, "CHACHA20") != NULL)
		return 256;
	if (strstr(cipher, "128") != NULL)
		return 128;
	if (strstr(cipher, "3DES") != NULL || strstr(cipher, "DES-CBC3") != NULL)
		return 112;
	return 0;
}
