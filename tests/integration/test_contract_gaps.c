/* Promises of the external contract (CONTRACT.md) that no other test pinned
 * down: 1 MiB backend payloads, the 413 error code, anonymous user ids and
 * their direct messages, the /api/gateways row shape with the default
 * gateway id, the freshness of herald:ccu and of the router's /metrics,
 * delivery resuming within 2 s of a router or Redis restart, error 500 (a
 * subscribe no router acknowledges, a publish while Redis is down) and 503
 * to an upgrade completed while draining. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/lib/th_cluster.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(contract_gaps, .init = th_setup, .fini = th_teardown, .timeout = 60);

static struct th_proc *redis;
static struct th_router router;
static struct th_gw gw;

/* Redis, a router and one gateway (id, or the default id when NULL). */
static void cluster_start(const char *id)
{
	redis = th_redis_start();
	th_router_start(&router, redis->port, NULL);
	th_gw_start(&gw, &(struct th_gw_opts){ .redis_port = redis->port, .id = id });
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == 1, 5000),
		  "the router does not see the gateway");
}

/* "Payloads are opaque bytes, delivered unchanged (up to 1 MiB by default)":
 * with every flag at its default, a 1 MiB payload published on Redis reaches
 * a JSON and a protobuf subscriber, as text and as bytes that are not UTF-8
 * (base64 in JSON, a third larger on the wire). */
Test(contract_gaps, backend_payload_of_1_MiB_reaches_every_format_unchanged)
{
	const size_t n = 1u << 20;
	uint8_t *text = malloc(n), *bin = malloc(n);
	struct th_ws *js, *pb;

	cr_assert(text && bin);
	for (size_t i = 0; i < n; i++) {
		text[i] = (uint8_t)('a' + i % 26);
		bin[i] = (uint8_t)(0x80 | (i * 7 % 128)); /* continuation bytes only: not UTF-8 */
	}
	cluster_start("big-0");
	js = th_ws_open(gw.port, "/ws?user=j&streams=big");
	pb = th_ws_open(gw.port, "/ws?user=p&format=protobuf&streams=big");
	/* a round trip each: the connect-time subscriptions are live */
	cr_assert_eq(th_ws_subscribe(js, "big.sync"), 0);
	cr_assert_eq(th_ws_subscribe(pb, "big.sync"), 0);

	cr_assert_eq(th_redis_publish(redis->port, "herald:stream:big", text, n), 1);
	th_ws_expect_push(js, "big", 1, text, n);
	th_ws_expect_push(pb, "big", 1, text, n);
	cr_assert_eq(th_redis_publish(redis->port, "herald:stream:big", bin, n), 1);
	th_ws_expect_push(js, "big", 2, bin, n);
	th_ws_expect_push(pb, "big", 2, bin, n);
	/* both still connected and nobody was counted as a slow consumer */
	cr_assert_eq(th_ws_subscribe(js, "after"), 0);
	cr_assert_eq(th_ws_subscribe(pb, "after"), 0);
	cr_assert_eq(th_gw_metric(&gw, "herald_gateway_slow_consumer_closes_total", NULL), 0);
	th_ws_free(js);
	th_ws_free(pb);
	free(text);
	free(bin);
}

/* The router relays at most --max-payload, and accepts no setting above what
 * a gateway reads in one frame: 4 MiB arrives whole, more is refused at
 * start (before, 8 MiB was accepted and every such message was lost with
 * the whole frame carrying it). */
Test(contract_gaps, the_largest_max_payload_is_delivered_and_more_is_refused)
{
	const size_t n = 4u << 20;
	uint8_t *text = malloc(n);
	static const char *const extra[] = { "--max-payload", "4M", NULL };
	char *over[] = { (char *)th_bin("herald-router"), "--max-payload", "5M", NULL };
	struct th_ws *js;

	cr_assert_eq(th_run("over", over, 5000), 2, "--max-payload 5M was accepted");
	cr_assert(text);
	for (size_t i = 0; i < n; i++)
		text[i] = (uint8_t)('a' + i % 26);
	redis = th_redis_start();
	th_router_start(&router, redis->port, extra);
	th_gw_start(&gw, &(struct th_gw_opts){ .redis_port = redis->port, .id = "big-4" });
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == 1, 5000));
	js = th_ws_open(gw.port, "/ws?user=j&streams=big");
	cr_assert_eq(th_ws_subscribe(js, "big.sync"), 0);
	cr_assert_eq(th_redis_publish(redis->port, "herald:stream:big", text, n), 1);
	th_ws_expect_push(js, "big", 1, text, n);
	cr_assert_eq(th_ws_subscribe(js, "after"), 0);
	th_ws_free(js);
	free(text);
}

