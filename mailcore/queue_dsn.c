/* Delivery status notifications for the queue: an RFC 3464
 * message/delivery-status inside an RFC 6522 multipart/report, with the
 * original header block as text/rfc822-headers. Pure: the queue manager
 * hands the facts in, gets the message bytes back. */
#include "mailcore/queue.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

struct obuf {
	char *data;
	size_t len, cap;
};

static void ob_add(struct obuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 4096 : b->cap;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = sp_xrealloc(b->data, cap, 1);
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void ob_printf(struct obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ob_printf(struct obuf *b, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	ob_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* One header-safe token: printable ASCII, no CR/LF (so nothing from a
 * remote server's reply can start a header or a MIME part). */
static void clean(char *dst, size_t cap, const char *s)
{
	size_t o = 0;

	for (; s != NULL && *s != '\0' && o + 1 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		dst[o++] = (char)(c >= 32 && c < 127 ? c : ' ');
	}
	dst[o] = '\0';
}

/* RFC 3464 2.3.4 / RFC 3463: class.subject.detail; anything else is 5.0.0 */
static const char *status_or_default(const char *s)
{
	int a, b, c, n = 0;

	if (s != NULL && sscanf(s, "%1d.%3d.%3d%n", &a, &b, &c, &n) == 3 && s[n] == '\0' &&
	    (a == 4 || a == 5))
		return s;
	return "5.0.0";
}

static void rfc5322_date(time_t t, char *buf, size_t cap)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, cap, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

char *queue_dsn_build(const struct queue_dsn *dsn, size_t *len_r)
{
	struct obuf b = {0};
	char host[256], sender[300], id[128], boundary[400], now[64], arrival[64];

	clean(host, sizeof(host), dsn->reporting_mta);
	clean(sender, sizeof(sender), dsn->sender);
	clean(id, sizeof(id), dsn->envelope_id);
	for (char *p = id; *p != '\0'; p++)
		if (*p == ' ' || *p == '"' || *p == '<' || *p == '>' || *p == '@')
			*p = '_';
	if (dsn->boundary != NULL)
		clean(boundary, sizeof(boundary), dsn->boundary);
	else
		snprintf(boundary, sizeof(boundary), "%.60s/%s", id, host);
	rfc5322_date(dsn->now, now, sizeof(now));
	rfc5322_date(dsn->arrival, arrival, sizeof(arrival));

	ob_printf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
	ob_printf(&b, "To: <%s>\r\n", sender);
	ob_printf(&b, "Subject: Undelivered Mail Returned to Sender\r\n");
	ob_printf(&b, "Date: %s\r\n", now);
	ob_printf(&b, "Message-ID: <%.60s.dsn@%s>\r\n", id, host);
	/* RFC 3834 5: automatic responders must not answer this */
	ob_printf(&b, "Auto-Submitted: auto-replied\r\n");
	ob_printf(&b, "MIME-Version: 1.0\r\n");
	ob_printf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		      "\tboundary=\"%s\"\r\n\r\n", boundary);
	ob_printf(&b, "This is a MIME-encapsulated message.\r\n\r\n");

	/* RFC 6522 3: the human-readable part first */
	ob_printf(&b, "--%s\r\nContent-Description: Notification\r\n"
		      "Content-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	ob_printf(&b, "This is the mail system at host %s.\r\n\r\n"
		      "I'm sorry to have to inform you that your message could not\r\n"
		      "be delivered to one or more recipients.\r\n\r\n", host);
	for (size_t i = 0; i < dsn->n_rcpts; i++) {
		char addr[300], diag[600];

		clean(addr, sizeof(addr), dsn->rcpts[i].addr);
		clean(diag, sizeof(diag), dsn->rcpts[i].diagnostic);
		ob_printf(&b, "<%s>: %s\r\n", addr, diag[0] != '\0' ? diag : "delivery failed");
	}
	ob_printf(&b, "\r\n");

	/* RFC 3464 2.2 per-message fields, blank line, 2.3 per-recipient groups */
	ob_printf(&b, "--%s\r\nContent-Description: Delivery report\r\n"
		      "Content-Type: message/delivery-status\r\n\r\n", boundary);
	ob_printf(&b, "Reporting-MTA: dns; %s\r\n", host);
	ob_printf(&b, "X-Sealpost-Queue-ID: %s\r\n", id);
	ob_printf(&b, "Arrival-Date: %s\r\n", arrival);
	for (size_t i = 0; i < dsn->n_rcpts; i++) {
		const struct queue_dsn_rcpt *r = &dsn->rcpts[i];
		char addr[300], diag[600], mta[256];

		clean(addr, sizeof(addr), r->addr);
		clean(diag, sizeof(diag), r->diagnostic);
		clean(mta, sizeof(mta), r->remote_mta);
		ob_printf(&b, "\r\nFinal-Recipient: rfc822; %s\r\n", addr);
		ob_printf(&b, "Original-Recipient: rfc822; %s\r\n", addr);
		ob_printf(&b, "Action: failed\r\n");
		ob_printf(&b, "Status: %s\r\n", status_or_default(r->status));
		if (mta[0] != '\0')
			ob_printf(&b, "Remote-MTA: dns; %s\r\n", mta);
		if (diag[0] != '\0')
			ob_printf(&b, "Diagnostic-Code: smtp; %s\r\n", diag);
		ob_printf(&b, "Last-Attempt-Date: %s\r\n", now);
	}
	ob_printf(&b, "\r\n");

	/* RFC 6522 / RFC 3462: the returned headers (not the body) */
	ob_printf(&b, "--%s\r\nContent-Description: Undelivered Message Headers\r\n"
		      "Content-Type: text/rfc822-headers\r\n\r\n", boundary);
	if (dsn->orig_headers != NULL && dsn->orig_headers_len > 0) {
		/* lines of the original end in CRLF (the SMTP side refuses bare LF);
		 * a line that would look like our boundary is defused */
		const char *p = dsn->orig_headers, *end = p + dsn->orig_headers_len;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);

			if (n >= 2 && p[0] == '-' && p[1] == '-')
				ob_add(&b, " ", 1);
			ob_add(&b, p, n);
			p += n;
		}
		if (b.data[b.len - 1] != '\n')
			ob_add(&b, "\r\n", 2);
	}
	ob_printf(&b, "\r\n--%s--\r\n", boundary);
	*len_r = b.len;
	return b.data;
}
