/* The relay without Redis: gateway events in, captured Redis commands out. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cm_loop.h"
#include "proto/cluster.pb-c.h"
#include "router/rt_router.h"

struct cmd {
	int argc;
	char *argv[64];
	size_t len[64];
};

static struct cmd cmds[256];
static int ncmds;
static struct cm_loop *loop;
static struct rt_router *r;

static void capture(void *arg, const char *p, size_t n)
{
	static struct cmd spill;
	/* Past the last slot, commands are parsed (checked) and dropped. */
	struct cmd *c = ncmds < 255 ? &cmds[ncmds++] : &spill;
	const char *end = p + n;
	(void)arg;
	cr_assert_eq(*p, '*');
	c->argc = (int)strtol(p + 1, (char **)&p, 10);
	p += 2;
	for (int i = 0; i < c->argc; i++) {
		size_t len;
		cr_assert_eq(*p, '$');
		len = strtoul(p + 1, (char **)&p, 10);
		p += 2;
		if (i < 64) {
			c->argv[i] = malloc(len + 1);
			memcpy(c->argv[i], p, len);
			c->argv[i][len] = 0;
			c->len[i] = len;
		}
		p += len;
		cr_assert(p[0] == '\r' && p[1] == '\n');
		p += 2;
	}
	cr_assert_eq(p, end, "one command exactly");
	if (c->argc > 64)
		c->argc = 64;
	if (c == &spill)
		for (int i = 0; i < c->argc; i++)
			free(c->argv[i]);
}

static void clear_cmds(void)
{
	for (int i = 0; i < ncmds; i++)
		for (int j = 0; j < cmds[i].argc; j++)
			free(cmds[i].argv[j]);
	ncmds = 0;
}

static void setup(void)
{
	struct rt_opts o = {
		.prefix = "herald", .no_redis = true, .send = capture,
		.gateway_timeout_ms = 5000,
	};
	loop = cm_loop_new(8);
	r = rt_router_new(loop, &o);
}

static void teardown(void)
{
	clear_cmds();
	rt_router_free(r);
	cm_loop_free(loop);
}

TestSuite(rt_router, .init = setup, .fini = teardown);

static void event(Herald__Cluster__GatewayEvent *ev, const char *id, uint64_t boot)
{
	uint8_t buf[4096];
	size_t n;
	ev->version = 1;
	ev->gateway_id.data = (uint8_t *)id;
	ev->gateway_id.len = strlen(id);
	ev->boot_id = boot;
	n = herald__cluster__gateway_event__pack(ev, buf);
	rt_router_gateway_event(r, buf, n);
}

static void heartbeat(const char *id, uint64_t ccu)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Heartbeat hb = HERALD__CLUSTER__HEARTBEAT__INIT;
	hb.ccu = ccu;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HEARTBEAT;
	ev.heartbeat = &hb;
	event(&ev, id, 1);
}

static void interest(const char *id, const char *stream, bool add, uint64_t req)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Interest in = HERALD__CLUSTER__INTEREST__INIT;
	in.stream.data = (uint8_t *)stream;
	in.stream.len = strlen(stream);
	in.add = add;
	in.request_id = req;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST;
	ev.interest = &in;
	event(&ev, id, 1);
}

static void user(const char *id, const char *uid, bool online)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__UserPresence u = HERALD__CLUSTER__USER_PRESENCE__INIT;
	u.uid.data = (uint8_t *)uid;
	u.uid.len = strlen(uid);
	u.online = online;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_USER;
	ev.user = &u;
	event(&ev, id, 1);
}

static void answer(const char *id, uint64_t epoch, const char **streams, size_t n, bool done)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__ResyncAnswer ra = HERALD__CLUSTER__RESYNC_ANSWER__INIT;
	ProtobufCBinaryData v[16];
	for (size_t i = 0; i < n; i++) {
		v[i].data = (uint8_t *)streams[i];
		v[i].len = strlen(streams[i]);
	}
	ra.epoch = epoch;
	ra.streams = v;
	ra.n_streams = n;
	ra.done = done;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_RESYNC_ANSWER;
	ev.resync_answer = &ra;
	event(&ev, id, 1);
}

