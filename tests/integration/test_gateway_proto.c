/* The client protocol and RFC 6455 against the real gateway (standalone):
 * subscribe/publish/push in both formats, error replies, close codes,
 * ping/pong, keepalive and idle timeout, FIN. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cm_log.h"
#include "cm_ws.h"
#include "tests/integration/lib/th_gw.h"
#include "tests/integration/lib/th_proc.h"
#include "tests/integration/lib/th_ws.h"

TestSuite(gateway_proto, .init = th_setup, .fini = th_teardown, .timeout = 60);

static struct th_gw gw;

static void start(const char *a1, const char *a2, const char *a3, const char *a4)
{
	th_gw_start(&gw, &(struct th_gw_opts){ .extra = { a1, a2, a3, a4, NULL } });
}

static void stop(void)
{
	cr_assert_eq(th_gw_stop(&gw, 10000), 0, "gateway did not exit cleanly");
}

Test(gateway_proto, json_subscribe_publish_push_with_offsets)
{
	start(NULL, NULL, NULL, NULL);
	struct th_ws *sub = th_ws_open(gw.port, "/ws?user=alice");
	struct th_ws *pub = th_ws_open(gw.port, "/ws?user=bob");
	/* watch holds the stream throughout, so its offsets never restart */
	struct th_ws *watch = th_ws_open(gw.port, "/ws?user=wendy&streams=clan:7");
	cr_assert_eq(th_ws_subscribe(watch, "other"), 0);
	cr_assert_eq(th_ws_subscribe(sub, "clan:7"), 0);
	cr_assert_eq(th_ws_subscribe(sub, "clan:7"), 0, "subscribing twice is ok");

	const char *p[3] = { "hi", "h\xc3\xa9 \"quoted\" \\ \n\t", "" };
	size_t pl[3] = { 2, strlen(p[1]), 0 };
	for (int i = 0; i < 3; i++)
		cr_assert_eq(th_ws_publish(pub, "clan:7", p[i], pl[i]), 0);
	for (int i = 0; i < 3; i++)
		th_ws_expect_push(sub, "clan:7", (uint64_t)i + 1, p[i], pl[i]);
	/* the publisher is not subscribed: nothing for it */
	th_ws_expect_no_push(pub, 200);

	/* NUL stays a JSON string: check the raw frame independently with cJSON */
	const char nul[] = { 'a', 0, 'b' };
	cr_assert_eq(th_ws_publish(pub, "clan:7", nul, 3), 0);
	struct th_ws_msg m;
	cr_assert_eq(th_ws_next_data(sub, &m, 5000), 1);
	cr_assert_eq(m.opcode, CM_WS_TEXT);
	cJSON *j = cJSON_ParseWithLength((char *)m.data, m.len);
	cr_assert(j, "push is not JSON: %s", m.data);
	cJSON *push = cJSON_GetObjectItemCaseSensitive(j, "push");
	cr_assert(cJSON_IsObject(push), "%s", m.data);
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(push, "stream")->valuestring, "clan:7");
	cr_assert_eq(cJSON_GetObjectItemCaseSensitive(push, "offset")->valuedouble, 4);
	cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(push, "data")), "%s", m.data);
	cr_assert(strstr((char *)m.data, "a\\u0000b"), "NUL not escaped as \\u0000: %s", m.data);
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(push, "encoding"));
	cJSON_Delete(j);
	th_ws_msg_free(&m);

	/* unsubscribe: no more pushes; unsubscribing again is ok */
	cr_assert_eq(th_ws_unsubscribe(sub, "clan:7"), 0);
	cr_assert_eq(th_ws_unsubscribe(sub, "clan:7"), 0);
	cr_assert_eq(th_ws_unsubscribe(sub, "never-held"), 0);
	cr_assert_eq(th_ws_publish(pub, "clan:7", "x", 1), 0);
	th_ws_expect_no_push(sub, 300);
	/* and again after re-subscribing: offsets continue */
	cr_assert_eq(th_ws_subscribe(sub, "clan:7"), 0);
	cr_assert_eq(th_ws_publish(pub, "clan:7", "y", 1), 0);
	th_ws_expect_push(sub, "clan:7", 6, "y", 1);
	for (int i = 0; i < 3; i++)
		th_ws_expect_push(watch, "clan:7", (uint64_t)i + 1, p[i], pl[i]);
	th_ws_expect_push(watch, "clan:7", 4, nul, 3);
	th_ws_expect_push(watch, "clan:7", 5, "x", 1);
	th_ws_expect_push(watch, "clan:7", 6, "y", 1);
	th_ws_expect_no_push(watch, 100);
	th_ws_free(watch);
	th_ws_free(sub);
	th_ws_free(pub);
	stop();
}

