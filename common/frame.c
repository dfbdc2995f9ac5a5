/* Length-prefixed frames and field-by-field marshalling for Sealpost's
 * internal unix-socket protocols (frame.h): a bounded stream reader, a bounded
 * message builder and a sticky-error body parser. Key-operation messages carry
 * digests and signatures, so every buffer here is wiped before it is freed. */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/frame.h"
#include "common/xalloc.h"

/* Largest max_body a reader accepts (frame.h: 1..16 MiB). */
#define SP_FRAME_READER_MAX (16u * 1024 * 1024)
/* First allocation; buffers then double up to their bound. */
#define SP_FRAME_INITIAL 256

static uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

/* Moves a secret-bearing buffer to a bigger allocation. Not realloc(): that
 * could leave an unwiped copy behind in the freed block. */
static uint8_t *grow_wiped(uint8_t *old, size_t used, size_t old_cap, size_t new_cap)
{
	uint8_t *p = sp_xmalloc(new_cap);

	if (used > 0)
		memcpy(p, old, used);
	sp_free_secret(old, old_cap);
	return p;
}

/* Next capacity: double from the current one, at least need, at most limit
 * (need <= limit is the caller's promise). */
static size_t next_cap(size_t cap, size_t need, size_t limit)
{
	size_t n = cap > 0 ? cap : SP_FRAME_INITIAL;

	while (n < need)
		n = n > limit / 2 ? limit : n * 2;
	return n < limit ? n : limit;
}

/* ---------------- reader ---------------- */

struct sp_frame_reader {
	uint8_t *buf;
	size_t alloc;
	size_t max_body;
	size_t start;  /* first byte not yet returned in a frame */
	size_t end;    /* end of the bytes fed */
	bool error;    /* sticky: an oversized length was seen */
};

struct sp_frame_reader *sp_frame_reader_new(size_t max_body)
{
	struct sp_frame_reader *r;

	if (max_body < 1 || max_body > SP_FRAME_READER_MAX) {
		errno = EINVAL;
		return NULL;
	}
	r = sp_xcalloc(1, sizeof(*r));
	r->max_body = max_body;
	return r;
}

void sp_frame_reader_free(struct sp_frame_reader **rp)
{
	if (rp == NULL || *rp == NULL)
		return;
	sp_free_secret((*rp)->buf, (*rp)->alloc);
	sp_free_secret(*rp, sizeof(**rp));
	*rp = NULL;
}

/* The length word of the frame at start, if all of it is here, is checked
 * as early as possible: an oversized one means the peer is broken or
 * hostile, and the channel must be closed, not drained. */
static int check_head(struct sp_frame_reader *r, const char **error_r)
{
	if (r->error || (r->end - r->start >= SP_FRAME_HDR &&
			 get_be32(r->buf + r->start) > r->max_body)) {
		r->error = true;
		*error_r = "frame too large";
		return -1;
	}
	return 0;
}

int sp_frame_reader_feed(struct sp_frame_reader *r, const void *data, size_t len,
			 const char **error_r)
{
	const char *dummy;
	size_t pending, limit = SP_FRAME_HDR + r->max_body;

	if (error_r == NULL)
		error_r = &dummy;
	if (check_head(r, error_r) != 0)
		return -1;
	if (len == 0)
		return 0;

	/* Frames already returned are dropped now (their pointers died with
	 * this call), so the bound counts only what is still owed. */
	pending = r->end - r->start;
	if (len > limit - pending) {
		*error_r = "buffer full";
		return -1;
	}
	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, pending);
		r->start = 0;
		r->end = pending;
	}
	if (pending + len > r->alloc) {
		size_t cap = next_cap(r->alloc, pending + len, limit);

		r->buf = grow_wiped(r->buf, pending, r->alloc, cap);
		r->alloc = cap;
	}
	memcpy(r->buf + r->end, data, len);
	r->end += len;
	return check_head(r, error_r);
}

int sp_frame_reader_next(struct sp_frame_reader *r, const uint8_t **body_r, size_t *len_r,
			 const char **error_r)
{
	const char *dummy;
	size_t body_len;

	if (error_r == NULL)
		error_r = &dummy;
	*body_r = NULL;
	*len_r = 0;
	if (check_head(r, error_r) != 0)
		return -1;
	if (r->end - r->start < SP_FRAME_HDR)
		return 0;
	body_len = get_be32(r->buf + r->start);
	if (r->end - r->start - SP_FRAME_HDR < body_len)
		return 0;
	*body_r = r->buf + r->start + SP_FRAME_HDR;
	*len_r = body_len;
	r->start += SP_FRAME_HDR + body_len;
	return 1;
}

size_t sp_frame_reader_pending(const struct sp_frame_reader *r)
{
	return r->end - r->start;
}

/* ---------------- builder ---------------- */

void sp_msgbuf_init(struct sp_msgbuf *b, size_t max_body)
{
	b->data = NULL;  /* allocated on first put or at finish */
	b->len = SP_FRAME_HDR;
	b->cap = 0;
	/* the body length travels in 32 bits, and max_body + header must not wrap */
	if (max_body > UINT32_MAX)
		max_body = UINT32_MAX;
	if (max_body > SIZE_MAX - SP_FRAME_HDR)
		max_body = SIZE_MAX - SP_FRAME_HDR;
	b->max_body = max_body;
	b->overflow = false;
}

