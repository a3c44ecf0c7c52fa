/* gw_cluster (the gateway's router link) in this process, against a real
 * Redis and a real herald-router: interest acks, deliveries of every kind
 * with exact bytes and offsets, in-band publish, resync after a router
 * restart and after a Redis restart, malformed frames. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "cm_loop.h"
#include "gateway/gw_cluster.c" /* the link under test (gateway objects are not linked here) */
#include "tests/integration/lib/th_cluster.h"
#include "tests/integration/lib/th_proc.h"

TestSuite(cluster_link, .init = th_setup, .fini = th_teardown, .timeout = 90);

#define MAXREC 4096

struct rec {
	int kind; /* 0 stream, 1 user, 2 all */
	char name[64];
	uint64_t off;
	uint8_t *data;
	size_t len;
};

struct fake {
	struct gw_cluster *c;
	char id[32];
	struct rec recs[MAXREC];
	int nrec;
	int batches, resyncs;
	/* what this fake gateway holds, re-announced on resync */
	char held[4096][24];
	bool held_user[4096];
	int nheld;
	int acks_ok, acks_failed;
};

static struct cm_loop *loop;

static void stop_loop(void *arg)
{
	cm_loop_stop(arg);
}

/* Runs the loop for about ms milliseconds. */
static void run_for(int ms)
{
	struct cm_timer *t = cm_timer_start(loop, (uint64_t)ms, false, stop_loop, loop);
	(void)t;
	cm_loop_run(loop);
}

/* Runs the loop until expr holds (true) or ms passed (false). */
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

static void add_rec(struct fake *f, int kind, const char *name, size_t nlen, uint64_t off,
		    const uint8_t *data, size_t len)
{
	struct rec *r;
	cr_assert(f->nrec < MAXREC);
	r = &f->recs[f->nrec++];
	r->kind = kind;
	snprintf(r->name, sizeof(r->name), "%.*s", (int)nlen, name);
	r->off = off;
	cr_assert_not_null(data, "payload pointers are never NULL");
	r->data = malloc(len + 1);
	memcpy(r->data, data, len);
	r->len = len;
}

static void cb_stream(void *ctx, const char *s, size_t sl, uint64_t off, const uint8_t *d, size_t l)
{
	add_rec(ctx, 0, s, sl, off, d, l);
}

static void cb_user(void *ctx, const char *u, size_t ul, uint64_t off, const uint8_t *d, size_t l)
{
	add_rec(ctx, 1, u, ul, off, d, l);
}

static void cb_all(void *ctx, const uint8_t *d, size_t l)
{
	add_rec(ctx, 2, "", 0, 0, d, l);
}

static void cb_batch_end(void *ctx)
{
	((struct fake *)ctx)->batches++;
}

static void cb_resync(void *ctx)
{
	struct fake *f = ctx;
	f->resyncs++;
	for (int i = 0; i < f->nheld; i++)
		gw_cluster_resync_add(f->c, f->held_user[i], f->held[i], strlen(f->held[i]));
	gw_cluster_resync_done(f->c);
}

static const struct gw_cluster_cbs cbs = {
	.deliver_stream = cb_stream, .deliver_user = cb_user, .deliver_all = cb_all,
	.batch_end = cb_batch_end, .resync = cb_resync,
};

static void fake_start(struct fake *f, const char *id, int redis_port)
{
	struct gw_cluster_opts o = {
		.redis_host = "127.0.0.1", .redis_port = redis_port, .prefix = "herald",
		.gateway_id = id, .threads = 1, .version = "test",
	};
	memset(f, 0, sizeof(*f));
	snprintf(f->id, sizeof(f->id), "%s", id);
	f->c = gw_cluster_new(loop, &o, &cbs, f);
}

static void fake_free(struct fake *f)
{
	gw_cluster_free(f->c);
	for (int i = 0; i < f->nrec; i++)
		free(f->recs[i].data);
	f->nrec = 0;
}

static void on_ack(void *arg, bool ok)
{
	struct fake *f = arg;
	if (ok)
		f->acks_ok++;
	else
		f->acks_failed++;
}

