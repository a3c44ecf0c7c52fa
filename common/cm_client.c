/* cm_client — the client protocol (CONTRACT.md), JSON and protobuf.
 *
 * JSON commands are read by a small strict scanner of our own rather than
 * cJSON: cJSON 1.7.15 keeps no string lengths (a payload holding \u0000
 * would be cut short), rounds ids through a double (2^53 + 1 would pass as
 * 2^53), and builds a tree we would walk once and free. The scanner
 * validates the whole frame against RFC 8259 in one pass and remembers
 * where the few values we need are; strings are unescaped into one buffer.
 * It does not check that the text is UTF-8: the WebSocket reader already
 * did for text frames.
 *
 * Extension to the contract: a JSON publish may carry
 * "encoding":"base64", and "data" is then the base64 of a binary payload
 * (the mirror of how pushes carry payloads that are not UTF-8).
 *
 * The push encoder is the hot path: it measures the frame exactly in one
 * scan (8 bytes at a time where nothing needs escaping), allocates once,
 * and writes straight into the packet. */
#include "cm_client.h"
#include "cm_pb.h"
#include "cm_b64.h"
#include "cm_log.h"
#include "cm_packet.h"
#include "cm_utf8.h"
#include "cm_ws.h"

#include "proto/client.pb-c.h"

#include <stdio.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define JS_MAX_DEPTH 64

bool cm_stream_valid(const char *s, size_t n)
{
	if (n == 0 || n > CM_STREAM_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == ':' || c == '.' || c == '-')
			continue;
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- scanner */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether any byte of w needs escaping (< 0x20, '"' or '\\'). Exact as a
 * whole, though not per byte. */
static inline bool word_special(uint64_t w)
{
	uint64_t lt = (w - ONES * 0x20) & ~w;
	uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
	uint64_t zq = (q - ONES) & ~q, zb = (b - ONES) & ~b;
	return ((lt | zq | zb) & HIGHS) != 0;
}

/* Bytes a byte takes inside a JSON string. */
static const uint8_t esc_len[256] = {
	[0x00 ... 0x07] = 6, ['\b'] = 2, ['\t'] = 2, ['\n'] = 2, [0x0b] = 6, ['\f'] = 2,
	['\r'] = 2, [0x0e ... 0x1f] = 6, [0x20 ... 0x21] = 1, ['"'] = 2, [0x23 ... 0x5b] = 1,
	['\\'] = 2, [0x5d ... 0xff] = 1,
};

#ifdef __SSE2__
/* Bit i set when p[i] needs escaping, over 16 bytes. */
static inline unsigned special16(__m128i x)
{
	const __m128i c1f = _mm_set1_epi8(0x1f), cq = _mm_set1_epi8('"'), cb = _mm_set1_epi8('\\');
	__m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, c1f), x);
	__m128i qb = _mm_or_si128(_mm_cmpeq_epi8(x, cq), _mm_cmpeq_epi8(x, cb));
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, qb));
}
#endif

/* The first byte in [p, end) that needs escaping, or end. */
static inline const uint8_t *special_skip(const uint8_t *p, const uint8_t *end)
{
#ifdef __SSE2__
	while (end - p >= 16) {
		unsigned mask = special16(_mm_loadu_si128((const __m128i *)(const void *)p));
		if (mask)
			return p + __builtin_ctz(mask);
		p += 16;
	}
#endif
	while (end - p >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		if (word_special(w))
			break;
		p += 8;
	}
	while (p < end && esc_len[*p] == 1)
		p++;
	return p;
}


enum js_type { J_NONE = 0, J_STR, J_NUM, J_OBJ, J_ARR, J_TRUE, J_FALSE, J_NULL };

struct js {
	const uint8_t *p, *end;
};

/* A scanned value: strings are the raw text between the quotes (esc when
 * it holds a backslash), numbers their text, containers their whole text. */
struct jval {
	enum js_type type;
	bool esc;
	const uint8_t *s, *e;
};

