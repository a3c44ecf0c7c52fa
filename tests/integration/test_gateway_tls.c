/* wss against the real gateway: our BoringSSL client on ECDSA and RSA
 * certificates, TLS 1.2 and 1.3, ALPN, session resumption (client side and
 * in /metrics), and `openssl s_client` as an independent TLS stack. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_client.h"
#include "cm_http.h"
#include "cm_ws.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(gateway_tls, .init = th_setup, .fini = th_teardown, .timeout = 60);

static struct th_ws *tls_open(const struct th_gw *gw, int version, SSL_SESSION *sess,
			      const char *target)
{
	struct th_ws_opts o = { .port = gw->tls_port, .target = target, .tls = true,
				.tls_version = version, .session = sess };
	struct th_ws *ws = th_ws_connect(&o);
	cr_assert(ws, "TLS connection (version %x) failed", version);
	cr_assert(ws->upgraded, "wss upgrade refused: %d %s", ws->status, ws->resp ? ws->resp : "");
	return ws;
}

/* A subscribe/publish/push round trip over two TLS connections. */
static void roundtrip(const struct th_gw *gw, int version, const char *stream)
{
	char t[128];
	snprintf(t, sizeof(t), "/ws?user=s&streams=%s", stream);
	struct th_ws *sub = tls_open(gw, version, NULL, t);
	struct th_ws *pub = tls_open(gw, version, NULL, "/ws?user=p");
	cr_assert_eq(sub->tls_version, version ? version : TLS1_3_VERSION);
	cr_assert_str_eq(sub->alpn, "http/1.1");
	cr_assert_eq(th_ws_subscribe(sub, "sync"), 0);
	/* a payload bigger than one TLS record */
	size_t n = 40000;
	char *big = malloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(th_ws_publish(pub, stream, big, n - (size_t)i), 0);
	for (int i = 0; i < 3; i++) {
		struct cm_smsg m;
		cr_assert_eq(th_ws_next_push(sub, &m, 5000), 1);
		cr_assert_str_eq(m.stream, stream);
		cr_assert_eq(m.offset, (uint64_t)i + 1);
		cr_assert_eq(m.data_len, n - (size_t)i);
		cr_assert(memcmp(m.data, big, m.data_len) == 0);
		cm_smsg_release(&m);
	}
	free(big);
	th_ws_send_close(sub, 1000, NULL);
	cr_assert_eq(th_ws_wait_close(sub, 5000), 1000);
	th_ws_free(sub);
	th_ws_free(pub);
}

Test(gateway_tls, ecdsa_tls12_and_tls13)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .tls_cert_kind = "ec" });
	roundtrip(&gw, TLS1_2_VERSION, "ec.12");
	roundtrip(&gw, TLS1_3_VERSION, "ec.13");
	roundtrip(&gw, 0, "ec.any");
	/* the plain listener still works beside it */
	struct th_ws *p = th_ws_open(gw.port, "/ws?user=plain");
	cr_assert_eq(th_ws_subscribe(p, "x"), 0);
	th_ws_free(p);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_tls, rsa_tls12_and_tls13)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .tls_cert_kind = "rsa" });
	roundtrip(&gw, TLS1_2_VERSION, "rsa.12");
	roundtrip(&gw, TLS1_3_VERSION, "rsa.13");
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

static double handshakes(const struct th_gw *gw, const char *kind)
{
	char *body, series[128];
	if (th_http_get(gw->admin_port, "/metrics", &body, NULL) != 200)
		return -1;
	snprintf(series, sizeof(series), "herald_gateway_tls_handshakes_total{kind=\"%s\"}", kind);
	double v = -1;
	th_metric(body, series, &v);
	free(body);
	return v;
}

static double resumed(const struct th_gw *gw)
{
	return handshakes(gw, "resumed");
}

Test(gateway_tls, session_resumption)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .tls_cert_kind = "ec" });
	cr_assert_eq(resumed(&gw), 0, "no resumed-handshake metric at 0 before any handshake");
	int versions[] = { TLS1_3_VERSION, TLS1_2_VERSION };
	double before = 0;
	for (int k = 0; k < 2; k++) {
		struct th_ws *a = tls_open(&gw, versions[k], NULL, "/ws?user=r");
		cr_assert(!a->session_reused);
		cr_assert_eq(th_ws_subscribe(a, "r"), 0); /* reads: the TLS 1.3 ticket arrives */
		SSL_SESSION *s = th_ws_take_session(a);
		cr_assert(s, "no session to resume");
		th_ws_free(a);
		struct th_ws *b = tls_open(&gw, versions[k], s, "/ws?user=r");
		cr_assert(b->session_reused, "TLS %x: session not resumed", versions[k]);
		cr_assert_eq(th_ws_subscribe(b, "r"), 0);
		th_ws_free(b);
		SSL_SESSION_free(s);
		cr_assert(TH_WAIT(resumed(&gw) >= before + 1, 5000),
			  "resumed handshakes in /metrics: %g (was %g)", resumed(&gw), before);
		before = resumed(&gw);
	}
	cr_assert_eq(resumed(&gw), 2);
	cr_assert(TH_WAIT(handshakes(&gw, "full") == 2, 5000), "full handshakes: %g",
		  handshakes(&gw, "full"));
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_tls, garbage_instead_of_client_hello_is_dropped)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .tls_cert_kind = "ec" });
	struct th_ws_opts o = { .port = gw.tls_port };
	struct th_ws *ws = th_ws_dial(&o);
	cr_assert(ws);
	th_ws_send_raw(ws, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 29);
	cr_assert(th_ws_wait_eof(ws, 5000), "plain HTTP on the TLS port was not dropped");
	th_ws_free(ws);
	/* and the listener still serves TLS */
	struct th_ws *ok = tls_open(&gw, 0, NULL, "/ws?user=a");
	th_ws_free(ok);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