/* Subscribes the fake gateway to a stream (or marks a user online) and, for
 * streams, waits for the router's ack. */
static void hold(struct fake *f, const char *name, bool is_user)
{
	int before = f->acks_ok;
	cr_assert(f->nheld < 4096);
	snprintf(f->held[f->nheld], sizeof(f->held[0]), "%s", name);
	f->held_user[f->nheld++] = is_user;
	if (is_user) {
		gw_cluster_user(f->c, name, strlen(name), true);
		return;
	}
	gw_cluster_interest(f->c, name, strlen(name), true, on_ack, f);
	cr_assert(PUMP(f->acks_ok > before, 6000), "%s: no ack for %s", f->id, name);
}

static bool link_up(struct fake *f)
{
	struct gw_cluster_stats st;
	gw_cluster_get_stats(f->c, &st);
	return st.redis_up;
}

static int count_kind(struct fake *f, int kind, const char *name)
{
	int n = 0;
	for (int i = 0; i < f->nrec; i++)
		n += f->recs[i].kind == kind && !strcmp(f->recs[i].name, name);
	return n;
}

static struct th_proc *redis;
static struct th_router router;
static struct fake A, B;

static void start_all(void)
{
	loop = cm_loop_new(256);
	redis = th_redis_start();
	th_router_start(&router, redis->port, NULL);
	fake_start(&A, "gw-a", redis->port);
	fake_start(&B, "gw-b", redis->port);
	cr_assert(PUMP(link_up(&A) && link_up(&B), 5000));
	cr_assert(PUMP(th_router_gateways(&router, NULL, 0) == 2, 5000));
}

static void stop_all(void)
{
	fake_free(&A);
	fake_free(&B);
	run_for(20);
}

Test(cluster_link, deliveries_reach_holders_with_exact_bytes_and_offsets)
{
	static const uint8_t bin[] = { 'x', 0x00, 0xff, 0xc3, 0x28, 0x00, '\n' };
	char payload[32];

	start_all();
	hold(&A, "clan:7", false);
	hold(&B, "clan:7", false);
	hold(&A, "solo", false);
	for (int i = 1; i <= 50; i++) {
		int n = snprintf(payload, sizeof(payload), "msg-%d", i);
		cr_assert(th_redis_publish(redis->port, "herald:stream:clan:7", payload, (size_t)n) == 1);
	}
	th_redis_publish(redis->port, "herald:stream:clan:7", bin, sizeof(bin));
	th_redis_publish(redis->port, "herald:stream:solo", "only-a", 6);
	th_redis_publish(redis->port, "herald:stream:nobody", "dropped", 7);
	cr_assert(PUMP(count_kind(&A, 0, "clan:7") == 51 && count_kind(&B, 0, "clan:7") == 51 &&
		       count_kind(&A, 0, "solo") == 1, 5000));
	for (struct fake *f = &A; f; f = f == &A ? &B : NULL) {
		uint64_t want = 1;
		for (int i = 0; i < f->nrec; i++) {
			struct rec *r = &f->recs[i];
			if (strcmp(r->name, "clan:7"))
				continue;
			cr_assert_eq(r->off, want, "%s: offset %llu, want %llu", f->id,
				     (unsigned long long)r->off, (unsigned long long)want);
			if (want <= 50) {
				int n = snprintf(payload, sizeof(payload), "msg-%llu",
						 (unsigned long long)want);
				cr_assert(r->len == (size_t)n && !memcmp(r->data, payload, (size_t)n));
			} else {
				cr_assert(r->len == sizeof(bin) && !memcmp(r->data, bin, sizeof(bin)),
					  "binary payload with NULs arrives unchanged");
			}
			want++;
		}
	}
	cr_assert_eq(count_kind(&B, 0, "solo"), 0);
	cr_assert(A.batches > 0 && A.batches <= 52);
	/* the router saved the counters */
	long long off;
	cr_assert(TH_WAIT(th_redis_hget_ll(redis->port, "herald:offsets", "clan:7", &off) && off == 51, 3000));
	stop_all();
}