static inline void js_ws(struct js *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at p (p + 4 <= end checked by the caller); -1 if not. */
static long hex4(const uint8_t *p)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* At '"': scans a string, validating escapes (surrogates must pair). */
static int js_string(struct js *j, struct jval *v)
{
	const uint8_t *p = j->p, *end = j->end;

	if (p >= end || *p != '"')
		return -1;
	p++;
	v->type = J_STR;
	v->esc = false;
	v->s = p;
	for (;;) {
		p = special_skip(p, end);
		if (p >= end)
			return -1;
		uint8_t c = *p;
		if (c == '"')
			break;
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			p++;
			continue;
		}
		v->esc = true;
		if (p + 1 >= end)
			return -1;
		switch (p[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			p += 2;
			break;
		case 'u': {
			if (end - p < 6)
				return -1;
			long u = hex4(p + 2);
			if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
				return -1;
			p += 6;
			if (u >= 0xD800 && u <= 0xDBFF) {
				if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
					return -1;
				long lo = hex4(p + 2);
				if (lo < 0xDC00 || lo > 0xDFFF)
					return -1;
				p += 6;
			}
			break;
		}
		default:
			return -1;
		}
	}
	v->e = p;
	j->p = p + 1;
	return 0;
}

/* Unescapes a string scanned by js_string into out (room for e - s bytes:
 * no escape decodes longer than it is written). Returns the length. */
static size_t js_unescape(const uint8_t *s, const uint8_t *e, uint8_t *out)
{
	uint8_t *o = out;

	while (s < e) {
		const uint8_t *bs = memchr(s, '\\', (size_t)(e - s));
		size_t run = bs ? (size_t)(bs - s) : (size_t)(e - s);
		memmove(o, s, run);
		o += run;
		s += run;
		if (!bs)
			break;
		switch (s[1]) {
		case 'b': *o++ = '\b'; s += 2; continue;
		case 'f': *o++ = '\f'; s += 2; continue;
		case 'n': *o++ = '\n'; s += 2; continue;
		case 'r': *o++ = '\r'; s += 2; continue;
		case 't': *o++ = '\t'; s += 2; continue;
		case 'u': break;
		default: *o++ = s[1]; s += 2; continue;
		}
		uint32_t u = (uint32_t)hex4(s + 2);
		s += 6;
		if (u >= 0xD800 && u <= 0xDBFF) {
			uint32_t lo = (uint32_t)hex4(s + 2);
			s += 6;
			u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
		}
		if (u < 0x80) {
			*o++ = (uint8_t)u;
		} else if (u < 0x800) {
			*o++ = (uint8_t)(0xC0 | u >> 6);
			*o++ = (uint8_t)(0x80 | (u & 0x3F));
		} else if (u < 0x10000) {
			*o++ = (uint8_t)(0xE0 | u >> 12);
			*o++ = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
			*o++ = (uint8_t)(0x80 | (u & 0x3F));
		} else {
			*o++ = (uint8_t)(0xF0 | u >> 18);
			*o++ = (uint8_t)(0x80 | ((u >> 12) & 0x3F));
			*o++ = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
			*o++ = (uint8_t)(0x80 | (u & 0x3F));
		}
	}
	return (size_t)(o - out);
}

static inline bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int js_number(struct js *j, struct jval *v)
{
	const uint8_t *p = j->p, *end = j->end;

	v->type = J_NUM;
	v->s = p;
	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return -1;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && is_digit(*p))
			p++;
	} else {
		return -1;
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !is_digit(*p))
			return -1;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return -1;
		while (p < end && is_digit(*p))
			p++;
	}
	v->e = p;
	j->p = p;
	return 0;
}

static int js_literal(struct js *j, const char *lit, size_t n)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return -1;
	j->p += n;
	return 0;
}

/* At '{' after whitespace: enters an object. */
static int js_obj_open(struct js *j)
{
	js_ws(j);
	if (j->p >= j->end || *j->p != '{')
		return -1;
	j->p++;
	return 0;
}

/* Reads the next member's key and its ':'. Returns 1 with *key set and the
 * scanner at the value, 0 after the closing '}', -1 on a syntax error.
 * *count is the caller's member counter, 0 before the first call. */
static int js_obj_next(struct js *j, unsigned *count, struct jval *key)
{
	js_ws(j);
	if (j->p >= j->end)
		return -1;
	if (*j->p == '}') {
		j->p++;
		return 0;
	}
	if (*count) {
		if (*j->p != ',')
			return -1;
		j->p++;
		js_ws(j);
	}
	if (js_string(j, key))
		return -1;
	js_ws(j);
	if (j->p >= j->end || *j->p != ':')
		return -1;
	j->p++;
	(*count)++;
	return 1;
}

/* Scans (validates and skips) one value; depth counts enclosing containers. */
static int js_value(struct js *j, struct jval *v, int depth)
{
	struct jval k;
	unsigned count = 0;
	int r;

	js_ws(j);
	if (j->p >= j->end)
		return -1;
	v->esc = false;
	v->s = j->p;
	switch (*j->p) {
	case '"':
		return js_string(j, v);
	case '{':
		if (depth >= JS_MAX_DEPTH)
			return -1;
		j->p++;
		while ((r = js_obj_next(j, &count, &k)) == 1) {
			struct jval sub;
			if (js_value(j, &sub, depth + 1))
				return -1;
		}
		if (r < 0)
			return -1;
		v->type = J_OBJ;
		break;
	case '[':
		if (depth >= JS_MAX_DEPTH)
			return -1;
		j->p++;
		js_ws(j);
		if (j->p < j->end && *j->p == ']') {
			j->p++;
		} else {
			for (;;) {
				struct jval sub;
				if (js_value(j, &sub, depth + 1))
					return -1;
				js_ws(j);
				if (j->p >= j->end)
					return -1;
				if (*j->p == ']') {
					j->p++;
					break;
				}
				if (*j->p != ',')
					return -1;
				j->p++;
			}
		}
		v->type = J_ARR;
		break;
	case 't':
		v->type = J_TRUE;
		return js_literal(j, "true", 4);
	case 'f':
		v->type = J_FALSE;
		return js_literal(j, "false", 5);
	case 'n':
		v->type = J_NULL;
		return js_literal(j, "null", 4);
	default:
		return js_number(j, v);
	}
	v->e = j->p;
	return 0;
}

/* Whether a key (as scanned) spells lit. */
static bool js_key_eq(const struct jval *k, const char *lit)
{
	size_t n = strlen(lit), raw = (size_t)(k->e - k->s);

	if (!k->esc)
		return raw == n && memcmp(k->s, lit, n) == 0;
	/* an escape takes at most 6 bytes per decoded byte: a key written in
	 * more than 6 * n bytes decodes longer than lit */
	uint8_t buf[6 * 16];
	CM_ASSERT(n <= 16);
	if (raw > 6 * n)
		return false;
	return js_unescape(k->s, k->e, buf) == n && memcmp(buf, lit, n) == 0;
}

/* The exact value of a JSON number when it is an integer in 0..max (1.0,
 * 1e3 and 10E-1 are integers too); -1 otherwise (negative, fractional or
 * larger than max). Computed from the digits, never through a double. */
