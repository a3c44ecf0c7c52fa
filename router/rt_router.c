#include "rt_router.h"

#include "cm_buf.h"
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

/* A gateway's frame is sent early once its batch holds this much: with one
 * delivery of at most CM_CLUSTER_PAYLOAD_MAX added, it stays under what a
 * gateway reads. */
#define RT_BATCH_BYTES (256u << 10)
_Static_assert(RT_BATCH_BYTES + CM_CLUSTER_PAYLOAD_MAX + (64u << 10) < CM_CLUSTER_FRAME_MAX,
	       "a frame of deliveries must fit a gateway's read");
/* Fields per HSET/HDEL command when many are written at once. */
#define RT_FIELDS_PER_CMD 1000
/* A gateway still owing a resync answer is asked again after this. */
#define RT_RESYNC_RETRY_MS 1000
/* Bytes queued for Redis beyond which frames are dropped. */
#define RT_MAX_BACKLOG (256u << 20)
/* Gateways send a heartbeat this often (gw_cluster.c). */
#define RT_HEARTBEAT_MS 500
/* After a gateway restarted, events of the process it replaced are taken
 * for stragglers this long; past it they count as a restart again, which
 * is how two live processes under one id show up (and get a warning). */
#define RT_STRAGGLER_MS 1000

enum { SUB_STREAM, SUB_USER, SUB_ALL, SUB_ROUTER, SUB_N };

struct rt_subtag {
	struct rt_router *r;
	int what;
};

struct rt_router {
	struct cm_loop *loop;
	struct rt_opts o;
	char *prefix;
	char *chan_router, *chan_all, *pat_stream, *pat_user, *key_offsets, *key_ccu;
	size_t stream_pre, user_pre;  /* strlen("<p>:stream:"), strlen("<p>:user:") */
	/* pub: commands whose replies we read (the offsets and gateways at
	 * start); out: everything written and forgotten (deliveries, offsets,
	 * CCU), with replies off; sub: the subscriptions */
	struct cm_redis *pub, *out, *sub;
	/* loaded: HGETALL <prefix>:offsets answered; listed: HKEYS <prefix>:ccu
	 * answered. Each is asked on every pub connect until answered (a
	 * connection may drop between the two replies). */
	bool loaded, loading, listed;
	uint64_t sub_connects;
	struct rt_subtag tags[SUB_N];

	struct rt_table *t;
	struct rt_gws *g;
	uint64_t boot_id, epoch;

	struct rt_gw **flush;
	size_t nflush, capflush;
	uint8_t *scratch;
	size_t scratch_cap;
	struct cm_buf cmd;
	/* Field names collected for one HDEL. */
	struct cm_buf del;
	size_t ndel;

	struct cm_timer *t_expire, *t_ccu, *t_sample, *t_sweep;
	/* herald:ccu fields found at start: deleted later unless their gateway
	 * shows up. */
	char **stale;
	size_t nstale;
	uint64_t stale_at;

	struct rt_stats st;
	struct rt_sample hist[RT_HISTORY];
	size_t hist_n, hist_head;
	uint64_t last_pub, last_del;
};

/* ----------------------------------------------------------- Redis output */

static bool send_cmd(struct rt_router *r, const char *cmd, size_t len)
{
	redisAsyncContext *ac;

	if (r->o.send) {
		r->o.send(r->o.send_arg, cmd, len);
		return true;
	}
	if (!r->out || !(ac = cm_redis_ctx(r->out)))
		return false;
	if (cm_redis_pending(ac) > RT_MAX_BACKLOG) {
		/* Redis does not keep up: drop rather than grow without bound. */
		r->st.backlog_drops++;
		return false;
	}
	return cm_redis_send_noreply(ac, cmd, len) == 0;
}

static void resp_begin(struct cm_buf *b, size_t nargs)
{
	b->len = 0;
	cm_buf_printf(b, "*%zu\r\n", nargs);
}

static void resp_arg(struct cm_buf *b, const void *p, size_t n)
{
	cm_buf_printf(b, "$%zu\r\n", n);
	cm_buf_append(b, p, n);
	cm_buf_append(b, "\r\n", 2);
}

static void resp_str(struct cm_buf *b, const char *s)
{
	resp_arg(b, s, strlen(s));
}

static void resp_u64(struct cm_buf *b, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	resp_arg(b, tmp, (size_t)n);
}

