/* cm_jwt — HS256 JWT verification and signing.
 *
 * Order of checks: shape (three base64url parts), header (alg exactly
 * HS256), signature (HMAC-SHA256, constant-time compare), and only then the
 * payload's JSON and claims: nothing unauthenticated is parsed beyond the
 * small header. */
#include "cm_jwt.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <stdbool.h>
#include <string.h>

#include "cm_log.h"
#include "cm_utf8.h"

#define JWT_MAX_TOKEN 8192 /* longer tokens are refused as malformed */
#define JWT_SIG_LEN 32

static const char b64url_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of a base64url character, or -1. */
static int b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decodes unpadded base64url in[0..n) into out (at least n * 3 / 4 + 1
 * bytes). Rejects padding, characters outside the alphabet, a length of
 * 4k+1 and non-zero unused bits (one spelling per value). Returns the
 * decoded length or -1. */
static long b64url_decode(uint8_t *out, const char *in, size_t n)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1; /* leftover bits must be zero */
	return (long)o;
}

/* Encodes in[0..n) as unpadded base64url into out; returns the length. */
static size_t b64url_encode(char *out, const uint8_t *in, size_t n)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
		out[o++] = b64url_chars[(v >> 6) & 63];
		out[o++] = b64url_chars[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
		out[o++] = b64url_chars[(v >> 6) & 63];
	}
	return o;
}

static size_t b64url_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Decodes a base64url part holding one JSON object; NULL when either the
 * encoding or the JSON is bad. buf needs n * 3 / 4 + 1 bytes. */
