#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cm_ws.h"

/* ---- helpers ---------------------------------------------------------- */

static const uint8_t MASK[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* Appends one frame (masked with MASK when `masked`) to out; returns its size. */
static size_t frame(uint8_t *out, uint8_t opcode, bool fin, const void *payload, size_t len,
		    bool masked)
{
	size_t h = cm_ws_write_header(out, opcode, fin, len, masked ? MASK : NULL);
	if (len)
		memcpy(out + h, payload, len);
	if (masked)
		cm_ws_mask(out + h, len, MASK, 0);
	return h + len;
}

/* A raw 2-byte header (for malformed frames). */
static size_t raw2(uint8_t *out, uint8_t b0, uint8_t b1)
{
	out[0] = b0;
	out[1] = b1;
	return 2;
}

#define MAX_MSGS 64

struct msg {
	uint8_t opcode;
	size_t len;
	uint8_t *data;
	bool in_input; /* data pointed into the fed buffer */
};

struct sink {
	struct msg m[MAX_MSGS];
	int n;
	const uint8_t *in_lo, *in_hi; /* the buffer being fed */
	int stop_after;               /* return 4000 after this many, if > 0 */
	struct cm_ws_reader *r;
	bool buf_null_seen_in_cb;
};

static int on_msg(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
	struct sink *s = ctx;
	cr_assert_lt(s->n, MAX_MSGS);
	struct msg *m = &s->m[s->n++];
	m->opcode = opcode;
	m->len = len;
	m->data = malloc(len + 1);
	if (len)
		memcpy(m->data, data, len);
	m->in_input = data >= s->in_lo && data + len <= s->in_hi;
	if (s->stop_after > 0 && s->n == s->stop_after)
		return 4000;
	return 0;
}

static void sink_free(struct sink *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->m[i].data);
	s->n = 0;
}

static int feed(struct cm_ws_reader *r, struct sink *s, uint8_t *p, size_t n)
{
	s->in_lo = p;
	s->in_hi = p + n;
	return cm_ws_reader_feed(r, p, n, on_msg, s);
}

/* Feeds a copy of stream[0..n) to a fresh server reader in one go. */
static int feed_whole(const uint8_t *stream, size_t n, bool is_server, size_t max,
		      struct sink *s)
{
	struct cm_ws_reader r;
	uint8_t *copy = malloc(n + 1);
	memcpy(copy, stream, n);
	cm_ws_reader_init(&r, is_server, max);
	int rc = feed(&r, s, copy, n);
	cm_ws_reader_reset(&r);
	free(copy);
	return rc;
}

static int feed_server(const uint8_t *stream, size_t n, struct sink *s)
{
	return feed_whole(stream, n, true, 1 << 20, s);
}

static void assert_msg(const struct sink *s, int i, uint8_t opcode, const void *data, size_t len)
{
	cr_assert_gt(s->n, i, "message %d missing", i);
	cr_assert_eq(s->m[i].opcode, opcode, "message %d opcode %d", i, s->m[i].opcode);
	cr_assert_eq(s->m[i].len, len, "message %d len %zu != %zu", i, s->m[i].len, len);
	cr_assert(len == 0 || memcmp(s->m[i].data, data, len) == 0, "message %d bytes", i);
}

/* ---- header codec ----------------------------------------------------- */

Test(cm_ws, header_round_trips_every_length_class)
{
	static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 1ull << 32,
					 (1ull << 63) - 1 };
	static const size_t want_hdr[] = { 2, 2, 2, 4, 4, 4, 10, 10, 10 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (int masked = 0; masked < 2; masked++) {
			uint8_t hdr[CM_WS_MAX_HEADER];
			struct cm_ws_header h;
			size_t n = cm_ws_write_header(hdr, CM_WS_BINARY, true, lens[i],
						      masked ? MASK : NULL);
			cr_assert_eq(n, want_hdr[i] + (masked ? 4 : 0));
			int rc = cm_ws_parse_header(hdr, n, masked, &h);
			cr_assert_eq(rc, (int)n, "len %llu", (unsigned long long)lens[i]);
			cr_assert_eq(h.len, lens[i]);
			cr_assert_eq(h.hdr_len, n);
			cr_assert(h.fin);
			cr_assert_eq(h.opcode, CM_WS_BINARY);
			cr_assert_eq(h.masked, (bool)masked);
			cr_assert_eq(h.rsv, 0);
			if (masked)
				cr_assert_arr_eq(h.mask, MASK, 4);
			/* Every prefix asks for more bytes. */
			for (size_t k = 0; k < n; k++)
				cr_assert_eq(cm_ws_parse_header(hdr, k, masked, &h), 0);
		}
	}
}

