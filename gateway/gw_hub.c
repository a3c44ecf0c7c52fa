/* gw_hub — worker 0's side of the gateway: the cluster link (or, in
 * standalone mode, the local offsets of in-band publishes), the streams and
 * users announced to the router, delivery fan-out to the workers (one
 * packet per client format, one post per worker per batch), signals and the
 * drain. Everything here runs on worker 0's loop; other workers reach it
 * with cm_loop_post. */
#include "gw.h"
#include "gw_cluster.h"
#include "gw_sessions.h"
#include "gw_streams.h"
#include "cm_admin.h"
#include "cm_buf.h"
#include "cm_client.h"
#include "cm_log.h"
#include "cm_packet.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

enum { B_STREAM = 1, B_CONN, B_ALL };

struct gw_bitem {
	uint8_t kind;
	uint32_t idx, gen;
	uint32_t name_off, name_len;
	struct cm_packet *pkt[2];
};

struct gw_batch {
	struct gw_worker *w;
	uint32_t n, cap;
	struct gw_bitem *it;
	struct cm_buf names;
};

struct ack;

struct gw_ann {
	struct gw_hnode h;
	bool live;
	const struct ack *pending;  /* while not live: the add waiting for its ack */
	char name[];
};

struct gw_hub {
	struct gw *g;
	struct gw_worker *w0;
	struct gw_cluster *cl;
	struct gw_htab ann_s, ann_u;
	struct gw_batch **pend;
	struct cm_timer *stats, *drain_timer;
	struct cm_poll *sig;
	int sigfd;
	unsigned drained, quiesced;
	struct ack *acks;
	bool draining, stopping;
};

/* ------------------------------------------------------------ batches */

static void batch_add(struct gw_hub *h, unsigned wid, uint8_t kind, const char *name, size_t n,
		      struct cm_packet *p0, struct cm_packet *p1, uint32_t idx, uint32_t gen)
{
	struct gw_batch *b = h->pend[wid];
	struct gw_bitem *it;

	if (!b) {
		b = h->pend[wid] = cm_xcalloc(1, sizeof(*b));
		b->w = h->g->w[wid];
	}
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->it = cm_xrealloc(b->it, b->cap * sizeof(*b->it));
	}
	it = &b->it[b->n++];
	it->kind = kind;
	it->idx = idx;
	it->gen = gen;
	it->name_off = (uint32_t)b->names.len;
	it->name_len = (uint32_t)n;
	if (n)
		cm_buf_append(&b->names, name, n);
	it->pkt[0] = p0;
	it->pkt[1] = p1;
	if (p0)
		cm_packet_ref(p0);
	if (p1)
		cm_packet_ref(p1);
}

struct gw_lstream *gw_lstream_find(struct gw_worker *w, const char *s, size_t n);

static void push_each(struct gw_worker *w, struct gw_conn *c, void *arg)
{
	struct cm_packet **pk = arg;
	if (pk[c->fmt]) {
		gw_conn_push(w, c, pk[c->fmt]);
		GW_INC(w, pushes, 1);
		GW_INC(w, msgs_out, 1);
	}
}