/* Reads from fd until needle shows up in buf (or the deadline); returns the
 * bytes held. */
static size_t read_until(int fd, char *buf, size_t cap, size_t have, const char *needle,
			 size_t nlen, int timeout_ms)
{
	int64_t dl = th_now_ms() + timeout_ms;
	while (have < cap && !memmem(buf, have, needle, nlen)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = dl - th_now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t r = read(fd, buf + have, cap - have);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	return have;
}

static void s_client(const struct th_gw *gw, const char *version_flag)
{
	char connect[64];
	snprintf(connect, sizeof(connect), "127.0.0.1:%d", gw->tls_port);
	char *argv[] = { "openssl", "s_client", "-connect", connect, "-servername", "localhost",
			 "-alpn", "http/1.1", (char *)version_flag, "-quiet", NULL };
	int in, out;
	struct th_proc *p = th_spawn_pipes("s_client", argv, &in, &out);
	const char *req = "GET /ws?user=ossl&streams=o.s HTTP/1.1\r\n"
			  "Host: localhost\r\n"
			  "Upgrade: websocket\r\n"
			  "Connection: Upgrade\r\n"
			  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 13\r\n\r\n";
	cr_assert_eq(write(in, req, strlen(req)), (ssize_t)strlen(req));
	char buf[8192];
	size_t n = read_until(out, buf, sizeof(buf), 0, "\r\n\r\n", 4, 10000);
	cr_assert(n >= 12 && memcmp(buf, "HTTP/1.1 101", 12) == 0, "s_client got: %.*s", (int)n,
		  buf);
	cr_assert(memmem(buf, n, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28), "%.*s", (int)n, buf);
	char *end = memmem(buf, n, "\r\n\r\n", 4);
	size_t rest = n - (size_t)(end + 4 - buf);
	memmove(buf, end + 4, rest);

	/* a masked ping through s_client's stdin comes back as a pong */
	const uint8_t ping[] = { 0x89, 0x84, 1, 2, 3, 4, 'p' ^ 1, 'i' ^ 2, 'n' ^ 3, 'g' ^ 4 };
	cr_assert_eq(write(in, ping, sizeof(ping)), (ssize_t)sizeof(ping));
	const uint8_t pong[] = { 0x8a, 0x04, 'p', 'i', 'n', 'g' };
	n = read_until(out, buf, sizeof(buf), rest, (const char *)pong, sizeof(pong), 10000);
	cr_assert(memmem(buf, n, pong, sizeof(pong)), "no pong through s_client");

	/* a push published by our own client reaches the s_client connection */
	struct th_ws *pub = th_ws_open(gw->port, "/ws?user=pub");
	cr_assert_eq(th_ws_publish(pub, "o.s", "via-openssl", 11), 0);
	n = read_until(out, buf, sizeof(buf), n, "via-openssl", 11, 10000);
	cr_assert(memmem(buf, n, "via-openssl", 11), "push not seen through s_client");
	th_ws_free(pub);

	/* a close frame: the gateway echoes 1000 and s_client sees the end */
	const uint8_t closef[] = { 0x88, 0x82, 9, 9, 9, 9, 0x03 ^ 9, 0xe8 ^ 9 };
	cr_assert_eq(write(in, closef, sizeof(closef)), (ssize_t)sizeof(closef));
	const uint8_t echo[] = { 0x88, 0x02, 0x03, 0xe8 };
	n = read_until(out, buf, sizeof(buf), n, (const char *)echo, sizeof(echo), 10000);
	cr_assert(memmem(buf, n, echo, sizeof(echo)), "close not echoed through s_client");
	close(in);
	close(out);
	/* s_client exits once the server closes */
	cr_assert(th_wait_exit(p, 10000) >= 0, "s_client still running after the close");
}

Test(gateway_tls, openssl_s_client_tls13_ecdsa)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .tls_cert_kind = "ec" });
	s_client(&gw, "-tls1_3");
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_tls, openssl_s_client_tls12_rsa)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .tls_cert_kind = "rsa" });
	s_client(&gw, "-tls1_2");
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

#define NTLS 300