/* Error code 413 "too large": a connection holding --max-subscriptions
 * streams gets 413 for one more; a stream it holds is still ok, and once it
 * lets one go the refused stream can be subscribed (and delivers). */
Test(contract_gaps, subscribing_past_max_subscriptions_answers_413)
{
	struct th_ws *ws, *pub;
	struct cm_smsg r;

	th_gw_start(&gw, &(struct th_gw_opts){ .extra = { "--max-subscriptions", "3", NULL } });
	ws = th_ws_open(gw.port, "/ws?user=a");
	pub = th_ws_open(gw.port, "/ws?user=p");
	cr_assert_eq(th_ws_subscribe(ws, "s.1"), 0);
	cr_assert_eq(th_ws_subscribe(ws, "s.2"), 0);
	cr_assert_eq(th_ws_subscribe(ws, "s.3"), 0);
	cr_assert_eq(th_ws_command(ws, CM_CMD_SUBSCRIBE, "s.4", NULL, 0, &r, 5000), 413,
		     "a fourth stream over --max-subscriptions 3");
	cr_assert_eq(r.kind, CM_SMSG_REPLY);
	cm_smsg_release(&r);
	cr_assert_eq(th_ws_subscribe(ws, "s.2"), 0, "a stream already held is ok at the limit");
	/* the refused subscription is not live */
	cr_assert_eq(th_ws_publish(pub, "s.4", "lost", 4), 0);
	th_ws_expect_no_push(ws, 200);
	cr_assert_eq(th_ws_unsubscribe(ws, "s.1"), 0);
	cr_assert_eq(th_ws_subscribe(ws, "s.4"), 0, "room again after an unsubscribe");
	cr_assert_eq(th_ws_publish(pub, "s.4", "kept", 4), 0);
	cr_assert_eq(th_ws_next_push(ws, &r, 5000), 1, "nothing on s.4 once subscribed");
	cr_assert_str_eq(r.stream, "s.4");
	cr_assert(r.data_len == 4 && !memcmp(r.data, "kept", 4));
	cm_smsg_release(&r);
	/* protobuf gets the same code */
	struct th_ws *pb = th_ws_open(gw.port, "/ws?user=b&format=protobuf&streams=p.1,p.2,p.3");
	cr_assert_eq(th_ws_subscribe(pb, "p.4"), 413);
	th_ws_free(pb);
	th_ws_free(ws);
	th_ws_free(pub);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

/* The first anon-<n> a gateway hands out, from the line its log has. */
static unsigned long long anon_first(struct th_gw *g)
{
	char *log = th_read_file(g->proc->log), *at = NULL;
	unsigned long long n = 0;

	cr_assert(log && (at = strstr(log, "anonymous users: anon-")), "no anon line in the log");
	cr_assert_eq(sscanf(at, "anonymous users: anon-%llu onward", &n), 1);
	free(log);
	return n;
}

/* "--auth none without user= assigns anon-<n>": each anonymous connection is
 * a distinct anon-<n> user, and PUBLISH herald:user:anon-<n> reaches it (on
 * the stream user:anon-<n>) without subscribing. The numbers are unique
 * across the cluster: a second gateway counts from elsewhere, so a direct
 * message never reaches two strangers. */
Test(contract_gaps, anonymous_connections_are_distinct_anon_users_with_direct_messages)
{
	struct th_ws *a[3];
	struct th_gw gw2;
	unsigned long long first[2], got[3];
	char chan[64], name[40];

	cluster_start("anon-gw");
	th_gw_start(&gw2, &(struct th_gw_opts){ .redis_port = redis->port, .id = "anon-gw2" });
	first[0] = anon_first(&gw);
	first[1] = anon_first(&gw2);
	cr_assert_neq(first[0], first[1], "two gateways both start at anon-%llu", first[0]);
	a[0] = th_ws_open(gw.port, "/ws");
	a[1] = th_ws_open(gw.port, "/ws?format=protobuf");
	a[2] = th_ws_open(gw2.port, "/ws");
	/* presence is announced without an ack: wait until the router has all */
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_router_users", NULL) == 3, 5000),
		  "router users %g, want 3 distinct anonymous users",
		  th_router_metric(&router, "herald_router_users", NULL));
	for (int g = 0; g < 2; g++) {
		for (unsigned long long k = first[g]; k < first[g] + 2; k++) {
			snprintf(chan, sizeof(chan), "herald:user:anon-%llu", k);
			snprintf(name, sizeof(name), "anon-%llu", k);
			th_redis_publish(redis->port, chan, name, strlen(name));
		}
	}
	for (int i = 0; i < 3; i++) {
		struct cm_smsg m;
		int r = th_ws_next_push(a[i], &m, 5000);
		cr_assert_eq(r, 1, "anonymous client %d got no direct message", i);
		cr_assert(sscanf(m.stream, "user:anon-%llu", &got[i]) == 1, "stream %s", m.stream);
		snprintf(name, sizeof(name), "anon-%llu", got[i]);
		cr_assert_eq(m.data_len, strlen(name), "%s", m.stream);
		cr_assert(!memcmp(m.data, name, m.data_len), "%s got another user's message",
			  m.stream);
		cr_assert_eq(m.offset, 1);
		cm_smsg_release(&m);
		th_ws_expect_no_push(a[i], 200);
	}
	cr_assert_neq(got[0], got[1], "two anonymous connections share anon-%llu", got[0]);
	cr_assert_eq(got[2], first[1], "gw2's first anonymous client is anon-%llu", got[2]);
	for (int i = 0; i < 3; i++)
		th_ws_free(a[i]);
	cr_assert_eq(th_gw_stop(&gw2, 10000), 0);
}