Test(cluster_link, users_everyone_and_inband_publish)
{
	start_all();
	hold(&A, "u1", true);
	hold(&B, "u2", true);
	hold(&A, "room", false);
	hold(&B, "room", false);
	/* the user presence has no ack: wait until the router holds it */
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_router_users", NULL) == 2, 3000));
	th_redis_publish(redis->port, "herald:user:u1", "dm-1", 4);
	th_redis_publish(redis->port, "herald:user:u1", "dm-2", 4);
	th_redis_publish(redis->port, "herald:user:u2", "dm-b", 4);
	th_redis_publish(redis->port, "herald:all", "everyone", 8);
	gw_cluster_publish(A.c, "room", 4, (const uint8_t *)"from-a\0x", 8);
	cr_assert(PUMP(count_kind(&A, 1, "u1") == 2 && count_kind(&B, 1, "u2") == 1 &&
		       count_kind(&A, 2, "") == 1 && count_kind(&B, 2, "") == 1 &&
		       count_kind(&A, 0, "room") == 1 && count_kind(&B, 0, "room") == 1, 5000));
	cr_assert_eq(count_kind(&B, 1, "u1"), 0);
	for (int i = 0, k = 0; i < A.nrec; i++)
		if (A.recs[i].kind == 1)
			cr_assert_eq(A.recs[i].off, (uint64_t)++k, "user streams are numbered");
	for (int i = 0; i < B.nrec; i++) {
		if (B.recs[i].kind == 2)
			cr_assert_eq(B.recs[i].off, 0);
		if (B.recs[i].kind == 0) {
			cr_assert_eq(B.recs[i].len, 8);
			cr_assert(!memcmp(B.recs[i].data, "from-a\0x", 8));
		}
	}
	stop_all();
}

Test(cluster_link, ccu_and_goodbye)
{
	start_all();
	gw_cluster_set_stats(A.c, 17, 3);
	gw_cluster_set_stats(B.c, 4, 1);
	cr_assert(PUMP(th_router_gw_ccu(&router, "gw-a") == 17 &&
		       th_router_gw_ccu(&router, "gw-b") == 4, 5000));
	cr_assert(PUMP(th_ccu_hash(redis->port, "gw-a") == 17 && th_ccu_hash(redis->port, "gw-b") == 4,
		       5000));
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_cluster_ccu", NULL) == 21, 3000));
	fake_free(&B); /* says goodbye */
	cr_assert(PUMP(th_router_gateways(&router, NULL, 0) == 1 &&
		       th_ccu_hash(redis->port, "gw-b") == -1, 3000));
	fake_free(&A);
}

Test(cluster_link, silent_gateway_is_dropped)
{
	struct th_gwrow rows[4];
	start_all();
	gw_cluster_set_stats(B.c, 9, 0);
	cr_assert(PUMP(th_ccu_hash(redis->port, "gw-b") == 9, 5000));
	/* B goes silent without a goodbye: stop its heartbeats and its Redis
	 * connections, as if the process died. */
	cm_timer_stop(B.c->tick);
	B.c->tick = NULL;
	cm_redis_free(B.c->sub);
	cm_redis_free(B.c->pub);
	B.c->sub = cm_redis_new(loop, "127.0.0.1", 1, "dead", &(struct cm_redis_cbs){ .up = pub_up }, B.c);
	B.c->pub = cm_redis_new(loop, "127.0.0.1", 1, "dead", &(struct cm_redis_cbs){ .up = pub_up }, B.c);
	cr_assert(PUMP(th_router_gateways(&router, rows, 4) == 1 &&
		       th_ccu_hash(redis->port, "gw-b") == -1, 8000),
		  "a silent gateway leaves /api/gateways and herald:ccu");
	cr_assert_str_eq(rows[0].id, "gw-a");
	stop_all();
}

