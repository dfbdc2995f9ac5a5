/* Unit tests for common/frame.c: the stream reader (byte-at-a-time input,
 * several frames per feed, oversized and buffer-full errors), the bounded
 * builder (exact limits, sticky overflow, wiping on reset) and the
 * sticky-error parser (reads past the end, bad lengths, exact-size check). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/frame.h"

/* A frame: 4-byte big-endian length, then the body. */
static size_t make_frame(uint8_t *out, const void *body, uint32_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	if (len > 0)
		memcpy(out + 4, body, len);
	return 4 + (size_t)len;
}

/* ---- reader ---- */
static void test_reader_new_bounds(void **state)
{
	struct sp_frame_reader *r;

	(void)state;
	errno = 0;
	assert_null(sp_frame_reader_new(0));
	assert_int_equal(errno, EINVAL);
	assert_null(sp_frame_reader_new(16 * 1024 * 1024 + 1));
	r = sp_frame_reader_new(16 * 1024 * 1024);
	assert_non_null(r);
	sp_frame_reader_free(&r);
	assert_null(r);
	sp_frame_reader_free(&r);  /* NULL is a no-op */
	r = sp_frame_reader_new(1);
	assert_non_null(r);
	sp_frame_reader_free(&r);
}

static void test_reader_one_byte_at_a_time(void **state)
{
	struct sp_frame_reader *r = sp_frame_reader_new(100);
	uint8_t wire[64];
	size_t n = make_frame(wire, "hello, keyd", 11);
	const uint8_t *body;
	size_t len;
	const char *err = NULL;

	(void)state;
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 0);
		assert_int_equal(sp_frame_reader_pending(r), k);
		assert_int_equal(sp_frame_reader_feed(r, wire + k, 1, &err), 0);
	}
	assert_int_equal(sp_frame_reader_pending(r), n);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 1);
	assert_int_equal(len, 11);
	assert_memory_equal(body, "hello, keyd", 11);
	assert_int_equal(sp_frame_reader_pending(r), 0);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 0);
	sp_frame_reader_free(&r);
}

static void test_reader_several_frames_one_feed(void **state)
{
	struct sp_frame_reader *r = sp_frame_reader_new(64);
	uint8_t wire[256];
	size_t n = 0;
	const uint8_t *body;
	size_t len;
	const char *err = NULL;

	(void)state;
	n += make_frame(wire + n, "one", 3);
	n += make_frame(wire + n, NULL, 0);  /* empty body is a frame too */
	n += make_frame(wire + n, "three", 5);
	n += make_frame(wire + n, "fou", 3);  /* and a partial fourth */
	n -= 1;
	assert_int_equal(sp_frame_reader_feed(r, wire, n, &err), 0);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 1);
	assert_int_equal(len, 3);
	assert_memory_equal(body, "one", 3);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 1);
	assert_int_equal(len, 0);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 1);
	assert_int_equal(len, 5);
	assert_memory_equal(body, "three", 5);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 0);
	assert_int_equal(sp_frame_reader_pending(r), 4 + 2);
	assert_int_equal(sp_frame_reader_feed(r, "u", 1, &err), 0);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 1);
	assert_memory_equal(body, "fou", 3);
	assert_int_equal(sp_frame_reader_pending(r), 0);
	sp_frame_reader_free(&r);
}

static void test_reader_max_body_exact(void **state)
{
	struct sp_frame_reader *r = sp_frame_reader_new(1000);
	static uint8_t body[1000], wire[1004];
	const uint8_t *got;
	size_t len;
	const char *err = NULL;

	(void)state;
	memset(body, 0x42, sizeof(body));
	make_frame(wire, body, sizeof(body));
	assert_int_equal(sp_frame_reader_feed(r, wire, sizeof(wire), &err), 0);
	assert_int_equal(sp_frame_reader_next(r, &got, &len, &err), 1);
	assert_int_equal(len, 1000);
	assert_memory_equal(got, body, 1000);
	/* again, now that the buffer has grown and frames were consumed */
	assert_int_equal(sp_frame_reader_feed(r, wire, sizeof(wire), &err), 0);
	assert_int_equal(sp_frame_reader_next(r, &got, &len, &err), 1);
	assert_memory_equal(got, body, 1000);
	sp_frame_reader_free(&r);
}

