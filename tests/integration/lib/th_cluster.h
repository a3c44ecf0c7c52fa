/* th_cluster — a real herald-router for integration tests, and readers for
 * its admin endpoints. */
#ifndef TH_CLUSTER_H
#define TH_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "th_proc.h"

struct th_router {
	struct th_proc *proc;
	int admin_port;
	int redis_port;
};

/* Starts build/herald-router against 127.0.0.1:redis_port with a free admin
 * port and extra flags (NULL-terminated, may be NULL); asserts /api/gateways
 * answers within 10 s. */
void th_router_start(struct th_router *r, int redis_port, const char *const *extra);

/* One row of /api/gateways. */
struct th_gwrow {
	char id[128];
	long long ccu, streams;
	char state[16];
};

/* GET /api/gateways: the number of rows (up to max copied), -1 when the
 * router does not answer or the JSON is bad. */
int th_router_gateways(const struct th_router *r, struct th_gwrow *rows, int max);

/* The CCU of gateway id in /api/gateways, -1 when absent. */
long long th_router_gw_ccu(const struct th_router *r, const char *id);

/* A router metric (summed over series whose labels contain label_sub). */
double th_router_metric(const struct th_router *r, const char *name, const char *label_sub);

/* HGET <prefix>:ccu id as a number, -1 when absent. */
long long th_ccu_hash(int redis_port, const char *id);

#endif
