/* gw_htab — a small intrusive hash table keyed by byte strings (stream
 * names, user ids). Nodes live inside their owner's struct; the table never
 * allocates nodes and never frees them. Not thread-safe: callers lock. */
#ifndef GW_HTAB_H
#define GW_HTAB_H

#include <stddef.h>
#include <stdint.h>

struct gw_hnode {
	struct gw_hnode *next;
	uint64_t hash;
	const char *key;
	size_t klen;
};

struct gw_htab {
	struct gw_hnode **b;
	size_t nb, n;
};

/* A 64-bit hash of p[0..n) (FNV-1a with a final mix). */
uint64_t gw_hash(const void *p, size_t n);

void gw_htab_init(struct gw_htab *t);
/* Frees the bucket array (not the nodes). */
void gw_htab_destroy(struct gw_htab *t);
/* The node with key k (hash h = gw_hash(k, n)), or NULL. */
struct gw_hnode *gw_htab_find(const struct gw_htab *t, const char *k, size_t n, uint64_t h);
/* Inserts a node whose key, klen and hash are set; the key must be absent. */
void gw_htab_insert(struct gw_htab *t, struct gw_hnode *nd);
/* Unlinks a node that is in the table. */
void gw_htab_remove(struct gw_htab *t, struct gw_hnode *nd);

/* Iteration over every node; safe to remove the current node. */
#define gw_htab_foreach(t, i, nd, nx)                                         \
	for (size_t i = 0; i < (t)->nb; i++)                                  \
		for (struct gw_hnode *nd = (t)->b[i], *nx = nd ? nd->next : NULL; nd; \
		     nd = nx, nx = nd ? nd->next : NULL)

#endif