/* The offsets hash field of an entry: the stream name, or "user:<uid>". */
static void resp_field(struct cm_buf *b, const struct rt_entry *e)
{
	if (e->kind == RT_USER) {
		cm_buf_printf(b, "$%zu\r\nuser:", (size_t)e->len + 5);
		cm_buf_append(b, rt_entry_name(e), e->len);
		cm_buf_append(b, "\r\n", 2);
	} else {
		resp_arg(b, rt_entry_name(e), e->len);
	}
}

/* HSET <prefix>:offsets for entries es[0..n), in commands of at most
 * RT_FIELDS_PER_CMD fields. */
static void save_offsets(struct rt_router *r, struct rt_entry *const *es, size_t n)
{
	for (size_t i = 0; i < n; i += RT_FIELDS_PER_CMD) {
		size_t k = n - i < RT_FIELDS_PER_CMD ? n - i : RT_FIELDS_PER_CMD;
		resp_begin(&r->cmd, 2 + 2 * k);
		resp_str(&r->cmd, "HSET");
		resp_str(&r->cmd, r->key_offsets);
		for (size_t j = i; j < i + k; j++) {
			resp_field(&r->cmd, es[j]);
			resp_u64(&r->cmd, es[j]->offset);
		}
		send_cmd(r, r->cmd.p, r->cmd.len);
	}
}

static void flush_offsets(struct rt_router *r)
{
	size_t n;
	struct rt_entry *const *d = rt_table_dirty(r->t, &n);

	if (!n)
		return;
	/* When Redis is down this goes nowhere; the reconnect writes every
	 * counter back anyway. */
	save_offsets(r, d, n);
	rt_table_clear_dirty(r->t);
}

struct dump_ctx {
	struct rt_router *r;
	struct rt_entry **v;
	size_t n, cap;
};

static void dump_one(void *arg, struct rt_entry *e)
{
	struct dump_ctx *d = arg;
	if (!e->offset)
		return;
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 256;
		d->v = cm_xrealloc(d->v, d->cap * sizeof(*d->v));
	}
	d->v[d->n++] = e;
}

/* Writes every counter (after a Redis reconnect: Redis may have lost them). */
static void dump_offsets(struct rt_router *r)
{
	struct dump_ctx d = { .r = r };

	rt_table_each(r->t, dump_one, &d);
	save_offsets(r, d.v, d.n);
	free(d.v);
	rt_table_clear_dirty(r->t);
}

static void del_add(struct rt_router *r, const char *p, size_t n, const char *pre)
{
	size_t pl = pre ? strlen(pre) : 0;

	cm_buf_printf(&r->del, "$%zu\r\n", pl + n);
	if (pl)
		cm_buf_append(&r->del, pre, pl);
	cm_buf_append(&r->del, p, n);
	cm_buf_append(&r->del, "\r\n", 2);
	r->ndel++;
}

static void del_send(struct rt_router *r, const char *key)
{
	if (!r->ndel)
		return;
	resp_begin(&r->cmd, 2 + r->ndel);
	resp_str(&r->cmd, "HDEL");
	resp_str(&r->cmd, key);
	cm_buf_append(&r->cmd, r->del.p, r->del.len);
	send_cmd(r, r->cmd.p, r->cmd.len);
	r->del.len = 0;
	r->ndel = 0;
}

/* ------------------------------------------------------------ gw frames */

static void queue_gw(struct rt_router *r, struct rt_gw *gw)
{
	if (gw->queued)
		return;
	rt_frame_begin(&gw->out, r->boot_id);
	gw->queued = true;
	if (r->nflush == r->capflush) {
		r->capflush = r->capflush ? r->capflush * 2 : 64;
		r->flush = cm_xrealloc(r->flush, r->capflush * sizeof(*r->flush));
	}
	r->flush[r->nflush++] = gw;
}

static void flush_gw(struct rt_router *r, struct rt_gw *gw)
{
	const char *cmd;
	size_t len;

	if (!gw->queued)
		return;
	if (gw->want_resync) {
		rt_frame_resync(&gw->out, gw->epoch);
		gw->want_resync = false;
	}
	rt_frame_acks(&gw->out, gw->acks, gw->nacks);
	gw->nacks = 0;
	gw->queued = false;
	cmd = rt_frame_publish(&gw->out, gw->chan, gw->chan_len, &len);
	if (!cmd) {
		cm_warn("gateway %s: channel name too long", gw->id);
		return;
	}
	if (send_cmd(r, cmd, len)) {
		r->st.batches++;
		gw->frames_out++;
	}
}

