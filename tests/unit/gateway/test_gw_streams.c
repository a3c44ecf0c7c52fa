#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_streams.h"
#include "gateway/gw_sessions.h"

static struct gw_waiter *waiter(uint64_t id)
{
	struct gw_waiter *w = calloc(1, sizeof(*w));
	w->id = id;
	w->reply = true;
	return w;
}

Test(gw_streams, standalone_is_live_at_once)
{
	struct gw_streams *t = gw_streams_new(true);
	bool rec;
	uint64_t m[2], off;
	cr_assert_eq(gw_streams_sub(t, "a", 1, 0, 0, true, NULL, &rec), GW_SUB_LIVE);
	cr_assert(!rec);
	cr_assert_eq(gw_streams_count(t), 1);
	cr_assert(gw_streams_get(t, "a", 1, m, &off));
	cr_assert_eq(off, 1);
	cr_assert(gw_streams_get(t, "a", 1, m, &off));
	cr_assert_eq(off, 2);
	cr_assert_eq(m[0], 1);
	cr_assert_eq(m[1], 0);
	cr_assert(gw_streams_unsub(t, "a", 1, 0, 0, NULL));
	cr_assert_eq(gw_streams_count(t), 0);
	cr_assert(!gw_streams_get(t, "a", 1, m, NULL));
	gw_streams_free(t);
}

Test(gw_streams, masks_per_worker_and_format)
{
	struct gw_streams *t = gw_streams_new(true);
	bool rec;
	uint64_t m[2];
	gw_streams_sub(t, "s", 1, 3, 0, true, NULL, &rec);
	gw_streams_sub(t, "s", 1, 5, 1, true, NULL, &rec);
	gw_streams_sub(t, "s", 1, 5, 0, true, NULL, &rec);
	cr_assert(gw_streams_get(t, "s", 1, m, NULL));
	cr_assert_eq(m[0], (1u << 3) | (1u << 5));
	cr_assert_eq(m[1], 1u << 5);
	cr_assert(!gw_streams_unsub(t, "s", 1, 5, 0, NULL));
	cr_assert(!gw_streams_unsub(t, "s", 1, 3, 0, NULL));
	cr_assert(gw_streams_get(t, "s", 1, m, NULL));
	cr_assert_eq(m[0], 0);
	cr_assert(gw_streams_unsub(t, "s", 1, 5, 1, NULL));
	gw_streams_free(t);
}

Test(gw_streams, cluster_waits_for_ack_and_reconciles_once)
{
	struct gw_streams *t = gw_streams_new(false);
	bool rec;
	struct gw_waiter *w;
	int n = 0;
	cr_assert_eq(gw_streams_sub(t, "x", 1, 0, 0, true, waiter(1), &rec), GW_SUB_WAIT);
	cr_assert(rec);
	cr_assert_eq(gw_streams_sub(t, "x", 1, 1, 0, true, waiter(2), &rec), GW_SUB_WAIT);
	cr_assert(!rec, "a pending interest is announced once");
	w = gw_streams_settle(t, "x", 1, true);
	for (struct gw_waiter *p = w, *nx; p; p = nx) {
		nx = p->next;
		cr_assert(p->id == 1 || p->id == 2);
		n++;
		free(p);
	}
	cr_assert_eq(n, 2);
	cr_assert_eq(gw_streams_sub(t, "x", 1, 0, 0, false, waiter(3), &rec), GW_SUB_LIVE);
	cr_assert(!rec);
	gw_streams_free(t);
}

Test(gw_streams, failed_ack_allows_a_retry)
{
	struct gw_streams *t = gw_streams_new(false);
	bool rec;
	struct gw_waiter *w;
	gw_streams_sub(t, "x", 1, 0, 0, true, waiter(1), &rec);
	w = gw_streams_settle(t, "x", 1, false);
	cr_assert_not_null(w);
	cr_assert_null(w->next);
	free(w);
	cr_assert_eq(gw_streams_sub(t, "x", 1, 0, 0, false, waiter(2), &rec), GW_SUB_WAIT);
	cr_assert(rec, "a failed interest is announced again");
	cr_assert(gw_streams_wanted(t, "x", 1));
	cr_assert(gw_streams_unsub(t, "x", 1, 0, 0, NULL)); /* frees the waiter */
	cr_assert(!gw_streams_wanted(t, "x", 1));
	cr_assert_null(gw_streams_settle(t, "x", 1, true));
	gw_streams_free(t);
}

static struct gw_streams *shared;
static void *hammer(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;
	char name[32];
	bool rec;
	for (int i = 0; i < 20000; i++) {
		int n = snprintf(name, sizeof(name), "s%d", i % 97);
		gw_streams_sub(shared, name, (size_t)n, w, 0, true, NULL, &rec);
		gw_streams_unsub(shared, name, (size_t)n, w, 0, NULL);
	}
	return NULL;
}

Test(gw_streams, concurrent_workers_leave_it_empty)
{
	pthread_t th[4];
	shared = gw_streams_new(true);
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(gw_streams_count(shared), 0);
	gw_streams_free(shared);
}

static void count_sess(void *arg, const struct gw_sess *s)
{
	(*(unsigned *)arg) += s->idx;
}

Test(gw_sessions, first_and_last_session_of_a_user)
{
	struct gw_sessions *t = gw_sessions_new();
	struct gw_sess a = { .worker = 0, .idx = 1, .gen = 1 }, b = { .worker = 1, .idx = 2, .gen = 7 };
	unsigned sum = 0;
	cr_assert(gw_sessions_add(t, "u1", 2, &a));
	cr_assert(!gw_sessions_add(t, "u1", 2, &b));
	cr_assert(gw_sessions_add(t, "u2", 2, &a));
	cr_assert_eq(gw_sessions_users(t), 2);
	cr_assert_eq(gw_sessions_each(t, "u1", 2, count_sess, &sum), 2);
	cr_assert_eq(sum, 3);
	cr_assert_eq(gw_sessions_each(t, "u3", 2, NULL, NULL), 0);
	/* a session with another generation is not the same session */
	struct gw_sess stale = b;
	stale.gen = 8;
	cr_assert(!gw_sessions_del(t, "u1", 2, &stale));
	cr_assert(!gw_sessions_del(t, "u1", 2, &a));
	cr_assert(gw_sessions_del(t, "u1", 2, &b));
	cr_assert_eq(gw_sessions_users(t), 1);
	gw_sessions_free(t);
}
