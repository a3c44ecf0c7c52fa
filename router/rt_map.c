#include "rt_map.h"

#include "cm_log.h"

#include <string.h>

struct rt_node {
	struct rt_node *next;
	uint64_t hash;
	void *val;
	size_t len;
	char key[];
};

struct rt_map {
	struct rt_node **b;
	size_t nb, count;
};

/* FNV-1a, 64 bit: keys are short names. */
uint64_t rt_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 29);
}

struct rt_map *rt_map_new(void)
{
	struct rt_map *m = cm_xcalloc(1, sizeof(*m));
	m->nb = 64;
	m->b = cm_xcalloc(m->nb, sizeof(*m->b));
	return m;
}

void rt_map_free(struct rt_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nb; i++) {
		struct rt_node *n = m->b[i];
		while (n) {
			struct rt_node *next = n->next;
			free(n);
			n = next;
		}
	}
	free(m->b);
	free(m);
}

size_t rt_map_count(const struct rt_map *m)
{
	return m->count;
}

static struct rt_node **find(const struct rt_map *m, const void *key, size_t len, uint64_t h)
{
	struct rt_node **pp = &m->b[h & (m->nb - 1)];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && (*pp)->len == len && !memcmp((*pp)->key, key, len))
			return pp;
	return pp;
}

void *rt_map_get(const struct rt_map *m, const void *key, size_t len)
{
	struct rt_node **pp = find(m, key, len, rt_hash(key, len));
	return *pp ? (*pp)->val : NULL;
}

static void grow(struct rt_map *m)
{
	size_t nb = m->nb * 2;
	struct rt_node **b = cm_xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < m->nb; i++) {
		struct rt_node *n = m->b[i];
		while (n) {
			struct rt_node *next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
			n = next;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

void rt_map_put(struct rt_map *m, const void *key, size_t len, void *val)
{
	uint64_t h = rt_hash(key, len);
	struct rt_node **pp = find(m, key, len, h), *n;

	CM_ASSERT(val != NULL);
	if (*pp) {
		(*pp)->val = val;
		return;
	}
	n = cm_xmalloc(sizeof(*n) + len);
	n->next = NULL;
	n->hash = h;
	n->val = val;
	n->len = len;
	memcpy(n->key, key, len);
	*pp = n;
	if (++m->count > m->nb)
		grow(m);
}

void *rt_map_del(struct rt_map *m, const void *key, size_t len)
{
	struct rt_node **pp = find(m, key, len, rt_hash(key, len)), *n = *pp;
	void *val;

	if (!n)
		return NULL;
	*pp = n->next;
	val = n->val;
	free(n);
	m->count--;
	return val;
}

void *rt_map_next(const struct rt_map *m, struct rt_map_iter *it, const void **key, size_t *len)
{
	struct rt_node *n = it->next;

	if (!it->started) {
		it->started = 1;
		it->bucket = 0;
		n = m->b[0];
	}
	while (!n) {
		if (++it->bucket >= m->nb)
			return NULL;
		n = m->b[it->bucket];
	}
	/* Remember the successor now so that n itself may be deleted. */
	it->next = n->next;
	if (key)
		*key = n->key;
	if (len)
		*len = n->len;
	return n->val;
}