static void append_delivery(struct rt_router *r, struct rt_gw *gw, const uint8_t *p, size_t n)
{
	queue_gw(r, gw);
	rt_frame_append(&gw->out, p, n);
	gw->out.ndeliveries++;
	gw->deliveries_out++;
	r->st.deliveries_out++;
	if (rt_frame_size(&gw->out) >= RT_BATCH_BYTES) {
		/* Offsets are saved before any delivery carrying them leaves. */
		flush_offsets(r);
		flush_gw(r, gw);
	}
}

void rt_router_flush(struct rt_router *r)
{
	flush_offsets(r);
	for (size_t i = 0; i < r->nflush; i++)
		if (r->flush[i])
			flush_gw(r, r->flush[i]);
	r->nflush = 0;
}

/* ------------------------------------------------------------------ relay */

static size_t encode(struct rt_router *r, enum rt_delivery_kind kind, const char *name,
		     size_t nlen, uint64_t off, const uint8_t *data, size_t len)
{
	size_t n = rt_delivery_encode(r->scratch, r->scratch_cap, kind, name, nlen, off, data, len);

	if (n > r->scratch_cap) {
		r->scratch_cap = n + 4096;
		r->scratch = cm_xrealloc(r->scratch, r->scratch_cap);
		n = rt_delivery_encode(r->scratch, r->scratch_cap, kind, name, nlen, off, data, len);
	}
	return n;
}

void rt_router_publish(struct rt_router *r, enum rt_delivery_kind kind, const char *name,
		       size_t name_len, const uint8_t *data, size_t len)
{
	struct rt_entry *e;
	uint64_t off;
	size_t n;

	r->st.publishes_in++;
	if (len > r->o.max_payload) {
		r->st.too_large++;
		return;
	}
	if (kind == RT_DELIVER_ALL) {
		if (!rt_gws_count(r->g)) {
			r->st.dropped_no_holder++;
			return;
		}
		n = encode(r, kind, NULL, 0, 0, data, len);
		for (size_t s = 0; s < rt_gws_end(r->g); s++) {
			struct rt_gw *gw = rt_gws_at(r->g, (uint16_t)s);
			if (gw)
				append_delivery(r, gw, r->scratch, n);
		}
		return;
	}
	e = rt_table_get(r->t, kind == RT_DELIVER_USER ? RT_USER : RT_STREAM, name, name_len);
	if (!e || !e->nh) {
		r->st.dropped_no_holder++;
		return;
	}
	/* Work per message: one encode, then one copy per holding gateway. */
	off = rt_table_next_offset(r->t, e);
	n = encode(r, kind, name, name_len, off, data, len);
	for (uint32_t i = 0; i < e->nh; i++) {
		struct rt_gw *gw = rt_gws_at(r->g, e->h[i].gw);
		CM_ASSERT(gw != NULL);
		append_delivery(r, gw, r->scratch, n);
	}
}

/* --------------------------------------------------------- gateway events */

static void request_resync(struct rt_router *r, struct rt_gw *gw)
{
	gw->epoch = ++r->epoch;
	gw->mark = (uint32_t)gw->epoch;
	gw->resync_sent = cm_loop_now(r->loop);
	gw->want_resync = true;
	gw->state = RT_GW_SYNCING;
	queue_gw(r, gw);
}

static void drop_gw(struct rt_router *r, struct rt_gw *gw, const char *why)
{
	cm_info("gateway %s dropped (%s)", gw->id, why);
	rt_table_drop_gw(r->t, gw->slot, cm_loop_now(r->loop));
	del_add(r, gw->id, gw->id_len, NULL);
	del_send(r, r->key_ccu);
	for (size_t i = 0; i < r->nflush; i++)
		if (r->flush[i] == gw)
			r->flush[i] = NULL;
	rt_gws_remove(r->g, gw);
}

static bool valid_id(const uint8_t *p, size_t n)
{
	if (!n || n > RT_GW_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == '"' || p[i] == '\\')
			return false;
	return true;
}

static void bad_frame(struct rt_router *r, const char *why, size_t len)
{
	r->st.bad_frames++;
	if (r->st.bad_frames <= 10 || r->st.bad_frames % 1000 == 0)
		cm_warn("bad gateway frame (%s, %zu bytes) dropped; %llu so far", why, len,
			(unsigned long long)r->st.bad_frames);
}

