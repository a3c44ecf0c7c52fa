#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cm_http.h"

static const char UPGRADE[] =
	"GET /ws?token=abc&streams=clan%3A7%2Cchannel%3A42 HTTP/1.1\r\n"
	"Host: example.com:8080\r\n"
	"Upgrade: websocket\r\n"
	"Connection: keep-alive, Upgrade\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Origin: http://example.com\r\n"
	"Sec-WebSocket-Protocol: chat, superchat\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"\r\n";

static int parse(const char *s, struct cm_http_req *req)
{
	return cm_http_parse_request(s, strlen(s), req);
}

static int parse_s(const char *s)
{
	struct cm_http_req req;
	return parse(s, &req);
}

static void check_upgrade(const struct cm_http_req *r)
{
	cr_assert(cm_str_eq(r->method, "GET"));
	cr_assert(cm_str_eq(r->target, "/ws?token=abc&streams=clan%3A7%2Cchannel%3A42"));
	cr_assert(cm_str_eq(r->path, "/ws"));
	cr_assert(cm_str_eq(r->query, "token=abc&streams=clan%3A7%2Cchannel%3A42"));
	cr_assert_eq(r->minor, 1);
	cr_assert_eq(r->nheaders, 7);
	cr_assert(cm_str_eq(r->host, "example.com:8080"));
	cr_assert(cm_str_eq(r->upgrade, "websocket"));
	cr_assert(cm_str_eq(r->connection, "keep-alive, Upgrade"));
	cr_assert(cm_str_eq(r->ws_key, "dGhlIHNhbXBsZSBub25jZQ=="));
	cr_assert(cm_str_eq(r->ws_version, "13"));
	cr_assert(cm_str_eq(r->ws_protocol, "chat, superchat"));
	cr_assert(cm_str_eq(r->origin, "http://example.com"));
	cr_assert_eq(r->content_length.n, 0);
}

Test(cm_http, parses_upgrade_request)
{
	struct cm_http_req r;
	cr_assert_eq(parse(UPGRADE, &r), (int)strlen(UPGRADE));
	check_upgrade(&r);
	cr_assert(cm_http_has_token(r.connection, "upgrade"));
	cr_assert(cm_str_ieq(r.upgrade, "WebSocket"));
}

Test(cm_http, parses_the_same_at_every_split_point)
{
	size_t n = strlen(UPGRADE);
	char *copy = malloc(n);

	for (size_t k = 0; k <= n; k++) {
		struct cm_http_req r;
		/* A fresh heap copy of the first k bytes: ASan sees any overread. */
		memcpy(copy, UPGRADE, k);
		char *part = malloc(k ? k : 1);
		memcpy(part, copy, k);
		int ret = cm_http_parse_request(part, k, &r);
		if (k < n) {
			cr_assert_eq(ret, 0, "prefix %zu gave %d", k, ret);
		} else {
			cr_assert_eq(ret, (int)n);
			check_upgrade(&r);
		}
		free(part);
	}
	free(copy);
}

Test(cm_http, returns_head_length_with_body_following)
{
	struct cm_http_req r;
	const char *s = "GET /x HTTP/1.0\r\nContent-Length: 4\r\n\r\nbody";
	cr_assert_eq(parse(s, &r), (int)strlen(s) - 4);
	cr_assert_eq(r.minor, 0);
	cr_assert(cm_str_eq(r.content_length, "4"));
	cr_assert_eq(r.query.n, 0);
	cr_assert(cm_str_eq(r.path, "/x"));
}

Test(cm_http, tolerates_bare_lf)
{
	struct cm_http_req r;
	const char *s = "GET /a?b HTTP/1.1\nHost: h\n\n";
	cr_assert_eq(parse(s, &r), (int)strlen(s));
	cr_assert(cm_str_eq(r.host, "h"));
	cr_assert(cm_str_eq(r.query, "b"));
	s = "GET / HTTP/1.1\r\nHost: h\n\r\n";
	cr_assert_eq(parse(s, &r), (int)strlen(s));
	s = "GET / HTTP/1.1\n\n";
	cr_assert_eq(parse(s, &r), (int)strlen(s));
	cr_assert_eq(r.nheaders, 0);
}

