/* cm_ws — RFC 6455 framing: header codec, masking and the message reader. */
#include "cm_ws.h"

#include <string.h>

#include "cm_log.h"
#include "cm_utf8.h"

/* msg_opcode value of a reader that returned an error: it refuses more input
 * (the header says it must not be fed again; this makes it harmless). */
#define WS_FAILED 0xFF

static bool is_control(uint8_t opcode)
{
	return opcode & 0x8;
}

static bool is_known_opcode(uint8_t opcode)
{
	return opcode <= CM_WS_BINARY || (opcode >= CM_WS_CLOSE && opcode <= CM_WS_PONG);
}

int cm_ws_parse_header(const uint8_t *p, size_t n, bool want_masked, struct cm_ws_header *h)
{
	size_t need = 2;
	uint8_t len7;

	/* Fail as soon as the first byte shows a bad frame. */
	if (n < 1)
		return 0;
	h->fin = p[0] & 0x80;
	h->rsv = (p[0] >> 4) & 0x7;
	h->opcode = p[0] & 0x0F;
	if (h->rsv || !is_known_opcode(h->opcode))
		return -CM_WS_CLOSE_PROTOCOL;
	if (is_control(h->opcode) && !h->fin)
		return -CM_WS_CLOSE_PROTOCOL;
	if (n < 2)
		return 0;
	h->masked = p[1] & 0x80;
	len7 = p[1] & 0x7F;
	if (h->masked != want_masked)
		return -CM_WS_CLOSE_PROTOCOL;
	if (is_control(h->opcode) && len7 > 125)
		return -CM_WS_CLOSE_PROTOCOL;
	if (len7 == 126)
		need += 2;
	else if (len7 == 127)
		need += 8;
	if (n < need)
		return 0;
	if (len7 == 126) {
		h->len = (uint64_t)p[2] << 8 | p[3];
		if (h->len < 126)
			return -CM_WS_CLOSE_PROTOCOL; /* non-minimal */
	} else if (len7 == 127) {
		h->len = 0;
		for (int i = 0; i < 8; i++)
			h->len = h->len << 8 | p[2 + i];
		if (h->len >> 63)
			return -CM_WS_CLOSE_PROTOCOL;
		if (h->len <= 0xFFFF)
			return -CM_WS_CLOSE_PROTOCOL; /* non-minimal */
	} else {
		h->len = len7;
	}
	if (h->masked) {
		if (n < need + 4)
			return 0;
		memcpy(h->mask, p + need, 4);
		need += 4;
	} else {
		memset(h->mask, 0, 4);
	}
	h->hdr_len = need;
	return (int)need;
}

void cm_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
	uint8_t m[8];
	uint64_t m64;
	size_t i = 0;

	/* The mask stream rotated to `offset`, twice: 8 bytes keep the phase. */
	for (int k = 0; k < 8; k++)
		m[k] = mask[(offset + (uint64_t)k) & 3];
	memcpy(&m64, m, 8);
	for (; n - i >= 32; i += 32) {
		uint64_t w[4];
		memcpy(w, p + i, 32);
		w[0] ^= m64;
		w[1] ^= m64;
		w[2] ^= m64;
		w[3] ^= m64;
		memcpy(p + i, w, 32);
	}
	for (; n - i >= 8; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		w ^= m64;
		memcpy(p + i, &w, 8);
	}
	for (size_t k = 0; i < n; i++, k++)
		p[i] ^= m[k];
}

size_t cm_ws_write_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len,
			  const uint8_t *mask)
{
	size_t h;

	out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
	if (len < 126) {
		out[1] = (uint8_t)len;
		h = 2;
	} else if (len <= 0xFFFF) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		h = 4;
	} else {
		out[1] = 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		h = 10;
	}
	if (mask) {
		out[1] |= 0x80;
		memcpy(out + h, mask, 4);
		h += 4;
	}
	return h;
}

void cm_ws_reader_init(struct cm_ws_reader *r, bool is_server, size_t max_message)
{
	memset(r, 0, sizeof(*r));
	r->is_server = is_server;
	r->max_message = max_message;
}

void cm_ws_reader_reset(struct cm_ws_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = 0;
	r->cap = 0;
}

static int reader_fail(struct cm_ws_reader *r, int code)
{
	cm_ws_reader_reset(r);
	r->msg_opcode = WS_FAILED;
	r->in_frame = false;
	return code;
}

/* Checks the frame against the message state and starts it. A max_message
 * of 0 means no limit. */
static int begin_frame(struct cm_ws_reader *r, const struct cm_ws_header *h)
{
	if (h->opcode == CM_WS_CONT) {
		if (!r->msg_opcode)
			return CM_WS_CLOSE_PROTOCOL;
	} else if (!is_control(h->opcode)) {
		if (r->msg_opcode)
			return CM_WS_CLOSE_PROTOCOL;
		r->msg_opcode = h->opcode;
		r->utf8 = CM_UTF8_ACCEPT;
		r->len = 0;
	}
	if (!is_control(h->opcode) && r->max_message &&
	    (h->len > r->max_message || r->len + h->len > r->max_message))
		return CM_WS_CLOSE_TOO_BIG;
	r->opcode = h->opcode;
	r->fin = h->fin;
	memcpy(r->mask, h->mask, 4);
	r->remaining = h->len;
	r->done = 0;
	r->in_frame = true;
	return 0;
}

/* Makes room for `want` bytes in the assembly buffer. Grows geometrically
 * (fragments may be tiny), and straight to `frame_end`, where the current
 * frame ends, when max_message bounds it (begin_frame checked that). */
