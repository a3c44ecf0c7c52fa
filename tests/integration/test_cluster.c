/* The whole cluster: real Redis, a real herald-router and three real
 * herald-gateways; WebSocket clients on every gateway. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "tests/integration/lib/th_cluster.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(cluster, .init = th_setup, .fini = th_teardown, .timeout = 120);

#define NGW 3

static struct th_proc *redis;
static struct th_router router;
static struct th_gw gws[NGW];
static char ids[NGW][16];

static void cluster_start(void)
{
	redis = th_redis_start();
	th_router_start(&router, redis->port, NULL);
	for (int i = 0; i < NGW; i++) {
		struct th_gw_opts o = { .redis_port = redis->port, .threads = 2 };
		snprintf(ids[i], sizeof(ids[i]), "gw-%d", i);
		o.id = ids[i];
		th_gw_start(&gws[i], &o);
	}
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == NGW, 5000),
		  "the router sees %d gateways", NGW);
}

static long long redis_publish(const char *chan, const void *p, size_t n)
{
	return th_redis_publish(redis->port, chan, p, n);
}

Test(cluster, publishes_reach_every_gateway_with_exact_bytes_and_contiguous_offsets)
{
	struct th_ws *cl[NGW][2];
	static const uint8_t binary[] = { 0xff, 0x00, 0xfe, 0x80, 'a', 0x00, 0xc3 };
	static const char nul_text[] = "nul\0inside \xc3\xa9";
	char buf[64];

	cluster_start();
	for (int i = 0; i < NGW; i++) {
		cl[i][0] = th_ws_open(gws[i].port, "/ws?user=j");
		cl[i][1] = th_ws_open(gws[i].port, "/ws?user=p&format=protobuf");
		for (int k = 0; k < 2; k++)
			cr_assert_eq(th_ws_subscribe(cl[i][k], "clan:7"), 0);
	}
	/* ok means live cluster-wide: everything published now arrives */
	cr_assert_eq(redis_publish("herald:stream:clan:7", "hello", 5), 1);
	redis_publish("herald:stream:clan:7", binary, sizeof(binary));
	redis_publish("herald:stream:clan:7", nul_text, sizeof(nul_text) - 1);
	for (int n = 4; n <= 40; n++) {
		int len = snprintf(buf, sizeof(buf), "message %d", n);
		redis_publish("herald:stream:clan:7", buf, (size_t)len);
	}
	redis_publish("herald:stream:other", "not subscribed", 14);
	for (int i = 0; i < NGW; i++)
		for (int k = 0; k < 2; k++) {
			struct th_ws *ws = cl[i][k];
			th_ws_expect_push(ws, "clan:7", 1, "hello", 5);
			th_ws_expect_push(ws, "clan:7", 2, binary, sizeof(binary));
			th_ws_expect_push(ws, "clan:7", 3, nul_text, sizeof(nul_text) - 1);
			for (int n = 4; n <= 40; n++) {
				int len = snprintf(buf, sizeof(buf), "message %d", n);
				th_ws_expect_push(ws, "clan:7", (uint64_t)n, buf, (size_t)len);
			}
		}
	th_ws_expect_no_push(cl[0][0], 200);
	/* every writer to Redis has replies off, and Redis honours it */
	cr_assert_eq(th_router_metric(&router, "herald_router_redis_dropped_reply_bytes_total", NULL), 0);
	for (int i = 0; i < NGW; i++)
		cr_assert_eq(th_gw_metric(&gws[i], "herald_gateway_cluster_redis_dropped_reply_bytes_total",
					  NULL), 0);
	for (int i = 0; i < NGW; i++)
		for (int k = 0; k < 2; k++)
			th_ws_free(cl[i][k]);
}

