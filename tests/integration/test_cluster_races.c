/* Races between the cluster's processes, made to happen in a set order:
 * a Redis connection that drops between two replies (a proxy in this
 * process cuts it), and acks that reach a gateway late (this process plays
 * the router: it reads the gateway's events on herald:router and publishes
 * RouterMessages on herald:gw:<id> itself). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/cluster.pb-c.h"
#include "tests/integration/lib/th_cluster.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(cluster_races, .init = th_setup, .fini = th_teardown, .timeout = 90);

/* ------------------------------------------------------------ the proxy */

/* A TCP proxy to Redis that cuts the first connection that asks HGETALL
 * right after that command's reply ("*0\r\n": the hash does not exist), so
 * the reply to the command pipelined behind it never arrives. It closes the
 * connection once the client has acted on the first reply (a router that
 * has read the offsets subscribes on another connection), so the end
 * arrives on its own and not in one read with the reply. */
#define PX_MAX 32

struct px_pair {
	int cl, up;        /* -1 when closed */
	size_t from_up;    /* bytes Redis sent */
};

struct proxy {
	int lfd, up_port, port;
	pthread_t th;
	atomic_bool stop;
	atomic_int cuts;
	int victim;        /* the pair to cut (-1: none yet) */
	struct px_pair p[PX_MAX];
	int n;
};

static int px_connect_up(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

static bool px_write(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static void px_close(struct px_pair *c)
{
	if (c->cl >= 0)
		close(c->cl);
	if (c->up >= 0)
		close(c->up);
	c->cl = c->up = -1;
}

/* Bytes from Redis to the client; to the victim, only the first reply. */
static void px_from_up(struct proxy *px, struct px_pair *c, const char *buf, size_t n)
{
	size_t fwd = n;

	if (px->victim >= 0 && c == &px->p[px->victim])
		fwd = c->from_up >= 4 ? 0 : n < 4 - c->from_up ? n : 4 - c->from_up;
	c->from_up += n;
	if (fwd && !px_write(c->cl, buf, fwd))
		px_close(c);
}

/* Bytes from a client to Redis. */
static void px_from_client(struct proxy *px, struct px_pair *c, const char *buf, size_t n)
{
	if (px->victim < 0 && memmem(buf, n, "HGETALL", 7))
		px->victim = (int)(c - px->p);
	if (px->victim >= 0 && c != &px->p[px->victim] && px->p[px->victim].cl >= 0 &&
	    memmem(buf, n, "SUBSCRIBE", 9)) {
		px_close(&px->p[px->victim]);
		atomic_fetch_add(&px->cuts, 1);
	}
	if (c->up >= 0 && !px_write(c->up, buf, n))
		px_close(c);
}

static void *px_run(void *arg)
{
	struct proxy *px = arg;
	char buf[65536];

	while (!atomic_load(&px->stop)) {
		struct pollfd fds[1 + 2 * PX_MAX];
		int who[1 + 2 * PX_MAX], nf = 0;

		fds[nf] = (struct pollfd){ .fd = px->lfd, .events = POLLIN };
		who[nf++] = -1;
		for (int i = 0; i < px->n; i++) {
			if (px->p[i].cl >= 0) {
				fds[nf] = (struct pollfd){ .fd = px->p[i].cl, .events = POLLIN };
				who[nf++] = 2 * i;
			}
			if (px->p[i].up >= 0) {
				fds[nf] = (struct pollfd){ .fd = px->p[i].up, .events = POLLIN };
				who[nf++] = 2 * i + 1;
			}
		}
		if (poll(fds, (nfds_t)nf, 50) <= 0)
			continue;
		for (int k = 0; k < nf; k++) {
			struct px_pair *c;
			ssize_t r;

			if (!fds[k].revents)
				continue;
			if (who[k] < 0) {
				int fd = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC);
				if (fd < 0)
					continue;
				if (px->n == PX_MAX) {
					close(fd);
					continue;
				}
				px->p[px->n] = (struct px_pair){ .cl = fd, .up = px_connect_up(px->up_port) };
				if (px->p[px->n].up < 0)
					px_close(&px->p[px->n]);
				px->n++;
				continue;
			}
			c = &px->p[who[k] / 2];
			if (who[k] % 2 == 0) {
				if (c->cl < 0)
					continue;
				r = read(c->cl, buf, sizeof(buf));
				if (r <= 0)
					px_close(c);
				else
					px_from_client(px, c, buf, (size_t)r);
			} else {
				if (c->up < 0)
					continue;
				r = read(c->up, buf, sizeof(buf));
				if (r <= 0)
					px_close(c);
				else
					px_from_up(px, c, buf, (size_t)r);
			}
		}
	}
	for (int i = 0; i < px->n; i++)
		px_close(&px->p[i]);
	close(px->lfd);
	return NULL;
}

static void px_start(struct proxy *px, int up_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	memset(px, 0, sizeof(*px));
	px->up_port = up_port;
	px->victim = -1;
	px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(px->lfd >= 0);
	cr_assert_eq(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(px->lfd, 16), 0);
	cr_assert_eq(getsockname(px->lfd, (struct sockaddr *)&a, &al), 0);
	px->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&px->th, NULL, px_run, px), 0);
}