/* On the target worker: queue every item's packets on the subscribers. */
static void batch_apply(void *arg)
{
	struct gw_batch *b = arg;
	struct gw_worker *w = b->w;

	for (uint32_t i = 0; i < b->n; i++) {
		struct gw_bitem *it = &b->it[i];
		if (it->kind == B_STREAM) {
			struct gw_lstream *ls =
				gw_lstream_find(w, b->names.p + it->name_off, it->name_len);
			for (unsigned f = 0; ls && f < 2; f++) {
				if (!it->pkt[f])
					continue;
				/* pushes never unlink subscribers (that waits for the turn's end) */
				struct gw_lsub **sv = ls->subs[f];
				uint32_t ns = ls->n[f];
				for (uint32_t k = 0; k < ns; k++) {
					/* the subscribers' connections are scattered over
					 * the slab and each push misses the cache: fetch
					 * ahead (the lsub 16 ahead, the connection's two
					 * lines 8 ahead) */
					if (k + 16 < ns)
						__builtin_prefetch(sv[k + 16]);
					if (k + 8 < ns) {
						struct gw_conn *ahead = gw_slot(w, sv[k + 8]->conn);
						__builtin_prefetch(ahead);
						__builtin_prefetch((char *)ahead + 64);
					}
					gw_conn_push(w, gw_slot(w, sv[k]->conn), it->pkt[f]);
				}
				GW_INC(w, pushes, ls->n[f]);
				GW_INC(w, msgs_out, ls->n[f]);
			}
		} else if (it->kind == B_CONN) {
			struct gw_conn *c = gw_conn_get(w, it->idx, it->gen);
			if (c && it->pkt[c->fmt]) {
				gw_conn_push(w, c, it->pkt[c->fmt]);
				GW_INC(w, pushes, 1);
				GW_INC(w, msgs_out, 1);
			}
		} else {
			gw_worker_each_open(w, push_each, it->pkt);
		}
		if (it->pkt[0])
			cm_packet_unref(it->pkt[0]);
		if (it->pkt[1])
			cm_packet_unref(it->pkt[1]);
	}
	free(b->it);
	cm_buf_free(&b->names);
	free(b);
}

static void batch_free(struct gw_batch *b)
{
	for (uint32_t k = 0; k < b->n; k++)
		for (int f = 0; f < 2; f++)
			if (b->it[k].pkt[f])
				cm_packet_unref(b->it[k].pkt[f]);
	free(b->it);
	cm_buf_free(&b->names);
	free(b);
}

/* Nothing is posted between loops once the stop began (see begin_stop). */
static bool stopping(const struct gw *g)
{
	return atomic_load_explicit(&g->stopping, memory_order_acquire);
}

static void hub_flush(struct gw_hub *h)
{
	for (unsigned i = 0; i < h->g->nworkers; i++) {
		struct gw_batch *b = h->pend[i];
		if (!b)
			continue;
		h->pend[i] = NULL;
		if (i != 0 && stopping(h->g))
			batch_free(b);
		else if (i == 0)
			batch_apply(b);
		else
			cm_loop_post(h->w0->loop, b->w->loop, batch_apply, b);
	}
}

static void hub_turn(void *arg)
{
	hub_flush(arg);
}

static void deliver_masks(struct gw_hub *h, const char *s, size_t n, uint64_t offset,
			  const uint8_t *data, size_t len, const uint64_t masks[2])
{
	struct cm_packet *pk[2] = { NULL, NULL };
	uint64_t any = masks[0] | masks[1];

	for (unsigned f = 0; f < 2; f++)
		if (masks[f])
			pk[f] = cm_push_packet((enum cm_fmt)f, s, n, offset, data, len);
	for (unsigned wid = 0; wid < h->g->nworkers; wid++) {
		if (!(any >> wid & 1))
			continue;
		batch_add(h, wid, B_STREAM, s, n, (masks[0] >> wid & 1) ? pk[0] : NULL,
			  (masks[1] >> wid & 1) ? pk[1] : NULL, 0, 0);
	}
	for (unsigned f = 0; f < 2; f++)
		if (pk[f])
			cm_packet_unref(pk[f]);
}

static void cb_deliver_stream(void *ctx, const char *s, size_t n, uint64_t offset,
			      const uint8_t *data, size_t len)
{
	struct gw_hub *h = ctx;
	uint64_t masks[2];

	if (gw_streams_get(h->g->streams, s, n, masks, NULL))
		deliver_masks(h, s, n, offset, data, len, masks);
}

struct user_ctx {
	struct gw_hub *h;
	const char *stream;
	size_t slen;
	uint64_t offset;
	const uint8_t *data;
	size_t len;
	struct cm_packet *pk[2];
};

