/* cm_bufring — a provided-buffer ring for multishot receives: nbufs buffers
 * of bufsz bytes registered with a ring under one buffer group. The kernel
 * picks a buffer per completion (IORING_CQE_F_BUFFER, its id in the upper
 * flag bits); the reader hands it back with cm_bufring_recycle once done.
 * Registered by hand: Debian's liburing 2.3 has no io_uring_setup_buf_ring. */
#ifndef CM_BUFRING_H
#define CM_BUFRING_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>

struct cm_bufring {
	struct io_uring_buf_ring *br;
	uint8_t *bufs;          /* anonymous memory: resident once the kernel fills it */
	unsigned nbufs, bufsz;  /* nbufs a power of two, at most 32768 */
	unsigned short bgid;
};

/* Maps the ring and the buffers, registers them as group bgid and offers
 * every buffer. 0, or -errno (nothing is left mapped then). */
int cm_bufring_init(struct cm_bufring *b, struct io_uring *ring, unsigned short bgid,
		    unsigned nbufs, unsigned bufsz);
/* Unmaps (the ring that registered it must be gone or unregister first). */
void cm_bufring_free(struct cm_bufring *b);

static inline uint8_t *cm_bufring_buf(const struct cm_bufring *b, unsigned bid)
{
	return b->bufs + (size_t)bid * b->bufsz;
}

/* Offers buffer bid to the kernel again. */
static inline void cm_bufring_recycle(struct cm_bufring *b, unsigned bid)
{
	io_uring_buf_ring_add(b->br, cm_bufring_buf(b, bid), b->bufsz, (unsigned short)bid,
			      io_uring_buf_ring_mask(b->nbufs), 0);
	io_uring_buf_ring_advance(b->br, 1);
}

#endif