/* The RouterMessages published to herald:gw:<id> among the captured commands
 * (unpacked; free with free_msgs). */
static int msgs_for(const char *id, Herald__Cluster__RouterMessage **out, int max)
{
	char chan[128];
	int n = 0;
	snprintf(chan, sizeof(chan), "herald:gw:%s", id);
	for (int i = 0; i < ncmds && n < max; i++) {
		if (strcmp(cmds[i].argv[0], "PUBLISH") || strcmp(cmds[i].argv[1], chan))
			continue;
		out[n] = herald__cluster__router_message__unpack(NULL, cmds[i].len[2],
								 (uint8_t *)cmds[i].argv[2]);
		cr_assert_not_null(out[n], "frames decode with protobuf-c");
		cr_assert_eq(out[n]->version, 1);
		cr_assert_eq(out[n]->router_boot_id, rt_router_boot_id(r));
		n++;
	}
	return n;
}

static void free_msgs(Herald__Cluster__RouterMessage **m, int n)
{
	for (int i = 0; i < n; i++)
		herald__cluster__router_message__free_unpacked(m[i], NULL);
}

static int find_cmd(const char *name, int from)
{
	for (int i = from; i < ncmds; i++)
		if (!strcmp(cmds[i].argv[0], name))
			return i;
	return -1;
}

/* A gateway that joined and finished its first resync. */
static void join(const char *id)
{
	Herald__Cluster__RouterMessage *m[8];
	int n;
	heartbeat(id, 0);
	rt_router_flush(r);
	n = msgs_for(id, m, 8);
	cr_assert_eq(n, 1);
	cr_assert_not_null(m[0]->resync_request, "an unknown gateway is asked to resync");
	answer(id, m[0]->resync_request->epoch, NULL, 0, true);
	free_msgs(m, n);
	clear_cmds();
}

Test(rt_router, one_frame_per_gateway_per_turn_with_contiguous_offsets)
{
	Herald__Cluster__RouterMessage *m[8];
	static const uint8_t bin[] = { 0x00, 0xff, 0xfe, 'a', 0x00, 0x80 };

	join("A");
	join("B");
	join("C");
	struct rt_stats st;
	uint64_t batches0;
	rt_router_stats(r, &st);
	batches0 = st.batches;
	interest("A", "s", true, 0);
	interest("B", "s", true, 0);
	rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, bin, sizeof(bin));
	rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, (const uint8_t *)"two", 3);
	rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, (const uint8_t *)"", 0);
	rt_router_flush(r);
	for (const char *id = "A"; *id <= 'B'; id = *id == 'A' ? "B" : "Z") {
		int n = msgs_for(id, m, 8);
		cr_assert_eq(n, 1, "one PUBLISH for gateway %s", id);
		cr_assert_eq(m[0]->n_deliveries, 3);
		for (size_t i = 0; i < 3; i++) {
			cr_assert_eq(m[0]->deliveries[i]->kind, HERALD__CLUSTER__DELIVERY__KIND__STREAM);
			cr_assert_eq(m[0]->deliveries[i]->offset, i + 1);
			cr_assert_eq(m[0]->deliveries[i]->name.len, 1);
		}
		cr_assert_eq(m[0]->deliveries[0]->data.len, sizeof(bin));
		cr_assert(!memcmp(m[0]->deliveries[0]->data.data, bin, sizeof(bin)));
		cr_assert_eq(m[0]->deliveries[2]->data.len, 0);
		free_msgs(m, n);
	}
	cr_assert_eq(msgs_for("C", m, 8), 0, "a gateway not holding the stream gets nothing");
	/* The offsets are saved before the deliveries that carry them. */
	int h = find_cmd("HSET", 0), p = find_cmd("PUBLISH", 0);
	cr_assert(h >= 0 && p > h);
	cr_assert_str_eq(cmds[h].argv[1], "herald:offsets");
	cr_assert_str_eq(cmds[h].argv[2], "s");
	cr_assert_str_eq(cmds[h].argv[3], "3");

	rt_router_stats(r, &st);
	cr_assert_eq(st.publishes_in, 3);
	cr_assert_eq(st.deliveries_out, 6);
	cr_assert_eq(st.batches - batches0, 2);
}

