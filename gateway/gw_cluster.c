/* gw_cluster — the gateway's link to the router (see gw_cluster.h).
 *
 * Two Redis connections: a subscriber on <prefix>:gw:<id> and a publisher
 * for GatewayEvents on <prefix>:router. Hello goes out once both are up
 * (first connect and every reconnect); the router answers it with a
 * ResyncRequest, which runs the resync callback. Interest adds wait for the
 * router's ack: resent every second, given up after 5 s. */
#include "gw_cluster.h"

#include "cm_log.h"
#include "cm_loop.h"
#include "cm_pb.h"
#include "cm_redis.h"
#include "proto/cluster.pb-c.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define GW_CLUSTER_VERSION 1
#define GW_TICK_MS 100
#define GW_HEARTBEAT_MS 500
#define GW_ACK_RESEND_MS 1000
#define GW_ACK_GIVEUP_MS 5000
/* Router frames are at most ~256 KiB of batch plus one payload (the
 * router's --max-payload, at most CM_CLUSTER_PAYLOAD_MAX). */
#define GW_MAX_FRAME CM_CLUSTER_FRAME_MAX
/* Bytes queued for Redis beyond which events are dropped. */
#define GW_MAX_BACKLOG (64u << 20)
/* One resync answer chunk: this many names or bytes, whichever comes first. */
#define GW_RESYNC_CHUNK_NAMES 512
#define GW_RESYNC_CHUNK_BYTES (32u << 10)

struct gw_pending {
	uint64_t id;
	char *stream;
	size_t len;
	uint64_t first, last_sent;
	bool superseded;   /* a remove followed: never resend */
	bool finished;
	void (*done)(void *arg, bool ok);
	void *arg;
};

struct gw_names {
	ProtobufCBinaryData *v;
	size_t n, cap;
};

struct gw_cluster {
	struct cm_loop *loop;
	struct gw_cluster_cbs cbs;
	void *ctx;
	char *prefix, *id, *version;
	size_t id_len;
	unsigned threads;
	char *router_chan, *my_chan;
	uint64_t boot_id;

	struct cm_redis *sub, *pub;
	bool subscribed, hello_sent;
	uint64_t router_boot;

	struct cm_timer *tick;
	uint64_t last_hb, hb_seq;
	uint64_t ccu, streams;

	/* Interest adds waiting for an ack, sorted by id (ids only grow). */
	struct gw_pending *pend;
	size_t npend, cappend, nfinished;
	uint64_t next_req;

	/* Resync in progress. */
	bool resyncing;
	uint64_t resync_epoch;
	bool resync_again;
	uint64_t resync_next_epoch;
	struct gw_names rs_streams, rs_users;
	size_t rs_bytes;

	uint64_t reconnects_base;
	uint64_t frames_in, frames_bad, deliveries_in;
};

/* ----------------------------------------------------------------- sending */

static bool send_event(struct gw_cluster *c, Herald__Cluster__GatewayEvent *ev)
{
	redisAsyncContext *ac = cm_redis_ctx(c->pub);
	uint8_t stackbuf[512], *buf = stackbuf;
	char *cmd;
	size_t len;
	int n;
	bool ok;

	if (!ac || cm_redis_pending(ac) > GW_MAX_BACKLOG)
		return false; /* Redis gone or not keeping up: drop, never grow */
	ev->version = GW_CLUSTER_VERSION;
	ev->gateway_id.data = (uint8_t *)c->id;
	ev->gateway_id.len = c->id_len;
	ev->boot_id = c->boot_id;
	len = herald__cluster__gateway_event__get_packed_size(ev);
	if (len > sizeof(stackbuf))
		buf = cm_xmalloc(len);
	herald__cluster__gateway_event__pack(ev, buf);
	/* written and forgotten: the connection has replies off (pub_up) */
	n = redisFormatCommand(&cmd, "PUBLISH %s %b", c->router_chan, buf, len);
	if (buf != stackbuf)
		free(buf);
	if (n < 0)
		return false;
	ok = cm_redis_send_noreply(ac, cmd, (size_t)n) == 0;
	redisFreeCommand(cmd);
	return ok;
}

