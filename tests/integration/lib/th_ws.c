/* th_ws — see th_ws.h. */
#include "th_ws.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cm_http.h"
#include "cm_jwt.h"
#include "cm_utf8.h"
#include "cm_ws.h"
#include "th_proc.h"

struct th_push {
	struct cm_smsg m;
	struct th_push *next;
};

static uint64_t rng_state;

static uint32_t rnd32(void)
{
	if (!rng_state) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		rng_state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ULL;
	}
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

static void b64(const uint8_t *in, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = t[(v >> 18) & 63];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = 0;
}

/* ---------- TLS ---------- */

static SSL_CTX *ctxs[3];
static int ex_idx = -1;

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct th_ws *ws = SSL_get_ex_data(ssl, ex_idx);
	if (!ws)
		return 0;
	if (ws->session)
		SSL_SESSION_free(ws->session);
	ws->session = sess;
	return 1; /* we keep the reference */
}

static SSL_CTX *client_ctx(int version)
{
	int slot = version == TLS1_2_VERSION ? 1 : version == TLS1_3_VERSION ? 2 : 0;
	if (ctxs[slot])
		return ctxs[slot];
	if (ex_idx < 0)
		ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	cr_assert(ctx, "SSL_CTX_new");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, version ? (uint16_t)version : TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, version ? (uint16_t)version : TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	ctxs[slot] = ctx;
	return ctx;
}

/* ---------- raw I/O with deadlines ---------- */

static int remaining(int64_t dl)
{
	int64_t r = dl - th_now_ms();
	return r < 0 ? 0 : (int)r;
}

static bool wait_fd(int fd, short ev, int64_t dl)
{
	struct pollfd p = { .fd = fd, .events = ev };
	for (;;) {
		int r = poll(&p, 1, remaining(dl));
		if (r < 0 && errno == EINTR)
			continue;
		return r > 0;
	}
}

/* Writes all of p; 0 or -1 (error or timeout). */
static int io_write(struct th_ws *ws, const void *p, size_t n, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	const uint8_t *b = p;
	while (n) {
		if (ws->ssl) {
			int w = SSL_write(ws->ssl, b, n > INT32_MAX ? INT32_MAX : (int)n);
			if (w > 0) {
				b += w;
				n -= (size_t)w;
				continue;
			}
			int e = SSL_get_error(ws->ssl, w);
			short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
			if (!ev || !wait_fd(ws->fd, ev, dl))
				return -1;
		} else {
			ssize_t w = send(ws->fd, b, n, MSG_NOSIGNAL);
			if (w > 0) {
				b += w;
				n -= (size_t)w;
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno == EAGAIN) {
				if (!wait_fd(ws->fd, POLLOUT, dl))
					return -1;
				continue;
			}
			return -1;
		}
	}
	return 0;
}

/* Reads more bytes into ws->in. >0 bytes read, 0 timeout, -1 EOF/error. */
static int io_read(struct th_ws *ws, int64_t dl)
{
	if (ws->eof)
		return -1;
	/* small at first: tests hold thousands of clients */
	if (ws->in_cap - ws->in_len < 2048) {
		ws->in_cap = ws->in_cap ? ws->in_cap * 2 : 4096;
		ws->in = realloc(ws->in, ws->in_cap);
	}
	for (;;) {
		size_t room = ws->in_cap - ws->in_len;
		if (ws->ssl) {
			int r = SSL_read(ws->ssl, ws->in + ws->in_len, room > INT32_MAX ? INT32_MAX : (int)room);
			if (r > 0) {
				ws->in_len += (size_t)r;
				return r;
			}
			int e = SSL_get_error(ws->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				if (!wait_fd(ws->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, dl))
					return 0;
				continue;
			}
			ERR_clear_error();
			ws->eof = true;
			return -1;
		}
		ssize_t r = recv(ws->fd, ws->in + ws->in_len, room, 0);
		if (r > 0) {
			ws->in_len += (size_t)r;
			return (int)r;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			if (!wait_fd(ws->fd, POLLIN, dl))
				return 0;
			continue;
		}
		ws->eof = true;
		return -1;
	}
}

static void consume(struct th_ws *ws, size_t n)
{
	memmove(ws->in, ws->in + n, ws->in_len - n);
	ws->in_len -= n;
}

