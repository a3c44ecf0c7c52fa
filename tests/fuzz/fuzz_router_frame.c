// fuzz-sources: router/rt_frame.c router/rt_gw.c router/rt_map.c router/rt_table.c common/cm_buf.c common/cm_log.c common/cm_client.c common/cm_b64.c common/cm_utf8.c common/cm_packet.c common/cm_ws.c build/gen/proto/cluster.pb-c.c build/gen/proto/client.pb-c.c tests/fuzz/fake_redis.c
/* fuzz_router_frame — the router's Redis inputs against arbitrary bytes.
 *
 * An in-process router (rt_router.c is included to reach its subscriber
 * callback on_sub_msg and its timers; no Redis: every command goes to the
 * capture hook, and the loop clock and the Redis client are stubs below) is
 * driven by a script read from the input, one record per op (the low nibble
 * of the op byte; the high nibble is flags):
 *   0 EVENT   u16 len, bytes: a raw GatewayEvent on <prefix>:router
 *   1 STREAM  u8 len, name, u16 len, payload: a pmessage (flag 2: message) on
 *             <prefix>:stream:<name> (flag 1: the name is the whole channel)
 *   2 USER    the same on <prefix>:user:<name>
 *   3 ALL     u16 len, payload: a message on <prefix>:all
 *   4 GW      a well-formed GatewayEvent built from the input (hello,
 *             heartbeat, interest, user, publish, resync answer with the
 *             epoch the router asked for, bye) to reach deep states
 *   5 FLUSH   end of a loop turn
 *   6 TIME    end of the turn, clock += u16 ms, rt_router_expire
 *   7 TIMERS  end of the turn, the ccu/sample/sweep timers, history, stats
 *   8 SHAPE   a malformed pub/sub reply (odd element counts and types)
 *   9 OFFSETS an HGETALL <prefix>:offsets / HKEYS <prefix>:ccu answer with
 *             arbitrary fields and values (once per input, as at start;
 *             flag 1: a lost connection's NULL reply, flag 2: an error)
 *  10 RECONNECT the write connection comes back (counters written again)
 *
 * Oracles (abort() on failure, besides ASan/UBSan): after every op the
 * gateway registry, the flush list and the tables agree (check_state);
 * every command the router emits is well-formed RESP and one of PUBLISH,
 * HSET, HDEL; every PUBLISH goes to a live gateway's channel and decodes
 * with protobuf-c with version 1 and the router's boot id; delivery offsets
 * per (gateway, stream) only grow, and never exceed the offset last saved
 * with HSET <prefix>:offsets before the delivery left; a pub/sub publish
 * adds exactly one delivery per holder (all gateways for <prefix>:all) and
 * advances the stream's counter by one when it has holders; a well-formed
 * event is applied (interest and presence held or released, an add with a
 * request id acknowledged, a bye unregisters unless an earlier process
 * under that id sent it, an event of the process a restart replaced changes
 * nothing within a second of the restart, the names of a resync answer to the epoch asked
 * for are held, and once it is done the gateway is up and holds nothing
 * the answer did not confirm). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_client.h"
#include "router/rt_router.c"

#define FAIL(...)                                                     \
	do {                                                          \
		fprintf(stderr, "fuzz_router_frame: " __VA_ARGS__);   \
		fputc('\n', stderr);                                  \
		abort();                                              \
	} while (0)

/* ------------------ stubs: clock, timers (Redis: tests/fuzz/fake_redis.c) */

static uint64_t fake_now = 1000;

uint64_t cm_loop_now(struct cm_loop *loop)
{
	(void)loop;
	return fake_now;
}

uint64_t cm_wall_ms(void)
{
	return 1700000000000ull + fake_now;
}

/* a fixed boot id: runs stay reproducible */
uint64_t cm_random64(void)
{
	return 0x5eed5eed5eed5eedull;
}

struct cm_timer *cm_timer_start(struct cm_loop *loop, uint64_t ms, bool repeat, cm_fn fn,
				void *arg)
{
	(void)loop, (void)ms, (void)repeat, (void)fn, (void)arg;
	FAIL("a timer with no_redis");
}

void cm_timer_stop(struct cm_timer *t)
{
	if (t)
		FAIL("a timer with no_redis");
}


/* ----------------------------------------------------- what the router said */

/* (kind, name) -> value, optionally per gateway: the offsets last saved in
 * the offsets hash, and the last offset each gateway was sent. Linear: an
 * input makes few names. */
struct rec {
	char *gw, *name;
	size_t gwlen, nlen;
	int kind;
	uint64_t v;
};

struct recs {
	struct rec *v;
	size_t n, cap;
};

static struct recs saved, last;
static struct rt_router *r;
static uint8_t *cmd_copy;
static size_t cmd_copy_cap;

