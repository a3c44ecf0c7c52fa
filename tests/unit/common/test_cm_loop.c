#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "cm_loop.h"

struct counter {
	struct cm_loop *loop;
	int n, stop_at;
};

static void count_and_maybe_stop(void *arg)
{
	struct counter *c = arg;
	if (++c->n == c->stop_at)
		cm_loop_stop(c->loop);
}

Test(cm_loop, repeating_timer_fires_until_stopped)
{
	struct counter c = { .loop = cm_loop_new(64), .stop_at = 3 };
	uint64_t t0 = cm_now_ms();
	cm_timer_start(c.loop, 10, true, count_and_maybe_stop, &c);
	cr_assert_eq(cm_loop_run(c.loop), 0);
	cr_assert_eq(c.n, 3);
	cr_assert_geq(cm_now_ms() - t0, 20);
	cm_loop_free(c.loop);
}

static void never(void *arg)
{
	(void)arg;
	cr_assert_fail("a stopped timer fired");
}

Test(cm_loop, stopped_timer_never_fires)
{
	struct counter c = { .loop = cm_loop_new(64), .stop_at = 1 };
	struct cm_timer *t = cm_timer_start(c.loop, 5, false, never, NULL);
	cm_timer_stop(t);
	cm_timer_start(c.loop, 30, false, count_and_maybe_stop, &c);
	cr_assert_eq(cm_loop_run(c.loop), 0);
	cr_assert_eq(c.n, 1);
	cm_loop_free(c.loop);
}

struct turn {
	struct cm_loop *loop;
	int turns, deferred;
};

static void on_deferred(void *arg)
{
	((struct turn *)arg)->deferred++;
}

static void on_turn(void *arg)
{
	struct turn *t = arg;
	if (++t->turns == 1)
		cm_loop_defer(t->loop, on_deferred, t);
	else
		cm_loop_stop(t->loop);
}

static void wake(void *arg)
{
	(void)arg;
}

Test(cm_loop, turn_hook_runs_each_turn_and_defer_runs_once)
{
	struct turn t = { .loop = cm_loop_new(64) };
	cm_loop_on_turn(t.loop, on_turn, &t);
	cm_timer_start(t.loop, 1, false, wake, NULL);
	cm_timer_start(t.loop, 20, false, wake, NULL);
	cr_assert_eq(cm_loop_run(t.loop), 0);
	cr_assert_eq(t.turns, 2);
	cr_assert_eq(t.deferred, 1);
	cm_loop_free(t.loop);
}

struct pipe_ctx {
	struct cm_loop *loop;
	int fd;
	char got[16];
	int n;
};

static void on_readable(void *arg, int revents)
{
	struct pipe_ctx *p = arg;
	cr_assert(revents & POLLIN);
	ssize_t r = read(p->fd, p->got + p->n, sizeof(p->got) - (size_t)p->n);
	cr_assert_gt(r, 0);
	p->n += (int)r;
	if (p->n >= 2)
		cm_loop_stop(p->loop);
}

static void write_b(void *arg)
{
	int *fd = arg;
	cr_assert_eq(write(*fd, "b", 1), 1);
}

Test(cm_loop, multishot_poll_fires_on_each_event)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct pipe_ctx p = { .loop = cm_loop_new(64), .fd = fds[0] };
	cm_poll_start(p.loop, fds[0], POLLIN, true, on_readable, &p);
	cr_assert_eq(write(fds[1], "a", 1), 1);
	cm_timer_start(p.loop, 10, false, write_b, &fds[1]);
	cr_assert_eq(cm_loop_run(p.loop), 0);
	cr_assert_eq(p.n, 2);
	cr_assert_eq(memcmp(p.got, "ab", 2), 0);
	cm_loop_free(p.loop);
	close(fds[0]);
	close(fds[1]);
}

/* Two loops on two threads: posts from one run on the other, in order. */
struct xthread {
	struct cm_loop *a, *b;
	atomic_int received;
	int order_ok;
	int last;
	pthread_t self_b;
};

struct xmsg {
	struct xthread *x;
	int seq;
};

