#include "gw_wheel.h"
#include "cm_log.h"

void gw_wheel_init(struct gw_wheel *w, uint32_t nslots, uint32_t tick_ms, uint64_t now_ms,
		   struct gw_wlink *(*link)(void *ctx, uint32_t id), void *ctx)
{
	CM_ASSERT(nslots >= 4 && !(nslots & (nslots - 1)) && tick_ms > 0);
	w->heads = cm_xmalloc(nslots * sizeof(*w->heads));
	for (uint32_t i = 0; i < nslots; i++)
		w->heads[i] = GW_NIL;
	w->nslots = nslots;
	w->tick_ms = tick_ms;
	w->epoch_ms = now_ms;
	w->cur = 0;
	w->link = link;
	w->ctx = ctx;
}

void gw_wheel_destroy(struct gw_wheel *w)
{
	free(w->heads);
	w->heads = NULL;
}

static uint32_t tick_of(const struct gw_wheel *w, uint64_t ms)
{
	if (ms <= w->epoch_ms)
		return 0;
	return (uint32_t)((ms - w->epoch_ms + w->tick_ms - 1) / w->tick_ms);
}

static void park(struct gw_wheel *w, uint32_t id, struct gw_wlink *l)
{
	uint32_t t = l->due, slot;

	/* never the slot being processed; at most one turn ahead */
	if ((int32_t)(t - w->cur) <= 0)
		t = w->cur + 1;
	if (t - w->cur >= w->nslots)
		t = w->cur + w->nslots - 1;
	slot = t & (w->nslots - 1);
	l->slot = (uint16_t)slot;
	l->prev = GW_NIL;
	l->next = w->heads[slot];
	if (l->next != GW_NIL)
		w->link(w->ctx, l->next)->prev = id;
	w->heads[slot] = id;
	l->on = true;
}

void gw_wheel_del(struct gw_wheel *w, uint32_t id)
{
	struct gw_wlink *l = w->link(w->ctx, id);

	if (!l->on)
		return;
	if (l->prev != GW_NIL)
		w->link(w->ctx, l->prev)->next = l->next;
	else
		w->heads[l->slot] = l->next;
	if (l->next != GW_NIL)
		w->link(w->ctx, l->next)->prev = l->prev;
	l->on = false;
	l->next = l->prev = GW_NIL;
}

void gw_wheel_add(struct gw_wheel *w, uint32_t id, uint64_t due_ms)
{
	struct gw_wlink *l = w->link(w->ctx, id);

	gw_wheel_del(w, id);
	l->due = tick_of(w, due_ms);
	park(w, id, l);
}

unsigned gw_wheel_advance(struct gw_wheel *w, uint64_t now_ms,
			  void (*fire)(void *ctx, uint32_t id))
{
	uint32_t now = now_ms <= w->epoch_ms ? 0 : (uint32_t)((now_ms - w->epoch_ms) / w->tick_ms);
	unsigned fired = 0, steps = 0;

	while ((int32_t)(now - w->cur) > 0 && steps++ < w->nslots) {
		uint32_t slot, id;

		w->cur++;
		slot = w->cur & (w->nslots - 1);
		while ((id = w->heads[slot]) != GW_NIL) {
			struct gw_wlink *l = w->link(w->ctx, id);
			gw_wheel_del(w, id);
			if ((int32_t)(l->due - now) > 0) {
				park(w, id, l); /* a later turn of the wheel */
				continue;
			}
			fired++;
			fire(w->ctx, id);
		}
	}
	/* fell behind by more than a turn: catch up in one jump */
	if ((int32_t)(now - w->cur) > 0)
		w->cur = now;
	return fired;
}
