/* ld_worker — connections of one worker process on io_uring.
 *
 * A connection goes CONNECTING -> (TLS) -> HTTP -> OPEN, or DEAD at any
 * point. Receives are multishot into a provided-buffer ring from the moment
 * the TCP connect completes; a slow client cancels its receive once open
 * and never reads again. At most one send is in flight per connection;
 * bytes produced meanwhile wait in `out`. A DEAD connection keeps its slot
 * until every operation the kernel holds for it has completed (inflight),
 * and a generation tag in user_data makes stale completions harmless. */
#include "ld_worker.h"

#include "cm_b64.h"
#include "cm_bufring.h"
#include "cm_client.h"
#include "cm_http.h"
#include "cm_jwt.h"
#include "cm_log.h"
#include "cm_loop.h"
#include "cm_net.h"
#include "cm_ws.h"
#include "ld_payload.h"
#include "ld_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

enum {
	LD_K_CONNECT = CM_K_USER,
	LD_K_SEND,
	LD_K_RECV,
	LD_K_ACK,
	LD_K_SHUT,    /* shutdown of a socket in the file table */
};

enum ld_cstate { LD_C_IDLE = 0, LD_C_CONNECTING, LD_C_TLS, LD_C_HTTP, LD_C_OPEN, LD_C_DEAD };

#define LD_BGID 7
#define LD_TICK_MS 10
#define LD_MAX_MESSAGE (2u << 20)

/* Handshake state, freed once the connection is open. */
struct ld_hs {
	char accept[29];
	uint32_t len;
	char buf[CM_HTTP_MAX_HEAD];
};

struct ld_conn {
	int fd;
	uint32_t stream;
	uint64_t g;              /* global client index */
	uint16_t gen;
	uint8_t state;           /* enum ld_cstate */
	uint8_t inflight;        /* connect, send and receive operations held by the kernel */
	bool slow, recv_armed, sending, launched, churn;
	bool fixed;              /* fd is slot (this conn's index) of the ring's file table */
	int8_t want_close;       /* set by the frame callback: an ld_err, or -2 none */
	int16_t rstep;           /* step of rcount */
	uint32_t rcount;         /* unique messages of step rstep */
	uint64_t last_seq;       /* highest sequence received (0 none yet) */
	uint64_t counted_seq;    /* highest received or counted lost (a gap) */
	uint64_t start_ns, open_ns, deadline_ms;
	SSL *ssl;
	struct ld_hs *hs;
	struct cm_ws_reader rd;
	uint8_t *out;            /* queued, not yet sent */
	uint32_t out_len, out_cap;
	uint8_t *sbuf;           /* being sent */
	uint32_t slen, soff;
};

struct ld_worker {
	const struct ld_opts *o;
	struct ld_shared *sh;
	struct ld_ctl *ctl;
	struct ld_wstats *st;
	unsigned idx;
	struct cm_loop *loop;
	struct io_uring *ring;
	struct ld_conn *conns;
	unsigned nconns;
	/* provided receive buffers */
	struct cm_bufring rbufs;  /* provided buffers of the multishot receives */
	/* ramp */
	double rate, tokens;
	unsigned max_pending;
	uint64_t last_tick_ns;
	unsigned next_launch;
	unsigned *relaunch;      /* churned slots waiting to reconnect (ring) */
	unsigned rl_head, rl_tail;
	double churn_tokens;
	unsigned churn_cursor;
	unsigned src_rr;
	uint64_t last_sweep_ms;
	bool ready;              /* ramp finished once */
	struct cm_ack_flusher ack; /* --ack-on-read */
	bool fixed;               /* sockets go into the ring's file table (one slot per conn) */
	SSL_CTX *ssl_ctx;
	uint8_t scratch[16384];
	uint64_t rnd;
	struct __kernel_timespec connect_ts;
	int snap_done;
	unsigned stop_ticks;
};

static struct ld_worker *W; /* the process's worker, for the frame callback */

static uint64_t rnd_next(struct ld_worker *w)
{
	/* xorshift64*: masks and keys need to be unpredictable to nobody */
	w->rnd ^= w->rnd >> 12;
	w->rnd ^= w->rnd << 25;
	w->rnd ^= w->rnd >> 27;
	return w->rnd * 2685821657736338717ULL;
}

bool ld_client_is_slow(const struct ld_opts *o, uint64_t g)
{
	if (o->slow_pct <= 0)
		return false;
	/* a multiplicative hash spreads the slow ones over streams and workers */
	return (double)((g * 2654435761u) % 10000) < o->slow_pct * 100;
}

static uint64_t conn_ud(struct ld_worker *w, unsigned kind, struct ld_conn *c)
{
	uint64_t slot = (uint64_t)(c - w->conns);
	return cm_ud(kind, slot << 16 | c->gen);
}

/* The connection a completion belongs to, or NULL when the slot moved on. */
static struct ld_conn *ud_conn(struct ld_worker *w, uint64_t ud)
{
	uint64_t p = cm_ud_payload(ud);
	uint64_t slot = p >> 16;

