/* gw_subs — a worker's local subscriptions (stream -> its subscriber
 * connections on this worker, per format; touched by this worker only) and
 * their link to the gateway-wide stream and session tables. */
#include "gw.h"
#include "gw_sessions.h"
#include "gw_streams.h"
#include "cm_client.h"
#include "cm_log.h"
#include "cm_packet.h"

#include <string.h>

struct gw_lstream *gw_lstream_find(struct gw_worker *w, const char *s, size_t n)
{
	return (struct gw_lstream *)gw_htab_find(&w->lstreams, s, n, gw_hash(s, n));
}

static struct gw_lstream *lstream_get(struct gw_worker *w, const char *s, size_t n)
{
	uint64_t h = gw_hash(s, n);
	struct gw_lstream *ls = (struct gw_lstream *)gw_htab_find(&w->lstreams, s, n, h);

	if (ls)
		return ls;
	ls = cm_xcalloc(1, sizeof(*ls) + n + 1);
	memcpy(ls->name, s, n);
	ls->h.key = ls->name;
	ls->h.klen = n;
	ls->h.hash = h;
	gw_htab_insert(&w->lstreams, &ls->h);
	return ls;
}

static void reply_ok(struct gw_worker *w, struct gw_conn *c, uint64_t id)
{
	struct cm_packet *p = cm_reply_packet((enum cm_fmt)c->fmt, id, 0, NULL);
	gw_conn_push(w, c, p);
	cm_packet_unref(p);
	GW_INC(w, msgs_out, 1);
}

void gw_sub_add(struct gw_worker *w, struct gw_conn *c, uint32_t idx, const char *s, size_t n,
		uint64_t id, bool reply)
{
	struct gw *g = w->gw;
	struct gw_lstream *ls;
	struct gw_lsub *sub;
	struct gw_waiter *wt = NULL;
	bool first = false, reconcile = false;
	unsigned f = c->fmt;
	int r;

	uint32_t held = 0;

	for (sub = c->subs; sub; sub = sub->next, held++)
		if (sub->ls->h.klen == n && !memcmp(sub->ls->name, s, n))
			break;
	if (!sub && held >= g->o->max_subs) {
		if (reply) {
			struct cm_packet *p = cm_reply_packet((enum cm_fmt)c->fmt, id, CM_ERR_TOO_LARGE,
							      "too many subscriptions");
			gw_conn_push(w, c, p);
			cm_packet_unref(p);
			GW_INC(w, msgs_out, 1);
		}
		return;
	}
	if (!sub) {
		ls = lstream_get(w, s, n);
		if (ls->n[f] == ls->cap[f]) {
			ls->cap[f] = ls->cap[f] ? ls->cap[f] * 2 : 4;
			ls->subs[f] = cm_xrealloc(ls->subs[f], ls->cap[f] * sizeof(*ls->subs[f]));
		}
		first = ls->n[f] == 0;
		sub = cm_xmalloc(sizeof(*sub));
		sub->ls = ls;
		sub->conn = idx;
		sub->fmt = (uint8_t)f;
		sub->pos = ls->n[f];
		ls->subs[f][ls->n[f]++] = sub;
		sub->next = c->subs;
		c->subs = sub;
		GW_INC(w, subs, 1);
	}
	if (!g->o->standalone) {
		wt = cm_xcalloc(1, sizeof(*wt));
		wt->worker = w->id;
		wt->idx = idx;
		wt->gen = c->gen;
		wt->id = id;
		wt->reply = reply;
	}
	r = gw_streams_sub(g->streams, s, n, w->id, f, first, wt, &reconcile);
	if (reconcile)
		gw_hub_post_reconcile(w, false, s, n);
	if (r == GW_SUB_LIVE && reply)
		reply_ok(w, c, id);
}

static void lsub_remove(struct gw_worker *w, struct gw_lsub *sub)
{
	struct gw_lstream *ls = sub->ls;
	unsigned f = sub->fmt;
	struct gw_lsub *last;

	CM_ASSERT(ls->n[f] > 0 && ls->subs[f][sub->pos] == sub);
	last = ls->subs[f][--ls->n[f]];
	ls->subs[f][sub->pos] = last;
	last->pos = sub->pos;
	free(sub);
	GW_INC(w, subs, -1);
	if (ls->n[f] == 0) {
		struct gw_waiter *wt;
		free(ls->subs[f]);
		ls->subs[f] = NULL;
		ls->cap[f] = 0;
		if (gw_streams_unsub(w->gw->streams, ls->name, ls->h.klen, w->id, f, &wt) &&
		    !w->gw->o->standalone)
			gw_hub_post_reconcile(w, false, ls->name, ls->h.klen);
		/* Subscribes still waiting for the interest now gone (cancelled
		 * by unsubscribes or closes) are answered all the same: ok, as
		 * for a stream unsubscribed after its ok. */
		if (wt)
			gw_hub_post_waiters(w, ls->name, ls->h.klen, wt, true);
		if (!ls->n[0] && !ls->n[1]) {
			gw_htab_remove(&w->lstreams, &ls->h);
			free(ls);
		}
	}
}

void gw_sub_del(struct gw_worker *w, struct gw_conn *c, const char *s, size_t n)
{
	for (struct gw_lsub **pp = &c->subs; *pp; pp = &(*pp)->next) {
		struct gw_lsub *sub = *pp;
		if (sub->ls->h.klen == n && !memcmp(sub->ls->name, s, n)) {
			*pp = sub->next;
			lsub_remove(w, sub);
			return;
		}
	}
}

void gw_conn_forget(struct gw_worker *w, struct gw_conn *c, uint32_t idx)
{
	while (c->subs) {
		struct gw_lsub *sub = c->subs;
		c->subs = sub->next;
		lsub_remove(w, sub);
	}
	if (c->flags & GW_F_SESSION) {
		struct gw_sess s = { .worker = w->id, .idx = idx, .gen = c->gen, .fmt = c->fmt };
		size_t n = strlen(c->uid);
		c->flags &= ~GW_F_SESSION;
		if (gw_sessions_del(w->gw->sessions, c->uid, n, &s))
			gw_hub_post_reconcile(w, true, c->uid, n);
	}
}

void gw_session_add(struct gw_worker *w, struct gw_conn *c, uint32_t idx)
{
	struct gw_sess s = { .worker = w->id, .idx = idx, .gen = c->gen, .fmt = c->fmt };
	size_t n = strlen(c->uid);

	c->flags |= GW_F_SESSION;
	if (gw_sessions_add(w->gw->sessions, c->uid, n, &s))
		gw_hub_post_reconcile(w, true, c->uid, n);
}

void gw_publish(struct gw_worker *w, const char *s, size_t n, const uint8_t *data, size_t len)
{
	gw_hub_post_publish(w, s, n, data, len);
}