Test(cm_http, header_names_are_case_insensitive)
{
	struct cm_http_req r;
	const char *s = "GET / HTTP/1.1\r\nhOsT: a\r\nSEC-WEBSOCKET-KEY: k\r\n"
			"sec-websocket-version:13\r\nX-Other: z\r\n\r\n";
	cr_assert_gt(parse(s, &r), 0);
	cr_assert(cm_str_eq(r.host, "a"));
	cr_assert(cm_str_eq(r.ws_key, "k"));
	cr_assert(cm_str_eq(r.ws_version, "13"));
	cr_assert_eq(r.nheaders, 4);
}

Test(cm_http, trims_ows_around_values)
{
	struct cm_http_req r;
	const char *s = "GET / HTTP/1.1\r\nHost: \t a b \t \r\nOrigin:\r\n\r\n";
	cr_assert_gt(parse(s, &r), 0);
	cr_assert(cm_str_eq(r.host, "a b"));
	cr_assert_eq(r.origin.n, 0);
}

Test(cm_http, rejects_malformed_request_lines)
{
	const char *bad[] = {
		"\r\n\r\n",
		"GET\r\n\r\n",
		"GET /\r\n\r\n",
		"GET  / HTTP/1.1\r\n\r\n",
		"GET /  HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1 \r\n\r\n",
		" GET / HTTP/1.1\r\n\r\n",
		"GET / http/1.1\r\n\r\n",
		"GET / HTTP/1.10\r\n\r\n",
		"GET / HTTP/1\r\n\r\n",
		"GET / HTTP/x.1\r\n\r\n",
		"G(T / HTTP/1.1\r\n\r\n",
		"GET ws HTTP/1.1\r\n\r\n",
		"GET http://h/ws HTTP/1.1\r\n\r\n",
		"GET * HTTP/1.1\r\n\r\n",
		"GET /a\tb HTTP/1.1\r\n\r\n",
		"GET /a\x80 HTTP/1.1\r\n\r\n",
		"GET /\r HTTP/1.1\r\n\r\n",
		"GET\t/ HTTP/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse_s(bad[i]), -400, "case %zu: %s", i, bad[i]);
}

Test(cm_http, rejects_a_bad_request_line_before_the_head_is_complete)
{
	/* A TLS ClientHello or junk on the plain port fails at its first LF. */
	cr_assert_eq(parse_s("\x16\x03\x01 junk\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/2.0\r\nHost: x\r\n"), -505);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nHost: x\r\n"), 0);
}

Test(cm_http, rejects_other_versions_with_505)
{
	cr_assert_eq(parse_s("GET / HTTP/2.0\r\n\r\n"), -505);
	cr_assert_eq(parse_s("GET / HTTP/0.9\r\n\r\n"), -505);
	cr_assert_eq(parse_s("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), -505);
	cr_assert_eq(parse_s("GET / HTTP/1.9\r\n\r\n"), (int)strlen("GET / HTTP/1.9\r\n\r\n"));
}

Test(cm_http, rejects_obs_fold)
{
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), -400);
}

Test(cm_http, rejects_bad_header_lines)
{
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\n: empty\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), -400);
	/* Duplicates of headers that must be unique. */
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), -400);
	cr_assert_eq(parse_s("GET / HTTP/1.1\r\nContent-Length: 1\r\n"
			     "Content-Length: 1\r\n\r\n"), -400);
	/* obs-text in values is allowed. */
	cr_assert_gt(parse_s("GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n"), 0);
}

Test(cm_http, rejects_nul_bytes)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
	struct cm_http_req r;
	cr_assert_eq(cm_http_parse_request(s, sizeof(s) - 1, &r), -400);
	static const char t[] = "GET /\0 HTTP/1.1\r\n\r\n";
	cr_assert_eq(cm_http_parse_request(t, sizeof(t) - 1, &r), -400);
	static const char u[] = "GET / HTTP/1.1\r\nX\0: a\r\n\r\n";
	cr_assert_eq(cm_http_parse_request(u, sizeof(u) - 1, &r), -400);
}

Test(cm_http, first_list_header_wins)
{
	struct cm_http_req r;
	cr_assert_gt(parse("GET / HTTP/1.1\r\nConnection: Upgrade\r\n"
			   "Connection: close\r\n\r\n", &r), 0);
	cr_assert(cm_str_eq(r.connection, "Upgrade"));
}

