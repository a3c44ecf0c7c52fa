/* The integration harness itself: process control, Redis helpers, metrics
 * parsing. If these break, every other integration test lies. */
#include <criterion/criterion.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"
#include "cm_jwt.h"
#include "cm_ws.h"

TestSuite(harness, .init = th_setup, .fini = th_teardown, .timeout = 60);

Test(harness, free_port_is_bindable_and_wait_port_times_out_on_it)
{
	int port = th_free_port();
	cr_assert(port > 0 && port < 65536);
	cr_assert_eq(th_wait_port(port, 100), -ETIMEDOUT);
}

Test(harness, spawn_stop_and_exit_codes)
{
	struct th_proc *p = th_spawnl("sleeper", "/bin/sleep", "30", NULL);
	cr_assert(th_alive(p));
	cr_assert_eq(th_wait_exit(p, 50), -1, "sleep exited early");
	cr_assert_eq(th_stop(p, 2000), 128 + SIGTERM);
	cr_assert(!th_alive(p));

	struct th_proc *q = th_spawnl("sh", "/bin/sh", "-c", "echo hello-log; exit 3", NULL);
	cr_assert_eq(th_wait_exit(q, 5000), 3);
	cr_assert(th_log_contains(q, "hello-log"));

	/* restart runs the same argv again */
	th_restart(q);
	cr_assert_eq(th_wait_exit(q, 5000), 3);

	struct th_proc *r = th_spawnl("sleeper2", "/bin/sleep", "30", NULL);
	th_kill9(r);
	cr_assert(!th_alive(r));
}

Test(harness, stop_escalates_to_sigkill)
{
	struct th_proc *p = th_spawnl("stubborn", "/bin/sh", "-c",
				      "trap '' TERM; echo ready; while :; do sleep 0.05; done", NULL);
	cr_assert(TH_WAIT(th_log_contains(p, "ready"), 5000));
	cr_assert_eq(th_stop(p, 200), 128 + SIGKILL);
}

Test(harness, env_is_passed)
{
	char *argv[] = { "/bin/sh", "-c", "echo \"v=$TH_TEST_VAR\"", NULL };
	char *env[] = { "TH_TEST_VAR=42", NULL };
	struct th_proc *p = th_spawn("envtest", argv, env);
	cr_assert_eq(th_wait_exit(p, 5000), 0);
	cr_assert(th_log_contains(p, "v=42"));
}

Test(harness, redis_publish_and_hgetall)
{
	struct th_proc *r = th_redis_start();
	redisReply *rep = th_redis_cmd(r->port, "HSET %s %s %s %s %s", "herald:ccu", "gw1", "5",
				       "gw2", "7");
	cr_assert(rep && rep->type == REDIS_REPLY_INTEGER);
	freeReplyObject(rep);
	char *f[4], *v[4];
	int n = th_redis_hgetall(r->port, "herald:ccu", f, v, 4);
	cr_assert_eq(n, 2);
	long long sum = atoll(v[0]) + atoll(v[1]);
	cr_assert_eq(sum, 12);
	th_strv_free(f, n);
	th_strv_free(v, n);
	long long x;
	cr_assert(th_redis_hget_ll(r->port, "herald:ccu", "gw2", &x));
	cr_assert_eq(x, 7);
	cr_assert(!th_redis_hget_ll(r->port, "herald:ccu", "nope", &x));
	cr_assert_eq(th_redis_publish(r->port, "herald:all", "x\0y", 3), 0);
	cr_assert_eq(th_stop(r, 5000), 0);
}

