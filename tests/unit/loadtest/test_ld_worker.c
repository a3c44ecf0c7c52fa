#include <criterion/criterion.h>

/* The worker's static counting (count_payload, snapshot) under test: its
 * object is linked into this test too, so its two exported names are
 * renamed here. */
#define ld_worker_run test_ld_worker_run
#define ld_client_is_slow test_ld_client_is_slow
#include "loadtest/ld_worker.c"

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

/* A worker with one open client of stream 0 (of 2), counted in every step,
 * on a shared mapping as the parent makes it; no ring, no socket. */
struct counting {
	struct ld_opts o;
	struct ld_shared sh;
	struct ld_worker w;
	struct ld_conn c;
};

static void counting_init(struct counting *t)
{
	memset(t, 0, sizeof(*t));
	t->o.scenario = LD_SC_FANOUT;
	t->o.publish = true;
	t->o.workers = 1;
	t->o.streams = 2;
	t->o.payload = 64;
	cr_assert_eq(ld_shared_map(&t->sh, 1, t->o.streams), 0);
	t->w.o = &t->o;
	t->w.sh = &t->sh;
	t->w.ctl = t->sh.ctl;
	t->w.st = &t->sh.w[0];
	t->w.snap_done = -1;
	t->w.conns = &t->c;
	t->w.nconns = 1;
	t->c.state = LD_C_OPEN;
	t->c.stream = 0;
	t->c.rstep = -1;
	t->c.open_ns = 1;
}

/* Step k published n messages on stream 0 (and none on stream 1). */
static void published(struct counting *t, int k, uint32_t n)
{
	t->sh.published[(size_t)k * t->o.streams] = n;
	t->sh.ctl->step_start_ns[k] = 1000000000ULL * (uint64_t)(k + 1);
}

static void receive(struct counting *t, unsigned step, uint64_t seq)
{
	struct ld_payload pl = { .step = step, .stream = 0, .seq = seq, .send_ns = ld_now_ns() };
	char buf[256];
	size_t n = ld_payload_encode(buf, sizeof(buf), t->o.payload, &pl);

	cr_assert(n > 0);
	count_payload(&t->w, &t->c, (const uint8_t *)buf, n);
}

Test(ld_worker, counts_a_loss_at_the_end_of_the_last_step_as_gaps)
{
	struct counting *t = malloc(sizeof(*t));

	counting_init(t);
	published(t, 0, 5); /* sequences 1..5 */
	for (uint64_t q = 1; q <= 3; q++)
		receive(t, 0, q);
	snapshot(&t->w, 0); /* no later message will reveal 4 and 5 */
	cr_assert_eq(t->sh.w[0].steps[0].expected, 5);
	cr_assert_eq(t->sh.w[0].steps[0].received, 3);
	cr_assert_eq(t->sh.w[0].steps[0].gaps, 2);
	ld_shared_unmap(&t->sh);
	free(t);
}

Test(ld_worker, counts_a_tail_loss_once_and_in_its_own_step)
{
	struct counting *t = malloc(sizeof(*t));
	struct ld_step *st;

	counting_init(t);
	published(t, 0, 5);
	for (uint64_t q = 1; q <= 3; q++)
		receive(t, 0, q);
	snapshot(&t->w, 0);
	receive(t, 0, 4);   /* after the count: late, not a duplicate */
	published(t, 1, 3); /* 6..8 */
	for (uint64_t q = 6; q <= 8; q++)
		receive(t, 1, q); /* 5 never came: counted in step 0 already */
	snapshot(&t->w, 1);
	st = t->sh.w[0].steps;
	cr_assert_eq(st[0].gaps, 2);
	cr_assert_eq(st[0].late, 1);
	cr_assert_eq(st[0].dups, 0);
	cr_assert_eq(st[1].gaps, 0);
	cr_assert_eq(st[1].dups, 0);
	cr_assert_eq(st[1].received, 3);
	cr_assert_eq(st[1].expected, 3);
	ld_shared_unmap(&t->sh);
	free(t);
}

Test(ld_worker, counts_gaps_between_messages_and_no_tail_for_a_client_that_got_nothing)
{
	struct counting *t = malloc(sizeof(*t));

	counting_init(t);
	published(t, 0, 4);
	snapshot(&t->w, 0); /* nothing received yet: no sequence to count from */
	cr_assert_eq(t->sh.w[0].steps[0].gaps, 0);
	cr_assert_eq(t->sh.w[0].steps[0].received, 0);
	published(t, 1, 4);   /* 5..8 */
	receive(t, 1, 5);
	receive(t, 1, 7);     /* 6 skipped */
	receive(t, 1, 7);
	receive(t, 1, 8);
	snapshot(&t->w, 1);
	cr_assert_eq(t->sh.w[0].steps[1].gaps, 1);
	cr_assert_eq(t->sh.w[0].steps[1].dups, 1);
	cr_assert_eq(t->sh.w[0].steps[1].received, 3);
	ld_shared_unmap(&t->sh);
	free(t);
}
