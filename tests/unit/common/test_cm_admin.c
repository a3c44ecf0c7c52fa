/* cm_admin against real sockets: the server runs on a cm_loop in a thread;
 * the test talks to it with plain blocking sockets. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#include "cm_admin.h"
#include "cm_buf.h"
#include "cm_loop.h"

static struct cm_loop *loop;
static struct cm_admin *adm;
static pthread_t thr;
static atomic_bool want_stop;
static atomic_bool stopped_cleanly;
static struct cm_timer *watch;
static int port;
static atomic_uint nconns_seen;
static atomic_uint handler_calls;

/* Larger than the most a socket send buffer grows to (tcp_wmem's 4 MiB):
 * the server's sends are partial. */
#define BIG_LEN (16u << 20)

static int h_hello(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		   const char **ctype)
{
	(void)arg;
	(void)ctype; /* default content type */
	handler_calls++;
	cm_buf_printf(body, "hello %.*s\n", (int)req->query.n, req->query.p);
	return 200;
}

static int h_json(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		  const char **ctype)
{
	(void)req;
	*ctype = "application/json";
	cm_buf_printf(body, "{\"n\":%d}", *(int *)arg);
	return 201;
}

static int h_conns(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		   const char **ctype)
{
	(void)arg;
	(void)req;
	(void)ctype;
	nconns_seen = cm_admin_nconns(adm);
	cm_buf_printf(body, "%u", cm_admin_nconns(adm));
	return 200;
}

static int h_big(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		 const char **ctype)
{
	(void)arg;
	(void)req;
	*ctype = "application/octet-stream";
	cm_buf_reserve(body, BIG_LEN);
	for (unsigned i = 0; i < BIG_LEN; i++)
		body->p[i] = (char)(i * 7 + (i >> 12));
	body->len = BIG_LEN;
	return 200;
}

static int h_bad_status(void *arg, const struct cm_http_req *req, struct cm_buf *body,
			const char **ctype)
{
	(void)arg;
	(void)req;
	(void)ctype;
	cm_buf_printf(body, "never sent");
	return 42;
}

static void stop_loop(void *arg)
{
	stopped_cleanly = true;
	cm_loop_stop(arg);
}

static int h_stop(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		  const char **ctype)
{
	(void)arg;
	(void)req;
	(void)ctype;
	cm_buf_printf(body, "bye");
	cm_admin_stop_then(adm, stop_loop, loop);
	adm = NULL;
	return 200;
}

/* Polls the stop flag set by the test thread (the loop has one thread). */
static void on_watch(void *arg)
{
	(void)arg;
	if (!want_stop || !adm)
		return;
	cm_timer_stop(watch);
	cm_admin_stop_then(adm, stop_loop, loop);
	adm = NULL;
}

static void *run(void *arg)
{
	(void)arg;
	cm_loop_run(loop);
	return NULL;
}

static int seven = 7;

static void start_server(uint64_t timeout_ms)
{
	int err = 0;

	loop = cm_loop_new(256);
	adm = cm_admin_start(loop, "127.0.0.1", 0, &err);
	cr_assert_not_null(adm, "cm_admin_start: %d", err);
	port = cm_admin_port(adm);
	cr_assert_gt(port, 0);
	if (timeout_ms)
		cm_admin_set_timeout(adm, timeout_ms);
	cm_admin_route(adm, "/hello", h_hello, NULL);
	cm_admin_route(adm, "/json", h_json, &seven);
	cm_admin_route(adm, "/conns", h_conns, NULL);
	cm_admin_route(adm, "/big", h_big, NULL);
	cm_admin_route(adm, "/bad", h_bad_status, NULL);
	cm_admin_route(adm, "/stop", h_stop, NULL);
	watch = cm_timer_start(loop, 5, true, on_watch, NULL);
	cr_assert_eq(pthread_create(&thr, NULL, run, NULL), 0);
}

static void setup(void) { start_server(0); }

static void stop_server(void)
{
	struct timespec ts;

	if (!loop)
		return;
	want_stop = true;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	cr_assert_eq(pthread_timedjoin_np(thr, NULL, &ts), 0, "loop did not stop");
	cr_assert(stopped_cleanly, "cm_admin_stop_then's callback did not run");
	cm_loop_free(loop);
	loop = NULL;
}

static void teardown(void) { stop_server(); }

static int dial(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
		     strerror(errno));
	/* A safety net against a hung test, not a timing assertion. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		cr_assert_gt(w, 0, "send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* Reads until EOF into *out; returns false on an error before EOF. */
static bool read_all(int fd, struct cm_buf *out)
{
	char tmp[65536];
	for (;;) {
		ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
		if (r == 0)
			return true;
		if (r < 0)
			return false;
		cm_buf_append(out, tmp, (size_t)r);
	}
}

