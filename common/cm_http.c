/* cm_http — HTTP/1.1 request and response heads, query strings, the
 * WebSocket accept key, response writing.
 *
 * Choices (the header fixes the API; these are the rules behind it):
 * - Lines end in CRLF; a bare LF is tolerated (friendlier to hand-written
 *   clients). A CR anywhere else is a control character: 400.
 * - A parse looks at no more than CM_HTTP_MAX_HEAD bytes. It checks the
 *   start line as soon as that line is complete (so garbage such as a TLS
 *   ClientHello on the plain port is refused at once), then looks for the
 *   blank line; only a complete head has its header lines parsed. The checks
 *   run in this fixed order over the same window, so a prefix of the input
 *   that gives an answer other than 0 gives the same answer as the whole.
 * - Header names are tokens followed at once by ':'; a line starting with
 *   whitespace (obs-fold) is 400. Values are trimmed of SP/HTAB and may hold
 *   visible ASCII, SP, HTAB and bytes >= 0x80; any other control byte is 400.
 * - Duplicates: Host, Content-Length, Sec-WebSocket-Key, Sec-WebSocket-Version
 *   and Sec-WebSocket-Accept twice is 400; for the other headers we act on
 *   the first line wins.
 * - Request target: origin-form only (starts with '/'), visible ASCII. */
#include "cm_http.h"
#include "cm_log.h"

#include <openssl/base64.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

static const char *const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* RFC 9110 tchar: ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* Field-value bytes: VCHAR, SP, HTAB, obs-text. */
static bool is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

bool cm_str_ieq(struct cm_str s, const char *lit)
{
	size_t n = strlen(lit);
	if (s.n != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s.p[i]) != lower(lit[i]))
			return false;
	return true;
}

bool cm_str_eq(struct cm_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n == n && (n == 0 || memcmp(s.p, lit, n) == 0);
}

bool cm_http_has_token(struct cm_str value, const char *token)
{
	size_t i = 0;

	while (i < value.n) {
		size_t a, b;
		while (i < value.n && (is_ows(value.p[i]) || value.p[i] == ','))
			i++;
		a = i;
		while (i < value.n && value.p[i] != ',')
			i++;
		b = i;
		while (b > a && is_ows(value.p[b - 1]))
			b--;
		if (b > a && cm_str_ieq((struct cm_str){ value.p + a, b - a }, token))
			return true;
	}
	return false;
}

/* The line starting at off in buf[0..len): its content (without CR LF) in
 * *line and the offset after its LF. Returns false when no LF yet. */
static bool next_line(const char *buf, size_t len, size_t off, struct cm_str *line, size_t *next)
{
	const char *lf = memchr(buf + off, '\n', len - off);
	size_t end;

	if (!lf)
		return false;
	end = (size_t)(lf - buf);
	*next = end + 1;
	if (end > off && buf[end - 1] == '\r')
		end--;
	line->p = buf + off;
	line->n = end - off;
	return true;
}

/* Length of the head through its blank line within buf[0..len), or 0 when
 * the blank line has not arrived. */
static size_t find_head_end(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;

	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		if (p < end && *p == '\n')
			return (size_t)(p + 1 - buf);
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			return (size_t)(p + 2 - buf);
	}
	return 0;
}

/* "HTTP/1.x": 0 and *minor, -505 for another well-formed version, -400. */
static int parse_version(struct cm_str v, int *minor)
{
	if (v.n != 8 || memcmp(v.p, "HTTP/", 5) != 0 || v.p[6] != '.' ||
	    v.p[5] < '0' || v.p[5] > '9' || v.p[7] < '0' || v.p[7] > '9')
		return -400;
	if (v.p[5] != '1')
		return -505;
	*minor = v.p[7] - '0';
	return 0;
}

static int parse_request_line(struct cm_str l, struct cm_http_req *req)
{
	const char *sp1, *sp2, *end = l.p + l.n;
	const char *q;

	sp1 = memchr(l.p, ' ', l.n);
	if (!sp1 || sp1 == l.p)
		return -400;
	for (const char *c = l.p; c < sp1; c++)
		if (!is_tchar((unsigned char)*c))
			return -400;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1)
		return -400;
	for (const char *c = sp1 + 1; c < sp2; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return -400;
	/* The version is checked before the target: an HTTP/2 preface
	 * ("PRI * HTTP/2.0") is 505, not 400. */
	int ret = parse_version((struct cm_str){ sp2 + 1, (size_t)(end - sp2 - 1) }, &req->minor);
	if (ret < 0)
		return ret;
	if (sp1[1] != '/')
		return -400;
	req->method = (struct cm_str){ l.p, (size_t)(sp1 - l.p) };
	req->target = (struct cm_str){ sp1 + 1, (size_t)(sp2 - sp1 - 1) };
	q = memchr(req->target.p, '?', req->target.n);
	if (q) {
		req->path = (struct cm_str){ req->target.p, (size_t)(q - req->target.p) };
		req->query = (struct cm_str){ q + 1, (size_t)(req->target.p + req->target.n - q - 1) };
	} else {
		req->path = req->target;
		req->query = (struct cm_str){ req->target.p + req->target.n, 0 };
	}
	return 0;
}

