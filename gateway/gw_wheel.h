/* gw_wheel — a hashed timing wheel over small integer ids (connection
 * slots). Each id sits in at most one slot, the one of its next deadline;
 * advancing the wheel visits only the slots whose tick passed, so 100k idle
 * connections cost nothing until one of them is due. Deadlines beyond one
 * turn of the wheel are parked in the last slot and re-parked when visited.
 * The links live in the caller's objects (found through link()). */
#ifndef GW_WHEEL_H
#define GW_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#define GW_NIL UINT32_MAX

struct gw_wlink {
	uint32_t next, prev;
	uint32_t due;       /* tick of the deadline */
	uint16_t slot;
	bool on;
};

struct gw_wheel {
	uint32_t *heads;
	uint32_t nslots;    /* power of two */
	uint32_t tick_ms;
	uint64_t epoch_ms;
	uint32_t cur;       /* last tick processed */
	struct gw_wlink *(*link)(void *ctx, uint32_t id);
	void *ctx;
};

/* A wheel of nslots (power of two) ticks of tick_ms, starting at now_ms. */
void gw_wheel_init(struct gw_wheel *w, uint32_t nslots, uint32_t tick_ms, uint64_t now_ms,
		   struct gw_wlink *(*link)(void *ctx, uint32_t id), void *ctx);
void gw_wheel_destroy(struct gw_wheel *w);

/* Schedules id at due_ms (replacing any earlier schedule). A deadline in the
 * past fires at the next advance. */
void gw_wheel_add(struct gw_wheel *w, uint32_t id, uint64_t due_ms);
/* Unschedules id (no-op when not scheduled). */
void gw_wheel_del(struct gw_wheel *w, uint32_t id);

/* Fires fire(ctx, id) for every id whose deadline is at or before now_ms;
 * the id is unscheduled before the call, and fire may schedule it again.
 * Returns the number fired. */
unsigned gw_wheel_advance(struct gw_wheel *w, uint64_t now_ms,
			  void (*fire)(void *ctx, uint32_t id));

#endif