Test(cm_ws, header_keeps_fin_clear_and_opcode)
{
	uint8_t hdr[CM_WS_MAX_HEADER];
	struct cm_ws_header h;
	size_t n = cm_ws_write_header(hdr, CM_WS_TEXT, false, 5, NULL);
	cr_assert_eq(cm_ws_parse_header(hdr, n, false, &h), 2);
	cr_assert_not(h.fin);
	cr_assert_eq(h.opcode, CM_WS_TEXT);
	cr_assert_eq(hdr[0], 0x01);
	cr_assert_eq(hdr[1], 0x05);
}

Test(cm_ws, rejects_unmasked_client_frame)
{
	uint8_t b[32];
	struct cm_ws_header h;
	size_t n = frame(b, CM_WS_TEXT, true, "hi", 2, false);
	cr_assert_eq(cm_ws_parse_header(b, n, true, &h), -CM_WS_CLOSE_PROTOCOL);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_PROTOCOL);
	cr_assert_eq(s.n, 0);
}

Test(cm_ws, rejects_masked_server_frame)
{
	uint8_t b[32];
	struct cm_ws_header h;
	size_t n = frame(b, CM_WS_TEXT, true, "hi", 2, true);
	cr_assert_eq(cm_ws_parse_header(b, n, false, &h), -CM_WS_CLOSE_PROTOCOL);
	struct sink s = { 0 };
	cr_assert_eq(feed_whole(b, n, false, 1024, &s), CM_WS_CLOSE_PROTOCOL);
	cr_assert_eq(s.n, 0);
}

Test(cm_ws, client_reader_accepts_unmasked_server_frames)
{
	uint8_t b[64];
	size_t n = frame(b, CM_WS_TEXT, true, "hello", 5, false);
	n += frame(b + n, CM_WS_PING, true, "p", 1, false);
	struct sink s = { 0 };
	cr_assert_eq(feed_whole(b, n, false, 1024, &s), 0);
	cr_assert_eq(s.n, 2);
	assert_msg(&s, 0, CM_WS_TEXT, "hello", 5);
	assert_msg(&s, 1, CM_WS_PING, "p", 1);
	sink_free(&s);
}

Test(cm_ws, rejects_rsv_bits)
{
	for (int bit = 0; bit < 3; bit++) {
		uint8_t b[32];
		struct cm_ws_header h;
		size_t n = frame(b, CM_WS_TEXT, true, "hi", 2, true);
		b[0] |= (uint8_t)(0x10 << bit);
		cr_assert_eq(cm_ws_parse_header(b, n, true, &h), -CM_WS_CLOSE_PROTOCOL);
		struct sink s = { 0 };
		cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_PROTOCOL, "rsv bit %d", bit);
		cr_assert_eq(s.n, 0);
	}
}

Test(cm_ws, rejects_reserved_opcodes)
{
	static const uint8_t ops[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };
	for (size_t i = 0; i < sizeof(ops); i++) {
		uint8_t b[32];
		struct cm_ws_header h;
		size_t n = frame(b, ops[i], true, "", 0, true);
		cr_assert_eq(cm_ws_parse_header(b, n, true, &h), -CM_WS_CLOSE_PROTOCOL);
		/* Known from the first byte alone. */
		cr_assert_eq(cm_ws_parse_header(b, 1, true, &h), -CM_WS_CLOSE_PROTOCOL);
		struct sink s = { 0 };
		cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_PROTOCOL, "opcode %x", ops[i]);
	}
}

Test(cm_ws, rejects_control_frame_longer_than_125)
{
	uint8_t payload[126] = { 0 };
	uint8_t b[256];
	struct cm_ws_header h;
	static const uint8_t ops[] = { CM_WS_PING, CM_WS_PONG, CM_WS_CLOSE };
	for (size_t i = 0; i < sizeof(ops); i++) {
		size_t n = frame(b, ops[i], true, payload, 126, true);
		cr_assert_eq(cm_ws_parse_header(b, n, true, &h), -CM_WS_CLOSE_PROTOCOL);
		struct sink s = { 0 };
		cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_PROTOCOL);
	}
	/* A 7-bit length of 126/127 on a control frame is refused from 2 bytes. */
	raw2(b, 0x89, 0x80 | 127);
	cr_assert_eq(cm_ws_parse_header(b, 2, true, &h), -CM_WS_CLOSE_PROTOCOL);
}