static void on_xmsg(void *arg)
{
	struct xmsg *m = arg;
	struct xthread *x = m->x;
	if (!pthread_equal(pthread_self(), x->self_b) || m->seq != x->last + 1)
		x->order_ok = 0;
	x->last = m->seq;
	if (atomic_fetch_add(&x->received, 1) + 1 == 1000)
		cm_loop_stop(x->b);
	free(m);
}

static void send_all(void *arg)
{
	struct xthread *x = arg;
	for (int i = 1; i <= 1000; i++) {
		struct xmsg *m = malloc(sizeof(*m));
		m->x = x;
		m->seq = i;
		cm_loop_post(x->a, x->b, on_xmsg, m);
	}
	cm_loop_stop(x->a);
}

static void *run_b(void *arg)
{
	struct xthread *x = arg;
	cm_loop_run(x->b);
	return NULL;
}

/* a sends 1000 posts to b (run by thread tb): all arrive, in order, on tb. */
static void send_and_check(struct xthread *x, pthread_t tb)
{
	cm_timer_start(x->a, 1, false, send_all, x);
	cr_assert_eq(cm_loop_run(x->a), 0);
	pthread_join(tb, NULL);
	cr_assert_eq(atomic_load(&x->received), 1000);
	cr_assert(x->order_ok);
	cm_loop_free(x->a);
	cm_loop_free(x->b);
}

Test(cm_loop, post_delivers_to_the_other_thread_in_order)
{
	struct xthread x = { .order_ok = 1 };
	pthread_t tb;
	x.a = cm_loop_new(256);
	x.b = cm_loop_new(256);
	/* keep b alive until the messages arrive */
	cm_timer_start(x.b, 5000, false, wake, NULL);
	cr_assert_eq(pthread_create(&tb, NULL, run_b, &x), 0);
	x.self_b = tb;
	send_and_check(&x, tb);
}

/* Several sender threads, each with its own loop, post to one loop: every
 * message arrives, and each sender's messages arrive in its order. */
#define NSEND 3
#define NPER 5000

struct fan {
	struct cm_loop *target;
	struct cm_loop *senders[NSEND];
	int last[NSEND];
	int received;
	bool ordered;
};

struct fmsg {
	struct fan *f;
	int sender, seq;
};

static void on_fmsg(void *arg)
{
	struct fmsg *m = arg;
	struct fan *f = m->f;
	if (m->seq != f->last[m->sender] + 1)
		f->ordered = false;
	f->last[m->sender] = m->seq;
	if (++f->received == NSEND * NPER)
		cm_loop_stop(f->target);
	free(m);
}

struct sender {
	struct fan *f;
	int id;
};

static void send_burst(void *arg)
{
	struct sender *s = arg;
	/* In bursts across several turns, so doorbells race with answers. */
	static __thread int sent;
	for (int i = 0; i < 500 && sent < NPER; i++) {
		struct fmsg *m = malloc(sizeof(*m));
		m->f = s->f;
		m->sender = s->id;
		m->seq = ++sent;
		cm_loop_post(s->f->senders[s->id], s->f->target, on_fmsg, m);
	}
	if (sent < NPER)
		cm_timer_start(s->f->senders[s->id], 1, false, send_burst, s);
	else
		cm_loop_stop(s->f->senders[s->id]);
}

static void *run_sender(void *arg)
{
	struct sender *s = arg;
	cm_timer_start(s->f->senders[s->id], 1, false, send_burst, s);
	cm_loop_run(s->f->senders[s->id]);
	return NULL;
}

static void *run_target(void *arg)
{
	struct fan *f = arg;
	cm_loop_run(f->target);
	return NULL;
}

Test(cm_loop, posts_from_many_threads_keep_each_senders_order)
{
	struct fan f = { .ordered = true };
	struct sender s[NSEND];
	pthread_t th[NSEND], tt;

	f.target = cm_loop_new(64);
	cm_timer_start(f.target, 20000, false, wake, NULL);
	for (int i = 0; i < NSEND; i++)
		f.senders[i] = cm_loop_new(64);
	cr_assert_eq(pthread_create(&tt, NULL, run_target, &f), 0);
	for (int i = 0; i < NSEND; i++) {
		s[i].f = &f;
		s[i].id = i;
		cr_assert_eq(pthread_create(&th[i], NULL, run_sender, &s[i]), 0);
	}
	for (int i = 0; i < NSEND; i++)
		pthread_join(th[i], NULL);
	pthread_join(tt, NULL);
	cr_assert_eq(f.received, NSEND * NPER);
	cr_assert(f.ordered);
	for (int i = 0; i < NSEND; i++)
		cm_loop_free(f.senders[i]);
	cm_loop_free(f.target);
}