	CM_ASSERT(slot < w->nconns);
	return &w->conns[slot];
}

static bool ud_current(struct ld_conn *c, uint64_t ud)
{
	return (uint16_t)(cm_ud_payload(ud) & 0xffff) == c->gen;
}

/* ---------- receive buffers ---------- */

/* ---------- connection teardown ---------- */

static void conn_release_if_done(struct ld_worker *w, struct ld_conn *c)
{
	if (c->state != LD_C_DEAD || c->inflight)
		return;
	if (c->fixed) {
		/* every operation on the slot, the shutdown included, is done:
		 * emptying it drops the last reference and closes the socket,
		 * and the conn's next socket may take the slot again */
		int none = -1;
		io_uring_register_files_update(w->ring, (unsigned)c->fd, &none, 1);
		c->fixed = false;
		c->fd = -1;
	}
	free(c->sbuf);
	c->sbuf = NULL;
	c->sending = false;
	c->state = LD_C_IDLE;
	c->gen++;
}

/* A client that would have been counted for the step in progress (open
 * and settled before it started, reading) ends before the count: the step
 * lost it, whatever it received. Churn ends clients on purpose. */
static void note_dropped(struct ld_worker *w, const struct ld_conn *c)
{
	int k = w->snap_done + 1;
	uint64_t start;

	if (c->slow || w->o->scenario == LD_SC_CHURN || k < 0 || k >= LD_MAX_STEPS)
		return;
	start = __atomic_load_n(&w->ctl->step_start_ns[k], __ATOMIC_ACQUIRE);
	if (start && c->open_ns + w->ctl->settle_ns <= start)
		w->st->steps[k].dropped++;
}

/* Ends a connection: err is the ld_err it counts as, or -1 for none. */
static void conn_close(struct ld_worker *w, struct ld_conn *c, int err)
{
	struct ld_wstats *st = w->st;

	if (c->state == LD_C_DEAD || c->state == LD_C_IDLE)
		return;
	if (c->state == LD_C_OPEN) {
		note_dropped(w, c);
		st->open_now--;
		st->closed++;
	} else {
		st->pending--;
	}
	if (err >= 0)
		st->err[err]++;
	c->state = LD_C_DEAD;
	if (c->recv_armed) {
		struct io_uring_sqe *sqe = cm_loop_sqe(w->loop);
		io_uring_prep_cancel64(sqe, conn_ud(w, LD_K_RECV, c), 0);
		io_uring_sqe_set_data64(sqe, cm_ud(CM_K_NONE, 0));
	}
	if (c->fixed) {
		/* The kernel runs a shutdown in a worker thread, which looks
		 * the slot up when it gets to it: the slot stays filled until
		 * the shutdown (counted in flight) and every other operation
		 * are done, then conn_release_if_done empties it. */
		struct io_uring_sqe *sqe = cm_loop_sqe(w->loop);
		io_uring_prep_shutdown(sqe, c->fd, SHUT_RDWR);
		sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, conn_ud(w, LD_K_SHUT, c));
		c->inflight++;
	} else if (c->fd >= 0) {
		/* An operation prepared this turn (a receive, an ACK flush)
		 * names the descriptor, not the file: let the kernel take its
		 * file before the number can be reused by the next socket. */
		if (io_uring_sq_ready(w->ring))
			io_uring_submit(w->ring);
		shutdown(c->fd, SHUT_RDWR);
		close(c->fd);
		c->fd = -1;
	}
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	free(c->hs);
	c->hs = NULL;
	cm_ws_reader_reset(&c->rd);
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	conn_release_if_done(w, c);
}

/* An operation on c's socket: c->fd is a file-table slot when c->fixed. */
static inline void sqe_on(struct io_uring_sqe *sqe, const struct ld_conn *c)
{
	if (c->fixed)
		sqe->flags |= IOSQE_FIXED_FILE;
}

/* ---------- sending ---------- */

static void send_start(struct ld_worker *w, struct ld_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->sending || !c->out_len || c->state == LD_C_DEAD)
		return;
	c->sbuf = c->out;
	c->slen = c->out_len;
	c->soff = 0;
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	c->sending = true;
	c->inflight++;
	sqe = cm_loop_sqe(w->loop);
	io_uring_prep_send(sqe, c->fd, c->sbuf, c->slen, MSG_NOSIGNAL);
	sqe_on(sqe, c);
	io_uring_sqe_set_data64(sqe, conn_ud(w, LD_K_SEND, c));
}

static void out_append(struct ld_conn *c, const void *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 512;
		while (cap < c->out_len + n)
			cap *= 2;
		c->out = cm_xrealloc(c->out, cap);
		c->out_cap = (uint32_t)cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += (uint32_t)n;
}

