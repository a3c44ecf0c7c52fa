/* The gateway at its resource limits: a descriptor limit below --max-conns
 * (refusals are prompt 503s, not hangs, and capacity comes back when clients
 * leave; half-open connections past what the descriptors allow are ended,
 * not left in the backlog), and --sndbuf bounding what a client that never
 * reads can park in the kernel, so --max-queued-bytes cuts it off. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_client.h"
#include "cm_ws.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(gateway_limits, .init = th_setup, .fini = th_teardown, .timeout = 60);

#define NOFILE 256
#define MAXTRY 400

static double ccu(const struct th_gw *gw)
{
	return th_gw_metric(gw, "herald_gateway_ccu", NULL);
}

static struct th_ws *try_connect(int port, const char *user)
{
	char t[64];
	snprintf(t, sizeof(t), "/ws?user=%s", user);
	/* a short deadline: a connection left in the backlog shows as status 0 */
	struct th_ws_opts o = { .port = port, .target = t, .timeout_ms = 3000 };
	return th_ws_connect(&o);
}

Test(gateway_limits, descriptor_limit_clamps_max_conns_and_refuses_with_503)
{
	struct th_gw gw;
	/* the default --max-conns (100000) under a 256-descriptor limit */
	th_gw_start(&gw, &(struct th_gw_opts){ .nofile = NOFILE, .extra = { NULL } });
	cr_assert(th_log_contains(gw.proc, "lowered to"), "no warning about the descriptor limit");
	double maxc = th_gw_metric(&gw, "herald_gateway_max_conns", NULL);
	cr_assert(maxc > 0 && maxc < NOFILE, "effective max-conns %g", maxc);

	static struct th_ws *c[MAXTRY];
	int n = 0;
	struct th_ws *refused = NULL;
	char u[32];
	while (n < MAXTRY) {
		snprintf(u, sizeof(u), "u%d", n);
		struct th_ws *ws = try_connect(gw.port, u);
		cr_assert(ws, "connection %d failed at TCP level", n);
		if (!ws->upgraded) {
			refused = ws;
			break;
		}
		c[n++] = ws;
	}
	cr_assert(refused, "%d connections, none refused", n);
	cr_assert_eq(refused->status, 503, "connection %d: status %d (0: no answer) instead of 503",
		     n, refused->status);
	cr_assert_eq(n, (int)maxc, "%d upgraded, effective max-conns %g", n, maxc);
	th_ws_free(refused);
	/* more refusals stay prompt 503s */
	for (int i = 0; i < 20; i++) {
		struct th_ws *ws = try_connect(gw.port, "again");
		cr_assert(ws && !ws->upgraded && ws->status == 503, "refusal %d: status %d", i,
			  ws ? ws->status : -1);
		th_ws_free(ws);
	}
	cr_assert_geq(th_gw_metric(&gw, "herald_gateway_http_refusals_total", "503"), 21);

	/* clients leave: capacity comes back */
	for (int i = 0; i < 10; i++) {
		th_ws_free(c[--n]);
		c[n] = NULL;
	}
	cr_assert(TH_WAIT(ccu(&gw) == n, 5000), "ccu %g, want %d", ccu(&gw), n);
	for (int i = 0; i < 10; i++) {
		snprintf(u, sizeof(u), "back%d", i);
		struct th_ws *ws = try_connect(gw.port, u);
		cr_assert(ws && ws->upgraded, "reconnect %d after clients left: status %d", i,
			  ws ? ws->status : -1);
		c[n++] = ws;
	}
	/* and the connections held work */
	cr_assert_eq(th_ws_subscribe(c[n - 1], "x"), 0);
	for (int i = 0; i < n; i++)
		th_ws_free(c[i]);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

static int tcp_dial(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect");
	return fd;
}

/* true when the peer ended the stream within timeout_ms */
static bool ended(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b[256];
	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	return read(fd, b, sizeof(b)) <= 0;
}

Test(gateway_limits, half_open_connections_past_the_descriptors_are_ended_not_stalled)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .nofile = NOFILE, .extra = { NULL } });
	/* connections that never send a request hold descriptors until the
	 * handshake timeout; past what the descriptors allow, the gateway ends
	 * new ones at once */
	static int fds[MAXTRY];
	int n = 0, cut = -1;
	for (; n < MAXTRY; n++) {
		fds[n] = tcp_dial(gw.port);
		if (n >= NOFILE && cut < 0) {
			/* by now some must have been ended */
			for (int i = 0; i <= n && cut < 0; i++)
				if (fds[i] >= 0 && ended(fds[i], i == n ? 2000 : 0))
					cut = i;
		}
		if (cut >= 0)
			break;
	}
	cr_assert(cut >= 0, "%d half-open connections, none ended", n + 1);
	cr_assert(th_gw_metric(&gw, "herald_gateway_connections", NULL) < NOFILE);
	/* a WebSocket client now is ended or refused, but answered */
	for (int i = 0; i <= n; i++)
		close(fds[i]);
	/* descriptors free up: accepts resume */
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_connections", NULL) == 0, 5000));
	struct th_ws *ws = try_connect(gw.port, "after");
	cr_assert(ws && ws->upgraded, "connect after the half-open ones left: status %d",
		  ws ? ws->status : -1);
	cr_assert_eq(th_ws_subscribe(ws, "x"), 0);
	th_ws_free(ws);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

static double slow_closes(const struct th_gw *gw)
{
	return th_gw_metric(gw, "herald_gateway_slow_consumer_closes_total", NULL);
}

Test(gateway_limits, sndbuf_lets_max_queued_bytes_cut_off_a_client_that_never_reads)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){
				 .extra = { "--sndbuf", "16k", "--max-queued-bytes", "64k",
					    "--cmd-rate", "100000", "--cmd-burst", "100000", NULL } });
	cr_assert_eq(slow_closes(&gw), 0);
	/* the slow client keeps the default receive buffer: what stops it is the
	 * gateway's small send buffer */
	struct th_ws *slow = th_ws_open(gw.port, "/ws?user=slow");
	cr_assert_eq(th_ws_subscribe(slow, "flood"), 0);
	struct th_ws *fast = th_ws_open(gw.port, "/ws?user=fast");
	cr_assert_eq(th_ws_subscribe(fast, "flood"), 0);
	struct th_ws *pub = th_ws_open(gw.port, "/ws?user=pub");

	/* 2 MB in all: well past 64k queued + a 32k send buffer + the client's
	 * receive window, but below what send-buffer autotuning (up to 4 MB)
	 * would absorb without the gateway's queue growing */
	const size_t size = 16 * 1024;
	const int count = 128;
	th_ws_flood(pub, fast, "flood", size, count);
	cr_assert(TH_WAIT(slow_closes(&gw) >= 1, 5000), "slow-consumer closes: %g", slow_closes(&gw));
	cr_assert_eq(th_gw_metric(&gw, "herald_gateway_connections_closed_total", "slow_consumer"), 1);
	cr_assert(TH_WAIT(ccu(&gw) == 2, 5000), "ccu %g: the slow consumer is still counted",
		  ccu(&gw));
	th_ws_free(slow);
	cr_assert_eq(th_ws_publish(pub, "flood", "after", 5), 0);
	struct cm_smsg pm;
	cr_assert_eq(th_ws_next_push(fast, &pm, 5000), 1);
	cr_assert_eq(pm.offset, (uint64_t)count + 1);
	cm_smsg_release(&pm);
	th_ws_free(fast);
	th_ws_free(pub);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}
