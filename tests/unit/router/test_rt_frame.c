#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/cluster.pb-c.h"
#include "router/rt_frame.h"

Test(rt_frame, varints_match_the_wire_format)
{
	uint8_t b[10];
	cr_assert_eq(rt_varint(b, 0), 1);
	cr_assert_eq(b[0], 0);
	cr_assert_eq(rt_varint(b, 300), 2);
	cr_assert(b[0] == 0xac && b[1] == 0x02);
	cr_assert_eq(rt_varint(b, UINT64_MAX), 10);
	cr_assert_eq(b[9], 0x01);
}

/* The RESP command around a frame, parsed back: PUBLISH chan payload. */
static void check_publish(const char *cmd, size_t len, const char *chan, size_t chan_len,
			  const uint8_t **payload, size_t *plen)
{
	char pre[64];
	int n = snprintf(pre, sizeof(pre), "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n", chan_len);
	const char *p = cmd + n, *end;
	cr_assert(!memcmp(cmd, pre, (size_t)n));
	cr_assert(!memcmp(p, chan, chan_len));
	p += chan_len;
	cr_assert(p[0] == '\r' && p[1] == '\n' && p[2] == '$');
	*plen = strtoul(p + 3, (char **)&end, 10);
	cr_assert(end[0] == '\r' && end[1] == '\n');
	*payload = (const uint8_t *)end + 2;
	cr_assert_eq((size_t)(end + 2 - cmd) + *plen + 2, len);
	cr_assert(!memcmp(cmd + len - 2, "\r\n", 2));
}

Test(rt_frame, publish_wraps_the_frame_for_the_longest_channel)
{
	struct rt_frame f = { 0 };
	char chan[RT_FRAME_MAX_CHANNEL + 1];
	uint8_t d[256];
	const uint8_t *pl;
	size_t len, plen, n;
	const char *cmd;
	Herald__Cluster__RouterMessage *m;
	static const uint64_t acks[] = { 1, 300, UINT64_MAX };

	memset(chan, 'c', sizeof(chan));
	rt_frame_begin(&f, 77);
	n = rt_delivery_encode(d, sizeof(d), RT_DELIVER_USER, "u1", 2, 5, (const uint8_t *)"\0x", 2);
	cr_assert(n < sizeof(d));
	rt_frame_append(&f, d, n);
	rt_frame_acks(&f, acks, 3);
	rt_frame_resync(&f, 1ull << 40);
	cmd = rt_frame_publish(&f, chan, RT_FRAME_MAX_CHANNEL, &len);
	cr_assert_not_null(cmd);
	check_publish(cmd, len, chan, RT_FRAME_MAX_CHANNEL, &pl, &plen);
	m = herald__cluster__router_message__unpack(NULL, plen, pl);
	cr_assert_not_null(m);
	cr_assert_eq(m->version, RT_FRAME_VERSION);
	cr_assert_eq(m->router_boot_id, 77);
	cr_assert_eq(m->n_deliveries, 1);
	cr_assert_eq(m->deliveries[0]->kind, HERALD__CLUSTER__DELIVERY__KIND__USER);
	cr_assert_eq(m->deliveries[0]->offset, 5);
	cr_assert(m->deliveries[0]->data.len == 2 && !memcmp(m->deliveries[0]->data.data, "\0x", 2));
	cr_assert_eq(m->n_interest_acks, 3);
	cr_assert_eq(m->interest_acks[2], UINT64_MAX);
	cr_assert_not_null(m->resync_request);
	cr_assert_eq(m->resync_request->epoch, 1ull << 40);
	herald__cluster__router_message__free_unpacked(m, NULL);

	rt_frame_begin(&f, 77);
	cr_assert_null(rt_frame_publish(&f, chan, RT_FRAME_MAX_CHANNEL + 1, &len));
	rt_frame_free(&f);
}

Test(rt_frame, delivery_encode_reports_the_size_it_needs)
{
	uint8_t small[8], big[64];
	size_t need = rt_delivery_encode(small, sizeof(small), RT_DELIVER_STREAM, "stream", 6, 1,
					 (const uint8_t *)"payload", 7);
	cr_assert_gt(need, sizeof(small));
	cr_assert_eq(rt_delivery_encode(big, sizeof(big), RT_DELIVER_STREAM, "stream", 6, 1,
					(const uint8_t *)"payload", 7), need);
	/* an ALL delivery with an empty payload is just its tag and length */
	cr_assert_eq(rt_delivery_encode(big, sizeof(big), RT_DELIVER_ALL, NULL, 0, 0, NULL, 0), 4);
}
