#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_b64.h"
#include "cm_client.h"
#include "cm_packet.h"
#include "cm_utf8.h"
#include "cm_ws.h"
#include "proto/client.pb-c.h"

/* ------------------------------------------------------------- helpers */

static int parse_json(const char *text, struct cm_cmd *cmd, const char **msg)
{
	return cm_cmd_parse(CM_FMT_JSON, (const uint8_t *)text, strlen(text), cmd, msg);
}

/* Parses, checks the code (and id), releases. */
static void expect_json(const char *text, int want_code, uint64_t want_id)
{
	struct cm_cmd cmd;
	const char *msg = NULL;
	int rc = parse_json(text, &cmd, &msg);

	cr_expect_eq(rc, want_code, "%s: code %d, want %d", text, rc, want_code);
	cr_expect_eq(cmd.id, want_id, "%s: id %llu, want %llu", text, (unsigned long long)cmd.id,
		     (unsigned long long)want_id);
	if (rc)
		cr_expect(msg && *msg, "%s: an error needs a message", text);
	else
		cr_expect_null(msg);
	cm_cmd_release(&cmd);
}

/* The payload of a packet's single frame; checks it is one whole, final,
 * unmasked frame of the given opcode. */
static const uint8_t *frame_payload(const struct cm_packet *p, uint8_t opcode, size_t *len)
{
	struct cm_ws_header h;
	int hl = cm_ws_parse_header(cm_packet_bytes(p), p->len, false, &h);

	cr_assert_gt(hl, 0, "not a valid frame header: %d", hl);
	cr_assert(h.fin);
	cr_assert_not(h.masked);
	cr_assert_eq(h.rsv, 0);
	cr_assert_eq(h.opcode, opcode);
	cr_assert_eq((size_t)hl + h.len, p->len, "frame length does not match the packet");
	cr_assert_eq(p->off + p->len, CM_PACKET_HEADROOM + h.len, "payload not at the headroom");
	*len = (size_t)h.len;
	return cm_packet_bytes(p) + hl;
}

/* JSON push of a payload, decoded by cJSON (independent of our decoder):
 * returns the data bytes as cJSON decoded them (cJSON keeps no lengths, but
 * decodes the whole string into its buffer, NULs included), and whether it
 * was base64. */
static void check_push_json_cjson(const uint8_t *data, size_t len, uint64_t offset)
{
	struct cm_packet *p = cm_push_packet(CM_FMT_JSON, "clan:7", 6, offset, data, len);
	size_t n;
	const uint8_t *m = frame_payload(p, CM_WS_TEXT, &n);

	cr_assert(cm_utf8_valid(m, n), "push text frame is not UTF-8");
	cJSON *root = cJSON_ParseWithLength((const char *)m, n);
	cr_assert_not_null(root, "cJSON cannot parse: %.*s", (int)n, m);
	cJSON *push = cJSON_GetObjectItemCaseSensitive(root, "push");
	cr_assert(cJSON_IsObject(push));
	cJSON *st = cJSON_GetObjectItemCaseSensitive(push, "stream");
	cJSON *off = cJSON_GetObjectItemCaseSensitive(push, "offset");
	cJSON *d = cJSON_GetObjectItemCaseSensitive(push, "data");
	cJSON *enc = cJSON_GetObjectItemCaseSensitive(push, "encoding");
	cr_assert(cJSON_IsString(st) && strcmp(st->valuestring, "clan:7") == 0);
	cr_assert(cJSON_IsNumber(off) && off->valuedouble == (double)offset);
	cr_assert(cJSON_IsString(d));
	if (cm_utf8_valid(data, len)) {
		cr_assert_null(enc, "valid UTF-8 must stay a string");
		cr_assert_eq(memcmp(d->valuestring, data, len), 0, "cJSON decodes other bytes");
		cr_assert_eq(d->valuestring[len], '\0');
	} else {
		cr_assert(cJSON_IsString(enc) && strcmp(enc->valuestring, "base64") == 0);
		size_t bl = strlen(d->valuestring);
		uint8_t *dec = malloc(cm_b64_dec_max(bl) + 1);
		long dl = cm_b64_decode(dec, (const uint8_t *)d->valuestring, bl);
		cr_assert_eq(dl, (long)len);
		cr_assert_eq(memcmp(dec, data, len), 0);
		free(dec);
	}
	cJSON_Delete(root);
	cm_packet_unref(p);
}