Test(gateway_proto, protobuf_subscribe_publish_push_and_cross_format)
{
	start(NULL, NULL, NULL, NULL);
	struct th_ws *sub = th_ws_open(gw.port, "/ws?user=alice&format=protobuf");
	struct th_ws *js = th_ws_open(gw.port, "/ws?user=carol&format=json");
	struct th_ws *pub = th_ws_open(gw.port, "/ws?user=bob&format=protobuf");
	cr_assert_eq(sub->fmt, CM_FMT_PROTOBUF);
	cr_assert_eq(th_ws_subscribe(sub, "bin.s"), 0);
	cr_assert_eq(th_ws_subscribe(js, "bin.s"), 0);
	uint8_t b[300];
	for (int i = 0; i < 300; i++)
		b[i] = (uint8_t)(i * 7);
	const uint8_t bad[] = { 0xff, 0x00, 0xfe, 'x' };
	cr_assert_eq(th_ws_publish(pub, "bin.s", "one", 3), 0);
	cr_assert_eq(th_ws_publish(pub, "bin.s", b, sizeof(b)), 0);
	cr_assert_eq(th_ws_publish(pub, "bin.s", bad, sizeof(bad)), 0);
	th_ws_expect_push(sub, "bin.s", 1, "one", 3);
	th_ws_expect_push(sub, "bin.s", 2, b, sizeof(b));
	th_ws_expect_push(sub, "bin.s", 3, bad, sizeof(bad));
	th_ws_expect_push(js, "bin.s", 1, "one", 3);
	th_ws_expect_push(js, "bin.s", 2, b, sizeof(b)); /* decoded from base64 */

	/* not UTF-8: base64 with "encoding":"base64" in JSON */
	struct th_ws_msg m;
	cr_assert_eq(th_ws_next_data(js, &m, 5000), 1);
	cJSON *j = cJSON_ParseWithLength((char *)m.data, m.len);
	cr_assert(j, "%s", m.data);
	cJSON *push = cJSON_GetObjectItemCaseSensitive(j, "push");
	cJSON *enc = cJSON_GetObjectItemCaseSensitive(push, "encoding");
	cr_assert(cJSON_IsString(enc) && strcmp(enc->valuestring, "base64") == 0, "%s", m.data);
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(push, "data")->valuestring, "/wD+eA==");
	cr_assert_eq(cJSON_GetObjectItemCaseSensitive(push, "offset")->valuedouble, 3);
	cJSON_Delete(j);
	th_ws_msg_free(&m);

	/* protobuf errors are replies too */
	cr_assert_eq(th_ws_subscribe(sub, "user:x"), 403);
	cr_assert_eq(th_ws_subscribe(sub, "bad name"), 422);
	th_ws_free(sub);
	th_ws_free(js);
	th_ws_free(pub);
	stop();
}