/* Moves what TLS produced into the send queue. */
static void tls_pump_out(struct ld_conn *c)
{
	size_t n;

	while ((n = ld_tls_out_pending(c->ssl)) > 0) {
		uint8_t tmp[16384];
		size_t got = ld_tls_out_take(c->ssl, tmp, n < sizeof(tmp) ? n : sizeof(tmp));
		if (!got)
			break;
		out_append(c, tmp, got);
	}
}

/* Sends application bytes (through TLS when wss). */
static int conn_write(struct ld_worker *w, struct ld_conn *c, const void *p, size_t n)
{
	if (c->ssl) {
		int r = SSL_write(c->ssl, p, (int)n);
		if (r <= 0)
			return -1;
		tls_pump_out(c);
	} else {
		out_append(c, p, n);
	}
	send_start(w, c);
	return 0;
}

/* A masked client frame. Returns 0, or -1 when TLS refused it (the caller
 * closes: this may run inside the frame reader). */
static int ws_send(struct ld_worker *w, struct ld_conn *c, uint8_t opcode, const uint8_t *p, size_t n)
{
	uint8_t frame[CM_WS_MAX_HEADER + 125];
	uint32_t m = (uint32_t)rnd_next(w);
	uint8_t mask[4];
	size_t h;

	CM_ASSERT(n <= 125);
	memcpy(mask, &m, 4);
	h = cm_ws_write_header(frame, opcode, true, n, mask);
	memcpy(frame + h, p, n);
	cm_ws_mask(frame + h, n, mask, 0);
	return conn_write(w, c, frame, h + n);
}

static void on_send(void *ctx, struct io_uring_cqe *cqe)
{
	struct ld_worker *w = ctx;
	struct ld_conn *c = ud_conn(w, cqe->user_data);

	CM_ASSERT(ud_current(c, cqe->user_data) && c->inflight > 0);
	c->inflight--;
	if (c->state == LD_C_DEAD) {
		conn_release_if_done(w, c);
		return;
	}
	if (cqe->res < 0) {
		conn_close(w, c, c->state == LD_C_OPEN ? LD_E_RESET : LD_E_HS_EOF);
		return;
	}
	c->soff += (uint32_t)cqe->res;
	if (c->soff < c->slen) {
		struct io_uring_sqe *sqe = cm_loop_sqe(w->loop);
		c->inflight++;
		io_uring_prep_send(sqe, c->fd, c->sbuf + c->soff, c->slen - c->soff, MSG_NOSIGNAL);
		sqe_on(sqe, c);
		io_uring_sqe_set_data64(sqe, conn_ud(w, LD_K_SEND, c));
		return;
	}
	free(c->sbuf);
	c->sbuf = NULL;
	c->sending = false;
	send_start(w, c);
}

/* ---------- receiving ---------- */

static void recv_arm(struct ld_worker *w, struct ld_conn *c)
{
	struct io_uring_sqe *sqe = cm_loop_sqe(w->loop);

	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe_on(sqe, c);
	sqe->buf_group = LD_BGID;
	io_uring_sqe_set_data64(sqe, conn_ud(w, LD_K_RECV, c));
	c->recv_armed = true;
	c->inflight++;
}

static void count_payload(struct ld_worker *w, struct ld_conn *c, const uint8_t *p, size_t n)
{
	struct ld_wstats *st = w->st;
	struct ld_payload pl;
	struct ld_step *s;
	uint64_t now, lat;

	if (ld_payload_decode(p, n, &pl) < 0 || pl.step >= LD_MAX_STEPS) {
		st->foreign++;
		return;
	}
	s = &st->steps[pl.step];
	if (pl.stream != c->stream) {
		s->misrouted++;
		return;
	}
	now = ld_now_ns();
	lat = now > pl.send_ns ? (now - pl.send_ns) / 1000 : 0;
	ld_hist_add(&st->lat, lat);
	ld_hist_add(&s->lat, lat);
	if (pl.seq <= c->last_seq) {
		s->dups++;
		return;
	}
	/* up to counted_seq a missing message was counted lost already: one
	 * that arrives late now is neither a gap nor a duplicate */
	if (c->counted_seq && pl.seq > c->counted_seq + 1)
		s->gaps += pl.seq - c->counted_seq - 1;
	c->last_seq = pl.seq;
	if (pl.seq > c->counted_seq)
		c->counted_seq = pl.seq;
	s->all_received++;
	if ((int)pl.step <= w->snap_done) {
		s->late++;
		return;
	}
	if (c->rstep != (int16_t)pl.step) {
		c->rstep = (int16_t)pl.step;
		c->rcount = 0;
	}
	c->rcount++;
}

