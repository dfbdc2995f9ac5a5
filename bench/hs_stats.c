/* hsbench's statistics: a fixed-size log-linear latency histogram (so
 * recording a sample in the event loop never allocates) with percentiles,
 * and the bounded table of failures by reason. */
#include <string.h>

#include "bench/bench.h"

#define SUB (1u << HS_HIST_SUB_BITS)
#define HIST_MAX_US 0xffffffffULL

static size_t bucket_of(uint64_t us)
{
	unsigned msb, shift;

	if (us < 2 * SUB)
		return (size_t)us;
	msb = 63u - (unsigned)__builtin_clzll(us);
	shift = msb - HS_HIST_SUB_BITS;
	return (size_t)shift * SUB + (size_t)(us >> shift);
}

/* Lowest value and width of bucket i. */
static void bucket_range(size_t i, double *low, double *width)
{
	size_t shift;

	if (i < 2 * SUB) {
		*low = (double)i;
		*width = 1.0;
		return;
	}
	shift = i / SUB - 1;
	*low = (double)((uint64_t)(i - shift * SUB) << shift);
	*width = (double)(1ULL << shift);
}

void hs_hist_init(struct hs_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void hs_hist_record(struct hs_hist *h, uint64_t us)
{
	if (us > HIST_MAX_US)
		us = HIST_MAX_US;
	h->counts[bucket_of(us)]++;
	if (h->n == 0 || us < h->min_us)
		h->min_us = us;
	if (us > h->max_us)
		h->max_us = us;
	h->n++;
	h->sum_us += (double)us;
}

double hs_hist_percentile(const struct hs_hist *h, double pct)
{
	uint64_t rank, seen = 0;
	size_t i;

	if (h->n == 0)
		return 0.0;
	if (pct <= 0.0)
		return (double)h->min_us;
	if (pct >= 100.0)
		return (double)h->max_us;
	/* nearest rank: the smallest sample with at least pct% at or below it */
	rank = (uint64_t)((pct / 100.0) * (double)h->n + 0.999999);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HS_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			double low, width, v;

			bucket_range(i, &low, &width);
			v = width > 1.0 ? low + width / 2.0 : low;
			/* the bucket's midpoint, kept inside what was observed */
			if (v < (double)h->min_us)
				v = (double)h->min_us;
			if (v > (double)h->max_us)
				v = (double)h->max_us;
			return v;
		}
	}
	return (double)h->max_us;
}

double hs_hist_mean(const struct hs_hist *h)
{
	return h->n ? h->sum_us / (double)h->n : 0.0;
}

void hs_fail_count(struct hs_failures *f, const char *reason)
{
	size_t i;

	f->total++;
	for (i = 0; i < f->n; i++) {
		if (strcmp(f->reasons[i].name, reason) == 0) {
			f->reasons[i].count++;
			return;
		}
	}
	if (f->n == BENCH_MAX_REASONS) {
		f->other++;
		return;
	}
	/* truncation of an over-long reason is fine: it is a label */
	snprintf(f->reasons[f->n].name, sizeof(f->reasons[f->n].name), "%s", reason);
	f->reasons[f->n].count = 1;
	f->n++;
}