static struct rec *rec_find(struct recs *rs, const char *gw, size_t gwlen, int kind,
			    const char *name, size_t nlen, bool add)
{
	struct rec *x;

	for (size_t i = 0; i < rs->n; i++) {
		x = &rs->v[i];
		if (x->kind == kind && x->nlen == nlen && x->gwlen == gwlen &&
		    !memcmp(x->name, name, nlen) && (!gwlen || !memcmp(x->gw, gw, gwlen)))
			return x;
	}
	if (!add)
		return NULL;
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 64;
		rs->v = realloc(rs->v, rs->cap * sizeof(*rs->v));
		if (!rs->v)
			abort();
	}
	x = &rs->v[rs->n++];
	x->gw = gwlen ? cm_xstrndup(gw, gwlen) : NULL;
	x->gwlen = gwlen;
	x->name = cm_xstrndup(name, nlen);
	x->nlen = nlen;
	x->kind = kind;
	x->v = 0;
	return x;
}

/* Forgets every record of (kind, name) (its counter was deleted). */
static void rec_forget(struct recs *rs, int kind, const char *name, size_t nlen)
{
	for (size_t i = 0; i < rs->n;) {
		struct rec *x = &rs->v[i];
		if (x->kind == kind && x->nlen == nlen && !memcmp(x->name, name, nlen)) {
			free(x->gw);
			free(x->name);
			rs->v[i] = rs->v[--rs->n];
		} else {
			i++;
		}
	}
}

static void recs_clear(struct recs *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->v[i].gw);
		free(rs->v[i].name);
	}
	rs->n = 0;
}

/* An offsets hash field as the router reads it back at start. */
static void field_split(const char *f, size_t n, int *kind, const char **name, size_t *nlen)
{
	if (n > 5 && !memcmp(f, "user:", 5)) {
		*kind = RT_USER;
		*name = f + 5;
		*nlen = n - 5;
	} else {
		*kind = RT_STREAM;
		*name = f;
		*nlen = n;
	}
}

/* A stream named "user:<x>" shares its offsets field with user <x> (the
 * gateway never sends such interests; a malformed frame can). While both
 * exist, the saved offset of either cannot be told apart: not checked. */
static bool field_ambiguous(int kind, const char *name, size_t nlen)
{
	char full[RT_NAME_MAX + 6];

	if (kind == RT_STREAM)
		return nlen >= 5 && !memcmp(name, "user:", 5);
	if (nlen + 5 > RT_NAME_MAX)
		return false;
	memcpy(full, "user:", 5);
	memcpy(full + 5, name, nlen);
	return rt_table_get(r->t, RT_STREAM, full, nlen + 5) != NULL;
}