/* GET /api/gateways: a JSON array of {"id","ccu","streams","last_seen_ms",
 * "state"}; a gateway started without --id is listed (and in herald:ccu)
 * under hostname:pid. */
Test(contract_gaps, api_gateways_rows_carry_the_contract_fields_and_the_default_id)
{
	char host[256], id[300], *body = NULL;
	struct th_ws *c;
	cJSON *j, *row, *f;

	cr_assert_eq(gethostname(host, sizeof(host)), 0);
	cluster_start(NULL);
	snprintf(id, sizeof(id), "%s:%d", host, (int)gw.proc->pid);
	c = th_ws_open(gw.port, "/ws?user=u&streams=one,two");
	cr_assert_eq(th_ws_subscribe(c, "three"), 0);
	cr_assert(TH_WAIT(th_router_gw_ccu(&router, id) == 1 && th_ccu_hash(redis->port, id) == 1,
			  5000),
		  "no ccu 1 for the default id %s (router %lld, herald:ccu %lld)", id,
		  th_router_gw_ccu(&router, id), th_ccu_hash(redis->port, id));
	cr_assert(TH_WAIT((free(body), body = NULL,
			   th_http_get(router.admin_port, "/api/gateways", &body, NULL) == 200 &&
			   strstr(body, "\"streams\":3")),
			  5000),
		  "streams never 3: %s", body ? body : "(none)");
	j = cJSON_Parse(body);
	cr_assert(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1, "%s", body);
	row = cJSON_GetArrayItem(j, 0);
	cr_assert(cJSON_IsObject(row), "%s", body);
	f = cJSON_GetObjectItemCaseSensitive(row, "id");
	cr_assert(cJSON_IsString(f) && !strcmp(f->valuestring, id), "id: %s, want %s", body, id);
	f = cJSON_GetObjectItemCaseSensitive(row, "ccu");
	cr_assert(cJSON_IsNumber(f) && f->valuedouble == 1, "ccu: %s", body);
	f = cJSON_GetObjectItemCaseSensitive(row, "streams");
	cr_assert(cJSON_IsNumber(f) && f->valuedouble == 3, "streams: %s", body);
	f = cJSON_GetObjectItemCaseSensitive(row, "last_seen_ms");
	cr_assert(cJSON_IsNumber(f) && f->valuedouble >= 0, "last_seen_ms: %s", body);
	f = cJSON_GetObjectItemCaseSensitive(row, "state");
	cr_assert(cJSON_IsString(f) && !strcmp(f->valuestring, "up"), "state: %s", body);
	cJSON_Delete(j);
	free(body);
	/* and under that id in the router's Prometheus text */
	char label[320];
	snprintf(label, sizeof(label), "gateway=\"%s\"", id);
	cr_assert_eq(th_router_metric(&router, "herald_gateway_ccu", label), 1);
	th_ws_free(c);
}