void sp_msgbuf_reset(struct sp_msgbuf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->len);
	b->len = SP_FRAME_HDR;
	b->overflow = false;
}

void sp_msgbuf_release(struct sp_msgbuf *b)
{
	sp_free_secret(b->data, b->cap);
	b->data = NULL;
	b->cap = 0;
	b->len = SP_FRAME_HDR;
	b->overflow = false;
}

/* Room for n more body bytes, or NULL (and the sticky overflow flag) if the
 * body would pass max_body. Capacity never exceeds max_body + header. */
static uint8_t *reserve(struct sp_msgbuf *b, size_t n)
{
	size_t body = b->len - SP_FRAME_HDR;
	uint8_t *p;

	if (b->overflow || n > b->max_body - body) {
		b->overflow = true;
		return NULL;
	}
	if (b->data == NULL || b->len + n > b->cap) {
		size_t cap = next_cap(b->cap, b->len + n, b->max_body + SP_FRAME_HDR);

		if (b->data == NULL) {
			b->data = sp_xmalloc(cap);
			memset(b->data, 0, SP_FRAME_HDR);
		} else {
			b->data = grow_wiped(b->data, b->len, b->cap, cap);
		}
		b->cap = cap;
	}
	p = b->data + b->len;
	b->len += n;
	return p;
}

static void put_int(struct sp_msgbuf *b, uint64_t v, size_t n)
{
	uint8_t *p = reserve(b, n);

	if (p != NULL)
		put_be(p, v, n);
}

void sp_msg_put_u8(struct sp_msgbuf *b, uint8_t v)
{
	put_int(b, v, 1);
}

void sp_msg_put_u16(struct sp_msgbuf *b, uint16_t v)
{
	put_int(b, v, 2);
}

void sp_msg_put_u32(struct sp_msgbuf *b, uint32_t v)
{
	put_int(b, v, 4);
}

void sp_msg_put_u64(struct sp_msgbuf *b, uint64_t v)
{
	put_int(b, v, 8);
}

void sp_msg_put_bytes(struct sp_msgbuf *b, const void *p, size_t n)
{
	uint8_t *w;

	/* one reservation for length and bytes: a field is all there or not */
	if (n > UINT32_MAX || n > SIZE_MAX - 4 || (p == NULL && n > 0)) {
		b->overflow = true;
		return;
	}
	w = reserve(b, 4 + n);
	if (w == NULL)
		return;
	put_be(w, n, 4);
	if (n > 0)
		memcpy(w + 4, p, n);
}

void sp_msg_put_str(struct sp_msgbuf *b, const char *s)
{
	if (s == NULL)
		s = "";
	sp_msg_put_bytes(b, s, strlen(s));
}

int sp_msgbuf_finish(struct sp_msgbuf *b)
{
	if (b->overflow)
		return -1;
	if (b->data == NULL && reserve(b, 0) == NULL)
		return -1;
	put_be(b->data, b->len - SP_FRAME_HDR, SP_FRAME_HDR);
	return 0;
}

/* ---------------- parser ---------------- */

void sp_msgrd_init(struct sp_msgrd *r, const uint8_t *body, size_t len)
{
	r->p = body;
	r->left = body != NULL ? len : 0;
	r->error = body == NULL && len > 0;
}

/* The next n bytes, or NULL with the sticky error set. */
static const uint8_t *take(struct sp_msgrd *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->error || n > r->left) {
		r->error = true;
		return NULL;
	}
	if (n > 0) {
		r->p += n;
		r->left -= n;
	}
	return p;
}

static uint64_t get_int(struct sp_msgrd *r, size_t n)
{
	const uint8_t *p = take(r, n);
	uint64_t v = 0;

	if (p == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

uint8_t sp_msg_get_u8(struct sp_msgrd *r)
{
	return (uint8_t)get_int(r, 1);
}

uint16_t sp_msg_get_u16(struct sp_msgrd *r)
{
	return (uint16_t)get_int(r, 2);
}

uint32_t sp_msg_get_u32(struct sp_msgrd *r)
{
	return (uint32_t)get_int(r, 4);
}

uint64_t sp_msg_get_u64(struct sp_msgrd *r)
{
	return get_int(r, 8);
}

const uint8_t *sp_msg_get_bytes(struct sp_msgrd *r, size_t max, size_t *len_r)
{
	uint32_t n = sp_msg_get_u32(r);
	const uint8_t *p = NULL;

	if (!r->error && n > max)
		r->error = true;
	if (!r->error)
		p = take(r, n);
	if (len_r != NULL)
		*len_r = r->error ? 0 : n;
	return r->error ? NULL : p;
}

void sp_msg_get_str(struct sp_msgrd *r, char *buf, size_t cap)
{
	uint32_t n = sp_msg_get_u32(r);
	const uint8_t *p = NULL;

	if (buf == NULL || cap == 0) {
		r->error = true;
		return;
	}
	buf[0] = '\0';
	if (!r->error && n >= cap)
		r->error = true;  /* cap includes the NUL */
	if (!r->error)
		p = take(r, n);
	if (r->error)
		return;
	/* a NUL inside would make the C string say less than the peer sent */
	if (n > 0 && memchr(p, 0, n) != NULL) {
		r->error = true;
		return;
	}
	if (n > 0)
		memcpy(buf, p, n);
	buf[n] = '\0';
}

bool sp_msgrd_done(const struct sp_msgrd *r)
{
	return !r->error && r->left == 0;
}
