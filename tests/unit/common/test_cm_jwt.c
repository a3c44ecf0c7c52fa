#include <criterion/criterion.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "cm_jwt.h"

#define SECRET "herald-test-secret"
#define NOW 1900000000

/* Built offline, independently of cm_jwt (openssl CLI):
 *   H=$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)
 *   P=$(printf '%s' '{"sub":"alice","exp":2000000000}' | b64url)
 *   S=$(printf '%s' "$H.$P" | openssl dgst -sha256 -hmac herald-test-secret -binary | b64url)
 * with b64url = openssl base64 -A | tr '+/' '-_' | tr -d '='. */
static const char KNOWN[] =
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
	".eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMH0"
	".ccE4XlGy7yK-Z38vNuGJFN0n_dVcfwxHSa1i-bf7dhI";

/* Same way: header {"typ":"JWT", "alg":"HS256"} (other order, a space),
 * payload {"iat":1500000000,"exp":1700000000.5,"sub":"user-42","name":"Zo\u00e9"},
 * key "another key". */
static const char KNOWN2[] =
	"eyJ0eXAiOiJKV1QiLCAiYWxnIjoiSFMyNTYifQ"
	".eyJpYXQiOjE1MDAwMDAwMDAsImV4cCI6MTcwMDAwMDAwMC41LCJzdWIiOiJ1c2VyLTQyIiwibmFtZSI6IlpvXHUwMGU5In0"
	".LcUGM0m7p4_Nw5l415QVnfJJDdsg_TGAqap86OjPgGg";

static int verify_at(const char *tok, int64_t now)
{
	char sub[64];
	int64_t exp;
	return cm_jwt_verify(tok, strlen(tok), (const uint8_t *)SECRET, strlen(SECRET), now, sub,
			     sizeof(sub), &exp);
}

static int verify(const char *tok)
{
	return verify_at(tok, NOW);
}

/* Minimal base64url encoder for building hostile tokens in tests. */
static void b64u(const char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(uint8_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)in[i + 2];
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = a[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = a[v & 63];
	}
	out[o] = '\0';
}

/* header.payload, signed with SECRET by BoringSSL directly (not by cm_jwt):
 * for tests about the header and claims of a correctly signed token. */
