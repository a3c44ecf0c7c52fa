#include <criterion/criterion.h>

/* The parent's static step accounting under test: its object is linked
 * into this test too, so its exported name is renamed here. */
#define ld_run test_ld_run
#include "loadtest/ld_run.c"

/* A parent whose workers are gone (none to reap, none to wait for), on a
 * shared mapping as ld_run makes it. */
struct parent {
	struct ld_opts o;
	struct ld_parent P;
};

static struct parent *parent_new(unsigned workers)
{
	struct parent *t = cm_xcalloc(1, sizeof(*t));
	struct ld_parent *P = &t->P;

	t->o.scenario = LD_SC_FANOUT;
	t->o.publish = true;
	t->o.quiet = true;
	t->o.workers = workers;
	t->o.clients = 10 * workers;
	t->o.streams = 1;
	t->o.nrates = 1;
	t->o.rates[0] = 100;
	t->o.duration = 1;
	t->o.max_p99_ms = 1000;
	t->o.timeline_ms = 1000;
	P->o = &t->o;
	cr_assert_eq(ld_shared_map(&P->sh, workers, t->o.streams), 0);
	parent_alloc(P, workers);
	P->t0 = P->last_line_ns = P->last_tl_ns = ld_now_ns();
	P->phase_name = "test";
	return t;
}

static void parent_free(struct parent *t)
{
	parent_release(&t->P);
	free(t);
}

/* Worker i counted step 0: its 10 clients got all 100 messages each. */
static void counted(struct parent *t, unsigned i)
{
	struct ld_step *s = &t->P.sh.w[i].steps[0];

	s->clients = 10;
	s->expected = s->received = s->all_received = 1000;
	ld_hist_add(&s->lat, 2000);
	t->P.sh.w[i].snap_done = 0;
}

/* The step as the publisher saw it: all 100 messages in its second. */
static void published_in_time(struct ld_step_out *so)
{
	memset(so, 0, sizeof(*so));
	so->rate = 100;
	so->published = 100;
	so->seconds = 1;
}

Test(ld_run, a_step_every_worker_counted_is_ok)
{
	struct parent *t = parent_new(2);
	struct ld_step_out so;
	struct ld_hist *lat = cm_xmalloc(sizeof(*lat));

	counted(t, 0);
	counted(t, 1);
	published_in_time(&so);
	so.workers_missing = count_step(&t->P, 0);
	step_collect(&t->P, 0, &so, lat);
	cr_assert_eq(so.workers_missing, 0);
	cr_assert_eq(so.expected, 2000);
	cr_assert(so.ok);
	free(lat);
	parent_free(t);
}

Test(ld_run, a_worker_that_did_not_count_the_step_fails_it)
{
	struct parent *t = parent_new(2);
	struct ld_step_out so;
	struct ld_hist *lat = cm_xmalloc(sizeof(*lat));

	counted(t, 0); /* worker 1 never counted step 0: its zeros would look like a smaller, clean step */
	published_in_time(&so);
	so.workers_missing = count_step(&t->P, 0);
	step_collect(&t->P, 0, &so, lat);
	cr_assert_eq(so.workers_missing, 1);
	cr_assert_eq(so.received, so.expected);
	cr_assert_not(so.ok);
	free(lat);
	parent_free(t);
}

Test(ld_run, cpu_pct_never_underflows_when_a_worker_died)
{
	/* the end's ticks lack a worker that died during the step */
	cr_assert_eq(cpu_pct(5000, 4000, 100, 2.0), 0);
	cr_assert_float_eq(cpu_pct(5000, 5150, 100, 2.0), 75.0, 1e-9);
	cr_assert_eq(cpu_pct(5000, 5150, 100, 0), 0);
}

Test(ld_run, a_ramp_that_times_out_reports_the_rate_it_reached)
{
	struct parent *t = parent_new(1);
	struct ld_ramp r = { .s = -1 };
	struct ld_sum s;

	/* 5 of 10 clients tried and opened, the others never start */
	t->o.ramp_timeout = 0.05;
	t->P.sh.w[0].attempts = t->P.sh.w[0].opened = t->P.sh.w[0].open_now = 5;
	t->P.nalive = 1; /* a live worker that reap() cannot see: the timeout ends the ramp */
	ramp(&t->P, &s, &r);
	cr_assert(r.timed_out);
	cr_assert_eq(r.opened, 5);
	cr_assert(r.s >= 0.05, "ramp_s %f", r.s);
	cr_assert_float_eq(ramp_rate(&r), 5 / r.s, 1e-9);
	parent_free(t);
}

Test(ld_run, a_ramp_that_finishes_is_not_timed_out)
{
	struct parent *t = parent_new(1);
	struct ld_ramp r = { .s = -1 };
	struct ld_sum s;

	t->o.ramp_timeout = 10;
	t->P.sh.w[0].attempts = t->P.sh.w[0].opened = t->P.sh.w[0].open_now = 10;
	t->P.nalive = 1;
	ramp(&t->P, &s, &r);
	cr_assert_not(r.timed_out);
	cr_assert_eq(r.opened, 10);
	cr_assert(r.s > 0);
	parent_free(t);
}

Test(ld_run, workers_outlive_every_step_at_its_bound)
{
	struct ld_opts o = { 0 };

	o.publish = true;
	o.nrates = LD_MAX_STEPS;
	o.duration = 10;
	o.drain = 2;
	o.settle = 1;
	o.ramp_timeout = 30;
	/* each step: 10 s to publish, 10 more when Redis is slow, a write
	 * blocked 10 s, 10 s for the last replies, the drain, 5 s to count */
	cr_assert_geq(run_max_s(&o), 30 + 1 + LD_MAX_STEPS * (10 + 10 + 10 + 10 + 2 + 5.0));
	o.publish = false;
	o.nrates = 0;
	cr_assert_geq(run_max_s(&o), 30 + 10);
}
