/* Session resumption across gateways: with the same --tls-ticket-key-file
 * two gateways resume each other's sessions; with different files, or none
 * (random keys per process), only the issuing gateway does; a ticket from
 * period p still resumes in p+1 and no longer in p+3 (--tls-ticket-period). */
#include <criterion/criterion.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(gateway_tls_tickets, .init = th_setup, .fini = th_teardown, .timeout = 60);

static char *key_file(const char *name, const char *secret)
{
	return strdup(th_write_file(name, secret, strlen(secret)));
}

/* Starts a TLS gateway, with a ticket key file and a period when given. */
static void start(struct th_gw *gw, const char *file, const char *period)
{
	struct th_gw_opts o = { .tls_cert_kind = "ec", .threads = 1 };
	int n = 0;
	if (file) {
		o.extra[n++] = "--tls-ticket-key-file";
		o.extra[n++] = file;
	}
	if (period) {
		o.extra[n++] = "--tls-ticket-period";
		o.extra[n++] = period;
	}
	th_gw_start(gw, &o);
}

/* A full handshake on gw; returns its session (a ticket). */
static SSL_SESSION *take(const struct th_gw *gw, int version)
{
	struct th_ws_opts o = { .port = gw->tls_port, .target = "/ws?user=t", .tls = true,
				.tls_version = version };
	struct th_ws *ws = th_ws_connect(&o);
	cr_assert(ws && ws->upgraded, "wss upgrade failed");
	cr_assert(!ws->session_reused);
	cr_assert_eq(th_ws_subscribe(ws, "t"), 0); /* reads: the TLS 1.3 ticket arrives */
	SSL_SESSION *s = th_ws_take_session(ws);
	cr_assert(s, "no session to resume");
	th_ws_free(ws);
	return s;
}

/* Offers s to gw: true when the session was resumed. */
static bool resumes(const struct th_gw *gw, int version, SSL_SESSION *s)
{
	struct th_ws_opts o = { .port = gw->tls_port, .target = "/ws?user=t", .tls = true,
				.tls_version = version, .session = s };
	struct th_ws *ws = th_ws_connect(&o);
	cr_assert(ws && ws->upgraded, "wss upgrade failed (resumption offered)");
	cr_assert_eq(th_ws_subscribe(ws, "t"), 0);
	bool r = ws->session_reused;
	th_ws_free(ws);
	return r;
}

static const int versions[] = { TLS1_3_VERSION, TLS1_2_VERSION };

Test(gateway_tls_tickets, same_key_file_resumes_across_gateways)
{
	char *f = key_file("tk-shared", "0123456789abcdef0123456789abcdef-cluster\n");
	struct th_gw a, b;
	start(&a, f, NULL);
	start(&b, f, NULL);
	for (int k = 0; k < 2; k++) {
		SSL_SESSION *s = take(&a, versions[k]);
		cr_assert(resumes(&b, versions[k], s), "TLS %x: A's session not resumed on B",
			  versions[k]);
		cr_assert(resumes(&a, versions[k], s), "TLS %x: not resumed on A", versions[k]);
		SSL_SESSION_free(s);
		s = take(&b, versions[k]);
		cr_assert(resumes(&a, versions[k], s), "TLS %x: B's session not resumed on A",
			  versions[k]);
		SSL_SESSION_free(s);
	}
	cr_assert_eq(th_gw_stop(&a, 10000), 0);
	cr_assert_eq(th_gw_stop(&b, 10000), 0);
	free(f);
}

Test(gateway_tls_tickets, different_key_files_do_not_resume)
{
	char *f1 = key_file("tk-1", "11111111111111111111111111111111");
	char *f2 = key_file("tk-2", "22222222222222222222222222222222");
	struct th_gw a, b;
	start(&a, f1, NULL);
	start(&b, f2, NULL);
	for (int k = 0; k < 2; k++) {
		SSL_SESSION *s = take(&a, versions[k]);
		cr_assert(!resumes(&b, versions[k], s), "TLS %x: resumed with another key file",
			  versions[k]);
		cr_assert(resumes(&a, versions[k], s), "TLS %x: not resumed on A", versions[k]);
		SSL_SESSION_free(s);
	}
	cr_assert_eq(th_gw_stop(&a, 10000), 0);
	cr_assert_eq(th_gw_stop(&b, 10000), 0);
	free(f1);
	free(f2);
}

