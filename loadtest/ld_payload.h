/* ld_payload — what herald-load publishes and how a receiver reads it back.
 *
 * A payload is ASCII that needs no JSON escaping:
 *     ld1:<step>:<stream>:<seq>:<send_ns>:xxxx...
 * step is the publishing step (one per rate), stream the stream's index,
 * seq the per-stream sequence number (1, 2, ...), send_ns CLOCK_MONOTONIC
 * nanoseconds at publish time; 'x' pads it to the requested size.
 *
 * The receiver's fast path reads a JSON push frame without a full JSON
 * parser: the gateway writes {"push":{"stream":S,"offset":N,"data":D}} and
 * our payloads are plain strings. */
#ifndef LD_PAYLOAD_H
#define LD_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LD_PAYLOAD_MIN 68  /* the header's worst case, padding excluded */

struct ld_payload {
	uint32_t step;
	uint32_t stream;
	uint64_t seq;
	uint64_t send_ns;
};

/* Writes a payload of max(size, header length) bytes into out. Returns its
 * length, or 0 when cap is too small. No NUL is written. */
size_t ld_payload_encode(char *out, size_t cap, size_t size, const struct ld_payload *pl);

/* Reads a payload. Returns 0, or -1 when p[0..n) is not one of ours (wrong
 * prefix, a missing or non-numeric field, a number out of range). */
int ld_payload_decode(const uint8_t *p, size_t n, struct ld_payload *pl);

struct ld_push {
	const uint8_t *stream;   /* into the frame */
	size_t stream_len;
	uint64_t offset;
	const uint8_t *data;     /* into the frame, still JSON-escaped if escaped */
	size_t data_len;
	bool escaped;            /* data holds a backslash (not one of our payloads) */
	bool base64;             /* "encoding":"base64" was present */
};

/* Reads a JSON text frame. Returns 1 for a push (fields filled), 0 for any
 * other server message (a reply), -1 when it is not a well-formed push or
 * reply as far as this reader can tell. */
int ld_push_parse_json(const uint8_t *p, size_t n, struct ld_push *push);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t ld_now_ns(void);

#endif
