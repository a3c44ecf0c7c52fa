/* gen_cluster_seeds — writes the seed corpora of fuzz_router_frame and
 * fuzz_gw_frame: frames made with protobuf-c (the router's scripts carry
 * GatewayEvents, the gateway's seeds are RouterMessages). Run from the
 * repository root after `make build/gen/proto/cluster.pb-c.c`:
 *
 *   cc -D_GNU_SOURCE -I. -Ibuild/gen -o build/fuzz/gen_cluster_seeds \
 *      tests/fuzz/gen_cluster_seeds.c build/gen/proto/cluster.pb-c.c -lprotobuf-c
 *   build/fuzz/gen_cluster_seeds tests/fuzz/corpus
 *
 * The script format is fuzz_router_frame.c's (its op list). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cluster.pb-c.h"

enum {
	OP_EVENT, OP_STREAM, OP_USER, OP_ALL, OP_GW, OP_FLUSH, OP_TIME, OP_TIMERS, OP_SHAPE,
	OP_OFFSETS, OP_RECONNECT
};
/* op_gw kinds */
enum { GW_HELLO, GW_HB, GW_ADD, GW_REMOVE, GW_ONLINE, GW_OFFLINE, GW_PUBLISH, GW_ANSWER, GW_BYE };

struct out {
	uint8_t b[8192];
	size_t n;
};

static const char *dir;

static void put8(struct out *o, unsigned v)
{
	if (o->n >= sizeof(o->b))
		abort();
	o->b[o->n++] = (uint8_t)v;
}

static void put16(struct out *o, unsigned v)
{
	put8(o, v >> 8);
	put8(o, v & 0xff);
}