static bool parse_u64(const char *s, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (!n || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	*v = x;
	return true;
}

static bool arg_is(const char *a, size_t n, const char *s)
{
	return n == strlen(s) && !memcmp(a, s, n);
}

static void check_publish(const char *chan, size_t clen, const uint8_t *p, size_t n)
{
	static const char pre[] = "herald:gw:";
	Herald__Cluster__RouterMessage *m;
	struct rt_gw *gw;
	const char *id = chan + sizeof(pre) - 1;
	size_t idlen = clen - (sizeof(pre) - 1);

	if (clen <= sizeof(pre) - 1 || memcmp(chan, pre, sizeof(pre) - 1))
		FAIL("PUBLISH to %.*s", (int)clen, chan);
	gw = rt_gws_find(r->g, id, idlen);
	if (!gw)
		FAIL("PUBLISH to a gateway that is not registered: %.*s", (int)clen, chan);
	m = herald__cluster__router_message__unpack(NULL, n, p);
	if (!m)
		FAIL("a RouterMessage protobuf-c cannot decode (%zu bytes)", n);
	if (m->version != RT_FRAME_VERSION || m->router_boot_id != r->boot_id)
		FAIL("frame version %u boot %llx", m->version,
		     (unsigned long long)m->router_boot_id);
	for (size_t i = 0; i < m->n_deliveries; i++) {
		const Herald__Cluster__Delivery *d = m->deliveries[i];
		const char *name = (const char *)d->name.data;
		int kind = d->kind == HERALD__CLUSTER__DELIVERY__KIND__USER ? RT_USER : RT_STREAM;
		struct rec *x;

		if (d->data.len > r->o.max_payload)
			FAIL("a delivery of %zu bytes (max %zu)", d->data.len, r->o.max_payload);
		if (d->kind == HERALD__CLUSTER__DELIVERY__KIND__ALL) {
			if (d->name.len || d->offset)
				FAIL("an ALL delivery with a name or an offset");
			continue;
		}
		if (d->kind != HERALD__CLUSTER__DELIVERY__KIND__STREAM &&
		    d->kind != HERALD__CLUSTER__DELIVERY__KIND__USER)
			FAIL("delivery kind %d", d->kind);
		if (!d->name.len || d->name.len > RT_NAME_MAX || !d->offset)
			FAIL("a delivery with name length %zu offset %llu", d->name.len,
			     (unsigned long long)d->offset);
		x = rec_find(&last, id, idlen, kind, name, d->name.len, true);
		if (d->offset <= x->v)
			FAIL("offset %llu after %llu to %s for %.*s", (unsigned long long)d->offset,
			     (unsigned long long)x->v, gw->id, (int)d->name.len, name);
		x->v = d->offset;
		if (field_ambiguous(kind, name, d->name.len))
			continue;
		x = rec_find(&saved, NULL, 0, kind, name, d->name.len, false);
		if (!x || x->v < d->offset)
			FAIL("offset %llu of %.*s left before it was saved (saved %llu)",
			     (unsigned long long)d->offset, (int)d->name.len, name,
			     x ? (unsigned long long)x->v : 0ull);
	}
	for (size_t i = 0; i < m->n_interest_acks; i++)
		if (!m->interest_acks[i])
			FAIL("an ack of request id 0");
	if (m->resync_request && m->resync_request->epoch != gw->epoch)
		FAIL("resync epoch %llu, the gateway's is %llu",
		     (unsigned long long)m->resync_request->epoch, (unsigned long long)gw->epoch);
	herald__cluster__router_message__free_unpacked(m, NULL);
}

static void check_hset(const char **argv, const size_t *alen, size_t argc)
{
	uint64_t v;

	if (argc < 4 || argc % 2)
		FAIL("HSET with %zu arguments", argc);
	if (arg_is(argv[1], alen[1], "herald:ccu")) {
		for (size_t i = 2; i < argc; i += 2)
			if (!rt_gws_find(r->g, argv[i], alen[i]) || !parse_u64(argv[i + 1], alen[i + 1], &v))
				FAIL("HSET herald:ccu %.*s", (int)alen[i], argv[i]);
		return;
	}
	if (!arg_is(argv[1], alen[1], "herald:offsets"))
		FAIL("HSET %.*s", (int)alen[1], argv[1]);
	for (size_t i = 2; i < argc; i += 2) {
		int kind;
		const char *name;
		size_t nlen;
		struct rec *x;

		if (!parse_u64(argv[i + 1], alen[i + 1], &v) || !v)
			FAIL("HSET herald:offsets %.*s %.*s", (int)alen[i], argv[i],
			     (int)alen[i + 1], argv[i + 1]);
		field_split(argv[i], alen[i], &kind, &name, &nlen);
		if (field_ambiguous(kind, name, nlen))
			continue;
		x = rec_find(&saved, NULL, 0, kind, name, nlen, true);
		if (v < x->v)
			FAIL("saved offset of %.*s went down: %llu after %llu", (int)alen[i],
			     argv[i], (unsigned long long)v, (unsigned long long)x->v);
		x->v = v;
	}
}

static void check_hdel(const char **argv, const size_t *alen, size_t argc)
{
	if (argc < 3)
		FAIL("HDEL with %zu arguments", argc);
	if (arg_is(argv[1], alen[1], "herald:ccu"))
		return;
	if (!arg_is(argv[1], alen[1], "herald:offsets"))
		FAIL("HDEL %.*s", (int)alen[1], argv[1]);
	for (size_t i = 2; i < argc; i++) {
		int kind;
		const char *name;
		size_t nlen;
		struct rt_entry *e;

		field_split(argv[i], alen[i], &kind, &name, &nlen);
		/* Only counters nobody holds are deleted ("user:<x>" may be a
		 * stream's field: see field_ambiguous). */
		e = rt_table_get(r->t, kind, name, nlen);
		if (kind == RT_STREAM && !field_ambiguous(kind, name, nlen) && e && e->nh)
			FAIL("HDEL of a held counter %.*s", (int)alen[i], argv[i]);
		rec_forget(&saved, kind, name, nlen);
		rec_forget(&last, kind, name, nlen);
		if (kind == RT_USER) {
			/* ...and the stream "user:<x>" it may stand for */
			rec_forget(&saved, RT_STREAM, argv[i], alen[i]);
			rec_forget(&last, RT_STREAM, argv[i], alen[i]);
		}
	}
}

/* The send hook: parses the RESP command strictly and checks it against
 * the router's state at the moment it leaves. */
static void capture(void *arg, const char *cmd, size_t len)
{
	static const char **argv;
	static size_t *alen, cap;
	const char *p, *end;
	size_t argc;
	char *e;
	(void)arg;

	if (len + 1 > cmd_copy_cap) {
		cmd_copy_cap = len + 1;
		cmd_copy = realloc(cmd_copy, cmd_copy_cap);
		if (!cmd_copy)
			abort();
	}
	memcpy(cmd_copy, cmd, len);
	cmd_copy[len] = 0; /* for strtoul; the parser stops at len */
	p = (const char *)cmd_copy;
	end = p + len;
	if (len < 4 || *p != '*')
		FAIL("a command not starting with *");
	argc = strtoul(p + 1, &e, 10);
	p = e;
	if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || argc < 1 || argc > 1u << 20)
		FAIL("bad RESP array header");
	p += 2;
	if (argc > cap) {
		cap = argc;
		argv = realloc(argv, cap * sizeof(*argv));
		alen = realloc(alen, cap * sizeof(*alen));
		if (!argv || !alen)
			abort();
	}
	for (size_t i = 0; i < argc; i++) {
		size_t n;
		if (end - p < 4 || *p != '$')
			FAIL("bad RESP bulk header");
		n = strtoul(p + 1, &e, 10);
		p = e;
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
			FAIL("bad RESP bulk length");
		p += 2;
		if ((size_t)(end - p) < n + 2 || p[n] != '\r' || p[n + 1] != '\n')
			FAIL("bad RESP bulk");
		argv[i] = p;
		alen[i] = n;
		p += n + 2;
	}
	if (p != end)
		FAIL("bytes after the command");
	if (arg_is(argv[0], alen[0], "PUBLISH")) {
		if (argc != 3)
			FAIL("PUBLISH with %zu arguments", argc);
		check_publish(argv[1], alen[1], (const uint8_t *)argv[2], alen[2]);
	} else if (arg_is(argv[0], alen[0], "HSET")) {
		check_hset(argv, alen, argc);
	} else if (arg_is(argv[0], alen[0], "HDEL")) {
		check_hdel(argv, alen, argc);
	} else {
		FAIL("unexpected command %.*s", (int)alen[0], argv[0]);
	}
}