static int js_uint(const struct jval *v, uint64_t max, uint64_t *out)
{
	const uint8_t *p = v->s, *e = v->e, *mant_end;
	int64_t ndig = 0, fraclen = 0, first_nz = -1, last_nz = -1, exp = 0;
	bool in_frac = false;

	if (v->type != J_NUM || p >= e || *p == '-')
		return -1;
	for (mant_end = p; mant_end < e && *mant_end != 'e' && *mant_end != 'E'; mant_end++) {
		if (*mant_end == '.') {
			in_frac = true;
			continue;
		}
		if (*mant_end != '0') {
			if (first_nz < 0)
				first_nz = ndig;
			last_nz = ndig;
		}
		fraclen += in_frac;
		ndig++;
	}
	if (mant_end < e) {
		const uint8_t *q = mant_end + 1;
		bool neg = false;
		if (*q == '+' || *q == '-')
			neg = *q++ == '-';
		for (; q < e; q++)
			if (exp < 1000000000)
				exp = exp * 10 + (*q - '0');
		if (neg)
			exp = -exp;
	}
	if (first_nz < 0) {
		*out = 0;
		return 0;
	}
	int64_t sig = last_nz - first_nz + 1;
	int64_t scale = exp - fraclen + (ndig - 1 - last_nz); /* value = sig digits * 10^scale */
	if (scale < 0 || sig + scale > 20)
		return -1;
	uint64_t val = 0;
	int64_t idx = 0;
	for (const uint8_t *q = p; q < mant_end; q++) {
		if (*q == '.')
			continue;
		if (idx >= first_nz && idx <= last_nz)
			if (__builtin_mul_overflow(val, 10, &val) ||
			    __builtin_add_overflow(val, (uint64_t)(*q - '0'), &val))
				return -1;
		idx++;
	}
	for (int64_t i = 0; i < scale; i++)
		if (__builtin_mul_overflow(val, 10, &val))
			return -1;
	if (val > max)
		return -1;
	*out = val;
	return 0;
}

/* --------------------------------------------------------- command parse */

/* What a parsed command keeps: the protobuf message it points into, or the
 * unescaped payload. */
struct cmd_priv {
	Herald__Client__Command *pb;
	uint8_t buf[];
};

static int fail(const char **errmsg, const char *msg, int code)
{
	*errmsg = msg;
	return code;
}

/* A stream's raw JSON string into cmd->stream; 0, or 422 when invalid. */
static int take_stream(struct cm_cmd *cmd, const struct jval *v)
{
	size_t raw = (size_t)(v->e - v->s), n;

	if (!v->esc) {
		if (raw > CM_STREAM_MAX)
			return CM_ERR_BAD_STREAM;
		memcpy(cmd->stream, v->s, raw);
		n = raw;
	} else {
		/* an escape is at most 6 bytes per decoded byte */
		uint8_t buf[CM_STREAM_MAX * 6];
		if (raw > sizeof(buf))
			return CM_ERR_BAD_STREAM;
		n = js_unescape(v->s, v->e, buf);
		if (n > CM_STREAM_MAX)
			return CM_ERR_BAD_STREAM;
		memcpy(cmd->stream, buf, n);
	}
	cmd->stream[n] = '\0';
	cmd->stream_len = n;
	if (!cm_stream_valid(cmd->stream, n))
		return CM_ERR_BAD_STREAM;
	return 0;
}

static enum cm_cmd_kind cmd_kind_of(const struct jval *k)
{
	if (js_key_eq(k, "subscribe"))
		return CM_CMD_SUBSCRIBE;
	if (js_key_eq(k, "unsubscribe"))
		return CM_CMD_UNSUBSCRIBE;
	if (js_key_eq(k, "publish"))
		return CM_CMD_PUBLISH;
	return CM_CMD_NONE;
}

