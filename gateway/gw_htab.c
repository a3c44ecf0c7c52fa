#include "gw_htab.h"
#include "cm_log.h"

#include <string.h>

uint64_t gw_hash(const void *p, size_t n)
{
	const uint8_t *s = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

void gw_htab_init(struct gw_htab *t)
{
	t->nb = 16;
	t->n = 0;
	t->b = cm_xcalloc(t->nb, sizeof(*t->b));
}

void gw_htab_destroy(struct gw_htab *t)
{
	free(t->b);
	t->b = NULL;
	t->nb = t->n = 0;
}

struct gw_hnode *gw_htab_find(const struct gw_htab *t, const char *k, size_t n, uint64_t h)
{
	for (struct gw_hnode *nd = t->b[h & (t->nb - 1)]; nd; nd = nd->next)
		if (nd->hash == h && nd->klen == n && !memcmp(nd->key, k, n))
			return nd;
	return NULL;
}

static void grow(struct gw_htab *t)
{
	size_t nb = t->nb * 2;
	struct gw_hnode **b = cm_xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < t->nb; i++) {
		struct gw_hnode *nd = t->b[i], *nx;
		for (; nd; nd = nx) {
			nx = nd->next;
			nd->next = b[nd->hash & (nb - 1)];
			b[nd->hash & (nb - 1)] = nd;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

void gw_htab_insert(struct gw_htab *t, struct gw_hnode *nd)
{
	size_t i;

	if (t->n >= t->nb)
		grow(t);
	i = nd->hash & (t->nb - 1);
	nd->next = t->b[i];
	t->b[i] = nd;
	t->n++;
}

void gw_htab_remove(struct gw_htab *t, struct gw_hnode *nd)
{
	struct gw_hnode **pp = &t->b[nd->hash & (t->nb - 1)];

	while (*pp && *pp != nd)
		pp = &(*pp)->next;
	CM_ASSERT(*pp == nd);
	*pp = nd->next;
	t->n--;
}