/* ------------------------------------------------------------- consistency */

struct chk {
	size_t n, held[2], dirty;
};

static void chk_entry(void *arg, struct rt_entry *e)
{
	struct chk *c = arg;

	c->n++;
	if (e->kind > RT_USER || e->key[0] != (e->kind == RT_USER ? 'u' : 's') || !e->len ||
	    e->len > RT_NAME_MAX || e->key[e->len + 1] != 0)
		FAIL("a malformed table entry");
	if (e->nh > e->caph || (e->nh == 0) != (e->empty_since != 0))
		FAIL("entry %s: %u holders, empty since %llu", rt_entry_name(e), e->nh,
		     (unsigned long long)e->empty_since);
	if (e->saved > e->offset || (!e->dirty && e->saved != e->offset))
		FAIL("entry %s: offset %llu saved %llu dirty %d", rt_entry_name(e),
		     (unsigned long long)e->offset, (unsigned long long)e->saved, e->dirty);
	c->dirty += e->dirty;
	if (e->nh)
		c->held[e->kind]++;
	for (uint32_t i = 0; i < e->nh; i++) {
		if (!rt_gws_at(r->g, e->h[i].gw))
			FAIL("entry %s held by gateway slot %u, which is empty", rt_entry_name(e),
			     e->h[i].gw);
		for (uint32_t j = 0; j < i; j++)
			if (e->h[j].gw == e->h[i].gw)
				FAIL("entry %s held twice by slot %u", rt_entry_name(e), e->h[i].gw);
	}
}

static bool in_flush(const struct rt_gw *gw)
{
	for (size_t i = 0; i < r->nflush; i++)
		if (r->flush[i] == gw)
			return true;
	return false;
}

static void check_state(void)
{
	struct chk c = { 0 };
	struct rt_stats st;
	size_t ngw = 0, ndirty;
	char chan[RT_GW_ID_MAX + 32];

	rt_table_each(r->t, chk_entry, &c);
	if (c.n != rt_table_count(r->t) || c.held[RT_STREAM] != rt_table_held(r->t, RT_STREAM) ||
	    c.held[RT_USER] != rt_table_held(r->t, RT_USER))
		FAIL("table counts: %zu/%zu entries, %zu/%zu streams, %zu/%zu users", c.n,
		     rt_table_count(r->t), c.held[0], rt_table_held(r->t, RT_STREAM), c.held[1],
		     rt_table_held(r->t, RT_USER));
	rt_table_dirty(r->t, &ndirty);
	if (ndirty != c.dirty)
		FAIL("%zu dirty entries listed, %zu marked", ndirty, c.dirty);

	for (size_t s = 0; s < rt_gws_end(r->g); s++) {
		struct rt_gw *gw = rt_gws_at(r->g, (uint16_t)s);
		if (!gw)
			continue;
		ngw++;
		if (gw->slot != s || rt_gws_find(r->g, gw->id, gw->id_len) != gw ||
		    strlen(gw->id) != gw->id_len || !valid_id((const uint8_t *)gw->id, gw->id_len))
			FAIL("gateway in slot %zu is inconsistent", s);
		snprintf(chan, sizeof(chan), "herald:gw:%s", gw->id);
		if (gw->chan_len != strlen(chan) || strcmp(gw->chan, chan))
			FAIL("gateway %s has channel %s", gw->id, gw->chan);
		if (gw->state != RT_GW_SYNCING && gw->state != RT_GW_UP)
			FAIL("gateway %s in state %d", gw->id, gw->state);
		if (gw->nacks > gw->capacks || ((gw->want_resync || gw->nacks) && !gw->queued))
			FAIL("gateway %s has work but is not queued", gw->id);
		if (gw->queued != in_flush(gw))
			FAIL("gateway %s queued %d but in the flush list %d", gw->id, gw->queued,
			     in_flush(gw));
		if (gw->queued && (!gw->out.open || rt_frame_size(&gw->out) == 0))
			FAIL("gateway %s queued without an open frame", gw->id);
	}
	if (ngw != rt_gws_count(r->g))
		FAIL("%zu gateways in slots, count says %zu", ngw, rt_gws_count(r->g));
	for (size_t i = 0; i < r->nflush; i++) {
		struct rt_gw *gw = r->flush[i];
		if (!gw)
			continue;
		if (rt_gws_at(r->g, gw->slot) != gw || !gw->queued)
			FAIL("a dead or unqueued gateway in the flush list");
		for (size_t j = 0; j < i; j++)
			if (r->flush[j] == gw)
				FAIL("gateway %s twice in the flush list", gw->id);
	}
	rt_router_stats(r, &st);
	if (st.gateways != ngw || st.streams != c.held[0] || st.users != c.held[1] ||
	    st.entries != c.n)
		FAIL("stats disagree with the tables");
}