/* "herald:ccu ... at most 1 s old" and "/metrics of the router is at most
 * 2 s old": after each change of a gateway's CCU (a client connected: it
 * was counted before its 101 came; a client gone: its close was echoed and
 * the TCP stream ended), the hash and the router's herald_gateway_ccu show
 * the new value within those bounds. Several changes at different phases
 * of whatever periodic work is behind them; the bound adds 150 ms for
 * polling and scheduling. */
Test(contract_gaps, ccu_hash_is_at_most_1s_old_and_router_metrics_at_most_2s)
{
	enum { N = 6 };
	struct th_ws *c[N] = { 0 };
	int64_t worst_hash = 0, worst_metric = 0;
	long long want = 0;

	cluster_start("fresh");
	cr_assert(TH_WAIT(th_ccu_hash(redis->port, "fresh") == 0, 5000));
	for (int i = 0; i < N; i++) {
		int64_t t0, th = -1, tm = -1;
		/* spread the changes over the phases of 500 ms timers */
		th_sleep_ms(137 * i % 500);
		if (i % 3 == 2) { /* one leaves */
			struct th_ws *ws = c[--want];
			th_ws_send_close(ws, 1000, NULL);
			cr_assert_eq(th_ws_wait_close(ws, 5000), 1000);
			cr_assert(th_ws_wait_eof(ws, 5000));
			t0 = th_now_ms();
			th_ws_free(ws);
			c[want] = NULL;
		} else {
			c[want++] = th_ws_open(gw.port, "/ws?user=f");
			t0 = th_now_ms();
		}
		while (th_now_ms() - t0 < 4000 && (th < 0 || tm < 0)) {
			if (th < 0 && th_ccu_hash(redis->port, "fresh") == want)
				th = th_now_ms() - t0;
			if (tm < 0 && th_router_metric(&router, "herald_gateway_ccu",
						       "gateway=\"fresh\"") == want)
				tm = th_now_ms() - t0;
			th_sleep_ms(5);
		}
		cr_log_info("change %d (ccu %lld): herald:ccu after %lld ms, router /metrics after %lld ms",
			    i, want, (long long)th, (long long)tm);
		cr_assert(th >= 0 && tm >= 0, "ccu %lld never showed (hash %lld ms, metrics %lld ms)",
			  want, (long long)th, (long long)tm);
		if (th > worst_hash)
			worst_hash = th;
		if (tm > worst_metric)
			worst_metric = tm;
	}
	cr_assert(worst_hash <= 1000 + 150, "herald:ccu was %lld ms old (contract: at most 1 s)",
		  (long long)worst_hash);
	cr_assert(worst_metric <= 2000 + 150, "router /metrics was %lld ms old (contract: 2 s)",
		  (long long)worst_metric);
	for (int i = 0; i < N; i++)
		th_ws_free(c[i]);
}

/* Publishes on stream until ws gets a push; returns the ms it took (-1 when
 * nothing came within timeout_ms) and the push's offset in *off. */
static int64_t publish_until_delivered(struct th_ws *ws, const char *stream, int timeout_ms,
				       uint64_t *off)
{
	char chan[64];
	int64_t t0 = th_now_ms();
	struct cm_smsg m;

	snprintf(chan, sizeof(chan), "herald:stream:%s", stream);
	while (th_now_ms() - t0 < timeout_ms) {
		th_redis_publish(redis->port, chan, "probe", 5);
		if (th_ws_next_push(ws, &m, 25) == 1) {
			cr_assert_str_eq(m.stream, stream);
			*off = m.offset;
			cm_smsg_release(&m);
			return th_now_ms() - t0;
		}
	}
	return -1;
}

/* Drains the probes still on their way; returns the highest offset seen. */
static uint64_t drain_pushes(struct th_ws *ws, uint64_t last)
{
	struct cm_smsg m;
	while (th_ws_next_push(ws, &m, 300) == 1) {
		cr_assert(m.offset > last, "offset %llu after %llu", (unsigned long long)m.offset,
			  (unsigned long long)last);
		last = m.offset;
		cm_smsg_release(&m);
	}
	return last;
}

/* After `who` came back: probes on stream s reach c within 2 s (the probe
 * interval, 25 ms, and 100 ms of scheduling added), with offsets past
 * last; returns the highest offset seen once the probes are drained. */