Test(gateway_tls, hundreds_of_tls_clients_full_and_resumed)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){
				 .tls_cert_kind = "ec",
				 .extra = { "--cmd-rate", "100000", "--cmd-burst", "100000", NULL } });
	static struct th_ws *c[NTLS];
	SSL_SESSION *sess = NULL;
	int reused = 0;
	for (int i = 0; i < NTLS; i++) {
		/* every other client offers the session of the first */
		c[i] = tls_open(&gw, i % 3 == 0 ? TLS1_2_VERSION : 0, i % 2 ? sess : NULL,
				i % 4 == 3 ? "/ws?user=t&format=protobuf" : "/ws?user=t");
		reused += c[i]->session_reused;
		cr_assert_eq(th_ws_subscribe(c[i], i % 2 ? "tls.odd" : "tls.even"), 0);
		if (!sess && i == 0) /* TLS 1.2 session: available right after the handshake */
			sess = th_ws_take_session(c[0]);
	}
	cr_assert(sess);
	cr_assert(reused > 0, "no session resumed among %d offers", NTLS / 2);
	struct th_ws *pub = th_ws_open(gw.port, "/ws?user=pub");
	char payload[64];
	for (int m = 1; m <= 5; m++) {
		snprintf(payload, sizeof(payload), "even-%d", m);
		cr_assert_eq(th_ws_publish(pub, "tls.even", payload, strlen(payload)), 0);
		snprintf(payload, sizeof(payload), "odd-%d", m);
		cr_assert_eq(th_ws_publish(pub, "tls.odd", payload, strlen(payload)), 0);
	}
	for (int i = 0; i < NTLS; i++)
		for (int m = 1; m <= 5; m++) {
			struct cm_smsg msg;
			cr_assert_eq(th_ws_next_push(c[i], &msg, 10000), 1, "client %d push %d", i, m);
			snprintf(payload, sizeof(payload), "%s-%d", i % 2 ? "odd" : "even", m);
			cr_assert_eq(msg.offset, (uint64_t)m);
			cr_assert_eq(msg.data_len, strlen(payload));
			cr_assert(memcmp(msg.data, payload, msg.data_len) == 0);
			cm_smsg_release(&msg);
		}
	cr_assert(TH_WAIT(handshakes(&gw, "resumed") == reused, 5000), "resumed %g, clients saw %d",
		  handshakes(&gw, "resumed"), reused);
	cr_assert(TH_WAIT(handshakes(&gw, "full") == NTLS - reused, 5000), "full %g, want %d",
		  handshakes(&gw, "full"), NTLS - reused);
	SSL_SESSION_free(sess);
	for (int i = 0; i < NTLS; i++)
		th_ws_free(c[i]);
	th_ws_free(pub);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_tls, tls_slow_consumer_is_closed_and_others_keep_receiving)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){
				 .tls_cert_kind = "ec",
				 .extra = { "--max-queued-bytes", "262144", "--cmd-rate", "100000",
					    "--cmd-burst", "100000", NULL } });
	struct th_ws_opts so = { .port = gw.tls_port, .target = "/ws?user=slow", .tls = true,
				 .rcvbuf = 4096 };
	struct th_ws *slow = th_ws_connect(&so);
	cr_assert(slow && slow->upgraded);
	cr_assert_eq(th_ws_subscribe(slow, "flood"), 0);
	struct th_ws *fast = tls_open(&gw, 0, NULL, "/ws?user=fast&streams=flood");
	cr_assert_eq(th_ws_subscribe(fast, "sync"), 0);
	struct th_ws *pub = th_ws_open(gw.port, "/ws?user=pub");
	const size_t size = 32 * 1024;
	char *big = malloc(size);
	for (int i = 0; i < 300; i++) {
		memset(big, 'a' + i % 26, size);
		cr_assert_eq(th_ws_publish(pub, "flood", big, size), 0);
		struct cm_smsg m;
		cr_assert_eq(th_ws_next_push(fast, &m, 10000), 1, "fast TLS subscriber: push %d", i);
		cr_assert_eq(m.offset, (uint64_t)i + 1);
		cr_assert(m.data_len == size && memcmp(m.data, big, size) == 0);
		cm_smsg_release(&m);
	}
	free(big);
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_slow_consumer_closes_total", NULL) == 1,
			  10000),
		  "TLS slow consumer not closed");
	th_ws_free(slow);
	th_ws_free(fast);
	th_ws_free(pub);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_tls, handshake_timeout_on_the_tls_port)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .tls_cert_kind = "ec",
					       .extra = { "--handshake-timeout", "300ms", NULL } });
	/* TCP only, no ClientHello */
	struct th_ws_opts o = { .port = gw.tls_port };
	struct th_ws *ws = th_ws_dial(&o);
	cr_assert(ws);
	cr_assert(th_ws_wait_eof(ws, 10000), "silent TLS connection outlived the handshake timeout");
	th_ws_free(ws);
	/* TLS done, but no HTTP request */
	struct th_ws_opts t = { .port = gw.tls_port, .tls = true };
	ws = th_ws_dial(&t);
	cr_assert(ws);
	cr_assert(th_ws_wait_eof(ws, 10000), "TLS connection without a request was kept");
	th_ws_free(ws);
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_connections_closed_total",
				       "handshake_timeout") == 2, 5000));
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}
