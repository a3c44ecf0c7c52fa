/* cm_loop — one io_uring ring per thread, and the small services every
 * binary builds on: completion dispatch by kind, a hook at the end of each
 * loop turn, timers, fd readiness watchers, and messages between rings
 * (IORING_OP_MSG_RING).
 *
 * user_data layout: the low 8 bits are a kind, the upper 56 bits a payload
 * the kind's owner chooses (a pointer shifted left by 8, or an index with a
 * generation tag). Kinds below CM_K_USER belong to the loop itself.
 *
 * A loop is used by one thread only; only cm_loop_post() (called on the
 * sender's own loop) reaches another thread's loop. */
#ifndef CM_LOOP_H
#define CM_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct io_uring;
struct io_uring_sqe;
struct io_uring_cqe;
struct cm_loop;
struct cm_timer;
struct cm_poll;

enum {
	CM_K_NONE = 0,   /* completion ignored */
	CM_K_MSG = 1,    /* a cm_loop_post() message arriving */
	CM_K_MSGSENT,    /* our MSG_RING submission completing */
	CM_K_TIMER,
	CM_K_POLL,
	CM_K_ADMIN,      /* cm_admin's sockets */
	CM_K_USER = 16,  /* first kind for the loop's owner (gw_, rt_, ld_) */
	CM_K_MAX = 256,
};

static inline uint64_t cm_ud(unsigned kind, uint64_t payload)
{
	return payload << 8 | kind;
}
static inline uint64_t cm_ud_ptr(unsigned kind, const void *p)
{
	return (uint64_t)(uintptr_t)p << 8 | kind;
}
static inline unsigned cm_ud_kind(uint64_t ud) { return (unsigned)(ud & 0xff); }
static inline uint64_t cm_ud_payload(uint64_t ud) { return ud >> 8; }
static inline void *cm_ud_to_ptr(uint64_t ud) { return (void *)(uintptr_t)(ud >> 8); }

typedef void (*cm_cqe_fn)(void *ctx, struct io_uring_cqe *cqe);
typedef void (*cm_fn)(void *arg);

/* Creates a loop with a submission queue of `entries` (power of two) and a
 * completion queue four times larger. Aborts if io_uring is unavailable. */
struct cm_loop *cm_loop_new(unsigned entries);
/* The same for a loop that one thread creates, runs and submits to
 * (SINGLE_ISSUER|DEFER_TASKRUN, falling back to cm_loop_new's setup on an
 * older kernel); other threads may still cm_loop_post() to it. */
struct cm_loop *cm_loop_new_local(unsigned entries);
/* Each turn waits for at least nr completions or usec microseconds,
 * whichever comes first (nr <= 1: for one completion, the default). On a
 * cm_loop_new_local() loop the kernel then wakes the thread once per batch
 * rather than once per arriving packet. A wait that ends with no completion
 * at all makes the loop idle: it then sleeps until the next completion (no
 * timeout) and batches again from the turn after, so an idle thread costs
 * nothing instead of a wake-up every usec. */
void cm_loop_set_wait(struct cm_loop *loop, unsigned nr, unsigned usec);
void cm_loop_free(struct cm_loop *loop);

struct io_uring *cm_loop_ring(struct cm_loop *loop);
int cm_loop_ring_fd(struct cm_loop *loop);

/* A free SQE; when the queue is full it is submitted first. Never NULL. */
struct io_uring_sqe *cm_loop_sqe(struct cm_loop *loop);

/* Completions whose user_data has this kind go to fn(ctx, cqe). */
void cm_loop_set_kind(struct cm_loop *loop, unsigned kind, cm_cqe_fn fn, void *ctx);

/* fn(arg) runs at the end of every loop turn, after all completions of the
 * turn were dispatched and before the one submit (write coalescing). */
void cm_loop_on_turn(struct cm_loop *loop, cm_fn fn, void *arg);

/* Runs fn(arg) once, after the current turn's completions (deferred free). */
void cm_loop_defer(struct cm_loop *loop, cm_fn fn, void *arg);

/* Runs until cm_loop_stop(). Returns 0, or -errno if the ring failed. */
int cm_loop_run(struct cm_loop *loop);
/* Makes cm_loop_run() return after the current turn (same thread only). */
void cm_loop_stop(struct cm_loop *loop);

/* Monotonic milliseconds, refreshed once per loop turn. */
uint64_t cm_loop_now(struct cm_loop *loop);
/* Monotonic milliseconds, read now. */
uint64_t cm_now_ms(void);
/* Wall-clock milliseconds since the epoch. */
uint64_t cm_wall_ms(void);
/* 64 random bits from the kernel (boot ids, id bases); should getrandom
 * fail, the clock and the process id, which still differ between
 * processes. */
uint64_t cm_random64(void);

/* Sends fn(arg) to run on loop `to`, from loop `from` (the caller's own).
 * Posts to one loop run in the order they were made, from whatever thread.
 * They wait in the target's inbox (a short per-target lock); one MSG_RING
 * submitted with from's next submit rings its doorbell for any number of
 * them. `to` may equal `from`. */
void cm_loop_post(struct cm_loop *from, struct cm_loop *to, cm_fn fn, void *arg);

/* Timers: fn(arg) after ms milliseconds; again every ms if repeat. A stopped
 * timer never fires again; its memory goes when the kernel lets go of it. */
struct cm_timer *cm_timer_start(struct cm_loop *loop, uint64_t ms, bool repeat,
				cm_fn fn, void *arg);
void cm_timer_stop(struct cm_timer *t);

/* fd readiness: fn(arg, revents) on each poll event (POLLIN, POLLOUT…).
 * A multishot watcher keeps firing until stopped; a one-shot one fires once
 * and is then finished (do not stop it after it fired). */
typedef void (*cm_poll_fn)(void *arg, int revents);
struct cm_poll *cm_poll_start(struct cm_loop *loop, int fd, unsigned events,
			      bool multishot, cm_poll_fn fn, void *arg);
void cm_poll_stop(struct cm_poll *p);

#endif
