#include "ld_pub.h"

#include "cm_log.h"
#include "ld_payload.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LD_PUB_IO_TIMEOUT_S 10     /* a blocking read or write of the socket */
#define LD_PUB_REPLY_WAIT_MS 10000 /* for the last replies of a step */

struct ld_pub {
	redisContext *rc;
	uint64_t *seq;          /* per stream */
	unsigned streams;
	unsigned rr;            /* next stream */
	char *payload;
	size_t payload_cap;
	uint64_t outstanding;   /* PUBLISH commands sent, reply not read yet */
};

/* A publisher on the connection rc (which it then owns). */
static struct ld_pub *pub_new(redisContext *rc, const struct ld_opts *o)
{
	struct ld_pub *p = cm_xcalloc(1, sizeof(*p));

	p->rc = rc;
	p->streams = o->streams;
	p->seq = cm_xcalloc(o->streams, sizeof(*p->seq));
	p->payload_cap = o->payload + LD_PAYLOAD_MIN;
	p->payload = cm_xmalloc(p->payload_cap);
	return p;
}

struct ld_pub *ld_pub_connect(const struct ld_opts *o, char *err, size_t cap)
{
	struct timeval tv = { 2, 0 };
	redisContext *rc;
	redisReply *r;

	rc = redisConnectWithTimeout(o->redis_host, o->redis_port, tv);
	if (!rc || rc->err) {
		snprintf(err, cap, "cannot connect to Redis at %s:%d: %s", o->redis_host, o->redis_port,
			 rc ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	redisSetTimeout(rc, (struct timeval){ LD_PUB_IO_TIMEOUT_S, 0 });
	r = redisCommand(rc, "PING");
	if (!r || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, cap, "Redis at %s:%d does not answer PING: %s", o->redis_host,
			 o->redis_port, r ? r->str : rc->errstr);
		if (r)
			freeReplyObject(r);
		redisFree(rc);
		return NULL;
	}
	freeReplyObject(r);
	return pub_new(rc, o);
}

void ld_pub_free(struct ld_pub *p)
{
	if (!p)
		return;
	redisFree(p->rc);
	free(p->seq);
	free(p->payload);
	free(p);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };
	nanosleep(&ts, NULL);
}

static void take_reply(struct ld_pub *p, redisReply *r, struct ld_pub_result *res)
{
	if (r->type == REDIS_REPLY_INTEGER)
		res->receivers += (uint64_t)r->integer;
	else if (r->type == REDIS_REPLY_ERROR)
		cm_warn("redis PUBLISH: %s", r->str);
	freeReplyObject(r);
	res->sent++;
	p->outstanding--;
}

/* Reads the replies that have arrived, without waiting for more (or, with
 * wait_ms > 0, waiting up to that long for all of them: -1 when some are
 * still missing then, res->unanswered says how many). The publisher never
 * blocks on a reply between batches: were Redis slow to answer (its core
 * busy), waiting would hold the next batch back and turn a steady rate into
 * bursts. */
static int read_replies(struct ld_pub *p, struct ld_pub_result *res, int wait_ms)
{
	uint64_t deadline = ld_now_ns() + (uint64_t)wait_ms * 1000000ULL;

	while (p->outstanding) {
		void *r = NULL;
		struct pollfd pfd = { .fd = p->rc->fd, .events = POLLIN };
		uint64_t now;
		int n;

		if (redisGetReplyFromReader(p->rc, &r) != REDIS_OK) {
			cm_error("redis: %s", p->rc->errstr);
			return -1;
		}
		if (r) {
			take_reply(p, r, res);
			continue;
		}
		now = ld_now_ns();
		if (wait_ms > 0 && now >= deadline) {
			cm_error("redis: %llu PUBLISH replies missing after %d ms",
				 (unsigned long long)p->outstanding, wait_ms);
			res->unanswered = p->outstanding;
			return -1;
		}
		n = poll(&pfd, 1, wait_ms > 0 ? (int)((deadline - now) / 1000000ULL) + 1 : 0);
		if (n < 0 && errno != EINTR) {
			cm_error("redis: poll: %s", strerror(errno));
			return -1;
		}
		if (n <= 0) {
			if (wait_ms > 0)
				continue; /* the deadline decides: a reply is never left for the next step */
			return 0; /* nothing more yet */
		}
		if (redisBufferRead(p->rc) != REDIS_OK) {
			cm_error("redis: %s", p->rc->errstr);
			return -1;
		}
	}
	return 0;
}