Test(gateway_tls_tickets, without_key_file_only_the_same_gateway_resumes)
{
	struct th_gw a, b;
	start(&a, NULL, NULL);
	start(&b, NULL, NULL);
	for (int k = 0; k < 2; k++) {
		SSL_SESSION *s = take(&a, versions[k]);
		cr_assert(!resumes(&b, versions[k], s), "TLS %x: random keys shared?", versions[k]);
		cr_assert(resumes(&a, versions[k], s), "TLS %x: not resumed on A", versions[k]);
		SSL_SESSION_free(s);
	}
	cr_assert_eq(th_gw_stop(&a, 10000), 0);
	cr_assert_eq(th_gw_stop(&b, 10000), 0);
}

Test(gateway_tls_tickets, short_key_file_is_refused)
{
	char *f = key_file("tk-short", "too short\n");
	char *argv[] = { (char *)th_bin("herald-gateway"), "--auth", "none", "--redis", "none",
			 "--admin", "none", "--listen", "127.0.0.1:0",
			 "--tls-ticket-key-file", f, NULL };
	cr_assert_eq(th_run("gw-short", argv, 5000), 2, "a 9-byte ticket key file was accepted");
	free(f);
}

#define PERIOD_MS 2000

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps until wall-clock period p (of PERIOD_MS, as the gateway counts
 * them) started 100 ms ago and has at least 300 ms left, or a later period
 * if p is already too far along; returns the period entered. */
static int64_t enter_period(int64_t p)
{
	for (int i = 0; i < 100; i++) {
		int64_t now = wall_ms(), cur = now / PERIOD_MS, in = now % PERIOD_MS;
		if (cur > p || (cur == p && in > PERIOD_MS - 300)) {
			p = cur + 1;
			continue;
		}
		if (cur == p && in >= 100)
			return p;
		th_sleep_ms((int)(p * PERIOD_MS + 100 - now));
	}
	cr_assert_fail("could not reach period %lld", (long long)p);
	return p;
}

Test(gateway_tls_tickets, keys_rotate_per_period)
{
	char *f = key_file("tk-rot", "rotation-secret-rotation-secret-rotation");
	struct th_gw a, b;
	start(&a, f, "2s");
	start(&b, f, "2s");
	int64_t p = enter_period(wall_ms() / PERIOD_MS);
	SSL_SESSION *s = take(&a, TLS1_3_VERSION);
	if (wall_ms() / PERIOD_MS != p) { /* a slow handshake crossed a boundary: again */
		SSL_SESSION_free(s);
		p = enter_period(p + 1);
		s = take(&a, TLS1_3_VERSION);
		cr_assert_eq(wall_ms() / PERIOD_MS, p, "the handshake crossed a period boundary");
	}
	cr_assert_eq(enter_period(p + 1), p + 1);
	bool r1 = resumes(&b, TLS1_3_VERSION, s);
	cr_assert_eq(wall_ms() / PERIOD_MS, p + 1, "left period p+1 while resuming");
	cr_assert(r1, "a period-p ticket was not resumed in period p+1");
	cr_assert_eq(enter_period(p + 3), p + 3);
	bool r3 = resumes(&b, TLS1_3_VERSION, s);
	bool r3a = resumes(&a, TLS1_3_VERSION, s);
	cr_assert(!r3 && !r3a, "a period-p ticket still resumed in period p+3");
	SSL_SESSION_free(s);
	cr_assert_eq(th_gw_stop(&a, 10000), 0);
	cr_assert_eq(th_gw_stop(&b, 10000), 0);
	free(f);
}