/* The router lists n gateways, all in sync. */
static bool all_up(int n)
{
	struct th_gwrow rows[8];
	int k = th_router_gateways(&router, rows, 8);
	if (k != n)
		return false;
	for (int i = 0; i < k; i++)
		if (strcmp(rows[i].state, "up"))
			return false;
	return true;
}

Test(cluster_link, router_restart_resyncs_and_offsets_continue)
{
	start_all();
	hold(&A, "s", false);
	hold(&B, "s", false);
	for (int i = 0; i < 10; i++)
		th_redis_publish(redis->port, "herald:stream:s", "before", 6);
	cr_assert(PUMP(count_kind(&A, 0, "s") == 10 && count_kind(&B, 0, "s") == 10, 5000));
	th_kill9(router.proc);
	th_restart(router.proc);
	cr_assert(th_wait_http_200(router.admin_port, "/api/gateways", 5000) == 0);
	/* the gateways are asked to resync and announce "s" again */
	cr_assert(PUMP(A.resyncs >= 2 && B.resyncs >= 2 && all_up(2), 5000),
		  "resyncs %d %d", A.resyncs, B.resyncs);
	th_redis_publish(redis->port, "herald:stream:s", "after", 5);
	cr_assert(PUMP(count_kind(&A, 0, "s") == 11 && count_kind(&B, 0, "s") == 11, 5000));
	cr_assert_eq(A.recs[A.nrec - 1].off, 11, "offsets continue across a router restart");
	cr_assert_eq(B.recs[B.nrec - 1].off, 11);
	stop_all();
}

Test(cluster_link, redis_restart_reconnects_and_resyncs)
{
	struct gw_cluster_stats st;
	start_all();
	hold(&A, "s", false);
	hold(&B, "s", false);
	th_redis_publish(redis->port, "herald:stream:s", "one", 3);
	cr_assert(PUMP(count_kind(&A, 0, "s") == 1 && count_kind(&B, 0, "s") == 1, 5000));
	th_kill9(redis);
	run_for(300);
	cr_assert_not(link_up(&A));
	th_restart(redis);
	cr_assert(th_wait_port(redis->port, 5000) == 0);
	/* Back: everything reconnects, the gateways re-announce "s". Deliver
	 * until one gets through (the first publishes may precede resubscribing). */
	uint64_t t0 = cm_now_ms();
	cr_assert(PUMP((th_redis_publish(redis->port, "herald:stream:s", "two", 3),
			count_kind(&A, 0, "s") >= 2 && count_kind(&B, 0, "s") >= 2), 5000));
	cm_log(CM_LOG_INFO, "delivery back %llu ms after Redis accepted again",
	       (unsigned long long)(cm_now_ms() - t0));
	/* offsets went on from where the router's memory was (probes sent
	 * before a gateway had resubscribed are lost: gaps, never repeats) */
	cr_assert_geq(A.recs[1].off, 2);
	cr_assert_geq(B.recs[1].off, 2);
	for (int i = 2; i < A.nrec; i++)
		cr_assert_gt(A.recs[i].off, A.recs[i - 1].off);
	/* once both are back, everything arrives, in order, on both */
	cr_assert(PUMP(th_router_metric(&router, "herald_router_streams", NULL) == 1, 3000));
	int na = A.nrec, nb = B.nrec;
	th_redis_publish(redis->port, "herald:stream:s", "three", 5);
	cr_assert(PUMP(A.nrec > na && B.nrec > nb, 3000));
	cr_assert_eq(A.recs[A.nrec - 1].off, B.recs[B.nrec - 1].off);
	/* and the new Redis got the counters back */
	long long off;
	cr_assert(TH_WAIT(th_redis_hget_ll(redis->port, "herald:offsets", "s", &off) &&
			  off >= 2, 3000));
	gw_cluster_get_stats(A.c, &st);
	cr_assert(st.redis_reconnects >= 2);
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_router_redis_reconnects_total", NULL) >= 2, 3000));
	stop_all();
}