static void send_hello(struct gw_cluster *c)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Hello h = HERALD__CLUSTER__HELLO__INIT;

	h.threads = c->threads;
	h.version = c->version;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HELLO;
	ev.hello = &h;
	c->hello_sent = send_event(c, &ev);
}

static void send_heartbeat(struct gw_cluster *c)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Heartbeat h = HERALD__CLUSTER__HEARTBEAT__INIT;

	h.ccu = c->ccu;
	h.streams = c->streams;
	h.seq = ++c->hb_seq;
	h.threads = c->threads;
	h.version = c->version;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_HEARTBEAT;
	ev.heartbeat = &h;
	send_event(c, &ev);
}

static void send_interest(struct gw_cluster *c, const char *stream, size_t len, bool add,
			  uint64_t req)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Interest in = HERALD__CLUSTER__INTEREST__INIT;

	in.stream.data = (uint8_t *)stream;
	in.stream.len = len;
	in.add = add;
	in.request_id = req;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST;
	ev.interest = &in;
	send_event(c, &ev);
}

static void maybe_hello(struct gw_cluster *c)
{
	if (!c->hello_sent && c->subscribed && cm_redis_up(c->pub)) {
		send_hello(c);
		send_heartbeat(c);
	}
}

/* ------------------------------------------------------- pending interests */

static struct gw_pending *pend_find(struct gw_cluster *c, uint64_t id)
{
	size_t lo = 0, hi = c->npend;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->pend[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->npend && c->pend[lo].id == id && !c->pend[lo].finished)
		return &c->pend[lo];
	return NULL;
}

static void pend_finish(struct gw_cluster *c, struct gw_pending *p, bool ok)
{
	void (*done)(void *, bool) = p->done;
	void *arg = p->arg;

	p->finished = true;
	free(p->stream);
	p->stream = NULL;
	c->nfinished++;
	if (done)
		done(arg, ok);
}

/* Drops finished entries (keeps the array sorted). */
static void pend_compact(struct gw_cluster *c)
{
	size_t j = 0;

	if (!c->nfinished)
		return;
	for (size_t i = 0; i < c->npend; i++)
		if (!c->pend[i].finished)
			c->pend[j++] = c->pend[i];
	c->npend = j;
	c->nfinished = 0;
}

static void pend_tick(struct gw_cluster *c, uint64_t now)
{
	/* done() may add new pending entries (realloc): index, never pointers. */
	size_t n = c->npend;

	for (size_t i = 0; i < n && i < c->npend; i++) {
		struct gw_pending *p = &c->pend[i];
		if (p->finished)
			continue;
		if (now - p->first >= GW_ACK_GIVEUP_MS) {
			cm_warn("cluster: no ack for interest in %.*s; giving up",
				(int)p->len, p->stream);
			pend_finish(c, p, false);
			continue;
		}
		if (!p->superseded && now - p->last_sent >= GW_ACK_RESEND_MS) {
			p->last_sent = now;
			send_interest(c, p->stream, p->len, true, p->id);
		}
	}
	pend_compact(c);
}

/* ------------------------------------------------------------------ resync */

static void names_push(struct gw_names *v, const char *s, size_t len)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 64;
		v->v = cm_xrealloc(v->v, v->cap * sizeof(*v->v));
	}
	v->v[v->n].data = (uint8_t *)cm_xstrndup(s, len);
	v->v[v->n].len = len;
	v->n++;
}

static void names_clear(struct gw_names *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i].data);
	v->n = 0;
}

static void resync_flush(struct gw_cluster *c, bool done)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__ResyncAnswer ra = HERALD__CLUSTER__RESYNC_ANSWER__INIT;

	ra.epoch = c->resync_epoch;
	ra.streams = c->rs_streams.v;
	ra.n_streams = c->rs_streams.n;
	ra.users = c->rs_users.v;
	ra.n_users = c->rs_users.n;
	ra.done = done;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_RESYNC_ANSWER;
	ev.resync_answer = &ra;
	send_event(c, &ev);
	names_clear(&c->rs_streams);
	names_clear(&c->rs_users);
	c->rs_bytes = 0;
}