static int parse_json(const uint8_t *p, size_t n, struct cm_cmd *cmd, const char **errmsg)
{
	struct js j = { p, p + n };
	struct jval k, v, id = { 0 }, stream = { 0 }, data = { 0 }, enc = { 0 };
	unsigned count = 0, ncmd = 0;
	enum cm_cmd_kind kind = CM_CMD_NONE;
	bool have_id = false, dup = false, body_obj = false;
	int r;

	if (js_obj_open(&j))
		return fail(errmsg, "not a JSON object", CM_ERR_MALFORMED);
	while ((r = js_obj_next(&j, &count, &k)) == 1) {
		if (js_key_eq(&k, "id")) {
			/* a duplicate is an error, but the first id is the one echoed */
			if (js_value(&j, have_id ? &v : &id, 1))
				goto syntax;
			dup |= have_id;
			have_id = true;
			continue;
		}
		/* every other key names a command */
		if (ncmd++ > 0 || (kind = cmd_kind_of(&k)) == CM_CMD_NONE) {
			if (js_value(&j, &v, 1))
				goto syntax;
			continue;
		}
		js_ws(&j);
		if (j.p >= j.end || *j.p != '{') {
			if (js_value(&j, &v, 1))
				goto syntax;
			continue;
		}
		/* the command's body, read in the same pass */
		unsigned bcount = 0;
		body_obj = true;
		j.p++;
		while ((r = js_obj_next(&j, &bcount, &k)) == 1) {
			struct jval *slot = NULL;
			if (js_key_eq(&k, "stream"))
				slot = &stream;
			else if (js_key_eq(&k, "data"))
				slot = &data;
			else if (js_key_eq(&k, "encoding"))
				slot = &enc;
			if (slot && slot->type != J_NONE)
				dup = true;
			if (js_value(&j, slot ? slot : &v, 2))
				goto syntax;
		}
		if (r < 0)
			goto syntax;
	}
	if (r < 0)
		goto syntax;
	js_ws(&j);
	if (j.p != j.end)
		goto syntax;

	if (!have_id)
		return fail(errmsg, "missing id", CM_ERR_MALFORMED);
	if (js_uint(&id, CM_ID_MAX, &cmd->id))
		return fail(errmsg, "id must be an integer 0..2^53", CM_ERR_MALFORMED);
	if (dup)
		return fail(errmsg, "duplicate key", CM_ERR_MALFORMED);
	if (ncmd == 0)
		return fail(errmsg, "unknown command", CM_ERR_UNKNOWN);
	if (ncmd > 1)
		return fail(errmsg, "more than one command", CM_ERR_MALFORMED);
	if (kind == CM_CMD_NONE)
		return fail(errmsg, "unknown command", CM_ERR_UNKNOWN);
	if (!body_obj)
		return fail(errmsg, "command must be an object", CM_ERR_MALFORMED);
	if (stream.type != J_STR)
		return fail(errmsg, "stream must be a string", CM_ERR_MALFORMED);
	if (take_stream(cmd, &stream))
		return fail(errmsg, "invalid stream name", CM_ERR_BAD_STREAM);
	cmd->kind = kind;
	if (kind != CM_CMD_PUBLISH)
		return 0;

	bool b64 = false;
	if (enc.type != J_NONE) {
		if (enc.type != J_STR || !js_key_eq(&enc, "base64"))
			return fail(errmsg, "unknown encoding", CM_ERR_MALFORMED);
		b64 = true;
	}
	if (data.type != J_STR)
		return fail(errmsg, "data must be a string", CM_ERR_MALFORMED);
	size_t raw = (size_t)(data.e - data.s);
	struct cmd_priv *pv = cm_xmalloc(sizeof(*pv) + raw);
	pv->pb = NULL;
	cmd->priv = pv;
	size_t len = data.esc ? js_unescape(data.s, data.e, pv->buf) : raw;
	if (!data.esc)
		memcpy(pv->buf, data.s, raw);
	if (b64) {
		/* in place: the decoder never writes ahead of what it read */
		long dl = cm_b64_decode(pv->buf, pv->buf, len);
		if (dl < 0) {
			cmd->kind = CM_CMD_NONE;
			return fail(errmsg, "data is not base64", CM_ERR_MALFORMED);
		}
		len = (size_t)dl;
	}
	cmd->data = pv->buf;
	cmd->data_len = len;
	return 0;

syntax:
	return fail(errmsg, "malformed JSON", CM_ERR_MALFORMED);
}

/* A varint at *p (before end); false when truncated or over 10 bytes. */
static bool pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t c = *(*p)++;
		if (shift < 64)
			*v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return true;
	}
	return false;
}

/* Reads one field at *p: its number, and for a length-delimited one its
 * bytes in *val (else *val = NULL). False at the end or when unreadable. */
static bool pb_next_field(const uint8_t **p, const uint8_t *end, uint64_t *field,
			  const uint8_t **val, size_t *len)
{
	uint64_t tag, v;

	*val = NULL;
	if (*p >= end || !pb_read_varint(p, end, &tag))
		return false;
	*field = tag >> 3;
	switch (tag & 7) {
	case 0:
		return pb_read_varint(p, end, &v);
	case 1:
	case 5:
		v = (tag & 7) == 1 ? 8 : 4;
		break;
	case 2:
		if (!pb_read_varint(p, end, &v) || v > (uint64_t)(end - *p))
			return false;
		*val = *p;
		*len = (size_t)v;
		break;
	default:
		return false;
	}
	if (v > (uint64_t)(end - *p))
		return false;
	*p += v;
	return true;
}

/* Whether a stream (field 1 of the Command's subscribe, unsubscribe or
 * publish, fields 2..4) holds a NUL byte: protobuf-c hands strings over
 * NUL-terminated, and "ab\0cd" would pass as the stream "ab". */
static bool pb_stream_has_nul(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n, *body, *s;
	uint64_t f, sf;
	size_t blen, slen;

	while (pb_next_field(&p, end, &f, &body, &blen)) {
		if (!body || f < 2 || f > 4)
			continue;
		for (const uint8_t *q = body; pb_next_field(&q, body + blen, &sf, &s, &slen);)
			if (sf == 1 && s && memchr(s, 0, slen))
				return true;
	}
	return false;
}

static int parse_pb(const uint8_t *p, size_t n, struct cm_cmd *cmd, const char **errmsg)
{
	Herald__Client__Command *c = herald__client__command__unpack(NULL, n, p);
	const char *stream;
	int code;

	if (!c)
		return fail(errmsg, "malformed protobuf", CM_ERR_MALFORMED);
	if (c->id > CM_ID_MAX) {
		code = fail(errmsg, "id must be an integer 0..2^53", CM_ERR_MALFORMED);
		goto out;
	}
	cmd->id = c->id;
	switch (c->cmd_case) {
	case HERALD__CLIENT__COMMAND__CMD_SUBSCRIBE:
		cmd->kind = CM_CMD_SUBSCRIBE;
		stream = c->subscribe->stream;
		break;
	case HERALD__CLIENT__COMMAND__CMD_UNSUBSCRIBE:
		cmd->kind = CM_CMD_UNSUBSCRIBE;
		stream = c->unsubscribe->stream;
		break;
	case HERALD__CLIENT__COMMAND__CMD_PUBLISH:
		cmd->kind = CM_CMD_PUBLISH;
		stream = c->publish->stream;
		break;
	default:
		code = fail(errmsg, "unknown command", CM_ERR_UNKNOWN);
		goto out;
	}
	size_t sl = stream ? strlen(stream) : 0;
	if (!cm_stream_valid(stream, sl) || pb_stream_has_nul(p, n)) {
		cmd->kind = CM_CMD_NONE;
		code = fail(errmsg, "invalid stream name", CM_ERR_BAD_STREAM);
		goto out;
	}
	memcpy(cmd->stream, stream, sl + 1);
	cmd->stream_len = sl;
	if (cmd->kind == CM_CMD_PUBLISH) {
		struct cmd_priv *pv = cm_xmalloc(sizeof(*pv));
		pv->pb = c;
		cmd->priv = pv;
		cmd->data = c->publish->data.data;
		cmd->data_len = c->publish->data.len;
		return 0;
	}
	code = 0;
out:
	herald__client__command__free_unpacked(c, NULL);
	return code;
}

