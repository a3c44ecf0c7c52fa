/* rt_frame — RouterMessage frames (proto/cluster.proto) encoded by hand,
 * for the relay's hot path: a delivery is encoded once per message and its
 * bytes appended to the frame of every gateway that holds the stream.
 *
 * A frame buffer keeps RT_FRAME_HEAD bytes free in front, where
 * rt_frame_publish() writes the RESP "PUBLISH <channel> <len>" prefix, so
 * that the whole command is one contiguous buffer (no copy of the batch). */
#ifndef RT_FRAME_H
#define RT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_FRAME_VERSION 1
#define RT_FRAME_HEAD 352
/* The longest channel name rt_frame_publish() can prefix. */
#define RT_FRAME_MAX_CHANNEL 300

enum rt_delivery_kind { RT_DELIVER_STREAM = 0, RT_DELIVER_USER = 1, RT_DELIVER_ALL = 2 };

struct rt_frame {
	uint8_t *p;
	size_t len, cap;   /* len includes the RT_FRAME_HEAD bytes */
	size_t ndeliveries;
	bool open;
};

/* Starts a frame: version and router boot id. */
void rt_frame_begin(struct rt_frame *f, uint64_t router_boot);
/* Appends n bytes of already encoded fields (e.g. rt_delivery_encode()). */
void rt_frame_append(struct rt_frame *f, const void *p, size_t n);
/* Appends the interest acks (field 4, packed). */
void rt_frame_acks(struct rt_frame *f, const uint64_t *ids, size_t n);
/* Appends a resync request (field 5). */
void rt_frame_resync(struct rt_frame *f, uint64_t epoch);
/* Bytes of the protobuf message so far. */
static inline size_t rt_frame_size(const struct rt_frame *f) { return f->len - RT_FRAME_HEAD; }

/* Writes the RESP command "PUBLISH channel <frame>" around the frame and
 * returns its start (inside f->p) and length. NULL if the channel is longer
 * than RT_FRAME_MAX_CHANNEL. The frame is closed: begin again to reuse. */
const char *rt_frame_publish(struct rt_frame *f, const char *chan, size_t chan_len,
			     size_t *cmd_len);

void rt_frame_free(struct rt_frame *f);

/* Encodes one RouterMessage.deliveries entry (field 3, with its tag and
 * length) into out[cap]; returns its size, or the size needed when larger
 * than cap (then nothing useful was written). */
size_t rt_delivery_encode(uint8_t *out, size_t cap, enum rt_delivery_kind kind,
			  const char *name, size_t name_len, uint64_t offset,
			  const uint8_t *data, size_t len);

/* Writes the varint of v into p (at least 10 bytes); returns its length. */
size_t rt_varint(uint8_t *p, uint64_t v);

#endif
