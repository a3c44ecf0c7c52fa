#include "cm_alloc.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static bool have_mimalloc(void)
{
	return cm_alloc_decommit_delay_ms() >= 0;
}

Test(cm_alloc, tune_keeps_freed_pages_for_the_delay)
{
	unsetenv("MIMALLOC_DECOMMIT_DELAY");
	unsetenv("MIMALLOC_PURGE_DELAY");
	if (!have_mimalloc()) {
		cr_assert_not(cm_alloc_tune(), "nothing to tune without mimalloc");
		return;
	}
	cr_assert(cm_alloc_tune());
	cr_assert_eq(cm_alloc_decommit_delay_ms(), CM_ALLOC_DECOMMIT_DELAY_MS);
}

Test(cm_alloc, the_operators_setting_wins)
{
	setenv("MIMALLOC_DECOMMIT_DELAY", "77", 1);
	cr_assert_not(cm_alloc_tune());
	cr_assert_neq(cm_alloc_decommit_delay_ms(), CM_ALLOC_DECOMMIT_DELAY_MS);
	unsetenv("MIMALLOC_DECOMMIT_DELAY");
	setenv("MIMALLOC_PURGE_DELAY", "77", 1);
	cr_assert_not(cm_alloc_tune());
}

/* Page faults of one round: 512 blocks of 48 KiB written, all freed, a pause
 * longer than mimalloc's default delay, then the same again. */
static long refaults(void)
{
	enum { N = 512, SZ = 48 << 10 };
	static void *p[N];
	struct rusage a, b;
	struct timespec ts = { 0, 150 * 1000000L };

	for (int i = 0; i < N; i++)
		memset(p[i] = malloc(SZ), 1, SZ);
	for (int i = 0; i < N; i++)
		free(p[i]);
	nanosleep(&ts, NULL);
	getrusage(RUSAGE_SELF, &a);
	for (int i = 0; i < N; i++)
		memset(p[i] = malloc(SZ), 2, SZ);
	getrusage(RUSAGE_SELF, &b);
	for (int i = 0; i < N; i++)
		free(p[i]);
	return b.ru_minflt - a.ru_minflt;
}

Test(cm_alloc, freed_memory_is_reused_without_faulting_it_back_in)
{
	unsetenv("MIMALLOC_DECOMMIT_DELAY");
	unsetenv("MIMALLOC_PURGE_DELAY");
	if (!have_mimalloc())
		cr_skip_test("built without mimalloc (sanitizer build)");
	long before = refaults(); /* mimalloc's own default */
	cr_assert(cm_alloc_tune());
	long after = refaults();
	cr_log_info("page faults re-using 24 MiB: %ld with the default delay, %ld tuned", before, after);
	cr_assert_lt(after * 4, before, "tuned: %ld faults, default: %ld", after, before);
}