Test(gateway_proto, streams_at_connect)
{
	start(NULL, NULL, NULL, NULL);
	struct th_ws *sub = th_ws_open(gw.port, "/ws?user=a&streams=s.one%2Cs.two,s.three");
	struct th_ws *pub = th_ws_open(gw.port, "/ws?user=b");
	/* a round trip on sub makes sure its connect-time subscriptions are in */
	cr_assert_eq(th_ws_subscribe(sub, "s.four"), 0);
	cr_assert_eq(th_ws_publish(pub, "s.one", "1", 1), 0);
	cr_assert_eq(th_ws_publish(pub, "s.two", "2", 1), 0);
	cr_assert_eq(th_ws_publish(pub, "s.three", "3", 1), 0);
	cr_assert_eq(th_ws_publish(pub, "s.five", "5", 1), 0);
	cr_assert_eq(th_ws_publish(pub, "s.four", "4", 1), 0);
	/* order across streams is not promised: collect the four */
	const char *want[] = { "s.one", "s.two", "s.three", "s.four" };
	bool seen[4] = { false };
	for (int i = 0; i < 4; i++) {
		struct cm_smsg m;
		cr_assert_eq(th_ws_next_push(sub, &m, 5000), 1, "only %d of 4 pushes", i);
		int k;
		for (k = 0; k < 4 && strcmp(m.stream, want[k]) != 0; k++)
			;
		cr_assert(k < 4, "push on unexpected stream %s", m.stream);
		cr_assert(!seen[k], "two pushes on %s", m.stream);
		seen[k] = true;
		cr_assert_eq(m.offset, 1);
		cr_assert_eq(m.data_len, 1);
		cr_assert_eq(m.data[0], "1234"[k]);
		cm_smsg_release(&m);
	}
	th_ws_expect_no_push(sub, 200);
	th_ws_free(sub);
	th_ws_free(pub);
	stop();
}

Test(gateway_proto, error_replies)
{
	start(NULL, NULL, NULL, NULL);
	struct th_ws *ws = th_ws_open(gw.port, "/ws?user=alice");
	struct cm_smsg r;
	cr_assert_eq(th_ws_subscribe(ws, "user:alice"), 403, "user: streams are reserved");
	cr_assert_eq(th_ws_subscribe(ws, "user:bob"), 403);
	cr_assert_eq(th_ws_publish(ws, "user:bob", "x", 1), 403, "no in-band direct messages");
	cr_assert_eq(th_ws_subscribe(ws, "bad stream"), 422);
	cr_assert_eq(th_ws_subscribe(ws, ""), 422);
	char longname[200];
	memset(longname, 'a', 129);
	longname[129] = 0;
	cr_assert_eq(th_ws_subscribe(ws, longname), 422, "129 bytes is too long");
	longname[128] = 0;
	cr_assert_eq(th_ws_subscribe(ws, longname), 0, "128 bytes is fine");

	const char *unk = "{\"id\":5,\"frobnicate\":{\"stream\":\"a\"}}";
	cr_assert_eq(th_ws_raw_command(ws, unk, strlen(unk), &r, 5000), 404);
	cr_assert_eq(r.id, 5);
	cm_smsg_release(&r);

	const char *notobj[] = { "[1,2]", "42", "\"str\"", "nul", "{" };
	for (size_t i = 0; i < 5; i++) {
		int c = th_ws_raw_command(ws, notobj[i], strlen(notobj[i]), &r, 5000);
		cr_assert(c >= 400 && c < 500, "%s -> %d", notobj[i], c);
		cr_assert_eq(r.id, 0, "%s: error id %llu", notobj[i], (unsigned long long)r.id);
		cm_smsg_release(&r);
	}
	const char *badid[] = {
		"{\"id\":-1,\"subscribe\":{\"stream\":\"a\"}}",
		"{\"id\":\"7\",\"subscribe\":{\"stream\":\"a\"}}",
		"{\"id\":1.5,\"subscribe\":{\"stream\":\"a\"}}",
		"{\"id\":9007199254740993,\"subscribe\":{\"stream\":\"a\"}}",
		"{\"id\":null,\"subscribe\":{\"stream\":\"a\"}}",
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(badid); i++) {
		int c = th_ws_raw_command(ws, badid[i], strlen(badid[i]), &r, 5000);
		cr_assert_eq(c, 400, "%s -> %d", badid[i], c);
		cm_smsg_release(&r);
	}
	const char *big_ok = "{\"id\":9007199254740992,\"subscribe\":{\"stream\":\"a\"}}";
	cr_assert_eq(th_ws_raw_command(ws, big_ok, strlen(big_ok), &r, 5000), 0, "id 2^53 is valid");
	cr_assert_eq(r.id, 9007199254740992ULL);
	cm_smsg_release(&r);
	const char *nostream = "{\"id\":3,\"subscribe\":{}}";
	int c = th_ws_raw_command(ws, nostream, strlen(nostream), &r, 5000);
	cr_assert(c == 400 || c == 422, "subscribe without stream -> %d", c);
	cr_assert_eq(r.id, 3);
	cm_smsg_release(&r);
	/* after all that, the connection still works */
	cr_assert_eq(th_ws_subscribe(ws, "still.ok"), 0);
	th_ws_free(ws);
	stop();
}