static void test_reader_oversized_sticky(void **state)
{
	struct sp_frame_reader *r = sp_frame_reader_new(10);
	uint8_t wire[32];
	const uint8_t *body;
	size_t len;
	const char *err = NULL;

	(void)state;
	make_frame(wire, "0123456789X", 11);
	/* three bytes of the length: not decided yet */
	assert_int_equal(sp_frame_reader_feed(r, wire, 3, &err), 0);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 0);
	/* the fourth: refused at once, without waiting for the body */
	assert_int_equal(sp_frame_reader_feed(r, wire + 3, 1, &err), -1);
	assert_string_equal(err, "frame too large");
	err = NULL;
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), -1);
	assert_string_equal(err, "frame too large");
	assert_null(body);
	/* sticky */
	err = NULL;
	assert_int_equal(sp_frame_reader_feed(r, "x", 1, &err), -1);
	assert_string_equal(err, "frame too large");
	assert_int_equal(sp_frame_reader_feed(r, "x", 0, &err), -1);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, NULL), -1);
	sp_frame_reader_free(&r);
}

static void test_reader_oversized_after_good(void **state)
{
	struct sp_frame_reader *r = sp_frame_reader_new(10);
	uint8_t wire[64];
	size_t n = 0;
	const uint8_t *body;
	size_t len;
	const char *err = NULL;

	(void)state;
	n += make_frame(wire, "ok", 2);
	wire[n++] = 0xFF;  /* a huge length behind a good frame */
	wire[n++] = 0xFF;
	wire[n++] = 0xFF;
	wire[n++] = 0xFF;
	assert_int_equal(sp_frame_reader_feed(r, wire, n, &err), 0);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 1);
	assert_memory_equal(body, "ok", 2);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), -1);
	assert_string_equal(err, "frame too large");
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), -1);
	sp_frame_reader_free(&r);
}

static void test_reader_buffer_full(void **state)
{
	struct sp_frame_reader *r = sp_frame_reader_new(8);
	uint8_t wire[64];
	size_t n = 0;
	const uint8_t *body;
	size_t len;
	const char *err = NULL;

	(void)state;
	/* more than header + max_body in one go */
	memset(wire, 0, sizeof(wire));
	assert_int_equal(sp_frame_reader_feed(r, wire, 13, &err), -1);
	assert_string_equal(err, "buffer full");
	assert_int_equal(sp_frame_reader_pending(r), 0);

	n += make_frame(wire, "abcd", 4);
	n += make_frame(wire + n, "efgh", 4);
	assert_int_equal(sp_frame_reader_feed(r, wire, 12, &err), 0);  /* exactly full */
	err = NULL;
	assert_int_equal(sp_frame_reader_feed(r, wire + 8, 1, &err), -1);
	assert_string_equal(err, "buffer full");
	assert_int_equal(sp_frame_reader_pending(r), 12);  /* nothing of it kept */
	/* not sticky: taking frames makes room */
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 1);
	assert_memory_equal(body, "abcd", 4);
	assert_int_equal(sp_frame_reader_feed(r, wire + 12, n - 12, &err), 0);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 1);
	assert_memory_equal(body, "efgh", 4);
	sp_frame_reader_free(&r);
}

/* ---- builder ---- */
static void test_builder_roundtrip(void **state)
{
	struct sp_msgbuf b;
	struct sp_msgrd rd;
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x22,
		0x7F,
		0xBE, 0xEF,
		0x01, 0x02, 0x03, 0x04,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x00, 0x00, 0x00, 0x03, 0xAA, 0x00, 0xBB,
		0x00, 0x00, 0x00, 0x04, 'k', 'e', 'y', 'd',
		0x00, 0x00, 0x00, 0x00,
	};
	char s[16];
	const uint8_t *p;
	size_t n;

	(void)state;
	sp_msgbuf_init(&b, 1024);
	sp_msg_put_u8(&b, 0x7F);
	sp_msg_put_u16(&b, 0xBEEF);
	sp_msg_put_u32(&b, 0x01020304);
	sp_msg_put_u64(&b, 0x0102030405060708ull);
	sp_msg_put_bytes(&b, "\xAA\x00\xBB", 3);
	sp_msg_put_str(&b, "keyd");
	sp_msg_put_str(&b, NULL);
	assert_int_equal(sp_msgbuf_finish(&b), 0);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));

	sp_msgrd_init(&rd, b.data + SP_FRAME_HDR, b.len - SP_FRAME_HDR);
	assert_int_equal(sp_msg_get_u8(&rd), 0x7F);
	assert_int_equal(sp_msg_get_u16(&rd), 0xBEEF);
	assert_int_equal(sp_msg_get_u32(&rd), 0x01020304);
	assert_true(sp_msg_get_u64(&rd) == 0x0102030405060708ull);
	p = sp_msg_get_bytes(&rd, 3, &n);
	assert_non_null(p);
	assert_int_equal(n, 3);
	assert_memory_equal(p, "\xAA\x00\xBB", 3);
	sp_msg_get_str(&rd, s, sizeof(s));
	assert_string_equal(s, "keyd");
	assert_false(sp_msgrd_done(&rd));
	sp_msg_get_str(&rd, s, sizeof(s));
	assert_string_equal(s, "");
	assert_true(sp_msgrd_done(&rd));
	sp_msgbuf_release(&b);
	assert_null(b.data);
	sp_msgbuf_release(&b);  /* twice is harmless */
}

