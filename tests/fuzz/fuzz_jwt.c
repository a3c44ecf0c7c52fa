// fuzz-sources: common/cm_jwt.c common/cm_utf8.c common/cm_log.c
/* fuzz_jwt — cm_jwt_verify on arbitrary tokens, twice per input: once as
 * given (exercising the split, base64url and header checks) and once with
 * the input's first two parts re-signed with the key, so the claims parser
 * is reached too. A success must yield a NUL-terminated, non-empty sub that
 * fits the buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/digest.h>
#include <openssl/hmac.h>

#include "cm_jwt.h"

static const uint8_t KEY[] = "fuzz-key";

static void check(const char *tok, size_t n, int64_t now)
{
	char sub[16];
	int64_t exp = 0;

	memset(sub, 0x55, sizeof(sub));
	int rc = cm_jwt_verify(tok, n, KEY, sizeof(KEY) - 1, now, sub, sizeof(sub), &exp);
	if (rc > 0 || rc < CM_JWT_BAD_SUB)
		abort();
	if (rc == CM_JWT_OK) {
		size_t l = strnlen(sub, sizeof(sub));
		if (l == 0 || l == sizeof(sub))
			abort();
		if (now > exp && now - exp > CM_JWT_LEEWAY_S)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *tok;
	const char *dot;
	uint8_t mac[32];
	unsigned mlen = 0;
	size_t o;

	if (size > 4096)
		return 0;
	check((const char *)data, size, 1700000000);

	/* Re-sign "header.payload" (everything up to the second dot). */
	dot = memchr(data, '.', size);
	if (!dot)
		return 0;
	dot = memchr(dot + 1, '.', size - (size_t)(dot + 1 - (const char *)data));
	if (!dot)
		return 0;
	o = (size_t)(dot - (const char *)data);
	tok = malloc(o + 1 + 44);
	memcpy(tok, data, o);
	HMAC(EVP_sha256(), KEY, sizeof(KEY) - 1, (const uint8_t *)tok, o, mac, &mlen);
	tok[o++] = '.';
	for (size_t i = 0; i < 32; i += 3) {
		uint32_t v = (uint32_t)mac[i] << 16;
		if (i + 1 < 32)
			v |= (uint32_t)mac[i + 1] << 8;
		if (i + 2 < 32)
			v |= mac[i + 2];
		tok[o++] = b64[v >> 18];
		tok[o++] = b64[(v >> 12) & 63];
		if (i + 1 < 32)
			tok[o++] = b64[(v >> 6) & 63];
		if (i + 2 < 32)
			tok[o++] = b64[v & 63];
	}
	check(tok, o, 1700000000);
	free(tok);
	return 0;
}
