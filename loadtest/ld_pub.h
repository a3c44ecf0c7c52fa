/* ld_pub — herald-load's publisher: one hiredis connection used as a
 * pipeline. A step publishes at an exact rate: every pass it writes the
 * messages whose time has come (token bucket on the monotonic clock, at
 * most --pipeline per batch) and reads whatever replies have arrived, never
 * waiting for them, so a slow Redis cannot turn the rate into bursts; the
 * step ends by collecting the rest. Streams are served round-robin, each
 * with its own sequence (1, 2, ... across all steps). */
#ifndef LD_PUB_H
#define LD_PUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ld_opts.h"

struct ld_pub;

/* Connects to Redis (2 s timeout) and checks it answers PING. NULL with a
 * one-line reason in err. */
struct ld_pub *ld_pub_connect(const struct ld_opts *o, char *err, size_t cap);
void ld_pub_free(struct ld_pub *p);

struct ld_pub_result {
	uint64_t sent;          /* PUBLISH commands answered */
	uint64_t unanswered;    /* sent but not answered when the step gave up on Redis */
	uint64_t receivers;     /* sum of their replies (Redis subscribers reached) */
	double seconds;         /* first to last batch */
	double max_behind_ms;   /* worst lag of a batch behind its schedule */
};

/* Publishes `rate` msgs/s for `seconds` as step `step`, adding per-stream
 * counts to published[stream] (o->streams entries). idle(arg) is called
 * between batches (progress lines); publishing ends early when *stop
 * becomes true. Returns 0 once every reply of the step is in, or -1 on a
 * Redis error or when replies are still missing 10 s after the last batch
 * (res->unanswered; logged): no reply is ever carried into the next step,
 * and the publisher must not be used for another step after -1. */
int ld_pub_step(struct ld_pub *p, const struct ld_opts *o, unsigned step, double rate,
		double seconds, uint32_t *published, void (*idle)(void *), void *arg,
		volatile int *stop, struct ld_pub_result *res);

/* The longest ld_pub_step can take for a step of `seconds`, however slow
 * Redis is: the step's time plus as much again (at least 5 s) to send, one
 * write blocked up to the socket's 10-s timeout, 10 s for the last replies. */
double ld_pub_step_max_s(double seconds);

#endif