static void user_each(void *arg, const struct gw_sess *s)
{
	struct user_ctx *u = arg;
	unsigned f = s->fmt;

	if (!u->pk[f])
		u->pk[f] = cm_push_packet((enum cm_fmt)f, u->stream, u->slen, u->offset, u->data,
					  u->len);
	batch_add(u->h, s->worker, B_CONN, NULL, 0, f == 0 ? u->pk[0] : NULL,
		  f == 1 ? u->pk[1] : NULL, s->idx, s->gen);
}

static void cb_deliver_user(void *ctx, const char *uid, size_t n, uint64_t offset,
			    const uint8_t *data, size_t len)
{
	struct gw_hub *h = ctx;
	char stream[5 + 256];
	struct user_ctx u = { .h = h, .stream = stream, .slen = 5 + n, .offset = offset,
			      .data = data, .len = len };

	if (n > 256)
		return;
	memcpy(stream, "user:", 5);
	memcpy(stream + 5, uid, n);
	gw_sessions_each(h->g->sessions, uid, n, user_each, &u);
	for (unsigned f = 0; f < 2; f++)
		if (u.pk[f])
			cm_packet_unref(u.pk[f]);
}

static void cb_deliver_all(void *ctx, const uint8_t *data, size_t len)
{
	struct gw_hub *h = ctx;
	struct cm_packet *pk[2];

	pk[0] = cm_push_packet(CM_FMT_JSON, "*", 1, 0, data, len);
	pk[1] = cm_push_packet(CM_FMT_PROTOBUF, "*", 1, 0, data, len);
	for (unsigned wid = 0; wid < h->g->nworkers; wid++)
		batch_add(h, wid, B_ALL, NULL, 0, pk[0], pk[1], 0, 0);
	cm_packet_unref(pk[0]);
	cm_packet_unref(pk[1]);
}

static void cb_batch_end(void *ctx)
{
	hub_flush(ctx);
}

static struct gw_ann *ann_find(struct gw_htab *t, const char *s, size_t n)
{
	return (struct gw_ann *)gw_htab_find(t, s, n, gw_hash(s, n));
}

static struct gw_ann *ann_add(struct gw_htab *t, const char *s, size_t n)
{
	struct gw_ann *a = cm_xcalloc(1, sizeof(*a) + n + 1);
	memcpy(a->name, s, n);
	a->h.key = a->name;
	a->h.klen = n;
	a->h.hash = gw_hash(s, n);
	gw_htab_insert(t, &a->h);
	return a;
}

static void cb_resync(void *ctx)
{
	struct gw_hub *h = ctx;

	if (!h->cl)
		return;
	gw_htab_foreach(&h->ann_s, i, nd, nx) {
		(void)nx;
		gw_cluster_resync_add(h->cl, false, nd->key, nd->klen);
	}
	gw_htab_foreach(&h->ann_u, i, nd, nx) {
		(void)nx;
		gw_cluster_resync_add(h->cl, true, nd->key, nd->klen);
	}
	gw_cluster_resync_done(h->cl);
}

/* ------------------------------------------------------------ interest */

struct wreply {
	struct gw_worker *w;
	bool ok;
	struct gw_waiter *list;
	size_t n;
	char name[];
};

/* On the subscriber's worker: answer the subscribes that waited. */
static void wreply_apply(void *arg)
{
	struct wreply *r = arg;
	struct gw_worker *w = r->w;

	while (r->list) {
		struct gw_waiter *wt = r->list;
		struct gw_conn *c = gw_conn_get(w, wt->idx, wt->gen);
		r->list = wt->next;
		if (c && c->state == GW_S_OPEN) {
			struct cm_packet *p = NULL;
			if (!r->ok)
				gw_sub_del(w, c, r->name, r->n);
			if (wt->reply)
				p = cm_reply_packet((enum cm_fmt)c->fmt, wt->id,
						    r->ok ? 0 : CM_ERR_INTERNAL,
						    r->ok ? NULL : "subscription failed");
			if (p) {
				gw_conn_push(w, c, p);
				cm_packet_unref(p);
				GW_INC(w, msgs_out, 1);
			}
		}
		free(wt);
	}
	free(r);
}