static void put(struct out *o, const void *p, size_t n)
{
	if (o->n + n > sizeof(o->b))
		abort();
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

static void str8(struct out *o, const char *s)
{
	put8(o, (unsigned)strlen(s));
	put(o, s, strlen(s));
}

static void str16(struct out *o, const char *s)
{
	put16(o, (unsigned)strlen(s));
	put(o, s, strlen(s));
}

static void save(const char *sub, const char *name, const void *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* ------------------------------------------------------------- router side */

static void event(struct out *o, Herald__Cluster__GatewayEvent *ev, const char *id, uint64_t boot)
{
	uint8_t buf[4096];
	size_t n;

	ev->version = 1;
	ev->gateway_id.data = (uint8_t *)id;
	ev->gateway_id.len = strlen(id);
	ev->boot_id = boot;
	n = herald__cluster__gateway_event__get_packed_size(ev);
	if (n > sizeof(buf))
		abort();
	herald__cluster__gateway_event__pack(ev, buf);
	put8(o, OP_EVENT);
	put16(o, (unsigned)n);
	put(o, buf, n);
}

static void raw_events(struct out *o)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Hello h = HERALD__CLUSTER__HELLO__INIT;
	Herald__Cluster__Heartbeat hb = HERALD__CLUSTER__HEARTBEAT__INIT;
	Herald__Cluster__Interest in = HERALD__CLUSTER__INTEREST__INIT;
	Herald__Cluster__UserPresence u = HERALD__CLUSTER__USER_PRESENCE__INIT;
	Herald__Cluster__Publish p = HERALD__CLUSTER__PUBLISH__INIT;
	Herald__Cluster__ResyncAnswer ra = HERALD__CLUSTER__RESYNC_ANSWER__INIT;
	Herald__Cluster__Bye bye = HERALD__CLUSTER__BYE__INIT;
	ProtobufCBinaryData names[2] = { { 2, (uint8_t *)"s1" }, { 2, (uint8_t *)"s2" } };
	ProtobufCBinaryData users[1] = { { 3, (uint8_t *)"bob" } };

	h.threads = 4;
	h.version = "0.1.0";
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HELLO;
	ev.hello = &h;
	event(o, &ev, "gw-a", 7);

	hb.ccu = 12;
	hb.streams = 2;
	hb.seq = 1;
	hb.threads = 4;
	hb.version = "0.1.0";
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HEARTBEAT;
	ev.heartbeat = &hb;
	event(o, &ev, "gw-a", 7);

	in.stream.data = (uint8_t *)"s1";
	in.stream.len = 2;
	in.add = 1;
	in.request_id = 1;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST;
	ev.interest = &in;
	event(o, &ev, "gw-a", 7);

	u.uid.data = (uint8_t *)"bob";
	u.uid.len = 3;
	u.online = 1;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_USER;
	ev.user = &u;
	event(o, &ev, "gw-a", 7);

	/* an answer to a wrong epoch (the real one is not known here) */
	ra.epoch = 1;
	ra.streams = names;
	ra.n_streams = 2;
	ra.users = users;
	ra.n_users = 1;
	ra.done = 1;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_RESYNC_ANSWER;
	ev.resync_answer = &ra;
	event(o, &ev, "gw-a", 7);

	p.stream.data = (uint8_t *)"s1";
	p.stream.len = 2;
	p.data.data = (uint8_t *)"{\"x\":1}";
	p.data.len = 7;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_PUBLISH;
	ev.publish = &p;
	event(o, &ev, "gw-a", 7);
	put8(o, OP_FLUSH);

	in.add = 0;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST;
	ev.interest = &in;
	event(o, &ev, "gw-a", 7);

	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_BYE;
	ev.bye = &bye;
	event(o, &ev, "gw-a", 7);
	put8(o, OP_FLUSH);
}

/* Gateway g (0..7) with boot b (0..3) says hello and answers its resync. */
static void join(struct out *o, unsigned g, unsigned b, const char *stream, const char *user)
{
	put8(o, OP_GW);
	put8(o, g | b << 3);
	put8(o, GW_HB);
	put16(o, 10);
	put8(o, 1);
	put8(o, 2);
	put8(o, OP_FLUSH);
	put8(o, OP_GW);
	put8(o, g | b << 3);
	put8(o, GW_ANSWER);
	put8(o, 64 | 2); /* done, two names */
	put8(o, (unsigned)strlen(stream) << 1);
	put(o, stream, strlen(stream));
	put8(o, (unsigned)strlen(user) << 1 | 1);
	put(o, user, strlen(user));
}

static void publish(struct out *o, unsigned op, unsigned flags, const char *name, const char *data)
{
	put8(o, op | flags << 4);
	if (op != OP_ALL)
		str8(o, name);
	str16(o, data);
}

static void scripted(struct out *o)
{
	join(o, 0, 0, "s1", "u1");
	join(o, 1, 0, "s1", "u2");
	put8(o, OP_GW);
	put8(o, 0);
	put8(o, GW_ADD);
	str8(o, "s2");
	put8(o, 9); /* request id */
	publish(o, OP_STREAM, 0, "s1", "hello");
	publish(o, OP_STREAM, 2, "s2", "world");
	publish(o, OP_USER, 0, "u1", "dm");
	publish(o, OP_ALL, 0, NULL, "everyone");
	put8(o, OP_FLUSH);
	publish(o, OP_STREAM, 0, "s1", "again");
	put8(o, OP_GW);
	put8(o, 1 | 1 << 3); /* gateway 1 restarts */
	put8(o, GW_HB);
	put16(o, 0);
	put8(o, 0);
	put8(o, 0);
	put8(o, OP_FLUSH);
	put8(o, OP_GW);
	put8(o, 0);
	put8(o, GW_REMOVE);
	str8(o, "s2");
	put8(o, 0);
	put8(o, OP_GW);
	put8(o, 0);
	put8(o, GW_OFFLINE);
	str8(o, "u1");
	/* gateway 0 says hello again (a Redis reconnect): a new resync whose
	 * answer names s1 only, so u1 goes */
	put8(o, OP_GW);
	put8(o, 0);
	put8(o, GW_HELLO);
	str8(o, "1.0");
	put8(o, 2);
	put8(o, OP_GW);
	put8(o, 0);
	put8(o, GW_ANSWER);
	put8(o, 64 | 1);
	put8(o, 2 << 1);
	put(o, "s1", 2);
	put8(o, OP_FLUSH);
	put8(o, OP_TIMERS);
	put8(o, OP_TIME | 7 << 4);
	put16(o, 60000 / 8 + 1); /* gateways time out, counters idle */
	put8(o, OP_TIMERS);
	publish(o, OP_STREAM, 0, "s1", "nobody");
	put8(o, OP_FLUSH);
}

static void shapes(struct out *o)
{
	/* offsets read back: s1=41, user:u1=5, junk */
	put8(o, OP_OFFSETS);
	put8(o, 6);
	put8(o, 2 << 2 | 2); /* the string "s1" */
	put(o, "s1", 2);
	put8(o, 1 << 2 | 2 | 1); /* the number 1 * 41 */
	put16(o, 41);
	put8(o, 7 << 2 | 2);
	put(o, "user:u1", 7);
	put8(o, 1 << 2 | 2 | 1);
	put16(o, 5);
	put8(o, 3 << 2 | 2);
	put(o, "bad", 3);
	put8(o, 1 << 2 | 1); /* a number with junk after it */
	put16(o, 9);
	join(o, 2, 0, "s1", "u1");
	publish(o, OP_STREAM, 0, "s1", "after restart");
	publish(o, OP_STREAM, 1, "short", "a channel without the prefix");
	put8(o, OP_FLUSH);
	/* malformed replies: 2 elements; a pmessage of 3; a NULL reply */
	put8(o, OP_SHAPE | 0 << 4);
	put8(o, 2);
	put8(o, 0x80 | 1);
	put8(o, 1);
	put8(o, 1);
	put(o, "x", 1);
	put8(o, OP_SHAPE | 1 << 4);
	put8(o, 3);
	put8(o, 0x80 | 1 << 3 | 1);
	put8(o, 1);
	put8(o, 0);
	put8(o, 3); /* an integer */
	put8(o, 0);
	put8(o, OP_SHAPE | 8 << 4);
	put8(o, OP_RECONNECT);
	put8(o, OP_TIMERS);
}

/* ------------------------------------------------------------ gateway side */

static void router_msg(const char *name, Herald__Cluster__RouterMessage *m)
{
	uint8_t buf[4096];
	size_t n = herald__cluster__router_message__get_packed_size(m);

	if (n > sizeof(buf))
		abort();
	herald__cluster__router_message__pack(m, buf);
	save("gw_frame", name, buf, n);
}

static void gw_seeds(void)
{
	Herald__Cluster__RouterMessage m = HERALD__CLUSTER__ROUTER_MESSAGE__INIT;
	Herald__Cluster__ResyncRequest rr = HERALD__CLUSTER__RESYNC_REQUEST__INIT;
	Herald__Cluster__Delivery d[4], *dp[4];
	uint64_t acks[3] = { 1, 5, 300 };
	static const uint8_t bin[] = { 0, 0xff, 0x80, 'a', 0 };
	uint8_t buf[64];
	size_t n;

	for (int i = 0; i < 4; i++) {
		herald__cluster__delivery__init(&d[i]);
		dp[i] = &d[i];
	}
	d[0].kind = HERALD__CLUSTER__DELIVERY__KIND__STREAM;
	d[0].name.data = (uint8_t *)"news";
	d[0].name.len = 4;
	d[0].offset = 1;
	d[0].data.data = (uint8_t *)"{\"a\":1}";
	d[0].data.len = 7;
	d[1].kind = HERALD__CLUSTER__DELIVERY__KIND__USER;
	d[1].name.data = (uint8_t *)"bob";
	d[1].name.len = 3;
	d[1].offset = 300;
	d[1].data.data = (uint8_t *)bin;
	d[1].data.len = sizeof(bin);
	d[2].kind = HERALD__CLUSTER__DELIVERY__KIND__ALL;
	d[2].data.data = (uint8_t *)"all";
	d[2].data.len = 3;
	d[3].kind = (Herald__Cluster__Delivery__Kind)3; /* a newer router's kind */
	d[3].name.data = (uint8_t *)"x";
	d[3].name.len = 1;

	m.version = 1;
	m.router_boot_id = 0x1234;
	m.deliveries = dp;
	m.n_deliveries = 3;
	router_msg("deliveries", &m);

	m.n_deliveries = 4;
	m.interest_acks = acks;
	m.n_interest_acks = 3;
	rr.epoch = 1ull << 40;
	m.resync_request = &rr;
	m.router_boot_id = 99; /* a new router */
	router_msg("everything", &m);

	m.n_deliveries = 0;
	m.resync_request = NULL;
	router_msg("acks", &m);

	m.n_interest_acks = 0;
	m.resync_request = &rr;
	router_msg("resync", &m);

	/* a frame from a newer router: unknown fields (9 varint, 10 bytes)
	 * in the message and in a delivery */
	m.resync_request = NULL;
	m.deliveries = dp;
	m.n_deliveries = 1;
	n = herald__cluster__router_message__pack(&m, buf);
	buf[n++] = 9 << 3 | 0;
	buf[n++] = 0x96;
	buf[n++] = 0x01;
	buf[n++] = 10 << 3 | 2;
	buf[n++] = 2;
	buf[n++] = 'h';
	buf[n++] = 'i';
	buf[n++] = 3 << 3 | 2; /* delivery: kind 0, name "n", unknown field 7 (fixed32) */
	buf[n++] = 10;
	buf[n++] = 2 << 3 | 2;
	buf[n++] = 1;
	buf[n++] = 'n';
	buf[n++] = 3 << 3 | 0;
	buf[n++] = 2;
	buf[n++] = 7 << 3 | 5;
	memset(buf + n, 0xaa, 4);
	n += 4;
	save("gw_frame", "newer_router", buf, n);

	/* acks unpacked (one varint each) */
	n = 0;
	buf[n++] = 1 << 3 | 0;
	buf[n++] = 1;
	buf[n++] = 4 << 3 | 0;
	buf[n++] = 2;
	buf[n++] = 4 << 3 | 0;
	buf[n++] = 8;
	save("gw_frame", "acks_unpacked", buf, n);
}

int main(int argc, char **argv)
{
	struct out o;
	char path[512];

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	snprintf(path, sizeof(path), "mkdir -p '%s/router_frame' '%s/gw_frame'", dir, dir);
	if (system(path))
		return 1;

	o.n = 0;
	raw_events(&o);
	save("router_frame", "raw_events", o.b, o.n);
	o.n = 0;
	scripted(&o);
	save("router_frame", "two_gateways", o.b, o.n);
	o.n = 0;
	shapes(&o);
	save("router_frame", "restart_and_shapes", o.b, o.n);
	o.n = 0;
	raw_events(&o);
	scripted(&o);
	shapes(&o);
	save("router_frame", "all", o.b, o.n);

	gw_seeds();
	return 0;
}
