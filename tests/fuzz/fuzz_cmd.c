// fuzz-sources: common/cm_client.c common/cm_b64.c common/cm_utf8.c common/cm_packet.c common/cm_ws.c common/cm_log.c build/gen/proto/client.pb-c.c
/* Fuzzes the client command parser (first byte: 0 JSON, 1 protobuf; the
 * rest is the frame). Every publish that parses is pushed back out with
 * cm_push_packet in the same format and decoded with cm_smsg_decode: the
 * payload must come back byte for byte. Every reply the gateway would send
 * for the outcome must decode too. Also decodes the input as a server
 * message, which must not crash. */
#include <stdlib.h>
#include <string.h>

#include "cm_client.h"
#include "cm_packet.h"
#include "cm_ws.h"

static void check_frame(const struct cm_packet *p, uint8_t opcode, const uint8_t **msg, size_t *n)
{
	struct cm_ws_header h;
	int hl = cm_ws_parse_header(cm_packet_bytes(p), p->len, false, &h);

	if (hl <= 0 || !h.fin || h.opcode != opcode || (size_t)hl + h.len != p->len)
		abort();
	*msg = cm_packet_bytes(p) + hl;
	*n = (size_t)h.len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cm_cmd cmd;
	struct cm_smsg sm;
	const char *err;
	const uint8_t *m;
	size_t n;

	if (size < 1)
		return 0;
	enum cm_fmt fmt = (data[0] & 1) ? CM_FMT_PROTOBUF : CM_FMT_JSON;
	uint8_t op = fmt == CM_FMT_JSON ? CM_WS_TEXT : CM_WS_BINARY;
	const uint8_t *p = data + 1;
	size_t len = size - 1;

	/* the parser must not read past the frame: give it an exact copy */
	uint8_t *copy = malloc(len ? len : 1);
	if (len)
		memcpy(copy, p, len);
	int rc = cm_cmd_parse(fmt, copy, len, &cmd, &err);
	free(copy);

	if (rc != 0 && rc != 400 && rc != 404 && rc != 422)
		abort();
	if (rc && !err)
		abort();
	if (cmd.id > CM_ID_MAX)
		abort();
	if (rc == 0) {
		if (cmd.kind == CM_CMD_NONE || !cm_stream_valid(cmd.stream, cmd.stream_len) ||
		    strlen(cmd.stream) != cmd.stream_len)
			abort();
	}

	/* the reply for this outcome decodes to the same id and code */
	struct cm_packet *rp = cm_reply_packet(fmt, cmd.id, rc, err);
	check_frame(rp, op, &m, &n);
	if (cm_smsg_decode(fmt, m, n, &sm) || sm.kind != CM_SMSG_REPLY || sm.id != cmd.id ||
	    sm.code != rc)
		abort();
	cm_smsg_release(&sm);
	cm_packet_unref(rp);

	if (rc == 0 && cmd.kind == CM_CMD_PUBLISH) {
		uint64_t offset = cmd.data_len * 2654435761u;
		struct cm_packet *pp = cm_push_packet(fmt, cmd.stream, cmd.stream_len, offset,
						      cmd.data, cmd.data_len);
		check_frame(pp, op, &m, &n);
		if (cm_smsg_decode(fmt, m, n, &sm))
			abort();
		if (sm.kind != CM_SMSG_PUSH || sm.offset != offset || strcmp(sm.stream, cmd.stream) ||
		    sm.data_len != cmd.data_len ||
		    (cmd.data_len && memcmp(sm.data, cmd.data, cmd.data_len)))
			abort();
		cm_smsg_release(&sm);
		cm_packet_unref(pp);

		/* and the command re-encoded parses to the same payload */
		size_t cap = 256 + cmd.data_len * 6;
		uint8_t *enc = malloc(cap);
		size_t en = cm_cmd_encode(fmt, CM_CMD_PUBLISH, cmd.id, cmd.stream, cmd.data,
					  cmd.data_len, enc, cap);
		struct cm_cmd again;
		if (!en || cm_cmd_parse(fmt, enc, en, &again, &err) || again.id != cmd.id ||
		    again.data_len != cmd.data_len ||
		    (cmd.data_len && memcmp(again.data, cmd.data, cmd.data_len)))
			abort();
		cm_cmd_release(&again);
		free(enc);
	}
	cm_cmd_release(&cmd);

	/* the input as a server message: anything but a crash is fine */
	copy = malloc(len ? len : 1);
	if (len)
		memcpy(copy, p, len);
	if (cm_smsg_decode(fmt, copy, len, &sm) == 0)
		cm_smsg_release(&sm);
	free(copy);
	return 0;
}
