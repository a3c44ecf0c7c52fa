/* gw_sessions — the gateway-wide session table: user id -> the sessions
 * (connections) of that user, each named by worker, slot and generation.
 * Sharded by user id into 128 shards with a mutex each; touched when a
 * connection opens or closes and by worker 0 for direct deliveries. */
#ifndef GW_SESSIONS_H
#define GW_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_sess {
	uint32_t worker, idx, gen;
	uint8_t fmt;
};

struct gw_sessions;

struct gw_sessions *gw_sessions_new(void);
void gw_sessions_free(struct gw_sessions *t);

/* Adds a session; returns true when it is the user's first (user online). */
bool gw_sessions_add(struct gw_sessions *t, const char *uid, size_t n, const struct gw_sess *s);
/* Removes a session; returns true when it was the user's last (offline). */
bool gw_sessions_del(struct gw_sessions *t, const char *uid, size_t n, const struct gw_sess *s);
/* Calls fn for each session of the user (under the shard lock: fn must not
 * call back into the table; fn may be NULL). Returns the number of sessions. */
unsigned gw_sessions_each(struct gw_sessions *t, const char *uid, size_t n,
			  void (*fn)(void *arg, const struct gw_sess *s), void *arg);
/* The number of users with sessions. */
uint64_t gw_sessions_users(struct gw_sessions *t);

#endif