Test(gateway_proto, client_publish_policy_none)
{
	start("--client-publish", "none", NULL, NULL);
	struct th_ws *ws = th_ws_open(gw.port, "/ws?user=a");
	cr_assert_eq(th_ws_subscribe(ws, "s"), 0);
	cr_assert_eq(th_ws_publish(ws, "s", "x", 1), 403);
	th_ws_expect_no_push(ws, 200);
	th_ws_free(ws);
	stop();
}

Test(gateway_proto, client_publish_policy_prefixes)
{
	start("--client-publish", "chat.,game:", NULL, NULL);
	struct th_ws *ws = th_ws_open(gw.port, "/ws?user=a&streams=chat.1,news");
	cr_assert_eq(th_ws_publish(ws, "chat.1", "x", 1), 0);
	cr_assert_eq(th_ws_publish(ws, "news", "y", 1), 403);
	th_ws_expect_push(ws, "chat.1", 1, "x", 1);
	th_ws_expect_no_push(ws, 200);
	th_ws_free(ws);
	stop();
}

/* --- RFC 6455 --- */

static int close_code_after(struct th_ws *ws)
{
	int c = th_ws_wait_close(ws, 5000);
	cr_assert(th_ws_wait_eof(ws, 5000), "TCP not closed after the close frame");
	return c;
}