static void px_stop(struct proxy *px)
{
	atomic_store(&px->stop, true);
	pthread_join(px->th, NULL);
}

static bool ccu_field_exists(int redis_port, const char *id)
{
	redisReply *r = th_redis_cmd(redis_port, "HEXISTS herald:ccu %s", id);
	bool yes = !r || r->type != REDIS_REPLY_INTEGER || r->integer != 0;

	if (r)
		freeReplyObject(r);
	return yes;
}

/* A starting router reads the offsets (HGETALL) and the gateways' CCU
 * fields (HKEYS) in one pipeline; if the connection drops between the two
 * replies, the fields are asked for again on the next connect, and those of
 * gateways that died before the router started still leave the hash. */
Test(cluster_races, ccu_fields_are_listed_again_after_a_lost_reply)
{
	static const char *const flags[] = { "--gateway-timeout", "1s", NULL };
	struct th_proc *redis = th_redis_start();
	struct th_router router;
	struct proxy px;
	redisReply *r;
	char line[96];

	r = th_redis_cmd(redis->port, "HSET herald:ccu ghost 3");
	cr_assert(r && r->type == REDIS_REPLY_INTEGER);
	freeReplyObject(r);
	px_start(&px, redis->port);
	th_router_start(&router, px.port, flags);
	cr_assert(TH_WAIT(atomic_load(&px.cuts) == 1, 10000),
		  "the router's first HGETALL connection was not cut");
	snprintf(line, sizeof(line), "redis pub 127.0.0.1:%d: reconnected", px.port);
	cr_assert(TH_WAIT(th_log_contains(router.proc, line), 10000),
		  "the router did not reconnect");
	cr_assert(TH_WAIT(!ccu_field_exists(redis->port, "ghost"), 15000),
		  "a dead gateway's herald:ccu field stayed: HKEYS was not asked again");
	th_stop(router.proc, 5000);
	px_stop(&px);
}

/* --------------------------------------------------- a router played here */

#define ROUTER_BOOT 0x7777

/* Events on herald:router, read by a subscriber of our own. */
static redisContext *events_open(int port)
{
	struct timeval tv = { 10, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r;

	cr_assert(c && !c->err, "connect to redis");
	r = redisCommand(c, "SUBSCRIBE herald:router");
	cr_assert(r && r->type == REDIS_REPLY_ARRAY);
	freeReplyObject(r);
	redisSetTimeout(c, tv);
	return c;
}

/* The next event from gateway id of kind body (for interest: on stream,
 * adding or not; any boot id but not_boot). Asserts it comes within 10 s;
 * free with herald__cluster__gateway_event__free_unpacked. */
static Herald__Cluster__GatewayEvent *event_next(redisContext *c, const char *id, int body,
						 const char *stream, bool add, uint64_t not_boot)
{
	for (;;) {
		redisReply *r = NULL;
		Herald__Cluster__GatewayEvent *ev;

		cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK, "no event within 10 s");
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
		    r->element[2]->type != REDIS_REPLY_STRING) {
			freeReplyObject(r);
			continue;
		}
		ev = herald__cluster__gateway_event__unpack(NULL, r->element[2]->len,
							    (const uint8_t *)r->element[2]->str);
		freeReplyObject(r);
		cr_assert_not_null(ev);
		if ((int)ev->body_case == body && ev->gateway_id.len == strlen(id) &&
		    !memcmp(ev->gateway_id.data, id, strlen(id)) && ev->boot_id != not_boot &&
		    (body != HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST ||
		     (ev->interest->add == add && ev->interest->stream.len == strlen(stream) &&
		      !memcmp(ev->interest->stream.data, stream, strlen(stream)))))
			return ev;
		herald__cluster__gateway_event__free_unpacked(ev, NULL);
	}
}