int cm_cmd_parse(enum cm_fmt fmt, const uint8_t *p, size_t n, struct cm_cmd *cmd,
		 const char **errmsg)
{
	memset(cmd, 0, sizeof(*cmd));
	*errmsg = NULL;
	return fmt == CM_FMT_PROTOBUF ? parse_pb(p, n, cmd, errmsg)
				      : parse_json(p, n, cmd, errmsg);
}

void cm_cmd_release(struct cm_cmd *cmd)
{
	struct cmd_priv *pv = cmd->priv;

	if (pv) {
		if (pv->pb)
			herald__client__command__free_unpacked(pv->pb, NULL);
		free(pv);
	}
	cmd->priv = NULL;
	cmd->data = NULL;
	cmd->data_len = 0;
}

/* ---------------------------------------------------------- JSON writing */


/* Length of s[0..n) escaped as the inside of a JSON string. */
static size_t json_str_len(const uint8_t *s, size_t n)
{
	size_t extra = 0, i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		if (CM_LIKELY(!word_special(w)))
			continue;
		for (size_t k = 0; k < 8; k++)
			extra += esc_len[s[i + k]] - 1u;
	}
	for (; i < n; i++)
		extra += esc_len[s[i]] - 1u;
	return n + extra;
}

/* Writes s[0..n) escaped (json_str_len bytes); returns the end. */
static uint8_t *json_str_write(uint8_t *o, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;

	while (i < n) {
		size_t j = (size_t)(special_skip(s + i, s + n) - s);
		memcpy(o, s + i, j - i);
		o += j - i;
		if (j == n)
			break;
		uint8_t c = s[j];
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = (uint8_t)hex[c >> 4];
			*o++ = (uint8_t)hex[c & 15];
		}
		i = j + 1;
	}
	return o;
}

static size_t dec_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static uint8_t *dec_write(uint8_t *o, uint64_t v, size_t digits)
{
	for (size_t i = digits; i-- > 0; v /= 10)
		o[i] = (uint8_t)('0' + v % 10);
	return o + digits;
}

static inline uint8_t *put(uint8_t *o, const char *lit, size_t n)
{
	memcpy(o, lit, n);
	return o + n;
}
#define PUT(o, lit) put(o, lit, sizeof(lit) - 1)

/* A payload inside a JSON message: escaped text, or base64 when it is not
 * UTF-8. */
struct json_data {
	bool b64;
	size_t len; /* written length, quotes excluded */
};

static struct json_data json_data_measure(const uint8_t *d, size_t n)
{
	struct json_data jd = { false, 0 };
	uint32_t st = CM_UTF8_ACCEPT;
	size_t extra = 0, i = 0;

	/* One scan for both questions: is it UTF-8, and how long is it escaped.
	 * A word of ASCII from a character boundary cannot change the UTF-8
	 * state, so only words with high bytes (or after one) go to the DFA. */
#ifdef __SSE2__
	for (; i + 16 <= n; i += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
		if (_mm_movemask_epi8(x) || st != CM_UTF8_ACCEPT) {
			st = cm_utf8_step(st, d + i, 16);
			if (st == CM_UTF8_REJECT)
				break;
		}
		for (unsigned mask = special16(x); mask; mask &= mask - 1)
			extra += esc_len[d[i + (unsigned)__builtin_ctz(mask)]] - 1u;
	}
#endif
	for (; st != CM_UTF8_REJECT && i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, d + i, 8);
		if ((w & HIGHS) || st != CM_UTF8_ACCEPT) {
			st = cm_utf8_step(st, d + i, 8);
			if (st == CM_UTF8_REJECT)
				break;
		}
		if (CM_LIKELY(!word_special(w)))
			continue;
		for (size_t k = 0; k < 8; k++)
			extra += esc_len[d[i + k]] - 1u;
	}
	if (st != CM_UTF8_REJECT && i < n) {
		st = cm_utf8_step(st, d + i, n - i);
		for (; i < n; i++)
			extra += esc_len[d[i]] - 1u;
	}
	jd.b64 = st != CM_UTF8_ACCEPT;
	jd.len = jd.b64 ? cm_b64_enc_len(n) : n + extra;
	return jd;
}

static uint8_t *json_data_write(uint8_t *o, const struct json_data *jd, const uint8_t *d, size_t n)
{
	return jd->b64 ? o + cm_b64_encode(o, d, n) : json_str_write(o, d, n);
}

/* A message for a reply: escaped as is when it is UTF-8, else with every
 * byte >= 0x80 as '?' (messages are ours and ASCII; this is a safety net). */
static const uint8_t *reply_msg(const char *msg, size_t *n, uint8_t **tmp)
{
	size_t len = msg ? strlen(msg) : 0;

	*tmp = NULL;
	*n = len;
	if (!len || cm_utf8_valid((const uint8_t *)msg, len))
		return (const uint8_t *)(msg ? msg : "");
	*tmp = cm_xmalloc(len);
	for (size_t i = 0; i < len; i++)
		(*tmp)[i] = (uint8_t)msg[i] >= 0x80 ? '?' : (uint8_t)msg[i];
	return *tmp;
}

/* ----------------------------------------------------- protobuf writing */

static inline uint8_t *varint_write(uint8_t *o, uint64_t v)
{
	return o + cm_pb_varint_put(o, v);
}