/* ---------------------------------------------------------------- the input */

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t get8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t get16(struct in *in)
{
	uint16_t hi = get8(in);
	return (uint16_t)(hi << 8 | get8(in));
}

/* Up to want bytes of the input (fewer at its end). */
static const uint8_t *take(struct in *in, size_t want, size_t *got)
{
	const uint8_t *p = in->p;

	*got = want < in->n ? want : in->n;
	in->p += *got;
	in->n -= *got;
	return p;
}

/* ------------------------------------------------------------ Redis replies */

static redisReply *str_reply(int type, const void *p, size_t n)
{
	redisReply *x = cm_xcalloc(1, sizeof(*x));

	x->type = type;
	x->len = n;
	/* exact size plus hiredis's terminating NUL */
	x->str = cm_xmalloc(n + 1);
	if (n)
		memcpy(x->str, p, n);
	x->str[n] = 0;
	return x;
}

static redisReply *arr_reply(size_t n)
{
	redisReply *x = cm_xcalloc(1, sizeof(*x));

	x->type = REDIS_REPLY_ARRAY;
	x->elements = n;
	x->element = cm_xcalloc(n ? n : 1, sizeof(*x->element));
	return x;
}

static void free_reply(redisReply *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->elements; i++)
		free_reply(x->element[i]);
	free(x->element);
	free(x->str);
	free(x);
}

/* A (p)message on chan through the subscriber callback, as tag `what`. */
static void sub_msg(int what, bool pmessage, const char *pat, const void *chan, size_t clen,
		    const void *payload, size_t plen)
{
	redisReply *m;
	size_t i = 0;

	if (pmessage) {
		m = arr_reply(4);
		m->element[i++] = str_reply(REDIS_REPLY_STRING, "pmessage", 8);
		m->element[i++] = str_reply(REDIS_REPLY_STRING, pat, strlen(pat));
	} else {
		m = arr_reply(3);
		m->element[i++] = str_reply(REDIS_REPLY_STRING, "message", 7);
	}
	m->element[i++] = str_reply(REDIS_REPLY_STRING, chan, clen);
	m->element[i++] = str_reply(REDIS_REPLY_STRING, payload, plen);
	on_sub_msg(NULL, m, &r->tags[what]);
	free_reply(m);
}

/* ---------------------------------------------------------------------- ops */

enum {
	OP_EVENT, OP_STREAM, OP_USER, OP_ALL, OP_GW, OP_FLUSH, OP_TIME, OP_TIMERS, OP_SHAPE,
	OP_OFFSETS, OP_RECONNECT, OP_N
};

static bool offsets_read;

static void op_event(struct in *in)
{
	size_t n;
	const uint8_t *p = take(in, get16(in), &n);

	sub_msg(SUB_ROUTER, false, "", "herald:router", 13, p, n);
}

/* A publish on <prefix>:stream:<name> or <prefix>:user:<name>: exactly
 * one delivery per holder, and the counter moves by one when held. */
static void op_publish(struct in *in, bool user, unsigned flags)
{
	char chan[300];
	size_t nlen, plen, clen, pre = user ? r->user_pre : r->stream_pre;
	const uint8_t *name = take(in, get8(in), &nlen);
	const uint8_t *payload = take(in, get16(in), &plen);
	struct rt_entry *e = NULL;
	uint64_t off0 = 0, dl0 = r->st.deliveries_out;
	uint32_t nh = 0;

	if (flags & 1) {
		clen = nlen;
		memcpy(chan, name, nlen);
	} else {
		clen = (size_t)snprintf(chan, sizeof(chan), "herald:%s:", user ? "user" : "stream");
		memcpy(chan + clen, name, nlen);
		clen += nlen;
	}
	if (clen > pre) {
		e = rt_table_get(r->t, user ? RT_USER : RT_STREAM, chan + pre, clen - pre);
		if (e) {
			off0 = e->offset;
			nh = e->nh;
		}
	}
	sub_msg(user ? SUB_USER : SUB_STREAM, !(flags & 2), user ? "herald:user:*" : "herald:stream:*",
		chan, clen, payload, plen);
	if (plen > r->o.max_payload || clen <= pre)
		nh = 0;
	if (r->st.deliveries_out - dl0 != nh)
		FAIL("a publish to %.*s with %u holders made %llu deliveries", (int)clen, chan, nh,
		     (unsigned long long)(r->st.deliveries_out - dl0));
	if (e && e->offset != off0 + (nh ? 1 : 0))
		FAIL("a publish to %.*s moved the counter from %llu to %llu", (int)clen, chan,
		     (unsigned long long)off0, (unsigned long long)e->offset);
}

