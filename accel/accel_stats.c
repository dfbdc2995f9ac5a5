/* The engine's counters rendered for keyd's stats socket and keydctl: one
 * text line per backend, key and mechanism (kstat-like "name=value"), or one
 * JSON document. Output is bounded by the caller's max. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accel/accel_int.h"
#include "common/xalloc.h"

struct out {
	char *buf;
	size_t len, cap, max;
	bool cut;
};

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->cut)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || o->len + (size_t)n + 1 > o->max) {
		o->cut = true;
		return;
	}
	if (o->len + (size_t)n + 1 > o->cap) {
		size_t cap = o->cap == 0 ? 4096 : o->cap;

		while (cap < o->len + (size_t)n + 1)
			cap *= 2;
		o->buf = sp_xrealloc(o->buf, cap, 1);
		o->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

/* JSON string body (RFC 8259 7); also safe inside the text format's quotes. */
static void out_str(struct out *o, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			out_printf(o, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			out_printf(o, "\\u%04x", c);
		else
			out_printf(o, "%c", c);
	}
}

static void counters(struct out *o, const struct accel_counters *c, bool json)
{
	static const char *const names[] = { "submitted", "completed", "failed", "fellback",
					     "spilled", "timeouts" };
	const unsigned long long v[] = { c->submitted, c->completed, c->failed, c->fellback,
					 c->spilled, c->timeouts };
	int last = ACCEL_LAT_BUCKETS - 1;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		out_printf(o, json ? ",\"%s\":%llu" : " %s=%llu", names[i], v[i]);
	while (last > 0 && c->lat[last] == 0)
		last--;
	/* log2 buckets: entry b counts latencies below 2^b microseconds */
	out_printf(o, json ? ",\"latency_us_log2\":[" : " latency_us_log2=");
	for (int b = 0; b <= last; b++)
		out_printf(o, "%s%llu", b > 0 ? "," : "", c->lat[b]);
	if (json)
		out_printf(o, "]");
}

static void placements(struct out *o, const struct accel_key *k, bool json)
{
	for (size_t i = 0; i < k->nplacements; i++) {
		out_printf(o, json ? "%s\"" : "%s", i > 0 ? "," : "");
		out_str(o, accel_backend_label(k->placements[i].slot->be));
		if (json)
			out_printf(o, "\"");
	}
}

char *accel_engine_stats(const struct accel_engine *eng, bool json, size_t max, size_t *len_r)
{
	struct out o = { NULL, 0, 0, max > 64 ? max - 64 : max, false };
	bool first = true;

	out_printf(&o, json ? "{\"inflight\":%zu,\"keys_loaded\":%zu,\"backends\":["
			    : "engine inflight=%zu keys=%zu\n", eng->inflight, eng->nkeys);
	for (size_t i = 0; i < eng->nslots; i++) {
		const struct be_slot *s = &eng->slots[i];

		out_printf(&o, json ? "%s{\"name\":\"" : "backend \"", i > 0 ? "," : "");
		out_str(&o, accel_backend_label(s->be));
		out_printf(&o, json ? "\",\"state\":\"%s\",\"depth\":%zu,\"probes\":%llu,"
				      "\"probes_failed\":%llu,\"downs\":%llu"
				    : "\" state=%s depth=%zu probes=%llu probes_failed=%llu downs=%llu",
			   s->down ? "down" : "up", s->depth, s->probes, s->probes_failed, s->downs);
		counters(&o, &s->c, json);
		out_printf(&o, json ? "}" : "\n");
	}
	out_printf(&o, json ? "],\"keys\":[" : "");
	for (size_t b = 0; b < ACCEL_KEY_BUCKETS; b++) {
		for (const struct accel_key *k = eng->buckets[b]; k != NULL; k = k->next) {
			out_printf(&o, json ? "%s{\"nickname\":\"" : "key \"", first ? "" : ",");
			first = false;
			out_str(&o, k->nickname);
			out_printf(&o, json ? "\",\"type\":\"%s\",\"bits\":%u,\"inflight\":%zu,"
					      "\"placements\":["
					    : "\" type=%s bits=%u inflight=%zu placements=",
				   k->type == ACCEL_KEY_RSA ? "RSA" : "EC", k->bits, k->inflight);
			placements(&o, k, json);
			out_printf(&o, json ? "]" : "");
			counters(&o, &k->c, json);
			out_printf(&o, json ? "}" : "\n");
		}
	}
	out_printf(&o, json ? "],\"mechanisms\":[" : "");
	for (int m = 1; m < ACCEL_NMECH; m++) {
		if (json)
			out_printf(&o, "%s{\"name\":\"%s\"", m > 1 ? "," : "", accel_mech_name(m));
		else
			out_printf(&o, "mechanism %s", accel_mech_name(m));
		counters(&o, &eng->mech[m], json);
		out_printf(&o, json ? "}" : "\n");
	}
	out_printf(&o, json ? "]}\n" : "");
	if (o.cut) {
		/* room was kept for this: the reader learns it is not the whole */
		o.max += 64;
		o.cut = false;
		out_printf(&o, json ? "\n{\"truncated\":true}\n" : "truncated=yes\n");
	}
	if (o.buf == NULL)
		o.buf = sp_xstrdup("");
	*len_r = o.len;
	return o.buf;
}