static int on_frame(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
	struct ld_conn *c = ctx;
	struct ld_worker *w = W;
	struct ld_wstats *st = w->st;

	switch (opcode) {
	case CM_WS_TEXT: {
		struct ld_push push;
		int r = ld_push_parse_json(data, len, &push);
		st->recv_msgs++;
		st->recv_bytes += len;
		if (r == 1 && !push.escaped && !push.base64)
			count_payload(w, c, push.data, push.data_len);
		else if (r == 1 || r < 0)
			st->foreign++;
		break;
	}
	case CM_WS_BINARY: {
		struct cm_smsg m;
		st->recv_msgs++;
		st->recv_bytes += len;
		if (cm_smsg_decode(CM_FMT_PROTOBUF, data, len, &m) == 0) {
			if (m.kind == CM_SMSG_PUSH)
				count_payload(w, c, m.data, m.data_len);
			cm_smsg_release(&m);
		} else {
			st->foreign++;
		}
		break;
	}
	case CM_WS_PING:
		st->pings++;
		if (ws_send(w, c, CM_WS_PONG, data, len) < 0) {
			c->want_close = LD_E_PROTOCOL;
			return CM_WS_CLOSE_NORMAL;
		}
		break;
	case CM_WS_CLOSE: {
		uint16_t code = CM_WS_CLOSE_NO_STATUS;
		const uint8_t *reason;
		size_t rlen;
		cm_ws_parse_close(data, len, &code, &reason, &rlen);
		if (code >= 1000 && code < 1000 + LD_CLOSE_CODES)
			st->close_code[code - 1000]++;
		else
			st->close_code[LD_CLOSE_CODES]++;
		c->want_close = LD_E_WS_CLOSE;
		return CM_WS_CLOSE_NORMAL;
	}
	default:
		break;
	}
	return 0;
}

static void ws_feed(struct ld_worker *w, struct ld_conn *c, uint8_t *p, size_t n)
{
	int rc;

	if (!n)
		return;
	c->want_close = -2;
	rc = cm_ws_reader_feed(&c->rd, p, n, on_frame, c);
	if (c->state == LD_C_DEAD)
		return;
	if (c->want_close != -2)
		conn_close(w, c, c->want_close);
	else if (rc)
		conn_close(w, c, LD_E_PROTOCOL);
}

static void conn_opened(struct ld_worker *w, struct ld_conn *c)
{
	struct ld_wstats *st = w->st;
	uint64_t now = ld_now_ns();

	c->state = LD_C_OPEN;
	c->open_ns = now;
	st->pending--;
	st->open_now++;
	st->opened++;
	ld_hist_add(&st->hs, (now - c->start_ns) / 1000);
	if (c->ssl && SSL_session_reused(c->ssl))
		st->resumed++;
	free(c->hs);
	c->hs = NULL;
	cm_ws_reader_init(&c->rd, false, LD_MAX_MESSAGE);
	if (c->slow && c->recv_armed) {
		/* never read again: the server's queue for us can only grow */
		struct io_uring_sqe *sqe = cm_loop_sqe(w->loop);
		io_uring_prep_cancel64(sqe, conn_ud(w, LD_K_RECV, c), 0);
		io_uring_sqe_set_data64(sqe, cm_ud(CM_K_NONE, 0));
	}
}

static void http_status_count(struct ld_wstats *st, int status)
{
	int cls = status / 100;
	st->http_status[cls >= 1 && cls <= 5 ? cls - 1 : 5]++;
	st->http_last = (uint64_t)status;
}

/* Plain bytes of the connection: the upgrade response, then frames. */
static void conn_input(struct ld_worker *w, struct ld_conn *c, uint8_t *p, size_t n)
{
	if (c->state == LD_C_HTTP) {
		struct ld_hs *hs = c->hs;
		struct cm_http_resp resp;
		size_t take = sizeof(hs->buf) - hs->len;
		int head;

		if (take > n)
			take = n;
		memcpy(hs->buf + hs->len, p, take);
		hs->len += (uint32_t)take;
		head = cm_http_parse_response(hs->buf, hs->len, &resp);
		if (head == 0) {
			if (hs->len == sizeof(hs->buf))
				conn_close(w, c, LD_E_HTTP);
			return;
		}
		if (head < 0) {
			http_status_count(w->st, 0);
			conn_close(w, c, LD_E_HTTP);
			return;
		}
		if (resp.status != 101) {
			http_status_count(w->st, resp.status);
			conn_close(w, c, LD_E_HTTP);
			return;
		}
		if (resp.ws_accept.n != 28 || memcmp(resp.ws_accept.p, hs->accept, 28) != 0) {
			http_status_count(w->st, 0);
			conn_close(w, c, LD_E_HTTP);
			return;
		}
		{
			/* frames that came with the head */
			uint32_t extra = hs->len - (uint32_t)head;
			uint8_t tmp[CM_HTTP_MAX_HEAD];
			memcpy(tmp, hs->buf + head, extra);
			conn_opened(w, c);
			ws_feed(w, c, tmp, extra);
			if (c->state == LD_C_DEAD)
				return;
			p += take;
			n -= take;
		}
	}
	if (c->state == LD_C_OPEN)
		ws_feed(w, c, p, n);
}

