/* gw_metrics — the gateway's admin endpoints on worker 0's loop: /healthz,
 * /readyz (200 while accepting and, in cluster mode, while the cluster link
 * is up) and /metrics (Prometheus text; per-worker counters summed on
 * read). */
#include "gw.h"
#include "gw_sessions.h"
#include "gw_streams.h"
#include "cm_admin.h"
#include "cm_buf.h"

#include <stdio.h>
#include <string.h>

#define SUM(g, field) sum_ulong(g, offsetof(struct gw_metrics, field))

static unsigned long sum_ulong(struct gw *g, size_t off)
{
	unsigned long s = 0;
	for (unsigned i = 0; i < g->nworkers; i++) {
		atomic_ulong *p = (atomic_ulong *)((char *)&g->w[i]->m + off);
		s += atomic_load_explicit(p, memory_order_relaxed);
	}
	return s;
}

static long sum_long(struct gw *g, size_t off)
{
	long s = 0;
	for (unsigned i = 0; i < g->nworkers; i++) {
		atomic_long *p = (atomic_long *)((char *)&g->w[i]->m + off);
		s += atomic_load_explicit(p, memory_order_relaxed);
	}
	return s;
}

static int h_health(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		    const char **ct)
{
	(void)arg;
	(void)req;
	(void)ct;
	cm_buf_append(body, "ok\n", 3);
	return 200;
}

static int h_ready(void *arg, const struct cm_http_req *req, struct cm_buf *body,
		   const char **ct)
{
	struct gw *g = arg;
	(void)req;
	(void)ct;
	if (gw_hub_ready(g)) {
		cm_buf_append(body, "ready\n", 6);
		return 200;
	}
	cm_buf_printf(body, "%s\n", atomic_load(&g->draining) ? "draining" : "not ready");
	return 503;
}

static void counter(struct cm_buf *b, const char *name, const char *help, unsigned long v)
{
	cm_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name, v);
}

static void gauge(struct cm_buf *b, const char *name, const char *help, long v)
{
	cm_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %ld\n", name, help, name, name, v);
}

static int h_metrics(void *arg, const struct cm_http_req *req, struct cm_buf *b,
		     const char **ct)
{
	struct gw *g = arg;
	(void)req;
	*ct = "text/plain; version=0.0.4; charset=utf-8";
	gauge(b, "herald_gateway_ccu", "Open WebSocket connections.", atomic_load(&g->open));
	gauge(b, "herald_gateway_connections", "Connections held in any state.",
	      atomic_load(&g->conns));
	gauge(b, "herald_gateway_threads", "Worker threads.", (long)g->nworkers);
	gauge(b, "herald_gateway_draining", "1 while draining.", atomic_load(&g->draining) ? 1 : 0);
	counter(b, "herald_gateway_connections_accepted_total", "TCP connections accepted.",
		SUM(g, accepted));
	cm_buf_printf(b, "# HELP herald_gateway_connections_closed_total Connections closed, by reason.\n"
			 "# TYPE herald_gateway_connections_closed_total counter\n");
	for (int r = 0; r < GW_R_MAX; r++)
		cm_buf_printf(b, "herald_gateway_connections_closed_total{reason=\"%s\"} %lu\n",
			      gw_reason_names[r],
			      sum_ulong(g, offsetof(struct gw_metrics, closed) +
						   (size_t)r * sizeof(atomic_ulong)));
	cm_buf_printf(b, "# HELP herald_gateway_http_refusals_total Upgrade requests refused, by status.\n"
			 "# TYPE herald_gateway_http_refusals_total counter\n");
	for (int i = 0; i < GW_H_MAX; i++)
		cm_buf_printf(b, "herald_gateway_http_refusals_total{status=\"%d\"} %lu\n",
			      gw_http_statuses[i],
			      sum_ulong(g, offsetof(struct gw_metrics, refused) +
						   (size_t)i * sizeof(atomic_ulong)));
	counter(b, "herald_gateway_bytes_in_total", "Bytes received from clients.", SUM(g, bytes_in));
	counter(b, "herald_gateway_bytes_out_total", "Bytes sent to clients.", SUM(g, bytes_out));
	counter(b, "herald_gateway_messages_in_total", "WebSocket data messages from clients.",
		SUM(g, msgs_in));
	counter(b, "herald_gateway_messages_out_total", "Messages queued to clients (pushes and replies).",
		SUM(g, msgs_out));
	counter(b, "herald_gateway_pushes_total", "Pushes queued to clients.", SUM(g, pushes));
	counter(b, "herald_gateway_commands_total", "Client commands.", SUM(g, cmds));
	counter(b, "herald_gateway_rate_limited_total", "Commands refused with 429.",
		SUM(g, rate_limited));
	counter(b, "herald_gateway_slow_consumer_closes_total",
		"Connections closed for exceeding --max-queued-bytes.", SUM(g, slow));
	cm_buf_printf(b, "# HELP herald_gateway_tls_handshakes_total TLS handshakes completed.\n"
			 "# TYPE herald_gateway_tls_handshakes_total counter\n"
			 "herald_gateway_tls_handshakes_total{kind=\"full\"} %lu\n"
			 "herald_gateway_tls_handshakes_total{kind=\"resumed\"} %lu\n",
		      SUM(g, tls_full), SUM(g, tls_resumed));
	counter(b, "herald_gateway_tls_handshake_failures_total", "TLS handshakes that failed.",
		SUM(g, tls_failed));
	cm_buf_printf(b, "# HELP herald_gateway_accept_errors_total Failed accepts, by errno "
			 "(EMFILE: descriptor limit).\n"
			 "# TYPE herald_gateway_accept_errors_total counter\n"
			 "herald_gateway_accept_errors_total{errno=\"EMFILE\"} %lu\n"
			 "herald_gateway_accept_errors_total{errno=\"ENFILE\"} %lu\n"
			 "herald_gateway_accept_errors_total{errno=\"other\"} %lu\n",
		      sum_ulong(g, offsetof(struct gw_metrics, accept_err)),
		      sum_ulong(g, offsetof(struct gw_metrics, accept_err) + sizeof(atomic_ulong)),
		      sum_ulong(g, offsetof(struct gw_metrics, accept_err) + 2 * sizeof(atomic_ulong)));
	gauge(b, "herald_gateway_max_conns", "Effective --max-conns (after the descriptor limit).",
	      (long)g->o->max_conns);
	counter(b, "herald_gateway_recv_enobufs_total", "Receives that found the buffer ring empty.",
		SUM(g, enobufs));
	gauge(b, "herald_gateway_fixed_files",
	      "1 when client sockets live in the rings' file tables (--fixed-files).",
	      g->w[0]->nfixed ? 1 : 0);
	gauge(b, "herald_gateway_queued_bytes",
	      "Bytes waiting in client write queues (at the end of each worker's turn).",
	      sum_long(g, offsetof(struct gw_metrics, queued)));
	gauge(b, "herald_gateway_subscriptions", "Subscriptions held (connection x stream).",
	      sum_long(g, offsetof(struct gw_metrics, subs)));
	gauge(b, "herald_gateway_streams", "Streams with local subscribers.",
	      (long)gw_streams_count(g->streams));
	gauge(b, "herald_gateway_users", "Users with sessions here (cluster mode).",
	      (long)gw_sessions_users(g->sessions));
	gw_hub_stats(g, b);
	return 200;
}

void gw_admin_routes(struct gw *g, struct cm_admin *a)
{
	cm_admin_route(a, "/healthz", h_health, g);
	cm_admin_route(a, "/readyz", h_ready, g);
	cm_admin_route(a, "/metrics", h_metrics, g);
}
