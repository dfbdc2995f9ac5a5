/* libFuzzer target for tlsd's STARTTLS handoff request parser
 * (tlsd/tlsd_handoff_parse.c): arbitrary bytes must never crash it, and a
 * request it accepts must re-encode (as common/handoff.c builds one) to a
 * body it accepts again with the same service and addresses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "common/handoff.h"
#include "tlsd/tlsd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tlsd_handoff_req req, again;
	static uint8_t hdr[SP_PP2_HDR_MAX];
	struct sp_msgbuf b;
	const char *err = NULL;
	int hlen;

	if (tlsd_handoff_parse(data, size, &req, &err) < 0) {
		if (err == NULL)
			abort();  /* a refusal always names its reason */
		return 0;
	}
	hlen = sp_proxy2_encode(&req.addrs, hdr, sizeof(hdr));
	if (hlen < 0)
		abort();
	sp_msgbuf_init(&b, SP_HANDOFF_MAX_MSG);
	sp_msg_put_u8(&b, SP_HANDOFF_VERSION);
	sp_msg_put_u8(&b, SP_HANDOFF_REQ);
	sp_msg_put_str(&b, req.service);
	sp_msg_put_bytes(&b, hdr, (size_t)hlen);
	if (sp_msgbuf_finish(&b) < 0)
		abort();
	if (tlsd_handoff_parse(b.data + SP_FRAME_HDR, b.len - SP_FRAME_HDR, &again, &err) < 0 ||
	    strcmp(req.service, again.service) != 0 ||
	    memcmp(&req.addrs.src, &again.addrs.src, sizeof(req.addrs.src)) != 0 ||
	    memcmp(&req.addrs.dst, &again.addrs.dst, sizeof(req.addrs.dst)) != 0)
		abort();
	sp_msgbuf_release(&b);
	return 0;
}
