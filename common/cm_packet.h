/* cm_packet — a ref-counted, immutable byte buffer holding one or more
 * complete WebSocket frames, shared by every connection it is queued on (and
 * across threads: the count is atomic). The count is asserted before every
 * change; the last unref frees it.
 *
 * Frames are built back to front: the payload is written at a fixed offset
 * (CM_PACKET_HEADROOM), then the header is placed right before it, so the
 * frame is encoded in one pass without knowing its length in advance. */
#ifndef CM_PACKET_H
#define CM_PACKET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_log.h"

#define CM_PACKET_HEADROOM 10 /* a server frame header is at most 10 bytes */

struct cm_packet {
	atomic_uint refs;
	uint32_t off;    /* frame starts at data + off */
	uint32_t len;    /* frame bytes */
	uint32_t cap;
	uint8_t data[];
};

/* A packet with room for cap bytes, refs = 1, off = len = 0. */
struct cm_packet *cm_packet_new(size_t cap);

static inline const uint8_t *cm_packet_bytes(const struct cm_packet *p)
{
	return p->data + p->off;
}

static inline void cm_packet_ref(struct cm_packet *p)
{
	unsigned old = atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	CM_ASSERT(old > 0);
}

/* Drops one reference; the last one frees the packet. */
static inline void cm_packet_unref(struct cm_packet *p)
{
	unsigned old = atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel);
	CM_ASSERT(old > 0);
	if (old == 1)
		free(p);
}

/* One unmasked server frame (FIN set) around payload[0..len). */
struct cm_packet *cm_packet_frame(uint8_t opcode, const void *payload, size_t len);

/* Finishes a packet whose payload was written at data + CM_PACKET_HEADROOM,
 * payload_len bytes: places the frame header before it and sets off/len. */
void cm_packet_seal(struct cm_packet *p, uint8_t opcode, size_t payload_len);

#endif
