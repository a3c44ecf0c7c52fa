/* cm_admin — the operators' HTTP server on a cm_loop (see cm_admin.h).
 *
 * Completions carry cm_ud_ptr(CM_K_ADMIN, p | tag): tag TAG_CONN with p a
 * connection (its one operation in flight is a recv or a send, c->busy),
 * TAG_ACCEPT or TAG_TICK with p the server. Memory is freed only when no
 * operation points to it: a connection once it is closed and not busy, the
 * server once it is stopped with no accept, tick or connection left.
 *
 * Life of a connection: RECV (read the head into a buffer growing to
 * CM_HTTP_MAX_HEAD) -> SEND (the whole response, partial sends resumed) ->
 * DRAIN (write side shut; read and drop what the client still sends until
 * its EOF, so that closing with unread bytes does not reset the connection
 * before the client read the response) -> closed. A repeating tick closes
 * connections past their deadline by cancelling their operation. */
#include "cm_admin.h"
#include "cm_log.h"
#include "cm_net.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { TAG_CONN = 0, TAG_ACCEPT = 1, TAG_TICK = 2, TAG_MASK = 3 };

enum conn_state { C_RECV, C_SEND, C_DRAIN };

#define IN_FIRST 1024
#define DRAIN_MAX (64 * 1024)  /* bytes dropped after the response, at most */
#define DEFAULT_TYPE "text/plain; charset=utf-8"

struct adm_conn {
	struct adm_conn *prev, *next;
	struct cm_admin *a;
	int fd;
	enum conn_state state;
	bool busy;      /* a recv or send in flight */
	bool closed;
	uint64_t deadline;
	char *in;
	size_t in_len, in_cap, drained;
	struct cm_buf out;
	size_t out_off;
};

struct adm_route {
	char *path;
	cm_admin_fn fn;
	void *arg;
};

struct cm_admin {
	struct cm_loop *loop;
	int lfd, port;
	bool accept_armed, accept_retry, tick_armed, stopping;
	struct __kernel_timespec tick_ts;
	uint64_t timeout_ms;
	unsigned nconns;
	struct adm_conn conns;  /* list head */
	struct adm_route *routes;
	unsigned nroutes;
	cm_fn done;
	void *done_arg;
};

static uint64_t ud_of(const void *p, unsigned tag)
{
	return cm_ud_ptr(CM_K_ADMIN, (const char *)p + tag);
}

static void maybe_free_admin(struct cm_admin *a);
static void conn_respond(struct adm_conn *c, int status, const char *ctype,
			 const char *extra, const char *body, size_t body_len, bool head_only);

static void arm_accept(struct cm_admin *a)
{
	struct io_uring_sqe *sqe = cm_loop_sqe(a->loop);
	io_uring_prep_multishot_accept(sqe, a->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_of(a, TAG_ACCEPT));
	a->accept_armed = true;
	a->accept_retry = false;
}

static uint64_t tick_ms(const struct cm_admin *a)
{
	uint64_t ms = a->timeout_ms / 5;
	return ms < 10 ? 10 : ms > 1000 ? 1000 : ms;
}

static void arm_tick(struct cm_admin *a)
{
	struct io_uring_sqe *sqe;
	uint64_t ms = tick_ms(a);

	if (a->tick_armed || a->stopping)
		return;
	a->tick_ts.tv_sec = (long long)(ms / 1000);
	a->tick_ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	sqe = cm_loop_sqe(a->loop);
	io_uring_prep_timeout(sqe, &a->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_of(a, TAG_TICK));
	a->tick_armed = true;
}

static void cancel_op(struct cm_loop *loop, uint64_t ud)
{
	struct io_uring_sqe *sqe = cm_loop_sqe(loop);
	io_uring_prep_cancel64(sqe, ud, 0);
	io_uring_sqe_set_data64(sqe, cm_ud(CM_K_NONE, 0));
}