static void on_resync_answer(struct rt_router *r, struct rt_gw *gw,
			     const Herald__Cluster__ResyncAnswer *ra)
{
	if (ra->epoch != gw->epoch)
		return; /* an answer to an older request */
	/* A long answer in progress is not a lost request: no retry while
	 * chunks keep coming. */
	gw->resync_sent = cm_loop_now(r->loop);
	for (size_t i = 0; i < ra->n_streams; i++)
		rt_table_hold(r->t, RT_STREAM, (const char *)ra->streams[i].data,
			      ra->streams[i].len, gw->slot, gw->mark, NULL);
	for (size_t i = 0; i < ra->n_users; i++)
		rt_table_hold(r->t, RT_USER, (const char *)ra->users[i].data, ra->users[i].len,
			      gw->slot, gw->mark, NULL);
	if (ra->done) {
		rt_table_sweep_gw(r->t, gw->slot, gw->mark, cm_loop_now(r->loop));
		if (gw->state != RT_GW_UP)
			cm_info("gateway %s in sync", gw->id);
		gw->state = RT_GW_UP;
	}
}

/* HSET <prefix>:ccu for one gateway whose count changed, at once: with the
 * gateway's heartbeat every 500 ms, the hash stays under the contract's 1 s
 * (the periodic write of every gateway, on_ccu_timer, restores the hash
 * after a Redis restart). */
static void ccu_changed(struct rt_router *r, const struct rt_gw *gw)
{
	resp_begin(&r->cmd, 4);
	resp_str(&r->cmd, "HSET");
	resp_str(&r->cmd, r->key_ccu);
	resp_arg(&r->cmd, gw->id, gw->id_len);
	resp_u64(&r->cmd, gw->ccu);
	send_cmd(r, r->cmd.p, r->cmd.len);
}