static void send_upgrade(struct ld_worker *w, struct ld_conn *c)
{
	const struct ld_opts *o = w->o;
	const struct ld_target *t = &o->targets[c->g % o->ntargets];
	uint8_t rawkey[16];
	char key[25], req[2048 + 1024], who[1200];
	int n;

	for (int i = 0; i < 16; i += 8) {
		uint64_t r = rnd_next(w);
		memcpy(rawkey + i, &r, 8);
	}
	cm_b64_encode((uint8_t *)key, rawkey, 16);
	key[24] = 0;
	cm_ws_accept_key((struct cm_str){ key, 24 }, c->hs->accept);
	if (o->jwt) {
		char user[96], tok[1024];
		snprintf(user, sizeof(user), "%s%llu", o->user_prefix, (unsigned long long)c->g);
		if (!cm_jwt_sign(user, (int64_t)time(NULL) + 86400, (const uint8_t *)o->jwt_secret,
				 o->jwt_secret_len, tok, sizeof(tok)))
			tok[0] = 0;
		snprintf(who, sizeof(who), "token=%s", tok);
	} else {
		snprintf(who, sizeof(who), "user=%s%llu", o->user_prefix, (unsigned long long)c->g);
	}
	if (o->subscribe)
		n = snprintf(req, sizeof(req),
			     "GET /ws?%s&format=%s&streams=%s.%u HTTP/1.1\r\nHost: %s\r\n"
			     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
			     "Sec-WebSocket-Version: 13\r\n\r\n",
			     who, o->protobuf ? "protobuf" : "json", o->stream_prefix, c->stream,
			     t->hostport, key);
	else
		n = snprintf(req, sizeof(req),
			     "GET /ws?%s&format=%s HTTP/1.1\r\nHost: %s\r\n"
			     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
			     "Sec-WebSocket-Version: 13\r\n\r\n",
			     who, o->protobuf ? "protobuf" : "json", t->hostport, key);
	CM_ASSERT(n > 0 && (size_t)n < sizeof(req));
	c->state = LD_C_HTTP;
	if (conn_write(w, c, req, (size_t)n) < 0)
		conn_close(w, c, LD_E_TLS);
}

/* Drives the TLS handshake, then reads application data. */
static void tls_input(struct ld_worker *w, struct ld_conn *c, const uint8_t *p, size_t n)
{
	if (n && ld_tls_feed(c->ssl, p, n) < 0) {
		conn_close(w, c, LD_E_OTHER);
		return;
	}
	if (c->state == LD_C_TLS) {
		int r = SSL_do_handshake(c->ssl);
		if (r != 1) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				tls_pump_out(c);
				send_start(w, c);
				return;
			}
			ld_tls_error();
			conn_close(w, c, LD_E_TLS);
			return;
		}
		send_upgrade(w, c);
		if (c->state == LD_C_DEAD)
			return;
	}
	for (;;) {
		int r = SSL_read(c->ssl, w->scratch, sizeof(w->scratch));
		if (r > 0) {
			conn_input(w, c, w->scratch, (size_t)r);
			if (c->state == LD_C_DEAD)
				return;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		ld_tls_error();
		conn_close(w, c, e == SSL_ERROR_ZERO_RETURN ?
				 (c->state == LD_C_OPEN ? LD_E_EOF : LD_E_HS_EOF) :
				 (c->state == LD_C_OPEN ? LD_E_PROTOCOL : LD_E_TLS));
		return;
	}
	/* tickets, key updates: whatever TLS wants to say */
	tls_pump_out(c);
	send_start(w, c);
}

/* After a read: the ACK rides this turn's one submit rather than costing
 * a setsockopt call of its own (the system call alone was 6-8% of the
 * load's core at 70-80k deliveries/s), where the kernel has socket commands. */
static void ack_flush(struct ld_worker *w, struct ld_conn *c)
{
	struct io_uring_sqe *sqe = w->ack.ring ? cm_loop_sqe(w->loop) : NULL;

	/* a socket without a descriptor has no setsockopt call to fall back on
	 * (fixed files are used only where the ring has socket commands) */
	if (!sqe && c->fixed)
		return;
	if (cm_ack_flush(&w->ack, sqe, c->fd, cm_ud(LD_K_ACK, 0)))
		sqe_on(sqe, c);
	w->st->ack_ring = w->ack.via_ring;
	w->st->ack_call = w->ack.via_call;
}

static void on_ack(void *ctx, struct io_uring_cqe *cqe)
{
	struct ld_worker *w = ctx;

	if (!cm_ack_flush_failed(&w->ack, cqe->res))
		return;
	if (w->fixed)
		cm_warn("worker %u: no setsockopt through io_uring (%s): clients in the file table "
			"no longer flush ACKs (their delayed ACKs count in the latency); run with "
			"--no-fixed-files", w->idx, strerror(-cqe->res));
	else
		cm_info("worker %u: no setsockopt through io_uring (%s); ACKs flush with setsockopt",
			w->idx, strerror(-cqe->res));
}

static void on_shut(void *ctx, struct io_uring_cqe *cqe)
{
	struct ld_worker *w = ctx;
	struct ld_conn *c = ud_conn(w, cqe->user_data);

	CM_ASSERT(ud_current(c, cqe->user_data) && c->inflight > 0);
	c->inflight--;
	conn_release_if_done(w, c);
}