/* Sends n PUBLISH commands in one pipelined write, given up after hard_ns
 * (-1); their replies are read as they come (read_replies). */
static int publish_batch(struct ld_pub *p, const struct ld_opts *o, unsigned step, uint64_t n,
			 uint64_t hard_ns, uint32_t *published, struct ld_pub_result *res)
{
	char chan[256];
	int done = 0;

	for (uint64_t i = 0; i < n; i++) {
		unsigned s = p->rr;
		struct ld_payload pl;
		size_t len;
		int cl;

		p->rr = (p->rr + 1) % p->streams;
		pl.step = step;
		pl.stream = s;
		pl.seq = ++p->seq[s];
		pl.send_ns = ld_now_ns();
		len = ld_payload_encode(p->payload, p->payload_cap, o->payload, &pl);
		cl = snprintf(chan, sizeof(chan), "%s:stream:%s.%u", o->redis_prefix, o->stream_prefix, s);
		if (redisAppendCommand(p->rc, "PUBLISH %b %b", chan, (size_t)cl, p->payload, len) != REDIS_OK) {
			cm_error("redis: %s", p->rc->errstr);
			return -1;
		}
		published[s]++;
	}
	/* a blocking socket: this returns once the batch is in the kernel.
	 * Each write may wait up to the socket's timeout and come back having
	 * written part of it; a Redis that keeps taking a little at a time is
	 * given up at the step's hard end, so that a step stays within
	 * ld_pub_step_max_s */
	while (!done) {
		if (ld_now_ns() > hard_ns) {
			cm_error("redis: still taking one batch of PUBLISH commands at the step's hard end");
			return -1;
		}
		if (redisBufferWrite(p->rc, &done) != REDIS_OK) {
			cm_error("redis: %s", p->rc->errstr);
			return -1;
		}
	}
	p->outstanding += n;
	return read_replies(p, res, 0);
}

/* How long past its time a step may go on sending when Redis is slow. */
static double overrun_s(double seconds)
{
	return seconds > 5 ? seconds : 5;
}

int ld_pub_step(struct ld_pub *p, const struct ld_opts *o, unsigned step, double rate,
		double seconds, uint32_t *published, void (*idle)(void *), void *arg,
		volatile int *stop, struct ld_pub_result *res)
{
	uint64_t start = ld_now_ns(), total = (uint64_t)(rate * seconds + 0.5), sent = 0;
	uint64_t end_ns = start + (uint64_t)(seconds * 1e9);

	memset(res, 0, sizeof(*res));
	/* the last step collected its replies, or failed and ended the run */
	CM_ASSERT(p->outstanding == 0);
	/* bounded even when Redis cannot keep up: the step's time plus as much
	 * again (at least 5 s), then what was not sent is not sent */
	uint64_t hard_ns = end_ns + (uint64_t)(overrun_s(seconds) * 1e9);

	while (sent < total && !*stop) {
		uint64_t now = ld_now_ns();
		if (now > hard_ns) {
			cm_warn("publisher: %llu of %llu messages not sent in time (Redis too slow?)",
				(unsigned long long)(total - sent), (unsigned long long)total);
			break;
		}
		double el = (double)(now - start) / 1e9;
		uint64_t due = (uint64_t)(rate * el);
		uint64_t n;

		if (due > total || now >= end_ns)
			due = total;
		if (due <= sent) {
			/* sleep until the next message is due, at most 1 ms */
			double next = (double)(sent + 1) / rate - el;
			uint64_t ns = next > 0.001 ? 1000000 : (uint64_t)(next * 1e9) + 1000;
			if (idle)
				idle(arg);
			sleep_ns(ns);
			continue;
		}
		n = due - sent;
		if (n > o->pipeline)
			n = o->pipeline;
		{
			/* the batch's oldest message, number sent + 1, was due
			 * at (sent + 1) / rate */
			double behind = (el - (double)(sent + 1) / rate) * 1000;
			if (behind > res->max_behind_ms)
				res->max_behind_ms = behind;
		}
		if (publish_batch(p, o, step, n, hard_ns, published, res) < 0)
			return -1;
		sent += n;
	}
	res->seconds = (double)(ld_now_ns() - start) / 1e9;
	/* every reply of the step, before its counts are read */
	return read_replies(p, res, LD_PUB_REPLY_WAIT_MS);
}

double ld_pub_step_max_s(double seconds)
{
	return seconds + overrun_s(seconds) + LD_PUB_IO_TIMEOUT_S + LD_PUB_REPLY_WAIT_MS / 1000.0;
}
