/* cm_client — the client protocol of CONTRACT.md in both formats: parsing a
 * client's command, encoding replies, and the push encoder of the hot path
 * (one pass, straight into a packet). Also the reverse direction for our own
 * clients (tests, herald-load): encoding commands and decoding server
 * messages. */
#ifndef CM_CLIENT_H
#define CM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_packet;

enum cm_fmt { CM_FMT_JSON = 0, CM_FMT_PROTOBUF = 1 };

#define CM_STREAM_MAX 128
#define CM_ID_MAX ((1ULL << 53))

enum cm_cmd_kind { CM_CMD_NONE = 0, CM_CMD_SUBSCRIBE, CM_CMD_UNSUBSCRIBE, CM_CMD_PUBLISH };

/* Error codes in replies (CONTRACT.md). */
enum cm_err {
	CM_ERR_MALFORMED = 400,
	CM_ERR_FORBIDDEN = 403,
	CM_ERR_UNKNOWN = 404,
	CM_ERR_TOO_LARGE = 413,
	CM_ERR_BAD_STREAM = 422,
	CM_ERR_RATE = 429,
	CM_ERR_INTERNAL = 500,
};

struct cm_cmd {
	uint64_t id;               /* 0 when the frame had none or it was unreadable */
	enum cm_cmd_kind kind;
	char stream[CM_STREAM_MAX + 1];
	size_t stream_len;
	const uint8_t *data;       /* publish payload (decoded); valid until cm_cmd_release */
	size_t data_len;
	void *priv;                /* parser-owned storage */
};

/* Stream names: 1..128 bytes of [A-Za-z0-9_:.-]. */
bool cm_stream_valid(const char *s, size_t n);

/* Parses one client frame. Returns 0, or an error code (400 malformed or
 * bad id, 404 unknown command, 422 invalid stream name) with *errmsg set to
 * a static message; cmd->id is set whenever it could be read (else 0).
 * JSON: {"id":N,"subscribe":{"stream":S}} and the like; "data" of a publish
 * is a JSON string whose UTF-8 bytes are the payload. Protobuf: Command.
 * Always call cm_cmd_release afterwards. */
int cm_cmd_parse(enum cm_fmt fmt, const uint8_t *p, size_t n, struct cm_cmd *cmd,
		 const char **errmsg);
void cm_cmd_release(struct cm_cmd *cmd);

/* Replies: write the message (not the WebSocket frame) into out; return the
 * length, or 0 when cap is too small. msg of an error is escaped as needed. */
size_t cm_reply_ok(enum cm_fmt fmt, uint64_t id, uint8_t *out, size_t cap);
size_t cm_reply_error(enum cm_fmt fmt, uint64_t id, int code, const char *msg,
		      uint8_t *out, size_t cap);

/* The push encoder: one complete WebSocket frame (text for JSON, binary for
 * protobuf) holding {"push":{"stream":S,"offset":N,"data":D}} or a
 * ServerMessage{push}, in a new packet with refs = 1. JSON data is a JSON
 * string when the payload is valid UTF-8 (escaped; NUL as \u0000), else
 * base64 with "encoding":"base64". */
struct cm_packet *cm_push_packet(enum cm_fmt fmt, const char *stream, size_t stream_len,
				 uint64_t offset, const uint8_t *data, size_t len);

/* A reply as a complete WebSocket frame in a new packet. */
struct cm_packet *cm_reply_packet(enum cm_fmt fmt, uint64_t id, int code, const char *msg);

/* --- our own clients (tests, herald-load) --- */

/* Encodes a command; data/len only for publish. Returns the length or 0. */
size_t cm_cmd_encode(enum cm_fmt fmt, enum cm_cmd_kind kind, uint64_t id, const char *stream,
		     const uint8_t *data, size_t len, uint8_t *out, size_t cap);

enum cm_smsg_kind { CM_SMSG_REPLY = 1, CM_SMSG_PUSH = 2 };
struct cm_smsg {
	enum cm_smsg_kind kind;
	uint64_t id;               /* reply */
	int code;                  /* reply: 0 for ok, else the error code */
	char message[128];         /* reply error message (truncated) */
	char stream[CM_STREAM_MAX + 1]; /* push */
	uint64_t offset;           /* push */
	uint8_t *data;             /* push payload, decoded (base64 undone); malloc'd */
	size_t data_len;
};
/* Decodes one server message. Returns 0 or -1 when malformed. Free with
 * cm_smsg_release. */
int cm_smsg_decode(enum cm_fmt fmt, const uint8_t *p, size_t n, struct cm_smsg *m);
void cm_smsg_release(struct cm_smsg *m);

#endif