Test(gateway_proto, close_codes)
{
	start("--max-message-bytes", "1024", NULL, NULL);
	struct th_ws *ws;

	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame_ex(ws, CM_WS_TEXT, true, false, 0, "{}", 2);
	cr_assert_eq(close_code_after(ws), 1002, "unmasked frame");
	th_ws_free(ws);

	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame_ex(ws, CM_WS_TEXT, true, true, 4, "{}", 2);
	cr_assert_eq(close_code_after(ws), 1002, "RSV bit");
	th_ws_free(ws);

	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, 0x3, true, "x", 1);
	cr_assert_eq(close_code_after(ws), 1002, "reserved opcode");
	th_ws_free(ws);

	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, CM_WS_CONT, true, "x", 1);
	cr_assert_eq(close_code_after(ws), 1002, "continuation without a message");
	th_ws_free(ws);

	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, CM_WS_PING, false, "x", 1);
	cr_assert_eq(close_code_after(ws), 1002, "fragmented ping");
	th_ws_free(ws);

	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, CM_WS_TEXT, true, "\xff\xfe", 2);
	cr_assert_eq(close_code_after(ws), 1007, "invalid UTF-8");
	th_ws_free(ws);

	/* invalid UTF-8 split across fragments (a truncated 3-byte sequence) */
	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, CM_WS_TEXT, false, "{\xe2\x82", 3);
	th_ws_send_frame(ws, CM_WS_CONT, true, "}", 1);
	cr_assert_eq(close_code_after(ws), 1007, "invalid UTF-8 across fragments");
	th_ws_free(ws);

	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_binary(ws, "\x08\x01", 2);
	cr_assert_eq(close_code_after(ws), 1003, "binary frame in JSON format");
	th_ws_free(ws);

	char big[2048];
	memset(big, ' ', sizeof(big));
	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, CM_WS_TEXT, true, big, sizeof(big));
	cr_assert_eq(close_code_after(ws), 1009, "2 KiB message over a 1 KiB limit");
	th_ws_free(ws);

	/* too big across fragments */
	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, CM_WS_TEXT, false, big, 600);
	th_ws_send_frame(ws, CM_WS_CONT, true, big, 600);
	cr_assert_eq(close_code_after(ws), 1009, "fragments adding up over the limit");
	th_ws_free(ws);

	ws = th_ws_open(gw.port, "/ws?user=a");
	char p126[126];
	memset(p126, 'p', sizeof(p126));
	th_ws_send_frame(ws, CM_WS_PING, true, p126, sizeof(p126));
	cr_assert_eq(close_code_after(ws), 1002, "126-byte ping");
	th_ws_free(ws);

	/* a 5-byte text frame with a 16-bit length: not minimal */
	ws = th_ws_open(gw.port, "/ws?user=a");
	const uint8_t nonmin[] = { 0x81, 0xfe, 0x00, 0x05, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ' };
	th_ws_send_raw(ws, nonmin, sizeof(nonmin));
	cr_assert_eq(close_code_after(ws), 1002, "non-minimal length");
	th_ws_free(ws);

	/* close frames the RFC forbids: 1-byte payload, reserved code, bad UTF-8 reason */
	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, CM_WS_CLOSE, true, "\x03", 1);
	cr_assert_eq(close_code_after(ws), 1002, "1-byte close payload");
	th_ws_free(ws);
	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, CM_WS_CLOSE, true, "\x03\xed", 2); /* 1005 must not be sent */
	cr_assert_eq(close_code_after(ws), 1002, "close code 1005 on the wire");
	th_ws_free(ws);
	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_frame(ws, CM_WS_CLOSE, true, "\x03\xe8\xff", 3);
	cr_assert_eq(close_code_after(ws), 1007, "close reason not UTF-8");
	th_ws_free(ws);

	/* each of those was counted under its reason */
	static const struct {
		const char *reason;
		double n;
	} want[] = { { "\"protocol_error\"", 9 }, { "\"invalid_utf8\"", 3 },
		     { "\"unsupported_data\"", 1 }, { "\"too_big\"", 2 } };
	for (size_t i = 0; i < CM_ARRAY_LEN(want); i++)
		cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_connections_closed_total",
					       want[i].reason) == want[i].n, 5000),
			  "closed %s: %g, want %g", want[i].reason,
			  th_gw_metric(&gw, "herald_gateway_connections_closed_total", want[i].reason),
			  want[i].n);

	/* the client's close is echoed with its code */
	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_close(ws, 1000, "bye");
	cr_assert_eq(close_code_after(ws), 1000);
	th_ws_free(ws);
	ws = th_ws_open(gw.port, "/ws?user=a");
	th_ws_send_close(ws, 4321, NULL);
	cr_assert_eq(close_code_after(ws), 4321);
	th_ws_free(ws);
	stop();
}

Test(gateway_proto, fragmented_command_and_ping_between_fragments)
{
	start(NULL, NULL, NULL, NULL);
	struct th_ws *ws = th_ws_open(gw.port, "/ws?user=a");
	const char *cmd = "{\"id\":77,\"subscribe\":{\"stream\":\"frag.s\"}}";
	size_t n = strlen(cmd);
	th_ws_send_frame(ws, CM_WS_TEXT, false, cmd, 10);
	th_ws_send_frame(ws, CM_WS_PING, true, "mid", 3);
	th_ws_send_frame(ws, CM_WS_CONT, false, cmd + 10, 10);
	th_ws_send_frame(ws, CM_WS_CONT, true, cmd + 20, n - 20);
	struct th_ws_msg m;
	cr_assert_eq(th_ws_read(ws, &m, 5000), 1);
	cr_assert_eq(m.opcode, CM_WS_PONG, "the pong for the ping between fragments comes first");
	cr_assert_eq(m.len, 3);
	cr_assert_str_eq((char *)m.data, "mid");
	th_ws_msg_free(&m);
	cr_assert_eq(th_ws_next_data(ws, &m, 5000), 1);
	struct cm_smsg r;
	cr_assert_eq(cm_smsg_decode(CM_FMT_JSON, m.data, m.len, &r), 0, "%s", m.data);
	cr_assert_eq(r.kind, CM_SMSG_REPLY);
	cr_assert_eq(r.id, 77);
	cr_assert_eq(r.code, 0);
	cm_smsg_release(&r);
	th_ws_msg_free(&m);
	th_ws_free(ws);
	stop();
}