/* A batched wait on a local loop: one completion waits for the timeout,
 * since the batch never fills; a full batch ends the wait. */
struct batch_ctx {
	struct cm_loop *loop;
	int fd, events;
	uint64_t first_ms;
};

static void on_batch_readable(void *arg, int events)
{
	struct batch_ctx *b = arg;
	char buf[16];
	(void)events;
	if (b->events++ == 0)
		b->first_ms = cm_now_ms();
	cr_assert_gt(read(b->fd, buf, sizeof(buf)), 0);
	cm_loop_stop(b->loop);
}

Test(cm_loop, batched_wait_holds_a_lone_completion_until_its_timeout)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct batch_ctx b = { .loop = cm_loop_new_local(64), .fd = fds[0] };
	cm_loop_set_wait(b.loop, 64, 60 * 1000);
	cm_poll_start(b.loop, fds[0], POLLIN, true, on_batch_readable, &b);
	cr_assert_eq(write(fds[1], "a", 1), 1);
	uint64_t t0 = cm_now_ms();
	cr_assert_eq(cm_loop_run(b.loop), 0);
	cr_assert_eq(b.events, 1);
	cr_assert_geq(b.first_ms - t0, 50, "dispatched after %llu ms, before the 60 ms wait ended",
		      (unsigned long long)(b.first_ms - t0));
	cm_loop_free(b.loop);
	close(fds[0]);
	close(fds[1]);
}

static void *run_local(void *arg)
{
	struct xthread *x = arg;
	struct cm_loop *b = cm_loop_new_local(256);
	cm_loop_set_wait(b, 16, 1000);
	cm_timer_start(b, 5000, false, wake, NULL);
	__atomic_store_n(&x->b, b, __ATOMIC_RELEASE);
	cm_loop_run(b);
	return NULL;
}