static uint64_t delivered_again(struct th_ws *c, const char *who, uint64_t last)
{
	uint64_t off = 0;
	int64_t ms = publish_until_delivered(c, "s", 5000, &off);

	cr_log_info("%s back: delivery after %lld ms", who, (long long)ms);
	cr_assert(ms >= 0 && ms <= 2000 + 125, "delivery %lld ms after %s was back",
		  (long long)ms, who);
	cr_assert(off > last, "offset went back: %llu after %llu", (unsigned long long)off,
		  (unsigned long long)last);
	return drain_pushes(c, off);
}

/* "Router restart or Redis restart: no client is disconnected; delivery
 * resumes within 2 s after the restarted process is back" (the probe
 * interval, 25 ms, and 100 ms of scheduling are added to the bound). */
Test(contract_gaps, delivery_resumes_within_2s_of_a_router_or_redis_restart)
{
	struct th_ws *c;
	uint64_t last = 0;

	cluster_start("restart-0");
	c = th_ws_open(gw.port, "/ws?user=x&streams=s");
	cr_assert_eq(th_ws_subscribe(c, "sync"), 0);
	cr_assert(publish_until_delivered(c, "s", 2000, &last) >= 0);
	last = drain_pushes(c, last);

	th_kill9(router.proc);
	th_restart(router.proc);
	cr_assert_eq(th_wait_http_200(router.admin_port, "/api/gateways", 5000), 0);
	last = delivered_again(c, "the router", last);

	th_kill9(redis);
	th_sleep_ms(300); /* Redis away for a while (not an assertion) */
	th_restart(redis);
	cr_assert_eq(th_wait_port(redis->port, 5000), 0);
	delivered_again(c, "Redis", last);
	cr_assert_not(c->eof || c->got_close, "the client was disconnected");
	cr_assert_eq(th_ws_subscribe(c, "still"), 0);
	th_ws_free(c);
}

/* Runs one binary with args to its exit; returns the exit code and its
 * output (stdout and stderr, malloc'd) in *out. */
static int run_binary(const char *name, const char *a1, const char *a2, char **out)
{
	struct th_proc *p = th_spawnl(name, th_bin(name), a1, a2, NULL);
	int rc = th_wait_exit(p, 10000);
	*out = th_read_file(p->log);
	return rc;
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* "Each binary answers --help and exits 2 with a one-line error on a bad
 * flag": herald-gateway, herald-router and herald-load, for an unknown flag
 * and for a flag missing its value. */
Test(contract_gaps, every_binary_answers_help_and_exits_2_with_one_line_on_a_bad_flag)
{
	static const char *const bins[] = { "herald-gateway", "herald-router", "herald-load" };
	char *out;

	for (size_t i = 0; i < sizeof(bins) / sizeof(bins[0]); i++) {
		cr_assert_eq(run_binary(bins[i], "--help", NULL, &out), 0, "%s --help", bins[i]);
		cr_assert(strstr(out, "usage") && strstr(out, "--redis"), "%s --help: %s", bins[i],
			  out);
		free(out);
		cr_assert_eq(run_binary(bins[i], "--no-such-flag", NULL, &out), 2, "%s", bins[i]);
		cr_assert(lines(out) == 1 && strstr(out, "--no-such-flag"),
			  "%s: not one line naming the flag: [%s]", bins[i], out);
		free(out);
		/* a flag at the end without its value (getopt's own message must not add a line) */
		cr_assert_eq(run_binary(bins[i], "--redis", NULL, &out), 2, "%s --redis", bins[i]);
		cr_assert_eq(lines(out), 1, "%s --redis: [%s]", bins[i], out);
		free(out);
	}
}

/* "500 internal": a subscribe that the router never acknowledges (here there
 * is no router at all) is answered with error 500 once the gateway gives up
 * (5 s), and the client is not left half-subscribed: a message published on
 * that stream afterwards does not reach it. */
Test(contract_gaps, a_subscribe_no_router_acknowledges_fails_with_500)
{
	struct cm_smsg rep;
	struct th_ws *c;
	int code;

	redis = th_redis_start();
	th_gw_start(&gw, &(struct th_gw_opts){ .redis_port = redis->port, .id = "alone-0" });
	c = th_ws_open(gw.port, "/ws?user=u");
	code = th_ws_command(c, CM_CMD_SUBSCRIBE, "orphan", NULL, 0, &rep, 9000);
	cr_assert_eq(code, 500, "subscribe without a router: reply %d (%s)", code,
		     code > 0 ? rep.message : "none");
	cm_smsg_release(&rep);
	th_router_start(&router, redis->port, NULL);
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == 1, 5000));
	/* the stream is not held: a publish reaches nobody on this gateway */
	cr_assert_eq(th_ws_subscribe(c, "other"), 0); /* the cluster works now */
	th_redis_publish(redis->port, "herald:stream:orphan", "x", 1);
	th_ws_expect_no_push(c, 300);
	th_ws_free(c);
}