void rt_router_gateway_event(struct rt_router *r, const uint8_t *p, size_t len)
{
	Herald__Cluster__GatewayEvent *ev;
	struct rt_gw *gw;
	uint64_t now = cm_loop_now(r->loop);
	bool fresh = false;

	if (len > r->o.max_payload + 65536) {
		bad_frame(r, "too large", len);
		return;
	}
	ev = herald__cluster__gateway_event__unpack(NULL, len, p);
	if (!ev) {
		bad_frame(r, "undecodable", len);
		return;
	}
	if (ev->version == 0 || !valid_id(ev->gateway_id.data, ev->gateway_id.len)) {
		bad_frame(r, ev->version ? "bad gateway id" : "no version", len);
		goto out;
	}
	gw = rt_gws_find(r->g, (const char *)ev->gateway_id.data, ev->gateway_id.len);
	if (ev->body_case == HERALD__CLUSTER__GATEWAY_EVENT__BODY_BYE) {
		/* A bye from an earlier process under this id (it may reach us
		 * after its successor's hello) is not the live gateway's. */
		if (gw && gw->boot_id != ev->boot_id)
			cm_info("gateway %s: a bye from an earlier process ignored", gw->id);
		else if (gw)
			drop_gw(r, gw, "said goodbye");
		goto out;
	}
	if (!gw) {
		gw = rt_gws_add(r->g, (const char *)ev->gateway_id.data, ev->gateway_id.len,
				r->prefix);
		if (!gw) {
			bad_frame(r, "too many gateways", len);
			goto out;
		}
		gw->boot_id = ev->boot_id;
		gw->joined_wall = cm_wall_ms();
		cm_info("gateway %s joined", gw->id);
		request_resync(r, gw);
		fresh = true;
	} else if (gw->boot_id != ev->boot_id && ev->boot_id == gw->prev_boot_id &&
		   now - gw->restarted_at < RT_STRAGGLER_MS) {
		/* The process just replaced still had events on their way (two
		 * Redis connections, no order between them): not a restart, and
		 * its streams are not the successor's. */
		cm_debug("gateway %s: an event of its previous process ignored", gw->id);
		goto out;
	} else if (gw->boot_id != ev->boot_id) {
		/* Two processes under one id flip the boot id back and forth
		 * (each flip past the straggler window above). */
		if (now - gw->restarted_at < 5000) {
			if (now - gw->dup_warned >= 10000) {
				cm_warn("gateway id %s restarts again and again: is it used by two "
					"gateways? (ids must be unique)", gw->id);
				gw->dup_warned = now;
			}
		} else {
			cm_info("gateway %s restarted", gw->id);
		}
		gw->restarted_at = now;
		rt_table_drop_gw(r->t, gw->slot, now);
		gw->prev_boot_id = gw->boot_id;
		gw->boot_id = ev->boot_id;
		request_resync(r, gw);
		fresh = true;
	}
	gw->last_seen = now;

	switch (ev->body_case) {
	case HERALD__CLUSTER__GATEWAY_EVENT__BODY_HELLO:
		gw->threads = ev->hello->threads;
		snprintf(gw->version, sizeof(gw->version), "%s",
			 ev->hello->version ? ev->hello->version : "");
		/* A known gateway says hello again after its Redis reconnect. */
		if (!fresh)
			request_resync(r, gw);
		break;
	case HERALD__CLUSTER__GATEWAY_EVENT__BODY_HEARTBEAT:
		if (gw->ccu != ev->heartbeat->ccu) {
			gw->ccu = ev->heartbeat->ccu;
			ccu_changed(r, gw);
		}
		gw->streams = ev->heartbeat->streams;
		if (ev->heartbeat->threads)
			gw->threads = ev->heartbeat->threads;
		if (ev->heartbeat->version && ev->heartbeat->version[0])
			snprintf(gw->version, sizeof(gw->version), "%s", ev->heartbeat->version);
		if (gw->state == RT_GW_SYNCING && now - gw->resync_sent >= RT_RESYNC_RETRY_MS)
			request_resync(r, gw);
		break;
	case HERALD__CLUSTER__GATEWAY_EVENT__BODY_INTEREST: {
		const Herald__Cluster__Interest *in = ev->interest;
		if (in->add) {
			if (!rt_table_hold(r->t, RT_STREAM, (const char *)in->stream.data,
					   in->stream.len, gw->slot, gw->mark, NULL)) {
				bad_frame(r, "bad stream name", len);
				break;
			}
			if (in->request_id) {
				rt_gw_ack(gw, in->request_id);
				queue_gw(r, gw);
			}
		} else {
			rt_table_release(r->t, RT_STREAM, (const char *)in->stream.data,
					 in->stream.len, gw->slot, now);
		}
		break;
	}
	case HERALD__CLUSTER__GATEWAY_EVENT__BODY_USER: {
		const Herald__Cluster__UserPresence *u = ev->user;
		if (u->online)
			rt_table_hold(r->t, RT_USER, (const char *)u->uid.data, u->uid.len,
				      gw->slot, gw->mark, NULL);
		else
			rt_table_release(r->t, RT_USER, (const char *)u->uid.data, u->uid.len,
					 gw->slot, now);
		break;
	}
	case HERALD__CLUSTER__GATEWAY_EVENT__BODY_PUBLISH:
		rt_router_publish(r, RT_DELIVER_STREAM, (const char *)ev->publish->stream.data,
				  ev->publish->stream.len, ev->publish->data.data,
				  ev->publish->data.len);
		break;
	case HERALD__CLUSTER__GATEWAY_EVENT__BODY_RESYNC_ANSWER:
		on_resync_answer(r, gw, ev->resync_answer);
		break;
	default:
		break; /* a newer gateway's event: ignore */
	}
out:
	herald__cluster__gateway_event__free_unpacked(ev, NULL);
}

void rt_router_expire(struct rt_router *r, uint64_t now)
{
	/* The timeout bounds the time from a gateway's death to its removal;
	 * its last heartbeat came up to RT_HEARTBEAT_MS before it died, and
	 * this check runs every 100 ms. */
	uint64_t slack = RT_HEARTBEAT_MS + 100, silence = r->o.gateway_timeout_ms;

	silence = silence > 2 * slack ? silence - slack : silence / 2;
	for (size_t s = 0; s < rt_gws_end(r->g); s++) {
		struct rt_gw *gw = rt_gws_at(r->g, (uint16_t)s);
		if (gw && now - gw->last_seen > silence)
			drop_gw(r, gw, "timed out");
	}
	if (r->nstale && now >= r->stale_at) {
		for (size_t i = 0; i < r->nstale; i++) {
			if (!rt_gws_find(r->g, r->stale[i], strlen(r->stale[i])))
				del_add(r, r->stale[i], strlen(r->stale[i]), NULL);
			free(r->stale[i]);
		}
		del_send(r, r->key_ccu);
		r->nstale = 0;
	}
}

/* ----------------------------------------------------------------- timers */

static void on_expire_timer(void *arg)
{
	struct rt_router *r = arg;
	rt_router_expire(r, cm_loop_now(r->loop));
}

