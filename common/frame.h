/* Framing and typed marshalling for Sealpost's internal unix-socket protocols
 * (tlsd<->keyd, STARTTLS handoff, stats). A frame is a 4-byte big-endian
 * length followed by that many bytes of body; the reader enforces a maximum
 * body size. Bodies are built and read field by field with bounds checks
 * (no raw structs on the wire). */
#ifndef SP_FRAME_H
#define SP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_FRAME_HDR 4

/* ---- reader: accumulates bytes from a stream, yields whole frames ---- */
struct sp_frame_reader;

/* max_body: largest body accepted (1..16 MiB; otherwise NULL, errno EINVAL).
 * Caller frees with _free. */
struct sp_frame_reader *sp_frame_reader_new(size_t max_body);
void sp_frame_reader_free(struct sp_frame_reader **r);

/* Appends bytes read from the stream. Returns 0, or -1 if the reader is in
 * error (an oversized length was seen: the channel must be closed). Never
 * buffers more than SP_FRAME_HDR + max_body bytes beyond what was consumed;
 * returns -1 with *error_r = "buffer full" if fed more before frames are taken. */
int sp_frame_reader_feed(struct sp_frame_reader *r, const void *data, size_t len,
			 const char **error_r);
/* 1 = a frame is ready (*body_r, *len_r valid until the next call on r);
 * 0 = need more bytes; -1 = error (*error_r static string, e.g. "frame too large"). */
int sp_frame_reader_next(struct sp_frame_reader *r, const uint8_t **body_r, size_t *len_r,
			 const char **error_r);
/* Bytes held but not yet returned as frames. */
size_t sp_frame_reader_pending(const struct sp_frame_reader *r);

/* ---- builder: growable, bounded body with the 4-byte header in front ---- */
struct sp_msgbuf {
	uint8_t *data;  /* header + body */
	size_t len;     /* header + body so far */
	size_t cap;
	size_t max_body;
	bool overflow;  /* a put exceeded max_body: the message must not be sent */
};

void sp_msgbuf_init(struct sp_msgbuf *b, size_t max_body);
void sp_msgbuf_reset(struct sp_msgbuf *b);       /* empty body, keeps memory */
void sp_msgbuf_release(struct sp_msgbuf *b);     /* frees (wipes) the memory */
void sp_msg_put_u8(struct sp_msgbuf *b, uint8_t v);
void sp_msg_put_u16(struct sp_msgbuf *b, uint16_t v);
void sp_msg_put_u32(struct sp_msgbuf *b, uint32_t v);
void sp_msg_put_u64(struct sp_msgbuf *b, uint64_t v);
/* u32 length + bytes */
void sp_msg_put_bytes(struct sp_msgbuf *b, const void *p, size_t n);
/* u32 length + bytes, no NUL on the wire; s NULL = empty */
void sp_msg_put_str(struct sp_msgbuf *b, const char *s);
/* Writes the header length; returns 0, or -1 if overflow. After this,
 * b->data/b->len is the full frame to send. */
int sp_msgbuf_finish(struct sp_msgbuf *b);

/* ---- parser over one received body ---- */
struct sp_msgrd {
	const uint8_t *p;
	size_t left;
	bool error;  /* sticky: a get ran past the end or a length was bad */
};

void sp_msgrd_init(struct sp_msgrd *r, const uint8_t *body, size_t len);
uint8_t sp_msg_get_u8(struct sp_msgrd *r);
uint16_t sp_msg_get_u16(struct sp_msgrd *r);
uint32_t sp_msg_get_u32(struct sp_msgrd *r);
uint64_t sp_msg_get_u64(struct sp_msgrd *r);
/* Points into the body (no copy). Length over max -> error. */
const uint8_t *sp_msg_get_bytes(struct sp_msgrd *r, size_t max, size_t *len_r);
/* Copies into buf (cap includes the NUL); embedded NUL or too long -> error. */
void sp_msg_get_str(struct sp_msgrd *r, char *buf, size_t cap);
/* true when no error occurred and every byte was consumed (exact size). */
bool sp_msgrd_done(const struct sp_msgrd *r);

#endif
