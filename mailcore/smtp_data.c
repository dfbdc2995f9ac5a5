/* The DATA text decoder: a byte-at-a-time state machine that removes
 * dot-stuffing (RFC 5321 4.5.2), finds the end-of-data marker CRLF "." CRLF
 * (RFC 5321 4.1.1.4) and flags bare CR and bare LF. Pure; the policy that
 * follows from the flags (refuse the message) is the session's, documented
 * in mailcore.h. Only CRLF ends a line (RFC 5321 2.3.8), which is what keeps
 * "<LF>.<LF>"-style smuggling from ending the data early. */
#include "mailcore/mailcore.h"

enum {
	DATA_BOL,     /* at the start of a line */
	DATA_DOT,     /* a '.' at the start of a line, held */
	DATA_DOT_CR,  /* ".\r" at the start of a line, held */
	DATA_MID,     /* inside a line */
	DATA_CR,      /* a '\r' inside a line, held */
};

void smtp_data_init(struct smtp_data_decoder *d)
{
	d->state = DATA_BOL;
	d->bare_cr = false;
	d->bare_lf = false;
	d->done = false;
	d->octets = 0;
}

/* A byte inside a line. */
static void data_mid(struct smtp_data_decoder *d, uint8_t c, uint8_t *out, size_t *o)
{
	if (c == '\r') {
		d->state = DATA_CR;
		return;
	}
	if (c == '\n')
		d->bare_lf = true; /* not a line end: stays inside the line */
	out[(*o)++] = c;
	d->state = DATA_MID;
}

size_t smtp_data_decode(struct smtp_data_decoder *d, const uint8_t *in, size_t len,
			uint8_t *out, size_t out_cap, size_t *out_len)
{
	size_t i, o = 0;

	/* Each input byte yields at most one output byte plus the one held
	 * from before, so len + 2 always suffices. */
	if (out_cap < len + 2) {
		*out_len = 0;
		return 0;
	}
	for (i = 0; i < len && !d->done; i++) {
		uint8_t c = in[i];

		switch (d->state) {
		case DATA_BOL:
			if (c == '.')
				d->state = DATA_DOT;
			else
				data_mid(d, c, out, &o);
			break;
		case DATA_DOT:
			if (c == '\r')
				d->state = DATA_DOT_CR;
			else /* RFC 5321 4.5.2: drop the first '.' of a stuffed line */
				data_mid(d, c, out, &o);
			break;
		case DATA_DOT_CR:
			if (c == '\n') {
				d->done = true; /* CRLF . CRLF */
				break;
			}
			d->bare_cr = true;
			out[o++] = '\r';
			data_mid(d, c, out, &o);
			break;
		case DATA_CR:
			if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				d->state = DATA_BOL;
				break;
			}
			d->bare_cr = true;
			out[o++] = '\r';
			data_mid(d, c, out, &o);
			break;
		default: /* DATA_MID */
			data_mid(d, c, out, &o);
			break;
		}
	}
	d->octets += o;
	*out_len = o;
	return i;
}
