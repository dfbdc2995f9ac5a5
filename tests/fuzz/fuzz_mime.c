/* libFuzzer target for the MIME structure parser and header helpers
 * (mailcore/mime_parse.c, mime_header.c): any message must parse within
 * the depth and part bounds, every part must lie inside the message, and
 * the header, Content-Type and address helpers must stay in their buffers;
 * the header's end seen in any prefix is the whole message's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mime_message m;
	static struct mime_addr addrs[MIME_MAX_ADDRS];
	char v[MIME_FIELD_MAX];
	struct mime_ctype ct;
	struct mime_param params[MIME_MAX_PARAMS];
	size_t np;
	char disp[64];
	uint32_t nums[3] = {1, 2, 1};

	mime_parse(data, size, &m);
	if (m.n == 0 || m.n > MIME_MAX_PARTS)
		abort();
	for (size_t i = 0; i < m.n; i++) {
		const struct mime_part *p = &m.parts[i];

		if (p->start > size || p->start + p->hdr_len > size || p->body_start > size ||
		    p->body_start + p->body_len > size || p->depth > MIME_MAX_DEPTH)
			abort();
		if (mime_header_get(data + p->start, p->hdr_len, "Content-Type", v, sizeof(v)) >= 0)
			mime_parse_ctype(v, &ct);
		if (mime_header_get(data + p->start, p->hdr_len, "Content-Disposition", v, sizeof(v)) >= 0)
			mime_parse_disposition(v, disp, sizeof(disp), params, &np);
		if (mime_header_get(data + p->start, p->hdr_len, "To", v, sizeof(v)) >= 0 &&
		    mime_parse_addresses(v, addrs, MIME_MAX_ADDRS) > MIME_MAX_ADDRS)
			abort();
	}
	/* the header end found in a prefix (FETCH reads only that far for
	 * ENVELOPE) is the whole message's, and part 0's */
	{
		size_t end, pend;
		bool found = mime_header_end(data, size, &end);

		if (end > size || (found ? end : size) != m.parts[0].start + m.parts[0].hdr_len)
			abort();
		for (size_t cut = 0; cut <= size; cut += 1 + cut / 2)
			if (mime_header_end(data, cut, &pend) && (!found || pend != end))
				abort();
	}
	for (size_t n = 0; n <= 3; n++) {
		int p = mime_find_part(&m, nums, n);

		if (p >= (int)m.n)
			abort();
	}
	return 0;
}
