/* rt_table — the router's global tables: which gateways hold each stream
 * (the stream tracker) and each user (the user directory), and every
 * stream's offset counter.
 *
 * An entry is a stream or a user ("user:<uid>" for clients) with a small
 * array of holders (gateway slots). Each holder carries a mark: the resync
 * epoch under which it was last confirmed, so that a finished resync can
 * drop what the gateway no longer named. Offsets count messages 1, 2, 3…;
 * changed counters are listed as dirty until the router saved them.
 * Entries without holders are kept for a while (their offsets must survive
 * short gaps) and then expired. */
#ifndef RT_TABLE_H
#define RT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rt_kind { RT_STREAM = 0, RT_USER = 1 };

struct rt_holder {
	uint16_t gw;     /* gateway slot */
	uint32_t mark;
};

struct rt_entry {
	uint64_t offset;       /* last offset assigned; 0 = none yet */
	uint64_t saved;        /* last offset written to Redis */
	uint64_t empty_since;  /* ms when the last holder left; 0 while held */
	struct rt_holder *h;
	uint32_t nh, caph;
	bool dirty;
	uint8_t kind;
	uint16_t len;          /* of the name */
	char key[];            /* kind byte ('s' or 'u') then the name */
};

static inline const char *rt_entry_name(const struct rt_entry *e) { return e->key + 1; }

struct rt_table;

struct rt_table *rt_table_new(void);
void rt_table_free(struct rt_table *t);

/* Names are 1..RT_NAME_MAX bytes. */
#define RT_NAME_MAX 1024

/* The entry for (kind, name), or NULL. */
struct rt_entry *rt_table_get(struct rt_table *t, enum rt_kind kind, const char *name, size_t len);

/* Gateway gw holds (kind, name), confirmed under mark. Creates the entry if
 * needed. Returns the entry, or NULL for an empty or too long name. *added
 * (may be NULL) tells whether gw was not a holder before. */
struct rt_entry *rt_table_hold(struct rt_table *t, enum rt_kind kind, const char *name,
			       size_t len, uint16_t gw, uint32_t mark, bool *added);

/* Gateway gw no longer holds (kind, name). Returns true when it did. */
bool rt_table_release(struct rt_table *t, enum rt_kind kind, const char *name, size_t len,
		      uint16_t gw, uint64_t now);

/* Removes gw from every entry (gateway gone or restarted). */
void rt_table_drop_gw(struct rt_table *t, uint16_t gw, uint64_t now);

/* Removes gw's holders whose mark differs from mark (end of a resync). */
void rt_table_sweep_gw(struct rt_table *t, uint16_t gw, uint32_t mark, uint64_t now);

/* The next offset of e (last + 1), listing e as dirty. */
uint64_t rt_table_next_offset(struct rt_table *t, struct rt_entry *e);

/* Raises (kind, name)'s counter to at least offset (a saved value read back
 * at start), creating an unheld entry if needed. Not dirty. */
void rt_table_floor(struct rt_table *t, enum rt_kind kind, const char *name, size_t len,
		    uint64_t offset, uint64_t now);

/* The entries whose offset changed since the last rt_table_clear_dirty(). */
struct rt_entry *const *rt_table_dirty(const struct rt_table *t, size_t *n);
/* Marks the dirty entries saved (saved = offset) and empties the list. */
void rt_table_clear_dirty(struct rt_table *t);

/* Frees entries without holders for at least idle_ms (and not dirty),
 * calling fn(arg, e) on each just before. Returns how many. */
size_t rt_table_expire(struct rt_table *t, uint64_t now, uint64_t idle_ms,
		       void (*fn)(void *arg, const struct rt_entry *e), void *arg);

/* Visits every entry (do not modify the table from fn). */
void rt_table_each(struct rt_table *t, void (*fn)(void *arg, struct rt_entry *e), void *arg);

/* Entries, and entries of a kind that have at least one holder. */
size_t rt_table_count(const struct rt_table *t);
size_t rt_table_held(const struct rt_table *t, enum rt_kind kind);

/* The holder record of gw in e, or NULL. */
struct rt_holder *rt_entry_holder(struct rt_entry *e, uint16_t gw);

#endif