Test(rt_router, publishes_without_holders_are_dropped_without_numbering)
{
	Herald__Cluster__RouterMessage *m[8];
	struct rt_stats st;

	join("A");
	rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, (const uint8_t *)"x", 1);
	rt_router_flush(r);
	cr_assert_eq(ncmds, 0);
	rt_router_stats(r, &st);
	cr_assert_eq(st.dropped_no_holder, 1);
	interest("A", "s", true, 0);
	rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, (const uint8_t *)"x", 1);
	rt_router_flush(r);
	cr_assert_eq(msgs_for("A", m, 8), 1);
	cr_assert_eq(m[0]->deliveries[0]->offset, 1);
	free_msgs(m, 1);
}

Test(rt_router, interest_is_acknowledged_after_it_is_recorded)
{
	Herald__Cluster__RouterMessage *m[8];

	join("A");
	interest("A", "s", true, 41);
	interest("A", "t", true, 42);
	rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, (const uint8_t *)"x", 1);
	rt_router_flush(r);
	cr_assert_eq(msgs_for("A", m, 8), 1);
	cr_assert_eq(m[0]->n_interest_acks, 2);
	cr_assert_eq(m[0]->interest_acks[0], 41);
	cr_assert_eq(m[0]->interest_acks[1], 42);
	cr_assert_eq(m[0]->n_deliveries, 1, "acks ride in the same frame as deliveries");
	free_msgs(m, 1);
	clear_cmds();
	interest("A", "s", false, 0);
	rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, (const uint8_t *)"x", 1);
	rt_router_flush(r);
	cr_assert_eq(ncmds, 0, "released: nothing delivered");
}

Test(rt_router, users_and_everyone)
{
	Herald__Cluster__RouterMessage *m[8];

	join("A");
	join("B");
	user("A", "u1", true);
	user("B", "u1", true);
	user("B", "u2", true);
	rt_router_publish(r, RT_DELIVER_USER, "u2", 2, (const uint8_t *)"dm", 2);
	rt_router_publish(r, RT_DELIVER_USER, "u1", 2, (const uint8_t *)"dm1", 3);
	rt_router_publish(r, RT_DELIVER_ALL, NULL, 0, (const uint8_t *)"hey", 3);
	rt_router_flush(r);
	cr_assert_eq(msgs_for("A", m, 8), 1);
	cr_assert_eq(m[0]->n_deliveries, 2);
	cr_assert_eq(m[0]->deliveries[0]->kind, HERALD__CLUSTER__DELIVERY__KIND__USER);
	cr_assert_eq(m[0]->deliveries[0]->offset, 1);
	cr_assert(m[0]->deliveries[0]->name.len == 2 && !memcmp(m[0]->deliveries[0]->name.data, "u1", 2));
	cr_assert_eq(m[0]->deliveries[1]->kind, HERALD__CLUSTER__DELIVERY__KIND__ALL);
	cr_assert_eq(m[0]->deliveries[1]->offset, 0);
	free_msgs(m, 1);
	cr_assert_eq(msgs_for("B", m, 8), 1);
	cr_assert_eq(m[0]->n_deliveries, 3);
	free_msgs(m, 1);
	/* user offsets are saved as user:<uid> */
	int h = find_cmd("HSET", 0);
	bool seen = false;
	for (int i = 2; i < cmds[h].argc; i += 2)
		seen |= !strcmp(cmds[h].argv[i], "user:u1");
	cr_assert(seen);
}

