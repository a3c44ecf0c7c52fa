/* cm_redis (hiredis on the io_uring loop) against a real redis-server:
 * pipelined commands, bursts larger than one read, reconnect with backoff,
 * connect timeout. */
#include <criterion/criterion.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_loop.h"
#include "cm_redis.h"
#include "tests/integration/lib/th_proc.h"

TestSuite(cluster_redis, .init = th_setup, .fini = th_teardown, .timeout = 60);

static struct cm_loop *loop;

static void stop_loop(void *arg)
{
	cm_loop_stop(arg);
}

static void run_for(int ms)
{
	cm_timer_start(loop, (uint64_t)ms, false, stop_loop, loop);
	cm_loop_run(loop);
}

#define PUMP(expr, ms)                                                  \
	({                                                              \
		uint64_t dl_ = cm_now_ms() + (ms);                      \
		bool ok_ = false;                                       \
		for (;;) {                                              \
			if (expr) { ok_ = true; break; }                \
			if (cm_now_ms() >= dl_) break;                  \
			run_for(5);                                     \
		}                                                       \
		ok_;                                                    \
	})

struct client {
	struct cm_redis *r;
	int ups, downs;
	long long replies, sum, asked;
	long long messages;
	size_t bytes;
	bool bad;
};

static void on_up(void *arg, redisAsyncContext *ac)
{
	struct client *c = arg;
	(void)ac;
	c->ups++;
}

static void on_down(void *arg)
{
	((struct client *)arg)->downs++;
}

static const struct cm_redis_cbs cbs = { .up = on_up, .down = on_down };

static void on_incr(redisAsyncContext *ac, void *reply, void *priv)
{
	struct client *c = priv;
	redisReply *r = reply;
	(void)ac;
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		c->bad = true;
		return;
	}
	c->replies++;
	c->sum = r->integer;
}

Test(cluster_redis, pipelines_many_commands_in_one_turn)
{
	struct th_proc *redis = th_redis_start();
	struct client c = { 0 };

	loop = cm_loop_new(64);
	c.r = cm_redis_new(loop, "127.0.0.1", redis->port, "test", &cbs, &c);
	cr_assert(PUMP(cm_redis_up(c.r), 3000));
	/* 20000 commands issued without returning to the loop */
	for (int i = 0; i < 20000; i++)
		redisAsyncCommand(cm_redis_ctx(c.r), on_incr, &c, "INCR k");
	cr_assert_gt(cm_redis_pending(cm_redis_ctx(c.r)), 20000 * 10, "buffered, not written yet");
	cr_assert(PUMP(c.replies == 20000, 5000), "replies %lld", c.replies);
	cr_assert_eq(c.sum, 20000, "in order: the last reply is the last INCR");
	cr_assert_not(c.bad);
	cr_assert_eq(cm_redis_pending(cm_redis_ctx(c.r)), 0);
	cm_redis_free(c.r);
	run_for(5);
}

static void up_reply_off(void *arg, redisAsyncContext *ac)
{
	((struct client *)arg)->ups++;
	cr_assert_eq(cm_redis_reply_off(ac), 0);
}

static const struct cm_redis_cbs off_cbs = { .up = up_reply_off, .down = on_down };

/* True once the counter k reads want; asks again whenever the last ask
 * was answered. */
static bool counter_is(struct client *c, long long want)
{
	if (c->replies == c->asked && c->sum != want) {
		redisAsyncCommand(cm_redis_ctx(c->r), on_incr, c, "INCRBY k 0");
		c->asked++;
	}
	return c->replies == c->asked && c->sum == want;
}

/* Written and forgotten (the router's deliveries): with replies off, 20000
 * commands arrive in order and nothing comes back, not even the error of a
 * command that fails, which hiredis would take as a protocol error. */
static const char incr_k[] = "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n";

/* A fresh Redis, a reply-off writer w and a plain checker rd, both up; the
 * writer's context. */