/* ---------- connection ---------- */

struct th_ws *th_ws_dial(const struct th_ws_opts *o)
{
	int timeout = o->timeout_ms ? o->timeout_ms : 5000;
	int64_t dl = th_now_ms() + timeout;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "th_ws: socket: %s\n", strerror(errno));
		return NULL;
	}
	if (o->rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof(o->rcvbuf));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		fprintf(stderr, "th_ws: connect %d: %s\n", o->port, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!wait_fd(fd, POLLOUT, dl)) {
		fprintf(stderr, "th_ws: connect %d: timeout\n", o->port);
		close(fd);
		return NULL;
	}
	int err = 0;
	socklen_t el = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err) {
		fprintf(stderr, "th_ws: connect %d: %s\n", o->port, strerror(err));
		close(fd);
		return NULL;
	}
	struct th_ws *ws = calloc(1, sizeof(*ws));
	ws->fd = fd;
	ws->auto_pong = true;
	ws->next_id = 1;
	const char *t = o->target ? o->target : "/ws";
	ws->fmt = strstr(t, "format=protobuf") ? CM_FMT_PROTOBUF : CM_FMT_JSON;
	if (!o->tls)
		return ws;

	ws->ssl = SSL_new(client_ctx(o->tls_version));
	SSL_set_ex_data(ws->ssl, ex_idx, ws);
	SSL_set_fd(ws->ssl, fd);
	SSL_set_tlsext_host_name(ws->ssl, o->sni ? o->sni : "localhost");
	if (!o->no_alpn)
		SSL_set_alpn_protos(ws->ssl, (const uint8_t *)"\x08http/1.1", 9);
	if (o->session)
		SSL_set_session(ws->ssl, o->session);
	SSL_set_connect_state(ws->ssl);
	for (;;) {
		int r = SSL_do_handshake(ws->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(ws->ssl, r);
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
		    wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, dl))
			continue;
		char eb[256];
		ERR_error_string_n(ERR_get_error(), eb, sizeof(eb));
		fprintf(stderr, "th_ws: TLS handshake to %d failed (ssl error %d, %s)\n", o->port, e,
			e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? "timeout" : eb);
		ERR_clear_error();
		th_ws_free(ws);
		return NULL;
	}
	ws->session_reused = SSL_session_reused(ws->ssl);
	ws->tls_version = SSL_version(ws->ssl);
	const uint8_t *alpn;
	unsigned alen;
	SSL_get0_alpn_selected(ws->ssl, &alpn, &alen);
	if (alen >= sizeof(ws->alpn))
		alen = sizeof(ws->alpn) - 1;
	memcpy(ws->alpn, alpn, alen);
	ws->alpn[alen] = 0;
	return ws;
}

int th_ws_read_http(struct th_ws *ws, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	size_t head = 0;
	for (;;) {
		if (ws->in_len >= 4) {
			uint8_t *e = memmem(ws->in, ws->in_len, "\r\n\r\n", 4);
			if (e) {
				head = (size_t)(e - ws->in) + 4;
				break;
			}
		}
		if (io_read(ws, dl) <= 0) {
			if (ws->in_len) {
				free(ws->resp);
				ws->resp = strndup((char *)ws->in, ws->in_len);
			}
			return -1;
		}
	}
	struct cm_http_resp r;
	memset(&r, 0, sizeof(r));
	int rc = cm_http_parse_response((const char *)ws->in, head, &r);
	if (rc <= 0) {
		fprintf(stderr, "th_ws: bad HTTP response (%d): %.*s\n", rc, (int)head, ws->in);
		free(ws->resp);
		ws->resp = strndup((char *)ws->in, head);
		consume(ws, head);
		return -1;
	}
	size_t total = head;
	if (r.status != 101) {
		/* refusal: read its body too */
		long clen = -1;
		if (r.content_length.n) {
			char tmp[24];
			size_t c = r.content_length.n < sizeof(tmp) - 1 ? r.content_length.n : sizeof(tmp) - 1;
			memcpy(tmp, r.content_length.p, c);
			tmp[c] = 0;
			clen = strtol(tmp, NULL, 10);
		}
		if (clen >= 0) {
			while (ws->in_len < head + (size_t)clen && io_read(ws, dl) > 0)
				;
			total = ws->in_len < head + (size_t)clen ? ws->in_len : head + (size_t)clen;
		}
	}
	free(ws->resp);
	ws->resp = strndup((char *)ws->in, total);
	consume(ws, total);
	return r.status;
}

