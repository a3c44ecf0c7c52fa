#include <criterion/criterion.h>

#include "loadtest/ld_worker.h"

Test(ld_worker, slow_share_matches_the_percentage)
{
	struct ld_opts o = { 0 };
	unsigned n = 0;

	o.slow_pct = 10;
	for (uint64_t g = 0; g < 100000; g++)
		n += ld_client_is_slow(&o, g);
	cr_assert(n > 9500 && n < 10500, "n=%u", n);
	o.slow_pct = 0;
	for (uint64_t g = 0; g < 1000; g++)
		cr_assert_not(ld_client_is_slow(&o, g));
}

Test(ld_worker, slow_clients_spread_over_streams)
{
	struct ld_opts o = { 0 };
	unsigned per_stream[200] = { 0 };

	o.slow_pct = 10;
	for (uint64_t g = 0; g < 20000; g++)
		if (ld_client_is_slow(&o, g))
			per_stream[g % 200]++;
	for (int s = 0; s < 200; s++)
		cr_assert(per_stream[s] < 40, "stream %d has %u slow of 100", s, per_stream[s]);
}