static cJSON *parse_part(const char *part, size_t n, uint8_t *buf)
{
	const char *end = NULL;
	long len = b64url_decode(buf, part, n);
	cJSON *j;

	if (len <= 0)
		return NULL;
	buf[len] = '\0';
	/* The NUL is part of the buffer so cJSON can insist on no trailing
	 * bytes; parse_end must then be exactly at it (no embedded NUL). */
	j = cJSON_ParseWithLengthOpts((const char *)buf, (size_t)len + 1, &end, 1);
	if (!j)
		return NULL;
	if (end != (const char *)buf + len || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

static void hs256(const uint8_t *key, size_t key_len, const void *data, size_t n,
		  uint8_t out[JWT_SIG_LEN])
{
	unsigned int out_len = 0;

	CM_ASSERT(HMAC(EVP_sha256(), key, key_len, data, n, out, &out_len) != NULL);
	CM_ASSERT(out_len == JWT_SIG_LEN);
}

/* The payload's claims: exp (number, required), sub (non-empty UTF-8
 * string without NUL, shorter than sub_cap). */
static int check_claims(const cJSON *claims, int64_t now_s, char *sub, size_t sub_cap,
			int64_t *exp)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(claims, "exp");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(claims, "sub");
	double expd;
	int64_t exp_s;
	size_t slen;

	if (!cJSON_IsNumber(e))
		return CM_JWT_NO_EXP;
	expd = floor(e->valuedouble);
	if (!isfinite(expd))
		return CM_JWT_NO_EXP;
	if (expd >= 9.2e18)
		exp_s = INT64_MAX;
	else if (expd <= -9.2e18)
		exp_s = INT64_MIN;
	else
		exp_s = (int64_t)expd;
	/* now > exp + leeway, without overflowing near INT64_MAX */
	if (exp_s < INT64_MAX - CM_JWT_LEEWAY_S && now_s > exp_s + CM_JWT_LEEWAY_S)
		return CM_JWT_EXPIRED;

	if (!cJSON_IsString(s) || !s->valuestring)
		return CM_JWT_BAD_SUB;
	slen = strlen(s->valuestring);
	if (slen == 0 || slen >= sub_cap)
		return CM_JWT_BAD_SUB;
	if (!cm_utf8_valid((const uint8_t *)s->valuestring, slen))
		return CM_JWT_BAD_SUB;
	memcpy(sub, s->valuestring, slen + 1);
	if (exp)
		*exp = exp_s;
	return CM_JWT_OK;
}

int cm_jwt_verify(const char *token, size_t len, const uint8_t *secret, size_t secret_len,
		  int64_t now_s, char *sub, size_t sub_cap, int64_t *exp)
{
	const char *dot1, *dot2, *p_part, *s_part;
	size_t h_len, p_len, s_len;
	uint8_t *buf, mac[JWT_SIG_LEN];
	long sig_len;
	cJSON *hdr, *claims;
	const cJSON *alg;
	int rc;

	if (!token || len == 0 || len > JWT_MAX_TOKEN || sub_cap == 0)
		return CM_JWT_MALFORMED;
	dot1 = memchr(token, '.', len);
	if (!dot1)
		return CM_JWT_MALFORMED;
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
		return CM_JWT_MALFORMED;
	h_len = (size_t)(dot1 - token);
	p_part = dot1 + 1;
	p_len = (size_t)(dot2 - p_part);
	s_part = dot2 + 1;
	s_len = len - (size_t)(s_part - token);

	buf = cm_xmalloc(len / 4 * 3 + 4);

	/* Header: alg must be exactly "HS256" ("none" and the rest refused). */
	hdr = parse_part(token, h_len, buf);
	if (!hdr) {
		free(buf);
		return CM_JWT_MALFORMED;
	}
	alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
	rc = cJSON_IsString(alg) && alg->valuestring && strcmp(alg->valuestring, "HS256") == 0
		     ? CM_JWT_OK : CM_JWT_BAD_ALG;
	cJSON_Delete(hdr);
	if (rc) {
		free(buf);
		return rc;
	}

	/* Signature over "header.payload", compared in constant time. */
	sig_len = b64url_decode(buf, s_part, s_len);
	if (sig_len < 0) {
		free(buf);
		return CM_JWT_MALFORMED;
	}
	hs256(secret, secret_len, token, (size_t)(dot2 - token), mac);
	if (sig_len != JWT_SIG_LEN || CRYPTO_memcmp(mac, buf, JWT_SIG_LEN) != 0) {
		free(buf);
		return CM_JWT_BAD_SIG;
	}

	claims = parse_part(p_part, p_len, buf);
	if (!claims) {
		free(buf);
		return CM_JWT_MALFORMED;
	}
	/* cJSON would cut a string at an escaped NUL: "a\u0000b" must not
	 * pass as sub "a". Refuse the escape anywhere in the claims. */
	if (memmem(buf, strlen((const char *)buf), "\\u0000", 6))
		rc = CM_JWT_BAD_SUB;
	else
		rc = check_claims(claims, now_s, sub, sub_cap, exp);
	cJSON_Delete(claims);
	free(buf);
	return rc;
}

size_t cm_jwt_sign(const char *sub, int64_t exp, const uint8_t *secret, size_t secret_len,
		   char *out, size_t cap)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	cJSON *claims = cJSON_CreateObject();
	char *payload;
	size_t p_len, need, o = 0;
	uint8_t mac[JWT_SIG_LEN];

	CM_ASSERT(claims);
	CM_ASSERT(cJSON_AddStringToObject(claims, "sub", sub));
	CM_ASSERT(cJSON_AddNumberToObject(claims, "exp", (double)exp));
	payload = cJSON_PrintUnformatted(claims);
	cJSON_Delete(claims);
	CM_ASSERT(payload);
	p_len = strlen(payload);

	need = b64url_len(sizeof(header) - 1) + 1 + b64url_len(p_len) + 1 +
	       b64url_len(JWT_SIG_LEN);
	if (need + 1 > cap) {
		cJSON_free(payload);
		return 0;
	}
	o += b64url_encode(out + o, (const uint8_t *)header, sizeof(header) - 1);
	out[o++] = '.';
	o += b64url_encode(out + o, (const uint8_t *)payload, p_len);
	cJSON_free(payload);
	hs256(secret, secret_len, out, o, mac);
	out[o++] = '.';
	o += b64url_encode(out + o, mac, JWT_SIG_LEN);
	out[o] = '\0';
	CM_ASSERT(o == need);
	return o;
}

const char *cm_jwt_strerror(int err)
{
	switch (err) {
	case CM_JWT_OK:
		return "ok";
	case CM_JWT_MALFORMED:
		return "malformed token";
	case CM_JWT_BAD_ALG:
		return "alg is not HS256";
	case CM_JWT_BAD_SIG:
		return "bad signature";
	case CM_JWT_EXPIRED:
		return "token expired";
	case CM_JWT_NO_EXP:
		return "exp missing";
	case CM_JWT_BAD_SUB:
		return "sub missing or invalid";
	}
	return "unknown error";
}