/* Push -> frame -> cm_smsg_decode gives back stream, offset and bytes. */
static void check_push_roundtrip(enum cm_fmt fmt, const char *stream, uint64_t offset,
				 const uint8_t *data, size_t len)
{
	struct cm_packet *p = cm_push_packet(fmt, stream, strlen(stream), offset, data, len);
	size_t n;
	const uint8_t *m = frame_payload(p, fmt == CM_FMT_JSON ? CM_WS_TEXT : CM_WS_BINARY, &n);
	struct cm_smsg s;

	cr_assert_eq(cm_smsg_decode(fmt, m, n, &s), 0, "push does not decode (fmt %d, len %zu)",
		     fmt, len);
	cr_assert_eq(s.kind, CM_SMSG_PUSH);
	cr_assert_str_eq(s.stream, stream);
	cr_assert_eq(s.offset, offset);
	cr_assert_eq(s.data_len, len);
	if (len)
		cr_assert_eq(memcmp(s.data, data, len), 0, "payload differs (fmt %d)", fmt);
	cm_smsg_release(&s);
	cm_packet_unref(p);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	/* xorshift64*: seeded, reproducible */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/* A random payload: sometimes ASCII with controls, sometimes valid UTF-8
 * with multibyte characters, sometimes arbitrary bytes. */
static size_t random_payload(uint8_t *buf, size_t cap)
{
	size_t len = rnd() % cap, i = 0;
	int mode = (int)(rnd() % 3);

	while (i < len) {
		uint64_t r = rnd();
		if (mode == 2) {
			buf[i++] = (uint8_t)r;
		} else if (mode == 0 || r % 4) {
			buf[i++] = (uint8_t)(r % 8 == 0 ? (r >> 8) % 0x20 : 0x20 + (r >> 8) % 0x60);
		} else if (i + 4 <= len) {
			/* U+10000..U+10FFFF as 4 bytes, or U+0080..U+07FF as 2 */
			uint32_t cp = 0x10000 + (uint32_t)((r >> 8) % 0x100000);
			if (r & 0x100) {
				buf[i++] = (uint8_t)(0xF0 | cp >> 18);
				buf[i++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
				buf[i++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
				buf[i++] = (uint8_t)(0x80 | (cp & 0x3F));
			} else {
				cp = 0x80 + (cp % 0x780);
				buf[i++] = (uint8_t)(0xC0 | cp >> 6);
				buf[i++] = (uint8_t)(0x80 | (cp & 0x3F));
			}
		} else {
			buf[i++] = 'x';
		}
	}
	return len;
}

/* --------------------------------------------------------- stream names */

Test(cm_client, stream_names_follow_the_contract)
{
	char s[CM_STREAM_MAX + 2];

	cr_expect(cm_stream_valid("clan:7", 6));
	cr_expect(cm_stream_valid("a", 1));
	cr_expect(cm_stream_valid("A-Z_a.z:0-9", 11));
	cr_expect(cm_stream_valid("user:42", 7), "user: streams are valid names");
	cr_expect_not(cm_stream_valid("", 0));
	cr_expect_not(cm_stream_valid("a b", 3));
	cr_expect_not(cm_stream_valid("a/b", 3));
	cr_expect_not(cm_stream_valid("*", 1));
	cr_expect_not(cm_stream_valid("a\0b", 3));
	cr_expect_not(cm_stream_valid("\xc3\xa9", 2));
	memset(s, 'a', sizeof(s));
	cr_expect(cm_stream_valid(s, CM_STREAM_MAX));
	cr_expect_not(cm_stream_valid(s, CM_STREAM_MAX + 1));
}

/* ------------------------------------------------------ JSON: good commands */

Test(cm_client, parses_subscribe)
{
	struct cm_cmd cmd;
	const char *msg;

	cr_assert_eq(parse_json("{\"id\":1,\"subscribe\":{\"stream\":\"clan:7\"}}", &cmd, &msg), 0);
	cr_expect_eq(cmd.id, 1);
	cr_expect_eq(cmd.kind, CM_CMD_SUBSCRIBE);
	cr_expect_str_eq(cmd.stream, "clan:7");
	cr_expect_eq(cmd.stream_len, 6);
	cr_expect_eq(cmd.data_len, 0);
	cm_cmd_release(&cmd);
}

Test(cm_client, parses_unsubscribe_with_whitespace_and_key_order)
{
	struct cm_cmd cmd;
	const char *msg;

	cr_assert_eq(parse_json(" \n{ \"unsubscribe\" : { \"stream\" : \"x.y\" } ,\t\"id\" : 2 }\r\n",
				&cmd, &msg), 0);
	cr_expect_eq(cmd.id, 2);
	cr_expect_eq(cmd.kind, CM_CMD_UNSUBSCRIBE);
	cr_expect_str_eq(cmd.stream, "x.y");
	cm_cmd_release(&cmd);
}

Test(cm_client, parses_publish_and_ignores_unknown_inner_keys)
{
	struct cm_cmd cmd;
	const char *msg;

	cr_assert_eq(parse_json("{\"id\":3,\"publish\":{\"x\":[1,{\"a\":null}],\"stream\":\"clan:7\","
				"\"data\":\"hi\",\"y\":true}}", &cmd, &msg), 0);
	cr_expect_eq(cmd.kind, CM_CMD_PUBLISH);
	cr_expect_str_eq(cmd.stream, "clan:7");
	cr_assert_eq(cmd.data_len, 2);
	cr_expect_eq(memcmp(cmd.data, "hi", 2), 0);
	cm_cmd_release(&cmd);
	cr_expect_null(cmd.data);
	cr_expect_null(cmd.priv);
}

Test(cm_client, publish_data_keeps_nul_and_escapes)
{
	struct cm_cmd cmd;
	const char *msg;
	static const uint8_t want[] = { 'a', 0, 'b', '"', '\\', '/', '\b', '\f', '\n', '\r', '\t',
					0x1f, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0 };

	cr_assert_eq(parse_json("{\"id\":4,\"publish\":{\"stream\":\"s\",\"data\":"
				"\"a\\u0000b\\\"\\\\\\/\\b\\f\\n\\r\\t\\u001F\\u00e9\\u20AC\\ud83d\\ude00\\u0000\"}}",
				&cmd, &msg), 0, "%s", msg);
	cr_assert_eq(cmd.data_len, sizeof(want));
	cr_expect_eq(memcmp(cmd.data, want, sizeof(want)), 0);
	cm_cmd_release(&cmd);
}

Test(cm_client, escapes_at_every_word_offset_parse)
{
	static const char *escs[] = { "\\\"", "\\\\", "\\n", "\\u0000", "\\u001f" };
	static const uint8_t vals[] = { '"', '\\', '\n', 0, 0x1f };

	for (size_t e = 0; e < CM_ARRAY_LEN(escs); e++) {
		for (size_t pos = 0; pos < 20; pos++) {
			char text[128], data[64];
			uint8_t want[32];
			struct cm_cmd cmd;
			const char *msg;
			size_t o = 0, w = 0;

			for (size_t i = 0; i < 20; i++) {
				if (i == pos) {
					o += (size_t)sprintf(data + o, "%s", escs[e]);
					want[w++] = vals[e];
				} else {
					data[o++] = (char)('a' + i);
					want[w++] = (uint8_t)('a' + i);
				}
			}
			data[o] = '\0';
			snprintf(text, sizeof(text), "{\"id\":1,\"publish\":{\"stream\":\"s\",\"data\":\"%s\"}}", data);
			cr_assert_eq(parse_json(text, &cmd, &msg), 0, "%s", text);
			cr_assert_eq(cmd.data_len, w);
			cr_expect_eq(memcmp(cmd.data, want, w), 0, "%s", text);
			cm_cmd_release(&cmd);
			/* the raw control character itself is not allowed in a string */
			if (vals[e] < 0x20 && vals[e]) {
				data[pos] = (char)vals[e];
				memset(data + pos + 1, 'z', 19 - pos);
				data[20] = '\0';
				snprintf(text, sizeof(text), "{\"id\":1,\"publish\":{\"stream\":\"s\",\"data\":\"%s\"}}", data);
				expect_json(text, 400, 0);
			}
		}
	}
}

Test(cm_client, publish_data_raw_utf8_is_kept)
{
	struct cm_cmd cmd;
	const char *msg;

	cr_assert_eq(parse_json("{\"id\":4,\"publish\":{\"stream\":\"s\",\"data\":\"h\xc3\xa9\"}}",
				&cmd, &msg), 0);
	cr_assert_eq(cmd.data_len, 3);
	cr_expect_eq(memcmp(cmd.data, "h\xc3\xa9", 3), 0);
	cm_cmd_release(&cmd);
}

Test(cm_client, publish_empty_data)
{
	struct cm_cmd cmd;
	const char *msg;

	cr_assert_eq(parse_json("{\"id\":4,\"publish\":{\"stream\":\"s\",\"data\":\"\"}}", &cmd, &msg), 0);
	cr_expect_eq(cmd.data_len, 0);
	cm_cmd_release(&cmd);
}

Test(cm_client, publish_base64_extension)
{
	struct cm_cmd cmd;
	const char *msg;

	cr_assert_eq(parse_json("{\"id\":5,\"publish\":{\"stream\":\"s\",\"encoding\":\"base64\","
				"\"data\":\"/wAB\"}}", &cmd, &msg), 0, "%s", msg);
	cr_assert_eq(cmd.data_len, 3);
	cr_expect_eq(memcmp(cmd.data, "\xff\x00\x01", 3), 0);
	cm_cmd_release(&cmd);
	/* escaped '/' is still base64 */
	cr_assert_eq(parse_json("{\"id\":5,\"publish\":{\"stream\":\"s\",\"encoding\":\"base64\","
				"\"data\":\"\\/w==\"}}", &cmd, &msg), 0, "%s", msg);
	cr_assert_eq(cmd.data_len, 1);
	cr_expect_eq(cmd.data[0], 0xff);
	cm_cmd_release(&cmd);
	expect_json("{\"id\":5,\"publish\":{\"stream\":\"s\",\"encoding\":\"base64\",\"data\":\"%%%%\"}}",
		    400, 5);
	expect_json("{\"id\":5,\"publish\":{\"stream\":\"s\",\"encoding\":\"base64\",\"data\":\"A\"}}",
		    400, 5);
	expect_json("{\"id\":5,\"publish\":{\"stream\":\"s\",\"encoding\":\"hex\",\"data\":\"00\"}}",
		    400, 5);
	expect_json("{\"id\":5,\"publish\":{\"stream\":\"s\",\"encoding\":1,\"data\":\"00\"}}", 400, 5);
}

Test(cm_client, escaped_keys_and_stream_are_decoded)
{
	struct cm_cmd cmd;
	const char *msg;

	cr_assert_eq(parse_json("{\"\\u0069d\":6,\"sub\\u0073cribe\":{\"str\\u0065am\":\"clan\\u003a7\"}}",
				&cmd, &msg), 0, "%s", msg);
	cr_expect_eq(cmd.id, 6);
	cr_expect_eq(cmd.kind, CM_CMD_SUBSCRIBE);
	cr_expect_str_eq(cmd.stream, "clan:7");
	cm_cmd_release(&cmd);
}

/* Every character of a key may be escaped: "unsubscribe" spelled with 11
 * \u escapes (66 bytes) is still "unsubscribe". */
Test(cm_client, keys_escaped_in_full_are_decoded)
{
	struct cm_cmd cmd;
	const char *msg;
	char text[256], key[80] = "";

	for (const char *c = "unsubscribe"; *c; c++)
		snprintf(key + strlen(key), sizeof(key) - strlen(key), "\\u%04x", *c);
	snprintf(text, sizeof(text), "{\"id\":7,\"%s\":{\"stream\":\"clan:7\"}}", key);
	cr_assert_eq(parse_json(text, &cmd, &msg), 0, "%s: %s", text, msg);
	cr_expect_eq(cmd.id, 7);
	cr_expect_eq(cmd.kind, CM_CMD_UNSUBSCRIBE);
	cm_cmd_release(&cmd);
}

/* ------------------------------------------------------------- ids */

Test(cm_client, accepts_id_boundaries)
{
	expect_json("{\"id\":0,\"subscribe\":{\"stream\":\"s\"}}", 0, 0);
	expect_json("{\"id\":9007199254740992,\"subscribe\":{\"stream\":\"s\"}}", 0, 1ULL << 53);
	expect_json("{\"id\":9007199254740991,\"subscribe\":{\"stream\":\"s\"}}", 0, (1ULL << 53) - 1);
}

Test(cm_client, accepts_integral_number_spellings)
{
	expect_json("{\"id\":1.0,\"subscribe\":{\"stream\":\"s\"}}", 0, 1);
	expect_json("{\"id\":1e3,\"subscribe\":{\"stream\":\"s\"}}", 0, 1000);
	expect_json("{\"id\":10E-1,\"subscribe\":{\"stream\":\"s\"}}", 0, 1);
	expect_json("{\"id\":0.5e1,\"subscribe\":{\"stream\":\"s\"}}", 0, 5);
	expect_json("{\"id\":0e999999999999,\"subscribe\":{\"stream\":\"s\"}}", 0, 0);
	expect_json("{\"id\":9.007199254740992e15,\"subscribe\":{\"stream\":\"s\"}}", 0, 1ULL << 53);
}

Test(cm_client, rejects_id_above_2_53)
{
	expect_json("{\"id\":9007199254740994,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	/* a double would round this one to 2^53: we compare digits */
	expect_json("{\"id\":9007199254740993,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":18446744073709551616,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":1e16,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":1e999999999999999999,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
}

Test(cm_client, rejects_negative_id)
{
	expect_json("{\"id\":-1,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":-0,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
}

Test(cm_client, rejects_fractional_id)
{
	expect_json("{\"id\":1.5,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":1e-1,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":0.0000000000000000000001,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
}

Test(cm_client, rejects_non_number_id)
{
	expect_json("{\"id\":\"1\",\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":null,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":true,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":[1],\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":{},\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
}

Test(cm_client, rejects_missing_id)
{
	expect_json("{\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
}

Test(cm_client, rejects_duplicate_id)
{
	expect_json("{\"id\":1,\"id\":2,\"subscribe\":{\"stream\":\"s\"}}", 400, 1);
}

/* ------------------------------------------------------ malformed frames */

Test(cm_client, rejects_non_object_frames_with_id_0)
{
	expect_json("", 400, 0);
	expect_json("   ", 400, 0);
	expect_json("[1,2]", 400, 0);
	expect_json("\"id\"", 400, 0);
	expect_json("42", 400, 0);
	expect_json("null", 400, 0);
	expect_json("hello", 400, 0);
}

Test(cm_client, rejects_broken_json_with_id_0)
{
	expect_json("{", 400, 0);
	expect_json("{\"id\":1", 400, 0);
	expect_json("{\"id\":1,}", 400, 0);
	expect_json("{\"id\":1,\"subscribe\":{\"stream\":\"s\"}", 400, 0);
	expect_json("{\"id\":1,\"subscribe\":{\"stream\":\"s\"}} x", 400, 0);
	expect_json("{\"id\":1,\"subscribe\":{\"stream\":\"s\"}}{}", 400, 0);
	expect_json("{\"id\":01,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":1.,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":1e,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{\"id\":+1,\"subscribe\":{\"stream\":\"s\"}}", 400, 0);
	expect_json("{'id':1}", 400, 0);
	expect_json("{\"id\" 1}", 400, 0);
	expect_json("{\"id\":1 \"subscribe\":{}}", 400, 0);
	expect_json("{\"id\":1,\"publish\":{\"stream\":\"s\",\"data\":\"a\nb\"}}", 400, 0);
	expect_json("{\"id\":1,\"publish\":{\"stream\":\"s\",\"data\":\"\\x41\"}}", 400, 0);
	expect_json("{\"id\":1,\"publish\":{\"stream\":\"s\",\"data\":\"\\u12\"}}", 400, 0);
	expect_json("{\"id\":1,\"publish\":{\"stream\":\"s\",\"data\":\"\\ud800\"}}", 400, 0);
	expect_json("{\"id\":1,\"publish\":{\"stream\":\"s\",\"data\":\"\\udc00\"}}", 400, 0);
	expect_json("{\"id\":1,\"publish\":{\"stream\":\"s\",\"data\":\"\\ud800\\u0041\"}}", 400, 0);
	expect_json("{\"id\":1,\"publish\":{\"stream\":\"s\",\"data\":\"abc", 400, 0);
	expect_json("{\"id\":1,\"x\":tru}", 400, 0);
	expect_json("{\"id\":1,\"x\":[1,]}", 400, 0);
}

Test(cm_client, rejects_deep_nesting_without_crashing)
{
	size_t depth = 100000;
	char *s = malloc(depth * 2 + 64);
	size_t n = (size_t)sprintf(s, "{\"id\":1,\"x\":");

	for (size_t i = 0; i < depth; i++)
		s[n++] = '[';
	for (size_t i = 0; i < depth; i++)
		s[n++] = ']';
	s[n++] = '}';
	s[n] = '\0';
	expect_json(s, 400, 0);
	free(s);
	/* moderate nesting in an ignored key is fine */
	expect_json("{\"id\":1,\"subscribe\":{\"stream\":\"s\",\"x\":[[[[{\"a\":[[]]}]]]]}}", 0, 1);
}

/* ------------------------------------------------------ command errors */

Test(cm_client, unknown_command_is_404_with_id)
{
	expect_json("{\"id\":7,\"presence\":{\"stream\":\"s\"}}", 404, 7);
	expect_json("{\"id\":7}", 404, 7);
	expect_json("{\"id\":7,\"Subscribe\":{\"stream\":\"s\"}}", 404, 7);
}

Test(cm_client, two_commands_are_400)
{
	expect_json("{\"id\":8,\"subscribe\":{\"stream\":\"s\"},\"publish\":{\"stream\":\"s\",\"data\":\"\"}}",
		    400, 8);
	expect_json("{\"id\":8,\"presence\":{},\"subscribe\":{\"stream\":\"s\"}}", 400, 8);
	expect_json("{\"id\":8,\"subscribe\":{\"stream\":\"s\"},\"subscribe\":{\"stream\":\"s\"}}", 400, 8);
}

Test(cm_client, command_body_must_be_an_object)
{
	expect_json("{\"id\":9,\"subscribe\":\"s\"}", 400, 9);
	expect_json("{\"id\":9,\"subscribe\":null}", 400, 9);
	expect_json("{\"id\":9,\"subscribe\":[]}", 400, 9);
}

Test(cm_client, stream_must_be_a_string)
{
	expect_json("{\"id\":10,\"subscribe\":{}}", 400, 10);
	expect_json("{\"id\":10,\"subscribe\":{\"stream\":7}}", 400, 10);
	expect_json("{\"id\":10,\"subscribe\":{\"stream\":null}}", 400, 10);
	expect_json("{\"id\":10,\"subscribe\":{\"stream\":\"a\",\"stream\":\"b\"}}", 400, 10);
}

Test(cm_client, invalid_stream_is_422)
{
	expect_json("{\"id\":11,\"subscribe\":{\"stream\":\"\"}}", 422, 11);
	expect_json("{\"id\":11,\"subscribe\":{\"stream\":\"a b\"}}", 422, 11);
	expect_json("{\"id\":11,\"unsubscribe\":{\"stream\":\"*\"}}", 422, 11);
	expect_json("{\"id\":11,\"publish\":{\"stream\":\"a/b\",\"data\":\"x\"}}", 422, 11);
	expect_json("{\"id\":11,\"subscribe\":{\"stream\":\"a\\u0000b\"}}", 422, 11);
	expect_json("{\"id\":11,\"subscribe\":{\"stream\":\"\\u00e9\"}}", 422, 11);
}

Test(cm_client, stream_of_128_is_ok_and_129_is_422)
{
	char name[200], text[400];
	struct cm_cmd cmd;
	const char *msg;

	memset(name, 'a', 128);
	name[128] = '\0';
	snprintf(text, sizeof(text), "{\"id\":12,\"subscribe\":{\"stream\":\"%s\"}}", name);
	cr_assert_eq(parse_json(text, &cmd, &msg), 0);
	cr_expect_eq(cmd.stream_len, 128);
	cr_expect_str_eq(cmd.stream, name);
	cm_cmd_release(&cmd);
	name[128] = 'a';
	name[129] = '\0';
	snprintf(text, sizeof(text), "{\"id\":12,\"subscribe\":{\"stream\":\"%s\"}}", name);
	expect_json(text, 422, 12);
	/* 128 characters, written with escapes */
	char *esc = malloc(128 * 6 + 64), *o = esc;
	o += sprintf(o, "{\"id\":12,\"subscribe\":{\"stream\":\"");
	for (int i = 0; i < 128; i++)
		o += sprintf(o, "\\u0062");
	sprintf(o, "\"}}");
	cr_assert_eq(parse_json(esc, &cmd, &msg), 0);
	cr_expect_eq(cmd.stream_len, 128);
	cr_expect_eq(cmd.stream[0], 'b');
	cm_cmd_release(&cmd);
	free(esc);
}

Test(cm_client, user_streams_parse_as_valid)
{
	struct cm_cmd cmd;
	const char *msg;

	cr_assert_eq(parse_json("{\"id\":13,\"subscribe\":{\"stream\":\"user:42\"}}", &cmd, &msg), 0);
	cr_expect_str_eq(cmd.stream, "user:42");
	cm_cmd_release(&cmd);
}

Test(cm_client, publish_data_must_be_a_string)
{
	expect_json("{\"id\":14,\"publish\":{\"stream\":\"s\"}}", 400, 14);
	expect_json("{\"id\":14,\"publish\":{\"stream\":\"s\",\"data\":1}}", 400, 14);
	expect_json("{\"id\":14,\"publish\":{\"stream\":\"s\",\"data\":{}}}", 400, 14);
	expect_json("{\"id\":14,\"publish\":{\"stream\":\"s\",\"data\":null}}", 400, 14);
	expect_json("{\"id\":14,\"publish\":{\"stream\":\"s\",\"data\":\"a\",\"data\":\"b\"}}", 400, 14);
}

/* ------------------------------------------------------ protobuf commands */

static size_t pb_command(Herald__Client__Command *c, uint8_t *out)
{
	return herald__client__command__pack(c, out);
}

static int parse_pb(const uint8_t *p, size_t n, struct cm_cmd *cmd, const char **msg)
{
	return cm_cmd_parse(CM_FMT_PROTOBUF, p, n, cmd, msg);
}

Test(cm_client, parses_protobuf_commands)
{
	Herald__Client__Command c = HERALD__CLIENT__COMMAND__INIT;
	Herald__Client__Publish pub = HERALD__CLIENT__PUBLISH__INIT;
	Herald__Client__Subscribe sub = HERALD__CLIENT__SUBSCRIBE__INIT;
	uint8_t buf[256], data[] = { 0, 0xff, 'a' };
	struct cm_cmd cmd;
	const char *msg;
	size_t n;

	c.id = 1ULL << 53;
	c.cmd_case = HERALD__CLIENT__COMMAND__CMD_PUBLISH;
	c.publish = &pub;
	pub.stream = "clan:7";
	pub.data.data = data;
	pub.data.len = sizeof(data);
	n = pb_command(&c, buf);
	cr_assert_eq(parse_pb(buf, n, &cmd, &msg), 0);
	cr_expect_eq(cmd.id, 1ULL << 53);
	cr_expect_eq(cmd.kind, CM_CMD_PUBLISH);
	cr_expect_str_eq(cmd.stream, "clan:7");
	cr_assert_eq(cmd.data_len, 3);
	cr_expect_eq(memcmp(cmd.data, data, 3), 0);
	cm_cmd_release(&cmd);

	c.id = 0;
	c.cmd_case = HERALD__CLIENT__COMMAND__CMD_SUBSCRIBE;
	c.subscribe = &sub;
	sub.stream = "user:1";
	n = pb_command(&c, buf);
	cr_assert_eq(parse_pb(buf, n, &cmd, &msg), 0);
	cr_expect_eq(cmd.id, 0);
	cr_expect_eq(cmd.kind, CM_CMD_SUBSCRIBE);
	cr_expect_str_eq(cmd.stream, "user:1");
	cm_cmd_release(&cmd);
}

Test(cm_client, protobuf_errors)
{
	Herald__Client__Command c = HERALD__CLIENT__COMMAND__INIT;
	Herald__Client__Unsubscribe uns = HERALD__CLIENT__UNSUBSCRIBE__INIT;
	uint8_t buf[512];
	struct cm_cmd cmd;
	const char *msg;
	size_t n;
	char longname[130];

	/* not protobuf: a truncated length-delimited field */
	static const uint8_t junk[] = { 0x12, 0x05, 0x0a };
	cr_expect_eq(parse_pb(junk, sizeof(junk), &cmd, &msg), 400);
	cr_expect_eq(cmd.id, 0);
	cm_cmd_release(&cmd);

	/* no command */
	c.id = 21;
	n = pb_command(&c, buf);
	cr_expect_eq(parse_pb(buf, n, &cmd, &msg), 404);
	cr_expect_eq(cmd.id, 21);
	cm_cmd_release(&cmd);
	cr_expect_eq(parse_pb(NULL, 0, &cmd, &msg), 404);
	cm_cmd_release(&cmd);

	/* bad streams */
	c.cmd_case = HERALD__CLIENT__COMMAND__CMD_UNSUBSCRIBE;
	c.unsubscribe = &uns;
	uns.stream = "";
	n = pb_command(&c, buf);
	cr_expect_eq(parse_pb(buf, n, &cmd, &msg), 422);
	cr_expect_eq(cmd.id, 21);
	cm_cmd_release(&cmd);
	memset(longname, 'z', 129);
	longname[129] = '\0';
	uns.stream = longname;
	n = pb_command(&c, buf);
	cr_expect_eq(parse_pb(buf, n, &cmd, &msg), 422);
	cm_cmd_release(&cmd);
	longname[128] = '\0';
	n = pb_command(&c, buf);
	cr_expect_eq(parse_pb(buf, n, &cmd, &msg), 0);
	cr_expect_eq(cmd.stream_len, 128);
	cm_cmd_release(&cmd);

	/* id beyond 2^53 */
	uns.stream = "s";
	c.id = (1ULL << 53) + 1;
	n = pb_command(&c, buf);
	cr_expect_eq(parse_pb(buf, n, &cmd, &msg), 400);
	cr_expect_eq(cmd.id, 0);
	cm_cmd_release(&cmd);
}

/* protobuf strings may hold NUL bytes: "ab\0cd" is not the stream "ab" */
Test(cm_client, protobuf_stream_with_a_nul_is_422)
{
	static const uint8_t sub[] = { 0x08, 0x05, 0x12, 0x07, 0x0a, 0x05, 'a', 'b', 0, 'c', 'd' };
	static const uint8_t pub[] = { 0x08, 0x06, 0x22, 0x0a, 0x0a, 0x05, 'a', 'b', 0, 'c', 'd',
				       0x12, 0x01, 'x' };
	struct cm_cmd cmd;
	const char *msg;

	cr_expect_eq(parse_pb(sub, sizeof(sub), &cmd, &msg), 422);
	cr_expect_eq(cmd.id, 5);
	cr_expect_eq(cmd.kind, CM_CMD_NONE);
	cm_cmd_release(&cmd);
	cr_expect_eq(parse_pb(pub, sizeof(pub), &cmd, &msg), 422);
	cr_expect_eq(cmd.id, 6);
	cr_expect_eq(cmd.kind, CM_CMD_NONE);
	cm_cmd_release(&cmd);
}

/* ------------------------------------------------------------ replies */

Test(cm_client, json_replies_are_exact)
{
	uint8_t buf[256];
	size_t n;

	n = cm_reply_ok(CM_FMT_JSON, 1, buf, sizeof(buf));
	cr_assert_eq(n, strlen("{\"id\":1,\"ok\":{}}"));
	cr_expect_eq(memcmp(buf, "{\"id\":1,\"ok\":{}}", n), 0);

	n = cm_reply_error(CM_FMT_JSON, 9007199254740992ULL, 422, "invalid stream name", buf,
			   sizeof(buf));
	const char *want = "{\"id\":9007199254740992,\"error\":{\"code\":422,\"message\":\"invalid stream name\"}}";
	cr_assert_eq(n, strlen(want));
	cr_expect_eq(memcmp(buf, want, n), 0);

	n = cm_reply_error(CM_FMT_JSON, 0, 400, "say \"hi\"\\\n\x01", buf, sizeof(buf));
	want = "{\"id\":0,\"error\":{\"code\":400,\"message\":\"say \\\"hi\\\"\\\\\\n\\u0001\"}}";
	cr_assert_eq(n, strlen(want), "%.*s", (int)n, buf);
	cr_expect_eq(memcmp(buf, want, n), 0);
	cJSON *root = cJSON_ParseWithLength((const char *)buf, n);
	cr_assert_not_null(root);
	cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
	cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(err, "message")->valuestring,
			 "say \"hi\"\\\n\x01");
	cJSON_Delete(root);
}

Test(cm_client, replies_report_a_small_buffer)
{
	uint8_t buf[64];
	size_t full = cm_reply_ok(CM_FMT_JSON, 123, buf, sizeof(buf));

	cr_assert_gt(full, 0);
	cr_expect_eq(cm_reply_ok(CM_FMT_JSON, 123, buf, full - 1), 0);
	cr_expect_eq(cm_reply_ok(CM_FMT_JSON, 123, buf, full), full);
	full = cm_reply_error(CM_FMT_PROTOBUF, 123, 404, "unknown command", buf, sizeof(buf));
	cr_assert_gt(full, 0);
	cr_expect_eq(cm_reply_error(CM_FMT_PROTOBUF, 123, 404, "unknown command", buf, full - 1), 0);
	cr_expect_eq(cm_reply_error(CM_FMT_JSON, 1, 500, "a long message that does not fit", buf, 20), 0);
}

Test(cm_client, protobuf_replies_unpack)
{
	uint8_t buf[256];
	size_t n;
	Herald__Client__ServerMessage *sm;

	n = cm_reply_ok(CM_FMT_PROTOBUF, 77, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	sm = herald__client__server_message__unpack(NULL, n, buf);
	cr_assert_not_null(sm);
	cr_assert_eq(sm->msg_case, HERALD__CLIENT__SERVER_MESSAGE__MSG_REPLY);
	cr_expect_eq(sm->reply->id, 77);
	cr_expect_eq(sm->reply->result_case, HERALD__CLIENT__REPLY__RESULT_OK);
	herald__client__server_message__free_unpacked(sm, NULL);

	n = cm_reply_ok(CM_FMT_PROTOBUF, 0, buf, sizeof(buf));
	sm = herald__client__server_message__unpack(NULL, n, buf);
	cr_assert_not_null(sm);
	cr_expect_eq(sm->reply->id, 0);
	cr_expect_eq(sm->reply->result_case, HERALD__CLIENT__REPLY__RESULT_OK);
	herald__client__server_message__free_unpacked(sm, NULL);

	n = cm_reply_error(CM_FMT_PROTOBUF, 1ULL << 53, 429, "rate limited", buf, sizeof(buf));
	sm = herald__client__server_message__unpack(NULL, n, buf);
	cr_assert_not_null(sm);
	cr_expect_eq(sm->reply->id, 1ULL << 53);
	cr_assert_eq(sm->reply->result_case, HERALD__CLIENT__REPLY__RESULT_ERROR);
	cr_expect_eq(sm->reply->error->code, 429);
	cr_expect_str_eq(sm->reply->error->message, "rate limited");
	/* the same bytes protobuf-c would write */
	uint8_t ref[256];
	size_t rn = herald__client__server_message__pack(sm, ref);
	cr_expect_eq(rn, n);
	cr_expect_eq(memcmp(ref, buf, n), 0);
	herald__client__server_message__free_unpacked(sm, NULL);
}

Test(cm_client, reply_packets_are_frames_that_decode)
{
	for (int f = 0; f < 2; f++) {
		enum cm_fmt fmt = (enum cm_fmt)f;
		uint8_t op = fmt == CM_FMT_JSON ? CM_WS_TEXT : CM_WS_BINARY;
		struct cm_packet *p = cm_reply_packet(fmt, 5, 0, NULL);
		struct cm_smsg s;
		size_t n;
		const uint8_t *m = frame_payload(p, op, &n);

		cr_assert_eq(cm_smsg_decode(fmt, m, n, &s), 0);
		cr_expect_eq(s.kind, CM_SMSG_REPLY);
		cr_expect_eq(s.id, 5);
		cr_expect_eq(s.code, 0);
		cm_smsg_release(&s);
		cm_packet_unref(p);

		p = cm_reply_packet(fmt, 6, 403, "not \"allowed\"");
		m = frame_payload(p, op, &n);
		cr_assert_eq(cm_smsg_decode(fmt, m, n, &s), 0);
		cr_expect_eq(s.kind, CM_SMSG_REPLY);
		cr_expect_eq(s.id, 6);
		cr_expect_eq(s.code, 403);
		cr_expect_str_eq(s.message, "not \"allowed\"");
		cm_smsg_release(&s);
		cm_packet_unref(p);
	}
}

Test(cm_client, reply_message_not_utf8_stays_valid_json)
{
	uint8_t buf[128];
	size_t n = cm_reply_error(CM_FMT_JSON, 1, 500, "bad \xff byte", buf, sizeof(buf));

	cr_assert_gt(n, 0);
	cr_expect(cm_utf8_valid(buf, n));
	cJSON *root = cJSON_ParseWithLength((const char *)buf, n);
	cr_expect_not_null(root);
	cJSON_Delete(root);
}

/* -------------------------------------------------------------- pushes */

Test(cm_client, json_push_is_exact)
{
	struct cm_packet *p = cm_push_packet(CM_FMT_JSON, "clan:7", 6, 42, (const uint8_t *)"hi", 2);
	size_t n;
	const uint8_t *m = frame_payload(p, CM_WS_TEXT, &n);
	const char *want = "{\"push\":{\"stream\":\"clan:7\",\"offset\":42,\"data\":\"hi\"}}";

	cr_assert_eq(n, strlen(want));
	cr_expect_eq(memcmp(m, want, n), 0);
	cm_packet_unref(p);
}

Test(cm_client, json_push_escapes_nul_and_every_control_char)
{
	uint8_t all[0x20 + 3];
	char want[512], *o = want;

	for (int c = 0; c < 0x20; c++)
		all[c] = (uint8_t)c;
	all[0x20] = '"';
	all[0x21] = '\\';
	all[0x22] = 0x7f;
	/* one by one, and all together */
	for (int c = 0; c < (int)sizeof(all); c++) {
		check_push_json_cjson(&all[c], 1, (uint64_t)c);
		check_push_roundtrip(CM_FMT_JSON, "s", (uint64_t)c, &all[c], 1);
		uint8_t mid[3] = { 'a', all[c], 'b' };
		check_push_json_cjson(mid, 3, 1);
		check_push_roundtrip(CM_FMT_JSON, "s", 1, mid, 3);
	}
	check_push_json_cjson(all, sizeof(all), 0);
	check_push_roundtrip(CM_FMT_JSON, "s", 0, all, sizeof(all));

	/* the exact escapes */
	struct cm_packet *p = cm_push_packet(CM_FMT_JSON, "s", 1, 0, all, sizeof(all));
	size_t n;
	const uint8_t *m = frame_payload(p, CM_WS_TEXT, &n);
	o += sprintf(o, "{\"push\":{\"stream\":\"s\",\"offset\":0,\"data\":\"");
	o += sprintf(o, "\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r"
		     "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
		     "\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\\"\\\\\x7f\"}}");
	cr_assert_eq(n, strlen(want), "%.*s", (int)n, m);
	cr_expect_eq(memcmp(m, want, n), 0);
	cm_packet_unref(p);
}

Test(cm_client, json_push_of_nul_only_payloads)
{
	uint8_t zeros[100] = { 0 };

	for (size_t len = 0; len <= sizeof(zeros); len++) {
		check_push_json_cjson(zeros, len, len);
		check_push_roundtrip(CM_FMT_JSON, "s", len, zeros, len);
	}
}

Test(cm_client, invalid_utf8_push_is_base64)
{
	static const uint8_t bad[][4] = {
		{ 0xff }, { 0xc3 }, { 0xed, 0xa0, 0x80 }, { 0xc0, 0x80 }, { 'a', 0x80 }, { 0xf4, 0x90, 0x80, 0x80 },
	};
	static const size_t lens[] = { 1, 1, 3, 2, 2, 4 };

	for (size_t i = 0; i < CM_ARRAY_LEN(bad); i++) {
		check_push_json_cjson(bad[i], lens[i], i);
		check_push_roundtrip(CM_FMT_JSON, "s", i, bad[i], lens[i]);
		check_push_roundtrip(CM_FMT_PROTOBUF, "s", i, bad[i], lens[i]);
	}
	struct cm_packet *p = cm_push_packet(CM_FMT_JSON, "s", 1, 3, (const uint8_t *)"\xff\x00\x01", 3);
	size_t n;
	const uint8_t *m = frame_payload(p, CM_WS_TEXT, &n);
	const char *want = "{\"push\":{\"stream\":\"s\",\"offset\":3,\"data\":\"/wAB\",\"encoding\":\"base64\"}}";
	cr_assert_eq(n, strlen(want));
	cr_expect_eq(memcmp(m, want, n), 0);
	cm_packet_unref(p);
}

Test(cm_client, empty_payload_push)
{
	check_push_json_cjson((const uint8_t *)"", 0, 1);
	check_push_roundtrip(CM_FMT_JSON, "s", 1, NULL, 0);
	check_push_roundtrip(CM_FMT_PROTOBUF, "s", 1, NULL, 0);
	check_push_roundtrip(CM_FMT_PROTOBUF, "*", 0, NULL, 0);
}

Test(cm_client, large_offsets_round_trip)
{
	uint64_t offs[] = { 0, 1, 127, 128, 1ULL << 53, UINT64_MAX - 1, UINT64_MAX };

	for (size_t i = 0; i < CM_ARRAY_LEN(offs); i++) {
		check_push_roundtrip(CM_FMT_JSON, "user:42", offs[i], (const uint8_t *)"x", 1);
		check_push_roundtrip(CM_FMT_PROTOBUF, "user:42", offs[i], (const uint8_t *)"x", 1);
	}
}

Test(cm_client, protobuf_push_unpacks_to_the_same_fields)
{
	uint8_t data[300];
	struct cm_packet *p;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	uint64_t offs[] = { 0, 1, 300, UINT64_MAX };
	size_t lens[] = { 0, 1, 127, 128, 300 };
	for (size_t a = 0; a < CM_ARRAY_LEN(offs); a++) {
		for (size_t b = 0; b < CM_ARRAY_LEN(lens); b++) {
			size_t n;
			p = cm_push_packet(CM_FMT_PROTOBUF, "clan:7", 6, offs[a], data, lens[b]);
			const uint8_t *m = frame_payload(p, CM_WS_BINARY, &n);
			Herald__Client__ServerMessage *sm = herald__client__server_message__unpack(NULL, n, m);
			cr_assert_not_null(sm);
			cr_assert_eq(sm->msg_case, HERALD__CLIENT__SERVER_MESSAGE__MSG_PUSH);
			cr_expect_str_eq(sm->push->stream, "clan:7");
			cr_expect_eq(sm->push->offset, offs[a]);
			cr_assert_eq(sm->push->data.len, lens[b]);
			if (lens[b])
				cr_expect_eq(memcmp(sm->push->data.data, data, lens[b]), 0);
			/* byte for byte what protobuf-c packs */
			uint8_t *ref = malloc(n + 16);
			size_t rn = herald__client__server_message__pack(sm, ref);
			cr_expect_eq(rn, n);
			cr_expect_eq(memcmp(ref, m, n), 0);
			free(ref);
			herald__client__server_message__free_unpacked(sm, NULL);
			cm_packet_unref(p);
		}
	}
}

Test(cm_client, one_mib_payload_pushes)
{
	size_t len = 1 << 20;
	uint8_t *d = malloc(len);

	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(0x20 + i % 0x5f);
	d[12345] = 0;
	d[len - 1] = '\n';
	check_push_json_cjson(d, len, 9);
	check_push_roundtrip(CM_FMT_JSON, "big", 9, d, len);
	check_push_roundtrip(CM_FMT_PROTOBUF, "big", 9, d, len);
	d[777] = 0xff; /* now base64 */
	check_push_json_cjson(d, len, 9);
	check_push_roundtrip(CM_FMT_JSON, "big", 9, d, len);
	free(d);
}

Test(cm_client, random_payloads_round_trip_in_both_formats)
{
	uint8_t buf[600];
	int base64 = 0, text = 0;

	rng_state = 12345;
	for (int i = 0; i < 4000; i++) {
		size_t len = random_payload(buf, sizeof(buf));
		uint64_t off = rnd() >> (rnd() % 64);
		if (cm_utf8_valid(buf, len))
			text++;
		else
			base64++;
		check_push_roundtrip(CM_FMT_JSON, "r:1", off, buf, len);
		check_push_roundtrip(CM_FMT_PROTOBUF, "r:1", off, buf, len);
		if (i % 8 == 0)
			check_push_json_cjson(buf, len, off);
	}
	cr_expect_gt(text, 1000);
	cr_expect_gt(base64, 1000);
}

/* ------------------------------------------------ commands, our clients */

static void check_cmd_roundtrip(enum cm_fmt fmt, enum cm_cmd_kind kind, uint64_t id,
				const char *stream, const uint8_t *data, size_t len)
{
	size_t cap = 128 + len * 6;
	uint8_t *buf = malloc(cap);
	size_t n = cm_cmd_encode(fmt, kind, id, stream, data, len, buf, cap);
	struct cm_cmd cmd;
	const char *msg;

	cr_assert_gt(n, 0, "fmt %d kind %d id %llu len %zu", fmt, kind, (unsigned long long)id, len);
	cr_assert_eq(cm_cmd_parse(fmt, buf, n, &cmd, &msg), 0, "%s: %.*s", msg, (int)n, buf);
	cr_expect_eq(cmd.kind, kind);
	cr_expect_eq(cmd.id, id);
	cr_expect_str_eq(cmd.stream, stream);
	if (kind == CM_CMD_PUBLISH) {
		cr_assert_eq(cmd.data_len, len);
		if (len)
			cr_expect_eq(memcmp(cmd.data, data, len), 0);
	}
	cm_cmd_release(&cmd);
	/* one byte short does not fit */
	cr_expect_eq(cm_cmd_encode(fmt, kind, id, stream, data, len, buf, n - 1), 0);
	free(buf);
}

Test(cm_client, encoded_commands_parse_back)
{
	uint8_t buf[300];

	for (int f = 0; f < 2; f++) {
		enum cm_fmt fmt = (enum cm_fmt)f;
		check_cmd_roundtrip(fmt, CM_CMD_SUBSCRIBE, 1, "clan:7", NULL, 0);
		check_cmd_roundtrip(fmt, CM_CMD_UNSUBSCRIBE, 1ULL << 53, "user:9", NULL, 0);
		check_cmd_roundtrip(fmt, CM_CMD_PUBLISH, 0, "a", (const uint8_t *)"", 0);
		check_cmd_roundtrip(fmt, CM_CMD_PUBLISH, 3, "a", (const uint8_t *)"x\0y\"", 4);
		check_cmd_roundtrip(fmt, CM_CMD_PUBLISH, 3, "a", (const uint8_t *)"\xff\xfe", 2);
		rng_state = 777;
		for (int i = 0; i < 1000; i++) {
			size_t len = random_payload(buf, sizeof(buf));
			check_cmd_roundtrip(fmt, CM_CMD_PUBLISH, rnd() % (CM_ID_MAX + 1), "r", buf, len);
		}
	}
	cr_expect_eq(cm_cmd_encode(CM_FMT_JSON, CM_CMD_NONE, 1, "s", NULL, 0, buf, sizeof(buf)), 0);
}

Test(cm_client, json_command_encoding_is_the_contract_form)
{
	uint8_t buf[128];
	size_t n = cm_cmd_encode(CM_FMT_JSON, CM_CMD_SUBSCRIBE, 1, "clan:7", NULL, 0, buf, sizeof(buf));
	const char *want = "{\"id\":1,\"subscribe\":{\"stream\":\"clan:7\"}}";

	cr_assert_eq(n, strlen(want));
	cr_expect_eq(memcmp(buf, want, n), 0);
	n = cm_cmd_encode(CM_FMT_JSON, CM_CMD_PUBLISH, 3, "clan:7", (const uint8_t *)"hi", 2, buf,
			  sizeof(buf));
	want = "{\"id\":3,\"publish\":{\"stream\":\"clan:7\",\"data\":\"hi\"}}";
	cr_assert_eq(n, strlen(want));
	cr_expect_eq(memcmp(buf, want, n), 0);
}

/* ------------------------------------------------------ server messages */

static int smsg(const char *text, struct cm_smsg *m)
{
	return cm_smsg_decode(CM_FMT_JSON, (const uint8_t *)text, strlen(text), m);
}

Test(cm_client, decodes_json_server_messages)
{
	struct cm_smsg m;

	cr_assert_eq(smsg("{\"id\":1,\"ok\":{}}", &m), 0);
	cr_expect_eq(m.kind, CM_SMSG_REPLY);
	cr_expect_eq(m.id, 1);
	cr_expect_eq(m.code, 0);
	cm_smsg_release(&m);

	cr_assert_eq(smsg("{\"error\":{\"message\":\"nope\",\"code\":404},\"id\":2}", &m), 0);
	cr_expect_eq(m.kind, CM_SMSG_REPLY);
	cr_expect_eq(m.id, 2);
	cr_expect_eq(m.code, 404);
	cr_expect_str_eq(m.message, "nope");
	cm_smsg_release(&m);

	cr_assert_eq(smsg("{\"push\":{\"stream\":\"a\",\"offset\":5,\"data\":\"x\\u0000\"}}", &m), 0);
	cr_expect_eq(m.kind, CM_SMSG_PUSH);
	cr_expect_str_eq(m.stream, "a");
	cr_expect_eq(m.offset, 5);
	cr_assert_eq(m.data_len, 2);
	cr_expect_eq(memcmp(m.data, "x\0", 2), 0);
	cm_smsg_release(&m);

	/* long messages are truncated, not refused */
	char text[600];
	char longmsg[400];
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	snprintf(text, sizeof(text), "{\"id\":3,\"error\":{\"code\":500,\"message\":\"%s\"}}", longmsg);
	cr_assert_eq(smsg(text, &m), 0);
	cr_expect_eq(strlen(m.message), sizeof(m.message) - 1);
	cm_smsg_release(&m);
}

Test(cm_client, rejects_malformed_server_messages)
{
	static const char *bad[] = {
		"", "[]", "{}", "{\"id\":1}", "{\"ok\":{}}", "{\"id\":1,\"ok\":1}",
		"{\"id\":1,\"ok\":{},\"error\":{\"code\":1}}",
		"{\"id\":1,\"error\":{\"message\":\"x\"}}",
		"{\"id\":1,\"error\":{\"code\":0}}",
		"{\"push\":{\"stream\":\"a\",\"offset\":1}}",
		"{\"push\":{\"stream\":\"a\",\"data\":\"x\"}}",
		"{\"push\":{\"offset\":1,\"data\":\"x\"}}",
		"{\"push\":{\"stream\":\"a\",\"offset\":-1,\"data\":\"x\"}}",
		"{\"push\":{\"stream\":\"a\",\"offset\":1,\"data\":\"x\",\"encoding\":\"base64\"}}",
		"{\"push\":{\"stream\":\"a\",\"offset\":1,\"data\":\"x\",\"encoding\":\"rot13\"}}",
		"{\"push\":{\"stream\":\"a\",\"offset\":1,\"data\":\"x\"}",
		"{\"push\":{\"stream\":\"a\",\"offset\":1,\"data\":\"x\"},\"id\":1,\"ok\":{}}",
	};
	struct cm_smsg m;

	for (size_t i = 0; i < CM_ARRAY_LEN(bad); i++) {
		cr_expect_eq(smsg(bad[i], &m), -1, "accepted: %s", bad[i]);
		cr_expect_null(m.data);
	}
	static const uint8_t junk[] = { 0x12, 0x7f, 0x01 };
	cr_expect_eq(cm_smsg_decode(CM_FMT_PROTOBUF, junk, sizeof(junk), &m), -1);
	cr_expect_eq(cm_smsg_decode(CM_FMT_PROTOBUF, NULL, 0, &m), -1);
}

/* ------------------------------------------------------------- base64 */

Test(cm_client, base64_known_vectors)
{
	static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	uint8_t buf[32];

	for (size_t i = 0; i < CM_ARRAY_LEN(plain); i++) {
		size_t n = cm_b64_encode(buf, (const uint8_t *)plain[i], strlen(plain[i]));
		cr_expect_eq(n, strlen(enc[i]));
		cr_expect_eq(n, cm_b64_enc_len(strlen(plain[i])));
		cr_expect_eq(memcmp(buf, enc[i], n), 0);
		long d = cm_b64_decode(buf, (const uint8_t *)enc[i], strlen(enc[i]));
		cr_expect_eq(d, (long)strlen(plain[i]));
		cr_expect_eq(memcmp(buf, plain[i], (size_t)d), 0);
	}
	/* unpadded is fine */
	cr_expect_eq(cm_b64_decode(buf, (const uint8_t *)"Zm8", 3), 2);
	cr_expect_eq(cm_b64_decode(buf, (const uint8_t *)"Zg", 2), 1);
	/* broken */
	static const char *bad[] = { "Z", "Zg=", "Z===", "====", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n",
				     "Zg==Zg==", "Z-8=", "Zm_v" };
	for (size_t i = 0; i < CM_ARRAY_LEN(bad); i++)
		cr_expect_eq(cm_b64_decode(buf, (const uint8_t *)bad[i], strlen(bad[i])), -1, "%s", bad[i]);
}