/* Hands waiters to their workers (posted from loop `from`). */
static void answer_waiters(struct gw *g, struct cm_loop *from, const char *s, size_t n,
			   struct gw_waiter *all, bool ok)
{
	struct wreply *per[GW_MAX_THREADS] = { 0 };

	while (all) {
		struct gw_waiter *wt = all;
		all = wt->next;
		if (wt->worker >= g->nworkers) {
			free(wt);
			continue;
		}
		if (!per[wt->worker]) {
			per[wt->worker] = cm_xcalloc(1, sizeof(struct wreply) + n + 1);
			per[wt->worker]->w = g->w[wt->worker];
			per[wt->worker]->ok = ok;
			per[wt->worker]->n = n;
			memcpy(per[wt->worker]->name, s, n);
		}
		wt->next = per[wt->worker]->list;
		per[wt->worker]->list = wt;
	}
	for (unsigned i = 0; i < g->nworkers; i++) {
		if (!per[i])
			continue;
		if (stopping(g)) {
			per[i]->ok = false;
			for (struct gw_waiter *wt = per[i]->list, *nx; wt; wt = nx) {
				nx = wt->next;
				free(wt);
			}
			free(per[i]);
		} else {
			cm_loop_post(from, per[i]->w->loop, wreply_apply, per[i]);
		}
	}
}

static void settle(struct gw_hub *h, const char *s, size_t n, bool ok)
{
	answer_waiters(h->g, h->w0->loop, s, n, gw_streams_settle(h->g->streams, s, n, ok), ok);
}

void gw_hub_post_waiters(struct gw_worker *from, const char *name, size_t n,
			 struct gw_waiter *list, bool ok)
{
	answer_waiters(from->gw, from->loop, name, n, list, ok);
}

/* An interest add waiting for the router; listed so that the ones the
 * link never answers (it was freed first) are freed too. The stream's
 * announcement points at its own add, so the answer to an add that an
 * unsubscribe cancelled cannot settle a later add of the same stream. */
struct ack {
	struct ack *prev, *next;
	struct gw_hub *h;
	size_t n;
	char name[];
};

static void ack_unlink(struct gw_hub *h, struct ack *a)
{
	if (a->prev)
		a->prev->next = a->next;
	else
		h->acks = a->next;
	if (a->next)
		a->next->prev = a->prev;
}

static void acks_free(struct gw_hub *h)
{
	while (h->acks) {
		struct ack *a = h->acks;
		h->acks = a->next;
		free(a);
	}
}

static void on_ack(void *arg, bool ok)
{
	struct ack *a = arg;
	struct gw_hub *h = a->h;
	struct gw_ann *an = ann_find(&h->ann_s, a->name, a->n);

	ack_unlink(h, a);
	if (an && !an->live && an->pending == a) {
		an->pending = NULL;
		if (ok) {
			an->live = true;
		} else {
			cm_warn("interest in %.*s not acknowledged", (int)a->n, a->name);
			gw_htab_remove(&h->ann_s, &an->h);
			free(an);
			if (h->cl)
				gw_cluster_interest(h->cl, a->name, a->n, false, NULL, NULL);
		}
		settle(h, a->name, a->n, ok);
	}
	free(a);
}

struct rec {
	struct gw *g;
	bool is_user;
	size_t n;
	char name[];
};