int th_ws_handshake(struct th_ws *ws, const struct th_ws_opts *o)
{
	int timeout = o->timeout_ms ? o->timeout_ms : 5000;
	uint8_t raw[16];
	for (int i = 0; i < 16; i += 4) {
		uint32_t v = rnd32();
		memcpy(raw + i, &v, 4);
	}
	char key[32];
	b64(raw, 16, key);
	char req[4096];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\n"
			 "Host: 127.0.0.1:%d\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: %s\r\n"
			 "%s\r\n",
			 o->target ? o->target : "/ws", o->port, key,
			 o->ws_version ? o->ws_version : "13",
			 o->extra_headers ? o->extra_headers : "");
	cr_assert(n > 0 && (size_t)n < sizeof(req), "request too long");
	if (io_write(ws, req, (size_t)n, timeout) < 0)
		return -1;
	int st = th_ws_read_http(ws, timeout);
	ws->status = st < 0 ? 0 : st;
	if (st != 101)
		return st;
	struct cm_http_resp r;
	memset(&r, 0, sizeof(r));
	cm_http_parse_response(ws->resp, strlen(ws->resp), &r);
	char want[29];
	cm_ws_accept_key((struct cm_str){ key, strlen(key) }, want);
	bool ok = r.ws_accept.n == 28 && memcmp(r.ws_accept.p, want, 28) == 0 &&
		  cm_str_ieq(r.upgrade, "websocket") && cm_http_has_token(r.connection, "upgrade");
	if (!ok)
		fprintf(stderr, "th_ws: 101 without a valid accept/upgrade: %s\n", ws->resp);
	ws->upgraded = ok;
	return st;
}

struct th_ws *th_ws_connect(const struct th_ws_opts *o)
{
	struct th_ws *ws = th_ws_dial(o);
	if (!ws)
		return NULL;
	th_ws_handshake(ws, o);
	return ws;
}

struct th_ws *th_ws_open(int port, const char *target)
{
	struct th_ws_opts o = { .port = port, .target = target };
	struct th_ws *ws = th_ws_connect(&o);
	cr_assert(ws, "connect to %d failed", port);
	cr_assert(ws->upgraded, "upgrade of %s refused: status %d: %s", target, ws->status,
		  ws->resp ? ws->resp : "(none)");
	return ws;
}

void th_ws_free(struct th_ws *ws)
{
	if (!ws)
		return;
	if (ws->ssl)
		SSL_free(ws->ssl);
	if (ws->session)
		SSL_SESSION_free(ws->session);
	if (ws->fd >= 0)
		close(ws->fd);
	for (struct th_push *p = ws->pushes, *n; p; p = n) {
		n = p->next;
		cm_smsg_release(&p->m);
		free(p);
	}
	free(ws->in);
	free(ws->frag);
	free(ws->resp);
	free(ws);
}

SSL_SESSION *th_ws_take_session(struct th_ws *ws)
{
	if (ws->session) {
		SSL_SESSION_up_ref(ws->session);
		return ws->session;
	}
	return ws->ssl ? SSL_get1_session(ws->ssl) : NULL;
}

/* ---------- frames out ---------- */

int th_ws_send_raw(struct th_ws *ws, const void *p, size_t n)
{
	return io_write(ws, p, n, 10000);
}

