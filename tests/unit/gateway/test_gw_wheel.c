#include <criterion/criterion.h>
#include <string.h>

#include "gateway/gw_wheel.h"

#define N 64
static struct gw_wlink links[N];
static unsigned fired[N];
static uint64_t fired_at[N];
static uint64_t now;
static struct gw_wheel W;
static int rearm_id = -1;

static struct gw_wlink *link_of(void *ctx, uint32_t id)
{
	(void)ctx;
	return &links[id];
}

static void fire(void *ctx, uint32_t id)
{
	(void)ctx;
	fired[id]++;
	fired_at[id] = now;
	if ((int)id == rearm_id)
		gw_wheel_add(&W, id, now + 100);
}

static void setup(void)
{
	memset(links, 0, sizeof(links));
	memset(fired, 0, sizeof(fired));
	for (int i = 0; i < N; i++)
		links[i].next = links[i].prev = GW_NIL;
	now = 1000;
	rearm_id = -1;
	gw_wheel_init(&W, 16, 10, now, link_of, NULL);
}

static void teardown(void)
{
	gw_wheel_destroy(&W);
}

static void run_until(uint64_t t)
{
	while (now < t) {
		now += 5;
		gw_wheel_advance(&W, now, fire);
	}
}

Test(gw_wheel, fires_at_or_after_deadline_once, .init = setup, .fini = teardown)
{
	gw_wheel_add(&W, 1, 1050);
	gw_wheel_add(&W, 2, 1100);
	run_until(1045);
	cr_assert_eq(fired[1], 0);
	run_until(1200);
	cr_assert_eq(fired[1], 1);
	cr_assert_eq(fired[2], 1);
	cr_assert(fired_at[1] >= 1050 && fired_at[1] < 1070);
	cr_assert(fired_at[2] >= 1100 && fired_at[2] < 1120);
}

Test(gw_wheel, deadline_beyond_one_turn, .init = setup, .fini = teardown)
{
	/* the wheel spans 160 ms; 1000 ms ahead must wait several turns */
	gw_wheel_add(&W, 3, 2000);
	run_until(1990);
	cr_assert_eq(fired[3], 0);
	run_until(2100);
	cr_assert_eq(fired[3], 1);
	cr_assert(fired_at[3] >= 2000);
}

Test(gw_wheel, delete_and_reschedule, .init = setup, .fini = teardown)
{
	gw_wheel_add(&W, 4, 1030);
	gw_wheel_add(&W, 5, 1030);
	gw_wheel_add(&W, 6, 1030);
	gw_wheel_del(&W, 5);
	gw_wheel_del(&W, 5);
	gw_wheel_add(&W, 6, 1300);
	run_until(1200);
	cr_assert_eq(fired[4], 1);
	cr_assert_eq(fired[5], 0);
	cr_assert_eq(fired[6], 0);
	run_until(1400);
	cr_assert_eq(fired[6], 1);
	cr_assert(!links[4].on && !links[6].on);
}

Test(gw_wheel, past_deadline_fires_next_advance, .init = setup, .fini = teardown)
{
	gw_wheel_add(&W, 7, 10);
	run_until(1020);
	cr_assert_eq(fired[7], 1);
}

Test(gw_wheel, fire_may_reschedule, .init = setup, .fini = teardown)
{
	rearm_id = 8;
	gw_wheel_add(&W, 8, 1100);
	run_until(1555);
	cr_assert(fired[8] >= 4 && fired[8] <= 5, "%u", fired[8]);
}

Test(gw_wheel, long_stall_catches_up, .init = setup, .fini = teardown)
{
	for (int i = 10; i < 40; i++)
		gw_wheel_add(&W, (uint32_t)i, 1000 + (uint64_t)i * 7);
	now = 50000;
	gw_wheel_advance(&W, now, fire);
	for (int i = 10; i < 40; i++)
		cr_assert_eq(fired[i], 1, "id %d", i);
}