/* Length-delimited field: tag + length + bytes. */
static size_t ld_len(size_t n)
{
	return 1 + cm_pb_varint_len(n) + n;
}

/* ------------------------------------------------------------------ replies */

size_t cm_reply_ok(enum cm_fmt fmt, uint64_t id, uint8_t *out, size_t cap)
{
	return cm_reply_error(fmt, id, 0, NULL, out, cap);
}

/* Exact length of a reply (code 0: ok). */
static size_t reply_len(enum cm_fmt fmt, uint64_t id, int code, const uint8_t *m, size_t mlen)
{
	if (fmt == CM_FMT_PROTOBUF) {
		size_t result = code ? ld_len((code ? cm_pb_varint_len((uint64_t)(uint32_t)code) + 1 : 0) +
					      (mlen ? ld_len(mlen) : 0))
				     : ld_len(0);
		size_t reply = (id ? 1 + cm_pb_varint_len(id) : 0) + result;
		return ld_len(reply);
	}
	if (!code)
		return sizeof("{\"id\":,\"ok\":{}}") - 1 + dec_len(id);
	char cbuf[16];
	int cl = snprintf(cbuf, sizeof(cbuf), "%d", code);
	return sizeof("{\"id\":,\"error\":{\"code\":,\"message\":\"\"}}") - 1 + dec_len(id) +
	       (size_t)cl + json_str_len(m, mlen);
}

static uint8_t *reply_write(enum cm_fmt fmt, uint64_t id, int code, const uint8_t *m, size_t mlen,
			    uint8_t *o)
{
	if (fmt == CM_FMT_PROTOBUF) {
		/* ServerMessage{reply(1) = Reply{id(1), ok(2) | error(3){code(1), message(2)}}} */
		size_t err = code ? cm_pb_varint_len((uint64_t)(uint32_t)code) + 1 + (mlen ? ld_len(mlen) : 0) : 0;
		size_t result = ld_len(err);
		size_t reply = (id ? 1 + cm_pb_varint_len(id) : 0) + result;
		*o++ = 0x0a;
		o = varint_write(o, reply);
		if (id) {
			*o++ = 0x08;
			o = varint_write(o, id);
		}
		*o++ = code ? 0x1a : 0x12;
		o = varint_write(o, err);
		if (code) {
			*o++ = 0x08;
			o = varint_write(o, (uint32_t)code);
			if (mlen) {
				*o++ = 0x12;
				o = varint_write(o, mlen);
				memcpy(o, m, mlen);
				o += mlen;
			}
		}
		return o;
	}
	o = PUT(o, "{\"id\":");
	o = dec_write(o, id, dec_len(id));
	if (!code)
		return PUT(o, ",\"ok\":{}}");
	char cbuf[16];
	int cl = snprintf(cbuf, sizeof(cbuf), "%d", code);
	o = PUT(o, ",\"error\":{\"code\":");
	o = put(o, cbuf, (size_t)cl);
	o = PUT(o, ",\"message\":\"");
	o = json_str_write(o, m, mlen);
	return PUT(o, "\"}}");
}

size_t cm_reply_error(enum cm_fmt fmt, uint64_t id, int code, const char *msg, uint8_t *out,
		      size_t cap)
{
	uint8_t *tmp;
	size_t mlen, len, w;
	const uint8_t *m = reply_msg(msg, &mlen, &tmp);

	len = reply_len(fmt, id, code, m, mlen);
	if (len > cap) {
		free(tmp);
		return 0;
	}
	w = (size_t)(reply_write(fmt, id, code, m, mlen, out) - out);
	CM_ASSERT(w == len);
	free(tmp);
	return len;
}

struct cm_packet *cm_reply_packet(enum cm_fmt fmt, uint64_t id, int code, const char *msg)
{
	uint8_t *tmp;
	size_t mlen;
	const uint8_t *m = reply_msg(msg, &mlen, &tmp);
	size_t len = reply_len(fmt, id, code, m, mlen);
	struct cm_packet *p = cm_packet_new(CM_PACKET_HEADROOM + len);
	size_t w = (size_t)(reply_write(fmt, id, code, m, mlen, p->data + CM_PACKET_HEADROOM) -
			    (p->data + CM_PACKET_HEADROOM));

	CM_ASSERT(w == len);
	free(tmp);
	cm_packet_seal(p, fmt == CM_FMT_PROTOBUF ? CM_WS_BINARY : CM_WS_TEXT, len);
	return p;
}

/* --------------------------------------------------------------- pushes */

