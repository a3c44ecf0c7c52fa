#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "router/rt_map.h"
#include "router/rt_table.h"

#define S(x) x, strlen(x)

Test(rt_map, stores_finds_and_deletes_many_keys)
{
	struct rt_map *m = rt_map_new();
	char key[32];
	static int vals[5000];

	for (int i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof(key), "k%d", i);
		vals[i] = i;
		rt_map_put(m, key, (size_t)n, &vals[i]);
	}
	cr_assert_eq(rt_map_count(m), 5000);
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof(key), "k%d", i);
		int *v = rt_map_get(m, key, (size_t)n);
		cr_assert(v && *v == i);
	}
	cr_assert_null(rt_map_get(m, S("k5000")));
	/* delete the even ones while iterating */
	struct rt_map_iter it = { 0 };
	const void *k;
	size_t kl, seen = 0;
	int *v;
	while ((v = rt_map_next(m, &it, &k, &kl))) {
		seen++;
		if (*v % 2 == 0)
			cr_assert_eq(rt_map_del(m, k, kl), v);
	}
	cr_assert_eq(seen, 5000);
	cr_assert_eq(rt_map_count(m), 2500);
	cr_assert_null(rt_map_get(m, S("k2")));
	cr_assert_not_null(rt_map_get(m, S("k3")));
	rt_map_free(m);
}

Test(rt_map, keys_are_binary_safe)
{
	struct rt_map *m = rt_map_new();
	int a = 1, b = 2;
	rt_map_put(m, "a\0b", 3, &a);
	rt_map_put(m, "a\0c", 3, &b);
	cr_assert_eq(rt_map_get(m, "a\0b", 3), &a);
	cr_assert_eq(rt_map_get(m, "a\0c", 3), &b);
	cr_assert_null(rt_map_get(m, "a", 1));
	rt_map_free(m);
}

Test(rt_table, tracks_holders_per_stream)
{
	struct rt_table *t = rt_table_new();
	bool added;
	struct rt_entry *e = rt_table_hold(t, RT_STREAM, S("clan:7"), 3, 1, &added);

	cr_assert_not_null(e);
	cr_assert(added);
	rt_table_hold(t, RT_STREAM, S("clan:7"), 5, 1, &added);
	cr_assert(added);
	rt_table_hold(t, RT_STREAM, S("clan:7"), 3, 1, &added);
	cr_assert_not(added, "holding twice is idempotent");
	cr_assert_eq(e->nh, 2);
	cr_assert_eq(rt_table_held(t, RT_STREAM), 1);
	/* users live apart from streams of the same name */
	cr_assert_null(rt_table_get(t, RT_USER, S("clan:7")));
	cr_assert(rt_table_release(t, RT_STREAM, S("clan:7"), 3, 100));
	cr_assert_not(rt_table_release(t, RT_STREAM, S("clan:7"), 3, 100));
	cr_assert_eq(e->nh, 1);
	cr_assert_eq(e->h[0].gw, 5);
	cr_assert(rt_table_release(t, RT_STREAM, S("clan:7"), 5, 100));
	cr_assert_eq(rt_table_held(t, RT_STREAM), 0);
	cr_assert_eq(e->empty_since, 100);
	cr_assert_not_null(rt_table_get(t, RT_STREAM, S("clan:7")), "kept for its offset");
	rt_table_free(t);
}

Test(rt_table, rejects_empty_and_huge_names)
{
	struct rt_table *t = rt_table_new();
	static char big[RT_NAME_MAX + 1];
	memset(big, 'a', sizeof(big));
	cr_assert_null(rt_table_hold(t, RT_STREAM, "", 0, 0, 0, NULL));
	cr_assert_null(rt_table_hold(t, RT_USER, big, sizeof(big), 0, 0, NULL));
	cr_assert_not_null(rt_table_hold(t, RT_USER, big, RT_NAME_MAX, 0, 0, NULL));
	/* streams follow the client stream names: at most 128 bytes */
	cr_assert_null(rt_table_hold(t, RT_STREAM, big, 129, 0, 0, NULL));
	cr_assert_not_null(rt_table_hold(t, RT_STREAM, big, 128, 0, 0, NULL));
	rt_table_free(t);
}

Test(rt_table, refuses_reserved_and_invalid_stream_names)
{
	struct rt_table *t = rt_table_new();
	/* "user:x" as a stream would share the offsets field of user x */
	cr_assert_null(rt_table_hold(t, RT_STREAM, S("user:x"), 0, 0, NULL));
	cr_assert_null(rt_table_hold(t, RT_STREAM, S("a b"), 0, 0, NULL));
	cr_assert_null(rt_table_hold(t, RT_STREAM, S("*"), 0, 0, NULL));
	cr_assert_not_null(rt_table_hold(t, RT_STREAM, S("users:x"), 0, 0, NULL));
	cr_assert_not_null(rt_table_hold(t, RT_USER, S("x"), 0, 0, NULL));
	rt_table_free(t);
}

