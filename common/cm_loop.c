#include "cm_loop.h"
#include "cm_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <liburing.h>
#include <poll.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>


struct cm_hook {
	cm_fn fn;
	void *arg;
};


/* Timers and watchers the kernel may still hold are listed on their loop so
 * that cm_loop_free() can release them. */
struct cm_link {
	struct cm_link *prev, *next;
};

static void link_add(struct cm_link *head, struct cm_link *l)
{
	l->next = head->next;
	l->prev = head;
	head->next->prev = l;
	head->next = l;
}

static void link_del(struct cm_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
}

struct cm_timer {
	struct cm_link link; /* first: the list frees through it */
	struct cm_loop *loop;
	struct __kernel_timespec ts;
	uint64_t ms;
	bool repeat, stopped, armed;
	bool firing;         /* in fn: a stop leaves the free to on_timer */
	cm_fn fn;
	void *arg;
};

struct cm_poll {
	struct cm_link link;
	struct cm_loop *loop;
	bool multishot, stopped, armed;
	bool firing;         /* in fn: a stop leaves the free to on_poll */
	int fd;
	unsigned events;
	cm_poll_fn fn;
	void *arg;
};

struct cm_loop {
	struct io_uring ring;
	bool stop;
	uint64_t now;
	struct {
		cm_cqe_fn fn;
		void *ctx;
	} kinds[CM_K_MAX];
	struct cm_hook *turn;
	unsigned nturn;
	struct cm_hook *deferred;
	unsigned ndeferred, capdeferred;
	struct cm_link live; /* timers and poll watchers */
	/* Posts from other loops, in order; a MSG_RING is only the doorbell. */
	pthread_mutex_t inbox_mu;
	struct cm_hook *inbox, *spare;
	unsigned ninbox, capinbox, capspare;
	atomic_bool bell;   /* a doorbell is on its way (or being answered) */
	/* Batched waits (cm_loop_set_wait): at least wait_nr completions or
	 * wait_ts, whichever comes first. wait_nr 0: one completion. After a
	 * turn with no completion at all the loop is idle, and its next wait
	 * is for one completion with no timeout: an idle thread sleeps instead
	 * of waking every wait_ts. */
	unsigned wait_nr;
	struct __kernel_timespec wait_ts;
	bool idle;
};

static void timer_free(struct cm_timer *t)
{
	link_del(&t->link);
	free(t);
}

static void poll_free(struct cm_poll *p)
{
	link_del(&p->link);
	free(p);
}


uint64_t cm_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t cm_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t cm_random64(void)
{
	uint64_t v;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = cm_wall_ms() ^ ((uint64_t)getpid() << 40) ^ cm_now_ms();
	return v;
}

static void ring_bell(struct cm_loop *from, struct cm_loop *to)
{
	struct io_uring_sqe *sqe = cm_loop_sqe(from);
	io_uring_prep_msg_ring(sqe, to->ring.ring_fd, 0, cm_ud(CM_K_MSG, 0), 0);
	io_uring_sqe_set_data64(sqe, cm_ud_ptr(CM_K_MSGSENT, to));
}

/* The doorbell rang: run everything posted so far, in posting order. The
 * bell is re-armed before the inbox is taken, so a post that finds it armed
 * is sure to be in this batch or to ring again. */
static void on_msg(void *ctx, struct io_uring_cqe *cqe)
{
	struct cm_loop *loop = ctx;
	struct cm_hook *v;
	unsigned n, cap;
	(void)cqe;

	atomic_store(&loop->bell, false);
	pthread_mutex_lock(&loop->inbox_mu);
	v = loop->inbox;
	n = loop->ninbox;
	cap = loop->capinbox;
	loop->inbox = loop->spare;
	loop->capinbox = loop->capspare;
	loop->ninbox = 0;
	pthread_mutex_unlock(&loop->inbox_mu);
	for (unsigned i = 0; i < n; i++)
		v[i].fn(v[i].arg);
	loop->spare = v;
	loop->capspare = cap;
}