static void conn_free(struct adm_conn *c)
{
	struct cm_admin *a = c->a;

	CM_ASSERT(c->closed && !c->busy);
	c->prev->next = c->next;
	c->next->prev = c->prev;
	a->nconns--;
	close(c->fd);
	free(c->in);
	cm_buf_free(&c->out);
	free(c);
	maybe_free_admin(a);
}

/* Closes c: at once when idle, else once its operation is cancelled. */
static void conn_close(struct adm_conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	if (c->busy) {
		/* The shutdown ends a recv or send that the cancel would miss
		 * (one already running); either way one completion follows. */
		shutdown(c->fd, SHUT_RDWR);
		cancel_op(c->a->loop, ud_of(c, TAG_CONN));
	}
	else
		conn_free(c);
}

static void conn_recv(struct adm_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->in_len == c->in_cap) {
		/* Only while reading the head, which stops at CM_HTTP_MAX_HEAD;
		 * draining reuses the buffer from its start. */
		CM_ASSERT(c->in_cap < CM_HTTP_MAX_HEAD);
		c->in_cap = c->in_cap ? c->in_cap * 2 : IN_FIRST;
		if (c->in_cap > CM_HTTP_MAX_HEAD)
			c->in_cap = CM_HTTP_MAX_HEAD;
		c->in = cm_xrealloc(c->in, c->in_cap);
	}
	sqe = cm_loop_sqe(c->a->loop);
	io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	io_uring_sqe_set_data64(sqe, ud_of(c, TAG_CONN));
	c->busy = true;
}

static void conn_send(struct adm_conn *c)
{
	struct io_uring_sqe *sqe = cm_loop_sqe(c->a->loop);
	io_uring_prep_send(sqe, c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_of(c, TAG_CONN));
	c->busy = true;
}

static void conn_new(struct cm_admin *a, int fd)
{
	struct adm_conn *c;

	if (a->stopping || a->nconns >= CM_ADMIN_MAX_CONNS) {
		if (!a->stopping)
			cm_debug("admin: %u connections, refusing one", a->nconns);
		close(fd);
		return;
	}
	c = cm_xcalloc(1, sizeof(*c));
	c->a = a;
	c->fd = fd;
	c->state = C_RECV;
	c->deadline = cm_now_ms() + a->timeout_ms;
	c->next = a->conns.next;
	c->prev = &a->conns;
	a->conns.next->prev = c;
	a->conns.next = c;
	a->nconns++;
	conn_recv(c);
	arm_tick(a);
}

static const struct adm_route *find_route(const struct cm_admin *a, struct cm_str path)
{
	for (unsigned i = 0; i < a->nroutes; i++)
		if (cm_str_eq(path, a->routes[i].path))
			return &a->routes[i];
	return NULL;
}

static void respond_error(struct adm_conn *c, int status, const char *extra, bool head_only)
{
	char body[96];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, cm_http_reason(status));
	conn_respond(c, status, DEFAULT_TYPE, extra, body, (size_t)n, head_only);
}

/* A complete head in c->in: route it and start sending the response. */
static void conn_handle(struct adm_conn *c, const struct cm_http_req *req)
{
	struct cm_admin *a = c->a;
	bool head = cm_str_eq(req->method, "HEAD");
	const struct adm_route *r;
	struct cm_buf body = { 0 };
	const char *ctype = DEFAULT_TYPE;
	int status;

	if (!head && !cm_str_eq(req->method, "GET")) {
		respond_error(c, 405, "Allow: GET, HEAD\r\n", false);
		return;
	}
	if (!(r = find_route(a, req->path))) {
		respond_error(c, 404, NULL, head);
		return;
	}
	/* The handler may stop the server, closing c: busy keeps c (and so
	 * the server) alive until we are back. */
	c->busy = true;
	status = r->fn(r->arg, req, &body, &ctype);
	c->busy = false;
	if (c->closed) {
		cm_buf_free(&body);
		conn_free(c);
		return;
	}
	if (status < 100 || status > 599) {
		cm_warn("admin: handler for %s returned status %d", r->path, status);
		cm_buf_free(&body);
		respond_error(c, 500, NULL, head);
		return;
	}
	conn_respond(c, status, ctype ? ctype : DEFAULT_TYPE, NULL, body.p, body.len, head);
	cm_buf_free(&body);
}

