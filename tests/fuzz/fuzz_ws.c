// fuzz-sources: common/cm_ws.c common/cm_utf8.c common/cm_log.c
/* fuzz_ws — the WebSocket reader against arbitrary bytes.
 *
 * Input: byte 0 picks the reader side (bit 0: server) and a max_message
 * class; byte 1 seeds the chunking; the rest is the stream. The same stream
 * is fed whole and in pseudo-random chunks: both runs must return the same
 * code and deliver the same messages (a differential oracle for the
 * buffering paths), an idle reader must hold no buffer, and every CLOSE
 * payload goes through cm_ws_parse_close. The header codec is round-tripped
 * on lengths taken from the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cm_utf8.h"
#include "cm_ws.h"

struct digest {
	uint64_t h;
	unsigned n;
};

static void mix(struct digest *d, const uint8_t *p, size_t n)
{
	/* FNV-1a over the message stream. */
	for (size_t i = 0; i < n; i++)
		d->h = (d->h ^ p[i]) * 0x100000001b3ull;
}

static int on_msg(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
	struct digest *d = ctx;
	uint8_t hdr[9] = { opcode };

	if (opcode == CM_WS_TEXT && !cm_utf8_valid(data, len))
		abort(); /* TEXT must arrive validated */
	if (opcode & 0x8 && len > 125)
		abort();
	if (opcode == CM_WS_CLOSE) {
		uint16_t code;
		const uint8_t *reason;
		size_t rlen;
		if (cm_ws_parse_close(data, len, &code, &reason, &rlen) == 0 &&
		    (rlen > len || (len && reason + rlen != data + len)))
			abort();
	}
	memcpy(hdr + 1, &len, sizeof(len));
	mix(d, hdr, sizeof(hdr));
	mix(d, data, len);
	d->n++;
	return 0;
}

static int run(const uint8_t *in, size_t n, bool server, size_t max, uint32_t seed,
	       bool chunked, struct digest *d)
{
	struct cm_ws_reader r;
	uint8_t *copy = malloc(n ? n : 1);
	size_t i = 0;
	int rc = 0;

	memcpy(copy, in, n);
	cm_ws_reader_init(&r, server, max);
	d->h = 0xcbf29ce484222325ull;
	d->n = 0;
	while (i < n && rc == 0) {
		size_t k = n - i;
		if (chunked) {
			seed = seed * 1103515245u + 12345u;
			k = 1 + (seed >> 16) % 23;
			if (k > n - i)
				k = n - i;
		}
		rc = cm_ws_reader_feed(&r, copy + i, k, on_msg, d);
		i += k;
		if (rc == 0 && !r.in_frame && r.msg_opcode == 0 && r.buf)
			abort(); /* an idle reader holds no heap */
	}
	cm_ws_reader_reset(&r);
	free(copy);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[4] = { 0, 16, 1000, 1 << 20 };
	struct digest a, b;

	if (size < 2)
		return 0;
	bool server = data[0] & 1;
	size_t max = maxes[(data[0] >> 1) & 3];
	uint32_t seed = data[1];
	int ra = run(data + 2, size - 2, server, max, seed, false, &a);
	int rb = run(data + 2, size - 2, server, max, seed, true, &b);
	if (ra != rb || a.n != b.n || a.h != b.h)
		abort();

	/* Header codec: write, then parse back, any length the input names. */
	if (size >= 10) {
		uint64_t len;
		uint8_t hdr[CM_WS_MAX_HEADER];
		struct cm_ws_header h;
		memcpy(&len, data + 2, 8);
		len >>= data[0] & 63;
		len &= ~(1ull << 63);
		const uint8_t mask[4] = { data[1], data[2], data[3], data[4] };
		size_t hl = cm_ws_write_header(hdr, CM_WS_BINARY, data[5] & 1, len,
					       server ? mask : NULL);
		if (cm_ws_parse_header(hdr, hl, server, &h) != (int)hl || h.len != len ||
		    h.hdr_len != hl)
			abort();
	}
	return 0;
}