static void on_ccu_timer(void *arg)
{
	struct rt_router *r = arg;
	size_t n = rt_gws_count(r->g);

	if (!n)
		return;
	resp_begin(&r->cmd, 2 + 2 * n);
	resp_str(&r->cmd, "HSET");
	resp_str(&r->cmd, r->key_ccu);
	for (size_t s = 0; s < rt_gws_end(r->g); s++) {
		struct rt_gw *gw = rt_gws_at(r->g, (uint16_t)s);
		if (!gw)
			continue;
		resp_arg(&r->cmd, gw->id, gw->id_len);
		resp_u64(&r->cmd, gw->ccu);
	}
	send_cmd(r, r->cmd.p, r->cmd.len);
}

static void on_sample_timer(void *arg)
{
	struct rt_router *r = arg;
	struct rt_stats st;
	struct rt_sample *s;

	rt_router_stats(r, &st);
	s = &r->hist[(r->hist_head + r->hist_n) % RT_HISTORY];
	if (r->hist_n < RT_HISTORY)
		r->hist_n++;
	else
		r->hist_head = (r->hist_head + 1) % RT_HISTORY;
	s->wall_ms = cm_wall_ms();
	s->publishes = st.publishes_in - r->last_pub;
	s->deliveries = st.deliveries_out - r->last_del;
	s->ccu = st.cluster_ccu;
	r->last_pub = st.publishes_in;
	r->last_del = st.deliveries_out;
}

static void on_expired_entry(void *arg, const struct rt_entry *e)
{
	struct rt_router *r = arg;
	if (e->saved)
		del_add(r, rt_entry_name(e), e->len, e->kind == RT_USER ? "user:" : NULL);
	if (r->ndel >= RT_FIELDS_PER_CMD)
		del_send(r, r->key_offsets);
}

static void on_sweep_timer(void *arg)
{
	struct rt_router *r = arg;
	rt_table_expire(r->t, cm_loop_now(r->loop), r->o.offset_idle_ms, on_expired_entry, r);
	del_send(r, r->key_offsets);
}

/* ------------------------------------------------------------ Redis input */

static void on_sub_msg(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rt_subtag *tag = priv;
	struct rt_router *r = tag->r;
	redisReply *m = reply;
	redisReply *chan, *payload;
	(void)ac;

	if (!m || m->type != REDIS_REPLY_ARRAY || m->elements < 3 ||
	    m->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (!strcmp(m->element[0]->str, "pmessage") && m->elements == 4) {
		chan = m->element[2];
		payload = m->element[3];
	} else if (!strcmp(m->element[0]->str, "message")) {
		chan = m->element[1];
		payload = m->element[2];
	} else {
		return; /* (p)subscribe confirmations */
	}
	if (chan->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING)
		return;
	switch (tag->what) {
	case SUB_STREAM:
		if (chan->len > r->stream_pre)
			rt_router_publish(r, RT_DELIVER_STREAM, chan->str + r->stream_pre,
					  chan->len - r->stream_pre, (const uint8_t *)payload->str,
					  payload->len);
		break;
	case SUB_USER:
		if (chan->len > r->user_pre)
			rt_router_publish(r, RT_DELIVER_USER, chan->str + r->user_pre,
					  chan->len - r->user_pre, (const uint8_t *)payload->str,
					  payload->len);
		break;
	case SUB_ALL:
		rt_router_publish(r, RT_DELIVER_ALL, NULL, 0, (const uint8_t *)payload->str,
				  payload->len);
		break;
	case SUB_ROUTER:
		rt_router_gateway_event(r, (const uint8_t *)payload->str, payload->len);
		break;
	}
}

static void sub_up(void *arg, redisAsyncContext *ac)
{
	struct rt_router *r = arg;

	redisAsyncCommand(ac, on_sub_msg, &r->tags[SUB_ROUTER], "SUBSCRIBE %s", r->chan_router);
	redisAsyncCommand(ac, on_sub_msg, &r->tags[SUB_STREAM], "PSUBSCRIBE %s", r->pat_stream);
	redisAsyncCommand(ac, on_sub_msg, &r->tags[SUB_USER], "PSUBSCRIBE %s", r->pat_user);
	redisAsyncCommand(ac, on_sub_msg, &r->tags[SUB_ALL], "SUBSCRIBE %s", r->chan_all);
	if (r->sub_connects++) {
		/* Events were lost while we were away: everyone resyncs. */
		for (size_t s = 0; s < rt_gws_end(r->g); s++) {
			struct rt_gw *gw = rt_gws_at(r->g, (uint16_t)s);
			if (gw)
				request_resync(r, gw);
		}
	}
	cm_info("subscribed to %s, %s, %s, %s", r->chan_router, r->pat_stream, r->pat_user,
		r->chan_all);
}

static void start_sub(struct rt_router *r)
{
	const struct cm_redis_cbs cbs = { .up = sub_up };
	r->sub = cm_redis_new(r->loop, r->o.redis_host, r->o.redis_port, "sub", &cbs, r);
}

static void on_offsets(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rt_router *r = priv;
	redisReply *m = reply;
	size_t n = 0;
	uint64_t now = cm_loop_now(r->loop);
	(void)ac;

	r->loading = false;
	if (!m)
		return; /* connection lost: asked again on the next connect */
	if (m->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i + 1 < m->elements; i += 2) {
			redisReply *f = m->element[i], *v = m->element[i + 1];
			unsigned long long off;
			char *end;

			if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
				continue;
			off = strtoull(v->str, &end, 10);
			if (end == v->str || *end)
				continue;
			if (f->len > 5 && !memcmp(f->str, "user:", 5))
				rt_table_floor(r->t, RT_USER, f->str + 5, f->len - 5, off, now);
			else
				rt_table_floor(r->t, RT_STREAM, f->str, f->len, off, now);
			n++;
		}
	} else {
		cm_warn("HGETALL %s: unexpected reply; starting offsets from zero", r->key_offsets);
	}
	cm_info("read back %zu stream offsets from %s", n, r->key_offsets);
	r->loaded = true;
	start_sub(r);
}