struct resp {
	int status;
	char ctype[128];
	long clen;
	bool conn_close;
	char allow[64];
	struct cm_buf raw;
	const char *body;
	size_t body_len;
};

static void parse_resp(struct resp *r)
{
	struct cm_http_resp h;
	int n = cm_http_parse_response(r->raw.p, r->raw.len, &h);
	cr_assert_gt(n, 0, "bad response (%d): %.*s", n, (int)r->raw.len, r->raw.p);
	r->status = h.status;
	r->conn_close = cm_http_has_token(h.connection, "close");
	r->clen = h.content_length.n ? strtol(h.content_length.p, NULL, 10) : -1;
	r->body = r->raw.p + n;
	r->body_len = r->raw.len - (size_t)n;
	/* Content-Type and Allow are not among the parsed headers: find them. */
	r->ctype[0] = r->allow[0] = 0;
	const char *ct = memmem(r->raw.p, (size_t)n, "\r\nContent-Type: ", 16);
	if (ct)
		sscanf(ct + 16, "%127[^\r]", r->ctype);
	const char *al = memmem(r->raw.p, (size_t)n, "\r\nAllow: ", 9);
	if (al)
		sscanf(al + 9, "%63[^\r]", r->allow);
}

static void exchange(const char *req, size_t len, struct resp *r)
{
	int fd = dial();
	memset(r, 0, sizeof(*r));
	send_all(fd, req, len);
	cr_assert(read_all(fd, &r->raw), "recv: %s", strerror(errno));
	close(fd);
	parse_resp(r);
}

static void get(const char *req, struct resp *r)
{
	exchange(req, strlen(req), r);
}

TestSuite(cm_admin, .init = setup, .fini = teardown, .timeout = 120);

