/* rt_router — the relay: Redis connections, gateway events, the stream
 * tracker and user directory (rt_table), the gateway registry (rt_gw), one
 * delivery frame per gateway per loop turn, CCU bookkeeping, and the
 * figures the admin pages show.
 *
 * Offsets across a router restart: counters live in memory and every loop
 * turn the changed ones are written with one pipelined HSET <prefix>:offsets
 * sent on the publisher connection *before* that turn's delivery PUBLISHes.
 * Redis runs one connection's commands in order, so whenever a gateway saw
 * offset k, the hash already held >= k. A starting router reads the hash
 * (HGETALL) before it subscribes to anything, so numbering resumes above
 * every offset any gateway saw. After a Redis reconnect (Redis may have
 * lost the hash) the router writes all of its counters back. Counters of
 * streams nobody held for RT_OFFSET_IDLE_MS are forgotten (HDEL): the
 * contract only requires monotonic offsets while a gateway holds the
 * stream. */
#ifndef RT_ROUTER_H
#define RT_ROUTER_H

#include "rt_gw.h"
#include "rt_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_loop;
struct rt_router;

struct rt_opts {
	const char *redis_host;
	int redis_port;
	const char *prefix;           /* "herald" */
	uint64_t gateway_timeout_ms;  /* a dead gateway is dropped within this (5000) */
	size_t max_payload;           /* 1 MiB */
	uint64_t offset_idle_ms;      /* 60000 */
	/* Tests: no Redis at all; commands go to send(). */
	bool no_redis;
	void (*send)(void *arg, const char *cmd, size_t len);
	void *send_arg;
};

/* Starts the router on loop (connects to Redis unless no_redis). The
 * caller runs rt_router_flush() at the end of every loop turn
 * (cm_loop_on_turn); hooks cannot be removed, so the router does not
 * register one itself. */
struct rt_router *rt_router_new(struct cm_loop *loop, const struct rt_opts *opts);
/* Disconnects and frees; let the loop run a turn afterwards so that the
 * Redis watchers are released. */
void rt_router_free(struct rt_router *r);

/* Inputs (normally from the subscriber connection). A publish to a stream,
 * a user or everyone (name unused for RT_DELIVER_ALL). */
void rt_router_publish(struct rt_router *r, enum rt_delivery_kind kind, const char *name,
		       size_t name_len, const uint8_t *data, size_t len);
/* One GatewayEvent frame from <prefix>:router. */
void rt_router_gateway_event(struct rt_router *r, const uint8_t *p, size_t len);
/* End of a loop turn: save offsets, send every gateway's frame. */
void rt_router_flush(struct rt_router *r);
/* Drops gateways silent for so long that a dead one goes within
 * gateway_timeout_ms of its death (run every 100 ms). */
void rt_router_expire(struct rt_router *r, uint64_t now);

/* For the admin pages and tests. */
struct rt_stats {
	bool redis_up;
	uint64_t publishes_in, deliveries_out, batches, bad_frames, dropped_no_holder,
		too_large, redis_reconnects, backlog_drops;
	uint64_t redis_dropped_replies; /* bytes: a server ignoring CLIENT REPLY OFF */
	uint64_t cluster_ccu;
	size_t gateways, streams, users, entries;
};
void rt_router_stats(const struct rt_router *r, struct rt_stats *st);
struct rt_table *rt_router_table(struct rt_router *r);
struct rt_gws *rt_router_gws(struct rt_router *r);
uint64_t rt_router_boot_id(const struct rt_router *r);

/* Per-second history (oldest first) for the dashboard. */
#define RT_HISTORY 300
struct rt_sample {
	uint64_t wall_ms;
	uint64_t publishes, deliveries;  /* during that second */
	uint64_t ccu;
};
/* Copies up to cap samples, oldest first; returns how many. */
size_t rt_router_history(const struct rt_router *r, struct rt_sample *out, size_t cap);

#endif