static void on_recv(void *ctx, struct io_uring_cqe *cqe)
{
	struct ld_worker *w = ctx;
	struct ld_conn *c = ud_conn(w, cqe->user_data);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	bool has_buf = cqe->flags & IORING_CQE_F_BUFFER;
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	int res = cqe->res;

	CM_ASSERT(ud_current(c, cqe->user_data));
	if (!more) {
		CM_ASSERT(c->inflight > 0);
		c->recv_armed = false;
		c->inflight--;
	}
	if (c->state == LD_C_DEAD) {
		if (has_buf)
			cm_bufring_recycle(&w->rbufs, bid);
		conn_release_if_done(w, c);
		return;
	}
	if (res > 0) {
		uint8_t *p = cm_bufring_buf(&w->rbufs, bid);
		CM_ASSERT(has_buf);
		if (c->ssl)
			tls_input(w, c, p, (size_t)res);
		else
			conn_input(w, c, p, (size_t)res);
		cm_bufring_recycle(&w->rbufs, bid);
		if (w->o->ack_on_read && c->state != LD_C_DEAD)
			ack_flush(w, c);
	} else {
		if (has_buf)
			cm_bufring_recycle(&w->rbufs, bid);
		if (res == 0) {
			conn_close(w, c, c->state == LD_C_OPEN ? LD_E_EOF : LD_E_HS_EOF);
			return;
		}
		if (res == -ENOBUFS) {
			w->st->nobufs++;
		} else if (res == -ECANCELED) {
			if (c->slow && c->state == LD_C_OPEN)
				return; /* our own cancel: a slow client stops reading */
		} else {
			conn_close(w, c, c->state == LD_C_OPEN ? LD_E_RESET : LD_E_HS_EOF);
			return;
		}
	}
	if (!more && c->state != LD_C_DEAD && !c->recv_armed && !(c->slow && c->state == LD_C_OPEN))
		recv_arm(w, c);
}

/* ---------- connecting ---------- */

static void on_connect(void *ctx, struct io_uring_cqe *cqe)
{
	struct ld_worker *w = ctx;
	struct ld_conn *c = ud_conn(w, cqe->user_data);
	int res = cqe->res;

	CM_ASSERT(ud_current(c, cqe->user_data) && c->inflight > 0);
	c->inflight--;
	if (c->state == LD_C_DEAD) {
		conn_release_if_done(w, c);
		return;
	}
	if (res < 0) {
		int err = res == -ECONNREFUSED ? LD_E_REFUSED :
			  (res == -ECANCELED || res == -ETIME || res == -ETIMEDOUT) ? LD_E_TIMEOUT :
			  (res == -EADDRNOTAVAIL || res == -EADDRINUSE) ? LD_E_ADDR :
			  (res == -ECONNRESET) ? LD_E_HS_EOF : LD_E_OTHER;
		conn_close(w, c, err);
		return;
	}
	recv_arm(w, c);
	if (w->ssl_ctx) {
		const struct ld_target *t = &w->o->targets[c->g % w->o->ntargets];
		c->ssl = ld_tls_new(w->ssl_ctx, strcmp(t->host, "localhost") ? NULL : "localhost");
		c->state = LD_C_TLS;
		tls_input(w, c, NULL, 0);
	} else {
		send_upgrade(w, c);
	}
}

static bool conn_launch(struct ld_worker *w, struct ld_conn *c)
{
	const struct ld_opts *o = w->o;
	const struct ld_target *t = &o->targets[c->g % o->ntargets];
	struct io_uring_sqe *sqe;
	int fd, one = 1;

	CM_ASSERT(c->state == LD_C_IDLE && !c->inflight);
	w->st->attempts++;
	c->launched = true;
	fd = socket(t->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		w->st->err[LD_E_ADDR]++;
		return false;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->ack_on_read)
		cm_ack_hold(fd);
	if (c->slow) {
		int small = 4096;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	if (o->nsources) {
		const struct sockaddr_storage *src = &o->sources[w->src_rr++ % o->nsources];
		socklen_t sl = src->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
							       sizeof(struct sockaddr_in);
		/* the port is picked at connect time, per destination */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *)src, sl) < 0) {
			close(fd);
			w->st->err[LD_E_ADDR]++;
			return false;
		}
	}
	c->fd = fd;
	/* slow clients keep a descriptor: count_slow_cut polls it */
	if (w->fixed && !c->slow) {
		unsigned slot = (unsigned)(c - w->conns);
		if (io_uring_register_files_update(w->ring, slot, &fd, 1) == 1) {
			close(fd);
			c->fd = (int)slot;
			c->fixed = true;
		}
	}
	c->state = LD_C_CONNECTING;
	c->start_ns = ld_now_ns();
	c->deadline_ms = cm_loop_now(w->loop) + (uint64_t)(o->connect_timeout * 1000);
	c->last_seq = c->counted_seq = 0;
	c->rstep = -1;
	c->rcount = 0;
	c->hs = cm_xmalloc(sizeof(*c->hs));
	c->hs->len = 0;
	w->st->pending++;
	sqe = cm_loop_sqe(w->loop);
	io_uring_prep_connect(sqe, c->fd, (const struct sockaddr *)&t->ss, t->sslen);
	sqe_on(sqe, c);
	io_uring_sqe_set_data64(sqe, conn_ud(w, LD_K_CONNECT, c));
	sqe->flags |= IOSQE_IO_LINK;
	c->inflight++;
	sqe = cm_loop_sqe(w->loop);
	io_uring_prep_link_timeout(sqe, &w->connect_ts, 0);
	io_uring_sqe_set_data64(sqe, cm_ud(CM_K_NONE, 0));
	return true;
}