/* A client's publish on stream "room": the reply code (-1: none) and its
 * error message in msg. */
static int publish_reply(struct th_ws *c, const char *data, char *msg, size_t cap)
{
	struct cm_smsg rep;
	int code = th_ws_command(c, CM_CMD_PUBLISH, "room", data, strlen(data), &rep, 5000);

	msg[0] = 0;
	if (code >= 0) {
		snprintf(msg, cap, "%s", rep.message);
		cm_smsg_release(&rep);
	}
	return code;
}

/* "500 internal" for a client's publish while the gateway's cluster link is
 * down (Redis stopped), and ok again once it is back. */
Test(contract_gaps, a_client_publish_while_redis_is_down_gets_500)
{
	static const char *const extra[] = { "--client-publish", "all", NULL };
	struct th_ws *c;
	char msg[128];
	int code;

	redis = th_redis_start();
	th_router_start(&router, redis->port, NULL);
	th_gw_start(&gw, &(struct th_gw_opts){ .redis_port = redis->port, .id = "pub-0",
					       .extra = { extra[0], extra[1], NULL } });
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == 1, 5000));
	c = th_ws_open(gw.port, "/ws?user=p&streams=room");
	cr_assert_eq(th_ws_publish(c, "room", "one", 3), 0);
	th_ws_expect_push(c, "room", 1, "one", 3);

	th_kill9(redis);
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_cluster_up", NULL) == 0, 5000),
		  "the gateway does not notice that Redis is gone");
	/* the metric and the publish path look at the link on their own ticks */
	cr_assert(TH_WAIT((code = publish_reply(c, "two", msg, sizeof(msg))) == 500, 1000),
		  "publish with Redis down: reply %d", code);
	cr_assert(strstr(msg, "cluster"), "message: %s", msg);

	th_restart(redis);
	cr_assert_eq(th_wait_port(redis->port, 5000), 0);
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_cluster_up", NULL) == 1, 5000));
	/* the client was kept, and its publishes are accepted again */
	cr_assert_not(c->eof || c->got_close);
	cr_assert(TH_WAIT(th_ws_publish(c, "room", "three", 5) == 0, 3000));
	th_ws_free(c);
}

/* "503 draining": a request that completes its upgrade after SIGTERM is
 * refused with 503, not upgraded (the connection was accepted before the
 * listener closed), and the gateway still exits 0. */
Test(contract_gaps, an_upgrade_completed_while_draining_gets_503)
{
	static const char head[] = "GET /ws?user=late HTTP/1.1\r\nHost: 127.0.0.1\r\n";
	static const char rest[] = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
				   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
				   "Sec-WebSocket-Version: 13\r\n\r\n";
	struct th_ws_opts o = { 0 };
	struct th_ws *half;
	double before;
	int status;

	th_gw_start(&gw, &(struct th_gw_opts){ .extra = { "--drain-timeout", "5s", NULL } });
	o.port = gw.port;
	before = th_gw_metric(&gw, "herald_gateway_connections_accepted_total", NULL);
	half = th_ws_dial(&o);
	cr_assert(half);
	cr_assert_eq(th_ws_send_raw(half, head, sizeof(head) - 1), 0);
	/* accepted, with half a request head; the rest comes after the drain began */
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_connections_accepted_total", NULL) ==
				  before + 1,
			  5000));
	th_signal(gw.proc, SIGTERM);
	cr_assert(TH_WAIT(th_log_contains(gw.proc, "draining"), 5000), "no drain logged");
	cr_assert_eq(th_ws_send_raw(half, rest, sizeof(rest) - 1), 0);
	status = th_ws_read_http(half, 5000);
	cr_assert_eq(status, 503, "status %d: %s", status, half->resp ? half->resp : "");
	cr_assert(strstr(half->resp, "draining"), "%s", half->resp);
	th_ws_free(half);
	cr_assert_eq(th_wait_exit(gw.proc, 5000 + 3000), 0);
}