static void reconcile(void *arg)
{
	struct rec *r = arg;
	struct gw_hub *h = r->g->w[0]->hub;
	struct gw_ann *an;
	bool want;

	if (!h->cl) {
		free(r);
		return;
	}
	if (r->is_user) {
		want = gw_sessions_each(h->g->sessions, r->name, r->n, NULL, NULL) > 0;
		an = ann_find(&h->ann_u, r->name, r->n);
		if (want && !an) {
			ann_add(&h->ann_u, r->name, r->n);
			gw_cluster_user(h->cl, r->name, r->n, true);
		} else if (!want && an) {
			gw_htab_remove(&h->ann_u, &an->h);
			free(an);
			gw_cluster_user(h->cl, r->name, r->n, false);
		}
		free(r);
		return;
	}
	want = gw_streams_wanted(h->g->streams, r->name, r->n);
	an = ann_find(&h->ann_s, r->name, r->n);
	if (want && !an) {
		struct ack *a = cm_xmalloc(sizeof(*a) + r->n + 1);
		a->h = h;
		a->n = r->n;
		memcpy(a->name, r->name, r->n);
		a->name[r->n] = 0;
		a->prev = NULL;
		a->next = h->acks;
		if (h->acks)
			h->acks->prev = a;
		h->acks = a;
		ann_add(&h->ann_s, r->name, r->n)->pending = a;
		gw_cluster_interest(h->cl, r->name, r->n, true, on_ack, a);
	} else if (!want && an) {
		gw_htab_remove(&h->ann_s, &an->h);
		free(an);
		gw_cluster_interest(h->cl, r->name, r->n, false, NULL, NULL);
	} else if (want && an && an->live) {
		/* removed and re-added before worker 0 saw it: still live */
		settle(h, r->name, r->n, true);
	}
	free(r);
}

void gw_hub_post_reconcile(struct gw_worker *from, bool is_user, const char *name, size_t n)
{
	struct rec *r;

	if (stopping(from->gw))
		return;
	r = cm_xmalloc(sizeof(*r) + n + 1);
	r->g = from->gw;
	r->is_user = is_user;
	r->n = n;
	memcpy(r->name, name, n);
	r->name[n] = 0;
	cm_loop_post(from->loop, from->gw->w[0]->loop, reconcile, r);
}

/* ------------------------------------------------------------ publish */

struct pub {
	struct gw *g;
	size_t n, len;
	uint8_t buf[];
};

static void publish(void *arg)
{
	struct pub *p = arg;
	struct gw_hub *h = p->g->w[0]->hub;
	const char *s = (const char *)p->buf;
	const uint8_t *data = p->buf + p->n;
	uint64_t masks[2], off;

	if (p->g->o->standalone) {
		if (gw_streams_get(p->g->streams, s, p->n, masks, &off))
			deliver_masks(h, s, p->n, off, data, p->len, masks);
	} else if (h->cl) {
		gw_cluster_publish(h->cl, s, p->n, data, p->len);
	}
	free(p);
}

void gw_hub_post_publish(struct gw_worker *from, const char *s, size_t n, const uint8_t *d,
			 size_t len)
{
	struct pub *p;

	if (stopping(from->gw))
		return;
	p = cm_xmalloc(sizeof(*p) + n + len);
	p->g = from->gw;
	p->n = n;
	p->len = len;
	memcpy(p->buf, s, n);
	if (len)
		memcpy(p->buf + n, d, len);
	cm_loop_post(from->loop, from->gw->w[0]->loop, publish, p);
}

/* ------------------------------------------------------------ drain */

static void worker_stop(void *arg)
{
	struct gw_worker *w = arg;
	cm_loop_stop(w->loop);
}

static void stop_all(struct gw_hub *h)
{
	for (unsigned i = 1; i < h->g->nworkers; i++)
		cm_loop_post(h->w0->loop, h->g->w[i]->loop, worker_stop, h->g->w[i]);
	cm_loop_stop(h->w0->loop);
}

static void quiesced(void *arg)
{
	struct gw_worker *w = arg;
	struct gw_hub *h = w->gw->w[0]->hub;

	if (++h->quiesced == h->g->nworkers - 1)
		stop_all(h);
}

/* On worker i: it has seen `stopping` (it posts nothing more), and what it
 * posted before is ahead of this answer in worker 0's queue. */
static void quiesce(void *arg)
{
	struct gw_worker *w = arg;
	cm_loop_post(w->loop, w->gw->w[0]->loop, quiesced, w);
}

static void quiesce_all(void *arg)
{
	struct gw_hub *h = arg;

	if (h->g->nworkers == 1) {
		stop_all(h);
		return;
	}
	for (unsigned i = 1; i < h->g->nworkers; i++)
		cm_loop_post(h->w0->loop, h->g->w[i]->loop, quiesce, h->g->w[i]);
}