Test(rt_router, large_batches_are_split)
{
	Herald__Cluster__RouterMessage *m[64];
	static uint8_t payload[10000];
	uint64_t want = 1;
	int n;

	join("A");
	interest("A", "s", true, 0);
	for (int i = 0; i < 100; i++)
		rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, payload, sizeof(payload));
	rt_router_flush(r);
	n = msgs_for("A", m, 64);
	cr_assert(n >= 3 && n <= 5, "1 MB in frames of ~256 KiB: %d", n);
	for (int i = 0; i < n; i++)
		for (size_t j = 0; j < m[i]->n_deliveries; j++)
			cr_assert_eq(m[i]->deliveries[j]->offset, want++);
	cr_assert_eq(want, 101);
	/* every offset HSET precedes the frame that carries it */
	cr_assert_str_eq(cmds[0].argv[0], "HSET");
	free_msgs(m, n);
}

Test(rt_router, resync_answer_replaces_what_a_gateway_holds)
{
	Herald__Cluster__RouterMessage *m[8];
	const char *names[] = { "b", "c" };
	uint64_t epoch;

	join("A");
	interest("A", "a", true, 0);
	interest("A", "b", true, 0);
	/* A says hello again (its Redis reconnected): it is asked to resync */
	{
		Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
		Herald__Cluster__Hello h = HERALD__CLUSTER__HELLO__INIT;
		ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HELLO;
		ev.hello = &h;
		event(&ev, "A", 1);
	}
	rt_router_flush(r);
	cr_assert_eq(msgs_for("A", m, 8), 1);
	cr_assert_not_null(m[0]->resync_request);
	epoch = m[0]->resync_request->epoch;
	free_msgs(m, 1);
	answer("A", epoch - 1, names, 1, true); /* stale: ignored */
	cr_assert_eq(rt_table_get(rt_router_table(r), RT_STREAM, "a", 1)->nh, 1);
	answer("A", epoch, names, 1, false);
	answer("A", epoch, names + 1, 1, true);
	cr_assert_eq(rt_table_get(rt_router_table(r), RT_STREAM, "a", 1)->nh, 0);
	cr_assert_eq(rt_table_get(rt_router_table(r), RT_STREAM, "b", 1)->nh, 1);
	cr_assert_eq(rt_table_get(rt_router_table(r), RT_STREAM, "c", 1)->nh, 1);
}

Test(rt_router, a_restarted_gateway_loses_its_old_state)
{
	Herald__Cluster__RouterMessage *m[8];
	join("A");
	interest("A", "a", true, 0);
	{
		Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
		Herald__Cluster__Hello h = HERALD__CLUSTER__HELLO__INIT;
		ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HELLO;
		ev.hello = &h;
		event(&ev, "A", 2); /* new boot id */
	}
	cr_assert_eq(rt_table_get(rt_router_table(r), RT_STREAM, "a", 1)->nh, 0);
	rt_router_flush(r);
	cr_assert_eq(msgs_for("A", m, 8), 1);
	cr_assert_not_null(m[0]->resync_request);
	free_msgs(m, 1);
}

Test(rt_router, silent_gateways_expire_and_leave_the_ccu_hash)
{
	struct rt_stats st;
	int d;

	join("A");
	join("B");
	heartbeat("A", 7);
	heartbeat("B", 5);
	interest("A", "s", true, 0);
	rt_router_stats(r, &st);
	cr_assert_eq(st.cluster_ccu, 12);
	rt_router_expire(r, cm_loop_now(loop) + 4000);
	rt_router_stats(r, &st);
	cr_assert_eq(st.gateways, 2);
	rt_router_expire(r, cm_loop_now(loop) + 6000);
	rt_router_stats(r, &st);
	cr_assert_eq(st.gateways, 0);
	cr_assert_eq(st.cluster_ccu, 0);
	cr_assert_eq(rt_table_get(rt_router_table(r), RT_STREAM, "s", 1)->nh, 0);
	d = find_cmd("HDEL", 0);
	cr_assert(d >= 0);
	cr_assert_str_eq(cmds[d].argv[1], "herald:ccu");
	cr_assert(find_cmd("HDEL", d + 1) >= 0, "one HDEL per gateway");
}

