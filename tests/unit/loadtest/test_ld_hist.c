#include <criterion/criterion.h>
#include <stdlib.h>

#include "loadtest/ld_hist.h"

static struct ld_hist *new_hist(void)
{
	struct ld_hist *h = malloc(sizeof(*h));
	ld_hist_init(h);
	return h;
}

Test(ld_hist, small_values_are_exact)
{
	for (uint64_t v = 0; v < LD_HIST_LINEAR; v++) {
		unsigned i = ld_hist_index(v);
		cr_assert_eq(ld_hist_bucket_lo(i), v);
		cr_assert_eq(ld_hist_bucket_hi(i), v);
	}
}

Test(ld_hist, every_value_falls_in_its_bucket_within_two_percent)
{
	uint64_t v = 1;
	for (int k = 0; k < 200000; k++) {
		unsigned i = ld_hist_index(v);
		uint64_t lo = ld_hist_bucket_lo(i), hi = ld_hist_bucket_hi(i);
		cr_assert(i < LD_HIST_BUCKETS);
		cr_assert(lo <= v && v <= hi, "v=%lu lo=%lu hi=%lu", v, lo, hi);
		cr_assert((double)(hi - lo) <= 0.016 * (double)lo + 1, "v=%lu", v);
		v = v + 1 + v / 97;
		if (v >= (1ULL << LD_HIST_MAX_EXP))
			break;
	}
}

Test(ld_hist, buckets_are_contiguous_and_increasing)
{
	for (unsigned i = 1; i < LD_HIST_BUCKETS - 1; i++)
		cr_assert_eq(ld_hist_bucket_lo(i), ld_hist_bucket_hi(i - 1) + 1, "i=%u", i);
}

Test(ld_hist, huge_values_are_clamped_to_the_last_bucket)
{
	struct ld_hist *h = new_hist();
	ld_hist_add(h, UINT64_MAX / 2);
	cr_assert_eq(h->b[LD_HIST_BUCKETS - 1], 1);
	cr_assert_eq(ld_hist_quantile(h, 0.5), UINT64_MAX / 2);
	free(h);
}

Test(ld_hist, quantiles_of_a_uniform_range)
{
	struct ld_hist *h = new_hist();
	for (uint64_t v = 1; v <= 10000; v++)
		ld_hist_add(h, v);
	cr_assert_eq(h->count, 10000);
	cr_assert_eq(h->min, 1);
	cr_assert_eq(h->max, 10000);
	uint64_t p50 = ld_hist_quantile(h, 0.5), p99 = ld_hist_quantile(h, 0.99);
	uint64_t p999 = ld_hist_quantile(h, 0.999);
	cr_assert(p50 >= 5000 && p50 <= 5000 * 1.016, "p50=%lu", p50);
	cr_assert(p99 >= 9900 && p99 <= 10000, "p99=%lu", p99);
	cr_assert(p999 >= 9990 && p999 <= 10000, "p999=%lu", p999);
	cr_assert_eq(ld_hist_quantile(h, 1.0), 10000);
	cr_assert_float_eq(ld_hist_mean(h), 5000.5, 0.001);
	free(h);
}

Test(ld_hist, empty_histogram_reports_zero)
{
	struct ld_hist *h = new_hist();
	cr_assert_eq(ld_hist_quantile(h, 0.99), 0);
	cr_assert_float_eq(ld_hist_mean(h), 0.0, 1e-9);
	free(h);
}

Test(ld_hist, one_outlier_shows_only_at_the_tail)
{
	struct ld_hist *h = new_hist();
	for (int i = 0; i < 999; i++)
		ld_hist_add(h, 100);
	ld_hist_add(h, 1000000);
	cr_assert_eq(ld_hist_quantile(h, 0.99), 100);
	cr_assert_eq(ld_hist_quantile(h, 0.999), 100);
	cr_assert_eq(ld_hist_quantile(h, 0.9999), 1000000);
	cr_assert_eq(h->max, 1000000);
	free(h);
}

Test(ld_hist, merge_adds_counts_and_extremes)
{
	struct ld_hist *a = new_hist(), *b = new_hist();
	ld_hist_add(a, 5);
	ld_hist_add(a, 300);
	ld_hist_add(b, 2);
	ld_hist_add(b, 70000);
	ld_hist_merge(a, b);
	cr_assert_eq(a->count, 4);
	cr_assert_eq(a->min, 2);
	cr_assert_eq(a->max, 70000);
	cr_assert_eq(a->sum, 5 + 300 + 2 + 70000);
	cr_assert_eq(a->b[ld_hist_index(70000)], 1);
	free(a);
	free(b);
}

Test(ld_hist, diff_gives_the_values_counted_in_between)
{
	struct ld_hist *cum = new_hist(), *old = new_hist(), *d = new_hist();
	for (int i = 0; i < 100; i++)
		ld_hist_add(cum, 10);
	*old = *cum;
	for (int i = 0; i < 50; i++)
		ld_hist_add(cum, 5000);
	ld_hist_diff(d, cum, old);
	cr_assert_eq(d->count, 50);
	cr_assert_eq(d->sum, 50 * 5000);
	uint64_t p50 = ld_hist_quantile(d, 0.5);
	cr_assert(p50 >= 5000 && p50 <= 5000 * 1.016, "p50=%lu", p50);
	cr_assert(d->min >= 4900 && d->min <= 5000, "min=%lu", d->min);
	free(cum);
	free(old);
	free(d);
}