static void begin_stop(struct gw_hub *h)
{
	if (h->stopping)
		return;
	h->stopping = true;
	atomic_store(&h->g->stopping, true);
	if (h->drain_timer) {
		cm_timer_stop(h->drain_timer);
		h->drain_timer = NULL;
	}
	if (h->cl) {
		gw_cluster_free(h->cl); /* goodbye to the router, best effort */
		h->cl = NULL;
		acks_free(h);
	}
	if (h->stats) {
		cm_timer_stop(h->stats);
		h->stats = NULL;
	}
	if (h->g->admin) {
		cm_admin_stop(h->g->admin);
		h->g->admin = NULL;
	}
	/* a short grace for the last sends and the goodbye; then every worker
	 * confirms it posts nothing more, so no message is left in flight */
	cm_timer_start(h->w0->loop, 50, false, quiesce_all, h);
}

static void drain_timeout(void *arg)
{
	struct gw_hub *h = arg;
	h->drain_timer = NULL;
	cm_info("drain timeout: stopping with connections left");
	begin_stop(h);
}

static void drained(void *arg)
{
	struct gw_worker *w = arg;
	struct gw_hub *h = w->gw->w[0]->hub;

	if (++h->drained >= h->g->nworkers) {
		cm_info("drained");
		begin_stop(h);
	}
}

void gw_hub_post_drained(struct gw_worker *from)
{
	if (stopping(from->gw))
		return;
	cm_loop_post(from->loop, from->gw->w[0]->loop, drained, from);
}

static void worker_drain(void *arg)
{
	gw_worker_drain(arg);
}

static void start_drain(struct gw_hub *h)
{
	if (h->draining) {
		cm_info("second signal: stopping now");
		begin_stop(h);
		return;
	}
	h->draining = true;
	atomic_store(&h->g->draining, true);
	cm_info("draining (%ld connections)", (long)atomic_load(&h->g->conns));
	for (unsigned i = 0; i < h->g->nworkers; i++)
		cm_loop_post(h->w0->loop, h->g->w[i]->loop, worker_drain, h->g->w[i]);
	h->drain_timer = cm_timer_start(h->w0->loop, h->g->o->drain_ms ? h->g->o->drain_ms : 1,
					false, drain_timeout, h);
}