/* ---------- the tick: ramp, churn, deadlines, step counts ---------- */

/* Starts connections at the worker's rate: first-time ones while the ramp
 * lasts (a ramp that timed out stops there), churned ones any time. */
static void launch_some(struct ld_worker *w, double dt, bool ramp)
{
	w->tokens += w->rate * dt;
	if (w->tokens > w->rate * 0.05 + 2)
		w->tokens = w->rate * 0.05 + 2; /* no bursts after a stall */
	while (w->tokens >= 1 && w->st->pending < w->max_pending) {
		struct ld_conn *c = NULL;
		if (ramp && w->next_launch < w->nconns) {
			c = &w->conns[w->next_launch++];
		} else if (w->rl_head != w->rl_tail) {
			c = &w->conns[w->relaunch[w->rl_head % w->nconns]];
			if (c->state != LD_C_IDLE)
				break; /* still draining its last operations */
			w->rl_head++;
		} else {
			break;
		}
		w->tokens -= 1;
		conn_launch(w, c);
	}
}

static void churn_some(struct ld_worker *w, double dt)
{
	unsigned tries = 0;

	w->churn_tokens += w->o->churn_rate / w->o->workers * dt;
	while (w->churn_tokens >= 1 && tries++ < w->nconns) {
		struct ld_conn *c = &w->conns[w->churn_cursor];
		unsigned slot = w->churn_cursor;
		w->churn_cursor = (w->churn_cursor + 1) % w->nconns;
		if (c->state != LD_C_OPEN)
			continue;
		w->churn_tokens -= 1;
		w->st->churned++;
		conn_close(w, c, -1);
		w->relaunch[w->rl_tail++ % w->nconns] = slot;
	}
}

static void sweep_deadlines(struct ld_worker *w)
{
	uint64_t now = cm_loop_now(w->loop);

	if (!w->st->pending)
		return;
	for (unsigned i = 0; i < w->nconns; i++) {
		struct ld_conn *c = &w->conns[i];
		if ((c->state == LD_C_CONNECTING || c->state == LD_C_TLS || c->state == LD_C_HTTP) &&
		    now > c->deadline_ms)
			conn_close(w, c, c->state == LD_C_CONNECTING ? LD_E_TIMEOUT : LD_E_HS_TIMEOUT);
	}
}

/* The sequence of the last message published on `stream` up to the end
 * of step k: sequences count 1, 2, ... per stream across the steps. */
static uint64_t last_published(const struct ld_worker *w, uint32_t stream, int k)
{
	uint64_t n = 0;

	for (int j = 0; j <= k; j++)
		n += w->sh->published[(size_t)j * w->o->streams + stream];
	return n;
}

/* Counts step k: every client open, reading and subscribed for the whole
 * step, what it should have had and what it got; and, for every reading
 * client that has received a message, those of its stream it has not got
 * since its last one, as gaps of step k (no later message reveals them
 * when k is the last step). */
static void snapshot(struct ld_worker *w, int k)
{
	const struct ld_opts *o = w->o;
	struct ld_step *s = &w->st->steps[k];
	uint64_t start = w->ctl->step_start_ns[k], settle = w->ctl->settle_ns;
	const uint32_t *pub = w->sh->published + (size_t)k * o->streams;
	uint64_t clients = 0, expected = 0, received = 0;

	for (unsigned i = 0; i < w->nconns; i++) {
		struct ld_conn *c = &w->conns[i];
		if (c->state != LD_C_OPEN || c->slow)
			continue;
		if (c->counted_seq) {
			uint64_t last = last_published(w, c->stream, k);
			if (last > c->counted_seq) {
				s->gaps += last - c->counted_seq;
				c->counted_seq = last;
			}
		}
		if (c->open_ns + settle > start)
			continue;
		clients++;
		expected += pub[c->stream];
		if (c->rstep == k)
			received += c->rcount;
	}
	s->clients = clients;
	s->expected = expected;
	s->received = received;
	w->snap_done = k;
	ld_store(&w->st->snap_done, k);
}