static void op_all(struct in *in)
{
	size_t plen;
	const uint8_t *payload = take(in, get16(in), &plen);
	uint64_t dl0 = r->st.deliveries_out;
	size_t ngw = plen > r->o.max_payload ? 0 : rt_gws_count(r->g);

	sub_msg(SUB_ALL, false, "", "herald:all", 10, payload, plen);
	if (r->st.deliveries_out - dl0 != ngw)
		FAIL("a publish to all with %zu gateways made %llu deliveries", ngw,
		     (unsigned long long)(r->st.deliveries_out - dl0));
}

static bool holds(const struct rt_gw *gw, enum rt_kind kind, const ProtobufCBinaryData *name)
{
	struct rt_entry *e = rt_table_get(r->t, kind, (const char *)name->data, name->len);
	return e && rt_entry_holder(e, gw->slot);
}

static bool name_ok(const ProtobufCBinaryData *name)
{
	return name->len >= 1 && name->len <= RT_NAME_MAX;
}

/* A stream the router takes: a client stream name, not a reserved user: one. */
static bool stream_ok(const ProtobufCBinaryData *name)
{
	return cm_stream_valid((const char *)name->data, name->len) &&
	       !(name->len >= 5 && !memcmp(name->data, "user:", 5));
}

struct mark_chk {
	const struct rt_gw *gw;
	bool bad;
};

static void chk_mark(void *arg, struct rt_entry *e)
{
	struct mark_chk *c = arg;
	struct rt_holder *h = rt_entry_holder(e, c->gw->slot);
	if (h && h->mark != c->gw->mark)
		c->bad = true;
}

/* What a well-formed event from gateway id must have done. */
static void check_gw_event(const Herald__Cluster__GatewayEvent *ev, const char *id,
			   bool answer_counts, bool bye_counts, bool straggler)
{
	struct rt_gw *gw = rt_gws_find(r->g, id, strlen(id));

	if (!ev->version) {
		return; /* dropped; nothing to say */
	} else if (ev->body_case == HERALD__CLUSTER__GATEWAY_EVENT__BODY_BYE) {
		if (bye_counts && gw)
			FAIL("gateway %s still registered after its bye", id);
		if (!bye_counts && !gw)
			FAIL("gateway %s dropped by an earlier process's bye", id);
		return;
	} else if (straggler) {
		if (!gw || gw->boot_id == ev->boot_id)
			FAIL("gateway %s taken over by its replaced process's late event", id);
		return;
	} else if (!gw) {
		FAIL("gateway %s not registered after an event", id);
	} else if (gw->boot_id != ev->boot_id) {
		FAIL("gateway %s boot id %llu, the event's %llu", id,
		     (unsigned long long)gw->boot_id, (unsigned long long)ev->boot_id);
	}
	switch (ev->body_case) {
	case HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST: {
		const Herald__Cluster__Interest *in = ev->interest;
		if (!name_ok(&in->stream) || !stream_ok(&in->stream))
			break;
		if (holds(gw, RT_STREAM, &in->stream) != in->add)
			FAIL("gateway %s: interest %s in %.*s not applied", id,
			     in->add ? "add" : "remove", (int)in->stream.len, in->stream.data);
		if (in->add && in->request_id &&
		    (!gw->nacks || gw->acks[gw->nacks - 1] != in->request_id || !gw->queued))
			FAIL("gateway %s: request %llu not acknowledged", id,
			     (unsigned long long)in->request_id);
		break;
	}
	case HERALD__CLUSTER__GATEWAY_EVENT__BODY_USER:
		if (name_ok(&ev->user->uid) && holds(gw, RT_USER, &ev->user->uid) != ev->user->online)
			FAIL("gateway %s: user %.*s presence not applied", id,
			     (int)ev->user->uid.len, ev->user->uid.data);
		break;
	case HERALD__CLUSTER__GATEWAY_EVENT__BODY_RESYNC_ANSWER: {
		const Herald__Cluster__ResyncAnswer *ra = ev->resync_answer;
		struct mark_chk mc = { gw, false };
		if (!answer_counts)
			break;
		for (size_t i = 0; i < ra->n_streams; i++)
			if (stream_ok(&ra->streams[i]) && !holds(gw, RT_STREAM, &ra->streams[i]))
				FAIL("gateway %s: a stream its answer named is not held", id);
		for (size_t i = 0; i < ra->n_users; i++)
			if (name_ok(&ra->users[i]) && !holds(gw, RT_USER, &ra->users[i]))
				FAIL("gateway %s: a user its answer named is not held", id);
		if (!ra->done)
			break;
		/* done: whatever the answer did not confirm is gone */
		rt_table_each(r->t, chk_mark, &mc);
		if (gw->state != RT_GW_UP || mc.bad)
			FAIL("gateway %s: a finished resync left state %d, stale holders %d", id,
			     gw->state, mc.bad);
		break;
	}
	default:
		break;
	}
}

/* A well-formed event from gateway "gw<k>", to reach states raw bytes
 * rarely do (joined gateways, answered resyncs, held streams). */
