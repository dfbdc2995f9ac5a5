/* hsbench's STARTTLS preambles: the plaintext exchange before the
 * ClientHello for SMTP (RFC 3207), IMAP (RFC 3501 6.2.1) and POP3
 * (RFC 2595 4). Pure: fed one reply line at a time (CRLF stripped), it
 * says what to send next; hs_conn.c does the reading and writing. */
#include <string.h>
#include <strings.h>

#include "bench/bench.h"

#define EHLO_CMD "EHLO hsbench.invalid\r\n"
#define SMTP_STARTTLS_CMD "STARTTLS\r\n"
#define IMAP_CAPA_CMD "a1 CAPABILITY\r\n"
#define IMAP_STARTTLS_CMD "a2 STARTTLS\r\n"
#define POP_CAPA_CMD "CAPA\r\n"
#define POP_STLS_CMD "STLS\r\n"

void hs_starttls_init(struct hs_starttls *st, enum bench_starttls proto)
{
	st->proto = proto;
	st->stage = 0;
}

const char *hs_starttls_name(enum bench_starttls proto)
{
	switch (proto) {
	case BENCH_ST_SMTP: return "smtp";
	case BENCH_ST_IMAP: return "imap";
	case BENCH_ST_POP: return "pop";
	case BENCH_ST_NONE: break;
	}
	return "none";
}

/* RFC 5321 4.2: "ddd" then SP (last line) or "-" (more lines follow), or
 * just "ddd". Returns 1 for the last line, 0 for a continuation, -1 when
 * the code is not the one expected. */
static int smtp_reply(const char *line, size_t len, const char *code)
{
	if (len < 3 || memcmp(line, code, 3) != 0)
		return -1;
	if (len == 3 || line[3] == ' ')
		return 1;
	if (line[3] == '-')
		return 0;
	return -1;
}

static enum hs_st_action smtp_line(struct hs_starttls *st, const char *line, size_t len,
				   const char **cmd)
{
	int r;

	switch (st->stage) {
	case 0: /* greeting: 220 */
		r = smtp_reply(line, len, "220");
		if (r < 0)
			return HS_ST_REFUSED;
		if (r == 0)
			return HS_ST_MORE;
		st->stage = 1;
		*cmd = EHLO_CMD;
		return HS_ST_SEND;
	case 1: /* EHLO reply: 250 (whether STARTTLS is listed, the server says next) */
		r = smtp_reply(line, len, "250");
		if (r < 0)
			return HS_ST_REFUSED;
		if (r == 0)
			return HS_ST_MORE;
		st->stage = 2;
		*cmd = SMTP_STARTTLS_CMD;
		return HS_ST_SEND;
	case 2: /* RFC 3207 4: 220 Ready to start TLS */
		r = smtp_reply(line, len, "220");
		if (r < 0)
			return HS_ST_REFUSED;
		return r == 0 ? HS_ST_MORE : HS_ST_TLS;
	}
	return HS_ST_REFUSED;
}

/* "TAG OK ..." (case-insensitive status, RFC 3501 7.1) */
static int imap_tagged(const char *line, size_t len, const char *tag, const char *status)
{
	size_t tl = strlen(tag), sl = strlen(status);

	if (len < tl + 1 + sl || memcmp(line, tag, tl) != 0 || line[tl] != ' ')
		return 0;
	if (strncasecmp(line + tl + 1, status, sl) != 0)
		return 0;
	return len == tl + 1 + sl || line[tl + 1 + sl] == ' ';
}

static enum hs_st_action imap_line(struct hs_starttls *st, const char *line, size_t len,
				   const char **cmd)
{
	switch (st->stage) {
	case 0: /* greeting: "* OK" (PREAUTH or BYE: no STARTTLS possible) */
		if (!imap_tagged(line, len, "*", "OK"))
			return HS_ST_REFUSED;
		st->stage = 1;
		*cmd = IMAP_CAPA_CMD;
		return HS_ST_SEND;
	case 1:
		if (len >= 2 && line[0] == '*' && line[1] == ' ')
			return HS_ST_MORE;
		if (!imap_tagged(line, len, "a1", "OK"))
			return HS_ST_REFUSED;
		st->stage = 2;
		*cmd = IMAP_STARTTLS_CMD;
		return HS_ST_SEND;
	case 2:
		if (len >= 2 && line[0] == '*' && line[1] == ' ')
			return HS_ST_MORE;
		return imap_tagged(line, len, "a2", "OK") ? HS_ST_TLS : HS_ST_REFUSED;
	}
	return HS_ST_REFUSED;
}

static int pop_status(const char *line, size_t len, const char *status)
{
	size_t sl = strlen(status);

	if (len < sl || strncasecmp(line, status, sl) != 0)
		return 0;
	return len == sl || line[sl] == ' ';
}

static enum hs_st_action pop_line(struct hs_starttls *st, const char *line, size_t len,
				  const char **cmd)
{
	switch (st->stage) {
	case 0: /* greeting */
		if (!pop_status(line, len, "+OK"))
			return HS_ST_REFUSED;
		st->stage = 1;
		*cmd = POP_CAPA_CMD;
		return HS_ST_SEND;
	case 1: /* CAPA status (RFC 2449 5): -ERR means no CAPA; try STLS anyway */
		if (pop_status(line, len, "+OK")) {
			st->stage = 2;
			return HS_ST_MORE;
		}
		if (!pop_status(line, len, "-ERR"))
			return HS_ST_REFUSED;
		st->stage = 3;
		*cmd = POP_STLS_CMD;
		return HS_ST_SEND;
	case 2: /* capability lines until "." */
		if (len == 1 && line[0] == '.') {
			st->stage = 3;
			*cmd = POP_STLS_CMD;
			return HS_ST_SEND;
		}
		return HS_ST_MORE;
	case 3: /* RFC 2595 4: +OK, then the TLS negotiation */
		return pop_status(line, len, "+OK") ? HS_ST_TLS : HS_ST_REFUSED;
	}
	return HS_ST_REFUSED;
}

enum hs_st_action hs_starttls_line(struct hs_starttls *st, const char *line, size_t len,
				   const char **cmd)
{
	*cmd = NULL;
	switch (st->proto) {
	case BENCH_ST_SMTP: return smtp_line(st, line, len, cmd);
	case BENCH_ST_IMAP: return imap_line(st, line, len, cmd);
	case BENCH_ST_POP: return pop_line(st, line, len, cmd);
	case BENCH_ST_NONE: break;
	}
	return HS_ST_TLS;
}