/* Queues the response and sends it. */
static void conn_respond(struct adm_conn *c, int status, const char *ctype,
			 const char *extra, const char *body, size_t body_len, bool head_only)
{
	char headbuf[1024];
	size_t n;
	bool has_body = !head_only && status >= 200 && status != 204 && status != 304;

	n = cm_http_write_response(headbuf, sizeof(headbuf), status, ctype, extra, NULL, body_len);
	if (n == 0) {
		/* Only a content type longer than the buffer gets here. */
		cm_warn("admin: response head too long");
		status = 500;
		has_body = false;
		n = cm_http_write_response(headbuf, sizeof(headbuf), status, NULL, NULL, NULL, 0);
		CM_ASSERT(n > 0);
	}
	cm_buf_append(&c->out, headbuf, n);
	if (has_body && body_len)
		cm_buf_append(&c->out, body, body_len);
	c->state = C_SEND;
	c->out_off = 0;
	conn_send(c);
}

static void on_conn_cqe(struct adm_conn *c, int res)
{
	struct cm_http_req req;
	int ret;

	c->busy = false;
	if (c->closed) {
		conn_free(c);
		return;
	}
	switch (c->state) {
	case C_RECV:
		if (res <= 0) {
			conn_close(c); /* EOF or error before a complete request */
			return;
		}
		c->in_len += (size_t)res;
		ret = cm_http_parse_request(c->in, c->in_len, &req);
		if (ret == 0) {
			conn_recv(c);
		} else if (ret < 0) {
			cm_debug("admin: bad request (%d)", -ret);
			respond_error(c, -ret, NULL, false);
		} else {
			conn_handle(c, &req);
		}
		return;
	case C_SEND:
		if (res <= 0) {
			conn_close(c);
			return;
		}
		c->out_off += (size_t)res;
		if (c->out_off < c->out.len) {
			conn_send(c); /* partial send: resume */
			return;
		}
		cm_buf_free(&c->out);
		shutdown(c->fd, SHUT_WR);
		c->state = C_DRAIN;
		c->in_len = 0;
		conn_recv(c);
		return;
	case C_DRAIN:
		c->drained += res > 0 ? (size_t)res : 0;
		if (res <= 0 || c->drained > DRAIN_MAX) {
			conn_close(c);
			return;
		}
		c->in_len = 0;
		conn_recv(c);
		return;
	}
}

static void on_accept_cqe(struct cm_admin *a, struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (cqe->res >= 0)
		conn_new(a, cqe->res);
	else if (cqe->res != -ECANCELED && !a->stopping)
		cm_warn("admin: accept: %s", strerror(-cqe->res));
	if (more)
		return;
	a->accept_armed = false;
	if (a->stopping) {
		maybe_free_admin(a);
	} else if (cqe->res < 0 && cqe->res != -ECANCELED) {
		/* EMFILE and the like: try again at the next tick, not in a
		 * busy loop. */
		a->accept_retry = true;
		arm_tick(a);
	} else {
		arm_accept(a); /* multishot accept can end without F_MORE: re-arm */
	}
}

static void on_tick_cqe(struct cm_admin *a)
{
	uint64_t now = cm_now_ms();
	struct adm_conn *c, *next;

	a->tick_armed = false;
	if (a->stopping) {
		maybe_free_admin(a);
		return;
	}
	for (c = a->conns.next; c != &a->conns; c = next) {
		next = c->next;
		if (!c->closed && now >= c->deadline) {
			cm_debug("admin: connection timed out");
			conn_close(c);
		}
	}
	if (a->accept_retry && !a->accept_armed)
		arm_accept(a);
	if (a->nconns > 0)
		arm_tick(a);
}

