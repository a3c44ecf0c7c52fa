/* cm_http — the HTTP/1.1 we need: parsing a request head (the WebSocket
 * upgrade, the admin endpoints) and a response head (clients of our own),
 * query strings, the Sec-WebSocket-Accept key, and response writing.
 *
 * Parsing is over the bytes received so far: it answers "incomplete" until
 * the blank line arrives, so a request split at any byte parses the same as
 * a whole one. Strings in the results point into the caller's buffer. */
#ifndef CM_HTTP_H
#define CM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CM_HTTP_MAX_HEAD 8192   /* request head bytes, through the blank line */
#define CM_HTTP_MAX_HEADERS 64

struct cm_str {
	const char *p;
	size_t n;
};

struct cm_http_req {
	struct cm_str method;
	struct cm_str target;     /* as sent: path[?query] */
	struct cm_str path;
	struct cm_str query;      /* after '?', without it; n = 0 when none */
	int minor;                /* HTTP/1.<minor> */
	unsigned nheaders;
	/* headers we act on (n = 0 when absent); names match case-insensitively */
	struct cm_str host, upgrade, connection, ws_key, ws_version, ws_protocol,
		origin, content_length;
};

/* Parses a request head at buf[0..len). Returns the head's length through
 * the blank line when complete, 0 when more bytes are needed (and len is
 * still under CM_HTTP_MAX_HEAD), or a negative HTTP status: -400 malformed,
 * -431 head larger than CM_HTTP_MAX_HEAD or more than CM_HTTP_MAX_HEADERS
 * headers, -505 not HTTP/1.x. */
int cm_http_parse_request(const char *buf, size_t len, struct cm_http_req *req);

struct cm_http_resp {
	int status;
	int minor;
	unsigned nheaders;
	struct cm_str upgrade, connection, ws_accept, ws_version, content_length;
};

/* Parses a response head, with the same returns as cm_http_parse_request. */
int cm_http_parse_response(const char *buf, size_t len, struct cm_http_resp *resp);

/* True when the comma-separated header value contains token (case-insensitive). */
bool cm_http_has_token(struct cm_str value, const char *token);

/* Case-insensitive equality of s with the C string lit. */
bool cm_str_ieq(struct cm_str s, const char *lit);
bool cm_str_eq(struct cm_str s, const char *lit);

/* Finds parameter `name` in a query string (a=1&b=2) and writes its
 * URL-decoded value (%XX and '+') NUL-terminated into out. Returns the
 * decoded length, -1 when absent, -2 when malformed (bad %XX) or longer
 * than cap - 1. The first occurrence wins. */
int cm_http_query_get(struct cm_str query, const char *name, char *out, size_t cap);

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)), 28
 * characters and a NUL. */
void cm_ws_accept_key(struct cm_str key, char out[29]);

/* Writes a complete response (status line, Content-Length, Connection:
 * close, extra headers given as "Name: value\r\n" lines or NULL, body or
 * NULL). Returns the length, or 0 when cap is too small. */
size_t cm_http_write_response(char *out, size_t cap, int status, const char *content_type,
			      const char *extra_headers, const char *body, size_t body_len);

/* "OK", "Bad Request", … for the statuses herald sends. */
const char *cm_http_reason(int status);

#endif
