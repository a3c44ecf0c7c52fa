/* The gateway's HTTP side against the real binary: upgrade refusals of the
 * contract, JWT, a request split at every byte, capacity (503), the
 * handshake timeout, and the admin endpoints. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cm_http.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(gateway_http, .init = th_setup, .fini = th_teardown, .timeout = 60);

static int upgrade_status(const struct th_gw *gw, const char *target)
{
	struct th_ws_opts o = { .port = gw->port, .target = target };
	struct th_ws *ws = th_ws_connect(&o);
	cr_assert(ws, "connection to the gateway failed");
	int st = ws->status;
	if (st == 101)
		cr_assert(ws->upgraded, "101 without a valid Sec-WebSocket-Accept");
	th_ws_free(ws);
	return st;
}

static int raw_status(const struct th_gw *gw, const char *req, char **resp)
{
	return th_http_raw(gw->port, req, strlen(req), resp);
}

Test(gateway_http, refuses_other_paths_with_404)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ 0 });
	cr_assert_eq(upgrade_status(&gw, "/ws?user=a"), 101);
	cr_assert_eq(upgrade_status(&gw, "/ws/"), 404);
	cr_assert_eq(upgrade_status(&gw, "/ws/?user=a"), 404);
	cr_assert_eq(upgrade_status(&gw, "/x"), 404);
	cr_assert_eq(upgrade_status(&gw, "/"), 404);
	cr_assert_eq(upgrade_status(&gw, "/wss"), 404);
	cr_assert_eq(th_gw_metric(&gw, "herald_gateway_http_refusals_total", "\"404\""), 5);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, refuses_other_versions_with_426_naming_13)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ 0 });
	struct th_ws_opts o = { .port = gw.port, .target = "/ws?user=a", .ws_version = "8" };
	struct th_ws *ws = th_ws_connect(&o);
	cr_assert(ws);
	cr_assert_eq(ws->status, 426);
	struct cm_http_resp r;
	memset(&r, 0, sizeof(r));
	cr_assert(cm_http_parse_response(ws->resp, strlen(ws->resp), &r) > 0);
	cr_assert(cm_str_eq(r.ws_version, "13"), "426 without Sec-WebSocket-Version: 13: %s",
		  ws->resp);
	th_ws_free(ws);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, refuses_malformed_requests_with_400)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ 0 });
	/* not HTTP at all */
	cr_assert_eq(raw_status(&gw, "HELLO THERE\r\n\r\n", NULL), 400);
	/* an upgrade without Sec-WebSocket-Key */
	cr_assert_eq(raw_status(&gw,
				"GET /ws?user=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
				"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
				NULL),
		     400);
	/* a plain GET of /ws, no upgrade */
	int st = raw_status(&gw, "GET /ws?user=a HTTP/1.1\r\nHost: x\r\n\r\n", NULL);
	cr_assert(st == 400 || st == 426, "plain GET /ws answered %d", st);
	/* invalid stream name at connect */
	cr_assert_eq(upgrade_status(&gw, "/ws?user=a&streams=ok,bad%20name"), 400);
	/* a NUL in the list is refused, not taken as its end */
	cr_assert_eq(upgrade_status(&gw, "/ws?user=a&streams=ok%00,bad%20name"), 400);
	cr_assert_eq(upgrade_status(&gw, "/ws?user=a&streams=ok%00x"), 400);
	cr_assert_eq(upgrade_status(&gw, "/ws?user=a%00b"), 400);
	/* a reserved stream at connect: refused (400 or 403), never upgraded */
	st = upgrade_status(&gw, "/ws?user=a&streams=user:b");
	cr_assert(st == 400 || st == 403, "streams=user:b answered %d", st);
	/* unknown format */
	cr_assert_eq(upgrade_status(&gw, "/ws?user=a&format=xml"), 400);
	/* and the gateway is still fine */
	cr_assert_eq(upgrade_status(&gw, "/ws?user=a&streams=ok,x.y_z-1:2"), 101);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, upgrade_sent_one_byte_at_a_time)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ 0 });
	/* RFC 6455's own example key and accept */
	const char *req = "GET /ws?user=bytewise&streams=s1 HTTP/1.1\r\n"
			  "Host: 127.0.0.1\r\n"
			  "Upgrade: websocket\r\n"
			  "Connection: keep-alive, Upgrade\r\n"
			  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 13\r\n"
			  "\r\n";
	struct th_ws_opts o = { .port = gw.port };
	struct th_ws *ws = th_ws_dial(&o);
	cr_assert(ws);
	for (size_t i = 0; req[i]; i++) {
		cr_assert_eq(th_ws_send_raw(ws, req + i, 1), 0);
		th_sleep_ms(1); /* let each byte travel as its own segment */
	}
	cr_assert_eq(th_ws_read_http(ws, 5000), 101, "response: %s", ws->resp ? ws->resp : "");
	cr_assert(strstr(ws->resp, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "wrong accept: %s", ws->resp);
	/* the connection works: subscribed at connect, a subscribe round-trips */
	ws->fmt = CM_FMT_JSON;
	cr_assert_eq(th_ws_subscribe(ws, "s2"), 0);
	th_ws_free(ws);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, jwt_missing_bad_expired_and_good)
{
	const char *secret = "s3cret-for-tests";
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .auth = "jwt", .jwt_secret = secret });
	char t[4096];
	int64_t now = time(NULL);

	cr_assert_eq(upgrade_status(&gw, "/ws"), 401, "no token");
	cr_assert_eq(upgrade_status(&gw, "/ws?user=alice"), 401, "user= is for --auth none");
	cr_assert_eq(upgrade_status(&gw, "/ws?token="), 401, "empty token");
	cr_assert_eq(upgrade_status(&gw, "/ws?token=abc.def.ghi"), 401, "garbage token");

	snprintf(t, sizeof(t), "/ws?token=%s", th_jwt("alice", now + 300, "other-secret"));
	cr_assert_eq(upgrade_status(&gw, t), 401, "bad signature");

	snprintf(t, sizeof(t), "/ws?token=%s", th_jwt("alice", now - 3600, secret));
	cr_assert_eq(upgrade_status(&gw, t), 401, "expired");

	snprintf(t, sizeof(t), "/ws?token=%s", th_jwt("alice", now + 300, secret));
	cr_assert_eq(upgrade_status(&gw, t), 101, "valid token");
	/* tampered: flip one character of the signature */
	size_t l = strlen(t);
	t[l - 2] = t[l - 2] == 'A' ? 'B' : 'A';
	cr_assert_eq(upgrade_status(&gw, t), 401, "tampered signature");

	/* within the 30 s leeway */
	snprintf(t, sizeof(t), "/ws?token=%s", th_jwt("alice", now - 5, secret));
	cr_assert_eq(upgrade_status(&gw, t), 101, "expired 5 s ago is within the leeway");
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, secret_file_trailing_newline_is_ignored)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .auth = "jwt", .jwt_secret = "abc\n" });
	char t[4096];
	snprintf(t, sizeof(t), "/ws?token=%s", th_jwt("bob", time(NULL) + 300, "abc"));
	cr_assert_eq(upgrade_status(&gw, t), 101);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