Test(cluster, users_everyone_and_inband_publish)
{
	struct th_ws *alice1, *alice2, *bob, *sub[NGW];

	cluster_start();
	alice1 = th_ws_open(gws[0].port, "/ws?user=alice");
	alice2 = th_ws_open(gws[2].port, "/ws?user=alice&format=protobuf");
	bob = th_ws_open(gws[1].port, "/ws?user=bob");
	for (int i = 0; i < NGW; i++) {
		sub[i] = th_ws_open(gws[i].port, "/ws?user=s");
		cr_assert_eq(th_ws_subscribe(sub[i], "room"), 0);
	}
	/* presence is announced without an ack: wait until the router has it */
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_router_users", NULL) >= 3, 5000));
	redis_publish("herald:user:alice", "dm \x01\x00\xff", 7);
	redis_publish("herald:user:alice", "second", 6);
	redis_publish("herald:user:bob", "for bob", 7);
	th_ws_expect_push(alice1, "user:alice", 1, "dm \x01\x00\xff", 7);
	th_ws_expect_push(alice1, "user:alice", 2, "second", 6);
	th_ws_expect_push(alice2, "user:alice", 1, "dm \x01\x00\xff", 7);
	th_ws_expect_push(alice2, "user:alice", 2, "second", 6);
	th_ws_expect_push(bob, "user:bob", 1, "for bob", 7);

	redis_publish("herald:all", "to everyone", 11);
	th_ws_expect_push(alice1, "*", 0, "to everyone", 11);
	th_ws_expect_push(alice2, "*", 0, "to everyone", 11);
	th_ws_expect_push(bob, "*", 0, "to everyone", 11);
	for (int i = 0; i < NGW; i++)
		th_ws_expect_push(sub[i], "*", 0, "to everyone", 11);

	/* a client's publish on gateway 1 reaches the subscribers of all */
	cr_assert_eq(th_ws_publish(bob, "room", "in-band \xe2\x82\xac", 11), 0);
	for (int i = 0; i < NGW; i++)
		th_ws_expect_push(sub[i], "room", 1, "in-band \xe2\x82\xac", 11);
	th_ws_expect_no_push(bob, 200);
	th_ws_free(alice1);
	th_ws_free(alice2);
	th_ws_free(bob);
	for (int i = 0; i < NGW; i++)
		th_ws_free(sub[i]);
}

static bool ccu_is(int i, long long want)
{
	return th_router_gw_ccu(&router, ids[i]) == want && th_ccu_hash(redis->port, ids[i]) == want;
}

Test(cluster, ccu_per_gateway_follows_connects_and_disconnects)
{
	struct th_ws *c[6];

	cluster_start();
	for (int i = 0; i < 4; i++)
		c[i] = th_ws_open(gws[0].port, "/ws?user=x");
	c[4] = th_ws_open(gws[1].port, "/ws?user=y");
	c[5] = th_ws_open(gws[1].port, "/ws?user=z");
	cr_assert(TH_WAIT(ccu_is(0, 4) && ccu_is(1, 2) && ccu_is(2, 0), 5000),
		  "ccu %lld %lld %lld", th_router_gw_ccu(&router, ids[0]),
		  th_router_gw_ccu(&router, ids[1]), th_router_gw_ccu(&router, ids[2]));
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_cluster_ccu", NULL) == 6, 3000));
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_gateway_ccu", "gw-0") == 4, 3000));
	th_ws_free(c[0]);
	th_ws_free(c[1]);
	th_ws_free(c[4]);
	cr_assert(TH_WAIT(ccu_is(0, 2) && ccu_is(1, 1) && ccu_is(2, 0), 5000));
	for (int i = 2; i < 6; i++)
		if (i != 4)
			th_ws_free(c[i]);
	cr_assert(TH_WAIT(ccu_is(0, 0) && ccu_is(1, 0), 5000));
}

Test(cluster, a_killed_gateway_leaves_the_tables_within_5s)
{
	struct th_ws *c;
	struct th_gwrow rows[8];
	int64_t t0;
	int n;

	cluster_start();
	c = th_ws_open(gws[1].port, "/ws?user=x");
	cr_assert(TH_WAIT(ccu_is(1, 1), 5000));
	th_kill9(gws[1].proc);
	t0 = th_now_ms();
	/* 5 s is the contract; the deadline adds polling slack only */
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == NGW - 1 &&
			  th_ccu_hash(redis->port, ids[1]) == -1, 5500),
		  "gateway still listed after %lld ms", (long long)(th_now_ms() - t0));
	cr_log_info("killed gateway dropped after %lld ms", (long long)(th_now_ms() - t0));
	n = th_router_gateways(&router, rows, 8);
	cr_assert_eq(n, NGW - 1);
	for (int i = 0; i < n; i++)
		cr_assert_str_neq(rows[i].id, ids[1]);
	th_ws_free(c);
}

