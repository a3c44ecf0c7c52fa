#include "gw_streams.h"
#include "gw_htab.h"
#include "cm_log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

struct gw_gstream {
	struct gw_hnode h;
	uint64_t masks[2];
	uint8_t state;
	uint64_t offset;
	struct gw_waiter *waiters, **wtail;
	char name[];
};

struct gw_shard {
	pthread_mutex_t mu;
	struct gw_htab tab;
} __attribute__((aligned(64)));

struct gw_streams {
	bool live_at_once;
	atomic_ulong count;
	struct gw_shard shards[GW_SHARDS];
};

struct gw_streams *gw_streams_new(bool live_at_once)
{
	struct gw_streams *t;

	if (posix_memalign((void **)&t, 64, sizeof(*t)))
		cm_panic(__FILE__, __LINE__, "out of memory");
	memset(t, 0, sizeof(*t));
	t->live_at_once = live_at_once;
	for (int i = 0; i < GW_SHARDS; i++) {
		pthread_mutex_init(&t->shards[i].mu, NULL);
		gw_htab_init(&t->shards[i].tab);
	}
	return t;
}

static void free_waiters(struct gw_waiter *w)
{
	while (w) {
		struct gw_waiter *nx = w->next;
		free(w);
		w = nx;
	}
}

void gw_streams_free(struct gw_streams *t)
{
	if (!t)
		return;
	for (int i = 0; i < GW_SHARDS; i++) {
		gw_htab_foreach(&t->shards[i].tab, b, nd, nx) {
			struct gw_gstream *s = (struct gw_gstream *)nd;
			(void)nx;
			free_waiters(s->waiters);
			free(s);
		}
		gw_htab_destroy(&t->shards[i].tab);
		pthread_mutex_destroy(&t->shards[i].mu);
	}
	free(t);
}

static struct gw_shard *shard_of(struct gw_streams *t, uint64_t h)
{
	return &t->shards[(h >> 57) & (GW_SHARDS - 1)];
}

static struct gw_gstream *find(struct gw_shard *sh, const char *name, size_t n, uint64_t h)
{
	return (struct gw_gstream *)gw_htab_find(&sh->tab, name, n, h);
}

int gw_streams_sub(struct gw_streams *t, const char *name, size_t n, unsigned w, unsigned fmt,
		   bool first_local, struct gw_waiter *waiter, bool *reconcile)
{
	uint64_t h = gw_hash(name, n);
	struct gw_shard *sh = shard_of(t, h);
	struct gw_gstream *s;
	int ret;

	CM_ASSERT(fmt < 2 && w < 64);
	*reconcile = false;
	pthread_mutex_lock(&sh->mu);
	s = find(sh, name, n, h);
	if (!s) {
		s = cm_xcalloc(1, sizeof(*s) + n + 1);
		memcpy(s->name, name, n);
		s->h.key = s->name;
		s->h.klen = n;
		s->h.hash = h;
		s->state = t->live_at_once ? GW_INT_LIVE : GW_INT_NONE;
		s->wtail = &s->waiters;
		gw_htab_insert(&sh->tab, &s->h);
		atomic_fetch_add(&t->count, 1);
	}
	if (first_local)
		s->masks[fmt] |= 1ULL << w;
	if (s->state == GW_INT_LIVE) {
		ret = GW_SUB_LIVE;
		free(waiter);
	} else {
		if (s->state == GW_INT_NONE) {
			s->state = GW_INT_PENDING;
			*reconcile = true;
		}
		if (waiter) {
			waiter->next = NULL;
			*s->wtail = waiter;
			s->wtail = &waiter->next;
		}
		ret = GW_SUB_WAIT;
	}
	pthread_mutex_unlock(&sh->mu);
	return ret;
}

bool gw_streams_unsub(struct gw_streams *t, const char *name, size_t n, unsigned w, unsigned fmt,
		      struct gw_waiter **waiters)
{
	uint64_t h = gw_hash(name, n);
	struct gw_shard *sh = shard_of(t, h);
	struct gw_gstream *s;
	bool gone = false;

	CM_ASSERT(fmt < 2 && w < 64);
	if (waiters)
		*waiters = NULL;
	pthread_mutex_lock(&sh->mu);
	s = find(sh, name, n, h);
	if (s) {
		s->masks[fmt] &= ~(1ULL << w);
		if (!s->masks[0] && !s->masks[1]) {
			gw_htab_remove(&sh->tab, &s->h);
			atomic_fetch_sub(&t->count, 1);
			if (waiters)
				*waiters = s->waiters;
			else
				free_waiters(s->waiters);
			free(s);
			gone = true;
		}
	}
	pthread_mutex_unlock(&sh->mu);
	return gone;
}

bool gw_streams_get(struct gw_streams *t, const char *name, size_t n, uint64_t masks[2],
		    uint64_t *next_offset)
{
	uint64_t h = gw_hash(name, n);
	struct gw_shard *sh = shard_of(t, h);
	struct gw_gstream *s;

	pthread_mutex_lock(&sh->mu);
	s = find(sh, name, n, h);
	if (s) {
		masks[0] = s->masks[0];
		masks[1] = s->masks[1];
		if (next_offset)
			*next_offset = ++s->offset;
	} else {
		masks[0] = masks[1] = 0;
	}
	pthread_mutex_unlock(&sh->mu);
	return s != NULL;
}

bool gw_streams_wanted(struct gw_streams *t, const char *name, size_t n)
{
	uint64_t h = gw_hash(name, n);
	struct gw_shard *sh = shard_of(t, h);
	bool r;

	pthread_mutex_lock(&sh->mu);
	r = find(sh, name, n, h) != NULL;
	pthread_mutex_unlock(&sh->mu);
	return r;
}

struct gw_waiter *gw_streams_settle(struct gw_streams *t, const char *name, size_t n, bool ok)
{
	uint64_t h = gw_hash(name, n);
	struct gw_shard *sh = shard_of(t, h);
	struct gw_gstream *s;
	struct gw_waiter *w = NULL;

	pthread_mutex_lock(&sh->mu);
	s = find(sh, name, n, h);
	if (s) {
		s->state = ok ? GW_INT_LIVE : GW_INT_NONE;
		w = s->waiters;
		s->waiters = NULL;
		s->wtail = &s->waiters;
	}
	pthread_mutex_unlock(&sh->mu);
	return w;
}

uint64_t gw_streams_count(struct gw_streams *t)
{
	return atomic_load_explicit(&t->count, memory_order_relaxed);
}