int th_ws_send_frame_ex(struct th_ws *ws, uint8_t opcode, bool fin, bool masked, uint8_t rsv,
			const void *data, size_t len)
{
	uint8_t *f = malloc(len + 14);
	size_t h = 0;
	f[h++] = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f));
	uint8_t mbit = masked ? 0x80 : 0;
	if (len < 126) {
		f[h++] = mbit | (uint8_t)len;
	} else if (len <= 0xffff) {
		f[h++] = mbit | 126;
		f[h++] = (uint8_t)(len >> 8);
		f[h++] = (uint8_t)len;
	} else {
		f[h++] = mbit | 127;
		for (int i = 7; i >= 0; i--)
			f[h++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	uint8_t mask[4] = { 0 };
	if (masked) {
		uint32_t m = rnd32();
		memcpy(mask, &m, 4);
		memcpy(f + h, mask, 4);
		h += 4;
	}
	if (len)
		memcpy(f + h, data, len);
	if (masked)
		for (size_t i = 0; i < len; i++)
			f[h + i] ^= mask[i & 3];
	int rc = io_write(ws, f, h + len, 10000);
	free(f);
	return rc;
}

int th_ws_send_frame(struct th_ws *ws, uint8_t opcode, bool fin, const void *data, size_t len)
{
	return th_ws_send_frame_ex(ws, opcode, fin, true, 0, data, len);
}

int th_ws_send_text(struct th_ws *ws, const char *s)
{
	return th_ws_send_frame(ws, CM_WS_TEXT, true, s, strlen(s));
}

int th_ws_send_binary(struct th_ws *ws, const void *p, size_t n)
{
	return th_ws_send_frame(ws, CM_WS_BINARY, true, p, n);
}

int th_ws_send_close(struct th_ws *ws, uint16_t code, const char *reason)
{
	uint8_t b[125];
	size_t n = 0;
	if (code) {
		b[0] = (uint8_t)(code >> 8);
		b[1] = (uint8_t)code;
		n = 2;
		if (reason) {
			size_t rl = strlen(reason);
			if (rl > 123)
				rl = 123;
			memcpy(b + 2, reason, rl);
			n += rl;
		}
	}
	ws->close_sent = true;
	return th_ws_send_frame(ws, CM_WS_CLOSE, true, b, n);
}

/* ---------- frames in ---------- */

static int violation(struct th_ws *ws, const char *what)
{
	fprintf(stderr, "th_ws: server protocol violation: %s\n", what);
	ws->eof = true;
	return -1;
}

/* Parses one frame from ws->in. 1 with *m, 0 when more bytes are needed
 * (or a non-final fragment was absorbed: call again), -1 on violation. */
static int parse_frame(struct th_ws *ws, struct th_ws_msg *m, bool *progress)
{
	*progress = false;
	if (ws->in_len < 2)
		return 0;
	uint8_t *p = ws->in;
	bool fin = p[0] & 0x80;
	uint8_t rsv = (p[0] >> 4) & 7, op = p[0] & 0x0f;
	if (rsv)
		return violation(ws, "RSV bits set");
	if (p[1] & 0x80)
		return violation(ws, "masked server frame");
	uint64_t len = p[1] & 0x7f;
	size_t h = 2;
	if (len == 126) {
		if (ws->in_len < 4)
			return 0;
		len = ((uint64_t)p[2] << 8) | p[3];
		h = 4;
		if (len < 126)
			return violation(ws, "non-minimal 16-bit length");
	} else if (len == 127) {
		if (ws->in_len < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | p[2 + i];
		h = 10;
		if (len <= 0xffff || (len >> 63))
			return violation(ws, "bad 64-bit length");
	}
	bool control = op & 0x8;
	if (control && (len > 125 || !fin))
		return violation(ws, "bad control frame");
	if (op != CM_WS_CONT && op != CM_WS_TEXT && op != CM_WS_BINARY && op != CM_WS_CLOSE &&
	    op != CM_WS_PING && op != CM_WS_PONG)
		return violation(ws, "reserved opcode");
	if (len > (1ULL << 31))
		return violation(ws, "absurd frame length");
	if (ws->in_len < h + len)
		return 0;
	uint8_t *d = p + h;
	*progress = true;
	memset(m, 0, sizeof(*m));
	if (control) {
		m->opcode = op;
		m->data = malloc(len + 1);
		memcpy(m->data, d, len);
		m->data[len] = 0;
		m->len = len;
		consume(ws, h + len);
		if (op == CM_WS_CLOSE) {
			if (len == 1)
				return violation(ws, "1-byte close payload");
			m->close_code = len >= 2 ? (uint16_t)((m->data[0] << 8) | m->data[1]) : 1005;
			ws->got_close = true;
			ws->close_code = m->close_code;
			size_t rl = len >= 2 ? len - 2 : 0;
			if (rl >= sizeof(ws->close_reason))
				rl = sizeof(ws->close_reason) - 1;
			memcpy(ws->close_reason, m->data + (len >= 2 ? 2 : 0), rl);
			ws->close_reason[rl] = 0;
		}
		return 1;
	}
	if (op == CM_WS_CONT) {
		if (!ws->frag_op)
			return violation(ws, "continuation without a message");
	} else if (ws->frag_op) {
		return violation(ws, "new data frame inside a fragmented message");
	} else {
		ws->frag_op = op;
		ws->frag_len = 0;
	}
	ws->frag = realloc(ws->frag, ws->frag_len + len + 1);
	memcpy(ws->frag + ws->frag_len, d, len);
	ws->frag_len += len;
	consume(ws, h + len);
	if (!fin)
		return 0;
	m->opcode = ws->frag_op;
	m->data = ws->frag;
	m->data[ws->frag_len] = 0;
	m->len = ws->frag_len;
	ws->frag = NULL;
	ws->frag_len = 0;
	ws->frag_op = 0;
	if (m->opcode == CM_WS_TEXT && !cm_utf8_valid(m->data, m->len)) {
		free(m->data);
		m->data = NULL;
		return violation(ws, "text message not valid UTF-8");
	}
	return 1;
}

int th_ws_read(struct th_ws *ws, struct th_ws_msg *m, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	memset(m, 0, sizeof(*m));
	for (;;) {
		bool progress;
		int r;
		do {
			r = parse_frame(ws, m, &progress);
		} while (r == 0 && progress);
		if (r != 0)
			return r;
		int n = io_read(ws, dl);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
	}
}

void th_ws_msg_free(struct th_ws_msg *m)
{
	free(m->data);
	m->data = NULL;
}

int th_ws_wait_close(struct th_ws *ws, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	for (;;) {
		struct th_ws_msg m;
		int r = th_ws_read(ws, &m, remaining(dl));
		if (r <= 0)
			return r;
		uint8_t op = m.opcode;
		uint16_t code = m.close_code;
		if (op == CM_WS_PING && ws->auto_pong)
			th_ws_send_frame(ws, CM_WS_PONG, true, m.data, m.len);
		th_ws_msg_free(&m);
		if (op == CM_WS_CLOSE) {
			/* echo it, as a client must (RFC 6455 5.5.1) */
			if (!ws->close_sent && !ws->eof)
				th_ws_send_close(ws, code == 1005 ? 0 : code, NULL);
			return code;
		}
	}
}

bool th_ws_wait_eof(struct th_ws *ws, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	while (!ws->eof) {
		struct th_ws_msg m;
		int r = th_ws_read(ws, &m, remaining(dl));
		if (r > 0)
			th_ws_msg_free(&m);
		else if (r == 0)
			return false;
	}
	return true;
}

int th_ws_next_data(struct th_ws *ws, struct th_ws_msg *m, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	for (;;) {
		int r = th_ws_read(ws, m, remaining(dl));
		if (r <= 0)
			return r;
		if (m->opcode == CM_WS_PING) {
			ws->pings_seen++;
			if (ws->auto_pong)
				th_ws_send_frame(ws, CM_WS_PONG, true, m->data, m->len);
		}
		if (m->opcode == CM_WS_TEXT || m->opcode == CM_WS_BINARY)
			return 1;
		if (m->opcode == CM_WS_CLOSE) {
			th_ws_msg_free(m);
			return -1;
		}
		th_ws_msg_free(m);
	}
}

/* Reads the next server message and decodes it. 1 ok, 0 timeout, -1 end,
 * -2 undecodable or wrong frame type for the format. */
static int next_smsg(struct th_ws *ws, struct cm_smsg *sm, int64_t dl)
{
	struct th_ws_msg m;
	int r = th_ws_next_data(ws, &m, remaining(dl));
	if (r <= 0)
		return r;
	uint8_t want = ws->fmt == CM_FMT_JSON ? CM_WS_TEXT : CM_WS_BINARY;
	if (m.opcode != want) {
		fprintf(stderr, "th_ws: got opcode %u in format %d\n", m.opcode, ws->fmt);
		th_ws_msg_free(&m);
		return -2;
	}
	memset(sm, 0, sizeof(*sm));
	if (cm_smsg_decode(ws->fmt, m.data, m.len, sm) != 0) {
		fprintf(stderr, "th_ws: undecodable server message (%zu bytes): %.*s\n", m.len,
			(int)(m.len > 300 ? 300 : m.len), (char *)m.data);
		th_ws_msg_free(&m);
		return -2;
	}
	th_ws_msg_free(&m);
	return 1;
}

static void queue_push(struct th_ws *ws, struct cm_smsg *sm)
{
	struct th_push *p = calloc(1, sizeof(*p));
	p->m = *sm;
	if (ws->pushes_tail)
		ws->pushes_tail->next = p;
	else
		ws->pushes = p;
	ws->pushes_tail = p;
}

/* Waits for a reply (with id `id`, or any when any_id); queues pushes. */
static int wait_reply(struct th_ws *ws, uint64_t id, bool any_id, struct cm_smsg *reply,
		      int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	for (;;) {
		struct cm_smsg sm;
		int r = next_smsg(ws, &sm, dl);
		if (r <= 0)
			return r == 0 ? -1 : r == -2 ? -2 : -1;
		if (sm.kind == CM_SMSG_PUSH) {
			queue_push(ws, &sm);
			continue;
		}
		if (!any_id && sm.id != id) {
			fprintf(stderr, "th_ws: reply for id %llu while waiting for %llu\n",
				(unsigned long long)sm.id, (unsigned long long)id);
			cm_smsg_release(&sm);
			continue;
		}
		int code = sm.code;
		if (reply)
			*reply = sm;
		else
			cm_smsg_release(&sm);
		return code;
	}
}

int64_t th_ws_send_command(struct th_ws *ws, enum cm_cmd_kind kind, const char *stream,
			   const void *data, size_t len)
{
	size_t cap = len * 6 + 1024;
	uint8_t *buf = malloc(cap);
	uint64_t id = ws->next_id++;
	size_t n = cm_cmd_encode(ws->fmt, kind, id, stream, data, len, buf, cap);
	cr_assert(n > 0, "cm_cmd_encode failed");
	int rc = th_ws_send_frame(ws, ws->fmt == CM_FMT_JSON ? CM_WS_TEXT : CM_WS_BINARY, true,
				  buf, n);
	free(buf);
	return rc < 0 ? -1 : (int64_t)id;
}

int th_ws_wait_reply(struct th_ws *ws, uint64_t id, struct cm_smsg *reply, int timeout_ms)
{
	return wait_reply(ws, id, false, reply, timeout_ms);
}

int th_ws_command(struct th_ws *ws, enum cm_cmd_kind kind, const char *stream,
		  const void *data, size_t len, struct cm_smsg *reply, int timeout_ms)
{
	int64_t id = th_ws_send_command(ws, kind, stream, data, len);
	if (id < 0)
		return -1;
	return wait_reply(ws, (uint64_t)id, false, reply, timeout_ms);
}

int th_ws_subscribe(struct th_ws *ws, const char *stream)
{
	return th_ws_command(ws, CM_CMD_SUBSCRIBE, stream, NULL, 0, NULL, 5000);
}

int th_ws_unsubscribe(struct th_ws *ws, const char *stream)
{
	return th_ws_command(ws, CM_CMD_UNSUBSCRIBE, stream, NULL, 0, NULL, 5000);
}

int th_ws_publish(struct th_ws *ws, const char *stream, const void *data, size_t len)
{
	return th_ws_command(ws, CM_CMD_PUBLISH, stream, data, len, NULL, 10000);
}

int th_ws_raw_command(struct th_ws *ws, const void *msg, size_t len, struct cm_smsg *reply,
		      int timeout_ms)
{
	if (th_ws_send_frame(ws, ws->fmt == CM_FMT_JSON ? CM_WS_TEXT : CM_WS_BINARY, true, msg,
			     len) < 0)
		return -1;
	return wait_reply(ws, 0, true, reply, timeout_ms);
}

int th_ws_next_push(struct th_ws *ws, struct cm_smsg *m, int timeout_ms)
{
	if (ws->pushes) {
		struct th_push *p = ws->pushes;
		ws->pushes = p->next;
		if (!ws->pushes)
			ws->pushes_tail = NULL;
		*m = p->m;
		free(p);
		return 1;
	}
	int64_t dl = th_now_ms() + timeout_ms;
	int r = next_smsg(ws, m, dl);
	if (r <= 0)
		return r;
	if (m->kind != CM_SMSG_PUSH) {
		fprintf(stderr, "th_ws: reply (id %llu code %d) where a push was expected\n",
			(unsigned long long)m->id, m->code);
		cm_smsg_release(m);
		return -2;
	}
	return 1;
}

/* ---------- JWT ---------- */

const char *th_jwt(const char *sub, int64_t exp, const char *secret)
{
	static char tok[2048];
	size_t n = cm_jwt_sign(sub, exp, (const uint8_t *)secret, strlen(secret), tok, sizeof(tok));
	cr_assert(n > 0, "cm_jwt_sign failed");
	return tok;
}

void th_ws_flood(struct th_ws *pub, struct th_ws *reader, const char *stream, size_t size,
		 int count)
{
	char *big = malloc(size);

	cr_assert(big && size >= 16);
	for (int i = 0; i < count; i++) {
		struct cm_smsg m;
		memset(big, 'a' + i % 26, size);
		snprintf(big, 16, "%08d", i);
		big[8] = '-';
		cr_assert_eq(th_ws_publish(pub, stream, big, size), 0, "publish %d", i);
		cr_assert_eq(th_ws_next_push(reader, &m, 10000), 1, "fast subscriber: push %d missing", i);
		cr_assert_eq(m.offset, (uint64_t)i + 1);
		cr_assert_eq(m.data_len, size);
		cr_assert(memcmp(m.data, big, size) == 0, "push %d payload differs", i);
		cm_smsg_release(&m);
	}
	free(big);
}

void th_ws_flood_clients(int port, int tls_port, int nslow, struct th_ws **slow,
			 struct th_ws **fast, struct th_ws **pub)
{
	cr_assert(nslow >= 1 && nslow <= 2);
	for (int i = 0; i < nslow; i++) {
		char t[32];
		bool tls = tls_port > 0 && i == nslow - 1;
		snprintf(t, sizeof(t), nslow == 1 ? "/ws?user=slow" : "/ws?user=slow%d", i + 1);
		struct th_ws_opts so = { .port = tls ? tls_port : port, .target = t, .tls = tls,
					 .rcvbuf = 4096 };
		slow[i] = th_ws_connect(&so);
		cr_assert(slow[i] && slow[i]->upgraded, "slow client %d", i + 1);
		cr_assert_eq(th_ws_subscribe(slow[i], "flood"), 0);
	}
	*fast = th_ws_open(port, "/ws?user=fast");
	cr_assert_eq(th_ws_subscribe(*fast, "flood"), 0);
	*pub = th_ws_open(port, "/ws?user=pub");
}

void th_ws_expect_push(struct th_ws *ws, const char *stream, uint64_t offset, const void *data,
		       size_t len)
{
	struct cm_smsg m;
	int r = th_ws_next_push(ws, &m, 5000);

	cr_assert_eq(r, 1, "no push (%d) for %s #%llu (close code %u)", r, stream,
		     (unsigned long long)offset, ws->got_close ? ws->close_code : 0);
	cr_assert_str_eq(m.stream, stream);
	cr_assert_eq(m.offset, offset, "%s: offset %llu, want %llu", stream,
		     (unsigned long long)m.offset, (unsigned long long)offset);
	cr_assert_eq(m.data_len, len, "%s #%llu: %zu bytes, want %zu", stream,
		     (unsigned long long)offset, m.data_len, len);
	cr_assert(!len || !memcmp(m.data, data, len), "%s #%llu: payload differs", stream,
		  (unsigned long long)offset);
	cm_smsg_release(&m);
}

void th_ws_expect_no_push(struct th_ws *ws, int ms)
{
	struct cm_smsg m;

	if (th_ws_next_push(ws, &m, ms) == 1) {
		cr_assert_fail("unexpected push on %s #%llu", m.stream,
			       (unsigned long long)m.offset);
	}
}