struct cm_packet *cm_push_packet(enum cm_fmt fmt, const char *stream, size_t stream_len,
				 uint64_t offset, const uint8_t *data, size_t len)
{
	const uint8_t *st = (const uint8_t *)stream;
	struct cm_packet *p;
	uint8_t *o, *start;
	size_t size;

	if (fmt == CM_FMT_PROTOBUF) {
		/* ServerMessage{push(2) = Push{stream(1), offset(2), data(3)}};
		 * proto3 leaves out fields holding their default. */
		size_t push = (stream_len ? ld_len(stream_len) : 0) +
			      (offset ? 1 + cm_pb_varint_len(offset) : 0) + (len ? ld_len(len) : 0);
		size = ld_len(push);
		p = cm_packet_new(CM_PACKET_HEADROOM + size);
		o = start = p->data + CM_PACKET_HEADROOM;
		*o++ = 0x12;
		o = varint_write(o, push);
		if (stream_len) {
			*o++ = 0x0a;
			o = varint_write(o, stream_len);
			memcpy(o, st, stream_len);
			o += stream_len;
		}
		if (offset) {
			*o++ = 0x10;
			o = varint_write(o, offset);
		}
		if (len) {
			*o++ = 0x1a;
			o = varint_write(o, len);
			memcpy(o, data, len);
			o += len;
		}
		CM_ASSERT((size_t)(o - start) == size);
		cm_packet_seal(p, CM_WS_BINARY, size);
		return p;
	}

	/* {"push":{"stream":"S","offset":N,"data":"D"[,"encoding":"base64"]}} */
	static const char b64_tail[] = ",\"encoding\":\"base64\"";
	struct json_data jd = json_data_measure(data, len);
	size_t odig = dec_len(offset);

	size = sizeof("{\"push\":{\"stream\":\"\",\"offset\":,\"data\":\"\"}}") - 1 +
	       json_str_len(st, stream_len) + odig + jd.len + (jd.b64 ? sizeof(b64_tail) - 1 : 0);
	p = cm_packet_new(CM_PACKET_HEADROOM + size);
	o = start = p->data + CM_PACKET_HEADROOM;
	o = PUT(o, "{\"push\":{\"stream\":\"");
	o = json_str_write(o, st, stream_len);
	o = PUT(o, "\",\"offset\":");
	o = dec_write(o, offset, odig);
	o = PUT(o, ",\"data\":\"");
	o = json_data_write(o, &jd, data, len);
	*o++ = '"';
	if (jd.b64)
		o = PUT(o, b64_tail);
	o = PUT(o, "}}");
	CM_ASSERT((size_t)(o - start) == size);
	cm_packet_seal(p, CM_WS_TEXT, size);
	return p;
}

/* ------------------------------------------------------ our own clients */

static const char *const kind_names[] = {
	[CM_CMD_SUBSCRIBE] = "subscribe",
	[CM_CMD_UNSUBSCRIBE] = "unsubscribe",
	[CM_CMD_PUBLISH] = "publish",
};

size_t cm_cmd_encode(enum cm_fmt fmt, enum cm_cmd_kind kind, uint64_t id, const char *stream,
		     const uint8_t *data, size_t len, uint8_t *out, size_t cap)
{
	const char *s = stream ? stream : "";
	size_t slen = strlen(s);

	if (kind != CM_CMD_SUBSCRIBE && kind != CM_CMD_UNSUBSCRIBE && kind != CM_CMD_PUBLISH)
		return 0;
	if (kind != CM_CMD_PUBLISH || !data)
		len = 0;

	if (fmt == CM_FMT_PROTOBUF) {
		Herald__Client__Command c = HERALD__CLIENT__COMMAND__INIT;
		Herald__Client__Subscribe sub = HERALD__CLIENT__SUBSCRIBE__INIT;
		Herald__Client__Unsubscribe uns = HERALD__CLIENT__UNSUBSCRIBE__INIT;
		Herald__Client__Publish pub = HERALD__CLIENT__PUBLISH__INIT;

		c.id = id;
		switch (kind) {
		case CM_CMD_SUBSCRIBE:
			sub.stream = (char *)s;
			c.cmd_case = HERALD__CLIENT__COMMAND__CMD_SUBSCRIBE;
			c.subscribe = &sub;
			break;
		case CM_CMD_UNSUBSCRIBE:
			uns.stream = (char *)s;
			c.cmd_case = HERALD__CLIENT__COMMAND__CMD_UNSUBSCRIBE;
			c.unsubscribe = &uns;
			break;
		default:
			pub.stream = (char *)s;
			pub.data.data = (uint8_t *)data;
			pub.data.len = len;
			c.cmd_case = HERALD__CLIENT__COMMAND__CMD_PUBLISH;
			c.publish = &pub;
			break;
		}
		size_t need = herald__client__command__get_packed_size(&c);
		if (need > cap)
			return 0;
		return herald__client__command__pack(&c, out);
	}

	/* {"id":N,"KIND":{"stream":"S"[,"data":"D"[,"encoding":"base64"]]}} */
	static const char b64_tail[] = ",\"encoding\":\"base64\"";
	const char *kn = kind_names[kind];
	struct json_data jd = { false, 0 };
	size_t need = sizeof("{\"id\":,\"\":{\"stream\":\"\"}}") - 1 + dec_len(id) + strlen(kn) +
		      json_str_len((const uint8_t *)s, slen);
	if (kind == CM_CMD_PUBLISH) {
		jd = json_data_measure(data ? data : (const uint8_t *)"", len);
		need += sizeof(",\"data\":\"\"") - 1 + jd.len + (jd.b64 ? sizeof(b64_tail) - 1 : 0);
	}
	if (need > cap)
		return 0;
	uint8_t *o = out;
	o = PUT(o, "{\"id\":");
	o = dec_write(o, id, dec_len(id));
	o = PUT(o, ",\"");
	o = put(o, kn, strlen(kn));
	o = PUT(o, "\":{\"stream\":\"");
	o = json_str_write(o, (const uint8_t *)s, slen);
	*o++ = '"';
	if (kind == CM_CMD_PUBLISH) {
		o = PUT(o, ",\"data\":\"");
		o = json_data_write(o, &jd, data ? data : (const uint8_t *)"", len);
		*o++ = '"';
		if (jd.b64)
			o = PUT(o, b64_tail);
	}
	o = PUT(o, "}}");
	CM_ASSERT((size_t)(o - out) == need);
	return need;
}

/* A JSON string into a NUL-terminated buffer of cap bytes; -1 when it does
 * not fit and !truncate. */
static int js_str_copy(const struct jval *v, char *out, size_t cap, bool truncate)
{
	size_t raw = (size_t)(v->e - v->s), n;
	uint8_t *tmp = cm_xmalloc(raw ? raw : 1);

	n = js_unescape(v->s, v->e, tmp);
	if (n >= cap) {
		if (!truncate) {
			free(tmp);
			return -1;
		}
		n = cap - 1;
	}
	memcpy(out, tmp, n);
	out[n] = '\0';
	free(tmp);
	return 0;
}

