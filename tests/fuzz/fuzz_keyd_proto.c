/* libFuzzer target: keyd's wire decoders (accel/keyd_proto.h) on arbitrary
 * bytes, as a request, a reply and a control message; whatever decodes must
 * encode back to the same bytes (one canonical form per message). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accel/keyd_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(struct sp_msgbuf *b, const uint8_t *data, size_t size)
{
	if (b->len != SP_FRAME_HDR + size || memcmp(b->data + SP_FRAME_HDR, data, size) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keyd_req req;
	struct keyd_reply *reply = malloc(sizeof(*reply));
	struct sp_msgbuf b;
	const char *why = NULL;

	if (reply == NULL)
		return 0;
	sp_msgbuf_init(&b, KEYD_MAX_FRAME);
	if (keyd_req_decode(data, size, &req, &why) == 0) {
		if (keyd_req_encode(&b, &req) != 0)
			abort();
		check_same(&b, data, size);
	} else if (why == NULL) {
		abort();
	}
	why = NULL;
	if (keyd_reply_decode(data, size, reply, &why) == 0) {
		if (keyd_reply_encode(&b, reply) != 0)
			abort();
		check_same(&b, data, size);
	} else if (why == NULL) {
		abort();
	}
	why = NULL;
	if (keyd_ctl_decode(data, size, &why) == KEYD_CTL_NEWCHAN) {
		if (keyd_ctl_encode_newchan(&b) != 0)
			abort();
		check_same(&b, data, size);
	} else if (why == NULL) {
		abort();
	}
	sp_msgbuf_release(&b);
	free(reply);
	return 0;
}