Test(cluster_link, malformed_frames_are_counted_and_dropped)
{
	struct gw_cluster_stats st;
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };

	start_all();
	hold(&A, "s", false);
	th_redis_publish(redis->port, "herald:gw:gw-a", junk, sizeof(junk));
	th_redis_publish(redis->port, "herald:gw:gw-a", "\x08", 1); /* truncated varint */
	th_redis_publish(redis->port, "herald:router", junk, sizeof(junk));
	th_redis_publish(redis->port, "herald:router", "hello", 5);
	cr_assert(PUMP((gw_cluster_get_stats(A.c, &st), st.frames_bad == 2), 3000));
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_router_bad_frames_total", NULL) == 2, 3000));
	/* both sides still work */
	th_redis_publish(redis->port, "herald:stream:s", "ok", 2);
	cr_assert(PUMP(count_kind(&A, 0, "s") == 1, 3000));
	cr_assert(th_alive(router.proc));
	stop_all();
}

Test(cluster_link, interest_without_router_fails_after_5s)
{
	loop = cm_loop_new(256);
	redis = th_redis_start();
	fake_start(&A, "gw-a", redis->port);
	cr_assert(PUMP(link_up(&A), 5000));
	gw_cluster_interest(A.c, "s", 1, true, on_ack, &A);
	cr_assert(PUMP(A.acks_failed == 1, 7000));
	cr_assert_eq(A.acks_ok, 0);
	/* a router arriving later acks the next one */
	th_router_start(&router, redis->port, NULL);
	gw_cluster_interest(A.c, "t", 1, true, on_ack, &A);
	cr_assert(PUMP(A.acks_ok == 1, 5000));
	fake_free(&A);
}

/* The gateway's in-place frame decoder against protobuf-c: the same
 * deliveries, acks and resync requests for random valid frames, and for
 * mutated frames it accepts nothing protobuf-c would reject or read
 * differently. No Redis needed. */
static int dec_resyncs;
static uint64_t dec_epoch;

static void dec_resync(void *ctx)
{
	(void)ctx;
	dec_resyncs++;
}

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Compares what the decoder delivered (in f and dec_*) with m. Deliveries
 * the link skips on purpose (unknown kinds, no name) are not expected. */
static bool same_as(struct fake *f, const Herald__Cluster__RouterMessage *m)
{
	int k = 0;

	for (size_t i = 0; i < m->n_deliveries; i++) {
		const Herald__Cluster__Delivery *d = m->deliveries[i];
		struct rec *r;
		if (d->kind > 2 || (d->kind != 2 && d->name.len == 0))
			continue;
		if (k >= f->nrec)
			return false;
		r = &f->recs[k++];
		if (r->kind != (int)d->kind || r->len != d->data.len ||
		    (d->data.len && memcmp(r->data, d->data.data, d->data.len)))
			return false;
		if (d->kind != 2 && (r->off != d->offset || d->name.len >= sizeof(r->name) ||
				     memcmp(r->name, d->name.data, d->name.len)))
			return false;
	}
	if (k != f->nrec)
		return false;
	if (!!m->resync_request != (dec_resyncs > 0))
		return false;
	if (m->resync_request && dec_epoch != m->resync_request->epoch)
		return false;
	return true;
}

