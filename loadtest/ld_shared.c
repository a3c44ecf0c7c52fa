#include "ld_shared.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

static size_t align64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

int ld_shared_map(struct ld_shared *sh, unsigned workers, unsigned streams)
{
	size_t ctl = align64(sizeof(struct ld_ctl));
	size_t ws = align64(sizeof(struct ld_wstats)) * workers;
	size_t pub = (size_t)LD_MAX_STEPS * streams * sizeof(uint32_t);
	uint8_t *base;

	sh->size = ctl + ws + pub;
	base = mmap(NULL, sh->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	sh->base = base;
	sh->ctl = (struct ld_ctl *)base;
	sh->w = (struct ld_wstats *)(base + ctl);
	sh->published = (uint32_t *)(base + ctl + ws);
	/* anonymous memory is zeroed; only the non-zero starting values */
	sh->ctl->snap_req = -1;
	for (unsigned i = 0; i < workers; i++) {
		struct ld_wstats *w = &sh->w[i];
		w->snap_done = -1;
		ld_hist_init(&w->hs);
		ld_hist_init(&w->lat);
		for (unsigned s = 0; s < LD_MAX_STEPS; s++)
			ld_hist_init(&w->steps[s].lat);
	}
	return 0;
}

void ld_shared_unmap(struct ld_shared *sh)
{
	if (sh->base)
		munmap(sh->base, sh->size);
	memset(sh, 0, sizeof(*sh));
}