static void reserve(struct cm_ws_reader *r, size_t want, uint64_t frame_end)
{
	size_t ncap;

	if (want <= r->cap)
		return;
	ncap = r->cap * 2;
	if (ncap < 256)
		ncap = 256;
	if (r->max_message && frame_end > ncap)
		ncap = (size_t)frame_end;
	if (ncap < want)
		ncap = want;
	r->buf = cm_xrealloc(r->buf, ncap);
	r->cap = ncap;
}

/* The message (data frames) or control frame in progress is complete. */
static int end_frame(struct cm_ws_reader *r, cm_ws_on_message cb, void *ctx)
{
	int rc;

	r->in_frame = false;
	if (is_control(r->opcode)) {
		rc = cb(ctx, r->opcode, r->buf ? r->buf + r->len : r->hdr, (size_t)r->done);
		if (!r->msg_opcode)
			cm_ws_reader_reset(r);
		return rc;
	}
	if (!r->fin)
		return 0;
	if (r->msg_opcode == CM_WS_TEXT && r->utf8 != CM_UTF8_ACCEPT)
		return CM_WS_CLOSE_INVALID_DATA;
	rc = cb(ctx, r->msg_opcode, r->buf ? r->buf : r->hdr, r->len);
	r->msg_opcode = 0;
	cm_ws_reader_reset(r);
	return rc;
}

int cm_ws_reader_feed(struct cm_ws_reader *r, uint8_t *data, size_t n,
		      cm_ws_on_message cb, void *ctx)
{
	size_t i = 0;
	int rc;

	if (r->msg_opcode == WS_FAILED)
		return CM_WS_CLOSE_PROTOCOL;
	for (;;) {
		size_t avail, take;

		if (!r->in_frame) {
			struct cm_ws_header h;

			if (i == n)
				break;
			if (r->hdr_have == 0) {
				rc = cm_ws_parse_header(data + i, n - i, r->is_server, &h);
				if (rc < 0)
					return reader_fail(r, -rc);
				if (rc == 0) {
					/* Less than a header left: keep it for the next feed. */
					memcpy(r->hdr, data + i, n - i);
					r->hdr_have = (uint8_t)(n - i);
					i = n;
					break;
				}
				i += (size_t)rc;
			} else {
				take = CM_WS_MAX_HEADER - r->hdr_have;
				if (take > n - i)
					take = n - i;
				memcpy(r->hdr + r->hdr_have, data + i, take);
				rc = cm_ws_parse_header(r->hdr, r->hdr_have + take, r->is_server, &h);
				if (rc < 0)
					return reader_fail(r, -rc);
				if (rc == 0) {
					r->hdr_have = (uint8_t)(r->hdr_have + take);
					i += take;
					break;
				}
				i += (size_t)rc - r->hdr_have;
				r->hdr_have = 0;
			}
			rc = begin_frame(r, &h);
			if (rc)
				return reader_fail(r, rc);
		}

		avail = n - i;
		/* Zero-copy: a control frame, or a whole unfragmented message,
		 * whose payload lies entirely in this input. */
		if (r->done == 0 && r->remaining <= avail &&
		    (is_control(r->opcode) || (r->opcode != CM_WS_CONT && r->fin))) {
			uint8_t *payload = data + i;
			size_t len = (size_t)r->remaining;

			if (r->is_server)
				cm_ws_mask(payload, len, r->mask, 0);
			i += len;
			r->in_frame = false;
			r->remaining = 0;
			if (r->opcode == CM_WS_TEXT && !cm_utf8_valid(payload, len))
				return reader_fail(r, CM_WS_CLOSE_INVALID_DATA);
			if (!is_control(r->opcode))
				r->msg_opcode = 0;
			rc = cb(ctx, r->opcode, payload, len);
			if (rc)
				return reader_fail(r, rc);
			continue;
		}

		take = r->remaining < avail ? (size_t)r->remaining : avail;
		if (take) {
			uint8_t *src = data + i;
			size_t base = is_control(r->opcode) ? r->len + (size_t)r->done : r->len;

			if (r->is_server)
				cm_ws_mask(src, take, r->mask, r->done);
			if (!is_control(r->opcode) && r->msg_opcode == CM_WS_TEXT) {
				/* Fail fast: a character may straddle fragments, but
				 * an invalid byte is reported as soon as it arrives. */
				r->utf8 = cm_utf8_step(r->utf8, src, take);
				if (r->utf8 == CM_UTF8_REJECT)
					return reader_fail(r, CM_WS_CLOSE_INVALID_DATA);
			}
			reserve(r, base + take, base + r->remaining);
			memcpy(r->buf + base, src, take);
			if (!is_control(r->opcode))
				r->len += take;
			r->done += take;
			r->remaining -= take;
			i += take;
		}
		if (r->remaining)
			break; /* input exhausted mid-frame */
		rc = end_frame(r, cb, ctx);
		if (rc)
			return reader_fail(r, rc);
	}
	return 0;
}

int cm_ws_parse_close(const uint8_t *p, size_t n, uint16_t *code,
		      const uint8_t **reason, size_t *reason_len)
{
	uint16_t c;

	*reason = p;
	*reason_len = 0;
	if (n == 0) {
		*code = CM_WS_CLOSE_NO_STATUS;
		return 0;
	}
	if (n == 1)
		return -CM_WS_CLOSE_PROTOCOL;
	c = (uint16_t)(p[0] << 8 | p[1]);
	/* Codes a peer may send (RFC 6455 7.4 and the IANA registry). */
	if (!((c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
	      (c >= 3000 && c <= 4999)))
		return -CM_WS_CLOSE_PROTOCOL;
	if (!cm_utf8_valid(p + 2, n - 2))
		return -CM_WS_CLOSE_INVALID_DATA;
	*code = c;
	*reason = p + 2;
	*reason_len = n - 2;
	return 0;
}