/* herald:ccu is at most 1 s old (CONTRACT.md): a heartbeat that changes a
 * gateway's count writes its field at once, one that does not writes nothing
 * (the periodic refresh of every field is on_ccu_timer's). */
Test(rt_router, a_changed_ccu_reaches_the_hash_at_once)
{
	int h;

	join("A");
	join("B");
	clear_cmds();
	heartbeat("A", 7);
	h = find_cmd("HSET", 0);
	cr_assert(h >= 0, "no HSET for a changed ccu");
	cr_assert_eq(cmds[h].argc, 4);
	cr_assert_str_eq(cmds[h].argv[1], "herald:ccu");
	cr_assert_str_eq(cmds[h].argv[2], "A");
	cr_assert_str_eq(cmds[h].argv[3], "7");
	cr_assert_eq(find_cmd("HSET", h + 1), -1, "only the gateway that changed");
	clear_cmds();
	heartbeat("A", 7);
	heartbeat("B", 0);
	cr_assert_eq(find_cmd("HSET", 0), -1, "an unchanged ccu was written again");
	heartbeat("B", 3);
	h = find_cmd("HSET", 0);
	cr_assert(h >= 0 && !strcmp(cmds[h].argv[2], "B") && !strcmp(cmds[h].argv[3], "3"));
}

Test(rt_router, bye_drops_a_gateway_at_once)
{
	struct rt_stats st;
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Bye bye = HERALD__CLUSTER__BYE__INIT;

	join("A");
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_BYE;
	ev.bye = &bye;
	event(&ev, "A", 1);
	rt_router_stats(r, &st);
	cr_assert_eq(st.gateways, 0);
}

/* A restarted gateway's old process may say goodbye after its successor's
 * hello (two processes, two Redis connections: no order between them). */
Test(rt_router, a_bye_from_an_earlier_process_keeps_its_successor)
{
	struct rt_stats st;
	struct rt_gw *gw;
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Hello h = HERALD__CLUSTER__HELLO__INIT;
	Herald__Cluster__Bye bye = HERALD__CLUSTER__BYE__INIT;

	join("A");
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HELLO;
	ev.hello = &h;
	event(&ev, "A", 2); /* the new process */
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_BYE;
	ev.bye = &bye;
	event(&ev, "A", 1); /* the old one's late goodbye */
	rt_router_stats(r, &st);
	cr_assert_eq(st.gateways, 1, "a stale bye dropped the live gateway");
	gw = rt_gws_find(rt_router_gws(r), "A", 1);
	cr_assert_not_null(gw);
	cr_assert_eq(gw->boot_id, 2);
	event(&ev, "A", 2);
	rt_router_stats(r, &st);
	cr_assert_eq(st.gateways, 0, "the live process's bye drops it");
}

static void stop_loop(void *arg)
{
	cm_loop_stop(arg);
}

/* A restarted gateway's old process may also have a heartbeat on its way
 * when its successor's first event arrives: that straggler is not another
 * restart, which would drop the successor's streams until it resynced. A
 * second later the old boot id counts again (two live processes under one
 * id must still show up as restarts). */