static void op_gw(struct in *in, unsigned flags)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Hello hello = HERALD__CLUSTER__HELLO__INIT;
	Herald__Cluster__Heartbeat hb = HERALD__CLUSTER__HEARTBEAT__INIT;
	Herald__Cluster__Interest it = HERALD__CLUSTER__INTEREST__INIT;
	Herald__Cluster__UserPresence up = HERALD__CLUSTER__USER_PRESENCE__INIT;
	Herald__Cluster__Publish pub = HERALD__CLUSTER__PUBLISH__INIT;
	Herald__Cluster__ResyncAnswer ra = HERALD__CLUSTER__RESYNC_ANSWER__INIT;
	Herald__Cluster__Bye bye = HERALD__CLUSTER__BYE__INIT;
	ProtobufCBinaryData names[2][8];
	char id[8], ver[41];
	uint8_t g = get8(in), kind = get8(in);
	uint8_t *buf;
	size_t n;
	struct rt_gw *gw;

	snprintf(id, sizeof(id), "gw%u", g & 7);
	ev.version = (flags & 3) == 3 ? 0 : 1 + (flags & 3);
	ev.gateway_id.data = (uint8_t *)id;
	ev.gateway_id.len = strlen(id);
	ev.boot_id = (g >> 3) & 3;
	switch (kind % 9) {
	case 0: {
		const uint8_t *v = take(in, get8(in) % 41, &n);
		memcpy(ver, v, n);
		ver[n] = 0;
		hello.threads = get8(in);
		hello.version = ver;
		ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HELLO;
		ev.hello = &hello;
		break;
	}
	case 1:
		hb.ccu = get16(in);
		hb.streams = get8(in);
		hb.threads = get8(in);
		ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HEARTBEAT;
		ev.heartbeat = &hb;
		break;
	case 2:
	case 3:
		it.stream.data = (uint8_t *)take(in, get8(in), &it.stream.len);
		it.add = kind % 9 == 2;
		it.request_id = get8(in);
		ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST;
		ev.interest = &it;
		break;
	case 4:
	case 5:
		up.uid.data = (uint8_t *)take(in, get8(in), &up.uid.len);
		up.online = kind % 9 == 4;
		ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_USER;
		ev.user = &up;
		break;
	case 6:
		pub.stream.data = (uint8_t *)take(in, get8(in), &pub.stream.len);
		pub.data.data = (uint8_t *)take(in, get16(in), &pub.data.len);
		ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_PUBLISH;
		ev.publish = &pub;
		break;
	case 7: {
		uint8_t k = get8(in);
		gw = rt_gws_find(r->g, id, strlen(id));
		/* the epoch asked for, mostly; sometimes a stale one */
		ra.epoch = gw ? gw->epoch - (k >> 7) : k;
		ra.done = k & 64;
		ra.streams = names[0];
		ra.users = names[1];
		for (unsigned i = 0; i < (k & 7u); i++) {
			uint8_t b = get8(in);
			ProtobufCBinaryData *d = (b & 1) ? &ra.users[ra.n_users++]
							 : &ra.streams[ra.n_streams++];
			d->data = (uint8_t *)take(in, b >> 1, &d->len);
		}
		ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_RESYNC_ANSWER;
		ev.resync_answer = &ra;
		break;
	}
	case 8:
		ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_BYE;
		ev.bye = &bye;
		break;
	}
	n = herald__cluster__gateway_event__get_packed_size(&ev);
	buf = cm_xmalloc(n ? n : 1);
	herald__cluster__gateway_event__pack(&ev, buf);
	gw = rt_gws_find(r->g, id, strlen(id));
	{
		/* what the router knew before: an answer counts only for the
		 * epoch it asked a gateway with this boot id */
		bool answer_counts = gw && ev.version && gw->boot_id == ev.boot_id &&
				     kind % 9 == 7 && ra.epoch == gw->epoch;
		/* a bye counts only from the process the router knows */
		bool bye_counts = !gw || gw->boot_id == ev.boot_id;
		/* the process a restart replaced, within a second of it: ignored */
		bool straggler = gw && gw->boot_id != ev.boot_id &&
				 ev.boot_id == gw->prev_boot_id && fake_now - gw->restarted_at < 1000;
		sub_msg(SUB_ROUTER, false, "", "herald:router", 13, buf, n);
		free(buf);
		check_gw_event(&ev, id, answer_counts, bye_counts, straggler);
	}
}

/* A pub/sub reply of any shape (hiredis only hands over well-formed RESP,
 * but not necessarily what a message looks like). */
static void op_shape(struct in *in, unsigned flags)
{
	static const char *const heads[] = { "message", "pmessage", "subscribe", "psubscribe" };
	size_t nel = get8(in) % 6, n;
	redisReply *m;
	const uint8_t *p;

	if (flags & 8) {
		on_sub_msg(NULL, NULL, &r->tags[flags & 3]);
		return;
	}
	m = arr_reply(nel);
	for (size_t i = 0; i < nel; i++) {
		uint8_t t = get8(in);
		int type = t % 7 ? t % 7 : REDIS_REPLY_STRING;
		if (type == REDIS_REPLY_ARRAY) {
			m->element[i] = arr_reply(0);
		} else if (i == 0 && (t & 0x80)) {
			const char *h = heads[(t >> 3) & 3];
			m->element[i] = str_reply(type, h, strlen(h));
		} else {
			p = take(in, get8(in), &n);
			m->element[i] = str_reply(type, p, n);
			if (type == REDIS_REPLY_INTEGER || type == REDIS_REPLY_NIL) {
				free(m->element[i]->str);
				m->element[i]->str = NULL;
				m->element[i]->len = 0;
			}
		}
	}
	if (flags & 4)
		m->type = REDIS_REPLY_STRING + (int)(nel % 5);
	/* hiredis gives (p)message elements NUL-terminated strings; element 0
	 * of a non-string type has no str: the router checks the type first */
	on_sub_msg(NULL, m, &r->tags[flags & 3]);
	free_reply(m);
}

