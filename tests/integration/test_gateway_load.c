/* The gateway under load and at the end of its life: thousands of
 * subscribers each getting every message exactly once and in order, a slow
 * consumer cut off while the others keep receiving, and the SIGTERM drain. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_client.h"
#include "cm_ws.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(gateway_load, .init = th_setup, .fini = th_teardown, .timeout = 120);

#define NCLIENTS 3000
#define NSTREAMS 3
#define NMSG 10

static double ccu(const struct th_gw *gw)
{
	return th_gw_metric(gw, "herald_gateway_ccu", NULL);
}

Test(gateway_load, thousands_of_subscribers_get_every_message_once_in_order)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){
				 .threads = 2,
				 .extra = { "--cmd-rate", "100000", "--cmd-burst", "100000", NULL } });
	static struct th_ws *c[NCLIENTS];
	char t[128];
	for (int i = 0; i < NCLIENTS; i++) {
		/* a third in protobuf */
		snprintf(t, sizeof(t), "/ws?user=u%d%s", i, i % 3 == 2 ? "&format=protobuf" : "");
		struct th_ws_opts o = { .port = gw.port, .target = t };
		c[i] = th_ws_connect(&o);
		cr_assert(c[i] && c[i]->upgraded, "client %d: connect/upgrade failed (status %d)", i,
			  c[i] ? c[i]->status : 0);
	}
	/* pipelined subscribes: each client to one of NSTREAMS and to "all" */
	int64_t ids[NCLIENTS][2];
	char s[32];
	for (int i = 0; i < NCLIENTS; i++) {
		snprintf(s, sizeof(s), "load.%d", i % NSTREAMS);
		ids[i][0] = th_ws_send_command(c[i], CM_CMD_SUBSCRIBE, s, NULL, 0);
		ids[i][1] = th_ws_send_command(c[i], CM_CMD_SUBSCRIBE, "load.all", NULL, 0);
		cr_assert(ids[i][0] > 0 && ids[i][1] > 0);
	}
	for (int i = 0; i < NCLIENTS; i++)
		for (int k = 0; k < 2; k++)
			cr_assert_eq(th_ws_wait_reply(c[i], (uint64_t)ids[i][k], NULL, 10000), 0,
				     "client %d: subscribe %d not ok", i, k);
	struct th_ws *pub = th_ws_open(gw.port, "/ws?user=publisher");
	cr_assert(TH_WAIT(ccu(&gw) == NCLIENTS + 1, 10000), "ccu %g", ccu(&gw));

	char payload[64];
	for (int m = 1; m <= NMSG; m++) {
		for (int st = 0; st < NSTREAMS; st++) {
			snprintf(s, sizeof(s), "load.%d", st);
			snprintf(payload, sizeof(payload), "%s#%d", s, m);
			cr_assert_eq(th_ws_publish(pub, s, payload, strlen(payload)), 0);
		}
		snprintf(payload, sizeof(payload), "all#%d", m);
		cr_assert_eq(th_ws_publish(pub, "load.all", payload, strlen(payload)), 0);
	}
	/* a sentinel after everything: nothing stray may come before it */
	cr_assert_eq(th_ws_publish(pub, "load.all", "end", 3), 0);

	for (int i = 0; i < NCLIENTS; i++) {
		int next_own = 1, next_all = 1;
		snprintf(s, sizeof(s), "load.%d", i % NSTREAMS);
		for (;;) {
			struct cm_smsg m;
			int r = th_ws_next_push(c[i], &m, 10000);
			cr_assert_eq(r, 1, "client %d: push missing after own %d all %d", i,
				     next_own - 1, next_all - 1);
			if (strcmp(m.stream, "load.all") == 0) {
				if (m.data_len == 3 && memcmp(m.data, "end", 3) == 0) {
					cr_assert_eq(m.offset, NMSG + 1);
					cm_smsg_release(&m);
					break;
				}
				snprintf(payload, sizeof(payload), "all#%d", next_all);
				cr_assert_eq(m.offset, (uint64_t)next_all, "client %d: all offset %llu want %d",
					     i, (unsigned long long)m.offset, next_all);
				next_all++;
			} else {
				cr_assert_str_eq(m.stream, s, "client %d got a push of %s", i, m.stream);
				snprintf(payload, sizeof(payload), "%s#%d", s, next_own);
				cr_assert_eq(m.offset, (uint64_t)next_own, "client %d: offset %llu want %d", i,
					     (unsigned long long)m.offset, next_own);
				next_own++;
			}
			cr_assert_eq(m.data_len, strlen(payload));
			cr_assert(memcmp(m.data, payload, m.data_len) == 0, "client %d: wrong payload", i);
			cm_smsg_release(&m);
		}
		cr_assert_eq(next_own, NMSG + 1, "client %d: %d own pushes", i, next_own - 1);
		cr_assert_eq(next_all, NMSG + 1, "client %d: %d 'all' pushes", i, next_all - 1);
	}
	for (int i = 0; i < NCLIENTS; i++)
		th_ws_free(c[i]);
	cr_assert(TH_WAIT(ccu(&gw) == 1, 15000), "ccu %g after 3000 clients left", ccu(&gw));
	th_ws_free(pub);
	cr_assert_eq(th_gw_stop(&gw, 15000), 0);
}