static void resync_start(struct gw_cluster *c, uint64_t epoch)
{
	if (c->resyncing) {
		/* The callback is still collecting: answer the newer request
		 * with a fresh pass once this one is done. */
		c->resync_again = true;
		c->resync_next_epoch = epoch;
		return;
	}
	c->resyncing = true;
	c->resync_epoch = epoch;
	if (c->cbs.resync)
		c->cbs.resync(c->ctx);
	else
		gw_cluster_resync_done(c);
}

void gw_cluster_resync_add(struct gw_cluster *c, bool is_user, const char *name, size_t len)
{
	if (!c->resyncing)
		return;
	names_push(is_user ? &c->rs_users : &c->rs_streams, name, len);
	c->rs_bytes += len + 4;
	if (c->rs_streams.n + c->rs_users.n >= GW_RESYNC_CHUNK_NAMES ||
	    c->rs_bytes >= GW_RESYNC_CHUNK_BYTES)
		resync_flush(c, false);
}

void gw_cluster_resync_done(struct gw_cluster *c)
{
	if (!c->resyncing)
		return;
	resync_flush(c, true);
	c->resyncing = false;
	if (c->resync_again) {
		c->resync_again = false;
		resync_start(c, c->resync_next_epoch);
	}
}

/* --------------------------------------------------------------- receiving */

/* RouterMessage frames are decoded in place (no allocation, no copy: the
 * delivery payloads are handed to the callbacks straight from the Redis
 * reply). A first pass checks the whole frame, so a malformed one is
 * dropped before anything in it is acted on. Unknown fields are skipped
 * (newer routers); the layout is proto/cluster.proto's. */
struct pb {
	const uint8_t *p, *end;
};

