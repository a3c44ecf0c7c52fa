#include "rt_admin.h"
#include "rt_router.h"

#include "cm_admin.h"
#include "cm_buf.h"
#include "cm_log.h"
#include "cm_loop.h"

#include <string.h>

/* Gateway ids are checked on arrival: printable ASCII without '"' or '\',
 * so they go into JSON strings and Prometheus labels as they are. */

static void json_str(struct cm_buf *b, const char *s)
{
	cm_buf_append(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			cm_buf_printf(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			cm_buf_printf(b, "\\u%04x", c);
		else
			cm_buf_append(b, s, 1);
	}
	cm_buf_append(b, "\"", 1);
}

static const char *state_name(enum rt_gw_state s)
{
	return s == RT_GW_UP ? "up" : "syncing";
}

void rt_admin_metrics(struct rt_router *r, struct cm_buf *b)
{
	struct rt_gws *g = rt_router_gws(r);
	struct rt_stats st;

	rt_router_stats(r, &st);
	cm_buf_printf(b, "# HELP herald_gateway_ccu Connected clients per gateway (last heartbeat).\n"
			 "# TYPE herald_gateway_ccu gauge\n");
	for (size_t s = 0; s < rt_gws_end(g); s++) {
		struct rt_gw *gw = rt_gws_at(g, (uint16_t)s);
		if (gw)
			cm_buf_printf(b, "herald_gateway_ccu{gateway=\"%s\"} %llu\n", gw->id,
				      (unsigned long long)gw->ccu);
	}
	cm_buf_printf(b, "# HELP herald_cluster_ccu Connected clients in the cluster.\n"
			 "# TYPE herald_cluster_ccu gauge\n"
			 "herald_cluster_ccu %llu\n", (unsigned long long)st.cluster_ccu);
	cm_buf_printf(b, "# HELP herald_gateway_streams Streams held per gateway.\n"
			 "# TYPE herald_gateway_streams gauge\n");
	for (size_t s = 0; s < rt_gws_end(g); s++) {
		struct rt_gw *gw = rt_gws_at(g, (uint16_t)s);
		if (gw)
			cm_buf_printf(b, "herald_gateway_streams{gateway=\"%s\"} %llu\n", gw->id,
				      (unsigned long long)gw->streams);
	}
	cm_buf_printf(b, "# HELP herald_router_publishes_in_total Publishes received (backends and clients).\n"
			 "# TYPE herald_router_publishes_in_total counter\n"
			 "herald_router_publishes_in_total %llu\n",
		      (unsigned long long)st.publishes_in);
	cm_buf_printf(b, "# HELP herald_router_deliveries_out_total Deliveries sent per gateway.\n"
			 "# TYPE herald_router_deliveries_out_total counter\n");
	for (size_t s = 0; s < rt_gws_end(g); s++) {
		struct rt_gw *gw = rt_gws_at(g, (uint16_t)s);
		if (gw)
			cm_buf_printf(b, "herald_router_deliveries_out_total{gateway=\"%s\"} %llu\n",
				      gw->id, (unsigned long long)gw->deliveries_out);
	}
	cm_buf_printf(b, "# HELP herald_router_deliveries_total Deliveries sent to all gateways.\n"
			 "# TYPE herald_router_deliveries_total counter\n"
			 "herald_router_deliveries_total %llu\n"
			 "# HELP herald_router_batches_total Delivery frames (PUBLISHes) sent to gateways.\n"
			 "# TYPE herald_router_batches_total counter\n"
			 "herald_router_batches_total %llu\n"
			 "# HELP herald_router_redis_reconnects_total Redis reconnects.\n"
			 "# TYPE herald_router_redis_reconnects_total counter\n"
			 "herald_router_redis_reconnects_total %llu\n"
			 "# HELP herald_router_redis_dropped_reply_bytes_total Bytes Redis sent on the writer although its replies are off (0 unless a proxy ignores CLIENT REPLY).\n"
			 "# TYPE herald_router_redis_dropped_reply_bytes_total counter\n"
			 "herald_router_redis_dropped_reply_bytes_total %llu\n"
			 "# HELP herald_router_redis_up 1 when all three Redis connections (subscriber, reader, writer) are up.\n"
			 "# TYPE herald_router_redis_up gauge\n"
			 "herald_router_redis_up %d\n"
			 "# HELP herald_router_bad_frames_total Malformed or oversized gateway frames dropped.\n"
			 "# TYPE herald_router_bad_frames_total counter\n"
			 "herald_router_bad_frames_total %llu\n"
			 "# HELP herald_router_dropped_total Publishes not relayed.\n"
			 "# TYPE herald_router_dropped_total counter\n"
			 "herald_router_dropped_total{reason=\"no_subscriber\"} %llu\n"
			 "herald_router_dropped_total{reason=\"too_large\"} %llu\n"
			 "herald_router_dropped_total{reason=\"redis_backlog\"} %llu\n"
			 "# HELP herald_router_gateways Live gateways.\n"
			 "# TYPE herald_router_gateways gauge\n"
			 "herald_router_gateways %zu\n"
			 "# HELP herald_router_streams Streams held by at least one gateway.\n"
			 "# TYPE herald_router_streams gauge\n"
			 "herald_router_streams %zu\n"
			 "# HELP herald_router_users Users online on at least one gateway.\n"
			 "# TYPE herald_router_users gauge\n"
			 "herald_router_users %zu\n"
			 "# HELP herald_router_offsets_tracked Offset counters kept (held or recently held).\n"
			 "# TYPE herald_router_offsets_tracked gauge\n"
			 "herald_router_offsets_tracked %zu\n",
		      (unsigned long long)st.deliveries_out, (unsigned long long)st.batches,
		      (unsigned long long)st.redis_reconnects,
		      (unsigned long long)st.redis_dropped_replies, st.redis_up ? 1 : 0,
		      (unsigned long long)st.bad_frames, (unsigned long long)st.dropped_no_holder,
		      (unsigned long long)st.too_large, (unsigned long long)st.backlog_drops,
		      st.gateways, st.streams, st.users,
		      st.entries);
}

void rt_admin_gateways(struct rt_router *r, struct cm_buf *b)
{
	struct rt_gws *g = rt_router_gws(r);
	uint64_t now = cm_now_ms(), wall = cm_wall_ms();
	bool first = true;

	cm_buf_append(b, "[", 1);
	for (size_t s = 0; s < rt_gws_end(g); s++) {
		struct rt_gw *gw = rt_gws_at(g, (uint16_t)s);
		uint64_t age;
		if (!gw)
			continue;
		age = now > gw->last_seen ? now - gw->last_seen : 0;
		cm_buf_printf(b, "%s{\"id\":", first ? "" : ",");
		json_str(b, gw->id);
		cm_buf_printf(b, ",\"ccu\":%llu,\"streams\":%llu,\"last_seen_ms\":%llu,"
				 "\"age_ms\":%llu,\"state\":\"%s\",\"threads\":%u,\"version\":",
			      (unsigned long long)gw->ccu, (unsigned long long)gw->streams,
			      (unsigned long long)(wall - age), (unsigned long long)age,
			      state_name(gw->state), gw->threads);
		json_str(b, gw->version);
		cm_buf_printf(b, ",\"deliveries_out\":%llu,\"batches\":%llu}",
			      (unsigned long long)gw->deliveries_out,
			      (unsigned long long)gw->frames_out);
		first = false;
	}
	cm_buf_append(b, "]\n", 2);
}

void rt_admin_stats(struct rt_router *r, struct cm_buf *b)
{
	static struct rt_sample h[RT_HISTORY];
	struct rt_stats st;
	size_t n = rt_router_history(r, h, RT_HISTORY);

	rt_router_stats(r, &st);
	cm_buf_printf(b, "{\"cluster_ccu\":%llu,\"gateways\":%zu,\"streams\":%zu,\"users\":%zu,"
			 "\"publishes_in_total\":%llu,\"deliveries_out_total\":%llu,"
			 "\"batches_total\":%llu,\"bad_frames_total\":%llu,"
			 "\"redis_reconnects_total\":%llu,\"redis_up\":%s,\"now_ms\":%llu,"
			 "\"history\":[",
		      (unsigned long long)st.cluster_ccu, st.gateways, st.streams, st.users,
		      (unsigned long long)st.publishes_in, (unsigned long long)st.deliveries_out,
		      (unsigned long long)st.batches, (unsigned long long)st.bad_frames,
		      (unsigned long long)st.redis_reconnects, st.redis_up ? "true" : "false",
		      (unsigned long long)cm_wall_ms());
	for (size_t i = 0; i < n; i++)
		cm_buf_printf(b, "%s{\"t\":%llu,\"publishes\":%llu,\"deliveries\":%llu,\"ccu\":%llu}",
			      i ? "," : "", (unsigned long long)h[i].wall_ms,
			      (unsigned long long)h[i].publishes, (unsigned long long)h[i].deliveries,
			      (unsigned long long)h[i].ccu);
	cm_buf_append(b, "]}\n", 3);
}

/* The dashboard: polls /api/gateways and /api/stats every second, draws a
 * table and CCU bars per gateway (SVG) and messages per second (canvas). */
static const char dashboard[] =
"<!DOCTYPE html>\n"
"<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
"<title>herald router</title>\n"
"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
"<style>\n"
"body{font:14px system-ui,sans-serif;margin:24px;background:#fafafa;color:#222}\n"
"h1{font-size:20px;margin:0 0 12px}\n"
"h2{font-size:15px;margin:20px 0 8px}\n"
".cards{display:flex;gap:12px;flex-wrap:wrap}\n"
".card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:120px}\n"
".card b{display:block;font-size:22px}\n"
"table{border-collapse:collapse;background:#fff}\n"
"td,th{border:1px solid #ddd;padding:4px 10px;text-align:left}\n"
"td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
".up{color:#080}.syncing{color:#b60}\n"
"#err{color:#b00}\n"
"canvas{background:#fff;border:1px solid #ddd}\n"
".legend span{display:inline-block;width:12px;height:3px;margin:0 4px 3px 12px}\n"
"</style></head><body>\n"
"<h1>herald router</h1>\n"
"<div class=\"cards\">\n"
"<div class=\"card\">cluster CCU<b id=\"ccu\">-</b></div>\n"
"<div class=\"card\">gateways<b id=\"ngw\">-</b></div>\n"
"<div class=\"card\">streams<b id=\"nstreams\">-</b></div>\n"
"<div class=\"card\">publishes/s<b id=\"pps\">-</b></div>\n"
"<div class=\"card\">deliveries/s<b id=\"dps\">-</b></div>\n"
"<div class=\"card\">Redis<b id=\"redis\">-</b></div>\n"
"</div>\n"
"<div id=\"err\"></div>\n"
"<h2>Gateways</h2>\n"
"<table id=\"gateways\"><thead><tr><th>id</th><th>CCU</th><th>streams</th>"
"<th>state</th><th>last seen</th><th>deliveries</th></tr></thead>"
"<tbody id=\"gwrows\"></tbody></table>\n"
"<h2>CCU per gateway</h2>\n"
"<svg id=\"bars\" width=\"720\" height=\"40\" xmlns=\"http://www.w3.org/2000/svg\"></svg>\n"
"<h2>Messages per second (last 5 minutes)</h2>\n"
"<div class=\"legend\"><span style=\"background:#1f77b4\"></span>publishes in"
"<span style=\"background:#ff7f0e\"></span>deliveries out</div>\n"
"<canvas id=\"chart\" width=\"720\" height=\"220\"></canvas>\n"
"<script>\n"
"'use strict';\n"
"function el(tag, attrs, text) {\n"
"  const e = document.createElement(tag);\n"
"  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);\n"
"  if (text !== undefined) e.textContent = String(text);\n"
"  return e;\n"
"}\n"
"function drawGateways(list) {\n"
"  const body = document.getElementById('gwrows');\n"
"  body.replaceChildren();\n"
"  list.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);\n"
"  for (const g of list) {\n"
"    const tr = el('tr', {'class': 'gateway', 'data-gateway': g.id});\n"
"    tr.appendChild(el('td', {}, g.id));\n"
"    tr.appendChild(el('td', {'class': 'num ccu'}, g.ccu));\n"
"    tr.appendChild(el('td', {'class': 'num'}, g.streams));\n"
"    tr.appendChild(el('td', {'class': g.state}, g.state));\n"
"    tr.appendChild(el('td', {'class': 'num'}, (g.age_ms / 1000).toFixed(1) + ' s ago'));\n"
"    tr.appendChild(el('td', {'class': 'num'}, g.deliveries_out));\n"
"    body.appendChild(tr);\n"
"  }\n"
"  const svg = document.getElementById('bars');\n"
"  const ns = 'http://www.w3.org/2000/svg';\n"
"  while (svg.firstChild) svg.removeChild(svg.firstChild);\n"
"  const max = Math.max(1, ...list.map(g => g.ccu));\n"
"  svg.setAttribute('height', String(Math.max(24, list.length * 24)));\n"
"  list.forEach((g, i) => {\n"
"    const w = Math.round(500 * g.ccu / max);\n"
"    const t = document.createElementNS(ns, 'text');\n"
"    t.setAttribute('x', '0'); t.setAttribute('y', String(i * 24 + 16));\n"
"    t.textContent = g.id;\n"
"    const r = document.createElementNS(ns, 'rect');\n"
"    r.setAttribute('x', '160'); r.setAttribute('y', String(i * 24 + 4));\n"
"    r.setAttribute('width', String(Math.max(1, w))); r.setAttribute('height', '16');\n"
"    r.setAttribute('fill', '#1f77b4');\n"
"    const v = document.createElementNS(ns, 'text');\n"
"    v.setAttribute('x', String(166 + w)); v.setAttribute('y', String(i * 24 + 16));\n"
"    v.textContent = String(g.ccu);\n"
"    svg.appendChild(t); svg.appendChild(r); svg.appendChild(v);\n"
"  });\n"
"}\n"
"function drawChart(hist) {\n"
"  const c = document.getElementById('chart');\n"
"  const ctx = c.getContext('2d');\n"
"  const W = c.width, H = c.height, L = 50, B = 20;\n"
"  ctx.clearRect(0, 0, W, H);\n"
"  const max = Math.max(1, ...hist.map(s => Math.max(s.publishes, s.deliveries)));\n"
"  ctx.strokeStyle = '#ccc'; ctx.fillStyle = '#666'; ctx.font = '11px sans-serif';\n"
"  for (let i = 0; i <= 4; i++) {\n"
"    const y = H - B - (H - B - 10) * i / 4;\n"
"    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W, y); ctx.stroke();\n"
"    ctx.fillText(String(Math.round(max * i / 4)), 2, y + 4);\n"
"  }\n"
"  ctx.fillText('-5 min', L, H - 4); ctx.fillText('now', W - 24, H - 4);\n"
"  const n = 300;\n"
"  const x = i => L + (W - L) * (n - hist.length + i) / (n - 1);\n"
"  const y = v => H - B - (H - B - 10) * v / max;\n"
"  for (const [key, color] of [['publishes', '#1f77b4'], ['deliveries', '#ff7f0e']]) {\n"
"    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();\n"
"    hist.forEach((s, i) => i ? ctx.lineTo(x(i), y(s[key])) : ctx.moveTo(x(i), y(s[key])));\n"
"    ctx.stroke(); ctx.lineWidth = 1;\n"
"  }\n"
"}\n"
"async function poll() {\n"
"  try {\n"
"    const [gr, sr] = await Promise.all([fetch('/api/gateways', {cache: 'no-store'}),\n"
"                                        fetch('/api/stats', {cache: 'no-store'})]);\n"
"    const gws = await gr.json(), st = await sr.json();\n"
"    drawGateways(gws);\n"
"    document.getElementById('ccu').textContent = st.cluster_ccu;\n"
"    document.getElementById('ngw').textContent = st.gateways;\n"
"    document.getElementById('nstreams').textContent = st.streams;\n"
"    const last = st.history.length ? st.history[st.history.length - 1] : null;\n"
"    document.getElementById('pps').textContent = last ? last.publishes : 0;\n"
"    document.getElementById('dps').textContent = last ? last.deliveries : 0;\n"
"    document.getElementById('redis').textContent = st.redis_up ? 'up' : 'down';\n"
"    drawChart(st.history);\n"
"    document.getElementById('err').textContent = '';\n"
"    document.body.setAttribute('data-loaded', '1');\n"
"  } catch (e) {\n"
"    document.getElementById('err').textContent = 'router unreachable: ' + e;\n"
"  }\n"
"}\n"
"poll();\n"
"setInterval(poll, 1000);\n"
"</script>\n"
"</body></html>\n";

static int h_metrics(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		     const char **ct)
{
	(void)req;
	rt_admin_metrics(arg, body);
	*ct = "text/plain; version=0.0.4; charset=utf-8";
	return 200;
}

static int h_gateways(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		      const char **ct)
{
	(void)req;
	rt_admin_gateways(arg, body);
	*ct = "application/json";
	return 200;
}

static int h_stats(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		   const char **ct)
{
	(void)req;
	rt_admin_stats(arg, body);
	*ct = "application/json";
	return 200;
}

static int h_root(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		  const char **ct)
{
	(void)arg;
	(void)req;
	cm_buf_append(body, dashboard, sizeof(dashboard) - 1);
	*ct = "text/html; charset=utf-8";
	return 200;
}

static int h_healthz(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		     const char **ct)
{
	struct rt_stats st;
	(void)req;
	(void)ct;
	rt_router_stats(arg, &st);
	cm_buf_printf(body, "%s\n", st.redis_up ? "ok" : "redis down");
	return 200;
}

void rt_admin_routes(struct cm_admin *a, struct rt_router *r)
{
	cm_admin_route(a, "/metrics", h_metrics, r);
	cm_admin_route(a, "/api/gateways", h_gateways, r);
	cm_admin_route(a, "/api/stats", h_stats, r);
	cm_admin_route(a, "/", h_root, r);
	cm_admin_route(a, "/index.html", h_root, r);
	cm_admin_route(a, "/healthz", h_healthz, r);
}
