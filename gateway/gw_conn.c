/* gw_conn — a connection's life on its worker: accept, multishot receive
 * from the provided-buffer ring, TLS, the HTTP upgrade, WebSocket frames and
 * client commands, the write queue flushed once per loop turn, timers, and
 * the close handshake. Everything here runs on the connection's worker. */
#include "gw.h"
#include "gw_streams.h"
#include "cm_client.h"
#include "cm_http.h"
#include "cm_jwt.h"
#include "cm_log.h"
#include "cm_packet.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *const gw_reason_names[GW_R_MAX] = {
	[GW_R_CLIENT_CLOSE] = "client_close", [GW_R_EOF] = "eof",
	[GW_R_IO_ERROR] = "io_error", [GW_R_PROTOCOL] = "protocol_error",
	[GW_R_BAD_UTF8] = "invalid_utf8", [GW_R_TOO_BIG] = "too_big",
	[GW_R_UNSUPPORTED] = "unsupported_data", [GW_R_IDLE] = "idle_timeout",
	[GW_R_SLOW] = "slow_consumer", [GW_R_DRAIN] = "drain", [GW_R_TOKEN] = "token_expired",
	[GW_R_HANDSHAKE_TIMEOUT] = "handshake_timeout", [GW_R_TLS_FAILED] = "tls_failed",
	[GW_R_HTTP_REFUSED] = "http_refused", [GW_R_INTERNAL] = "internal",
	[GW_R_CLOSED_BY_PEER_TLS] = "tls_close_notify", [GW_R_OVERLOADED] = "overloaded",
};
const int gw_http_statuses[GW_H_MAX] = { 400, 401, 404, 405, 426, 431, 503, 505 };

static __thread struct gw_worker *cur_w;
static __thread uint8_t tls_rbuf[16384];

static inline uint32_t rel_now(struct gw_worker *w)
{
	return (uint32_t)(cm_loop_now(w->loop) - w->epoch_ms);
}

static void list_push(uint32_t **a, uint32_t *n, uint32_t *cap, uint32_t v)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		*a = cm_xrealloc(*a, *cap * sizeof(**a));
	}
	(*a)[(*n)++] = v;
}

struct gw_conn *gw_conn_get(struct gw_worker *w, uint32_t idx, uint32_t gen)
{
	struct gw_conn *c;

	if (idx >= w->nslots)
		return NULL;
	c = gw_slot(w, idx);
	if (c->gen != gen || c->state == GW_S_FREE || c->state == GW_S_DEAD)
		return NULL;
	return c;
}

/* ------------------------------------------------------------ slab */

static struct gw_conn *conn_alloc(struct gw_worker *w)
{
	struct gw_conn *c;
	uint32_t idx, gen;

	if (!w->nfree) {
		uint32_t base = w->nslots;
		w->chunks = cm_xrealloc(w->chunks, (w->nchunks + 1) * sizeof(*w->chunks));
		w->chunks[w->nchunks++] = cm_xcalloc(GW_CHUNK, sizeof(struct gw_conn));
		w->nslots += GW_CHUNK;
		for (uint32_t i = GW_CHUNK; i-- > 0;)
			list_push(&w->freel, &w->nfree, &w->capfree, base + i);
	}
	idx = w->freel[--w->nfree];
	c = gw_slot(w, idx);
	gen = (c->gen + 1) & GW_GEN_MASK;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->idx = idx;
	c->fd = -1;
	c->wl.next = c->wl.prev = GW_NIL;
	w->nconns++;
	return c;
}

/* Bytes leave a connection's write queue (sent, encrypted or dropped). */
static inline void queued_sub(struct gw_worker *w, struct gw_conn *c, uint32_t n)
{
	c->queued -= n;
	w->queued -= n;
}

static void wq_free(struct gw_conn *c)
{
	struct gw_wq *q = c->wq;

	CM_ASSERT(c->queued == 0);
	free(q->sv);
	free(q->p);
	free(q);
	c->wq = NULL;
}

static void wq_drop(struct gw_worker *w, struct gw_conn *c, uint32_t from)
{
	struct gw_wq *q = c->wq;

	if (!q)
		return;
	for (uint32_t i = from; i < q->n; i++) {
		queued_sub(w, c, q->p[i]->len - (i == 0 ? q->head_off : 0));
		cm_packet_unref(q->p[i]);
	}
	q->n = from;
	if (!q->n)
		wq_free(c);
}

static void tout_free(struct gw_conn *c)
{
	if (!c->tout)
		return;
	free(c->tout->out);
	free(c->tout->fly);
	free(c->tout);
	c->tout = NULL;
}

static void accept_retry(void *arg);

static void conn_free(struct gw_worker *w, struct gw_conn *c)
{
	CM_ASSERT(c->inflight == 0 && c->state == GW_S_DEAD);
	if (c->flags & GW_F_FIXED) {
		/* the slot's reference was the last: the socket closes now */
		int none = -1, ret;
		ret = io_uring_register_files_update(cm_loop_ring(w->loop), (unsigned)c->fd, &none, 1);
		if (ret != 1)
			cm_warn("file slot %d not emptied: %s (its socket stays open)", c->fd,
				strerror(ret < 0 ? -ret : EIO));
	} else if (c->fd >= 0) {
		close(c->fd);
	}
	wq_drop(w, c, 0);
	tout_free(c);
	if (c->ssl)
		SSL_free(c->ssl);
	free(c->hs);
	free(c->uid);
	cm_ws_reader_reset(&c->rd);
	gw_wheel_del(&w->wheel, c->idx);
	c->state = GW_S_FREE;
	c->ssl = NULL;
	c->hs = NULL;
	c->uid = NULL;
	list_push(&w->freel, &w->nfree, &w->capfree, c->idx);
	w->nconns--;
	atomic_fetch_sub(&w->gw->conns, 1);
	/* a descriptor is free again: a stalled accept retries now */
	if (w->accept_retry && c->fd >= 0) {
		cm_timer_stop(w->accept_retry);
		accept_retry(w);
	}
	atomic_store_explicit(&w->m.conns, (long)w->nconns, memory_order_relaxed);
}

/* ------------------------------------------------------------ ring ops */

/* An operation on c's socket: c->fd names a slot of the file table when
 * the connection is GW_F_FIXED. */
static inline void sqe_on(struct io_uring_sqe *sqe, const struct gw_conn *c)
{
	if (c->flags & GW_F_FIXED)
		sqe->flags |= IOSQE_FIXED_FILE;
}