static bool pb_varint(struct pb *b, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t ch;
		if (b->p >= b->end)
			return false;
		ch = *b->p++;
		r |= (uint64_t)(ch & 0x7f) << shift;
		if (!(ch & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

static bool pb_bytes(struct pb *b, struct pb *out)
{
	uint64_t n;

	if (!pb_varint(b, &n) || n > (uint64_t)(b->end - b->p))
		return false;
	out->p = b->p;
	out->end = b->p + n;
	b->p += n;
	return true;
}

static bool pb_skip(struct pb *b, unsigned wt)
{
	uint64_t v;
	struct pb sub;

	switch (wt) {
	case 0:
		return pb_varint(b, &v);
	case 1:
		if (b->end - b->p < 8)
			return false;
		b->p += 8;
		return true;
	case 2:
		return pb_bytes(b, &sub);
	case 5:
		if (b->end - b->p < 4)
			return false;
		b->p += 4;
		return true;
	default:
		return false; /* groups (3, 4) are not used in these frames */
	}
}

/* Reads a tag; false at the end or on a malformed tag (*bad set). */
static bool pb_tag(struct pb *b, unsigned *field, unsigned *wt, bool *bad)
{
	uint64_t t;

	if (b->p >= b->end)
		return false;
	if (!pb_varint(b, &t) || (t >> 3) == 0 || (t >> 3) > 0x1fffffff) {
		*bad = true;
		return false;
	}
	*field = (unsigned)(t >> 3);
	*wt = (unsigned)(t & 7);
	return true;
}

struct gw_delivery {
	uint64_t kind, offset;
	struct pb name, data;
};

static bool parse_delivery(struct pb b, struct gw_delivery *d)
{
	unsigned f, wt;
	bool bad = false;

	static const uint8_t empty[1];

	memset(d, 0, sizeof(*d));
	/* Absent bytes fields are empty, never NULL (callers may memcpy). */
	d->name.p = d->name.end = d->data.p = d->data.end = empty;
	while (pb_tag(&b, &f, &wt, &bad)) {
		bool ok;
		if (f == 1 && wt == 0)
			ok = pb_varint(&b, &d->kind);
		else if (f == 2 && wt == 2)
			ok = pb_bytes(&b, &d->name);
		else if (f == 3 && wt == 0)
			ok = pb_varint(&b, &d->offset);
		else if (f == 4 && wt == 2)
			ok = pb_bytes(&b, &d->data);
		else if (f >= 1 && f <= 4)
			ok = false; /* a known field with the wrong wire type */
		else
			ok = pb_skip(&b, wt);
		if (!ok)
			return false;
	}
	return !bad;
}

struct gw_frame {
	uint64_t version, boot;
	bool has_resync;
	uint64_t resync_epoch;
	size_t ndeliveries, nacks;
};

/* Pass 1: checks the frame and reads its scalar fields. */
static bool frame_check(const uint8_t *p, size_t len, struct gw_frame *fr)
{
	struct pb b = { p, p + len }, sub;
	unsigned f, wt;
	bool bad = false;
	uint64_t v;

	memset(fr, 0, sizeof(*fr));
	while (pb_tag(&b, &f, &wt, &bad)) {
		bool ok = true;
		struct gw_delivery d;
		switch (f) {
		case 1:
			ok = wt == 0 && pb_varint(&b, &fr->version);
			break;
		case 2:
			ok = wt == 0 && pb_varint(&b, &fr->boot);
			break;
		case 3:
			ok = wt == 2 && pb_bytes(&b, &sub) && parse_delivery(sub, &d);
			fr->ndeliveries++;
			break;
		case 4:
			if (wt == 0) {
				ok = pb_varint(&b, &v);
				fr->nacks++;
			} else if (wt == 2 && (ok = pb_bytes(&b, &sub))) {
				while (ok && sub.p < sub.end) {
					ok = pb_varint(&sub, &v);
					fr->nacks++;
				}
			} else {
				ok = false;
			}
			break;
		case 5:
			ok = wt == 2 && pb_bytes(&b, &sub);
			fr->has_resync = true;
			while (ok && sub.p < sub.end) {
				unsigned sf, swt;
				bool sbad = false;
				if (!pb_tag(&sub, &sf, &swt, &sbad)) {
					ok = !sbad;
					break;
				}
				if (sf == 1 && swt == 0)
					ok = pb_varint(&sub, &fr->resync_epoch);
				else
					ok = sf != 1 && pb_skip(&sub, swt);
			}
			break;
		default:
			ok = pb_skip(&b, wt);
			break;
		}
		if (!ok)
			return false;
	}
	/* uint32 on the wire: a wider value truncates as protobuf's would */
	return !bad && (uint32_t)fr->version != 0;
}

static void on_ack_id(struct gw_cluster *c, uint64_t id)
{
	struct gw_pending *pd = pend_find(c, id);
	if (pd)
		pend_finish(c, pd, true);
}

static void on_router_frame(struct gw_cluster *c, const uint8_t *p, size_t len)
{
	struct gw_frame fr;
	struct pb b = { p, p + len }, sub;
	unsigned f, wt;
	bool bad = false, boot_changed;
	uint64_t v = 0;

	c->frames_in++;
	if (len > GW_MAX_FRAME || !frame_check(p, len, &fr)) {
		c->frames_bad++;
		if (c->frames_bad < 10 || c->frames_bad % 1000 == 0)
			cm_warn("cluster: malformed router frame (%zu bytes) dropped", len);
		return;
	}
	boot_changed = c->router_boot && fr.boot != c->router_boot;
	c->router_boot = fr.boot;

	/* Pass 2: deliveries in order, then acks (the frame is known good). */
	while (pb_tag(&b, &f, &wt, &bad)) {
		struct gw_delivery d;
		if (f != 3) {
			pb_skip(&b, wt);
			continue;
		}
		pb_bytes(&b, &sub);
		parse_delivery(sub, &d);
		c->deliveries_in++;
		/* protobuf reads an enum as 32 bits: so do we */
		switch ((uint32_t)d.kind) {
		case HERALD__CLUSTER__DELIVERY__KIND__STREAM:
			if (d.name.end > d.name.p && c->cbs.deliver_stream)
				c->cbs.deliver_stream(c->ctx, (const char *)d.name.p,
						      (size_t)(d.name.end - d.name.p), d.offset,
						      d.data.p, (size_t)(d.data.end - d.data.p));
			break;
		case HERALD__CLUSTER__DELIVERY__KIND__USER:
			if (d.name.end > d.name.p && c->cbs.deliver_user)
				c->cbs.deliver_user(c->ctx, (const char *)d.name.p,
						    (size_t)(d.name.end - d.name.p), d.offset,
						    d.data.p, (size_t)(d.data.end - d.data.p));
			break;
		case HERALD__CLUSTER__DELIVERY__KIND__ALL:
			if (c->cbs.deliver_all)
				c->cbs.deliver_all(c->ctx, d.data.p, (size_t)(d.data.end - d.data.p));
			break;
		default:
			break; /* a kind from a newer router: not for us */
		}
	}
	if (fr.ndeliveries && c->cbs.batch_end)
		c->cbs.batch_end(c->ctx);
	if (fr.nacks) {
		b.p = p;
		while (pb_tag(&b, &f, &wt, &bad)) {
			if (f != 4) {
				pb_skip(&b, wt);
			} else if (wt == 0) {
				pb_varint(&b, &v);
				on_ack_id(c, v);
			} else {
				pb_bytes(&b, &sub);
				while (sub.p < sub.end && pb_varint(&sub, &v))
					on_ack_id(c, v);
			}
		}
	}
	if (fr.has_resync)
		resync_start(c, fr.resync_epoch);
	else if (boot_changed)
		send_hello(c); /* a new router: it will ask for a resync */
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct gw_cluster *c = priv;
	redisReply *r = reply;
	(void)ac;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
		return;
	if (r->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (!strcmp(r->element[0]->str, "subscribe")) {
		c->subscribed = true;
		maybe_hello(c);
	} else if (!strcmp(r->element[0]->str, "message") &&
		   r->element[2]->type == REDIS_REPLY_STRING) {
		on_router_frame(c, (const uint8_t *)r->element[2]->str, r->element[2]->len);
	}
}

static void sub_up(void *arg, redisAsyncContext *ac)
{
	struct gw_cluster *c = arg;
	redisAsyncCommand(ac, on_sub_reply, c, "SUBSCRIBE %s", c->my_chan);
}

static void sub_down(void *arg)
{
	struct gw_cluster *c = arg;
	c->subscribed = false;
	c->hello_sent = false;
}

static void pub_up(void *arg, redisAsyncContext *ac)
{
	struct gw_cluster *c = arg;

	/* events are written and forgotten: Redis owes no reply, and the
	 * gateway does not wake to read one */
	cm_redis_reply_off(ac);
	maybe_hello(c);
}

static void pub_down(void *arg)
{
	struct gw_cluster *c = arg;
	c->hello_sent = false;
}

/* -------------------------------------------------------------------- tick */

static void on_tick(void *arg)
{
	struct gw_cluster *c = arg;
	uint64_t now = cm_loop_now(c->loop);

	maybe_hello(c);
	if (now - c->last_hb >= GW_HEARTBEAT_MS) {
		c->last_hb = now;
		send_heartbeat(c);
	}
	pend_tick(c, now);
}

/* -------------------------------------------------------------------- API */

struct gw_cluster *gw_cluster_new(struct cm_loop *loop, const struct gw_cluster_opts *opts,
				  const struct gw_cluster_cbs *cbs, void *ctx)
{
	struct gw_cluster *c = cm_xcalloc(1, sizeof(*c));
	const struct cm_redis_cbs subcbs = { .up = sub_up, .down = sub_down };
	const struct cm_redis_cbs pubcbs = { .up = pub_up, .down = pub_down };
	size_t n;

	c->loop = loop;
	c->cbs = *cbs;
	c->ctx = ctx;
	c->prefix = cm_xstrndup(opts->prefix, strlen(opts->prefix));
	c->id_len = strlen(opts->gateway_id);
	c->id = cm_xstrndup(opts->gateway_id, c->id_len);
	c->version = cm_xstrndup(opts->version ? opts->version : "", opts->version ? strlen(opts->version) : 0);
	c->threads = opts->threads;
	n = strlen(c->prefix) + c->id_len + 16;
	c->router_chan = cm_xmalloc(n);
	snprintf(c->router_chan, n, "%s:router", c->prefix);
	c->my_chan = cm_xmalloc(n);
	snprintf(c->my_chan, n, "%s:gw:%s", c->prefix, c->id);
	c->boot_id = cm_random64() | 1; /* never 0 */
	/* Request ids start at a random point below 2^63 (room to grow, never
	 * 0): an ack still on its way to an earlier process under this id
	 * names none of ours. */
	c->next_req = (cm_random64() >> 1) + 1;
	c->last_hb = cm_loop_now(loop);
	c->sub = cm_redis_new(loop, opts->redis_host, opts->redis_port, "cluster-sub", &subcbs, c);
	c->pub = cm_redis_new(loop, opts->redis_host, opts->redis_port, "cluster-pub", &pubcbs, c);
	c->tick = cm_timer_start(loop, GW_TICK_MS, true, on_tick, c);
	return c;
}

void gw_cluster_free(struct gw_cluster *c)
{
	redisAsyncContext *ac;
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Bye bye = HERALD__CLUSTER__BYE__INIT;

	if (!c)
		return;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_BYE;
	ev.bye = &bye;
	if (send_event(c, &ev) && (ac = cm_redis_ctx(c->pub)))
		redisAsyncHandleWrite(ac); /* best effort: write it out now */
	cm_timer_stop(c->tick);
	cm_redis_free(c->sub);
	cm_redis_free(c->pub);
	for (size_t i = 0; i < c->npend; i++)
		free(c->pend[i].stream);
	free(c->pend);
	names_clear(&c->rs_streams);
	names_clear(&c->rs_users);
	free(c->rs_streams.v);
	free(c->rs_users.v);
	free(c->prefix);
	free(c->id);
	free(c->version);
	free(c->router_chan);
	free(c->my_chan);
	free(c);
}

void gw_cluster_interest(struct gw_cluster *c, const char *stream, size_t len, bool add,
			 void (*done)(void *arg, bool ok), void *arg)
{
	struct gw_pending *p;

	if (!add) {
		/* A pending add of this stream must not be resent after this. */
		for (size_t i = 0; i < c->npend; i++)
			if (!c->pend[i].finished && c->pend[i].len == len &&
			    !memcmp(c->pend[i].stream, stream, len))
				c->pend[i].superseded = true;
		send_interest(c, stream, len, false, 0);
		if (done)
			done(arg, true);
		return;
	}
	if (c->npend == c->cappend) {
		c->cappend = c->cappend ? c->cappend * 2 : 64;
		c->pend = cm_xrealloc(c->pend, c->cappend * sizeof(*c->pend));
	}
	p = &c->pend[c->npend++];
	memset(p, 0, sizeof(*p));
	p->id = c->next_req++;
	p->stream = cm_xstrndup(stream, len);
	p->len = len;
	p->first = p->last_sent = cm_loop_now(c->loop);
	p->done = done;
	p->arg = arg;
	send_interest(c, stream, len, true, p->id);
}

void gw_cluster_user(struct gw_cluster *c, const char *uid, size_t len, bool online)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__UserPresence u = HERALD__CLUSTER__USER_PRESENCE__INIT;

	u.uid.data = (uint8_t *)uid;
	u.uid.len = len;
	u.online = online;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_USER;
	ev.user = &u;
	send_event(c, &ev);
}

void gw_cluster_publish(struct gw_cluster *c, const char *stream, size_t stream_len,
			const uint8_t *data, size_t len)
{
	Herald__Cluster__GatewayEvent ev = HERALD__CLUSTER__GATEWAY_EVENT__INIT;
	Herald__Cluster__Publish p = HERALD__CLUSTER__PUBLISH__INIT;

	p.stream.data = (uint8_t *)stream;
	p.stream.len = stream_len;
	p.data.data = (uint8_t *)data;
	p.data.len = len;
	ev.body_case = HERALD__CLUSTER__GATEWAY_EVENT__BODY_PUBLISH;
	ev.publish = &p;
	send_event(c, &ev);
}

void gw_cluster_set_stats(struct gw_cluster *c, uint64_t ccu, uint64_t streams)
{
	c->ccu = ccu;
	c->streams = streams;
}

void gw_cluster_get_stats(const struct gw_cluster *c, struct gw_cluster_stats *st)
{
	st->redis_up = c->subscribed && cm_redis_up(c->pub);
	st->redis_reconnects = cm_redis_reconnects(c->sub) + cm_redis_reconnects(c->pub);
	st->redis_dropped_replies = cm_redis_dropped(c->pub);
	st->frames_in = c->frames_in;
	st->frames_bad = c->frames_bad;
	st->deliveries_in = c->deliveries_in;
}