Test(gateway_proto, ping_gets_pong_with_same_payload)
{
	start(NULL, NULL, NULL, NULL);
	struct th_ws *ws = th_ws_open(gw.port, "/ws?user=a");
	uint8_t payload[125];
	for (int i = 0; i < 125; i++)
		payload[i] = (uint8_t)(255 - i);
	size_t sizes[] = { 0, 1, 125 };
	for (int k = 0; k < 3; k++) {
		th_ws_send_frame(ws, CM_WS_PING, true, payload, sizes[k]);
		struct th_ws_msg m;
		cr_assert_eq(th_ws_read(ws, &m, 5000), 1);
		cr_assert_eq(m.opcode, CM_WS_PONG);
		cr_assert_eq(m.len, sizes[k]);
		cr_assert(memcmp(m.data, payload, sizes[k]) == 0);
		th_ws_msg_free(&m);
	}
	/* an unsolicited pong is ignored */
	th_ws_send_frame(ws, CM_WS_PONG, true, "u", 1);
	cr_assert_eq(th_ws_subscribe(ws, "after.pong"), 0);
	th_ws_free(ws);
	stop();
}

Test(gateway_proto, server_pings_keep_answering_clients_alive)
{
	start("--ping-interval", "200ms", "--idle-timeout", "1s");
	struct th_ws *ws = th_ws_open(gw.port, "/ws?user=a");
	struct th_ws *silent = th_ws_open(gw.port, "/ws?user=b");
	int64_t until = th_now_ms() + 2500;
	unsigned pings = 0;
	while (th_now_ms() < until) {
		struct th_ws_msg m;
		int r = th_ws_read(ws, &m, 100);
		cr_assert(r >= 0, "connection answering pings was closed (code %u)", ws->close_code);
		if (r == 1) {
			if (m.opcode == CM_WS_PING) {
				pings++;
				th_ws_send_frame(ws, CM_WS_PONG, true, m.data, m.len);
			}
			th_ws_msg_free(&m);
		}
	}
	cr_assert(pings >= 2, "only %u server pings in 2.5 s at a 200 ms interval", pings);
	cr_assert_eq(th_ws_subscribe(ws, "alive"), 0);
	/* the one that never answered is gone */
	struct th_ws_msg m;
	int r;
	while ((r = th_ws_read(silent, &m, 3000)) == 1)
		th_ws_msg_free(&m);
	cr_assert_eq(r, -1, "a client silent for 3.5 s outlived a 1 s idle timeout");
	th_ws_free(ws);
	th_ws_free(silent);
	stop();
}

Test(gateway_proto, idle_timeout_closes)
{
	start("--ping-interval", "30s", "--idle-timeout", "500ms");
	struct th_ws *ws = th_ws_open(gw.port, "/ws?user=a");
	int c = th_ws_wait_close(ws, 5000);
	cr_assert(c != 0, "still open 5 s after a 500 ms idle timeout");
	cr_assert(th_ws_wait_eof(ws, 5000));
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_connections_closed_total",
				       "idle_timeout") == 1, 5000));
	th_ws_free(ws);
	stop();
}

Test(gateway_proto, fin_closes_the_connection)
{
	start(NULL, NULL, NULL, NULL);
	struct th_ws *ws = th_ws_open(gw.port, "/ws?user=a");
	struct th_ws *other = th_ws_open(gw.port, "/ws?user=b");
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_ccu", NULL) == 2, 5000));
	shutdown(ws->fd, SHUT_WR);
	cr_assert(th_ws_wait_eof(ws, 5000), "no close after our FIN");
	cr_assert(TH_WAIT(th_gw_metric(&gw, "herald_gateway_ccu", NULL) == 1, 5000), "ccu %g",
		  th_gw_metric(&gw, "herald_gateway_ccu", NULL));
	cr_assert_eq(th_ws_subscribe(other, "x"), 0);
	th_ws_free(ws);
	th_ws_free(other);
	stop();
}