Test(cm_ws, accepts_control_frame_of_125)
{
	uint8_t payload[125];
	uint8_t b[256];
	for (int i = 0; i < 125; i++)
		payload[i] = (uint8_t)i;
	size_t n = frame(b, CM_WS_PING, true, payload, 125, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), 0);
	assert_msg(&s, 0, CM_WS_PING, payload, 125);
	sink_free(&s);
}

Test(cm_ws, rejects_fragmented_control_frame)
{
	uint8_t b[32];
	struct cm_ws_header h;
	size_t n = frame(b, CM_WS_PING, false, "x", 1, true);
	cr_assert_eq(cm_ws_parse_header(b, n, true, &h), -CM_WS_CLOSE_PROTOCOL);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_PROTOCOL);
}

Test(cm_ws, rejects_continuation_without_open_message)
{
	uint8_t b[32];
	size_t n = frame(b, CM_WS_CONT, true, "x", 1, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_PROTOCOL);
	/* Also right after a complete message. */
	n = frame(b, CM_WS_TEXT, true, "a", 1, true);
	n += frame(b + n, CM_WS_CONT, true, "b", 1, true);
	cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_PROTOCOL);
	cr_assert_eq(s.n, 1);
	sink_free(&s);
}

Test(cm_ws, rejects_new_message_while_fragmented_message_is_open)
{
	static const uint8_t ops[] = { CM_WS_TEXT, CM_WS_BINARY };
	for (size_t i = 0; i < 2; i++) {
		uint8_t b[64];
		size_t n = frame(b, CM_WS_BINARY, false, "ab", 2, true);
		n += frame(b + n, ops[i], true, "cd", 2, true);
		struct sink s = { 0 };
		cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_PROTOCOL);
		cr_assert_eq(s.n, 0);
	}
}

Test(cm_ws, rejects_non_minimal_lengths)
{
	uint8_t b[16] = { 0x82, 0x80 | 126, 0x00, 125, 1, 2, 3, 4 };
	struct cm_ws_header h;
	cr_assert_eq(cm_ws_parse_header(b, 8, true, &h), -CM_WS_CLOSE_PROTOCOL);
	b[3] = 126;
	cr_assert_eq(cm_ws_parse_header(b, 8, true, &h), 8); /* 126 is minimal in 16 bits */

	uint8_t c[16] = { 0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4 };
	cr_assert_eq(cm_ws_parse_header(c, 14, true, &h), -CM_WS_CLOSE_PROTOCOL);
	c[8] = 0, c[9] = 5;
	cr_assert_eq(cm_ws_parse_header(c, 14, true, &h), -CM_WS_CLOSE_PROTOCOL);
	c[7] = 1, c[8] = 0, c[9] = 0; /* 65536 */
	cr_assert_eq(cm_ws_parse_header(c, 14, true, &h), 14);
	cr_assert_eq(h.len, 65536);

	struct sink s = { 0 };
	b[3] = 125;
	cr_assert_eq(feed_server(b, 8, &s), CM_WS_CLOSE_PROTOCOL);
}

Test(cm_ws, rejects_64bit_length_with_top_bit_set)
{
	uint8_t c[16] = { 0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
	struct cm_ws_header h;
	cr_assert_eq(cm_ws_parse_header(c, 14, true, &h), -CM_WS_CLOSE_PROTOCOL);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(c, 14, &s), CM_WS_CLOSE_PROTOCOL);
}

/* ---- masking ---------------------------------------------------------- */

Test(cm_ws, mask_matches_bytewise_reference_at_every_offset)
{
	uint8_t a[100], b[100];
	for (uint64_t off = 0; off < 9; off++) {
		for (size_t n = 0; n <= 100; n++) {
			for (size_t i = 0; i < n; i++)
				a[i] = b[i] = (uint8_t)(i * 7 + off);
			cm_ws_mask(a, n, MASK, off);
			for (size_t i = 0; i < n; i++)
				b[i] ^= MASK[(off + i) % 4];
			cr_assert_arr_eq(a, b, n, "offset %llu len %zu", (unsigned long long)off, n);
		}
	}
	/* Large offsets keep only their low bits. */
	memset(a, 0, 16);
	cm_ws_mask(a, 16, MASK, (1ull << 40) + 2);
	cr_assert_eq(a[0], MASK[2]);
	cr_assert_eq(a[15], MASK[1]);
}

