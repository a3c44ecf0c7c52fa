// fuzz-sources: common/cm_http.c common/cm_log.c
/* fuzz_http — cm_http_parse_request and cm_http_parse_response on arbitrary
 * bytes, whole and split: the first part (its length derived from the
 * first byte) is parsed alone in its own heap copy, as a server would on a
 * short read. Whenever the part gives an answer other than "incomplete", the
 * whole must give the same answer with the same fields; when the whole is
 * incomplete, so is the part. Results must lie inside the input. The query
 * getter, the token matcher and the accept key run on what was parsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cm_http.h"

static void check_in(const char *buf, size_t len, struct cm_str s)
{
	if (s.n == 0)
		return;
	if (s.p < buf || s.p + s.n > buf + len)
		abort();
}

/* Same field: both empty, or the same offset and length. */
static void same(const char *a, struct cm_str x, const char *b, struct cm_str y)
{
	if (x.n != y.n)
		abort();
	if (x.n && x.p - a != y.p - b)
		abort();
}

static void check_req(const char *buf, size_t len, int ret, const struct cm_http_req *r)
{
	const struct cm_str *f[] = { &r->method, &r->target, &r->path, &r->query, &r->host,
				     &r->upgrade, &r->connection, &r->ws_key, &r->ws_version,
				     &r->ws_protocol, &r->origin, &r->content_length };

	if (ret != 0 && ret != -400 && ret != -431 && ret != -505 &&
	    !(ret > 0 && (size_t)ret <= len && ret <= CM_HTTP_MAX_HEAD))
		abort();
	if (ret <= 0)
		return;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		check_in(buf, (size_t)ret, *f[i]);
	if (r->path.n == 0 || r->path.p[0] != '/' || r->nheaders > CM_HTTP_MAX_HEADERS ||
	    r->minor < 0 || r->minor > 9)
		abort();
	char out[64];
	int q = cm_http_query_get(r->query, "streams", out, sizeof(out));
	if (q < -2 || q >= (int)sizeof(out) || (q >= 0 && out[q] != 0))
		abort();
	(void)cm_http_has_token(r->connection, "upgrade");
	char key[29];
	cm_ws_accept_key(r->ws_key, key);
	if (strlen(key) != 28)
		abort();
}

static void same_req(const char *a, const struct cm_http_req *x, const char *b,
		     const struct cm_http_req *y)
{
	same(a, x->method, b, y->method);
	same(a, x->target, b, y->target);
	same(a, x->path, b, y->path);
	same(a, x->query, b, y->query);
	same(a, x->host, b, y->host);
	same(a, x->upgrade, b, y->upgrade);
	same(a, x->connection, b, y->connection);
	same(a, x->ws_key, b, y->ws_key);
	same(a, x->ws_version, b, y->ws_version);
	same(a, x->ws_protocol, b, y->ws_protocol);
	same(a, x->origin, b, y->origin);
	same(a, x->content_length, b, y->content_length);
	if (x->minor != y->minor || x->nheaders != y->nheaders)
		abort();
}

static void check_resp(const char *buf, size_t len, int ret, const struct cm_http_resp *r)
{
	if (ret != 0 && ret != -400 && ret != -431 && ret != -505 &&
	    !(ret > 0 && (size_t)ret <= len && ret <= CM_HTTP_MAX_HEAD))
		abort();
	if (ret <= 0)
		return;
	check_in(buf, (size_t)ret, r->upgrade);
	check_in(buf, (size_t)ret, r->connection);
	check_in(buf, (size_t)ret, r->ws_accept);
	check_in(buf, (size_t)ret, r->ws_version);
	check_in(buf, (size_t)ret, r->content_length);
	if (r->status < 100 || r->status > 999 || r->nheaders > CM_HTTP_MAX_HEADERS)
		abort();
}

static void same_resp(const char *a, const struct cm_http_resp *x, const char *b,
		      const struct cm_http_resp *y)
{
	same(a, x->upgrade, b, y->upgrade);
	same(a, x->connection, b, y->connection);
	same(a, x->ws_accept, b, y->ws_accept);
	same(a, x->ws_version, b, y->ws_version);
	same(a, x->content_length, b, y->content_length);
	if (x->status != y->status || x->minor != y->minor || x->nheaders != y->nheaders)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *whole = (const char *)data;
	size_t k = size ? (size_t)data[0] * size / 256 : 0;
	char *part = malloc(k ? k : 1);
	struct cm_http_req rw, rp;
	struct cm_http_resp sw, sp;
	int w, p;

	memcpy(part, data, k);

	w = cm_http_parse_request(whole, size, &rw);
	check_req(whole, size, w, &rw);
	p = cm_http_parse_request(part, k, &rp);
	check_req(part, k, p, &rp);
	if ((p != 0 && p != w) || (w == 0 && p != 0))
		abort();
	if (p > 0)
		same_req(part, &rp, whole, &rw);

	w = cm_http_parse_response(whole, size, &sw);
	check_resp(whole, size, w, &sw);
	p = cm_http_parse_response(part, k, &sp);
	check_resp(part, k, p, &sp);
	if ((p != 0 && p != w) || (w == 0 && p != 0))
		abort();
	if (p > 0)
		same_resp(part, &sp, whole, &sw);

	/* The whole input as a query string. */
	char out[32];
	int q = cm_http_query_get((struct cm_str){ whole, size }, "a", out, sizeof(out));
	if (q < -2 || q >= (int)sizeof(out) || (q >= 0 && out[q] != 0))
		abort();
	free(part);
	return 0;
}
