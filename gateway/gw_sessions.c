#include "gw_sessions.h"
#include "gw_htab.h"
#include "gw_streams.h"
#include "cm_log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

struct gw_user {
	struct gw_hnode h;
	unsigned n, cap;
	struct gw_sess *s;
	char name[];
};

struct gw_sshard {
	pthread_mutex_t mu;
	struct gw_htab tab;
} __attribute__((aligned(64)));

struct gw_sessions {
	atomic_ulong users;
	struct gw_sshard shards[GW_SHARDS];
};

struct gw_sessions *gw_sessions_new(void)
{
	struct gw_sessions *t;

	if (posix_memalign((void **)&t, 64, sizeof(*t)))
		cm_panic(__FILE__, __LINE__, "out of memory");
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < GW_SHARDS; i++) {
		pthread_mutex_init(&t->shards[i].mu, NULL);
		gw_htab_init(&t->shards[i].tab);
	}
	return t;
}

void gw_sessions_free(struct gw_sessions *t)
{
	if (!t)
		return;
	for (int i = 0; i < GW_SHARDS; i++) {
		gw_htab_foreach(&t->shards[i].tab, b, nd, nx) {
			struct gw_user *u = (struct gw_user *)nd;
			(void)nx;
			free(u->s);
			free(u);
		}
		gw_htab_destroy(&t->shards[i].tab);
		pthread_mutex_destroy(&t->shards[i].mu);
	}
	free(t);
}

static struct gw_sshard *shard_of(struct gw_sessions *t, uint64_t h)
{
	return &t->shards[(h >> 57) & (GW_SHARDS - 1)];
}

bool gw_sessions_add(struct gw_sessions *t, const char *uid, size_t n, const struct gw_sess *s)
{
	uint64_t h = gw_hash(uid, n);
	struct gw_sshard *sh = shard_of(t, h);
	struct gw_user *u;
	bool first = false;

	pthread_mutex_lock(&sh->mu);
	u = (struct gw_user *)gw_htab_find(&sh->tab, uid, n, h);
	if (!u) {
		u = cm_xcalloc(1, sizeof(*u) + n + 1);
		memcpy(u->name, uid, n);
		u->h.key = u->name;
		u->h.klen = n;
		u->h.hash = h;
		gw_htab_insert(&sh->tab, &u->h);
		atomic_fetch_add(&t->users, 1);
		first = true;
	}
	if (u->n == u->cap) {
		u->cap = u->cap ? u->cap * 2 : 1;
		u->s = cm_xrealloc(u->s, u->cap * sizeof(*u->s));
	}
	u->s[u->n++] = *s;
	pthread_mutex_unlock(&sh->mu);
	return first;
}

bool gw_sessions_del(struct gw_sessions *t, const char *uid, size_t n, const struct gw_sess *s)
{
	uint64_t h = gw_hash(uid, n);
	struct gw_sshard *sh = shard_of(t, h);
	struct gw_user *u;
	bool last = false;

	pthread_mutex_lock(&sh->mu);
	u = (struct gw_user *)gw_htab_find(&sh->tab, uid, n, h);
	if (u) {
		for (unsigned i = 0; i < u->n; i++) {
			if (u->s[i].worker == s->worker && u->s[i].idx == s->idx &&
			    u->s[i].gen == s->gen) {
				u->s[i] = u->s[--u->n];
				break;
			}
		}
		if (!u->n) {
			gw_htab_remove(&sh->tab, &u->h);
			atomic_fetch_sub(&t->users, 1);
			free(u->s);
			free(u);
			last = true;
		}
	}
	pthread_mutex_unlock(&sh->mu);
	return last;
}

unsigned gw_sessions_each(struct gw_sessions *t, const char *uid, size_t n,
			  void (*fn)(void *arg, const struct gw_sess *s), void *arg)
{
	uint64_t h = gw_hash(uid, n);
	struct gw_sshard *sh = shard_of(t, h);
	struct gw_user *u;
	unsigned cnt = 0;

	pthread_mutex_lock(&sh->mu);
	u = (struct gw_user *)gw_htab_find(&sh->tab, uid, n, h);
	if (u) {
		cnt = u->n;
		for (unsigned i = 0; fn && i < u->n; i++)
			fn(arg, &u->s[i]);
	}
	pthread_mutex_unlock(&sh->mu);
	return cnt;
}

uint64_t gw_sessions_users(struct gw_sessions *t)
{
	return atomic_load_explicit(&t->users, memory_order_relaxed);
}