static void count_slow_cut(struct ld_worker *w)
{
	for (unsigned i = 0; i < w->nconns; i++) {
		struct ld_conn *c = &w->conns[i];
		struct pollfd pfd;
		if (!c->slow || c->state != LD_C_OPEN)
			continue;
		pfd.fd = c->fd;
		pfd.events = POLLRDHUP;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)))
			w->st->slow_cut++;
	}
}

static void on_tick(void *arg)
{
	struct ld_worker *w = arg;
	struct ld_ctl *ctl = w->ctl;
	uint64_t now_ns = ld_now_ns();
	double dt = (double)(now_ns - w->last_tick_ns) / 1e9;
	int phase = ld_load(&ctl->phase);
	int req = ld_load(&ctl->snap_req);

	w->last_tick_ns = now_ns;
	if (phase == LD_PH_STOP || now_ns > ctl->hard_deadline_ns) {
		cm_loop_stop(w->loop);
		return;
	}
	launch_some(w, dt, phase == LD_PH_RAMP);
	if (ld_load(&ctl->churn_on) && w->o->churn_rate > 0)
		churn_some(w, dt);
	if (cm_loop_now(w->loop) - w->last_sweep_ms >= 100) {
		w->last_sweep_ms = cm_loop_now(w->loop);
		sweep_deadlines(w);
	}
	if (req >= 0 && req > w->snap_done && req < LD_MAX_STEPS)
		snapshot(w, req);
}

int ld_worker_run(const struct ld_opts *o, struct ld_shared *sh, unsigned idx)
{
	struct ld_worker *w = cm_xcalloc(1, sizeof(*w));
	struct rlimit rl;
	int ret;

	W = w;
	w->o = o;
	w->sh = sh;
	w->ctl = sh->ctl;
	w->st = &sh->w[idx];
	w->idx = idx;
	w->snap_done = -1;
	w->rnd = ld_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
	if (!w->rnd)
		w->rnd = 1;
	w->nconns = o->clients / o->workers + (idx < o->clients % o->workers ? 1 : 0);
	w->st->clients = w->nconns;
	w->rate = o->rate / o->workers;
	w->max_pending = o->max_pending / o->workers;
	if (w->max_pending < 1)
		w->max_pending = 1;
	w->connect_ts.tv_sec = (long long)o->connect_timeout;
	w->connect_ts.tv_nsec = (long long)((o->connect_timeout - (double)(long long)o->connect_timeout) * 1e9);

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	w->conns = cm_xcalloc(w->nconns ? w->nconns : 1, sizeof(*w->conns));
	w->relaunch = cm_xcalloc(w->nconns ? w->nconns : 1, sizeof(*w->relaunch));
	for (unsigned k = 0; k < w->nconns; k++) {
		struct ld_conn *c = &w->conns[k];
		c->fd = -1;
		c->g = idx + (uint64_t)k * o->workers;
		c->stream = (uint32_t)(c->g % o->streams);
		c->slow = o->publish && ld_client_is_slow(o, c->g);
		c->rstep = -1;
		if (c->slow)
			w->st->slow_total++;
	}
	w->loop = cm_loop_new_local(4096);
	cm_loop_set_wait(w->loop, o->batch, o->batch_us);
	w->ring = cm_loop_ring(w->loop);
	if ((ret = cm_bufring_init(&w->rbufs, w->ring, LD_BGID, w->nconns < 1024 ? 1024 : 4096, 8192)) < 0) {
		cm_error("worker %u: receive buffer ring: %s", idx, strerror(-ret));
		return 1;
	}
	if (o->tls && !(w->ssl_ctx = ld_tls_ctx_new(o->tls_resume)))
		return 1;
	cm_loop_set_kind(w->loop, LD_K_CONNECT, on_connect, w);
	cm_loop_set_kind(w->loop, LD_K_SEND, on_send, w);
	cm_loop_set_kind(w->loop, LD_K_RECV, on_recv, w);
	cm_loop_set_kind(w->loop, LD_K_ACK, on_ack, w);
	cm_loop_set_kind(w->loop, LD_K_SHUT, on_shut, w);
	cm_ack_flusher_init(&w->ack);
	/* Sockets in the ring's file table, not the descriptor table: no
	 * descriptor lookup per operation, and the load does not make
	 * whatever walks /proc/PID/fd on this machine pay per client. */
	if (o->fixed_files && w->nconns && cm_fixed_files_safe() &&
	    io_uring_register_files_sparse(w->ring, w->nconns) == 0)
		w->fixed = true;
	w->last_tick_ns = ld_now_ns();
	cm_timer_start(w->loop, LD_TICK_MS, true, on_tick, w);
	ld_store(&w->st->state, 1);
	ret = cm_loop_run(w->loop);
	if (ret < 0)
		cm_error("worker %u: loop failed: %s", idx, strerror(-ret));
	count_slow_cut(w);
	ld_store(&w->st->state, 2);
	/* The process exits next: the kernel closes the sockets and the ring. */
	return ret < 0 ? 1 : 0;
}