static void on_cqe(void *ctx, struct io_uring_cqe *cqe)
{
	uintptr_t v = (uintptr_t)cm_ud_to_ptr(cqe->user_data);
	void *p = (void *)(v & ~(uintptr_t)TAG_MASK);

	(void)ctx; /* the pointer travels in user_data: several servers per loop */
	switch (v & TAG_MASK) {
	case TAG_CONN:
		on_conn_cqe(p, cqe->res);
		break;
	case TAG_ACCEPT:
		on_accept_cqe(p, cqe);
		break;
	case TAG_TICK:
		on_tick_cqe(p);
		break;
	default:
		CM_ASSERT(!"bad admin user_data tag");
	}
}

struct cm_admin *cm_admin_start(struct cm_loop *loop, const char *host, int port, int *err)
{
	struct cm_admin *a;
	int fd = cm_listen_tcp(host, port, false, 128);

	if (fd < 0) {
		*err = fd;
		return NULL;
	}
	a = cm_xcalloc(1, sizeof(*a));
	a->loop = loop;
	a->lfd = fd;
	a->port = cm_local_port(fd);
	a->timeout_ms = CM_ADMIN_TIMEOUT_MS;
	a->conns.next = a->conns.prev = &a->conns;
	cm_loop_set_kind(loop, CM_K_ADMIN, on_cqe, NULL);
	arm_accept(a);
	return a;
}

int cm_admin_port(const struct cm_admin *a) { return a->port; }
unsigned cm_admin_nconns(const struct cm_admin *a) { return a->nconns; }

void cm_admin_set_timeout(struct cm_admin *a, uint64_t ms)
{
	CM_ASSERT(ms > 0);
	a->timeout_ms = ms;
}

void cm_admin_route(struct cm_admin *a, const char *path, cm_admin_fn fn, void *arg)
{
	struct adm_route *r = NULL;

	CM_ASSERT(path && path[0] == '/' && fn);
	for (unsigned i = 0; i < a->nroutes; i++)
		if (!strcmp(a->routes[i].path, path))
			r = &a->routes[i];
	if (!r) {
		a->routes = cm_xrealloc(a->routes, (a->nroutes + 1) * sizeof(*a->routes));
		r = &a->routes[a->nroutes++];
		r->path = cm_xstrndup(path, strlen(path));
	}
	r->fn = fn;
	r->arg = arg;
}

static void maybe_free_admin(struct cm_admin *a)
{
	if (!a->stopping || a->accept_armed || a->tick_armed || a->nconns > 0)
		return;
	if (a->done)
		cm_loop_defer(a->loop, a->done, a->done_arg);
	for (unsigned i = 0; i < a->nroutes; i++)
		free(a->routes[i].path);
	free(a->routes);
	free(a);
}

void cm_admin_stop_then(struct cm_admin *a, cm_fn done, void *arg)
{
	struct adm_conn *c, *next;

	if (!a)
		return;
	CM_ASSERT(!a->stopping);
	a->stopping = true;
	a->done = done;
	a->done_arg = arg;
	/* The accept holds its own reference to the socket: closing the fd
	 * frees the port once the cancelled accept completes. */
	close(a->lfd);
	if (a->accept_armed)
		cancel_op(a->loop, ud_of(a, TAG_ACCEPT));
	if (a->tick_armed) {
		struct io_uring_sqe *sqe = cm_loop_sqe(a->loop);
		io_uring_prep_timeout_remove(sqe, ud_of(a, TAG_TICK), 0);
		io_uring_sqe_set_data64(sqe, cm_ud(CM_K_NONE, 0));
	}
	/* conn_close() may free the last connection and then the server;
	 * keep it alive through the loop by counting it as a connection. */
	a->nconns++;
	for (c = a->conns.next; c != &a->conns; c = next) {
		next = c->next;
		conn_close(c);
	}
	a->nconns--;
	maybe_free_admin(a);
}

void cm_admin_stop(struct cm_admin *a)
{
	cm_admin_stop_then(a, NULL, NULL);
}