Test(gateway_proto, anon_users_and_many_streams_per_connection)
{
	start(NULL, NULL, NULL, NULL);
	struct th_ws *sub = th_ws_open(gw.port, "/ws");
	struct th_ws *pub = th_ws_open(gw.port, "/ws");
	char name[32];
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "multi.%d", i);
		cr_assert_eq(th_ws_subscribe(sub, name), 0);
	}
	for (int round = 1; round <= 2; round++)
		for (int i = 0; i < 50; i++) {
			snprintf(name, sizeof(name), "multi.%d", i);
			cr_assert_eq(th_ws_publish(pub, name, name, strlen(name)), 0);
		}
	/* per stream in order (1 then 2); across streams in any order */
	uint64_t next[50];
	for (int i = 0; i < 50; i++)
		next[i] = 1;
	for (int k = 0; k < 100; k++) {
		struct cm_smsg m;
		cr_assert_eq(th_ws_next_push(sub, &m, 5000), 1, "only %d of 100 pushes", k);
		int i = atoi(m.stream + 6);
		cr_assert(strncmp(m.stream, "multi.", 6) == 0 && i >= 0 && i < 50, "%s", m.stream);
		cr_assert_eq(m.offset, next[i], "%s: offset %llu, want %llu", m.stream,
			     (unsigned long long)m.offset, (unsigned long long)next[i]);
		next[i]++;
		cr_assert_eq(m.data_len, strlen(m.stream));
		cr_assert(memcmp(m.data, m.stream, m.data_len) == 0);
		cm_smsg_release(&m);
	}
	th_ws_expect_no_push(sub, 100);
	th_ws_free(sub);
	th_ws_free(pub);
	stop();
}

Test(gateway_proto, command_rate_limit_answers_429)
{
	start("--cmd-rate", "1", "--cmd-burst", "3");
	struct th_ws *ws = th_ws_open(gw.port, "/ws?user=a");
	int64_t ids[10];
	for (int i = 0; i < 10; i++)
		ids[i] = th_ws_send_command(ws, CM_CMD_SUBSCRIBE, "rl", NULL, 0);
	int ok = 0, limited = 0;
	for (int i = 0; i < 10; i++) {
		int c = th_ws_wait_reply(ws, (uint64_t)ids[i], NULL, 5000);
		cr_assert(c == 0 || c == 429, "reply %d", c);
		ok += c == 0;
		limited += c == 429;
	}
	cr_assert(ok >= 3 && limited >= 1, "%d ok, %d limited with a burst of 3", ok, limited);
	cr_assert(th_gw_metric(&gw, "herald_gateway_rate_limited_total", NULL) == limited);
	th_ws_free(ws);
	stop();
}

Test(gateway_proto, frame_in_the_same_segment_as_the_upgrade)
{
	start(NULL, NULL, NULL, NULL);
	/* the request and a masked subscribe in one write */
	const char *req = "GET /ws?user=eager HTTP/1.1\r\n"
			  "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 13\r\n\r\n";
	const char *cmd = "{\"id\":9,\"subscribe\":{\"stream\":\"eager\"}}";
	uint8_t buf[1024];
	size_t rl = strlen(req), cl = strlen(cmd);
	memcpy(buf, req, rl);
	buf[rl] = 0x81;
	buf[rl + 1] = (uint8_t)(0x80 | cl);
	const uint8_t mask[4] = { 0x11, 0x22, 0x33, 0x44 };
	memcpy(buf + rl + 2, mask, 4);
	for (size_t i = 0; i < cl; i++)
		buf[rl + 6 + i] = (uint8_t)cmd[i] ^ mask[i & 3];
	struct th_ws_opts o = { .port = gw.port };
	struct th_ws *ws = th_ws_dial(&o);
	cr_assert_eq(th_ws_send_raw(ws, buf, rl + 6 + cl), 0);
	cr_assert_eq(th_ws_read_http(ws, 5000), 101);
	struct cm_smsg r;
	cr_assert_eq(th_ws_wait_reply(ws, 9, &r, 5000), 0,
		     "the frame sent with the upgrade was lost");
	cm_smsg_release(&r);
	th_ws_free(ws);
	stop();
}
