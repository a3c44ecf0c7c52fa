/* rt_gw — the router's gateway registry: one record per live gateway, found
 * by id or by slot (the small number the tables store as a holder). */
#ifndef RT_GW_H
#define RT_GW_H

#include "rt_frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ids are 1..RT_GW_ID_MAX bytes. */
#define RT_GW_ID_MAX 200

enum rt_gw_state {
	RT_GW_SYNCING,  /* asked for a resync, not answered yet */
	RT_GW_UP,
};

struct rt_gw {
	uint16_t slot;
	char *id;              /* NUL-terminated copy */
	size_t id_len;
	char *chan;            /* <prefix>:gw:<id> */
	size_t chan_len;
	uint64_t boot_id;
	uint32_t threads;
	char version[32];
	uint64_t ccu, streams;
	uint64_t last_seen;    /* loop ms of the last event */
	uint64_t joined_wall;  /* wall ms */
	enum rt_gw_state state;
	uint64_t epoch;        /* resync asked for */
	uint32_t mark;         /* holder mark for this epoch */
	uint64_t resync_sent;  /* loop ms */
	uint64_t restarted_at, dup_warned;
	uint64_t prev_boot_id; /* the process the last restart replaced */
	/* This turn's outgoing frame. */
	struct rt_frame out;
	uint64_t *acks;
	size_t nacks, capacks;
	bool want_resync;
	bool queued;           /* in the router's flush list */
	uint64_t deliveries_out, frames_out;
};

struct rt_gws;

struct rt_gws *rt_gws_new(void);
/* Frees every record. */
void rt_gws_free(struct rt_gws *g);

struct rt_gw *rt_gws_find(const struct rt_gws *g, const char *id, size_t len);
/* A new record for id (not yet present; 1..RT_GW_ID_MAX bytes) with the
 * channel <prefix>:gw:<id>. NULL when every slot is taken. */
struct rt_gw *rt_gws_add(struct rt_gws *g, const char *id, size_t len, const char *prefix);
/* Removes and frees gw; its slot may be reused at once. */
void rt_gws_remove(struct rt_gws *g, struct rt_gw *gw);
/* The gateway in slot, or NULL. */
struct rt_gw *rt_gws_at(const struct rt_gws *g, uint16_t slot);
size_t rt_gws_count(const struct rt_gws *g);
/* Upper bound of used slots (iterate 0..end with rt_gws_at). */
size_t rt_gws_end(const struct rt_gws *g);
/* Adds an interest ack to gw's next frame. */
void rt_gw_ack(struct rt_gw *gw, uint64_t id);

#endif