Test(cm_ws, mask_continues_across_chunks)
{
	uint8_t a[203], b[203];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = b[i] = (uint8_t)(i * 13);
	cm_ws_mask(a, sizeof(a), MASK, 0);
	size_t cuts[] = { 0, 1, 3, 10, 17, 64, 99, 150, 203 };
	for (size_t k = 0; k + 1 < sizeof(cuts) / sizeof(cuts[0]); k++)
		cm_ws_mask(b + cuts[k], cuts[k + 1] - cuts[k], MASK, cuts[k]);
	cr_assert_arr_eq(a, b, sizeof(a));
}

/* ---- reader ----------------------------------------------------------- */

Test(cm_ws, delivers_whole_frame_zero_copy)
{
	uint8_t b[64];
	size_t n = frame(b, CM_WS_TEXT, true, "hello", 5, true);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 1024);
	cr_assert_eq(feed(&r, &s, b, n), 0);
	cr_assert_eq(s.n, 1);
	assert_msg(&s, 0, CM_WS_TEXT, "hello", 5);
	cr_assert(s.m[0].in_input, "a whole frame must be delivered from the input");
	/* Unmasked in place. */
	cr_assert_eq(memcmp(b + 6, "hello", 5), 0);
	cr_assert_null(r.buf);
	sink_free(&s);
}

Test(cm_ws, delivers_control_frame_zero_copy_inside_fragmented_message)
{
	uint8_t b[64];
	size_t n = frame(b, CM_WS_TEXT, false, "ab", 2, true);
	n += frame(b + n, CM_WS_PING, true, "pp", 2, true);
	n += frame(b + n, CM_WS_CONT, true, "cd", 2, true);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 1024);
	cr_assert_eq(feed(&r, &s, b, n), 0);
	cr_assert_eq(s.n, 2);
	assert_msg(&s, 0, CM_WS_PING, "pp", 2);
	cr_assert(s.m[0].in_input);
	assert_msg(&s, 1, CM_WS_TEXT, "abcd", 4);
	cr_assert_not(s.m[1].in_input, "a fragmented message is assembled");
	cr_assert_null(r.buf);
	sink_free(&s);
}

Test(cm_ws, copies_frame_split_across_feeds_then_frees_buffer)
{
	uint8_t b[64];
	size_t n = frame(b, CM_WS_BINARY, true, "0123456789", 10, true);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 1024);
	cr_assert_eq(feed(&r, &s, b, 9), 0);
	cr_assert_eq(s.n, 0);
	cr_assert_not_null(r.buf, "a split message is buffered");
	cr_assert_eq(feed(&r, &s, b + 9, n - 9), 0);
	cr_assert_eq(s.n, 1);
	assert_msg(&s, 0, CM_WS_BINARY, "0123456789", 10);
	cr_assert_not(s.m[0].in_input);
	cr_assert_null(r.buf, "the buffer goes once the message is delivered");
	cr_assert_eq(r.cap, 0);
	sink_free(&s);
}

Test(cm_ws, split_header_with_whole_payload_is_zero_copy)
{
	uint8_t b[64];
	size_t n = frame(b, CM_WS_BINARY, true, "abc", 3, true);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 1024);
	cr_assert_eq(feed(&r, &s, b, 1), 0);
	cr_assert_eq(feed(&r, &s, b + 1, 5), 0); /* rest of the header */
	cr_assert_eq(s.n, 0);
	cr_assert_eq(feed(&r, &s, b + 6, n - 6), 0);
	assert_msg(&s, 0, CM_WS_BINARY, "abc", 3);
	cr_assert(s.m[0].in_input);
	cr_assert_null(r.buf);
	sink_free(&s);
}

Test(cm_ws, reassembles_fragments_with_interleaved_ping)
{
	uint8_t b[256];
	size_t n = frame(b, CM_WS_BINARY, false, "one-", 4, true);
	n += frame(b + n, CM_WS_CONT, false, "two-", 4, true);
	n += frame(b + n, CM_WS_PING, true, "ping!", 5, true);
	n += frame(b + n, CM_WS_CONT, false, "", 0, true);
	n += frame(b + n, CM_WS_PONG, true, "", 0, true);
	n += frame(b + n, CM_WS_CONT, true, "three", 5, true);
	n += frame(b + n, CM_WS_TEXT, true, "next", 4, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), 0);
	cr_assert_eq(s.n, 4);
	assert_msg(&s, 0, CM_WS_PING, "ping!", 5);
	assert_msg(&s, 1, CM_WS_PONG, "", 0);
	assert_msg(&s, 2, CM_WS_BINARY, "one-two-three", 13);
	assert_msg(&s, 3, CM_WS_TEXT, "next", 4);
	sink_free(&s);
}