static double slow_closes(const struct th_gw *gw)
{
	return th_gw_metric(gw, "herald_gateway_slow_consumer_closes_total", NULL);
}

Test(gateway_load, slow_consumer_is_closed_and_others_keep_receiving)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){
				 .extra = { "--max-queued-bytes", "262144", "--cmd-rate", "100000",
					    "--cmd-burst", "100000", NULL } });
	cr_assert_eq(slow_closes(&gw), 0, "no slow-consumer metric at 0");
	struct th_ws *slow, *fast, *pub;
	th_ws_flood_clients(gw.port, 0, 1, &slow, &fast, &pub);

	const size_t size = 32 * 1024;
	const int count = 300; /* 9.6 MB: far beyond every buffer between gateway and slow */
	th_ws_flood(pub, fast, "flood", size, count);
	cr_assert(TH_WAIT(slow_closes(&gw) >= 1, 10000), "slow-consumer closes: %g", slow_closes(&gw));
	cr_assert_eq(th_gw_metric(&gw, "herald_gateway_connections_closed_total", "slow_consumer"), 1);
	cr_assert(TH_WAIT(ccu(&gw) == 2, 5000), "ccu %g: the slow consumer is still counted",
		  ccu(&gw));
	/* the slow client, reading at last, finds its connection ended (with 1008
	 * when the close frame could be queued at all) */
	struct th_ws_msg m;
	int r;
	while ((r = th_ws_read(slow, &m, 10000)) == 1) {
		bool closef = m.opcode == CM_WS_CLOSE;
		th_ws_msg_free(&m);
		if (closef)
			break;
	}
	cr_assert(r == 1 || r == -1, "the slow client's connection did not end");
	if (slow->got_close)
		cr_assert_eq(slow->close_code, 1008);
	th_ws_free(slow);
	/* the others carry on */
	cr_assert_eq(th_ws_publish(pub, "flood", "after", 5), 0);
	struct cm_smsg pm;
	cr_assert_eq(th_ws_next_push(fast, &pm, 5000), 1);
	cr_assert_eq(pm.offset, (uint64_t)count + 1);
	cm_smsg_release(&pm);
	th_ws_free(fast);
	th_ws_free(pub);
	cr_assert_eq(th_gw_stop(&gw, 10000), 0);
}

Test(gateway_load, sigterm_drains_with_1001_and_exits_0)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .tls_cert_kind = "ec",
					       .extra = { "--drain-timeout", "3s", NULL } });
	struct th_ws *c[6];
	for (int i = 0; i < 4; i++)
		c[i] = th_ws_open(gw.port, i % 2 ? "/ws?user=d&format=protobuf" : "/ws?user=d");
	struct th_ws_opts o = { .port = gw.tls_port, .target = "/ws?user=t", .tls = true };
	for (int i = 4; i < 6; i++) {
		c[i] = th_ws_connect(&o);
		cr_assert(c[i] && c[i]->upgraded);
	}
	for (int i = 0; i < 6; i++)
		cr_assert_eq(th_ws_subscribe(c[i], "d"), 0);
	int64_t t0 = th_now_ms();
	th_signal(gw.proc, SIGTERM);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(th_ws_wait_close(c[i], 5000), 1001, "client %d: close code", i);
	for (int i = 0; i < 6; i++) {
		cr_assert(th_ws_wait_eof(c[i], 5000));
		th_ws_free(c[i]);
	}
	int rc = th_wait_exit(gw.proc, 3000 + 3000);
	cr_assert_eq(rc, 0, "gateway exit %d %lld ms after SIGTERM", rc,
		     (long long)(th_now_ms() - t0));
}

Test(gateway_load, drain_ends_even_when_clients_never_answer)
{
	struct th_gw gw;
	th_gw_start(&gw, &(struct th_gw_opts){ .extra = { "--drain-timeout", "2s", NULL } });
	/* one never reads at all, one reads but never echoes the close */
	struct th_ws *mute = th_ws_open(gw.port, "/ws?user=mute");
	struct th_ws *noecho = th_ws_open(gw.port, "/ws?user=noecho");
	cr_assert_eq(th_ws_subscribe(noecho, "n"), 0);
	th_signal(gw.proc, SIGTERM);
	struct th_ws_msg m;
	int r;
	while ((r = th_ws_read(noecho, &m, 5000)) == 1) {
		bool closef = m.opcode == CM_WS_CLOSE;
		th_ws_msg_free(&m);
		if (closef)
			break;
	}
	cr_assert_eq(r, 1, "no close frame on drain");
	cr_assert_eq(noecho->close_code, 1001);
	/* while the drain holds on for them, nobody new gets in */
	struct th_ws_opts o = { .port = gw.port, .target = "/ws?user=late", .timeout_ms = 2000 };
	struct th_ws *late = th_ws_connect(&o);
	cr_assert(!late || !late->upgraded, "a connection was upgraded while draining");
	th_ws_free(late);
	int rc = th_wait_exit(gw.proc, 2000 + 3000);
	cr_assert_eq(rc, 0, "gateway did not exit 0 within the drain timeout (%d)", rc);
	cr_assert(th_ws_wait_eof(mute, 5000));
	cr_assert(th_ws_wait_eof(noecho, 5000));
	th_ws_free(mute);
	th_ws_free(noecho);
}