static redisAsyncContext *writer_and_checker(struct client *w, struct client *rd)
{
	struct th_proc *redis = th_redis_start();

	loop = cm_loop_new(64);
	w->r = cm_redis_new(loop, "127.0.0.1", redis->port, "out", &off_cbs, w);
	rd->r = cm_redis_new(loop, "127.0.0.1", redis->port, "check", &cbs, rd);
	cr_assert(PUMP(cm_redis_up(w->r) && cm_redis_up(rd->r), 3000));
	return cm_redis_ctx(w->r);
}

Test(cluster_redis, fire_and_forget_writes_with_replies_off)
{
	static const char set_s[] = "*3\r\n$3\r\nSET\r\n$1\r\ns\r\n$1\r\nx\r\n";
	static const char bad[] = "*2\r\n$4\r\nINCR\r\n$1\r\ns\r\n"; /* WRONGTYPE */
	struct client w = { 0 }, rd = { 0 };
	redisAsyncContext *ac = writer_and_checker(&w, &rd);

	cr_assert_eq(cm_redis_send_noreply(ac, set_s, sizeof(set_s) - 1), 0);
	cr_assert_eq(cm_redis_send_noreply(ac, bad, sizeof(bad) - 1), 0);
	for (int i = 0; i < 20000; i++)
		cr_assert_eq(cm_redis_send_noreply(ac, incr_k, sizeof(incr_k) - 1), 0);
	cr_assert_gt(cm_redis_pending(ac), 20000 * 10, "buffered, not written yet");
	cr_assert(PUMP(counter_is(&rd, 20000), 5000), "counter %lld", rd.sum);
	run_for(200);
	cr_assert_eq(cm_redis_pending(ac), 0);
	cr_assert_eq(cm_redis_dropped(w.r), 0, "Redis replied: %llu bytes",
		     (unsigned long long)cm_redis_dropped(w.r));
	cr_assert(cm_redis_up(w.r) && w.ups == 1 && w.downs == 0,
		  "the write connection dropped (ups %d, downs %d)", w.ups, w.downs);
	cr_assert_not(rd.bad);
	cm_redis_free(w.r);
	cm_redis_free(rd.r);
	run_for(5);
}

/* A server that answers anyway (here: told CLIENT REPLY ON behind the
 * client's back) costs dropped bytes, not the process or the connection. */
Test(cluster_redis, replies_on_a_reply_off_connection_are_dropped)
{
	static const char on[] = "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n";
	struct client w = { 0 }, rd = { 0 };
	redisAsyncContext *ac = writer_and_checker(&w, &rd);

	cr_assert_eq(cm_redis_send_noreply(ac, on, sizeof(on) - 1), 0);
	for (int i = 0; i < 5000; i++)
		cr_assert_eq(cm_redis_send_noreply(ac, incr_k, sizeof(incr_k) - 1), 0);
	cr_assert(PUMP(counter_is(&rd, 5000), 5000), "counter %lld", rd.sum);
	/* "+OK" and 5000 integer replies, ":1" to ":5000" */
	cr_assert(PUMP(cm_redis_dropped(w.r) >= 5 + 5000 * 4, 3000), "dropped %llu",
		  (unsigned long long)cm_redis_dropped(w.r));
	cr_assert(cm_redis_up(w.r) && w.downs == 0);
	cr_assert_geq(cm_redis_dropped(w.r), 5 + 5000 * 4, "the client's count");
	cm_redis_free(w.r);
	cm_redis_free(rd.r);
	run_for(5);
}

static void on_msg(redisAsyncContext *ac, void *reply, void *priv)
{
	struct client *c = priv;
	redisReply *r = reply;
	(void)ac;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
		return;
	if (!strcmp(r->element[0]->str, "message")) {
		c->messages++;
		c->bytes += r->element[2]->len;
	}
}