static double ccu(const struct th_gw *gw)
{
	return th_gw_metric(gw, "herald_gateway_ccu", NULL);
}

Test(gateway_http, max_conns_answers_503_and_frees_slots)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .extra = { "--max-conns", "3", NULL } });
	struct th_ws *c[3];
	for (int i = 0; i < 3; i++)
		c[i] = th_ws_open(gw.port, "/ws?user=cap");
	cr_assert(TH_WAIT(ccu(&gw) == 3, 5000), "ccu %g", ccu(&gw));
	cr_assert_eq(upgrade_status(&gw, "/ws?user=cap"), 503);
	cr_assert_eq(upgrade_status(&gw, "/ws?user=cap"), 503);
	/* a slot frees when a client leaves */
	th_ws_send_close(c[0], 1000, NULL);
	cr_assert_eq(th_ws_wait_close(c[0], 5000), 1000);
	th_ws_free(c[0]);
	cr_assert(TH_WAIT(ccu(&gw) == 2, 5000), "ccu %g", ccu(&gw));
	c[0] = th_ws_open(gw.port, "/ws?user=cap");
	cr_assert_eq(th_ws_subscribe(c[0], "s"), 0);
	for (int i = 0; i < 3; i++)
		th_ws_free(c[i]);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, handshake_timeout_closes_silent_connections)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .extra = { "--handshake-timeout", "300ms", NULL } });
	struct th_ws_opts o = { .port = gw.port };
	struct th_ws *ws = th_ws_dial(&o);
	cr_assert(ws);
	cr_assert_eq(th_ws_send_raw(ws, "GET /ws HTTP/1.1\r\nHost: x\r\n", 28), 0);
	/* the gateway ends it (perhaps with a 408); no upgrade ever comes */
	int st = th_ws_read_http(ws, 10000);
	cr_assert(st != 101);
	cr_assert(ws->eof, "connection still open 10 s after a 300 ms handshake timeout");
	th_ws_free(ws);
	/* an idle TCP connection that sends nothing goes too */
	ws = th_ws_dial(&o);
	cr_assert(th_ws_wait_eof(ws, 10000));
	th_ws_free(ws);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, admin_endpoints_and_ccu)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ 0 });
	cr_assert_eq(th_http_get(gw.admin_port, "/healthz", NULL, NULL), 200);
	cr_assert_eq(th_http_get(gw.admin_port, "/readyz", NULL, NULL), 200);
	cr_assert_eq(th_http_get(gw.admin_port, "/nope", NULL, NULL), 404);
	char *body;
	cr_assert_eq(th_http_get(gw.admin_port, "/metrics", &body, NULL), 200);
	cr_assert(th_metric_sum(body, "herald_gateway_ccu", NULL) == 0,
		  "herald_gateway_ccu missing or not 0:\n%s", body);
	free(body);
	struct th_ws *c[5];
	for (int i = 0; i < 5; i++)
		c[i] = th_ws_open(gw.port, "/ws?user=m");
	cr_assert(TH_WAIT(ccu(&gw) == 5, 5000), "ccu %g", ccu(&gw));
	for (int i = 0; i < 2; i++)
		th_ws_free(c[i]); /* abrupt: FIN without a close frame */
	cr_assert(TH_WAIT(ccu(&gw) == 3, 5000), "ccu %g", ccu(&gw));
	for (int i = 2; i < 5; i++)
		th_ws_free(c[i]);
	cr_assert(TH_WAIT(ccu(&gw) == 0, 5000), "ccu %g", ccu(&gw));
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, bad_flag_exits_2)
{
	struct th_proc *p = th_spawnl("gateway-badflag", th_bin("herald-gateway"), "--no-such-flag",
				      NULL);
	cr_assert_eq(th_wait_exit(p, 10000), 2);
	struct th_proc *h = th_spawnl("gateway-help", th_bin("herald-gateway"), "--help", NULL);
	cr_assert_eq(th_wait_exit(h, 10000), 0);
	cr_assert(th_log_contains(h, "--listen"));
}