static void on_msgsent(void *ctx, struct io_uring_cqe *cqe)
{
	struct cm_loop *loop = ctx;
	struct cm_loop *to = cm_ud_to_ptr(cqe->user_data);

	if (cqe->res >= 0)
		return;
	/* The target's completion queue was full (or busy): ring again. The
	 * messages wait in its inbox, so their order is kept. */
	cm_warn("MSG_RING failed (%s); ringing again", strerror(-cqe->res));
	ring_bell(loop, to);
}

static void timer_arm(struct cm_timer *t)
{
	struct io_uring_sqe *sqe = cm_loop_sqe(t->loop);
	t->ts.tv_sec = (long long)(t->ms / 1000);
	t->ts.tv_nsec = (long long)(t->ms % 1000) * 1000000;
	io_uring_prep_timeout(sqe, &t->ts, 0, 0);
	io_uring_sqe_set_data64(sqe, cm_ud_ptr(CM_K_TIMER, t));
	t->armed = true;
}

static void on_timer(void *ctx, struct io_uring_cqe *cqe)
{
	struct cm_timer *t = cm_ud_to_ptr(cqe->user_data);
	(void)ctx;
	t->armed = false;
	if (t->stopped) {
		timer_free(t);
		return;
	}
	if (t->repeat)
		timer_arm(t);
	t->firing = true;
	t->fn(t->arg);
	t->firing = false;
	/* fn may have stopped the timer: freed here unless still armed (the
	 * removal's completion frees it then) */
	if (t->stopped ? !t->armed : !t->repeat)
		timer_free(t);
}

static void poll_arm(struct cm_poll *p)
{
	struct io_uring_sqe *sqe = cm_loop_sqe(p->loop);
	if (p->multishot)
		io_uring_prep_poll_multishot(sqe, p->fd, p->events);
	else
		io_uring_prep_poll_add(sqe, p->fd, p->events);
	io_uring_sqe_set_data64(sqe, cm_ud_ptr(CM_K_POLL, p));
	p->armed = true;
}

static void on_poll(void *ctx, struct io_uring_cqe *cqe)
{
	struct cm_poll *p = cm_ud_to_ptr(cqe->user_data);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	(void)ctx;

	if (!more)
		p->armed = false;
	if (p->stopped) {
		if (!p->armed)
			poll_free(p);
		return;
	}
	if (cqe->res < 0) {
		if (cqe->res == -ECANCELED && p->multishot && !more) {
			poll_arm(p); /* multishot ended by the kernel: re-arm */
			return;
		}
		p->firing = true;
		p->fn(p->arg, POLLERR);
	} else {
		p->firing = true;
		p->fn(p->arg, cqe->res);
	}
	p->firing = false;
	if (p->stopped) {
		if (!p->armed)
			poll_free(p);
		return;
	}
	if (!p->multishot) {
		poll_free(p);
	} else if (!more) {
		poll_arm(p); /* multishot poll can end without F_MORE: re-arm */
	}
}

static struct cm_loop *loop_new(unsigned entries, bool local)
{
	struct cm_loop *loop = cm_xcalloc(1, sizeof(*loop));
	struct io_uring_params p;
	int ret = -EINVAL;

