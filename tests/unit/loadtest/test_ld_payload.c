#include <criterion/criterion.h>
#include <string.h>

#include "loadtest/ld_payload.h"

Test(ld_payload, round_trips_every_field)
{
	struct ld_payload in = { .step = 7, .stream = 199, .seq = 123456789,
				 .send_ns = 18446744073709551615ULL }, out;
	char buf[256];
	size_t n = ld_payload_encode(buf, sizeof(buf), 128, &in);
	cr_assert_eq(n, 128);
	cr_assert_eq(ld_payload_decode((uint8_t *)buf, n, &out), 0);
	cr_assert_eq(out.step, 7);
	cr_assert_eq(out.stream, 199);
	cr_assert_eq(out.seq, 123456789);
	cr_assert_eq(out.send_ns, 18446744073709551615ULL);
}

Test(ld_payload, pads_to_the_requested_size_with_json_safe_bytes)
{
	struct ld_payload in = { 1, 2, 3, 4 };
	char buf[1024];
	size_t n = ld_payload_encode(buf, sizeof(buf), 1000, &in);
	cr_assert_eq(n, 1000);
	for (size_t i = 0; i < n; i++)
		cr_assert(buf[i] >= 0x20 && buf[i] < 0x7f && buf[i] != '"' && buf[i] != '\\');
	cr_assert_eq(buf[999], 'x');
}

Test(ld_payload, a_small_size_still_holds_the_whole_header)
{
	struct ld_payload in = { UINT32_MAX, UINT32_MAX, UINT64_MAX, UINT64_MAX }, out;
	char buf[256];
	size_t n = ld_payload_encode(buf, sizeof(buf), 1, &in);
	cr_assert(n > 1 && n <= LD_PAYLOAD_MIN, "n=%zu", n);
	cr_assert_eq(ld_payload_decode((uint8_t *)buf, n, &out), 0);
	cr_assert_eq(out.seq, UINT64_MAX);
	cr_assert_eq(ld_payload_encode(buf, 10, 1, &in), 0, "cap too small");
}

Test(ld_payload, rejects_what_is_not_ours)
{
	struct ld_payload out;
	const char *bad[] = {
		"", "ld1", "ld2:1:2:3:4:", "ld1:1:2:3:4", "ld1:1:2:3:", "ld1:a:2:3:4:",
		"ld1:1::3:4:", "ld1:4294967296:2:3:4:", "ld1:1:2:3:18446744073709551616:",
		"hello world",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(ld_payload_decode((const uint8_t *)bad[i], strlen(bad[i]), &out), -1,
			     "accepted %s", bad[i]);
}

Test(ld_payload, truncated_payloads_are_rejected)
{
	struct ld_payload in = { 3, 4, 5, 6 }, out;
	char buf[128];
	size_t n = ld_payload_encode(buf, sizeof(buf), 0, &in);
	for (size_t k = 0; k < n; k++)
		cr_assert_eq(ld_payload_decode((uint8_t *)buf, k, &out), -1, "k=%zu", k);
	cr_assert_eq(ld_payload_decode((uint8_t *)buf, n, &out), 0);
}

Test(ld_push, reads_a_json_push)
{
	const char *f = "{\"push\":{\"stream\":\"ld.17\",\"offset\":42,\"data\":\"ld1:0:17:42:99:xx\"}}";
	struct ld_push p;
	struct ld_payload pl;
	cr_assert_eq(ld_push_parse_json((const uint8_t *)f, strlen(f), &p), 1);
	cr_assert_eq(p.stream_len, 5);
	cr_assert(memcmp(p.stream, "ld.17", 5) == 0);
	cr_assert_eq(p.offset, 42);
	cr_assert_eq(p.data_len, 17);
	cr_assert_not(p.escaped);
	cr_assert_not(p.base64);
	cr_assert_eq(ld_payload_decode(p.data, p.data_len, &pl), 0);
	cr_assert_eq(pl.seq, 42);
	cr_assert_eq(pl.stream, 17);
}

Test(ld_push, tells_replies_and_garbage_apart)
{
	struct ld_push p;
	const char *reply = "{\"id\":1,\"ok\":{}}";
	const char *junk[] = { "", "[]", "{\"push\":{\"stream\":\"a\"}}",
			       "{\"push\":{\"stream\":\"a\",\"offset\":1,\"data\":\"abc}}",
			       "{\"push\":{\"stream\":\"a\",\"offset\":x,\"data\":\"abc\"}}",
			       "{\"nothing\":1}" };
	cr_assert_eq(ld_push_parse_json((const uint8_t *)reply, strlen(reply), &p), 0);
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		cr_assert_eq(ld_push_parse_json((const uint8_t *)junk[i], strlen(junk[i]), &p), -1,
			     "accepted %s", junk[i]);
}

Test(ld_push, flags_escaped_and_base64_data)
{
	struct ld_push p;
	const char *esc = "{\"push\":{\"stream\":\"s\",\"offset\":1,\"data\":\"a\\\"b\"}}";
	const char *b64 = "{\"push\":{\"stream\":\"s\",\"offset\":2,\"data\":\"/w==\",\"encoding\":\"base64\"}}";
	cr_assert_eq(ld_push_parse_json((const uint8_t *)esc, strlen(esc), &p), 1);
	cr_assert(p.escaped);
	cr_assert_eq(p.data_len, 4);
	cr_assert_eq(ld_push_parse_json((const uint8_t *)b64, strlen(b64), &p), 1);
	cr_assert(p.base64);
	cr_assert_eq(p.offset, 2);
}

Test(ld_push, tolerates_whitespace_around_colons)
{
	const char *f = "{ \"push\" : { \"stream\": \"a.1\", \"offset\": 7, \"data\": \"ld1:0:1:7:5:\" } }\n";
	struct ld_push p;
	cr_assert_eq(ld_push_parse_json((const uint8_t *)f, strlen(f), &p), 1);
	cr_assert_eq(p.offset, 7);
	cr_assert_eq(p.stream_len, 3);
	cr_assert_eq(p.data_len, 12);
}

Test(ld_push, fast_and_searching_readers_agree)
{
	const char *frames[] = {
		"{\"push\":{\"stream\":\"ld.3\",\"offset\":9,\"data\":\"ld1:0:3:9:1:\"}}",
		"{\"push\":{\"stream\":\"ld.3\",\"offset\":9,\"data\":\"/w==\",\"encoding\":\"base64\"}}",
		"{\"push\":{\"offset\":9,\"stream\":\"ld.3\",\"data\":\"ld1:0:3:9:1:\"}}",
		"{\"push\":{\"stream\":\"ld.3\",\"offset\":9,\"data\":\"ld1:0:3:9:1:\"},\"x\":1}",
	};
	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		struct ld_push p;
		memset(&p, 0x55, sizeof(p));
		cr_assert_eq(ld_push_parse_json((const uint8_t *)frames[i], strlen(frames[i]), &p), 1, "i=%zu", i);
		cr_assert_eq(p.offset, 9, "i=%zu", i);
		cr_assert_eq(p.stream_len, 4, "i=%zu", i);
		cr_assert(memcmp(p.stream, "ld.3", 4) == 0);
		cr_assert_eq(p.base64, i == 1, "i=%zu", i);
		cr_assert_eq(p.data_len, i == 1 ? 4 : 12, "i=%zu", i);
	}
}