Test(cluster_link, frame_decoder_matches_protobuf_c)
{
	struct gw_cluster *c;
	struct fake f;
	uint8_t *buf = malloc(1 << 16);
	const struct gw_cluster_cbs dcbs = {
		.deliver_stream = cb_stream, .deliver_user = cb_user, .deliver_all = cb_all,
		.resync = dec_resync,
	};
	int accepted_mutants = 0;

	loop = cm_loop_new(8);
	memset(&f, 0, sizeof(f));
	c = cm_xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->cbs = dcbs;
	c->ctx = &f;
	for (int iter = 0; iter < 3000; iter++) {
		Herald__Cluster__RouterMessage m = HERALD__CLUSTER__ROUTER_MESSAGE__INIT;
		Herald__Cluster__ResyncRequest rr = HERALD__CLUSTER__RESYNC_REQUEST__INIT;
		Herald__Cluster__Delivery ds[8], *dp[8];
		uint64_t acks[4];
		uint8_t data[8][40];
		char names[8][16];
		size_t n;

		m.version = 1 + rnd() % 3;
		m.router_boot_id = rnd();
		m.n_deliveries = rnd() % 8;
		for (size_t i = 0; i < m.n_deliveries; i++) {
			herald__cluster__delivery__init(&ds[i]);
			ds[i].kind = (Herald__Cluster__Delivery__Kind)(rnd() % 3);
			snprintf(names[i], sizeof(names[i]), "n%llu", (unsigned long long)(rnd() % 1000));
			if (ds[i].kind != 2) {
				ds[i].name.data = (uint8_t *)names[i];
				ds[i].name.len = strlen(names[i]);
				ds[i].offset = rnd() % 5 ? rnd() >> (rnd() % 64) : 0;
			}
			ds[i].data.len = rnd() % 40;
			for (size_t k = 0; k < ds[i].data.len; k++)
				data[i][k] = (uint8_t)rnd();
			ds[i].data.data = data[i];
			dp[i] = &ds[i];
		}
		m.deliveries = dp;
		m.n_interest_acks = rnd() % 4;
		for (size_t i = 0; i < m.n_interest_acks; i++)
			acks[i] = rnd() >> (rnd() % 64);
		m.interest_acks = acks;
		if (rnd() % 3 == 0) {
			rr.epoch = rnd();
			m.resync_request = &rr;
		}
		n = herald__cluster__router_message__pack(&m, buf);
		if (iter % 2) {
			/* mutate: flip bytes or truncate */
			if (rnd() % 2 && n)
				n = rnd() % n;
			for (int k = rnd() % 3; k >= 0 && n; k--)
				buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
		}
		for (int i = 0; i < f.nrec; i++)
			free(f.recs[i].data);
		f.nrec = 0;
		dec_resyncs = 0;
		c->resyncing = false;
		c->router_boot = 0;
		uint64_t bad0 = c->frames_bad;
		on_router_frame(c, buf, n);
		dec_epoch = c->resync_epoch;
		bool ours = c->frames_bad == bad0;
		Herald__Cluster__RouterMessage *ref = herald__cluster__router_message__unpack(NULL, n, buf);
		if (!(iter % 2))
			cr_assert(ours && ref, "a valid frame was rejected (iter %d)", iter);
		if (ours) {
			cr_assert_not_null(ref, "accepted a frame protobuf-c rejects (iter %d)", iter);
			cr_assert_neq(ref->version, 0);
			cr_assert(same_as(&f, ref), "decoded differently from protobuf-c (iter %d)", iter);
			accepted_mutants += iter % 2;
		}
		if (ref)
			herald__cluster__router_message__free_unpacked(ref, NULL);
	}
	cr_log_info("mutated frames accepted (and checked): %d of 1500", accepted_mutants);
	for (int i = 0; i < f.nrec; i++)
		free(f.recs[i].data);
	free(c);
	free(buf);
}

Test(cluster_link, a_large_resync_is_chunked_and_complete)
{
	char name[24];

	start_all();
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		snprintf(A.held[A.nheld], sizeof(A.held[0]), "%s", name);
		A.held_user[A.nheld++] = false;
		gw_cluster_interest(A.c, name, strlen(name), true, on_ack, &A);
	}
	cr_assert(PUMP(A.acks_ok == 3000, 10000), "acks %d", A.acks_ok);
	cr_assert(TH_WAIT(th_router_metric(&router, "herald_router_streams", NULL) == 3000, 3000));
	th_kill9(router.proc);
	th_restart(router.proc);
	cr_assert(th_wait_http_200(router.admin_port, "/api/gateways", 5000) == 0);
	cr_assert(PUMP(all_up(2) && th_router_metric(&router, "herald_router_streams", NULL) == 3000,
		       8000), "streams after the resync: %g",
		  th_router_metric(&router, "herald_router_streams", NULL));
	th_redis_publish(redis->port, "herald:stream:s2999", "last", 4);
	cr_assert(PUMP(count_kind(&A, 0, "s2999") == 1, 3000));
	stop_all();
}