static void make_token(const char *header, const char *payload, char *out)
{
	char h[512], p[512], sig[64];
	uint8_t mac[32];
	unsigned mlen = 0;
	b64u(header, strlen(header), h);
	b64u(payload, strlen(payload), p);
	sprintf(out, "%s.%s", h, p);
	HMAC(EVP_sha256(), SECRET, strlen(SECRET), (const uint8_t *)out, strlen(out), mac, &mlen);
	cr_assert_eq(mlen, 32);
	b64u((const char *)mac, 32, sig);
	strcat(out, ".");
	strcat(out, sig);
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

Test(cm_jwt, accepts_known_good_token)
{
	char sub[64] = "";
	int64_t exp = 0;
	int rc = cm_jwt_verify(KNOWN, strlen(KNOWN), (const uint8_t *)SECRET, strlen(SECRET), NOW,
			       sub, sizeof(sub), &exp);
	cr_assert_eq(rc, CM_JWT_OK, "%s", cm_jwt_strerror(rc));
	cr_assert_str_eq(sub, "alice");
	cr_assert_eq(exp, 2000000000);
}

Test(cm_jwt, accepts_known_good_token_with_other_header_order_and_claims)
{
	char sub[64] = "";
	int64_t exp = 0;
	int rc = cm_jwt_verify(KNOWN2, strlen(KNOWN2), (const uint8_t *)"another key", 11,
			       1700000000, sub, sizeof(sub), &exp);
	cr_assert_eq(rc, CM_JWT_OK, "%s", cm_jwt_strerror(rc));
	cr_assert_str_eq(sub, "user-42");
	cr_assert_eq(exp, 1700000000);
	/* Wrong key. */
	rc = cm_jwt_verify(KNOWN2, strlen(KNOWN2), (const uint8_t *)"another kez", 11,
			   1700000000, sub, sizeof(sub), &exp);
	cr_assert_eq(rc, CM_JWT_BAD_SIG);
}

Test(cm_jwt, sign_matches_independently_built_token)
{
	char tok[512];
	size_t n = cm_jwt_sign("alice", 2000000000, (const uint8_t *)SECRET, strlen(SECRET), tok,
			       sizeof(tok));
	cr_assert_eq(n, strlen(KNOWN));
	cr_assert_str_eq(tok, KNOWN);
}

Test(cm_jwt, sign_then_verify_round_trips)
{
	char tok[512], sub[64];
	int64_t exp;
	size_t n = cm_jwt_sign("bob \"quoted\" \xC3\xA9", NOW + 60, (const uint8_t *)"k", 1, tok,
			       sizeof(tok));
	cr_assert_gt(n, 0);
	cr_assert_eq(cm_jwt_verify(tok, n, (const uint8_t *)"k", 1, NOW, sub, sizeof(sub), &exp),
		     CM_JWT_OK);
	cr_assert_str_eq(sub, "bob \"quoted\" \xC3\xA9");
	cr_assert_eq(exp, NOW + 60);
}

Test(cm_jwt, sign_refuses_small_buffer)
{
	char tok[512];
	size_t n = cm_jwt_sign("alice", 2000000000, (const uint8_t *)SECRET, strlen(SECRET), tok,
			       sizeof(tok));
	cr_assert_eq(cm_jwt_sign("alice", 2000000000, (const uint8_t *)SECRET, strlen(SECRET), tok,
				 n), 0, "needs room for the NUL");
	cr_assert_eq(cm_jwt_sign("alice", 2000000000, (const uint8_t *)SECRET, strlen(SECRET), tok,
				 n + 1), n);
}

Test(cm_jwt, rejects_bad_signature)
{
	char tok[sizeof(KNOWN)];
	memcpy(tok, KNOWN, sizeof(KNOWN));
	char *last = tok + strlen(tok) - 2;
	*last = *last == 'A' ? 'B' : 'A';
	cr_assert_eq(verify(tok), CM_JWT_BAD_SIG);
	/* Wrong secret. */
	char sub[16];
	cr_assert_eq(cm_jwt_verify(KNOWN, strlen(KNOWN), (const uint8_t *)"other", 5, NOW, sub,
				   sizeof(sub), NULL), CM_JWT_BAD_SIG);
	/* Truncated signature, and an empty one. */
	memcpy(tok, KNOWN, sizeof(KNOWN));
	tok[strlen(tok) - 3] = '\0';
	cr_assert_eq(verify(tok), CM_JWT_BAD_SIG);
	*(strrchr(tok, '.') + 1) = '\0';
	cr_assert_eq(verify(tok), CM_JWT_BAD_SIG);
}

Test(cm_jwt, rejects_tampered_payload)
{
	/* Same signature, payload with another sub. */
	char p[128], tok[512];
	b64u("{\"sub\":\"admin\",\"exp\":2000000000}", 32, p);
	sprintf(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.%s.%s", p,
		"ccE4XlGy7yK-Z38vNuGJFN0n_dVcfwxHSa1i-bf7dhI");
	cr_assert_eq(verify(tok), CM_JWT_BAD_SIG);
	/* And a later exp. */
	b64u("{\"sub\":\"alice\",\"exp\":2000000001}", 32, p);
	sprintf(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.%s.%s", p,
		"ccE4XlGy7yK-Z38vNuGJFN0n_dVcfwxHSa1i-bf7dhI");
	cr_assert_eq(verify(tok), CM_JWT_BAD_SIG);
}

Test(cm_jwt, rejects_alg_none)
{
	char h[128], p[128], tok[512];
	b64u("{\"alg\":\"none\",\"typ\":\"JWT\"}", 26, h);
	b64u("{\"sub\":\"alice\",\"exp\":2000000000}", 32, p);
	sprintf(tok, "%s.%s.", h, p);
	cr_assert_eq(verify(tok), CM_JWT_BAD_ALG);
	/* Even carrying a valid-looking HS256 signature. */
	make_token("{\"alg\":\"none\"}", "{\"sub\":\"alice\",\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_BAD_ALG);
}

Test(cm_jwt, rejects_other_algs)
{
	static const char *headers[] = {
		"{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
		"{\"alg\":\"hs256\"}",
		"{\"alg\":\"HS256 \"}",
		"{\"alg\":\"RS256\"}",
		"{\"alg\":256}",
		"{\"alg\":null}",
		"{\"ALG\":\"HS256\"}",
	};
	char tok[1024];
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		make_token(headers[i], "{\"sub\":\"alice\",\"exp\":2000000000}", tok);
		cr_assert_eq(verify(tok), CM_JWT_BAD_ALG, "%s", headers[i]);
	}
}

Test(cm_jwt, rejects_missing_alg)
{
	char tok[1024];
	make_token("{\"typ\":\"JWT\"}", "{\"sub\":\"alice\",\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_BAD_ALG);
	make_token("{}", "{\"sub\":\"alice\",\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_BAD_ALG);
}

Test(cm_jwt, typ_is_optional)
{
	char tok[1024];
	make_token("{\"alg\":\"HS256\"}", "{\"sub\":\"alice\",\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_OK);
}

Test(cm_jwt, rejects_missing_or_non_numeric_exp)
{
	char tok[1024];
	make_token(HS256, "{\"sub\":\"alice\"}", tok);
	cr_assert_eq(verify(tok), CM_JWT_NO_EXP);
	make_token(HS256, "{\"sub\":\"alice\",\"exp\":\"2000000000\"}", tok);
	cr_assert_eq(verify(tok), CM_JWT_NO_EXP);
	make_token(HS256, "{\"sub\":\"alice\",\"exp\":null}", tok);
	cr_assert_eq(verify(tok), CM_JWT_NO_EXP);
}

Test(cm_jwt, expiry_has_leeway)
{
	char tok[1024];
	make_token(HS256, "{\"sub\":\"alice\",\"exp\":1000}", tok);
	cr_assert_eq(verify_at(tok, 999), CM_JWT_OK);
	cr_assert_eq(verify_at(tok, 1000), CM_JWT_OK);
	cr_assert_eq(verify_at(tok, 1000 + CM_JWT_LEEWAY_S), CM_JWT_OK, "within leeway");
	cr_assert_eq(verify_at(tok, 1000 + CM_JWT_LEEWAY_S + 1), CM_JWT_EXPIRED);
	cr_assert_eq(verify_at(tok, NOW), CM_JWT_EXPIRED);
	cr_assert_eq(verify_at(KNOWN, 2000000000 + CM_JWT_LEEWAY_S + 1), CM_JWT_EXPIRED);
}

Test(cm_jwt, huge_exp_does_not_overflow)
{
	char tok[1024];
	char sub[16];
	int64_t exp;
	make_token(HS256, "{\"sub\":\"alice\",\"exp\":1e300}", tok);
	cr_assert_eq(cm_jwt_verify(tok, strlen(tok), (const uint8_t *)SECRET, strlen(SECRET),
				   INT64_MAX, sub, sizeof(sub), &exp), CM_JWT_OK);
	cr_assert_eq(exp, INT64_MAX);
	make_token(HS256, "{\"sub\":\"alice\",\"exp\":-1e300}", tok);
	cr_assert_eq(verify(tok), CM_JWT_EXPIRED);
}

Test(cm_jwt, rejects_wrong_number_of_parts)
{
	char tok[1024];
	cr_assert_eq(verify("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0"), CM_JWT_MALFORMED);
	sprintf(tok, "%s.extra", KNOWN);
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
	cr_assert_eq(verify("abc"), CM_JWT_MALFORMED);
	cr_assert_eq(verify(""), CM_JWT_MALFORMED);
	cr_assert_eq(verify(".."), CM_JWT_MALFORMED);
	cr_assert_eq(verify("..."), CM_JWT_MALFORMED);
}

Test(cm_jwt, rejects_bad_base64)
{
	char tok[1024];
	/* '+', '/', '=' and '*' are not base64url; 4k+1 characters cannot be. */
	static const char *bad_sigs[] = { "ccE4XlGy7yK+Z38vNuGJFN0n_dVcfwxHSa1i-bf7dhI",
					  "ccE4XlGy7yK-Z38vNuGJFN0n/dVcfwxHSa1i-bf7dhI",
					  "ccE4XlGy7yK-Z38vNuGJFN0n_dVcfwxHSa1i-bf7dhI=",
					  "ccE4XlGy7yK-Z38vNuGJFN0n_dVcfwxHSa1i-bf7dh*",
					  "ccE4X", "ccE4A" };
	for (size_t i = 0; i < sizeof(bad_sigs) / sizeof(bad_sigs[0]); i++) {
		sprintf(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
			     ".eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMH0.%s", bad_sigs[i]);
		cr_assert_eq(verify(tok), CM_JWT_MALFORMED, "sig %s", bad_sigs[i]);
	}
	/* Padding and invalid characters in the header. */
	strcpy(tok, KNOWN);
	tok[3] = '+';
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
	cr_assert_eq(verify("eyJhbGciOiJIUzI1NiJ9==.eyJzdWIiOiJhIn0.AAAA"), CM_JWT_MALFORMED);
	/* Non-zero leftover bits ("eyJ9" vs "eyJ8"-style non-canonical tail). */
	strcpy(tok, KNOWN);
	char *end = tok + strlen(tok) - 1; /* 'I': 43 chars, low 2 bits unused */
	cr_assert_eq(*end, 'I');
	*end = 'J';
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
}

Test(cm_jwt, rejects_bad_json)
{
	char h[128], tok[1024];
	/* Header not JSON. */
	b64u("{\"alg\":\"HS256\"", 14, h);
	sprintf(tok, "%s.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMH0.AAAA", h);
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
	/* Header JSON but not an object. */
	b64u("[\"HS256\"]", 9, h);
	sprintf(tok, "%s.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMH0.AAAA", h);
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
	/* Trailing garbage after the header object. */
	b64u("{\"alg\":\"HS256\"}x", 16, h);
	sprintf(tok, "%s.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMH0.AAAA", h);
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
	/* Correctly signed payload that is not JSON, or not an object. */
	make_token(HS256, "{\"sub\":\"alice\",\"exp\":2000000000", tok);
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
	make_token(HS256, "\"alice\"", tok);
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
	make_token(HS256, "", tok);
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
}

Test(cm_jwt, rejects_bad_sub)
{
	char tok[1024];
	make_token(HS256, "{\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_BAD_SUB, "missing");
	make_token(HS256, "{\"sub\":42,\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_BAD_SUB, "number");
	make_token(HS256, "{\"sub\":\"\",\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_BAD_SUB, "empty");
	make_token(HS256, "{\"sub\":null,\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_BAD_SUB, "null");
	make_token(HS256, "{\"sub\":\"a\\u0000b\",\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_BAD_SUB, "embedded NUL");
	make_token(HS256, "{\"sub\":\"bad \xFF\",\"exp\":2000000000}", tok);
	cr_assert_eq(verify(tok), CM_JWT_BAD_SUB, "not UTF-8");
}

Test(cm_jwt, sub_must_fit_cap)
{
	char tok[1024], sub[8];
	int64_t exp;
	make_token(HS256, "{\"sub\":\"1234567\",\"exp\":2000000000}", tok);
	cr_assert_eq(cm_jwt_verify(tok, strlen(tok), (const uint8_t *)SECRET, strlen(SECRET), NOW,
				   sub, sizeof(sub), &exp), CM_JWT_OK, "7 chars + NUL fit in 8");
	cr_assert_str_eq(sub, "1234567");
	make_token(HS256, "{\"sub\":\"12345678\",\"exp\":2000000000}", tok);
	cr_assert_eq(cm_jwt_verify(tok, strlen(tok), (const uint8_t *)SECRET, strlen(SECRET), NOW,
				   sub, sizeof(sub), &exp), CM_JWT_BAD_SUB, "too long");
}

Test(cm_jwt, rejects_overlong_token)
{
	static char tok[20000];
	memset(tok, 'A', sizeof(tok) - 1);
	tok[100] = '.';
	tok[200] = '.';
	cr_assert_eq(verify(tok), CM_JWT_MALFORMED);
}

Test(cm_jwt, strerror_names_every_error)
{
	static const int errs[] = { CM_JWT_OK, CM_JWT_MALFORMED, CM_JWT_BAD_ALG, CM_JWT_BAD_SIG,
				    CM_JWT_EXPIRED, CM_JWT_NO_EXP, CM_JWT_BAD_SUB };
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		cr_assert_str_neq(cm_jwt_strerror(errs[i]), "unknown error");
	cr_assert_str_eq(cm_jwt_strerror(-99), "unknown error");
}
