#include "rt_table.h"
#include "cm_client.h"
#include "rt_map.h"

#include "cm_log.h"

#include <string.h>

struct rt_table {
	struct rt_map *map;
	struct rt_entry **dirty;
	size_t ndirty, capdirty;
	size_t held[2];
	char key[RT_NAME_MAX + 1];
};

struct rt_table *rt_table_new(void)
{
	struct rt_table *t = cm_xcalloc(1, sizeof(*t));
	t->map = rt_map_new();
	return t;
}

static void entry_free(struct rt_entry *e)
{
	free(e->h);
	free(e);
}

void rt_table_free(struct rt_table *t)
{
	struct rt_map_iter it = { 0 };
	struct rt_entry *e;

	if (!t)
		return;
	while ((e = rt_map_next(t->map, &it, NULL, NULL)))
		entry_free(e);
	rt_map_free(t->map);
	free(t->dirty);
	free(t);
}

static size_t mkkey(struct rt_table *t, enum rt_kind kind, const char *name, size_t len)
{
	t->key[0] = kind == RT_USER ? 'u' : 's';
	memcpy(t->key + 1, name, len);
	return len + 1;
}

struct rt_entry *rt_table_get(struct rt_table *t, enum rt_kind kind, const char *name, size_t len)
{
	if (!len || len > RT_NAME_MAX)
		return NULL;
	return rt_map_get(t->map, t->key, mkkey(t, kind, name, len));
}

static struct rt_entry *get_or_create(struct rt_table *t, enum rt_kind kind, const char *name,
				      size_t len, uint64_t now)
{
	size_t klen;
	struct rt_entry *e;

	if (!len || len > RT_NAME_MAX)
		return NULL;
	/* Streams are client stream names; "user:" ones are reserved (they
	 * would share the offsets field of the user's own stream). */
	if (kind == RT_STREAM && (!cm_stream_valid(name, len) ||
				  (len >= 5 && !memcmp(name, "user:", 5))))
		return NULL;
	klen = mkkey(t, kind, name, len);
	e = rt_map_get(t->map, t->key, klen);
	if (e)
		return e;
	e = cm_xcalloc(1, sizeof(*e) + klen + 1);
	e->kind = kind;
	e->len = (uint16_t)len;
	memcpy(e->key, t->key, klen);
	e->key[klen] = 0;
	e->empty_since = now ? now : 1;
	rt_map_put(t->map, e->key, klen, e);
	return e;
}

struct rt_holder *rt_entry_holder(struct rt_entry *e, uint16_t gw)
{
	for (uint32_t i = 0; i < e->nh; i++)
		if (e->h[i].gw == gw)
			return &e->h[i];
	return NULL;
}

struct rt_entry *rt_table_hold(struct rt_table *t, enum rt_kind kind, const char *name,
			       size_t len, uint16_t gw, uint32_t mark, bool *added)
{
	struct rt_entry *e = get_or_create(t, kind, name, len, 1);
	struct rt_holder *h;

	if (added)
		*added = false;
	if (!e)
		return NULL;
	if ((h = rt_entry_holder(e, gw))) {
		h->mark = mark;
		return e;
	}
	if (e->nh == e->caph) {
		e->caph = e->caph ? e->caph * 2 : 2;
		e->h = cm_xrealloc(e->h, e->caph * sizeof(*e->h));
	}
	e->h[e->nh].gw = gw;
	e->h[e->nh].mark = mark;
	if (e->nh++ == 0) {
		t->held[e->kind]++;
		e->empty_since = 0;
	}
	if (added)
		*added = true;
	return e;
}

static void remove_holder(struct rt_table *t, struct rt_entry *e, uint32_t i, uint64_t now)
{
	/* Order does not matter: swap with the last. */
	e->h[i] = e->h[--e->nh];
	if (e->nh == 0) {
		t->held[e->kind]--;
		e->empty_since = now ? now : 1;
	}
}

bool rt_table_release(struct rt_table *t, enum rt_kind kind, const char *name, size_t len,
		      uint16_t gw, uint64_t now)
{
	struct rt_entry *e = rt_table_get(t, kind, name, len);

	if (!e)
		return false;
	for (uint32_t i = 0; i < e->nh; i++)
		if (e->h[i].gw == gw) {
			remove_holder(t, e, i, now);
			return true;
		}
	return false;
}

static void sweep(struct rt_table *t, uint16_t gw, bool all, uint32_t mark, uint64_t now)
{
	struct rt_map_iter it = { 0 };
	struct rt_entry *e;

	while ((e = rt_map_next(t->map, &it, NULL, NULL)))
		for (uint32_t i = 0; i < e->nh; i++)
			if (e->h[i].gw == gw && (all || e->h[i].mark != mark)) {
				remove_holder(t, e, i, now);
				break;
			}
}

void rt_table_drop_gw(struct rt_table *t, uint16_t gw, uint64_t now)
{
	sweep(t, gw, true, 0, now);
}

void rt_table_sweep_gw(struct rt_table *t, uint16_t gw, uint32_t mark, uint64_t now)
{
	sweep(t, gw, false, mark, now);
}

uint64_t rt_table_next_offset(struct rt_table *t, struct rt_entry *e)
{
	if (!e->dirty) {
		if (t->ndirty == t->capdirty) {
			t->capdirty = t->capdirty ? t->capdirty * 2 : 256;
			t->dirty = cm_xrealloc(t->dirty, t->capdirty * sizeof(*t->dirty));
		}
		t->dirty[t->ndirty++] = e;
		e->dirty = true;
	}
	return ++e->offset;
}

void rt_table_floor(struct rt_table *t, enum rt_kind kind, const char *name, size_t len,
		    uint64_t offset, uint64_t now)
{
	struct rt_entry *e = get_or_create(t, kind, name, len, now);

	if (!e)
		return;
	if (e->offset < offset)
		e->offset = offset;
	if (e->saved < offset)
		e->saved = offset;
}

struct rt_entry *const *rt_table_dirty(const struct rt_table *t, size_t *n)
{
	*n = t->ndirty;
	return t->dirty;
}

void rt_table_clear_dirty(struct rt_table *t)
{
	for (size_t i = 0; i < t->ndirty; i++) {
		t->dirty[i]->dirty = false;
		t->dirty[i]->saved = t->dirty[i]->offset;
	}
	t->ndirty = 0;
}

size_t rt_table_expire(struct rt_table *t, uint64_t now, uint64_t idle_ms,
		       void (*fn)(void *arg, const struct rt_entry *e), void *arg)
{
	struct rt_map_iter it = { 0 };
	struct rt_entry *e;
	const void *key;
	size_t klen, n = 0;

	while ((e = rt_map_next(t->map, &it, &key, &klen))) {
		if (e->nh || e->dirty || !e->empty_since || now - e->empty_since < idle_ms)
			continue;
		if (fn)
			fn(arg, e);
		rt_map_del(t->map, key, klen);
		entry_free(e);
		n++;
	}
	return n;
}

void rt_table_each(struct rt_table *t, void (*fn)(void *arg, struct rt_entry *e), void *arg)
{
	struct rt_map_iter it = { 0 };
	struct rt_entry *e;

	while ((e = rt_map_next(t->map, &it, NULL, NULL)))
		fn(arg, e);
}

size_t rt_table_count(const struct rt_table *t)
{
	return rt_map_count(t->map);
}

size_t rt_table_held(const struct rt_table *t, enum rt_kind kind)
{
	return t->held[kind];
}
