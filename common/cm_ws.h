/* cm_ws — RFC 6455 framing: frame headers, masking, and a per-connection
 * reader that assembles messages across fragments and buffers.
 *
 * The reader is zero-copy where it can be: a complete unfragmented frame
 * found whole in the input is unmasked in place and handed to the callback
 * pointing into the caller's buffer. Only a message split across input
 * buffers or fragments is copied, into a heap buffer the reader owns and
 * frees as soon as the message is delivered (an idle reader holds none). */
#ifndef CM_WS_H
#define CM_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cm_ws_opcode {
	CM_WS_CONT = 0x0,
	CM_WS_TEXT = 0x1,
	CM_WS_BINARY = 0x2,
	CM_WS_CLOSE = 0x8,
	CM_WS_PING = 0x9,
	CM_WS_PONG = 0xA,
};

/* Close codes (RFC 6455 7.4.1) used by herald. */
enum cm_ws_close {
	CM_WS_CLOSE_NORMAL = 1000,
	CM_WS_CLOSE_GOING_AWAY = 1001,
	CM_WS_CLOSE_PROTOCOL = 1002,
	CM_WS_CLOSE_UNSUPPORTED = 1003,
	CM_WS_CLOSE_NO_STATUS = 1005,
	CM_WS_CLOSE_INVALID_DATA = 1007,
	CM_WS_CLOSE_POLICY = 1008,
	CM_WS_CLOSE_TOO_BIG = 1009,
	CM_WS_CLOSE_INTERNAL = 1011,
	CM_WS_CLOSE_OVERLOADED = 1013,
};

#define CM_WS_MAX_HEADER 14 /* 2 + 8 length + 4 mask */

struct cm_ws_header {
	bool fin;
	uint8_t rsv;     /* the three RSV bits, >> 4 */
	uint8_t opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t len;    /* payload length */
	size_t hdr_len;  /* bytes of header */
};

/* Parses a frame header at p[0..n). Returns the header length (> 0), 0 when
 * more bytes are needed, or -CM_WS_CLOSE_PROTOCOL when the header breaks
 * RFC 6455 (non-minimal length, 64-bit length with the top bit set, control
 * frame longer than 125 or fragmented, reserved opcode, RSV bits set, or a
 * mask that does not match `want_masked`). */
int cm_ws_parse_header(const uint8_t *p, size_t n, bool want_masked, struct cm_ws_header *h);

/* XORs p[0..n) with mask, starting at byte `offset` of the mask stream
 * (offset counts payload bytes already unmasked). */
void cm_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* Writes a frame header for a payload of len bytes. mask may be NULL (server
 * frames). Returns its length (2..14). out needs CM_WS_MAX_HEADER bytes. */
size_t cm_ws_write_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len,
			  const uint8_t *mask);

/* Called for each complete message (TEXT or BINARY, already validated as
 * UTF-8 when TEXT) and each control frame (CLOSE, PING, PONG). data is only
 * valid during the call and may be modified. Return 0 to go on, or a close
 * code to stop the reader (cm_ws_reader_feed then returns it). */
typedef int (*cm_ws_on_message)(void *ctx, uint8_t opcode, uint8_t *data, size_t len);

struct cm_ws_reader {
	/* frame in progress */
	uint8_t hdr[CM_WS_MAX_HEADER];
	uint8_t hdr_have;    /* header bytes buffered when split */
	uint8_t opcode;      /* of the frame in progress */
	bool in_frame, fin, is_server;
	uint8_t mask[4];
	uint64_t remaining;  /* payload bytes of the current frame still to read */
	uint64_t done;       /* payload bytes of the current frame already read */
	/* message in progress (fragmented or split) */
	uint8_t msg_opcode;  /* TEXT/BINARY while a message is open, else 0 */
	uint32_t utf8;       /* cm_utf8 state over the open message */
	uint8_t *buf;        /* assembly buffer, NULL when idle */
	size_t len, cap;
	size_t max_message;  /* larger messages fail with 1009 */
};

/* Initialises a reader. is_server: frames from the peer must be masked (the
 * server reading a client) or must not be (a client reading a server). */
void cm_ws_reader_init(struct cm_ws_reader *r, bool is_server, size_t max_message);

/* Feeds n bytes (modified in place: unmasked). Calls cb for each message or
 * control frame. Returns 0, or the close code the connection must be closed
 * with: 1002 protocol error, 1007 invalid UTF-8, 1009 message too big, or a
 * code cb returned. After an error the reader must not be fed again. */
int cm_ws_reader_feed(struct cm_ws_reader *r, uint8_t *data, size_t n,
		      cm_ws_on_message cb, void *ctx);

/* Frees the assembly buffer, if any. */
void cm_ws_reader_reset(struct cm_ws_reader *r);

/* Parses a CLOSE payload. Returns 0 and sets *code (1005 when empty) and the
 * reason, or -CM_WS_CLOSE_PROTOCOL for a 1-byte payload or an invalid code
 * (RFC 6455 7.4), -CM_WS_CLOSE_INVALID_DATA for a reason not in UTF-8. */
int cm_ws_parse_close(const uint8_t *p, size_t n, uint16_t *code,
		      const uint8_t **reason, size_t *reason_len);

#endif