Test(rt_router, an_event_of_the_replaced_process_does_not_restart_its_successor)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Heartbeat hb = HERALD__CLUSTER__HEARTBEAT__INIT;
	struct rt_gw *gw;

	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HEARTBEAT;
	ev.heartbeat = &hb;
	event(&ev, "A", 2);            /* the old process */
	join("A");                     /* its successor (boot 1) */
	interest("A", "a", true, 0);
	cr_assert_eq(rt_table_get(rt_router_table(r), RT_STREAM, "a", 1)->nh, 1);

	event(&ev, "A", 2);            /* the old one's last heartbeat */
	gw = rt_gws_find(rt_router_gws(r), "A", 1);
	cr_assert_eq(gw->boot_id, 1, "a straggler took the gateway over");
	cr_assert_eq(rt_table_get(rt_router_table(r), RT_STREAM, "a", 1)->nh, 1,
		     "a straggler dropped the successor's streams");

	cm_timer_start(loop, 1100, false, stop_loop, loop); /* past the 1-s window */
	cm_loop_run(loop);
	event(&ev, "A", 2);            /* a live second process under the id */
	cr_assert_eq(gw->boot_id, 2, "the old boot id never counts again");
}

Test(rt_router, malformed_frames_are_counted_and_dropped)
{
	struct rt_stats st;
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	uint8_t buf[256];
	size_t n;

	rt_router_gateway_event(r, junk, sizeof(junk));
	rt_router_gateway_event(r, (const uint8_t *)"\x0a\x05hi", 4); /* truncated */
	/* version 0 */
	ev.gateway_id.data = (uint8_t *)"A";
	ev.gateway_id.len = 1;
	n = herald__cluster__gateway_event__pack(&ev, buf);
	rt_router_gateway_event(r, buf, n);
	/* an id that would break JSON and labels */
	ev.version = 1;
	ev.gateway_id.data = (uint8_t *)"a\"b";
	ev.gateway_id.len = 3;
	n = herald__cluster__gateway_event__pack(&ev, buf);
	rt_router_gateway_event(r, buf, n);
	rt_router_stats(r, &st);
	cr_assert_eq(st.bad_frames, 4);
	cr_assert_eq(st.gateways, 0);
	/* an empty frame is a valid empty message, but without version */
	rt_router_gateway_event(r, (const uint8_t *)"", 0);
	rt_router_stats(r, &st);
	cr_assert_eq(st.bad_frames, 5);
}

Test(rt_router, oversized_payloads_are_dropped)
{
	struct rt_stats st;
	static uint8_t big[(1u << 20) + 1];

	join("A");
	interest("A", "s", true, 0);
	rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, big, sizeof(big));
	rt_router_publish(r, RT_DELIVER_STREAM, "s", 1, big, sizeof(big) - 1);
	rt_router_flush(r);
	rt_router_stats(r, &st);
	cr_assert_eq(st.too_large, 1);
	cr_assert_eq(st.deliveries_out, 1, "1 MiB exactly is allowed");
	cr_assert_eq(rt_table_get(rt_router_table(r), RT_STREAM, "s", 1)->offset, 1,
		     "a dropped message takes no offset");
}

Test(rt_router, heartbeats_carry_gateway_details)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Heartbeat hb = HERALD__CLUSTER__HEARTBEAT__INIT;
	struct rt_gw *gw;

	hb.ccu = 3;
	hb.threads = 4;
	hb.version = "9.9";
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HEARTBEAT;
	ev.heartbeat = &hb;
	event(&ev, "A", 1);
	gw = rt_gws_find(rt_router_gws(r), "A", 1);
	cr_assert_not_null(gw);
	cr_assert_eq(gw->ccu, 3);
	cr_assert_eq(gw->threads, 4);
	cr_assert_str_eq(gw->version, "9.9");
	cr_assert_eq(gw->state, RT_GW_SYNCING);
}

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

/* Mutated gateway events never crash the router (run under ASan in make
 * test) and leave its tables consistent. */