/* The next interest add (or remove) of stream from id: its request id. */
static uint64_t interest_next(redisContext *c, const char *id, const char *stream, bool add,
			      uint64_t not_boot, uint64_t *boot)
{
	Herald__Cluster__GatewayEvent *ev =
		event_next(c, id, HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST, stream, add,
			   not_boot);
	uint64_t req = ev->interest->request_id;

	if (boot)
		*boot = ev->boot_id;
	herald__cluster__gateway_event__free_unpacked(ev, NULL);
	return req;
}

/* A RouterMessage to gateway id with these acks and, when epoch is not 0,
 * a resync request. */
static void router_send(int port, const char *id, uint64_t *acks, size_t nacks, uint64_t epoch)
{
	Herald__Cluster__RouterMessage m = HERALD__CLUSTER__ROUTER_MESSAGE__INIT;
	Herald__Cluster__ResyncRequest rr = HERALD__CLUSTER__RESYNC_REQUEST__INIT;
	uint8_t buf[512];
	char chan[64];
	size_t n;

	m.version = 1;
	m.router_boot_id = ROUTER_BOOT;
	m.interest_acks = acks;
	m.n_interest_acks = nacks;
	if (epoch) {
		rr.epoch = epoch;
		m.resync_request = &rr;
	}
	n = herald__cluster__router_message__pack(&m, buf);
	snprintf(chan, sizeof(chan), "herald:gw:%s", id);
	cr_assert_eq(th_redis_publish(port, chan, buf, n), 1, "the gateway hears %s", chan);
}

/* Sends acks, then waits until the gateway has acted on them: a resync
 * request behind them in the same channel is answered after. */
static void ack_and_sync(redisContext *ev, int port, const char *id, uint64_t *acks,
			 size_t nacks)
{
	static uint64_t epoch = 100;
	Herald__Cluster__GatewayEvent *e;

	router_send(port, id, acks, nacks, 0);
	router_send(port, id, NULL, 0, ++epoch);
	for (;;) {
		e = event_next(ev, id, HERALD__CLUSTER__GATEWAY_EVENT__BODY_RESYNC_ANSWER, NULL,
			       false, 0);
		if (e->resync_answer->epoch == epoch && e->resync_answer->done)
			break;
		herald__cluster__gateway_event__free_unpacked(e, NULL);
	}
	herald__cluster__gateway_event__free_unpacked(e, NULL);
}

/* Whether stream is live on the gateway now: a fresh client subscribes,
 * then unsubscribes from a stream it does not hold. The unsubscribe is
 * answered at once; the subscribe at once only when the stream is live,
 * else after the router's ack. The client (still subscribed) goes to *out,
 * its subscribe's id to *sub_id. */
static bool live_now(int port, const char *stream, struct th_ws **out, int64_t *sub_id)
{
	static const char unsub[] = "{\"id\":1000000,\"unsubscribe\":{\"stream\":\"probe:none\"}}";
	struct th_ws *ws = th_ws_open(port, "/ws?user=probe");
	struct cm_smsg rep;
	bool live;

	*sub_id = th_ws_send_command(ws, CM_CMD_SUBSCRIBE, stream, NULL, 0);
	cr_assert(*sub_id > 0 && *sub_id != 1000000);
	cr_assert_eq(th_ws_raw_command(ws, unsub, strlen(unsub), &rep, 5000), 0);
	live = rep.id == (uint64_t)*sub_id;
	cm_smsg_release(&rep);
	if (live)
		cr_assert_eq(th_ws_wait_reply(ws, 1000000, NULL, 5000), 0);
	*out = ws;
	return live;
}

/* A client unsubscribes while its stream's add waits for the router, and
 * subscribes again: the router's ack of the first add, arriving after the
 * second add left, must not make the stream live before the router has
 * the second (it may have dropped the stream between the two). */
