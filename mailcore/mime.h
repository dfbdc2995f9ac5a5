/* MIME structure of a stored message (RFC 2045/2046, RFC 5322): the part
 * tree IMAP's BODYSTRUCTURE and BODY[section] need, header field lookup
 * with unfolding, Content-Type parameters and address lists. Pure
 * (mime_parse.c, mime_header.c); bounded depth and part count. */
#ifndef MAILCORE_MIME_H
#define MAILCORE_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIME_MAX_DEPTH 16     /* nested multiparts and message/rfc822 */
#define MIME_MAX_PARTS 512
#define MIME_MAX_PARAMS 16
#define MIME_FIELD_MAX 4096   /* an unfolded header field value we look at */

struct mime_part {
	size_t start;        /* where the part's header begins */
	size_t hdr_len;      /* header incl. the empty line that ends it */
	size_t body_start, body_len;
	uint32_t body_lines;
	int first_child;     /* multipart: first part; message/rfc822: the embedded message */
	int next;            /* next sibling in a multipart, -1 at the end */
	int depth;
	bool multipart;
	bool rfc822;         /* message/rfc822 (first_child is the message) */
	bool digest;         /* multipart/digest: parts default to message/rfc822 */
};

struct mime_message {
	struct mime_part parts[MIME_MAX_PARTS];
	size_t n;
	bool truncated;      /* the depth or part limit was hit: deeper parts are leaves */
};

/* Parses msg; part 0 is the whole message (its header is the message
 * header). Never fails: anything malformed becomes a leaf. */
void mime_parse(const uint8_t *msg, size_t len, struct mime_message *m);

/* Where the header of msg[0..len) ends (after its empty line): true and
 * *end_r; false if no empty line is in the bytes given (*end_r = len), as
 * when only a prefix of the message was read. Pure. */
bool mime_header_end(const uint8_t *msg, size_t len, size_t *end_r);

/* Resolves IMAP part numbers (RFC 3501 6.4.5) "2.1" -> a part index, or -1. */
int mime_find_part(const struct mime_message *m, const uint32_t *nums, size_t n);

/* The first field called name in hdr[0..len): unfolded (CRLF + WSP ->
 * WSP), leading blanks trimmed, NUL-terminated into buf. Returns its
 * length, -1 if absent. Truncates to cap - 1. */
int mime_header_get(const uint8_t *hdr, size_t len, const char *name, char *buf, size_t cap);

struct mime_param {
	char name[64];
	char value[256];
};

struct mime_ctype {
	char type[64], subtype[64];   /* lower-case */
	struct mime_param params[MIME_MAX_PARAMS];
	size_t n_params;
};

/* "text/plain; charset=us-ascii" -> ctype. Returns 0, -1 if malformed
 * (ct is then text/plain charset=us-ascii, RFC 2045 5.2). */
int mime_parse_ctype(const char *value, struct mime_ctype *ct);
/* "attachment; filename=x" -> disposition (lower-case) and params. */
int mime_parse_disposition(const char *value, char *disp, size_t cap, struct mime_param *params,
			   size_t *n_params);
const char *mime_param_get(const struct mime_param *params, size_t n, const char *name);

/* RFC 5322 address list, for ENVELOPE. Groups are returned as a start
 * (mailbox = group name, host NULL) and an end (both NULL) entry. */
struct mime_addr {
	char name[256];     /* display name, "" if none */
	char mailbox[256];
	char host[256];
	bool group_start, group_end;
};
#define MIME_MAX_ADDRS 64
/* Returns the number of entries (at most max). */
size_t mime_parse_addresses(const char *value, struct mime_addr *out, size_t max);

#endif
