/* libFuzzer target for common/frame.c: random bytes are fed in random-sized
 * chunks through sp_frame_reader, and each frame is picked apart by a
 * random sequence of sp_msgrd getters; the reader's bounds and the
 * parser's sticky-error rules are checked as it goes. Input layout:
 * [max_body selector][script length L][L script bytes][stream bytes...] */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct script {
	const uint8_t *p;
	size_t n;
	size_t at;
};

static uint8_t script_next(struct script *s)
{
	return s->n == 0 ? 0 : s->p[s->at++ % s->n];
}

/* Runs the getter script over one body, checking the parser's invariants. */
static void parse_body(const uint8_t *body, size_t len, struct script *s)
{
	struct sp_msgrd rd;
	char str[65];
	size_t steps = s->n > 0 ? s->n : 1;

	sp_msgrd_init(&rd, body, len);
	for (size_t k = 0; k < steps; k++) {
		size_t before = rd.left, got = 0;
		bool was_error = rd.error;
		const uint8_t *p;
		uint64_t v = 0;
		uint8_t op = script_next(s);

		switch (op % 7) {
		case 0: v = sp_msg_get_u8(&rd); break;
		case 1: v = sp_msg_get_u16(&rd); break;
		case 2: v = sp_msg_get_u32(&rd); break;
		case 3: v = sp_msg_get_u64(&rd); break;
		case 4:
			p = sp_msg_get_bytes(&rd, script_next(s), &got);
			if (rd.error ? (p != NULL || got != 0) : (p == NULL || p < body ||
								  p + got > body + len))
				abort();
			break;
		case 5: {
			size_t cap = 1 + script_next(s) % (sizeof(str) - 1);

			memset(str, 'Z', sizeof(str));
			sp_msg_get_str(&rd, str, cap);
			if (strnlen(str, cap) >= cap)
				abort();  /* always terminated inside cap */
			if (!rd.error && strlen(str) + 4 != before - rd.left)
				abort();  /* no NUL hid part of the string */
			break;
		}
		default:
			if (sp_msgrd_done(&rd) != (!rd.error && rd.left == 0))
				abort();
			break;
		}
		if (rd.left > before || (was_error && !rd.error))
			abort();  /* never rewinds; errors stick */
		if (rd.error && v != 0)
			abort();  /* a failed get yields 0 */
		if (rd.left > len || (rd.left > 0 && rd.p + rd.left != body + len))
			abort();
	}
}

/* The body rebuilt with the builder and read back is the same bytes. */
static void rebuild(const uint8_t *body, size_t len, size_t max_body)
{
	struct sp_msgbuf b;
	struct sp_msgrd rd;
	const uint8_t *p;
	size_t n = 0;

	sp_msgbuf_init(&b, max_body);
	sp_msg_put_bytes(&b, body, len);
	if (b.overflow != (len + 4 > max_body))
		abort();
	if (sp_msgbuf_finish(&b) == 0) {
		if (b.cap > max_body + SP_FRAME_HDR)
			abort();
		sp_msgrd_init(&rd, b.data + SP_FRAME_HDR, b.len - SP_FRAME_HDR);
		p = sp_msg_get_bytes(&rd, len, &n);
		if (!sp_msgrd_done(&rd) || n != len || (len > 0 && memcmp(p, body, len) != 0))
			abort();
	}
	sp_msgbuf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_frame_reader *r;
	struct script s;
	size_t max_body, off;
	const char *err;

	if (size < 2)
		return 0;
	max_body = 1 + (size_t)data[0] * 4;  /* small, so the limits are hit */
	s.n = data[1] < size - 2 ? data[1] : size - 2;
	s.p = data + 2;
	s.at = 0;
	off = 2 + s.n;

	r = sp_frame_reader_new(max_body);
	if (r == NULL)
		abort();
	while (off < size) {
		/* chunk sizes come from the script too: exercises partial feeds */
		size_t chunk = 1 + script_next(&s) % 64;
		const uint8_t *body;
		size_t len;
		int rc;

		if (chunk > size - off)
			chunk = size - off;
		err = NULL;
		rc = sp_frame_reader_feed(r, data + off, chunk, &err);
		if (rc != 0 && err == NULL)
			abort();
		if (rc != 0 && strcmp(err, "buffer full") == 0) {
			size_t room = SP_FRAME_HDR + max_body - sp_frame_reader_pending(r);

			if (chunk <= room)
				abort();  /* refused although it fitted */
			chunk = room;  /* feed what fits, as a careful caller would */
			rc = chunk > 0 ? sp_frame_reader_feed(r, data + off, chunk, &err) : 0;
		}
		if (rc == 0)
			off += chunk;
		if (sp_frame_reader_pending(r) > SP_FRAME_HDR + max_body)
			abort();
		while ((rc = sp_frame_reader_next(r, &body, &len, &err)) == 1) {
			if (len > max_body)
				abort();
			parse_body(body, len, &s);
			rebuild(body, len, max_body);
		}
		if (rc < 0) {
			if (sp_frame_reader_feed(r, "", 1, &err) != -1)
				abort();  /* a too-large frame is final */
			break;
		}
		if (rc == 0 && off < size && sp_frame_reader_pending(r) == SP_FRAME_HDR + max_body)
			abort();  /* full but no frame: cannot happen with a valid length */
	}
	sp_frame_reader_free(&r);
	return 0;
}