/* The answers a starting router reads back (once per process). */
static void op_offsets(struct in *in, unsigned flags)
{
	size_t nf = get8(in) % 16, n;
	redisReply *m;
	const uint8_t *p;

	if (offsets_read)
		return;
	if (flags & 1) {
		on_offsets(NULL, NULL, r); /* the connection dropped: asked again */
		return;
	}
	offsets_read = true;
	if (flags & 2) {
		m = str_reply(REDIS_REPLY_ERROR, "ERR", 3);
		on_offsets(NULL, m, r);
		on_ccu_keys(NULL, m, r);
		free_reply(m);
		return;
	}
	m = arr_reply(nf);
	for (size_t i = 0; i < nf; i++) {
		uint8_t t = get8(in);
		if (t & 1) {
			/* a decimal offset, sometimes with junk */
			char num[32];
			int k = snprintf(num, sizeof(num), "%u%s", (unsigned)get16(in) * (t >> 2),
					 (t & 2) ? "" : "x");
			m->element[i] = str_reply(REDIS_REPLY_STRING, num, (size_t)k);
		} else {
			p = take(in, t >> 2, &n);
			m->element[i] = str_reply((t & 2) ? REDIS_REPLY_STRING : REDIS_REPLY_STATUS,
						  p, n);
		}
	}
	on_offsets(NULL, m, r);
	for (size_t i = 0; i < nf; i++) {
		uint64_t v;
		const redisReply *f = m->element[i & ~(size_t)1];
		/* the saved values are in the hash already: a later delivery may
		 * rely on them */
		if (i % 2 && f->type == REDIS_REPLY_STRING &&
		    m->element[i]->type == REDIS_REPLY_STRING &&
		    parse_u64(m->element[i]->str, m->element[i]->len, &v)) {
			int kind;
			const char *name;
			size_t nlen;
			struct rec *x;
			field_split(f->str, f->len, &kind, &name, &nlen);
			if (!nlen || nlen > RT_NAME_MAX || field_ambiguous(kind, name, nlen))
				continue;
			x = rec_find(&saved, NULL, 0, kind, name, nlen, true);
			if (v > x->v)
				x->v = v;
		}
	}
	on_ccu_keys(NULL, m, r);
	free_reply(m);
}

static void run(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct rt_opts o = {
		.prefix = "herald", .no_redis = true, .send = capture,
		.gateway_timeout_ms = 5000, .max_payload = 1024, .offset_idle_ms = 60000,
	};
	static char loop_dummy;

	fake_now = 1000;
	offsets_read = false;
	r = rt_router_new((struct cm_loop *)&loop_dummy, &o);
	for (unsigned ops = 0; in.n && ops < 4096; ops++) {
		uint8_t op = get8(&in);
		unsigned flags = op >> 4;

		switch ((op & 15) % OP_N) {
		case OP_EVENT:
			op_event(&in);
			break;
		case OP_STREAM:
			op_publish(&in, false, flags);
			break;
		case OP_USER:
			op_publish(&in, true, flags);
			break;
		case OP_ALL:
			op_all(&in);
			break;
		case OP_GW:
			op_gw(&in, flags);
			break;
		case OP_FLUSH:
			rt_router_flush(r);
			break;
		case OP_TIME:
			/* time moves between turns: the turn ends first */
			rt_router_flush(r);
			fake_now += (uint64_t)get16(&in) * (flags + 1);
			rt_router_expire(r, fake_now);
			rt_router_flush(r);
			break;
		case OP_TIMERS: {
			struct rt_sample hist[4];
			rt_router_flush(r);
			fake_now += 1000;
			on_ccu_timer(r);
			on_sample_timer(r);
			on_sweep_timer(r);
			rt_router_history(r, hist, 4);
			rt_router_flush(r);
			break;
		}
		case OP_SHAPE:
			op_shape(&in, flags);
			break;
		case OP_RECONNECT:
			/* the write connection is back: every counter is
			 * written again (a turn of its own) */
			rt_router_flush(r);
			out_up(r, NULL);
			rt_router_flush(r);
			break;
		case OP_OFFSETS:
			op_offsets(&in, flags);
			break;
		}
		check_state();
	}
	rt_router_flush(r);
	check_state();
	rt_router_free(r);
	r = NULL;
	recs_clear(&saved);
	recs_clear(&last);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;

	if (!init) {
		cm_log_init("fuzz_router_frame", CM_LOG_ERROR);
		init = true;
	}
	run(data, size);
	return 0;
}