Test(cm_ws, delivers_empty_messages)
{
	uint8_t b[64];
	size_t n = frame(b, CM_WS_TEXT, true, "", 0, true);
	n += frame(b + n, CM_WS_BINARY, false, "", 0, true);
	n += frame(b + n, CM_WS_CONT, true, "", 0, true);
	n += frame(b + n, CM_WS_CLOSE, true, "", 0, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), 0);
	cr_assert_eq(s.n, 3);
	assert_msg(&s, 0, CM_WS_TEXT, "", 0);
	assert_msg(&s, 1, CM_WS_BINARY, "", 0);
	assert_msg(&s, 2, CM_WS_CLOSE, "", 0);
	sink_free(&s);
}

/* A stream exercising every reader path: small and 16-bit frames, a
 * fragmented text message with a character split across fragments, control
 * frames inside it, empty frames, a 64-bit-length frame, and a close. */
static size_t build_stream(uint8_t *b, uint8_t *big, size_t big_len)
{
	size_t n = 0;
	uint8_t mid[300];
	for (size_t i = 0; i < sizeof(mid); i++)
		mid[i] = (uint8_t)(i * 31);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (uint8_t)(i ^ (i >> 8));
	n += frame(b + n, CM_WS_TEXT, true, "hello", 5, true);
	n += frame(b + n, CM_WS_BINARY, true, mid, sizeof(mid), true);
	n += frame(b + n, CM_WS_TEXT, false, "caf\xC3", 4, true);
	n += frame(b + n, CM_WS_PING, true, "p1", 2, true);
	n += frame(b + n, CM_WS_CONT, false, "\xA9 \xE2\x82", 4, true);
	n += frame(b + n, CM_WS_PONG, true, "", 0, true);
	n += frame(b + n, CM_WS_CONT, true, "\xAC!", 2, true);
	n += frame(b + n, CM_WS_BINARY, true, big, big_len, true);
	n += frame(b + n, CM_WS_PING, true, mid, 125, true);
	n += frame(b + n, CM_WS_TEXT, true, "", 0, true);
	n += frame(b + n, CM_WS_CLOSE, true, "\x03\xe8" "bye", 5, true);
	return n;
}

static void assert_stream_msgs(const struct sink *s, const uint8_t *big, size_t big_len)
{
	uint8_t mid[300];
	for (size_t i = 0; i < sizeof(mid); i++)
		mid[i] = (uint8_t)(i * 31);
	cr_assert_eq(s->n, 9);
	assert_msg(s, 0, CM_WS_TEXT, "hello", 5);
	assert_msg(s, 1, CM_WS_BINARY, mid, sizeof(mid));
	assert_msg(s, 2, CM_WS_PING, "p1", 2);
	assert_msg(s, 3, CM_WS_PONG, "", 0);
	assert_msg(s, 4, CM_WS_TEXT, "caf\xC3\xA9 \xE2\x82\xAC!", 10);
	assert_msg(s, 5, CM_WS_BINARY, big, big_len);
	assert_msg(s, 6, CM_WS_PING, mid, 125);
	assert_msg(s, 7, CM_WS_TEXT, "", 0);
	assert_msg(s, 8, CM_WS_CLOSE, "\x03\xe8" "bye", 5);
}

#define BIG 70000

Test(cm_ws, whole_stream_gives_expected_messages)
{
	static uint8_t b[BIG + 1024], big[BIG];
	size_t n = build_stream(b, big, BIG);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), 0);
	assert_stream_msgs(&s, big, BIG);
	sink_free(&s);
}

Test(cm_ws, one_byte_at_a_time_gives_identical_messages)
{
	static uint8_t b[BIG + 1024], big[BIG];
	size_t n = build_stream(b, big, BIG);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 1 << 20);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(feed(&r, &s, b + i, 1), 0, "byte %zu", i);
	assert_stream_msgs(&s, big, BIG);
	cr_assert_null(r.buf);
	cr_assert_eq(r.hdr_have, 0);
	cr_assert_not(r.in_frame);
	sink_free(&s);
}

Test(cm_ws, every_split_point_gives_identical_messages)
{
	enum { SMALL = 200 };
	static uint8_t b[SMALL + 1024], big[SMALL], copy[SMALL + 1024];
	size_t n = build_stream(b, big, SMALL);
	for (size_t cut = 0; cut <= n; cut++) {
		struct cm_ws_reader r;
		struct sink s = { 0 };
		memcpy(copy, b, n);
		cm_ws_reader_init(&r, true, 1 << 20);
		cr_assert_eq(feed(&r, &s, copy, cut), 0, "cut %zu", cut);
		cr_assert_eq(feed(&r, &s, copy + cut, n - cut), 0, "cut %zu", cut);
		assert_stream_msgs(&s, big, SMALL);
		cr_assert_null(r.buf);
		sink_free(&s);
	}
}

