/* rt_admin — the router's admin endpoints on a cm_admin server:
 *   GET /metrics       Prometheus text, computed at request time
 *   GET /api/gateways  JSON array of {"id","ccu","streams","last_seen_ms","state",…}
 *   GET /api/stats     JSON: cluster figures and the per-second history
 *   GET /              the live dashboard (HTML + inline JS, no outside CDN) */
#ifndef RT_ADMIN_H
#define RT_ADMIN_H

struct cm_admin;
struct cm_buf;
struct rt_router;

/* Registers the routes above on a. */
void rt_admin_routes(struct cm_admin *a, struct rt_router *r);

/* The bodies, for tests. */
void rt_admin_metrics(struct rt_router *r, struct cm_buf *out);
void rt_admin_gateways(struct rt_router *r, struct cm_buf *out);
void rt_admin_stats(struct rt_router *r, struct cm_buf *out);

#endif