/* Publishes on stream until ws gets a push (each try numbered in the
 * payload); returns the push's offset. */
static uint64_t publish_until_delivered(struct th_ws *ws, const char *stream, int timeout_ms)
{
	char chan[64], buf[32];
	int64_t dl = th_now_ms() + timeout_ms;
	struct cm_smsg m;

	snprintf(chan, sizeof(chan), "herald:stream:%s", stream);
	while (th_now_ms() < dl) {
		int len = snprintf(buf, sizeof(buf), "probe");
		redis_publish(chan, buf, (size_t)len);
		if (th_ws_next_push(ws, &m, 50) == 1) {
			uint64_t off = m.offset;
			cr_assert_str_eq(m.stream, stream);
			cm_smsg_release(&m);
			return off;
		}
	}
	return 0;
}

static bool cluster_in_sync(void)
{
	struct th_gwrow rows[8];
	int n = th_router_gateways(&router, rows, 8);
	if (n != NGW)
		return false;
	for (int i = 0; i < n; i++)
		if (strcmp(rows[i].state, "up"))
			return false;
	for (int i = 0; i < NGW; i++)
		if (th_gw_metric(&gws[i], "herald_gateway_cluster_up", NULL) != 1)
			return false;
	return true;
}

/* After a restart: every client still connected, deliveries resume above
 * the offsets seen before, never go back, and once everything is in sync
 * every client gets the next message with the same offset. */
static void check_recovery(struct th_ws **c, uint64_t last_before, const char *what)
{
	int64_t t0 = th_now_ms();
	uint64_t first = publish_until_delivered(c[0], "s", 5000), last[NGW];
	struct cm_smsg m;

	cr_assert(first > last_before, "%s: delivery did not resume (offset %llu, before %llu)",
		  what, (unsigned long long)first, (unsigned long long)last_before);
	cr_log_info("%s: delivery back after %lld ms", what, (long long)(th_now_ms() - t0));
	cr_assert(TH_WAIT(cluster_in_sync(), 5000), "%s: cluster not back in sync", what);
	last[0] = first;
	for (int i = 0; i < NGW; i++) {
		if (i)
			last[i] = last_before;
		while (th_ws_next_push(c[i], &m, 300) == 1) {
			cr_assert(m.offset > last[i], "%s: offsets went back", what);
			last[i] = m.offset;
			cm_smsg_release(&m);
		}
	}
	redis_publish("herald:stream:s", "next", 4);
	cr_assert_eq(th_ws_next_push(c[0], &m, 5000), 1);
	uint64_t off = m.offset;
	cm_smsg_release(&m);
	for (int i = 0; i < NGW; i++) {
		cr_assert(off > last[i]);
		if (i)
			th_ws_expect_push(c[i], "s", off, "next", 4);
	}
	for (int i = 0; i < NGW; i++)
		cr_assert_not(c[i]->eof || c[i]->got_close, "%s: client %d was disconnected", what, i);
}

Test(cluster, router_restart_keeps_clients_and_offsets)
{
	struct th_ws *c[NGW];

	cluster_start();
	for (int i = 0; i < NGW; i++) {
		c[i] = th_ws_open(gws[i].port, "/ws?user=x");
		cr_assert_eq(th_ws_subscribe(c[i], "s"), 0);
	}
	for (int n = 1; n <= 5; n++)
		redis_publish("herald:stream:s", "before", 6);
	for (int i = 0; i < NGW; i++)
		for (int n = 1; n <= 5; n++)
			th_ws_expect_push(c[i], "s", (uint64_t)n, "before", 6);
	th_kill9(router.proc);
	th_restart(router.proc);
	cr_assert(th_wait_http_200(router.admin_port, "/api/gateways", 5000) == 0);
	check_recovery(c, 5, "router restart");
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == NGW, 3000));
	for (int i = 0; i < NGW; i++)
		th_ws_free(c[i]);
}

