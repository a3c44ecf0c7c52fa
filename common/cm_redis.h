/* cm_redis — hiredis's async API on a cm_loop, and a reconnecting client.
 *
 * The adapter maps hiredis's event hooks onto cm_loop poll watchers: a
 * multishot POLLIN watcher for reads, a one-shot POLLOUT watcher armed
 * whenever hiredis has output. Commands issued during a loop turn are only
 * buffered; the POLLOUT watcher fires in the next turn and everything goes
 * out in one write (hiredis pipelines by itself).
 *
 * The client (struct cm_redis) connects non-blocking, and when the
 * connection fails or drops it reconnects with backoff (100 ms doubling,
 * capped at 1 s so that service resumes within 2 s of Redis returning). On
 * every successful connect it calls up() — the place to (re)subscribe and
 * resync; on every loss after a connect it calls down(). */
#ifndef CM_REDIS_H
#define CM_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_loop;
struct redisAsyncContext;
struct cm_redis;

/* Attaches a fresh async context to loop (sets ac->ev). Returns 0, or
 * -EEXIST when ac already has event hooks. The attachment goes away with
 * the context (hiredis calls its cleanup hook). */
int cm_redis_attach(struct cm_loop *loop, struct redisAsyncContext *ac);

struct cm_redis_cbs {
	/* Connected (first time or again): ac is ready for commands. */
	void (*up)(void *arg, struct redisAsyncContext *ac);
	/* The connection was lost; commands in flight got NULL replies. May
	 * be NULL. */
	void (*down)(void *arg);
};

/* Starts connecting to host:port at once. name only labels log lines. */
struct cm_redis *cm_redis_new(struct cm_loop *loop, const char *host, int port,
			      const char *name, const struct cm_redis_cbs *cbs, void *arg);
/* Disconnects (pending command callbacks get NULL replies, down() is not
 * called) and frees the client. Must not be called from a reply callback
 * of this client's own connection. */
void cm_redis_free(struct cm_redis *r);

/* The connected context, or NULL while disconnected or connecting. */
struct redisAsyncContext *cm_redis_ctx(const struct cm_redis *r);
bool cm_redis_up(const struct cm_redis *r);
/* Bytes buffered in ac for Redis and not written yet (a full pipeline
 * means Redis is not keeping up: callers bound it). */
size_t cm_redis_pending(const struct redisAsyncContext *ac);

/* Fire-and-forget writes. cm_redis_reply_off() asks Redis to stop
 * replying on ac's connection (CLIENT REPLY OFF); call it first thing in
 * up(), on a connection used for nothing else. cm_redis_send_noreply()
 * then queues a RESP-formatted command (cmd, len) with no reply callback:
 * hiredis takes a reply it did not ask for as a protocol error and drops
 * the connection, so the two go together. The write leaves with the turn's
 * others; Redis saves a reply write and the caller a wake-up to read it,
 * per pipeline. Returns 0, or -ENOTCONN while ac is going away, or -ENOMEM
 * (cm_redis_reply_off: -EINVAL when ac is not attached to a cm_loop). */
int cm_redis_reply_off(struct redisAsyncContext *ac);
int cm_redis_send_noreply(struct redisAsyncContext *ac, const char *cmd, size_t len);
/* Bytes r's reply-off connections received and dropped, over its
 * reconnects: 0 unless the server ignores CLIENT REPLY OFF (logged once per
 * connection; hiredis never sees them). */
uint64_t cm_redis_dropped(const struct cm_redis *r);

/* Successful connects after the first one. */
uint64_t cm_redis_reconnects(const struct cm_redis *r);

#endif
