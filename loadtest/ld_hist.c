#include "ld_hist.h"

#include <string.h>

void ld_hist_init(struct ld_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned ld_hist_index(uint64_t v)
{
	unsigned e;

	if (v < LD_HIST_LINEAR)
		return (unsigned)v;
	if (v >= (1ULL << LD_HIST_MAX_EXP))
		return LD_HIST_BUCKETS - 1;
	e = 63 - (unsigned)__builtin_clzll(v);            /* 7 .. MAX_EXP-1 */
	/* the six bits below the leading one pick the sub-bucket */
	return LD_HIST_LINEAR + (e - 7) * LD_HIST_SUB +
	       (unsigned)((v >> (e - 6)) & (LD_HIST_SUB - 1));
}

uint64_t ld_hist_bucket_lo(unsigned idx)
{
	unsigned e, sub;

	if (idx < LD_HIST_LINEAR)
		return idx;
	e = (idx - LD_HIST_LINEAR) / LD_HIST_SUB + 7;
	sub = (idx - LD_HIST_LINEAR) % LD_HIST_SUB;
	return (1ULL << e) | ((uint64_t)sub << (e - 6));
}

uint64_t ld_hist_bucket_hi(unsigned idx)
{
	unsigned e;

	if (idx < LD_HIST_LINEAR)
		return idx;
	if (idx >= LD_HIST_BUCKETS - 1)
		return UINT64_MAX;
	e = (idx - LD_HIST_LINEAR) / LD_HIST_SUB + 7;
	return ld_hist_bucket_lo(idx) + (1ULL << (e - 6)) - 1;
}

void ld_hist_add(struct ld_hist *h, uint64_t v)
{
	h->b[ld_hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void ld_hist_merge(struct ld_hist *dst, const struct ld_hist *src)
{
	if (!src->count)
		return;
	for (unsigned i = 0; i < LD_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

void ld_hist_diff(struct ld_hist *dst, const struct ld_hist *a, const struct ld_hist *b)
{
	ld_hist_init(dst);
	for (unsigned i = 0; i < LD_HIST_BUCKETS; i++) {
		/* a torn read of a live histogram may lag b by a count: clamp */
		uint64_t n = a->b[i] > b->b[i] ? a->b[i] - b->b[i] : 0;
		if (!n)
			continue;
		dst->b[i] = n;
		dst->count += n;
		if (dst->min == UINT64_MAX)
			dst->min = ld_hist_bucket_lo(i);
		dst->max = ld_hist_bucket_hi(i);
	}
	if (dst->count) {
		dst->sum = a->sum > b->sum ? a->sum - b->sum : 0;
		if (dst->max > a->max)
			dst->max = a->max;
	}
}

uint64_t ld_hist_quantile(const struct ld_hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	/* the smallest value with at least q of the values at or below it */
	rank = (uint64_t)(q * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < LD_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t hi = ld_hist_bucket_hi(i);
			return hi > h->max ? h->max : hi;
		}
	}
	return h->max;
}

double ld_hist_mean(const struct ld_hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}
