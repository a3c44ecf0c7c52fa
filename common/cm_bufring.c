#include "cm_bufring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int cm_bufring_init(struct cm_bufring *b, struct io_uring *ring, unsigned short bgid,
		    unsigned nbufs, unsigned bufsz)
{
	struct io_uring_buf_reg reg;
	size_t br_bytes = nbufs * sizeof(struct io_uring_buf);
	int ret;

	memset(b, 0, sizeof(*b));
	b->nbufs = nbufs;
	b->bufsz = bufsz;
	b->bgid = bgid;
	b->br = mmap(NULL, br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	b->bufs = mmap(NULL, (size_t)nbufs * bufsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
		       -1, 0);
	if (b->br == MAP_FAILED || b->bufs == MAP_FAILED) {
		ret = -errno;
		goto fail;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)b->br;
	reg.ring_entries = nbufs;
	reg.bgid = bgid;
	if ((ret = io_uring_register_buf_ring(ring, &reg, 0)) < 0)
		goto fail;
	io_uring_buf_ring_init(b->br);
	for (unsigned i = 0; i < nbufs; i++)
		io_uring_buf_ring_add(b->br, cm_bufring_buf(b, i), bufsz, (unsigned short)i,
				      io_uring_buf_ring_mask(nbufs), (int)i);
	io_uring_buf_ring_advance(b->br, (int)nbufs);
	return 0;
fail:
	if (b->br == MAP_FAILED)
		b->br = NULL;
	if (b->bufs == MAP_FAILED)
		b->bufs = NULL;
	cm_bufring_free(b);
	return ret;
}

void cm_bufring_free(struct cm_bufring *b)
{
	if (b->br)
		munmap(b->br, b->nbufs * sizeof(struct io_uring_buf));
	if (b->bufs)
		munmap(b->bufs, (size_t)b->nbufs * b->bufsz);
	b->br = NULL;
	b->bufs = NULL;
}