static void test_builder_empty_body(void **state)
{
	struct sp_msgbuf b;

	(void)state;
	sp_msgbuf_init(&b, 0);
	assert_int_equal(sp_msgbuf_finish(&b), 0);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "\0\0\0\0", 4);
	assert_true(b.cap <= 4);
	sp_msg_put_u8(&b, 1);
	assert_true(b.overflow);
	assert_int_equal(sp_msgbuf_finish(&b), -1);
	sp_msgbuf_release(&b);
}

/* Filling to exactly max_body works; capacity never passes max_body + 4. */
static void test_builder_exact_limit(void **state)
{
	struct sp_msgbuf b;
	static uint8_t blob[5000];

	(void)state;
	memset(blob, 0x11, sizeof(blob));
	sp_msgbuf_init(&b, 5000);
	for (int k = 0; k < 4996; k++) {
		sp_msg_put_u8(&b, (uint8_t)k);
		assert_true(b.cap <= 5004);
	}
	sp_msg_put_u32(&b, 7);
	assert_false(b.overflow);
	assert_true(b.cap <= 5004);
	assert_int_equal(sp_msgbuf_finish(&b), 0);
	assert_int_equal(b.len, 5004);
	assert_memory_equal(b.data, "\x00\x00\x13\x88", 4);

	sp_msgbuf_reset(&b);
	sp_msg_put_bytes(&b, blob, 4996);  /* 4 + 4996 = 5000 */
	assert_false(b.overflow);
	assert_int_equal(sp_msgbuf_finish(&b), 0);
	assert_true(b.cap <= 5004);
	sp_msgbuf_release(&b);
}

static void test_builder_overflow_sticky(void **state)
{
	struct sp_msgbuf b;
	static uint8_t blob[100];

	(void)state;
	sp_msgbuf_init(&b, 10);
	sp_msg_put_u64(&b, 1);
	sp_msg_put_u16(&b, 2);
	assert_false(b.overflow);
	sp_msg_put_u8(&b, 3);  /* 11 > 10 */
	assert_true(b.overflow);
	assert_int_equal(b.len, 4 + 10);  /* the failed put wrote nothing */
	sp_msgbuf_reset(&b);
	sp_msg_put_u32(&b, 1);
	sp_msg_put_u64(&b, 1);  /* 12 > 10 */
	assert_true(b.overflow);
	assert_int_equal(b.len, 4 + 4);
	sp_msgbuf_reset(&b);
	assert_false(b.overflow);

	/* a field that does not fit is not written in part */
	sp_msg_put_bytes(&b, blob, 7);  /* 4 + 7 = 11 */
	assert_true(b.overflow);
	assert_int_equal(b.len, 4);
	/* sticky: a small put after the overflow still fails */
	sp_msg_put_u8(&b, 1);
	assert_int_equal(b.len, 4);
	assert_int_equal(sp_msgbuf_finish(&b), -1);
	assert_int_equal(sp_msgbuf_finish(&b), -1);

	sp_msgbuf_reset(&b);
	sp_msg_put_str(&b, "123456");  /* 4 + 6 = 10: fits */
	assert_false(b.overflow);
	sp_msg_put_str(&b, "");  /* 4 more: does not */
	assert_true(b.overflow);
	sp_msgbuf_reset(&b);
	sp_msg_put_bytes(&b, NULL, 5);  /* nonsense from the caller */
	assert_true(b.overflow);
	sp_msgbuf_release(&b);
}

/* Huge requests are refused by size, not by trying to allocate them. */
static void test_builder_huge(void **state)
{
	struct sp_msgbuf b;
	static uint8_t blob[16];

	(void)state;
	sp_msgbuf_init(&b, SIZE_MAX);
	assert_true(b.max_body <= UINT32_MAX);
	sp_msg_put_bytes(&b, blob, (size_t)UINT32_MAX + 1);
	assert_true(b.overflow);
	sp_msgbuf_reset(&b);
	sp_msg_put_bytes(&b, blob, SIZE_MAX);
	assert_true(b.overflow);
	sp_msgbuf_release(&b);
}