Test(cm_ws, every_pair_of_split_points_gives_identical_messages)
{
	static uint8_t b[1024], big[1], copy[1024];
	size_t n = build_stream(b, big, 1);
	for (size_t c1 = 0; c1 <= n; c1 += 3) {
		for (size_t c2 = c1; c2 <= n; c2++) {
			struct cm_ws_reader r;
			struct sink s = { 0 };
			memcpy(copy, b, n);
			cm_ws_reader_init(&r, true, 1 << 20);
			cr_assert_eq(feed(&r, &s, copy, c1), 0);
			cr_assert_eq(feed(&r, &s, copy + c1, c2 - c1), 0);
			cr_assert_eq(feed(&r, &s, copy + c2, n - c2), 0);
			assert_stream_msgs(&s, big, 1);
			sink_free(&s);
		}
	}
}

Test(cm_ws, control_frame_split_across_feeds_inside_fragmented_message)
{
	uint8_t b[512];
	uint8_t pl[125];
	for (int i = 0; i < 125; i++)
		pl[i] = (uint8_t)(200 - i);
	size_t n = frame(b, CM_WS_BINARY, false, "abc", 3, true);
	size_t ping_at = n;
	n += frame(b + n, CM_WS_PING, true, pl, 125, true);
	n += frame(b + n, CM_WS_CONT, true, "def", 3, true);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 1024);
	size_t mid = ping_at + 50;
	cr_assert_eq(feed(&r, &s, b, mid), 0);
	cr_assert_eq(s.n, 0);
	cr_assert_eq(feed(&r, &s, b + mid, n - mid), 0);
	cr_assert_eq(s.n, 2);
	assert_msg(&s, 0, CM_WS_PING, pl, 125);
	assert_msg(&s, 1, CM_WS_BINARY, "abcdef", 6);
	cr_assert_null(r.buf);
	sink_free(&s);
}

Test(cm_ws, mask_offset_continues_across_feeds)
{
	/* Odd chunk sizes put every mask phase at a feed boundary. */
	static uint8_t b[5000], pl[4000];
	for (size_t i = 0; i < sizeof(pl); i++)
		pl[i] = (uint8_t)(i * 5 + 1);
	size_t n = frame(b, CM_WS_BINARY, true, pl, sizeof(pl), true);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 1 << 20);
	size_t i = 0, step = 1;
	while (i < n) {
		size_t k = step < n - i ? step : n - i;
		cr_assert_eq(feed(&r, &s, b + i, k), 0);
		i += k;
		step = step % 13 + 2;
	}
	cr_assert_eq(s.n, 1);
	assert_msg(&s, 0, CM_WS_BINARY, pl, sizeof(pl));
	sink_free(&s);
}

Test(cm_ws, rejects_invalid_utf8_in_text_frame)
{
	uint8_t b[64];
	size_t n = frame(b, CM_WS_TEXT, true, "ab\xC0\x80", 4, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_INVALID_DATA);
	cr_assert_eq(s.n, 0);
	/* Binary frames are not checked. */
	n = frame(b, CM_WS_BINARY, true, "ab\xC0\x80", 4, true);
	cr_assert_eq(feed_server(b, n, &s), 0);
	cr_assert_eq(s.n, 1);
	sink_free(&s);
}

Test(cm_ws, rejects_invalid_utf8_across_fragments)
{
	/* E2 82 then 28: a broken 3-byte character spanning two fragments. */
	uint8_t b[64];
	size_t n = frame(b, CM_WS_TEXT, false, "ok\xE2\x82", 4, true);
	n += frame(b + n, CM_WS_CONT, true, "(", 1, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_INVALID_DATA);
	cr_assert_eq(s.n, 0);
}

Test(cm_ws, rejects_invalid_utf8_before_message_ends)
{
	/* The first fragment alone is enough: no FIN has arrived yet. */
	uint8_t b[64];
	size_t n = frame(b, CM_WS_TEXT, false, "x\xFFy", 3, true);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 1024);
	cr_assert_eq(feed(&r, &s, b, n), CM_WS_CLOSE_INVALID_DATA);
	cm_ws_reader_reset(&r);
	/* Even mid-frame: the bad byte is in the first part fed. */
	n = frame(b, CM_WS_TEXT, true, "x\xFF" "yyyyyyyyyy", 12, true);
	cm_ws_reader_init(&r, true, 1024);
	cr_assert_eq(feed(&r, &s, b, 6 + 2), CM_WS_CLOSE_INVALID_DATA);
	cm_ws_reader_reset(&r);
	cr_assert_eq(s.n, 0);
}