static int parse_status_line(struct cm_str l, struct cm_http_resp *resp)
{
	int ret;

	if (l.n < 12 || l.p[8] != ' ')
		return -400;
	if ((ret = parse_version((struct cm_str){ l.p, 8 }, &resp->minor)) < 0)
		return ret;
	for (int i = 9; i < 12; i++)
		if (l.p[i] < '0' || l.p[i] > '9')
			return -400;
	resp->status = (l.p[9] - '0') * 100 + (l.p[10] - '0') * 10 + (l.p[11] - '0');
	if (resp->status < 100)
		return -400;
	/* "HTTP/1.1 200" without a reason is tolerated; else SP reason. */
	if (l.n > 12 && l.p[12] != ' ')
		return -400;
	for (size_t i = 12; i < l.n; i++)
		if (!is_value_char((unsigned char)l.p[i]))
			return -400;
	return 0;
}

/* One header line: name and trimmed value, or -400. */
static int parse_header(struct cm_str l, struct cm_str *name, struct cm_str *value)
{
	const char *colon = memchr(l.p, ':', l.n);
	const char *a, *b;

	if (!colon || colon == l.p)
		return -400;
	for (const char *c = l.p; c < colon; c++)
		if (!is_tchar((unsigned char)*c))
			return -400; /* includes obs-fold and "Name :" */
	for (const char *c = colon + 1; c < l.p + l.n; c++)
		if (!is_value_char((unsigned char)*c))
			return -400;
	a = colon + 1;
	b = l.p + l.n;
	while (a < b && is_ows(*a))
		a++;
	while (b > a && is_ows(b[-1]))
		b--;
	name->p = l.p;
	name->n = (size_t)(colon - l.p);
	value->p = a;
	value->n = (size_t)(b - a);
	return 0;
}

/* Stores value in *slot; a repeat is 400 when unique, else ignored. */
static int keep(struct cm_str *slot, struct cm_str value, bool unique, bool *seen)
{
	if (*seen)
		return unique ? -400 : 0;
	*seen = true;
	*slot = value;
	return 0;
}

struct hdr_slot {
	const char *name;
	size_t off;   /* offset of the struct cm_str in the result */
	bool unique;
};

static const struct hdr_slot REQ_SLOTS[] = {
	{ "host", offsetof(struct cm_http_req, host), true },
	{ "upgrade", offsetof(struct cm_http_req, upgrade), false },
	{ "connection", offsetof(struct cm_http_req, connection), false },
	{ "sec-websocket-key", offsetof(struct cm_http_req, ws_key), true },
	{ "sec-websocket-version", offsetof(struct cm_http_req, ws_version), true },
	{ "sec-websocket-protocol", offsetof(struct cm_http_req, ws_protocol), false },
	{ "origin", offsetof(struct cm_http_req, origin), false },
	{ "content-length", offsetof(struct cm_http_req, content_length), true },
};

static const struct hdr_slot RESP_SLOTS[] = {
	{ "upgrade", offsetof(struct cm_http_resp, upgrade), false },
	{ "connection", offsetof(struct cm_http_resp, connection), false },
	{ "sec-websocket-accept", offsetof(struct cm_http_resp, ws_accept), true },
	{ "sec-websocket-version", offsetof(struct cm_http_resp, ws_version), true },
	{ "content-length", offsetof(struct cm_http_resp, content_length), true },
};

#define MAX_SLOTS 8

/* The header lines of a complete head buf[off..head_len). */
static int parse_headers(const char *buf, size_t head_len, size_t off, void *res,
			 const struct hdr_slot *slots, size_t nslots, unsigned *nheaders)
{
	bool seen[MAX_SLOTS] = { false };
	struct cm_str line, name, value;
	size_t next;

	while (next_line(buf, head_len, off, &line, &next) && line.n > 0) {
		int ret;
		if (++*nheaders > CM_HTTP_MAX_HEADERS)
			return -431;
		if ((ret = parse_header(line, &name, &value)) < 0)
			return ret;
		for (size_t i = 0; i < nslots; i++) {
			if (!cm_str_ieq(name, slots[i].name))
				continue;
			ret = keep((struct cm_str *)((char *)res + slots[i].off), value,
				   slots[i].unique, &seen[i]);
			if (ret < 0)
				return ret;
			break;
		}
		off = next;
	}
	return 0;
}

