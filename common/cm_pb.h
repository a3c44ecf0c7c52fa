/* cm_pb — the two protobuf primitives the hand-written encoders of the hot
 * paths share (the push encoder, the router's delivery frames): varint
 * length and varint writing. Decoding stays with each decoder. */
#ifndef CM_PB_H
#define CM_PB_H

#include <stddef.h>
#include <stdint.h>

/* The largest router -> gateway frame a gateway reads: the router never
 * writes a larger one, so its --max-payload stays well below. */
#define CM_CLUSTER_FRAME_MAX (8u << 20)
/* The largest payload the router can be told to relay (--max-payload). */
#define CM_CLUSTER_PAYLOAD_MAX (4u << 20)

/* Bytes a varint of v takes (1..10). */
static inline size_t cm_pb_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Writes v as a varint at p (room for 10 bytes); returns the bytes written. */
static inline size_t cm_pb_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

#endif