	if (local) {
		/* Task work runs only when this thread asks for completions
		 * (DEFER_TASKRUN), so an arriving packet need not wake it:
		 * with a batched wait the kernel wakes it once per batch. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
		p.cq_entries = entries * 4;
		ret = io_uring_queue_init_params(entries, &loop->ring, &p);
	}
	if (ret == -EINVAL) {
		/* Not SINGLE_ISSUER/DEFER_TASKRUN: a loop may be created on one
		 * thread and run on another. COOP_TASKRUN spares the IPIs all
		 * the same. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
		p.cq_entries = entries * 4;
		ret = io_uring_queue_init_params(entries, &loop->ring, &p);
	}
	if (ret == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		ret = io_uring_queue_init_params(entries, &loop->ring, &p);
	}
	if (ret < 0) {
		cm_error("io_uring_queue_init: %s", strerror(-ret));
		abort();
	}
	loop->now = cm_now_ms();
	loop->live.next = loop->live.prev = &loop->live;
	pthread_mutex_init(&loop->inbox_mu, NULL);
	atomic_init(&loop->bell, false);
	cm_loop_set_kind(loop, CM_K_MSG, on_msg, loop);
	cm_loop_set_kind(loop, CM_K_MSGSENT, on_msgsent, loop);
	cm_loop_set_kind(loop, CM_K_TIMER, on_timer, loop);
	cm_loop_set_kind(loop, CM_K_POLL, on_poll, loop);
	return loop;
}

struct cm_loop *cm_loop_new(unsigned entries)
{
	return loop_new(entries, false);
}

struct cm_loop *cm_loop_new_local(unsigned entries)
{
	return loop_new(entries, true);
}

void cm_loop_set_wait(struct cm_loop *loop, unsigned nr, unsigned usec)
{
	loop->wait_nr = nr > 1 ? nr : 0;
	loop->wait_ts.tv_sec = usec / 1000000;
	loop->wait_ts.tv_nsec = (long long)(usec % 1000000) * 1000;
}

void cm_loop_free(struct cm_loop *loop)
{
	if (!loop)
		return;
	io_uring_queue_exit(&loop->ring);
	while (loop->live.next != &loop->live) {
		struct cm_link *l = loop->live.next;
		link_del(l);
		free(l); /* the link is the first member of a timer or a watcher */
	}
	free(loop->turn);
	free(loop->deferred);
	free(loop->inbox);
	free(loop->spare);
	pthread_mutex_destroy(&loop->inbox_mu);
	free(loop);
}

struct io_uring *cm_loop_ring(struct cm_loop *loop) { return &loop->ring; }
int cm_loop_ring_fd(struct cm_loop *loop) { return loop->ring.ring_fd; }
uint64_t cm_loop_now(struct cm_loop *loop) { return loop->now; }
void cm_loop_stop(struct cm_loop *loop) { loop->stop = true; }

struct io_uring_sqe *cm_loop_sqe(struct cm_loop *loop)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&loop->ring))) {
		int ret = io_uring_submit(&loop->ring);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			cm_error("io_uring_submit: %s", strerror(-ret));
			abort();
		}
	}
	return sqe;
}

void cm_loop_set_kind(struct cm_loop *loop, unsigned kind, cm_cqe_fn fn, void *ctx)
{
	CM_ASSERT(kind < CM_K_MAX);
	loop->kinds[kind].fn = fn;
	loop->kinds[kind].ctx = ctx;
}

void cm_loop_on_turn(struct cm_loop *loop, cm_fn fn, void *arg)
{
	loop->turn = cm_xrealloc(loop->turn, (loop->nturn + 1) * sizeof(*loop->turn));
	loop->turn[loop->nturn].fn = fn;
	loop->turn[loop->nturn].arg = arg;
	loop->nturn++;
}

void cm_loop_defer(struct cm_loop *loop, cm_fn fn, void *arg)
{
	if (loop->ndeferred == loop->capdeferred) {
		loop->capdeferred = loop->capdeferred ? loop->capdeferred * 2 : 64;
		loop->deferred = cm_xrealloc(loop->deferred,
					     loop->capdeferred * sizeof(*loop->deferred));
	}
	loop->deferred[loop->ndeferred].fn = fn;
	loop->deferred[loop->ndeferred].arg = arg;
	loop->ndeferred++;
}

void cm_loop_post(struct cm_loop *from, struct cm_loop *to, cm_fn fn, void *arg)
{
	pthread_mutex_lock(&to->inbox_mu);
	if (to->ninbox == to->capinbox) {
		to->capinbox = to->capinbox ? to->capinbox * 2 : 64;
		to->inbox = cm_xrealloc(to->inbox, to->capinbox * sizeof(*to->inbox));
	}
	to->inbox[to->ninbox].fn = fn;
	to->inbox[to->ninbox].arg = arg;
	to->ninbox++;
	pthread_mutex_unlock(&to->inbox_mu);
	/* One doorbell for any number of posts until the target answers it. */
	if (!atomic_exchange(&to->bell, true))
		ring_bell(from, to);
}