Test(gateway_http, token_expiry_closes_with_1008)
{
	const char *secret = "expiry";
	struct th_gw gw;
	/* the gateway checks expiry when a connection's timer fires (ping, idle,
	 * at most 30 s): a short ping interval keeps this test short */
	th_gw_start(&gw, &(struct th_gw_opts){ .auth = "jwt", .jwt_secret = secret,
					       .extra = { "--ping-interval", "500ms", NULL } });
	char t[4096];
	/* expired 28 s ago: accepted within the 30 s leeway, for about 2 s more */
	snprintf(t, sizeof(t), "/ws?token=%s", th_jwt("short", time(NULL) - 28, secret));
	struct th_ws *ws = th_ws_open(gw.port, t);
	snprintf(t, sizeof(t), "/ws?token=%s", th_jwt("long", time(NULL) + 3600, secret));
	struct th_ws *keep = th_ws_open(gw.port, t);
	cr_assert_eq(th_ws_wait_close(ws, 15000), 1008, "no 1008 once the token expired");
	th_ws_free(ws);
	cr_assert_eq(th_ws_subscribe(keep, "still"), 0, "a valid token's connection was closed");
	th_ws_free(keep);
	cr_assert_eq(th_gw_metric(&gw, "herald_gateway_connections_closed_total", "token_expired"), 1);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, oversized_heads_are_refused)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ 0 });
	/* 100 headers, and a 10 KB header: both beyond the parser's limits */
	size_t cap = 64 * 1024, n = 0;
	char *req = malloc(cap);
	n += (size_t)snprintf(req + n, cap - n, "GET /ws?user=a HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(req + n, cap - n, "X-H%d: v\r\n", i);
	n += (size_t)snprintf(req + n, cap - n, "\r\n");
	int st = th_http_raw(gw.port, req, n, NULL);
	cr_assert(st == 400 || st == 431, "100 headers: %d", st);
	n = (size_t)snprintf(req, cap, "GET /ws?user=a HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + n, 'b', 10000);
	n += 10000;
	n += (size_t)snprintf(req + n, cap - n, "\r\n\r\n");
	st = th_http_raw(gw.port, req, n, NULL);
	cr_assert(st == 400 || st == 431, "10 KB head: %d", st);
	free(req);
	cr_assert_eq(upgrade_status(&gw, "/ws?user=a"), 101);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_http, two_gateways_share_a_port)
{
	struct th_gw a, b;
	th_gw_start(&a, &(struct th_gw_opts){ .id = "gw-a" });
	th_gw_start(&b, &(struct th_gw_opts){ .id = "gw-b", .port = a.port });
	cr_assert_eq(b.port, a.port);
	struct th_ws *c[24];
	for (int i = 0; i < 24; i++)
		c[i] = th_ws_open(a.port, "/ws?user=share");
	double ca = 0, cb = 0;
	cr_assert(TH_WAIT((ca = ccu(&a), cb = ccu(&b), ca + cb == 24), 5000), "ccu %g + %g", ca, cb);
	cr_assert(ca > 0 && cb > 0, "SO_REUSEPORT: all 24 connections on one gateway (%g/%g)", ca,
		  cb);
	for (int i = 0; i < 24; i++)
		th_ws_free(c[i]);
	cr_assert_eq(th_gw_stop(&a, 10000), 0);
	cr_assert_eq(th_gw_stop(&b, 10000), 0);
}
