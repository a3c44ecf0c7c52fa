#include "rt_gw.h"
#include "rt_map.h"

#include "cm_log.h"

#include <stdio.h>
#include <string.h>

#define RT_GW_SLOTS_MAX 65535

struct rt_gws {
	struct rt_gw **slot;
	size_t nslot, count;
	struct rt_map *by_id;
};

struct rt_gws *rt_gws_new(void)
{
	struct rt_gws *g = cm_xcalloc(1, sizeof(*g));
	g->by_id = rt_map_new();
	return g;
}

static void gw_free(struct rt_gw *gw)
{
	rt_frame_free(&gw->out);
	free(gw->acks);
	free(gw->id);
	free(gw->chan);
	free(gw);
}

void rt_gws_free(struct rt_gws *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nslot; i++)
		if (g->slot[i])
			gw_free(g->slot[i]);
	free(g->slot);
	rt_map_free(g->by_id);
	free(g);
}

struct rt_gw *rt_gws_find(const struct rt_gws *g, const char *id, size_t len)
{
	return rt_map_get(g->by_id, id, len);
}

struct rt_gw *rt_gws_add(struct rt_gws *g, const char *id, size_t len, const char *prefix)
{
	struct rt_gw *gw;
	size_t s, n;

	CM_ASSERT(len && len <= RT_GW_ID_MAX && !rt_gws_find(g, id, len));
	for (s = 0; s < g->nslot && g->slot[s]; s++)
		;
	if (s == g->nslot) {
		if (g->nslot >= RT_GW_SLOTS_MAX)
			return NULL;
		g->nslot = g->nslot ? g->nslot * 2 : 16;
		if (g->nslot > RT_GW_SLOTS_MAX)
			g->nslot = RT_GW_SLOTS_MAX;
		g->slot = cm_xrealloc(g->slot, g->nslot * sizeof(*g->slot));
		memset(g->slot + s, 0, (g->nslot - s) * sizeof(*g->slot));
	}
	gw = cm_xcalloc(1, sizeof(*gw));
	gw->slot = (uint16_t)s;
	gw->id = cm_xstrndup(id, len);
	gw->id_len = len;
	n = strlen(prefix) + len + 8;
	gw->chan = cm_xmalloc(n);
	gw->chan_len = (size_t)snprintf(gw->chan, n, "%s:gw:", prefix);
	memcpy(gw->chan + gw->chan_len, id, len);
	gw->chan_len += len;
	gw->chan[gw->chan_len] = 0;
	g->slot[s] = gw;
	g->count++;
	rt_map_put(g->by_id, gw->id, len, gw);
	return gw;
}

void rt_gws_remove(struct rt_gws *g, struct rt_gw *gw)
{
	CM_ASSERT(gw->slot < g->nslot && g->slot[gw->slot] == gw);
	rt_map_del(g->by_id, gw->id, gw->id_len);
	g->slot[gw->slot] = NULL;
	g->count--;
	gw_free(gw);
}

struct rt_gw *rt_gws_at(const struct rt_gws *g, uint16_t slot)
{
	return slot < g->nslot ? g->slot[slot] : NULL;
}

size_t rt_gws_count(const struct rt_gws *g)
{
	return g->count;
}

size_t rt_gws_end(const struct rt_gws *g)
{
	return g->nslot;
}

void rt_gw_ack(struct rt_gw *gw, uint64_t id)
{
	if (gw->nacks == gw->capacks) {
		gw->capacks = gw->capacks ? gw->capacks * 2 : 16;
		gw->acks = cm_xrealloc(gw->acks, gw->capacks * sizeof(*gw->acks));
	}
	gw->acks[gw->nacks++] = id;
}
