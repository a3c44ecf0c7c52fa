#include "ld_payload.h"

#include <string.h>
#include <time.h>

uint64_t ld_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static char *put_u64(char *o, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*o++ = tmp[--n];
	return o;
}

size_t ld_payload_encode(char *out, size_t cap, size_t size, const struct ld_payload *pl)
{
	char hdr[LD_PAYLOAD_MIN + 8], *o = hdr;
	size_t len;

	memcpy(o, "ld1:", 4);
	o += 4;
	o = put_u64(o, pl->step);
	*o++ = ':';
	o = put_u64(o, pl->stream);
	*o++ = ':';
	o = put_u64(o, pl->seq);
	*o++ = ':';
	o = put_u64(o, pl->send_ns);
	*o++ = ':';
	len = (size_t)(o - hdr);
	if (size < len)
		size = len;
	if (size > cap)
		return 0;
	memcpy(out, hdr, len);
	memset(out + len, 'x', size - len);
	return size;
}

/* Reads decimal digits up to ':' into *v. Returns the position after ':' or
 * NULL. At most 20 digits, no overflow. */
static const uint8_t *get_u64(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	const uint8_t *start = p;

	while (p < end && *p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return NULL;
		x = x * 10 + d;
		p++;
	}
	if (p == start || p == end || *p != ':')
		return NULL;
	*v = x;
	return p + 1;
}

int ld_payload_decode(const uint8_t *p, size_t n, struct ld_payload *pl)
{
	const uint8_t *end = p + n;
	uint64_t step, stream, seq, ns;

	if (n < 4 || memcmp(p, "ld1:", 4) != 0)
		return -1;
	p += 4;
	if (!(p = get_u64(p, end, &step)) || !(p = get_u64(p, end, &stream)) ||
	    !(p = get_u64(p, end, &seq)) || !(p = get_u64(p, end, &ns)))
		return -1;
	if (step > UINT32_MAX || stream > UINT32_MAX)
		return -1;
	pl->step = (uint32_t)step;
	pl->stream = (uint32_t)stream;
	pl->seq = seq;
	pl->send_ns = ns;
	return 0;
}

static const uint8_t *find(const uint8_t *p, const uint8_t *end, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(end - p) < n)
		return NULL;
	return memmem(p, (size_t)(end - p), lit, n);
}

/* The JSON string starting right after its opening quote: sets its length
 * (up to the closing quote) and whether it holds an escape. NULL when it is
 * not terminated. */
static const uint8_t *json_str(const uint8_t *p, const uint8_t *end, size_t *len, bool *esc)
{
	const uint8_t *s = p;

	*esc = false;
	while (p < end && *p != '"') {
		if (*p == '\\') {
			*esc = true;
			if (++p == end)
				return NULL;
		}
		p++;
	}
	if (p == end)
		return NULL;
	*len = (size_t)(p - s);
	return s;
}

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/* The value after "key": (whitespace allowed around the colon), or NULL. */
static const uint8_t *find_key(const uint8_t *p, const uint8_t *end, const char *key)
{
	const uint8_t *q = p;

	while ((q = find(q, end, key))) {
		const uint8_t *v = skip_ws(q + strlen(key), end);
		if (v < end && *v == ':')
			return skip_ws(v + 1, end);
		q += strlen(key);
	}
	return NULL;
}

/* The gateway's exact layout, read front to back without searching:
 * {"push":{"stream":"S","offset":N,"data":"D"}} (optionally with
 * ,"encoding":"base64" before the closing braces). Returns 1, or 0 when the
 * frame is laid out differently (the caller then searches). */
static int push_fast(const uint8_t *p, const uint8_t *end, struct ld_push *push)
{
	static const char pre[] = "{\"push\":{\"stream\":\"";
	const uint8_t *q = p + sizeof(pre) - 1, *s;
	uint64_t off = 0;
	bool esc;

	if ((size_t)(end - p) < sizeof(pre) - 1 || memcmp(p, pre, sizeof(pre) - 1) != 0)
		return 0;
	if (!(s = json_str(q, end, &push->stream_len, &esc)) || esc)
		return 0;
	push->stream = s;
	q = s + push->stream_len + 1;
	if (end - q < 11 || memcmp(q, ",\"offset\":", 10) != 0)
		return 0;
	q += 10;
	if (*q < '0' || *q > '9')
		return 0;
	while (q < end && *q >= '0' && *q <= '9') {
		if (off > (UINT64_MAX - 9) / 10)
			return 0;
		off = off * 10 + (uint64_t)(*q++ - '0');
	}
	if (end - q < 9 || memcmp(q, ",\"data\":\"", 9) != 0)
		return 0;
	q += 9;
	if (!(s = json_str(q, end, &push->data_len, &push->escaped)))
		return 0;
	push->data = s;
	push->offset = off;
	q = s + push->data_len + 1;
	if (end - q == 2 && q[0] == '}' && q[1] == '}') {
		push->base64 = false;
		return 1;
	}
	if (end - q == 23 && memcmp(q, ",\"encoding\":\"base64\"}}", 23) == 0) {
		push->base64 = true;
		return 1;
	}
	return 0;
}

int ld_push_parse_json(const uint8_t *p, size_t n, struct ld_push *push)
{
	const uint8_t *end = p + n, *q, *s;
	uint64_t off = 0;
	bool esc;

	if (push_fast(p, end, push))
		return 1;

	p = skip_ws(p, end);
	while (end > p && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' || end[-1] == '\t'))
		end--;
	if (p == end || *p != '{' || end[-1] != '}')
		return -1;
	q = find_key(p, end, "\"push\"");
	if (!q)
		return find_key(p, end, "\"id\"") ? 0 : -1;
	memset(push, 0, sizeof(*push));
	if (!(q = find_key(p, end, "\"stream\"")) || *q != '"')
		return -1;
	if (!(s = json_str(q + 1, end, &push->stream_len, &esc)) || esc)
		return -1;
	push->stream = s;
	if ((q = find_key(p, end, "\"offset\""))) {
		if (q == end || *q < '0' || *q > '9')
			return -1;
		while (q < end && *q >= '0' && *q <= '9') {
			if (off > (UINT64_MAX - 9) / 10)
				return -1;
			off = off * 10 + (uint64_t)(*q++ - '0');
		}
	}
	push->offset = off;
	if (!(q = find_key(p, end, "\"data\"")) || q == end || *q != '"')
		return -1;
	if (!(s = json_str(q + 1, end, &push->data_len, &push->escaped)))
		return -1;
	push->data = s;
	q = find_key(p, end, "\"encoding\"");
	push->base64 = q && (size_t)(end - q) >= 8 && memcmp(q, "\"base64\"", 8) == 0;
	return 1;
}