/* shutdown(2), or for a socket with no descriptor its ring operation, which
 * goes with this turn's submit (counted in flight: the slot outlives it). */
static void conn_shutdown(struct gw_worker *w, struct gw_conn *c, int how)
{
	struct io_uring_sqe *sqe;

	if (!(c->flags & GW_F_FIXED)) {
		shutdown(c->fd, how);
		return;
	}
	sqe = cm_loop_sqe(w->loop);
	io_uring_prep_shutdown(sqe, c->fd, how);
	sqe_on(sqe, c);
	io_uring_sqe_set_data64(sqe, gw_ud(c->idx, c->gen, GW_OP_SHUT));
	c->inflight++;
}

static void arm_recv(struct gw_worker *w, struct gw_conn *c)
{
	struct io_uring_sqe *sqe = cm_loop_sqe(w->loop);

	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe_on(sqe, c);
	sqe->buf_group = 0;
	io_uring_sqe_set_data64(sqe, gw_ud(c->idx, c->gen, GW_OP_RECV));
	c->flags |= GW_F_RECV;
	c->inflight++;
}

static void mark_dirty(struct gw_worker *w, struct gw_conn *c)
{
	if (c->flags & GW_F_DIRTY)
		return;
	c->flags |= GW_F_DIRTY;
	list_push(&w->dirty, &w->ndirty, &w->capdirty, c->idx);
}

static void list_dead(struct gw_worker *w, struct gw_conn *c)
{
	if (c->flags & GW_F_DEAD_LISTED)
		return;
	c->flags |= GW_F_DEAD_LISTED;
	list_push(&w->dead, &w->ndead, &w->capdead, c->idx);
}

/* The connection stops being a live client: out of ccu, counted closed. */
static void conn_leave(struct gw_worker *w, struct gw_conn *c, enum gw_reason why)
{
	if (!(c->flags & GW_F_CLOSED_COUNTED)) {
		c->flags |= GW_F_CLOSED_COUNTED;
		GW_INC(w, closed[why], 1);
	}
	if (c->flags & GW_F_COUNTED) {
		c->flags &= ~GW_F_COUNTED;
		atomic_fetch_sub(&w->gw->open, 1);
		atomic_store_explicit(&w->m.open,
			atomic_load_explicit(&w->m.open, memory_order_relaxed) - 1,
			memory_order_relaxed);
	}
	list_dead(w, c);
}

/* Hard close: no more bytes either way. Freed once no op is in flight. */
static void conn_kill(struct gw_worker *w, struct gw_conn *c, enum gw_reason why)
{
	if (c->state == GW_S_DEAD || c->state == GW_S_FREE)
		return;
	conn_leave(w, c, why);
	c->state = GW_S_DEAD;
	/* completes the armed receive (res 0) and any send in flight */
	conn_shutdown(w, c, SHUT_RDWR);
	wq_drop(w, c, c->wq ? c->wq->nflight : 0);
	if (c->tout) {
		free(c->tout->out);
		c->tout->out = NULL;
		c->tout->out_len = c->tout->out_cap = 0;
	}
	free(c->hs);
	c->hs = NULL;
	gw_wheel_del(&w->wheel, c->idx);
	list_dead(w, c);
}

static void enqueue(struct gw_worker *w, struct gw_conn *c, struct cm_packet *p)
{
	struct gw_wq *q = c->wq;

	if (!q) {
		/* sv comes with the first send of two packets or more */
		q = c->wq = cm_xmalloc(sizeof(*q));
		q->n = q->nflight = q->head_off = 0;
		q->sv = NULL;
		q->cap = 4;
		q->p = cm_xmalloc(q->cap * sizeof(*q->p));
	}
	if (q->n == q->cap) {
		q->cap *= 2;
		q->p = cm_xrealloc(q->p, q->cap * sizeof(*q->p));
	}
	q->p[q->n++] = p;
	c->queued += p->len;
	w->queued += p->len;
	mark_dirty(w, c);
}

/* Graceful close: the last bytes (close frame or HTTP response) go out,
 * then FIN, then we wait (briefly) for the peer's FIN. A client that is
 * behind gets GW_CLOSE_FLUSH_MS to take the frames in flight and the close
 * frame after them (a slow consumer's 1008 is behind a full send buffer);
 * the GW_CLOSE_GRACE_MS for its FIN starts with ours. */
static void conn_closing(struct gw_worker *w, struct gw_conn *c, struct cm_packet *last,
			 enum gw_reason why)
{
	conn_leave(w, c, why);
	c->state = GW_S_CLOSING;
	/* the reader's buffer goes with the slot: we may be inside its callback */
	free(c->hs);
	c->hs = NULL;
	if (last)
		enqueue(w, c, last);
	else
		mark_dirty(w, c);
	gw_wheel_add(&w->wheel, c->idx, cm_loop_now(w->loop) + GW_CLOSE_FLUSH_MS);
}

void gw_conn_close(struct gw_worker *w, struct gw_conn *c, uint16_t code, const char *reason,
		   enum gw_reason why)
{
	uint8_t buf[125];
	size_t n = 0, rl = reason ? strlen(reason) : 0;

	if (c->state >= GW_S_CLOSING || c->state == GW_S_FREE)
		return;
	if (c->state != GW_S_OPEN) {
		conn_kill(w, c, why);
		return;
	}
	if (code) {
		buf[0] = (uint8_t)(code >> 8);
		buf[1] = (uint8_t)code;
		if (rl > sizeof(buf) - 2)
			rl = sizeof(buf) - 2;
		if (rl)
			memcpy(buf + 2, reason, rl);
		n = 2 + rl;
	}
	conn_closing(w, c, cm_packet_frame(CM_WS_CLOSE, buf, n), why);
}

/* Drops a client's backlog and closes it with code. The queue is cut at a
 * frame boundary: the frames in flight stay, and so does a first frame
 * partly sent or encrypted (head_off), or the close frame would land inside
 * it. */
static void cut_off(struct gw_worker *w, struct gw_conn *c, uint16_t code, const char *reason,
		    enum gw_reason why)
{
	struct gw_wq *q = c->wq;

	wq_drop(w, c, !q ? 0 : q->nflight ? q->nflight : q->head_off ? 1 : 0);
	gw_conn_close(w, c, code, reason, why);
}

