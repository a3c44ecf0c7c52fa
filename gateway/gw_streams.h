/* gw_streams — the gateway-wide stream table: for each stream with local
 * subscribers, which workers hold subscribers in which client format, the
 * state of the cluster interest (none, pending, live), the subscribers
 * waiting for it to go live, and (standalone mode) the next offset.
 * Sharded by hash into 128 shards with a mutex each; workers touch it only
 * when their own local subscriber count of a stream/format goes 0<->1, on a
 * subscribe that must learn the interest state, and worker 0 on delivery. */
#ifndef GW_STREAMS_H
#define GW_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_SHARDS 128

enum gw_interest { GW_INT_NONE = 0, GW_INT_PENDING, GW_INT_LIVE };

/* A subscribe waiting for the interest to go live. */
struct gw_waiter {
	struct gw_waiter *next;
	uint32_t worker, idx, gen;
	uint64_t id;
	bool reply;             /* false for streams= at connect (no ok sent) */
};

struct gw_streams;

/* live_at_once: standalone mode, where a new stream is live immediately. */
struct gw_streams *gw_streams_new(bool live_at_once);
void gw_streams_free(struct gw_streams *t);

enum gw_sub_result { GW_SUB_LIVE = 0, GW_SUB_WAIT = 1 };

/* A subscriber of `name` appears on worker w in format fmt; first_local says
 * it is the worker's first one in that format (sets the worker's bit).
 * Returns GW_SUB_LIVE when the subscribe may be acknowledged now, or
 * GW_SUB_WAIT after queueing waiter (ownership passes to the table; a NULL
 * waiter is allowed). *reconcile is set when the interest must be
 * (re)announced: the caller tells worker 0. */
int gw_streams_sub(struct gw_streams *t, const char *name, size_t n, unsigned w, unsigned fmt,
		   bool first_local, struct gw_waiter *waiter, bool *reconcile);

/* Worker w has no subscriber left in format fmt. Returns true when the
 * stream is gone from the gateway (the caller tells worker 0). The waiters
 * of a removed stream (subscribes that were still waiting, then cancelled
 * by unsubscribes or closes) go to *waiters, for the caller to answer and
 * free; with waiters NULL they are freed. */
bool gw_streams_unsub(struct gw_streams *t, const char *name, size_t n, unsigned w, unsigned fmt,
		      struct gw_waiter **waiters);

/* Which workers hold subscribers, per format; false when the stream is not
 * held. With next_offset non-NULL, also assigns the next standalone offset. */
bool gw_streams_get(struct gw_streams *t, const char *name, size_t n, uint64_t masks[2],
		    uint64_t *next_offset);

/* True when the stream has subscribers (worker 0's reconcile). */
bool gw_streams_wanted(struct gw_streams *t, const char *name, size_t n);

/* The interest was acknowledged (ok) or failed: sets the state to live or
 * none and returns the waiters (the caller frees them). */
struct gw_waiter *gw_streams_settle(struct gw_streams *t, const char *name, size_t n, bool ok);

/* The number of streams held. */
uint64_t gw_streams_count(struct gw_streams *t);

#endif