Test(cluster, redis_restart_keeps_clients)
{
	struct th_ws *c[NGW];

	cluster_start();
	for (int i = 0; i < NGW; i++) {
		c[i] = th_ws_open(gws[i].port, "/ws?user=x");
		cr_assert_eq(th_ws_subscribe(c[i], "s"), 0);
	}
	redis_publish("herald:stream:s", "before", 6);
	for (int i = 0; i < NGW; i++)
		th_ws_expect_push(c[i], "s", 1, "before", 6);
	th_kill9(redis);
	th_sleep_ms(300); /* Redis away for a while (not an assertion) */
	th_restart(redis);
	cr_assert(th_wait_port(redis->port, 5000) == 0);
	check_recovery(c, 1, "redis restart");
	for (int i = 0; i < NGW; i++)
		th_ws_free(c[i]);
}

Test(cluster, malformed_frames_are_counted_and_dropped)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	struct th_ws *c;

	cluster_start();
	c = th_ws_open(gws[0].port, "/ws?user=x");
	cr_assert_eq(th_ws_subscribe(c, "s"), 0);
	redis_publish("herald:router", junk, sizeof(junk));
	redis_publish("herald:router", "\x0a\xff", 2);
	redis_publish("herald:gw:gw-0", junk, sizeof(junk));
	redis_publish("herald:gw:gw-0", "\x08", 1);
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_router_bad_frames_total", NULL) == 2, 3000));
	cr_assert(TH_WAIT(th_gw_metric(&gws[0], "herald_gateway_cluster_frames_bad_total", NULL) == 2,
			  3000));
	redis_publish("herald:stream:s", "still fine", 10);
	th_ws_expect_push(c, "s", 1, "still fine", 10);
	cr_assert(th_alive(router.proc) && th_alive(gws[0].proc));
	th_ws_free(c);
}

/* A subscribe still waiting for the router's ack, then an unsubscribe of the
 * same stream: every command gets its reply, the subscribe's too. Without a
 * router the ack never comes, so the subscribe waits for as long as the test
 * looks; then the same with the router there, pipelined. */
Test(cluster, a_subscribe_cancelled_while_pending_is_still_answered)
{
	struct th_ws *c;
	int64_t sid, uid;

	redis = th_redis_start();
	{
		struct th_gw_opts o = { .redis_port = redis->port, .threads = 2, .id = "gw-0" };
		th_gw_start(&gws[0], &o);
	}
	c = th_ws_open(gws[0].port, "/ws?user=x");
	sid = th_ws_send_command(c, CM_CMD_SUBSCRIBE, "s", NULL, 0);
	uid = th_ws_send_command(c, CM_CMD_UNSUBSCRIBE, "s", NULL, 0);
	cr_assert(sid > 0 && uid > 0);
	cr_assert_eq(th_ws_wait_reply(c, (uint64_t)uid, NULL, 3000), 0);
	cr_assert_neq(th_ws_wait_reply(c, (uint64_t)sid, NULL, 3000), -1,
		      "the subscribe got no reply");

	th_router_start(&router, redis->port, NULL);
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == 1, 5000));
	sid = th_ws_send_command(c, CM_CMD_SUBSCRIBE, "t", NULL, 0);
	uid = th_ws_send_command(c, CM_CMD_UNSUBSCRIBE, "t", NULL, 0);
	cr_assert_eq(th_ws_wait_reply(c, (uint64_t)uid, NULL, 3000), 0);
	cr_assert_neq(th_ws_wait_reply(c, (uint64_t)sid, NULL, 3000), -1,
		      "the subscribe got no reply");
	/* and the stream works as ever afterwards */
	cr_assert_eq(th_ws_subscribe(c, "s"), 0);
	redis_publish("herald:stream:s", "after", 5);
	th_ws_expect_push(c, "s", 1, "after", 5);
	th_ws_free(c);
}