static int smsg_json(const uint8_t *p, size_t n, struct cm_smsg *m)
{
	struct js j = { p, p + n };
	struct jval k, v, id = { 0 }, stream = { 0 }, offset = { 0 }, data = { 0 }, enc = { 0 };
	struct jval code = { 0 }, msg = { 0 };
	unsigned count = 0;
	bool push = false, ok = false, error = false;
	int r;

	if (js_obj_open(&j))
		return -1;
	while ((r = js_obj_next(&j, &count, &k)) == 1) {
		bool is_push = js_key_eq(&k, "push"), is_err = !is_push && js_key_eq(&k, "error");
		if (!is_push && !is_err) {
			struct jval *slot = js_key_eq(&k, "id") ? &id : &v;
			if (js_value(&j, slot, 1))
				return -1;
			if (js_key_eq(&k, "ok")) {
				if (v.type != J_OBJ)
					return -1;
				ok = true;
			}
			continue;
		}
		if (js_obj_open(&j) || push || error)
			return -1;
		push |= is_push;
		error |= is_err;
		unsigned bcount = 0;
		while ((r = js_obj_next(&j, &bcount, &k)) == 1) {
			struct jval *slot = &v;
			if (is_push) {
				if (js_key_eq(&k, "stream"))
					slot = &stream;
				else if (js_key_eq(&k, "offset"))
					slot = &offset;
				else if (js_key_eq(&k, "data"))
					slot = &data;
				else if (js_key_eq(&k, "encoding"))
					slot = &enc;
			} else {
				if (js_key_eq(&k, "code"))
					slot = &code;
				else if (js_key_eq(&k, "message"))
					slot = &msg;
			}
			if (js_value(&j, slot, 2))
				return -1;
		}
		if (r < 0)
			return -1;
	}
	if (r < 0)
		return -1;
	js_ws(&j);
	if (j.p != j.end || push + ok + error != 1)
		return -1;

	if (!push) {
		uint64_t c = 0;
		m->kind = CM_SMSG_REPLY;
		if (js_uint(&id, UINT64_MAX, &m->id))
			return -1;
		if (ok)
			return 0;
		if (js_uint(&code, 999, &c) || c == 0)
			return -1;
		m->code = (int)c;
		if (msg.type == J_STR)
			js_str_copy(&msg, m->message, sizeof(m->message), true);
		return 0;
	}
	m->kind = CM_SMSG_PUSH;
	if (stream.type != J_STR || data.type != J_STR ||
	    js_str_copy(&stream, m->stream, sizeof(m->stream), false) ||
	    js_uint(&offset, UINT64_MAX, &m->offset))
		return -1;
	bool b64 = false;
	if (enc.type != J_NONE) {
		if (enc.type != J_STR || !js_key_eq(&enc, "base64"))
			return -1;
		b64 = true;
	}
	size_t raw = (size_t)(data.e - data.s);
	m->data = cm_xmalloc(raw ? raw : 1);
	size_t len = data.esc ? js_unescape(data.s, data.e, m->data) : raw;
	if (!data.esc)
		memcpy(m->data, data.s, raw);
	if (b64) {
		long dl = cm_b64_decode(m->data, m->data, len);
		if (dl < 0)
			return -1;
		len = (size_t)dl;
	}
	m->data_len = len;
	return 0;
}

static int smsg_pb(const uint8_t *p, size_t n, struct cm_smsg *m)
{
	Herald__Client__ServerMessage *sm = herald__client__server_message__unpack(NULL, n, p);
	int rc = -1;

	if (!sm)
		return -1;
	if (sm->msg_case == HERALD__CLIENT__SERVER_MESSAGE__MSG_REPLY) {
		Herald__Client__Reply *r = sm->reply;
		m->kind = CM_SMSG_REPLY;
		m->id = r->id;
		if (r->result_case == HERALD__CLIENT__REPLY__RESULT_OK) {
			rc = 0;
		} else if (r->result_case == HERALD__CLIENT__REPLY__RESULT_ERROR && r->error->code) {
			m->code = (int)r->error->code;
			snprintf(m->message, sizeof(m->message), "%s",
				 r->error->message ? r->error->message : "");
			rc = 0;
		}
	} else if (sm->msg_case == HERALD__CLIENT__SERVER_MESSAGE__MSG_PUSH) {
		Herald__Client__Push *pu = sm->push;
		size_t sl = pu->stream ? strlen(pu->stream) : 0;
		m->kind = CM_SMSG_PUSH;
		if (sl <= CM_STREAM_MAX) {
			memcpy(m->stream, pu->stream ? pu->stream : "", sl + 1);
			m->offset = pu->offset;
			m->data = cm_xmalloc(pu->data.len ? pu->data.len : 1);
			if (pu->data.len)
				memcpy(m->data, pu->data.data, pu->data.len);
			m->data_len = pu->data.len;
			rc = 0;
		}
	}
	herald__client__server_message__free_unpacked(sm, NULL);
	return rc;
}

int cm_smsg_decode(enum cm_fmt fmt, const uint8_t *p, size_t n, struct cm_smsg *m)
{
	int rc;

	memset(m, 0, sizeof(*m));
	rc = fmt == CM_FMT_PROTOBUF ? smsg_pb(p, n, m) : smsg_json(p, n, m);
	if (rc)
		cm_smsg_release(m);
	return rc;
}

void cm_smsg_release(struct cm_smsg *m)
{
	free(m->data);
	m->data = NULL;
	m->data_len = 0;
}
