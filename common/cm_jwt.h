/* cm_jwt — HS256 JSON Web Tokens: verification for the gateway (and signing
 * for tests and the load generator). HMAC-SHA256 from BoringSSL, compared in
 * constant time; the header's alg must be exactly "HS256"; `exp` is required;
 * `sub` must be a non-empty string. */
#ifndef CM_JWT_H
#define CM_JWT_H

#include <stddef.h>
#include <stdint.h>

enum cm_jwt_err {
	CM_JWT_OK = 0,
	CM_JWT_MALFORMED = -1,   /* not three base64url parts, bad JSON */
	CM_JWT_BAD_ALG = -2,     /* alg missing or not HS256 (none included) */
	CM_JWT_BAD_SIG = -3,
	CM_JWT_EXPIRED = -4,     /* now > exp + leeway */
	CM_JWT_NO_EXP = -5,
	CM_JWT_BAD_SUB = -6,     /* sub missing, not a string, empty or longer than cap-1 */
};

#define CM_JWT_LEEWAY_S 30

/* Verifies token[0..len) with the secret. On success writes sub
 * (NUL-terminated) and *exp (seconds since the epoch) and returns CM_JWT_OK;
 * otherwise one of the errors. now_s is seconds since the epoch. */
int cm_jwt_verify(const char *token, size_t len, const uint8_t *secret, size_t secret_len,
		  int64_t now_s, char *sub, size_t sub_cap, int64_t *exp);

/* Signs {"sub":sub,"exp":exp} with HS256 into out (NUL-terminated).
 * Returns the token length, or 0 when cap is too small. */
size_t cm_jwt_sign(const char *sub, int64_t exp, const uint8_t *secret, size_t secret_len,
		   char *out, size_t cap);

const char *cm_jwt_strerror(int err);

#endif