Test(cm_ws, rejects_text_message_ending_inside_a_character)
{
	uint8_t b[64];
	size_t n = frame(b, CM_WS_TEXT, false, "ok", 2, true);
	n += frame(b + n, CM_WS_CONT, true, "\xE2\x82", 2, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_INVALID_DATA);
	n = frame(b, CM_WS_TEXT, true, "\xE2\x82", 2, true);
	cr_assert_eq(feed_server(b, n, &s), CM_WS_CLOSE_INVALID_DATA);
	cr_assert_eq(s.n, 0);
}

Test(cm_ws, enforces_max_message_on_one_frame)
{
	uint8_t b[256], pl[101] = { 0 };
	size_t n = frame(b, CM_WS_BINARY, true, pl, 100, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_whole(b, n, true, 100, &s), 0);
	n = frame(b, CM_WS_BINARY, true, pl, 101, true);
	cr_assert_eq(feed_whole(b, n, true, 100, &s), CM_WS_CLOSE_TOO_BIG);
	/* Refused from the header alone, before the payload arrives. */
	cr_assert_eq(feed_whole(b, 6, true, 100, &s), CM_WS_CLOSE_TOO_BIG);
	cr_assert_eq(s.n, 1);
	sink_free(&s);
}

Test(cm_ws, enforces_max_message_across_fragments)
{
	uint8_t b[256], pl[60] = { 0 };
	size_t n = frame(b, CM_WS_BINARY, false, pl, 50, true);
	n += frame(b + n, CM_WS_CONT, true, pl, 50, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_whole(b, n, true, 100, &s), 0);
	cr_assert_eq(s.n, 1);
	n = frame(b, CM_WS_BINARY, false, pl, 50, true);
	n += frame(b + n, CM_WS_CONT, false, pl, 50, true);
	n += frame(b + n, CM_WS_CONT, true, pl, 1, true);
	cr_assert_eq(feed_whole(b, n, true, 100, &s), CM_WS_CLOSE_TOO_BIG);
	cr_assert_eq(s.n, 1);
	/* Control frames do not count toward the message. */
	n = frame(b, CM_WS_BINARY, false, pl, 50, true);
	n += frame(b + n, CM_WS_PING, true, pl, 60, true);
	n += frame(b + n, CM_WS_CONT, true, pl, 50, true);
	cr_assert_eq(feed_whole(b, n, true, 100, &s), 0);
	cr_assert_eq(s.n, 3);
	sink_free(&s);
}

Test(cm_ws, huge_announced_length_is_refused_not_allocated)
{
	uint8_t c[16] = { 0x82, 0x80 | 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
			  1, 2, 3, 4 };
	struct sink s = { 0 };
	cr_assert_eq(feed_whole(c, 14, true, 1 << 20, &s), CM_WS_CLOSE_TOO_BIG);
}

Test(cm_ws, callback_code_stops_the_reader)
{
	uint8_t b[64];
	size_t n = frame(b, CM_WS_TEXT, true, "a", 1, true);
	n += frame(b + n, CM_WS_TEXT, true, "b", 1, true);
	n += frame(b + n, CM_WS_TEXT, true, "c", 1, true);
	struct cm_ws_reader r;
	struct sink s = { .stop_after = 2 };
	cm_ws_reader_init(&r, true, 1024);
	cr_assert_eq(feed(&r, &s, b, n), 4000);
	cr_assert_eq(s.n, 2);
	/* A failed reader refuses more input instead of misparsing it. */
	cr_assert_neq(feed(&r, &s, b, n), 0);
	cr_assert_eq(s.n, 2);
	cm_ws_reader_reset(&r);
	sink_free(&s);
}

Test(cm_ws, reader_holds_no_buffer_when_idle)
{
	uint8_t b[128];
	size_t n = frame(b, CM_WS_TEXT, false, "frag", 4, true);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 1024);
	cr_assert_null(r.buf);
	cr_assert_eq(feed(&r, &s, b, n), 0);
	cr_assert_not_null(r.buf);
	n = frame(b, CM_WS_CONT, true, "ment", 4, true);
	cr_assert_eq(feed(&r, &s, b, n), 0);
	assert_msg(&s, 0, CM_WS_TEXT, "fragment", 8);
	cr_assert_null(r.buf);
	/* A control frame split while no message is open is freed too. */
	n = frame(b, CM_WS_PING, true, "0123456789", 10, true);
	cr_assert_eq(feed(&r, &s, b, 8), 0);
	cr_assert_eq(feed(&r, &s, b + 8, n - 8), 0);
	assert_msg(&s, 1, CM_WS_PING, "0123456789", 10);
	cr_assert_null(r.buf);
	sink_free(&s);
}