/* Reset wipes the old body (it may have held a signature) but keeps memory. */
static void test_builder_reset_wipes(void **state)
{
	struct sp_msgbuf b;
	uint8_t *mem;

	(void)state;
	sp_msgbuf_init(&b, 64);
	sp_msg_put_bytes(&b, "secret-signature", 16);
	assert_int_equal(sp_msgbuf_finish(&b), 0);
	mem = b.data;
	sp_msgbuf_reset(&b);
	assert_ptr_equal(b.data, mem);
	assert_int_equal(b.len, 4);
	for (size_t k = 0; k < 4 + 4 + 16; k++)
		assert_int_equal(mem[k], 0);
	sp_msgbuf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

static void test_builder_growth(void **state)
{
	struct sp_msgbuf b;
	struct sp_msgrd rd;

	(void)state;
	sp_msgbuf_init(&b, 1 << 20);
	for (uint32_t k = 0; k < 100000; k++)
		sp_msg_put_u32(&b, k);
	assert_false(b.overflow);
	assert_int_equal(sp_msgbuf_finish(&b), 0);
	assert_true(b.cap <= (1 << 20) + 4);
	sp_msgrd_init(&rd, b.data + 4, b.len - 4);
	for (uint32_t k = 0; k < 100000; k++)
		assert_int_equal(sp_msg_get_u32(&rd), k);
	assert_true(sp_msgrd_done(&rd));
	sp_msgbuf_release(&b);
}

/* The builder's frame goes through the reader unchanged. */
static void test_builder_to_reader(void **state)
{
	struct sp_msgbuf b;
	struct sp_frame_reader *r = sp_frame_reader_new(256);
	struct sp_msgrd rd;
	const uint8_t *body;
	size_t len;
	char s[32];
	const char *err;

	(void)state;
	sp_msgbuf_init(&b, 256);
	sp_msg_put_u8(&b, 1);
	sp_msg_put_str(&b, "smtp");
	assert_int_equal(sp_msgbuf_finish(&b), 0);
	for (size_t k = 0; k < b.len; k++)
		assert_int_equal(sp_frame_reader_feed(r, b.data + k, 1, &err), 0);
	assert_int_equal(sp_frame_reader_next(r, &body, &len, &err), 1);
	sp_msgrd_init(&rd, body, len);
	assert_int_equal(sp_msg_get_u8(&rd), 1);
	sp_msg_get_str(&rd, s, sizeof(s));
	assert_string_equal(s, "smtp");
	assert_true(sp_msgrd_done(&rd));
	sp_msgbuf_release(&b);
	sp_frame_reader_free(&r);
}

/* ---- parser ---- */
static void test_get_past_end(void **state)
{
	static const uint8_t body[] = { 1, 2, 3 };
	struct sp_msgrd rd;

	(void)state;
	sp_msgrd_init(&rd, body, sizeof(body));
	assert_int_equal(sp_msg_get_u32(&rd), 0);  /* 4 > 3 */
	assert_true(rd.error);
	assert_int_equal(sp_msg_get_u8(&rd), 0);  /* sticky: bytes remain, still 0 */
	assert_false(sp_msgrd_done(&rd));

	sp_msgrd_init(&rd, body, sizeof(body));
	assert_int_equal(sp_msg_get_u16(&rd), 0x0102);
	assert_int_equal(sp_msg_get_u16(&rd), 0);
	assert_true(rd.error);
	sp_msgrd_init(&rd, body, sizeof(body));
	assert_true(sp_msg_get_u64(&rd) == 0);
	assert_true(rd.error);
	sp_msgrd_init(&rd, body, 0);
	assert_int_equal(sp_msg_get_u8(&rd), 0);
	assert_true(rd.error);
	sp_msgrd_init(&rd, NULL, 0);
	assert_true(sp_msgrd_done(&rd));
	assert_int_equal(sp_msg_get_u8(&rd), 0);
	assert_false(sp_msgrd_done(&rd));
	sp_msgrd_init(&rd, NULL, 5);  /* nonsense from the caller */
	assert_true(rd.error);
}

static void test_get_bytes_lengths(void **state)
{
	static const uint8_t body[] = { 0, 0, 0, 4, 'a', 'b', 'c', 'd', 0, 0, 0, 9, 'x' };
	static const uint8_t huge[] = { 0xFF, 0xFF, 0xFF, 0xFF, 'x' };
	static const uint8_t empty[] = { 0, 0, 0, 0 };
	struct sp_msgrd rd;
	const uint8_t *p;
	size_t n = 99;

	(void)state;
	sp_msgrd_init(&rd, body, sizeof(body));
	assert_null(sp_msg_get_bytes(&rd, 3, &n));  /* over max */
	assert_int_equal(n, 0);
	assert_true(rd.error);

	sp_msgrd_init(&rd, body, sizeof(body));
	p = sp_msg_get_bytes(&rd, 4, &n);
	assert_non_null(p);
	assert_int_equal(n, 4);
	assert_memory_equal(p, "abcd", 4);
	assert_null(sp_msg_get_bytes(&rd, 100, &n));  /* 9 > 1 left */
	assert_int_equal(n, 0);
	assert_true(rd.error);

	sp_msgrd_init(&rd, huge, sizeof(huge));
	assert_null(sp_msg_get_bytes(&rd, SIZE_MAX, &n));
	assert_true(rd.error);

	sp_msgrd_init(&rd, empty, sizeof(empty));
	p = sp_msg_get_bytes(&rd, 0, &n);
	assert_false(rd.error);
	assert_int_equal(n, 0);
	assert_true(sp_msgrd_done(&rd));
	(void)p;

	sp_msgrd_init(&rd, body, 2);  /* length itself cut short */
	assert_null(sp_msg_get_bytes(&rd, 100, NULL));
	assert_true(rd.error);
}

static void test_get_str_rules(void **state)
{
	static const uint8_t nul[] = { 0, 0, 0, 3, 'a', 0, 'b' };
	static const uint8_t five[] = { 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o' };
	static const uint8_t cut[] = { 0, 0, 0, 5, 'h', 'e' };
	struct sp_msgrd rd;
	char s[8], s5[5], s6[6];

	(void)state;
	memset(s, 'Z', sizeof(s));
	sp_msgrd_init(&rd, nul, sizeof(nul));
	sp_msg_get_str(&rd, s, sizeof(s));  /* embedded NUL */
	assert_true(rd.error);
	assert_string_equal(s, "");

	sp_msgrd_init(&rd, five, sizeof(five));
	sp_msg_get_str(&rd, s5, sizeof(s5));  /* 5 chars + NUL do not fit 5 */
	assert_true(rd.error);
	assert_string_equal(s5, "");

	sp_msgrd_init(&rd, five, sizeof(five));
	sp_msg_get_str(&rd, s6, sizeof(s6));  /* exactly fits */
	assert_false(rd.error);
	assert_string_equal(s6, "hello");
	assert_true(sp_msgrd_done(&rd));

	sp_msgrd_init(&rd, cut, sizeof(cut));
	sp_msg_get_str(&rd, s, sizeof(s));
	assert_true(rd.error);
	assert_string_equal(s, "");

	sp_msgrd_init(&rd, five, sizeof(five));
	sp_msg_get_str(&rd, s, 0);
	assert_true(rd.error);
	sp_msgrd_init(&rd, five, sizeof(five));
	sp_msg_get_str(&rd, NULL, 10);
	assert_true(rd.error);
}

static void test_done_exactness(void **state)
{
	static const uint8_t body[] = { 0, 1, 2, 3, 4 };
	struct sp_msgrd rd;

	(void)state;
	sp_msgrd_init(&rd, body, sizeof(body));
	assert_false(sp_msgrd_done(&rd));
	sp_msg_get_u32(&rd);
	assert_false(sp_msgrd_done(&rd));  /* one byte left: too long */
	sp_msg_get_u8(&rd);
	assert_true(sp_msgrd_done(&rd));
	sp_msg_get_u8(&rd);  /* too short */
	assert_false(sp_msgrd_done(&rd));
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_new_bounds),
		cmocka_unit_test(test_reader_one_byte_at_a_time),
		cmocka_unit_test(test_reader_several_frames_one_feed),
		cmocka_unit_test(test_reader_max_body_exact),
		cmocka_unit_test(test_reader_oversized_sticky),
		cmocka_unit_test(test_reader_oversized_after_good),
		cmocka_unit_test(test_reader_buffer_full),
		cmocka_unit_test(test_builder_roundtrip),
		cmocka_unit_test(test_builder_empty_body),
		cmocka_unit_test(test_builder_exact_limit),
		cmocka_unit_test(test_builder_overflow_sticky),
		cmocka_unit_test(test_builder_huge),
		cmocka_unit_test(test_builder_reset_wipes),
		cmocka_unit_test(test_builder_growth),
		cmocka_unit_test(test_builder_to_reader),
		cmocka_unit_test(test_get_past_end),
		cmocka_unit_test(test_get_bytes_lengths),
		cmocka_unit_test(test_get_str_rules),
		cmocka_unit_test(test_done_exactness),
	};

	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
