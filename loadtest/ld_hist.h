/* ld_hist — a log-linear latency histogram in the manner of HdrHistogram:
 * values below 128 are counted exactly, larger ones in 64 sub-buckets per
 * power of two (relative error under 1.6%). Fixed size, no allocation, so it
 * can live in memory shared between processes and be merged by adding
 * counts. Values are unsigned integers in the caller's unit (herald-load
 * records microseconds). */
#ifndef LD_HIST_H
#define LD_HIST_H

#include <stdint.h>

#define LD_HIST_LINEAR 128           /* values counted exactly */
#define LD_HIST_SUB 64               /* sub-buckets per power of two above */
#define LD_HIST_MAX_EXP 40           /* values >= 2^40 are clamped */
#define LD_HIST_BUCKETS (LD_HIST_LINEAR + (LD_HIST_MAX_EXP - 7) * LD_HIST_SUB + 1) /* + overflow */

struct ld_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;   /* UINT64_MAX while empty */
	uint64_t max;
	uint64_t b[LD_HIST_BUCKETS];
};

/* Empties h. */
void ld_hist_init(struct ld_hist *h);

/* The bucket a value falls in, and the range [lo, hi] of values it holds. */
unsigned ld_hist_index(uint64_t v);
uint64_t ld_hist_bucket_lo(unsigned idx);
uint64_t ld_hist_bucket_hi(unsigned idx);

/* Counts one value (clamped to the largest bucket). */
void ld_hist_add(struct ld_hist *h, uint64_t v);

/* dst += src. */
void ld_hist_merge(struct ld_hist *dst, const struct ld_hist *src);

/* dst = a - b, for a cumulative histogram a and an older copy b of it (the
 * values counted in between). min/max of the result are bucket bounds. */
void ld_hist_diff(struct ld_hist *dst, const struct ld_hist *a, const struct ld_hist *b);

/* The value at quantile q (0..1): the upper bound of the bucket holding it,
 * never above the recorded max. 0 for an empty histogram. */
uint64_t ld_hist_quantile(const struct ld_hist *h, double q);

/* Mean of the recorded values (0 when empty). */
double ld_hist_mean(const struct ld_hist *h);

#endif