struct cm_timer *cm_timer_start(struct cm_loop *loop, uint64_t ms, bool repeat,
				cm_fn fn, void *arg)
{
	struct cm_timer *t = cm_xcalloc(1, sizeof(*t));
	t->loop = loop;
	t->ms = ms ? ms : 1;
	t->repeat = repeat;
	t->fn = fn;
	t->arg = arg;
	link_add(&loop->live, &t->link);
	timer_arm(t);
	return t;
}

void cm_timer_stop(struct cm_timer *t)
{
	struct io_uring_sqe *sqe;

	if (!t || t->stopped)
		return;
	t->stopped = true;
	if (!t->armed) {
		if (!t->firing)
			timer_free(t);
		return;
	}
	sqe = cm_loop_sqe(t->loop);
	io_uring_prep_timeout_remove(sqe, cm_ud_ptr(CM_K_TIMER, t), 0);
	io_uring_sqe_set_data64(sqe, cm_ud(CM_K_NONE, 0));
}

struct cm_poll *cm_poll_start(struct cm_loop *loop, int fd, unsigned events,
			      bool multishot, cm_poll_fn fn, void *arg)
{
	struct cm_poll *p = cm_xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->fd = fd;
	p->events = events;
	p->multishot = multishot;
	p->fn = fn;
	p->arg = arg;
	link_add(&loop->live, &p->link);
	poll_arm(p);
	return p;
}

void cm_poll_stop(struct cm_poll *p)
{
	struct io_uring_sqe *sqe;

	if (!p || p->stopped)
		return;
	p->stopped = true;
	if (!p->armed) {
		if (!p->firing)
			poll_free(p);
		return;
	}
	sqe = cm_loop_sqe(p->loop);
	io_uring_prep_poll_remove(sqe, cm_ud_ptr(CM_K_POLL, p));
	io_uring_sqe_set_data64(sqe, cm_ud(CM_K_NONE, 0));
}

static void dispatch(struct cm_loop *loop, struct io_uring_cqe *cqe)
{
	unsigned kind = cm_ud_kind(cqe->user_data);
	if (kind == CM_K_NONE)
		return;
	CM_ASSERT(loop->kinds[kind].fn != NULL);
	loop->kinds[kind].fn(loop->kinds[kind].ctx, cqe);
}

int cm_loop_run(struct cm_loop *loop)
{
	while (!loop->stop) {
		struct io_uring_cqe *cqe;
		unsigned head, n, total = 0;
		int ret;

		if (loop->wait_nr && !loop->idle) {
			struct io_uring_cqe *first;
			ret = io_uring_submit_and_wait_timeout(&loop->ring, &first, loop->wait_nr,
							       &loop->wait_ts, NULL);
		} else {
			ret = io_uring_submit_and_wait(&loop->ring, 1);
		}
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME) {
			cm_error("io_uring_submit_and_wait: %s", strerror(-ret));
			return ret;
		}
		loop->now = cm_now_ms();
		do {
			n = 0;
			io_uring_for_each_cqe(&loop->ring, head, cqe) {
				dispatch(loop, cqe);
				n++;
			}
			io_uring_cq_advance(&loop->ring, n);
			total += n;
		} while (n);
		loop->idle = total == 0;
		for (unsigned i = 0; i < loop->nturn; i++)
			loop->turn[i].fn(loop->turn[i].arg);
		/* Deferred work may defer more; run until none is left. */
		for (unsigned i = 0; i < loop->ndeferred; i++)
			loop->deferred[i].fn(loop->deferred[i].arg);
		loop->ndeferred = 0;
	}
	/* What the last turn queued (close frames, posts) still goes out. */
	io_uring_submit(&loop->ring);
	loop->stop = false;
	return 0;
}
