/* rt_map — a hash map from byte-string keys to pointers (chained, grows by
 * doubling). The map copies keys; values belong to the caller. */
#ifndef RT_MAP_H
#define RT_MAP_H

#include <stddef.h>
#include <stdint.h>

struct rt_map;

struct rt_map *rt_map_new(void);
/* Frees the map and its keys, not the values. */
void rt_map_free(struct rt_map *m);
size_t rt_map_count(const struct rt_map *m);

/* The value stored under key, or NULL. */
void *rt_map_get(const struct rt_map *m, const void *key, size_t len);
/* Stores val under key (replacing any previous value). val must not be NULL. */
void rt_map_put(struct rt_map *m, const void *key, size_t len, void *val);
/* Removes key; returns its value, or NULL when absent. */
void *rt_map_del(struct rt_map *m, const void *key, size_t len);

/* Iteration: start with it = {0}; each call returns the next value (and its
 * key), NULL at the end. The current item may be deleted while iterating;
 * inserting during an iteration may skip or repeat items. */
struct rt_map_iter {
	size_t bucket;
	void *next;
	int started;
};
void *rt_map_next(const struct rt_map *m, struct rt_map_iter *it, const void **key, size_t *len);

uint64_t rt_hash(const void *key, size_t len);

#endif
