#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw.h"
#include "gateway/gw_htab.h"

struct item {
	struct gw_hnode h;
	char name[16];
};

static struct item *mk(const char *s)
{
	struct item *it = calloc(1, sizeof(*it));
	snprintf(it->name, sizeof(it->name), "%s", s);
	it->h.key = it->name;
	it->h.klen = strlen(it->name);
	it->h.hash = gw_hash(it->name, it->h.klen);
	return it;
}

Test(gw_htab, insert_find_remove_across_growth)
{
	struct gw_htab t;
	struct item *items[1000];
	char k[16];
	gw_htab_init(&t);
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		items[i] = mk(k);
		gw_htab_insert(&t, &items[i]->h);
	}
	cr_assert_eq(t.n, 1000);
	cr_assert(t.nb >= 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		cr_assert_eq(gw_htab_find(&t, k, strlen(k), gw_hash(k, strlen(k))), &items[i]->h);
	}
	cr_assert_null(gw_htab_find(&t, "k1000", 5, gw_hash("k1000", 5)));
	/* keys that are prefixes of each other stay apart */
	cr_assert_null(gw_htab_find(&t, "k", 1, gw_hash("k", 1)));
	for (int i = 0; i < 1000; i += 2)
		gw_htab_remove(&t, &items[i]->h);
	cr_assert_eq(t.n, 500);
	size_t seen = 0;
	gw_htab_foreach(&t, b, nd, nx) {
		(void)nx;
		struct item *it = (struct item *)nd;
		cr_assert_eq(atoi(it->name + 1) % 2, 1);
		gw_htab_remove(&t, nd); /* removing the current node is allowed */
		seen++;
	}
	cr_assert_eq(seen, 500);
	cr_assert_eq(t.n, 0);
	for (int i = 0; i < 1000; i++)
		free(items[i]);
	gw_htab_destroy(&t);
}

Test(gw_ud, connection_user_data_round_trips)
{
	uint64_t ud = gw_ud(0xfffffffeu, 0x12345u | 0x100000u, GW_OP_SEND);
	uint64_t pl = cm_ud_payload(ud);
	cr_assert_eq(cm_ud_kind(ud), GW_K_CONN);
	cr_assert_eq((uint32_t)pl, 0xfffffffeu);
	cr_assert_eq((uint32_t)(pl >> 32) & GW_GEN_MASK, 0x12345u, "generation keeps 20 bits");
	cr_assert_eq((unsigned)(pl >> 52) & 0xf, GW_OP_SEND);
	cr_assert_eq(pl >> 56, 0, "the payload fits the 56 bits cm_loop leaves");
}