static char *head_of(size_t total, size_t *len)
{
	/* A head of exactly `total` bytes through the blank line. */
	char *b = malloc(total + 16);
	const char *start = "GET / HTTP/1.1\r\nX-Pad: ";
	size_t n = strlen(start);
	memcpy(b, start, n);
	cr_assert(total >= n + 4);
	memset(b + n, 'a', total - n - 4);
	memcpy(b + total - 4, "\r\n\r\n", 4);
	*len = total;
	return b;
}

Test(cm_http, head_limit_is_431)
{
	struct cm_http_req r;
	size_t len;
	char *b = head_of(CM_HTTP_MAX_HEAD, &len);
	cr_assert_eq(cm_http_parse_request(b, len, &r), CM_HTTP_MAX_HEAD);
	free(b);
	b = head_of(CM_HTTP_MAX_HEAD + 1, &len);
	cr_assert_eq(cm_http_parse_request(b, len, &r), -431);
	/* Without the blank line: incomplete below the limit, 431 at it. */
	cr_assert_eq(cm_http_parse_request(b, CM_HTTP_MAX_HEAD - 1, &r), 0);
	cr_assert_eq(cm_http_parse_request(b, CM_HTTP_MAX_HEAD, &r), -431);
	free(b);
	/* A request line that never ends. */
	b = malloc(CM_HTTP_MAX_HEAD * 2);
	memset(b, 'A', CM_HTTP_MAX_HEAD * 2);
	cr_assert_eq(cm_http_parse_request(b, CM_HTTP_MAX_HEAD - 1, &r), 0);
	cr_assert_eq(cm_http_parse_request(b, CM_HTTP_MAX_HEAD * 2, &r), -431);
	free(b);
}

