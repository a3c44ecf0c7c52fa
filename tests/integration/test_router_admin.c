/* herald-router's command line and admin endpoints, and the live dashboard
 * rendered by headless Chromium. */
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/lib/th_cluster.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(router_admin, .init = th_setup, .fini = th_teardown, .timeout = 120);

Test(router_admin, help_and_bad_flags)
{
	char *help[] = { (char *)th_bin("herald-router"), "--help", NULL };
	char *bad[] = { (char *)th_bin("herald-router"), "--no-such-flag", NULL };
	char *badv[] = { (char *)th_bin("herald-router"), "--gateway-timeout", "soon", NULL };
	char *missing[] = { (char *)th_bin("herald-router"), "--redis", NULL };

	cr_assert_eq(th_run("help", help, 5000), 0);
	cr_assert_eq(th_run("bad", bad, 5000), 2);
	cr_assert_eq(th_run("badv", badv, 5000), 2);
	cr_assert_eq(th_run("missing", missing, 5000), 2);
}

static struct th_proc *redis;
static struct th_router router;
static struct th_gw gws[3];

static void start(int ngw)
{
	redis = th_redis_start();
	th_router_start(&router, redis->port, NULL);
	for (int i = 0; i < ngw; i++) {
		static char ids[3][24];
		struct th_gw_opts o = { .redis_port = redis->port, .threads = 1 };
		snprintf(ids[i], sizeof(ids[i]), "dash-%d", i);
		o.id = ids[i];
		th_gw_start(&gws[i], &o);
	}
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == ngw, 5000));
}

Test(router_admin, metrics_gateways_and_stats)
{
	struct th_ws *c[3];
	char *body = NULL;
	cJSON *j, *h;

	start(2);
	c[0] = th_ws_open(gws[0].port, "/ws?user=a");
	c[1] = th_ws_open(gws[0].port, "/ws?user=b");
	c[2] = th_ws_open(gws[1].port, "/ws?user=c");
	cr_assert_eq(th_ws_subscribe(c[2], "s"), 0);
	cr_assert(TH_WAIT(th_router_gw_ccu(&router, "dash-0") == 2 &&
			  th_router_gw_ccu(&router, "dash-1") == 1, 5000));
	for (int i = 0; i < 10; i++)
		th_redis_publish(redis->port, "herald:stream:s", "x", 1);

	cr_assert(TH_WAIT(th_router_metric(&router, "herald_router_publishes_in_total", NULL) == 10,
			  3000));
	cr_assert_eq(th_router_metric(&router, "herald_router_deliveries_out_total", "dash-1"), 10);
	cr_assert_eq(th_router_metric(&router, "herald_router_deliveries_out_total", "dash-0"), 0);
	cr_assert_eq(th_router_metric(&router, "herald_gateway_ccu", "gateway=\"dash-0\""), 2);
	cr_assert_eq(th_router_metric(&router, "herald_cluster_ccu", NULL), 3);
	cr_assert_eq(th_router_metric(&router, "herald_router_gateways", NULL), 2);
	cr_assert_eq(th_router_metric(&router, "herald_router_streams", NULL), 1);
	cr_assert(th_router_metric(&router, "herald_router_batches_total", NULL) >= 1);
	cr_assert_eq(th_router_metric(&router, "herald_router_bad_frames_total", NULL), 0);
	cr_assert_eq(th_router_metric(&router, "herald_router_redis_reconnects_total", NULL), 0);
	cr_assert_eq(th_router_metric(&router, "herald_router_redis_up", NULL), 1);
	/* its writer has replies off, and Redis honours it */
	cr_assert_eq(th_router_metric(&router, "herald_router_redis_dropped_reply_bytes_total", NULL), 0);

	struct th_gwrow rows[4];
	cr_assert_eq(th_router_gateways(&router, rows, 4), 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(rows[i].state, "up");
		cr_assert(rows[i].streams >= 0);
	}

	/* the history fills once a second */
	cr_assert(TH_WAIT((free(body), body = NULL,
			   th_http_get(router.admin_port, "/api/stats", &body, NULL) == 200 &&
			   strstr(body, "\"t\":")), 3000));
	j = cJSON_Parse(body);
	cr_assert_not_null(j);
	cr_assert_eq(cJSON_GetObjectItem(j, "cluster_ccu")->valuedouble, 3);
	cr_assert_eq(cJSON_GetObjectItem(j, "gateways")->valuedouble, 2);
	h = cJSON_GetObjectItem(j, "history");
	cr_assert(cJSON_IsArray(h) && cJSON_GetArraySize(h) >= 1);
	cJSON_Delete(j);
	free(body);

	cr_assert_eq(th_http_get(router.admin_port, "/nope", NULL, NULL), 404);
	for (int i = 0; i < 3; i++)
		th_ws_free(c[i]);
	/* SIGTERM: a clean exit (under the sanitizers: nothing leaked) */
	cr_assert_eq(th_stop(router.proc, 5000), 0);
}

