/* gw_cluster — the gateway's link to the router, through Redis pub/sub
 * (proto/cluster.proto frames). It lives on one loop (the gateway's worker
 * 0) and is used from that thread only; other workers reach it by posting
 * to that loop.
 *
 * Outgoing (to PUBLISH <prefix>:router): hello, heartbeats with CCU and the
 * number of streams held, interest added/removed, user online/offline, a
 * client's in-band publish, resync answers. Incoming (SUBSCRIBE
 * <prefix>:gw:<id>): delivery batches and resync requests, handed to the
 * callbacks below. Redis is spoken asynchronously (hiredis on the loop);
 * when Redis goes away the link reconnects with backoff, resubscribes and
 * re-announces everything through the resync callback. */
#ifndef GW_CLUSTER_H
#define GW_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_loop;
struct gw_cluster;

struct gw_cluster_opts {
	const char *redis_host;
	int redis_port;
	const char *prefix;      /* "herald" */
	const char *gateway_id;
	unsigned threads;
	const char *version;     /* the gateway's version string */
};

struct gw_cluster_cbs {
	/* One delivery to the local subscribers of a stream. The data pointer
	 * is valid during the call only. Deliveries of one batch arrive in
	 * order, then batch_end. */
	void (*deliver_stream)(void *ctx, const char *stream, size_t stream_len,
			       uint64_t offset, const uint8_t *data, size_t len);
	/* To every local session of a user (stream "user:<uid>"). */
	void (*deliver_user)(void *ctx, const char *uid, size_t uid_len,
			     uint64_t offset, const uint8_t *data, size_t len);
	/* To every local client (stream "*", offset 0). */
	void (*deliver_all)(void *ctx, const uint8_t *data, size_t len);
	/* The end of one delivery batch (a good moment to hand work to workers). */
	void (*batch_end)(void *ctx);
	/* The router wants everything this gateway holds (router restart,
	 * Redis reconnect): call gw_cluster_resync_add() for every stream and
	 * user held, then gw_cluster_resync_done(). May be called again later. */
	void (*resync)(void *ctx);
};

struct gw_cluster *gw_cluster_new(struct cm_loop *loop, const struct gw_cluster_opts *opts,
				  const struct gw_cluster_cbs *cbs, void *ctx);
/* Says goodbye to the router (best effort) and frees the link. */
void gw_cluster_free(struct gw_cluster *c);

/* The first local subscriber of a stream joined (add) or the last one left.
 * For add, done(arg, true) is called once the router acknowledged the
 * interest (the subscription is then live cluster-wide); done(arg, false)
 * when no acknowledgement came within 5 s. done may be NULL. For remove,
 * done is called at once with true. */
void gw_cluster_interest(struct gw_cluster *c, const char *stream, size_t len, bool add,
			 void (*done)(void *arg, bool ok), void *arg);

/* The first local session of a user connected (online) or the last one left. */
void gw_cluster_user(struct gw_cluster *c, const char *uid, size_t len, bool online);

/* A client's in-band publish: relayed by the router to every gateway. */
void gw_cluster_publish(struct gw_cluster *c, const char *stream, size_t stream_len,
			const uint8_t *data, size_t len);

/* During a resync: one stream (is_user false) or user (true) held here. */
void gw_cluster_resync_add(struct gw_cluster *c, bool is_user, const char *name, size_t len);
void gw_cluster_resync_done(struct gw_cluster *c);

/* Figures sent with each heartbeat (every 500 ms). */
void gw_cluster_set_stats(struct gw_cluster *c, uint64_t ccu, uint64_t streams);

/* For /metrics and /readyz. */
struct gw_cluster_stats {
	bool redis_up;            /* subscribed and able to publish */
	uint64_t redis_reconnects;
	uint64_t redis_dropped_replies; /* bytes: a server ignoring CLIENT REPLY OFF */
	uint64_t frames_in, frames_bad, deliveries_in;
};
void gw_cluster_get_stats(const struct gw_cluster *c, struct gw_cluster_stats *st);

#endif