Test(cluster_races, a_late_ack_for_a_cancelled_add_does_not_settle_the_next)
{
	struct th_proc *redis = th_redis_start();
	redisContext *ev = events_open(redis->port);
	struct th_gw gw;
	struct th_gw_opts o = { .redis_port = redis->port, .threads = 1, .id = "g1" };
	static const char unsub[] = "{\"id\":1000000,\"unsubscribe\":{\"stream\":\"room\"}}";
	struct th_ws *c, *probe;
	struct cm_smsg rep;
	int64_t s1, s2, ps;
	uint64_t r1, r2;

	th_gw_start(&gw, &o);
	c = th_ws_open(gw.port, "/ws?user=a");
	s1 = th_ws_send_command(c, CM_CMD_SUBSCRIBE, "room", NULL, 0);
	cr_assert(s1 > 0);
	r1 = interest_next(ev, "g1", "room", true, 0, NULL);
	cr_assert_neq(r1, 0);
	/* cancelled before the router answered: the waiting subscribe is
	 * answered ok all the same (in either order with the unsubscribe) */
	cr_assert_eq(th_ws_raw_command(c, unsub, strlen(unsub), &rep, 5000), 0);
	cr_assert(rep.id == 1000000 || rep.id == (uint64_t)s1);
	cr_assert_eq(th_ws_wait_reply(c, rep.id == 1000000 ? (uint64_t)s1 : 1000000, NULL, 5000), 0);
	cm_smsg_release(&rep);
	interest_next(ev, "g1", "room", false, 0, NULL);
	s2 = th_ws_send_command(c, CM_CMD_SUBSCRIBE, "room", NULL, 0);
	cr_assert(s2 > 0);
	r2 = interest_next(ev, "g1", "room", true, 0, NULL);
	cr_assert_neq(r2, r1);

	ack_and_sync(ev, redis->port, "g1", &r1, 1);
	cr_assert_not(live_now(gw.port, "room", &probe, &ps),
		      "the ack of a cancelled add made the stream live");

	/* the ack of the add in flight does */
	ack_and_sync(ev, redis->port, "g1", &r2, 1);
	cr_assert_eq(th_ws_wait_reply(c, (uint64_t)s2, NULL, 5000), 0);
	cr_assert_eq(th_ws_wait_reply(probe, (uint64_t)ps, NULL, 5000), 0);
	th_ws_free(probe);
	cr_assert(live_now(gw.port, "room", &probe, &ps));
	th_ws_free(probe);
	th_ws_free(c);
	redisFree(ev);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

/* A gateway restarts under the same id; an ack the router sent for a
 * request of the earlier process reaches the new one (here: sent after the
 * new process's first add). It names none of the new process's requests. */
Test(cluster_races, an_ack_for_an_earlier_process_does_not_settle_a_new_add)
{
	struct th_proc *redis = th_redis_start();
	redisContext *ev = events_open(redis->port);
	struct th_gw gw;
	struct th_gw_opts o = { .redis_port = redis->port, .threads = 1, .id = "g1" };
	struct th_ws *c, *probe;
	int64_t s, ps;
	uint64_t old_req, old_boot, req;

	th_gw_start(&gw, &o);
	c = th_ws_open(gw.port, "/ws?user=a");
	cr_assert(th_ws_send_command(c, CM_CMD_SUBSCRIBE, "room", NULL, 0) > 0);
	old_req = interest_next(ev, "g1", "room", true, 0, &old_boot);
	th_ws_free(c);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);

	th_gw_start(&gw, &o);
	c = th_ws_open(gw.port, "/ws?user=a");
	s = th_ws_send_command(c, CM_CMD_SUBSCRIBE, "room", NULL, 0);
	cr_assert(s > 0);
	req = interest_next(ev, "g1", "room", true, old_boot, NULL);

	ack_and_sync(ev, redis->port, "g1", &old_req, 1);
	cr_assert_not(live_now(gw.port, "room", &probe, &ps),
		      "an ack for the earlier process's request %llu made the stream live",
		      (unsigned long long)old_req);

	ack_and_sync(ev, redis->port, "g1", &req, 1);
	cr_assert_eq(th_ws_wait_reply(c, (uint64_t)s, NULL, 5000), 0);
	cr_assert_eq(th_ws_wait_reply(probe, (uint64_t)ps, NULL, 5000), 0);
	th_ws_free(probe);
	th_ws_free(c);
	redisFree(ev);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}