/* Renders the dashboard in headless Chromium and returns the DOM (malloc'd). */
static char *chromium_dom(int port)
{
	char cmd[1024], url[64];
	const char *out = th_write_file("dom.html", "", 0);
	char outpath[512];

	snprintf(outpath, sizeof(outpath), "%s", out);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	snprintf(cmd, sizeof(cmd),
		 "exec chromium --headless --no-sandbox --disable-gpu "
		 "--disable-background-networking --disable-component-update --disable-sync "
		 "--no-first-run --disable-dev-shm-usage --user-data-dir='%s/chromium-profile' "
		 "--virtual-time-budget=5000 --dump-dom '%s' > '%s'",
		 th_tmpdir(), url, outpath);
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	cr_assert_eq(th_run("chromium", argv, 60000), 0, "chromium failed (see chromium.log)");
	return th_read_file(outpath);
}

Test(router_admin, dashboard_shows_a_row_per_gateway_in_chromium)
{
	struct th_ws *c[3];
	char *dom, needle[128];

	cr_assert(access("/usr/bin/chromium", X_OK) == 0,
		  "chromium is not installed (make deps installs it)");
	start(3);
	c[0] = th_ws_open(gws[0].port, "/ws?user=a");
	c[1] = th_ws_open(gws[2].port, "/ws?user=b");
	c[2] = th_ws_open(gws[2].port, "/ws?user=c");
	cr_assert(TH_WAIT(th_router_gw_ccu(&router, "dash-0") == 1 &&
			  th_router_gw_ccu(&router, "dash-2") == 2, 5000));
	dom = chromium_dom(router.admin_port);
	cr_assert(strstr(dom, "data-loaded=\"1\""), "the page's script ran and polled the API");
	for (int i = 0; i < 3; i++) {
		const char *row;
		snprintf(needle, sizeof(needle), "<tr class=\"gateway\" data-gateway=\"dash-%d\">", i);
		row = strstr(dom, needle);
		cr_assert_not_null(row, "no row for dash-%d in the DOM", i);
		snprintf(needle, sizeof(needle), "<td>dash-%d</td><td class=\"num ccu\">%d</td>", i,
			 i == 0 ? 1 : i == 2 ? 2 : 0);
		cr_assert(strstr(row, needle) == row + strlen("<tr class=\"gateway\" data-gateway=\"dash-0\">"),
			  "row for dash-%d shows the wrong CCU", i);
	}
	/* the CCU bars are drawn as SVG rectangles, one per gateway */
	const char *svg = strstr(dom, "<svg id=\"bars\"");
	cr_assert_not_null(svg);
	int rects = 0;
	for (const char *p = svg; (p = strstr(p, "<rect")) && p < strstr(svg, "</svg>"); p++)
		rects++;
	cr_assert_eq(rects, 3);
	free(dom);
	for (int i = 0; i < 3; i++)
		th_ws_free(c[i]);
}

Test(router_admin, stale_ccu_fields_of_vanished_gateways_are_removed)
{
	long long v;
	const char *extra[] = { "--gateway-timeout", "1s", NULL };

	redis = th_redis_start();
	/* left behind by a gateway that died while no router ran */
	freeReplyObject(th_redis_cmd(redis->port, "HSET herald:ccu ghost 42"));
	th_router_start(&router, redis->port, extra);
	cr_assert(TH_WAIT(!th_redis_hget_ll(redis->port, "herald:ccu", "ghost", &v), 5000));
}

Test(router_admin, a_custom_prefix_is_used_for_every_key_and_channel)
{
	const char *extra[] = { "--redis-prefix", "acme", NULL };
	struct th_gw_opts o = { .threads = 1, .id = "pfx-0", .extra = { "--redis-prefix", "acme", NULL } };
	struct th_ws *c;
	struct cm_smsg m;
	long long v;

	redis = th_redis_start();
	th_router_start(&router, redis->port, extra);
	o.redis_port = redis->port;
	th_gw_start(&gws[0], &o);
	cr_assert(TH_WAIT(th_router_gateways(&router, NULL, 0) == 1, 5000));
	c = th_ws_open(gws[0].port, "/ws?user=a");
	cr_assert_eq(th_ws_subscribe(c, "s"), 0);
	cr_assert_eq(th_redis_publish(redis->port, "herald:stream:s", "wrong prefix", 12), 0);
	cr_assert_eq(th_redis_publish(redis->port, "acme:stream:s", "right", 5), 1);
	cr_assert_eq(th_ws_next_push(c, &m, 5000), 1);
	cr_assert_str_eq(m.stream, "s");
	cr_assert(m.data_len == 5 && !memcmp(m.data, "right", 5));
	cr_assert_eq(m.offset, 1);
	cm_smsg_release(&m);
	cr_assert(TH_WAIT(th_redis_hget_ll(redis->port, "acme:ccu", "pfx-0", &v) && v == 1, 3000));
	cr_assert(TH_WAIT(th_redis_hget_ll(redis->port, "acme:offsets", "s", &v) && v == 1, 3000));
	cr_assert_not(th_redis_hget_ll(redis->port, "herald:ccu", "pfx-0", &v));
	th_ws_free(c);
}