static void sub_up(void *arg, redisAsyncContext *ac)
{
	struct client *c = arg;
	c->ups++;
	redisAsyncCommand(ac, on_msg, c, "SUBSCRIBE ch");
}

Test(cluster_redis, reads_bursts_far_larger_than_one_read)
{
	struct th_proc *redis = th_redis_start();
	struct client c = { 0 };
	const struct cm_redis_cbs scbs = { .up = sub_up };
	redisContext *pub;
	static char big[1 << 20];

	loop = cm_loop_new(64);
	c.r = cm_redis_new(loop, "127.0.0.1", redis->port, "sub", &scbs, &c);
	cr_assert(PUMP(cm_redis_up(c.r), 3000));
	cr_assert(TH_WAIT(({
		redisReply *n = th_redis_cmd(redis->port, "PUBSUB NUMSUB ch");
		bool one = n && n->elements == 2 && n->element[1]->integer == 1;
		if (n)
			freeReplyObject(n);
		one; }), 3000));
	/* While our loop is not running, queue ~6 MiB on the socket; one
	 * readiness event must drain all of it (the watcher is edge-like). */
	pub = redisConnect("127.0.0.1", redis->port);
	cr_assert(pub && !pub->err);
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 5; i++)
		redisAppendCommand(pub, "PUBLISH ch %b", big, sizeof(big));
	for (int i = 0; i < 20000; i++)
		redisAppendCommand(pub, "PUBLISH ch small-%d", i);
	for (int i = 0; i < 20005; i++) {
		redisReply *r;
		cr_assert_eq(redisGetReply(pub, (void **)&r), REDIS_OK);
		freeReplyObject(r);
	}
	redisFree(pub);
	cr_assert(PUMP(c.messages == 20005, 5000), "messages %lld", c.messages);
	cr_assert_gt(c.bytes, 5u << 20);
	cm_redis_free(c.r);
	run_for(5);
}

Test(cluster_redis, reconnects_with_backoff_when_redis_returns)
{
	struct th_proc *redis = th_redis_start();
	struct client c = { 0 };

	loop = cm_loop_new(64);
	c.r = cm_redis_new(loop, "127.0.0.1", redis->port, "test", &cbs, &c);
	cr_assert(PUMP(c.ups == 1, 3000));
	th_kill9(redis);
	cr_assert(PUMP(c.downs == 1 && !cm_redis_up(c.r), 3000));
	run_for(1500); /* several failed attempts while Redis is away */
	cr_assert_eq(c.ups, 1);
	th_restart(redis);
	cr_assert(th_wait_port(redis->port, 5000) == 0);
	uint64_t t0 = cm_now_ms();
	cr_assert(PUMP(c.ups == 2, 3000), "no reconnect");
	cr_log_info("reconnected %llu ms after Redis accepted", (unsigned long long)(cm_now_ms() - t0));
	cr_assert_eq(cm_redis_reconnects(c.r), 1);
	redisAsyncCommand(cm_redis_ctx(c.r), on_incr, &c, "INCR k");
	cr_assert(PUMP(c.replies == 1, 3000));
	cm_redis_free(c.r);
	run_for(5);
}

Test(cluster_redis, a_silent_host_times_out_and_is_retried)
{
	struct client c = { 0 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), fill[8];

	/* A listener that never accepts, its queue full: SYNs go unanswered. */
	cr_assert(l >= 0);
	cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(l, 0), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
	for (int i = 0; i < 8; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
	}
	loop = cm_loop_new(64);
	c.r = cm_redis_new(loop, "127.0.0.1", ntohs(sa.sin_port), "silent", &cbs, &c);
	run_for(4500); /* a 2 s connect timeout, then retries */
	cr_assert_eq(c.ups, 0);
	cr_assert_not(cm_redis_up(c.r));
	cm_redis_free(c.r);
	run_for(5);
	for (int i = 0; i < 8; i++)
		close(fill[i]);
	close(l);
}