Test(cm_http, too_many_headers_is_431)
{
	struct cm_http_req r;
	char buf[4096];
	size_t n;

	for (int count = CM_HTTP_MAX_HEADERS; count <= CM_HTTP_MAX_HEADERS + 1; count++) {
		n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
		for (int i = 0; i < count; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
		int ret = cm_http_parse_request(buf, n, &r);
		if (count == CM_HTTP_MAX_HEADERS) {
			cr_assert_eq(ret, (int)n);
			cr_assert_eq(r.nheaders, CM_HTTP_MAX_HEADERS);
		} else {
			cr_assert_eq(ret, -431);
		}
	}
}

Test(cm_http, connection_token_lists)
{
	struct cm_str v = { "keep-alive, Upgrade", 19 };
	cr_assert(cm_http_has_token(v, "upgrade"));
	cr_assert(cm_http_has_token(v, "Keep-Alive"));
	cr_assert_not(cm_http_has_token(v, "close"));
	cr_assert_not(cm_http_has_token(v, "keep"));
	cr_assert_not(cm_http_has_token(v, "Upgrad"));
	struct cm_str w = { " ,Upgrade ,\t", 12 };
	cr_assert(cm_http_has_token(w, "upgrade"));
	struct cm_str x = { "upgrade-ish", 11 };
	cr_assert_not(cm_http_has_token(x, "upgrade"));
	struct cm_str e = { "", 0 };
	cr_assert_not(cm_http_has_token(e, "upgrade"));
}

Test(cm_http, str_compare)
{
	struct cm_str s = { "GeT", 3 };
	cr_assert(cm_str_ieq(s, "get"));
	cr_assert_not(cm_str_eq(s, "get"));
	cr_assert(cm_str_eq(s, "GeT"));
	cr_assert_not(cm_str_ieq(s, "gets"));
	cr_assert(cm_str_eq((struct cm_str){ NULL, 0 }, ""));
}

static struct cm_str q(const char *s)
{
	return (struct cm_str){ s, strlen(s) };
}

Test(cm_http, query_decoding)
{
	char out[64];
	cr_assert_eq(cm_http_query_get(q("streams=clan%3A7%2Cb&x=1"), "streams", out, sizeof(out)), 8);
	cr_assert_str_eq(out, "clan:7,b");
	cr_assert_eq(cm_http_query_get(q("a=hello+world%21"), "a", out, sizeof(out)), 12);
	cr_assert_str_eq(out, "hello world!");
	cr_assert_eq(cm_http_query_get(q("a=%2c%2C"), "a", out, sizeof(out)), 2);
	cr_assert_str_eq(out, ",,");
	cr_assert_eq(cm_http_query_get(q("a=&b"), "a", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "");
	cr_assert_eq(cm_http_query_get(q("a=&b"), "b", out, sizeof(out)), 0);
	cr_assert_eq(cm_http_query_get(q("x=1&user=u%2019"), "user", out, sizeof(out)), 4);
	cr_assert_str_eq(out, "u 19");
	/* An encoded name matches its decoded form. */
	cr_assert_eq(cm_http_query_get(q("us%65r=7"), "user", out, sizeof(out)), 1);
}

Test(cm_http, query_malformed_and_absent)
{
	char out[8];
	cr_assert_eq(cm_http_query_get(q("a=%zz"), "a", out, sizeof(out)), -2);
	cr_assert_eq(cm_http_query_get(q("a=%2"), "a", out, sizeof(out)), -2);
	cr_assert_eq(cm_http_query_get(q("a=%"), "a", out, sizeof(out)), -2);
	cr_assert_eq(cm_http_query_get(q("a=x%g0"), "a", out, sizeof(out)), -2);
	cr_assert_eq(cm_http_query_get(q("a=1234567"), "a", out, sizeof(out)), 7);
	cr_assert_eq(cm_http_query_get(q("a=12345678"), "a", out, sizeof(out)), -2);
	cr_assert_eq(cm_http_query_get(q("a=%31%32%33%34%35%36%37%38"), "a", out, sizeof(out)), -2);
	cr_assert_eq(cm_http_query_get(q("a=1"), "a", out, 0), -2);
	cr_assert_eq(cm_http_query_get(q("a=1&b=2"), "c", out, sizeof(out)), -1);
	cr_assert_eq(cm_http_query_get(q(""), "a", out, sizeof(out)), -1);
	cr_assert_eq(cm_http_query_get(q("&&=&"), "a", out, sizeof(out)), -1);
	cr_assert_eq(cm_http_query_get(q("aa=1"), "a", out, sizeof(out)), -1);
	/* Bad input elsewhere in the query does not matter. */
	cr_assert_eq(cm_http_query_get(q("x=%zz&a=ok"), "a", out, sizeof(out)), 2);
}

Test(cm_http, query_first_occurrence_wins)
{
	char out[16];
	cr_assert_eq(cm_http_query_get(q("a=1&a=2"), "a", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "1");
	cr_assert_eq(cm_http_query_get(q("a=%zz&a=2"), "a", out, sizeof(out)), -2);
}

Test(cm_http, query_names_that_are_prefixes)
{
	char out[16];
	cr_assert_eq(cm_http_query_get(q("streamsx=1&streams=a"), "streams", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "a");
	cr_assert_eq(cm_http_query_get(q("streams=a&streamsx=1"), "streamsx", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "1");
	cr_assert_eq(cm_http_query_get(q("xstreams=1"), "streams", out, sizeof(out)), -1);
	cr_assert_eq(cm_http_query_get(q("stream=1"), "streams", out, sizeof(out)), -1);
}

Test(cm_http, ws_accept_key_rfc6455_example)
{
	char out[29];
	memset(out, 'x', sizeof(out));
	cm_ws_accept_key(q("dGhlIHNhbXBsZSBub25jZQ=="), out);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(cm_http, writes_responses)
{
	char out[256];
	size_t n = cm_http_write_response(out, sizeof(out), 404, "text/plain", NULL, "nope\n", 5);
	const char *want = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
			   "Content-Length: 5\r\nConnection: close\r\n\r\nnope\n";
	cr_assert_eq(n, strlen(want));
	cr_assert(memcmp(out, want, n) == 0);

	n = cm_http_write_response(out, sizeof(out), 426, NULL, "Sec-WebSocket-Version: 13\r\n", NULL, 0);
	want = "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n"
	       "Sec-WebSocket-Version: 13\r\n\r\n";
	cr_assert_eq(n, strlen(want));
	cr_assert(memcmp(out, want, n) == 0);

	/* HEAD: the length of a body that is not written. */
	n = cm_http_write_response(out, sizeof(out), 200, "text/plain", NULL, NULL, 1234);
	want = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n"
	       "Connection: close\r\n\r\n";
	cr_assert_eq(n, strlen(want));
	cr_assert(memcmp(out, want, n) == 0);

	/* 101: no Content-Length, no Connection: close. */
	n = cm_http_write_response(out, sizeof(out), 101, NULL,
				   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
				   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", NULL, 0);
	want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
	cr_assert_eq(n, strlen(want));
	cr_assert(memcmp(out, want, n) == 0);
}

Test(cm_http, write_response_too_small_returns_0)
{
	char out[256];
	size_t full = cm_http_write_response(out, sizeof(out), 200, "text/plain", NULL, "hello", 5);
	cr_assert_gt(full, 0);
	for (size_t cap = 0; cap < full; cap++) {
		char *b = malloc(cap ? cap : 1);
		cr_assert_eq(cm_http_write_response(b, cap, 200, "text/plain", NULL, "hello", 5), 0,
			     "cap %zu", cap);
		free(b);
	}
	cr_assert_eq(cm_http_write_response(out, full, 200, "text/plain", NULL, "hello", 5), full);
}

Test(cm_http, reasons)
{
	cr_assert_str_eq(cm_http_reason(200), "OK");
	cr_assert_str_eq(cm_http_reason(101), "Switching Protocols");
	cr_assert_str_eq(cm_http_reason(431), "Request Header Fields Too Large");
	cr_assert_str_eq(cm_http_reason(503), "Service Unavailable");
}

static const char RESP101[] =
	"HTTP/1.1 101 Switching Protocols\r\n"
	"Upgrade: websocket\r\n"
	"Connection: Upgrade\r\n"
	"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	"\r\n";

Test(cm_http, parses_responses_at_every_split_point)
{
	size_t n = strlen(RESP101);
	for (size_t k = 0; k <= n; k++) {
		struct cm_http_resp r;
		char *part = malloc(k ? k : 1);
		memcpy(part, RESP101, k);
		int ret = cm_http_parse_response(part, k, &r);
		if (k < n) {
			cr_assert_eq(ret, 0, "prefix %zu gave %d", k, ret);
			free(part);
			continue;
		}
		cr_assert_eq(ret, (int)n);
		cr_assert_eq(r.status, 101);
		cr_assert_eq(r.minor, 1);
		cr_assert_eq(r.nheaders, 3);
		cr_assert(cm_str_ieq(r.upgrade, "websocket"));
		cr_assert(cm_http_has_token(r.connection, "upgrade"));
		cr_assert(cm_str_eq(r.ws_accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
		free(part);
	}
}

Test(cm_http, parses_other_responses)
{
	struct cm_http_resp r;
	const char *s = "HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\n\r\nabc";
	cr_assert_eq(cm_http_parse_response(s, strlen(s), &r), (int)strlen(s) - 3);
	cr_assert_eq(r.status, 404);
	cr_assert_eq(r.minor, 0);
	cr_assert(cm_str_eq(r.content_length, "3"));
	s = "HTTP/1.1 200\r\n\r\n";
	cr_assert_eq(cm_http_parse_response(s, strlen(s), &r), (int)strlen(s));
	cr_assert_eq(r.status, 200);
	s = "HTTP/1.1 426 \r\nSec-WebSocket-Version: 13\r\n\r\n";
	cr_assert_eq(cm_http_parse_response(s, strlen(s), &r), (int)strlen(s));
	cr_assert(cm_str_eq(r.ws_version, "13"));
}

Test(cm_http, rejects_bad_responses)
{
	struct cm_http_resp r;
	const char *bad[] = {
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 abc OK\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n",
		"HTTP/1.1 200OK\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
		"HTTP/1.1 101 S\r\nSec-WebSocket-Accept: a\r\nSec-WebSocket-Accept: b\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(cm_http_parse_response(bad[i], strlen(bad[i]), &r), -400,
			     "case %zu", i);
	const char *v2 = "HTTP/2.0 200 OK\r\n\r\n";
	cr_assert_eq(cm_http_parse_response(v2, strlen(v2), &r), -505);
}