static void on_ccu_keys(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rt_router *r = priv;
	redisReply *m = reply;
	(void)ac;

	if (!m)
		return; /* connection lost: asked again on the next connect */
	if (r->listed)
		return; /* answered on an earlier connection */
	r->listed = true;
	if (m->type != REDIS_REPLY_ARRAY) {
		cm_warn("HKEYS %s: unexpected reply; old gateways' fields stay", r->key_ccu);
		return;
	}
	r->stale = cm_xcalloc(m->elements + 1, sizeof(*r->stale));
	for (size_t i = 0; i < m->elements; i++)
		if (m->element[i]->type == REDIS_REPLY_STRING)
			r->stale[r->nstale++] = cm_xstrndup(m->element[i]->str, m->element[i]->len);
	/* Live gateways show up within a heartbeat or two; give them the
	 * gateway timeout before their old fields count as stale. */
	r->stale_at = cm_loop_now(r->loop) + r->o.gateway_timeout_ms;
}

static void pub_up(void *arg, redisAsyncContext *ac)
{
	struct rt_router *r = arg;

	if (!r->loaded && !r->loading) {
		r->loading = true;
		redisAsyncCommand(ac, on_offsets, r, "HGETALL %s", r->key_offsets);
	}
	if (!r->listed)
		redisAsyncCommand(ac, on_ccu_keys, r, "HKEYS %s", r->key_ccu);
}

/* The write connection, first or again: replies off, and after a
 * reconnect every counter back (Redis may have lost them). */
static void out_up(void *arg, redisAsyncContext *ac)
{
	struct rt_router *r = arg;

	cm_redis_reply_off(ac);
	if (r->loaded)
		dump_offsets(r);
}

/* ------------------------------------------------------------------- API */

static char *fmt(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 1;
	char *s = cm_xmalloc(n);
	snprintf(s, n, "%s%s", a, b);
	return s;
}

struct rt_router *rt_router_new(struct cm_loop *loop, const struct rt_opts *opts)
{
	struct rt_router *r = cm_xcalloc(1, sizeof(*r));