Test(cm_loop, a_local_loop_with_batched_waits_takes_posts_in_order)
{
	struct xthread x = { .order_ok = 1 };
	pthread_t tb;
	x.a = cm_loop_new(256);
	cr_assert_eq(pthread_create(&tb, NULL, run_local, &x), 0);
	x.self_b = tb;
	for (int i = 0; i < 1000 && !__atomic_load_n(&x.b, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	cr_assert_not_null(__atomic_load_n(&x.b, __ATOMIC_ACQUIRE));
	send_and_check(&x, tb);
}

/* An idle loop with batched waits sleeps: after one wait that times out
 * with nothing to do it waits for the next completion without a timeout,
 * rather than waking every batch period. 60 ms of idleness with a 200 us
 * period would be about 300 turns; sleeping, it is the turn that found the
 * loop idle and the timer's own. */
Test(cm_loop, an_idle_loop_with_batched_waits_sleeps_until_the_next_completion, .timeout = 10)
{
	struct cm_loop *loop = cm_loop_new_local(64);
	struct counter turns = { .loop = loop, .stop_at = 0 }; /* counts, never stops */
	struct counter timer = { .loop = loop, .stop_at = 1 };
	cm_loop_set_wait(loop, 32, 200);
	cm_loop_on_turn(loop, count_and_maybe_stop, &turns);
	cm_timer_start(loop, 60, false, count_and_maybe_stop, &timer);
	uint64_t t0 = cm_now_ms();
	cr_assert_eq(cm_loop_run(loop), 0);
	cr_assert_geq(cm_now_ms() - t0, 55);
	cr_assert_leq(turns.n, 5, "%d turns in 60 ms of idleness: the loop woke every batch period",
		      turns.n);
	cm_loop_free(loop);
}

/* Woken from idleness by a lone completion, the loop dispatches it at
 * once (nothing else is coming to fill a batch), then batches again: the
 * next completion is held for the batch period like any other. */
struct rewake_ctx {
	struct cm_loop *loop;
	int rfd, wfd, events;
	uint64_t at[2];
};

static void on_rewake_readable(void *arg, int events)
{
	struct rewake_ctx *r = arg;
	char buf[16];
	(void)events;
	cr_assert_gt(read(r->rfd, buf, sizeof(buf)), 0);
	r->at[r->events++] = cm_now_ms();
	if (r->events == 1)
		cr_assert_eq(write(r->wfd, "b", 1), 1);
	else
		cm_loop_stop(r->loop);
}

static void *write_later(void *arg)
{
	struct rewake_ctx *r = arg;
	usleep(250 * 1000);
	ssize_t n = write(r->wfd, "a", 1); /* a short write fails the test below */
	(void)n;
	return NULL;
}

Test(cm_loop, a_loop_woken_from_idleness_dispatches_at_once_then_batches_again, .timeout = 10)
{
	int fds[2];
	pthread_t t;
	cr_assert_eq(pipe(fds), 0);
	struct rewake_ctx r = { .loop = cm_loop_new_local(64), .rfd = fds[0], .wfd = fds[1] };
	cm_loop_set_wait(r.loop, 64, 200 * 1000);
	cm_poll_start(r.loop, fds[0], POLLIN, true, on_rewake_readable, &r);
	uint64_t t0 = cm_now_ms();
	cr_assert_eq(pthread_create(&t, NULL, write_later, &r), 0);
	cr_assert_eq(cm_loop_run(r.loop), 0);
	pthread_join(t, NULL);
	cr_assert_eq(r.events, 2);
	/* written at 250 ms, after the first (empty) 200-ms wait made the loop
	 * idle; waking every 200 ms the loop would dispatch it at 400. The
	 * margins (100 ms, 50 ms) are wider than this machine's stalls. */
	cr_assert_lt(r.at[0] - t0, 350, "a lone completion after idleness waited %llu ms",
		     (unsigned long long)(r.at[0] - t0));
	cr_assert_geq(r.at[1] - r.at[0], 150, "the next completion came %llu ms later: not batched",
		      (unsigned long long)(r.at[1] - r.at[0]));
	cm_loop_free(r.loop);
	close(fds[0]);
	close(fds[1]);
}

/* Stopping a timer or a watcher from its own last callback is allowed: the
 * stop must not free what the dispatch still reads. */
struct self_stop {
	struct cm_loop *loop;
	void *handle;   /* the timer or watcher to stop from its own callback */
	int fired;
};

static void timer_stops_itself(void *arg)
{
	struct self_stop *s = arg;
	s->fired++;
	cm_timer_stop(s->handle);
	cm_loop_stop(s->loop);
}

/* "A stopped timer never fires again": stopping a one-shot timer from its
 * own callback is allowed (on_timer says so), but the stop freed it while
 * on_timer still read it afterwards (a heap use after free under ASan). */
Test(cm_loop, one_shot_timer_may_stop_itself_in_its_callback)
{
	struct self_stop s = { .loop = cm_loop_new(64) };
	s.handle = cm_timer_start(s.loop, 1, false, timer_stops_itself, &s);
	cr_assert_eq(cm_loop_run(s.loop), 0);
	cr_assert_eq(s.fired, 1);
	cm_loop_free(s.loop);
}

static void poll_stops_itself(void *arg, int revents)
{
	struct self_stop *s = arg;
	(void)revents;
	s->fired++;
	cm_poll_stop(s->handle);
	cm_loop_stop(s->loop);
}

/* The same for a watcher whose last event (no IORING_CQE_F_MORE: a one-shot
 * watcher, or a multishot one the kernel ended) is being delivered: a stop
 * from the callback freed it under on_poll. */
Test(cm_loop, watcher_may_stop_itself_in_its_last_callback)
{
	int fds[2];
	struct self_stop s = { .loop = cm_loop_new(64) };
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], "x", 1), 1);
	s.handle = cm_poll_start(s.loop, fds[0], POLLIN, false, poll_stops_itself, &s);
	cr_assert_eq(cm_loop_run(s.loop), 0);
	cr_assert_eq(s.fired, 1);
	cm_loop_free(s.loop);
	close(fds[0]);
	close(fds[1]);
}