Test(rt_router, survives_mutated_gateway_events)
{
	uint8_t buf[512];
	const char *names[] = { "s1", "s2", "u1", "x" };

	for (int iter = 0; iter < 20000; iter++) {
		Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
		Herald__Cluster__Interest in = HERALD__CLUSTER__INTEREST__INIT;
		Herald__Cluster__UserPresence u = HERALD__CLUSTER__USER_PRESENCE__INIT;
		Herald__Cluster__Heartbeat hb = HERALD__CLUSTER__HEARTBEAT__INIT;
		Herald__Cluster__ResyncAnswer ra = HERALD__CLUSTER__RESYNC_ANSWER__INIT;
		Herald__Cluster__Publish pb = HERALD__CLUSTER__PUBLISH__INIT;
		Herald__Cluster__Bye bye = HERALD__CLUSTER__BYE__INIT;
		ProtobufCBinaryData v[2];
		char id[8];
		size_t n;

		snprintf(id, sizeof(id), "g%d", (int)(rnd() % 4));
		ev.version = 1;
		ev.gateway_id.data = (uint8_t *)id;
		ev.gateway_id.len = strlen(id);
		ev.boot_id = rnd() % 3;
		switch (rnd() % 7) {
		case 0:
			in.stream.data = (uint8_t *)names[rnd() % 4];
			in.stream.len = strlen((char *)in.stream.data);
			in.add = rnd() % 2;
			in.request_id = rnd() % 5;
			ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST;
			ev.interest = &in;
			break;
		case 1:
			u.uid.data = (uint8_t *)names[rnd() % 4];
			u.uid.len = strlen((char *)u.uid.data);
			u.online = rnd() % 2;
			ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_USER;
			ev.user = &u;
			break;
		case 2:
			hb.ccu = rnd();
			ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HEARTBEAT;
			ev.heartbeat = &hb;
			break;
		case 3:
			v[0].data = (uint8_t *)names[rnd() % 4];
			v[0].len = strlen((char *)v[0].data);
			v[1] = v[0];
			ra.epoch = rnd() % 2 ? rnd() : 0;
			ra.streams = v;
			ra.n_streams = 2;
			ra.users = v;
			ra.n_users = 1;
			ra.done = rnd() % 2;
			ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_RESYNC_ANSWER;
			ev.resync_answer = &ra;
			break;
		case 4:
			pb.stream.data = (uint8_t *)names[rnd() % 4];
			pb.stream.len = strlen((char *)pb.stream.data);
			pb.data.data = (uint8_t *)"payload";
			pb.data.len = 7;
			ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_PUBLISH;
			ev.publish = &pb;
			break;
		case 5:
			ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_BYE;
			ev.bye = &bye;
			break;
		default:
			break;
		}
		n = herald__cluster__gateway_event__pack(&ev, buf);
		if (rnd() % 2) {
			if (rnd() % 2 && n)
				n = rnd() % n;
			for (int k = (int)(rnd() % 3); k >= 0 && n; k--)
				buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
		}
		rt_router_gateway_event(r, buf, n);
		rt_router_publish(r, RT_DELIVER_STREAM, "s1", 2, (const uint8_t *)"m", 1);
		rt_router_publish(r, RT_DELIVER_USER, "u1", 2, (const uint8_t *)"m", 1);
		if (iter % 50 == 0) {
			rt_router_flush(r);
			clear_cmds();
		}
		if (iter % 1000 == 0)
			rt_router_expire(r, cm_loop_now(loop) + 10000);
	}
	rt_router_flush(r);
	/* every holder points at a live gateway */
	struct rt_entry *e;
	const char *all[] = { "s1", "s2", "u1", "x" };
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 4; i++)
			if ((e = rt_table_get(rt_router_table(r), k ? RT_USER : RT_STREAM, all[i],
					      strlen(all[i]))))
				for (uint32_t h = 0; h < e->nh; h++)
					cr_assert_not_null(rt_gws_at(rt_router_gws(r), e->h[h].gw));
}