	r->loop = loop;
	r->o = *opts;
	if (!r->o.gateway_timeout_ms)
		r->o.gateway_timeout_ms = 5000;
	if (!r->o.max_payload)
		r->o.max_payload = 1u << 20;
	if (r->o.max_payload > CM_CLUSTER_PAYLOAD_MAX)
		r->o.max_payload = CM_CLUSTER_PAYLOAD_MAX;
	if (!r->o.offset_idle_ms)
		r->o.offset_idle_ms = 60000;
	r->prefix = cm_xstrndup(opts->prefix, strlen(opts->prefix));
	r->chan_router = fmt(r->prefix, ":router");
	r->chan_all = fmt(r->prefix, ":all");
	r->pat_stream = fmt(r->prefix, ":stream:*");
	r->pat_user = fmt(r->prefix, ":user:*");
	r->key_offsets = fmt(r->prefix, ":offsets");
	r->key_ccu = fmt(r->prefix, ":ccu");
	r->stream_pre = strlen(r->pat_stream) - 1;
	r->user_pre = strlen(r->pat_user) - 1;
	for (int i = 0; i < SUB_N; i++) {
		r->tags[i].r = r;
		r->tags[i].what = i;
	}
	r->t = rt_table_new();
	r->g = rt_gws_new();
	r->boot_id = cm_random64() | 1; /* never 0 */
	/* Epochs are unique across router restarts too (a gateway may still
	 * be answering the previous router's request). */
	r->epoch = cm_wall_ms() << 8;
	r->scratch_cap = 64 << 10;
	r->scratch = cm_xmalloc(r->scratch_cap);

	if (r->o.no_redis) {
		r->loaded = true;
		return r;
	}
	r->t_expire = cm_timer_start(loop, 100, true, on_expire_timer, r);
	r->t_ccu = cm_timer_start(loop, 500, true, on_ccu_timer, r);
	r->t_sample = cm_timer_start(loop, 1000, true, on_sample_timer, r);
	r->t_sweep = cm_timer_start(loop, 10000, true, on_sweep_timer, r);
	{
		const struct cm_redis_cbs pcbs = { .up = pub_up }, ocbs = { .up = out_up };
		r->pub = cm_redis_new(loop, r->o.redis_host, r->o.redis_port, "pub", &pcbs, r);
		r->out = cm_redis_new(loop, r->o.redis_host, r->o.redis_port, "out", &ocbs, r);
	}
	return r;
}

void rt_router_free(struct rt_router *r)
{
	if (!r)
		return;
	cm_timer_stop(r->t_expire);
	cm_timer_stop(r->t_ccu);
	cm_timer_stop(r->t_sample);
	cm_timer_stop(r->t_sweep);
	cm_redis_free(r->sub);
	cm_redis_free(r->pub);
	cm_redis_free(r->out);
	for (size_t i = 0; i < r->nstale; i++)
		free(r->stale[i]);
	free(r->stale);
	rt_table_free(r->t);
	rt_gws_free(r->g);
	free(r->flush);
	free(r->scratch);
	cm_buf_free(&r->cmd);
	cm_buf_free(&r->del);
	free(r->prefix);
	free(r->chan_router);
	free(r->chan_all);
	free(r->pat_stream);
	free(r->pat_user);
	free(r->key_offsets);
	free(r->key_ccu);
	free(r);
}

void rt_router_stats(const struct rt_router *r, struct rt_stats *st)
{
	*st = r->st;
	st->redis_up = r->o.no_redis || (r->pub && cm_redis_up(r->pub) && r->out &&
					 cm_redis_up(r->out) && r->sub && cm_redis_up(r->sub));
	st->redis_reconnects = (r->pub ? cm_redis_reconnects(r->pub) : 0) +
			       (r->out ? cm_redis_reconnects(r->out) : 0) +
			       (r->sub ? cm_redis_reconnects(r->sub) : 0);
	st->redis_dropped_replies = r->out ? cm_redis_dropped(r->out) : 0;
	st->cluster_ccu = 0;
	for (size_t s = 0; s < rt_gws_end(r->g); s++) {
		struct rt_gw *gw = rt_gws_at(r->g, (uint16_t)s);
		if (gw)
			st->cluster_ccu += gw->ccu;
	}
	st->gateways = rt_gws_count(r->g);
	st->streams = rt_table_held(r->t, RT_STREAM);
	st->users = rt_table_held(r->t, RT_USER);
	st->entries = rt_table_count(r->t);
}

struct rt_table *rt_router_table(struct rt_router *r) { return r->t; }
struct rt_gws *rt_router_gws(struct rt_router *r) { return r->g; }
uint64_t rt_router_boot_id(const struct rt_router *r) { return r->boot_id; }

size_t rt_router_history(const struct rt_router *r, struct rt_sample *out, size_t cap)
{
	size_t n = r->hist_n < cap ? r->hist_n : cap;
	size_t skip = r->hist_n - n;

	for (size_t i = 0; i < n; i++)
		out[i] = r->hist[(r->hist_head + skip + i) % RT_HISTORY];
	return n;
}
