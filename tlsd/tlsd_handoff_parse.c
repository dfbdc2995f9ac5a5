/* The STARTTLS handoff request parser (common/handoff.h "request"): pure,
 * bytes in, a request or an error out, so it can be fuzzed
 * (tests/fuzz/fuzz_handoff.c). The fd that rides along is checked by
 * tlsd_handoff.c. */
#include <string.h>

#include "common/frame.h"
#include "common/handoff.h"
#include "tlsd/tlsd.h"

static int service_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= TLSD_SERVICE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

int tlsd_handoff_parse(const uint8_t *body, size_t len, struct tlsd_handoff_req *req,
		       const char **error_r)
{
	struct sp_msgrd r;
	const uint8_t *hdr;
	size_t hlen = 0;
	uint8_t version, type;
	int n;

	memset(req, 0, sizeof(*req));
	sp_msgrd_init(&r, body, len);
	version = sp_msg_get_u8(&r);
	type = sp_msg_get_u8(&r);
	if (r.error) {
		*error_r = "request too short";
		return -1;
	}
	if (version != SP_HANDOFF_VERSION) {
		*error_r = "unsupported version";
		return -1;
	}
	if (type != SP_HANDOFF_REQ) {
		*error_r = "not a handoff request";
		return -1;
	}
	sp_msg_get_str(&r, req->service, sizeof(req->service));
	hdr = sp_msg_get_bytes(&r, SP_PP2_HDR_MAX, &hlen);
	if (!sp_msgrd_done(&r)) {
		*error_r = "malformed request (lengths or trailing bytes)";
		return -1;
	}
	if (!service_name_ok(req->service)) {
		*error_r = "bad service name";
		return -1;
	}
	n = sp_proxy2_decode(hdr, hlen, &req->addrs, error_r);
	if (n < 0)
		return -1;
	if (n == 0) {
		*error_r = "truncated PROXY header";
		return -1;
	}
	if ((size_t)n != hlen) {
		*error_r = "bytes after the PROXY header";
		return -1;
	}
	if (req->addrs.local) {
		*error_r = "PROXY LOCAL command: addresses required";
		return -1;
	}
	if (req->addrs.src.ss_family != req->addrs.dst.ss_family ||
	    (req->addrs.src.ss_family != AF_INET && req->addrs.src.ss_family != AF_INET6)) {
		*error_r = "addresses must be TCP over IPv4 or IPv6, both of one family";
		return -1;
	}
	if (req->addrs.tls) {
		*error_r = "request carries TLS facts";
		return -1;
	}
	return 0;
}