void gw_conn_push(struct gw_worker *w, struct gw_conn *c, struct cm_packet *p)
{
	if (c->state != GW_S_OPEN)
		return;
	uint64_t pending = c->queued;

	if (c->tout)
		pending += c->tout->out_len + (c->tout->fly_len - c->tout->fly_off);
	/* The limit is on the backlog: a message that finds nothing queued goes
	 * out whatever its size, or a 1 MiB payload (framed, or a third larger
	 * as base64) would cut off a client that keeps up. */
	if (pending && pending + p->len > w->gw->o->max_queued) {
		GW_INC(w, slow, 1);
		cut_off(w, c, CM_WS_CLOSE_POLICY, "slow consumer", GW_R_SLOW);
		return;
	}
	/* Past the worker's share of --max-queued-total, a client whose backlog
	 * is above its fair share of that budget goes (1013), the others still
	 * queue: when the total is over, some backlog is above the share, and
	 * those under it add at most the budget again. A broadcast's packet
	 * is shared, so the budget counts it once per client, as a bound. */
	if (w->queued + p->len > w->queued_limit && pending) {
		long open = atomic_load_explicit(&w->m.open, memory_order_relaxed);
		if (pending > w->queued_limit / (uint64_t)(open > 0 ? open : 1)) {
			cut_off(w, c, CM_WS_CLOSE_OVERLOADED, "overloaded", GW_R_OVERLOADED);
			return;
		}
	}
	cm_packet_ref(p);
	enqueue(w, c, p);
}

/* ------------------------------------------------------------ HTTP */

static int hidx(int status)
{
	for (int i = 0; i < GW_H_MAX; i++)
		if (gw_http_statuses[i] == status)
			return i;
	return 0;
}

static void http_refuse(struct gw_worker *w, struct gw_conn *c, int status, const char *msg)
{
	char out[512];
	const char *extra = status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL;
	char body[160];
	int bl = snprintf(body, sizeof(body), "%s\n", msg);
	size_t n = cm_http_write_response(out, sizeof(out), status, "text/plain; charset=utf-8",
					  extra, body, (size_t)bl);
	struct cm_packet *p;

	GW_INC(w, refused[hidx(status)], 1);
	if (!n) {
		conn_kill(w, c, GW_R_HTTP_REFUSED);
		return;
	}
	p = cm_packet_new(n);
	memcpy(p->data, out, n);
	p->len = (uint32_t)n;
	conn_closing(w, c, p, GW_R_HTTP_REFUSED);
}