/* ---- close payloads --------------------------------------------------- */

static int close_of(const void *p, size_t n, uint16_t *code)
{
	const uint8_t *reason;
	size_t rlen;
	return cm_ws_parse_close(p, n, code, &reason, &rlen);
}

Test(cm_ws, close_empty_payload_means_no_status)
{
	uint16_t code = 0;
	const uint8_t *reason;
	size_t rlen = 99;
	cr_assert_eq(cm_ws_parse_close(NULL, 0, &code, &reason, &rlen), 0);
	cr_assert_eq(code, CM_WS_CLOSE_NO_STATUS);
	cr_assert_eq(rlen, 0);
}

Test(cm_ws, close_one_byte_payload_is_protocol_error)
{
	uint16_t code;
	cr_assert_eq(close_of("\x03", 1, &code), -CM_WS_CLOSE_PROTOCOL);
}

Test(cm_ws, close_returns_code_and_reason)
{
	uint16_t code;
	const uint8_t *reason;
	size_t rlen;
	const uint8_t p[] = "\x03\xe9going \xC3\xA9";
	cr_assert_eq(cm_ws_parse_close(p, sizeof(p) - 1, &code, &reason, &rlen), 0);
	cr_assert_eq(code, 1001);
	cr_assert_eq(rlen, 8);
	cr_assert_eq(memcmp(reason, "going \xC3\xA9", 8), 0);
}

Test(cm_ws, close_rejects_codes_that_may_not_be_sent)
{
	static const uint16_t bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100,
					2000, 2999, 5000, 65535 };
	static const uint16_t good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
					 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t p[2] = { (uint8_t)(bad[i] >> 8), (uint8_t)bad[i] };
		uint16_t code;
		cr_assert_eq(close_of(p, 2, &code), -CM_WS_CLOSE_PROTOCOL, "code %u", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint8_t p[2] = { (uint8_t)(good[i] >> 8), (uint8_t)good[i] };
		uint16_t code = 0;
		cr_assert_eq(close_of(p, 2, &code), 0, "code %u", good[i]);
		cr_assert_eq(code, good[i]);
	}
}

Test(cm_ws, close_rejects_reason_not_in_utf8)
{
	uint16_t code;
	cr_assert_eq(close_of("\x03\xe8" "bad \xED\xA0\x80", 9, &code), -CM_WS_CLOSE_INVALID_DATA);
	cr_assert_eq(close_of("\x03\xe8" "cut \xE2\x82", 8, &code), -CM_WS_CLOSE_INVALID_DATA);
}

Test(cm_ws, zero_max_message_means_no_limit)
{
	static uint8_t b[3 * 70000 + 64], pl[70000];
	memset(pl, 'q', sizeof(pl));
	size_t n = frame(b, CM_WS_TEXT, false, pl, sizeof(pl), true);
	n += frame(b + n, CM_WS_CONT, false, pl, sizeof(pl), true);
	n += frame(b + n, CM_WS_CONT, true, pl, sizeof(pl), true);
	struct cm_ws_reader r;
	struct sink s = { 0 };
	cm_ws_reader_init(&r, true, 0);
	/* In uneven pieces so the buffer grows as data arrives. */
	for (size_t i = 0; i < n; i += 4099)
		cr_assert_eq(feed(&r, &s, b + i, n - i < 4099 ? n - i : 4099), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.m[0].len, 3 * sizeof(pl));
	cr_assert_null(r.buf);
	sink_free(&s);
}

Test(cm_ws, many_tiny_fragments_reassemble)
{
	static uint8_t b[3000 * 7];
	size_t n = frame(b, CM_WS_BINARY, false, "0", 1, true);
	for (int i = 1; i < 2999; i++)
		n += frame(b + n, CM_WS_CONT, false, (const char[]){ (char)('0' + i % 10) }, 1, true);
	n += frame(b + n, CM_WS_CONT, true, "9", 1, true);
	struct sink s = { 0 };
	cr_assert_eq(feed_whole(b, n, true, 3000, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.m[0].len, 3000);
	for (int i = 0; i < 2999; i++)
		cr_assert_eq(s.m[0].data[i], '0' + i % 10);
	sink_free(&s);
}
