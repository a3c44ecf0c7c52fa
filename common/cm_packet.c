#include "cm_packet.h"
#include "cm_ws.h"

#include <string.h>

struct cm_packet *cm_packet_new(size_t cap)
{
	struct cm_packet *p = cm_xmalloc(sizeof(*p) + cap);
	atomic_init(&p->refs, 1);
	p->off = 0;
	p->len = 0;
	p->cap = (uint32_t)cap;
	return p;
}

void cm_packet_seal(struct cm_packet *p, uint8_t opcode, size_t payload_len)
{
	uint8_t hdr[CM_WS_MAX_HEADER];
	size_t h = cm_ws_write_header(hdr, opcode, true, payload_len, NULL);

	CM_ASSERT(h <= CM_PACKET_HEADROOM);
	CM_ASSERT(CM_PACKET_HEADROOM + payload_len <= p->cap);
	p->off = (uint32_t)(CM_PACKET_HEADROOM - h);
	memcpy(p->data + p->off, hdr, h);
	p->len = (uint32_t)(h + payload_len);
}

struct cm_packet *cm_packet_frame(uint8_t opcode, const void *payload, size_t len)
{
	struct cm_packet *p = cm_packet_new(CM_PACKET_HEADROOM + len);
	if (len)
		memcpy(p->data + CM_PACKET_HEADROOM, payload, len);
	cm_packet_seal(p, opcode, len);
	return p;
}