Test(rt_table, offsets_are_contiguous_and_listed_dirty_once)
{
	struct rt_table *t = rt_table_new();
	struct rt_entry *a = rt_table_hold(t, RT_STREAM, S("a"), 0, 0, NULL);
	struct rt_entry *u = rt_table_hold(t, RT_USER, S("a"), 0, 0, NULL);
	size_t n;

	for (uint64_t i = 1; i <= 100; i++)
		cr_assert_eq(rt_table_next_offset(t, a), i);
	cr_assert_eq(rt_table_next_offset(t, u), 1, "user streams count on their own");
	struct rt_entry *const *d = rt_table_dirty(t, &n);
	cr_assert_eq(n, 2);
	cr_assert(d[0] == a && d[1] == u);
	rt_table_clear_dirty(t);
	cr_assert_eq(a->saved, 100);
	rt_table_dirty(t, &n);
	cr_assert_eq(n, 0);
	cr_assert_eq(rt_table_next_offset(t, a), 101);
	rt_table_free(t);
}

Test(rt_table, floor_raises_but_never_lowers)
{
	struct rt_table *t = rt_table_new();
	struct rt_entry *e;

	rt_table_floor(t, RT_STREAM, S("s"), 41, 10);
	e = rt_table_get(t, RT_STREAM, S("s"));
	cr_assert_not_null(e);
	cr_assert_eq(e->nh, 0);
	rt_table_floor(t, RT_STREAM, S("s"), 7, 10);
	cr_assert_eq(e->offset, 41);
	rt_table_hold(t, RT_STREAM, S("s"), 1, 1, NULL);
	cr_assert_eq(rt_table_next_offset(t, e), 42, "numbering resumes above the floor");
	rt_table_free(t);
}

Test(rt_table, dropping_a_gateway_releases_everything_it_held)
{
	struct rt_table *t = rt_table_new();
	char name[16];

	for (int i = 0; i < 100; i++) {
		int n = snprintf(name, sizeof(name), "s%d", i);
		rt_table_hold(t, RT_STREAM, name, (size_t)n, 2, 0, NULL);
		if (i % 2)
			rt_table_hold(t, RT_STREAM, name, (size_t)n, 3, 0, NULL);
	}
	rt_table_hold(t, RT_USER, S("u"), 2, 0, NULL);
	rt_table_drop_gw(t, 2, 50);
	cr_assert_eq(rt_table_held(t, RT_STREAM), 50);
	cr_assert_eq(rt_table_held(t, RT_USER), 0);
	for (int i = 0; i < 100; i++) {
		int n = snprintf(name, sizeof(name), "s%d", i);
		struct rt_entry *e = rt_table_get(t, RT_STREAM, name, (size_t)n);
		cr_assert_eq(e->nh, (uint32_t)(i % 2));
		cr_assert_null(rt_entry_holder(e, 2));
	}
	rt_table_free(t);
}

Test(rt_table, resync_sweep_drops_what_was_not_reconfirmed)
{
	struct rt_table *t = rt_table_new();

	rt_table_hold(t, RT_STREAM, S("keep"), 4, 1, NULL);
	rt_table_hold(t, RT_STREAM, S("gone"), 4, 1, NULL);
	rt_table_hold(t, RT_STREAM, S("other"), 5, 1, NULL);
	/* resync epoch 2: only "keep" is named again */
	rt_table_hold(t, RT_STREAM, S("keep"), 4, 2, NULL);
	rt_table_sweep_gw(t, 4, 2, 10);
	cr_assert_eq(rt_table_get(t, RT_STREAM, S("keep"))->nh, 1);
	cr_assert_eq(rt_table_get(t, RT_STREAM, S("gone"))->nh, 0);
	cr_assert_eq(rt_table_get(t, RT_STREAM, S("other"))->nh, 1, "other gateways untouched");
	rt_table_free(t);
}

static int expired;
static void count_expired(void *arg, const struct rt_entry *e)
{
	(void)arg;
	(void)e;
	expired++;
}

Test(rt_table, expires_only_long_unheld_clean_entries)
{
	struct rt_table *t = rt_table_new();
	struct rt_entry *d;

	rt_table_hold(t, RT_STREAM, S("held"), 1, 1, NULL);
	rt_table_hold(t, RT_STREAM, S("old"), 1, 1, NULL);
	rt_table_release(t, RT_STREAM, S("old"), 1, 1000);
	rt_table_hold(t, RT_STREAM, S("recent"), 1, 1, NULL);
	rt_table_release(t, RT_STREAM, S("recent"), 1, 5000);
	d = rt_table_hold(t, RT_STREAM, S("dirty"), 1, 1, NULL);
	rt_table_next_offset(t, d);
	rt_table_release(t, RT_STREAM, S("dirty"), 1, 1000);
	expired = 0;
	cr_assert_eq(rt_table_expire(t, 6000, 3000, count_expired, NULL), 1);
	cr_assert_eq(expired, 1);
	cr_assert_null(rt_table_get(t, RT_STREAM, S("old")));
	cr_assert_not_null(rt_table_get(t, RT_STREAM, S("recent")));
	cr_assert_not_null(rt_table_get(t, RT_STREAM, S("held")));
	cr_assert_not_null(rt_table_get(t, RT_STREAM, S("dirty")), "unsaved offset kept");
	rt_table_clear_dirty(t);
	cr_assert_eq(rt_table_expire(t, 6000, 3000, NULL, NULL), 1);
	cr_assert_eq(rt_table_count(t), 2);
	rt_table_free(t);
}