Test(harness, metrics_parsing)
{
	const char *text = "# HELP herald_gateway_ccu ccu\n"
			   "# TYPE herald_gateway_ccu gauge\n"
			   "herald_gateway_ccu 3\n"
			   "herald_closed_total{reason=\"slow\"} 2\n"
			   "herald_closed_total{reason=\"normal\"} 5\n"
			   "herald_cluster_ccu{gateway=\"a\"} 1.5e3\n";
	double v;
	cr_assert(th_metric(text, "herald_gateway_ccu", &v));
	cr_assert_float_eq(v, 3, 1e-9);
	cr_assert(th_metric(text, "herald_closed_total{reason=\"slow\"}", &v));
	cr_assert_float_eq(v, 2, 1e-9);
	cr_assert(!th_metric(text, "herald_closed_total", &v));
	cr_assert_float_eq(th_metric_sum(text, "herald_closed_total", NULL), 7, 1e-9);
	cr_assert_float_eq(th_metric_sum(text, "herald_closed_total", "slow"), 2, 1e-9);
	cr_assert_float_eq(th_metric_sum(text, "herald_cluster_ccu", NULL), 1500, 1e-9);
	cr_assert_float_eq(th_metric_sum(text, "herald_missing", NULL), -1, 1e-9);
}

Test(harness, certs_are_generated)
{
	const char *c, *k;
	th_make_cert("ec", &c, &k);
	char *argv[] = { "openssl", "x509", "-in", (char *)c, "-noout", "-text", NULL };
	cr_assert_eq(th_run("x509-ec", argv, 10000), 0);
	th_make_cert("rsa", &c, &k);
	char *argv2[] = { "openssl", "x509", "-in", (char *)c, "-noout", "-text", NULL };
	cr_assert_eq(th_run("x509-rsa", argv2, 10000), 0);
}

Test(harness, http_get_against_a_tiny_server)
{
	int port = th_free_port();
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct th_proc *p = th_spawnl("pyhttp", "/usr/bin/python3", "-m", "http.server", "--bind",
				      "127.0.0.1", "--directory", th_tmpdir(), ps, NULL);
	th_write_file("hello.txt", "hi there\n", 9);
	cr_assert_eq(th_wait_http_200(port, "/hello.txt", 10000), 0);
	char *body;
	size_t len;
	cr_assert_eq(th_http_get(port, "/hello.txt", &body, &len), 200);
	cr_assert_str_eq(body, "hi there\n");
	cr_assert_eq(len, 9);
	free(body);
	cr_assert_eq(th_http_get(port, "/missing", NULL, NULL), 404);
	th_stop(p, 3000);
}

/* --- th_ws against an independent server (Python, OpenSSL) --- */

static int start_fake(bool tls)
{
	int port = th_free_port();
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	if (tls) {
		const char *c, *k;
		th_make_cert("ec", &c, &k);
		th_spawnl("fake_ws", "/usr/bin/python3", "tests/integration/lib/fake_ws.py", ps, c, k,
			  NULL);
	} else {
		th_spawnl("fake_ws", "/usr/bin/python3", "tests/integration/lib/fake_ws.py", ps, NULL);
	}
	cr_assert_eq(th_wait_port(port, 10000), 0);
	return port;
}