/* The common frame of both parses; see the comment at the top. */
static int parse_head(const char *buf, size_t len, void *res, bool request,
		      unsigned *nheaders)
{
	size_t win = len < CM_HTTP_MAX_HEAD ? len : CM_HTTP_MAX_HEAD;
	struct cm_str line;
	size_t next, head_len;
	int ret;

	if (!next_line(buf, win, 0, &line, &next))
		return len >= CM_HTTP_MAX_HEAD ? -431 : 0;
	for (size_t i = 0; i < line.n; i++)
		if (!is_value_char((unsigned char)line.p[i]) || line.p[i] == '\t')
			return -400;
	ret = request ? parse_request_line(line, res) : parse_status_line(line, res);
	if (ret < 0)
		return ret;
	/* The start line's own LF may be the first of the blank line. */
	head_len = find_head_end(buf, win);
	if (head_len == 0)
		return len >= CM_HTTP_MAX_HEAD ? -431 : 0;
	if (request)
		ret = parse_headers(buf, head_len, next, res, REQ_SLOTS,
				    CM_ARRAY_LEN(REQ_SLOTS), nheaders);
	else
		ret = parse_headers(buf, head_len, next, res, RESP_SLOTS,
				    CM_ARRAY_LEN(RESP_SLOTS), nheaders);
	return ret < 0 ? ret : (int)head_len;
}

int cm_http_parse_request(const char *buf, size_t len, struct cm_http_req *req)
{
	memset(req, 0, sizeof(*req));
	return parse_head(buf, len, req, true, &req->nheaders);
}

int cm_http_parse_response(const char *buf, size_t len, struct cm_http_resp *resp)
{
	memset(resp, 0, sizeof(*resp));
	return parse_head(buf, len, resp, false, &resp->nheaders);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* URL-decodes s into out (cap bytes, NUL included) when out is not NULL.
 * Returns the decoded length or -2 (bad %XX, or too long for out). */
static int url_decode(struct cm_str s, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < s.n; i++) {
		char c = s.p[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;
			if (i + 2 >= s.n)
				return -2;
			hi = hexval(s.p[i + 1]);
			lo = hexval(s.p[i + 2]);
			if (hi < 0 || lo < 0)
				return -2;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (out) {
			if (n + 1 >= cap)
				return -2;
			out[n] = c;
		}
		n++;
	}
	if (out)
		out[n] = 0;
	return n > (size_t)0x7fffffff ? -2 : (int)n;
}

/* Whether the raw query name s decodes to name. */
static bool name_matches(struct cm_str s, const char *name)
{
	char tmp[256];
	size_t n = strlen(name);
	int d;

	if (s.n == n && memcmp(s.p, name, n) == 0)
		return true;
	if (!memchr(s.p, '%', s.n) && !memchr(s.p, '+', s.n))
		return false;
	d = url_decode(s, tmp, sizeof(tmp));
	return d >= 0 && (size_t)d == n && memcmp(tmp, name, n) == 0;
}

int cm_http_query_get(struct cm_str query, const char *name, char *out, size_t cap)
{
	size_t i = 0;

	while (i < query.n) {
		const char *amp = memchr(query.p + i, '&', query.n - i);
		size_t end = amp ? (size_t)(amp - query.p) : query.n;
		struct cm_str pair = { query.p + i, end - i };
		const char *eq = memchr(pair.p, '=', pair.n);
		struct cm_str k = pair, v = { pair.p + pair.n, 0 };

		if (eq) {
			k.n = (size_t)(eq - pair.p);
			v.p = eq + 1;
			v.n = (size_t)(pair.p + pair.n - eq - 1);
		}
		if (pair.n > 0 && name_matches(k, name)) {
			if (cap == 0)
				return -2;
			return url_decode(v, out, cap);
		}
		i = end + 1;
	}
	return -1;
}

void cm_ws_accept_key(struct cm_str key, char out[29])
{
	uint8_t md[SHA_DIGEST_LENGTH];
	SHA_CTX ctx;

	SHA1_Init(&ctx);
	SHA1_Update(&ctx, key.p, key.n);
	SHA1_Update(&ctx, WS_GUID, strlen(WS_GUID));
	SHA1_Final(md, &ctx);
	EVP_EncodeBlock((uint8_t *)out, md, sizeof(md)); /* 28 chars and a NUL */
}

const char *cm_http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* Interim (1xx) responses carry neither Content-Length nor Connection:
 * close (a 101 names its own Connection: Upgrade in extra_headers); 204 and
 * 304 carry no Content-Length. A NULL body with body_len > 0 writes the
 * head of that body only (HEAD requests). */
size_t cm_http_write_response(char *out, size_t cap, int status, const char *content_type,
			      const char *extra_headers, const char *body, size_t body_len)
{
	bool interim = status >= 100 && status < 200;
	bool no_length = interim || status == 204 || status == 304;
	size_t n = 0;
	int w;

#define PUT(...)                                                         \
	do {                                                             \
		w = snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__); \
		if (w < 0 || (size_t)w >= cap - n)                       \
			return 0;                                        \
		n += (size_t)w;                                          \
	} while (0)

	if (cap == 0)
		return 0;
	PUT("HTTP/1.1 %d %s\r\n", status, cm_http_reason(status));
	if (content_type)
		PUT("Content-Type: %s\r\n", content_type);
	if (!no_length)
		PUT("Content-Length: %zu\r\n", body_len);
	if (!interim)
		PUT("Connection: close\r\n");
	if (extra_headers)
		PUT("%s", extra_headers);
	PUT("\r\n");
#undef PUT
	if (body && body_len) {
		if (body_len > cap - n)
			return 0;
		memcpy(out + n, body, body_len);
		n += body_len;
	}
	return n;
}