Test(cm_admin, get_returns_body_status_and_type)
{
	struct resp r;
	get("GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.ctype, "text/plain; charset=utf-8");
	cr_assert(r.conn_close);
	cr_assert_eq(r.clen, 10);
	cr_assert_eq(r.body_len, 10);
	cr_assert(memcmp(r.body, "hello x=1\n", 10) == 0);
	cm_buf_free(&r.raw);

	get("GET /json HTTP/1.0\r\n\r\n", &r);
	cr_assert_eq(r.status, 201);
	cr_assert_str_eq(r.ctype, "application/json");
	cr_assert_eq(r.body_len, 7);
	cr_assert(memcmp(r.body, "{\"n\":7}", 7) == 0);
	cm_buf_free(&r.raw);
}

Test(cm_admin, head_sends_the_length_only)
{
	struct resp r;
	get("HEAD /hello HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.clen, 7); /* "hello \n" */
	cr_assert_eq(r.body_len, 0);
	cm_buf_free(&r.raw);
}

Test(cm_admin, unknown_path_is_404)
{
	const char *reqs[] = {
		"GET /nope HTTP/1.1\r\n\r\n",
		"GET /hello/ HTTP/1.1\r\n\r\n",
		"GET /hell HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct resp r;
		get(reqs[i], &r);
		cr_assert_eq(r.status, 404, "%s", reqs[i]);
		cm_buf_free(&r.raw);
	}
	cr_assert_eq(handler_calls, 0);
}

Test(cm_admin, other_methods_are_405_with_allow)
{
	struct resp r;
	get("POST /hello HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", &r);
	cr_assert_eq(r.status, 405);
	cr_assert_str_eq(r.allow, "GET, HEAD");
	cm_buf_free(&r.raw);
	get("DELETE /nope HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 405);
	cm_buf_free(&r.raw);
	cr_assert_eq(handler_calls, 0);
}

Test(cm_admin, huge_head_is_431)
{
	size_t n = 64 * 1024;
	char *req = malloc(n);
	struct resp r;

	memset(req, 'a', n);
	memcpy(req, "GET /hello HTTP/1.1\r\nX-Big: ", 28);
	memcpy(req + n - 4, "\r\n\r\n", 4);
	exchange(req, n, &r);
	free(req);
	cr_assert_eq(r.status, 431);
	cm_buf_free(&r.raw);
	cr_assert_eq(handler_calls, 0);
}

Test(cm_admin, malformed_requests_get_400_or_505)
{
	struct resp r;
	get("GET /hello HTTP/2.0\r\n\r\n", &r);
	cr_assert_eq(r.status, 505);
	cm_buf_free(&r.raw);
	get("\x16\x03\x01\x02\x05\x01\x07\x01\xfc\x03\x03\n", &r);
	cr_assert_eq(r.status, 400);
	cm_buf_free(&r.raw);
	get("GET /hello HTTP/1.1\r\n folded\r\n\r\n", &r);
	cr_assert_eq(r.status, 400);
	cm_buf_free(&r.raw);
	get("GET http://x/hello HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 400);
	cm_buf_free(&r.raw);
	static const char nul[] = "GET /hello HTTP/1.1\r\nHost: a\0\r\n\r\n";
	exchange(nul, sizeof(nul) - 1, &r);
	cr_assert_eq(r.status, 400);
	cm_buf_free(&r.raw);
	cr_assert_eq(handler_calls, 0);
}

Test(cm_admin, a_handler_may_stop_the_server)
{
	int fd = dial();
	struct cm_buf raw = { 0 };
	const char *req = "GET /stop HTTP/1.1\r\n\r\n";

	send_all(fd, req, strlen(req));
	/* Its own connection is closed with the rest, unanswered. */
	cr_assert(read_all(fd, &raw));
	cr_assert_eq(raw.len, 0);
	close(fd);
	/* teardown joins the loop, which the stop callback ended. */
	stop_server();
	cr_assert_eq(LEAK_CHECK(), 0, "leaks");
}

Test(cm_admin, random_garbage_never_breaks_it)
{
	unsigned seed = 12345;
	char buf[3000];

	for (int i = 0; i < 300; i++) {
		size_t n = 4 + (size_t)rand_r(&seed) % (sizeof(buf) - 4);
		for (size_t j = 0; j < n; j++) {
			int x = rand_r(&seed);
			/* Mostly printable, some CR/LF/NUL/high bytes. */
			buf[j] = x % 8 == 0 ? "\r\n\0\x80 :/?"[x / 8 % 8] : (char)(33 + x / 8 % 94);
		}
		if (i % 2)
			memcpy(buf, "GET /hello", 10);
		memcpy(buf + n - 4, "\r\n\r\n", 4);
		int fd = dial();
		struct cm_buf raw = { 0 };
		send_all(fd, buf, n);
		cr_assert(read_all(fd, &raw) || errno == ECONNRESET);
		close(fd);
		cm_buf_free(&raw);
	}
	struct resp r;
	get("GET /hello HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	cm_buf_free(&r.raw);
}

Test(cm_admin, bad_handler_status_is_500)
{
	struct resp r;
	get("GET /bad HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 500);
	cm_buf_free(&r.raw);
}

Test(cm_admin, request_split_into_single_bytes)
{
	const char *req = "GET /hello?split=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
	int fd = dial();
	struct resp r;

	memset(&r, 0, sizeof(r));
	for (size_t i = 0; req[i]; i++) {
		send_all(fd, req + i, 1);
		usleep(2000);
	}
	cr_assert(read_all(fd, &r.raw));
	close(fd);
	parse_resp(&r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_len, strlen("hello split=1\n"));
	cr_assert(memcmp(r.body, "hello split=1\n", r.body_len) == 0);
	cm_buf_free(&r.raw);
}

/* GET /conns: the connections the server holds, or -1 when it turned this
 * one away (closed or reset at once: it still holds as many as it may). */
static long try_conns(void)
{
	static const char req[] = "GET /conns HTTP/1.1\r\n\r\n";
	struct resp r;
	int fd = dial();
	long n = -1;

	memset(&r, 0, sizeof(r));
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(req) - 1) &&
	    read_all(fd, &r.raw) && r.raw.len) {
		parse_resp(&r);
		cr_assert_eq(r.status, 200);
		n = strtol(r.body, NULL, 10);
	}
	cm_buf_free(&r.raw);
	close(fd);
	return n;
}

static unsigned settled_conns(void)
{
	/* Poll until the server has closed the previous connections (it
	 * learns of each client's close asynchronously, and may still be at
	 * its cap when the poll connects); bounded. */
	for (int i = 0; i < 2000; i++) {
		if (try_conns() == 1)
			return 1;
		usleep(1000);
	}
	return nconns_seen;
}

Test(cm_admin, many_sequential_requests)
{
	for (int i = 0; i < 1000; i++) {
		struct resp r;
		char req[64];
		char want[64];
		snprintf(req, sizeof(req), "GET /hello?i=%d HTTP/1.1\r\n\r\n", i);
		get(req, &r);
		cr_assert_eq(r.status, 200);
		int n = snprintf(want, sizeof(want), "hello i=%d\n", i);
		cr_assert_eq(r.body_len, (size_t)n);
		cr_assert(memcmp(r.body, want, (size_t)n) == 0);
		cm_buf_free(&r.raw);
	}
	cr_assert_eq(handler_calls, 1000);
	/* Every connection was released... */
	cr_assert_eq(settled_conns(), 1);
	/* ...and so is all memory once the server and the loop are gone
	 * (checked under ASan only; LeakSanitizer's report at exit would not
	 * fail a Criterion test). */
	stop_server();
	cr_assert_eq(LEAK_CHECK(), 0, "leaks");
}

Test(cm_admin, large_body_survives_partial_sends)
{
	int fd = dial();
	const char *req = "GET /big HTTP/1.1\r\n\r\n";
	struct resp r;

	memset(&r, 0, sizeof(r));
	send_all(fd, req, strlen(req));
	usleep(50 * 1000); /* let the server fill the socket buffers */
	cr_assert(read_all(fd, &r.raw));
	close(fd);
	parse_resp(&r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.clen, BIG_LEN);
	cr_assert_eq(r.body_len, BIG_LEN);
	for (unsigned i = 0; i < BIG_LEN; i++)
		if (r.body[i] != (char)(i * 7 + (i >> 12)))
			cr_assert_fail("body differs at %u", i);
	cm_buf_free(&r.raw);
}

Test(cm_admin, pipelined_bytes_after_the_head_do_not_break_the_response)
{
	/* A body the server never reads must not reset the connection before
	 * the response is read. */
	size_t n = 256 * 1024;
	char *req = malloc(n);
	struct resp r;
	const char *head = "GET /hello HTTP/1.1\r\nContent-Length: 262100\r\n\r\n";

	memset(req, 'b', n);
	memcpy(req, head, strlen(head));
	int fd = dial();
	memset(&r, 0, sizeof(r));
	send_all(fd, req, strlen(head) + 1000);
	cr_assert(read_all(fd, &r.raw), "recv: %s", strerror(errno));
	close(fd);
	free(req);
	parse_resp(&r);
	cr_assert_eq(r.status, 200);
	cm_buf_free(&r.raw);
}

/* Suites with their own server settings. */
static void setup_short(void) { start_server(100); }
TestSuite(cm_admin_deadline, .init = setup_short, .fini = teardown, .timeout = 120);

Test(cm_admin_deadline, idle_and_slow_connections_are_closed)
{
	int idle = dial();
	int slow = dial();
	char buf[256];

	send_all(slow, "GET /hello HTTP/1.1\r\n", 21);
	/* The server closes both (recv sees EOF), long before SO_RCVTIMEO. */
	cr_assert_eq(recv(idle, buf, sizeof(buf), 0), 0);
	cr_assert_eq(recv(slow, buf, sizeof(buf), 0), 0);
	close(idle);
	close(slow);
	cr_assert_eq(handler_calls, 0);
	/* And it still serves. */
	struct resp r;
	get("GET /hello HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	cm_buf_free(&r.raw);
}

static void setup_long(void) { start_server(60000); }
TestSuite(cm_admin_limit, .init = setup_long, .fini = teardown, .timeout = 120);

Test(cm_admin_limit, connections_beyond_the_limit_are_closed_at_once)
{
	int fds[CM_ADMIN_MAX_CONNS];
	char c;

	for (int i = 0; i < CM_ADMIN_MAX_CONNS; i++)
		fds[i] = dial();
	/* The server accepts in order: the first 128 are held, the next one
	 * is closed at once (EOF, or a reset). */
	int extra = dial();
	ssize_t r = recv(extra, &c, 1, 0);
	cr_assert(r == 0 || (r < 0 && errno == ECONNRESET), "recv: %zd %s", r, strerror(errno));
	close(extra);
	for (int i = 0; i < CM_ADMIN_MAX_CONNS; i++)
		close(fds[i]);
	/* Once they are gone it serves again. */
	cr_assert_eq(settled_conns(), 1);
	struct resp resp;
	get("GET /json HTTP/1.1\r\n\r\n", &resp);
	cr_assert_eq(resp.status, 201);
	cm_buf_free(&resp.raw);
}

Test(cm_admin, start_fails_on_a_taken_port)
{
	int err = 0;
	struct cm_loop *l2 = cm_loop_new(8);
	struct cm_admin *b = cm_admin_start(l2, "127.0.0.1", port, &err);
	cr_assert_null(b);
	cr_assert_eq(err, -EADDRINUSE);
	b = cm_admin_start(l2, "not-an-address", 0, &err);
	cr_assert_null(b);
	cr_assert_eq(err, -EINVAL);
	cm_loop_free(l2);
}

/* With a 60 s deadline, only the stop can close them. */
Test(cm_admin_limit, stop_closes_open_connections)
{
	int idle = dial();
	int half = dial();
	char c;

	send_all(half, "GET /hel", 8);
	/* Make sure the server holds both before stopping: /conns counts
	 * them and itself. */
	for (int i = 0; i < 2000; i++) {
		struct resp r;
		get("GET /conns HTTP/1.1\r\n\r\n", &r);
		unsigned n = (unsigned)strtoul(r.body, NULL, 10);
		cm_buf_free(&r.raw);
		if (n >= 3)
			break;
		usleep(1000);
	}
	want_stop = true;
	cr_assert_eq(recv(idle, &c, 1, 0), 0);
	cr_assert_eq(recv(half, &c, 1, 0), 0);
	close(idle);
	close(half);
}