static void echo_checks(struct th_ws *ws)
{
	struct th_ws_msg m;
	cr_assert_eq(th_ws_send_text(ws, "hello"), 0);
	cr_assert_eq(th_ws_read(ws, &m, 5000), 1);
	cr_assert_eq(m.opcode, CM_WS_TEXT);
	cr_assert_eq(m.len, 5);
	cr_assert_str_eq((char *)m.data, "hello");
	th_ws_msg_free(&m);

	/* fragmented with an interleaved ping: the ping comes first, then "abcdef" */
	cr_assert_eq(th_ws_send_text(ws, "frag"), 0);
	cr_assert_eq(th_ws_read(ws, &m, 5000), 1);
	cr_assert_eq(m.opcode, CM_WS_PING);
	th_ws_msg_free(&m);
	cr_assert_eq(th_ws_read(ws, &m, 5000), 1);
	cr_assert_eq(m.opcode, CM_WS_TEXT);
	cr_assert_str_eq((char *)m.data, "abcdef");
	th_ws_msg_free(&m);

	/* 256 KiB binary, 64-bit length */
	cr_assert_eq(th_ws_send_text(ws, "big"), 0);
	cr_assert_eq(th_ws_next_data(ws, &m, 5000), 1);
	cr_assert_eq(m.opcode, CM_WS_BINARY);
	cr_assert_eq(m.len, 256 * 1024);
	for (size_t i = 0; i < m.len; i++)
		cr_assert_eq(m.data[i], (uint8_t)i);
	th_ws_msg_free(&m);

	/* a big masked client frame (16-bit length) round-trips */
	char buf[3000];
	memset(buf, 'x', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = 0;
	cr_assert_eq(th_ws_send_text(ws, buf), 0);
	cr_assert_eq(th_ws_next_data(ws, &m, 5000), 1);
	cr_assert_eq(m.len, sizeof(buf) - 1);
	th_ws_msg_free(&m);

	cr_assert_eq(th_ws_send_frame(ws, CM_WS_PING, true, "pp", 2), 0);
	cr_assert_eq(th_ws_read(ws, &m, 5000), 1);
	cr_assert_eq(m.opcode, CM_WS_PONG);
	cr_assert_str_eq((char *)m.data, "pp");
	th_ws_msg_free(&m);

	cr_assert_eq(th_ws_send_text(ws, "close4000"), 0);
	cr_assert_eq(th_ws_wait_close(ws, 5000), 4000);
	cr_assert_str_eq(ws->close_reason, "bye");
	cr_assert(th_ws_wait_eof(ws, 5000));
}

Test(harness, ws_client_plain)
{
	int port = start_fake(false);
	struct th_ws *ws = th_ws_open(port, "/ws?user=a");
	echo_checks(ws);
	th_ws_free(ws);

	struct th_ws_opts o = { .port = port, .target = "/refuse" };
	ws = th_ws_connect(&o);
	cr_assert(ws);
	cr_assert_eq(ws->status, 403);
	cr_assert(!ws->upgraded);
	cr_assert(strstr(ws->resp, "nope"));
	th_ws_free(ws);

	/* the client notices a masked server frame */
	ws = th_ws_open(port, "/ws");
	th_ws_send_text(ws, "masked");
	struct th_ws_msg m;
	cr_assert_eq(th_ws_read(ws, &m, 5000), -1);
	th_ws_free(ws);
}

Test(harness, ws_client_tls_and_resumption)
{
	int port = start_fake(true);
	for (int v = 0; v < 2; v++) {
		int ver = v ? TLS1_3_VERSION : TLS1_2_VERSION;
		struct th_ws_opts o = { .port = port, .target = "/ws", .tls = true, .tls_version = ver };
		struct th_ws *ws = th_ws_connect(&o);
		cr_assert(ws && ws->upgraded);
		cr_assert_eq(ws->tls_version, ver);
		cr_assert_str_eq(ws->alpn, "http/1.1");
		cr_assert(!ws->session_reused);
		echo_checks(ws);
		SSL_SESSION *s = th_ws_take_session(ws);
		cr_assert(s, "no session");
		th_ws_free(ws);
		o.session = s;
		ws = th_ws_connect(&o);
		cr_assert(ws && ws->upgraded);
		cr_assert(ws->session_reused, "TLS %x session not resumed", ver);
		SSL_SESSION_free(s);
		th_ws_free(ws);
	}
}

Test(harness, jwt_helper_signs_verifiable_tokens)
{
	const char *t = th_jwt("alice", 4000000000LL, "k");
	char sub[64];
	int64_t exp;
	cr_assert_eq(cm_jwt_verify(t, strlen(t), (const uint8_t *)"k", 1, 1000, sub, sizeof(sub), &exp),
		     CM_JWT_OK);
	cr_assert_str_eq(sub, "alice");
	cr_assert_eq(exp, 4000000000LL);
}
