#include "rt_frame.h"

#include "cm_log.h"
#include "cm_pb.h"

#include <stdio.h>
#include <string.h>

/* Protobuf tags: (field << 3) | wire type (0 varint, 2 length-delimited). */
#define TAG(field, wt) ((uint8_t)((field) << 3 | (wt)))

size_t rt_varint(uint8_t *p, uint64_t v)
{
	return cm_pb_varint_put(p, v);
}

static void reserve(struct rt_frame *f, size_t more)
{
	if (f->len + more <= f->cap)
		return;
	while (f->cap < f->len + more)
		f->cap = f->cap ? f->cap * 2 : 4096;
	f->p = cm_xrealloc(f->p, f->cap);
}

void rt_frame_begin(struct rt_frame *f, uint64_t router_boot)
{
	f->len = 0;
	reserve(f, RT_FRAME_HEAD + 16);
	f->len = RT_FRAME_HEAD;
	f->ndeliveries = 0;
	f->open = true;
	f->p[f->len++] = TAG(1, 0);
	f->len += rt_varint(f->p + f->len, RT_FRAME_VERSION);
	f->p[f->len++] = TAG(2, 0);
	f->len += rt_varint(f->p + f->len, router_boot);
}

void rt_frame_append(struct rt_frame *f, const void *p, size_t n)
{
	CM_ASSERT(f->open);
	reserve(f, n);
	memcpy(f->p + f->len, p, n);
	f->len += n;
}

void rt_frame_acks(struct rt_frame *f, const uint64_t *ids, size_t n)
{
	size_t body = 0;

	CM_ASSERT(f->open);
	if (!n)
		return;
	for (size_t i = 0; i < n; i++)
		body += cm_pb_varint_len(ids[i]);
	reserve(f, 1 + 10 + body);
	f->p[f->len++] = TAG(4, 2);
	f->len += rt_varint(f->p + f->len, body);
	for (size_t i = 0; i < n; i++)
		f->len += rt_varint(f->p + f->len, ids[i]);
}

void rt_frame_resync(struct rt_frame *f, uint64_t epoch)
{
	CM_ASSERT(f->open);
	reserve(f, 2 + 1 + 10);
	f->p[f->len++] = TAG(5, 2);
	f->p[f->len++] = (uint8_t)(1 + cm_pb_varint_len(epoch));
	f->p[f->len++] = TAG(1, 0);
	f->len += rt_varint(f->p + f->len, epoch);
}

const char *rt_frame_publish(struct rt_frame *f, const char *chan, size_t chan_len,
			     size_t *cmd_len)
{
	char pre[RT_FRAME_HEAD];
	size_t body = rt_frame_size(f);
	int n;

	CM_ASSERT(f->open);
	if (chan_len > RT_FRAME_MAX_CHANNEL)
		return NULL;
	n = snprintf(pre, sizeof(pre), "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n", chan_len);
	memcpy(pre + n, chan, chan_len);
	n += (int)chan_len;
	n += snprintf(pre + n, sizeof(pre) - (size_t)n, "\r\n$%zu\r\n", body);
	CM_ASSERT((size_t)n <= RT_FRAME_HEAD);
	memcpy(f->p + RT_FRAME_HEAD - n, pre, (size_t)n);
	reserve(f, 2);
	f->p[f->len++] = '\r';
	f->p[f->len++] = '\n';
	f->open = false;
	*cmd_len = (size_t)n + body + 2;
	return (const char *)f->p + RT_FRAME_HEAD - n;
}

void rt_frame_free(struct rt_frame *f)
{
	free(f->p);
	memset(f, 0, sizeof(*f));
}

size_t rt_delivery_encode(uint8_t *out, size_t cap, enum rt_delivery_kind kind,
			  const char *name, size_t name_len, uint64_t offset,
			  const uint8_t *data, size_t len)
{
	size_t body = 0, need, n = 0;

	/* proto3: fields at their default value are omitted. */
	if (kind)
		body += 1 + cm_pb_varint_len((uint64_t)kind);
	if (name_len)
		body += 1 + cm_pb_varint_len(name_len) + name_len;
	if (offset)
		body += 1 + cm_pb_varint_len(offset);
	if (len)
		body += 1 + cm_pb_varint_len(len) + len;
	need = 1 + cm_pb_varint_len(body) + body;
	if (need > cap)
		return need;
	out[n++] = TAG(3, 2);
	n += rt_varint(out + n, body);
	if (kind) {
		out[n++] = TAG(1, 0);
		n += rt_varint(out + n, (uint64_t)kind);
	}
	if (name_len) {
		out[n++] = TAG(2, 2);
		n += rt_varint(out + n, name_len);
		memcpy(out + n, name, name_len);
		n += name_len;
	}
	if (offset) {
		out[n++] = TAG(3, 0);
		n += rt_varint(out + n, offset);
	}
	if (len) {
		out[n++] = TAG(4, 2);
		n += rt_varint(out + n, len);
		memcpy(out + n, data, len);
		n += len;
	}
	CM_ASSERT(n == need);
	return n;
}