static void on_signal(void *arg, int revents)
{
	struct gw_hub *h = arg;
	struct signalfd_siginfo si;

	(void)revents;
	while (read(h->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		start_drain(h);
}

void gw_hub_signal(struct gw *g)
{
	start_drain(g->w[0]->hub);
}

/* ------------------------------------------------------------ stats */

static void stats_tick(void *arg)
{
	struct gw_hub *h = arg;
	struct gw_cluster_stats st;

	if (!h->cl)
		return;
	gw_cluster_set_stats(h->cl, (uint64_t)atomic_load(&h->g->open),
			     gw_streams_count(h->g->streams));
	gw_cluster_get_stats(h->cl, &st);
	atomic_store(&h->g->cluster_up, st.redis_up);
}

bool gw_hub_ready(struct gw *g)
{
	struct gw_hub *h = g->w[0]->hub;
	struct gw_cluster_stats st;

	if (h->draining || h->stopping)
		return false;
	if (g->o->standalone)
		return true;
	if (!h->cl)
		return false;
	gw_cluster_get_stats(h->cl, &st);
	atomic_store(&g->cluster_up, st.redis_up);
	return st.redis_up;
}

void gw_hub_stats(struct gw *g, struct cm_buf *b)
{
	struct gw_hub *h = g->w[0]->hub;
	struct gw_cluster_stats st;

	cm_buf_printf(b, "# TYPE herald_gateway_cluster_streams_announced gauge\n"
			 "herald_gateway_cluster_streams_announced %zu\n", h->ann_s.n);
	cm_buf_printf(b, "# TYPE herald_gateway_cluster_users_announced gauge\n"
			 "herald_gateway_cluster_users_announced %zu\n", h->ann_u.n);
	if (!h->cl)
		return;
	gw_cluster_get_stats(h->cl, &st);
	cm_buf_printf(b, "# TYPE herald_gateway_cluster_up gauge\nherald_gateway_cluster_up %d\n",
		      st.redis_up ? 1 : 0);
	cm_buf_printf(b, "# TYPE herald_gateway_cluster_reconnects_total counter\n"
			 "herald_gateway_cluster_reconnects_total %llu\n",
		      (unsigned long long)st.redis_reconnects);
	cm_buf_printf(b, "# TYPE herald_gateway_cluster_redis_dropped_reply_bytes_total counter\n"
			 "herald_gateway_cluster_redis_dropped_reply_bytes_total %llu\n",
		      (unsigned long long)st.redis_dropped_replies);
	cm_buf_printf(b, "# TYPE herald_gateway_cluster_frames_in_total counter\n"
			 "herald_gateway_cluster_frames_in_total %llu\n",
		      (unsigned long long)st.frames_in);
	cm_buf_printf(b, "# TYPE herald_gateway_cluster_frames_bad_total counter\n"
			 "herald_gateway_cluster_frames_bad_total %llu\n",
		      (unsigned long long)st.frames_bad);
	cm_buf_printf(b, "# TYPE herald_gateway_cluster_deliveries_in_total counter\n"
			 "herald_gateway_cluster_deliveries_in_total %llu\n",
		      (unsigned long long)st.deliveries_in);
}

/* ------------------------------------------------------------ setup */

void gw_hub_init(struct gw *g)
{
	struct gw_hub *h = cm_xcalloc(1, sizeof(*h));
	struct gw_worker *w0 = g->w[0];
	sigset_t set;

	h->g = g;
	h->w0 = w0;
	w0->hub = h;
	gw_htab_init(&h->ann_s);
	gw_htab_init(&h->ann_u);
	h->pend = cm_xcalloc(g->nworkers, sizeof(*h->pend));
	/* before the worker's own flush: what the hub queues goes out this turn */
	cm_loop_on_turn(w0->loop, hub_turn, h);

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	h->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (h->sigfd < 0)
		cm_warn("signalfd: %s", strerror(errno));
	else
		h->sig = cm_poll_start(w0->loop, h->sigfd, POLLIN, true, on_signal, h);

	if (!g->o->standalone) {
		static const struct gw_cluster_cbs cbs = {
			.deliver_stream = cb_deliver_stream,
			.deliver_user = cb_deliver_user,
			.deliver_all = cb_deliver_all,
			.batch_end = cb_batch_end,
			.resync = cb_resync,
		};
		struct gw_cluster_opts co = {
			.redis_host = g->o->redis_host,
			.redis_port = g->o->redis_port,
			.prefix = g->o->prefix,
			.gateway_id = g->o->id,
			.threads = g->nworkers,
			.version = "0.1",
		};
		h->cl = gw_cluster_new(w0->loop, &co, &cbs, h);
		/* the counts the heartbeat carries (every 500 ms) are at most
		 * 100 ms old: herald:ccu stays within the contract's 1 s */
		h->stats = cm_timer_start(w0->loop, 100, true, stats_tick, h);
	}
}

void gw_hub_fini(struct gw *g)
{
	struct gw_hub *h = g->w[0]->hub;

	if (!h)
		return;
	if (h->cl)
		gw_cluster_free(h->cl);
	acks_free(h);
	if (h->sigfd >= 0)
		close(h->sigfd);
	gw_htab_foreach(&h->ann_s, i, nd, nx) {
		(void)nx;
		free(nd);
	}
	gw_htab_foreach(&h->ann_u, i, nd, nx) {
		(void)nx;
		free(nd);
	}
	for (unsigned i = 0; i < g->nworkers; i++) {
		if (h->pend[i])
			batch_free(h->pend[i]);
	}
	gw_htab_destroy(&h->ann_s);
	gw_htab_destroy(&h->ann_u);
	free(h->pend);
	free(h);
	g->w[0]->hub = NULL;
}