static bool uid_ok(const char *s, size_t n)
{
	if (n == 0 || n > 120)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static void ws_input(struct gw_worker *w, struct gw_conn *c, uint8_t *p, size_t n);

/* The request head is complete: refuse, or upgrade to WebSocket. */
static void upgrade(struct gw_worker *w, struct gw_conn *c, const struct cm_http_req *req)
{
	struct gw *g = w->gw;
	const struct gw_opts *o = g->o;
	char fmt[16], uid[256], key[29], resp[256];
	char *streams = NULL, *tok = NULL;
	int r, n;
	uint32_t exp_s = 0;
	enum cm_fmt f = CM_FMT_JSON;
	struct cm_packet *p;

	if (!cm_str_eq(req->path, "/ws")) {
		http_refuse(w, c, 404, "not found");
		return;
	}
	if (!cm_str_eq(req->method, "GET")) {
		http_refuse(w, c, 400, "websocket upgrade needs GET");
		return;
	}
	if (req->minor < 1 || !cm_http_has_token(req->upgrade, "websocket") ||
	    !cm_http_has_token(req->connection, "upgrade") || req->ws_key.n == 0) {
		http_refuse(w, c, 400, "not a websocket upgrade");
		return;
	}
	if (!cm_str_eq(req->ws_version, "13")) {
		http_refuse(w, c, 426, "websocket version 13 required");
		return;
	}
	r = cm_http_query_get(req->query, "format", fmt, sizeof(fmt));
	if (r == -2 || (r >= 0 && strcmp(fmt, "json") && strcmp(fmt, "protobuf"))) {
		http_refuse(w, c, 400, "format must be json or protobuf");
		return;
	}
	if (r >= 0 && !strcmp(fmt, "protobuf"))
		f = CM_FMT_PROTOBUF;
	if (o->auth_jwt) {
		int64_t exp = 0;
		tok = cm_xmalloc(CM_HTTP_MAX_HEAD);
		r = cm_http_query_get(req->query, "token", tok, CM_HTTP_MAX_HEAD);
		if (r <= 0) {
			free(tok);
			http_refuse(w, c, 401, "token required");
			return;
		}
		r = cm_jwt_verify(tok, (size_t)r, o->jwt_secret, o->jwt_secret_len,
				  (int64_t)(cm_wall_ms() / 1000), uid, sizeof(uid), &exp);
		free(tok);
		if (r != CM_JWT_OK || !uid_ok(uid, strlen(uid))) {
			http_refuse(w, c, 401, r != CM_JWT_OK ? cm_jwt_strerror(r) : "bad sub");
			return;
		}
		exp_s = exp <= 0 ? 1 : exp > UINT32_MAX - CM_JWT_LEEWAY_S ? UINT32_MAX - CM_JWT_LEEWAY_S
								   : (uint32_t)exp;
	} else {
		r = cm_http_query_get(req->query, "user", uid, sizeof(uid));
		if (r == -2 || (r >= 0 && !uid_ok(uid, (size_t)r))) {
			http_refuse(w, c, 400, "bad user");
			return;
		}
		if (r < 0)
			snprintf(uid, sizeof(uid), "anon-%lu",
				 (unsigned long)atomic_fetch_add(&g->anon, 1) + 1);
	}
	streams = cm_xmalloc(CM_HTTP_MAX_HEAD);
	r = cm_http_query_get(req->query, "streams", streams, CM_HTTP_MAX_HEAD);
	/* a decoded NUL (%00) would end the list early: refused, not cut */
	if (r == -2 || (r > 0 && memchr(streams, 0, (size_t)r))) {
		free(streams);
		http_refuse(w, c, 400, "bad streams");
		return;
	}
	if (r >= 0) {
		unsigned cnt = 0;
		for (char *s = streams;; cnt++) {
			char *e = strchr(s, ',');
			size_t len = e ? (size_t)(e - s) : strlen(s);
			if (!cm_stream_valid(s, len) || (len >= 5 && !memcmp(s, "user:", 5)) ||
			    cnt >= o->max_subs) {
				free(streams);
				http_refuse(w, c, 400, "bad stream name in streams");
				return;
			}
			if (!e)
				break;
			s = e + 1;
		}
	} else {
		free(streams);
		streams = NULL;
	}
	if (atomic_load(&g->draining) || w->draining) {
		free(streams);
		http_refuse(w, c, 503, "draining");
		return;
	}
	if (atomic_fetch_add(&g->open, 1) >= (long)o->max_conns) {
		atomic_fetch_sub(&g->open, 1);
		free(streams);
		http_refuse(w, c, 503, "at capacity");
		return;
	}
	c->flags |= GW_F_COUNTED;
	atomic_store_explicit(&w->m.open, atomic_load_explicit(&w->m.open, memory_order_relaxed) + 1,
			      memory_order_relaxed);

	cm_ws_accept_key(req->ws_key, key);
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", key);
	p = cm_packet_new((size_t)n);
	memcpy(p->data, resp, (size_t)n);
	p->len = (uint32_t)n;
	enqueue(w, c, p);

	c->state = GW_S_OPEN;
	c->fmt = (uint8_t)f;
	c->exp_s = exp_s;
	c->tokens = o->cmd_burst * 1000;
	c->tok_ms = c->last_ping = c->last_rx = rel_now(w);
	cm_ws_reader_init(&c->rd, true, o->max_message);
	if (!o->standalone) {
		c->uid = strdup(uid);
		gw_session_add(w, c, c->idx);
	}
	gw_wheel_add(&w->wheel, c->idx,
		     cm_loop_now(w->loop) + (o->ping_ms < o->idle_ms ? o->ping_ms : o->idle_ms));
	if (streams) {
		for (char *s = streams;;) {
			char *e = strchr(s, ',');
			size_t len = e ? (size_t)(e - s) : strlen(s);
			gw_sub_add(w, c, c->idx, s, len, 0, false);
			if (!e)
				break;
			s = e + 1;
		}
		free(streams);
	}
}

static void http_input(struct gw_worker *w, struct gw_conn *c, uint8_t *p, size_t n)
{
	struct cm_http_req req;
	size_t room = CM_HTTP_MAX_HEAD - c->hs_len, take = n < room ? n : room;
	int r;

	c->hs = cm_xrealloc(c->hs, c->hs_len + take + 1);
	memcpy(c->hs + c->hs_len, p, take);
	c->hs_len = (uint16_t)(c->hs_len + take);
	/* the head ends with a line: no new line, nothing new to parse (a
	 * request sent a byte at a time costs O(n), not O(n^2)) */
	if (!memchr(p, '\n', take) && c->hs_len < CM_HTTP_MAX_HEAD)
		return;
	r = cm_http_parse_request(c->hs, c->hs_len, &req);
	if (r == 0) {
		if (c->hs_len >= CM_HTTP_MAX_HEAD)
			http_refuse(w, c, 431, "request head too large");
		return;
	}
	if (r < 0) {
		http_refuse(w, c, -r, cm_http_reason(-r));
		return;
	}
	upgrade(w, c, &req);
	if (c->state == GW_S_OPEN) {
		/* frames pipelined behind the request */
		char *hs = c->hs;
		size_t hl = c->hs_len, used = (size_t)r;
		c->hs = NULL;
		c->hs_len = 0;
		if (hl > used)
			ws_input(w, c, (uint8_t *)hs + used, hl - used);
		free(hs);
		if (take < n && c->state == GW_S_OPEN)
			ws_input(w, c, p + take, n - take);
	} else {
		free(c->hs);
		c->hs = NULL;
		c->hs_len = 0;
	}
}

/* ------------------------------------------------------------ WebSocket */

static void reply(struct gw_worker *w, struct gw_conn *c, uint64_t id, int code, const char *msg)
{
	struct cm_packet *p = cm_reply_packet((enum cm_fmt)c->fmt, id, code, msg);
	gw_conn_push(w, c, p);
	cm_packet_unref(p);
	GW_INC(w, msgs_out, 1);
}

static bool take_token(struct gw_worker *w, struct gw_conn *c)
{
	const struct gw_opts *o = w->gw->o;
	uint32_t now = rel_now(w), el = now - c->tok_ms;
	uint64_t t = c->tokens + (uint64_t)el * o->cmd_rate;

	c->tok_ms = now;
	if (t > (uint64_t)o->cmd_burst * 1000)
		t = (uint64_t)o->cmd_burst * 1000;
	if (t < 1000) {
		c->tokens = (uint32_t)t;
		return false;
	}
	c->tokens = (uint32_t)(t - 1000);
	return true;
}

static void command(struct gw_worker *w, struct gw_conn *c, const uint8_t *data, size_t len)
{
	struct cm_cmd cmd;
	const char *em = NULL;
	int e;

	GW_INC(w, cmds, 1);
	memset(&cmd, 0, sizeof(cmd));
	e = cm_cmd_parse((enum cm_fmt)c->fmt, data, len, &cmd, &em);
	if (!take_token(w, c)) {
		GW_INC(w, rate_limited, 1);
		reply(w, c, cmd.id, CM_ERR_RATE, "rate limited");
		cm_cmd_release(&cmd);
		return;
	}
	if (e) {
		reply(w, c, cmd.id, e, em ? em : "bad command");
		cm_cmd_release(&cmd);
		return;
	}
	switch (cmd.kind) {
	case CM_CMD_SUBSCRIBE:
		if (cmd.stream_len >= 5 && !memcmp(cmd.stream, "user:", 5))
			reply(w, c, cmd.id, CM_ERR_FORBIDDEN, "user streams are reserved");
		else
			gw_sub_add(w, c, c->idx, cmd.stream, cmd.stream_len, cmd.id, true);
		break;
	case CM_CMD_UNSUBSCRIBE:
		gw_sub_del(w, c, cmd.stream, cmd.stream_len);
		reply(w, c, cmd.id, 0, NULL);
		break;
	case CM_CMD_PUBLISH:
		if (!gw_opts_may_publish(w->gw->o, cmd.stream, cmd.stream_len)) {
			reply(w, c, cmd.id, CM_ERR_FORBIDDEN, "publishing to this stream is not allowed");
			break;
		}
		if (!w->gw->o->standalone && !atomic_load(&w->gw->cluster_up)) {
			reply(w, c, cmd.id, CM_ERR_INTERNAL, "cluster link down");
			break;
		}
		gw_publish(w, cmd.stream, cmd.stream_len, cmd.data, cmd.data_len);
		reply(w, c, cmd.id, 0, NULL);
		break;
	default:
		reply(w, c, cmd.id, CM_ERR_UNKNOWN, "unknown command");
		break;
	}
	cm_cmd_release(&cmd);
}

/* Drops a pong still waiting at the tail of the queue (neither in flight nor
 * partly sent): RFC 6455 5.5.3 lets a pong answer only the latest ping. A
 * client pinging without reading then holds one pong, not a 2-byte packet
 * (some 40 bytes of memory) per ping, 20 times what --max-queued-bytes
 * allows. */
static void pong_unqueue(struct gw_worker *w, struct gw_conn *c)
{
	struct gw_wq *q = c->wq;
	uint32_t last;

	if (!q || !q->n)
		return;
	last = q->n - 1;
	if (last < q->nflight || (last == 0 && q->head_off))
		return;
	if (cm_packet_bytes(q->p[last])[0] == (0x80 | CM_WS_PONG))
		wq_drop(w, c, last);
}

static int on_ws_msg(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
	struct gw_conn *c = ctx;
	struct gw_worker *w = cur_w;
	struct cm_packet *p;
	uint16_t code;
	const uint8_t *reason;
	size_t rl;
	int r;

	if (c->state != GW_S_OPEN)
		return CM_WS_CLOSE_NORMAL;
	switch (opcode) {
	case CM_WS_TEXT:
	case CM_WS_BINARY:
		if ((opcode == CM_WS_TEXT) != (c->fmt == CM_FMT_JSON))
			return CM_WS_CLOSE_UNSUPPORTED;
		GW_INC(w, msgs_in, 1);
		command(w, c, data, len);
		break;
	case CM_WS_PING:
		pong_unqueue(w, c);
		p = cm_packet_frame(CM_WS_PONG, data, len);
		gw_conn_push(w, c, p);
		cm_packet_unref(p);
		break;
	case CM_WS_PONG:
		break;
	case CM_WS_CLOSE:
		r = cm_ws_parse_close(data, len, &code, &reason, &rl);
		if (r < 0)
			return -r;
		if (code == CM_WS_CLOSE_NO_STATUS)
			gw_conn_close(w, c, 0, NULL, GW_R_CLIENT_CLOSE);
		else
			gw_conn_close(w, c, code, NULL, GW_R_CLIENT_CLOSE);
		return CM_WS_CLOSE_NORMAL;
	}
	return c->state == GW_S_OPEN ? 0 : CM_WS_CLOSE_NORMAL;
}

static void ws_input(struct gw_worker *w, struct gw_conn *c, uint8_t *p, size_t n)
{
	int r = cm_ws_reader_feed(&c->rd, p, n, on_ws_msg, c);
	enum gw_reason why;

	if (!r || c->state != GW_S_OPEN)
		return;
	switch (r) {
	case CM_WS_CLOSE_INVALID_DATA: why = GW_R_BAD_UTF8; break;
	case CM_WS_CLOSE_TOO_BIG: why = GW_R_TOO_BIG; break;
	case CM_WS_CLOSE_UNSUPPORTED: why = GW_R_UNSUPPORTED; break;
	case CM_WS_CLOSE_PROTOCOL: why = GW_R_PROTOCOL; break;
	default: why = GW_R_PROTOCOL; break;
	}
	gw_conn_close(w, c, (uint16_t)r, NULL, why);
}

static void plain_input(struct gw_worker *w, struct gw_conn *c, uint8_t *p, size_t n)
{
	if (c->state == GW_S_HTTP)
		http_input(w, c, p, n);
	else if (c->state == GW_S_OPEN)
		ws_input(w, c, p, n);
}

/* ------------------------------------------------------------ TLS */

static void tls_input(struct gw_worker *w, struct gw_conn *c, const uint8_t *p, size_t n)
{
	gw_tls_set_input(p, n);
	for (;;) {
		int r, e;
		if (c->state == GW_S_TLS) {
			r = SSL_do_handshake(c->ssl);
			if (r == 1) {
				if (SSL_session_reused(c->ssl))
					GW_INC(w, tls_resumed, 1);
				else
					GW_INC(w, tls_full, 1);
				c->state = GW_S_HTTP;
				continue;
			}
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				break;
			GW_INC(w, tls_failed, 1);
			ERR_clear_error();
			/* the alert BoringSSL wrote goes out before the FIN */
			conn_closing(w, c, NULL, GW_R_TLS_FAILED);
			break;
		}
		if (c->state != GW_S_HTTP && c->state != GW_S_OPEN)
			break;
		r = SSL_read(c->ssl, tls_rbuf, sizeof(tls_rbuf));
		if (r > 0) {
			plain_input(w, c, tls_rbuf, (size_t)r);
			continue;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			break;
		ERR_clear_error();
		conn_kill(w, c, e == SSL_ERROR_ZERO_RETURN ? GW_R_CLOSED_BY_PEER_TLS : GW_R_TLS_FAILED);
		break;
	}
	gw_tls_set_input(NULL, 0);
	if (c->tout && c->tout->out_len && c->state != GW_S_DEAD)
		mark_dirty(w, c);
}

/* ------------------------------------------------------------ flush */

static void send_done_closing(struct gw_worker *w, struct gw_conn *c)
{
	if (c->state == GW_S_CLOSING && !(c->flags & GW_F_SHUTWR) && !c->wq &&
	    (!c->tout || (!c->tout->out_len && !c->tout->fly))) {
		c->flags |= GW_F_SHUTWR;
		conn_shutdown(w, c, SHUT_WR);
		gw_wheel_add(&w->wheel, c->idx, cm_loop_now(w->loop) + GW_CLOSE_GRACE_MS);
	}
}

static void plain_flush(struct gw_worker *w, struct gw_conn *c)
{
	struct gw_wq *q = c->wq;
	struct io_uring_sqe *sqe;
	uint32_t k;

	if (!q || !q->n)
		return;
	k = q->n < GW_IOV_MAX ? q->n : GW_IOV_MAX;
	q->nflight = k;
	sqe = cm_loop_sqe(w->loop);
	if (k == 1) {
		/* the common case of fan-out: one frame, a plain send */
		io_uring_prep_send(sqe, c->fd, cm_packet_bytes(q->p[0]) + q->head_off,
				   q->p[0]->len - q->head_off, MSG_NOSIGNAL);
	} else {
		struct gw_sendv *v = q->sv;
		if (!v)
			v = q->sv = cm_xmalloc(sizeof(*v));
		for (uint32_t i = 0; i < k; i++) {
			uint32_t off = i == 0 ? q->head_off : 0;
			v->iov[i].iov_base = (void *)(cm_packet_bytes(q->p[i]) + off);
			v->iov[i].iov_len = q->p[i]->len - off;
		}
		memset(&v->msg, 0, sizeof(v->msg));
		v->msg.msg_iov = v->iov;
		v->msg.msg_iovlen = k;
		io_uring_prep_sendmsg(sqe, c->fd, &v->msg, MSG_NOSIGNAL);
	}
	sqe_on(sqe, c);
	io_uring_sqe_set_data64(sqe, gw_ud(c->idx, c->gen, GW_OP_SEND));
	c->flags |= GW_F_SEND;
	c->inflight++;
}

static void tls_flush(struct gw_worker *w, struct gw_conn *c)
{
	struct gw_tlsout *t;
	struct io_uring_sqe *sqe;
	struct gw_wq *q = c->wq;
	size_t total = 0;

	/* records already built wait for the socket first: TLS output stays
	 * bounded (about two batches) however slow the reader */
	if (q && q->n && SSL_is_init_finished(c->ssl) &&
	    (!c->tout || c->tout->out_len < GW_TLS_BATCH)) {
		while (q->n && total < GW_TLS_BATCH) {
			size_t chunk = 0;
			uint32_t used = 0, head = q->head_off, new_head = 0;
			/* coalesce queued frames into one record's worth */
			while (used < q->n && chunk < GW_TLS_CHUNK) {
				struct cm_packet *p = q->p[used];
				uint32_t off = used == 0 ? head : 0;
				size_t take = p->len - off;
				if (take > GW_TLS_CHUNK - chunk)
					take = GW_TLS_CHUNK - chunk;
				memcpy(w->scratch + chunk, cm_packet_bytes(p) + off, take);
				chunk += take;
				if (off + take == p->len) {
					used++;
				} else {
					new_head = off + (uint32_t)take;
					break;
				}
			}
			/* head_off moves only once the bytes are encrypted: a kill
			 * here drops the queue from where it stood */
			if (SSL_write(c->ssl, w->scratch, (int)chunk) <= 0) {
				ERR_clear_error();
				conn_kill(w, c, GW_R_TLS_FAILED);
				return;
			}
			q->head_off = new_head;
			queued_sub(w, c, (uint32_t)chunk);
			for (uint32_t i = 0; i < used; i++)
				cm_packet_unref(q->p[i]);
			memmove(q->p, q->p + used, (q->n - used) * sizeof(*q->p));
			q->n -= used;
			total += chunk;
		}
		if (!q->n)
			wq_free(c);
	}
	t = c->tout;
	if (!t)
		return;
	if (!t->fly && t->out_len) {
		t->fly = t->out;
		t->fly_len = t->out_len;
		t->fly_off = 0;
		t->out = NULL;
		t->out_len = t->out_cap = 0;
	}
	if (!t->fly)
		return;
	sqe = cm_loop_sqe(w->loop);
	io_uring_prep_send(sqe, c->fd, t->fly + t->fly_off, t->fly_len - t->fly_off, MSG_NOSIGNAL);
	sqe_on(sqe, c);
	io_uring_sqe_set_data64(sqe, gw_ud(c->idx, c->gen, GW_OP_SEND));
	c->flags |= GW_F_SEND;
	c->inflight++;
}

static void flush(struct gw_worker *w, struct gw_conn *c)
{
	if (c->flags & GW_F_SEND || c->state == GW_S_DEAD || c->state == GW_S_FREE)
		return;
	if (c->flags & GW_F_TLS)
		tls_flush(w, c);
	else
		plain_flush(w, c);
	if (!(c->flags & GW_F_SEND))
		send_done_closing(w, c);
}

static void on_send(struct gw_worker *w, struct gw_conn *c, int res)
{
	c->inflight--;
	c->flags &= ~GW_F_SEND;
	if (res > 0)
		GW_INC(w, bytes_out, (unsigned long)res);
	if (c->flags & GW_F_TLS) {
		struct gw_tlsout *t = c->tout;
		CM_ASSERT(t && t->fly);
		if (res > 0)
			t->fly_off += (uint32_t)res;
		if (res <= 0 || t->fly_off >= t->fly_len || c->state == GW_S_DEAD) {
			free(t->fly);
			t->fly = NULL;
			t->fly_len = t->fly_off = 0;
		}
		if (!t->fly && !t->out_len) {
			free(t->out);
			free(t);
			c->tout = NULL;
		}
	} else if (c->wq) {
		struct gw_wq *q = c->wq;
		uint32_t done = 0;
		size_t left = res > 0 ? (size_t)res : 0;
		while (done < q->nflight && left) {
			size_t rem = q->p[done]->len - q->head_off;
			if (left < rem) {
				q->head_off += (uint32_t)left;
				queued_sub(w, c, (uint32_t)left);
				left = 0;
				break;
			}
			left -= rem;
			queued_sub(w, c, (uint32_t)rem);
			q->head_off = 0;
			cm_packet_unref(q->p[done++]);
		}
		memmove(q->p, q->p + done, (q->n - done) * sizeof(*q->p));
		q->n -= done;
		q->nflight = 0;
		if (!q->n || c->state == GW_S_DEAD)
			wq_drop(w, c, 0);
	}
	if (res < 0) {
		conn_kill(w, c, GW_R_IO_ERROR);
		return;
	}
	if (c->state == GW_S_DEAD)
		return;
	if (c->wq || (c->tout && (c->tout->out_len || c->tout->fly)))
		mark_dirty(w, c);
	else
		send_done_closing(w, c);
}

/* ------------------------------------------------------------ completions */

static void on_recv(struct gw_worker *w, struct gw_conn *c, struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res;

	if (!more) {
		c->flags &= ~GW_F_RECV;
		c->inflight--;
	}
	if (res > 0) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		uint8_t *p = cm_bufring_buf(&w->rbufs, bid);
		CM_ASSERT(cqe->flags & IORING_CQE_F_BUFFER);
		GW_INC(w, bytes_in, (unsigned long)res);
		if (c->state != GW_S_DEAD && c->state != GW_S_CLOSING) {
			c->last_rx = rel_now(w);
			if (c->flags & GW_F_TLS)
				tls_input(w, c, p, (size_t)res);
			else
				plain_input(w, c, p, (size_t)res);
		}
		cm_bufring_recycle(&w->rbufs, bid);
		/* multishot receive can end without IORING_CQE_F_MORE: re-arm */
		if (!more && c->state != GW_S_DEAD)
			arm_recv(w, c);
		return;
	}
	if (cqe->flags & IORING_CQE_F_BUFFER)
		cm_bufring_recycle(&w->rbufs, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	if (res == -ENOBUFS) {
		/* the ring ran dry this turn: re-arm once buffers are back */
		GW_INC(w, enobufs, 1);
		if (c->state != GW_S_DEAD && !(c->flags & (GW_F_REARM | GW_F_RECV))) {
			c->flags |= GW_F_REARM;
			list_push(&w->rearm, &w->nrearm, &w->caprearm, c->idx);
		}
		return;
	}
	if (!more && c->state != GW_S_DEAD) {
		/* FIN or error: the client is gone (a closing one finished) */
		conn_kill(w, c, res == 0 ? GW_R_EOF : GW_R_IO_ERROR);
	}
}

void gw_conn_cqe(void *ctx, struct io_uring_cqe *cqe)
{
	struct gw_worker *w = ctx;
	uint64_t pl = cm_ud_payload(cqe->user_data);
	uint32_t idx = (uint32_t)pl, gen = (uint32_t)(pl >> 32) & GW_GEN_MASK;
	unsigned op = (unsigned)(pl >> 52) & 0xf;
	struct gw_conn *c;

	cur_w = w;
	c = idx < w->nslots ? gw_slot(w, idx) : NULL;
	if (!c || c->gen != gen || c->state == GW_S_FREE) {
		cm_warn("stale completion (slot %u op %u res %d)", idx, op, cqe->res);
		if (cqe->flags & IORING_CQE_F_BUFFER)
			cm_bufring_recycle(&w->rbufs, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		return;
	}
	if (op == GW_OP_RECV)
		on_recv(w, c, cqe);
	else if (op == GW_OP_SEND)
		on_send(w, c, cqe->res);
	else if (op == GW_OP_SHUT)
		c->inflight--;
}

/* ------------------------------------------------------------ accept */

void gw_accept_arm(struct gw_worker *w, int which)
{
	struct io_uring_sqe *sqe;

	if (w->lfd[which] < 0 || w->draining)
		return;
	sqe = cm_loop_sqe(w->loop);
	io_uring_prep_multishot_accept(sqe, w->lfd[which], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, cm_ud(GW_K_ACCEPT, (uint64_t)which));
	w->accepting[which] = true;
}

static void accept_retry(void *arg)
{
	struct gw_worker *w = arg;
	w->accept_retry = NULL;
	for (int i = 0; i < 2; i++)
		if (!w->accepting[i])
			gw_accept_arm(w, i);
}

void gw_accept_cqe(void *ctx, struct io_uring_cqe *cqe)
{
	struct gw_worker *w = ctx;
	struct gw *g = w->gw;
	int which = (int)cm_ud_payload(cqe->user_data);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	struct gw_conn *c;
	int fd = cqe->res, one = 1;

	cur_w = w;
	if (!more)
		w->accepting[which] = false;
	if (fd < 0) {
		if (w->draining || fd == -ECANCELED || fd == -EBADF)
			return;
		GW_INC(w, accept_err[fd == -EMFILE ? 0 : fd == -ENFILE ? 1 : 2], 1);
		/* one line per burst: the first failure after a success */
		if (w->accept_fails++ == 0)
			cm_warn("accept: %s (%ld connections held); retrying until descriptors free up",
				strerror(-fd), atomic_load(&g->conns));
		if (!more && !w->accept_retry)
			/* EMFILE and friends: again when a connection is freed, or shortly */
			w->accept_retry = cm_timer_start(w->loop, 100, false, accept_retry, w);
		return;
	}
	if (w->accept_fails) {
		cm_info("accept: resumed after %u failed attempts", w->accept_fails);
		w->accept_fails = 0;
	}
	if (!more && !w->draining)
		gw_accept_arm(w, which);
	if (w->draining || atomic_load(&g->conns) >= g->max_held) {
		close(fd);
		/* a burst of accepts past the cap may have hit EMFILE: retry now */
		if (w->accept_retry && !w->draining) {
			cm_timer_stop(w->accept_retry);
			accept_retry(w);
		}
		return;
	}
	atomic_fetch_add(&g->conns, 1);
	GW_INC(w, accepted, 1);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (g->o->sndbuf) {
		/* a fixed send buffer (the kernel doubles it) turns off autotuning: a
		 * client that stops reading fills it soon, and --max-queued-bytes decides */
		int sb = (int)g->o->sndbuf;
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
	}
	c = conn_alloc(w);
	atomic_store_explicit(&w->m.conns, (long)w->nconns, memory_order_relaxed);
	c->fd = fd;
	if (c->idx < w->nfixed &&
	    io_uring_register_files_update(cm_loop_ring(w->loop), c->idx, &fd, 1) == 1) {
		/* the table holds the socket now: the descriptor goes */
		close(fd);
		c->fd = (int)c->idx;
		c->flags |= GW_F_FIXED;
	}
	c->last_rx = rel_now(w);
	if (which == 1) {
		c->flags |= GW_F_TLS;
		c->state = GW_S_TLS;
		c->ssl = gw_tls_new(g->ssl_ctx, c);
	} else {
		c->state = GW_S_HTTP;
	}
	gw_wheel_add(&w->wheel, c->idx, cm_loop_now(w->loop) + g->o->handshake_ms);
	arm_recv(w, c);
}

/* ------------------------------------------------------------ turn, timers */

void gw_worker_turn(void *arg)
{
	struct gw_worker *w = arg;

	cur_w = w;
	for (uint32_t i = 0; i < w->nrearm; i++) {
		struct gw_conn *c = gw_slot(w, w->rearm[i]);
		if (!(c->flags & GW_F_REARM))
			continue;
		c->flags &= ~GW_F_REARM;
		if (c->state != GW_S_DEAD && c->state != GW_S_FREE && !(c->flags & GW_F_RECV))
			arm_recv(w, c);
	}
	w->nrearm = 0;
	/* closed connections leave their streams and sessions */
	for (uint32_t i = 0; i < w->ndead;) {
		struct gw_conn *c = gw_slot(w, w->dead[i]);
		if (c->subs || (c->flags & GW_F_SESSION))
			gw_conn_forget(w, c, c->idx);
		if (c->state == GW_S_DEAD && c->inflight == 0) {
			conn_free(w, c);
		} else if (c->state == GW_S_DEAD) {
			i++;
			continue;
		} else {
			c->flags &= ~GW_F_DEAD_LISTED;
		}
		w->dead[i] = w->dead[--w->ndead];
	}
	for (uint32_t i = 0; i < w->ndirty; i++) {
		struct gw_conn *c = gw_slot(w, w->dirty[i]);
		if (!(c->flags & GW_F_DIRTY))
			continue;
		c->flags &= ~GW_F_DIRTY;
		flush(w, c);
	}
	w->ndirty = 0;
	atomic_store_explicit(&w->m.queued, (long)w->queued, memory_order_relaxed);
	if (w->draining && !w->drain_reported && w->nconns == 0) {
		w->drain_reported = true;
		gw_hub_post_drained(w);
	}
}

static struct gw_wlink *wheel_link(void *ctx, uint32_t id)
{
	struct gw_worker *w = ctx;
	return &gw_slot(w, id)->wl;
}

static void wheel_fire(void *ctx, uint32_t id)
{
	struct gw_worker *w = ctx;
	struct gw_conn *c = gw_slot(w, id);
	const struct gw_opts *o = w->gw->o;
	uint32_t now = rel_now(w), quiet, due_idle, due_ping, next;

	switch (c->state) {
	case GW_S_TLS:
	case GW_S_HTTP:
		conn_kill(w, c, GW_R_HANDSHAKE_TIMEOUT);
		return;
	case GW_S_CLOSING:
		conn_kill(w, c, GW_R_CLIENT_CLOSE);
		return;
	case GW_S_OPEN:
		break;
	default:
		return;
	}
	if (c->exp_s && cm_wall_ms() / 1000 > (uint64_t)c->exp_s + CM_JWT_LEEWAY_S) {
		gw_conn_close(w, c, CM_WS_CLOSE_POLICY, "token expired", GW_R_TOKEN);
		return;
	}
	if (now - c->last_rx >= o->idle_ms) {
		gw_conn_close(w, c, CM_WS_CLOSE_GOING_AWAY, "idle timeout", GW_R_IDLE);
		return;
	}
	quiet = (int32_t)(c->last_ping - c->last_rx) > 0 ? c->last_ping : c->last_rx;
	if (now - quiet >= o->ping_ms) {
		gw_conn_push(w, c, w->ping);
		c->last_ping = now;
		quiet = now;
		if (c->state != GW_S_OPEN)
			return;
	}
	due_idle = c->last_rx + o->idle_ms;
	due_ping = quiet + o->ping_ms;
	next = (int32_t)(due_idle - due_ping) < 0 ? due_idle : due_ping;
	if (c->exp_s) {
		/* check the token's expiry at least every 30 s */
		uint32_t cap = now + 30000;
		if ((int32_t)(next - cap) > 0)
			next = cap;
	}
	gw_wheel_add(&w->wheel, id, w->epoch_ms + next);
}

void gw_worker_tick(void *arg)
{
	struct gw_worker *w = arg;
	cur_w = w;
	gw_wheel_advance(&w->wheel, cm_now_ms(), wheel_fire);
}

struct gw_wlink *gw_wheel_link_of(void *ctx, uint32_t id)
{
	return wheel_link(ctx, id);
}

/* ------------------------------------------------------------ drain */

void gw_worker_drain(struct gw_worker *w)
{
	cur_w = w;
	if (w->draining)
		return;
	w->draining = true;
	for (int i = 0; i < 2; i++) {
		if (w->lfd[i] < 0)
			continue;
		struct io_uring_sqe *sqe = cm_loop_sqe(w->loop);
		io_uring_prep_cancel64(sqe, cm_ud(GW_K_ACCEPT, (uint64_t)i), 0);
		io_uring_sqe_set_data64(sqe, cm_ud(CM_K_NONE, 0));
		shutdown(w->lfd[i], SHUT_RDWR);
		close(w->lfd[i]);
		w->lfd[i] = -1;
	}
	if (w->accept_retry) {
		cm_timer_stop(w->accept_retry);
		w->accept_retry = NULL;
	}
	for (uint32_t i = 0; i < w->nslots; i++) {
		struct gw_conn *c = gw_slot(w, i);
		if (c->state == GW_S_OPEN)
			gw_conn_close(w, c, CM_WS_CLOSE_GOING_AWAY, "server shutting down", GW_R_DRAIN);
	}
}

void gw_worker_each_open(struct gw_worker *w,
			 void (*fn)(struct gw_worker *, struct gw_conn *, void *), void *arg)
{
	for (uint32_t i = 0; i < w->nslots; i++) {
		struct gw_conn *c = gw_slot(w, i);
		if (c->state == GW_S_OPEN)
			fn(w, c, arg);
	}
}

/* ------------------------------------------------------------ teardown */

void gw_worker_free(struct gw_worker *w)
{
	cur_w = w;
	if (w->accept_retry) {
		cm_timer_stop(w->accept_retry);
		w->accept_retry = NULL;
	}
	/* the loop has stopped: whatever the kernel still holds goes with the ring */
	for (uint32_t i = 0; i < w->nslots; i++) {
		struct gw_conn *c = gw_slot(w, i);
		if (c->state == GW_S_FREE)
			continue;
		gw_conn_forget(w, c, c->idx);
		if (c->state != GW_S_DEAD)
			conn_leave(w, c, GW_R_DRAIN);
		c->state = GW_S_DEAD;
		c->inflight = 0;
		conn_free(w, c);
	}
	cm_loop_free(w->loop);
	w->loop = NULL;
	cm_bufring_free(&w->rbufs);
	for (int i = 0; i < 2; i++)
		if (w->lfd[i] >= 0)
			close(w->lfd[i]);
	for (uint32_t i = 0; i < w->nchunks; i++)
		free(w->chunks[i]);
	free(w->chunks);
	free(w->freel);
	free(w->dirty);
	free(w->rearm);
	free(w->dead);
	gw_wheel_destroy(&w->wheel);
	gw_htab_destroy(&w->lstreams);
	cm_packet_unref(w->ping);
	free(w);
}
